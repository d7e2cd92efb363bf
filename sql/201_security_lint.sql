-- 201_security_lint: every table holding personal data has forced row
-- level security and, for every SPEC role that may touch it, a policy for
-- each command that role holds; every SECURITY DEFINER function pins its
-- search_path; the hashing keys are the owner's alone (SPEC section 2, S2,
-- S4, S5).

-- Tables with a personal (or person-linked) column, and their row security.
WITH personal(col) AS (
    VALUES ('first_name'), ('last_name'), ('email'), ('address'), ('city'), ('postal_code'),
           ('mobile_phone'), ('home_phone'), ('birth_date'), ('iban'), ('facebook_id'),
           ('twitter_id'), ('instagram_id'), ('customer_id'), ('password_hash'),
           ('public_photo_url'), ('photo_path'), ('file_path'), ('notes'), ('comment'), ('body'),
           ('email_hash'), ('customer_id_hash'), ('ip_hash'), ('user_agent'), ('account_id'),
           ('ambassador_id'), ('contact_id'), ('products'), ('payload'), ('sso_subject'),
           ('login_role'))
SELECT c.relname, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced,
       string_agg(a.attname, ',' ORDER BY a.attnum) AS personal_columns
  FROM pg_class c
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN personal p ON p.col = a.attname
 WHERE c.relnamespace = 'popsell'::regnamespace AND c.relkind = 'r'
 GROUP BY c.relname, c.relrowsecurity, c.relforcerowsecurity
 ORDER BY 1;

-- Lint: (table, role, command) where the role holds the privilege (table
-- or any column) but no policy lets it act: expected none.
WITH roles(r) AS (
    VALUES ('popsell_ambassador'), ('popsell_brand'), ('popsell_brand_bi'),
           ('popsell_account_team'), ('popsell_technical'), ('popsell_app')),
cmds(cmd, polcmd) AS (
    VALUES ('SELECT', 'r'), ('INSERT', 'a'), ('UPDATE', 'w'), ('DELETE', 'd')),
held AS (
    SELECT c.oid, c.relname, roles.r, cmds.cmd, cmds.polcmd
      FROM pg_class c, roles, cmds
     WHERE c.relnamespace = 'popsell'::regnamespace AND c.relkind = 'r'
       AND (has_table_privilege(roles.r, c.oid, cmds.cmd)
            OR (cmds.cmd <> 'DELETE' AND has_any_column_privilege(roles.r, c.oid, cmds.cmd))))
SELECT h.relname, h.r, h.cmd
  FROM held h
 WHERE NOT EXISTS (
        SELECT 1 FROM pg_policy p
         WHERE p.polrelid = h.oid
           AND p.polcmd IN ('*', h.polcmd::"char")
           AND (0::oid = ANY (p.polroles)
                OR EXISTS (SELECT 1 FROM unnest(p.polroles) pr(oid)
                            WHERE pg_has_role(h.r, pr.oid, 'USAGE'))))
    OR NOT (SELECT relforcerowsecurity FROM pg_class WHERE oid = h.oid)
 ORDER BY 1, 2, 3;

-- Columns an ambassador must never read in the tables.
SELECT t, col, has_column_privilege('popsell_ambassador', 'popsell.' || t, col, 'SELECT') AS ambassador_reads
  FROM (VALUES ('contacts', 'email'), ('ambassadors', 'password_hash'), ('sales', 'products'))
       AS v(t, col)
 ORDER BY 1, 2;
-- ... nor the brand.
SELECT t, col, has_column_privilege('popsell_brand', 'popsell.' || t, col, 'SELECT') AS brand_reads
  FROM (VALUES ('ambassadors', 'password_hash'), ('activity_log', 'ip_hash'),
               ('activity_log', 'user_agent'), ('contact_tombstones', 'email_hash'))
       AS v(t, col)
 ORDER BY 1, 2;

-- The hashing keys: no popsell role but the owner holds a privilege, and
-- no policy but the owner's (so pg_read_all_data members see no row either).
SELECT r.rolname
  FROM pg_roles r
 WHERE r.rolname IN ('popsell_ambassador', 'popsell_brand', 'popsell_brand_bi',
                     'popsell_account_team', 'popsell_technical', 'popsell_app',
                     'popsell_maintenance')
   AND (has_table_privilege(r.oid, 'popsell.hash_keys', 'SELECT')
        OR has_any_column_privilege(r.oid, 'popsell.hash_keys', 'SELECT'))
 ORDER BY 1;
