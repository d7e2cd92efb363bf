-- Mutant for I7: send_invitation as it was before the model found the
-- second invitation (no check of the ambassador's other or erased rows
-- with the same email).
-- seeds: {1,11,23}
-- expect: I7
CREATE OR REPLACE FUNCTION popsell.send_invitation(contact_id bigint)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET popsell.actor = 'send_invitation'
AS $$
DECLARE
    c popsell.contacts := popsell._contact_for_caller(send_invitation.contact_id);
    st popsell.ambassador_status;
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
    'Queue the invitation email of a new contact (once, ever) and mark it invitation_sent. By the ambassador itself, app, account team, technical (not the brand); PS200 unknown or foreign contact, PS100 not new or invited before, PS300 ambassador not active, PS120 sending refused.';
