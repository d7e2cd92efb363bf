#!/usr/bin/env bash
# 005_real_clients: popsell behind real clients (SPEC section 2).  Starts
# Debian's pgbouncer in transaction mode on the loopback of the test
# cluster and runs the README's psycopg 3 example (doc/examples/
# popsell_pooled.py, which the README must show verbatim) with Debian's
# python3-psycopg: 8 ambassadors at once through the pooler (reads,
# inserts, invitations), a client that forgets LOCAL on the same pool (its
# plain SET must identify nobody in any later transaction, as must a role
# default of the pooler's login role) and the mail worker, which LISTENs on a direct connection and sends the outbox.  Any
# row of another ambassador, any driver or protocol error, an unsent
# invitation or a worker never woken fails it.  The same run with the
# example made wrong on purpose (a session-level SET; psycopg's automatic
# prepared statements through pgbouncer below 1.21) must be caught.
set -euo pipefail
# shellcheck source=test/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

tree="${POPSELL_TREE:?}"
tmp="${POPSELL_TEST_TMP:?}"
db=popsell_clients_005
py=/usr/bin/python3 # Debian's interpreter, which has python3-psycopg
example="$tree/doc/examples/popsell_pooled.py"
start=$(date +%s)

command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || fail "pgbouncer is not installed"
pgbouncer=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
"$py" -c 'import psycopg' 2>/dev/null || fail "$py has no psycopg (python3-psycopg)"
echo "pgbouncer $("$pgbouncer" --version | head -n1 | awk '{print $2}'), psycopg $("$py" -c 'import psycopg; print(psycopg.__version__)')"

# The README shows the example file as it is.
"$py" - "$tree/README.md" "$example" <<'EOF' || fail "README.md does not show doc/examples/popsell_pooled.py verbatim"
import sys
readme, example = (open(p).read() for p in sys.argv[1:])
sys.exit(0 if "```python\n" + example + "```" in readme else 1)
EOF
echo "ok: the README shows doc/examples/popsell_pooled.py verbatim"

# --- the brand database ----------------------------------------------------
password="pw-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
fresh_db "$db"
q "$db" "SET client_min_messages = warning" "CREATE EXTENSION popsell CASCADE" >/dev/null
for r in ps_005_web ps_005_mailer; do
	q "$db" "SET client_min_messages = warning" "DROP ROLE IF EXISTS $r" "CREATE ROLE $r LOGIN PASSWORD '$password'" "GRANT popsell_app TO $r" >/dev/null
done
ambassadors=9
q "$db" "
INSERT INTO popsell.ambassadors (id, kind, status, terms_accepted_at, first_name, email)
SELECT g, 'customer', 'active', now(), 'Amb' || g, 'amb' || g || '@ambassadors.example.test'
  FROM generate_series(1, $ambassadors) g;
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
SELECT a, 'crm_manual', 'A' || a || '-' || k, 'a' || a || '-' || k || '@contacts.example.test'
  FROM generate_series(1, $ambassadors) a, generate_series(1, 5) k;
SELECT setval(pg_get_serial_sequence('popsell.ambassadors', 'id'), 100)" >/dev/null

cleanup() {
	if [ -f "$tmp/pgbouncer.pid" ]; then
		kill "$(cat "$tmp/pgbouncer.pid")" 2>/dev/null || true
	fi
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
	for r in ps_005_web ps_005_mailer; do
		psql -X -q -d postgres -c "DROP ROLE IF EXISTS $r" >/dev/null 2>&1 || true
	done
}
trap cleanup EXIT

# A role default for the identity, stored by a session where popsell was not
# loaded (PostgreSQL does not ask popsell then): every server connection the
# pooler opens carries it, and it must identify nobody.
out=$(psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "ALTER ROLE ps_005_web SET popsell.ambassador_id = '$ambassadors'" 2>&1) ||
	fail "ALTER ROLE ... SET popsell.ambassador_id in a session without popsell: $out"

# --- pgbouncer, transaction pooling, 2 server connections for 9 clients -----
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
server_host="${PGHOST:-/var/run/postgresql}"
server_port="${PGPORT:-5432}"
printf '"ps_005_web" "%s"\n' "$password" >"$tmp/userlist.txt"
cat >"$tmp/pgbouncer.ini" <<EOF
[databases]
$db = host=$server_host port=$server_port dbname=$db

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = md5
auth_file = $tmp/userlist.txt
pool_mode = transaction
default_pool_size = 2
max_client_conn = 50
ignore_startup_parameters = extra_float_digits,options
logfile = $tmp/pgbouncer.log
pidfile = $tmp/pgbouncer.pid
EOF
run_as=()
if [ "$(id -u)" -eq 0 ]; then
	chown postgres "$tmp" "$tmp/pgbouncer.ini" "$tmp/userlist.txt"
	run_as=(-u postgres) # pgbouncer refuses to run as root
fi
"$pgbouncer" -d "${run_as[@]}" "$tmp/pgbouncer.ini" || fail "pgbouncer did not start"
for _ in $(seq 1 50); do
	if PGPASSWORD="$password" psql -X -q -h 127.0.0.1 -p "$port" -U ps_005_web -d "$db" -c 'SELECT 1' >/dev/null 2>&1; then
		break
	fi
	sleep 0.1
done
expect_eq "a query through pgbouncer" \
	"$(PGPASSWORD="$password" psql -X -A -t -h 127.0.0.1 -p "$port" -U ps_005_web -d "$db" -c 'SELECT current_user')" ps_005_web

pooled="host=127.0.0.1 port=$port dbname=$db user=ps_005_web password=$password"
direct="host=$server_host port=$server_port dbname=$db user=ps_005_mailer password=$password"
ids=$(seq -s, 1 $((ambassadors - 1)))

run() {
	timeout 55 "$py" "$tree/test/scripts/005_real_clients.py" --example "$example" --variant "$1" \
		--pooled "$pooled" --direct "$direct" --ambassadors "$ids" --forgetful "$ambassadors" \
		--requests "${2:-60}"
}

# --- the README's pattern: no problem at all --------------------------------
rc=0
run readme || rc=$?
[ "$rc" -eq 0 ] || fail "the README's pattern through pgbouncer (exit $rc)"
expect_eq "unsent outbox rows after the worker" "$(q "$db" "SELECT count(*) FROM popsell.outbox WHERE sent_at IS NULL")" 0

# a transaction through the pooler that names nobody is nobody, whatever the
# role default and the forgetful client's plain SET left on the connections
seen=$(PGPASSWORD="$password" psql -X -A -t -q -h 127.0.0.1 -p "$port" -U ps_005_web -d "$db" \
	-c "BEGIN" -c "SET LOCAL ROLE popsell_ambassador" -c "SELECT count(*) FROM popsell.contacts" -c "COMMIT" 2>&1)
expect_eq "contacts seen through the pooler without naming an ambassador" "$seen" 0

# --- the same made wrong on purpose: the run must catch it ------------------
for variant in plain_set auto_prepare; do
	rc=0
	out=$(run "$variant" 30 2>&1) || rc=$?
	printf '%s\n' "$out" | head -n 6
	[ "$rc" -eq 1 ] || fail "the $variant variant was not caught (exit $rc)"
	echo "ok: the $variant variant is caught"
done

echo "005_real_clients passed in $(($(date +%s) - start)) s"
