-- 401_ambassador_lifecycle: signup (terms, whitelist, SSO exclusive),
-- bcrypt passwords, logins, unsubscription / end of contract with a grace
-- period and restore, SSO provisioning and deletion, the activity log with
-- hashed IPs, and the bad inputs of each (SPEC section 5, issue 6).

-- Own database: ids and rows do not depend on other tests.
SET client_min_messages = warning;
DROP DATABASE IF EXISTS popsell_t401;
CREATE DATABASE popsell_t401;
\c popsell_t401
SET client_min_messages = warning;
CREATE EXTENSION popsell CASCADE;
RESET client_min_messages;
\set SHOW_CONTEXT never

-- pg_temp.err(sql): SQLSTATE and message of the error, or 'ok'; and
-- whether detail or hint mention a given secret (errors never carry
-- personal data).
CREATE FUNCTION pg_temp.err(q text, secret text DEFAULT NULL, OUT state text, OUT message text, OUT leaks boolean)
LANGUAGE plpgsql AS $$
DECLARE d text; h text;
BEGIN
    EXECUTE q;
    state := 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    leaks := secret IS NOT NULL AND position(lower(secret) IN lower(concat(message, d, h))) > 0;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.err(text, text) TO PUBLIC;

-- pg_temp.confirm(id): the ambassador follows the link of its signup's
-- confirmation email (the token is in the outbox row).
CREATE FUNCTION pg_temp.confirm(p_id bigint) RETURNS boolean LANGUAGE sql AS $$
    SELECT popsell.confirm_ambassador_email(o.payload ->> 'token') = p_id
      FROM popsell.outbox o
     WHERE o.ambassador_id = p_id AND o.kind = 'email_confirmation' $$;
GRANT EXECUTE ON FUNCTION pg_temp.confirm(bigint) TO PUBLIC;

-- Fast bcrypt for the tests; the default cost is 12.
SELECT bcrypt_cost AS default_bcrypt_cost FROM popsell.settings;
UPDATE popsell.settings SET bcrypt_cost = 4;

-- ------------------------------------------------------------------
-- signup
-- ------------------------------------------------------------------
SET ROLE popsell_app;
-- terms accepted: active once the email is confirmed; the email is
-- stored normalized
SELECT popsell.signup('  Ada.Lovelace@Example.TEST ', '{"first_name": "Ada", "city": "Lyon"}',
                      'correct horse', true) AS ada;
-- terms not accepted: signup_incomplete, no access
SELECT popsell.signup('bob@example.test', '{"first_name": "Bob"}', 'bobpass') AS bob;
SELECT pg_temp.confirm(1) AS ada_confirmed, pg_temp.confirm(2) AS bob_confirmed;
RESET ROLE;
SELECT id, status, email, first_name, terms_accepted_at IS NOT NULL AS terms, password_hash ~ '^\$2a\$04\$' AS bcrypt
  FROM popsell.ambassadors ORDER BY id;

SET ROLE popsell_app;
SELECT popsell.check_password(2, 'bobpass') AS incomplete_cannot_log_in;
SELECT * FROM pg_temp.err('SELECT popsell.record_login(2)');
SELECT popsell.accept_terms(2);
SELECT popsell.check_password(2, 'bobpass') AS completed_logs_in;
-- bad inputs of signup
SELECT * FROM pg_temp.err($$SELECT popsell.signup(NULL, '{}', NULL, true)$$);
SELECT * FROM pg_temp.err($$SELECT popsell.signup('not-an-email', '{}', NULL, true)$$, 'not-an-email');
SELECT * FROM pg_temp.err($$SELECT popsell.signup('ADA.lovelace@example.test', '{}', NULL, true)$$, 'ada');
SELECT * FROM pg_temp.err($$SELECT popsell.signup('c@example.test', '{"status": "active"}', NULL, true)$$);
SELECT * FROM pg_temp.err($$SELECT popsell.signup('c@example.test', '[]', NULL, true)$$);
SELECT * FROM pg_temp.err($$SELECT popsell.signup('c@example.test', '{}', '', true)$$);
RESET ROLE;
-- only trusted apps and vendor staff sign people up
SET ROLE popsell_ambassador;
SELECT * FROM pg_temp.err($$SELECT popsell.signup('c@example.test', '{}', NULL, true)$$);
SET ROLE popsell_brand;
SELECT * FROM pg_temp.err($$SELECT popsell.signup('c@example.test', '{}', NULL, true)$$);
RESET ROLE;

