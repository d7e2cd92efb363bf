/*-------------------------------------------------------------------------
 *
 * ledger.c
 *	  The consent ledger: one popsell.consent_events row per accepted
 *	  consent change, written in the same transaction as the change.
 *
 * The row trigger of popsell.contacts buffers entries in memory and they
 * are written set-based, one INSERT ... SELECT FROM unnest(...) per
 * statement (by the AFTER STATEMENT trigger) or per full buffer: a bulk
 * load then costs one ledger statement instead of one per row.  Entries of
 * an aborted (sub)transaction are dropped with it, so a rejected change
 * never leaves a ledger row, and a flush at pre-commit is the last guard
 * against losing one.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
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

static BufferedEntry *buffer = NULL;
static int	nbuffered = 0;
static MemoryContext ledger_cxt = NULL;
static bool flushing = false;

static SPIPlanPtr flush_plan = NULL;
static Oid	flush_plan_amb_type = InvalidOid;

#define NCOLS 18

static void
ledger_reset(void)
{
	nbuffered = 0;
	if (ledger_cxt != NULL)
		MemoryContextReset(ledger_cxt);
	buffer = NULL;
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

	if (ledger_cxt == NULL)
		ledger_cxt = AllocSetContextCreate(TopMemoryContext, "popsell ledger",
										   ALLOCSET_DEFAULT_SIZES);
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

static Datum
make_array(Datum *values, bool *nulls, int n, Oid elmtype)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(elmtype, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs,
											  elmtype, typlen, typbyval, typalign));
}

static Oid
popsell_type(const char *name)
{
	Oid			nsp = get_namespace_oid("popsell", false);
	Oid			t = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
									CStringGetDatum(name), ObjectIdGetDatum(nsp));

	if (!OidIsValid(t))
		elog(ERROR, "type popsell.%s does not exist", name);
	return t;
}

/* Write every buffered entry in one statement, as popsell_owner. */
void
LedgerFlush(void)
{
	int			n = nbuffered;
	Datum	   *v[NCOLS];
	bool	   *nl[NCOLS];
	Datum		args[NCOLS];
	Oid			elm[NCOLS];
	Oid			argtypes[NCOLS];
	Oid			amb_t,
				brand_t,
				es_t,
				src_t;
	Oid			save_userid;
	int			save_sec;
	MemoryContext oldcxt;
	MemoryContext tmp;

	if (n == 0 || flushing)
		return;
	flushing = true;

	tmp = AllocSetContextCreate(CurrentMemoryContext, "popsell ledger flush",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(tmp);

	amb_t = popsell_type("ambassador_optin");
	brand_t = popsell_type("brand_optin");
	es_t = popsell_type("email_status");
	src_t = popsell_type("contact_source");
	elm[0] = INT8OID;
	elm[1] = INT8OID;
	elm[2] = INT4OID;
	elm[3] = elm[4] = amb_t;
	elm[5] = elm[6] = brand_t;
	elm[7] = elm[8] = BOOLOID;
	elm[9] = elm[10] = es_t;
	elm[11] = src_t;
	elm[12] = TEXTOID;
	elm[13] = TEXTOID;
	elm[14] = NAMEOID;
	elm[15] = TEXTOID;
	elm[16] = TEXTOID;
	elm[17] = TIMESTAMPTZOID;
	for (int c = 0; c < NCOLS; c++)
	{
		v[c] = palloc(n * sizeof(Datum));
		nl[c] = palloc0(n * sizeof(bool));
	}

	for (int i = 0; i < n; i++)
	{
		const LedgerEntry *e = &buffer[i].e;
		int			mask = 0;
		char	   *role = GetUserNameFromId(buffer[i].role, true);

		for (int f = 0; f < FIELD__COUNT; f++)
			if (e->old_v[f] != e->new_v[f])
				mask |= 1 << f;
		v[0][i] = Int64GetDatum(e->contact_id);
		v[1][i] = Int64GetDatum(e->ambassador_id);
		nl[1][i] = e->ambassador_id_null;
		v[2][i] = Int32GetDatum(mask);
#define ENUMCOL(c, kind, x) \
		do { if ((x) < 0) nl[c][i] = true; else v[c][i] = ObjectIdGetDatum(EnumOid(kind, (x))); } while (0)
		ENUMCOL(3, ENUM_AMB, e->old_v[FIELD_AMBASSADOR_OPTIN]);
		ENUMCOL(4, ENUM_AMB, e->new_v[FIELD_AMBASSADOR_OPTIN]);
		ENUMCOL(5, ENUM_BRAND, e->old_v[FIELD_BRAND_OPTIN]);
		ENUMCOL(6, ENUM_BRAND, e->new_v[FIELD_BRAND_OPTIN]);
		if (e->old_v[FIELD_PARTNERS_OPTIN] < 0)
			nl[7][i] = true;
		else
			v[7][i] = BoolGetDatum(e->old_v[FIELD_PARTNERS_OPTIN] > 0);
		v[8][i] = BoolGetDatum(e->new_v[FIELD_PARTNERS_OPTIN] > 0);
		ENUMCOL(9, ENUM_EMAIL_STATUS, e->old_v[FIELD_EMAIL_STATUS]);
		ENUMCOL(10, ENUM_EMAIL_STATUS, e->new_v[FIELD_EMAIL_STATUS]);
		ENUMCOL(11, ENUM_SOURCE, (int) e->source);
#undef ENUMCOL
		v[12][i] = CStringGetTextDatum(popsell_actor_names[PathActor(e->path)]);
		v[13][i] = CStringGetTextDatum(popsell_path_names[e->path]);
		v[14][i] = DirectFunctionCall1(namein, CStringGetDatum(role ? role : "?"));
		if (buffer[i].consent_text)
			v[15][i] = CStringGetTextDatum(buffer[i].consent_text);
		else
			nl[15][i] = true;
		if (e->note)
			v[16][i] = CStringGetTextDatum(e->note);
		else
			nl[16][i] = true;
		v[17][i] = TimestampTzGetDatum(e->at);
	}
	for (int c = 0; c < NCOLS; c++)
	{
		args[c] = make_array(v[c], nl[c], n, elm[c]);
		argtypes[c] = get_array_type(elm[c]);
	}

	EnterOwnerContext(&save_userid, &save_sec);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (flush_plan != NULL && flush_plan_amb_type != amb_t)
	{
		/* the extension was re-created: its types have new OIDs */
		SPI_freeplan(flush_plan);
		flush_plan = NULL;
	}
	if (flush_plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(
									"INSERT INTO popsell.consent_events (contact_id, ambassador_id, changed,"
									" old_ambassador_optin, new_ambassador_optin, old_brand_optin, new_brand_optin,"
									" old_partners_optin, new_partners_optin, old_email_status, new_email_status,"
									" source, actor, path, actor_role, consent_text, note, occurred_at)"
									" SELECT u.c, u.a,"
									"  pg_catalog.array_remove(ARRAY["
									"   CASE WHEN (u.m OPERATOR(pg_catalog.&) 1) OPERATOR(pg_catalog.<>) 0 THEN 'ambassador_optin' END,"
									"   CASE WHEN (u.m OPERATOR(pg_catalog.&) 2) OPERATOR(pg_catalog.<>) 0 THEN 'brand_optin' END,"
									"   CASE WHEN (u.m OPERATOR(pg_catalog.&) 4) OPERATOR(pg_catalog.<>) 0 THEN 'partners_optin' END,"
									"   CASE WHEN (u.m OPERATOR(pg_catalog.&) 8) OPERATOR(pg_catalog.<>) 0 THEN 'email_status' END"
									"  ]::pg_catalog.text[], NULL),"
									"  u.oa, u.na, u.ob, u.nb, u.op, u.np, u.oe, u.ne, u.s,"
									"  u.actor::popsell.consent_actor, u.path, u.r, u.ct, u.note, u.at"
									" FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3),"
									"  pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6),"
									"  pg_catalog.unnest($7), pg_catalog.unnest($8), pg_catalog.unnest($9),"
									"  pg_catalog.unnest($10), pg_catalog.unnest($11), pg_catalog.unnest($12),"
									"  pg_catalog.unnest($13), pg_catalog.unnest($14), pg_catalog.unnest($15),"
									"  pg_catalog.unnest($16), pg_catalog.unnest($17), pg_catalog.unnest($18))"
									"   AS u(c, a, m, oa, na, ob, nb, op, np, oe, ne, s, actor, path, r, ct, note, at)",
									NCOLS, argtypes);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "could not prepare the consent ledger insert: %s",
				 SPI_result_code_string(SPI_result));
		flush_plan = p;
		flush_plan_amb_type = amb_t;
	}
	if (SPI_execute_plan(flush_plan, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not append to popsell.consent_events");
	SPI_finish();
	LeaveOwnerContext(save_userid, save_sec);

	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(tmp);
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
	return PointerGetDatum(NULL);
}
