-- ===================================================================
-- Contact events (SPEC section 5).  Each function fixes the path its
-- changes are recorded under with a SET popsell.actor clause: only
-- popsell_owner, which owns these SECURITY DEFINER functions, may set it,
-- so no caller can forge the actor of a consent change.
-- ===================================================================

-- The contact a caller may act on: staff, trusted apps and the owner act
-- on any; an ambassador only on its own.  Unknown and foreign contacts get
-- the same error, so existence does not leak.
CREATE FUNCTION popsell._contact_for_caller(p_contact_id bigint)
    RETURNS popsell.contacts
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c popsell.contacts;
BEGIN
    IF p_contact_id IS NULL THEN
        RAISE EXCEPTION 'contact id must not be NULL'
            USING ERRCODE = 'PS200', HINT = 'Pass the id of an existing contact.';
    END IF;
    SELECT * INTO c FROM popsell.contacts WHERE id = p_contact_id;
    IF NOT FOUND
       OR NOT (popsell._caller_in('popsell_app')
               OR popsell._caller_in('popsell_brand')
               OR popsell._caller_in('popsell_account_team')
               OR popsell._caller_in('popsell_technical')
               OR popsell._caller_in('popsell_owner')
               OR c.ambassador_id IS NOT DISTINCT FROM popsell.current_ambassador_id()
                  AND c.ambassador_id IS NOT NULL) THEN
        RAISE EXCEPTION 'contact % does not exist or is not yours', p_contact_id
            USING ERRCODE = 'PS200',
                  HINT = 'Check the contact id and the ambassador the session acts as.';
    END IF;
    RETURN c;
END
$$;
COMMENT ON FUNCTION popsell._contact_for_caller(bigint) IS
    'Internal: the contact row if the calling role may act on it, else PS200.';

