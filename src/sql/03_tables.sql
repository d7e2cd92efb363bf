-- ===================================================================
-- Tables (SPEC section 3).  Columns named in SPEC.md are public; the rest
-- are popsell's bookkeeping.  Personal-data tables get row level security
-- in the security section.
-- ===================================================================

-- A retention window (SPEC section 3, v2): at least one day, and no part
-- negative.  An interval's months, days and time are separate fields, and
-- comparing intervals counts a month as 30 days: '-100 years 36001 days'
-- is "more than a day" yet goes back in time when added to a date.
CREATE FUNCTION popsell._is_window(w interval) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN (pg_catalog.date_part('year', w) OPERATOR(pg_catalog.*) 12
            OPERATOR(pg_catalog.+) pg_catalog.date_part('month', w)) OPERATOR(pg_catalog.>=) 0
       AND pg_catalog.date_part('day', w) OPERATOR(pg_catalog.>=) 0
       AND (w OPERATOR(pg_catalog.-) pg_catalog.date_trunc('day', w)) OPERATOR(pg_catalog.>=) interval '0'
       AND w OPERATOR(pg_catalog.>=) interval '1 day';
COMMENT ON FUNCTION popsell._is_window(interval) IS
    'Internal: whether an interval is a valid retention window: at least one day, with no negative months, days or time (NULL for NULL).';
-- the settings CHECK runs it with the rights of whoever updates the row
GRANT EXECUTE ON FUNCTION popsell._is_window(interval) TO popsell_brand, popsell_account_team, popsell_technical;

-- The brand's configuration: exactly one row (the primary key is a
-- constant true).
CREATE TABLE popsell.settings (
    id                            boolean PRIMARY KEY DEFAULT true CHECK (id),
    brand_name                    text,
    deletion_grace                interval NOT NULL DEFAULT '7 days',
    ambassador_inactivity         interval NOT NULL DEFAULT '3 years',
    inactivity_warnings           integer  NOT NULL DEFAULT 2 CHECK (inactivity_warnings BETWEEN 1 AND 10),
    inactivity_warning_interval   interval NOT NULL DEFAULT '15 days',
    new_contact_invitation_window interval NOT NULL DEFAULT '30 days',
    invitation_response_window    interval NOT NULL DEFAULT '15 days',
    -- NULL: invitation_response_window (SPEC section 3, v2)
    email_confirmation_window     interval,
    optout_retention              interval NOT NULL DEFAULT '1 year',
    contact_inactivity            interval NOT NULL DEFAULT '3 years',
    suspension_max                interval NOT NULL DEFAULT '6 months',
    log_retention                 interval NOT NULL DEFAULT '1 year',
    community_name_format         text NOT NULL DEFAULT 'first_initial'
                                  CHECK (community_name_format IN ('full', 'first_initial', 'initials')),
    sso_exclusive                 boolean NOT NULL DEFAULT false,
    bcrypt_cost                   integer NOT NULL DEFAULT 12 CHECK (bcrypt_cost BETWEEN 4 AND 31),
    program_suspended_at          timestamptz,
    brand_contract_ended_at       timestamptz,
    -- every window at least one day, no part of it negative (SPEC
    -- section 3, v2); the settings guard trigger says so with PS510 first
    CONSTRAINT settings_window_floor
    CHECK (popsell._is_window(deletion_grace)
           AND popsell._is_window(ambassador_inactivity)
           AND popsell._is_window(inactivity_warning_interval)
           AND popsell._is_window(new_contact_invitation_window)
           AND popsell._is_window(invitation_response_window)
           AND popsell._is_window(email_confirmation_window)
           AND popsell._is_window(optout_retention)
           AND popsell._is_window(contact_inactivity)
           AND popsell._is_window(suspension_max)
           AND popsell._is_window(log_retention))
);
COMMENT ON TABLE popsell.settings IS
    'The brand''s configuration (one row): retention windows, community display, SSO, program and contract state.';
INSERT INTO popsell.settings DEFAULT VALUES;

