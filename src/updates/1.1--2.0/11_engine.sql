-- issue 11: the consent ledger is written through the executor, from an
-- array of popsell._consent_entry (as in src/sql/05_engine.sql).

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
