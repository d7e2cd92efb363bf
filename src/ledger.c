/*-------------------------------------------------------------------------
 *
 * ledger.c
 *	  The consent ledger: one popsell.consent_events row per accepted
 *	  consent change, written in the same transaction as the change.
 *
 * The row trigger of popsell.contacts buffers entries in memory; they are
 * written straight into the ledger's heap and indexes once per statement
 * (by the AFTER STATEMENT trigger) or per full buffer, so a bulk load
 * plans no SQL per row.  Entries of an aborted (sub)transaction are
 * dropped with it, so a rejected change never leaves a ledger row, and a
 * flush at pre-commit is the last guard against losing one.
 *
 * The same statement-end trigger does the work a row trigger cannot do
 * while its statement runs: blacklisting an email a plain UPDATE opted out
 * globally (every row with it follows), and cancelling unsent mail that a
 * contact whose consent changed may no longer receive.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_enum.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "nodes/makefuncs.h"
#include "utils/inval.h"
#include "utils/rel.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(contacts_after_statement);

#define LEDGER_BATCH 8192

typedef struct BufferedEntry
{
	LedgerEntry e;
	Oid			role;
	char	   *consent_text;
	int			nest_level;
} BufferedEntry;

/* Emails a plain UPDATE opted out globally, blacklisted at statement end. */
typedef struct PendingOptout
{
	char	   *email;
	PopsellPath path;
	int			nest_level;
} PendingOptout;

static PendingOptout *pending = NULL;
static int	npending = 0;
static int	pending_cap = 0;

/* Contacts whose consent changed: unsent mail they may no longer get goes. */
static int64 *recheck = NULL;
static int	nrecheck = 0;
static int	recheck_cap = 0;
static int	recheck_level = 0;

static SPIPlanPtr recheck_plan = NULL;

static BufferedEntry *buffer = NULL;
static int	nbuffered = 0;
static MemoryContext ledger_cxt = NULL;
static bool flushing = false;


static void
ledger_reset(void)
{
	nbuffered = 0;
	if (ledger_cxt != NULL && npending == 0 && nrecheck == 0)
	{
		MemoryContextReset(ledger_cxt);
		pending = NULL;
		pending_cap = 0;
		recheck = NULL;
		recheck_cap = 0;
	}
	buffer = NULL;
}

static void
ensure_cxt(void)
{
	if (ledger_cxt == NULL)
		ledger_cxt = AllocSetContextCreate(TopMemoryContext, "popsell ledger",
										   ALLOCSET_DEFAULT_SIZES);
}

void
QueueGlobalOptout(const char *email, PopsellPath path)
{
	ensure_cxt();
	if (npending == pending_cap)
	{
		int			newcap = pending_cap ? pending_cap * 2 : 16;

		pending = pending ? repalloc(pending, newcap * sizeof(PendingOptout))
			: MemoryContextAlloc(ledger_cxt, newcap * sizeof(PendingOptout));
		pending_cap = newcap;
	}
	pending[npending].email = MemoryContextStrdup(ledger_cxt, email);
	pending[npending].path = path;
	pending[npending].nest_level = GetCurrentTransactionNestLevel();
	npending++;
}

void
QueueOutboxRecheck(int64 contact_id)
{
	ensure_cxt();
	if (nrecheck == recheck_cap)
	{
		int			newcap = recheck_cap ? recheck_cap * 2 : 64;

		recheck = recheck ? repalloc(recheck, newcap * sizeof(int64))
			: MemoryContextAlloc(ledger_cxt, newcap * sizeof(int64));
		recheck_cap = newcap;
	}
	if (nrecheck == 0)
		recheck_level = GetCurrentTransactionNestLevel();
	recheck[nrecheck++] = contact_id;
}

/*
 * Mail queued before a contact's consent changed must not go out after it:
 * drop the unsent outbox rows the sending guard would now refuse.
 */
static void
process_outbox_recheck(void)
{
	int			n = nrecheck;
	Datum	   *ids;
	Datum		arg;
	Oid			argtype = INT8ARRAYOID;
	Oid			save_userid;
	int			save_sec;
	Snapshot	snap;
	int			rc;

	if (n == 0)
		return;
	ids = palloc(n * sizeof(Datum));
	for (int i = 0; i < n; i++)
		ids[i] = Int64GetDatum(recheck[i]);
	nrecheck = 0;
	ledger_reset();
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
	int			n = npending;
	char	  **emails;
	PopsellPath *paths;
	Oid			save_userid;
	int			save_sec;
	Oid			argtype = TEXTOID;

	if (n == 0)
		return;
	/* take the queue: the nested updates must not see it */
	emails = palloc(n * sizeof(char *));
	paths = palloc(n * sizeof(PopsellPath));
	for (int i = 0; i < n; i++)
	{
		emails[i] = pstrdup(pending[i].email);
		paths[i] = pending[i].path;
	}
	npending = 0;
	ledger_reset();

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
ledger_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			if (nbuffered > 0)
				LedgerFlush();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			npending = 0;
			nrecheck = 0;
			ledger_reset();
			flushing = false;
			break;
		default:
			break;
	}
}

