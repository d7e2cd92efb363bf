-- 001_interface: the functions and views SPEC.md names exist with the
-- argument and result types it gives (SPEC sections 2, 5, 6, 7).
-- The runner (tools/test-cluster) creates a fresh database with
-- CREATE EXTENSION popsell CASCADE and CREATE EXTENSION pgtap.
BEGIN;
SELECT plan(84);

-- Identity (section 2).
SELECT has_function('popsell', 'current_ambassador_id', ARRAY[]::name[]);
SELECT function_returns('popsell', 'current_ambassador_id', ARRAY[]::name[], 'bigint');

-- Contacts (section 5).
SELECT has_function('popsell', 'import_contacts', ARRAY['bigint', 'jsonb']);
SELECT function_returns('popsell', 'import_contacts', ARRAY['bigint', 'jsonb'], 'setof record');
SELECT is(
    (SELECT pg_get_function_result(to_regprocedure('popsell.import_contacts(bigint, jsonb)'))),
    'TABLE(imported bigint, skipped_blacklisted bigint, skipped_duplicate bigint, skipped_invalid bigint)',
    'import_contacts returns (imported, skipped_blacklisted, skipped_duplicate, skipped_invalid)');
SELECT is(
    (SELECT pg_get_function_result(to_regprocedure('popsell.import_contacts_detail(bigint, jsonb)'))),
    'TABLE(ordinality bigint, contact_id bigint, outcome text, reason text)',
    'import_contacts_detail returns one row per input row');
SELECT is(
    (SELECT pg_get_function_result(to_regprocedure('popsell.send_invitations(bigint[])'))),
    'TABLE(contact_id bigint, outcome text)',
    'send_invitations returns an outcome per contact');
SELECT has_function('popsell', 'withdraw_consent', ARRAY['bigint', 'boolean', 'boolean']);
SELECT has_function('popsell', 'collect_contact',
    ARRAY['bigint', 'popsell.contact_source', 'jsonb', 'boolean', 'boolean', 'boolean']);
SELECT function_returns('popsell', 'collect_contact',
    ARRAY['bigint', 'popsell.contact_source', 'jsonb', 'boolean', 'boolean', 'boolean'], 'bigint');
SELECT is(
    (SELECT pronargdefaults::int FROM pg_proc
      WHERE oid = to_regprocedure('popsell.collect_contact(bigint, popsell.contact_source, jsonb, boolean, boolean, boolean)')),
    3, 'collect_contact: the three *_checked arguments default to NULL');
SELECT is(
    (SELECT proargnames[1:6] FROM pg_proc
      WHERE oid = to_regprocedure('popsell.collect_contact(bigint, popsell.contact_source, jsonb, boolean, boolean, boolean)')),
    ARRAY['ambassador_id', 'source', 'data', 'ambassador_optin_checked',
          'brand_optin_checked', 'partners_optin_checked'],
    'collect_contact: argument names callers use in named notation');

SELECT has_function('popsell', f, ARRAY['bigint'])
  FROM unnest(ARRAY['send_invitation', 'accept_invitation', 'decline_invitation',
                    'release_soft_bounce']) AS f;
SELECT has_function('popsell', 'confirm_email', ARRAY['bigint']);
SELECT has_function('popsell', 'confirm_email', ARRAY['bigint', 'text']);
SELECT has_function('popsell', 'opt_out', ARRAY['bigint', 'boolean']);
SELECT is(
    (SELECT pronargdefaults::int FROM pg_proc
      WHERE oid = to_regprocedure('popsell.opt_out(bigint, boolean)')),
    1, 'opt_out: global defaults (to false)');
SELECT is(
    (SELECT proargnames[2] FROM pg_proc
      WHERE oid = to_regprocedure('popsell.opt_out(bigint, boolean)')),
    'global', 'opt_out: second argument is named global');
SELECT has_function('popsell', 'email_callback', ARRAY['text', 'popsell.email_status']);
SELECT has_function('popsell', 'record_interaction', 'Function popsell.record_interaction(...) should exist');
SELECT has_function('popsell', 'record_sale', 'Function popsell.record_sale(...) should exist');

-- Ambassadors (section 5).
SELECT has_function('popsell', 'signup', 'Function popsell.signup(...) should exist');
SELECT has_function('popsell', 'set_password', ARRAY['bigint', 'text']);
SELECT has_function('popsell', 'check_password', ARRAY['bigint', 'text']);
SELECT function_returns('popsell', 'check_password', ARRAY['bigint', 'text'], 'boolean');
SELECT has_function('popsell', f, ARRAY['bigint'])
  FROM unnest(ARRAY['record_login', 'unsubscribe_ambassador',
                    'end_ambassador_contract', 'restore_ambassador']) AS f;
