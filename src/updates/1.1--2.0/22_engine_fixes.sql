-- The blacklist filter and the key cache are invalidated under every
-- session_replication_role; a parallel worker reads the keys under the
-- query's snapshot, so the hashing functions stay in the leader.
ALTER TABLE popsell.blacklist ENABLE ALWAYS TRIGGER popsell_90_blacklist_changed;
ALTER TABLE popsell.hash_keys ENABLE ALWAYS TRIGGER popsell_90_keys_changed;
ALTER FUNCTION popsell.hash_email(text) PARALLEL RESTRICTED;
ALTER FUNCTION popsell.hash_identifier(text) PARALLEL RESTRICTED;
ALTER FUNCTION popsell.email_hashes(text) PARALLEL RESTRICTED;
ALTER FUNCTION popsell.hash_key_id() PARALLEL RESTRICTED;
