-- tools/transition-table.sql: print popsell.transition_rules() as the
-- markdown table the README shows between
-- <!-- transition-table:start --> and <!-- transition-table:end -->.
--
--   psql -X -q -At -d DB -f tools/transition-table.sql
--
-- test/scripts/101_readme_transition_table.sh checks that the README's
-- table is exactly this output.
SELECT line FROM (
    SELECT 0 AS ord, '| field | from | to | paths | sources | why |' AS line
    UNION ALL
    SELECT 1, '|---|---|---|---|---|---|'
    UNION ALL
    SELECT 2 + (row_number() OVER ())::integer,
           format('| %s | %s | %s | %s | %s | %s |',
                  r.field, r.from_states, r.to_states, r.paths, r.sources,
                  replace(r.why, '|', '\|'))
      FROM popsell.transition_rules() AS r
) t
ORDER BY ord;
