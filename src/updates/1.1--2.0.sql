-- popsell upgrade from 1.1 to 2.0 (contract version 2).  Built by make:
-- this file, then src/sql/99_finalize.sql (ownership, privileges, row
-- security and pg_dump registration of every object, idempotent).  A
-- fresh 2.0 and 1.0 -> 1.1 -> 2.0 give the same catalog
-- (sql/801_upgrade.sql checks it).

\echo Use "ALTER EXTENSION popsell UPDATE TO '2.0'" to load this file. \quit

