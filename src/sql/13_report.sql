-- ===================================================================
-- The compliance report (GDPR art. 5(2) accountability, art. 30 records
-- of processing): popsell.compliance_report(at) renders, from the live
-- database, one self-contained HTML document (inline CSS and SVG, no
-- script, no external asset) with counts, rates, dates and settings only,
-- never personal data.  Every figure is in an element with a
-- data-figure="key" attribute, so tests and tools can read them back.
-- ===================================================================

-- When a data-subject request reached the brand (the functions record it
-- when it is carried out): staff fill it in so the report can show the
-- time from request to completion (GDPR art. 12(3): one month).
ALTER TABLE popsell.rights_requests
    ADD COLUMN received_at timestamptz
        CONSTRAINT rights_requests_received_before_done
        CHECK (received_at IS NULL OR received_at OPERATOR(pg_catalog.<=) requested_at);
COMMENT ON COLUMN popsell.rights_requests.received_at IS
    'When the person''s request reached the brand (staff set it; NULL: the day it was carried out). The compliance report''s time to completion is requested_at - received_at.';
GRANT UPDATE (received_at) ON popsell.rights_requests TO popsell_account_team, popsell_technical;
CREATE POLICY rights_requests_staff_received ON popsell.rights_requests
    FOR UPDATE TO popsell_account_team, popsell_technical USING (true) WITH CHECK (true);
COMMENT ON POLICY rights_requests_staff_received ON popsell.rights_requests IS
    'Vendor staff record when a request was received (column grant: received_at only).';

