-- Security fixes after review (SPEC S11, section 8).

-- The brand's email index has the policy's own predicate, so the brand's
-- lookup by email uses it.  (Restated in 46_lookup_key_schema.sql, once
-- its key function has moved to schema popsell_internal.)

-- The contact helper depends on the identity (parallel restricted).
ALTER FUNCTION popsell._sees_contact(bigint) PARALLEL RESTRICTED;

-- File paths: a whitelist, checked when the path or the row's ambassador
-- changes; no UPDATE of a UGC row's id.
-- @restate function:_check_file_path function:files_row
DROP TRIGGER popsell_30_files ON popsell.ugc;
CREATE TRIGGER popsell_30_files BEFORE INSERT OR UPDATE OF file_path, ambassador_id ON popsell.ugc
    FOR EACH ROW EXECUTE FUNCTION popsell.files_row();
DROP TRIGGER popsell_30_files ON popsell.ambassadors;
CREATE TRIGGER popsell_30_files BEFORE INSERT OR UPDATE OF photo_path, id ON popsell.ambassadors
    FOR EACH ROW EXECUTE FUNCTION popsell.files_row();
REVOKE UPDATE ON popsell.ugc FROM popsell_ambassador;
GRANT UPDATE (ambassador_id, contest_id, file_path, created_at) ON popsell.ugc TO popsell_ambassador;
