-- bench/302_erasure_bulk.sql: erasing 100,000 due contacts through the
-- retention rules (contact_opted_out: tombstones with keyed hashes, ledger
-- and statistics re-pointed) against a hand-written floor: one statement
-- DELETE ... RETURNING feeding INSERT INTO a tombstone table, on an
-- identical table without popsell triggers.  Prints
--   bench: erasure_100k ratio=X.XX   (target <= 1.30)
-- Each trial runs in a subtransaction that is rolled back, so both sides
-- see the same data every time; the sides alternate, 7 trials each, and
-- the ratio is of the medians.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS bench302 CASCADE;
CREATE SCHEMA bench302;
CREATE TABLE bench302.contacts (LIKE popsell.contacts INCLUDING ALL);
CREATE TABLE bench302.contact_tombstones (LIKE popsell.contact_tombstones INCLUDING ALL);

-- Data: 100 ambassadors, 100,000 contacts opted out two years ago (due)
-- and 100,000 active ones (not due), in both places.
SET session_replication_role = replica;
DELETE FROM popsell.contacts;
DELETE FROM popsell.ambassadors;
INSERT INTO popsell.ambassadors (id, kind, status, email, terms_accepted_at, created_at, last_login_at)
SELECT i, 'customer', 'active', 'bench302-amb' || i || '@example.test', '2029-01-01', '2029-01-01', '2029-12-01'
  FROM generate_series(1, 100) i;
INSERT INTO bench302.contacts (id, ambassador_id, source, first_name, last_name, email, email_status,
                               facebook_id, twitter_id, instagram_id, ambassador_optin, ambassador_optin_at,
                               brand_optin, brand_optin_at, city, postal_code, created_at)
SELECT i, 1 + i % 100, 'crm_manual', 'First' || i, 'Last' || i, 'bench302-c' || i || '@example.test', 'ok',
       'fb' || i, 'tw' || i, 'ig' || i,
       CASE WHEN i <= 100000 THEN 'optout_email' ELSE 'invitation_accepted' END::popsell.ambassador_optin,
       CASE WHEN i <= 100000 THEN timestamptz '2028-01-01' ELSE timestamptz '2029-12-01' END,
       'no_optin', '2027-06-01', 'City' || (i % 500), lpad((i % 99999)::text, 5, '0'), '2027-06-01'
  FROM generate_series(1, 200000) i;
INSERT INTO popsell.contacts SELECT * FROM bench302.contacts;
RESET session_replication_role;
ANALYZE popsell.contacts;
ANALYZE popsell.ambassadors;
ANALYZE bench302.contacts;
SET client_min_messages = notice;

DO $$
DECLARE
    at timestamptz := '2030-01-01';
    t0 timestamptz;
    floor_ms double precision;
    popsell_ms double precision;
    floor_all double precision[] := '{}';
    popsell_all double precision[] := '{}';
    n bigint;
BEGIN
    FOR trial IN 1..7 LOOP
        BEGIN
            t0 := clock_timestamp();
            WITH d AS (
                DELETE FROM bench302.contacts c
                 WHERE c.ambassador_optin IN ('invitation_declined', 'optout_email', 'optout_no_response',
                                              'global_optout', 'optin_blog_pending')
                   AND c.ambassador_optin_at <= at - interval '1 year'
                   AND c.brand_optin = 'no_optin' AND NOT c.partners_optin
                RETURNING *)
            INSERT INTO bench302.contact_tombstones
                   (contact_id, ambassador_id, source, ambassador_optin, brand_optin, partners_optin,
                    key_id, email_hash, facebook_id_hash, twitter_id_hash, instagram_id_hash,
                    city, postal_code, deleted_at, reason)
            SELECT d.id, d.ambassador_id, d.source, d.ambassador_optin, d.brand_optin, d.partners_optin,
                   popsell.hash_key_id(), popsell.hash_email(d.email), popsell.hash_identifier(d.facebook_id),
                   popsell.hash_identifier(d.twitter_id), popsell.hash_identifier(d.instagram_id),
                   d.city, d.postal_code, at, 'contact_opted_out'
              FROM d;
            GET DIAGNOSTICS n = ROW_COUNT;
            floor_all := floor_all || extract(epoch FROM clock_timestamp() - t0) * 1000;
            IF n <> 100000 THEN RAISE EXCEPTION 'floor erased % rows', n; END IF;
            RAISE EXCEPTION USING ERRCODE = 'P0004';
        EXCEPTION WHEN assert_failure THEN NULL;
        END;
        BEGIN
            t0 := clock_timestamp();
            SELECT r.affected INTO n FROM popsell.run_maintenance(at) r WHERE r.rule = 'contact_opted_out';
            popsell_all := popsell_all || extract(epoch FROM clock_timestamp() - t0) * 1000;
            IF n <> 100000 OR (SELECT count(*) FROM popsell.contact_tombstones) <> 100000 THEN
                RAISE EXCEPTION 'popsell erased % rows', n;
            END IF;
            RAISE EXCEPTION USING ERRCODE = 'P0004';
        EXCEPTION WHEN assert_failure THEN NULL;
        END;
    END LOOP;
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) INTO floor_ms FROM unnest(floor_all) x;
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) INTO popsell_ms FROM unnest(popsell_all) x;
    RAISE NOTICE 'erasure_100k: floor % ms, popsell run_maintenance % ms', round(floor_ms::numeric, 1), round(popsell_ms::numeric, 1);
    RAISE NOTICE 'bench: erasure_100k ratio=%', to_char(popsell_ms / floor_ms, 'FM990.00');
END
$$;

SET client_min_messages = warning;
SET session_replication_role = replica;
DELETE FROM popsell.contacts;
DELETE FROM popsell.ambassadors;
RESET session_replication_role;
DROP SCHEMA bench302 CASCADE;
