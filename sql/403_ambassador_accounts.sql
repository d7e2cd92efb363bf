-- 403_ambassador_accounts: ambassador accounts as the guide's section on
-- ambassadors' data collection describes them: the signup email is
-- verified by a single-use link before the account opens (SSO skips it),
-- unconfirmed signups are deleted after the window, a password is needed
-- unless Facebook or SSO, the brand may require optional fields, the
-- pre-GDPR migration warns the ambassadors, and the brand never sees an
-- incomplete signup.

SET client_min_messages = warning;
DROP DATABASE IF EXISTS popsell_t403;
CREATE DATABASE popsell_t403;
\c popsell_t403
SET client_min_messages = warning;
CREATE EXTENSION popsell CASCADE;
RESET client_min_messages;
\set SHOW_CONTEXT never

CREATE FUNCTION pg_temp.err(q text, OUT state text, OUT message text)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    state := 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.err(text) TO PUBLIC;
UPDATE popsell.settings SET bcrypt_cost = 4;

-- the token a signup's confirmation email carries
CREATE FUNCTION pg_temp.token_of(p_id bigint) RETURNS text LANGUAGE sql AS $$
    SELECT o.payload ->> 'token' FROM popsell.outbox o
     WHERE o.ambassador_id = p_id AND o.kind = 'email_confirmation'
     ORDER BY o.id DESC LIMIT 1 $$;
GRANT EXECUTE ON FUNCTION pg_temp.token_of(bigint) TO PUBLIC;

-- ------------------------------------------------------------------
-- A signup stays incomplete until its email is confirmed.
-- ------------------------------------------------------------------
SET ROLE popsell_app;
SELECT popsell.signup('someone.else@example.test', '{"first_name": "Sam"}', 'pw one', true) AS sam \gset
RESET ROLE;
SELECT status, email_confirmed_at IS NULL AS unconfirmed FROM popsell.ambassadors WHERE id = :sam;
-- one confirmation email, to the ambassador, with a token and its expiry
SELECT kind, contact_id, payload ->> 'purpose' AS purpose,
       length(payload ->> 'token') AS token_length,
       (payload ->> 'expires_at')::timestamptz = o.created_at + s.signup_confirmation_window AS expires_after_window
  FROM popsell.outbox o, popsell.settings s WHERE o.ambassador_id = :sam;
SELECT signup_confirmation_window AS default_window FROM popsell.settings;
-- only the token's hash is stored
SELECT t.token_hash = sha256(convert_to(pg_temp.token_of(:sam), 'UTF8')) AS hash_stored,
       position(convert_to(pg_temp.token_of(:sam), 'UTF8') IN t.token_hash) = 0 AS no_plain_token
  FROM popsell.ambassador_email_tokens t WHERE t.ambassador_id = :sam;
SET ROLE popsell_app;
SELECT popsell.check_password(:sam, 'pw one') AS incomplete_cannot_log_in;
SELECT * FROM pg_temp.err(format('SELECT popsell.record_login(%s)', :sam));
-- wrong, empty, NULL and oversized tokens
SELECT * FROM pg_temp.err($$SELECT popsell.confirm_ambassador_email('0123456789abcdef')$$);
SELECT * FROM pg_temp.err($$SELECT popsell.confirm_ambassador_email('')$$);
SELECT * FROM pg_temp.err($$SELECT popsell.confirm_ambassador_email(NULL)$$);
SELECT * FROM pg_temp.err($$SELECT popsell.confirm_ambassador_email(repeat('a', 257))$$);
-- the right one activates, once
SELECT popsell.confirm_ambassador_email(pg_temp.token_of(:sam)) = :sam AS confirmed;
SELECT * FROM pg_temp.err(format('SELECT popsell.confirm_ambassador_email(%L)', pg_temp.token_of(:sam)));
SELECT popsell.check_password(:sam, 'pw one') AS confirmed_logs_in;
RESET ROLE;
SELECT status, email_confirmed_at IS NOT NULL AS confirmed,
       (SELECT count(*) FROM popsell.ambassador_email_tokens) AS tokens_left
  FROM popsell.ambassadors WHERE id = :sam;
-- ambassadors and the brand cannot confirm for someone
SET ROLE popsell_ambassador;
SELECT * FROM pg_temp.err($$SELECT popsell.confirm_ambassador_email('x')$$);
SET ROLE popsell_brand;
SELECT * FROM pg_temp.err($$SELECT popsell.confirm_ambassador_email('x')$$);
RESET ROLE;

