-- ===================================================================
-- Ambassador and brand lifecycle (SPEC section 5: Ambassadors, Brand).
-- Signup (terms, whitelist, SSO exclusive), bcrypt passwords, logins,
-- unsubscription and end of contract with a grace period and a rollback,
-- SSO provisioning, the anti-fraud activity log (IPs hashed at write
-- time), program suspension, end of the brand's contract and the
-- pre-GDPR migration of contacts.  The functions are SECURITY DEFINER
-- (they run as popsell_owner) and check who calls them themselves.
-- Error codes: PS105 column changed outside its function, PS200 unknown
-- id, PS202 email, PS300 ambassador state, PS301 grace over, PS302
-- whitelist, PS303 SSO exclusive, PS304 email already registered, PS305
-- password, PS310 program state.
-- ===================================================================

-- ------------------------------------------------------------------
-- Accounts as the guide describes them (signup form): the email is
-- verified by a single-use link before the account opens, a password is
-- needed unless the ambassador signs up with Facebook or SSO, and the
-- brand may require optional fields.
-- ------------------------------------------------------------------
ALTER TABLE popsell.settings
    ADD COLUMN signup_confirmation_window interval NOT NULL DEFAULT '7 days'
        CONSTRAINT settings_signup_confirmation_window_floor
        CHECK (popsell._is_window(signup_confirmation_window)),
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

-- Now, or the as-of time popsell_owner set for a run "in the future"
-- (the contacts trigger stamps with the same value).
CREATE FUNCTION popsell._lifecycle_now() RETURNS timestamptz
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN coalesce(popsell._as_of(),
                    pg_catalog.now());
COMMENT ON FUNCTION popsell._lifecycle_now() IS
    'Internal: popsell.as_of when set, else now(): the time lifecycle functions stamp with.';

-- Refuse a caller that is none of the given roles (superusers and
-- popsell_owner always pass).
CREATE FUNCTION popsell._require_caller(p_roles text[], p_what text) RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF popsell._caller_in('popsell_owner') THEN
        RETURN;
    END IF;
    FOR i IN 1 .. coalesce(pg_catalog.array_length(p_roles, 1), 0) LOOP
        IF popsell._caller_in(p_roles[i]) THEN
            RETURN;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'permission denied for %', p_what
        USING ERRCODE = '42501',
              DETAIL = pg_catalog.format('%s is for members of %s.', p_what,
                                         pg_catalog.array_to_string(p_roles, ', ')),
              HINT = 'Call it from a session of one of those roles.';
END
$$;
COMMENT ON FUNCTION popsell._require_caller(text[], text) IS
    'Internal: raise 42501 unless the role calling into popsell is a member of one of the given roles.';

-- The ambassador row to act on, locked: PS200 for NULL or unknown ids,
-- and unless the caller is one of p_roles or (p_self) the ambassador
-- itself.  Unknown and foreign ids get the same error.
CREATE FUNCTION popsell._ambassador_to_act_on(p_id bigint, p_roles text[], p_self boolean)
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

CREATE FUNCTION popsell._refuse_leaving(a popsell.ambassadors) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF a.status OPERATOR(pg_catalog.=) 'leaving' THEN
        RAISE EXCEPTION 'ambassador % is leaving', a.id
            USING ERRCODE = 'PS300',
                  DETAIL = pg_catalog.format('Access was blocked; the account is deleted at %s.', a.deletion_due_at),
                  HINT = 'Staff can call popsell.restore_ambassador() before then.';
    END IF;
END
$$;
COMMENT ON FUNCTION popsell._refuse_leaving(popsell.ambassadors) IS
    'Internal: PS300 when the ambassador is leaving.';

