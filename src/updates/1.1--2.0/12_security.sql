-- Security v2 (SPEC S11, section 2): no side channel through the planner.
-- Personal columns are indexed by lookup key, the brand's email index holds
-- only brand-visible rows, policies on rows tied to a contact run before a
-- caller's own conditions, the brand sees ambassadors who accepted the
-- terms, and nobody but vendor staff reads login_role.

-- (S12) The upgrade, like the install, refuses a popsell_owner that can
-- log in or has members, and a popsell role that bypasses row security.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles o
                WHERE o.rolname OPERATOR(pg_catalog.=) 'popsell_owner'
                  AND (o.rolcanlogin
                       OR EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m
                                   WHERE m.roleid OPERATOR(pg_catalog.=) o.oid))) THEN
        RAISE EXCEPTION 'role popsell_owner can log in or has members'
            USING ERRCODE = 'PS001',
                  DETAIL = 'popsell_owner owns the hashing keys and every popsell table; nobody may log in as it or become it.',
                  HINT = 'ALTER ROLE popsell_owner NOLOGIN and REVOKE popsell_owner FROM each member, then retry.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                WHERE r.rolname OPERATOR(pg_catalog.=) ANY ('{popsell_owner,popsell_ambassador,popsell_brand,popsell_brand_bi,popsell_account_team,popsell_technical,popsell_app,popsell_maintenance}'::name[])
                  AND (r.rolsuper OR r.rolbypassrls)) THEN
        RAISE EXCEPTION 'a popsell role is a superuser or has BYPASSRLS'
            USING ERRCODE = 'PS001',
                  DETAIL = 'popsell roles must be subject to row level security.',
                  HINT = 'ALTER ROLE ... NOSUPERUSER NOBYPASSRLS on each popsell_* role, then retry.';
    END IF;
END
$$;

CREATE FUNCTION popsell._lookup_key(value text) RETURNS bytea
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'popsell_lookup_key';
COMMENT ON FUNCTION popsell._lookup_key(text) IS
    'Internal: the key popsell indexes a personal column by (SHA-256 of the stored value); not leakproof on purpose, so no caller''s condition on it becomes an index condition.';
CREATE FUNCTION popsell._brand_lookup_key(value text) RETURNS bytea
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'popsell_lookup_key';
COMMENT ON FUNCTION popsell._brand_lookup_key(text) IS
    'Internal: popsell._lookup_key under the name of the index of brand-visible contacts (see popsell.brand_contacts_by_email); not leakproof.';

DROP INDEX popsell.ambassadors_email_key;
CREATE UNIQUE INDEX ambassadors_email_key ON popsell.ambassadors (popsell._lookup_key(email));
ALTER TABLE popsell.ambassadors DROP CONSTRAINT ambassadors_sso_subject_key;
CREATE UNIQUE INDEX ambassadors_sso_subject_key ON popsell.ambassadors (popsell._lookup_key(sso_subject));
DROP INDEX popsell.contacts_email_idx;
CREATE INDEX contacts_email_idx ON popsell.contacts (popsell._lookup_key(email)) WHERE email IS NOT NULL;
CREATE INDEX contacts_brand_email_idx ON popsell.contacts (popsell._brand_lookup_key(email))
    WHERE CASE WHEN restricted THEN false
               WHEN email_confirmed_at IS NULL AND source OPERATOR(pg_catalog.=) ANY ('{blog,blog_internal_form,store_purchase}'::popsell.contact_source[]) THEN false
               ELSE brand_optin OPERATOR(pg_catalog.<>) 'no_optin'::popsell.brand_optin OR partners_optin END;
-- Helpers that views, policies and queries call read only their arguments,
-- settings and the caller's role, all of which parallel workers share: a
-- PARALLEL UNSAFE helper (the default) anywhere in a query, even in an
-- initplan, keeps the whole query, such as a BI view's, off parallel plans.
ALTER FUNCTION popsell._caller_in(text) PARALLEL SAFE;
ALTER FUNCTION popsell.current_path() PARALLEL SAFE;
ALTER FUNCTION popsell.transition_rules() PARALLEL SAFE;
ALTER FUNCTION popsell.transition_allowed(text, text, text, text, popsell.contact_source) PARALLEL SAFE;
ALTER FUNCTION popsell.initial_optins(popsell.contact_source, boolean, boolean, boolean) PARALLEL SAFE;

-- Policy helpers for rows tied to a contact (SPEC S11).  A policy written
-- as EXISTS (subquery) is costed high, so PostgreSQL evaluates a caller's
-- cheaper leakproof condition first and runs the subquery only on the rows
-- that condition keeps: the subquery's index fetches (EXPLAIN ANALYZE,
-- pg_stat_xact_user_tables) would then count the rows matching the
-- caller's condition, visible or not.  These helpers are costed below any
-- operator, so the policy runs first, on every row the scan reads.  They
-- run with the caller's rights: the caller's own policies on
-- popsell.contacts and popsell.outbox decide.
CREATE FUNCTION popsell._sees_contact(contact_id bigint) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE COST 0.0001
    SET search_path = pg_catalog, pg_temp
    RETURN EXISTS (SELECT 1 FROM popsell.contacts c WHERE c.id OPERATOR(pg_catalog.=) _sees_contact.contact_id);
COMMENT ON FUNCTION popsell._sees_contact(bigint) IS
    'Policy helper: whether the caller sees this contact under its own row security (false for NULL). Every role with a policy using it.';
CREATE FUNCTION popsell._app_sees_contact(contact_id bigint) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE COST 0.0001
    SET search_path = pg_catalog, pg_temp
    RETURN EXISTS (SELECT 1 FROM popsell.outbox o
                    WHERE o.contact_id OPERATOR(pg_catalog.=) _app_sees_contact.contact_id
                      AND o.sent_at IS NULL);
