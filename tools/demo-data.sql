-- tools/demo-data.sql: a synthetic brand for tools/demo.
--
-- 1,000 ambassadors and 100,000 contacts over all ten collection sources,
-- then consent journeys (invitations, answers, confirmations, opt-outs,
-- bounces, activity) through popsell's public interface only: plain INSERT
-- where the C triggers fill the opt-ins from the source, and the SPEC
-- section 5 functions, called set-based.  Names and emails are synthetic
-- ('Amb0042', 'contact012345@example.test'); nothing here is realistic
-- personal data.
--
-- tools/demo-cluster runs this file one step at a time: a line
-- "-- step: NAME" starts a step whose last query prints a one-line result,
-- "-- report: NAME" starts a step whose output is shown as tables.  A step
-- that fails is reported and the demo goes on with the next one.
-- History columns (created_at, last_login_at, *_optin_at) are given on
-- INSERT to place rows in the past; SPEC allows that to the owner (the
-- demo runs as the superuser).

-- step: ambassadors (1,000)
CREATE SCHEMA demo;
-- Stage labels for the before/after tables of the report.
CREATE TABLE demo.snapshot (stage int, stage_name text, dim text, key text, n bigint);
CREATE TABLE demo.runs (stage int, stage_name text, rule text, affected bigint);
INSERT INTO popsell.ambassadors
       (kind, status, terms_accepted_at, first_name, last_name, email, city,
        postal_code, country, preferred_language, birth_date, created_at, last_login_at)
SELECT CASE WHEN g % 10 < 7 THEN 'customer' WHEN g % 10 < 9 THEN 'sales_rep' ELSE 'employee' END::popsell.ambassador_kind,
       CASE WHEN g % 50 = 0 THEN 'signup_incomplete' ELSE 'active' END::popsell.ambassador_status,
       CASE WHEN g % 50 = 0 THEN NULL ELSE now() - (g % 700) * interval '1 day' END,
       'Amb' || lpad(g::text, 4, '0'),
       'Demo',
       'amb' || lpad(g::text, 4, '0') || '@example.test',
       (ARRAY['Lyon', 'Paris', 'Nantes', 'Lille', 'Bordeaux', 'Rennes', 'Nice', 'Dijon'])[1 + g % 8],
       lpad((10000 + (g * 97) % 85000)::text, 5, '0'),
       'FR', 'fr',
       date '1960-01-01' + (g * 37) % 15000,
       CASE WHEN g % 40 IN (1, 2) THEN now() - interval '3 years' - interval '30 days'
            ELSE now() - (700 + g % 500) * interval '1 day' END,
       CASE WHEN g % 40 = 1 THEN now() - interval '3 years' + interval '25 days'  -- warned soon
            WHEN g % 40 = 2 THEN NULL                                             -- never logged in
            WHEN g % 50 = 0 THEN NULL
            ELSE now() - (g % 90) * interval '1 day' END
  FROM generate_series(1, 1000) AS g;
-- Active ambassadors numbered 1..n, and those who may receive brand_sync
-- contacts (sales reps and employees).
CREATE TABLE demo.amb AS
SELECT row_number() OVER (ORDER BY id) AS n, id, kind
  FROM popsell.ambassadors WHERE status = 'active';
CREATE TABLE demo.rep AS
SELECT row_number() OVER (ORDER BY id) AS n, id
  FROM popsell.ambassadors WHERE status = 'active' AND kind IN ('sales_rep', 'employee');
SELECT count(*) || ' ambassadors, ' || count(*) FILTER (WHERE status = 'active') || ' active, '
       || count(*) FILTER (WHERE kind <> 'customer') || ' sales reps and employees'
  FROM popsell.ambassadors;

-- step: crm_manual: 20,000 by plain INSERT
-- One in ten was entered 45 days ago and never invited.
INSERT INTO popsell.contacts (ambassador_id, source, first_name, last_name, email, city,
                              postal_code, contact_type, created_at, ambassador_optin_at, brand_optin_at)
