-- popsell--1.0--1.1.sql: upgrade from 1.0 to 1.1.
-- A fresh CREATE EXTENSION popsell runs popsell--1.0.sql and then this
-- script, so an updated database and a new one are the same.
--
-- 1.1 adds popsell.maintenance_status: per retention rule, what the last
-- run of popsell.run_maintenance did (when, how many rows, the SQLSTATE if
-- it failed), when it last succeeded, how many runs failed since, and how
-- many rows are due now.  The generic loops at the end of popsell--1.0.sql do not run
-- for an upgrade: ownership, privileges and comments are set here.

\echo Use "ALTER EXTENSION popsell UPDATE TO '1.1'" to load this file. \quit

-- security_invoker: the reader's own rights on popsell.maintenance_runs
-- (row security) and on popsell.maintenance_preview decide, so only roles
-- that may already read the run record and preview the rules see it.
CREATE VIEW popsell.maintenance_status WITH (security_invoker = true) AS
SELECT r.rule,
       r.position::integer AS position,
       l.run_id AS last_run_id,
       l.as_of AS last_as_of,
       l.finished_at AS last_finished_at,
       l.affected AS last_affected,
       l.failed_sqlstate AS last_failed_sqlstate,
       l.run_by AS last_run_by,
       ok.finished_at AS last_success_at,
       coalesce(f.failures, 0) AS failures_since_success,
       p.affected AS due_now
  FROM popsell.maintenance_rules() WITH ORDINALITY AS r(rule, position)
  LEFT JOIN LATERAL (
        SELECT m.run_id, m.as_of, m.finished_at, m.affected, m.failed_sqlstate, m.run_by
          FROM popsell.maintenance_runs m
         WHERE m.rule OPERATOR(pg_catalog.=) r.rule
         ORDER BY m.id DESC
         LIMIT 1) AS l ON true
  LEFT JOIN LATERAL (
        SELECT m.id, m.finished_at
          FROM popsell.maintenance_runs m
         WHERE m.rule OPERATOR(pg_catalog.=) r.rule
           AND m.failed_sqlstate IS NULL
         ORDER BY m.id DESC
         LIMIT 1) AS ok ON true
  LEFT JOIN LATERAL (
        SELECT pg_catalog.count(*) AS failures
          FROM popsell.maintenance_runs m
         WHERE m.rule OPERATOR(pg_catalog.=) r.rule
           AND m.failed_sqlstate IS NOT NULL
           AND m.id OPERATOR(pg_catalog.>) coalesce(ok.id, 0)) AS f ON true
  LEFT JOIN popsell.maintenance_preview(pg_catalog.now()) AS p
         ON p.rule OPERATOR(pg_catalog.=) r.rule;

ALTER VIEW popsell.maintenance_status OWNER TO popsell_owner;
REVOKE ALL ON popsell.maintenance_status FROM PUBLIC;
-- The vendor's staff and the scheduled-jobs role: the readers of the run
-- record who may also preview the rules.
GRANT SELECT ON popsell.maintenance_status
    TO popsell_owner, popsell_maintenance, popsell_account_team, popsell_technical;

COMMENT ON VIEW popsell.maintenance_status IS
    'Health of the retention job, one row per rule in run order: the last run of popsell.run_maintenance (as-of time, finish time, rows, failed SQLSTATE, role), the last success, failures since, and the rows due now (popsell.maintenance_preview). Counts only.';
COMMENT ON COLUMN popsell.maintenance_status.rule IS 'Retention rule (popsell.maintenance_rules()).';
COMMENT ON COLUMN popsell.maintenance_status.position IS 'Order in which run_maintenance applies the rule.';
COMMENT ON COLUMN popsell.maintenance_status.last_run_id IS 'Run number of the last run that recorded this rule; NULL if it never ran.';
COMMENT ON COLUMN popsell.maintenance_status.last_as_of IS 'The time the last run applied the rule as of (run_maintenance(at)).';
COMMENT ON COLUMN popsell.maintenance_status.last_finished_at IS 'Wall-clock time the last run finished the rule.';
COMMENT ON COLUMN popsell.maintenance_status.last_affected IS 'Rows the last run acted on (0 when it failed).';
COMMENT ON COLUMN popsell.maintenance_status.last_failed_sqlstate IS 'SQLSTATE of the last run''s failure; NULL when it succeeded.';
COMMENT ON COLUMN popsell.maintenance_status.last_run_by IS 'Session role of the last run (popsell_maintenance under pg_cron).';
COMMENT ON COLUMN popsell.maintenance_status.last_success_at IS 'Wall-clock time of the last successful run of the rule.';
COMMENT ON COLUMN popsell.maintenance_status.failures_since_success IS 'Failed runs of the rule since its last success (alert when above 0).';
COMMENT ON COLUMN popsell.maintenance_status.due_now IS 'Rows the rule would act on if run now (popsell.maintenance_preview(now())).';