COMMENT ON FUNCTION popsell._app_sees_contact(bigint) IS
    'Policy helper: whether a trusted application has an unsent outbox message for this contact. popsell_app.';

GRANT EXECUTE ON FUNCTION popsell._sees_contact(bigint)
    TO popsell_ambassador, popsell_brand, popsell_brand_bi, popsell_account_team,
       popsell_technical, popsell_app;
GRANT EXECUTE ON FUNCTION popsell._app_sees_contact(bigint) TO popsell_app;
GRANT EXECUTE ON FUNCTION popsell._lookup_key(text), popsell._brand_lookup_key(text)
    TO popsell_ambassador, popsell_brand, popsell_brand_bi, popsell_account_team,
       popsell_technical, popsell_app;

REVOKE SELECT (login_role) ON popsell.ambassadors FROM popsell_ambassador, popsell_brand;

DROP POLICY popsell_brand_select ON popsell.ambassadors;
CREATE POLICY popsell_brand_select ON popsell.ambassadors FOR SELECT TO popsell_brand
    USING (status OPERATOR(pg_catalog.<>) 'signup_incomplete'::popsell.ambassador_status);
COMMENT ON POLICY popsell_brand_select ON popsell.ambassadors IS
    'The brand sees ambassadors who accepted the terms (not signup_incomplete), without secrets (column grants: no password hash, no login role).';
DROP POLICY popsell_brand_update ON popsell.ambassadors;
CREATE POLICY popsell_brand_update ON popsell.ambassadors FOR UPDATE TO popsell_brand
    USING (status OPERATOR(pg_catalog.<>) 'signup_incomplete'::popsell.ambassador_status)
    WITH CHECK (true);
COMMENT ON POLICY popsell_brand_update ON popsell.ambassadors IS
    'Brand support agents rectify ambassador profiles (column grants say which fields).';
DROP POLICY popsell_app_select ON popsell.contacts;
CREATE POLICY popsell_app_select ON popsell.contacts FOR SELECT TO popsell_app
    USING (popsell._app_sees_contact(id));
COMMENT ON POLICY popsell_app_select ON popsell.contacts IS
    'Trusted applications read the contacts they have an unsent outbox message for.';
DROP POLICY popsell_ambassador_select ON popsell.interactions;
CREATE POLICY popsell_ambassador_select ON popsell.interactions FOR SELECT TO popsell_ambassador
    USING (popsell._sees_contact(contact_id));
COMMENT ON POLICY popsell_ambassador_select ON popsell.interactions IS
    'An ambassador sees interactions of the contacts it sees.';
DROP POLICY popsell_brand_select ON popsell.interactions;
CREATE POLICY popsell_brand_select ON popsell.interactions FOR SELECT TO popsell_brand
    USING (contact_id IS NULL OR popsell._sees_contact(contact_id));
COMMENT ON POLICY popsell_brand_select ON popsell.interactions IS
    'The brand sees interactions of brand-visible contacts and of erased ones (statistics).';
DROP POLICY popsell_ambassador_select ON popsell.consent_events;
CREATE POLICY popsell_ambassador_select ON popsell.consent_events FOR SELECT TO popsell_ambassador
    USING (popsell._sees_contact(contact_id));
COMMENT ON POLICY popsell_ambassador_select ON popsell.consent_events IS
    'An ambassador reads the consent proof of the contacts it sees.';
DROP POLICY popsell_brand_select ON popsell.consent_events;
CREATE POLICY popsell_brand_select ON popsell.consent_events FOR SELECT TO popsell_brand
    USING (popsell._sees_contact(contact_id));
COMMENT ON POLICY popsell_brand_select ON popsell.consent_events IS
    'The brand reads the consent proof of brand-visible contacts.';
DROP POLICY popsell_brand_select ON popsell.sales;
CREATE POLICY popsell_brand_select ON popsell.sales FOR SELECT TO popsell_brand
    USING (contact_id IS NULL OR popsell._sees_contact(contact_id));
COMMENT ON POLICY popsell_brand_select ON popsell.sales IS
    'The brand sees sales of brand-visible contacts and of erased ones (statistics).';

DROP VIEW popsell.brand_ambassadors;
CREATE VIEW popsell.brand_ambassadors WITH (security_invoker = true) AS
SELECT a.id, a.kind, a.status, a.created_at, a.first_name, a.last_name, a.customer_id,
       a.facebook_id, a.email, a.address, a.city, a.postal_code, a.country,
       a.preferred_language, a.birth_date, a.terms_accepted_at, a.photo_path, a.description,
       a.position, a.iban, a.hide_events, a.hide_from_community, a.newsletter_optin,
       a.event_notifications, a.challenge_notifications, a.comment_notifications,
       a.last_login_at, a.leaving_reason, a.deletion_due_at, a.sso_subject
  FROM popsell.ambassadors a
 WHERE a.status OPERATOR(pg_catalog.<>) 'signup_incomplete'::popsell.ambassador_status;
COMMENT ON VIEW popsell.brand_ambassadors IS
    'Ambassadors who accepted the terms, without secrets (no password hash, no login role, no IP data); security_invoker.';
GRANT SELECT ON popsell.brand_ambassadors TO popsell_brand, popsell_account_team, popsell_technical;

CREATE OR REPLACE VIEW popsell.bi_ambassadors WITH (security_barrier = true) AS
SELECT a.id, a.kind, a.status, a.created_at, a.first_name, a.last_name, a.customer_id,
       a.email, a.city, a.postal_code, a.country, a.preferred_language, a.terms_accepted_at,
       a.position, a.hide_from_community, a.newsletter_optin, a.last_login_at,
       a.leaving_reason, a.deletion_due_at
  FROM popsell.ambassadors a
 WHERE (SELECT popsell._caller_in('popsell_brand_bi'))
   AND a.status OPERATOR(pg_catalog.<>) 'signup_incomplete'::popsell.ambassador_status;
