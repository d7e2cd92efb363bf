-- Consent review of issue 13.
-- H2/M3/L1: a confirmation token (and its mail) exists only while the
-- contact may be mailed: not restricted (art. 18), an unverified address
-- (not spam, hard_bounce, blocked).  Restricting a contact removes its
-- token, lifting the restriction sends a new one; a restricted contact
-- confirms nothing (PS120).  (43's data step follows the same rule.)
-- @restate function:_issue_contact_token
-- @restate function:_refuse_restricted_confirmation
-- @restate function:confirm_email
-- @restate function:contacts_restriction_changed
CREATE TRIGGER popsell_60_restriction_changed
    AFTER UPDATE OF restricted ON popsell.contacts
    FOR EACH ROW WHEN (OLD.restricted IS DISTINCT FROM NEW.restricted)
    EXECUTE FUNCTION popsell.contacts_restriction_changed();
