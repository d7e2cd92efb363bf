/*-------------------------------------------------------------------------
 *
 * ledger.c
 *	  The consent ledger: one popsell.consent_events row per accepted
 *	  consent change, written in the same (sub)transaction as the change.
 *
 * The row trigger of popsell.contacts buffers entries in memory; they are
 * written by the executor, as one prepared INSERT ... SELECT FROM
 * unnest(arrays) run as popsell_owner, at the end of the statement (the
 * AFTER STATEMENT trigger) or when the buffer is full, so a bulk load
 * plans no SQL per row while the ledger's defaults, constraints, triggers
 * and column types apply as to any insert.
 *
 * Each entry remembers the subtransaction level it was made at.  A
 * statement's end writes only the entries of its own level and deeper (a
 * statement inside a PL/pgSQL EXCEPTION block must not write the entries
 * of the statement around it into a subtransaction that may roll back);
 * entries of a subtransaction that commits move to its parent's level,
 * those of one that aborts are dropped with it, so a rejected change never
 * leaves a ledger row.  A flush before COMMIT and PREPARE TRANSACTION is
 * the last guard against losing one.
 *
 * The same statement-end trigger does the work a row trigger cannot do
 * while its statement runs: blacklisting an email a plain UPDATE opted out
 * globally (every row with it follows), and cancelling unsent mail that a
 * contact whose consent changed may no longer receive.  Both queues follow
 * the same level rules.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

PG_FUNCTION_INFO_V1(contacts_after_statement);

/* entries written per INSERT; also the size the buffer shrinks back to */
#define LEDGER_BATCH 8192

typedef struct BufferedEntry
{
	LedgerEntry e;
	Oid			role;
	char	   *consent_text;	/* in text_cxt, or NULL */
	int			nest_level;
} BufferedEntry;

/* Emails a plain UPDATE opted out globally, blacklisted at statement end. */
typedef struct PendingOptout
{
	char	   *email;			/* in text_cxt */
	PopsellPath path;
	int			nest_level;
} PendingOptout;

/* Contacts whose consent changed: unsent mail they may no longer get goes. */
typedef struct Recheck
{
	int64		contact_id;
	int			nest_level;
} Recheck;

static PendingOptout *pending = NULL;
static int	npending = 0;
static int	pending_cap = 0;

static Recheck *recheck = NULL;
static int	nrecheck = 0;
static int	recheck_cap = 0;

static BufferedEntry *buffer = NULL;
static int	nbuffered = 0;
static int	buffer_cap = 0;

static SPIPlanPtr recheck_plan = NULL;
static SPIPlanPtr ledger_plan = NULL;

/* the arrays above live in ledger_cxt; strings in text_cxt, its child */
static MemoryContext ledger_cxt = NULL;
static MemoryContext text_cxt = NULL;
static bool flushing = false;

static void
ensure_cxt(void)
{
	if (ledger_cxt == NULL)
	{
		ledger_cxt = AllocSetContextCreate(TopMemoryContext, "popsell ledger",
										   ALLOCSET_DEFAULT_SIZES);
		text_cxt = AllocSetContextCreate(ledger_cxt, "popsell ledger text",
										 ALLOCSET_DEFAULT_SIZES);
	}
}

/* Strings go with the last entry or queued email that uses them. */
static void
maybe_reset_text(void)
{
	if (text_cxt != NULL && nbuffered == 0 && npending == 0)
		MemoryContextReset(text_cxt);
}

/* Make room for one more element of an array kept in ledger_cxt. */
static void *
grow(void *arr, int n, int *cap, Size elem, int first_cap)
{
	if (n < *cap)
		return arr;
	ensure_cxt();
	*cap = *cap ? *cap * 2 : first_cap;
	if (arr == NULL)
		return MemoryContextAlloc(ledger_cxt, (Size) *cap * elem);
	return repalloc_huge(arr, (Size) *cap * elem);
}

void
QueueGlobalOptout(const char *email, PopsellPath path)
{
	ensure_cxt();
	pending = grow(pending, npending, &pending_cap, sizeof(PendingOptout), 16);
	pending[npending].email = MemoryContextStrdup(text_cxt, email);
	pending[npending].path = path;
	pending[npending].nest_level = GetCurrentTransactionNestLevel();
	npending++;
}