COMMENT ON VIEW popsell.bi_ambassadors IS
    'BI: ambassadors who accepted the terms, without secrets (no password hash, IBAN or IP data), read-only, for popsell_brand_bi.';

CREATE FUNCTION popsell.brand_contacts_by_email(email text) RETURNS SETOF popsell.brand_contacts
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e text := popsell.normalize_email(brand_contacts_by_email.email);
BEGIN
    RETURN QUERY
        SELECT b.* FROM popsell.brand_contacts b
         WHERE popsell._brand_lookup_key(b.email) OPERATOR(pg_catalog.=) popsell._brand_lookup_key(e);
END
$$;
COMMENT ON FUNCTION popsell.brand_contacts_by_email(text) IS
    'The brand-visible contacts (the rows of popsell.brand_contacts) with this email, normalized first, found through an index of brand-visible rows only. Brand and vendor staff. Errors: a malformed address as popsell.normalize_email.';
GRANT EXECUTE ON FUNCTION popsell.brand_contacts_by_email(text)
    TO popsell_brand, popsell_account_team, popsell_technical;

-- Lookups by email and SSO subject go through the lookup keys.
CREATE OR REPLACE FUNCTION popsell._blacklist_add(p_email text, p_reason popsell.blacklist_reason)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e text := popsell.normalize_email(p_email);
    n bigint;
BEGIN
    LOCK TABLE popsell.contacts IN SHARE ROW EXCLUSIVE MODE;
    IF popsell._email_rows_unseen(e) THEN
        RAISE EXCEPTION 'could not serialize access due to a concurrent insert of the same email'
            USING ERRCODE = '40001',
                  HINT = 'Retry the transaction.';
    END IF;
    INSERT INTO popsell.blacklist (email_hash, key_id, reason, created_at)
        SELECT popsell.hash_email(e), popsell.hash_key_id(), p_reason, now()
         WHERE NOT EXISTS (SELECT 1 FROM popsell.blacklist b
                            WHERE b.email_hash = ANY (popsell.email_hashes(e))
                              AND b.reason = p_reason);
    IF p_reason = 'global_optout' THEN
        UPDATE popsell.contacts SET ambassador_optin = 'global_optout'
         WHERE popsell._lookup_key(email) = popsell._lookup_key(e) AND ambassador_optin <> 'global_optout';
    ELSE
        UPDATE popsell.contacts SET email_status = p_reason::text::popsell.email_status
         WHERE popsell._lookup_key(email) = popsell._lookup_key(e) AND email_status NOT IN ('spam', 'hard_bounce', 'blocked');
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION popsell._blacklist_add(text, popsell.blacklist_reason) IS
    'Internal: blacklist an email (hashed) and apply it to every contact row with that email.';

