#!/bin/sh
# test/model/run_mutants.sh: show that the consent model's invariants can
# fail.  For each mutant (mutants/*.sql: a weakened rule, with the seeds
# to explore and the invariant expected to break), in a scratch database:
# install popsell, apply the mutant, run the model from those seeds
# (depth 2, the sample 103 uses), expect the PSM01 failure naming that
# invariant, then replay the failing script it printed (with the mutant
# still applied) and print the state it ends in.  C mutants
# (mutants/*.patch) need a rebuild: git apply, make install, then
#   MUTANT=mutants/X.patch SEEDS='{...}' EXPECT=I1 test/model/run_mutants.sh
# and git apply -R.  Uses PG* from the environment; creates and drops the
# database popsell_mutants.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
db=popsell_mutants
fail=0
run_one() {    # mutant-file seeds expect
    dropdb --if-exists "$db" 2>/dev/null; createdb "$db"
    psql -qX -d "$db" -c 'CREATE EXTENSION popsell CASCADE' >/dev/null 2>&1
    case $1 in *.sql) psql -qX -v ON_ERROR_STOP=1 -d "$db" -f "$1" >/dev/null ;; esac
    out=$(psql -qXAt -d "$db" 2>&1 <<SQL
BEGIN;
\ir $here/consent_model.sql
DO \$\$
BEGIN
    PERFORM consent_model.explore('$2'::int[], 2, 20);
    RAISE NOTICE 'NO FAILURE';
EXCEPTION WHEN SQLSTATE 'PSM01' THEN
    RAISE NOTICE '%', SQLERRM;
END \$\$;
ROLLBACK;
SQL
)
    script=$(printf '%s\n' "$out" | sed -n '/consent model: failing sequence/,/^ROLLBACK;$/p' | sed '1s/^.*NOTICE:  //')
    why=$(printf '%s\n' "$script" | sed -n 2p)
    echo "== $(basename "$1"): seeds $2"
    case $why in
        "-- $3:"*) echo "   model: $why" ;;
        *) echo "   EXPECTED $3, GOT: ${why:-$(printf '%s\n' "$out" | tail -3)}"; fail=1; return ;;
    esac
    echo "   replay (the printed script, mutant applied), final state:"
    printf '%s\n' "$script" | psql -qX -d "$db" 2>&1 | sed -n '/^ *id *|/,/rows)/p' | sed 's/^/     /'
}
if [ -n "${MUTANT:-}" ]; then
    run_one "$MUTANT" "$SEEDS" "$EXPECT"
else
    for m in "$here"/mutants/*.sql; do
        run_one "$m" "$(sed -n 's/^-- seeds: //p' "$m")" "$(sed -n 's/^-- expect: //p' "$m")"
    done
fi
dropdb --if-exists "$db"
exit $fail
