-- 004_settings: the settings table holds exactly one row, with the
-- guide's defaults (SPEC section 3).

SELECT count(*) AS settings_rows FROM popsell.settings;

-- ISO 8601 output so '1 year' cannot pass as '360 days'.
SET intervalstyle = iso_8601;
SELECT deletion_grace, ambassador_inactivity, inactivity_warnings,
       inactivity_warning_interval, new_contact_invitation_window,
       invitation_response_window, email_confirmation_window,
       optout_retention, contact_inactivity, suspension_max, log_retention
  FROM popsell.settings;
RESET intervalstyle;

SELECT community_name_format IN ('full', 'first_initial', 'initials') AS name_format_valid,
       sso_exclusive,
       program_suspended_at IS NULL AS not_suspended,
       brand_contract_ended_at IS NULL AS contract_running
  FROM popsell.settings;

-- A second row is refused, whatever the columns given.
DO $$
BEGIN
    BEGIN
        INSERT INTO popsell.settings DEFAULT VALUES;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'second settings row (defaults) refused';
        RETURN;
    END;
    RAISE EXCEPTION 'a second settings row was accepted';
END
$$;
DO $$
BEGIN
    BEGIN
        INSERT INTO popsell.settings (deletion_grace) VALUES ('8 days');
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'second settings row (explicit values) refused';
        RETURN;
    END;
    RAISE EXCEPTION 'a second settings row was accepted';
END
$$;
SELECT count(*) AS settings_rows FROM popsell.settings;

-- The row is configurable in place.
BEGIN;
UPDATE popsell.settings SET deletion_grace = '14 days', community_name_format = 'initials';
SELECT deletion_grace, community_name_format FROM popsell.settings;
ROLLBACK;
SELECT deletion_grace FROM popsell.settings;
