-- 201_attacks: no role reads a row or a column it must not, by any query
-- (SPEC section 2, S2, S3, S5).  Each attempt runs through attempt(): it
-- switches to the role (an ambassador by its LOGIN role, 'guc:N' for a
-- trusted app acting as ambassador N with SET LOCAL, or a group role), runs
-- one statement, returns its result (or its rowcount, or its SQLSTATE and
-- message) and rolls the attempt back.  Leaky functions and operators raise
-- when they are handed a value the role must not see.
BEGIN;
SELECT plan(74);

CREATE ROLE ps_t_alice LOGIN;            -- ambassador 1, by login_role
GRANT popsell_ambassador TO ps_t_alice;
CREATE ROLE ps_t_app LOGIN;              -- a trusted application
GRANT popsell_app TO ps_t_app;
CREATE ROLE ps_t_nobody LOGIN;           -- a member of popsell_ambassador without identity
GRANT popsell_ambassador TO ps_t_nobody;

-- Fixture: ambassadors 1 (Alice) and 2 (Bob) active, 3 not active.
INSERT INTO popsell.ambassadors (id, status, terms_accepted_at, first_name, last_name, email,
                                 login_role, postal_code, password_hash, iban, kind)
VALUES (1, 'active', now(), 'Alice', 'Anders', 'alice@amb.test', 'ps_t_alice', '75001',
        '$2a$06$' || repeat('a', 53), 'FR76ALICE', 'sales_rep'),
       (2, 'active', now(), 'Bob', 'Brown', 'bob@amb.test', NULL, '69001', NULL, 'FR76BOB', 'customer'),
       (3, 'signup_incomplete', NULL, 'Carl', 'Cole', 'carl@amb.test', NULL, '13001', NULL, NULL, 'customer');
SELECT setval('popsell.ambassadors_id_seq', 10);
INSERT INTO popsell.publications (id, ambassador_id, comment) VALUES (1, 1, 'alice pub'), (2, 2, 'bob pub');
-- Contacts: A-new, A-out (declined) visible to Alice; A-pending hidden;
-- A-order and B-order brand-visible; B-restricted and B-pending hidden
-- from the brand.
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
VALUES (1, 'crm_manual', 'A-new', 'a-new@c.test');
SELECT popsell.collect_contact(1, 'blog', '{"first_name":"A-pending","email":"a-pending@c.test"}', true, true) IS NOT NULL;
SELECT popsell.collect_contact(1, 'order', '{"first_name":"A-order","email":"a-order@c.test"}', NULL, true) IS NOT NULL;
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
VALUES (1, 'crm_manual', 'A-out', 'a-out@c.test'), (2, 'crm_manual', 'B-new', 'b-new@c.test');
SELECT popsell.collect_contact(2, 'order', '{"first_name":"B-order","email":"b-order@c.test"}', NULL, true) IS NOT NULL;
SELECT popsell.collect_contact(2, 'order', '{"first_name":"B-restricted","email":"b-restricted@c.test"}', NULL, true) IS NOT NULL;
SELECT popsell.collect_contact(2, 'blog', '{"first_name":"B-pending","email":"b-pending@c.test"}', true, true) IS NOT NULL;
SELECT popsell.send_invitation(id) IS NULL FROM popsell.contacts WHERE first_name = 'A-out';
SELECT popsell.decline_invitation(id) IS NULL FROM popsell.contacts WHERE first_name = 'A-out';
UPDATE popsell.contacts SET restricted = true WHERE first_name = 'B-restricted';
CREATE TEMP TABLE ids AS SELECT first_name AS name, id FROM popsell.contacts;
GRANT SELECT ON ids TO PUBLIC;

CREATE FUNCTION public.attempt(who text, q text, path text DEFAULT NULL) RETURNS text
    LANGUAGE plpgsql AS $f$
DECLARE
    res text;
    n bigint;
    st text; msg text; det text;
BEGIN
    BEGIN
        IF who LIKE 'guc:%' THEN
            PERFORM set_config('role', 'ps_t_app', true);
            PERFORM set_config('popsell.ambassador_id', substr(who, 5), true);
            PERFORM set_config('role', 'popsell_ambassador', true);
        ELSE
            PERFORM set_config('role', who, true);
        END IF;
        IF path IS NOT NULL THEN
            PERFORM set_config('search_path', path, true);
        END IF;
        IF q ~* '^\s*(select|with|values|table|explain)' THEN
            EXECUTE q INTO res;
        ELSE
            EXECUTE q;
            GET DIAGNOSTICS n = ROW_COUNT;
            res := 'rows=' || n;
        END IF;
        RAISE EXCEPTION 'rollback' USING ERRCODE = 'PSZZZ';
    EXCEPTION
        WHEN SQLSTATE 'PSZZZ' THEN
            RETURN coalesce(res, '<null>');
        WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
            RETURN 'ERROR ' || st || ': ' || msg || coalesce(' / ' || nullif(det, ''), '');
    END;
