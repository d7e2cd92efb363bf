-- 404_compliance_report: popsell.compliance_report(at) on a known data
-- set.  Every figure of the report (each element marked data-figure="key")
-- is compared with a query of this test's own; a figure missing on either
-- side or with another value is listed (expected: none).  The document is
-- self-contained (no script, no external asset) and holds no personal data.
-- Dates are compared through the same `at`, never printed.

SET client_min_messages = warning;
DROP DATABASE IF EXISTS popsell_t404;
CREATE DATABASE popsell_t404;
\c popsell_t404
SET client_min_messages = warning;
CREATE EXTENSION popsell CASCADE;
RESET client_min_messages;
\set SHOW_CONTEXT never
SET timezone = 'UTC';
SET intervalstyle = 'postgres';
UPDATE popsell.settings SET bcrypt_cost = 4, brand_name = 'Brand <Test> & Co';

-- ------------------------------------------------------------------
-- The data set: two active ambassadors and one leaving, contacts from
-- several sources through the public functions, three maintenance runs,
-- rights requests of every kind, a bounce and a key rotation.
-- ------------------------------------------------------------------
INSERT INTO popsell.ambassadors (id, kind, status, terms_accepted_at, first_name, email, password_hash) VALUES
    (101, 'sales_rep', 'active', now(), 'Ambone', 'ambone@example.test', popsell._bcrypt('x', popsell._bcrypt_salt(4))),
    (102, 'customer',  'active', now(), 'Ambtwo', 'ambtwo@example.test', popsell._bcrypt('x', popsell._bcrypt_salt(4))),
    (103, 'customer',  'active', now(), 'Ambthree', 'ambthree@example.test', popsell._bcrypt('x', popsell._bcrypt_salt(4)));
SELECT popsell.unsubscribe_ambassador(103) IS NOT NULL AS leaving;
SELECT popsell.signup('newcomer@example.test', '{"first_name": "Newcomer"}', 'pw', true) > 0 AS signed_up;
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
SELECT 101 + g % 2, 'crm_manual', 'Personcrm' || g, 'personcrm' || g || '@example.test'
  FROM generate_series(1, 12) AS g;
CREATE TEMP TABLE crm AS SELECT substr(first_name, 10)::int AS g, id FROM popsell.contacts;
SELECT count(popsell.send_invitation(id)) AS invited FROM crm WHERE g <= 10;
SELECT count(popsell.accept_invitation(id)) AS accepted FROM crm WHERE g <= 4;
SELECT count(popsell.decline_invitation(id)) AS declined FROM crm WHERE g IN (5, 6);
SELECT popsell.opt_out((SELECT id FROM crm WHERE g = 1)), popsell.opt_out((SELECT id FROM crm WHERE g = 2), true);
SELECT count(*) AS blog_collected FROM (
    SELECT popsell.collect_contact(101, 'blog', jsonb_build_object('first_name', 'Personblog' || g,
                                   'email', 'personblog' || g || '@example.test'), true, true, g % 2 = 0)
      FROM generate_series(1, 6) AS g) x;
SELECT count(popsell.confirm_email(c.id, (SELECT o.payload->>'token' FROM popsell.outbox o WHERE o.contact_id = c.id AND o.kind = 'email_confirmation' ORDER BY o.id DESC LIMIT 1))) AS blog_confirmed
  FROM popsell.contacts c WHERE c.source = 'blog' AND c.first_name IN ('Personblog1', 'Personblog2', 'Personblog3');
SELECT count(*) AS orders FROM (
    SELECT popsell.collect_contact(102, 'order', jsonb_build_object('first_name', 'Personorder' || g,
                                   'email', 'personorder' || g || '@example.test'), NULL, g % 3 <> 0)
      FROM generate_series(1, 9) AS g) x;
