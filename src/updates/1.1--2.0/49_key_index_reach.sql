-- Lookup-key indexes out of reach of a restricted role's own query (issue
-- 12d review).  contacts_email_idx loses its predicate (email IS NOT NULL):
-- a query implying it was planned as a full scan of the index in key order,
-- and EXPLAIN ANALYZE counted the hidden rows sorting below a visible one.
-- @restate index:contacts_email_idx
-- contacts_brand_email_idx's predicate was popsell.brand_sees(...), which
-- every popsell role may call: writing it walked the brand's index.  The
-- predicate becomes the same C function under an owner-only name, which
-- popsell.brand_contacts_by_email writes so its lookup keeps the index.
-- @restate function:popsell_internal._brand_sees
GRANT EXECUTE ON FUNCTION
    popsell_internal._brand_sees(boolean, popsell.contact_source, timestamptz, popsell.brand_optin, boolean)
    TO popsell_ambassador, popsell_brand, popsell_brand_bi, popsell_account_team,
       popsell_technical, popsell_app;
-- @restate index:contacts_brand_email_idx
-- @restate function:brand_contacts_by_email
-- Table-level SELECT on popsell.contacts and popsell.ambassadors (the
-- tables with lookup-key indexes) let a role copy the key index
-- expressions with CREATE TABLE ... (LIKE ... INCLUDING INDEXES).
-- popsell._finalize_extension(), which ends this script, grants the roles
-- of popsell._column_readers() SELECT on every column instead and turns
-- any other table-level SELECT on them into column grants (99_finalize.sql).
-- @restate function:_column_readers
