-- ===================================================================
-- Contact events (SPEC section 5).  Each function fixes the path its
-- changes are recorded under with a SET popsell.actor clause: only
-- popsell_owner, which owns these SECURITY DEFINER functions, may set it,
-- so no caller can forge the actor of a consent change.
-- ===================================================================

-- The contact a caller may act on: vendor staff, trusted apps and the
-- owner act on any; the brand on the contacts it sees (brand-visible,
-- confirmed, not restricted); an ambassador only on its own.  Unknown,
-- hidden and foreign contacts get the same error, so neither existence nor
-- consent state leaks.
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
    -- An ambassador acting for itself while not active learns that (PS300).
    IF FOUND AND popsell.current_ambassador_id() IS NULL
       AND EXISTS (SELECT 1 FROM popsell.ambassadors a
                    WHERE a.id = c.ambassador_id AND a.status <> 'active'
                      AND (popsell._ambassador_id_setting() = a.id::text
                           OR a.login_role IS NOT NULL AND popsell._caller_in(a.login_role::text))) THEN
        RAISE EXCEPTION 'ambassador % is not active: nothing is sent or changed for it', c.ambassador_id
            USING ERRCODE = 'PS300',
                  HINT = 'Complete the signup, or restore the ambassador with popsell.restore_ambassador(), first.';
    END IF;
    IF NOT FOUND
       OR NOT (popsell._caller_in('popsell_app')
               OR popsell._caller_in('popsell_brand')
                  AND NOT c.restricted
                  AND NOT (c.email_confirmed_at IS NULL
                           AND c.source IN ('blog', 'blog_internal_form', 'store_purchase'))
                  AND (c.brand_optin <> 'no_optin' OR c.partners_optin)
               OR popsell._caller_in('popsell_account_team')
               OR popsell._caller_in('popsell_technical')
               OR popsell._caller_in('popsell_owner')
               OR c.ambassador_id IS NOT DISTINCT FROM popsell.current_ambassador_id()
                  AND c.ambassador_id IS NOT NULL
                  -- (v2) like its row security: not a contact pending confirmation
                  AND NOT (c.email_confirmed_at IS NULL
                           AND c.source IN ('blog', 'blog_internal_form', 'store_purchase'))) THEN
        RAISE EXCEPTION 'contact % does not exist or is not yours', p_contact_id
            USING ERRCODE = 'PS200',
                  HINT = 'Check the contact id and the ambassador the session acts as.';
    END IF;
    RETURN c;
END
$$;
COMMENT ON FUNCTION popsell._contact_for_caller(bigint) IS
    'Internal: the contact row if the calling role may act on it (the brand and the ambassador: only contacts they see), else PS200.';

