# tools/common.sh: shared set-up for tools/test and tools/demo (sourced).
# shellcheck shell=bash
#
# Installs the Debian packages popsell needs when they are missing, copies
# the working tree to a scratch directory (so a run never writes into the
# checkout and two runs never share build products), builds it there and
# installs it.  Callers set `set -euo pipefail` before sourcing.
#
# PS_TARGET (exported by tools/test) names the PostgreSQL to use: 15 is
# Debian's packages, run under pg_virtualenv; 17, 18 and 15-cassert are
# private builds by tools/pg-build under /var/cache/popsell/pg-TARGET, run
# in a cluster started by ps_private_cluster.

PS_TARGET="${PS_TARGET:-15}"
PS_PG_MAJOR="${PS_TARGET%%-*}"
if [ "$PS_TARGET" = 15 ]; then
	PS_PG_BIN="/usr/lib/postgresql/${PS_PG_MAJOR}/bin"
else
	PS_PG_BIN="${POPSELL_CACHE:-/var/cache/popsell}/pg-${PS_TARGET}/bin"
	# psql, createdb, pg_prove's psql: all from the build under test.
	PATH="${PS_PG_BIN}:${PATH}"
fi
export PS_TARGET PS_PG_BIN PATH
# Debian's PostgreSQL 15 packages are installed for every target: they
# bring the postgres user, pg_virtualenv and pg_prove's dependencies.
PS_PACKAGES=(
	postgresql-15
	postgresql-server-dev-15
	postgresql-15-cron
	postgresql-15-pgtap
	libtap-parser-sourcehandler-pgtap-perl
	libssl-dev
	libicu-dev
	sqlsmith
	pgbouncer
	python3-psycopg
	# test/scripts/405_report_chromium.sh renders the compliance report
	chromium
	python3
)
# Server settings of every throwaway cluster: pg_cron preloaded, as in
# production, with its jobs run by background workers; prepared
# transactions allowed (the ledger test uses PREPARE TRANSACTION).
# shellcheck disable=SC2034 # used by tools/test and tools/demo
PS_CLUSTER_OPTS=(
	-o "shared_preload_libraries=pg_cron"
	-o "cron.database_name=postgres"
	-o "cron.use_background_workers=on"
	-o "max_worker_processes=32"
	-o "max_prepared_transactions=10"
)

# Deterministic messages, sorting and a UTF8 server encoding (the email
# normalization needs Unicode NFC); C.UTF-8 exists on every Debian system.
export LANG=C.UTF-8 LC_ALL=C.UTF-8
export PG_CONFIG="${PS_PG_BIN}/pg_config"

PS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

ps_say() {
	printf '==> %s\n' "$*"
}

ps_die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# Run a command as root: directly when we are root, else through sudo.
ps_as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		ps_die "need root (or sudo) to run: $*"
	fi
}

ps_package_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Install the packages that are missing; do nothing (and touch no network)
# when all are there.
ps_install_packages() {
	local missing=() p
	for p in "${PS_PACKAGES[@]}"; do
		ps_package_installed "$p" || missing+=("$p")
	done
	if [ "${#missing[@]}" -eq 0 ]; then
		return 0
	fi
	ps_say "installing ${missing[*]}"
	ps_as_root env DEBIAN_FRONTEND=noninteractive apt-get -qq update
	ps_as_root env DEBIAN_FRONTEND=noninteractive apt-get -qq -y \
		--no-install-recommends install "${missing[@]}" >/dev/null
}

# Make the PostgreSQL of PS_TARGET available: nothing to do for Debian's
# packages, else build it once (tools/pg-build caches it).
ps_prepare_target() {
	if [ "$PS_TARGET" != 15 ]; then
		ps_as_root "$PS_ROOT/tools/pg-build" "$PS_TARGET"
	fi
}