END
$f$;
GRANT EXECUTE ON FUNCTION public.attempt(text, text, text) TO PUBLIC;

-- A leaky function: raises with any value it is handed that the caller
-- must not see.  Cheap, so the planner would love to run it first.
CREATE FUNCTION public.leak(v text, hidden text[]) RETURNS boolean
    LANGUAGE plpgsql COST 0.0001 AS $f$
BEGIN
    IF v = ANY (hidden) THEN
        RAISE EXCEPTION 'LEAKED %', v;
    END IF;
    RETURN true;
END
$f$;
CREATE OPERATOR public.=== (LEFTARG = text, RIGHTARG = text[], FUNCTION = public.leak);
-- Planted in search_path to catch unqualified names in SECURITY DEFINER code.
CREATE FUNCTION public.lower(text) RETURNS text LANGUAGE plpgsql AS
    $f$BEGIN RAISE EXCEPTION 'PLANTED lower'; END$f$;
CREATE FUNCTION public.btrim(text) RETURNS text LANGUAGE plpgsql AS
    $f$BEGIN RAISE EXCEPTION 'PLANTED btrim'; END$f$;
CREATE FUNCTION public.planted_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
    $f$BEGIN RAISE EXCEPTION 'PLANTED ='; END$f$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.planted_eq);
CREATE FUNCTION public.planted_eq8(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS
    $f$BEGIN RAISE EXCEPTION 'PLANTED = bigint'; END$f$;
CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.planted_eq8);
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO PUBLIC;

-- ---- what each role sees ------------------------------------------------
SELECT is(attempt('ps_t_alice', $$SELECT string_agg(first_name, ',' ORDER BY first_name) FROM popsell.contacts$$),
          'A-new,A-order,A-out', 'login ambassador: own contacts, none pending');
SELECT is(attempt('guc:2', $$SELECT string_agg(first_name, ',' ORDER BY first_name) FROM popsell.contacts$$),
          'B-new,B-order,B-restricted', 'app acting as ambassador 2: its contacts, none pending');
SELECT is(attempt('ps_t_nobody', $$SELECT count(*)::text FROM popsell.contacts$$), '0',
          'ambassador role without identity sees nothing');
SELECT is(attempt('guc:3', $$SELECT count(*)::text FROM popsell.my_contacts$$), '0',
          'a not-active ambassador sees nothing');
SELECT is(attempt('popsell_brand', $$SELECT string_agg(first_name, ',' ORDER BY first_name) FROM popsell.contacts$$),
          'A-order,B-order', 'brand: brand-visible, confirmed, unrestricted contacts');
SELECT is(attempt('popsell_brand', $$SELECT string_agg(first_name, ',' ORDER BY first_name) FROM popsell.brand_contacts$$),
          'A-order,B-order', 'brand: popsell.brand_contacts (security_invoker)');
SELECT is(attempt('popsell_brand_bi', $$SELECT string_agg(first_name, ',' ORDER BY first_name) FROM popsell.bi_contacts$$),
          'A-order,B-order', 'brand BI: same rows through popsell.bi_contacts');
SELECT alike(attempt('popsell_brand_bi', $$SELECT count(*)::text FROM popsell.contacts$$), 'ERROR 42501%',
          'brand BI: no table access');
SELECT alike(attempt('popsell_brand_bi', $$SELECT count(*)::text FROM popsell.brand_contacts$$), 'ERROR 42501%',
          'brand BI: security_invoker views refused (no table rights)');
SELECT is(attempt('popsell_account_team', $$SELECT count(*)::text FROM popsell.contacts$$), '8',
          'account team: all contacts');
SELECT is(attempt('popsell_technical', $$SELECT count(*)::text FROM popsell.contacts$$), '8',
          'technical: all contacts');
SELECT is(attempt('ps_t_alice', $$SELECT string_agg(coalesce(email, '<masked>'), ',' ORDER BY first_name) FROM popsell.my_contacts$$),
          'a-new@c.test,a-order@c.test,<masked>', 'my_contacts: opted-out email masked');
