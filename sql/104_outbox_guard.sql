-- 104_outbox_guard: SPEC C4.  popsell.outbox accepts a publication for a
-- contact only when it is opted in, email_status ok, not restricted and its
-- ambassador active; an invitation only for a new contact, a reminder only
-- from the system for an invitation_sent contact (both with an email,
-- status ok, unrestricted, active ambassador); nothing else for new
-- contacts.  Refusals are PS120.  (NOTIFY: specs/103_outbox_notify.spec.)

-- Own database: ids and rows do not depend on other tests.
\set regdb :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS popsell_t104;
CREATE DATABASE popsell_t104;
\c popsell_t104
\i sql/include/consent_fixture.sql

-- Contacts in every relevant state (set in restore mode: superuser with
-- row_security off, which the triggers let through unchanged).
CREATE TEMP TABLE cases(name text, amb bigint, ao popsell.ambassador_optin, es popsell.email_status,
                        restricted boolean, email boolean, id bigint);
INSERT INTO cases(name, amb, ao, es, restricted, email) VALUES
    ('opted_in',            1, 'invitation_accepted', 'ok',          false, true),
    ('opted_in_order',      1, 'optin_order',         'ok',          false, true),
    ('opted_in_spam',       1, 'invitation_accepted', 'spam',        false, true),
    ('opted_in_soft',       1, 'invitation_accepted', 'soft_bounce', false, true),
    ('opted_in_unverified', 1, 'optin_blog_verified', 'unverified',  false, true),
    ('opted_in_restricted', 1, 'invitation_accepted', 'ok',          true,  true),
    ('opted_in_no_email',   1, 'invitation_accepted', 'ok',          false, false),
    ('opted_in_amb_signup', 4, 'invitation_accepted', 'ok',          false, true),
    ('opted_in_amb_leaving',5, 'invitation_accepted', 'ok',          false, true),
    ('new',                 1, 'new',                 'ok',          false, true),
    ('new_no_email',        1, 'new',                 'ok',          false, false),
    ('new_spam',            1, 'new',                 'spam',        false, true),
    ('new_restricted',      1, 'new',                 'ok',          true,  true),
    ('new_amb_signup',      4, 'new',                 'ok',          false, true),
    ('invitation_sent',     1, 'invitation_sent',     'ok',          false, true),
    ('pending',             1, 'optin_blog_pending',  'unverified',  false, true),
    ('storage_only',        1, 'storage_only',        'ok',          false, true),
    ('optout_email',        1, 'optout_email',        'ok',          false, true),
    ('global_optout',       1, 'global_optout',       'ok',          false, true),
    ('social_media_only',   1, 'social_media_only',   'ok',          false, false);
SET row_security = off;
WITH ins AS (
    INSERT INTO popsell.contacts (ambassador_id, source, first_name, email, ambassador_optin, ambassador_optin_at,
                                  brand_optin, brand_optin_at, email_status, restricted)
    SELECT c.amb, CASE WHEN c.name = 'pending' THEN 'blog' ELSE 'crm_manual' END::popsell.contact_source, c.name, CASE WHEN c.email THEN c.name || '@t104.example.test' END, c.ao, now(),
           'no_optin', now(), c.es, c.restricted
      FROM cases c RETURNING id, first_name)
UPDATE cases SET id = ins.id FROM ins WHERE ins.first_name = cases.name;
RESET row_security;
SELECT count(*) AS cases, count(id) AS stored FROM cases;

-- Every outbox kind for every case, by a plain INSERT (superuser, no
-- path): SPEC's expectation next to what the guard did.
CREATE TEMP TABLE tried AS
SELECT c.name, k AS kind,
       pg_temp.try(format('INSERT INTO popsell.outbox (kind, ambassador_id, contact_id) VALUES (%L, %s, %s)', k, c.amb, c.id)) AS result,
       CASE
         -- the superuser running this test counts as popsell's own code
         WHEN k IN ('delete_file', 'partner_erasure', 'partner_optout') THEN 'ok'
         WHEN k = 'publication' THEN
           CASE WHEN c.ao IN ('invitation_accepted', 'optin_brand_imported', 'optin_blog_verified', 'optin_internal_form',
                              'optin_external_form', 'optin_order', 'optin_order_popin', 'optin_other')
                     AND c.es = 'ok' AND NOT c.restricted AND c.email AND c.amb = 1 THEN 'ok' ELSE 'PS120' END
         WHEN k = 'invitation' THEN 'PS120'            -- not send_invitation
         WHEN k = 'invitation_reminder' THEN 'PS120'   -- not the system
         WHEN k = 'email_confirmation' THEN CASE WHEN c.name = 'pending' THEN 'ok' ELSE 'PS120' END
         WHEN c.ao = 'new' THEN 'PS120'                -- new contacts get nothing but an invitation
         ELSE NULL                                     -- SPEC is silent: not checked
       END AS spec
  FROM cases c, unnest(enum_range(NULL::popsell.outbox_kind)::text[]) k;
