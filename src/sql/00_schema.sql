-- popsell install script of the current version.  Built by make from
-- src/sql/*.sql, concatenated in name order, one file per concept (types,
-- roles, tables, the C engine, contact events, security, erasure,
-- retention, lifecycle, rights, restore); src/sql/99_finalize.sql comes
-- last and also ends every upgrade script.  Edit those files, never the
-- built script.

\echo Use "CREATE EXTENSION popsell CASCADE" to load this file. \quit

-- The control file names schema popsell; PostgreSQL creates it for us, but
-- reuses one that already exists.  A schema planted beforehand by another
-- role could hold look-alike objects (CVE-2022-2625), so refuse one that
-- holds anything or that a non-superuser owns or may create objects in.
-- An empty schema that only superusers control is what an earlier DROP
-- EXTENSION popsell leaves behind (a schema named in the control file
-- cannot be a member of the extension): reuse it, whichever superuser
-- installed before, and reset its privileges to its owner's (a grant
-- left on it must not outlive the drop).  A refusal names what the schema
-- holds (objects, default privileges of some role in it).
DO $$
DECLARE
    nsp oid;
    owner_name name;
    owner_super boolean;
    objects bigint;
    held text;
    foreign_creators bigint;
    g record;
BEGIN
    SELECT n.oid, r.rolname, r.rolsuper
      INTO nsp, owner_name, owner_super
      FROM pg_catalog.pg_namespace n
      JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
     WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell';
    IF nsp IS NULL THEN
        RETURN;
    END IF;
    SELECT pg_catalog.count(*),
           pg_catalog.string_agg(x.what, '; ' ORDER BY x.what) FILTER (WHERE x.n OPERATOR(pg_catalog.<=) 5)
      INTO objects, held
      FROM (SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) AS what,
                   pg_catalog.row_number() OVER (ORDER BY pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)) AS n
              FROM pg_catalog.pg_depend d
             WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
               AND d.refobjid OPERATOR(pg_catalog.=) nsp
               -- the extension being created already depends on its schema
               AND NOT (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
                        AND d.objid OPERATOR(pg_catalog.=) (SELECT e.oid FROM pg_catalog.pg_extension e
                                                             WHERE e.extname OPERATOR(pg_catalog.=) 'popsell'))
            UNION ALL
            -- default privileges IN SCHEMA popsell (ALTER DEFAULT PRIVILEGES)
            SELECT pg_catalog.pg_describe_object('pg_catalog.pg_default_acl'::pg_catalog.regclass, a.oid, 0), 0
              FROM pg_catalog.pg_default_acl a
             WHERE a.defaclnamespace OPERATOR(pg_catalog.=) nsp
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_default_acl'::pg_catalog.regclass
                                  AND d.objid OPERATOR(pg_catalog.=) a.oid
                                  AND d.refobjid OPERATOR(pg_catalog.=) nsp)) x;
    SELECT pg_catalog.count(*) INTO foreign_creators
      FROM pg_catalog.pg_namespace n,
           LATERAL pg_catalog.aclexplode(n.nspacl) a
      LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) a.grantee
     WHERE n.oid OPERATOR(pg_catalog.=) nsp
       AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
       AND NOT coalesce(r.rolsuper, false);
    IF objects OPERATOR(pg_catalog.>) 0 THEN
        RAISE EXCEPTION 'schema popsell already exists and holds % objects: %', objects,
                        held OPERATOR(pg_catalog.||) CASE WHEN objects OPERATOR(pg_catalog.>) 5 THEN '; ...' ELSE '' END
            USING ERRCODE = 'PS001',
                  DETAIL = 'popsell installs into its own schema and does not reuse one that holds objects.',
                  HINT = 'Rename the existing schema (ALTER SCHEMA popsell RENAME TO popsell_old) or drop it, then run CREATE EXTENSION popsell CASCADE again.';
    ELSIF NOT owner_super OR foreign_creators OPERATOR(pg_catalog.>) 0 THEN
        RAISE EXCEPTION 'schema popsell already exists and role % (not a superuser) owns it or may create objects in it',
                        CASE WHEN NOT owner_super THEN owner_name
                             ELSE (SELECT pg_catalog.string_agg(DISTINCT a.grantee::pg_catalog.regrole::pg_catalog.text, ', ')
                                     FROM pg_catalog.pg_namespace n, LATERAL pg_catalog.aclexplode(n.nspacl) a
                                    WHERE n.oid OPERATOR(pg_catalog.=) nsp
                                      AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE') END
            USING ERRCODE = 'PS001',
                  DETAIL = 'The schema is empty, but objects planted in it could be mistaken for popsell''s.',
                  HINT = 'If it is the empty schema left by an earlier DROP EXTENSION popsell, run DROP SCHEMA popsell; then CREATE EXTENSION popsell CASCADE again.';
    END IF;
    -- Reused: only its owner keeps privileges on it; the install grants
    -- popsell's roles theirs again.
    -- (a superuser revokes as the owner; CASCADE takes the grants others
    -- made from a grant option with it)
    FOR g IN
        SELECT DISTINCT a.grantee
          FROM pg_catalog.pg_namespace n, LATERAL pg_catalog.aclexplode(n.nspacl) a
         WHERE n.oid OPERATOR(pg_catalog.=) nsp
           AND a.grantee OPERATOR(pg_catalog.<>) n.nspowner
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON SCHEMA popsell FROM %s CASCADE',
                                  CASE WHEN g.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                                       ELSE g.grantee::pg_catalog.regrole::pg_catalog.text END);
    END LOOP;
END
$$;
