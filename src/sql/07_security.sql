-- ===================================================================
-- Security (SPEC section 2, S5): who sees what.  Grants (least privilege,
-- table and column level), one row level security policy per SPEC role
-- and command on every table, and the views of each reading path.
--
-- Row security is enabled and forced on every table by the ownership section at the end,
-- which also adds the popsell_owner_all policy.  Policies compare with the
-- caller through (SELECT popsell.current_ambassador_id()): a STABLE
-- function in an initplan, evaluated once per query, so the row predicate
-- left is plain column comparisons an index can serve.  Brand visibility
-- is one call of the C function popsell.brand_sees(...), spelled the same
-- in the policies and the views; the predicate of contacts_brand_email_idx
-- is the same C function under a name only the owner can write
-- (popsell_internal._brand_sees), so only popsell.brand_contacts_by_email
-- is planned on that partial index.
--
-- Views: RLS-filtered views are security_invoker; a view that masks a
-- column its reader may not read in the table (my_contacts, community,
-- the bi_* views) runs with its owner's rights, filters by the caller
-- itself and is a security_barrier.
-- ===================================================================

-- The trusted application switches to popsell_ambassador with SET LOCAL
-- ROLE after setting popsell.ambassador_id.  popsell_app is NOINHERIT so
-- that its login members do not silently carry the ambassador policies
-- and column grants: they act as an ambassador only after SET ROLE.
ALTER ROLE popsell_app NOINHERIT;
GRANT popsell_ambassador TO popsell_app;

-- The identity has no input and raises no data-dependent error.
ALTER FUNCTION popsell.current_ambassador_id() LEAKPROOF;

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
-- popsell._sees_contact reads popsell.contacts under the caller's policies,
-- which depend on the identity of the transaction (parallel restricted):
-- a parallel worker would see nothing.
CREATE FUNCTION popsell._sees_contact(contact_id bigint) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL RESTRICTED COST 0.0001
    SET search_path = pg_catalog, pg_temp
    RETURN EXISTS (SELECT 1 FROM popsell.contacts c WHERE c.id OPERATOR(pg_catalog.=) _sees_contact.contact_id);
COMMENT ON FUNCTION popsell._sees_contact(bigint) IS
    'Policy helper: whether the caller sees this contact under its own row security (false for NULL). Every role with a policy using it.';
-- The fast form for an ambassador (a few hundred contacts at most): the
-- ids of the contacts the caller sees, read once per query under its own
-- row security (initplans, whatever rows the query keeps), are passed to
-- popsell._id_in, a C lookup costed below any operator, so it runs first
-- on every row and reads nothing per row: the caller's conditions never
-- decide what popsell reads (what a correlated EXISTS did).  The same ids
-- as "contact_id = ANY (...)" let the planner fetch only those contacts'
-- rows through the contact_id index (a policy's own condition may be an
-- index condition; it fetches no hidden row).  The brand's policies keep
-- _sees_contact: the brand sees too many contacts to list per query.
CREATE FUNCTION popsell._id_in(id bigint, ids bigint[]) RETURNS boolean
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 0.0001
    AS 'MODULE_PATHNAME', 'popsell_id_in';
COMMENT ON FUNCTION popsell._id_in(bigint, bigint[]) IS
    'Policy helper: whether id is in ids, as id = ANY (ids) but false for NULL (an array passed again with the same content is sorted once and searched by bisection). Every role with a policy using it.';
CREATE FUNCTION popsell._app_sees_contact(contact_id bigint) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE COST 0.0001
    SET search_path = pg_catalog, pg_temp
    RETURN EXISTS (SELECT 1 FROM popsell.outbox o
                    WHERE o.contact_id OPERATOR(pg_catalog.=) _app_sees_contact.contact_id
                      AND o.sent_at IS NULL);
COMMENT ON FUNCTION popsell._app_sees_contact(bigint) IS
    'Policy helper: whether a trusted application has an unsent outbox message for this contact. popsell_app.';

GRANT USAGE ON SCHEMA popsell TO popsell_ambassador, popsell_brand, popsell_brand_bi,
    popsell_account_team, popsell_technical, popsell_app;

-- Harmless functions every role may call (identity, normalization, rules).
GRANT EXECUTE ON FUNCTION popsell.current_ambassador_id(), popsell.normalize_email(text),
    popsell.transition_rules(),
    popsell.transition_allowed(text, text, text, text, popsell.contact_source),
    popsell.initial_optins(popsell.contact_source, boolean, boolean, boolean),
    popsell.current_path(), popsell._caller_in(text), popsell._sees_contact(bigint),
    popsell._id_in(bigint, bigint[])
    TO popsell_ambassador, popsell_brand, popsell_brand_bi, popsell_account_team,
       popsell_technical, popsell_app;
