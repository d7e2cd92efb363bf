-- 105_consent_review: the review of issue 13's consent change, each
-- finding watched failing first.  H2: a restricted pending contact got a
-- confirmation queued (the outbox guard refused it, so rectifying its
-- address failed, and so did the upgrade); M3: a confirmation was queued
-- to a blacklisted (spam) address; L1: a restricted contact could confirm;
-- H1: an ambassador invited a person twice after an address change; M2:
-- an import or INSERT told the ambassador its hidden pending rows exist;
-- H3: refused rows in an import; L4: blank-looking names counted as a
-- personal field; L5: non-string JSON values were stored as JSON text;
-- L3: tags were unbounded.
-- act() as in 104_consent_leftovers.
BEGIN;
SELECT plan(60);

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

CREATE FUNCTION public.token(p_id bigint) RETURNS text LANGUAGE sql AS $f$
    SELECT o.payload->>'token' FROM popsell.outbox o
     WHERE o.contact_id = p_id AND o.kind = 'email_confirmation' AND o.sent_at IS NULL
     ORDER BY o.id DESC LIMIT 1 $f$;
CREATE FUNCTION public.confirmations(p_id bigint) RETURNS bigint LANGUAGE sql AS $f$
    SELECT count(*) FROM popsell.outbox o
     WHERE o.contact_id = p_id AND o.kind = 'email_confirmation' AND o.sent_at IS NULL $f$;
CREATE FUNCTION public.has_token(p_id bigint) RETURNS boolean LANGUAGE sql AS $f$
    SELECT EXISTS (SELECT 1 FROM popsell.contact_email_tokens t WHERE t.contact_id = p_id) $f$;

-- ---- H2 / L1: restriction (art. 18) and the confirmation token
CREATE TEMP TABLE r1 AS
SELECT popsell.collect_contact(1, 'store_purchase', '{"first_name":"R1","email":"u2@up.test"}', true, true) AS id;
CREATE TEMP TABLE old_tok AS SELECT token(id) AS t FROM r1;
SELECT is(confirmations((SELECT id FROM r1)), 1::bigint, 'a pending contact gets one confirmation');
SELECT is(act('popsell_account_team', $$SELECT popsell.restrict_subject('u2@up.test', true)$$), '1', 'the contact is restricted');
SELECT is(confirmations((SELECT id FROM r1)), 0::bigint, 'restricting cancels the unsent confirmation');
SELECT ok(NOT has_token((SELECT id FROM r1)), 'restricting removes the token');
SELECT is(act('popsell_account_team', $$UPDATE popsell.contacts SET email = 'u2b@up.test' WHERE first_name = 'R1'$$),
          'rows=1', 'staff rectify the address of a restricted pending contact');
SELECT is(confirmations((SELECT id FROM r1)), 0::bigint, 'nothing is queued to the restricted contact''s new address');
SELECT ok(NOT has_token((SELECT id FROM r1)), 'and no token is stored for it');
SELECT is(act('app', format('SELECT popsell.confirm_email(%s, %L)', (SELECT id FROM r1), (SELECT t FROM old_tok))),
          'ERROR PS120: contact ' || (SELECT id FROM r1) || ' cannot confirm its email: its processing is restricted (GDPR art. 18)',
          'a restricted contact does not confirm with a token');
SELECT is(act('app', format('SELECT popsell.confirm_email(%s)', (SELECT id FROM r1))),
          'ERROR PS120: contact ' || (SELECT id FROM r1) || ' cannot confirm its email: its processing is restricted (GDPR art. 18)',
          'nor on the application''s word');
SELECT is(state((SELECT id FROM r1)), 'optin_blog_pending,optin_blog,false,unverified', 'still pending');
SELECT is(act('popsell_account_team', $$SELECT popsell.restrict_subject('u2b@up.test', false)$$), '1', 'the restriction is lifted');
SELECT is(confirmations((SELECT id FROM r1)), 1::bigint, 'lifting queues a new confirmation');
SELECT ok(has_token((SELECT id FROM r1)), 'with a token');
SELECT is(act('app', format('SELECT popsell.confirm_email(%s, %L)', (SELECT id FROM r1), token((SELECT id FROM r1)))),
          '', 'the new token confirms');
