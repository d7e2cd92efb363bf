#!/usr/bin/env bash
# 007_uninstall: DROP EXTENSION popsell leaves no failing pg_cron job and
# a re-install works (README "Uninstall").
#  1. In the pg_cron database: a DROP that leaves popsell installed keeps
#     the job as it was; DROP EXTENSION pgcrypto CASCADE, DROP SCHEMA
#     popsell CASCADE, DROP EXTENSION popsell CASCADE and DROP OWNED BY
#     its installer CASCADE each remove the job schedule_jobs() created.
#  2. In a brand database whose job lives in the pg_cron database (and has
#     not run yet), DROP EXTENSION popsell CASCADE and DROP EXTENSION
#     pgcrypto CASCADE warn with the exact cron.unschedule call, and that
#     call removes the job; a plain DROP of something else does not warn.
#  3. After a drop, another superuser re-installs over the empty schema
#     PostgreSQL leaves behind, and grants left on that schema are gone; a
#     schema that holds objects (a table, default privileges a role set in
#     it), or that a non-superuser owns, is refused with PS001 naming them
#     and a hint that says what to do, and doing it works.
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
	psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP ROLE IF EXISTS ps_007_dba" -c "DROP ROLE IF EXISTS ps_007_user" -c "DROP ROLE IF EXISTS ps_007_installer" >/dev/null 2>&1 || true
}
trap cleanup EXIT

q "$crondb" "SET client_min_messages = warning" "CREATE EXTENSION IF NOT EXISTS pg_cron" >/dev/null
if [ "$(q "$crondb" "SELECT count(*) FROM pg_extension WHERE extname = 'popsell'")" != 0 ]; then
	fail "popsell is already installed in $crondb; this test needs that database for itself"
fi

# --- 1. pg_cron in the brand database ---------------------------------------
job_row() {
	q "$crondb" "SELECT coalesce(string_agg(format('%s|%s|%s|%s|%s|%s|%s', jobid, jobname, schedule, command, database, username, active), ','), 'none')
		FROM cron.job WHERE jobname = 'popsell_maintenance_$crondb'"
}
install_and_schedule() {
	q "$crondb" "SET client_min_messages = warning" "DROP SCHEMA IF EXISTS popsell" "CREATE EXTENSION popsell CASCADE" >/dev/null
	job=$(q "$crondb" "SELECT popsell.schedule_jobs('17 3 * * *')")
	[ -n "$job" ] || fail "schedule_jobs() returned nothing"
}
install_and_schedule
before=$(job_row)
# statements that can drop popsell but do not: the job stays as it was
q "$crondb" "CREATE SCHEMA ps_007_scratch" "DROP SCHEMA ps_007_scratch CASCADE" "DROP EXTENSION IF EXISTS ps_007_none CASCADE" \
	"CREATE ROLE ps_007_nobody" "DROP OWNED BY ps_007_nobody CASCADE" "DROP ROLE ps_007_nobody" >/dev/null
psql -X -q -d "$crondb" -c "DROP EXTENSION pgcrypto" >/dev/null 2>&1 && fail "DROP EXTENSION pgcrypto without CASCADE succeeded"
expect_eq "the job after DROPs that leave popsell installed" "$(job_row)" "$before"
# each way of dropping popsell takes the job with it
for drop in "DROP EXTENSION pgcrypto CASCADE" "DROP SCHEMA popsell CASCADE" "DROP EXTENSION popsell CASCADE"; do
	[ "$drop" = "DROP EXTENSION pgcrypto CASCADE" ] || install_and_schedule
	out=$(psql -X -q -v ON_ERROR_STOP=1 -d "$crondb" -c "SET client_min_messages = warning" -c "$drop" 2>&1) || fail "$drop failed: $out"
	expect_eq "popsell installed after $drop" "$(q "$crondb" "SELECT count(*) FROM pg_extension WHERE extname = 'popsell'")" 0
	expect_eq "pg_cron jobs left after $drop in the pg_cron database" \
		"$(q "$crondb" "SELECT count(*) FROM cron.job WHERE jobid = $job OR jobname = 'popsell_maintenance_$crondb'")" 0
done
# dropped and installed again in one transaction: a later DROP of
# something else does not bring the old job back
install_and_schedule
q "$crondb" "SET client_min_messages = warning" "BEGIN" "DROP EXTENSION popsell" "DROP SCHEMA popsell" "CREATE EXTENSION popsell" \
	"CREATE SCHEMA ps_007_scratch" "DROP SCHEMA ps_007_scratch" "COMMIT" >/dev/null
expect_eq "pg_cron jobs after DROP and CREATE EXTENSION popsell, then another DROP, in one transaction" \
	"$(q "$crondb" "SELECT count(*) FROM cron.job WHERE jobid = $job OR jobname = 'popsell_maintenance_$crondb'")" 0
q "$crondb" "SET client_min_messages = warning" "DROP EXTENSION popsell" >/dev/null

