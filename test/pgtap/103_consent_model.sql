-- 103_consent_model: the model test of the consent machine.  Sequences
-- of up to two operations (test/model/consent_model.sql: each source with
-- its box combinations, invite, accept, decline, no answer, opt-out,
-- global opt-out, email change, withdrawal, bounce callbacks, brand sync
-- again, erasure and re-entry, and forged writes of every consent and
-- state column by the ambassador, the application and the brand, forged
-- INSERTs and outbox rows, each by the role that calls it) from an empty
-- CRM and after each journey of the guide (up to five operations), so
-- sequences of up to seven operations, with the invariants I1-I9 checked
-- over every row after every step.  Every operation is tried after every
-- seed; below that, a deterministic 20% sample of the pairs (a hash of
-- the sequence), 19 064 sequences in all (every pair, sample 100,
-- 85 550 sequences, passes too but takes 7-13 minutes).  A failure
-- prints the failing sequence as a psql script.
BEGIN;
SELECT plan(26);
\ir ../model/consent_model.sql

CREATE FUNCTION pg_temp.run(p_seed int[], p_depth int, p_sample int DEFAULT 20) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    msg text;
BEGIN
    n := consent_model.explore(p_seed, p_depth, p_sample);
    RAISE NOTICE 'consent model: % sequences after seed %', n, p_seed;
    RETURN 'ok';
EXCEPTION WHEN SQLSTATE 'PSM01' THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
    RETURN msg;
END
$$;

SELECT is(pg_temp.run('{}', 2), 'ok', 'every sequence of two operations from an empty CRM');
SELECT is(pg_temp.run(s.seed, 2), 'ok', 'every sequence of two operations after ' || s.journey)
  FROM (VALUES (1, '{1}'::int[], 'an ambassador''s entry'),
               (2, '{1,11}', 'an invitation'),
               (3, '{1,11,12}', 'an accepted invitation'),
               (4, '{1,11,13}', 'a declined invitation'),
               (5, '{1,11,14}', 'an unanswered invitation'),
               (6, '{1,11,13,23}', 'a declined invitation, then the contact''s deletion'),
               (7, '{1,16}', 'a global opt-out'),
               (8, '{3}', 'a blog form with every box ticked (pending)'),
               (9, '{3,22}', 'a confirmed blog form'),
               (10, '{4}', 'a blog form with no box ticked'),
               (11, '{5}', 'an order with the brand opt-in'),
               (12, '{6}', 'an order popin'),
               (13, '{8}', 'an external form with every box ticked'),
               (14, '{9}', 'a brand sync with opt-in'),
               (15, '{10,27,28}', 'a brand sync without opt-in, invited and accepted'),
               (16, '{2,27}', 'an import by another ambassador, invited'),
               (17, '{1,11,13,23,1}', 'a declined invitation, deletion and re-entry'),
               (18, '{1,11,13,2}', 'a declined invitation, then an import by another ambassador'),
               (19, '{1,15}', 'an opt-out of the ambassador''s mail'),
               (20, '{3,16}', 'a global opt-out of a pending blog contact'),
               (21, '{5,17}', 'an order whose email the ambassador changed'),
               (22, '{7}', 'an external form that asked and got no tick'),
               (23, '{1,11,13,31,2}', 'a declined invitation, the person''s erasure, an import'),
               (24, '{1,11,23}', 'an invitation, then the contact''s deletion'),
               (25, '{1,11,17}', 'an invitation, then an email change')) AS s(k, seed, journey)
 ORDER BY s.k;

SELECT * FROM finish();
ROLLBACK;
