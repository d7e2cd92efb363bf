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
 * An insert's entry ("initial") is made by the BEFORE row trigger, before
 * the executor decides whether the row is stored: INSERT ... ON CONFLICT
 * may skip it or update a row another session was inserting.  The flush
 * keeps such an entry only if this transaction really stored the row.
 * The entry type's layout is checked at every flush (ALTER TYPE).
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
 * the same level rules.  The ledger buffer and the recheck queue are
 * written out early when full (completed rows of the current level only),
 * so a statement's memory does not grow with its rows.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"
#include "catalog.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "compat.h"
#include "executor/tuptable.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_type.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/fmgroids.h"
#include "utils/snapmgr.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/typcache.h"
#include "utils/inval.h"
#include "funcapi.h"

PG_FUNCTION_INFO_V1(contacts_after_statement);

/* entries written per INSERT; also the size the buffer shrinks back to */
#define LEDGER_BATCH 8192
/* contacts whose outbox is rechecked per DELETE (8 bytes each) */
#define RECHECK_BATCH 65536

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

/*
 * Contacts whose consent changed: unsent mail they may no longer get goes.
 * One id per changed row (8 bytes); their subtransaction levels, which
 * only grow along the array, are kept as runs.
 */
typedef struct LevelRun
{
	int			start;			/* index of the run's first id */
	int			nest_level;
} LevelRun;

static PendingOptout *pending = NULL;
static int	npending = 0;
static int	pending_cap = 0;

static int64 *recheck = NULL;
static int	nrecheck = 0;
static int	recheck_cap = 0;
static LevelRun *runs = NULL;
static int	nruns = 0;
static int	runs_cap = 0;

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

static void process_outbox_recheck(void);

void
QueueOutboxRecheck(int64 contact_id)
{
	int			level = GetCurrentTransactionNestLevel();

	/*
	 * A full batch of this level's contacts (rows already stored; this one
	 * is not yet) is rechecked now: a statement's memory stays bounded.
	 */
	if (nruns > 0 && runs[nruns - 1].nest_level == level &&
		nrecheck - runs[nruns - 1].start >= RECHECK_BATCH)
		process_outbox_recheck();
	recheck = grow(recheck, nrecheck, &recheck_cap, sizeof(int64), 64);
	if (nruns == 0 || runs[nruns - 1].nest_level != level)
	{
		runs = grow(runs, nruns, &runs_cap, sizeof(LevelRun), 8);
		runs[nruns].start = nrecheck;
		runs[nruns].nest_level = level;
		nruns++;
	}
	recheck[nrecheck++] = contact_id;
}

/* Index of the first queued id of LEVEL or deeper; drops them from the runs. */
static int
recheck_cut(int level)
{
	int			first = nrecheck;

	while (nruns > 0 && runs[nruns - 1].nest_level >= level)
		first = runs[--nruns].start;
	return first;
}

/*
 * Mail queued before a contact's consent changed must not go out after it:
 * drop the unsent outbox rows the sending guard would now refuse.
 */
static void
process_outbox_recheck(void)
{
	int			level = GetCurrentTransactionNestLevel();
	int			first;
	int			n;
	Datum	   *ids;
	Datum		arg;
	Oid			argtype = INT8ARRAYOID;
	Oid			save_userid;
	int			save_sec;
	Snapshot	snap;
	int			rc;

	/* this statement's and deeper levels' contacts, not an outer one's */
	first = recheck_cut(level);
	n = nrecheck - first;
	if (n == 0)
		return;
	ids = palloc(n * sizeof(Datum));
	for (int i = 0; i < n; i++)
		ids[i] = Int64GetDatum(recheck[first + i]);
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
	nruns = 0;
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
	if (recheck_cap > RECHECK_BATCH)
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
		nrecheck = recheck_cut(level);
		while (nbuffered > 0 && buffer[nbuffered - 1].nest_level >= level)
			nbuffered--;
		flushing = false;
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		/* what the subtransaction kept now belongs to its parent */
		for (int i = npending - 1; i >= 0 && pending[i].nest_level >= level; i--)
			pending[i].nest_level = level - 1;
		for (int i = nruns - 1; i >= 0 && runs[i].nest_level >= level; i--)
			runs[i].nest_level = level - 1;
		while (nruns >= 2 && runs[nruns - 2].nest_level == runs[nruns - 1].nest_level)
			nruns--;
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

/*
 * (S13) The consent-text setting names a version or hash of the text shown
 * (letters, digits and ._:/+=- , at most 128): the ledger survives
 * erasure, so it must never hold free text such as a name or an address.
 * The same rule is the CHECK constraint consent_events_consent_text_version.
 */
static void
check_consent_text(const char *t)
{
	int			n = 0;
	bool		ok = t[0] != '\0' && isalnum((unsigned char) t[0]);

	for (const char *p = t; ok && *p; p++, n++)
		ok = n < 128 && *p > 0 && (isalnum((unsigned char) *p) || strchr("._:/+=-", *p) != NULL);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_BAD_ARGUMENT),
				 errmsg("popsell.consent_text must name a version or hash of the consent text"),
				 errdetail("It is recorded in the consent ledger, which survives erasure: at most 128 letters, digits and . _ : / + = -, starting with a letter or digit."),
				 errhint("SET LOCAL popsell.consent_text to the text's version, e.g. terms-2026.12, or its SHA-256."),
				 errhidestmt(true)));
}

