-- Retention v2 (SPEC sections 3, 6 and 7, v2): every unrestricted contact
-- covered by contact_inactive, restricted contacts kept by every rule,
-- activity however recorded, the run's guard a lock only popsell_owner
-- can take, skipped runs recorded, `at` beyond a day for the owner only,
-- audit rows aged by the wall clock, settings floors and vendor-only
-- windows and a single row, sent outbox rows scrubbed on erasure and
-- aged out, ambassador tombstones keeping why it left, publications
-- cancelled when an ambassador starts leaving.

-- Settings: windows below the new one-day floor are raised to it (the
-- guard trigger is not there yet).
UPDATE popsell.settings
   SET deletion_grace = greatest(deletion_grace, interval '1 day'),
       ambassador_inactivity = greatest(ambassador_inactivity, interval '1 day'),
       inactivity_warning_interval = greatest(inactivity_warning_interval, interval '1 day'),
       new_contact_invitation_window = greatest(new_contact_invitation_window, interval '1 day'),
       invitation_response_window = greatest(invitation_response_window, interval '1 day'),
       email_confirmation_window = greatest(email_confirmation_window, interval '1 day'),
       optout_retention = greatest(optout_retention, interval '1 day'),
       contact_inactivity = greatest(contact_inactivity, interval '1 day'),
       suspension_max = greatest(suspension_max, interval '1 day'),
       log_retention = greatest(log_retention, interval '1 day');
ALTER TABLE popsell.settings DROP CONSTRAINT settings_check;

ALTER TABLE popsell.settings ADD
CONSTRAINT settings_window_floor
    CHECK (deletion_grace >= '1 day'::interval AND ambassador_inactivity >= '1 day'::interval
           AND inactivity_warning_interval >= '1 day'::interval
           AND new_contact_invitation_window >= '1 day'::interval
           AND invitation_response_window >= '1 day'::interval
           AND email_confirmation_window >= '1 day'::interval
           AND optout_retention >= '1 day'::interval AND contact_inactivity >= '1 day'::interval
           AND suspension_max >= '1 day'::interval AND log_retention >= '1 day'::interval);

REVOKE UPDATE (deletion_grace, suspension_max) ON popsell.settings FROM popsell_brand;

-- contact_inactive's index follows its new predicate.
DROP INDEX popsell.contacts_inactivity_idx;

CREATE INDEX contacts_inactivity_idx ON popsell.contacts
    ((greatest(last_activity_at, ambassador_optin_at, brand_optin_at, created_at)))
    WHERE NOT restricted;


ALTER TABLE popsell.maintenance_runs ADD COLUMN
outcome     text NOT NULL DEFAULT 'done'
                CONSTRAINT maintenance_runs_outcome CHECK (outcome IN ('done', 'failed', 'skipped'));

UPDATE popsell.maintenance_runs SET outcome = 'failed' WHERE failed_sqlstate IS NOT NULL;

COMMENT ON COLUMN popsell.maintenance_runs.outcome IS
    'done; failed (failed_sqlstate says why); skipped (another run held the lock, or the rule gave up waiting for a lock: 55P03).';


CREATE TABLE popsell.maintenance_lock (
    id boolean PRIMARY KEY DEFAULT true CHECK (id)
);
COMMENT ON TABLE popsell.maintenance_lock IS
    'Internal: always empty; run_maintenance locks it (EXCLUSIVE, NOWAIT) so runs do not overlap. Owner only.';


CREATE INDEX outbox_sent_idx ON popsell.outbox (sent_at) WHERE sent_at IS NOT NULL;


CREATE FUNCTION popsell._maintenance_lock_timeout()
    RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN '30s';
COMMENT ON FUNCTION popsell._maintenance_lock_timeout() IS
    'Internal: the longest a retention rule waits for a lock held by another session (a shorter session lock_timeout wins).';




-- @restate function:_erase_all_personal_data


-- @restate function:run_maintenance


-- @restate function:contact_activity


CREATE TRIGGER popsell_61_activity
    AFTER INSERT ON popsell.interactions
    REFERENCING NEW TABLE AS added_interactions
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.contact_activity();

CREATE TRIGGER popsell_61_activity
    AFTER INSERT ON popsell.sales
    REFERENCING NEW TABLE AS added_sales
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.contact_activity();


-- @restate function:settings_guard


CREATE TRIGGER popsell_20_settings_guard
    BEFORE INSERT OR UPDATE OR DELETE ON popsell.settings
    FOR EACH ROW EXECUTE FUNCTION popsell.settings_guard();
CREATE TRIGGER popsell_20_settings_truncate
    BEFORE TRUNCATE ON popsell.settings
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.settings_guard();
-- also with session_replication_role = replica
ALTER TABLE popsell.settings ENABLE ALWAYS TRIGGER popsell_20_settings_guard;
ALTER TABLE popsell.settings ENABLE ALWAYS TRIGGER popsell_20_settings_truncate;


-- @restate function:contacts_erase


-- @restate function:ambassadors_erase_row


-- @restate function:ambassadors_erase


-- @restate function:_start_leaving


-- (maintenance_status: restated by a later part, after the columns it reads)