-- ------------------------------------------------------------------
-- Row rules of popsell.ambassadors: emails stored normalized, only bcrypt
-- hashes as passwords (a clear PS305 before the CHECK's 23514), and the
-- lifecycle columns (status, deletion_due_at, leaving_reason) moved only
-- by popsell's functions (run as popsell_owner) or a superuser.
-- ------------------------------------------------------------------
CREATE FUNCTION popsell.ambassadors_before_row() RETURNS trigger
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

CREATE TRIGGER popsell_40_lifecycle
    BEFORE INSERT OR UPDATE ON popsell.ambassadors
    FOR EACH ROW EXECUTE FUNCTION popsell.ambassadors_before_row();

-- Keys signup and SSO accept in their data object.
CREATE FUNCTION popsell._ambassador_data_keys() RETURNS text[]
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN ARRAY['kind', 'first_name', 'last_name', 'customer_id', 'facebook_id', 'address',
                 'city', 'postal_code', 'country', 'preferred_language', 'birth_date', 'photo_path',
                 'description', 'position', 'iban', 'hide_events', 'hide_from_community',
                 'newsletter_optin', 'event_notifications', 'challenge_notifications',
                 'comment_notifications'];
COMMENT ON FUNCTION popsell._ambassador_data_keys() IS
    'Internal: the ambassador fields signup and sso_upsert_ambassador accept in their data object.';

CREATE FUNCTION popsell._check_ambassador_data(p_data jsonb, p_extra text[]) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bad text;
BEGIN
    IF p_data IS NULL OR pg_catalog.jsonb_typeof(p_data) OPERATOR(pg_catalog.<>) 'object' THEN
        RAISE EXCEPTION 'data must be a JSON object of ambassador fields'
            USING ERRCODE = 'PS106',
                  HINT = 'Pass e.g. ''{"first_name": "Ada", "city": "Lyon"}''.';
    END IF;
    SELECT pg_catalog.string_agg(k, ', ' ORDER BY k) INTO bad
      FROM pg_catalog.jsonb_object_keys(p_data) AS k
     WHERE NOT k OPERATOR(pg_catalog.=) ANY (popsell._ambassador_data_keys() OPERATOR(pg_catalog.||) p_extra);
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'unknown or protected ambassador fields: %', bad
            USING ERRCODE = 'PS106',
                  HINT = 'Status, terms, password and login role are set by their own functions.';
    END IF;
END
$$;
COMMENT ON FUNCTION popsell._check_ambassador_data(jsonb, text[]) IS
    'Internal: PS106 unless data is an object whose keys are ambassador fields a signup may set.';

-- The whitelist lets this email or customer id sign up (an empty
-- whitelist lets everyone).  Compared under every live key.
CREATE FUNCTION popsell._whitelisted(p_email text, p_customer_id text) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN NOT EXISTS (SELECT 1 FROM popsell.registration_whitelist)
        OR EXISTS (SELECT 1 FROM popsell.registration_whitelist w
                    WHERE w.email_hash OPERATOR(pg_catalog.=) ANY (popsell.email_hashes(p_email)))
        OR (NULLIF(p_customer_id, '') IS NOT NULL
            AND EXISTS (SELECT 1 FROM popsell.registration_whitelist w
                         WHERE w.customer_id_hash OPERATOR(pg_catalog.=) ANY (popsell.email_hashes(p_customer_id))));
COMMENT ON FUNCTION popsell._whitelisted(text, text) IS
    'Internal: whether the registration whitelist is empty or holds the email''s or the customer id''s hash (any live key).';

CREATE FUNCTION popsell.whitelist_add(email text DEFAULT NULL, customer_id text DEFAULT NULL) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    new_id bigint;
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_brand', 'popsell_account_team', 'popsell_technical'],
                                    'popsell.whitelist_add');
    IF pg_catalog.num_nonnulls(NULLIF(email, ''), NULLIF(customer_id, '')) OPERATOR(pg_catalog.<>) 1 THEN
        RAISE EXCEPTION 'give either an email or a customer id'
            USING ERRCODE = 'PS106', HINT = 'One whitelist entry per email or customer id.';
    END IF;
    INSERT INTO popsell.registration_whitelist (email_hash, customer_id_hash, key_id)
    VALUES (CASE WHEN NULLIF(email, '') IS NOT NULL
                 THEN popsell.hash_email(popsell.normalize_email(email)) END,
            CASE WHEN NULLIF(customer_id, '') IS NOT NULL
                 THEN popsell.hash_identifier(customer_id) END,
            popsell.hash_key_id())
    RETURNING id INTO new_id;
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION popsell.whitelist_add(text, text) IS
    'Allow an email or a customer id to sign up (stored as a keyed hash). While the whitelist has entries, only they may sign up.';

-- Insert a new ambassador from validated data.
CREATE FUNCTION popsell._insert_ambassador(p_email text, p_data jsonb, p_terms boolean, p_sso_subject text)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r popsell.ambassadors := pg_catalog.jsonb_populate_record(NULL::popsell.ambassadors, p_data);
    t timestamptz := popsell._lifecycle_now();
    new_id bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM popsell.ambassadors a WHERE popsell_internal._lookup_key(a.email) OPERATOR(pg_catalog.=) popsell_internal._lookup_key(p_email)) THEN
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