GRANT EXECUTE ON FUNCTION popsell._app_sees_contact(bigint) TO popsell_app;
-- Index maintenance evaluates the lookup keys with the writer's rights,
-- which needs EXECUTE but not USAGE on schema popsell_internal: these
-- roles get no USAGE there, so none of them can name the functions.
GRANT EXECUTE ON FUNCTION popsell_internal._lookup_key(text), popsell_internal._brand_lookup_key(text),
    popsell_internal._brand_sees(boolean, popsell.contact_source, timestamptz, popsell.brand_optin, boolean)
    TO popsell_ambassador, popsell_brand, popsell_brand_bi, popsell_account_team,
       popsell_technical, popsell_app;

-- Event functions (SPEC section 5).  Paths where the contact acts (accept,
-- decline, confirm, opt out, collect) belong to trusted applications only:
-- an ambassador calling them would forge a consent.
-- Only the ambassador's own path invites (v2): not the brand.
GRANT EXECUTE ON FUNCTION popsell.import_contacts(bigint, jsonb),
    popsell.import_contacts_detail(bigint, jsonb),
    popsell.send_invitation(bigint), popsell.send_invitations(bigint[]),
    popsell.release_soft_bounce(bigint)
    TO popsell_ambassador, popsell_app, popsell_account_team, popsell_technical;
GRANT EXECUTE ON FUNCTION
    popsell.collect_contact(bigint, popsell.contact_source, jsonb, boolean, boolean, boolean),
    popsell.accept_invitation(bigint), popsell.decline_invitation(bigint),
    popsell.confirm_email(bigint), popsell.confirm_email(bigint, text), popsell.opt_out(bigint, boolean),
    popsell.withdraw_consent(bigint, boolean, boolean),
    popsell.email_callback(text, popsell.email_status)
    TO popsell_app;
-- Staff record a withdrawal the person asked for on a contact they see.
GRANT EXECUTE ON FUNCTION popsell.withdraw_consent(bigint, boolean, boolean) TO popsell_brand;
GRANT EXECUTE ON FUNCTION
    popsell.record_interaction(bigint, popsell.interaction_kind, bigint, text, timestamptz),
    popsell.record_sale(bigint, numeric, text, jsonb, popsell.sale_channel, bigint, timestamptz)
    TO popsell_app, popsell_account_team, popsell_technical;
GRANT EXECUTE ON FUNCTION popsell.rotate_hash_key(boolean) TO popsell_technical;

-- -------------------------------------------------------------------
-- Vendor staff (account team, technical): all data of the brand, but
-- no secrets (hash_keys), no TRUNCATE, and the append-only or
-- function-written tables read-only.
-- -------------------------------------------------------------------
-- The tables with lookup-key indexes (popsell.ambassadors,
-- popsell.contacts) are read through column grants only: with table-level
-- SELECT, a role could copy the key index expressions with CREATE TABLE
-- ... (LIKE ... INCLUDING INDEXES), which checks the table-level privilege
-- only, and read the key of any value in its copy's unique violations.
-- The roles reading every column of them are listed here;
-- popsell._finalize_extension() grants them SELECT on every column, at
-- install and at every upgrade (so a column an upgrade adds too), and
-- turns any other table-level SELECT on these tables into column grants.
CREATE FUNCTION popsell._column_readers() RETURNS TABLE (rel text, reader text)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    VALUES ('popsell.contacts', 'popsell_brand'), ('popsell.contacts', 'popsell_app'),
           ('popsell.contacts', 'popsell_account_team'), ('popsell.contacts', 'popsell_technical'),
           ('popsell.ambassadors', 'popsell_account_team'), ('popsell.ambassadors', 'popsell_technical')
$$;
COMMENT ON FUNCTION popsell._column_readers() IS
    'Install and upgrade step: the roles reading every column of a table with lookup-key indexes, which popsell._finalize_extension() grants SELECT on each column (never table-level SELECT, which would let them copy the key index expressions with LIKE ... INCLUDING INDEXES). Owner only.';
GRANT INSERT, UPDATE, DELETE ON popsell.ambassadors, popsell.contacts
    TO popsell_account_team, popsell_technical;
GRANT SELECT, INSERT, UPDATE, DELETE ON popsell.social_grants, popsell.publications, popsell.ugc, popsell.community_reactions,
    popsell.gamification, popsell.contests, popsell.interactions, popsell.sales,
    popsell.activity_log, popsell.outbox, popsell.registration_whitelist
    TO popsell_account_team, popsell_technical;
GRANT SELECT ON popsell.consent_events, popsell.blacklist,
    popsell.contact_tombstones, popsell.ambassador_tombstones, popsell.maintenance_runs
    TO popsell_account_team, popsell_technical;
