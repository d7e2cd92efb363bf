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

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "storage/proc.h"
#include "storage/lmgr.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

PG_FUNCTION_INFO_V1(contacts_before_row);
PG_FUNCTION_INFO_V1(contacts_optout_recheck);

/* Columns the trigger reads or writes, resolved once per relation. */
typedef struct ContactCols
{
	Oid			relid;
	Oid			email_idx;		/* contacts_email_idx: the duplicate probe */
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
static SPIPlanPtr status_plan = NULL;
static SPIPlanPtr refusal_plan = NULL;

/*
 * Ambassadors found active, valid for one command of one transaction (a
 * bulk load looks each of its ambassadors up once).
 */
#define ACTIVE_SLOTS 1024
static int64 active_ids[ACTIVE_SLOTS];
static LocalTransactionId active_lxid = InvalidLocalTransactionId;
static CommandId active_cid = InvalidCommandId;

/* outer_is_owner()'s answer, for one role in one transaction */
static LocalTransactionId owner_lxid = InvalidLocalTransactionId;
static Oid	owner_role = InvalidOid;
static bool owner_answer = false;

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
	cols.email_idx = get_relname_relid("contacts_email_idx", RelationGetNamespace(rel));
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
	/* white space and invisible characters alone are no value */
	return TextHasVisible(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
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

/*
 * The session's own role (not a SECURITY DEFINER function's owner) is a
 * superuser or popsell_owner: migrations and restores, which may carry
 * values no application may give (email_confirmed_at) and act for any
 * ambassador.
 */
static bool
outer_is_owner(void)
{
	Oid			outer = GetOuterUserId();

	if (owner_lxid != MyProcLocalTransactionId() || owner_role != outer)
	{
		owner_answer = superuser_arg(outer) || has_privs_of_role(outer, PopsellOwnerId());
		owner_role = outer;
		owner_lxid = MyProcLocalTransactionId();
	}
	return owner_answer;
}

/* Run fn(arg) in an SPI connection as popsell_owner. */
typedef void (*OwnerFn) (void *arg);

static void
as_owner(OwnerFn fn, void *arg)
{
	Oid			save_userid;
	int			save_sec;

	EnterOwnerContext(&save_userid, &save_sec);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	fn(arg);
	SPI_finish();
	LeaveOwnerContext(save_userid, save_sec);
}

typedef struct StatusArg
{
	int64		id;
	char	   *status;			/* NULL: no such ambassador */
} StatusArg;

static void
read_ambassador_status(void *p)
{
	StatusArg  *a = (StatusArg *) p;
	Oid			type = INT8OID;
	Datum		id = Int64GetDatum(a->id);

	keep_plan(&status_plan,
			  "SELECT a.status::pg_catalog.text FROM popsell.ambassadors a WHERE a.id OPERATOR(pg_catalog.=) $1",
			  1, &type);
	if (SPI_execute_plan(status_plan, &id, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read popsell.ambassadors");
	a->status = NULL;
	if (SPI_processed > 0)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (v != NULL)
		{
			/* outlive SPI_finish: the caller's memory context */
			a->status = SPI_palloc(strlen(v) + 1);
			strcpy(a->status, v);
		}
	}
}

/*
 * SPEC section 5 (v2): nothing is collected, imported or entered for an
 * ambassador who is not active, by any role (the owner's migrations and
 * restores aside).  One lookup per ambassador per statement.
 */
static void
check_ambassador_active(int64 amb)
{
	StatusArg	a;
	int			slot = (int) ((uint64) amb % ACTIVE_SLOTS);

	if (active_lxid != MyProcLocalTransactionId() || active_cid != GetCurrentCommandId(false))
	{
		memset(active_ids, 0, sizeof(active_ids));
		active_lxid = MyProcLocalTransactionId();
		active_cid = GetCurrentCommandId(false);
	}
	if (amb != 0 && active_ids[slot] == amb)
		return;
	a.id = amb;
	as_owner(read_ambassador_status, &a);
	if (a.status == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_UNKNOWN_ID),
				 errmsg("ambassador %lld does not exist", (long long) amb),
				 errhint("Give the id of an existing ambassador.")));
	if (strcmp(a.status, "active") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_AMBASSADOR_STATE),
				 errmsg("ambassador %lld is not active (status %s): no contact is collected for it",
						(long long) amb, a.status),
				 errdetail("Contacts are collected, imported and entered only for active ambassadors."),
				 errhint("Complete the signup, or restore the ambassador with popsell.restore_ambassador(), first.")));
	active_ids[slot] = amb;
}

