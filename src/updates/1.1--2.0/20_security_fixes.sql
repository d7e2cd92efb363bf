-- Security fixes after review (SPEC S11, section 8).

-- The brand's email index has the policy's own predicate, so the brand's
-- lookup by email uses it.
-- @restate index:contacts_brand_email_idx

-- The contact helper depends on the identity (parallel restricted).
ALTER FUNCTION popsell._sees_contact(bigint) PARALLEL RESTRICTED;
