-- The model test of the consent machine (SPEC sections 2-5), reusable.
--
-- Include it (\ir) in a database where popsell is installed, as a
-- superuser.  It creates schema consent_model with:
--
--   consent_model.ops             the public operations, one row each:
--                                 who calls (a role, 'amb:N' for the trusted
--                                 application acting as ambassador N, 'app'
--                                 for the application itself, 'system' for
--                                 run_maintenance's path) and the SQL, where
--                                 {c1} / {c2} stand for ambassador 1's / 2's
--                                 latest contact.
--   consent_model.explore(seed int[], depth int)
--                                 runs the seed operations, then every
--                                 sequence of up to DEPTH operations after
--                                 them (depth first, each step in a
--                                 subtransaction that is rolled back, so
--                                 sequences share their prefixes), checks
--                                 the invariants after every step and
--                                 returns the number of sequences run.  The
--                                 first violation raises SQLSTATE PSM01 with
--                                 the failing sequence as a psql script that
--                                 reproduces it (consent_model.script()).
--   consent_model.violations(...) the invariants; add rows to ops or checks
--                                 here to extend the model (retention rules
--                                 can be added as operations of 'system').
--   consent_model.known           LIKE patterns of violations to step over
--                                 (to look for the next finding).
--
-- The invariants, after every step:
--   I1 no opted-in state (ambassador, brand or partners) unless the ledger
--      row that set it came from the person's own act (paths contact,
--      confirm_email, brand_sync: the brand's record of the person's
--      opt-in);
--   I2 no row an ambassador may still invite (new, invitation_sent) for an
--      email that globally opted out, and no row entered or moved to an
--      email that refused or globally opted out is new or opted in
--      unless the person re-confirmed it (confirm_email);
--   I3 one ledger row per real change: a contact whose consent columns
--      changed has new ledger rows, the last one carrying its current
--      values; one whose columns did not change has none;
--   I4 a row's email carries only its own address's consent: after an
--      email change (not pending) no brand or partners opt-in and no
--      ambassador opt-in is left;
--   I5 each opted-in value only from the source that can give it (SPEC
--      C1's table: invitation_accepted only after an invitation,
--      optin_blog_verified / optin_internal_form only once confirmed,
--      optin_order only from orders...), a pending row neither ok nor
--      opted in, email_confirmed_at only on a source that confirms;
--   I6 storage_only and social_media_only contacts are never invited (nor
--      reminded), even after leaving that state;
--   I7 at most one invitation and one reminder per contact, and per person
--      (email) per ambassador across deletions and re-entries (the model
--      remembers every invitation it saw queued);
--   I8 every end of a partners opt-in (true to false, or the row erased)
--      queues a partner_optout (partner_erasure) notice in the same step;
--   I9 what each role reads: the brand (table and brand_contacts) and the
--      BI role (brand_contacts) exactly the brand-visible rows as SPEC
--      section 2 defines them, ambassador 1 exactly its own rows not
--      pending confirmation (my_contacts: no email of an opted-out one),
--      the application exactly the contacts it has unsent mail for.
--
-- Forged operations (direct UPDATE of each consent or state column by the
-- ambassador, the application and the brand; INSERTs and outbox rows with
-- forged values) sit among the public ones: any of them the rules let
-- through shows up as a broken invariant.  Below the first operation
-- after the seed, explore(seed, depth, sample) tries each sequence with a
-- deterministic probability of sample percent (a hash of the sequence), so
-- the run stays bounded while every operation is tried after every state
-- the first level reaches.
--
-- Each invariant can fail: test/model/run_mutants.sh applies a weakened
-- rule (test/model/mutants/: SQL mutants it runs itself, C mutants as
-- patches to apply and rebuild), runs the model from the seeds the mutant
-- names and checks that it prints the failing script for the expected
-- invariant, then replays that script.  Recorded (issue 13): I1 the
-- ambassador may set partners_optin (C), I5 an ambassador acts on a
-- contact pending confirmation, I6 an email change frees a storage_only
-- contact (C), I7 send_invitation without the per-person check, I8 no
-- partner_optout, I9 the brand reads every contact: each caught, each
-- printed script replays to the bad state.  The model before these
-- invariants passed the two C mutants.
CREATE SCHEMA consent_model;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'popsell_model_app') THEN
        CREATE ROLE popsell_model_app NOLOGIN;
    END IF;
    GRANT popsell_app TO popsell_model_app;
END
$$;

CREATE TABLE consent_model.ops (
    id   int PRIMARY KEY,
    name text NOT NULL UNIQUE,
    who  text NOT NULL,
    sql  text NOT NULL
);

