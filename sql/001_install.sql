-- 001_install: popsell installs with CASCADE into a database without its
-- dependency, drops cleanly and installs again.  Later tests rely on the
-- extension being installed when this file ends.

-- pg_regress preloads pgcrypto (--load-extension); remove it so CASCADE
-- has to install it.
DROP EXTENSION pgcrypto;
CREATE EXTENSION popsell CASCADE;

-- pgcrypto's version follows the server's major version.
SELECT e.extname,
       CASE e.extname WHEN 'pgcrypto' THEN 'any' ELSE e.extversion END AS extversion,
       n.nspname AS schema, e.extrelocatable
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname IN ('popsell', 'pgcrypto')
 ORDER BY e.extname;

-- Something was installed: tables and types live in schema popsell.
SELECT count(*) > 0 AS has_tables
  FROM pg_class WHERE relnamespace = 'popsell'::regnamespace AND relkind = 'r';
SELECT count(*) > 0 AS has_types
  FROM pg_type WHERE typnamespace = 'popsell'::regnamespace AND typtype = 'e';

-- A second CREATE is refused, IF NOT EXISTS is a no-op.
CREATE EXTENSION popsell;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS popsell;
RESET client_min_messages;

-- DROP removes everything popsell created in this database; the group
-- roles are cluster-wide and stay for other brand databases.  (Where
-- pg_cron lives in another database, DROP warns with the cron.unschedule
-- call, which depends on the server's setup: test/scripts/007 checks it.)
SET client_min_messages = error;
DROP EXTENSION popsell;
RESET client_min_messages;
SELECT count(*) AS popsell_extensions FROM pg_extension WHERE extname = 'popsell';
SELECT count(*) AS leftover_relations
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'popsell';
SELECT count(*) AS leftover_types
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname = 'popsell';
SELECT count(*) AS leftover_functions
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'popsell';
SELECT count(*) AS leftover_event_triggers FROM pg_event_trigger WHERE evtname LIKE 'popsell%';
SELECT count(*) > 0 AS roles_kept FROM pg_roles WHERE rolname = 'popsell_brand';

-- pgcrypto stays (it was installed by CASCADE but other objects may use it).
SELECT count(*) AS pgcrypto_installed FROM pg_extension WHERE extname = 'pgcrypto';

-- Installs again over the existing roles and the empty schema that
-- PostgreSQL leaves behind (a schema named in the control file is created
-- by CREATE EXTENSION but cannot be a member of the extension).
CREATE EXTENSION popsell;
SELECT count(*) AS settings_rows FROM popsell.settings;

-- Dropped again, the schema is empty: DROP SCHEMA without CASCADE works.
SET client_min_messages = error;
DROP EXTENSION popsell;
RESET client_min_messages;
DROP SCHEMA popsell;

-- And a fresh install, with a fresh settings row and key.
CREATE EXTENSION popsell;
SELECT extversion FROM pg_extension WHERE extname = 'popsell';
SELECT count(*) AS settings_rows FROM popsell.settings;
SELECT count(*) AS hash_keys FROM popsell.hash_keys;
