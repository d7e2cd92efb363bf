-- 801_upgrade: the upgrade path 1.0 -> 1.1 -> 2.0.  One database gets
-- popsell 1.0, data, then ALTER EXTENSION popsell UPDATE; another gets a
-- fresh CREATE EXTENSION popsell (2.0).  Both must hold the same objects
-- (a catalog fingerprint: functions, relations, columns, ACLs, row
-- security, policies, triggers, indexes, constraints, types, comments,
-- extension members and pg_dump configuration; schemas popsell and
-- popsell_internal) and behave the same: the
-- 1.1 view works in both, and the 1.0 data still obeys the consent rules.
\set VERBOSITY terse
SELECT current_database() AS regress_db \gset

-- The fingerprint query, one text line per catalog fact, written once
-- here and copied into each database from its pg_proc entry.
SET check_function_bodies = off;
CREATE FUNCTION public.popsell_fingerprint() RETURNS SETOF text
LANGUAGE sql STABLE AS $fp$
WITH ext AS (SELECT e.oid, e.extconfig, e.extcondition FROM pg_extension e WHERE e.extname = 'popsell'),
ns AS (SELECT n.oid FROM pg_namespace n WHERE n.nspname IN ('popsell', 'popsell_internal'))
-- (whitespace runs, newlines included, collapse: one fact per line)
SELECT regexp_replace(fact, '\s+', ' ', 'g') FROM (
SELECT 'function ' || p.oid::regprocedure::text
       || ' returns ' || pg_get_function_result(p.oid)
       || ' lang=' || l.lanname || ' kind=' || p.prokind::text
       || ' secdef=' || p.prosecdef || ' strict=' || p.proisstrict
       || ' volatile=' || p.provolatile::text || ' leakproof=' || p.proleakproof
       || ' parallel=' || p.proparallel::text
       || ' owner=' || pg_get_userbyid(p.proowner)
       || ' config=' || coalesce(p.proconfig::text, '-')
       || ' acl=' || coalesce(p.proacl::text, '-')
       || ' args=' || pg_get_function_arguments(p.oid)
       || ' src=' || md5(coalesce(p.prosrc, '') || coalesce(p.probin, ''))
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang, ns
 WHERE p.pronamespace = ns.oid
UNION ALL
SELECT 'relation ' || c.relname || ' kind=' || c.relkind::text
       || ' owner=' || pg_get_userbyid(c.relowner)
       || ' acl=' || coalesce(c.relacl::text, '-')
       || ' rls=' || c.relrowsecurity || ' force=' || c.relforcerowsecurity
       || ' options=' || coalesce(c.reloptions::text, '-')
       || ' persistence=' || c.relpersistence::text
       || CASE WHEN c.relkind IN ('v', 'm') THEN ' def=' || md5(pg_get_viewdef(c.oid)) ELSE '' END
  FROM pg_class c, ns
 WHERE c.relnamespace = ns.oid
UNION ALL
SELECT 'column ' || c.relname || '.' || a.attname
       || ' type=' || format_type(a.atttypid, a.atttypmod)
       || ' notnull=' || a.attnotnull
       || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-')
       || ' acl=' || coalesce(a.attacl::text, '-')
       || ' comment=' || coalesce(col_description(c.oid, a.attnum), '-')
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum, ns
 WHERE c.relnamespace = ns.oid AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid, ns
 WHERE c.relnamespace = ns.oid
UNION ALL
SELECT 'constraint ' || c.relname || '.' || k.conname || ' ' || pg_get_constraintdef(k.oid)
  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid, ns
 WHERE c.relnamespace = ns.oid
UNION ALL
SELECT 'policy ' || c.relname || '.' || po.polname || ' cmd=' || po.polcmd::text
       || ' permissive=' || po.polpermissive
       || ' roles=' || (SELECT string_agg(CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END, ',' ORDER BY 1)
                          FROM unnest(po.polroles) r)
       || ' using=' || coalesce(pg_get_expr(po.polqual, po.polrelid), '-')
       || ' check=' || coalesce(pg_get_expr(po.polwithcheck, po.polrelid), '-')
       || ' comment=' || coalesce(obj_description(po.oid, 'pg_policy'), '-')
  FROM pg_policy po JOIN pg_class c ON c.oid = po.polrelid, ns
 WHERE c.relnamespace = ns.oid
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid, ns
 WHERE c.relnamespace = ns.oid AND NOT t.tgisinternal
UNION ALL
SELECT 'type ' || t.typname || ' kind=' || t.typtype::text
       || ' owner=' || pg_get_userbyid(t.typowner)
       || ' acl=' || coalesce(t.typacl::text, '-')
       || ' labels=' || coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                                    FROM pg_enum e WHERE e.enumtypid = t.oid), '-')
  FROM pg_type t, ns
 WHERE t.typnamespace = ns.oid AND t.typtype <> 'c' AND t.typcategory <> 'A'