-- The ambassador id a caller may act for.
CREATE FUNCTION popsell._ambassador_for_caller(p_ambassador_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st popsell.ambassador_status;
BEGIN
    IF p_ambassador_id IS NULL THEN
        RAISE EXCEPTION 'ambassador id must not be NULL'
            USING ERRCODE = 'PS200', HINT = 'Pass the id of an existing ambassador.';
    END IF;
    -- An ambassador acting for itself while not active (the trusted app's
    -- popsell.ambassador_id, or its login role, names it) learns that, not
    -- "unknown": it is itself.
    IF EXISTS (SELECT 1 FROM popsell.ambassadors a
                WHERE a.id = p_ambassador_id AND a.status <> 'active'
                  AND (popsell._ambassador_id_setting() = p_ambassador_id::text
                       OR a.login_role IS NOT NULL AND popsell._caller_in(a.login_role::text)))
       AND popsell.current_ambassador_id() IS NULL THEN
        SELECT a.status INTO st FROM popsell.ambassadors a WHERE a.id = p_ambassador_id;
        RAISE EXCEPTION 'ambassador % is not active (status %)', p_ambassador_id, st
            USING ERRCODE = 'PS300',
                  DETAIL = 'Nothing is collected, imported or sent for an ambassador who is not active.',
                  HINT = 'Complete the signup, or restore the ambassador with popsell.restore_ambassador(), first.';
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
    SELECT a.status INTO st FROM popsell.ambassadors a WHERE a.id = p_ambassador_id;
    IF st <> 'active' THEN
        RAISE EXCEPTION 'ambassador % is not active (status %)', p_ambassador_id, st
            USING ERRCODE = 'PS300',
                  DETAIL = 'Nothing is collected, imported or sent for an ambassador who is not active.',
                  HINT = 'Complete the signup, or restore the ambassador with popsell.restore_ambassador(), first.';
    END IF;
    RETURN p_ambassador_id;
END
$$;
COMMENT ON FUNCTION popsell._ambassador_for_caller(bigint) IS
    'Internal: the ambassador id if the calling role may act for it, else PS200; PS300 when it is not active.';

-- Put an email on the blacklist and apply it to every contact row with
-- that email at once, serialized per email, never per table (a table
-- lock stalled every writer and deadlocked applications and
-- run_maintenance; src/blacklist.c explains the protocol): the entry
-- first, then the generation bump, then wait for the transactions still
-- writing rows of this email (only those), then the UPDATE, in a statement
-- that sees their rows.  A writer that probed before the entry existed and
-- stored its row after our wait finds the generation moved and checks
-- again (popsell_80_optout_recheck).  Under REPEATABLE READ our own
-- snapshot may predate a writer we waited for: then we fail with a
-- serialization error rather than miss its row.
CREATE FUNCTION popsell._blacklist_add(p_email text, p_reason popsell.blacklist_reason)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e text := popsell.normalize_email(p_email);
    n bigint;
BEGIN
    -- (a concurrent opt-out of the same email: its entry holds the key,
    -- ON CONFLICT waits for it and keeps it)
    INSERT INTO popsell.blacklist (email_hash, key_id, reason, created_at)
        SELECT popsell.hash_email(e), popsell.hash_key_id(), p_reason, now()
         WHERE NOT EXISTS (SELECT 1 FROM popsell.blacklist b
                            WHERE b.email_hash = ANY (popsell.email_hashes(e))
                              AND b.reason = p_reason)
        ON CONFLICT (email_hash, reason) DO NOTHING;
    -- after the entry is in the index, never before
    PERFORM pg_catalog.nextval('popsell.optout_generation'::pg_catalog.regclass);
    PERFORM popsell._await_email_writers(e);
    IF popsell._email_rows_unseen(e) THEN
        RAISE EXCEPTION 'could not serialize access due to a concurrent insert of the same email'
            USING ERRCODE = '40001',
                  HINT = 'Retry the transaction.';
    END IF;
    IF p_reason = 'global_optout' THEN
        UPDATE popsell.contacts SET ambassador_optin = 'global_optout'
         WHERE popsell_internal._lookup_key(email) = popsell_internal._lookup_key(e) AND ambassador_optin <> 'global_optout';
    ELSE
        UPDATE popsell.contacts SET email_status = p_reason::text::popsell.email_status
         WHERE popsell_internal._lookup_key(email) = popsell_internal._lookup_key(e) AND email_status NOT IN ('spam', 'hard_bounce', 'blocked');
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

-- One set-based pass over an import: a row is a duplicate when its email is
-- already in this CRM (not counting rows pending confirmation, which the
-- ambassador does not see) or earlier in the list; globally opted-out rows go
-- on to the trigger, which skips them.  Ids are drawn first so each input
-- row is matched to the contact it became.  p_ords gives each element's
-- position in the caller's list (NULL: 1..n).  Raises on an invalid row.
CREATE FUNCTION popsell._import_rows(p_amb bigint, p_contacts jsonb, p_ords bigint[])
    RETURNS TABLE (ordinality bigint, contact_id bigint, outcome text, reason text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH input AS (
        SELECT coalesce(p_ords[x.ord], x.ord) AS ord, p.*, popsell.normalize_email(nullif(btrim(p.email), '')) AS nemail
          FROM jsonb_array_elements(p_contacts) WITH ORDINALITY AS x(o, ord)
          CROSS JOIN LATERAL jsonb_populate_record(NULL::popsell.contacts, x.o) AS p),
    classified AS (
        SELECT r.*,
               r.nemail IS NOT NULL
               AND (r.rn > 1 OR EXISTS (SELECT 1 FROM popsell.contacts c
                                         WHERE c.ambassador_id = p_amb
                                           AND popsell_internal._lookup_key(c.email) = popsell_internal._lookup_key(r.nemail)
                                           AND c.email = r.nemail
                                           -- (hidden from the ambassador: holds nothing yet)
                                           AND NOT popsell.is_pending_confirmation(c.source, c.email_confirmed_at)))
               AND NOT popsell._globally_opted_out(r.nemail) AS duplicate
          FROM (SELECT i.*, row_number() OVER (PARTITION BY i.nemail ORDER BY i.ord) AS rn
                  FROM input i) r),
    keyed AS MATERIALIZED (
        SELECT k.*, CASE WHEN NOT k.duplicate THEN nextval('popsell.contacts_id_seq') END AS new_id
          FROM classified k),
    ins AS (
        INSERT INTO popsell.contacts (id, ambassador_id, source, first_name, last_name, email, facebook_id,
                                      twitter_id, instagram_id, public_photo_url, customer_id,
                                      contact_type, notes, address, city, postal_code, country,
                                      mobile_phone, home_phone, tags, created_at, last_activity_at,
                                      ambassador_optin, brand_optin)
        SELECT k.new_id, p_amb, coalesce(k.source, 'private_import'), k.first_name, k.last_name, k.nemail, k.facebook_id,
               k.twitter_id, k.instagram_id, k.public_photo_url, k.customer_id,
               coalesce(k.contact_type, 'prospect'), k.notes, k.address, k.city, k.postal_code, k.country,
               k.mobile_phone, k.home_phone, coalesce(k.tags, '{}'), k.created_at, k.last_activity_at,
               k.ambassador_optin, k.brand_optin
          FROM keyed k
         WHERE NOT k.duplicate
         ORDER BY k.ord
        RETURNING id)
    SELECT k.ord, i.id,
           CASE WHEN k.duplicate THEN 'skipped_duplicate'
                WHEN i.id IS NULL THEN 'skipped_blacklisted' ELSE 'imported' END,
           CASE WHEN k.duplicate THEN 'email already held by this ambassador'
                WHEN i.id IS NULL THEN 'email globally opted out' END
      FROM keyed k
      LEFT JOIN ins i ON i.id = k.new_id
     ORDER BY k.ord;
END
$$;
COMMENT ON FUNCTION popsell._import_rows(bigint, jsonb, bigint[]) IS
    'Internal: import a JSON array of contacts in one statement, one outcome per row at the given positions (raises on an invalid row).';

-- (v2) The text fields of a contact's JSON take a string or null: a
-- number, boolean, object or array would be stored as its JSON text.
CREATE FUNCTION popsell._json_not_strings(o jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (SELECT string_agg(e.k, ', ' ORDER BY e.k)
              FROM jsonb_each(o) AS e(k, v)
             WHERE (e.k IN ('first_name', 'last_name', 'email', 'facebook_id', 'twitter_id', 'instagram_id',
                            'public_photo_url', 'customer_id', 'notes', 'address', 'city', 'postal_code',
                            'country', 'mobile_phone', 'home_phone')
                    AND jsonb_typeof(e.v) NOT IN ('string', 'null'))
                OR (e.k = 'tags' AND jsonb_typeof(e.v) = 'array'
                    AND EXISTS (SELECT 1 FROM jsonb_array_elements(e.v) AS t(x) WHERE jsonb_typeof(t.x) <> 'string')));
COMMENT ON FUNCTION popsell._json_not_strings(jsonb) IS
    'Internal: the keys of a contact JSON object whose text value is not a string or null (tags: an element that is not a string), or NULL.';

-- Why an import element cannot be stored, or NULL: the checks of the
-- contacts trigger and table that an ambassador's import can fail
-- (object, types, email syntax and length, length bounds, a personal
-- field, source, initial consent), answered without raising so that one
-- statement sorts a whole list.  The reason names the problem, never the
-- value.
CREATE FUNCTION popsell._import_check(o jsonb)
    RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r popsell.contacts;
    e text;
BEGIN
    IF jsonb_typeof(o) IS DISTINCT FROM 'object' THEN
        RETURN 'not a JSON object';
    END IF;
    BEGIN
        r := jsonb_populate_record(NULL::popsell.contacts, o);
        e := popsell.normalize_email(nullif(btrim(r.email), ''));
    EXCEPTION
        WHEN SQLSTATE 'PS202' THEN RETURN 'malformed email';
        WHEN SQLSTATE 'PS107' OR SQLSTATE '22001' THEN RETURN 'value too long';
        WHEN data_exception THEN RETURN format('invalid value (SQLSTATE %s)', SQLSTATE);
    END;
    IF octet_length(r.first_name) > 256 OR octet_length(r.last_name) > 256 OR octet_length(e) > 254
       OR octet_length(r.facebook_id) > 256 OR octet_length(r.twitter_id) > 256
       OR octet_length(r.instagram_id) > 256 OR octet_length(r.public_photo_url) > 1024
       OR octet_length(r.customer_id) > 256 OR octet_length(r.notes) > 10000
       OR octet_length(r.address) > 1024 OR octet_length(r.city) > 256
       OR octet_length(r.postal_code) > 256 OR octet_length(r.country) > 256
       OR octet_length(r.mobile_phone) > 64 OR octet_length(r.home_phone) > 64
       -- (the contacts trigger's bound on tags: 100 labels of 256 bytes)
       OR cardinality(r.tags) > 100
       OR EXISTS (SELECT 1 FROM unnest(r.tags) AS t(x) WHERE octet_length(t.x) > 256) THEN
        RETURN 'value too long';
    END IF;
    -- (a field of only white space or invisible characters is empty, as
    -- for the contacts trigger)
    IF e IS NULL AND (popsell._has_visible_text(r.first_name) OR popsell._has_visible_text(r.last_name)
                          OR popsell._has_visible_text(r.facebook_id) OR popsell._has_visible_text(r.twitter_id)
                          OR popsell._has_visible_text(r.instagram_id) OR popsell._has_visible_text(r.public_photo_url)
                          OR popsell._has_visible_text(r.customer_id) OR popsell._has_visible_text(r.mobile_phone)
                          OR popsell._has_visible_text(r.home_phone) OR popsell._has_visible_text(r.address)) IS NOT TRUE THEN
        RETURN 'no personal field';
    END IF;
    IF coalesce(r.source, 'private_import') NOT IN ('private_import', 'crm_manual') THEN
        RETURN 'source not allowed';
    END IF;
    IF coalesce(r.ambassador_optin, 'new') <> 'new' OR coalesce(r.brand_optin, 'no_optin') <> 'no_optin' THEN
        RETURN 'consent value not allowed for the source';
    END IF;
    IF r.created_at IN ('infinity', '-infinity') OR r.last_activity_at IN ('infinity', '-infinity') THEN
        RETURN 'time cannot be infinite';
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION popsell._import_check(jsonb) IS
    'Internal: why an import element cannot be stored (not an object, mistyped or over-long value, malformed email, no personal field, source, initial consent), or NULL; never raises for the element. (_import reports a text value that is not a JSON string itself, with _json_not_strings.)';

-- Import the elements that passed _import_check in one statement; should
-- the trigger still refuse one (a check it does that _import_check does
-- not, a race), halve the list, so a few bad rows cost a logarithmic
-- number of passes, not one per row; a part of at most 64 rows that is
-- still refused goes row by row (a subtransaction each), so many refused
-- rows cost about one pass per row, not a pass per row per halving.
-- One checked element, alone, in a subtransaction: its outcome (the
-- trigger's refusal named by reason), as _import_rows reports it.  A
-- plain INSERT: a tenth of the cost of _import_rows for one row.
CREATE FUNCTION popsell._import_one(p_amb bigint, o jsonb, p_ord bigint)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k popsell.contacts;
    new_id bigint;
    st text;
    cn text;
BEGIN
    BEGIN
        k := jsonb_populate_record(NULL::popsell.contacts, o);
        INSERT INTO popsell.contacts (ambassador_id, source, first_name, last_name, email, facebook_id,
                                      twitter_id, instagram_id, public_photo_url, customer_id,
                                      contact_type, notes, address, city, postal_code, country,
                                      mobile_phone, home_phone, tags, created_at, last_activity_at,
                                      ambassador_optin, brand_optin)
        VALUES (p_amb, coalesce(k.source, 'private_import'), k.first_name, k.last_name,
                popsell.normalize_email(nullif(btrim(k.email), '')), k.facebook_id,
                k.twitter_id, k.instagram_id, k.public_photo_url, k.customer_id,
                coalesce(k.contact_type, 'prospect'), k.notes, k.address, k.city, k.postal_code, k.country,
                k.mobile_phone, k.home_phone, coalesce(k.tags, '{}'), k.created_at, k.last_activity_at,
                k.ambassador_optin, k.brand_optin)
        RETURNING id INTO new_id;
    EXCEPTION WHEN SQLSTATE 'PS202' OR SQLSTATE 'PS101' OR SQLSTATE 'PS102' OR SQLSTATE 'PS103'
                   OR SQLSTATE 'PS104' OR SQLSTATE 'PS106' OR SQLSTATE 'PS107' OR SQLSTATE 'PS109'
                   OR SQLSTATE '23514' OR SQLSTATE '23502' OR data_exception THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, cn = CONSTRAINT_NAME;
        RETURN jsonb_build_array(jsonb_build_object(
            'ordinality', p_ord, 'contact_id', NULL,
            'outcome', CASE WHEN st = 'PS109' THEN 'skipped_duplicate' ELSE 'skipped_invalid' END,
            'reason', CASE
                WHEN st = 'PS202' THEN 'malformed email'
                WHEN st = 'PS109' THEN 'email already held by this ambassador'
                WHEN st IN ('PS107', '22001') OR cn = 'contacts_bounded_text' THEN 'value too long'
                WHEN st = 'PS101' THEN 'consent value not allowed for the source'
                WHEN st = 'PS102' THEN 'source not allowed'
                WHEN st = 'PS103' THEN 'personal field not allowed for the source'
                WHEN st = 'PS104' OR cn = 'contacts_has_personal_field' THEN 'no personal field'
                ELSE format('invalid value (SQLSTATE %s)', st) END));
    END;
    -- the trigger skips a globally opted-out email: no row, no error
    RETURN jsonb_build_array(jsonb_build_object(
        'ordinality', p_ord, 'contact_id', new_id,
        'outcome', CASE WHEN new_id IS NULL THEN 'skipped_blacklisted' ELSE 'imported' END,
        'reason', CASE WHEN new_id IS NULL THEN 'email globally opted out' END));
END
$$;
COMMENT ON FUNCTION popsell._import_one(bigint, jsonb, bigint) IS
    'Internal: import one checked element alone (a subtransaction), reporting its outcome and reason like _import_rows; never raises for the element''s own refusal.';

-- (H3) The parts of a refused import: each half in one plain INSERT (the
-- trigger refuses a duplicate, PS109, and skips a globally opted-out
-- email), halved again while refused; a refused part of at most 64 rows
-- goes row by row (_import_one), since halving further costs more passes
-- than it saves.  p_try: try the list whole first.
CREATE FUNCTION popsell._import_halves(p_amb bigint, p_contacts jsonb, p_ords bigint[], p_try boolean)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer := coalesce(jsonb_array_length(p_contacts), 0);
    h integer := n / 2;
    res jsonb;
BEGIN
    IF n = 0 THEN
        RETURN '[]';
    END IF;
    IF p_try THEN
        BEGIN
            WITH input AS (
                SELECT coalesce(p_ords[x.ord], x.ord) AS ord, p.*,
                       popsell.normalize_email(nullif(btrim(p.email), '')) AS nemail
                  FROM jsonb_array_elements(p_contacts) WITH ORDINALITY AS x(o, ord)
                  CROSS JOIN LATERAL jsonb_populate_record(NULL::popsell.contacts, x.o) AS p),
            keyed AS MATERIALIZED (
                SELECT i.*, nextval('popsell.contacts_id_seq') AS new_id FROM input i),
            ins AS (
                INSERT INTO popsell.contacts (id, ambassador_id, source, first_name, last_name, email, facebook_id,
                                              twitter_id, instagram_id, public_photo_url, customer_id,
                                              contact_type, notes, address, city, postal_code, country,
                                              mobile_phone, home_phone, tags, created_at, last_activity_at,
                                              ambassador_optin, brand_optin)
                SELECT k.new_id, p_amb, coalesce(k.source, 'private_import'), k.first_name, k.last_name, k.nemail, k.facebook_id,
                       k.twitter_id, k.instagram_id, k.public_photo_url, k.customer_id,
                       coalesce(k.contact_type, 'prospect'), k.notes, k.address, k.city, k.postal_code, k.country,
                       k.mobile_phone, k.home_phone, coalesce(k.tags, '{}'), k.created_at, k.last_activity_at,
                       k.ambassador_optin, k.brand_optin
                  FROM keyed k
                 ORDER BY k.ord
                RETURNING id)
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'ordinality', k.ord, 'contact_id', i.id,
                       'outcome', CASE WHEN i.id IS NULL THEN 'skipped_blacklisted' ELSE 'imported' END,
                       'reason', CASE WHEN i.id IS NULL THEN 'email globally opted out' END) ORDER BY k.ord), '[]')
              INTO res
              FROM keyed k LEFT JOIN ins i ON i.id = k.new_id;
            RETURN res;
        EXCEPTION WHEN SQLSTATE 'PS202' OR SQLSTATE 'PS101' OR SQLSTATE 'PS102' OR SQLSTATE 'PS103'
                       OR SQLSTATE 'PS104' OR SQLSTATE 'PS106' OR SQLSTATE 'PS107' OR SQLSTATE 'PS109'
                       OR SQLSTATE '23514' OR SQLSTATE '23502' OR data_exception THEN
            NULL;       -- split below
        END;
    END IF;
    IF n <= 64 THEN
        res := '[]';
        FOR i IN 1 .. n LOOP
            res := res || popsell._import_one(p_amb, p_contacts -> (i - 1), p_ords[i]);
        END LOOP;
        RETURN res;
    END IF;
    RETURN popsell._import_halves(p_amb, jsonb_path_query_array(p_contacts, format('$[0 to %s]', h - 1)::jsonpath),
                                  p_ords[1:h], true)
        || popsell._import_halves(p_amb, jsonb_path_query_array(p_contacts, format('$[%s to last]', h)::jsonpath),
                                  p_ords[h + 1:n], true);
END
$$;
COMMENT ON FUNCTION popsell._import_halves(bigint, jsonb, bigint[], boolean) IS
    'Internal: import the parts of a refused import (at the given positions): halves in one plain INSERT each, halved while refused, a refused part of at most 64 rows row by row; outcomes like _import_rows.';

CREATE FUNCTION popsell._import_split(p_amb bigint, p_contacts jsonb, p_ords bigint[])
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer := coalesce(jsonb_array_length(p_contacts), 0);
    h integer := n / 2;
    res jsonb;
BEGIN
    IF n = 0 THEN
        RETURN '[]';
    END IF;
    BEGIN
        SELECT coalesce(jsonb_agg(to_jsonb(t)), '[]') INTO res
          FROM popsell._import_rows(p_amb, p_contacts, p_ords) t;
        RETURN res;
    EXCEPTION WHEN SQLSTATE 'PS202' OR SQLSTATE 'PS101' OR SQLSTATE 'PS102' OR SQLSTATE 'PS103'
                   OR SQLSTATE 'PS104' OR SQLSTATE 'PS106' OR SQLSTATE 'PS107' OR SQLSTATE 'PS109'
                   OR SQLSTATE '23514' OR SQLSTATE '23502' OR data_exception THEN
        NULL;       -- split below
    END;
    RETURN popsell._import_halves(p_amb, p_contacts, p_ords, false);
END
$$;
COMMENT ON FUNCTION popsell._import_split(bigint, jsonb, bigint[]) IS
    'Internal: import checked elements (at the given positions) in one statement; a refused statement is halved, and a refused part of at most 64 rows goes row by row, until each refused row is reported alone.';

-- An import: one statement when every row is valid; else the elements
-- are sorted in one statement (_import_check), the valid ones inserted in
-- one more, the invalid ones reported with a reason that names the
-- problem, never the value.
CREATE FUNCTION popsell._import(p_amb bigint, p_contacts jsonb)
    RETURNS TABLE (ordinality bigint, contact_id bigint, outcome text, reason text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    amb bigint := popsell._ambassador_for_caller(p_amb);
    res jsonb;
    good jsonb;
    good_ords bigint[];
    bad text;
    typed boolean;
BEGIN
    IF p_contacts IS NULL OR jsonb_typeof(p_contacts) <> 'array' THEN
        RAISE EXCEPTION 'contacts must be a JSON array of objects'
            USING ERRCODE = 'PS106',
                  HINT = 'Pass e.g. ''[{"email": "a@example.test", "first_name": "A"}]''.';
    END IF;
    -- (one pass over the keys: unknown ones, and whether a text field got
    -- something else than a string or null, which only _import_check
    -- reports, since the INSERT would store it as JSON text)
    SELECT string_agg(DISTINCT e.k, ', ')
               FILTER (WHERE e.k NOT IN ('source', 'first_name', 'last_name', 'email', 'facebook_id', 'twitter_id',
                                         'instagram_id', 'public_photo_url', 'customer_id', 'contact_type', 'notes',
                                         'address', 'city', 'postal_code', 'country', 'mobile_phone', 'home_phone',
                                         'tags', 'created_at', 'last_activity_at', 'ambassador_optin', 'brand_optin')),
           coalesce(bool_or(CASE WHEN e.k = 'tags' AND jsonb_typeof(e.v) = 'array'
                                 THEN EXISTS (SELECT 1 FROM jsonb_array_elements(e.v) AS t(x)
                                               WHERE jsonb_typeof(t.x) <> 'string')
                                 ELSE jsonb_typeof(e.v) NOT IN ('string', 'null')
                                      AND e.k NOT IN ('source', 'contact_type', 'created_at', 'last_activity_at',
                                                      'ambassador_optin', 'brand_optin') END), false)
      INTO bad, typed
      FROM jsonb_array_elements(p_contacts) AS x(o)
      CROSS JOIN LATERAL jsonb_each(x.o) AS e(k, v)
     WHERE jsonb_typeof(x.o) = 'object';
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'import does not accept the keys: %', bad
            USING ERRCODE = 'PS106',
                  HINT = 'Use popsell.contacts column names for personal fields; consent comes from the source.';
    END IF;

    -- A list without an invalid row goes in one statement, at the cost of
    -- the insert alone; else the list is sorted by _import_check in one
    -- statement and the valid rows inserted in one more.
    IF NOT typed THEN
        BEGIN
            SELECT coalesce(jsonb_agg(to_jsonb(t)), '[]') INTO res
              FROM popsell._import_rows(amb, p_contacts, NULL) t;
        EXCEPTION WHEN SQLSTATE 'PS202' OR SQLSTATE 'PS101' OR SQLSTATE 'PS102' OR SQLSTATE 'PS103'
                       OR SQLSTATE 'PS104' OR SQLSTATE 'PS106' OR SQLSTATE 'PS107' OR SQLSTATE 'PS109'
                       OR SQLSTATE '23514' OR SQLSTATE '23502' OR data_exception THEN
            res := NULL;
        END;
    END IF;
    IF res IS NULL THEN
        SELECT jsonb_agg(c.o ORDER BY c.ord) FILTER (WHERE c.why IS NULL),
               array_agg(c.ord ORDER BY c.ord) FILTER (WHERE c.why IS NULL),
               jsonb_agg(jsonb_build_object('ordinality', c.ord, 'contact_id', NULL,
                                            'outcome', 'skipped_invalid', 'reason', c.why))
                   FILTER (WHERE c.why IS NOT NULL)
          INTO good, good_ords, res
          -- (the JSON types only when the key pass saw a non-string)
          FROM (SELECT x.o, x.ord,
                       CASE WHEN typed AND jsonb_typeof(x.o) = 'object' AND popsell._json_not_strings(x.o) IS NOT NULL
                            THEN 'value not a string' ELSE popsell._import_check(x.o) END AS why
                  FROM jsonb_array_elements(p_contacts) WITH ORDINALITY AS x(o, ord)) c;
        res := coalesce(res, '[]') || popsell._import_split(amb, good, good_ords);
    END IF;
    RETURN QUERY
    SELECT r.ordinality, r.contact_id, r.outcome, r.reason
      FROM jsonb_to_recordset(res) AS r(ordinality bigint, contact_id bigint, outcome text, reason text)
     ORDER BY r.ordinality;
END
$$;
COMMENT ON FUNCTION popsell._import(bigint, jsonb) IS
    'Internal: import contacts for an ambassador, one outcome per input row; invalid rows (each with its reason) are skipped, not fatal, and the valid ones inserted in one statement.';

CREATE FUNCTION popsell.import_contacts(ambassador_id bigint, contacts jsonb)
    RETURNS TABLE (imported bigint, skipped_blacklisted bigint, skipped_duplicate bigint,
                   skipped_invalid bigint)
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'ambassador'
BEGIN ATOMIC
    SELECT count(*) FILTER (WHERE d.outcome = 'imported'),
           count(*) FILTER (WHERE d.outcome = 'skipped_blacklisted'),
           count(*) FILTER (WHERE d.outcome = 'skipped_duplicate'),
           count(*) FILTER (WHERE d.outcome = 'skipped_invalid')
      FROM popsell._import(import_contacts.ambassador_id, import_contacts.contacts) d;
END;
COMMENT ON FUNCTION popsell.import_contacts(bigint, jsonb) IS
    'Import an ambassador''s private list (JSON array of contact objects); globally opted-out emails, emails the ambassador already holds and invalid rows (not an object, malformed email, over-long or mistyped value, no personal field, source or consent value not allowed) are skipped and counted; a list without an invalid row is inserted in one statement, else the rows are checked in one and the valid ones inserted in one more. By the ambassador itself, app, account team, technical; PS200 unknown or foreign ambassador, PS300 not active, PS106 not an array or unknown keys.';

CREATE FUNCTION popsell.import_contacts_detail(ambassador_id bigint, contacts jsonb)
    RETURNS TABLE (ordinality bigint, contact_id bigint, outcome text, reason text)
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'ambassador'
BEGIN ATOMIC
    SELECT d.ordinality, d.contact_id, d.outcome, d.reason
      FROM popsell._import(import_contacts_detail.ambassador_id, import_contacts_detail.contacts) d
     ORDER BY d.ordinality;
END;
COMMENT ON FUNCTION popsell.import_contacts_detail(bigint, jsonb) IS
    'The same import as import_contacts, reporting each input row: its position, the contact id, the outcome (imported, skipped_blacklisted, skipped_duplicate, skipped_invalid) and a reason without personal data (not a JSON object, value not a string, malformed email, value too long, no personal field, source not allowed, consent value not allowed for the source, invalid value (SQLSTATE ...), email already held by this ambassador, email globally opted out). Same callers and errors as import_contacts.';

-- (v2) A pending contact's confirmation: only the SHA-256 of the token
-- (the token travels in the email_confirmation outbox row).  One per
-- contact, replaced when the address changes, so a token confirms only
-- the address it was sent to.
CREATE TABLE popsell.contact_email_tokens (
    contact_id bigint PRIMARY KEY REFERENCES popsell.contacts (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE popsell.contact_email_tokens IS
    'Internal: pending contact email confirmations, the SHA-256 of each single-use token (never the token), one per contact, replaced on an address change, deleted on confirmation.';

CREATE FUNCTION popsell._issue_contact_token(p_contact_id bigint) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tok text := encode(popsell._random_bytes(32), 'hex');
BEGIN
    DELETE FROM popsell.contact_email_tokens t WHERE t.contact_id = p_contact_id;
    -- A token exists only where a mail carries it: to a pending contact
    -- that may be mailed now.  Not while restricted (art. 18: lifting
    -- issues one), nor to an address whose status blocks sending (SPEC
    -- section 3: spam, hard_bounce, blocked; only an unverified address
    -- is confirmed).
    IF NOT EXISTS (SELECT 1 FROM popsell.contacts c
                    WHERE c.id = p_contact_id AND c.email IS NOT NULL AND NOT c.restricted
                      AND c.email_status = 'unverified'
                      AND popsell.is_pending_confirmation(c.source, c.email_confirmed_at)) THEN
        RETURN;
    END IF;
    INSERT INTO popsell.contact_email_tokens (contact_id, token_hash)
    VALUES (p_contact_id, sha256(convert_to(tok, 'UTF8')));
    INSERT INTO popsell.outbox (kind, ambassador_id, contact_id, payload)
    SELECT 'email_confirmation', c.ambassador_id, c.id, jsonb_build_object('source', c.source, 'token', tok)
      FROM popsell.contacts c WHERE c.id = p_contact_id;
END
$$;
COMMENT ON FUNCTION popsell._issue_contact_token(bigint) IS
    'Internal: a new single-use confirmation token for a pending contact''s current address (hash stored, email_confirmation queued with the token), replacing any earlier one; only when the contact may be mailed (an email with status unverified, not restricted), else the earlier token is just removed.';

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
    bad := popsell._json_not_strings(data);
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'collect_contact takes a string or null for: %', bad
            USING ERRCODE = 'PS106',
                  HINT = 'Send text fields as JSON strings (tags as an array of strings), not numbers, booleans or objects.';
    END IF;

    -- The path: the brand's sync, an ambassador's own entry, else the contact.
    PERFORM set_config('popsell.actor',
                       CASE WHEN source = 'brand_sync' THEN 'brand_sync'
                            WHEN source IN ('crm_manual', 'private_import') THEN 'ambassador'
                            ELSE 'contact' END, true);

    init := popsell.initial_optins(source, ambassador_optin_checked, brand_optin_checked,
                                   partners_optin_checked);
    r := jsonb_populate_record(NULL::popsell.contacts, data);

    -- (v2) A brand sync of a person this ambassador already holds from the
    -- brand (same customer_id, else same email) updates that row: the
    -- fields sent, and the opt-ins through the brand-sync transitions.
    IF source = 'brand_sync' THEN
        SELECT c.id INTO new_id
          FROM popsell.contacts c
         WHERE c.ambassador_id = collect_contact.ambassador_id
           AND c.source = 'brand_sync'
           AND CASE WHEN nullif(btrim(r.customer_id), '') IS NOT NULL THEN c.customer_id = r.customer_id
                    ELSE nullif(btrim(r.email), '') IS NOT NULL
                         AND popsell_internal._lookup_key(c.email) = popsell_internal._lookup_key(popsell.normalize_email(r.email))
                         AND c.email = popsell.normalize_email(r.email) END
         ORDER BY c.id
         LIMIT 1
           FOR UPDATE;
        IF FOUND THEN
            UPDATE popsell.contacts c
               SET first_name = CASE WHEN data ? 'first_name' THEN r.first_name ELSE c.first_name END,
                   last_name = CASE WHEN data ? 'last_name' THEN r.last_name ELSE c.last_name END,
                   email = CASE WHEN data ? 'email' THEN r.email ELSE c.email END,
                   facebook_id = CASE WHEN data ? 'facebook_id' THEN r.facebook_id ELSE c.facebook_id END,
                   twitter_id = CASE WHEN data ? 'twitter_id' THEN r.twitter_id ELSE c.twitter_id END,
                   instagram_id = CASE WHEN data ? 'instagram_id' THEN r.instagram_id ELSE c.instagram_id END,
                   public_photo_url = CASE WHEN data ? 'public_photo_url' THEN r.public_photo_url ELSE c.public_photo_url END,
                   customer_id = CASE WHEN data ? 'customer_id' THEN r.customer_id ELSE c.customer_id END,
                   contact_type = CASE WHEN data ? 'contact_type' THEN coalesce(r.contact_type, c.contact_type) ELSE c.contact_type END,
                   notes = CASE WHEN data ? 'notes' THEN r.notes ELSE c.notes END,
                   address = CASE WHEN data ? 'address' THEN r.address ELSE c.address END,
                   city = CASE WHEN data ? 'city' THEN r.city ELSE c.city END,
                   postal_code = CASE WHEN data ? 'postal_code' THEN r.postal_code ELSE c.postal_code END,
                   country = CASE WHEN data ? 'country' THEN r.country ELSE c.country END,
                   mobile_phone = CASE WHEN data ? 'mobile_phone' THEN r.mobile_phone ELSE c.mobile_phone END,
                   home_phone = CASE WHEN data ? 'home_phone' THEN r.home_phone ELSE c.home_phone END,
                   tags = CASE WHEN data ? 'tags' THEN coalesce(r.tags, '{}') ELSE c.tags END,
                   ambassador_optin = CASE WHEN brand_optin_checked AND c.ambassador_optin = 'new'
                                           THEN 'optin_brand_imported' ELSE c.ambassador_optin END,
                   brand_optin = CASE WHEN brand_optin_checked AND c.brand_optin IN ('no_optin', 'storage_only')
                                      THEN 'optin_brand_database'
                                      WHEN NOT brand_optin_checked AND c.brand_optin NOT IN ('no_optin', 'storage_only')
                                      THEN 'storage_only'
                                      ELSE c.brand_optin END
             WHERE c.id = new_id;
            RETURN new_id;
        END IF;
    END IF;
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
        PERFORM popsell._issue_contact_token(c.id)
           FROM popsell.contacts c
          WHERE c.id = new_id AND c.email_confirmed_at IS NULL AND c.email IS NOT NULL;
    END IF;
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION popsell.collect_contact(bigint, popsell.contact_source, jsonb, boolean, boolean, boolean) IS
    'Record a contact collected by a form, order, popin, store purchase, external form or brand sync, with the checkboxes the contact ticked (SPEC C1); a brand sync of a person the ambassador already holds from the brand (same customer_id, else email) updates that row. Returns the id, or NULL when a globally opted-out email was skipped. App only; PS200 unknown ambassador, PS300 ambassador not active, PS102 source, PS106 data.';

-- (v2) One invitation per person per ambassador, ever: the keyed hash of
-- the address each invitation went to, per ambassador, written by
-- send_invitation and never changed.  A later address change, a second
-- row or an erasure of the invited row does not hide it.  Kept like the
-- contact tombstones (keyed hashes, the ambassador id; checked under
-- every live key), and erased with the ambassador: it only stops that
-- ambassador from inviting the address again.
CREATE TABLE popsell.invitation_records (
    ambassador_id bigint NOT NULL REFERENCES popsell.ambassadors (id) ON DELETE CASCADE,
    email_hash    bytea NOT NULL,
    key_id        integer NOT NULL,
    invited_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ambassador_id, email_hash)
);
COMMENT ON TABLE popsell.invitation_records IS
    'Internal (owner only), append-only: the keyed hash of each address an ambassador invited (send_invitation), so it invites the person once, ever, whatever becomes of the row; erased with the ambassador.';

CREATE FUNCTION popsell.send_invitation(contact_id bigint)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'send_invitation'
AS $$
DECLARE
    c popsell.contacts := popsell._contact_for_caller(send_invitation.contact_id);
    st popsell.ambassador_status;
    h bytea;
BEGIN
    PERFORM 1 FROM popsell.contacts WHERE id = c.id FOR UPDATE;
    SELECT * INTO c FROM popsell.contacts WHERE id = c.id;
    SELECT a.status INTO st FROM popsell.ambassadors a WHERE a.id = c.ambassador_id;
    IF st IS DISTINCT FROM 'active' THEN
        RAISE EXCEPTION 'ambassador % is not active (status %): nothing is sent for it',
                        c.ambassador_id, coalesce(st::text, 'none')
            USING ERRCODE = 'PS300',
                  HINT = 'Only active ambassadors send invitations.';
    END IF;
    IF c.invitations_sent > 0 AND c.ambassador_optin = 'new' THEN
        RAISE EXCEPTION 'ambassador_optin cannot change from "new" to "invitation_sent": contact % was invited once already', c.id
            USING ERRCODE = 'PS100',
                  DETAIL = 'A contact receives one invitation, ever.',
                  HINT = 'Wait for the person to come back through a form or an order.';
    END IF;
    -- One invitation per person per ambassador, also across a second row
    -- (a form's), an address change and an erasure and re-entry: the
    -- ambassador's record of an invitation to this address (under any
    -- live key), another row of the ambassador with this email that was
    -- invited, or the ambassador's tombstone of one, counts as that
    -- invitation.  Two sessions inviting the same person for the same
    -- ambassador take turns (a transaction lock on the pair; its key is
    -- derived from the keyed hash, so pg_locks shows nothing reversible).
    IF c.ambassador_optin = 'new' AND c.email IS NOT NULL THEN
        h := popsell.hash_email(c.email);
        PERFORM pg_advisory_xact_lock(hashtextextended(encode(h, 'hex'), c.ambassador_id));
    END IF;
    IF c.ambassador_optin = 'new' AND c.email IS NOT NULL
       AND (EXISTS (SELECT 1 FROM popsell.invitation_records i
                     WHERE i.ambassador_id = c.ambassador_id
                       AND i.email_hash = ANY (popsell.email_hashes(c.email)))
            OR EXISTS (SELECT 1 FROM popsell.contacts o
                     WHERE popsell_internal._lookup_key(o.email) = popsell_internal._lookup_key(c.email)
                       AND o.email = c.email AND o.ambassador_id = c.ambassador_id
                       AND o.id <> c.id AND o.invitations_sent > 0)
            OR EXISTS (SELECT 1 FROM popsell.contact_tombstones t
                        WHERE t.email_hash = ANY (popsell.email_hashes(c.email))
                          AND t.ambassador_id = c.ambassador_id
                          AND t.ambassador_optin IN ('invitation_sent', 'invitation_accepted',
                                                     'invitation_declined', 'optout_no_response'))) THEN
        RAISE EXCEPTION 'ambassador_optin cannot change from "new" to "invitation_sent": ambassador % invited this person once already', c.ambassador_id
            USING ERRCODE = 'PS100',
                  DETAIL = format('Another contact of the same ambassador with the email of contact %s, present or erased, was invited.', c.id),
                  HINT = 'A person receives one invitation per ambassador, ever; wait for the person to come back through a form or an order.';
    END IF;
    IF c.ambassador_optin <> 'new' THEN
        RAISE EXCEPTION 'ambassador_optin cannot change from "%" to "invitation_sent": only new contacts are invited', c.ambassador_optin
            USING ERRCODE = 'PS100',
                  DETAIL = format('Contact %s has already been invited or has another consent state.', c.id),
                  HINT = 'Invitations go to new contacts, once.';
    END IF;
    -- queue first: the sending guard checks the contact is still new
    INSERT INTO popsell.outbox (kind, ambassador_id, contact_id, payload)
    VALUES ('invitation', c.ambassador_id, c.id, '{}');
    IF h IS NOT NULL THEN
        -- (under REPEATABLE READ a concurrent record this snapshot does
        -- not see makes this a serialization failure)
        INSERT INTO popsell.invitation_records (ambassador_id, email_hash, key_id)
        VALUES (c.ambassador_id, h, popsell.hash_key_id())
        ON CONFLICT DO NOTHING;
    END IF;
    UPDATE popsell.contacts
       SET ambassador_optin = 'invitation_sent', invitation_sent_at = now(),
           invitations_sent = invitations_sent + 1
     WHERE id = c.id;
END
$$;
COMMENT ON FUNCTION popsell.send_invitation(bigint) IS
    'Queue the invitation email of a new contact (once, ever) and mark it invitation_sent. By the ambassador itself, app, account team, technical (not the brand); PS200 unknown or foreign contact, PS100 not new or invited before, PS300 ambassador not active, PS120 sending refused.';

CREATE FUNCTION popsell.send_invitations(contact_ids bigint[])
    RETURNS TABLE (contact_id bigint, outcome text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'send_invitation'
AS $$
DECLARE
    cid bigint;
    c popsell.contacts;
BEGIN
    IF send_invitations.contact_ids IS NULL THEN
        RAISE EXCEPTION 'contact_ids must not be NULL'
            USING ERRCODE = 'PS106', HINT = 'Pass an array of contact ids.';
    END IF;
    FOREACH cid IN ARRAY send_invitations.contact_ids LOOP
        send_invitations.contact_id := cid;
        BEGIN
            PERFORM popsell.send_invitation(cid);
            outcome := 'sent';
        EXCEPTION
            WHEN SQLSTATE 'PS200' THEN
                outcome := 'skipped_unknown';
            WHEN SQLSTATE 'PS100' THEN
                outcome := 'skipped_state';
            WHEN SQLSTATE 'PS300' THEN
                outcome := 'skipped_ambassador_inactive';
            WHEN SQLSTATE 'PS120' THEN
                SELECT * INTO c FROM popsell.contacts x WHERE x.id = cid;
                outcome := CASE WHEN c.restricted THEN 'skipped_restricted'
                                WHEN c.email IS NULL THEN 'skipped_no_email'
                                WHEN c.email_status <> 'ok' THEN 'skipped_email_status'
                                ELSE 'skipped_refused' END;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION popsell.send_invitations(bigint[]) IS
    'The ambassador''s invitation batch: send_invitation for each id; a contact that may not be invited is skipped and reported (skipped_unknown, skipped_state, skipped_email_status, skipped_no_email, skipped_restricted, skipped_ambassador_inactive, skipped_refused), the rest go out (sent). Same callers as send_invitation; PS106 for a NULL array.';

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

-- confirm_email(contact_id) is SPEC's form: the application vouches that
-- the person confirmed the current address.  confirm_email(contact_id,
-- token) binds the link to the address it was sent to.  Both end in the
-- same confirmation, which uses up the pending token.
-- (v2) Art. 18: a restricted contact confirms nothing (its token was
-- removed with the restriction; lifting it sends a new one).
CREATE FUNCTION popsell._refuse_restricted_confirmation(p_contact_id bigint) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM popsell.contacts c WHERE c.id = p_contact_id AND c.restricted) THEN
        RAISE EXCEPTION 'contact % cannot confirm its email: its processing is restricted (GDPR art. 18)', p_contact_id
            USING ERRCODE = 'PS120',
                  DETAIL = 'A restricted contact is sent nothing and its consent does not change.',
                  HINT = 'Lift the restriction with popsell.restrict_subject(email, false) first: the contact then receives a new confirmation email.';
    END IF;
END
$$;
COMMENT ON FUNCTION popsell._refuse_restricted_confirmation(bigint) IS
    'Internal: PS120 when the contact''s processing is restricted (GDPR art. 18); confirm_email calls it.';

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
    PERFORM popsell._refuse_restricted_confirmation(c.id);
    DELETE FROM popsell.contact_email_tokens t WHERE t.contact_id = c.id;
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
    'The contact confirms the email address, as vouched by the calling application: the pending consent becomes effective (and lifts a global opt-out for this row only); the pending token is used up. PS100 when not pending, PS120 while restricted (art. 18); prefer confirm_email(contact_id, token), which binds the link to the address it was sent to.';

CREATE FUNCTION popsell.confirm_email(contact_id bigint, token text)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'confirm_email'
AS $$
DECLARE
    c popsell.contacts := popsell._contact_for_caller(confirm_email.contact_id);
BEGIN
    IF confirm_email.token IS NULL OR octet_length(confirm_email.token) > 256 THEN
        RAISE EXCEPTION 'a confirmation token is a string of at most 256 bytes'
            USING ERRCODE = 'PS106', HINT = 'Pass the token of the confirmation link as received.';
    END IF;
    IF NOT popsell.is_pending_confirmation(c.source, c.email_confirmed_at) THEN
        RAISE EXCEPTION 'contact % is not pending email confirmation', c.id
            USING ERRCODE = 'PS100',
                  DETAIL = format('Source %s, email confirmed at %s.', c.source, coalesce(c.email_confirmed_at::text, 'never')),
                  HINT = 'Only contacts collected by a blog form or a store purchase confirm their email, once.';
    END IF;
    PERFORM popsell._refuse_restricted_confirmation(c.id);
    -- (v2) the token confirms the address it was sent to: an address
    -- change replaces it, a confirmation uses it up.
    IF NOT EXISTS (SELECT 1 FROM popsell.contact_email_tokens t
                    WHERE t.contact_id = c.id
                      AND t.token_hash = sha256(convert_to(btrim(confirm_email.token), 'UTF8'))) THEN
        RAISE EXCEPTION 'contact % has no pending confirmation with this token', c.id
            USING ERRCODE = 'PS100',
                  DETAIL = 'A token confirms the address it was sent to; a changed address got a new one.',
                  HINT = 'Use the link of the latest confirmation email.';
    END IF;
    PERFORM popsell.confirm_email(c.id);
END
$$;
COMMENT ON FUNCTION popsell.confirm_email(bigint, text) IS
    'The contact confirms the email address with the token of the confirmation email (its payload''s token): the pending consent becomes effective (and lifts a global opt-out for this row only). The token is bound to the address it was sent to and works once (PS100 otherwise; PS120 while restricted, art. 18; PS106 NULL or over 256 bytes).';

CREATE FUNCTION popsell.opt_out(contact_id bigint, global boolean DEFAULT false)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'contact'
AS $$
DECLARE
    c popsell.contacts := popsell._contact_for_caller(opt_out.contact_id);
BEGIN
    IF opt_out.global IS NULL THEN
        RAISE EXCEPTION 'global must not be NULL'
            USING ERRCODE = 'PS106', HINT = 'Pass true for an opt-out of every ambassador, false (the default) for this one.';
    END IF;
    IF opt_out.global AND c.email IS NOT NULL THEN
        PERFORM popsell._blacklist_add(c.email, 'global_optout');
    ELSIF opt_out.global THEN
        UPDATE popsell.contacts SET ambassador_optin = 'global_optout'
         WHERE id = c.id AND ambassador_optin <> 'global_optout';
    ELSE
        UPDATE popsell.contacts SET ambassador_optin = 'optout_email'
         WHERE id = c.id AND ambassador_optin NOT IN ('optout_email', 'global_optout');
    END IF;
END
$$;
COMMENT ON FUNCTION popsell.opt_out(bigint, boolean) IS
    'The contact opts out of its ambassador''s emails (remembered for the email: invitation_refused), or with global => true out of every ambassador of the brand (blacklisted by hash). App only; PS200 unknown contact, PS106 NULL global.';

CREATE FUNCTION popsell.withdraw_consent(contact_id bigint, brand boolean DEFAULT true,
                                         partners boolean DEFAULT true)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'contact'
AS $$
DECLARE
    c popsell.contacts := popsell._contact_for_caller(withdraw_consent.contact_id);
BEGIN
    IF withdraw_consent.brand IS NULL OR withdraw_consent.partners IS NULL THEN
        RAISE EXCEPTION 'brand and partners must not be NULL'
            USING ERRCODE = 'PS106', HINT = 'Pass true for each opt-in the person withdraws, false to keep it.';
    END IF;
    UPDATE popsell.contacts x
       SET brand_optin = CASE WHEN withdraw_consent.brand
                               AND x.brand_optin <> 'no_optin'
                              THEN 'no_optin' ELSE x.brand_optin END,
           partners_optin = CASE WHEN withdraw_consent.partners THEN false ELSE x.partners_optin END
     WHERE x.id = c.id
       AND (withdraw_consent.brand AND x.brand_optin <> 'no_optin'
            OR withdraw_consent.partners AND x.partners_optin);
    -- partners are told by popsell_60_partners_ended
END
$$;
COMMENT ON FUNCTION popsell.withdraw_consent(bigint, boolean, boolean) IS
    'The person withdraws the brand opt-in (brand_optin no_optin) and/or the partners opt-in (partners_optin false, partners told by a partner_optout outbox row): the unsubscribe link of a brand or partner email. App, and brand staff recording a withdrawal the person asked for on a contact they see; PS200 unknown contact (or one the brand does not see), PS106 NULL argument.';

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
         WHERE popsell_internal._lookup_key(contacts.email) = popsell_internal._lookup_key(e) AND email_status IN ('ok', 'unverified');
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
    IF channel IS NULL THEN
        RAISE EXCEPTION 'channel must not be NULL'
            USING ERRCODE = 'PS106', HINT = 'Omit it for ''email'', or name the channel.';
    END IF;
    IF record_interaction.publication_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM popsell.publications p WHERE p.id = record_interaction.publication_id) THEN
        RAISE EXCEPTION 'publication % does not exist', record_interaction.publication_id
            USING ERRCODE = 'PS200', HINT = 'Pass the id of an existing publication, or NULL.';
    END IF;
    INSERT INTO popsell.interactions (contact_id, publication_id, channel, kind, occurred_at)
    VALUES (c.id, publication_id, coalesce(channel, 'email'), kind, t)
    RETURNING id INTO new_id;
    -- last_activity_at moves by the activity trigger (popsell_61_activity),
    -- which takes a future time as now
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
    IF currency IS NULL OR channel IS NULL THEN
        RAISE EXCEPTION 'currency and channel must not be NULL'
            USING ERRCODE = 'PS106', HINT = 'Omit them for EUR and online.';
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
    -- last_activity_at moves by the activity trigger (popsell_61_activity),
    -- which takes a future time as now
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

-- -------------------------------------------------------------------
-- (v2) The outbox: rows are immutable once queued, and each kind has
-- one origin (SPEC section 3, C4).  Runs before the sending guard.
-- -------------------------------------------------------------------
CREATE FUNCTION popsell.outbox_rules() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- popsell's own code runs as popsell_owner (SECURITY DEFINER)
    own boolean := pg_has_role(current_user, 'popsell_owner', 'USAGE');
BEGIN
    -- a restore (superuser, row security off) loads rows as they were
    IF current_setting('row_security') = 'off'
       AND (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = session_user) THEN
        RETURN NEW;
    END IF;
    -- (v2) times the logs rule ages rows by: never infinite; a future one
    -- from outside popsell's own code is taken as now
    IF NOT isfinite(NEW.created_at) OR NOT isfinite(NEW.sent_at) THEN
        RAISE EXCEPTION 'outbox created_at and sent_at cannot be infinite'
            USING ERRCODE = 'PS106',
                  DETAIL = 'The logs rule ages outbox rows by these times: one that never comes keeps the row (and its payload) forever.',
                  HINT = 'Set sent_at = now() when the message is sent.';
    END IF;
    IF NOT own THEN
        IF NEW.sent_at > now() THEN
            NEW.sent_at := now();
        END IF;
        IF TG_OP = 'INSERT' AND NEW.created_at > now() THEN
            NEW.created_at := now();
        END IF;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF NOT own AND (NEW.kind IS DISTINCT FROM OLD.kind
                        OR NEW.contact_id IS DISTINCT FROM OLD.contact_id
                        OR NEW.ambassador_id IS DISTINCT FROM OLD.ambassador_id
                        OR NEW.payload IS DISTINCT FROM OLD.payload
                        OR NEW.publication_id IS DISTINCT FROM OLD.publication_id
                        OR NEW.id IS DISTINCT FROM OLD.id
                        OR NEW.created_at IS DISTINCT FROM OLD.created_at) THEN
            RAISE EXCEPTION 'outbox row % cannot be changed once queued', OLD.id
                USING ERRCODE = 'PS105',
                      DETAIL = 'id, kind, contact_id, ambassador_id, publication_id, payload and created_at never change; only sent_at does, once.',
                      HINT = 'Queue a new message instead.';
        END IF;
        -- a sent message stays sent: unsetting sent_at would deliver it again
        IF NOT own AND OLD.sent_at IS NOT NULL AND NEW.sent_at IS DISTINCT FROM OLD.sent_at THEN
            RAISE EXCEPTION 'outbox row % cannot change sent_at from % to %: it was sent', OLD.id, OLD.sent_at,
                            coalesce(NEW.sent_at::text, 'NULL')
                USING ERRCODE = 'PS105',
                      DETAIL = 'sent_at is set once, from NULL to the delivery time.',
                      HINT = 'Queue a new message to send it again.';
        END IF;
        RETURN NEW;
    END IF;
    -- (v2) mail to a contact names it, so that its erasure finds the row
    -- (cancels it, scrubs its payload)
    IF NEW.kind::text IN ('invitation', 'invitation_reminder', 'publication') AND NEW.contact_id IS NULL
       OR NEW.kind::text = 'email_confirmation' AND NEW.contact_id IS NULL AND NEW.ambassador_id IS NULL THEN
        RAISE EXCEPTION 'cannot queue % without the contact it is addressed to', NEW.kind
            USING ERRCODE = 'PS106',
                  DETAIL = 'An erasure finds the mail queued for a person by contact_id (ambassador_id for an ambassador''s email confirmation).',
                  HINT = 'Set contact_id (or ambassador_id for an ambassador''s email_confirmation).';
    END IF;
    IF NEW.kind::text = 'invitation' AND popsell.current_path() <> 'send_invitation' THEN
        RAISE EXCEPTION 'cannot queue invitation for contact %: invitations come only from popsell.send_invitation()', NEW.contact_id
            USING ERRCODE = 'PS120', HINT = 'Call popsell.send_invitation(contact_id).';
    END IF;
    IF NEW.kind::text = 'invitation_reminder' THEN
        IF popsell.current_path() <> 'system' THEN
            RAISE EXCEPTION 'cannot queue invitation_reminder for contact %: reminders are queued by popsell.run_maintenance only', NEW.contact_id
                USING ERRCODE = 'PS120', HINT = 'Let the invitation_reminder rule queue it.';
        END IF;
        IF EXISTS (SELECT 1 FROM popsell.outbox o
                    WHERE o.contact_id = NEW.contact_id AND o.kind::text = 'invitation_reminder') THEN
            RAISE EXCEPTION 'cannot queue invitation_reminder for contact %: one reminder per contact', NEW.contact_id
                USING ERRCODE = 'PS120', HINT = 'A contact is reminded once.';
        END IF;
    END IF;
    -- (kinds compared as text: a label added by the 2.0 upgrade may not be
    -- used as a value in the transaction that added it)
    IF NEW.kind::text IN ('partner_erasure', 'partner_optout', 'delete_file') AND NOT own THEN
        RAISE EXCEPTION 'cannot queue %: it comes only from erasure, objection, withdrawal and file changes', NEW.kind
            USING ERRCODE = 'PS120',
                  HINT = 'Erase, object or withdraw through popsell''s functions; they queue it.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION popsell.outbox_rules() IS
    'Trigger: outbox rows are immutable once queued, sent_at is set once from NULL (PS105); created_at and sent_at never infinite (PS106), a future one from outside popsell''s code taken as now; mail to a contact names it (PS106); invitations only from send_invitation, reminders only from the system (once per contact), partner_erasure, partner_optout and delete_file only from popsell''s own code (PS120).';

CREATE TRIGGER popsell_40_outbox_rules
    BEFORE INSERT OR UPDATE ON popsell.outbox
    FOR EACH ROW EXECUTE FUNCTION popsell.outbox_rules();

-- (v2) Consent belongs to an address: when a contact's email changes, the
-- mail queued for the old address is cancelled; a pending contact gets a
-- confirmation at its new address.  (The contacts trigger resets the
-- consent columns.)
CREATE FUNCTION popsell.contacts_email_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'system'
AS $$
BEGIN
    IF popsell._restoring() THEN
        RETURN NULL;
    END IF;
    DELETE FROM popsell.outbox o
     WHERE o.contact_id = NEW.id AND o.sent_at IS NULL
       AND o.kind IN ('invitation', 'invitation_reminder', 'publication', 'email_confirmation');
    -- a token sent to the old address confirms nothing any more
    DELETE FROM popsell.contact_email_tokens t WHERE t.contact_id = NEW.id;
    IF NEW.email IS NOT NULL AND NEW.email_confirmed_at IS NULL
       AND NEW.source IN ('blog', 'blog_internal_form', 'store_purchase')
       AND NEW.email_status = 'unverified' THEN
        PERFORM popsell._issue_contact_token(NEW.id);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION popsell.contacts_email_changed() IS
    'Trigger: a contact''s new address cancels the unsent mail to the old one and the old address''s confirmation token and, for a pending contact, queues a new confirmation with a new token.';

-- (v2, F9) The brand does not change a contact's email: the consent state
-- the new row shows (global_optout, invitation_declined, a bounce) would
-- tell it whether an address of its choosing is on the blacklist.  Vendor
-- support, the ambassador and the person rectify an address.
CREATE FUNCTION popsell.contacts_brand_email() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF popsell.current_path() = 'staff'
       AND pg_has_role(current_user, 'popsell_brand', 'USAGE')
       AND NOT pg_has_role(current_user, 'popsell_account_team', 'USAGE')
       AND NOT pg_has_role(current_user, 'popsell_technical', 'USAGE') THEN
        RAISE EXCEPTION 'contact % cannot change its email through the brand', OLD.id
            USING ERRCODE = 'PS105',
                  DETAIL = 'The state a new address takes would tell the brand whether that address is on the blacklist.',
                  HINT = 'Ask the ambassador or vendor support (popsell_account_team) to rectify the address.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION popsell.contacts_brand_email() IS
    'Trigger: the brand (popsell_brand without vendor staff rights) may not change a contact''s email, so its writes are no oracle for the blacklist (PS105).';

CREATE TRIGGER popsell_10_brand_email
    BEFORE UPDATE OF email ON popsell.contacts
    FOR EACH ROW WHEN (OLD.email IS DISTINCT FROM NEW.email)
    EXECUTE FUNCTION popsell.contacts_brand_email();

CREATE TRIGGER popsell_60_email_changed
    AFTER UPDATE OF email ON popsell.contacts
    FOR EACH ROW WHEN (OLD.email IS DISTINCT FROM NEW.email)
    EXECUTE FUNCTION popsell.contacts_email_changed();

-- (v2) Art. 18 and the confirmation token: a restricted contact is sent
-- nothing and confirms nothing, so its token goes (the outbox recheck
-- cancels the unsent mail); lifting the restriction of a contact still
-- pending sends it a confirmation with a new token.
CREATE FUNCTION popsell.contacts_restriction_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'system'
AS $$
BEGIN
    IF popsell._restoring() THEN
        RETURN NULL;
    END IF;
    IF NEW.restricted THEN
        DELETE FROM popsell.contact_email_tokens t WHERE t.contact_id = NEW.id;
        DELETE FROM popsell.outbox o
         WHERE o.contact_id = NEW.id AND o.sent_at IS NULL AND o.kind = 'email_confirmation';
    ELSE
        PERFORM popsell._issue_contact_token(NEW.id);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION popsell.contacts_restriction_changed() IS
    'Trigger: restricting a contact (art. 18) removes its confirmation token and unsent confirmation; lifting the restriction of a contact still pending confirmation queues a new confirmation with a new token.';

CREATE TRIGGER popsell_60_restriction_changed
    AFTER UPDATE OF restricted ON popsell.contacts
    FOR EACH ROW WHEN (OLD.restricted IS DISTINCT FROM NEW.restricted)
    EXECUTE FUNCTION popsell.contacts_restriction_changed();

-- (v2) Partners are told whenever a partners opt-in ends, whatever the
-- path (withdrawal, objection, staff UPDATE, an email change): once per
-- end, from this trigger only.
CREATE FUNCTION popsell.contacts_partners_ended() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF popsell._restoring() THEN
        RETURN NULL;
    END IF;
    INSERT INTO popsell.outbox (kind, ambassador_id, contact_id, payload)
    VALUES ('partner_optout', NEW.ambassador_id, NEW.id, '{}');
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION popsell.contacts_partners_ended() IS
    'Trigger: a contact''s partners opt-in ended (true to false, by any path): the partners are told by a partner_optout outbox row.';

CREATE TRIGGER popsell_60_partners_ended
    AFTER UPDATE ON popsell.contacts
    FOR EACH ROW WHEN (OLD.partners_optin AND NOT NEW.partners_optin)
    EXECUTE FUNCTION popsell.contacts_partners_ended();

-- (v2) Mail queued for an ambassador who starts leaving, and not yet sent,
-- is cancelled then (file deletions and partner notices stay).
CREATE FUNCTION popsell.ambassadors_leaving() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'system'
AS $$
BEGIN
    IF popsell._restoring() THEN
        RETURN NULL;
    END IF;
    -- SPEC C4 (v2): every message queued for it and not yet sent is
    -- cancelled, whatever its kind, but the erasure work the application
    -- must still carry out (files to delete, partners to tell).  The one
    -- place this rule lives: every way of starting to leave sets the
    -- status.  (Kinds compared as text: a label an upgrade adds is not
    -- usable as a value in its own transaction.)
    DELETE FROM popsell.outbox o
     WHERE o.ambassador_id = NEW.id AND o.sent_at IS NULL
       AND o.kind::text NOT IN ('delete_file', 'partner_erasure', 'partner_optout');
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION popsell.ambassadors_leaving() IS
    'Trigger: an ambassador who starts leaving gets no more mail sent for it: every unsent message queued for it is cancelled (delete_file, partner_erasure and partner_optout stay).';

CREATE TRIGGER popsell_60_leaving
    AFTER UPDATE OF status ON popsell.ambassadors
    FOR EACH ROW WHEN (NEW.status = 'leaving' AND OLD.status IS DISTINCT FROM 'leaving')
    EXECUTE FUNCTION popsell.ambassadors_leaving();
