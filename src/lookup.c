/*-------------------------------------------------------------------------
 *
 * lookup.c
 *	  Lookup keys: what popsell indexes instead of a personal-data column
 *	  (SPEC S11).
 *
 * PostgreSQL pushes a caller's leakproof conditions (text =, <, >= ...)
 * below row security into index conditions, so an index on a plain
 * personal column lets a restricted role count, in EXPLAIN ANALYZE and in
 * pg_stat_* counters, rows it may not see, and walk their values one
 * prefix at a time.  popsell therefore indexes lookup keys: the
 * HMAC-SHA-256 of the stored (already normalized) text under the lookup
 * secret (popsell.lookup_secret, one row, created at install and never
 * changed: the indexes depend on it).
 *
 * popsell_internal._lookup_key() and popsell_internal._brand_lookup_key()
 * (the same key under another name, for the one index that holds only
 * rows the brand sees, read by the owner-run
 * popsell.brand_contacts_by_email()) live in a schema on which no popsell
 * role but the owner has USAGE.  Restricted roles hold EXECUTE: index
 * maintenance of their INSERT and UPDATE evaluates the index expressions
 * with their rights, and PostgreSQL checks EXECUTE there but not USAGE
 * on the function's schema, while naming a function in a query
 * (qualified, through search_path, or as a regproc/regprocedure literal)
 * requires USAGE.  So no restricted role computes a key for a value of
 * its choosing (else a merge join of its own sorted keys against a
 * lookup-key index would read hidden entries in key order, and "Rows
 * Removed by Filter" would tell whether a hidden row holds a guessed
 * address), and the planner never matches a lookup-key index to a
 * condition of theirs.  The functions are not leakproof either.
 *
 * The function itself therefore refuses nobody.  An earlier allow-list (a
 * BEFORE ROW trigger recording the row being written, and a check here
 * answering non-owners only for those values) cost a trigger call per
 * written row and still leaked: a writer could name the function in
 * another part of the same command.  With the schema barrier the only
 * callers left are index maintenance (the row's own values), popsell's
 * owner-run functions and superusers, all of which the allow-list
 * admitted anyway.
 *
 * The secret is read once per backend, directly from the table (no
 * privilege of the caller, no row security), and read again after a
 * relcache invalidation of popsell.lookup_secret (a restore replacing it).
 * A missing secret is an error, never an unkeyed value.  (Only a 1.x
 * schema run by this library before ALTER EXTENSION UPDATE, which has no
 * lookup-key index at all, gets the 1.x library's plain SHA-256 for its
 * C probes; see load_secret.)
 *
 *-------------------------------------------------------------------------
 */
#include "popsell.h"

#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/core_names.h>

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/cryptohash.h"
#include "access/htup_details.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(popsell_lookup_key);
PG_FUNCTION_INFO_V1(popsell_lookup_secret_guard);
PG_FUNCTION_INFO_V1(popsell_lookup_secret_changed);

#define LOOKUP_SECRET_LEN 32

/* The keyed context (secret set), kept for the backend. */
static EVP_MAC *hmac_alg = NULL;
static EVP_MAC_CTX *mac = NULL;
static bool secret_valid = false;
static Oid	secret_relid = InvalidOid;
static bool callback_registered = false;
static bool legacy_schema = false;

/*
 * Whether the lookup-key function exists (a 2.0 schema): in
 * popsell_internal, or in popsell while the 1.1 -> 2.0 upgrade has not yet
 * moved it.  Looked up by namespace OID, so no USAGE of the caller is
 * needed.
 */
static bool
lookup_key_function_exists(void)
{
	static const char *const schemas[] = {"popsell_internal", "popsell"};
	Oid			argtypes[1] = {TEXTOID};
	oidvector  *args = buildoidvector(argtypes, 1);

	for (int i = 0; i < lengthof(schemas); i++)
	{
		Oid			nsp = get_namespace_oid(schemas[i], true);

		if (OidIsValid(nsp) &&
			SearchSysCacheExists3(PROCNAMEARGSNSP, CStringGetDatum("_lookup_key"),
								  PointerGetDatum(args), ObjectIdGetDatum(nsp)))
			return true;
	}
	return false;
}

static void plain_digest(const char *data, int len, uint8 *out);

static void
lookup_failed(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("could not compute a lookup key: %s failed", what)));
}

static void
secret_changed(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == secret_relid)
	{
		secret_valid = false;
		secret_relid = InvalidOid;
	}
}

/*
 * Read popsell.lookup_secret into the keyed context.  With the latest
 * snapshot outside parallel mode (a restore replaces the secret and
 * rebuilds the indexes in one transaction), the query's inside.
 */
