# tools/common.sh: shared set-up for tools/test and tools/demo (sourced).
# shellcheck shell=bash
#
# Installs the Debian packages popsell needs when they are missing, copies
# the working tree to a scratch directory (so a run never writes into the
# checkout and two runs never share build products), builds it there and
# installs it.  Callers set `set -euo pipefail` before sourcing.

PS_PG_MAJOR=15
PS_PG_BIN="/usr/lib/postgresql/${PS_PG_MAJOR}/bin"
PS_PACKAGES=(
	"postgresql-${PS_PG_MAJOR}"
	"postgresql-server-dev-${PS_PG_MAJOR}"
	"postgresql-${PS_PG_MAJOR}-cron"
	"postgresql-${PS_PG_MAJOR}-pgtap"
	libtap-parser-sourcehandler-pgtap-perl
	libssl-dev
	sqlsmith
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