# Run a command as the postgres OS user when we are root.
ps_as_postgres() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# ps_private_cluster DIR CMD...: run CMD against a throwaway cluster of the
# private build, in DIR (created, then left to the caller to remove), the
# way pg_virtualenv runs it for Debian's packages: initdb with a random
# password, the PS_CLUSTER_OPTS settings, TCP on localhost at a free port,
# the Unix socket in DIR, and PGHOST, PGPORT, PGUSER, PGPASSWORD and
# PGDATABASE exported.  Shell tests also get PS_PGDATA and PS_SERVER_LOG.
# Returns CMD's exit status.
ps_private_cluster() {
	local dir="$1"
	shift
	local data="$dir/data" sock="$dir/socket" log="$dir/server.log"
	local opts=() o port tries rc
	mkdir -p "$sock"
	PGPASSWORD=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
	printf '%s\n' "$PGPASSWORD" >"$dir/pwfile"
	if [ "$(id -u)" -eq 0 ]; then
		chown -R postgres:postgres "$dir"
	fi
	if ! ps_as_postgres "$PS_PG_BIN/initdb" -D "$data" -U postgres \
		--auth=scram-sha-256 --pwfile="$dir/pwfile" -E UTF8 \
		--locale=C.UTF-8 >"$dir/initdb.log" 2>&1; then
		cat "$dir/initdb.log"
		return 1
	fi
	rm -f "$dir/pwfile"
	# PS_CLUSTER_OPTS holds pg_virtualenv's "-o name=value" pairs.  A build
	# without pg_cron (tools/pg-build explains why) runs without it.
	for o in "${PS_CLUSTER_OPTS[@]}"; do
		case "$o" in
		-o) ;;
		shared_preload_libraries=pg_cron | cron.*)
			if [ -e "$("$PG_CONFIG" --pkglibdir)/pg_cron.so" ]; then
				opts+=("-c $o")
			fi
			;;
		*) opts+=("-c $o") ;;
		esac
	done
	if [ ! -e "$("$PG_CONFIG" --pkglibdir)/pg_cron.so" ]; then
		ps_say "this build has no pg_cron: the cluster runs without it"
	fi
	for tries in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 20000))
		# Something answers there: try another port.
		if (: </dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
			continue
		fi
		if ps_as_postgres "$PS_PG_BIN/pg_ctl" -D "$data" -l "$log" -w -t 120 \
			-o "-c listen_addresses=localhost -c port=$port -c unix_socket_directories=$sock -c cluster_name=popsell-$PS_TARGET ${opts[*]}" \
			start >/dev/null; then
			break
		fi
		tail -n 5 "$log"
		if [ "$tries" -eq 5 ]; then
			return 1
		fi
	done
	rc=0
	PGHOST=localhost PGPORT="$port" PGUSER=postgres PGDATABASE=postgres \
		PGPASSWORD="$PGPASSWORD" PS_PGDATA="$data" PS_SERVER_LOG="$log" \
		"$@" || rc=$?
	ps_private_cluster_stop "$dir"
	return "$rc"
}

# Stop the cluster of ps_private_cluster DIR if it still runs.
ps_private_cluster_stop() {
	if [ -f "$1/data/postmaster.pid" ]; then
		ps_as_postgres "$PS_PG_BIN/pg_ctl" -D "$1/data" -m fast -w stop \
			>/dev/null 2>&1 || true
	fi
}

# Copy the working tree (tracked and untracked files, not ignored ones, so
# uncommitted work is tested) into $1.  POPSELL_COMMIT=<rev> copies that
# commit instead (git archive), e.g. to test HEAD while editing.
ps_stage_tree() {
	local dest="$1"
	mkdir -p "$dest"
	if [ -n "${POPSELL_COMMIT:-}" ]; then
		git -C "$PS_ROOT" archive --format=tar "$POPSELL_COMMIT" | tar -xf - -C "$dest"
	elif git -C "$PS_ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		(
			cd "$PS_ROOT" || exit 1
			git ls-files -z --cached --others --exclude-standard |
				while IFS= read -r -d '' f; do
					# Skip tracked files deleted in the working tree.
					if [ -e "$f" ]; then printf '%s\0' "$f"; fi
				done |
				tar --null -T - -cf -
		) | tar -xf - -C "$dest"
	else
		tar -C "$PS_ROOT" --exclude .git -cf - . | tar -xf - -C "$dest"
	fi
	# Keep the generated files as the checkout has them: the build may
	# remake them, and test/scripts/003_generated_files.sh compares.
	mkdir -p "$dest/.pristine"
	cp "$dest"/popsell--*.sql "$dest/.pristine/"
	if [ -f "$dest/doc/reference.md" ]; then
		cp "$dest/doc/reference.md" "$dest/.pristine/"
	fi
	# Build products never come from the checkout.
	rm -rf "$dest/results" "$dest/output_iso" "$dest/regression.diffs" \
		"$dest/regression.out"
	find "$dest" \( -name '*.o' -o -name '*.so' -o -name '*.bc' \) -delete
}

# Build and install the tree in $1.  Warnings are errors (PG_CPPFLAGS).
ps_build_install() {
	local dir="$1" log="$1/build.log"
	ps_say "building popsell"
	if ! make -C "$dir" -j"$(nproc)" >"$log" 2>&1; then
		cat "$log"
		return 1
	fi
	if ! ps_as_root make -C "$dir" install >>"$log" 2>&1; then
		cat "$log"
		return 1
	fi
}

# The scratch directory is read by the server's postgres user in some tests
# (COPY FROM a file, for instance); give it the tree when we can.
ps_share_with_postgres() {
	if [ "$(id -u)" -eq 0 ] && id postgres >/dev/null 2>&1; then
		chown -R postgres:postgres "$1"
	fi
}
