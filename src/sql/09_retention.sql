-- ===================================================================
-- Retention and reminders (SPEC section 7, S7).  popsell.run_maintenance
-- applies every rule as of a time, set-based and idempotent; each rule is
-- its own subtransaction and writes its popsell.maintenance_runs row in it,
-- so that ledger is the truth of what was done.  Rules are deadline-based:
-- a missed run is caught up by the next one.
-- ===================================================================

-- Why a rule failed (NULL when it succeeded): the SQLSTATE only, never the
-- message (it could quote personal data).
COMMENT ON COLUMN popsell.maintenance_runs.failed_sqlstate IS
    'SQLSTATE of the error that rolled the rule back (its work is then not done and is retried next run); NULL on success.';
COMMENT ON COLUMN popsell.maintenance_runs.outcome IS
    'done; failed (failed_sqlstate says why); skipped (another run held the lock, or the rule gave up waiting for a lock: 55P03).';
COMMENT ON COLUMN popsell.maintenance_runs.skipped_rows IS
    'Due rows the rule left because another session held them locked (an open transaction on the row); the next run does them.';

-- The rules in the order they run (SPEC section 7's table).
CREATE FUNCTION popsell.maintenance_rules()
    RETURNS SETOF text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN pg_catalog.unnest(ARRAY['ambassador_leaving', 'ambassador_inactive', 'ambassador_unconfirmed',
                                   'contact_never_invited',
                                   'invitation_reminder', 'invitation_no_response', 'email_unconfirmed',
                                   'contact_opted_out', 'contact_inactive', 'program_suspended',
                                   'brand_contract_ended', 'contest_ugc', 'logs']);
COMMENT ON FUNCTION popsell.maintenance_rules() IS
    'The retention rules of popsell.run_maintenance, in the order they run.';

-- One rule, as of AT; returns the rows it acted on.  Called only by
-- run_maintenance (inside its subtransaction, path system, as-of set).
-- PREVIEW = true counts what it would do and changes nothing.
CREATE FUNCTION popsell._maintenance_rule(p_rule text, p_at timestamptz, p_preview boolean)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s popsell.settings;
    n bigint := 0;
    m bigint := 0;
    mark bigint;
    wi interval;
    wn integer;
    sk bigint := 0;
BEGIN
    SELECT * INTO STRICT s FROM popsell.settings;
    -- NULL: the invitation response window (SPEC section 3, v2)
    s.email_confirmation_window := coalesce(s.email_confirmation_window, s.invitation_response_window);
    wi := s.inactivity_warning_interval;
    wn := s.inactivity_warnings;

    CASE p_rule
    WHEN 'ambassador_leaving' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.ambassadors a
             WHERE a.deletion_due_at IS NOT NULL AND a.deletion_due_at <= p_at;
        ELSE
            mark := popsell._erasure_push('ambassador_leaving', true);
            -- rows another session holds locked are left for the next run
            DELETE FROM popsell.ambassadors a
             WHERE a.id = ANY (ARRAY(SELECT a.id FROM popsell.ambassadors a
                                     WHERE a.deletion_due_at IS NOT NULL AND a.deletion_due_at <= p_at
                                       FOR UPDATE OF a SKIP LOCKED));
            GET DIAGNOSTICS n = ROW_COUNT;
            SELECT count(*) INTO sk FROM popsell.ambassadors a
             WHERE a.deletion_due_at IS NOT NULL AND a.deletion_due_at <= p_at;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'ambassador_inactive' THEN
        -- deadline = coalesce(last_login_at, created_at) + ambassador_inactivity.
        -- Warnings count only when queued after the last login (a login
        -- cancels).  Warning k of N is due at deadline - (N-k+1) intervals,
        -- and never sooner than one interval after the previous one; the
        -- deletion comes at the deadline once all N are queued, and never
        -- sooner than one interval after the last.
        IF p_preview THEN
            SELECT count(*) INTO n
              FROM popsell.ambassadors a
              CROSS JOIN LATERAL (SELECT coalesce(a.last_login_at, a.created_at) AS base,
                                         CASE WHEN a.last_inactivity_warning_at > coalesce(a.last_login_at, a.created_at)
                                              THEN a.inactivity_warnings_sent ELSE 0 END AS sent) w
             WHERE coalesce(a.last_login_at, a.created_at) <= p_at - s.ambassador_inactivity + wn * wi
               AND a.status <> 'leaving'
               AND (   (w.sent >= wn AND w.base + s.ambassador_inactivity <= p_at
                        AND (wn = 0 OR a.last_inactivity_warning_at + wi <= p_at))
                    OR (w.sent < wn
                        AND w.base + s.ambassador_inactivity - (wn - w.sent) * wi <= p_at
                        AND (w.sent = 0 OR a.last_inactivity_warning_at + wi <= p_at)));
        ELSE
            mark := popsell._erasure_push('inactive', true);
            -- rows another session holds locked are left for the next run
            DELETE FROM popsell.ambassadors a
             WHERE a.id = ANY (ARRAY(SELECT a.id FROM popsell.ambassadors a
                                     WHERE coalesce(a.last_login_at, a.created_at) <= p_at - s.ambassador_inactivity
                                        AND a.status <> 'leaving'
                                        AND (wn = 0
                                             OR (a.last_inactivity_warning_at > coalesce(a.last_login_at, a.created_at)
                                                 AND a.inactivity_warnings_sent >= wn
                                                 AND a.last_inactivity_warning_at + wi <= p_at))
                                       FOR UPDATE OF a SKIP LOCKED));
            GET DIAGNOSTICS n = ROW_COUNT;
            SELECT count(*) INTO sk FROM popsell.ambassadors a
             WHERE coalesce(a.last_login_at, a.created_at) <= p_at - s.ambassador_inactivity
               AND a.status <> 'leaving'
               AND (wn = 0
                    OR (a.last_inactivity_warning_at > coalesce(a.last_login_at, a.created_at)
                        AND a.inactivity_warnings_sent >= wn
                        AND a.last_inactivity_warning_at + wi <= p_at));
            PERFORM popsell._erasure_pop(mark);
            IF wn > 0 THEN
                WITH due AS (
                    SELECT a.id, w.sent + 1 AS k,
                           w.base + s.ambassador_inactivity AS deadline
                      FROM popsell.ambassadors a
                      CROSS JOIN LATERAL (SELECT coalesce(a.last_login_at, a.created_at) AS base,
                                                 CASE WHEN a.last_inactivity_warning_at > coalesce(a.last_login_at, a.created_at)
                                                      THEN a.inactivity_warnings_sent ELSE 0 END AS sent) w
                     WHERE coalesce(a.last_login_at, a.created_at) <= p_at - s.ambassador_inactivity + wn * wi
                       AND a.status <> 'leaving'
                       AND w.sent < wn
                       AND w.base + s.ambassador_inactivity - (wn - w.sent) * wi <= p_at
                       AND (w.sent = 0 OR a.last_inactivity_warning_at + wi <= p_at)
                       FOR UPDATE OF a),
                q AS (
                    INSERT INTO popsell.outbox (kind, ambassador_id, payload, created_at)
                    SELECT 'inactivity_warning', d.id,
                           jsonb_build_object('warning', d.k, 'of', wn,
                                              'deletion_not_before', greatest(d.deadline, p_at + wi)),
                           p_at
                      FROM due d
                    RETURNING ambassador_id)
                UPDATE popsell.ambassadors a
                   SET inactivity_warnings_sent = d.k, last_inactivity_warning_at = p_at
                  FROM due d
                 WHERE a.id = d.id;
                GET DIAGNOSTICS m = ROW_COUNT;
                n := n + m;
            END IF;
        END IF;

    WHEN 'ambassador_unconfirmed' THEN
        -- signups whose confirmation link expired unused
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.ambassadors a
             WHERE a.status = 'signup_incomplete'
               AND EXISTS (SELECT 1 FROM popsell.ambassador_email_tokens t
                            WHERE t.ambassador_id = a.id
                              AND t.created_at <= p_at - s.signup_confirmation_window);
        ELSE
            mark := popsell._erasure_push('ambassador_unconfirmed', true);
            -- rows another session holds locked are left for the next run
            DELETE FROM popsell.ambassadors a
             WHERE a.id = ANY (ARRAY(SELECT a.id FROM popsell.ambassadors a
                                     WHERE a.status = 'signup_incomplete'
                                        AND EXISTS (SELECT 1 FROM popsell.ambassador_email_tokens t
                                                     WHERE t.ambassador_id = a.id
                                                       AND t.created_at <= p_at - s.signup_confirmation_window)
                                       FOR UPDATE OF a SKIP LOCKED));
            GET DIAGNOSTICS n = ROW_COUNT;
            SELECT count(*) INTO sk FROM popsell.ambassadors a
             WHERE a.status = 'signup_incomplete'
               AND EXISTS (SELECT 1 FROM popsell.ambassador_email_tokens t
                            WHERE t.ambassador_id = a.id
                              AND t.created_at <= p_at - s.signup_confirmation_window);
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'contact_never_invited' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE c.ambassador_optin = 'new'
               AND c.ambassador_optin_at <= p_at - s.new_contact_invitation_window
               AND NOT popsell.is_brand_visible(c.brand_optin, c.partners_optin) AND NOT c.restricted;
        ELSE
            mark := popsell._erasure_push('contact_never_invited', false);
            -- rows another session holds locked are left for the next run
            DELETE FROM popsell.contacts c
             WHERE c.id = ANY (ARRAY(SELECT c.id FROM popsell.contacts c
                                     WHERE c.ambassador_optin = 'new'
                                        AND c.ambassador_optin_at <= p_at - s.new_contact_invitation_window
                                        AND NOT popsell.is_brand_visible(c.brand_optin, c.partners_optin) AND NOT c.restricted
                                       FOR UPDATE OF c SKIP LOCKED));
            GET DIAGNOSTICS n = ROW_COUNT;
            SELECT count(*) INTO sk FROM popsell.contacts c
             WHERE c.ambassador_optin = 'new'
               AND c.ambassador_optin_at <= p_at - s.new_contact_invitation_window
               AND NOT popsell.is_brand_visible(c.brand_optin, c.partners_optin) AND NOT c.restricted;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'invitation_reminder' THEN
        -- Only contacts the sending guard lets receive it; the others are
        -- not marked and become optout_no_response at two windows.
        IF p_preview THEN
            SELECT count(*) INTO n
              FROM popsell.contacts c
              JOIN popsell.ambassadors a ON a.id = c.ambassador_id AND a.status = 'active'
             WHERE c.ambassador_optin = 'invitation_sent'
               AND c.invitation_sent_at <= p_at - s.invitation_response_window
               AND c.invitation_sent_at > p_at - 2 * s.invitation_response_window
               AND (c.reminder_sent_at IS NULL OR c.reminder_sent_at < c.invitation_sent_at)
               AND c.email IS NOT NULL AND c.email_status = 'ok' AND NOT c.restricted;
        ELSE
            WITH due AS (
                SELECT c.id, c.ambassador_id, c.invitation_sent_at
                  FROM popsell.contacts c
                  JOIN popsell.ambassadors a ON a.id = c.ambassador_id AND a.status = 'active'
                 WHERE c.ambassador_optin = 'invitation_sent'
                   AND c.invitation_sent_at <= p_at - s.invitation_response_window
                   AND c.invitation_sent_at > p_at - 2 * s.invitation_response_window
                   AND (c.reminder_sent_at IS NULL OR c.reminder_sent_at < c.invitation_sent_at)
                   AND c.email IS NOT NULL AND c.email_status = 'ok' AND NOT c.restricted
                   FOR UPDATE OF c),
            q AS (
                INSERT INTO popsell.outbox (kind, ambassador_id, contact_id, payload, created_at)
                SELECT 'invitation_reminder', d.ambassador_id, d.id,
                       jsonb_build_object('invitation_sent_at', d.invitation_sent_at), p_at
                  FROM due d
                RETURNING contact_id)
            UPDATE popsell.contacts c SET reminder_sent_at = p_at
              FROM q WHERE c.id = q.contact_id;
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;

    WHEN 'invitation_no_response' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE c.ambassador_optin = 'invitation_sent'
               AND c.invitation_sent_at <= p_at - 2 * s.invitation_response_window;
        ELSE
            UPDATE popsell.contacts c SET ambassador_optin = 'optout_no_response'
             WHERE c.ambassador_optin = 'invitation_sent'
               AND c.invitation_sent_at <= p_at - 2 * s.invitation_response_window;
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;

    WHEN 'email_unconfirmed' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE popsell.is_pending_confirmation(c.source, c.email_confirmed_at)
               AND c.created_at <= p_at - s.email_confirmation_window
               AND NOT c.restricted;
        ELSE
            mark := popsell._erasure_push('email_unconfirmed', false);
            -- rows another session holds locked are left for the next run
            DELETE FROM popsell.contacts c
             WHERE c.id = ANY (ARRAY(SELECT c.id FROM popsell.contacts c
                                     WHERE popsell.is_pending_confirmation(c.source, c.email_confirmed_at)
                                        AND c.created_at <= p_at - s.email_confirmation_window
                                        AND NOT c.restricted
                                       FOR UPDATE OF c SKIP LOCKED));
            GET DIAGNOSTICS n = ROW_COUNT;
            SELECT count(*) INTO sk FROM popsell.contacts c
             WHERE popsell.is_pending_confirmation(c.source, c.email_confirmed_at)
               AND c.created_at <= p_at - s.email_confirmation_window
               AND NOT c.restricted;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'contact_opted_out' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE popsell.is_opted_out(c.ambassador_optin)
               AND c.ambassador_optin_at <= p_at - s.optout_retention
               AND NOT popsell.is_brand_visible(c.brand_optin, c.partners_optin) AND NOT c.restricted;
        ELSE
            mark := popsell._erasure_push('contact_opted_out', true);
            -- rows another session holds locked are left for the next run
            DELETE FROM popsell.contacts c
             WHERE c.id = ANY (ARRAY(SELECT c.id FROM popsell.contacts c
                                     WHERE popsell.is_opted_out(c.ambassador_optin)
                                        AND c.ambassador_optin_at <= p_at - s.optout_retention
                                        AND NOT popsell.is_brand_visible(c.brand_optin, c.partners_optin) AND NOT c.restricted
                                       FOR UPDATE OF c SKIP LOCKED));
            GET DIAGNOSTICS n = ROW_COUNT;
            SELECT count(*) INTO sk FROM popsell.contacts c
             WHERE popsell.is_opted_out(c.ambassador_optin)
               AND c.ambassador_optin_at <= p_at - s.optout_retention
               AND NOT popsell.is_brand_visible(c.brand_optin, c.partners_optin) AND NOT c.restricted;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'contact_inactive' THEN
        -- Every contact the rules above left (opted-out brand-visible
        -- rows, brand_sync rows, whatever their consent), restricted ones
        -- excepted (art. 18): no contact is kept forever (v2 coverage).
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE NOT c.restricted
               AND greatest(c.last_activity_at, c.ambassador_optin_at, c.brand_optin_at, c.created_at)
                   <= p_at - s.contact_inactivity;
        ELSE
            mark := popsell._erasure_push('contact_inactive', true);
            -- rows another session holds locked are left for the next run
            DELETE FROM popsell.contacts c
             WHERE c.id = ANY (ARRAY(SELECT c.id FROM popsell.contacts c
                                     WHERE NOT c.restricted
                                        AND greatest(c.last_activity_at, c.ambassador_optin_at, c.brand_optin_at, c.created_at)
                                            <= p_at - s.contact_inactivity
                                       FOR UPDATE OF c SKIP LOCKED));
            GET DIAGNOSTICS n = ROW_COUNT;
            SELECT count(*) INTO sk FROM popsell.contacts c
             WHERE NOT c.restricted
               AND greatest(c.last_activity_at, c.ambassador_optin_at, c.brand_optin_at, c.created_at)
                   <= p_at - s.contact_inactivity;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'program_suspended', 'brand_contract_ended' THEN
        IF (p_rule = 'program_suspended'
            AND s.program_suspended_at IS NOT NULL AND s.program_suspended_at + s.suspension_max <= p_at)
           OR (p_rule = 'brand_contract_ended'
               AND s.brand_contract_ended_at IS NOT NULL AND s.brand_contract_ended_at + s.deletion_grace <= p_at) THEN
            n := popsell._erase_all_personal_data(p_rule, p_at, p_preview);
        END IF;

    WHEN 'contest_ugc' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.ugc u
             WHERE u.ambassador_id IS NULL
               AND NOT EXISTS (SELECT 1 FROM popsell.contests k
                                WHERE k.id = u.contest_id AND k.reuse_until > p_at);
        ELSE
            WITH u AS (
                DELETE FROM popsell.ugc u
                 WHERE u.ambassador_id IS NULL
                   AND NOT EXISTS (SELECT 1 FROM popsell.contests k
                                    WHERE k.id = u.contest_id AND k.reuse_until > p_at)
                RETURNING u.id, u.file_path)
            INSERT INTO popsell.outbox (kind, payload, created_at)
            SELECT 'delete_file', jsonb_build_object('file_path', u.file_path, 'what', 'ugc', 'ugc_id', u.id), p_at
              FROM u;
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;

    WHEN 'logs' THEN
        -- The activity log and outbox rows, sent or not (personal data), age as of
        -- AT; the run record (the audit of these rules) by the wall clock,
        -- so a run "in the future" cannot age earlier runs away.
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.activity_log l WHERE l.created_at < p_at - s.log_retention;
            SELECT count(*) INTO m FROM popsell.outbox o
             WHERE o.sent_at IS NOT NULL AND o.sent_at < p_at - s.log_retention;
            n := n + m;
            SELECT count(*) INTO m FROM popsell.outbox o
             WHERE o.sent_at IS NULL AND o.created_at < p_at - s.log_retention
               AND o.kind::text NOT IN ('delete_file', 'partner_erasure', 'partner_optout');
            n := n + m;
            SELECT count(*) INTO m FROM popsell.maintenance_runs r
             WHERE r.finished_at < pg_catalog.now() - s.log_retention;
        ELSE
            DELETE FROM popsell.activity_log l WHERE l.created_at < p_at - s.log_retention;
            GET DIAGNOSTICS n = ROW_COUNT;
            DELETE FROM popsell.outbox o
             WHERE o.sent_at IS NOT NULL AND o.sent_at < p_at - s.log_retention;
            GET DIAGNOSTICS m = ROW_COUNT;
            n := n + m;
            -- never sent within log_retention: no longer worth sending
            -- (erasure work excepted: it stays until carried out)
            DELETE FROM popsell.outbox o
             WHERE o.sent_at IS NULL AND o.created_at < p_at - s.log_retention
               AND o.kind::text NOT IN ('delete_file', 'partner_erasure', 'partner_optout');
            GET DIAGNOSTICS m = ROW_COUNT;
            n := n + m;
            DELETE FROM popsell.maintenance_runs r
             WHERE r.finished_at < pg_catalog.now() - s.log_retention;
            GET DIAGNOSTICS m = ROW_COUNT;
        END IF;
        n := n + m;

    ELSE
        RAISE EXCEPTION 'unknown maintenance rule "%"', p_rule
            USING ERRCODE = 'PS500', HINT = 'See SELECT * FROM popsell.maintenance_rules().';
    END CASE;
    IF NOT p_preview THEN
        -- due rows skipped because another session held them locked
        -- (run_maintenance records it)
        PERFORM set_config('popsell_maintenance.skipped_rows', sk::text, true);
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION popsell._maintenance_rule(text, timestamptz, boolean) IS
    'Internal: apply (or, with preview, count) one retention rule as of a time; returns the rows acted on.';

-- Program suspended too long, or brand contract over: every personal data
-- row but restricted contacts goes (contacts and ambassadors through their erasure, so tombstones,
-- ledger and statistics stay; all UGC files are queued).  Bulk statements
-- first, so the per-ambassador trigger finds nothing left to do.
CREATE FUNCTION popsell._erase_all_personal_data(p_reason text, p_at timestamptz, p_preview boolean)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint := 0;
    m bigint;
    mark bigint;
BEGIN
    IF p_preview THEN
        SELECT (SELECT count(*) FROM popsell.contacts c WHERE NOT c.restricted)
             + (SELECT count(*) FROM popsell.ambassadors)
             + (SELECT count(*) FROM popsell.ugc)
          INTO n;
        RETURN n;
    END IF;
    mark := popsell._erasure_push(p_reason, true);
    -- restricted contacts (art. 18) stay, without ambassador
    DELETE FROM popsell.contacts c WHERE NOT c.restricted;
    GET DIAGNOSTICS m = ROW_COUNT;
    n := n + m;
    WITH u AS (DELETE FROM popsell.ugc u RETURNING u.id, u.file_path)
    INSERT INTO popsell.outbox (kind, payload, created_at)
    SELECT 'delete_file', jsonb_build_object('file_path', u.file_path, 'what', 'ugc', 'ugc_id', u.id), p_at
      FROM u;
    GET DIAGNOSTICS m = ROW_COUNT;
    n := n + m;
    DELETE FROM popsell.community_reactions;
    DELETE FROM popsell.publications;
    DELETE FROM popsell.social_grants;
    DELETE FROM popsell.gamification;
    DELETE FROM popsell.activity_log;
    DELETE FROM popsell.outbox o
     WHERE o.sent_at IS NULL AND o.kind NOT IN ('delete_file', 'partner_erasure');
    DELETE FROM popsell.ambassadors;
    GET DIAGNOSTICS m = ROW_COUNT;
    n := n + m;
    PERFORM popsell._erasure_pop(mark);
    RETURN n;
END
$$;
COMMENT ON FUNCTION popsell._erase_all_personal_data(text, timestamptz, boolean) IS
    'Internal: erase every contact, ambassador and UGC (program suspended too long, brand contract ended); returns the count.';

-- The guard against overlapping runs (SPEC section 7, who runs it): a
-- row lock (FOR UPDATE NOWAIT) on the single row of this table, which no
-- role but popsell_owner (and superusers) may lock or even see, so no
-- other role can make the runs skip.  Not an advisory lock (any role
-- takes any advisory key) nor a table lock: parsing a statement (PREPARE
-- ... FOR UPDATE) takes a table's RowShareLock before any permission
-- check, which a table-level EXCLUSIVE lock would conflict with, while a
-- row lock needs UPDATE privilege on the table.
-- A restore replaces the row (popsell_10_restore, section Backups).
CREATE TABLE popsell.maintenance_lock (
    id boolean PRIMARY KEY DEFAULT true CHECK (id)
);
INSERT INTO popsell.maintenance_lock DEFAULT VALUES;
COMMENT ON TABLE popsell.maintenance_lock IS
    'Internal: one row; run_maintenance locks it (FOR UPDATE NOWAIT) so runs do not overlap. Owner only.';

-- Sent outbox rows age out after log_retention (rule logs).
CREATE INDEX outbox_sent_idx ON popsell.outbox (sent_at) WHERE sent_at IS NOT NULL;
-- and unsent ones after log_retention from their queuing
CREATE INDEX outbox_unsent_created_idx ON popsell.outbox (created_at) WHERE sent_at IS NULL;

-- How long a rule waits for a row or table lock another session holds
-- before it gives up (recorded as skipped, done by the next run): the
-- session's lock_timeout when it is shorter, else this.
CREATE FUNCTION popsell._maintenance_lock_timeout()
    RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN '30s';
COMMENT ON FUNCTION popsell._maintenance_lock_timeout() IS
    'Internal: the longest a retention rule waits for a lock held by another session (a shorter session lock_timeout wins).';

CREATE FUNCTION popsell.run_maintenance(at timestamptz DEFAULT pg_catalog.now())
    RETURNS TABLE (rule text, affected bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'system'
    SET popsell.as_of = ''
    SET datestyle = 'ISO, YMD'
AS $$
DECLARE
    p_at timestamptz := run_maintenance.at;
    run bigint;
    r text;
    n bigint;
    t0 timestamptz;
    st text;
    app text := current_setting('application_name');
    lt text := current_setting('lock_timeout');
BEGIN
    IF p_at IS NULL THEN
        RAISE EXCEPTION 'run_maintenance needs a time'
            USING ERRCODE = 'PS500', HINT = 'Call popsell.run_maintenance() (now) or pass a timestamptz.';
    END IF;
    -- A run "in the future" erases what is not due yet: the owner's
    -- (tests, previews on a copy) only.
    IF p_at > pg_catalog.now() + interval '1 day' AND NOT popsell._caller_in('popsell_owner') THEN
        RAISE EXCEPTION 'run_maintenance(at) refuses an as-of time more than one day after now()'
            USING ERRCODE = 'PS501',
                  DETAIL = pg_catalog.format('at = %s, now() = %s.', p_at, pg_catalog.now()),
                  HINT = 'Call popsell.run_maintenance() (now); popsell.maintenance_preview(at) shows what a later run would do.';
    END IF;
    IF pg_is_in_recovery() THEN
        RAISE NOTICE 'popsell.run_maintenance does nothing on a standby';
        RETURN QUERY SELECT x, NULL::bigint FROM popsell.maintenance_rules() AS x;
        RETURN;
    END IF;
    run := nextval('popsell.maintenance_run_id_seq');
    -- One run at a time per database; an overlapping run is skipped (its
    -- work is done by the one holding the lock, or by the next run) and
    -- says so in the record.
    BEGIN
        PERFORM FROM popsell.maintenance_lock l FOR UPDATE NOWAIT;
        IF NOT FOUND THEN
            -- the row went (deleted by a superuser): put it back; a
            -- concurrent run would wait for this insert: it gives up at
            -- once instead
            PERFORM set_config('lock_timeout', '10ms', true);
            INSERT INTO popsell.maintenance_lock DEFAULT VALUES ON CONFLICT DO NOTHING;
            PERFORM set_config('lock_timeout', lt, true);
            PERFORM FROM popsell.maintenance_lock l FOR UPDATE NOWAIT;
        END IF;
    EXCEPTION WHEN lock_not_available THEN
        RAISE NOTICE 'popsell.run_maintenance skipped: another run is in progress';
        INSERT INTO popsell.maintenance_runs (run_id, rule, affected, as_of, started_at, run_by,
                                              failed_sqlstate, outcome)
        SELECT run, x, 0, p_at, clock_timestamp(), session_user, '55P03', 'skipped'
          FROM popsell.maintenance_rules() AS x;
        RETURN QUERY SELECT x, NULL::bigint FROM popsell.maintenance_rules() AS x;
        RETURN;
    END;
    -- Never wait forever on a lock another session holds (an open
    -- transaction of an application role on a due row).
    IF lt = '0' OR lt::interval > popsell._maintenance_lock_timeout()::interval THEN
        PERFORM set_config('lock_timeout', popsell._maintenance_lock_timeout(), true);
    END IF;
    PERFORM set_config('popsell.as_of', p_at::text, true);
    FOR r IN SELECT x FROM popsell.maintenance_rules() AS x LOOP
        t0 := clock_timestamp();
        -- pg_stat_activity shows the rule in progress
        PERFORM set_config('application_name', pg_catalog.left('popsell_maintenance: ' || r, 63), true);
        BEGIN
            PERFORM set_config('popsell_maintenance.skipped_rows', '0', true);
            n := popsell._maintenance_rule(r, p_at, false);
            INSERT INTO popsell.maintenance_runs (run_id, rule, affected, as_of, started_at, run_by, skipped_rows)
            VALUES (run, r, n, p_at, t0, session_user,
                    coalesce(nullif(current_setting('popsell_maintenance.skipped_rows', true), ''), '0')::bigint);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
            IF st = '55P03' THEN
                RAISE WARNING 'popsell maintenance rule % skipped: it waited too long for a lock (SQLSTATE %); the next run does it', r, st;
            ELSE
                RAISE WARNING 'popsell maintenance rule % failed with SQLSTATE %; its work is rolled back and retried next run', r, st;
            END IF;
            n := NULL;
            INSERT INTO popsell.maintenance_runs (run_id, rule, affected, as_of, started_at, run_by,
                                                  failed_sqlstate, outcome)
            VALUES (run, r, 0, p_at, t0, session_user, st,
                    CASE WHEN st = '55P03' THEN 'skipped' ELSE 'failed' END);
        END;
        rule := r;
        affected := n;
        RETURN NEXT;
    END LOOP;
    PERFORM set_config('application_name', app, true);
    PERFORM set_config('lock_timeout', lt, true);
END
$$;
COMMENT ON FUNCTION popsell.run_maintenance(timestamptz) IS
    'Apply every retention and reminder rule as of AT (default now), set-based and idempotent; one popsell.maintenance_runs row per rule. Skipped (and recorded as skipped) while another run holds the lock; a rule waiting too long for a lock is skipped and recorded; no-op on a standby. AT more than one day after now() is refused (PS501) except for popsell_owner. application_name shows the rule in progress.';

CREATE FUNCTION popsell.maintenance_preview(at timestamptz DEFAULT pg_catalog.now())
    RETURNS TABLE (rule text, affected bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    -- a count never waits long on a table lock another session holds
    -- (maintenance_status's due_now, in the alert query): NULL instead
    SET lock_timeout = '500ms'
AS $$
DECLARE
    r text;
BEGIN
    IF maintenance_preview.at IS NULL THEN
        RAISE EXCEPTION 'maintenance_preview needs a time'
            USING ERRCODE = 'PS500', HINT = 'Pass a timestamptz.';
    END IF;
    FOR r IN SELECT x FROM popsell.maintenance_rules() AS x LOOP
        rule := r;
        BEGIN
            affected := popsell._maintenance_rule(r, maintenance_preview.at, true);
        EXCEPTION WHEN lock_not_available THEN
            affected := NULL;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION popsell.maintenance_preview(timestamptz) IS
    'What popsell.run_maintenance(AT) would do, per rule, with counts; changes nothing. A count that waits more than half a second for a lock another session holds is NULL.';

-- -------------------------------------------------------------------
-- pg_cron.  No dependency: cron objects are resolved at call time, and
-- only as members of the extension pg_cron installed in this database,
-- the one pg_cron lives in.  A schema merely named cron (any role with
-- CREATE on the database can make one) is never called: its functions
-- would run with the caller's rights, a superuser's in DROP EXTENSION.
-- -------------------------------------------------------------------
CREATE FUNCTION popsell._cron_job_name()
    RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN 'popsell_maintenance_' OPERATOR(pg_catalog.||) pg_catalog.current_database();
COMMENT ON FUNCTION popsell._cron_job_name() IS
    'Internal: the pg_cron job name of this database''s maintenance.';

CREATE FUNCTION popsell._cron_object(kind text, name text)
    RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cron_db text;
    ext oid;
    found text;
BEGIN
    IF kind IS NULL OR kind OPERATOR(pg_catalog.<>) ALL (ARRAY['function', 'table']) OR name IS NULL THEN
        RAISE EXCEPTION 'popsell._cron_object needs a kind (function or table) and a name'
            USING ERRCODE = 'PS500', HINT = 'E.g. popsell._cron_object(''function'', ''unschedule(bigint)'').';
    END IF;
    -- cron.database_name is readable only by superusers and members of
    -- pg_read_all_settings ('' here for others: pg_cron's own CREATE
    -- EXTENSION check then stands for it).
    BEGIN
        cron_db := current_setting('cron.database_name', true);
    EXCEPTION WHEN insufficient_privilege THEN
        cron_db := '';
    END;
    IF cron_db IS NULL
       OR (cron_db OPERATOR(pg_catalog.<>) '' AND cron_db OPERATOR(pg_catalog.<>) current_database()) THEN
        RETURN NULL;                             -- pg_cron not loaded, or lives elsewhere
    END IF;
    SELECT e.oid INTO ext FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'pg_cron';
    IF ext IS NULL THEN
        RETURN NULL;
    END IF;
    -- Among the extension's own members only (pg_depend deptype 'e'):
    -- pg_cron creates its schema cron itself (its extnamespace is the
    -- schema current at CREATE EXTENSION, not that one).
    IF kind OPERATOR(pg_catalog.=) 'function' THEN
        SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(p.proname)
          INTO found
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) d.objid
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
           AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND d.refobjid OPERATOR(pg_catalog.=) ext
           AND d.deptype OPERATOR(pg_catalog.=) 'e'
           AND p.proname OPERATOR(pg_catalog.=) pg_catalog.split_part(name, '(', 1)
           AND pg_catalog.replace(pg_catalog.oidvectortypes(p.proargtypes), ' ', '')
               OPERATOR(pg_catalog.=) pg_catalog.replace(pg_catalog.rtrim(pg_catalog.split_part(name, '(', 2), ')'), ' ', '');
    ELSE
        SELECT c.oid::pg_catalog.regclass::pg_catalog.text
          INTO found
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.objid
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND d.refobjid OPERATOR(pg_catalog.=) ext
           AND d.deptype OPERATOR(pg_catalog.=) 'e'
           AND c.relname OPERATOR(pg_catalog.=) name
           AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[]);
    END IF;
    RETURN found;                                -- schema-qualified, for format('%s')
END
$$;
COMMENT ON FUNCTION popsell._cron_object(text, text) IS
    'Internal: the schema-qualified name of pg_cron''s function (kind ''function'', name with argument types) or table (kind ''table''), or NULL unless pg_cron lives in this database (cron.database_name), its extension is installed here and the object is a member of it.';

CREATE FUNCTION popsell._cron_missing(call text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cron_db text;
BEGIN
    BEGIN
        cron_db := current_setting('cron.database_name', true);
    EXCEPTION WHEN insufficient_privilege THEN
        cron_db := '';
    END;
    RAISE EXCEPTION 'pg_cron is not installed in database %', current_database()
        USING ERRCODE = 'PS500',
              DETAIL = CASE WHEN cron_db IS NULL
                            THEN 'pg_cron is not loaded (shared_preload_libraries) in this server.'
                            WHEN cron_db = ''
                            THEN 'Only superusers can read cron.database_name, the database pg_cron lives in.'
                            WHEN cron_db = current_database()
                            THEN 'pg_cron lives in this database (cron.database_name) but the extension pg_cron is not installed here; a schema named cron that is not pg_cron''s is never used.'
                            ELSE format('pg_cron lives in database %s (cron.database_name).', cron_db) END,
              HINT = CASE WHEN cron_db = current_database()
                          THEN format('Run CREATE EXTENSION pg_cron as a superuser, then: %s', call)
                          ELSE format('Connect to the pg_cron database%s as a superuser and run: %s',
                                      coalesce(' ' || quote_ident(nullif(cron_db, '')), ''), call) END;
END
$$;
COMMENT ON FUNCTION popsell._cron_missing(text) IS
    'Internal: raises PS500 saying where pg_cron lives and the exact call to run there.';

CREATE FUNCTION popsell.schedule_jobs(schedule text DEFAULT '17 3 * * *')
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn text;
    job bigint;
BEGIN
    IF schedule IS NULL OR btrim(schedule) = '' THEN
        RAISE EXCEPTION 'schedule_jobs needs a cron schedule'
            USING ERRCODE = 'PS500', HINT = 'E.g. SELECT popsell.schedule_jobs(''17 3 * * *'');';
    END IF;
    fn := popsell._cron_object('function', 'schedule_in_database(text,text,text,text,text,boolean)');
    IF fn IS NULL THEN
        PERFORM popsell._cron_missing(
            format('SELECT cron.schedule_in_database(%L, %L, %L, %L, %L);',
                   popsell._cron_job_name(), schedule, 'SELECT popsell.run_maintenance()',
                   current_database(), 'popsell_maintenance'));
    END IF;
    EXECUTE format('SELECT %s($1, $2, $3, $4, $5, true)', fn)
       INTO job
      USING popsell._cron_job_name(), schedule, 'SELECT popsell.run_maintenance()',
            current_database()::text, 'popsell_maintenance'::text;
    RETURN job;
END
$$;
COMMENT ON FUNCTION popsell.schedule_jobs(text) IS
    'Register popsell.run_maintenance() with pg_cron (run as popsell_maintenance) when pg_cron lives in this database and its extension is installed here; else PS500 with the exact cron.schedule_in_database call to run there.';

CREATE FUNCTION popsell.unschedule_jobs()
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn text;
    job text;
    n bigint;
BEGIN
    fn := popsell._cron_object('function', 'unschedule(bigint)');
    job := popsell._cron_object('table', 'job');
    IF fn IS NULL OR job IS NULL THEN
        PERFORM popsell._cron_missing(
            format('SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = %L AND database = %L;',
                   popsell._cron_job_name(), current_database()));
    END IF;
    EXECUTE format('SELECT count(%s(j.jobid)) FROM %s j WHERE j.jobname OPERATOR(pg_catalog.=) $1 AND j.database OPERATOR(pg_catalog.=) $2',
                   fn, job)
       INTO n
      USING popsell._cron_job_name(), current_database()::text;
    RETURN n;
END
$$;
COMMENT ON FUNCTION popsell.unschedule_jobs() IS
    'Remove the pg_cron job of popsell.run_maintenance for this database (pg_cron installed here, in the database it lives in); returns how many jobs were removed; else PS500 with the exact call to run in the pg_cron database.';

-- -------------------------------------------------------------------
-- Activity, however recorded (SPEC section 3, v2): an interaction other
-- than an open, or a sale, moves contacts.last_activity_at, whether it
-- comes from record_interaction/record_sale or a plain INSERT (or an
-- UPDATE attaching it to a contact) by a role allowed to write.  Set-based, once per statement; a time in the future
-- counts as now (as-of time in a run), so no row keeps a contact forever.
-- -------------------------------------------------------------------
CREATE FUNCTION popsell.contact_activity() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t timestamptz := popsell._lifecycle_now();
BEGIN
    IF TG_LEVEL <> 'STATEMENT' OR TG_WHEN <> 'AFTER' OR TG_OP NOT IN ('INSERT', 'UPDATE')
       OR TG_TABLE_SCHEMA <> 'popsell' OR TG_TABLE_NAME NOT IN ('interactions', 'sales') THEN
        RAISE EXCEPTION 'popsell.contact_activity() handles AFTER INSERT or UPDATE statements on interactions and sales only'
            USING ERRCODE = 'PS900';
    END IF;
    IF popsell._restoring() THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'interactions' THEN
        UPDATE popsell.contacts c SET last_activity_at = a.at
          FROM (SELECT n.contact_id, max(least(n.occurred_at, t)) AS at
                  FROM added_interactions n
                 WHERE n.contact_id IS NOT NULL AND n.kind <> 'open'
                 GROUP BY n.contact_id) a
         WHERE c.id = a.contact_id AND (c.last_activity_at IS NULL OR c.last_activity_at < a.at);
    ELSE
        UPDATE popsell.contacts c SET last_activity_at = a.at
          FROM (SELECT n.contact_id, max(least(n.sold_at, t)) AS at
                  FROM added_sales n
                 WHERE n.contact_id IS NOT NULL
                 GROUP BY n.contact_id) a
         WHERE c.id = a.contact_id AND (c.last_activity_at IS NULL OR c.last_activity_at < a.at);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION popsell.contact_activity() IS
    'Trigger: inserted or updated interactions other than open, and sales, move their contacts'' last_activity_at (a future time counts as now), however the rows are written.';

CREATE TRIGGER popsell_61_activity
    AFTER INSERT ON popsell.interactions
    REFERENCING NEW TABLE AS added_interactions
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.contact_activity();
CREATE TRIGGER popsell_61_activity
    AFTER INSERT ON popsell.sales
    REFERENCING NEW TABLE AS added_sales
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.contact_activity();
-- a row attached to a contact later (contact_id set, an open turned into
-- a click, the time corrected) counts too; a transition table cannot go
-- with UPDATE OF columns, so every update is seen: the rows' own times
-- only ever raise last_activity_at to what they say.
CREATE TRIGGER popsell_62_activity_update
    AFTER UPDATE ON popsell.interactions
    REFERENCING NEW TABLE AS added_interactions
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.contact_activity();
CREATE TRIGGER popsell_62_activity_update
    AFTER UPDATE ON popsell.sales
    REFERENCING NEW TABLE AS added_sales
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.contact_activity();

-- -------------------------------------------------------------------
-- Settings (SPEC section 3, v2): one row, for good (no DELETE, no second
-- row, no TRUNCATE, by anyone: owner and superusers included, replication
-- role too); every window at least one day; suspension_max and
-- deletion_grace (the windows that end in a brand-wide erasure) changed
-- by vendor staff only.  A restore replaces the row (popsell_10_restore).
-- -------------------------------------------------------------------
CREATE FUNCTION popsell.settings_guard() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    w text;
    v interval;
BEGIN
    IF TG_TABLE_SCHEMA <> 'popsell' OR TG_TABLE_NAME <> 'settings' OR TG_WHEN <> 'BEFORE' THEN
        RAISE EXCEPTION 'popsell.settings_guard() handles BEFORE triggers on popsell.settings only'
            USING ERRCODE = 'PS900';
    END IF;
    -- A restore replaces the row: its INSERT (popsell_10_restore deletes
    -- the installed row first, from inside that trigger); a DELETE or
    -- TRUNCATE of its own is refused even then.
    IF popsell._restoring()
       AND (TG_OP IN ('INSERT', 'UPDATE') OR (TG_OP = 'DELETE' AND pg_catalog.pg_trigger_depth() > 1)) THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_OP IN ('DELETE', 'TRUNCATE', 'INSERT') THEN
        RAISE EXCEPTION '% on popsell.settings is refused: it holds exactly one row', TG_OP
            USING ERRCODE = 'PS510',
                  DETAIL = 'Every retention rule reads its windows from that row.',
                  HINT = 'UPDATE popsell.settings to change the configuration.';
    END IF;
    FOREACH w IN ARRAY ARRAY['deletion_grace', 'ambassador_inactivity', 'inactivity_warning_interval',
                             'new_contact_invitation_window', 'invitation_response_window',
                             'email_confirmation_window', 'optout_retention', 'contact_inactivity',
                             'suspension_max', 'log_retention', 'signup_confirmation_window'] LOOP
        v := pg_catalog.to_jsonb(NEW) ->> w;
        IF NOT popsell._is_window(v) THEN
            RAISE EXCEPTION 'settings.% must be at least 1 day with no negative part, not %', w, v
                USING ERRCODE = 'PS510',
                      DETAIL = 'Every retention window has a floor of one day, and its months, days and time are each zero or more (a mixed-sign interval goes back in time in date arithmetic).',
                      HINT = pg_catalog.format('SET %s to 1 day or more, e.g. ''30 days''.', w);
        END IF;
    END LOOP;
    IF NEW.inactivity_warnings IS NULL OR NEW.inactivity_warnings < 1 THEN
        RAISE EXCEPTION 'settings.inactivity_warnings must be at least 1, not %', NEW.inactivity_warnings
            USING ERRCODE = 'PS510',
                  DETAIL = 'An inactive ambassador is warned before deletion (SPEC section 7).',
                  HINT = 'SET inactivity_warnings between 1 and 10.';
    END IF;
    IF (NEW.suspension_max IS DISTINCT FROM OLD.suspension_max
        OR NEW.deletion_grace IS DISTINCT FROM OLD.deletion_grace)
       AND NOT (popsell._caller_in('popsell_owner') OR popsell._caller_in('popsell_account_team')
                OR popsell._caller_in('popsell_technical')) THEN
        RAISE EXCEPTION 'permission denied to change settings.suspension_max or settings.deletion_grace'
            USING ERRCODE = '42501',
                  DETAIL = 'These windows end in a brand-wide erasure: vendor staff (popsell_account_team, popsell_technical) set them.',
                  HINT = 'Ask the vendor''s account team.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION popsell.settings_guard() IS
    'Trigger: popsell.settings keeps exactly one row (PS510 on INSERT, DELETE, TRUNCATE, for every role), every window is at least one day with no negative part and inactivity_warnings at least 1 (PS510), suspension_max and deletion_grace change only by vendor staff (42501).';

CREATE TRIGGER popsell_20_settings_guard
    BEFORE INSERT OR UPDATE OR DELETE ON popsell.settings
    FOR EACH ROW EXECUTE FUNCTION popsell.settings_guard();
CREATE TRIGGER popsell_20_settings_truncate
    BEFORE TRUNCATE ON popsell.settings
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.settings_guard();
-- also with session_replication_role = replica
ALTER TABLE popsell.settings ENABLE ALWAYS TRIGGER popsell_20_settings_guard;
ALTER TABLE popsell.settings ENABLE ALWAYS TRIGGER popsell_20_settings_truncate;

GRANT USAGE ON SCHEMA popsell TO popsell_maintenance, popsell_technical, popsell_account_team;
GRANT EXECUTE ON FUNCTION popsell.run_maintenance(timestamptz)
    TO popsell_maintenance, popsell_technical, popsell_account_team;
GRANT EXECUTE ON FUNCTION popsell.maintenance_preview(timestamptz)
    TO popsell_maintenance, popsell_technical, popsell_account_team;
GRANT EXECUTE ON FUNCTION popsell.maintenance_rules() TO popsell_maintenance, popsell_technical, popsell_account_team;
GRANT EXECUTE ON FUNCTION popsell.schedule_jobs(text), popsell.unschedule_jobs(), popsell._cron_job_name(),
    popsell._cron_object(text, text), popsell._cron_missing(text)
    TO popsell_technical;
-- popsell_maintenance reads its own record (the security section covers staff).
GRANT SELECT ON popsell.maintenance_runs TO popsell_maintenance;
CREATE POLICY popsell_maintenance_select ON popsell.maintenance_runs FOR SELECT TO popsell_maintenance
    USING (true);
COMMENT ON POLICY popsell_maintenance_select ON popsell.maintenance_runs IS
    'The scheduled-jobs role reads the record of the runs.';

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
       p.affected AS due_now,
       l.started_at AS last_started_at,
       l.finished_at OPERATOR(pg_catalog.-) l.started_at AS last_duration,
       CASE WHEN l.run_id IS NULL THEN NULL
            WHEN l.failed_sqlstate IS NULL THEN 'done'
            WHEN l.outcome OPERATOR(pg_catalog.=) 'skipped' THEN 'skipped'
            ELSE 'failed' END AS last_outcome,
       pg_catalog.now() OPERATOR(pg_catalog.-) ok.finished_at AS last_success_age,
       coalesce(f.skipped, 0) AS skipped_since_success,
       l.skipped_rows AS last_skipped_rows
  FROM popsell.maintenance_rules() WITH ORDINALITY AS r(rule, position)
  LEFT JOIN LATERAL (
        SELECT m.run_id, m.as_of, m.started_at, m.finished_at, m.affected, m.failed_sqlstate, m.run_by,
               m.outcome, m.skipped_rows
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
        SELECT pg_catalog.count(*) FILTER (WHERE m.outcome OPERATOR(pg_catalog.<>) 'skipped') AS failures,
               pg_catalog.count(*) FILTER (WHERE m.outcome OPERATOR(pg_catalog.=) 'skipped') AS skipped
          FROM popsell.maintenance_runs m
         WHERE m.rule OPERATOR(pg_catalog.=) r.rule
           AND m.failed_sqlstate IS NOT NULL
           AND m.id OPERATOR(pg_catalog.>) coalesce(ok.id, 0)) AS f ON true
  LEFT JOIN popsell.maintenance_preview(pg_catalog.now()) AS p
         ON p.rule OPERATOR(pg_catalog.=) r.rule;

REVOKE ALL ON popsell.maintenance_status FROM PUBLIC;
-- The vendor's staff and the scheduled-jobs role: the readers of the run
-- record who may also preview the rules.
GRANT SELECT ON popsell.maintenance_status
    TO popsell_owner, popsell_maintenance, popsell_account_team, popsell_technical;

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