SELECT has_function('popsell', 'sso_upsert_ambassador', ARRAY['text', 'jsonb']);
SELECT has_function('popsell', 'sso_delete_ambassador', ARRAY['text']);
SELECT has_function('popsell', 'log_activity', ARRAY['bigint', 'text', 'inet', 'text']);

-- Brand (section 5).
SELECT has_function('popsell', f, ARRAY[]::name[])
  FROM unnest(ARRAY['suspend_program', 'resume_program', 'end_brand_contract',
                    'apply_pre_gdpr_migration']) AS f;

-- Data-subject rights (section 5).
SELECT has_function('popsell', 'subject_access', ARRAY['text']);
SELECT function_returns('popsell', 'subject_access', ARRAY['text'], 'jsonb');
SELECT has_function('popsell', 'erase_subject', ARRAY['text']);
SELECT function_returns('popsell', 'erase_subject', ARRAY['text'], 'jsonb');
SELECT has_function('popsell', 'restrict_subject', ARRAY['text', 'boolean']);
SELECT has_function('popsell', 'object_subject', ARRAY['text']);

-- Hashing (section 6).
SELECT has_function('popsell', 'hash_email', ARRAY['text']);
SELECT function_returns('popsell', 'hash_email', ARRAY['text'], 'bytea');

-- Jobs (section 7).
SELECT has_function('popsell', 'run_maintenance', ARRAY['timestamp with time zone']);
SELECT function_returns('popsell', 'run_maintenance', ARRAY['timestamp with time zone'], 'setof record');
SELECT is(
    (SELECT pg_get_function_result(to_regprocedure('popsell.run_maintenance(timestamptz)'))),
    'TABLE(rule text, affected bigint)', 'run_maintenance returns (rule, affected)');
SELECT is(
    (SELECT pg_get_function_arguments(to_regprocedure('popsell.run_maintenance(timestamptz)'))),
    'at timestamp with time zone DEFAULT now()', 'run_maintenance(at DEFAULT now())');
-- schedule_jobs() may take optional arguments (the schedule): callable with none.
SELECT ok(EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                   WHERE p.pronamespace = 'popsell'::regnamespace AND p.proname = 'schedule_jobs'
                     AND p.pronargs - p.pronargdefaults = 0),
          'popsell.schedule_jobs() is callable without arguments');
SELECT has_function('popsell', 'unschedule_jobs', ARRAY[]::name[]);

-- Every SQL or PL/pgSQL function pins its search_path (S2), and every
-- SECURITY DEFINER one too.
SELECT is(
    (SELECT array_agg(p.oid::regprocedure::text ORDER BY 1)
       FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
      WHERE p.pronamespace = 'popsell'::regnamespace
        AND (l.lanname IN ('sql', 'plpgsql') OR p.prosecdef)
        AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)),
    NULL, 'every SQL, PL/pgSQL and SECURITY DEFINER function has SET search_path = pg_catalog, pg_temp');

-- Views (section 2) keep the column names of the tables they read and
-- leave secrets out.
SELECT has_view('popsell', v, 'view popsell.' || v)
  FROM unnest(ARRAY['my_contacts', 'brand_contacts', 'brand_ambassadors', 'community']) AS v;
SELECT has_column('popsell', 'my_contacts', c, 'my_contacts.' || c)
  FROM unnest(ARRAY['id', 'ambassador_id', 'source', 'email', 'ambassador_optin',
                    'brand_optin', 'email_status']) AS c;
SELECT has_column('popsell', 'brand_contacts', c, 'brand_contacts.' || c)
  FROM unnest(ARRAY['id', 'ambassador_id', 'source', 'email', 'ambassador_optin',
                    'brand_optin', 'partners_optin']) AS c;
SELECT has_column('popsell', 'brand_ambassadors', c, 'brand_ambassadors.' || c)
  FROM unnest(ARRAY['id', 'kind', 'status', 'first_name', 'last_name', 'email']) AS c;
SELECT hasnt_column('popsell', 'brand_ambassadors', c, 'brand_ambassadors has no ' || c)
  FROM unnest(ARRAY['password_hash']) AS c;
SELECT is(
    (SELECT array_agg(attname::text ORDER BY attname)
       FROM pg_attribute
      WHERE attrelid = to_regclass('popsell.brand_ambassadors') AND attnum > 0
        AND NOT attisdropped
        AND (attname ~ '(^|_)ip($|_)' OR atttypid IN ('inet'::regtype, 'cidr'::regtype))),
    NULL, 'brand_ambassadors has no IP data');
SELECT has_column('popsell', 'community', 'postal_code', 'community.postal_code');
SELECT hasnt_column('popsell', 'community', c, 'community has no ' || c)
  FROM unnest(ARRAY['email', 'iban', 'password_hash']) AS c;

SELECT * FROM finish();
ROLLBACK;
