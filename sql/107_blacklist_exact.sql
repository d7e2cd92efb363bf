-- 107_blacklist_exact: SPEC C3, a blacklist entry applies to its own email
-- only.  The C probe finds candidates through lossy structures (the
-- blacklist's hash index keeps a 32-bit code of each digest; the
-- per-backend Bloom filter a few bits) and must recheck the full digest.
-- With a legacy key (plain SHA-256, so the digests are reproducible),
-- emails whose digests share the hash index's code are searched for; one
-- of each pair is blacklisted, and the other, innocent, must be stored
-- untouched: through the index probe (a fresh backend's first rows) and
-- through the Bloom filter (built after 2,000 probes).  Any wrong
-- decision is listed with the statements that reproduce it.

\set regdb :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS popsell_t107;
CREATE DATABASE popsell_t107;
\c popsell_t107
\i sql/include/consent_fixture.sql

SELECT popsell.rotate_hash_key(legacy => true) > 1 AS legacy_key;

-- hash_array() of a one-element array is 31 plus the element type's hash
-- function: for bytea, the code the hash index stores.
CREATE TABLE t107_cand AS
SELECT i, 'fp' || i || '@t107.example.test' AS email,
       popsell.hash_email('fp' || i || '@t107.example.test') AS digest
  FROM generate_series(1, 300000) i;
CREATE TABLE t107_pairs AS
SELECT row_number() OVER (ORDER BY a.i, b.i) AS n, a.email AS listed, b.email AS innocent,
       a.digest = b.digest AS same_digest
  FROM t107_cand a
  JOIN t107_cand b ON hash_array(ARRAY[a.digest]) = hash_array(ARRAY[b.digest]) AND a.i < b.i;
DELETE FROM t107_pairs p
 WHERE EXISTS (SELECT 1 FROM t107_pairs q WHERE q.listed = p.innocent OR q.innocent = p.listed);
ALTER TABLE t107_pairs ADD COLUMN reason popsell.blacklist_reason, ADD COLUMN round text;
UPDATE t107_pairs
   SET reason = (ARRAY['global_optout', 'spam', 'hard_bounce'])[1 + n % 3]::popsell.blacklist_reason,
       round = CASE WHEN n % 2 = 0 THEN 'index' ELSE 'bloom' END;
SELECT count(*) >= 4 AS enough_pairs, bool_or(same_digest) AS any_same_digest,
       count(DISTINCT reason) = 3 AS every_reason, count(DISTINCT round) = 2 AS both_rounds
  FROM t107_pairs;
SELECT count(*) FILTER (WHERE popsell._blacklist_add(listed, reason) IS NOT NULL) = count(*) AS blacklisted
  FROM t107_pairs;

-- Round "index": a fresh backend's first probes go through the hash index.
\c popsell_t107
INSERT INTO popsell.contacts (ambassador_id, source, email)
SELECT 1, 'crm_manual', innocent FROM t107_pairs WHERE round = 'index';
-- Round "bloom": enough probes to build the filter, then the rest.
INSERT INTO popsell.contacts (ambassador_id, source, email)
SELECT 2, 'crm_manual', 'filler' || i || '@t107.example.test' FROM generate_series(1, 2100) i;
INSERT INTO popsell.contacts (ambassador_id, source, email)
SELECT 1, 'crm_manual', innocent FROM t107_pairs WHERE round = 'bloom';
-- And an email changed to an innocent one (the UPDATE probe).
UPDATE popsell.contacts SET email = (SELECT innocent FROM t107_pairs WHERE n = (SELECT min(n) FROM t107_pairs))
 WHERE email = 'filler1@t107.example.test';

-- Every innocent stored once per insert, opted in nothing, email ok; the
-- SQL-side check (bytes compared) agrees.
CREATE TABLE t107_wrong AS
SELECT p.n, p.round, p.reason, p.listed, p.innocent, count(c.id) AS stored,
       string_agg(DISTINCT c.ambassador_optin::text || '/' || c.email_status::text, ',') AS states
  FROM t107_pairs p
  LEFT JOIN popsell.contacts c ON c.email = p.innocent
 GROUP BY p.n, p.round, p.reason, p.listed, p.innocent
HAVING count(c.id) <> CASE WHEN p.n = (SELECT min(n) FROM t107_pairs) THEN 2 ELSE 1 END
    OR bool_or(c.ambassador_optin <> 'new' OR c.email_status <> 'ok')
    OR popsell._globally_opted_out(p.innocent);
SELECT count(*) AS wrong_decisions FROM t107_wrong;
SELECT format('-- %s probe, wrong state %s (stored %s times); reproduce with a legacy key:', round, coalesce(states, 'none'), stored)
       || E'\n' || format('SELECT popsell.rotate_hash_key(true); SELECT popsell._blacklist_add(%L, %L);', listed, reason)
       || E'\n' || format('INSERT INTO popsell.contacts (ambassador_id, source, email) VALUES (1, ''crm_manual'', %L);', innocent)
       AS reproduce
  FROM t107_wrong ORDER BY n;

-- The blacklisted emails themselves still match.
INSERT INTO popsell.contacts (ambassador_id, source, email)
SELECT 4, 'crm_manual', listed FROM t107_pairs;
SELECT p.reason, count(c.id) = 0 AS all_skipped,
       bool_and(c.email_status::text = p.reason::text) AS status_imposed
  FROM t107_pairs p LEFT JOIN popsell.contacts c ON c.email = p.listed AND c.ambassador_id = 4
 GROUP BY p.reason ORDER BY p.reason;

\c :regdb
SET client_min_messages = warning;
DROP DATABASE popsell_t107;
