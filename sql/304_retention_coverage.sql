-- 304_retention_coverage: no contact is kept forever (SPEC section 7,
-- Coverage).  Walks the contact states the public functions reach: every
-- source x every checkbox combination (NULL, ticked, unticked for each of
-- the three opt-ins; combinations the source refuses are skipped, and of
-- those giving the same initial opt-ins one is walked), then a
-- sequence of follow-ups (invite, accept, decline, no answer, confirm,
-- opt out, global opt-out, objection, hard bounce), restricted or not,
-- under an ambassador that stays, is erased, or leaves.  With no activity,
-- every contact must be gone once run_maintenance has run on schedule
-- (every 15 days, the shortest window, up to the longest window other
-- than contact_inactivity) and then at now() + contact_inactivity + that
-- window + 1 day; restricted contacts (art. 18) must all still be there.
-- A contact left behind is printed with the SQL that made it.
\set VERBOSITY terse
SET client_min_messages = warning;
DROP DATABASE IF EXISTS regress_popsell_304;
CREATE DATABASE regress_popsell_304 TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8';
\c regress_popsell_304
SET client_min_messages = warning;
CREATE EXTENSION popsell CASCADE;
SET TimeZone = 'UTC';

CREATE TABLE public.walk (
    contact_id bigint PRIMARY KEY,
    restricted boolean NOT NULL,
    state      text NOT NULL,
    recipe     text NOT NULL
);

DO $$
DECLARE
    amb bigint[];
    fates text[] := ARRAY['stays', 'erased', 'leaves'];
    srcs popsell.contact_source[] := enum_range(NULL::popsell.contact_source);
    ticks boolean[] := ARRAY[NULL, true, false];
    seqs text[][] := ARRAY[
        ARRAY['-', '-', '-'],
        ARRAY['invite', '-', '-'],
        ARRAY['invite', 'accept', '-'],
        ARRAY['invite', 'decline', '-'],
        ARRAY['invite', 'opt_out', '-'],
        ARRAY['invite', 'accept', 'opt_out'],
        ARRAY['invite', 'accept', 'global_opt_out'],
        ARRAY['opt_out', '-', '-'],
        ARRAY['global_opt_out', '-', '-'],
        ARRAY['object', '-', '-'],
        ARRAY['confirm', '-', '-'],
        ARRAY['confirm', 'opt_out', '-'],
        ARRAY['confirm', 'object', '-'],
        ARRAY['hard_bounce', '-', '-'],
        ARRAY['invite', 'hard_bounce', '-']];
    f int;
    s popsell.contact_source;
    a boolean;
    b boolean;
    p boolean;
    q int;
    r boolean;
    i int := 0;
    cid bigint;
    email text;
    data jsonb;
    op text;
    call text;
    recipe text;
    init text;
    seen text[] := '{}';