SELECT is(state((SELECT id FROM r1)), 'optin_blog_verified,optin_blog,false,ok', 'confirmed');
SELECT is(act('popsell_account_team', $$SELECT popsell.restrict_subject('u2b@up.test', true)$$)
          || act('popsell_account_team', $$SELECT popsell.restrict_subject('u2b@up.test', false)$$)
          || confirmations((SELECT id FROM r1)), '110', 'a confirmed contact gets nothing when a restriction is lifted');

-- ---- M3: no confirmation to an address whose status blocks sending
SELECT is(act('app', $$SELECT popsell.email_callback('spam@y.test', 'spam')$$), '0', 'spam@y.test is blacklisted as spam');
CREATE TEMP TABLE s1 AS
SELECT popsell.collect_contact(2, 'blog', '{"first_name":"S1","email":"spam@y.test"}', true, true) AS id;
SELECT is(state((SELECT id FROM s1)), 'optin_blog_pending,optin_blog,false,spam', 'the row takes the spam status');
SELECT is(confirmations((SELECT id FROM s1)), 0::bigint, 'no confirmation is queued to a spam address');
SELECT ok(NOT has_token((SELECT id FROM s1)), 'and no token stored');
SELECT is(act('popsell_account_team', $$UPDATE popsell.contacts SET email = 'SPAM@y.test ' WHERE first_name = 'S1'$$)
          || confirmations((SELECT id FROM s1)), 'rows=10', 'nor after a rectification to the same blocked address');

-- ---- H1: one invitation per person per ambassador, also after an address change
CREATE TEMP TABLE i1 AS
SELECT d.contact_id AS id, d.ordinality AS k
  FROM popsell.import_contacts_detail(1, '[{"first_name":"C","email":"c@inv.test"},{"first_name":"D","email":"d@inv.test"}]') d;
SELECT is(act('amb:1', format('SELECT string_agg(outcome, '','' ORDER BY contact_id) FROM popsell.send_invitations(%L)',
                              (SELECT array_agg(id ORDER BY k) FROM i1))),
          'sent,sent', 'both imported contacts are invited');
UPDATE popsell.outbox SET sent_at = now() WHERE kind = 'invitation' AND contact_id IN (SELECT id FROM i1);
SELECT is(act('amb:1', format($$UPDATE popsell.contacts SET email = 'c2@inv.test' WHERE id = %s$$, (SELECT id FROM i1 WHERE k = 1)))
          || act('amb:1', format($$UPDATE popsell.contacts SET email = 'd2@inv.test' WHERE id = %s$$, (SELECT id FROM i1 WHERE k = 2)))
          || act('amb:1', format($$UPDATE popsell.contacts SET email = 'd@inv.test' WHERE id = %s$$, (SELECT id FROM i1 WHERE k = 2)))
          || act('amb:1', format($$DELETE FROM popsell.contacts WHERE id = %s$$, (SELECT id FROM i1 WHERE k = 2))),
          'rows=1rows=1rows=1rows=1', 'the ambassador changes both addresses (d and back) and deletes d');
CREATE TEMP TABLE i2 AS
SELECT d.contact_id AS id, d.ordinality AS k
  FROM popsell.import_contacts_detail(1, '[{"first_name":"C","email":"c@inv.test"},{"first_name":"D","email":"d@inv.test"}]') d;
SELECT is((SELECT count(*) FROM i2 WHERE id IS NOT NULL AND id NOT IN (SELECT id FROM i1)), 2::bigint,
          'c@ and d@ are imported again as new rows');
SELECT is(act('amb:1', format('SELECT popsell.send_invitation(%s)', (SELECT id FROM i2 WHERE k = 1))),
          'ERROR PS100: ambassador_optin cannot change from "new" to "invitation_sent": ambassador 1 invited this person once already',
          'c@ is not invited twice after the invited row moved to c2@');