UNION ALL
SELECT 'comment ' || pg_describe_object(d.classoid, d.objoid, d.objsubid) || ' = ' || d.description
  FROM pg_description d
 WHERE EXISTS (SELECT 1 FROM pg_depend x, ext
                WHERE x.refobjid = ext.oid AND x.deptype = 'e'
                  AND x.classid = d.classoid AND x.objid = d.objoid)
UNION ALL
SELECT 'member ' || pg_describe_object(x.classid, x.objid, x.objsubid)
  FROM pg_depend x, ext
 WHERE x.refclassid = 'pg_extension'::regclass AND x.refobjid = ext.oid AND x.deptype = 'e'
UNION ALL
SELECT 'dump ' || cfg::regclass::text || ' where=' || coalesce(ext.extcondition[ord], '-')
  FROM ext, unnest(ext.extconfig) WITH ORDINALITY AS u(cfg, ord)
UNION ALL
SELECT 'schema ' || n.nspname || ' owner=' || pg_get_userbyid(n.nspowner) || ' acl=' || coalesce(n.nspacl::text, '-')
  FROM pg_namespace n, ns WHERE n.oid = ns.oid
) AS facts(fact)
$fp$;
SELECT prosrc AS fp_body FROM pg_proc WHERE oid = 'public.popsell_fingerprint()'::regprocedure \gset

SET client_min_messages = warning;
DROP DATABASE IF EXISTS popsell_upgrade_old;
DROP DATABASE IF EXISTS popsell_upgrade_new;
RESET client_min_messages;
CREATE DATABASE popsell_upgrade_old;
CREATE DATABASE popsell_upgrade_new;

-- ---------------------------------------------------------------------
-- The old database: 1.0, data, then the update.
-- ---------------------------------------------------------------------
\c popsell_upgrade_old
SET client_min_messages = warning;
CREATE EXTENSION popsell VERSION '1.0' CASCADE;
RESET client_min_messages;
SELECT extversion FROM pg_extension WHERE extname = 'popsell';
SELECT to_regclass('popsell.maintenance_status') IS NULL AS no_status_view_in_1_0;

-- Data made under 1.0: an ambassador, a declined contact, a globally
-- opted-out email (blacklist), a contact never invited for 40 days (due
-- for deletion), and a maintenance run.
INSERT INTO popsell.ambassadors (id, kind, status, terms_accepted_at, first_name, email)
VALUES (1, 'customer', 'active', now(), 'Amb0001', 'amb0001@example.test');
INSERT INTO popsell.contacts (id, ambassador_id, source, first_name, email)
VALUES (1, 1, 'crm_manual', 'Declined', 'declined@example.test'),
       (2, 1, 'crm_manual', 'Objector', 'objector@example.test');
INSERT INTO popsell.contacts (id, ambassador_id, source, first_name, email, ambassador_optin_at, created_at)
VALUES (3, 1, 'crm_manual', 'Forgotten', 'forgotten@example.test', now() - interval '40 days',
        now() - interval '40 days');
SELECT popsell.send_invitation(1);
SELECT popsell.decline_invitation(1);
SELECT popsell.object_subject('objector@example.test');
-- (run as of 20 days ago: the forgotten contact is not due yet then)
SELECT rule, affected FROM popsell.run_maintenance(now() - interval '20 days') ORDER BY rule;

