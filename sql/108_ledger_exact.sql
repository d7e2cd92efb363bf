-- 108_ledger_exact: SPEC C5, exactly one ledger row (popsell.consent_events)
-- per real consent change, whatever the transaction does around it:
-- application triggers with EXCEPTION blocks that write contacts,
-- savepoints rolled back or released, PREPARE TRANSACTION, INSERT ... ON
-- CONFLICT (rows it did not insert get no "initial" row), and a ledger
-- whose shape changed (a column added with a default gets it; a column
-- type changed is converted, never a crash), also within one session, for
-- the ledger and for the entry type popsell._consent_entry.

\set regdb :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS popsell_t108;
CREATE DATABASE popsell_t108;
\c popsell_t108
\i sql/include/consent_fixture.sql

-- Contacts of ambassador 1 (crm_manual: state new, no ledger row yet).
CREATE TABLE t108 (name text PRIMARY KEY, id bigint);
INSERT INTO t108
SELECT 'c' || i, popsell.collect_contact(1, 'crm_manual', jsonb_build_object('email', 'c' || i || '@t108.example.test'))
  FROM generate_series(1, 12) i;
-- ledger rows of the named contacts, as "name:note" in name order
CREATE FUNCTION pg_temp.ledger(VARIADIC names text[]) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(t.name || ':' || coalesce(e.new_ambassador_optin::text, '-'), ' ' ORDER BY t.name, e.id), '(none)')
      FROM t108 t JOIN popsell.consent_events e ON e.contact_id = t.id
     WHERE t.name = ANY (names)
$$;

-- 1. An application trigger whose EXCEPTION block writes contacts and is
--    rolled back: the outer statement's three changes keep their rows.
CREATE FUNCTION t108_app_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        UPDATE popsell.contacts SET last_name = 'touched' WHERE id = (SELECT id FROM t108 WHERE name = 'c12');
        RAISE EXCEPTION 'undo' USING ERRCODE = 'P0001';
    EXCEPTION WHEN raise_exception THEN
        NULL;
    END;
    RETURN NULL;
END $$;
CREATE TRIGGER t108_app AFTER UPDATE ON popsell.contacts
    FOR EACH ROW WHEN (NEW.last_name IS DISTINCT FROM 'touched') EXECUTE FUNCTION t108_app_trigger();
UPDATE popsell.contacts SET ambassador_optin = 'optout_email'
 WHERE id IN (SELECT id FROM t108 WHERE name IN ('c1', 'c2', 'c3'));
SELECT pg_temp.ledger('c1', 'c2', 'c3') AS exception_block;
-- ... and the same with the write inside the block kept.
CREATE OR REPLACE FUNCTION t108_app_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        UPDATE popsell.contacts SET last_name = 'touched' WHERE id = (SELECT id FROM t108 WHERE name = 'c12');
    EXCEPTION WHEN raise_exception THEN
        NULL;
    END;
    RETURN NULL;
END $$;
UPDATE popsell.contacts SET ambassador_optin = 'optout_email' WHERE id = (SELECT id FROM t108 WHERE name = 'c4');
SELECT pg_temp.ledger('c4', 'c12') AS exception_block_kept;
DROP TRIGGER t108_app ON popsell.contacts;

-- 2. Savepoints: a rolled-back change has no row, a released one keeps it.
BEGIN;
UPDATE popsell.contacts SET ambassador_optin = 'optout_email' WHERE id = (SELECT id FROM t108 WHERE name = 'c5');
SAVEPOINT a;
UPDATE popsell.contacts SET ambassador_optin = 'optout_email' WHERE id = (SELECT id FROM t108 WHERE name = 'c6');
ROLLBACK TO SAVEPOINT a;
SAVEPOINT b;
UPDATE popsell.contacts SET ambassador_optin = 'optout_email' WHERE id = (SELECT id FROM t108 WHERE name = 'c7');
RELEASE SAVEPOINT b;
SAVEPOINT c;
SELECT 1 AS nothing;
ROLLBACK TO SAVEPOINT c;
COMMIT;
SELECT pg_temp.ledger('c5', 'c6', 'c7') AS savepoints;

-- 3. PREPARE TRANSACTION, then COMMIT PREPARED / ROLLBACK PREPARED.
BEGIN;
UPDATE popsell.contacts SET ambassador_optin = 'optout_email' WHERE id = (SELECT id FROM t108 WHERE name = 'c8');
PREPARE TRANSACTION 'popsell_t108_a';
BEGIN;
UPDATE popsell.contacts SET ambassador_optin = 'optout_email' WHERE id = (SELECT id FROM t108 WHERE name = 'c9');
PREPARE TRANSACTION 'popsell_t108_b';
COMMIT PREPARED 'popsell_t108_a';
ROLLBACK PREPARED 'popsell_t108_b';
SELECT pg_temp.ledger('c8', 'c9') AS prepared;

