-- popsell--1.0.sql: install script, assembled from src/sql/*.sql in name order.
-- Sections mirror SPEC.md: types, roles, tables, C functions, consent
-- events, security, erasure and retention, lifecycle and rights.

\echo Use "CREATE EXTENSION popsell CASCADE" to load this file. \quit

-- The control file names schema popsell; PostgreSQL creates it for us, but
-- reuses one that already exists.  A schema planted beforehand by another
-- role could hold look-alike objects (CVE-2022-2625), so refuse it.
DO $$
DECLARE
    owner_is_us boolean;
    foreign_objects bigint;
BEGIN
    SELECT n.nspowner OPERATOR(pg_catalog.=) r.oid
      INTO owner_is_us
      FROM pg_catalog.pg_namespace n, pg_catalog.pg_roles r
     WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
       AND r.rolname OPERATOR(pg_catalog.=) pg_catalog.current_user();
    SELECT pg_catalog.count(*) INTO foreign_objects
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell';
    IF NOT coalesce(owner_is_us, false) OR foreign_objects OPERATOR(pg_catalog.>) 0 THEN
        RAISE EXCEPTION 'schema popsell already exists and was not created for this extension'
            USING ERRCODE = 'PS001',
                  HINT = 'Drop or rename the existing schema popsell, then run CREATE EXTENSION popsell again.';
    END IF;
END
$$;
-- ===================================================================
-- Types.  Labels and their order are public interface (SPEC section 3).
-- ===================================================================

CREATE TYPE popsell.ambassador_optin AS ENUM (
    'new', 'invitation_sent', 'invitation_accepted', 'invitation_declined',
    'optout_email', 'optout_no_response', 'global_optout', 'social_media_only',
    'optin_brand_imported', 'optin_blog_pending', 'optin_blog_verified',
    'optin_internal_form', 'optin_external_form', 'optin_order',
    'optin_order_popin', 'optin_other', 'storage_only');
COMMENT ON TYPE popsell.ambassador_optin IS
    'A contact''s consent to receive publications from its ambassador (the guide''s 17 states, in its order).';

CREATE TYPE popsell.brand_optin AS ENUM (
    'no_optin', 'optin_blog', 'optin_internal_form', 'optin_external_form',
    'optin_brand_database', 'storage_only');
COMMENT ON TYPE popsell.brand_optin IS
    'A contact''s consent to be contacted by the brand itself.';

CREATE TYPE popsell.email_status AS ENUM (
    'ok', 'spam', 'hard_bounce', 'soft_bounce', 'blocked', 'unverified');
COMMENT ON TYPE popsell.email_status IS
    'Deliverability of a contact''s email; every value but ok blocks sending.';

CREATE TYPE popsell.contact_source AS ENUM (
    'crm_manual', 'private_import', 'brand_sync', 'social_network', 'blog',
    'blog_internal_form', 'order', 'order_popin', 'store_purchase',
    'external_form');
COMMENT ON TYPE popsell.contact_source IS
    'How a contact was collected (the guide''s ten mechanisms); fixes its initial consent.';

CREATE TYPE popsell.contact_type AS ENUM ('hostess', 'customer', 'prospect');
COMMENT ON TYPE popsell.contact_type IS 'Business category of a contact.';

CREATE TYPE popsell.ambassador_kind AS ENUM ('customer', 'sales_rep', 'employee');
COMMENT ON TYPE popsell.ambassador_kind IS
    'Who the ambassador is to the brand; only sales_rep and employee receive brand_sync contacts.';

CREATE TYPE popsell.ambassador_status AS ENUM ('signup_incomplete', 'active', 'leaving');
COMMENT ON TYPE popsell.ambassador_status IS
    'Account state: only active ambassadors have access; leaving ones await deletion.';

CREATE TYPE popsell.blacklist_reason AS ENUM ('global_optout', 'spam', 'hard_bounce', 'blocked');
COMMENT ON TYPE popsell.blacklist_reason IS
    'Why a hashed email is on the blacklist.';

CREATE TYPE popsell.interaction_kind AS ENUM ('open', 'click', 'like', 'comment', 'reshare');
COMMENT ON TYPE popsell.interaction_kind IS
    'Reaction of a contact to a publication; every kind but open is an activity.';

CREATE TYPE popsell.sale_channel AS ENUM ('online', 'store');
COMMENT ON TYPE popsell.sale_channel IS 'Where a sale happened.';

CREATE TYPE popsell.outbox_kind AS ENUM (
    'invitation', 'invitation_reminder', 'email_confirmation',
    'inactivity_warning', 'suspension_notice', 'publication', 'delete_file',
    'partner_erasure', 'deletion_notice');
COMMENT ON TYPE popsell.outbox_kind IS
    'What the application must carry out for an outbox row (popsell never sends mail itself).';

CREATE TYPE popsell.consent_actor AS ENUM (
    'contact', 'ambassador', 'staff', 'brand_sync', 'system');
COMMENT ON TYPE popsell.consent_actor IS
    'Who made a consent change; fixed by the path (function or role), never by a caller''s value.';
-- ===================================================================
-- Roles (SPEC section 2).  Roles are cluster-wide: a second brand database
-- in the same cluster reuses them.  A role that already exists is reused
-- only if it cannot bypass row security.
-- ===================================================================

DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT v.rolname, v.can_login
          FROM (VALUES ('popsell_owner', false),
                       ('popsell_ambassador', false),
                       ('popsell_brand', false),
                       ('popsell_brand_bi', false),
                       ('popsell_account_team', false),
                       ('popsell_technical', false),
                       ('popsell_app', false),
                       ('popsell_maintenance', true)) AS v(rolname, can_login)
    LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                    WHERE rolname OPERATOR(pg_catalog.=) r.rolname
                      AND (rolsuper OR rolbypassrls)) THEN
            RAISE EXCEPTION 'role % is a superuser or has BYPASSRLS', r.rolname
                USING ERRCODE = 'PS001',
                      DETAIL = 'popsell roles must be subject to row level security.',
                      HINT = pg_catalog.format('ALTER ROLE %I NOSUPERUSER NOBYPASSRLS, then retry.', r.rolname);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                        WHERE rolname OPERATOR(pg_catalog.=) r.rolname) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I %s NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS',
                                      r.rolname,
                                      CASE WHEN r.can_login THEN 'LOGIN' ELSE 'NOLOGIN' END);
        END IF;
    END LOOP;
END
$$;

COMMENT ON ROLE popsell_owner IS 'popsell: NOLOGIN owner of popsell''s tables and privileged functions.';
COMMENT ON ROLE popsell_ambassador IS 'popsell: the ambassador-facing application acting as one ambassador.';
COMMENT ON ROLE popsell_brand IS 'popsell: brand administrators, support agents and community managers.';
COMMENT ON ROLE popsell_brand_bi IS 'popsell: brand BI tools, read-only, through views.';
COMMENT ON ROLE popsell_account_team IS 'popsell: the vendor''s community managers and support agents (all data of the brand).';
COMMENT ON ROLE popsell_technical IS 'popsell: the vendor''s developers and administrators (all data).';
COMMENT ON ROLE popsell_app IS 'popsell: trusted application login roles acting on behalf of an ambassador or a contact.';
COMMENT ON ROLE popsell_maintenance IS 'popsell: non-superuser login role that scheduled jobs (pg_cron) run as.';
-- ===================================================================
-- Tables (SPEC section 3).  Columns named in SPEC.md are public; the rest
-- are popsell's bookkeeping.  Personal-data tables get row level security
-- in the security section.
-- ===================================================================

-- The brand's configuration: exactly one row (the primary key is a
-- constant true).
CREATE TABLE popsell.settings (
    id                            boolean PRIMARY KEY DEFAULT true CHECK (id),
    brand_name                    text,
    deletion_grace                interval NOT NULL DEFAULT '7 days',
    ambassador_inactivity         interval NOT NULL DEFAULT '3 years',
    inactivity_warnings           integer  NOT NULL DEFAULT 2 CHECK (inactivity_warnings BETWEEN 0 AND 10),
    inactivity_warning_interval   interval NOT NULL DEFAULT '15 days',
    new_contact_invitation_window interval NOT NULL DEFAULT '30 days',
    invitation_response_window    interval NOT NULL DEFAULT '15 days',
    email_confirmation_window     interval NOT NULL DEFAULT '15 days',
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
    CHECK (deletion_grace >= '0'::interval AND ambassador_inactivity > '0'::interval
           AND inactivity_warning_interval >= '0'::interval
           AND new_contact_invitation_window > '0'::interval
           AND invitation_response_window > '0'::interval
           AND email_confirmation_window > '0'::interval
           AND optout_retention >= '0'::interval AND contact_inactivity > '0'::interval
           AND suspension_max >= '0'::interval AND log_retention >= '0'::interval)
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
    sso_subject              text UNIQUE,
    inactivity_warnings_sent integer NOT NULL DEFAULT 0,
    last_inactivity_warning_at timestamptz,
    CONSTRAINT ambassadors_active_needs_terms
        CHECK (status <> 'active' OR terms_accepted_at IS NOT NULL),
    CONSTRAINT ambassadors_leaving_needs_due
        CHECK (status <> 'leaving' OR deletion_due_at IS NOT NULL)
);
COMMENT ON TABLE popsell.ambassadors IS
    'Ambassadors (micro-influencers, sales reps, employees). DELETE is the erasure: a tombstone keeps only hashes, city, postal code and birth year.';
CREATE UNIQUE INDEX ambassadors_email_key ON popsell.ambassadors (email);
CREATE INDEX ambassadors_deletion_due_idx ON popsell.ambassadors (deletion_due_at)
    WHERE deletion_due_at IS NOT NULL;
CREATE INDEX ambassadors_inactivity_idx ON popsell.ambassadors ((coalesce(last_login_at, created_at)));

CREATE TABLE popsell.social_grants (
    id            bigserial PRIMARY KEY,
    ambassador_id bigint NOT NULL REFERENCES popsell.ambassadors (id) ON DELETE CASCADE,
    network       text NOT NULL,
    account_id    text,
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
CREATE INDEX contacts_email_idx ON popsell.contacts (email) WHERE email IS NOT NULL;
-- One index per retention rule, matching its predicate (SPEC section 7),
-- so a rule's cost follows the rows it acts on.
CREATE INDEX contacts_never_invited_idx ON popsell.contacts (ambassador_optin_at)
    WHERE ambassador_optin = 'new';
CREATE INDEX contacts_invitation_sent_idx ON popsell.contacts (invitation_sent_at)
    WHERE ambassador_optin = 'invitation_sent';
CREATE INDEX contacts_unconfirmed_idx ON popsell.contacts (created_at)
    WHERE email_confirmed_at IS NULL AND source IN ('blog', 'blog_internal_form', 'store_purchase');
CREATE INDEX contacts_opted_out_idx ON popsell.contacts (ambassador_optin_at)
    WHERE ambassador_optin IN ('invitation_declined', 'optout_email', 'optout_no_response',
                               'global_optout', 'optin_blog_pending');
CREATE INDEX contacts_inactivity_idx ON popsell.contacts
    ((greatest(last_activity_at, ambassador_optin_at, created_at)))
    WHERE ambassador_optin NOT IN ('invitation_declined', 'optout_email', 'optout_no_response',
                                   'global_optout', 'optin_blog_pending')
      AND source <> 'brand_sync';

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
    comment       text
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
    body           text,
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
    key_id            integer REFERENCES popsell.hash_keys (key_id),
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
    contact_id           bigint REFERENCES popsell.contacts (id) ON DELETE SET NULL,
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
    contact_id           bigint REFERENCES popsell.contacts (id) ON DELETE SET NULL,
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
    kind          text NOT NULL,
    ip_hash       bytea,
    user_agent    text,
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
    consent_text         text,
    note                 text,
    occurred_at          timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE popsell.consent_events IS
    'Append-only proof of every opt-in and email status change: which fields, old and new values, source, actor, acting role, time.';
CREATE INDEX consent_events_contact_idx ON popsell.consent_events (contact_id);
CREATE INDEX consent_events_tombstone_idx ON popsell.consent_events (contact_tombstone_id);

CREATE TABLE popsell.outbox (
    id             bigserial PRIMARY KEY,
    kind           popsell.outbox_kind NOT NULL,
    ambassador_id  bigint REFERENCES popsell.ambassadors (id) ON DELETE SET NULL,
    contact_id     bigint REFERENCES popsell.contacts (id) ON DELETE SET NULL,
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
    run_by      name NOT NULL DEFAULT pg_catalog.current_user()
);
COMMENT ON TABLE popsell.maintenance_runs IS
    'One row per retention rule per run of popsell.run_maintenance, counts only; written in the same transaction as the rule''s work.';
CREATE INDEX maintenance_runs_run_idx ON popsell.maintenance_runs (run_id);
CREATE INDEX maintenance_runs_finished_idx ON popsell.maintenance_runs (finished_at);
CREATE SEQUENCE popsell.maintenance_run_id_seq;
COMMENT ON SEQUENCE popsell.maintenance_run_id_seq IS 'Run numbers of popsell.run_maintenance.';
-- ===================================================================
-- pgcrypto (bcrypt).  pgcrypto may live in any schema; these wrappers
-- are created with that schema written in, the way @extschema:pgcrypto@
-- does on PostgreSQL 16, so nothing is resolved through search_path.
-- ===================================================================

DO $$
DECLARE
    s name;
BEGIN
    SELECT n.nspname INTO s
      FROM pg_catalog.pg_extension e
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
     WHERE e.extname OPERATOR(pg_catalog.=) 'pgcrypto';
    IF s IS NULL THEN
        RAISE EXCEPTION 'popsell requires pgcrypto' USING ERRCODE = 'PS001',
            HINT = 'CREATE EXTENSION popsell CASCADE;';
    END IF;
    EXECUTE pg_catalog.format($f$
        CREATE FUNCTION popsell._bcrypt(password text, salt text) RETURNS text
            LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
            SET search_path = pg_catalog, pg_temp
            RETURN %I.crypt(password, salt)$f$, s);
    EXECUTE pg_catalog.format($f$
        CREATE FUNCTION popsell._bcrypt_salt(cost integer) RETURNS text
            LANGUAGE sql VOLATILE STRICT
            SET search_path = pg_catalog, pg_temp
            RETURN %I.gen_salt('bf', cost)$f$, s);
END
$$;
COMMENT ON FUNCTION popsell._bcrypt(text, text) IS
    'Internal: pgcrypto crypt(), schema-qualified at install.';
COMMENT ON FUNCTION popsell._bcrypt_salt(integer) IS
    'Internal: a bcrypt salt of the given cost from pgcrypto gen_salt().';
-- ===================================================================
-- C functions and the triggers that enforce the rules (SPEC sections 2,
-- 4 and 6).  Creating the first C function loads the library, which
-- defines the popsell.* settings used below.
-- ===================================================================

CREATE FUNCTION popsell.current_ambassador_id() RETURNS bigint
    LANGUAGE c STABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'current_ambassador_id';
COMMENT ON FUNCTION popsell.current_ambassador_id() IS
    'The active ambassador the current transaction acts as: by login_role, else by popsell.ambassador_id set by a trusted app; NULL for nobody.';

CREATE FUNCTION popsell._random_bytes(n integer) RETURNS bytea
    LANGUAGE c VOLATILE STRICT
    AS 'MODULE_PATHNAME', 'popsell_random_bytes';
COMMENT ON FUNCTION popsell._random_bytes(integer) IS
    'Internal: N bytes from the server''s strong random source (keys).';

-- The brand's first key, from the strong random source.
INSERT INTO popsell.hash_keys (key_id, secret) VALUES (1, popsell._random_bytes(32));

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

CREATE FUNCTION popsell.hash_email(email text) RETURNS bytea
    LANGUAGE c STABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'hash_email';
COMMENT ON FUNCTION popsell.hash_email(text) IS
    'Keyed HMAC-SHA-256 of the normalized email under the brand''s newest key (plain SHA-256 for a legacy key).';

CREATE FUNCTION popsell.hash_identifier(value text) RETURNS bytea
    LANGUAGE c STABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'hash_email';
COMMENT ON FUNCTION popsell.hash_identifier(text) IS
    'Keyed hash of any identifier (customer id, social id, IP), normalized like an email.';

CREATE FUNCTION popsell.email_hashes(email text) RETURNS bytea[]
    LANGUAGE c STABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'email_hashes';
COMMENT ON FUNCTION popsell.email_hashes(text) IS
    'The email''s hash under every live key, newest first: what blacklist and tombstone lookups compare with.';

CREATE FUNCTION popsell.hash_key_id() RETURNS integer
    LANGUAGE c STABLE PARALLEL SAFE
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

-- Only popsell's own functions (owned by popsell_owner) set the path and
-- the as-of time; only trusted applications say which ambassador they act
-- for.  These settings are PGC_SUSET, so nobody else can.
GRANT SET ON PARAMETER popsell.actor TO popsell_owner;
GRANT SET ON PARAMETER popsell.as_of TO popsell_owner;
GRANT SET ON PARAMETER popsell.ambassador_id TO popsell_app;
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
         WHERE email = e AND ambassador_optin <> 'global_optout';
    ELSE
        UPDATE popsell.contacts SET email_status = p_reason::text::popsell.email_status
         WHERE email = e AND email_status NOT IN ('spam', 'hard_bounce', 'blocked');
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
            USING ERRCODE = '22023',
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
            USING ERRCODE = '22023',
                  HINT = 'Use popsell.contacts column names for personal fields; consent comes from the source.';
    END IF;

    candidates := jsonb_array_length(contacts);

    -- Duplicates: the same email already in this CRM, or earlier in the list.
    WITH input AS (
        SELECT x.ord, popsell.normalize_email(nullif(btrim(x.o ->> 'email'), '')) AS nemail
          FROM jsonb_array_elements(contacts) WITH ORDINALITY AS x(o, ord)),
    ranked AS (
        SELECT i.*, row_number() OVER (PARTITION BY i.nemail ORDER BY i.ord) AS rn
          FROM input i WHERE i.nemail IS NOT NULL)
    SELECT count(*) INTO duplicates
      FROM ranked r
     WHERE (r.rn > 1
            OR EXISTS (SELECT 1 FROM popsell.contacts c WHERE c.ambassador_id = amb AND c.email = r.nemail))
       AND NOT popsell._globally_opted_out(r.nemail);

    WITH input AS (
        SELECT x.ord, p.*, popsell.normalize_email(nullif(btrim(p.email), '')) AS nemail
          FROM jsonb_array_elements(contacts) WITH ORDINALITY AS x(o, ord)
          CROSS JOIN LATERAL jsonb_populate_record(NULL::popsell.contacts, x.o) AS p),
    ranked AS (
        SELECT i.*, row_number() OVER (PARTITION BY i.nemail ORDER BY i.ord) AS rn
          FROM input i),
    keep AS (
        SELECT r.* FROM ranked r
         WHERE r.nemail IS NULL
            OR (r.rn = 1 AND NOT EXISTS (SELECT 1 FROM popsell.contacts c
                                          WHERE c.ambassador_id = amb AND c.email = r.nemail))
            -- blacklisted rows go on to the trigger, which skips and we count them
            OR popsell._globally_opted_out(r.nemail))
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
      FROM keep k
     ORDER BY k.ord;
    GET DIAGNOSTICS inserted = ROW_COUNT;

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
            USING ERRCODE = '22023',
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
            USING ERRCODE = '22023',
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

    IF new_id IS NOT NULL AND source IN ('blog', 'blog_internal_form', 'store_purchase') THEN
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
    IF c.email_confirmed_at IS NOT NULL OR c.source NOT IN ('blog', 'blog_internal_form', 'store_purchase') THEN
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
            USING ERRCODE = '22023',
                  HINT = 'Report spam, hard_bounce, soft_bounce or blocked.';
    END IF;
    IF email IS NULL THEN
        RAISE EXCEPTION 'email must not be NULL'
            USING ERRCODE = 'PS202', HINT = 'Pass the address the provider reported.';
    END IF;
    e := popsell.normalize_email(email);
    IF status = 'soft_bounce' THEN
        UPDATE popsell.contacts SET email_status = 'soft_bounce'
         WHERE contacts.email = e AND email_status IN ('ok', 'unverified');
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
            USING ERRCODE = '22023', HINT = 'One of open, click, like, comment, reshare.';
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
            USING ERRCODE = '22023', HINT = 'Pass the amount in the sale''s currency.';
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
-- ===================================================================
-- Security (SPEC section 2, S5): who sees what.  Grants (least privilege,
-- table and column level), one row level security policy per SPEC role
-- and command on every table, and the views of each reading path.
--
-- Row security is enabled and forced on every table by 90_ownership.sql,
-- which also adds the popsell_owner_all policy.  Policies compare with the
-- caller through (SELECT popsell.current_ambassador_id()): a STABLE
-- function in an initplan, evaluated once per query, so the row predicate
-- left is plain column comparisons an index can serve.  Brand visibility
-- is written inline (a SQL helper with a SET clause would not be inlined).
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

GRANT USAGE ON SCHEMA popsell TO popsell_ambassador, popsell_brand, popsell_brand_bi,
    popsell_account_team, popsell_technical, popsell_app;
GRANT USAGE ON TYPE popsell.ambassador_optin, popsell.brand_optin, popsell.email_status,
    popsell.contact_source, popsell.contact_type, popsell.ambassador_kind,
    popsell.ambassador_status, popsell.blacklist_reason, popsell.interaction_kind,
    popsell.sale_channel, popsell.outbox_kind, popsell.consent_actor
    TO popsell_ambassador, popsell_brand, popsell_brand_bi, popsell_account_team,
       popsell_technical, popsell_app;

-- Harmless functions every role may call (identity, normalization, rules).
GRANT EXECUTE ON FUNCTION popsell.current_ambassador_id(), popsell.normalize_email(text),
    popsell.transition_rules(),
    popsell.transition_allowed(text, text, text, text, popsell.contact_source),
    popsell.initial_optins(popsell.contact_source, boolean, boolean, boolean),
    popsell.current_path(), popsell._caller_in(text)
    TO popsell_ambassador, popsell_brand, popsell_brand_bi, popsell_account_team,
       popsell_technical, popsell_app;

-- Event functions (SPEC section 5).  Paths where the contact acts (accept,
-- decline, confirm, opt out, collect) belong to trusted applications only:
-- an ambassador calling them would forge a consent.
GRANT EXECUTE ON FUNCTION popsell.import_contacts(bigint, jsonb),
    popsell.send_invitation(bigint), popsell.release_soft_bounce(bigint)
    TO popsell_ambassador, popsell_app, popsell_account_team, popsell_technical;
GRANT EXECUTE ON FUNCTION popsell.send_invitation(bigint) TO popsell_brand;
GRANT EXECUTE ON FUNCTION
    popsell.collect_contact(bigint, popsell.contact_source, jsonb, boolean, boolean, boolean),
    popsell.accept_invitation(bigint), popsell.decline_invitation(bigint),
    popsell.confirm_email(bigint), popsell.opt_out(bigint, boolean),
    popsell.email_callback(text, popsell.email_status)
    TO popsell_app;
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
GRANT SELECT, INSERT, UPDATE, DELETE ON popsell.ambassadors, popsell.contacts,
    popsell.social_grants, popsell.publications, popsell.ugc, popsell.community_reactions,
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
GRANT UPDATE (brand_name, deletion_grace, ambassador_inactivity, inactivity_warnings,
              inactivity_warning_interval, new_contact_invitation_window,
              invitation_response_window, email_confirmation_window, optout_retention,
              contact_inactivity, suspension_max, log_retention, community_name_format,
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
              deletion_due_at, login_role, sso_subject)
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
CREATE POLICY popsell_brand_select ON popsell.ambassadors FOR SELECT TO popsell_brand USING (true);
COMMENT ON POLICY popsell_brand_select ON popsell.ambassadors IS
    'The brand sees every ambassador, without secrets (column grants: no password hash).';
CREATE POLICY popsell_brand_update ON popsell.ambassadors FOR UPDATE TO popsell_brand
    USING (true) WITH CHECK (true);
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
GRANT UPDATE (first_name, last_name, email, facebook_id, twitter_id, instagram_id,
              public_photo_url, customer_id, ambassador_optin, contact_type, notes, address,
              city, postal_code, country, mobile_phone, home_phone, tags)
    ON popsell.contacts TO popsell_ambassador;
GRANT DELETE ON popsell.contacts TO popsell_ambassador;
GRANT USAGE ON SEQUENCE popsell.contacts_id_seq TO popsell_ambassador, popsell_app;

CREATE POLICY popsell_ambassador_select ON popsell.contacts FOR SELECT TO popsell_ambassador
    USING (ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id())
           AND NOT (source OPERATOR(pg_catalog.=) ANY ('{blog,blog_internal_form,store_purchase}'::popsell.contact_source[])
                    AND email_confirmed_at IS NULL));
COMMENT ON POLICY popsell_ambassador_select ON popsell.contacts IS
    'An ambassador reads its own contacts, not those pending email confirmation (no email column: see popsell.my_contacts).';
CREATE POLICY popsell_ambassador_insert ON popsell.contacts FOR INSERT TO popsell_ambassador
    WITH CHECK (ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id())
                AND source OPERATOR(pg_catalog.=) ANY ('{crm_manual,private_import}'::popsell.contact_source[]));
COMMENT ON POLICY popsell_ambassador_insert ON popsell.contacts IS
    'An ambassador adds contacts for itself, by hand or private import only (other sources carry a contact''s consent).';
CREATE POLICY popsell_ambassador_update ON popsell.contacts FOR UPDATE TO popsell_ambassador
    USING (ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id())
           AND NOT (source OPERATOR(pg_catalog.=) ANY ('{blog,blog_internal_form,store_purchase}'::popsell.contact_source[])
                    AND email_confirmed_at IS NULL))
    WITH CHECK (ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id()));
COMMENT ON POLICY popsell_ambassador_update ON popsell.contacts IS
    'An ambassador edits its own visible contacts and cannot hand them to someone else.';
CREATE POLICY popsell_ambassador_delete ON popsell.contacts FOR DELETE TO popsell_ambassador
    USING (ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id())
           AND NOT (source OPERATOR(pg_catalog.=) ANY ('{blog,blog_internal_form,store_purchase}'::popsell.contact_source[])
                    AND email_confirmed_at IS NULL));
COMMENT ON POLICY popsell_ambassador_delete ON popsell.contacts IS
    'An ambassador erases its own visible contacts.';

-- The brand: brand-visible contacts (brand or partners opt-in), not
-- pending confirmation, not restricted (GDPR art. 18).  Brand records come
-- in through collect_contact (brand_sync), not plain INSERT.
GRANT SELECT, DELETE ON popsell.contacts TO popsell_brand;
GRANT UPDATE (first_name, last_name, email, email_status, facebook_id, twitter_id,
              instagram_id, public_photo_url, customer_id, ambassador_optin, brand_optin,
              partners_optin, contact_type, notes, address, city, postal_code, country,
              mobile_phone, home_phone, tags, restricted)
    ON popsell.contacts TO popsell_brand;
CREATE POLICY popsell_brand_select ON popsell.contacts FOR SELECT TO popsell_brand
    USING ((brand_optin OPERATOR(pg_catalog.<>) 'no_optin'::popsell.brand_optin OR partners_optin)
           AND NOT (source OPERATOR(pg_catalog.=) ANY ('{blog,blog_internal_form,store_purchase}'::popsell.contact_source[])
                    AND email_confirmed_at IS NULL)
           AND NOT restricted);
COMMENT ON POLICY popsell_brand_select ON popsell.contacts IS
    'The brand reads brand-visible contacts (brand or partners opt-in) that are confirmed and not restricted.';
CREATE POLICY popsell_brand_update ON popsell.contacts FOR UPDATE TO popsell_brand
    USING ((brand_optin OPERATOR(pg_catalog.<>) 'no_optin'::popsell.brand_optin OR partners_optin)
           AND NOT (source OPERATOR(pg_catalog.=) ANY ('{blog,blog_internal_form,store_purchase}'::popsell.contact_source[])
                    AND email_confirmed_at IS NULL)
           AND NOT restricted)
    WITH CHECK (true);
COMMENT ON POLICY popsell_brand_update ON popsell.contacts IS
    'Staff changes to brand-visible contacts (recording an opt-out may hide the row, hence no visibility check on the new row).';
CREATE POLICY popsell_brand_delete ON popsell.contacts FOR DELETE TO popsell_brand
    USING ((brand_optin OPERATOR(pg_catalog.<>) 'no_optin'::popsell.brand_optin OR partners_optin)
           AND NOT (source OPERATOR(pg_catalog.=) ANY ('{blog,blog_internal_form,store_purchase}'::popsell.contact_source[])
                    AND email_confirmed_at IS NULL)
           AND NOT restricted);
COMMENT ON POLICY popsell_brand_delete ON popsell.contacts IS 'The brand erases brand-visible contacts.';

-- Trusted applications insert contacts of any source (forms, webhooks)
-- and read the contacts their outbox tells them to write to.
GRANT INSERT ON popsell.contacts TO popsell_app;
GRANT SELECT ON popsell.contacts TO popsell_app;
CREATE POLICY popsell_app_insert ON popsell.contacts FOR INSERT TO popsell_app WITH CHECK (true);
COMMENT ON POLICY popsell_app_insert ON popsell.contacts IS
    'Trusted applications record contacts of any source; the consent trigger checks the values.';
CREATE POLICY popsell_app_select ON popsell.contacts FOR SELECT TO popsell_app
    USING (EXISTS (SELECT 1 FROM popsell.outbox o
                    WHERE o.contact_id OPERATOR(pg_catalog.=) contacts.id AND o.sent_at IS NULL));
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

GRANT SELECT, INSERT, UPDATE, DELETE ON popsell.publications, popsell.ugc TO popsell_ambassador;
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
    USING (EXISTS (SELECT 1 FROM popsell.contacts c WHERE c.id OPERATOR(pg_catalog.=) interactions.contact_id));
COMMENT ON POLICY popsell_ambassador_select ON popsell.interactions IS
    'An ambassador sees interactions of the contacts it sees.';
CREATE POLICY popsell_brand_select ON popsell.interactions FOR SELECT TO popsell_brand
    USING (contact_id IS NULL
           OR EXISTS (SELECT 1 FROM popsell.contacts c WHERE c.id OPERATOR(pg_catalog.=) interactions.contact_id));
COMMENT ON POLICY popsell_brand_select ON popsell.interactions IS
    'The brand sees interactions of brand-visible contacts and of erased ones (statistics).';
CREATE POLICY popsell_ambassador_select ON popsell.consent_events FOR SELECT TO popsell_ambassador
    USING (EXISTS (SELECT 1 FROM popsell.contacts c WHERE c.id OPERATOR(pg_catalog.=) consent_events.contact_id));
COMMENT ON POLICY popsell_ambassador_select ON popsell.consent_events IS
    'An ambassador reads the consent proof of the contacts it sees.';
CREATE POLICY popsell_brand_select ON popsell.consent_events FOR SELECT TO popsell_brand
    USING (EXISTS (SELECT 1 FROM popsell.contacts c WHERE c.id OPERATOR(pg_catalog.=) consent_events.contact_id));
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
    USING (contact_id IS NULL
           OR EXISTS (SELECT 1 FROM popsell.contacts c WHERE c.id OPERATOR(pg_catalog.=) sales.contact_id));
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

-- Outbox: the application carries it out; an ambassador queues
-- publications for its own visible contacts (the sending guard checks
-- their consent).
GRANT SELECT, INSERT ON popsell.outbox TO popsell_app;
GRANT UPDATE (sent_at) ON popsell.outbox TO popsell_app;
GRANT USAGE ON SEQUENCE popsell.outbox_id_seq TO popsell_app, popsell_ambassador;
CREATE POLICY popsell_app_all ON popsell.outbox TO popsell_app USING (true) WITH CHECK (true);
COMMENT ON POLICY popsell_app_all ON popsell.outbox IS
    'Trusted applications queue messages and mark them sent.';
GRANT INSERT (kind, ambassador_id, contact_id, publication_id, payload)
    ON popsell.outbox TO popsell_ambassador;
CREATE POLICY popsell_ambassador_insert ON popsell.outbox FOR INSERT TO popsell_ambassador
    WITH CHECK (kind OPERATOR(pg_catalog.=) 'publication'::popsell.outbox_kind
                AND ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id())
                AND EXISTS (SELECT 1 FROM popsell.contacts c
                             WHERE c.id OPERATOR(pg_catalog.=) outbox.contact_id)
                AND (publication_id IS NULL
                     OR EXISTS (SELECT 1 FROM popsell.publications p
                                 WHERE p.id OPERATOR(pg_catalog.=) outbox.publication_id)));
COMMENT ON POLICY popsell_ambassador_insert ON popsell.outbox IS
    'An ambassador queues its publications for its own visible contacts.';

-- -------------------------------------------------------------------
-- Views
-- -------------------------------------------------------------------

-- The ambassador's complete view of its CRM: own contacts, none pending
-- confirmation, the email NULL for opted-out contacts.  Owner's rights
-- (ambassadors cannot read contacts.email), so it filters by the caller.
CREATE VIEW popsell.my_contacts WITH (security_barrier = true) AS
SELECT c.id, c.ambassador_id, c.source, c.first_name, c.last_name,
       CASE WHEN c.ambassador_optin OPERATOR(pg_catalog.=) ANY
                 ('{invitation_declined,optout_email,optout_no_response,global_optout,optin_blog_pending}'::popsell.ambassador_optin[])
            THEN NULL ELSE c.email END AS email,
       c.email_status, c.facebook_id, c.twitter_id, c.instagram_id, c.public_photo_url,
       c.customer_id, c.ambassador_optin, c.ambassador_optin_at, c.brand_optin, c.brand_optin_at,
       c.partners_optin, c.partners_optin_at, c.contact_type, c.notes, c.address, c.city,
       c.postal_code, c.country, c.mobile_phone, c.home_phone, c.tags, c.restricted,
       c.email_confirmed_at, c.invitation_sent_at, c.invitations_sent, c.last_activity_at,
       c.created_at, c.created_by, c.modified_at, c.modified_by
  FROM popsell.contacts c
 WHERE c.ambassador_id OPERATOR(pg_catalog.=) (SELECT popsell.current_ambassador_id())
   AND NOT (c.source OPERATOR(pg_catalog.=) ANY ('{blog,blog_internal_form,store_purchase}'::popsell.contact_source[])
            AND c.email_confirmed_at IS NULL);
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
 WHERE (c.brand_optin OPERATOR(pg_catalog.<>) 'no_optin'::popsell.brand_optin OR c.partners_optin)
   AND NOT (c.source OPERATOR(pg_catalog.=) ANY ('{blog,blog_internal_form,store_purchase}'::popsell.contact_source[])
            AND c.email_confirmed_at IS NULL)
   AND NOT c.restricted;
COMMENT ON VIEW popsell.brand_contacts IS
    'Brand-visible contacts (brand or partners opt-in, confirmed, not restricted); security_invoker, so the reader''s row security applies too.';
GRANT SELECT ON popsell.brand_contacts TO popsell_brand, popsell_account_team, popsell_technical;

CREATE VIEW popsell.brand_ambassadors WITH (security_invoker = true) AS
SELECT a.id, a.kind, a.status, a.created_at, a.first_name, a.last_name, a.customer_id,
       a.facebook_id, a.email, a.address, a.city, a.postal_code, a.country,
       a.preferred_language, a.birth_date, a.terms_accepted_at, a.photo_path, a.description,
       a.position, a.iban, a.hide_events, a.hide_from_community, a.newsletter_optin,
       a.event_notifications, a.challenge_notifications, a.comment_notifications,
       a.last_login_at, a.leaving_reason, a.deletion_due_at, a.login_role, a.sso_subject
  FROM popsell.ambassadors a;
COMMENT ON VIEW popsell.brand_ambassadors IS
    'Ambassadors without secrets (no password hash, no IP data); security_invoker.';
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
   AND (c.brand_optin OPERATOR(pg_catalog.<>) 'no_optin'::popsell.brand_optin OR c.partners_optin)
   AND NOT (c.source OPERATOR(pg_catalog.=) ANY ('{blog,blog_internal_form,store_purchase}'::popsell.contact_source[])
            AND c.email_confirmed_at IS NULL)
   AND NOT c.restricted;
COMMENT ON VIEW popsell.bi_contacts IS
    'BI: the brand''s contacts (same rows as popsell_brand sees), read-only, for popsell_brand_bi.';

CREATE VIEW popsell.bi_ambassadors WITH (security_barrier = true) AS
SELECT a.id, a.kind, a.status, a.created_at, a.first_name, a.last_name, a.customer_id,
       a.email, a.city, a.postal_code, a.country, a.preferred_language, a.terms_accepted_at,
       a.position, a.hide_from_community, a.newsletter_optin, a.last_login_at,
       a.leaving_reason, a.deletion_due_at
  FROM popsell.ambassadors a
 WHERE (SELECT popsell._caller_in('popsell_brand_bi'));
COMMENT ON VIEW popsell.bi_ambassadors IS
    'BI: ambassadors without secrets (no password hash, IBAN or IP data), read-only, for popsell_brand_bi.';

CREATE VIEW popsell.bi_sales WITH (security_barrier = true) AS
SELECT s.id, s.contact_id, s.contact_tombstone_id, s.ambassador_id, s.publication_id,
       s.sold_at, s.amount, s.currency, s.products, s.channel
  FROM popsell.sales s
 WHERE (SELECT popsell._caller_in('popsell_brand_bi'))
   AND (s.contact_id IS NULL
        OR EXISTS (SELECT 1 FROM popsell.contacts c
                    WHERE c.id OPERATOR(pg_catalog.=) s.contact_id
                      AND (c.brand_optin OPERATOR(pg_catalog.<>) 'no_optin'::popsell.brand_optin OR c.partners_optin)
                      AND NOT (c.source OPERATOR(pg_catalog.=) ANY ('{blog,blog_internal_form,store_purchase}'::popsell.contact_source[])
                               AND c.email_confirmed_at IS NULL)
                      AND NOT c.restricted));
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
                      AND (c.brand_optin OPERATOR(pg_catalog.<>) 'no_optin'::popsell.brand_optin OR c.partners_optin)
                      AND NOT (c.source OPERATOR(pg_catalog.=) ANY ('{blog,blog_internal_form,store_purchase}'::popsell.contact_source[])
                               AND c.email_confirmed_at IS NULL)
                      AND NOT c.restricted));
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
-- ===================================================================
-- Ownership, default privileges, row security baseline and pg_dump.
-- Runs last so it covers every object of the sections above.
-- ===================================================================

-- Tables, sequences and views belong to the NOLOGIN popsell_owner, as do
-- the SQL and PL/pgSQL functions (so SECURITY DEFINER ones run as it, not
-- as a superuser).  C functions stay with the installing superuser.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, c.relkind
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'v', 'm', 'p']::"char"[])
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s OWNER TO popsell_owner', r.obj);
    END LOOP;
    FOR r IN
        SELECT p.oid::pg_catalog.regprocedure AS fn
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
          JOIN pg_catalog.pg_language l ON l.oid OPERATOR(pg_catalog.=) p.prolang
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND l.lanname OPERATOR(pg_catalog.<>) 'c'
    LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s OWNER TO popsell_owner', r.fn);
    END LOOP;
END
$$;

-- Nothing of popsell is granted to PUBLIC; roles get what they need in
-- the security section.  popsell_owner runs popsell's own functions.
REVOKE ALL ON SCHEMA popsell FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA popsell FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA popsell FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA popsell FROM PUBLIC;
GRANT USAGE ON SCHEMA popsell TO popsell_owner;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA popsell TO popsell_owner;

-- Row level security on every table, forced so the owner is subject to it
-- too; popsell_owner (popsell's own functions and triggers) sees all rows,
-- other roles get policies in the security section.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, c.relname
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND c.relkind OPERATOR(pg_catalog.=) 'r'
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', r.obj);
        EXECUTE pg_catalog.format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', r.obj);
        EXECUTE pg_catalog.format(
            'CREATE POLICY popsell_owner_all ON %s TO popsell_owner USING (true) WITH CHECK (true)', r.obj);
    END LOOP;
END
$$;

-- A restore brings back the settings row and the keys the install script
-- already created: replace them instead of colliding (SPEC S9).
CREATE FUNCTION popsell._restore_singletons() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT popsell._restoring() THEN
        RETURN NEW;
    END IF;
    IF TG_TABLE_NAME = 'settings' THEN
        DELETE FROM popsell.settings WHERE id = NEW.id;
    ELSIF TG_TABLE_NAME = 'hash_keys' THEN
        DELETE FROM popsell.hash_keys WHERE key_id = NEW.key_id;
    END IF;
    RETURN NEW;
END
$$;
ALTER FUNCTION popsell._restore_singletons() OWNER TO popsell_owner;
REVOKE ALL ON FUNCTION popsell._restore_singletons() FROM PUBLIC;
COMMENT ON FUNCTION popsell._restore_singletons() IS
    'Trigger: while restoring, a restored settings row or key replaces the one the install script created.';
CREATE TRIGGER popsell_10_restore
    BEFORE INSERT ON popsell.settings
    FOR EACH ROW EXECUTE FUNCTION popsell._restore_singletons();
CREATE TRIGGER popsell_10_restore
    BEFORE INSERT ON popsell.hash_keys
    FOR EACH ROW EXECUTE FUNCTION popsell._restore_singletons();

ALTER SEQUENCE popsell.maintenance_run_id_seq OWNER TO popsell_owner;

-- pg_dump keeps what users filled (SPEC section 3, S9).
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell'
           AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'S']::"char"[])
    LOOP
        PERFORM pg_catalog.pg_extension_config_dump(r.obj, '');
    END LOOP;
END
$$;
