-- 110_statement_memory: a consent-changing UPDATE keeps the backend's
-- memory bounded, as COPY does (issue 11): from 30,000 to 150,000 rows the
-- memory held at the statement's end must not grow with the rows.
--
-- Measured by an AFTER STATEMENT trigger (it fires after popsell's own)
-- from pg_backend_memory_contexts.  The executors' memory (ExecutorState)
-- is compared with a twin table instead (same columns and indexes, a
-- no-op BEFORE UPDATE row trigger): on PostgreSQL 15 such an UPDATE's
-- executor grows about 40 bytes per row by itself (ExecUpdateLockMode,
-- run per row for the trigger, allocates column sets in the query's
-- context), so popsell may only add what the no-op trigger adds there.

\set regdb :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS popsell_t110;
CREATE DATABASE popsell_t110;
\c popsell_t110
CREATE EXTENSION popsell CASCADE;
SET max_parallel_workers_per_gather = 0;

INSERT INTO popsell.ambassadors (kind, status, terms_accepted_at, first_name, email)
SELECT 'sales_rep', 'active', now(), 'A' || g, 'a' || g || '@t110.example.test' FROM generate_series(1, 10) g;
INSERT INTO popsell.contacts (ambassador_id, source, email)
SELECT 1 + g % 10, 'private_import', 'c' || g || '@t110.example.test' FROM generate_series(1, 180100) g;
-- Unsent invitations of the first and the last contact of the big
-- statement: both go (the first in a batch during the statement, the last
-- at its end), the one of a contact left unchanged stays.
SELECT count(popsell.send_invitation(id)) AS invited FROM popsell.contacts WHERE id IN (30100, 30101, 180100);
CREATE TABLE t110_twin (LIKE popsell.contacts INCLUDING ALL);
INSERT INTO t110_twin SELECT * FROM popsell.contacts;

CREATE TABLE t110_mem (tab text, rows bigint, executor bigint, other bigint);
CREATE FUNCTION t110_probe() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO t110_mem
    SELECT TG_TABLE_NAME, current_setting('t110.rows')::bigint,
           sum(total_bytes) FILTER (WHERE name = 'ExecutorState'),
           sum(total_bytes) FILTER (WHERE name <> 'ExecutorState')
      FROM pg_backend_memory_contexts;
    RETURN NULL;
END $$;
CREATE TRIGGER zz_t110_probe AFTER UPDATE ON popsell.contacts
    FOR EACH STATEMENT EXECUTE FUNCTION t110_probe();
CREATE TRIGGER zz_t110_probe AFTER UPDATE ON t110_twin
    FOR EACH STATEMENT EXECUTE FUNCTION t110_probe();
CREATE FUNCTION t110_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER t110_noop BEFORE UPDATE ON t110_twin FOR EACH ROW EXECUTE FUNCTION t110_noop();

-- The email provider reports soft bounces (email_status ok -> soft_bounce),
-- one ledger row each.  A warm-up first (caches), then 30,000 and 150,000
-- rows.

\c popsell_t110
CREATE FUNCTION pg_temp.migrate(tab regclass, lo bigint, hi bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('popsell.actor', 'email_callback', true);
    PERFORM set_config('popsell.consent_text', 'terms-2226.1', true);
    PERFORM set_config('t110.rows', (hi - lo)::text, true);
    EXECUTE format('UPDATE %s SET email_status = %L WHERE id > $1 AND id <= $2', tab, 'soft_bounce')
      USING lo, hi;
END $$;
SELECT pg_temp.migrate('popsell.contacts', 0, 100), pg_temp.migrate('t110_twin', 0, 100);
SELECT pg_temp.migrate('popsell.contacts', 100, 30099);
SELECT pg_temp.migrate('t110_twin', 100, 30099);
SELECT pg_temp.migrate('popsell.contacts', 30100, 180100);
SELECT pg_temp.migrate('t110_twin', 30100, 180100);

SELECT count(*) AS ledger_rows FROM popsell.consent_events WHERE new_email_status = 'soft_bounce';
SELECT array_agg(contact_id ORDER BY contact_id) AS invitations_left FROM popsell.outbox;
-- popsell's memory outside the executor: flat (under 1 MB more for
-- 120,000 more rows); its executor memory: what the no-op trigger's is.
SELECT b.other - s.other < 1048576 AS other_memory_flat,
       b.executor - s.executor <= tb.executor - ts.executor + 1048576 AS executor_memory_as_twin
  FROM t110_mem s, t110_mem b, t110_mem ts, t110_mem tb
 WHERE s.tab = 'contacts' AND s.rows = 29999 AND b.tab = 'contacts' AND b.rows = 150000
   AND ts.tab = 't110_twin' AND ts.rows = 29999 AND tb.tab = 't110_twin' AND tb.rows = 150000;

\c :regdb
SET client_min_messages = warning;
DROP DATABASE popsell_t110;
