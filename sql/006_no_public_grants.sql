-- 006_no_public_grants: nothing in schema popsell is granted to PUBLIC
-- (SPEC S2: EXECUTE revoked from PUBLIC; S5).  A NULL ACL means the
-- built-in default, which grants EXECUTE on functions and USAGE on types to
-- PUBLIC, so defaults are expanded with acldefault().  One row per PUBLIC
-- privilege.

WITH acls AS (
    SELECT 'schema' AS kind, n.nspname::text AS name,
           coalesce(n.nspacl, acldefault('n', n.nspowner)) AS acl
      FROM pg_namespace n WHERE n.nspname = 'popsell'
    UNION ALL
    SELECT CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view'
                          WHEN 'm' THEN 'materialized view' ELSE 'table' END,
           c.relname::text,
           coalesce(c.relacl, acldefault((CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END)::"char", c.relowner))
      FROM pg_class c
     WHERE c.relnamespace = 'popsell'::regnamespace
       AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
    UNION ALL
    SELECT 'column', c.relname || '.' || a.attname, a.attacl
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
     WHERE c.relnamespace = 'popsell'::regnamespace AND a.attacl IS NOT NULL
    UNION ALL
    SELECT 'function', p.oid::regprocedure::text,
           coalesce(p.proacl, acldefault('f', p.proowner))
      FROM pg_proc p WHERE p.pronamespace = 'popsell'::regnamespace
    UNION ALL
    SELECT 'type', t.oid::regtype::text,
           coalesce(t.typacl, acldefault('T', t.typowner))
      FROM pg_type t
     WHERE t.typnamespace = 'popsell'::regnamespace
       -- Array types and tables' row types take their privileges from the
       -- element type or the table.
       AND NOT (t.typtype = 'b' AND t.typcategory = 'A')
       AND (t.typrelid = 0
            OR EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind = 'c'))
)
SELECT kind, name, x.privilege_type
  FROM acls, aclexplode(acls.acl) x
 WHERE x.grantee = 0
 ORDER BY 1, 2, 3;

-- Default privileges for future objects in the schema grant nothing to
-- PUBLIC either.
SELECT d.defaclobjtype, x.privilege_type
  FROM pg_default_acl d, aclexplode(d.defaclacl) x
 WHERE d.defaclnamespace = 'popsell'::regnamespace AND x.grantee = 0
 ORDER BY 1, 2;
