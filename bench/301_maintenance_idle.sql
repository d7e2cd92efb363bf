-- bench/301_maintenance_idle.sql: popsell.run_maintenance with nothing due
-- costs what its rules act on, not the table sizes (SPEC 7): a run on
-- 1,000,000 contacts and 10,000 ambassadors against the same run on
-- 10,000 contacts (100 ambassadors).  Prints
--   bench: maintenance_idle_1m ratio=X.XX   (target <= 2.00)
-- Each side: best of 7 runs (each rolled back).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.bench_fill(n_contacts integer, n_ambassadors integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    SET LOCAL session_replication_role = replica;
    DELETE FROM popsell.contacts;
    DELETE FROM popsell.ambassadors;
    DELETE FROM popsell.activity_log;
    DELETE FROM popsell.maintenance_runs;
    INSERT INTO popsell.ambassadors (id, kind, status, email, terms_accepted_at, created_at, last_login_at)
    SELECT i, 'customer', 'active', 'bench301-amb' || i || '@example.test', '2029-01-01', '2029-01-01', '2029-12-01'
      FROM generate_series(1, n_ambassadors) i;
    -- Nothing due on 2030-01-01 under default settings: a mix of states,
    -- all recent.
    INSERT INTO popsell.contacts (id, ambassador_id, source, first_name, email, email_status,
                                  ambassador_optin, ambassador_optin_at, brand_optin, brand_optin_at,
                                  invitation_sent_at, email_confirmed_at, created_at, last_activity_at)
    SELECT i, 1 + i % n_ambassadors,
           (CASE i % 4 WHEN 3 THEN 'blog' ELSE 'crm_manual' END)::popsell.contact_source,
           'First' || i, 'bench301-c' || i || '@example.test', 'ok',
           (CASE i % 4 WHEN 0 THEN 'new' WHEN 1 THEN 'invitation_sent' WHEN 2 THEN 'optout_email'
                       ELSE 'optin_blog_verified' END)::popsell.ambassador_optin,
           timestamptz '2029-12-28', 'no_optin', '2029-12-28',
           CASE WHEN i % 4 = 1 THEN timestamptz '2029-12-28' END,
           CASE WHEN i % 4 = 3 THEN timestamptz '2029-12-28' END,
           '2029-12-28', '2029-12-28'
      FROM generate_series(1, n_contacts) i;
    INSERT INTO popsell.activity_log (ambassador_id, kind, created_at)
    SELECT 1 + i % n_ambassadors, 'login', timestamptz '2029-12-01' FROM generate_series(1, n_ambassadors * 10) i;
END
$$;
CREATE FUNCTION pg_temp.bench_time(trials integer) RETURNS double precision
LANGUAGE plpgsql AS $$
DECLARE
    best double precision := 'Infinity';
    t0 timestamptz;
    total bigint;
BEGIN
    FOR trial IN 1..trials LOOP
        BEGIN
            t0 := clock_timestamp();
            SELECT sum(r.affected) INTO total FROM popsell.run_maintenance('2030-01-01') r;
            best := least(best, extract(epoch FROM clock_timestamp() - t0) * 1000);
            IF total <> 0 THEN RAISE EXCEPTION 'expected nothing due, got %', total; END IF;
            RAISE EXCEPTION USING ERRCODE = 'P0004';
        EXCEPTION WHEN assert_failure THEN NULL;
        END;
    END LOOP;
    RETURN best;
END
$$;

SELECT pg_temp.bench_fill(10000, 100) \gset
ANALYZE popsell.contacts; ANALYZE popsell.ambassadors; ANALYZE popsell.activity_log;
SELECT pg_temp.bench_time(7) AS small_ms \gset
SELECT pg_temp.bench_fill(1000000, 10000) \gset
ANALYZE popsell.contacts; ANALYZE popsell.ambassadors; ANALYZE popsell.activity_log;
SELECT pg_temp.bench_time(7) AS big_ms \gset
\echo maintenance_idle: 10k contacts :small_ms ms, 1M contacts :big_ms ms
SELECT format('bench: maintenance_idle_1m ratio=%s', to_char(:big_ms / :small_ms, 'FM990.00')) AS result \gset
\echo :result
SET session_replication_role = replica;
DELETE FROM popsell.contacts;
DELETE FROM popsell.ambassadors;
DELETE FROM popsell.activity_log;
RESET session_replication_role;
