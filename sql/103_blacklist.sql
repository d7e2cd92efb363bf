-- 103_blacklist: SPEC C3.  import_contacts counts; a global opt-out applies
-- to every row with the email at once, across ambassadors; what each
-- source does with a globally opted-out email; spam / hard_bounce /
-- blocked entries; email normalization variants; key rotation.

-- Own database: ids and rows do not depend on other tests.
\set regdb :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS popsell_t103;
CREATE DATABASE popsell_t103;
\c popsell_t103
\i sql/include/consent_fixture.sql

CREATE FUNCTION pg_temp.rows_of(e text) RETURNS TABLE(ambassador_id bigint, source popsell.contact_source,
    ambassador_optin popsell.ambassador_optin, email_status popsell.email_status, pending boolean)
LANGUAGE sql AS $$
    SELECT c.ambassador_id, c.source, c.ambassador_optin, c.email_status,
           c.source IN ('blog', 'blog_internal_form', 'store_purchase') AND c.email_confirmed_at IS NULL
      FROM popsell.contacts c WHERE c.email = popsell.normalize_email(e) ORDER BY c.id $$;

-- pg_temp.collect(...): collect_contact, then the stored ambassador_optin
-- and email_status, or 'skipped'.
CREATE FUNCTION pg_temp.collect(a bigint, s popsell.contact_source, d jsonb, ac boolean DEFAULT NULL, bc boolean DEFAULT NULL,
                                pc boolean DEFAULT NULL) RETURNS text LANGUAGE plpgsql AS $$
DECLARE i bigint; r text;
BEGIN
    i := popsell.collect_contact(a, s, d, ac, bc, pc);
    IF i IS NULL THEN RETURN 'skipped'; END IF;
    SELECT c.ambassador_optin || '/' || c.email_status INTO r FROM popsell.contacts c WHERE c.id = i;
    RETURN r;
END $$;

-- import_contacts: imported / skipped_blacklisted / skipped_duplicate.
SELECT * FROM popsell.import_contacts(1, '[
    {"email": "a@t103.example.test", "first_name": "A"},
    {"email": " A@T103.example.test "},
    {"email": "b@t103.example.test"},
    {"first_name": "No email"},
    {"first_name": "No email"}
]');
-- the same list again: everything with an email is a duplicate now
SELECT * FROM popsell.import_contacts(1, '[{"email": "a@t103.example.test"}, {"email": "b@t103.example.test"}, {"email": "c@t103.example.test"}]');
-- another ambassador has its own rows for the same people
SELECT * FROM popsell.import_contacts(2, '[{"email": "a@t103.example.test"}, {"email": "b@t103.example.test"}]');

