-- 303_retention_v2: the (v2) retention rules of SPEC sections 3, 6 and 7.
-- Contacts no rule used to reach (opted-out brand-visible rows, brand_sync
-- rows whose brand opt-in is gone) are deleted by contact_inactive;
-- activity written by a plain INSERT counts, for every role allowed to
-- insert; restricted contacts are never deleted by a rule; the run's
-- overlap guard is no advisory lock; `at` beyond one day is the owner's;
-- audit rows age by the wall clock; settings floors, vendor-only windows
-- and the single row; erasure scrubs sent outbox payloads and sent rows
-- age out; ambassador tombstones keep why it left; publications queued
-- before leaving are cancelled; maintenance_status shows durations, ages
-- and skips; the rule in progress is visible in application_name.
-- Every check is a boolean or a list of violations (empty when right).
\set VERBOSITY terse
SET client_min_messages = warning;
DROP DATABASE IF EXISTS regress_popsell_303;
CREATE DATABASE regress_popsell_303 TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8';
\c regress_popsell_303
SET client_min_messages = warning;
CREATE EXTENSION popsell CASCADE;
SET TimeZone = 'UTC';
RESET client_min_messages;
\set SHOW_CONTEXT never

CREATE FUNCTION pg_temp.err(q text, OUT state text)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    state := 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.err(text) TO PUBLIC;
CREATE FUNCTION pg_temp.run(at timestamptz) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(r.rule || '=' || r.affected, ' ' ORDER BY r.rule), '(nothing)')
      FROM popsell.run_maintenance(at) r WHERE r.affected <> 0 $$;

-- ------------------------------------------------------------------
-- 1. Kept forever no more.  T = 2040-01-01; contact_inactivity 3 years.
-- ------------------------------------------------------------------
SET session_replication_role = replica;
INSERT INTO popsell.ambassadors (id, kind, status, email, terms_accepted_at, created_at, last_login_at)
VALUES (1, 'customer', 'active', 'a1@example.test', '2039-01-01', '2039-01-01', '2039-12-01');
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email, email_status, ambassador_optin,
                              ambassador_optin_at, brand_optin, brand_optin_at, partners_optin, created_at,
                              last_activity_at)
VALUES
 -- opted out of the ambassador, brand-visible: contact_opted_out skips it
 (1,    'order',      'oo_brand_due', 'k1@example.test', 'ok', 'optout_email', '2036-12-31', 'optin_brand_database', '2036-12-31', false, '2036-01-01', NULL),
 (1,    'order',      'oo_brand_in',  'k2@example.test', 'ok', 'optout_email', '2037-01-02', 'optin_brand_database', '2036-12-31', false, '2036-01-01', NULL),
 -- its ambassador gone, partners opt-in only
 (NULL, 'order',      'oo_partner_due', 'k3@example.test', 'ok', 'global_optout', '2036-12-31', 'no_optin', '2036-12-31', true, '2036-01-01', NULL),
 -- brand_sync whose brand opt-in was withdrawn
 (1,    'brand_sync', 'bs_withdrawn_due', 'k4@example.test', 'ok', 'optin_brand_imported', '2036-12-31', 'no_optin', '2036-12-31', false, '2036-01-01', NULL),
 (1,    'brand_sync', 'bs_due',        'k5@example.test', 'ok', 'optin_brand_imported', '2036-12-31', 'optin_brand_database', '2036-12-31', false, '2036-01-01', NULL),
 -- the brand opt-in is recent: inactivity counts from brand_optin_at too
 (1,    'order',      'brand_recent_in', 'k6@example.test', 'ok', 'optin_order', '2030-01-01', 'optin_brand_database', '2037-01-02', false, '2030-01-01', NULL),
 -- activity recent: kept
 (1,    'order',      'active_in',     'k7@example.test', 'ok', 'optout_email', '2030-01-01', 'optin_brand_database', '2030-01-01', false, '2030-01-01', '2037-01-02');
RESET session_replication_role;
SELECT pg_temp.run('2040-01-01');
SELECT string_agg(first_name, ' ' ORDER BY first_name) AS kept FROM popsell.contacts;
SELECT string_agg(t.reason, ' ' ORDER BY t.reason) AS tombstone_reasons FROM popsell.contact_tombstones t;
SET session_replication_role = replica;
DELETE FROM popsell.contacts; DELETE FROM popsell.contact_tombstones; DELETE FROM popsell.outbox;
RESET session_replication_role;

-- ------------------------------------------------------------------
-- 2. Activity by plain INSERT, for every role that may insert into
-- interactions or sales (read from the catalog), and the owner.  Opens
-- are no activity; a time in the future counts as now.
-- ------------------------------------------------------------------
CREATE TEMP TABLE inserters AS
SELECT r.rolname, t.tab
  FROM pg_roles r CROSS JOIN (VALUES ('popsell.interactions'), ('popsell.sales')) t(tab)
 WHERE (r.rolname LIKE 'popsell\_%' AND has_table_privilege(r.rolname, t.tab, 'INSERT'))
    OR r.rolname = current_user;
