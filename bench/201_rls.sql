-- bench/201_rls.sql: the cost of row level security (issue 4), side by
-- side with the owner's hand-written query in the same run.  Prints
-- "bench: NAME ratio=X.XX" (popsell role time / owner time, medians of
-- :reps alternating runs) and the plans' scan nodes.
--   rls_brand_count        popsell_brand counts visible contacts (1M rows)
--                          vs the superuser's count with the same WHERE  (<= 1.10)
--   rls_ambassador_list    an ambassador (app + SET LOCAL ROLE) lists its ~100
--                          contacts vs the hand-written query                (<= 1.10)
--   rls_ambassador_interactions  the same ambassador counts the interactions
--                          it sees (2 per contact; the policy's per-row helper)
--                          vs the hand-written EXISTS of the old policy        (<= 2.00)
--   rls_brand_email_lookup popsell_brand looks a (visible) contact up by email
--                          (popsell.brand_contacts_by_email: no index on the
--                          email column itself, SPEC S11) vs the superuser's
--                          indexed lookup by lookup key, without any
--                          visibility condition                              (<= 1.50)
-- Each statement is run with EXECUTE (parsed and planned every time), so
-- planning the policies is part of the cost.
-- Contacts are generated with triggers off (session_replication_role =
-- replica) with valid consent values for their source.
\set ON_ERROR_STOP on
\set QUIET on
\pset tuples_only on
\pset format unaligned
\if :{?rows}
\else
\set rows 1000000
\endif
\if :{?reps}
\else
\set reps 7
\endif
SET client_min_messages = warning;
SET max_parallel_workers_per_gather = 0;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'popsell_bench_app') THEN
        CREATE ROLE popsell_bench_app NOLOGIN;
    END IF;
END $$;
GRANT popsell_app TO popsell_bench_app;

SET session_replication_role = replica;
INSERT INTO popsell.ambassadors (kind, status, terms_accepted_at, first_name, last_name, email)
SELECT 'customer', 'active', now(), 'Amb' || g, 'Bench', 'rls-amb' || g || '@example.test'
  FROM generate_series(1, greatest(:rows / 100, 1)) g;
SELECT set_config('bench.amb_min', min(id)::text, false), set_config('bench.amb_n', count(*)::text, false)
  FROM popsell.ambassadors WHERE email LIKE 'rls-amb%' \g /dev/null
-- 60% crm_manual (new, no brand opt-in), 30% order (brand-visible), 10% blog
-- (half of them still pending confirmation); 1% restricted.
INSERT INTO popsell.contacts (ambassador_id, source, first_name, last_name, email, email_status,
                              ambassador_optin, ambassador_optin_at, brand_optin, brand_optin_at,
                              partners_optin, restricted, email_confirmed_at, created_at)
SELECT current_setting('bench.amb_min')::bigint + g % current_setting('bench.amb_n')::bigint,
       s.source, 'First' || g, 'Last' || g, 'c' || g || '@example.test',
       CASE WHEN s.source = 'blog' AND g % 20 < 10 THEN 'unverified' ELSE 'ok' END::popsell.email_status,
       CASE s.source WHEN 'crm_manual' THEN 'new'
                     WHEN 'order' THEN 'optin_order'
                     ELSE CASE WHEN g % 20 < 10 THEN 'optin_blog_pending' ELSE 'optin_blog_verified' END
       END::popsell.ambassador_optin, now(),
       CASE s.source WHEN 'crm_manual' THEN 'no_optin' WHEN 'order' THEN 'optin_brand_database'
                     ELSE 'optin_blog' END::popsell.brand_optin, now(),
       false, g % 100 = 7,
       CASE WHEN s.source = 'blog' AND g % 20 >= 10 THEN now() END, now()
  FROM generate_series(1, :rows) g
  CROSS JOIN LATERAL (SELECT CASE WHEN g % 10 < 6 THEN 'crm_manual'
                                  WHEN g % 10 < 9 THEN 'order'
                                  ELSE 'blog' END::popsell.contact_source AS source) s;
-- Two interactions per contact (opens and clicks of one publication).
INSERT INTO popsell.interactions (contact_id, channel, kind, occurred_at)
SELECT c.id, 'email', k, now() FROM popsell.contacts c,
       unnest(ARRAY['open', 'click']::popsell.interaction_kind[]) k;
RESET session_replication_role;
VACUUM ANALYZE popsell.interactions;
VACUUM ANALYZE popsell.contacts;
VACUUM ANALYZE popsell.ambassadors;
SELECT set_config('bench.amb', (current_setting('bench.amb_min')::bigint + 42)::text, false) \g /dev/null

CREATE TABLE pg_temp.timings (figure text, side text, secs float8);
-- Run q n times as who ('' = superuser, 'amb:N' = trusted app acting as
-- ambassador N through SET LOCAL ROLE popsell_ambassador); seconds taken.
CREATE FUNCTION pg_temp.timed(who text, q text, n integer) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    secs float8;
    r record;
