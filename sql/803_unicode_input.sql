-- 803_unicode_input: every text input is bounded before any work and
-- normalization is Unicode-correct whatever the database's locale (SPEC
-- section 8).  Runs in a database created with LC_CTYPE 'C', where the
-- database's own lower() leaves non-ASCII letters alone.
\set regdb :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS popsell_t803;
CREATE DATABASE popsell_t803 LC_COLLATE 'C' LC_CTYPE 'C' ENCODING 'UTF8' TEMPLATE template0;
\c popsell_t803
SET client_min_messages = warning;
CREATE EXTENSION popsell CASCADE;
SELECT datctype FROM pg_database WHERE datname = current_database();

-- The outcome of one call: the result, or the SQLSTATE.
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r text;
BEGIN
    EXECUTE q INTO r;
    RETURN coalesce(r, 'NULL');
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE;
END $$;

-- Case folding of every letter, not only ASCII, in a C-locale database.
SELECT popsell.normalize_email('ÉLODIE@EXAMPLE.TEST') AS folded,
       popsell.normalize_email('ÉLODIE@EXAMPLE.TEST') = popsell.normalize_email('élodie@example.test') AS same_email,
       popsell.hash_email('ÉLODIE@EXAMPLE.TEST') = popsell.hash_email('élodie@example.test') AS same_hash,
       popsell.normalize_email('ΣΟΦΊΑ@EXAMPLE.TEST') = popsell.normalize_email('σοφία@example.test') AS greek,
       popsell.normalize_email('STRASSE@EXAMPLE.TEST') = popsell.normalize_email('straße@example.test') AS full_folding;
-- Composed and decomposed forms are one address (NFC).
SELECT popsell.normalize_email(E'e\u0301lodie@example.test') = popsell.normalize_email(E'\u00e9lodie@example.test') AS nfc;

-- Unicode white space at the ends is stripped.
SELECT v AS input_name, popsell.normalize_email(s) AS normalized
  FROM (VALUES ('no-break space', E'\u00a0elodie@example.test\u00a0'),
               ('ideographic space', E'\u3000elodie@example.test\u3000'),
               ('narrow no-break space', E'\u202felodie@example.test'),
               ('tab and newline', E'\telodie@example.test\n')) AS t(v, s);

-- Invisible or format characters anywhere, and inner spaces of any kind,
-- are refused (PS202), so they cannot make an opted-out address new.
SELECT v AS input_name, pg_temp.try(format('SELECT popsell.normalize_email(%L)', s)) AS outcome
  FROM (VALUES ('zero-width space', E'elo\u200bdie@example.test'),
               ('leading byte-order mark', E'\ufeffelodie@example.test'),
               ('trailing zero-width space', E'elodie@example.test\u200b'),
               ('inner no-break space', E'elo\u00a0die@example.test'),
               ('inner ideographic space', E'elodie@exa\u3000mple.test'),
               ('soft hyphen', E'elo\u00addie@example.test'),
               ('right-to-left mark', E'elodie\u200f@example.test')) AS t(v, s);

-- Compatibility forms fold to the plain address (NFKC case folding), so a
-- fullwidth or mathematical spelling of an opted-out address is that address.
SELECT v AS input_name, popsell.normalize_email(s) AS normalized,
       popsell.hash_email(s) = popsell.hash_email('victim@example.test') AS same_hash
  FROM (VALUES ('fullwidth letter', E'victim@\uff45xample.test'),
               ('fullwidth address', E'\uff36\uff49\uff43\uff54\uff49\uff4d\uff20example.test'),
               ('mathematical bold letter', E'victim@\U0001D41Example.test'),
               ('fullwidth full stop', E'victim@example\uff0etest')) AS t(v, s);
-- Characters that are invisible, ignorable or look blank are refused
-- (PS202) rather than making an address new or vanishing.
SELECT v AS input_name, pg_temp.try(format('SELECT popsell.normalize_email(%L)', s)) AS outcome
  FROM (VALUES ('combining grapheme joiner', E'victim@ex\u034fample.test'),
               ('variation selector 16', E'victim@ex\ufe0fample.test'),
               ('Mongolian variation selector', E'victim@ex\u180bample.test'),
               ('Hangul filler', E'victim@ex\u3164ample.test'),
               ('halfwidth Hangul filler', E'victim\uffa0@example.test'),
               ('braille blank', E'victim@ex\u2800ample.test'),
               ('private use', E'victim@ex\ue000ample.test'),
               ('word joiner', E'victim\u2060@example.test'),
               ('trailing braille blank', E'victim@example.test\u2800')) AS t(v, s);

