-- 005_roles: the group roles of SPEC section 2 exist, cannot log in, are
-- not superusers and cannot bypass row level security; popsell's objects
-- are owned by a role that is neither a login role nor a superuser (S5).

SELECT v.rolname,
       r.rolname IS NOT NULL AS exists,
       r.rolcanlogin AS can_login,
       r.rolsuper AS superuser,
       r.rolbypassrls AS bypassrls,
       r.rolcreaterole AS createrole,
       r.rolcreatedb AS createdb
  FROM unnest(ARRAY['popsell_ambassador', 'popsell_brand', 'popsell_brand_bi',
                    'popsell_account_team', 'popsell_technical', 'popsell_app'])
       WITH ORDINALITY AS v(rolname, n)
  LEFT JOIN pg_roles r ON r.rolname = v.rolname
 ORDER BY v.n;

-- None of popsell's own roles is a superuser or bypasses RLS.  (Only the
-- roles the install script creates: other tests make members with
-- BYPASSRLS, which must not make a re-run on the same cluster fail.)
SELECT rolname FROM pg_roles
 WHERE rolname IN ('popsell_owner', 'popsell_ambassador', 'popsell_brand', 'popsell_brand_bi',
                   'popsell_account_team', 'popsell_technical', 'popsell_app', 'popsell_maintenance')
   AND (rolsuper OR rolbypassrls)
 ORDER BY 1;

-- Tables, views and sequences of schema popsell: owner is NOLOGIN, not a
-- superuser and none of the application roles above (one row per object
-- that is not).
SELECT c.relname, c.relkind, r.rolname AS owner
  FROM pg_class c
  JOIN pg_roles r ON r.oid = c.relowner
 WHERE c.relnamespace = 'popsell'::regnamespace
   AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
   AND (r.rolcanlogin OR r.rolsuper
        OR r.rolname IN ('popsell_ambassador', 'popsell_brand', 'popsell_brand_bi',
                         'popsell_account_team', 'popsell_technical', 'popsell_app'))
 ORDER BY 1;
