-- 101_initial_optins: SPEC C1, the initial opt-ins of every source, ticked
-- and unticked, through popsell.collect_contact() and through plain INSERT
-- with explicit values; values a source cannot produce are PS101.

-- Own database: ids and rows do not depend on other tests.
\set regdb :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS popsell_t101;
CREATE DATABASE popsell_t101;
\c popsell_t101
\i sql/include/consent_fixture.sql

-- SPEC section 4, table C1, written out independently of the C code:
-- for every source and every state of the two checkboxes (NULL = not
-- asked / not set), the initial ambassador_optin and brand_optin.
CREATE TEMP TABLE spec_c1 AS
WITH s(source) AS (SELECT unnest(enum_range(NULL::popsell.contact_source))),
     t(v) AS (VALUES (NULL::boolean), (false), (true))
SELECT s.source, a.v AS amb_checked, b.v AS brand_checked,
       (CASE
        WHEN s.source IN ('crm_manual', 'private_import') THEN 'new'
        WHEN s.source = 'brand_sync' THEN CASE WHEN b.v THEN 'optin_brand_imported' ELSE 'new' END
        WHEN s.source = 'social_network' THEN 'social_media_only'
        WHEN s.source IN ('blog', 'store_purchase', 'blog_internal_form')
             THEN CASE WHEN a.v THEN 'optin_blog_pending' ELSE 'storage_only' END
        WHEN s.source = 'order' THEN CASE WHEN b.v THEN 'optin_order' ELSE 'storage_only' END
        WHEN s.source = 'order_popin' THEN CASE WHEN b.v THEN 'optin_order'
                                                WHEN a.v THEN 'optin_order_popin'
                                                ELSE 'storage_only' END
        WHEN s.source = 'external_form' THEN CASE WHEN a.v THEN 'optin_external_form'
                                                  WHEN NOT a.v THEN 'storage_only' ELSE 'new' END
        END)::popsell.ambassador_optin AS amb,
       (CASE
        WHEN s.source IN ('crm_manual', 'private_import', 'social_network') THEN 'no_optin'
        WHEN s.source IN ('brand_sync', 'order', 'order_popin')
             THEN CASE WHEN b.v THEN 'optin_brand_database' ELSE 'storage_only' END
        WHEN s.source IN ('blog', 'store_purchase') THEN CASE WHEN b.v THEN 'optin_blog' ELSE 'no_optin' END
        WHEN s.source = 'blog_internal_form' THEN CASE WHEN b.v THEN 'optin_internal_form' ELSE 'storage_only' END
        WHEN s.source = 'external_form' THEN CASE WHEN b.v THEN 'optin_external_form' ELSE 'storage_only' END
        END)::popsell.brand_optin AS brand,
       s.source IN ('blog', 'blog_internal_form', 'store_purchase') AS pending
  FROM s, t a, t b;
SELECT count(*) AS spec_cases FROM spec_c1;

-- popsell.initial_optins() agrees with SPEC for every case (no rows).
SELECT s.source, s.amb_checked, s.brand_checked, s.amb, s.brand, i.*
  FROM spec_c1 s, popsell.initial_optins(s.source, s.amb_checked, s.brand_checked) i
 WHERE (i.ambassador_optin, i.brand_optin) IS DISTINCT FROM (s.amb, s.brand);

-- Every case through collect_contact (ambassador 2 is a sales_rep, so
-- brand_sync is allowed).  Social network contacts carry an id only.
CREATE TEMP TABLE collected AS
SELECT s.*, popsell.collect_contact(
           2, s.source,
           CASE WHEN s.source = 'social_network'
                THEN jsonb_build_object('facebook_id', 'fb' || row_number() OVER ())
                ELSE jsonb_build_object('email', 'c' || row_number() OVER () || '@c1.example.test',
                                        'first_name', 'C') END,
           s.amb_checked, s.brand_checked, true) AS id
  FROM spec_c1 s;

-- Stored opt-ins differ from SPEC (no rows).
SELECT k.source, k.amb_checked, k.brand_checked, k.amb AS spec_amb, c.ambassador_optin,
       k.brand AS spec_brand, c.brand_optin
  FROM collected k JOIN popsell.contacts c ON c.id = k.id
 WHERE (c.ambassador_optin, c.brand_optin) IS DISTINCT FROM (k.amb, k.brand);

