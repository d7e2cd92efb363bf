-- ===================================================================
-- pgcrypto (bcrypt).  pgcrypto may live in any schema; these wrappers
-- are created with that schema written in, the way @extschema:pgcrypto@
-- does on PostgreSQL 16, so nothing is resolved through search_path.
-- ===================================================================

DO $$
DECLARE
    s name;
BEGIN
    SELECT n.nspname INTO s
      FROM pg_catalog.pg_extension e
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
     WHERE e.extname OPERATOR(pg_catalog.=) 'pgcrypto';
    IF s IS NULL THEN
        RAISE EXCEPTION 'popsell requires pgcrypto' USING ERRCODE = 'PS001',
            HINT = 'CREATE EXTENSION popsell CASCADE;';
    END IF;
    EXECUTE pg_catalog.format($f$
        CREATE FUNCTION popsell._bcrypt(password text, salt text) RETURNS text
            LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
            SET search_path = pg_catalog, pg_temp
            RETURN %I.crypt(password, salt)$f$, s);
    EXECUTE pg_catalog.format($f$
        CREATE FUNCTION popsell._bcrypt_salt(cost integer) RETURNS text
            LANGUAGE sql VOLATILE STRICT
            SET search_path = pg_catalog, pg_temp
            RETURN %I.gen_salt('bf', cost)$f$, s);
END
$$;
COMMENT ON FUNCTION popsell._bcrypt(text, text) IS
    'Internal: pgcrypto crypt(), schema-qualified at install.';
COMMENT ON FUNCTION popsell._bcrypt_salt(integer) IS
    'Internal: a bcrypt salt of the given cost from pgcrypto gen_salt().';
