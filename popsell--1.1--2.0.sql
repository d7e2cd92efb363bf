-- popsell upgrade from 1.1 to 2.0 (contract version 2).  Built by make:
-- this file, then src/sql/99_finalize.sql (ownership, privileges, row
-- security and pg_dump registration of every object, idempotent).  A
-- fresh 2.0 and 1.0 -> 1.1 -> 2.0 give the same catalog
-- (sql/801_upgrade.sql checks it).

\echo Use "ALTER EXTENSION popsell UPDATE TO '2.0'" to load this file. \quit


-- src/updates/1.1--2.0/10_state_classes.sql
-- ===================================================================
-- State classes of the consent types, defined once (in C).
-- ===================================================================
-- The state classes (SPEC sections 2, 3 and C1), each defined once, in C
-- next to the transition table (src/consent.c), and used by the row
-- security policies, the views, the partial indexes and the retention
-- rules alike.  IMMUTABLE, so an index predicate and a query spelling the
-- same call match.
CREATE FUNCTION popsell.is_opted_out(ambassador_optin popsell.ambassador_optin) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'is_opted_out';
COMMENT ON FUNCTION popsell.is_opted_out(popsell.ambassador_optin) IS
    'Whether an ambassador opt-in is an opted-out state: invitation_declined, optout_email, optout_no_response, global_optout, or optin_blog_pending (until the email is confirmed). Any role of popsell may call it; no errors.';
CREATE FUNCTION popsell.is_pending_confirmation(source popsell.contact_source, email_confirmed_at timestamptz)
    RETURNS boolean
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'is_pending_confirmation';
COMMENT ON FUNCTION popsell.is_pending_confirmation(popsell.contact_source, timestamptz) IS
    'Whether a contact is pending email confirmation: source blog, blog_internal_form or store_purchase and email_confirmed_at NULL (hidden from the ambassador and the brand). NULL for a NULL source. Any role of popsell may call it; no errors.';
CREATE FUNCTION popsell.is_brand_visible(brand_optin popsell.brand_optin, partners_optin boolean) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'is_brand_visible';
COMMENT ON FUNCTION popsell.is_brand_visible(popsell.brand_optin, boolean) IS
    'Whether a contact is brand-visible: brand_optin other than no_optin, or a partners opt-in. Any role of popsell may call it; no errors.';
CREATE FUNCTION popsell.brand_sees(restricted boolean, source popsell.contact_source,
                                   email_confirmed_at timestamptz, brand_optin popsell.brand_optin,
                                   partners_optin boolean) RETURNS boolean
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'brand_sees';
COMMENT ON FUNCTION popsell.brand_sees(boolean, popsell.contact_source, timestamptz, popsell.brand_optin, boolean) IS
    'Whether the brand (popsell_brand, popsell_brand_bi) sees a contact: brand-visible (popsell.is_brand_visible), not pending confirmation (popsell.is_pending_confirmation) and not restricted. The one definition behind the brand''s row security policies and views. Any role of popsell may call it; no errors.';
GRANT EXECUTE ON FUNCTION popsell.is_opted_out(popsell.ambassador_optin),
                          popsell.brand_sees(boolean, popsell.contact_source, timestamptz, popsell.brand_optin, boolean),
                          popsell.is_pending_confirmation(popsell.contact_source, timestamptz),
                          popsell.is_brand_visible(popsell.brand_optin, boolean)
    TO popsell_ambassador, popsell_brand, popsell_brand_bi, popsell_account_team,
       popsell_technical, popsell_app, popsell_maintenance;

-- src/updates/1.1--2.0/11_state_classes_uses.objects
DROP INDEX popsell.contacts_unconfirmed_idx;
CREATE INDEX contacts_unconfirmed_idx ON popsell.contacts (created_at)
    WHERE popsell.is_pending_confirmation(source, email_confirmed_at);

DROP INDEX popsell.contacts_opted_out_idx;
CREATE INDEX contacts_opted_out_idx ON popsell.contacts (ambassador_optin_at)
    WHERE popsell.is_opted_out(ambassador_optin);

DROP INDEX popsell.contacts_inactivity_idx;
CREATE INDEX contacts_inactivity_idx ON popsell.contacts
    ((greatest(last_activity_at, ambassador_optin_at, brand_optin_at, created_at)))
    WHERE NOT restricted;

DROP POLICY popsell_ambassador_select ON popsell.contacts;
CREATE POLICY popsell_ambassador_select ON popsell.contacts FOR SELECT TO popsell_ambassador
    USING (ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id())
           AND NOT popsell.is_pending_confirmation(source, email_confirmed_at));
COMMENT ON POLICY popsell_ambassador_select ON popsell.contacts IS
    'An ambassador reads its own contacts, not those pending email confirmation (no email column: see popsell.my_contacts).';

DROP POLICY popsell_ambassador_update ON popsell.contacts;
CREATE POLICY popsell_ambassador_update ON popsell.contacts FOR UPDATE TO popsell_ambassador
    USING (ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id())
           AND NOT popsell.is_pending_confirmation(source, email_confirmed_at))
    WITH CHECK (ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id()));
COMMENT ON POLICY popsell_ambassador_update ON popsell.contacts IS
    'An ambassador edits its own visible contacts and cannot hand them to someone else.';

DROP POLICY popsell_ambassador_delete ON popsell.contacts;
CREATE POLICY popsell_ambassador_delete ON popsell.contacts FOR DELETE TO popsell_ambassador
    USING (ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id())
           AND NOT popsell.is_pending_confirmation(source, email_confirmed_at));
COMMENT ON POLICY popsell_ambassador_delete ON popsell.contacts IS
    'An ambassador erases its own visible contacts.';

DROP POLICY popsell_brand_select ON popsell.contacts;
CREATE POLICY popsell_brand_select ON popsell.contacts FOR SELECT TO popsell_brand
    USING (popsell.brand_sees(restricted, source, email_confirmed_at, brand_optin, partners_optin));
COMMENT ON POLICY popsell_brand_select ON popsell.contacts IS
    'The brand reads brand-visible contacts (brand or partners opt-in) that are confirmed and not restricted.';

DROP POLICY popsell_brand_update ON popsell.contacts;
CREATE POLICY popsell_brand_update ON popsell.contacts FOR UPDATE TO popsell_brand
    USING (popsell.brand_sees(restricted, source, email_confirmed_at, brand_optin, partners_optin))
    WITH CHECK (true);
COMMENT ON POLICY popsell_brand_update ON popsell.contacts IS
    'Staff changes to brand-visible contacts (recording an opt-out may hide the row, hence no visibility check on the new row).';

DROP POLICY popsell_brand_delete ON popsell.contacts;
CREATE POLICY popsell_brand_delete ON popsell.contacts FOR DELETE TO popsell_brand
    USING (popsell.brand_sees(restricted, source, email_confirmed_at, brand_optin, partners_optin));
COMMENT ON POLICY popsell_brand_delete ON popsell.contacts IS 'The brand erases brand-visible contacts.';

CREATE OR REPLACE VIEW popsell.my_contacts WITH (security_barrier = true) AS
SELECT c.id, c.ambassador_id, c.source, c.first_name, c.last_name,
       CASE WHEN popsell.is_opted_out(c.ambassador_optin) THEN NULL ELSE c.email END AS email,
       c.email_status, c.facebook_id, c.twitter_id, c.instagram_id, c.public_photo_url,
       c.customer_id, c.ambassador_optin, c.ambassador_optin_at, c.brand_optin, c.brand_optin_at,
       c.partners_optin, c.partners_optin_at, c.contact_type, c.notes, c.address, c.city,
       c.postal_code, c.country, c.mobile_phone, c.home_phone, c.tags, c.restricted,
       c.email_confirmed_at, c.invitation_sent_at, c.invitations_sent, c.last_activity_at,
       c.created_at, c.created_by, c.modified_at, c.modified_by
  FROM popsell.contacts c
 WHERE c.ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id())
   AND NOT popsell.is_pending_confirmation(c.source, c.email_confirmed_at);
COMMENT ON VIEW popsell.my_contacts IS
    'The acting ambassador''s contacts, none pending email confirmation, email NULL for opted-out ones (owner''s rights, filtered by popsell.current_ambassador_id()).';

CREATE OR REPLACE VIEW popsell.brand_contacts WITH (security_invoker = true) AS
SELECT c.id, c.ambassador_id, c.source, c.first_name, c.last_name, c.email, c.email_status,
       c.facebook_id, c.twitter_id, c.instagram_id, c.public_photo_url, c.customer_id,
       c.ambassador_optin, c.ambassador_optin_at, c.brand_optin, c.brand_optin_at,
       c.partners_optin, c.partners_optin_at, c.contact_type, c.notes, c.address, c.city,
       c.postal_code, c.country, c.mobile_phone, c.home_phone, c.tags, c.restricted,
       c.email_confirmed_at, c.invitation_sent_at, c.invitations_sent, c.last_activity_at,
       c.created_at, c.created_by, c.modified_at, c.modified_by
  FROM popsell.contacts c
 WHERE popsell.brand_sees(c.restricted, c.source, c.email_confirmed_at, c.brand_optin, c.partners_optin);
COMMENT ON VIEW popsell.brand_contacts IS
    'Brand-visible contacts (brand or partners opt-in, confirmed, not restricted); security_invoker, so the reader''s row security applies too.';

CREATE OR REPLACE VIEW popsell.bi_contacts WITH (security_barrier = true) AS
SELECT c.id, c.ambassador_id, c.source, c.first_name, c.last_name, c.email, c.email_status,
       c.facebook_id, c.twitter_id, c.instagram_id, c.public_photo_url, c.customer_id,
       c.ambassador_optin, c.ambassador_optin_at, c.brand_optin, c.brand_optin_at,
       c.partners_optin, c.partners_optin_at, c.contact_type, c.address, c.city,
       c.postal_code, c.country, c.tags, c.email_confirmed_at, c.invitation_sent_at,
       c.invitations_sent, c.last_activity_at, c.created_at, c.modified_at
  FROM popsell.contacts c
 WHERE (SELECT popsell._caller_in('popsell_brand_bi'))
   AND popsell.brand_sees(c.restricted, c.source, c.email_confirmed_at, c.brand_optin, c.partners_optin);
COMMENT ON VIEW popsell.bi_contacts IS
    'BI: the brand''s contacts (same rows as popsell_brand sees), read-only, for popsell_brand_bi.';

CREATE OR REPLACE VIEW popsell.bi_sales WITH (security_barrier = true) AS
SELECT s.id, s.contact_id, s.contact_tombstone_id, s.ambassador_id, s.publication_id,
       s.sold_at, s.amount, s.currency, s.products, s.channel
  FROM popsell.sales s
 WHERE (SELECT popsell._caller_in('popsell_brand_bi'))
   AND (s.contact_id IS NULL
        OR EXISTS (SELECT 1 FROM popsell.contacts c
                    WHERE c.id OPERATOR(pg_catalog.=) s.contact_id
                      AND popsell.brand_sees(c.restricted, c.source, c.email_confirmed_at, c.brand_optin, c.partners_optin)));
COMMENT ON VIEW popsell.bi_sales IS
    'BI: sales of brand-visible and of erased contacts, read-only, for popsell_brand_bi.';

CREATE OR REPLACE VIEW popsell.bi_interactions WITH (security_barrier = true) AS
SELECT i.id, i.contact_id, i.contact_tombstone_id, i.publication_id, i.channel, i.kind,
       i.occurred_at
  FROM popsell.interactions i
 WHERE (SELECT popsell._caller_in('popsell_brand_bi'))
   AND (i.contact_id IS NULL
        OR EXISTS (SELECT 1 FROM popsell.contacts c
                    WHERE c.id OPERATOR(pg_catalog.=) i.contact_id
                      AND popsell.brand_sees(c.restricted, c.source, c.email_confirmed_at, c.brand_optin, c.partners_optin)));
COMMENT ON VIEW popsell.bi_interactions IS
    'BI: interactions of brand-visible and of erased contacts, read-only, for popsell_brand_bi.';

