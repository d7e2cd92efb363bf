-- Mutant for I5: _contact_for_caller as it was before the model found it
-- (an ambassador acts on its contacts pending confirmation: a released
-- soft bounce makes a pending row ok unconfirmed).
-- seeds: {3,21}
-- expect: I5
CREATE OR REPLACE FUNCTION popsell._contact_for_caller(p_contact_id bigint)
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
                      AND (current_setting('popsell.ambassador_id', true) = a.id::text
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
                  AND c.ambassador_id IS NOT NULL) THEN
        RAISE EXCEPTION 'contact % does not exist or is not yours', p_contact_id
            USING ERRCODE = 'PS200',
                  HINT = 'Check the contact id and the ambassador the session acts as.';
    END IF;
    RETURN c;
END
$$;
COMMENT ON FUNCTION popsell._contact_for_caller(bigint) IS
    'Internal: the contact row if the calling role may act on it (the brand: only contacts it sees), else PS200.';