CREATE OR REPLACE FUNCTION popsell.import_contacts(ambassador_id bigint, contacts jsonb)
    RETURNS TABLE (imported bigint, skipped_blacklisted bigint, skipped_duplicate bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'ambassador'
AS $$
DECLARE
    amb bigint := popsell._ambassador_for_caller(import_contacts.ambassador_id);
    candidates bigint;
    duplicates bigint;
    inserted bigint;
    bad text;
BEGIN
    IF contacts IS NULL OR jsonb_typeof(contacts) <> 'array' THEN
        RAISE EXCEPTION 'contacts must be a JSON array of objects'
            USING ERRCODE = 'PS106',
                  HINT = 'Pass e.g. ''[{"email": "a@example.test", "first_name": "A"}]''.';
    END IF;
    SELECT string_agg(DISTINCT k, ', ') INTO bad
      FROM jsonb_array_elements(contacts) AS x(o)
      CROSS JOIN LATERAL jsonb_object_keys(CASE WHEN jsonb_typeof(x.o) = 'object' THEN x.o ELSE '{"(not an object)": 1}' END) AS k
     WHERE k NOT IN ('source', 'first_name', 'last_name', 'email', 'facebook_id', 'twitter_id',
                     'instagram_id', 'public_photo_url', 'customer_id', 'contact_type', 'notes',
                     'address', 'city', 'postal_code', 'country', 'mobile_phone', 'home_phone',
                     'tags', 'created_at', 'last_activity_at', 'ambassador_optin', 'brand_optin');
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'import_contacts does not accept the keys: %', bad
            USING ERRCODE = 'PS106',
                  HINT = 'Use popsell.contacts column names for personal fields; consent comes from the source.';
    END IF;

    candidates := jsonb_array_length(contacts);

    -- One pass: a row is a duplicate when its email is already in this CRM
    -- or earlier in the list; globally opted-out rows go on to the trigger,
    -- which skips them, and are counted as such.
    WITH input AS (
        SELECT x.ord, p.*, popsell.normalize_email(nullif(btrim(p.email), '')) AS nemail
          FROM jsonb_array_elements(contacts) WITH ORDINALITY AS x(o, ord)
          CROSS JOIN LATERAL jsonb_populate_record(NULL::popsell.contacts, x.o) AS p),
    classified AS (
        SELECT r.*,
               r.nemail IS NOT NULL
               AND (r.rn > 1 OR EXISTS (SELECT 1 FROM popsell.contacts c
                                         WHERE c.ambassador_id = amb AND popsell._lookup_key(c.email) = popsell._lookup_key(r.nemail)))
               AND NOT popsell._globally_opted_out(r.nemail) AS duplicate
          FROM (SELECT i.*, row_number() OVER (PARTITION BY i.nemail ORDER BY i.ord) AS rn
                  FROM input i) r),
    ins AS (
        INSERT INTO popsell.contacts (ambassador_id, source, first_name, last_name, email, facebook_id,
                                      twitter_id, instagram_id, public_photo_url, customer_id,
                                      contact_type, notes, address, city, postal_code, country,
                                      mobile_phone, home_phone, tags, created_at, last_activity_at,
                                      ambassador_optin, brand_optin)
        SELECT amb, coalesce(k.source, 'private_import'), k.first_name, k.last_name, k.nemail, k.facebook_id,
               k.twitter_id, k.instagram_id, k.public_photo_url, k.customer_id,
               coalesce(k.contact_type, 'prospect'), k.notes, k.address, k.city, k.postal_code, k.country,
               k.mobile_phone, k.home_phone, coalesce(k.tags, '{}'), k.created_at, k.last_activity_at,
               k.ambassador_optin, k.brand_optin
          FROM classified k
         WHERE NOT k.duplicate
         ORDER BY k.ord
        RETURNING 1)
    SELECT (SELECT count(*) FROM classified WHERE duplicate), (SELECT count(*) FROM ins)
      INTO duplicates, inserted;

    imported := inserted;
    skipped_duplicate := duplicates;
    skipped_blacklisted := candidates - duplicates - inserted;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION popsell.import_contacts(bigint, jsonb) IS
    'Import an ambassador''s private list (JSON array of contact objects): globally opted-out emails and duplicates are skipped and counted.';

CREATE OR REPLACE FUNCTION popsell.email_callback(email text, status popsell.email_status)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'email_callback'
AS $$
DECLARE
    e text;
    n bigint;
BEGIN
    IF status IS NULL OR status NOT IN ('spam', 'hard_bounce', 'soft_bounce', 'blocked') THEN
        RAISE EXCEPTION 'email_callback does not accept status %', coalesce(status::text, 'NULL')
            USING ERRCODE = 'PS106',
                  HINT = 'Report spam, hard_bounce, soft_bounce or blocked.';
    END IF;
    IF email IS NULL THEN
        RAISE EXCEPTION 'email must not be NULL'
            USING ERRCODE = 'PS202', HINT = 'Pass the address the provider reported.';
    END IF;
    e := popsell.normalize_email(email);
    IF status = 'soft_bounce' THEN
        UPDATE popsell.contacts SET email_status = 'soft_bounce'
         WHERE popsell._lookup_key(contacts.email) = popsell._lookup_key(e) AND email_status IN ('ok', 'unverified');
        GET DIAGNOSTICS n = ROW_COUNT;
        RETURN n;
    END IF;
    RETURN popsell._blacklist_add(e, status::text::popsell.blacklist_reason);
END
$$;
COMMENT ON FUNCTION popsell.email_callback(text, popsell.email_status) IS
    'The email provider reports a complaint or bounce: definitive ones blacklist the email (hashed) for every row and every future insert. Returns rows changed.';

CREATE OR REPLACE FUNCTION popsell._insert_ambassador(p_email text, p_data jsonb, p_terms boolean, p_sso_subject text)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r popsell.ambassadors := pg_catalog.jsonb_populate_record(NULL::popsell.ambassadors, p_data);
    t timestamptz := popsell._lifecycle_now();
    new_id bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM popsell.ambassadors a WHERE popsell._lookup_key(a.email) OPERATOR(pg_catalog.=) popsell._lookup_key(p_email)) THEN
        RAISE EXCEPTION 'an ambassador with this email already exists'
            USING ERRCODE = 'PS304',
                  HINT = 'Log in, or reset the password of the existing account.';
    END IF;
    INSERT INTO popsell.ambassadors (kind, status, created_at, first_name, last_name, customer_id, facebook_id,
                                     email, address, city, postal_code, country, preferred_language,
                                     birth_date, terms_accepted_at, photo_path, description, position, iban,
                                     hide_events, hide_from_community, newsletter_optin, event_notifications,
                                     challenge_notifications, comment_notifications, sso_subject)
    VALUES (coalesce(r.kind, 'customer'),
            CASE WHEN p_terms THEN 'active' ELSE 'signup_incomplete' END::popsell.ambassador_status,
            t, r.first_name, r.last_name, r.customer_id, r.facebook_id,
            p_email, r.address, r.city, r.postal_code, r.country, r.preferred_language,
            r.birth_date, CASE WHEN p_terms THEN t END, r.photo_path, r.description, r.position, r.iban,
            coalesce(r.hide_events, false), coalesce(r.hide_from_community, false),
            coalesce(r.newsletter_optin, false), coalesce(r.event_notifications, true),
            coalesce(r.challenge_notifications, true), coalesce(r.comment_notifications, true),
            p_sso_subject)
    RETURNING id INTO new_id;
    RETURN new_id;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'an ambassador with this email, SSO subject or login role already exists'
        USING ERRCODE = 'PS304', HINT = 'Log in, or update the existing account.';
END
$$;
COMMENT ON FUNCTION popsell._insert_ambassador(text, jsonb, boolean, text) IS
    'Internal: insert a new ambassador (active when terms are accepted, else signup_incomplete).';

