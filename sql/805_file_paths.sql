-- 805_file_paths: UGC file paths and ambassador photos are relative paths
-- under ambassadors/<that ambassador's id>/, without ".."; replacing or
-- deleting a path queues the old file as delete_file (SPEC section 3, v2).
\set regdb :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS popsell_t805;
CREATE DATABASE popsell_t805;
\c popsell_t805
SET client_min_messages = warning;
CREATE EXTENSION popsell CASCADE;
DROP ROLE IF EXISTS popsell_t805_alice;
CREATE ROLE popsell_t805_alice NOLOGIN IN ROLE popsell_ambassador;
INSERT INTO popsell.ambassadors (id, status, terms_accepted_at, first_name, email, login_role, photo_path)
VALUES (1, 'active', now(), 'Alice', 'alice@amb.example.test', 'popsell_t805_alice', 'ambassadors/1/me.jpg'),
       (2, 'active', now(), 'Bob', 'bob@amb.example.test', NULL, 'ambassadors/2/me.jpg');
INSERT INTO popsell.ugc (id, ambassador_id, file_path) VALUES (20, 2, 'ambassadors/2/bob.jpg');

CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r text;
BEGIN
    EXECUTE q INTO r;
    RETURN coalesce(r, 'NULL');
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE;
END $$;

-- Alice, acting as herself, may point only at her own directory.
SET ROLE popsell_t805_alice;
SELECT left(p, 30) AS photo_path,
       pg_temp.try(format('UPDATE popsell.ambassadors SET photo_path = %L WHERE id = 1 RETURNING photo_path', p)) AS outcome
  FROM unnest(ARRAY['ambassadors/2/me.jpg', 'ambassadors/1/../2/me.jpg', '../../etc/passwd',
                    '/ambassadors/1/x.jpg', 'ambassadors/1/', 'ambassadors/12/x.jpg',
                    'ambassadors/1//x.jpg', E'ambassadors/1/a\\b.jpg', 'ambassadors/1/./x.jpg',
                    'ambassadors/1/' || repeat('x', 250)]) AS p;
SELECT p AS file_path,
       pg_temp.try(format('INSERT INTO popsell.ugc (ambassador_id, file_path) VALUES (1, %L) RETURNING file_path', p)) AS outcome
  FROM unnest(ARRAY['ambassadors/2/bob.jpg', 'ambassadors/1/../2/bob.jpg', 'ambassadors/1/holiday.jpg']) AS p;
-- Lookalikes of "." and "..": percent-encoded, fullwidth, followed or
-- preceded by an invisible or white-space character, a segment of only
-- dots; and moving a row to another ambassador with its path.
-- (non-ASCII shown as ?: psql versions measure invisible characters'
-- display width differently)
SELECT regexp_replace(p, '[^ -~]', '?', 'g') AS file_path,
       pg_temp.try(format('INSERT INTO popsell.ugc (ambassador_id, file_path) VALUES (1, %L) RETURNING file_path', p)) AS outcome
  FROM unnest(ARRAY['ambassadors/1/%2e%2e/2/b.jpg', E'ambassadors/1/\uff0e\uff0e\uff0fx.jpg',
                    E'ambassadors/1/..\u200b/2/b.jpg', ' ../x', 'ambassadors/1/...', 'ambassadors/1/.hidden',
                    E'ambassadors/1/\u00e9t\u00e9.jpg', 'ambassadors/1/a b.jpg', 'ambassadors/1/a%20b.jpg',
                    'ambassadors/1/2024/summer-photo_1.v2.jpg']) AS p;
SELECT pg_temp.try($$UPDATE popsell.ugc SET ambassador_id = 1 WHERE id = 20 RETURNING file_path$$) AS move_row_as_alice;
SELECT pg_temp.try($$UPDATE popsell.ugc SET id = 99 WHERE file_path = 'ambassadors/1/2024/summer-photo_1.v2.jpg' RETURNING id::text$$) AS update_id;
RESET ROLE;
SELECT pg_temp.try($$UPDATE popsell.ugc SET ambassador_id = 2 WHERE file_path = 'ambassadors/1/2024/summer-photo_1.v2.jpg' RETURNING file_path$$) AS move_row_as_owner;
DELETE FROM popsell.ugc WHERE file_path = 'ambassadors/1/2024/summer-photo_1.v2.jpg';
DELETE FROM popsell.outbox;
SET ROLE popsell_t805_alice;
-- A valid replacement queues the old photo; deleting a UGC row queues its file.
UPDATE popsell.ambassadors SET photo_path = 'ambassadors/1/new.jpg' WHERE id = 1;
DELETE FROM popsell.ugc WHERE file_path = 'ambassadors/1/holiday.jpg';
RESET ROLE;
SELECT kind, ambassador_id, payload ->> 'file_path' AS file_path, payload ->> 'what' AS what
  FROM popsell.outbox ORDER BY id;

-- Erasure queues each file once, and never another person's file: Bob's
-- photo and UGC stay out of Alice's erasure.
INSERT INTO popsell.ugc (ambassador_id, file_path) VALUES (1, 'ambassadors/1/erased.jpg');
DELETE FROM popsell.outbox;
DELETE FROM popsell.ambassadors WHERE id = 1;
SELECT kind, payload ->> 'file_path' AS file_path, count(*)
  FROM popsell.outbox GROUP BY 1, 2 ORDER BY 2;
DELETE FROM popsell.outbox;
DELETE FROM popsell.ugc WHERE id = 20;
SELECT kind, payload ->> 'file_path' AS file_path, count(*)
  FROM popsell.outbox GROUP BY 1, 2 ORDER BY 2;

\c :regdb
SET client_min_messages = warning;
DROP DATABASE popsell_t805;
DROP ROLE popsell_t805_alice;