CREATE OR REPLACE FUNCTION popsell.collect_contact(ambassador_id bigint, source popsell.contact_source, data jsonb,
                                        ambassador_optin_checked boolean DEFAULT NULL,
                                        brand_optin_checked boolean DEFAULT NULL,
                                        partners_optin_checked boolean DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'contact'
AS $$
DECLARE
    init record;
    r popsell.contacts;
    new_id bigint;
    bad text;
BEGIN
    IF source IS NULL THEN
        RAISE EXCEPTION 'a contact source is required'
            USING ERRCODE = 'PS102', HINT = 'Pass one of the popsell.contact_source values.';
    END IF;
    IF data IS NULL OR jsonb_typeof(data) <> 'object' THEN
        RAISE EXCEPTION 'data must be a JSON object of contact fields'
            USING ERRCODE = 'PS106',
                  HINT = 'Pass e.g. ''{"email": "a@example.test", "first_name": "A"}''.';
    END IF;
    PERFORM popsell._ambassador_for_caller(collect_contact.ambassador_id);
    SELECT string_agg(k, ', ') INTO bad
      FROM jsonb_object_keys(data) AS k
     WHERE k NOT IN ('first_name', 'last_name', 'email', 'facebook_id', 'twitter_id',
                     'instagram_id', 'public_photo_url', 'customer_id', 'contact_type', 'notes',
                     'address', 'city', 'postal_code', 'country', 'mobile_phone', 'home_phone',
                     'tags', 'created_at', 'last_activity_at', 'ambassador_optin_at',
                     'brand_optin_at', 'partners_optin_at', 'email_confirmed_at');
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'collect_contact does not accept the keys: %', bad
            USING ERRCODE = 'PS106',
                  HINT = 'Consent comes from the source and the *_checked arguments, not from data.';
    END IF;

    -- The path: the brand's sync, an ambassador's own entry, else the contact.
    PERFORM set_config('popsell.actor',
                       CASE WHEN source = 'brand_sync' THEN 'brand_sync'
                            WHEN source IN ('crm_manual', 'private_import') THEN 'ambassador'
                            ELSE 'contact' END, true);

    init := popsell.initial_optins(source, ambassador_optin_checked, brand_optin_checked,
                                   partners_optin_checked);
    r := jsonb_populate_record(NULL::popsell.contacts, data);
    INSERT INTO popsell.contacts (ambassador_id, source, first_name, last_name, email, facebook_id,
                                  twitter_id, instagram_id, public_photo_url, customer_id,
                                  contact_type, notes, address, city, postal_code, country,
                                  mobile_phone, home_phone, tags, created_at, last_activity_at,
                                  ambassador_optin, brand_optin, partners_optin,
                                  ambassador_optin_at, brand_optin_at, partners_optin_at,
                                  email_confirmed_at)
    VALUES (collect_contact.ambassador_id, source, r.first_name, r.last_name, r.email, r.facebook_id,
            r.twitter_id, r.instagram_id, r.public_photo_url, r.customer_id,
            coalesce(r.contact_type, 'prospect'), r.notes, r.address, r.city, r.postal_code, r.country,
            r.mobile_phone, r.home_phone, coalesce(r.tags, '{}'), r.created_at, r.last_activity_at,
            init.ambassador_optin, init.brand_optin, init.partners_optin,
            r.ambassador_optin_at, r.brand_optin_at, r.partners_optin_at,
            r.email_confirmed_at)
    RETURNING id INTO new_id;

    IF new_id IS NOT NULL AND popsell.is_pending_confirmation(source, NULL) THEN
        INSERT INTO popsell.outbox (kind, ambassador_id, contact_id, payload)
        SELECT 'email_confirmation', c.ambassador_id, c.id,
               jsonb_build_object('source', c.source)
          FROM popsell.contacts c
         WHERE c.id = new_id AND c.email_confirmed_at IS NULL AND c.email IS NOT NULL;
    END IF;
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION popsell.collect_contact(bigint, popsell.contact_source, jsonb, boolean, boolean, boolean) IS
    'Record a contact collected by a form, order, popin, store purchase, external form or brand sync, with the checkboxes the contact ticked (SPEC C1). Returns the id, or NULL when a globally opted-out email was skipped.';

CREATE OR REPLACE FUNCTION popsell.confirm_email(contact_id bigint)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'confirm_email'
AS $$
DECLARE
    c popsell.contacts := popsell._contact_for_caller(confirm_email.contact_id);
BEGIN
    IF NOT popsell.is_pending_confirmation(c.source, c.email_confirmed_at) THEN
        RAISE EXCEPTION 'contact % is not pending email confirmation', c.id
            USING ERRCODE = 'PS100',
                  DETAIL = format('Source %s, email confirmed at %s.', c.source, coalesce(c.email_confirmed_at::text, 'never')),
                  HINT = 'Only contacts collected by a blog form or a store purchase confirm their email, once.';
    END IF;
    UPDATE popsell.contacts
       SET email_confirmed_at = now(),
           email_status = CASE WHEN email_status = 'unverified' THEN 'ok' ELSE email_status END,
           ambassador_optin = CASE
               WHEN ambassador_optin <> 'optin_blog_pending' THEN ambassador_optin
               WHEN source = 'blog_internal_form' THEN 'optin_internal_form'
               ELSE 'optin_blog_verified' END
     WHERE id = c.id;
END
$$;
COMMENT ON FUNCTION popsell.confirm_email(bigint) IS
    'The contact confirms the email address: the pending consent becomes effective (and lifts a global opt-out for this row only).';

CREATE OR REPLACE FUNCTION popsell._maintenance_rule(p_rule text, p_at timestamptz, p_preview boolean)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s popsell.settings;
    n bigint := 0;
    m bigint := 0;
    mark bigint;
    wi interval;
    wn integer;
BEGIN
    SELECT * INTO STRICT s FROM popsell.settings;
    wi := s.inactivity_warning_interval;
    wn := s.inactivity_warnings;

    CASE p_rule
    WHEN 'ambassador_leaving' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.ambassadors a
             WHERE a.deletion_due_at IS NOT NULL AND a.deletion_due_at <= p_at;
        ELSE
            mark := popsell._erasure_push('ambassador_leaving', true);
            DELETE FROM popsell.ambassadors a
             WHERE a.deletion_due_at IS NOT NULL AND a.deletion_due_at <= p_at;
            GET DIAGNOSTICS n = ROW_COUNT;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'ambassador_inactive' THEN
        -- deadline = coalesce(last_login_at, created_at) + ambassador_inactivity.
        -- Warnings count only when queued after the last login (a login
        -- cancels).  Warning k of N is due at deadline - (N-k+1) intervals,
        -- and never sooner than one interval after the previous one; the
        -- deletion comes at the deadline once all N are queued, and never
        -- sooner than one interval after the last.
        IF p_preview THEN
            SELECT count(*) INTO n
              FROM popsell.ambassadors a
              CROSS JOIN LATERAL (SELECT coalesce(a.last_login_at, a.created_at) AS base,
                                         CASE WHEN a.last_inactivity_warning_at > coalesce(a.last_login_at, a.created_at)
                                              THEN a.inactivity_warnings_sent ELSE 0 END AS sent) w
             WHERE coalesce(a.last_login_at, a.created_at) <= p_at - s.ambassador_inactivity + wn * wi
               AND a.status <> 'leaving'
               AND (   (w.sent >= wn AND w.base + s.ambassador_inactivity <= p_at
                        AND (wn = 0 OR a.last_inactivity_warning_at + wi <= p_at))
                    OR (w.sent < wn
                        AND w.base + s.ambassador_inactivity - (wn - w.sent) * wi <= p_at
                        AND (w.sent = 0 OR a.last_inactivity_warning_at + wi <= p_at)));
        ELSE
            mark := popsell._erasure_push('inactive', true);
            DELETE FROM popsell.ambassadors a
             WHERE coalesce(a.last_login_at, a.created_at) <= p_at - s.ambassador_inactivity
               AND a.status <> 'leaving'
               AND (wn = 0
                    OR (a.last_inactivity_warning_at > coalesce(a.last_login_at, a.created_at)
                        AND a.inactivity_warnings_sent >= wn
                        AND a.last_inactivity_warning_at + wi <= p_at));
            GET DIAGNOSTICS n = ROW_COUNT;
            PERFORM popsell._erasure_pop(mark);
            IF wn > 0 THEN
                WITH due AS (
                    SELECT a.id, w.sent + 1 AS k,
                           w.base + s.ambassador_inactivity AS deadline
                      FROM popsell.ambassadors a
                      CROSS JOIN LATERAL (SELECT coalesce(a.last_login_at, a.created_at) AS base,
                                                 CASE WHEN a.last_inactivity_warning_at > coalesce(a.last_login_at, a.created_at)
                                                      THEN a.inactivity_warnings_sent ELSE 0 END AS sent) w
                     WHERE coalesce(a.last_login_at, a.created_at) <= p_at - s.ambassador_inactivity + wn * wi
                       AND a.status <> 'leaving'
                       AND w.sent < wn
                       AND w.base + s.ambassador_inactivity - (wn - w.sent) * wi <= p_at
                       AND (w.sent = 0 OR a.last_inactivity_warning_at + wi <= p_at)
                       FOR UPDATE OF a),
                q AS (
                    INSERT INTO popsell.outbox (kind, ambassador_id, payload, created_at)
                    SELECT 'inactivity_warning', d.id,
                           jsonb_build_object('warning', d.k, 'of', wn,
                                              'deletion_not_before', greatest(d.deadline, p_at + wi)),
                           p_at
                      FROM due d
                    RETURNING ambassador_id)
                UPDATE popsell.ambassadors a
                   SET inactivity_warnings_sent = d.k, last_inactivity_warning_at = p_at
                  FROM due d
                 WHERE a.id = d.id;
                GET DIAGNOSTICS m = ROW_COUNT;
                n := n + m;
            END IF;
        END IF;

    WHEN 'contact_never_invited' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE c.ambassador_optin = 'new'
               AND c.ambassador_optin_at <= p_at - s.new_contact_invitation_window
               AND NOT popsell.is_brand_visible(c.brand_optin, c.partners_optin) AND NOT c.restricted;
        ELSE
            mark := popsell._erasure_push('contact_never_invited', false);
            DELETE FROM popsell.contacts c
             WHERE c.ambassador_optin = 'new'
               AND c.ambassador_optin_at <= p_at - s.new_contact_invitation_window
               AND NOT popsell.is_brand_visible(c.brand_optin, c.partners_optin) AND NOT c.restricted;
            GET DIAGNOSTICS n = ROW_COUNT;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'invitation_reminder' THEN
        -- Only contacts the sending guard lets receive it; the others are
        -- not marked and become optout_no_response at two windows.
        IF p_preview THEN
            SELECT count(*) INTO n
              FROM popsell.contacts c
              JOIN popsell.ambassadors a ON a.id = c.ambassador_id AND a.status = 'active'
             WHERE c.ambassador_optin = 'invitation_sent'
               AND c.invitation_sent_at <= p_at - s.invitation_response_window
               AND c.invitation_sent_at > p_at - 2 * s.invitation_response_window
               AND (c.reminder_sent_at IS NULL OR c.reminder_sent_at < c.invitation_sent_at)
               AND c.email IS NOT NULL AND c.email_status = 'ok' AND NOT c.restricted;
        ELSE
            WITH due AS (
                SELECT c.id, c.ambassador_id, c.invitation_sent_at
                  FROM popsell.contacts c
                  JOIN popsell.ambassadors a ON a.id = c.ambassador_id AND a.status = 'active'
                 WHERE c.ambassador_optin = 'invitation_sent'
                   AND c.invitation_sent_at <= p_at - s.invitation_response_window
                   AND c.invitation_sent_at > p_at - 2 * s.invitation_response_window
                   AND (c.reminder_sent_at IS NULL OR c.reminder_sent_at < c.invitation_sent_at)
                   AND c.email IS NOT NULL AND c.email_status = 'ok' AND NOT c.restricted
                   FOR UPDATE OF c),
            q AS (
                INSERT INTO popsell.outbox (kind, ambassador_id, contact_id, payload, created_at)
                SELECT 'invitation_reminder', d.ambassador_id, d.id,
                       jsonb_build_object('invitation_sent_at', d.invitation_sent_at), p_at
                  FROM due d
                RETURNING contact_id)
            UPDATE popsell.contacts c SET reminder_sent_at = p_at
              FROM q WHERE c.id = q.contact_id;
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;

    WHEN 'invitation_no_response' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE c.ambassador_optin = 'invitation_sent'
               AND c.invitation_sent_at <= p_at - 2 * s.invitation_response_window;
        ELSE
            UPDATE popsell.contacts c SET ambassador_optin = 'optout_no_response'
             WHERE c.ambassador_optin = 'invitation_sent'
               AND c.invitation_sent_at <= p_at - 2 * s.invitation_response_window;
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;

    WHEN 'email_unconfirmed' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE popsell.is_pending_confirmation(c.source, c.email_confirmed_at)
               AND c.created_at <= p_at - s.email_confirmation_window
               AND NOT c.restricted;
        ELSE
            mark := popsell._erasure_push('email_unconfirmed', false);
            DELETE FROM popsell.contacts c
             WHERE popsell.is_pending_confirmation(c.source, c.email_confirmed_at)
               AND c.created_at <= p_at - s.email_confirmation_window
               AND NOT c.restricted;
            GET DIAGNOSTICS n = ROW_COUNT;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'contact_opted_out' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE popsell.is_opted_out(c.ambassador_optin)
               AND c.ambassador_optin_at <= p_at - s.optout_retention
               AND NOT popsell.is_brand_visible(c.brand_optin, c.partners_optin) AND NOT c.restricted;
        ELSE
            mark := popsell._erasure_push('contact_opted_out', true);
            DELETE FROM popsell.contacts c
             WHERE popsell.is_opted_out(c.ambassador_optin)
               AND c.ambassador_optin_at <= p_at - s.optout_retention
               AND NOT popsell.is_brand_visible(c.brand_optin, c.partners_optin) AND NOT c.restricted;
            GET DIAGNOSTICS n = ROW_COUNT;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'contact_inactive' THEN
        -- Every contact the rules above left (opted-out brand-visible
        -- rows, brand_sync rows, whatever their consent), restricted ones
        -- excepted (art. 18): no contact is kept forever (v2 coverage).
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE NOT c.restricted
               AND greatest(c.last_activity_at, c.ambassador_optin_at, c.brand_optin_at, c.created_at)
                   <= p_at - s.contact_inactivity;
        ELSE
            mark := popsell._erasure_push('contact_inactive', true);
            DELETE FROM popsell.contacts c
             WHERE NOT c.restricted
               AND greatest(c.last_activity_at, c.ambassador_optin_at, c.brand_optin_at, c.created_at)
                   <= p_at - s.contact_inactivity;
            GET DIAGNOSTICS n = ROW_COUNT;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'program_suspended', 'brand_contract_ended' THEN
        IF (p_rule = 'program_suspended'
            AND s.program_suspended_at IS NOT NULL AND s.program_suspended_at + s.suspension_max <= p_at)
           OR (p_rule = 'brand_contract_ended'
               AND s.brand_contract_ended_at IS NOT NULL AND s.brand_contract_ended_at + s.deletion_grace <= p_at) THEN
            n := popsell._erase_all_personal_data(p_rule, p_at, p_preview);
        END IF;

    WHEN 'contest_ugc' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.ugc u
             WHERE u.ambassador_id IS NULL
               AND NOT EXISTS (SELECT 1 FROM popsell.contests k
                                WHERE k.id = u.contest_id AND k.reuse_until > p_at);
        ELSE
            WITH u AS (
                DELETE FROM popsell.ugc u
                 WHERE u.ambassador_id IS NULL
                   AND NOT EXISTS (SELECT 1 FROM popsell.contests k
                                    WHERE k.id = u.contest_id AND k.reuse_until > p_at)
                RETURNING u.id, u.file_path)
            INSERT INTO popsell.outbox (kind, payload, created_at)
            SELECT 'delete_file', jsonb_build_object('file_path', u.file_path, 'what', 'ugc', 'ugc_id', u.id), p_at
              FROM u;
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;

    WHEN 'logs' THEN
        -- The activity log and sent outbox rows (personal data) age as of
        -- AT; the run record (the audit of these rules) by the wall clock,
        -- so a run "in the future" cannot age earlier runs away.
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.activity_log l WHERE l.created_at < p_at - s.log_retention;
            SELECT count(*) INTO m FROM popsell.outbox o
             WHERE o.sent_at IS NOT NULL AND o.sent_at < p_at - s.log_retention;
            n := n + m;
            SELECT count(*) INTO m FROM popsell.maintenance_runs r
             WHERE r.finished_at < pg_catalog.now() - s.log_retention;
        ELSE
            DELETE FROM popsell.activity_log l WHERE l.created_at < p_at - s.log_retention;
            GET DIAGNOSTICS n = ROW_COUNT;
            DELETE FROM popsell.outbox o
             WHERE o.sent_at IS NOT NULL AND o.sent_at < p_at - s.log_retention;
            GET DIAGNOSTICS m = ROW_COUNT;
            n := n + m;
            DELETE FROM popsell.maintenance_runs r
             WHERE r.finished_at < pg_catalog.now() - s.log_retention;
            GET DIAGNOSTICS m = ROW_COUNT;
        END IF;
        n := n + m;

    ELSE
        RAISE EXCEPTION 'unknown maintenance rule "%"', p_rule
            USING ERRCODE = 'PS500', HINT = 'See SELECT * FROM popsell.maintenance_rules().';
    END CASE;
    RETURN n;
END
$$;
COMMENT ON FUNCTION popsell._maintenance_rule(text, timestamptz, boolean) IS
    'Internal: apply (or, with preview, count) one retention rule as of a time; returns the rows acted on.';

CREATE OR REPLACE FUNCTION popsell.ambassadors_erase_row() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mark bigint;
    stamp timestamptz;
BEGIN
    IF TG_LEVEL <> 'ROW' OR TG_WHEN <> 'BEFORE' OR TG_OP <> 'DELETE'
       OR TG_TABLE_SCHEMA <> 'popsell' OR TG_TABLE_NAME <> 'ambassadors' THEN
        RAISE EXCEPTION 'popsell.ambassadors_erase_row() handles BEFORE DELETE rows of popsell.ambassadors only'
            USING ERRCODE = 'PS900';
    END IF;
    IF popsell._restoring() THEN
        RETURN OLD;
    END IF;
    stamp := popsell._erasure_now();
    mark := popsell._erasure_push('ambassador_deleted', true);

    -- restricted contacts (art. 18) stay too, without ambassador
    DELETE FROM popsell.contacts c
     WHERE c.ambassador_id = OLD.id
       AND NOT popsell.is_brand_visible(c.brand_optin, c.partners_optin) AND NOT c.restricted;

    WITH u AS (
        DELETE FROM popsell.ugc u
         WHERE u.ambassador_id = OLD.id
           AND (u.contest_id IS NULL
                OR NOT EXISTS (SELECT 1 FROM popsell.contests k
                                WHERE k.id = u.contest_id AND k.reuse_until > stamp))
        RETURNING u.id, u.file_path)
    INSERT INTO popsell.outbox (kind, payload, created_at)
    SELECT 'delete_file'::popsell.outbox_kind, jsonb_build_object('file_path', u.file_path, 'what', 'ugc', 'ugc_id', u.id), stamp
      FROM u
    UNION ALL
    SELECT 'delete_file', jsonb_build_object('file_path', OLD.photo_path, 'what', 'ambassador_photo'), stamp
     WHERE nullif(OLD.photo_path, '') IS NOT NULL;

    DELETE FROM popsell.outbox o
     WHERE o.ambassador_id = OLD.id AND o.sent_at IS NULL
       AND o.kind NOT IN ('delete_file', 'partner_erasure');
    -- sent messages keep no personal data of the erased ambassador (v2)
    UPDATE popsell.outbox o SET payload = '{}'
     WHERE o.ambassador_id = OLD.id AND o.sent_at IS NOT NULL AND o.payload <> '{}';

    PERFORM popsell._erasure_pop(mark);
    RETURN OLD;
END
$$;
COMMENT ON FUNCTION popsell.ambassadors_erase_row() IS
    'Trigger: before an ambassador row is deleted, erase its contacts that are neither brand-visible nor restricted, its UGC (contest UGC stays until reuse end) and unsent messages, empty the payload of its sent ones; queue its files.';

-- src/updates/1.1--2.0/14_retention.sql
-- Retention v2 (SPEC sections 3, 6 and 7, v2): every unrestricted contact
-- covered by contact_inactive, restricted contacts kept by every rule,
-- activity however recorded, the run's guard a lock only popsell_owner
-- can take, skipped runs recorded, `at` beyond a day for the owner only,
-- audit rows aged by the wall clock, settings floors and vendor-only
-- windows and a single row, sent outbox rows scrubbed on erasure and
-- aged out, ambassador tombstones keeping why it left, publications
-- cancelled when an ambassador starts leaving.

-- Settings: windows below the new one-day floor are raised to it (the
-- guard trigger is not there yet).
UPDATE popsell.settings
   SET deletion_grace = greatest(deletion_grace, interval '1 day'),
       ambassador_inactivity = greatest(ambassador_inactivity, interval '1 day'),
       inactivity_warning_interval = greatest(inactivity_warning_interval, interval '1 day'),
       new_contact_invitation_window = greatest(new_contact_invitation_window, interval '1 day'),
       invitation_response_window = greatest(invitation_response_window, interval '1 day'),
       email_confirmation_window = greatest(email_confirmation_window, interval '1 day'),
       optout_retention = greatest(optout_retention, interval '1 day'),
       contact_inactivity = greatest(contact_inactivity, interval '1 day'),
       suspension_max = greatest(suspension_max, interval '1 day'),
       log_retention = greatest(log_retention, interval '1 day');
ALTER TABLE popsell.settings DROP CONSTRAINT settings_check;

ALTER TABLE popsell.settings ADD
CONSTRAINT settings_window_floor
    CHECK (deletion_grace >= '1 day'::interval AND ambassador_inactivity >= '1 day'::interval
           AND inactivity_warning_interval >= '1 day'::interval
           AND new_contact_invitation_window >= '1 day'::interval
           AND invitation_response_window >= '1 day'::interval
           AND email_confirmation_window >= '1 day'::interval
           AND optout_retention >= '1 day'::interval AND contact_inactivity >= '1 day'::interval
           AND suspension_max >= '1 day'::interval AND log_retention >= '1 day'::interval);

REVOKE UPDATE (deletion_grace, suspension_max) ON popsell.settings FROM popsell_brand;

-- contact_inactive's index follows its new predicate.
DROP INDEX popsell.contacts_inactivity_idx;

CREATE INDEX contacts_inactivity_idx ON popsell.contacts
    ((greatest(last_activity_at, ambassador_optin_at, brand_optin_at, created_at)))
    WHERE NOT restricted;


ALTER TABLE popsell.maintenance_runs ADD COLUMN
outcome     text NOT NULL DEFAULT 'done'
                CONSTRAINT maintenance_runs_outcome CHECK (outcome IN ('done', 'failed', 'skipped'));

UPDATE popsell.maintenance_runs SET outcome = 'failed' WHERE failed_sqlstate IS NOT NULL;

COMMENT ON COLUMN popsell.maintenance_runs.outcome IS
    'done; failed (failed_sqlstate says why); skipped (another run held the lock, or the rule gave up waiting for a lock: 55P03).';


CREATE TABLE popsell.maintenance_lock (
    id boolean PRIMARY KEY DEFAULT true CHECK (id)
);
COMMENT ON TABLE popsell.maintenance_lock IS
    'Internal: always empty; run_maintenance locks it (EXCLUSIVE, NOWAIT) so runs do not overlap. Owner only.';


CREATE INDEX outbox_sent_idx ON popsell.outbox (sent_at) WHERE sent_at IS NOT NULL;


CREATE FUNCTION popsell._maintenance_lock_timeout()
    RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN '30s';
COMMENT ON FUNCTION popsell._maintenance_lock_timeout() IS
    'Internal: the longest a retention rule waits for a lock held by another session (a shorter session lock_timeout wins).';


CREATE OR REPLACE FUNCTION popsell._maintenance_rule(p_rule text, p_at timestamptz, p_preview boolean)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s popsell.settings;
    n bigint := 0;
    m bigint := 0;
    mark bigint;
    wi interval;
    wn integer;
BEGIN
    SELECT * INTO STRICT s FROM popsell.settings;
    wi := s.inactivity_warning_interval;
    wn := s.inactivity_warnings;

    CASE p_rule
    WHEN 'ambassador_leaving' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.ambassadors a
             WHERE a.deletion_due_at IS NOT NULL AND a.deletion_due_at <= p_at;
        ELSE
            mark := popsell._erasure_push('ambassador_leaving', true);
            DELETE FROM popsell.ambassadors a
             WHERE a.deletion_due_at IS NOT NULL AND a.deletion_due_at <= p_at;
            GET DIAGNOSTICS n = ROW_COUNT;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'ambassador_inactive' THEN
        -- deadline = coalesce(last_login_at, created_at) + ambassador_inactivity.
        -- Warnings count only when queued after the last login (a login
        -- cancels).  Warning k of N is due at deadline - (N-k+1) intervals,
        -- and never sooner than one interval after the previous one; the
        -- deletion comes at the deadline once all N are queued, and never
        -- sooner than one interval after the last.
        IF p_preview THEN
            SELECT count(*) INTO n
              FROM popsell.ambassadors a
              CROSS JOIN LATERAL (SELECT coalesce(a.last_login_at, a.created_at) AS base,
                                         CASE WHEN a.last_inactivity_warning_at > coalesce(a.last_login_at, a.created_at)
                                              THEN a.inactivity_warnings_sent ELSE 0 END AS sent) w
             WHERE coalesce(a.last_login_at, a.created_at) <= p_at - s.ambassador_inactivity + wn * wi
               AND a.status <> 'leaving'
               AND (   (w.sent >= wn AND w.base + s.ambassador_inactivity <= p_at
                        AND (wn = 0 OR a.last_inactivity_warning_at + wi <= p_at))
                    OR (w.sent < wn
                        AND w.base + s.ambassador_inactivity - (wn - w.sent) * wi <= p_at
                        AND (w.sent = 0 OR a.last_inactivity_warning_at + wi <= p_at)));
        ELSE
            mark := popsell._erasure_push('inactive', true);
            DELETE FROM popsell.ambassadors a
             WHERE coalesce(a.last_login_at, a.created_at) <= p_at - s.ambassador_inactivity
               AND a.status <> 'leaving'
               AND (wn = 0
                    OR (a.last_inactivity_warning_at > coalesce(a.last_login_at, a.created_at)
                        AND a.inactivity_warnings_sent >= wn
                        AND a.last_inactivity_warning_at + wi <= p_at));
            GET DIAGNOSTICS n = ROW_COUNT;
            PERFORM popsell._erasure_pop(mark);
            IF wn > 0 THEN
                WITH due AS (
                    SELECT a.id, w.sent + 1 AS k,
                           w.base + s.ambassador_inactivity AS deadline
                      FROM popsell.ambassadors a
                      CROSS JOIN LATERAL (SELECT coalesce(a.last_login_at, a.created_at) AS base,
                                                 CASE WHEN a.last_inactivity_warning_at > coalesce(a.last_login_at, a.created_at)
                                                      THEN a.inactivity_warnings_sent ELSE 0 END AS sent) w
                     WHERE coalesce(a.last_login_at, a.created_at) <= p_at - s.ambassador_inactivity + wn * wi
                       AND a.status <> 'leaving'
                       AND w.sent < wn
                       AND w.base + s.ambassador_inactivity - (wn - w.sent) * wi <= p_at
                       AND (w.sent = 0 OR a.last_inactivity_warning_at + wi <= p_at)
                       FOR UPDATE OF a),
                q AS (
                    INSERT INTO popsell.outbox (kind, ambassador_id, payload, created_at)
                    SELECT 'inactivity_warning', d.id,
                           jsonb_build_object('warning', d.k, 'of', wn,
                                              'deletion_not_before', greatest(d.deadline, p_at + wi)),
                           p_at
                      FROM due d
                    RETURNING ambassador_id)
                UPDATE popsell.ambassadors a
                   SET inactivity_warnings_sent = d.k, last_inactivity_warning_at = p_at
                  FROM due d
                 WHERE a.id = d.id;
                GET DIAGNOSTICS m = ROW_COUNT;
                n := n + m;
            END IF;
        END IF;

    WHEN 'contact_never_invited' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE c.ambassador_optin = 'new'
               AND c.ambassador_optin_at <= p_at - s.new_contact_invitation_window
               AND NOT popsell.is_brand_visible(c.brand_optin, c.partners_optin) AND NOT c.restricted;
        ELSE
            mark := popsell._erasure_push('contact_never_invited', false);
            DELETE FROM popsell.contacts c
             WHERE c.ambassador_optin = 'new'
               AND c.ambassador_optin_at <= p_at - s.new_contact_invitation_window
               AND NOT popsell.is_brand_visible(c.brand_optin, c.partners_optin) AND NOT c.restricted;
            GET DIAGNOSTICS n = ROW_COUNT;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'invitation_reminder' THEN
        -- Only contacts the sending guard lets receive it; the others are
        -- not marked and become optout_no_response at two windows.
        IF p_preview THEN
            SELECT count(*) INTO n
              FROM popsell.contacts c
              JOIN popsell.ambassadors a ON a.id = c.ambassador_id AND a.status = 'active'
             WHERE c.ambassador_optin = 'invitation_sent'
               AND c.invitation_sent_at <= p_at - s.invitation_response_window
               AND c.invitation_sent_at > p_at - 2 * s.invitation_response_window
               AND (c.reminder_sent_at IS NULL OR c.reminder_sent_at < c.invitation_sent_at)
               AND c.email IS NOT NULL AND c.email_status = 'ok' AND NOT c.restricted;
        ELSE
            WITH due AS (
                SELECT c.id, c.ambassador_id, c.invitation_sent_at
                  FROM popsell.contacts c
                  JOIN popsell.ambassadors a ON a.id = c.ambassador_id AND a.status = 'active'
                 WHERE c.ambassador_optin = 'invitation_sent'
                   AND c.invitation_sent_at <= p_at - s.invitation_response_window
                   AND c.invitation_sent_at > p_at - 2 * s.invitation_response_window
                   AND (c.reminder_sent_at IS NULL OR c.reminder_sent_at < c.invitation_sent_at)
                   AND c.email IS NOT NULL AND c.email_status = 'ok' AND NOT c.restricted
                   FOR UPDATE OF c),
            q AS (
                INSERT INTO popsell.outbox (kind, ambassador_id, contact_id, payload, created_at)
                SELECT 'invitation_reminder', d.ambassador_id, d.id,
                       jsonb_build_object('invitation_sent_at', d.invitation_sent_at), p_at
                  FROM due d
                RETURNING contact_id)
            UPDATE popsell.contacts c SET reminder_sent_at = p_at
              FROM q WHERE c.id = q.contact_id;
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;

    WHEN 'invitation_no_response' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE c.ambassador_optin = 'invitation_sent'
               AND c.invitation_sent_at <= p_at - 2 * s.invitation_response_window;
        ELSE
            UPDATE popsell.contacts c SET ambassador_optin = 'optout_no_response'
             WHERE c.ambassador_optin = 'invitation_sent'
               AND c.invitation_sent_at <= p_at - 2 * s.invitation_response_window;
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;

    WHEN 'email_unconfirmed' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE popsell.is_pending_confirmation(c.source, c.email_confirmed_at)
               AND c.created_at <= p_at - s.email_confirmation_window
               AND NOT c.restricted;
        ELSE
            mark := popsell._erasure_push('email_unconfirmed', false);
            DELETE FROM popsell.contacts c
             WHERE popsell.is_pending_confirmation(c.source, c.email_confirmed_at)
               AND c.created_at <= p_at - s.email_confirmation_window
               AND NOT c.restricted;
            GET DIAGNOSTICS n = ROW_COUNT;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'contact_opted_out' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE popsell.is_opted_out(c.ambassador_optin)
               AND c.ambassador_optin_at <= p_at - s.optout_retention
               AND NOT popsell.is_brand_visible(c.brand_optin, c.partners_optin) AND NOT c.restricted;
        ELSE
            mark := popsell._erasure_push('contact_opted_out', true);
            DELETE FROM popsell.contacts c
             WHERE popsell.is_opted_out(c.ambassador_optin)
               AND c.ambassador_optin_at <= p_at - s.optout_retention
               AND NOT popsell.is_brand_visible(c.brand_optin, c.partners_optin) AND NOT c.restricted;
            GET DIAGNOSTICS n = ROW_COUNT;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'contact_inactive' THEN
        -- Every contact the rules above left (opted-out brand-visible
        -- rows, brand_sync rows, whatever their consent), restricted ones
        -- excepted (art. 18): no contact is kept forever (v2 coverage).
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE NOT c.restricted
               AND greatest(c.last_activity_at, c.ambassador_optin_at, c.brand_optin_at, c.created_at)
                   <= p_at - s.contact_inactivity;
        ELSE
            mark := popsell._erasure_push('contact_inactive', true);
            DELETE FROM popsell.contacts c
             WHERE NOT c.restricted
               AND greatest(c.last_activity_at, c.ambassador_optin_at, c.brand_optin_at, c.created_at)
                   <= p_at - s.contact_inactivity;
            GET DIAGNOSTICS n = ROW_COUNT;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'program_suspended', 'brand_contract_ended' THEN
        IF (p_rule = 'program_suspended'
            AND s.program_suspended_at IS NOT NULL AND s.program_suspended_at + s.suspension_max <= p_at)
           OR (p_rule = 'brand_contract_ended'
               AND s.brand_contract_ended_at IS NOT NULL AND s.brand_contract_ended_at + s.deletion_grace <= p_at) THEN
            n := popsell._erase_all_personal_data(p_rule, p_at, p_preview);
        END IF;

    WHEN 'contest_ugc' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.ugc u
             WHERE u.ambassador_id IS NULL
               AND NOT EXISTS (SELECT 1 FROM popsell.contests k
                                WHERE k.id = u.contest_id AND k.reuse_until > p_at);
        ELSE
            WITH u AS (
                DELETE FROM popsell.ugc u
                 WHERE u.ambassador_id IS NULL
                   AND NOT EXISTS (SELECT 1 FROM popsell.contests k
                                    WHERE k.id = u.contest_id AND k.reuse_until > p_at)
                RETURNING u.id, u.file_path)
            INSERT INTO popsell.outbox (kind, payload, created_at)
            SELECT 'delete_file', jsonb_build_object('file_path', u.file_path, 'what', 'ugc', 'ugc_id', u.id), p_at
              FROM u;
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;

    WHEN 'logs' THEN
        -- The activity log and sent outbox rows (personal data) age as of
        -- AT; the run record (the audit of these rules) by the wall clock,
        -- so a run "in the future" cannot age earlier runs away.
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.activity_log l WHERE l.created_at < p_at - s.log_retention;
            SELECT count(*) INTO m FROM popsell.outbox o
             WHERE o.sent_at IS NOT NULL AND o.sent_at < p_at - s.log_retention;
            n := n + m;
            SELECT count(*) INTO m FROM popsell.maintenance_runs r
             WHERE r.finished_at < pg_catalog.now() - s.log_retention;
        ELSE
            DELETE FROM popsell.activity_log l WHERE l.created_at < p_at - s.log_retention;
            GET DIAGNOSTICS n = ROW_COUNT;
            DELETE FROM popsell.outbox o
             WHERE o.sent_at IS NOT NULL AND o.sent_at < p_at - s.log_retention;
            GET DIAGNOSTICS m = ROW_COUNT;
            n := n + m;
            DELETE FROM popsell.maintenance_runs r
             WHERE r.finished_at < pg_catalog.now() - s.log_retention;
            GET DIAGNOSTICS m = ROW_COUNT;
        END IF;
        n := n + m;

    ELSE
        RAISE EXCEPTION 'unknown maintenance rule "%"', p_rule
            USING ERRCODE = 'PS500', HINT = 'See SELECT * FROM popsell.maintenance_rules().';
    END CASE;
    RETURN n;
END
$$;
COMMENT ON FUNCTION popsell._maintenance_rule(text, timestamptz, boolean) IS
    'Internal: apply (or, with preview, count) one retention rule as of a time; returns the rows acted on.';


CREATE OR REPLACE FUNCTION popsell._erase_all_personal_data(p_reason text, p_at timestamptz, p_preview boolean)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint := 0;
    m bigint;
    mark bigint;
BEGIN
    IF p_preview THEN
        SELECT (SELECT count(*) FROM popsell.contacts c WHERE NOT c.restricted)
             + (SELECT count(*) FROM popsell.ambassadors)
             + (SELECT count(*) FROM popsell.ugc)
          INTO n;
        RETURN n;
    END IF;
    mark := popsell._erasure_push(p_reason, true);
    -- restricted contacts (art. 18) stay, without ambassador
    DELETE FROM popsell.contacts c WHERE NOT c.restricted;
    GET DIAGNOSTICS m = ROW_COUNT;
    n := n + m;
    WITH u AS (DELETE FROM popsell.ugc u RETURNING u.id, u.file_path)
    INSERT INTO popsell.outbox (kind, payload, created_at)
    SELECT 'delete_file', jsonb_build_object('file_path', u.file_path, 'what', 'ugc', 'ugc_id', u.id), p_at
      FROM u;
    GET DIAGNOSTICS m = ROW_COUNT;
    n := n + m;
    DELETE FROM popsell.community_reactions;
    DELETE FROM popsell.publications;
    DELETE FROM popsell.social_grants;
    DELETE FROM popsell.gamification;
    DELETE FROM popsell.activity_log;
    DELETE FROM popsell.outbox o
     WHERE o.sent_at IS NULL AND o.kind NOT IN ('delete_file', 'partner_erasure');
    DELETE FROM popsell.ambassadors;
    GET DIAGNOSTICS m = ROW_COUNT;
    n := n + m;
    PERFORM popsell._erasure_pop(mark);
    RETURN n;
END
$$;
COMMENT ON FUNCTION popsell._erase_all_personal_data(text, timestamptz, boolean) IS
    'Internal: erase every contact, ambassador and UGC (program suspended too long, brand contract ended); returns the count.';


CREATE OR REPLACE FUNCTION popsell.run_maintenance(at timestamptz DEFAULT pg_catalog.now())
    RETURNS TABLE (rule text, affected bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'system'
    SET popsell.as_of = ''
    SET datestyle = 'ISO, YMD'
AS $$
DECLARE
    p_at timestamptz := run_maintenance.at;
    run bigint;
    r text;
    n bigint;
    t0 timestamptz;
    st text;
    app text := current_setting('application_name');
    lt text := current_setting('lock_timeout');
BEGIN
    IF p_at IS NULL THEN
        RAISE EXCEPTION 'run_maintenance needs a time'
            USING ERRCODE = 'PS500', HINT = 'Call popsell.run_maintenance() (now) or pass a timestamptz.';
    END IF;
    -- A run "in the future" erases what is not due yet: the owner's
    -- (tests, previews on a copy) only.
    IF p_at > pg_catalog.now() + interval '1 day' AND NOT popsell._caller_in('popsell_owner') THEN
        RAISE EXCEPTION 'run_maintenance(at) refuses an as-of time more than one day after now()'
            USING ERRCODE = 'PS501',
                  DETAIL = pg_catalog.format('at = %s, now() = %s.', p_at, pg_catalog.now()),
                  HINT = 'Call popsell.run_maintenance() (now); popsell.maintenance_preview(at) shows what a later run would do.';
    END IF;
    IF pg_is_in_recovery() THEN
        RAISE NOTICE 'popsell.run_maintenance does nothing on a standby';
        RETURN QUERY SELECT x, NULL::bigint FROM popsell.maintenance_rules() AS x;
        RETURN;
    END IF;
    run := nextval('popsell.maintenance_run_id_seq');
    -- One run at a time per database; an overlapping run is skipped (its
    -- work is done by the one holding the lock, or by the next run) and
    -- says so in the record.
    BEGIN
        LOCK TABLE popsell.maintenance_lock IN EXCLUSIVE MODE NOWAIT;
    EXCEPTION WHEN lock_not_available THEN
        RAISE NOTICE 'popsell.run_maintenance skipped: another run is in progress';
        INSERT INTO popsell.maintenance_runs (run_id, rule, affected, as_of, started_at, run_by,
                                              failed_sqlstate, outcome)
        SELECT run, x, 0, p_at, clock_timestamp(), session_user, '55P03', 'skipped'
          FROM popsell.maintenance_rules() AS x;
        RETURN QUERY SELECT x, NULL::bigint FROM popsell.maintenance_rules() AS x;
        RETURN;
    END;
    -- Never wait forever on a lock another session holds (an open
    -- transaction of an application role on a due row).
    IF lt = '0' OR lt::interval > popsell._maintenance_lock_timeout()::interval THEN
        PERFORM set_config('lock_timeout', popsell._maintenance_lock_timeout(), true);
    END IF;
    PERFORM set_config('popsell.as_of', p_at::text, true);
    FOR r IN SELECT x FROM popsell.maintenance_rules() AS x LOOP
        t0 := clock_timestamp();
        -- pg_stat_activity shows the rule in progress
        PERFORM set_config('application_name', pg_catalog.left('popsell_maintenance: ' || r, 63), true);
        BEGIN
            n := popsell._maintenance_rule(r, p_at, false);
            INSERT INTO popsell.maintenance_runs (run_id, rule, affected, as_of, started_at, run_by)
            VALUES (run, r, n, p_at, t0, session_user);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
            IF st = '55P03' THEN
                RAISE WARNING 'popsell maintenance rule % skipped: it waited too long for a lock (SQLSTATE %); the next run does it', r, st;
            ELSE
                RAISE WARNING 'popsell maintenance rule % failed with SQLSTATE %; its work is rolled back and retried next run', r, st;
            END IF;
            n := NULL;
            INSERT INTO popsell.maintenance_runs (run_id, rule, affected, as_of, started_at, run_by,
                                                  failed_sqlstate, outcome)
            VALUES (run, r, 0, p_at, t0, session_user, st,
                    CASE WHEN st = '55P03' THEN 'skipped' ELSE 'failed' END);
        END;
        rule := r;
        affected := n;
        RETURN NEXT;
    END LOOP;
    PERFORM set_config('application_name', app, true);
    PERFORM set_config('lock_timeout', lt, true);
END
$$;
COMMENT ON FUNCTION popsell.run_maintenance(timestamptz) IS
    'Apply every retention and reminder rule as of AT (default now), set-based and idempotent; one popsell.maintenance_runs row per rule. Skipped (and recorded as skipped) while another run holds the lock; a rule waiting too long for a lock is skipped and recorded; no-op on a standby. AT more than one day after now() is refused (PS501) except for popsell_owner. application_name shows the rule in progress.';


CREATE OR REPLACE FUNCTION popsell.contact_activity() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t timestamptz := popsell._lifecycle_now();
BEGIN
    IF TG_LEVEL <> 'STATEMENT' OR TG_WHEN <> 'AFTER' OR TG_OP <> 'INSERT' OR TG_TABLE_SCHEMA <> 'popsell'
       OR TG_TABLE_NAME NOT IN ('interactions', 'sales') THEN
        RAISE EXCEPTION 'popsell.contact_activity() handles AFTER INSERT statements on interactions and sales only'
            USING ERRCODE = 'PS900';
    END IF;
    IF popsell._restoring() THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'interactions' THEN
        UPDATE popsell.contacts c SET last_activity_at = a.at
          FROM (SELECT n.contact_id, max(least(n.occurred_at, t)) AS at
                  FROM added_interactions n
                 WHERE n.contact_id IS NOT NULL AND n.kind <> 'open'
                 GROUP BY n.contact_id) a
         WHERE c.id = a.contact_id AND (c.last_activity_at IS NULL OR c.last_activity_at < a.at);
    ELSE
        UPDATE popsell.contacts c SET last_activity_at = a.at
          FROM (SELECT n.contact_id, max(least(n.sold_at, t)) AS at
                  FROM added_sales n
                 WHERE n.contact_id IS NOT NULL
                 GROUP BY n.contact_id) a
         WHERE c.id = a.contact_id AND (c.last_activity_at IS NULL OR c.last_activity_at < a.at);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION popsell.contact_activity() IS
    'Trigger: inserted interactions other than open, and sales, move their contacts'' last_activity_at (a future time counts as now), however the rows are written.';


CREATE TRIGGER popsell_61_activity
    AFTER INSERT ON popsell.interactions
    REFERENCING NEW TABLE AS added_interactions
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.contact_activity();

CREATE TRIGGER popsell_61_activity
    AFTER INSERT ON popsell.sales
    REFERENCING NEW TABLE AS added_sales
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.contact_activity();


CREATE OR REPLACE FUNCTION popsell.settings_guard() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    w text;
    v interval;
BEGIN
    IF TG_TABLE_SCHEMA <> 'popsell' OR TG_TABLE_NAME <> 'settings' OR TG_WHEN <> 'BEFORE' THEN
        RAISE EXCEPTION 'popsell.settings_guard() handles BEFORE triggers on popsell.settings only'
            USING ERRCODE = 'PS900';
    END IF;
    IF popsell._restoring() THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_OP IN ('DELETE', 'TRUNCATE', 'INSERT') THEN
        RAISE EXCEPTION '% on popsell.settings is refused: it holds exactly one row', TG_OP
            USING ERRCODE = 'PS510',
                  DETAIL = 'Every retention rule reads its windows from that row.',
                  HINT = 'UPDATE popsell.settings to change the configuration.';
    END IF;
    FOREACH w IN ARRAY ARRAY['deletion_grace', 'ambassador_inactivity', 'inactivity_warning_interval',
                             'new_contact_invitation_window', 'invitation_response_window',
                             'email_confirmation_window', 'optout_retention', 'contact_inactivity',
                             'suspension_max', 'log_retention'] LOOP
        v := pg_catalog.to_jsonb(NEW) ->> w;
        IF v < interval '1 day' THEN
            RAISE EXCEPTION 'settings.% must be at least 1 day, not %', w, v
                USING ERRCODE = 'PS510',
                      DETAIL = 'Every retention window has a floor of one day.',
                      HINT = pg_catalog.format('SET %s to 1 day or more.', w);
        END IF;
    END LOOP;
    IF (NEW.suspension_max IS DISTINCT FROM OLD.suspension_max
        OR NEW.deletion_grace IS DISTINCT FROM OLD.deletion_grace)
       AND NOT (popsell._caller_in('popsell_owner') OR popsell._caller_in('popsell_account_team')
                OR popsell._caller_in('popsell_technical')) THEN
        RAISE EXCEPTION 'permission denied to change settings.suspension_max or settings.deletion_grace'
            USING ERRCODE = '42501',
                  DETAIL = 'These windows end in a brand-wide erasure: vendor staff (popsell_account_team, popsell_technical) set them.',
                  HINT = 'Ask the vendor''s account team.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION popsell.settings_guard() IS
    'Trigger: popsell.settings keeps exactly one row (PS510 on INSERT, DELETE, TRUNCATE, for every role), every window is at least one day (PS510), suspension_max and deletion_grace change only by vendor staff (42501).';


CREATE TRIGGER popsell_20_settings_guard
    BEFORE INSERT OR UPDATE OR DELETE ON popsell.settings
    FOR EACH ROW EXECUTE FUNCTION popsell.settings_guard();
CREATE TRIGGER popsell_20_settings_truncate
    BEFORE TRUNCATE ON popsell.settings
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.settings_guard();
-- also with session_replication_role = replica
ALTER TABLE popsell.settings ENABLE ALWAYS TRIGGER popsell_20_settings_guard;
ALTER TABLE popsell.settings ENABLE ALWAYS TRIGGER popsell_20_settings_truncate;


CREATE OR REPLACE FUNCTION popsell.contacts_erase() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ctx_reason text;
    ctx_tombstone boolean;
    mark bigint;
    stamp timestamptz;
BEGIN
    IF TG_LEVEL <> 'STATEMENT' OR TG_WHEN <> 'AFTER' OR TG_OP <> 'DELETE'
       OR TG_TABLE_SCHEMA <> 'popsell' OR TG_TABLE_NAME <> 'contacts' THEN
        RAISE EXCEPTION 'popsell.contacts_erase() handles AFTER DELETE statements on popsell.contacts only'
            USING ERRCODE = 'PS900';
    END IF;
    IF popsell._restoring() THEN
        RETURN NULL;
    END IF;
    SELECT e.reason, e.tombstone INTO ctx_reason, ctx_tombstone
      FROM popsell.erasure_context e
     WHERE NOT e.ledger
     ORDER BY e.id DESC LIMIT 1;
    ctx_reason := coalesce(ctx_reason, 'deleted');
    ctx_tombstone := coalesce(ctx_tombstone, true);
    stamp := popsell._erasure_now();
    mark := popsell._erasure_push(ctx_reason, ctx_tombstone, true);

    -- One statement per branch, so the transition table is read once.
    -- Unsent messages are cancelled, sent ones lose the link and their
    -- payload (the address and names mailed: v2); the ledger,
    -- interactions and sales move to the tombstone (or go with the
    -- contact when it leaves none); partners are told (GDPR art. 19).
    IF ctx_tombstone THEN
        WITH t AS (
            INSERT INTO popsell.contact_tombstones
                   (contact_id, ambassador_id, source, ambassador_optin, brand_optin, partners_optin,
                    key_id, email_hash, facebook_id_hash, twitter_id_hash, instagram_id_hash,
                    city, postal_code, deleted_at, reason)
            SELECT g.id, g.ambassador_id, g.source, g.ambassador_optin, g.brand_optin, g.partners_optin,
                   popsell.hash_key_id(),
                   popsell.hash_email(nullif(g.email, '')),
                   popsell.hash_identifier(nullif(g.facebook_id, '')),
                   popsell.hash_identifier(nullif(g.twitter_id, '')),
                   popsell.hash_identifier(nullif(g.instagram_id, '')),
                   g.city, g.postal_code, stamp, ctx_reason
              FROM gone g
            RETURNING id, contact_id, partners_optin),
        o1 AS (
            DELETE FROM popsell.outbox o USING t
             WHERE o.contact_id = t.contact_id AND o.sent_at IS NULL),
        o2 AS (
            UPDATE popsell.outbox o SET contact_id = NULL, payload = '{}'
              FROM t WHERE o.contact_id = t.contact_id AND o.sent_at IS NOT NULL),
        ce AS (
            UPDATE popsell.consent_events e
               SET contact_tombstone_id = t.id, contact_id = NULL
              FROM t WHERE e.contact_id = t.contact_id),
        i AS (
            UPDATE popsell.interactions x
               SET contact_tombstone_id = t.id, contact_id = NULL
              FROM t WHERE x.contact_id = t.contact_id),
        s AS (
            UPDATE popsell.sales x
               SET contact_tombstone_id = t.id, contact_id = NULL
              FROM t WHERE x.contact_id = t.contact_id)
        INSERT INTO popsell.outbox (kind, payload, created_at)
        SELECT 'partner_erasure',
               jsonb_build_object('contact_id', t.contact_id, 'contact_tombstone_id', t.id,
                                  'reason', ctx_reason),
               stamp
          FROM t WHERE t.partners_optin;
    ELSE
        WITH g AS MATERIALIZED (
            SELECT gone.id, gone.partners_optin FROM gone),
        o1 AS (
            DELETE FROM popsell.outbox o USING g
             WHERE o.contact_id = g.id AND o.sent_at IS NULL),
        o2 AS (
            UPDATE popsell.outbox o SET contact_id = NULL, payload = '{}'
              FROM g WHERE o.contact_id = g.id AND o.sent_at IS NOT NULL),
        ce AS (
            DELETE FROM popsell.consent_events e USING g WHERE e.contact_id = g.id),
        i AS (
            DELETE FROM popsell.interactions x USING g WHERE x.contact_id = g.id),
        s AS (
            DELETE FROM popsell.sales x USING g WHERE x.contact_id = g.id)
        INSERT INTO popsell.outbox (kind, payload, created_at)
        SELECT 'partner_erasure',
               jsonb_build_object('contact_id', g.id, 'contact_tombstone_id', NULL, 'reason', ctx_reason),
               stamp
          FROM g WHERE g.partners_optin;
    END IF;

    PERFORM popsell._erasure_pop(mark);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION popsell.contacts_erase() IS
    'Trigger: erasure of deleted contacts, set-based: tombstones (unless the retention rule says none), ledger, interactions and sales re-pointed, unsent outbox rows cancelled, partners told.';


CREATE OR REPLACE FUNCTION popsell.ambassadors_erase_row() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mark bigint;
    stamp timestamptz;
BEGIN
    IF TG_LEVEL <> 'ROW' OR TG_WHEN <> 'BEFORE' OR TG_OP <> 'DELETE'
       OR TG_TABLE_SCHEMA <> 'popsell' OR TG_TABLE_NAME <> 'ambassadors' THEN
        RAISE EXCEPTION 'popsell.ambassadors_erase_row() handles BEFORE DELETE rows of popsell.ambassadors only'
            USING ERRCODE = 'PS900';
    END IF;
    IF popsell._restoring() THEN
        RETURN OLD;
    END IF;
    stamp := popsell._erasure_now();
    mark := popsell._erasure_push('ambassador_deleted', true);

    -- restricted contacts (art. 18) stay too, without ambassador
    DELETE FROM popsell.contacts c
     WHERE c.ambassador_id = OLD.id
       AND NOT popsell.is_brand_visible(c.brand_optin, c.partners_optin) AND NOT c.restricted;

    WITH u AS (
        DELETE FROM popsell.ugc u
         WHERE u.ambassador_id = OLD.id
           AND (u.contest_id IS NULL
                OR NOT EXISTS (SELECT 1 FROM popsell.contests k
                                WHERE k.id = u.contest_id AND k.reuse_until > stamp))
        RETURNING u.id, u.file_path)
    INSERT INTO popsell.outbox (kind, payload, created_at)
    SELECT 'delete_file'::popsell.outbox_kind, jsonb_build_object('file_path', u.file_path, 'what', 'ugc', 'ugc_id', u.id), stamp
      FROM u
    UNION ALL
    SELECT 'delete_file', jsonb_build_object('file_path', OLD.photo_path, 'what', 'ambassador_photo'), stamp
     WHERE nullif(OLD.photo_path, '') IS NOT NULL;

    DELETE FROM popsell.outbox o
     WHERE o.ambassador_id = OLD.id AND o.sent_at IS NULL
       AND o.kind NOT IN ('delete_file', 'partner_erasure');
    -- sent messages keep no personal data of the erased ambassador (v2)
    UPDATE popsell.outbox o SET payload = '{}'
     WHERE o.ambassador_id = OLD.id AND o.sent_at IS NOT NULL AND o.payload <> '{}';

    PERFORM popsell._erasure_pop(mark);
    RETURN OLD;
END
$$;
COMMENT ON FUNCTION popsell.ambassadors_erase_row() IS
    'Trigger: before an ambassador row is deleted, erase its contacts that are neither brand-visible nor restricted, its UGC (contest UGC stays until reuse end) and unsent messages, empty the payload of its sent ones; queue its files.';


CREATE OR REPLACE FUNCTION popsell.ambassadors_erase() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ctx_reason text;
    mark bigint;
BEGIN
    IF TG_LEVEL <> 'STATEMENT' OR TG_WHEN <> 'AFTER' OR TG_OP <> 'DELETE'
       OR TG_TABLE_SCHEMA <> 'popsell' OR TG_TABLE_NAME <> 'ambassadors' THEN
        RAISE EXCEPTION 'popsell.ambassadors_erase() handles AFTER DELETE statements on popsell.ambassadors only'
            USING ERRCODE = 'PS900';
    END IF;
    IF popsell._restoring() THEN
        RETURN NULL;
    END IF;
    SELECT e.reason INTO ctx_reason
      FROM popsell.erasure_context e
     WHERE NOT e.ledger
     ORDER BY e.id DESC LIMIT 1;
    INSERT INTO popsell.ambassador_tombstones
           (ambassador_id, created_at, key_id, email_hash, customer_id_hash, facebook_id_hash,
            city, postal_code, birth_year, deleted_at, reason)
    SELECT g.id, g.created_at, popsell.hash_key_id(),
           popsell.hash_email(nullif(g.email, '')),
           popsell.hash_identifier(nullif(g.customer_id, '')),
           popsell.hash_identifier(nullif(g.facebook_id, '')),
           g.city, g.postal_code, extract(year FROM g.birth_date)::integer,
           popsell._erasure_now(),
           -- why it left (unsubscribed, contract_ended, sso_deleted), not
           -- just that its grace period ended
           CASE WHEN ctx_reason = 'ambassador_leaving' THEN coalesce(g.leaving_reason, ctx_reason)
                ELSE coalesce(ctx_reason, g.leaving_reason, 'deleted') END
      FROM gone g;
    -- A login role is named for the person: the ledger keeps that an
    -- ambassador acted, not which one by name.
    IF EXISTS (SELECT 1 FROM gone g WHERE g.login_role IS NOT NULL) THEN
        mark := popsell._erasure_push(coalesce(ctx_reason, 'deleted'), true, true);
        UPDATE popsell.consent_events e SET actor_role = 'popsell_ambassador'
          FROM gone g
         WHERE g.login_role IS NOT NULL AND e.actor_role = g.login_role;
        PERFORM popsell._erasure_pop(mark);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION popsell.ambassadors_erase() IS
    'Trigger: tombstones of deleted ambassadors (signup date, keyed hashes, city, postal code, birth year), set-based; their login role name leaves the ledger.';


CREATE OR REPLACE FUNCTION popsell._start_leaving(a popsell.ambassadors, p_reason text) RETURNS timestamptz
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    due timestamptz := popsell._lifecycle_now() OPERATOR(pg_catalog.+)
                       (SELECT s.deletion_grace FROM popsell.settings s);
BEGIN
    PERFORM popsell._refuse_leaving(a);
    UPDATE popsell.ambassadors
       SET status = 'leaving', leaving_reason = p_reason, deletion_due_at = due
     WHERE id OPERATOR(pg_catalog.=) a.id;
    -- its publications still queued are not mailed during the grace
    -- period (a restore does not bring them back)
    DELETE FROM popsell.outbox o
     WHERE o.ambassador_id OPERATOR(pg_catalog.=) a.id AND o.sent_at IS NULL
       AND o.kind OPERATOR(pg_catalog.=) 'publication';
    RETURN due;
END
$$;
COMMENT ON FUNCTION popsell._start_leaving(popsell.ambassadors, text) IS
    'Internal: block an ambassador''s access, cancel its queued publications and set its deletion after settings.deletion_grace.';


-- maintenance_status: the new columns come last.
CREATE OR REPLACE VIEW popsell.maintenance_status WITH (security_invoker = true) AS
SELECT r.rule,
       r.position::integer AS position,
       l.run_id AS last_run_id,
       l.as_of AS last_as_of,
       l.finished_at AS last_finished_at,
       l.affected AS last_affected,
       l.failed_sqlstate AS last_failed_sqlstate,
       l.run_by AS last_run_by,
       ok.finished_at AS last_success_at,
       coalesce(f.failures, 0) AS failures_since_success,
       p.affected AS due_now,
       l.started_at AS last_started_at,
       l.finished_at OPERATOR(pg_catalog.-) l.started_at AS last_duration,
       CASE WHEN l.run_id IS NULL THEN NULL
            WHEN l.failed_sqlstate IS NULL THEN 'done'
            WHEN l.outcome OPERATOR(pg_catalog.=) 'skipped' THEN 'skipped'
            ELSE 'failed' END AS last_outcome,
       pg_catalog.now() OPERATOR(pg_catalog.-) ok.finished_at AS last_success_age,
       coalesce(f.skipped, 0) AS skipped_since_success
  FROM popsell.maintenance_rules() WITH ORDINALITY AS r(rule, position)
  LEFT JOIN LATERAL (
        SELECT m.run_id, m.as_of, m.started_at, m.finished_at, m.affected, m.failed_sqlstate, m.run_by,
               m.outcome
          FROM popsell.maintenance_runs m
         WHERE m.rule OPERATOR(pg_catalog.=) r.rule
         ORDER BY m.id DESC
         LIMIT 1) AS l ON true
  LEFT JOIN LATERAL (
        SELECT m.id, m.finished_at
          FROM popsell.maintenance_runs m
         WHERE m.rule OPERATOR(pg_catalog.=) r.rule
           AND m.failed_sqlstate IS NULL
         ORDER BY m.id DESC
         LIMIT 1) AS ok ON true
  LEFT JOIN LATERAL (
        SELECT pg_catalog.count(*) FILTER (WHERE m.outcome OPERATOR(pg_catalog.<>) 'skipped') AS failures,
               pg_catalog.count(*) FILTER (WHERE m.outcome OPERATOR(pg_catalog.=) 'skipped') AS skipped
          FROM popsell.maintenance_runs m
         WHERE m.rule OPERATOR(pg_catalog.=) r.rule
           AND m.failed_sqlstate IS NOT NULL
           AND m.id OPERATOR(pg_catalog.>) coalesce(ok.id, 0)) AS f ON true
  LEFT JOIN popsell.maintenance_preview(pg_catalog.now()) AS p
         ON p.rule OPERATOR(pg_catalog.=) r.rule;


COMMENT ON VIEW popsell.maintenance_status IS
    'Health of the retention job, one row per rule in run order: the last run of popsell.run_maintenance (as-of time, start, finish, duration, outcome, rows, failed SQLSTATE, role), the last success and its age, failed and skipped runs since, and the rows due now (popsell.maintenance_preview). Counts only.';
COMMENT ON COLUMN popsell.maintenance_status.rule IS 'Retention rule (popsell.maintenance_rules()).';
COMMENT ON COLUMN popsell.maintenance_status.position IS 'Order in which run_maintenance applies the rule.';
COMMENT ON COLUMN popsell.maintenance_status.last_run_id IS 'Run number of the last run that recorded this rule; NULL if it never ran.';
COMMENT ON COLUMN popsell.maintenance_status.last_as_of IS 'The time the last run applied the rule as of (run_maintenance(at)).';
COMMENT ON COLUMN popsell.maintenance_status.last_finished_at IS 'Wall-clock time the last run finished the rule.';
COMMENT ON COLUMN popsell.maintenance_status.last_affected IS 'Rows the last run acted on (0 when it failed).';
COMMENT ON COLUMN popsell.maintenance_status.last_failed_sqlstate IS 'SQLSTATE of the last run''s failure; NULL when it succeeded.';
COMMENT ON COLUMN popsell.maintenance_status.last_run_by IS 'Session role of the last run (popsell_maintenance under pg_cron).';
COMMENT ON COLUMN popsell.maintenance_status.last_success_at IS 'Wall-clock time of the last successful run of the rule.';
COMMENT ON COLUMN popsell.maintenance_status.failures_since_success IS 'Failed runs of the rule since its last success (alert when above 0).';
COMMENT ON COLUMN popsell.maintenance_status.last_started_at IS 'Wall-clock time the last run started the rule.';
COMMENT ON COLUMN popsell.maintenance_status.last_duration IS 'How long the last run of the rule took.';
COMMENT ON COLUMN popsell.maintenance_status.last_outcome IS 'done, failed, or skipped (another run held the lock, or a lock held by another session made the rule give up).';
COMMENT ON COLUMN popsell.maintenance_status.last_success_age IS 'now() minus last_success_at: above a day, the job has stopped running or keeps failing (alert).';
COMMENT ON COLUMN popsell.maintenance_status.skipped_since_success IS 'Skipped runs of the rule since its last success.';
COMMENT ON COLUMN popsell.maintenance_status.due_now IS 'Rows the rule would act on if run now (popsell.maintenance_preview(now())).';

-- src/updates/1.1--2.0/15_clients.sql

-- -------------------------------------------------------------------
-- Real clients (issue 15): identity per transaction, uninstall and
-- re-install, the outbox backlog, bulk loading.
-- -------------------------------------------------------------------

-- Identity per transaction: a parallel worker cannot tell a fresh
-- popsell.ambassador_id from a stale one, so the leader evaluates it.
ALTER FUNCTION popsell.current_ambassador_id() PARALLEL RESTRICTED;
COMMENT ON FUNCTION popsell.current_ambassador_id() IS
    'The active ambassador the current transaction acts as: by login_role, else by popsell.ambassador_id set by a trusted app in this transaction (SET LOCAL or set_config(..., true)); NULL for nobody.';

CREATE FUNCTION popsell._as_of() RETURNS timestamptz
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'popsell_as_of';
COMMENT ON FUNCTION popsell._as_of() IS
    'Internal: the time popsell.as_of names when it was set in the current transaction (run_maintenance), else NULL.';

CREATE OR REPLACE FUNCTION popsell._erasure_now()
    RETURNS timestamptz
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN coalesce(popsell._as_of(),
                    pg_catalog.now());
COMMENT ON FUNCTION popsell._erasure_now() IS
    'Internal: popsell.as_of when run_maintenance sets it, else now().';

CREATE OR REPLACE FUNCTION popsell._lifecycle_now() RETURNS timestamptz
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN coalesce(popsell._as_of(),
                    pg_catalog.now());
COMMENT ON FUNCTION popsell._lifecycle_now() IS
    'Internal: popsell.as_of when set, else now(): the time lifecycle functions stamp with.';
-- DROP EXTENSION popsell's guard: see 16_clients_fixes.sql.
-- The mail worker's health in one query: unsent outbox rows per kind and
-- the oldest one's age.  Counts only (no contact, no payload); the
-- owner's rights read the outbox, so the job role needs no access to it.
CREATE VIEW popsell.outbox_backlog WITH (security_barrier = true) AS
SELECT k.kind,
       coalesce(b.unsent, 0) AS unsent,
       b.oldest_created_at,
       pg_catalog.now() OPERATOR(pg_catalog.-) b.oldest_created_at AS oldest_age
  FROM pg_catalog.unnest(pg_catalog.enum_range(NULL::popsell.outbox_kind)) AS k(kind)
  LEFT JOIN (SELECT o.kind, pg_catalog.count(*) AS unsent, pg_catalog.min(o.created_at) AS oldest_created_at
               FROM popsell.outbox o
              WHERE o.sent_at IS NULL
              GROUP BY o.kind) b ON b.kind OPERATOR(pg_catalog.=) k.kind;
COMMENT ON VIEW popsell.outbox_backlog IS
    'Unsent popsell.outbox rows per kind (every kind, 0 when none), the oldest one''s created_at and age: the mail worker''s health. Counts only, no personal data. Readable by popsell_technical, popsell_account_team and popsell_maintenance.';
GRANT SELECT ON popsell.outbox_backlog TO popsell_technical, popsell_account_team, popsell_maintenance;

-- src/updates/1.1--2.0/16_clients_fixes.sql

-- -------------------------------------------------------------------
-- Real clients, review fixes: pg_cron objects only as members of the
-- extension pg_cron installed in its own database; DROP EXTENSION's guard
-- in PL/pgSQL (ddl_command_start/end), no C on the DDL path; the mail
-- worker reads the outbox backlog.
-- -------------------------------------------------------------------

CREATE OR REPLACE FUNCTION popsell._cron_object(kind text, name text)
    RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cron_db text;
    ext oid;
    found text;
BEGIN
    IF kind IS NULL OR kind OPERATOR(pg_catalog.<>) ALL (ARRAY['function', 'table']) OR name IS NULL THEN
        RAISE EXCEPTION 'popsell._cron_object needs a kind (function or table) and a name'
            USING ERRCODE = 'PS500', HINT = 'E.g. popsell._cron_object(''function'', ''unschedule(bigint)'').';
    END IF;
    -- cron.database_name is readable only by superusers and members of
    -- pg_read_all_settings ('' here for others: pg_cron's own CREATE
    -- EXTENSION check then stands for it).
    BEGIN
        cron_db := current_setting('cron.database_name', true);
    EXCEPTION WHEN insufficient_privilege THEN
        cron_db := '';
    END;
    IF cron_db IS NULL
       OR (cron_db OPERATOR(pg_catalog.<>) '' AND cron_db OPERATOR(pg_catalog.<>) current_database()) THEN
        RETURN NULL;                             -- pg_cron not loaded, or lives elsewhere
    END IF;
    SELECT e.oid INTO ext FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'pg_cron';
    IF ext IS NULL THEN
        RETURN NULL;
    END IF;
    -- Among the extension's own members only (pg_depend deptype 'e'):
    -- pg_cron creates its schema cron itself (its extnamespace is the
    -- schema current at CREATE EXTENSION, not that one).
    IF kind OPERATOR(pg_catalog.=) 'function' THEN
        SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(p.proname)
          INTO found
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) d.objid
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
           AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND d.refobjid OPERATOR(pg_catalog.=) ext
           AND d.deptype OPERATOR(pg_catalog.=) 'e'
           AND p.proname OPERATOR(pg_catalog.=) pg_catalog.split_part(name, '(', 1)
           AND pg_catalog.replace(pg_catalog.oidvectortypes(p.proargtypes), ' ', '')
               OPERATOR(pg_catalog.=) pg_catalog.replace(pg_catalog.rtrim(pg_catalog.split_part(name, '(', 2), ')'), ' ', '');
    ELSE
        SELECT c.oid::pg_catalog.regclass::pg_catalog.text
          INTO found
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.objid
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND d.refobjid OPERATOR(pg_catalog.=) ext
           AND d.deptype OPERATOR(pg_catalog.=) 'e'
           AND c.relname OPERATOR(pg_catalog.=) name
           AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[]);
    END IF;
    RETURN found;                                -- schema-qualified, for format('%s')
