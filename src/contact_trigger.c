/*-------------------------------------------------------------------------
 *
 * contact_trigger.c
 *	  The BEFORE INSERT OR UPDATE row trigger of popsell.contacts: follow
 *	  one contact from top to bottom.
 *
 *	  INSERT: source rules, email normalization, initial opt-ins (C1),
 *	          blacklist (C3), history stamps, the initial ledger row.
 *	  UPDATE: immutable columns, email normalization and blacklist, every
 *	          consent change checked against the transition table (C2),
 *	          stamps, one ledger row per accepted change, and the
 *	          statement-end work (a global opt-out made global, unsent mail
 *	          the contact may no longer get cancelled).
 *
 * Bookkeeping never depends on the caller: the blacklist and ambassadors
 * are probed directly through their indexes (blacklist.c), and the SQL
 * (an ambassador's kind here, the ledger's INSERT in ledger.c) runs as
 * prepared, kept SPI plans as popsell_owner whose text names popsell's
 * relations and operators by schema, so neither the caller's privileges
 * nor its search_path matter.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(contacts_before_row);

/* Columns the trigger reads or writes, resolved once per relation. */
typedef struct ContactCols
{
	Oid			relid;
	AttrNumber	id, ambassador_id, source, first_name, last_name, email,
				email_status, facebook_id, twitter_id, instagram_id,
				public_photo_url, customer_id, ambassador_optin,
				ambassador_optin_at, brand_optin, brand_optin_at,
				partners_optin, partners_optin_at, address, city, postal_code,
				country, mobile_phone, home_phone, restricted,
				email_confirmed_at, last_activity_at, created_at, created_by,
				modified_at, modified_by, contact_type, tags, invitations_sent;
} ContactCols;

static ContactCols cols;
static bool cols_callback = false;

static SPIPlanPtr kind_plan = NULL;

static void
cols_invalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == cols.relid)
		cols.relid = InvalidOid;
}

static AttrNumber
col(TupleDesc desc, const char *name)
{
	int			n = SPI_fnumber(desc, name);

	if (n <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_MISUSE),
				 errmsg("popsell.contacts has no column \"%s\"", name),
				 errhint("Reinstall the extension; popsell's columns must not be dropped or renamed.")));
	return (AttrNumber) n;
}

static void
resolve_cols(Relation rel)
{
	TupleDesc	d = RelationGetDescr(rel);

	if (cols.relid == RelationGetRelid(rel))
		return;
	if (!cols_callback)
	{
		CacheRegisterRelcacheCallback(cols_invalidate, (Datum) 0);
		cols_callback = true;
	}
#define C(x) cols.x = col(d, #x)
	C(id);
	C(ambassador_id);
	C(source);
	C(first_name);
	C(last_name);
	C(email);
	C(email_status);
	C(facebook_id);
	C(twitter_id);
	C(instagram_id);
	C(public_photo_url);
	C(customer_id);
	C(ambassador_optin);
	C(ambassador_optin_at);
	C(brand_optin);
	C(brand_optin_at);
	C(partners_optin);
	C(partners_optin_at);
	C(address);
	C(city);
	C(postal_code);
	C(country);
	C(mobile_phone);
	C(home_phone);
	C(restricted);
	C(email_confirmed_at);
	C(last_activity_at);
	C(created_at);
	C(created_by);
	C(modified_at);
	C(modified_by);
	C(contact_type);
	C(tags);
	C(invitations_sent);
#undef C
	EnumCheckType(ENUM_AMB, TupleDescAttr(d, cols.ambassador_optin - 1)->atttypid);
	EnumCheckType(ENUM_BRAND, TupleDescAttr(d, cols.brand_optin - 1)->atttypid);
	EnumCheckType(ENUM_EMAIL_STATUS, TupleDescAttr(d, cols.email_status - 1)->atttypid);
	EnumCheckType(ENUM_SOURCE, TupleDescAttr(d, cols.source - 1)->atttypid);
	cols.relid = RelationGetRelid(rel);
}

/* A deformed row being edited. */
typedef struct Row
{
	Datum	   *values;
	bool	   *nulls;
	bool	   *repl;
} Row;

#define ISNULL(r, a)	((r)->nulls[(a) - 1])
#define VAL(r, a)		((r)->values[(a) - 1])

