-- 401_rights: the data-subject rights (GDPR art. 15-22) by email.
-- subject_access gathers every piece of a person spread over several
-- ambassadors and nothing of a namesake in the same city; erase_subject
-- leaves the plaintext email and name in no text or jsonb column of any
-- popsell table; restrict_subject hides from the brand and blocks the
-- outbox; object_subject blacklists; each request is accounted for.
BEGIN;
SELECT plan(42);

UPDATE popsell.settings SET bcrypt_cost = 4;
INSERT INTO popsell.ambassadors (id, kind, status, terms_accepted_at, first_name, last_name, email, city) VALUES
    (1, 'customer',  'active', now(), 'Ann', 'Amb', 'ann@amb.test', 'Lyon'),
    (2, 'sales_rep', 'active', now(), 'Bob', 'Amb', 'bob@amb.test', 'Lyon'),
    -- the subject is also an ambassador
    (3, 'customer',  'active', now(), 'Zoé', 'Quintessa', 'Zoe.Quintessa@Example.test', 'Lyon');
INSERT INTO popsell.publications (id, ambassador_id, comment) VALUES (1, 1, 'spring'), (2, 3, 'my own post');
INSERT INTO popsell.activity_log (ambassador_id, kind, ip_hash) VALUES (3, 'login', popsell.hash_identifier('198.51.100.1'));
INSERT INTO popsell.gamification (ambassador_id, score) VALUES (3, 42);

-- the subject in two CRMs, and a namesake (same name, same city, other email)
INSERT INTO popsell.contacts (id, ambassador_id, source, first_name, last_name, email, city, notes, partners_optin, brand_optin)
VALUES (10, 1, 'crm_manual', 'Zoé', 'Quintessa', 'zoe.quintessa@example.test', 'Lyon', 'met at the fair', false, 'no_optin'),
       (11, 1, 'crm_manual', 'Zoé', 'Quintessa', 'zoe.other@example.test', 'Lyon', 'namesake', false, 'no_optin');
SELECT popsell.collect_contact(2, 'order', '{"first_name": "Zoé", "last_name": "Quintessa", "email": "ZOE.QUINTESSA@example.test", "city": "Lyon"}', NULL, true, NULL) AS c20 \gset
SELECT popsell.collect_contact(2, 'order', '{"first_name": "Zoé", "last_name": "Quintessa", "email": "zoe.other@example.test", "city": "Lyon"}', NULL, true, NULL) AS c21 \gset
SELECT popsell.send_invitation(10);
SELECT popsell.send_invitation(11);
SELECT popsell.record_interaction(:c20, 'click', 1);
SELECT popsell.record_interaction(:c21, 'click', 1);
SELECT popsell.record_sale(:c20, 25, 'EUR', '[{"sku": "lipstick"}]');
SELECT popsell.record_sale(:c21, 99, 'EUR', '[{"sku": "namesake-only"}]');

-- ------------------------------------------------------------------
-- access (art. 15, 20)
-- ------------------------------------------------------------------
SET LOCAL ROLE popsell_account_team;
SELECT popsell.subject_access(' Zoe.QUINTESSA@example.test ') AS doc \gset
RESET ROLE;
SELECT is((:'doc'::jsonb) ->> 'format', 'popsell.subject_access/1', 'document is versioned');
SELECT is((:'doc'::jsonb) ->> 'email', 'zoe.quintessa@example.test', 'document names the normalized email');
SELECT is((SELECT array_agg((c ->> 'id')::bigint ORDER BY (c ->> 'id')::bigint)
             FROM jsonb_array_elements((:'doc'::jsonb) -> 'contacts') c),
          ARRAY(SELECT x FROM unnest(ARRAY[10, :c20]::bigint[]) x ORDER BY x), 'both contact rows, in two ambassadors'' CRMs');
SELECT is((SELECT array_agg(DISTINCT (c ->> 'ambassador_id')::bigint)
             FROM jsonb_array_elements((:'doc'::jsonb) -> 'contacts') c),
          ARRAY[1, 2]::bigint[], 'contact rows give their ambassador by id');