# DROP OWNED BY the superuser who installed popsell
q "$crondb" "SET client_min_messages = warning" "DROP SCHEMA IF EXISTS popsell" "DROP ROLE IF EXISTS ps_007_installer" \
	"CREATE ROLE ps_007_installer SUPERUSER" "SET ROLE ps_007_installer" "CREATE EXTENSION popsell" >/dev/null
job=$(q "$crondb" "SELECT popsell.schedule_jobs('17 3 * * *')")
q "$crondb" "SET client_min_messages = warning" "DROP OWNED BY ps_007_installer CASCADE" "DROP ROLE ps_007_installer" >/dev/null
expect_eq "popsell installed after DROP OWNED BY its installer CASCADE" "$(q "$crondb" "SELECT count(*) FROM pg_extension WHERE extname = 'popsell'")" 0
expect_eq "pg_cron jobs left after DROP OWNED BY popsell's installer CASCADE" \
	"$(q "$crondb" "SELECT count(*) FROM cron.job WHERE jobid = $job OR jobname = 'popsell_maintenance_$crondb'")" 0
q "$crondb" "SET client_min_messages = warning" "DROP SCHEMA IF EXISTS popsell" >/dev/null

# --- 2. the job lives in the pg_cron database, popsell elsewhere ------------
# The job is scheduled and has not run (it would at 03:17): DROP warns all
# the same.
fresh_db "$db"
for drop in "DROP EXTENSION popsell CASCADE" "DROP EXTENSION pgcrypto CASCADE"; do
	q "$db" "SET client_min_messages = warning" "DROP SCHEMA IF EXISTS popsell" "CREATE EXTENSION popsell CASCADE" >/dev/null
	call=$(psql -X -q -d "$db" -c "SELECT popsell.schedule_jobs('17 3 * * *')" 2>&1 | sed -n 's/^HINT:.* run: \(SELECT cron.schedule_in_database(.*);\)$/\1/p' || true)
	[ -n "$call" ] || fail "schedule_jobs() outside the pg_cron database gave no call to run"
	job=$(q "$crondb" "$call")
	out=$(psql -X -q -d "$db" -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS ps_007_none" 2>&1)
	expect_eq "what a plain DROP of something else said" "$out" ""
	out=$(psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "$drop" 2>&1) || fail "$drop failed: $out"
	echo "$drop said: $out"
	unschedule=$(sed -n 's/^HINT:.* run: \(SELECT cron\.unschedule(.*;\)$/\1/p' <<<"$out")
	[ -n "$unschedule" ] || fail "$drop did not say how to remove the job in $crondb"
	q "$crondb" "$unschedule" >/dev/null
	expect_eq "the job after the call $drop gave" "$(q "$crondb" "SELECT count(*) FROM cron.job WHERE jobid = $job")" 0
done

# --- 3. re-install after a drop ----------------------------------------------
expect_eq "schema left by DROP EXTENSION" "$(q "$db" "SELECT count(*) FROM pg_namespace WHERE nspname = 'popsell'")" 1
q postgres "SET client_min_messages = warning" "DROP ROLE IF EXISTS ps_007_dba" "DROP ROLE IF EXISTS ps_007_user" \
	"CREATE ROLE ps_007_dba LOGIN SUPERUSER PASSWORD '$password'" "CREATE ROLE ps_007_user LOGIN PASSWORD '$password'" >/dev/null
# a role with CONNECT sets default privileges in the empty schema: refused,
# the message names them, and dropping the schema as the hint says works
q "$db" "SET ROLE ps_007_user" "ALTER DEFAULT PRIVILEGES IN SCHEMA popsell GRANT SELECT ON TABLES TO PUBLIC" >/dev/null
out=$(psql -X -q -v VERBOSITY=verbose -d "$db" -c "CREATE EXTENSION popsell CASCADE" 2>&1 || true)
grep -q "PS001" <<<"$out" || fail "default privileges in the schema: expected PS001, got: $out"
grep -q "ERROR:.*default privileges on new relations belonging to role ps_007_user in schema popsell" <<<"$out" ||
	fail "the message does not name the default privileges: $out"
q "$db" "ALTER SCHEMA popsell RENAME TO popsell_old" "DROP SCHEMA popsell_old" >/dev/null 2>&1 ||
	fail "the schema the hint names cannot be renamed and dropped"
echo "ok: default privileges set in the schema are named and the hint works"
q "$db" "CREATE SCHEMA popsell" >/dev/null
# a grant left on the reused schema does not survive the re-install
q "$db" "GRANT USAGE ON SCHEMA popsell TO ps_007_user, PUBLIC" >/dev/null
out=$(PGUSER=ps_007_dba PGPASSWORD="$password" psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "CREATE EXTENSION popsell CASCADE" 2>&1) ||
	fail "another superuser cannot re-install after DROP EXTENSION: $out"
echo "ok: another superuser re-installs over the empty schema"
expect_eq "ps_007_user's USAGE on the reused schema after the re-install" \
	"$(q "$db" "SELECT has_schema_privilege('ps_007_user', 'popsell', 'USAGE')")" f
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