GRANT SELECT ON inserters TO PUBLIC;
SELECT tab, string_agg(rolname, ' ' ORDER BY rolname) AS roles_tested FROM inserters GROUP BY tab ORDER BY tab;
SET session_replication_role = replica;
INSERT INTO popsell.contacts (id, ambassador_id, source, first_name, email, email_status, ambassador_optin,
                              ambassador_optin_at, brand_optin, brand_optin_at, created_at)
SELECT 100 + row_number() OVER (ORDER BY i.tab, i.rolname), 1, 'order', i.rolname || ' ' || i.tab,
       'act' || row_number() OVER (ORDER BY i.tab, i.rolname) || '@example.test', 'ok', 'optin_order',
       '2020-01-01', 'optin_brand_database', '2020-01-01', '2020-01-01'
  FROM inserters i;
RESET session_replication_role;
BEGIN;   -- one transaction: now() is the same below
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT c.id, split_part(c.first_name, ' ', 1) AS rolname, split_part(c.first_name, ' ', 2) AS tab
               FROM popsell.contacts c WHERE c.id > 100 ORDER BY c.id LOOP
        EXECUTE format('SET LOCAL ROLE %I', r.rolname);
        IF r.tab = 'popsell.interactions' THEN
            INSERT INTO popsell.interactions (contact_id, kind, occurred_at) VALUES (r.id, 'open', now());
            INSERT INTO popsell.interactions (contact_id, kind, occurred_at)
            VALUES (r.id, 'click', now() - interval '1 hour'), (r.id, 'like', now() + interval '100 years');
        ELSE
            INSERT INTO popsell.sales (contact_id, amount, sold_at) VALUES (r.id, 10, now() + interval '100 years');
        END IF;
        RESET ROLE;
    END LOOP;
END $$;
-- one row per role and table whose insert did not move last_activity_at to now
SELECT c.first_name AS not_counted, c.last_activity_at IS NULL AS no_activity
  FROM popsell.contacts c
 WHERE c.id > 100 AND c.last_activity_at IS DISTINCT FROM now()
 ORDER BY 1;
COMMIT;
-- an open alone is no activity
SET session_replication_role = replica;
INSERT INTO popsell.contacts (id, ambassador_id, source, first_name, email, email_status, ambassador_optin,
                              ambassador_optin_at, brand_optin, brand_optin_at, created_at)
VALUES (99, 1, 'order', 'opener', 'open@example.test', 'ok', 'optin_order', '2020-01-01', 'optin_brand_database', '2020-01-01', '2020-01-01');
RESET session_replication_role;
INSERT INTO popsell.interactions (contact_id, kind) VALUES (99, 'open');
SELECT last_activity_at IS NULL AS open_is_no_activity FROM popsell.contacts WHERE id = 99;
-- the active ones stay one day short of contact_inactivity, the opener goes
SELECT pg_temp.run(now() + interval '3 years' - interval '1 day') AS run_before_inactivity;
SELECT count(*) AS active_kept, (SELECT count(*) FROM inserters) AS inserted FROM popsell.contacts WHERE id > 100;
SET session_replication_role = replica;
DELETE FROM popsell.contacts; DELETE FROM popsell.contact_tombstones; DELETE FROM popsell.interactions;
DELETE FROM popsell.sales;
RESET session_replication_role;

-- ------------------------------------------------------------------
-- 3. Restricted contacts (art. 18) are deleted by no retention rule:
-- one per contact-deleting rule's state, plus contacts of an ambassador
-- deleted by ambassador_leaving and the brand-wide erasures.
-- ------------------------------------------------------------------
SET session_replication_role = replica;
INSERT INTO popsell.ambassadors (id, kind, status, email, terms_accepted_at, created_at, last_login_at, deletion_due_at, leaving_reason)
VALUES (2, 'customer', 'leaving', 'a2@example.test', '2030-01-01', '2030-01-01', '2030-06-01', '2031-01-01', 'unsubscribed');
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email, email_status, ambassador_optin,
                              ambassador_optin_at, brand_optin, brand_optin_at, created_at, restricted)
VALUES (1, 'crm_manual', 'r_never_invited', 'r1@example.test', 'ok', 'new', '2030-01-01', 'no_optin', '2030-01-01', '2030-01-01', true),
       (1, 'blog', 'r_unconfirmed', 'r2@example.test', 'unverified', 'optin_blog_pending', '2030-01-01', 'optin_blog', '2030-01-01', '2030-01-01', true),
       (1, 'crm_manual', 'r_opted_out', 'r3@example.test', 'ok', 'optout_email', '2030-01-01', 'no_optin', '2030-01-01', '2030-01-01', true),
       (1, 'order', 'r_inactive', 'r4@example.test', 'ok', 'optin_order', '2030-01-01', 'optin_brand_database', '2030-01-01', '2030-01-01', true),
       (2, 'crm_manual', 'r_of_leaving', 'r5@example.test', 'ok', 'invitation_accepted', '2030-01-01', 'no_optin', '2030-01-01', '2030-01-01', true),
       (2, 'crm_manual', 'unrestricted_of_leaving', 'r6@example.test', 'ok', 'invitation_accepted', '2030-01-01', 'no_optin', '2030-01-01', '2030-01-01', false);