INSERT INTO consent_model.ops (id, name, who, sql) VALUES
 (1,  'enter_1',       'amb:1', $q$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email) VALUES (1, 'crm_manual', 'P', 'p@model.test')$q$),
 (2,  'import_2',      'amb:2', $q$SELECT * FROM popsell.import_contacts(2, '[{"first_name": "P", "email": "P@Model.test"}]')$q$),
 (3,  'blog_all_1',    'app',   $q$SELECT popsell.collect_contact(1, 'blog', '{"first_name": "P", "email": "p@model.test"}', true, true, true)$q$),
 (4,  'blog_none_1',   'app',   $q$SELECT popsell.collect_contact(1, 'blog', '{"first_name": "P", "email": "p@model.test"}', false, false, false)$q$),
 (5,  'order_1',       'app',   $q$SELECT popsell.collect_contact(1, 'order', '{"first_name": "P", "email": "p@model.test"}', NULL, true, true)$q$),
 (6,  'popin_1',       'app',   $q$SELECT popsell.collect_contact(1, 'order_popin', '{"first_name": "P", "email": "p@model.test"}', true, false, true)$q$),
 (7,  'ext_no_1',      'app',   $q$SELECT popsell.collect_contact(1, 'external_form', '{"first_name": "P", "email": "p@model.test"}', false, false, false)$q$),
 (8,  'ext_yes_1',     'app',   $q$SELECT popsell.collect_contact(1, 'external_form', '{"first_name": "P", "email": "p@model.test"}', true, true, true)$q$),
 (9,  'sync_yes_2',    'app',   $q$SELECT popsell.collect_contact(2, 'brand_sync', '{"first_name": "P", "email": "p@model.test", "customer_id": "K"}', NULL, true, true)$q$),
 (10, 'sync_no_2',     'app',   $q$SELECT popsell.collect_contact(2, 'brand_sync', '{"first_name": "P", "email": "p@model.test", "customer_id": "K"}', NULL, false)$q$),
 (11, 'invite_1',      'amb:1', $q$SELECT popsell.send_invitation({c1})$q$),
 (12, 'accept_1',      'app',   $q$SELECT popsell.accept_invitation({c1})$q$),
 (13, 'decline_1',     'app',   $q$SELECT popsell.decline_invitation({c1})$q$),
 (14, 'no_answer',     'system', $q$UPDATE popsell.contacts SET ambassador_optin = 'optout_no_response' WHERE ambassador_optin = 'invitation_sent'$q$),
 (15, 'optout_1',      'app',   $q$SELECT popsell.opt_out({c1})$q$),
 (16, 'global_1',      'app',   $q$SELECT popsell.opt_out({c1}, true)$q$),
 (17, 'move_1',        'amb:1', $q$UPDATE popsell.contacts SET email = 'q@model.test' WHERE id = {c1}$q$),
 (18, 'move_back_1',   'popsell_account_team', $q$UPDATE popsell.contacts SET email = 'p@model.test' WHERE id = {c1}$q$),
 (19, 'withdraw_1',    'app',   $q$SELECT popsell.withdraw_consent({c1})$q$),
 (20, 'hard_bounce',   'app',   $q$SELECT popsell.email_callback('p@model.test', 'hard_bounce')$q$),
 (21, 'soft_bounce',   'app',   $q$SELECT popsell.email_callback('p@model.test', 'soft_bounce')$q$),
 (22, 'confirm_1',     'app',   $q$SELECT popsell.confirm_email({c1}, (SELECT o.payload->>'token' FROM popsell.outbox o WHERE o.contact_id = {c1} AND o.kind = 'email_confirmation' ORDER BY o.id DESC LIMIT 1))$q$),
 (23, 'erase_1',       'amb:1', $q$DELETE FROM popsell.contacts WHERE id = {c1}$q$),
 (24, 'object',        'popsell_account_team', $q$SELECT popsell.object_subject('p@model.test')$q$),
 (25, 'brand_out_2',   'popsell_brand', $q$UPDATE popsell.contacts SET brand_optin = 'no_optin', partners_optin = false WHERE id = {c2}$q$),
 (26, 'forge_1',       'amb:1', $q$UPDATE popsell.contacts SET ambassador_optin = 'invitation_accepted', brand_optin = 'optin_brand_database' WHERE id = {c1}$q$),
 (27, 'invite_2',      'amb:2', $q$SELECT popsell.send_invitation({c2})$q$),
 (28, 'accept_2',      'app',   $q$SELECT popsell.accept_invitation({c2})$q$),
 (29, 'release_1',     'amb:1', $q$SELECT popsell.release_soft_bounce({c1})$q$),
 (30, 'staff_optin_1', 'popsell_account_team', $q$UPDATE popsell.contacts SET ambassador_optin = 'invitation_accepted' WHERE id = {c1}$q$),
 (31, 'erase_subject', 'popsell_account_team', $q$SELECT popsell.erase_subject('p@model.test')$q$),
 (32, 'brand_forge_2', 'popsell_brand', $q$UPDATE popsell.contacts SET ambassador_optin = 'invitation_accepted', partners_optin = true WHERE id = {c2}$q$),
 (33, 'app_crm_1',     'app',   $q$SELECT popsell.collect_contact(1, 'crm_manual', '{"first_name": "P", "email": "p@model.test"}', true, true, true)$q$),
 -- forged: each consent or state column, by each role that may write contacts
 (34, 'amb_f_amb_1',      'amb:1', $q$UPDATE popsell.contacts SET ambassador_optin = 'invitation_accepted' WHERE id = {c1}$q$),
 (35, 'amb_f_brand_1',    'amb:1', $q$UPDATE popsell.contacts SET brand_optin = 'optin_brand_database' WHERE id = {c1}$q$),
 (36, 'amb_f_partners_1', 'amb:1', $q$UPDATE popsell.contacts SET partners_optin = true WHERE id = {c1}$q$),
 (37, 'amb_f_status_1',   'amb:1', $q$UPDATE popsell.contacts SET email_status = 'ok' WHERE id = {c1}$q$),
 (38, 'amb_f_confirm_1',  'amb:1', $q$UPDATE popsell.contacts SET email_confirmed_at = now() WHERE id = {c1}$q$),
 (39, 'amb_f_new_1',      'amb:1', $q$UPDATE popsell.contacts SET ambassador_optin = 'new' WHERE id = {c1}$q$),
 (40, 'amb_f_sent_1',     'amb:1', $q$UPDATE popsell.contacts SET invitations_sent = 0, invitation_sent_at = NULL, reminder_sent_at = NULL WHERE id = {c1}$q$),
 (41, 'app_f_amb_1',      'app',   $q$UPDATE popsell.contacts SET ambassador_optin = 'invitation_accepted' WHERE id = {c1}$q$),
 (42, 'app_f_brand_1',    'app',   $q$UPDATE popsell.contacts SET brand_optin = 'optin_brand_database' WHERE id = {c1}$q$),
 (43, 'app_f_partners_1', 'app',   $q$UPDATE popsell.contacts SET partners_optin = true WHERE id = {c1}$q$),
 (44, 'app_f_status_1',   'app',   $q$UPDATE popsell.contacts SET email_status = 'ok' WHERE id = {c1}$q$),
 (45, 'app_f_confirm_1',  'app',   $q$UPDATE popsell.contacts SET email_confirmed_at = now() WHERE id = {c1}$q$),
 (46, 'app_f_new_1',      'app',   $q$UPDATE popsell.contacts SET ambassador_optin = 'new', invitations_sent = 0 WHERE id = {c1}$q$),
 (47, 'brand_f_amb',      'popsell_brand', $q$UPDATE popsell.contacts SET ambassador_optin = 'invitation_accepted' WHERE id IN ({c1}, {c2})$q$),
 (48, 'brand_f_brand',    'popsell_brand', $q$UPDATE popsell.contacts SET brand_optin = 'optin_brand_database' WHERE id IN ({c1}, {c2})$q$),
 (49, 'brand_f_partners', 'popsell_brand', $q$UPDATE popsell.contacts SET partners_optin = true WHERE id IN ({c1}, {c2})$q$),
 (50, 'brand_f_status',   'popsell_brand', $q$UPDATE popsell.contacts SET email_status = 'ok' WHERE id IN ({c1}, {c2})$q$),
 (51, 'brand_f_new',      'popsell_brand', $q$UPDATE popsell.contacts SET ambassador_optin = 'new' WHERE id IN ({c1}, {c2})$q$),
 (52, 'brand_f_confirm',  'popsell_brand', $q$UPDATE popsell.contacts SET email_confirmed_at = now(), restricted = false WHERE id IN ({c1}, {c2})$q$),
 (53, 'amb_f_insert_1',   'amb:1', $q$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email, ambassador_optin, brand_optin) VALUES (1, 'crm_manual', 'P', 'p@model.test', 'invitation_accepted', 'optin_brand_database')$q$),
 (54, 'app_f_insert_blog_1', 'app', $q$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email, ambassador_optin, brand_optin, partners_optin, email_status, email_confirmed_at) VALUES (1, 'blog', 'P', 'p@model.test', 'optin_blog_verified', 'optin_blog', true, 'ok', now())$q$),
 (55, 'app_f_insert_order_1', 'app', $q$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email, ambassador_optin, brand_optin, partners_optin) VALUES (1, 'order', 'P', 'p@model.test', 'optin_order', 'optin_brand_database', true)$q$),
 (56, 'app_f_insert_ext_1', 'app', $q$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email, ambassador_optin, brand_optin) VALUES (1, 'external_form', 'P', 'p@model.test', 'new', 'optin_external_form')$q$),
 (57, 'app_f_invitation_1', 'app', $q$INSERT INTO popsell.outbox (kind, ambassador_id, contact_id, payload) VALUES ('invitation', 1, {c1}, '{}')$q$),
 (58, 'app_f_partner_optout_1', 'app', $q$INSERT INTO popsell.outbox (kind, ambassador_id, contact_id, payload) VALUES ('partner_optout', 1, {c1}, '{}')$q$);

