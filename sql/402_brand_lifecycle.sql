-- 402_brand_lifecycle: program suspension and resumption, end of the
-- brand's contract and its rollback, and the pre-GDPR migration of
-- contacts (SPEC section 5, Brand).

SET client_min_messages = warning;
DROP DATABASE IF EXISTS popsell_t402;
CREATE DATABASE popsell_t402;
\c popsell_t402
SET client_min_messages = warning;
CREATE EXTENSION popsell CASCADE;
RESET client_min_messages;
\set SHOW_CONTEXT never

CREATE FUNCTION pg_temp.err(q text, OUT state text, OUT message text)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    state := 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.err(text) TO PUBLIC;

INSERT INTO popsell.ambassadors (id, kind, status, terms_accepted_at, first_name, email) VALUES
    (1, 'customer',  'active',            now(), 'Ann', 'ann@amb.test'),
    (2, 'sales_rep', 'active',            now(), 'Bob', 'bob@amb.test'),
    (3, 'customer',  'signup_incomplete', NULL,  'Cid', 'cid@amb.test');
INSERT INTO popsell.ambassadors (id, kind, status, terms_accepted_at, first_name, email, deletion_due_at, leaving_reason) VALUES
    (4, 'customer',  'leaving',           now(), 'Dee', 'dee@amb.test', now() + interval '3 days', 'unsubscribed');

-- ------------------------------------------------------------------
-- suspension
-- ------------------------------------------------------------------
SET ROLE popsell_brand;
SELECT popsell.suspend_program() AS notices_queued;
SELECT * FROM pg_temp.err('SELECT popsell.suspend_program()');
RESET ROLE;
SELECT program_suspended_at IS NOT NULL AS suspended FROM popsell.settings;
-- one notice per active ambassador, all at once, with the deadline
-- the deadline is the suspension plus suspension_max, compared as the same
-- expression (an interval printed in days would depend on today's date)
SELECT kind, ambassador_id, contact_id,
       (payload ->> 'data_kept_until')::timestamptz
         = (payload ->> 'suspended_at')::timestamptz + s.suspension_max AS kept_for_suspension_max
  FROM popsell.outbox, popsell.settings s ORDER BY ambassador_id;
SELECT count(DISTINCT created_at) AS queued_at_once FROM popsell.outbox;
SET ROLE popsell_account_team;
SELECT popsell.resume_program();
SELECT * FROM pg_temp.err('SELECT popsell.resume_program()');
RESET ROLE;
SELECT program_suspended_at IS NULL AS resumed FROM popsell.settings;
-- neither ambassadors nor BI tools suspend a program
SET ROLE popsell_ambassador;
SELECT * FROM pg_temp.err('SELECT popsell.suspend_program()');
SET ROLE popsell_brand_bi;
SELECT * FROM pg_temp.err('SELECT popsell.suspend_program()');
RESET ROLE;

-- ------------------------------------------------------------------
-- end of the brand's contract
-- ------------------------------------------------------------------
SET ROLE popsell_brand;
SELECT * FROM pg_temp.err('SELECT popsell.end_brand_contract()');
RESET ROLE;
SET ROLE popsell_account_team;
SELECT d - now() BETWEEN interval '6 days 23 hours' AND interval '7 days' AS erased_in_seven_days
  FROM (SELECT popsell.end_brand_contract() AS d) x;
SELECT * FROM pg_temp.err('SELECT popsell.end_brand_contract()');
SELECT popsell.cancel_brand_contract_end();
SELECT * FROM pg_temp.err('SELECT popsell.cancel_brand_contract_end()');
SELECT popsell.end_brand_contract() IS NOT NULL AS ended_again;
RESET ROLE;
SELECT brand_contract_ended_at IS NOT NULL AS ended FROM popsell.settings;
UPDATE popsell.settings SET brand_contract_ended_at = now() - interval '8 days';
SET ROLE popsell_technical;
SELECT * FROM pg_temp.err('SELECT popsell.cancel_brand_contract_end()');
RESET ROLE;
UPDATE popsell.settings SET brand_contract_ended_at = NULL;

-- ------------------------------------------------------------------
-- pre-GDPR migration
-- ------------------------------------------------------------------
-- Pre-GDPR rows loaded by the owner with their history.
INSERT INTO popsell.contacts (id, ambassador_id, source, first_name, email, created_at, last_activity_at) VALUES
    (10, 1, 'crm_manual', 'Active by date',   'a10@c.test', '2016-01-01', '2017-05-01'),
    (11, 1, 'crm_manual', 'Clicked',          'a11@c.test', '2016-01-01', NULL),
    (12, 1, 'crm_manual', 'Opened only',      'a12@c.test', '2016-01-01', NULL),
    (13, 1, 'crm_manual', 'Bought',           'a13@c.test', '2016-01-01', NULL),
    (14, 1, 'crm_manual', 'Nothing',          'a14@c.test', '2016-01-01', NULL),
    (15, 1, 'crm_manual', 'Invited already',  'a15@c.test', '2016-01-01', NULL),
    (16, 2, 'brand_sync', 'Brand opt-in',     'a16@c.test', '2016-01-01', '2017-01-01');
UPDATE popsell.contacts SET ambassador_optin_at = '2016-01-01' WHERE id BETWEEN 10 AND 15;
INSERT INTO popsell.interactions (contact_id, kind, occurred_at) VALUES
    (11, 'click', '2017-02-01'), (12, 'open', '2017-02-01');
INSERT INTO popsell.sales (contact_id, ambassador_id, amount, sold_at) VALUES (13, 1, 10, '2017-03-01');
SELECT popsell.send_invitation(15);
-- contact 16 was inserted as new by the brand's sync without opt-in, then
-- opted out by staff: it has a consent event besides its insert
UPDATE popsell.contacts SET ambassador_optin = 'optout_email' WHERE id = 16;

SET ROLE popsell_account_team;
SELECT * FROM pg_temp.err('SELECT * FROM popsell.apply_pre_gdpr_migration()');
RESET ROLE;
SET ROLE popsell_technical;
SELECT * FROM popsell.apply_pre_gdpr_migration();
RESET ROLE;
SELECT id, ambassador_optin,
       ambassador_optin_at > now() - interval '1 minute' AS clock_restarted
  FROM popsell.contacts ORDER BY id;
-- the ledger says who did it: the system, by the migration path
SELECT contact_id, old_ambassador_optin, new_ambassador_optin, actor, path
  FROM popsell.consent_events WHERE path = 'migration' ORDER BY contact_id;
-- once per contact: a second run changes nothing and restarts no clock
SELECT max(ambassador_optin_at) AS stamp FROM popsell.contacts WHERE id = 14 \gset
SET ROLE popsell_technical;
SELECT * FROM popsell.apply_pre_gdpr_migration();
RESET ROLE;
SELECT ambassador_optin_at = :'stamp' AS clock_unchanged FROM popsell.contacts WHERE id = 14;
