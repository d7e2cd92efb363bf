#!/usr/bin/env bash
# 006_backup_role: backups as the README's backup role, restores as the
# README says (SPEC S9).
#  1. pg_cron in the brand database (the pg_cron database here): pg_dump
#     run by a non-superuser role with BYPASSRLS and pg_read_all_data
#     gives a dump that, restored with pg_cron's objects left out as the
#     README shows, exits 0 without error output and gives identical table
#     digests, sequences, keys and hashes, both into a new database and
#     back into a database where pg_cron is present (where schedule_jobs()
#     then works).
#  2. Several brands in one cluster: the README's CONNECT snippet, run as
#     written, is kept by a `pg_dump -C` / `pg_restore -C` restore (and the
#     rows are identical).
set -euo pipefail
# shellcheck source=test/scripts/lib.sh
source "$(dirname "$0")/lib.sh"
skip_without_pg_cron

tree="${POPSELL_TREE:?}"
tmp="${POPSELL_TEST_TMP:?}"
crondb=$(q postgres "SHOW cron.database_name")
[ -n "$crondb" ] || fail "pg_cron is not preloaded"
copy=popsell_backup_006_copy
brand=brand_a # the README's snippet names it
password="pw-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
backup_role=popsell_backup
problems=0

cleanup() {
	q "$crondb" "SELECT count(cron.unschedule(jobid)) FROM cron.job WHERE jobname LIKE 'popsell_maintenance_%'" >/dev/null 2>&1 || true
	q "$crondb" "SET client_min_messages = warning" "DROP EXTENSION IF EXISTS popsell" "DROP SCHEMA IF EXISTS popsell" >/dev/null 2>&1 || true
	for d in "$copy" "$brand"; do
		dropdb --if-exists "$d" >/dev/null 2>&1 || true
	done
	for r in "$backup_role" ps_006_probe brand_a_admins brand_a_bi brand_a_webapp; do
		psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP ROLE IF EXISTS $r" >/dev/null 2>&1 || true
	done
}
trap cleanup EXIT

if [ "$(q "$crondb" "SELECT count(*) FROM pg_extension WHERE extname = 'popsell'")" != 0 ]; then
	fail "popsell is already installed in $crondb; this test needs that database for itself"
fi
if [ "$(q postgres "SELECT count(*) FROM pg_roles WHERE rolname = '$backup_role'")" != 0 ]; then
	fail "role $backup_role exists already; this test creates its own"
fi

# Rows in the tables a restore must give back, through the public interface.
populate() {
	q "$1" "
INSERT INTO popsell.ambassadors (kind, status, terms_accepted_at, first_name, email, city, postal_code)
VALUES ('customer', 'active', now() - interval '30 days', 'Amb0001', 'amb0001@example.test', 'Lyon', '69001'),
       ('sales_rep', 'active', now() - interval '20 days', 'Amb0002', 'amb0002@example.test', 'Paris', '75001');
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
SELECT a.id, 'crm_manual', 'Contact' || g, 'contact' || g || '@example.test'
  FROM popsell.ambassadors a, generate_series(1, 4) g WHERE a.first_name = 'Amb0001';
SELECT popsell.collect_contact(a.id, 'order', jsonb_build_object('first_name', 'Contact10', 'email', 'contact10@example.test'),
                               brand_optin_checked => true)
  FROM popsell.ambassadors a WHERE a.first_name = 'Amb0002';
SELECT popsell.send_invitation(id) FROM popsell.contacts WHERE email = 'contact1@example.test';
SELECT popsell.accept_invitation(id) FROM popsell.contacts WHERE email = 'contact1@example.test';
SELECT popsell.opt_out(id, true) FROM popsell.contacts WHERE email = 'contact2@example.test';
DELETE FROM popsell.contacts WHERE email = 'contact3@example.test';
SELECT count(*) FROM popsell.run_maintenance()" >/dev/null
}