/*
 * SPEC C3 (v2): an ambassador cannot enter an email it already holds.  One
 * probe of contacts_email_idx under the statement's snapshot (the rows
 * with that email are few), comparing their ambassador; rows pending
 * email confirmation, which the ambassador does not see, do not count.
 */
static void
check_not_held(Relation heap, int64 amb, const char *norm, int64 self_id, bool has_self)
{
	Relation	idx;
	IndexScanDesc scan;
	ScanKeyData sk[2];
	int			nkeys;
	TupleTableSlot *slot;
	SnapshotData dirty;
	bool		held = false;
	TransactionId xwait;

	if (!OidIsValid(cols.email_idx))
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_MISUSE),
				 errmsg("index popsell.contacts_email_idx is missing"),
				 errhint("Reinstall the extension; popsell's indexes must not be dropped.")));
	idx = index_open(cols.email_idx, AccessShareLock);
	slot = table_slot_create(heap, NULL);

	/*
	 * A dirty snapshot sees this transaction's rows (also those inserted
	 * earlier by the same command, e.g. a multi-row INSERT) and rows of
	 * transactions still in progress: wait for those and look again, as a
	 * unique index does.
	 */
retry:
	xwait = InvalidTransactionId;
	InitDirtySnapshot(dirty);
	/* (an index of an older version keys the email alone) */
	nkeys = IndexRelationGetNumberOfKeyAttributes(idx) >= 2 ? 2 : 1;
	scan = index_beginscan_compat(heap, idx, &dirty, nkeys, 0);
	/*
	 * contacts_email_idx holds lookup keys, not emails (SPEC S11), then the
	 * ambassador: the scan returns this ambassador's entries only, so the
	 * caller's pg_stat counters count no other ambassador's row.
	 */
	ScanKeyInit(&sk[0], 1, BTEqualStrategyNumber, F_BYTEAEQ,
				PointerGetDatum(LookupKeyBytea(cstring_to_text(norm))));
	ScanKeyInit(&sk[1], 2, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(amb));
	index_rescan(scan, sk, nkeys, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		bool		enull;
		bool		inull;
		Datum		a = slot_getattr(slot, cols.ambassador_id, &isnull);
		Datum		e = slot_getattr(slot, cols.email, &enull);
		Datum		rid = slot_getattr(slot, cols.id, &inull);

		CHECK_FOR_INTERRUPTS();
		/* an UPDATE's own row (its old version) is not another holder */
		if (has_self && !inull && DatumGetInt64(rid) == self_id)
			continue;
		/*
		 * A row pending email confirmation is hidden from the ambassador:
		 * it holds nothing yet, or the refusal would tell the ambassador
		 * the hidden row exists (a form's row may stand next to an entered
		 * one, SPEC C3).
		 */
		{
			bool		snull;
			bool		cnull;
			Datum		src = slot_getattr(slot, cols.source, &snull);

			(void) slot_getattr(slot, cols.email_confirmed_at, &cnull);
			if (!snull &&
				ContactIsPending((ContactSource) EnumIndex(ENUM_SOURCE, DatumGetObjectId(src)), cnull))
				continue;
		}
		/* the key is a digest: compare the stored email itself */
		if (!isnull && DatumGetInt64(a) == amb && !enull &&
			strcmp(TextDatumGetCString(e), norm) == 0)
		{
			xwait = TransactionIdIsValid(dirty.xmin) ? dirty.xmin : dirty.xmax;
			held = true;
			break;
		}
	}
	index_endscan(scan);
	if (held && TransactionIdIsValid(xwait))
	{
		held = false;
		/* (no tuple to name in the wait's context: XLTW_None) */
		XactLockTableWait(xwait, NULL, NULL, XLTW_None);
		goto retry;
	}
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	if (held)
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_DUPLICATE),
				 errmsg("ambassador %lld already holds a contact with this email", (long long) amb),
				 errdetail("An ambassador enters each email once (crm_manual, private_import)."),
				 errhint("Edit the existing contact instead of adding a second one.")));
}