SELECT popsell.email_callback('personorder1@example.test', 'hard_bounce') >= 0 AS bounced;
SELECT popsell.rotate_hash_key() > 1 AS rotated;
-- three runs of the retention job
SELECT sum(affected) >= 0 AS ran FROM popsell.run_maintenance(now());
SELECT sum(affected) >= 0 AS ran FROM popsell.run_maintenance(now() + interval '20 days');
SELECT sum(affected) >= 0 AS ran FROM popsell.run_maintenance(now() + interval '40 days');
-- rights requests; one was received 40 days before it was carried out
SELECT popsell.subject_access('personorder2@example.test') IS NOT NULL AS access;
SELECT popsell.subject_access('personorder3@example.test') IS NOT NULL AS access;
SELECT popsell.erase_subject('personorder4@example.test') IS NOT NULL AS erased;
SELECT popsell.restrict_subject('personorder5@example.test', true) IS NOT NULL AS restricted;
SELECT popsell.object_subject('personorder6@example.test') IS NOT NULL AS objected;
UPDATE popsell.rights_requests SET received_at = requested_at - interval '40 days'
 WHERE id = (SELECT min(id) FROM popsell.rights_requests);
UPDATE popsell.rights_requests SET received_at = requested_at - interval '3 days 12 hours'
 WHERE id = (SELECT max(id) FROM popsell.rights_requests);

