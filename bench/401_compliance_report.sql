-- bench/401_compliance_report.sql: popsell.compliance_report() on
-- 1,000,000 contacts (and as many consent ledger rows, 10,000 ambassadors,
-- 60 maintenance runs, 1,000 rights requests) against its baseline, one
-- SELECT count(*) over popsell.contacts plus one over
-- popsell.consent_events, measured side by side (best of 5 each).  Prints
--   bench: compliance_report_1m ratio=X.XX   (target <= 5.00)
-- The report must cost a few scans, not a query per contact or per day.
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
SET session_replication_role = replica;
INSERT INTO popsell.ambassadors (id, kind, status, email, password_hash, terms_accepted_at, created_at, last_login_at)
SELECT i, 'customer', 'active', 'bench401-amb' || i || '@example.test', '$2a$04$' || repeat('a', 53),
       '2028-01-01', '2028-01-01', timestamptz '2029-06-01' + (i % 200) * interval '1 day'
  FROM generate_series(1, 10000) i;
-- Contacts of every source and opt-in state, collected over two years.
INSERT INTO popsell.contacts (id, ambassador_id, source, first_name, email, email_status,
                              ambassador_optin, ambassador_optin_at, brand_optin, brand_optin_at,
                              partners_optin, invitation_sent_at, email_confirmed_at, created_at,
                              last_activity_at)
SELECT i, 1 + i % 10000,
       (enum_range(NULL::popsell.contact_source))[1 + i % 10],
       'First' || i, 'bench401-c' || i || '@example.test', 'ok',
       (ARRAY['new', 'invitation_sent', 'invitation_accepted', 'invitation_declined', 'optout_email',
              'optout_no_response', 'optin_order', 'optin_blog_verified'])[1 + (i / 10) % 8]::popsell.ambassador_optin,
       timestamptz '2028-01-01' + (i % 730) * interval '1 day',
       (CASE WHEN i % 3 = 0 THEN 'optin_brand_database' ELSE 'no_optin' END)::popsell.brand_optin,
       timestamptz '2028-01-01' + (i % 730) * interval '1 day',
       i % 50 = 0,
       CASE WHEN (i / 10) % 8 BETWEEN 1 AND 5 THEN timestamptz '2028-01-01' + (i % 730) * interval '1 day' END,
       timestamptz '2028-01-01' + (i % 730) * interval '1 day',
       timestamptz '2028-01-01' + (i % 730) * interval '1 day',
       CASE WHEN i % 4 = 0 THEN timestamptz '2029-06-01' + (i % 180) * interval '1 day' END
  FROM generate_series(1, :rows) i;
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

CREATE FUNCTION pg_temp.best(q text, trials integer) RETURNS double precision
LANGUAGE plpgsql AS $$
DECLARE
    best double precision := 'Infinity';
    t0 timestamptz;
    sink text;
BEGIN
    FOR trial IN 1..trials LOOP
        t0 := clock_timestamp();
        EXECUTE q INTO sink;
        best := least(best, extract(epoch FROM clock_timestamp() - t0) * 1000);
    END LOOP;
    RETURN best;
END
$$;
-- alternate the two sides so caching favours neither
SELECT pg_temp.best($$SELECT (SELECT count(*) FROM popsell.contacts) + (SELECT count(*) FROM popsell.consent_events)$$, 1),
       pg_temp.best($$SELECT length(popsell.compliance_report('2030-01-01'))$$, 1) \gset
SELECT pg_temp.best($$SELECT (SELECT count(*) FROM popsell.contacts) + (SELECT count(*) FROM popsell.consent_events)$$, :reps) AS base_ms,
       pg_temp.best($$SELECT length(popsell.compliance_report('2030-01-01'))$$, :reps) AS report_ms \gset
\echo compliance_report: two count(*) :base_ms ms, report :report_ms ms
SELECT format('bench: compliance_report_1m ratio=%s', to_char(:report_ms / :base_ms, 'FM990.00')) AS result \gset
\echo :result
