-- Consent v2 review fixes.

-- The brand reads only brand-visible contacts; it records a withdrawal
-- the person asked for with popsell.withdraw_consent (the policy itself is
-- restated by 13_consent).
GRANT EXECUTE ON FUNCTION popsell.withdraw_consent(bigint, boolean, boolean) TO popsell_brand;
COMMENT ON FUNCTION popsell.withdraw_consent(bigint, boolean, boolean) IS
    'The person withdraws the brand opt-in (brand_optin no_optin) and/or the partners opt-in (partners_optin false, partners told by a partner_optout outbox row): the unsubscribe link of a brand or partner email. App, and brand staff recording a withdrawal the person asked for on a contact they see; PS200 unknown contact (or one the brand does not see), PS106 NULL argument.';

CREATE FUNCTION popsell._brand_saw(contact_id bigint) RETURNS boolean
    LANGUAGE c VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'brand_saw';
COMMENT ON FUNCTION popsell._brand_saw(bigint) IS
    'Internal (brand row security): whether the current statement is a staff UPDATE that changed this contact while the brand saw it (its old version was brand-visible). Brand roles; no errors, false for NULL.';
GRANT EXECUTE ON FUNCTION popsell._brand_saw(bigint) TO popsell_brand;

-- The brand's contacts policy uses popsell._brand_saw: restated after it.
-- @restate policy:popsell_brand_select:contacts

-- Partners are told of every end of a partners opt-in (withdraw_consent
-- and object_subject, restated by 13_consent, leave it to this trigger).
-- @restate function:contacts_partners_ended

CREATE TRIGGER popsell_60_partners_ended
    AFTER UPDATE ON popsell.contacts
    FOR EACH ROW WHEN (OLD.partners_optin AND NOT NEW.partners_optin)
    EXECUTE FUNCTION popsell.contacts_partners_ended();
