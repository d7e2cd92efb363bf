#!/usr/bin/env bash
# 701_crash: crash safety of popsell.run_maintenance (SPEC 7 "a crash cannot
# leave a rule half-done", S6, S7).  A long run (N1 opted-out contacts due
# for contact_opted_out, with tombstones; N2 never-invited contacts due for
# contact_never_invited, without; each with ledger rows, interactions and
# a sale) is (1) killed with pg_terminate_backend and (2) cut by an
# immediate shutdown (pg_ctl -m immediate, crash recovery on restart).
# After each: every rule is fully applied or not at all (maintenance_runs
# rows match the data), no contact is both live and tombstoned, no
# never-invited contact has a tombstone, no opted-out contact is gone
# without its tombstone, no ledger / interaction / sale row points to
# nothing, indexes are consistent (amcheck), and the next run completes the
# work.  303_maintenance_kill covers the kill on the harness cluster; the
# immediate shutdown needs a cluster this script owns, so it starts its own
# (initdb in POPSELL_TEST_TMP, Unix socket only, no port clash), as the
# postgres OS user when run as root.
set -euo pipefail
# shellcheck source=test/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

# The harness exports PS_PG_BIN, the server binaries of the version under
# test.
bin="${PS_PG_BIN:-$("${PG_CONFIG:-pg_config}" --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}"
[ -x "$bin/pg_ctl" ] || bin=/usr/lib/postgresql/15/bin
tmp="${POPSELL_TEST_TMP:?}"
data="$tmp/crash_data"
sock="$tmp"
port=5701
n1=${CRASH_N1:-100000}
n2=${CRASH_N2:-100000}
n=$((n1 + n2))

as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}
if [ "$(id -u)" -eq 0 ]; then
	chown postgres "$tmp"
fi
export PGHOST="$sock" PGPORT="$port" PGUSER=postgres
unset PGPASSWORD PGDATABASE PGSERVICE
opts="-c listen_addresses= -c unix_socket_directories=$sock -c port=$port -c fsync=off -c max_wal_size=1GB"
start() {
	as_owner "$bin/pg_ctl" -D "$data" -l "$tmp/server.log" -w -t 120 -o "$opts" start >/dev/null
}
stop_all() {
	as_owner "$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
}
trap stop_all EXIT
as_owner "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$tmp/initdb.log" 2>&1 ||
	fail "initdb: $(tail -5 "$tmp/initdb.log")"
start
db=popsell_crash
createdb "$db"
q "$db" "SET client_min_messages = warning" "CREATE EXTENSION popsell CASCADE" "CREATE EXTENSION amcheck" >/dev/null

# ids 1..n1 opted out (tombstone due), n1+1..n never invited (no tombstone)
q "$db" "SET session_replication_role = replica" \
	"INSERT INTO popsell.ambassadors (id, kind, status, email, terms_accepted_at, created_at, last_login_at)
	 VALUES (1, 'customer', 'active', 'k1@example.test', '2229-01-01', '2229-01-01', '2229-12-01')" \
	"INSERT INTO popsell.contacts (id, ambassador_id, source, first_name, email, email_status, ambassador_optin,
	                               ambassador_optin_at, brand_optin, brand_optin_at, created_at, city)
	 SELECT i, 1, 'crm_manual', 'K' || i, 'k' || i || '@example.test', 'ok',
	        CASE WHEN i <= $n1 THEN 'optout_email' ELSE 'new' END::popsell.ambassador_optin,
	        CASE WHEN i <= $n1 THEN timestamptz '2228-06-01' ELSE '2229-11-01' END,
	        'no_optin', '2228-01-01', '2228-01-01', 'Lyon' FROM generate_series(1, $n) i" \
	"SELECT setval('popsell.contacts_id_seq', $n)" \
	"INSERT INTO popsell.consent_events (contact_id, ambassador_id, changed, new_ambassador_optin, actor, path, actor_role, occurred_at)
	 SELECT i, 1, '{ambassador_optin}', CASE WHEN i <= $n1 THEN 'optout_email' ELSE 'new' END::popsell.ambassador_optin,
	        'contact', 'contact', 'popsell_app', '2228-01-01' FROM generate_series(1, $n) i" \
	"INSERT INTO popsell.interactions (contact_id, kind, occurred_at)
	 SELECT i, 'click', '2228-01-02' FROM generate_series(1, $n, 10) i" \
	"INSERT INTO popsell.sales (contact_id, ambassador_id, amount, currency, channel, sold_at)
	 SELECT i, 1, 10, 'EUR', 'online', '2228-01-02' FROM generate_series(1, $n, 50) i" \
	"ANALYZE" >/dev/null
