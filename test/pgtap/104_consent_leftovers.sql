-- 104_consent_leftovers: the leftovers of issue 13, each found working the
-- wrong way: an import with one bad row among thousands fell back to a
-- super-linear per-row loop; an over-long field and a row without any
-- personal field were reported under one reason; a non-object element
-- aborted the whole import; the brand could use an email change as an
-- oracle for the blacklist (F9); a confirmation sent to an old address
-- confirmed the new one (F10).
--
-- act(who, sql) runs one statement as a role and KEEPS its effects (see
-- 102_consent_v2): 'amb:N' acts as ambassador N, 'app' the trusted
-- application, any other value a role name; it returns the statement's
-- first value (or rows=N), or 'ERROR <sqlstate>: <message>'.
BEGIN;
SELECT plan(33);

CREATE ROLE ps_c_app LOGIN;
GRANT popsell_app TO ps_c_app;

INSERT INTO popsell.ambassadors (id, kind, status, terms_accepted_at, first_name, email, deletion_due_at) VALUES
    (1, 'customer',  'active',  now(), 'Ann', 'ann@amb.test', NULL),
    (2, 'sales_rep', 'active',  now(), 'Bob', 'bob@amb.test', NULL),
    (3, 'customer',  'leaving', now(), 'Cid', 'cid@amb.test', now() + interval '7 days');
SELECT setval('popsell.ambassadors_id_seq', 10);

CREATE FUNCTION public.act(who text, q text) RETURNS text
    LANGUAGE plpgsql AS $f$
DECLARE
    res text;
    n bigint;
    st text; msg text;
BEGIN
    BEGIN
        IF who LIKE 'amb:%' THEN
            PERFORM set_config('role', 'ps_c_app', true);
            PERFORM set_config('popsell.ambassador_id', substr(who, 5), true);
            PERFORM set_config('role', 'popsell_ambassador', true);
        ELSIF who = 'app' THEN
            PERFORM set_config('role', 'ps_c_app', true);
        ELSE
            PERFORM set_config('role', who, true);
        END IF;
        IF q ~* '^\s*(select|with|values|table)' THEN
            EXECUTE q INTO res;
        ELSE
            EXECUTE q;
            GET DIAGNOSTICS n = ROW_COUNT;
            res := 'rows=' || n;
        END IF;
        PERFORM set_config('role', 'none', true);
        PERFORM set_config('popsell.ambassador_id', '', true);
        RETURN coalesce(res, '<null>');
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
        RETURN 'ERROR ' || st || ': ' || msg;
    END;
END
$f$;

CREATE FUNCTION public.state(p_id bigint) RETURNS text LANGUAGE sql AS $f$
    SELECT concat_ws(',', ambassador_optin, brand_optin, partners_optin::text, email_status)
      FROM popsell.contacts WHERE id = p_id $f$;

-- ---- import: one bad row among 20 000 is reported, the rest inserted in one pass
CREATE TEMP TABLE big AS
SELECT jsonb_agg(CASE WHEN g = 12345 THEN jsonb_build_object('first_name', 'Bad', 'email', 'not-an-email')
                      ELSE jsonb_build_object('first_name', 'P' || g, 'email', 'p' || g || '@big.test') END
                 ORDER BY g) AS a
  FROM generate_series(1, 20000) g;
GRANT SELECT ON big TO PUBLIC;
SET LOCAL statement_timeout = '30s';
SELECT is(act('amb:1', 'SELECT row(d.*)::text FROM popsell.import_contacts(1, (SELECT a FROM big)) d'),
          '(19999,0,0,1)', '20 000 rows with one malformed email: 19 999 imported, one skipped_invalid, within the timeout');
SET LOCAL statement_timeout = 0;
SELECT is((SELECT count(*) FROM popsell.contacts WHERE ambassador_id = 1 AND email LIKE '%@big.test'),
          19999::bigint, 'the good rows are stored');
