-- bench/101_single_row_fresh.sql: single-row inserts as an application
-- sees them.  Each repetition opens a FRESH connection (a new backend: no
-- per-backend cache warmed by an earlier bulk load), then sends :stmts
-- single-row INSERT statements one by one from the client, into a table
-- that already holds :rows contacts of 10,000 ambassadors, with a
-- :blacklist-entry blacklist in place (defaults: 1,000,000 each, 20,000
-- statements, 5 repetitions).  Prints
--   bench: single_row_fresh_connection ratio=X.XX   (popsell / same table
--          without popsell triggers, same indexes and foreign key)
--   bench: single_row_fresh_connection_vs_bare ratio=X.XX (information:
--          against a bare table without the foreign key)
-- medians of :reps repetitions; the order of the sides rotates every
-- repetition.  The line also gives the CPU time of the backend (read from
-- /proc): the server's own cost, which a busy machine disturbs less than
-- the wall time that includes the client's round trips.
\set ON_ERROR_STOP on
\set QUIET on
\pset tuples_only on
\pset format unaligned
\if :{?rows}
\else
\set rows 1000000
\endif
\if :{?reps}
\else
\set reps 5
\endif
\if :{?stmts}
\else
\set stmts 20000
\endif
\if :{?blacklist}
\else
\set blacklist 1000000
\endif
SET client_min_messages = warning;
SELECT set_config('bench.rows', :'rows', false) \g /dev/null

INSERT INTO popsell.ambassadors (kind, status, terms_accepted_at, first_name, email)
SELECT 'customer', 'active', now(), 'Bench' || g, 'fresh-amb' || g || '@example.test'
  FROM generate_series(1, 10000) g;
SELECT min(id) - 1 AS amb0 FROM popsell.ambassadors \gset
INSERT INTO popsell.blacklist (email_hash, key_id, reason)
SELECT popsell.hash_email('blocked' || g || '@example.test'), popsell.hash_key_id(), 'global_optout'
  FROM generate_series(1, :blacklist) g;

CREATE TABLE public.bench_plain (LIKE popsell.contacts INCLUDING ALL);
ALTER TABLE public.bench_plain ADD FOREIGN KEY (ambassador_id) REFERENCES popsell.ambassadors (id);
CREATE TABLE public.bench_bare (LIKE popsell.contacts INCLUDING ALL);
CREATE TABLE public.bench_fresh_timings (side text, secs float8, cpu float8);

-- CPU seconds used so far by this backend (Linux /proc; superuser): the
-- server's own cost, which a loaded machine disturbs less than wall time.
CREATE FUNCTION public.bench_cpu() RETURNS float8 LANGUAGE sql AS $$
    SELECT (split_part(s, ' ', 14)::float8 + split_part(s, ' ', 15)::float8) / 100
      FROM pg_read_file('/proc/' || pg_backend_pid() || '/stat') s $$;

-- The existing contacts, loaded as they would be after a restore (the
-- triggers let a superuser's rows through with row_security off).
SET row_security = off;
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email, email_status, ambassador_optin,
                              ambassador_optin_at, brand_optin, brand_optin_at, created_at)
SELECT :amb0 + 1 + g % 10000, 'private_import', 'First' || g, 'existing' || g || '@example.test',
       'ok', 'new', now(), 'no_optin', now(), now()
  FROM generate_series(1, :rows) g;
RESET row_security;
INSERT INTO public.bench_plain SELECT * FROM popsell.contacts;
INSERT INTO public.bench_bare SELECT * FROM popsell.contacts;
-- (the copies' id default is popsell's own sequence, so new ids never clash)
VACUUM ANALYZE popsell.contacts;
VACUUM ANALYZE public.bench_plain;
VACUUM ANALYZE public.bench_bare;
VACUUM ANALYZE popsell.blacklist;
CHECKPOINT;

