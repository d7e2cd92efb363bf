-- bench/401_compliance_report.sql: popsell.compliance_report() on
-- 1,000,000 contacts (and as many consent ledger rows, 10,000 ambassadors,
-- 60 maintenance runs, 1,000 rights requests) against its baseline, one
-- SELECT count(*) over popsell.contacts plus one over
-- popsell.consent_events, measured side by side: one warm-up of each, then
-- REPS pairs (default 5) run back to back, the side that goes first
-- alternating from pair to pair; the ratio is the median of the pairs'
-- ratios (a load spike slows both sides of a pair alike).  Prints
--   bench: compliance_report rows=N ratio=X.XX goal<=5.00 PASS|FAIL
-- The report must cost a few scans, not a query per contact or per day.
-- The tables are VACUUM ANALYZEd after loading, as autovacuum leaves a
-- real database: the visibility map is fresh, so index-only scans skip
-- the heap (the report does not VACUUM anything itself).
-- Smaller runs on a loaded machine: psql -v rows=200000 -v reps=5.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
\if :{?rows}
\else
\set rows 1000000
\endif
\if :{?reps}
\else
\set reps 5
\endif
SELECT set_config('bench401.reps', :'reps', false) IS NOT NULL AS reps_set \gset
SET session_replication_role = replica;
INSERT INTO popsell.ambassadors (id, kind, status, email, password_hash, terms_accepted_at, created_at, last_login_at)
SELECT i, 'customer', 'active', 'bench401-amb' || i || '@example.test', '$2a$04$' || repeat('a', 53),
       '2028-01-01', '2028-01-01', timestamptz '2029-06-01' + (i % 200) * interval '1 day'
  FROM generate_series(1, 10000) i;
-- Contacts of every source, in the opt-in states of the demo's brand
-- (tools/demo after its runs: 13% new, 11% opted out, ...), as a database
-- the retention job keeps looks on 2030-01-01: each state entered within
-- its rule's window, so nothing is due today and the outlook's horizons
-- catch what the next year brings.
CREATE TEMP TABLE mix (state text, lo int, hi int, window_days int);
INSERT INTO mix VALUES
    ('storage_only', 0, 178, 700), ('optin_order', 178, 342, 700), ('new', 342, 469, 29),
    ('optin_blog_verified', 469, 577, 700), ('optout_no_response', 577, 648, 360),
    ('optin_external_form', 648, 718, 700), ('invitation_accepted', 718, 777, 700),
    ('optin_brand_imported', 777, 830, 700), ('social_media_only', 830, 883, 700),
    ('optin_internal_form', 883, 925, 700), ('optin_order_popin', 925, 957, 700),
    ('optout_email', 957, 978, 360), ('invitation_declined', 978, 997, 360), ('global_optout', 997, 1000, 360);
INSERT INTO popsell.contacts (id, ambassador_id, source, first_name, email, email_status,
                              ambassador_optin, ambassador_optin_at, brand_optin, brand_optin_at,
                              partners_optin, invitation_sent_at, email_confirmed_at, created_at,
                              last_activity_at)
SELECT i, 1 + i % 10000, (enum_range(NULL::popsell.contact_source))[1 + i % 10],
       'First' || i, 'bench401-c' || i || '@example.test', 'ok',
       m.state::popsell.ambassador_optin,
       timestamptz '2030-01-01' - (1 + i % m.window_days) * interval '1 day',
       (CASE WHEN i % 3 = 0 THEN 'optin_brand_database' ELSE 'no_optin' END)::popsell.brand_optin,
       timestamptz '2030-01-01' - (1 + i % m.window_days) * interval '1 day',
       i % 50 = 0, NULL,
       timestamptz '2028-01-01' + (i % 730) * interval '1 day',
       timestamptz '2028-01-01' + (i % 730) * interval '1 day',
       CASE WHEN i % 4 = 0 THEN timestamptz '2029-06-01' + (i % 180) * interval '1 day' END
  FROM generate_series(1, :rows) i
  JOIN mix m ON (i::bigint * 7919) % 1000 >= m.lo AND (i::bigint * 7919) % 1000 < m.hi;
