-- ===================================================================
-- Data-subject rights, GDPR articles 15 to 22 (SPEC section 5), by email:
-- access and portability (subject_access), erasure (erase_subject),
-- restriction (restrict_subject), objection (object_subject).
-- Rectification (art. 16) is a plain UPDATE.  Callable by the vendor's
-- account team and technical team; each request leaves an accountability
-- record in popsell.rights_requests that holds no personal data.
-- ===================================================================

CREATE TABLE popsell.rights_requests (
    id           bigserial PRIMARY KEY,
    request      text NOT NULL CHECK (request IN ('access', 'erasure', 'restriction', 'restriction_lifted',
                                                  'objection')),
    gdpr_article integer NOT NULL CHECK (gdpr_article BETWEEN 15 AND 22),
    requested_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    requested_by name NOT NULL,
    acting_as    name NOT NULL,
    counts       jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE popsell.rights_requests IS
    'Accountability record of every data-subject request (which right, when, by which role, counts); no personal data, not even a hash.';
CREATE INDEX rights_requests_requested_at_idx ON popsell.rights_requests (requested_at);

CREATE POLICY rights_requests_staff_read ON popsell.rights_requests
    FOR SELECT TO popsell_account_team, popsell_technical USING (true);
GRANT SELECT ON popsell.rights_requests TO popsell_account_team, popsell_technical;

-- The normalized email of a request (PS202 when NULL, empty or malformed)
-- after checking the caller may exercise rights on behalf of people.
CREATE FUNCTION popsell._rights_email(p_email text, p_what text) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_account_team', 'popsell_technical'], p_what);
    IF p_email IS NULL OR pg_catalog.btrim(p_email) OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'an email is required'
            USING ERRCODE = 'PS202', HINT = 'Pass the email address of the person making the request.';
    END IF;
    RETURN popsell.normalize_email(p_email);
END
$$;
COMMENT ON FUNCTION popsell._rights_email(text, text) IS
    'Internal: check the caller (account team, technical) and return the normalized email of a rights request.';

CREATE FUNCTION popsell._record_rights_request(p_request text, p_article integer, p_counts jsonb) RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
        INSERT INTO popsell.rights_requests (request, gdpr_article, requested_at, requested_by, acting_as, counts)
        VALUES (p_request, p_article, pg_catalog.now(), session_user,
                CASE WHEN popsell._caller_in('popsell_technical') THEN 'popsell_technical'
                     WHEN popsell._caller_in('popsell_account_team') THEN 'popsell_account_team'
                     ELSE 'popsell_owner' END,
                p_counts);
    END;
COMMENT ON FUNCTION popsell._record_rights_request(text, integer, jsonb) IS
    'Internal: append the accountability record of a rights request.';

-- Art. 15 and 20.  Matching is by email only: every contact row with the
-- normalized email in any ambassador's CRM, the ambassador account with
-- it, and the erased records (tombstones) whose keyed hash matches.  The
-- document names no one else: a contact row gives its ambassador's id,
-- never that ambassador's name; the roles that created or changed a row
-- or a consent (created_by, modified_by, actor_role) are left out;
-- sales attributed to the person as an ambassador leave out the buyer.
CREATE FUNCTION popsell.subject_access(email text) RETURNS jsonb
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
     WHERE popsell_internal._lookup_key(a.email) OPERATOR(pg_catalog.=) popsell_internal._lookup_key(e);

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
     WHERE popsell_internal._lookup_key(c.email) OPERATOR(pg_catalog.=) popsell_internal._lookup_key(e);

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
        -- (v2) the ambassadors' records of the invitations sent to it
        'invitations',
            (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                        'ambassador_id', i.ambassador_id, 'invited_at', i.invited_at)
                        ORDER BY i.invited_at, i.ambassador_id), '[]')
               FROM popsell.invitation_records i WHERE i.email_hash OPERATOR(pg_catalog.=) ANY (h)),
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

-- Art. 17.  Plain DELETEs: the erasure triggers keep tombstones (hashes
-- only) per SPEC section 6 and tell partners (art. 19).
CREATE FUNCTION popsell.erase_subject(email text) RETURNS jsonb
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
    DELETE FROM popsell.contacts c WHERE popsell_internal._lookup_key(c.email) OPERATOR(pg_catalog.=) popsell_internal._lookup_key(e);
    GET DIAGNOSTICS n_contacts = ROW_COUNT;
    DELETE FROM popsell.ambassadors a WHERE popsell_internal._lookup_key(a.email) OPERATOR(pg_catalog.=) popsell_internal._lookup_key(e);
    GET DIAGNOSTICS n_ambassadors = ROW_COUNT;
    result := pg_catalog.jsonb_build_object('format', 'popsell.erase_subject/1',
                                            'contacts', n_contacts, 'ambassadors', n_ambassadors);
    PERFORM popsell._record_rights_request('erasure', 17, result OPERATOR(pg_catalog.-) 'format');
    RETURN result;
END
$$;
COMMENT ON FUNCTION popsell.erase_subject(text) IS
    'GDPR art. 17: erase at once every contact row and the ambassador account with this email (tombstones keep hashes only). Returns counts.';

-- Art. 18.  Restricted rows are kept, hidden from the brand, never sent
-- to (outbox guard) and not deleted early by retention rules.
CREATE FUNCTION popsell.restrict_subject(email text, "on" boolean) RETURNS bigint
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
     WHERE popsell_internal._lookup_key(c.email) OPERATOR(pg_catalog.=) popsell_internal._lookup_key(e)
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

-- Art. 21.  A global opt-out recorded as the person's own (path contact):
-- the hash goes on the blacklist, so no ambassador can enter or invite
-- the address again, and the ambassador newsletter stops.
CREATE FUNCTION popsell.object_subject(email text) RETURNS bigint
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
    -- (v2) the end of all direct marketing: brand and partners opt-ins
    -- too (the partners are told by popsell_60_partners_ended).
    UPDATE popsell.contacts c
       SET brand_optin = 'no_optin'::popsell.brand_optin,
           partners_optin = false
     WHERE c.email OPERATOR(pg_catalog.=) e
       AND (c.partners_optin
            OR c.brand_optin OPERATOR(pg_catalog.<>) 'no_optin'::popsell.brand_optin);
    UPDATE popsell.ambassadors a SET newsletter_optin = false
     WHERE popsell_internal._lookup_key(a.email) OPERATOR(pg_catalog.=) popsell_internal._lookup_key(e) AND a.newsletter_optin;
    GET DIAGNOSTICS m = ROW_COUNT;
    PERFORM popsell._record_rights_request('objection', 21,
        pg_catalog.jsonb_build_object('contacts', n, 'ambassadors', m));
    RETURN n;
END
$$;
COMMENT ON FUNCTION popsell.object_subject(text) IS
    'GDPR art. 21: the end of all direct marketing to the email: global opt-out (blacklisted by keyed hash, every contact row opted out), brand and partners opt-ins withdrawn (partners told by a partner_optout outbox row), ambassador newsletter off. Returns contact rows opted out.';

GRANT EXECUTE ON FUNCTION popsell.subject_access(text),
                          popsell.erase_subject(text),
                          popsell.restrict_subject(text, boolean),
                          popsell.object_subject(text)
    TO popsell_account_team, popsell_technical;