SELECT is(attempt('guc:1', $$SELECT string_agg(coalesce(email, '<masked>'), ',' ORDER BY first_name) FROM popsell.my_contacts$$),
          'a-new@c.test,a-order@c.test,<masked>', 'my_contacts through the GUC path');
SELECT alike(attempt('ps_t_alice', $$SELECT string_agg(email, ',') FROM popsell.contacts$$), 'ERROR 42501%',
          'ambassador cannot read contacts.email');
SELECT is(attempt('ps_t_alice', $$SELECT string_agg(id::text, ',') FROM popsell.ambassadors$$), '1',
          'ambassador reads only its own ambassador row');
SELECT alike(attempt('ps_t_alice', $$SELECT password_hash FROM popsell.ambassadors$$), 'ERROR 42501%',
          'ambassador cannot read password hashes');
SELECT is(attempt('ps_t_alice', $$SELECT string_agg(display_name || ':' || postal_code, ',' ORDER BY id) FROM popsell.community$$),
          'Alice A.:75001,Bob B.:69001', 'community: active ambassadors, display names');
SELECT is(attempt('ps_t_nobody', $$SELECT count(*)::text FROM popsell.community$$), '0',
          'community: nothing without an identity');
SELECT alike(attempt('popsell_brand', $$SELECT password_hash FROM popsell.ambassadors$$), 'ERROR 42501%',
          'brand cannot read password hashes');
SELECT alike(attempt('popsell_brand', $$SELECT ip_hash::text FROM popsell.activity_log$$), 'ERROR 42501%',
          'brand cannot read IP hashes');
SELECT is(attempt('popsell_brand', $$SELECT count(*)::text FROM popsell.brand_ambassadors$$), '2',
          'brand sees every ambassador but incomplete signups through brand_ambassadors');

-- ---- the hashing key and others' consent proof ----------------------------
SELECT alike(attempt(r, $$SELECT count(*)::text FROM popsell.hash_keys$$), 'ERROR 42501%',
            r || ' cannot read popsell.hash_keys')
  FROM unnest(ARRAY['ps_t_alice', 'popsell_brand', 'popsell_brand_bi', 'popsell_account_team',
                    'popsell_technical', 'ps_t_app']) AS r;
SELECT is(attempt('ps_t_alice', $$SELECT count(*)::text FROM popsell.consent_events
                                   WHERE contact_id NOT IN (SELECT id FROM ids WHERE name LIKE 'A-%' AND name <> 'A-pending')$$),
          '0', 'ambassador reads no consent events of others (or of pending contacts)');
SELECT is(attempt('popsell_brand', $$SELECT count(*)::text FROM popsell.consent_events
                                      WHERE contact_id NOT IN (SELECT id FROM ids WHERE name IN ('A-order', 'B-order'))$$),
          '0', 'brand reads consent events of brand-visible contacts only');

-- ---- leaky functions, operators and side channels ------------------------
SELECT is(attempt('ps_t_alice', $$SELECT count(*)::text FROM popsell.contacts
                                   WHERE public.leak(first_name, '{B-new,B-order,B-restricted,B-pending,A-pending}')$$),
          '3', 'leaky function in WHERE never sees hidden rows (ambassador, login)');
SELECT is(attempt('guc:2', $$SELECT count(*)::text FROM popsell.contacts
                              WHERE public.leak(first_name, '{A-new,A-order,A-out,A-pending,B-pending}')$$),
          '3', 'leaky function in WHERE never sees hidden rows (ambassador, GUC)');
SELECT is(attempt('ps_t_alice', $$SELECT count(*)::text FROM popsell.my_contacts
                                   WHERE public.leak(email, '{a-out@c.test,a-pending@c.test,b-new@c.test}')$$),
          '3', 'leaky function on my_contacts.email never sees a masked or hidden email');
SELECT is(attempt('popsell_brand', $$SELECT count(*)::text FROM popsell.contacts
                                      WHERE public.leak(email, '{a-new@c.test,a-out@c.test,a-pending@c.test,b-new@c.test,b-restricted@c.test,b-pending@c.test}')$$),
          '2', 'leaky function in WHERE never sees hidden rows (brand)');
