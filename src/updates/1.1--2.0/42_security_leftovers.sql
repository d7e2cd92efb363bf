-- Security leftovers of issue 12 (SPEC S11, section 2).

-- Lookup keys are an HMAC under popsell.lookup_secret (00_lookup_secret.sql
-- created it before any lookup-key index), computed for a restricted role
-- only for the row it writes (the last BEFORE row trigger records it).
-- @restate function:_lookup_key function:_brand_lookup_key function:_lookup_key_row
CREATE TRIGGER popsell_99_lookup_keys
    BEFORE INSERT OR UPDATE ON popsell.ambassadors
    FOR EACH ROW EXECUTE FUNCTION popsell._lookup_key_row('email', 'sso_subject');
CREATE TRIGGER popsell_99_lookup_keys
    BEFORE INSERT OR UPDATE ON popsell.contacts
    FOR EACH ROW EXECUTE FUNCTION popsell._lookup_key_row('email');
-- A restore replaces the install's secret with the backed-up one and
-- rebuilds the lookup-key indexes with it.
-- @restate function:_restore_singletons function:_lookup_secret_restored
CREATE TRIGGER popsell_95_restored
    AFTER INSERT ON popsell.lookup_secret
    FOR EACH STATEMENT EXECUTE FUNCTION popsell._lookup_secret_restored();

-- An ambassador's policies on rows tied to a contact: the ids it sees,
-- read once per query, instead of a helper run per row (about 4000 times
-- faster on 200,000 interactions; see bench/201_rls.sql).
-- @restate function:_id_in
GRANT EXECUTE ON FUNCTION popsell._id_in(bigint, bigint[])
    TO popsell_ambassador, popsell_brand, popsell_brand_bi, popsell_account_team,
       popsell_technical, popsell_app;
-- @restate policy:popsell_ambassador_select:interactions policy:popsell_ambassador_select:consent_events

-- popsell's own identity checks follow the one-transaction rule too: they
-- compare with the value set in this transaction, not the raw setting.
-- @restate function:_ambassador_id_setting function:_contact_for_caller function:_ambassador_for_caller