CREATE FUNCTION popsell._hash_password(p_password text) RETURNS text
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_password IS NULL OR p_password OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'a password must not be NULL or empty'
            USING ERRCODE = 'PS305', HINT = 'Pass the password the ambassador chose.';
    END IF;
    IF pg_catalog.octet_length(p_password) OPERATOR(pg_catalog.>) 72 THEN
        RAISE EXCEPTION 'a password must be at most 72 bytes'
            USING ERRCODE = 'PS305',
                  DETAIL = 'bcrypt ignores what follows the 72nd byte.',
                  HINT = 'Choose a shorter password.';
    END IF;
    RETURN popsell._bcrypt(p_password,
                           popsell._bcrypt_salt((SELECT s.bcrypt_cost FROM popsell.settings s)));
END
$$;
COMMENT ON FUNCTION popsell._hash_password(text) IS
    'Internal: bcrypt hash of a password at settings.bcrypt_cost (PS305 for NULL, empty or over 72 bytes).';

-- What an account still lacks before it may become active: 'terms',
-- 'email_confirmation' (a signup token is pending), 'password' (none, and
-- no Facebook or SSO sign-in).  Empty when complete.
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

-- An incomplete signup that has every step becomes active.
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

-- The address is verified before the account opens: a single-use token
-- (two random UUIDs, 244 random bits) goes out in the confirmation email,
-- only its hash is kept; a new token replaces any earlier one.
CREATE FUNCTION popsell._issue_signup_token(p_ambassador_id bigint, t timestamptz) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tok text := pg_catalog.replace(pg_catalog.gen_random_uuid()::text OPERATOR(pg_catalog.||)
                                   pg_catalog.gen_random_uuid()::text, '-', '');
BEGIN
    DELETE FROM popsell.ambassador_email_tokens k WHERE k.ambassador_id OPERATOR(pg_catalog.=) p_ambassador_id;
    INSERT INTO popsell.ambassador_email_tokens (ambassador_id, token_hash, created_at)
    VALUES (p_ambassador_id, pg_catalog.sha256(pg_catalog.convert_to(tok, 'UTF8')), t);
    INSERT INTO popsell.outbox (kind, ambassador_id, payload, created_at)
    VALUES ('email_confirmation', p_ambassador_id,
            pg_catalog.jsonb_build_object('purpose', 'ambassador_signup', 'token', tok,
                                          'expires_at', t OPERATOR(pg_catalog.+)
                                              (SELECT s.signup_confirmation_window FROM popsell.settings s)),
            t);
END
$$;
COMMENT ON FUNCTION popsell._issue_signup_token(bigint, timestamptz) IS
    'Internal: a new single-use signup confirmation token for an ambassador (hash stored, email_confirmation queued), replacing any earlier one.';

CREATE FUNCTION popsell.signup(email text, data jsonb DEFAULT '{}', password text DEFAULT NULL,
                               terms_accepted boolean DEFAULT false)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e text;
    ph text;
    new_id bigint;
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
    PERFORM popsell._issue_signup_token(new_id, t);
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION popsell.signup(text, jsonb, text, boolean) IS
    'Sign an ambassador up (registration whitelist, sso_exclusive and settings.required_ambassador_fields respected): the account stays signup_incomplete, with no access, until the email is confirmed (an email_confirmation outbox row carries a single-use token for popsell.confirm_ambassador_email, valid settings.signup_confirmation_window), the terms are accepted and, unless data.facebook_id is given, a password is set. Returns the id.';

CREATE FUNCTION popsell.accept_terms(ambassador_id bigint) RETURNS void
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

CREATE FUNCTION popsell.set_password(ambassador_id bigint, password text) RETURNS void
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

CREATE FUNCTION popsell.check_password(ambassador_id bigint, password text) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a popsell.ambassadors;
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_app', 'popsell_technical'], 'popsell.check_password');
    IF check_password.ambassador_id IS NULL THEN
        RAISE EXCEPTION 'ambassador id must not be NULL'
            USING ERRCODE = 'PS200', HINT = 'Pass the id of an existing ambassador.';
    END IF;
    SELECT * INTO a FROM popsell.ambassadors WHERE id OPERATOR(pg_catalog.=) check_password.ambassador_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ambassador % does not exist', check_password.ambassador_id
            USING ERRCODE = 'PS200', HINT = 'Check the ambassador id.';
    END IF;
    -- only an active account (terms accepted, not leaving) can log in
    RETURN a.status OPERATOR(pg_catalog.=) 'active'
       AND check_password.password IS NOT NULL
       AND a.password_hash IS NOT NULL
       AND popsell._bcrypt(check_password.password, a.password_hash) OPERATOR(pg_catalog.=) a.password_hash;