-- 4. INSERT ... ON CONFLICT by the trusted app: a row it did not insert
--    gets no "initial" row, however often the insert is replayed; DO
--    UPDATE records the update only; a row it did insert gets one.
SELECT popsell.collect_contact(1, 'external_form', '{"email": "form@t108.example.test"}', true, true) AS form_id \gset
SELECT count(*) AS form_rows_before FROM popsell.consent_events WHERE contact_id = :form_id;
SET ROLE popsell_t1_app;
SET popsell.ambassador_id = 1;
INSERT INTO popsell.contacts (id, ambassador_id, source, email)
VALUES (:form_id, 1, 'external_form', 'form@t108.example.test') ON CONFLICT (id) DO NOTHING;
INSERT INTO popsell.contacts (id, ambassador_id, source, email)
VALUES (:form_id, 1, 'external_form', 'form@t108.example.test') ON CONFLICT (id) DO NOTHING;
INSERT INTO popsell.contacts (id, ambassador_id, source, email)
VALUES (:form_id, 1, 'external_form', 'form@t108.example.test')
    ON CONFLICT (id) DO UPDATE SET last_name = 'replayed';
INSERT INTO popsell.contacts (id, ambassador_id, source, email)
VALUES (:form_id + 1000, 1, 'external_form', 'form2@t108.example.test'),
       (:form_id + 1000, 1, 'external_form', 'form2@t108.example.test') ON CONFLICT (id) DO NOTHING;
RESET popsell.ambassador_id;
RESET ROLE;
SELECT count(*) AS form_rows_after, count(*) FILTER (WHERE note LIKE 'initial%') AS form_initial_rows
  FROM popsell.consent_events WHERE contact_id = :form_id;
SELECT count(*) AS inserted_rows_ledger FROM popsell.consent_events WHERE contact_id = :form_id + 1000;

-- 5. The ledger's shape changes (as an upgrade might): a column added
--    with a default gets it, a column whose type changes is converted.
ALTER TABLE popsell.consent_events ADD COLUMN t108_extra text NOT NULL DEFAULT 'filled';
ALTER TABLE popsell.consent_events ALTER COLUMN path TYPE varchar(40);
ALTER TABLE popsell.consent_events ALTER COLUMN actor_role TYPE text;
UPDATE popsell.contacts SET ambassador_optin = 'optout_email' WHERE id = (SELECT id FROM t108 WHERE name = 'c10');
SELECT pg_temp.ledger('c10') AS after_alter,
       (SELECT string_agg(coalesce(t108_extra, 'NULL') || '/' || path || '/' || (actor_role = current_user), ',') FROM popsell.consent_events
         WHERE contact_id = (SELECT id FROM t108 WHERE name = 'c10')) AS extra_and_path;

-- 6. The entry type the trigger hands rows over in changes shape in this
--    session, after it wrote through it (attributes move, one is added):
--    the next change is written in the new shape.
ALTER TYPE popsell._consent_entry DROP ATTRIBUTE changed, ADD ATTRIBUTE changed text[];
ALTER TYPE popsell._consent_entry DROP ATTRIBUTE note, ADD ATTRIBUTE t108_pad integer, ADD ATTRIBUTE note text;
UPDATE popsell.contacts SET ambassador_optin = 'optout_email' WHERE id = (SELECT id FROM t108 WHERE name = 'c11');
SELECT pg_temp.ledger('c11') AS after_alter_type,
       (SELECT string_agg(changed::text || '/' || path || '/' || coalesce(note, 'NULL'), ',') FROM popsell.consent_events
         WHERE contact_id = (SELECT id FROM t108 WHERE name = 'c11')) AS changed_path_note;
-- ... and the ledger's columns move too (ALTER TABLE, same session): the
--    note of a new contact's initial row goes to the column named note.
ALTER TABLE popsell.consent_events RENAME COLUMN note TO t108_old_note;
ALTER TABLE popsell.consent_events ADD COLUMN note text;
SELECT popsell.collect_contact(1, 'external_form', '{"email": "form3@t108.example.test"}', true, true) AS form3_id \gset
SELECT changed, coalesce(note, 'NULL') AS note, coalesce(t108_old_note, 'NULL') AS old_note
  FROM popsell.consent_events WHERE contact_id = :form3_id;

-- Every row of the ledger is accounted for: one per contact that changed.
SELECT count(*) AS ledger_rows, count(DISTINCT contact_id) AS contacts_with_rows FROM popsell.consent_events;

SELECT 1 AS alive;
\c :regdb
SET client_min_messages = warning;
DROP DATABASE popsell_t108;
