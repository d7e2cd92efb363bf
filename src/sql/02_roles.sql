-- ===================================================================
-- Roles (SPEC section 2).  Roles are cluster-wide: a second brand database
-- in the same cluster reuses them.  A role that already exists is reused
-- only if it cannot bypass row security, and popsell_owner only if nobody
-- can log in as it or become it (S12).
-- ===================================================================

DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT v.rolname, v.can_login
          FROM (VALUES ('popsell_owner', false),
                       ('popsell_ambassador', false),
                       ('popsell_brand', false),
                       ('popsell_brand_bi', false),
                       ('popsell_account_team', false),
                       ('popsell_technical', false),
                       ('popsell_app', false),
                       ('popsell_maintenance', true)) AS v(rolname, can_login)
    LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                    WHERE rolname OPERATOR(pg_catalog.=) r.rolname
                      AND (rolsuper OR rolbypassrls)) THEN
            RAISE EXCEPTION 'role % is a superuser or has BYPASSRLS', r.rolname
                USING ERRCODE = 'PS001',
                      DETAIL = 'popsell roles must be subject to row level security.',
                      HINT = pg_catalog.format('ALTER ROLE %I NOSUPERUSER NOBYPASSRLS, then retry.', r.rolname);
        END IF;
        -- (v2, S12) The owner reads the hashing keys and bypasses every
        -- policy but its own: a pre-existing one that can log in or that
        -- other roles can become is not one popsell can vouch for.
        IF r.rolname OPERATOR(pg_catalog.=) 'popsell_owner'
           AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles o
                        WHERE o.rolname OPERATOR(pg_catalog.=) 'popsell_owner'
                          AND (o.rolcanlogin
                               OR EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m
                                           WHERE m.roleid OPERATOR(pg_catalog.=) o.oid))) THEN
            RAISE EXCEPTION 'role popsell_owner already exists and can log in or has members'
                USING ERRCODE = 'PS001',
                      DETAIL = 'popsell_owner owns the hashing keys and every popsell table; nobody may log in as it or become it.',
                      HINT = 'ALTER ROLE popsell_owner NOLOGIN and REVOKE popsell_owner FROM each member (or drop the role), then retry.';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                        WHERE rolname OPERATOR(pg_catalog.=) r.rolname) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I %s NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS',
                                      r.rolname,
                                      CASE WHEN r.can_login THEN 'LOGIN' ELSE 'NOLOGIN' END);
        END IF;
    END LOOP;
END
$$;

COMMENT ON ROLE popsell_owner IS 'popsell: NOLOGIN owner of popsell''s tables and privileged functions.';
COMMENT ON ROLE popsell_ambassador IS 'popsell: the ambassador-facing application acting as one ambassador.';
COMMENT ON ROLE popsell_brand IS 'popsell: brand administrators, support agents and community managers.';
COMMENT ON ROLE popsell_brand_bi IS 'popsell: brand BI tools, read-only, through views.';
COMMENT ON ROLE popsell_account_team IS 'popsell: the vendor''s community managers and support agents (all data of the brand).';
COMMENT ON ROLE popsell_technical IS 'popsell: the vendor''s developers and administrators (all data).';
COMMENT ON ROLE popsell_app IS 'popsell: trusted application login roles acting on behalf of an ambassador or a contact.';
COMMENT ON ROLE popsell_maintenance IS 'popsell: non-superuser login role that scheduled jobs (pg_cron) run as.';
