/*-------------------------------------------------------------------------
 *
 * consent.c
 *	  The consent model as data: which opt-ins each collection source
 *	  starts a contact with (SPEC C1) and the one transition table of the
 *	  consent columns (SPEC C2), with the single question the triggers ask
 *	  of it: "may this path move FIELD from X to Y?".
 *
 * popsell.transition_rules() returns the table so the README can show it
 * and a test can check the two never drift apart.
 *
 *-------------------------------------------------------------------------
 */
#include "consent.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_enum.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(transition_rules);
PG_FUNCTION_INFO_V1(initial_optins);
PG_FUNCTION_INFO_V1(transition_allowed);
PG_FUNCTION_INFO_V1(is_opted_out);
PG_FUNCTION_INFO_V1(is_pending_confirmation);
PG_FUNCTION_INFO_V1(is_brand_visible);
PG_FUNCTION_INFO_V1(brand_sees);

#define B(x) (UINT64CONST(1) << (x))

const char *const consent_field_names[FIELD__COUNT] = {
	"ambassador_optin", "brand_optin", "partners_optin", "email_status"
};

static const char *const amb_labels[AO__COUNT] = {
	"new", "invitation_sent", "invitation_accepted", "invitation_declined",
	"optout_email", "optout_no_response", "global_optout", "social_media_only",
	"optin_brand_imported", "optin_blog_pending", "optin_blog_verified",
	"optin_internal_form", "optin_external_form", "optin_order",
	"optin_order_popin", "optin_other", "storage_only"
};
static const char *const brand_labels[BO__COUNT] = {
	"no_optin", "optin_blog", "optin_internal_form", "optin_external_form",
	"optin_brand_database", "storage_only"
};
static const char *const es_labels[ES__COUNT] = {
	"ok", "spam", "hard_bounce", "soft_bounce", "blocked", "unverified"
};
static const char *const src_labels[SRC__COUNT] = {
	"crm_manual", "private_import", "brand_sync", "social_network", "blog",
	"blog_internal_form", "order", "order_popin", "store_purchase",
	"external_form"
};
static const char *const reason_labels[BL__COUNT] = {
	"global_optout", "spam", "hard_bounce", "blocked", "invitation_refused"
};
static const char *const bool_labels[2] = {"false", "true"};

typedef struct EnumCache
{
	const char *typname;
	const char *const *labels;
	int			count;
	Oid			typid;
	Oid			oids[AO__COUNT];
} EnumCache;

static EnumCache enums[ENUM__COUNT] = {
	[ENUM_AMB] = {"ambassador_optin", amb_labels, AO__COUNT},
	[ENUM_BRAND] = {"brand_optin", brand_labels, BO__COUNT},
	[ENUM_EMAIL_STATUS] = {"email_status", es_labels, ES__COUNT},
	[ENUM_SOURCE] = {"contact_source", src_labels, SRC__COUNT},
	[ENUM_REASON] = {"blacklist_reason", reason_labels, BL__COUNT},
};

/* A type was created, altered or dropped: resolve enum OIDs again. */
static void
enums_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	for (int k = 0; k < ENUM__COUNT; k++)
		enums[k].typid = InvalidOid;
}

void
ConsentInit(void)
{
	/* enum OIDs are resolved on first use, after CREATE EXTENSION */
	CacheRegisterSyscacheCallback(TYPEOID, enums_invalidate, (Datum) 0);
	CacheRegisterSyscacheCallback(ENUMOID, enums_invalidate, (Datum) 0);
}

/* Resolve a popsell enum's OIDs; again when the extension was re-created. */
static EnumCache *
enum_cache(EnumKind kind, Oid expect_typid)
{
	EnumCache  *c = &enums[kind];
	Oid			nsp;

	if (OidIsValid(c->typid) &&
		(!OidIsValid(expect_typid) || c->typid == expect_typid))
		return c;

	nsp = get_namespace_oid("popsell", false);
	c->typid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
							   CStringGetDatum(c->typname),
							   ObjectIdGetDatum(nsp));
	if (!OidIsValid(c->typid))
		elog(ERROR, "type popsell.%s does not exist", c->typname);
	for (int i = 0; i < c->count; i++)
	{
		c->oids[i] = GetSysCacheOid2(ENUMTYPOIDNAME, Anum_pg_enum_oid,
									 ObjectIdGetDatum(c->typid),
									 CStringGetDatum(c->labels[i]));
		/*
		 * A label added by a later version may be missing while a database
		 * still runs an older version's schema with this library (before
		 * ALTER EXTENSION ... UPDATE): it matches no value then.
		 */
		if (!OidIsValid(c->oids[i]) && !(kind == ENUM_REASON && i >= BL_INVITATION_REFUSED))
			elog(ERROR, "label %s of popsell.%s is missing",
				 c->labels[i], c->typname);
	}
	return c;
}

