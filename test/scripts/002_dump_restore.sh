#!/usr/bin/env bash
# 002_dump_restore: backups work as DBAs run them (SPEC S9).  A brand
# database with rows in every table is dumped with `pg_dump -Fc` and
# restored with a plain `pg_restore -d`, and dumped as SQL and replayed with
# `pg_dump | psql`; both give back the same rows in every table (same count
# and same contents, so nothing was re-stamped or re-hashed), the same
# settings row, the same hashing key and the same sequence positions, with
# no error output; the restored blacklist blocks the same emails; and the
# lookup-key indexes match the restored lookup secret.
set -euo pipefail
# shellcheck source=test/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

src=popsell_dump_src
custom=popsell_dump_custom
plain=popsell_dump_plain
tmp="${POPSELL_TEST_TMP:?}"
problems=0

fresh_db "$src"
q "$src" 'CREATE EXTENSION popsell CASCADE' >/dev/null

# --- fill every table through the public interface ----------------------
# Each step runs on its own so one missing function does not hide the
# rest; any failed step fails the test at the end.
step() {
	local what="$1" sql="$2" err
	if ! err=$(q "$src" "$sql" 2>&1 >/dev/null); then
		echo "populate step failed: $what: $err"
		problems=$((problems + 1))
	fi
}

step "settings" "UPDATE popsell.settings SET deletion_grace = '10 days', community_name_format = 'initials'"
step "ambassadors" "
INSERT INTO popsell.ambassadors (kind, status, terms_accepted_at, first_name, last_name, email,
                                 city, postal_code, birth_date, last_login_at, created_at)
VALUES ('customer', 'active', now() - interval '300 days', 'Amb0001', 'Demo', 'amb0001@example.test',
        'Lyon', '69001', '1990-01-01', now() - interval '2 days', now() - interval '400 days'),
       ('sales_rep', 'active', now() - interval '200 days', 'Amb0002', 'Demo', 'amb0002@example.test',
        'Paris', '75001', '1985-06-15', now() - interval '1 day', now() - interval '300 days'),
       ('employee', 'active', now() - interval '100 days', 'Amb0003', 'Demo', 'amb0003@example.test',
        'Nantes', '44000', '1979-03-03', NULL, now() - interval '200 days')"
step "password" "SELECT popsell.set_password(id, 'Secret-0001') FROM popsell.ambassadors WHERE email = 'amb0001@example.test'"
step "social_grants" "INSERT INTO popsell.social_grants (ambassador_id, network, account_id)
                      SELECT id, 'instagram', 'ig-amb0001' FROM popsell.ambassadors WHERE email = 'amb0001@example.test'"
step "registration_whitelist" "INSERT INTO popsell.registration_whitelist (email_hash, key_id)
                               SELECT popsell.hash_email('amb0004@example.test'), max(key_id) FROM popsell.hash_keys"
step "contacts (plain insert)" "
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email, city, postal_code)
SELECT a.id, 'crm_manual', 'Contact' || lpad(g::text, 5, '0'), 'contact' || lpad(g::text, 5, '0') || '@example.test',
       'Lyon', '69002'
  FROM popsell.ambassadors a, generate_series(1, 5) g
 WHERE a.email = 'amb0001@example.test'"
step "contacts (collect_contact)" "
SELECT popsell.collect_contact(a.id, 'order',
           jsonb_build_object('first_name', 'Contact00010', 'email', 'contact00010@example.test'),
           brand_optin_checked => true),
       popsell.collect_contact(a.id, 'blog',
           jsonb_build_object('email', 'contact00011@example.test'),
           ambassador_optin_checked => true, brand_optin_checked => true, partners_optin_checked => true)
  FROM popsell.ambassadors a WHERE a.email = 'amb0001@example.test'"
step "brand_sync" "
SELECT popsell.collect_contact(a.id, 'brand_sync',
           jsonb_build_object('first_name', 'Contact00012', 'email', 'contact00012@example.test'),
           brand_optin_checked => true)
  FROM popsell.ambassadors a WHERE a.email = 'amb0002@example.test'"
step "confirm_email" "SELECT popsell.confirm_email(id, (SELECT o.payload->>'token' FROM popsell.outbox o WHERE o.contact_id = c.id AND o.kind = 'email_confirmation' ORDER BY o.id DESC LIMIT 1)) FROM popsell.contacts c WHERE email = 'contact00011@example.test'"
step "send_invitation" "SELECT popsell.send_invitation(id) FROM popsell.contacts WHERE email IN ('contact00001@example.test', 'contact00002@example.test')"
step "accept_invitation" "SELECT popsell.accept_invitation(id) FROM popsell.contacts WHERE email = 'contact00001@example.test'"
step "opt_out global" "SELECT popsell.opt_out(id, true) FROM popsell.contacts WHERE email = 'contact00003@example.test'"
step "email_callback" "SELECT popsell.email_callback('contact00004@example.test', 'hard_bounce')"
step "contests" "INSERT INTO popsell.contests (name, reuse_until) VALUES ('Summer contest', now() + interval '1 year')"
step "publications" "INSERT INTO popsell.publications (ambassador_id, comment)
                     SELECT id, 'New collection' FROM popsell.ambassadors WHERE email = 'amb0001@example.test'"
