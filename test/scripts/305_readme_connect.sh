#!/usr/bin/env bash
# 305_readme_connect: the README's multi-brand snippet (section "Several
# brands in one cluster", the first sql block) leaves the retention job's
# login able to connect.  The snippet is run as written on a scratch
# database (brand_a renamed, its example login roles created for the
# run); then popsell_maintenance must have CONNECT on it, really connect
# and run the retention job, which records a successful run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=test/scripts/lib.sh
source "$here/lib.sh"
tree="${POPSELL_TREE:-$(cd "$here/../.." && pwd)}"
readme="$tree/README.md"
tmp="${POPSELL_TEST_TMP:-$(mktemp -d)}"
db=t305_brand

# The first ```sql block after the section heading.
awk '/^### Several brands in one cluster/ { s = 1; next }
     s == 1 && /^```sql$/ { s = 2; next }
     s == 2 && /^```$/ { exit }
     s == 2 { print }' "$readme" >"$tmp/snippet.sql"
grep -q 'REVOKE CONNECT' "$tmp/snippet.sql" || fail "no multi-brand CONNECT snippet found in README.md"
sed -i "s/\bbrand_a\b/$db/g" "$tmp/snippet.sql"

fresh_db "$db"
q "$db" 'SET client_min_messages = warning' 'CREATE EXTENSION popsell CASCADE' >/dev/null
# the snippet's example login roles (every name it grants to but popsell's)
roles=$(grep -o 'TO .*;' "$tmp/snippet.sql" | sed 's/^TO //; s/;$//' | tr ',' '\n' | tr -d ' ' |
	grep -v '^popsell_' | grep -v '^PUBLIC$' || true)
for r in $roles; do
	q "$db" "SET client_min_messages = warning" "DROP ROLE IF EXISTS $r" "CREATE ROLE $r" >/dev/null
done
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$tmp/snippet.sql" >/dev/null
expect_eq "popsell_maintenance may connect" \
	"$(q "$db" "SELECT has_database_privilege('popsell_maintenance', '$db', 'CONNECT')")" t
# A real connection as the job's login, as pg_cron would make it (trust or
# password auth permitting): the run is recorded as a success.
if psql -X -q -A -t -U popsell_maintenance -d "$db" -c 'SELECT 1' >/dev/null 2>&1; then
	psql -X -q -A -t -v ON_ERROR_STOP=1 -U popsell_maintenance -d "$db" \
		-c 'SELECT count(*) FROM popsell.run_maintenance()' >/dev/null
	expect_eq "the job ran as popsell_maintenance" \
		"$(q "$db" "SELECT count(*) FROM popsell.maintenance_status WHERE last_outcome = 'done' AND last_run_by = 'popsell_maintenance'")" \
		"$(q "$db" "SELECT count(*) FROM popsell.maintenance_rules()")"
else
	echo "skip: this cluster's authentication does not let popsell_maintenance log in without a password"
fi
dropdb "$db"
for r in $roles; do
	q postgres "SET client_min_messages = warning" "DROP ROLE IF EXISTS $r" >/dev/null
done
