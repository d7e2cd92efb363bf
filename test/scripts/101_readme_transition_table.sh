#!/usr/bin/env bash
# 101_readme_transition_table: the transition table in README.md (between
# <!-- transition-table:start --> and <!-- transition-table:end -->) is
# exactly popsell.transition_rules() rendered by tools/transition-table.sql,
# so the documentation cannot drift from the table the C trigger enforces
# (SPEC C2: "kept in C and documented").
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=test/scripts/lib.sh
source "$here/lib.sh"
tree="${POPSELL_TREE:-$(cd "$here/../.." && pwd)}"
readme="$tree/README.md"
tmp="${POPSELL_TEST_TMP:-$(mktemp -d)}"
db=popsell_t101_readme

[ -f "$readme" ] || fail "README.md is missing"
grep -q '^<!-- transition-table:start -->$' "$readme" || fail "README.md has no <!-- transition-table:start --> marker"
grep -q '^<!-- transition-table:end -->$' "$readme" || fail "README.md has no <!-- transition-table:end --> marker"

# The README's table: the non-blank lines between the markers.
sed -n '/^<!-- transition-table:start -->$/,/^<!-- transition-table:end -->$/p' "$readme" |
	sed '1d;$d' | sed '/^[[:space:]]*$/d' >"$tmp/readme.md"

fresh_db "$db"
q "$db" 'CREATE EXTENSION popsell CASCADE' >/dev/null
psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$db" -f "$tree/tools/transition-table.sql" >"$tmp/rules.md"
dropdb "$db"

[ "$(wc -l <"$tmp/rules.md")" -gt 2 ] || fail "popsell.transition_rules() rendered no rows"
if ! diff -u "$tmp/readme.md" "$tmp/rules.md"; then
	fail "README.md's transition table differs from popsell.transition_rules() (regenerate it with tools/transition-table.sql)"
fi
echo "ok: README transition table = popsell.transition_rules() ($(($(wc -l <"$tmp/rules.md") - 2)) rules)"
