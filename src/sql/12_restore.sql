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
    ELSIF TG_TABLE_NAME = 'lookup_secret' THEN
        DELETE FROM popsell.lookup_secret WHERE id = NEW.id;
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
    BEFORE INSERT ON popsell.lookup_secret
    FOR EACH ROW EXECUTE FUNCTION popsell._restore_singletons();
CREATE TRIGGER popsell_10_restore
    BEFORE INSERT ON popsell.maintenance_lock
    FOR EACH ROW EXECUTE FUNCTION popsell._restore_singletons();

-- A restored lookup secret replaces the install's: every index computed
-- with the install's secret (rows restored before it) is rebuilt, in the
-- restoring transaction, so lookups find the restored rows whatever order
-- pg_restore loads the tables in.
CREATE FUNCTION popsell._lookup_secret_restored() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    IF NOT popsell._restoring() THEN
        RETURN NULL;
    END IF;
    FOR r IN
        SELECT DISTINCT d.objid::pg_catalog.regclass AS idx
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.objid
                                     AND c.relkind OPERATOR(pg_catalog.=) 'i'
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
           AND d.refobjid OPERATOR(pg_catalog.=) ANY (ARRAY['popsell_internal._lookup_key(text)'::pg_catalog.regprocedure,
                                                         'popsell_internal._brand_lookup_key(text)'::pg_catalog.regprocedure]::pg_catalog.oid[])
         ORDER BY 1
    LOOP
        EXECUTE pg_catalog.format('REINDEX INDEX %s', r.idx);
    END LOOP;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION popsell._lookup_secret_restored() IS
    'Trigger: after a restore replaced the lookup secret, rebuild every lookup-key index with it.';
ALTER FUNCTION popsell._lookup_secret_restored() OWNER TO popsell_owner;
REVOKE ALL ON FUNCTION popsell._lookup_secret_restored() FROM PUBLIC;
CREATE TRIGGER popsell_95_restored
    AFTER INSERT ON popsell.lookup_secret
    FOR EACH STATEMENT EXECUTE FUNCTION popsell._lookup_secret_restored();
