-- 301_erasure: a plain DELETE is the erasure (SPEC 6, S6).  The tombstone
-- keeps exactly what SPEC lists; no personal value survives anywhere;
-- ledger, interactions and sales are re-pointed (or go with a contact that
-- leaves no tombstone); the ledger is append-only; TRUNCATE is the owner's.
BEGIN;
SELECT plan(34);
SET LOCAL TimeZone = 'UTC';

-- Markers: every personal value contains 'ZQX' so a scan of every table can
-- prove none survives.
SET LOCAL session_replication_role = replica;
INSERT INTO popsell.ambassadors (id, kind, status, email, first_name, last_name, customer_id, facebook_id,
                                 address, city, postal_code, country, birth_date, terms_accepted_at, photo_path,
                                 description, position, iban, login_role, sso_subject, created_at, last_login_at,
                                 preferred_language, leaving_reason)
VALUES (1, 'sales_rep', 'active', 'zqx-amb@example.test', 'ZQXann', 'ZQXlee', 'ZQXcust', 'ZQXfbamb',
        'ZQX 1 road', 'Lyon', '69001', 'ZQXland', '1980-05-05', '2229-01-01', '/p/photo1.jpg',
        'ZQX bio', 'ZQX pos', 'ZQXIBAN', 'zqx_login', 'ZQXsso', '2229-01-02', '2230-01-01', 'fr', NULL),
       (2, 'customer', 'active', 'other@example.test', 'Other', NULL, NULL, NULL, NULL, 'Nice', '06000', NULL,
        NULL, '2229-01-01', NULL, NULL, NULL, NULL, NULL, NULL, '2229-01-01', '2230-01-01', NULL, NULL);
INSERT INTO popsell.social_grants (ambassador_id, network, account_id) VALUES (1, 'instagram', 'ZQXgrant');
INSERT INTO popsell.publications (id, ambassador_id, comment) VALUES (1, 1, 'ZQX pub'), (2, 2, 'other pub');
INSERT INTO popsell.community_reactions (ambassador_id, publication_id, kind, body) VALUES (1, 2, 'comment', 'ZQX comment');
INSERT INTO popsell.gamification (ambassador_id, badges) VALUES (1, '{ZQXbadge}');
INSERT INTO popsell.activity_log (ambassador_id, kind, user_agent) VALUES (1, 'login', 'ZQX agent');
INSERT INTO popsell.contests (id, name, reuse_until) VALUES (1, 'open contest', '2999-01-01');
INSERT INTO popsell.ugc (ambassador_id, contest_id, file_path) VALUES (1, NULL, '/u/plain1.jpg'), (1, 1, '/u/contest.jpg');
-- contacts of ambassador 1: 10 private (goes), 11 brand-visible (stays), 12 partners (stays)
INSERT INTO popsell.contacts (id, ambassador_id, source, first_name, last_name, email, email_status, facebook_id,
                              twitter_id, instagram_id, public_photo_url, customer_id, ambassador_optin,
                              ambassador_optin_at, brand_optin, brand_optin_at, partners_optin, notes, address,
                              city, postal_code, country, mobile_phone, home_phone, tags, created_at)
VALUES (10, 1, 'crm_manual', 'ZQXc', 'ZQXd', 'zqx-c10@example.test', 'ok', 'ZQXfb', 'ZQXtw', 'ZQXig',
        'http://x/ZQX.jpg', 'ZQXcid', 'optout_email', '2229-03-01', 'no_optin', '2229-03-01', false, 'ZQX note',
        'ZQX street', 'Paris', '75001', 'ZQXcountry', 'ZQX0600', 'ZQX0100', '{ZQXtag}', '2229-02-01'),
       (11, 1, 'order', 'Keep', 'Brand', 'keep11@example.test', 'ok', NULL, NULL, NULL, NULL, NULL,
        'optin_order', '2229-03-01', 'optin_brand_database', '2229-03-01', false, NULL, NULL, 'Lille', '59000',
        NULL, NULL, NULL, '{}', '2229-02-01'),
       (12, 1, 'order_popin', 'Keep', 'Partner', 'keep12@example.test', 'ok', NULL, NULL, NULL, NULL, NULL,
        'storage_only', '2229-03-01', 'no_optin', '2229-03-01', true, NULL, NULL, NULL, NULL,
        NULL, NULL, NULL, '{}', '2229-02-01'),
       (20, 2, 'crm_manual', 'Partnered', NULL, 'p20@example.test', 'ok', NULL, NULL, NULL, NULL, NULL,
        'invitation_accepted', '2229-03-01', 'no_optin', '2229-03-01', true, NULL, NULL, 'Nice', '06000',
        NULL, NULL, NULL, '{}', '2229-02-01'),
       (21, 2, 'crm_manual', 'Never', 'Invited', 'n21@example.test', 'ok', NULL, NULL, NULL, NULL, NULL,
        'new', '2229-03-01', 'no_optin', '2229-03-01', false, NULL, NULL, NULL, NULL,
        NULL, NULL, NULL, '{}', '2229-02-01');
