-- ===================================================================
-- Ownership, privileges, row security baseline and pg_dump, for every
-- object of the schema.  One idempotent step that the install script and
-- every upgrade script end with, so an upgrade cannot forget a table's
-- FORCE ROW LEVEL SECURITY, its owner or its pg_dump registration.
-- Upgrade scripts get this file appended by the Makefile.
-- ===================================================================

CREATE OR REPLACE FUNCTION popsell._finalize_extension() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    ext pg_catalog.oid;
BEGIN
    -- pg_extension_config_dump only works inside CREATE/ALTER EXTENSION;
    -- say so before changing anything.
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                    WHERE rolname OPERATOR(pg_catalog.=) pg_catalog.current_user()
                      AND rolsuper) THEN
        RAISE EXCEPTION 'popsell._finalize_extension() runs only in popsell''s install and upgrade scripts'
            USING ERRCODE = 'PS001',
                  HINT = 'Run CREATE EXTENSION popsell or ALTER EXTENSION popsell UPDATE as a superuser.';
    END IF;

    SELECT e.oid INTO ext FROM pg_catalog.pg_extension e
     WHERE e.extname OPERATOR(pg_catalog.=) 'popsell';

    -- Only the extension's own objects (pg_depend deptype 'e'): a DBA's
    -- table or function in the schema is none of popsell's business, and
    -- pg_extension_config_dump refuses non-members.

    -- Tables, sequences and views belong to the NOLOGIN popsell_owner, as
    -- do the SQL and PL/pgSQL functions (so SECURITY DEFINER ones run as
    -- it, not as a superuser).  C functions stay with the superuser.
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, c.relkind
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) c.oid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
         WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'v', 'm', 'p', 'S']::"char"[])
           AND c.relowner OPERATOR(pg_catalog.<>) 'popsell_owner'::pg_catalog.regrole
           -- a sequence owned by a column follows its table
           AND NOT (c.relkind OPERATOR(pg_catalog.=) 'S' AND EXISTS (
                    SELECT 1 FROM pg_catalog.pg_depend d
                     WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                       AND d.objid OPERATOR(pg_catalog.=) c.oid
                       AND d.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['a', 'i']::"char"[])))
    LOOP
        IF r.relkind OPERATOR(pg_catalog.=) 'S' THEN
            EXECUTE pg_catalog.format('ALTER SEQUENCE %s OWNER TO popsell_owner', r.obj);
        ELSE
            EXECUTE pg_catalog.format('ALTER TABLE %s OWNER TO popsell_owner', r.obj);
        END IF;
    END LOOP;
    FOR r IN
        SELECT p.oid::pg_catalog.regprocedure AS fn, l.lanname
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) p.oid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
          JOIN pg_catalog.pg_language l ON l.oid OPERATOR(pg_catalog.=) p.prolang
    LOOP
        IF r.lanname OPERATOR(pg_catalog.<>) 'c' THEN
            EXECUTE pg_catalog.format('ALTER FUNCTION %s OWNER TO popsell_owner', r.fn);
        END IF;
        -- Nothing of popsell is granted to PUBLIC; roles get what they
        -- need with each object.  popsell_owner runs popsell's functions.
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', r.fn);
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO popsell_owner', r.fn);
    END LOOP;
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, c.relkind
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) c.oid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
    LOOP
        IF r.relkind OPERATOR(pg_catalog.=) 'S' THEN
            EXECUTE pg_catalog.format('REVOKE ALL ON SEQUENCE %s FROM PUBLIC', r.obj);
        ELSE
            EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %s FROM PUBLIC', r.obj);
        END IF;
    END LOOP;
    REVOKE ALL ON SCHEMA popsell FROM PUBLIC;
    GRANT USAGE ON SCHEMA popsell TO popsell_owner;
    -- The lookup-key functions' schema: USAGE for popsell_owner alone
    -- (its functions look contacts up by key); the writing roles hold
    -- EXECUTE for index maintenance, which does not check USAGE, and
    -- cannot name the functions in a query (03_tables.sql).
    -- A grant someone added since is taken back by the next upgrade.
    FOR r IN
        SELECT DISTINCT a.grantee
          FROM pg_catalog.pg_namespace n, LATERAL pg_catalog.aclexplode(n.nspacl) a
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell_internal'
           AND a.grantee OPERATOR(pg_catalog.<>) n.nspowner
           AND a.grantee OPERATOR(pg_catalog.<>) 'popsell_owner'::pg_catalog.regrole
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON SCHEMA popsell_internal FROM %s CASCADE',
                                  CASE WHEN r.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                                       ELSE r.grantee::pg_catalog.regrole::pg_catalog.text END);
    END LOOP;
    GRANT USAGE ON SCHEMA popsell_internal TO popsell_owner;

    -- Types are usable by PUBLIC by default: only popsell's roles get
    -- them (enums, domains, composite types).
    FOR r IN
        SELECT t.oid::pg_catalog.regtype AS typ
          FROM pg_catalog.pg_type t
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) t.oid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
         WHERE t.typtype OPERATOR(pg_catalog.=) ANY (ARRAY['e', 'd', 'c']::"char"[])
           -- a table's or view's row type follows its relation (pg_dump
           -- 16 and later refuse initial privileges recorded on it)
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class rel
                            WHERE rel.oid OPERATOR(pg_catalog.=) t.typrelid
                              AND rel.relkind OPERATOR(pg_catalog.<>) 'c')
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON TYPE %s FROM PUBLIC', r.typ);
        EXECUTE pg_catalog.format('GRANT USAGE ON TYPE %s TO popsell_owner, popsell_ambassador, '
                                  'popsell_brand, popsell_brand_bi, popsell_account_team, '
                                  'popsell_technical, popsell_app, popsell_maintenance', r.typ);
    END LOOP;

    -- Row level security on every table, forced so the owner is subject to
    -- it too; popsell_owner (popsell's own functions and triggers) sees all
    -- rows, other roles get policies in the security section.
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, c.oid
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) c.oid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
         WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[])
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', r.obj);
        EXECUTE pg_catalog.format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', r.obj);
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy
                        WHERE polrelid OPERATOR(pg_catalog.=) r.oid
                          AND polname OPERATOR(pg_catalog.=) 'popsell_owner_all') THEN
            EXECUTE pg_catalog.format(
                'CREATE POLICY popsell_owner_all ON %s TO popsell_owner USING (true) WITH CHECK (true)', r.obj);
        END IF;
    END LOOP;

    -- No column statistics of personal data (SPEC S11): the planner uses a
    -- table's statistics (histogram bounds, most common values) to estimate
    -- a caller's leakproof condition, hidden rows included, so a plain
    -- EXPLAIN's row estimate would tell a restricted role whether a value
    -- it may not see is stored.  Every column of a member table that can
    -- hold personal data (text, date, bytea, arrays, json, inet), and every index
    -- expression of those types (lookup keys of emails...), gets statistics target 0 and
    -- loses the statistics an earlier ANALYZE gathered.
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, a.attname, a.attnum, c.oid
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) c.oid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
          JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attnum OPERATOR(pg_catalog.>) 0
                                         AND NOT a.attisdropped
          JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid
         WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[])
           AND (t.typcategory OPERATOR(pg_catalog.=) ANY (ARRAY['S', 'A']::"char"[])
                OR a.atttypid OPERATOR(pg_catalog.=) ANY (ARRAY['pg_catalog.bytea', 'pg_catalog.date',
                                                                'pg_catalog.jsonb', 'pg_catalog.json', 'pg_catalog.name',
                                                                'pg_catalog.inet']::pg_catalog.regtype[]))
    LOOP
        -- (attstattarget is NULL for the default from PostgreSQL 17 on)
        IF coalesce((SELECT a.attstattarget FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid OPERATOR(pg_catalog.=) r.oid AND a.attnum OPERATOR(pg_catalog.=) r.attnum),
                    -1) OPERATOR(pg_catalog.<>) 0 THEN
            EXECUTE pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I SET STATISTICS 0', r.obj, r.attname);
        END IF;
        DELETE FROM pg_catalog.pg_statistic
         WHERE starelid OPERATOR(pg_catalog.=) r.oid AND staattnum OPERATOR(pg_catalog.=) r.attnum;
    END LOOP;
    FOR r IN
        SELECT i.indexrelid::pg_catalog.regclass AS obj, a.attnum, i.indexrelid AS oid, a.attstattarget
          FROM pg_catalog.pg_index i
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) i.indrelid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
          JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indexrelid
                                         AND a.attnum OPERATOR(pg_catalog.>) 0
          JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid
         WHERE i.indkey[a.attnum OPERATOR(pg_catalog.-) 1] OPERATOR(pg_catalog.=) 0
           AND (t.typcategory OPERATOR(pg_catalog.=) ANY (ARRAY['S', 'A']::"char"[])
                OR a.atttypid OPERATOR(pg_catalog.=) ANY (ARRAY['pg_catalog.bytea', 'pg_catalog.date',
                                                                'pg_catalog.jsonb', 'pg_catalog.json', 'pg_catalog.name',
                                                                'pg_catalog.inet']::pg_catalog.regtype[]))
    LOOP
        IF coalesce(r.attstattarget, -1) OPERATOR(pg_catalog.<>) 0 THEN
            EXECUTE pg_catalog.format('ALTER INDEX %s ALTER COLUMN %s SET STATISTICS 0', r.obj, r.attnum);
        END IF;
        DELETE FROM pg_catalog.pg_statistic
         WHERE starelid OPERATOR(pg_catalog.=) r.oid AND staattnum OPERATOR(pg_catalog.=) r.attnum;
    END LOOP;

    -- Tables with a lookup-key index (an index expression calling a
    -- function of popsell_internal: contacts, ambassadors) are read through
    -- column grants only.  CREATE TABLE ... (LIKE t INCLUDING INDEXES)
    -- needs only table-level SELECT on t and copies its index expressions
    -- by OID, lookup-key functions included: the copy's unique violations
    -- (or pg_stats) then print the key of any value its creator inserts.
    -- LIKE checks the table-level privilege only, so column grants on
    -- every column (SELECT * and count(*) keep working) refuse it.  The
    -- roles reading every column (popsell._column_readers, 07_security.sql)
    -- get SELECT on each column, including the columns an upgrade added;
    -- any other table-level SELECT on these tables (a DBA's grant, a later
    -- script's) becomes SELECT on every column too.  Revoking a table-level
    -- privilege takes the column ones with it, so the revoke comes first.
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, a.grantee::pg_catalog.regrole AS grantee
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) c.oid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
          CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
         WHERE a.privilege_type OPERATOR(pg_catalog.=) 'SELECT'
           AND a.grantee OPERATOR(pg_catalog.<>) c.relowner
           AND a.grantee OPERATOR(pg_catalog.<>) 0
           AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                         JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                                     AND d.objid OPERATOR(pg_catalog.=) i.indexrelid
                                                     AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                         JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) d.refobjid
                        WHERE i.indrelid OPERATOR(pg_catalog.=) c.oid
                          AND p.pronamespace OPERATOR(pg_catalog.=) 'popsell_internal'::pg_catalog.regnamespace)
        UNION
        SELECT w.rel::pg_catalog.regclass, w.reader::pg_catalog.regrole
          FROM popsell._column_readers() w
         ORDER BY 1, 2   -- the same order of ACL entries after an install and an upgrade
    LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c, LATERAL pg_catalog.aclexplode(c.relacl) a
                    WHERE c.oid OPERATOR(pg_catalog.=) r.obj
                      AND a.grantee OPERATOR(pg_catalog.=) r.grantee
                      AND a.privilege_type OPERATOR(pg_catalog.=) 'SELECT') THEN
            EXECUTE pg_catalog.format('REVOKE SELECT ON TABLE %s FROM %s', r.obj, r.grantee);
        END IF;
        EXECUTE pg_catalog.format('GRANT SELECT (%s) ON TABLE %s TO %s',
            (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(att.attname), ', ' ORDER BY att.attnum)
               FROM pg_catalog.pg_attribute att
              WHERE att.attrelid OPERATOR(pg_catalog.=) r.obj AND att.attnum OPERATOR(pg_catalog.>) 0
                AND NOT att.attisdropped),
            r.obj, r.grantee);
    END LOOP;

    -- pg_dump keeps what users filled (SPEC section 3, S9): every table
    -- and sequence, registered once.
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) c.oid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
          JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) ext
         WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p', 'S']::"char"[])
           AND NOT c.oid OPERATOR(pg_catalog.=) ANY (coalesce(e.extconfig, '{}'::pg_catalog.oid[]))
    LOOP
        PERFORM pg_catalog.pg_extension_config_dump(r.obj, '');
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION popsell._finalize_extension() FROM PUBLIC;
COMMENT ON FUNCTION popsell._finalize_extension() IS
    'Install and upgrade step (superuser only; the last statement of every install and upgrade script): every member table, view, sequence and non-C function owned by popsell_owner, nothing granted to PUBLIC, row security enabled and forced with the owner policy, no statistics on columns and index expressions that can hold personal data, tables with a lookup-key index read through column grants only (the roles of popsell._column_readers() get SELECT on every column, any other table-level SELECT becomes SELECT on every column), every table and sequence registered for pg_dump. Idempotent.';

SELECT popsell._finalize_extension();
