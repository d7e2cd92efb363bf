/*-------------------------------------------------------------------------
 *
 * consent.h
 *	  The consent model as data: enum labels, the initial opt-ins of each
 *	  source (SPEC C1) and the one transition table (SPEC C2).
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPSELL_CONSENT_H
#define POPSELL_CONSENT_H

#include "popsell.h"

/* popsell.ambassador_optin, in label order */
typedef enum AmbOptin
{
	AO_NEW, AO_INVITATION_SENT, AO_INVITATION_ACCEPTED, AO_INVITATION_DECLINED,
	AO_OPTOUT_EMAIL, AO_OPTOUT_NO_RESPONSE, AO_GLOBAL_OPTOUT,
	AO_SOCIAL_MEDIA_ONLY, AO_OPTIN_BRAND_IMPORTED, AO_OPTIN_BLOG_PENDING,
	AO_OPTIN_BLOG_VERIFIED, AO_OPTIN_INTERNAL_FORM, AO_OPTIN_EXTERNAL_FORM,
	AO_OPTIN_ORDER, AO_OPTIN_ORDER_POPIN, AO_OPTIN_OTHER, AO_STORAGE_ONLY,
	AO__COUNT
} AmbOptin;

/* popsell.brand_optin */
typedef enum BrandOptin
{
	BO_NO_OPTIN, BO_OPTIN_BLOG, BO_OPTIN_INTERNAL_FORM, BO_OPTIN_EXTERNAL_FORM,
	BO_OPTIN_BRAND_DATABASE, BO_STORAGE_ONLY,
	BO__COUNT
} BrandOptin;

/* popsell.email_status */
typedef enum EmailStatus
{
	ES_OK, ES_SPAM, ES_HARD_BOUNCE, ES_SOFT_BOUNCE, ES_BLOCKED, ES_UNVERIFIED,
	ES__COUNT
} EmailStatus;

/* popsell.contact_source */
typedef enum ContactSource
{
	SRC_CRM_MANUAL, SRC_PRIVATE_IMPORT, SRC_BRAND_SYNC, SRC_SOCIAL_NETWORK,
	SRC_BLOG, SRC_BLOG_INTERNAL_FORM, SRC_ORDER, SRC_ORDER_POPIN,
	SRC_STORE_PURCHASE, SRC_EXTERNAL_FORM,
	SRC__COUNT
} ContactSource;

/* popsell.blacklist_reason */
typedef enum BlacklistReason
{
	BL_GLOBAL_OPTOUT, BL_SPAM, BL_HARD_BOUNCE, BL_BLOCKED,
	BL__COUNT
} BlacklistReason;

/* The four consent-bearing columns of popsell.contacts. */
typedef enum ConsentField
{
	FIELD_AMBASSADOR_OPTIN, FIELD_BRAND_OPTIN, FIELD_PARTNERS_OPTIN,
	FIELD_EMAIL_STATUS,
	FIELD__COUNT
} ConsentField;

/* A checkbox as the collection form reported it. */
typedef enum Tri
{
	TRI_UNSET, TRI_FALSE, TRI_TRUE
} Tri;

typedef struct InitialOptins
{
	AmbOptin	amb;
	BrandOptin	brand;
} InitialOptins;

typedef enum EnumKind
{
	ENUM_AMB, ENUM_BRAND, ENUM_EMAIL_STATUS, ENUM_SOURCE, ENUM_REASON,
	ENUM__COUNT
} EnumKind;

extern const char *const consent_field_names[FIELD__COUNT];

/* enum label <-> OID, resolved once per backend (per install) */
extern int	EnumIndex(EnumKind kind, Oid value);
extern int	EnumIndexByLabel(EnumKind kind, const char *label);
extern Oid	EnumOid(EnumKind kind, int index);
extern const char *EnumLabel(EnumKind kind, int index);
extern void EnumCheckType(EnumKind kind, Oid typid);

extern bool SourceIsPendingKind(ContactSource src);
extern bool SourceAllowsPartners(ContactSource src);
extern InitialOptins InitialOptinsFor(ContactSource src, Tri amb, Tri brand);
extern bool InitialAllowed(ContactSource src, int amb, int brand,
						   InitialOptins *match);
extern char *AllowedInitialText(ContactSource src, ConsentField field);

extern bool AmbIsOptedIn(AmbOptin s);

extern bool TransitionAllowed(ConsentField field, int from, int to,
							  PopsellPath path, ContactSource src);
extern void TransitionRejected(ConsentField field, int from, int to,
							   PopsellPath path, ContactSource src,
							   int64 contact_id) pg_attribute_noreturn();

#endif							/* POPSELL_CONSENT_H */
