-- Retention rules (SPEC 7): every rule just before and just after its
-- boundary, with default settings and with a changed setting; idempotence;
-- preview = run.  Times are fixed; runs are "as of" them.
-- Runs in a database of its own so other tests' rows do not count.
\set VERBOSITY terse
SET client_min_messages = warning;
DROP DATABASE IF EXISTS regress_popsell_302;
CREATE DATABASE regress_popsell_302 TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8';
\c regress_popsell_302
SET client_min_messages = warning;
CREATE EXTENSION popsell CASCADE;
SET TimeZone = 'UTC';
-- compact run report: the rules that did something
CREATE FUNCTION pg_temp.run(at timestamptz) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(r.rule || '=' || r.affected, ' ' ORDER BY r.rule), '(nothing)')
      FROM popsell.run_maintenance(at) r WHERE r.affected <> 0 $$;
CREATE FUNCTION pg_temp.preview(at timestamptz) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(r.rule || '=' || r.affected, ' ' ORDER BY r.rule), '(nothing)')
      FROM popsell.maintenance_preview(at) r WHERE r.affected <> 0 $$;
CREATE FUNCTION pg_temp.left_contacts() RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(first_name || ':' || ambassador_optin, ' ' ORDER BY first_name), '-')
      FROM popsell.contacts $$;
-- T = 2230-06-01 00:00 UTC (far ahead of any run of this test: the rules see the
-- test's own dates, the audit rows the wall clock, and both orders hold)
SET session_replication_role = replica;
INSERT INTO popsell.ambassadors (id, kind, status, email, terms_accepted_at, created_at, last_login_at)
VALUES (1, 'customer', 'active', 'a1@example.test', '2229-01-01', '2229-01-01', '2230-05-01');
-- contact_never_invited: new, not brand-visible, window 30 days from ambassador_optin_at
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email, email_status, ambassador_optin,
                              ambassador_optin_at, brand_optin, brand_optin_at, partners_optin, created_at)
VALUES (1, 'crm_manual', 'ni_in',   'ni1@example.test', 'ok', 'new', '2230-05-02 00:01', 'no_optin', '2230-05-02', false, '2230-05-02'),
       (1, 'crm_manual', 'ni_due',  'ni2@example.test', 'ok', 'new', '2230-05-01 23:59', 'no_optin', '2230-05-01', false, '2230-05-01'),
       (1, 'brand_sync', 'ni_brand', 'ni3@example.test', 'ok', 'new', '2230-01-01', 'storage_only', '2230-01-01', false, '2230-01-01'),
       (1, 'crm_manual', 'ni_partner', 'ni4@example.test', 'ok', 'new', '2230-01-01', 'no_optin', '2230-01-01', true, '2230-01-01');
RESET session_replication_role;
SELECT pg_temp.preview('2230-06-01');
SELECT pg_temp.run('2230-06-01');
SELECT pg_temp.left_contacts();
SELECT count(*) AS tombstones_never_invited FROM popsell.contact_tombstones;
SELECT pg_temp.run('2230-06-01') AS second_run;
-- changed setting: 60 days
UPDATE popsell.settings SET new_contact_invitation_window = '60 days';
SET session_replication_role = replica;
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email, email_status, ambassador_optin,
                              ambassador_optin_at, brand_optin, brand_optin_at, created_at)
VALUES (1, 'crm_manual', 'ni60_in',  'n60a@example.test', 'ok', 'new', '2230-04-02 00:01', 'no_optin', '2230-04-02', '2230-04-02'),
       (1, 'crm_manual', 'ni60_due', 'n60b@example.test', 'ok', 'new', '2230-04-01 23:59', 'no_optin', '2230-04-01', '2230-04-01');
RESET session_replication_role;
SELECT pg_temp.run('2230-06-01 00:00');
SELECT pg_temp.left_contacts();
RESET client_min_messages;
SET client_min_messages = warning;
DELETE FROM popsell.contacts;
UPDATE popsell.settings SET new_contact_invitation_window = DEFAULT;

-- invitation_reminder (15 days) and invitation_no_response (30 days)
SET session_replication_role = replica;
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email, email_status, ambassador_optin,
                              ambassador_optin_at, brand_optin, brand_optin_at, invitation_sent_at, invitations_sent, created_at)