-- ------------------------------------------------------------------
-- The report, as of a time after every event of the data set, and its
-- figures read back.
-- ------------------------------------------------------------------
SELECT now() + interval '60 days' AS at \gset
CREATE TEMP TABLE report AS SELECT popsell.compliance_report(:'at') AS html;
CREATE TEMP TABLE got AS
SELECT m[1] AS key,
       replace(replace(replace(replace(replace(m[2], '&lt;', '<'), '&gt;', '>'), '&quot;', '"'), '&#39;', ''''), '&amp;', '&') AS value
  FROM report, regexp_matches(html, 'data-figure="([^"]+)">([^<]*)<', 'g') AS m;
SELECT count(*) = count(DISTINCT key) AS keys_unique FROM got;

-- ------------------------------------------------------------------
-- The same figures, by this test's own queries.
-- ------------------------------------------------------------------
CREATE TEMP TABLE own (key text, value text);
CREATE FUNCTION pg_temp.rate(a bigint, b bigint) RETURNS text LANGUAGE sql AS
$$ SELECT CASE WHEN b = 0 THEN 'n/a' ELSE round(a * 100.0 / b, 1) || '%' END $$;
INSERT INTO own VALUES
    ('report.at', to_char(:'at'::timestamptz, 'YYYY-MM-DD HH24:MI "UTC"')),
    ('report.since', to_char(:'at'::timestamptz - interval '1 year', 'YYYY-MM-DD HH24:MI "UTC"'));

-- funnel: the ledger rows of the period, per source and measure
CREATE TEMP TABLE funnel AS
WITH ev AS (
    SELECT * FROM popsell.consent_events
     WHERE occurred_at > :'at'::timestamptz - interval '1 year' AND occurred_at <= :'at'::timestamptz),
measure(name, state) AS (VALUES ('invited', 'invitation_sent'), ('accepted', 'invitation_accepted'),
                               ('declined', 'invitation_declined'), ('no_answer', 'optout_no_response'),
                               ('opted_out', 'optout_email'), ('global_optout', 'global_optout'))
SELECT s.source::text AS source, m.name,
       (SELECT count(*) FROM ev WHERE ev.source = s.source AND ev.new_ambassador_optin::text = m.state
           AND ev.old_ambassador_optin IS NOT NULL AND ev.old_ambassador_optin <> ev.new_ambassador_optin) AS n
  FROM unnest(enum_range(NULL::popsell.contact_source)) AS s(source), measure m
UNION ALL
SELECT s.source::text, 'collected',
       (SELECT count(*) FROM popsell.contacts c WHERE c.source = s.source
           AND c.created_at > :'at'::timestamptz - interval '1 year' AND c.created_at <= :'at'::timestamptz)
     + (SELECT count(*) FROM ev WHERE ev.source = s.source AND ev.contact_tombstone_id IS NOT NULL
           AND num_nonnulls(ev.old_ambassador_optin, ev.old_brand_optin, ev.old_partners_optin, ev.old_email_status) = 0)
  FROM unnest(enum_range(NULL::popsell.contact_source)) AS s(source);
INSERT INTO funnel SELECT 'all', name, sum(n) FROM funnel GROUP BY name;
INSERT INTO own SELECT 'funnel.' || source || '.' || name, n::text FROM funnel;
INSERT INTO own
SELECT 'funnel.' || f.source || '.' || r.name,
       pg_temp.rate((SELECT n FROM funnel x WHERE x.source = f.source AND x.name = r.part),
                    (SELECT n FROM funnel x WHERE x.source = f.source AND x.name = r.whole))
  FROM (SELECT DISTINCT source FROM funnel) f,
       (VALUES ('accept_rate', 'accepted', 'invited'), ('decline_rate', 'declined', 'invited'),
               ('no_answer_rate', 'no_answer', 'invited'), ('optout_rate', 'opted_out', 'collected'),
               ('global_optout_rate', 'global_optout', 'collected')) AS r(name, part, whole);

-- retention outlook: what the rules themselves preview at each horizon
INSERT INTO own
SELECT 'outlook.' || p.rule || '.' || d, p.affected::text
  FROM unnest(ARRAY[30, 90, 365]) AS d,
       LATERAL popsell.maintenance_preview(:'at'::timestamptz + d * interval '1 day') AS p;

-- the last 30 runs
WITH last AS (SELECT DISTINCT run_id FROM popsell.maintenance_runs ORDER BY run_id DESC LIMIT 30),
runs AS (
    SELECT run_id, sum(affected) AS affected, count(*) FILTER (WHERE failed_sqlstate IS NOT NULL) AS failures,
           round(extract(epoch FROM max(finished_at) - min(started_at)) * 1000, 1) AS ms
      FROM popsell.maintenance_runs WHERE run_id IN (SELECT run_id FROM last) GROUP BY run_id)
INSERT INTO own
SELECT 'runs.' || run_id || '.' || k, v
  FROM runs, LATERAL (VALUES ('run', run_id::text), ('ms', ms::text), ('affected', affected::text),
                             ('failures', failures::text)) AS x(k, v)
UNION ALL
SELECT 'runs.count', count(*)::text FROM runs;

-- rights requests per month of the 12 months ending with at's month
WITH months AS (
    SELECT generate_series(date_trunc('month', :'at'::timestamptz) - interval '11 months',
                           date_trunc('month', :'at'::timestamptz), interval '1 month') AS mo),
kinds(k) AS (VALUES ('access'), ('erasure'), ('restriction'), ('restriction_lifted'), ('objection'))
INSERT INTO own
SELECT 'rights.' || to_char(mo, 'YYYY-MM') || '.' || k,
       (SELECT count(*) FROM popsell.rights_requests r
         WHERE r.request = kinds.k AND r.requested_at >= mo AND r.requested_at < mo + interval '1 month'
           AND r.requested_at <= :'at'::timestamptz)::text
  FROM months, kinds;
WITH r AS (SELECT * FROM popsell.rights_requests
            WHERE requested_at > date_trunc('month', :'at'::timestamptz) - interval '11 months'
              AND requested_at <= :'at'::timestamptz)
INSERT INTO own VALUES
    ('rights.total', (SELECT count(*) FROM r)::text),
    ('rights.longest_days', (SELECT coalesce(round(max(extract(epoch FROM requested_at - coalesce(received_at, requested_at))) / 86400, 1), 0) FROM r)::text),
    ('rights.late', (SELECT count(*) FROM r WHERE requested_at > received_at + interval '1 month')::text);

-- blacklist, tombstones, keys
INSERT INTO own
SELECT 'blacklist.' || b, (SELECT count(*) FROM popsell.blacklist x WHERE x.reason = b)::text
  FROM unnest(enum_range(NULL::popsell.blacklist_reason)) AS b;
INSERT INTO own
SELECT 'tombstones.contact.' || reason || sfx, v
  FROM (SELECT reason, count(*) AS n,
               count(*) FILTER (WHERE deleted_at > :'at'::timestamptz - interval '1 year' AND deleted_at <= :'at'::timestamptz) AS recent
          FROM popsell.contact_tombstones GROUP BY reason) t,
       LATERAL (VALUES ('', n::text), ('.recent', recent::text)) AS x(sfx, v)
UNION ALL
SELECT 'tombstones.ambassador.' || reason || sfx, v
  FROM (SELECT reason, count(*) AS n,
               count(*) FILTER (WHERE deleted_at > :'at'::timestamptz - interval '1 year' AND deleted_at <= :'at'::timestamptz) AS recent
          FROM popsell.ambassador_tombstones GROUP BY reason) t,
       LATERAL (VALUES ('', n::text), ('.recent', recent::text)) AS x(sfx, v);
INSERT INTO own VALUES
    ('keys.count', (SELECT count(*) FROM popsell.hash_keys)::text),
    ('keys.rotations', (SELECT count(*) - 1 FROM popsell.hash_keys)::text),
    ('keys.latest', (SELECT to_char(max(created_at), 'YYYY-MM-DD') FROM popsell.hash_keys));

-- records of processing
INSERT INTO own VALUES
    ('ropa.ambassadors', (SELECT count(*) FROM popsell.ambassadors)::text),
    ('ropa.ambassadors_active', (SELECT count(*) FROM popsell.ambassadors WHERE status = 'active')::text),
    ('ropa.ambassadors_incomplete', (SELECT count(*) FROM popsell.ambassadors WHERE status = 'signup_incomplete')::text),
    ('ropa.ambassadors_leaving', (SELECT count(*) FROM popsell.ambassadors WHERE status = 'leaving')::text),
    ('ropa.contacts', (SELECT count(*) FROM popsell.contacts)::text),
    ('ropa.contacts_restricted', (SELECT count(*) FROM popsell.contacts WHERE restricted)::text),
    ('ropa.contacts_brand_optin', (SELECT count(*) FROM popsell.contacts WHERE brand_optin <> 'no_optin')::text),
    ('ropa.contacts_partners_optin', (SELECT count(*) FROM popsell.contacts WHERE partners_optin)::text);
INSERT INTO own
SELECT 'settings.' || k, v
  FROM popsell.settings s,
       LATERAL (VALUES ('ambassador_inactivity', s.ambassador_inactivity::text),
                       ('inactivity_warnings', s.inactivity_warnings::text),
                       ('inactivity_warning_interval', s.inactivity_warning_interval::text),
                       ('deletion_grace', s.deletion_grace::text),
                       ('signup_confirmation_window', s.signup_confirmation_window::text),
                       ('new_contact_invitation_window', s.new_contact_invitation_window::text),
                       ('invitation_response_window', s.invitation_response_window::text),
                       ('email_confirmation_window', coalesce(s.email_confirmation_window, s.invitation_response_window)::text),
                       ('optout_retention', s.optout_retention::text),
                       ('contact_inactivity', s.contact_inactivity::text),
                       ('log_retention', s.log_retention::text),
                       ('suspension_max', s.suspension_max::text),
                       ('required_ambassador_fields', coalesce(nullif(array_to_string(s.required_ambassador_fields, ', '), ''), 'none')),
                       ('community_name_format', s.community_name_format)) AS x(k, v);

-- ------------------------------------------------------------------
-- Every figure matches (expected: no rows), and how many were compared.
-- ------------------------------------------------------------------
SELECT coalesce(g.key, o.key) AS key, g.value AS in_report, o.value AS own_query
  FROM got g FULL JOIN own o ON o.key = g.key
 WHERE g.value IS DISTINCT FROM o.value
 ORDER BY 1;
-- the comparison can fail: one figure off by one is one difference
SELECT count(*) AS tampered_differences
  FROM (SELECT key, CASE WHEN key = 'funnel.all.invited' THEN (value::int + 1)::text ELSE value END AS value
          FROM got) g
  FULL JOIN own o ON o.key = g.key
 WHERE g.value IS DISTINCT FROM o.value;
SELECT split_part(key, '.', 1) AS section, count(*) > 0 AS compared,
       count(*) FILTER (WHERE value NOT IN ('0', 'n/a')) > 0 AS some_not_zero
  FROM got GROUP BY 1 ORDER BY 1;
-- the data set exercises the funnel (these counts are the data set's)
SELECT name, n FROM funnel WHERE source = 'all' ORDER BY name;

-- ------------------------------------------------------------------
-- Self-contained, no personal data.
-- ------------------------------------------------------------------
SELECT html LIKE '<!DOCTYPE html>%' AS doctype,
       html ~* '<script|<link|<img|<iframe|<object|@import|url\(|src=|href=|javascript:' AS external_or_script,
       (SELECT count(*) FROM regexp_matches(html, 'https?://', 'g')) AS urls,
       (SELECT count(*) FROM regexp_matches(html, 'https?://www\.w3\.org/2000/svg', 'g')) AS svg_namespaces,
       (SELECT count(*) FROM regexp_matches(html, '<svg', 'g')) AS charts,
       position('Brand &lt;Test&gt; &amp; Co' IN html) > 0 AS brand_name_escaped
  FROM report;
-- no email, name or hash of anyone in the data set appears
SELECT count(*) AS personal_values_found
  FROM report,
       (SELECT email AS v FROM popsell.contacts UNION ALL SELECT first_name FROM popsell.contacts
        UNION ALL SELECT email FROM popsell.ambassadors UNION ALL SELECT first_name FROM popsell.ambassadors
        UNION ALL SELECT 'personorder4' UNION ALL SELECT 'example.test'
        UNION ALL SELECT encode(email_hash, 'hex') FROM popsell.blacklist) p
 WHERE p.v IS NOT NULL AND position(lower(p.v) IN lower(html)) > 0;
-- what the data set did to the ambassadors (deterministic)
SELECT status, count(*) FROM popsell.ambassadors GROUP BY 1 ORDER BY 1;

-- Who may read it: the brand, BI, vendor staff; not ambassadors or apps.
SELECT length(html) AS report_length FROM report \gset
SET ROLE popsell_brand;
SELECT length(popsell.compliance_report(:'at')) = :report_length AS brand_reads_same;
SET ROLE popsell_brand_bi;
SELECT length(popsell.compliance_report(:'at')) > 0 AS bi_reads;
SET ROLE popsell_account_team;
SELECT length(popsell.compliance_report(:'at')) > 0 AS account_team_reads;
RESET ROLE;
SET ROLE popsell_ambassador;
SELECT popsell.compliance_report(:'at');
RESET ROLE;
SET ROLE popsell_app;
SELECT popsell.compliance_report(:'at');
RESET ROLE;
SELECT popsell.compliance_report(NULL);
SELECT popsell.compliance_report('infinity');
SELECT popsell.compliance_report('-infinity');
SELECT popsell.compliance_report('294276-06-01 00:00+00');
SELECT popsell.compliance_report('4714-11-24 00:00+00 BC');
-- a caller who turned row security off still gets the report
SET ROLE popsell_account_team;
SET row_security = off;
SELECT length(popsell.compliance_report(:'at')) > 0 AS reads_with_row_security_off;
RESET row_security;
RESET ROLE;
