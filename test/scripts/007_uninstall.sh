#!/usr/bin/env bash
# 007_uninstall: DROP EXTENSION popsell leaves no failing pg_cron job and
# a re-install works (README "Uninstall").
#  1. In the pg_cron database, DROP EXTENSION popsell CASCADE removes the
#     job schedule_jobs() created.
#  2. In a brand database whose job lives in the pg_cron database and has
#     run, DROP EXTENSION warns with the exact cron.unschedule call, and
#     that call removes the job.
#  3. After a drop, another superuser re-installs over the empty schema
#     PostgreSQL leaves behind; a schema that holds objects, or that a
#     non-superuser owns, is refused with PS001 and a hint that says what
#     to do, and doing it works.
set -euo pipefail
# shellcheck source=test/scripts/lib.sh
source "$(dirname "$0")/lib.sh"
skip_without_pg_cron

db=popsell_uninstall_007
crondb=$(q postgres "SHOW cron.database_name")
[ -n "$crondb" ] || fail "pg_cron is not preloaded"
password="pw-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"

cleanup() {
	q "$crondb" "SELECT count(cron.unschedule(jobid)) FROM cron.job WHERE jobname LIKE 'popsell_maintenance_%'" >/dev/null 2>&1 || true
	q "$crondb" "SET client_min_messages = warning" "DROP EXTENSION IF EXISTS popsell" "DROP SCHEMA IF EXISTS popsell" >/dev/null 2>&1 || true
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
	psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP ROLE IF EXISTS ps_007_dba" -c "DROP ROLE IF EXISTS ps_007_user" >/dev/null 2>&1 || true
}
trap cleanup EXIT

q "$crondb" "SET client_min_messages = warning" "CREATE EXTENSION IF NOT EXISTS pg_cron" >/dev/null
if [ "$(q "$crondb" "SELECT count(*) FROM pg_extension WHERE extname = 'popsell'")" != 0 ]; then
	fail "popsell is already installed in $crondb; this test needs that database for itself"
fi

# --- 1. pg_cron in the brand database ---------------------------------------
q "$crondb" "SET client_min_messages = warning" "DROP SCHEMA IF EXISTS popsell" "CREATE EXTENSION popsell CASCADE" >/dev/null
job=$(q "$crondb" "SELECT popsell.schedule_jobs('17 3 * * *')")
[ -n "$job" ] || fail "schedule_jobs() returned nothing"
out=$(psql -X -q -v ON_ERROR_STOP=1 -d "$crondb" -c "DROP EXTENSION popsell CASCADE" 2>&1) || fail "DROP EXTENSION failed: $out"
echo "DROP EXTENSION said: $out"
expect_eq "pg_cron jobs left after DROP EXTENSION in the pg_cron database" \
	"$(q "$crondb" "SELECT count(*) FROM cron.job WHERE jobid = $job OR jobname = 'popsell_maintenance_$crondb'")" 0
q "$crondb" "DROP SCHEMA popsell" >/dev/null

# --- 2. the job lives in the pg_cron database, popsell elsewhere ------------
fresh_db "$db"
q "$db" "SET client_min_messages = warning" "CREATE EXTENSION popsell CASCADE" >/dev/null
call=$(psql -X -q -d "$db" -c "SELECT popsell.schedule_jobs('17 3 * * *')" 2>&1 | sed -n 's/^HINT:.* run: \(SELECT cron.schedule_in_database(.*);\)$/\1/p' || true)
[ -n "$call" ] || fail "schedule_jobs() outside the pg_cron database gave no call to run"
job=$(q "$crondb" "$call")
# the job has run here: pg_cron logs in as popsell_maintenance, which is
# what maintenance_runs.run_by records (a real run takes up to a minute;
# 304_pg_cron covers it)
q "$db" "SELECT count(*) FROM popsell.run_maintenance()" \
	"UPDATE popsell.maintenance_runs SET run_by = 'popsell_maintenance'" >/dev/null
out=$(psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "DROP EXTENSION popsell CASCADE" 2>&1) || fail "DROP EXTENSION failed: $out"
echo "DROP EXTENSION said: $out"
unschedule=$(sed -n 's/^HINT:.* run: \(SELECT cron\.unschedule(.*;\)$/\1/p' <<<"$out")
[ -n "$unschedule" ] || fail "DROP EXTENSION did not say how to remove the job in $crondb"
q "$crondb" "$unschedule" >/dev/null
expect_eq "the job after the call DROP EXTENSION gave" "$(q "$crondb" "SELECT count(*) FROM cron.job WHERE jobid = $job")" 0

# --- 3. re-install after a drop ----------------------------------------------
expect_eq "schema left by DROP EXTENSION" "$(q "$db" "SELECT count(*) FROM pg_namespace WHERE nspname = 'popsell'")" 1
q postgres "SET client_min_messages = warning" "DROP ROLE IF EXISTS ps_007_dba" "DROP ROLE IF EXISTS ps_007_user" \
	"CREATE ROLE ps_007_dba LOGIN SUPERUSER PASSWORD '$password'" "CREATE ROLE ps_007_user LOGIN PASSWORD '$password'" >/dev/null
out=$(PGUSER=ps_007_dba PGPASSWORD="$password" psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "CREATE EXTENSION popsell CASCADE" 2>&1) ||
	fail "another superuser cannot re-install after DROP EXTENSION: $out"
echo "ok: another superuser re-installs over the empty schema"
expect_eq "re-installed version" "$(q "$db" "SELECT extversion FROM pg_extension WHERE extname = 'popsell'")" \
	"$(q "$db" "SELECT default_version FROM pg_available_extensions WHERE name = 'popsell'")"

# a schema holding an object: refused, and renaming it as the hint says works
q "$db" "SET client_min_messages = warning" "DROP EXTENSION popsell" "CREATE TABLE popsell.planted (x int)" >/dev/null
out=$(psql -X -q -v VERBOSITY=verbose -d "$db" -c "CREATE EXTENSION popsell" 2>&1 || true)
grep -q "PS001" <<<"$out" || fail "a schema holding objects: expected PS001, got: $out"
grep -q "HINT:.*ALTER SCHEMA popsell RENAME TO popsell_old" <<<"$out" || fail "no rename hint: $out"
q "$db" "ALTER SCHEMA popsell RENAME TO popsell_old" "CREATE EXTENSION popsell" "DROP SCHEMA popsell_old CASCADE" >/dev/null 2>&1 ||
	fail "CREATE EXTENSION after the rename the hint gave failed"
echo "ok: a schema holding objects is refused with a hint that works"

# an empty schema a non-superuser owns: refused, DROP SCHEMA as the hint says works
q "$db" "SET client_min_messages = warning" "DROP EXTENSION popsell" "ALTER SCHEMA popsell OWNER TO ps_007_user" >/dev/null
out=$(psql -X -q -v VERBOSITY=verbose -d "$db" -c "CREATE EXTENSION popsell" 2>&1 || true)
grep -q "PS001" <<<"$out" || fail "an empty schema owned by a non-superuser: expected PS001, got: $out"
grep -q "ps_007_user" <<<"$out" || fail "the message does not name the owner: $out"
grep -q "HINT:.*DROP SCHEMA popsell;" <<<"$out" || fail "no DROP SCHEMA hint: $out"
q "$db" "DROP SCHEMA popsell" "CREATE EXTENSION popsell" >/dev/null || fail "CREATE EXTENSION after DROP SCHEMA failed"
echo "ok: a schema a non-superuser owns is refused with a hint that works"

echo "007_uninstall passed"
