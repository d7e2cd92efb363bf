#!/usr/bin/env bash
# 008_bulk_csv: bulk loading and the outbox backlog (README "Bulk loading
# from CSV files", "Monitoring").
#  1. COPY FROM into popsell.contacts by a role under row security, in a
#     session that has used popsell, is refused with a hint that names
#     popsell.import_contacts.
#  2. The README's CSV block, run as written by an app acting for an
#     ambassador, imports the file: new rows as private_import, a globally
#     opted-out email and a duplicate skipped and counted.
#  3. popsell.outbox_backlog counts unsent rows per kind with the oldest
#     one's time, holds no personal column, is readable by the job role and
#     vendor staff and not by the brand.
set -euo pipefail
# shellcheck source=test/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

tree="${POPSELL_TREE:?}"
tmp="${POPSELL_TEST_TMP:?}"
db=popsell_bulk_008
password="pw-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"

cleanup() {
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
	psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP ROLE IF EXISTS ps_008_app" >/dev/null 2>&1 || true
}
trap cleanup EXIT

fresh_db "$db"
q "$db" "SET client_min_messages = warning" "CREATE EXTENSION popsell CASCADE" \
	"DROP ROLE IF EXISTS ps_008_app" "CREATE ROLE ps_008_app LOGIN PASSWORD '$password'" "GRANT popsell_app TO ps_008_app" >/dev/null
amb=$(q "$db" "INSERT INTO popsell.ambassadors (kind, status, terms_accepted_at, first_name, email)
               VALUES ('customer', 'active', now(), 'Amb0001', 'amb0001@example.test') RETURNING id")
q "$db" "INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
         VALUES ($amb, 'crm_manual', 'Known', 'known@example.test'), ($amb, 'crm_manual', 'Gone', 'gone@example.test')" \
	"SELECT popsell.opt_out(id, true) FROM popsell.contacts WHERE email = 'gone@example.test'" \
	"DELETE FROM popsell.contacts WHERE email = 'gone@example.test'" >/dev/null
as_app=(env PGUSER=ps_008_app PGPASSWORD="$password")

# --- 1. COPY FROM under row security: the hint names import_contacts --------
out=$("${as_app[@]}" psql -X -q -d "$db" 2>&1 <<EOF || true
BEGIN;
SET LOCAL popsell.ambassador_id = '$amb';
SET LOCAL ROLE popsell_ambassador;
SELECT count(*) FROM popsell.my_contacts;   -- the session has used popsell (its library is loaded)
COPY popsell.contacts (first_name, email) FROM STDIN WITH (FORMAT csv);
Copied,copied@example.test
\.
ROLLBACK;
EOF
)
grep -q "ERROR:  COPY FROM is not supported on popsell.contacts under row security" <<<"$out" || fail "COPY FROM: unexpected answer: $out"
grep -q "HINT:.*popsell.import_contacts" <<<"$out" || fail "COPY FROM: the hint does not name import_contacts: $out"
echo "ok: COPY FROM into popsell.contacts is refused with a hint to import_contacts"
# outside row security (a superuser's migration) COPY still loads
printf '%s,crm_manual,Owner1,owner1@example.test\n' "$amb" |
	q "$db" "COPY popsell.contacts (ambassador_id, source, first_name, email) FROM STDIN WITH (FORMAT csv)" ||
	fail "a superuser's COPY FROM into popsell.contacts failed"
expect_eq "superuser COPY" "$(q "$db" "SELECT count(*) FROM popsell.contacts WHERE email = 'owner1@example.test'")" 1

# --- 2. the README's CSV block, as written --------------------------------------
cat >"$tmp/contacts.csv" <<'EOF'
first_name,last_name,email,mobile_phone,city
Csv1,One,csv1@example.test,+33600000001,Lyon
Csv2,Two,csv2@example.test,,Paris
Known,Again,Known@example.test,,
Gone,Again,gone@example.test,,
Csv3,Three,csv3@example.test,+33600000003,
EOF
awk '/^### Bulk loading from CSV files/ {found = 1}
     found && /^```sql$/ {inblock = 1; next}
     inblock && /^```$/ {exit}
     inblock {print}' "$tree/README.md" >"$tmp/block.sql"
grep -q "import_contacts(42" "$tmp/block.sql" || fail "no CSV block found in README.md"
sed -e "s/'42'/'$amb'/; s/import_contacts(42,/import_contacts($amb,/; s|'contacts.csv'|'$tmp/contacts.csv'|" \
	"$tmp/block.sql" >"$tmp/run.sql"
got=$(cd "$tmp" && "${as_app[@]}" psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$db" -f "$tmp/run.sql" 2>&1) ||
	fail "the README's CSV block failed: $got"
expect_eq "import_contacts result (imported|skipped_blacklisted|skipped_duplicate|skipped_invalid)" "$got" "3|1|1|0"
expect_eq "imported rows" \
	"$(q "$db" "SELECT string_agg(first_name || ':' || source || ':' || coalesce(mobile_phone, '-') || ':' || coalesce(city, '-'), ' ' ORDER BY email)
	              FROM popsell.contacts WHERE email LIKE 'csv%'")" \
	"Csv1:private_import:+33600000001:Lyon Csv2:private_import:-:Paris Csv3:private_import:+33600000003:-"

# --- 3. the outbox backlog ---------------------------------------------------------
expect_eq "columns of popsell.outbox_backlog" \
	"$(q "$db" "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'popsell.outbox_backlog'::regclass AND attnum > 0")" \
	"kind,unsent,oldest_created_at,oldest_age"
q "$db" "SELECT popsell.send_invitation(id) FROM popsell.contacts WHERE email IN ('csv1@example.test', 'csv2@example.test')" \
	"INSERT INTO popsell.outbox (kind, payload) VALUES ('delete_file', '{\"file_path\": \"a.jpg\"}')" >/dev/null
backlog_sql="SELECT string_agg(b.kind || '=' || b.unsent || ':' || (b.oldest_created_at IS NOT DISTINCT FROM
                    (SELECT min(o.created_at) FROM popsell.outbox o WHERE o.kind = b.kind AND o.sent_at IS NULL))
                    || ':' || (b.oldest_age IS NOT DISTINCT FROM now() - b.oldest_created_at), ' ' ORDER BY b.kind)
               FROM popsell.outbox_backlog b WHERE b.unsent > 0"
expect_eq "backlog" "$(q "$db" "$backlog_sql")" "invitation=2:true:true delete_file=1:true:true"
expect_eq "kinds listed" "$(q "$db" "SELECT count(*) = count(DISTINCT kind) AND count(*) = cardinality(enum_range(NULL::popsell.outbox_kind)) FROM popsell.outbox_backlog")" t
for r in popsell_maintenance popsell_technical popsell_account_team; do
	expect_eq "$r reads the backlog" "$(q "$db" "SET ROLE $r" "SELECT sum(unsent) FROM popsell.outbox_backlog")" 3
done
out=$(q "$db" "SET ROLE popsell_brand" "SELECT count(*) FROM popsell.outbox_backlog" 2>&1 || true)
grep -q "permission denied" <<<"$out" || fail "popsell_brand reads the backlog: $out"
q "$db" "UPDATE popsell.outbox SET sent_at = now() WHERE kind = 'invitation'" >/dev/null
expect_eq "backlog after sending the invitations" "$(q "$db" "SELECT string_agg(kind || '=' || unsent, ' ') FROM popsell.outbox_backlog WHERE unsent > 0")" "delete_file=1"

echo "008_bulk_csv passed"