-- The ambassador id a caller may act for.
CREATE FUNCTION popsell._ambassador_for_caller(p_ambassador_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_ambassador_id IS NULL THEN
        RAISE EXCEPTION 'ambassador id must not be NULL'
            USING ERRCODE = 'PS200', HINT = 'Pass the id of an existing ambassador.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM popsell.ambassadors WHERE id = p_ambassador_id)
       OR NOT (popsell._caller_in('popsell_app')
               OR popsell._caller_in('popsell_brand')
               OR popsell._caller_in('popsell_account_team')
               OR popsell._caller_in('popsell_technical')
               OR popsell._caller_in('popsell_owner')
               OR p_ambassador_id IS NOT DISTINCT FROM popsell.current_ambassador_id()) THEN
        RAISE EXCEPTION 'ambassador % does not exist or is not you', p_ambassador_id
            USING ERRCODE = 'PS200',
                  HINT = 'Check the ambassador id and the ambassador the session acts as.';
    END IF;
    RETURN p_ambassador_id;
END
$$;
COMMENT ON FUNCTION popsell._ambassador_for_caller(bigint) IS
    'Internal: the ambassador id if the calling role may act for it, else PS200.';

-- Put an email on the blacklist and apply it to every contact row with
-- that email at once.  SHARE ROW EXCLUSIVE waits for every transaction
-- writing contacts and holds new writers until we commit; writers probe
-- the blacklist with the latest snapshot, so they see our entry.  Under
-- REPEATABLE READ our own snapshot may predate a writer we waited for:
-- then we fail with a serialization error rather than miss its row.
CREATE FUNCTION popsell._blacklist_add(p_email text, p_reason popsell.blacklist_reason)
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

CREATE FUNCTION popsell._globally_opted_out(p_email text)
    RETURNS boolean
    LANGUAGE sql STABLE STRICT
    SET search_path = pg_catalog, pg_temp
    RETURN EXISTS (SELECT 1 FROM popsell.blacklist b
                    WHERE b.email_hash = ANY (popsell.email_hashes(p_email))
                      AND b.reason = 'global_optout');
COMMENT ON FUNCTION popsell._globally_opted_out(text) IS
    'Internal: whether an email is on the blacklist for a global opt-out (under any live key).';

CREATE FUNCTION popsell.import_contacts(ambassador_id bigint, contacts jsonb)
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

CREATE FUNCTION popsell.collect_contact(ambassador_id bigint, source popsell.contact_source, data jsonb,
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

CREATE FUNCTION popsell.send_invitation(contact_id bigint)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'send_invitation'
AS $$
DECLARE
    c popsell.contacts := popsell._contact_for_caller(send_invitation.contact_id);
BEGIN
    PERFORM 1 FROM popsell.contacts WHERE id = c.id FOR UPDATE;
    SELECT * INTO c FROM popsell.contacts WHERE id = c.id;
    IF c.ambassador_optin <> 'new' THEN
        RAISE EXCEPTION 'ambassador_optin cannot change from "%" to "invitation_sent": only new contacts are invited', c.ambassador_optin
            USING ERRCODE = 'PS100',
                  DETAIL = format('Contact %s has already been invited or has another consent state.', c.id),
                  HINT = 'Invitations go to new contacts, once.';
    END IF;
    -- queue first: the sending guard checks the contact is still new
    INSERT INTO popsell.outbox (kind, ambassador_id, contact_id, payload)
    VALUES ('invitation', c.ambassador_id, c.id, '{}');
    UPDATE popsell.contacts
       SET ambassador_optin = 'invitation_sent', invitation_sent_at = now(),
           invitations_sent = invitations_sent + 1
     WHERE id = c.id;
END
$$;
COMMENT ON FUNCTION popsell.send_invitation(bigint) IS
    'Queue the invitation email of a new contact and mark it invitation_sent.';

CREATE FUNCTION popsell._answer_invitation(p_contact_id bigint, p_answer popsell.ambassador_optin)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c popsell.contacts := popsell._contact_for_caller(p_contact_id);
BEGIN
    UPDATE popsell.contacts SET ambassador_optin = p_answer WHERE id = c.id;
END
$$;
COMMENT ON FUNCTION popsell._answer_invitation(bigint, popsell.ambassador_optin) IS
    'Internal: the contact''s answer to an invitation.';

CREATE FUNCTION popsell.accept_invitation(contact_id bigint)
    RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'contact'
    BEGIN ATOMIC
        SELECT popsell._answer_invitation(contact_id, 'invitation_accepted');
    END;
COMMENT ON FUNCTION popsell.accept_invitation(bigint) IS
    'The contact accepts the invitation (invitation_sent to invitation_accepted).';

CREATE FUNCTION popsell.decline_invitation(contact_id bigint)
    RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'contact'
    BEGIN ATOMIC
        SELECT popsell._answer_invitation(contact_id, 'invitation_declined');
    END;
COMMENT ON FUNCTION popsell.decline_invitation(bigint) IS
    'The contact declines the invitation (invitation_sent to invitation_declined).';

CREATE FUNCTION popsell.confirm_email(contact_id bigint)
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

CREATE FUNCTION popsell.opt_out(contact_id bigint, global boolean DEFAULT false)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'contact'
AS $$
DECLARE
    c popsell.contacts := popsell._contact_for_caller(opt_out.contact_id);
BEGIN
    IF coalesce(opt_out.global, false) AND c.email IS NOT NULL THEN
        PERFORM popsell._blacklist_add(c.email, 'global_optout');
    ELSIF coalesce(opt_out.global, false) THEN
        UPDATE popsell.contacts SET ambassador_optin = 'global_optout'
         WHERE id = c.id AND ambassador_optin <> 'global_optout';
    ELSE
        UPDATE popsell.contacts SET ambassador_optin = 'optout_email'
         WHERE id = c.id AND ambassador_optin NOT IN ('optout_email', 'global_optout');
    END IF;
END
$$;
COMMENT ON FUNCTION popsell.opt_out(bigint, boolean) IS
    'The contact opts out of its ambassador''s emails, or with global => true out of every ambassador of the brand (blacklisted by hash).';

CREATE FUNCTION popsell.email_callback(email text, status popsell.email_status)
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

CREATE FUNCTION popsell.release_soft_bounce(contact_id bigint)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'release_soft_bounce'
AS $$
DECLARE
    c popsell.contacts := popsell._contact_for_caller(release_soft_bounce.contact_id);
BEGIN
    IF c.email_status <> 'soft_bounce' THEN
        RAISE EXCEPTION 'email_status cannot change from "%" to "ok" by release_soft_bounce', c.email_status
            USING ERRCODE = 'PS100',
                  DETAIL = format('Contact %s is not in soft_bounce.', c.id),
                  HINT = 'Only a soft bounce can be released; spam, hard_bounce and blocked are final.';
    END IF;
    UPDATE popsell.contacts SET email_status = 'ok' WHERE id = c.id;
END
$$;
COMMENT ON FUNCTION popsell.release_soft_bounce(bigint) IS
    'The ambassador releases a soft-bounced email so it can be sent to again.';

CREATE FUNCTION popsell.record_interaction(contact_id bigint, kind popsell.interaction_kind,
                                           publication_id bigint DEFAULT NULL,
                                           channel text DEFAULT 'email',
                                           occurred_at timestamptz DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c popsell.contacts := popsell._contact_for_caller(record_interaction.contact_id);
    t timestamptz := CASE WHEN occurred_at IS NOT NULL AND (popsell._caller_in('popsell_app')
                                                            OR popsell._caller_in('popsell_owner'))
                          THEN occurred_at ELSE now() END;
    new_id bigint;
BEGIN
    IF kind IS NULL THEN
        RAISE EXCEPTION 'interaction kind must not be NULL'
            USING ERRCODE = 'PS106', HINT = 'One of open, click, like, comment, reshare.';
    END IF;
    IF record_interaction.publication_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM popsell.publications p WHERE p.id = record_interaction.publication_id) THEN
        RAISE EXCEPTION 'publication % does not exist', record_interaction.publication_id
            USING ERRCODE = 'PS200', HINT = 'Pass the id of an existing publication, or NULL.';
    END IF;
    INSERT INTO popsell.interactions (contact_id, publication_id, channel, kind, occurred_at)
    VALUES (c.id, publication_id, coalesce(channel, 'email'), kind, t)
    RETURNING id INTO new_id;
    IF kind <> 'open' THEN
        UPDATE popsell.contacts SET last_activity_at = t
         WHERE id = c.id AND (last_activity_at IS NULL OR last_activity_at < t);
    END IF;
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION popsell.record_interaction(bigint, popsell.interaction_kind, bigint, text, timestamptz) IS
    'Record an open, click, like, comment or reshare; every kind but open is an activity and moves last_activity_at.';

CREATE FUNCTION popsell.record_sale(contact_id bigint, amount numeric,
                                    currency text DEFAULT 'EUR',
                                    products jsonb DEFAULT NULL,
                                    channel popsell.sale_channel DEFAULT 'online',
                                    publication_id bigint DEFAULT NULL,
                                    sold_at timestamptz DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c popsell.contacts := popsell._contact_for_caller(record_sale.contact_id);
    t timestamptz := CASE WHEN sold_at IS NOT NULL AND (popsell._caller_in('popsell_app')
                                                        OR popsell._caller_in('popsell_owner'))
                          THEN sold_at ELSE now() END;
    new_id bigint;
BEGIN
    IF amount IS NULL OR amount < 0 THEN
        RAISE EXCEPTION 'sale amount must be zero or more, not %', coalesce(amount::text, 'NULL')
            USING ERRCODE = 'PS106', HINT = 'Pass the amount in the sale''s currency.';
    END IF;
    IF record_sale.publication_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM popsell.publications p WHERE p.id = record_sale.publication_id) THEN
        RAISE EXCEPTION 'publication % does not exist', record_sale.publication_id
            USING ERRCODE = 'PS200', HINT = 'Pass the id of an existing publication, or NULL.';
    END IF;
    INSERT INTO popsell.sales (contact_id, ambassador_id, publication_id, sold_at, amount,
                               currency, products, channel)
    VALUES (c.id, c.ambassador_id, publication_id, t, amount, upper(coalesce(currency, 'EUR')),
            products, coalesce(channel, 'online'))
    RETURNING id INTO new_id;
    UPDATE popsell.contacts SET last_activity_at = t
     WHERE id = c.id AND (last_activity_at IS NULL OR last_activity_at < t);
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION popsell.record_sale(bigint, numeric, text, jsonb, popsell.sale_channel, bigint, timestamptz) IS
    'Record a sale to a contact (an activity); the amount survives the contact''s erasure for statistics.';

CREATE FUNCTION popsell.rotate_hash_key(legacy boolean DEFAULT false)
    RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    new_id integer;
BEGIN
    LOCK TABLE popsell.hash_keys IN EXCLUSIVE MODE;
    INSERT INTO popsell.hash_keys (key_id, secret)
    SELECT coalesce(max(key_id), 0) + 1,
           CASE WHEN coalesce(legacy, false) THEN NULL ELSE popsell._random_bytes(32) END
      FROM popsell.hash_keys
    RETURNING key_id INTO new_id;
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION popsell.rotate_hash_key(boolean) IS
    'Start hashing with a new brand key (or, legacy => true, plain SHA-256); older keys stay live so existing entries keep matching.';