void
QueueOutboxRecheck(int64 contact_id)
{
	recheck = grow(recheck, nrecheck, &recheck_cap, sizeof(Recheck), 64);
	recheck[nrecheck].contact_id = contact_id;
	recheck[nrecheck].nest_level = GetCurrentTransactionNestLevel();
	nrecheck++;
}

/*
 * Mail queued before a contact's consent changed must not go out after it:
 * drop the unsent outbox rows the sending guard would now refuse.
 */
static void
process_outbox_recheck(void)
{
	int			level = GetCurrentTransactionNestLevel();
	int			first = nrecheck;
	int			n;
	Datum	   *ids;
	Datum		arg;
	Oid			argtype = INT8ARRAYOID;
	Oid			save_userid;
	int			save_sec;
	Snapshot	snap;
	int			rc;

	/* this statement's and deeper levels' contacts, not an outer one's */
	while (first > 0 && recheck[first - 1].nest_level >= level)
		first--;
	n = nrecheck - first;
	if (n == 0)
		return;
	ids = palloc(n * sizeof(Datum));
	for (int i = 0; i < n; i++)
		ids[i] = Int64GetDatum(recheck[first + i].contact_id);
	nrecheck = first;
	arg = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));

	EnterOwnerContext(&save_userid, &save_sec);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (recheck_plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(
								"DELETE FROM popsell.outbox o"
								" USING popsell.contacts c"
								" WHERE c.id OPERATOR(pg_catalog.=) ANY ($1)"
								"   AND o.contact_id OPERATOR(pg_catalog.=) c.id"
								"   AND o.sent_at IS NULL"
								"   AND o.kind OPERATOR(pg_catalog.=) ANY ('{invitation,invitation_reminder,publication,email_confirmation}'::popsell.outbox_kind[])"
								"   AND (c.restricted"
								"        OR (o.kind OPERATOR(pg_catalog.=) 'publication' AND"
								"            (c.email_status OPERATOR(pg_catalog.<>) 'ok' OR c.ambassador_optin OPERATOR(pg_catalog.<>) ALL"
								"             ('{invitation_accepted,optin_brand_imported,optin_blog_verified,optin_internal_form,"
								"               optin_external_form,optin_order,optin_order_popin,optin_other}'::popsell.ambassador_optin[])))"
								"        OR (o.kind OPERATOR(pg_catalog.=) 'invitation' AND"
								"            (c.email_status OPERATOR(pg_catalog.<>) 'ok' OR c.ambassador_optin OPERATOR(pg_catalog.<>) ALL"
								"             ('{new,invitation_sent}'::popsell.ambassador_optin[])))"
								"        OR (o.kind OPERATOR(pg_catalog.=) 'invitation_reminder' AND"
								"            (c.email_status OPERATOR(pg_catalog.<>) 'ok' OR c.ambassador_optin OPERATOR(pg_catalog.<>) 'invitation_sent'))"
								"        OR (o.kind OPERATOR(pg_catalog.=) 'email_confirmation' AND"
								"            (c.email_confirmed_at IS NOT NULL OR c.email_status OPERATOR(pg_catalog.<>) ALL"
								"             ('{ok,unverified}'::popsell.email_status[]))))",
								1, &argtype);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "could not prepare the outbox recheck");
		recheck_plan = p;
	}

	/*
	 * With the latest snapshot: under REPEATABLE READ, mail queued by a
	 * transaction that committed while this one waited for the contact's
	 * row (the sending guard locks it FOR SHARE) is invisible to the
	 * transaction's snapshot, yet must go too.
	 */
	snap = RegisterSnapshot(GetLatestSnapshot());
	rc = SPI_execute_snapshot(recheck_plan, &arg, NULL, snap, InvalidSnapshot,
							  false, true, 0);
	UnregisterSnapshot(snap);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "could not cancel outbox rows");
	SPI_finish();
	LeaveOwnerContext(save_userid, save_sec);
}