SELECT is(attempt('popsell_brand_bi', $$SELECT count(*)::text FROM popsell.bi_contacts
                                         WHERE public.leak(email, '{a-new@c.test,a-out@c.test,a-pending@c.test,b-new@c.test,b-restricted@c.test,b-pending@c.test}')$$),
          '2', 'leaky function on bi_contacts never sees hidden rows (brand BI)');
SELECT is(attempt('ps_t_alice', $$SELECT count(*)::text FROM popsell.community
                                   WHERE public.leak(display_name, '{x}') AND public.leak(postal_code, '{13001}')$$),
          '2', 'leaky function on community never sees a not-active ambassador');
SELECT is(attempt('ps_t_alice', $$SELECT count(*)::text FROM popsell.contacts
                                   WHERE first_name OPERATOR(public.===) '{B-new,B-order,B-restricted,B-pending,A-pending}'$$),
          '3', 'leaky user-defined operator never sees hidden rows (ambassador)');
SELECT is(attempt('popsell_brand', $$SELECT count(*)::text FROM popsell.contacts
                                      WHERE email OPERATOR(public.===) '{a-new@c.test,b-new@c.test,b-restricted@c.test,b-pending@c.test}'$$),
          '2', 'leaky user-defined operator never sees hidden rows (brand)');
SELECT is(attempt('ps_t_alice', $$SELECT count(*)::text FROM popsell.contacts
                                   WHERE 1 / (CASE WHEN first_name = 'B-new' THEN 0 ELSE 1 END) = 1$$),
          '3', 'division by zero side channel: hidden row never evaluated (ambassador)');
SELECT is(attempt('popsell_brand', $$SELECT count(*)::text FROM popsell.contacts
                                      WHERE 1 / (CASE WHEN email = 'b-new@c.test' THEN 0 ELSE 1 END) = 1$$),
          '2', 'division by zero side channel: hidden row never evaluated (brand)');
SELECT is(attempt('ps_t_alice', $$SELECT count(*)::text FROM popsell.my_contacts
                                   WHERE 1 / (CASE WHEN email = 'a-out@c.test' THEN 0 ELSE 1 END) = 1$$),
          '3', 'division by zero side channel on a masked email (my_contacts)');
SELECT is(attempt('popsell_brand', $$SELECT count(*)::text FROM popsell.contacts WHERE email = 'b-new@c.test'$$),
          '0', 'brand email lookup of a hidden contact finds nothing');

-- EXPLAIN ANALYZE shows no hidden value.
CREATE FUNCTION public.explain_text(q text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text; o text := '';
BEGIN
    FOR r IN EXECUTE 'EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q LOOP
        o := o || r || E'\n';
    END LOOP;
    RETURN o;
END $f$;
GRANT EXECUTE ON FUNCTION public.explain_text(text) TO PUBLIC;
SELECT unalike(attempt('ps_t_alice', $$SELECT public.explain_text('SELECT * FROM popsell.my_contacts WHERE first_name <> ''zz''')$$),
              '%@c.test%', 'EXPLAIN ANALYZE of my_contacts shows no email')
UNION ALL
SELECT unalike(attempt('popsell_brand', $$SELECT public.explain_text('SELECT count(*) FROM popsell.contacts WHERE first_name LIKE ''B-%''')$$),
              '%B-new%', 'EXPLAIN ANALYZE as brand shows no hidden value');

-- ---- writes on others' rows ----------------------------------------------
SELECT is(attempt('ps_t_alice', format('UPDATE popsell.contacts SET notes = %L WHERE id = %s', 'x', (SELECT id FROM ids WHERE name = 'B-new'))),
          'rows=0', 'ambassador cannot update another ambassador''s contact');
SELECT is(attempt('ps_t_alice', format('UPDATE popsell.contacts SET notes = %L WHERE id = %s', 'x', (SELECT id FROM ids WHERE name = 'A-pending'))),
          'rows=0', 'ambassador cannot update its own pending contact');
SELECT is(attempt('ps_t_alice', format('DELETE FROM popsell.contacts WHERE id = %s', (SELECT id FROM ids WHERE name = 'B-new'))),
          'rows=0', 'ambassador cannot delete another ambassador''s contact');
SELECT is(attempt('guc:2', format('DELETE FROM popsell.contacts WHERE id = %s', (SELECT id FROM ids WHERE name = 'A-new'))),
          'rows=0', 'ambassador (GUC) cannot delete another ambassador''s contact');
SELECT alike(attempt('ps_t_alice', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name) VALUES (2, 'crm_manual', 'forged')$$),
            'ERROR 42501%', 'ambassador cannot insert a contact for another ambassador');