INSERT INTO popsell.consent_events (contact_id, ambassador_id, changed, new_ambassador_optin, actor, path, actor_role, occurred_at)
SELECT c, 1, '{ambassador_optin}', 'new', 'ambassador', 'ambassador', 'zqx_login', '2229-02-01'
  FROM unnest(ARRAY[10, 10, 11, 20, 21]) c;
INSERT INTO popsell.interactions (contact_id, publication_id, kind) VALUES (10, 1, 'click'), (20, 2, 'open'), (21, 2, 'click');
INSERT INTO popsell.sales (contact_id, ambassador_id, publication_id, amount, products) VALUES
    (10, 1, 1, 42.50, '[{"sku": "A1"}]'), (21, 2, 2, 10, NULL);
INSERT INTO popsell.outbox (kind, ambassador_id, contact_id, payload, sent_at) VALUES
    ('publication', 1, 10, '{}', NULL), ('publication', 1, 10, '{}', '2229-05-01'),
    ('inactivity_warning', 1, NULL, '{}', NULL);
RESET session_replication_role;

-- ---- a contact alone (staff DELETE): tombstone, re-pointing, partners told
DELETE FROM popsell.contacts WHERE id = 20;
SELECT results_eq(
    $$SELECT contact_id, ambassador_id, source::text, ambassador_optin::text, brand_optin::text, partners_optin,
             key_id = popsell.hash_key_id(), email_hash = popsell.hash_email('p20@example.test'),
             facebook_id_hash IS NULL, city, postal_code, reason
        FROM popsell.contact_tombstones WHERE contact_id = 20$$,
    $$VALUES (20::bigint, 2::bigint, 'crm_manual', 'invitation_accepted', 'no_optin', true, true, true, true,
              'Nice', '06000', 'deleted')$$,
    'a deleted contact leaves a tombstone: keyed email hash, city, postal code, ambassador, source, last opt-ins');
SELECT is((SELECT count(*) FROM popsell.consent_events e JOIN popsell.contact_tombstones t ON t.id = e.contact_tombstone_id
            WHERE t.contact_id = 20 AND e.contact_id IS NULL), 1::bigint, 'its ledger rows point to the tombstone');
SELECT is((SELECT count(*) FROM popsell.interactions x JOIN popsell.contact_tombstones t ON t.id = x.contact_tombstone_id
            WHERE t.contact_id = 20 AND x.contact_id IS NULL), 1::bigint, 'its interactions point to the tombstone');
SELECT is((SELECT count(*) FROM popsell.outbox WHERE kind = 'partner_erasure' AND (payload ->> 'contact_id')::bigint = 20),
          1::bigint, 'a contact with partners_optin queues partner_erasure (GDPR art. 19)');

-- ---- a never-invited contact erased by the rule: no tombstone, its rows go
SELECT is((SELECT affected FROM popsell.run_maintenance('2230-01-01') WHERE rule = 'contact_never_invited'),
          1::bigint, 'contact_never_invited erases the never-invited contact');
SELECT is((SELECT count(*) FROM popsell.contact_tombstones WHERE contact_id = 21), 0::bigint,
          'a never-invited contact leaves no tombstone');
SELECT is((SELECT count(*) FROM popsell.consent_events WHERE contact_id = 21), 0::bigint, '... and no ledger rows');
SELECT is((SELECT count(*) FROM popsell.sales WHERE contact_id = 21 OR (contact_id IS NULL AND contact_tombstone_id IS NULL)),
          0::bigint, '... and no sales or interactions pointing nowhere');

-- ---- the ambassador
DELETE FROM popsell.ambassadors WHERE id = 1;
SELECT results_eq(
    $$SELECT ambassador_id, created_at, key_id = popsell.hash_key_id(),
             email_hash = popsell.hash_email('zqx-amb@example.test'),
             customer_id_hash = popsell.hash_identifier('ZQXcust'),
             facebook_id_hash = popsell.hash_identifier('ZQXfbamb'),
             city, postal_code, birth_year, reason
        FROM popsell.ambassador_tombstones$$,
    $$VALUES (1::bigint, timestamptz '2229-01-02', true, true, true, true, 'Lyon', '69001', 1980, 'deleted')$$,
    'the ambassador tombstone: signup date, keyed hashes of email, customer id and facebook id, city, postal code, birth year');
SELECT results_eq(
    $$SELECT contact_id, email_hash = popsell.hash_email('zqx-c10@example.test'),
             facebook_id_hash = popsell.hash_identifier('ZQXfb'), twitter_id_hash = popsell.hash_identifier('ZQXtw'),
             instagram_id_hash = popsell.hash_identifier('ZQXig'), city, postal_code, ambassador_id,
             source::text, ambassador_optin::text, reason
        FROM popsell.contact_tombstones WHERE contact_id = 10$$,
    $$VALUES (10::bigint, true, true, true, true, 'Paris', '75001', 1::bigint, 'crm_manual', 'optout_email',
              'ambassador_deleted')$$,
    'its private contact is erased with a tombstone (keyed hashes of email and social ids)');