BEGIN
    IF who LIKE 'amb:%' THEN
        PERFORM set_config('role', 'popsell_bench_app', true);
        PERFORM set_config('popsell.ambassador_id', substr(who, 5), true);
        PERFORM set_config('role', 'popsell_ambassador', true);
    ELSIF who <> '' THEN
        PERFORM set_config('role', who, true);
    END IF;
    t0 := clock_timestamp();
    FOR i IN 1 .. n LOOP
        FOR r IN EXECUTE q LOOP
        END LOOP;
    END LOOP;
    secs := extract(epoch FROM clock_timestamp() - t0);
    PERFORM set_config('role', 'none', true);
    PERFORM set_config('popsell.ambassador_id', '', true);
    RETURN secs;
END $$;
CREATE FUNCTION pg_temp.plan_of(who text, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    l text;
    o text := '';
BEGIN
    IF who LIKE 'amb:%' THEN
        PERFORM set_config('role', 'popsell_bench_app', true);
        PERFORM set_config('popsell.ambassador_id', substr(who, 5), true);
        PERFORM set_config('role', 'popsell_ambassador', true);
    ELSIF who <> '' THEN
        PERFORM set_config('role', who, true);
    END IF;
    FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
        IF l ~ 'Scan' THEN
            o := o || CASE WHEN o = '' THEN '' ELSE ' | ' END || btrim(l);
        END IF;
    END LOOP;
    PERFORM set_config('role', 'none', true);
    PERFORM set_config('popsell.ambassador_id', '', true);
    RETURN o;
END $$;

CREATE TABLE pg_temp.figures (figure text, who text, q text, baseline text, n integer, target float8);
INSERT INTO pg_temp.figures VALUES
  ('rls_brand_count', 'popsell_brand',
   'SELECT count(*) FROM popsell.contacts',
   $q$SELECT count(*) FROM popsell.contacts
       WHERE CASE WHEN restricted THEN false
                  WHEN email_confirmed_at IS NULL AND source IN ('blog', 'blog_internal_form', 'store_purchase') THEN false
                  ELSE brand_optin <> 'no_optin' OR partners_optin END$q$, 1, 1.10),
  ('rls_ambassador_list', 'amb:' || current_setting('bench.amb'),
   'SELECT id, first_name, last_name, ambassador_optin, brand_optin FROM popsell.contacts ORDER BY id',
   format($q$SELECT id, first_name, last_name, ambassador_optin, brand_optin FROM popsell.contacts
       WHERE ambassador_id = %s
         AND CASE WHEN email_confirmed_at IS NOT NULL THEN true
                  ELSE source NOT IN ('blog', 'blog_internal_form', 'store_purchase') END
       ORDER BY id$q$, current_setting('bench.amb')), 300, 1.10),
  ('rls_ambassador_interactions', 'amb:' || current_setting('bench.amb'),
   'SELECT count(*) FROM popsell.interactions',
   format($q$SELECT count(*) FROM popsell.interactions i
       WHERE EXISTS (SELECT 1 FROM popsell.contacts c
                      WHERE c.id = i.contact_id AND c.ambassador_id = %s
                        AND CASE WHEN c.email_confirmed_at IS NOT NULL THEN true
                                 ELSE c.source NOT IN ('blog', 'blog_internal_form', 'store_purchase') END)$q$,
          current_setting('bench.amb')), 3, 2.00),
  ('rls_brand_email_lookup', 'popsell_brand',
   $q$SELECT id, first_name, email FROM popsell.brand_contacts_by_email('c424246@example.test')$q$,
   $q$SELECT id, first_name, email FROM popsell.contacts
       WHERE popsell_internal._lookup_key(email) = popsell_internal._lookup_key('c424246@example.test')$q$, 1000, 1.50);

SELECT set_config('bench.reps', :'reps', false) \g /dev/null
-- Warm up, then alternate baseline and popsell runs.
SELECT pg_temp.timed(f.who, f.q, f.n) + pg_temp.timed('', f.baseline, f.n) FROM pg_temp.figures f \g /dev/null
DO $$
DECLARE
    f record;
BEGIN
    FOR i IN 1 .. current_setting('bench.reps')::int LOOP
        FOR f IN SELECT * FROM pg_temp.figures LOOP
            INSERT INTO pg_temp.timings VALUES (f.figure, 'baseline', pg_temp.timed('', f.baseline, f.n));
            INSERT INTO pg_temp.timings VALUES (f.figure, 'popsell', pg_temp.timed(f.who, f.q, f.n));
        END LOOP;
    END LOOP;
END $$;

SELECT 'plan: ' || f.figure || ' (' || f.who || '): ' || pg_temp.plan_of(f.who, f.q)
  FROM pg_temp.figures f ORDER BY f.figure;
SELECT format('bench: %s ratio=%s (popsell %s ms, baseline %s ms, median of %s, target <= %s)',
              t.figure, to_char(p.m / b.m, 'FM999990.00'), to_char(p.m * 1000, 'FM999990.000'),
              to_char(b.m * 1000, 'FM999990.000'), current_setting('bench.reps'), f.target)
  FROM pg_temp.figures f
  JOIN (SELECT figure, percentile_cont(0.5) WITHIN GROUP (ORDER BY secs) AS m FROM pg_temp.timings
         WHERE side = 'popsell' GROUP BY figure) p ON p.figure = f.figure
  JOIN (SELECT figure, percentile_cont(0.5) WITHIN GROUP (ORDER BY secs) AS m FROM pg_temp.timings
         WHERE side = 'baseline' GROUP BY figure) b ON b.figure = f.figure
  CROSS JOIN LATERAL (SELECT f.figure) t
 ORDER BY 1;
