-- bench/100_consent.sql: the consent engine's cost, side by side with a
-- baseline in the same run (issue 3).  Prints "bench: NAME ratio=X.XX"
-- (popsell time / baseline time, medians of :reps runs, alternating).
--   bulk_import_insert_select  1M private_import contacts, INSERT ... SELECT
--   bulk_import_copy           the same rows by COPY (as the owner)
--   single_row_inserts         20,000 single-row INSERT statements
--   consent_ledger             1M order contacts with brand opt-in, ledger row
--                              included, against contact + ledger row by hand
--   consent_update             those contacts' soft bounces (email_status ok ->
--                              soft_bounce, the provider's callback), one UPDATE,
--                              ledger rows included, against UPDATE + ledger by hand
--   hash_email_vs_sha256       sha256() time / hash_email() time (>= 1.0 wanted)
-- The baseline tables are identical (LIKE ... INCLUDING ALL, same foreign
-- key), without popsell's triggers.  A 1M-entry blacklist is in place.
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
\set reps 3
\endif
SET client_min_messages = warning;
SELECT set_config('bench.rows', :'rows', false), set_config('bench.reps', :'reps', false) \g /dev/null
SET max_parallel_workers_per_gather = 0;

INSERT INTO popsell.ambassadors (kind, status, terms_accepted_at, first_name, email)
SELECT 'sales_rep', 'active', now(), 'Bench' || g, 'bench-amb' || g || '@example.test'
  FROM generate_series(1, 1000) g;
INSERT INTO popsell.blacklist (email_hash, key_id, reason)
SELECT popsell.hash_email('blocked' || g || '@example.test'), popsell.hash_key_id(), 'global_optout'
  FROM generate_series(1, 1000000) g;

CREATE TABLE public.bench_plain (LIKE popsell.contacts INCLUDING ALL);
ALTER TABLE public.bench_plain ADD FOREIGN KEY (ambassador_id) REFERENCES popsell.ambassadors (id);
CREATE TABLE public.bench_ledger (LIKE popsell.consent_events INCLUDING ALL);
CREATE TABLE public.bench_emails AS
SELECT 'Contact' || g || '@Example.TEST' AS e FROM generate_series(1, :rows) g;
COPY (SELECT 1 + g % 1000, 'private_import', 'First' || g, 'copy' || g || '@example.test'
        FROM generate_series(1, :rows) g)
  TO '/tmp/popsell_bench_contacts.csv' (FORMAT csv);
COPY (SELECT 1 + g % 1000, 'private_import', 'First' || g, 'copy' || g || '@example.test',
             'ok', 'new', now(), 'no_optin', now(), now()
        FROM generate_series(1, :rows) g)
  TO '/tmp/popsell_bench_plain.csv' (FORMAT csv);
ANALYZE;

