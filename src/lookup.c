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
 * prefix at a time.  popsell therefore indexes lookup keys: the SHA-256 of
 * the stored (already normalized) text.
 *
 * popsell._lookup_key() is deliberately NOT leakproof: a condition of a
 * restricted role that calls it is evaluated after the row security
 * filter, never as an index condition, while popsell's own lookups (run
 * as the owner, whose policy is "true") use the index.
 * popsell._brand_lookup_key() computes the same key under another name for
 * the one index that holds only rows the brand sees (a partial index whose
 * predicate is the brand's policy), read by the owner-run
 * popsell.brand_contacts_by_email().  The key is a digest, so even a range
 * condition on it orders nothing a caller could walk.
 *
 *-------------------------------------------------------------------------
 */
#include "popsell.h"

#include "common/cryptohash.h"
#include "miscadmin.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(popsell_lookup_key);

/* SHA-256 of DATA into OUT (POPSELL_HASH_LEN bytes); never fails softly. */
void
LookupKey(const char *data, int len, uint8 *out)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) data, len) < 0 ||
		pg_cryptohash_final(ctx, out, POPSELL_HASH_LEN) < 0)
	{
		pg_cryptohash_free(ctx);
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute a lookup key")));
	}
	pg_cryptohash_free(ctx);
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

/*
 * popsell._lookup_key(text) and popsell._brand_lookup_key(text): the
 * lookup key of a stored value (STRICT: NULL gives NULL).  Raises no
 * input-dependent error.
 */
Datum
popsell_lookup_key(PG_FUNCTION_ARGS)
{
	PG_RETURN_BYTEA_P(LookupKeyBytea(PG_GETARG_TEXT_PP(0)));
}
