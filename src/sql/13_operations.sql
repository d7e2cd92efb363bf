-- ===================================================================
-- Operations: uninstall without a failing pg_cron job left behind, the
-- outbox backlog, bulk loading (README "Operations").
-- ===================================================================

-- DROP EXTENSION popsell must not leave the pg_cron job of
-- run_maintenance behind, failing every day.  An event trigger that is a
-- member of the extension dies with it: neither sql_drop nor
-- ddl_command_end fires for the statement that drops popsell, and a
-- ddl_command_start trigger cannot see which objects a statement drops
-- (only a C function reading the parse tree could, and a C function on
-- the DDL path breaks every DROP once popsell's library is gone).  So,
-- in PL/pgSQL, for every statement that can drop popsell (directly or by
-- CASCADE: DROP EXTENSION, DROP SCHEMA, DROP OWNED, DROP LANGUAGE):
--  * ddl_command_start removes this database's job (pg_cron installed
--    here, by a superuser) and keeps a copy in a setting local to the
--    transaction;
--  * ddl_command_end, which fires only when popsell is still installed
--    after the statement, puts the job back unchanged.
-- The transaction commits the job's removal exactly when popsell is gone,
-- whichever statement dropped it; pg_cron sees committed jobs only.  When
-- pg_cron lives in another database, ddl_command_start warns with the
-- exact cron.unschedule call to run there (unless the statement cannot
-- drop popsell: a client's single DROP without CASCADE not naming it).  DROP DATABASE runs no event
-- trigger (README "Uninstall").
CREATE FUNCTION popsell._drop_guard() RETURNS event_trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cron_db text;
    fn text;
    job text;
    held jsonb;
    stmt text;
BEGIN
    BEGIN
        cron_db := current_setting('cron.database_name', true);
    EXCEPTION WHEN insufficient_privilege THEN
        cron_db := '';
    END;
    IF cron_db IS NULL THEN
        RETURN;                                  -- pg_cron is not loaded: no job anywhere
    END IF;
    IF TG_EVENT OPERATOR(pg_catalog.=) 'ddl_command_end' THEN
        -- popsell survived the statement: put back what ddl_command_start took
        held := NULLIF(pg_catalog.current_setting('popsell_drop.held_jobs', true), '')::jsonb;
        IF held IS NULL THEN
            RETURN;
        END IF;
        PERFORM pg_catalog.set_config('popsell_drop.held_jobs', '', true);
        job := popsell._cron_object('table', 'job');
        IF job IS NOT NULL THEN                  -- else the statement dropped pg_cron itself
            EXECUTE pg_catalog.format('INSERT INTO %s SELECT r.* FROM pg_catalog.jsonb_populate_recordset(NULL::%s, $1) r', job, job)
              USING held;
        END IF;
        RETURN;
    END IF;

    -- a copy left by a statement that dropped popsell earlier in this
    -- transaction is not this statement's
    PERFORM pg_catalog.set_config('popsell_drop.held_jobs', '', true);
    fn := popsell._cron_object('function', 'unschedule(bigint)');
    job := popsell._cron_object('table', 'job');
    IF fn IS NOT NULL AND job IS NOT NULL THEN
        -- only a superuser may remove (and put back) popsell_maintenance's job
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                        WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER AND r.rolsuper) THEN
            RETURN;
        END IF;
        EXECUTE pg_catalog.format('SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(j)) FROM %s j '
                                  'WHERE j.jobname OPERATOR(pg_catalog.=) $1 AND j.database OPERATOR(pg_catalog.=) $2', job)
           INTO held
          USING popsell._cron_job_name(), pg_catalog.current_database()::text;
        IF held IS NULL THEN
            RETURN;
        END IF;
        PERFORM pg_catalog.set_config('popsell_drop.held_jobs', held::text, true);
        EXECUTE pg_catalog.format('SELECT pg_catalog.count(%s(j.jobid)) FROM %s j '
                                  'WHERE j.jobname OPERATOR(pg_catalog.=) $1 AND j.database OPERATOR(pg_catalog.=) $2', fn, job)
          USING popsell._cron_job_name(), pg_catalog.current_database()::text;
    ELSIF cron_db OPERATOR(pg_catalog.<>) '' AND cron_db OPERATOR(pg_catalog.<>) pg_catalog.current_database() THEN
        -- Quiet only for a client's single DROP statement that neither
        -- names popsell nor cascades (DROP OWNED drops owned extensions
        -- without CASCADE): such a statement cannot drop popsell.
        stmt := pg_catalog.rtrim(pg_catalog.current_query(), E'; \t\r\n');
        IF TG_TAG OPERATOR(pg_catalog.<>) 'DROP OWNED'
           AND stmt OPERATOR(pg_catalog.~*) '^\s*drop\s'
           AND pg_catalog.strpos(stmt, ';') OPERATOR(pg_catalog.=) 0
           AND stmt OPERATOR(pg_catalog.!~*) '(popsell|cascade)' THEN
            RETURN;
        END IF;
        RAISE WARNING 'popsell: pg_cron lives in database %; if this statement drops the extension popsell, remove its job for database % there', cron_db, pg_catalog.current_database()
            USING HINT = pg_catalog.format('Connect to the pg_cron database %s as a superuser and run: %s',
                                           pg_catalog.quote_ident(cron_db),
                                           pg_catalog.format('SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = %L AND database = %L;',
                                                             popsell._cron_job_name(), pg_catalog.current_database()));
    END IF;
END
$$;
COMMENT ON FUNCTION popsell._drop_guard() IS
    'Internal: event trigger function of popsell_drop_guard (ddl_command_start) and popsell_drop_guard_end (ddl_command_end); a statement that drops the extension popsell also removes this database''s pg_cron job, or warns with the exact cron.unschedule call when pg_cron lives in another database.';

CREATE EVENT TRIGGER popsell_drop_guard ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA', 'DROP OWNED', 'DROP LANGUAGE')
    EXECUTE FUNCTION popsell._drop_guard();
CREATE EVENT TRIGGER popsell_drop_guard_end ON ddl_command_end
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA', 'DROP OWNED', 'DROP LANGUAGE')
    EXECUTE FUNCTION popsell._drop_guard();

-- The mail worker's health in one query: unsent outbox rows per kind and
-- the oldest one's age.  Counts only (no contact, no payload); the
-- owner's rights read the outbox, so the job role needs no access to it.
CREATE VIEW popsell.outbox_backlog WITH (security_barrier = true) AS
SELECT k.kind,
       coalesce(b.unsent, 0) AS unsent,
       b.oldest_created_at,
       pg_catalog.now() OPERATOR(pg_catalog.-) b.oldest_created_at AS oldest_age
  FROM pg_catalog.unnest(pg_catalog.enum_range(NULL::popsell.outbox_kind)) AS k(kind)
  LEFT JOIN (SELECT o.kind, pg_catalog.count(*) AS unsent, pg_catalog.min(o.created_at) AS oldest_created_at
               FROM popsell.outbox o
              WHERE o.sent_at IS NULL
              GROUP BY o.kind) b ON b.kind OPERATOR(pg_catalog.=) k.kind;
COMMENT ON VIEW popsell.outbox_backlog IS
    'Unsent popsell.outbox rows per kind (every kind, 0 when none), the oldest one''s created_at and age: the mail worker''s health. Counts only, no personal data. Readable by popsell_app (the mail worker), popsell_technical, popsell_account_team and popsell_maintenance.';
GRANT SELECT ON popsell.outbox_backlog TO popsell_app, popsell_technical, popsell_account_team, popsell_maintenance;