CREATE TABLE pg_temp.timings (figure text, side text, secs float8);
CREATE FUNCTION pg_temp.timed(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz;
BEGIN
    t0 := clock_timestamp();
    EXECUTE q;
    RETURN extract(epoch FROM clock_timestamp() - t0);
END $$;
-- Q on a path of popsell.actor (transaction-local), restored afterwards.
CREATE FUNCTION pg_temp.as_actor(actor text, q text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE was text := current_setting('popsell.actor', true);
BEGIN
    PERFORM set_config('popsell.actor', actor, true);
    EXECUTE q;
    PERFORM set_config('popsell.actor', coalesce(was, ''), true);
END $$;
CREATE FUNCTION pg_temp.reset() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- popsell refuses TRUNCATE of personal data and of the ledger; the
    -- benchmark's own reset bypasses its triggers (superuser only)
    SET LOCAL session_replication_role = replica;
    TRUNCATE popsell.contacts, popsell.consent_events, popsell.outbox, popsell.interactions,
             popsell.sales, public.bench_plain, public.bench_ledger CASCADE;
    SET LOCAL session_replication_role = origin;
    CHECKPOINT;
END $$;

DO $bench$
DECLARE
    n bigint := current_setting('bench.rows')::bigint;
    plain_is text := format($q$INSERT INTO public.bench_plain (ambassador_id, source, first_name, email,
        email_status, ambassador_optin, ambassador_optin_at, brand_optin, brand_optin_at, created_at)
        SELECT 1 + g %% 1000, 'private_import', 'First' || g, 'contact' || g || '@example.test',
               'ok', 'new', now(), 'no_optin', now(), now() FROM generate_series(1, %s) g$q$, n);
    popsell_is text := format($q$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
        SELECT 1 + g %% 1000, 'private_import', 'First' || g, 'contact' || g || '@example.test'
          FROM generate_series(1, %s) g$q$, n);
    plain_ledger text := format($q$WITH c AS (
        INSERT INTO public.bench_plain (ambassador_id, source, email, email_status, ambassador_optin,
            ambassador_optin_at, brand_optin, brand_optin_at, created_at)
        SELECT 1 + g %% 1000, 'order', 'order' || g || '@example.test', 'ok', 'optin_order', now(),
               'optin_brand_database', now(), now() FROM generate_series(1, %s) g
        RETURNING id, ambassador_id, source)
        INSERT INTO public.bench_ledger (contact_id, ambassador_id, changed, new_ambassador_optin,
            new_brand_optin, new_partners_optin, new_email_status, source, actor, path, actor_role,
            note, occurred_at)
        SELECT id, ambassador_id, '{ambassador_optin,brand_optin,partners_optin,email_status}',
               'optin_order', 'optin_brand_database', false, 'ok', source, 'contact', 'contact',
               current_user, 'initial', now() FROM c$q$, n);
    popsell_ledger text := format($q$INSERT INTO popsell.contacts (ambassador_id, source, email,
        ambassador_optin, brand_optin)
        SELECT 1 + g %% 1000, 'order', 'order' || g || '@example.test', 'optin_order',
               'optin_brand_database' FROM generate_series(1, %s) g$q$, n);
    plain_update text := $q$WITH u AS (
        UPDATE public.bench_plain SET email_status = 'soft_bounce' WHERE email_status = 'ok'
        RETURNING id, ambassador_id, source, ambassador_optin, brand_optin, partners_optin)
        INSERT INTO public.bench_ledger (contact_id, ambassador_id, changed, old_ambassador_optin,
            new_ambassador_optin, old_brand_optin, new_brand_optin, old_partners_optin,
            new_partners_optin, old_email_status, new_email_status, source, actor, path,
            actor_role, occurred_at)
        SELECT id, ambassador_id, '{email_status}', ambassador_optin, ambassador_optin,
               brand_optin, brand_optin, partners_optin, partners_optin, 'ok', 'soft_bounce',
               source, 'system', 'email_callback', current_user, now() FROM u$q$;
    popsell_update text := $q$SELECT pg_temp.as_actor('email_callback',
        $u$UPDATE popsell.contacts SET email_status = 'soft_bounce' WHERE email_status = 'ok'$u$)$q$;
    single_plain text := $q$DO $$ BEGIN FOR i IN 1..20000 LOOP
        INSERT INTO public.bench_plain (ambassador_id, source, first_name, email, email_status,
            ambassador_optin, ambassador_optin_at, brand_optin, brand_optin_at, created_at)
        VALUES (1 + i % 1000, 'crm_manual', 'First' || i, 'single' || i || '@example.test', 'ok',
                'new', now(), 'no_optin', now(), now());
        END LOOP; END $$$q$;
    single_popsell text := $q$DO $$ BEGIN FOR i IN 1..20000 LOOP
        INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
        VALUES (1 + i % 1000, 'crm_manual', 'First' || i, 'single' || i || '@example.test');
        END LOOP; END $$$q$;
BEGIN
    FOR r IN 1..current_setting('bench.reps')::int LOOP
        -- alternate which side runs first
        IF r % 2 = 1 THEN
            PERFORM pg_temp.reset();
            INSERT INTO pg_temp.timings VALUES ('bulk_import_insert_select', 'plain', pg_temp.timed(plain_is));
            INSERT INTO pg_temp.timings VALUES ('bulk_import_insert_select', 'popsell', pg_temp.timed(popsell_is));
        ELSE
            PERFORM pg_temp.reset();
            INSERT INTO pg_temp.timings VALUES ('bulk_import_insert_select', 'popsell', pg_temp.timed(popsell_is));
            INSERT INTO pg_temp.timings VALUES ('bulk_import_insert_select', 'plain', pg_temp.timed(plain_is));
        END IF;
        PERFORM pg_temp.reset();
        INSERT INTO pg_temp.timings VALUES ('bulk_import_copy', 'plain', pg_temp.timed(
            $q$COPY public.bench_plain (ambassador_id, source, first_name, email, email_status,
               ambassador_optin, ambassador_optin_at, brand_optin, brand_optin_at, created_at)
               FROM '/tmp/popsell_bench_plain.csv' (FORMAT csv)$q$));
        INSERT INTO pg_temp.timings VALUES ('bulk_import_copy', 'popsell', pg_temp.timed(
            $q$COPY popsell.contacts (ambassador_id, source, first_name, email)
               FROM '/tmp/popsell_bench_contacts.csv' (FORMAT csv)$q$));
        PERFORM pg_temp.reset();
        INSERT INTO pg_temp.timings VALUES ('consent_ledger', 'plain', pg_temp.timed(plain_ledger));
        INSERT INTO pg_temp.timings VALUES ('consent_ledger', 'popsell', pg_temp.timed(popsell_ledger));
        IF r % 2 = 1 THEN
            INSERT INTO pg_temp.timings VALUES ('consent_update', 'plain', pg_temp.timed(plain_update));
            INSERT INTO pg_temp.timings VALUES ('consent_update', 'popsell', pg_temp.timed(popsell_update));
        ELSE
            INSERT INTO pg_temp.timings VALUES ('consent_update', 'popsell', pg_temp.timed(popsell_update));
            INSERT INTO pg_temp.timings VALUES ('consent_update', 'plain', pg_temp.timed(plain_update));
        END IF;
        PERFORM pg_temp.reset();
        INSERT INTO pg_temp.timings VALUES ('single_row_inserts', 'popsell', pg_temp.timed(single_popsell));
        INSERT INTO pg_temp.timings VALUES ('single_row_inserts', 'plain', pg_temp.timed(single_plain));
        INSERT INTO pg_temp.timings VALUES ('hash_email_vs_sha256', 'popsell', pg_temp.timed(
            'SELECT sum(length(popsell.hash_email(e))) FROM public.bench_emails'));
        INSERT INTO pg_temp.timings VALUES ('hash_email_vs_sha256', 'plain', pg_temp.timed(
            $q$SELECT sum(length(sha256(convert_to(e, 'UTF8')))) FROM public.bench_emails$q$));
    END LOOP;
END
$bench$;

-- Throughput figure: sha256 time / hash_email time (higher is better);
-- every other figure: popsell time / baseline time (lower is better).
WITH med AS (
    SELECT figure, side, percentile_cont(0.5) WITHIN GROUP (ORDER BY secs) AS s
      FROM pg_temp.timings GROUP BY figure, side)
SELECT format('bench: %s ratio=%s (popsell %s s, baseline %s s)', p.figure,
              to_char(CASE WHEN p.figure = 'hash_email_vs_sha256' THEN b.s / p.s ELSE p.s / b.s END, 'FM990.00'),
              to_char(p.s, 'FM9990.000'), to_char(b.s, 'FM9990.000'))
  FROM med p JOIN med b ON b.figure = p.figure AND b.side = 'plain'
 WHERE p.side = 'popsell'
 ORDER BY p.figure;

\! rm -f /tmp/popsell_bench_contacts.csv /tmp/popsell_bench_plain.csv