END
$$;
COMMENT ON FUNCTION popsell._cron_object(text, text) IS
    'Internal: the schema-qualified name of pg_cron''s function (kind ''function'', name with argument types) or table (kind ''table''), or NULL unless pg_cron lives in this database (cron.database_name), its extension is installed here and the object is a member of it.';

CREATE OR REPLACE FUNCTION popsell._cron_missing(call text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cron_db text;
BEGIN
    BEGIN
        cron_db := current_setting('cron.database_name', true);
    EXCEPTION WHEN insufficient_privilege THEN
        cron_db := '';
    END;
    RAISE EXCEPTION 'pg_cron is not installed in database %', current_database()
        USING ERRCODE = 'PS500',
              DETAIL = CASE WHEN cron_db IS NULL
                            THEN 'pg_cron is not loaded (shared_preload_libraries) in this server.'
                            WHEN cron_db = ''
                            THEN 'Only superusers can read cron.database_name, the database pg_cron lives in.'
                            WHEN cron_db = current_database()
                            THEN 'pg_cron lives in this database (cron.database_name) but the extension pg_cron is not installed here; a schema named cron that is not pg_cron''s is never used.'
                            ELSE format('pg_cron lives in database %s (cron.database_name).', cron_db) END,
              HINT = CASE WHEN cron_db = current_database()
                          THEN format('Run CREATE EXTENSION pg_cron as a superuser, then: %s', call)
                          ELSE format('Connect to the pg_cron database%s as a superuser and run: %s',
                                      coalesce(' ' || quote_ident(nullif(cron_db, '')), ''), call) END;
END
$$;
COMMENT ON FUNCTION popsell._cron_missing(text) IS
    'Internal: raises PS500 saying where pg_cron lives and the exact call to run there.';

CREATE OR REPLACE FUNCTION popsell.schedule_jobs(schedule text DEFAULT '17 3 * * *')
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn text;
    job bigint;
BEGIN
    IF schedule IS NULL OR btrim(schedule) = '' THEN
        RAISE EXCEPTION 'schedule_jobs needs a cron schedule'
            USING ERRCODE = 'PS500', HINT = 'E.g. SELECT popsell.schedule_jobs(''17 3 * * *'');';
    END IF;
    fn := popsell._cron_object('function', 'schedule_in_database(text,text,text,text,text,boolean)');
    IF fn IS NULL THEN
        PERFORM popsell._cron_missing(
            format('SELECT cron.schedule_in_database(%L, %L, %L, %L, %L);',
                   popsell._cron_job_name(), schedule, 'SELECT popsell.run_maintenance()',
                   current_database(), 'popsell_maintenance'));
    END IF;
    EXECUTE format('SELECT %s($1, $2, $3, $4, $5, true)', fn)
       INTO job
      USING popsell._cron_job_name(), schedule, 'SELECT popsell.run_maintenance()',
            current_database()::text, 'popsell_maintenance'::text;
    RETURN job;
END
$$;
COMMENT ON FUNCTION popsell.schedule_jobs(text) IS
    'Register popsell.run_maintenance() with pg_cron (run as popsell_maintenance) when pg_cron lives in this database and its extension is installed here; else PS500 with the exact cron.schedule_in_database call to run there.';

CREATE OR REPLACE FUNCTION popsell.unschedule_jobs()
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn text;
    job text;
    n bigint;
BEGIN
    fn := popsell._cron_object('function', 'unschedule(bigint)');
    job := popsell._cron_object('table', 'job');
    IF fn IS NULL OR job IS NULL THEN
        PERFORM popsell._cron_missing(
            format('SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = %L AND database = %L;',
                   popsell._cron_job_name(), current_database()));
    END IF;
    EXECUTE format('SELECT count(%s(j.jobid)) FROM %s j WHERE j.jobname OPERATOR(pg_catalog.=) $1 AND j.database OPERATOR(pg_catalog.=) $2',
                   fn, job)
       INTO n
      USING popsell._cron_job_name(), current_database()::text;
    RETURN n;
END
$$;
COMMENT ON FUNCTION popsell.unschedule_jobs() IS
    'Remove the pg_cron job of popsell.run_maintenance for this database (pg_cron installed here, in the database it lives in); returns how many jobs were removed; else PS500 with the exact call to run in the pg_cron database.';
GRANT EXECUTE ON FUNCTION popsell._cron_object(text, text), popsell._cron_missing(text) TO popsell_technical;

CREATE OR REPLACE FUNCTION popsell._drop_guard() RETURNS event_trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cron_db text;
    fn text;
    job text;
    held jsonb;
    stmt text;
BEGIN
    BEGIN
        cron_db := current_setting('cron.database_name', true);
    EXCEPTION WHEN insufficient_privilege THEN
        cron_db := '';
    END;
    IF cron_db IS NULL THEN
        RETURN;                                  -- pg_cron is not loaded: no job anywhere
    END IF;
    IF TG_EVENT OPERATOR(pg_catalog.=) 'ddl_command_end' THEN
        -- popsell survived the statement: put back what ddl_command_start took
        held := NULLIF(pg_catalog.current_setting('popsell_drop.held_jobs', true), '')::jsonb;
        IF held IS NULL THEN
            RETURN;
        END IF;
        PERFORM pg_catalog.set_config('popsell_drop.held_jobs', '', true);
        job := popsell._cron_object('table', 'job');
        IF job IS NOT NULL THEN                  -- else the statement dropped pg_cron itself
            EXECUTE pg_catalog.format('INSERT INTO %s SELECT r.* FROM pg_catalog.jsonb_populate_recordset(NULL::%s, $1) r', job, job)
              USING held;
        END IF;
        RETURN;
    END IF;

    -- a copy left by a statement that dropped popsell earlier in this
    -- transaction is not this statement's
    PERFORM pg_catalog.set_config('popsell_drop.held_jobs', '', true);
    fn := popsell._cron_object('function', 'unschedule(bigint)');
    job := popsell._cron_object('table', 'job');
    IF fn IS NOT NULL AND job IS NOT NULL THEN
        -- only a superuser may remove (and put back) popsell_maintenance's job
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                        WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER AND r.rolsuper) THEN
            RETURN;
        END IF;
        EXECUTE pg_catalog.format('SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(j)) FROM %s j '
                                  'WHERE j.jobname OPERATOR(pg_catalog.=) $1 AND j.database OPERATOR(pg_catalog.=) $2', job)
           INTO held
          USING popsell._cron_job_name(), pg_catalog.current_database()::text;
        IF held IS NULL THEN
            RETURN;
        END IF;
        PERFORM pg_catalog.set_config('popsell_drop.held_jobs', held::text, true);
        EXECUTE pg_catalog.format('SELECT pg_catalog.count(%s(j.jobid)) FROM %s j '
                                  'WHERE j.jobname OPERATOR(pg_catalog.=) $1 AND j.database OPERATOR(pg_catalog.=) $2', fn, job)
          USING popsell._cron_job_name(), pg_catalog.current_database()::text;
    ELSIF cron_db OPERATOR(pg_catalog.<>) '' AND cron_db OPERATOR(pg_catalog.<>) pg_catalog.current_database() THEN
        -- Quiet only for a client's single DROP statement that neither
        -- names popsell nor cascades (DROP OWNED drops owned extensions
        -- without CASCADE): such a statement cannot drop popsell.
        stmt := pg_catalog.rtrim(pg_catalog.current_query(), E'; \t\r\n');
        IF TG_TAG OPERATOR(pg_catalog.<>) 'DROP OWNED'
           AND stmt OPERATOR(pg_catalog.~*) '^\s*drop\s'
           AND pg_catalog.strpos(stmt, ';') OPERATOR(pg_catalog.=) 0
           AND stmt OPERATOR(pg_catalog.!~*) '(popsell|cascade)' THEN
            RETURN;
        END IF;
        RAISE WARNING 'popsell: pg_cron lives in database %; if this statement drops the extension popsell, remove its job for database % there', cron_db, pg_catalog.current_database()
            USING HINT = pg_catalog.format('Connect to the pg_cron database %s as a superuser and run: %s',
                                           pg_catalog.quote_ident(cron_db),
                                           pg_catalog.format('SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = %L AND database = %L;',
                                                             popsell._cron_job_name(), pg_catalog.current_database()));
    END IF;
