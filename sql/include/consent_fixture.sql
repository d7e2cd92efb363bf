-- Shared fixture of the 1xx consent tests, included right after each
-- test connects to its own database: popsell installed, test roles,
-- error-capturing helpers and five ambassadors in every state.
SET client_min_messages = warning;
CREATE EXTENSION popsell CASCADE;
RESET client_min_messages;
\set SHOW_CONTEXT never

-- Test roles (cluster-wide, created once): members of popsell's groups with
-- table privileges and BYPASSRLS, so the trigger's role-based paths are
-- tested apart from the RLS policies.
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES ('popsell_t1_amb', 'popsell_ambassador'),
                                   ('popsell_t1_staff', 'popsell_brand'),
                                   ('popsell_t1_app', 'popsell_app')) v(name, grp) LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.name) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN BYPASSRLS IN ROLE %I', r.name, r.grp);
        END IF;
        EXECUTE format('GRANT USAGE ON SCHEMA popsell TO %I', r.name);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON popsell.contacts, popsell.outbox TO %I', r.name);
        EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA popsell TO %I', r.name);
    END LOOP;
END
$$;

-- pg_temp.try(sql): 'ok' or the SQLSTATE of the error (in a subtransaction).
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text;
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
    RETURN st;
END $$;
-- pg_temp.err(sql): SQLSTATE, message, whether detail and hint are present.
CREATE FUNCTION pg_temp.err(q text, OUT state text, OUT message text, OUT has_detail boolean, OUT has_hint boolean)
LANGUAGE plpgsql AS $$
DECLARE d text; h text;
BEGIN
    EXECUTE q;
    state := 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    has_detail := coalesce(d, '') <> '';
    has_hint := coalesce(h, '') <> '';
END $$;

INSERT INTO popsell.ambassadors (id, kind, status, terms_accepted_at, first_name, email, deletion_due_at) VALUES
    (1, 'customer',  'active',            now(), 'Ann', 'ann@amb.test', NULL),
    (2, 'sales_rep', 'active',            now(), 'Bob', 'bob@amb.test', NULL),
    (3, 'employee',  'active',            now(), 'Cid', 'cid@amb.test', NULL),
    (4, 'customer',  'signup_incomplete', NULL,  'Dee', 'dee@amb.test', NULL),
    (5, 'customer',  'leaving',           now(), 'Eve', 'eve@amb.test', now() + interval '7 days');
SELECT setval('popsell.ambassadors_id_seq', 100);
