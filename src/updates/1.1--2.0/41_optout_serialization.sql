-- Issue 11: a global opt-out serializes per email, not per table (the
-- SHARE ROW EXCLUSIVE lock on popsell.contacts stalled every writer and
-- deadlocked applications with each other and with run_maintenance).
-- src/blacklist.c explains the protocol: the opt-out writes its entry,
-- bumps the generation, waits only for writers of its email; a writer
-- probes with a dirty snapshot and, when the generation moved while its
-- row was being written, checks that row again.
CREATE SEQUENCE popsell.optout_generation NO CYCLE CACHE 1;
COMMENT ON SEQUENCE popsell.optout_generation IS
    'Internal: bumped by every blacklist entry popsell._blacklist_add writes; a contact row written while it moved is checked again (popsell_80_optout_recheck).';

-- @restate function:_await_email_writers

-- @restate function:_optout_raced

GRANT EXECUTE ON FUNCTION popsell._optout_raced()
    TO popsell_ambassador, popsell_brand, popsell_app, popsell_account_team, popsell_technical;

-- @restate function:contacts_optout_recheck

CREATE TRIGGER popsell_80_optout_recheck
    AFTER INSERT OR UPDATE ON popsell.contacts
    FOR EACH ROW WHEN (popsell._optout_raced())
    EXECUTE FUNCTION popsell.contacts_optout_recheck();

-- @restate function:_blacklist_add
