-- Lookup keys out of every restricted role's reach (issue 12, SPEC S11).
-- The key functions move to schema popsell_internal, where only the owner
-- has USAGE (99_finalize grants it): the writing roles keep EXECUTE, which
-- index maintenance checks, but can no longer name them in a query, which
-- needs USAGE.  ALTER FUNCTION ... SET SCHEMA keeps their OIDs (and their
-- grants), so the lookup-key indexes stay valid and are not rebuilt;
-- pg_get_indexdef shows the new schema.  The allow-list trigger of the
-- 2.0 development line (popsell._lookup_key_row) is not created by this
-- upgrade any more.  The functions whose PL/pgSQL bodies name the keys
-- (text, resolved when they run) are restated with the new name.
CREATE SCHEMA popsell_internal;
COMMENT ON SCHEMA popsell_internal IS
    'popsell''s lookup-key functions, which index expressions call: USAGE for popsell_owner only, so no other role can name them in a query (see popsell_internal._lookup_key).';
ALTER FUNCTION popsell._lookup_key(text) SET SCHEMA popsell_internal;
ALTER FUNCTION popsell._brand_lookup_key(text) SET SCHEMA popsell_internal;
-- The brand's email index is restated by 49_key_index_reach.sql, after the
-- function its predicate names exists (it keeps its OIDs until then).
-- @restate function:popsell_internal._lookup_key function:popsell_internal._brand_lookup_key
-- @restate function:_blacklist_add function:_import_rows function:collect_contact function:send_invitation
-- @restate function:email_callback function:brand_contacts_by_email function:_insert_ambassador
-- @restate function:sso_upsert_ambassador function:sso_delete_ambassador function:subject_access
-- @restate function:erase_subject function:restrict_subject function:object_subject
-- @restate function:_lookup_secret_restored