SELECT a.id, 'crm_manual', 'Contact' || lpad(g::text, 6, '0'), 'Demo',
       'contact' || lpad(g::text, 6, '0') || '@example.test',
       'Lyon', '69003',
       (ARRAY['hostess', 'customer', 'prospect'])[1 + g % 3]::popsell.contact_type,
       t.at, t.at, t.at
  FROM generate_series(1, 20000) AS g
  CROSS JOIN LATERAL (SELECT CASE WHEN g % 10 = 0 THEN now() - interval '45 days'
                                  ELSE now() - (g % 20) * interval '1 day' END AS at) t
  JOIN demo.amb a ON a.n = 1 + (g * 7) % (SELECT count(*) FROM demo.amb);
SELECT count(*) || ' contacts' FROM popsell.contacts WHERE source = 'crm_manual';

-- step: private_import: 10,000 by import_contacts()
SELECT sum(i.imported) || ' imported, ' || sum(i.skipped_blacklisted) || ' skipped (blacklisted), '
       || sum(i.skipped_duplicate) || ' skipped (duplicates)'
  FROM (SELECT a.id AS amb, jsonb_agg(jsonb_build_object(
                   'first_name', 'Contact' || lpad(g::text, 6, '0'),
                   'email', 'contact' || lpad(g::text, 6, '0') || '@example.test',
                   'city', 'Paris', 'postal_code', '75011')) AS list
          FROM generate_series(20001, 30000) AS g
          JOIN demo.amb a ON a.n = 1 + (g % 100)
         GROUP BY a.id) AS batch
  CROSS JOIN LATERAL popsell.import_contacts(batch.amb, batch.list) AS i;

-- step: social_network: 5,000 by plain INSERT
-- Alias and public photo only; one in five last active 4 years ago.
INSERT INTO popsell.contacts (ambassador_id, source, instagram_id, public_photo_url,
                              created_at, ambassador_optin_at, brand_optin_at)
SELECT a.id, 'social_network', 'ig_contact' || lpad(g::text, 6, '0'),
       'https://img.example.test/contact' || lpad(g::text, 6, '0') || '.jpg',
       t.at, t.at, t.at
  FROM generate_series(30001, 35000) AS g
  CROSS JOIN LATERAL (SELECT CASE WHEN g % 5 = 0 THEN now() - interval '4 years'
                                  ELSE now() - (g % 300) * interval '1 day' END AS at) t
  JOIN demo.amb a ON a.n = 1 + (g * 11) % (SELECT count(*) FROM demo.amb);
SELECT count(*) || ' contacts' FROM popsell.contacts WHERE source = 'social_network';

-- step: brand_sync: 8,000 by collect_contact()
SELECT count(popsell.collect_contact(r.id, 'brand_sync',
           jsonb_build_object('first_name', 'Contact' || lpad(g::text, 6, '0'),
                              'email', 'contact' || lpad(g::text, 6, '0') || '@example.test',
                              'customer_id', 'CUST' || g),
           brand_optin_checked => CASE g % 4 WHEN 0 THEN NULL WHEN 1 THEN false ELSE true END))
       || ' contacts'
  FROM generate_series(35001, 43000) AS g
  JOIN demo.rep r ON r.n = 1 + g % (SELECT count(*) FROM demo.rep);

-- step: blog: 10,000 by collect_contact()
SELECT count(popsell.collect_contact(a.id, 'blog',
           jsonb_build_object('first_name', 'Contact' || lpad(g::text, 6, '0'),
                              'email', 'contact' || lpad(g::text, 6, '0') || '@example.test'),
           ambassador_optin_checked => g % 10 < 7, brand_optin_checked => g % 10 < 5,
           partners_optin_checked => g % 10 = 0)) || ' contacts'
  FROM generate_series(43001, 53000) AS g
  JOIN demo.amb a ON a.n = 1 + (g * 13) % (SELECT count(*) FROM demo.amb);