VALUES (1, 'crm_manual', 'inv_a', 'inv1@example.test', 'ok', 'invitation_sent', '2230-05-17 00:01', 'no_optin', '2230-01-01', '2230-05-17 00:01', 1, '2230-01-01'),
       (1, 'crm_manual', 'inv_b', 'inv2@example.test', 'ok', 'invitation_sent', '2230-05-16 23:59', 'no_optin', '2230-01-01', '2230-05-16 23:59', 1, '2230-01-01'),
       (1, 'crm_manual', 'inv_c', 'inv3@example.test', 'soft_bounce', 'invitation_sent', '2230-05-16 23:59', 'no_optin', '2230-01-01', '2230-05-16 23:59', 1, '2230-01-01');
RESET session_replication_role;
SELECT pg_temp.preview('2230-06-01');
SELECT pg_temp.run('2230-06-01');
SELECT c.first_name, o.kind, o.created_at FROM popsell.outbox o JOIN popsell.contacts c ON c.id = o.contact_id ORDER BY 1;
SELECT pg_temp.run('2230-06-01') AS second_run;
SELECT pg_temp.run('2230-06-01 00:02') AS next_day;
SELECT pg_temp.run('2230-06-15 23:58') AS before_two_windows;
SELECT pg_temp.run('2230-06-16 00:00') AS two_windows;
SELECT pg_temp.left_contacts();
SELECT first_name, ambassador_optin_at FROM popsell.contacts ORDER BY 1;
SELECT e.path, e.actor, e.new_ambassador_optin, e.occurred_at FROM popsell.consent_events e
 WHERE e.new_ambassador_optin = 'optout_no_response' ORDER BY e.id;
SELECT pg_temp.run('2230-06-17 00:10') AS last;
SELECT pg_temp.left_contacts();
-- changed setting: response window 10 days
UPDATE popsell.settings SET invitation_response_window = '10 days';
SET session_replication_role = replica;
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email, email_status, ambassador_optin,
                              ambassador_optin_at, brand_optin, brand_optin_at, invitation_sent_at, invitations_sent, created_at)
VALUES (1, 'crm_manual', 'inv10', 'inv10@example.test', 'ok', 'invitation_sent', '2230-07-01', 'no_optin', '2230-01-01', '2230-07-01', 1, '2230-01-01');
RESET session_replication_role;
SELECT pg_temp.run('2230-07-10 23:59') AS before_10d, pg_temp.run('2230-07-11') AS at_10d,
       pg_temp.run('2230-07-20 23:59') AS before_20d, pg_temp.run('2230-07-21') AS at_20d;
UPDATE popsell.settings SET invitation_response_window = DEFAULT;
SET session_replication_role = replica;
DELETE FROM popsell.contacts; DELETE FROM popsell.outbox; DELETE FROM popsell.contact_tombstones;
RESET session_replication_role;

-- email_unconfirmed (15 days from created_at, no tombstone)
SET session_replication_role = replica;
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email, email_status, ambassador_optin,
                              ambassador_optin_at, brand_optin, brand_optin_at, email_confirmed_at, created_at)
VALUES (1, 'blog', 'unc_in', 'u1@example.test', 'unverified', 'optin_blog_pending', '2230-05-17 00:01', 'optin_blog', '2230-05-17', NULL, '2230-05-17 00:01'),
       (1, 'store_purchase', 'unc_due', 'u2@example.test', 'unverified', 'storage_only', '2230-05-16 23:59', 'no_optin', '2230-05-16', NULL, '2230-05-16 23:59'),
       (1, 'blog', 'unc_confirmed', 'u3@example.test', 'ok', 'optin_blog_verified', '2230-01-01', 'optin_blog', '2230-01-01', '2230-01-02', '2230-01-01');
RESET session_replication_role;
SELECT pg_temp.run('2230-06-01');
SELECT pg_temp.left_contacts();
SELECT count(*) AS tombstones FROM popsell.contact_tombstones;
UPDATE popsell.settings SET email_confirmation_window = '20 days';
SELECT pg_temp.run('2230-06-05 23:59') AS before_20d, pg_temp.run('2230-06-06 00:02') AS after_20d;
UPDATE popsell.settings SET email_confirmation_window = DEFAULT;
SET session_replication_role = replica;
DELETE FROM popsell.contacts;
RESET session_replication_role;

-- contact_opted_out (1 year from ambassador_optin_at, not brand-visible, tombstone)
SET session_replication_role = replica;
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email, email_status, ambassador_optin,
                              ambassador_optin_at, brand_optin, brand_optin_at, created_at, last_activity_at)
VALUES (1, 'crm_manual', 'oo_in', 'o1@example.test', 'ok', 'optout_email', '2229-06-01 00:01', 'no_optin', '2229-01-01', '2229-01-01', '2230-05-01'),
       (1, 'crm_manual', 'oo_due', 'o2@example.test', 'ok', 'invitation_declined', '2229-05-31 23:59', 'no_optin', '2229-01-01', '2229-01-01', '2230-05-01'),
       (1, 'order', 'oo_brand', 'o3@example.test', 'ok', 'global_optout', '2228-01-01', 'optin_brand_database', '2228-01-01', '2228-01-01', '2230-05-01');
