-- ===================================================================
-- Ownership, default privileges, row security baseline and pg_dump.
-- Runs last so it covers every object of the sections above.
-- ===================================================================

-- Tables, sequences and views belong to the NOLOGIN popsell_owner, as do
-- the SQL and PL/pgSQL functions (so SECURITY DEFINER ones run as it, not
-- as a superuser).  C functions stay with the installing superuser.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, c.relkind
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'v', 'm', 'p']::"char"[])
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s OWNER TO popsell_owner', r.obj);
    END LOOP;
    FOR r IN
        SELECT p.oid::pg_catalog.regprocedure AS fn
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
          JOIN pg_catalog.pg_language l ON l.oid OPERATOR(pg_catalog.=) p.prolang
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND l.lanname OPERATOR(pg_catalog.<>) 'c'
    LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s OWNER TO popsell_owner', r.fn);
    END LOOP;
END
$$;

-- Nothing of popsell is granted to PUBLIC; roles get what they need in
-- the security section.  popsell_owner runs popsell's own functions.
REVOKE ALL ON SCHEMA popsell FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA popsell FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA popsell FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA popsell FROM PUBLIC;
GRANT USAGE ON SCHEMA popsell TO popsell_owner;

-- Types are usable by PUBLIC by default: only popsell's roles get them.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT t.oid::pg_catalog.regtype AS typ
          FROM pg_catalog.pg_type t
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.typnamespace
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND t.typtype OPERATOR(pg_catalog.=) 'e'
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON TYPE %s FROM PUBLIC', r.typ);
        EXECUTE pg_catalog.format('GRANT USAGE ON TYPE %s TO popsell_owner, popsell_ambassador, '
                                  'popsell_brand, popsell_brand_bi, popsell_account_team, '
                                  'popsell_technical, popsell_app, popsell_maintenance', r.typ);
    END LOOP;
END
$$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA popsell TO popsell_owner;

-- Row level security on every table, forced so the owner is subject to it
-- too; popsell_owner (popsell's own functions and triggers) sees all rows,
-- other roles get policies in the security section.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, c.relname
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND c.relkind OPERATOR(pg_catalog.=) 'r'
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', r.obj);
        EXECUTE pg_catalog.format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', r.obj);
        EXECUTE pg_catalog.format(
            'CREATE POLICY popsell_owner_all ON %s TO popsell_owner USING (true) WITH CHECK (true)', r.obj);
    END LOOP;
END
$$;

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
    END IF;
    RETURN NEW;
END
$$;
ALTER FUNCTION popsell._restore_singletons() OWNER TO popsell_owner;
REVOKE ALL ON FUNCTION popsell._restore_singletons() FROM PUBLIC;
COMMENT ON FUNCTION popsell._restore_singletons() IS
    'Trigger: while restoring, a restored settings row or key replaces the one the install script created.';
CREATE TRIGGER popsell_10_restore
    BEFORE INSERT ON popsell.settings
    FOR EACH ROW EXECUTE FUNCTION popsell._restore_singletons();
CREATE TRIGGER popsell_10_restore
    BEFORE INSERT ON popsell.hash_keys
    FOR EACH ROW EXECUTE FUNCTION popsell._restore_singletons();

ALTER SEQUENCE popsell.maintenance_run_id_seq OWNER TO popsell_owner;

-- pg_dump keeps what users filled (SPEC section 3, S9).
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'S']::"char"[])
    LOOP
        PERFORM pg_catalog.pg_extension_config_dump(r.obj, '');
    END LOOP;
END
$$;