BEGIN
    FOR f IN 1 .. 3 LOOP
        -- active accounts (a signup waits for its email confirmation)
        INSERT INTO popsell.ambassadors (kind, status, terms_accepted_at, first_name, email)
        VALUES ('sales_rep', 'active', now(), 'Cov' || f, format('cov-amb%s@example.test', f))
        RETURNING id INTO cid;
        amb[f] := cid;
    END LOOP;
    FOR f IN 1 .. 3 LOOP
      FOREACH s IN ARRAY srcs LOOP
        FOREACH a IN ARRAY ticks LOOP
          FOREACH b IN ARRAY ticks LOOP
            FOREACH p IN ARRAY ticks LOOP
              -- one checkbox combination per distinct initial state
              BEGIN
                  init := format('%s %s %s', f, s, popsell.initial_optins(s, a, b, p));
              EXCEPTION WHEN OTHERS THEN
                  CONTINUE;   -- not a combination this source offers
              END;
              CONTINUE WHEN init = ANY (seen);
              seen := seen || init;
              FOR q IN 1 .. array_length(seqs, 1) LOOP
                FOREACH r IN ARRAY ARRAY[false, true] LOOP
                    i := i + 1;
                    email := format('cov%s@example.test', i);
                    data := CASE WHEN s = 'social_network' THEN jsonb_build_object('facebook_id', 'fb' || i)
                                 ELSE jsonb_build_object('email', email, 'first_name', 'C' || i) END;
                    call := format('SELECT popsell.collect_contact(%s, %L, %L, %L, %L, %L)',
                                   amb[f], s, data, a, b, p);
                    BEGIN
                        EXECUTE call INTO cid;
                    EXCEPTION WHEN OTHERS THEN
                        CONTINUE;   -- not a checkbox combination this source offers
                    END;
                    CONTINUE WHEN cid IS NULL;
                    recipe := call || ';';
                    FOREACH op IN ARRAY seqs[q:q][1:3] LOOP
                        CONTINUE WHEN op = '-';
                        call := CASE op
                            WHEN 'invite' THEN format('SELECT popsell.send_invitation(%s)', cid)
                            WHEN 'accept' THEN format('SELECT popsell.accept_invitation(%s)', cid)
                            WHEN 'decline' THEN format('SELECT popsell.decline_invitation(%s)', cid)
                            WHEN 'opt_out' THEN format('SELECT popsell.opt_out(%s)', cid)
                            WHEN 'global_opt_out' THEN format('SELECT popsell.opt_out(%s, true)', cid)
                            WHEN 'object' THEN format('SELECT popsell.object_subject(%L)', email)
                            WHEN 'confirm' THEN format('SELECT popsell.confirm_email(%s, (SELECT o.payload->>''token'' FROM popsell.outbox o WHERE o.contact_id = %s AND o.kind = ''email_confirmation'' ORDER BY o.id DESC LIMIT 1))', cid, cid)
                            WHEN 'hard_bounce' THEN format('SELECT popsell.email_callback(%L, %L)', email, 'hard_bounce')
                        END;
                        BEGIN
                            EXECUTE call;
                            recipe := recipe || ' ' || call || ';';
                        EXCEPTION WHEN OTHERS THEN
                            NULL;   -- not reachable from this state: the state stays as it was
                        END;
                    END LOOP;
                    IF r THEN
                        call := CASE WHEN s = 'social_network'
                                     THEN format('UPDATE popsell.contacts SET restricted = true WHERE id = %s', cid)
                                     ELSE format('SELECT popsell.restrict_subject(%L, true)', email) END;
                        IF s = 'social_network' THEN
                            -- no email to restrict by: the rights path sets the flag
                            PERFORM set_config('popsell.actor', 'rights', true);
                        END IF;
                        EXECUTE call;
                        PERFORM set_config('popsell.actor', '', true);
                        recipe := recipe || ' ' || call || ';';
                    END IF;
                    INSERT INTO public.walk VALUES (cid, r, '', recipe || ' -- ambassador ' || fates[f]);
                END LOOP;
              END LOOP;
            END LOOP;
          END LOOP;
        END LOOP;
      END LOOP;
    END LOOP;
    -- the ambassadors' fates
    DELETE FROM popsell.ambassadors WHERE id = amb[2];
    PERFORM popsell.unsubscribe_ambassador(amb[3]);
    UPDATE public.walk w
       SET state = concat_ws(' ', c.source, c.ambassador_optin, c.brand_optin, c.partners_optin, c.email_status,
                             CASE WHEN c.restricted THEN 'restricted' END,
                             CASE WHEN c.email_confirmed_at IS NULL THEN 'unconfirmed' END,
                             coalesce(x.status::text, 'no_ambassador'))
      FROM popsell.contacts c LEFT JOIN popsell.ambassadors x ON x.id = c.ambassador_id
     WHERE c.id = w.contact_id;
    UPDATE public.walk w SET state = 'erased with its ambassador' WHERE state = '';
END
$$;

SELECT count(DISTINCT state) AS states_walked, count(*) AS contacts,
       count(*) FILTER (WHERE restricted) AS restricted
  FROM public.walk;

-- On schedule: every 15 days up to the longest window other than
-- contact_inactivity (two response windows for invitation_no_response),
-- then once at now() + contact_inactivity + that window + 1 day.
SELECT greatest(s.deletion_grace, s.ambassador_inactivity, s.new_contact_invitation_window,
                2 * s.invitation_response_window, s.email_confirmation_window, s.optout_retention,
                s.suspension_max, s.log_retention) AS longest,
       s.contact_inactivity AS inactivity
  FROM popsell.settings s \gset
SELECT count(*) FILTER (WHERE failed) AS failed_rule_runs
  FROM (SELECT r.affected IS NULL AS failed
          FROM generate_series(now() + interval '15 days', now() + :'longest'::interval + interval '1 day',
                               interval '15 days') AS t(at)
          CROSS JOIN LATERAL popsell.run_maintenance(t.at) r
        UNION ALL
        SELECT r.affected IS NULL
          FROM popsell.run_maintenance(now() + :'inactivity'::interval + :'longest'::interval + interval '1 day') r) x;

-- Kept forever (must be empty): the state and the SQL that made it.
SELECT w.state, w.recipe AS reproduce
  FROM public.walk w JOIN popsell.contacts c ON c.id = w.contact_id
 WHERE NOT w.restricted
 ORDER BY w.contact_id
 LIMIT 20;
SELECT count(*) AS kept_forever
  FROM public.walk w JOIN popsell.contacts c ON c.id = w.contact_id
 WHERE NOT w.restricted;
-- Restricted contacts deleted by a rule (must be empty).
SELECT w.state, w.recipe AS reproduce
  FROM public.walk w
 WHERE w.restricted AND w.state <> 'erased with its ambassador'
   AND NOT EXISTS (SELECT 1 FROM popsell.contacts c WHERE c.id = w.contact_id)
 ORDER BY w.contact_id
 LIMIT 20;
SELECT count(*) AS restricted_deleted
  FROM public.walk w
 WHERE w.restricted AND w.state <> 'erased with its ambassador'
   AND NOT EXISTS (SELECT 1 FROM popsell.contacts c WHERE c.id = w.contact_id);

\c contrib_regression
DROP DATABASE regress_popsell_304;