GRANT SELECT, UPDATE ON popsell.settings TO popsell_account_team, popsell_technical;
GRANT USAGE ON SEQUENCE popsell.ambassadors_id_seq, popsell.contacts_id_seq,
    popsell.social_grants_id_seq, popsell.publications_id_seq, popsell.ugc_id_seq,
    popsell.community_reactions_id_seq, popsell.contests_id_seq, popsell.interactions_id_seq,
    popsell.sales_id_seq, popsell.activity_log_id_seq, popsell.outbox_id_seq,
    popsell.registration_whitelist_id_seq
    TO popsell_account_team, popsell_technical;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['ambassadors', 'contacts', 'social_grants', 'publications', 'ugc',
                             'community_reactions', 'gamification', 'contests', 'interactions',
                             'sales', 'activity_log', 'outbox', 'registration_whitelist', 'settings']
    LOOP
        EXECUTE pg_catalog.format(
            'CREATE POLICY popsell_staff_all ON popsell.%I TO popsell_account_team, popsell_technical'
            ' USING (true) WITH CHECK (true)', t);
        EXECUTE pg_catalog.format(
            'COMMENT ON POLICY popsell_staff_all ON popsell.%I IS %L', t,
            'Vendor staff (account team, technical) see and change every row of the brand.');
    END LOOP;
    FOREACH t IN ARRAY ARRAY['consent_events', 'blacklist', 'contact_tombstones',
                             'ambassador_tombstones', 'maintenance_runs']
    LOOP
        EXECUTE pg_catalog.format(
            'CREATE POLICY popsell_staff_select ON popsell.%I FOR SELECT'
            ' TO popsell_account_team, popsell_technical USING (true)', t);
        EXECUTE pg_catalog.format(
            'COMMENT ON POLICY popsell_staff_select ON popsell.%I IS %L', t,
            'Vendor staff read every row; writes go through popsell''s functions and triggers.');
    END LOOP;
END
$$;

-- -------------------------------------------------------------------
-- settings and contests: configuration, readable by every SPEC role.
-- -------------------------------------------------------------------
GRANT SELECT ON popsell.settings TO popsell_ambassador, popsell_brand, popsell_brand_bi, popsell_app;
-- (not suspension_max nor deletion_grace: vendor staff set them, v2)
GRANT UPDATE (brand_name, ambassador_inactivity, inactivity_warnings,
              inactivity_warning_interval, new_contact_invitation_window,
              invitation_response_window, email_confirmation_window, optout_retention,
              contact_inactivity, log_retention, community_name_format,
              sso_exclusive)
    ON popsell.settings TO popsell_brand;
CREATE POLICY popsell_read ON popsell.settings FOR SELECT
    TO popsell_ambassador, popsell_brand, popsell_brand_bi, popsell_app USING (true);
COMMENT ON POLICY popsell_read ON popsell.settings IS 'The brand''s configuration is no personal data.';
CREATE POLICY popsell_brand_update ON popsell.settings FOR UPDATE TO popsell_brand
    USING (true) WITH CHECK (true);
COMMENT ON POLICY popsell_brand_update ON popsell.settings IS
    'Brand administrators tune the retention windows and the community display (column grants).';

GRANT SELECT ON popsell.contests TO popsell_ambassador, popsell_brand_bi;
GRANT SELECT, INSERT, UPDATE, DELETE ON popsell.contests TO popsell_brand;
GRANT USAGE ON SEQUENCE popsell.contests_id_seq TO popsell_brand;
CREATE POLICY popsell_read ON popsell.contests FOR SELECT
    TO popsell_ambassador, popsell_brand_bi USING (true);
COMMENT ON POLICY popsell_read ON popsell.contests IS 'Contests are public to the community.';
CREATE POLICY popsell_brand_all ON popsell.contests TO popsell_brand USING (true) WITH CHECK (true);
COMMENT ON POLICY popsell_brand_all ON popsell.contests IS 'The brand runs its contests.';

-- -------------------------------------------------------------------
-- ambassadors
-- -------------------------------------------------------------------
-- An ambassador reads its own row without the password hash and edits
-- its own profile; status, identity and bookkeeping change through the
-- lifecycle functions.
GRANT SELECT (id, kind, status, created_at, first_name, last_name, customer_id, facebook_id,
              email, address, city, postal_code, country, preferred_language, birth_date,
              terms_accepted_at, photo_path, description, position, iban, hide_events,
              hide_from_community, newsletter_optin, event_notifications,
              challenge_notifications, comment_notifications, last_login_at, leaving_reason,
              deletion_due_at, sso_subject)
    ON popsell.ambassadors TO popsell_ambassador, popsell_brand;
GRANT UPDATE (first_name, last_name, address, city, postal_code, country, preferred_language,
              birth_date, photo_path, description, position, iban, hide_events,
              hide_from_community, newsletter_optin, event_notifications,
              challenge_notifications, comment_notifications)
    ON popsell.ambassadors TO popsell_ambassador;
-- Brand support agents rectify profiles (GDPR art. 16).
GRANT UPDATE (kind, first_name, last_name, customer_id, email, address, city, postal_code,
              country, preferred_language, birth_date, photo_path, description, position)
    ON popsell.ambassadors TO popsell_brand;

