-- 106_follow_ups: rules added after the first round of consent tests.
--  * a staff member recording a global opt-out by plain UPDATE makes it
--    global (blacklist entry, every row with the email follows);
--  * unsent mail a contact may no longer receive is cancelled when its
--    consent changes;
--  * notices to ambassadors are never queued for a contact;
--  * unknown ids get PS200, over-long SSO subjects PS106;
--  * ambassadors' history columns are given only by trusted callers.

\set regdb :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS popsell_t106;
CREATE DATABASE popsell_t106;
\c popsell_t106
\i sql/include/consent_fixture.sql

-- A global opt-out recorded by staff is global.
SELECT popsell.collect_contact(1, 'crm_manual', '{"email": "g@t106.example.test"}') AS g1 \gset
SELECT popsell.collect_contact(2, 'crm_manual', '{"email": "g@t106.example.test"}') AS g2 \gset
SET ROLE popsell_t1_staff;
UPDATE popsell.contacts SET ambassador_optin = 'global_optout' WHERE id = :g1;
RESET ROLE;
SELECT id = :g1 AS first, ambassador_optin FROM popsell.contacts
 WHERE email = 'g@t106.example.test' ORDER BY id;
SELECT popsell._globally_opted_out('g@t106.example.test') AS blacklisted;
SELECT c.id = :g2 AS second, e.path, e.old_ambassador_optin, e.new_ambassador_optin
  FROM popsell.consent_events e JOIN popsell.contacts c ON c.id = e.contact_id
 WHERE c.email = 'g@t106.example.test' ORDER BY e.id;
-- ... and a later import of it by another ambassador is skipped.
SELECT * FROM popsell.import_contacts(3, '[{"email": "G@t106.example.test"}]');

-- Unsent mail goes when the contact may no longer receive it.
SELECT popsell.collect_contact(1, 'crm_manual', '{"email": "m@t106.example.test"}') AS m \gset
SELECT popsell.send_invitation(:m);
SELECT kind, sent_at IS NULL AS unsent FROM popsell.outbox WHERE contact_id = :m;
SELECT popsell.opt_out(:m);
SELECT count(*) AS left_in_outbox FROM popsell.outbox WHERE contact_id = :m;
-- A sent row is history and stays.
SELECT popsell.collect_contact(1, 'crm_manual', '{"email": "s@t106.example.test"}') AS s \gset
SELECT popsell.send_invitation(:s);
UPDATE popsell.outbox SET sent_at = now() WHERE contact_id = :s;
SELECT popsell.opt_out(:s);
SELECT kind, sent_at IS NOT NULL AS sent FROM popsell.outbox WHERE contact_id = :s;

-- Notices to ambassadors are not for contacts.
SELECT pg_temp.try(format('INSERT INTO popsell.outbox (kind, ambassador_id, contact_id) VALUES (%L, 1, %s)', k, :s)) AS result, k AS kind
  FROM unnest(ARRAY['inactivity_warning', 'suspension_notice', 'deletion_notice']) k;

-- Unknown ids.
SELECT * FROM pg_temp.err($$INSERT INTO popsell.contacts (ambassador_id, source, first_name) VALUES (424242, 'crm_manual', 'X')$$);
SELECT * FROM pg_temp.err(format('SELECT popsell.record_interaction(%s, ''click'', 424242)', :s));
SELECT * FROM pg_temp.err(format('SELECT popsell.record_sale(%s, 10, publication_id => 424242)', :s));
SELECT * FROM pg_temp.err($$SELECT popsell.sso_upsert_ambassador(repeat('x', 2000), '{}')$$);
SELECT 1 AS still_answering;

-- Ambassadors' history: given only by trusted callers.
SET client_min_messages = warning;
DROP ROLE IF EXISTS popsell_t106_team;
RESET client_min_messages;
CREATE ROLE popsell_t106_team IN ROLE popsell_account_team;
SET ROLE popsell_t106_team;
INSERT INTO popsell.ambassadors (kind, status, first_name, email, created_at, last_login_at)
VALUES ('customer', 'signup_incomplete', 'H', 'h@amb106.test', '2000-01-01', '2000-01-01')
RETURNING created_at > now() - interval '1 hour' AS stamped_now, last_login_at;
SELECT * FROM pg_temp.err($$UPDATE popsell.ambassadors SET last_login_at = '2001-01-01' WHERE email = 'h@amb106.test'$$);
RESET ROLE;
INSERT INTO popsell.ambassadors (kind, status, first_name, email, created_at)
VALUES ('customer', 'signup_incomplete', 'I', 'i@amb106.test', '2000-01-01')
RETURNING created_at = '2000-01-01' AS history_kept_for_superuser;

\c :regdb
DROP DATABASE popsell_t106;
DROP ROLE popsell_t106_team;
