-- popsell upgrade from 1.1 to 2.0 (contract version 2).  Built by make:
-- this file, then src/sql/99_finalize.sql (ownership, privileges, row
-- security and pg_dump registration of every object, idempotent).  A
-- fresh 2.0 and 1.0 -> 1.1 -> 2.0 give the same catalog
-- (sql/801_upgrade.sql checks it).

\echo Use "ALTER EXTENSION popsell UPDATE TO '2.0'" to load this file. \quit

-- Ambassador accounts as the guide describes them (issue 17): signup
-- email confirmation (single-use token, hash stored, settings window,
-- ambassador_unconfirmed retention rule), no active account without a
-- password unless Facebook or SSO, brand-required fields, a notice per
-- ambassador from the pre-GDPR migration, incomplete signups hidden from
-- the brand.  Same definitions as src/sql/07, 09 and 10.

-- ------------------------------------------------------------------
-- Accounts as the guide describes them (signup form): the email is
-- verified by a single-use link before the account opens, a password is
-- needed unless the ambassador signs up with Facebook or SSO, and the
-- brand may require optional fields.
-- ------------------------------------------------------------------
ALTER TABLE popsell.settings
    ADD COLUMN signup_confirmation_window interval NOT NULL DEFAULT '7 days'
        CONSTRAINT settings_signup_confirmation_window_floor
        CHECK (signup_confirmation_window >= '1 day'::interval),
    ADD COLUMN required_ambassador_fields text[] NOT NULL DEFAULT '{}'
        CONSTRAINT settings_required_ambassador_fields_known
        CHECK (required_ambassador_fields OPERATOR(pg_catalog.<@)
               ARRAY['first_name', 'last_name', 'customer_id', 'facebook_id', 'address', 'city',
                     'postal_code', 'country', 'preferred_language', 'birth_date', 'photo_path',
                     'description', 'position', 'iban']);
COMMENT ON COLUMN popsell.settings.signup_confirmation_window IS
    'How long the link of a signup''s confirmation email stays valid (default 7 days, at least 1 day); an unconfirmed signup is deleted by run_maintenance (ambassador_unconfirmed) once it has passed.';
COMMENT ON COLUMN popsell.settings.required_ambassador_fields IS
    'Optional ambassador fields the brand makes required (default none): signup, SSO provisioning and profile updates refuse an account missing one (PS306).';
GRANT UPDATE (signup_confirmation_window, required_ambassador_fields) ON popsell.settings TO popsell_brand;

ALTER TABLE popsell.ambassadors ADD COLUMN email_confirmed_at timestamptz;
COMMENT ON COLUMN popsell.ambassadors.email_confirmed_at IS
    'When the ambassador confirmed the signup email (popsell.confirm_ambassador_email); NULL for SSO accounts (the identity provider vouches) and accounts older than the confirmation.';

-- The pending confirmation of a signup: only the SHA-256 of the token
-- (the token itself travels in the email_confirmation outbox row).  A
-- row here is what makes an account wait for its confirmation.
CREATE TABLE popsell.ambassador_email_tokens (
    ambassador_id bigint PRIMARY KEY REFERENCES popsell.ambassadors (id) ON DELETE CASCADE,
    token_hash    bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL
);
COMMENT ON TABLE popsell.ambassador_email_tokens IS
    'Internal: pending signup confirmations, the SHA-256 of each single-use token (never the token); deleted on confirmation.';

-- The notice the pre-GDPR migration queues for ambassadors.
ALTER TYPE popsell.outbox_kind ADD VALUE 'migration_notice' AFTER 'suspension_notice';

CREATE OR REPLACE FUNCTION popsell._ambassador_to_act_on(p_id bigint, p_roles text[], p_self boolean)
    RETURNS popsell.ambassadors
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a popsell.ambassadors;
    allowed boolean := popsell._caller_in('popsell_owner');
BEGIN
    IF p_id IS NULL THEN
        RAISE EXCEPTION 'ambassador id must not be NULL'
            USING ERRCODE = 'PS200', HINT = 'Pass the id of an existing ambassador.';
    END IF;
    FOR i IN 1 .. coalesce(pg_catalog.array_length(p_roles, 1), 0) LOOP
        allowed := allowed OR popsell._caller_in(p_roles[i]);
    END LOOP;
    IF NOT allowed AND p_self THEN
        allowed := p_id OPERATOR(pg_catalog.=) popsell.current_ambassador_id();
    END IF;
    IF allowed THEN
        SELECT * INTO a FROM popsell.ambassadors WHERE id OPERATOR(pg_catalog.=) p_id FOR UPDATE;
        -- the brand never sees incomplete signups, so they are unknown to it
        IF a.status OPERATOR(pg_catalog.=) 'signup_incomplete'
           AND NOT (popsell._caller_in('popsell_owner') OR popsell._caller_in('popsell_app')
                    OR popsell._caller_in('popsell_account_team') OR popsell._caller_in('popsell_technical'))
           AND popsell._caller_in('popsell_brand') THEN
            a := NULL;
        END IF;
    END IF;
    IF NOT allowed OR a.id IS NULL THEN
        RAISE EXCEPTION 'ambassador % does not exist or is not yours', p_id
            USING ERRCODE = 'PS200',
                  HINT = 'Check the ambassador id and the role or ambassador the session acts as.';
    END IF;
    RETURN a;
END
$$;
COMMENT ON FUNCTION popsell._ambassador_to_act_on(bigint, text[], boolean) IS
    'Internal: the locked ambassador row if the calling role may act on it, else PS200.';

CREATE OR REPLACE FUNCTION popsell.ambassadors_before_row() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- the role running the statement: popsell_owner inside popsell's
    -- functions, else the application's role (this trigger runs as it,
    -- so it calls nothing that role may not execute)
    su boolean := coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r
                             WHERE r.rolname OPERATOR(pg_catalog.=) current_user), false);
    new_j jsonb;
    old_j jsonb;
    profile_changed boolean := false;
    missing text;
BEGIN
    IF su THEN
        IF popsell._restoring() THEN
            RETURN NEW;
        END IF;
    END IF;
    IF TG_TABLE_SCHEMA OPERATOR(pg_catalog.<>) 'popsell' OR TG_TABLE_NAME OPERATOR(pg_catalog.<>) 'ambassadors'
       OR TG_WHEN OPERATOR(pg_catalog.<>) 'BEFORE' OR TG_LEVEL OPERATOR(pg_catalog.<>) 'ROW'
       OR TG_OP NOT IN ('INSERT', 'UPDATE') THEN
        RAISE EXCEPTION 'popsell.ambassadors_before_row must be a BEFORE INSERT OR UPDATE FOR EACH ROW trigger on popsell.ambassadors'
            USING ERRCODE = 'PS900', HINT = 'Drop this trigger; popsell attaches its triggers itself.';
    END IF;
    IF NEW.email IS NOT NULL THEN
        NEW.email := popsell.normalize_email(NEW.email);
    END IF;
    -- History (signup date, last login) is given only by trusted callers
    -- (migrations, SSO sync); anyone else could backdate an ambassador into
    -- the inactivity deletion (SPEC section 5, history columns).
    IF NOT (su OR current_user OPERATOR(pg_catalog.=) 'popsell_owner'
            OR pg_catalog.pg_has_role(current_user, 'popsell_app', 'USAGE')) THEN
        IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
            NEW.created_at := pg_catalog.now();
            NEW.last_login_at := NULL;
        ELSIF NEW.created_at IS DISTINCT FROM OLD.created_at
              OR NEW.last_login_at IS DISTINCT FROM OLD.last_login_at THEN
            RAISE EXCEPTION 'created_at and last_login_at of ambassador % change only through popsell functions', OLD.id
                USING ERRCODE = 'PS105',
                      HINT = 'Logins are recorded with popsell.record_login(id).';
        END IF;
    END IF;
    IF NEW.password_hash IS NOT NULL
       AND (TG_OP OPERATOR(pg_catalog.=) 'INSERT' OR NEW.password_hash IS DISTINCT FROM OLD.password_hash)
       AND NEW.password_hash !~ '^\$2[abxy]\$[0-9]{2}\$[./A-Za-z0-9]{53}$' THEN
        RAISE EXCEPTION 'password_hash of ambassador % must be a bcrypt hash', NEW.id
            USING ERRCODE = 'PS305',
                  DETAIL = 'Plain passwords and other hash schemes are never stored.',
                  HINT = 'Use popsell.set_password(id, password), which hashes with bcrypt.';
    END IF;
    IF NOT su THEN
        -- Fields the brand requires (settings.required_ambassador_fields):
        -- checked on signup and provisioning, and on every update of the
        -- profile (not on the lifecycle's own bookkeeping, so leaving,
        -- logins and retention never fail on them).
        new_j := pg_catalog.to_jsonb(NEW);
        IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
            old_j := pg_catalog.to_jsonb(OLD);
            profile_changed := EXISTS (
                SELECT 1 FROM pg_catalog.unnest(ARRAY['kind', 'first_name', 'last_name', 'customer_id',
                              'facebook_id', 'email', 'address', 'city', 'postal_code', 'country',
                              'preferred_language', 'birth_date', 'photo_path', 'description',
                              'position', 'iban']) AS k
                 WHERE (new_j OPERATOR(pg_catalog.->) k) IS DISTINCT FROM (old_j OPERATOR(pg_catalog.->) k));
        END IF;
        IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' OR profile_changed THEN
            SELECT f INTO missing
              FROM pg_catalog.unnest((SELECT s.required_ambassador_fields FROM popsell.settings s))
                   WITH ORDINALITY AS r(f, n)
             WHERE NULLIF(pg_catalog.btrim(new_j OPERATOR(pg_catalog.->>) f), '') IS NULL
             ORDER BY n
             LIMIT 1;
            IF missing IS NOT NULL THEN
                RAISE EXCEPTION 'field % is required for ambassadors', missing
                    USING ERRCODE = 'PS306',
                          DETAIL = 'The brand requires it (settings.required_ambassador_fields).',
                          HINT = pg_catalog.format('Give a value for %s.', missing);
            END IF;
        END IF;
        -- No active account without a way to log in: a password, unless
        -- the ambassador signs in with Facebook or SSO.
        IF NEW.status OPERATOR(pg_catalog.=) 'active'
           AND NEW.password_hash IS NULL AND NEW.sso_subject IS NULL
           AND NULLIF(NEW.facebook_id, '') IS NULL
           AND (TG_OP OPERATOR(pg_catalog.=) 'INSERT'
                OR OLD.status IS DISTINCT FROM NEW.status
                OR OLD.password_hash IS NOT NULL OR OLD.sso_subject IS NOT NULL
                OR NULLIF(OLD.facebook_id, '') IS NOT NULL) THEN
            RAISE EXCEPTION 'ambassador % needs a password to be active', NEW.id
                USING ERRCODE = 'PS305',
                      DETAIL = 'Only accounts signed up with Facebook or SSO are active without a password.',
                      HINT = 'Set one with popsell.set_password(id, password) first.';
        END IF;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE'
       AND (NEW.status IS DISTINCT FROM OLD.status
            OR NEW.deletion_due_at IS DISTINCT FROM OLD.deletion_due_at
            OR NEW.leaving_reason IS DISTINCT FROM OLD.leaving_reason)
       AND NOT (su OR current_user OPERATOR(pg_catalog.=) 'popsell_owner') THEN
        RAISE EXCEPTION 'status, deletion_due_at and leaving_reason of ambassador % change only through popsell functions', OLD.id
            USING ERRCODE = 'PS105',
                  HINT = 'Use popsell.accept_terms, unsubscribe_ambassador, end_ambassador_contract, restore_ambassador or sso_delete_ambassador.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION popsell.ambassadors_before_row() IS
    'Trigger: ambassadors'' emails normalized, bcrypt-only password hashes (PS305), lifecycle columns moved only by popsell functions (PS105); except for superusers, the brand''s required fields on insert and profile updates (PS306) and no active account without a password unless Facebook or SSO (PS305).';