static void
add_refusal(void *p)
{
	Oid			type = TEXTOID;
	Datum		arg = CStringGetTextDatum((const char *) p);

	keep_plan(&refusal_plan,
			  "INSERT INTO popsell.blacklist (email_hash, key_id, reason, created_at)"
			  " SELECT popsell.hash_email($1), popsell.hash_key_id(), 'invitation_refused', pg_catalog.now()"
			  "  WHERE NOT EXISTS (SELECT 1 FROM popsell.blacklist b"
			  "                     WHERE b.email_hash OPERATOR(pg_catalog.=) ANY (popsell.email_hashes($1))"
			  "                       AND b.reason OPERATOR(pg_catalog.=) 'invitation_refused')",
			  1, &type);
	if (SPI_execute_plan(refusal_plan, &arg, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record the refusal in popsell.blacklist");
}

/*
 * SPEC C3 (v2): a refusal is remembered.  The email's hash goes on the
 * blacklist with reason invitation_refused, so a later row with it, from
 * any ambassador, is stored refused.
 */
static void
remember_refusal(const char *norm)
{
	/* a schema older than 2.0 has no such reason yet */
	if (!OidIsValid(EnumOid(ENUM_REASON, BL_INVITATION_REFUSED)))
		return;
	as_owner(add_refusal, (void *) norm);
}

static bool
is_refusal(int amb)
{
	return amb == AO_INVITATION_DECLINED || amb == AO_OPTOUT_NO_RESPONSE ||
		amb == AO_OPTOUT_EMAIL;
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

/*
 * Blacklist reasons of an email, under every live key.  WAIT for an entry
 * still being written only for a row that gets a new index entry for the
 * email (an INSERT, a new address): see BlacklistReasons.
 */
static ReasonSet
probe_email(const char *norm, int len, bool wait)
{
	PopsellHash *h;
	int			n = HashUnderAllKeys(norm, len, &h);

	return BlacklistReasons(h, n, norm, len, wait);
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

/*
 * SPEC section 8: input is bounded.  tags holds at most POPSELL_MAX_TAGS
 * labels of at most POPSELL_MAX_TAG_BYTES bytes each (PS107), no NULL.
 */
#define POPSELL_MAX_TAGS 100
#define POPSELL_MAX_TAG_BYTES 256

static void
check_tags_bounded(Row *r, int64 id)
{
	ArrayType  *a;
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (ISNULL(r, cols.tags))
		return;					/* check_required_columns reports it */
	a = DatumGetArrayTypeP(VAL(r, cols.tags));
	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_BAD_ARGUMENT),
				 errmsg("tags of contact %lld must be a one-dimensional array", (long long) id)));
	deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n > POPSELL_MAX_TAGS)
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_TOO_LONG),
				 errmsg("contact %lld has %d tags, more than %d", (long long) id, n, POPSELL_MAX_TAGS),
				 errhint("Keep at most %d tags per contact.", POPSELL_MAX_TAGS)));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_POPSELL_BAD_ARGUMENT),
					 errmsg("tag %d of contact %lld is NULL", i + 1, (long long) id),
					 errhint("Give each tag as a string.")));
		if (VARSIZE_ANY_EXHDR(DatumGetPointer(elems[i])) > POPSELL_MAX_TAG_BYTES)
			ereport(ERROR,
					(errcode(ERRCODE_POPSELL_TOO_LONG),
					 errmsg("tag %d of contact %lld is longer than %d bytes", i + 1, (long long) id,
							POPSELL_MAX_TAG_BYTES),
					 errhint("Shorten the tag.")));
	}
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

