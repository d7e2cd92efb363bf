-- Mutant for I9: the brand's row security lets it read every contact.
-- seeds: {}
-- expect: I9
DROP POLICY popsell_brand_select ON popsell.contacts;
CREATE POLICY popsell_brand_select ON popsell.contacts FOR SELECT TO popsell_brand USING (true);
