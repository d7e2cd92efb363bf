-- 203_identity_per_transaction: popsell.ambassador_id, popsell.actor,
-- popsell.as_of and popsell.consent_text count only in the transaction
-- that set them (SPEC section
-- 2, v2).  A plain (session) SET on a pooled connection, a value set
-- before the library was loaded, and role or database defaults identify
-- nobody in any later transaction; ALTER ROLE/DATABASE ... SET is refused
-- where PostgreSQL asks the library; SET LOCAL and set_config(..., true)
-- work.  Runs in a database of its own.
SET client_min_messages = warning;
SELECT current_database() AS regress_db \gset
CREATE DATABASE popsell_idtx_test;
\c popsell_idtx_test
SET client_min_messages = warning;
CREATE EXTENSION popsell CASCADE;
CREATE ROLE ps_t_web1 LOGIN;
CREATE ROLE ps_t_web2 LOGIN;
GRANT popsell_app TO ps_t_web1, ps_t_web2;
INSERT INTO popsell.ambassadors (id, status, terms_accepted_at, first_name, last_name, email)
VALUES (1, 'active', now(), 'Alice', 'A', 'alice@amb.example.test'),
       (2, 'active', now(), 'Bob', 'B', 'bob@amb.example.test');
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
VALUES (1, 'crm_manual', 'A-one', 'a-one@c.example.test'),
       (2, 'crm_manual', 'B-one', 'b-one@c.example.test');
RESET client_min_messages;

-- A client of a pooled connection forgets LOCAL: its own transaction acts
-- as ambassador 1, the next client's transactions act as nobody and see no
-- contact.
SET ROLE ps_t_web1;
BEGIN;
SET popsell.ambassador_id = '1';
SET LOCAL ROLE popsell_ambassador;
SELECT popsell.current_ambassador_id() AS same_transaction,
       (SELECT string_agg(first_name, ',') FROM popsell.my_contacts) AS sees;
COMMIT;
SET popsell.ambassador_id = '1';                       -- a transaction of its own
RESET ROLE;
SET ROLE ps_t_web2;                                    -- the next client
SHOW popsell.ambassador_id;                            -- the value is still there ...
SELECT popsell.current_ambassador_id() IS NULL AS next_transaction_is_nobody;
BEGIN;
SET LOCAL ROLE popsell_ambassador;
SELECT popsell.current_ambassador_id() IS NULL AS nobody,  -- ... and identifies nobody
       (SELECT count(*) FROM popsell.contacts) AS contacts_seen,
       (SELECT count(*) FROM popsell.my_contacts) AS my_contacts_seen;
COMMIT;
-- set_config(..., false) is the same as a plain SET.
SELECT set_config('popsell.ambassador_id', '2', false);
SELECT popsell.current_ambassador_id() IS NULL AS set_config_session_is_nobody;

-- The forms that work: SET LOCAL and set_config(..., true), also over a
-- stale session value, and only until the end of their transaction.
BEGIN;
SET LOCAL popsell.ambassador_id = '2';
SET LOCAL ROLE popsell_ambassador;
SELECT popsell.current_ambassador_id() AS set_local,
       (SELECT string_agg(first_name, ',') FROM popsell.my_contacts) AS sees;
COMMIT;
BEGIN;
SELECT set_config('popsell.ambassador_id', '1', true) AS set_config_local;
SET LOCAL ROLE popsell_ambassador;
SELECT popsell.current_ambassador_id() AS set_config_true,
       (SELECT string_agg(first_name, ',') FROM popsell.my_contacts) AS sees;
COMMIT;
SELECT popsell.current_ambassador_id() IS NULL AS nobody_after_commit;
-- Rolling a SET LOCAL back to a savepoint brings back the stale session
-- value, still stale.
BEGIN;
SAVEPOINT s1;
SET LOCAL popsell.ambassador_id = '1';
SELECT popsell.current_ambassador_id() AS in_savepoint;
ROLLBACK TO SAVEPOINT s1;
SHOW popsell.ambassador_id;
SELECT popsell.current_ambassador_id() IS NULL AS stale_value_back_is_nobody;
COMMIT;
RESET popsell.ambassador_id;
RESET ROLE;

-- A plain SET made before the library was loaded in the backend (a fresh
-- pooled connection) is as stale once the library loads.
\c popsell_idtx_test
SET ROLE ps_t_web1;
SET popsell.ambassador_id = '1';
SELECT popsell.current_ambassador_id() IS NULL AS placeholder_then_load_is_nobody;
RESET ROLE;
\c popsell_idtx_test
SET ROLE ps_t_web1;
BEGIN;
SET LOCAL popsell.ambassador_id = '1';
SELECT popsell.current_ambassador_id() AS placeholder_set_local_then_load;
COMMIT;
SELECT popsell.current_ambassador_id() IS NULL AS nobody_after_commit;
RESET ROLE;