END
$$;
COMMENT ON FUNCTION popsell.check_password(bigint, text) IS
    'Whether the password matches the ambassador''s bcrypt hash; always false for an account that is not active (signup incomplete, leaving).';

CREATE FUNCTION popsell.record_login(ambassador_id bigint) RETURNS void
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

-- Start the grace period of a leaving ambassador: access blocked now,
-- deleted by run_maintenance (ambassador_leaving) when it ends.
CREATE FUNCTION popsell._start_leaving(a popsell.ambassadors, p_reason text) RETURNS timestamptz
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    due timestamptz := popsell._lifecycle_now() OPERATOR(pg_catalog.+)
                       (SELECT s.deletion_grace FROM popsell.settings s);
BEGIN
    PERFORM popsell._refuse_leaving(a);
    UPDATE popsell.ambassadors
       SET status = 'leaving', leaving_reason = p_reason, deletion_due_at = due
     WHERE id OPERATOR(pg_catalog.=) a.id;
    -- its mail still queued is cancelled by the status change
    -- (popsell_60_leaving, popsell.ambassadors_leaving)
    RETURN due;
END
$$;
COMMENT ON FUNCTION popsell._start_leaving(popsell.ambassadors, text) IS
    'Internal: block an ambassador''s access (its queued mail is cancelled by the status trigger) and set its deletion after settings.deletion_grace.';

CREATE FUNCTION popsell.unsubscribe_ambassador(ambassador_id bigint) RETURNS timestamptz
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    RETURN popsell._start_leaving(
        popsell._ambassador_to_act_on(unsubscribe_ambassador.ambassador_id,
                                      ARRAY['popsell_app', 'popsell_brand', 'popsell_account_team',
                                            'popsell_technical'], true),
        'unsubscribed');
COMMENT ON FUNCTION popsell.unsubscribe_ambassador(bigint) IS
    'The ambassador leaves the program: access blocked at once, deleted after settings.deletion_grace unless restored. Returns the deletion time.';

CREATE FUNCTION popsell.end_ambassador_contract(ambassador_id bigint) RETURNS timestamptz
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    RETURN popsell._start_leaving(
        popsell._ambassador_to_act_on(end_ambassador_contract.ambassador_id,
                                      ARRAY['popsell_app', 'popsell_brand', 'popsell_account_team',
                                            'popsell_technical'], false),
        'contract_ended');
COMMENT ON FUNCTION popsell.end_ambassador_contract(bigint) IS
    'The brand ends an employee''s or sales rep''s contract: access blocked at once, deleted after settings.deletion_grace unless restored. Returns the deletion time.';

CREATE FUNCTION popsell.restore_ambassador(ambassador_id bigint) RETURNS void
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
    -- Leaving cancelled the unsent confirmation email: a signup still
    -- waiting for it gets a new one.
    IF a.email_confirmed_at IS NULL AND a.sso_subject IS NULL
       AND a.status OPERATOR(pg_catalog.=) 'leaving'
       AND EXISTS (SELECT 1 FROM popsell.ambassadors x
                    WHERE x.id OPERATOR(pg_catalog.=) a.id
                      AND x.status OPERATOR(pg_catalog.=) 'signup_incomplete') THEN
        PERFORM popsell._issue_signup_token(a.id, popsell._lifecycle_now());
    END IF;
END
$$;
COMMENT ON FUNCTION popsell.restore_ambassador(bigint) IS
    'Roll back an unsubscription, end of contract or SSO deletion before the grace period ends (PS301 after): back to active, or signup_incomplete when the signup was not complete (then with a new confirmation email when the address was never confirmed).';