-- A global opt-out (the contact, through one ambassador's row) applies to
-- every row with that email, whatever the ambassador, at once.
SELECT popsell.collect_contact(3, 'order', '{"email": "a@t103.example.test"}', NULL, true) AS a_order \gset
SELECT popsell.collect_contact(3, 'blog', '{"email": "a@t103.example.test"}', true) AS a_blog \gset
SELECT * FROM pg_temp.rows_of('a@t103.example.test');
SELECT popsell.opt_out(id, true) FROM popsell.contacts WHERE ambassador_id = 1 AND email = 'a@t103.example.test';
SELECT * FROM pg_temp.rows_of('a@t103.example.test');
SELECT count(*) AS ledger_rows_of_the_optout
  FROM popsell.consent_events e JOIN popsell.contacts c ON c.id = e.contact_id
 WHERE c.email = 'a@t103.example.test' AND e.new_ambassador_optin = 'global_optout' AND e.old_ambassador_optin IS NOT NULL;
-- The blacklist holds the keyed hash, never the email.
SELECT reason, key_id = popsell.hash_key_id() AS current_key,
       email_hash = popsell.hash_email('a@t103.example.test') AS keyed_hash,
       email_hash <> sha256(convert_to('a@t103.example.test', 'UTF8')) AS not_plain_sha256
  FROM popsell.blacklist;
SELECT count(*) AS plaintext_in_blacklist FROM popsell.blacklist WHERE position(convert_to('t103', 'UTF8') IN email_hash) > 0;

-- After it: an ambassador cannot store the email (crm_manual,
-- private_import): the row is skipped, bulk imports go on and report it.
SELECT * FROM popsell.import_contacts(2, '[{"email": "A@t103.example.test"}, {"email": "d@t103.example.test"}, {"email": "a@t103.example.test"}]');
SELECT * FROM popsell.import_contacts(3, '[{"email": "a@t103.example.test", "first_name": "X"}]');
SELECT popsell.collect_contact(2, 'crm_manual', '{"email": "a@t103.example.test"}') AS crm_collect;
INSERT INTO popsell.contacts (ambassador_id, source, email) VALUES (2, 'crm_manual', 'a@t103.example.test');
INSERT INTO popsell.contacts (ambassador_id, source, email) VALUES (2, 'private_import', ' a@T103.example.test');
-- Sources without a confirmation step store it as global_optout.
SELECT s AS source,
       pg_temp.collect(2, s, '{"email": "a@t103.example.test"}', true, true, true) AS stored
  FROM unnest(ARRAY['order', 'order_popin', 'external_form', 'brand_sync']::popsell.contact_source[]) s;
-- ... also through a plain INSERT by a trusted app with explicit opt-ins.
SET ROLE popsell_t1_app;
INSERT INTO popsell.contacts (ambassador_id, source, email, ambassador_optin, brand_optin)
VALUES (2, 'order', 'a@t103.example.test', 'optin_order', 'optin_brand_database');
RESET ROLE;
SELECT ambassador_optin, brand_optin FROM popsell.contacts
 WHERE email = 'a@t103.example.test' AND created_by = 'popsell_t1_app';
SELECT note FROM popsell.consent_events e JOIN popsell.contacts c ON c.id = e.contact_id
 WHERE c.email = 'a@t103.example.test' AND c.source = 'order_popin';

-- Contact-initiated sources (blog, blog_internal_form, store_purchase) are
-- stored pending like any other; only confirm_email lifts the opt-out, for
-- that row only, with a ledger note; the entry stays.
SELECT popsell.collect_contact(2, 'blog', '{"email": "a@t103.example.test"}', true, true) AS p_blog \gset
SELECT popsell.collect_contact(2, 'store_purchase', '{"email": "a@t103.example.test"}', true) AS p_store \gset
SELECT popsell.collect_contact(2, 'blog_internal_form', '{"email": "a@t103.example.test"}', true, true) AS p_bif \gset
SELECT id = :p_blog AS blog, id = :p_store AS store, ambassador_optin, email_status,
       email_confirmed_at IS NULL AS pending,
       (SELECT count(*) FROM popsell.outbox o WHERE o.contact_id = c.id AND o.kind = 'email_confirmation') AS confirmation_queued
  FROM popsell.contacts c WHERE c.id IN (:p_blog, :p_store, :p_bif) ORDER BY c.id;
SELECT popsell.confirm_email(:p_blog, (SELECT o.payload->>'token' FROM popsell.outbox o WHERE o.contact_id = :p_blog AND o.kind = 'email_confirmation' ORDER BY o.id DESC LIMIT 1));
SELECT popsell.confirm_email(:p_bif, (SELECT o.payload->>'token' FROM popsell.outbox o WHERE o.contact_id = :p_bif AND o.kind = 'email_confirmation' ORDER BY o.id DESC LIMIT 1));
SELECT c.source, c.ambassador_optin, c.email_status, c.email_confirmed_at IS NULL AS pending
  FROM popsell.contacts c WHERE c.id IN (:p_blog, :p_store, :p_bif) ORDER BY c.id;
SELECT e.old_ambassador_optin, e.new_ambassador_optin, e.actor, e.path, e.note
  FROM popsell.consent_events e WHERE e.contact_id IN (:p_blog, :p_bif) ORDER BY e.id;
SELECT popsell._globally_opted_out('a@t103.example.test') AS entry_stays;
SELECT popsell.collect_contact(3, 'crm_manual', '{"email": "a@t103.example.test"}') AS others_still_blocked;
-- An unconfirmed row stays opted out (pending) and is never sendable.
SELECT ambassador_optin, email_status FROM popsell.contacts WHERE id = :p_store;

-- A global opt-out of a contact without email opts out that row only.
SELECT popsell.collect_contact(1, 'crm_manual', '{"first_name": "No email either"}') AS ne \gset
SELECT popsell.opt_out(:ne, true);
SELECT ambassador_optin, (SELECT count(*) FROM popsell.blacklist) AS blacklist_entries FROM popsell.contacts WHERE id = :ne;

-- Changing a contact's email to a globally opted-out one opts the row out.
-- (an ambassador who does not hold it yet: one holds each email once)
INSERT INTO popsell.ambassadors (id, kind, status, terms_accepted_at, first_name, email)
VALUES (6, 'customer', 'active', now(), 'Fay', 'fay@amb.test');
SELECT popsell.collect_contact(6, 'crm_manual', '{"email": "e@t103.example.test"}') AS ce \gset
UPDATE popsell.contacts SET email = 'A@t103.example.test' WHERE id = :ce;
SELECT ambassador_optin, email FROM popsell.contacts WHERE id = :ce;
SELECT note FROM popsell.consent_events WHERE contact_id = :ce ORDER BY id DESC LIMIT 1;

-- spam, hard_bounce and blocked entries give that email_status wherever
-- the email is inserted (any source, any ambassador).
SELECT popsell.collect_contact(1, 'crm_manual', jsonb_build_object('email', r || '@bl.t103.example.test')) IS NOT NULL AS seeded,
       popsell.email_callback(r || '@bl.t103.example.test', r::popsell.email_status) AS rows_changed
  FROM unnest(ARRAY['spam', 'hard_bounce', 'blocked']) r;
SELECT r AS reason, s AS source,
       pg_temp.collect(2, s, jsonb_build_object('email', upper(r) || '@BL.t103.example.test'), true, true) AS stored
  FROM unnest(ARRAY['spam', 'hard_bounce', 'blocked']) r,
       unnest(ARRAY['crm_manual', 'blog', 'order', 'brand_sync', 'external_form']::popsell.contact_source[]) s
 ORDER BY 1, 2;
-- ... a plain INSERT with an explicit email_status ok does not escape it,
INSERT INTO popsell.contacts (ambassador_id, source, email, email_status)
VALUES (1, 'order', 'spam@bl.t103.example.test', 'ok') RETURNING email_status;
-- ... nor an UPDATE of the email to a blacklisted one.
SELECT popsell.collect_contact(6, 'crm_manual', '{"email": "f@t103.example.test"}') AS cf \gset
UPDATE popsell.contacts SET email = 'blocked@bl.t103.example.test' WHERE id = :cf;
SELECT email_status FROM popsell.contacts WHERE id = :cf;
-- ... and a soft bounce is not blacklisted.
SELECT popsell.collect_contact(1, 'crm_manual', '{"email": "soft@t103.example.test"}') IS NOT NULL AS seeded;
SELECT popsell.email_callback('soft@t103.example.test', 'soft_bounce');
SELECT pg_temp.collect(2, 'crm_manual', '{"email": "soft@t103.example.test"}') AS soft_bounced_email_elsewhere;

-- Normalization variants (case, surrounding spaces, Unicode composed /
-- decomposed) are one email: one entry, hit by every variant.
SELECT popsell.normalize_email(v) AS normalized, popsell.hash_email(v) = popsell.hash_email(U&'jos\00e9@example.test') AS same_hash
  FROM unnest(ARRAY[U&'JOS\00C9@example.test', U&'jose\0301@example.test', U&'  Jose\0301@EXAMPLE.test  ',
                    U&'jos\00e9@example.test', U&'JOSE\0301@Example.Test']) v;
SELECT popsell.collect_contact(1, 'crm_manual', jsonb_build_object('email', U&'JOS\00C9@example.test')) AS jose \gset
SELECT popsell.opt_out(:jose, true);
SELECT v AS variant, popsell._globally_opted_out(v) AS opted_out,
       popsell.collect_contact(2, 'crm_manual', jsonb_build_object('email', v)) IS NULL AS skipped
  FROM unnest(ARRAY[U&'jose\0301@example.test', U&'  Jose\0301@EXAMPLE.test  ', U&'jos\00e9@example.test']) v;
SELECT count(*) AS entries FROM popsell.blacklist WHERE email_hash = ANY (popsell.email_hashes(U&'jose\0301@example.test'));
SELECT * FROM popsell.import_contacts(3, jsonb_build_array(jsonb_build_object('email', U&'JOSE\0301@example.test')));
SELECT popsell.email_callback(U&'JOSE\0301@EXAMPLE.TEST', 'spam') AS spam_rows;
SELECT DISTINCT email_status FROM popsell.contacts WHERE email = U&'jos\00e9@example.test';

-- Key rotation: old entries keep working, new entries use the new key.
SELECT popsell.opt_out(min(id), true) FROM popsell.contacts WHERE email = 'b@t103.example.test';
SELECT popsell.hash_key_id() AS key_before;
SELECT popsell.rotate_hash_key() AS new_key;
SELECT popsell.hash_key_id() AS key_after;
SELECT popsell._globally_opted_out('a@t103.example.test') AS old_entry_effective,
       popsell.collect_contact(2, 'crm_manual', '{"email": "a@t103.example.test"}') IS NULL AS old_entry_skips,
       pg_temp.collect(2, 'order', '{"email": "hard_bounce@bl.t103.example.test"}') AS old_status_entry;
SELECT popsell.collect_contact(1, 'crm_manual', '{"email": "g@t103.example.test"}') AS cg \gset
SELECT popsell.opt_out(:cg, true);
SELECT key_id, email_hash = popsell.hash_email('g@t103.example.test') AS under_new_key
  FROM popsell.blacklist WHERE email_hash = ANY (popsell.email_hashes('g@t103.example.test'));
SELECT popsell.collect_contact(2, 'crm_manual', '{"email": "G@t103.example.test"}') IS NULL AS new_entry_skips;
-- Opting an email out again after the rotation adds no duplicate entry.
SELECT popsell._blacklist_add('b@t103.example.test', 'global_optout') AS rows_changed;
SELECT key_id, count(*) AS entries_for_b FROM popsell.blacklist
 WHERE email_hash = ANY (popsell.email_hashes('b@t103.example.test')) AND reason = 'global_optout' GROUP BY 1;
-- Legacy mode (plain SHA-256, no key): both older keyed entries still hit.
SELECT popsell.rotate_hash_key(legacy => true) AS legacy_key;
SELECT popsell.hash_email('h@t103.example.test') = sha256(convert_to('h@t103.example.test', 'UTF8')) AS legacy_is_sha256;
SELECT popsell.collect_contact(2, 'crm_manual', '{"email": "a@t103.example.test"}') IS NULL AS key1_entry_skips,
       popsell.collect_contact(2, 'crm_manual', '{"email": "g@t103.example.test"}') IS NULL AS key2_entry_skips;
SELECT popsell.collect_contact(1, 'crm_manual', '{"email": "h@t103.example.test"}') AS ch \gset
SELECT popsell.opt_out(:ch, true);
SELECT key_id = popsell.hash_key_id() AS legacy_key_used FROM popsell.blacklist
 WHERE email_hash = ANY (popsell.email_hashes('h@t103.example.test'));
SELECT popsell.collect_contact(3, 'crm_manual', '{"email": "h@t103.example.test"}') IS NULL AS legacy_entry_skips;
-- A keyed key after the legacy one: everything still effective.
SELECT popsell.rotate_hash_key() AS key4;
SELECT e AS email, popsell._globally_opted_out(e) AS opted_out
  FROM unnest(ARRAY['a@t103.example.test', 'g@t103.example.test', 'h@t103.example.test', U&'jose\0301@example.test']) e;

-- No row of a globally opted-out email is sendable, whatever its source,
-- but the rows the person confirmed themselves.
SELECT c.source, c.ambassador_optin, c.email_status, count(*)
  FROM popsell.contacts c
 WHERE popsell._globally_opted_out(c.email)
   AND c.ambassador_optin <> 'global_optout' AND c.email_status = 'ok'
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

-- The backend still answers.
SELECT 1 AS alive;
\c :regdb
SET client_min_messages = warning;
DROP DATABASE popsell_t103;