-- Data made under 1.1: contacts pending email confirmation (store
-- purchases): one restricted (art. 18), one whose address was
-- blacklisted as spam, one whose token-less confirmation was sent
-- already, one plain.  The upgrade gives a token and a new confirmation
-- only to the plain one: nothing goes to the restricted or spam address,
-- and no second confirmation to the one already mailed.
ALTER EXTENSION popsell UPDATE TO '1.1';
SELECT setval('popsell.contacts_id_seq', 100) AS next_contact_ids_after;
SELECT popsell.collect_contact(1, 'store_purchase', '{"email": "u2@up.test"}', true, true) AS restricted_pending \gset
SELECT popsell.restrict_subject('u2@up.test', true);
SELECT popsell.email_callback('spam@up.test', 'spam');
SELECT popsell.collect_contact(1, 'store_purchase', '{"email": "spam@up.test"}', true, true) AS spam_pending \gset
SELECT popsell.collect_contact(1, 'store_purchase', '{"email": "mailed@up.test"}', true, true) AS mailed_pending \gset
UPDATE popsell.outbox SET sent_at = now() WHERE contact_id = :mailed_pending AND kind = 'email_confirmation';
SELECT popsell.collect_contact(1, 'store_purchase', '{"email": "plain@up.test"}', true, true) AS plain_pending \gset

SELECT (SELECT count(*) FROM popsell.consent_events) AS ledger_rows_before \gset
ALTER EXTENSION popsell UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'popsell';
-- A second update has nothing to do.
ALTER EXTENSION popsell UPDATE;

-- The data made under 1.0 is untouched and still obeys the rules.
SELECT count(*) = :ledger_rows_before AS ledger_kept FROM popsell.consent_events;
SELECT id, ambassador_optin FROM popsell.contacts ORDER BY id;
SELECT count(*) AS blacklisted FROM popsell.blacklist;
-- An opted-out contact cannot be opted in by staff (PS100) ...
UPDATE popsell.contacts SET ambassador_optin = 'invitation_accepted' WHERE id = 1;
-- ... and the 1.0 blacklist entry still blocks an ambassador's new row.
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
VALUES (1, 'crm_manual', 'Again', 'OBJECTOR@example.test');
SELECT count(*) AS objector_rows FROM popsell.contacts WHERE email = 'objector@example.test';
-- The pending contacts of 1.1: an unsent confirmation with a token for
-- the plain one only; a token only where a mail carries it.
SELECT c.email, c.restricted, c.email_status,
       (SELECT count(*) FROM popsell.outbox o WHERE o.contact_id = c.id AND o.kind = 'email_confirmation'
           AND o.sent_at IS NULL) AS unsent_confirmations,
       (SELECT count(*) FROM popsell.outbox o WHERE o.contact_id = c.id AND o.kind = 'email_confirmation'
           AND o.sent_at IS NOT NULL) AS sent_confirmations,
       EXISTS (SELECT 1 FROM popsell.contact_email_tokens t WHERE t.contact_id = c.id) AS has_token
  FROM popsell.contacts c WHERE c.id IN (:restricted_pending, :spam_pending, :mailed_pending, :plain_pending)
 ORDER BY c.id;
-- The invitation of 1.0 is on record: the ambassador does not invite the
-- address again through another row.
SELECT count(*) AS invitation_records FROM popsell.invitation_records
 WHERE ambassador_id = 1 AND email_hash = ANY (popsell.email_hashes('declined@example.test'));
-- Lifting the restriction sends the restricted one its confirmation now.
SELECT popsell.restrict_subject('u2@up.test', false);
SELECT count(*) AS lifted_confirmations FROM popsell.outbox o
 WHERE o.contact_id = :restricted_pending AND o.kind = 'email_confirmation' AND o.sent_at IS NULL
   AND o.payload ? 'token';

-- The 1.1 view reports the 1.0 run, a failure recorded after it, and what
-- is due now (the forgotten contact).
INSERT INTO popsell.maintenance_runs (run_id, rule, affected, as_of, failed_sqlstate)
VALUES (nextval('popsell.maintenance_run_id_seq'), 'logs', 0, now(), '57014');
SELECT rule, position, last_run_id IS NOT NULL AS ran, last_affected, last_failed_sqlstate,
       last_success_at IS NOT NULL AS succeeded_once, failures_since_success, due_now
  FROM popsell.maintenance_status ORDER BY position;
