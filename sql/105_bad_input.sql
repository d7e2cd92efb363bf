-- 105_bad_input: SPEC section 8 for contacts: every bad input gets a clear
-- error with its SQLSTATE (popsell's own class where SPEC names one), a
-- hint, no personal data in message or detail, no half-applied change,
-- and the backend keeps answering.

-- Own database: ids and rows do not depend on other tests.
\set regdb :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS popsell_t105;
CREATE DATABASE popsell_t105;
\c popsell_t105
\i sql/include/consent_fixture.sql

-- pg_temp.bad(sql, personal): SQLSTATE, hint present, and whether the
-- message or detail repeats the given personal value.
CREATE FUNCTION pg_temp.bad(q text, personal text DEFAULT NULL, OUT state text, OUT has_hint boolean, OUT leaks boolean)
LANGUAGE plpgsql AS $$
DECLARE m text; d text; h text;
BEGIN
    EXECUTE q;
    state := 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    has_hint := coalesce(h, '') <> '';
    leaks := personal IS NOT NULL AND (position(lower(personal) IN lower(coalesce(m, '') || coalesce(d, ''))) > 0);
END $$;

SELECT popsell.collect_contact(1, 'crm_manual', '{"email": "known@t105.example.test", "first_name": "Known"}') AS k \gset
SELECT count(*) AS events_before FROM popsell.consent_events \gset
SELECT count(*) AS contacts_before FROM popsell.contacts \gset

-- Unknown ids (PS200), NULL ids (PS200).
SELECT f AS call, id, r.*
  FROM unnest(ARRAY['send_invitation', 'accept_invitation', 'decline_invitation', 'confirm_email',
                    'opt_out', 'release_soft_bounce']) f,
       unnest(ARRAY['999999', 'NULL']) id,
       LATERAL pg_temp.bad(format('SELECT popsell.%s(%s%s)', f, id, CASE WHEN f = 'confirm_email' THEN ', ''token''' ELSE '' END)) r
 ORDER BY 1, id;
SELECT * FROM pg_temp.bad($$SELECT popsell.collect_contact(999999, 'blog', '{"email": "x@t105.example.test"}', true)$$);
SELECT * FROM pg_temp.bad($$SELECT popsell.collect_contact(NULL, 'blog', '{"email": "x@t105.example.test"}', true)$$);
SELECT * FROM pg_temp.bad($$SELECT * FROM popsell.import_contacts(999999, '[{"email": "x@t105.example.test"}]')$$);
SELECT * FROM pg_temp.bad($$SELECT * FROM popsell.import_contacts(NULL, '[{"email": "x@t105.example.test"}]')$$);
SELECT * FROM pg_temp.bad($$INSERT INTO popsell.contacts (ambassador_id, source, first_name) VALUES (999999, 'crm_manual', 'X')$$);

-- Malformed emails: PS202 everywhere an email enters, without echoing it.
CREATE TEMP TABLE bad_emails(e text);
INSERT INTO bad_emails VALUES ('plain'), ('@t105.example.test'), ('a@'), ('a@localhost'), ('a b@t105.example.test'),
    ('a@@t105.example.test'), ('a..b@t105.example.test'), ('<a@t105.example.test>'), ('a@t105.example.test;'),
    ('a@-t105.example.test'), ('.a@t105.example.test'), ('a.@t105.example.test'), ('a@t105.example.'),
    (repeat('l', 65) || '@t105.example.test'), ('a@' || repeat('d', 250) || '.test'), (E'a\tb@t105.example.test'),
    ('a,b@t105.example.test'), ('a@t105..example.test');
SELECT left(e, 30) AS email, length(e) AS len, r.*
  FROM bad_emails, LATERAL pg_temp.bad(format('INSERT INTO popsell.contacts (ambassador_id, source, email) VALUES (1, %L, %L)', 'crm_manual', e), e) r
 ORDER BY e;
SELECT count(*) AS cases,
       count(*) FILTER (WHERE (pg_temp.bad(format('SELECT popsell.collect_contact(1, %L, %L, true)', 'blog', jsonb_build_object('email', e)), e)).state = 'PS202') AS collect_ps202,
       count(*) FILTER (WHERE (SELECT i.skipped_invalid FROM popsell.import_contacts(1, jsonb_build_array(jsonb_build_object('email', e))) i) = 1) AS import_skips_invalid,
       count(*) FILTER (WHERE (pg_temp.bad(format('SELECT popsell.email_callback(%L, %L)', e, 'spam'), e)).state = 'PS202') AS callback_ps202,
       count(*) FILTER (WHERE (pg_temp.bad(format('UPDATE popsell.contacts SET email = %L WHERE id = %s', e, :k), e)).state = 'PS202') AS update_ps202,
       count(*) FILTER (WHERE (pg_temp.bad(format('SELECT popsell.normalize_email(%L)', e), e)).state = 'PS202') AS normalize_ps202
  FROM bad_emails;
-- An empty or blank email is no email.
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email) VALUES (1, 'crm_manual', 'Blank', '   ')
RETURNING email IS NULL AS stored_null;

