-- 804_install_trust: CREATE EXTENSION refuses a pre-existing role it would
-- trust and cannot vouch for (SPEC S12): popsell_owner that can log in or
-- has members, any popsell role that is a superuser or bypasses row
-- security.  Each attempt changes the cluster-wide role inside a
-- transaction that is rolled back, so other databases never see it.
\set regdb :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS popsell_t804;
CREATE DATABASE popsell_t804;
\c popsell_t804
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.install_after(change text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE change;
    CREATE EXTENSION popsell CASCADE;
    RAISE EXCEPTION 'installed' USING ERRCODE = 'P0001';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ' ' || SQLERRM;
END $$;
BEGIN;
SELECT pg_temp.install_after('ALTER ROLE popsell_owner LOGIN') AS owner_can_log_in;
ROLLBACK;
BEGIN;
CREATE ROLE popsell_t804_intruder NOLOGIN;
SELECT pg_temp.install_after('GRANT popsell_owner TO popsell_t804_intruder') AS owner_has_a_member;
ROLLBACK;
BEGIN;
SELECT pg_temp.install_after('ALTER ROLE popsell_brand BYPASSRLS') AS brand_bypasses_rls;
ROLLBACK;
BEGIN;
SELECT pg_temp.install_after('ALTER ROLE popsell_app SUPERUSER') AS app_is_superuser;
ROLLBACK;
-- A schema popsell_internal planted beforehand (where popsell puts the
-- functions its indexes call) is never reused.
BEGIN;
CREATE ROLE popsell_t804_planter NOLOGIN;
SELECT pg_temp.install_after('CREATE SCHEMA popsell_internal AUTHORIZATION popsell_t804_planter') AS internal_schema_planted;
ROLLBACK;
-- Untouched roles install (the statement above rolled everything back).
SELECT pg_temp.install_after('SELECT 1') AS untouched;
\c :regdb
SET client_min_messages = warning;
DROP DATABASE popsell_t804;
