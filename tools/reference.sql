-- tools/reference.sql: doc/reference.md from the catalog (make reference).
-- Every function of schema popsell that some role other than the owner may
-- call, in name order: signature, result, who may call it (EXECUTE
-- grants), whether it runs as the owner, and its COMMENT ON text, which
-- says what it does and the errors it raises.  Functions only the owner
-- runs (triggers, internal helpers) are listed at the end by name.
\set QUIET on
\pset format unaligned
\pset tuples_only on
\pset footer off
CREATE TEMPORARY VIEW fn AS
    SELECT p.oid, p.proname, p.prokind, p.prosecdef, p.provolatile,
           pg_catalog.pg_get_function_identity_arguments(p.oid) AS ident,
           pg_catalog.pg_get_function_arguments(p.oid) AS args,
           pg_catalog.pg_get_function_result(p.oid) AS result,
           pg_catalog.obj_description(p.oid, 'pg_proc') AS comment,
           ARRAY(SELECT DISTINCT pg_catalog.pg_get_userbyid(a.grantee)
                   FROM pg_catalog.aclexplode(p.proacl) a
                  WHERE a.privilege_type = 'EXECUTE'
                    AND a.grantee <> p.proowner
                    AND pg_catalog.pg_get_userbyid(a.grantee) <> 'popsell_owner'
                  ORDER BY 1) AS callers
      FROM pg_catalog.pg_proc p
      JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = 'popsell';
CREATE TEMPORARY VIEW pub AS
    SELECT * FROM fn WHERE pg_catalog.cardinality(callers) > 0;
SELECT '# popsell function reference' || E'\n\n'
    || 'Generated from the catalog by `make reference` (tools/reference.sql): '
    || 'every function of schema `popsell` that a role other than the owner may call, '
    || 'with its `COMMENT ON` text. Do not edit by hand; '
    || 'test/scripts/003_generated_files.sh fails when this file and the catalog differ.' || E'\n\n'
    || 'SQLSTATEs of class `PS` are popsell''s rule violations (README, "Errors").' || E'\n\n'
    || '## Contents' || E'\n\n'
    || (SELECT pg_catalog.string_agg('- [`' || proname || '(' || ident || ')`](#'
                                     || proname || ')', E'\n' ORDER BY proname, ident)
          FROM pub)
    || E'\n';
SELECT '## ' || proname || E'\n\n'
    || '```sql' || E'\n'
    || 'popsell.' || proname || '(' || args || ')'
    || CASE WHEN prokind = 'p' THEN '' ELSE E'\n    RETURNS ' || result END || E'\n'
    || '```' || E'\n\n'
    || '- Callable by: ' || pg_catalog.array_to_string(ARRAY(SELECT '`' || c || '`' FROM pg_catalog.unnest(callers) c), ', ') || E'\n'
    || '- Runs as: ' || CASE WHEN prosecdef THEN 'the extension owner (SECURITY DEFINER)' ELSE 'the caller' END
    || '; ' || CASE provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable' ELSE 'volatile' END || E'\n\n'
    || coalesce(comment, '(no comment)') || E'\n'
  FROM pub
 ORDER BY proname, ident;
SELECT '## Internal functions' || E'\n\n'
    || 'Run only by the owner (triggers, policy helpers, install steps); listed so nothing is hidden: '
    || pg_catalog.string_agg('`' || proname || '`', ', ' ORDER BY proname) || '.' || E'\n'
  FROM (SELECT DISTINCT proname FROM fn WHERE pg_catalog.cardinality(callers) = 0) x;
SELECT E'\n' || '## Schema popsell_internal' || E'\n\n'
    || 'Lookup-key functions that index expressions call. Only the owner has USAGE on the schema, '
    || 'so no other role can name them in a query; the roles listed hold EXECUTE because index maintenance '
    || 'of their writes evaluates them with their rights (and checks EXECUTE, not USAGE).' || E'\n\n'
    || pg_catalog.string_agg('- `popsell_internal.' || p.proname || '('
                             || pg_catalog.pg_get_function_arguments(p.oid) || ')`: EXECUTE for '
                             || pg_catalog.array_to_string(ARRAY(SELECT '`' || g.r || '`'
                                                                   FROM (SELECT DISTINCT pg_catalog.pg_get_userbyid(a.grantee) AS r
                                                                           FROM pg_catalog.aclexplode(p.proacl) a
                                                                          WHERE a.grantee <> p.proowner) g
                                                                  WHERE g.r <> 'popsell_owner'
                                                                  ORDER BY g.r), ', ')
                             || '. ' || coalesce(pg_catalog.obj_description(p.oid, 'pg_proc'), '(no comment)'),
                             E'\n' ORDER BY p.proname) || E'\n'
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'popsell_internal';
