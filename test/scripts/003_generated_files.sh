#!/usr/bin/env bash
# 003_generated_files: the committed build products match their sources.
# popsell--2.0.sql and each upgrade script are what make builds from
# src/sql/ and src/updates/; doc/reference.md is what tools/reference.sql
# prints from the catalog of a fresh install.  A drift means someone edited
# a built file, or changed a source or a COMMENT without running
# `make generated` and `make reference`.
set -euo pipefail
# shellcheck source=test/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

tree="${POPSELL_TREE:?}"
pristine="$tree/.pristine"
[ -d "$pristine" ] || fail "no copy of the checkout's generated files in $pristine"

# Rebuild every generated script in a scratch copy, from scratch.
copy="$POPSELL_TEST_TMP/tree"
mkdir -p "$copy"
cp -r "$tree/Makefile" "$tree/src" "$tree/tools" "$copy/"
rm -f "$copy"/popsell--*.sql
make -s -C "$copy" PG_CONFIG="${PG_CONFIG:-pg_config}" generated >/dev/null
n=0
for built in "$copy"/popsell--*.sql; do
	name="${built##*/}"
	[ -f "$pristine/$name" ] || fail "$name is built by make but not committed"
	if ! cmp -s "$built" "$pristine/$name"; then
		diff -u "$pristine/$name" "$built" | head -n 40 >&2 || true
		fail "committed $name differs from what make builds (run make generated and commit it)"
	fi
	n=$((n + 1))
done
expect_eq "generated install and upgrade scripts match their sources ($n)" "$((n >= 2))" 1

# The reference from the catalog of a fresh install.
db=popsell_reference
fresh_db "$db"
q "$db" 'CREATE EXTENSION popsell CASCADE' >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$tree/tools/reference.sql" >"$POPSELL_TEST_TMP/reference.md"
if ! cmp -s "$POPSELL_TEST_TMP/reference.md" "$pristine/reference.md"; then
	diff -u "$pristine/reference.md" "$POPSELL_TEST_TMP/reference.md" | head -n 40 >&2 || true
	fail "doc/reference.md differs from the catalog (run make reference against a fresh install and commit it)"
fi
expect_eq "doc/reference.md matches the catalog" ok ok
# Every function a role other than the owner may call has a comment.
expect_eq "public functions without COMMENT" "$(grep -c '^(no comment)$' "$pristine/reference.md" || true)" 0
dropdb "$db"
