-- The catalog lint (included by 201_security_lint after a fresh install and
-- by 801_upgrade after an update): one row per object that breaks the
-- rules the finalize step (src/sql/99_finalize.sql) and every definition
-- must keep.  Expected: no rows.
WITH ext AS (SELECT extconfig FROM pg_extension WHERE extname = 'popsell')
SELECT 'table without forced row security: ' || c.relname AS violation
  FROM pg_class c WHERE c.relnamespace IN ('popsell'::regnamespace, 'popsell_internal'::regnamespace) AND c.relkind IN ('r', 'p')
   AND NOT (c.relrowsecurity AND c.relforcerowsecurity)
UNION ALL
SELECT 'not owned by popsell_owner: ' || c.relname
  FROM pg_class c WHERE c.relnamespace IN ('popsell'::regnamespace, 'popsell_internal'::regnamespace)
   AND c.relkind IN ('r', 'v', 'm', 'p', 'S') AND c.relowner <> 'popsell_owner'::regrole
UNION ALL
SELECT 'not registered for pg_dump: ' || c.relname
  FROM pg_class c, ext WHERE c.relnamespace IN ('popsell'::regnamespace, 'popsell_internal'::regnamespace)
   AND c.relkind IN ('r', 'p', 'S') AND NOT c.oid = ANY (coalesce(ext.extconfig, '{}'))
UNION ALL
SELECT 'table without the owner policy: ' || c.relname
  FROM pg_class c WHERE c.relnamespace IN ('popsell'::regnamespace, 'popsell_internal'::regnamespace) AND c.relkind IN ('r', 'p')
   AND NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'popsell_owner_all')
UNION ALL
SELECT 'granted to PUBLIC: ' || c.relname
  FROM pg_class c WHERE c.relnamespace IN ('popsell'::regnamespace, 'popsell_internal'::regnamespace)
   AND EXISTS (SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = 0)
UNION ALL
SELECT 'type usable by PUBLIC: ' || t.oid::regtype::text
  FROM pg_type t WHERE t.typnamespace IN ('popsell'::regnamespace, 'popsell_internal'::regnamespace) AND t.typtype IN ('e', 'd', 'c')
   AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.reltype = t.oid)
   AND (t.typacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(t.typacl) a WHERE a.grantee = 0))
UNION ALL
SELECT 'function without pinned search_path: ' || p.oid::regprocedure::text
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace IN ('popsell'::regnamespace, 'popsell_internal'::regnamespace) AND l.lanname IN ('sql', 'plpgsql')
   AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)
UNION ALL
SELECT 'function executable by PUBLIC: ' || p.oid::regprocedure::text
  FROM pg_proc p WHERE p.pronamespace IN ('popsell'::regnamespace, 'popsell_internal'::regnamespace)
   AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0))
UNION ALL
SELECT 'object without COMMENT: ' || p.oid::regprocedure::text
  FROM pg_proc p WHERE p.pronamespace IN ('popsell'::regnamespace, 'popsell_internal'::regnamespace)
   AND obj_description(p.oid, 'pg_proc') IS NULL
UNION ALL
SELECT 'object without COMMENT: ' || c.relname
  FROM pg_class c WHERE c.relnamespace IN ('popsell'::regnamespace, 'popsell_internal'::regnamespace)
   AND c.relkind IN ('r', 'v') AND obj_description(c.oid, 'pg_class') IS NULL
 ORDER BY 1;
