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