-- One file of single-row statements per side (the same rows).
\o /tmp/popsell_bench_fresh_popsell.sql
SELECT format('INSERT INTO popsell.contacts (ambassador_id, source, first_name, email) VALUES (%s, ''crm_manual'', ''First%s'', ''fresh%s@example.test'');',
              :amb0 + 1 + g % 10000, g, g)
  FROM generate_series(1, :stmts) g;
\o /tmp/popsell_bench_fresh_plain.sql
SELECT format('INSERT INTO public.bench_plain (ambassador_id, source, first_name, email, email_status, ambassador_optin, ambassador_optin_at, brand_optin, brand_optin_at, created_at) VALUES (%s, ''crm_manual'', ''First%s'', ''fresh%s@example.test'', ''ok'', ''new'', now(), ''no_optin'', now(), now());',
              :amb0 + 1 + g % 10000, g, g)
  FROM generate_series(1, :stmts) g;
\o /tmp/popsell_bench_fresh_bare.sql
SELECT replace(format('INSERT INTO public.bench_plain (ambassador_id, source, first_name, email, email_status, ambassador_optin, ambassador_optin_at, brand_optin, brand_optin_at, created_at) VALUES (%s, ''crm_manual'', ''First%s'', ''fresh%s@example.test'', ''ok'', ''new'', now(), ''no_optin'', now(), now());',
              :amb0 + 1 + g % 10000, g, g), 'bench_plain', 'bench_bare')
  FROM generate_series(1, :stmts) g;
-- The driver: per repetition and side, a fresh connection, the timed
-- statements, then the inserted rows go (so every run starts from the
-- same table).
\o /tmp/popsell_bench_fresh_driver.sql
SELECT format(E'\\c\n'
              'SELECT extract(epoch FROM clock_timestamp()) AS t0, public.bench_cpu() AS c0 \\gset\n'
              '\\i /tmp/popsell_bench_fresh_%s.sql\n'
              'INSERT INTO public.bench_fresh_timings SELECT %L, extract(epoch FROM clock_timestamp()) - :t0, public.bench_cpu() - :c0;\n'
              'SET session_replication_role = replica;\n'
              'DELETE FROM %s WHERE email LIKE ''fresh%%'';\n'
              'RESET session_replication_role;\n'
              'VACUUM %s;\n',
              side, side, tab, tab)
  FROM generate_series(1, :reps) r, generate_series(0, 2) k,
       LATERAL (SELECT (ARRAY['popsell', 'plain', 'bare'])[1 + (r + k) % 3] AS side) s,
       LATERAL (SELECT CASE s.side WHEN 'popsell' THEN 'popsell.contacts' ELSE 'public.bench_' || s.side END AS tab) t
 ORDER BY r, k;
\o
\i /tmp/popsell_bench_fresh_driver.sql

WITH med AS (
    SELECT side, percentile_cont(0.5) WITHIN GROUP (ORDER BY secs) AS s,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY cpu) AS c
      FROM public.bench_fresh_timings GROUP BY side)
SELECT format('bench: %s ratio=%s (wall: popsell %s s, baseline %s s; backend CPU: popsell %s s, baseline %s s, ratio %s; %s statements, fresh connection, %s contacts)',
              CASE b.side WHEN 'plain' THEN 'single_row_fresh_connection' ELSE 'single_row_fresh_connection_vs_bare' END,
              to_char(p.s / b.s, 'FM990.00'), to_char(p.s, 'FM9990.000'), to_char(b.s, 'FM9990.000'),
              to_char(p.c, 'FM9990.00'), to_char(b.c, 'FM9990.00'), to_char(p.c / nullif(b.c, 0), 'FM990.00'),
              :stmts, :rows)
  FROM med p JOIN med b ON b.side IN ('plain', 'bare')
 WHERE p.side = 'popsell'
 ORDER BY b.side DESC;

\! rm -f /tmp/popsell_bench_fresh_popsell.sql /tmp/popsell_bench_fresh_plain.sql /tmp/popsell_bench_fresh_bare.sql /tmp/popsell_bench_fresh_driver.sql
