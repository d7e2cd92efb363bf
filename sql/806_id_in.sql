-- 806_id_in: popsell._id_in(id, ids), the policy helper of the ambassador
-- policies on interactions and consent_events, answers exactly what
-- "id = ANY (ids)" answers (false for NULL), whatever array each row
-- passes, and keeps no more than one array in memory.
\set regdb :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS popsell_t806;
CREATE DATABASE popsell_t806;
\c popsell_t806
SET client_min_messages = warning;
CREATE EXTENSION popsell CASCADE;
SET jit = off;
-- A per-row array: every row a new array, often at the address of the
-- previous row's (freed) one.
SELECT g, popsell._id_in(g, ARRAY[g]) FROM generate_series(1, 5) g;
SELECT g, popsell._id_in(1, ARRAY[g]) FROM generate_series(1, 4) g;
-- Invariant: for every id and every array of a family (empty, NULL
-- elements, repeats, several dimensions, the same content in consecutive
-- rows so that the cache is built and reused, then left), _id_in agrees
-- with = ANY.
CREATE TEMP TABLE id_arrays AS
SELECT n, CASE WHEN n % 11 = 0 THEN ARRAY[]::bigint[]
               WHEN n % 13 = 0 THEN ARRAY[[1, 2], [3, NULL]]::bigint[]
               ELSE ARRAY(SELECT CASE WHEN k % 5 = 4 THEN NULL ELSE ((n / 3) * 7 + k * k) % 40 END
                            FROM generate_series(1, (n / 3) % 9) k)::bigint[] END AS a
  FROM generate_series(1, 120) n;
SELECT count(*) AS pairs,
       count(*) FILTER (WHERE popsell._id_in(i, a) IS DISTINCT FROM coalesce(i = ANY (a), false)) AS disagreements
  FROM (SELECT n, i, a FROM id_arrays, generate_series(-1, 41) i ORDER BY n, i) s;
-- Row by row in array order (each array over several rows, then the next).
SELECT count(*) FILTER (WHERE popsell._id_in(i, a) IS DISTINCT FROM coalesce(i = ANY (a), false)) AS disagreements
  FROM (SELECT n, i, a FROM id_arrays, generate_series(-1, 41) i ORDER BY i, n) s;
-- An array built on every row (freed, the next one often at the same
-- address).
SELECT count(*) FILTER (WHERE popsell._id_in(i, ARRAY[n, n * 2, NULL, n % 5]::bigint[])
                              IS DISTINCT FROM coalesce(i = ANY (ARRAY[n, n * 2, NULL, n % 5]::bigint[]), false)) AS disagreements
  FROM generate_series(1, 40) n, generate_series(-1, 41) i;
-- A PL/pgSQL variable: the expression (and the function's cache) lives
-- across the loop while the variable takes new arrays, the same content
-- twice in a row, then another one, often at the same address.
CREATE FUNCTION pg_temp.id_in_loop() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    a bigint[];
    r text := '';
BEGIN
    FOR i IN 1..8 LOOP
        a := ARRAY[(i + 1) / 2]::bigint[];
        r := r || popsell._id_in((i + 1) / 2, a)::text || ' ';
    END LOOP;
    RETURN r;
END $$;
SELECT pg_temp.id_in_loop();
-- A constant array (cached by address) and a parameter.
SELECT popsell._id_in(3, '{5,4,3}'), popsell._id_in(6, '{5,4,3}'), popsell._id_in(-1, '{NULL}');
PREPARE p(bigint[]) AS SELECT count(*) FILTER (WHERE popsell._id_in(g, $1)) FROM generate_series(1, 100) g;
EXECUTE p('{1,50,99,1000}');
EXECUTE p('{2}');
DEALLOCATE p;
-- Memory: a new toasted array on every row is detoasted, searched and
-- freed; the backend's memory grows by far less than one 800 kB array per
-- row (it kept every detoasted copy until the query ended).  The memory
-- is read on each row after _id_in ran on it (a set-returning function
-- in a target list is evaluated again on every rescan).
CREATE TEMP TABLE big_arrays AS
SELECT g, array_fill(g::bigint, ARRAY[100000]) AS a FROM generate_series(1, 30) g;
SELECT count(*) AS rows, count(*) FILTER (WHERE hit) AS hits,
       max(used) - min(used) < 4 * 1024 * 1024 AS grows_under_4mb
  FROM (SELECT g, hit, (SELECT sum(u) FROM (SELECT (pg_get_backend_memory_contexts()).used_bytes AS u
                                             WHERE hit IS NOT NULL) x) AS used
          FROM (SELECT g, popsell._id_in(CASE WHEN g % 2 = 0 THEN g ELSE -1 END, a) AS hit
                  FROM big_arrays OFFSET 0) r) s;

\c :regdb
SET client_min_messages = warning;
DROP DATABASE popsell_t806;
