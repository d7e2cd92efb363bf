-- 101_transition_matrix: the contacts trigger enforces exactly the
-- transition table (SPEC C2) for every field, every from/to pair, every
-- path and the sources whose rules differ, with one ledger row per accepted
-- change and none for a rejected one; and the table itself keeps SPEC's
-- invariants.  From-states are set in restore mode (superuser,
-- row_security off), then each change is tried with popsell.actor = path.
BEGIN;
SELECT plan(16);

INSERT INTO popsell.ambassadors (id, kind, status, terms_accepted_at, first_name, email)
VALUES (9001, 'sales_rep', 'active', now(), 'M', 'm@matrix.test');

CREATE TEMP TABLE field_values(field text, v text);
INSERT INTO field_values
SELECT 'ambassador_optin', unnest(enum_range(NULL::popsell.ambassador_optin))::text
UNION ALL SELECT 'brand_optin', unnest(enum_range(NULL::popsell.brand_optin))::text
UNION ALL SELECT 'partners_optin', unnest(ARRAY['false', 'true'])
UNION ALL SELECT 'email_status', unnest(enum_range(NULL::popsell.email_status))::text;

CREATE TEMP TABLE paths(path text);
INSERT INTO paths VALUES ('ambassador'), ('staff'), ('app'), ('contact'), ('confirm_email'), ('brand_sync'),
    ('system'), ('email_callback'), ('migration'), ('send_invitation'), ('release_soft_bounce'), ('rights');

CREATE TEMP TABLE outcome(source text, field text, from_v text, to_v text, path text,
                          allowed boolean, state text, names_values boolean, has_hint boolean, events bigint);

CREATE FUNCTION pg_temp.run_matrix(p_source popsell.contact_source) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    cid bigint;
    f record;
    t record;
    p record;
    st text; msg text; hint text;
    n0 bigint; n1 bigint;
BEGIN
    INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
    VALUES (9001, p_source, 'M', p_source || '@matrix.test') RETURNING id INTO cid;
    FOR f IN SELECT * FROM field_values LOOP
        FOR t IN SELECT * FROM field_values WHERE field = f.field AND v <> f.v LOOP
            FOR p IN SELECT * FROM paths LOOP
                -- from-state, in restore mode (the trigger lets it through)
                PERFORM set_config('popsell.actor', '', true);
                PERFORM set_config('row_security', 'off', true);
                EXECUTE format('UPDATE popsell.contacts SET %I = %L WHERE id = %s', f.field, f.v, cid);
                PERFORM set_config('row_security', 'on', true);
                PERFORM set_config('popsell.actor', p.path, true);
                SELECT count(*) INTO n0 FROM popsell.consent_events WHERE contact_id = cid;
                st := 'ok'; msg := NULL; hint := NULL;
                BEGIN
                    EXECUTE format('UPDATE popsell.contacts SET %I = %L WHERE id = %s', f.field, t.v, cid);
                EXCEPTION WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
                END;
                SELECT count(*) INTO n1 FROM popsell.consent_events WHERE contact_id = cid;
                INSERT INTO outcome VALUES (p_source, f.field, f.v, t.v, p.path,
                    popsell.transition_allowed(f.field, f.v, t.v, CASE WHEN p.path = 'app' THEN 'ambassador' ELSE p.path END, p_source),
                    st,
                    msg IS NULL OR (position(format('"%s"', f.v) IN msg) > 0 AND position(format('"%s"', t.v) IN msg) > 0),
                    msg IS NULL OR coalesce(hint, '') <> '',
                    n1 - n0);
            END LOOP;
        END LOOP;
    END LOOP;
    PERFORM set_config('popsell.actor', '', true);
END $$;

SELECT pg_temp.run_matrix(s)
  FROM unnest(ARRAY['crm_manual', 'brand_sync', 'blog', 'blog_internal_form', 'store_purchase', 'order']::popsell.contact_source[]) s;

SELECT ok((SELECT count(*) FROM outcome) = 6 * 12 * (17 * 16 + 6 * 5 + 2 + 6 * 5),
          'every source x field x from x to x path was tried');
SELECT is_empty($$SELECT source, field, from_v, to_v, path, allowed, state FROM outcome
                  WHERE allowed <> (state = 'ok') OR (NOT allowed AND state <> 'PS100')$$,
                'the trigger accepts exactly the transitions of popsell.transition_rules(); the others are PS100');
SELECT is_empty($$SELECT source, field, from_v, to_v, path FROM outcome WHERE state = 'ok' AND events <> 1$$,
                'each accepted change appends exactly one consent_events row');