void
EnumCheckType(EnumKind kind, Oid typid)
{
	(void) enum_cache(kind, typid);
}

int
EnumIndex(EnumKind kind, Oid value)
{
	EnumCache  *c = enum_cache(kind, InvalidOid);

	for (int i = 0; i < c->count; i++)
		if (c->oids[i] == value)
			return i;
	ereport(ERROR,
			(errcode(ERRCODE_POPSELL_INSTALL),
			 errmsg("value %u of popsell.%s is not one popsell knows", value, c->typname),
			 errdetail("A label was added to the type outside popsell's install and upgrade scripts."),
			 errhint("Remove the label, or update popsell to a version that defines it.")));
	return -1;					/* keep compiler quiet */
}

int
EnumIndexByLabel(EnumKind kind, const char *label)
{
	EnumCache  *c = &enums[kind];

	for (int i = 0; i < c->count; i++)
		if (strcmp(c->labels[i], label) == 0)
			return i;
	elog(ERROR, "unknown label %s of popsell.%s", label, c->typname);
	return -1;					/* keep compiler quiet */
}

Oid
EnumOid(EnumKind kind, int index)
{
	EnumCache  *c = enum_cache(kind, InvalidOid);

	Assert(index >= 0 && index < c->count);
	return c->oids[index];
}

const char *
EnumLabel(EnumKind kind, int index)
{
	return enums[kind].labels[index];
}

static const char *
field_label(ConsentField field, int value)
{
	switch (field)
	{
		case FIELD_AMBASSADOR_OPTIN:
			return amb_labels[value];
		case FIELD_BRAND_OPTIN:
			return brand_labels[value];
		case FIELD_PARTNERS_OPTIN:
			return bool_labels[value ? 1 : 0];
		case FIELD_EMAIL_STATUS:
		default:
			return es_labels[value];
	}
}

static int
field_count(ConsentField field)
{
	switch (field)
	{
		case FIELD_AMBASSADOR_OPTIN:
			return AO__COUNT;
		case FIELD_BRAND_OPTIN:
			return BO__COUNT;
		case FIELD_PARTNERS_OPTIN:
			return 2;
		case FIELD_EMAIL_STATUS:
		default:
			return ES__COUNT;
	}
}

/* ---------------------------------------------------------------------
 * State classes (SPEC section 3)
 * ---------------------------------------------------------------------
 */
#define AO_OPTED_IN (B(AO_INVITATION_ACCEPTED) | B(AO_OPTIN_BRAND_IMPORTED) | \
					 B(AO_OPTIN_BLOG_VERIFIED) | B(AO_OPTIN_INTERNAL_FORM) | \
					 B(AO_OPTIN_EXTERNAL_FORM) | B(AO_OPTIN_ORDER) | \
					 B(AO_OPTIN_ORDER_POPIN) | B(AO_OPTIN_OTHER))
#define AO_OPTED_OUT (B(AO_INVITATION_DECLINED) | B(AO_OPTOUT_EMAIL) | \
					  B(AO_OPTOUT_NO_RESPONSE) | B(AO_GLOBAL_OPTOUT) | \
					  B(AO_OPTIN_BLOG_PENDING))
#define AO_ALL (B(AO__COUNT) - 1)
#define BO_OPTED_IN (B(BO_OPTIN_BLOG) | B(BO_OPTIN_INTERNAL_FORM) | \
					 B(BO_OPTIN_EXTERNAL_FORM) | B(BO_OPTIN_BRAND_DATABASE))

bool
AmbIsOptedIn(AmbOptin s)
{
	return (AO_OPTED_IN & B(s)) != 0;
}

