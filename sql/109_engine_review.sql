-- 109_engine_review: what a review of the engine found, kept fixed.
--  * Mail to a contact is filed under the contact's own ambassador (a
--    leaving ambassador's unsent mail is cancelled by ambassador, SPEC C4).
--  * The hashing functions stay in the leader of a parallel query (workers
--    would read the keys under the query's snapshot, not the latest).
--  * The blacklist and key caches are invalidated under every
--    session_replication_role (replication apply, data-fix scripts).
\set regdb :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS popsell_t109;
CREATE DATABASE popsell_t109;
\c popsell_t109
\i sql/include/consent_fixture.sql

-- An opted-in contact of ambassador 1.
SELECT popsell.collect_contact(1, 'order', '{"first_name": "Ord", "email": "ord109@example.test"}',
                               NULL, true) AS c \gset
SET ROLE popsell_t1_app;
-- filed under another ambassador, or under none: refused
SELECT pg_temp.try(format('INSERT INTO popsell.outbox (kind, ambassador_id, contact_id) VALUES (%L, 2, %s)',
                          'publication', :c)) AS other_ambassador,
       pg_temp.try(format('INSERT INTO popsell.outbox (kind, ambassador_id, contact_id) VALUES (%L, NULL, %s)',
                          'publication', :c)) AS no_ambassador,
       pg_temp.try(format('INSERT INTO popsell.outbox (kind, ambassador_id, contact_id) VALUES (%L, 1, %s)',
                          'publication', :c)) AS own_ambassador;
RESET ROLE;
-- leaving cancels it
SELECT popsell.unsubscribe_ambassador(1) IS NOT NULL AS leaving;
SELECT count(*) AS unsent_publications FROM popsell.outbox
 WHERE contact_id = :c AND kind = 'publication' AND sent_at IS NULL;

SELECT p.proname, p.proparallel
  FROM pg_proc p
 WHERE p.pronamespace = 'popsell'::regnamespace
   AND p.proname IN ('hash_email', 'hash_identifier', 'email_hashes', 'hash_key_id')
 ORDER BY 1;
SELECT t.tgrelid::regclass, t.tgname, t.tgenabled
  FROM pg_trigger t
 WHERE t.tgname IN ('popsell_90_blacklist_changed', 'popsell_90_keys_changed')
 ORDER BY 1;

\c :regdb
SET client_min_messages = warning;
DROP DATABASE popsell_t109;