-- Terms accepted after the confirmation: active at that moment.
SET ROLE popsell_app;
SELECT popsell.signup('tia@example.test', '{}', 'pw tia') AS tia \gset
SELECT popsell.confirm_ambassador_email(pg_temp.token_of(:tia)) = :tia AS confirmed;
RESET ROLE;
SELECT status FROM popsell.ambassadors WHERE id = :tia;
SET ROLE popsell_app;
SELECT popsell.accept_terms(:tia);
RESET ROLE;
SELECT status FROM popsell.ambassadors WHERE id = :tia;

-- ------------------------------------------------------------------
-- Password rule: no active account without a password, unless Facebook
-- or SSO.
-- ------------------------------------------------------------------
SET ROLE popsell_app;
SELECT popsell.signup('nopw@example.test', '{}', NULL, true) AS nopw \gset
SELECT popsell.confirm_ambassador_email(pg_temp.token_of(:nopw)) = :nopw AS confirmed;
RESET ROLE;
SELECT status AS without_password FROM popsell.ambassadors WHERE id = :nopw;
SET ROLE popsell_app;
SELECT * FROM pg_temp.err(format('SELECT popsell.record_login(%s)', :nopw));
SELECT popsell.set_password(:nopw, 'pw now');
RESET ROLE;
SELECT status AS with_password FROM popsell.ambassadors WHERE id = :nopw;
-- Facebook sign-up: confirmed and terms accepted is enough
SET ROLE popsell_app;
SELECT popsell.signup('fb@example.test', '{"facebook_id": "fb-1001"}', NULL, true) AS fb \gset
SELECT popsell.confirm_ambassador_email(pg_temp.token_of(:fb)) = :fb AS confirmed;
RESET ROLE;
SELECT status AS facebook FROM popsell.ambassadors WHERE id = :fb;
-- vendor staff writing rows directly obey the same rule
SET ROLE popsell_technical;
SELECT * FROM pg_temp.err($$INSERT INTO popsell.ambassadors (email, status, terms_accepted_at) VALUES ('direct@example.test', 'active', now())$$);
SELECT * FROM pg_temp.err($$INSERT INTO popsell.ambassadors (email, status, terms_accepted_at, facebook_id) VALUES ('direct@example.test', 'active', now(), 'fb-1002')$$);
SELECT * FROM pg_temp.err(format('UPDATE popsell.ambassadors SET password_hash = NULL WHERE id = %s', :sam));
RESET ROLE;

-- ------------------------------------------------------------------
-- SSO signups are verified by the identity provider: no confirmation.
-- ------------------------------------------------------------------
SET ROLE popsell_app;
SELECT popsell.sso_upsert_ambassador('sso-una', '{"email": "una@example.test", "terms_accepted": true}') AS una \gset
RESET ROLE;
SELECT status, (SELECT count(*) FROM popsell.outbox o WHERE o.ambassador_id = :una) AS emails,
       (SELECT count(*) FROM popsell.ambassador_email_tokens t WHERE t.ambassador_id = :una) AS tokens
  FROM popsell.ambassadors WHERE id = :una;

-- ------------------------------------------------------------------
-- The brand never sees incomplete signups, nor acts on them.
-- ------------------------------------------------------------------
SET ROLE popsell_app;
SELECT popsell.signup('pending@example.test', '{}', 'pw p', true) AS pending \gset
RESET ROLE;
SELECT count(*) FILTER (WHERE status = 'signup_incomplete') AS incomplete_in_table FROM popsell.ambassadors;
SET ROLE popsell_brand;
SELECT count(*) FILTER (WHERE status = 'signup_incomplete') AS brand_table,
       count(*) FILTER (WHERE id = :pending) AS brand_sees_pending
  FROM popsell.ambassadors;
SELECT count(*) FILTER (WHERE status = 'signup_incomplete') AS brand_view FROM popsell.brand_ambassadors;
SELECT * FROM pg_temp.err(format('SELECT popsell.end_ambassador_contract(%s)', :pending));
SELECT * FROM pg_temp.err(format($$UPDATE popsell.ambassadors SET city = 'X' WHERE id = %s$$, :pending));
RESET ROLE;
SELECT city IS NULL AS brand_update_missed FROM popsell.ambassadors WHERE id = :pending;
SET ROLE popsell_brand_bi;
SELECT count(*) FILTER (WHERE status = 'signup_incomplete') AS bi_view FROM popsell.bi_ambassadors;
RESET ROLE;