-- Text made safe for HTML content and attribute values.
CREATE FUNCTION popsell._html(p text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
               coalesce(p, ''), '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'), '''', '&#39;');
COMMENT ON FUNCTION popsell._html(text) IS
    'Internal: text escaped for HTML (&, <, >, quotes); NULL gives the empty string.';

-- One figure of the report: a table cell (or a span) holding the value,
-- marked with its key.
CREATE FUNCTION popsell._report_fig(p_key text, p_value text, p_tag text DEFAULT 'td') RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN pg_catalog.format('<%s class="n" data-figure="%s">%s</%s>', p_tag, popsell._html(p_key),
                             popsell._html(p_value), p_tag);
COMMENT ON FUNCTION popsell._report_fig(text, text, text) IS
    'Internal: a figure of the compliance report in a cell (or other tag) marked data-figure="key".';

-- A rate in percent with one decimal, or "n/a" when the base is zero.
CREATE FUNCTION popsell._report_rate(p_part bigint, p_whole bigint) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN CASE WHEN coalesce(p_whole, 0) OPERATOR(pg_catalog.=) 0 THEN 'n/a'
                ELSE pg_catalog.round(100.0 OPERATOR(pg_catalog.*) p_part
                                      OPERATOR(pg_catalog./) p_whole, 1)::text OPERATOR(pg_catalog.||) '%' END;
COMMENT ON FUNCTION popsell._report_rate(bigint, bigint) IS
    'Internal: PART / WHOLE in percent with one decimal, n/a when WHOLE is 0 or NULL.';

CREATE FUNCTION popsell.compliance_report(at timestamptz DEFAULT pg_catalog.now()) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET datestyle = 'ISO, YMD'
    SET intervalstyle = 'postgres'
    SET timezone = 'UTC'
    -- its statements (and the rules' counts) run in PL/pgSQL, where a
    -- parallel plan runs without workers: plan them serial (the funnel's
    -- two scans, below, excepted)
    SET max_parallel_workers_per_gather = 0
    -- planned for the given time at every call (the rules' counts too): a
    -- generic plan cannot tell how much of a table a time window holds
    SET plan_cache_mode = force_custom_plan
    -- a caller with row_security = off would get an error, not a report
    SET row_security = on
AS $$
DECLARE
    p_at timestamptz := compliance_report.at;
    since timestamptz;
    s popsell.settings;
    h text := '';
    measures text[] := ARRAY['collected', 'invited', 'accepted', 'declined', 'no_answer', 'opted_out',
                             'global_optout'];
    measure_names text[] := ARRAY['collected', 'invited', 'accepted', 'declined', 'no answer',
                                  'opted out', 'globally opted out'];
    colors text[] := ARRAY['#5b6770', '#2f6db5', '#2e9d57', '#d9822b', '#b8a23a', '#c2453d', '#7d3c98'];
    f record;
    r record;
    srcs text[];
    fm bigint[];
    n_contacts bigint;
    n_brand bigint;
    n_partners bigint;
    n_restricted bigint;
    run_ids bigint[];
    run_asof timestamptz[];
    run_started timestamptz[];
    run_ms numeric[];
    run_aff bigint[];
    run_fail bigint[];
    maxms numeric;
    maxv bigint;
    y integer;
    n integer;
    svg text;
    rules text[];
    horizons integer[] := ARRAY[30, 90, 365];
    cnt bigint[];
    tot bigint[] := ARRAY[0, 0, 0, 0, 0, 0, 0]::bigint[];
BEGIN
    -- the window (12 months back) and the outlook (365 days on) must fit
    -- in timestamptz's range
    IF p_at IS NULL OR NOT pg_catalog.isfinite(p_at)
       OR p_at OPERATOR(pg_catalog.<) '0001-01-01 00:00+00'::timestamptz
       OR p_at OPERATOR(pg_catalog.>) '100000-01-01 00:00+00'::timestamptz THEN
        RAISE EXCEPTION 'compliance_report needs a finite time between the years 1 and 100000, not %', coalesce(p_at::text, 'NULL')
            USING ERRCODE = 'PS106', HINT = 'Call popsell.compliance_report() (now) or pass a timestamptz.';
    END IF;
    since := p_at - interval '12 months';
    SELECT * INTO STRICT s FROM popsell.settings;

    h := '<!DOCTYPE html>' || E'\n' || '<html lang="en"><head><meta charset="utf-8">'
      || '<meta name="viewport" content="width=device-width, initial-scale=1">'
      || '<title>popsell compliance report</title><style>'
      || 'body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;'
      || 'color:#1d2731;background:#fff;margin:0 auto;max-width:1000px;padding:24px;line-height:1.45}'
      || 'h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.2em;margin:28px 0 8px;padding-bottom:4px;'
      || 'border-bottom:2px solid #2f6db5}p.meta{color:#5b6770;margin:0 0 12px}'
      || 'table{border-collapse:collapse;margin:8px 0 12px;font-size:.9em}'
      || 'th,td{border:1px solid #d5dbe1;padding:3px 8px;text-align:left}th{background:#eef2f6}'
      || 'td.n{text-align:right;font-variant-numeric:tabular-nums}'
      || '.cards{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}'
      || '.card{border:1px solid #d5dbe1;border-radius:6px;padding:8px 14px;min-width:150px;background:#f7f9fb}'
      || '.card .n{display:block;font-size:1.5em;font-weight:600;color:#2f6db5}'
      || '.card .l{color:#5b6770;font-size:.85em}svg{display:block;margin:8px 0}'
      || 'ul.ropa li{margin:4px 0}.warn{color:#c2453d;font-weight:600}'
      || '</style></head><body>' || E'\n';
    h := h || '<h1>Compliance report: ' || popsell._html(coalesce(s.brand_name, 'this brand')) || '</h1>'
      || '<p class="meta">As of ' || popsell._report_fig('report.at', pg_catalog.to_char(p_at, 'YYYY-MM-DD HH24:MI "UTC"'), 'span')
      || '; consent and rights figures cover the 12 months since '
      || popsell._report_fig('report.since', pg_catalog.to_char(since, 'YYYY-MM-DD HH24:MI "UTC"'), 'span')
      || '. popsell ' || popsell._html((SELECT e.extversion FROM pg_catalog.pg_extension e
                                         WHERE e.extname OPERATOR(pg_catalog.=) 'popsell'))
      || '. Counts, rates, dates and settings only: no personal data.</p>' || E'\n';

    -- ---------------------------------------------------------------
    -- Consent funnel per source: contacts collected, then the ledger.
    -- ---------------------------------------------------------------
    -- Two scans, one of the contacts and one of the ledger, which may use
    -- parallel workers as a count(*) would (up to the server's
    -- max_parallel_workers_per_gather): EXECUTE runs its query to
    -- completion, which a static SELECT INTO never does.
    PERFORM pg_catalog.set_config('max_parallel_workers_per_gather',
                                  (SELECT st.reset_val FROM pg_catalog.pg_settings st
                                    WHERE st.name OPERATOR(pg_catalog.=) 'max_parallel_workers_per_gather'), true);
    EXECUTE $funnel$
        -- contacts held, per source: for the funnel and the records of
        -- processing
        WITH held AS (
            SELECT c.source, pg_catalog.count(*) AS n,
                   pg_catalog.count(*) FILTER (WHERE c.created_at OPERATOR(pg_catalog.>) $1
                                                 AND c.created_at OPERATOR(pg_catalog.<=) $2) AS recent,
                   pg_catalog.count(*) FILTER (WHERE c.brand_optin OPERATOR(pg_catalog.<>) 'no_optin') AS brand,
                   pg_catalog.count(*) FILTER (WHERE c.partners_optin) AS partners,
                   pg_catalog.count(*) FILTER (WHERE c.restricted) AS restricted
              FROM popsell.contacts c
             GROUP BY c.source),
        -- the ledger of the period, grouped by what the funnel needs (one
        -- scan): only the rows it counts reach the grouping, the first rows
        -- kept on a tombstone (collected, and erased since) and the changes of
        -- the ambassador opt-in; the two kinds are told apart by
        -- old_ambassador_optin (NULL on a first row, set on a change)
        ev AS (
            SELECT ce.source, ce.new_ambassador_optin AS st,
                   ce.old_ambassador_optin IS NULL AS first_erased,
                   pg_catalog.count(*) AS n
              FROM popsell.consent_events ce
             WHERE ce.occurred_at OPERATOR(pg_catalog.>) $1 AND ce.occurred_at OPERATOR(pg_catalog.<=) $2
               AND ((ce.contact_id IS NULL AND ce.old_ambassador_optin IS NULL AND ce.old_brand_optin IS NULL
                     AND ce.old_partners_optin IS NULL AND ce.old_email_status IS NULL)
                    OR ce.old_ambassador_optin OPERATOR(pg_catalog.<>) ce.new_ambassador_optin)
             GROUP BY 1, 2, 3),
        e AS (
            SELECT ev.source,
                   pg_catalog.sum(ev.n) FILTER (WHERE ev.first_erased) AS collected,
                   pg_catalog.sum(ev.n) FILTER (WHERE NOT ev.first_erased AND ev.st OPERATOR(pg_catalog.=) 'invitation_sent') AS invited,
                   pg_catalog.sum(ev.n) FILTER (WHERE NOT ev.first_erased AND ev.st OPERATOR(pg_catalog.=) 'invitation_accepted') AS accepted,
                   pg_catalog.sum(ev.n) FILTER (WHERE NOT ev.first_erased AND ev.st OPERATOR(pg_catalog.=) 'invitation_declined') AS declined,
                   pg_catalog.sum(ev.n) FILTER (WHERE NOT ev.first_erased AND ev.st OPERATOR(pg_catalog.=) 'optout_no_response') AS no_answer,
                   pg_catalog.sum(ev.n) FILTER (WHERE NOT ev.first_erased AND ev.st OPERATOR(pg_catalog.=) 'optout_email') AS opted_out,
                   pg_catalog.sum(ev.n) FILTER (WHERE NOT ev.first_erased AND ev.st OPERATOR(pg_catalog.=) 'global_optout') AS global_optout
              FROM ev GROUP BY ev.source)
        SELECT pg_catalog.array_agg(src.source::text ORDER BY src.ord),
               pg_catalog.array_agg(
                   ARRAY[coalesce(e.collected, 0) + coalesce(hd.recent, 0), coalesce(e.invited, 0),
                         coalesce(e.accepted, 0), coalesce(e.declined, 0), coalesce(e.no_answer, 0),
                         coalesce(e.opted_out, 0), coalesce(e.global_optout, 0)]::bigint[] ORDER BY src.ord),
               coalesce(pg_catalog.sum(hd.n), 0), coalesce(pg_catalog.sum(hd.brand), 0),
               coalesce(pg_catalog.sum(hd.partners), 0), coalesce(pg_catalog.sum(hd.restricted), 0)
          FROM pg_catalog.unnest(pg_catalog.enum_range(NULL::popsell.contact_source)) WITH ORDINALITY AS src(source, ord)
          LEFT JOIN e ON e.source OPERATOR(pg_catalog.=) src.source
          LEFT JOIN held hd ON hd.source OPERATOR(pg_catalog.=) src.source
    $funnel$
       INTO srcs, fm, n_contacts, n_brand, n_partners, n_restricted
      USING since, p_at;
    PERFORM pg_catalog.set_config('max_parallel_workers_per_gather', '0', true);

    h := h || '<h2>Consent funnel per source (last 12 months)</h2>'
      || '<p>Contacts collected in the period (still held, or erased since with their consent proof kept), '
      || 'then, from the consent ledger, the changes of the ambassador opt-in to each state. Acceptance, '
      || 'refusal and no-answer rates are per invitation sent; opt-out rates per contact collected.</p>';
    -- chart: one group of bars per source that has any figure
    SELECT pg_catalog.max(v) INTO maxv FROM pg_catalog.unnest(fm) AS v;
    n := 0;
    FOR k IN 1 .. pg_catalog.array_length(srcs, 1) LOOP
        IF fm[k][1] + fm[k][2] + fm[k][3] + fm[k][4] + fm[k][5] + fm[k][6] + fm[k][7] > 0 THEN
            n := n + 1;
        END IF;
    END LOOP;
    -- one group per source with any figure: its non-zero bars, labelled
    svg := '';
    FOR i IN 1 .. 7 LOOP
        svg := svg || pg_catalog.format('<rect x="%s" y="6" width="12" height="12" fill="%s"/>'
                                        '<text x="%s" y="16">%s</text>',
                                        10 + (i - 1) * 135, colors[i], 26 + (i - 1) * 135, measure_names[i]);
    END LOOP;
    y := 30;
    FOR k IN 1 .. pg_catalog.array_length(srcs, 1) LOOP
        CONTINUE WHEN fm[k][1] + fm[k][2] + fm[k][3] + fm[k][4] + fm[k][5] + fm[k][6] + fm[k][7] = 0;
        svg := svg || pg_catalog.format('<line x1="4" y1="%s" x2="950" y2="%s" stroke="#eef2f6"/>'
                                        '<text x="4" y="%s" font-weight="600">%s</text>', y - 3, y - 3, y + 8, srcs[k]);
        FOR i IN 1 .. 7 LOOP
            CONTINUE WHEN fm[k][i] = 0;
            svg := svg || pg_catalog.format(
                '<rect x="160" y="%s" width="%s" height="7" fill="%s"><title>%s %s: %s</title></rect>'
                '<text x="%s" y="%s" font-size="9" fill="#5b6770">%s</text>',
                y, greatest(1, pg_catalog.round(700.0 * fm[k][i] / greatest(maxv, 1), 1)), colors[i],
                srcs[k], measure_names[i], fm[k][i],
                164 + pg_catalog.round(700.0 * fm[k][i] / greatest(maxv, 1), 1), y + 7, fm[k][i]);
            y := y + 9;
        END LOOP;
        y := greatest(y, 0) + 10;
    END LOOP;
    IF n = 0 THEN
        svg := svg || '<text x="160" y="44" fill="#5b6770">No consent events in the period.</text>';
        y := 60;
    END IF;
    svg := pg_catalog.format('<svg xmlns="http://www.w3.org/2000/svg" width="960" height="%s" role="img" '
                             'aria-label="Consent funnel per source" font-size="11" font-family="sans-serif">',
                             y + 4) || svg;
    h := h || svg || '</svg>' || E'\n';
    h := h || '<table><tr><th>source</th>';
    FOR i IN 1 .. 7 LOOP
        h := h || '<th>' || measure_names[i] || '</th>';
    END LOOP;
    h := h || '</tr>';
    FOR k IN 1 .. pg_catalog.array_length(srcs, 1) LOOP
        h := h || '<tr><th>' || srcs[k] || '</th>';
        FOR i IN 1 .. 7 LOOP
            h := h || popsell._report_fig('funnel.' || srcs[k] || '.' || measures[i], fm[k][i]::text);
            tot[i] := tot[i] + fm[k][i];
        END LOOP;
        h := h || '</tr>';
    END LOOP;
    h := h || '<tr><th>all sources</th>';
    FOR i IN 1 .. 7 LOOP
        h := h || popsell._report_fig('funnel.all.' || measures[i], tot[i]::text);
    END LOOP;
    h := h || '</tr></table>'
           || '<table><tr><th>source</th><th>accepted / invited</th><th>declined / invited</th>'
           || '<th>no answer / invited</th><th>opted out / collected</th><th>globally opted out / collected</th></tr>';
    FOR k IN 1 .. pg_catalog.array_length(srcs, 1) LOOP
        h := h || '<tr><th>' || srcs[k] || '</th>' || popsell._report_fig('funnel.' || srcs[k] || '.accept_rate', popsell._report_rate(fm[k][3], fm[k][2]))
               || popsell._report_fig('funnel.' || srcs[k] || '.decline_rate', popsell._report_rate(fm[k][4], fm[k][2]))
               || popsell._report_fig('funnel.' || srcs[k] || '.no_answer_rate', popsell._report_rate(fm[k][5], fm[k][2]))
               || popsell._report_fig('funnel.' || srcs[k] || '.optout_rate', popsell._report_rate(fm[k][6], fm[k][1]))
               || popsell._report_fig('funnel.' || srcs[k] || '.global_optout_rate', popsell._report_rate(fm[k][7], fm[k][1]))
               || '</tr>';
    END LOOP;
    h := h || '<tr><th>all sources</th>' || popsell._report_fig('funnel.all.accept_rate', popsell._report_rate(tot[3], tot[2]))
           || popsell._report_fig('funnel.all.decline_rate', popsell._report_rate(tot[4], tot[2]))
           || popsell._report_fig('funnel.all.no_answer_rate', popsell._report_rate(tot[5], tot[2]))
           || popsell._report_fig('funnel.all.optout_rate', popsell._report_rate(tot[6], tot[1]))
           || popsell._report_fig('funnel.all.global_optout_rate', popsell._report_rate(tot[7], tot[1]))
           || '</tr></table>' || E'\n';

    -- ---------------------------------------------------------------
    -- Retention outlook: run_maintenance's own rules, previewed.
    -- ---------------------------------------------------------------
    h := h || '<h2>Retention outlook</h2>'
      || '<p>Rows each retention rule of <code>popsell.run_maintenance</code> would act on if it ran in 30, '
      || '90 and 365 days, with the data as it is today (no new login, activity or answer): '
      || 'the rules'' own counting queries (<code>popsell.maintenance_preview</code>). '
      || 'Rules that delete count the contacts or ambassadors they delete; reminder rules count the '
      || 'messages they queue or the opt-ins they change.</p>'
      || '<table><tr><th>rule</th><th>acts on</th><th>within 30 days</th>'
      || '<th>within 90 days</th><th>within 365 days</th></tr>';
    SELECT pg_catalog.array_agg(x ORDER BY o) INTO rules
      FROM popsell.maintenance_rules() WITH ORDINALITY AS t(x, o);
    FOR r IN
        WITH p AS (
            SELECT hz.d, pv.rule, pv.affected
              FROM pg_catalog.unnest(horizons) AS hz(d)
              CROSS JOIN LATERAL popsell.maintenance_preview(p_at + hz.d * interval '1 day') AS pv)
        SELECT rl.x AS rule, rl.o,
               pg_catalog.array_agg(p.affected ORDER BY p.d) AS counts
          FROM pg_catalog.unnest(rules) WITH ORDINALITY AS rl(x, o)
          JOIN p ON p.rule OPERATOR(pg_catalog.=) rl.x
         GROUP BY rl.x, rl.o
         ORDER BY rl.o
    LOOP
        cnt := r.counts;
        h := h || '<tr><th>' || popsell._html(r.rule) || '</th><td>'
          || CASE WHEN r.rule LIKE 'ambassador%' THEN 'ambassadors deleted'
                  WHEN r.rule OPERATOR(pg_catalog.=) 'invitation_reminder' THEN 'reminders queued'
                  WHEN r.rule OPERATOR(pg_catalog.=) 'invitation_no_response' THEN 'contacts set to optout_no_response'
                  WHEN r.rule LIKE 'contact%' OR r.rule OPERATOR(pg_catalog.=) 'email_unconfirmed' THEN 'contacts deleted'
                  WHEN r.rule IN ('program_suspended', 'brand_contract_ended') THEN 'contacts, ambassadors and UGC deleted'
                  WHEN r.rule OPERATOR(pg_catalog.=) 'contest_ugc' THEN 'UGC deleted'
                  WHEN r.rule OPERATOR(pg_catalog.=) 'logs' THEN 'log rows deleted'
                  ELSE 'rows' END || '</td>';
        FOR i IN 1 .. 3 LOOP
            h := h || popsell._report_fig('outlook.' || r.rule || '.' || horizons[i], cnt[i]::text);
        END LOOP;
        h := h || '</tr>';
    END LOOP;
    h := h || '</table>' || E'\n';

    -- last 30 runs, a small timeline of their durations
    h := h || '<h3>Last 30 runs</h3>';
    SELECT pg_catalog.array_agg(g.run_id ORDER BY g.run_id), pg_catalog.array_agg(g.as_of ORDER BY g.run_id),
           pg_catalog.array_agg(g.started ORDER BY g.run_id), pg_catalog.array_agg(g.ms ORDER BY g.run_id),
           pg_catalog.array_agg(g.affected ORDER BY g.run_id), pg_catalog.array_agg(g.failures ORDER BY g.run_id),
           pg_catalog.count(*), pg_catalog.max(g.ms)
      INTO run_ids, run_asof, run_started, run_ms, run_aff, run_fail, n, maxms
      FROM (SELECT mr.run_id, pg_catalog.max(mr.as_of) AS as_of, pg_catalog.min(mr.started_at) AS started,
                   pg_catalog.round(EXTRACT(epoch FROM pg_catalog.max(mr.finished_at)
                                                       - pg_catalog.min(mr.started_at)) * 1000, 1) AS ms,
                   pg_catalog.sum(mr.affected) AS affected, pg_catalog.count(mr.failed_sqlstate) AS failures
              FROM popsell.maintenance_runs mr
             WHERE mr.run_id IN (SELECT DISTINCT m2.run_id FROM popsell.maintenance_runs m2
                                  ORDER BY m2.run_id DESC LIMIT 30)
             GROUP BY mr.run_id) g;
    h := h || '<p>' || popsell._report_fig('runs.count', n::text, 'span') || ' runs shown (one row per rule per run in '
      || '<code>popsell.maintenance_runs</code>, kept for <code>log_retention</code>). Bar height: duration; '
      || 'red: a rule failed.</p>';
    svg := '<svg xmlns="http://www.w3.org/2000/svg" width="960" height="150" role="img" '
        || 'aria-label="Durations of the last runs" font-size="10" font-family="sans-serif">'
        || '<line x1="40" y1="120" x2="950" y2="120" stroke="#5b6770"/>';
    y := 0;
    FOR k IN 1 .. n LOOP
        svg := svg || pg_catalog.format(
            '<rect x="%s" y="%s" width="22" height="%s" fill="%s"><title>run %s: %s ms, %s rows</title></rect>'
            '<text x="%s" y="134" text-anchor="middle">%s</text>',
            45 + (k - 1) * 30, 120 - greatest(2, pg_catalog.round(100.0 * run_ms[k] / greatest(maxms, 1))),
            greatest(2, pg_catalog.round(100.0 * run_ms[k] / greatest(maxms, 1))),
            CASE WHEN run_fail[k] > 0 THEN '#c2453d' ELSE '#2f6db5' END,
            run_ids[k], run_ms[k], run_aff[k], 56 + (k - 1) * 30, run_ids[k]);
    END LOOP;
    IF n = 0 THEN
        svg := svg || '<text x="60" y="60" fill="#c2453d">No maintenance run recorded: is the job scheduled?</text>';
    END IF;
    h := h || svg || '</svg>';
    h := h || '<table><tr><th>run</th><th>as of</th><th>started</th><th>duration (ms)</th>'
           || '<th>rows acted on</th><th>rules failed</th></tr>';
    FOR k IN REVERSE n .. 1 LOOP
        h := h || '<tr>' || popsell._report_fig('runs.' || run_ids[k] || '.run', run_ids[k]::text)
          || '<td>' || pg_catalog.to_char(run_asof[k], 'YYYY-MM-DD HH24:MI') || '</td>'
          || '<td>' || pg_catalog.to_char(run_started[k], 'YYYY-MM-DD HH24:MI') || '</td>'
          || popsell._report_fig('runs.' || run_ids[k] || '.ms', run_ms[k]::text)
          || popsell._report_fig('runs.' || run_ids[k] || '.affected', run_aff[k]::text)
          || popsell._report_fig('runs.' || run_ids[k] || '.failures', run_fail[k]::text)
          || '</tr>';
    END LOOP;
    h := h || '</table>' || E'\n';

    -- ---------------------------------------------------------------
    -- Data-subject rights
    -- ---------------------------------------------------------------
    h := h || '<h2>Data-subject rights (last 12 months)</h2>'
      || '<table><tr><th>month</th><th>access (art. 15)</th><th>erasure (art. 17)</th>'
      || '<th>restriction (art. 18)</th><th>restriction lifted</th><th>objection (art. 21)</th></tr>';
    FOR r IN
        SELECT pg_catalog.to_char(mo, 'YYYY-MM') AS month,
               pg_catalog.count(rr.id) FILTER (WHERE rr.request OPERATOR(pg_catalog.=) 'access') AS access,
               pg_catalog.count(rr.id) FILTER (WHERE rr.request OPERATOR(pg_catalog.=) 'erasure') AS erasure,
               pg_catalog.count(rr.id) FILTER (WHERE rr.request OPERATOR(pg_catalog.=) 'restriction') AS restriction,
               pg_catalog.count(rr.id) FILTER (WHERE rr.request OPERATOR(pg_catalog.=) 'restriction_lifted') AS lifted,
               pg_catalog.count(rr.id) FILTER (WHERE rr.request OPERATOR(pg_catalog.=) 'objection') AS objection
          FROM pg_catalog.generate_series(pg_catalog.date_trunc('month', p_at) - interval '11 months',
                                          pg_catalog.date_trunc('month', p_at), interval '1 month') AS mo
          LEFT JOIN popsell.rights_requests rr
                 ON rr.requested_at OPERATOR(pg_catalog.>=) mo
                AND rr.requested_at OPERATOR(pg_catalog.<) mo + interval '1 month'
                AND rr.requested_at OPERATOR(pg_catalog.<=) p_at
         GROUP BY mo ORDER BY mo
    LOOP
        h := h || '<tr><th>' || r.month || '</th>'
          || popsell._report_fig('rights.' || r.month || '.access', r.access::text)
          || popsell._report_fig('rights.' || r.month || '.erasure', r.erasure::text)
          || popsell._report_fig('rights.' || r.month || '.restriction', r.restriction::text)
          || popsell._report_fig('rights.' || r.month || '.restriction_lifted', r.lifted::text)
          || popsell._report_fig('rights.' || r.month || '.objection', r.objection::text) || '</tr>';
    END LOOP;
    h := h || '</table>';
    SELECT pg_catalog.count(*) AS n,
           coalesce(pg_catalog.round(EXTRACT(epoch FROM pg_catalog.max(rr.requested_at - coalesce(rr.received_at, rr.requested_at))) / 86400, 1), 0) AS longest,
           pg_catalog.count(*) FILTER (WHERE rr.requested_at - rr.received_at OPERATOR(pg_catalog.>) interval '1 month') AS late
      INTO r
      FROM popsell.rights_requests rr
     WHERE rr.requested_at OPERATOR(pg_catalog.>) pg_catalog.date_trunc('month', p_at) - interval '11 months'
       AND rr.requested_at OPERATOR(pg_catalog.<=) p_at;
    h := h || '<p>' || popsell._report_fig('rights.total', r.n::text, 'span') || ' requests; the longest took '
      || popsell._report_fig('rights.longest_days', r.longest::text, 'span')
      || ' days from receipt to completion (<code>received_at</code> to <code>requested_at</code>; a request '
      || 'without a receipt date counts as completed the day it arrived); '
      || '<span class="' || CASE WHEN r.late > 0 THEN 'warn' ELSE 'ok' END || '">'
      || popsell._report_fig('rights.late', r.late::text, 'span') || ' took longer than one month</span> '
      || '(GDPR art. 12(3)).</p>' || E'\n';

    -- ---------------------------------------------------------------
    -- Blacklist, tombstones, keys
    -- ---------------------------------------------------------------
    h := h || '<h2>Blacklist, tombstones and keys</h2><div class="cards">';
    FOR r IN
        SELECT b.reason::text AS reason, pg_catalog.count(bl.email_hash) AS n
          FROM pg_catalog.unnest(pg_catalog.enum_range(NULL::popsell.blacklist_reason)) WITH ORDINALITY AS b(reason, o)
          LEFT JOIN popsell.blacklist bl ON bl.reason OPERATOR(pg_catalog.=) b.reason
         GROUP BY b.reason, b.o ORDER BY b.o
    LOOP
        h := h || '<div class="card">' || popsell._report_fig('blacklist.' || r.reason, r.n::text, 'span')
          || '<span class="l">blacklisted: ' || r.reason || '</span></div>';
    END LOOP;
    h := h || '</div><table><tr><th>tombstone</th><th>reason</th><th>count</th><th>deleted in the last 12 months</th></tr>';
    FOR r IN
        SELECT 'contact' AS what, t.reason, pg_catalog.count(*) AS n,
               pg_catalog.count(*) FILTER (WHERE t.deleted_at OPERATOR(pg_catalog.>) since
                                             AND t.deleted_at OPERATOR(pg_catalog.<=) p_at) AS recent
          FROM popsell.contact_tombstones t GROUP BY t.reason
        UNION ALL
        SELECT 'ambassador', t.reason, pg_catalog.count(*),
               pg_catalog.count(*) FILTER (WHERE t.deleted_at OPERATOR(pg_catalog.>) since
                                             AND t.deleted_at OPERATOR(pg_catalog.<=) p_at)
          FROM popsell.ambassador_tombstones t GROUP BY t.reason
        ORDER BY 1 DESC, 2
    LOOP
        h := h || '<tr><td>' || r.what || '</td><td>' || popsell._html(r.reason) || '</td>'
          || popsell._report_fig('tombstones.' || r.what || '.' || r.reason, r.n::text)
          || popsell._report_fig('tombstones.' || r.what || '.' || r.reason || '.recent', r.recent::text) || '</tr>';
    END LOOP;
    h := h || '</table>';
    SELECT pg_catalog.count(*) AS n, pg_catalog.max(k.created_at) AS latest,
           pg_catalog.count(*) FILTER (WHERE k.secret IS NULL) AS legacy
      INTO r FROM popsell.hash_keys k;
    h := h || '<p>Keyed hashing: ' || popsell._report_fig('keys.count', r.n::text, 'span') || ' key(s), '
      || popsell._report_fig('keys.rotations', greatest(r.n - 1, 0)::text, 'span') || ' rotation(s); the current key dates from '
      || popsell._report_fig('keys.latest', coalesce(pg_catalog.to_char(r.latest, 'YYYY-MM-DD'), 'n/a'), 'span')
      || '. Entries hashed under older keys stay effective.</p>' || E'\n';

    -- ---------------------------------------------------------------
    -- Records of processing (art. 30), in sentences
    -- ---------------------------------------------------------------
    SELECT pg_catalog.count(*) AS amb,
           pg_catalog.count(*) FILTER (WHERE a.status OPERATOR(pg_catalog.=) 'active') AS active,
           pg_catalog.count(*) FILTER (WHERE a.status OPERATOR(pg_catalog.=) 'signup_incomplete') AS incomplete,
           pg_catalog.count(*) FILTER (WHERE a.status OPERATOR(pg_catalog.=) 'leaving') AS leaving
      INTO f FROM popsell.ambassadors a;
    SELECT n_contacts AS contacts, n_brand AS brand, n_partners AS partners, n_restricted AS restricted INTO r;
    h := h || '<h2>Records of processing (GDPR art. 30)</h2><ul class="ropa">'
      || '<li>Controller: ' || popsell._html(coalesce(s.brand_name, 'the brand')) || '. Processor: Popsell, which runs '
      || 'the ambassador platform; its account team and technical team act on the brand''s instructions.</li>'
      || '<li>Data subjects: ' || popsell._report_fig('ropa.ambassadors', f.amb::text, 'span') || ' ambassadors ('
      || popsell._report_fig('ropa.ambassadors_active', f.active::text, 'span') || ' active, '
      || popsell._report_fig('ropa.ambassadors_incomplete', f.incomplete::text, 'span') || ' incomplete signups, '
      || popsell._report_fig('ropa.ambassadors_leaving', f.leaving::text, 'span') || ' leaving) and '
      || popsell._report_fig('ropa.contacts', r.contacts::text, 'span') || ' contacts of theirs, '
      || popsell._report_fig('ropa.contacts_restricted', r.restricted::text, 'span') || ' of them restricted (art. 18).</li>'
      || '<li>Categories of data: for ambassadors, identity and contact details (name, email, postal address, '
      || 'birth date, photo, position, bank account for commissions), account data (bcrypt password hash, '
      || 'login dates, terms acceptance), preferences and an anti-fraud activity log whose IP addresses are '
      || 'stored as keyed hashes; for contacts, identity and contact details (name, email, phones, postal '
      || 'address, social network ids), their consent states with a ledger of every change, interactions '
      || 'and sales.</li>'
      || '<li>Purposes: the ambassador program (publications sent by ambassadors to their contacts, '
      || 'community, gamification, sales attribution) and, with a brand opt-in, the brand''s own marketing.</li>'
      || '<li>Recipients: the brand, which sees the contacts with a brand or partners opt-in (confirmed, not '
      || 'restricted): ' || popsell._report_fig('ropa.contacts_brand_optin', r.brand::text, 'span')
      || ' contacts have a brand opt-in; the brand''s partners: '
      || popsell._report_fig('ropa.contacts_partners_optin', r.partners::text, 'span')
      || ' contacts agreed to be contacted by them, and they are told of each erasure or objection.</li>'
      || '<li>Retention: an ambassador without login is deleted after '
      || popsell._report_fig('settings.ambassador_inactivity', s.ambassador_inactivity::text, 'span') || ', warned '
      || popsell._report_fig('settings.inactivity_warnings', s.inactivity_warnings::text, 'span') || ' time(s) '
      || popsell._report_fig('settings.inactivity_warning_interval', s.inactivity_warning_interval::text, 'span')
      || ' apart; one who leaves is deleted after a grace period of '
      || popsell._report_fig('settings.deletion_grace', s.deletion_grace::text, 'span')
      || '; a signup not confirmed within '
      || popsell._report_fig('settings.signup_confirmation_window', s.signup_confirmation_window::text, 'span')
      || ' is deleted. A contact never invited is deleted after '
      || popsell._report_fig('settings.new_contact_invitation_window', s.new_contact_invitation_window::text, 'span')
      || '; an invitation unanswered for two windows of '
      || popsell._report_fig('settings.invitation_response_window', s.invitation_response_window::text, 'span')
      || ' counts as a refusal; an email not confirmed within '
      || popsell._report_fig('settings.email_confirmation_window', coalesce(s.email_confirmation_window, s.invitation_response_window)::text, 'span')
      || ' is deleted; opted-out contacts are kept '
      || popsell._report_fig('settings.optout_retention', s.optout_retention::text, 'span')
      || ' and contacts without activity '
      || popsell._report_fig('settings.contact_inactivity', s.contact_inactivity::text, 'span')
      || '. Logs are kept ' || popsell._report_fig('settings.log_retention', s.log_retention::text, 'span')
      || '. A suspended program''s personal data is deleted after '
      || popsell._report_fig('settings.suspension_max', s.suspension_max::text, 'span')
      || ', and all of it after the end of the brand''s contract plus the grace period. Deleted people leave '
      || 'a tombstone of keyed hashes, city, postal code and dates, kept for the life of the brand''s '
      || 'instance.</li>'
      || '<li>Account rules: signup '
      || CASE WHEN s.sso_exclusive THEN 'only through the brand''s single sign-on'
              ELSE 'by form (email verified by a confirmation link), Facebook or the brand''s single sign-on' END
      || '; fields the brand requires: '
      || popsell._report_fig('settings.required_ambassador_fields',
                             coalesce(NULLIF(pg_catalog.array_to_string(s.required_ambassador_fields, ', '), ''), 'none'),
                             'span')
      || '; the community shows names as '
      || popsell._report_fig('settings.community_name_format', s.community_name_format, 'span') || '.</li>'
      || '<li>Program state: '
      || CASE WHEN s.program_suspended_at IS NOT NULL
              THEN 'suspended since ' || pg_catalog.to_char(s.program_suspended_at, 'YYYY-MM-DD')
              ELSE 'running' END
      || CASE WHEN s.brand_contract_ended_at IS NOT NULL
              THEN '; the brand''s contract ended on ' || pg_catalog.to_char(s.brand_contract_ended_at, 'YYYY-MM-DD')
              ELSE '' END
      || '. Security: row level security on every table, keyed HMAC-SHA-256 hashes, bcrypt passwords; '
      || 'erased data may remain in WAL, replicas and backups until they expire.</li></ul>'
      || E'\n</body></html>\n';
    RETURN h;
END
$$;
COMMENT ON FUNCTION popsell.compliance_report(timestamptz) IS
    'The brand''s compliance report as of AT (default now): one self-contained HTML document (inline CSS and SVG, no script, no external asset, no personal data) with the consent funnel per source over the last 12 months, the retention outlook of every run_maintenance rule in 30/90/365 days (maintenance_preview), the last 30 runs, data-subject requests per month with the longest time to completion, blacklist and tombstones by reason, key rotations and the records-of-processing summary. Every figure carries data-figure="key". For the brand (popsell_brand, popsell_brand_bi) and vendor staff; psql -Atc "SELECT popsell.compliance_report()" > report.html.';

GRANT EXECUTE ON FUNCTION popsell.compliance_report(timestamptz)
    TO popsell_brand, popsell_brand_bi, popsell_account_team, popsell_technical;