-- One row per source and checkbox state, as stored (readable summary).
SELECT k.source, k.amb_checked AS amb_ck, k.brand_checked AS brand_ck,
       c.ambassador_optin, c.brand_optin, c.partners_optin AS partners, c.email_status,
       c.email_confirmed_at IS NULL AND k.pending AS pending
  FROM collected k JOIN popsell.contacts c ON c.id = k.id
 ORDER BY k.source, k.amb_checked NULLS FIRST, k.brand_checked NULLS FIRST;

-- Pending confirmation: unverified, email_confirmed_at NULL, and exactly
-- one email_confirmation queued; other sources: ok, nothing queued.
SELECT k.pending, c.email_status, c.email_confirmed_at IS NULL AS unconfirmed,
       count(*) AS contacts,
       sum((SELECT count(*) FROM popsell.outbox o WHERE o.contact_id = c.id AND o.kind = 'email_confirmation')) AS confirmations
  FROM collected k JOIN popsell.contacts c ON c.id = k.id
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

-- Partners opt-in: set only when ticked, and only on popsell's own forms
-- (blog, blog_internal_form, store_purchase, external_form, order_popin;
-- never brand_sync, order or an ambassador's entry); partners_optin_at
-- stamped exactly when true.
SELECT k.source, bool_or(c.partners_optin) AS partners,
       bool_and((c.partners_optin_at IS NOT NULL) = c.partners_optin) AS stamp_follows
  FROM collected k JOIN popsell.contacts c ON c.id = k.id
 GROUP BY 1 ORDER BY 1;
SELECT popsell.collect_contact(2, 'order', '{"email": "np@c1.example.test"}', true, true, false) AS np \gset
SELECT partners_optin, partners_optin_at IS NULL AS no_stamp FROM popsell.contacts WHERE id = :np;

-- One "initial" ledger row per collected contact, with the stored values.
SELECT count(*) AS contacts,
       count(*) FILTER (WHERE (SELECT count(*) FROM popsell.consent_events e WHERE e.contact_id = c.id) = 1) AS with_one_event,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM popsell.consent_events e
            WHERE e.contact_id = c.id AND e.note LIKE 'initial%'
              AND e.old_ambassador_optin IS NULL
              AND e.new_ambassador_optin = c.ambassador_optin AND e.new_brand_optin = c.brand_optin
              AND e.new_partners_optin = c.partners_optin AND e.new_email_status = c.email_status
              AND e.source = c.source)) AS event_matches
  FROM collected k JOIN popsell.contacts c ON c.id = k.id;

-- The ledger's actor follows the path: brand sync, the ambassador for its
-- own CRM entries, else the contact.
SELECT c.source, e.actor, e.path, count(*)
  FROM collected k JOIN popsell.contacts c ON c.id = k.id
  JOIN popsell.consent_events e ON e.contact_id = c.id
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

-- Plain INSERT with explicit values (as superuser): every (ambassador_optin,
-- brand_optin) pair is accepted exactly when some checkbox state of SPEC
-- produces it for the source, else rejected with PS101.
CREATE TEMP TABLE explicit_pairs AS
SELECT s.source, a.amb, b.brand,
       EXISTS (SELECT 1 FROM spec_c1 x WHERE x.source = s.source AND x.amb = a.amb AND x.brand = b.brand) AS spec_allows,
       pg_temp.try(format(
           'INSERT INTO popsell.contacts (ambassador_id, source, %s, ambassador_optin, brand_optin) VALUES (2, %L, %L, %L, %L)',
           CASE WHEN s.source = 'social_network' THEN 'facebook_id' ELSE 'first_name' END,
           s.source, 'x', a.amb, b.brand)) AS result
  FROM (SELECT unnest(enum_range(NULL::popsell.contact_source)) AS source) s,
       (SELECT unnest(enum_range(NULL::popsell.ambassador_optin)) AS amb) a,
       (SELECT unnest(enum_range(NULL::popsell.brand_optin)) AS brand) b;
SELECT spec_allows, result, count(*) FROM explicit_pairs GROUP BY 1, 2 ORDER BY 1, 2;
-- Mismatches (no rows).
SELECT source, amb, brand, spec_allows, result FROM explicit_pairs
 WHERE (result = 'ok') <> spec_allows OR (result <> 'ok' AND result <> 'PS101');

-- One explicit column alone: accepted when SPEC allows it with some value
-- of the other, the other is then filled from the same case.
SELECT s.source, a.amb,
       pg_temp.try(format('INSERT INTO popsell.contacts (ambassador_id, source, first_name, ambassador_optin) VALUES (2, %L, %L, %L)',
                          s.source, 'x', a.amb)) AS result
  FROM (VALUES ('order'::popsell.contact_source), ('external_form'), ('blog')) s(source),
       (VALUES ('optin_order'::popsell.ambassador_optin), ('optin_external_form'), ('optin_blog_pending'),
               ('optin_blog_verified'), ('invitation_accepted'), ('global_optout')) a(amb)
 ORDER BY 1, 2;
