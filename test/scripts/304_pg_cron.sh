#!/usr/bin/env bash
# 304_pg_cron: a real pg_cron run (SPEC 7, S7).  The test cluster preloads
# pg_cron with cron.database_name = postgres (tools/common.sh).
#  1. In a brand database without pg_cron, popsell.schedule_jobs() fails
#     with PS500 and its hint is the exact cron.schedule_in_database call;
#     that call, run in the pg_cron database, schedules the job (every
#     minute) as popsell_maintenance.  Within 75 s cron.job_run_details
#     shows a success and popsell.maintenance_runs (the truth) shows the
#     run, made by popsell_maintenance.
#  2. In the pg_cron database itself, schedule_jobs() schedules directly
#     and unschedule_jobs() removes the job.
set -euo pipefail
# shellcheck source=test/scripts/lib.sh
source "$(dirname "$0")/lib.sh"
skip_without_pg_cron

db=popsell_cron_304
crondb=$(q postgres "SHOW cron.database_name")
[ -n "$crondb" ] || fail "pg_cron is not preloaded"
fresh_db "$db"
q "$db" "SET client_min_messages = warning" "CREATE EXTENSION popsell CASCADE" >/dev/null
q "$crondb" "SET client_min_messages = warning" "CREATE EXTENSION IF NOT EXISTS pg_cron" >/dev/null

cleanup() {
	q "$crondb" "SELECT count(cron.unschedule(jobid)) FROM cron.job WHERE jobname LIKE 'popsell_maintenance_%'" >/dev/null 2>&1 || true
	q "$crondb" "SET client_min_messages = warning" "DROP EXTENSION IF EXISTS popsell" >/dev/null 2>&1 || true
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# 1. elsewhere: PS500 with the exact call as hint
out=$(psql -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d "$db" -c "SELECT popsell.schedule_jobs('* * * * *')" 2>&1 || true)
grep -q 'PS500' <<<"$out" || fail "schedule_jobs outside the pg_cron database: expected PS500, got: $out"
call=$(sed -n 's/^HINT:.* run: \(SELECT cron.schedule_in_database(.*);\)$/\1/p' <<<"$out")
[ -n "$call" ] || fail "no cron.schedule_in_database call in the hint: $out"
echo "ok: hint is $call"
out=$(psql -X -q -d "$db" -c "SELECT popsell.unschedule_jobs()" 2>&1 || true)
grep -q 'pg_cron is not installed' <<<"$out" || fail "unschedule_jobs outside: $out"

job=$(q "$crondb" "$call")
[ -n "$job" ] || fail "scheduling failed"
expect_eq "job runs as" "$(q "$crondb" "SELECT username || '@' || database FROM cron.job WHERE jobid = $job")" "popsell_maintenance@$db"

deadline=$(($(date +%s) + 75))
status=""
while [ "$(date +%s)" -lt "$deadline" ]; do
	status=$(q "$crondb" "SELECT string_agg(DISTINCT status, ',') FROM cron.job_run_details WHERE jobid = $job AND status IN ('succeeded', 'failed')")
	[ -n "$status" ] && break
	sleep 2
done
expect_eq "cron.job_run_details status" "$status" "succeeded"
expect_eq "maintenance_runs rows of the cron run (one per rule)" \
	"$(q "$db" "SELECT count(*) FROM popsell.maintenance_runs WHERE run_by = 'popsell_maintenance' AND failed_sqlstate IS NULL")" \
	"$(q "$db" "SELECT count(*) FROM popsell.maintenance_rules()")"
q "$crondb" "SELECT cron.unschedule($job)" >/dev/null

# 2. in the pg_cron database: directly
if [ "$(q "$crondb" "SELECT count(*) FROM pg_extension WHERE extname = 'popsell'")" = 0 ]; then
	q "$crondb" "SET client_min_messages = warning" "CREATE EXTENSION popsell CASCADE" >/dev/null
	job2=$(q "$crondb" "SELECT popsell.schedule_jobs('17 3 * * *')")
	expect_eq "direct job" "$(q "$crondb" "SELECT username || ' ' || command FROM cron.job WHERE jobid = $job2")" \
		"popsell_maintenance SELECT popsell.run_maintenance()"
	expect_eq "unschedule_jobs" "$(q "$crondb" "SELECT popsell.unschedule_jobs()")" "1"
	expect_eq "no job left" "$(q "$crondb" "SELECT count(*) FROM cron.job WHERE jobid = $job2")" "0"
	q "$crondb" "SET client_min_messages = warning" "DROP EXTENSION popsell" >/dev/null
fi
echo "304_pg_cron passed"