-- One ledger row per contact: its first row or an opt-in change.
INSERT INTO popsell.consent_events (contact_id, ambassador_id, changed, old_ambassador_optin, new_ambassador_optin,
                                    source, actor, path, actor_role, occurred_at)
SELECT c.id, c.ambassador_id, ARRAY['ambassador_optin'],
       CASE WHEN c.id % 2 = 0 THEN 'invitation_sent'::popsell.ambassador_optin END, c.ambassador_optin,
       c.source, 'system', 'bench', 'popsell_owner', c.ambassador_optin_at
  FROM popsell.contacts c;
INSERT INTO popsell.maintenance_runs (run_id, rule, affected, as_of, started_at, finished_at, run_by)
SELECT r, rule, r % 7, timestamptz '2029-11-01' + r * interval '1 day',
       timestamptz '2029-11-01' + r * interval '1 day', timestamptz '2029-11-01' + r * interval '1 day' + interval '50 ms',
       'popsell_maintenance'
  FROM generate_series(1, 60) r, popsell.maintenance_rules() AS rule;
INSERT INTO popsell.rights_requests (request, gdpr_article, requested_at, requested_by, acting_as, received_at)
SELECT (ARRAY['access', 'erasure', 'restriction', 'objection'])[1 + i % 4], 15,
       timestamptz '2029-01-01' + (i % 360) * interval '1 day', 'bench', 'popsell_technical',
       timestamptz '2029-01-01' + (i % 360) * interval '1 day' - (i % 20) * interval '1 day'
  FROM generate_series(1, 1000) i;
RESET session_replication_role;
VACUUM ANALYZE popsell.contacts;
VACUUM ANALYZE popsell.consent_events;
VACUUM ANALYZE popsell.ambassadors;
VACUUM ANALYZE popsell.maintenance_runs;

CREATE FUNCTION pg_temp.ms(q text) RETURNS double precision
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
    sink text;
BEGIN
    EXECUTE q INTO sink;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END
$$;
CREATE TEMP TABLE trial (i integer, base_ms double precision, report_ms double precision);
-- warm-up (caches, plans), not counted
SELECT pg_temp.ms($$SELECT (SELECT count(*) FROM popsell.contacts) + (SELECT count(*) FROM popsell.consent_events)$$),
       pg_temp.ms($$SELECT length(popsell.compliance_report('2030-01-01'))$$) \gset
DO $$
DECLARE
    b double precision;
    r double precision;
BEGIN
    FOR i IN 1 .. current_setting('bench401.reps')::integer LOOP
        IF i % 2 = 1 THEN
            b := pg_temp.ms($q$SELECT (SELECT count(*) FROM popsell.contacts) + (SELECT count(*) FROM popsell.consent_events)$q$);
            r := pg_temp.ms($q$SELECT length(popsell.compliance_report('2030-01-01'))$q$);
        ELSE
            r := pg_temp.ms($q$SELECT length(popsell.compliance_report('2030-01-01'))$q$);
            b := pg_temp.ms($q$SELECT (SELECT count(*) FROM popsell.contacts) + (SELECT count(*) FROM popsell.consent_events)$q$);
        END IF;
        INSERT INTO trial VALUES (i, b, r);
    END LOOP;
END
$$;
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY base_ms)::numeric, 1) AS base_ms,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY report_ms)::numeric, 1) AS report_ms,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY report_ms / base_ms) AS ratio,
       string_agg(to_char(report_ms / base_ms, 'FM990.00'), ' ' ORDER BY i) AS ratios
  FROM trial \gset
\echo compliance_report: :rows contacts, two count(*) :base_ms ms, report :report_ms ms (medians); pair ratios :ratios
SELECT format('bench: compliance_report rows=%s ratio=%s goal<=5.00 %s', :rows, to_char(:ratio, 'FM990.00'),
              CASE WHEN :ratio <= 5.0 THEN 'PASS' ELSE 'FAIL' END) AS result \gset
\echo :result
