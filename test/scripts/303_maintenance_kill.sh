#!/usr/bin/env bash
# 303_maintenance_kill: pg_terminate_backend of a running
# popsell.run_maintenance leaves consistent data (every contact either
# still there or erased with its tombstone, its ledger re-pointed; no
# maintenance_runs row for work that was not done), and the next run
# finishes the work (SPEC 7: a crash cannot leave a rule half-done).
set -euo pipefail
# shellcheck source=test/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

db=popsell_kill_303
n=200000
fresh_db "$db"
trap 'dropdb --if-exists "$db" >/dev/null 2>&1 || true' EXIT
q "$db" "SET client_min_messages = warning" "CREATE EXTENSION popsell CASCADE" >/dev/null
q "$db" "SET session_replication_role = replica" \
	"INSERT INTO popsell.ambassadors (id, kind, status, email, terms_accepted_at, created_at, last_login_at)
	 VALUES (1, 'customer', 'active', 'k1@example.test', '2229-01-01', '2229-01-01', '2229-12-01')" \
	"INSERT INTO popsell.contacts (id, ambassador_id, source, first_name, email, email_status, ambassador_optin,
	                               ambassador_optin_at, brand_optin, brand_optin_at, created_at)
	 SELECT i, 1, 'crm_manual', 'K' || i, 'k' || i || '@example.test', 'ok', 'optout_email', '2228-01-01',
	        'no_optin', '2228-01-01', '2228-01-01' FROM generate_series(1, $n) i" \
	"INSERT INTO popsell.consent_events (contact_id, ambassador_id, changed, new_ambassador_optin, actor, path, actor_role, occurred_at)
	 SELECT i, 1, '{ambassador_optin}', 'optout_email', 'contact', 'contact', 'popsell_app', '2228-01-01'
	   FROM generate_series(1, $n) i"

check_consistent() {
	local got
	got=$(q "$db" "SELECT (SELECT count(*) FROM popsell.contacts) + (SELECT count(*) FROM popsell.contact_tombstones)")
	expect_eq "$1: every contact is either there or tombstoned" "$got" "$n"
	got=$(q "$db" "SELECT count(*) FROM popsell.consent_events e
	                WHERE NOT EXISTS (SELECT 1 FROM popsell.contacts c WHERE c.id = e.contact_id)
	                  AND NOT EXISTS (SELECT 1 FROM popsell.contact_tombstones t WHERE t.id = e.contact_tombstone_id)")
	expect_eq "$1: no ledger row points nowhere" "$got" "0"
	got=$(q "$db" "SELECT count(*) FROM popsell.consent_events")
	expect_eq "$1: no ledger row lost" "$got" "$n"
}

# Start a run as popsell_maintenance would, and kill it while it works.
psql -X -q -d "$db" -c "SELECT * FROM popsell.run_maintenance('2230-01-01')" >"$POPSELL_TEST_TMP/run1.log" 2>&1 &
runner=$!
pid=""
for _ in $(seq 1 100); do
	pid=$(q "$db" "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND state = 'active'
	                 AND query LIKE '%run_maintenance(''2230-01-01'')%' AND pid <> pg_backend_pid()")
	[ -n "$pid" ] && break
	sleep 0.1
done
[ -n "$pid" ] || fail "the run did not start"
sleep 0.5
expect_eq "terminate" "$(q "$db" "SELECT pg_terminate_backend($pid)")" "t"
wait "$runner" || true
grep -q 'terminat' "$POPSELL_TEST_TMP/run1.log" || fail "the run was not killed mid-way: $(cat "$POPSELL_TEST_TMP/run1.log")"
check_consistent "after the kill"
expect_eq "no record of undone work" "$(q "$db" "SELECT count(*) FROM popsell.maintenance_runs WHERE rule = 'contact_opted_out'")" "0"

# The next run finishes the work.
expect_eq "next run erases them all" \
	"$(q "$db" "SELECT affected FROM popsell.run_maintenance('2230-01-02') WHERE rule = 'contact_opted_out'")" "$n"
check_consistent "after the next run"
expect_eq "all tombstoned" "$(q "$db" "SELECT count(*) FROM popsell.contact_tombstones")" "$n"
expect_eq "the record" "$(q "$db" "SELECT sum(affected) FROM popsell.maintenance_runs WHERE rule = 'contact_opted_out'")" "$n"
expect_eq "a third run does nothing more" \
	"$(q "$db" "SELECT sum(affected) FROM popsell.run_maintenance('2230-01-02')")" "0"
echo "303_maintenance_kill passed"
