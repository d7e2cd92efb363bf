
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

-- @restate function:_erasure_now

-- @restate function:_lifecycle_now
-- DROP EXTENSION popsell's guard: see 16_clients_fixes.sql.
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
    'Unsent popsell.outbox rows per kind (every kind, 0 when none), the oldest one''s created_at and age: the mail worker''s health. Counts only, no personal data. Readable by popsell_technical, popsell_account_team and popsell_maintenance.';
GRANT SELECT ON popsell.outbox_backlog TO popsell_technical, popsell_account_team, popsell_maintenance;