-- Role and database defaults: refused when the library is loaded ...
\set VERBOSITY terse
ALTER ROLE ps_t_web1 SET popsell.ambassador_id = '1';
ALTER DATABASE popsell_idtx_test SET popsell.ambassador_id = '1';
ALTER ROLE ps_t_web1 IN DATABASE popsell_idtx_test SET popsell.ambassador_id = '1';
\set VERBOSITY default
-- ... and ineffective when PostgreSQL stored one without asking (the
-- library was not loaded in the session that ran ALTER DATABASE).
\c popsell_idtx_test
ALTER DATABASE popsell_idtx_test SET popsell.ambassador_id = '1';
ALTER DATABASE popsell_idtx_test SET popsell.actor = 'system';
ALTER DATABASE popsell_idtx_test SET popsell.as_of = '2000-01-01 00:00:00+00';
\c popsell_idtx_test
\set VERBOSITY terse
SELECT popsell.current_ambassador_id() IS NULL AS database_default_is_nobody;
\set VERBOSITY default
SELECT current_setting('popsell.ambassador_id') = '' AS not_applied;
SELECT popsell.current_path() AS path_not_system;
SELECT popsell._lifecycle_now() = now() AS as_of_not_applied;
ALTER DATABASE popsell_idtx_test RESET ALL;

