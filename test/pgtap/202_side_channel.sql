-- 202_side_channel: no restricted role learns anything about rows it may
-- not see through the planner (SPEC S11).  PostgreSQL pushes leakproof
-- operators (text =, <, >=) of the caller's own WHERE clause below row
-- security into index conditions; an index holding rows the caller may not
-- see then counts them in EXPLAIN ANALYZE ("Rows Removed by Filter") and
-- in pg_stat_xact_user_tables.idx_tup_fetch.
--
-- The walk: for every restricted role (an ambassador by login_role, an
-- ambassador through a trusted app and SET LOCAL popsell.ambassador_id,
-- the brand, BI, the app itself), every table and view it may read, and
-- every personal-data column it may read there (text, name, date, bytea and
-- array columns), with sequential and bitmap scans disabled, a point range
-- `col >= v AND col <= v` on a value v held only by rows the role does not
-- see must count no more rows removed and no more index fetches than the
-- same range on a value no row holds.  Each failure prints the SQL that
-- reproduces it.
BEGIN;
SELECT plan(31);
-- Disabled scans cost 1e10, which would start JIT compilation per probe.
SET LOCAL jit = off;

CREATE ROLE ps_sc_alice NOLOGIN;            -- ambassador 1, by login_role
GRANT popsell_ambassador TO ps_sc_alice;
CREATE ROLE ps_sc_app NOLOGIN;              -- a trusted application
GRANT popsell_app TO ps_sc_app;

-- Fixture: ambassadors 1 (Alice, login role) and 2 (Bob, app + GUC)
-- active, 3 (Carl) who never accepted the terms.
INSERT INTO popsell.ambassadors (id, status, terms_accepted_at, first_name, last_name, email,
                                 login_role, sso_subject, postal_code, city, address, iban,
                                 customer_id, facebook_id, photo_path, description, birth_date, kind)
VALUES (1, 'active', now(), 'Alice', 'Anders', 'alice@amb.example.test', 'ps_sc_alice', 'sso-alice',
        '75001', 'Paris', '1 rue A', 'FR76ALICE', 'CUST-A', 'fb-alice', 'ambassadors/1/a.jpg',
        'alice desc', '1980-01-01', 'sales_rep'),
       (2, 'active', now(), 'Bob', 'Brown', 'bob@amb.example.test', NULL, 'sso-bob',
        '69001', 'Lyon', '2 rue B', 'FR76BOB', 'CUST-B', 'fb-bob', 'ambassadors/2/b.jpg',
        'bob desc', '1981-02-02', 'customer'),
       (3, 'signup_incomplete', NULL, 'Carl', 'Cole', 'carl@amb.example.test', NULL, 'sso-carl',
        '13001', 'Marseille', '3 rue C', 'FR76CARL', 'CUST-C', 'fb-carl', 'ambassadors/3/c.jpg',
        'carl desc', '1982-03-03', 'customer');
SELECT setval('popsell.ambassadors_id_seq', 10);
INSERT INTO popsell.publications (id, ambassador_id, comment)
VALUES (1, 1, 'alice pub'), (2, 2, 'bob pub'), (3, 3, 'carl pub');

-- Contacts of every visibility: own and others', brand-visible or not,
-- pending confirmation, restricted, opted out.
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
VALUES (1, 'crm_manual', 'A-new', 'a-new@c.example.test'),
       (1, 'crm_manual', 'A-out', 'a-out@c.example.test'),
       (2, 'crm_manual', 'B-new', 'b-new@c.example.test');
SELECT popsell.collect_contact(1, 'blog', '{"first_name":"A-pending","email":"a-pending@c.example.test"}', true, true) IS NOT NULL;
SELECT popsell.collect_contact(1, 'order', '{"first_name":"A-order","email":"a-order@c.example.test"}', NULL, true) IS NOT NULL;
SELECT popsell.collect_contact(2, 'order', '{"first_name":"B-order","email":"b-order@c.example.test"}', NULL, true) IS NOT NULL;
SELECT popsell.collect_contact(2, 'order', '{"first_name":"B-restricted","email":"b-restricted@c.example.test"}', NULL, true) IS NOT NULL;
SELECT popsell.collect_contact(2, 'blog', '{"first_name":"B-pending","email":"b-pending@c.example.test"}', true, true) IS NOT NULL;
SELECT popsell.send_invitation(id) IS NULL FROM popsell.contacts WHERE first_name = 'A-out';
SELECT popsell.decline_invitation(id) IS NULL FROM popsell.contacts WHERE first_name = 'A-out';
SELECT popsell.restrict_subject('b-restricted@c.example.test', true);
-- The app sees the contacts it has an unsent message for: A-order only.
INSERT INTO popsell.outbox (kind, ambassador_id, contact_id)
SELECT 'publication', 1, id FROM popsell.contacts WHERE first_name = 'A-order';

-- Every personal column filled with a value of its own row (triggers off:
-- the values are fixture data, not collected consents).
SET LOCAL session_replication_role = replica;
UPDATE popsell.contacts
   SET last_name = 'L-' || first_name, facebook_id = 'fb-' || first_name,
       twitter_id = 'tw-' || first_name, instagram_id = 'ig-' || first_name,
       public_photo_url = 'https://example.test/' || first_name, customer_id = 'cid-' || first_name,
       notes = 'note ' || first_name, address = 'addr ' || first_name,
       city = 'city ' || first_name, postal_code = 'pc-' || first_name,
       country = 'FR', mobile_phone = '+33600' || id, home_phone = '+33100' || id,
       tags = ARRAY['tag-' || first_name];
