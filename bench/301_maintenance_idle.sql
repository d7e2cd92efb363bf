-- bench/301_maintenance_idle.sql: popsell.run_maintenance with nothing due
-- costs what its rules act on, not the table sizes (SPEC 7): a run on
-- 1,000,000 contacts and 10,000 ambassadors against the same run on
-- 10,000 contacts (100 ambassadors).  Prints
--   bench: maintenance_idle_1m ratio=X.XX   (target <= 2.00)
-- The sides alternate, five visits each; a visit is a warm-up run and
-- the median of 7 runs (each rolled back); the ratio is of the medians.
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
-- One visit of a side: a warm-up run, then the median of TRIALS runs
-- (each rolled back), kept in bench_301.
CREATE TEMP TABLE bench_301 (side text, ms double precision);
CREATE FUNCTION pg_temp.bench_time(side text, trials integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    total bigint;
    times double precision[] := '{}';
BEGIN
    FOR trial IN 0..trials LOOP
        BEGIN
            t0 := clock_timestamp();
            SELECT sum(r.affected) INTO total FROM popsell.run_maintenance('2030-01-01') r;
            IF trial > 0 THEN
                times := times || extract(epoch FROM clock_timestamp() - t0) * 1000;
            END IF;
            IF total <> 0 THEN RAISE EXCEPTION 'expected nothing due, got %', total; END IF;
            RAISE EXCEPTION USING ERRCODE = 'P0004';
        EXCEPTION WHEN assert_failure THEN NULL;
        END;
    END LOOP;
    INSERT INTO bench_301 SELECT side, percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(times) x;
END
$$;

-- The sides alternate (each visit refills the tables), five visits each.
SELECT pg_temp.bench_fill(10000, 100) \gset
VACUUM ANALYZE popsell.contacts, popsell.ambassadors, popsell.activity_log;
SELECT pg_temp.bench_time('10k', 7) \gset
SELECT pg_temp.bench_fill(1000000, 10000) \gset
VACUUM ANALYZE popsell.contacts, popsell.ambassadors, popsell.activity_log;
SELECT pg_temp.bench_time('1m', 7) \gset
SELECT pg_temp.bench_fill(10000, 100) \gset
VACUUM ANALYZE popsell.contacts, popsell.ambassadors, popsell.activity_log;
SELECT pg_temp.bench_time('10k', 7) \gset
SELECT pg_temp.bench_fill(1000000, 10000) \gset
VACUUM ANALYZE popsell.contacts, popsell.ambassadors, popsell.activity_log;
SELECT pg_temp.bench_time('1m', 7) \gset
SELECT pg_temp.bench_fill(10000, 100) \gset
VACUUM ANALYZE popsell.contacts, popsell.ambassadors, popsell.activity_log;
SELECT pg_temp.bench_time('10k', 7) \gset
SELECT pg_temp.bench_fill(1000000, 10000) \gset
VACUUM ANALYZE popsell.contacts, popsell.ambassadors, popsell.activity_log;
SELECT pg_temp.bench_time('1m', 7) \gset
SELECT pg_temp.bench_fill(10000, 100) \gset
VACUUM ANALYZE popsell.contacts, popsell.ambassadors, popsell.activity_log;
SELECT pg_temp.bench_time('10k', 7) \gset
SELECT pg_temp.bench_fill(1000000, 10000) \gset
VACUUM ANALYZE popsell.contacts, popsell.ambassadors, popsell.activity_log;
SELECT pg_temp.bench_time('1m', 7) \gset
SELECT pg_temp.bench_fill(10000, 100) \gset
VACUUM ANALYZE popsell.contacts, popsell.ambassadors, popsell.activity_log;
SELECT pg_temp.bench_time('10k', 7) \gset
SELECT pg_temp.bench_fill(1000000, 10000) \gset
VACUUM ANALYZE popsell.contacts, popsell.ambassadors, popsell.activity_log;
SELECT pg_temp.bench_time('1m', 7) \gset
SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FILTER (WHERE side = '10k'))::numeric, 3) AS small_ms,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FILTER (WHERE side = '1m'))::numeric, 3) AS big_ms
  FROM bench_301 \gset
\echo maintenance_idle: 10k contacts :small_ms ms, 1M contacts :big_ms ms (medians of 5 alternated visits, each the median of 7 runs)
SELECT format('bench: maintenance_idle_1m ratio=%s', to_char(:big_ms / :small_ms, 'FM990.00')) AS result \gset
\echo :result
SET session_replication_role = replica;
DELETE FROM popsell.contacts;
DELETE FROM popsell.ambassadors;
DELETE FROM popsell.activity_log;
RESET session_replication_role;
