-- 003_tables: every public table and column named in SPEC section 3, the
-- types SPEC implies, no plaintext where SPEC forbids it, and pg_dump
-- registration of user data.

-- Every SPEC table exists (one row per missing table).
SELECT v.t AS missing_table
  FROM unnest(ARRAY['settings', 'ambassadors', 'social_grants',
                    'registration_whitelist', 'contacts', 'blacklist',
                    'publications', 'ugc', 'contests', 'community_reactions',
                    'gamification', 'interactions', 'sales', 'activity_log',
                    'consent_events', 'outbox', 'ambassador_tombstones',
                    'contact_tombstones', 'maintenance_runs']) AS v(t)
 WHERE NOT EXISTS (SELECT 1 FROM information_schema.tables it
                    WHERE it.table_schema = 'popsell' AND it.table_name = v.t
                      AND it.table_type = 'BASE TABLE')
 ORDER BY 1;

-- Every SPEC column exists (one row per missing column).
CREATE TEMP TABLE spec_columns (t text, c text);
INSERT INTO spec_columns
SELECT 'settings', unnest(ARRAY['deletion_grace', 'ambassador_inactivity',
    'inactivity_warnings', 'inactivity_warning_interval',
    'new_contact_invitation_window', 'invitation_response_window',
    'email_confirmation_window', 'optout_retention', 'contact_inactivity',
    'suspension_max', 'log_retention', 'community_name_format',
    'sso_exclusive', 'program_suspended_at', 'brand_contract_ended_at'])
UNION ALL
SELECT 'ambassadors', unnest(ARRAY['id', 'kind', 'status', 'created_at',
    'first_name', 'last_name', 'password_hash', 'customer_id', 'facebook_id',
    'email', 'address', 'city', 'postal_code', 'country',
    'preferred_language', 'birth_date', 'terms_accepted_at', 'photo_path',
    'description', 'position', 'iban', 'hide_events', 'hide_from_community',
    'newsletter_optin', 'event_notifications', 'challenge_notifications',
    'comment_notifications', 'last_login_at', 'leaving_reason',
    'deletion_due_at', 'login_role', 'sso_subject'])
UNION ALL
SELECT 'contacts', unnest(ARRAY['id', 'ambassador_id', 'source', 'first_name',
    'last_name', 'email', 'email_status', 'facebook_id', 'twitter_id',
    'instagram_id', 'public_photo_url', 'customer_id', 'ambassador_optin',
    'ambassador_optin_at', 'brand_optin', 'brand_optin_at', 'partners_optin',
    'partners_optin_at', 'contact_type', 'notes', 'address', 'city',
    'postal_code', 'country', 'mobile_phone', 'home_phone', 'tags',
    'restricted', 'email_confirmed_at', 'invitation_sent_at',
    'invitations_sent', 'last_activity_at', 'created_at', 'created_by',
    'modified_at', 'modified_by'])
UNION ALL
SELECT 'blacklist', unnest(ARRAY['email_hash', 'reason', 'created_at'])
UNION ALL
SELECT 'publications', unnest(ARRAY['id', 'ambassador_id', 'created_at', 'comment'])
UNION ALL
SELECT 'ugc', unnest(ARRAY['id', 'ambassador_id', 'contest_id', 'file_path', 'created_at'])
UNION ALL
SELECT 'contests', unnest(ARRAY['id', 'name', 'reuse_until'])
UNION ALL
SELECT 'sales', unnest(ARRAY['id', 'contact_id', 'ambassador_id',
    'publication_id', 'sold_at', 'amount', 'currency', 'products', 'channel'])
UNION ALL
SELECT 'activity_log', unnest(ARRAY['ip_hash'])
UNION ALL
SELECT 'outbox', unnest(ARRAY['id', 'kind', 'ambassador_id', 'contact_id',
    'publication_id', 'payload', 'created_at', 'sent_at'])
UNION ALL
SELECT 'ambassador_tombstones', unnest(ARRAY['deleted_at', 'reason'])
UNION ALL
SELECT 'contact_tombstones', unnest(ARRAY['deleted_at', 'reason']);

SELECT count(*) AS spec_columns FROM spec_columns;

SELECT s.t AS table_name, s.c AS missing_column
  FROM spec_columns s
 WHERE NOT EXISTS (SELECT 1 FROM information_schema.columns ic
                    WHERE ic.table_schema = 'popsell'
                      AND ic.table_name = s.t AND ic.column_name = s.c)
 ORDER BY 1, 2;