RESET session_replication_role;
SELECT pg_temp.run('2040-01-01');
SELECT string_agg(first_name || ':' || coalesce(ambassador_id::text, 'none'), ' ' ORDER BY first_name) AS kept
  FROM popsell.contacts;
UPDATE popsell.settings SET program_suspended_at = '2040-01-01';
SELECT pg_temp.run('2041-01-01');
SELECT count(*) AS restricted_kept_after_suspension, bool_and(restricted) AS all_restricted FROM popsell.contacts;
UPDATE popsell.settings SET program_suspended_at = NULL;
SET session_replication_role = replica;
DELETE FROM popsell.contacts; DELETE FROM popsell.contact_tombstones; DELETE FROM popsell.outbox;
DELETE FROM popsell.ambassadors; DELETE FROM popsell.ambassador_tombstones;
RESET session_replication_role;

-- ------------------------------------------------------------------
-- 4. `at` more than one day ahead is the owner's (and tests'); audit
-- rows age by the wall clock.
-- ------------------------------------------------------------------
CREATE TEMP TABLE at_checks (rolname name, ahead interval);
INSERT INTO at_checks
SELECT r, a FROM unnest(ARRAY['popsell_maintenance', 'popsell_account_team', 'popsell_technical']) r,
                 unnest(ARRAY[interval '23 hours', interval '1 day 1 minute', interval '10 years']) a;
SELECT c.rolname, c.ahead,
       pg_temp.err(format('SET LOCAL ROLE %I; SELECT popsell.run_maintenance(now() + %L::interval)', c.rolname, c.ahead)) AS state
  FROM at_checks c ORDER BY 1, 2;
RESET ROLE;
SELECT count(*) AS runs_before FROM popsell.maintenance_runs \gset
SELECT pg_temp.run(now() + interval '10 years') AS owner_far_ahead;
SELECT count(*) >= :runs_before AS audit_rows_kept FROM popsell.maintenance_runs;

-- ------------------------------------------------------------------
-- 5. Settings: floors, vendor-only windows, one row for everyone.
-- ------------------------------------------------------------------
-- every interval column refuses less than a day and takes a day
SELECT a.attname AS setting,
       pg_temp.err(format('UPDATE popsell.settings SET %I = %L', a.attname, '23 hours 59 minutes')) AS below_floor,
       pg_temp.err(format('UPDATE popsell.settings SET %I = %L', a.attname, '0')) AS zero,
       pg_temp.err(format('UPDATE popsell.settings SET %I = %L', a.attname, '1 day')) AS one_day
  FROM pg_attribute a
 WHERE a.attrelid = 'popsell.settings'::regclass AND a.atttypid = 'interval'::regtype AND a.attnum > 0
 ORDER BY 1;
-- suspension_max and deletion_grace: vendor staff only
SELECT r AS role, c AS setting,
       pg_temp.err(format('SET LOCAL ROLE %I; UPDATE popsell.settings SET %I = %L', r, c, '2 days')) AS state
  FROM unnest(ARRAY['popsell_brand', 'popsell_account_team', 'popsell_technical']) r,
       unnest(ARRAY['suspension_max', 'deletion_grace', 'contact_inactivity']) c
 ORDER BY 1, 2;
RESET ROLE;
UPDATE popsell.settings SET deletion_grace = DEFAULT, suspension_max = DEFAULT, contact_inactivity = DEFAULT,
       ambassador_inactivity = DEFAULT, inactivity_warning_interval = DEFAULT,
       new_contact_invitation_window = DEFAULT, invitation_response_window = DEFAULT,
       email_confirmation_window = DEFAULT, optout_retention = DEFAULT, log_retention = DEFAULT;
-- no role deletes the row or adds a second one (superuser and owner included)
SELECT r AS role,
       pg_temp.err(CASE WHEN r = current_user THEN '' ELSE format('SET LOCAL ROLE %I; ', r) END
                   || 'DELETE FROM popsell.settings') AS delete_row,
       pg_temp.err(CASE WHEN r = current_user THEN '' ELSE format('SET LOCAL ROLE %I; ', r) END
                   || 'INSERT INTO popsell.settings (id) VALUES (false)') AS insert_row,
       pg_temp.err(CASE WHEN r = current_user THEN '' ELSE format('SET LOCAL ROLE %I; ', r) END
                   || 'TRUNCATE popsell.settings') AS truncate
  FROM unnest(ARRAY[current_user::text, 'popsell_owner', 'popsell_technical', 'popsell_brand']) r
 ORDER BY 1;
RESET ROLE;
SET session_replication_role = replica;
SELECT pg_temp.err('DELETE FROM popsell.settings') AS delete_in_replica_mode;
RESET session_replication_role;
SELECT count(*) AS settings_rows FROM popsell.settings;