CREATE OR REPLACE FUNCTION popsell._insert_ambassador(p_email text, p_data jsonb, p_terms boolean, p_sso_subject text)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r popsell.ambassadors := pg_catalog.jsonb_populate_record(NULL::popsell.ambassadors, p_data);
    t timestamptz := popsell._lifecycle_now();
    new_id bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM popsell.ambassadors a WHERE a.email OPERATOR(pg_catalog.=) p_email) THEN
        RAISE EXCEPTION 'an ambassador with this email already exists'
            USING ERRCODE = 'PS304',
                  HINT = 'Log in, or reset the password of the existing account.';
    END IF;
    INSERT INTO popsell.ambassadors (kind, status, created_at, first_name, last_name, customer_id, facebook_id,
                                     email, address, city, postal_code, country, preferred_language,
                                     birth_date, terms_accepted_at, photo_path, description, position, iban,
                                     hide_events, hide_from_community, newsletter_optin, event_notifications,
                                     challenge_notifications, comment_notifications, sso_subject)
    VALUES (coalesce(r.kind, 'customer'),
            CASE WHEN p_terms AND p_sso_subject IS NOT NULL THEN 'active'
                 ELSE 'signup_incomplete' END::popsell.ambassador_status,
            t, r.first_name, r.last_name, r.customer_id, r.facebook_id,
            p_email, r.address, r.city, r.postal_code, r.country, r.preferred_language,
            r.birth_date, CASE WHEN p_terms THEN t END, r.photo_path, r.description, r.position, r.iban,
            coalesce(r.hide_events, false), coalesce(r.hide_from_community, false),
            coalesce(r.newsletter_optin, false), coalesce(r.event_notifications, true),
            coalesce(r.challenge_notifications, true), coalesce(r.comment_notifications, true),
            p_sso_subject)
    RETURNING id INTO new_id;
    RETURN new_id;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'an ambassador with this email, SSO subject or login role already exists'
        USING ERRCODE = 'PS304', HINT = 'Log in, or update the existing account.';
END
$$;
COMMENT ON FUNCTION popsell._insert_ambassador(text, jsonb, boolean, text) IS
    'Internal: insert a new ambassador, signup_incomplete, or active when provisioned by SSO with the terms accepted.';

CREATE FUNCTION popsell._signup_missing(a popsell.ambassadors) RETURNS text[]
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN pg_catalog.array_remove(ARRAY[
        CASE WHEN a.terms_accepted_at IS NULL THEN 'terms' END,
        CASE WHEN EXISTS (SELECT 1 FROM popsell.ambassador_email_tokens t
                           WHERE t.ambassador_id OPERATOR(pg_catalog.=) a.id)
             THEN 'email_confirmation' END,
        CASE WHEN a.password_hash IS NULL AND a.sso_subject IS NULL AND NULLIF(a.facebook_id, '') IS NULL
             THEN 'password' END], NULL);
COMMENT ON FUNCTION popsell._signup_missing(popsell.ambassadors) IS
    'Internal: the steps an ambassador account lacks before it may be active (terms, email_confirmation, password); empty when complete.';

CREATE FUNCTION popsell._activate_if_complete(p_id bigint) RETURNS popsell.ambassador_status
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a popsell.ambassadors;
BEGIN
    SELECT * INTO a FROM popsell.ambassadors WHERE id OPERATOR(pg_catalog.=) p_id FOR UPDATE;
    IF a.status OPERATOR(pg_catalog.=) 'signup_incomplete'
       AND pg_catalog.cardinality(popsell._signup_missing(a)) OPERATOR(pg_catalog.=) 0 THEN
        UPDATE popsell.ambassadors SET status = 'active' WHERE id OPERATOR(pg_catalog.=) p_id;
        RETURN 'active';
    END IF;
    RETURN a.status;
END
$$;
COMMENT ON FUNCTION popsell._activate_if_complete(bigint) IS
    'Internal: make an incomplete signup active when it lacks nothing (terms, email confirmation, password); returns the status.';

CREATE FUNCTION popsell.confirm_ambassador_email(token text) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a popsell.ambassadors;
    aid bigint;
    made timestamptz;
    win interval := (SELECT s.signup_confirmation_window FROM popsell.settings s);
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_app', 'popsell_account_team', 'popsell_technical'],
                                    'popsell.confirm_ambassador_email');
    IF confirm_ambassador_email.token IS NULL
       OR pg_catalog.octet_length(confirm_ambassador_email.token) OPERATOR(pg_catalog.>) 256 THEN
        RAISE EXCEPTION 'a confirmation token is a string of at most 256 bytes'
            USING ERRCODE = 'PS307', HINT = 'Pass the token of the confirmation link as received.';
    END IF;
    SELECT t.created_at, t.ambassador_id INTO made, aid
      FROM popsell.ambassador_email_tokens t
     WHERE t.token_hash OPERATOR(pg_catalog.=)
           pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.btrim(confirm_ambassador_email.token), 'UTF8'))
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'this confirmation token is unknown or was already used'
            USING ERRCODE = 'PS307',
                  HINT = 'A token works once; an account that is already confirmed can log in.';
    END IF;
    SELECT * INTO a FROM popsell.ambassadors WHERE id OPERATOR(pg_catalog.=) aid FOR UPDATE;
    IF made OPERATOR(pg_catalog.+) win OPERATOR(pg_catalog.<=) popsell._lifecycle_now() THEN
        RAISE EXCEPTION 'this confirmation token has expired'
            USING ERRCODE = 'PS307',
                  DETAIL = pg_catalog.format('It was valid until %s (settings.signup_confirmation_window).',
                                             made OPERATOR(pg_catalog.+) win),
                  HINT = 'The unconfirmed signup is deleted by the next maintenance run; sign up again.';
    END IF;
    PERFORM popsell._refuse_leaving(a);
    DELETE FROM popsell.ambassador_email_tokens t WHERE t.ambassador_id OPERATOR(pg_catalog.=) a.id;
    UPDATE popsell.ambassadors SET email_confirmed_at = popsell._lifecycle_now()
     WHERE id OPERATOR(pg_catalog.=) a.id;
    PERFORM popsell._activate_if_complete(a.id);
    RETURN a.id;
END
$$;
COMMENT ON FUNCTION popsell.confirm_ambassador_email(text) IS
    'The ambassador followed the link of the signup''s confirmation email: the single-use token (compared by its SHA-256) confirms the address; the account becomes active if the terms are accepted and a password is set (or Facebook). PS307 for an unknown, used or expired token (settings.signup_confirmation_window). For the app and vendor staff. Returns the ambassador id.';

CREATE OR REPLACE FUNCTION popsell.signup(email text, data jsonb DEFAULT '{}', password text DEFAULT NULL,
                               terms_accepted boolean DEFAULT false)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e text;
    ph text;
    new_id bigint;
    tok text;
    t timestamptz := popsell._lifecycle_now();
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_app', 'popsell_account_team', 'popsell_technical'],
                                    'popsell.signup');
    IF (SELECT s.sso_exclusive FROM popsell.settings s) THEN
        RAISE EXCEPTION 'signup is only possible through SSO'
            USING ERRCODE = 'PS303',
                  DETAIL = 'The brand set settings.sso_exclusive.',
                  HINT = 'Sign up through the brand''s single sign-on (popsell.sso_upsert_ambassador).';
    END IF;
    IF signup.email IS NULL OR pg_catalog.btrim(signup.email) OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'an email is required to sign up'
            USING ERRCODE = 'PS202', HINT = 'Pass the ambassador''s email address.';
    END IF;
    e := popsell.normalize_email(signup.email);
    PERFORM popsell._check_ambassador_data(coalesce(signup.data, '{}'), '{}');
    IF NOT popsell._whitelisted(e, signup.data ->> 'customer_id') THEN
        RAISE EXCEPTION 'this email or customer id is not on the registration whitelist'
            USING ERRCODE = 'PS302',
                  DETAIL = 'The brand allows only whitelisted emails and customer ids to sign up.',
                  HINT = 'Ask the brand to whitelist the address or customer id.';
    END IF;
    IF signup.password IS NOT NULL THEN
        ph := popsell._hash_password(signup.password);
    END IF;
    new_id := popsell._insert_ambassador(e, coalesce(signup.data, '{}'),
                                         coalesce(signup.terms_accepted, false), NULL);
    UPDATE popsell.ambassadors SET password_hash = ph
     WHERE id OPERATOR(pg_catalog.=) new_id AND ph IS NOT NULL;
    -- The address is verified before the account opens: a single-use
    -- token (two random UUIDs, 244 random bits) goes out in the
    -- confirmation email, only its hash is kept.
    tok := pg_catalog.replace(pg_catalog.gen_random_uuid()::text OPERATOR(pg_catalog.||)
                              pg_catalog.gen_random_uuid()::text, '-', '');
    INSERT INTO popsell.ambassador_email_tokens (ambassador_id, token_hash, created_at)
    VALUES (new_id, pg_catalog.sha256(pg_catalog.convert_to(tok, 'UTF8')), t);
    INSERT INTO popsell.outbox (kind, ambassador_id, payload, created_at)
    VALUES ('email_confirmation', new_id,
            pg_catalog.jsonb_build_object('purpose', 'ambassador_signup', 'token', tok,
                                          'expires_at', t OPERATOR(pg_catalog.+)
                                              (SELECT s.signup_confirmation_window FROM popsell.settings s)),
            t);
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION popsell.signup(text, jsonb, text, boolean) IS
    'Sign an ambassador up (registration whitelist, sso_exclusive and settings.required_ambassador_fields respected): the account stays signup_incomplete, with no access, until the email is confirmed (an email_confirmation outbox row carries a single-use token for popsell.confirm_ambassador_email, valid settings.signup_confirmation_window), the terms are accepted and, unless data.facebook_id is given, a password is set. Returns the id.';

CREATE OR REPLACE FUNCTION popsell.accept_terms(ambassador_id bigint) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a popsell.ambassadors := popsell._ambassador_to_act_on(
        accept_terms.ambassador_id, ARRAY['popsell_app', 'popsell_account_team', 'popsell_technical'], false);