INSERT INTO popsell.ugc (ambassador_id, file_path)
VALUES (1, 'ambassadors/1/u.jpg'), (2, 'ambassadors/2/u.jpg'), (3, 'ambassadors/3/u.jpg');
INSERT INTO popsell.community_reactions (ambassador_id, publication_id, kind, body)
VALUES (1, 2, 'comment', 'alice says'), (2, 1, 'comment', 'bob says'), (3, 1, 'comment', 'carl says');
INSERT INTO popsell.social_grants (ambassador_id, network, account_id)
VALUES (1, 'instagram', 'ig-alice'), (2, 'instagram', 'ig-bob'), (3, 'instagram', 'ig-carl');
INSERT INTO popsell.activity_log (ambassador_id, kind, user_agent)
VALUES (1, 'login', 'ua-alice'), (2, 'login', 'ua-bob'), (3, 'login', 'ua-carl');
RESET session_replication_role;
ANALYZE popsell.contacts;
ANALYZE popsell.ambassadors;

-- Switch to a restricted role for the rest of the transaction.
CREATE FUNCTION pg_temp.become(who text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('role', 'none', true);
    PERFORM set_config('popsell.ambassador_id', '', true);
    IF who LIKE 'guc:%' THEN
        PERFORM set_config('role', 'ps_sc_app', true);
        PERFORM set_config('popsell.ambassador_id', substr(who, 5), true);
        PERFORM set_config('role', 'popsell_ambassador', true);
    ELSIF who <> '' THEN
        PERFORM set_config('role', who, true);
    END IF;
END $$;

-- The signals of one query run as the current role: rows removed (every
-- "Rows Removed by ..." and "Heap Fetches" figure of EXPLAIN ANALYZE) and
-- index fetches (pg_stat_xact_user_tables, without EXPLAIN).
CREATE FUNCTION pg_temp.signals(q text, OUT removed bigint, OUT fetched bigint)
LANGUAGE plpgsql AS $$
DECLARE
    l text;
    before bigint;
    r record;
BEGIN
    removed := 0;
    FOR l IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q LOOP
        IF l ~ '(Rows Removed by [A-Za-z ]+|Heap Fetches): [0-9]+' THEN
            removed := removed + (regexp_match(l, ': ([0-9]+)'))[1]::bigint;
        END IF;
    END LOOP;
    SELECT coalesce(sum(idx_tup_fetch), 0) INTO before FROM pg_stat_xact_user_tables;
    FOR r IN EXECUTE q LOOP
    END LOOP;
    SELECT coalesce(sum(idx_tup_fetch), 0) - before INTO fetched FROM pg_stat_xact_user_tables;
END $$;

CREATE FUNCTION pg_temp.plan_lines(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE 'EXPLAIN (COSTS OFF) ' || q;
END $$;

CREATE TEMP TABLE walk_findings (who text, rel text, col text, q text, hidden_removed bigint,
                                 empty_removed bigint, hidden_fetched bigint, empty_fetched bigint);
CREATE TEMP TABLE walk_counts (who text, probes integer);
GRANT ALL ON walk_findings, walk_counts TO PUBLIC;

CREATE FUNCTION pg_temp.walk(who text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c record;
    v text;
    cands text[];
    visible text[];
    empty text;
    q_hidden text;
    q_empty text;
    h record;
    e record;
    probes integer := 0;
BEGIN
    PERFORM pg_temp.become('');
    -- Candidate columns: personal-data types in popsell's tables and views.
    FOR c IN
        SELECT cl.oid::regclass::text AS rel, a.attname AS col, format_type(a.atttypid, a.atttypmod) AS typ
          FROM pg_class cl
          JOIN pg_namespace n ON n.oid = cl.relnamespace AND n.nspname = 'popsell'
          JOIN pg_attribute a ON a.attrelid = cl.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE cl.relkind IN ('r', 'v')
           AND (a.atttypid IN ('text'::regtype, 'name'::regtype, 'varchar'::regtype, 'bpchar'::regtype,
                               'date'::regtype, 'bytea'::regtype)
                OR a.atttypid IN (SELECT t.oid FROM pg_type t WHERE t.typcategory = 'A'))
         ORDER BY 1, 2
    LOOP
        PERFORM pg_temp.become('');
        -- Every value of a column of that name anywhere in popsell's tables.
        SELECT string_agg(format('SELECT %I::text FROM %s WHERE %I IS NOT NULL', c.col, t.oid::regclass, c.col),
                          ' UNION ')
          INTO q_hidden
          FROM pg_class t
          JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'popsell'
          JOIN pg_attribute a ON a.attrelid = t.oid AND a.attname = c.col AND NOT a.attisdropped
         WHERE t.relkind = 'r' AND format_type(a.atttypid, a.atttypmod) = c.typ;
        CONTINUE WHEN q_hidden IS NULL;
        EXECUTE 'SELECT array_agg(x) FROM (' || q_hidden || ') s(x)' INTO cands;
        CONTINUE WHEN cands IS NULL;
        PERFORM pg_temp.become(who);
        CONTINUE WHEN NOT has_column_privilege(c.rel, c.col, 'SELECT');
        BEGIN
            EXECUTE format('SELECT array_agg(DISTINCT %I::text) FROM %s', c.col, c.rel) INTO visible;
        EXCEPTION WHEN insufficient_privilege THEN
            CONTINUE;
        END;
        PERFORM set_config('enable_seqscan', 'off', true);
        PERFORM set_config('enable_bitmapscan', 'off', true);
        empty := CASE WHEN c.typ = 'date' THEN '1800-01-01'
                      WHEN c.typ = 'bytea' THEN '\x00ff00ff00'
                      WHEN c.typ LIKE '%[]' THEN '{no-such-value}'
                      ELSE 'no-such-value~' END;
        q_empty := format('SELECT 1 FROM %s WHERE %I >= %L::%s AND %I <= %L::%s',
                          c.rel, c.col, empty, c.typ, c.col, empty, c.typ);
        e := pg_temp.signals(q_empty);
        FOREACH v IN ARRAY cands LOOP
            CONTINUE WHEN v = ANY (coalesce(visible, '{}'));
            q_hidden := format('SELECT 1 FROM %s WHERE %I >= %L::%s AND %I <= %L::%s',
                               c.rel, c.col, v, c.typ, c.col, v, c.typ);
            h := pg_temp.signals(q_hidden);
            probes := probes + 1;
            IF h.removed > e.removed OR h.fetched > e.fetched THEN
                INSERT INTO walk_findings VALUES (who, c.rel, c.col, q_hidden, h.removed, e.removed,
                                                  h.fetched, e.fetched);
            END IF;
        END LOOP;
        PERFORM set_config('enable_seqscan', 'on', true);
        PERFORM set_config('enable_bitmapscan', 'on', true);
    END LOOP;
    PERFORM pg_temp.become('');
    INSERT INTO walk_counts VALUES (who, probes);
END $$;

SELECT pg_temp.walk(w)
  FROM unnest(ARRAY['ps_sc_alice', 'guc:2', 'popsell_brand', 'popsell_brand_bi', 'popsell_app']) AS w;

SELECT is((SELECT count(*) FROM walk_counts WHERE probes > 0), 5::bigint,
          'every restricted role probed values it may not see');
SELECT cmp_ok((SELECT sum(probes) FROM walk_counts), '>', 200::bigint,
              'the walk probed hidden values on many columns');
SELECT is_empty(
    $$SELECT who, rel, col FROM walk_findings$$,
    'no range on a personal column counts rows the role may not see (EXPLAIN ANALYZE, idx_tup_fetch)');
SELECT diag(format(E'reproduce (in one transaction, as a superuser, fixture above):\n'
                   '  SELECT pg_temp.become(%L); SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off;\n'
                   '  EXPLAIN ANALYZE %s;  -- removed %s (empty range: %s), idx_tup_fetch %s (empty range: %s)',
                   who, q, hidden_removed, empty_removed, hidden_fetched, empty_fetched))
  FROM walk_findings ORDER BY who, rel, col LIMIT 40;

-- The brand's email search counts nothing hidden either: looking up an
-- address only hidden rows hold fetches no more than an unknown address.
SELECT pg_temp.become('popsell_brand');
CREATE TEMP TABLE lookup_signals AS
SELECT (pg_temp.signals($$SELECT 1 FROM popsell.brand_contacts_by_email('b-restricted@c.example.test')$$)).*
UNION ALL
SELECT (pg_temp.signals($$SELECT 1 FROM popsell.brand_contacts_by_email('nobody@c.example.test')$$)).*;
SELECT pg_temp.become('');
SELECT is((SELECT array_agg(fetched) FROM lookup_signals), '{0,0}'::bigint[],
          'brand_contacts_by_email fetches nothing for an address only hidden rows hold');

-- BI views are not kept off parallel plans by a PARALLEL UNSAFE helper.
SELECT pg_temp.become('popsell_brand_bi');
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
-- Forced, so that only parallel safety decides (costs tie on tiny tables).
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000
                       THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END, 'on', true) IS NOT NULL;
SELECT ok(EXISTS (SELECT 1 FROM (SELECT pg_temp.plan_lines($$SELECT count(*) FROM popsell.bi_contacts$$) AS l) p
                   WHERE l ~ 'Gather'),
          'a BI view can run in parallel');
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000
                       THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END, 'off', true) IS NOT NULL;
SELECT pg_temp.become('');

-- The brand's lookup by email is served by the index of brand-visible rows:
-- it writes the index's predicate (popsell_internal._brand_sees, which no
-- restricted role can write), or the planner cannot match it and the
-- lookup scans the whole table.
SET LOCAL enable_seqscan = off;
SELECT ok(EXISTS (SELECT 1 FROM (SELECT pg_temp.plan_lines(
              $$SELECT b.* FROM popsell.brand_contacts b
                 WHERE popsell_internal._brand_sees(b.restricted, b.source, b.email_confirmed_at, b.brand_optin, b.partners_optin)
                   AND popsell_internal._brand_lookup_key(b.email) OPERATOR(pg_catalog.=) popsell_internal._brand_lookup_key('b-order@c.example.test')$$) AS l) p
                   WHERE l ~ 'Index Scan using contacts_brand_email_idx'),
          'the brand''s lookup query uses contacts_brand_email_idx');