-- ------------------------------------------------------------------
-- 6. Erasure scrubs sent outbox payloads; sent rows age out after
-- log_retention; tombstones keep why an ambassador left; publications
-- queued before leaving are cancelled.
-- ------------------------------------------------------------------
SET session_replication_role = replica;
INSERT INTO popsell.ambassadors (id, kind, status, email, first_name, terms_accepted_at, created_at, last_login_at, sso_subject)
VALUES (10, 'customer', 'active', 'a10@example.test', 'Ada', now(), now(), now(), NULL),
       (11, 'sales_rep', 'active', 'a11@example.test', 'Bea', now(), now(), now(), NULL),
       (12, 'customer', 'active', 'a12@example.test', 'Cal', now(), now(), now(), 'sso-12'),
       (13, 'customer', 'active', 'a13@example.test', 'Dan', now(), '2020-01-01', '2020-01-01', NULL);
-- ambassador 13: inactive since 2020, both warnings queued long ago
UPDATE popsell.ambassadors SET inactivity_warnings_sent = 2, last_inactivity_warning_at = '2020-06-01' WHERE id = 13;
INSERT INTO popsell.contacts (id, ambassador_id, source, first_name, email, email_status, ambassador_optin,
                              ambassador_optin_at, brand_optin, brand_optin_at, created_at)
VALUES (201, 10, 'order', 'Zoe', 'zoe@example.test', 'ok', 'optin_order', now(), 'optin_brand_database', now(), now()),
       (202, 10, 'order', 'Yan', 'yan@example.test', 'ok', 'optin_order', now(), 'optin_brand_database', now(), now());
INSERT INTO popsell.publications (id, ambassador_id, comment) VALUES (1, 10, 'spring');
INSERT INTO popsell.outbox (kind, ambassador_id, contact_id, publication_id, payload, created_at, sent_at)
VALUES ('publication', 10, 201, 1, '{"to": "zoe@example.test", "name": "Zoe", "from": "Ada"}', now() - interval '2 days', now() - interval '2 days'),
       ('publication', 10, 202, 1, '{"to": "yan@example.test", "name": "Yan", "from": "Ada"}', now() - interval '2 days', now() - interval '2 days'),
       ('publication', 10, 201, 1, '{"to": "zoe@example.test", "name": "Zoe", "from": "Ada"}', now(), NULL),
       ('publication', 10, 202, 1, '{"to": "yan@example.test", "name": "Yan", "from": "Ada"}', now(), NULL);
RESET session_replication_role;
DELETE FROM popsell.contacts WHERE id = 201;
-- no sent payload still holds the erased contact's email or name
SELECT count(*) AS payloads_with_erased_contact FROM popsell.outbox
 WHERE payload::text LIKE '%zoe@example.test%' OR payload::text LIKE '%Zoe%';
-- the ambassador starts leaving: its queued publications are cancelled
SELECT popsell.unsubscribe_ambassador(10) IS NOT NULL AS leaving;
SELECT count(*) AS publications_still_queued FROM popsell.outbox
 WHERE kind = 'publication' AND sent_at IS NULL;
SELECT popsell.end_ambassador_contract(11) IS NOT NULL AS contract_ended;
SELECT popsell.sso_delete_ambassador('sso-12') = 12 AS sso_deleted;
SELECT pg_temp.run(now() + interval '8 days');
SELECT ambassador_id, reason FROM popsell.ambassador_tombstones ORDER BY 1;
-- the erased ambassador's name went from sent payloads too
SELECT count(*) AS payloads_with_erased_ambassador FROM popsell.outbox WHERE payload::text LIKE '%Ada%';
-- sent rows go after log_retention (1 year), as of the run
SELECT count(*) AS sent_rows FROM popsell.outbox WHERE sent_at IS NOT NULL;
SELECT pg_temp.run(now() - interval '2 days' + interval '1 year' - interval '1 hour') AS before_log_retention;
SELECT count(*) AS sent_rows FROM popsell.outbox WHERE sent_at IS NOT NULL;
SELECT pg_temp.run(now() - interval '2 days' + interval '1 year' + interval '1 hour') AS after_log_retention;
SELECT count(*) AS sent_rows FROM popsell.outbox WHERE sent_at IS NOT NULL;

-- ------------------------------------------------------------------
-- 7. maintenance_status: last run, duration, last success and its age,
-- skipped and failed runs; application_name names the rule in progress.
-- ------------------------------------------------------------------
SELECT a.attname AS status_column
  FROM pg_attribute a
 WHERE a.attrelid = 'popsell.maintenance_status'::regclass AND a.attnum > 0
   AND a.attname IN ('last_started_at', 'last_duration', 'last_outcome', 'last_success_age',
                     'skipped_since_success', 'failures_since_success')
 ORDER BY 1;
SELECT count(*) AS rules,
       bool_and(last_duration >= interval '0') AS durations,
       bool_and(last_success_age >= interval '0' AND last_success_age < interval '1 hour') AS success_ages,
       bool_and(last_outcome = 'done') AS all_done
  FROM popsell.maintenance_status;
