-- popsell install script of the current version.  Built by make from
-- src/sql/*.sql, concatenated in name order, one file per concept (types,
-- roles, tables, the C engine, contact events, security, erasure,
-- retention, lifecycle, rights, restore); src/sql/99_finalize.sql comes
-- last and also ends every upgrade script.  Edit those files, never the
-- built script.

\echo Use "CREATE EXTENSION popsell CASCADE" to load this file. \quit

-- The control file names schema popsell; PostgreSQL creates it for us, but
-- reuses one that already exists.  A schema planted beforehand by another
-- role could hold look-alike objects (CVE-2022-2625), so refuse it.
DO $$
DECLARE
    owner_is_us boolean;
    foreign_objects bigint;
BEGIN
    SELECT n.nspowner OPERATOR(pg_catalog.=) r.oid
      INTO owner_is_us
      FROM pg_catalog.pg_namespace n, pg_catalog.pg_roles r
     WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
       AND r.rolname OPERATOR(pg_catalog.=) pg_catalog.current_user();
    SELECT pg_catalog.count(*) INTO foreign_objects
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell';
    IF NOT coalesce(owner_is_us, false) OR foreign_objects OPERATOR(pg_catalog.>) 0 THEN
        RAISE EXCEPTION 'schema popsell already exists and was not created for this extension'
            USING ERRCODE = 'PS001',
                  HINT = 'Drop or rename the existing schema popsell, then run CREATE EXTENSION popsell again.';
    END IF;
END
$$;