CREATE OR REPLACE FUNCTION popsell.sso_upsert_ambassador(subject text, data jsonb) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a popsell.ambassadors;
    r popsell.ambassadors;
    d jsonb := sso_upsert_ambassador.data;
    e text;
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_app', 'popsell_technical'], 'popsell.sso_upsert_ambassador');
    IF subject IS NULL OR pg_catalog.btrim(subject) OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'an SSO subject is required'
            USING ERRCODE = 'PS200', HINT = 'Pass the subject (user id) the brand''s identity provider sent.';
    END IF;
    IF pg_catalog.octet_length(subject) OPERATOR(pg_catalog.>) 1024 THEN
        RAISE EXCEPTION 'an SSO subject is at most 1024 bytes, not %', pg_catalog.octet_length(subject)
            USING ERRCODE = 'PS106', HINT = 'Pass the identity provider''s user id, not a token.';
    END IF;
    PERFORM popsell._check_ambassador_data(coalesce(d, '{}'), ARRAY['email', 'terms_accepted']);
    d := coalesce(d, '{}');
    IF d ? 'email' THEN
        e := popsell.normalize_email(NULLIF(pg_catalog.btrim(d ->> 'email'), ''));
    END IF;
    SELECT * INTO a FROM popsell.ambassadors WHERE popsell._lookup_key(sso_subject) OPERATOR(pg_catalog.=) popsell._lookup_key(subject) FOR UPDATE;
    IF NOT FOUND THEN
        -- provisioning on first login: the brand's identity provider vouches
        -- for the person (no whitelist), the terms must still be accepted
        IF e IS NULL THEN
            RAISE EXCEPTION 'an email is required to provision an SSO ambassador'
                USING ERRCODE = 'PS202', HINT = 'Send the email claim with the first login.';
        END IF;
        RETURN popsell._insert_ambassador(e, d - 'email' - 'terms_accepted',
                                          coalesce((d ->> 'terms_accepted')::boolean, false), subject);
    END IF;
    PERFORM popsell._refuse_leaving(a);
    -- later logins: the brand's data wins for the fields it sends
    r := pg_catalog.jsonb_populate_record(a, d - 'email' - 'terms_accepted');
    UPDATE popsell.ambassadors
       SET kind = r.kind, first_name = r.first_name, last_name = r.last_name, customer_id = r.customer_id,
           facebook_id = r.facebook_id, email = coalesce(e, email), address = r.address, city = r.city,
           postal_code = r.postal_code, country = r.country, preferred_language = r.preferred_language,
           birth_date = r.birth_date, photo_path = r.photo_path, description = r.description,
           position = r.position, iban = r.iban, hide_events = r.hide_events,
           hide_from_community = r.hide_from_community, newsletter_optin = r.newsletter_optin,
           event_notifications = r.event_notifications, challenge_notifications = r.challenge_notifications,
           comment_notifications = r.comment_notifications,
           terms_accepted_at = CASE WHEN (d ->> 'terms_accepted')::boolean
                                    THEN coalesce(terms_accepted_at, popsell._lifecycle_now())
                                    ELSE terms_accepted_at END,
           status = CASE WHEN (d ->> 'terms_accepted')::boolean OR terms_accepted_at IS NOT NULL
                         THEN 'active' ELSE 'signup_incomplete' END::popsell.ambassador_status,
           last_login_at = CASE WHEN (d ->> 'terms_accepted')::boolean OR terms_accepted_at IS NOT NULL
                                THEN popsell._lifecycle_now() ELSE last_login_at END,
           inactivity_warnings_sent = 0, last_inactivity_warning_at = NULL
     WHERE id OPERATOR(pg_catalog.=) a.id;
    RETURN a.id;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'another ambassador already has this email'
        USING ERRCODE = 'PS304', HINT = 'Merge or delete the other account first.';
END
$$;
COMMENT ON FUNCTION popsell.sso_upsert_ambassador(text, jsonb) IS
    'SSO login: provision the ambassador on first login (active once data.terms_accepted is true), update the fields the brand sends after (and record the login). Returns the id.';

CREATE OR REPLACE FUNCTION popsell.sso_delete_ambassador(subject text) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a popsell.ambassadors;
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_app', 'popsell_technical'], 'popsell.sso_delete_ambassador');
    SELECT * INTO a FROM popsell.ambassadors WHERE popsell._lookup_key(sso_subject) OPERATOR(pg_catalog.=) popsell._lookup_key(subject) FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no ambassador has this SSO subject'
            USING ERRCODE = 'PS200', HINT = 'Check the subject the identity provider sent.';
    END IF;
    -- the brand's deletion sync may repeat itself: already leaving is done
    IF a.status OPERATOR(pg_catalog.<>) 'leaving' THEN
        PERFORM popsell._start_leaving(a, 'sso_deleted');
    END IF;
    RETURN a.id;
END
$$;
COMMENT ON FUNCTION popsell.sso_delete_ambassador(text) IS
    'The brand deleted the account in its identity provider: access blocked at once, deleted after settings.deletion_grace (idempotent). Returns the id.';

CREATE OR REPLACE FUNCTION popsell.subject_access(email text) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e text := popsell._rights_email(subject_access.email, 'popsell.subject_access');
    h bytea[] := popsell.email_hashes(e);
    amb jsonb;
    contacts jsonb;
    erased jsonb;
    bl jsonb;
    doc jsonb;