-- The other settings that change what a caller may do: a plain SET of
-- popsell.actor or popsell.as_of lasts for the session but counts only in
-- its own transaction; popsell's functions still set them in SET clauses
-- (the path of a consent change) and with set_config(..., true)
-- (run_maintenance's "as of").
SET popsell.actor = 'system';
SELECT popsell.current_path() AS path_after_plain_set;
BEGIN;
SET LOCAL popsell.actor = 'system';
SELECT popsell.current_path() AS path_set_local;
COMMIT;
SET popsell.as_of = '2000-01-01 00:00:00+00';
SELECT popsell._lifecycle_now() = now() AS lifecycle_now_ignores_stale_as_of,
       popsell._erasure_now() = now() AS erasure_now_ignores_stale_as_of,
       popsell._as_of() IS NULL AS as_of_is_null;
BEGIN;
SELECT set_config('popsell.as_of', '2000-01-01 00:00:00+00', true) IS NOT NULL AS set;
SELECT popsell._lifecycle_now() = '2000-01-01 00:00:00+00' AS as_of_in_transaction;
COMMIT;
RESET popsell.actor;
RESET popsell.as_of;
-- a consent change still records its path (the SET clause of accept_invitation)
SELECT popsell.send_invitation(c.id) IS NOT NULL AS invited FROM popsell.contacts c WHERE c.first_name = 'A-one';
SELECT popsell.accept_invitation(c.id) FROM popsell.contacts c WHERE c.first_name = 'A-one';
SELECT e.actor, e.new_ambassador_optin
  FROM popsell.consent_events e JOIN popsell.contacts c ON c.id = e.contact_id
 WHERE c.first_name = 'A-one' ORDER BY e.id DESC LIMIT 1;

-- popsell.consent_text is recorded in the ledger with each consent: a
-- plain SET by one client of a pooled connection is not recorded for the
-- next client's consents; SET LOCAL is; it is no role or database default.
SET ROLE ps_t_web1;
SET popsell.consent_text = 'terms-stale';
RESET ROLE;
SET ROLE ps_t_web2;
SELECT popsell.collect_contact(2, 'order', '{"first_name": "B-two", "email": "b-two@c.example.test"}', NULL, true) IS NOT NULL AS collected;
RESET ROLE;
SELECT array_agg(DISTINCT coalesce(e.consent_text, '(none)')) AS recorded_after_plain_set
  FROM popsell.consent_events e JOIN popsell.contacts c ON c.id = e.contact_id WHERE c.first_name = 'B-two';
BEGIN;
SET LOCAL ROLE ps_t_web2;
SET LOCAL popsell.consent_text = 'terms-2226.1';
SELECT popsell.collect_contact(2, 'order', '{"first_name": "B-three", "email": "b-three@c.example.test"}', NULL, true) IS NOT NULL AS collected;
COMMIT;
SELECT array_agg(DISTINCT coalesce(e.consent_text, '(none)')) AS recorded_after_set_local
  FROM popsell.consent_events e JOIN popsell.contacts c ON c.id = e.contact_id WHERE c.first_name = 'B-three';
RESET popsell.consent_text;
\set VERBOSITY terse
ALTER ROLE ps_t_web1 SET popsell.consent_text = 'terms-role';
ALTER DATABASE popsell_idtx_test SET popsell.consent_text = 'terms-db';
\set VERBOSITY default
SELECT count(*) AS stored_defaults FROM pg_db_role_setting WHERE array_to_string(setconfig, ',') LIKE '%consent_text%';
ALTER ROLE ps_t_web1 RESET ALL;
ALTER DATABASE popsell_idtx_test RESET ALL;

-- Only popsell (its trusted applications and superusers) says which
-- consent text was shown (SPEC S13): an ambassador logging in with its
-- own role, or the brand, may not write a text of its choosing into the
-- proof ledger, neither in its transaction nor by a value set before the
-- library was loaded.
CREATE ROLE ps_t_amb4 LOGIN;
GRANT popsell_ambassador TO ps_t_amb4;
INSERT INTO popsell.ambassadors (id, status, terms_accepted_at, first_name, last_name, email, login_role)
VALUES (4, 'active', now(), 'Dora', 'D', 'dora@amb.example.test', 'ps_t_amb4');
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
VALUES (4, 'crm_manual', 'D-one', 'd-one@c.example.test'),
       (4, 'crm_manual', 'D-two', 'd-two@c.example.test'),
       (4, 'crm_manual', 'D-three', 'd-three@c.example.test');
SELECT current_user AS regress_user \gset
SET ROLE ps_t_amb4;
BEGIN;
SET LOCAL popsell.consent_text = 'contact-signed-terms-v9';
SELECT popsell.send_invitation(c.id) IS NOT NULL AS invited FROM popsell.contacts c WHERE c.first_name = 'D-one';
COMMIT;
SELECT popsell.send_invitation(c.id) IS NOT NULL AS invited_without FROM popsell.contacts c WHERE c.first_name = 'D-one';
BEGIN;
SELECT set_config('popsell.consent_text', 'contact-signed-terms-v9', true);
ROLLBACK;
RESET ROLE;
BEGIN;
SET LOCAL ROLE popsell_brand;
SET LOCAL popsell.consent_text = 'brand-terms-v9';
ROLLBACK;
-- Anybody may clear it.
SET ROLE ps_t_amb4;
BEGIN;
SET LOCAL popsell.consent_text = '';
COMMIT;
RESET ROLE;
-- Set by the ambassador before the library was loaded in its backend:
-- dropped when it loads.
-- (A fresh backend, then the ambassador's role: a test cluster may not
-- let a new login role connect without a password.)
\c popsell_idtx_test :regress_user
SET ROLE ps_t_amb4;
BEGIN;
SET LOCAL popsell.consent_text = 'contact-signed-terms-v9';
SELECT popsell.send_invitation(c.id) IS NOT NULL AS invited FROM popsell.contacts c WHERE c.first_name = 'D-two';
SELECT current_setting('popsell.consent_text') AS after_load;
COMMIT;
\c popsell_idtx_test :regress_user
SET client_min_messages = warning;
SELECT c.first_name, e.new_ambassador_optin, coalesce(e.consent_text, '(none)') AS consent_text
  FROM popsell.consent_events e JOIN popsell.contacts c ON c.id = e.contact_id
 WHERE c.ambassador_id = 4 ORDER BY e.id;
-- A trusted application still records the text it showed.
BEGIN;
SET LOCAL ROLE ps_t_web1;
SET LOCAL popsell.consent_text = 'terms-2226.2';
SET LOCAL popsell.ambassador_id = '4';
SET LOCAL ROLE popsell_ambassador;
SELECT popsell.send_invitation(c.id) IS NOT NULL AS invited FROM popsell.contacts c WHERE c.first_name = 'D-three';
COMMIT;
SELECT coalesce(e.consent_text, '(none)') AS recorded_by_app
  FROM popsell.consent_events e JOIN popsell.contacts c ON c.id = e.contact_id
 WHERE c.first_name = 'D-three' ORDER BY e.id DESC LIMIT 1;

-- popsell's own checks read the identity through the same rule: a stale
-- value naming an inactive ambassador tells the next client nothing
-- about it (PS200 "not you", not PS300 "not active (status ...)").
INSERT INTO popsell.ambassadors (id, status, first_name, last_name, email)
VALUES (3, 'signup_incomplete', 'Carl', 'C', 'carl@amb.example.test');
SET ROLE ps_t_web1;
SET popsell.ambassador_id = '3';
RESET ROLE;
SET ROLE ps_t_web2;
BEGIN;
SET LOCAL ROLE popsell_ambassador;
\set VERBOSITY terse
SELECT popsell.import_contacts(3, '[]');
\set VERBOSITY default
ROLLBACK;
RESET ROLE;
RESET popsell.ambassador_id;

-- A parallel worker could not tell a fresh value from a stale one: the
-- function runs in the leader only.
SELECT proparallel FROM pg_proc WHERE oid = 'popsell.current_ambassador_id()'::regprocedure;

\c :regress_db
DROP DATABASE popsell_idtx_test;
DROP ROLE ps_t_web1;
DROP ROLE ps_t_web2;
DROP ROLE ps_t_amb4;