-- whitelist: when not empty, only whitelisted emails or customer ids
SET ROLE popsell_brand;
SELECT popsell.whitelist_add(email => 'Carol@Example.test') > 0 AS carol_whitelisted;
SELECT popsell.whitelist_add(customer_id => 'CUST-42') > 0 AS cust42_whitelisted;
SELECT * FROM pg_temp.err($$SELECT popsell.whitelist_add('x@example.test', 'CUST-1')$$);
RESET ROLE;
SELECT count(*) AS whitelist_plaintext
  FROM popsell.registration_whitelist
 WHERE encode(coalesce(email_hash, customer_id_hash), 'escape') ILIKE '%carol%';
-- a key rotation keeps older whitelist entries effective
SELECT popsell.rotate_hash_key() AS new_key;
SET ROLE popsell_app;
SELECT * FROM pg_temp.err($$SELECT popsell.signup('dave@example.test', '{}', NULL, true)$$, 'dave');
SELECT popsell.signup('carol@example.test', '{}', NULL, true) AS carol;
SELECT popsell.signup('erin@example.test', '{"customer_id": "cust-42"}', NULL, true) AS erin_by_customer_id;
SELECT pg_temp.confirm(3) AS carol_confirmed, pg_temp.confirm(4) AS erin_confirmed;
RESET ROLE;
DELETE FROM popsell.registration_whitelist;

-- SSO exclusive: no signup but SSO
UPDATE popsell.settings SET sso_exclusive = true;
SET ROLE popsell_app;
SELECT * FROM pg_temp.err($$SELECT popsell.signup('frank@example.test', '{}', NULL, true)$$, 'frank');
SELECT popsell.sso_upsert_ambassador('sso-frank', '{"email": "Frank@Example.test", "first_name": "Frank", "terms_accepted": true}') AS frank;
RESET ROLE;
UPDATE popsell.settings SET sso_exclusive = false;

-- ------------------------------------------------------------------
-- passwords
-- ------------------------------------------------------------------
SET ROLE popsell_app;
SELECT popsell.check_password(1, 'correct horse') AS right_password,
       popsell.check_password(1, 'wrong horse') AS wrong_password,
       popsell.check_password(1, NULL) AS null_password,
       popsell.check_password(3, 'anything') AS no_password_set;
SELECT * FROM pg_temp.err($$SELECT popsell.check_password(999, 'x')$$);
SELECT * FROM pg_temp.err($$SELECT popsell.check_password(NULL, 'x')$$);
SELECT popsell.set_password(3, 'carol secret');
SELECT popsell.check_password(3, 'carol secret') AS carol_password;
SELECT * FROM pg_temp.err($$SELECT popsell.set_password(3, NULL)$$);
SELECT * FROM pg_temp.err($$SELECT popsell.set_password(3, repeat('x', 73))$$);
SELECT * FROM pg_temp.err($$SELECT popsell.set_password(999, 'x')$$);
RESET ROLE;
-- the ambassador itself may change its own password, not another's
BEGIN;
SET LOCAL popsell.ambassador_id = '3';
SET LOCAL ROLE popsell_ambassador;
SELECT popsell.set_password(3, 'carol new');
SELECT * FROM pg_temp.err($$SELECT popsell.set_password(1, 'x')$$);
COMMIT;
-- a plain or non-bcrypt value is never stored, whoever writes it
SELECT * FROM pg_temp.err($$UPDATE popsell.ambassadors SET password_hash = 'hunter2' WHERE id = 1$$, 'hunter2');
SELECT * FROM pg_temp.err($$UPDATE popsell.ambassadors SET password_hash = md5('x') WHERE id = 1$$);
SELECT * FROM pg_temp.err($$INSERT INTO popsell.ambassadors (email, password_hash) VALUES ('g@example.test', 'plain')$$);
SELECT * FROM pg_temp.err($$UPDATE popsell.ambassadors SET password_hash = popsell._bcrypt('x', popsell._bcrypt_salt(4)) WHERE id = 4$$);
SELECT count(*) AS non_bcrypt_hashes FROM popsell.ambassadors
 WHERE password_hash !~ '^\$2[abxy]\$[0-9]{2}\$[./A-Za-z0-9]{53}$';
