-- 002_row_security: every table holding personal data has row level
-- security enabled and forced, and TRUNCATE of it is refused to the
-- application roles (SPEC S5, S6).
-- The runner creates the database with popsell and pgtap installed.
BEGIN;
SELECT plan(45);

SELECT ok(
    coalesce((SELECT relrowsecurity FROM pg_class WHERE oid = to_regclass('popsell.' || t)), false),
    'row level security enabled on popsell.' || t)
  FROM unnest(ARRAY['ambassadors', 'contacts', 'social_grants', 'publications', 'ugc',
                    'community_reactions', 'interactions', 'sales', 'activity_log',
                    'consent_events', 'outbox', 'registration_whitelist']) AS t;

SELECT ok(
    coalesce((SELECT relforcerowsecurity FROM pg_class WHERE oid = to_regclass('popsell.' || t)), false),
    'row level security forced on popsell.' || t)
  FROM unnest(ARRAY['ambassadors', 'contacts', 'social_grants', 'publications', 'ugc',
                    'community_reactions', 'interactions', 'sales', 'activity_log',
                    'consent_events', 'outbox', 'registration_whitelist']) AS t;

-- No application role may TRUNCATE personal data (checked on the grants:
-- only the owner truncates).
SELECT ok(
    NOT has_table_privilege(r, 'popsell.' || t, 'TRUNCATE'),
    r || ' cannot TRUNCATE popsell.' || t)
  FROM unnest(ARRAY['ambassadors', 'contacts', 'consent_events']) AS t,
       unnest(ARRAY['popsell_ambassador', 'popsell_brand', 'popsell_brand_bi',
                    'popsell_account_team', 'popsell_technical', 'popsell_app',
                    'public']) AS r;

SELECT * FROM finish();
ROLLBACK;