SELECT is(act('amb:1', format('SELECT popsell.send_invitation(%s)', (SELECT id FROM i2 WHERE k = 2))),
          'ERROR PS100: ambassador_optin cannot change from "new" to "invitation_sent": ambassador 1 invited this person once already',
          'd@ is not invited twice after its row went d2@, back to d@ and was deleted');
SELECT is(act('amb:1', format('SELECT string_agg(outcome, '','') FROM popsell.send_invitations(%L)',
                              (SELECT array_agg(id ORDER BY k) FROM i2))),
          'skipped_state,skipped_state', 'nor through the batch');
SELECT is(act('amb:1', format('SELECT popsell.send_invitation(%s)', (SELECT id FROM i1 WHERE k = 1))),
          'ERROR PS100: ambassador_optin cannot change from "new" to "invitation_sent": contact ' || (SELECT id FROM i1 WHERE k = 1) || ' was invited once already',
          'the moved row itself is not invited at its new address either');
SELECT is(act('amb:2', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                         VALUES (2, 'crm_manual', 'C', 'c@inv.test')$$)
          || act('amb:2', $$SELECT popsell.send_invitation(max(id)) FROM popsell.contacts WHERE ambassador_id = 2 AND first_name = 'C'$$),
          'rows=1', 'another ambassador still invites the person once');
SELECT is(act('ps_c_app', 'SELECT count(*) FROM popsell.invitation_records'),
          'ERROR 42501: permission denied for table invitation_records', 'the records are the owner''s only');
SELECT is((SELECT count(*) FROM popsell.invitation_records WHERE ambassador_id = 2), 1::bigint, 'one record per invitation');
DELETE FROM popsell.ambassadors WHERE id = 2;
SELECT is((SELECT count(*) FROM popsell.invitation_records WHERE ambassador_id = 2), 0::bigint,
          'the records go with the ambassador');

-- ---- M2: an ambassador's entry does not reveal its hidden pending contacts
CREATE TEMP TABLE sp AS
SELECT popsell.collect_contact(1, 'blog', '{"first_name":"Secret","email":"secret@pend.test"}', true, true) AS id;
SELECT is(act('amb:1', format('SELECT count(*) FROM popsell.contacts WHERE id = %s', (SELECT id FROM sp))), '0',
          'the pending contact is hidden from its ambassador');
SELECT is(act('amb:1', $$SELECT d.outcome || ':' || coalesce(d.reason, '-')
                         FROM popsell.import_contacts_detail(1, '[{"first_name":"S","email":"secret@pend.test"}]') d$$),
          'imported:-', 'an import of the address is not told the hidden row exists');
SELECT is(act('amb:1', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                         VALUES (1, 'crm_manual', 'S2', 'secret2@pend.test')$$)
          || act('amb:1', $$UPDATE popsell.contacts SET first_name = 'S2b' WHERE first_name = 'S2'$$),
          'rows=1rows=1', 'an entered address next to no pending row');
CREATE TEMP TABLE sp2 AS
SELECT popsell.collect_contact(1, 'store_purchase', '{"first_name":"Secret3","email":"secret3@pend.test"}', true, true) AS id;
SELECT is(act('amb:1', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                         VALUES (1, 'crm_manual', 'S3', 'SECRET3@pend.test')$$),
          'rows=1', 'nor a plain INSERT (no PS109)');
SELECT is(act('amb:1', $$UPDATE popsell.contacts SET email = 'secret3@pend.test' WHERE first_name = 'S2b'$$),
          'ERROR PS109: ambassador 1 already holds a contact with this email',
          'the entered row it sees still counts');
SELECT is(act('amb:1', $$UPDATE popsell.contacts SET email = 'secret@pend.test' WHERE first_name = 'S2b'$$),
          'ERROR PS109: ambassador 1 already holds a contact with this email',
          'as does the imported one');
SELECT is(act('app', format('SELECT popsell.confirm_email(%s)', (SELECT id FROM sp))), '', 'the form row is confirmed');
SELECT is(act('amb:1', format('SELECT count(*) FROM popsell.contacts WHERE email_confirmed_at IS NOT NULL AND id = %s', (SELECT id FROM sp))), '1',
          'and now seen next to the entered row (SPEC C3 allows a form row next to an entered one)');