bool
AmbIsOptedOut(AmbOptin s)
{
	return (AO_OPTED_OUT & B(s)) != 0;
}

/*
 * A contact is pending confirmation while it came from a form that
 * confirms the address (blog, blog_internal_form, store_purchase) and has
 * no email_confirmed_at yet (SPEC C1).
 */
bool
ContactIsPending(ContactSource src, bool confirmed_at_isnull)
{
	return confirmed_at_isnull && SourceIsPendingKind(src);
}

/* Brand-visible: a brand or a partners opt-in (SPEC section 2). */
bool
ContactIsBrandVisible(BrandOptin brand, bool partners)
{
	return brand != BO_NO_OPTIN || partners;
}

/* ---------------------------------------------------------------------
 * C1: initial opt-ins by source
 * ---------------------------------------------------------------------
 */
bool
SourceIsPendingKind(ContactSource src)
{
	return src == SRC_BLOG || src == SRC_BLOG_INTERNAL_FORM ||
		src == SRC_STORE_PURCHASE;
}

/*
 * The sources whose forms can carry a partners checkbox: popsell's own
 * forms only (the guide: a partners opt-in "has been obtained from
 * Popsell"), never a brand sync, an order or an ambassador's entry.
 */
bool
SourceAllowsPartners(ContactSource src)
{
	return src == SRC_BLOG || src == SRC_BLOG_INTERNAL_FORM ||
		src == SRC_STORE_PURCHASE || src == SRC_EXTERNAL_FORM ||
		src == SRC_ORDER_POPIN;
}

/*
 * SPEC C1.  amb is the form's (or popin's) own checkbox, brand the brand
 * checkbox, or for order/order_popin/brand_sync the brand's opt-in
 * parameter.  TRI_UNSET means the form did not ask.
 */
InitialOptins
InitialOptinsFor(ContactSource src, Tri amb, Tri brand)
{
	InitialOptins r;

	switch (src)
	{
		case SRC_CRM_MANUAL:
		case SRC_PRIVATE_IMPORT:
			r.amb = AO_NEW;
			r.brand = BO_NO_OPTIN;
			break;
		case SRC_BRAND_SYNC:
			r.amb = brand == TRI_TRUE ? AO_OPTIN_BRAND_IMPORTED : AO_NEW;
			r.brand = brand == TRI_TRUE ? BO_OPTIN_BRAND_DATABASE : BO_STORAGE_ONLY;
			break;
		case SRC_SOCIAL_NETWORK:
			r.amb = AO_SOCIAL_MEDIA_ONLY;
			r.brand = BO_NO_OPTIN;
			break;
		case SRC_BLOG:
		case SRC_STORE_PURCHASE:
			r.amb = amb == TRI_TRUE ? AO_OPTIN_BLOG_PENDING : AO_STORAGE_ONLY;
			r.brand = brand == TRI_TRUE ? BO_OPTIN_BLOG : BO_NO_OPTIN;
			break;
		case SRC_BLOG_INTERNAL_FORM:
			r.amb = amb == TRI_TRUE ? AO_OPTIN_BLOG_PENDING : AO_STORAGE_ONLY;
			r.brand = brand == TRI_TRUE ? BO_OPTIN_INTERNAL_FORM : BO_STORAGE_ONLY;
			break;
		case SRC_ORDER:
			r.amb = brand == TRI_TRUE ? AO_OPTIN_ORDER : AO_STORAGE_ONLY;
			r.brand = brand == TRI_TRUE ? BO_OPTIN_BRAND_DATABASE : BO_STORAGE_ONLY;
			break;
		case SRC_ORDER_POPIN:
			if (brand == TRI_TRUE)
				r.amb = AO_OPTIN_ORDER;
			else
				r.amb = amb == TRI_TRUE ? AO_OPTIN_ORDER_POPIN : AO_STORAGE_ONLY;
			r.brand = brand == TRI_TRUE ? BO_OPTIN_BRAND_DATABASE : BO_STORAGE_ONLY;
			break;
		case SRC_EXTERNAL_FORM:
		default:
			/* asked and not ticked is a "no": stored only (v2) */
			r.amb = amb == TRI_TRUE ? AO_OPTIN_EXTERNAL_FORM :
				amb == TRI_FALSE ? AO_STORAGE_ONLY : AO_NEW;
			r.brand = brand == TRI_TRUE ? BO_OPTIN_EXTERNAL_FORM : BO_STORAGE_ONLY;
			break;
	}
	return r;
}