INSERT INTO popsell.contacts (ambassador_id, source, first_name, ambassador_optin)
VALUES (2, 'order', 'Filled', 'optin_order') RETURNING ambassador_optin, brand_optin;
INSERT INTO popsell.contacts (ambassador_id, source, first_name, brand_optin)
VALUES (2, 'blog_internal_form', 'Filled', 'optin_internal_form') RETURNING ambassador_optin, brand_optin;
-- Omitted columns: the unticked defaults.
INSERT INTO popsell.contacts (ambassador_id, source, email)
SELECT 2, s, 'omit-' || s || '@c1.example.test'
  FROM unnest(enum_range(NULL::popsell.contact_source)) s WHERE s <> 'social_network'
RETURNING source, ambassador_optin, brand_optin, partners_optin, email_status;

-- The rejection names the value, the source and the allowed values.
SELECT * FROM pg_temp.err($$INSERT INTO popsell.contacts (ambassador_id, source, first_name, ambassador_optin)
                          VALUES (2, 'crm_manual', 'X', 'invitation_accepted')$$);
SELECT * FROM pg_temp.err($$INSERT INTO popsell.contacts (ambassador_id, source, first_name, ambassador_optin, brand_optin)
                          VALUES (2, 'order_popin', 'X', 'optin_order_popin', 'optin_brand_database')$$);

-- Explicit partners_optin true: refused where no form could carry it.
SELECT s AS source,
       pg_temp.try(format('INSERT INTO popsell.contacts (ambassador_id, source, %s, partners_optin) VALUES (2, %L, %L, true)',
                          CASE WHEN s = 'social_network' THEN 'facebook_id' ELSE 'first_name' END, s, 'x')) AS partners_true
  FROM unnest(enum_range(NULL::popsell.contact_source)) s ORDER BY 1;

-- The same explicit values through popsell_app (a trusted form or webhook).
SET ROLE popsell_t1_app;
SELECT s.source, s.amb, s.brand,
       pg_temp.try(format('INSERT INTO popsell.contacts (ambassador_id, source, first_name, ambassador_optin, brand_optin) VALUES (2, %L, %L, %L, %L)',
                          s.source, 'app', s.amb, s.brand)) AS result
  FROM (VALUES ('blog'::popsell.contact_source, 'optin_blog_pending'::popsell.ambassador_optin, 'optin_blog'::popsell.brand_optin),
               ('blog', 'optin_blog_verified', 'optin_blog'),
               ('order', 'optin_order', 'optin_brand_database'),
               ('order', 'optin_order', 'storage_only'),
               ('order_popin', 'optin_order_popin', 'storage_only'),
               ('external_form', 'optin_external_form', 'optin_external_form'),
               ('external_form', 'optin_other', 'storage_only'),
               ('brand_sync', 'optin_brand_imported', 'optin_brand_database'),
               ('crm_manual', 'new', 'no_optin'),
               ('crm_manual', 'invitation_sent', 'no_optin')) s(source, amb, brand)
 ORDER BY 1, 2, 3;
RESET ROLE;
-- The app's contact-initiated rows are recorded as the contact's, its
-- crm_manual rows as the ambassador's, brand_sync as the brand sync.
SELECT source, actor, path, count(*) FROM popsell.consent_events
 WHERE actor_role = 'popsell_t1_app' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

-- An ambassador (plain INSERT) enters crm_manual and private_import only;
-- every other source is PS102; explicit opt-ins are checked the same way.
SET ROLE popsell_t1_amb;
SELECT s AS source,
       pg_temp.try(format('INSERT INTO popsell.contacts (ambassador_id, source, %s) VALUES (1, %L, %L)',
                          CASE WHEN s = 'social_network' THEN 'facebook_id' ELSE 'first_name' END, s, 'amb')) AS result
  FROM unnest(enum_range(NULL::popsell.contact_source)) s ORDER BY 1;
SELECT a AS explicit_amb,
       pg_temp.try(format('INSERT INTO popsell.contacts (ambassador_id, source, first_name, ambassador_optin) VALUES (1, %L, %L, %L)',
                          'crm_manual', 'amb', a)) AS result
  FROM unnest(enum_range(NULL::popsell.ambassador_optin)) a ORDER BY 1;