DELETE FROM popsell.contacts WHERE ambassador_id = 1 AND email LIKE '%@big.test';
SET LOCAL statement_timeout = '30s';
SELECT is(act('amb:1', $$SELECT string_agg(row(d.*)::text, ';') FROM popsell.import_contacts_detail(1, (SELECT a FROM big)) d
                         WHERE d.outcome <> 'imported'$$),
          '(12345,,skipped_invalid,"malformed email")', 'the detail names exactly that row, by its position');
SET LOCAL statement_timeout = 0;
DELETE FROM popsell.contacts WHERE ambassador_id = 1 AND email LIKE '%@big.test';

-- ---- import reasons: distinct, and a non-object element is skipped
CREATE FUNCTION public.detail(p_amb bigint, p jsonb) RETURNS text LANGUAGE sql AS $f$
    SELECT act('amb:' || p_amb, format('SELECT string_agg(concat_ws(''|'', d.ordinality, d.outcome, d.reason), '';'' ORDER BY d.ordinality) FROM popsell.import_contacts_detail(%s, %L) d',
                                       p_amb, p)) $f$;
SELECT is(detail(1, jsonb_build_array(jsonb_build_object('first_name', repeat('x', 300)),
                                      jsonb_build_object('notes', 'no personal field here'),
                                      jsonb_build_object('first_name', 'Fine1'))),
          '1|skipped_invalid|value too long;2|skipped_invalid|no personal field;3|imported',
          'an over-long field and a row without a personal field have distinct reasons');
SELECT is(detail(1, '[1, "x", null, [], {"first_name": "Fine2"}]'),
          '1|skipped_invalid|not a JSON object;2|skipped_invalid|not a JSON object;3|skipped_invalid|not a JSON object;4|skipped_invalid|not a JSON object;5|imported',
          'non-object elements are skipped with a reason, the others imported');
SELECT is(detail(1, jsonb_build_array(jsonb_build_object('first_name', 'Fine3', 'email', 'dup@imp.test'),
                                      jsonb_build_object('first_name', 'Dup', 'email', 'DUP@imp.test'),
                                      jsonb_build_object('first_name', 'Typ', 'contact_type', 'nope'),
                                      jsonb_build_object('first_name', 'Long', 'email', repeat('e', 1100) || '@imp.test'),
                                      jsonb_build_object('first_name', 'Src', 'source', 'blog'),
                                      jsonb_build_object('first_name', 'Opt', 'ambassador_optin', 'optin_other'))),
          '1|imported;2|skipped_duplicate|email already held by this ambassador;3|skipped_invalid|invalid value (SQLSTATE 22P02);4|skipped_invalid|value too long;5|skipped_invalid|source not allowed;6|skipped_invalid|consent value not allowed for the source',
          'duplicates, mistyped values, over-long emails, sources and consent values each get their reason');
SELECT is(detail(1, '{"a": 1}'::jsonb), 'ERROR PS106: contacts must be a JSON array of objects',
          'an argument that is not an array is still an error');
SELECT is(detail(1, '[{"first_name": "K", "password": "x"}]'::jsonb), 'ERROR PS106: import does not accept the keys: password',
          'an unknown key is still an error');

-- ---- F9: the brand cannot use an email change as a blacklist oracle
SELECT popsell.collect_contact(2, 'order', '{"first_name":"Oracle1","email":"oracle1@c.test"}', NULL, true);
SELECT popsell.collect_contact(2, 'order', '{"first_name":"Oracle2","email":"oracle2@c.test"}', NULL, true);
SELECT popsell.opt_out(popsell.collect_contact(2, 'order', '{"first_name":"Gone","email":"gone@c.test"}', NULL, true), true);
SELECT act('amb:1', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                      VALUES (1, 'crm_manual', 'Refuser', 'refuser@c.test')$$);
SELECT popsell.send_invitation((SELECT id FROM popsell.contacts WHERE first_name = 'Refuser'));
SELECT popsell.decline_invitation((SELECT id FROM popsell.contacts WHERE first_name = 'Refuser'));
CREATE FUNCTION public.brand_sets_email(p_name text, p_email text) RETURNS text LANGUAGE sql AS $f$
    SELECT act('popsell_brand', format($q$WITH u AS (UPDATE popsell.contacts SET email = %L WHERE first_name = %L RETURNING *)
                                          SELECT concat_ws(',', ambassador_optin, brand_optin, partners_optin, email_status) FROM u$q$,
                                       p_email, p_name)) $f$;
