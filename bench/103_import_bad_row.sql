-- bench/103_import_bad_row.sql: popsell.import_contacts of :rows contacts
-- (default 20,000) with one malformed email in the middle, and with every
-- tenth row refused by the INSERT although _import_check lets it through
-- (simulated by a NOT VALID CHECK constraint added here), against the
-- same list with every row valid, into an empty CRM, as the ambassador's
-- application.  Prints
--   bench: import_one_bad_row ratio=X.XX   (one bad row / all valid)
--   bench: import_refused_rows ratio=X.XX  (a tenth refused / all valid)
-- medians of :reps repetitions (default 5), sides alternated, each import
-- rolled back.  A valid list goes in one statement; one bad row costs a
-- failed pass, one set-based check of every row (_import_check) and the
-- insert of the valid rows: about twice the valid list, where the per-row
-- fallback before issue 13 did not finish 20,000 rows in 10 minutes.
\set ON_ERROR_STOP on
\set QUIET on
\pset tuples_only on
\pset format unaligned
\if :{?rows}
\else
\set rows 20000
\endif
\if :{?reps}
\else
\set reps 5
\endif
INSERT INTO popsell.ambassadors (id, kind, status, terms_accepted_at, first_name, email)
VALUES (1, 'customer', 'active', now(), 'A', 'a@amb.example.test');
-- rows the trigger and _import_check accept but the table refuses
ALTER TABLE popsell.contacts ADD CONSTRAINT bench_refused CHECK (first_name NOT LIKE 'Refused%') NOT VALID;
CREATE TABLE bench_lists AS
SELECT jsonb_agg(jsonb_build_object('first_name', 'P' || g, 'email', 'p' || g || '@bench.example.test') ORDER BY g) AS valid,
       jsonb_agg(jsonb_build_object('first_name', CASE WHEN g % 10 = 5 THEN 'Refused' ELSE 'P' END || g,
                                    'email', 'p' || g || '@bench.example.test') ORDER BY g) AS refused,
       count(*) FILTER (WHERE g % 10 = 5) AS n_refused,
       jsonb_agg(CASE WHEN g = :rows / 2 THEN jsonb_build_object('first_name', 'Bad', 'email', 'not-an-email')
                      ELSE jsonb_build_object('first_name', 'P' || g, 'email', 'p' || g || '@bench.example.test') END
                 ORDER BY g) AS one_bad
  FROM generate_series(1, :rows) g;
CREATE TABLE bench_times (side text, rep int, ms float8);

CREATE FUNCTION pg_temp.one(p_side text, p_rep int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    ms float8;
    r record;
BEGIN
    BEGIN
        t0 := clock_timestamp();
        SELECT * INTO r FROM popsell.import_contacts(1, (SELECT CASE p_side WHEN 'valid' THEN valid
                                                                            WHEN 'refused' THEN refused ELSE one_bad END
                                                           FROM bench_lists));
        ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
        IF r.skipped_invalid <> (CASE p_side WHEN 'valid' THEN 0 WHEN 'refused' THEN (SELECT n_refused FROM bench_lists) ELSE 1 END) THEN
            RAISE EXCEPTION 'side %: % rows skipped_invalid', p_side, r.skipped_invalid;
        END IF;
        RAISE EXCEPTION 'undo' USING ERRCODE = 'PSB00';
    EXCEPTION WHEN SQLSTATE 'PSB00' THEN
        NULL;
    END;
    INSERT INTO bench_times VALUES (p_side, p_rep, ms);
END $$;

SELECT pg_temp.one((ARRAY['valid', 'one_bad', 'refused'])[1 + (k + s) % 3], k)
  FROM generate_series(1, :reps) k, generate_series(0, 2) s ORDER BY k, s;

SELECT format('bench: import_one_bad_row ratio=%s (median ms: one bad row %s, all valid %s; %s rows, %s reps)',
              round((b.m / v.m)::numeric, 2), round(b.m::numeric), round(v.m::numeric), :rows, :reps)
  FROM (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS m FROM bench_times WHERE side = 'one_bad') b,
       (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS m FROM bench_times WHERE side = 'valid') v;
SELECT format('bench: import_refused_rows ratio=%s (median ms: a tenth refused by the INSERT %s, all valid %s; %s rows, %s reps)',
              round((b.m / v.m)::numeric, 2), round(b.m::numeric), round(v.m::numeric), :rows, :reps)
  FROM (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS m FROM bench_times WHERE side = 'refused') b,
       (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS m FROM bench_times WHERE side = 'valid') v;