-- Personal fields on a social_network contact (PS103), a contact without
-- any field (PS104), brand_sync for a customer ambassador (PS102), an
-- ambassador source forged by an ambassador (PS102).
SELECT * FROM pg_temp.bad($$INSERT INTO popsell.contacts (ambassador_id, source, facebook_id, email)
                      VALUES (1, 'social_network', 'fb1', 'sn@t105.example.test')$$, 'sn@t105.example.test');
SELECT * FROM pg_temp.bad($$INSERT INTO popsell.contacts (ambassador_id, source, notes, city) VALUES (1, 'crm_manual', 'private note', 'Lyon')$$,
                    'private note');
SELECT * FROM pg_temp.bad($$SELECT popsell.collect_contact(1, 'brand_sync', '{"email": "bs@t105.example.test"}', NULL, true)$$, 'bs@t105.example.test');
SET ROLE popsell_t1_amb;
SELECT * FROM pg_temp.bad($$INSERT INTO popsell.contacts (ambassador_id, source, email, ambassador_optin)
                      VALUES (1, 'order', 'forged@t105.example.test', 'optin_order')$$, 'forged@t105.example.test');
RESET ROLE;

-- The identity and path settings from an untrusted session: refused.
SET ROLE popsell_t1_amb;
SELECT * FROM pg_temp.bad($$SET popsell.ambassador_id = '2'$$);
SELECT * FROM pg_temp.bad($$SET popsell.actor = 'contact'$$);
SELECT * FROM pg_temp.bad($$SELECT set_config('popsell.actor', 'confirm_email', true)$$);
SELECT * FROM pg_temp.bad($$SET popsell.as_of = '2000-01-01'$$);
RESET ROLE;
SET ROLE popsell_t1_app;
SELECT * FROM pg_temp.bad($$SET popsell.ambassador_id = '2'$$);
SELECT * FROM pg_temp.bad($$SET popsell.actor = 'contact'$$);
RESET ROLE;
RESET popsell.ambassador_id;
-- An unknown path value (only a superuser could set one) fails closed.
BEGIN;
SET LOCAL popsell.actor = 'nobody';
SELECT * FROM pg_temp.bad(format('UPDATE popsell.contacts SET ambassador_optin = %L WHERE id = %s', 'optout_email', :k));
COMMIT;