SELECT is(regexp_replace(brand_sets_email('Oracle1', 'gone@c.test'), '[0-9]+', 'N', 'g'),
          regexp_replace(brand_sets_email('Oracle2', 'fresh@c.test'), '[0-9]+', 'N', 'g'),
          'a globally opted-out address and a fresh one give the brand the same answer');
SELECT is(regexp_replace(brand_sets_email('Oracle1', 'refuser@c.test'), '[0-9]+', 'N', 'g'),
          regexp_replace(brand_sets_email('Oracle2', 'fresh2@c.test'), '[0-9]+', 'N', 'g'),
          'a refused address and a fresh one give the brand the same answer');
SELECT is(brand_sets_email('Oracle2', 'fresh3@c.test'),
          'ERROR PS105: contact ' || (SELECT id FROM popsell.contacts WHERE first_name = 'Oracle2')
          || ' cannot change its email through the brand',
          'the brand does not change a contact''s email (PS105)');
SELECT is((SELECT email FROM popsell.contacts WHERE first_name = 'Oracle1'), 'oracle1@c.test', 'the address is unchanged');
SELECT is(act('popsell_brand', $$UPDATE popsell.contacts SET first_name = 'Oracle1b' WHERE first_name = 'Oracle1'$$),
          'rows=1', 'the brand still rectifies other fields');
SELECT is(act('popsell_account_team', $$UPDATE popsell.contacts SET email = 'rectified@c.test' WHERE first_name = 'Oracle1b'$$),
          'rows=1', 'vendor support rectifies an address');

-- ---- F10: a confirmation is bound to the address it was sent to
CREATE FUNCTION public.token(p_id bigint) RETURNS text LANGUAGE sql AS $f$
    SELECT o.payload->>'token' FROM popsell.outbox o
     WHERE o.contact_id = p_id AND o.kind = 'email_confirmation' ORDER BY o.id DESC LIMIT 1 $f$;
CREATE TEMP TABLE pend AS
SELECT popsell.collect_contact(1, 'blog', '{"first_name":"Pend","email":"pend-old@c.test"}', true, true) AS id;
CREATE TEMP TABLE tok AS SELECT token(id) AS old FROM pend;
UPDATE popsell.outbox SET sent_at = now() WHERE contact_id = (SELECT id FROM pend) AND kind = 'email_confirmation';
SELECT ok((SELECT old FROM tok) ~ '^[0-9a-f]{64}$', 'the confirmation mail carries a token');
SELECT is(act('popsell_account_team', $$UPDATE popsell.contacts SET email = 'pend-new@c.test' WHERE first_name = 'Pend'$$),
          'rows=1', 'the pending contact''s address is changed');
SELECT is(act('app', format('SELECT popsell.confirm_email(%s, %L)', (SELECT id FROM pend), (SELECT old FROM tok))),
          'ERROR PS100: contact ' || (SELECT id FROM pend) || ' has no pending confirmation with this token',
          'the token sent to the old address does not confirm the new one');
SELECT is(state((SELECT id FROM pend)), 'optin_blog_pending,optin_blog,false,unverified', 'still pending');
SELECT isnt(token((SELECT id FROM pend)), (SELECT old FROM tok), 'the new address got its own token');
SELECT is(act('app', format('SELECT popsell.confirm_email(%s, %L)', (SELECT id FROM pend), token((SELECT id FROM pend)))),
          '', 'the new address''s token confirms it');
SELECT is(state((SELECT id FROM pend)), 'optin_blog_verified,optin_blog,false,ok', 'confirmed');
SELECT is(act('app', format('SELECT popsell.confirm_email(%s, %L)', (SELECT id FROM pend), token((SELECT id FROM pend)))),
          'ERROR PS100: contact ' || (SELECT id FROM pend) || ' is not pending email confirmation',
          'a token works once');
