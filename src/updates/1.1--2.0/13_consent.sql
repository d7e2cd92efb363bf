-- Consent v2 (SPEC sections 2-5): consent belongs to an address,
-- refusals are remembered, every opt-in can be withdrawn, partners opt-ins
-- only from popsell's own forms, the outbox is immutable with one origin
-- per kind, the brand acts only on what it sees, nothing is done for an
-- inactive ambassador, imports skip invalid rows.

ALTER TYPE popsell.blacklist_reason ADD VALUE IF NOT EXISTS 'invitation_refused';
ALTER TYPE popsell.outbox_kind ADD VALUE IF NOT EXISTS 'partner_optout';

-- @restate function:_contact_for_caller

-- @restate function:_ambassador_for_caller

-- @restate function:collect_contact

-- @restate function:send_invitation

-- @restate function:opt_out

-- @restate function:record_interaction

-- @restate function:record_sale

-- import_contacts gains a column (skipped_invalid): a new signature.
DROP FUNCTION popsell.import_contacts(bigint, jsonb);

-- @restate function:_import_rows

-- @restate function:_import

-- @restate function:import_contacts

-- @restate function:import_contacts_detail

-- @restate function:send_invitations

-- @restate function:withdraw_consent

-- @restate function:outbox_rules

CREATE TRIGGER popsell_40_outbox_rules
    BEFORE INSERT OR UPDATE ON popsell.outbox
    FOR EACH ROW EXECUTE FUNCTION popsell.outbox_rules();

-- @restate function:contacts_email_changed

CREATE TRIGGER popsell_60_email_changed
    AFTER UPDATE OF email ON popsell.contacts
    FOR EACH ROW WHEN (OLD.email IS DISTINCT FROM NEW.email)
    EXECUTE FUNCTION popsell.contacts_email_changed();

-- @restate function:ambassadors_leaving

CREATE TRIGGER popsell_60_leaving
    AFTER UPDATE OF status ON popsell.ambassadors
    FOR EACH ROW WHEN (NEW.status = 'leaving' AND OLD.status IS DISTINCT FROM 'leaving')
    EXECUTE FUNCTION popsell.ambassadors_leaving();

-- @restate function:object_subject


-- Only the ambassador's own path invites (v2): not the brand.
REVOKE EXECUTE ON FUNCTION popsell.send_invitation(bigint) FROM popsell_brand;
GRANT EXECUTE ON FUNCTION popsell.import_contacts(bigint, jsonb),
    popsell.import_contacts_detail(bigint, jsonb), popsell.send_invitations(bigint[])
    TO popsell_ambassador, popsell_app, popsell_account_team, popsell_technical;
GRANT EXECUTE ON FUNCTION popsell.withdraw_consent(bigint, boolean, boolean) TO popsell_app;
-- The consent trigger, not a bare "permission denied", answers (PS100).
GRANT UPDATE (brand_optin, partners_optin, email_status) ON popsell.contacts TO popsell_ambassador;