-- NULLs everywhere.
SELECT * FROM pg_temp.bad($$SELECT popsell.collect_contact(1, NULL, '{"email": "n1@t105.example.test"}')$$);
SELECT * FROM pg_temp.bad($$SELECT popsell.collect_contact(1, 'blog', NULL)$$);
SELECT * FROM pg_temp.bad($$SELECT popsell.collect_contact(1, 'blog', 'null'::jsonb)$$);
SELECT * FROM pg_temp.bad($$SELECT popsell.collect_contact(1, 'blog', '[]'::jsonb)$$);
SELECT * FROM pg_temp.bad($$SELECT popsell.collect_contact(1, 'blog', '{"email": null, "first_name": null}', NULL, NULL, NULL)$$);
SELECT * FROM pg_temp.bad($$SELECT popsell.collect_contact(1, 'blog', '{"ambassador_optin": "optin_blog_verified", "email": "n2@t105.example.test"}')$$);
SELECT * FROM pg_temp.bad($$SELECT * FROM popsell.import_contacts(1, NULL)$$);
SELECT * FROM pg_temp.bad($$SELECT * FROM popsell.import_contacts(1, '{}')$$);
SELECT * FROM pg_temp.bad($$SELECT * FROM popsell.import_contacts(1, '[1, "x", null]')$$);
SELECT * FROM pg_temp.bad($$SELECT * FROM popsell.import_contacts(1, '[{"email": "n3@t105.example.test", "ambassador_optin": "invitation_accepted"}]')$$);
SELECT * FROM popsell.import_contacts(1, '[]');
SELECT * FROM pg_temp.bad($$SELECT popsell.email_callback(NULL, NULL)$$);
SELECT * FROM pg_temp.bad($$SELECT popsell.email_callback('known@t105.example.test', NULL)$$);
SELECT * FROM pg_temp.bad(format('SELECT popsell.opt_out(%s, NULL)', :k));
SELECT ambassador_optin FROM popsell.contacts WHERE id = :k;
SELECT * FROM pg_temp.bad($$INSERT INTO popsell.contacts (ambassador_id, source, first_name) VALUES (1, NULL, 'X')$$);
SELECT * FROM pg_temp.bad($$INSERT INTO popsell.contacts (ambassador_id, source, first_name, ambassador_optin, brand_optin, email_status, partners_optin)
                      VALUES (1, 'crm_manual', 'Nulls', NULL, NULL, NULL, NULL)$$);
-- NULL into NOT NULL columns: an error, and the row (with its email) is
-- not printed in the DETAIL (SPEC S8: no personal data in messages).
SELECT state, leaks FROM pg_temp.bad($$INSERT INTO popsell.contacts (ambassador_id, source, email, contact_type)
                      VALUES (1, 'crm_manual', 'leak@t105.example.test', NULL)$$, 'leak@t105.example.test');
SELECT state, leaks FROM pg_temp.bad($$INSERT INTO popsell.contacts (ambassador_id, source, email, tags)
                      VALUES (1, 'crm_manual', 'leak2@t105.example.test', NULL)$$, 'leak2@t105.example.test');
SELECT f AS column_set_null, r.state, r.leaks
  FROM unnest(ARRAY['ambassador_optin', 'brand_optin', 'partners_optin', 'email_status', 'source', 'contact_type', 'restricted']) f,
       LATERAL pg_temp.bad(format('UPDATE popsell.contacts SET %I = NULL WHERE id = %s', f, :k), 'known@t105.example.test') r
 ORDER BY 1;

-- Nothing of the failed statements stayed: no contact, no ledger row.
SELECT id > :k AS new, source, first_name, email FROM popsell.contacts ORDER BY id;
SELECT (SELECT count(*) FROM popsell.contacts) AS contacts,
       (SELECT count(*) FROM popsell.consent_events WHERE old_ambassador_optin IS NULL) AS initial_events;
SELECT e.changed, e.old_ambassador_optin, e.new_ambassador_optin, e.path FROM popsell.consent_events e
 WHERE e.old_ambassador_optin IS NOT NULL ORDER BY e.id;
SELECT ambassador_optin, email_status, email FROM popsell.contacts WHERE id = :k;

-- The backend still answers.
SELECT 1 AS alive;
\c :regdb
SET client_min_messages = warning;
DROP DATABASE popsell_t105;