-- Bounded before any work: a 128 kB address is refused at once (PS107),
-- well within a statement_timeout that the old quadratic normalization
-- ignored; 254 octets is the limit after trimming.
SET statement_timeout = '2s';
SELECT pg_temp.try($$SELECT popsell.normalize_email(repeat(E'\u00e9', 65536) || '@example.test')$$) AS huge_address,
       pg_temp.try($$SELECT popsell.hash_identifier(repeat(E'a\u0301', 40000))$$) AS huge_identifier,
       pg_temp.try($$SELECT popsell.normalize_email(repeat('a', 64) || '@' || repeat('b', 185) || '.test')$$) AS at_254,
       pg_temp.try($$SELECT popsell.normalize_email(repeat('a', 64) || '@' || repeat('b', 186) || '.test')$$) AS at_255;
RESET statement_timeout;

-- The contact trigger applies the same rules at write, and social ids,
-- names and paths are bounded at write (no value a later erasure or
-- retention run must hash at length).
INSERT INTO popsell.ambassadors (id, status, terms_accepted_at, first_name, email)
VALUES (1, 'active', now(), 'Alice', 'alice@amb.example.test');
SELECT pg_temp.try($$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                     VALUES (1, 'crm_manual', 'Elodie', E'\u00a0ÉLODIE@Example.TEST\u3000') RETURNING email$$) AS stored;
SELECT pg_temp.try($$INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
                     VALUES (1, 'crm_manual', 'Zed', E'z\u200bed@example.test') RETURNING email$$) AS zero_width;
SELECT c AS column_name,
       pg_temp.try(format('INSERT INTO popsell.contacts (ambassador_id, source, %I) VALUES (1, %L, repeat(%L, %s)) RETURNING id::text',
                          c, 'crm_manual', 'x', n)) AS outcome
  FROM (VALUES ('facebook_id', 257), ('twitter_id', 257), ('instagram_id', 257), ('customer_id', 257),
               ('first_name', 257), ('last_name', 257), ('mobile_phone', 65), ('address', 1025),
               ('facebook_id', 256)) AS t(c, n);
SELECT pg_temp.try($$INSERT INTO popsell.publications (ambassador_id, comment) VALUES (1, repeat('x', 10001)) RETURNING id::text$$) AS publication_comment,
       pg_temp.try($$INSERT INTO popsell.social_grants (ambassador_id, network, account_id) VALUES (1, 'instagram', repeat('x', 257)) RETURNING id::text$$) AS social_account_id,
       pg_temp.try($$SELECT popsell.log_activity(1, 'login', NULL, repeat('x', 1025))::text$$) AS user_agent;
SELECT pg_temp.try($$UPDATE popsell.ambassadors SET facebook_id = repeat('x', 257) WHERE id = 1 RETURNING id::text$$) AS ambassador_facebook_id,
       pg_temp.try($$UPDATE popsell.ambassadors SET description = repeat('x', 10001) WHERE id = 1 RETURNING id::text$$) AS ambassador_description,
       pg_temp.try($$UPDATE popsell.ambassadors SET sso_subject = repeat('x', 257) WHERE id = 1 RETURNING id::text$$) AS ambassador_sso_subject;

-- (S13) Any number of key rotations keeps hashing and the blacklist
-- working: a global opt-out recorded before 40 rotations still stops the
-- address (in any case form) afterwards.
SELECT popsell.object_subject('OPTOUT@Example.test') AS opted_out_rows;
SELECT count(DISTINCT popsell.rotate_hash_key()) AS rotations FROM generate_series(1, 40);
SELECT cardinality(popsell.email_hashes('optout@example.test')) AS live_keys,
       popsell.hash_key_id() = (SELECT max(key_id) FROM popsell.hash_keys) AS newest_key_used,
       EXISTS (SELECT 1 FROM popsell.blacklist b
                WHERE b.email_hash = ANY (popsell.email_hashes(E'\u00a0OPTOUT@example.TEST'))) AS still_blacklisted;
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
VALUES (1, 'crm_manual', 'Opted', 'Optout@Example.Test');
-- (a globally opted-out address is not stored for an ambassador's CRM)
SELECT count(*) AS stored_despite_optout FROM popsell.contacts WHERE first_name = 'Opted';

-- (S13) The consent-text setting is a version or hash: free text (a name,
-- an address) would survive erasure in the ledger, so it is refused.
-- (It counts only in the transaction that sets it: SET LOCAL.)
BEGIN;
SET LOCAL popsell.consent_text = 'Jane Doe, jane@example.test, +33 6 12 34 56 78';
SELECT pg_temp.try($$SELECT popsell.collect_contact(1, 'order', '{"first_name": "Jane"}', NULL, true) IS NOT NULL$$) AS free_text;
COMMIT;
BEGIN;
SET LOCAL popsell.consent_text = 'terms-2026.12';
SELECT pg_temp.try($$SELECT popsell.collect_contact(1, 'order', '{"first_name": "Jane"}', NULL, true) IS NOT NULL$$) AS version;
COMMIT;
SELECT consent_text FROM popsell.consent_events e JOIN popsell.contacts c ON c.id = e.contact_id
 WHERE c.first_name = 'Jane';
RESET popsell.consent_text;

\c :regdb
SET client_min_messages = warning;
DROP DATABASE popsell_t803;
