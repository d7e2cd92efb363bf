-- Security leftovers of issue 12 (SPEC S11, section 2).

-- Lookup keys are an HMAC under popsell.lookup_secret (00_lookup_secret.sql
-- created it before any lookup-key index); 46_lookup_key_schema.sql moves
-- the key functions where no restricted role can name them.
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
