-- 102_transitions: every allowed transition of popsell.transition_rules()
-- exercised through its real path (the event functions; plain UPDATE as
-- staff, as an ambassador, as popsell_app), the forbidden ones per actor
-- (PS100 naming from and to), and the ledger: one consent_events row per
-- accepted change, none for a rejected one, also inside failed
-- transactions and rolled-back savepoints.

-- Own database: ids and rows do not depend on other tests.
\set regdb :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS popsell_t102;
CREATE DATABASE popsell_t102;
\c popsell_t102
\i sql/include/consent_fixture.sql

-- pg_temp.state(id): the consent columns and the number of ledger rows.
CREATE FUNCTION pg_temp.state(p bigint) RETURNS text LANGUAGE sql AS $$
    SELECT format('%s/%s/%s/%s events=%s', c.ambassador_optin, c.brand_optin, c.partners_optin, c.email_status,
                  (SELECT count(*) FROM popsell.consent_events e WHERE e.contact_id = p))
      FROM popsell.contacts c WHERE c.id = p $$;
-- pg_temp.last_event(id): the newest ledger row of a contact.
CREATE FUNCTION pg_temp.last_event(p bigint) RETURNS text LANGUAGE sql AS $$
    SELECT format('%s %s: %s %s->%s %s->%s %s->%s %s->%s%s', e.actor, e.path, e.changed,
                  e.old_ambassador_optin, e.new_ambassador_optin, e.old_brand_optin, e.new_brand_optin,
                  e.old_partners_optin, e.new_partners_optin, e.old_email_status, e.new_email_status,
                  coalesce(' (' || e.note || ')', ''))
      FROM popsell.consent_events e WHERE e.contact_id = p ORDER BY e.id DESC LIMIT 1 $$;

-- The table under test.
SELECT * FROM popsell.transition_rules();

-- send_invitation: new -> invitation_sent, with the invitation queued.
SELECT popsell.collect_contact(1, 'crm_manual', '{"email": "inv1@t102.example.test"}') AS c1 \gset
SELECT popsell.send_invitation(:c1);
SELECT pg_temp.state(:c1), pg_temp.last_event(:c1);
SELECT kind, count(*) FROM popsell.outbox WHERE contact_id = :c1 GROUP BY 1;
SELECT invitation_sent_at IS NOT NULL AS stamped, invitations_sent FROM popsell.contacts WHERE id = :c1;
-- A second invitation is refused (PS100), nothing queued, no ledger row.
SELECT * FROM pg_temp.err(format('SELECT popsell.send_invitation(%s)', :c1));
SELECT pg_temp.state(:c1), (SELECT count(*) FROM popsell.outbox WHERE contact_id = :c1) AS queued;

-- accept_invitation: invitation_sent -> invitation_accepted (the contact).
SELECT popsell.accept_invitation(:c1);
SELECT pg_temp.state(:c1), pg_temp.last_event(:c1);
SELECT ambassador_optin_at >= invitation_sent_at AS stamp_moved FROM popsell.contacts WHERE id = :c1;
-- ... and cannot answer twice.
SELECT * FROM pg_temp.err(format('SELECT popsell.decline_invitation(%s)', :c1));
SELECT * FROM pg_temp.err(format('SELECT popsell.accept_invitation(%s)', :c1));

-- decline_invitation: invitation_sent -> invitation_declined.
SELECT popsell.collect_contact(1, 'crm_manual', '{"email": "inv2@t102.example.test"}') AS c2 \gset
SELECT * FROM pg_temp.err(format('SELECT popsell.accept_invitation(%s)', :c2));
SELECT * FROM pg_temp.err(format('SELECT popsell.decline_invitation(%s)', :c2));
SELECT popsell.send_invitation(:c2);
SELECT popsell.decline_invitation(:c2);
SELECT pg_temp.state(:c2), pg_temp.last_event(:c2);
-- An opted-out contact is not invited again, nor accepted.
SELECT pg_temp.try(format('SELECT popsell.send_invitation(%s)', :c2)) AS reinvite,
       pg_temp.try(format('SELECT popsell.accept_invitation(%s)', :c2)) AS accept_after_decline;