-- step: blog_internal_form: 7,000 by collect_contact()
SELECT count(popsell.collect_contact(a.id, 'blog_internal_form',
           jsonb_build_object('first_name', 'Contact' || lpad(g::text, 6, '0'),
                              'email', 'contact' || lpad(g::text, 6, '0') || '@example.test'),
           ambassador_optin_checked => g % 10 < 6, brand_optin_checked => g % 10 < 4)) || ' contacts'
  FROM generate_series(53001, 60000) AS g
  JOIN demo.amb a ON a.n = 1 + (g * 17) % (SELECT count(*) FROM demo.amb);

-- step: order: 15,000 by collect_contact()
-- The first 1,000 are people an ambassador already entered by hand: the
-- same email, another ambassador, another row.
SELECT count(popsell.collect_contact(a.id, 'order',
           jsonb_build_object('first_name', 'Contact' || lpad(e::text, 6, '0'),
                              'email', 'contact' || lpad(e::text, 6, '0') || '@example.test',
                              'customer_id', 'CUST' || g),
           brand_optin_checked => g % 10 < 6)) || ' contacts'
  FROM generate_series(60001, 75000) AS g
  CROSS JOIN LATERAL (SELECT CASE WHEN g <= 61000 THEN g - 60000 ELSE g END AS e) x
  JOIN demo.amb a ON a.n = 1 + (g * 19) % (SELECT count(*) FROM demo.amb);

-- step: order_popin: 8,000 by collect_contact()
SELECT count(popsell.collect_contact(a.id, 'order_popin',
           jsonb_build_object('first_name', 'Contact' || lpad(g::text, 6, '0'),
                              'email', 'contact' || lpad(g::text, 6, '0') || '@example.test'),
           ambassador_optin_checked => g % 2 = 0, brand_optin_checked => g % 10 < 4)) || ' contacts'
  FROM generate_series(75001, 83000) AS g
  JOIN demo.amb a ON a.n = 1 + (g * 23) % (SELECT count(*) FROM demo.amb);

-- step: store_purchase: 7,000 by collect_contact()
SELECT count(popsell.collect_contact(a.id, 'store_purchase',
           jsonb_build_object('first_name', 'Contact' || lpad(g::text, 6, '0'),
                              'email', 'contact' || lpad(g::text, 6, '0') || '@example.test',
                              'city', 'Nantes', 'postal_code', '44000'),
           ambassador_optin_checked => g % 10 < 7, brand_optin_checked => g % 10 < 3)) || ' contacts'
  FROM generate_series(83001, 90000) AS g
  JOIN demo.amb a ON a.n = 1 + (g * 29) % (SELECT count(*) FROM demo.amb);

-- step: external_form: 10,000 by collect_contact()
SELECT count(popsell.collect_contact(a.id, 'external_form',
           jsonb_build_object('first_name', 'Contact' || lpad(g::text, 6, '0'),
                              'email', 'contact' || lpad(g::text, 6, '0') || '@example.test'),
           ambassador_optin_checked => g % 2 = 0, brand_optin_checked => g % 2 = 0,
           partners_optin_checked => g % 10 = 0)) || ' contacts'
  FROM generate_series(90001, 100000) AS g
  JOIN demo.amb a ON a.n = 1 + (g * 31) % (SELECT count(*) FROM demo.amb);

-- step: send_invitation() to 12,000 new contacts
WITH done AS MATERIALIZED (
    SELECT c.id, popsell.send_invitation(c.id)
      FROM popsell.contacts c
     WHERE c.ambassador_optin = 'new' AND c.email IS NOT NULL
       AND c.source IN ('crm_manual', 'private_import')
       AND c.created_at > now() - interval '30 days'
     ORDER BY c.id
     LIMIT 12000)
