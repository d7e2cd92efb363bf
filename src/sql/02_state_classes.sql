-- ===================================================================
-- State classes of the consent types, defined once (in C).
-- ===================================================================
-- The state classes (SPEC sections 2, 3 and C1), each defined once, in C
-- next to the transition table (src/consent.c), and used by the row
-- security policies, the views, the partial indexes and the retention
-- rules alike.  IMMUTABLE, so an index predicate and a query spelling the
-- same call match.
CREATE FUNCTION popsell.is_opted_out(ambassador_optin popsell.ambassador_optin) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'is_opted_out';
COMMENT ON FUNCTION popsell.is_opted_out(popsell.ambassador_optin) IS
    'Whether an ambassador opt-in is an opted-out state: invitation_declined, optout_email, optout_no_response, global_optout, or optin_blog_pending (until the email is confirmed). Any role of popsell may call it; no errors.';
CREATE FUNCTION popsell.is_pending_confirmation(source popsell.contact_source, email_confirmed_at timestamptz)
    RETURNS boolean
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'is_pending_confirmation';
COMMENT ON FUNCTION popsell.is_pending_confirmation(popsell.contact_source, timestamptz) IS
    'Whether a contact is pending email confirmation: source blog, blog_internal_form or store_purchase and email_confirmed_at NULL (hidden from the ambassador and the brand). NULL for a NULL source. Any role of popsell may call it; no errors.';
CREATE FUNCTION popsell.is_brand_visible(brand_optin popsell.brand_optin, partners_optin boolean) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'is_brand_visible';
COMMENT ON FUNCTION popsell.is_brand_visible(popsell.brand_optin, boolean) IS
    'Whether a contact is brand-visible: brand_optin other than no_optin, or a partners opt-in. Any role of popsell may call it; no errors.';
CREATE FUNCTION popsell.brand_sees(restricted boolean, source popsell.contact_source,
                                   email_confirmed_at timestamptz, brand_optin popsell.brand_optin,
                                   partners_optin boolean) RETURNS boolean
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'brand_sees';
COMMENT ON FUNCTION popsell.brand_sees(boolean, popsell.contact_source, timestamptz, popsell.brand_optin, boolean) IS
    'Whether the brand (popsell_brand, popsell_brand_bi) sees a contact: brand-visible (popsell.is_brand_visible), not pending confirmation (popsell.is_pending_confirmation) and not restricted. The one definition behind the brand''s row security policies and views. Any role of popsell may call it; no errors.';
GRANT EXECUTE ON FUNCTION popsell.is_opted_out(popsell.ambassador_optin),
                          popsell.brand_sees(boolean, popsell.contact_source, timestamptz, popsell.brand_optin, boolean),
                          popsell.is_pending_confirmation(popsell.contact_source, timestamptz),
                          popsell.is_brand_visible(popsell.brand_optin, boolean)
    TO popsell_ambassador, popsell_brand, popsell_brand_bi, popsell_account_team,
       popsell_technical, popsell_app, popsell_maintenance;