static void
load_secret(void)
{
	Oid			nsp;
	Relation	rel;
	Snapshot	snap;
	TableScanDesc scan;
	TupleTableSlot *slot;
	bytea	   *secret = NULL;
	int			nrows = 0;
	OSSL_PARAM	params[2];

	AcceptInvalidationMessages();
	if (secret_valid)
		return;
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(secret_changed, (Datum) 0);
		callback_registered = true;
	}
	nsp = get_namespace_oid("popsell", true);
	secret_relid = OidIsValid(nsp) ? get_relname_relid("lookup_secret", nsp) : InvalidOid;
	legacy_schema = false;
	if (!OidIsValid(secret_relid) && !lookup_key_function_exists())
	{
		/*
		 * A 1.x schema loaded with this library, before ALTER EXTENSION
		 * UPDATE: its email indexes hold plain emails, no lookup key, so
		 * no key computed here is ever stored or compared to a stored one
		 * (the upgrade creates the secret before its first lookup-key
		 * index).  Keep the 1.x library's value; look again next time.
		 */
		legacy_schema = true;
		return;
	}
	if (!OidIsValid(secret_relid))
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_INSTALL),
				 errmsg("popsell's lookup secret is missing: relation popsell.lookup_secret does not exist"),
				 errhint("Finish the upgrade with ALTER EXTENSION popsell UPDATE, or reinstall the extension.")));

	/* popsell's own read: no RLS, no privilege of the caller needed */
	rel = table_open(secret_relid, AccessShareLock);
	snap = RegisterSnapshot(IsInParallelMode() ? GetActiveSnapshot() : GetLatestSnapshot());
	scan = table_beginscan(rel, snap, 0, NULL);
	slot = table_slot_create(rel, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d;
		int			att = SPI_fnumber(RelationGetDescr(rel), "secret");

		if (att <= 0)
			break;
		d = slot_getattr(slot, att, &isnull);
		nrows++;
		if (!isnull)
			secret = DatumGetByteaPCopy(d);
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);

	if (nrows != 1 || secret == NULL || VARSIZE_ANY_EXHDR(secret) != LOOKUP_SECRET_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_INSTALL),
				 errmsg("popsell's lookup secret is missing or malformed: popsell.lookup_secret has %d row(s)", nrows),
				 errdetail("Lookup-key indexes (e.g. popsell.contacts_email_idx) are keyed by that secret."),
				 errhint("Restore popsell.lookup_secret from the backup the indexes were built with, then REINDEX the lookup-key indexes.")));

	if (hmac_alg == NULL)
	{
		hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
		if (hmac_alg == NULL)
			lookup_failed("EVP_MAC_fetch");
	}
	if (mac == NULL)
	{
		mac = EVP_MAC_CTX_new(hmac_alg);
		if (mac == NULL)
			lookup_failed("EVP_MAC_CTX_new");
	}
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *) "SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!EVP_MAC_init(mac, (const unsigned char *) VARDATA_ANY(secret),
					  VARSIZE_ANY_EXHDR(secret), params))
		lookup_failed("EVP_MAC_init");
	pfree(secret);
	secret_valid = true;
}

/* HMAC-SHA-256 of DATA under the lookup secret into OUT; never fails softly. */
void
LookupKey(const char *data, int len, uint8 *out)
{
	size_t		outl = 0;

	load_secret();
	if (legacy_schema)
	{
		plain_digest(data, len, out);
		return;
	}
	/* a NULL key re-initializes with the key already set */
	if (!EVP_MAC_init(mac, NULL, 0, NULL) ||
		!EVP_MAC_update(mac, (const unsigned char *) data, len) ||
		!EVP_MAC_final(mac, out, &outl, POPSELL_HASH_LEN) ||
		outl != POPSELL_HASH_LEN)
		lookup_failed("HMAC");
}

/* Lookup key of a text as a bytea datum. */
bytea *
LookupKeyBytea(text *t)
{
	bytea	   *result = palloc(VARHDRSZ + POPSELL_HASH_LEN);

	SET_VARSIZE(result, VARHDRSZ + POPSELL_HASH_LEN);
	LookupKey(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), (uint8 *) VARDATA(result));
	return result;
}

static void
plain_digest(const char *data, int len, uint8 *out)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) data, len) < 0 ||
		pg_cryptohash_final(ctx, out, POPSELL_HASH_LEN) < 0)
	{
		pg_cryptohash_free(ctx);
		lookup_failed("SHA-256");
	}
	pg_cryptohash_free(ctx);
}

/*
 * popsell_internal._lookup_key(text) and _brand_lookup_key(text): the
 * lookup key of a stored value (STRICT: NULL gives NULL).  Who may call
 * it is decided by the schema's USAGE (see the head of this file).
 */
Datum
popsell_lookup_key(PG_FUNCTION_ARGS)
{
	PG_RETURN_BYTEA_P(LookupKeyBytea(PG_GETARG_TEXT_PP(0)));
}

/*
 * Trigger on popsell.lookup_secret (BEFORE UPDATE OR DELETE FOR EACH ROW,
 * BEFORE TRUNCATE): the secret never changes, since every lookup-key
 * index depends on it.  Only a restore replaces the row the install
 * created with the backed-up one (then REINDEXes, see 12_restore.sql).
 */
Datum
popsell_lookup_secret_guard(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_MISUSE),
				 errmsg("popsell._lookup_secret_guard can only be called as a trigger")));
	if (TRIGGER_FIRED_BY_DELETE(td->tg_event) && RestoringData())
		return PointerGetDatum(td->tg_trigtuple);
	ereport(ERROR,
			(errcode(ERRCODE_POPSELL_IMMUTABLE),
			 errmsg("popsell.lookup_secret cannot be changed"),
			 errdetail("The lookup-key indexes of contacts and ambassadors are keyed by it; it is created at install and never rotated."),
			 errhint("A restore (pg_restore or psql as a superuser, row_security off) replaces it with the backed-up one.")));
	PG_RETURN_NULL();
}

/* AFTER ... FOR EACH STATEMENT on popsell.lookup_secret: every backend reloads it. */
Datum
popsell_lookup_secret_changed(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		strcmp(RelationGetRelationName(td->tg_relation), "lookup_secret") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_MISUSE),
				 errmsg("popsell._lookup_secret_changed must be an AFTER trigger on popsell.lookup_secret"),
				 errhint("Drop this trigger; popsell attaches its triggers itself.")));
	CacheInvalidateRelcacheByRelid(RelationGetRelid(td->tg_relation));
	secret_valid = false;
	return PointerGetDatum(NULL);
}