CREATE TEMP TABLE pend1 AS
SELECT popsell.collect_contact(1, 'store_purchase', '{"first_name":"Pend1","email":"pend1@c.test"}', true, true) AS id;
SELECT is(act('app', format('SELECT popsell.confirm_email(%s)', (SELECT id FROM pend1))),
          '', 'confirm_email(contact_id), SPEC''s form, confirms the current address for the application');
SELECT is(state((SELECT id FROM pend1)), 'optin_blog_verified,optin_blog,false,ok', 'confirmed by the one-argument form');
SELECT is((SELECT count(*) FROM popsell.contact_email_tokens WHERE contact_id = (SELECT id FROM pend1)), 0::bigint,
          'the one-argument form uses up the pending token');
SELECT is(act('app', 'SELECT popsell.confirm_email(NULL::bigint)'), 'ERROR PS200: contact id must not be NULL',
          'a NULL contact id is an error');
SELECT is(act('app', format('SELECT popsell.confirm_email(%s)', (SELECT id FROM pend1))),
          'ERROR PS100: contact ' || (SELECT id FROM pend1) || ' is not pending email confirmation',
          'a confirmation happens once');

-- ---- found by the model (103): one invitation per person per ambassador
SELECT act('amb:1', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                      VALUES (1, 'crm_manual', 'Twice', 'twice@c.test')$$);
SELECT popsell.send_invitation((SELECT id FROM popsell.contacts WHERE first_name = 'Twice'));
SELECT act('amb:1', $$DELETE FROM popsell.contacts WHERE first_name = 'Twice'$$);
SELECT act('amb:1', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                      VALUES (1, 'crm_manual', 'Twice again', 'twice@c.test')$$);
SELECT alike(act('amb:1', $$SELECT popsell.send_invitation(id)::text FROM popsell.contacts WHERE first_name = 'Twice again'$$),
             'ERROR PS100: %invited this person once already',
             'an invited contact erased and entered again is not invited again (enter, invite, erase, enter, invite)');
SELECT act('amb:1', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                      VALUES (1, 'crm_manual', 'Form twice', 'formtwice@c.test')$$);
SELECT popsell.send_invitation((SELECT id FROM popsell.contacts WHERE first_name = 'Form twice'));
CREATE TEMP TABLE ext AS
SELECT popsell.collect_contact(1, 'external_form', '{"first_name":"Form twice 2","email":"formtwice@c.test"}') AS id;
SELECT is(state((SELECT id FROM ext)), 'new,storage_only,false,ok', 'a form that did not ask leaves the second row new');
SELECT alike(act('amb:1', format('SELECT popsell.send_invitation(%s)::text', (SELECT id FROM ext))),
             'ERROR PS100: %invited this person once already',
             'a second row of the same person for the same ambassador is not invited again');

-- ---- found by the model (103): the ambassador acts only on contacts it sees
CREATE TEMP TABLE pb AS
SELECT popsell.collect_contact(1, 'blog', '{"first_name":"Bounced","email":"bounced@c.test"}', true) AS id;
SELECT popsell.email_callback('bounced@c.test', 'soft_bounce');
SELECT is(act('amb:1', format('SELECT popsell.release_soft_bounce(%s)::text', (SELECT id FROM pb))),
          'ERROR PS200: contact ' || (SELECT id FROM pb) || ' does not exist or is not yours',
          'the ambassador cannot release the soft bounce of a contact pending confirmation (hidden from it)');
SELECT is(state((SELECT id FROM pb)), 'optin_blog_pending,no_optin,false,soft_bounce', 'so it never becomes ok unconfirmed');
SELECT is(act('amb:1', format('SELECT popsell.send_invitation(%s)::text', (SELECT id FROM pb))),
          'ERROR PS200: contact ' || (SELECT id FROM pb) || ' does not exist or is not yours',
          'nor learn a hidden contact''s state from send_invitation''s error');

SELECT * FROM finish();
ROLLBACK;