-- a rule in progress is named in application_name (seen by a trigger)
CREATE TABLE public.seen_app (name text);
CREATE FUNCTION public.note_app() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN INSERT INTO public.seen_app VALUES (current_setting('application_name')); RETURN NULL; END $$;
CREATE TRIGGER zz_note_app AFTER DELETE ON popsell.contacts FOR EACH STATEMENT EXECUTE FUNCTION public.note_app();
SET application_name = 'regress_303';
SELECT pg_temp.run(now() + interval '10 years') IS NOT NULL AS ran;
SELECT DISTINCT name FROM public.seen_app WHERE name LIKE 'popsell%' ORDER BY 1;
SELECT current_setting('application_name') AS after_run;
DROP TRIGGER zz_note_app ON popsell.contacts;

-- ------------------------------------------------------------------
-- 8. Review fixes.  (a) A window has no negative part: mixed-sign
-- intervals compare as "more than a day" (a month counts 30 days) but go
-- back in time in date arithmetic.  Every interval column, every value,
-- by the superuser and (its columns) the brand: the accepted ones are
-- listed (none expected), with the statement that took it.
-- ------------------------------------------------------------------
CREATE TEMP TABLE bad_windows (v text);
INSERT INTO bad_windows VALUES ('-100 years 36001 days'), ('1 mon -29 days'), ('2 days -25 hours'),
       ('1 year -13 months 40 days'), ('-1 mon 60 days'), ('-1 day 72 hours'), ('10 days -1 microsecond');
CREATE TEMP TABLE window_tries AS
SELECT r, a.attname::text AS setting, b.v,
       format('%sUPDATE popsell.settings SET %I = %L',
              CASE WHEN r = current_user THEN '' ELSE format('SET LOCAL ROLE %I; ', r) END, a.attname, b.v) AS q
  FROM pg_attribute a, bad_windows b, unnest(ARRAY[current_user::text, 'popsell_brand']) r
 WHERE a.attrelid = 'popsell.settings'::regclass AND a.atttypid = 'interval'::regtype AND a.attnum > 0
   AND (r = current_user OR has_column_privilege('popsell_brand', 'popsell.settings', a.attname, 'UPDATE'));
SELECT count(DISTINCT setting) AS interval_settings, count(*) FILTER (WHERE r = 'popsell_brand') > 0 AS brand_tried
  FROM window_tries;
-- (an accepted update reaches the division by zero, 22012, which undoes it)
SELECT w.q || ';' AS accepted_negative_window
  FROM window_tries w WHERE pg_temp.err(w.q || '; SELECT 1/0') <> 'PS510' ORDER BY 1;
RESET ROLE;
-- no setting changed, and every accepted window is valid date arithmetic
SELECT count(*) AS settings_rows, bool_and(now() + contact_inactivity > now() AND now() + log_retention > now()) AS forward
  FROM popsell.settings;
-- inactivity_warnings: at least 1 (warnings are queued before the deletion), for everyone
SELECT r AS role,
       pg_temp.err(CASE WHEN r = current_user THEN '' ELSE format('SET LOCAL ROLE %I; ', r) END
                   || 'UPDATE popsell.settings SET inactivity_warnings = 0') AS zero_warnings,
       pg_temp.err(CASE WHEN r = current_user THEN '' ELSE format('SET LOCAL ROLE %I; ', r) END
                   || 'UPDATE popsell.settings SET inactivity_warnings = 1') AS one_warning
  FROM unnest(ARRAY[current_user::text, 'popsell_brand', 'popsell_technical']) r
 ORDER BY 1;
RESET ROLE;
UPDATE popsell.settings SET inactivity_warnings = DEFAULT;

-- (b) email_confirmation_window: NULL by default, meaning
-- invitation_response_window (rule, preview, compliance report).
SELECT email_confirmation_window IS NULL AS email_window_null_by_default FROM popsell.settings;
SET session_replication_role = replica;
INSERT INTO popsell.contacts (id, ambassador_id, source, first_name, email, email_status, ambassador_optin,
                              ambassador_optin_at, brand_optin, brand_optin_at, email_confirmed_at, created_at)
VALUES (801, NULL, 'blog', 'unc', 'unc801@example.test', 'unverified', 'optin_blog_pending', '2230-01-01',
        'optin_blog', '2230-01-01', NULL, '2230-01-01');
RESET session_replication_role;
UPDATE popsell.settings SET invitation_response_window = '20 days';
SELECT (SELECT affected FROM popsell.maintenance_preview('2230-01-20') WHERE rule = 'email_unconfirmed') AS due_day_19,
       (SELECT affected FROM popsell.maintenance_preview('2230-01-22') WHERE rule = 'email_unconfirmed') AS due_day_21;
SELECT popsell.compliance_report() LIKE '%' || (SELECT popsell._report_fig('settings.email_confirmation_window', '20 days', 'span')) || '%'
       AS report_shows_invitation_window;
UPDATE popsell.settings SET invitation_response_window = DEFAULT;
SET session_replication_role = replica;
DELETE FROM popsell.contacts WHERE id = 801;
RESET session_replication_role;