-- Violations to step over (LIKE patterns of their text), to look past a
-- known finding for the next one; empty in the test.
CREATE TABLE consent_model.known (pattern text PRIMARY KEY);

-- The SQL of an operation with its contact references resolved.
CREATE FUNCTION consent_model.resolve(q text) RETURNS text LANGUAGE sql AS $$
    SELECT replace(replace(q,
        '{c1}', (SELECT coalesce(max(id), 0)::text FROM popsell.contacts WHERE ambassador_id = 1)),
        '{c2}', (SELECT coalesce(max(id), 0)::text FROM popsell.contacts WHERE ambassador_id = 2))
$$;

-- Run one operation as its caller; 'ok' or the SQLSTATE it was refused with
-- (a refusal leaves nothing behind: the operation runs in a subtransaction).
CREATE FUNCTION consent_model.run_op(p_op int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    o consent_model.ops;
    q text;
    st text;
BEGIN
    SELECT * INTO o FROM consent_model.ops WHERE id = p_op;
    q := consent_model.resolve(o.sql);
    BEGIN
        IF o.who LIKE 'amb:%' THEN
            PERFORM set_config('role', 'popsell_model_app', true);
            PERFORM set_config('popsell.ambassador_id', substr(o.who, 5), true);
            PERFORM set_config('role', 'popsell_ambassador', true);
        ELSIF o.who = 'app' THEN
            PERFORM set_config('role', 'popsell_model_app', true);
        ELSIF o.who = 'system' THEN
            PERFORM set_config('popsell.actor', 'system', true);
        ELSE
            PERFORM set_config('role', o.who, true);
        END IF;
        EXECUTE q;
        PERFORM set_config('role', 'none', true);
        PERFORM set_config('popsell.ambassador_id', '', true);
        PERFORM set_config('popsell.actor', '', true);
        RETURN 'ok';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
        IF st IN ('XX000', 'XX001', '57014', '53200') THEN
            RAISE;                      -- an internal error is a finding too
        END IF;
        RETURN st;
    END;
END
$$;

-- The consent state of every contact, as jsonb keyed by id.
CREATE FUNCTION consent_model.state() RETURNS jsonb LANGUAGE sql AS $$
    SELECT coalesce(jsonb_object_agg(c.id, jsonb_build_object(
               'amb', c.ambassador_optin, 'brand', c.brand_optin, 'partners', c.partners_optin,
               'es', c.email_status, 'email', c.email)), '{}')
      FROM popsell.contacts c
$$;

-- The blacklist reasons of an email.
CREATE FUNCTION consent_model.reasons(p_email text) RETURNS text[] LANGUAGE sql AS $$
    SELECT coalesce(array_agg(b.reason::text ORDER BY b.reason), '{}')
      FROM popsell.blacklist b
     WHERE p_email IS NOT NULL AND b.email_hash = ANY (popsell.email_hashes(p_email))
$$;

-- The emails the model remembers as refused: the address a row held when
-- it moved into a refusal or global opt-out state, in any earlier step
-- (the model's own memory, independent of popsell's blacklist).  p_before
-- is the state before the last step.
CREATE FUNCTION consent_model.refused(p_known text[], p_before jsonb) RETURNS text[] LANGUAGE sql AS $$
    SELECT ARRAY(SELECT DISTINCT e FROM (
        SELECT unnest(p_known) AS e
        UNION
        SELECT c.email FROM popsell.contacts c
         WHERE c.email IS NOT NULL
           AND c.ambassador_optin IN ('invitation_declined', 'optout_email', 'optout_no_response',
                                      'global_optout')
           AND coalesce(p_before -> c.id::text ->> 'amb', 'new') NOT IN
               ('invitation_declined', 'optout_email', 'optout_no_response', 'global_optout')) x ORDER BY 1)
$$;

-- The invitations the model saw queued, one 'ambassador:email' entry per
-- invitation row (the model's memory: rows and outbox rows of erased
-- contacts go, the memory stays), with those queued since outbox id
-- p_outbox added.
CREATE FUNCTION consent_model.invited(p_known text[], p_outbox bigint) RETURNS text[] LANGUAGE sql AS $$
    SELECT p_known || ARRAY(SELECT o.ambassador_id || ':' || lower(c.email)
                              FROM popsell.outbox o JOIN popsell.contacts c ON c.id = o.contact_id
                             WHERE o.id > p_outbox AND o.kind = 'invitation' ORDER BY o.id)
$$;

-- The ids a role reads in a table or view (ambassador 1 for 'amb:1').
CREATE FUNCTION consent_model.reads(p_who text, p_rel text) RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
BEGIN
    IF p_who LIKE 'amb:%' THEN
        PERFORM set_config('role', 'popsell_model_app', true);
        PERFORM set_config('popsell.ambassador_id', substr(p_who, 5), true);
        PERFORM set_config('role', 'popsell_ambassador', true);
    ELSIF p_who = 'app' THEN
        PERFORM set_config('role', 'popsell_model_app', true);
    ELSE
        PERFORM set_config('role', p_who, true);
    END IF;
    EXECUTE format('SELECT coalesce(array_agg(id ORDER BY id), ''{}'') FROM %s', p_rel) INTO ids;
    PERFORM set_config('role', 'none', true);
    PERFORM set_config('popsell.ambassador_id', '', true);
    RETURN ids;
EXCEPTION WHEN OTHERS THEN
    PERFORM set_config('role', 'none', true);
    PERFORM set_config('popsell.ambassador_id', '', true);
    RAISE;
END
$$;

-- The invariants broken by the last step (NULL when none).  p_before is
-- consent_model.state() before the step, p_ledger the ledger's last id
-- before it, p_refused the emails refused before it.
CREATE FUNCTION consent_model.violations(p_before jsonb, p_ledger bigint, p_refused text[],
                                         p_outbox bigint, p_invited text[])
    RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r record;
    b jsonb;
    e record;
    n bigint;
    m bigint;
    k text;
    want bigint[];
    vis bigint[];
    got bigint[];
    own constant text[] := ARRAY['contact', 'confirm_email', 'brand_sync'];
    opted_in constant text[] := ARRAY['invitation_accepted', 'optin_brand_imported', 'optin_blog_verified',
                                      'optin_internal_form', 'optin_external_form', 'optin_order',
                                      'optin_order_popin', 'optin_other'];
    pending_kind constant text[] := ARRAY['blog', 'blog_internal_form', 'store_purchase'];
BEGIN
    FOR r IN SELECT c.*, c.ambassador_optin::text AS amb, c.brand_optin::text AS brand,
                    c.email_status::text AS es
               FROM popsell.contacts c ORDER BY c.id LOOP
        b := p_before -> r.id::text;
        -- I1: opted-in states come from the person's own act
        IF r.amb = ANY (opted_in) THEN
            SELECT * INTO e FROM popsell.consent_events x
             WHERE x.contact_id = r.id AND x.new_ambassador_optin::text = r.amb
               AND x.old_ambassador_optin IS DISTINCT FROM x.new_ambassador_optin
             ORDER BY x.id DESC LIMIT 1;
            IF NOT FOUND OR NOT e.path = ANY (own) THEN
                RETURN format('I1: contact %s is %s without the person''s own act (ledger path %s)',
                              r.id, r.amb, coalesce(e.path, 'none'));
            END IF;
        END IF;
        IF r.brand NOT IN ('no_optin', 'storage_only') THEN
            SELECT * INTO e FROM popsell.consent_events x
             WHERE x.contact_id = r.id AND x.new_brand_optin::text = r.brand
               AND x.old_brand_optin IS DISTINCT FROM x.new_brand_optin
             ORDER BY x.id DESC LIMIT 1;
            IF NOT FOUND OR NOT e.path = ANY (own) THEN
                RETURN format('I1: contact %s has brand opt-in %s without the person''s own act (ledger path %s)',
                              r.id, r.brand, coalesce(e.path, 'none'));
            END IF;
        END IF;
        IF r.partners_optin THEN
            SELECT * INTO e FROM popsell.consent_events x
             WHERE x.contact_id = r.id AND x.new_partners_optin
               AND x.old_partners_optin IS DISTINCT FROM true
             ORDER BY x.id DESC LIMIT 1;
            IF NOT FOUND OR NOT e.path = ANY (own) OR r.source::text NOT IN
                   ('blog', 'blog_internal_form', 'store_purchase', 'external_form', 'order_popin') THEN
                RETURN format('I1: contact %s (source %s) has a partners opt-in without the person''s own act on a popsell form',
                              r.id, r.source);
            END IF;
        END IF;
        -- I2: a global opt-out holds for every row; a refusal or global
        -- opt-out known before a row got its email holds for that row
        IF 'global_optout' = ANY (consent_model.reasons(r.email)) AND r.amb IN ('new', 'invitation_sent') THEN
            RETURN format('I2: contact %s is %s although its email opted out of every ambassador', r.id, r.amb);
        END IF;
        IF r.email IS NOT NULL AND (b IS NULL OR b ->> 'email' IS DISTINCT FROM r.email)
           AND r.email = ANY (p_refused) THEN
            IF (r.amb IN ('new', 'invitation_sent')
                    OR r.amb = ANY (opted_in) AND NOT (r.source::text = ANY (pending_kind)
                                                      AND r.email_confirmed_at IS NOT NULL)) THEN
                RETURN format('I2: contact %s got an email whose owner refused or opted out before, and is %s',
                              r.id, r.amb);
            END IF;
        END IF;
        -- I3: one ledger row per real change, none otherwise
        SELECT count(*) INTO n FROM popsell.consent_events x WHERE x.contact_id = r.id AND x.id > p_ledger;
        IF b IS NOT NULL THEN
            IF (b ->> 'amb', b ->> 'brand', (b ->> 'partners')::boolean, b ->> 'es')
               IS DISTINCT FROM (r.amb, r.brand, r.partners_optin, r.es) THEN
                IF n = 0 THEN
                    RETURN format('I3: contact %s changed from %s to %s,%s,%s,%s without a ledger row', r.id,
                                  b, r.amb, r.brand, r.partners_optin, r.es);
                END IF;
            ELSIF n > 0 THEN
                RETURN format('I3: contact %s has %s new ledger rows but its consent did not change', r.id, n);
            END IF;
        END IF;
        IF n > 0 THEN
            SELECT * INTO e FROM popsell.consent_events x WHERE x.contact_id = r.id ORDER BY x.id DESC LIMIT 1;
            IF (e.new_ambassador_optin::text, e.new_brand_optin::text, e.new_partners_optin, e.new_email_status::text)
               IS DISTINCT FROM (r.amb, r.brand, r.partners_optin, r.es) THEN
                RETURN format('I3: the last ledger row of contact %s does not carry its current values', r.id);
            END IF;
        END IF;
        -- I4: a new address starts without the old one's consent
        IF b IS NOT NULL AND b ->> 'email' IS DISTINCT FROM r.email
           AND NOT (r.source::text = ANY (pending_kind) AND r.email_confirmed_at IS NULL)
           AND (r.brand <> 'no_optin' OR r.partners_optin OR r.amb = ANY (opted_in)) THEN
            RETURN format('I4: contact %s kept consent (%s, %s, %s) across an email change', r.id,
                          r.amb, r.brand, r.partners_optin);
        END IF;
        -- I5: each opt-in only from the source that can give it (SPEC C1)
        IF r.amb = ANY (opted_in) AND NOT (CASE r.amb
               WHEN 'invitation_accepted' THEN r.invitations_sent > 0
               WHEN 'optin_brand_imported' THEN r.source::text = 'brand_sync'
               WHEN 'optin_blog_verified' THEN r.source::text IN ('blog', 'store_purchase') AND r.email_confirmed_at IS NOT NULL
               WHEN 'optin_internal_form' THEN r.source::text = 'blog_internal_form' AND r.email_confirmed_at IS NOT NULL
               WHEN 'optin_external_form' THEN r.source::text = 'external_form'
               WHEN 'optin_order' THEN r.source::text IN ('order', 'order_popin')
               WHEN 'optin_order_popin' THEN r.source::text = 'order_popin'
               ELSE false END) THEN
            RETURN format('I5: contact %s (source %s, %s invitations, confirmed %s) is %s, which its source cannot give',
                          r.id, r.source, r.invitations_sent, r.email_confirmed_at IS NOT NULL, r.amb);
        END IF;
        IF r.brand NOT IN ('no_optin', 'storage_only') AND NOT (CASE r.brand
               WHEN 'optin_blog' THEN r.source::text IN ('blog', 'store_purchase')
               WHEN 'optin_internal_form' THEN r.source::text = 'blog_internal_form'
               WHEN 'optin_external_form' THEN r.source::text = 'external_form'
               WHEN 'optin_brand_database' THEN r.source::text IN ('brand_sync', 'order', 'order_popin')
               ELSE false END) THEN
            RETURN format('I5: contact %s (source %s) has brand opt-in %s, which its source cannot give',
                          r.id, r.source, r.brand);
        END IF;
        IF r.source::text = ANY (pending_kind) AND r.email_confirmed_at IS NULL AND r.email IS NOT NULL
           AND (r.es = 'ok' OR r.amb = ANY (opted_in)) THEN
            RETURN format('I5: contact %s is pending confirmation but %s, %s', r.id, r.amb, r.es);
        END IF;
        IF r.email_confirmed_at IS NOT NULL AND NOT r.source::text = ANY (pending_kind) THEN
            RETURN format('I5: contact %s (source %s) has a confirmation its source never asks for', r.id, r.source);
        END IF;
        -- I6: stored-only contacts are never invited
        IF (r.amb IN ('storage_only', 'social_media_only')
            OR EXISTS (SELECT 1 FROM popsell.consent_events x WHERE x.contact_id = r.id
                          AND x.new_ambassador_optin::text IN ('storage_only', 'social_media_only')))
           AND (r.invitations_sent > 0 OR r.invitation_sent_at IS NOT NULL
                OR EXISTS (SELECT 1 FROM popsell.outbox o WHERE o.contact_id = r.id
                              AND o.kind IN ('invitation', 'invitation_reminder'))) THEN
            RETURN format('I6: contact %s (%s, source %s) was stored only and got an invitation', r.id, r.amb, r.source);
        END IF;
        -- I7: one invitation and one reminder per contact
        SELECT count(*) FILTER (WHERE o.kind = 'invitation'), count(*) FILTER (WHERE o.kind = 'invitation_reminder')
          INTO n, m FROM popsell.outbox o WHERE o.contact_id = r.id;
        IF n > 1 OR m > 1 THEN
            RETURN format('I7: contact %s has %s invitations and %s reminders queued', r.id, n, m);
        END IF;
        -- I8: the end of a partners opt-in is told to the partners
        IF (b ->> 'partners')::boolean AND NOT r.partners_optin
           AND NOT EXISTS (SELECT 1 FROM popsell.outbox o WHERE o.contact_id = r.id AND o.id > p_outbox
                              AND o.kind = 'partner_optout') THEN
            RETURN format('I8: the partners opt-in of contact %s ended without a partner_optout notice', r.id);
        END IF;
    END LOOP;
    -- I7: one invitation per person per ambassador, across erasures
    SELECT x INTO k FROM unnest(p_invited) x GROUP BY x HAVING count(*) > 1 LIMIT 1;
    IF FOUND THEN
        RETURN format('I7: ambassador %s invited %s more than once', split_part(k, ':', 1), split_part(k, ':', 2));
    END IF;
    -- I8: an erased contact's partners opt-in is told too
    SELECT x.key INTO k FROM jsonb_each(p_before) x
     WHERE (x.value ->> 'partners')::boolean
       AND NOT EXISTS (SELECT 1 FROM popsell.contacts c WHERE c.id = x.key::bigint)
       AND NOT EXISTS (SELECT 1 FROM popsell.outbox o WHERE o.id > p_outbox
                          AND o.kind IN ('partner_optout', 'partner_erasure')) LIMIT 1;
    IF FOUND THEN
        RETURN format('I8: contact %s was erased with a partners opt-in and no partner notice', k);
    END IF;
    -- I9: what each role reads (SPEC section 2)
    want := ARRAY(SELECT c.id FROM popsell.contacts c
                   WHERE (c.brand_optin <> 'no_optin' OR c.partners_optin) AND NOT c.restricted
                     AND NOT (c.source::text = ANY (pending_kind) AND c.email_confirmed_at IS NULL) ORDER BY c.id);
    -- (a row the brand's own UPDATE changed while it saw it stays readable
    -- for the rest of that top-level statement, popsell._brand_saw; the
    -- whole exploration is one statement, so those rows are let through)
    vis := want;
    want := ARRAY(SELECT c.id FROM popsell.contacts c
                   WHERE c.id = ANY (vis) OR popsell._brand_saw(c.id) ORDER BY c.id);
    got := consent_model.reads('popsell_brand', 'popsell.contacts');
    IF got IS DISTINCT FROM want THEN
        RETURN format('I9: the brand reads contacts %s, brand-visible are %s', got, want);
    END IF;
    got := consent_model.reads('popsell_brand', 'popsell.brand_contacts');
    IF got IS DISTINCT FROM vis THEN
        RETURN format('I9: the brand reads brand_contacts %s, brand-visible are %s', got, vis);
    END IF;
    got := consent_model.reads('popsell_brand_bi', 'popsell.bi_contacts');
    IF got IS DISTINCT FROM vis THEN
        RETURN format('I9: brand BI reads bi_contacts %s, brand-visible are %s', got, vis);
    END IF;
    want := ARRAY(SELECT c.id FROM popsell.contacts c
                   WHERE c.ambassador_id = 1
                     AND NOT (c.source::text = ANY (pending_kind) AND c.email_confirmed_at IS NULL) ORDER BY c.id);
    got := consent_model.reads('amb:1', 'popsell.contacts');
    IF got IS DISTINCT FROM want THEN
        RETURN format('I9: ambassador 1 reads contacts %s, its own visible ones are %s', got, want);
    END IF;
    got := consent_model.reads('amb:1', 'popsell.my_contacts WHERE email IS NOT NULL AND ambassador_optin IN (''invitation_declined'', ''optout_email'', ''optout_no_response'', ''global_optout'', ''optin_blog_pending'')');
    IF got <> '{}' THEN
        RETURN format('I9: ambassador 1 reads the email of opted-out contacts %s', got);
    END IF;
    want := ARRAY(SELECT c.id FROM popsell.contacts c
                   WHERE EXISTS (SELECT 1 FROM popsell.outbox o WHERE o.contact_id = c.id AND o.sent_at IS NULL)
                   ORDER BY c.id);
    got := consent_model.reads('app', 'popsell.contacts');
    IF got IS DISTINCT FROM want THEN
        RETURN format('I9: the application reads contacts %s, those it has unsent mail for are %s', got, want);
    END IF;
    RETURN NULL;
END
$$;

-- A psql script that replays a sequence from an empty fixture.
CREATE FUNCTION consent_model.script(p_seq int[], p_why text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    s text;
    o consent_model.ops;
    i int;
BEGIN
    s := E'-- consent model: failing sequence\n-- ' || p_why || E'\n\\set ON_ERROR_ROLLBACK on\nBEGIN;\n'
         || consent_model.fixture_sql() || E'\n';
    FOREACH i IN ARRAY p_seq LOOP
        SELECT * INTO o FROM consent_model.ops WHERE id = i;
        s := s || format(E'-- %s (%s)\n', o.name, o.who)
               || E'SELECT coalesce(max(id), 0) AS c1 FROM popsell.contacts WHERE ambassador_id = 1 \\gset\n'
               || E'SELECT coalesce(max(id), 0) AS c2 FROM popsell.contacts WHERE ambassador_id = 2 \\gset\n'
               || CASE WHEN o.who LIKE 'amb:%' THEN format(E'SET LOCAL ROLE popsell_model_app; SET LOCAL popsell.ambassador_id = %L; SET LOCAL ROLE popsell_ambassador;\n', substr(o.who, 5))
                       WHEN o.who = 'app' THEN E'SET LOCAL ROLE popsell_model_app;\n'
                       WHEN o.who = 'system' THEN E'SET LOCAL popsell.actor = ''system'';\n'
                       ELSE format(E'SET LOCAL ROLE %I;\n', o.who) END
               || replace(replace(o.sql, '{c1}', ':c1'), '{c2}', ':c2') || E';\n'
               || E'RESET ROLE; RESET popsell.actor; RESET popsell.ambassador_id;\n';
    END LOOP;
    RETURN s || E'SELECT id, source, email, ambassador_optin, brand_optin, partners_optin, email_status FROM popsell.contacts ORDER BY id;\nROLLBACK;\n';
END
$$;

-- The fixture every sequence starts from: two active ambassadors, 1 a
-- customer, 2 a sales rep (brand syncs).
CREATE FUNCTION consent_model.fixture_sql() RETURNS text LANGUAGE sql AS $$
    SELECT $f$INSERT INTO popsell.ambassadors (id, kind, status, terms_accepted_at, first_name, email)
VALUES (1, 'customer', 'active', now(), 'A1', 'a1@model.test'), (2, 'sales_rep', 'active', now(), 'A2', 'a2@model.test');$f$
$$;

-- Depth-first exploration below the current state; returns the sequences
-- run (one per node: every prefix is a sequence too).
CREATE FUNCTION consent_model.walk(p_seq int[], p_depth int, p_refused text[], p_invited text[],
                                   p_sample int DEFAULT 100, p_level int DEFAULT 1) RETURNS bigint
    LANGUAGE plpgsql AS $$
DECLARE
    op int;
    before jsonb;
    ledger bigint;
    outbox bigint;
    invited text[];
    why text;
    n bigint := 0;
BEGIN
    IF p_depth = 0 THEN
        RETURN 0;
    END IF;
    FOR op IN SELECT o.id FROM consent_model.ops o
               WHERE p_level = 1 OR p_sample >= 100
                  OR abs(hashtext(array_to_string(p_seq || o.id, ','))) % 100 < p_sample
               ORDER BY o.id LOOP
        BEGIN
            before := consent_model.state();
            SELECT coalesce(max(id), 0) INTO ledger FROM popsell.consent_events;
            SELECT coalesce(max(id), 0) INTO outbox FROM popsell.outbox;
            PERFORM consent_model.run_op(op);
            invited := consent_model.invited(p_invited, outbox);
            why := consent_model.violations(before, ledger, p_refused, outbox, invited);
            IF why IS NOT NULL AND NOT EXISTS (SELECT 1 FROM consent_model.known k WHERE why LIKE k.pattern) THEN
                RAISE EXCEPTION '%', consent_model.script(p_seq || op, why) USING ERRCODE = 'PSM01';
            END IF;
            n := n + 1 + consent_model.walk(p_seq || op, p_depth - 1, consent_model.refused(p_refused, before),
                                            invited, p_sample, p_level + 1);
            RAISE EXCEPTION 'undo' USING ERRCODE = 'PSM00';
        EXCEPTION WHEN SQLSTATE 'PSM00' THEN
            NULL;
        END;
    END LOOP;
    RETURN n;
END
$$;

-- Run the seed operations (each must be accepted), then explore.
CREATE FUNCTION consent_model.explore(p_seed int[], p_depth int, p_sample int DEFAULT 100) RETURNS bigint
    LANGUAGE plpgsql AS $$
DECLARE
    op int;
    res text;
    n bigint;
    before jsonb;
    outbox bigint;
    refused text[] := '{}';
    invited text[] := '{}';
BEGIN
    BEGIN
        EXECUTE consent_model.fixture_sql();
        FOREACH op IN ARRAY p_seed LOOP
            before := consent_model.state();
            SELECT coalesce(max(id), 0) INTO outbox FROM popsell.outbox;
            res := consent_model.run_op(op);
            refused := consent_model.refused(refused, before);
            invited := consent_model.invited(invited, outbox);
            IF res <> 'ok' THEN
                RAISE EXCEPTION 'seed operation % was refused (%)', op, res;
            END IF;
        END LOOP;
        n := consent_model.walk(p_seed, p_depth, refused, invited, p_sample);
        RAISE EXCEPTION 'undo' USING ERRCODE = 'PSM00';
    EXCEPTION WHEN SQLSTATE 'PSM00' THEN
        NULL;
    END;
    RETURN n;
END
$$;