-- Keys for the keyed email hashes.  Every key stays live so that entries
-- hashed under an older key keep working after a rotation; a NULL secret
-- is the guide's legacy plain SHA-256.  Only popsell_owner reads it.
CREATE TABLE popsell.hash_keys (
    key_id     integer PRIMARY KEY CHECK (key_id > 0),
    secret     bytea CHECK (secret IS NULL OR octet_length(secret) >= 16),
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE popsell.hash_keys IS
    'Brand secret keys of the keyed email hashes (HMAC-SHA-256); the newest hashes new entries, all are checked. Owner only.';

-- Lookup keys (SPEC S11): personal columns are indexed through the
-- HMAC-SHA-256 of their stored value under the lookup secret, never
-- plainly.  The key functions live in schema popsell_internal, on which
-- no popsell role but the owner has USAGE.  PostgreSQL checks USAGE on a
-- function's schema whenever a query names the function (qualified, via
-- search_path, or as a regproc/regprocedure literal), but not when index
-- maintenance evaluates an index expression: the roles writing the
-- indexed tables hold EXECUTE (index maintenance runs with the writer's
-- rights) and still cannot write either function in a query.  So no
-- restricted role computes a key for a value of its choosing, and the
-- planner never matches a lookup-key index to a condition or a merge-join
-- key of theirs (a merge join of caller-computed keys against the index
-- would count hidden rows in key order).  popsell's own lookups run as the
-- owner and use the indexes.  The functions are not leakproof either.
-- _brand_lookup_key is the same key under another name, so that the index
-- holding only brand-visible rows (contacts_brand_email_idx) is the only
-- one a lookup through it can use.
CREATE SCHEMA popsell_internal;
COMMENT ON SCHEMA popsell_internal IS
    'popsell''s lookup-key functions, which index expressions call: USAGE for popsell_owner only, so no other role can name them in a query (see popsell_internal._lookup_key).';

-- The secret: one row, created at install (and by the 1.1 -> 2.0
-- upgrade), kept by pg_dump (extension configuration table), readable by
-- popsell_owner only (and by roles reading all data, such as a backup
-- role).  It is never rotated: every lookup-key index depends on it.  A
-- restore replaces the install's secret with the backed-up one and
-- rebuilds the lookup-key indexes (12_restore.sql).
CREATE TABLE popsell.lookup_secret (
    id         integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    secret     bytea NOT NULL CHECK (octet_length(secret) = 32),
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE popsell.lookup_secret IS
    'The secret of the lookup keys (HMAC-SHA-256) that personal columns are indexed by; one row, created at install, never changed (the indexes depend on it), kept by pg_dump. Owner only.';
CREATE FUNCTION popsell._lookup_secret_guard() RETURNS trigger
    LANGUAGE C
    AS 'MODULE_PATHNAME', 'popsell_lookup_secret_guard';
COMMENT ON FUNCTION popsell._lookup_secret_guard() IS
    'Trigger: popsell.lookup_secret is never updated, deleted or truncated (a restore replaces it).';
CREATE TRIGGER popsell_20_never_changes
    BEFORE UPDATE OR DELETE ON popsell.lookup_secret
    FOR EACH ROW EXECUTE FUNCTION popsell._lookup_secret_guard();
CREATE TRIGGER popsell_20_never_truncated
    BEFORE TRUNCATE ON popsell.lookup_secret
    FOR EACH STATEMENT EXECUTE FUNCTION popsell._lookup_secret_guard();
CREATE FUNCTION popsell._lookup_secret_changed() RETURNS trigger
    LANGUAGE C
    AS 'MODULE_PATHNAME', 'popsell_lookup_secret_changed';
COMMENT ON FUNCTION popsell._lookup_secret_changed() IS
    'Trigger: make every backend read the lookup secret again after a restore replaced it.';
CREATE TRIGGER popsell_90_secret_changed
    AFTER INSERT OR DELETE ON popsell.lookup_secret
    FOR EACH STATEMENT EXECUTE FUNCTION popsell._lookup_secret_changed();
ALTER TABLE popsell.lookup_secret ENABLE ALWAYS TRIGGER popsell_20_never_changes;
ALTER TABLE popsell.lookup_secret ENABLE ALWAYS TRIGGER popsell_20_never_truncated;
ALTER TABLE popsell.lookup_secret ENABLE ALWAYS TRIGGER popsell_90_secret_changed;
CREATE FUNCTION popsell_internal._lookup_key(value text) RETURNS bytea
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'popsell_lookup_key';
COMMENT ON FUNCTION popsell_internal._lookup_key(text) IS
    'Internal: the key popsell indexes a personal column by (HMAC-SHA-256 of the stored value under popsell.lookup_secret). Writing roles hold EXECUTE for index maintenance only: no role but the owner has USAGE on schema popsell_internal, so none can name it in a query; not leakproof.';
CREATE FUNCTION popsell_internal._brand_lookup_key(value text) RETURNS bytea
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'popsell_lookup_key';
COMMENT ON FUNCTION popsell_internal._brand_lookup_key(text) IS
    'Internal: popsell_internal._lookup_key under the name of the index of brand-visible contacts (see popsell.brand_contacts_by_email); owner-only schema, not leakproof.';
-- The predicate of the brand's email index: popsell.brand_sees (the same C
-- function, so the rule is defined once) under a name no restricted role
-- can write.  Every role may call popsell.brand_sees, so an index whose
-- predicate is spelled with it is matched to any query that writes it, and
-- planned as a full scan in key order counting the hidden rows below a
-- visible one.  A C function, not an SQL wrapper: the planner would inline
-- an SQL body back into popsell.brand_sees(...).
CREATE FUNCTION popsell_internal._brand_sees(restricted boolean, source popsell.contact_source,
                                             email_confirmed_at timestamptz, brand_optin popsell.brand_optin,
                                             partners_optin boolean) RETURNS boolean
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'brand_sees';
COMMENT ON FUNCTION popsell_internal._brand_sees(boolean, popsell.contact_source, timestamptz, popsell.brand_optin, boolean) IS
    'Internal: popsell.brand_sees under the name of the predicate of contacts_brand_email_idx, which only popsell''s own lookup (popsell.brand_contacts_by_email) writes; owner-only schema. Writing roles hold EXECUTE for index maintenance.';

