-- 111_optout_recheck_state: the recheck state of popsell_80_optout_recheck
-- (rows probed, not yet past their WHEN popsell._optout_raced()) does not
-- outlive the row that raised it (review F4/F5).
--  * A row probed and then skipped by ON CONFLICT DO NOTHING, or failing
--    after its probe, left the state raised: every later row of the
--    transaction was rechecked once any opt-out started anywhere.
--  * popsell._optout_raced() answered, outside the statement that probed,
--    whether anyone opted out since: an oracle for any role.
-- An opt-out starting is simulated by bumping popsell.optout_generation
-- (what popsell._blacklist_add does after its entry).
\set regdb :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS popsell_t111;
CREATE DATABASE popsell_t111;
\c popsell_t111
\i sql/include/consent_fixture.sql
SET track_functions = 'all';

INSERT INTO popsell.contacts (id, ambassador_id, source, email)
VALUES (11, 1, 'crm_manual', 'x111@t.test');

-- a skipped row, then rows of one statement while an opt-out starts
-- (calls are counted within one transaction block: no stats flush there)
BEGIN;
SELECT coalesce(pg_stat_get_xact_function_calls('popsell.contacts_optout_recheck'::regproc), 0) AS c0 \gset
INSERT INTO popsell.contacts (id, ambassador_id, source, email)
VALUES (11, 2, 'crm_manual', 'x111@t.test') ON CONFLICT (id) DO NOTHING;
SELECT nextval('popsell.optout_generation') > 0 AS optout_started;
INSERT INTO popsell.contacts (id, ambassador_id, source, email)
SELECT g, 1, 'crm_manual', 'r' || g || '@t.test' FROM generate_series(1001, 1050) g;
SELECT coalesce(pg_stat_get_xact_function_calls('popsell.contacts_optout_recheck'::regproc), 0) - :c0
       AS rechecks_after_skipped_row;
ROLLBACK;

-- the same inside one statement: a skipped row first, the opt-out starts
-- while the following rows are produced
BEGIN;
SELECT coalesce(pg_stat_get_xact_function_calls('popsell.contacts_optout_recheck'::regproc), 0) AS c0 \gset
INSERT INTO popsell.contacts (id, ambassador_id, source, email)
SELECT g, 1, 'crm_manual',
       CASE WHEN g = 1001 AND nextval('popsell.optout_generation') > 0 THEN 'r' ELSE 'r' END || g || '@t.test'
  FROM (SELECT 11 AS g UNION ALL SELECT generate_series(1001, 1050)) s
ON CONFLICT (id) DO NOTHING;
SELECT coalesce(pg_stat_get_xact_function_calls('popsell.contacts_optout_recheck'::regproc), 0) - :c0
       AS rechecks_in_statement;
ROLLBACK;

-- the oracle: an ambassador's failing insert, an opt-out elsewhere, then ask
BEGIN;
SET LOCAL popsell.ambassador_id = '1';
SET LOCAL ROLE popsell_t1_amb;
SAVEPOINT s;
SELECT pg_temp.try($$INSERT INTO popsell.contacts (ambassador_id, source, email) VALUES (1, 'crm_manual', 'X111@t.test')$$) AS held;
ROLLBACK TO s;
SAVEPOINT s2;
INSERT INTO popsell.contacts (ambassador_id, source, email) VALUES (1, 'crm_manual', 'x111@t.test');
ROLLBACK TO s2;
RESET ROLE;
SELECT nextval('popsell.optout_generation') > 0 AS optout_started;
SET LOCAL ROLE popsell_t1_amb;
SELECT popsell._optout_raced() AS raced_outside_statement;
ROLLBACK;
-- after a row skipped by ON CONFLICT
BEGIN;
INSERT INTO popsell.contacts (id, ambassador_id, source, email)
VALUES (11, 2, 'crm_manual', 'x111@t.test') ON CONFLICT (id) DO NOTHING;
SELECT nextval('popsell.optout_generation') > 0 AS optout_started;
SELECT popsell._optout_raced() AS raced_after_skip;
ROLLBACK;

\c :regdb
SET client_min_messages = warning;
DROP DATABASE popsell_t111;