BEGIN
    SELECT pg_catalog.to_jsonb(a) OPERATOR(pg_catalog.-) 'password_hash'
           OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(
               'has_password', a.password_hash IS NOT NULL,
               'social_grants', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(g) ORDER BY g.id), '[]')
                                   FROM popsell.social_grants g WHERE g.ambassador_id OPERATOR(pg_catalog.=) a.id),
               'gamification', (SELECT pg_catalog.to_jsonb(x) OPERATOR(pg_catalog.-) 'ambassador_id'
                                  FROM popsell.gamification x WHERE x.ambassador_id OPERATOR(pg_catalog.=) a.id),
               'publications', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(p) ORDER BY p.id), '[]')
                                  FROM popsell.publications p WHERE p.ambassador_id OPERATOR(pg_catalog.=) a.id),
               'ugc', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(u) ORDER BY u.id), '[]')
                         FROM popsell.ugc u WHERE u.ambassador_id OPERATOR(pg_catalog.=) a.id),
               'community_reactions', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(r) ORDER BY r.id), '[]')
                                         FROM popsell.community_reactions r
                                        WHERE r.ambassador_id OPERATOR(pg_catalog.=) a.id),
               'activity_log', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(l) ORDER BY l.id), '[]')
                                  FROM popsell.activity_log l WHERE l.ambassador_id OPERATOR(pg_catalog.=) a.id),
               'sales', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                                     'id', s.id, 'sold_at', s.sold_at, 'amount', s.amount, 'currency', s.currency,
                                     'channel', s.channel, 'publication_id', s.publication_id) ORDER BY s.id), '[]')
                           FROM popsell.sales s WHERE s.ambassador_id OPERATOR(pg_catalog.=) a.id),
               'outbox', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(o) ORDER BY o.id), '[]')
                            FROM popsell.outbox o
                           WHERE o.ambassador_id OPERATOR(pg_catalog.=) a.id AND o.contact_id IS NULL))
      INTO amb
      FROM popsell.ambassadors a
     WHERE popsell._lookup_key(a.email) OPERATOR(pg_catalog.=) popsell._lookup_key(e);

    SELECT coalesce(pg_catalog.jsonb_agg(
               pg_catalog.to_jsonb(c) OPERATOR(pg_catalog.-) 'created_by' OPERATOR(pg_catalog.-) 'modified_by'
               OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(
                   'consent_events',
                   (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(ce) OPERATOR(pg_catalog.-) 'actor_role'
                                                         ORDER BY ce.id), '[]')
                      FROM popsell.consent_events ce WHERE ce.contact_id OPERATOR(pg_catalog.=) c.id),
                   'interactions',
                   (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(i) ORDER BY i.id), '[]')
                      FROM popsell.interactions i WHERE i.contact_id OPERATOR(pg_catalog.=) c.id),
                   'sales',
                   (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(s) ORDER BY s.id), '[]')
                      FROM popsell.sales s WHERE s.contact_id OPERATOR(pg_catalog.=) c.id),
                   'outbox',
                   (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(o) ORDER BY o.id), '[]')
                      FROM popsell.outbox o WHERE o.contact_id OPERATOR(pg_catalog.=) c.id))
               ORDER BY c.id), '[]')
      INTO contacts
      FROM popsell.contacts c
     WHERE popsell._lookup_key(c.email) OPERATOR(pg_catalog.=) popsell._lookup_key(e);

    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'id', t.id, 'deleted_at', t.deleted_at, 'reason', t.reason, 'ambassador_id', t.ambassador_id,
               'source', t.source, 'ambassador_optin', t.ambassador_optin, 'brand_optin', t.brand_optin,
               'partners_optin', t.partners_optin, 'city', t.city, 'postal_code', t.postal_code,
               'consent_events',
               (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(ce) OPERATOR(pg_catalog.-) 'actor_role'
                                                     ORDER BY ce.id), '[]')
                  FROM popsell.consent_events ce WHERE ce.contact_tombstone_id OPERATOR(pg_catalog.=) t.id))
               ORDER BY t.id), '[]')
      INTO erased
      FROM popsell.contact_tombstones t
     WHERE t.email_hash OPERATOR(pg_catalog.=) ANY (h);

    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('reason', b.reason, 'since', b.created_at)
                                         ORDER BY b.created_at, b.reason), '[]')
      INTO bl
      FROM popsell.blacklist b
     WHERE b.email_hash OPERATOR(pg_catalog.=) ANY (h);

    doc := pg_catalog.jsonb_build_object(
        'format', 'popsell.subject_access/1',
        'generated_at', pg_catalog.now(),
        'email', e,
        'ambassador', amb,
        'contacts', contacts,
        'erased_contacts', erased,
        'erased_ambassadors',
            (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                        'id', t.id, 'deleted_at', t.deleted_at, 'reason', t.reason, 'created_at', t.created_at,
                        'city', t.city, 'postal_code', t.postal_code, 'birth_year', t.birth_year)
                        ORDER BY t.id), '[]')
               FROM popsell.ambassador_tombstones t WHERE t.email_hash OPERATOR(pg_catalog.=) ANY (h)),
        'blacklisted', bl OPERATOR(pg_catalog.<>) '[]'::jsonb,
        'blacklist', bl,
        'whitelisted', EXISTS (SELECT 1 FROM popsell.registration_whitelist w
                                WHERE w.email_hash OPERATOR(pg_catalog.=) ANY (h)));

    PERFORM popsell._record_rights_request('access', 15, pg_catalog.jsonb_build_object(
        'ambassadors', (amb IS NOT NULL)::integer,
        'contacts', pg_catalog.jsonb_array_length(contacts),
        'erased_contacts', pg_catalog.jsonb_array_length(erased)));
    RETURN doc;
END
$$;
COMMENT ON FUNCTION popsell.subject_access(text) IS
    'GDPR art. 15 and 20: everything popsell holds on the person with this email, as one machine-readable document (format popsell.subject_access/1, see the README).';

CREATE OR REPLACE FUNCTION popsell.erase_subject(email text) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'rights'
AS $$
DECLARE
    e text := popsell._rights_email(erase_subject.email, 'popsell.erase_subject');
    n_contacts bigint;
    n_ambassadors bigint;
    result jsonb;
BEGIN
    DELETE FROM popsell.contacts c WHERE popsell._lookup_key(c.email) OPERATOR(pg_catalog.=) popsell._lookup_key(e);
    GET DIAGNOSTICS n_contacts = ROW_COUNT;
    DELETE FROM popsell.ambassadors a WHERE popsell._lookup_key(a.email) OPERATOR(pg_catalog.=) popsell._lookup_key(e);
    GET DIAGNOSTICS n_ambassadors = ROW_COUNT;
    result := pg_catalog.jsonb_build_object('format', 'popsell.erase_subject/1',
                                            'contacts', n_contacts, 'ambassadors', n_ambassadors);
    PERFORM popsell._record_rights_request('erasure', 17, result OPERATOR(pg_catalog.-) 'format');
    RETURN result;
END
$$;
COMMENT ON FUNCTION popsell.erase_subject(text) IS
    'GDPR art. 17: erase at once every contact row and the ambassador account with this email (tombstones keep hashes only). Returns counts.';

CREATE OR REPLACE FUNCTION popsell.restrict_subject(email text, "on" boolean) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'rights'
AS $$
DECLARE
    e text := popsell._rights_email(restrict_subject.email, 'popsell.restrict_subject');
    n bigint;