RESET enable_seqscan;
SELECT ok((SELECT prosrc FROM pg_proc WHERE oid = 'popsell.brand_contacts_by_email(text)'::regprocedure)
              LIKE '%FROM popsell.brand_contacts b%WHERE popsell_internal._brand_sees(b.restricted, b.source, b.email_confirmed_at, b.brand_optin, b.partners_optin)%AND popsell_internal._brand_lookup_key(b.email) OPERATOR(pg_catalog.=) popsell_internal._brand_lookup_key(e)%',
          'brand_contacts_by_email runs the query checked above');

-- A parallel worker restores the leader's settings, the identity set by a
-- trusted app included, in a start-up transaction of its own that does not
-- see roles granted in the leader's transaction: a parallel plan for an
-- ambassador identified by app + SET LOCAL popsell.ambassador_id runs, and
-- in the worker the value identifies nobody (it was not set there).
SELECT pg_temp.become('guc:2');
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000
                       THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END, 'on', true) IS NOT NULL;
SELECT lives_ok($$SELECT count(*) FROM pg_catalog.pg_class$$,
                'a parallel worker accepts the identity an app set in the leader');
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000
                       THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END, 'off', true) IS NOT NULL;
SELECT pg_temp.become('');

-- Policies that depend on the identity are not run by parallel workers
-- (which do not carry it): an ambassador's counts are the same with and
-- without a parallel plan.  The leader does not scan, so a policy a
-- worker evaluates without the identity shows in the count.
INSERT INTO popsell.interactions (contact_id, kind)
SELECT c.id, k FROM popsell.contacts c,
       unnest(enum_range(NULL::popsell.interaction_kind)) k, generate_series(1, 20);
