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
-- @restate function:_blacklist_add


-- @restate function:email_callback


-- @restate function:sso_upsert_ambassador

-- @restate function:sso_delete_ambassador

-- @restate function:subject_access

-- @restate function:erase_subject

-- @restate function:restrict_subject


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