n_int=$(q "$db" "SELECT count(*) FROM popsell.interactions")
n_sales=$(q "$db" "SELECT count(*) FROM popsell.sales")

# check WHAT: the invariants, whatever was done so far.
check() {
	local what="$1" got
	got=$(q "$db" "
	WITH c AS (SELECT id FROM popsell.contacts WHERE id <= $n),
	     t AS (SELECT contact_id AS id, reason FROM popsell.contact_tombstones),
	     ok AS (SELECT coalesce(sum(affected) FILTER (WHERE rule = 'contact_opted_out'), 0) AS opted,
	                   coalesce(sum(affected) FILTER (WHERE rule = 'contact_never_invited'), 0) AS never
	              FROM popsell.maintenance_runs WHERE failed_sqlstate IS NULL)
	SELECT concat_ws(' ',
	  'both=' || (SELECT count(*) FROM c JOIN t USING (id)),
	  'opted_lost=' || (SELECT count(*) FROM generate_series(1, $n1) g(id)
	                     WHERE NOT EXISTS (SELECT 1 FROM c WHERE c.id = g.id)
	                       AND NOT EXISTS (SELECT 1 FROM t WHERE t.id = g.id)),
	  'never_tombstoned=' || (SELECT count(*) FROM t WHERE t.id > $n1),
	  'opted_runs_mismatch=' || ((SELECT count(*) FROM t WHERE reason = 'contact_opted_out') - (SELECT opted FROM ok)),
	  'never_runs_mismatch=' || (($n2 - (SELECT count(*) FROM c WHERE id > $n1)) - (SELECT never FROM ok)),
	  'ledger_nowhere=' || (SELECT count(*) FROM popsell.consent_events e
	                         WHERE NOT EXISTS (SELECT 1 FROM popsell.contacts x WHERE x.id = e.contact_id)
	                           AND NOT EXISTS (SELECT 1 FROM popsell.contact_tombstones x WHERE x.id = e.contact_tombstone_id)),
	  'ledger_kept_wrong=' || ((SELECT count(*) FROM popsell.consent_events)
	                           - ($n1 + (SELECT count(*) FROM c WHERE id > $n1))),
	  'interactions_nowhere=' || (SELECT count(*) FROM popsell.interactions e
	                         WHERE NOT EXISTS (SELECT 1 FROM popsell.contacts x WHERE x.id = e.contact_id)
	                           AND NOT EXISTS (SELECT 1 FROM popsell.contact_tombstones x WHERE x.id = e.contact_tombstone_id)),
	  'sales_nowhere=' || (SELECT count(*) FROM popsell.sales e
	                         WHERE NOT EXISTS (SELECT 1 FROM popsell.contacts x WHERE x.id = e.contact_id)
	                           AND NOT EXISTS (SELECT 1 FROM popsell.contact_tombstones x WHERE x.id = e.contact_tombstone_id)),
	  'erasure_context=' || (SELECT count(*) FROM popsell.erasure_context))")
	expect_eq "$what: invariants" "$got" \
		"both=0 opted_lost=0 never_tombstoned=0 opted_runs_mismatch=0 never_runs_mismatch=0 ledger_nowhere=0 ledger_kept_wrong=0 interactions_nowhere=0 sales_nowhere=0 erasure_context=0"
	got=$(q "$db" "SELECT count(*) FILTER (WHERE NOT ok) FROM (
	                 SELECT bt_index_check(i.indexrelid, true) IS NOT NULL AS ok
	                   FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	                   JOIN pg_am a ON a.oid = c.relam AND a.amname = 'btree'
	                  WHERE c.relnamespace = 'popsell'::regnamespace) x" 2>&1) || true
	expect_eq "$what: popsell btree indexes pass amcheck" "$got" "0"
}
state() {
	q "$db" "SELECT (SELECT count(*) FROM popsell.contacts) || ' live, '
	         || (SELECT count(*) FROM popsell.contact_tombstones) || ' tombstones, '
	         || (SELECT count(DISTINCT run_id) FROM popsell.maintenance_runs) || ' runs recorded'"
}

# Start a run and wait until it is busy; print the backend pid.
start_run() {
	psql -X -q -d "$db" -c "SELECT * FROM popsell.run_maintenance('2230-01-01')" >"$tmp/$1.log" 2>&1 &
	runner=$!
	pid=""
	for _ in $(seq 1 100); do
		pid=$(q "$db" "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND state = 'active'
		                 AND query LIKE '%run_maintenance(''2230-01-01'')%' AND pid <> pg_backend_pid()")
		[ -n "$pid" ] && break
		sleep 0.1
	done
	[ -n "$pid" ] || fail "the run did not start"
	sleep "${CRASH_DELAY:-1.5}"
}

check "before any run"

# 1. pg_terminate_backend
start_run run1
expect_eq "terminate" "$(q "$db" "SELECT pg_terminate_backend($pid)")" "t"
wait "$runner" || true
grep -q 'terminat' "$tmp/run1.log" || fail "run 1 was not killed mid-way (make it longer): $(cat "$tmp/run1.log")"
echo "after the kill: $(state)"
check "after pg_terminate_backend"
expect_eq "the killed run left no record" "$(q "$db" "SELECT count(*) FROM popsell.maintenance_runs")" "0"

# 2. immediate shutdown (no checkpoint, crash recovery at restart)
start_run run2
as_owner "$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null
wait "$runner" || true
grep -q 'terminat\|server closed\|connection' "$tmp/run2.log" || fail "run 2 was not cut mid-way: $(cat "$tmp/run2.log")"
start
grep -q 'database system was interrupted\|redo' "$tmp/server.log" || fail "no crash recovery in the server log"
echo "after the crash and recovery: $(state)"
check "after pg_ctl -m immediate and restart"
expect_eq "the crashed run left no record" "$(q "$db" "SELECT count(*) FROM popsell.maintenance_runs")" "0"

# 3. the next run completes the work
got=$(q "$db" "SELECT string_agg(rule || '=' || affected, ' ' ORDER BY rule) FROM popsell.run_maintenance('2230-01-02')
               WHERE rule IN ('contact_opted_out', 'contact_never_invited')")
expect_eq "the next run does it all" "$got" "contact_never_invited=$n2 contact_opted_out=$n1"
echo "after the next run: $(state)"
check "after the next run"
expect_eq "every opted-out contact tombstoned" \
	"$(q "$db" "SELECT count(*) FROM popsell.contact_tombstones WHERE reason = 'contact_opted_out' AND contact_id <= $n1")" "$n1"
expect_eq "no contact left" "$(q "$db" "SELECT count(*) FROM popsell.contacts")" "0"
expect_eq "interactions and sales kept for the tombstoned only" \
	"$(q "$db" "SELECT (SELECT count(*) FROM popsell.interactions) || ' ' || (SELECT count(*) FROM popsell.sales)")" \
	"$(q "$db" "SELECT (SELECT count(*) FROM generate_series(1, $n, 10) i WHERE i <= $n1) || ' '
	                   || (SELECT count(*) FROM generate_series(1, $n, 50) i WHERE i <= $n1)")"
expect_eq "a further run does nothing" "$(q "$db" "SELECT sum(affected) FROM popsell.run_maintenance('2230-01-02')")" "0"
echo "701_crash passed ($n contacts, $n_int interactions, $n_sales sales)"
