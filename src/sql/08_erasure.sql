-- ===================================================================
-- Erasure (SPEC section 6, S6).  A plain DELETE on popsell.contacts or
-- popsell.ambassadors is the erasure: the row goes, a tombstone keeps the
-- keyed hashes and the few plain values section 6 lists, and the rows that
-- pointed at the person are re-pointed to the tombstone or deleted.
--
-- Contacts are erased set-based by a statement-level AFTER DELETE trigger
-- reading the transition table.  The referential actions of the tables
-- pointing at a contact (interactions, sales, outbox) are done by that
-- trigger, so their foreign keys to popsell.contacts are replaced below by
-- a set-based existence check on INSERT: an ON DELETE SET NULL action would
-- run (row by row) before the statement trigger and lose which contact a
-- row belonged to.
-- ===================================================================

-- Why the current transaction erases, and whether it keeps a tombstone.
-- Only popsell's own code (popsell_owner) writes here, and every row is
-- removed again before that code returns, so no other transaction ever
-- sees one: an ambassador cannot forge "no tombstone" (tombstones are the
-- brand's memory of opt-outs).  The newest row wins (nested erasures).
-- A row with ledger = true lets the erasure code, and only it, re-point
-- or delete popsell.consent_events rows.
CREATE TABLE popsell.erasure_context (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reason    text NOT NULL,
    tombstone boolean NOT NULL,
    ledger    boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE popsell.erasure_context IS
    'Internal: the reason of the erasure under way in this transaction (always empty once committed). Owner only.';

CREATE FUNCTION popsell._erasure_push(p_reason text, p_tombstone boolean, p_ledger boolean DEFAULT false)
    RETURNS bigint
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    INSERT INTO popsell.erasure_context (reason, tombstone, ledger)
    VALUES (p_reason, p_tombstone, p_ledger)
    RETURNING id;
END;
COMMENT ON FUNCTION popsell._erasure_push(text, boolean, boolean) IS
    'Internal (owner only): the following DELETEs of this transaction erase for REASON, with or without tombstones; undo with _erasure_pop.';

CREATE FUNCTION popsell._erasure_pop(p_id bigint)
    RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    DELETE FROM popsell.erasure_context WHERE id OPERATOR(pg_catalog.>=) p_id;
END;
COMMENT ON FUNCTION popsell._erasure_pop(bigint) IS
    'Internal (owner only): end the erasure context opened by _erasure_push.';

-- The time erasure stamps carry: run_maintenance's as-of time, else now().
CREATE FUNCTION popsell._erasure_now()
    RETURNS timestamptz
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN coalesce(popsell._as_of(),
                    pg_catalog.now());
COMMENT ON FUNCTION popsell._erasure_now() IS
    'Internal: popsell.as_of when run_maintenance sets it, else now().';

-- -------------------------------------------------------------------
-- Contacts
-- -------------------------------------------------------------------
CREATE FUNCTION popsell.contacts_erase() RETURNS trigger
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

CREATE TRIGGER popsell_60_erase
    AFTER DELETE ON popsell.contacts
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.contacts_erase();

-- interactions, sales and outbox have no foreign key to contacts (the
-- erasure trigger does the referential actions); this is the existence
-- check on INSERT a foreign key would do: set-based,
-- locking the contacts (FOR KEY SHARE, as a foreign key does) so a
-- concurrent erasure either waits or is seen.
CREATE FUNCTION popsell.contact_ref_check() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    wanted bigint;
    found bigint;
    missing bigint;
BEGIN
    IF TG_LEVEL <> 'STATEMENT' OR TG_WHEN <> 'AFTER' OR TG_OP <> 'INSERT' OR TG_TABLE_SCHEMA <> 'popsell'
       OR TG_TABLE_NAME NOT IN ('interactions', 'sales', 'outbox') THEN
        RAISE EXCEPTION 'popsell.contact_ref_check() handles AFTER INSERT statements on interactions, sales and outbox only'
            USING ERRCODE = 'PS900';
    END IF;
    -- popsell._restoring() looks at the current user, popsell_owner here
    -- (SECURITY DEFINER): a restore is a superuser session with
    -- row_security off (pg_restore, pg_dump | psql).
    IF popsell._restoring()
       OR (pg_catalog.current_setting('row_security') OPERATOR(pg_catalog.=) 'off'
           AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                        WHERE r.rolname OPERATOR(pg_catalog.=) SESSION_USER AND r.rolsuper)) THEN
        RETURN NULL;
    END IF;
    SELECT count(DISTINCT n.contact_id) INTO wanted FROM added n WHERE n.contact_id IS NOT NULL;
    IF wanted = 0 THEN
        RETURN NULL;
    END IF;
    SELECT count(*) INTO found
      FROM (SELECT c.id FROM popsell.contacts c
             WHERE c.id IN (SELECT n.contact_id FROM added n)
               FOR KEY SHARE OF c) x;
    IF found < wanted THEN
        SELECT min(n.contact_id) INTO missing FROM added n
         WHERE n.contact_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM popsell.contacts c WHERE c.id = n.contact_id);
        RAISE EXCEPTION 'insert into popsell.% refers to contact %, which does not exist', TG_TABLE_NAME, missing
            USING ERRCODE = '23503',
                  HINT = 'The contact may have been erased; refer to existing contacts only.';
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION popsell.contact_ref_check() IS
    'Trigger: rows inserted into interactions, sales and outbox must refer to an existing contact (the foreign key''s check, set-based).';

