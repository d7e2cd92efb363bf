-- popsell upgrade from 1.1 to 2.0 (contract version 2).  Built by make:
-- this file, then src/sql/99_finalize.sql (ownership, privileges, row
-- security and pg_dump registration of every object, idempotent).  A
-- fresh 2.0 and 1.0 -> 1.1 -> 2.0 give the same catalog
-- (sql/801_upgrade.sql checks it).

\echo Use "ALTER EXTENSION popsell UPDATE TO '2.0'" to load this file. \quit


-- -------------------------------------------------------------------
-- Real clients (issue 15): identity per transaction, uninstall and
-- re-install, the outbox backlog, bulk loading.
-- -------------------------------------------------------------------

-- Identity per transaction: a parallel worker cannot tell a fresh
-- popsell.ambassador_id from a stale one, so the leader evaluates it.
ALTER FUNCTION popsell.current_ambassador_id() PARALLEL RESTRICTED;
COMMENT ON FUNCTION popsell.current_ambassador_id() IS
    'The active ambassador the current transaction acts as: by login_role, else by popsell.ambassador_id set by a trusted app in this transaction (SET LOCAL or set_config(..., true)); NULL for nobody.';

CREATE FUNCTION popsell._as_of() RETURNS timestamptz
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'popsell_as_of';
COMMENT ON FUNCTION popsell._as_of() IS
    'Internal: the time popsell.as_of names when it was set in the current transaction (run_maintenance), else NULL.';

CREATE OR REPLACE FUNCTION popsell._erasure_now()
    RETURNS timestamptz
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN coalesce(popsell._as_of(),
                    pg_catalog.now());

CREATE OR REPLACE FUNCTION popsell._lifecycle_now() RETURNS timestamptz
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN coalesce(popsell._as_of(),
                    pg_catalog.now());
-- What DROP EXTENSION popsell does first: remove the pg_cron job of this
-- database when pg_cron lives here; else, when the job role has been
-- running popsell.run_maintenance here, say where to remove it.
CREATE FUNCTION popsell._before_drop() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
    hint text;
BEGIN
    IF current_setting('cron.database_name', true) IS NULL THEN
        RETURN;                                  -- pg_cron is not loaded: no job anywhere
    END IF;
    BEGIN
        n := popsell.unschedule_jobs();
        IF n OPERATOR(pg_catalog.>) 0 THEN
            RAISE NOTICE 'popsell: removed the pg_cron job % of database %', popsell._cron_job_name(), current_database();
        END IF;
    EXCEPTION WHEN SQLSTATE 'PS500' THEN
        -- Say so when a scheduler has been running the job here (runs
        -- recorded by popsell_maintenance, the role pg_cron jobs run as).
        IF NOT EXISTS (SELECT 1 FROM popsell.maintenance_runs r
                        WHERE r.run_by OPERATOR(pg_catalog.=) 'popsell_maintenance') THEN
            RETURN;
        END IF;
        GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
        RAISE WARNING 'popsell: pg_cron lives in another database; if it runs popsell''s job for database %, remove it there', current_database()
            USING HINT = hint;
    END;
END
$$;
COMMENT ON FUNCTION popsell._before_drop() IS
    'Internal: run by the event trigger popsell_drop_guard when DROP EXTENSION popsell starts; removes this database''s pg_cron job (or says where to).';

CREATE FUNCTION popsell._drop_guard() RETURNS event_trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'popsell_drop_guard';
COMMENT ON FUNCTION popsell._drop_guard() IS
    'Internal: event trigger function; when a statement drops the extension popsell, calls popsell._before_drop().';

CREATE EVENT TRIGGER popsell_drop_guard ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA')
    EXECUTE FUNCTION popsell._drop_guard();
-- The mail worker's health in one query: unsent outbox rows per kind and
-- the oldest one's age.  Counts only (no contact, no payload); the
-- owner's rights read the outbox, so the job role needs no access to it.
CREATE VIEW popsell.outbox_backlog WITH (security_barrier = true) AS
SELECT k.kind,
       coalesce(b.unsent, 0) AS unsent,
       b.oldest_created_at,
       pg_catalog.now() OPERATOR(pg_catalog.-) b.oldest_created_at AS oldest_age
  FROM pg_catalog.unnest(pg_catalog.enum_range(NULL::popsell.outbox_kind)) AS k(kind)
  LEFT JOIN (SELECT o.kind, pg_catalog.count(*) AS unsent, pg_catalog.min(o.created_at) AS oldest_created_at
               FROM popsell.outbox o
              WHERE o.sent_at IS NULL
              GROUP BY o.kind) b ON b.kind OPERATOR(pg_catalog.=) k.kind;
COMMENT ON VIEW popsell.outbox_backlog IS
    'Unsent popsell.outbox rows per kind (every kind, 0 when none), the oldest one''s created_at and age: the mail worker''s health. Counts only, no personal data. Readable by popsell_technical, popsell_account_team and popsell_maintenance.';
GRANT SELECT ON popsell.outbox_backlog TO popsell_technical, popsell_account_team, popsell_maintenance;
-- ===================================================================
-- Ownership, privileges, row security baseline and pg_dump, for every
-- object of the schema.  One idempotent step that the install script and
-- every upgrade script end with, so an upgrade cannot forget a table's
-- FORCE ROW LEVEL SECURITY, its owner or its pg_dump registration.
-- Upgrade scripts get this file appended by the Makefile.
-- ===================================================================