SELECT rule, affected FROM popsell.run_maintenance() WHERE affected > 0;
SELECT rule, last_affected, last_failed_sqlstate, failures_since_success, due_now
  FROM popsell.maintenance_status WHERE rule IN ('contact_never_invited', 'logs') ORDER BY position;

-- The catalog lint holds after the update too (expected: no rows).
\set ECHO none
\i sql/include/catalog_lint.sql
\set ECHO all

CREATE FUNCTION public.popsell_fingerprint() RETURNS SETOF text LANGUAGE sql STABLE AS :'fp_body';
SELECT string_agg(f, E'\n' ORDER BY f) AS fp_old, count(*) AS fp_old_lines
  FROM public.popsell_fingerprint() AS f \gset

-- ---------------------------------------------------------------------
-- The new database: a fresh install of the default version.
-- ---------------------------------------------------------------------
\c popsell_upgrade_new
SET client_min_messages = warning;
CREATE EXTENSION popsell CASCADE;
RESET client_min_messages;
SELECT extversion FROM pg_extension WHERE extname = 'popsell';
SELECT rule, position, last_run_id, last_affected, failures_since_success, due_now
  FROM popsell.maintenance_status ORDER BY position;
INSERT INTO popsell.ambassadors (id, kind, status, terms_accepted_at, first_name, email)
VALUES (1, 'customer', 'active', now(), 'Amb0001', 'amb0001@example.test');
INSERT INTO popsell.contacts (id, ambassador_id, source, first_name, email)
VALUES (1, 1, 'crm_manual', 'Declined', 'declined@example.test');
SELECT popsell.send_invitation(1);
SELECT popsell.decline_invitation(1);
UPDATE popsell.contacts SET ambassador_optin = 'invitation_accepted' WHERE id = 1;
SELECT rule, affected FROM popsell.run_maintenance() WHERE rule = 'logs';
SELECT rule, last_affected, last_failed_sqlstate, failures_since_success, due_now
  FROM popsell.maintenance_status WHERE rule = 'logs';

-- Who reads the view: vendor staff and the scheduled-jobs role; not the
-- brand, its BI, ambassadors or applications.
SELECT r AS role, has_table_privilege(r, 'popsell.maintenance_status', 'SELECT') AS can_read
  FROM unnest(ARRAY['popsell_technical', 'popsell_account_team', 'popsell_maintenance',
                    'popsell_brand', 'popsell_brand_bi', 'popsell_ambassador', 'popsell_app']) AS r;
SET ROLE popsell_account_team;
SELECT count(*) AS rules, count(due_now) AS previewed FROM popsell.maintenance_status;
RESET ROLE;
SET ROLE popsell_brand;
SELECT count(*) FROM popsell.maintenance_status;
RESET ROLE;

CREATE FUNCTION public.popsell_fingerprint() RETURNS SETOF text LANGUAGE sql STABLE AS :'fp_body';

-- Same objects: no catalog fact differs between the updated and the fresh
-- database (each difference is listed with the side that has it).
SELECT :fp_old_lines > 500 AS fingerprint_is_substantial,
       :fp_old_lines = (SELECT count(*) FROM public.popsell_fingerprint()) AS same_line_count;
SELECT 'only after update: ' || f AS difference
  FROM (SELECT unnest(string_to_array(:'fp_old', E'\n')) EXCEPT SELECT public.popsell_fingerprint()) AS x(f)
UNION ALL
SELECT 'only in fresh install: ' || f
  FROM (SELECT public.popsell_fingerprint() EXCEPT SELECT unnest(string_to_array(:'fp_old', E'\n'))) AS y(f)
 ORDER BY 1;
-- The new view is in the fingerprint (a member of the extension).
SELECT count(*) AS status_view_facts
  FROM public.popsell_fingerprint() AS f
 WHERE f = 'member view popsell.maintenance_status';

\c :regress_db
DROP DATABASE popsell_upgrade_old;
DROP DATABASE popsell_upgrade_new;
DROP FUNCTION public.popsell_fingerprint();