/*
 * Is an explicit initial (amb, brand) pair one that some set of ticked
 * checkboxes produces for this source?  -1 means "omitted".  On success
 * *match is the first such pair, which fills an omitted column.
 */
bool
InitialAllowed(ContactSource src, int amb, int brand, InitialOptins *match)
{
	for (int a = TRI_UNSET; a <= TRI_TRUE; a++)
		for (int b = TRI_UNSET; b <= TRI_TRUE; b++)
		{
			InitialOptins r = InitialOptinsFor(src, (Tri) a, (Tri) b);

			if ((amb < 0 || (int) r.amb == amb) &&
				(brand < 0 || (int) r.brand == brand))
			{
				*match = r;
				return true;
			}
		}
	return false;
}

/* "new, storage_only": the initial values a source allows for a column. */
char *
AllowedInitialText(ContactSource src, ConsentField field)
{
	uint64		seen = 0;
	StringInfoData buf;

	initStringInfo(&buf);
	for (int a = TRI_UNSET; a <= TRI_TRUE; a++)
		for (int b = TRI_UNSET; b <= TRI_TRUE; b++)
		{
			InitialOptins r = InitialOptinsFor(src, (Tri) a, (Tri) b);
			int			v = field == FIELD_AMBASSADOR_OPTIN ? (int) r.amb : (int) r.brand;

			if (seen & B(v))
				continue;
			seen |= B(v);
			appendStringInfo(&buf, "%s%s", buf.len ? ", " : "",
							 field_label(field, v));
		}
	return buf.data;
}

/* ---------------------------------------------------------------------
 * C2: the transition table
 * ---------------------------------------------------------------------
 */
typedef struct TransitionRule
{
	ConsentField field;
	uint64		from;			/* states, one bit each */
	uint64		to;
	uint64		paths;			/* PopsellPath bits */
	uint64		sources;		/* ContactSource bits; 0 = any source */
	const char *why;
} TransitionRule;

#define P(x) B(PATH_##x)
#define S(x) B(SRC_##x)
#define OPTOUT_RECORDERS (P(CONTACT) | P(STAFF) | P(BRAND_SYNC) | P(RIGHTS))