SELECT count(*) || ' invitations sent' FROM done;

-- step: accept_invitation() / decline_invitation()
WITH invited AS MATERIALIZED (
    SELECT id, row_number() OVER (ORDER BY id) AS k
      FROM popsell.contacts WHERE ambassador_optin = 'invitation_sent'),
accepted AS MATERIALIZED (
    SELECT id, popsell.accept_invitation(id) FROM invited WHERE k % 12 < 5 AND k <= 12000 LIMIT 5000),
declined AS MATERIALIZED (
    SELECT id, popsell.decline_invitation(id) FROM invited WHERE k % 12 IN (10, 11) LIMIT 1500)
SELECT (SELECT count(*) FROM accepted) || ' accepted, '
       || (SELECT count(*) FROM declined) || ' declined';

-- step: confirm_email() for 65% of pending contacts
WITH done AS MATERIALIZED (
    SELECT c.id, popsell.confirm_email(c.id, (SELECT o.payload->>'token' FROM popsell.outbox o
                                                WHERE o.contact_id = c.id AND o.kind = 'email_confirmation'
                                                ORDER BY o.id DESC LIMIT 1))
      FROM popsell.contacts c
     WHERE source IN ('blog', 'blog_internal_form', 'store_purchase')
       AND email_confirmed_at IS NULL AND id % 20 < 13)
SELECT count(*) || ' emails confirmed' FROM done;

-- step: opt_out() 1,500, opt_out(global) 200
WITH optedin AS MATERIALIZED (
    SELECT id, row_number() OVER (ORDER BY id) AS k
      FROM popsell.contacts
     WHERE ambassador_optin IN ('invitation_accepted', 'optin_order', 'optin_order_popin',
                                'optin_external_form', 'optin_blog_verified',
                                'optin_internal_form', 'optin_brand_imported')),
by_link AS MATERIALIZED (
    SELECT id, popsell.opt_out(id) FROM optedin WHERE k % 20 = 3 LIMIT 1500),
everywhere AS MATERIALIZED (
    SELECT id, popsell.opt_out(id, true) FROM optedin WHERE k % 20 = 7 LIMIT 200)
SELECT (SELECT count(*) FROM by_link) || ' opted out, '
       || (SELECT count(*) FROM everywhere) || ' opted out globally';

-- step: email_callback(): bounces, spam, blocks
WITH emails AS MATERIALIZED (
    SELECT DISTINCT email, id % 97 AS bucket
      FROM popsell.contacts
     WHERE email IS NOT NULL AND id % 97 IN (1, 2, 3, 4) AND email_status = 'ok'),
done AS MATERIALIZED (
    SELECT email, popsell.email_callback(email,
               (CASE bucket WHEN 1 THEN 'hard_bounce' WHEN 2 THEN 'soft_bounce'
                            WHEN 3 THEN 'spam' ELSE 'blocked' END)::popsell.email_status)
      FROM emails)
SELECT count(*) || ' callbacks' FROM done;

-- step: publications, record_interaction(), record_sale()
INSERT INTO popsell.publications (ambassador_id, comment)
SELECT a.id, 'Publication ' || g
  FROM generate_series(1, 2000) AS g
  JOIN demo.amb a ON a.n = 1 + g % (SELECT count(*) FROM demo.amb);
WITH targets AS MATERIALIZED (
    SELECT c.id, (SELECT p.id FROM popsell.publications p WHERE p.ambassador_id = c.ambassador_id LIMIT 1) AS pub,
           row_number() OVER (ORDER BY c.id) AS k
      FROM popsell.contacts c
     WHERE c.ambassador_optin IN ('invitation_accepted', 'optin_order', 'optin_external_form',
                                  'optin_blog_verified') AND c.email_status = 'ok'
     LIMIT 6000),