CREATE POLICY popsell_ambassador_select ON popsell.ambassadors FOR SELECT TO popsell_ambassador
    USING (id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id()));
COMMENT ON POLICY popsell_ambassador_select ON popsell.ambassadors IS
    'An ambassador reads its own row only; others through popsell.community.';
CREATE POLICY popsell_ambassador_update ON popsell.ambassadors FOR UPDATE TO popsell_ambassador
    USING (id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id()))
    WITH CHECK (id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id()));
COMMENT ON POLICY popsell_ambassador_update ON popsell.ambassadors IS
    'An ambassador edits its own profile (column grants say which fields).';
CREATE POLICY popsell_brand_select ON popsell.ambassadors FOR SELECT TO popsell_brand
    USING (status OPERATOR(pg_catalog.<>) 'signup_incomplete'::popsell.ambassador_status);
COMMENT ON POLICY popsell_brand_select ON popsell.ambassadors IS
    'The brand sees ambassadors who accepted the terms (not signup_incomplete), without secrets (column grants: no password hash, no login role).';
CREATE POLICY popsell_brand_update ON popsell.ambassadors FOR UPDATE TO popsell_brand
    USING (status OPERATOR(pg_catalog.<>) 'signup_incomplete'::popsell.ambassador_status)
    WITH CHECK (true);
COMMENT ON POLICY popsell_brand_update ON popsell.ambassadors IS
    'Brand support agents rectify ambassador profiles (column grants say which fields).';

-- -------------------------------------------------------------------
-- contacts
-- -------------------------------------------------------------------
-- Ambassadors never read contacts.email in the table (opted-out contacts'
-- emails are masked in popsell.my_contacts); they may write it.
GRANT SELECT (id, ambassador_id, source, first_name, last_name, email_status, facebook_id,
              twitter_id, instagram_id, public_photo_url, customer_id, ambassador_optin,
              ambassador_optin_at, brand_optin, brand_optin_at, partners_optin,
              partners_optin_at, contact_type, notes, address, city, postal_code, country,
              mobile_phone, home_phone, tags, restricted, email_confirmed_at,
              invitation_sent_at, invitations_sent, reminder_sent_at, last_activity_at,
              created_at, created_by, modified_at, modified_by)
    ON popsell.contacts TO popsell_ambassador;
GRANT INSERT (ambassador_id, source, first_name, last_name, email, facebook_id, twitter_id,
              instagram_id, public_photo_url, customer_id, ambassador_optin, brand_optin,
              contact_type, notes, address, city, postal_code, country, mobile_phone,
              home_phone, tags)
    ON popsell.contacts TO popsell_ambassador;
-- The consent columns are updatable so that the consent trigger, not a
-- bare "permission denied", answers a forbidden change (PS100, naming
-- from and to): the transition table decides what an ambassador may set.
GRANT UPDATE (first_name, last_name, email, facebook_id, twitter_id, instagram_id,
              public_photo_url, customer_id, ambassador_optin, brand_optin, partners_optin,
              email_status, contact_type, notes, address, city, postal_code, country,
              mobile_phone, home_phone, tags)
    ON popsell.contacts TO popsell_ambassador;
GRANT DELETE ON popsell.contacts TO popsell_ambassador;
GRANT USAGE ON SEQUENCE popsell.contacts_id_seq TO popsell_ambassador, popsell_app;

CREATE POLICY popsell_ambassador_select ON popsell.contacts FOR SELECT TO popsell_ambassador
    USING (ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id())
           AND NOT popsell.is_pending_confirmation(source, email_confirmed_at));
COMMENT ON POLICY popsell_ambassador_select ON popsell.contacts IS
    'An ambassador reads its own contacts, not those pending email confirmation (no email column: see popsell.my_contacts).';
CREATE POLICY popsell_ambassador_insert ON popsell.contacts FOR INSERT TO popsell_ambassador
    WITH CHECK (ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id())
                AND source OPERATOR(pg_catalog.=) ANY ('{crm_manual,private_import}'::popsell.contact_source[]));
COMMENT ON POLICY popsell_ambassador_insert ON popsell.contacts IS
    'An ambassador adds contacts for itself, by hand or private import only (other sources carry a contact''s consent).';
CREATE POLICY popsell_ambassador_update ON popsell.contacts FOR UPDATE TO popsell_ambassador
    USING (ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id())
           AND NOT popsell.is_pending_confirmation(source, email_confirmed_at))
    WITH CHECK (ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id()));
COMMENT ON POLICY popsell_ambassador_update ON popsell.contacts IS
    'An ambassador edits its own visible contacts and cannot hand them to someone else.';
CREATE POLICY popsell_ambassador_delete ON popsell.contacts FOR DELETE TO popsell_ambassador
    USING (ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id())
           AND NOT popsell.is_pending_confirmation(source, email_confirmed_at));
COMMENT ON POLICY popsell_ambassador_delete ON popsell.contacts IS
    'An ambassador erases its own visible contacts.';