-- emails of ambassadors are stored normalized, whoever writes them
UPDATE popsell.ambassadors SET email = ' Carol@EXAMPLE.test' WHERE id = 3;
SELECT email FROM popsell.ambassadors WHERE id = 3;
SELECT * FROM pg_temp.err($$UPDATE popsell.ambassadors SET email = 'broken@' WHERE id = 3$$, 'broken');

-- ------------------------------------------------------------------
-- logins and the activity log
-- ------------------------------------------------------------------
UPDATE popsell.ambassadors SET inactivity_warnings_sent = 2, last_inactivity_warning_at = now() WHERE id = 1;
SET ROLE popsell_app;
SELECT popsell.record_login(1);
SELECT popsell.log_activity(1, 'login', '192.0.2.77', 'Mozilla/5.0') > 0 AS logged;
SELECT popsell.log_activity(1, 'publication', NULL, NULL) > 0 AS logged_without_ip;
SELECT * FROM pg_temp.err($$SELECT popsell.log_activity(1, NULL, '192.0.2.77', 'x')$$);
SELECT * FROM pg_temp.err($$SELECT popsell.log_activity(999, 'login', '192.0.2.77', 'x')$$);
SELECT * FROM pg_temp.err($$SELECT popsell.record_login(999)$$);
RESET ROLE;
SELECT last_login_at IS NOT NULL AS logged_in, inactivity_warnings_sent AS warnings, last_inactivity_warning_at
  FROM popsell.ambassadors WHERE id = 1;
SELECT kind, ip_hash = popsell.hash_identifier('192.0.2.77') AS ip_hashed, user_agent
  FROM popsell.activity_log ORDER BY id;
-- the plain IP is nowhere
SELECT count(*) AS plain_ip_rows FROM popsell.activity_log a
 WHERE a::text LIKE '%192.0.2.77%' OR encode(a.ip_hash, 'escape') LIKE '%192.0.2.77%';

-- ------------------------------------------------------------------
-- unsubscription, end of contract, restore
-- ------------------------------------------------------------------
BEGIN;
SET LOCAL popsell.ambassador_id = '1';
SET LOCAL ROLE popsell_ambassador;
SELECT popsell.current_ambassador_id() AS acting_as;
SELECT popsell.unsubscribe_ambassador(1) > now() AS deletion_in_the_future;
-- access is blocked at once
SELECT popsell.current_ambassador_id() AS acting_as_after;
COMMIT;
SELECT status, leaving_reason, deletion_due_at - now() BETWEEN interval '6 days 23 hours' AND interval '7 days' AS seven_days
  FROM popsell.ambassadors WHERE id = 1;
SET ROLE popsell_app;
SELECT popsell.check_password(1, 'x') AS leaving_password_false;
SELECT popsell.check_password(1, 'correct horse') AS leaving_right_password_false;
SELECT * FROM pg_temp.err('SELECT popsell.record_login(1)');
SELECT * FROM pg_temp.err('SELECT popsell.set_password(1, $p$x$p$)');
SELECT * FROM pg_temp.err('SELECT popsell.unsubscribe_ambassador(1)');
-- only the brand, the account team or the technical team restore
SELECT * FROM pg_temp.err('SELECT popsell.restore_ambassador(1)');
RESET ROLE;
SET ROLE popsell_brand;
SELECT popsell.restore_ambassador(1);
SELECT * FROM pg_temp.err('SELECT popsell.restore_ambassador(1)');
SELECT * FROM pg_temp.err('SELECT popsell.restore_ambassador(999)');
SELECT * FROM pg_temp.err('SELECT popsell.restore_ambassador(NULL)');
RESET ROLE;
SELECT status, leaving_reason, deletion_due_at FROM popsell.ambassadors WHERE id = 1;
SET ROLE popsell_app;
SELECT popsell.check_password(1, 'correct horse') AS restored_logs_in;
RESET ROLE;