SELECT results_eq($$SELECT id, ambassador_id FROM popsell.contacts WHERE id IN (11, 12) ORDER BY id$$,
                  $$VALUES (11::bigint, NULL::bigint), (12::bigint, NULL::bigint)$$,
                  'brand-visible contacts stay, owned by the brand (ambassador_id NULL)');
SELECT is((SELECT count(*) FROM popsell.publications WHERE id = 1), 0::bigint, 'its publications go');
SELECT is((SELECT count(*) FROM popsell.community_reactions), 0::bigint, 'its reactions go');
SELECT is((SELECT count(*) FROM popsell.social_grants), 0::bigint, 'its grants go');
SELECT is((SELECT count(*) FROM popsell.gamification), 0::bigint, 'its gamification goes');
SELECT is((SELECT count(*) FROM popsell.activity_log), 0::bigint, 'its activity log goes');
SELECT results_eq($$SELECT file_path, ambassador_id FROM popsell.ugc$$,
                  $$VALUES ('/u/contest.jpg', NULL::bigint)$$,
                  'its UGC goes, but contest UGC stays until the contest''s reuse end');
SELECT bag_eq($$SELECT payload ->> 'file_path' FROM popsell.outbox WHERE kind = 'delete_file'$$,
              $$VALUES ('/u/plain1.jpg'), ('/p/photo1.jpg')$$,
              'its photo and UGC files are queued as delete_file');
SELECT results_eq($$SELECT amount, ambassador_id, contact_id IS NULL, contact_tombstone_id IS NOT NULL
                      FROM popsell.sales$$,
                  $$VALUES (42.50::numeric(14,2), NULL::bigint, true, true)$$,
                  'sales stay for statistics, without the person');
SELECT is((SELECT count(*) FROM popsell.interactions WHERE contact_tombstone_id IS NOT NULL), 2::bigint,
          'interactions stay for statistics, on tombstones');
SELECT is((SELECT count(*) FROM popsell.outbox WHERE sent_at IS NULL AND kind NOT IN ('delete_file', 'partner_erasure')),
          0::bigint, 'unsent messages of the erased contact and ambassador are cancelled');
SELECT is((SELECT count(*) FROM popsell.outbox WHERE sent_at IS NOT NULL AND contact_id IS NULL), 1::bigint,
          'sent messages stay without the link');

-- ---- nothing personal survives: scan every popsell table
SELECT is((SELECT string_agg(c.relname, ', ')
             FROM pg_class c
            WHERE c.relnamespace = 'popsell'::regnamespace AND c.relkind = 'r'
              AND (xpath('/row/c/text()',
                         query_to_xml(format('SELECT count(*) AS c FROM popsell.%I x WHERE x::text ~ %L',
                                             c.relname, 'ZQX|zqx'), false, true, '')))[1]::text::int > 0),
          NULL, 'no personal value of the erased ambassador and contact survives in any popsell table');
SELECT is((SELECT count(*) FROM popsell.consent_events WHERE actor_role = 'zqx_login'), 0::bigint,
          'not even the ledger''s acting role name');

-- ---- the ledger is append-only, for everyone but the erasure
SELECT throws_ok($$UPDATE popsell.consent_events SET note = 'x'$$, 'PS400', NULL, 'UPDATE of the ledger is refused (superuser)');
SELECT throws_ok($$DELETE FROM popsell.consent_events$$, 'PS400', NULL, 'DELETE from the ledger is refused');
SELECT throws_ok($$TRUNCATE popsell.consent_events$$, 'PS400', NULL, 'TRUNCATE of the ledger is refused');
SET LOCAL ROLE popsell_owner;
SELECT throws_ok($$DELETE FROM popsell.consent_events$$, 'PS400', NULL, '... even for popsell_owner');
SELECT throws_ok($$TRUNCATE popsell.consent_events$$, 'PS400', NULL, '... TRUNCATE even for popsell_owner');
SELECT lives_ok($$TRUNCATE popsell.activity_log$$, 'popsell_owner may TRUNCATE another personal-data table');
RESET ROLE;
SELECT throws_ok($$TRUNCATE popsell.activity_log$$, 'PS400', NULL, 'TRUNCATE of personal data is refused to other roles');
SET LOCAL ROLE popsell_technical;
SELECT throws_ok($$TRUNCATE popsell.contacts$$, NULL, NULL, 'popsell_technical cannot TRUNCATE contacts');
SELECT throws_ok($$INSERT INTO popsell.erasure_context (reason, tombstone) VALUES ('x', false)$$, NULL, NULL,
                 'nobody but the owner can say "no tombstone"');
RESET ROLE;
SELECT throws_ok($$INSERT INTO popsell.interactions (contact_id, kind) VALUES (999999, 'click')$$, '23503', NULL,
                 'interactions must refer to an existing contact');
SELECT * FROM finish();
ROLLBACK;