-- The brand: brand-visible contacts (brand or partners opt-in), not
-- pending confirmation, not restricted (GDPR art. 18).  Brand records come
-- in through collect_contact (brand_sync), not plain INSERT.
-- (SELECT on every column: popsell._column_readers)
GRANT DELETE ON popsell.contacts TO popsell_brand;
GRANT UPDATE (first_name, last_name, email, email_status, facebook_id, twitter_id,
              instagram_id, public_photo_url, customer_id, ambassador_optin, brand_optin,
              partners_optin, contact_type, notes, address, city, postal_code, country,
              mobile_phone, home_phone, tags, restricted)
    ON popsell.contacts TO popsell_brand;
CREATE FUNCTION popsell._brand_saw(contact_id bigint) RETURNS boolean
    LANGUAGE c VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'brand_saw';
COMMENT ON FUNCTION popsell._brand_saw(bigint) IS
    'Internal (brand row security): whether the current statement is a staff UPDATE that changed this contact while the brand saw it (its old version was brand-visible). Brand roles; no errors, false for NULL.';
GRANT EXECUTE ON FUNCTION popsell._brand_saw(bigint) TO popsell_brand;
CREATE POLICY popsell_brand_select ON popsell.contacts FOR SELECT TO popsell_brand
    USING (popsell.brand_sees(restricted, source, email_confirmed_at, brand_optin, partners_optin)
           OR popsell._brand_saw(id));
COMMENT ON POLICY popsell_brand_select ON popsell.contacts IS
    'The brand reads brand-visible contacts (brand or partners opt-in) that are confirmed and not restricted; a row its own UPDATE changed while it saw it stays visible to it for the rest of that statement (a withdrawal or address change the person asked for passes row security), and rows changed as side effects that it did not see stay hidden.';
CREATE POLICY popsell_brand_update ON popsell.contacts FOR UPDATE TO popsell_brand
    USING (popsell.brand_sees(restricted, source, email_confirmed_at, brand_optin, partners_optin))
    WITH CHECK (true);
COMMENT ON POLICY popsell_brand_update ON popsell.contacts IS
    'Staff changes to brand-visible contacts (recording an opt-out may hide the row, hence no visibility check on the new row).';
CREATE POLICY popsell_brand_delete ON popsell.contacts FOR DELETE TO popsell_brand
    USING (popsell.brand_sees(restricted, source, email_confirmed_at, brand_optin, partners_optin));
COMMENT ON POLICY popsell_brand_delete ON popsell.contacts IS 'The brand erases brand-visible contacts.';

-- Trusted applications insert contacts of any source (forms, webhooks)
-- and read the contacts their outbox tells them to write to.
-- (SELECT on every column: popsell._column_readers)
GRANT INSERT ON popsell.contacts TO popsell_app;
CREATE POLICY popsell_app_insert ON popsell.contacts FOR INSERT TO popsell_app WITH CHECK (true);
COMMENT ON POLICY popsell_app_insert ON popsell.contacts IS
    'Trusted applications record contacts of any source; the consent trigger checks the values.';
CREATE POLICY popsell_app_select ON popsell.contacts FOR SELECT TO popsell_app
    USING (popsell._app_sees_contact(id));
COMMENT ON POLICY popsell_app_select ON popsell.contacts IS
    'Trusted applications read the contacts they have an unsent outbox message for.';

-- -------------------------------------------------------------------
-- Tables tied to an ambassador: own rows for the ambassador, all rows
-- (read, moderate) for the brand.
-- -------------------------------------------------------------------
GRANT SELECT, INSERT, UPDATE, DELETE ON popsell.social_grants TO popsell_ambassador;
GRANT USAGE ON SEQUENCE popsell.social_grants_id_seq TO popsell_ambassador;
CREATE POLICY popsell_ambassador_all ON popsell.social_grants TO popsell_ambassador
    USING (ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id()))
    WITH CHECK (ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id()));
COMMENT ON POLICY popsell_ambassador_all ON popsell.social_grants IS
    'An ambassador manages its own social network grants.';

