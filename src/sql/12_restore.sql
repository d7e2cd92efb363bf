-- ===================================================================
-- Backups (SPEC S9): restoring a dump is not collecting data.
-- ===================================================================

-- A restore brings back the settings row and the keys the install script
-- already created: replace them instead of colliding (SPEC S9).
CREATE FUNCTION popsell._restore_singletons() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT popsell._restoring() THEN
        RETURN NEW;
    END IF;
    IF TG_TABLE_NAME = 'settings' THEN
        DELETE FROM popsell.settings WHERE id = NEW.id;
    ELSIF TG_TABLE_NAME = 'hash_keys' THEN
        DELETE FROM popsell.hash_keys WHERE key_id = NEW.key_id;
    ELSIF TG_TABLE_NAME = 'maintenance_lock' THEN
        DELETE FROM popsell.maintenance_lock WHERE id = NEW.id;
    END IF;
    RETURN NEW;
END
$$;
ALTER FUNCTION popsell._restore_singletons() OWNER TO popsell_owner;
REVOKE ALL ON FUNCTION popsell._restore_singletons() FROM PUBLIC;
COMMENT ON FUNCTION popsell._restore_singletons() IS
    'Trigger: while restoring, a restored settings row, key or maintenance guard row replaces the one the install script created.';
CREATE TRIGGER popsell_10_restore
    BEFORE INSERT ON popsell.settings
    FOR EACH ROW EXECUTE FUNCTION popsell._restore_singletons();
CREATE TRIGGER popsell_10_restore
    BEFORE INSERT ON popsell.hash_keys
    FOR EACH ROW EXECUTE FUNCTION popsell._restore_singletons();
CREATE TRIGGER popsell_10_restore
    BEFORE INSERT ON popsell.maintenance_lock
    FOR EACH ROW EXECUTE FUNCTION popsell._restore_singletons();
