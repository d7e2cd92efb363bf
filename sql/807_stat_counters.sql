-- 807_stat_counters: SPEC S11 (v2): pg_stat_* counters count only rows the
-- caller may see.  An ambassador's own actions (a plain INSERT, an import)
-- probe the lookup-key index for the emails it enters; the probe must not
-- return another ambassador's rows, or the index's tuples_returned counter
-- (read with pg_stat_get_xact_tuples_returned) tells the ambassador
-- whether someone else holds an address.  Runs in a database of its own.
SET client_min_messages = warning;
SELECT current_database() AS regress_db \gset
CREATE DATABASE popsell_stat_test;
\c popsell_stat_test
SET client_min_messages = warning;
CREATE EXTENSION popsell CASCADE;
CREATE ROLE ps_t807_app;
GRANT popsell_app TO ps_t807_app;
INSERT INTO popsell.ambassadors (id, status, terms_accepted_at, first_name, last_name, email)
VALUES (1, 'active', now(), 'Alice', 'A', 'alice@amb.example.test'),
       (2, 'active', now(), 'Bob', 'B', 'bob@amb.example.test');
-- Ambassador 2 holds held@c.example.test twice (two sources): hidden from 1.
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
VALUES (2, 'crm_manual', 'B-one', 'held@c.example.test'),
       (1, 'crm_manual', 'A-one', 'a-one@c.example.test');
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
VALUES (2, 'external_form', 'B-two', 'held@c.example.test');
RESET client_min_messages;

-- What ambassador 1's index probes return, for an address held by
-- ambassador 2 and for one nobody holds: the same.
CREATE FUNCTION pg_temp.returned(p_sql text) RETURNS bigint
    LANGUAGE plpgsql AS $$
DECLARE
    before bigint := pg_stat_get_xact_tuples_returned('popsell.contacts_email_idx'::regclass);
BEGIN
    EXECUTE p_sql;
    RETURN pg_stat_get_xact_tuples_returned('popsell.contacts_email_idx'::regclass) - before;
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.returned(text) TO PUBLIC;

SET ROLE ps_t807_app;
BEGIN;
SET LOCAL popsell.ambassador_id = '1';
SET LOCAL ROLE popsell_ambassador;
SELECT pg_temp.returned($$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                          VALUES (1, 'crm_manual', 'Q', 'held@c.example.test')$$) AS insert_held_elsewhere,
       pg_temp.returned($$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                          VALUES (1, 'crm_manual', 'R', 'nobody@c.example.test')$$) AS insert_unknown;
ROLLBACK;
BEGIN;
SET LOCAL popsell.ambassador_id = '1';
SET LOCAL ROLE popsell_ambassador;
SELECT pg_temp.returned($$SELECT popsell.import_contacts(1, '[{"first_name": "Q", "email": "held@c.example.test"}]')$$) AS import_held_elsewhere,
       pg_temp.returned($$SELECT popsell.import_contacts(1, '[{"first_name": "R", "email": "nobody@c.example.test"}]')$$) AS import_unknown;
ROLLBACK;
-- The probe still finds the ambassador's own address (PS109).
BEGIN;
SET LOCAL popsell.ambassador_id = '1';
SET LOCAL ROLE popsell_ambassador;
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
VALUES (1, 'crm_manual', 'A-again', 'A-One@c.example.test');
ROLLBACK;
RESET ROLE;

\c :regress_db
SET client_min_messages = warning;
DROP DATABASE popsell_stat_test;
DROP ROLE ps_t807_app;