END
$$;
COMMENT ON FUNCTION popsell._drop_guard() IS
    'Internal: event trigger function of popsell_drop_guard (ddl_command_start) and popsell_drop_guard_end (ddl_command_end); a statement that drops the extension popsell also removes this database''s pg_cron job, or warns with the exact cron.unschedule call when pg_cron lives in another database.';
CREATE EVENT TRIGGER popsell_drop_guard ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA', 'DROP OWNED', 'DROP LANGUAGE')
    EXECUTE FUNCTION popsell._drop_guard();
CREATE EVENT TRIGGER popsell_drop_guard_end ON ddl_command_end
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA', 'DROP OWNED', 'DROP LANGUAGE')
    EXECUTE FUNCTION popsell._drop_guard();

CREATE OR REPLACE VIEW popsell.outbox_backlog WITH (security_barrier = true) AS
SELECT k.kind,
       coalesce(b.unsent, 0) AS unsent,
       b.oldest_created_at,
       pg_catalog.now() OPERATOR(pg_catalog.-) b.oldest_created_at AS oldest_age
  FROM pg_catalog.unnest(pg_catalog.enum_range(NULL::popsell.outbox_kind)) AS k(kind)
  LEFT JOIN (SELECT o.kind, pg_catalog.count(*) AS unsent, pg_catalog.min(o.created_at) AS oldest_created_at
               FROM popsell.outbox o
              WHERE o.sent_at IS NULL
              GROUP BY o.kind) b ON b.kind OPERATOR(pg_catalog.=) k.kind;
