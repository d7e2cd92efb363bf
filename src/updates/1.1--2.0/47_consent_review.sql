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

-- H1/M1: one invitation per person per ambassador, ever: a record of the
-- keyed hash of each invited address per ambassador, written and checked
-- by send_invitation under a transaction lock on the pair.  Filled from
-- the rows invited before the upgrade (their current address) and the
-- ambassadors' tombstones of invited rows.
CREATE TABLE popsell.invitation_records (
    ambassador_id bigint NOT NULL REFERENCES popsell.ambassadors (id) ON DELETE CASCADE,
    email_hash    bytea NOT NULL,
    key_id        integer NOT NULL,
    invited_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ambassador_id, email_hash)
);
COMMENT ON TABLE popsell.invitation_records IS
    'Internal (owner only), append-only: the keyed hash of each address an ambassador invited (send_invitation), so it invites the person once, ever, whatever becomes of the row; erased with the ambassador.';
INSERT INTO popsell.invitation_records (ambassador_id, email_hash, key_id, invited_at)
SELECT c.ambassador_id, popsell.hash_email(c.email), popsell.hash_key_id(),
       coalesce(max(c.invitation_sent_at), now())
  FROM popsell.contacts c
 WHERE c.invitations_sent > 0 AND c.email IS NOT NULL AND c.ambassador_id IS NOT NULL
 GROUP BY 1, 2
ON CONFLICT DO NOTHING;
INSERT INTO popsell.invitation_records (ambassador_id, email_hash, key_id, invited_at)
SELECT t.ambassador_id, t.email_hash, min(t.key_id), min(t.deleted_at)
  FROM popsell.contact_tombstones t
  JOIN popsell.ambassadors a ON a.id = t.ambassador_id
 WHERE t.email_hash IS NOT NULL AND t.key_id IS NOT NULL
   AND t.ambassador_optin IN ('invitation_sent', 'invitation_accepted', 'invitation_declined', 'optout_no_response')
 GROUP BY 1, 2
ON CONFLICT DO NOTHING;
-- @restate function:send_invitation

-- M2: rows pending email confirmation, hidden from the ambassador, do not
-- count as an email it holds (the C check of the contacts trigger too).
-- @restate function:_import_rows

-- H3: a refused import part of at most 64 rows goes row by row instead of
-- halving further; the halves go in plain INSERTs (the trigger refuses
-- duplicates), sliced with a JSON path, not re-aggregated.
-- @restate function:_import_one
-- @restate function:_import_halves
-- @restate function:_import_split

-- L4: a personal field of only white space or invisible characters is
-- empty (the contacts trigger, in C, and _import_check).
CREATE FUNCTION popsell._has_visible_text(value text) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'has_visible_text';
COMMENT ON FUNCTION popsell._has_visible_text(text) IS
    'Internal: whether a text holds a visible character (not only Unicode white space, invisible, format or control characters): what makes a personal field filled.';
-- @restate function:_import_check

-- L5: a contact's text fields take a JSON string or null (tags: strings),
-- in collect_contact (PS106) and in imports ("value not a string").
-- @restate function:_json_not_strings
-- @restate function:_import_check
-- @restate function:collect_contact
-- @restate function:_import
-- @restate function:import_contacts_detail

-- L3: tags hold at most 100 labels of 256 bytes (the contacts trigger,
-- PS107; _import_check reports "value too long").
-- @restate function:_import_check

-- Art. 15: subject_access lists the invitation records of the address.
-- @restate function:subject_access

-- The invitation records, like the tombstones, are not truncated but by
-- popsell_owner.
CREATE TRIGGER popsell_10_truncate_guard BEFORE TRUNCATE ON popsell.invitation_records
    FOR EACH STATEMENT EXECUTE FUNCTION popsell.truncate_guard();