static const TransitionRule rules[] = {
	/* ambassador_optin */
	{FIELD_AMBASSADOR_OPTIN, B(AO_NEW), B(AO_INVITATION_SENT),
	 P(SEND_INVITATION), 0,
	 "the ambassador (or staff) invites a new contact"},
	{FIELD_AMBASSADOR_OPTIN, B(AO_INVITATION_SENT),
	 B(AO_INVITATION_ACCEPTED) | B(AO_INVITATION_DECLINED),
	 P(CONTACT), 0,
	 "the contact answers the invitation"},
	{FIELD_AMBASSADOR_OPTIN, B(AO_INVITATION_SENT), B(AO_OPTOUT_NO_RESPONSE),
	 P(SYSTEM), 0,
	 "no answer two response windows after the invitation"},
	{FIELD_AMBASSADOR_OPTIN, AO_ALL & ~(B(AO_GLOBAL_OPTOUT) | B(AO_OPTOUT_EMAIL)),
	 B(AO_OPTOUT_EMAIL),
	 OPTOUT_RECORDERS, 0,
	 "the contact opts out (staff or brand sync record an opt-out the person asked for)"},
	{FIELD_AMBASSADOR_OPTIN, AO_ALL & ~B(AO_GLOBAL_OPTOUT), B(AO_GLOBAL_OPTOUT),
	 P(CONTACT) | P(STAFF) | P(RIGHTS), 0,
	 "the contact opts out of every ambassador of the brand"},
	{FIELD_AMBASSADOR_OPTIN, B(AO_NEW), B(AO_OPTIN_OTHER),
	 P(MIGRATION), 0,
	 "pre-GDPR migration of a contact with activity"},
	{FIELD_AMBASSADOR_OPTIN, B(AO_OPTIN_BLOG_PENDING), B(AO_OPTIN_BLOG_VERIFIED),
	 P(CONFIRM_EMAIL), S(BLOG) | S(STORE_PURCHASE),
	 "the contact confirms the email address"},
	{FIELD_AMBASSADOR_OPTIN, B(AO_OPTIN_BLOG_PENDING), B(AO_OPTIN_INTERNAL_FORM),
	 P(CONFIRM_EMAIL), S(BLOG_INTERNAL_FORM),
	 "the contact confirms the email address"},
	{FIELD_AMBASSADOR_OPTIN, B(AO_NEW), B(AO_OPTIN_BRAND_IMPORTED),
	 P(BRAND_SYNC), S(BRAND_SYNC),
	 "the brand's database sends the contact's opt-in"},
	/* brand_optin */
	{FIELD_BRAND_OPTIN, BO_OPTED_IN, B(BO_NO_OPTIN) | B(BO_STORAGE_ONLY),
	 OPTOUT_RECORDERS, 0,
	 "the contact withdraws the brand opt-in"},
	{FIELD_BRAND_OPTIN, B(BO_STORAGE_ONLY), B(BO_NO_OPTIN),
	 OPTOUT_RECORDERS, 0,
	 "the contact withdraws the brand's storage of its data"},
	{FIELD_BRAND_OPTIN, B(BO_NO_OPTIN) | B(BO_STORAGE_ONLY), B(BO_OPTIN_BRAND_DATABASE),
	 P(BRAND_SYNC), S(BRAND_SYNC),
	 "the brand's database sends the contact's opt-in"},
	/* partners_optin */
	{FIELD_PARTNERS_OPTIN, B(1), B(0),
	 OPTOUT_RECORDERS, 0,
	 "the contact withdraws the partners opt-in"},
	/* (v2) no path turns partners_optin on: only popsell's own forms do, at collection */
	/* email_status */
	{FIELD_EMAIL_STATUS, B(ES_UNVERIFIED), B(ES_OK),
	 P(CONFIRM_EMAIL), 0,
	 "the contact confirms the email address"},
	{FIELD_EMAIL_STATUS, B(ES_SOFT_BOUNCE), B(ES_OK),
	 P(RELEASE_SOFT_BOUNCE), 0,
	 "the ambassador releases a soft bounce"},
	{FIELD_EMAIL_STATUS, B(ES_OK) | B(ES_UNVERIFIED) | B(ES_SOFT_BOUNCE),
	 B(ES_SPAM) | B(ES_HARD_BOUNCE) | B(ES_SOFT_BOUNCE) | B(ES_BLOCKED),
	 P(EMAIL_CALLBACK), 0,
	 "the email provider reports a complaint, bounce or block"},
};

bool
TransitionAllowed(ConsentField field, int from, int to, PopsellPath path,
				  ContactSource src)
{
	if (from == to)
		return true;
	for (int i = 0; i < lengthof(rules); i++)
	{
		const TransitionRule *r = &rules[i];

		if (r->field == field && (r->from & B(from)) && (r->to & B(to)) &&
			(r->paths & B(path)) && (r->sources == 0 || (r->sources & B(src))))
			return true;
	}
	return false;
}

static const char *
path_description(PopsellPath path)
{
	switch (path)
	{
		case PATH_AMBASSADOR:
			return "an ambassador's plain UPDATE";
		case PATH_STAFF:
			return "a staff role's plain UPDATE";
		case PATH_APP:
			return "popsell_app's plain UPDATE";
		case PATH_CONTACT:
			return "the contact";
		case PATH_CONFIRM_EMAIL:
			return "the contact's email confirmation";
		case PATH_BRAND_SYNC:
			return "the brand sync";
		case PATH_SYSTEM:
			return "the system (run_maintenance)";
		case PATH_EMAIL_CALLBACK:
			return "the email provider's callback";
		case PATH_MIGRATION:
			return "the pre-GDPR migration";
		case PATH_SEND_INVITATION:
			return "send_invitation";
		case PATH_RELEASE_SOFT_BOUNCE:
			return "release_soft_bounce";
		case PATH_RIGHTS:
			return "a data-subject request";
		default:
			return "unknown";
	}
}

