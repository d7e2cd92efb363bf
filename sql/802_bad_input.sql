-- 802_bad_input: a sweep of bad input over every popsell function a SPEC
-- role may call (SPEC section 8).  Each function is called with NULL for
-- every argument, with a plausible baseline, and with each bad value for
-- one argument at a time (others at the baseline): NULL, empty and 1 MB
-- text, malformed emails, '{}' / '[]' / scalar / wrongly shaped jsonb,
-- unknown ids (0, -1, 9e15), every enum label, infinite timestamps, NaN
-- and overflowing amounts.  Every call must end in a normal result or an
-- error with a SQLSTATE that is not XX000 (internal error) and a message;
-- an error must leave the row counts of every popsell table unchanged;
-- the backend must keep answering.  The sweep runs as a superuser and as
-- each SPEC role (each calling only what it is granted).  Every call runs
-- in a savepoint (a PL/pgSQL block) that is rolled back, also after a
-- normal result, so calls do not depend on each other.
--
-- What cannot be swept: invalid UTF-8 never reaches a function (the
-- server rejects it at input: E'\xff' and convert_from('\xff', 'UTF8')
-- raise 22021, checked below), nor can a NUL character be in a text value
-- (chr(0) is 54000); invalid enum labels fail at the cast (22P02) before
-- any popsell code runs, checked below for each popsell enum.

-- Own database: ids and rows do not depend on other tests.
SELECT current_database() AS regress_db \gset
SET client_min_messages = warning;
DROP DATABASE IF EXISTS popsell_t802;
CREATE DATABASE popsell_t802;
\c popsell_t802
SET client_min_messages = warning;
CREATE EXTENSION popsell CASCADE;
RESET client_min_messages;
\set VERBOSITY terse
\set SHOW_CONTEXT never

-- Cheap bcrypt for the sweep (signup and set_password hash passwords).
UPDATE popsell.settings SET bcrypt_cost = 4;

-- Rows the baseline ids reach: ambassador, contact and publication 1000;
-- a contact per kind of state so that ids and emails exist.
INSERT INTO popsell.ambassadors (id, kind, status, terms_accepted_at, first_name, last_name, email, sso_subject,
                                 deletion_due_at)
VALUES (1000, 'sales_rep', 'active', now(), 'Sweep', 'Ambassador', 'sweep.amb@example.test', 'sso-sweep', NULL),
       (1001, 'customer', 'leaving', now(), 'Leaving', 'Ambassador', 'leaving.amb@example.test', NULL,
        now() + interval '7 days');
INSERT INTO popsell.publications (id, ambassador_id, comment) VALUES (1000, 1000, 'sweep');
INSERT INTO popsell.contacts (id, ambassador_id, source, first_name, email)
VALUES (1000, 1000, 'crm_manual', 'Sweep', 'sweep.person@example.test'),
       (1002, 1000, 'crm_manual', 'Other', 'other.person@example.test');
SELECT popsell.collect_contact(1000, 'blog', '{"first_name": "Pending", "email": "pending@example.test"}', true, true);
SELECT popsell.collect_contact(1000, 'order', '{"first_name": "Buyer", "email": "buyer@example.test"}', NULL, true, true);
SELECT popsell.set_password(1000, 'Secret-pass-1');
SELECT (SELECT count(*) FROM popsell.ambassadors) AS ambassadors, (SELECT count(*) FROM popsell.contacts) AS contacts,
       (SELECT count(*) FROM popsell.publications) AS publications;

CREATE SCHEMA sweep;
GRANT USAGE ON SCHEMA sweep TO PUBLIC;
CREATE TABLE sweep.results (
    run       text NOT NULL,
    fn        regprocedure NOT NULL,
    call      text NOT NULL,
    sqlstate  text,          -- NULL: normal result
    message   text,
    changed   boolean        -- rows changed although the call failed
);
GRANT INSERT, SELECT ON sweep.results TO PUBLIC;

-- Row counts of every popsell table, read as the owner of this test
-- function (a superuser), whoever runs the sweep.
CREATE FUNCTION sweep.fingerprint() RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
    n bigint;
    fp text := '';
BEGIN
    FOR r IN SELECT c.oid::regclass AS t FROM pg_class c
              WHERE c.relnamespace = 'popsell'::regnamespace AND c.relkind = 'r' ORDER BY c.relname LOOP
        EXECUTE format('SELECT count(*) FROM %s', r.t) INTO n;
        fp := fp || r.t::text || '=' || n || ' ';
    END LOOP;
    RETURN fp;
END $$;
GRANT EXECUTE ON FUNCTION sweep.fingerprint() TO PUBLIC;