step "ugc" "INSERT INTO popsell.ugc (ambassador_id, contest_id, file_path)
            SELECT a.id, c.id, 'ambassadors/' || a.id || '/photo1.jpg'
              FROM popsell.ambassadors a, popsell.contests c WHERE a.email = 'amb0001@example.test'"
step "community_reactions" "INSERT INTO popsell.community_reactions (ambassador_id, publication_id, kind, body)
                            SELECT a.id, p.id, 'comment', 'Nice'
                              FROM popsell.ambassadors a, popsell.publications p WHERE a.email = 'amb0002@example.test'"
step "gamification" "INSERT INTO popsell.gamification (ambassador_id, score, level, badges)
                     SELECT id, 120, 2, ARRAY['starter'] FROM popsell.ambassadors WHERE email = 'amb0001@example.test'"
step "interactions" "INSERT INTO popsell.interactions (contact_id, publication_id, kind)
                     SELECT c.id, p.id, 'click' FROM popsell.contacts c, popsell.publications p
                      WHERE c.email = 'contact00001@example.test'"
step "sales" "INSERT INTO popsell.sales (contact_id, ambassador_id, amount, currency, products, channel)
              SELECT c.id, c.ambassador_id, 49.90, 'EUR', '[{\"sku\": \"SKU-1\"}]', 'online'
                FROM popsell.contacts c WHERE c.email = 'contact00001@example.test'"
step "activity_log" "SELECT popsell.log_activity(id, 'login', '192.0.2.10', 'demo-agent/1.0')
                       FROM popsell.ambassadors WHERE email = 'amb0001@example.test'"
step "contact erasure (tombstone)" "DELETE FROM popsell.contacts WHERE email = 'contact00005@example.test'"
step "ambassador erasure (tombstone)" "
INSERT INTO popsell.ambassadors (kind, status, terms_accepted_at, first_name, email, city, postal_code)
VALUES ('customer', 'active', now(), 'Amb0009', 'amb0009@example.test', 'Lille', '59000');
DELETE FROM popsell.ambassadors WHERE email = 'amb0009@example.test'"
step "maintenance_runs" "SELECT count(*) FROM popsell.run_maintenance()"

