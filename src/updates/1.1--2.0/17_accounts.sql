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

-- @restate function:_ambassador_to_act_on

-- @restate function:ambassadors_before_row

-- @restate function:_insert_ambassador

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

-- @restate function:_issue_signup_token
-- @restate function:signup

-- @restate function:accept_terms

-- @restate function:set_password

-- @restate function:record_login

-- @restate function:restore_ambassador

-- @restate function:apply_pre_gdpr_migration

GRANT EXECUTE ON FUNCTION popsell.confirm_ambassador_email(text)
    TO popsell_app, popsell_account_team, popsell_technical;

-- @restate function:maintenance_rules

-- @restate function:_maintenance_rule

-- @restate policy:popsell_brand_select:ambassadors policy:popsell_brand_update:ambassadors

-- @restate view:bi_ambassadors