static void
ledger_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		int			level = GetCurrentTransactionNestLevel();

		while (npending > 0 && pending[npending - 1].nest_level >= level)
			npending--;
		if (nrecheck > 0 && recheck_level >= level)
			nrecheck = 0;		/* a statement's rechecks live in one level */

		/* entries are appended in order: drop the aborted tail */
		while (nbuffered > 0 && buffer[nbuffered - 1].nest_level >= level)
			nbuffered--;
		flushing = false;
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
	if (buffer == NULL)
		buffer = MemoryContextAlloc(ledger_cxt, LEDGER_BATCH * sizeof(BufferedEntry));
	if (nbuffered >= LEDGER_BATCH)
		LedgerFlush();
	if (buffer == NULL)
		buffer = MemoryContextAlloc(ledger_cxt, LEDGER_BATCH * sizeof(BufferedEntry));

	b = &buffer[nbuffered];
	b->e = *e;
	b->role = GetOuterUserId();
	b->consent_text = ctext ? MemoryContextStrdup(ledger_cxt, ctext) : NULL;
	b->nest_level = GetCurrentTransactionNestLevel();
	nbuffered++;
}

/* Columns of popsell.consent_events the ledger writes, by name. */
typedef struct LedgerCols
{
	Oid			relid;
	Oid			seqid;
	Oid			actor_type;
	Oid			actor_oids[ACTOR__COUNT];
	AttrNumber	id, contact_id, ambassador_id, changed, old_amb, new_amb,
				old_brand, new_brand, old_partners, new_partners, old_es, new_es,
				source, actor, path, actor_role, consent_text, note, occurred_at;
} LedgerCols;

static LedgerCols lc;

static void
ledger_invalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == lc.relid || relid == lc.seqid)
		lc.relid = InvalidOid;
}

static AttrNumber
ledger_att(const char *name)
{
	AttrNumber	a = get_attnum(lc.relid, name);

	if (a == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_INSTALL),
				 errmsg("popsell.consent_events has no column \"%s\"", name),
				 errhint("Reinstall the extension.")));
	return a;
}

static void
resolve_ledger(void)
{
	static bool callback = false;
	Oid			nsp;

	if (OidIsValid(lc.relid))
		return;
	if (!callback)
	{
		CacheRegisterRelcacheCallback(ledger_invalidate, (Datum) 0);
		callback = true;
	}
	nsp = get_namespace_oid("popsell", false);
	lc.relid = get_relname_relid("consent_events", nsp);
	lc.seqid = get_relname_relid("consent_events_id_seq", nsp);
	if (!OidIsValid(lc.relid) || !OidIsValid(lc.seqid))
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_INSTALL),
				 errmsg("popsell.consent_events or its sequence is missing"),
				 errhint("Reinstall the extension.")));
	lc.actor_type = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
									CStringGetDatum("consent_actor"), ObjectIdGetDatum(nsp));
	for (int i = 0; i < ACTOR__COUNT; i++)
	{
		lc.actor_oids[i] = GetSysCacheOid2(ENUMTYPOIDNAME, Anum_pg_enum_oid,
										   ObjectIdGetDatum(lc.actor_type),
										   CStringGetDatum(popsell_actor_names[i]));
		if (!OidIsValid(lc.actor_oids[i]))
			elog(ERROR, "label %s of popsell.consent_actor is missing", popsell_actor_names[i]);
	}
	lc.id = ledger_att("id");
	lc.contact_id = ledger_att("contact_id");
	lc.ambassador_id = ledger_att("ambassador_id");
	lc.changed = ledger_att("changed");
	lc.old_amb = ledger_att("old_ambassador_optin");
	lc.new_amb = ledger_att("new_ambassador_optin");
	lc.old_brand = ledger_att("old_brand_optin");
	lc.new_brand = ledger_att("new_brand_optin");
	lc.old_partners = ledger_att("old_partners_optin");
	lc.new_partners = ledger_att("new_partners_optin");
	lc.old_es = ledger_att("old_email_status");
	lc.new_es = ledger_att("new_email_status");
	lc.source = ledger_att("source");
	lc.actor = ledger_att("actor");
	lc.path = ledger_att("path");
	lc.actor_role = ledger_att("actor_role");
	lc.consent_text = ledger_att("consent_text");
	lc.note = ledger_att("note");
	lc.occurred_at = ledger_att("occurred_at");
}

/*
 * Write every buffered entry straight into popsell.consent_events and its
 * indexes, as COPY does: no SQL to plan, no row trigger (the ledger has
 * none for INSERT), no RLS (this is popsell's own write).  The ledger's
 * columns are all given here, so its defaults are not needed.
 */