-- confirm_email: optin_blog_pending -> optin_blog_verified (blog,
-- store_purchase) or optin_internal_form (blog_internal_form), and
-- unverified -> ok; an unticked row only gets its email confirmed.
SELECT popsell.collect_contact(1, 'blog', '{"email": "b1@t102.example.test"}', true, true) AS b1 \gset
SELECT popsell.collect_contact(1, 'store_purchase', '{"email": "b2@t102.example.test"}', true) AS b2 \gset
SELECT popsell.collect_contact(1, 'blog_internal_form', '{"email": "b3@t102.example.test"}', true, true) AS b3 \gset
SELECT popsell.collect_contact(1, 'blog', '{"email": "b4@t102.example.test"}', false, false) AS b4 \gset
SELECT popsell.confirm_email(u.id, (SELECT o.payload->>'token' FROM popsell.outbox o WHERE o.contact_id = u.id AND o.kind = 'email_confirmation' ORDER BY o.id DESC LIMIT 1)) FROM unnest(ARRAY[:b1, :b2, :b3, :b4]::bigint[]) AS u(id);
SELECT c.source, pg_temp.state(c.id), c.email_confirmed_at IS NOT NULL AS confirmed, pg_temp.last_event(c.id)
  FROM popsell.contacts c WHERE c.id IN (:b1, :b2, :b3, :b4) ORDER BY c.id;
-- Confirming twice, or a source without confirmation: PS100.
SELECT pg_temp.try(format('SELECT popsell.confirm_email(%s, ''token'')', :b1)) AS twice,
       pg_temp.try(format('SELECT popsell.confirm_email(%s, ''token'')', :c1)) AS crm_contact;

-- opt_out: the contact leaves its ambassador (any state but global_optout
-- -> optout_email); opt_out changes only the ambassador opt-in.
SELECT popsell.opt_out(:b1);
SELECT pg_temp.state(:b1), pg_temp.last_event(:b1);
-- again: nothing to change, no ledger row
SELECT popsell.opt_out(:b1);
SELECT pg_temp.state(:b1);

-- email_callback: ok/unverified/soft_bounce -> spam, hard_bounce,
-- soft_bounce, blocked (the system).
SELECT count(popsell.collect_contact(1, 'crm_manual', jsonb_build_object('email', s || '@cb.t102.example.test'))) AS collected
  FROM unnest(ARRAY['spam', 'hard_bounce', 'soft_bounce', 'blocked']) s;
SELECT id AS spam_id FROM popsell.contacts WHERE email = 'spam@cb.t102.example.test' \gset
SELECT s AS status, popsell.email_callback(s || '@cb.t102.example.test', s::popsell.email_status) AS rows_changed
  FROM unnest(ARRAY['spam', 'hard_bounce', 'soft_bounce', 'blocked']) s;
SELECT c.email, pg_temp.state(c.id), pg_temp.last_event(c.id)
  FROM popsell.contacts c WHERE c.email LIKE '%@cb.t102.example.test' ORDER BY c.email;
-- unverified -> soft_bounce, then soft_bounce -> hard_bounce
SELECT popsell.collect_contact(1, 'blog', '{"email": "sb@t102.example.test"}', true) AS sb \gset
SELECT popsell.email_callback('sb@t102.example.test', 'soft_bounce');
SELECT pg_temp.state(:sb);
SELECT popsell.email_callback('SB@t102.example.test', 'hard_bounce');
SELECT pg_temp.state(:sb), pg_temp.last_event(:sb);
-- final states do not move: a later callback changes nothing
SELECT popsell.email_callback('spam@cb.t102.example.test', 'hard_bounce') AS spam_then_hard,
       popsell.email_callback('spam@cb.t102.example.test', 'soft_bounce') AS spam_then_soft;
SELECT pg_temp.state(id) FROM popsell.contacts WHERE email = 'spam@cb.t102.example.test';
-- email_callback accepts spam, hard_bounce, soft_bounce and blocked only.
SELECT s AS status, pg_temp.try(format('SELECT popsell.email_callback(%L, %L)', 'x@t102.example.test', s)) AS result
  FROM unnest(enum_range(NULL::popsell.email_status)) s ORDER BY 1;

-- release_soft_bounce: soft_bounce -> ok (the ambassador); nothing else.
SELECT popsell.collect_contact(1, 'crm_manual', '{"email": "rel@t102.example.test"}') AS rel \gset
SELECT pg_temp.try(format('SELECT popsell.release_soft_bounce(%s)', :rel)) AS release_ok_contact;
SELECT popsell.email_callback('rel@t102.example.test', 'soft_bounce');
SELECT popsell.release_soft_bounce(:rel);
SELECT pg_temp.state(:rel), pg_temp.last_event(:rel);
SELECT pg_temp.try(format('SELECT popsell.release_soft_bounce(%s)', :spam_id)) AS release_spam;

