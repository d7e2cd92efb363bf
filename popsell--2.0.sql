-- popsell install script of the current version.  Built by make from
-- src/sql/*.sql, concatenated in name order, one file per concept (types,
-- roles, tables, the C engine, contact events, security, erasure,
-- retention, lifecycle, rights, restore); src/sql/99_finalize.sql comes
-- last and also ends every upgrade script.  Edit those files, never the
-- built script.

\echo Use "CREATE EXTENSION popsell CASCADE" to load this file. \quit

-- The control file names schema popsell; PostgreSQL creates it for us, but
-- reuses one that already exists.  A schema planted beforehand by another
-- role could hold look-alike objects (CVE-2022-2625), so refuse one that
-- holds anything or that a non-superuser owns or may create objects in.
-- An empty schema that only superusers control is what an earlier DROP
-- EXTENSION popsell leaves behind (a schema named in the control file
-- cannot be a member of the extension): reuse it, whichever superuser
-- installed before, and reset its privileges to its owner's (a grant
-- left on it must not outlive the drop).  A refusal names what the schema
-- holds (objects, default privileges of some role in it).
DO $$
DECLARE
    nsp oid;
    owner_name name;
    owner_super boolean;
    objects bigint;
    held text;
    foreign_creators bigint;
    g record;
BEGIN
    SELECT n.oid, r.rolname, r.rolsuper
      INTO nsp, owner_name, owner_super
      FROM pg_catalog.pg_namespace n
      JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
     WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell';
    IF nsp IS NULL THEN
        RETURN;
    END IF;
    SELECT pg_catalog.count(*),
           pg_catalog.string_agg(x.what, '; ' ORDER BY x.what) FILTER (WHERE x.n OPERATOR(pg_catalog.<=) 5)
      INTO objects, held
      FROM (SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) AS what,
                   pg_catalog.row_number() OVER (ORDER BY pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)) AS n
              FROM pg_catalog.pg_depend d
             WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
               AND d.refobjid OPERATOR(pg_catalog.=) nsp
               -- the extension being created already depends on its schema
               AND NOT (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
                        AND d.objid OPERATOR(pg_catalog.=) (SELECT e.oid FROM pg_catalog.pg_extension e
                                                             WHERE e.extname OPERATOR(pg_catalog.=) 'popsell'))
            UNION ALL
            -- default privileges IN SCHEMA popsell (ALTER DEFAULT PRIVILEGES)
            SELECT pg_catalog.pg_describe_object('pg_catalog.pg_default_acl'::pg_catalog.regclass, a.oid, 0), 0
              FROM pg_catalog.pg_default_acl a
             WHERE a.defaclnamespace OPERATOR(pg_catalog.=) nsp
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_default_acl'::pg_catalog.regclass
                                  AND d.objid OPERATOR(pg_catalog.=) a.oid
                                  AND d.refobjid OPERATOR(pg_catalog.=) nsp)) x;
    SELECT pg_catalog.count(*) INTO foreign_creators
      FROM pg_catalog.pg_namespace n,
           LATERAL pg_catalog.aclexplode(n.nspacl) a
      LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) a.grantee
     WHERE n.oid OPERATOR(pg_catalog.=) nsp
       AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
       AND NOT coalesce(r.rolsuper, false);
    IF objects OPERATOR(pg_catalog.>) 0 THEN
        RAISE EXCEPTION 'schema popsell already exists and holds % objects: %', objects,
                        held OPERATOR(pg_catalog.||) CASE WHEN objects OPERATOR(pg_catalog.>) 5 THEN '; ...' ELSE '' END
            USING ERRCODE = 'PS001',
                  DETAIL = 'popsell installs into its own schema and does not reuse one that holds objects.',
                  HINT = 'Rename the existing schema (ALTER SCHEMA popsell RENAME TO popsell_old) or drop it, then run CREATE EXTENSION popsell CASCADE again.';
    ELSIF NOT owner_super OR foreign_creators OPERATOR(pg_catalog.>) 0 THEN
        RAISE EXCEPTION 'schema popsell already exists and role % (not a superuser) owns it or may create objects in it',
                        CASE WHEN NOT owner_super THEN owner_name
                             ELSE (SELECT pg_catalog.string_agg(DISTINCT a.grantee::pg_catalog.regrole::pg_catalog.text, ', ')
                                     FROM pg_catalog.pg_namespace n, LATERAL pg_catalog.aclexplode(n.nspacl) a
                                    WHERE n.oid OPERATOR(pg_catalog.=) nsp
                                      AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE') END
            USING ERRCODE = 'PS001',
                  DETAIL = 'The schema is empty, but objects planted in it could be mistaken for popsell''s.',
                  HINT = 'If it is the empty schema left by an earlier DROP EXTENSION popsell, run DROP SCHEMA popsell; then CREATE EXTENSION popsell CASCADE again.';
    END IF;
    -- Reused: only its owner keeps privileges on it; the install grants
    -- popsell's roles theirs again.
    -- (a superuser revokes as the owner; CASCADE takes the grants others
    -- made from a grant option with it)
    FOR g IN
        SELECT DISTINCT a.grantee
          FROM pg_catalog.pg_namespace n, LATERAL pg_catalog.aclexplode(n.nspacl) a
         WHERE n.oid OPERATOR(pg_catalog.=) nsp
           AND a.grantee OPERATOR(pg_catalog.<>) n.nspowner
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON SCHEMA popsell FROM %s CASCADE',
                                  CASE WHEN g.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                                       ELSE g.grantee::pg_catalog.regrole::pg_catalog.text END);
    END LOOP;
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

CREATE TYPE popsell.blacklist_reason AS ENUM ('global_optout', 'spam', 'hard_bounce', 'blocked',
    'invitation_refused');
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
    'partner_erasure', 'deletion_notice', 'partner_optout');
COMMENT ON TYPE popsell.outbox_kind IS
    'What the application must carry out for an outbox row (popsell never sends mail itself).';

CREATE TYPE popsell.consent_actor AS ENUM (
    'contact', 'ambassador', 'staff', 'brand_sync', 'system');
COMMENT ON TYPE popsell.consent_actor IS
    'Who made a consent change; fixed by the path (function or role), never by a caller''s value.';
-- ===================================================================
-- Roles (SPEC section 2).  Roles are cluster-wide: a second brand database
-- in the same cluster reuses them.  A role that already exists is reused
-- only if it cannot bypass row security, and popsell_owner only if nobody
-- can log in as it or become it (S12).
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
        -- (v2, S12) The owner reads the hashing keys and bypasses every
        -- policy but its own: a pre-existing one that can log in or that
        -- other roles can become is not one popsell can vouch for.
        IF r.rolname OPERATOR(pg_catalog.=) 'popsell_owner'
           AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles o
                        WHERE o.rolname OPERATOR(pg_catalog.=) 'popsell_owner'
                          AND (o.rolcanlogin
                               OR EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m
                                           WHERE m.roleid OPERATOR(pg_catalog.=) o.oid))) THEN
            RAISE EXCEPTION 'role popsell_owner already exists and can log in or has members'
                USING ERRCODE = 'PS001',
                      DETAIL = 'popsell_owner owns the hashing keys and every popsell table; nobody may log in as it or become it.',
                      HINT = 'ALTER ROLE popsell_owner NOLOGIN and REVOKE popsell_owner FROM each member (or drop the role), then retry.';
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
-- State classes of the consent types, defined once (in C).
-- ===================================================================
-- The state classes (SPEC sections 2, 3 and C1), each defined once, in C
-- next to the transition table (src/consent.c), and used by the row
-- security policies, the views, the partial indexes and the retention
-- rules alike.  IMMUTABLE, so an index predicate and a query spelling the
-- same call match.
CREATE FUNCTION popsell.is_opted_out(ambassador_optin popsell.ambassador_optin) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'is_opted_out';
COMMENT ON FUNCTION popsell.is_opted_out(popsell.ambassador_optin) IS
    'Whether an ambassador opt-in is an opted-out state: invitation_declined, optout_email, optout_no_response, global_optout, or optin_blog_pending (until the email is confirmed). Any role of popsell may call it; no errors.';
CREATE FUNCTION popsell.is_pending_confirmation(source popsell.contact_source, email_confirmed_at timestamptz)
    RETURNS boolean
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'is_pending_confirmation';
COMMENT ON FUNCTION popsell.is_pending_confirmation(popsell.contact_source, timestamptz) IS
    'Whether a contact is pending email confirmation: source blog, blog_internal_form or store_purchase and email_confirmed_at NULL (hidden from the ambassador and the brand). NULL for a NULL source. Any role of popsell may call it; no errors.';
CREATE FUNCTION popsell.is_brand_visible(brand_optin popsell.brand_optin, partners_optin boolean) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'is_brand_visible';
COMMENT ON FUNCTION popsell.is_brand_visible(popsell.brand_optin, boolean) IS
    'Whether a contact is brand-visible: brand_optin other than no_optin, or a partners opt-in. Any role of popsell may call it; no errors.';
CREATE FUNCTION popsell.brand_sees(restricted boolean, source popsell.contact_source,
                                   email_confirmed_at timestamptz, brand_optin popsell.brand_optin,
                                   partners_optin boolean) RETURNS boolean
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'brand_sees';
COMMENT ON FUNCTION popsell.brand_sees(boolean, popsell.contact_source, timestamptz, popsell.brand_optin, boolean) IS
    'Whether the brand (popsell_brand, popsell_brand_bi) sees a contact: brand-visible (popsell.is_brand_visible), not pending confirmation (popsell.is_pending_confirmation) and not restricted. The one definition behind the brand''s row security policies and views. Any role of popsell may call it; no errors.';
GRANT EXECUTE ON FUNCTION popsell.is_opted_out(popsell.ambassador_optin),
                          popsell.brand_sees(boolean, popsell.contact_source, timestamptz, popsell.brand_optin, boolean),
                          popsell.is_pending_confirmation(popsell.contact_source, timestamptz),
                          popsell.is_brand_visible(popsell.brand_optin, boolean)
    TO popsell_ambassador, popsell_brand, popsell_brand_bi, popsell_account_team,
       popsell_technical, popsell_app, popsell_maintenance;
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
-- ===================================================================
-- Retention and reminders (SPEC section 7, S7).  popsell.run_maintenance
-- applies every rule as of a time, set-based and idempotent; each rule is
-- its own subtransaction and writes its popsell.maintenance_runs row in it,
-- so that ledger is the truth of what was done.  Rules are deadline-based:
-- a missed run is caught up by the next one.
-- ===================================================================

-- Why a rule failed (NULL when it succeeded): the SQLSTATE only, never the
-- message (it could quote personal data).
COMMENT ON COLUMN popsell.maintenance_runs.failed_sqlstate IS
    'SQLSTATE of the error that rolled the rule back (its work is then not done and is retried next run); NULL on success.';
COMMENT ON COLUMN popsell.maintenance_runs.outcome IS
    'done; failed (failed_sqlstate says why); skipped (another run held the lock, or the rule gave up waiting for a lock: 55P03).';
COMMENT ON COLUMN popsell.maintenance_runs.skipped_rows IS
    'Due rows the rule left because another session held them locked (an open transaction on the row); the next run does them.';

-- The rules in the order they run (SPEC section 7's table).
CREATE FUNCTION popsell.maintenance_rules()
    RETURNS SETOF text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN pg_catalog.unnest(ARRAY['ambassador_leaving', 'ambassador_inactive', 'ambassador_unconfirmed',
                                   'contact_never_invited',
                                   'invitation_reminder', 'invitation_no_response', 'email_unconfirmed',
                                   'contact_opted_out', 'contact_inactive', 'program_suspended',
                                   'brand_contract_ended', 'contest_ugc', 'logs']);
COMMENT ON FUNCTION popsell.maintenance_rules() IS
    'The retention rules of popsell.run_maintenance, in the order they run.';

-- One rule, as of AT; returns the rows it acted on.  Called only by
-- run_maintenance (inside its subtransaction, path system, as-of set).
-- PREVIEW = true counts what it would do and changes nothing.
CREATE FUNCTION popsell._maintenance_rule(p_rule text, p_at timestamptz, p_preview boolean)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s popsell.settings;
    n bigint := 0;
    m bigint := 0;
    mark bigint;
    wi interval;
    wn integer;
    sk bigint := 0;
BEGIN
    SELECT * INTO STRICT s FROM popsell.settings;
    -- NULL: the invitation response window (SPEC section 3, v2)
    s.email_confirmation_window := coalesce(s.email_confirmation_window, s.invitation_response_window);
    wi := s.inactivity_warning_interval;
    wn := s.inactivity_warnings;

    CASE p_rule
    WHEN 'ambassador_leaving' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.ambassadors a
             WHERE a.deletion_due_at IS NOT NULL AND a.deletion_due_at <= p_at;
        ELSE
            mark := popsell._erasure_push('ambassador_leaving', true);
            -- rows another session holds locked are left for the next run
            DELETE FROM popsell.ambassadors a
             WHERE a.id = ANY (ARRAY(SELECT a.id FROM popsell.ambassadors a
                                     WHERE a.deletion_due_at IS NOT NULL AND a.deletion_due_at <= p_at
                                       FOR UPDATE OF a SKIP LOCKED));
            GET DIAGNOSTICS n = ROW_COUNT;
            SELECT count(*) INTO sk FROM popsell.ambassadors a
             WHERE a.deletion_due_at IS NOT NULL AND a.deletion_due_at <= p_at;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'ambassador_inactive' THEN
        -- deadline = coalesce(last_login_at, created_at) + ambassador_inactivity.
        -- Warnings count only when queued after the last login (a login
        -- cancels).  Warning k of N is due at deadline - (N-k+1) intervals,
        -- and never sooner than one interval after the previous one; the
        -- deletion comes at the deadline once all N are queued, and never
        -- sooner than one interval after the last.
        IF p_preview THEN
            SELECT count(*) INTO n
              FROM popsell.ambassadors a
              CROSS JOIN LATERAL (SELECT coalesce(a.last_login_at, a.created_at) AS base,
                                         CASE WHEN a.last_inactivity_warning_at > coalesce(a.last_login_at, a.created_at)
                                              THEN a.inactivity_warnings_sent ELSE 0 END AS sent) w
             WHERE coalesce(a.last_login_at, a.created_at) <= p_at - s.ambassador_inactivity + wn * wi
               AND a.status <> 'leaving'
               AND (   (w.sent >= wn AND w.base + s.ambassador_inactivity <= p_at
                        AND (wn = 0 OR a.last_inactivity_warning_at + wi <= p_at))
                    OR (w.sent < wn
                        AND w.base + s.ambassador_inactivity - (wn - w.sent) * wi <= p_at
                        AND (w.sent = 0 OR a.last_inactivity_warning_at + wi <= p_at)));
        ELSE
            mark := popsell._erasure_push('inactive', true);
            -- rows another session holds locked are left for the next run
            DELETE FROM popsell.ambassadors a
             WHERE a.id = ANY (ARRAY(SELECT a.id FROM popsell.ambassadors a
                                     WHERE coalesce(a.last_login_at, a.created_at) <= p_at - s.ambassador_inactivity
                                        AND a.status <> 'leaving'
                                        AND (wn = 0
                                             OR (a.last_inactivity_warning_at > coalesce(a.last_login_at, a.created_at)
                                                 AND a.inactivity_warnings_sent >= wn
                                                 AND a.last_inactivity_warning_at + wi <= p_at))
                                       FOR UPDATE OF a SKIP LOCKED));
            GET DIAGNOSTICS n = ROW_COUNT;
            SELECT count(*) INTO sk FROM popsell.ambassadors a
             WHERE coalesce(a.last_login_at, a.created_at) <= p_at - s.ambassador_inactivity
               AND a.status <> 'leaving'
               AND (wn = 0
                    OR (a.last_inactivity_warning_at > coalesce(a.last_login_at, a.created_at)
                        AND a.inactivity_warnings_sent >= wn
                        AND a.last_inactivity_warning_at + wi <= p_at));
            PERFORM popsell._erasure_pop(mark);
            IF wn > 0 THEN
                WITH due AS (
                    SELECT a.id, w.sent + 1 AS k,
                           w.base + s.ambassador_inactivity AS deadline
                      FROM popsell.ambassadors a
                      CROSS JOIN LATERAL (SELECT coalesce(a.last_login_at, a.created_at) AS base,
                                                 CASE WHEN a.last_inactivity_warning_at > coalesce(a.last_login_at, a.created_at)
                                                      THEN a.inactivity_warnings_sent ELSE 0 END AS sent) w
                     WHERE coalesce(a.last_login_at, a.created_at) <= p_at - s.ambassador_inactivity + wn * wi
                       AND a.status <> 'leaving'
                       AND w.sent < wn
                       AND w.base + s.ambassador_inactivity - (wn - w.sent) * wi <= p_at
                       AND (w.sent = 0 OR a.last_inactivity_warning_at + wi <= p_at)
                       FOR UPDATE OF a),
                q AS (
                    INSERT INTO popsell.outbox (kind, ambassador_id, payload, created_at)
                    SELECT 'inactivity_warning', d.id,
                           jsonb_build_object('warning', d.k, 'of', wn,
                                              'deletion_not_before', greatest(d.deadline, p_at + wi)),
                           p_at
                      FROM due d
                    RETURNING ambassador_id)
                UPDATE popsell.ambassadors a
                   SET inactivity_warnings_sent = d.k, last_inactivity_warning_at = p_at
                  FROM due d
                 WHERE a.id = d.id;
                GET DIAGNOSTICS m = ROW_COUNT;
                n := n + m;
            END IF;
        END IF;

    WHEN 'ambassador_unconfirmed' THEN
        -- signups whose confirmation link expired unused
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.ambassadors a
             WHERE a.status = 'signup_incomplete'
               AND EXISTS (SELECT 1 FROM popsell.ambassador_email_tokens t
                            WHERE t.ambassador_id = a.id
                              AND t.created_at <= p_at - s.signup_confirmation_window);
        ELSE
            mark := popsell._erasure_push('ambassador_unconfirmed', true);
            -- rows another session holds locked are left for the next run
            DELETE FROM popsell.ambassadors a
             WHERE a.id = ANY (ARRAY(SELECT a.id FROM popsell.ambassadors a
                                     WHERE a.status = 'signup_incomplete'
                                        AND EXISTS (SELECT 1 FROM popsell.ambassador_email_tokens t
                                                     WHERE t.ambassador_id = a.id
                                                       AND t.created_at <= p_at - s.signup_confirmation_window)
                                       FOR UPDATE OF a SKIP LOCKED));
            GET DIAGNOSTICS n = ROW_COUNT;
            SELECT count(*) INTO sk FROM popsell.ambassadors a
             WHERE a.status = 'signup_incomplete'
               AND EXISTS (SELECT 1 FROM popsell.ambassador_email_tokens t
                            WHERE t.ambassador_id = a.id
                              AND t.created_at <= p_at - s.signup_confirmation_window);
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'contact_never_invited' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE c.ambassador_optin = 'new'
               AND c.ambassador_optin_at <= p_at - s.new_contact_invitation_window
               AND NOT popsell.is_brand_visible(c.brand_optin, c.partners_optin) AND NOT c.restricted;
        ELSE
            mark := popsell._erasure_push('contact_never_invited', false);
            -- rows another session holds locked are left for the next run
            DELETE FROM popsell.contacts c
             WHERE c.id = ANY (ARRAY(SELECT c.id FROM popsell.contacts c
                                     WHERE c.ambassador_optin = 'new'
                                        AND c.ambassador_optin_at <= p_at - s.new_contact_invitation_window
                                        AND NOT popsell.is_brand_visible(c.brand_optin, c.partners_optin) AND NOT c.restricted
                                       FOR UPDATE OF c SKIP LOCKED));
            GET DIAGNOSTICS n = ROW_COUNT;
            SELECT count(*) INTO sk FROM popsell.contacts c
             WHERE c.ambassador_optin = 'new'
               AND c.ambassador_optin_at <= p_at - s.new_contact_invitation_window
               AND NOT popsell.is_brand_visible(c.brand_optin, c.partners_optin) AND NOT c.restricted;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'invitation_reminder' THEN
        -- Only contacts the sending guard lets receive it; the others are
        -- not marked and become optout_no_response at two windows.
        IF p_preview THEN
            SELECT count(*) INTO n
              FROM popsell.contacts c
              JOIN popsell.ambassadors a ON a.id = c.ambassador_id AND a.status = 'active'
             WHERE c.ambassador_optin = 'invitation_sent'
               AND c.invitation_sent_at <= p_at - s.invitation_response_window
               AND c.invitation_sent_at > p_at - 2 * s.invitation_response_window
               AND (c.reminder_sent_at IS NULL OR c.reminder_sent_at < c.invitation_sent_at)
               AND c.email IS NOT NULL AND c.email_status = 'ok' AND NOT c.restricted;
        ELSE
            WITH due AS (
                SELECT c.id, c.ambassador_id, c.invitation_sent_at
                  FROM popsell.contacts c
                  JOIN popsell.ambassadors a ON a.id = c.ambassador_id AND a.status = 'active'
                 WHERE c.ambassador_optin = 'invitation_sent'
                   AND c.invitation_sent_at <= p_at - s.invitation_response_window
                   AND c.invitation_sent_at > p_at - 2 * s.invitation_response_window
                   AND (c.reminder_sent_at IS NULL OR c.reminder_sent_at < c.invitation_sent_at)
                   AND c.email IS NOT NULL AND c.email_status = 'ok' AND NOT c.restricted
                   FOR UPDATE OF c),
            q AS (
                INSERT INTO popsell.outbox (kind, ambassador_id, contact_id, payload, created_at)
                SELECT 'invitation_reminder', d.ambassador_id, d.id,
                       jsonb_build_object('invitation_sent_at', d.invitation_sent_at), p_at
                  FROM due d
                RETURNING contact_id)
            UPDATE popsell.contacts c SET reminder_sent_at = p_at
              FROM q WHERE c.id = q.contact_id;
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;

    WHEN 'invitation_no_response' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE c.ambassador_optin = 'invitation_sent'
               AND c.invitation_sent_at <= p_at - 2 * s.invitation_response_window;
        ELSE
            UPDATE popsell.contacts c SET ambassador_optin = 'optout_no_response'
             WHERE c.ambassador_optin = 'invitation_sent'
               AND c.invitation_sent_at <= p_at - 2 * s.invitation_response_window;
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;

    WHEN 'email_unconfirmed' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE popsell.is_pending_confirmation(c.source, c.email_confirmed_at)
               AND c.created_at <= p_at - s.email_confirmation_window
               AND NOT c.restricted;
        ELSE
            mark := popsell._erasure_push('email_unconfirmed', false);
            -- rows another session holds locked are left for the next run
            DELETE FROM popsell.contacts c
             WHERE c.id = ANY (ARRAY(SELECT c.id FROM popsell.contacts c
                                     WHERE popsell.is_pending_confirmation(c.source, c.email_confirmed_at)
                                        AND c.created_at <= p_at - s.email_confirmation_window
                                        AND NOT c.restricted
                                       FOR UPDATE OF c SKIP LOCKED));
            GET DIAGNOSTICS n = ROW_COUNT;
            SELECT count(*) INTO sk FROM popsell.contacts c
             WHERE popsell.is_pending_confirmation(c.source, c.email_confirmed_at)
               AND c.created_at <= p_at - s.email_confirmation_window
               AND NOT c.restricted;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'contact_opted_out' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE popsell.is_opted_out(c.ambassador_optin)
               AND c.ambassador_optin_at <= p_at - s.optout_retention
               AND NOT popsell.is_brand_visible(c.brand_optin, c.partners_optin) AND NOT c.restricted;
        ELSE
            mark := popsell._erasure_push('contact_opted_out', true);
            -- rows another session holds locked are left for the next run
            DELETE FROM popsell.contacts c
             WHERE c.id = ANY (ARRAY(SELECT c.id FROM popsell.contacts c
                                     WHERE popsell.is_opted_out(c.ambassador_optin)
                                        AND c.ambassador_optin_at <= p_at - s.optout_retention
                                        AND NOT popsell.is_brand_visible(c.brand_optin, c.partners_optin) AND NOT c.restricted
                                       FOR UPDATE OF c SKIP LOCKED));
            GET DIAGNOSTICS n = ROW_COUNT;
            SELECT count(*) INTO sk FROM popsell.contacts c
             WHERE popsell.is_opted_out(c.ambassador_optin)
               AND c.ambassador_optin_at <= p_at - s.optout_retention
               AND NOT popsell.is_brand_visible(c.brand_optin, c.partners_optin) AND NOT c.restricted;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'contact_inactive' THEN
        -- Every contact the rules above left (opted-out brand-visible
        -- rows, brand_sync rows, whatever their consent), restricted ones
        -- excepted (art. 18): no contact is kept forever (v2 coverage).
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.contacts c
             WHERE NOT c.restricted
               AND greatest(c.last_activity_at, c.ambassador_optin_at, c.brand_optin_at, c.created_at)
                   <= p_at - s.contact_inactivity;
        ELSE
            mark := popsell._erasure_push('contact_inactive', true);
            -- rows another session holds locked are left for the next run
            DELETE FROM popsell.contacts c
             WHERE c.id = ANY (ARRAY(SELECT c.id FROM popsell.contacts c
                                     WHERE NOT c.restricted
                                        AND greatest(c.last_activity_at, c.ambassador_optin_at, c.brand_optin_at, c.created_at)
                                            <= p_at - s.contact_inactivity
                                       FOR UPDATE OF c SKIP LOCKED));
            GET DIAGNOSTICS n = ROW_COUNT;
            SELECT count(*) INTO sk FROM popsell.contacts c
             WHERE NOT c.restricted
               AND greatest(c.last_activity_at, c.ambassador_optin_at, c.brand_optin_at, c.created_at)
                   <= p_at - s.contact_inactivity;
            PERFORM popsell._erasure_pop(mark);
        END IF;

    WHEN 'program_suspended', 'brand_contract_ended' THEN
        IF (p_rule = 'program_suspended'
            AND s.program_suspended_at IS NOT NULL AND s.program_suspended_at + s.suspension_max <= p_at)
           OR (p_rule = 'brand_contract_ended'
               AND s.brand_contract_ended_at IS NOT NULL AND s.brand_contract_ended_at + s.deletion_grace <= p_at) THEN
            n := popsell._erase_all_personal_data(p_rule, p_at, p_preview);
        END IF;

    WHEN 'contest_ugc' THEN
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.ugc u
             WHERE u.ambassador_id IS NULL
               AND NOT EXISTS (SELECT 1 FROM popsell.contests k
                                WHERE k.id = u.contest_id AND k.reuse_until > p_at);
        ELSE
            WITH u AS (
                DELETE FROM popsell.ugc u
                 WHERE u.ambassador_id IS NULL
                   AND NOT EXISTS (SELECT 1 FROM popsell.contests k
                                    WHERE k.id = u.contest_id AND k.reuse_until > p_at)
                RETURNING u.id, u.file_path)
            INSERT INTO popsell.outbox (kind, payload, created_at)
            SELECT 'delete_file', jsonb_build_object('file_path', u.file_path, 'what', 'ugc', 'ugc_id', u.id), p_at
              FROM u;
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;

    WHEN 'logs' THEN
        -- The activity log and outbox rows, sent or not (personal data), age as of
        -- AT; the run record (the audit of these rules) by the wall clock,
        -- so a run "in the future" cannot age earlier runs away.
        IF p_preview THEN
            SELECT count(*) INTO n FROM popsell.activity_log l WHERE l.created_at < p_at - s.log_retention;
            SELECT count(*) INTO m FROM popsell.outbox o
             WHERE o.sent_at IS NOT NULL AND o.sent_at < p_at - s.log_retention;
            n := n + m;
            SELECT count(*) INTO m FROM popsell.outbox o
             WHERE o.sent_at IS NULL AND o.created_at < p_at - s.log_retention
               AND o.kind::text NOT IN ('delete_file', 'partner_erasure', 'partner_optout');
            n := n + m;
            SELECT count(*) INTO m FROM popsell.maintenance_runs r
             WHERE r.finished_at < pg_catalog.now() - s.log_retention;
        ELSE
            DELETE FROM popsell.activity_log l WHERE l.created_at < p_at - s.log_retention;
            GET DIAGNOSTICS n = ROW_COUNT;
            DELETE FROM popsell.outbox o
             WHERE o.sent_at IS NOT NULL AND o.sent_at < p_at - s.log_retention;
            GET DIAGNOSTICS m = ROW_COUNT;
            n := n + m;
            -- never sent within log_retention: no longer worth sending
            -- (erasure work excepted: it stays until carried out)
            DELETE FROM popsell.outbox o
             WHERE o.sent_at IS NULL AND o.created_at < p_at - s.log_retention
               AND o.kind::text NOT IN ('delete_file', 'partner_erasure', 'partner_optout');
            GET DIAGNOSTICS m = ROW_COUNT;
            n := n + m;
            DELETE FROM popsell.maintenance_runs r
             WHERE r.finished_at < pg_catalog.now() - s.log_retention;
            GET DIAGNOSTICS m = ROW_COUNT;
        END IF;
        n := n + m;

    ELSE
        RAISE EXCEPTION 'unknown maintenance rule "%"', p_rule
            USING ERRCODE = 'PS500', HINT = 'See SELECT * FROM popsell.maintenance_rules().';
    END CASE;
    IF NOT p_preview THEN
        -- due rows skipped because another session held them locked
        -- (run_maintenance records it)
        PERFORM set_config('popsell_maintenance.skipped_rows', sk::text, true);
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION popsell._maintenance_rule(text, timestamptz, boolean) IS
    'Internal: apply (or, with preview, count) one retention rule as of a time; returns the rows acted on.';

-- Program suspended too long, or brand contract over: every personal data
-- row but restricted contacts goes (contacts and ambassadors through their erasure, so tombstones,
-- ledger and statistics stay; all UGC files are queued).  Bulk statements
-- first, so the per-ambassador trigger finds nothing left to do.
CREATE FUNCTION popsell._erase_all_personal_data(p_reason text, p_at timestamptz, p_preview boolean)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint := 0;
    m bigint;
    mark bigint;
BEGIN
    IF p_preview THEN
        SELECT (SELECT count(*) FROM popsell.contacts c WHERE NOT c.restricted)
             + (SELECT count(*) FROM popsell.ambassadors)
             + (SELECT count(*) FROM popsell.ugc)
          INTO n;
        RETURN n;
    END IF;
    mark := popsell._erasure_push(p_reason, true);
    -- restricted contacts (art. 18) stay, without ambassador
    DELETE FROM popsell.contacts c WHERE NOT c.restricted;
    GET DIAGNOSTICS m = ROW_COUNT;
    n := n + m;
    WITH u AS (DELETE FROM popsell.ugc u RETURNING u.id, u.file_path)
    INSERT INTO popsell.outbox (kind, payload, created_at)
    SELECT 'delete_file', jsonb_build_object('file_path', u.file_path, 'what', 'ugc', 'ugc_id', u.id), p_at
      FROM u;
    GET DIAGNOSTICS m = ROW_COUNT;
    n := n + m;
    DELETE FROM popsell.community_reactions;
    DELETE FROM popsell.publications;
    DELETE FROM popsell.social_grants;
    DELETE FROM popsell.gamification;
    DELETE FROM popsell.activity_log;
    DELETE FROM popsell.outbox o
     WHERE o.sent_at IS NULL AND o.kind NOT IN ('delete_file', 'partner_erasure');
    DELETE FROM popsell.ambassadors;
    GET DIAGNOSTICS m = ROW_COUNT;
    n := n + m;
    PERFORM popsell._erasure_pop(mark);
    RETURN n;
END
$$;
COMMENT ON FUNCTION popsell._erase_all_personal_data(text, timestamptz, boolean) IS
    'Internal: erase every contact, ambassador and UGC (program suspended too long, brand contract ended); returns the count.';

-- The guard against overlapping runs (SPEC section 7, who runs it): a
-- row lock (FOR UPDATE NOWAIT) on the single row of this table, which no
-- role but popsell_owner (and superusers) may lock or even see, so no
-- other role can make the runs skip.  Not an advisory lock (any role
-- takes any advisory key) nor a table lock: parsing a statement (PREPARE
-- ... FOR UPDATE) takes a table's RowShareLock before any permission
-- check, which a table-level EXCLUSIVE lock would conflict with, while a
-- row lock needs UPDATE privilege on the table.
-- A restore replaces the row (popsell_10_restore, section Backups).
CREATE TABLE popsell.maintenance_lock (
    id boolean PRIMARY KEY DEFAULT true CHECK (id)
);
INSERT INTO popsell.maintenance_lock DEFAULT VALUES;
COMMENT ON TABLE popsell.maintenance_lock IS
    'Internal: one row; run_maintenance locks it (FOR UPDATE NOWAIT) so runs do not overlap. Owner only.';

-- Sent outbox rows age out after log_retention (rule logs).
CREATE INDEX outbox_sent_idx ON popsell.outbox (sent_at) WHERE sent_at IS NOT NULL;
-- and unsent ones after log_retention from their queuing
CREATE INDEX outbox_unsent_created_idx ON popsell.outbox (created_at) WHERE sent_at IS NULL;

-- How long a rule waits for a row or table lock another session holds
-- before it gives up (recorded as skipped, done by the next run): the
-- session's lock_timeout when it is shorter, else this.
CREATE FUNCTION popsell._maintenance_lock_timeout()
    RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN '30s';
COMMENT ON FUNCTION popsell._maintenance_lock_timeout() IS
    'Internal: the longest a retention rule waits for a lock held by another session (a shorter session lock_timeout wins).';

CREATE FUNCTION popsell.run_maintenance(at timestamptz DEFAULT pg_catalog.now())
    RETURNS TABLE (rule text, affected bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'system'
    SET popsell.as_of = ''
    SET datestyle = 'ISO, YMD'
AS $$
DECLARE
    p_at timestamptz := run_maintenance.at;
    run bigint;
    r text;
    n bigint;
    t0 timestamptz;
    st text;
    app text := current_setting('application_name');
    lt text := current_setting('lock_timeout');
BEGIN
    IF p_at IS NULL THEN
        RAISE EXCEPTION 'run_maintenance needs a time'
            USING ERRCODE = 'PS500', HINT = 'Call popsell.run_maintenance() (now) or pass a timestamptz.';
    END IF;
    -- A run "in the future" erases what is not due yet: the owner's
    -- (tests, previews on a copy) only.
    IF p_at > pg_catalog.now() + interval '1 day' AND NOT popsell._caller_in('popsell_owner') THEN
        RAISE EXCEPTION 'run_maintenance(at) refuses an as-of time more than one day after now()'
            USING ERRCODE = 'PS501',
                  DETAIL = pg_catalog.format('at = %s, now() = %s.', p_at, pg_catalog.now()),
                  HINT = 'Call popsell.run_maintenance() (now); popsell.maintenance_preview(at) shows what a later run would do.';
    END IF;
    IF pg_is_in_recovery() THEN
        RAISE NOTICE 'popsell.run_maintenance does nothing on a standby';
        RETURN QUERY SELECT x, NULL::bigint FROM popsell.maintenance_rules() AS x;
        RETURN;
    END IF;
    run := nextval('popsell.maintenance_run_id_seq');
    -- One run at a time per database; an overlapping run is skipped (its
    -- work is done by the one holding the lock, or by the next run) and
    -- says so in the record.
    BEGIN
        PERFORM FROM popsell.maintenance_lock l FOR UPDATE NOWAIT;
        IF NOT FOUND THEN
            -- the row went (deleted by a superuser): put it back; a
            -- concurrent run would wait for this insert: it gives up at
            -- once instead
            PERFORM set_config('lock_timeout', '10ms', true);
            INSERT INTO popsell.maintenance_lock DEFAULT VALUES ON CONFLICT DO NOTHING;
            PERFORM set_config('lock_timeout', lt, true);
            PERFORM FROM popsell.maintenance_lock l FOR UPDATE NOWAIT;
        END IF;
    EXCEPTION WHEN lock_not_available THEN
        RAISE NOTICE 'popsell.run_maintenance skipped: another run is in progress';
        INSERT INTO popsell.maintenance_runs (run_id, rule, affected, as_of, started_at, run_by,
                                              failed_sqlstate, outcome)
        SELECT run, x, 0, p_at, clock_timestamp(), session_user, '55P03', 'skipped'
          FROM popsell.maintenance_rules() AS x;
        RETURN QUERY SELECT x, NULL::bigint FROM popsell.maintenance_rules() AS x;
        RETURN;
    END;
    -- Never wait forever on a lock another session holds (an open
    -- transaction of an application role on a due row).
    IF lt = '0' OR lt::interval > popsell._maintenance_lock_timeout()::interval THEN
        PERFORM set_config('lock_timeout', popsell._maintenance_lock_timeout(), true);
    END IF;
    PERFORM set_config('popsell.as_of', p_at::text, true);
    FOR r IN SELECT x FROM popsell.maintenance_rules() AS x LOOP
        t0 := clock_timestamp();
        -- pg_stat_activity shows the rule in progress
        PERFORM set_config('application_name', pg_catalog.left('popsell_maintenance: ' || r, 63), true);
        BEGIN
            PERFORM set_config('popsell_maintenance.skipped_rows', '0', true);
            n := popsell._maintenance_rule(r, p_at, false);
            INSERT INTO popsell.maintenance_runs (run_id, rule, affected, as_of, started_at, run_by, skipped_rows)
            VALUES (run, r, n, p_at, t0, session_user,
                    coalesce(nullif(current_setting('popsell_maintenance.skipped_rows', true), ''), '0')::bigint);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
            IF st = '55P03' THEN
                RAISE WARNING 'popsell maintenance rule % skipped: it waited too long for a lock (SQLSTATE %); the next run does it', r, st;
            ELSE
                RAISE WARNING 'popsell maintenance rule % failed with SQLSTATE %; its work is rolled back and retried next run', r, st;
            END IF;
            n := NULL;
            INSERT INTO popsell.maintenance_runs (run_id, rule, affected, as_of, started_at, run_by,
                                                  failed_sqlstate, outcome)
            VALUES (run, r, 0, p_at, t0, session_user, st,
                    CASE WHEN st = '55P03' THEN 'skipped' ELSE 'failed' END);
        END;
        rule := r;
        affected := n;
        RETURN NEXT;
    END LOOP;
    PERFORM set_config('application_name', app, true);
    PERFORM set_config('lock_timeout', lt, true);
END
$$;
COMMENT ON FUNCTION popsell.run_maintenance(timestamptz) IS
    'Apply every retention and reminder rule as of AT (default now), set-based and idempotent; one popsell.maintenance_runs row per rule. Skipped (and recorded as skipped) while another run holds the lock; a rule waiting too long for a lock is skipped and recorded; no-op on a standby. AT more than one day after now() is refused (PS501) except for popsell_owner. application_name shows the rule in progress.';

CREATE FUNCTION popsell.maintenance_preview(at timestamptz DEFAULT pg_catalog.now())
    RETURNS TABLE (rule text, affected bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    -- a count never waits long on a table lock another session holds
    -- (maintenance_status's due_now, in the alert query): NULL instead
    SET lock_timeout = '500ms'
AS $$
DECLARE
    r text;
BEGIN
    IF maintenance_preview.at IS NULL THEN
        RAISE EXCEPTION 'maintenance_preview needs a time'
            USING ERRCODE = 'PS500', HINT = 'Pass a timestamptz.';
    END IF;
    FOR r IN SELECT x FROM popsell.maintenance_rules() AS x LOOP
        rule := r;
        BEGIN
            affected := popsell._maintenance_rule(r, maintenance_preview.at, true);
        EXCEPTION WHEN lock_not_available THEN
            affected := NULL;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION popsell.maintenance_preview(timestamptz) IS
    'What popsell.run_maintenance(AT) would do, per rule, with counts; changes nothing. A count that waits more than half a second for a lock another session holds is NULL.';

-- -------------------------------------------------------------------
-- pg_cron.  No dependency: cron objects are resolved at call time, and
-- only as members of the extension pg_cron installed in this database,
-- the one pg_cron lives in.  A schema merely named cron (any role with
-- CREATE on the database can make one) is never called: its functions
-- would run with the caller's rights, a superuser's in DROP EXTENSION.
-- -------------------------------------------------------------------
CREATE FUNCTION popsell._cron_job_name()
    RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN 'popsell_maintenance_' OPERATOR(pg_catalog.||) pg_catalog.current_database();
COMMENT ON FUNCTION popsell._cron_job_name() IS
    'Internal: the pg_cron job name of this database''s maintenance.';

CREATE FUNCTION popsell._cron_object(kind text, name text)
    RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cron_db text;
    ext oid;
    found text;
BEGIN
    IF kind IS NULL OR kind OPERATOR(pg_catalog.<>) ALL (ARRAY['function', 'table']) OR name IS NULL THEN
        RAISE EXCEPTION 'popsell._cron_object needs a kind (function or table) and a name'
            USING ERRCODE = 'PS500', HINT = 'E.g. popsell._cron_object(''function'', ''unschedule(bigint)'').';
    END IF;
    -- cron.database_name is readable only by superusers and members of
    -- pg_read_all_settings ('' here for others: pg_cron's own CREATE
    -- EXTENSION check then stands for it).
    BEGIN
        cron_db := current_setting('cron.database_name', true);
    EXCEPTION WHEN insufficient_privilege THEN
        cron_db := '';
    END;
    IF cron_db IS NULL
       OR (cron_db OPERATOR(pg_catalog.<>) '' AND cron_db OPERATOR(pg_catalog.<>) current_database()) THEN
        RETURN NULL;                             -- pg_cron not loaded, or lives elsewhere
    END IF;
    SELECT e.oid INTO ext FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'pg_cron';
    IF ext IS NULL THEN
        RETURN NULL;
    END IF;
    -- Among the extension's own members only (pg_depend deptype 'e'):
    -- pg_cron creates its schema cron itself (its extnamespace is the
    -- schema current at CREATE EXTENSION, not that one).
    IF kind OPERATOR(pg_catalog.=) 'function' THEN
        SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(p.proname)
          INTO found
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) d.objid
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
           AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND d.refobjid OPERATOR(pg_catalog.=) ext
           AND d.deptype OPERATOR(pg_catalog.=) 'e'
           AND p.proname OPERATOR(pg_catalog.=) pg_catalog.split_part(name, '(', 1)
           AND pg_catalog.replace(pg_catalog.oidvectortypes(p.proargtypes), ' ', '')
               OPERATOR(pg_catalog.=) pg_catalog.replace(pg_catalog.rtrim(pg_catalog.split_part(name, '(', 2), ')'), ' ', '');
    ELSE
        SELECT c.oid::pg_catalog.regclass::pg_catalog.text
          INTO found
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.objid
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND d.refobjid OPERATOR(pg_catalog.=) ext
           AND d.deptype OPERATOR(pg_catalog.=) 'e'
           AND c.relname OPERATOR(pg_catalog.=) name
           AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[]);
    END IF;
    RETURN found;                                -- schema-qualified, for format('%s')
END
$$;
COMMENT ON FUNCTION popsell._cron_object(text, text) IS
    'Internal: the schema-qualified name of pg_cron''s function (kind ''function'', name with argument types) or table (kind ''table''), or NULL unless pg_cron lives in this database (cron.database_name), its extension is installed here and the object is a member of it.';

CREATE FUNCTION popsell._cron_missing(call text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cron_db text;
BEGIN
    BEGIN
        cron_db := current_setting('cron.database_name', true);
    EXCEPTION WHEN insufficient_privilege THEN
        cron_db := '';
    END;
    RAISE EXCEPTION 'pg_cron is not installed in database %', current_database()
        USING ERRCODE = 'PS500',
              DETAIL = CASE WHEN cron_db IS NULL
                            THEN 'pg_cron is not loaded (shared_preload_libraries) in this server.'
                            WHEN cron_db = ''
                            THEN 'Only superusers can read cron.database_name, the database pg_cron lives in.'
                            WHEN cron_db = current_database()
                            THEN 'pg_cron lives in this database (cron.database_name) but the extension pg_cron is not installed here; a schema named cron that is not pg_cron''s is never used.'
                            ELSE format('pg_cron lives in database %s (cron.database_name).', cron_db) END,
              HINT = CASE WHEN cron_db = current_database()
                          THEN format('Run CREATE EXTENSION pg_cron as a superuser, then: %s', call)
                          ELSE format('Connect to the pg_cron database%s as a superuser and run: %s',
                                      coalesce(' ' || quote_ident(nullif(cron_db, '')), ''), call) END;
END
$$;
COMMENT ON FUNCTION popsell._cron_missing(text) IS
    'Internal: raises PS500 saying where pg_cron lives and the exact call to run there.';

CREATE FUNCTION popsell.schedule_jobs(schedule text DEFAULT '17 3 * * *')
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn text;
    job bigint;
BEGIN
    IF schedule IS NULL OR btrim(schedule) = '' THEN
        RAISE EXCEPTION 'schedule_jobs needs a cron schedule'
            USING ERRCODE = 'PS500', HINT = 'E.g. SELECT popsell.schedule_jobs(''17 3 * * *'');';
    END IF;
    fn := popsell._cron_object('function', 'schedule_in_database(text,text,text,text,text,boolean)');
    IF fn IS NULL THEN
        PERFORM popsell._cron_missing(
            format('SELECT cron.schedule_in_database(%L, %L, %L, %L, %L);',
                   popsell._cron_job_name(), schedule, 'SELECT popsell.run_maintenance()',
                   current_database(), 'popsell_maintenance'));
    END IF;
    EXECUTE format('SELECT %s($1, $2, $3, $4, $5, true)', fn)
       INTO job
      USING popsell._cron_job_name(), schedule, 'SELECT popsell.run_maintenance()',
            current_database()::text, 'popsell_maintenance'::text;
    RETURN job;
END
$$;
COMMENT ON FUNCTION popsell.schedule_jobs(text) IS
    'Register popsell.run_maintenance() with pg_cron (run as popsell_maintenance) when pg_cron lives in this database and its extension is installed here; else PS500 with the exact cron.schedule_in_database call to run there.';

CREATE FUNCTION popsell.unschedule_jobs()
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn text;
    job text;
    n bigint;
BEGIN
    fn := popsell._cron_object('function', 'unschedule(bigint)');
    job := popsell._cron_object('table', 'job');
    IF fn IS NULL OR job IS NULL THEN
        PERFORM popsell._cron_missing(
            format('SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = %L AND database = %L;',
                   popsell._cron_job_name(), current_database()));
    END IF;
    EXECUTE format('SELECT count(%s(j.jobid)) FROM %s j WHERE j.jobname OPERATOR(pg_catalog.=) $1 AND j.database OPERATOR(pg_catalog.=) $2',
                   fn, job)
       INTO n
      USING popsell._cron_job_name(), current_database()::text;
    RETURN n;
END
$$;
COMMENT ON FUNCTION popsell.unschedule_jobs() IS
    'Remove the pg_cron job of popsell.run_maintenance for this database (pg_cron installed here, in the database it lives in); returns how many jobs were removed; else PS500 with the exact call to run in the pg_cron database.';

-- -------------------------------------------------------------------
-- Activity, however recorded (SPEC section 3, v2): an interaction other
-- than an open, or a sale, moves contacts.last_activity_at, whether it
-- comes from record_interaction/record_sale or a plain INSERT (or an
-- UPDATE attaching it to a contact) by a role allowed to write.  Set-based, once per statement; a time in the future
-- counts as now (as-of time in a run), so no row keeps a contact forever.
-- -------------------------------------------------------------------
CREATE FUNCTION popsell.contact_activity() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t timestamptz := popsell._lifecycle_now();
BEGIN
    IF TG_LEVEL <> 'STATEMENT' OR TG_WHEN <> 'AFTER' OR TG_OP NOT IN ('INSERT', 'UPDATE')
       OR TG_TABLE_SCHEMA <> 'popsell' OR TG_TABLE_NAME NOT IN ('interactions', 'sales') THEN
        RAISE EXCEPTION 'popsell.contact_activity() handles AFTER INSERT or UPDATE statements on interactions and sales only'
            USING ERRCODE = 'PS900';
    END IF;
    IF popsell._restoring() THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'interactions' THEN
        UPDATE popsell.contacts c SET last_activity_at = a.at
          FROM (SELECT n.contact_id, max(least(n.occurred_at, t)) AS at
                  FROM added_interactions n
                 WHERE n.contact_id IS NOT NULL AND n.kind <> 'open'
                 GROUP BY n.contact_id) a
         WHERE c.id = a.contact_id AND (c.last_activity_at IS NULL OR c.last_activity_at < a.at);
    ELSE
        UPDATE popsell.contacts c SET last_activity_at = a.at
          FROM (SELECT n.contact_id, max(least(n.sold_at, t)) AS at
                  FROM added_sales n
                 WHERE n.contact_id IS NOT NULL
                 GROUP BY n.contact_id) a
         WHERE c.id = a.contact_id AND (c.last_activity_at IS NULL OR c.last_activity_at < a.at);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION popsell.contact_activity() IS
    'Trigger: inserted or updated interactions other than open, and sales, move their contacts'' last_activity_at (a future time counts as now), however the rows are written.';

CREATE TRIGGER popsell_61_activity
    AFTER INSERT ON popsell.interactions
    REFERENCING NEW TABLE AS added_interactions
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.contact_activity();
CREATE TRIGGER popsell_61_activity
    AFTER INSERT ON popsell.sales
    REFERENCING NEW TABLE AS added_sales
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.contact_activity();
-- a row attached to a contact later (contact_id set, an open turned into
-- a click, the time corrected) counts too; a transition table cannot go
-- with UPDATE OF columns, so every update is seen: the rows' own times
-- only ever raise last_activity_at to what they say.
CREATE TRIGGER popsell_62_activity_update
    AFTER UPDATE ON popsell.interactions
    REFERENCING NEW TABLE AS added_interactions
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.contact_activity();
CREATE TRIGGER popsell_62_activity_update
    AFTER UPDATE ON popsell.sales
    REFERENCING NEW TABLE AS added_sales
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.contact_activity();

-- -------------------------------------------------------------------
-- Settings (SPEC section 3, v2): one row, for good (no DELETE, no second
-- row, no TRUNCATE, by anyone: owner and superusers included, replication
-- role too); every window at least one day; suspension_max and
-- deletion_grace (the windows that end in a brand-wide erasure) changed
-- by vendor staff only.  A restore replaces the row (popsell_10_restore).
-- -------------------------------------------------------------------
CREATE FUNCTION popsell.settings_guard() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    w text;
    v interval;
BEGIN
    IF TG_TABLE_SCHEMA <> 'popsell' OR TG_TABLE_NAME <> 'settings' OR TG_WHEN <> 'BEFORE' THEN
        RAISE EXCEPTION 'popsell.settings_guard() handles BEFORE triggers on popsell.settings only'
            USING ERRCODE = 'PS900';
    END IF;
    -- A restore replaces the row: its INSERT (popsell_10_restore deletes
    -- the installed row first, from inside that trigger); a DELETE or
    -- TRUNCATE of its own is refused even then.
    IF popsell._restoring()
       AND (TG_OP IN ('INSERT', 'UPDATE') OR (TG_OP = 'DELETE' AND pg_catalog.pg_trigger_depth() > 1)) THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_OP IN ('DELETE', 'TRUNCATE', 'INSERT') THEN
        RAISE EXCEPTION '% on popsell.settings is refused: it holds exactly one row', TG_OP
            USING ERRCODE = 'PS510',
                  DETAIL = 'Every retention rule reads its windows from that row.',
                  HINT = 'UPDATE popsell.settings to change the configuration.';
    END IF;
    FOREACH w IN ARRAY ARRAY['deletion_grace', 'ambassador_inactivity', 'inactivity_warning_interval',
                             'new_contact_invitation_window', 'invitation_response_window',
                             'email_confirmation_window', 'optout_retention', 'contact_inactivity',
                             'suspension_max', 'log_retention', 'signup_confirmation_window'] LOOP
        v := pg_catalog.to_jsonb(NEW) ->> w;
        IF NOT popsell._is_window(v) THEN
            RAISE EXCEPTION 'settings.% must be at least 1 day with no negative part, not %', w, v
                USING ERRCODE = 'PS510',
                      DETAIL = 'Every retention window has a floor of one day, and its months, days and time are each zero or more (a mixed-sign interval goes back in time in date arithmetic).',
                      HINT = pg_catalog.format('SET %s to 1 day or more, e.g. ''30 days''.', w);
        END IF;
    END LOOP;
    IF NEW.inactivity_warnings IS NULL OR NEW.inactivity_warnings < 1 THEN
        RAISE EXCEPTION 'settings.inactivity_warnings must be at least 1, not %', NEW.inactivity_warnings
            USING ERRCODE = 'PS510',
                  DETAIL = 'An inactive ambassador is warned before deletion (SPEC section 7).',
                  HINT = 'SET inactivity_warnings between 1 and 10.';
    END IF;
    IF (NEW.suspension_max IS DISTINCT FROM OLD.suspension_max
        OR NEW.deletion_grace IS DISTINCT FROM OLD.deletion_grace)
       AND NOT (popsell._caller_in('popsell_owner') OR popsell._caller_in('popsell_account_team')
                OR popsell._caller_in('popsell_technical')) THEN
        RAISE EXCEPTION 'permission denied to change settings.suspension_max or settings.deletion_grace'
            USING ERRCODE = '42501',
                  DETAIL = 'These windows end in a brand-wide erasure: vendor staff (popsell_account_team, popsell_technical) set them.',
                  HINT = 'Ask the vendor''s account team.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION popsell.settings_guard() IS
    'Trigger: popsell.settings keeps exactly one row (PS510 on INSERT, DELETE, TRUNCATE, for every role), every window is at least one day with no negative part and inactivity_warnings at least 1 (PS510), suspension_max and deletion_grace change only by vendor staff (42501).';

CREATE TRIGGER popsell_20_settings_guard
    BEFORE INSERT OR UPDATE OR DELETE ON popsell.settings
    FOR EACH ROW EXECUTE FUNCTION popsell.settings_guard();
CREATE TRIGGER popsell_20_settings_truncate
    BEFORE TRUNCATE ON popsell.settings
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.settings_guard();
-- also with session_replication_role = replica
ALTER TABLE popsell.settings ENABLE ALWAYS TRIGGER popsell_20_settings_guard;
ALTER TABLE popsell.settings ENABLE ALWAYS TRIGGER popsell_20_settings_truncate;

GRANT USAGE ON SCHEMA popsell TO popsell_maintenance, popsell_technical, popsell_account_team;
GRANT EXECUTE ON FUNCTION popsell.run_maintenance(timestamptz)
    TO popsell_maintenance, popsell_technical, popsell_account_team;
GRANT EXECUTE ON FUNCTION popsell.maintenance_preview(timestamptz)
    TO popsell_maintenance, popsell_technical, popsell_account_team;
GRANT EXECUTE ON FUNCTION popsell.maintenance_rules() TO popsell_maintenance, popsell_technical, popsell_account_team;
GRANT EXECUTE ON FUNCTION popsell.schedule_jobs(text), popsell.unschedule_jobs(), popsell._cron_job_name(),
    popsell._cron_object(text, text), popsell._cron_missing(text)
    TO popsell_technical;
-- popsell_maintenance reads its own record (the security section covers staff).
GRANT SELECT ON popsell.maintenance_runs TO popsell_maintenance;
CREATE POLICY popsell_maintenance_select ON popsell.maintenance_runs FOR SELECT TO popsell_maintenance
    USING (true);
COMMENT ON POLICY popsell_maintenance_select ON popsell.maintenance_runs IS
    'The scheduled-jobs role reads the record of the runs.';

-- security_invoker: the reader's own rights on popsell.maintenance_runs
-- (row security) and on popsell.maintenance_preview decide, so only roles
-- that may already read the run record and preview the rules see it.
CREATE VIEW popsell.maintenance_status WITH (security_invoker = true) AS
SELECT r.rule,
       r.position::integer AS position,
       l.run_id AS last_run_id,
       l.as_of AS last_as_of,
       l.finished_at AS last_finished_at,
       l.affected AS last_affected,
       l.failed_sqlstate AS last_failed_sqlstate,
       l.run_by AS last_run_by,
       ok.finished_at AS last_success_at,
       coalesce(f.failures, 0) AS failures_since_success,
       p.affected AS due_now,
       l.started_at AS last_started_at,
       l.finished_at OPERATOR(pg_catalog.-) l.started_at AS last_duration,
       CASE WHEN l.run_id IS NULL THEN NULL
            WHEN l.failed_sqlstate IS NULL THEN 'done'
            WHEN l.outcome OPERATOR(pg_catalog.=) 'skipped' THEN 'skipped'
            ELSE 'failed' END AS last_outcome,
       pg_catalog.now() OPERATOR(pg_catalog.-) ok.finished_at AS last_success_age,
       coalesce(f.skipped, 0) AS skipped_since_success,
       l.skipped_rows AS last_skipped_rows
  FROM popsell.maintenance_rules() WITH ORDINALITY AS r(rule, position)
  LEFT JOIN LATERAL (
        SELECT m.run_id, m.as_of, m.started_at, m.finished_at, m.affected, m.failed_sqlstate, m.run_by,
               m.outcome, m.skipped_rows
          FROM popsell.maintenance_runs m
         WHERE m.rule OPERATOR(pg_catalog.=) r.rule
         ORDER BY m.id DESC
         LIMIT 1) AS l ON true
  LEFT JOIN LATERAL (
        SELECT m.id, m.finished_at
          FROM popsell.maintenance_runs m
         WHERE m.rule OPERATOR(pg_catalog.=) r.rule
           AND m.failed_sqlstate IS NULL
         ORDER BY m.id DESC
         LIMIT 1) AS ok ON true
  LEFT JOIN LATERAL (
        SELECT pg_catalog.count(*) FILTER (WHERE m.outcome OPERATOR(pg_catalog.<>) 'skipped') AS failures,
               pg_catalog.count(*) FILTER (WHERE m.outcome OPERATOR(pg_catalog.=) 'skipped') AS skipped
          FROM popsell.maintenance_runs m
         WHERE m.rule OPERATOR(pg_catalog.=) r.rule
           AND m.failed_sqlstate IS NOT NULL
           AND m.id OPERATOR(pg_catalog.>) coalesce(ok.id, 0)) AS f ON true
  LEFT JOIN popsell.maintenance_preview(pg_catalog.now()) AS p
         ON p.rule OPERATOR(pg_catalog.=) r.rule;

REVOKE ALL ON popsell.maintenance_status FROM PUBLIC;
-- The vendor's staff and the scheduled-jobs role: the readers of the run
-- record who may also preview the rules.
GRANT SELECT ON popsell.maintenance_status
    TO popsell_owner, popsell_maintenance, popsell_account_team, popsell_technical;

COMMENT ON VIEW popsell.maintenance_status IS
    'Health of the retention job, one row per rule in run order: the last run of popsell.run_maintenance (as-of time, start, finish, duration, outcome, rows, failed SQLSTATE, role), the last success and its age, failed and skipped runs since, and the rows due now (popsell.maintenance_preview). Counts only.';
COMMENT ON COLUMN popsell.maintenance_status.rule IS 'Retention rule (popsell.maintenance_rules()).';
COMMENT ON COLUMN popsell.maintenance_status.position IS 'Order in which run_maintenance applies the rule.';
COMMENT ON COLUMN popsell.maintenance_status.last_run_id IS 'Run number of the last run that recorded this rule; NULL if it never ran.';
COMMENT ON COLUMN popsell.maintenance_status.last_as_of IS 'The time the last run applied the rule as of (run_maintenance(at)).';
COMMENT ON COLUMN popsell.maintenance_status.last_finished_at IS 'Wall-clock time the last run finished the rule.';
COMMENT ON COLUMN popsell.maintenance_status.last_affected IS 'Rows the last run acted on (0 when it failed).';
COMMENT ON COLUMN popsell.maintenance_status.last_failed_sqlstate IS 'SQLSTATE of the last run''s failure; NULL when it succeeded.';
COMMENT ON COLUMN popsell.maintenance_status.last_run_by IS 'Session role of the last run (popsell_maintenance under pg_cron).';
COMMENT ON COLUMN popsell.maintenance_status.last_success_at IS 'Wall-clock time of the last successful run of the rule.';
COMMENT ON COLUMN popsell.maintenance_status.failures_since_success IS 'Failed runs of the rule since its last success (alert when above 0).';
COMMENT ON COLUMN popsell.maintenance_status.last_started_at IS 'Wall-clock time the last run started the rule.';
COMMENT ON COLUMN popsell.maintenance_status.last_duration IS 'How long the last run of the rule took.';
COMMENT ON COLUMN popsell.maintenance_status.last_outcome IS 'done, failed, or skipped (another run held the lock, or a lock held by another session made the rule give up).';
COMMENT ON COLUMN popsell.maintenance_status.last_success_age IS 'now() minus last_success_at: above a day, the job has stopped running or keeps failing (alert).';
COMMENT ON COLUMN popsell.maintenance_status.skipped_since_success IS 'Skipped runs of the rule since its last success.';
COMMENT ON COLUMN popsell.maintenance_status.due_now IS 'Rows the rule would act on if run now (popsell.maintenance_preview(now())); NULL when counting waited more than half a second for a lock.';
COMMENT ON COLUMN popsell.maintenance_status.last_skipped_rows IS 'Due rows the last run left because another session held them locked (done by a later run).';
-- ===================================================================
-- Ambassador and brand lifecycle (SPEC section 5: Ambassadors, Brand).
-- Signup (terms, whitelist, SSO exclusive), bcrypt passwords, logins,
-- unsubscription and end of contract with a grace period and a rollback,
-- SSO provisioning, the anti-fraud activity log (IPs hashed at write
-- time), program suspension, end of the brand's contract and the
-- pre-GDPR migration of contacts.  The functions are SECURITY DEFINER
-- (they run as popsell_owner) and check who calls them themselves.
-- Error codes: PS105 column changed outside its function, PS200 unknown
-- id, PS202 email, PS300 ambassador state, PS301 grace over, PS302
-- whitelist, PS303 SSO exclusive, PS304 email already registered, PS305
-- password, PS310 program state.
-- ===================================================================

-- ------------------------------------------------------------------
-- Accounts as the guide describes them (signup form): the email is
-- verified by a single-use link before the account opens, a password is
-- needed unless the ambassador signs up with Facebook or SSO, and the
-- brand may require optional fields.
-- ------------------------------------------------------------------
ALTER TABLE popsell.settings
    ADD COLUMN signup_confirmation_window interval NOT NULL DEFAULT '7 days'
        CONSTRAINT settings_signup_confirmation_window_floor
        CHECK (popsell._is_window(signup_confirmation_window)),
    ADD COLUMN required_ambassador_fields text[] NOT NULL DEFAULT '{}'
        CONSTRAINT settings_required_ambassador_fields_known
        CHECK (required_ambassador_fields OPERATOR(pg_catalog.<@)
               ARRAY['first_name', 'last_name', 'customer_id', 'facebook_id', 'address', 'city',
                     'postal_code', 'country', 'preferred_language', 'birth_date', 'photo_path',
                     'description', 'position', 'iban']);
COMMENT ON COLUMN popsell.settings.signup_confirmation_window IS
    'How long the link of a signup''s confirmation email stays valid (default 7 days, at least 1 day); an unconfirmed signup is deleted by run_maintenance (ambassador_unconfirmed) once it has passed.';
COMMENT ON COLUMN popsell.settings.required_ambassador_fields IS
    'Optional ambassador fields the brand makes required (default none): signup, SSO provisioning and profile updates refuse an account missing one (PS306).';
GRANT UPDATE (signup_confirmation_window, required_ambassador_fields) ON popsell.settings TO popsell_brand;

ALTER TABLE popsell.ambassadors ADD COLUMN email_confirmed_at timestamptz;
COMMENT ON COLUMN popsell.ambassadors.email_confirmed_at IS
    'When the ambassador confirmed the signup email (popsell.confirm_ambassador_email); NULL for SSO accounts (the identity provider vouches) and accounts older than the confirmation.';

-- The pending confirmation of a signup: only the SHA-256 of the token
-- (the token itself travels in the email_confirmation outbox row).  A
-- row here is what makes an account wait for its confirmation.
CREATE TABLE popsell.ambassador_email_tokens (
    ambassador_id bigint PRIMARY KEY REFERENCES popsell.ambassadors (id) ON DELETE CASCADE,
    token_hash    bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL
);
COMMENT ON TABLE popsell.ambassador_email_tokens IS
    'Internal: pending signup confirmations, the SHA-256 of each single-use token (never the token); deleted on confirmation.';

-- The notice the pre-GDPR migration queues for ambassadors.
ALTER TYPE popsell.outbox_kind ADD VALUE 'migration_notice' AFTER 'suspension_notice';

-- Now, or the as-of time popsell_owner set for a run "in the future"
-- (the contacts trigger stamps with the same value).
CREATE FUNCTION popsell._lifecycle_now() RETURNS timestamptz
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN coalesce(popsell._as_of(),
                    pg_catalog.now());
COMMENT ON FUNCTION popsell._lifecycle_now() IS
    'Internal: popsell.as_of when set, else now(): the time lifecycle functions stamp with.';

-- Refuse a caller that is none of the given roles (superusers and
-- popsell_owner always pass).
CREATE FUNCTION popsell._require_caller(p_roles text[], p_what text) RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF popsell._caller_in('popsell_owner') THEN
        RETURN;
    END IF;
    FOR i IN 1 .. coalesce(pg_catalog.array_length(p_roles, 1), 0) LOOP
        IF popsell._caller_in(p_roles[i]) THEN
            RETURN;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'permission denied for %', p_what
        USING ERRCODE = '42501',
              DETAIL = pg_catalog.format('%s is for members of %s.', p_what,
                                         pg_catalog.array_to_string(p_roles, ', ')),
              HINT = 'Call it from a session of one of those roles.';
END
$$;
COMMENT ON FUNCTION popsell._require_caller(text[], text) IS
    'Internal: raise 42501 unless the role calling into popsell is a member of one of the given roles.';

-- The ambassador row to act on, locked: PS200 for NULL or unknown ids,
-- and unless the caller is one of p_roles or (p_self) the ambassador
-- itself.  Unknown and foreign ids get the same error.
CREATE FUNCTION popsell._ambassador_to_act_on(p_id bigint, p_roles text[], p_self boolean)
    RETURNS popsell.ambassadors
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a popsell.ambassadors;
    allowed boolean := popsell._caller_in('popsell_owner');
BEGIN
    IF p_id IS NULL THEN
        RAISE EXCEPTION 'ambassador id must not be NULL'
            USING ERRCODE = 'PS200', HINT = 'Pass the id of an existing ambassador.';
    END IF;
    FOR i IN 1 .. coalesce(pg_catalog.array_length(p_roles, 1), 0) LOOP
        allowed := allowed OR popsell._caller_in(p_roles[i]);
    END LOOP;
    IF NOT allowed AND p_self THEN
        allowed := p_id OPERATOR(pg_catalog.=) popsell.current_ambassador_id();
    END IF;
    IF allowed THEN
        SELECT * INTO a FROM popsell.ambassadors WHERE id OPERATOR(pg_catalog.=) p_id FOR UPDATE;
        -- the brand never sees incomplete signups, so they are unknown to it
        IF a.status OPERATOR(pg_catalog.=) 'signup_incomplete'
           AND NOT (popsell._caller_in('popsell_owner') OR popsell._caller_in('popsell_app')
                    OR popsell._caller_in('popsell_account_team') OR popsell._caller_in('popsell_technical'))
           AND popsell._caller_in('popsell_brand') THEN
            a := NULL;
        END IF;
    END IF;
    IF NOT allowed OR a.id IS NULL THEN
        RAISE EXCEPTION 'ambassador % does not exist or is not yours', p_id
            USING ERRCODE = 'PS200',
                  HINT = 'Check the ambassador id and the role or ambassador the session acts as.';
    END IF;
    RETURN a;
END
$$;
COMMENT ON FUNCTION popsell._ambassador_to_act_on(bigint, text[], boolean) IS
    'Internal: the locked ambassador row if the calling role may act on it, else PS200.';

CREATE FUNCTION popsell._refuse_leaving(a popsell.ambassadors) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF a.status OPERATOR(pg_catalog.=) 'leaving' THEN
        RAISE EXCEPTION 'ambassador % is leaving', a.id
            USING ERRCODE = 'PS300',
                  DETAIL = pg_catalog.format('Access was blocked; the account is deleted at %s.', a.deletion_due_at),
                  HINT = 'Staff can call popsell.restore_ambassador() before then.';
    END IF;
END
$$;
COMMENT ON FUNCTION popsell._refuse_leaving(popsell.ambassadors) IS
    'Internal: PS300 when the ambassador is leaving.';

-- ------------------------------------------------------------------
-- Row rules of popsell.ambassadors: emails stored normalized, only bcrypt
-- hashes as passwords (a clear PS305 before the CHECK's 23514), and the
-- lifecycle columns (status, deletion_due_at, leaving_reason) moved only
-- by popsell's functions (run as popsell_owner) or a superuser.
-- ------------------------------------------------------------------
CREATE FUNCTION popsell.ambassadors_before_row() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- the role running the statement: popsell_owner inside popsell's
    -- functions, else the application's role (this trigger runs as it,
    -- so it calls nothing that role may not execute)
    su boolean := coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r
                             WHERE r.rolname OPERATOR(pg_catalog.=) current_user), false);
    new_j jsonb;
    old_j jsonb;
    profile_changed boolean := false;
    missing text;
BEGIN
    IF su THEN
        IF popsell._restoring() THEN
            RETURN NEW;
        END IF;
    END IF;
    IF TG_TABLE_SCHEMA OPERATOR(pg_catalog.<>) 'popsell' OR TG_TABLE_NAME OPERATOR(pg_catalog.<>) 'ambassadors'
       OR TG_WHEN OPERATOR(pg_catalog.<>) 'BEFORE' OR TG_LEVEL OPERATOR(pg_catalog.<>) 'ROW'
       OR TG_OP NOT IN ('INSERT', 'UPDATE') THEN
        RAISE EXCEPTION 'popsell.ambassadors_before_row must be a BEFORE INSERT OR UPDATE FOR EACH ROW trigger on popsell.ambassadors'
            USING ERRCODE = 'PS900', HINT = 'Drop this trigger; popsell attaches its triggers itself.';
    END IF;
    IF NEW.email IS NOT NULL THEN
        NEW.email := popsell.normalize_email(NEW.email);
    END IF;
    -- History (signup date, last login) is given only by trusted callers
    -- (migrations, SSO sync); anyone else could backdate an ambassador into
    -- the inactivity deletion (SPEC section 5, history columns).
    IF NOT (su OR current_user OPERATOR(pg_catalog.=) 'popsell_owner'
            OR pg_catalog.pg_has_role(current_user, 'popsell_app', 'USAGE')) THEN
        IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
            NEW.created_at := pg_catalog.now();
            NEW.last_login_at := NULL;
        ELSIF NEW.created_at IS DISTINCT FROM OLD.created_at
              OR NEW.last_login_at IS DISTINCT FROM OLD.last_login_at THEN
            RAISE EXCEPTION 'created_at and last_login_at of ambassador % change only through popsell functions', OLD.id
                USING ERRCODE = 'PS105',
                      HINT = 'Logins are recorded with popsell.record_login(id).';
        END IF;
    END IF;
    IF NEW.password_hash IS NOT NULL
       AND (TG_OP OPERATOR(pg_catalog.=) 'INSERT' OR NEW.password_hash IS DISTINCT FROM OLD.password_hash)
       AND NEW.password_hash !~ '^\$2[abxy]\$[0-9]{2}\$[./A-Za-z0-9]{53}$' THEN
        RAISE EXCEPTION 'password_hash of ambassador % must be a bcrypt hash', NEW.id
            USING ERRCODE = 'PS305',
                  DETAIL = 'Plain passwords and other hash schemes are never stored.',
                  HINT = 'Use popsell.set_password(id, password), which hashes with bcrypt.';
    END IF;
    IF NOT su THEN
        -- Fields the brand requires (settings.required_ambassador_fields):
        -- checked on signup and provisioning, and on every update of the
        -- profile (not on the lifecycle's own bookkeeping, so leaving,
        -- logins and retention never fail on them).
        new_j := pg_catalog.to_jsonb(NEW);
        IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
            old_j := pg_catalog.to_jsonb(OLD);
            profile_changed := EXISTS (
                SELECT 1 FROM pg_catalog.unnest(ARRAY['kind', 'first_name', 'last_name', 'customer_id',
                              'facebook_id', 'email', 'address', 'city', 'postal_code', 'country',
                              'preferred_language', 'birth_date', 'photo_path', 'description',
                              'position', 'iban']) AS k
                 WHERE (new_j OPERATOR(pg_catalog.->) k) IS DISTINCT FROM (old_j OPERATOR(pg_catalog.->) k));
        END IF;
        IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' OR profile_changed THEN
            SELECT f INTO missing
              FROM pg_catalog.unnest((SELECT s.required_ambassador_fields FROM popsell.settings s))
                   WITH ORDINALITY AS r(f, n)
             WHERE NULLIF(pg_catalog.btrim(new_j OPERATOR(pg_catalog.->>) f), '') IS NULL
             ORDER BY n
             LIMIT 1;
            IF missing IS NOT NULL THEN
                RAISE EXCEPTION 'field % is required for ambassadors', missing
                    USING ERRCODE = 'PS306',
                          DETAIL = 'The brand requires it (settings.required_ambassador_fields).',
                          HINT = pg_catalog.format('Give a value for %s.', missing);
            END IF;
        END IF;
        -- No active account without a way to log in: a password, unless
        -- the ambassador signs in with Facebook or SSO.
        IF NEW.status OPERATOR(pg_catalog.=) 'active'
           AND NEW.password_hash IS NULL AND NEW.sso_subject IS NULL
           AND NULLIF(NEW.facebook_id, '') IS NULL
           AND (TG_OP OPERATOR(pg_catalog.=) 'INSERT'
                OR OLD.status IS DISTINCT FROM NEW.status
                OR OLD.password_hash IS NOT NULL OR OLD.sso_subject IS NOT NULL
                OR NULLIF(OLD.facebook_id, '') IS NOT NULL) THEN
            RAISE EXCEPTION 'ambassador % needs a password to be active', NEW.id
                USING ERRCODE = 'PS305',
                      DETAIL = 'Only accounts signed up with Facebook or SSO are active without a password.',
                      HINT = 'Set one with popsell.set_password(id, password) first.';
        END IF;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE'
       AND (NEW.status IS DISTINCT FROM OLD.status
            OR NEW.deletion_due_at IS DISTINCT FROM OLD.deletion_due_at
            OR NEW.leaving_reason IS DISTINCT FROM OLD.leaving_reason)
       AND NOT (su OR current_user OPERATOR(pg_catalog.=) 'popsell_owner') THEN
        RAISE EXCEPTION 'status, deletion_due_at and leaving_reason of ambassador % change only through popsell functions', OLD.id
            USING ERRCODE = 'PS105',
                  HINT = 'Use popsell.accept_terms, unsubscribe_ambassador, end_ambassador_contract, restore_ambassador or sso_delete_ambassador.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION popsell.ambassadors_before_row() IS
    'Trigger: ambassadors'' emails normalized, bcrypt-only password hashes (PS305), lifecycle columns moved only by popsell functions (PS105); except for superusers, the brand''s required fields on insert and profile updates (PS306) and no active account without a password unless Facebook or SSO (PS305).';

CREATE TRIGGER popsell_40_lifecycle
    BEFORE INSERT OR UPDATE ON popsell.ambassadors
    FOR EACH ROW EXECUTE FUNCTION popsell.ambassadors_before_row();

-- Keys signup and SSO accept in their data object.
CREATE FUNCTION popsell._ambassador_data_keys() RETURNS text[]
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN ARRAY['kind', 'first_name', 'last_name', 'customer_id', 'facebook_id', 'address',
                 'city', 'postal_code', 'country', 'preferred_language', 'birth_date', 'photo_path',
                 'description', 'position', 'iban', 'hide_events', 'hide_from_community',
                 'newsletter_optin', 'event_notifications', 'challenge_notifications',
                 'comment_notifications'];
COMMENT ON FUNCTION popsell._ambassador_data_keys() IS
    'Internal: the ambassador fields signup and sso_upsert_ambassador accept in their data object.';

CREATE FUNCTION popsell._check_ambassador_data(p_data jsonb, p_extra text[]) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bad text;
BEGIN
    IF p_data IS NULL OR pg_catalog.jsonb_typeof(p_data) OPERATOR(pg_catalog.<>) 'object' THEN
        RAISE EXCEPTION 'data must be a JSON object of ambassador fields'
            USING ERRCODE = 'PS106',
                  HINT = 'Pass e.g. ''{"first_name": "Ada", "city": "Lyon"}''.';
    END IF;
    SELECT pg_catalog.string_agg(k, ', ' ORDER BY k) INTO bad
      FROM pg_catalog.jsonb_object_keys(p_data) AS k
     WHERE NOT k OPERATOR(pg_catalog.=) ANY (popsell._ambassador_data_keys() OPERATOR(pg_catalog.||) p_extra);
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'unknown or protected ambassador fields: %', bad
            USING ERRCODE = 'PS106',
                  HINT = 'Status, terms, password and login role are set by their own functions.';
    END IF;
END
$$;
COMMENT ON FUNCTION popsell._check_ambassador_data(jsonb, text[]) IS
    'Internal: PS106 unless data is an object whose keys are ambassador fields a signup may set.';

-- The whitelist lets this email or customer id sign up (an empty
-- whitelist lets everyone).  Compared under every live key.
CREATE FUNCTION popsell._whitelisted(p_email text, p_customer_id text) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN NOT EXISTS (SELECT 1 FROM popsell.registration_whitelist)
        OR EXISTS (SELECT 1 FROM popsell.registration_whitelist w
                    WHERE w.email_hash OPERATOR(pg_catalog.=) ANY (popsell.email_hashes(p_email)))
        OR (NULLIF(p_customer_id, '') IS NOT NULL
            AND EXISTS (SELECT 1 FROM popsell.registration_whitelist w
                         WHERE w.customer_id_hash OPERATOR(pg_catalog.=) ANY (popsell.email_hashes(p_customer_id))));
COMMENT ON FUNCTION popsell._whitelisted(text, text) IS
    'Internal: whether the registration whitelist is empty or holds the email''s or the customer id''s hash (any live key).';

CREATE FUNCTION popsell.whitelist_add(email text DEFAULT NULL, customer_id text DEFAULT NULL) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    new_id bigint;
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_brand', 'popsell_account_team', 'popsell_technical'],
                                    'popsell.whitelist_add');
    IF pg_catalog.num_nonnulls(NULLIF(email, ''), NULLIF(customer_id, '')) OPERATOR(pg_catalog.<>) 1 THEN
        RAISE EXCEPTION 'give either an email or a customer id'
            USING ERRCODE = 'PS106', HINT = 'One whitelist entry per email or customer id.';
    END IF;
    INSERT INTO popsell.registration_whitelist (email_hash, customer_id_hash, key_id)
    VALUES (CASE WHEN NULLIF(email, '') IS NOT NULL
                 THEN popsell.hash_email(popsell.normalize_email(email)) END,
            CASE WHEN NULLIF(customer_id, '') IS NOT NULL
                 THEN popsell.hash_identifier(customer_id) END,
            popsell.hash_key_id())
    RETURNING id INTO new_id;
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION popsell.whitelist_add(text, text) IS
    'Allow an email or a customer id to sign up (stored as a keyed hash). While the whitelist has entries, only they may sign up.';

-- Insert a new ambassador from validated data.
CREATE FUNCTION popsell._insert_ambassador(p_email text, p_data jsonb, p_terms boolean, p_sso_subject text)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r popsell.ambassadors := pg_catalog.jsonb_populate_record(NULL::popsell.ambassadors, p_data);
    t timestamptz := popsell._lifecycle_now();
    new_id bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM popsell.ambassadors a WHERE popsell_internal._lookup_key(a.email) OPERATOR(pg_catalog.=) popsell_internal._lookup_key(p_email)) THEN
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
            CASE WHEN p_terms AND p_sso_subject IS NOT NULL THEN 'active'
                 ELSE 'signup_incomplete' END::popsell.ambassador_status,
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
    'Internal: insert a new ambassador, signup_incomplete, or active when provisioned by SSO with the terms accepted.';

CREATE FUNCTION popsell._hash_password(p_password text) RETURNS text
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_password IS NULL OR p_password OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'a password must not be NULL or empty'
            USING ERRCODE = 'PS305', HINT = 'Pass the password the ambassador chose.';
    END IF;
    IF pg_catalog.octet_length(p_password) OPERATOR(pg_catalog.>) 72 THEN
        RAISE EXCEPTION 'a password must be at most 72 bytes'
            USING ERRCODE = 'PS305',
                  DETAIL = 'bcrypt ignores what follows the 72nd byte.',
                  HINT = 'Choose a shorter password.';
    END IF;
    RETURN popsell._bcrypt(p_password,
                           popsell._bcrypt_salt((SELECT s.bcrypt_cost FROM popsell.settings s)));
END
$$;
COMMENT ON FUNCTION popsell._hash_password(text) IS
    'Internal: bcrypt hash of a password at settings.bcrypt_cost (PS305 for NULL, empty or over 72 bytes).';

-- What an account still lacks before it may become active: 'terms',
-- 'email_confirmation' (a signup token is pending), 'password' (none, and
-- no Facebook or SSO sign-in).  Empty when complete.
CREATE FUNCTION popsell._signup_missing(a popsell.ambassadors) RETURNS text[]
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN pg_catalog.array_remove(ARRAY[
        CASE WHEN a.terms_accepted_at IS NULL THEN 'terms' END,
        CASE WHEN EXISTS (SELECT 1 FROM popsell.ambassador_email_tokens t
                           WHERE t.ambassador_id OPERATOR(pg_catalog.=) a.id)
             THEN 'email_confirmation' END,
        CASE WHEN a.password_hash IS NULL AND a.sso_subject IS NULL AND NULLIF(a.facebook_id, '') IS NULL
             THEN 'password' END], NULL);
COMMENT ON FUNCTION popsell._signup_missing(popsell.ambassadors) IS
    'Internal: the steps an ambassador account lacks before it may be active (terms, email_confirmation, password); empty when complete.';

-- An incomplete signup that has every step becomes active.
CREATE FUNCTION popsell._activate_if_complete(p_id bigint) RETURNS popsell.ambassador_status
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a popsell.ambassadors;
BEGIN
    SELECT * INTO a FROM popsell.ambassadors WHERE id OPERATOR(pg_catalog.=) p_id FOR UPDATE;
    IF a.status OPERATOR(pg_catalog.=) 'signup_incomplete'
       AND pg_catalog.cardinality(popsell._signup_missing(a)) OPERATOR(pg_catalog.=) 0 THEN
        UPDATE popsell.ambassadors SET status = 'active' WHERE id OPERATOR(pg_catalog.=) p_id;
        RETURN 'active';
    END IF;
    RETURN a.status;
END
$$;
COMMENT ON FUNCTION popsell._activate_if_complete(bigint) IS
    'Internal: make an incomplete signup active when it lacks nothing (terms, email confirmation, password); returns the status.';

CREATE FUNCTION popsell.confirm_ambassador_email(token text) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a popsell.ambassadors;
    aid bigint;
    made timestamptz;
    win interval := (SELECT s.signup_confirmation_window FROM popsell.settings s);
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_app', 'popsell_account_team', 'popsell_technical'],
                                    'popsell.confirm_ambassador_email');
    IF confirm_ambassador_email.token IS NULL
       OR pg_catalog.octet_length(confirm_ambassador_email.token) OPERATOR(pg_catalog.>) 256 THEN
        RAISE EXCEPTION 'a confirmation token is a string of at most 256 bytes'
            USING ERRCODE = 'PS307', HINT = 'Pass the token of the confirmation link as received.';
    END IF;
    SELECT t.created_at, t.ambassador_id INTO made, aid
      FROM popsell.ambassador_email_tokens t
     WHERE t.token_hash OPERATOR(pg_catalog.=)
           pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.btrim(confirm_ambassador_email.token), 'UTF8'))
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'this confirmation token is unknown or was already used'
            USING ERRCODE = 'PS307',
                  HINT = 'A token works once; an account that is already confirmed can log in.';
    END IF;
    SELECT * INTO a FROM popsell.ambassadors WHERE id OPERATOR(pg_catalog.=) aid FOR UPDATE;
    IF made OPERATOR(pg_catalog.+) win OPERATOR(pg_catalog.<=) popsell._lifecycle_now() THEN
        RAISE EXCEPTION 'this confirmation token has expired'
            USING ERRCODE = 'PS307',
                  DETAIL = pg_catalog.format('It was valid until %s (settings.signup_confirmation_window).',
                                             made OPERATOR(pg_catalog.+) win),
                  HINT = 'The unconfirmed signup is deleted by the next maintenance run; sign up again.';
    END IF;
    PERFORM popsell._refuse_leaving(a);
    DELETE FROM popsell.ambassador_email_tokens t WHERE t.ambassador_id OPERATOR(pg_catalog.=) a.id;
    UPDATE popsell.ambassadors SET email_confirmed_at = popsell._lifecycle_now()
     WHERE id OPERATOR(pg_catalog.=) a.id;
    PERFORM popsell._activate_if_complete(a.id);
    RETURN a.id;
END
$$;
COMMENT ON FUNCTION popsell.confirm_ambassador_email(text) IS
    'The ambassador followed the link of the signup''s confirmation email: the single-use token (compared by its SHA-256) confirms the address; the account becomes active if the terms are accepted and a password is set (or Facebook). PS307 for an unknown, used or expired token (settings.signup_confirmation_window). For the app and vendor staff. Returns the ambassador id.';

-- The address is verified before the account opens: a single-use token
-- (two random UUIDs, 244 random bits) goes out in the confirmation email,
-- only its hash is kept; a new token replaces any earlier one.
CREATE FUNCTION popsell._issue_signup_token(p_ambassador_id bigint, t timestamptz) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tok text := pg_catalog.replace(pg_catalog.gen_random_uuid()::text OPERATOR(pg_catalog.||)
                                   pg_catalog.gen_random_uuid()::text, '-', '');
BEGIN
    DELETE FROM popsell.ambassador_email_tokens k WHERE k.ambassador_id OPERATOR(pg_catalog.=) p_ambassador_id;
    INSERT INTO popsell.ambassador_email_tokens (ambassador_id, token_hash, created_at)
    VALUES (p_ambassador_id, pg_catalog.sha256(pg_catalog.convert_to(tok, 'UTF8')), t);
    INSERT INTO popsell.outbox (kind, ambassador_id, payload, created_at)
    VALUES ('email_confirmation', p_ambassador_id,
            pg_catalog.jsonb_build_object('purpose', 'ambassador_signup', 'token', tok,
                                          'expires_at', t OPERATOR(pg_catalog.+)
                                              (SELECT s.signup_confirmation_window FROM popsell.settings s)),
            t);
END
$$;
COMMENT ON FUNCTION popsell._issue_signup_token(bigint, timestamptz) IS
    'Internal: a new single-use signup confirmation token for an ambassador (hash stored, email_confirmation queued), replacing any earlier one.';

CREATE FUNCTION popsell.signup(email text, data jsonb DEFAULT '{}', password text DEFAULT NULL,
                               terms_accepted boolean DEFAULT false)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e text;
    ph text;
    new_id bigint;
    t timestamptz := popsell._lifecycle_now();
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_app', 'popsell_account_team', 'popsell_technical'],
                                    'popsell.signup');
    IF (SELECT s.sso_exclusive FROM popsell.settings s) THEN
        RAISE EXCEPTION 'signup is only possible through SSO'
            USING ERRCODE = 'PS303',
                  DETAIL = 'The brand set settings.sso_exclusive.',
                  HINT = 'Sign up through the brand''s single sign-on (popsell.sso_upsert_ambassador).';
    END IF;
    IF signup.email IS NULL OR pg_catalog.btrim(signup.email) OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'an email is required to sign up'
            USING ERRCODE = 'PS202', HINT = 'Pass the ambassador''s email address.';
    END IF;
    e := popsell.normalize_email(signup.email);
    PERFORM popsell._check_ambassador_data(coalesce(signup.data, '{}'), '{}');
    IF NOT popsell._whitelisted(e, signup.data ->> 'customer_id') THEN
        RAISE EXCEPTION 'this email or customer id is not on the registration whitelist'
            USING ERRCODE = 'PS302',
                  DETAIL = 'The brand allows only whitelisted emails and customer ids to sign up.',
                  HINT = 'Ask the brand to whitelist the address or customer id.';
    END IF;
    IF signup.password IS NOT NULL THEN
        ph := popsell._hash_password(signup.password);
    END IF;
    new_id := popsell._insert_ambassador(e, coalesce(signup.data, '{}'),
                                         coalesce(signup.terms_accepted, false), NULL);
    UPDATE popsell.ambassadors SET password_hash = ph
     WHERE id OPERATOR(pg_catalog.=) new_id AND ph IS NOT NULL;
    PERFORM popsell._issue_signup_token(new_id, t);
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION popsell.signup(text, jsonb, text, boolean) IS
    'Sign an ambassador up (registration whitelist, sso_exclusive and settings.required_ambassador_fields respected): the account stays signup_incomplete, with no access, until the email is confirmed (an email_confirmation outbox row carries a single-use token for popsell.confirm_ambassador_email, valid settings.signup_confirmation_window), the terms are accepted and, unless data.facebook_id is given, a password is set. Returns the id.';

CREATE FUNCTION popsell.accept_terms(ambassador_id bigint) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a popsell.ambassadors := popsell._ambassador_to_act_on(
        accept_terms.ambassador_id, ARRAY['popsell_app', 'popsell_account_team', 'popsell_technical'], false);
BEGIN
    PERFORM popsell._refuse_leaving(a);
    UPDATE popsell.ambassadors
       SET terms_accepted_at = coalesce(terms_accepted_at, popsell._lifecycle_now())
     WHERE id OPERATOR(pg_catalog.=) a.id;
    PERFORM popsell._activate_if_complete(a.id);
END
$$;
COMMENT ON FUNCTION popsell.accept_terms(bigint) IS
    'The ambassador accepts the terms and conditions: an incomplete signup becomes active once its email is confirmed and it has a password (or Facebook/SSO).';

CREATE FUNCTION popsell.set_password(ambassador_id bigint, password text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a popsell.ambassadors := popsell._ambassador_to_act_on(
        set_password.ambassador_id, ARRAY['popsell_app', 'popsell_account_team', 'popsell_technical'], true);
BEGIN
    PERFORM popsell._refuse_leaving(a);
    UPDATE popsell.ambassadors SET password_hash = popsell._hash_password(set_password.password)
     WHERE id OPERATOR(pg_catalog.=) a.id;
    PERFORM popsell._activate_if_complete(a.id);
END
$$;
COMMENT ON FUNCTION popsell.set_password(bigint, text) IS
    'Store the bcrypt hash of an ambassador''s new password (cost settings.bcrypt_cost; the plain password is never stored); an incomplete signup that only lacked it becomes active.';

CREATE FUNCTION popsell.check_password(ambassador_id bigint, password text) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a popsell.ambassadors;
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_app', 'popsell_technical'], 'popsell.check_password');
    IF check_password.ambassador_id IS NULL THEN
        RAISE EXCEPTION 'ambassador id must not be NULL'
            USING ERRCODE = 'PS200', HINT = 'Pass the id of an existing ambassador.';
    END IF;
    SELECT * INTO a FROM popsell.ambassadors WHERE id OPERATOR(pg_catalog.=) check_password.ambassador_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ambassador % does not exist', check_password.ambassador_id
            USING ERRCODE = 'PS200', HINT = 'Check the ambassador id.';
    END IF;
    -- only an active account (terms accepted, not leaving) can log in
    RETURN a.status OPERATOR(pg_catalog.=) 'active'
       AND check_password.password IS NOT NULL
       AND a.password_hash IS NOT NULL
       AND popsell._bcrypt(check_password.password, a.password_hash) OPERATOR(pg_catalog.=) a.password_hash;
END
$$;
COMMENT ON FUNCTION popsell.check_password(bigint, text) IS
    'Whether the password matches the ambassador''s bcrypt hash; always false for an account that is not active (signup incomplete, leaving).';

CREATE FUNCTION popsell.record_login(ambassador_id bigint) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a popsell.ambassadors := popsell._ambassador_to_act_on(
        record_login.ambassador_id, ARRAY['popsell_app', 'popsell_technical'], false);
BEGIN
    PERFORM popsell._refuse_leaving(a);
    IF a.status OPERATOR(pg_catalog.<>) 'active' THEN
        RAISE EXCEPTION 'ambassador % has not completed the signup', a.id
            USING ERRCODE = 'PS300',
                  DETAIL = pg_catalog.format('An incomplete signup has no access; missing: %s.',
                                             pg_catalog.array_to_string(popsell._signup_missing(a), ', ')),
                  HINT = 'Complete it with popsell.confirm_ambassador_email(), accept_terms() and set_password().';
    END IF;
    -- a login cancels the inactivity warnings
    UPDATE popsell.ambassadors
       SET last_login_at = popsell._lifecycle_now(), inactivity_warnings_sent = 0,
           last_inactivity_warning_at = NULL
     WHERE id OPERATOR(pg_catalog.=) a.id;
END
$$;
COMMENT ON FUNCTION popsell.record_login(bigint) IS
    'Record a login of an active ambassador (cancels inactivity warnings); PS300 for a leaving or incomplete account.';

-- Start the grace period of a leaving ambassador: access blocked now,
-- deleted by run_maintenance (ambassador_leaving) when it ends.
CREATE FUNCTION popsell._start_leaving(a popsell.ambassadors, p_reason text) RETURNS timestamptz
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    due timestamptz := popsell._lifecycle_now() OPERATOR(pg_catalog.+)
                       (SELECT s.deletion_grace FROM popsell.settings s);
BEGIN
    PERFORM popsell._refuse_leaving(a);
    UPDATE popsell.ambassadors
       SET status = 'leaving', leaving_reason = p_reason, deletion_due_at = due
     WHERE id OPERATOR(pg_catalog.=) a.id;
    -- its mail still queued is cancelled by the status change
    -- (popsell_60_leaving, popsell.ambassadors_leaving)
    RETURN due;
END
$$;
COMMENT ON FUNCTION popsell._start_leaving(popsell.ambassadors, text) IS
    'Internal: block an ambassador''s access (its queued mail is cancelled by the status trigger) and set its deletion after settings.deletion_grace.';

CREATE FUNCTION popsell.unsubscribe_ambassador(ambassador_id bigint) RETURNS timestamptz
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    RETURN popsell._start_leaving(
        popsell._ambassador_to_act_on(unsubscribe_ambassador.ambassador_id,
                                      ARRAY['popsell_app', 'popsell_brand', 'popsell_account_team',
                                            'popsell_technical'], true),
        'unsubscribed');
COMMENT ON FUNCTION popsell.unsubscribe_ambassador(bigint) IS
    'The ambassador leaves the program: access blocked at once, deleted after settings.deletion_grace unless restored. Returns the deletion time.';

CREATE FUNCTION popsell.end_ambassador_contract(ambassador_id bigint) RETURNS timestamptz
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    RETURN popsell._start_leaving(
        popsell._ambassador_to_act_on(end_ambassador_contract.ambassador_id,
                                      ARRAY['popsell_app', 'popsell_brand', 'popsell_account_team',
                                            'popsell_technical'], false),
        'contract_ended');
COMMENT ON FUNCTION popsell.end_ambassador_contract(bigint) IS
    'The brand ends an employee''s or sales rep''s contract: access blocked at once, deleted after settings.deletion_grace unless restored. Returns the deletion time.';

CREATE FUNCTION popsell.restore_ambassador(ambassador_id bigint) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a popsell.ambassadors := popsell._ambassador_to_act_on(
        restore_ambassador.ambassador_id,
        ARRAY['popsell_brand', 'popsell_account_team', 'popsell_technical'], false);
BEGIN
    IF a.status OPERATOR(pg_catalog.<>) 'leaving' THEN
        RAISE EXCEPTION 'ambassador % is not leaving', a.id
            USING ERRCODE = 'PS300',
                  DETAIL = pg_catalog.format('Its status is %s.', a.status),
                  HINT = 'Only an unsubscribed, ended or SSO-deleted account in its grace period can be restored.';
    END IF;
    IF a.deletion_due_at OPERATOR(pg_catalog.<=) popsell._lifecycle_now() THEN
        RAISE EXCEPTION 'the grace period of ambassador % is over', a.id
            USING ERRCODE = 'PS301',
                  DETAIL = pg_catalog.format('It ended at %s.', a.deletion_due_at),
                  HINT = 'The account is deleted by the next maintenance run and cannot be restored.';
    END IF;
    UPDATE popsell.ambassadors
       SET status = CASE WHEN pg_catalog.cardinality(popsell._signup_missing(a)) OPERATOR(pg_catalog.=) 0
                         THEN 'active' ELSE 'signup_incomplete' END::popsell.ambassador_status,
           leaving_reason = NULL, deletion_due_at = NULL
     WHERE id OPERATOR(pg_catalog.=) a.id;
    -- Leaving cancelled the unsent confirmation email: a signup still
    -- waiting for it gets a new one.
    IF a.email_confirmed_at IS NULL AND a.sso_subject IS NULL
       AND a.status OPERATOR(pg_catalog.=) 'leaving'
       AND EXISTS (SELECT 1 FROM popsell.ambassadors x
                    WHERE x.id OPERATOR(pg_catalog.=) a.id
                      AND x.status OPERATOR(pg_catalog.=) 'signup_incomplete') THEN
        PERFORM popsell._issue_signup_token(a.id, popsell._lifecycle_now());
    END IF;
END
$$;
COMMENT ON FUNCTION popsell.restore_ambassador(bigint) IS
    'Roll back an unsubscription, end of contract or SSO deletion before the grace period ends (PS301 after): back to active, or signup_incomplete when the signup was not complete (then with a new confirmation email when the address was never confirmed).';

CREATE FUNCTION popsell.sso_upsert_ambassador(subject text, data jsonb) RETURNS bigint
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
    SELECT * INTO a FROM popsell.ambassadors WHERE popsell_internal._lookup_key(sso_subject) OPERATOR(pg_catalog.=) popsell_internal._lookup_key(subject) FOR UPDATE;
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

CREATE FUNCTION popsell.sso_delete_ambassador(subject text) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a popsell.ambassadors;
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_app', 'popsell_technical'], 'popsell.sso_delete_ambassador');
    SELECT * INTO a FROM popsell.ambassadors WHERE popsell_internal._lookup_key(sso_subject) OPERATOR(pg_catalog.=) popsell_internal._lookup_key(subject) FOR UPDATE;
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

CREATE FUNCTION popsell.log_activity(ambassador_id bigint, kind text, ip inet DEFAULT NULL,
                                     user_agent text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    new_id bigint;
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_app', 'popsell_technical'], 'popsell.log_activity');
    IF log_activity.kind IS NULL OR pg_catalog.btrim(log_activity.kind) OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'an activity kind is required'
            USING ERRCODE = 'PS106', HINT = 'Pass e.g. ''login''.';
    END IF;
    IF log_activity.ambassador_id IS NULL
       OR NOT EXISTS (SELECT 1 FROM popsell.ambassadors a WHERE a.id OPERATOR(pg_catalog.=) log_activity.ambassador_id) THEN
        RAISE EXCEPTION 'ambassador % does not exist', coalesce(log_activity.ambassador_id::text, 'NULL')
            USING ERRCODE = 'PS200', HINT = 'Check the ambassador id.';
    END IF;
    -- the IP is hashed here and never stored plain
    INSERT INTO popsell.activity_log (ambassador_id, kind, ip_hash, user_agent, created_at)
    VALUES (log_activity.ambassador_id, log_activity.kind,
            popsell.hash_identifier(pg_catalog.host(log_activity.ip)),
            log_activity.user_agent, popsell._lifecycle_now())
    RETURNING id INTO new_id;
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION popsell.log_activity(bigint, text, inet, text) IS
    'Log an ambassador''s activity for anti-fraud: the IP is stored as a keyed hash, never plain.';

-- ------------------------------------------------------------------
-- Brand
-- ------------------------------------------------------------------
CREATE FUNCTION popsell.suspend_program() RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s popsell.settings;
    t timestamptz := popsell._lifecycle_now();
    n bigint;
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_brand', 'popsell_account_team', 'popsell_technical'],
                                    'popsell.suspend_program');
    SELECT * INTO s FROM popsell.settings FOR UPDATE;
    IF s.program_suspended_at IS NOT NULL THEN
        RAISE EXCEPTION 'the program is already suspended'
            USING ERRCODE = 'PS310',
                  DETAIL = pg_catalog.format('Suspended since %s.', s.program_suspended_at),
                  HINT = 'Call popsell.resume_program() to relaunch it.';
    END IF;
    UPDATE popsell.settings SET program_suspended_at = t;
    -- every active ambassador is warned at once, and may opt out
    INSERT INTO popsell.outbox (kind, ambassador_id, payload, created_at)
    SELECT 'suspension_notice', a.id,
           pg_catalog.jsonb_build_object('suspended_at', t,
                                         'data_kept_until', t OPERATOR(pg_catalog.+) s.suspension_max),
           t
      FROM popsell.ambassadors a
     WHERE a.status OPERATOR(pg_catalog.=) 'active';
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION popsell.suspend_program() IS
    'Suspend the program: queue a suspension_notice for every active ambassador; personal data is deleted by run_maintenance after settings.suspension_max unless resumed. Returns the notices queued.';

CREATE FUNCTION popsell.resume_program() RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_brand', 'popsell_account_team', 'popsell_technical'],
                                    'popsell.resume_program');
    UPDATE popsell.settings SET program_suspended_at = NULL WHERE program_suspended_at IS NOT NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the program is not suspended'
            USING ERRCODE = 'PS310', HINT = 'Nothing to resume.';
    END IF;
END
$$;
COMMENT ON FUNCTION popsell.resume_program() IS
    'Relaunch a suspended program (stops the suspension_max clock).';

CREATE FUNCTION popsell.end_brand_contract() RETURNS timestamptz
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s popsell.settings;
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_account_team', 'popsell_technical'],
                                    'popsell.end_brand_contract');
    SELECT * INTO s FROM popsell.settings FOR UPDATE;
    IF s.brand_contract_ended_at IS NOT NULL THEN
        RAISE EXCEPTION 'the brand''s contract has already ended'
            USING ERRCODE = 'PS310',
                  DETAIL = pg_catalog.format('Ended at %s.', s.brand_contract_ended_at),
                  HINT = 'popsell.cancel_brand_contract_end() rolls it back during the grace period.';
    END IF;
    UPDATE popsell.settings SET brand_contract_ended_at = popsell._lifecycle_now();
    RETURN popsell._lifecycle_now() OPERATOR(pg_catalog.+) s.deletion_grace;
END
$$;
COMMENT ON FUNCTION popsell.end_brand_contract() IS
    'The contract between Popsell and the brand ends: all personal data is deleted by run_maintenance after settings.deletion_grace. Returns that time.';

CREATE FUNCTION popsell.cancel_brand_contract_end() RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s popsell.settings;
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_account_team', 'popsell_technical'],
                                    'popsell.cancel_brand_contract_end');
    SELECT * INTO s FROM popsell.settings FOR UPDATE;
    IF s.brand_contract_ended_at IS NULL THEN
        RAISE EXCEPTION 'the brand''s contract has not ended'
            USING ERRCODE = 'PS310', HINT = 'Nothing to roll back.';
    END IF;
    IF s.brand_contract_ended_at OPERATOR(pg_catalog.+) s.deletion_grace OPERATOR(pg_catalog.<=) popsell._lifecycle_now() THEN
        RAISE EXCEPTION 'the grace period after the end of the brand''s contract is over'
            USING ERRCODE = 'PS301',
                  DETAIL = pg_catalog.format('It ended at %s.', s.brand_contract_ended_at OPERATOR(pg_catalog.+) s.deletion_grace),
                  HINT = 'The personal data is deleted by the next maintenance run.';
    END IF;
    UPDATE popsell.settings SET brand_contract_ended_at = NULL;
END
$$;
COMMENT ON FUNCTION popsell.cancel_brand_contract_end() IS
    'Roll back end_brand_contract() before the grace period ends (PS301 after).';

-- Contacts the pre-GDPR migration has handled, so a second run does not
-- restart their clock.
CREATE TABLE popsell.pre_gdpr_migrated (
    -- no foreign key: contact ids are never reused, and a cascade would
    -- cost one delete per erased contact
    contact_id  bigint PRIMARY KEY,
    migrated_at timestamptz NOT NULL,
    result      popsell.ambassador_optin NOT NULL
);
COMMENT ON TABLE popsell.pre_gdpr_migrated IS
    'Internal: contacts handled by apply_pre_gdpr_migration (ids only), so the migration applies once per contact.';

CREATE FUNCTION popsell.apply_pre_gdpr_migration()
    RETURNS TABLE (optin_other bigint, kept_new bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'migration'
AS $$
DECLARE
    t timestamptz := popsell._lifecycle_now();
BEGIN
    PERFORM popsell._require_caller(ARRAY['popsell_technical'], 'popsell.apply_pre_gdpr_migration');
    -- Candidates: still new, no consent event besides the INSERT's own
    -- ledger row (which has no old values), not handled by an earlier run.
    WITH cand AS (
        SELECT c.id,
               (c.last_activity_at IS NOT NULL
                OR EXISTS (SELECT 1 FROM popsell.interactions i
                            WHERE i.contact_id OPERATOR(pg_catalog.=) c.id
                              AND i.kind OPERATOR(pg_catalog.<>) 'open')
                OR EXISTS (SELECT 1 FROM popsell.sales s
                            WHERE s.contact_id OPERATOR(pg_catalog.=) c.id)) AS active
          FROM popsell.contacts c
         WHERE c.ambassador_optin OPERATOR(pg_catalog.=) 'new'
           AND NOT EXISTS (SELECT 1 FROM popsell.pre_gdpr_migrated m
                            WHERE m.contact_id OPERATOR(pg_catalog.=) c.id)
           AND NOT EXISTS (SELECT 1 FROM popsell.consent_events ce
                            WHERE ce.contact_id OPERATOR(pg_catalog.=) c.id
                              AND pg_catalog.num_nonnulls(ce.old_ambassador_optin, ce.old_brand_optin,
                                                          ce.old_partners_optin, ce.old_email_status)
                                  OPERATOR(pg_catalog.>) 0)
           FOR UPDATE OF c),
    upd_other AS (
        UPDATE popsell.contacts c SET ambassador_optin = 'optin_other'
          FROM cand WHERE c.id OPERATOR(pg_catalog.=) cand.id AND cand.active
        RETURNING c.id, c.ambassador_id),
    upd_new AS (
        UPDATE popsell.contacts c SET ambassador_optin_at = t
          FROM cand WHERE c.id OPERATOR(pg_catalog.=) cand.id AND NOT cand.active
        RETURNING c.id, c.ambassador_id),
    -- the guide: ambassadors are warned of the process; one notice per
    -- active ambassador whose contacts changed, counts and dates only
    notices AS (
        INSERT INTO popsell.outbox (kind, ambassador_id, payload, created_at)
        SELECT 'migration_notice', a.id,
               pg_catalog.jsonb_build_object(
                   'migrated_at', t,
                   'optin_other', pg_catalog.count(*) FILTER (WHERE ch.result OPERATOR(pg_catalog.=) 'optin_other'),
                   'kept_new', pg_catalog.count(*) FILTER (WHERE ch.result OPERATOR(pg_catalog.=) 'new'),
                   'invite_before', t OPERATOR(pg_catalog.+)
                       (SELECT s.new_contact_invitation_window FROM popsell.settings s)),
               t
          FROM (SELECT ambassador_id, 'optin_other'::text AS result FROM upd_other
                UNION ALL
                SELECT ambassador_id, 'new'::text FROM upd_new) AS ch
          JOIN popsell.ambassadors a ON a.id OPERATOR(pg_catalog.=) ch.ambassador_id
         WHERE a.status OPERATOR(pg_catalog.=) 'active'
         GROUP BY a.id),
    marked AS (
        INSERT INTO popsell.pre_gdpr_migrated (contact_id, migrated_at, result)
        SELECT id, t, 'optin_other'::popsell.ambassador_optin FROM upd_other
        UNION ALL
        SELECT id, t, 'new'::popsell.ambassador_optin FROM upd_new
        RETURNING result)
    SELECT pg_catalog.count(*) FILTER (WHERE result OPERATOR(pg_catalog.=) 'optin_other'),
           pg_catalog.count(*) FILTER (WHERE result OPERATOR(pg_catalog.=) 'new')
      INTO optin_other, kept_new
      FROM marked;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION popsell.apply_pre_gdpr_migration() IS
    'Pre-GDPR migration, once per contact: new contacts with no consent event but their insert get optin_other when they had activity (last_activity_at, an interaction other than open, a sale); the others stay new with their clock (ambassador_optin_at) starting now. Every active ambassador whose contacts it changed gets one migration_notice outbox row (counts and dates only).';

-- ------------------------------------------------------------------
-- Grants (roles per SPEC section 2).  Ambassadors change their own
-- visibility and notification opt-ins with a plain UPDATE; the column
-- grants for that are in the security section.
-- ------------------------------------------------------------------
GRANT EXECUTE ON FUNCTION popsell.signup(text, jsonb, text, boolean),
                          popsell.accept_terms(bigint),
                          popsell.confirm_ambassador_email(text)
    TO popsell_app, popsell_account_team, popsell_technical;
GRANT EXECUTE ON FUNCTION popsell.set_password(bigint, text)
    TO popsell_app, popsell_ambassador, popsell_account_team, popsell_technical;
GRANT EXECUTE ON FUNCTION popsell.check_password(bigint, text),
                          popsell.record_login(bigint),
                          popsell.sso_upsert_ambassador(text, jsonb),
                          popsell.sso_delete_ambassador(text),
                          popsell.log_activity(bigint, text, inet, text)
    TO popsell_app, popsell_technical;
GRANT EXECUTE ON FUNCTION popsell.unsubscribe_ambassador(bigint)
    TO popsell_app, popsell_ambassador, popsell_brand, popsell_account_team, popsell_technical;
GRANT EXECUTE ON FUNCTION popsell.end_ambassador_contract(bigint)
    TO popsell_app, popsell_brand, popsell_account_team, popsell_technical;
GRANT EXECUTE ON FUNCTION popsell.restore_ambassador(bigint),
                          popsell.suspend_program(),
                          popsell.resume_program(),
                          popsell.whitelist_add(text, text)
    TO popsell_brand, popsell_account_team, popsell_technical;
GRANT EXECUTE ON FUNCTION popsell.end_brand_contract(),
                          popsell.cancel_brand_contract_end()
    TO popsell_account_team, popsell_technical;
GRANT EXECUTE ON FUNCTION popsell.apply_pre_gdpr_migration() TO popsell_technical;
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
-- ===================================================================
-- Backups (SPEC S9): restoring a dump is not collecting data.
-- ===================================================================

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
    ELSIF TG_TABLE_NAME = 'lookup_secret' THEN
        DELETE FROM popsell.lookup_secret WHERE id = NEW.id;
    ELSIF TG_TABLE_NAME = 'maintenance_lock' THEN
        DELETE FROM popsell.maintenance_lock WHERE id = NEW.id;
    END IF;
    RETURN NEW;
END
$$;
ALTER FUNCTION popsell._restore_singletons() OWNER TO popsell_owner;
REVOKE ALL ON FUNCTION popsell._restore_singletons() FROM PUBLIC;
COMMENT ON FUNCTION popsell._restore_singletons() IS
    'Trigger: while restoring, a restored settings row, key or maintenance guard row replaces the one the install script created.';
CREATE TRIGGER popsell_10_restore
    BEFORE INSERT ON popsell.settings
    FOR EACH ROW EXECUTE FUNCTION popsell._restore_singletons();
CREATE TRIGGER popsell_10_restore
    BEFORE INSERT ON popsell.hash_keys
    FOR EACH ROW EXECUTE FUNCTION popsell._restore_singletons();
CREATE TRIGGER popsell_10_restore
    BEFORE INSERT ON popsell.lookup_secret
    FOR EACH ROW EXECUTE FUNCTION popsell._restore_singletons();
CREATE TRIGGER popsell_10_restore
    BEFORE INSERT ON popsell.maintenance_lock
    FOR EACH ROW EXECUTE FUNCTION popsell._restore_singletons();

-- A restored lookup secret replaces the install's: every index computed
-- with the install's secret (rows restored before it) is rebuilt, in the
-- restoring transaction, so lookups find the restored rows whatever order
-- pg_restore loads the tables in.
CREATE FUNCTION popsell._lookup_secret_restored() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    IF NOT popsell._restoring() THEN
        RETURN NULL;
    END IF;
    FOR r IN
        SELECT DISTINCT d.objid::pg_catalog.regclass AS idx
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.objid
                                     AND c.relkind OPERATOR(pg_catalog.=) 'i'
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
           AND d.refobjid OPERATOR(pg_catalog.=) ANY (ARRAY['popsell_internal._lookup_key(text)'::pg_catalog.regprocedure,
                                                         'popsell_internal._brand_lookup_key(text)'::pg_catalog.regprocedure]::pg_catalog.oid[])
         ORDER BY 1
    LOOP
        EXECUTE pg_catalog.format('REINDEX INDEX %s', r.idx);
    END LOOP;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION popsell._lookup_secret_restored() IS
    'Trigger: after a restore replaced the lookup secret, rebuild every lookup-key index with it.';
ALTER FUNCTION popsell._lookup_secret_restored() OWNER TO popsell_owner;
REVOKE ALL ON FUNCTION popsell._lookup_secret_restored() FROM PUBLIC;
CREATE TRIGGER popsell_95_restored
    AFTER INSERT ON popsell.lookup_secret
    FOR EACH STATEMENT EXECUTE FUNCTION popsell._lookup_secret_restored();
-- ===================================================================
-- Files (SPEC section 3, v2): ugc.file_path and ambassadors.photo_path
-- are relative paths under ambassadors/<that ambassador's id>/, segments
-- of [A-Za-z0-9_.-] not starting with a dot (a whitelist), checked when
-- the path or the row's ambassador changes (to another ambassador: the
-- ambassador's deletion sets it NULL), so no ambassador can point at another person's file (whose
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
    -- A whitelist: ambassadors/<id>/ then segments of ASCII letters, digits,
    -- '_', '-' and '.', none starting with a dot (so no "." or ".." and no
    -- percent-encoded, fullwidth or invisible lookalike of them).
    IF pg_catalog.octet_length(p_path) OPERATOR(pg_catalog.>) 256
       OR p_ambassador_id IS NULL
       OR p_path OPERATOR(pg_catalog.!~)
          ('^ambassadors/' OPERATOR(pg_catalog.||) p_ambassador_id OPERATOR(pg_catalog.||) '(/[A-Za-z0-9_-][A-Za-z0-9._-]*)+$') THEN
        RAISE EXCEPTION '% is not a file of ambassador %', p_column, coalesce(p_ambassador_id::text, 'NULL')
            USING ERRCODE = 'PS108',
                  DETAIL = 'A file path is relative, at most 256 bytes, ambassadors/<the ambassador''s id>/ then segments of ASCII letters, digits, "_", "-" and ".", none starting with a dot.',
                  HINT = 'Store the file under the ambassador''s own directory, e.g. ambassadors/<id>/photo.jpg.';
    END IF;
END
$$;
COMMENT ON FUNCTION popsell._check_file_path(text, bigint, text) IS
    'Internal: PS108 unless the path is ambassadors/<ambassador id>/ then segments of [A-Za-z0-9_.-] not starting with a dot, at most 256 bytes.';

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
               OR NEW.file_path IS DISTINCT FROM OLD.file_path
               OR (NEW.ambassador_id IS DISTINCT FROM OLD.ambassador_id
                   AND NEW.ambassador_id IS NOT NULL) THEN
                PERFORM popsell._check_file_path(NEW.file_path, NEW.ambassador_id, 'file_path');
            END IF;
        ELSIF TG_OP OPERATOR(pg_catalog.=) 'INSERT'
              OR NEW.photo_path IS DISTINCT FROM OLD.photo_path
              OR NEW.id IS DISTINCT FROM OLD.id THEN
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

CREATE TRIGGER popsell_30_files BEFORE INSERT OR UPDATE OF file_path, ambassador_id ON popsell.ugc
    FOR EACH ROW EXECUTE FUNCTION popsell.files_row();
CREATE TRIGGER popsell_70_files AFTER UPDATE OF file_path OR DELETE ON popsell.ugc
    FOR EACH ROW EXECUTE FUNCTION popsell.files_row();
CREATE TRIGGER popsell_30_files BEFORE INSERT OR UPDATE OF photo_path, id ON popsell.ambassadors
    FOR EACH ROW EXECUTE FUNCTION popsell.files_row();
CREATE TRIGGER popsell_70_files AFTER UPDATE OF photo_path ON popsell.ambassadors
    FOR EACH ROW EXECUTE FUNCTION popsell.files_row();
-- ===================================================================
-- Operations: uninstall without a failing pg_cron job left behind, the
-- outbox backlog, bulk loading (README "Operations").
-- ===================================================================

-- DROP EXTENSION popsell must not leave the pg_cron job of
-- run_maintenance behind, failing every day.  An event trigger that is a
-- member of the extension dies with it: neither sql_drop nor
-- ddl_command_end fires for the statement that drops popsell, and a
-- ddl_command_start trigger cannot see which objects a statement drops
-- (only a C function reading the parse tree could, and a C function on
-- the DDL path breaks every DROP once popsell's library is gone).  So,
-- in PL/pgSQL, for every statement that can drop popsell (directly or by
-- CASCADE: DROP EXTENSION, DROP SCHEMA, DROP OWNED, DROP LANGUAGE):
--  * ddl_command_start removes this database's job (pg_cron installed
--    here, by a superuser) and keeps a copy in a setting local to the
--    transaction;
--  * ddl_command_end, which fires only when popsell is still installed
--    after the statement, puts the job back unchanged.
-- The transaction commits the job's removal exactly when popsell is gone,
-- whichever statement dropped it; pg_cron sees committed jobs only.  When
-- pg_cron lives in another database, ddl_command_start warns with the
-- exact cron.unschedule call to run there (unless the statement cannot
-- drop popsell: a client's single DROP without CASCADE not naming it).  DROP DATABASE runs no event
-- trigger (README "Uninstall").
CREATE FUNCTION popsell._drop_guard() RETURNS event_trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cron_db text;
    fn text;
    job text;
    held jsonb;
    stmt text;
BEGIN
    BEGIN
        cron_db := current_setting('cron.database_name', true);
    EXCEPTION WHEN insufficient_privilege THEN
        cron_db := '';
    END;
    IF cron_db IS NULL THEN
        RETURN;                                  -- pg_cron is not loaded: no job anywhere
    END IF;
    IF TG_EVENT OPERATOR(pg_catalog.=) 'ddl_command_end' THEN
        -- popsell survived the statement: put back what ddl_command_start took
        held := NULLIF(pg_catalog.current_setting('popsell_drop.held_jobs', true), '')::jsonb;
        IF held IS NULL THEN
            RETURN;
        END IF;
        PERFORM pg_catalog.set_config('popsell_drop.held_jobs', '', true);
        job := popsell._cron_object('table', 'job');
        IF job IS NOT NULL THEN                  -- else the statement dropped pg_cron itself
            EXECUTE pg_catalog.format('INSERT INTO %s SELECT r.* FROM pg_catalog.jsonb_populate_recordset(NULL::%s, $1) r', job, job)
              USING held;
        END IF;
        RETURN;
    END IF;

    -- a copy left by a statement that dropped popsell earlier in this
    -- transaction is not this statement's
    PERFORM pg_catalog.set_config('popsell_drop.held_jobs', '', true);
    fn := popsell._cron_object('function', 'unschedule(bigint)');
    job := popsell._cron_object('table', 'job');
    IF fn IS NOT NULL AND job IS NOT NULL THEN
        -- only a superuser may remove (and put back) popsell_maintenance's job
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                        WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER AND r.rolsuper) THEN
            RETURN;
        END IF;
        EXECUTE pg_catalog.format('SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(j)) FROM %s j '
                                  'WHERE j.jobname OPERATOR(pg_catalog.=) $1 AND j.database OPERATOR(pg_catalog.=) $2', job)
           INTO held
          USING popsell._cron_job_name(), pg_catalog.current_database()::text;
        IF held IS NULL THEN
            RETURN;
        END IF;
        PERFORM pg_catalog.set_config('popsell_drop.held_jobs', held::text, true);
        EXECUTE pg_catalog.format('SELECT pg_catalog.count(%s(j.jobid)) FROM %s j '
                                  'WHERE j.jobname OPERATOR(pg_catalog.=) $1 AND j.database OPERATOR(pg_catalog.=) $2', fn, job)
          USING popsell._cron_job_name(), pg_catalog.current_database()::text;
    ELSIF cron_db OPERATOR(pg_catalog.<>) '' AND cron_db OPERATOR(pg_catalog.<>) pg_catalog.current_database() THEN
        -- Quiet only for a client's single DROP statement that neither
        -- names popsell nor cascades (DROP OWNED drops owned extensions
        -- without CASCADE): such a statement cannot drop popsell.
        stmt := pg_catalog.rtrim(pg_catalog.current_query(), E'; \t\r\n');
        IF TG_TAG OPERATOR(pg_catalog.<>) 'DROP OWNED'
           AND stmt OPERATOR(pg_catalog.~*) '^\s*drop\s'
           AND pg_catalog.strpos(stmt, ';') OPERATOR(pg_catalog.=) 0
           AND stmt OPERATOR(pg_catalog.!~*) '(popsell|cascade)' THEN
            RETURN;
        END IF;
        RAISE WARNING 'popsell: pg_cron lives in database %; if this statement drops the extension popsell, remove its job for database % there', cron_db, pg_catalog.current_database()
            USING HINT = pg_catalog.format('Connect to the pg_cron database %s as a superuser and run: %s',
                                           pg_catalog.quote_ident(cron_db),
                                           pg_catalog.format('SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = %L AND database = %L;',
                                                             popsell._cron_job_name(), pg_catalog.current_database()));
    END IF;
END
$$;
COMMENT ON FUNCTION popsell._drop_guard() IS
    'Internal: event trigger function of popsell_drop_guard (ddl_command_start) and popsell_drop_guard_end (ddl_command_end); a statement that drops the extension popsell also removes this database''s pg_cron job, or warns with the exact cron.unschedule call when pg_cron lives in another database.';

CREATE EVENT TRIGGER popsell_drop_guard ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA', 'DROP OWNED', 'DROP LANGUAGE')
    EXECUTE FUNCTION popsell._drop_guard();
CREATE EVENT TRIGGER popsell_drop_guard_end ON ddl_command_end
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA', 'DROP OWNED', 'DROP LANGUAGE')
    EXECUTE FUNCTION popsell._drop_guard();

-- The mail worker's health in one query: unsent outbox rows per kind and
-- the oldest one's age.  Counts only (no contact, no payload); the
-- owner's rights read the outbox, so the job role needs no access to it.
CREATE VIEW popsell.outbox_backlog WITH (security_barrier = true) AS
SELECT k.kind,
       coalesce(b.unsent, 0) AS unsent,
       b.oldest_created_at,
       pg_catalog.now() OPERATOR(pg_catalog.-) b.oldest_created_at AS oldest_age
  FROM pg_catalog.unnest(pg_catalog.enum_range(NULL::popsell.outbox_kind)) AS k(kind)
  LEFT JOIN (SELECT o.kind, pg_catalog.count(*) AS unsent, pg_catalog.min(o.created_at) AS oldest_created_at
               FROM popsell.outbox o
              WHERE o.sent_at IS NULL
              GROUP BY o.kind) b ON b.kind OPERATOR(pg_catalog.=) k.kind;
COMMENT ON VIEW popsell.outbox_backlog IS
    'Unsent popsell.outbox rows per kind (every kind, 0 when none), the oldest one''s created_at and age: the mail worker''s health. Counts only, no personal data. Readable by popsell_app (the mail worker), popsell_technical, popsell_account_team and popsell_maintenance.';
GRANT SELECT ON popsell.outbox_backlog TO popsell_app, popsell_technical, popsell_account_team, popsell_maintenance;
-- ===================================================================
-- The compliance report (GDPR art. 5(2) accountability, art. 30 records
-- of processing): popsell.compliance_report(at) renders, from the live
-- database, one self-contained HTML document (inline CSS and SVG, no
-- script, no external asset) with counts, rates, dates and settings only,
-- never personal data.  Every figure is in an element with a
-- data-figure="key" attribute, so tests and tools can read them back.
-- ===================================================================

-- When a data-subject request reached the brand (the functions record it
-- when it is carried out): staff fill it in so the report can show the
-- time from request to completion (GDPR art. 12(3): one month).
ALTER TABLE popsell.rights_requests
    ADD COLUMN received_at timestamptz
        CONSTRAINT rights_requests_received_before_done
        CHECK (received_at IS NULL OR received_at OPERATOR(pg_catalog.<=) requested_at);
COMMENT ON COLUMN popsell.rights_requests.received_at IS
    'When the person''s request reached the brand (staff set it; NULL: the day it was carried out). The compliance report''s time to completion is requested_at - received_at.';
GRANT UPDATE (received_at) ON popsell.rights_requests TO popsell_account_team, popsell_technical;
CREATE POLICY rights_requests_staff_received ON popsell.rights_requests
    FOR UPDATE TO popsell_account_team, popsell_technical USING (true) WITH CHECK (true);
COMMENT ON POLICY rights_requests_staff_received ON popsell.rights_requests IS
    'Vendor staff record when a request was received (column grant: received_at only).';

-- Text made safe for HTML content and attribute values.
CREATE FUNCTION popsell._html(p text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
               coalesce(p, ''), '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'), '''', '&#39;');
COMMENT ON FUNCTION popsell._html(text) IS
    'Internal: text escaped for HTML (&, <, >, quotes); NULL gives the empty string.';

-- One figure of the report: a table cell (or a span) holding the value,
-- marked with its key.
CREATE FUNCTION popsell._report_fig(p_key text, p_value text, p_tag text DEFAULT 'td') RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN pg_catalog.format('<%s class="n" data-figure="%s">%s</%s>', p_tag, popsell._html(p_key),
                             popsell._html(p_value), p_tag);
COMMENT ON FUNCTION popsell._report_fig(text, text, text) IS
    'Internal: a figure of the compliance report in a cell (or other tag) marked data-figure="key".';

-- A rate in percent with one decimal, or "n/a" when the base is zero.
CREATE FUNCTION popsell._report_rate(p_part bigint, p_whole bigint) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN CASE WHEN coalesce(p_whole, 0) OPERATOR(pg_catalog.=) 0 THEN 'n/a'
                ELSE pg_catalog.round(100.0 OPERATOR(pg_catalog.*) p_part
                                      OPERATOR(pg_catalog./) p_whole, 1)::text OPERATOR(pg_catalog.||) '%' END;
COMMENT ON FUNCTION popsell._report_rate(bigint, bigint) IS
    'Internal: PART / WHOLE in percent with one decimal, n/a when WHOLE is 0 or NULL.';

CREATE FUNCTION popsell.compliance_report(at timestamptz DEFAULT pg_catalog.now()) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET datestyle = 'ISO, YMD'
    SET intervalstyle = 'postgres'
    SET timezone = 'UTC'
    -- its statements (and the rules' counts) run in PL/pgSQL, where a
    -- parallel plan runs without workers: plan them serial (the funnel's
    -- two scans, below, excepted)
    SET max_parallel_workers_per_gather = 0
    -- planned for the given time at every call (the rules' counts too): a
    -- generic plan cannot tell how much of a table a time window holds
    SET plan_cache_mode = force_custom_plan
    -- a caller with row_security = off would get an error, not a report
    SET row_security = on
AS $$
DECLARE
    p_at timestamptz := compliance_report.at;
    since timestamptz;
    s popsell.settings;
    h text := '';
    measures text[] := ARRAY['collected', 'invited', 'accepted', 'declined', 'no_answer', 'opted_out',
                             'global_optout'];
    measure_names text[] := ARRAY['collected', 'invited', 'accepted', 'declined', 'no answer',
                                  'opted out', 'globally opted out'];
    colors text[] := ARRAY['#5b6770', '#2f6db5', '#2e9d57', '#d9822b', '#b8a23a', '#c2453d', '#7d3c98'];
    f record;
    r record;
    srcs text[];
    fm bigint[];
    n_contacts bigint;
    n_brand bigint;
    n_partners bigint;
    n_restricted bigint;
    run_ids bigint[];
    run_asof timestamptz[];
    run_started timestamptz[];
    run_ms numeric[];
    run_aff bigint[];
    run_fail bigint[];
    maxms numeric;
    maxv bigint;
    y integer;
    n integer;
    svg text;
    rules text[];
    horizons integer[] := ARRAY[30, 90, 365];
    cnt bigint[];
    tot bigint[] := ARRAY[0, 0, 0, 0, 0, 0, 0]::bigint[];
BEGIN
    -- the window (12 months back) and the outlook (365 days on) must fit
    -- in timestamptz's range
    IF p_at IS NULL OR NOT pg_catalog.isfinite(p_at)
       OR p_at OPERATOR(pg_catalog.<) '0001-01-01 00:00+00'::timestamptz
       OR p_at OPERATOR(pg_catalog.>) '100000-01-01 00:00+00'::timestamptz THEN
        RAISE EXCEPTION 'compliance_report needs a finite time between the years 1 and 100000, not %', coalesce(p_at::text, 'NULL')
            USING ERRCODE = 'PS106', HINT = 'Call popsell.compliance_report() (now) or pass a timestamptz.';
    END IF;
    since := p_at - interval '12 months';
    SELECT * INTO STRICT s FROM popsell.settings;

    h := '<!DOCTYPE html>' || E'\n' || '<html lang="en"><head><meta charset="utf-8">'
      || '<meta name="viewport" content="width=device-width, initial-scale=1">'
      || '<title>popsell compliance report</title><style>'
      || 'body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;'
      || 'color:#1d2731;background:#fff;margin:0 auto;max-width:1000px;padding:24px;line-height:1.45}'
      || 'h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.2em;margin:28px 0 8px;padding-bottom:4px;'
      || 'border-bottom:2px solid #2f6db5}p.meta{color:#5b6770;margin:0 0 12px}'
      || 'table{border-collapse:collapse;margin:8px 0 12px;font-size:.9em}'
      || 'th,td{border:1px solid #d5dbe1;padding:3px 8px;text-align:left}th{background:#eef2f6}'
      || 'td.n{text-align:right;font-variant-numeric:tabular-nums}'
      || '.cards{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}'
      || '.card{border:1px solid #d5dbe1;border-radius:6px;padding:8px 14px;min-width:150px;background:#f7f9fb}'
      || '.card .n{display:block;font-size:1.5em;font-weight:600;color:#2f6db5}'
      || '.card .l{color:#5b6770;font-size:.85em}svg{display:block;margin:8px 0}'
      || 'ul.ropa li{margin:4px 0}.warn{color:#c2453d;font-weight:600}'
      || '</style></head><body>' || E'\n';
    h := h || '<h1>Compliance report: ' || popsell._html(coalesce(s.brand_name, 'this brand')) || '</h1>'
      || '<p class="meta">As of ' || popsell._report_fig('report.at', pg_catalog.to_char(p_at, 'YYYY-MM-DD HH24:MI "UTC"'), 'span')
      || '; consent and rights figures cover the 12 months since '
      || popsell._report_fig('report.since', pg_catalog.to_char(since, 'YYYY-MM-DD HH24:MI "UTC"'), 'span')
      || '. popsell ' || popsell._html((SELECT e.extversion FROM pg_catalog.pg_extension e
                                         WHERE e.extname OPERATOR(pg_catalog.=) 'popsell'))
      || '. Counts, rates, dates and settings only: no personal data.</p>' || E'\n';

    -- ---------------------------------------------------------------
    -- Consent funnel per source: contacts collected, then the ledger.
    -- ---------------------------------------------------------------
    -- Two scans, one of the contacts and one of the ledger, which may use
    -- parallel workers as a count(*) would (up to the server's
    -- max_parallel_workers_per_gather): EXECUTE runs its query to
    -- completion, which a static SELECT INTO never does.
    PERFORM pg_catalog.set_config('max_parallel_workers_per_gather',
                                  (SELECT st.reset_val FROM pg_catalog.pg_settings st
                                    WHERE st.name OPERATOR(pg_catalog.=) 'max_parallel_workers_per_gather'), true);
    EXECUTE $funnel$
        -- contacts held, per source: for the funnel and the records of
        -- processing
        WITH held AS (
            SELECT c.source, pg_catalog.count(*) AS n,
                   pg_catalog.count(*) FILTER (WHERE c.created_at OPERATOR(pg_catalog.>) $1
                                                 AND c.created_at OPERATOR(pg_catalog.<=) $2) AS recent,
                   pg_catalog.count(*) FILTER (WHERE c.brand_optin OPERATOR(pg_catalog.<>) 'no_optin') AS brand,
                   pg_catalog.count(*) FILTER (WHERE c.partners_optin) AS partners,
                   pg_catalog.count(*) FILTER (WHERE c.restricted) AS restricted
              FROM popsell.contacts c
             GROUP BY c.source),
        -- the ledger of the period, grouped by what the funnel needs (one
        -- scan): only the rows it counts reach the grouping, the first rows
        -- kept on a tombstone (collected, and erased since) and the changes of
        -- the ambassador opt-in; the two kinds are told apart by
        -- old_ambassador_optin (NULL on a first row, set on a change)
        ev AS (
            SELECT ce.source, ce.new_ambassador_optin AS st,
                   ce.old_ambassador_optin IS NULL AS first_erased,
                   pg_catalog.count(*) AS n
              FROM popsell.consent_events ce
             WHERE ce.occurred_at OPERATOR(pg_catalog.>) $1 AND ce.occurred_at OPERATOR(pg_catalog.<=) $2
               AND ((ce.contact_id IS NULL AND ce.old_ambassador_optin IS NULL AND ce.old_brand_optin IS NULL
                     AND ce.old_partners_optin IS NULL AND ce.old_email_status IS NULL)
                    OR ce.old_ambassador_optin OPERATOR(pg_catalog.<>) ce.new_ambassador_optin)
             GROUP BY 1, 2, 3),
        e AS (
            SELECT ev.source,
                   pg_catalog.sum(ev.n) FILTER (WHERE ev.first_erased) AS collected,
                   pg_catalog.sum(ev.n) FILTER (WHERE NOT ev.first_erased AND ev.st OPERATOR(pg_catalog.=) 'invitation_sent') AS invited,
                   pg_catalog.sum(ev.n) FILTER (WHERE NOT ev.first_erased AND ev.st OPERATOR(pg_catalog.=) 'invitation_accepted') AS accepted,
                   pg_catalog.sum(ev.n) FILTER (WHERE NOT ev.first_erased AND ev.st OPERATOR(pg_catalog.=) 'invitation_declined') AS declined,
                   pg_catalog.sum(ev.n) FILTER (WHERE NOT ev.first_erased AND ev.st OPERATOR(pg_catalog.=) 'optout_no_response') AS no_answer,
                   pg_catalog.sum(ev.n) FILTER (WHERE NOT ev.first_erased AND ev.st OPERATOR(pg_catalog.=) 'optout_email') AS opted_out,
                   pg_catalog.sum(ev.n) FILTER (WHERE NOT ev.first_erased AND ev.st OPERATOR(pg_catalog.=) 'global_optout') AS global_optout
              FROM ev GROUP BY ev.source)
        SELECT pg_catalog.array_agg(src.source::text ORDER BY src.ord),
               pg_catalog.array_agg(
                   ARRAY[coalesce(e.collected, 0) + coalesce(hd.recent, 0), coalesce(e.invited, 0),
                         coalesce(e.accepted, 0), coalesce(e.declined, 0), coalesce(e.no_answer, 0),
                         coalesce(e.opted_out, 0), coalesce(e.global_optout, 0)]::bigint[] ORDER BY src.ord),
               coalesce(pg_catalog.sum(hd.n), 0), coalesce(pg_catalog.sum(hd.brand), 0),
               coalesce(pg_catalog.sum(hd.partners), 0), coalesce(pg_catalog.sum(hd.restricted), 0)
          FROM pg_catalog.unnest(pg_catalog.enum_range(NULL::popsell.contact_source)) WITH ORDINALITY AS src(source, ord)
          LEFT JOIN e ON e.source OPERATOR(pg_catalog.=) src.source
          LEFT JOIN held hd ON hd.source OPERATOR(pg_catalog.=) src.source
    $funnel$
       INTO srcs, fm, n_contacts, n_brand, n_partners, n_restricted
      USING since, p_at;
    PERFORM pg_catalog.set_config('max_parallel_workers_per_gather', '0', true);

    h := h || '<h2>Consent funnel per source (last 12 months)</h2>'
      || '<p>Contacts collected in the period (still held, or erased since with their consent proof kept), '
      || 'then, from the consent ledger, the changes of the ambassador opt-in to each state. Acceptance, '
      || 'refusal and no-answer rates are per invitation sent; opt-out rates per contact collected.</p>';
    -- chart: one group of bars per source that has any figure
    SELECT pg_catalog.max(v) INTO maxv FROM pg_catalog.unnest(fm) AS v;
    n := 0;
    FOR k IN 1 .. pg_catalog.array_length(srcs, 1) LOOP
        IF fm[k][1] + fm[k][2] + fm[k][3] + fm[k][4] + fm[k][5] + fm[k][6] + fm[k][7] > 0 THEN
            n := n + 1;
        END IF;
    END LOOP;
    -- one group per source with any figure: its non-zero bars, labelled
    svg := '';
    FOR i IN 1 .. 7 LOOP
        svg := svg || pg_catalog.format('<rect x="%s" y="6" width="12" height="12" fill="%s"/>'
                                        '<text x="%s" y="16">%s</text>',
                                        10 + (i - 1) * 135, colors[i], 26 + (i - 1) * 135, measure_names[i]);
    END LOOP;
    y := 30;
    FOR k IN 1 .. pg_catalog.array_length(srcs, 1) LOOP
        CONTINUE WHEN fm[k][1] + fm[k][2] + fm[k][3] + fm[k][4] + fm[k][5] + fm[k][6] + fm[k][7] = 0;
        svg := svg || pg_catalog.format('<line x1="4" y1="%s" x2="950" y2="%s" stroke="#eef2f6"/>'
                                        '<text x="4" y="%s" font-weight="600">%s</text>', y - 3, y - 3, y + 8, srcs[k]);
        FOR i IN 1 .. 7 LOOP
            CONTINUE WHEN fm[k][i] = 0;
            svg := svg || pg_catalog.format(
                '<rect x="160" y="%s" width="%s" height="7" fill="%s"><title>%s %s: %s</title></rect>'
                '<text x="%s" y="%s" font-size="9" fill="#5b6770">%s</text>',
                y, greatest(1, pg_catalog.round(700.0 * fm[k][i] / greatest(maxv, 1), 1)), colors[i],
                srcs[k], measure_names[i], fm[k][i],
                164 + pg_catalog.round(700.0 * fm[k][i] / greatest(maxv, 1), 1), y + 7, fm[k][i]);
            y := y + 9;
        END LOOP;
        y := greatest(y, 0) + 10;
    END LOOP;
    IF n = 0 THEN
        svg := svg || '<text x="160" y="44" fill="#5b6770">No consent events in the period.</text>';
        y := 60;
    END IF;
    svg := pg_catalog.format('<svg xmlns="http://www.w3.org/2000/svg" width="960" height="%s" role="img" '
                             'aria-label="Consent funnel per source" font-size="11" font-family="sans-serif">',
                             y + 4) || svg;
    h := h || svg || '</svg>' || E'\n';
    h := h || '<table><tr><th>source</th>';
    FOR i IN 1 .. 7 LOOP
        h := h || '<th>' || measure_names[i] || '</th>';
    END LOOP;
    h := h || '</tr>';
    FOR k IN 1 .. pg_catalog.array_length(srcs, 1) LOOP
        h := h || '<tr><th>' || srcs[k] || '</th>';
        FOR i IN 1 .. 7 LOOP
            h := h || popsell._report_fig('funnel.' || srcs[k] || '.' || measures[i], fm[k][i]::text);
            tot[i] := tot[i] + fm[k][i];
        END LOOP;
        h := h || '</tr>';
    END LOOP;
    h := h || '<tr><th>all sources</th>';
    FOR i IN 1 .. 7 LOOP
        h := h || popsell._report_fig('funnel.all.' || measures[i], tot[i]::text);
    END LOOP;
    h := h || '</tr></table>'
           || '<table><tr><th>source</th><th>accepted / invited</th><th>declined / invited</th>'
           || '<th>no answer / invited</th><th>opted out / collected</th><th>globally opted out / collected</th></tr>';
    FOR k IN 1 .. pg_catalog.array_length(srcs, 1) LOOP
        h := h || '<tr><th>' || srcs[k] || '</th>' || popsell._report_fig('funnel.' || srcs[k] || '.accept_rate', popsell._report_rate(fm[k][3], fm[k][2]))
               || popsell._report_fig('funnel.' || srcs[k] || '.decline_rate', popsell._report_rate(fm[k][4], fm[k][2]))
               || popsell._report_fig('funnel.' || srcs[k] || '.no_answer_rate', popsell._report_rate(fm[k][5], fm[k][2]))
               || popsell._report_fig('funnel.' || srcs[k] || '.optout_rate', popsell._report_rate(fm[k][6], fm[k][1]))
               || popsell._report_fig('funnel.' || srcs[k] || '.global_optout_rate', popsell._report_rate(fm[k][7], fm[k][1]))
               || '</tr>';
    END LOOP;
    h := h || '<tr><th>all sources</th>' || popsell._report_fig('funnel.all.accept_rate', popsell._report_rate(tot[3], tot[2]))
           || popsell._report_fig('funnel.all.decline_rate', popsell._report_rate(tot[4], tot[2]))
           || popsell._report_fig('funnel.all.no_answer_rate', popsell._report_rate(tot[5], tot[2]))
           || popsell._report_fig('funnel.all.optout_rate', popsell._report_rate(tot[6], tot[1]))
           || popsell._report_fig('funnel.all.global_optout_rate', popsell._report_rate(tot[7], tot[1]))
           || '</tr></table>' || E'\n';

    -- ---------------------------------------------------------------
    -- Retention outlook: run_maintenance's own rules, previewed.
    -- ---------------------------------------------------------------
    h := h || '<h2>Retention outlook</h2>'
      || '<p>Rows each retention rule of <code>popsell.run_maintenance</code> would act on if it ran in 30, '
      || '90 and 365 days, with the data as it is today (no new login, activity or answer): '
      || 'the rules'' own counting queries (<code>popsell.maintenance_preview</code>). '
      || 'Rules that delete count the contacts or ambassadors they delete; reminder rules count the '
      || 'messages they queue or the opt-ins they change.</p>'
      || '<table><tr><th>rule</th><th>acts on</th><th>within 30 days</th>'
      || '<th>within 90 days</th><th>within 365 days</th></tr>';
    SELECT pg_catalog.array_agg(x ORDER BY o) INTO rules
      FROM popsell.maintenance_rules() WITH ORDINALITY AS t(x, o);
    FOR r IN
        WITH p AS (
            SELECT hz.d, pv.rule, pv.affected
              FROM pg_catalog.unnest(horizons) AS hz(d)
              CROSS JOIN LATERAL popsell.maintenance_preview(p_at + hz.d * interval '1 day') AS pv)
        SELECT rl.x AS rule, rl.o,
               pg_catalog.array_agg(p.affected ORDER BY p.d) AS counts
          FROM pg_catalog.unnest(rules) WITH ORDINALITY AS rl(x, o)
          JOIN p ON p.rule OPERATOR(pg_catalog.=) rl.x
         GROUP BY rl.x, rl.o
         ORDER BY rl.o
    LOOP
        cnt := r.counts;
        h := h || '<tr><th>' || popsell._html(r.rule) || '</th><td>'
          || CASE WHEN r.rule LIKE 'ambassador%' THEN 'ambassadors deleted'
                  WHEN r.rule OPERATOR(pg_catalog.=) 'invitation_reminder' THEN 'reminders queued'
                  WHEN r.rule OPERATOR(pg_catalog.=) 'invitation_no_response' THEN 'contacts set to optout_no_response'
                  WHEN r.rule LIKE 'contact%' OR r.rule OPERATOR(pg_catalog.=) 'email_unconfirmed' THEN 'contacts deleted'
                  WHEN r.rule IN ('program_suspended', 'brand_contract_ended') THEN 'contacts, ambassadors and UGC deleted'
                  WHEN r.rule OPERATOR(pg_catalog.=) 'contest_ugc' THEN 'UGC deleted'
                  WHEN r.rule OPERATOR(pg_catalog.=) 'logs' THEN 'log rows deleted'
                  ELSE 'rows' END || '</td>';
        FOR i IN 1 .. 3 LOOP
            h := h || popsell._report_fig('outlook.' || r.rule || '.' || horizons[i], cnt[i]::text);
        END LOOP;
        h := h || '</tr>';
    END LOOP;
    h := h || '</table>' || E'\n';

    -- last 30 runs, a small timeline of their durations
    h := h || '<h3>Last 30 runs</h3>';
    SELECT pg_catalog.array_agg(g.run_id ORDER BY g.run_id), pg_catalog.array_agg(g.as_of ORDER BY g.run_id),
           pg_catalog.array_agg(g.started ORDER BY g.run_id), pg_catalog.array_agg(g.ms ORDER BY g.run_id),
           pg_catalog.array_agg(g.affected ORDER BY g.run_id), pg_catalog.array_agg(g.failures ORDER BY g.run_id),
           pg_catalog.count(*), pg_catalog.max(g.ms)
      INTO run_ids, run_asof, run_started, run_ms, run_aff, run_fail, n, maxms
      FROM (SELECT mr.run_id, pg_catalog.max(mr.as_of) AS as_of, pg_catalog.min(mr.started_at) AS started,
                   pg_catalog.round(EXTRACT(epoch FROM pg_catalog.max(mr.finished_at)
                                                       - pg_catalog.min(mr.started_at)) * 1000, 1) AS ms,
                   pg_catalog.sum(mr.affected) AS affected, pg_catalog.count(mr.failed_sqlstate) AS failures
              FROM popsell.maintenance_runs mr
             WHERE mr.run_id IN (SELECT DISTINCT m2.run_id FROM popsell.maintenance_runs m2
                                  ORDER BY m2.run_id DESC LIMIT 30)
             GROUP BY mr.run_id) g;
    h := h || '<p>' || popsell._report_fig('runs.count', n::text, 'span') || ' runs shown (one row per rule per run in '
      || '<code>popsell.maintenance_runs</code>, kept for <code>log_retention</code>). Bar height: duration; '
      || 'red: a rule failed.</p>';
    svg := '<svg xmlns="http://www.w3.org/2000/svg" width="960" height="150" role="img" '
        || 'aria-label="Durations of the last runs" font-size="10" font-family="sans-serif">'
        || '<line x1="40" y1="120" x2="950" y2="120" stroke="#5b6770"/>';
    y := 0;
    FOR k IN 1 .. n LOOP
        svg := svg || pg_catalog.format(
            '<rect x="%s" y="%s" width="22" height="%s" fill="%s"><title>run %s: %s ms, %s rows</title></rect>'
            '<text x="%s" y="134" text-anchor="middle">%s</text>',
            45 + (k - 1) * 30, 120 - greatest(2, pg_catalog.round(100.0 * run_ms[k] / greatest(maxms, 1))),
            greatest(2, pg_catalog.round(100.0 * run_ms[k] / greatest(maxms, 1))),
            CASE WHEN run_fail[k] > 0 THEN '#c2453d' ELSE '#2f6db5' END,
            run_ids[k], run_ms[k], run_aff[k], 56 + (k - 1) * 30, run_ids[k]);
    END LOOP;
    IF n = 0 THEN
        svg := svg || '<text x="60" y="60" fill="#c2453d">No maintenance run recorded: is the job scheduled?</text>';
    END IF;
    h := h || svg || '</svg>';
    h := h || '<table><tr><th>run</th><th>as of</th><th>started</th><th>duration (ms)</th>'
           || '<th>rows acted on</th><th>rules failed</th></tr>';
    FOR k IN REVERSE n .. 1 LOOP
        h := h || '<tr>' || popsell._report_fig('runs.' || run_ids[k] || '.run', run_ids[k]::text)
          || '<td>' || pg_catalog.to_char(run_asof[k], 'YYYY-MM-DD HH24:MI') || '</td>'
          || '<td>' || pg_catalog.to_char(run_started[k], 'YYYY-MM-DD HH24:MI') || '</td>'
          || popsell._report_fig('runs.' || run_ids[k] || '.ms', run_ms[k]::text)
          || popsell._report_fig('runs.' || run_ids[k] || '.affected', run_aff[k]::text)
          || popsell._report_fig('runs.' || run_ids[k] || '.failures', run_fail[k]::text)
          || '</tr>';
    END LOOP;
    h := h || '</table>' || E'\n';

    -- ---------------------------------------------------------------
    -- Data-subject rights
    -- ---------------------------------------------------------------
    h := h || '<h2>Data-subject rights (last 12 months)</h2>'
      || '<table><tr><th>month</th><th>access (art. 15)</th><th>erasure (art. 17)</th>'
      || '<th>restriction (art. 18)</th><th>restriction lifted</th><th>objection (art. 21)</th></tr>';
    FOR r IN
        SELECT pg_catalog.to_char(mo, 'YYYY-MM') AS month,
               pg_catalog.count(rr.id) FILTER (WHERE rr.request OPERATOR(pg_catalog.=) 'access') AS access,
               pg_catalog.count(rr.id) FILTER (WHERE rr.request OPERATOR(pg_catalog.=) 'erasure') AS erasure,
               pg_catalog.count(rr.id) FILTER (WHERE rr.request OPERATOR(pg_catalog.=) 'restriction') AS restriction,
               pg_catalog.count(rr.id) FILTER (WHERE rr.request OPERATOR(pg_catalog.=) 'restriction_lifted') AS lifted,
               pg_catalog.count(rr.id) FILTER (WHERE rr.request OPERATOR(pg_catalog.=) 'objection') AS objection
          FROM pg_catalog.generate_series(pg_catalog.date_trunc('month', p_at) - interval '11 months',
                                          pg_catalog.date_trunc('month', p_at), interval '1 month') AS mo
          LEFT JOIN popsell.rights_requests rr
                 ON rr.requested_at OPERATOR(pg_catalog.>=) mo
                AND rr.requested_at OPERATOR(pg_catalog.<) mo + interval '1 month'
                AND rr.requested_at OPERATOR(pg_catalog.<=) p_at
         GROUP BY mo ORDER BY mo
    LOOP
        h := h || '<tr><th>' || r.month || '</th>'
          || popsell._report_fig('rights.' || r.month || '.access', r.access::text)
          || popsell._report_fig('rights.' || r.month || '.erasure', r.erasure::text)
          || popsell._report_fig('rights.' || r.month || '.restriction', r.restriction::text)
          || popsell._report_fig('rights.' || r.month || '.restriction_lifted', r.lifted::text)
          || popsell._report_fig('rights.' || r.month || '.objection', r.objection::text) || '</tr>';
    END LOOP;
    h := h || '</table>';
    SELECT pg_catalog.count(*) AS n,
           coalesce(pg_catalog.round(EXTRACT(epoch FROM pg_catalog.max(rr.requested_at - coalesce(rr.received_at, rr.requested_at))) / 86400, 1), 0) AS longest,
           pg_catalog.count(*) FILTER (WHERE rr.requested_at - rr.received_at OPERATOR(pg_catalog.>) interval '1 month') AS late
      INTO r
      FROM popsell.rights_requests rr
     WHERE rr.requested_at OPERATOR(pg_catalog.>) pg_catalog.date_trunc('month', p_at) - interval '11 months'
       AND rr.requested_at OPERATOR(pg_catalog.<=) p_at;
    h := h || '<p>' || popsell._report_fig('rights.total', r.n::text, 'span') || ' requests; the longest took '
      || popsell._report_fig('rights.longest_days', r.longest::text, 'span')
      || ' days from receipt to completion (<code>received_at</code> to <code>requested_at</code>; a request '
      || 'without a receipt date counts as completed the day it arrived); '
      || '<span class="' || CASE WHEN r.late > 0 THEN 'warn' ELSE 'ok' END || '">'
      || popsell._report_fig('rights.late', r.late::text, 'span') || ' took longer than one month</span> '
      || '(GDPR art. 12(3)).</p>' || E'\n';

    -- ---------------------------------------------------------------
    -- Blacklist, tombstones, keys
    -- ---------------------------------------------------------------
    h := h || '<h2>Blacklist, tombstones and keys</h2><div class="cards">';
    FOR r IN
        SELECT b.reason::text AS reason, pg_catalog.count(bl.email_hash) AS n
          FROM pg_catalog.unnest(pg_catalog.enum_range(NULL::popsell.blacklist_reason)) WITH ORDINALITY AS b(reason, o)
          LEFT JOIN popsell.blacklist bl ON bl.reason OPERATOR(pg_catalog.=) b.reason
         GROUP BY b.reason, b.o ORDER BY b.o
    LOOP
        h := h || '<div class="card">' || popsell._report_fig('blacklist.' || r.reason, r.n::text, 'span')
          || '<span class="l">blacklisted: ' || r.reason || '</span></div>';
    END LOOP;
    h := h || '</div><table><tr><th>tombstone</th><th>reason</th><th>count</th><th>deleted in the last 12 months</th></tr>';
    FOR r IN
        SELECT 'contact' AS what, t.reason, pg_catalog.count(*) AS n,
               pg_catalog.count(*) FILTER (WHERE t.deleted_at OPERATOR(pg_catalog.>) since
                                             AND t.deleted_at OPERATOR(pg_catalog.<=) p_at) AS recent
          FROM popsell.contact_tombstones t GROUP BY t.reason
        UNION ALL
        SELECT 'ambassador', t.reason, pg_catalog.count(*),
               pg_catalog.count(*) FILTER (WHERE t.deleted_at OPERATOR(pg_catalog.>) since
                                             AND t.deleted_at OPERATOR(pg_catalog.<=) p_at)
          FROM popsell.ambassador_tombstones t GROUP BY t.reason
        ORDER BY 1 DESC, 2
    LOOP
        h := h || '<tr><td>' || r.what || '</td><td>' || popsell._html(r.reason) || '</td>'
          || popsell._report_fig('tombstones.' || r.what || '.' || r.reason, r.n::text)
          || popsell._report_fig('tombstones.' || r.what || '.' || r.reason || '.recent', r.recent::text) || '</tr>';
    END LOOP;
    h := h || '</table>';
    SELECT pg_catalog.count(*) AS n, pg_catalog.max(k.created_at) AS latest,
           pg_catalog.count(*) FILTER (WHERE k.secret IS NULL) AS legacy
      INTO r FROM popsell.hash_keys k;
    h := h || '<p>Keyed hashing: ' || popsell._report_fig('keys.count', r.n::text, 'span') || ' key(s), '
      || popsell._report_fig('keys.rotations', greatest(r.n - 1, 0)::text, 'span') || ' rotation(s); the current key dates from '
      || popsell._report_fig('keys.latest', coalesce(pg_catalog.to_char(r.latest, 'YYYY-MM-DD'), 'n/a'), 'span')
      || '. Entries hashed under older keys stay effective.</p>' || E'\n';

    -- ---------------------------------------------------------------
    -- Records of processing (art. 30), in sentences
    -- ---------------------------------------------------------------
    SELECT pg_catalog.count(*) AS amb,
           pg_catalog.count(*) FILTER (WHERE a.status OPERATOR(pg_catalog.=) 'active') AS active,
           pg_catalog.count(*) FILTER (WHERE a.status OPERATOR(pg_catalog.=) 'signup_incomplete') AS incomplete,
           pg_catalog.count(*) FILTER (WHERE a.status OPERATOR(pg_catalog.=) 'leaving') AS leaving
      INTO f FROM popsell.ambassadors a;
    SELECT n_contacts AS contacts, n_brand AS brand, n_partners AS partners, n_restricted AS restricted INTO r;
    h := h || '<h2>Records of processing (GDPR art. 30)</h2><ul class="ropa">'
      || '<li>Controller: ' || popsell._html(coalesce(s.brand_name, 'the brand')) || '. Processor: Popsell, which runs '
      || 'the ambassador platform; its account team and technical team act on the brand''s instructions.</li>'
      || '<li>Data subjects: ' || popsell._report_fig('ropa.ambassadors', f.amb::text, 'span') || ' ambassadors ('
      || popsell._report_fig('ropa.ambassadors_active', f.active::text, 'span') || ' active, '
      || popsell._report_fig('ropa.ambassadors_incomplete', f.incomplete::text, 'span') || ' incomplete signups, '
      || popsell._report_fig('ropa.ambassadors_leaving', f.leaving::text, 'span') || ' leaving) and '
      || popsell._report_fig('ropa.contacts', r.contacts::text, 'span') || ' contacts of theirs, '
      || popsell._report_fig('ropa.contacts_restricted', r.restricted::text, 'span') || ' of them restricted (art. 18).</li>'
      || '<li>Categories of data: for ambassadors, identity and contact details (name, email, postal address, '
      || 'birth date, photo, position, bank account for commissions), account data (bcrypt password hash, '
      || 'login dates, terms acceptance), preferences and an anti-fraud activity log whose IP addresses are '
      || 'stored as keyed hashes; for contacts, identity and contact details (name, email, phones, postal '
      || 'address, social network ids), their consent states with a ledger of every change, interactions '
      || 'and sales.</li>'
      || '<li>Purposes: the ambassador program (publications sent by ambassadors to their contacts, '
      || 'community, gamification, sales attribution) and, with a brand opt-in, the brand''s own marketing.</li>'
      || '<li>Recipients: the brand, which sees the contacts with a brand or partners opt-in (confirmed, not '
      || 'restricted): ' || popsell._report_fig('ropa.contacts_brand_optin', r.brand::text, 'span')
      || ' contacts have a brand opt-in; the brand''s partners: '
      || popsell._report_fig('ropa.contacts_partners_optin', r.partners::text, 'span')
      || ' contacts agreed to be contacted by them, and they are told of each erasure or objection.</li>'
      || '<li>Retention: an ambassador without login is deleted after '
      || popsell._report_fig('settings.ambassador_inactivity', s.ambassador_inactivity::text, 'span') || ', warned '
      || popsell._report_fig('settings.inactivity_warnings', s.inactivity_warnings::text, 'span') || ' time(s) '
      || popsell._report_fig('settings.inactivity_warning_interval', s.inactivity_warning_interval::text, 'span')
      || ' apart; one who leaves is deleted after a grace period of '
      || popsell._report_fig('settings.deletion_grace', s.deletion_grace::text, 'span')
      || '; a signup not confirmed within '
      || popsell._report_fig('settings.signup_confirmation_window', s.signup_confirmation_window::text, 'span')
      || ' is deleted. A contact never invited is deleted after '
      || popsell._report_fig('settings.new_contact_invitation_window', s.new_contact_invitation_window::text, 'span')
      || '; an invitation unanswered for two windows of '
      || popsell._report_fig('settings.invitation_response_window', s.invitation_response_window::text, 'span')
      || ' counts as a refusal; an email not confirmed within '
      || popsell._report_fig('settings.email_confirmation_window', coalesce(s.email_confirmation_window, s.invitation_response_window)::text, 'span')
      || ' is deleted; opted-out contacts are kept '
      || popsell._report_fig('settings.optout_retention', s.optout_retention::text, 'span')
      || ' and contacts without activity '
      || popsell._report_fig('settings.contact_inactivity', s.contact_inactivity::text, 'span')
      || '. Logs are kept ' || popsell._report_fig('settings.log_retention', s.log_retention::text, 'span')
      || '. A suspended program''s personal data is deleted after '
      || popsell._report_fig('settings.suspension_max', s.suspension_max::text, 'span')
      || ', and all of it after the end of the brand''s contract plus the grace period. Deleted people leave '
      || 'a tombstone of keyed hashes, city, postal code and dates, kept for the life of the brand''s '
      || 'instance.</li>'
      || '<li>Account rules: signup '
      || CASE WHEN s.sso_exclusive THEN 'only through the brand''s single sign-on'
              ELSE 'by form (email verified by a confirmation link), Facebook or the brand''s single sign-on' END
      || '; fields the brand requires: '
      || popsell._report_fig('settings.required_ambassador_fields',
                             coalesce(NULLIF(pg_catalog.array_to_string(s.required_ambassador_fields, ', '), ''), 'none'),
                             'span')
      || '; the community shows names as '
      || popsell._report_fig('settings.community_name_format', s.community_name_format, 'span') || '.</li>'
      || '<li>Program state: '
      || CASE WHEN s.program_suspended_at IS NOT NULL
              THEN 'suspended since ' || pg_catalog.to_char(s.program_suspended_at, 'YYYY-MM-DD')
              ELSE 'running' END
      || CASE WHEN s.brand_contract_ended_at IS NOT NULL
              THEN '; the brand''s contract ended on ' || pg_catalog.to_char(s.brand_contract_ended_at, 'YYYY-MM-DD')
              ELSE '' END
      || '. Security: row level security on every table, keyed HMAC-SHA-256 hashes, bcrypt passwords; '
      || 'erased data may remain in WAL, replicas and backups until they expire.</li></ul>'
      || E'\n</body></html>\n';
    RETURN h;
END
$$;
COMMENT ON FUNCTION popsell.compliance_report(timestamptz) IS
    'The brand''s compliance report as of AT (default now): one self-contained HTML document (inline CSS and SVG, no script, no external asset, no personal data) with the consent funnel per source over the last 12 months, the retention outlook of every run_maintenance rule in 30/90/365 days (maintenance_preview), the last 30 runs, data-subject requests per month with the longest time to completion, blacklist and tombstones by reason, key rotations and the records-of-processing summary. Every figure carries data-figure="key". For the brand (popsell_brand, popsell_brand_bi) and vendor staff; psql -Atc "SELECT popsell.compliance_report()" > report.html.';

GRANT EXECUTE ON FUNCTION popsell.compliance_report(timestamptz)
    TO popsell_brand, popsell_brand_bi, popsell_account_team, popsell_technical;
-- ===================================================================
-- Ownership, privileges, row security baseline and pg_dump, for every
-- object of the schema.  One idempotent step that the install script and
-- every upgrade script end with, so an upgrade cannot forget a table's
-- FORCE ROW LEVEL SECURITY, its owner or its pg_dump registration.
-- Upgrade scripts get this file appended by the Makefile.
-- ===================================================================

CREATE OR REPLACE FUNCTION popsell._finalize_extension() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    ext pg_catalog.oid;
BEGIN
    -- pg_extension_config_dump only works inside CREATE/ALTER EXTENSION;
    -- say so before changing anything.
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                    WHERE rolname OPERATOR(pg_catalog.=) pg_catalog.current_user()
                      AND rolsuper) THEN
        RAISE EXCEPTION 'popsell._finalize_extension() runs only in popsell''s install and upgrade scripts'
            USING ERRCODE = 'PS001',
                  HINT = 'Run CREATE EXTENSION popsell or ALTER EXTENSION popsell UPDATE as a superuser.';
    END IF;

    SELECT e.oid INTO ext FROM pg_catalog.pg_extension e
     WHERE e.extname OPERATOR(pg_catalog.=) 'popsell';

    -- Only the extension's own objects (pg_depend deptype 'e'): a DBA's
    -- table or function in the schema is none of popsell's business, and
    -- pg_extension_config_dump refuses non-members.

    -- Tables, sequences and views belong to the NOLOGIN popsell_owner, as
    -- do the SQL and PL/pgSQL functions (so SECURITY DEFINER ones run as
    -- it, not as a superuser).  C functions stay with the superuser.
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, c.relkind
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) c.oid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
         WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'v', 'm', 'p', 'S']::"char"[])
           AND c.relowner OPERATOR(pg_catalog.<>) 'popsell_owner'::pg_catalog.regrole
           -- a sequence owned by a column follows its table
           AND NOT (c.relkind OPERATOR(pg_catalog.=) 'S' AND EXISTS (
                    SELECT 1 FROM pg_catalog.pg_depend d
                     WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                       AND d.objid OPERATOR(pg_catalog.=) c.oid
                       AND d.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['a', 'i']::"char"[])))
    LOOP
        IF r.relkind OPERATOR(pg_catalog.=) 'S' THEN
            EXECUTE pg_catalog.format('ALTER SEQUENCE %s OWNER TO popsell_owner', r.obj);
        ELSE
            EXECUTE pg_catalog.format('ALTER TABLE %s OWNER TO popsell_owner', r.obj);
        END IF;
    END LOOP;
    FOR r IN
        SELECT p.oid::pg_catalog.regprocedure AS fn, l.lanname
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) p.oid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
          JOIN pg_catalog.pg_language l ON l.oid OPERATOR(pg_catalog.=) p.prolang
    LOOP
        IF r.lanname OPERATOR(pg_catalog.<>) 'c' THEN
            EXECUTE pg_catalog.format('ALTER FUNCTION %s OWNER TO popsell_owner', r.fn);
        END IF;
        -- Nothing of popsell is granted to PUBLIC; roles get what they
        -- need with each object.  popsell_owner runs popsell's functions.
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', r.fn);
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO popsell_owner', r.fn);
    END LOOP;
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, c.relkind
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) c.oid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
    LOOP
        IF r.relkind OPERATOR(pg_catalog.=) 'S' THEN
            EXECUTE pg_catalog.format('REVOKE ALL ON SEQUENCE %s FROM PUBLIC', r.obj);
        ELSE
            EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %s FROM PUBLIC', r.obj);
        END IF;
    END LOOP;
    REVOKE ALL ON SCHEMA popsell FROM PUBLIC;
    GRANT USAGE ON SCHEMA popsell TO popsell_owner;
    -- The lookup-key functions' schema: USAGE for popsell_owner alone
    -- (its functions look contacts up by key); the writing roles hold
    -- EXECUTE for index maintenance, which does not check USAGE, and
    -- cannot name the functions in a query (03_tables.sql).
    -- A grant someone added since is taken back by the next upgrade.
    FOR r IN
        SELECT DISTINCT a.grantee
          FROM pg_catalog.pg_namespace n, LATERAL pg_catalog.aclexplode(n.nspacl) a
         WHERE n.nspname OPERATOR(pg_catalog.=) 'popsell_internal'
           AND a.grantee OPERATOR(pg_catalog.<>) n.nspowner
           AND a.grantee OPERATOR(pg_catalog.<>) 'popsell_owner'::pg_catalog.regrole
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON SCHEMA popsell_internal FROM %s CASCADE',
                                  CASE WHEN r.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                                       ELSE r.grantee::pg_catalog.regrole::pg_catalog.text END);
    END LOOP;
    GRANT USAGE ON SCHEMA popsell_internal TO popsell_owner;

    -- Types are usable by PUBLIC by default: only popsell's roles get
    -- them (enums, domains, composite types).
    FOR r IN
        SELECT t.oid::pg_catalog.regtype AS typ
          FROM pg_catalog.pg_type t
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) t.oid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
         WHERE t.typtype OPERATOR(pg_catalog.=) ANY (ARRAY['e', 'd', 'c']::"char"[])
           -- a table's or view's row type follows its relation (pg_dump
           -- 16 and later refuse initial privileges recorded on it)
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class rel
                            WHERE rel.oid OPERATOR(pg_catalog.=) t.typrelid
                              AND rel.relkind OPERATOR(pg_catalog.<>) 'c')
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON TYPE %s FROM PUBLIC', r.typ);
        EXECUTE pg_catalog.format('GRANT USAGE ON TYPE %s TO popsell_owner, popsell_ambassador, '
                                  'popsell_brand, popsell_brand_bi, popsell_account_team, '
                                  'popsell_technical, popsell_app, popsell_maintenance', r.typ);
    END LOOP;

    -- Row level security on every table, forced so the owner is subject to
    -- it too; popsell_owner (popsell's own functions and triggers) sees all
    -- rows, other roles get policies in the security section.
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, c.oid
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) c.oid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
         WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[])
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', r.obj);
        EXECUTE pg_catalog.format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', r.obj);
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy
                        WHERE polrelid OPERATOR(pg_catalog.=) r.oid
                          AND polname OPERATOR(pg_catalog.=) 'popsell_owner_all') THEN
            EXECUTE pg_catalog.format(
                'CREATE POLICY popsell_owner_all ON %s TO popsell_owner USING (true) WITH CHECK (true)', r.obj);
        END IF;
    END LOOP;

    -- No column statistics of personal data (SPEC S11): the planner uses a
    -- table's statistics (histogram bounds, most common values) to estimate
    -- a caller's leakproof condition, hidden rows included, so a plain
    -- EXPLAIN's row estimate would tell a restricted role whether a value
    -- it may not see is stored.  Every column of a member table that can
    -- hold personal data (text, date, bytea, arrays, json, inet), and every index
    -- expression of those types (lookup keys of emails...), gets statistics target 0 and
    -- loses the statistics an earlier ANALYZE gathered.
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, a.attname, a.attnum, c.oid
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) c.oid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
          JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attnum OPERATOR(pg_catalog.>) 0
                                         AND NOT a.attisdropped
          JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid
         WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[])
           AND (t.typcategory OPERATOR(pg_catalog.=) ANY (ARRAY['S', 'A']::"char"[])
                OR a.atttypid OPERATOR(pg_catalog.=) ANY (ARRAY['pg_catalog.bytea', 'pg_catalog.date',
                                                                'pg_catalog.jsonb', 'pg_catalog.json', 'pg_catalog.name',
                                                                'pg_catalog.inet']::pg_catalog.regtype[]))
    LOOP
        -- (attstattarget is NULL for the default from PostgreSQL 17 on)
        IF coalesce((SELECT a.attstattarget FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid OPERATOR(pg_catalog.=) r.oid AND a.attnum OPERATOR(pg_catalog.=) r.attnum),
                    -1) OPERATOR(pg_catalog.<>) 0 THEN
            EXECUTE pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I SET STATISTICS 0', r.obj, r.attname);
        END IF;
        DELETE FROM pg_catalog.pg_statistic
         WHERE starelid OPERATOR(pg_catalog.=) r.oid AND staattnum OPERATOR(pg_catalog.=) r.attnum;
    END LOOP;
    FOR r IN
        SELECT i.indexrelid::pg_catalog.regclass AS obj, a.attnum, i.indexrelid AS oid, a.attstattarget
          FROM pg_catalog.pg_index i
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) i.indrelid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
          JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indexrelid
                                         AND a.attnum OPERATOR(pg_catalog.>) 0
          JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid
         WHERE i.indkey[a.attnum OPERATOR(pg_catalog.-) 1] OPERATOR(pg_catalog.=) 0
           AND (t.typcategory OPERATOR(pg_catalog.=) ANY (ARRAY['S', 'A']::"char"[])
                OR a.atttypid OPERATOR(pg_catalog.=) ANY (ARRAY['pg_catalog.bytea', 'pg_catalog.date',
                                                                'pg_catalog.jsonb', 'pg_catalog.json', 'pg_catalog.name',
                                                                'pg_catalog.inet']::pg_catalog.regtype[]))
    LOOP
        IF coalesce(r.attstattarget, -1) OPERATOR(pg_catalog.<>) 0 THEN
            EXECUTE pg_catalog.format('ALTER INDEX %s ALTER COLUMN %s SET STATISTICS 0', r.obj, r.attnum);
        END IF;
        DELETE FROM pg_catalog.pg_statistic
         WHERE starelid OPERATOR(pg_catalog.=) r.oid AND staattnum OPERATOR(pg_catalog.=) r.attnum;
    END LOOP;

    -- Tables with a lookup-key index (an index expression calling a
    -- function of popsell_internal: contacts, ambassadors) are read through
    -- column grants only.  CREATE TABLE ... (LIKE t INCLUDING INDEXES)
    -- needs only table-level SELECT on t and copies its index expressions
    -- by OID, lookup-key functions included: the copy's unique violations
    -- (or pg_stats) then print the key of any value its creator inserts.
    -- LIKE checks the table-level privilege only, so column grants on
    -- every column (SELECT * and count(*) keep working) refuse it.  The
    -- roles reading every column (popsell._column_readers, 07_security.sql)
    -- get SELECT on each column, including the columns an upgrade added;
    -- any other table-level SELECT on these tables (a DBA's grant, a later
    -- script's) becomes SELECT on every column too.  Revoking a table-level
    -- privilege takes the column ones with it, so the revoke comes first.
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj, a.grantee::pg_catalog.regrole AS grantee
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) c.oid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
          CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
         WHERE a.privilege_type OPERATOR(pg_catalog.=) 'SELECT'
           AND a.grantee OPERATOR(pg_catalog.<>) c.relowner
           AND a.grantee OPERATOR(pg_catalog.<>) 0
           AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                         JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                                     AND d.objid OPERATOR(pg_catalog.=) i.indexrelid
                                                     AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                         JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) d.refobjid
                        WHERE i.indrelid OPERATOR(pg_catalog.=) c.oid
                          AND p.pronamespace OPERATOR(pg_catalog.=) 'popsell_internal'::pg_catalog.regnamespace)
        UNION
        SELECT w.rel::pg_catalog.regclass, w.reader::pg_catalog.regrole
          FROM popsell._column_readers() w
         ORDER BY 1, 2   -- the same order of ACL entries after an install and an upgrade
    LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c, LATERAL pg_catalog.aclexplode(c.relacl) a
                    WHERE c.oid OPERATOR(pg_catalog.=) r.obj
                      AND a.grantee OPERATOR(pg_catalog.=) r.grantee
                      AND a.privilege_type OPERATOR(pg_catalog.=) 'SELECT') THEN
            EXECUTE pg_catalog.format('REVOKE SELECT ON TABLE %s FROM %s', r.obj, r.grantee);
        END IF;
        EXECUTE pg_catalog.format('GRANT SELECT (%s) ON TABLE %s TO %s',
            (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(att.attname), ', ' ORDER BY att.attnum)
               FROM pg_catalog.pg_attribute att
              WHERE att.attrelid OPERATOR(pg_catalog.=) r.obj AND att.attnum OPERATOR(pg_catalog.>) 0
                AND NOT att.attisdropped),
            r.obj, r.grantee);
    END LOOP;

    -- pg_dump keeps what users filled (SPEC section 3, S9): every table
    -- and sequence, registered once.
    FOR r IN
        SELECT c.oid::pg_catalog.regclass AS obj
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_depend m ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                      AND m.objid OPERATOR(pg_catalog.=) c.oid AND m.deptype OPERATOR(pg_catalog.=) 'e'
                                      AND m.refobjid OPERATOR(pg_catalog.=) ext
          JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) ext
         WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p', 'S']::"char"[])
           AND NOT c.oid OPERATOR(pg_catalog.=) ANY (coalesce(e.extconfig, '{}'::pg_catalog.oid[]))
    LOOP
        PERFORM pg_catalog.pg_extension_config_dump(r.obj, '');
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION popsell._finalize_extension() FROM PUBLIC;
COMMENT ON FUNCTION popsell._finalize_extension() IS
    'Install and upgrade step (superuser only; the last statement of every install and upgrade script): every member table, view, sequence and non-C function owned by popsell_owner, nothing granted to PUBLIC, row security enabled and forced with the owner policy, no statistics on columns and index expressions that can hold personal data, tables with a lookup-key index read through column grants only (the roles of popsell._column_readers() get SELECT on every column, any other table-level SELECT becomes SELECT on every column), every table and sequence registered for pg_dump. Idempotent.';

SELECT popsell._finalize_extension();