SELECT pg_temp.try($$INSERT INTO popsell.contacts (ambassador_id, source, first_name, brand_optin)
                     VALUES (1, 'private_import', 'amb', 'optin_brand_database')$$) AS brand_optin_by_ambassador;
RESET ROLE;
-- Superuser acting on the ambassador path (popsell.actor) gets the same.
BEGIN;
SET LOCAL popsell.actor = 'ambassador';
SELECT pg_temp.try($$INSERT INTO popsell.contacts (ambassador_id, source, first_name) VALUES (1, 'order', 'x')$$) AS order_on_ambassador_path;
SELECT pg_temp.try($$INSERT INTO popsell.contacts (ambassador_id, source, first_name) VALUES (1, 'crm_manual', 'x')$$) AS crm_on_ambassador_path;
COMMIT;

-- brand_sync: only for sales_rep or employee ambassadors (PS102 for a
-- customer), through collect_contact and plain INSERT alike.
SELECT a.id AS ambassador, a.kind,
       pg_temp.try(format($$SELECT popsell.collect_contact(%s, 'brand_sync', '{"email": "bs%s@c1.example.test"}', NULL, true)$$, a.id, a.id)) AS collect,
       pg_temp.try(format($$INSERT INTO popsell.contacts (ambassador_id, source, first_name) VALUES (%s, 'brand_sync', 'x')$$, a.id)) AS plain_insert
  FROM popsell.ambassadors a WHERE a.id IN (1, 2, 3) ORDER BY 1;
SELECT pg_temp.try($$INSERT INTO popsell.contacts (ambassador_id, source, first_name) VALUES (NULL, 'brand_sync', 'x')$$) AS brand_sync_without_ambassador;
SELECT * FROM pg_temp.err($$SELECT popsell.collect_contact(1, 'brand_sync', '{"first_name": "X"}', NULL, true)$$);

-- social_network: ids and public photo only; every personal field is PS103.
SELECT f AS field,
       pg_temp.try(format('INSERT INTO popsell.contacts (ambassador_id, source, facebook_id, %I) VALUES (1, %L, %L, %L)',
                          f, 'social_network', 'fb', CASE WHEN f = 'email' THEN 'sn@c1.example.test' ELSE 'v' END)) AS plain_insert,
       pg_temp.try(format('SELECT popsell.collect_contact(1, %L, %L)', 'social_network',
                          jsonb_build_object('facebook_id', 'fb', f, CASE WHEN f = 'email' THEN 'sn@c1.example.test' ELSE 'v' END))) AS collect
  FROM unnest(ARRAY['first_name', 'last_name', 'email', 'mobile_phone', 'home_phone', 'address',
                    'city', 'postal_code', 'country', 'customer_id']) f
 ORDER BY 1;
SELECT pg_temp.try($$INSERT INTO popsell.contacts (ambassador_id, source, twitter_id, instagram_id, public_photo_url)
                     VALUES (1, 'social_network', 'tw', 'ig', 'https://example.test/p.jpg')$$) AS ids_only;
-- ... and later UPDATEs cannot add one either.
SELECT pg_temp.try($$UPDATE popsell.contacts SET first_name = 'Late' WHERE source = 'social_network'$$) AS update_adds_name;

-- A contact without any personal field: SPEC section 8 wants popsell's own
-- error class (PS104 "empty contact" in the error table), not a bare check
-- violation whose DETAIL prints the row.
SELECT state, has_hint FROM pg_temp.err($$INSERT INTO popsell.contacts (ambassador_id, source) VALUES (1, 'crm_manual')$$);
SELECT state, has_hint FROM pg_temp.err($$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email) VALUES (1, 'crm_manual', '  ', '')$$);
SELECT state, has_hint FROM pg_temp.err($$SELECT popsell.collect_contact(1, 'blog', '{}', true)$$);
SELECT state, has_hint FROM pg_temp.err($$UPDATE popsell.contacts SET first_name = NULL, email = NULL
                             WHERE id = (SELECT min(id) FROM popsell.contacts WHERE source = 'order')$$);

-- Emails are stored normalized (trimmed, lower-cased, NFC).
SELECT popsell.collect_contact(1, 'crm_manual', jsonb_build_object('email', U&'  Jos\00C9@Example.TEST ')) AS norm_id \gset
SELECT email, email = U&'jos\00e9@example.test' AS nfc FROM popsell.contacts WHERE id = :norm_id;