CREATE FUNCTION popsell.sso_upsert_ambassador(subject text, data jsonb) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a popsell.ambassadors;
    r popsell.ambassadors;
    d jsonb := sso_upsert_ambassador.data;
    e text;
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_app', 'popsell_technical'], 'popsell.sso_upsert_ambassador');
    IF subject IS NULL OR pg_catalog.btrim(subject) OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'an SSO subject is required'
            USING ERRCODE = 'PS200', HINT = 'Pass the subject (user id) the brand''s identity provider sent.';
    END IF;
    IF pg_catalog.octet_length(subject) OPERATOR(pg_catalog.>) 1024 THEN
        RAISE EXCEPTION 'an SSO subject is at most 1024 bytes, not %', pg_catalog.octet_length(subject)
            USING ERRCODE = 'PS106', HINT = 'Pass the identity provider''s user id, not a token.';
    END IF;
    PERFORM popsell._check_ambassador_data(coalesce(d, '{}'), ARRAY['email', 'terms_accepted']);
    d := coalesce(d, '{}');
    IF d ? 'email' THEN
        e := popsell.normalize_email(NULLIF(pg_catalog.btrim(d ->> 'email'), ''));
    END IF;
    SELECT * INTO a FROM popsell.ambassadors WHERE popsell_internal._lookup_key(sso_subject) OPERATOR(pg_catalog.=) popsell_internal._lookup_key(subject) FOR UPDATE;
    IF NOT FOUND THEN
        -- provisioning on first login: the brand's identity provider vouches
        -- for the person (no whitelist), the terms must still be accepted
        IF e IS NULL THEN
            RAISE EXCEPTION 'an email is required to provision an SSO ambassador'
                USING ERRCODE = 'PS202', HINT = 'Send the email claim with the first login.';
        END IF;
        RETURN popsell._insert_ambassador(e, d - 'email' - 'terms_accepted',
                                          coalesce((d ->> 'terms_accepted')::boolean, false), subject);
    END IF;
    PERFORM popsell._refuse_leaving(a);
    -- later logins: the brand's data wins for the fields it sends
    r := pg_catalog.jsonb_populate_record(a, d - 'email' - 'terms_accepted');
    UPDATE popsell.ambassadors
       SET kind = r.kind, first_name = r.first_name, last_name = r.last_name, customer_id = r.customer_id,
           facebook_id = r.facebook_id, email = coalesce(e, email), address = r.address, city = r.city,
           postal_code = r.postal_code, country = r.country, preferred_language = r.preferred_language,
           birth_date = r.birth_date, photo_path = r.photo_path, description = r.description,
           position = r.position, iban = r.iban, hide_events = r.hide_events,
           hide_from_community = r.hide_from_community, newsletter_optin = r.newsletter_optin,
           event_notifications = r.event_notifications, challenge_notifications = r.challenge_notifications,
           comment_notifications = r.comment_notifications,
           terms_accepted_at = CASE WHEN (d ->> 'terms_accepted')::boolean
                                    THEN coalesce(terms_accepted_at, popsell._lifecycle_now())
                                    ELSE terms_accepted_at END,
           status = CASE WHEN (d ->> 'terms_accepted')::boolean OR terms_accepted_at IS NOT NULL
                         THEN 'active' ELSE 'signup_incomplete' END::popsell.ambassador_status,
           last_login_at = CASE WHEN (d ->> 'terms_accepted')::boolean OR terms_accepted_at IS NOT NULL
                                THEN popsell._lifecycle_now() ELSE last_login_at END,
           inactivity_warnings_sent = 0, last_inactivity_warning_at = NULL
     WHERE id OPERATOR(pg_catalog.=) a.id;
    RETURN a.id;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'another ambassador already has this email'
        USING ERRCODE = 'PS304', HINT = 'Merge or delete the other account first.';
END
$$;
COMMENT ON FUNCTION popsell.sso_upsert_ambassador(text, jsonb) IS
    'SSO login: provision the ambassador on first login (active once data.terms_accepted is true), update the fields the brand sends after (and record the login). Returns the id.';

CREATE FUNCTION popsell.sso_delete_ambassador(subject text) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a popsell.ambassadors;
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_app', 'popsell_technical'], 'popsell.sso_delete_ambassador');
    SELECT * INTO a FROM popsell.ambassadors WHERE popsell_internal._lookup_key(sso_subject) OPERATOR(pg_catalog.=) popsell_internal._lookup_key(subject) FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no ambassador has this SSO subject'
            USING ERRCODE = 'PS200', HINT = 'Check the subject the identity provider sent.';
    END IF;
    -- the brand's deletion sync may repeat itself: already leaving is done
    IF a.status OPERATOR(pg_catalog.<>) 'leaving' THEN
        PERFORM popsell._start_leaving(a, 'sso_deleted');
    END IF;
    RETURN a.id;