void
LedgerAppend(const LedgerEntry *e)
{
	BufferedEntry *b;
	const char *ctext = ConsentTextRef();

	if (ctext != NULL)
		check_consent_text(ctext);
	ensure_cxt();
	/* a full buffer is written first (the entries this level may write) */
	if (nbuffered >= LEDGER_BATCH && nbuffered >= buffer_cap)
		LedgerFlush();
	buffer = grow(buffer, nbuffered, &buffer_cap, sizeof(BufferedEntry), LEDGER_BATCH);

	b = &buffer[nbuffered];
	b->e = *e;
	b->role = GetOuterUserId();
	/* one copy of the setting for a run of entries (a bulk UPDATE) */
	if (ctext == NULL)
		b->consent_text = NULL;
	else if (nbuffered > 0 && buffer[nbuffered - 1].consent_text != NULL &&
			 strcmp(buffer[nbuffered - 1].consent_text, ctext) == 0)
		b->consent_text = buffer[nbuffered - 1].consent_text;
	else
		b->consent_text = MemoryContextStrdup(text_cxt, ctext);
	b->nest_level = GetCurrentTransactionNestLevel();
	nbuffered++;
}

/*
 * The INSERT every flush runs, from an array of popsell._consent_entry
 * (one composite per entry, built here field by field by name): the
 * executor applies the ledger's defaults, constraints, triggers and
 * column types; nothing here depends on the ledger's column order.
 */
static const char ledger_insert[] =
"INSERT INTO popsell.consent_events"
"  (contact_id, ambassador_id, changed,"
"   old_ambassador_optin, new_ambassador_optin, old_brand_optin, new_brand_optin,"
"   old_partners_optin, new_partners_optin, old_email_status, new_email_status,"
"   source, actor, path, actor_role, consent_text, note, occurred_at)"
" SELECT e.contact_id, e.ambassador_id, e.changed,"
"        e.old_ambassador_optin, e.new_ambassador_optin, e.old_brand_optin, e.new_brand_optin,"
"        e.old_partners_optin, e.new_partners_optin, e.old_email_status, e.new_email_status,"
"        e.source, e.actor, e.path, e.actor_role, e.consent_text, e.note, e.occurred_at"
"   FROM pg_catalog.unnest($1) AS e";

/* popsell._consent_entry, resolved by name; again after a re-install. */
typedef struct EntryType
{
	Oid			typid;
	Oid			arraytypid;
	TupleDesc	desc;			/* in TopMemoryContext */
	Oid			actor_oids[ACTOR__COUNT];
	AttrNumber	contact_id, ambassador_id, changed, old_amb, new_amb,
				old_brand, new_brand, old_partners, new_partners, old_es, new_es,
				source, actor, path, actor_role, consent_text, note, occurred_at;
} EntryType;

static EntryType et;
static bool et_valid = false;
static uint32 et_hash = 0;		/* syscache hash of the type's pg_type row */
static uint64 et_desc_id = 0;	/* the typcache's identifier of its layout */

/* Only a change of popsell._consent_entry itself (or a reset) matters. */
static void
entry_type_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	if (hashvalue == 0 || hashvalue == et_hash)
		et_valid = false;
}