BEGIN
    IF restrict_subject."on" IS NULL THEN
        RAISE EXCEPTION 'restrict_subject needs on => true or false'
            USING ERRCODE = 'PS106', HINT = 'true restricts processing, false lifts the restriction.';
    END IF;
    UPDATE popsell.contacts c SET restricted = restrict_subject."on"
     WHERE popsell._lookup_key(c.email) OPERATOR(pg_catalog.=) popsell._lookup_key(e)
       AND c.restricted OPERATOR(pg_catalog.<>) restrict_subject."on";
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM popsell._record_rights_request(
        CASE WHEN restrict_subject."on" THEN 'restriction' ELSE 'restriction_lifted' END, 18,
        pg_catalog.jsonb_build_object('contacts', n));
    RETURN n;
END
$$;
COMMENT ON FUNCTION popsell.restrict_subject(text, boolean) IS
    'GDPR art. 18: restrict (on => true) or lift the restriction of every contact row with this email: kept, hidden from the brand, nothing sent. Returns rows changed.';

CREATE OR REPLACE FUNCTION popsell.object_subject(email text) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'contact'
AS $$
DECLARE
    e text := popsell._rights_email(object_subject.email, 'popsell.object_subject');
    n bigint;
    m bigint;
BEGIN
    n := popsell._blacklist_add(e, 'global_optout');
    UPDATE popsell.ambassadors a SET newsletter_optin = false
     WHERE popsell._lookup_key(a.email) OPERATOR(pg_catalog.=) popsell._lookup_key(e) AND a.newsletter_optin;
    GET DIAGNOSTICS m = ROW_COUNT;
    PERFORM popsell._record_rights_request('objection', 21,
        pg_catalog.jsonb_build_object('contacts', n, 'ambassadors', m));
    RETURN n;
END
$$;
COMMENT ON FUNCTION popsell.object_subject(text) IS
    'GDPR art. 21: global opt-out of the email (blacklisted by keyed hash, every contact row opted out, ambassador newsletter off). Returns contact rows changed.';

-- Bounded at write (SPEC section 8).  Refused if a row already holds a
-- longer value: shorten it first.
ALTER TABLE popsell.ambassadors ADD CONSTRAINT ambassadors_bounded_text CHECK (
        octet_length(first_name) <= 256 AND octet_length(last_name) <= 256
        AND octet_length(customer_id) <= 256 AND octet_length(facebook_id) <= 256
        AND octet_length(email) <= 254 AND octet_length(address) <= 1024
        AND octet_length(city) <= 256 AND octet_length(postal_code) <= 256
        AND octet_length(country) <= 256 AND octet_length(preferred_language) <= 256
        AND octet_length(photo_path) <= 256 AND octet_length(description) <= 10000
        AND octet_length(position) <= 256 AND octet_length(iban) <= 256
        AND octet_length(leaving_reason) <= 256 AND octet_length(sso_subject) <= 256);
-- Bounded at write (SPEC section 8).  Refused if a row already holds a
-- longer value: shorten it first.
ALTER TABLE popsell.contacts ADD CONSTRAINT contacts_bounded_text CHECK (
        octet_length(first_name) <= 256 AND octet_length(last_name) <= 256
        AND octet_length(email) <= 254 AND octet_length(facebook_id) <= 256
        AND octet_length(twitter_id) <= 256 AND octet_length(instagram_id) <= 256
        AND octet_length(public_photo_url) <= 1024 AND octet_length(customer_id) <= 256
        AND octet_length(notes) <= 10000 AND octet_length(address) <= 1024
        AND octet_length(city) <= 256 AND octet_length(postal_code) <= 256
        AND octet_length(country) <= 256 AND octet_length(mobile_phone) <= 64
        AND octet_length(home_phone) <= 64);

-- Free text and identifiers of the other tables are bounded at write too.
ALTER TABLE popsell.social_grants
    ADD CONSTRAINT social_grants_network_bounded CHECK (octet_length(network) <= 256),
    ADD CONSTRAINT social_grants_account_id_bounded CHECK (octet_length(account_id) <= 256);
ALTER TABLE popsell.publications
    ADD CONSTRAINT publications_comment_bounded CHECK (octet_length(comment) <= 10000);
ALTER TABLE popsell.community_reactions
    ADD CONSTRAINT community_reactions_body_bounded CHECK (octet_length(body) <= 10000);
ALTER TABLE popsell.activity_log
    ADD CONSTRAINT activity_log_kind_bounded CHECK (octet_length(kind) <= 256),
    ADD CONSTRAINT activity_log_user_agent_bounded CHECK (octet_length(user_agent) <= 1024);

-- (S13) The consent-text setting is a version or hash, never free text
-- that would survive erasure in the ledger.  Existing free text is
-- replaced by its SHA-256 (still a proof of which text was shown).
ALTER TABLE popsell.consent_events DISABLE TRIGGER popsell_10_append_only;
UPDATE popsell.consent_events
   SET consent_text = 'sha256:' OPERATOR(pg_catalog.||) pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(consent_text, 'UTF8')), 'hex')
 WHERE consent_text IS NOT NULL
   AND consent_text OPERATOR(pg_catalog.!~) '^[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,127}$';
ALTER TABLE popsell.consent_events ENABLE TRIGGER popsell_10_append_only;
ALTER TABLE popsell.consent_events ADD CONSTRAINT consent_events_consent_text_version
    CHECK (consent_text ~ '^[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,127}$');

-- ===================================================================
-- Files (SPEC section 3, v2): ugc.file_path and ambassadors.photo_path
-- are relative paths under ambassadors/<that ambassador's id>/, without
-- "..", so no ambassador can point at another person's file (whose
-- erasure would then delete it) or outside the storage.  Replacing or
-- deleting a path queues the old file as delete_file; the application
-- deletes it from storage.  Paths already stored when popsell was
-- upgraded are checked only when they change.
-- ===================================================================

