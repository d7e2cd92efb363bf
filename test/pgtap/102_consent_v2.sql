-- 102_consent_v2: the (v2) consent rules of SPEC sections 2-5, one group of
-- assertions per way they were found broken: consent belongs to an address,
-- refusals are remembered, every opt-in can be withdrawn, partners opt-ins
-- come from popsell's own forms, the outbox is immutable and guarded, the
-- brand acts only on what it sees, nothing is done for an inactive
-- ambassador, NULL arguments are errors, batches skip and report.
--
-- act(who, sql) runs one statement as a role and KEEPS its effects:
-- 'amb:N' is the trusted application acting as ambassador N (SET LOCAL
-- popsell.ambassador_id, then SET LOCAL ROLE popsell_ambassador), 'app' the
-- trusted application itself, any other value a role name.  It returns the
-- statement's first value (or rows=N), or 'ERROR <sqlstate>: <message>'.
BEGIN;
SELECT plan(80);

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
CREATE FUNCTION public.val(p_id bigint, p_col text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
    EXECUTE format('SELECT %I::text FROM popsell.contacts WHERE id = $1', p_col) INTO r USING p_id;
    RETURN r;
END $f$;
CREATE FUNCTION public.ledger_count(p_id bigint) RETURNS bigint LANGUAGE sql AS $f$
    SELECT count(*) FROM popsell.consent_events WHERE contact_id = p_id $f$;

-- ---- C2 (v2): consent belongs to an address -----------------------------
SELECT act('amb:1', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                      VALUES (1, 'crm_manual', 'Friend', 'friend@c.test')$$);
CREATE TEMP TABLE ids AS SELECT id, first_name AS name FROM popsell.contacts;
SELECT popsell.send_invitation((SELECT id FROM ids WHERE name = 'Friend'));
SELECT popsell.accept_invitation((SELECT id FROM ids WHERE name = 'Friend'));
SELECT is(act('amb:1', $$UPDATE popsell.contacts SET email = 'someone-else@c.test'
                         WHERE first_name = 'Friend'$$), 'rows=1',
          'the ambassador may correct an address');
SELECT is(state((SELECT id FROM ids WHERE name = 'Friend')), 'new,no_optin,false,ok',
          'an accepted invitation does not follow the email to another address');
SELECT ok((SELECT note FROM popsell.consent_events WHERE contact_id = (SELECT id FROM ids WHERE name = 'Friend')
            ORDER BY id DESC LIMIT 1) LIKE '%email%',
          'the ledger records the reset with its reason');
SELECT is(act('app', format($$INSERT INTO popsell.outbox (kind, ambassador_id, contact_id, payload)
                              VALUES ('publication', 1, %s, '{}')$$, (SELECT id FROM ids WHERE name = 'Friend'))),
          'ERROR PS120: cannot queue publication for contact ' || (SELECT id FROM ids WHERE name = 'Friend')
          || ': new contacts receive nothing but an invitation',
          'no publication to the new address');
SELECT is(act('amb:1', $$UPDATE popsell.contacts SET email = '  Someone-Else@C.test ' WHERE first_name = 'Friend'$$),
          'rows=1', 'a case/whitespace change');
SELECT is(ledger_count((SELECT id FROM ids WHERE name = 'Friend')), 3::bigint,
          'a case or whitespace change is no change of address: no ledger row');

SELECT popsell.collect_contact(2, 'order', '{"first_name":"Orderer","email":"orderer@c.test"}', NULL, true);
INSERT INTO ids SELECT id, first_name FROM popsell.contacts WHERE first_name = 'Orderer';
SELECT is(act('popsell_account_team', $$UPDATE popsell.contacts SET email = 'other@c.test' WHERE first_name = 'Orderer'$$),
          'rows=1', 'vendor support edits an order contact''s email (rectification; the brand may not: 104_consent_leftovers)');
SELECT is(state((SELECT id FROM ids WHERE name = 'Orderer')), 'new,no_optin,false,ok',
          'the order''s opt-ins stay with the old address');

SELECT popsell.collect_contact(1, 'blog', '{"first_name":"Blogger","email":"blogger@c.test"}', true, true, true);
INSERT INTO ids SELECT id, first_name FROM popsell.contacts WHERE first_name = 'Blogger';
SELECT popsell.confirm_email((SELECT id FROM ids WHERE name = 'Blogger'), (SELECT o.payload->>'token' FROM popsell.outbox o WHERE o.contact_id = (SELECT id FROM ids WHERE name = 'Blogger') AND o.kind = 'email_confirmation' ORDER BY o.id DESC LIMIT 1));
SELECT is(act('popsell_account_team', $$UPDATE popsell.contacts SET email = 'blogger2@c.test' WHERE first_name = 'Blogger'$$),
          'rows=1', 'staff edit a confirmed blog contact''s email');
SELECT is(state((SELECT id FROM ids WHERE name = 'Blogger')), 'new,no_optin,false,ok',
          'a confirmed blog consent stays with the confirmed address');

SELECT popsell.collect_contact(1, 'blog', '{"first_name":"Pender","email":"pender@c.test"}', true, true);
INSERT INTO ids SELECT id, first_name FROM popsell.contacts WHERE first_name = 'Pender';
SELECT is(act('popsell_account_team', $$UPDATE popsell.contacts SET email = 'pender2@c.test' WHERE first_name = 'Pender'$$),
          'rows=1', 'staff correct a pending contact''s address');
SELECT is((SELECT email_status || ',' || (email_confirmed_at IS NULL) FROM popsell.contacts WHERE first_name = 'Pender'),
          'unverified,true', 'the pending contact stays pending');
SELECT is((SELECT count(*) FROM popsell.outbox WHERE contact_id = (SELECT id FROM ids WHERE name = 'Pender')
             AND kind = 'email_confirmation' AND sent_at IS NULL), 1::bigint,
          'one unsent confirmation: the new address''s (the old one is cancelled)');

SELECT popsell.opt_out(popsell.collect_contact(2, 'order', '{"first_name":"Gone","email":"gone@c.test"}', NULL, true), true);
SELECT act('amb:1', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                      VALUES (1, 'crm_manual', 'Mover', 'mover@c.test')$$);
INSERT INTO ids SELECT id, first_name FROM popsell.contacts WHERE first_name = 'Mover';
SELECT alike(act('amb:1', $$UPDATE popsell.contacts SET email = 'gone@c.test' WHERE first_name = 'Mover'$$),
          'ERROR PS%', 'an ambassador cannot store a globally opted-out email by UPDATE');

-- ---- C3 (v2): a refusal is remembered -----------------------------------
SELECT act('amb:1', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                      VALUES (1, 'crm_manual', 'Decliner', 'decliner@c.test')$$);
INSERT INTO ids SELECT id, first_name FROM popsell.contacts WHERE first_name = 'Decliner';
SELECT popsell.send_invitation((SELECT id FROM ids WHERE name = 'Decliner'));
SELECT popsell.decline_invitation((SELECT id FROM ids WHERE name = 'Decliner'));
SELECT is((SELECT count(*) FROM popsell.blacklist WHERE reason::text = 'invitation_refused'
             AND email_hash = ANY (popsell.email_hashes('decliner@c.test'))), 1::bigint,
          'a declined invitation is remembered by hash');
SELECT alike(act('amb:1', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                           VALUES (1, 'crm_manual', 'Decliner again', 'Decliner@c.test')$$),
          'ERROR PS109%', 'the ambassador cannot enter an email it already holds');
SELECT is(val(popsell.collect_contact(2, 'crm_manual', '{"first_name":"Decliner at Bob","email":"decliner@c.test"}'), 'ambassador_optin'),
          'invitation_declined', 'another ambassador''s row for the email is stored refused');
SELECT is((SELECT imported || '/' || skipped_duplicate FROM popsell.import_contacts(2,
              '[{"first_name":"D3","email":"decliner@c.test"}]')), '0/1',
          'an import of an email the ambassador holds counts a duplicate');
SELECT is(act('amb:1', $$DELETE FROM popsell.contacts WHERE first_name = 'Decliner'$$), 'rows=1',
          'the ambassador deletes the refused contact');
SELECT is(val(popsell.collect_contact(1, 'crm_manual', '{"first_name":"Decliner back","email":"decliner@c.test"}'), 'ambassador_optin'),
          'invitation_declined', 'entered again after deletion: still refused, never new');
SELECT alike(act('amb:1', $$SELECT popsell.send_invitation(id)::text FROM popsell.contacts WHERE first_name = 'Decliner back'$$),
          'ERROR PS100%', 'so no invitation can be sent');
SELECT is(state(popsell.collect_contact(2, 'order', '{"first_name":"D-order","email":"decliner@c.test"}', NULL, true)),
          'invitation_declined,optin_brand_database,false,ok', 'an order for a refused email keeps the refusal');
CREATE TEMP TABLE dblog AS SELECT popsell.collect_contact(2, 'blog', '{"first_name":"D-blog","email":"decliner@c.test"}', true) AS id;
SELECT popsell.confirm_email(b.id, (SELECT o.payload->>'token' FROM popsell.outbox o WHERE o.contact_id = b.id AND o.kind = 'email_confirmation' ORDER BY o.id DESC LIMIT 1)) FROM dblog b;
SELECT is((SELECT ambassador_optin::text FROM popsell.contacts WHERE first_name = 'D-blog'), 'optin_blog_verified',
          'the person''s own confirmed consent lifts the refusal for that row');
SELECT act('amb:1', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                      VALUES (1, 'crm_manual', 'Silent', 'silent@c.test')$$);
SELECT popsell.opt_out((SELECT id FROM popsell.contacts WHERE first_name = 'Silent'));
SELECT is((SELECT count(*) FROM popsell.blacklist WHERE reason::text = 'invitation_refused'
             AND email_hash = ANY (popsell.email_hashes('silent@c.test'))), 1::bigint,
          'an opt-out of the ambassador''s mail is remembered too');

-- A refusal applies to the rows that already hold the email too.
SELECT act('amb:1', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                      VALUES (1, 'crm_manual', 'PreHeld', 'pre@c.test')$$);
SELECT act('amb:2', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                      VALUES (2, 'crm_manual', 'PreDecliner', 'pre@c.test')$$);
SELECT popsell.send_invitation((SELECT id FROM popsell.contacts WHERE first_name = 'PreDecliner'));
SELECT popsell.decline_invitation((SELECT id FROM popsell.contacts WHERE first_name = 'PreDecliner'));
SELECT matches(act('amb:1', format('SELECT popsell.send_invitation(%s)::text', (SELECT id FROM popsell.contacts WHERE first_name = 'PreHeld'))),
               '^ERROR PS120: ', 'a row that held the email before the refusal is not invited either');
SELECT is(act('amb:1', format('SELECT string_agg(outcome, '','') FROM popsell.send_invitations(ARRAY[%s]::bigint[])',
                              (SELECT id FROM popsell.contacts WHERE first_name = 'PreHeld'))),
          'skipped_refused', 'the batch skips it as refused');

SELECT popsell.collect_contact(2, 'brand_sync', '{"first_name":"SyncPre","email":"syncpre@c.test","customer_id":"KP"}', NULL, false);
SELECT act('amb:1', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                      VALUES (1, 'crm_manual', 'SyncDecliner', 'syncpre@c.test')$$);
SELECT popsell.send_invitation((SELECT id FROM popsell.contacts WHERE first_name = 'SyncDecliner'));
SELECT popsell.decline_invitation((SELECT id FROM popsell.contacts WHERE first_name = 'SyncDecliner'));
SELECT popsell.collect_contact(2, 'brand_sync', '{"first_name":"SyncPre","email":"syncpre@c.test","customer_id":"KP"}', NULL, true);
SELECT is(val((SELECT id FROM popsell.contacts WHERE first_name = 'SyncPre'), 'ambassador_optin'), 'invitation_declined',
          'a brand sync updating a row whose email was refused meanwhile keeps the refusal');

-- storage_only stays storage_only through an email change (away and back).
SELECT popsell.collect_contact(1, 'external_form', '{"first_name":"Stored","email":"stored@c.test"}', false);
SELECT act('amb:1', $$UPDATE popsell.contacts SET email = 'elsewhere@c.test' WHERE first_name = 'Stored'$$);
SELECT act('amb:1', $$UPDATE popsell.contacts SET email = 'stored@c.test' WHERE first_name = 'Stored'$$);
SELECT is(val((SELECT id FROM popsell.contacts WHERE first_name = 'Stored'), 'ambassador_optin'), 'storage_only',
          'an email change does not make a storage_only contact invitable');

-- The per-ambassador duplicate check (PS109) holds for an UPDATE of the
-- email and for rows of the same INSERT.
SELECT act('amb:1', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                      VALUES (1, 'crm_manual', 'DupA', 'dup-a@c.test'), (1, 'crm_manual', 'DupB', 'dup-b@c.test')$$);
SELECT alike(act('amb:1', $$UPDATE popsell.contacts SET email = 'dup-a@c.test' WHERE first_name = 'DupB'$$),
             'ERROR PS109%', 'an UPDATE to an address the ambassador already holds is refused');
SELECT alike(act('amb:1', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                            VALUES (1, 'crm_manual', 'DupC', 'dup-c@c.test'), (1, 'crm_manual', 'DupC2', 'DUP-C@c.test')$$),
             'ERROR PS109%', 'two rows of one INSERT with the same address are refused');

-- Partners are told of every end of a partners opt-in, whatever the path.
SELECT popsell.collect_contact(1, 'external_form', '{"first_name":"PartnerEdit","email":"pedit@c.test"}', true, true, true);
SELECT act('amb:1', $$UPDATE popsell.contacts SET email = 'pedit2@c.test' WHERE first_name = 'PartnerEdit'$$);
SELECT is((SELECT count(*) FROM popsell.outbox WHERE kind::text = 'partner_optout'
             AND contact_id = (SELECT id FROM popsell.contacts WHERE first_name = 'PartnerEdit')), 1::bigint,
          'an email change ending the partners opt-in queues one partner_optout');
SELECT popsell.collect_contact(1, 'external_form', '{"first_name":"PartnerStaff","email":"pstaff@c.test"}', true, true, true);
SELECT act('popsell_brand', $$UPDATE popsell.contacts SET partners_optin = false WHERE first_name = 'PartnerStaff'$$);
SELECT is((SELECT count(*) FROM popsell.outbox WHERE kind::text = 'partner_optout'
             AND contact_id = (SELECT id FROM popsell.contacts WHERE first_name = 'PartnerStaff')), 1::bigint,
          'a staff UPDATE ending the partners opt-in queues one partner_optout');
SELECT is((SELECT count(*) FROM popsell.transition_rules() WHERE field = 'partners_optin' AND to_states = 'true'), 0::bigint,
          'no path turns partners_optin on after collection');

-- ---- withdrawal ----------------------------------------------------------
SELECT popsell.collect_contact(1, 'external_form', '{"first_name":"Partner","email":"partner@c.test"}', true, true, true);
SELECT is(state((SELECT id FROM popsell.contacts WHERE first_name = 'Partner')),
          'optin_external_form,optin_external_form,true,ok', 'external form with every box ticked');
SELECT is(act('app', format('SELECT popsell.withdraw_consent(%s, brand => false)::text',
                             (SELECT id FROM popsell.contacts WHERE first_name = 'Partner'))),
          '', 'the contact withdraws the partners opt-in');
SELECT is(state((SELECT id FROM popsell.contacts WHERE first_name = 'Partner')),
          'optin_external_form,optin_external_form,false,ok', 'only the partners opt-in is withdrawn');
SELECT is((SELECT count(*) FROM popsell.outbox WHERE kind::text = 'partner_optout'
             AND contact_id = (SELECT id FROM popsell.contacts WHERE first_name = 'Partner')), 1::bigint,
          'partners are told (partner_optout)');
SELECT act('app', format('SELECT popsell.withdraw_consent(%s)::text', (SELECT id FROM popsell.contacts WHERE first_name = 'Partner')));
SELECT is(state((SELECT id FROM popsell.contacts WHERE first_name = 'Partner')),
          'optin_external_form,no_optin,false,ok', 'then the brand opt-in');
SELECT popsell.collect_contact(1, 'external_form', '{"first_name":"Objector","email":"objector@c.test"}', true, true, true);
SET LOCAL ROLE popsell_account_team;
SELECT popsell.object_subject('objector@c.test');
RESET ROLE;
SELECT is(state((SELECT id FROM popsell.contacts WHERE first_name = 'Objector')),
          'global_optout,no_optin,false,ok', 'object_subject ends every direct marketing');
SELECT is((SELECT count(*) FROM popsell.outbox WHERE kind::text = 'partner_optout'
             AND contact_id = (SELECT id FROM popsell.contacts WHERE first_name = 'Objector')), 1::bigint,
          'with a partner_optout notice');
SELECT popsell.collect_contact(1, 'order', '{"first_name":"Support","email":"support@c.test"}', NULL, true);
SELECT is(act('popsell_brand', format('SELECT popsell.withdraw_consent(%s)::text', (SELECT id FROM popsell.contacts WHERE first_name = 'Support'))),
          '', 'a support agent records a brand withdrawal even though the row leaves the brand''s view');
SELECT is(state((SELECT id FROM popsell.contacts WHERE first_name = 'Support')), 'optin_order,no_optin,false,ok',
          'the withdrawal is recorded');
SELECT matches(act('popsell_brand', format('SELECT popsell.withdraw_consent(%s)::text', (SELECT id FROM popsell.contacts WHERE first_name = 'Support'))),
          '^ERROR PS200: contact [0-9]+ does not exist',
          'a row the brand does not see is unknown to withdraw_consent');
SELECT popsell.collect_contact(1, 'order', '{"first_name":"Support2","email":"support2@c.test"}', NULL, true);
SELECT is(act('popsell_brand', $$UPDATE popsell.contacts SET brand_optin = 'no_optin' WHERE first_name = 'Support2'$$),
          'rows=1', 'a support agent records a brand withdrawal with a plain UPDATE');
-- A brand UPDATE whose side effects (a global opt-out spreads to every row
-- with the email) stamp other rows must not make those rows readable.
SELECT act('amb:1', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                      VALUES (1, 'crm_manual', 'HiddenSyn', 'syn@c.test')$$);
SELECT popsell.collect_contact(2, 'order', '{"first_name":"VisibleSyn","email":"syn@c.test"}', NULL, true);
CREATE FUNCTION public.two(q1 text, q2 text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
    EXECUTE q1;
    EXECUTE q2 INTO r;
    RETURN r;
END $f$;
SELECT is(act('popsell_brand', $$SELECT public.two('UPDATE popsell.contacts SET ambassador_optin = ''global_optout''
                                                     WHERE first_name = ''VisibleSyn''',
                                                   'SELECT count(*)::text FROM popsell.contacts WHERE first_name = ''HiddenSyn''')$$),
          '0', 'a brand UPDATE''s side effects do not reveal hidden rows (same statement)');
SELECT is(act('popsell_brand', $$SELECT count(*)::text FROM popsell.contacts WHERE first_name = 'HiddenSyn'$$),
          '0', 'nor later');

-- A withdrawal or an objection ends storage_only too (the brand no longer sees the row).
SELECT popsell.collect_contact(1, 'order', '{"first_name":"StoredOrder","email":"storedorder@c.test"}', NULL, false);
SELECT is(val((SELECT id FROM popsell.contacts WHERE first_name = 'StoredOrder'), 'brand_optin'), 'storage_only',
          'an order without the brand box is storage_only for the brand');
SELECT act('app', format('SELECT popsell.withdraw_consent(%s)::text', (SELECT id FROM popsell.contacts WHERE first_name = 'StoredOrder')));
SELECT is(val((SELECT id FROM popsell.contacts WHERE first_name = 'StoredOrder'), 'brand_optin'), 'no_optin',
          'withdraw_consent leaves no_optin, not storage_only');
SELECT popsell.collect_contact(1, 'order', '{"first_name":"StoredObj","email":"storedobj@c.test"}', NULL, false);
SET LOCAL ROLE popsell_account_team;
SELECT popsell.object_subject('storedobj@c.test');
RESET ROLE;
SELECT is(val((SELECT id FROM popsell.contacts WHERE first_name = 'StoredObj'), 'brand_optin'), 'no_optin',
          'object_subject leaves no_optin, not storage_only');

-- ---- C1 (v2) -------------------------------------------------------------
SELECT is(val(popsell.collect_contact(2, 'brand_sync', '{"first_name":"Synced","email":"synced@c.test","customer_id":"K1"}', NULL, true, true), 'partners_optin'),
          'false', 'brand_sync carries no partners opt-in');
SELECT is(val(popsell.collect_contact(2, 'order', '{"first_name":"Ordered","email":"ordered@c.test"}', NULL, true, true), 'partners_optin'),
          'false', 'an order carries no partners opt-in');
SELECT is(val(popsell.collect_contact(1, 'external_form', '{"first_name":"Unticked","email":"unticked@c.test"}', false), 'ambassador_optin'),
          'storage_only', 'an external form that asked and got no tick gives storage_only');
SELECT is(act('app', $$SELECT popsell.collect_contact(1, 'blog', '{"first_name":"Forger","email":"forger@c.test","email_confirmed_at":"2020-01-01"}', true)::text$$)
          IS NOT NULL AND (SELECT email_confirmed_at FROM popsell.contacts WHERE first_name = 'Forger') IS NULL,
          true, 'an application cannot pass email_confirmed_at');
SELECT is((SELECT count(*) FROM popsell.outbox WHERE kind = 'email_confirmation'
             AND contact_id = (SELECT id FROM popsell.contacts WHERE first_name = 'Forger')), 1::bigint,
          'so the confirmation mail is queued');

-- ---- C4 / section 3 (v2): the outbox ---------------------------------------
SELECT act('amb:1', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                      VALUES (1, 'crm_manual', 'Target', 'target@c.test')$$);
SELECT alike(act('app', format($$INSERT INTO popsell.outbox (kind, ambassador_id, contact_id)
                         VALUES ('invitation', 1, %s)$$, (SELECT id FROM popsell.contacts WHERE first_name = 'Target'))),
          'ERROR PS120%', 'an application cannot queue an invitation directly');
SELECT alike(act('app', format($$INSERT INTO popsell.outbox (kind, contact_id)
                         VALUES ('partner_erasure', %s)$$, (SELECT id FROM popsell.contacts WHERE first_name = 'Target'))),
          'ERROR PS120%', 'nor a partner_erasure');
SELECT alike(act('app', $$INSERT INTO popsell.outbox (kind, ambassador_id, payload)
                         VALUES ('delete_file', 1, '{"file_path":"ambassadors/1/x.jpg"}')$$),
          'ERROR PS120%', 'nor a delete_file');
SELECT popsell.send_invitation((SELECT id FROM popsell.contacts WHERE first_name = 'Target'));
SELECT alike(act('popsell_account_team', $$UPDATE popsell.outbox SET kind = 'publication' WHERE kind = 'invitation'
                                           AND contact_id = (SELECT id FROM popsell.contacts WHERE first_name = 'Target')$$),
          'ERROR PS105%', 'a queued row''s kind never changes');
SELECT alike(act('popsell_account_team', $$UPDATE popsell.outbox SET contact_id = contact_id + 1 WHERE kind = 'invitation'$$),
          'ERROR PS105%', 'nor its contact');
SELECT is(act('app', $$UPDATE popsell.outbox SET sent_at = now() WHERE kind = 'invitation'
                       AND contact_id = (SELECT id FROM popsell.contacts WHERE first_name = 'Target')$$), 'rows=1',
          'delivery columns do change');
SELECT alike(act('app', format('UPDATE popsell.outbox SET sent_at = NULL WHERE id = %s', (SELECT o.id FROM popsell.outbox o
                          WHERE o.kind = 'invitation' AND o.contact_id = (SELECT id FROM popsell.contacts WHERE first_name = 'Target')))),
          'ERROR PS105%', 'a sent message is never marked unsent (it would be delivered again)');
-- (to the past: a future time from the application is taken as now)
SELECT alike(act('app', format('UPDATE popsell.outbox SET sent_at = sent_at - interval ''1 hour'' WHERE id = %s', (SELECT o.id FROM popsell.outbox o
                          WHERE o.kind = 'invitation' AND o.contact_id = (SELECT id FROM popsell.contacts WHERE first_name = 'Target')))),
          'ERROR PS105%', 'nor its sent_at rewritten');
SELECT alike(act('popsell_account_team', $$UPDATE popsell.outbox SET created_at = created_at - interval '1 year'
                                           WHERE contact_id = (SELECT id FROM popsell.contacts WHERE first_name = 'Target')$$),
          'ERROR PS105%', 'staff cannot rewrite created_at');
SELECT alike(act('popsell_account_team', $$UPDATE popsell.outbox SET id = -id
                                           WHERE contact_id = (SELECT id FROM popsell.contacts WHERE first_name = 'Target')$$),
          'ERROR PS105%', 'nor the id');
UPDATE popsell.contacts SET ambassador_optin = 'new' WHERE first_name = 'Target' AND false;  -- no way back to new
SELECT act('amb:1', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                      VALUES (1, 'crm_manual', 'Waiting', 'waiting@c.test')$$);
SELECT popsell.send_invitation((SELECT id FROM popsell.contacts WHERE first_name = 'Waiting'));
SET LOCAL ROLE popsell_account_team;
SELECT popsell.unsubscribe_ambassador(1);
RESET ROLE;
SELECT is((SELECT string_agg(o.kind::text, ',') FROM popsell.outbox o WHERE o.ambassador_id = 1 AND o.sent_at IS NULL
             AND o.kind NOT IN ('delete_file', 'partner_erasure', 'partner_optout', 'deletion_notice')), NULL,
          'mail queued for an ambassador who starts leaving is cancelled');
SET LOCAL ROLE popsell_account_team;
SELECT popsell.restore_ambassador(1);
RESET ROLE;

-- ---- section 2 and 5 (v2) --------------------------------------------------
SELECT alike(act('popsell_brand', format('SELECT popsell.send_invitation(%s)::text',
                                        (SELECT id FROM popsell.contacts WHERE first_name = 'Waiting'))),
          'ERROR 42501%', 'the brand does not invite');
SELECT is((SELECT count(*) FROM popsell.contacts WHERE customer_id = 'K1'), 1::bigint, 'one synced row');
SELECT popsell.collect_contact(2, 'brand_sync', '{"first_name":"Synced2","email":"synced2@c.test","customer_id":"K1"}', NULL, true);
SELECT is((SELECT count(*) || ':' || min(first_name) FROM popsell.contacts WHERE customer_id = 'K1'), '1:Synced2',
          'a second sync of the same customer updates the row');
SELECT popsell.collect_contact(2, 'brand_sync', '{"first_name":"Mailsync","email":"mailsync@c.test"}', NULL, false);
SELECT popsell.collect_contact(2, 'brand_sync', '{"first_name":"Mailsync2","email":"mailsync@c.test"}', NULL, true);
SELECT is((SELECT count(*) || ':' || min(ambassador_optin::text) FROM popsell.contacts WHERE email = 'mailsync@c.test'),
          '1:optin_brand_imported', 'same email: updated through the brand-sync transitions');
SELECT alike(act('app', $$SELECT popsell.collect_contact(3, 'order', '{"first_name":"L","email":"l@c.test"}', NULL, true)::text$$),
          'ERROR PS300%', 'nothing is collected for a leaving ambassador');
SELECT alike(act('app', $$SELECT imported::text FROM popsell.import_contacts(3, '[{"first_name":"L2"}]')$$),
          'ERROR PS300%', 'nor imported');
SELECT alike(act('app', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name) VALUES (3, 'order', 'L3')$$),
          'ERROR PS300%', 'nor inserted by the application');
SELECT alike(act('amb:3', $$SELECT imported::text FROM popsell.import_contacts(3, '[{"first_name":"L4"}]')$$),
          'ERROR PS300%', 'the application acting for the leaving ambassador gets PS300, not PS200');
INSERT INTO popsell.contacts (id, ambassador_id, source, first_name, email) VALUES (9001, 3, 'crm_manual', 'L5', 'l5@c.test');
SELECT alike(act('amb:3', 'SELECT popsell.send_invitation(9001)::text'),
          'ERROR PS300%', 'and nothing is sent for it (PS300)');
SELECT alike(act('app', format('SELECT popsell.opt_out(%s, NULL)::text', (SELECT id FROM popsell.contacts WHERE first_name = 'Waiting'))),
          'ERROR PS106%', 'opt_out(id, NULL) is an error, not false');
SELECT act('amb:2', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                      VALUES (2, 'crm_manual', 'Brandless', 'brandless@c.test')$$);
SELECT alike(act('amb:2', $$UPDATE popsell.contacts SET brand_optin = 'optin_brand_database' WHERE first_name = 'Brandless'$$),
          'ERROR PS100: brand_optin cannot change from "no_optin" to "optin_brand_database"%',
          'an ambassador''s UPDATE of brand_optin gets popsell''s error naming from and to');

SELECT act('amb:2', $$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                      VALUES (2, 'crm_manual', 'Batch1', 'batch1@c.test'), (2, 'crm_manual', 'Batch2', 'batch2@c.test'),
                             (2, 'crm_manual', 'Batch3', 'batch3@c.test')$$);
SELECT popsell.email_callback('batch2@c.test', 'hard_bounce');
SELECT is(act('amb:2', $$SELECT string_agg(b.outcome, ',' ORDER BY c.first_name)
                           FROM popsell.send_invitations(ARRAY(SELECT id FROM popsell.contacts WHERE first_name LIKE 'Batch%')) b
                           JOIN popsell.contacts c ON c.id = b.contact_id$$),
          'sent,skipped_email_status,sent', 'the batch skips the bounced contact and sends the rest');
SELECT is((SELECT count(*) FROM popsell.contacts WHERE first_name LIKE 'Batch%' AND ambassador_optin = 'invitation_sent'),
          2::bigint, 'two invitations went out');

SELECT is((SELECT imported || '/' || skipped_invalid FROM popsell.import_contacts(2,
              '[{"first_name":"I1","email":"i1@c.test"},{"first_name":"I2","email":"not an email"},{"first_name":"I3","email":"i3@c.test"}]')),
          '2/1', 'a malformed email is skipped and counted, the import goes on');
SELECT is((SELECT string_agg(ordinality || ':' || outcome || ':' || coalesce(reason, ''), ',' ORDER BY ordinality)
             FROM popsell.import_contacts_detail(2,
              '[{"first_name":"J1","email":"j1@c.test"},{"first_name":"J2","email":"x@"},{"first_name":"J3","email":"j1@c.test"}]')),
          '1:imported:,2:skipped_invalid:malformed email,3:skipped_duplicate:email already held by this ambassador',
          'import_contacts_detail reports each row without personal data');

SELECT * FROM finish();
ROLLBACK;
