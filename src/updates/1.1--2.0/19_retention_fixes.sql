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

CREATE TRIGGER popsell_62_activity_update
    AFTER UPDATE ON popsell.interactions
    REFERENCING NEW TABLE AS added_interactions
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.contact_activity();
CREATE TRIGGER popsell_62_activity_update
    AFTER UPDATE ON popsell.sales
    REFERENCING NEW TABLE AS added_sales
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.contact_activity();

-- @restate function:compliance_report