/* Blacklist the queued emails (each applies to every row with it). */
static void
process_pending_optouts(void)
{
	int			level = GetCurrentTransactionNestLevel();
	int			first = npending;
	int			n;
	char	  **emails;
	PopsellPath *paths;
	Oid			save_userid;
	int			save_sec;
	Oid			argtype = TEXTOID;

	while (first > 0 && pending[first - 1].nest_level >= level)
		first--;
	n = npending - first;
	if (n == 0)
		return;
	/* take the queue: the nested updates must not see it */
	emails = palloc(n * sizeof(char *));
	paths = palloc(n * sizeof(PopsellPath));
	for (int i = 0; i < n; i++)
	{
		emails[i] = pstrdup(pending[first + i].email);
		paths[i] = pending[first + i].path;
	}
	npending = first;
	maybe_reset_text();

	EnterOwnerContext(&save_userid, &save_sec);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	for (int i = 0; i < n; i++)
	{
		Datum		arg = CStringGetTextDatum(emails[i]);
		int			nest = NewGUCNestLevel();

		/* the other rows change on the path of the change that queued it */
		(void) set_config_option("popsell.actor", popsell_path_names[paths[i]],
								 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
		if (SPI_execute_with_args("SELECT popsell._blacklist_add($1, 'global_optout')",
								  1, &argtype, &arg, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not blacklist a globally opted-out email");
		AtEOXact_GUC(true, nest);
	}
	SPI_finish();
	LeaveOwnerContext(save_userid, save_sec);
}

static void
forget_all(void)
{
	npending = 0;
	nrecheck = 0;
	nbuffered = 0;
	flushing = false;
	if (text_cxt != NULL)
		MemoryContextReset(text_cxt);
	/* a big statement's arrays are not kept for the life of the backend */
	if (buffer_cap > LEDGER_BATCH)
	{
		pfree(buffer);
		buffer = NULL;
		buffer_cap = 0;
	}
	if (recheck_cap > 65536)
	{
		pfree(recheck);
		recheck = NULL;
		recheck_cap = 0;
	}
}

static void
ledger_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (nbuffered > 0)
			{
				flushing = false;
				LedgerFlush();
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			forget_all();
			break;
		default:
			break;
	}
}

static void
ledger_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	/* called while the ending subtransaction is still the current one */
	int			level = GetCurrentTransactionNestLevel();

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		/* everything is appended in level order: drop the aborted tail */
		while (npending > 0 && pending[npending - 1].nest_level >= level)
			npending--;
		while (nrecheck > 0 && recheck[nrecheck - 1].nest_level >= level)
			nrecheck--;
		while (nbuffered > 0 && buffer[nbuffered - 1].nest_level >= level)
			nbuffered--;
		flushing = false;
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		/* what the subtransaction kept now belongs to its parent */
		for (int i = npending - 1; i >= 0 && pending[i].nest_level >= level; i--)
			pending[i].nest_level = level - 1;
		for (int i = nrecheck - 1; i >= 0 && recheck[i].nest_level >= level; i--)
			recheck[i].nest_level = level - 1;
		for (int i = nbuffered - 1; i >= 0 && buffer[i].nest_level >= level; i--)
			buffer[i].nest_level = level - 1;
	}
}

void
LedgerInit(void)
{
	RegisterXactCallback(ledger_xact_callback, NULL);
	RegisterSubXactCallback(ledger_subxact_callback, NULL);
}

void
LedgerAppend(const LedgerEntry *e)
{
	BufferedEntry *b;
	const char *ctext = ConsentTextRef();

	ensure_cxt();
	/* a full buffer is written first (the entries this level may write) */
	if (nbuffered >= LEDGER_BATCH && nbuffered >= buffer_cap)
		LedgerFlush();
	buffer = grow(buffer, nbuffered, &buffer_cap, sizeof(BufferedEntry), LEDGER_BATCH);

	b = &buffer[nbuffered];
	b->e = *e;
	b->role = GetOuterUserId();
	b->consent_text = ctext ? MemoryContextStrdup(text_cxt, ctext) : NULL;
	b->nest_level = GetCurrentTransactionNestLevel();
	nbuffered++;
}