static AttrNumber
entry_att(const char *name, Oid typid)
{
	for (int i = 0; i < et.desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(et.desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
		{
			if (OidIsValid(typid) && att->atttypid != typid)
				break;
			return (AttrNumber) (i + 1);
		}
	}
	ereport(ERROR,
			(errcode(ERRCODE_POPSELL_INSTALL),
			 errmsg("type popsell._consent_entry has no attribute \"%s\" of the expected type", name),
			 errhint("Reinstall the extension.")));
	return InvalidAttrNumber;	/* keep compiler quiet */
}

static bool
resolve_entry_type(void)
{
	static bool callback = false;
	TupleDesc	d;
	Oid			actor_type;

	/*
	 * ALTER TYPE (attributes added, dropped, retyped) leaves the pg_type row
	 * alone; the type cache gives the layout a new identifier: resolve the
	 * attributes and prepare the insert again.  (An ALTER TABLE of the
	 * ledger is the plan cache's: the insert names its columns.)
	 */
	if (et_valid &&
		lookup_type_cache(et.typid, TYPECACHE_TUPDESC)->tupDesc_identifier == et_desc_id)
		return true;
	et_valid = false;
	if (!callback)
	{
		CacheRegisterSyscacheCallback(TYPEOID, entry_type_invalidate, (Datum) 0);
		callback = true;
	}
	if (ledger_plan != NULL)
	{
		SPI_freeplan(ledger_plan);
		ledger_plan = NULL;
	}
	if (et.desc != NULL)
	{
		FreeTupleDesc(et.desc);
		et.desc = NULL;
	}
	et.typid = PopsellTypid("_consent_entry");
	et_hash = OidIsValid(et.typid) ?
		GetSysCacheHashValue1(TYPEOID, ObjectIdGetDatum(et.typid)) : 0;
	et.arraytypid = OidIsValid(et.typid) ? get_array_type(et.typid) : InvalidOid;
	if (!OidIsValid(et.arraytypid))
		return false;			/* an older schema: see flush_compat() */
	d = lookup_rowtype_tupdesc(et.typid, -1);
	et_desc_id = lookup_type_cache(et.typid, TYPECACHE_TUPDESC)->tupDesc_identifier;
	{
		/* the descriptor outlives this call */
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		et.desc = CreateTupleDescCopy(d);
		MemoryContextSwitchTo(old);
	}
	ReleaseTupleDesc(d);
	et.desc->tdtypeid = et.typid;
	et.desc->tdtypmod = -1;

	et.contact_id = entry_att("contact_id", INT8OID);
	et.ambassador_id = entry_att("ambassador_id", INT8OID);
	et.changed = entry_att("changed", TEXTARRAYOID);
	et.old_amb = entry_att("old_ambassador_optin", InvalidOid);
	et.new_amb = entry_att("new_ambassador_optin", InvalidOid);
	et.old_brand = entry_att("old_brand_optin", InvalidOid);
	et.new_brand = entry_att("new_brand_optin", InvalidOid);
	et.old_partners = entry_att("old_partners_optin", BOOLOID);
	et.new_partners = entry_att("new_partners_optin", BOOLOID);
	et.old_es = entry_att("old_email_status", InvalidOid);
	et.new_es = entry_att("new_email_status", InvalidOid);
	et.source = entry_att("source", InvalidOid);
	et.actor = entry_att("actor", InvalidOid);
	et.path = entry_att("path", TEXTOID);
	et.actor_role = entry_att("actor_role", NAMEOID);
	et.consent_text = entry_att("consent_text", TEXTOID);
	et.note = entry_att("note", TEXTOID);
	et.occurred_at = entry_att("occurred_at", TIMESTAMPTZOID);
	/* the enum attributes carry the OIDs of popsell's own enum types */
	EnumCheckType(ENUM_AMB, TupleDescAttr(et.desc, et.old_amb - 1)->atttypid);
	EnumCheckType(ENUM_AMB, TupleDescAttr(et.desc, et.new_amb - 1)->atttypid);
	EnumCheckType(ENUM_BRAND, TupleDescAttr(et.desc, et.old_brand - 1)->atttypid);
	EnumCheckType(ENUM_BRAND, TupleDescAttr(et.desc, et.new_brand - 1)->atttypid);
	EnumCheckType(ENUM_EMAIL_STATUS, TupleDescAttr(et.desc, et.old_es - 1)->atttypid);
	EnumCheckType(ENUM_EMAIL_STATUS, TupleDescAttr(et.desc, et.new_es - 1)->atttypid);
	EnumCheckType(ENUM_SOURCE, TupleDescAttr(et.desc, et.source - 1)->atttypid);
	actor_type = TupleDescAttr(et.desc, et.actor - 1)->atttypid;
	for (int i = 0; i < ACTOR__COUNT; i++)
	{
		et.actor_oids[i] = GetSysCacheOid2(ENUMTYPOIDNAME, Anum_pg_enum_oid,
										   ObjectIdGetDatum(actor_type),
										   CStringGetDatum(popsell_actor_names[i]));
		if (!OidIsValid(et.actor_oids[i]))
			ereport(ERROR,
					(errcode(ERRCODE_POPSELL_INSTALL),
					 errmsg("label %s of popsell.consent_actor is missing", popsell_actor_names[i]),
					 errhint("Reinstall the extension.")));
	}
	et_valid = true;
	return true;
}

/*
 * The ledger insert of an extension whose schema predates
 * popsell._consent_entry (the library is installed before ALTER EXTENSION
 * ... UPDATE runs): one prepared INSERT per entry, values by name.
 */
static const char ledger_insert_compat[] =
"INSERT INTO popsell.consent_events"
"  (contact_id, ambassador_id, changed,"
"   old_ambassador_optin, new_ambassador_optin, old_brand_optin, new_brand_optin,"
"   old_partners_optin, new_partners_optin, old_email_status, new_email_status,"
"   source, actor, path, actor_role, consent_text, note, occurred_at)"
" VALUES ($1, $2, $3, $4::popsell.ambassador_optin, $5::popsell.ambassador_optin,"
"         $6::popsell.brand_optin, $7::popsell.brand_optin, $8, $9,"
"         $10::popsell.email_status, $11::popsell.email_status, $12::popsell.contact_source,"
"         $13::popsell.consent_actor, $14, $15, $16, $17, $18)";

static SPIPlanPtr compat_plan = NULL;

static void
flush_compat(const BufferedEntry *entries, int n)
{
	Oid			types[18] = {INT8OID, INT8OID, TEXTARRAYOID, TEXTOID, TEXTOID, TEXTOID,
		TEXTOID, BOOLOID, BOOLOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		v[18];
	char		nl[18];

	if (compat_plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(ledger_insert_compat, 18, types);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "could not prepare the consent ledger insert: %s",
				 SPI_result_code_string(SPI_result));
		compat_plan = p;
	}
	for (int i = 0; i < n; i++)
	{
		const BufferedEntry *b = &entries[i];
		const LedgerEntry *e = &b->e;
		Datum		names[FIELD__COUNT];
		int			k = 0;
		char	   *role = GetUserNameFromId(b->role, true);
		const int	fv[8] = {e->old_v[FIELD_AMBASSADOR_OPTIN], e->new_v[FIELD_AMBASSADOR_OPTIN],
			e->old_v[FIELD_BRAND_OPTIN], e->new_v[FIELD_BRAND_OPTIN],
			e->old_v[FIELD_EMAIL_STATUS], e->new_v[FIELD_EMAIL_STATUS], (int) e->source, 0};
		const EnumKind fk[7] = {ENUM_AMB, ENUM_AMB, ENUM_BRAND, ENUM_BRAND,
		ENUM_EMAIL_STATUS, ENUM_EMAIL_STATUS, ENUM_SOURCE};
		const int	fa[7] = {3, 4, 5, 6, 9, 10, 11};

		CHECK_FOR_INTERRUPTS();
		memset(nl, ' ', sizeof(nl));
		for (int f = 0; f < FIELD__COUNT; f++)
			if (e->old_v[f] != e->new_v[f])
				names[k++] = CStringGetTextDatum(consent_field_names[f]);
		v[0] = Int64GetDatum(e->contact_id);
		v[1] = Int64GetDatum(e->ambassador_id);
		nl[1] = e->ambassador_id_null ? 'n' : ' ';
		v[2] = PointerGetDatum(construct_array(names, k, TEXTOID, -1, false, TYPALIGN_INT));
		for (int j = 0; j < 7; j++)
		{
			nl[fa[j]] = fv[j] < 0 ? 'n' : ' ';
			v[fa[j]] = fv[j] < 0 ? (Datum) 0 : CStringGetTextDatum(EnumLabel(fk[j], fv[j]));
		}
		v[7] = BoolGetDatum(e->old_v[FIELD_PARTNERS_OPTIN] > 0);
		nl[7] = e->old_v[FIELD_PARTNERS_OPTIN] < 0 ? 'n' : ' ';
		v[8] = BoolGetDatum(e->new_v[FIELD_PARTNERS_OPTIN] > 0);
		v[12] = CStringGetTextDatum(popsell_actor_names[PathActor(e->path)]);
		v[13] = CStringGetTextDatum(popsell_path_names[e->path]);
		v[14] = CStringGetTextDatum(role ? role : "?");
		v[15] = b->consent_text ? CStringGetTextDatum(b->consent_text) : (Datum) 0;
		nl[15] = b->consent_text ? ' ' : 'n';
		v[16] = e->note ? CStringGetTextDatum(e->note) : (Datum) 0;
		nl[16] = e->note ? ' ' : 'n';
		v[17] = TimestampTzGetDatum(e->at);
		if (SPI_execute_plan(compat_plan, v, nl, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not write popsell.consent_events");
	}
}

/* An insert's entry: no old values (the contact's initial state). */
static inline bool
is_initial(const LedgerEntry *e)
{
	for (int f = 0; f < FIELD__COUNT; f++)
		if (e->old_v[f] >= 0)
			return false;
	return true;
}

/*
 * Did this transaction store a contact row with this id by INSERT?  Some
 * version of the row (any: it may have been updated or deleted since) was
 * inserted by the current transaction or one of its live subtransactions,
 * and not as the new version of an UPDATE.  INSERT ... ON CONFLICT ran the
 * row trigger before it found the conflict: when it skipped the row (DO
 * NOTHING) or updated another transaction's (DO UPDATE), no such version
 * exists; a speculative insertion that lost its race was killed (its xmin
 * is invalid).
 */
static bool
inserted_here(IndexScanDesc scan, TupleTableSlot *slot, int64 id)
{
	ScanKeyData sk;

	ScanKeyInit(&sk, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(id));
	index_rescan(scan, &sk, 1, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		should_free;
		HeapTuple	tup = ExecFetchSlotHeapTuple(slot, false, &should_free);
		HeapTupleHeader h = tup->t_data;
		bool		mine = !(h->t_infomask & HEAP_UPDATED) &&
			TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetXmin(h));

		if (should_free)
			heap_freetuple(tup);
		if (mine)
			return true;
	}
	return false;
}

/*
 * Drop the insert entries among the N buffered from FIRST whose row the
 * executor did not store (ON CONFLICT, another session's row first); the
 * row trigger's own probe sees only committed rows and this transaction's,
 * so a concurrent insert of the same id is settled here, after the fact.
 * Returns how many entries are left (the kept ones move up).
 */
static int
drop_uninserted(int first, int n)
{
	Relation	heap = NULL;
	Relation	idx = NULL;
	TupleTableSlot *slot = NULL;
	IndexScanDesc scan = NULL;
	int			kept = 0;

	for (int i = 0; i < n; i++)
	{
		BufferedEntry *b = &buffer[first + i];

		if (is_initial(&b->e))
		{
			CHECK_FOR_INTERRUPTS();
			if (scan == NULL)
			{
				heap = table_open(PopsellRelid(REL_CONTACTS), AccessShareLock);
				idx = index_open(PopsellRelid(REL_CONTACTS_PKEY), AccessShareLock);
				slot = table_slot_create(heap, NULL);
				scan = index_beginscan_compat(heap, idx, SnapshotAny, 1, 0);
			}
			if (!inserted_here(scan, slot, b->e.contact_id))
				continue;
		}
		if (kept != i)
			buffer[first + kept] = *b;
		kept++;
	}
	if (scan != NULL)
	{
		index_endscan(scan);
		ExecDropSingleTupleTableSlot(slot);
		index_close(idx, AccessShareLock);
		table_close(heap, AccessShareLock);
	}
	nbuffered = first + kept;
	return kept;
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
	Datum	   *elems;
	Datum		arg;
	Datum		changed_arrays[1 << FIELD__COUNT];
	Datum	   *values;
	bool	   *isnull;
	int			dims[1];
	int			lbs[1] = {1};
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
	n = drop_uninserted(first, n);
	if (n == 0)
	{
		nbuffered = first;
		maybe_reset_text();
		flushing = false;
		return;
	}
	if (!resolve_entry_type())
	{
		EnterOwnerContext(&save_userid, &save_sec);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		flush_compat(&buffer[first], n);
		SPI_finish();
		LeaveOwnerContext(save_userid, save_sec);
		nbuffered = first;
		maybe_reset_text();
		flushing = false;
		return;
	}

	cxt = AllocSetContextCreate(CurrentMemoryContext, "popsell ledger flush",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	memset(changed_arrays, 0, sizeof(changed_arrays));
	values = palloc(et.desc->natts * sizeof(Datum));
	isnull = palloc(et.desc->natts * sizeof(bool));
	elems = palloc(n * sizeof(Datum));
	for (int i = 0; i < n; i++)
	{
		const BufferedEntry *b = &buffer[first + i];
		const LedgerEntry *e = &b->e;
		int			mask = 0;
		HeapTuple	tup;

		CHECK_FOR_INTERRUPTS();
		for (int a = 0; a < et.desc->natts; a++)
			isnull[a] = true;
		for (int f = 0; f < FIELD__COUNT; f++)
			if (e->old_v[f] != e->new_v[f])
				mask |= 1 << f;
		if (changed_arrays[mask] == (Datum) 0)
		{
			Datum		names[FIELD__COUNT];
			int			k = 0;

			for (int f = 0; f < FIELD__COUNT; f++)
				if (mask & (1 << f))
					names[k++] = CStringGetTextDatum(consent_field_names[f]);
			changed_arrays[mask] = PointerGetDatum(construct_array(names, k, TEXTOID, -1, false, TYPALIGN_INT));
		}
		if (b->role != last_role)
		{
			char	   *role = GetUserNameFromId(b->role, true);

			last_role_name = DirectFunctionCall1(namein, CStringGetDatum(role ? role : "?"));
			last_role = b->role;
		}

#define SETV(att, val) do { values[(att) - 1] = (val); isnull[(att) - 1] = false; } while (0)
#define SETENUM(att, kind, x) do { if ((x) >= 0) SETV(att, ObjectIdGetDatum(EnumOid(kind, (x)))); } while (0)
		SETV(et.contact_id, Int64GetDatum(e->contact_id));
		if (!e->ambassador_id_null)
			SETV(et.ambassador_id, Int64GetDatum(e->ambassador_id));
		SETV(et.changed, changed_arrays[mask]);
		SETENUM(et.old_amb, ENUM_AMB, e->old_v[FIELD_AMBASSADOR_OPTIN]);
		SETENUM(et.new_amb, ENUM_AMB, e->new_v[FIELD_AMBASSADOR_OPTIN]);
		SETENUM(et.old_brand, ENUM_BRAND, e->old_v[FIELD_BRAND_OPTIN]);
		SETENUM(et.new_brand, ENUM_BRAND, e->new_v[FIELD_BRAND_OPTIN]);
		if (e->old_v[FIELD_PARTNERS_OPTIN] >= 0)
			SETV(et.old_partners, BoolGetDatum(e->old_v[FIELD_PARTNERS_OPTIN] > 0));
		SETV(et.new_partners, BoolGetDatum(e->new_v[FIELD_PARTNERS_OPTIN] > 0));
		SETENUM(et.old_es, ENUM_EMAIL_STATUS, e->old_v[FIELD_EMAIL_STATUS]);
		SETENUM(et.new_es, ENUM_EMAIL_STATUS, e->new_v[FIELD_EMAIL_STATUS]);
		SETENUM(et.source, ENUM_SOURCE, (int) e->source);
		SETV(et.actor, ObjectIdGetDatum(et.actor_oids[PathActor(e->path)]));
		SETV(et.path, CStringGetTextDatum(popsell_path_names[e->path]));
		SETV(et.actor_role, last_role_name);
		if (b->consent_text)
			SETV(et.consent_text, CStringGetTextDatum(b->consent_text));
		if (e->note)
			SETV(et.note, CStringGetTextDatum(e->note));
		SETV(et.occurred_at, TimestampTzGetDatum(e->at));
#undef SETENUM
#undef SETV
		tup = heap_form_tuple(et.desc, values, isnull);
		elems[i] = HeapTupleGetDatum(tup);
	}
	dims[0] = n;
	arg = PointerGetDatum(construct_md_array(elems, NULL, 1, dims, lbs, et.typid,
											 -1, false, TYPALIGN_DOUBLE));
	MemoryContextSwitchTo(oldcxt);

	EnterOwnerContext(&save_userid, &save_sec);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (ledger_plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(ledger_insert, 1, &et.arraytypid);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "could not prepare the consent ledger insert: %s",
				 SPI_result_code_string(SPI_result));
		ledger_plan = p;
	}
	if (SPI_execute_plan(ledger_plan, &arg, NULL, false, 0) != SPI_OK_INSERT)
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
	BlacklistStatementEnd();
	LedgerFlush();
	process_pending_optouts();
	process_outbox_recheck();
	return PointerGetDatum(NULL);
}
