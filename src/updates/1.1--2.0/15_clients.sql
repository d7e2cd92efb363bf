
-- -------------------------------------------------------------------
-- Real clients (issue 15): identity per transaction, uninstall and
-- re-install, the outbox backlog, bulk loading.
-- -------------------------------------------------------------------

-- Identity per transaction: a parallel worker cannot tell a fresh
-- popsell.ambassador_id from a stale one, so the leader evaluates it.
ALTER FUNCTION popsell.current_ambassador_id() PARALLEL RESTRICTED;
COMMENT ON FUNCTION popsell.current_ambassador_id() IS
    'The active ambassador the current transaction acts as: by login_role, else by popsell.ambassador_id set by a trusted app in this transaction (SET LOCAL or set_config(..., true)); NULL for nobody.';

CREATE FUNCTION popsell._as_of() RETURNS timestamptz
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'popsell_as_of';
COMMENT ON FUNCTION popsell._as_of() IS
    'Internal: the time popsell.as_of names when it was set in the current transaction (run_maintenance), else NULL.';

CREATE OR REPLACE FUNCTION popsell._erasure_now()
    RETURNS timestamptz
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN coalesce(popsell._as_of(),
                    pg_catalog.now());

CREATE OR REPLACE FUNCTION popsell._lifecycle_now() RETURNS timestamptz
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN coalesce(popsell._as_of(),
                    pg_catalog.now());