/* The INSERT every flush runs: one parallel array per column of u. */
#define LEDGER_NARGS 18
static const char ledger_insert[] =
"INSERT INTO popsell.consent_events"
"  (contact_id, ambassador_id, changed,"
"   old_ambassador_optin, new_ambassador_optin, old_brand_optin, new_brand_optin,"
"   old_partners_optin, new_partners_optin, old_email_status, new_email_status,"
"   source, actor, path, actor_role, consent_text, note, occurred_at)"
" SELECT u.contact_id, u.ambassador_id, pg_catalog.string_to_array(u.changed, ','),"
"        u.old_amb::popsell.ambassador_optin, u.new_amb::popsell.ambassador_optin,"
"        u.old_brand::popsell.brand_optin, u.new_brand::popsell.brand_optin,"
"        u.old_partners, u.new_partners,"
"        u.old_es::popsell.email_status, u.new_es::popsell.email_status,"
"        u.source::popsell.contact_source, u.actor::popsell.consent_actor, u.path,"
"        u.actor_role, u.consent_text, u.note, u.occurred_at"
"   FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3),"
"                   pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6),"
"                   pg_catalog.unnest($7), pg_catalog.unnest($8), pg_catalog.unnest($9),"
"                   pg_catalog.unnest($10), pg_catalog.unnest($11), pg_catalog.unnest($12),"
"                   pg_catalog.unnest($13), pg_catalog.unnest($14), pg_catalog.unnest($15),"
"                   pg_catalog.unnest($16), pg_catalog.unnest($17), pg_catalog.unnest($18))"
"        AS u(contact_id, ambassador_id, changed, old_amb, new_amb, old_brand, new_brand,"
"             old_partners, new_partners, old_es, new_es, source, actor, path,"
"             actor_role, consent_text, note, occurred_at)";

enum
{
	A_CONTACT, A_AMBASSADOR, A_CHANGED, A_OLD_AMB, A_NEW_AMB, A_OLD_BRAND,
	A_NEW_BRAND, A_OLD_PARTNERS, A_NEW_PARTNERS, A_OLD_ES, A_NEW_ES, A_SOURCE,
	A_ACTOR, A_PATH, A_ROLE, A_CONSENT_TEXT, A_NOTE, A_AT
};

static const Oid ledger_argtypes[LEDGER_NARGS] = {
	INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	TEXTARRAYOID, TEXTARRAYOID, BOOLARRAYOID, BOOLARRAYOID, TEXTARRAYOID,
	TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	TEXTARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID
};

/* Element type of each argument array. */
static Oid
elem_type(int a)
{
	switch (ledger_argtypes[a])
	{
		case INT8ARRAYOID:
			return INT8OID;
		case BOOLARRAYOID:
			return BOOLOID;
		case TIMESTAMPTZARRAYOID:
			return TIMESTAMPTZOID;
		default:
			return TEXTOID;
	}
}

static Datum
enum_text(EnumKind kind, int v, bool *isnull)
{
	*isnull = v < 0;
	return v < 0 ? (Datum) 0 : CStringGetTextDatum(EnumLabel(kind, v));
}

/*
 * Write the buffered entries of the current level and deeper (the tail of
 * the buffer) through the executor, as popsell_owner.
 */