void
LedgerFlush(void)
{
	int			n = nbuffered;
	Relation	rel;
	TupleDesc	desc;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *slot;
	BulkInsertState bis;
	CommandId	cid;
	MemoryContext oldcxt;
	MemoryContext rowcxt;
	Oid			last_role = InvalidOid;
	Datum		last_role_name = (Datum) 0;

	if (n == 0 || flushing)
		return;
	flushing = true;
	resolve_ledger();

	rel = table_open(lc.relid, RowExclusiveLock);
	desc = RelationGetDescr(rel);
	estate = CreateExecutorState();
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	ExecOpenIndices(rri, false);
	slot = ExecInitExtraTupleSlot(estate, desc, &TTSOpsVirtual);
	bis = GetBulkInsertState();
	cid = GetCurrentCommandId(true);
	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "popsell ledger row",
								   ALLOCSET_DEFAULT_SIZES);

	for (int i = 0; i < n; i++)
	{
		const LedgerEntry *e = &buffer[i].e;
		Datum	   *v;
		bool	   *nl;
		Datum		changed[FIELD__COUNT];
		int			nchanged = 0;

		oldcxt = MemoryContextSwitchTo(rowcxt);
		ExecClearTuple(slot);
		v = slot->tts_values;
		nl = slot->tts_isnull;
		for (int a = 0; a < desc->natts; a++)
			nl[a] = true;

		if (buffer[i].role != last_role)
		{
			char	   *role = GetUserNameFromId(buffer[i].role, true);

			MemoryContextSwitchTo(estate->es_query_cxt);
			last_role_name = DirectFunctionCall1(namein, CStringGetDatum(role ? role : "?"));
			last_role = buffer[i].role;
			MemoryContextSwitchTo(rowcxt);
		}
		for (int f = 0; f < FIELD__COUNT; f++)
			if (e->old_v[f] != e->new_v[f])
				changed[nchanged++] = CStringGetTextDatum(consent_field_names[f]);

#define SETV(att, val) do { v[(att) - 1] = (val); nl[(att) - 1] = false; } while (0)
#define SETENUM(att, kind, x) do { if ((x) >= 0) SETV(att, ObjectIdGetDatum(EnumOid(kind, (x)))); } while (0)
		SETV(lc.id, Int64GetDatum(nextval_internal(lc.seqid, false)));
		SETV(lc.contact_id, Int64GetDatum(e->contact_id));
		if (!e->ambassador_id_null)
			SETV(lc.ambassador_id, Int64GetDatum(e->ambassador_id));
		SETV(lc.changed, PointerGetDatum(construct_array(changed, nchanged, TEXTOID, -1, false, TYPALIGN_INT)));
		SETENUM(lc.old_amb, ENUM_AMB, e->old_v[FIELD_AMBASSADOR_OPTIN]);
		SETENUM(lc.new_amb, ENUM_AMB, e->new_v[FIELD_AMBASSADOR_OPTIN]);
		SETENUM(lc.old_brand, ENUM_BRAND, e->old_v[FIELD_BRAND_OPTIN]);
		SETENUM(lc.new_brand, ENUM_BRAND, e->new_v[FIELD_BRAND_OPTIN]);
		if (e->old_v[FIELD_PARTNERS_OPTIN] >= 0)
			SETV(lc.old_partners, BoolGetDatum(e->old_v[FIELD_PARTNERS_OPTIN] > 0));
		SETV(lc.new_partners, BoolGetDatum(e->new_v[FIELD_PARTNERS_OPTIN] > 0));
		SETENUM(lc.old_es, ENUM_EMAIL_STATUS, e->old_v[FIELD_EMAIL_STATUS]);
		SETENUM(lc.new_es, ENUM_EMAIL_STATUS, e->new_v[FIELD_EMAIL_STATUS]);
		SETENUM(lc.source, ENUM_SOURCE, (int) e->source);
		SETV(lc.actor, ObjectIdGetDatum(lc.actor_oids[PathActor(e->path)]));
		SETV(lc.path, CStringGetTextDatum(popsell_path_names[e->path]));
		SETV(lc.actor_role, last_role_name);
		if (buffer[i].consent_text)
			SETV(lc.consent_text, CStringGetTextDatum(buffer[i].consent_text));
		if (e->note)
			SETV(lc.note, CStringGetTextDatum(e->note));
		SETV(lc.occurred_at, TimestampTzGetDatum(e->at));
#undef SETENUM
#undef SETV
		ExecStoreVirtualTuple(slot);
		table_tuple_insert(rel, slot, cid, 0, bis);
		if (rri->ri_NumIndices > 0)
			ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL);
		ResetPerTupleExprContext(estate);
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(rowcxt);
	}

	FreeBulkInsertState(bis);
	ExecDropSingleTupleTableSlot(slot);
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	MemoryContextDelete(rowcxt);
	table_close(rel, NoLock);

	ledger_reset();
	flushing = false;
}

/*
 * AFTER INSERT OR UPDATE FOR EACH STATEMENT on popsell.contacts: write the
 * statement's ledger entries.
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
