#!/usr/bin/env bash
# 802_sqlsmith: random SQL (Debian's sqlsmith) against a populated brand
# database, as a login member of popsell_brand, bounded in time.
#
# What it checks:
# 1. No backend crash: sqlsmith's error report and the server log (when
#    the script can find it) hold no "terminated by signal", "server
#    process ... was terminated" or "server closed the connection"; the
#    statistics of the database were not discarded (PostgreSQL discards
#    them in crash recovery); the server still answers SELECT 1.
# 2. No leak to popsell_brand.  sqlsmith does not print result rows, so:
#    canary rows popsell_brand must not see are planted with distinctive
#    values (a restricted contact, a contact pending email confirmation, a
#    no_optin contact, an ambassador's password hash, a hashing key secret),
#    sqlsmith runs with --dump-all-queries, and every generated query is
#    executed again by psql as the same brand login (one transaction,
#    ON_ERROR_ROLLBACK, rolled back at the end, statement_timeout 2s); its
#    result rows are grepped for the canaries, in text and in bytea hex.
#    Failed queries return no rows, so this covers every successful query.
#    Limits: a query whose rows depend on random() or TABLESAMPLE may
#    return other rows the second time, and a value transformed beyond
#    recognition (md5(), encode(...,'base64')) is not recognized; leaks
#    through error messages are not checked here (802_bad_input checks
#    popsell's messages).  The pipeline is validated both ways: as the
#    superuser it finds all five canaries, as the brand it finds the
#    brand-visible marker and no canary.
# 3. The canaries are still there afterwards (sqlsmith's DML as the brand
#    could not touch rows the brand cannot see).
# Bounds: at most SMITH_SECONDS (default 90) of sqlsmith in total, runs of
# SMITH_QUERIES queries with fixed seeds plus one random seed (printed).
set -euo pipefail
# shellcheck source=test/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

command -v sqlsmith >/dev/null || fail "sqlsmith is not installed (tools/common.sh installs it)"

db=popsell_t802_smith
tmp="${POPSELL_TEST_TMP:-$(mktemp -d)}"
budget="${SMITH_SECONDS:-90}"
per_run="${SMITH_QUERIES:-2500}"
login=popsell_t802_smith_brand
pass="smith-$RANDOM$RANDOM"
fresh_db "$db"
q "$db" 'CREATE EXTENSION popsell CASCADE' >/dev/null

# --- data: visible rows and canaries ---------------------------------------
q "$db" "
UPDATE popsell.settings SET bcrypt_cost = 4;
INSERT INTO popsell.ambassadors (id, kind, status, terms_accepted_at, first_name, last_name, email, city, iban)
SELECT i, 'sales_rep', 'active', now(), 'Amb' || i, 'Smith', 'amb' || i || '@example.test', 'Lyon', 'FR76' || i
  FROM generate_series(1, 5) i;
INSERT INTO popsell.publications (ambassador_id, comment) SELECT i, 'post ' || i FROM generate_series(1, 5) i;
-- Brand-visible contacts (brand opt-in from an order form).
SELECT popsell.collect_contact(1 + i % 5, 'order',
           jsonb_build_object('first_name', 'ZQXVISIBLE' || i, 'email', 'zqxvisible' || i || '@example.test'),
           NULL, true, i % 2 = 0)
  FROM generate_series(1, 20) i;
-- Canary 1: restricted (art. 18) although brand-visible.
SELECT popsell.collect_contact(1, 'order',
           '{\"first_name\": \"ZQXFORBIDRESTRICTED\", \"email\": \"zqxforbid.restricted@example.test\"}', NULL, true);
SELECT popsell.restrict_subject('zqxforbid.restricted@example.test', true);
-- Canary 2: pending email confirmation (blog, boxes ticked).
SELECT popsell.collect_contact(2, 'blog',
           '{\"first_name\": \"ZQXFORBIDPENDING\", \"email\": \"zqxforbid.pending@example.test\"}', true, true);
-- Canary 3: no brand opt-in (entered by the ambassador).
INSERT INTO popsell.contacts (ambassador_id, source, first_name, last_name, email, city)
VALUES (3, 'crm_manual', 'ZQXFORBIDNOOPTIN', 'Noopt', 'zqxforbid.nooptin@example.test', 'ZQXFORBIDNOOPTINCITY');
-- Canary 4: an ambassador's password hash (bcrypt-shaped, distinctive).
UPDATE popsell.ambassadors
   SET password_hash = '\$2a\$04\$ZQXFORBIDPWHASH' || repeat('a', 53 - length('ZQXFORBIDPWHASH'))
 WHERE id = 4;