RESET session_replication_role;
SELECT pg_temp.preview('2230-06-01');
SELECT pg_temp.run('2230-06-01');
SELECT pg_temp.left_contacts();
SELECT contact_id IS NOT NULL AS has_id, ambassador_optin, reason, deleted_at FROM popsell.contact_tombstones;
UPDATE popsell.settings SET optout_retention = '2 years';
SET session_replication_role = replica;
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email, email_status, ambassador_optin,
                              ambassador_optin_at, brand_optin, brand_optin_at, created_at, last_activity_at)
VALUES (1, 'crm_manual', 'oo2', 'o4@example.test', 'ok', 'optout_no_response', '2229-01-01', 'no_optin', '2229-01-01', '2229-01-01', '2230-05-01');
RESET session_replication_role;
SELECT pg_temp.run('2230-12-31 23:59') AS before_2y, pg_temp.run('2231-01-01') AS at_2y;
UPDATE popsell.settings SET optout_retention = DEFAULT;
SET session_replication_role = replica;
DELETE FROM popsell.contacts; DELETE FROM popsell.contact_tombstones;
RESET session_replication_role;

-- contact_inactive (3 years since greatest(last_activity_at, ambassador_optin_at, created_at))
SET session_replication_role = replica;
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email, email_status, ambassador_optin,
                              ambassador_optin_at, brand_optin, brand_optin_at, created_at, last_activity_at)
VALUES (1, 'order', 'ia_in', 'i1@example.test', 'ok', 'optin_order', '2225-01-01', 'optin_brand_database', '2225-01-01', '2225-01-01', '2227-06-01 00:01'),
       (1, 'order', 'ia_due', 'i2@example.test', 'ok', 'optin_order', '2225-01-01', 'optin_brand_database', '2225-01-01', '2225-01-01', '2227-05-31 23:59'),
       (1, 'order', 'ia_optin_recent', 'i3@example.test', 'ok', 'optin_order', '2227-06-01 00:01', 'optin_brand_database', '2225-01-01', '2225-01-01', NULL),
       (1, 'brand_sync', 'ia_brand_sync', 'i4@example.test', 'ok', 'optin_brand_imported', '2220-01-01', 'optin_brand_database', '2220-01-01', '2220-01-01', NULL),
       (1, 'crm_manual', 'ia_opted_out', 'i5@example.test', 'ok', 'optout_email', '2229-12-01', 'no_optin', '2220-01-01', '2220-01-01', NULL);
RESET session_replication_role;
SELECT pg_temp.preview('2230-06-01');
SELECT pg_temp.run('2230-06-01');
SELECT pg_temp.left_contacts();
UPDATE popsell.settings SET contact_inactivity = '4 years';
SELECT pg_temp.run('2231-06-01') AS before_4y, pg_temp.run('2231-06-01 00:02') AS after_4y;
UPDATE popsell.settings SET contact_inactivity = DEFAULT;
SET session_replication_role = replica;
DELETE FROM popsell.contacts; DELETE FROM popsell.contact_tombstones; DELETE FROM popsell.outbox;
RESET session_replication_role;

-- ambassador_leaving
SET session_replication_role = replica;
INSERT INTO popsell.ambassadors (id, kind, status, email, terms_accepted_at, created_at, last_login_at, deletion_due_at, leaving_reason)
VALUES (2, 'customer', 'leaving', 'a2@example.test', '2229-01-01', '2229-01-01', '2230-05-01', '2230-06-01 00:01', 'unsubscribed'),
       (3, 'customer', 'leaving', 'a3@example.test', '2229-01-01', '2229-01-01', '2230-05-01', '2230-05-31 23:59', 'unsubscribed');
RESET session_replication_role;
SELECT pg_temp.preview('2230-06-01');
SELECT pg_temp.run('2230-06-01');
SELECT id, status FROM popsell.ambassadors ORDER BY id;
SELECT ambassador_id, reason FROM popsell.ambassador_tombstones ORDER BY 1;
SELECT pg_temp.run('2230-06-01 00:01') AS at_due;