static void
row_set(Row *r, AttrNumber a, Datum v, bool isnull)
{
	r->values[a - 1] = v;
	r->nulls[a - 1] = isnull;
	r->repl[a - 1] = true;
}

static bool
text_present(Row *r, AttrNumber a)
{
	text	   *t;

	if (ISNULL(r, a))
		return false;
	t = DatumGetTextPP(VAL(r, a));
	for (int i = 0; i < VARSIZE_ANY_EXHDR(t); i++)
		if (!isspace((unsigned char) VARDATA_ANY(t)[i]))
			return true;
	return false;
}

static Datum
now_datum(void)
{
	return TimestampTzGetDatum(PopsellNow());
}

static Datum
outer_user_name(void)
{
	char	   *n = GetUserNameFromId(GetOuterUserId(), true);

	return DirectFunctionCall1(namein, CStringGetDatum(n ? n : "?"));
}

static SPIPlanPtr
keep_plan(SPIPlanPtr *slot, const char *query, int nargs, Oid *argtypes)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(query, nargs, argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for popsell bookkeeping: %s",
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "SPI_keepplan failed");
		*slot = p;
	}
	return *slot;
}

/* ---------------------------------------------------------------------
 * Email: normalization and the blacklist
 * ---------------------------------------------------------------------
 */

/*
 * Normalize the email column in place; NULL for empty.  Returns the
 * normalized text (palloc'd) or NULL.
 */
static char *
normalize_email_column(Row *r, int *len)
{
	text	   *t;
	char	   *norm;

	if (ISNULL(r, cols.email))
		return NULL;
	t = DatumGetTextPP(VAL(r, cols.email));
	norm = NormalizeIdentifier(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), len);
	if (*len == 0)
	{
		row_set(r, cols.email, (Datum) 0, true);
		return NULL;
	}
	if (!EmailLooksValid(norm, *len))
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_MALFORMED_EMAIL),
				 errmsg("malformed email address for contact"),
				 errdetail("An email needs one \"@\", a local part of at most 64 bytes and a dotted domain, without spaces; at most 254 bytes."),
				 errhint("Correct the address, or leave the email empty.")));
	row_set(r, cols.email, PointerGetDatum(cstring_to_text_with_len(norm, *len)), false);
	return norm;
}

/* Blacklist reasons found for an email, one bit per BlacklistReason. */
typedef uint32 ReasonSet;

/* Blacklist reasons of an email, under every live key. */
static ReasonSet
probe_email(const char *norm, int len)
{
	PopsellHash h[POPSELL_MAX_KEYS];
	int			n = HashUnderAllKeys(norm, len, h);

	return BlacklistReasons(h, n);
}

/* The definitive email status a blacklist entry imposes, or -1. */
static int
definitive_status(ReasonSet reasons)
{
	if (reasons & (1u << BL_BLOCKED))
		return ES_BLOCKED;
	if (reasons & (1u << BL_SPAM))
		return ES_SPAM;
	if (reasons & (1u << BL_HARD_BOUNCE))
		return ES_HARD_BOUNCE;
	return -1;
}

/* ---------------------------------------------------------------------
 * INSERT
 * ---------------------------------------------------------------------
 */
static const char *
social_forbidden_field(Row *r)
{
	struct
	{
		AttrNumber	a;
		const char *name;
	}			f[] = {
		{cols.first_name, "first_name"}, {cols.last_name, "last_name"},
		{cols.email, "email"}, {cols.mobile_phone, "mobile_phone"},
		{cols.home_phone, "home_phone"}, {cols.address, "address"},
		{cols.city, "city"}, {cols.postal_code, "postal_code"},
		{cols.country, "country"}, {cols.customer_id, "customer_id"},
	};

	for (int i = 0; i < lengthof(f); i++)
		if (text_present(r, f[i].a))
			return f[i].name;
	return NULL;
}

/*
 * Columns PostgreSQL would reject as NULL (or out of range) with the whole
 * row, personal data included, in the error's detail: reject them first,
 * naming only the column (SPEC S8).
 */
