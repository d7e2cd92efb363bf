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
BEGIN
    SELECT * INTO STRICT s FROM popsell.settings;
    wi := s.inactivity_warning_interval;
    wn := s.inactivity_warnings;

    CASE p_rule
    WHEN 'ambassador_leaving' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.ambassadors a
             WHERE a.deletion_due_at IS NOT NULL AND a.deletion_due_at <= p_at;
        ELSE
            mark := popsell._erasure_push('ambassador_leaving', true);
            DELETE FROM popsell.ambassadors a
             WHERE a.deletion_due_at IS NOT NULL AND a.deletion_due_at <= p_at;
            GET DIAGNOSTICS n = ROW_COUNT;
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
            mark := popsell._erasure_push('ambassador_inactive', true);
            DELETE FROM popsell.ambassadors a
             WHERE coalesce(a.last_login_at, a.created_at) <= p_at - s.ambassador_inactivity
               AND a.status <> 'leaving'
               AND (wn = 0
                    OR (a.last_inactivity_warning_at > coalesce(a.last_login_at, a.created_at)
                        AND a.inactivity_warnings_sent >= wn
                        AND a.last_inactivity_warning_at + wi <= p_at));
            GET DIAGNOSTICS n = ROW_COUNT;
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
            DELETE FROM popsell.ambassadors a
             WHERE a.status = 'signup_incomplete'
               AND EXISTS (SELECT 1 FROM popsell.ambassador_email_tokens t
                            WHERE t.ambassador_id = a.id
                              AND t.created_at <= p_at - s.signup_confirmation_window);
            GET DIAGNOSTICS n = ROW_COUNT;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'contact_never_invited' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE c.ambassador_optin = 'new'
               AND c.ambassador_optin_at <= p_at - s.new_contact_invitation_window
               AND c.brand_optin = 'no_optin' AND NOT c.partners_optin;
        ELSE
            mark := popsell._erasure_push('contact_never_invited', false);
            DELETE FROM popsell.contacts c
             WHERE c.ambassador_optin = 'new'
               AND c.ambassador_optin_at <= p_at - s.new_contact_invitation_window
               AND c.brand_optin = 'no_optin' AND NOT c.partners_optin;
            GET DIAGNOSTICS n = ROW_COUNT;
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
             WHERE c.email_confirmed_at IS NULL
               AND c.source IN ('blog', 'blog_internal_form', 'store_purchase')
               AND c.created_at <= p_at - s.email_confirmation_window;
        ELSE
            mark := popsell._erasure_push('email_unconfirmed', false);
            DELETE FROM popsell.contacts c
             WHERE c.email_confirmed_at IS NULL
               AND c.source IN ('blog', 'blog_internal_form', 'store_purchase')
               AND c.created_at <= p_at - s.email_confirmation_window;
            GET DIAGNOSTICS n = ROW_COUNT;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'contact_opted_out' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE c.ambassador_optin IN ('invitation_declined', 'optout_email', 'optout_no_response',
                                          'global_optout', 'optin_blog_pending')
               AND c.ambassador_optin_at <= p_at - s.optout_retention
               AND c.brand_optin = 'no_optin' AND NOT c.partners_optin;
        ELSE
            mark := popsell._erasure_push('contact_opted_out', true);
            DELETE FROM popsell.contacts c
             WHERE c.ambassador_optin IN ('invitation_declined', 'optout_email', 'optout_no_response',
                                          'global_optout', 'optin_blog_pending')
               AND c.ambassador_optin_at <= p_at - s.optout_retention
               AND c.brand_optin = 'no_optin' AND NOT c.partners_optin;
            GET DIAGNOSTICS n = ROW_COUNT;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'contact_inactive' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE c.ambassador_optin NOT IN ('invitation_declined', 'optout_email', 'optout_no_response',
                                              'global_optout', 'optin_blog_pending')
               AND c.source <> 'brand_sync'
               AND greatest(c.last_activity_at, c.ambassador_optin_at, c.created_at)
                   <= p_at - s.contact_inactivity;
        ELSE
            mark := popsell._erasure_push('contact_inactive', true);
            DELETE FROM popsell.contacts c
             WHERE c.ambassador_optin NOT IN ('invitation_declined', 'optout_email', 'optout_no_response',
                                              'global_optout', 'optin_blog_pending')
               AND c.source <> 'brand_sync'
               AND greatest(c.last_activity_at, c.ambassador_optin_at, c.created_at)
                   <= p_at - s.contact_inactivity;
            GET DIAGNOSTICS n = ROW_COUNT;
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
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.activity_log l WHERE l.created_at < p_at - s.log_retention;
            SELECT count(*) INTO m FROM popsell.maintenance_runs r
             WHERE r.finished_at < p_at - s.log_retention AND r.as_of < p_at - s.log_retention;
        ELSE
            DELETE FROM popsell.activity_log l WHERE l.created_at < p_at - s.log_retention;
            GET DIAGNOSTICS n = ROW_COUNT;
            -- (as_of too: this run's own rows, stamped by the wall clock, stay)
            DELETE FROM popsell.maintenance_runs r
             WHERE r.finished_at < p_at - s.log_retention AND r.as_of < p_at - s.log_retention;
            GET DIAGNOSTICS m = ROW_COUNT;
        END IF;
        n := n + m;

    ELSE
        RAISE EXCEPTION 'unknown maintenance rule "%"', p_rule
            USING ERRCODE = 'PS500', HINT = 'See SELECT * FROM popsell.maintenance_rules().';
    END CASE;
    RETURN n;
END
$$;
COMMENT ON FUNCTION popsell._maintenance_rule(text, timestamptz, boolean) IS
    'Internal: apply (or, with preview, count) one retention rule as of a time; returns the rows acted on.';

-- Program suspended too long, or brand contract over: every personal data
-- row goes (contacts and ambassadors through their erasure, so tombstones,
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
        SELECT (SELECT count(*) FROM popsell.contacts) + (SELECT count(*) FROM popsell.ambassadors)
             + (SELECT count(*) FROM popsell.ugc)
          INTO n;
        RETURN n;
    END IF;
    mark := popsell._erasure_push(p_reason, true);
    DELETE FROM popsell.contacts;
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
BEGIN
    IF p_at IS NULL THEN
        RAISE EXCEPTION 'run_maintenance needs a time'
            USING ERRCODE = 'PS500', HINT = 'Call popsell.run_maintenance() (now) or pass a timestamptz.';
    END IF;
    IF pg_is_in_recovery() THEN
        RAISE NOTICE 'popsell.run_maintenance does nothing on a standby';
        RETURN QUERY SELECT x, NULL::bigint FROM popsell.maintenance_rules() AS x;
        RETURN;
    END IF;
    -- One run at a time per database; an overlapping run is skipped (its
    -- work is done by the one holding the lock, or by the next run).
    IF NOT pg_try_advisory_xact_lock(hashtext('popsell.run_maintenance'), 0) THEN
        RAISE NOTICE 'popsell.run_maintenance skipped: another run is in progress';
        RETURN QUERY SELECT x, NULL::bigint FROM popsell.maintenance_rules() AS x;
        RETURN;
    END IF;
    PERFORM set_config('popsell.as_of', p_at::text, true);
    run := nextval('popsell.maintenance_run_id_seq');
    FOR r IN SELECT x FROM popsell.maintenance_rules() AS x LOOP
        t0 := clock_timestamp();
        BEGIN
            n := popsell._maintenance_rule(r, p_at, false);
            INSERT INTO popsell.maintenance_runs (run_id, rule, affected, as_of, started_at, run_by)
            VALUES (run, r, n, p_at, t0, session_user);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
            RAISE WARNING 'popsell maintenance rule % failed with SQLSTATE %; its work is rolled back and retried next run', r, st;
            n := NULL;
            INSERT INTO popsell.maintenance_runs (run_id, rule, affected, as_of, started_at, run_by,
                                                  failed_sqlstate)
            VALUES (run, r, 0, p_at, t0, session_user, st);
        END;
        rule := r;
        affected := n;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION popsell.run_maintenance(timestamptz) IS
    'Apply every retention and reminder rule as of AT (default now), set-based and idempotent; one popsell.maintenance_runs row per rule. Skipped while another run holds the lock; no-op on a standby.';

CREATE FUNCTION popsell.maintenance_preview(at timestamptz DEFAULT pg_catalog.now())
    RETURNS TABLE (rule text, affected bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
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
        affected := popsell._maintenance_rule(r, maintenance_preview.at, true);
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION popsell.maintenance_preview(timestamptz) IS
    'What popsell.run_maintenance(AT) would do, per rule, with counts; changes nothing.';

-- -------------------------------------------------------------------
-- pg_cron.  No dependency: cron objects are resolved at call time.
-- -------------------------------------------------------------------
CREATE FUNCTION popsell._cron_job_name()
    RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN 'popsell_maintenance_' OPERATOR(pg_catalog.||) pg_catalog.current_database();
COMMENT ON FUNCTION popsell._cron_job_name() IS
    'Internal: the pg_cron job name of this database''s maintenance.';

CREATE FUNCTION popsell.schedule_jobs(schedule text DEFAULT '17 3 * * *')
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    call text;
    cron_db text;
    job bigint;
BEGIN
    -- cron.database_name is readable only by superusers and members of
    -- pg_read_all_settings; others ('' here) get the error without it.
    BEGIN
        cron_db := current_setting('cron.database_name', true);
    EXCEPTION WHEN insufficient_privilege THEN
        cron_db := '';
    END;
    IF schedule IS NULL OR btrim(schedule) = '' THEN
        RAISE EXCEPTION 'schedule_jobs needs a cron schedule'
            USING ERRCODE = 'PS500', HINT = 'E.g. SELECT popsell.schedule_jobs(''17 3 * * *'');';
    END IF;
    call := format('SELECT cron.schedule_in_database(%L, %L, %L, %L, %L);',
                   popsell._cron_job_name(), schedule, 'SELECT popsell.run_maintenance()',
                   current_database(), 'popsell_maintenance');
    IF to_regprocedure('cron.schedule_in_database(text,text,text,text,text,boolean)') IS NULL THEN
        RAISE EXCEPTION 'pg_cron is not installed in database %', current_database()
            USING ERRCODE = 'PS500',
                  DETAIL = CASE WHEN cron_db IS NULL
                                THEN 'pg_cron is not loaded (shared_preload_libraries) in this server.'
                                WHEN cron_db = ''
                                THEN 'Only superusers can read cron.database_name, the database pg_cron lives in.'
                                ELSE format('pg_cron lives in database %s (cron.database_name).', cron_db) END,
                  HINT = format('Connect to the pg_cron database%s as a superuser and run: %s',
                                coalesce(' ' || quote_ident(nullif(cron_db, '')), ''), call);
    END IF;
    EXECUTE 'SELECT cron.schedule_in_database($1, $2, $3, $4, $5)'
       INTO job
      USING popsell._cron_job_name(), schedule, 'SELECT popsell.run_maintenance()',
            current_database(), 'popsell_maintenance';
    RETURN job;
END
$$;
COMMENT ON FUNCTION popsell.schedule_jobs(text) IS
    'Register popsell.run_maintenance() with pg_cron (run as popsell_maintenance) when pg_cron lives in this database; else PS500 with the exact cron.schedule_in_database call to run there.';

CREATE FUNCTION popsell.unschedule_jobs()
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cron_db text;
    n bigint;
BEGIN
    -- cron.database_name is readable only by superusers and members of
    -- pg_read_all_settings; others ('' here) get the error without it.
    BEGIN
        cron_db := current_setting('cron.database_name', true);
    EXCEPTION WHEN insufficient_privilege THEN
        cron_db := '';
    END;
    IF to_regprocedure('cron.unschedule(bigint)') IS NULL OR to_regclass('cron.job') IS NULL THEN
        RAISE EXCEPTION 'pg_cron is not installed in database %', current_database()
            USING ERRCODE = 'PS500',
                  DETAIL = CASE WHEN cron_db IS NULL
                                THEN 'pg_cron is not loaded (shared_preload_libraries) in this server.'
                                WHEN cron_db = ''
                                THEN 'Only superusers can read cron.database_name, the database pg_cron lives in.'
                                ELSE format('pg_cron lives in database %s (cron.database_name).', cron_db) END,
                  HINT = format('Connect to the pg_cron database%s as a superuser and run: %s',
                                coalesce(' ' || quote_ident(nullif(cron_db, '')), ''),
                                format('SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = %L AND database = %L;',
                                       popsell._cron_job_name(), current_database()));
    END IF;
    EXECUTE 'SELECT count(cron.unschedule(j.jobid)) FROM cron.job j WHERE j.jobname = $1 AND j.database = $2'
       INTO n
      USING popsell._cron_job_name(), current_database();
    RETURN n;
END
$$;
COMMENT ON FUNCTION popsell.unschedule_jobs() IS
    'Remove the pg_cron job of popsell.run_maintenance for this database; returns how many jobs were removed.';

GRANT USAGE ON SCHEMA popsell TO popsell_maintenance, popsell_technical, popsell_account_team;
GRANT EXECUTE ON FUNCTION popsell.run_maintenance(timestamptz)
    TO popsell_maintenance, popsell_technical, popsell_account_team;
GRANT EXECUTE ON FUNCTION popsell.maintenance_preview(timestamptz)
    TO popsell_maintenance, popsell_technical, popsell_account_team;
GRANT EXECUTE ON FUNCTION popsell.maintenance_rules() TO popsell_maintenance, popsell_technical, popsell_account_team;
GRANT EXECUTE ON FUNCTION popsell.schedule_jobs(text), popsell.unschedule_jobs(), popsell._cron_job_name()
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
