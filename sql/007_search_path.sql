-- 007_search_path: popsell installs and works with an empty search_path
-- (SPEC S2: every name qualified; like pg_partman's test_no_search_path).

SET search_path = '';
SET client_min_messages = error;  -- DROP's pg_cron warning depends on the server (test/scripts/007)
DROP EXTENSION popsell;
RESET client_min_messages;
CREATE EXTENSION popsell CASCADE;
SHOW search_path;

-- Identity: nobody is acting.
SELECT popsell.current_ambassador_id() IS NULL AS nobody;

-- Keyed, normalized email hash (SPEC section 6).
SELECT octet_length(popsell.hash_email('amb0001@example.test')) AS hash_bytes,
       popsell.hash_email('  Amb0001@EXAMPLE.test ') = popsell.hash_email('amb0001@example.test')
           AS normalized;

-- An ambassador and a manually entered contact: the trigger fills the
-- opt-ins from the source (SPEC C1).
INSERT INTO popsell.ambassadors (kind, status, terms_accepted_at, first_name, last_name, email)
VALUES ('customer', 'active', pg_catalog.now(), 'Amb0001', 'Demo', 'amb0001@example.test')
RETURNING kind, status, first_name;
SELECT id AS amb FROM popsell.ambassadors WHERE email = 'amb0001@example.test' \gset

INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
VALUES (:amb, 'crm_manual', 'Contact00001', 'contact00001@example.test')
RETURNING source, ambassador_optin, brand_optin, partners_optin, email_status,
          ambassador_optin_at IS NOT NULL AS stamped;

SELECT count(*) AS contacts FROM popsell.contacts;

-- The retention job runs and changes nothing on fresh data.
SELECT rule, affected FROM popsell.run_maintenance() ORDER BY rule;
SELECT count(*) AS contacts FROM popsell.contacts;

RESET search_path;
