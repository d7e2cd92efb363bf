-- Retention v2 fixes: a window is at least one day with no negative part
-- (months, days, time), inactivity_warnings at least 1,
-- email_confirmation_window NULL meaning invitation_response_window; the
-- run's overlap guard is a row lock (a table's RowShareLock is taken by
-- any role at parse time); activity attached by UPDATE counts; a restore
-- mode DELETE of the settings row is refused.

-- @restate function:_is_window
GRANT EXECUTE ON FUNCTION popsell._is_window(interval) TO popsell_brand, popsell_account_team, popsell_technical;

UPDATE popsell.settings SET inactivity_warnings = greatest(inactivity_warnings, 1);
ALTER TABLE popsell.settings
    DROP CONSTRAINT settings_inactivity_warnings_check,
    ADD CONSTRAINT settings_inactivity_warnings_check CHECK (inactivity_warnings BETWEEN 1 AND 10),
    ALTER COLUMN email_confirmation_window DROP NOT NULL,
    ALTER COLUMN email_confirmation_window DROP DEFAULT,
    DROP CONSTRAINT settings_window_floor,
    ADD CONSTRAINT settings_window_floor
    CHECK (popsell._is_window(deletion_grace)
           AND popsell._is_window(ambassador_inactivity)
           AND popsell._is_window(inactivity_warning_interval)
           AND popsell._is_window(new_contact_invitation_window)
           AND popsell._is_window(invitation_response_window)
           AND popsell._is_window(email_confirmation_window)
           AND popsell._is_window(optout_retention)
           AND popsell._is_window(contact_inactivity)
           AND popsell._is_window(suspension_max)
           AND popsell._is_window(log_retention)),
    DROP CONSTRAINT settings_signup_confirmation_window_floor,
    ADD CONSTRAINT settings_signup_confirmation_window_floor
        CHECK (popsell._is_window(signup_confirmation_window));

INSERT INTO popsell.maintenance_lock DEFAULT VALUES ON CONFLICT DO NOTHING;
COMMENT ON TABLE popsell.maintenance_lock IS
    'Internal: one row; run_maintenance locks it (FOR UPDATE NOWAIT) so runs do not overlap. Owner only.';
-- @restate function:_restore_singletons
COMMENT ON FUNCTION popsell._restore_singletons() IS
    'Trigger: while restoring, a restored settings row, key or maintenance guard row replaces the one the install script created.';
CREATE TRIGGER popsell_10_restore
    BEFORE INSERT ON popsell.maintenance_lock
    FOR EACH ROW EXECUTE FUNCTION popsell._restore_singletons();

CREATE TRIGGER popsell_62_activity_update
    AFTER UPDATE ON popsell.interactions
    REFERENCING NEW TABLE AS added_interactions
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.contact_activity();
CREATE TRIGGER popsell_62_activity_update
    AFTER UPDATE ON popsell.sales
    REFERENCING NEW TABLE AS added_sales
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.contact_activity();

CREATE INDEX outbox_unsent_created_idx ON popsell.outbox (created_at) WHERE sent_at IS NULL;

ALTER TABLE popsell.maintenance_runs ADD COLUMN skipped_rows bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN popsell.maintenance_runs.skipped_rows IS
    'Due rows the rule left because another session held them locked (an open transaction on the row); the next run does them.';

-- maintenance_status: the new columns come last.
-- @restate view:maintenance_status
COMMENT ON VIEW popsell.maintenance_status IS
    'Health of the retention job, one row per rule in run order: the last run of popsell.run_maintenance (as-of time, start, finish, duration, outcome, rows, failed SQLSTATE, role), the last success and its age, failed and skipped runs since, and the rows due now (popsell.maintenance_preview). Counts only.';
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
COMMENT ON COLUMN popsell.maintenance_status.last_started_at IS 'Wall-clock time the last run started the rule.';
COMMENT ON COLUMN popsell.maintenance_status.last_duration IS 'How long the last run of the rule took.';
COMMENT ON COLUMN popsell.maintenance_status.last_outcome IS 'done, failed, or skipped (another run held the lock, or a lock held by another session made the rule give up).';
COMMENT ON COLUMN popsell.maintenance_status.last_success_age IS 'now() minus last_success_at: above a day, the job has stopped running or keeps failing (alert).';
COMMENT ON COLUMN popsell.maintenance_status.skipped_since_success IS 'Skipped runs of the rule since its last success.';
COMMENT ON COLUMN popsell.maintenance_status.due_now IS 'Rows the rule would act on if run now (popsell.maintenance_preview(now())); NULL when counting waited more than half a second for a lock.';
COMMENT ON COLUMN popsell.maintenance_status.last_skipped_rows IS 'Due rows the last run left because another session held them locked (done by a later run).';

-- @restate function:maintenance_preview
-- @restate function:compliance_report