CREATE TABLE popsell.ambassadors (
    id                       bigserial PRIMARY KEY,
    kind                     popsell.ambassador_kind NOT NULL DEFAULT 'customer',
    status                   popsell.ambassador_status NOT NULL DEFAULT 'signup_incomplete',
    created_at               timestamptz NOT NULL DEFAULT pg_catalog.now(),
    first_name               text,
    last_name                text,
    password_hash            text CONSTRAINT ambassadors_password_hash_bcrypt
                             CHECK (password_hash ~ '^\$2[abxy]\$[0-9]{2}\$[./A-Za-z0-9]{53}$'),
    customer_id              text,
    facebook_id              text,
    email                    text,
    address                  text,
    city                     text,
    postal_code              text,
    country                  text,
    preferred_language       text,
    birth_date               date,
    terms_accepted_at        timestamptz,
    photo_path               text,
    description              text,
    position                 text,
    iban                     text,
    hide_events              boolean NOT NULL DEFAULT false,
    hide_from_community      boolean NOT NULL DEFAULT false,
    newsletter_optin         boolean NOT NULL DEFAULT false,
    event_notifications      boolean NOT NULL DEFAULT true,
    challenge_notifications  boolean NOT NULL DEFAULT true,
    comment_notifications    boolean NOT NULL DEFAULT true,
    last_login_at            timestamptz,
    leaving_reason           text,
    deletion_due_at          timestamptz,
    login_role               name UNIQUE,
    sso_subject              text,
    inactivity_warnings_sent integer NOT NULL DEFAULT 0,
    last_inactivity_warning_at timestamptz,
    -- (v2) Bounded at write (SPEC section 8): identifiers and paths 256
    -- octets, names and places 256, addresses 1024, free text 10000.
    CONSTRAINT ambassadors_bounded_text CHECK (
        octet_length(first_name) <= 256 AND octet_length(last_name) <= 256
        AND octet_length(customer_id) <= 256 AND octet_length(facebook_id) <= 256
        AND octet_length(email) <= 254 AND octet_length(address) <= 1024
        AND octet_length(city) <= 256 AND octet_length(postal_code) <= 256
        AND octet_length(country) <= 256 AND octet_length(preferred_language) <= 256
        AND octet_length(photo_path) <= 256 AND octet_length(description) <= 10000
        AND octet_length(position) <= 256 AND octet_length(iban) <= 256
        AND octet_length(leaving_reason) <= 256 AND octet_length(sso_subject) <= 256),
    CONSTRAINT ambassadors_active_needs_terms
        CHECK (status <> 'active' OR terms_accepted_at IS NOT NULL),
    CONSTRAINT ambassadors_leaving_needs_due
        CHECK (status <> 'leaving' OR deletion_due_at IS NOT NULL)
);
COMMENT ON TABLE popsell.ambassadors IS
    'Ambassadors (micro-influencers, sales reps, employees). DELETE is the erasure: a tombstone keeps only hashes, city, postal code and birth year.';
