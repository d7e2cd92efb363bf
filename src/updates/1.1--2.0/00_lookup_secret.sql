-- The lookup secret (SPEC S11): lookup-key indexes are keyed by it, so it
-- exists before any part builds one (12_security.sql) and before popsell's
-- C triggers compute a key.  Created once here with a fresh random value,
-- like a fresh install; never rotated.  42_security_leftovers.sql attaches
-- the rest (the write-time gate, the restore handling).
CREATE TABLE popsell.lookup_secret (
    id         integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    secret     bytea NOT NULL CHECK (octet_length(secret) = 32),
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE popsell.lookup_secret IS
    'The secret of the lookup keys (HMAC-SHA-256) that personal columns are indexed by; one row, created at install, never changed (the indexes depend on it), kept by pg_dump. Owner only.';
INSERT INTO popsell.lookup_secret (secret) VALUES (popsell._random_bytes(32));
-- @restate function:_lookup_secret_guard function:_lookup_secret_changed
CREATE TRIGGER popsell_20_never_changes
    BEFORE UPDATE OR DELETE ON popsell.lookup_secret
    FOR EACH ROW EXECUTE FUNCTION popsell._lookup_secret_guard();
CREATE TRIGGER popsell_20_never_truncated
    BEFORE TRUNCATE ON popsell.lookup_secret
    FOR EACH STATEMENT EXECUTE FUNCTION popsell._lookup_secret_guard();
CREATE TRIGGER popsell_90_secret_changed
    AFTER INSERT OR DELETE ON popsell.lookup_secret
    FOR EACH STATEMENT EXECUTE FUNCTION popsell._lookup_secret_changed();
ALTER TABLE popsell.lookup_secret ENABLE ALWAYS TRIGGER popsell_20_never_changes;
ALTER TABLE popsell.lookup_secret ENABLE ALWAYS TRIGGER popsell_20_never_truncated;
ALTER TABLE popsell.lookup_secret ENABLE ALWAYS TRIGGER popsell_90_secret_changed;
CREATE TRIGGER popsell_10_restore
    BEFORE INSERT ON popsell.lookup_secret
    FOR EACH ROW EXECUTE FUNCTION popsell._restore_singletons();
