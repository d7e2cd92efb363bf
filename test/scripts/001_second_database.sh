#!/usr/bin/env bash
# 001_second_database: two brand databases in one cluster (SPEC sections 1
# and 2): both install popsell, reuse the cluster-wide roles, get their own
# hashing key, and dropping one leaves the other working.
set -euo pipefail
# shellcheck source=test/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

a=popsell_brand_a
b=popsell_brand_b
fresh_db "$a"
fresh_db "$b"

# CASCADE installs pgcrypto in each fresh database.
q "$a" 'CREATE EXTENSION popsell CASCADE' >/dev/null
q "$b" 'CREATE EXTENSION popsell CASCADE' >/dev/null
for db in "$a" "$b"; do
	expect_eq "$db: extensions" \
		"$(q "$db" "SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension WHERE extname IN ('popsell', 'pgcrypto')")" \
		"pgcrypto,popsell"
	expect_eq "$db: settings rows" "$(q "$db" 'SELECT count(*) FROM popsell.settings')" 1
	expect_eq "$db: run_maintenance rules" \
		"$(q "$db" 'SELECT count(*) FROM popsell.run_maintenance()')" \
		"$(q "$db" 'SELECT count(*) FROM popsell.maintenance_rules()')"
done

# One set of roles for the cluster.
expect_eq "roles are shared" \
	"$(q "$a" "SELECT count(*) FROM pg_roles WHERE rolname IN ('popsell_ambassador', 'popsell_brand', 'popsell_brand_bi', 'popsell_account_team', 'popsell_technical', 'popsell_app')")" \
	6

# Each brand hashes with its own secret key: the same email gives
# different keyed hashes in the two databases, and the same in one.
ha=$(q "$a" "SELECT encode(popsell.hash_email('someone@example.test'), 'hex')")
ha2=$(q "$a" "SELECT encode(popsell.hash_email('someone@example.test'), 'hex')")
hb=$(q "$b" "SELECT encode(popsell.hash_email('someone@example.test'), 'hex')")
expect_eq "hash is stable within a brand" "$ha2" "$ha"
[ -n "$ha" ] || fail "hash_email returned nothing"
if [ "$ha" = "$hb" ]; then
	fail "two brand databases hash emails with the same key"
fi
echo "ok: brands have distinct keys"

# Rows in one brand are invisible to the other (one database per brand).
q "$a" "INSERT INTO popsell.ambassadors (kind, status, terms_accepted_at, first_name, email)
        VALUES ('customer', 'active', now(), 'Amb0001', 'amb0001@example.test')" >/dev/null
expect_eq "$a: ambassadors" "$(q "$a" 'SELECT count(*) FROM popsell.ambassadors')" 1
expect_eq "$b: ambassadors" "$(q "$b" 'SELECT count(*) FROM popsell.ambassadors')" 0

# Dropping the extension in one brand leaves the other and the roles.
q "$b" 'DROP EXTENSION popsell' >/dev/null
expect_eq "$a: still installed after drop in $b" \
	"$(q "$a" 'SELECT count(*) FROM popsell.ambassadors')" 1
expect_eq "roles survive a drop" \
	"$(q "$a" "SELECT count(*) FROM pg_roles WHERE rolname = 'popsell_brand'")" 1
q "$b" 'CREATE EXTENSION popsell' >/dev/null
expect_eq "$b: reinstalled" "$(q "$b" 'SELECT count(*) FROM popsell.settings')" 1

dropdb "$a"
dropdb "$b"
echo "second database: all checks passed"
