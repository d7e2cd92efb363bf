-- ===================================================================
-- C functions and the triggers that enforce the rules (SPEC sections 2,
-- 4 and 6).  Creating the first C function loads the library, which
-- defines the popsell.* settings used below.
-- ===================================================================

CREATE FUNCTION popsell.current_ambassador_id() RETURNS bigint
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'current_ambassador_id';
COMMENT ON FUNCTION popsell.current_ambassador_id() IS
    'The active ambassador the current transaction acts as: by login_role, else by popsell.ambassador_id set by a trusted app in this transaction (SET LOCAL or set_config(..., true)); NULL for nobody.';

CREATE FUNCTION popsell._ambassador_id_setting() RETURNS text
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'popsell_ambassador_id_setting';
COMMENT ON FUNCTION popsell._ambassador_id_setting() IS
    'Internal: popsell.ambassador_id as set in the current transaction (SET LOCAL or set_config(..., true)), else NULL; what popsell''s own checks compare with.';

CREATE FUNCTION popsell._as_of() RETURNS timestamptz
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'popsell_as_of';
COMMENT ON FUNCTION popsell._as_of() IS
    'Internal: the time popsell.as_of names when it was set in the current transaction (run_maintenance), else NULL.';

CREATE FUNCTION popsell._random_bytes(n integer) RETURNS bytea
    LANGUAGE c VOLATILE STRICT
    AS 'MODULE_PATHNAME', 'popsell_random_bytes';
COMMENT ON FUNCTION popsell._random_bytes(integer) IS
    'Internal: N bytes from the server''s strong random source (keys).';

-- The brand's first key, from the strong random source.
INSERT INTO popsell.hash_keys (key_id, secret) VALUES (1, popsell._random_bytes(32));
-- The lookup secret, once and for good (see popsell.lookup_secret).
INSERT INTO popsell.lookup_secret (secret) VALUES (popsell._random_bytes(32));

CREATE FUNCTION popsell._restoring() RETURNS boolean
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'popsell_restoring';
COMMENT ON FUNCTION popsell._restoring() IS
    'Internal: true while a superuser loads rows with row_security off (pg_restore), when triggers let rows through unchanged.';

CREATE FUNCTION popsell._caller_in(role text) RETURNS boolean
    LANGUAGE c STABLE STRICT
    AS 'MODULE_PATHNAME', 'popsell_caller_in';
COMMENT ON FUNCTION popsell._caller_in(text) IS
    'Internal: whether the role calling into popsell (not a SECURITY DEFINER owner) has the privileges of the given role.';

CREATE FUNCTION popsell.current_path() RETURNS text
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'popsell_current_path';
COMMENT ON FUNCTION popsell.current_path() IS
    'The path (actor) a consent change made now would be recorded under.';