void
LedgerFlush(void)
{
	int			level = GetCurrentTransactionNestLevel();
	int			first = nbuffered;
	int			n;
	Datum	   *vals[LEDGER_NARGS];
	bool	   *nulls[LEDGER_NARGS];
	Datum		args[LEDGER_NARGS];
	Oid			last_role = InvalidOid;
	Datum		last_role_name = (Datum) 0;
	Oid			save_userid;
	int			save_sec;
	MemoryContext cxt;
	MemoryContext oldcxt;

	if (flushing)
		return;
	while (first > 0 && buffer[first - 1].nest_level >= level)
		first--;
	n = nbuffered - first;
	if (n == 0)
		return;
	flushing = true;

	cxt = AllocSetContextCreate(CurrentMemoryContext, "popsell ledger flush",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	for (int a = 0; a < LEDGER_NARGS; a++)
	{
		vals[a] = palloc(n * sizeof(Datum));
		nulls[a] = palloc0(n * sizeof(bool));
	}
	for (int i = 0; i < n; i++)
	{
		const BufferedEntry *b = &buffer[first + i];
		const LedgerEntry *e = &b->e;
		StringInfoData changed;

		CHECK_FOR_INTERRUPTS();
		initStringInfo(&changed);
		for (int f = 0; f < FIELD__COUNT; f++)
			if (e->old_v[f] != e->new_v[f])
				appendStringInfo(&changed, "%s%s", changed.len ? "," : "",
								 consent_field_names[f]);
		if (b->role != last_role)
		{
			char	   *role = GetUserNameFromId(b->role, true);

			last_role_name = CStringGetTextDatum(role ? role : "?");
			last_role = b->role;
		}

		vals[A_CONTACT][i] = Int64GetDatum(e->contact_id);
		vals[A_AMBASSADOR][i] = Int64GetDatum(e->ambassador_id);
		nulls[A_AMBASSADOR][i] = e->ambassador_id_null;
		vals[A_CHANGED][i] = CStringGetTextDatum(changed.data);
		vals[A_OLD_AMB][i] = enum_text(ENUM_AMB, e->old_v[FIELD_AMBASSADOR_OPTIN], &nulls[A_OLD_AMB][i]);
		vals[A_NEW_AMB][i] = enum_text(ENUM_AMB, e->new_v[FIELD_AMBASSADOR_OPTIN], &nulls[A_NEW_AMB][i]);
		vals[A_OLD_BRAND][i] = enum_text(ENUM_BRAND, e->old_v[FIELD_BRAND_OPTIN], &nulls[A_OLD_BRAND][i]);
		vals[A_NEW_BRAND][i] = enum_text(ENUM_BRAND, e->new_v[FIELD_BRAND_OPTIN], &nulls[A_NEW_BRAND][i]);
		vals[A_OLD_PARTNERS][i] = BoolGetDatum(e->old_v[FIELD_PARTNERS_OPTIN] > 0);
		nulls[A_OLD_PARTNERS][i] = e->old_v[FIELD_PARTNERS_OPTIN] < 0;
		vals[A_NEW_PARTNERS][i] = BoolGetDatum(e->new_v[FIELD_PARTNERS_OPTIN] > 0);
		vals[A_OLD_ES][i] = enum_text(ENUM_EMAIL_STATUS, e->old_v[FIELD_EMAIL_STATUS], &nulls[A_OLD_ES][i]);
		vals[A_NEW_ES][i] = enum_text(ENUM_EMAIL_STATUS, e->new_v[FIELD_EMAIL_STATUS], &nulls[A_NEW_ES][i]);
		vals[A_SOURCE][i] = enum_text(ENUM_SOURCE, (int) e->source, &nulls[A_SOURCE][i]);
		vals[A_ACTOR][i] = CStringGetTextDatum(popsell_actor_names[PathActor(e->path)]);
		vals[A_PATH][i] = CStringGetTextDatum(popsell_path_names[e->path]);
		vals[A_ROLE][i] = last_role_name;
		vals[A_CONSENT_TEXT][i] = b->consent_text ? CStringGetTextDatum(b->consent_text) : (Datum) 0;
		nulls[A_CONSENT_TEXT][i] = b->consent_text == NULL;
		vals[A_NOTE][i] = e->note ? CStringGetTextDatum(e->note) : (Datum) 0;
		nulls[A_NOTE][i] = e->note == NULL;
		vals[A_AT][i] = TimestampTzGetDatum(e->at);
	}
	for (int a = 0; a < LEDGER_NARGS; a++)
	{
		Oid			et = elem_type(a);
		int16		typlen;
		bool		typbyval;
		char		typalign;
		int			dims[1] = {n};
		int			lbs[1] = {1};

		get_typlenbyvalalign(et, &typlen, &typbyval, &typalign);
		args[a] = PointerGetDatum(construct_md_array(vals[a], nulls[a], 1, dims, lbs,
													 et, typlen, typbyval, typalign));
	}
	MemoryContextSwitchTo(oldcxt);

	EnterOwnerContext(&save_userid, &save_sec);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (ledger_plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(ledger_insert, LEDGER_NARGS, (Oid *) ledger_argtypes);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "could not prepare the consent ledger insert: %s",
				 SPI_result_code_string(SPI_result));
		ledger_plan = p;
	}
	if (SPI_execute_plan(ledger_plan, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write popsell.consent_events");
	if (SPI_processed != (uint64) n)
		elog(ERROR, "popsell.consent_events took %llu of %d ledger rows",
			 (unsigned long long) SPI_processed, n);
	SPI_finish();
	LeaveOwnerContext(save_userid, save_sec);
	MemoryContextDelete(cxt);

	nbuffered = first;
	maybe_reset_text();
	flushing = false;
}

/*
 * AFTER INSERT OR UPDATE FOR EACH STATEMENT on popsell.contacts: write the
 * statement's ledger entries, then its statement-end work.
 */
Datum
contacts_after_statement(PG_FUNCTION_ARGS)
{
	CheckPopsellTrigger(fcinfo, "popsell.contacts_after_statement", "contacts", false, false);
	LedgerFlush();
	process_pending_optouts();
	process_outbox_recheck();
	return PointerGetDatum(NULL);
}
