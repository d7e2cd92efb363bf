-- popsell upgrade from 1.1 to 2.0 (contract version 2).  Built by make:
-- this file, then src/sql/99_finalize.sql (ownership, privileges, row
-- security and pg_dump registration of every object, idempotent).  A
-- fresh 2.0 and 1.0 -> 1.1 -> 2.0 give the same catalog
-- (sql/801_upgrade.sql checks it).

\echo Use "ALTER EXTENSION popsell UPDATE TO '2.0'" to load this file. \quit

-- issue 11: the consent ledger is written through the executor, from an
-- array of popsell._consent_entry (as in src/sql/05_engine.sql).

-- One consent ledger entry as the contacts trigger hands it over: the
-- statement-end trigger writes an array of these with one INSERT ...
-- SELECT FROM unnest($1) into popsell.consent_events (through the
-- executor, so the ledger's defaults, constraints and types apply).
CREATE TYPE popsell._consent_entry AS (
    contact_id           bigint,
    ambassador_id        bigint,
    changed              text[],
    old_ambassador_optin popsell.ambassador_optin,
    new_ambassador_optin popsell.ambassador_optin,
    old_brand_optin      popsell.brand_optin,
    new_brand_optin      popsell.brand_optin,
    old_partners_optin   boolean,
    new_partners_optin   boolean,
    old_email_status     popsell.email_status,
    new_email_status     popsell.email_status,
    source               popsell.contact_source,
    actor                popsell.consent_actor,
    path                 text,
    actor_role           name,
    consent_text         text,
    note                 text,
    occurred_at          timestamptz
);
COMMENT ON TYPE popsell._consent_entry IS
    'Internal: one consent ledger entry as the contacts trigger buffers it, before it is inserted into popsell.consent_events.';
REVOKE ALL ON TYPE popsell._consent_entry FROM PUBLIC;
GRANT USAGE ON TYPE popsell._consent_entry TO popsell_owner;
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

    -- Tables, sequences and views belong to the NOLOGIN popsell_owner, as
    -- do the SQL and PL/pgSQL functions (so SECURITY DEFINER ones run as
    -- it, not as a superuser).  C functions stay with the superuser.
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, c.relkind
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'v', 'm', 'p', 'S']::"char"[])
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
        SELECT p.oid::pg_catalog.regprocedure AS fn
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
          JOIN pg_catalog.pg_language l ON l.oid OPERATOR(pg_catalog.=) p.prolang
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND l.lanname OPERATOR(pg_catalog.<>) 'c'
           AND p.proowner OPERATOR(pg_catalog.<>) 'popsell_owner'::pg_catalog.regrole
    LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s OWNER TO popsell_owner', r.fn);
    END LOOP;

    -- Nothing of popsell is granted to PUBLIC; roles get what they need in
    -- the security section.  popsell_owner runs popsell's own functions.
    REVOKE ALL ON SCHEMA popsell FROM PUBLIC;
    REVOKE ALL ON ALL TABLES IN SCHEMA popsell FROM PUBLIC;
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA popsell FROM PUBLIC;
    REVOKE ALL ON ALL FUNCTIONS IN SCHEMA popsell FROM PUBLIC;
    GRANT USAGE ON SCHEMA popsell TO popsell_owner;
    GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA popsell TO popsell_owner;

    -- Types are usable by PUBLIC by default: only popsell's roles get them.
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

    -- Row level security on every table, forced so the owner is subject to
    -- it too; popsell_owner (popsell's own functions and triggers) sees all
    -- rows, other roles get policies in the security section.
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, c.oid
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND c.relkind OPERATOR(pg_catalog.=) 'r'
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

    -- pg_dump keeps what users filled (SPEC section 3, S9): every table
    -- and sequence, registered once.
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
          JOIN pg_catalog.pg_extension e ON e.extname OPERATOR(pg_catalog.=) 'popsell'
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'S']::"char"[])
           AND NOT c.oid OPERATOR(pg_catalog.=) ANY (coalesce(e.extconfig, '{}'::pg_catalog.oid[]))
    LOOP
        PERFORM pg_catalog.pg_extension_config_dump(r.obj, '');
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION popsell._finalize_extension() FROM PUBLIC;
COMMENT ON FUNCTION popsell._finalize_extension() IS
    'Install and upgrade step (superuser, inside CREATE/ALTER EXTENSION only): every popsell table, view, sequence and non-C function owned by popsell_owner, nothing granted to PUBLIC, row security enabled and forced with the owner policy, every table and sequence registered for pg_dump. Idempotent.';

SELECT popsell._finalize_extension();