CREATE FUNCTION popsell.normalize_email(email text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'normalize_email';
COMMENT ON FUNCTION popsell.normalize_email(text) IS
    'The stored form of an email: trimmed, lower-cased, Unicode NFC; raises PS202 when malformed.';

CREATE FUNCTION popsell._has_visible_text(value text) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'has_visible_text';
COMMENT ON FUNCTION popsell._has_visible_text(text) IS
    'Internal: whether a text holds a visible character (not only Unicode white space, invisible, format or control characters): what makes a personal field filled.';

CREATE FUNCTION popsell.hash_email(email text) RETURNS bytea
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'hash_email';
COMMENT ON FUNCTION popsell.hash_email(text) IS
    'Keyed HMAC-SHA-256 of the normalized email under the brand''s newest key (plain SHA-256 for a legacy key).';

CREATE FUNCTION popsell.hash_identifier(value text) RETURNS bytea
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'hash_email';
COMMENT ON FUNCTION popsell.hash_identifier(text) IS
    'Keyed hash of any identifier (customer id, social id, IP), normalized like an email.';

CREATE FUNCTION popsell.email_hashes(email text) RETURNS bytea[]
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'email_hashes';
COMMENT ON FUNCTION popsell.email_hashes(text) IS
    'The email''s hash under every live key, newest first: what blacklist and tombstone lookups compare with.';

CREATE FUNCTION popsell.hash_key_id() RETURNS integer
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'hash_key_id';
COMMENT ON FUNCTION popsell.hash_key_id() IS
    'Id of the key new hashes are made with.';

CREATE FUNCTION popsell.transition_rules()
    RETURNS TABLE (field text, from_states text, to_states text, paths text, sources text, why text)
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'transition_rules';
COMMENT ON FUNCTION popsell.transition_rules() IS
    'The consent transition table enforced by the contacts trigger, one row per rule (the README shows the same table).';

CREATE FUNCTION popsell.transition_allowed(field text, from_state text, to_state text, path text,
                                           source popsell.contact_source)
    RETURNS boolean
    LANGUAGE c STABLE STRICT
    AS 'MODULE_PATHNAME', 'transition_allowed';
COMMENT ON FUNCTION popsell.transition_allowed(text, text, text, text, popsell.contact_source) IS
    'Whether the transition table lets PATH move FIELD from FROM_STATE to TO_STATE for a contact of SOURCE.';

CREATE FUNCTION popsell.initial_optins(source popsell.contact_source,
                                       ambassador_optin_checked boolean DEFAULT NULL,
                                       brand_optin_checked boolean DEFAULT NULL,
                                       partners_optin_checked boolean DEFAULT NULL,
                                       OUT ambassador_optin popsell.ambassador_optin,
                                       OUT brand_optin popsell.brand_optin,
                                       OUT partners_optin boolean)
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'initial_optins';
COMMENT ON FUNCTION popsell.initial_optins(popsell.contact_source, boolean, boolean, boolean) IS
    'The opt-ins a contact collected from SOURCE starts with, given the checkboxes ticked (SPEC C1).';

CREATE FUNCTION popsell.contacts_before_row() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'contacts_before_row';
COMMENT ON FUNCTION popsell.contacts_before_row() IS
    'Trigger: consent rules of popsell.contacts (initial opt-ins, transitions, blacklist, ledger).';

CREATE TRIGGER popsell_50_consent
    BEFORE INSERT OR UPDATE ON popsell.contacts
    FOR EACH ROW EXECUTE FUNCTION popsell.contacts_before_row();

-- One consent ledger entry as the contacts trigger hands it over: the
-- statement-end trigger writes an array of these with one INSERT ...
-- SELECT FROM unnest($1) into popsell.consent_events (through the
-- executor, so the ledger's defaults, constraints and types apply).
CREATE TYPE popsell._consent_entry AS (
    contact_id           bigint,
    ambassador_id        bigint,
    changed              text[],
    old_ambassador_optin popsell.ambassador_optin,
    new_ambassador_optin popsell.ambassador_optin,
    old_brand_optin      popsell.brand_optin,
    new_brand_optin      popsell.brand_optin,
    old_partners_optin   boolean,
    new_partners_optin   boolean,
    old_email_status     popsell.email_status,
    new_email_status     popsell.email_status,
    source               popsell.contact_source,
    actor                popsell.consent_actor,
    path                 text,
    actor_role           name,
    consent_text         text,
    note                 text,
    occurred_at          timestamptz
);
COMMENT ON TYPE popsell._consent_entry IS
    'Internal: one consent ledger entry as the contacts trigger buffers it, before it is inserted into popsell.consent_events.';
REVOKE ALL ON TYPE popsell._consent_entry FROM PUBLIC;
GRANT USAGE ON TYPE popsell._consent_entry TO popsell_owner;

CREATE FUNCTION popsell.contacts_after_statement() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'contacts_after_statement';
COMMENT ON FUNCTION popsell.contacts_after_statement() IS
    'Trigger: write the statement''s consent ledger rows, set-based.';

CREATE TRIGGER popsell_90_ledger
    AFTER INSERT OR UPDATE ON popsell.contacts
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.contacts_after_statement();

CREATE FUNCTION popsell._email_rows_unseen(email text) RETURNS boolean
    LANGUAGE c VOLATILE STRICT
    AS 'MODULE_PATHNAME', 'email_rows_unseen';
COMMENT ON FUNCTION popsell._email_rows_unseen(text) IS
    'Internal: whether contact rows with this email were committed after the transaction snapshot (REPEATABLE READ).';

-- Per-email serialization of opt-outs and contact writers (src/blacklist.c
-- explains the protocol).  The generation is bumped by every global
-- opt-out after its blacklist entry is in the index; not transactional,
-- so every backend sees the bump at once.
CREATE SEQUENCE popsell.optout_generation NO CYCLE CACHE 1;
COMMENT ON SEQUENCE popsell.optout_generation IS
    'Internal: bumped by every blacklist entry popsell._blacklist_add writes; a contact row written while it moved is checked again (popsell_80_optout_recheck).';

CREATE FUNCTION popsell._await_email_writers(email text) RETURNS void
    LANGUAGE c VOLATILE STRICT
    AS 'MODULE_PATHNAME', 'await_email_writers';
COMMENT ON FUNCTION popsell._await_email_writers(text) IS
    'Internal: wait for every transaction still writing a contact row with this email (dirty index scan), none other.';

CREATE FUNCTION popsell._optout_raced() RETURNS boolean
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'optout_raced';
COMMENT ON FUNCTION popsell._optout_raced() IS
    'Internal: WHEN of popsell_80_optout_recheck: whether an opt-out started while the row just stored was being written.';
-- evaluated as the role writing contacts (a trigger''s WHEN is an expression)
GRANT EXECUTE ON FUNCTION popsell._optout_raced()
    TO popsell_ambassador, popsell_brand, popsell_app, popsell_account_team, popsell_technical;

CREATE FUNCTION popsell.contacts_optout_recheck() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'contacts_optout_recheck';
COMMENT ON FUNCTION popsell.contacts_optout_recheck() IS
    'Trigger: a contact row written while an opt-out of its email started must carry it (else 40001, retry).';

-- No event is queued unless the WHEN says an opt-out started meanwhile.
CREATE TRIGGER popsell_80_optout_recheck
    AFTER INSERT OR UPDATE ON popsell.contacts
    FOR EACH ROW WHEN (popsell._optout_raced())
    EXECUTE FUNCTION popsell.contacts_optout_recheck();

CREATE FUNCTION popsell.outbox_before_row() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'outbox_before_row';
COMMENT ON FUNCTION popsell.outbox_before_row() IS
    'Trigger: the sending guard of popsell.outbox (SPEC C4).';

CREATE TRIGGER popsell_50_sending_guard
    BEFORE INSERT ON popsell.outbox
    FOR EACH ROW EXECUTE FUNCTION popsell.outbox_before_row();

CREATE FUNCTION popsell.outbox_notify() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'outbox_notify';
COMMENT ON FUNCTION popsell.outbox_notify() IS
    'Trigger: NOTIFY popsell_outbox after rows are queued.';

CREATE TRIGGER popsell_90_notify
    AFTER INSERT ON popsell.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.outbox_notify();

CREATE FUNCTION popsell.hash_keys_changed() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'hash_keys_changed';
COMMENT ON FUNCTION popsell.hash_keys_changed() IS
    'Trigger: make every backend reload the hashing keys after they change.';

CREATE TRIGGER popsell_90_keys_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON popsell.hash_keys
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.hash_keys_changed();
ALTER TABLE popsell.hash_keys ENABLE ALWAYS TRIGGER popsell_90_keys_changed;

CREATE FUNCTION popsell.blacklist_changed() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'hash_keys_changed';
COMMENT ON FUNCTION popsell.blacklist_changed() IS
    'Trigger: make every backend drop its in-memory filter of the blacklist after it changes.';

CREATE TRIGGER popsell_90_blacklist_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON popsell.blacklist
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.blacklist_changed();
-- Also under session_replication_role = replica (logical replication
-- apply, data-fix scripts): a backend's filter must never outlive a
-- blacklist or key change.
ALTER TABLE popsell.blacklist ENABLE ALWAYS TRIGGER popsell_90_blacklist_changed;

-- Only popsell's own functions (owned by popsell_owner) set the path and
-- the as-of time; only trusted applications say which ambassador they act
-- for.  These settings are PGC_SUSET, so nobody else can.
GRANT SET ON PARAMETER popsell.actor TO popsell_owner;
GRANT SET ON PARAMETER popsell.as_of TO popsell_owner;
GRANT SET ON PARAMETER popsell.ambassador_id TO popsell_app;