SELECT polname, polroles::regrole[] FROM pg_policy
 WHERE polrelid = 'popsell.hash_keys'::regclass ORDER BY 1;

-- The lookup-key functions' schema: only popsell_owner may name what it
-- holds (USAGE), although the writing roles hold EXECUTE on both
-- functions for index maintenance (expected: popsell_owner, and the
-- functions with their EXECUTE holders).
SELECT r.rolname FROM pg_roles r
 WHERE r.rolname LIKE 'popsell%' AND has_schema_privilege(r.oid, 'popsell_internal', 'USAGE')
UNION ALL
SELECT 'PUBLIC' FROM pg_namespace n, aclexplode(n.nspacl) a
 WHERE n.nspname = 'popsell_internal' AND a.grantee = 0
 ORDER BY 1;
SELECT p.oid::regprocedure, p.proacl FROM pg_proc p
 WHERE p.pronamespace = 'popsell_internal'::regnamespace ORDER BY 1;

-- Every SECURITY DEFINER function of popsell pins search_path (expected
-- none listed) ...
SELECT p.oid::regprocedure
  FROM pg_proc p
 WHERE p.pronamespace = 'popsell'::regnamespace AND p.prosecdef
   AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)
 ORDER BY 1;
-- ... and is owned by the NOLOGIN, non-superuser owner (expected none).
SELECT p.oid::regprocedure, p.proowner::regrole
  FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner
 WHERE p.pronamespace = 'popsell'::regnamespace AND p.prosecdef
   AND (r.rolsuper OR r.rolcanlogin)
 ORDER BY 1;
-- Every SQL and PL/pgSQL function too (expected none).
SELECT p.oid::regprocedure
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace = 'popsell'::regnamespace AND l.lanname IN ('sql', 'plpgsql')
   AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)
 ORDER BY 1;

-- LEAKPROOF functions: only those that cannot raise an input-dependent
-- error.
SELECT p.oid::regprocedure FROM pg_proc p
 WHERE p.pronamespace = 'popsell'::regnamespace AND p.proleakproof ORDER BY 1;

-- Views: RLS-filtered ones are security_invoker, masking ones are
-- security_barrier with the owner's rights.
SELECT c.relname, c.reloptions
  FROM pg_class c
 WHERE c.relnamespace = 'popsell'::regnamespace AND c.relkind = 'v'
 ORDER BY 1;

-- Application roles: popsell_app may become popsell_ambassador (without
-- inheriting it) and set the identity; nobody else may set it.
SELECT pg_has_role('popsell_app', 'popsell_ambassador', 'MEMBER') AS app_member,
       pg_has_role('popsell_app', 'popsell_ambassador', 'USAGE') AS app_inherits,
       has_parameter_privilege('popsell_app', 'popsell.ambassador_id', 'SET') AS app_sets,
       has_parameter_privilege('popsell_ambassador', 'popsell.ambassador_id', 'SET') AS ambassador_sets,
       has_parameter_privilege('popsell_brand', 'popsell.ambassador_id', 'SET') AS brand_sets;

-- No popsell role bypasses row security, and none but the owner owns a
-- popsell table.
SELECT r.rolname FROM pg_roles r
 WHERE r.rolname IN ('popsell_owner', 'popsell_ambassador', 'popsell_brand', 'popsell_brand_bi',
                     'popsell_account_team', 'popsell_technical', 'popsell_app',
                     'popsell_maintenance')
   AND (r.rolsuper OR r.rolbypassrls)
UNION ALL
SELECT c.relname || ' owned by ' || c.relowner::regrole FROM pg_class c
 WHERE c.relnamespace = 'popsell'::regnamespace AND c.relowner <> 'popsell_owner'::regrole
   AND c.relkind IN ('r', 'v', 'S', 'm');

-- The catalog lint: forced row security, owner, pg_dump registration,
-- no PUBLIC grant, pinned search_path and a comment on every object.
\set ECHO none
\i sql/include/catalog_lint.sql
\set ECHO all
