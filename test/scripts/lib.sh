# test/scripts/lib.sh: helpers for the shell tests (sourced, not a test).
# shellcheck shell=bash
# The runner exports the cluster's PGHOST, PGPORT, PGUSER, PGPASSWORD and
# POPSELL_TEST_TMP, a scratch directory of the test's own.

# Fail the test with a message.
fail() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}

# Skip the test (the runner counts it as skipped, not passed): for what
# this server cannot offer, e.g. a build without pg_cron.
skip() {
	printf 'SKIP: %s\n' "$*"
	exit 77
}

# skip_without_pg_cron: skip unless the server preloads pg_cron.
skip_without_pg_cron() {
	case "$(psql -X -A -t -d postgres -c 'SHOW shared_preload_libraries')" in
	*pg_cron*) ;;
	*) skip "this PostgreSQL build has no pg_cron" ;;
	esac
}

# q DB SQL...: run statements, stop at the first error, print unaligned
# tuples only.
q() {
	local db="$1"
	shift
	local args=() s
	for s in "$@"; do
		args+=(-c "$s")
	done
	psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$db" "${args[@]}"
}

# fresh_db DB: drop DB if it exists, create it empty.
fresh_db() {
	dropdb --if-exists "$1" 2>/dev/null
	createdb "$1"
}

# expect_eq WHAT GOT WANT
expect_eq() {
	if [ "$2" != "$3" ]; then
		fail "$1: got '$2', expected '$3'"
	fi
	printf 'ok: %s\n' "$1"
}