static void
check_required_columns(Row *r, int64 id)
{
	struct
	{
		AttrNumber	a;
		const char *name;
	}			f[] = {
		{cols.contact_type, "contact_type"}, {cols.tags, "tags"},
		{cols.restricted, "restricted"}, {cols.invitations_sent, "invitations_sent"},
		{cols.created_at, "created_at"}, {cols.partners_optin, "partners_optin"},
	};

	for (int i = 0; i < lengthof(f); i++)
		if (ISNULL(r, f[i].a))
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("column %s of contact %lld cannot be NULL", f[i].name, (long long) id),
					 errhint("Omit the column to get its default, or give a value.")));
	if (DatumGetInt32(VAL(r, cols.invitations_sent)) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("invitations_sent of contact %lld cannot be negative", (long long) id)));
}

/* SPEC section 3: at least one personal field must be filled. */
static void
check_has_personal_field(Row *r, int64 id)
{
	AttrNumber	f[] = {cols.first_name, cols.last_name, cols.email, cols.facebook_id,
		cols.twitter_id, cols.instagram_id, cols.public_photo_url, cols.customer_id,
	cols.mobile_phone, cols.home_phone, cols.address};

	for (int i = 0; i < lengthof(f); i++)
		if (text_present(r, f[i]))
			return;
	ereport(ERROR,
			(errcode(ERRCODE_POPSELL_EMPTY_CONTACT),
			 errmsg("contact %lld has no personal field", (long long) id),
			 errdetail("A contact needs at least one of: first_name, last_name, email, facebook_id, twitter_id, instagram_id, public_photo_url, customer_id, mobile_phone, home_phone, address."),
			 errhint("Fill one of them, or delete the contact.")));
}

static void
check_brand_sync_ambassador(Row *r)
{
	Oid			type = INT8OID;
	Datum		id;
	bool		isnull;
	char	   *kind;

	if (ISNULL(r, cols.ambassador_id))
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_SOURCE),
				 errmsg("a brand_sync contact needs an ambassador"),
				 errhint("Give the ambassador_id of a sales_rep or employee ambassador.")));
	id = VAL(r, cols.ambassador_id);
	keep_plan(&kind_plan,
			  "SELECT a.kind::pg_catalog.text FROM popsell.ambassadors a WHERE a.id OPERATOR(pg_catalog.=) $1",
			  1, &type);
	if (SPI_execute_plan(kind_plan, &id, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read popsell.ambassadors");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_UNKNOWN_ID),
				 errmsg("ambassador %lld does not exist", (long long) DatumGetInt64(id)),
				 errhint("Create the ambassador first, or give an existing ambassador_id.")));
	kind = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	(void) isnull;
	if (kind == NULL || strcmp(kind, "customer") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_SOURCE),
				 errmsg("brand_sync contacts are only for sales_rep or employee ambassadors; ambassador %lld is a customer",
						(long long) DatumGetInt64(id)),
				 errdetail("The brand's database is shared only with its sales representatives and employees."),
				 errhint("Collect this contact through another source, or change the ambassador's kind.")));
}