GRANT SELECT, INSERT, UPDATE, DELETE ON popsell.publications TO popsell_ambassador;
-- No UPDATE of a UGC row's id (outbox rows and erasure refer to it).
GRANT SELECT, INSERT, DELETE ON popsell.ugc TO popsell_ambassador;
GRANT UPDATE (ambassador_id, contest_id, file_path, created_at) ON popsell.ugc TO popsell_ambassador;
GRANT USAGE ON SEQUENCE popsell.publications_id_seq, popsell.ugc_id_seq TO popsell_ambassador;
GRANT SELECT, DELETE ON popsell.publications, popsell.ugc TO popsell_brand;
GRANT SELECT, INSERT, DELETE ON popsell.community_reactions TO popsell_ambassador;
GRANT USAGE ON SEQUENCE popsell.community_reactions_id_seq TO popsell_ambassador;
GRANT SELECT, DELETE ON popsell.community_reactions TO popsell_brand;
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['publications', 'ugc', 'community_reactions']
    LOOP
        EXECUTE pg_catalog.format(
            'CREATE POLICY popsell_ambassador_all ON popsell.%I TO popsell_ambassador'
            ' USING (ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id()))'
            ' WITH CHECK (ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id()))', t);
        EXECUTE pg_catalog.format('COMMENT ON POLICY popsell_ambassador_all ON popsell.%I IS %L', t,
            'An ambassador manages its own rows; others'' activity through popsell.community_activity.');
        EXECUTE pg_catalog.format(
            'CREATE POLICY popsell_brand_select ON popsell.%I FOR SELECT TO popsell_brand USING (true)', t);
        EXECUTE pg_catalog.format('COMMENT ON POLICY popsell_brand_select ON popsell.%I IS %L', t,
            'Brand community managers see the community''s content.');
        EXECUTE pg_catalog.format(
            'CREATE POLICY popsell_brand_delete ON popsell.%I FOR DELETE TO popsell_brand USING (true)', t);
        EXECUTE pg_catalog.format('COMMENT ON POLICY popsell_brand_delete ON popsell.%I IS %L', t,
            'Brand community managers moderate the community''s content.');
    END LOOP;
END
$$;

GRANT SELECT ON popsell.gamification TO popsell_ambassador;
GRANT SELECT, INSERT, UPDATE ON popsell.gamification TO popsell_brand;
CREATE POLICY popsell_ambassador_select ON popsell.gamification FOR SELECT TO popsell_ambassador
    USING (ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id()));
COMMENT ON POLICY popsell_ambassador_select ON popsell.gamification IS
    'An ambassador reads its own score; others'' through popsell.community.';
CREATE POLICY popsell_brand_all ON popsell.gamification FOR ALL TO popsell_brand
    USING (true) WITH CHECK (true);
COMMENT ON POLICY popsell_brand_all ON popsell.gamification IS 'The brand runs its gamification.';

-- Activity log: anti-fraud data.  The brand sees what happened, not the
-- IP hashes nor the user agents; ambassadors see nothing.
GRANT SELECT (id, ambassador_id, kind, created_at) ON popsell.activity_log TO popsell_brand;
CREATE POLICY popsell_brand_select ON popsell.activity_log FOR SELECT TO popsell_brand USING (true);
COMMENT ON POLICY popsell_brand_select ON popsell.activity_log IS
    'The brand sees ambassadors'' activity without IP data (column grants).';

-- -------------------------------------------------------------------
-- Tables tied to a contact: visible when the contact is.  The subquery
-- runs under the reader's own row security on popsell.contacts, so the
-- contact policies above decide.
-- -------------------------------------------------------------------
GRANT SELECT ON popsell.interactions, popsell.consent_events TO popsell_ambassador, popsell_brand;
CREATE POLICY popsell_ambassador_select ON popsell.interactions FOR SELECT TO popsell_ambassador
    USING (popsell._id_in(contact_id, ARRAY(SELECT c.id FROM popsell.contacts c))
           AND contact_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT c.id FROM popsell.contacts c)));
COMMENT ON POLICY popsell_ambassador_select ON popsell.interactions IS
    'An ambassador sees interactions of the contacts it sees.';
CREATE POLICY popsell_brand_select ON popsell.interactions FOR SELECT TO popsell_brand
    USING (contact_id IS NULL OR popsell._sees_contact(contact_id));
COMMENT ON POLICY popsell_brand_select ON popsell.interactions IS
    'The brand sees interactions of brand-visible contacts and of erased ones (statistics).';
CREATE POLICY popsell_ambassador_select ON popsell.consent_events FOR SELECT TO popsell_ambassador
    USING (popsell._id_in(contact_id, ARRAY(SELECT c.id FROM popsell.contacts c))
           AND contact_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT c.id FROM popsell.contacts c)));
COMMENT ON POLICY popsell_ambassador_select ON popsell.consent_events IS
    'An ambassador reads the consent proof of the contacts it sees.';
CREATE POLICY popsell_brand_select ON popsell.consent_events FOR SELECT TO popsell_brand
    USING (popsell._sees_contact(contact_id));
COMMENT ON POLICY popsell_brand_select ON popsell.consent_events IS
    'The brand reads the consent proof of brand-visible contacts.';

-- Sales: an ambassador sees its own sales without the products.
GRANT SELECT (id, contact_id, contact_tombstone_id, ambassador_id, publication_id, sold_at,
              amount, currency, channel)
    ON popsell.sales TO popsell_ambassador;
GRANT SELECT ON popsell.sales TO popsell_brand;
CREATE POLICY popsell_ambassador_select ON popsell.sales FOR SELECT TO popsell_ambassador
    USING (ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id()));
COMMENT ON POLICY popsell_ambassador_select ON popsell.sales IS
    'An ambassador sees its own sales, without the products (column grants; see popsell.my_sales).';