-- Canary 5: a hashing key secret.
INSERT INTO popsell.hash_keys (key_id, secret) VALUES (2, convert_to('ZQXFORBIDHASHKEY-0123456789', 'UTF8'));
-- Some activity around the visible contacts.
INSERT INTO popsell.interactions (contact_id, publication_id, kind)
SELECT c.id, 1, 'click' FROM popsell.contacts c WHERE c.first_name LIKE 'ZQXVISIBLE%';
INSERT INTO popsell.sales (contact_id, ambassador_id, amount)
SELECT c.id, c.ambassador_id, 10 FROM popsell.contacts c;
SELECT popsell.log_activity(1, 'login', '192.0.2.10', 'smith/1.0');
" >/dev/null

# Canary checks as the superuser (the owner's view of the data).
canary_count() {
	q "$db" "SELECT (SELECT count(*) FROM popsell.contacts WHERE first_name IN ('ZQXFORBIDRESTRICTED', 'ZQXFORBIDPENDING', 'ZQXFORBIDNOOPTIN'))
	              + (SELECT count(*) FROM popsell.ambassadors WHERE password_hash LIKE '\$2a\$04\$ZQXFORBIDPWHASH%')
	              + (SELECT count(*) FROM popsell.hash_keys WHERE secret = convert_to('ZQXFORBIDHASHKEY-0123456789', 'UTF8'))"
}
expect_eq "canaries planted" "$(canary_count)" 5

q "$db" "DROP ROLE IF EXISTS $login" >/dev/null
q "$db" "CREATE ROLE $login LOGIN PASSWORD '$pass' IN ROLE popsell_brand" >/dev/null
trap 'q "$db" "DROP OWNED BY $login; DROP ROLE IF EXISTS $login" >/dev/null 2>&1 || true' EXIT

# The grep: canary strings, in text and as bytea hex ('ZQXFORBID').
leaks_in() {
	grep -a -i -o -E 'zqxforbid[a-z]*|5a5158464f52424944[0-9a-f]*' "$1" | sort | uniq -c || true
}

# Re-execute a file of queries as USER (password PASSWORD), results in OUT.
replay() {
	local file="$1" out="$2" user="$3" password="$4"
	{
		echo '\set ON_ERROR_ROLLBACK on'
		echo 'BEGIN;'
		echo 'SET LOCAL statement_timeout = 2000;'
		cat "$file"
		echo
		echo 'ROLLBACK;'
	} >"$out.sql"
	PGPASSWORD="$password" psql -X -A -q -d "$db" -U "$user" -f "$out.sql" >"$out" 2>"$out.err" || true
}

# --- pipeline validation --------------------------------------------------
cat >"$tmp/control.sql" <<'SQL'
SELECT * FROM popsell.contacts;
SELECT * FROM popsell.brand_contacts;
SELECT * FROM popsell.ambassadors;
SELECT * FROM popsell.hash_keys;
SQL
replay "$tmp/control.sql" "$tmp/control.super" "$PGUSER" "${PGPASSWORD:-}"
expect_eq "as superuser the grep finds every canary" \
	"$(grep -a -c -E 'ZQXFORBID(RESTRICTED|PENDING|NOOPTIN)\||ZQXFORBIDPWHASH|5a5158464f52424944' "$tmp/control.super")" 5
replay "$tmp/control.sql" "$tmp/control.brand" "$login" "$pass"
[ "$(grep -a -c ZQXVISIBLE "$tmp/control.brand")" -ge 20 ] || fail "brand does not see its visible contacts"
expect_eq "as the brand the same queries show no canary" "$(leaks_in "$tmp/control.brand")" ""