# One line per table (count and digest of its rows), sequence, the
# settings row, the keys and a keyed hash.
snapshot() {
	local db="$1" t parts=() sql
	while IFS= read -r t; do
		parts+=("SELECT 'table $t', count(*) || ' ' || coalesce(md5(string_agg(r, E'\\n' ORDER BY r)), '-')
		           FROM (SELECT x::text AS r FROM popsell.\"$t\" x) s")
	done < <(q "$db" "SELECT relname FROM pg_class WHERE relnamespace = 'popsell'::regnamespace AND relkind IN ('r', 'p') ORDER BY 1")
	while IFS= read -r t; do
		parts+=("SELECT 'sequence $t', last_value || ' ' || is_called FROM popsell.\"$t\"")
	done < <(q "$db" "SELECT relname FROM pg_class WHERE relnamespace = 'popsell'::regnamespace AND relkind = 'S' ORDER BY 1")
	parts+=("SELECT 'hash_email', encode(popsell.hash_email('contact1@example.test'), 'hex')")
	sql=$(printf '%s\nUNION ALL\n' "${parts[@]}")
	q "$db" "${sql%UNION ALL*}"
}

compare() {
	local what="$1" want="$2" got="$3"
	if [ "$got" != "$want" ]; then
		echo "$what differs (< source, > restored):"
		diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") | grep '^[<>]' | head -n 30 || true
		problems=$((problems + 1))
	else
		echo "ok: $what: same rows, sequences, keys and hashes ($(wc -l <<<"$got") checks)"
	fi
}

# quiet RUN: run, fail the check on a non-zero exit or any error output
checked() {
	local what="$1"
	shift
	if ! "$@" 2>"$tmp/err"; then
		echo "$what exited non-zero"
		problems=$((problems + 1))
	fi
	if [ -s "$tmp/err" ]; then
		echo "$what wrote errors:"
		head -n 20 "$tmp/err"
		problems=$((problems + 1))
	fi
}

# --- the backup role, as the README creates it -------------------------------
q postgres "CREATE ROLE $backup_role LOGIN BYPASSRLS PASSWORD '$password'" \
	"GRANT pg_read_all_data TO $backup_role" >/dev/null
as_backup=(env PGUSER="$backup_role" PGPASSWORD="$password")

# --- 1. pg_cron in the brand database ------------------------------------------
q "$crondb" "SET client_min_messages = warning" "CREATE EXTENSION IF NOT EXISTS pg_cron" \
	"DROP SCHEMA IF EXISTS popsell" "CREATE EXTENSION popsell CASCADE" >/dev/null
populate "$crondb"
q "$crondb" "SELECT popsell.schedule_jobs('17 3 * * *')" >/dev/null
want=$(snapshot "$crondb")
grep -q "^table contacts|[1-9]" <<<"$want" || fail "the source has no contacts: $want"

checked "pg_dump -Fc as $backup_role" "${as_backup[@]}" pg_dump -Fc -f "$tmp/brand.dump" "$crondb"
grep -q "TABLE DATA popsell contacts" <(pg_restore -l "$tmp/brand.dump") || fail "the dump holds no contacts data"
# the README's restore: pg_cron's own objects left out
pg_restore -l "$tmp/brand.dump" | grep -v -E ' (pg_cron|cron) ' >"$tmp/brand.list"
fresh_db "$copy"
checked "pg_restore -L into a new database" pg_restore -L "$tmp/brand.list" -d "$copy" "$tmp/brand.dump"
compare "$copy" "$want" "$(snapshot "$copy")"

# back into a database where pg_cron is present: uninstall (README order),
# then restore and schedule again
q "$crondb" "SET client_min_messages = warning" "DROP EXTENSION popsell" "DROP SCHEMA popsell" >/dev/null
expect_eq "popsell jobs after DROP EXTENSION" "$(q "$crondb" "SELECT count(*) FROM cron.job WHERE jobname LIKE 'popsell_maintenance_%'")" 0
checked "pg_restore -L into a database with pg_cron" pg_restore -L "$tmp/brand.list" -d "$crondb" "$tmp/brand.dump"
compare "$crondb (restored)" "$want" "$(snapshot "$crondb")"
job=$(q "$crondb" "SELECT popsell.schedule_jobs('17 3 * * *')")
expect_eq "schedule_jobs() after the restore" \
	"$(q "$crondb" "SELECT username || ' ' || command FROM cron.job WHERE jobid = ${job:-0}")" \
	"popsell_maintenance SELECT popsell.run_maintenance()"
q "$crondb" "SET client_min_messages = warning" "DROP EXTENSION popsell" "DROP SCHEMA popsell" >/dev/null

# --- 2. the CONNECT restriction of several brands -------------------------------
fresh_db "$brand"
q "$brand" "SET client_min_messages = warning" "CREATE EXTENSION popsell CASCADE" >/dev/null
populate "$brand"
awk '/revoke CONNECT and grant it per database/ {found = 1}
     found && /^```sql$/ {inblock = 1; next}
     inblock && /^```$/ {exit}
     inblock {print}' "$tree/README.md" >"$tmp/connect.sql"
grep -q "REVOKE CONNECT ON DATABASE brand_a FROM PUBLIC" "$tmp/connect.sql" || fail "no CONNECT snippet found in README.md"
checked "the README's CONNECT snippet as written" psql -X -q -v ON_ERROR_STOP=1 -d "$brand" -f "$tmp/connect.sql"
q postgres "CREATE ROLE ps_006_probe LOGIN" "GRANT CONNECT ON DATABASE $brand TO $backup_role" >/dev/null
connect_grants() {
	q postgres "SELECT string_agg(r || '=' || has_database_privilege(r, '$brand', 'CONNECT'), ' ' ORDER BY r)
	              FROM unnest(ARRAY['ps_006_probe', 'brand_a_admins', 'brand_a_bi', 'brand_a_webapp',
	                                'popsell_maintenance', '$backup_role']) r"
}
grants=$(connect_grants)
expect_eq "CONNECT after the snippet" "$grants" \
	"brand_a_admins=true brand_a_bi=true brand_a_webapp=true popsell_backup=true popsell_maintenance=true ps_006_probe=false"
want=$(snapshot "$brand")
checked "pg_dump -C -Fc as $backup_role" "${as_backup[@]}" pg_dump -C -Fc -f "$tmp/brand_a.dump" "$brand"
dropdb "$brand"
checked "pg_restore -C" pg_restore -C -d postgres "$tmp/brand_a.dump"
expect_eq "CONNECT after pg_restore -C" "$(connect_grants)" "$grants"
compare "$brand (restored with -C)" "$want" "$(snapshot "$brand")"

if [ "$problems" -gt 0 ]; then
	fail "$problems problem(s)"
fi
echo "006_backup_role passed"