CREATE POLICY popsell_brand_select ON popsell.sales FOR SELECT TO popsell_brand
    USING (contact_id IS NULL OR popsell._sees_contact(contact_id));
COMMENT ON POLICY popsell_brand_select ON popsell.sales IS
    'The brand sees sales of brand-visible contacts and of erased ones (statistics).';

-- Contact tombstones: statistics for the brand, without the hashes.
GRANT SELECT (id, contact_id, ambassador_id, source, ambassador_optin, brand_optin,
              partners_optin, city, postal_code, deleted_at, reason)
    ON popsell.contact_tombstones TO popsell_brand;
CREATE POLICY popsell_brand_select ON popsell.contact_tombstones FOR SELECT TO popsell_brand
    USING (true);
COMMENT ON POLICY popsell_brand_select ON popsell.contact_tombstones IS
    'The brand counts erased contacts (no hashes: column grants).';
GRANT SELECT ON popsell.maintenance_runs TO popsell_brand;
CREATE POLICY popsell_brand_select ON popsell.maintenance_runs FOR SELECT TO popsell_brand
    USING (true);
COMMENT ON POLICY popsell_brand_select ON popsell.maintenance_runs IS
    'The brand sees what the retention rules did (counts only).';

-- Outbox: the application carries it out.  Ambassadors get no INSERT:
-- the sending guard (a BEFORE trigger) runs before row security's WITH
-- CHECK and would answer about contacts the ambassador cannot see.
GRANT SELECT, INSERT ON popsell.outbox TO popsell_app;
GRANT UPDATE (sent_at) ON popsell.outbox TO popsell_app;
GRANT USAGE ON SEQUENCE popsell.outbox_id_seq TO popsell_app;
CREATE POLICY popsell_app_all ON popsell.outbox TO popsell_app USING (true) WITH CHECK (true);
COMMENT ON POLICY popsell_app_all ON popsell.outbox IS
    'Trusted applications queue messages and mark them sent.';

-- -------------------------------------------------------------------
-- Views
-- -------------------------------------------------------------------

-- The ambassador's complete view of its CRM: own contacts, none pending
-- confirmation, the email NULL for opted-out contacts.  Owner's rights
-- (ambassadors cannot read contacts.email), so it filters by the caller.
CREATE VIEW popsell.my_contacts WITH (security_barrier = true) AS
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
GRANT SELECT ON popsell.my_contacts TO popsell_ambassador;

-- The ambassador's sales without products (row security on popsell.sales).
CREATE VIEW popsell.my_sales WITH (security_invoker = true) AS
SELECT s.id, s.contact_id, s.contact_tombstone_id, s.ambassador_id, s.publication_id, s.sold_at,
       s.amount, s.currency, s.channel
  FROM popsell.sales s;
COMMENT ON VIEW popsell.my_sales IS
    'The acting ambassador''s sales, without products (security_invoker: row security of popsell.sales decides).';
GRANT SELECT ON popsell.my_sales TO popsell_ambassador;

-- The brand's reading paths (row security on the tables decides).
CREATE VIEW popsell.brand_contacts WITH (security_invoker = true) AS
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
GRANT SELECT ON popsell.brand_contacts TO popsell_brand, popsell_account_team, popsell_technical;

-- The brand's search by email (SPEC S11): contacts.email has no index a
-- caller's own condition can use.  This lookup runs as the owner through
-- the index holding only brand-visible rows (contacts_brand_email_idx), so
-- it is fast and its index fetches count nothing the brand may not see: it
-- writes the index's predicate (popsell_internal._brand_sees, the view's
-- rule under the owner-only name) so the planner matches the index.
CREATE FUNCTION popsell.brand_contacts_by_email(email text) RETURNS SETOF popsell.brand_contacts
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e text := popsell.normalize_email(brand_contacts_by_email.email);
BEGIN
    RETURN QUERY
        SELECT b.* FROM popsell.brand_contacts b
         WHERE popsell_internal._brand_sees(b.restricted, b.source, b.email_confirmed_at, b.brand_optin, b.partners_optin)
           AND popsell_internal._brand_lookup_key(b.email) OPERATOR(pg_catalog.=) popsell_internal._brand_lookup_key(e);
END
$$;
COMMENT ON FUNCTION popsell.brand_contacts_by_email(text) IS
    'The brand-visible contacts (the rows of popsell.brand_contacts) with this email, normalized first, found through an index of brand-visible rows only. Brand and vendor staff. Errors: a malformed address as popsell.normalize_email.';
GRANT EXECUTE ON FUNCTION popsell.brand_contacts_by_email(text)
    TO popsell_brand, popsell_account_team, popsell_technical;

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

-- Read-only BI views: popsell_brand_bi holds no table privilege, so these
-- run with the owner's rights, repeat the brand's row filter and show
-- rows only to a caller with the rights of popsell_brand_bi.
CREATE VIEW popsell.bi_contacts WITH (security_barrier = true) AS
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