static bool datum_changed(Row *o, Row *r, AttrNumber a, TupleDesc desc);

/*
 * History times (SPEC section 7, v2: no contact kept forever): never
 * infinite, for anyone; in the future only from the owner (tests, a
 * migration on a copy).  On INSERT a later time is taken as now (as-of
 * time in a run); on UPDATE it is refused.  Every retention rule counts
 * from these columns, so a time never reached keeps the row forever.
 */
static void
check_history_time(Row *r, AttrNumber col, const char *name, TimestampTz now, bool is_update)
{
	TimestampTz t;

	if (ISNULL(r, col))
		return;
	t = DatumGetTimestampTz(VAL(r, col));
	if (TIMESTAMP_NOT_FINITE(t))
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_BAD_ARGUMENT),
				 errmsg("contacts.%s cannot be %s", name, TIMESTAMP_IS_NOBEGIN(t) ? "-infinity" : "infinity"),
				 errdetail("Retention counts from this time: one that never comes keeps the contact forever."),
				 errhint("Give the time it happened, or leave it out (now).")));
	if (t <= now || outer_is_owner())
		return;
	if (!is_update)
	{
		row_set(r, col, TimestampTzGetDatum(now), false);
		return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_POPSELL_BAD_ARGUMENT),
			 errmsg("contacts.%s cannot be set to a time after now (%s)", name, timestamptz_to_str(now)),
			 errdetail("Retention counts from this time: a future one delays every deadline."),
			 errhint("Set the time it happened; activity is recorded by popsell.record_interaction and popsell.record_sale.")));
}