-- ---- H3: rows the INSERT refuses although _import_check let them through
-- (a NOT VALID CHECK here) are reported one by one, next to a duplicate,
-- a blacklisted and a list-internal duplicate row, through the split
ALTER TABLE popsell.contacts ADD CONSTRAINT t105_refused CHECK (first_name NOT LIKE 'Refused%') NOT VALID;
SELECT is(act('popsell_account_team', $$SELECT popsell.object_subject('gone@split.test')$$), '0', 'gone@split.test opted out globally');
SELECT is(act('amb:1', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email) VALUES (1, 'crm_manual', 'Held', 'held@split.test')$$),
          'rows=1', 'held@split.test is held');
CREATE TEMP TABLE split_list AS
SELECT jsonb_agg(CASE WHEN g = 7 THEN jsonb_build_object('first_name', 'H', 'email', 'held@split.test')
                      WHEN g = 8 THEN jsonb_build_object('first_name', 'G', 'email', 'gone@split.test')
                      WHEN g = 150 THEN jsonb_build_object('first_name', 'Twice', 'email', 's149@split.test')
                      ELSE jsonb_build_object('first_name', CASE WHEN g % 10 = 5 THEN 'Refused' ELSE 'S' END || g,
                                              'email', 's' || g || '@split.test') END ORDER BY g) AS a
  FROM generate_series(1, 300) g;
GRANT SELECT ON split_list TO PUBLIC;
CREATE TEMP TABLE split_out AS SELECT * FROM popsell.import_contacts_detail(1, (SELECT a FROM split_list));
SELECT is((SELECT string_agg(outcome || ':' || n, ',' ORDER BY outcome)
             FROM (SELECT outcome, count(*) AS n FROM split_out GROUP BY outcome) x),
          'imported:267,skipped_blacklisted:1,skipped_duplicate:2,skipped_invalid:30', 'every row has its outcome');
SELECT is((SELECT string_agg(ordinality::text, ',' ORDER BY ordinality) FROM split_out WHERE outcome <> 'imported' AND outcome <> 'skipped_invalid'),
          '7,8,150', 'the duplicate, blacklisted and repeated rows at their positions');
SELECT is((SELECT count(*) FROM split_out WHERE outcome = 'skipped_invalid' AND ordinality % 10 = 5
              AND reason = 'invalid value (SQLSTATE 23514)'), 30::bigint, 'each refused row reported with its reason');
SELECT is((SELECT count(*) FROM popsell.contacts c JOIN split_out o ON o.contact_id = c.id WHERE o.outcome = 'imported'),
          267::bigint, 'the imported rows are stored');
ALTER TABLE popsell.contacts DROP CONSTRAINT t105_refused;

-- ---- L4: a personal field of only white space or invisible characters is empty
SELECT matches(act('amb:1', format($$INSERT INTO popsell.contacts (ambassador_id, source, first_name) VALUES (1, 'crm_manual', %L)$$,
                              U&'\200B\00A0\FEFF\3000')),
          '^ERROR PS104: contact \d+ has no personal field$',
          'a first_name of a zero-width space, no-break space, BOM and ideographic space is no personal field');
SELECT is(act('amb:1', format($$SELECT d.outcome || ':' || d.reason FROM popsell.import_contacts_detail(1, %L) d$$,
                              jsonb_build_array(jsonb_build_object('first_name', U&'\2800\200D', 'last_name', U&'\3164')))),
          'skipped_invalid:no personal field', 'an import row of blank-looking names is skipped as such');
SELECT is(act('amb:1', format($$INSERT INTO popsell.contacts (ambassador_id, source, first_name) VALUES (1, 'crm_manual', %L)$$,
                              U&'\00A0Zo\00E9\200B')),
          'rows=1', 'a name with a visible letter among them is one');

