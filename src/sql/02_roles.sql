-- ===================================================================
-- Roles (SPEC section 2).  Roles are cluster-wide: a second brand database
-- in the same cluster reuses them.  A role that already exists is reused
-- only if it cannot bypass row security.
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