static HeapTuple
contact_insert(TriggerData *td, Row *r)
{
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	PopsellPath path = CurrentPath();
	bool		history = CallerMayGiveHistory();
	ContactSource src;
	int			amb_in,
				brand_in;
	InitialOptins init;
	bool		partners;
	int			es;
	char	   *norm;
	int			normlen = 0;
	ReasonSet	reasons = 0;
	const char *note = "initial";
	LedgerEntry e;
	Oid			save_userid;
	int			save_sec;
	TimestampTz now = PopsellNow();
	const char *forbidden;

	if (ISNULL(r, cols.source))
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_SOURCE),
				 errmsg("a contact needs a source"),
				 errhint("Set source to how the contact was collected, e.g. 'crm_manual'.")));
	src = (ContactSource) EnumIndex(ENUM_SOURCE, DatumGetObjectId(VAL(r, cols.source)));

	/* On INSERT a trusted app records what the form or sync sent. */
	if (path == PATH_APP)
		path = src == SRC_BRAND_SYNC ? PATH_BRAND_SYNC :
			(src == SRC_CRM_MANUAL || src == SRC_PRIVATE_IMPORT) ? PATH_AMBASSADOR : PATH_CONTACT;

	if (path == PATH_AMBASSADOR && src != SRC_CRM_MANUAL && src != SRC_PRIVATE_IMPORT)
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_SOURCE),
				 errmsg("an ambassador cannot insert a contact with source \"%s\"",
						EnumLabel(ENUM_SOURCE, src)),
				 errdetail("Ambassadors enter crm_manual and private_import contacts only; other sources carry the contact's own consent."),
				 errhint("Use popsell.collect_contact() from the trusted application for forms, orders and syncs.")));

	if (!ISNULL(r, cols.ambassador_id) &&
		!AmbassadorExists(DatumGetInt64(VAL(r, cols.ambassador_id))))
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_UNKNOWN_ID),
				 errmsg("ambassador %lld does not exist",
						(long long) DatumGetInt64(VAL(r, cols.ambassador_id))),
				 errhint("Give the id of an existing ambassador.")));

	if (src == SRC_SOCIAL_NETWORK && (forbidden = social_forbidden_field(r)) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_PERSONAL_FIELD),
				 errmsg("a social_network contact cannot have a %s", forbidden),
				 errdetail("Contacts recorded from social networks keep only their network ids and public photo URL."),
				 errhint("Remove %s, or collect the person through a source that carries consent.", forbidden)));

	norm = normalize_email_column(r, &normlen);
	check_has_personal_field(r, ISNULL(r, cols.id) ? 0 : DatumGetInt64(VAL(r, cols.id)));


	/* C1: explicit initial values must be ones the source can produce. */
	amb_in = ISNULL(r, cols.ambassador_optin) ? -1 :
		EnumIndex(ENUM_AMB, DatumGetObjectId(VAL(r, cols.ambassador_optin)));
	brand_in = ISNULL(r, cols.brand_optin) ? -1 :
		EnumIndex(ENUM_BRAND, DatumGetObjectId(VAL(r, cols.brand_optin)));
	if (!InitialAllowed(src, amb_in, brand_in, &init))
	{
		bool		amb_bad = amb_in >= 0 && !InitialAllowed(src, amb_in, -1, &init);
		ConsentField f = amb_bad || brand_in < 0 ? FIELD_AMBASSADOR_OPTIN : FIELD_BRAND_OPTIN;
		const char *given = f == FIELD_AMBASSADOR_OPTIN ? EnumLabel(ENUM_AMB, amb_in)
			: EnumLabel(ENUM_BRAND, brand_in);

		if (f == FIELD_BRAND_OPTIN && amb_in >= 0 && InitialAllowed(src, -1, brand_in, &init))
			ereport(ERROR,
					(errcode(ERRCODE_POPSELL_INITIAL_VALUE),
					 errmsg("initial ambassador_optin \"%s\" and brand_optin \"%s\" do not go together for source \"%s\"",
							EnumLabel(ENUM_AMB, amb_in), EnumLabel(ENUM_BRAND, brand_in),
							EnumLabel(ENUM_SOURCE, src)),
					 errhint("Omit the opt-in columns and pass the checkboxes the contact ticked to popsell.collect_contact().")));
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_INITIAL_VALUE),
				 errmsg("initial %s \"%s\" is not allowed for source \"%s\"",
						consent_field_names[f], given, EnumLabel(ENUM_SOURCE, src)),
				 errdetail("Allowed initial values for this source: %s.", AllowedInitialText(src, f)),
				 errhint("Omit the opt-in columns and let popsell fill them, or pass the checkboxes the contact ticked to popsell.collect_contact().")));
	}
	partners = !ISNULL(r, cols.partners_optin) && DatumGetBool(VAL(r, cols.partners_optin));
	if (partners && !SourceAllowsPartners(src))
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_INITIAL_VALUE),
				 errmsg("initial partners_optin true is not allowed for source \"%s\"",
						EnumLabel(ENUM_SOURCE, src)),
				 errdetail("Only a form, order or sync the contact filled in can carry a partners opt-in."),
				 errhint("Leave partners_optin false.")));

	/* Pending confirmation: unverified until popsell.confirm_email(). */
	if (!history || ISNULL(r, cols.email_confirmed_at))
		row_set(r, cols.email_confirmed_at, (Datum) 0, true);
	if (SourceIsPendingKind(src) && ISNULL(r, cols.email_confirmed_at))
		es = ES_UNVERIFIED;
	else if (ISNULL(r, cols.email_status))
		es = ES_OK;
	else
		es = EnumIndex(ENUM_EMAIL_STATUS, DatumGetObjectId(VAL(r, cols.email_status)));
	if (!history && (es == ES_OK || es == ES_UNVERIFIED) && !SourceIsPendingKind(src))
		es = ES_OK;

	if (src == SRC_BRAND_SYNC)
	{
		EnterOwnerContext(&save_userid, &save_sec);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		check_brand_sync_ambassador(r);
		SPI_finish();
		LeaveOwnerContext(save_userid, save_sec);
	}

	if (norm != NULL)
		reasons = probe_email(norm, normlen);

	/* C3: a globally opted-out email */
	if (reasons & (1u << BL_GLOBAL_OPTOUT))
	{
		if (src == SRC_CRM_MANUAL || src == SRC_PRIVATE_IMPORT)
		{
			/* an ambassador cannot bring it back: skip the row */
			return NULL;
		}
		if (!SourceIsPendingKind(src))
		{
			init.amb = AO_GLOBAL_OPTOUT;
			note = "initial; email is globally opted out";
		}
		else
			note = "initial; email is globally opted out until this consent is confirmed";
	}
	if (definitive_status(reasons) >= 0)
		es = definitive_status(reasons);

	row_set(r, cols.ambassador_optin, ObjectIdGetDatum(EnumOid(ENUM_AMB, init.amb)), false);
	row_set(r, cols.brand_optin, ObjectIdGetDatum(EnumOid(ENUM_BRAND, init.brand)), false);
	row_set(r, cols.partners_optin, BoolGetDatum(partners), false);
	row_set(r, cols.email_status, ObjectIdGetDatum(EnumOid(ENUM_EMAIL_STATUS, es)), false);

	/* History: kept only when a trusted caller gives it. */
	if (!history || ISNULL(r, cols.ambassador_optin_at))
		row_set(r, cols.ambassador_optin_at, TimestampTzGetDatum(now), false);
	if (!history || ISNULL(r, cols.brand_optin_at))
		row_set(r, cols.brand_optin_at, TimestampTzGetDatum(now), false);
	if (!partners)
		row_set(r, cols.partners_optin_at, (Datum) 0, true);
	else if (!history || ISNULL(r, cols.partners_optin_at))
		row_set(r, cols.partners_optin_at, TimestampTzGetDatum(now), false);
	if (!history || ISNULL(r, cols.created_at))
		row_set(r, cols.created_at, TimestampTzGetDatum(now), false);
	if (!history)
		row_set(r, cols.last_activity_at, (Datum) 0, true);
	if (!history || ISNULL(r, cols.created_by))
		row_set(r, cols.created_by, outer_user_name(), false);
	row_set(r, cols.modified_at, (Datum) 0, true);
	row_set(r, cols.modified_by, (Datum) 0, true);

	if (ISNULL(r, cols.id))
		elog(ERROR, "popsell.contacts.id must be set before the trigger runs");
	check_required_columns(r, DatumGetInt64(VAL(r, cols.id)));
	memset(&e, 0, sizeof(e));
	e.contact_id = DatumGetInt64(VAL(r, cols.id));
	e.ambassador_id = DatumGetInt64(VAL(r, cols.ambassador_id));
	e.ambassador_id_null = ISNULL(r, cols.ambassador_id);
	for (int f = 0; f < FIELD__COUNT; f++)
		e.old_v[f] = -1;
	e.new_v[FIELD_AMBASSADOR_OPTIN] = init.amb;
	e.new_v[FIELD_BRAND_OPTIN] = init.brand;
	e.new_v[FIELD_PARTNERS_OPTIN] = partners ? 1 : 0;
	e.new_v[FIELD_EMAIL_STATUS] = es;
	e.source = src;
	e.path = path;
	e.note = note;
	e.at = now;

	/*
	 * The initial state is the first ledger row of a contact collected with
	 * a consent choice.  A contact an ambassador enters (crm_manual,
	 * private_import, social_network) has none to prove (new or
	 * social_media_only, no_optin): its first ledger row is its first
	 * change, whose old values are that state.  Skipping it keeps bulk
	 * imports cheap; a state the blacklist imposed is always recorded.
	 */
	if (!((src == SRC_CRM_MANUAL || src == SRC_PRIVATE_IMPORT ||
		   src == SRC_SOCIAL_NETWORK) && reasons == 0) &&
		!ContactIdExists(e.contact_id))	/* ON CONFLICT: not inserted */
		LedgerAppend(&e);

	return heap_modify_tuple(td->tg_trigtuple, desc, r->values, r->nulls, r->repl);
}