-- ---- L5: text fields take a JSON string or null, not a number or object
SELECT is(act('app', $$SELECT popsell.collect_contact(1, 'order', '{"first_name": 12345, "email": "num@l5.test"}', true, true)$$),
          'ERROR PS106: collect_contact takes a string or null for: first_name', 'a number as first_name is refused');
SELECT is(act('app', $$SELECT popsell.collect_contact(1, 'order', '{"notes": {"a": 1}, "tags": ["x", 2], "email": "obj@l5.test"}', true, true)$$),
          'ERROR PS106: collect_contact takes a string or null for: notes, tags', 'an object as notes, a number among the tags are refused');
SELECT is(act('amb:1', $$SELECT string_agg(d.outcome || ':' || coalesce(d.reason, '-'), ',' ORDER BY d.ordinality)
                         FROM popsell.import_contacts_detail(1, '[{"first_name": true, "email": "b@l5.test"}, {"first_name": "Ok", "last_name": null, "email": "ok@l5.test"}]') d$$),
          'skipped_invalid:value not a string,imported:-', 'an import row with a boolean name is skipped, a null is fine');

SELECT is(act('amb:1', $$SELECT string_agg(d.outcome || ':' || coalesce(d.reason, '-'), ',' ORDER BY d.ordinality)
                         FROM popsell.import_contacts_detail(1, '[{"first_name": "T1", "tags": ["a", "b"]}, {"first_name": "T2", "tags": ["a", 7]}]') d$$),
          'imported:-,skipped_invalid:value not a string', 'tags are strings');

-- ---- L3: tags are bounded (PS107)
SELECT matches(act('amb:1', format($$INSERT INTO popsell.contacts (ambassador_id, source, first_name, tags) VALUES (1, 'crm_manual', 'Tags1', %L)$$,
                              (SELECT array_agg('t' || g) FROM generate_series(1, 101) g))),
          '^ERROR PS107: contact \d+ has 101 tags, more than 100$', '101 tags are refused');
SELECT matches(act('amb:1', format($$INSERT INTO popsell.contacts (ambassador_id, source, first_name, tags) VALUES (1, 'crm_manual', 'Tags2', %L)$$,
                              ARRAY['ok', repeat('x', 257)])),
          '^ERROR PS107: tag 2 of contact \d+ is longer than 256 bytes$', 'a tag over 256 bytes is refused');
SELECT is(act('amb:1', format($$INSERT INTO popsell.contacts (ambassador_id, source, first_name, tags) VALUES (1, 'crm_manual', 'Tags3', %L)$$,
                              (SELECT array_agg(repeat('y', 256)) FROM generate_series(1, 100) g))),
          'rows=1', '100 tags of 256 bytes are fine');
SELECT matches(act('amb:1', format($$UPDATE popsell.contacts SET tags = tags || %L::text[] WHERE first_name = 'Tags3'$$, ARRAY['one more'])),
               '^ERROR PS107: contact \d+ has 101 tags, more than 100$', 'nor can an UPDATE grow them past 100');
SELECT is(act('amb:1', format($$SELECT string_agg(d.outcome || ':' || coalesce(d.reason, '-'), ',' ORDER BY d.ordinality)
                               FROM popsell.import_contacts_detail(1, %L) d$$,
                              jsonb_build_array(jsonb_build_object('first_name', 'Tags4', 'tags', (SELECT jsonb_agg('t' || g) FROM generate_series(1, 500) g)),
                                                jsonb_build_object('first_name', 'Tags5', 'tags', jsonb_build_array('a'))))),
          'skipped_invalid:value too long,imported:-', 'an import row with 500 tags is skipped as too long');

-- ---- art. 15: the invitation records of an address are in its access document
SELECT is(act('popsell_account_team', $$SELECT jsonb_path_query_array(popsell.subject_access('c@inv.test'), '$.invitations[*].ambassador_id')::text$$),
          '[1]', 'subject_access lists the ambassadors'' records of invitations to the address');

SELECT matches(act('postgres', 'TRUNCATE popsell.invitation_records'), '^ERROR PS', 'the records are not truncated but by popsell_owner');

SELECT * FROM finish();
ROLLBACK;