-- ambassador_inactive: 3 years, 2 warnings 15 days apart
SET session_replication_role = replica;
DELETE FROM popsell.ambassadors WHERE id = 1;
INSERT INTO popsell.ambassadors (id, kind, status, email, terms_accepted_at, created_at, last_login_at)
VALUES (10, 'customer', 'active', 'a10@example.test', '2227-01-01', '2227-01-01', '2227-06-01'),  -- deadline 2230-06-01
       (11, 'customer', 'active', 'a11@example.test', '2227-01-01', '2227-01-01', '2227-06-01'),  -- logs in after warning
       (12, 'customer', 'signup_incomplete', 'a12@example.test', NULL, '2227-05-01', NULL);      -- never logged in: 2230-05-01
RESET session_replication_role;
SELECT pg_temp.run('2230-04-01') AS a12_w1_only;
SELECT pg_temp.run('2230-05-01 23:59') AS w1_before;
SELECT pg_temp.run('2230-05-02') AS w1;
SELECT pg_temp.run('2230-05-02') AS w1_again;
SELECT id, inactivity_warnings_sent, last_inactivity_warning_at FROM popsell.ambassadors ORDER BY id;
-- ambassador 11 logs in (a login cancels)
UPDATE popsell.ambassadors SET last_login_at = '2230-05-10' WHERE id = 11;
SELECT pg_temp.run('2230-05-16 23:59') AS w2_before;
SELECT pg_temp.run('2230-05-17') AS w2;
SELECT pg_temp.run('2230-05-31 23:59') AS before_deadline;
SELECT pg_temp.run('2230-06-01') AS deadline;
SELECT id, inactivity_warnings_sent FROM popsell.ambassadors ORDER BY id;
SELECT a.id, o.kind, o.payload ->> 'warning' AS k, o.created_at
  FROM popsell.outbox o LEFT JOIN popsell.ambassadors a ON a.id = o.ambassador_id
 WHERE o.kind = 'inactivity_warning' ORDER BY o.id;
SELECT ambassador_id, reason FROM popsell.ambassador_tombstones ORDER BY 1;
-- catch-up: a missed schedule still warns twice, 15 days apart, before deleting
SET session_replication_role = replica;
INSERT INTO popsell.ambassadors (id, kind, status, email, terms_accepted_at, created_at, last_login_at)
VALUES (13, 'customer', 'active', 'a13@example.test', '2227-01-01', '2227-01-01', '2227-06-01');
RESET session_replication_role;
SELECT pg_temp.run('2230-07-01') AS late_w1, pg_temp.run('2230-07-15 23:59') AS early,
       pg_temp.run('2230-07-16') AS late_w2, pg_temp.run('2230-07-30 23:59') AS early_del,
       pg_temp.run('2230-07-31') AS del;
-- changed setting: 1 warning, 10 days, 1 year
UPDATE popsell.settings SET ambassador_inactivity = '1 year', inactivity_warnings = 1, inactivity_warning_interval = '10 days';
SET session_replication_role = replica;
INSERT INTO popsell.ambassadors (id, kind, status, email, terms_accepted_at, created_at, last_login_at)
VALUES (14, 'customer', 'active', 'a14@example.test', '2230-01-01', '2230-01-01', '2230-01-01');
RESET session_replication_role;
SELECT pg_temp.run('2230-12-21 23:59') AS early, pg_temp.run('2230-12-22') AS w1,
       pg_temp.run('2230-12-31 23:59') AS early_del, pg_temp.run('2231-01-01') AS del;
UPDATE popsell.settings SET ambassador_inactivity = DEFAULT, inactivity_warnings = DEFAULT,
                            inactivity_warning_interval = DEFAULT;

-- contest_ugc
SET session_replication_role = replica;
INSERT INTO popsell.ambassadors (id, kind, status, email, terms_accepted_at, created_at, last_login_at, photo_path)
VALUES (20, 'customer', 'active', 'a20@example.test', '2230-01-01', '2230-01-01', '2230-06-01', '/photos/20.jpg');
INSERT INTO popsell.contests (id, name, reuse_until) VALUES (1, 'summer', '2230-09-01'), (2, 'spring', '2230-05-01');
INSERT INTO popsell.ugc (ambassador_id, contest_id, file_path) VALUES
    (20, 1, '/ugc/summer.jpg'), (20, 2, '/ugc/spring.jpg'), (20, NULL, '/ugc/plain.jpg');
RESET session_replication_role;
DELETE FROM popsell.outbox;
DELETE FROM popsell.ambassadors WHERE id = 20;
SELECT contest_id, file_path, ambassador_id FROM popsell.ugc ORDER BY 1;
SELECT kind, payload ->> 'file_path' AS file FROM popsell.outbox ORDER BY 2;
SELECT pg_temp.run('2230-08-31 23:59') AS before_reuse_end, pg_temp.run('2230-09-01') AS reuse_end;
SELECT count(*) AS ugc_left FROM popsell.ugc;
SELECT kind, payload ->> 'file_path' AS file FROM popsell.outbox ORDER BY 2;