/* ---------------------------------------------------------------------
 * UPDATE
 * ---------------------------------------------------------------------
 */
static bool
datum_changed(Row *o, Row *r, AttrNumber a, TupleDesc desc)
{
	Form_pg_attribute att = TupleDescAttr(desc, a - 1);

	if (ISNULL(o, a) != ISNULL(r, a))
		return true;
	if (ISNULL(o, a))
		return false;
	return !datumIsEqual(VAL(o, a), VAL(r, a), att->attbyval, att->attlen);
}

static void
immutable_column(const char *name, int64 id)
{
	ereport(ERROR,
			(errcode(ERRCODE_POPSELL_IMMUTABLE),
			 errmsg("column %s of contact %lld cannot be changed this way", name, (long long) id),
			 errhint("It is set by popsell's functions only; see the README.")));
}

static HeapTuple
contact_update(TriggerData *td, Row *o, Row *r)
{
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	PopsellPath path = CurrentPath();
	ContactSource src;
	int64		id;
	int			oldv[FIELD__COUNT],
				newv[FIELD__COUNT];
	bool		any_change = false;
	bool		email_changed;
	char	   *norm = NULL;
	int			normlen = 0;
	ReasonSet	reasons = 0;
	const char *note = NULL;
	TimestampTz now = PopsellNow();

	/* A trusted app updating rows acts with an ambassador's rights. */
	if (path == PATH_APP)
		path = PATH_AMBASSADOR;

	id = DatumGetInt64(VAL(o, cols.id));
	if (datum_changed(o, r, cols.id, desc))
		immutable_column("id", id);
	if (datum_changed(o, r, cols.source, desc))
		immutable_column("source", id);
	if (datum_changed(o, r, cols.created_at, desc) && !superuser())
		immutable_column("created_at", id);
	if (datum_changed(o, r, cols.created_by, desc) && !superuser())
		immutable_column("created_by", id);
	if (datum_changed(o, r, cols.email_confirmed_at, desc) && path != PATH_CONFIRM_EMAIL)
		immutable_column("email_confirmed_at", id);
	if (datum_changed(o, r, cols.restricted, desc) && path != PATH_RIGHTS && !superuser())
		immutable_column("restricted", id);
	src = (ContactSource) EnumIndex(ENUM_SOURCE, DatumGetObjectId(VAL(o, cols.source)));

	if (src == SRC_SOCIAL_NETWORK)
	{
		const char *forbidden = social_forbidden_field(r);

		if (forbidden != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_POPSELL_PERSONAL_FIELD),
					 errmsg("a social_network contact cannot have a %s", forbidden),
					 errdetail("Contacts recorded from social networks keep only their network ids and public photo URL."),
					 errhint("Collect the person through a source that carries consent instead.")));
	}

	email_changed = datum_changed(o, r, cols.email, desc);
	if (email_changed)
	{
		norm = normalize_email_column(r, &normlen);
		email_changed = datum_changed(o, r, cols.email, desc);
	}
	check_has_personal_field(r, id);
	check_required_columns(r, id);

	oldv[FIELD_AMBASSADOR_OPTIN] = EnumIndex(ENUM_AMB, DatumGetObjectId(VAL(o, cols.ambassador_optin)));
	oldv[FIELD_BRAND_OPTIN] = EnumIndex(ENUM_BRAND, DatumGetObjectId(VAL(o, cols.brand_optin)));
	oldv[FIELD_PARTNERS_OPTIN] = DatumGetBool(VAL(o, cols.partners_optin)) ? 1 : 0;
	oldv[FIELD_EMAIL_STATUS] = EnumIndex(ENUM_EMAIL_STATUS, DatumGetObjectId(VAL(o, cols.email_status)));
	if (ISNULL(r, cols.ambassador_optin) || ISNULL(r, cols.brand_optin) ||
		ISNULL(r, cols.partners_optin) || ISNULL(r, cols.email_status))
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("consent columns of contact %lld cannot be set to NULL", (long long) id),
				 errhint("Set ambassador_optin, brand_optin, partners_optin and email_status to a value.")));
	newv[FIELD_AMBASSADOR_OPTIN] = EnumIndex(ENUM_AMB, DatumGetObjectId(VAL(r, cols.ambassador_optin)));
	newv[FIELD_BRAND_OPTIN] = EnumIndex(ENUM_BRAND, DatumGetObjectId(VAL(r, cols.brand_optin)));
	newv[FIELD_PARTNERS_OPTIN] = DatumGetBool(VAL(r, cols.partners_optin)) ? 1 : 0;
	newv[FIELD_EMAIL_STATUS] = EnumIndex(ENUM_EMAIL_STATUS, DatumGetObjectId(VAL(r, cols.email_status)));

	/* C2: every requested change must be in the table for this path. */
	for (int f = 0; f < FIELD__COUNT; f++)
		if (oldv[f] != newv[f] &&
			!TransitionAllowed((ConsentField) f, oldv[f], newv[f], path, src))
			TransitionRejected((ConsentField) f, oldv[f], newv[f], path, src, id);

	if (email_changed || (path == PATH_CONFIRM_EMAIL && norm == NULL && !ISNULL(r, cols.email)))
	{
		if (norm == NULL && !ISNULL(r, cols.email))
		{
			text	   *t = DatumGetTextPP(VAL(r, cols.email));

			norm = text_to_cstring(t);
			normlen = strlen(norm);
		}
	}

	if (norm != NULL)
	{
		reasons = probe_email(norm, normlen);
		if (email_changed && (reasons & (1u << BL_GLOBAL_OPTOUT)) &&
			newv[FIELD_AMBASSADOR_OPTIN] != AO_GLOBAL_OPTOUT)
		{
			/* the new address belongs to someone who opted out of everyone */
			newv[FIELD_AMBASSADOR_OPTIN] = AO_GLOBAL_OPTOUT;
			row_set(r, cols.ambassador_optin, ObjectIdGetDatum(EnumOid(ENUM_AMB, AO_GLOBAL_OPTOUT)), false);
			note = "new email is globally opted out";
		}
		if (email_changed && definitive_status(reasons) >= 0 &&
			newv[FIELD_EMAIL_STATUS] != definitive_status(reasons))
		{
			newv[FIELD_EMAIL_STATUS] = definitive_status(reasons);
			row_set(r, cols.email_status,
					ObjectIdGetDatum(EnumOid(ENUM_EMAIL_STATUS, newv[FIELD_EMAIL_STATUS])), false);
			note = "new email is on the blacklist";
		}
		if (path == PATH_CONFIRM_EMAIL && (reasons & (1u << BL_GLOBAL_OPTOUT)) &&
			oldv[FIELD_AMBASSADOR_OPTIN] == AO_OPTIN_BLOG_PENDING &&
			AmbIsOptedIn((AmbOptin) newv[FIELD_AMBASSADOR_OPTIN]))
			note = "the contact's own confirmed consent lifts the global opt-out for this row";
	}

	/*
	 * A global opt-out recorded by a plain UPDATE (staff recording what
	 * the person asked) is global: the email is blacklisted and every row
	 * with it follows, at the end of the statement.  popsell's own paths
	 * blacklist first, so the probe finds the entry and nothing is queued.
	 */
	if (newv[FIELD_AMBASSADOR_OPTIN] == AO_GLOBAL_OPTOUT &&
		oldv[FIELD_AMBASSADOR_OPTIN] != AO_GLOBAL_OPTOUT && !ISNULL(r, cols.email))
	{
		if (norm == NULL)
		{
			norm = text_to_cstring(DatumGetTextPP(VAL(r, cols.email)));
			normlen = strlen(norm);
			reasons = probe_email(norm, normlen);
		}
		if (!(reasons & (1u << BL_GLOBAL_OPTOUT)))
			QueueGlobalOptout(norm, path);
	}

	for (int f = 0; f < FIELD__COUNT; f++)
		if (oldv[f] != newv[f])
			any_change = true;

	if (any_change || datum_changed(o, r, cols.restricted, desc))
		QueueOutboxRecheck(id);

	if (any_change)
	{
		LedgerEntry e;

		if (oldv[FIELD_AMBASSADOR_OPTIN] != newv[FIELD_AMBASSADOR_OPTIN])
			row_set(r, cols.ambassador_optin_at, TimestampTzGetDatum(now), false);
		if (oldv[FIELD_BRAND_OPTIN] != newv[FIELD_BRAND_OPTIN])
			row_set(r, cols.brand_optin_at, TimestampTzGetDatum(now), false);
		if (oldv[FIELD_PARTNERS_OPTIN] != newv[FIELD_PARTNERS_OPTIN])
			row_set(r, cols.partners_optin_at, TimestampTzGetDatum(now), false);

		memset(&e, 0, sizeof(e));
		e.contact_id = id;
		e.ambassador_id = DatumGetInt64(VAL(r, cols.ambassador_id));
		e.ambassador_id_null = ISNULL(r, cols.ambassador_id);
		memcpy(e.old_v, oldv, sizeof(oldv));
		memcpy(e.new_v, newv, sizeof(newv));
		e.source = src;
		e.path = path;
		e.note = note;
		e.at = now;
		LedgerAppend(&e);
	}
	else
	{
		/* stamps move only with their column */
		if (datum_changed(o, r, cols.ambassador_optin_at, desc) ||
			datum_changed(o, r, cols.brand_optin_at, desc) ||
			datum_changed(o, r, cols.partners_optin_at, desc))
		{
			if (path != PATH_MIGRATION && !superuser())
				immutable_column("*_optin_at", id);
		}
	}

	row_set(r, cols.modified_at, now_datum(), false);
	row_set(r, cols.modified_by, outer_user_name(), false);
	return heap_modify_tuple(td->tg_newtuple, desc, r->values, r->nulls, r->repl);
}