CREATE FUNCTION popsell.contact_ref_check_row() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_LEVEL <> 'ROW' OR TG_OP <> 'UPDATE' OR TG_TABLE_SCHEMA <> 'popsell'
       OR TG_TABLE_NAME NOT IN ('interactions', 'sales', 'outbox') THEN
        RAISE EXCEPTION 'popsell.contact_ref_check_row() handles UPDATE rows of interactions, sales and outbox only'
            USING ERRCODE = 'PS900';
    END IF;
    IF popsell._restoring()   -- as in contact_ref_check: the session, not popsell_owner, restores
       OR (pg_catalog.current_setting('row_security') OPERATOR(pg_catalog.=) 'off'
           AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                        WHERE r.rolname OPERATOR(pg_catalog.=) SESSION_USER AND r.rolsuper)) THEN
        RETURN NEW;
    END IF;
    PERFORM 1 FROM popsell.contacts c WHERE c.id = NEW.contact_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'update of popsell.% refers to contact %, which does not exist', TG_TABLE_NAME, NEW.contact_id
            USING ERRCODE = '23503',
                  HINT = 'Refer to existing contacts only.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION popsell.contact_ref_check_row() IS
    'Trigger: an UPDATE moving an interaction, sale or outbox row to another contact must name an existing contact.';

CREATE TRIGGER popsell_60_contact_ref
    AFTER INSERT ON popsell.interactions
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.contact_ref_check();
CREATE TRIGGER popsell_60_contact_ref
    AFTER INSERT ON popsell.sales
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.contact_ref_check();
CREATE TRIGGER popsell_60_contact_ref
    AFTER INSERT ON popsell.outbox
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.contact_ref_check();
CREATE TRIGGER popsell_60_contact_ref_update
    BEFORE UPDATE OF contact_id ON popsell.interactions
    FOR EACH ROW WHEN (NEW.contact_id IS NOT NULL AND NEW.contact_id IS DISTINCT FROM OLD.contact_id)
    EXECUTE FUNCTION popsell.contact_ref_check_row();
CREATE TRIGGER popsell_60_contact_ref_update
    BEFORE UPDATE OF contact_id ON popsell.sales
    FOR EACH ROW WHEN (NEW.contact_id IS NOT NULL AND NEW.contact_id IS DISTINCT FROM OLD.contact_id)
    EXECUTE FUNCTION popsell.contact_ref_check_row();
CREATE TRIGGER popsell_60_contact_ref_update
    BEFORE UPDATE OF contact_id ON popsell.outbox
    FOR EACH ROW WHEN (NEW.contact_id IS NOT NULL AND NEW.contact_id IS DISTINCT FROM OLD.contact_id)
    EXECUTE FUNCTION popsell.contact_ref_check_row();