CREATE TEMP TABLE parallel_counts (who text, parallel boolean, n bigint);
GRANT ALL ON parallel_counts TO PUBLIC;
CREATE FUNCTION pg_temp.count_as(who text, par boolean) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM pg_temp.become(who);
    PERFORM set_config('max_parallel_workers_per_gather', CASE WHEN par THEN '2' ELSE '0' END, true);
    PERFORM set_config('parallel_setup_cost', '0', true);
    PERFORM set_config('parallel_tuple_cost', '0', true);
    PERFORM set_config('min_parallel_table_scan_size', '0', true);
    PERFORM set_config('parallel_leader_participation', CASE WHEN par THEN 'off' ELSE 'on' END, true);
    EXECUTE 'SELECT count(*) FROM popsell.interactions' INTO n;
    INSERT INTO parallel_counts VALUES (who, par, n);
    PERFORM set_config('max_parallel_workers_per_gather', '0', true);
    PERFORM pg_temp.become('');
END $$;
SELECT pg_temp.count_as(w, p) FROM unnest(ARRAY['ps_sc_alice', 'guc:2', 'popsell_brand']) w, unnest(ARRAY[false, true]) p;
SELECT is_empty($$SELECT s.who, s.n AS serial, p.n AS parallel FROM parallel_counts s JOIN parallel_counts p USING (who)
                   WHERE NOT s.parallel AND p.parallel AND s.n <> p.n$$,
                'counts through a policy depending on the identity are the same in parallel');
SELECT ok((SELECT bool_and(n > 0) FROM parallel_counts WHERE NOT parallel), 'every role counts some interactions');
RESET parallel_leader_participation;

-- No row estimate tells a value apart (column statistics of hidden rows):
-- after ANALYZE, a plain EXPLAIN's estimate for a value only hidden rows
-- hold equals the estimate for a value no row holds, for every restricted
-- role and personal column (equality and point range), and for the email
-- lookup-key expression.
INSERT INTO popsell.contacts (ambassador_id, source, first_name, last_name, city, email)
SELECT 2, 'crm_manual', 'Hidden', 'Hiddenson', 'Hiddenville', 'hidden' || g || '@c.example.test'
  FROM generate_series(1, 60) g;
INSERT INTO popsell.ambassadors (id, status, first_name, last_name, city, kind)
SELECT 100 + g, 'signup_incomplete', 'Hidden', 'Hiddenson', 'Hiddenville', 'customer'
  FROM generate_series(1, 60) g;
ANALYZE popsell.contacts;
ANALYZE popsell.ambassadors;
CREATE FUNCTION pg_temp.estimate(q text) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
    j json;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO j;
    RETURN (j -> 0 -> 'Plan' ->> 'Plan Rows')::numeric;