clicks AS MATERIALIZED (
    SELECT popsell.record_interaction(contact_id => id, publication_id => pub,
               kind => (CASE k % 3 WHEN 0 THEN 'open' WHEN 1 THEN 'click'
                                    ELSE 'like' END)::popsell.interaction_kind) AS i
      FROM targets),
sales AS MATERIALIZED (
    SELECT popsell.record_sale(contact_id => id, amount => 10 + k % 90,
                               products => '[{"sku": "SKU-1"}]', publication_id => pub) AS s
      FROM targets WHERE k % 6 = 0)
SELECT (SELECT count(*) FROM clicks) || ' interactions, ' || (SELECT count(*) FROM sales) || ' sales';

-- step: log_activity(), unsubscribe_ambassador() x10
WITH logins AS MATERIALIZED (
    SELECT popsell.log_activity(id, 'login', ('192.0.2.' || (id % 250 + 1))::inet, 'DemoAgent/1.0')
      FROM demo.amb WHERE n % 5 = 0),
leaving AS MATERIALIZED (
    SELECT popsell.unsubscribe_ambassador(id) FROM demo.amb WHERE n % 100 = 50)
SELECT (SELECT count(*) FROM logins) || ' logins logged, '
       || (SELECT count(*) FROM leaving) || ' ambassadors unsubscribed';

-- step: signups (20, 15 confirmed) and data-subject requests (60)
UPDATE popsell.settings SET brand_name = 'Demo brand';
-- New ambassadors sign up by form: each waits for its confirmation link;
-- the ones that never follow it are deleted by ambassador_unconfirmed.
CREATE TABLE demo.signups AS
SELECT g, popsell.signup('newamb' || lpad(g::text, 3, '0') || '@example.test',
                         jsonb_build_object('first_name', 'New' || g), 'demo password', true) AS id
  FROM generate_series(1, 20) AS g;
CREATE TABLE demo.confirmed AS
SELECT popsell.confirm_ambassador_email(o.payload ->> 'token') AS id
  FROM demo.signups su JOIN popsell.outbox o ON o.ambassador_id = su.id AND o.kind = 'email_confirmation'
 WHERE su.g <= 15;