-- (c) the settings row: no DELETE or TRUNCATE in restore mode (a superuser
-- with row_security off) either; a restore's INSERT still replaces it.
SET row_security = off;
SELECT pg_temp.err('DELETE FROM popsell.settings') AS delete_in_restore_mode,
       pg_temp.err('TRUNCATE popsell.settings') AS truncate_in_restore_mode;
BEGIN;
INSERT INTO popsell.settings (id, brand_name) VALUES (true, 'restored');
SELECT count(*) AS rows_after_restore_insert, max(brand_name) AS brand_name FROM popsell.settings;
ROLLBACK;
RESET row_security;
SELECT count(*) AS settings_rows FROM popsell.settings;

-- (d) Activity attached by UPDATE (contact_id set later, an open turned
-- into a click), for every role that may update interactions or sales
-- (read from the catalog) and the owner.
CREATE TEMP TABLE updaters AS
SELECT r.rolname, t.tab
  FROM pg_roles r CROSS JOIN (VALUES ('popsell.interactions'), ('popsell.sales')) t(tab)
 WHERE (r.rolname LIKE 'popsell\_%' AND has_table_privilege(r.rolname, t.tab, 'UPDATE'))
    OR r.rolname = current_user;
SELECT tab, string_agg(rolname, ' ' ORDER BY rolname) AS roles_tested FROM updaters GROUP BY tab ORDER BY tab;
SET session_replication_role = replica;
INSERT INTO popsell.ambassadors (id, kind, status, email, terms_accepted_at, created_at, last_login_at)
VALUES (80, 'customer', 'active', 'a80@example.test', now(), now(), now());
INSERT INTO popsell.contacts (id, ambassador_id, source, first_name, email, email_status, ambassador_optin,
                              ambassador_optin_at, brand_optin, brand_optin_at, created_at)
SELECT 810 + 2 * row_number() OVER (ORDER BY u.tab, u.rolname) + k, 80, 'order', u.rolname || ' ' || u.tab || ' ' || k,
       'upd' || (2 * row_number() OVER (ORDER BY u.tab, u.rolname) + k) || '@example.test', 'ok', 'optin_order',
       '2020-01-01', 'optin_brand_database', '2020-01-01', '2020-01-01'
  FROM updaters u, generate_series(0, 1) k;
RESET session_replication_role;
BEGIN;
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT c.id, split_part(c.first_name, ' ', 1) AS rolname, split_part(c.first_name, ' ', 2) AS tab,
                    split_part(c.first_name, ' ', 3)::int AS k
               FROM popsell.contacts c WHERE c.id > 810 ORDER BY c.id LOOP
        IF r.tab = 'popsell.interactions' THEN
            IF r.k = 0 THEN
                INSERT INTO popsell.interactions (contact_id, kind, occurred_at) VALUES (NULL, 'click', now() - interval '1 hour');
                EXECUTE format('SET LOCAL ROLE %I', r.rolname);
                UPDATE popsell.interactions SET contact_id = r.id WHERE contact_id IS NULL;
            ELSE
                INSERT INTO popsell.interactions (contact_id, kind, occurred_at) VALUES (r.id, 'open', now() - interval '1 hour');
                EXECUTE format('SET LOCAL ROLE %I', r.rolname);
                UPDATE popsell.interactions SET kind = 'click' WHERE contact_id = r.id;
            END IF;
        ELSE
            INSERT INTO popsell.sales (contact_id, amount, sold_at) VALUES (NULL, 10, now() - interval '1 hour');
            EXECUTE format('SET LOCAL ROLE %I', r.rolname);
            UPDATE popsell.sales SET contact_id = r.id WHERE contact_id IS NULL;
        END IF;
        RESET ROLE;
    END LOOP;
END $$;
SELECT c.first_name AS not_counted
  FROM popsell.contacts c
 WHERE c.id > 810 AND c.last_activity_at IS DISTINCT FROM now() - interval '1 hour'
 ORDER BY 1;
COMMIT;
SET session_replication_role = replica;
DELETE FROM popsell.contacts; DELETE FROM popsell.contact_tombstones; DELETE FROM popsell.interactions;
DELETE FROM popsell.sales; DELETE FROM popsell.ambassadors WHERE id = 80;
RESET session_replication_role;

-- (e) History times: a future one, or infinity, would keep a contact
-- forever.  Every role that may insert contacts (read from the catalog)
-- gives each history column a far-future time or infinity: it is refused
-- (PS106) or stored as a finite time not after now; collect_contact likewise; record_interaction and
-- record_sale with a future time move last_activity_at to now only; an
-- UPDATE to a future time by every role that may update the column is
-- refused.  Listed: what went wrong (none expected).
SET session_replication_role = replica;
INSERT INTO popsell.ambassadors (id, kind, status, email, terms_accepted_at, created_at, last_login_at)
VALUES (81, 'customer', 'active', 'a81@example.test', now(), now(), now());
RESET session_replication_role;
-- popsell's roles but the owner (SPEC section 2); what each may write is read from the catalog
CREATE TEMP TABLE spec_roles AS
SELECT ARRAY['popsell_ambassador', 'popsell_brand', 'popsell_brand_bi', 'popsell_account_team',
             'popsell_technical', 'popsell_app', 'popsell_maintenance'] AS roles;