/* ---------------------------------------------------------------------
 * Entry point
 * ---------------------------------------------------------------------
 */
static void
deform(HeapTuple tup, TupleDesc desc, Row *r)
{
	int			natts = desc->natts;

	r->values = palloc(natts * sizeof(Datum));
	r->nulls = palloc(natts * sizeof(bool));
	r->repl = palloc0(natts * sizeof(bool));
	heap_deform_tuple(tup, desc, r->values, r->nulls);
}

/*
 * Refuse to run anywhere but where popsell attached the trigger: a trigger
 * function attached to another table would read the wrong columns.
 */
void
CheckPopsellTrigger(FunctionCallInfo fcinfo, const char *fname,
					const char *relname, bool before, bool row)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_MISUSE),
				 errmsg("%s can only be called as a trigger", fname)));
	rel = td->tg_relation;
	if (strcmp(RelationGetRelationName(rel), relname) != 0 ||
		strcmp(get_namespace_name(RelationGetNamespace(rel)), "popsell") != 0 ||
		(before ? !TRIGGER_FIRED_BEFORE(td->tg_event) : !TRIGGER_FIRED_AFTER(td->tg_event)) ||
		(row ? !TRIGGER_FIRED_FOR_ROW(td->tg_event) : !TRIGGER_FIRED_FOR_STATEMENT(td->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_MISUSE),
				 errmsg("%s must be a %s %s trigger on popsell.%s, not on %s",
						fname, before ? "BEFORE" : "AFTER", row ? "FOR EACH ROW" : "FOR EACH STATEMENT",
						relname, RelationGetRelationName(rel)),
				 errhint("Drop this trigger; popsell attaches its triggers itself.")));
}

Datum
contacts_before_row(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	Row			r;

	CheckPopsellTrigger(fcinfo, "popsell.contacts_before_row", "contacts", true, true);
	if (TRIGGER_FIRED_BY_DELETE(td->tg_event) || TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_MISUSE),
				 errmsg("popsell.contacts_before_row handles INSERT and UPDATE only")));

	/* pg_restore / pg_dump output: rows come back as they were. */
	if (RestoringData())
		return PointerGetDatum(TRIGGER_FIRED_BY_INSERT(td->tg_event) ? td->tg_trigtuple : td->tg_newtuple);

	desc = RelationGetDescr(td->tg_relation);
	resolve_cols(td->tg_relation);

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
	{
		deform(td->tg_trigtuple, desc, &r);
		return PointerGetDatum(contact_insert(td, &r));
	}
	else
	{
		Row			o;

		deform(td->tg_trigtuple, desc, &o);
		deform(td->tg_newtuple, desc, &r);
		return PointerGetDatum(contact_update(td, &o, &r));
	}
}