void
TransitionRejected(ConsentField field, int from, int to, PopsellPath path,
				   ContactSource src, int64 contact_id)
{
	StringInfoData allowed;
	StringInfoData others;

	initStringInfo(&allowed);
	initStringInfo(&others);
	for (int v = 0; v < field_count(field); v++)
	{
		if (v == from)
			continue;
		if (TransitionAllowed(field, from, v, path, src))
			appendStringInfo(&allowed, "%s%s", allowed.len ? ", " : "",
							 field_label(field, v));
	}
	for (int p = 0; p < PATH__COUNT; p++)
		if (p != path && TransitionAllowed(field, from, to, (PopsellPath) p, src))
			appendStringInfo(&others, "%s%s", others.len ? ", " : "",
							 path_description((PopsellPath) p));

	ereport(ERROR,
			(errcode(ERRCODE_POPSELL_TRANSITION),
			 errmsg("%s cannot change from \"%s\" to \"%s\" by %s",
					consent_field_names[field], field_label(field, from),
					field_label(field, to), path_description(path)),
			 errdetail("Contact %lld (source %s). %s",
					   (long long) contact_id, src_labels[src],
					   allowed.len ? psprintf("From \"%s\" this path may only set: %s.",
											  field_label(field, from), allowed.data)
					   : psprintf("This path cannot change %s from \"%s\".",
								  consent_field_names[field], field_label(field, from))),
			 others.len ?
			 errhint("This change is made only by %s, through popsell's functions.", others.data) :
			 errhint("No path may make this change: see the transition table in the README.")));
}

/* ---------------------------------------------------------------------
 * SQL-callable views of the model
 * ---------------------------------------------------------------------
 */

/* "any", "any but a, b" or "a, b" */
static char *
render_set(ConsentField field, uint64 set)
{
	int			n = field_count(field);
	uint64		all = B(n) - 1;
	int			members = 0;
	StringInfoData buf;

	initStringInfo(&buf);
	for (int v = 0; v < n; v++)
		if (set & B(v))
			members++;
	if ((set & all) == all)
		return "any";
	if (members > n / 2)
	{
		appendStringInfoString(&buf, "any but ");
		for (int v = 0, k = 0; v < n; v++)
			if (!(set & B(v)))
				appendStringInfo(&buf, "%s%s", k++ ? ", " : "", field_label(field, v));
		return buf.data;
	}
	for (int v = 0, k = 0; v < n; v++)
		if (set & B(v))
			appendStringInfo(&buf, "%s%s", k++ ? ", " : "", field_label(field, v));
	return buf.data;
}

/*
 * popsell.transition_rules(): the transition table, one row per rule, as
 * the README shows it.
 */
Datum
transition_rules(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < lengthof(rules); i++)
	{
		const TransitionRule *r = &rules[i];
		Datum		values[6];
		bool		nulls[6] = {false};
		StringInfoData paths;
		StringInfoData sources;

		initStringInfo(&paths);
		initStringInfo(&sources);
		for (int p = 0; p < PATH__COUNT; p++)
			if (r->paths & B(p))
				appendStringInfo(&paths, "%s%s", paths.len ? ", " : "",
								 popsell_path_names[p]);
		for (int s = 0; s < SRC__COUNT; s++)
			if (r->sources & B(s))
				appendStringInfo(&sources, "%s%s", sources.len ? ", " : "",
								 src_labels[s]);
		values[0] = CStringGetTextDatum(consent_field_names[r->field]);
		values[1] = CStringGetTextDatum(render_set(r->field, r->from));
		values[2] = CStringGetTextDatum(render_set(r->field, r->to));
		values[3] = CStringGetTextDatum(paths.data);
		values[4] = CStringGetTextDatum(sources.len ? sources.data : "any");
		values[5] = CStringGetTextDatum(r->why);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* popsell.transition_allowed(field, from, to, path, source) for tests and tools */
Datum
transition_allowed(PG_FUNCTION_ARGS)
{
	char	   *field = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *from = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *to = text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *path = text_to_cstring(PG_GETARG_TEXT_PP(3));
	Oid			src = PG_GETARG_OID(4);
	int			f = -1,
				p = -1,
				vf = -1,
				vt = -1;

	for (int i = 0; i < FIELD__COUNT; i++)
		if (strcmp(field, consent_field_names[i]) == 0)
			f = i;
	for (int i = 0; i < PATH__COUNT; i++)
		if (strcmp(path, popsell_path_names[i]) == 0)
			p = i;
	if (f < 0 || p < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown field \"%s\" or path \"%s\"", field, path),
				 errhint("Fields: ambassador_optin, brand_optin, partners_optin, email_status; paths: see popsell.transition_rules().")));
	for (int v = 0; v < field_count((ConsentField) f); v++)
	{
		if (strcmp(from, field_label((ConsentField) f, v)) == 0)
			vf = v;
		if (strcmp(to, field_label((ConsentField) f, v)) == 0)
			vt = v;
	}
	if (vf < 0 || vt < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" or \"%s\" is not a value of %s", from, to, field)));
	PG_RETURN_BOOL(TransitionAllowed((ConsentField) f, vf, vt, (PopsellPath) p,
									 (ContactSource) EnumIndex(ENUM_SOURCE, src)));
}