static void
check_history_times(Row *o, Row *r, TupleDesc desc, TimestampTz now)
{
	static const struct
	{
		AttrNumber *col;
		const char *name;
	}			h[] = {
		{&cols.ambassador_optin_at, "ambassador_optin_at"},
		{&cols.brand_optin_at, "brand_optin_at"},
		{&cols.partners_optin_at, "partners_optin_at"},
		{&cols.email_confirmed_at, "email_confirmed_at"},
		{&cols.last_activity_at, "last_activity_at"},
		{&cols.created_at, "created_at"},
	};

	for (int i = 0; i < lengthof(h); i++)
		if (o == NULL || datum_changed(o, r, *h[i].col, desc))
			check_history_time(r, *h[i].col, h[i].name, now, o != NULL);
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
	if (!ISNULL(r, cols.ambassador_id) && !outer_is_owner())
		check_ambassador_active(DatumGetInt64(VAL(r, cols.ambassador_id)));

	if (src == SRC_SOCIAL_NETWORK && (forbidden = social_forbidden_field(r)) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_PERSONAL_FIELD),
				 errmsg("a social_network contact cannot have a %s", forbidden),
				 errdetail("Contacts recorded from social networks keep only their network ids and public photo URL."),
				 errhint("Remove %s, or collect the person through a source that carries consent.", forbidden)));

	norm = normalize_email_column(r, &normlen);
	check_has_personal_field(r, ISNULL(r, cols.id) ? 0 : DatumGetInt64(VAL(r, cols.id)));
	check_tags_bounded(r, ISNULL(r, cols.id) ? 0 : DatumGetInt64(VAL(r, cols.id)));


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
				 errdetail("Only popsell's own forms (blog, blog_internal_form, store_purchase, external_form, order_popin) carry a partners opt-in."),
				 errhint("Leave partners_optin false.")));

	/*
	 * Pending confirmation: unverified until popsell.confirm_email().  Only
	 * the owner (a migration, a restore) may bring a confirmation along; an
	 * application's value is not taken (v2).
	 */
	if (!outer_is_owner() || ISNULL(r, cols.email_confirmed_at))
		row_set(r, cols.email_confirmed_at, (Datum) 0, true);
	if (ContactIsPending(src, ISNULL(r, cols.email_confirmed_at)))
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
	{
		reasons = probe_email(norm, normlen, true);
		/* an opt-out starting before the row is indexed: popsell_80_optout_recheck */
		BlacklistRowProbed();
	}

	/* C3: a globally opted-out email */
	if (reasons & (1u << BL_GLOBAL_OPTOUT))
	{
		if (src == SRC_CRM_MANUAL || src == SRC_PRIVATE_IMPORT)
		{
			/* an ambassador cannot bring it back: skip the row */
			BlacklistRowSkipped();
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
	/* C3 (v2): a remembered refusal; only the person's confirmed consent lifts it */
	if ((reasons & (1u << BL_INVITATION_REFUSED)) && init.amb != AO_GLOBAL_OPTOUT)
	{
		if (!SourceIsPendingKind(src))
		{
			init.amb = AO_INVITATION_DECLINED;
			note = "initial; the person refused this email's invitations";
		}
		else
			note = "initial; the person refused this email's invitations until this consent is confirmed";
	}
	if (definitive_status(reasons) >= 0)
		es = definitive_status(reasons);

	/* C3 (v2): an ambassador enters each email once */
	if (norm != NULL && (src == SRC_CRM_MANUAL || src == SRC_PRIVATE_IMPORT) &&
		!ISNULL(r, cols.ambassador_id))
		check_not_held(td->tg_relation, DatumGetInt64(VAL(r, cols.ambassador_id)), norm, 0, false);

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
	check_history_times(NULL, r, desc, now);
	/* who created the row is the product's to say, never the caller's (S13) */
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

/* ---------------------------------------------------------------------
 * Rows the brand saw before its own UPDATE of them
 *
 * A brand UPDATE with a WHERE clause needs the new row to pass the
 * brand's SELECT policy; a withdrawal or an email change the person asked
 * for hides the row.  The trigger remembers, for the current statement
 * only, the ids of rows the brand's own DML (PATH_STAFF) changed whose OLD
 * version the brand saw; popsell._brand_saw(id) lets the policy pass those
 * and nothing else (rows changed as side effects that the brand did not
 * see stay hidden).
 * ---------------------------------------------------------------------
 */
static HTAB *brand_saw_ids = NULL;
static TimestampTz brand_saw_stmt = 0;
static LocalTransactionId brand_saw_lxid = InvalidLocalTransactionId;

static LocalTransactionId
current_lxid(void)
{
#if PG_VERSION_NUM >= 170000
	return MyProc->vxid.lxid;
#else
	return MyProc->lxid;
#endif
}

static bool
brand_saw_current(void)
{
	return brand_saw_ids != NULL &&
		brand_saw_lxid == current_lxid() &&
		brand_saw_stmt == GetCurrentStatementStartTimestamp();
}

static void
brand_saw_remember(int64 id)
{
	bool		found;

	if (!brand_saw_current())
	{
		HASHCTL		ctl;

		if (brand_saw_ids != NULL)
			hash_destroy(brand_saw_ids);
		brand_saw_ids = NULL;
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(int64);
		brand_saw_ids = hash_create("popsell brand-seen contacts", 64, &ctl,
									HASH_ELEM | HASH_BLOBS);
		brand_saw_lxid = current_lxid();
		brand_saw_stmt = GetCurrentStatementStartTimestamp();
	}
	(void) hash_search(brand_saw_ids, &id, HASH_ENTER, &found);
}

PG_FUNCTION_INFO_V1(brand_saw);

/* popsell._brand_saw(id): see above; false for NULL. */
Datum
brand_saw(PG_FUNCTION_ARGS)
{
	int64		id;
	bool		found = false;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	id = PG_GETARG_INT64(0);
	if (brand_saw_current())
		(void) hash_search(brand_saw_ids, &id, HASH_FIND, &found);
	PG_RETURN_BOOL(found);
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
	if (path == PATH_STAFF &&
		!ISNULL(o, cols.restricted) && !DatumGetBool(VAL(o, cols.restricted)) &&
		!ISNULL(o, cols.source) && !ISNULL(o, cols.brand_optin) && !ISNULL(o, cols.partners_optin) &&
		!ContactIsPending((ContactSource) EnumIndex(ENUM_SOURCE, DatumGetObjectId(VAL(o, cols.source))),
						  ISNULL(o, cols.email_confirmed_at)) &&
		ContactIsBrandVisible((BrandOptin) EnumIndex(ENUM_BRAND, DatumGetObjectId(VAL(o, cols.brand_optin))),
							  DatumGetBool(VAL(o, cols.partners_optin))))
		brand_saw_remember(id);
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
	if (datum_changed(o, r, cols.tags, desc))
		check_tags_bounded(r, id);

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

	/*
	 * C2 (v2): consent belongs to an address.  A new address (not a mere
	 * case or whitespace change: both are normalized) ends the consent the
	 * old one gave: the ambassador opt-in starts again at new (a refusal,
	 * storage_only and social_media_only stay), the brand and partners opt-ins end, and the email status is
	 * the new address's.  A pending contact stays pending: the new address
	 * gets its own confirmation (queued by popsell_60_email_changed).
	 */
	if (email_changed)
	{
		bool		pending = SourceIsPendingKind(src) && ISNULL(r, cols.email_confirmed_at);

		if (pending)
			newv[FIELD_EMAIL_STATUS] = ES_UNVERIFIED;
		else
		{
			/*
			 * storage_only and social_media_only are what the person said
			 * (or the source allows), not consent of the old address: they
			 * stay, so an address change never makes such a row invitable.
			 */
			if ((!AmbIsOptedOut((AmbOptin) newv[FIELD_AMBASSADOR_OPTIN]) ||
				 newv[FIELD_AMBASSADOR_OPTIN] == AO_OPTIN_BLOG_PENDING) &&
				newv[FIELD_AMBASSADOR_OPTIN] != AO_STORAGE_ONLY &&
				newv[FIELD_AMBASSADOR_OPTIN] != AO_SOCIAL_MEDIA_ONLY)
				newv[FIELD_AMBASSADOR_OPTIN] = AO_NEW;
			newv[FIELD_BRAND_OPTIN] = BO_NO_OPTIN;
			newv[FIELD_PARTNERS_OPTIN] = 0;
			newv[FIELD_EMAIL_STATUS] = ES_OK;
		}
		row_set(r, cols.ambassador_optin,
				ObjectIdGetDatum(EnumOid(ENUM_AMB, newv[FIELD_AMBASSADOR_OPTIN])), false);
		row_set(r, cols.brand_optin,
				ObjectIdGetDatum(EnumOid(ENUM_BRAND, newv[FIELD_BRAND_OPTIN])), false);
		row_set(r, cols.partners_optin, BoolGetDatum(newv[FIELD_PARTNERS_OPTIN] != 0), false);
		row_set(r, cols.email_status,
				ObjectIdGetDatum(EnumOid(ENUM_EMAIL_STATUS, newv[FIELD_EMAIL_STATUS])), false);
		note = "email changed: the old address's consent ends";
	}

	/* C3 (v2): an ambassador holds each email once, also after an edit */
	if (email_changed && norm != NULL &&
		(src == SRC_CRM_MANUAL || src == SRC_PRIVATE_IMPORT) && !ISNULL(r, cols.ambassador_id))
		check_not_held(td->tg_relation, DatumGetInt64(VAL(r, cols.ambassador_id)), norm, id, true);

	if (norm != NULL)
	{
		reasons = probe_email(norm, normlen, email_changed);
		/* a new address gets a new index entry: popsell_80_optout_recheck */
		if (email_changed)
			BlacklistRowProbed();
		/* C3: an ambassador never stores a globally opted-out email */
		if (email_changed && (reasons & (1u << BL_GLOBAL_OPTOUT)) &&
			path == PATH_AMBASSADOR)
			ereport(ERROR,
					(errcode(ERRCODE_POPSELL_BLACKLISTED),
					 errmsg("contact %lld cannot take this email: its owner opted out of every ambassador",
							(long long) id),
					 errdetail("A globally opted-out email is never stored by an ambassador."),
					 errhint("Keep the previous address, or leave the email empty.")));
		if (email_changed && (reasons & (1u << BL_INVITATION_REFUSED)) &&
			newv[FIELD_AMBASSADOR_OPTIN] == AO_NEW)
		{
			newv[FIELD_AMBASSADOR_OPTIN] = AO_INVITATION_DECLINED;
			row_set(r, cols.ambassador_optin, ObjectIdGetDatum(EnumOid(ENUM_AMB, AO_INVITATION_DECLINED)), false);
			note = "email changed: the new address refused invitations";
		}
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
	 * C3 (v2): a refusal applies to every row with the email, also to rows
	 * that held it before the person refused: such a row (still new, so
	 * never re-confirmed by the person) is not invited.
	 */
	if (oldv[FIELD_AMBASSADOR_OPTIN] == AO_NEW &&
		newv[FIELD_AMBASSADOR_OPTIN] == AO_INVITATION_SENT && !ISNULL(r, cols.email))
	{
		if (norm == NULL)
		{
			norm = text_to_cstring(DatumGetTextPP(VAL(r, cols.email)));
			normlen = strlen(norm);
			reasons = probe_email(norm, normlen, false);
		}
		if (reasons & (1u << BL_INVITATION_REFUSED))
			ereport(ERROR,
					(errcode(ERRCODE_POPSELL_SENDING),
					 errmsg("contact %lld cannot be invited: the person refused invitations to this email",
							(long long) id),
					 errdetail("A refusal (declined, no answer, opt-out) is remembered for the email, for every ambassador."),
					 errhint("Wait for the person to come back through a form or an order.")));
	}

	/*
	 * C3 (v2): a brand sync updating a new row whose email was refused
	 * meanwhile keeps the refusal, as a brand sync inserting it would.
	 */
	if (path == PATH_BRAND_SYNC && oldv[FIELD_AMBASSADOR_OPTIN] == AO_NEW &&
		newv[FIELD_AMBASSADOR_OPTIN] != AO_NEW && !ISNULL(r, cols.email) &&
		AmbIsOptedIn((AmbOptin) newv[FIELD_AMBASSADOR_OPTIN]))
	{
		if (norm == NULL)
		{
			norm = text_to_cstring(DatumGetTextPP(VAL(r, cols.email)));
			normlen = strlen(norm);
			reasons = probe_email(norm, normlen, false);
		}
		if (reasons & (1u << BL_INVITATION_REFUSED))
		{
			newv[FIELD_AMBASSADOR_OPTIN] = AO_INVITATION_DECLINED;
			row_set(r, cols.ambassador_optin, ObjectIdGetDatum(EnumOid(ENUM_AMB, AO_INVITATION_DECLINED)), false);
			note = "brand sync: the person refused this email's invitations";
		}
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
			reasons = probe_email(norm, normlen, false);
		}
		if (!(reasons & (1u << BL_GLOBAL_OPTOUT)))
			QueueGlobalOptout(norm, path);
	}

	/*
	 * C3 (v2): a refusal is remembered for the email the contact had when
	 * it refused (an opted-out state carried to a new address is not that
	 * address's refusal).
	 */
	if (is_refusal(newv[FIELD_AMBASSADOR_OPTIN]) &&
		oldv[FIELD_AMBASSADOR_OPTIN] != newv[FIELD_AMBASSADOR_OPTIN] &&
		!ISNULL(r, cols.email) && !(reasons & (1u << BL_INVITATION_REFUSED)))
	{
		if (norm == NULL)
			norm = text_to_cstring(DatumGetTextPP(VAL(r, cols.email)));
		remember_refusal(norm);
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

	check_history_times(o, r, desc, now);
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

/*
 * popsell.contacts_optout_recheck(): AFTER INSERT OR UPDATE row trigger
 * popsell_80_optout_recheck, queued only for a row during whose writing
 * an opt-out started (WHEN popsell._optout_raced(); blacklist.c explains
 * the protocol).  The row is in the index by now: an opt-out that scans
 * the email's rows from here on finds it and waits for us.  One that
 * scanned before may have missed it; its entry is in the blacklist, so
 * probe again (waiting for an entry still being written).  A row that
 * does not carry what the blacklist now imposes was decided without that
 * entry: it cannot be stored as it is, and the writer retries (40001), when
 * its probe sees the entry and decides the row with it.  (A contact
 * collected with a consent still to confirm keeps its pending state when
 * its email is globally opted out: no check for it.)
 */
Datum
contacts_optout_recheck(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	tup;
	TupleDesc	desc;
	Row			r;
	ReasonSet	reasons;
	char	   *norm;
	int64		id;
	ContactSource src;
	int			amb;
	int			es;
	bool		pending_insert;

	CheckPopsellTrigger(fcinfo, "popsell.contacts_optout_recheck", "contacts", false, true);
	if (RestoringData() || TRIGGER_FIRED_BY_DELETE(td->tg_event) ||
		TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		return PointerGetDatum(NULL);
	tup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	desc = RelationGetDescr(td->tg_relation);
	resolve_cols(td->tg_relation);
	deform(tup, desc, &r);
	/*
	 * Only a new row or a new address is decided by the probe: a row that
	 * keeps its email is an existing row, which the opt-out's UPDATE
	 * reaches through its row lock (and which may legitimately differ
	 * from the blacklist, e.g. a confirmed consent lifting a global
	 * opt-out for that row).
	 */
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		Row			o;

		deform(td->tg_trigtuple, desc, &o);
		if (!datum_changed(&o, &r, cols.email, desc))
			return PointerGetDatum(NULL);
	}
	if (ISNULL(&r, cols.email) || ISNULL(&r, cols.id) || ISNULL(&r, cols.source) ||
		ISNULL(&r, cols.ambassador_optin) || ISNULL(&r, cols.email_status))
		return PointerGetDatum(NULL);
	norm = text_to_cstring(DatumGetTextPP(VAL(&r, cols.email)));
	reasons = probe_email(norm, strlen(norm), true);
	if (reasons == 0)
		return PointerGetDatum(NULL);

	id = DatumGetInt64(VAL(&r, cols.id));
	src = (ContactSource) EnumIndex(ENUM_SOURCE, DatumGetObjectId(VAL(&r, cols.source)));
	amb = EnumIndex(ENUM_AMB, DatumGetObjectId(VAL(&r, cols.ambassador_optin)));
	es = EnumIndex(ENUM_EMAIL_STATUS, DatumGetObjectId(VAL(&r, cols.email_status)));
	pending_insert = TRIGGER_FIRED_BY_INSERT(td->tg_event) && SourceIsPendingKind(src);
	if (((reasons & (1u << BL_GLOBAL_OPTOUT)) && amb != AO_GLOBAL_OPTOUT && !pending_insert) ||
		(definitive_status(reasons) >= 0 &&
		 es != ES_SPAM && es != ES_HARD_BOUNCE && es != ES_BLOCKED))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize contact %lld with a concurrent blacklisting of its email", (long long) id),
				 errdetail("The email was put on the blacklist while the row was being written, after its blacklist check."),
				 errhint("Retry the transaction.")));
	return PointerGetDatum(NULL);
}