CREATE VIEW popsell.bi_ambassadors WITH (security_barrier = true) AS
SELECT a.id, a.kind, a.status, a.created_at, a.first_name, a.last_name, a.customer_id,
       a.email, a.city, a.postal_code, a.country, a.preferred_language, a.terms_accepted_at,
       a.position, a.hide_from_community, a.newsletter_optin, a.last_login_at,
       a.leaving_reason, a.deletion_due_at
  FROM popsell.ambassadors a
 WHERE (SELECT popsell._caller_in('popsell_brand_bi'))
   AND a.status OPERATOR(pg_catalog.<>) 'signup_incomplete'::popsell.ambassador_status;
COMMENT ON VIEW popsell.bi_ambassadors IS
    'BI: ambassadors who accepted the terms, without secrets (no password hash, IBAN or IP data), read-only, for popsell_brand_bi.';

CREATE VIEW popsell.bi_sales WITH (security_barrier = true) AS
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

CREATE VIEW popsell.bi_interactions WITH (security_barrier = true) AS
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

CREATE VIEW popsell.bi_contact_tombstones WITH (security_barrier = true) AS
SELECT t.id, t.ambassador_id, t.source, t.ambassador_optin, t.brand_optin, t.partners_optin,
       t.city, t.postal_code, t.deleted_at, t.reason
  FROM popsell.contact_tombstones t
 WHERE (SELECT popsell._caller_in('popsell_brand_bi'));
COMMENT ON VIEW popsell.bi_contact_tombstones IS
    'BI: erased contacts for statistics (no hashes), read-only, for popsell_brand_bi.';
GRANT SELECT ON popsell.bi_contacts, popsell.bi_ambassadors, popsell.bi_sales,
    popsell.bi_interactions, popsell.bi_contact_tombstones TO popsell_brand_bi;

-- The community: what an ambassador may know of the others.  Owner's
-- rights (ambassadors read only their own row), shown to a caller acting
-- as an active ambassador or with brand or vendor staff rights.
CREATE VIEW popsell.community WITH (security_barrier = true) AS
SELECT a.id,
       CASE s.community_name_format
           WHEN 'full' THEN pg_catalog.concat_ws(' ', a.first_name, a.last_name)
           WHEN 'first_initial' THEN pg_catalog.concat_ws(' ', a.first_name,
               pg_catalog.upper(pg_catalog."left"(a.last_name, 1)) OPERATOR(pg_catalog.||) '.')
           ELSE pg_catalog.concat(pg_catalog.upper(pg_catalog."left"(a.first_name, 1)) OPERATOR(pg_catalog.||) '.',
                                  pg_catalog.upper(pg_catalog."left"(a.last_name, 1)) OPERATOR(pg_catalog.||) '.')
       END AS display_name,
       a.postal_code, a.photo_path, coalesce(g.score, 0) AS score, coalesce(g.level, 1) AS level,
       coalesce(g.badges, '{}'::text[]) AS badges
  FROM popsell.ambassadors a
  CROSS JOIN popsell.settings s
  LEFT JOIN popsell.gamification g ON g.ambassador_id OPERATOR(pg_catalog.=) a.id
 WHERE a.status OPERATOR(pg_catalog.=) 'active'::popsell.ambassador_status
   AND NOT a.hide_from_community
   AND ((SELECT popsell.current_ambassador_id()) IS NOT NULL
        OR (SELECT popsell._caller_in('popsell_brand') OR popsell._caller_in('popsell_account_team')
                   OR popsell._caller_in('popsell_technical')));
COMMENT ON VIEW popsell.community IS
    'Active ambassadors as the community sees them: display name per settings.community_name_format, postal code, photo, score, level, badges; no email, IBAN or password hash; hide_from_community honoured.';
GRANT SELECT ON popsell.community TO popsell_ambassador, popsell_brand, popsell_account_team,
    popsell_technical;

-- The community's activity stream: publications of ambassadors who show
-- up in the community and do not hide their events.
CREATE VIEW popsell.community_activity WITH (security_barrier = true) AS
SELECT p.id, p.ambassador_id, p.created_at, p.comment
  FROM popsell.publications p
  JOIN popsell.ambassadors a ON a.id OPERATOR(pg_catalog.=) p.ambassador_id
 WHERE a.status OPERATOR(pg_catalog.=) 'active'::popsell.ambassador_status
   AND NOT a.hide_from_community
   AND NOT a.hide_events
   AND ((SELECT popsell.current_ambassador_id()) IS NOT NULL
        OR (SELECT popsell._caller_in('popsell_brand') OR popsell._caller_in('popsell_account_team')
                   OR popsell._caller_in('popsell_technical')));
COMMENT ON VIEW popsell.community_activity IS
    'Publications of community members who do not hide their events (hide_events, hide_from_community honoured).';
GRANT SELECT ON popsell.community_activity TO popsell_ambassador, popsell_brand,
    popsell_account_team, popsell_technical;