CREATE UNIQUE INDEX ambassadors_email_key ON popsell.ambassadors (popsell_internal._lookup_key(email));
CREATE UNIQUE INDEX ambassadors_sso_subject_key ON popsell.ambassadors (popsell_internal._lookup_key(sso_subject));
CREATE INDEX ambassadors_deletion_due_idx ON popsell.ambassadors (deletion_due_at)
    WHERE deletion_due_at IS NOT NULL;
CREATE INDEX ambassadors_inactivity_idx ON popsell.ambassadors ((coalesce(last_login_at, created_at)));

CREATE TABLE popsell.social_grants (
    id            bigserial PRIMARY KEY,
    ambassador_id bigint NOT NULL REFERENCES popsell.ambassadors (id) ON DELETE CASCADE,
    network       text NOT NULL CONSTRAINT social_grants_network_bounded CHECK (octet_length(network) <= 256),
    account_id    text CONSTRAINT social_grants_account_id_bounded CHECK (octet_length(account_id) <= 256),
    scopes        text[] NOT NULL DEFAULT '{}',
    granted_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at    timestamptz,
    revoked_at    timestamptz
);
COMMENT ON TABLE popsell.social_grants IS 'An ambassador''s grants to social networks.';
CREATE INDEX social_grants_ambassador_idx ON popsell.social_grants (ambassador_id);

CREATE TABLE popsell.registration_whitelist (
    id               bigserial PRIMARY KEY,
    email_hash       bytea,
    customer_id_hash bytea,
    key_id           integer NOT NULL REFERENCES popsell.hash_keys (key_id),
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CHECK (num_nonnulls(email_hash, customer_id_hash) = 1)
);
COMMENT ON TABLE popsell.registration_whitelist IS
    'Hashed emails and customer ids allowed to sign up; an empty whitelist allows everyone.';
CREATE INDEX registration_whitelist_email_idx ON popsell.registration_whitelist (email_hash);
CREATE INDEX registration_whitelist_customer_idx ON popsell.registration_whitelist (customer_id_hash);