SELECT is((:'doc'::jsonb) #>> '{ambassador,id}', '3', 'the ambassador account');
SELECT ok(NOT ((:'doc'::jsonb) -> 'ambassador') ? 'password_hash', 'no password hash');
SELECT is(jsonb_array_length((:'doc'::jsonb) #> '{ambassador,publications}'), 1, 'own publications');
SELECT is(jsonb_array_length((:'doc'::jsonb) #> '{ambassador,activity_log}'), 1, 'own activity log');
SELECT is((:'doc'::jsonb) #>> '{ambassador,gamification,score}', '42', 'own score');
SELECT is((SELECT sum(jsonb_array_length(c -> 'consent_events'))::int
             FROM jsonb_array_elements((:'doc'::jsonb) -> 'contacts') c),
          (SELECT count(*)::int FROM popsell.consent_events WHERE contact_id IN (10, :c20)),
          'consent history: every ledger row of both contacts');
SELECT is((SELECT sum(jsonb_array_length(c -> 'interactions'))::int
             FROM jsonb_array_elements((:'doc'::jsonb) -> 'contacts') c), 1, 'interactions');
SELECT is((SELECT string_agg(s ->> 'amount', ',')
             FROM jsonb_array_elements((:'doc'::jsonb) -> 'contacts') c,
                  jsonb_array_elements(c -> 'sales') s), '25.00', 'sales');
SELECT is((SELECT string_agg(o ->> 'kind', ',')
             FROM jsonb_array_elements((:'doc'::jsonb) -> 'contacts') c,
                  jsonb_array_elements(c -> 'outbox') o), 'invitation', 'outbox entries');
SELECT is((:'doc'::jsonb) -> 'blacklisted', 'false'::jsonb, 'not blacklisted');
SELECT ok(position('zoe.other' IN :'doc') = 0 AND position('namesake' IN :'doc') = 0
          AND position('99.00' IN :'doc') = 0,
          'nothing of the namesake (same name, same city)');
SELECT ok(position('Ann' IN :'doc') = 0 AND position('ann@amb' IN :'doc') = 0
          AND position('bob@amb' IN :'doc') = 0,
          'nothing of the ambassadors holding the rows');
SELECT ok(NOT (:'doc'::jsonb) #> '{contacts,0}' ? 'created_by'
          AND NOT (:'doc'::jsonb) #> '{contacts,0,consent_events,0}' ? 'actor_role',
          'no staff role names');

-- unknown email: an empty document, not an error
SET LOCAL ROLE popsell_technical;
SELECT is(popsell.subject_access('nobody@example.test') - 'generated_at',
          '{"format": "popsell.subject_access/1", "email": "nobody@example.test", "ambassador": null,
            "contacts": [], "erased_contacts": [], "erased_ambassadors": [], "invitations": [], "blacklisted": false,
            "blacklist": [], "whitelisted": false}'::jsonb, 'unknown email: empty document');
SELECT throws_ok($$SELECT popsell.subject_access(NULL)$$, 'PS202', NULL, 'NULL email');
SELECT throws_ok($$SELECT popsell.subject_access('zoe@@example')$$, 'PS202', NULL, 'malformed email');
RESET ROLE;
SET LOCAL ROLE popsell_brand;
SELECT throws_ok($$SELECT popsell.subject_access('zoe.quintessa@example.test')$$, '42501', NULL,
                 'the brand cannot run rights requests');
RESET ROLE;

-- ------------------------------------------------------------------
-- restriction (art. 18)
-- ------------------------------------------------------------------
SET LOCAL ROLE popsell_brand;
SELECT is((SELECT count(*) FROM popsell.contacts WHERE id = :c20), 1::bigint,
          'before: the brand sees the brand-visible row');
RESET ROLE;
SET LOCAL ROLE popsell_account_team;
SELECT is(popsell.restrict_subject('zoe.quintessa@example.test', true), 2::bigint, 'restricts both rows');
SELECT is(popsell.restrict_subject('zoe.quintessa@example.test', true), 0::bigint, 'idempotent');
SELECT throws_ok($$SELECT popsell.restrict_subject('zoe.quintessa@example.test', NULL)$$, 'PS106', NULL, 'on must be given');
RESET ROLE;
SELECT is((SELECT count(*) FROM popsell.contacts WHERE email = 'zoe.quintessa@example.test' AND restricted),
          2::bigint, 'rows kept, restricted');
SET LOCAL ROLE popsell_brand;
SELECT is((SELECT count(*) FROM popsell.contacts WHERE id = :c20), 0::bigint,
          'restricted: hidden from the brand');
RESET ROLE;
SELECT throws_ok(format($$INSERT INTO popsell.outbox (kind, ambassador_id, contact_id) VALUES ('publication', 2, %s)$$, :c20),
                 'PS120', NULL, 'restricted: nothing is sent');
SELECT throws_ok($$UPDATE popsell.contacts SET restricted = false WHERE id = 10$$ , 'PS105', NULL,
                 'restricted moves only through restrict_subject')
  FROM (SELECT set_config('role', 'popsell_account_team', true)) x;
RESET ROLE;
SET LOCAL ROLE popsell_account_team;
SELECT is(popsell.restrict_subject('zoe.quintessa@example.test', false), 2::bigint, 'restriction lifted');
RESET ROLE;

-- ------------------------------------------------------------------
-- objection (art. 21)
-- ------------------------------------------------------------------
SET LOCAL ROLE popsell_account_team;
SELECT is(popsell.object_subject('zoe.quintessa@example.test'), 2::bigint, 'objection opts both rows out');
RESET ROLE;
SELECT is((SELECT array_agg(DISTINCT ambassador_optin::text) FROM popsell.contacts
            WHERE email = 'zoe.quintessa@example.test'), ARRAY['global_optout'], 'global opt-out');
SELECT ok(popsell._globally_opted_out('zoe.quintessa@example.test'), 'blacklisted by hash');
SELECT is((SELECT array_agg(DISTINCT ambassador_optin::text) FROM popsell.contacts
            WHERE email = 'zoe.other@example.test'), ARRAY['invitation_sent', 'optin_order'],
          'the namesake is untouched');

-- ------------------------------------------------------------------
-- erasure (art. 17)
-- ------------------------------------------------------------------
SET LOCAL ROLE popsell_account_team;
SELECT is(popsell.erase_subject('zoe.quintessa@example.test'),
          '{"format": "popsell.erase_subject/1", "contacts": 2, "ambassadors": 1}'::jsonb, 'erasure counts');
RESET ROLE;
-- every text, varchar, name, jsonb or text[] column of every popsell table
CREATE TEMP TABLE hits (tab text, col text);
DO $$
DECLARE r record; n bigint;
BEGIN
    FOR r IN SELECT c.relname, a.attname
               FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
              WHERE c.relnamespace = 'popsell'::regnamespace AND c.relkind = 'r'
                AND a.attnum > 0 AND NOT a.attisdropped
                AND a.atttypid IN ('text'::regtype, 'varchar'::regtype, 'name'::regtype, 'jsonb'::regtype,
                                   'text[]'::regtype, 'bpchar'::regtype)
    LOOP
        -- the namesake's own rows keep the shared name, of course
        EXECUTE format('SELECT count(*) FROM popsell.%I t WHERE %I::text ILIKE ANY (ARRAY[%L, %L, %L])%s',
                       r.relname, r.attname, '%zoe.quintessa%', '%Quintessa%', '%Zoé%',
                       CASE WHEN r.relname = 'contacts' THEN ' AND t.email IS DISTINCT FROM ''zoe.other@example.test''' ELSE '' END)
           INTO n;
        IF n > 0 THEN INSERT INTO hits VALUES (r.relname, r.attname); END IF;
    END LOOP;
END $$;
SELECT is((SELECT string_agg(tab || '.' || col, ', ') FROM hits), NULL,
          'no popsell table holds the plaintext email or name');
SELECT ok((SELECT count(*) FROM popsell.contacts WHERE email = 'zoe.other@example.test') = 2,
          'the namesake''s rows stay');
SELECT ok((SELECT count(*) FROM popsell.sales WHERE amount = 25) = 1, 'sales amounts survive for statistics');

SET LOCAL ROLE popsell_account_team;
SELECT is(popsell.erase_subject('zoe.quintessa@example.test'),
          '{"format": "popsell.erase_subject/1", "contacts": 0, "ambassadors": 0}'::jsonb, 'erasing again: zero');
SELECT throws_ok($$SELECT popsell.erase_subject('not an email')$$, 'PS202', NULL, 'malformed email');
-- accountability: one record per request, no personal data
SELECT is((SELECT string_agg(request || ':' || gdpr_article, ',' ORDER BY id) FROM popsell.rights_requests),
          'access:15,access:15,restriction:18,restriction:18,restriction_lifted:18,objection:21,erasure:17,erasure:17',
          'every request is recorded');
SELECT ok((SELECT bool_and(position('zoe' IN lower(r::text)) = 0 AND position('quintessa' IN lower(r::text)) = 0)
             FROM popsell.rights_requests r), 'records hold no personal data');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