GRANT SELECT ON spec_roles TO PUBLIC;
CREATE TEMP TABLE history_cols (col text);
INSERT INTO history_cols VALUES ('created_at'), ('last_activity_at'), ('ambassador_optin_at'), ('brand_optin_at'),
       ('partners_optin_at'), ('email_confirmed_at');
CREATE TEMP TABLE history_tries AS
SELECT r.rolname, h.col, v.v
  FROM pg_roles r, history_cols h, (VALUES ('2999-01-01'), ('infinity'), ('-infinity')) v(v)
 WHERE r.rolname IN (SELECT unnest(roles) FROM spec_roles)
   AND has_column_privilege(r.rolname, 'popsell.contacts', h.col, 'INSERT');
GRANT SELECT ON history_tries TO PUBLIC;
SELECT string_agg(DISTINCT rolname, ' ' ORDER BY rolname) AS inserters_tested FROM history_tries;
CREATE TEMP TABLE history_wrong (what text);
GRANT INSERT ON history_wrong TO PUBLIC;
BEGIN;
DO $$
DECLARE
    t record;
    st text;
    n bigint;
    cid bigint;
BEGIN
    FOR t IN SELECT * FROM history_tries ORDER BY 1, 2, 3 LOOP
        n := nextval('popsell.contacts_id_seq');
        st := pg_temp.err(format('SET LOCAL ROLE %I; INSERT INTO popsell.contacts (id, ambassador_id, source, first_name, email, partners_optin, %I) '
                                 'VALUES (%s, 81, %L, %L, %L, true, %L)',
                                 t.rolname, t.col, n, 'blog', 'h', 'h' || n || '@example.test', t.v));
        RESET ROLE;
        -- refused (infinity: PS106), or stored as a finite time not after now
        IF st NOT IN ('ok', CASE WHEN t.v LIKE '%infinity' THEN 'PS106' END) THEN
            INSERT INTO history_wrong VALUES (format('%s INSERT %s = %s: %s', t.rolname, t.col, t.v, st));
        ELSIF EXISTS (SELECT 1 FROM popsell.contacts c
                       WHERE c.id = n AND (NOT isfinite((to_jsonb(c) ->> t.col)::timestamptz)
                                           OR (to_jsonb(c) ->> t.col)::timestamptz > clock_timestamp())) THEN
            INSERT INTO history_wrong VALUES (format('%s INSERT %s = %s: kept', t.rolname, t.col, t.v));
        END IF;
    END LOOP;
    -- the application's form path
    SET LOCAL ROLE popsell_app;
    st := pg_temp.err($q$SELECT popsell.collect_contact(81, 'order', '{"email": "hc1@example.test", "created_at": "infinity"}', true, true, false)$q$);
    IF st <> 'PS106' THEN INSERT INTO history_wrong VALUES ('collect_contact created_at infinity: ' || st); END IF;
    cid := popsell.collect_contact(81, 'order', '{"email": "hc2@example.test", "created_at": "2999-01-01"}', true, true, false);
    PERFORM popsell.record_interaction(cid, 'click', occurred_at => '2999-01-01');
    PERFORM popsell.record_sale(cid, 5, sold_at => 'infinity');
    RESET ROLE;
    INSERT INTO history_wrong
    SELECT 'collect_contact/record_*: ' || k FROM popsell.contacts c,
           LATERAL (VALUES ('created_at', c.created_at), ('last_activity_at', c.last_activity_at)) v(k, x)
     WHERE c.id = cid AND (v.x IS NULL OR v.x > clock_timestamp());
    -- updates to the future
    FOR t IN SELECT r.rolname, h.col
               FROM pg_roles r, history_cols h
              WHERE r.rolname IN (SELECT unnest(roles) FROM spec_roles)
                AND has_column_privilege(r.rolname, 'popsell.contacts', h.col, 'UPDATE') ORDER BY 1, 2 LOOP
        st := pg_temp.err(format('SET LOCAL ROLE %I; UPDATE popsell.contacts SET %I = %L WHERE id = %s',
                                 t.rolname, t.col, '2999-01-01', cid));
        RESET ROLE;
        IF st NOT IN ('PS106', 'PS105', '42501') THEN
            INSERT INTO history_wrong VALUES (format('%s UPDATE %s to the future: %s', t.rolname, t.col, st));
        END IF;
    END LOOP;
END $$;
SELECT string_agg(DISTINCT r.rolname, ' ' ORDER BY r.rolname) AS updaters_tested
  FROM pg_roles r, history_cols h
 WHERE r.rolname IN (SELECT unnest(roles) FROM spec_roles)
   AND has_column_privilege(r.rolname, 'popsell.contacts', h.col, 'UPDATE');
SELECT what AS history_wrong FROM history_wrong ORDER BY 1;
SELECT count(*) > 0 AS contacts_written, bool_and(greatest(created_at, last_activity_at, ambassador_optin_at, brand_optin_at) <= clock_timestamp()) AS none_in_future
  FROM popsell.contacts WHERE ambassador_id = 81;