-- ------------------------------------------------------------------
-- Unconfirmed signups expire: the token stops working and the account
-- is deleted by the ambassador_unconfirmed rule at the end of the window.
-- ------------------------------------------------------------------
SELECT 'ambassador_unconfirmed' IN (SELECT popsell.maintenance_rules()) AS rule_listed;
SELECT t.created_at + s.signup_confirmation_window AS deadline
  FROM popsell.ambassador_email_tokens t, popsell.settings s WHERE t.ambassador_id = :pending \gset
SELECT affected AS due_just_before FROM popsell.maintenance_preview(:'deadline'::timestamptz - interval '1 second')
 WHERE rule = 'ambassador_unconfirmed';
SELECT affected AS due_at_deadline FROM popsell.maintenance_preview(:'deadline'::timestamptz)
 WHERE rule = 'ambassador_unconfirmed';
-- an expired token is refused (the window is measured like the rule)
UPDATE popsell.ambassador_email_tokens SET created_at = created_at - s.signup_confirmation_window
  FROM popsell.settings s WHERE ambassador_id = :pending;
SET ROLE popsell_app;
SELECT * FROM pg_temp.err(format('SELECT popsell.confirm_ambassador_email(%L)', pg_temp.token_of(:pending)));
RESET ROLE;
SELECT status FROM popsell.ambassadors WHERE id = :pending;
SELECT rule, affected FROM popsell.run_maintenance(now()) WHERE rule = 'ambassador_unconfirmed';
SELECT count(*) AS pending_left FROM popsell.ambassadors WHERE id = :pending;
-- confirmed accounts and old incomplete accounts without a token stay
INSERT INTO popsell.ambassadors (email, status, created_at) VALUES ('legacy@example.test', 'signup_incomplete', now() - interval '30 days');
SELECT affected FROM popsell.maintenance_preview(now() + interval '1 day') WHERE rule = 'ambassador_unconfirmed';
-- the window has a floor of one day
SELECT * FROM pg_temp.err($$UPDATE popsell.settings SET signup_confirmation_window = '1 hour'$$);

-- ------------------------------------------------------------------
-- Fields the brand requires.
-- ------------------------------------------------------------------
SELECT required_ambassador_fields AS default_required FROM popsell.settings;
SET ROLE popsell_brand;
UPDATE popsell.settings SET required_ambassador_fields = '{position,birth_date}';
SELECT * FROM pg_temp.err($$UPDATE popsell.settings SET required_ambassador_fields = '{password_hash}'$$);
RESET ROLE;
SET ROLE popsell_app;
SELECT * FROM pg_temp.err($$SELECT popsell.signup('req@example.test', '{}', 'pw', true)$$);
SELECT * FROM pg_temp.err($$SELECT popsell.signup('req@example.test', '{"position": "Sales"}', 'pw', true)$$);
SELECT * FROM pg_temp.err($$SELECT popsell.signup('req@example.test', '{"position": " ", "birth_date": "1990-02-03"}', 'pw', true)$$);
SELECT * FROM pg_temp.err($$SELECT popsell.signup('req@example.test', '{"position": "Sales", "birth_date": "1990-02-03"}', 'pw', true)$$);
SELECT * FROM pg_temp.err($$SELECT popsell.sso_upsert_ambassador('sso-vic', '{"email": "vic@example.test", "terms_accepted": true}')$$);
RESET ROLE;
-- a profile update of an account missing a required field is refused,
-- naming the field; filling it is accepted
BEGIN;
SELECT set_config('popsell.ambassador_id', :'sam', true) IS NOT NULL AS acting;
SET LOCAL ROLE popsell_ambassador;
SELECT * FROM pg_temp.err($$UPDATE popsell.ambassadors SET city = 'Lyon'$$);
SELECT * FROM pg_temp.err($$UPDATE popsell.ambassadors SET position = 'Sales', birth_date = '1991-01-01'$$);
SELECT * FROM pg_temp.err($$UPDATE popsell.ambassadors SET position = NULL$$);
-- opt-ins are not profile fields
SELECT * FROM pg_temp.err($$UPDATE popsell.ambassadors SET newsletter_optin = true$$);
COMMIT;
-- the lifecycle never fails on a missing field
SET ROLE popsell_app;
SELECT popsell.record_login(:tia);
SELECT popsell.unsubscribe_ambassador(:tia) > now() AS leaving;
RESET ROLE;
SET ROLE popsell_brand;
SELECT popsell.restore_ambassador(:tia);
RESET ROLE;
SELECT status FROM popsell.ambassadors WHERE id = :tia;
UPDATE popsell.settings SET required_ambassador_fields = '{}';

