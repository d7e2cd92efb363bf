-- 002_types: every enum of SPEC section 3 with its labels in their order
-- (labels and order are public interface).

SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder) AS labels
  FROM pg_type t
  JOIN pg_enum e ON e.enumtypid = t.oid
 WHERE t.typnamespace = 'popsell'::regnamespace
   AND t.typname IN ('ambassador_optin', 'brand_optin', 'email_status',
                     'contact_source', 'contact_type', 'ambassador_kind',
                     'ambassador_status', 'blacklist_reason')
 GROUP BY t.typname
 ORDER BY t.typname;

-- The same, compared with SPEC.md's lists: one row per enum that differs.
WITH spec(typname, labels) AS (VALUES
    ('ambassador_optin', ARRAY['new', 'invitation_sent', 'invitation_accepted',
        'invitation_declined', 'optout_email', 'optout_no_response',
        'global_optout', 'social_media_only', 'optin_brand_imported',
        'optin_blog_pending', 'optin_blog_verified', 'optin_internal_form',
        'optin_external_form', 'optin_order', 'optin_order_popin',
        'optin_other', 'storage_only']),
    ('brand_optin', ARRAY['no_optin', 'optin_blog', 'optin_internal_form',
        'optin_external_form', 'optin_brand_database', 'storage_only']),
    ('email_status', ARRAY['ok', 'spam', 'hard_bounce', 'soft_bounce',
        'blocked', 'unverified']),
    ('contact_source', ARRAY['crm_manual', 'private_import', 'brand_sync',
        'social_network', 'blog', 'blog_internal_form', 'order',
        'order_popin', 'store_purchase', 'external_form']),
    ('contact_type', ARRAY['hostess', 'customer', 'prospect']),
    ('ambassador_kind', ARRAY['customer', 'sales_rep', 'employee']),
    ('ambassador_status', ARRAY['signup_incomplete', 'active', 'leaving']),
    ('blacklist_reason', ARRAY['global_optout', 'spam', 'hard_bounce', 'blocked', 'invitation_refused'])),
installed AS (
    SELECT t.typname::text, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) AS labels
      FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
     WHERE t.typnamespace = 'popsell'::regnamespace
     GROUP BY t.typname)
SELECT s.typname, s.labels AS spec, i.labels AS installed
  FROM spec s LEFT JOIN installed i USING (typname)
 WHERE i.labels IS DISTINCT FROM s.labels;

-- The enum-valued public columns use these types.
SELECT c.relname, a.attname, a.atttypid::regtype AS type
  FROM (VALUES ('contacts', 'source'), ('contacts', 'ambassador_optin'),
               ('contacts', 'brand_optin'), ('contacts', 'email_status'),
               ('contacts', 'contact_type'), ('ambassadors', 'kind'),
               ('ambassadors', 'status'), ('blacklist', 'reason')) AS v(rel, col)
  JOIN pg_class c ON c.relname = v.rel AND c.relnamespace = 'popsell'::regnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = v.col
 ORDER BY 1, 2;

-- Values named by SPEC for enum-like columns whose type is popsell's own
-- (interaction kinds, sale channels, outbox kinds "at least"): one row per
-- value the column's enum type lacks.
SELECT v.rel, v.col, v.label AS missing_label
  FROM (VALUES ('interactions', 'kind', 'open'), ('interactions', 'kind', 'click'),
               ('interactions', 'kind', 'like'), ('interactions', 'kind', 'comment'),
               ('interactions', 'kind', 'reshare'),
               ('sales', 'channel', 'online'), ('sales', 'channel', 'store'),
               ('outbox', 'kind', 'invitation'), ('outbox', 'kind', 'invitation_reminder'),
               ('outbox', 'kind', 'email_confirmation'), ('outbox', 'kind', 'inactivity_warning'),
               ('outbox', 'kind', 'suspension_notice'), ('outbox', 'kind', 'publication'),
               ('outbox', 'kind', 'delete_file'), ('outbox', 'kind', 'partner_erasure'),
               ('outbox', 'kind', 'partner_optout'))
       AS v(rel, col, label)
 WHERE NOT EXISTS (
        SELECT 1
          FROM pg_attribute a
          JOIN pg_enum e ON e.enumtypid = a.atttypid
         WHERE a.attrelid = ('popsell.' || v.rel)::regclass
           AND a.attname = v.col
           AND e.enumlabel = v.label)
 ORDER BY 1, 2, 3;