ROLLBACK;
SET session_replication_role = replica;
DELETE FROM popsell.ambassadors WHERE id = 81;
RESET session_replication_role;

-- (f) An ambassador who starts leaving: every message queued for it and
-- not yet sent is cancelled, whatever its kind, but the erasure work
-- (delete_file, partner_erasure, partner_optout); sent rows stay.  One
-- unsent row of every outbox kind (read from the type).
SET session_replication_role = replica;
INSERT INTO popsell.ambassadors (id, kind, status, email, terms_accepted_at, created_at, last_login_at)
VALUES (82, 'customer', 'active', 'a82@example.test', now(), now(), now());
INSERT INTO popsell.outbox (kind, ambassador_id, payload, created_at, sent_at)
SELECT k, 82, '{}'::jsonb, now(), NULL FROM unnest(enum_range(NULL::popsell.outbox_kind)) k
UNION ALL
SELECT 'publication', 82, '{}', now(), now();
RESET session_replication_role;
SELECT popsell.unsubscribe_ambassador(82) IS NOT NULL AS leaving;
SELECT string_agg(kind::text, ' ' ORDER BY kind::text) AS unsent_left,
       (SELECT count(*) FROM popsell.outbox WHERE ambassador_id = 82 AND sent_at IS NOT NULL) AS sent_left
  FROM popsell.outbox WHERE ambassador_id = 82 AND sent_at IS NULL;
SET session_replication_role = replica;
DELETE FROM popsell.outbox WHERE ambassador_id = 82; DELETE FROM popsell.ambassadors WHERE id = 82;
RESET session_replication_role;

-- (g) Outbox rows age: sent_at never infinite (PS106), a future one from
-- the application taken as now; mail to a contact names it; unsent rows
-- age after log_retention from their queuing (erasure work excepted).
SET session_replication_role = replica;
INSERT INTO popsell.ambassadors (id, kind, status, email, terms_accepted_at, created_at, last_login_at)
VALUES (83, 'customer', 'active', 'a83@example.test', now(), now(), now());
INSERT INTO popsell.contacts (id, ambassador_id, source, first_name, email, email_status, ambassador_optin,
                              ambassador_optin_at, brand_optin, brand_optin_at, created_at)
VALUES (831, 83, 'order', 'Ox', 'ox@example.test', 'ok', 'optin_order', now(), 'optin_brand_database', now(), now());
INSERT INTO popsell.outbox (id, kind, ambassador_id, contact_id, payload, created_at, sent_at)
VALUES (8301, 'publication', 83, 831, '{"to": "ox@example.test"}', now(), NULL),
       (8302, 'publication', 83, 831, '{"to": "ox@example.test"}', now(), NULL),
       (8303, 'publication', 83, 831, '{"to": "ox@example.test"}', now() - interval '2 days', NULL),
       (8304, 'delete_file', NULL, NULL, '{"file_path": "ugc/x.jpg"}', now() - interval '2 days', NULL);
RESET session_replication_role;
SET ROLE popsell_app;
SELECT pg_temp.err($$UPDATE popsell.outbox SET sent_at = 'infinity' WHERE id = 8301$$) AS sent_infinity;
UPDATE popsell.outbox SET sent_at = '2999-01-01' WHERE id = 8302;
SELECT pg_temp.err($$INSERT INTO popsell.outbox (kind, payload) VALUES ('publication', '{"to": "x@example.test"}')$$) AS publication_without_contact,
       pg_temp.err($$INSERT INTO popsell.outbox (kind, payload) VALUES ('email_confirmation', '{"to": "x@example.test"}')$$) AS confirmation_without_anyone,
       pg_temp.err($$INSERT INTO popsell.outbox (kind, contact_id, payload, created_at) VALUES ('email_confirmation', 831, '{}', 'infinity')$$) AS created_infinity;
RESET ROLE;
SELECT id, sent_at IS NULL AS unsent, sent_at <= clock_timestamp() AS sent_not_in_future
  FROM popsell.outbox WHERE id IN (8301, 8302) ORDER BY id;
-- the unsent publication queued two days ago goes after log_retention; the unsent file deletion stays
SELECT pg_temp.run(now() - interval '2 days' + interval '1 year' - interval '1 hour') AS before_log_retention;
SELECT string_agg(id::text, ' ' ORDER BY id) AS outbox_left FROM popsell.outbox WHERE id BETWEEN 8301 AND 8304;
SELECT pg_temp.run(now() - interval '2 days' + interval '1 year' + interval '1 hour') IS NOT NULL AS ran;
SELECT string_agg(id::text, ' ' ORDER BY id) AS outbox_left FROM popsell.outbox WHERE id BETWEEN 8301 AND 8304;
SET session_replication_role = replica;
DELETE FROM popsell.outbox WHERE id BETWEEN 8301 AND 8304; DELETE FROM popsell.contacts WHERE id = 831;
DELETE FROM popsell.contact_tombstones; DELETE FROM popsell.ambassadors WHERE id = 83;
RESET session_replication_role;

\c contrib_regression
DROP DATABASE regress_popsell_303;