END
$$;
COMMENT ON FUNCTION popsell.sso_delete_ambassador(text) IS
    'The brand deleted the account in its identity provider: access blocked at once, deleted after settings.deletion_grace (idempotent). Returns the id.';

CREATE FUNCTION popsell.log_activity(ambassador_id bigint, kind text, ip inet DEFAULT NULL,
                                     user_agent text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    new_id bigint;
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_app', 'popsell_technical'], 'popsell.log_activity');
    IF log_activity.kind IS NULL OR pg_catalog.btrim(log_activity.kind) OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'an activity kind is required'
            USING ERRCODE = 'PS106', HINT = 'Pass e.g. ''login''.';
    END IF;
    IF log_activity.ambassador_id IS NULL
       OR NOT EXISTS (SELECT 1 FROM popsell.ambassadors a WHERE a.id OPERATOR(pg_catalog.=) log_activity.ambassador_id) THEN
        RAISE EXCEPTION 'ambassador % does not exist', coalesce(log_activity.ambassador_id::text, 'NULL')
            USING ERRCODE = 'PS200', HINT = 'Check the ambassador id.';
    END IF;
    -- the IP is hashed here and never stored plain
    INSERT INTO popsell.activity_log (ambassador_id, kind, ip_hash, user_agent, created_at)
    VALUES (log_activity.ambassador_id, log_activity.kind,
            popsell.hash_identifier(pg_catalog.host(log_activity.ip)),
            log_activity.user_agent, popsell._lifecycle_now())
    RETURNING id INTO new_id;
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION popsell.log_activity(bigint, text, inet, text) IS
    'Log an ambassador''s activity for anti-fraud: the IP is stored as a keyed hash, never plain.';

-- ------------------------------------------------------------------
-- Brand
-- ------------------------------------------------------------------
CREATE FUNCTION popsell.suspend_program() RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s popsell.settings;
    t timestamptz := popsell._lifecycle_now();
    n bigint;
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_brand', 'popsell_account_team', 'popsell_technical'],
                                    'popsell.suspend_program');
    SELECT * INTO s FROM popsell.settings FOR UPDATE;
    IF s.program_suspended_at IS NOT NULL THEN
        RAISE EXCEPTION 'the program is already suspended'
            USING ERRCODE = 'PS310',
                  DETAIL = pg_catalog.format('Suspended since %s.', s.program_suspended_at),
                  HINT = 'Call popsell.resume_program() to relaunch it.';
    END IF;
    UPDATE popsell.settings SET program_suspended_at = t;
    -- every active ambassador is warned at once, and may opt out
    INSERT INTO popsell.outbox (kind, ambassador_id, payload, created_at)
    SELECT 'suspension_notice', a.id,
           pg_catalog.jsonb_build_object('suspended_at', t,
                                         'data_kept_until', t OPERATOR(pg_catalog.+) s.suspension_max),
           t
      FROM popsell.ambassadors a
     WHERE a.status OPERATOR(pg_catalog.=) 'active';
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION popsell.suspend_program() IS
    'Suspend the program: queue a suspension_notice for every active ambassador; personal data is deleted by run_maintenance after settings.suspension_max unless resumed. Returns the notices queued.';

CREATE FUNCTION popsell.resume_program() RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_brand', 'popsell_account_team', 'popsell_technical'],
                                    'popsell.resume_program');
    UPDATE popsell.settings SET program_suspended_at = NULL WHERE program_suspended_at IS NOT NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the program is not suspended'
            USING ERRCODE = 'PS310', HINT = 'Nothing to resume.';
    END IF;
END
$$;
COMMENT ON FUNCTION popsell.resume_program() IS
    'Relaunch a suspended program (stops the suspension_max clock).';

CREATE FUNCTION popsell.end_brand_contract() RETURNS timestamptz
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s popsell.settings;
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_account_team', 'popsell_technical'],
                                    'popsell.end_brand_contract');
    SELECT * INTO s FROM popsell.settings FOR UPDATE;
    IF s.brand_contract_ended_at IS NOT NULL THEN
        RAISE EXCEPTION 'the brand''s contract has already ended'
            USING ERRCODE = 'PS310',
                  DETAIL = pg_catalog.format('Ended at %s.', s.brand_contract_ended_at),
                  HINT = 'popsell.cancel_brand_contract_end() rolls it back during the grace period.';
    END IF;
    UPDATE popsell.settings SET brand_contract_ended_at = popsell._lifecycle_now();
    RETURN popsell._lifecycle_now() OPERATOR(pg_catalog.+) s.deletion_grace;