END $$;
CREATE TEMP TABLE estimate_findings (who text, q text, hidden numeric, absent numeric);
GRANT ALL ON estimate_findings TO PUBLIC;
CREATE FUNCTION pg_temp.estimates(who text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t record;
    f text;
    qh text;
    qa text;
BEGIN
    FOR t IN SELECT * FROM (VALUES ('popsell.contacts', 'first_name', 'Hidden'), ('popsell.contacts', 'last_name', 'Hiddenson'),
                                   ('popsell.contacts', 'city', 'Hiddenville'),
                                   ('popsell.ambassadors', 'first_name', 'Hidden'), ('popsell.ambassadors', 'city', 'Hiddenville'))
                           AS v(rel, col, val)
    LOOP
        FOREACH f IN ARRAY ARRAY['%I = %L', '%I >= %L AND %2$I <= %3$L'] LOOP
            PERFORM pg_temp.become(who);
            qh := format('SELECT 1 FROM %s WHERE ' || f, t.rel, t.col, t.val);
            qa := format('SELECT 1 FROM %s WHERE ' || f, t.rel, t.col, 'Nobody-such');
            BEGIN
                INSERT INTO estimate_findings
                SELECT who, qh, h, a FROM (SELECT pg_temp.estimate(qh) h, pg_temp.estimate(qa) a) e WHERE h <> a;
            EXCEPTION WHEN insufficient_privilege THEN
                NULL;
            END;
        END LOOP;
    END LOOP;
    PERFORM pg_temp.become(who);
    qh := $q$SELECT 1 FROM popsell.contacts WHERE popsell_internal._lookup_key(email) = popsell_internal._lookup_key('hidden1@c.example.test')$q$;
    qa := $q$SELECT 1 FROM popsell.contacts WHERE popsell_internal._lookup_key(email) = popsell_internal._lookup_key('nobody@c.example.test')$q$;
    BEGIN
        INSERT INTO estimate_findings
        SELECT who, qh, h, a FROM (SELECT pg_temp.estimate(qh) h, pg_temp.estimate(qa) a) e WHERE h <> a;
    EXCEPTION WHEN insufficient_privilege OR undefined_function THEN
        NULL;
    END;
    PERFORM pg_temp.become('');
END $$;
SELECT pg_temp.estimates(w)
  FROM unnest(ARRAY['ps_sc_alice', 'guc:2', 'popsell_brand', 'popsell_brand_bi', 'popsell_app']) AS w;
SELECT is_empty($$SELECT who, q, hidden, absent FROM estimate_findings$$,
                'row estimates are the same for a hidden value and an absent one');
SELECT diag(format('as %s: EXPLAIN %s estimates %s rows, %s for an absent value', who, q, hidden, absent))
  FROM estimate_findings ORDER BY who, q LIMIT 20;
SELECT is((SELECT count(*) FROM pg_statistic s JOIN pg_attribute a ON a.attrelid = s.starelid AND a.attnum = s.staattnum
            WHERE s.starelid IN ('popsell.contacts'::regclass, 'popsell.ambassadors'::regclass)
              AND a.attname IN ('email', 'first_name', 'last_name', 'city', 'birth_date', 'iban', 'mobile_phone')),
          0::bigint, 'ANALYZE keeps no statistics on personal columns');

-- A merge join against the lookup-key index reads hidden index entries up
-- to the first visible key past the caller's own keys, so "Rows Removed by
-- Filter" of such a join counts the hidden rows whose key lies below.  The
-- lookup key is an HMAC under a secret no popsell role reads, and its
-- functions live in schema popsell_internal, where no restricted role has
-- USAGE: none can write them in a query, so none can compute a key or
-- have the planner join on the key index.  The probe the brand could run
-- under the former allow-list (a row written in the same command was
-- answered): write one of its rows in the command (UPDATE ... SET notes =
-- notes) and join on the lowest key; the scan stopped at the first
-- visible row and counted the hidden rows before it.  The test, which
-- computes keys, chooses the hidden value with a key below every
-- brand-visible one, so that the channel shows when it is open.
-- 500 brand-visible rows make the key gaps narrow.
SELECT count(popsell.collect_contact(2, 'order', jsonb_build_object('first_name', 'V', 'email', 'v' || g || '@mj.example.test'), NULL, true))
  FROM generate_series(1, 500) g;
CREATE TEMP TABLE brand_visible (id bigint);
GRANT ALL ON brand_visible TO PUBLIC;
SELECT pg_temp.become('popsell_brand');
INSERT INTO brand_visible SELECT id FROM popsell.contacts;
SELECT pg_temp.become('');
CREATE TEMP TABLE mj_target AS
SELECT (SELECT c.id FROM popsell.contacts c JOIN brand_visible b USING (id)
         WHERE c.email IS NOT NULL ORDER BY popsell_internal._lookup_key(c.email) LIMIT 1) AS first_visible,
       (SELECT e FROM (SELECT 'hidden-mj-' || n || '@c.example.test' AS e FROM generate_series(1, 100000) n) s
         WHERE popsell_internal._lookup_key(e) < (SELECT popsell_internal._lookup_key(c.email) FROM popsell.contacts c
                                          JOIN brand_visible b USING (id)
                                          WHERE c.email IS NOT NULL ORDER BY 1 LIMIT 1)
         LIMIT 1) AS hidden;
GRANT SELECT ON mj_target TO PUBLIC;
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
SELECT 2, 'crm_manual', 'H', hidden FROM mj_target;
CREATE TEMP TABLE mj_probe (phase text, removed bigint);
GRANT ALL ON mj_probe TO PUBLIC;
CREATE FUNCTION pg_temp.mj_probe(phase text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t mj_target;
BEGIN
    SELECT * INTO t FROM mj_target;
    PERFORM pg_temp.become('popsell_brand');
    PERFORM set_config('enable_hashjoin', 'off', true);
    PERFORM set_config('enable_nestloop', 'off', true);
    PERFORM set_config('enable_seqscan', 'off', true);
    PERFORM set_config('enable_bitmapscan', 'off', true);
    -- (-1: the join itself is refused, whatever the hidden rows)
    BEGIN
        INSERT INTO mj_probe
        SELECT phase, (pg_temp.signals(format($q$WITH u AS (UPDATE popsell.contacts SET notes = notes WHERE id = %s RETURNING 1)
                         SELECT 1 FROM popsell.contacts c
                         JOIN (SELECT DISTINCT x AS k FROM unnest(ARRAY['\x00'::bytea]) x ORDER BY 1) v
                           ON popsell_internal._lookup_key(c.email) = v.k
                        WHERE (SELECT count(*) FROM u) = 1$q$, t.first_visible))).removed;
    EXCEPTION WHEN insufficient_privilege THEN
        INSERT INTO mj_probe VALUES (phase, -1);
    END;
    PERFORM set_config('enable_hashjoin', 'on', true);
    PERFORM set_config('enable_nestloop', 'on', true);
    PERFORM set_config('enable_seqscan', 'on', true);
    PERFORM set_config('enable_bitmapscan', 'on', true);
    PERFORM pg_temp.become('');
END $$;
SELECT pg_temp.mj_probe('with');
SAVEPOINT mj;
SET LOCAL session_replication_role = replica;
DELETE FROM popsell.contacts WHERE email = (SELECT hidden FROM mj_target);
RESET session_replication_role;
SELECT pg_temp.mj_probe('without');
SELECT removed AS mj_without FROM mj_probe WHERE phase = 'without' \gset
ROLLBACK TO SAVEPOINT mj;
INSERT INTO mj_probe VALUES ('without', :mj_without);
SELECT diag(format('merge join probe as the brand: %s rows removed with the hidden row, %s without',
                   (SELECT removed FROM mj_probe WHERE phase = 'with'), (SELECT removed FROM mj_probe WHERE phase = 'without')));
SELECT is((SELECT removed FROM mj_probe WHERE phase = 'with'), (SELECT removed FROM mj_probe WHERE phase = 'without'),
          'a merge join on a caller-computed lookup key counts no hidden row');

-- The lookup key is keyed, the secret exists once, no popsell role reads
-- it, nobody changes it, and no restricted role computes a key for a value
-- of its choosing: neither by a plain call (with an argument known only at
-- run time, so that the planner does not fold it into a constant computed
-- as the planner's user) nor by writing the value in the same command (an
-- inserted row, or one of its rows updated) and computing the key of that
-- value in the command's other part.
SELECT isnt(popsell_internal._lookup_key('x@c.example.test'), sha256(convert_to('x@c.example.test', 'UTF8')),
            'the lookup key is not the plain SHA-256');
SELECT is((SELECT count(*) FROM popsell.lookup_secret WHERE octet_length(secret) = 32), 1::bigint,
          'one 32-byte lookup secret exists after install');
SELECT is((SELECT array_agg(r ORDER BY r) FROM unnest(ARRAY['popsell_ambassador', 'popsell_brand', 'popsell_brand_bi',
                                                           'popsell_account_team', 'popsell_technical', 'popsell_app',
                                                           'popsell_maintenance']) r
            WHERE has_table_privilege(r, 'popsell.lookup_secret', 'SELECT')
               OR has_any_column_privilege(r, 'popsell.lookup_secret', 'SELECT')), NULL,
          'no popsell role may read the lookup secret');
SELECT throws_ok($$UPDATE popsell.lookup_secret SET secret = popsell._random_bytes(32)$$, 'PS105', NULL,
                 'the lookup secret is never updated');
SELECT throws_ok($$DELETE FROM popsell.lookup_secret$$, 'PS105', NULL, 'the lookup secret is never deleted');
SELECT throws_ok($$TRUNCATE popsell.lookup_secret$$, 'PS105', NULL, 'the lookup secret is never truncated');
CREATE TEMP TABLE key_oracle (who text, how text, fn text, got bytea);
GRANT ALL ON key_oracle TO PUBLIC;
CREATE FUNCTION pg_temp.key_oracle(who text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v text := (SELECT hidden FROM mj_target);
    path text := current_setting('search_path');
    fn text;
    how text;
    q text;
    got bytea;
BEGIN
    PERFORM pg_temp.become(who);
    -- qualified (the old schema and the new one), and through search_path
    PERFORM set_config('search_path', 'popsell_internal, popsell, public', true);
    FOREACH fn IN ARRAY ARRAY['popsell._lookup_key', 'popsell._brand_lookup_key',
                              'popsell_internal._lookup_key', 'popsell_internal._brand_lookup_key',
                              '_lookup_key', '_brand_lookup_key'] LOOP
        FOREACH how IN ARRAY ARRAY['call', 'insert', 'update'] LOOP
            q := CASE how
                WHEN 'call' THEN format('SELECT %s(CASE WHEN random() < 2 THEN %L END)', fn, v)
                WHEN 'insert' THEN format($q$WITH w AS (INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                                                        VALUES (coalesce(popsell.current_ambassador_id(), 2), 'crm_manual', 'x', %L)
                                                        RETURNING 1)
                                              SELECT %s(CASE WHEN random() < 2 THEN %L END) FROM w$q$, v, fn, v)
                ELSE format($q$WITH w AS (UPDATE popsell.contacts SET email = %L
                                           WHERE id = (SELECT min(id) FROM popsell.contacts) RETURNING 1)
                                 SELECT %s(CASE WHEN random() < 2 THEN %L END) FROM w$q$, v, fn, v)
                END;
            got := NULL;
            BEGIN
                EXECUTE q INTO got;
                -- undo the write, keep what it answered
                RAISE SQLSTATE 'U0001';
            EXCEPTION WHEN OTHERS THEN
                NULL;
            END;
            INSERT INTO key_oracle VALUES (who, how, fn, got);
        END LOOP;
    END LOOP;
    PERFORM set_config('search_path', path, true);
    PERFORM pg_temp.become('');
END $$;
SELECT pg_temp.key_oracle(w)
  FROM unnest(ARRAY['ps_sc_alice', 'guc:2', 'popsell_brand', 'popsell_brand_bi', 'popsell_app',
                    'popsell_account_team', 'popsell_technical']) AS w;
SELECT diag(format('as %s: %s computes the lookup key of the hidden value (%s)', who, fn, how))
  FROM key_oracle WHERE got = popsell_internal._lookup_key((SELECT hidden FROM mj_target)) ORDER BY who, fn, how;
SELECT is_empty($$SELECT who, how, fn FROM key_oracle WHERE got = popsell_internal._lookup_key((SELECT hidden FROM mj_target))$$,
                'no restricted role computes the lookup key of a value of its choosing');
-- Why: no restricted role may name either key function.  Every way of
-- writing one in a query, as every restricted role, is refused with
-- "permission denied for schema popsell_internal" (qualified call,
-- regproc and regprocedure literals, the name read from pg_proc as
-- oid::regprocedure, the CREATE statement from pg_get_functiondef run as
-- is), and search_path skips the schema (unqualified: no such function).
-- Index maintenance, which checks EXECUTE but not USAGE, is the only way
-- their rights evaluate the keys.
CREATE TEMP TABLE name_findings (who text, how text, fn text, outcome text);
GRANT ALL ON name_findings TO PUBLIC;
CREATE FUNCTION pg_temp.name_probe(who text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    path text := current_setting('search_path');
    fn text;
    how text;
    q text;
    st text;
    msg text;
BEGIN
    PERFORM pg_temp.become(who);
    FOREACH fn IN ARRAY ARRAY['_lookup_key', '_brand_lookup_key'] LOOP
        FOREACH how IN ARRAY ARRAY['qualified', 'regproc', 'regprocedure', 'catalog name', 'functiondef', 'search_path'] LOOP
            q := CASE how
                WHEN 'qualified' THEN format('SELECT popsell_internal.%s(%L)', fn, 'x@c.example.test')
                WHEN 'regproc' THEN format('SELECT %L::regproc', 'popsell_internal.' || fn)
                WHEN 'regprocedure' THEN format('SELECT %L::regprocedure', 'popsell_internal.' || fn || '(text)')
                WHEN 'catalog name' THEN format('SELECT %s(%L)',
                                                (SELECT regexp_replace(p.oid::regprocedure::text, '\(.*\)$', '') FROM pg_proc p
                                                  WHERE p.proname = fn AND p.pronamespace = 'popsell_internal'::regnamespace),
                                                'x@c.example.test')
                -- (a caller's own copy of the C function: refused as well)
                WHEN 'functiondef' THEN (SELECT pg_get_functiondef(p.oid) FROM pg_proc p
                                          WHERE p.proname = fn AND p.pronamespace = 'popsell_internal'::regnamespace)
                ELSE format('SELECT %s(%L)', fn, 'x@c.example.test')
                END;
            IF how = 'search_path' THEN
                PERFORM set_config('search_path', 'popsell_internal, popsell', true);
            END IF;
            BEGIN
                EXECUTE q;
                INSERT INTO name_findings VALUES (who, how, fn, 'answered');
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
                IF NOT (st = '42501' AND msg = 'permission denied for schema popsell_internal'
                        OR how = 'search_path' AND st = '42883') THEN
                    INSERT INTO name_findings VALUES (who, how, fn, st || ': ' || msg);
                END IF;
            END;
            PERFORM set_config('search_path', path, true);
        END LOOP;
    END LOOP;
    PERFORM pg_temp.become('');
END $$;
SELECT pg_temp.name_probe(w)
  FROM unnest(ARRAY['ps_sc_alice', 'guc:2', 'popsell_brand', 'popsell_brand_bi', 'popsell_app',
                    'popsell_account_team', 'popsell_technical', 'popsell_maintenance']) AS w;
SELECT diag(format('as %s: %s of %s: %s', who, how, fn, outcome)) FROM name_findings ORDER BY who, how, fn;
SELECT is_empty($$SELECT * FROM name_findings$$,
                'no restricted role can name a lookup-key function (permission denied for schema popsell_internal)');
SELECT is((SELECT array_agg(r ORDER BY r) FROM unnest(ARRAY['popsell_ambassador', 'popsell_brand', 'popsell_brand_bi',
                                                           'popsell_account_team', 'popsell_technical', 'popsell_app',
                                                           'popsell_maintenance', 'public']) r
            WHERE has_schema_privilege(CASE WHEN r = 'public' THEN 0::oid ELSE r::regrole::oid END,
                                       'popsell_internal', 'USAGE')), NULL,
          'no popsell role but the owner has USAGE on schema popsell_internal');
-- The one answer a writer gets from a lookup-key index, a unique
-- violation (README: exact match through a unique key), names no key:
-- PostgreSQL leaves the key out of the message's detail for a table with
-- row security.
CREATE FUNCTION pg_temp.unique_detail() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    d text;
BEGIN
    PERFORM pg_temp.become('popsell_technical');
    BEGIN
        UPDATE popsell.ambassadors SET email = 'alice@amb.example.test' WHERE id = 2;
        d := 'no violation';
    EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
        d := 'detail: ' || coalesce(nullif(d, ''), '(none)');
    END;
    PERFORM pg_temp.become('');
    RETURN d;
END $$;
SELECT is(pg_temp.unique_detail(), 'detail: (none)',
          'a unique violation on a lookup-key index shows the writer no key');
-- ...while their own writes still maintain the indexes.
SELECT pg_temp.become('ps_sc_alice');
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
VALUES (1, 'crm_manual', 'A-written', 'a-written@c.example.test');
UPDATE popsell.contacts SET first_name = 'A-rewritten' WHERE first_name = 'A-written';
UPDATE popsell.ambassadors SET first_name = 'Alicia' WHERE id = 1;
SELECT pg_temp.become('');
SELECT is((SELECT count(*) FROM popsell.contacts
            WHERE popsell_internal._lookup_key(email) = popsell_internal._lookup_key('a-written@c.example.test')), 1::bigint,
          'a restricted role''s insert and update are found by their lookup key');

-- A full scan of a partial lookup-key index, which the planner picks for a
-- query whose own condition implies the index predicate (with sequential
-- and bitmap scans off), reads the rows in key order and counts the hidden
-- rows whose key sorts below a visible one ("Rows Removed by Filter"):
-- with rows of its own choosing, a writer turns that into an exact-match
-- oracle.  No restricted role's query on anything it may read is planned
-- on a lookup-key index: not with "col IS NOT NULL" on any column it may
-- read, nor with the predicate of any partial index of popsell written out.
CREATE TEMP TABLE key_indexes AS
SELECT ic.relname::text AS idx
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid
 WHERE c.relnamespace = 'popsell'::regnamespace
   AND pg_get_indexdef(i.indexrelid) ~ 'popsell_internal\.';
CREATE TEMP TABLE partial_preds AS
SELECT ic.relname::text AS idx, pg_get_expr(i.indpred, i.indrelid) AS pred
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid
 WHERE c.relnamespace = 'popsell'::regnamespace AND i.indpred IS NOT NULL;
CREATE TEMP TABLE key_plan_findings (who text, q text, line text);
GRANT ALL ON key_indexes, partial_preds, key_plan_findings TO PUBLIC;
CREATE FUNCTION pg_temp.key_plan_probe(who text, with_preds boolean) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    r record;
    q text;
    l text;
    probes integer := 0;
BEGIN
    PERFORM pg_temp.become(who);
    PERFORM set_config('enable_seqscan', 'off', true);
    PERFORM set_config('enable_bitmapscan', 'off', true);
    FOR r IN
        SELECT DISTINCT format('%I.%I', n.nspname, c.relname) AS rel,
               CASE WHEN with_preds THEN NULL ELSE a.attname END AS attname, p.pred
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          LEFT JOIN partial_preds p ON with_preds
         WHERE n.nspname = 'popsell' AND c.relkind IN ('r', 'v', 'm', 'p')
           AND has_column_privilege(c.oid, a.attnum, 'SELECT')
           AND (with_preds = (p.pred IS NOT NULL))
    LOOP
        q := CASE WHEN with_preds THEN format('SELECT 1 FROM %s WHERE (%s)', r.rel, r.pred)
                  ELSE format('SELECT 1 FROM %s WHERE %I IS NOT NULL', r.rel, r.attname) END;
        BEGIN
            FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
                IF EXISTS (SELECT 1 FROM key_indexes k WHERE l ~ ('\m' || k.idx || '\M')) THEN
                    INSERT INTO key_plan_findings VALUES (who, q, l);
                END IF;
            END LOOP;
            probes := probes + 1;
        EXCEPTION WHEN undefined_column OR insufficient_privilege OR undefined_function THEN
            NULL;   -- a predicate naming a column the relation lacks, or one the role may not read
        END;
    END LOOP;
    PERFORM set_config('enable_seqscan', 'on', true);
    PERFORM set_config('enable_bitmapscan', 'on', true);
    PERFORM pg_temp.become('');
    RETURN probes;
END $$;
SELECT ok(sum(pg_temp.key_plan_probe(w, false)) > 100,
          'the "col IS NOT NULL" probes ran')
  FROM unnest(ARRAY['ps_sc_alice', 'guc:2', 'popsell_brand', 'popsell_brand_bi', 'popsell_app',
                    'popsell_account_team', 'popsell_technical', 'popsell_maintenance']) AS w;
SELECT diag(format('as %s: %s -- planned on %s', who, q, line)) FROM key_plan_findings ORDER BY who, q;
SELECT is_empty($$SELECT * FROM key_plan_findings$$,
                'no restricted role''s "col IS NOT NULL" query is planned on a lookup-key index');

TRUNCATE key_plan_findings;
SELECT ok(sum(pg_temp.key_plan_probe(w, true)) > 20,
          'the partial index predicate probes ran')
  FROM unnest(ARRAY['ps_sc_alice', 'guc:2', 'popsell_brand', 'popsell_brand_bi', 'popsell_app',
                    'popsell_account_team', 'popsell_technical', 'popsell_maintenance']) AS w;
SELECT diag(format('as %s: %s -- planned on %s', who, q, line)) FROM key_plan_findings ORDER BY who, q;
SELECT is_empty($$SELECT * FROM key_plan_findings$$,
                'no restricted role writing a partial index''s predicate gets a plan on a lookup-key index');

-- CREATE TABLE ... (LIKE t INCLUDING INDEXES) copies t's index
-- expressions by OID, lookup-key functions included: a role inserting a
-- value twice into its copy read the key in the unique violation's detail
-- (or in pg_stats of the copied index).  LIKE checks the table-level SELECT
-- privilege only; every role reads the tables with lookup-key indexes
-- through column grants, so every role's LIKE of them is refused.
CREATE TEMP TABLE like_findings (who text, rel text, outcome text);
GRANT ALL ON like_findings TO PUBLIC;
CREATE FUNCTION pg_temp.like_probe(who text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    rel text;
    st text;
    msg text;
BEGIN
    FOR rel IN SELECT DISTINCT format('%I.%I', n.nspname, c.relname)
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 JOIN pg_class ic ON ic.oid = i.indexrelid
                WHERE ic.relname IN (SELECT idx FROM key_indexes)
    LOOP
        PERFORM pg_temp.become(who);
        BEGIN
            EXECUTE format('CREATE TEMP TABLE ps_like_probe (LIKE %s INCLUDING INDEXES)', rel);
            RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'created';
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
            IF st <> '42501' THEN
                INSERT INTO like_findings VALUES (who, rel, st || ': ' || msg);
            END IF;
        END;
        PERFORM pg_temp.become('');
    END LOOP;
END $$;
SELECT pg_temp.like_probe(w)
  FROM unnest(ARRAY['ps_sc_alice', 'guc:2', 'popsell_brand', 'popsell_brand_bi', 'popsell_app',
                    'popsell_account_team', 'popsell_technical', 'popsell_maintenance']) AS w;
SELECT diag(format('as %s: CREATE TEMP TABLE y (LIKE %s INCLUDING INDEXES): %s', who, rel, outcome))
  FROM like_findings ORDER BY who, rel;
SELECT is_empty($$SELECT * FROM like_findings$$,
                'no restricted role copies a table with lookup-key indexes (LIKE ... INCLUDING INDEXES refused)');
-- ...while every column stays readable to the roles reading the whole table.
SELECT is((SELECT array_agg(format('%s %s', r, t) ORDER BY r, t)
             FROM unnest(ARRAY['popsell_brand', 'popsell_app', 'popsell_account_team', 'popsell_technical']) r,
                  unnest(ARRAY['contacts', 'ambassadors']) t
            WHERE NOT has_table_privilege(r, 'popsell.' || t, 'SELECT')
              AND has_any_column_privilege(r, 'popsell.' || t, 'SELECT')
              AND NOT (t = 'ambassadors' AND r IN ('popsell_brand', 'popsell_app'))
              AND EXISTS (SELECT 1 FROM pg_attribute a
                           WHERE a.attrelid = ('popsell.' || t)::regclass AND a.attnum > 0 AND NOT a.attisdropped
                          HAVING bool_and(has_column_privilege(r, a.attrelid, a.attnum, 'SELECT')))),
          ARRAY['popsell_account_team ambassadors', 'popsell_account_team contacts', 'popsell_app contacts',
                'popsell_brand contacts', 'popsell_technical ambassadors', 'popsell_technical contacts'],
          'the roles reading all of contacts or ambassadors read every column through column grants, not the table');

-- A column an upgrade adds to those tables goes to the same roles: the
-- upgrade ends with popsell._finalize_extension(), which grants the roles
-- of popsell._column_readers() every column, and turns any table-level
-- SELECT on them (here a DBA's grant) into column grants.  The ambassador
-- and the brand keep their own column lists.
ALTER TABLE popsell.contacts ADD COLUMN ps_sc_added integer;
ALTER TABLE popsell.ambassadors ADD COLUMN ps_sc_added integer;
GRANT SELECT ON popsell.ambassadors TO popsell_maintenance;
SELECT popsell._finalize_extension();
SELECT is((SELECT array_agg(format('%s %s', r, t) ORDER BY r, t)
             FROM unnest(ARRAY['popsell_ambassador', 'popsell_brand', 'popsell_brand_bi', 'popsell_app',
                               'popsell_account_team', 'popsell_technical', 'popsell_maintenance']) r,
                  unnest(ARRAY['contacts', 'ambassadors']) t
            WHERE has_column_privilege(r, 'popsell.' || t, 'ps_sc_added', 'SELECT')
              AND NOT has_table_privilege(r, 'popsell.' || t, 'SELECT')),
          ARRAY['popsell_account_team ambassadors', 'popsell_account_team contacts', 'popsell_app contacts',
                'popsell_brand contacts', 'popsell_maintenance ambassadors',
                'popsell_technical ambassadors', 'popsell_technical contacts'],
          'a column added later is read by the whole-table readers through a column grant, by no one else');

SELECT * FROM finish();
ROLLBACK;