-- -------------------------------------------------------------------
-- Ambassadors
-- -------------------------------------------------------------------
-- Before the row goes (and before the foreign keys' actions run): its
-- contacts that are not brand-visible are erased (brand-visible ones stay,
-- owned by the brand: ON DELETE SET NULL), its UGC (but contest UGC until
-- the contest's reuse end) is deleted and its files queued, its unsent
-- messages cancelled.  Publications, reactions, grants, gamification and
-- activity log go by ON DELETE CASCADE; sales stay (ambassador_id NULL).
CREATE FUNCTION popsell.ambassadors_erase_row() RETURNS trigger
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

CREATE FUNCTION popsell.ambassadors_erase() RETURNS trigger
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

CREATE TRIGGER popsell_60_erase_row
    BEFORE DELETE ON popsell.ambassadors
    FOR EACH ROW EXECUTE FUNCTION popsell.ambassadors_erase_row();
CREATE TRIGGER popsell_60_erase
    AFTER DELETE ON popsell.ambassadors
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.ambassadors_erase();

-- -------------------------------------------------------------------
-- The consent ledger is append-only; TRUNCATE of personal data is the
-- owner's alone (S6).  These guards run as the caller: current_user is
-- the role executing the statement (popsell_owner inside popsell's own
-- SECURITY DEFINER code).
-- -------------------------------------------------------------------
CREATE FUNCTION popsell.ledger_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_LEVEL <> 'STATEMENT' OR TG_WHEN <> 'BEFORE' OR TG_TABLE_SCHEMA <> 'popsell'
       OR TG_TABLE_NAME <> 'consent_events' THEN
        RAISE EXCEPTION 'popsell.ledger_guard() handles BEFORE statements on popsell.consent_events only'
            USING ERRCODE = 'PS900';
    END IF;
    IF current_user = 'popsell_owner' THEN
        IF TG_OP IN ('UPDATE', 'DELETE')
           AND EXISTS (SELECT 1 FROM popsell.erasure_context e WHERE e.ledger) THEN
            RETURN NULL;   -- the erasure code re-points or deletes an erased contact's rows
        END IF;
    ELSIF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
        IF popsell._restoring() THEN
            RETURN NULL;
        END IF;
    END IF;
    RAISE EXCEPTION '% on popsell.consent_events is refused: the consent ledger is append-only', TG_OP
        USING ERRCODE = 'PS400',
              DETAIL = 'Only the erasure of a contact re-points or removes its ledger rows.',
              HINT = 'Erase the contact with DELETE FROM popsell.contacts (or popsell.erase_subject).';
END
$$;
COMMENT ON FUNCTION popsell.ledger_guard() IS
    'Trigger: refuses UPDATE, DELETE and TRUNCATE on popsell.consent_events except by the erasure code.';

CREATE TRIGGER popsell_10_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON popsell.consent_events
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.ledger_guard();

CREATE FUNCTION popsell.truncate_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_LEVEL <> 'STATEMENT' OR TG_OP <> 'TRUNCATE' OR TG_TABLE_SCHEMA <> 'popsell' THEN
        RAISE EXCEPTION 'popsell.truncate_guard() handles TRUNCATE of popsell tables only'
            USING ERRCODE = 'PS900';
    END IF;
    IF current_user = 'popsell_owner' THEN
        RETURN NULL;
    END IF;
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
        IF popsell._restoring() THEN
            RETURN NULL;
        END IF;
    END IF;
    RAISE EXCEPTION 'TRUNCATE of popsell.% is refused: it holds personal data', TG_TABLE_NAME
        USING ERRCODE = 'PS400',
              DETAIL = 'TRUNCATE would skip the erasure (tombstones, ledger) and is reserved to popsell_owner.',
              HINT = 'DELETE the rows (the erasure runs), or SET ROLE popsell_owner if you really mean to drop them all.';
END
$$;
COMMENT ON FUNCTION popsell.truncate_guard() IS
    'Trigger: refuses TRUNCATE of a personal-data table to every role but popsell_owner.';

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['ambassadors', 'social_grants', 'registration_whitelist', 'contacts',
                             'blacklist', 'publications', 'ugc', 'community_reactions',
                             'gamification', 'interactions', 'sales', 'activity_log', 'outbox',
                             'contact_tombstones', 'ambassador_tombstones', 'invitation_records']
    LOOP
        EXECUTE pg_catalog.format(
            'CREATE TRIGGER popsell_10_truncate_guard BEFORE TRUNCATE ON popsell.%I '
            'FOR EACH STATEMENT EXECUTE FUNCTION popsell.truncate_guard()', t);
    END LOOP;
END
$$;
