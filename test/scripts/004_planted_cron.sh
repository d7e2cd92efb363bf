#!/usr/bin/env bash
# 004_planted_cron: popsell calls pg_cron only as the extension pg_cron
# installed in the database it lives in (README "Uninstall", "Scheduling").
#  1. In a brand database where pg_cron does not live, a role with CREATE
#     on the database plants a schema cron (job table holding popsell's
#     job, unschedule and schedule_in_database that make it a superuser).
#     A superuser's schedule_jobs(), unschedule_jobs() and DROP EXTENSION
#     popsell CASCADE call none of it (schedule_jobs and unschedule_jobs
#     fail with PS500).
#  2. The same in the pg_cron database while the extension pg_cron is not
#     installed there (skipped where it is: dropping it would stop pg_cron's
#     scheduler until a restart; in a throwaway cluster this test runs
#     before 006, the first to install it).
#  3. No event trigger of popsell runs C: with popsell's library gone,
#     DROP of any extension must still work.
#  4. popsell_app (the mail worker) reads popsell.outbox_backlog.
set -euo pipefail
# shellcheck source=test/scripts/lib.sh
source "$(dirname "$0")/lib.sh"
skip_without_pg_cron

db=popsell_planted_004
crondb=$(q postgres "SHOW cron.database_name")
[ -n "$crondb" ] || fail "pg_cron is not preloaded"
cleanup() {
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
	q "$crondb" "SET client_min_messages = warning" "DROP EXTENSION IF EXISTS popsell" "DROP SCHEMA IF EXISTS popsell" >/dev/null 2>&1 || true
	if [ "$(q "$crondb" "SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'" 2>/dev/null)" = 0 ]; then
		q "$crondb" "SET client_min_messages = warning" "DROP SCHEMA IF EXISTS cron CASCADE" >/dev/null 2>&1 || true
	fi
	q postgres "SET client_min_messages = warning" "DROP OWNED BY ps_004_evil" "DROP ROLE IF EXISTS ps_004_evil" \
		"DROP ROLE IF EXISTS ps_004_mailer" >/dev/null 2>&1 || true
}
trap cleanup EXIT

q postgres "SET client_min_messages = warning" "DROP ROLE IF EXISTS ps_004_evil" "CREATE ROLE ps_004_evil" >/dev/null

# plant DB: the reproducer, as ps_004_evil (SET ROLE: the objects are its own)
plant() {
	q "$1" "GRANT CREATE ON DATABASE $1 TO ps_004_evil" \
		"SET ROLE ps_004_evil" \
		"CREATE SCHEMA cron" \
		"CREATE TABLE cron.job (jobid bigint, jobname text, database text)" \
		"INSERT INTO cron.job VALUES (1, 'popsell_maintenance_$1', '$1')" \
		"CREATE FUNCTION cron.unschedule(bigint) RETURNS boolean LANGUAGE plpgsql AS \$\$BEGIN EXECUTE 'ALTER ROLE ps_004_evil SUPERUSER'; RETURN true; END\$\$" \
		"CREATE FUNCTION cron.schedule_in_database(text, text, text, text, text, boolean DEFAULT true) RETURNS bigint LANGUAGE plpgsql AS \$\$BEGIN EXECUTE 'ALTER ROLE ps_004_evil SUPERUSER'; RETURN 1; END\$\$" \
		"GRANT USAGE ON SCHEMA cron TO PUBLIC" >/dev/null
}

# attack DB: a superuser's calls; none may run the planted functions
attack() {
	local out
	out=$(psql -X -q -v VERBOSITY=verbose -d "$1" -c "SELECT popsell.schedule_jobs('17 3 * * *')" 2>&1 || true)
	expect_eq "$1: ps_004_evil a superuser after schedule_jobs()" "$(q postgres "SELECT rolsuper FROM pg_roles WHERE rolname = 'ps_004_evil'")" f
	grep -q PS500 <<<"$out" || fail "$1: schedule_jobs() with a planted cron schema: expected PS500, got: $out"
	out=$(psql -X -q -v VERBOSITY=verbose -d "$1" -c "SELECT popsell.unschedule_jobs()" 2>&1 || true)
	expect_eq "$1: ps_004_evil a superuser after unschedule_jobs()" "$(q postgres "SELECT rolsuper FROM pg_roles WHERE rolname = 'ps_004_evil'")" f
	grep -q PS500 <<<"$out" || fail "$1: unschedule_jobs() with a planted cron schema: expected PS500, got: $out"
	out=$(psql -X -q -v ON_ERROR_STOP=1 -d "$1" -c "DROP EXTENSION popsell CASCADE" 2>&1) || fail "$1: DROP EXTENSION failed: $out"
	expect_eq "$1: ps_004_evil a superuser after DROP EXTENSION popsell" "$(q postgres "SELECT rolsuper FROM pg_roles WHERE rolname = 'ps_004_evil'")" f
}

# --- 1. a brand database pg_cron does not live in ---------------------------
fresh_db "$db"
q "$db" "SET client_min_messages = warning" "CREATE EXTENSION popsell CASCADE" >/dev/null
plant "$db"
attack "$db"

# --- 2. the pg_cron database, extension pg_cron not installed ---------------
if [ "$(q "$crondb" "SELECT count(*) FROM pg_extension WHERE extname = 'popsell'")" != 0 ]; then
	fail "popsell is already installed in $crondb; this test needs that database for itself"
fi
# (dropping pg_cron to plant would stop its scheduler from running jobs
# until a restart: only where it is not installed yet)
if [ "$(q "$crondb" "SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'")" = 1 ]; then
	echo "skip: the extension pg_cron is installed in $crondb (part 2 runs where it is not)"
else
	q "$crondb" "SET client_min_messages = warning" "DROP SCHEMA IF EXISTS popsell" "CREATE EXTENSION popsell CASCADE" >/dev/null
	plant "$crondb"
	attack "$crondb"
	q "$crondb" "SET client_min_messages = warning" "DROP SCHEMA popsell" "DROP SCHEMA cron CASCADE" \
		"REVOKE CREATE ON DATABASE $crondb FROM ps_004_evil" >/dev/null
fi

# --- 3. no C on the DDL path --------------------------------------------------
fresh_db "$db"
q "$db" "SET client_min_messages = warning" "CREATE EXTENSION popsell CASCADE" >/dev/null
c_triggers=$(q "$db" "SELECT coalesce(string_agg(t.evtname || ' -> ' || t.evtfoid::regproc::text, ', '), '')
	FROM pg_event_trigger t
	JOIN pg_depend d ON d.classid = 'pg_event_trigger'::regclass AND d.objid = t.oid AND d.deptype = 'e'
	JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'popsell'
	JOIN pg_proc p ON p.oid = t.evtfoid
	JOIN pg_language l ON l.oid = p.prolang
	WHERE l.lanname NOT IN ('plpgsql', 'sql')")
expect_eq "popsell's event triggers running C (they fail every DROP once the library file is gone)" "$c_triggers" ""
expect_eq "popsell's event triggers" "$(q "$db" "SELECT count(*) FROM pg_event_trigger t JOIN pg_depend d ON d.classid = 'pg_event_trigger'::regclass AND d.objid = t.oid AND d.deptype = 'e' JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'popsell'")" 2

# --- 4. the mail worker reads the outbox backlog -----------------------------
q postgres "SET client_min_messages = warning" "DROP ROLE IF EXISTS ps_004_mailer" "CREATE ROLE ps_004_mailer IN ROLE popsell_app" >/dev/null
expect_eq "outbox kinds popsell_app sees in popsell.outbox_backlog" \
	"$(q "$db" "SET ROLE ps_004_mailer" "SELECT count(*) FROM popsell.outbox_backlog")" \
	"$(q "$db" "SELECT count(*) FROM unnest(enum_range(NULL::popsell.outbox_kind))")"

echo "004_planted_cron passed"
