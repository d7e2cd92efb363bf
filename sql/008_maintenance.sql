-- 008_maintenance: popsell.run_maintenance() has SPEC section 7's
-- signature and returns one row per rule, zero counts included, on a
-- database with nothing to do; each run is logged in maintenance_runs.

SELECT p.oid::regprocedure AS function,
       pg_get_function_arguments(p.oid) AS arguments,
       pg_get_function_result(p.oid) AS result
  FROM pg_proc p
 WHERE p.pronamespace = 'popsell'::regnamespace AND p.proname = 'run_maintenance';

-- Start from an empty database (earlier tests may have added rows).
DELETE FROM popsell.contacts;
DELETE FROM popsell.ambassadors;

SELECT rule, affected FROM popsell.run_maintenance() ORDER BY rule;

-- Exactly SPEC's rules (and ambassador_unconfirmed, the guide's signup
-- confirmation): one row per rule missing or unexpected.
WITH spec(rule) AS (
    SELECT unnest(ARRAY['ambassador_leaving', 'ambassador_inactive', 'ambassador_unconfirmed',
        'contact_never_invited', 'invitation_reminder', 'invitation_no_response',
        'email_unconfirmed', 'contact_opted_out', 'contact_inactive',
        'program_suspended', 'brand_contract_ended', 'contest_ugc', 'logs'])),
got AS (SELECT rule FROM popsell.run_maintenance())
SELECT coalesce(s.rule, g.rule) AS rule,
       CASE WHEN g.rule IS NULL THEN 'missing' ELSE 'not in SPEC' END AS problem
  FROM spec s FULL JOIN got g ON g.rule = s.rule
 WHERE s.rule IS NULL OR g.rule IS NULL
 ORDER BY 1;

-- No rule returns two rows.
SELECT rule, count(*) FROM popsell.run_maintenance() GROUP BY rule HAVING count(*) <> 1;

-- Each run logs one row per rule in maintenance_runs, counts only.
SELECT count(DISTINCT rule) AS rules_logged, count(*) >= 13 * 4 AS all_runs_logged
  FROM popsell.maintenance_runs;

-- A run far in the future on an empty database does nothing but purge
-- the run log (rule logs).
SELECT rule, affected FROM popsell.run_maintenance(now() + interval '10 years')
 WHERE affected <> 0 AND rule <> 'logs';