-- ------------------------------------------------------------------
-- Existing rules still hold: whitelist, SSO exclusive, restore.
-- ------------------------------------------------------------------
SET ROLE popsell_brand;
SELECT popsell.whitelist_add(email => 'wendy@example.test') > 0 AS whitelisted;
RESET ROLE;
SET ROLE popsell_app;
SELECT * FROM pg_temp.err($$SELECT popsell.signup('xavier@example.test', '{}', 'pw', true)$$);
SELECT * FROM pg_temp.err($$SELECT popsell.signup('wendy@example.test', '{}', 'pw', true)$$);
RESET ROLE;
DELETE FROM popsell.registration_whitelist;
UPDATE popsell.settings SET sso_exclusive = true;
SET ROLE popsell_app;
SELECT * FROM pg_temp.err($$SELECT popsell.signup('yann@example.test', '{}', 'pw', true)$$);
RESET ROLE;
UPDATE popsell.settings SET sso_exclusive = false;
-- an incomplete signup restored from leaving is still incomplete
SELECT id AS wendy FROM popsell.ambassadors WHERE email = 'wendy@example.test' \gset
SET ROLE popsell_technical;
SELECT popsell.unsubscribe_ambassador(:wendy) > now() AS leaving;
SELECT popsell.restore_ambassador(:wendy);
RESET ROLE;
SELECT status FROM popsell.ambassadors WHERE id = :wendy;
SET ROLE popsell_app;
SELECT popsell.confirm_ambassador_email(pg_temp.token_of(:wendy)) = :wendy AS confirmed;
RESET ROLE;
SELECT status FROM popsell.ambassadors WHERE id = :wendy;

-- ------------------------------------------------------------------
-- The pre-GDPR migration warns the active ambassadors whose contacts it
-- changes, one notice each, counts only.
-- ------------------------------------------------------------------
INSERT INTO popsell.ambassadors (id, status, terms_accepted_at, email, first_name, password_hash) VALUES
    (901, 'active', now(), 'm1@example.test', 'Mia', popsell._bcrypt('x', popsell._bcrypt_salt(4))),
    (902, 'active', now(), 'm2@example.test', 'Max', popsell._bcrypt('x', popsell._bcrypt_salt(4))),
    (903, 'active', now(), 'm3@example.test', 'Moe', popsell._bcrypt('x', popsell._bcrypt_salt(4)));
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email, created_at, last_activity_at) VALUES
    (901, 'crm_manual', 'A', 'pa@contact.test', '2016-01-01', '2017-01-01'),
    (901, 'crm_manual', 'B', 'pb@contact.test', '2016-01-01', NULL),
    (901, 'crm_manual', 'C', 'pc@contact.test', '2016-01-01', NULL),
    (902, 'crm_manual', 'D', 'pd@contact.test', '2016-01-01', NULL);
-- 903 has no contact the migration changes
SET ROLE popsell_technical;
SELECT * FROM popsell.apply_pre_gdpr_migration();
RESET ROLE;
SELECT o.ambassador_id, o.contact_id, o.payload ->> 'optin_other' AS optin_other,
       o.payload ->> 'kept_new' AS kept_new,
       (o.payload ->> 'migrated_at')::timestamptz = o.created_at AS stamped,
       (o.payload ->> 'invite_before')::timestamptz = o.created_at + s.new_contact_invitation_window AS deadline
  FROM popsell.outbox o, popsell.settings s WHERE o.kind = 'migration_notice' ORDER BY o.ambassador_id;
-- a second run changes nothing and warns nobody again
SET ROLE popsell_technical;
SELECT * FROM popsell.apply_pre_gdpr_migration();
RESET ROLE;
SELECT count(*) AS notices FROM popsell.outbox WHERE kind = 'migration_notice';

