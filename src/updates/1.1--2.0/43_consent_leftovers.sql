-- Consent leftovers (issue 13): imports sorted set-based, distinct
-- reasons, non-object elements skipped; the brand does not change a
-- contact's email (F9); a confirmation is bound to the address it was
-- sent to (F10).

-- Imports: the elements are checked in one statement, the valid ones
-- inserted in one more (_import_rows and _import are restated by
-- 13_consent with their current definitions).
-- @restate function:_import_check
-- @restate function:_import_split

-- F10: tokens for contact email confirmations.
CREATE TABLE popsell.contact_email_tokens (
    contact_id bigint PRIMARY KEY REFERENCES popsell.contacts (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE popsell.contact_email_tokens IS
    'Internal: pending contact email confirmations, the SHA-256 of each single-use token (never the token), one per contact, replaced on an address change, deleted on confirmation.';
-- @restate function:_issue_contact_token
-- @restate function:collect_contact
-- @restate function:contacts_email_changed
-- confirm_email(bigint, text) is restated by 11_state_classes_uses, next
-- to confirm_email(bigint).
GRANT EXECUTE ON FUNCTION popsell.confirm_email(bigint), popsell.confirm_email(bigint, text) TO popsell_app;

-- Contacts pending confirmation at the upgrade got a link without a
-- token: the unsent ones are cancelled and each such contact gets a new
-- confirmation email with one.  A contact whose link was sent already
-- gets no second mail (the application confirms that link with
-- confirm_email(contact_id)); _issue_contact_token issues nothing to a
-- restricted contact (lifting the restriction does) nor to an address
-- whose status blocks sending.
DELETE FROM popsell.outbox o
 WHERE o.kind = 'email_confirmation' AND o.contact_id IS NOT NULL AND o.sent_at IS NULL
   AND NOT o.payload ? 'token';
SELECT popsell._issue_contact_token(c.id)
  FROM popsell.contacts c
 WHERE popsell.is_pending_confirmation(c.source, c.email_confirmed_at) AND c.email IS NOT NULL
   AND NOT c.restricted AND c.email_status = 'unverified'
   AND NOT EXISTS (SELECT 1 FROM popsell.outbox o
                    WHERE o.contact_id = c.id AND o.kind = 'email_confirmation' AND o.sent_at IS NOT NULL)
 ORDER BY c.id;

-- F9: the brand does not change a contact's email.
-- @restate function:contacts_brand_email
CREATE TRIGGER popsell_10_brand_email
    BEFORE UPDATE OF email ON popsell.contacts
    FOR EACH ROW WHEN (OLD.email IS DISTINCT FROM NEW.email)
    EXECUTE FUNCTION popsell.contacts_brand_email();

-- Found by the consent model: one invitation per person per ambassador
-- (another invited row or an erased one of the same ambassador counts),
-- and an ambassador acts only on the contacts it sees (not those pending
-- confirmation).
-- @restate function:send_invitation
-- @restate function:_contact_for_caller
