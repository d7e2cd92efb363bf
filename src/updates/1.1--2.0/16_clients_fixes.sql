
-- -------------------------------------------------------------------
-- Real clients, review fixes: pg_cron objects only as members of the
-- extension pg_cron installed in its own database; DROP EXTENSION's guard
-- in PL/pgSQL (ddl_command_start/end), no C on the DDL path; the mail
-- worker reads the outbox backlog.
-- -------------------------------------------------------------------

-- @restate function:_cron_object function:_cron_missing function:schedule_jobs function:unschedule_jobs
GRANT EXECUTE ON FUNCTION popsell._cron_object(text, text), popsell._cron_missing(text) TO popsell_technical;

-- @restate function:_drop_guard
CREATE EVENT TRIGGER popsell_drop_guard ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA', 'DROP OWNED', 'DROP LANGUAGE')
    EXECUTE FUNCTION popsell._drop_guard();
CREATE EVENT TRIGGER popsell_drop_guard_end ON ddl_command_end
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA', 'DROP OWNED', 'DROP LANGUAGE')
    EXECUTE FUNCTION popsell._drop_guard();

-- @restate view:outbox_backlog
-- popsell_app first, as a fresh install grants it
REVOKE SELECT ON popsell.outbox_backlog FROM popsell_technical, popsell_account_team, popsell_maintenance;
GRANT SELECT ON popsell.outbox_backlog TO popsell_app, popsell_technical, popsell_account_team, popsell_maintenance;
