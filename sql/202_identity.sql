-- 202_identity: popsell.current_ambassador_id() across transactions
-- (COMMIT, ROLLBACK, ROLLBACK TO SAVEPOINT), malformed GUC values, the
-- login_role path, and the reading paths psql offers besides SELECT:
-- COPY TO STDOUT, COPY FROM (refused under row security), cursors and
-- prepared statements (SPEC section 2).  Runs in a database of its own.
SET client_min_messages = warning;
SELECT current_database() AS regress_db \gset
CREATE DATABASE popsell_identity_test;
\c popsell_identity_test
SET client_min_messages = warning;
CREATE EXTENSION popsell CASCADE;
CREATE ROLE ps_r_alice LOGIN;
GRANT popsell_ambassador TO ps_r_alice;
CREATE ROLE ps_r_app LOGIN;
GRANT popsell_app TO ps_r_app;
INSERT INTO popsell.ambassadors (id, status, terms_accepted_at, first_name, last_name, email, login_role)
VALUES (1, 'active', now(), 'Alice', 'A', 'alice@amb.test', 'ps_r_alice'),
       (2, 'active', now(), 'Bob', 'B', 'bob@amb.test', NULL),
       (3, 'signup_incomplete', NULL, 'Carl', 'C', 'carl@amb.test', NULL);
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
VALUES (1, 'crm_manual', 'A-one', 'a-one@c.test'), (2, 'crm_manual', 'B-one', 'b-one@c.test');
SELECT popsell.collect_contact(2, 'order', '{"first_name":"B-order","email":"b-order@c.test"}', NULL, true) IS NOT NULL AS collected;
RESET client_min_messages;

-- The GUC path: SET LOCAL lasts until COMMIT, ROLLBACK or a rollback to
-- an earlier savepoint.
SET ROLE ps_r_app;
BEGIN;
SET LOCAL popsell.ambassador_id = '2';
SET LOCAL ROLE popsell_ambassador;
SELECT popsell.current_ambassador_id() AS in_tx, (SELECT string_agg(first_name, ',' ORDER BY id) FROM popsell.contacts) AS sees;
COMMIT;
SELECT popsell.current_ambassador_id() IS NULL AS nobody_after_commit, current_user;
BEGIN;
SET LOCAL popsell.ambassador_id = '2';
SELECT popsell.current_ambassador_id() AS in_tx;
ROLLBACK;
SELECT popsell.current_ambassador_id() IS NULL AS nobody_after_rollback;
BEGIN;
SAVEPOINT s1;
SET LOCAL popsell.ambassador_id = '2';
SELECT popsell.current_ambassador_id() AS after_set;
ROLLBACK TO SAVEPOINT s1;
SELECT popsell.current_ambassador_id() IS NULL AS nobody_after_rollback_to_savepoint;
SET LOCAL popsell.ambassador_id = '1';
SAVEPOINT s2;
SET LOCAL popsell.ambassador_id = '2';
ROLLBACK TO SAVEPOINT s2;
SELECT popsell.current_ambassador_id() AS back_to_1;
COMMIT;
-- Malformed values mean nobody; a not-active ambassador is nobody.
BEGIN;
SET LOCAL popsell.ambassador_id = '';
SELECT popsell.current_ambassador_id() IS NULL AS empty_is_nobody;
SET LOCAL popsell.ambassador_id = '-1';
SELECT popsell.current_ambassador_id() IS NULL AS minus_one_is_nobody;
SET LOCAL popsell.ambassador_id = '2;drop table popsell.contacts';
SELECT popsell.current_ambassador_id() IS NULL AS injection_is_nobody;
SET LOCAL popsell.ambassador_id = ' 2';
SELECT popsell.current_ambassador_id() IS NULL AS space_is_nobody;
SET LOCAL popsell.ambassador_id = '99999999999999999999999';
SELECT popsell.current_ambassador_id() IS NULL AS overflow_is_nobody;
SELECT set_config('popsell.ambassador_id', repeat('1', 1048576), true) IS NOT NULL AS set_1mb;
SELECT popsell.current_ambassador_id() IS NULL AS one_mb_is_nobody;
SET LOCAL popsell.ambassador_id = '3';
SELECT popsell.current_ambassador_id() IS NULL AS not_active_is_nobody;
SET LOCAL popsell.ambassador_id = '4';
SELECT popsell.current_ambassador_id() IS NULL AS unknown_is_nobody;
COMMIT;
RESET ROLE;

-- Only trusted applications set the identity.
SET ROLE ps_r_alice;
SET popsell.ambassador_id = '2';
SELECT popsell.current_ambassador_id() AS login_role_identity;
RESET ROLE;
SET ROLE popsell_brand;
SET popsell.ambassador_id = '2';
RESET ROLE;

-- The login_role path, through COMMIT and ROLLBACK.
SET ROLE ps_r_alice;
BEGIN;
SELECT popsell.current_ambassador_id() AS alice;
ROLLBACK;
SELECT popsell.current_ambassador_id() AS alice_after_rollback;
-- COPY TO STDOUT follows row security; the email column is refused.
COPY (SELECT first_name FROM popsell.contacts ORDER BY id) TO STDOUT;
COPY popsell.contacts (id, first_name) TO STDOUT;
COPY popsell.contacts TO STDOUT;
COPY (SELECT first_name, email FROM popsell.my_contacts) TO STDOUT;
-- COPY FROM is refused on tables under row security; bulk paths go
-- through INSERT or popsell.import_contacts.
-- (from an empty client-side file: inline COPY data after a refused COPY
-- is read differently by psql minor versions)
\copy popsell.contacts (ambassador_id, source, first_name) FROM '/dev/null'
-- A cursor sees what a SELECT sees.
BEGIN;
DECLARE c CURSOR FOR SELECT first_name FROM popsell.contacts ORDER BY id;
FETCH ALL FROM c;
CLOSE c;
COMMIT;
-- A statement prepared as Alice, executed as the brand and as the app
-- acting for Bob, follows the role and the identity of the execution.
PREPARE names AS SELECT string_agg(first_name, ',' ORDER BY id) FROM popsell.contacts;
EXECUTE names;
RESET ROLE;
SET ROLE popsell_brand;
EXECUTE names;
COPY popsell.contacts (first_name, email) TO STDOUT;
RESET ROLE;
SET ROLE ps_r_app;
BEGIN;
SET LOCAL popsell.ambassador_id = '2';
SET LOCAL ROLE popsell_ambassador;
EXECUTE names;
COMMIT;
RESET ROLE;
DEALLOCATE names;

\c :regress_db
DROP DATABASE popsell_identity_test;
DROP ROLE ps_r_alice;
DROP ROLE ps_r_app;