-- Types SPEC implies: ids are bigint (the functions take bigint ids), *_at
-- are timestamptz, flags boolean, windows interval, tags text[], payload
-- and products jsonb.  One row per column whose type differs.
SELECT s.t AS table_name, s.c AS column_name, ic.data_type, ic.udt_name,
       x.want AS expected
  FROM spec_columns s
  JOIN information_schema.columns ic
    ON ic.table_schema = 'popsell' AND ic.table_name = s.t AND ic.column_name = s.c
 CROSS JOIN LATERAL (SELECT CASE
        WHEN s.c IN ('id', 'ambassador_id', 'contact_id', 'publication_id', 'contest_id')
            THEN 'bigint'
        WHEN s.c LIKE '%\_at' THEN 'timestamp with time zone'
        WHEN s.c IN ('hide_events', 'hide_from_community', 'newsletter_optin',
                     'event_notifications', 'challenge_notifications',
                     'comment_notifications', 'sso_exclusive', 'partners_optin',
                     'restricted') THEN 'boolean'
        WHEN s.t = 'settings' AND s.c NOT IN ('inactivity_warnings', 'community_name_format')
            THEN 'interval'
        WHEN s.c = 'inactivity_warnings' OR s.c = 'invitations_sent' THEN 'integer'
        WHEN s.c = 'birth_date' THEN 'date'
        WHEN s.c = 'tags' THEN 'ARRAY'
        WHEN s.c IN ('payload', 'products') THEN 'jsonb'
        WHEN s.c IN ('email_hash', 'ip_hash') THEN 'bytea'
        END AS want) x
 WHERE x.want IS NOT NULL
   AND x.want IS DISTINCT FROM CASE WHEN ic.data_type = 'USER-DEFINED' THEN ic.udt_name
                                    ELSE ic.data_type END
    OR (s.c = 'tags' AND ic.udt_name IS DISTINCT FROM '_text')
 ORDER BY 1, 2;

-- No plaintext where SPEC forbids it: the blacklist holds hashes only, no
-- table stores an IP address, tombstones keep no personal field in plain.
SELECT table_name, column_name, data_type
  FROM information_schema.columns
 WHERE table_schema = 'popsell' AND table_name = 'blacklist'
   AND data_type IN ('text', 'character varying', 'character', 'inet', 'cidr', 'json', 'jsonb')
 ORDER BY 1, 2;
SELECT table_name, column_name, data_type
  FROM information_schema.columns
 WHERE table_schema = 'popsell' AND data_type IN ('inet', 'cidr')
 ORDER BY 1, 2;
SELECT table_name, column_name
  FROM information_schema.columns
 WHERE table_schema = 'popsell'
   AND table_name IN ('ambassador_tombstones', 'contact_tombstones')
   AND column_name IN ('email', 'first_name', 'last_name', 'facebook_id',
                       'twitter_id', 'instagram_id', 'customer_id', 'address',
                       'mobile_phone', 'home_phone', 'birth_date', 'iban',
                       'password_hash', 'public_photo_url', 'notes', 'photo_path',
                       'description', 'sso_subject', 'login_role')
 ORDER BY 1, 2;

-- User data survives pg_dump: every SPEC table and the hash key table are
-- registered with pg_extension_config_dump (one row per table that is not).
SELECT v.t AS not_dumped
  FROM unnest(ARRAY['settings', 'hash_keys', 'ambassadors', 'social_grants',
                    'registration_whitelist', 'contacts', 'blacklist',
                    'publications', 'ugc', 'contests', 'community_reactions',
                    'gamification', 'interactions', 'sales', 'activity_log',
                    'consent_events', 'outbox', 'ambassador_tombstones',
                    'contact_tombstones', 'maintenance_runs']) AS v(t)
 WHERE to_regclass('popsell.' || v.t) IS NULL
    OR to_regclass('popsell.' || v.t) <> ALL (
           (SELECT coalesce(extconfig, '{}') FROM pg_extension WHERE extname = 'popsell')::regclass[])
 ORDER BY 1;

-- ... and so is every sequence of a registered table, so restored tables
-- keep handing out fresh ids (one row per sequence that is not).
SELECT seq.oid::regclass AS sequence_not_dumped
  FROM pg_class seq
  JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = seq.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
 WHERE seq.relkind = 'S'
   AND seq.relnamespace = 'popsell'::regnamespace
   AND d.refobjid = ANY ((SELECT extconfig FROM pg_extension WHERE extname = 'popsell')::regclass[])
   AND seq.oid <> ALL ((SELECT extconfig FROM pg_extension WHERE extname = 'popsell')::regclass[])
 ORDER BY 1;