SELECT kind, spec, count(*) FILTER (WHERE result = spec) AS as_spec, count(*) AS cases
  FROM tried WHERE spec IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2;
-- Where the guard differs from SPEC (no rows).
SELECT name, kind, spec, result FROM tried WHERE spec IS NOT NULL AND spec <> result ORDER BY 1, 2;
-- What was accepted (messages to the contact).
SELECT name, kind FROM tried
 WHERE result = 'ok' AND kind IN ('publication', 'invitation', 'invitation_reminder', 'email_confirmation') ORDER BY 1, 2;
SELECT kind, count(*) AS queued FROM popsell.outbox GROUP BY 1 ORDER BY 1;

-- invitation_reminder: only from the system (run_maintenance's path), only
-- for invitation_sent contacts with an ok email.
BEGIN;
SET LOCAL popsell.actor = 'system';
SELECT c.name, pg_temp.try(format('INSERT INTO popsell.outbox (kind, ambassador_id, contact_id) VALUES (%L, %s, %s)',
                                  'invitation_reminder', c.amb, c.id)) AS reminder_by_system
  FROM cases c WHERE c.name IN ('invitation_sent', 'new', 'opted_in', 'optout_email') ORDER BY 1;
COMMIT;
SELECT id AS sent_id FROM cases WHERE name = 'invitation_sent' \gset
SELECT p AS path, pg_temp.try(format('SELECT set_config(%L, %L, true); INSERT INTO popsell.outbox (kind, ambassador_id, contact_id) VALUES (%L, 1, %s)',
                                     'popsell.actor', p, 'invitation_reminder', :sent_id)) AS reminder
  FROM unnest(ARRAY['ambassador', 'staff', 'contact', 'send_invitation']) p;
SET ROLE popsell_t1_app;
SELECT pg_temp.try(format('INSERT INTO popsell.outbox (kind, ambassador_id, contact_id) VALUES (%L, 1, %s)',
                          'invitation_reminder', :sent_id)) AS reminder_by_app;
RESET ROLE;

-- The refusal names the kind and the contact, with a hint; nothing queued.
SELECT state, has_hint, position(' ' || (SELECT id FROM cases WHERE name = 'optout_email') IN message) > 0 AS names_contact
  FROM pg_temp.err(format('INSERT INTO popsell.outbox (kind, ambassador_id, contact_id) VALUES (%L, 1, %s)',
                          'publication', (SELECT id FROM cases WHERE name = 'optout_email')));
-- A multi-row INSERT with one refused row queues nothing.
SELECT count(*) AS outbox_before FROM popsell.outbox \gset
SELECT pg_temp.try(format('INSERT INTO popsell.outbox (kind, ambassador_id, contact_id) VALUES (%L, 1, %s), (%L, 1, %s)',
                          'publication', (SELECT id FROM cases WHERE name = 'opted_in'),
                          'publication', (SELECT id FROM cases WHERE name = 'global_optout'))) AS multi_row;
SELECT count(*) - :outbox_before AS queued FROM popsell.outbox;
-- Unknown contact: PS200.
SELECT pg_temp.try($$INSERT INTO popsell.outbox (kind, ambassador_id, contact_id) VALUES ('publication', 1, 999999)$$) AS unknown_contact;

-- The guard follows the contact: after an opt-out or a bounce it refuses.
SELECT popsell.collect_contact(1, 'crm_manual', '{"email": "live@t104.example.test"}') AS live \gset
SELECT popsell.send_invitation(:live);
SELECT popsell.accept_invitation(:live);
SELECT pg_temp.try(format('INSERT INTO popsell.outbox (kind, ambassador_id, contact_id) VALUES (%L, 1, %s)', 'publication', :live)) AS after_accept;
SELECT popsell.email_callback('live@t104.example.test', 'soft_bounce');
SELECT pg_temp.try(format('INSERT INTO popsell.outbox (kind, ambassador_id, contact_id) VALUES (%L, 1, %s)', 'publication', :live)) AS after_soft_bounce;
SELECT popsell.release_soft_bounce(:live);
SELECT pg_temp.try(format('INSERT INTO popsell.outbox (kind, ambassador_id, contact_id) VALUES (%L, 1, %s)', 'publication', :live)) AS after_release;
SELECT popsell.opt_out(:live);
SELECT pg_temp.try(format('INSERT INTO popsell.outbox (kind, ambassador_id, contact_id) VALUES (%L, 1, %s)', 'publication', :live)) AS after_opt_out;
-- send_invitation itself goes through the guard: a restricted new contact
-- cannot be invited, and its state does not move.
SELECT pg_temp.try(format('SELECT popsell.send_invitation(%s)', (SELECT id FROM cases WHERE name = 'new_restricted'))) AS invite_restricted;
SELECT ambassador_optin FROM popsell.contacts WHERE id = (SELECT id FROM cases WHERE name = 'new_restricted');

-- The backend still answers.
SELECT 1 AS alive;
\c :regdb
SET client_min_messages = warning;
DROP DATABASE popsell_t104;