BEGIN
    PERFORM popsell._refuse_leaving(a);
    UPDATE popsell.ambassadors
       SET terms_accepted_at = coalesce(terms_accepted_at, popsell._lifecycle_now())
     WHERE id OPERATOR(pg_catalog.=) a.id;
    PERFORM popsell._activate_if_complete(a.id);
END
$$;
COMMENT ON FUNCTION popsell.accept_terms(bigint) IS
    'The ambassador accepts the terms and conditions: an incomplete signup becomes active once its email is confirmed and it has a password (or Facebook/SSO).';

CREATE OR REPLACE FUNCTION popsell.set_password(ambassador_id bigint, password text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a popsell.ambassadors := popsell._ambassador_to_act_on(
        set_password.ambassador_id, ARRAY['popsell_app', 'popsell_account_team', 'popsell_technical'], true);
BEGIN
    PERFORM popsell._refuse_leaving(a);
    UPDATE popsell.ambassadors SET password_hash = popsell._hash_password(set_password.password)
     WHERE id OPERATOR(pg_catalog.=) a.id;
    PERFORM popsell._activate_if_complete(a.id);
END
$$;
COMMENT ON FUNCTION popsell.set_password(bigint, text) IS
    'Store the bcrypt hash of an ambassador''s new password (cost settings.bcrypt_cost; the plain password is never stored); an incomplete signup that only lacked it becomes active.';

CREATE OR REPLACE FUNCTION popsell.record_login(ambassador_id bigint) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a popsell.ambassadors := popsell._ambassador_to_act_on(
        record_login.ambassador_id, ARRAY['popsell_app', 'popsell_technical'], false);
BEGIN
    PERFORM popsell._refuse_leaving(a);
    IF a.status OPERATOR(pg_catalog.<>) 'active' THEN
        RAISE EXCEPTION 'ambassador % has not completed the signup', a.id
            USING ERRCODE = 'PS300',
                  DETAIL = pg_catalog.format('An incomplete signup has no access; missing: %s.',
                                             pg_catalog.array_to_string(popsell._signup_missing(a), ', ')),
                  HINT = 'Complete it with popsell.confirm_ambassador_email(), accept_terms() and set_password().';
    END IF;
    -- a login cancels the inactivity warnings
    UPDATE popsell.ambassadors
       SET last_login_at = popsell._lifecycle_now(), inactivity_warnings_sent = 0,
           last_inactivity_warning_at = NULL
     WHERE id OPERATOR(pg_catalog.=) a.id;
END
$$;
COMMENT ON FUNCTION popsell.record_login(bigint) IS
    'Record a login of an active ambassador (cancels inactivity warnings); PS300 for a leaving or incomplete account.';

CREATE OR REPLACE FUNCTION popsell.restore_ambassador(ambassador_id bigint) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a popsell.ambassadors := popsell._ambassador_to_act_on(
        restore_ambassador.ambassador_id,
        ARRAY['popsell_brand', 'popsell_account_team', 'popsell_technical'], false);
BEGIN
    IF a.status OPERATOR(pg_catalog.<>) 'leaving' THEN
        RAISE EXCEPTION 'ambassador % is not leaving', a.id
            USING ERRCODE = 'PS300',
                  DETAIL = pg_catalog.format('Its status is %s.', a.status),
                  HINT = 'Only an unsubscribed, ended or SSO-deleted account in its grace period can be restored.';
    END IF;
    IF a.deletion_due_at OPERATOR(pg_catalog.<=) popsell._lifecycle_now() THEN
        RAISE EXCEPTION 'the grace period of ambassador % is over', a.id
            USING ERRCODE = 'PS301',
                  DETAIL = pg_catalog.format('It ended at %s.', a.deletion_due_at),
                  HINT = 'The account is deleted by the next maintenance run and cannot be restored.';
    END IF;
    UPDATE popsell.ambassadors
       SET status = CASE WHEN pg_catalog.cardinality(popsell._signup_missing(a)) OPERATOR(pg_catalog.=) 0
                         THEN 'active' ELSE 'signup_incomplete' END::popsell.ambassador_status,
           leaving_reason = NULL, deletion_due_at = NULL
     WHERE id OPERATOR(pg_catalog.=) a.id;
END
$$;
COMMENT ON FUNCTION popsell.restore_ambassador(bigint) IS
    'Roll back an unsubscription, end of contract or SSO deletion before the grace period ends (PS301 after): back to active, or signup_incomplete when the signup was not complete.';

CREATE OR REPLACE FUNCTION popsell.apply_pre_gdpr_migration()
    RETURNS TABLE (optin_other bigint, kept_new bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'migration'
AS $$
DECLARE
    t timestamptz := popsell._lifecycle_now();
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_technical'], 'popsell.apply_pre_gdpr_migration');
    -- Candidates: still new, no consent event besides the INSERT's own
    -- ledger row (which has no old values), not handled by an earlier run.
    WITH cand AS (
        SELECT c.id,
               (c.last_activity_at IS NOT NULL
                OR EXISTS (SELECT 1 FROM popsell.interactions i
                            WHERE i.contact_id OPERATOR(pg_catalog.=) c.id
                              AND i.kind OPERATOR(pg_catalog.<>) 'open')
                OR EXISTS (SELECT 1 FROM popsell.sales s
                            WHERE s.contact_id OPERATOR(pg_catalog.=) c.id)) AS active
          FROM popsell.contacts c
         WHERE c.ambassador_optin OPERATOR(pg_catalog.=) 'new'
           AND NOT EXISTS (SELECT 1 FROM popsell.pre_gdpr_migrated m
                            WHERE m.contact_id OPERATOR(pg_catalog.=) c.id)
           AND NOT EXISTS (SELECT 1 FROM popsell.consent_events ce
                            WHERE ce.contact_id OPERATOR(pg_catalog.=) c.id
                              AND pg_catalog.num_nonnulls(ce.old_ambassador_optin, ce.old_brand_optin,
                                                          ce.old_partners_optin, ce.old_email_status)
                                  OPERATOR(pg_catalog.>) 0)
           FOR UPDATE OF c),
    upd_other AS (
        UPDATE popsell.contacts c SET ambassador_optin = 'optin_other'
          FROM cand WHERE c.id OPERATOR(pg_catalog.=) cand.id AND cand.active
        RETURNING c.id, c.ambassador_id),
    upd_new AS (
        UPDATE popsell.contacts c SET ambassador_optin_at = t
          FROM cand WHERE c.id OPERATOR(pg_catalog.=) cand.id AND NOT cand.active
        RETURNING c.id, c.ambassador_id),
    -- the guide: ambassadors are warned of the process; one notice per
    -- active ambassador whose contacts changed, counts and dates only
    notices AS (
        INSERT INTO popsell.outbox (kind, ambassador_id, payload, created_at)
        SELECT 'migration_notice', a.id,
               pg_catalog.jsonb_build_object(
                   'migrated_at', t,
                   'optin_other', pg_catalog.count(*) FILTER (WHERE ch.result OPERATOR(pg_catalog.=) 'optin_other'),
                   'kept_new', pg_catalog.count(*) FILTER (WHERE ch.result OPERATOR(pg_catalog.=) 'new'),
                   'invite_before', t OPERATOR(pg_catalog.+)
                       (SELECT s.new_contact_invitation_window FROM popsell.settings s)),
               t
          FROM (SELECT ambassador_id, 'optin_other'::text AS result FROM upd_other
                UNION ALL
                SELECT ambassador_id, 'new'::text FROM upd_new) AS ch
          JOIN popsell.ambassadors a ON a.id OPERATOR(pg_catalog.=) ch.ambassador_id
         WHERE a.status OPERATOR(pg_catalog.=) 'active'
         GROUP BY a.id),
    marked AS (
        INSERT INTO popsell.pre_gdpr_migrated (contact_id, migrated_at, result)
        SELECT id, t, 'optin_other'::popsell.ambassador_optin FROM upd_other
        UNION ALL
        SELECT id, t, 'new'::popsell.ambassador_optin FROM upd_new
        RETURNING result)
    SELECT pg_catalog.count(*) FILTER (WHERE result OPERATOR(pg_catalog.=) 'optin_other'),
           pg_catalog.count(*) FILTER (WHERE result OPERATOR(pg_catalog.=) 'new')
      INTO optin_other, kept_new
      FROM marked;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION popsell.apply_pre_gdpr_migration() IS
    'Pre-GDPR migration, once per contact: new contacts with no consent event but their insert get optin_other when they had activity (last_activity_at, an interaction other than open, a sale); the others stay new with their clock (ambassador_optin_at) starting now. Every active ambassador whose contacts it changed gets one migration_notice outbox row (counts and dates only).';

GRANT EXECUTE ON FUNCTION popsell.confirm_ambassador_email(text)
    TO popsell_app, popsell_account_team, popsell_technical;

CREATE OR REPLACE FUNCTION popsell.maintenance_rules()
    RETURNS SETOF text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN pg_catalog.unnest(ARRAY['ambassador_leaving', 'ambassador_inactive', 'ambassador_unconfirmed',
                                   'contact_never_invited',
                                   'invitation_reminder', 'invitation_no_response', 'email_unconfirmed',
                                   'contact_opted_out', 'contact_inactive', 'program_suspended',
                                   'brand_contract_ended', 'contest_ugc', 'logs']);
COMMENT ON FUNCTION popsell.maintenance_rules() IS
    'The retention rules of popsell.run_maintenance, in the order they run.';

CREATE OR REPLACE FUNCTION popsell._maintenance_rule(p_rule text, p_at timestamptz, p_preview boolean)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s popsell.settings;
    n bigint := 0;
    m bigint := 0;
    mark bigint;
    wi interval;
    wn integer;
BEGIN
    SELECT * INTO STRICT s FROM popsell.settings;
    wi := s.inactivity_warning_interval;
    wn := s.inactivity_warnings;

    CASE p_rule
    WHEN 'ambassador_leaving' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.ambassadors a
             WHERE a.deletion_due_at IS NOT NULL AND a.deletion_due_at <= p_at;
        ELSE
            mark := popsell._erasure_push('ambassador_leaving', true);
            DELETE FROM popsell.ambassadors a
             WHERE a.deletion_due_at IS NOT NULL AND a.deletion_due_at <= p_at;
            GET DIAGNOSTICS n = ROW_COUNT;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'ambassador_inactive' THEN
        -- deadline = coalesce(last_login_at, created_at) + ambassador_inactivity.
        -- Warnings count only when queued after the last login (a login
        -- cancels).  Warning k of N is due at deadline - (N-k+1) intervals,
        -- and never sooner than one interval after the previous one; the
        -- deletion comes at the deadline once all N are queued, and never
        -- sooner than one interval after the last.
        IF p_preview THEN
            SELECT count(*) INTO n
              FROM popsell.ambassadors a
              CROSS JOIN LATERAL (SELECT coalesce(a.last_login_at, a.created_at) AS base,
                                         CASE WHEN a.last_inactivity_warning_at > coalesce(a.last_login_at, a.created_at)
                                              THEN a.inactivity_warnings_sent ELSE 0 END AS sent) w
             WHERE coalesce(a.last_login_at, a.created_at) <= p_at - s.ambassador_inactivity + wn * wi
               AND a.status <> 'leaving'
               AND (   (w.sent >= wn AND w.base + s.ambassador_inactivity <= p_at
                        AND (wn = 0 OR a.last_inactivity_warning_at + wi <= p_at))
                    OR (w.sent < wn
                        AND w.base + s.ambassador_inactivity - (wn - w.sent) * wi <= p_at
                        AND (w.sent = 0 OR a.last_inactivity_warning_at + wi <= p_at)));
        ELSE
            mark := popsell._erasure_push('ambassador_inactive', true);
            DELETE FROM popsell.ambassadors a
             WHERE coalesce(a.last_login_at, a.created_at) <= p_at - s.ambassador_inactivity
               AND a.status <> 'leaving'
               AND (wn = 0
                    OR (a.last_inactivity_warning_at > coalesce(a.last_login_at, a.created_at)
                        AND a.inactivity_warnings_sent >= wn
                        AND a.last_inactivity_warning_at + wi <= p_at));
            GET DIAGNOSTICS n = ROW_COUNT;
            PERFORM popsell._erasure_pop(mark);
            IF wn > 0 THEN
                WITH due AS (
                    SELECT a.id, w.sent + 1 AS k,
                           w.base + s.ambassador_inactivity AS deadline
                      FROM popsell.ambassadors a
                      CROSS JOIN LATERAL (SELECT coalesce(a.last_login_at, a.created_at) AS base,
                                                 CASE WHEN a.last_inactivity_warning_at > coalesce(a.last_login_at, a.created_at)
                                                      THEN a.inactivity_warnings_sent ELSE 0 END AS sent) w
                     WHERE coalesce(a.last_login_at, a.created_at) <= p_at - s.ambassador_inactivity + wn * wi
                       AND a.status <> 'leaving'
                       AND w.sent < wn
                       AND w.base + s.ambassador_inactivity - (wn - w.sent) * wi <= p_at
                       AND (w.sent = 0 OR a.last_inactivity_warning_at + wi <= p_at)
                       FOR UPDATE OF a),
                q AS (
                    INSERT INTO popsell.outbox (kind, ambassador_id, payload, created_at)
                    SELECT 'inactivity_warning', d.id,
                           jsonb_build_object('warning', d.k, 'of', wn,
                                              'deletion_not_before', greatest(d.deadline, p_at + wi)),
                           p_at
                      FROM due d
                    RETURNING ambassador_id)
                UPDATE popsell.ambassadors a
                   SET inactivity_warnings_sent = d.k, last_inactivity_warning_at = p_at
                  FROM due d
                 WHERE a.id = d.id;
                GET DIAGNOSTICS m = ROW_COUNT;
                n := n + m;
            END IF;
        END IF;

    WHEN 'ambassador_unconfirmed' THEN
        -- signups whose confirmation link expired unused
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.ambassadors a
             WHERE a.status = 'signup_incomplete'
               AND EXISTS (SELECT 1 FROM popsell.ambassador_email_tokens t
                            WHERE t.ambassador_id = a.id
                              AND t.created_at <= p_at - s.signup_confirmation_window);
        ELSE
            mark := popsell._erasure_push('ambassador_unconfirmed', true);
            DELETE FROM popsell.ambassadors a
             WHERE a.status = 'signup_incomplete'
               AND EXISTS (SELECT 1 FROM popsell.ambassador_email_tokens t
                            WHERE t.ambassador_id = a.id
                              AND t.created_at <= p_at - s.signup_confirmation_window);
            GET DIAGNOSTICS n = ROW_COUNT;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'contact_never_invited' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE c.ambassador_optin = 'new'
               AND c.ambassador_optin_at <= p_at - s.new_contact_invitation_window
               AND c.brand_optin = 'no_optin' AND NOT c.partners_optin;
        ELSE
            mark := popsell._erasure_push('contact_never_invited', false);
            DELETE FROM popsell.contacts c
             WHERE c.ambassador_optin = 'new'
               AND c.ambassador_optin_at <= p_at - s.new_contact_invitation_window
               AND c.brand_optin = 'no_optin' AND NOT c.partners_optin;
            GET DIAGNOSTICS n = ROW_COUNT;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'invitation_reminder' THEN
        -- Only contacts the sending guard lets receive it; the others are
        -- not marked and become optout_no_response at two windows.
        IF p_preview THEN
            SELECT count(*) INTO n
              FROM popsell.contacts c
              JOIN popsell.ambassadors a ON a.id = c.ambassador_id AND a.status = 'active'
             WHERE c.ambassador_optin = 'invitation_sent'
               AND c.invitation_sent_at <= p_at - s.invitation_response_window
               AND c.invitation_sent_at > p_at - 2 * s.invitation_response_window
               AND (c.reminder_sent_at IS NULL OR c.reminder_sent_at < c.invitation_sent_at)
               AND c.email IS NOT NULL AND c.email_status = 'ok' AND NOT c.restricted;
        ELSE
            WITH due AS (
                SELECT c.id, c.ambassador_id, c.invitation_sent_at
                  FROM popsell.contacts c
                  JOIN popsell.ambassadors a ON a.id = c.ambassador_id AND a.status = 'active'
                 WHERE c.ambassador_optin = 'invitation_sent'
                   AND c.invitation_sent_at <= p_at - s.invitation_response_window
                   AND c.invitation_sent_at > p_at - 2 * s.invitation_response_window
                   AND (c.reminder_sent_at IS NULL OR c.reminder_sent_at < c.invitation_sent_at)
                   AND c.email IS NOT NULL AND c.email_status = 'ok' AND NOT c.restricted
                   FOR UPDATE OF c),
            q AS (
                INSERT INTO popsell.outbox (kind, ambassador_id, contact_id, payload, created_at)
                SELECT 'invitation_reminder', d.ambassador_id, d.id,
                       jsonb_build_object('invitation_sent_at', d.invitation_sent_at), p_at
                  FROM due d
                RETURNING contact_id)
            UPDATE popsell.contacts c SET reminder_sent_at = p_at
              FROM q WHERE c.id = q.contact_id;
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;

    WHEN 'invitation_no_response' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE c.ambassador_optin = 'invitation_sent'
               AND c.invitation_sent_at <= p_at - 2 * s.invitation_response_window;
        ELSE
            UPDATE popsell.contacts c SET ambassador_optin = 'optout_no_response'
             WHERE c.ambassador_optin = 'invitation_sent'
               AND c.invitation_sent_at <= p_at - 2 * s.invitation_response_window;
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;

    WHEN 'email_unconfirmed' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE c.email_confirmed_at IS NULL
               AND c.source IN ('blog', 'blog_internal_form', 'store_purchase')
               AND c.created_at <= p_at - s.email_confirmation_window;
        ELSE
            mark := popsell._erasure_push('email_unconfirmed', false);
            DELETE FROM popsell.contacts c
             WHERE c.email_confirmed_at IS NULL
               AND c.source IN ('blog', 'blog_internal_form', 'store_purchase')
               AND c.created_at <= p_at - s.email_confirmation_window;
            GET DIAGNOSTICS n = ROW_COUNT;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'contact_opted_out' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE c.ambassador_optin IN ('invitation_declined', 'optout_email', 'optout_no_response',
                                          'global_optout', 'optin_blog_pending')
               AND c.ambassador_optin_at <= p_at - s.optout_retention
               AND c.brand_optin = 'no_optin' AND NOT c.partners_optin;
        ELSE
            mark := popsell._erasure_push('contact_opted_out', true);
            DELETE FROM popsell.contacts c
             WHERE c.ambassador_optin IN ('invitation_declined', 'optout_email', 'optout_no_response',
                                          'global_optout', 'optin_blog_pending')
               AND c.ambassador_optin_at <= p_at - s.optout_retention
               AND c.brand_optin = 'no_optin' AND NOT c.partners_optin;
            GET DIAGNOSTICS n = ROW_COUNT;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'contact_inactive' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE c.ambassador_optin NOT IN ('invitation_declined', 'optout_email', 'optout_no_response',
                                              'global_optout', 'optin_blog_pending')
               AND c.source <> 'brand_sync'
               AND greatest(c.last_activity_at, c.ambassador_optin_at, c.created_at)
                   <= p_at - s.contact_inactivity;
        ELSE
            mark := popsell._erasure_push('contact_inactive', true);
            DELETE FROM popsell.contacts c
             WHERE c.ambassador_optin NOT IN ('invitation_declined', 'optout_email', 'optout_no_response',
                                              'global_optout', 'optin_blog_pending')
               AND c.source <> 'brand_sync'
               AND greatest(c.last_activity_at, c.ambassador_optin_at, c.created_at)
                   <= p_at - s.contact_inactivity;
            GET DIAGNOSTICS n = ROW_COUNT;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'program_suspended', 'brand_contract_ended' THEN
        IF (p_rule = 'program_suspended'
            AND s.program_suspended_at IS NOT NULL AND s.program_suspended_at + s.suspension_max <= p_at)
           OR (p_rule = 'brand_contract_ended'
               AND s.brand_contract_ended_at IS NOT NULL AND s.brand_contract_ended_at + s.deletion_grace <= p_at) THEN
            n := popsell._erase_all_personal_data(p_rule, p_at, p_preview);
        END IF;

    WHEN 'contest_ugc' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.ugc u
             WHERE u.ambassador_id IS NULL
               AND NOT EXISTS (SELECT 1 FROM popsell.contests k
                                WHERE k.id = u.contest_id AND k.reuse_until > p_at);
        ELSE
            WITH u AS (
                DELETE FROM popsell.ugc u
                 WHERE u.ambassador_id IS NULL
                   AND NOT EXISTS (SELECT 1 FROM popsell.contests k
                                    WHERE k.id = u.contest_id AND k.reuse_until > p_at)
                RETURNING u.id, u.file_path)
            INSERT INTO popsell.outbox (kind, payload, created_at)
            SELECT 'delete_file', jsonb_build_object('file_path', u.file_path, 'what', 'ugc', 'ugc_id', u.id), p_at
              FROM u;
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;

    WHEN 'logs' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.activity_log l WHERE l.created_at < p_at - s.log_retention;
            SELECT count(*) INTO m FROM popsell.maintenance_runs r
             WHERE r.finished_at < p_at - s.log_retention AND r.as_of < p_at - s.log_retention;
        ELSE
            DELETE FROM popsell.activity_log l WHERE l.created_at < p_at - s.log_retention;
            GET DIAGNOSTICS n = ROW_COUNT;
            -- (as_of too: this run's own rows, stamped by the wall clock, stay)
            DELETE FROM popsell.maintenance_runs r
             WHERE r.finished_at < p_at - s.log_retention AND r.as_of < p_at - s.log_retention;
            GET DIAGNOSTICS m = ROW_COUNT;
        END IF;
        n := n + m;

    ELSE
        RAISE EXCEPTION 'unknown maintenance rule "%"', p_rule
            USING ERRCODE = 'PS500', HINT = 'See SELECT * FROM popsell.maintenance_rules().';
    END CASE;
    RETURN n;
END
$$;
COMMENT ON FUNCTION popsell._maintenance_rule(text, timestamptz, boolean) IS
    'Internal: apply (or, with preview, count) one retention rule as of a time; returns the rows acted on.';

DROP POLICY popsell_brand_select ON popsell.ambassadors;
DROP POLICY popsell_brand_update ON popsell.ambassadors;
CREATE POLICY popsell_brand_select ON popsell.ambassadors FOR SELECT TO popsell_brand
    USING (status OPERATOR(pg_catalog.<>) 'signup_incomplete'::popsell.ambassador_status);
COMMENT ON POLICY popsell_brand_select ON popsell.ambassadors IS
    'The brand sees every ambassador who completed the signup (not signup_incomplete), without secrets (column grants: no password hash).';
CREATE POLICY popsell_brand_update ON popsell.ambassadors FOR UPDATE TO popsell_brand
    USING (status OPERATOR(pg_catalog.<>) 'signup_incomplete'::popsell.ambassador_status) WITH CHECK (true);
COMMENT ON POLICY popsell_brand_update ON popsell.ambassadors IS
    'Brand support agents rectify ambassador profiles (column grants say which fields).';

CREATE OR REPLACE VIEW popsell.bi_ambassadors WITH (security_barrier = true) AS
SELECT a.id, a.kind, a.status, a.created_at, a.first_name, a.last_name, a.customer_id,
       a.email, a.city, a.postal_code, a.country, a.preferred_language, a.terms_accepted_at,
       a.position, a.hide_from_community, a.newsletter_optin, a.last_login_at,
       a.leaving_reason, a.deletion_due_at
  FROM popsell.ambassadors a
 WHERE (SELECT popsell._caller_in('popsell_brand_bi'))
   AND a.status OPERATOR(pg_catalog.<>) 'signup_incomplete'::popsell.ambassador_status;
COMMENT ON VIEW popsell.bi_ambassadors IS
    'BI: ambassadors who completed the signup, without secrets (no password hash, IBAN or IP data), read-only, for popsell_brand_bi.';
-- The compliance report (issue 18): popsell.compliance_report(at) and its
-- helpers, rights_requests.received_at.  Same definitions as
-- src/sql/13_report.sql (all new objects).

-- When a data-subject request reached the brand (the functions record it
-- when it is carried out): staff fill it in so the report can show the
-- time from request to completion (GDPR art. 12(3): one month).
ALTER TABLE popsell.rights_requests
    ADD COLUMN received_at timestamptz
        CONSTRAINT rights_requests_received_before_done
        CHECK (received_at IS NULL OR received_at OPERATOR(pg_catalog.<=) requested_at);
COMMENT ON COLUMN popsell.rights_requests.received_at IS
    'When the person''s request reached the brand (staff set it; NULL: the day it was carried out). The compliance report''s time to completion is requested_at - received_at.';
GRANT UPDATE (received_at) ON popsell.rights_requests TO popsell_account_team, popsell_technical;
CREATE POLICY rights_requests_staff_received ON popsell.rights_requests
    FOR UPDATE TO popsell_account_team, popsell_technical USING (true) WITH CHECK (true);
COMMENT ON POLICY rights_requests_staff_received ON popsell.rights_requests IS
    'Vendor staff record when a request was received (column grant: received_at only).';

-- Text made safe for HTML content and attribute values.
CREATE FUNCTION popsell._html(p text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
               coalesce(p, ''), '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'), '''', '&#39;');
COMMENT ON FUNCTION popsell._html(text) IS
    'Internal: text escaped for HTML (&, <, >, quotes); NULL gives the empty string.';

-- One figure of the report: a table cell (or a span) holding the value,
-- marked with its key.
CREATE FUNCTION popsell._report_fig(p_key text, p_value text, p_tag text DEFAULT 'td') RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN pg_catalog.format('<%s class="n" data-figure="%s">%s</%s>', p_tag, popsell._html(p_key),
                             popsell._html(p_value), p_tag);
COMMENT ON FUNCTION popsell._report_fig(text, text, text) IS
    'Internal: a figure of the compliance report in a cell (or other tag) marked data-figure="key".';

-- A rate in percent with one decimal, or "n/a" when the base is zero.
CREATE FUNCTION popsell._report_rate(p_part bigint, p_whole bigint) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN CASE WHEN coalesce(p_whole, 0) OPERATOR(pg_catalog.=) 0 THEN 'n/a'
                ELSE pg_catalog.round(100.0 OPERATOR(pg_catalog.*) p_part
                                      OPERATOR(pg_catalog./) p_whole, 1)::text OPERATOR(pg_catalog.||) '%' END;
COMMENT ON FUNCTION popsell._report_rate(bigint, bigint) IS
    'Internal: PART / WHOLE in percent with one decimal, n/a when WHOLE is 0 or NULL.';

CREATE FUNCTION popsell.compliance_report(at timestamptz DEFAULT pg_catalog.now()) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET datestyle = 'ISO, YMD'
    SET intervalstyle = 'postgres'
    SET timezone = 'UTC'
    -- its statements (and the rules' counts) run in PL/pgSQL, where a
    -- parallel plan runs without workers: plan them serial
    SET max_parallel_workers_per_gather = 0
AS $$
DECLARE
    p_at timestamptz := compliance_report.at;
    since timestamptz;
    s popsell.settings;
    h text := '';
    measures text[] := ARRAY['collected', 'invited', 'accepted', 'declined', 'no_answer', 'opted_out',
                             'global_optout'];
    measure_names text[] := ARRAY['collected', 'invited', 'accepted', 'declined', 'no answer',
                                  'opted out', 'globally opted out'];
    colors text[] := ARRAY['#5b6770', '#2f6db5', '#2e9d57', '#d9822b', '#b8a23a', '#c2453d', '#7d3c98'];
    f record;
    r record;
    srcs text[];
    fm bigint[];
    n_contacts bigint;
    n_brand bigint;
    n_partners bigint;
    n_restricted bigint;
    run_ids bigint[];
    run_asof timestamptz[];
    run_started timestamptz[];
    run_ms numeric[];
    run_aff bigint[];
    run_fail bigint[];
    maxms numeric;
    maxv bigint;
    y integer;
    n integer;
    svg text;
    rules text[];
    horizons integer[] := ARRAY[30, 90, 365];
    cnt bigint[];
    tot bigint[] := ARRAY[0, 0, 0, 0, 0, 0, 0]::bigint[];
BEGIN
    IF p_at IS NULL OR NOT pg_catalog.isfinite(p_at) THEN
        RAISE EXCEPTION 'compliance_report needs a finite time, not %', coalesce(p_at::text, 'NULL')
            USING ERRCODE = 'PS106', HINT = 'Call popsell.compliance_report() (now) or pass a timestamptz.';
    END IF;
    since := p_at - interval '12 months';
    SELECT * INTO STRICT s FROM popsell.settings;

    h := '<!DOCTYPE html>' || E'\n' || '<html lang="en"><head><meta charset="utf-8">'
      || '<meta name="viewport" content="width=device-width, initial-scale=1">'
      || '<title>popsell compliance report</title><style>'
      || 'body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;'
      || 'color:#1d2731;background:#fff;margin:0 auto;max-width:1000px;padding:24px;line-height:1.45}'
      || 'h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.2em;margin:28px 0 8px;padding-bottom:4px;'
      || 'border-bottom:2px solid #2f6db5}p.meta{color:#5b6770;margin:0 0 12px}'
      || 'table{border-collapse:collapse;margin:8px 0 12px;font-size:.9em}'
      || 'th,td{border:1px solid #d5dbe1;padding:3px 8px;text-align:left}th{background:#eef2f6}'
      || 'td.n{text-align:right;font-variant-numeric:tabular-nums}'
      || '.cards{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}'
      || '.card{border:1px solid #d5dbe1;border-radius:6px;padding:8px 14px;min-width:150px;background:#f7f9fb}'
      || '.card .n{display:block;font-size:1.5em;font-weight:600;color:#2f6db5}'
      || '.card .l{color:#5b6770;font-size:.85em}svg{display:block;margin:8px 0}'
      || 'ul.ropa li{margin:4px 0}.warn{color:#c2453d;font-weight:600}'
      || '</style></head><body>' || E'\n';
    h := h || '<h1>Compliance report: ' || popsell._html(coalesce(s.brand_name, 'this brand')) || '</h1>'
      || '<p class="meta">As of ' || popsell._report_fig('report.at', pg_catalog.to_char(p_at, 'YYYY-MM-DD HH24:MI "UTC"'), 'span')
      || '; consent and rights figures cover the 12 months since '
      || popsell._report_fig('report.since', pg_catalog.to_char(since, 'YYYY-MM-DD HH24:MI "UTC"'), 'span')
      || '. popsell ' || popsell._html((SELECT e.extversion FROM pg_catalog.pg_extension e
                                         WHERE e.extname OPERATOR(pg_catalog.=) 'popsell'))
      || '. Counts, rates, dates and settings only: no personal data.</p>' || E'\n';

    -- ---------------------------------------------------------------
    -- Consent funnel per source: contacts collected, then the ledger.
    -- ---------------------------------------------------------------
    -- Contacts held, per source: one scan for the funnel and the records
    -- of processing.
    WITH held AS (
        SELECT c.source, pg_catalog.count(*) AS n,
               pg_catalog.count(*) FILTER (WHERE c.created_at OPERATOR(pg_catalog.>) since
                                             AND c.created_at OPERATOR(pg_catalog.<=) p_at) AS recent,
               pg_catalog.count(*) FILTER (WHERE c.brand_optin OPERATOR(pg_catalog.<>) 'no_optin') AS brand,
               pg_catalog.count(*) FILTER (WHERE c.partners_optin) AS partners,
               pg_catalog.count(*) FILTER (WHERE c.restricted) AS restricted
          FROM popsell.contacts c
         GROUP BY c.source),
    -- the ledger of the period, grouped by what the funnel needs (one scan)
    ev AS (
        SELECT ce.source, ce.new_ambassador_optin AS st,
               -- a first row kept on the tombstone: collected, and erased since
               (ce.contact_id IS NULL AND ce.old_ambassador_optin IS NULL AND ce.old_brand_optin IS NULL
                AND ce.old_partners_optin IS NULL AND ce.old_email_status IS NULL) AS first_erased,
               (ce.old_ambassador_optin IS NOT NULL
                AND ce.old_ambassador_optin OPERATOR(pg_catalog.<>) ce.new_ambassador_optin) AS amb,
               pg_catalog.count(*) AS n
          FROM popsell.consent_events ce
         WHERE ce.occurred_at OPERATOR(pg_catalog.>) since AND ce.occurred_at OPERATOR(pg_catalog.<=) p_at
         GROUP BY 1, 2, 3, 4),
    e AS (
        SELECT ev.source,
               pg_catalog.sum(ev.n) FILTER (WHERE ev.first_erased) AS collected,
               pg_catalog.sum(ev.n) FILTER (WHERE ev.amb AND ev.st OPERATOR(pg_catalog.=) 'invitation_sent') AS invited,
               pg_catalog.sum(ev.n) FILTER (WHERE ev.amb AND ev.st OPERATOR(pg_catalog.=) 'invitation_accepted') AS accepted,
               pg_catalog.sum(ev.n) FILTER (WHERE ev.amb AND ev.st OPERATOR(pg_catalog.=) 'invitation_declined') AS declined,
               pg_catalog.sum(ev.n) FILTER (WHERE ev.amb AND ev.st OPERATOR(pg_catalog.=) 'optout_no_response') AS no_answer,
               pg_catalog.sum(ev.n) FILTER (WHERE ev.amb AND ev.st OPERATOR(pg_catalog.=) 'optout_email') AS opted_out,
               pg_catalog.sum(ev.n) FILTER (WHERE ev.amb AND ev.st OPERATOR(pg_catalog.=) 'global_optout') AS global_optout
          FROM ev GROUP BY ev.source)
    SELECT pg_catalog.array_agg(src.source::text ORDER BY src.ord),
           pg_catalog.array_agg(
               ARRAY[coalesce(e.collected, 0) + coalesce(hd.recent, 0), coalesce(e.invited, 0),
                     coalesce(e.accepted, 0), coalesce(e.declined, 0), coalesce(e.no_answer, 0),
                     coalesce(e.opted_out, 0), coalesce(e.global_optout, 0)]::bigint[] ORDER BY src.ord),
           coalesce(pg_catalog.sum(hd.n), 0), coalesce(pg_catalog.sum(hd.brand), 0),
           coalesce(pg_catalog.sum(hd.partners), 0), coalesce(pg_catalog.sum(hd.restricted), 0)
      INTO srcs, fm, n_contacts, n_brand, n_partners, n_restricted
      FROM pg_catalog.unnest(pg_catalog.enum_range(NULL::popsell.contact_source)) WITH ORDINALITY AS src(source, ord)
      LEFT JOIN e ON e.source OPERATOR(pg_catalog.=) src.source
      LEFT JOIN held hd ON hd.source OPERATOR(pg_catalog.=) src.source;

    h := h || '<h2>Consent funnel per source (last 12 months)</h2>'
      || '<p>Contacts collected in the period (still held, or erased since with their consent proof kept), '
      || 'then, from the consent ledger, the changes of the ambassador opt-in to each state. Acceptance, '
      || 'refusal and no-answer rates are per invitation sent; opt-out rates per contact collected.</p>';
    -- chart: one group of bars per source that has any figure
    SELECT pg_catalog.max(v) INTO maxv FROM pg_catalog.unnest(fm) AS v;
    n := 0;
    FOR k IN 1 .. pg_catalog.array_length(srcs, 1) LOOP
        IF fm[k][1] + fm[k][2] + fm[k][3] + fm[k][4] + fm[k][5] + fm[k][6] + fm[k][7] > 0 THEN
            n := n + 1;
        END IF;
    END LOOP;
    -- one group per source with any figure: its non-zero bars, labelled
    svg := '';
    FOR i IN 1 .. 7 LOOP
        svg := svg || pg_catalog.format('<rect x="%s" y="6" width="12" height="12" fill="%s"/>'
                                        '<text x="%s" y="16">%s</text>',
                                        10 + (i - 1) * 135, colors[i], 26 + (i - 1) * 135, measure_names[i]);
    END LOOP;
    y := 30;
    FOR k IN 1 .. pg_catalog.array_length(srcs, 1) LOOP
        CONTINUE WHEN fm[k][1] + fm[k][2] + fm[k][3] + fm[k][4] + fm[k][5] + fm[k][6] + fm[k][7] = 0;
        svg := svg || pg_catalog.format('<line x1="4" y1="%s" x2="950" y2="%s" stroke="#eef2f6"/>'
                                        '<text x="4" y="%s" font-weight="600">%s</text>', y - 3, y - 3, y + 8, srcs[k]);
        FOR i IN 1 .. 7 LOOP
            CONTINUE WHEN fm[k][i] = 0;
            svg := svg || pg_catalog.format(
                '<rect x="160" y="%s" width="%s" height="7" fill="%s"><title>%s %s: %s</title></rect>'
                '<text x="%s" y="%s" font-size="9" fill="#5b6770">%s</text>',
                y, greatest(1, pg_catalog.round(700.0 * fm[k][i] / greatest(maxv, 1), 1)), colors[i],
                srcs[k], measure_names[i], fm[k][i],
                164 + pg_catalog.round(700.0 * fm[k][i] / greatest(maxv, 1), 1), y + 7, fm[k][i]);
            y := y + 9;
        END LOOP;
        y := greatest(y, 0) + 10;
    END LOOP;
    IF n = 0 THEN
        svg := svg || '<text x="160" y="44" fill="#5b6770">No consent events in the period.</text>';
        y := 60;
    END IF;
    svg := pg_catalog.format('<svg xmlns="http://www.w3.org/2000/svg" width="960" height="%s" role="img" '
                             'aria-label="Consent funnel per source" font-size="11" font-family="sans-serif">',
                             y + 4) || svg;
    h := h || svg || '</svg>' || E'\n';
    h := h || '<table><tr><th>source</th>';
    FOR i IN 1 .. 7 LOOP
        h := h || '<th>' || measure_names[i] || '</th>';
    END LOOP;
    h := h || '</tr>';
    FOR k IN 1 .. pg_catalog.array_length(srcs, 1) LOOP
        h := h || '<tr><th>' || srcs[k] || '</th>';
        FOR i IN 1 .. 7 LOOP
            h := h || popsell._report_fig('funnel.' || srcs[k] || '.' || measures[i], fm[k][i]::text);
            tot[i] := tot[i] + fm[k][i];
        END LOOP;
        h := h || '</tr>';
    END LOOP;
    h := h || '<tr><th>all sources</th>';
    FOR i IN 1 .. 7 LOOP
        h := h || popsell._report_fig('funnel.all.' || measures[i], tot[i]::text);
    END LOOP;
    h := h || '</tr></table>'
           || '<table><tr><th>source</th><th>accepted / invited</th><th>declined / invited</th>'
           || '<th>no answer / invited</th><th>opted out / collected</th><th>globally opted out / collected</th></tr>';
    FOR k IN 1 .. pg_catalog.array_length(srcs, 1) LOOP
        h := h || '<tr><th>' || srcs[k] || '</th>' || popsell._report_fig('funnel.' || srcs[k] || '.accept_rate', popsell._report_rate(fm[k][3], fm[k][2]))
               || popsell._report_fig('funnel.' || srcs[k] || '.decline_rate', popsell._report_rate(fm[k][4], fm[k][2]))
               || popsell._report_fig('funnel.' || srcs[k] || '.no_answer_rate', popsell._report_rate(fm[k][5], fm[k][2]))
               || popsell._report_fig('funnel.' || srcs[k] || '.optout_rate', popsell._report_rate(fm[k][6], fm[k][1]))
               || popsell._report_fig('funnel.' || srcs[k] || '.global_optout_rate', popsell._report_rate(fm[k][7], fm[k][1]))
               || '</tr>';
    END LOOP;
    h := h || '<tr><th>all sources</th>' || popsell._report_fig('funnel.all.accept_rate', popsell._report_rate(tot[3], tot[2]))
           || popsell._report_fig('funnel.all.decline_rate', popsell._report_rate(tot[4], tot[2]))
           || popsell._report_fig('funnel.all.no_answer_rate', popsell._report_rate(tot[5], tot[2]))
           || popsell._report_fig('funnel.all.optout_rate', popsell._report_rate(tot[6], tot[1]))
           || popsell._report_fig('funnel.all.global_optout_rate', popsell._report_rate(tot[7], tot[1]))
           || '</tr></table>' || E'\n';

    -- ---------------------------------------------------------------
    -- Retention outlook: run_maintenance's own rules, previewed.
    -- ---------------------------------------------------------------
    h := h || '<h2>Retention outlook</h2>'
      || '<p>Rows each retention rule of <code>popsell.run_maintenance</code> would act on if it ran in 30, '
      || '90 and 365 days, with the data as it is today (no new login, activity or answer): '
      || 'the rules'' own counting queries (<code>popsell.maintenance_preview</code>). '
      || 'Rules that delete count the contacts or ambassadors they delete; reminder rules count the '
      || 'messages they queue or the opt-ins they change.</p>'
      || '<table><tr><th>rule</th><th>acts on</th><th>within 30 days</th>'
      || '<th>within 90 days</th><th>within 365 days</th></tr>';
    SELECT pg_catalog.array_agg(x ORDER BY o) INTO rules
      FROM popsell.maintenance_rules() WITH ORDINALITY AS t(x, o);
    FOR r IN
        WITH p AS (
            SELECT hz.d, pv.rule, pv.affected
              FROM pg_catalog.unnest(horizons) AS hz(d)
              CROSS JOIN LATERAL popsell.maintenance_preview(p_at + hz.d * interval '1 day') AS pv)
        SELECT rl.x AS rule, rl.o,
               pg_catalog.array_agg(p.affected ORDER BY p.d) AS counts
          FROM pg_catalog.unnest(rules) WITH ORDINALITY AS rl(x, o)
          JOIN p ON p.rule OPERATOR(pg_catalog.=) rl.x
         GROUP BY rl.x, rl.o
         ORDER BY rl.o
    LOOP
        cnt := r.counts;
        h := h || '<tr><th>' || popsell._html(r.rule) || '</th><td>'
          || CASE WHEN r.rule LIKE 'ambassador%' THEN 'ambassadors deleted'
                  WHEN r.rule OPERATOR(pg_catalog.=) 'invitation_reminder' THEN 'reminders queued'
                  WHEN r.rule OPERATOR(pg_catalog.=) 'invitation_no_response' THEN 'contacts set to optout_no_response'
                  WHEN r.rule LIKE 'contact%' OR r.rule OPERATOR(pg_catalog.=) 'email_unconfirmed' THEN 'contacts deleted'
                  WHEN r.rule IN ('program_suspended', 'brand_contract_ended') THEN 'contacts, ambassadors and UGC deleted'
                  WHEN r.rule OPERATOR(pg_catalog.=) 'contest_ugc' THEN 'UGC deleted'
                  WHEN r.rule OPERATOR(pg_catalog.=) 'logs' THEN 'log rows deleted'
                  ELSE 'rows' END || '</td>';
        FOR i IN 1 .. 3 LOOP
            h := h || popsell._report_fig('outlook.' || r.rule || '.' || horizons[i], cnt[i]::text);
        END LOOP;
        h := h || '</tr>';
    END LOOP;
    h := h || '</table>' || E'\n';

    -- last 30 runs, a small timeline of their durations
    h := h || '<h3>Last 30 runs</h3>';
    SELECT pg_catalog.array_agg(g.run_id ORDER BY g.run_id), pg_catalog.array_agg(g.as_of ORDER BY g.run_id),
           pg_catalog.array_agg(g.started ORDER BY g.run_id), pg_catalog.array_agg(g.ms ORDER BY g.run_id),
           pg_catalog.array_agg(g.affected ORDER BY g.run_id), pg_catalog.array_agg(g.failures ORDER BY g.run_id),
           pg_catalog.count(*), pg_catalog.max(g.ms)
      INTO run_ids, run_asof, run_started, run_ms, run_aff, run_fail, n, maxms
      FROM (SELECT mr.run_id, pg_catalog.max(mr.as_of) AS as_of, pg_catalog.min(mr.started_at) AS started,
                   pg_catalog.round(EXTRACT(epoch FROM pg_catalog.max(mr.finished_at)
                                                       - pg_catalog.min(mr.started_at)) * 1000, 1) AS ms,
                   pg_catalog.sum(mr.affected) AS affected, pg_catalog.count(mr.failed_sqlstate) AS failures
              FROM popsell.maintenance_runs mr
             WHERE mr.run_id IN (SELECT DISTINCT m2.run_id FROM popsell.maintenance_runs m2
                                  ORDER BY m2.run_id DESC LIMIT 30)
             GROUP BY mr.run_id) g;
    h := h || '<p>' || popsell._report_fig('runs.count', n::text, 'span') || ' runs shown (one row per rule per run in '
      || '<code>popsell.maintenance_runs</code>, kept for <code>log_retention</code>). Bar height: duration; '
      || 'red: a rule failed.</p>';
    svg := '<svg xmlns="http://www.w3.org/2000/svg" width="960" height="150" role="img" '
        || 'aria-label="Durations of the last runs" font-size="10" font-family="sans-serif">'
        || '<line x1="40" y1="120" x2="950" y2="120" stroke="#5b6770"/>';
    y := 0;
    FOR k IN 1 .. n LOOP
        svg := svg || pg_catalog.format(
            '<rect x="%s" y="%s" width="22" height="%s" fill="%s"><title>run %s: %s ms, %s rows</title></rect>'
            '<text x="%s" y="134" text-anchor="middle">%s</text>',
            45 + (k - 1) * 30, 120 - greatest(2, pg_catalog.round(100.0 * run_ms[k] / greatest(maxms, 1))),
            greatest(2, pg_catalog.round(100.0 * run_ms[k] / greatest(maxms, 1))),
            CASE WHEN run_fail[k] > 0 THEN '#c2453d' ELSE '#2f6db5' END,
            run_ids[k], run_ms[k], run_aff[k], 56 + (k - 1) * 30, run_ids[k]);
    END LOOP;
    IF n = 0 THEN
        svg := svg || '<text x="60" y="60" fill="#c2453d">No maintenance run recorded: is the job scheduled?</text>';
    END IF;
    h := h || svg || '</svg>';
    h := h || '<table><tr><th>run</th><th>as of</th><th>started</th><th>duration (ms)</th>'
           || '<th>rows acted on</th><th>rules failed</th></tr>';
    FOR k IN REVERSE n .. 1 LOOP
        h := h || '<tr>' || popsell._report_fig('runs.' || run_ids[k] || '.run', run_ids[k]::text)
          || '<td>' || pg_catalog.to_char(run_asof[k], 'YYYY-MM-DD HH24:MI') || '</td>'
          || '<td>' || pg_catalog.to_char(run_started[k], 'YYYY-MM-DD HH24:MI') || '</td>'
          || popsell._report_fig('runs.' || run_ids[k] || '.ms', run_ms[k]::text)
          || popsell._report_fig('runs.' || run_ids[k] || '.affected', run_aff[k]::text)
          || popsell._report_fig('runs.' || run_ids[k] || '.failures', run_fail[k]::text)
          || '</tr>';
    END LOOP;
    h := h || '</table>' || E'\n';

    -- ---------------------------------------------------------------
    -- Data-subject rights
    -- ---------------------------------------------------------------
    h := h || '<h2>Data-subject rights (last 12 months)</h2>'
      || '<table><tr><th>month</th><th>access (art. 15)</th><th>erasure (art. 17)</th>'
      || '<th>restriction (art. 18)</th><th>restriction lifted</th><th>objection (art. 21)</th></tr>';
    FOR r IN
        SELECT pg_catalog.to_char(mo, 'YYYY-MM') AS month,
               pg_catalog.count(rr.id) FILTER (WHERE rr.request OPERATOR(pg_catalog.=) 'access') AS access,
               pg_catalog.count(rr.id) FILTER (WHERE rr.request OPERATOR(pg_catalog.=) 'erasure') AS erasure,
               pg_catalog.count(rr.id) FILTER (WHERE rr.request OPERATOR(pg_catalog.=) 'restriction') AS restriction,
               pg_catalog.count(rr.id) FILTER (WHERE rr.request OPERATOR(pg_catalog.=) 'restriction_lifted') AS lifted,
               pg_catalog.count(rr.id) FILTER (WHERE rr.request OPERATOR(pg_catalog.=) 'objection') AS objection
          FROM pg_catalog.generate_series(pg_catalog.date_trunc('month', p_at) - interval '11 months',
                                          pg_catalog.date_trunc('month', p_at), interval '1 month') AS mo
          LEFT JOIN popsell.rights_requests rr
                 ON rr.requested_at OPERATOR(pg_catalog.>=) mo
                AND rr.requested_at OPERATOR(pg_catalog.<) mo + interval '1 month'
                AND rr.requested_at OPERATOR(pg_catalog.<=) p_at
         GROUP BY mo ORDER BY mo
    LOOP
        h := h || '<tr><th>' || r.month || '</th>'
          || popsell._report_fig('rights.' || r.month || '.access', r.access::text)
          || popsell._report_fig('rights.' || r.month || '.erasure', r.erasure::text)
          || popsell._report_fig('rights.' || r.month || '.restriction', r.restriction::text)
          || popsell._report_fig('rights.' || r.month || '.restriction_lifted', r.lifted::text)
          || popsell._report_fig('rights.' || r.month || '.objection', r.objection::text) || '</tr>';
    END LOOP;
    h := h || '</table>';
    SELECT pg_catalog.count(*) AS n,
           coalesce(pg_catalog.round(EXTRACT(epoch FROM pg_catalog.max(rr.requested_at - coalesce(rr.received_at, rr.requested_at))) / 86400, 1), 0) AS longest,
           pg_catalog.count(*) FILTER (WHERE rr.requested_at - rr.received_at OPERATOR(pg_catalog.>) interval '1 month') AS late
      INTO r
      FROM popsell.rights_requests rr
     WHERE rr.requested_at OPERATOR(pg_catalog.>) pg_catalog.date_trunc('month', p_at) - interval '11 months'
       AND rr.requested_at OPERATOR(pg_catalog.<=) p_at;
    h := h || '<p>' || popsell._report_fig('rights.total', r.n::text, 'span') || ' requests; the longest took '
      || popsell._report_fig('rights.longest_days', r.longest::text, 'span')
      || ' days from receipt to completion (<code>received_at</code> to <code>requested_at</code>; a request '
      || 'without a receipt date counts as completed the day it arrived); '
      || '<span class="' || CASE WHEN r.late > 0 THEN 'warn' ELSE 'ok' END || '">'
      || popsell._report_fig('rights.late', r.late::text, 'span') || ' took longer than one month</span> '
      || '(GDPR art. 12(3)).</p>' || E'\n';

    -- ---------------------------------------------------------------
    -- Blacklist, tombstones, keys
    -- ---------------------------------------------------------------
    h := h || '<h2>Blacklist, tombstones and keys</h2><div class="cards">';
    FOR r IN
        SELECT b.reason::text AS reason, pg_catalog.count(bl.email_hash) AS n
          FROM pg_catalog.unnest(pg_catalog.enum_range(NULL::popsell.blacklist_reason)) WITH ORDINALITY AS b(reason, o)
          LEFT JOIN popsell.blacklist bl ON bl.reason OPERATOR(pg_catalog.=) b.reason
         GROUP BY b.reason, b.o ORDER BY b.o
    LOOP
        h := h || '<div class="card">' || popsell._report_fig('blacklist.' || r.reason, r.n::text, 'span')
          || '<span class="l">blacklisted: ' || r.reason || '</span></div>';
    END LOOP;
    h := h || '</div><table><tr><th>tombstone</th><th>reason</th><th>count</th><th>deleted in the last 12 months</th></tr>';
    FOR r IN
        SELECT 'contact' AS what, t.reason, pg_catalog.count(*) AS n,
               pg_catalog.count(*) FILTER (WHERE t.deleted_at OPERATOR(pg_catalog.>) since
                                             AND t.deleted_at OPERATOR(pg_catalog.<=) p_at) AS recent
          FROM popsell.contact_tombstones t GROUP BY t.reason
        UNION ALL
        SELECT 'ambassador', t.reason, pg_catalog.count(*),
               pg_catalog.count(*) FILTER (WHERE t.deleted_at OPERATOR(pg_catalog.>) since
                                             AND t.deleted_at OPERATOR(pg_catalog.<=) p_at)
          FROM popsell.ambassador_tombstones t GROUP BY t.reason
        ORDER BY 1 DESC, 2
    LOOP
        h := h || '<tr><td>' || r.what || '</td><td>' || popsell._html(r.reason) || '</td>'
          || popsell._report_fig('tombstones.' || r.what || '.' || r.reason, r.n::text)
          || popsell._report_fig('tombstones.' || r.what || '.' || r.reason || '.recent', r.recent::text) || '</tr>';
    END LOOP;
    h := h || '</table>';
    SELECT pg_catalog.count(*) AS n, pg_catalog.max(k.created_at) AS latest,
           pg_catalog.count(*) FILTER (WHERE k.secret IS NULL) AS legacy
      INTO r FROM popsell.hash_keys k;
    h := h || '<p>Keyed hashing: ' || popsell._report_fig('keys.count', r.n::text, 'span') || ' key(s), '
      || popsell._report_fig('keys.rotations', greatest(r.n - 1, 0)::text, 'span') || ' rotation(s); the current key dates from '
      || popsell._report_fig('keys.latest', coalesce(pg_catalog.to_char(r.latest, 'YYYY-MM-DD'), 'n/a'), 'span')
      || '. Entries hashed under older keys stay effective.</p>' || E'\n';

    -- ---------------------------------------------------------------
    -- Records of processing (art. 30), in sentences
    -- ---------------------------------------------------------------
    SELECT pg_catalog.count(*) AS amb,
           pg_catalog.count(*) FILTER (WHERE a.status OPERATOR(pg_catalog.=) 'active') AS active,
           pg_catalog.count(*) FILTER (WHERE a.status OPERATOR(pg_catalog.=) 'signup_incomplete') AS incomplete,
           pg_catalog.count(*) FILTER (WHERE a.status OPERATOR(pg_catalog.=) 'leaving') AS leaving
      INTO f FROM popsell.ambassadors a;
    SELECT n_contacts AS contacts, n_brand AS brand, n_partners AS partners, n_restricted AS restricted INTO r;
    h := h || '<h2>Records of processing (GDPR art. 30)</h2><ul class="ropa">'
      || '<li>Controller: ' || popsell._html(coalesce(s.brand_name, 'the brand')) || '. Processor: Popsell, which runs '
      || 'the ambassador platform; its account team and technical team act on the brand''s instructions.</li>'
      || '<li>Data subjects: ' || popsell._report_fig('ropa.ambassadors', f.amb::text, 'span') || ' ambassadors ('
      || popsell._report_fig('ropa.ambassadors_active', f.active::text, 'span') || ' active, '
      || popsell._report_fig('ropa.ambassadors_incomplete', f.incomplete::text, 'span') || ' incomplete signups, '
      || popsell._report_fig('ropa.ambassadors_leaving', f.leaving::text, 'span') || ' leaving) and '
      || popsell._report_fig('ropa.contacts', r.contacts::text, 'span') || ' contacts of theirs, '
      || popsell._report_fig('ropa.contacts_restricted', r.restricted::text, 'span') || ' of them restricted (art. 18).</li>'
      || '<li>Categories of data: for ambassadors, identity and contact details (name, email, postal address, '
      || 'birth date, photo, position, bank account for commissions), account data (bcrypt password hash, '
      || 'login dates, terms acceptance), preferences and an anti-fraud activity log whose IP addresses are '
      || 'stored as keyed hashes; for contacts, identity and contact details (name, email, phones, postal '
      || 'address, social network ids), their consent states with a ledger of every change, interactions '
      || 'and sales.</li>'
      || '<li>Purposes: the ambassador program (publications sent by ambassadors to their contacts, '
      || 'community, gamification, sales attribution) and, with a brand opt-in, the brand''s own marketing.</li>'
      || '<li>Recipients: the brand, which sees the contacts with a brand or partners opt-in (confirmed, not '
      || 'restricted): ' || popsell._report_fig('ropa.contacts_brand_optin', r.brand::text, 'span')
      || ' contacts have a brand opt-in; the brand''s partners: '
      || popsell._report_fig('ropa.contacts_partners_optin', r.partners::text, 'span')
      || ' contacts agreed to be contacted by them, and they are told of each erasure or objection.</li>'
      || '<li>Retention: an ambassador without login is deleted after '
      || popsell._report_fig('settings.ambassador_inactivity', s.ambassador_inactivity::text, 'span') || ', warned '
      || popsell._report_fig('settings.inactivity_warnings', s.inactivity_warnings::text, 'span') || ' time(s) '
      || popsell._report_fig('settings.inactivity_warning_interval', s.inactivity_warning_interval::text, 'span')
      || ' apart; one who leaves is deleted after a grace period of '
      || popsell._report_fig('settings.deletion_grace', s.deletion_grace::text, 'span')
      || '; a signup not confirmed within '
      || popsell._report_fig('settings.signup_confirmation_window', s.signup_confirmation_window::text, 'span')
      || ' is deleted. A contact never invited is deleted after '
      || popsell._report_fig('settings.new_contact_invitation_window', s.new_contact_invitation_window::text, 'span')
      || '; an invitation unanswered for two windows of '
      || popsell._report_fig('settings.invitation_response_window', s.invitation_response_window::text, 'span')
      || ' counts as a refusal; an email not confirmed within '
      || popsell._report_fig('settings.email_confirmation_window', s.email_confirmation_window::text, 'span')
      || ' is deleted; opted-out contacts are kept '
      || popsell._report_fig('settings.optout_retention', s.optout_retention::text, 'span')
      || ' and contacts without activity '
      || popsell._report_fig('settings.contact_inactivity', s.contact_inactivity::text, 'span')
      || '. Logs are kept ' || popsell._report_fig('settings.log_retention', s.log_retention::text, 'span')
      || '. A suspended program''s personal data is deleted after '
      || popsell._report_fig('settings.suspension_max', s.suspension_max::text, 'span')
      || ', and all of it after the end of the brand''s contract plus the grace period. Deleted people leave '
      || 'a tombstone of keyed hashes, city, postal code and dates, kept for the life of the brand''s '
      || 'instance.</li>'
      || '<li>Account rules: signup '
      || CASE WHEN s.sso_exclusive THEN 'only through the brand''s single sign-on'
              ELSE 'by form (email verified by a confirmation link), Facebook or the brand''s single sign-on' END
      || '; fields the brand requires: '
      || popsell._report_fig('settings.required_ambassador_fields',
                             coalesce(NULLIF(pg_catalog.array_to_string(s.required_ambassador_fields, ', '), ''), 'none'),
                             'span')
      || '; the community shows names as '
      || popsell._report_fig('settings.community_name_format', s.community_name_format, 'span') || '.</li>'
      || '<li>Program state: '
      || CASE WHEN s.program_suspended_at IS NOT NULL
              THEN 'suspended since ' || pg_catalog.to_char(s.program_suspended_at, 'YYYY-MM-DD')
              ELSE 'running' END
      || CASE WHEN s.brand_contract_ended_at IS NOT NULL
              THEN '; the brand''s contract ended on ' || pg_catalog.to_char(s.brand_contract_ended_at, 'YYYY-MM-DD')
              ELSE '' END
      || '. Security: row level security on every table, keyed HMAC-SHA-256 hashes, bcrypt passwords; '
      || 'erased data may remain in WAL, replicas and backups until they expire.</li></ul>'
      || E'\n</body></html>\n';
    RETURN h;
END
$$;
COMMENT ON FUNCTION popsell.compliance_report(timestamptz) IS
    'The brand''s compliance report as of AT (default now): one self-contained HTML document (inline CSS and SVG, no script, no external asset, no personal data) with the consent funnel per source over the last 12 months, the retention outlook of every run_maintenance rule in 30/90/365 days (maintenance_preview), the last 30 runs, data-subject requests per month with the longest time to completion, blacklist and tombstones by reason, key rotations and the records-of-processing summary. Every figure carries data-figure="key". For the brand (popsell_brand, popsell_brand_bi) and vendor staff; psql -Atc "SELECT popsell.compliance_report()" > report.html.';

GRANT EXECUTE ON FUNCTION popsell.compliance_report(timestamptz)
    TO popsell_brand, popsell_brand_bi, popsell_account_team, popsell_technical;
-- ===================================================================
-- Ownership, privileges, row security baseline and pg_dump, for every
-- object of the schema.  One idempotent step that the install script and
-- every upgrade script end with, so an upgrade cannot forget a table's
-- FORCE ROW LEVEL SECURITY, its owner or its pg_dump registration.
-- Upgrade scripts get this file appended by the Makefile.
-- ===================================================================

CREATE OR REPLACE FUNCTION popsell._finalize_extension() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    -- pg_extension_config_dump only works inside CREATE/ALTER EXTENSION;
    -- say so before changing anything.
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                    WHERE rolname OPERATOR(pg_catalog.=) pg_catalog.current_user()
                      AND rolsuper) THEN
        RAISE EXCEPTION 'popsell._finalize_extension() runs only in popsell''s install and upgrade scripts'
            USING ERRCODE = 'PS001',
                  HINT = 'Run CREATE EXTENSION popsell or ALTER EXTENSION popsell UPDATE as a superuser.';
    END IF;

    -- Tables, sequences and views belong to the NOLOGIN popsell_owner, as
    -- do the SQL and PL/pgSQL functions (so SECURITY DEFINER ones run as
    -- it, not as a superuser).  C functions stay with the superuser.
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, c.relkind
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'v', 'm', 'p', 'S']::"char"[])
           AND c.relowner OPERATOR(pg_catalog.<>) 'popsell_owner'::pg_catalog.regrole
           -- a sequence owned by a column follows its table
           AND NOT (c.relkind OPERATOR(pg_catalog.=) 'S' AND EXISTS (
                    SELECT 1 FROM pg_catalog.pg_depend d
                     WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                       AND d.objid OPERATOR(pg_catalog.=) c.oid
                       AND d.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['a', 'i']::"char"[])))
    LOOP
        IF r.relkind OPERATOR(pg_catalog.=) 'S' THEN
            EXECUTE pg_catalog.format('ALTER SEQUENCE %s OWNER TO popsell_owner', r.obj);
        ELSE
            EXECUTE pg_catalog.format('ALTER TABLE %s OWNER TO popsell_owner', r.obj);
        END IF;
    END LOOP;
    FOR r IN
        SELECT p.oid::pg_catalog.regprocedure AS fn
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
          JOIN pg_catalog.pg_language l ON l.oid OPERATOR(pg_catalog.=) p.prolang
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND l.lanname OPERATOR(pg_catalog.<>) 'c'
           AND p.proowner OPERATOR(pg_catalog.<>) 'popsell_owner'::pg_catalog.regrole
    LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s OWNER TO popsell_owner', r.fn);
    END LOOP;

    -- Nothing of popsell is granted to PUBLIC; roles get what they need in
    -- the security section.  popsell_owner runs popsell's own functions.
    REVOKE ALL ON SCHEMA popsell FROM PUBLIC;
    REVOKE ALL ON ALL TABLES IN SCHEMA popsell FROM PUBLIC;
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA popsell FROM PUBLIC;
    REVOKE ALL ON ALL FUNCTIONS IN SCHEMA popsell FROM PUBLIC;
    GRANT USAGE ON SCHEMA popsell TO popsell_owner;
    GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA popsell TO popsell_owner;

    -- Types are usable by PUBLIC by default: only popsell's roles get them.
    FOR r IN
        SELECT t.oid::pg_catalog.regtype AS typ
          FROM pg_catalog.pg_type t
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.typnamespace
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND t.typtype OPERATOR(pg_catalog.=) 'e'
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON TYPE %s FROM PUBLIC', r.typ);
        EXECUTE pg_catalog.format('GRANT USAGE ON TYPE %s TO popsell_owner, popsell_ambassador, '
                                  'popsell_brand, popsell_brand_bi, popsell_account_team, '
                                  'popsell_technical, popsell_app, popsell_maintenance', r.typ);
    END LOOP;

    -- Row level security on every table, forced so the owner is subject to
    -- it too; popsell_owner (popsell's own functions and triggers) sees all
    -- rows, other roles get policies in the security section.
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, c.oid
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND c.relkind OPERATOR(pg_catalog.=) 'r'
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', r.obj);
        EXECUTE pg_catalog.format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', r.obj);
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy
                        WHERE polrelid OPERATOR(pg_catalog.=) r.oid
                          AND polname OPERATOR(pg_catalog.=) 'popsell_owner_all') THEN
            EXECUTE pg_catalog.format(
                'CREATE POLICY popsell_owner_all ON %s TO popsell_owner USING (true) WITH CHECK (true)', r.obj);
        END IF;
    END LOOP;

    -- pg_dump keeps what users filled (SPEC section 3, S9): every table
    -- and sequence, registered once.
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
          JOIN pg_catalog.pg_extension e ON e.extname OPERATOR(pg_catalog.=) 'popsell'
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'S']::"char"[])
           AND NOT c.oid OPERATOR(pg_catalog.=) ANY (coalesce(e.extconfig, '{}'::pg_catalog.oid[]))
    LOOP
        PERFORM pg_catalog.pg_extension_config_dump(r.obj, '');
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION popsell._finalize_extension() FROM PUBLIC;
COMMENT ON FUNCTION popsell._finalize_extension() IS
    'Install and upgrade step (superuser, inside CREATE/ALTER EXTENSION only): every popsell table, view, sequence and non-C function owned by popsell_owner, nothing granted to PUBLIC, row security enabled and forced with the owner policy, every table and sequence registered for pg_dump. Idempotent.';

SELECT popsell._finalize_extension();