/*
 * popsell.initial_optins(source, ambassador_optin_checked, brand_optin_checked,
 * partners_optin_checked): the opt-ins C1 gives a new contact.
 */
Datum
initial_optins(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[3];
	bool		nulls[3] = {false};
	ContactSource src;
	Tri			amb = PG_ARGISNULL(1) ? TRI_UNSET : (PG_GETARG_BOOL(1) ? TRI_TRUE : TRI_FALSE);
	Tri			brand = PG_ARGISNULL(2) ? TRI_UNSET : (PG_GETARG_BOOL(2) ? TRI_TRUE : TRI_FALSE);
	bool		partners = !PG_ARGISNULL(3) && PG_GETARG_BOOL(3);
	InitialOptins r;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_SOURCE),
				 errmsg("a contact source is required"),
				 errhint("Pass one of the popsell.contact_source values.")));
	src = (ContactSource) EnumIndex(ENUM_SOURCE, PG_GETARG_OID(0));
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "initial_optins must return a record");
	r = InitialOptinsFor(src, amb, brand);
	values[0] = ObjectIdGetDatum(EnumOid(ENUM_AMB, r.amb));
	values[1] = ObjectIdGetDatum(EnumOid(ENUM_BRAND, r.brand));
	values[2] = BoolGetDatum(partners && SourceAllowsPartners(src));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/*
 * The state classes as SQL predicates: the one definition that policies,
 * views, partial indexes and retention rules use (IMMUTABLE, so partial
 * index predicates match the queries that spell the same call).
 */

/* popsell.is_opted_out(ambassador_optin) */
Datum
is_opted_out(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(AmbIsOptedOut((AmbOptin) EnumIndex(ENUM_AMB, PG_GETARG_OID(0))));
}

/*
 * popsell.is_pending_confirmation(source, email_confirmed_at): not strict,
 * since a NULL email_confirmed_at is what makes a contact pending.
 */
Datum
is_pending_confirmation(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PG_RETURN_BOOL(ContactIsPending((ContactSource) EnumIndex(ENUM_SOURCE, PG_GETARG_OID(0)),
									PG_ARGISNULL(1)));
}

/* popsell.is_brand_visible(brand_optin, partners_optin) */
Datum
is_brand_visible(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(ContactIsBrandVisible((BrandOptin) EnumIndex(ENUM_BRAND, PG_GETARG_OID(0)),
										 PG_GETARG_BOOL(1)));
}

/*
 * popsell.brand_sees(restricted, source, email_confirmed_at, brand_optin,
 * partners_optin): what the brand's policies and views filter on.
 */
Datum
brand_sees(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(3) || PG_ARGISNULL(4))
		PG_RETURN_NULL();
	PG_RETURN_BOOL(!PG_GETARG_BOOL(0) &&
				   !ContactIsPending((ContactSource) EnumIndex(ENUM_SOURCE, PG_GETARG_OID(1)),
									 PG_ARGISNULL(2)) &&
				   ContactIsBrandVisible((BrandOptin) EnumIndex(ENUM_BRAND, PG_GETARG_OID(3)),
										 PG_GETARG_BOOL(4)));
}