-- History columns on INSERT (SPEC section 5): created_at, last_activity_at
-- and the *_optin_at stamps are kept when given by a superuser or by
-- popsell_app, replaced (by the time of the INSERT) when given by anyone
-- else.
CREATE TEMP TABLE hist(who text, id bigint);
WITH x AS (
  INSERT INTO popsell.contacts (ambassador_id, source, first_name, created_at, last_activity_at, ambassador_optin_at, brand_optin_at)
  VALUES (1, 'crm_manual', 'H1', '2015-01-01', '2016-01-01', '2015-02-01', '2015-03-01') RETURNING id)
INSERT INTO hist SELECT 'superuser', id FROM x;
SET ROLE popsell_t1_app;
INSERT INTO popsell.contacts (ambassador_id, source, first_name, created_at, last_activity_at, ambassador_optin_at, brand_optin_at,
                              partners_optin, partners_optin_at)
VALUES (1, 'external_form', 'H2', '2015-01-01', '2016-01-01', '2015-02-01', '2015-03-01', true, '2015-04-01');
RESET ROLE;
INSERT INTO hist SELECT 'app', max(id) FROM popsell.contacts WHERE first_name = 'H2';
SET ROLE popsell_t1_amb;
INSERT INTO popsell.contacts (ambassador_id, source, first_name, created_at, last_activity_at, ambassador_optin_at, brand_optin_at)
VALUES (1, 'crm_manual', 'H3', '2015-01-01', '2016-01-01', '2015-02-01', '2015-03-01');
RESET ROLE;
INSERT INTO hist SELECT 'ambassador', max(id) FROM popsell.contacts WHERE first_name = 'H3';
SET ROLE popsell_t1_staff;
INSERT INTO popsell.contacts (ambassador_id, source, first_name, created_at, last_activity_at, ambassador_optin_at, brand_optin_at)
VALUES (1, 'crm_manual', 'H4', '2015-01-01', '2016-01-01', '2015-02-01', '2015-03-01');
RESET ROLE;
INSERT INTO hist SELECT 'staff', max(id) FROM popsell.contacts WHERE first_name = 'H4';
INSERT INTO hist
SELECT 'collect_contact (superuser)', popsell.collect_contact(1, 'order', '{"first_name": "H5", "created_at": "2015-01-01", "last_activity_at": "2016-01-01", "ambassador_optin_at": "2015-02-01", "brand_optin_at": "2015-03-01"}', NULL, true);
SELECT h.who,
       c.created_at = '2015-01-01' AS created_kept,
       c.last_activity_at = '2016-01-01' AS activity_kept,
       c.ambassador_optin_at = '2015-02-01' AS amb_at_kept,
       c.brand_optin_at = '2015-03-01' AS brand_at_kept,
       c.partners_optin_at = '2015-04-01' AS partners_at_kept,
       c.created_at > now() - interval '1 hour' AS created_now,
       c.last_activity_at IS NULL AS activity_null,
       c.ambassador_optin_at > now() - interval '1 hour' AS amb_at_now
  FROM hist h JOIN popsell.contacts c ON c.id = h.id ORDER BY h.who;
-- The stamps of the ledger row carry the same time as the row.
SELECT h.who, e.occurred_at = c.ambassador_optin_at OR h.who IN ('superuser', 'app', 'collect_contact (superuser)') AS consistent
  FROM hist h JOIN popsell.contacts c ON c.id = h.id JOIN popsell.consent_events e ON e.contact_id = c.id ORDER BY 1;

-- created_at cannot be rewritten later but by a superuser; the stamps
-- move only with their column.
SELECT id AS staff_row FROM hist WHERE who = 'staff' \gset
SET ROLE popsell_t1_staff;
SELECT pg_temp.try(format('UPDATE popsell.contacts SET created_at = ''2000-01-01'' WHERE id = %s', :staff_row)) AS staff_rewrites_created_at;
SELECT pg_temp.try(format('UPDATE popsell.contacts SET ambassador_optin_at = ''2000-01-01'' WHERE id = %s', :staff_row)) AS staff_rewrites_stamp;
SELECT pg_temp.try(format('UPDATE popsell.contacts SET created_by = ''someone'' WHERE id = %s', :staff_row)) AS staff_rewrites_created_by;
SELECT pg_temp.try(format('UPDATE popsell.contacts SET notes = ''rectified'' WHERE id = %s', :staff_row)) AS staff_rectifies;
RESET ROLE;
SELECT pg_temp.try(format('UPDATE popsell.contacts SET created_at = ''2000-01-01'' WHERE id = %s', :staff_row)) AS superuser_rewrites_created_at;

-- The backend still answers.
SELECT 1 AS alive;
\c :regdb
SET client_min_messages = warning;
DROP DATABASE popsell_t101;