# Every SPEC table must hold rows, or the comparison below proves little.
spec_tables="settings hash_keys ambassadors social_grants registration_whitelist contacts
blacklist publications ugc contests community_reactions gamification interactions sales
activity_log consent_events outbox ambassador_tombstones contact_tombstones maintenance_runs"
mapfile -t tables < <(q "$src" "SELECT relname FROM pg_class
                                 WHERE relnamespace = 'popsell'::regnamespace AND relkind IN ('r', 'p')
                                 ORDER BY relname")
for t in "${tables[@]}"; do
	n=$(q "$src" "SELECT count(*) FROM popsell.\"$t\"")
	if [ "$n" -eq 0 ]; then
		if grep -qw -- "$t" <<<"$spec_tables"; then
			echo "source table popsell.$t is empty"
			problems=$((problems + 1))
		else
			echo "note: internal table popsell.$t is empty"
		fi
	fi
done
for t in $spec_tables; do
	if ! printf '%s\n' "${tables[@]}" | grep -qx -- "$t"; then
		echo "table popsell.$t does not exist"
		problems=$((problems + 1))
	fi
done

# --- dump and restore ----------------------------------------------------
fresh_db "$custom"
fresh_db "$plain"

if ! pg_dump -Fc -f "$tmp/src.dump" "$src" 2>"$tmp/dump_custom.err"; then
	echo "pg_dump -Fc failed"
	problems=$((problems + 1))
fi
if ! pg_restore -d "$custom" "$tmp/src.dump" 2>"$tmp/restore_custom.err"; then
	echo "pg_restore exited non-zero"
	problems=$((problems + 1))
fi
if ! pg_dump -f "$tmp/src.sql" "$src" 2>"$tmp/dump_plain.err"; then
	echo "pg_dump (plain) failed"
	problems=$((problems + 1))
fi
if ! psql -X -q -d "$plain" -f "$tmp/src.sql" >"$tmp/restore_plain.out" 2>"$tmp/restore_plain.err"; then
	echo "psql replay of the plain dump exited non-zero"
	problems=$((problems + 1))
fi
for f in dump_custom restore_custom dump_plain restore_plain; do
	if [ -s "$tmp/$f.err" ]; then
		echo "error output from $f:"
		head -n 40 "$tmp/$f.err"
		problems=$((problems + 1))
	fi
done

# --- compare ---------------------------------------------------------------
# One query per database: per table its row count and an order-independent
# digest of the rows' text, then every sequence's position (so restored
# tables hand out fresh ids), the settings row, the hashing keys and a
# keyed hash.
mapfile -t seqs < <(q "$src" "SELECT relname FROM pg_class
                                WHERE relnamespace = 'popsell'::regnamespace AND relkind = 'S'
                                ORDER BY relname")
parts=()
for t in "${tables[@]}"; do
	parts+=("SELECT 'table $t', count(*) || ' ' || coalesce(md5(string_agg(r, E'\\n' ORDER BY r)), '-')
	           FROM (SELECT x::text AS r FROM popsell.\"$t\" x) s")
done
for sq in "${seqs[@]}"; do
	parts+=("SELECT 'sequence $sq', last_value || ' ' || is_called FROM popsell.\"$sq\"")
done
parts+=("SELECT 'settings row', (SELECT s::text FROM popsell.settings s)")
parts+=("SELECT 'hash_keys rows', (SELECT string_agg(k::text, ' | ' ORDER BY k.key_id) FROM popsell.hash_keys k)")
parts+=("SELECT 'hash_email', encode(popsell.hash_email('contact00001@example.test'), 'hex')")
snapshot_sql=$(printf '%s\nUNION ALL\n' "${parts[@]}")
snapshot_sql="${snapshot_sql%UNION ALL*}"
if ! want=$(q "$src" "$snapshot_sql" 2>&1); then
	fail "cannot read the source database back: $want"
fi
for db in "$custom" "$plain"; do
	got=$(q "$db" "$snapshot_sql" 2>&1) || true
	if [ "$got" != "$want" ]; then
		echo "$db differs from $src (< source, > restored):"
		diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") | grep '^[<>]' | head -n 40 || true
		problems=$((problems + 1))
	else
		echo "ok: $db has the same rows, sequences, settings and keys ($(wc -l <<<"$got") checks)"
	fi
	# The restored blacklist still blocks: an ambassador import of the
	# globally opted-out email is skipped, a form entry of the hard-bounced
	# one gets that status (C3), under the restored key (same hash).
	got=$(q "$db" "BEGIN" \
		"SELECT i.imported || ' ' || i.skipped_blacklisted
		   FROM popsell.ambassadors a,
		        popsell.import_contacts(a.id, jsonb_build_array(jsonb_build_object('email', 'Contact00003@example.test'),
		                                                        jsonb_build_object('email', 'contact00099@example.test'))) i
		  WHERE a.email = 'amb0002@example.test'" \
		"SELECT FROM popsell.ambassadors a,
		        popsell.collect_contact(a.id, 'order', jsonb_build_object('email', 'contact00004@example.test'),
		                                brand_optin_checked => true)
		  WHERE a.email = 'amb0002@example.test'" \
		"SELECT c.email_status FROM popsell.contacts c JOIN popsell.ambassadors a ON a.id = c.ambassador_id
		  WHERE a.email = 'amb0002@example.test' AND c.email = 'contact00004@example.test'" \
		"SELECT popsell._globally_opted_out('contact00003@example.test')" \
		"ROLLBACK" 2>&1) || true
	want_bl=$(printf '1 1\nhard_bounce\nt')
	if [ "$got" != "$want_bl" ]; then
		echo "$db: the restored blacklist does not block as before: got '$got', want '$want_bl'"
		problems=$((problems + 1))
	else
		echo "ok: $db: restored blacklist blocks the same emails"
	fi
	# The lookup-key indexes hold the keys of the restored rows under the
	# restored secret (amcheck: every heap tuple is found in its index with
	# the key the index expression gives now), and a lookup finds a row.
	got=$(q "$db" "SET client_min_messages = warning" "CREATE EXTENSION IF NOT EXISTS amcheck" \
		"SELECT count(bt_index_check(i.indexrelid, true)) FROM pg_index i
		  WHERE i.indrelid IN ('popsell.contacts'::regclass, 'popsell.ambassadors'::regclass)
		    AND pg_get_indexdef(i.indexrelid) LIKE '%lookup_key%'" \
		"SET enable_seqscan = off" "SET enable_bitmapscan = off" \
		"SELECT count(*) FROM popsell.contacts WHERE popsell_internal._lookup_key(email) = popsell_internal._lookup_key('contact00001@example.test')" \
		"DROP EXTENSION amcheck" 2>&1) || true
	if [ "$got" != "$(printf '4\n1')" ]; then
		echo "$db: the lookup-key indexes do not match the restored rows: $got"
		problems=$((problems + 1))
	else
		echo "ok: $db: lookup-key indexes match the restored secret"
	fi
	# The restored brand keeps working.
	if ! q "$db" "SELECT count(*) FROM popsell.run_maintenance()" >/dev/null 2>"$tmp/use.err"; then
		echo "$db: run_maintenance fails after restore: $(cat "$tmp/use.err")"
		problems=$((problems + 1))
	fi
done

if [ "$problems" -gt 0 ]; then
	fail "$problems problem(s)"
fi
dropdb "$src"
dropdb "$custom"
dropdb "$plain"
echo "dump/restore: all checks passed"