END
$$;
COMMENT ON FUNCTION popsell.end_brand_contract() IS
    'The contract between Popsell and the brand ends: all personal data is deleted by run_maintenance after settings.deletion_grace. Returns that time.';

CREATE FUNCTION popsell.cancel_brand_contract_end() RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s popsell.settings;
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_account_team', 'popsell_technical'],
                                    'popsell.cancel_brand_contract_end');
    SELECT * INTO s FROM popsell.settings FOR UPDATE;
    IF s.brand_contract_ended_at IS NULL THEN
        RAISE EXCEPTION 'the brand''s contract has not ended'
            USING ERRCODE = 'PS310', HINT = 'Nothing to roll back.';
    END IF;
    IF s.brand_contract_ended_at OPERATOR(pg_catalog.+) s.deletion_grace OPERATOR(pg_catalog.<=) popsell._lifecycle_now() THEN
        RAISE EXCEPTION 'the grace period after the end of the brand''s contract is over'
            USING ERRCODE = 'PS301',
                  DETAIL = pg_catalog.format('It ended at %s.', s.brand_contract_ended_at OPERATOR(pg_catalog.+) s.deletion_grace),
                  HINT = 'The personal data is deleted by the next maintenance run.';
    END IF;
    UPDATE popsell.settings SET brand_contract_ended_at = NULL;
END
$$;
COMMENT ON FUNCTION popsell.cancel_brand_contract_end() IS
    'Roll back end_brand_contract() before the grace period ends (PS301 after).';

-- Contacts the pre-GDPR migration has handled, so a second run does not
-- restart their clock.
CREATE TABLE popsell.pre_gdpr_migrated (
    -- no foreign key: contact ids are never reused, and a cascade would
    -- cost one delete per erased contact
    contact_id  bigint PRIMARY KEY,
    migrated_at timestamptz NOT NULL,
    result      popsell.ambassador_optin NOT NULL
);
COMMENT ON TABLE popsell.pre_gdpr_migrated IS
    'Internal: contacts handled by apply_pre_gdpr_migration (ids only), so the migration applies once per contact.';

CREATE FUNCTION popsell.apply_pre_gdpr_migration()
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

-- ------------------------------------------------------------------
-- Grants (roles per SPEC section 2).  Ambassadors change their own
-- visibility and notification opt-ins with a plain UPDATE; the column
-- grants for that are in the security section.
-- ------------------------------------------------------------------
GRANT EXECUTE ON FUNCTION popsell.signup(text, jsonb, text, boolean),
                          popsell.accept_terms(bigint),
                          popsell.confirm_ambassador_email(text)
    TO popsell_app, popsell_account_team, popsell_technical;
GRANT EXECUTE ON FUNCTION popsell.set_password(bigint, text)
    TO popsell_app, popsell_ambassador, popsell_account_team, popsell_technical;
GRANT EXECUTE ON FUNCTION popsell.check_password(bigint, text),
                          popsell.record_login(bigint),
                          popsell.sso_upsert_ambassador(text, jsonb),
                          popsell.sso_delete_ambassador(text),
                          popsell.log_activity(bigint, text, inet, text)
    TO popsell_app, popsell_technical;
GRANT EXECUTE ON FUNCTION popsell.unsubscribe_ambassador(bigint)
    TO popsell_app, popsell_ambassador, popsell_brand, popsell_account_team, popsell_technical;
GRANT EXECUTE ON FUNCTION popsell.end_ambassador_contract(bigint)
    TO popsell_app, popsell_brand, popsell_account_team, popsell_technical;
GRANT EXECUTE ON FUNCTION popsell.restore_ambassador(bigint),
                          popsell.suspend_program(),
                          popsell.resume_program(),
                          popsell.whitelist_add(text, text)
    TO popsell_brand, popsell_account_team, popsell_technical;
GRANT EXECUTE ON FUNCTION popsell.end_brand_contract(),
                          popsell.cancel_brand_contract_end()
    TO popsell_account_team, popsell_technical;
GRANT EXECUTE ON FUNCTION popsell.apply_pre_gdpr_migration() TO popsell_technical;