-- The system (run_maintenance's path): invitation_sent -> optout_no_response.
SELECT popsell.collect_contact(1, 'crm_manual', '{"email": "nr@t102.example.test"}') AS nr \gset
SELECT popsell.send_invitation(:nr);
BEGIN;
SET LOCAL popsell.actor = 'system';
UPDATE popsell.contacts SET ambassador_optin = 'optout_no_response' WHERE id = :nr;
SELECT pg_temp.try(format('UPDATE popsell.contacts SET ambassador_optin = %L WHERE id = %s', 'optout_no_response', :c1)) AS system_on_accepted;
COMMIT;
SELECT pg_temp.state(:nr), pg_temp.last_event(:nr);

-- The pre-GDPR migration: new -> optin_other.
SELECT popsell.collect_contact(1, 'crm_manual', '{"email": "mig@t102.example.test"}') AS mig \gset
BEGIN;
SET LOCAL popsell.actor = 'migration';
UPDATE popsell.contacts SET ambassador_optin = 'optin_other' WHERE id = :mig;
COMMIT;
SELECT pg_temp.state(:mig), pg_temp.last_event(:mig);

-- The brand sync: new -> optin_brand_imported, brand opt-in and partners
-- opt-in of a brand_sync contact; withdrawals.
SELECT popsell.collect_contact(2, 'brand_sync', '{"email": "bs@t102.example.test"}', NULL, false) AS bs \gset
BEGIN;
SET LOCAL popsell.actor = 'brand_sync';
UPDATE popsell.contacts SET ambassador_optin = 'optin_brand_imported', brand_optin = 'optin_brand_database'
 WHERE id = :bs;
-- (v2) a partners opt-in comes only from popsell's own forms: never from the brand sync
SELECT pg_temp.try(format('UPDATE popsell.contacts SET partners_optin = true WHERE id = %s', :bs)) AS brand_sync_sets_partners;
SELECT pg_temp.state(:bs), pg_temp.last_event(:bs);
UPDATE popsell.contacts SET brand_optin = 'storage_only' WHERE id = :bs;
SELECT pg_temp.state(:bs), pg_temp.last_event(:bs);
-- not for contacts from another source
SELECT pg_temp.try(format('UPDATE popsell.contacts SET ambassador_optin = %L WHERE id = %s', 'optin_brand_imported', :mig)) AS brand_sync_on_crm;
COMMIT;

-- Staff (plain UPDATE by popsell_brand): records an opt-out the person
-- asked for, withdraws brand and partners opt-ins; nothing else.
SELECT popsell.collect_contact(1, 'order', '{"email": "st@t102.example.test"}', NULL, true, true) AS st \gset
SELECT popsell.collect_contact(3, 'crm_manual', '{"email": "st@t102.example.test"}') AS st_other \gset
SET ROLE popsell_t1_staff;
UPDATE popsell.contacts SET brand_optin = 'no_optin', partners_optin = false WHERE id = :st;
UPDATE popsell.contacts SET ambassador_optin = 'optout_email' WHERE id = :st;
SELECT to_v, pg_temp.try(format('UPDATE popsell.contacts SET ambassador_optin = %L WHERE id = %s', to_v, :st)) AS staff_from_optout_email
  FROM unnest(ARRAY['new', 'invitation_sent', 'invitation_accepted', 'optin_order', 'optin_other', 'storage_only', 'global_optout']) to_v;
SELECT pg_temp.try(format('UPDATE popsell.contacts SET email_status = %L WHERE id = %s', 'spam', :st)) AS staff_sets_spam,
       pg_temp.try(format('UPDATE popsell.contacts SET brand_optin = %L WHERE id = %s', 'optin_brand_database', :st)) AS staff_sets_brand_optin,
       pg_temp.try(format('UPDATE popsell.contacts SET partners_optin = true WHERE id = %s', :st)) AS staff_sets_partners;
RESET ROLE;
SELECT pg_temp.state(:st);
-- A global opt-out recorded by staff is a global opt-out (SPEC C3): the
-- email is blacklisted and every row with it is opted out at once.
SELECT popsell._globally_opted_out('st@t102.example.test') AS blacklisted,
       pg_temp.state(:st_other) AS other_ambassadors_row;
SELECT e.actor, e.path, e.actor_role, e.changed, e.old_ambassador_optin, e.new_ambassador_optin
  FROM popsell.consent_events e WHERE e.contact_id = :st ORDER BY e.id;

-- An ambassador (plain UPDATE): never into an opted-in state, never out of
-- an opted-out state, never an invitation but through send_invitation.
SELECT popsell.collect_contact(1, 'crm_manual', '{"email": "am1@t102.example.test"}') AS am1 \gset
SET ROLE popsell_t1_amb;
SELECT v AS to_v, pg_temp.try(format('UPDATE popsell.contacts SET ambassador_optin = %L WHERE id = %s', v, :am1)) AS from_new
  FROM unnest(enum_range(NULL::popsell.ambassador_optin)) v WHERE v <> 'new' ORDER BY v;
SELECT v AS to_v, pg_temp.try(format('UPDATE popsell.contacts SET ambassador_optin = %L WHERE id = %s', v, :c2)) AS from_declined
  FROM unnest(enum_range(NULL::popsell.ambassador_optin)) v WHERE v <> 'invitation_declined' ORDER BY v;
SELECT pg_temp.try(format('UPDATE popsell.contacts SET email_status = %L WHERE id = %s', 'ok', :sb)) AS amb_unbounces,
       pg_temp.try(format('UPDATE popsell.contacts SET brand_optin = %L WHERE id = %s', 'optin_blog', :am1)) AS amb_brand_optin,
       pg_temp.try(format('UPDATE popsell.contacts SET notes = %L WHERE id = %s', 'rectified', :am1)) AS amb_edits_notes;
RESET ROLE;
BEGIN;
SET LOCAL popsell.actor = 'ambassador';
SELECT * FROM pg_temp.err(format('UPDATE popsell.contacts SET ambassador_optin = %L WHERE id = %s', 'invitation_accepted', :am1));
SELECT * FROM pg_temp.err(format('UPDATE popsell.contacts SET ambassador_optin = %L WHERE id = %s', 'new', :c2));
COMMIT;
-- popsell_app updating rows acts with an ambassador's rights.
SET ROLE popsell_t1_app;
SELECT pg_temp.try(format('UPDATE popsell.contacts SET ambassador_optin = %L WHERE id = %s', 'invitation_accepted', :am1)) AS app_opts_in;
RESET ROLE;
SELECT pg_temp.state(:am1), pg_temp.state(:c2);

-- Ledger and failed transactions: nothing of a rolled-back change stays.
SELECT popsell.collect_contact(1, 'crm_manual', '{"email": "tx@t102.example.test"}') AS tx \gset
SELECT pg_temp.state(:tx) AS before;
BEGIN;
SELECT popsell.send_invitation(:tx);
SAVEPOINT s1;
SELECT popsell.accept_invitation(:tx);
ROLLBACK TO SAVEPOINT s1;
SELECT pg_temp.state(:tx) AS after_savepoint;
SAVEPOINT s2;
UPDATE popsell.contacts SET ambassador_optin = 'optin_other' WHERE id = :tx;
ROLLBACK TO SAVEPOINT s2;
SELECT pg_temp.state(:tx) AS after_rejected;
COMMIT;
SELECT pg_temp.state(:tx) AS committed;
BEGIN;
SELECT popsell.accept_invitation(:tx);
SELECT popsell.send_invitation(:tx);  -- fails: the whole transaction goes
COMMIT;
SELECT pg_temp.state(:tx) AS after_failed_transaction;
-- A multi-row UPDATE with one forbidden row changes no row.
BEGIN;
SET LOCAL popsell.actor = 'contact';
SELECT pg_temp.try(format('UPDATE popsell.contacts SET ambassador_optin = %L WHERE id IN (%s, %s)', 'invitation_accepted', :tx, :am1)) AS multi_row;
COMMIT;
SELECT pg_temp.state(:tx), pg_temp.state(:am1);

-- A rejected change leaves the row as it was (no stamp moved, no
-- modification recorded).
SELECT modified_at IS NOT DISTINCT FROM (SELECT modified_at FROM popsell.contacts WHERE id = :c2) AS unchanged
  FROM popsell.contacts WHERE id = :c2;

-- Each accepted change of the file stamped its *_at column; no ledger row
-- without a change.
SELECT count(*) AS events_without_change FROM popsell.consent_events WHERE cardinality(changed) = 0;
SELECT count(*) AS stamp_behind_event
  FROM popsell.contacts c
 WHERE c.ambassador_optin_at < (SELECT max(e.occurred_at) FROM popsell.consent_events e
                                 WHERE e.contact_id = c.id AND 'ambassador_optin' = ANY (e.changed));

-- The backend still answers.
SELECT 1 AS alive;
\c :regdb
SET client_min_messages = warning;
DROP DATABASE popsell_t102;