COMMENT ON VIEW popsell.outbox_backlog IS
    'Unsent popsell.outbox rows per kind (every kind, 0 when none), the oldest one''s created_at and age: the mail worker''s health. Counts only, no personal data. Readable by popsell_app (the mail worker), popsell_technical, popsell_account_team and popsell_maintenance.';
-- popsell_app first, as a fresh install grants it
REVOKE SELECT ON popsell.outbox_backlog FROM popsell_technical, popsell_account_team, popsell_maintenance;
GRANT SELECT ON popsell.outbox_backlog TO popsell_app, popsell_technical, popsell_account_team, popsell_maintenance;

-- ===================================================================
-- Ownership, privileges, row security baseline and pg_dump, for every
-- object of the schema.  One idempotent step that the install script and
-- every upgrade script end with, so an upgrade cannot forget a table's
-- FORCE ROW LEVEL SECURITY, its owner or its pg_dump registration.
-- Upgrade scripts get this file appended by the Makefile.
-- ===================================================================

CREATE OR REPLACE FUNCTION popsell._finalize_extension() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    ext pg_catalog.oid;
BEGIN
    -- pg_extension_config_dump only works inside CREATE/ALTER EXTENSION;
    -- say so before changing anything.
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                    WHERE rolname OPERATOR(pg_catalog.=) pg_catalog.current_user()
                      AND rolsuper) THEN
        RAISE EXCEPTION 'popsell._finalize_extension() runs only in popsell''s install and upgrade scripts'
            USING ERRCODE = 'PS001',
                  HINT = 'Run CREATE EXTENSION popsell or ALTER EXTENSION popsell UPDATE as a superuser.';
    END IF;

    SELECT e.oid INTO ext FROM pg_catalog.pg_extension e
     WHERE e.extname OPERATOR(pg_catalog.=) 'popsell';

    -- Only the extension's own objects (pg_depend deptype 'e'): a DBA's
    -- table or function in the schema is none of popsell's business, and
    -- pg_extension_config_dump refuses non-members.

    -- Tables, sequences and views belong to the NOLOGIN popsell_owner, as
    -- do the SQL and PL/pgSQL functions (so SECURITY DEFINER ones run as
    -- it, not as a superuser).  C functions stay with the superuser.
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, c.relkind
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) c.oid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
         WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'v', 'm', 'p', 'S']::"char"[])
           AND c.relowner OPERATOR(pg_catalog.<>) 'popsell_owner'::pg_catalog.regrole
           -- a sequence owned by a column follows its table
           AND NOT (c.relkind OPERATOR(pg_catalog.=) 'S' AND EXISTS (
                    SELECT 1 FROM pg_catalog.pg_depend d
                     WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                       AND d.objid OPERATOR(pg_catalog.=) c.oid
                       AND d.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['a', 'i']::"char"[])))
    LOOP
        IF r.relkind OPERATOR(pg_catalog.=) 'S' THEN
            EXECUTE pg_catalog.format('ALTER SEQUENCE %s OWNER TO popsell_owner', r.obj);
        ELSE
            EXECUTE pg_catalog.format('ALTER TABLE %s OWNER TO popsell_owner', r.obj);
        END IF;
    END LOOP;
    FOR r IN
        SELECT p.oid::pg_catalog.regprocedure AS fn, l.lanname
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) p.oid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
          JOIN pg_catalog.pg_language l ON l.oid OPERATOR(pg_catalog.=) p.prolang
    LOOP
        IF r.lanname OPERATOR(pg_catalog.<>) 'c' THEN
            EXECUTE pg_catalog.format('ALTER FUNCTION %s OWNER TO popsell_owner', r.fn);
        END IF;
        -- Nothing of popsell is granted to PUBLIC; roles get what they
        -- need with each object.  popsell_owner runs popsell's functions.
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', r.fn);
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO popsell_owner', r.fn);
    END LOOP;
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, c.relkind
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) c.oid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
    LOOP
        IF r.relkind OPERATOR(pg_catalog.=) 'S' THEN
            EXECUTE pg_catalog.format('REVOKE ALL ON SEQUENCE %s FROM PUBLIC', r.obj);
        ELSE
            EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %s FROM PUBLIC', r.obj);
        END IF;
    END LOOP;
    REVOKE ALL ON SCHEMA popsell FROM PUBLIC;
    GRANT USAGE ON SCHEMA popsell TO popsell_owner;

    -- Types are usable by PUBLIC by default: only popsell's roles get
    -- them (enums, domains, composite types; not a table's row type).
    FOR r IN
        SELECT t.oid::pg_catalog.regtype AS typ
          FROM pg_catalog.pg_type t
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) t.oid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
         WHERE t.typtype OPERATOR(pg_catalog.=) ANY (ARRAY['e', 'd', 'c']::"char"[])
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON TYPE %s FROM PUBLIC', r.typ);
        EXECUTE pg_catalog.format('GRANT USAGE ON TYPE %s TO popsell_owner, popsell_ambassador, '
                                  'popsell_brand, popsell_brand_bi, popsell_account_team, '
                                  'popsell_technical, popsell_app, popsell_maintenance', r.typ);
    END LOOP;

    -- Row level security on every table, forced so the owner is subject to
    -- it too; popsell_owner (popsell's own functions and triggers) sees all
    -- rows, other roles get policies in the security section.
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, c.oid
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) c.oid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
         WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[])
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', r.obj);
        EXECUTE pg_catalog.format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', r.obj);
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy
                        WHERE polrelid OPERATOR(pg_catalog.=) r.oid
                          AND polname OPERATOR(pg_catalog.=) 'popsell_owner_all') THEN
            EXECUTE pg_catalog.format(
                'CREATE POLICY popsell_owner_all ON %s TO popsell_owner USING (true) WITH CHECK (true)', r.obj);
        END IF;
    END LOOP;

    -- pg_dump keeps what users filled (SPEC section 3, S9): every table
    -- and sequence, registered once.
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) c.oid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
          JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) ext
         WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p', 'S']::"char"[])
           AND NOT c.oid OPERATOR(pg_catalog.=) ANY (coalesce(e.extconfig, '{}'::pg_catalog.oid[]))
    LOOP
        PERFORM pg_catalog.pg_extension_config_dump(r.obj, '');
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION popsell._finalize_extension() FROM PUBLIC;
COMMENT ON FUNCTION popsell._finalize_extension() IS
    'Install and upgrade step (superuser only; the last statement of every install and upgrade script): every member table, view, sequence and non-C function owned by popsell_owner, nothing granted to PUBLIC, row security enabled and forced with the owner policy, every table and sequence registered for pg_dump. Idempotent.';

SELECT popsell._finalize_extension();