-- Requests by email, as the account team carries them out; received_at
-- says when each reached the brand (the report's time to completion).
CREATE TABLE demo.requests AS
SELECT k, CASE WHEN k <= 30 THEN popsell.subject_access(email) IS NOT NULL
               WHEN k <= 45 THEN popsell.erase_subject(email) IS NOT NULL
               WHEN k <= 52 THEN popsell.restrict_subject(email, true) IS NOT NULL
               ELSE popsell.object_subject(email) IS NOT NULL END AS done
  FROM (SELECT row_number() OVER (ORDER BY id) AS k, email
          FROM popsell.contacts WHERE email IS NOT NULL AND id % 997 = 0 LIMIT 60) AS people
 ORDER BY k;
UPDATE popsell.rights_requests SET received_at = requested_at - (id % 20) * interval '1 day';
SELECT (SELECT count(*) FROM demo.signups) || ' signups, ' || (SELECT count(*) FROM demo.confirmed) || ' confirmed, '
       || (SELECT count(*) FROM popsell.rights_requests) || ' rights requests';

-- step: snapshot before maintenance
INSERT INTO demo.snapshot
SELECT 0, 'loaded', 'ambassador_optin', ambassador_optin::text, count(*) FROM popsell.contacts GROUP BY 4
UNION ALL
SELECT 0, 'loaded', 'source', source::text, count(*) FROM popsell.contacts GROUP BY 4
UNION ALL
SELECT 0, 'loaded', 'outbox', kind::text, count(*) FROM popsell.outbox GROUP BY 4;
SELECT count(*) || ' contacts, ' || (SELECT count(*) FROM popsell.outbox) || ' outbox rows'
  FROM popsell.contacts;

-- step: run_maintenance() now
-- The README's job, as pg_cron would run it.
INSERT INTO demo.runs SELECT 1, 'now', rule, affected FROM popsell.run_maintenance();
INSERT INTO demo.snapshot
SELECT 1, 'now', 'ambassador_optin', ambassador_optin::text, count(*) FROM popsell.contacts GROUP BY 4
UNION ALL
SELECT 1, 'now', 'source', source::text, count(*) FROM popsell.contacts GROUP BY 4
UNION ALL
SELECT 1, 'now', 'outbox', kind::text, count(*) FROM popsell.outbox GROUP BY 4;
SELECT sum(affected) || ' rows affected' FROM demo.runs WHERE stage = 1;

-- step: run_maintenance(now() + 20 days)
-- A run "in the future" behaves as that day would (SPEC section 7).
INSERT INTO demo.runs SELECT 2, '+20 days', rule, affected
  FROM popsell.run_maintenance(now() + interval '20 days');
INSERT INTO demo.snapshot
SELECT 2, '+20 days', 'ambassador_optin', ambassador_optin::text, count(*) FROM popsell.contacts GROUP BY 4
UNION ALL
SELECT 2, '+20 days', 'source', source::text, count(*) FROM popsell.contacts GROUP BY 4
UNION ALL
SELECT 2, '+20 days', 'outbox', kind::text, count(*) FROM popsell.outbox GROUP BY 4;
SELECT sum(affected) || ' rows affected' FROM demo.runs WHERE stage = 2;

-- step: run_maintenance(now() + 40 days)
INSERT INTO demo.runs SELECT 3, '+40 days', rule, affected
  FROM popsell.run_maintenance(now() + interval '40 days');
INSERT INTO demo.snapshot
SELECT 3, '+40 days', 'ambassador_optin', ambassador_optin::text, count(*) FROM popsell.contacts GROUP BY 4
UNION ALL
SELECT 3, '+40 days', 'source', source::text, count(*) FROM popsell.contacts GROUP BY 4
UNION ALL
SELECT 3, '+40 days', 'outbox', kind::text, count(*) FROM popsell.outbox GROUP BY 4;
SELECT sum(affected) || ' rows affected' FROM demo.runs WHERE stage = 3;

-- report: contacts per ambassador_optin (loaded, then after each maintenance run)
SELECT e.enumlabel AS ambassador_optin,
       coalesce(max(s.n) FILTER (WHERE s.stage = 0), 0) AS loaded,
       CASE WHEN EXISTS (SELECT 1 FROM demo.snapshot x WHERE x.stage = 1)
            THEN coalesce(max(s.n) FILTER (WHERE s.stage = 1), 0) END AS "after run now",
       CASE WHEN EXISTS (SELECT 1 FROM demo.snapshot x WHERE x.stage = 2)
            THEN coalesce(max(s.n) FILTER (WHERE s.stage = 2), 0) END AS "after run +20d",
       CASE WHEN EXISTS (SELECT 1 FROM demo.snapshot x WHERE x.stage = 3)
            THEN coalesce(max(s.n) FILTER (WHERE s.stage = 3), 0) END AS "after run +40d"
  FROM pg_enum e
  LEFT JOIN demo.snapshot s ON s.dim = 'ambassador_optin' AND s.key = e.enumlabel::text
 WHERE e.enumtypid = 'popsell.ambassador_optin'::regtype
 GROUP BY e.enumlabel, e.enumsortorder
 ORDER BY e.enumsortorder;

-- report: contacts per source
SELECT e.enumlabel AS source,
       coalesce(max(s.n) FILTER (WHERE s.stage = 0), 0) AS loaded,
       CASE WHEN EXISTS (SELECT 1 FROM demo.snapshot x WHERE x.stage = 1)
            THEN coalesce(max(s.n) FILTER (WHERE s.stage = 1), 0) END AS "after run now",
       CASE WHEN EXISTS (SELECT 1 FROM demo.snapshot x WHERE x.stage = 2)
            THEN coalesce(max(s.n) FILTER (WHERE s.stage = 2), 0) END AS "after run +20d",
       CASE WHEN EXISTS (SELECT 1 FROM demo.snapshot x WHERE x.stage = 3)
            THEN coalesce(max(s.n) FILTER (WHERE s.stage = 3), 0) END AS "after run +40d"
  FROM pg_enum e
  LEFT JOIN demo.snapshot s ON s.dim = 'source' AND s.key = e.enumlabel::text
 WHERE e.enumtypid = 'popsell.contact_source'::regtype
 GROUP BY e.enumlabel, e.enumsortorder
 ORDER BY e.enumsortorder;

-- report: what each retention rule did (rows affected per run)
SELECT rule,
       coalesce(max(affected) FILTER (WHERE stage = 1), 0) AS "run now",
       coalesce(max(affected) FILTER (WHERE stage = 2), 0) AS "run +20d",
       coalesce(max(affected) FILTER (WHERE stage = 3), 0) AS "run +40d"
  FROM demo.runs
 GROUP BY rule
 ORDER BY (SELECT o FROM popsell.maintenance_rules() WITH ORDINALITY AS x(r, o) WHERE x.r = rule), rule;

-- report: time per rule, from popsell.maintenance_runs (milliseconds)
SELECT rule,
       round(max(ms) FILTER (WHERE k = 1)) AS "run now",
       round(max(ms) FILTER (WHERE k = 2)) AS "run +20d",
       round(max(ms) FILTER (WHERE k = 3)) AS "run +40d"
  FROM (SELECT rule, dense_rank() OVER (ORDER BY run_id) AS k,
               extract(epoch FROM finished_at - started_at) * 1000 AS ms
          FROM popsell.maintenance_runs) r
 GROUP BY rule
 ORDER BY (SELECT o FROM popsell.maintenance_rules() WITH ORDINALITY AS x(r, o) WHERE x.r = rule), rule;

-- report: outbox (what the application must send or delete)
SELECT s.key AS kind,
       coalesce(max(s.n) FILTER (WHERE s.stage = 0), 0) AS loaded,
       CASE WHEN EXISTS (SELECT 1 FROM demo.snapshot x WHERE x.stage = 1)
            THEN coalesce(max(s.n) FILTER (WHERE s.stage = 1), 0) END AS "after run now",
       CASE WHEN EXISTS (SELECT 1 FROM demo.snapshot x WHERE x.stage = 2)
            THEN coalesce(max(s.n) FILTER (WHERE s.stage = 2), 0) END AS "after run +20d",
       CASE WHEN EXISTS (SELECT 1 FROM demo.snapshot x WHERE x.stage = 3)
            THEN coalesce(max(s.n) FILTER (WHERE s.stage = 3), 0) END AS "after run +40d"
  FROM demo.snapshot s
 WHERE s.dim = 'outbox'
 GROUP BY s.key
 ORDER BY s.key;

-- report: what erasure kept and the consent ledger
SELECT (SELECT count(*) FROM popsell.contacts) AS contacts,
       (SELECT count(*) FROM popsell.contact_tombstones) AS contact_tombstones,
       (SELECT count(*) FROM popsell.ambassadors) AS ambassadors,
       (SELECT count(*) FROM popsell.ambassador_tombstones) AS ambassador_tombstones,
       (SELECT count(*) FROM popsell.blacklist) AS blacklist_hashes,
       (SELECT count(*) FROM popsell.consent_events) AS consent_events,
       (SELECT count(*) FROM popsell.maintenance_runs) AS maintenance_log_rows;

-- step: compliance report
-- The brand DPO's document (README: compliance report); tools/demo writes
-- it to a file and prints its path.
-- As of the last run of the demo's timeline (40 days ahead).
SELECT length(popsell.compliance_report(now() + interval '40 days')) || ' bytes of HTML';