CREATE OR REPLACE FUNCTION popsell._finalize_extension() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    -- pg_extension_config_dump only works inside CREATE/ALTER EXTENSION;
    -- say so before changing anything.
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                    WHERE rolname OPERATOR(pg_catalog.=) pg_catalog.current_user()
                      AND rolsuper) THEN
        RAISE EXCEPTION 'popsell._finalize_extension() runs only in popsell''s install and upgrade scripts'
            USING ERRCODE = 'PS001',
                  HINT = 'Run CREATE EXTENSION popsell or ALTER EXTENSION popsell UPDATE as a superuser.';
    END IF;

    -- Tables, sequences and views belong to the NOLOGIN popsell_owner, as
    -- do the SQL and PL/pgSQL functions (so SECURITY DEFINER ones run as
    -- it, not as a superuser).  C functions stay with the superuser.
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, c.relkind
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'v', 'm', 'p', 'S']::"char"[])
           AND c.relowner OPERATOR(pg_catalog.<>) 'popsell_owner'::pg_catalog.regrole
           -- a sequence owned by a column follows its table
           AND NOT (c.relkind OPERATOR(pg_catalog.=) 'S' AND EXISTS (
                    SELECT 1 FROM pg_catalog.pg_depend d
                     WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                       AND d.objid OPERATOR(pg_catalog.=) c.oid
                       AND d.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['a', 'i']::"char"[])))
    LOOP
        IF r.relkind OPERATOR(pg_catalog.=) 'S' THEN
            EXECUTE pg_catalog.format('ALTER SEQUENCE %s OWNER TO popsell_owner', r.obj);
        ELSE
            EXECUTE pg_catalog.format('ALTER TABLE %s OWNER TO popsell_owner', r.obj);
        END IF;
    END LOOP;
    FOR r IN
        SELECT p.oid::pg_catalog.regprocedure AS fn
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
          JOIN pg_catalog.pg_language l ON l.oid OPERATOR(pg_catalog.=) p.prolang
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND l.lanname OPERATOR(pg_catalog.<>) 'c'
           AND p.proowner OPERATOR(pg_catalog.<>) 'popsell_owner'::pg_catalog.regrole
    LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s OWNER TO popsell_owner', r.fn);
    END LOOP;

    -- Nothing of popsell is granted to PUBLIC; roles get what they need in
    -- the security section.  popsell_owner runs popsell's own functions.
    REVOKE ALL ON SCHEMA popsell FROM PUBLIC;
    REVOKE ALL ON ALL TABLES IN SCHEMA popsell FROM PUBLIC;
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA popsell FROM PUBLIC;
    REVOKE ALL ON ALL FUNCTIONS IN SCHEMA popsell FROM PUBLIC;
    GRANT USAGE ON SCHEMA popsell TO popsell_owner;
    GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA popsell TO popsell_owner;

    -- Types are usable by PUBLIC by default: only popsell's roles get them.
    FOR r IN
        SELECT t.oid::pg_catalog.regtype AS typ
          FROM pg_catalog.pg_type t
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.typnamespace
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND t.typtype OPERATOR(pg_catalog.=) 'e'
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON TYPE %s FROM PUBLIC', r.typ);
        EXECUTE pg_catalog.format('GRANT USAGE ON TYPE %s TO popsell_owner, popsell_ambassador, '
                                  'popsell_brand, popsell_brand_bi, popsell_account_team, '
                                  'popsell_technical, popsell_app, popsell_maintenance', r.typ);
    END LOOP;

    -- Row level security on every table, forced so the owner is subject to
    -- it too; popsell_owner (popsell's own functions and triggers) sees all
    -- rows, other roles get policies in the security section.
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, c.oid
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND c.relkind OPERATOR(pg_catalog.=) 'r'
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', r.obj);
        EXECUTE pg_catalog.format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', r.obj);
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy
                        WHERE polrelid OPERATOR(pg_catalog.=) r.oid
                          AND polname OPERATOR(pg_catalog.=) 'popsell_owner_all') THEN
            EXECUTE pg_catalog.format(
                'CREATE POLICY popsell_owner_all ON %s TO popsell_owner USING (true) WITH CHECK (true)', r.obj);
        END IF;
    END LOOP;

    -- pg_dump keeps what users filled (SPEC section 3, S9): every table
    -- and sequence, registered once.
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
          JOIN pg_catalog.pg_extension e ON e.extname OPERATOR(pg_catalog.=) 'popsell'
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'S']::"char"[])
           AND NOT c.oid OPERATOR(pg_catalog.=) ANY (coalesce(e.extconfig, '{}'::pg_catalog.oid[]))
    LOOP
        PERFORM pg_catalog.pg_extension_config_dump(r.obj, '');
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION popsell._finalize_extension() FROM PUBLIC;
COMMENT ON FUNCTION popsell._finalize_extension() IS
    'Install and upgrade step (superuser, inside CREATE/ALTER EXTENSION only): every popsell table, view, sequence and non-C function owned by popsell_owner, nothing granted to PUBLIC, row security enabled and forced with the owner policy, every table and sequence registered for pg_dump. Idempotent.';

SELECT popsell._finalize_extension();
