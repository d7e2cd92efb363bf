-- ===================================================================
-- Types.  Labels and their order are public interface (SPEC section 3).
-- ===================================================================

CREATE TYPE popsell.ambassador_optin AS ENUM (
    'new', 'invitation_sent', 'invitation_accepted', 'invitation_declined',
    'optout_email', 'optout_no_response', 'global_optout', 'social_media_only',
    'optin_brand_imported', 'optin_blog_pending', 'optin_blog_verified',
    'optin_internal_form', 'optin_external_form', 'optin_order',
    'optin_order_popin', 'optin_other', 'storage_only');
COMMENT ON TYPE popsell.ambassador_optin IS
    'A contact''s consent to receive publications from its ambassador (the guide''s 17 states, in its order).';

CREATE TYPE popsell.brand_optin AS ENUM (
    'no_optin', 'optin_blog', 'optin_internal_form', 'optin_external_form',
    'optin_brand_database', 'storage_only');
COMMENT ON TYPE popsell.brand_optin IS
    'A contact''s consent to be contacted by the brand itself.';

CREATE TYPE popsell.email_status AS ENUM (
    'ok', 'spam', 'hard_bounce', 'soft_bounce', 'blocked', 'unverified');
COMMENT ON TYPE popsell.email_status IS
    'Deliverability of a contact''s email; every value but ok blocks sending.';

CREATE TYPE popsell.contact_source AS ENUM (
    'crm_manual', 'private_import', 'brand_sync', 'social_network', 'blog',
    'blog_internal_form', 'order', 'order_popin', 'store_purchase',
    'external_form');
COMMENT ON TYPE popsell.contact_source IS
    'How a contact was collected (the guide''s ten mechanisms); fixes its initial consent.';

CREATE TYPE popsell.contact_type AS ENUM ('hostess', 'customer', 'prospect');
COMMENT ON TYPE popsell.contact_type IS 'Business category of a contact.';

CREATE TYPE popsell.ambassador_kind AS ENUM ('customer', 'sales_rep', 'employee');
COMMENT ON TYPE popsell.ambassador_kind IS
    'Who the ambassador is to the brand; only sales_rep and employee receive brand_sync contacts.';

CREATE TYPE popsell.ambassador_status AS ENUM ('signup_incomplete', 'active', 'leaving');
COMMENT ON TYPE popsell.ambassador_status IS
    'Account state: only active ambassadors have access; leaving ones await deletion.';

CREATE TYPE popsell.blacklist_reason AS ENUM ('global_optout', 'spam', 'hard_bounce', 'blocked',
    'invitation_refused');
COMMENT ON TYPE popsell.blacklist_reason IS
    'Why a hashed email is on the blacklist.';

CREATE TYPE popsell.interaction_kind AS ENUM ('open', 'click', 'like', 'comment', 'reshare');
COMMENT ON TYPE popsell.interaction_kind IS
    'Reaction of a contact to a publication; every kind but open is an activity.';

CREATE TYPE popsell.sale_channel AS ENUM ('online', 'store');
COMMENT ON TYPE popsell.sale_channel IS 'Where a sale happened.';

CREATE TYPE popsell.outbox_kind AS ENUM (
    'invitation', 'invitation_reminder', 'email_confirmation',
    'inactivity_warning', 'suspension_notice', 'publication', 'delete_file',
    'partner_erasure', 'deletion_notice', 'partner_optout');
COMMENT ON TYPE popsell.outbox_kind IS
    'What the application must carry out for an outbox row (popsell never sends mail itself).';

CREATE TYPE popsell.consent_actor AS ENUM (
    'contact', 'ambassador', 'staff', 'brand_sync', 'system');
COMMENT ON TYPE popsell.consent_actor IS
    'Who made a consent change; fixed by the path (function or role), never by a caller''s value.';