SELECT alike(attempt('ps_t_alice', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name) VALUES (1, 'order', 'forged')$$),
            'ERROR %', 'ambassador cannot insert a contact of a consent-bearing source');
SELECT is(attempt('ps_t_alice', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name) VALUES (1, 'crm_manual', 'mine')$$),
          'rows=1', 'ambassador inserts its own crm_manual contact');
SELECT alike(attempt('ps_t_alice', format('UPDATE popsell.contacts SET ambassador_id = 2 WHERE id = %s', (SELECT id FROM ids WHERE name = 'A-new'))),
            'ERROR 42501%', 'ambassador cannot hand its contact to another ambassador');
SELECT is(attempt('popsell_brand', format('UPDATE popsell.contacts SET notes = %L WHERE id = %s', 'x', (SELECT id FROM ids WHERE name = 'B-restricted'))),
          'rows=0', 'brand cannot update a restricted contact');
SELECT alike(attempt('popsell_brand_bi', $$UPDATE popsell.bi_contacts SET notes = 'x'$$), 'ERROR %',
            'brand BI views are read-only');

-- ---- existence probes: unique and foreign keys --------------------------
SELECT alike(attempt('ps_t_alice', format('INSERT INTO popsell.contacts (id, ambassador_id, source, first_name) VALUES (%s, 1, %L, %L)',
                                         (SELECT id FROM ids WHERE name = 'B-new'), 'crm_manual', 'probe')),
            'ERROR 42501%', 'ambassador cannot choose a contact id (unique key probe)');
SELECT is(attempt('ps_t_alice', $$INSERT INTO popsell.publications (id, ambassador_id, comment) VALUES (2, 1, 'probe')$$),
          'ERROR 23505: duplicate key value violates unique constraint "publications_pkey"',
          'a unique collision with a hidden row reveals no key value');
SELECT is(attempt('ps_t_alice', format('INSERT INTO popsell.outbox (kind, ambassador_id, contact_id) VALUES (%L, 1, %s)',
                                       'publication', (SELECT id FROM ids WHERE name = 'B-new'))),
          attempt('ps_t_alice', $$INSERT INTO popsell.outbox (kind, ambassador_id, contact_id) VALUES ('publication', 1, 999999)$$),
          'a foreign key to a hidden contact fails like one to no contact');
SELECT is(attempt('ps_t_alice', $$INSERT INTO popsell.social_grants (ambassador_id, network) VALUES (2, 'x')$$),
          attempt('ps_t_alice', $$INSERT INTO popsell.social_grants (ambassador_id, network) VALUES (999999, 'x')$$),
          'a foreign key to another ambassador fails like one to no ambassador');

-- ---- identity cannot be forged ------------------------------------------
SELECT alike(attempt('ps_t_alice', $$SELECT set_config('popsell.ambassador_id', '2', true)$$), 'ERROR 42501%',
            'an ambassador login cannot set popsell.ambassador_id');
SELECT alike(attempt('popsell_brand', $$SELECT set_config('popsell.ambassador_id', '2', true)$$), 'ERROR 42501%',
            'the brand cannot set popsell.ambassador_id');
SELECT is(attempt('guc:', $$SELECT coalesce(popsell.current_ambassador_id()::text, 'nobody')$$), 'nobody',
          'empty GUC is nobody');
SELECT is(attempt(g, $$SELECT coalesce(popsell.current_ambassador_id()::text, 'nobody') || ':' || (SELECT count(*) FROM popsell.contacts)$$),
          'nobody:0', 'GUC ' || left(g, 12) || ' is nobody and sees nothing')
  FROM unnest(ARRAY['guc:-1', 'guc:2;drop', 'guc:0002 ', 'guc:' || repeat('9', 1048576)]) AS g;

-- ---- search_path and temp tables cannot hijack SECURITY DEFINER code ----
SELECT unalike(attempt('ps_t_alice', $$SELECT imported::text FROM popsell.import_contacts(1, '[{"email":"  New@X.test ","first_name":"N"}]')$$,
                      'public, pg_catalog'),
              '%PLANTED%', 'import_contacts ignores a planted public.lower/btrim/=');