-- end of contract by the brand; restore refused once the grace is over
SET ROLE popsell_brand;
SELECT popsell.end_ambassador_contract(2) IS NOT NULL AS ended;
RESET ROLE;
SELECT status, leaving_reason FROM popsell.ambassadors WHERE id = 2;
UPDATE popsell.ambassadors SET deletion_due_at = now() - interval '1 minute' WHERE id = 2;
SET ROLE popsell_account_team;
SELECT * FROM pg_temp.err('SELECT popsell.restore_ambassador(2)');
RESET ROLE;
-- a grace period that is over: no rollback
SET ROLE popsell_technical;
SELECT popsell.unsubscribe_ambassador(3) > now() AS due_later;
RESET ROLE;
UPDATE popsell.ambassadors SET deletion_due_at = now() - interval '1 second' WHERE id = 3;
SET ROLE popsell_technical;
SELECT * FROM pg_temp.err('SELECT popsell.restore_ambassador(3)');
RESET ROLE;
-- a grace shorter than one day is refused (SPEC section 3, v2)
SELECT state FROM pg_temp.err($$UPDATE popsell.settings SET deletion_grace = '0'$$);

-- the lifecycle columns move only through these functions
SET ROLE popsell_account_team;
SELECT * FROM pg_temp.err($$UPDATE popsell.ambassadors SET status = 'active' WHERE id = 2$$);
SELECT * FROM pg_temp.err($$UPDATE popsell.ambassadors SET deletion_due_at = now() + interval '1 year' WHERE id = 2$$);
RESET ROLE;
-- an ambassador may not unsubscribe someone else
BEGIN;
SET LOCAL popsell.ambassador_id = '1';
SET LOCAL ROLE popsell_ambassador;
SELECT * FROM pg_temp.err('SELECT popsell.unsubscribe_ambassador(4)');
SELECT * FROM pg_temp.err('SELECT popsell.end_ambassador_contract(1)');
COMMIT;

-- ------------------------------------------------------------------
-- SSO
-- ------------------------------------------------------------------
SET ROLE popsell_app;
-- provisioning without accepted terms: no access yet
SELECT popsell.sso_upsert_ambassador('sso-gina', '{"email": "gina@example.test", "first_name": "Gina", "kind": "employee"}') AS gina;
RESET ROLE;
SELECT id, kind, status, email, first_name, sso_subject FROM popsell.ambassadors WHERE sso_subject IS NOT NULL ORDER BY id;
SET ROLE popsell_app;
-- next login: data updated, terms accepted, login recorded
SELECT popsell.sso_upsert_ambassador('sso-gina', '{"last_name": "Green", "city": "Nantes", "terms_accepted": true}') AS gina_again;
SELECT popsell.sso_upsert_ambassador('sso-frank', '{"email": "frank.new@example.test"}') AS frank_again;
RESET ROLE;
SELECT id, status, email, first_name, last_name, city, last_login_at IS NOT NULL AS logged_in
  FROM popsell.ambassadors WHERE sso_subject IS NOT NULL ORDER BY id;
SET ROLE popsell_app;
SELECT * FROM pg_temp.err($$SELECT popsell.sso_upsert_ambassador('sso-new', '{"first_name": "No Email"}')$$);
SELECT * FROM pg_temp.err($$SELECT popsell.sso_upsert_ambassador(NULL, '{"email": "h@example.test"}')$$);
SELECT * FROM pg_temp.err($$SELECT popsell.sso_upsert_ambassador('sso-new', '{"email": "h@", "first_name": "H"}')$$, 'h@');
SELECT * FROM pg_temp.err($$SELECT popsell.sso_upsert_ambassador('sso-new', '{"email": "carol@example.test"}')$$, 'carol');
SELECT * FROM pg_temp.err($$SELECT popsell.sso_upsert_ambassador('sso-gina', '{"password_hash": "x"}')$$);
-- deletion from the brand's identity provider: leaving with grace, repeatable
SELECT popsell.sso_delete_ambassador('sso-gina') AS gina_deleted;
SELECT popsell.sso_delete_ambassador('sso-gina') AS gina_deleted_again;
SELECT * FROM pg_temp.err($$SELECT popsell.sso_delete_ambassador('sso-nobody')$$);
SELECT * FROM pg_temp.err($$SELECT popsell.sso_upsert_ambassador('sso-gina', '{}')$$);
RESET ROLE;
SELECT status, leaving_reason, deletion_due_at > now() AS in_grace FROM popsell.ambassadors WHERE sso_subject = 'sso-gina';