CREATE TABLE popsell.contacts (
    id                  bigserial PRIMARY KEY,
    ambassador_id       bigint REFERENCES popsell.ambassadors (id) ON DELETE SET NULL,
    source              popsell.contact_source NOT NULL,
    first_name          text,
    last_name           text,
    email               text,
    email_status        popsell.email_status NOT NULL,
    facebook_id         text,
    twitter_id          text,
    instagram_id        text,
    public_photo_url    text,
    customer_id         text,
    ambassador_optin    popsell.ambassador_optin NOT NULL,
    ambassador_optin_at timestamptz NOT NULL,
    brand_optin         popsell.brand_optin NOT NULL,
    brand_optin_at      timestamptz NOT NULL,
    partners_optin      boolean NOT NULL DEFAULT false,
    partners_optin_at   timestamptz,
    contact_type        popsell.contact_type NOT NULL DEFAULT 'prospect',
    notes               text,
    address             text,
    city                text,
    postal_code         text,
    country             text,
    mobile_phone        text,
    home_phone          text,
    tags                text[] NOT NULL DEFAULT '{}',
    restricted          boolean NOT NULL DEFAULT false,
    email_confirmed_at  timestamptz,
    invitation_sent_at  timestamptz,
    invitations_sent    integer NOT NULL DEFAULT 0 CHECK (invitations_sent >= 0),
    reminder_sent_at    timestamptz,
    last_activity_at    timestamptz,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by          name,
    modified_at         timestamptz,
    modified_by         name,
    -- (v2) Bounded at write (SPEC section 8): social ids, customer ids and
    -- names 256 octets, phones 64, URLs and addresses 1024, notes 10000.
    CONSTRAINT contacts_bounded_text CHECK (
        octet_length(first_name) <= 256 AND octet_length(last_name) <= 256
        AND octet_length(email) <= 254 AND octet_length(facebook_id) <= 256
        AND octet_length(twitter_id) <= 256 AND octet_length(instagram_id) <= 256
        AND octet_length(public_photo_url) <= 1024 AND octet_length(customer_id) <= 256
        AND octet_length(notes) <= 10000 AND octet_length(address) <= 1024
        AND octet_length(city) <= 256 AND octet_length(postal_code) <= 256
        AND octet_length(country) <= 256 AND octet_length(mobile_phone) <= 64
        AND octet_length(home_phone) <= 64),
    CONSTRAINT contacts_has_personal_field CHECK (
        num_nonnulls(nullif(first_name, ''), nullif(last_name, ''), nullif(email, ''),
                     nullif(facebook_id, ''), nullif(twitter_id, ''), nullif(instagram_id, ''),
                     nullif(public_photo_url, ''), nullif(customer_id, ''),
                     nullif(mobile_phone, ''), nullif(home_phone, ''), nullif(address, '')) > 0)
);
COMMENT ON TABLE popsell.contacts IS
    'Ambassadors'' CRM contacts and their consents. INSERT/UPDATE obey the consent rules (C triggers); DELETE is the erasure.';

-- Reading paths: an ambassador's CRM, lookups by (normalized) email.
CREATE INDEX contacts_ambassador_idx ON popsell.contacts (ambassador_id, id);
-- Emails are indexed by lookup key (SPEC S11); the brand's index holds
-- only the rows its policy shows (the predicate is that policy).
-- contacts_email_idx has no predicate: a partial index is planned as a full
-- scan, in key order, for any query whose own condition implies its
-- predicate (such as "email IS NOT NULL" with sequential and bitmap scans
-- off), and "Rows Removed by Filter" then counts the hidden rows whose key
-- sorts below the first visible one.  The key function is STRICT, so a
-- NULL email gets a NULL key.  The ambassador is its second column: a
-- lookup made for one ambassador (its duplicate check, its imports and
-- invitations) descends to that ambassador's entries only, so the index's
-- pg_stat counters, read by the caller's backend, count no other
-- ambassador's rows; lookups across ambassadors use the key alone.
CREATE INDEX contacts_email_idx ON popsell.contacts (popsell_internal._lookup_key(email), ambassador_id);
-- The predicate is the policy's rule (popsell.brand_sees) under the name
-- popsell_internal._brand_sees, which popsell.brand_contacts_by_email
-- writes (so the planner matches the index to its query) and no
-- restricted role can (so none of their queries is planned on it).
CREATE INDEX contacts_brand_email_idx ON popsell.contacts (popsell_internal._brand_lookup_key(email))
    WHERE popsell_internal._brand_sees(restricted, source, email_confirmed_at, brand_optin, partners_optin);
