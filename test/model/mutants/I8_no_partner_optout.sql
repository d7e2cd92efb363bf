-- Mutant for I8: the end of a partners opt-in is no longer told to the
-- partners (the trigger that queues partner_optout does nothing).
-- seeds: {3,22}
-- expect: I8
CREATE OR REPLACE FUNCTION popsell.contacts_partners_ended() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