# --- crash detectors: statistics and server log ---------------------------
commits_before=$(q "$db" "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
# The harness exports PS_SERVER_LOG for the clusters it starts itself.
log_file="${PS_SERVER_LOG:-}"
if [ -z "$log_file" ]; then
	log_file=$(q "$db" "SELECT CASE WHEN current_setting('logging_collector')::boolean
                               THEN current_setting('data_directory') || '/' || pg_current_logfile() END" || true)
fi
if [ -z "$log_file" ]; then
	cluster=$(q "$db" "SELECT replace(current_setting('cluster_name'), '/', '-')" || true)
	# Debian clusters log to /var/log/postgresql; pg_virtualenv's to a
	# log directory next to its PG_CLUSTER_CONF_ROOT.
	for f in "${PG_CLUSTER_CONF_ROOT:+${PG_CLUSTER_CONF_ROOT%/*}/log/postgresql-$cluster.log}" \
		"/var/log/postgresql/postgresql-$cluster.log"; do
		if [ -n "$cluster" ] && [ -n "$f" ] && [ -r "$f" ]; then
			log_file="$f"
			break
		fi
	done
fi
log_offset=0
if [ -n "$log_file" ] && [ -r "$log_file" ]; then
	log_offset=$(stat -c %s "$log_file")
	echo "server log: $log_file"
else
	log_file=""
	echo "server log: not readable here; relying on statistics and sqlsmith's report"
fi

# --- sqlsmith -------------------------------------------------------------
target="host=${PGHOST:-localhost} port=${PGPORT:-5432} dbname=$db user=$login password=$pass"
seeds=(1 2 3 4 5 6 $((RANDOM * 32768 + RANDOM)))
start=$(date +%s)
total=0
: >"$tmp/all.sql"
for seed in "${seeds[@]}"; do
	left=$((budget - ($(date +%s) - start)))
	if [ "$left" -le 5 ]; then
		break
	fi
	rc=0
	timeout "$left" sqlsmith --target="$target" --seed="$seed" --max-queries="$per_run" \
		--exclude-catalog --dump-all-queries --verbose \
		>"$tmp/smith.$seed.sql" 2>"$tmp/smith.$seed.err" || rc=$?
	# 124: the time budget ended the run.
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; then
		tail -n 20 "$tmp/smith.$seed.err"
		fail "sqlsmith seed $seed exited with $rc"
	fi
	n=$(grep -a -c -E '^(select|insert|update|delete|merge|with|WITH|MERGE) ' "$tmp/smith.$seed.sql" || true)
	queries=$(sed -nE 's/^queries: ([0-9]+).*/\1/p' "$tmp/smith.$seed.err" | tail -n1)
	errors=$(grep -a -m1 -oE 'error rate: [0-9.]+' "$tmp/smith.$seed.err" || true)
	echo "sqlsmith seed $seed: ${queries:-$n} queries generated ($errors)"
	if grep -a -q -i -E 'terminated by signal|was terminated|server closed the connection|crash of another server process' "$tmp/smith.$seed.err"; then
		grep -a -i -E 'terminated by signal|was terminated|server closed the connection|crash of another' "$tmp/smith.$seed.err" | head
		fail "sqlsmith seed $seed: the server crashed (reproduce: sqlsmith --seed=$seed --max-queries=$per_run --exclude-catalog)"
	fi
	total=$((total + ${queries:-$n}))
	cat "$tmp/smith.$seed.sql" >>"$tmp/all.sql"
	printf '\n;\n' >>"$tmp/all.sql"
done
echo "sqlsmith: $total queries in $(($(date +%s) - start))s"
[ "$total" -ge 1000 ] || fail "sqlsmith ran only $total queries"

# --- crash checks ---------------------------------------------------------
expect_eq "server answers" "$(q "$db" 'SELECT 1')" 1
commits_after=$(q "$db" "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
[ "$commits_after" -ge "$commits_before" ] ||
	fail "database statistics were reset during the run (crash recovery?): $commits_before -> $commits_after"
echo "ok: statistics kept ($commits_before -> $commits_after commits)"
if [ -n "$log_file" ]; then
	if tail -c +"$((log_offset + 1))" "$log_file" |
		grep -a -E 'terminated by signal|server process .* was terminated|all server processes terminated'; then
		fail "the server log reports a crashed backend"
	fi
	echo "ok: server log has no crashed backend"
fi

# --- leak check: replay every generated query as the brand ----------------
t0=$(date +%s)
replay "$tmp/all.sql" "$tmp/replay.out" "$login" "$pass"
rows=$(grep -a -c '' "$tmp/replay.out" || true)
echo "replay as $login: $rows output lines in $(($(date +%s) - t0))s"
leaks=$(leaks_in "$tmp/replay.out")
if [ -n "$leaks" ]; then
	echo "$leaks"
	fail "a query as popsell_brand returned a canary (queries in $tmp/all.sql)"
fi
echo "ok: no canary in the results of the replayed queries"

expect_eq "canaries intact after the run" "$(canary_count)" 5
dropdb "$db"
echo "sqlsmith: all checks passed ($total queries)"