-- logs (1 year)
SET session_replication_role = replica;
INSERT INTO popsell.activity_log (ambassador_id, kind, created_at) VALUES
    (NULL, 'login', '2229-06-01 00:01'), (NULL, 'login', '2229-05-31 23:59');
RESET session_replication_role;
SELECT pg_temp.run('2230-06-01') AS logs;
SELECT count(*) AS log_rows FROM popsell.activity_log;
UPDATE popsell.settings SET log_retention = '1 day';
SELECT pg_temp.run('2230-06-02 00:02') AS logs_1d;
UPDATE popsell.settings SET log_retention = DEFAULT;

-- program_suspended (6 months) and brand_contract_ended (7 days grace)
SET session_replication_role = replica;
INSERT INTO popsell.ambassadors (id, kind, status, email, terms_accepted_at, created_at, last_login_at)
VALUES (30, 'customer', 'active', 'a30@example.test', '2230-01-01', '2230-01-01', '2230-12-01');
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email, email_status, ambassador_optin,
                              ambassador_optin_at, brand_optin, brand_optin_at, created_at, last_activity_at)
VALUES (30, 'order', 'ps1', 'p1@example.test', 'ok', 'optin_order', '2230-12-01', 'optin_brand_database', '2230-12-01', '2230-12-01', '2230-12-01'),
       (NULL, 'order', 'ps2', 'p2@example.test', 'ok', 'optin_order', '2230-12-01', 'optin_brand_database', '2230-12-01', '2230-12-01', '2230-12-01');
RESET session_replication_role;
UPDATE popsell.settings SET program_suspended_at = '2230-12-01';
SELECT pg_temp.run('2231-05-31 23:59') AS before_6m, pg_temp.preview('2231-06-01') AS preview;
SELECT pg_temp.run('2231-06-01') AS at_6m;
SELECT (SELECT count(*) FROM popsell.contacts) AS contacts, (SELECT count(*) FROM popsell.ambassadors) AS ambassadors;
SELECT pg_temp.run('2231-06-01') AS again;
UPDATE popsell.settings SET program_suspended_at = NULL, suspension_max = '1 month';
SET session_replication_role = replica;
INSERT INTO popsell.ambassadors (id, kind, status, email, terms_accepted_at, created_at, last_login_at)
VALUES (31, 'customer', 'active', 'a31@example.test', '2231-01-01', '2231-01-01', '2231-06-01');
RESET session_replication_role;
UPDATE popsell.settings SET program_suspended_at = '2231-06-01';
SELECT pg_temp.run('2231-06-30 23:59') AS before_1m, pg_temp.run('2231-07-01') AS at_1m;
UPDATE popsell.settings SET program_suspended_at = NULL, suspension_max = DEFAULT;
SET session_replication_role = replica;
INSERT INTO popsell.ambassadors (id, kind, status, email, terms_accepted_at, created_at, last_login_at)
VALUES (32, 'customer', 'active', 'a32@example.test', '2231-01-01', '2231-01-01', '2231-07-01');
RESET session_replication_role;
UPDATE popsell.settings SET brand_contract_ended_at = '2231-07-01';
SELECT pg_temp.run('2231-07-07 23:59') AS before_grace, pg_temp.run('2231-07-08') AS grace_over;
UPDATE popsell.settings SET brand_contract_ended_at = '2231-08-01', deletion_grace = '1 day';
SET session_replication_role = replica;
INSERT INTO popsell.ambassadors (id, kind, status, email, terms_accepted_at, created_at, last_login_at)
VALUES (33, 'customer', 'active', 'a33@example.test', '2231-01-01', '2231-01-01', '2231-07-01');
RESET session_replication_role;
SELECT pg_temp.run('2231-08-01 23:59') AS before_end, pg_temp.run('2231-08-02') AS at_end;
SELECT ambassador_id, reason FROM popsell.ambassador_tombstones ORDER BY 1;

-- the record: one row per rule per run, and the run's own rows survive "logs"
SELECT count(DISTINCT run_id) > 10 AS many_runs, bool_and(failed_sqlstate IS NULL) AS no_failures,
       (SELECT count(*) FROM popsell.maintenance_runs GROUP BY run_id ORDER BY 1 DESC LIMIT 1) AS rows_per_run
  FROM popsell.maintenance_runs;

\c contrib_regression
DROP DATABASE regress_popsell_302;