-- One index per retention rule, matching its predicate (SPEC section 7),
-- so a rule's cost follows the rows it acts on.  The INCLUDE columns are
-- the rest of the rule's predicate (brand visibility, restriction): its
-- count (maintenance_preview, the compliance report's outlook) is an
-- index-only scan where the visibility map is fresh, never a heap read of
-- every candidate row.
CREATE INDEX contacts_never_invited_idx ON popsell.contacts (ambassador_optin_at)
    INCLUDE (brand_optin, partners_optin, restricted)
    WHERE ambassador_optin = 'new';
CREATE INDEX contacts_invitation_sent_idx ON popsell.contacts (invitation_sent_at)
    WHERE ambassador_optin = 'invitation_sent';
CREATE INDEX contacts_unconfirmed_idx ON popsell.contacts (created_at)
    INCLUDE (restricted)
    WHERE popsell.is_pending_confirmation(source, email_confirmed_at);
CREATE INDEX contacts_opted_out_idx ON popsell.contacts (ambassador_optin_at)
    INCLUDE (brand_optin, partners_optin, restricted)
    WHERE popsell.is_opted_out(ambassador_optin);
-- contact_inactive covers every contact but the restricted ones (v2).
CREATE INDEX contacts_inactivity_idx ON popsell.contacts
    ((greatest(last_activity_at, ambassador_optin_at, brand_optin_at, created_at)))
    WHERE NOT restricted;

-- Blacklist: hashed emails only (SPEC C3).
CREATE TABLE popsell.blacklist (
    email_hash bytea NOT NULL,
    key_id     integer NOT NULL REFERENCES popsell.hash_keys (key_id),
    reason     popsell.blacklist_reason NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (email_hash, reason)
);
-- Probed once per inserted contact: a hash index reaches the entry in
-- fewer page reads than the primary key's btree.
CREATE INDEX blacklist_email_hash_idx ON popsell.blacklist USING hash (email_hash);
COMMENT ON TABLE popsell.blacklist IS
    'Keyed hashes of emails that must never be contacted again (global opt-out) or are undeliverable (spam, hard bounce, blocked). No plaintext.';

CREATE TABLE popsell.contests (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    reuse_until timestamptz
);
COMMENT ON TABLE popsell.contests IS 'Brand contests; their UGC may be reused until reuse_until.';

CREATE TABLE popsell.publications (
    id            bigserial PRIMARY KEY,
    ambassador_id bigint REFERENCES popsell.ambassadors (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    comment       text CONSTRAINT publications_comment_bounded CHECK (octet_length(comment) <= 10000)
);
COMMENT ON TABLE popsell.publications IS 'Publications an ambassador shares by email or social networks.';
CREATE INDEX publications_ambassador_idx ON popsell.publications (ambassador_id);

CREATE TABLE popsell.ugc (
    id            bigserial PRIMARY KEY,
    ambassador_id bigint REFERENCES popsell.ambassadors (id) ON DELETE SET NULL,
    contest_id    bigint REFERENCES popsell.contests (id) ON DELETE SET NULL,
    file_path     text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE popsell.ugc IS
    'User generated content (photos). Kept past its ambassador''s deletion only for a contest, until the contest''s reuse end.';
CREATE INDEX ugc_ambassador_idx ON popsell.ugc (ambassador_id);
CREATE INDEX ugc_orphan_contest_idx ON popsell.ugc (contest_id) WHERE ambassador_id IS NULL;

CREATE TABLE popsell.community_reactions (
    id             bigserial PRIMARY KEY,
    ambassador_id  bigint NOT NULL REFERENCES popsell.ambassadors (id) ON DELETE CASCADE,
    publication_id bigint REFERENCES popsell.publications (id) ON DELETE CASCADE,
    kind           text NOT NULL CHECK (kind IN ('like', 'comment')),
    body           text CONSTRAINT community_reactions_body_bounded CHECK (octet_length(body) <= 10000),
    created_at     timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE popsell.community_reactions IS 'Likes and comments between ambassadors.';
CREATE INDEX community_reactions_ambassador_idx ON popsell.community_reactions (ambassador_id);
CREATE INDEX community_reactions_publication_idx ON popsell.community_reactions (publication_id);

CREATE TABLE popsell.gamification (
    ambassador_id bigint PRIMARY KEY REFERENCES popsell.ambassadors (id) ON DELETE CASCADE,
    score         integer NOT NULL DEFAULT 0,
    level         integer NOT NULL DEFAULT 1,
    badges        text[] NOT NULL DEFAULT '{}',
    awards        jsonb NOT NULL DEFAULT '[]'
);
COMMENT ON TABLE popsell.gamification IS 'Score, level, badges and awards of an ambassador.';

CREATE TABLE popsell.contact_tombstones (
    id                bigserial PRIMARY KEY,
    contact_id        bigint NOT NULL,
    ambassador_id     bigint,
    source            popsell.contact_source NOT NULL,
    ambassador_optin  popsell.ambassador_optin,
    brand_optin       popsell.brand_optin,
    partners_optin    boolean,
    key_id            integer,       -- a live key; keys are never deleted
    email_hash        bytea,
    facebook_id_hash  bytea,
    twitter_id_hash   bytea,
    instagram_id_hash bytea,
    city              text,
    postal_code       text,
    deleted_at        timestamptz NOT NULL DEFAULT pg_catalog.now(),
    reason            text NOT NULL
);
COMMENT ON TABLE popsell.contact_tombstones IS
    'What is kept of an erased contact: keyed hashes, city, postal code, ambassador id, source and last opt-ins. No plaintext personal data.';
CREATE INDEX contact_tombstones_email_idx ON popsell.contact_tombstones (email_hash);

CREATE TABLE popsell.ambassador_tombstones (
    id                bigserial PRIMARY KEY,
    ambassador_id     bigint NOT NULL,
    created_at        timestamptz,
    key_id            integer REFERENCES popsell.hash_keys (key_id),
    email_hash        bytea,
    customer_id_hash  bytea,
    facebook_id_hash  bytea,
    city              text,
    postal_code       text,
    birth_year        integer,
    deleted_at        timestamptz NOT NULL DEFAULT pg_catalog.now(),
    reason            text NOT NULL
);
COMMENT ON TABLE popsell.ambassador_tombstones IS
    'What is kept of an erased ambassador: signup date, keyed hashes, city, postal code, birth year.';
CREATE INDEX ambassador_tombstones_email_idx ON popsell.ambassador_tombstones (email_hash);

CREATE TABLE popsell.interactions (
    id                   bigserial PRIMARY KEY,
    -- no foreign key to contacts: the erasure trigger re-points the row
    -- to the tombstone, and an insert trigger checks the contact exists
    contact_id           bigint,
    contact_tombstone_id bigint REFERENCES popsell.contact_tombstones (id) ON DELETE SET NULL,
    publication_id       bigint REFERENCES popsell.publications (id) ON DELETE SET NULL,
    channel              text NOT NULL DEFAULT 'email',
    kind                 popsell.interaction_kind NOT NULL,
    occurred_at          timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE popsell.interactions IS
    'Opens, clicks, likes, comments and reshares of publications by contacts; every kind but open is an activity.';
CREATE INDEX interactions_contact_idx ON popsell.interactions (contact_id);
CREATE INDEX interactions_publication_idx ON popsell.interactions (publication_id);

CREATE TABLE popsell.sales (
    id                   bigserial PRIMARY KEY,
    contact_id           bigint,             -- see popsell.interactions
    contact_tombstone_id bigint REFERENCES popsell.contact_tombstones (id) ON DELETE SET NULL,
    ambassador_id        bigint REFERENCES popsell.ambassadors (id) ON DELETE SET NULL,
    publication_id       bigint REFERENCES popsell.publications (id) ON DELETE SET NULL,
    sold_at              timestamptz NOT NULL DEFAULT pg_catalog.now(),
    amount               numeric(14, 2) NOT NULL CHECK (amount >= 0),
    currency             char(3) NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$'),
    products             jsonb,
    channel              popsell.sale_channel NOT NULL DEFAULT 'online'
);
COMMENT ON TABLE popsell.sales IS
    'Sales attributed to an ambassador and a contact; amounts survive erasure for statistics.';
CREATE INDEX sales_contact_idx ON popsell.sales (contact_id);
CREATE INDEX sales_ambassador_idx ON popsell.sales (ambassador_id);

CREATE TABLE popsell.activity_log (
    id            bigserial PRIMARY KEY,
    ambassador_id bigint REFERENCES popsell.ambassadors (id) ON DELETE CASCADE,
    kind          text NOT NULL CONSTRAINT activity_log_kind_bounded CHECK (octet_length(kind) <= 256),
    ip_hash       bytea,
    user_agent    text CONSTRAINT activity_log_user_agent_bounded CHECK (octet_length(user_agent) <= 1024),
    created_at    timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE popsell.activity_log IS
    'Ambassador activity for anti-fraud: IPs are hashed at write time, never stored plain.';
CREATE INDEX activity_log_ambassador_idx ON popsell.activity_log (ambassador_id);
CREATE INDEX activity_log_created_idx ON popsell.activity_log (created_at);

-- Consent ledger: one row per accepted change (or initial state), listing
-- which opt-ins changed with old and new values.
CREATE TABLE popsell.consent_events (
    id                   bigserial PRIMARY KEY,
    contact_id           bigint,
    contact_tombstone_id bigint REFERENCES popsell.contact_tombstones (id) ON DELETE SET NULL,
    ambassador_id        bigint,
    changed              text[] NOT NULL,
    old_ambassador_optin popsell.ambassador_optin,
    new_ambassador_optin popsell.ambassador_optin,
    old_brand_optin      popsell.brand_optin,
    new_brand_optin      popsell.brand_optin,
    old_partners_optin   boolean,
    new_partners_optin   boolean,
    old_email_status     popsell.email_status,
    new_email_status     popsell.email_status,
    source               popsell.contact_source,
    actor                popsell.consent_actor NOT NULL,
    path                 text NOT NULL,
    actor_role           name NOT NULL,
    -- (v2, S13) a version or hash of the consent text, never free text:
    -- the ledger survives erasure, so it must hold no name or address
    consent_text         text CONSTRAINT consent_events_consent_text_version
                         CHECK (consent_text ~ '^[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,127}$'),
    note                 text,
    occurred_at          timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE popsell.consent_events IS
    'Append-only proof of every opt-in and email status change: which fields, old and new values, source, actor, acting role, time.';
CREATE INDEX consent_events_contact_idx ON popsell.consent_events (contact_id);
CREATE INDEX consent_events_tombstone_idx ON popsell.consent_events (contact_tombstone_id)
    WHERE contact_tombstone_id IS NOT NULL;

CREATE TABLE popsell.outbox (
    id             bigserial PRIMARY KEY,
    kind           popsell.outbox_kind NOT NULL,
    ambassador_id  bigint REFERENCES popsell.ambassadors (id) ON DELETE SET NULL,
    contact_id     bigint,                   -- see popsell.interactions
    publication_id bigint REFERENCES popsell.publications (id) ON DELETE SET NULL,
    payload        jsonb NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    sent_at        timestamptz
);
COMMENT ON TABLE popsell.outbox IS
    'Emails and file deletions the application must carry out; NOTIFY popsell_outbox on insert. popsell never sends mail itself.';
CREATE INDEX outbox_unsent_idx ON popsell.outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_contact_idx ON popsell.outbox (contact_id);
CREATE INDEX outbox_ambassador_idx ON popsell.outbox (ambassador_id);

CREATE TABLE popsell.maintenance_runs (
    id          bigserial PRIMARY KEY,
    run_id      bigint NOT NULL,
    rule        text NOT NULL,
    affected    bigint NOT NULL,
    as_of       timestamptz NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    finished_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    run_by      name NOT NULL DEFAULT pg_catalog.current_user(),
    failed_sqlstate text,
    outcome     text NOT NULL DEFAULT 'done'
                CONSTRAINT maintenance_runs_outcome CHECK (outcome IN ('done', 'failed', 'skipped')),
    skipped_rows bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE popsell.maintenance_runs IS
    'One row per retention rule per run of popsell.run_maintenance, counts only; written in the same transaction as the rule''s work.';
CREATE INDEX maintenance_runs_run_idx ON popsell.maintenance_runs (run_id);
CREATE INDEX maintenance_runs_finished_idx ON popsell.maintenance_runs (finished_at);
CREATE SEQUENCE popsell.maintenance_run_id_seq;
COMMENT ON SEQUENCE popsell.maintenance_run_id_seq IS 'Run numbers of popsell.run_maintenance.';