-- The values tried for an argument of type T named NAME (SQL expressions);
-- the first one is the baseline.
CREATE FUNCTION sweep.values_for(t regtype, name text) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v text[];
BEGIN
    IF t = 'bigint'::regtype THEN
        v := ARRAY['1000', '0', '-1', '9000000000000000', '1001', '1002', '1003'];
    ELSIF t = 'integer'::regtype THEN
        v := ARRAY['12', '0', '-1', '2147483647'];
    ELSIF t = 'boolean'::regtype THEN
        v := ARRAY['true', 'false'];
    ELSIF t = 'numeric'::regtype THEN
        v := ARRAY['10', '0', '-1', '''NaN''::numeric', '''Infinity''::numeric', '1e20', '1e-20'];
    ELSIF t = 'timestamptz'::regtype THEN
        v := ARRAY['now()', '''infinity''::timestamptz', '''-infinity''::timestamptz',
                   '''4713-01-01 00:00:00+00 BC''::timestamptz', '''294276-12-30 00:00:00+00''::timestamptz'];
    ELSIF t = 'inet'::regtype THEN
        v := ARRAY['''192.0.2.1''::inet', '''0.0.0.0/0''::inet', '''::1''::inet', '''255.255.255.255''::inet'];
    ELSIF t = 'text[]'::regtype THEN
        v := ARRAY['''{popsell_brand}''::text[]', '''{}''::text[]', '''{NULL}''::text[]'];
    ELSIF t = 'jsonb'::regtype THEN
        v := ARRAY[CASE WHEN name = 'contacts' THEN '''[{"first_name": "Sweep", "email": "new.person@example.test"}]''::jsonb'
                        WHEN name = 'products' THEN '''[{"sku": "A1"}]''::jsonb'
                        ELSE '''{"first_name": "Sweep", "email": "new.person@example.test"}''::jsonb' END,
                   '''{}''::jsonb', '''[]''::jsonb', '''null''::jsonb', '''"s"''::jsonb', '''42''::jsonb',
                   '''[1, 2]''::jsonb', '''[{}]''::jsonb', '''[[]]''::jsonb', '''[null]''::jsonb',
                   '''{"email": 42}''::jsonb', '''{"email": {"a": 1}}''::jsonb', '''[{"email": 42}]''::jsonb',
                   '''{"email": ""}''::jsonb', '''[{"email": "not an email"}]''::jsonb',
                   'jsonb_build_object(''first_name'', repeat(''x'', 1048576))',
                   'jsonb_build_array(jsonb_build_object(''first_name'', repeat(''x'', 1048576)))',
                   '''{"created_at": "not a date"}''::jsonb', '''[{"created_at": "not a date"}]''::jsonb',
                   '''{"tags": "notarray"}''::jsonb', '''[{"tags": 5}]''::jsonb',
                   '''{"contact_type": "bogus"}''::jsonb', '''[{"source": "bogus"}]''::jsonb',
                   '''[{"source": "blog", "email": "x@example.test"}]''::jsonb',
                   '''[{"ambassador_optin": "optin_other", "email": "x@example.test"}]''::jsonb',
                   '''{"id": 1, "ambassador_id": 1}''::jsonb', '''{"password_hash": "x"}''::jsonb',
                   '''{"birth_date": "31/31/31"}''::jsonb', '''{"first_name": "\u0000"}''::jsonb'];
    ELSIF t = 'text'::regtype THEN
        v := ARRAY[CASE WHEN name IN ('email', 'p_email') THEN '''sweep.person@example.test'''
                        WHEN name = 'password' THEN '''Secret-pass-1'''
                        WHEN name = 'subject' THEN '''sso-sweep'''
                        WHEN name = 'schedule' THEN '''17 3 * * *'''
                        WHEN name = 'role' THEN '''popsell_brand'''
                        WHEN name = 'field' THEN '''ambassador_optin'''
                        WHEN name IN ('from_state', 'to_state') THEN '''new'''
                        WHEN name = 'path' THEN '''ambassador'''
                        WHEN name = 'currency' THEN '''EUR'''
                        ELSE '''x''' END,
                   '''''', ''' ''', 'repeat(''x'', 1048576)', 'repeat(''é'', 300000) || ''@example.test''',
                   '''not an email''', '''a@b''', '''@example.test''', 'E''\t\n''',
                   '''ÜNÏCÖDÉ@Exämple.test''', '''popsell_owner''', '''pg_read_server_files''',
                   'E''\\''', ''''''';DROP TABLE popsell.contacts;--''', '''%''', '''EURO'''];
    ELSIF EXISTS (SELECT 1 FROM pg_type WHERE oid = t AND typtype = 'e') THEN
        SELECT array_agg(quote_literal(e.enumlabel) || '::' || t::text ORDER BY e.enumsortorder)
          INTO v FROM pg_enum e WHERE e.enumtypid = t;
    ELSE
        v := ARRAY[]::text[];
    END IF;
    RETURN ARRAY['NULL::' || t::text] || v;
END $$;

-- Sweep every popsell function the current role may execute (for a
-- superuser: those some SPEC role may execute), trigger functions aside.
CREATE FUNCTION sweep.run(p_run text) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f record;
    types regtype[];
    names text[];
    vals text[];
    base text[];
    args text[];
    calls text[];
    c text;
    i int;
    j int;
    fp0 text;
    st text;
    msg text;
    n bigint := 0;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure AS fn, p.oid,
               ARRAY(SELECT a.t FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, o) ORDER BY a.o) AS argtypes,
               coalesce(p.proargnames, '{}') AS argnames, p.pronargs
          FROM pg_proc p
         WHERE p.pronamespace IN ('popsell'::regnamespace, 'popsell_internal'::regnamespace)
           AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype)
           AND p.prokind = 'f'
           AND EXISTS (SELECT 1 FROM unnest(ARRAY['popsell_ambassador', 'popsell_brand', 'popsell_brand_bi',
                                                  'popsell_account_team', 'popsell_technical', 'popsell_app',
                                                  'popsell_maintenance']) r
                        WHERE has_function_privilege(r, p.oid, 'EXECUTE'))
           AND has_function_privilege(current_user, p.oid, 'EXECUTE')
         ORDER BY p.oid::regprocedure::text
    LOOP
        -- The calls: all NULL, the baseline, then each value for each argument.
        calls := ARRAY[]::text[];
        base := ARRAY[]::text[];
        args := ARRAY[]::text[];
        FOR i IN 1 .. f.pronargs LOOP
            vals := sweep.values_for(f.argtypes[i]::regtype, f.argnames[i]);
            base := base || CASE WHEN array_length(vals, 1) > 1 THEN vals[2] ELSE vals[1] END;
            args := args || vals[1];
        END LOOP;
        calls := calls || array_to_string(args, ', ');
        IF f.pronargs > 0 THEN
            calls := calls || array_to_string(base, ', ');
        END IF;
        FOR i IN 1 .. f.pronargs LOOP
            vals := sweep.values_for(f.argtypes[i]::regtype, f.argnames[i]);
            FOR j IN 1 .. coalesce(array_length(vals, 1), 0) LOOP
                args := base;
                args[i] := vals[j];
                IF args <> base THEN
                    calls := calls || array_to_string(args, ', ');
                END IF;
            END LOOP;
        END LOOP;

        fp0 := sweep.fingerprint();
        FOREACH c IN ARRAY calls LOOP
            c := format('SELECT count(*) FROM (SELECT %s(%s)) AS x',
                        regexp_replace(f.fn::text, '\(.*$', ''), c);
            st := NULL;
            msg := NULL;
            BEGIN
                EXECUTE c;
                -- Roll the savepoint back after a normal result too.
                RAISE EXCEPTION 'sweep: rollback' USING ERRCODE = 'ZZ999';
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
                IF st = 'ZZ999' THEN
                    st := NULL;
                    msg := NULL;
                END IF;
            END;
            INSERT INTO sweep.results (run, fn, call, sqlstate, message, changed)
            VALUES (p_run, f.fn, c, st, left(msg, 300),
                    CASE WHEN st IS NOT NULL THEN sweep.fingerprint() <> fp0 END);
            n := n + 1;
        END LOOP;
    END LOOP;
    RETURN n;
END $$;
GRANT EXECUTE ON FUNCTION sweep.run(text) TO PUBLIC;

-- Input the server rejects before any function runs.
SELECT E'\xff'::text;
SELECT convert_from('\xff'::bytea, 'UTF8');
SELECT chr(0);
SELECT 'bogus'::popsell.contact_source;
SELECT count(*) AS enum_types_rejecting_bogus
  FROM pg_type t
 WHERE t.typnamespace = 'popsell'::regnamespace AND t.typtype = 'e'
   AND NOT EXISTS (SELECT 1 FROM pg_enum e WHERE e.enumtypid = t.oid AND e.enumlabel = 'bogus');

-- The runs.  Warnings (run_maintenance reports failed rules) stay quiet.
SET client_min_messages = error;
SET statement_timeout = '10min';
SELECT sweep.run('superuser') > 0 AS swept;
SET ROLE popsell_brand_bi;
SELECT sweep.run('popsell_brand_bi') > 0 AS swept;
RESET ROLE;
SET ROLE popsell_ambassador;
SELECT sweep.run('popsell_ambassador (nobody)') > 0 AS swept;
RESET ROLE;
BEGIN;
SET LOCAL popsell.ambassador_id = '1000';
SET LOCAL ROLE popsell_ambassador;
SELECT popsell.current_ambassador_id();
SELECT sweep.run('popsell_ambassador (as 1000)') > 0 AS swept;
COMMIT;
SET ROLE popsell_brand;
SELECT sweep.run('popsell_brand') > 0 AS swept;
RESET ROLE;
SET ROLE popsell_app;
SELECT sweep.run('popsell_app') > 0 AS swept;
RESET ROLE;
SET ROLE popsell_account_team;
SELECT sweep.run('popsell_account_team') > 0 AS swept;
RESET ROLE;
SET ROLE popsell_technical;
SELECT sweep.run('popsell_technical') > 0 AS swept;
RESET ROLE;
SET ROLE popsell_maintenance;
SELECT sweep.run('popsell_maintenance') > 0 AS swept;
RESET ROLE;
RESET statement_timeout;
RESET client_min_messages;

-- The backend still answers.
SELECT 1 AS alive;

-- Every function some SPEC role may call was swept, by each role that may.
SELECT count(DISTINCT fn) >= 40 AS functions_swept, count(*) >= 3000 AS calls_made,
       count(DISTINCT run) AS runs
  FROM sweep.results;
SELECT p.oid::regprocedure AS not_swept
  FROM pg_proc p
 WHERE p.pronamespace IN ('popsell'::regnamespace, 'popsell_internal'::regnamespace)
   AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype)
   AND EXISTS (SELECT 1 FROM unnest(ARRAY['popsell_ambassador', 'popsell_brand', 'popsell_brand_bi',
                                          'popsell_account_team', 'popsell_technical', 'popsell_app',
                                          'popsell_maintenance']) r
                WHERE has_function_privilege(r, p.oid, 'EXECUTE'))
   AND p.oid NOT IN (SELECT fn FROM sweep.results WHERE run = 'superuser');

-- Violations (all must be empty): internal errors, errors without a
-- message, errors that left rows changed, popsell code that cannot find
-- its own objects (undefined function, table, column: a search_path bug)
-- or is refused something inside a function the role may execute.  The
-- lookup-key functions (schema popsell_internal) are the exception by
-- design: their EXECUTE serves index maintenance only, and naming them is
-- refused for want of USAGE on their schema; the last query below checks
-- that refusal is exactly that, for every restricted run.
SELECT run, fn, sqlstate, message
  FROM sweep.results
 WHERE sqlstate = 'XX000' OR sqlstate LIKE '58%'
 ORDER BY 1, 2, 3, 4;
SELECT run, fn, sqlstate FROM sweep.results
 WHERE sqlstate IS NOT NULL AND coalesce(message, '') = '' ORDER BY 1, 2, 3;
SELECT run, fn, sqlstate, call FROM sweep.results WHERE changed ORDER BY 1, 2, 3, 4;
SELECT DISTINCT run, fn, sqlstate, message
  FROM sweep.results
 WHERE sqlstate IN ('42883', '42P01', '42703', '42704', '3F000', '42501')
   AND NOT (fn::text LIKE 'popsell\_internal.%' AND run <> 'superuser' AND sqlstate = '42501'
            AND message = 'permission denied for schema popsell_internal')
 ORDER BY 1, 2, 3, 4;
SELECT DISTINCT run, sqlstate IS NULL AS answered, message
  FROM sweep.results
 WHERE fn::text LIKE 'popsell\_internal.%'
 ORDER BY 1, 2, 3;

-- No personal data in any message (SPEC S8): no email, no planted name.
SELECT DISTINCT run, fn, sqlstate, message
  FROM sweep.results
 WHERE message ~* '@|example\.test' OR message ~ 'Sweep|Buyer|Pending|Leaving|Other|Secret'
 ORDER BY 1, 2, 3, 4;

-- Normal results for an all-NULL call (superuser): only the pure helpers
-- (STRICT: NULL in, NULL out) and rotate_hash_key (NULL legacy = false).
SELECT DISTINCT fn AS all_null_call_returns_normally
  FROM sweep.results
 WHERE run = 'superuser' AND sqlstate IS NULL
   AND call ~ '\(SELECT popsell(_internal)?\.\w+\((NULL::[a-z_. ]+(, )?)+\)\)'
 ORDER BY 1;

-- The hashing key cache was not left pointing at a key rolled back with
-- a swept rotate_hash_key().
SELECT popsell.hash_key_id() = (SELECT max(key_id) FROM popsell.hash_keys) AS key_cache_consistent,
       (SELECT count(*) FROM popsell.hash_keys) AS keys;
SELECT popsell.hash_email('sweep.person@example.test') = (popsell.email_hashes('sweep.person@example.test'))[1]
       AS hashes_consistent;

\c :regress_db
DROP DATABASE popsell_t802;