SELECT unalike(attempt('ps_t_app', format('SELECT popsell.%s', f), 'public, pg_catalog'),
              '%PLANTED%', 'planted search_path: ' || split_part(f, '(', 1))
  FROM unnest(ARRAY[
        $$collect_contact(1, 'order', '{"first_name":"P","email":"P@X.test"}', NULL, true)::text$$,
        format('send_invitation(%s)::text', (SELECT id FROM ids WHERE name = 'A-new')),
        format('opt_out(%s, true)::text', (SELECT id FROM ids WHERE name = 'A-order')),
        $$email_callback('A-Order@C.test', 'hard_bounce')::text$$,
        format('record_sale(%s, 10)::text', (SELECT id FROM ids WHERE name = 'A-order')),
        format('record_interaction(%s, ''click'')::text', (SELECT id FROM ids WHERE name = 'A-order'))]) AS f;
-- Every SECURITY DEFINER function, called as the owner's peers with NULLs
-- under a planted search_path, never reaches a planted object.
SELECT is((SELECT string_agg(p.oid::regprocedure::text, ', ')
             FROM pg_proc p
            WHERE p.pronamespace = 'popsell'::regnamespace AND p.prosecdef
              AND attempt('popsell_technical',
                          format('SELECT %s(%s)::text', p.oid::regproc,
                                 (SELECT string_agg('NULL', ',') FROM generate_series(1, p.pronargs))),
                          'public, pg_catalog') LIKE '%PLANTED%'),
          NULL, 'no SECURITY DEFINER function reaches a planted object with NULL arguments');

CREATE FUNCTION public.shadow_probe() RETURNS text LANGUAGE plpgsql AS $f$
DECLARE n text;
BEGIN
    CREATE TEMP TABLE contacts (id bigint, ambassador_id bigint, source text, first_name text, email text);
    CREATE TEMP TABLE blacklist (email_hash bytea, key_id int, reason text, created_at timestamptz);
    CREATE TEMP TABLE consent_events (id bigint, contact_id bigint, ambassador_id bigint);
    PERFORM set_config('search_path', 'pg_temp, public, pg_catalog', true);
    PERFORM popsell.import_contacts(1, '[{"email":"shadow@x.test","first_name":"Shadow"}]');
    INSERT INTO popsell.contacts (ambassador_id, source, first_name) VALUES (1, 'crm_manual', 'Shadow2');
    SELECT (SELECT count(*) FROM pg_temp.contacts) || ',' || (SELECT count(*) FROM pg_temp.consent_events)
           || ',' || (SELECT count(*) FROM popsell.my_contacts WHERE first_name LIKE 'Shadow%') INTO n;
    RETURN n;
END $f$;
GRANT EXECUTE ON FUNCTION public.shadow_probe() TO PUBLIC;
SELECT is(attempt('ps_t_alice', 'SELECT public.shadow_probe()'), '0,0,2',
          'temporary tables named like popsell tables change nothing');

-- ---- prepared statements and savepoints ----------------------------------
CREATE FUNCTION public.prepared_probe() RETURNS text LANGUAGE plpgsql AS $f$
DECLARE a text; b text; c text; d text;
BEGIN
    PERFORM set_config('popsell.ambassador_id', '1', true);
    PERFORM set_config('role', 'popsell_ambassador', true);
    EXECUTE 'PREPARE ps_probe AS SELECT coalesce(string_agg(left(first_name, 1), '''' ORDER BY id), ''-'') FROM popsell.contacts';
    EXECUTE 'EXECUTE ps_probe' INTO a;
    PERFORM set_config('role', 'ps_t_app', true);
    PERFORM set_config('popsell.ambassador_id', '2', true);
    PERFORM set_config('role', 'popsell_ambassador', true);
    EXECUTE 'EXECUTE ps_probe' INTO b;
    PERFORM set_config('role', 'ps_t_alice', true);
    EXECUTE 'EXECUTE ps_probe' INTO c;
    PERFORM set_config('role', 'ps_t_app', true);
    PERFORM set_config('popsell.ambassador_id', '', true);
    PERFORM set_config('role', 'popsell_ambassador', true);
    EXECUTE 'EXECUTE ps_probe' INTO d;
    DEALLOCATE ps_probe;
    RETURN a || ' ' || b || ' ' || c || ' ' || d;
END $f$;
GRANT EXECUTE ON FUNCTION public.prepared_probe() TO PUBLIC;
SELECT is(attempt('ps_t_app', $$SELECT public.prepared_probe()$$), 'AAA BBB AAA -',
          'a statement prepared as one ambassador follows SET ROLE and the GUC when executed');
SELECT * FROM finish();
ROLLBACK;