CREATE FUNCTION popsell._check_file_path(p_path text, p_ambassador_id bigint, p_column text)
    RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_path IS NULL THEN
        RETURN;
    END IF;
    IF pg_catalog.octet_length(p_path) OPERATOR(pg_catalog.>) 256
       OR p_ambassador_id IS NULL
       OR pg_catalog."left"(p_path, pg_catalog.length('ambassadors/' OPERATOR(pg_catalog.||) p_ambassador_id OPERATOR(pg_catalog.||) '/'))
          OPERATOR(pg_catalog.<>) ('ambassadors/' OPERATOR(pg_catalog.||) p_ambassador_id OPERATOR(pg_catalog.||) '/')
       OR pg_catalog.length(p_path) OPERATOR(pg_catalog.=) pg_catalog.length('ambassadors/' OPERATOR(pg_catalog.||) p_ambassador_id OPERATOR(pg_catalog.||) '/')
       OR p_path OPERATOR(pg_catalog.~) '(^|/)\.\.?(/|$)|//|\\|[[:cntrl:]]|/$' THEN
        RAISE EXCEPTION '% is not a file of ambassador %', p_column, coalesce(p_ambassador_id::text, 'NULL')
            USING ERRCODE = 'PS108',
                  DETAIL = 'A file path is relative, at most 256 bytes, under ambassadors/<the ambassador''s id>/, without "." or ".." segments, empty segments or backslashes.',
                  HINT = 'Store the file under the ambassador''s own directory, e.g. ambassadors/<id>/photo.jpg.';
    END IF;
END
$$;
COMMENT ON FUNCTION popsell._check_file_path(text, bigint, text) IS
    'Internal: PS108 unless the path is a relative path under ambassadors/<ambassador id>/ (no "..", at most 256 bytes).';

-- Queue a file for deletion (the application removes it from storage).
CREATE FUNCTION popsell._queue_file_deletion(p_path text, p_ambassador_id bigint, p_what text, p_ugc_id bigint)
    RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    INSERT INTO popsell.outbox (kind, ambassador_id, payload)
    SELECT 'delete_file'::popsell.outbox_kind, p_ambassador_id,
           pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
               'file_path', p_path, 'what', p_what, 'ugc_id', p_ugc_id))
     WHERE nullif(p_path, '') IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM popsell.outbox o
                        WHERE o.kind OPERATOR(pg_catalog.=) 'delete_file'::popsell.outbox_kind
                          AND o.sent_at IS NULL
                          AND (o.payload OPERATOR(pg_catalog.->>) 'file_path') OPERATOR(pg_catalog.=) p_path);
END;
COMMENT ON FUNCTION popsell._queue_file_deletion(text, bigint, text, bigint) IS
    'Internal: queue a delete_file outbox row for a path, once (an unsent row for the same path is enough).';

CREATE FUNCTION popsell.files_row() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_TABLE_SCHEMA OPERATOR(pg_catalog.<>) 'popsell'
       OR TG_TABLE_NAME NOT IN ('ugc', 'ambassadors') OR TG_LEVEL OPERATOR(pg_catalog.<>) 'ROW'
       OR TG_OP NOT IN ('INSERT', 'UPDATE', 'DELETE') THEN
        RAISE EXCEPTION 'popsell.files_row() handles rows of popsell.ugc and popsell.ambassadors only'
            USING ERRCODE = 'PS900', HINT = 'Drop this trigger; popsell attaches its triggers itself.';
    END IF;
    IF popsell._restoring() THEN
        RETURN CASE WHEN TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_WHEN OPERATOR(pg_catalog.=) 'BEFORE' THEN
        IF TG_TABLE_NAME OPERATOR(pg_catalog.=) 'ugc' THEN
            IF TG_OP OPERATOR(pg_catalog.=) 'INSERT'
               OR NEW.file_path IS DISTINCT FROM OLD.file_path THEN
                PERFORM popsell._check_file_path(NEW.file_path, NEW.ambassador_id, 'file_path');
            END IF;
        ELSIF TG_OP OPERATOR(pg_catalog.=) 'INSERT'
              OR NEW.photo_path IS DISTINCT FROM OLD.photo_path THEN
            PERFORM popsell._check_file_path(nullif(NEW.photo_path, ''), NEW.id, 'photo_path');
        END IF;
        RETURN NEW;
    END IF;
    -- AFTER: the file a row no longer names goes.
    IF TG_TABLE_NAME OPERATOR(pg_catalog.=) 'ugc' THEN
        IF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
            PERFORM popsell._queue_file_deletion(OLD.file_path, OLD.ambassador_id, 'ugc', OLD.id);
        ELSIF NEW.file_path IS DISTINCT FROM OLD.file_path THEN
            PERFORM popsell._queue_file_deletion(OLD.file_path, OLD.ambassador_id, 'ugc', OLD.id);
        END IF;
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' AND NEW.photo_path IS DISTINCT FROM OLD.photo_path THEN
        PERFORM popsell._queue_file_deletion(OLD.photo_path, OLD.id, 'ambassador_photo', NULL);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION popsell.files_row() IS
    'Trigger: file paths of UGC and ambassador photos stay under ambassadors/<id>/ (PS108); a replaced or deleted path is queued as delete_file.';

CREATE TRIGGER popsell_30_files BEFORE INSERT OR UPDATE OF file_path ON popsell.ugc
    FOR EACH ROW EXECUTE FUNCTION popsell.files_row();
CREATE TRIGGER popsell_70_files AFTER UPDATE OF file_path OR DELETE ON popsell.ugc
    FOR EACH ROW EXECUTE FUNCTION popsell.files_row();
CREATE TRIGGER popsell_30_files BEFORE INSERT OR UPDATE OF photo_path ON popsell.ambassadors
    FOR EACH ROW EXECUTE FUNCTION popsell.files_row();
CREATE TRIGGER popsell_70_files AFTER UPDATE OF photo_path ON popsell.ambassadors
    FOR EACH ROW EXECUTE FUNCTION popsell.files_row();