SELECT is_empty($$SELECT source, field, from_v, to_v, path FROM outcome WHERE state <> 'ok' AND events <> 0$$,
                'a rejected change appends no consent_events row');
SELECT is_empty($$SELECT source, field, from_v, to_v, path FROM outcome WHERE NOT names_values OR NOT has_hint$$,
                'every PS100 names the from and to values and has a hint');

-- SPEC C2 invariants, checked on what the trigger did.
SELECT is_empty($$SELECT * FROM outcome WHERE path IN ('ambassador', 'app') AND field = 'ambassador_optin' AND state = 'ok'
                    AND (to_v IN ('invitation_accepted', 'optin_brand_imported', 'optin_blog_verified', 'optin_internal_form',
                                  'optin_external_form', 'optin_order', 'optin_order_popin', 'optin_other')
                         OR from_v IN ('invitation_declined', 'optout_email', 'optout_no_response', 'global_optout',
                                       'optin_blog_pending'))$$,
                'an ambassador (plain UPDATE, also through popsell_app) never moves a contact into an opted-in state nor out of an opted-out one');
SELECT is_empty($$SELECT * FROM outcome WHERE field = 'ambassador_optin' AND state = 'ok'
                    AND from_v IN ('invitation_declined', 'optout_email', 'optout_no_response', 'global_optout')
                    AND to_v IN ('invitation_accepted', 'optin_brand_imported', 'optin_blog_verified', 'optin_internal_form',
                                 'optin_external_form', 'optin_order', 'optin_order_popin', 'optin_other')$$,
                'no path moves an opted-out contact row back to opted in (only a new, email-confirmed consent does)');
SELECT is_empty($$SELECT * FROM outcome WHERE field = 'ambassador_optin' AND state = 'ok' AND from_v = 'invitation_sent'
                    AND to_v IN ('invitation_accepted', 'invitation_declined') AND path <> 'contact'$$,
                'invitation_sent goes to accepted/declined only by the contact');
SELECT is_empty($$SELECT * FROM outcome WHERE field = 'ambassador_optin' AND state = 'ok' AND to_v = 'optout_no_response'
                    AND (path <> 'system' OR from_v <> 'invitation_sent')$$,
                'optout_no_response only by the system, only from invitation_sent');
SELECT is_empty($$SELECT * FROM outcome WHERE field = 'ambassador_optin' AND state = 'ok' AND to_v = 'optin_other' AND path <> 'migration'$$,
                'optin_other only by the pre-GDPR migration');
SELECT is_empty($$SELECT * FROM outcome WHERE field = 'ambassador_optin' AND state = 'ok' AND from_v = 'optin_blog_pending'
                    AND to_v IN ('optin_blog_verified', 'optin_internal_form')
                    AND (path <> 'confirm_email'
                         OR (to_v = 'optin_internal_form') <> (source = 'blog_internal_form'))$$,
                'optin_blog_pending is confirmed only by confirm_email, to optin_internal_form for blog_internal_form');
SELECT is_empty($$SELECT * FROM outcome WHERE field = 'ambassador_optin' AND path = 'contact' AND to_v IN ('optout_email', 'global_optout')
                    AND from_v <> 'global_optout' AND from_v <> to_v AND state <> 'ok'$$,
                'the contact moves any state but global_optout to optout_email, and any state to global_optout');
SELECT is_empty($$SELECT * FROM outcome WHERE field = 'email_status' AND to_v = 'ok' AND state = 'ok'
                    AND NOT ((path = 'confirm_email' AND from_v = 'unverified') OR (path = 'release_soft_bounce' AND from_v = 'soft_bounce'))$$,
                'email_status reaches ok only by confirm_email (from unverified) or release_soft_bounce (from soft_bounce)');
SELECT is_empty($$SELECT * FROM outcome WHERE field = 'email_status' AND from_v IN ('spam', 'hard_bounce', 'blocked') AND state = 'ok'$$,
                'spam, hard_bounce and blocked are final');
SELECT is_empty($$SELECT * FROM outcome WHERE field = 'ambassador_optin' AND from_v = 'invitation_sent' AND to_v = 'new' AND state = 'ok'$$,
                'an invitation cannot be undone');
SELECT is_empty($$SELECT * FROM outcome WHERE path = 'send_invitation' AND state = 'ok'
                    AND NOT (field = 'ambassador_optin' AND from_v = 'new' AND to_v = 'invitation_sent')$$,
                'send_invitation changes nothing but new to invitation_sent');

SELECT * FROM finish();
ROLLBACK;
