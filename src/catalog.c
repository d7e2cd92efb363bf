/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  The one place the C code turns names of popsell's relations and
 *	  types into OIDs.
 *
 * Names are resolved in schema popsell, never through search_path, once
 * per backend, and again after any relcache invalidation of one of them
 * (a re-created extension gives new OIDs).  Modules that keep state
 * derived from a relation's contents (the key cache, the blacklist's
 * Bloom filter) register a listener here instead of a callback of their
 * own.  Types are looked up through the syscache each time (cheap, and
 * callers keep what they derive from them).
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "popsell.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

static const char *const rel_names[REL__COUNT] = {
	"ambassadors", "ambassadors_pkey", "blacklist", "blacklist_email_hash_idx",
	"contacts", "contacts_pkey", "contacts_email_idx", "hash_keys"
};

static Oid	relids[REL__COUNT];
static bool relids_valid = false;
static bool callback_registered = false;

#define MAX_LISTENERS 4
static PopsellRelChanged listeners[MAX_LISTENERS];
static int	nlisteners = 0;

static void
tell(PopsellRel rel)
{
	for (int i = 0; i < nlisteners; i++)
		listeners[i] (rel);
}

static void
relcache_changed(Datum arg, Oid relid)
{
	if (relid == InvalidOid)
	{
		relids_valid = false;
		tell(REL__COUNT);
		return;
	}
	/* the OIDs last resolved stay for this comparison, valid or not */
	for (int i = 0; i < REL__COUNT; i++)
		if (relids[i] == relid)
		{
			relids_valid = false;
			tell((PopsellRel) i);
		}
}

static void
ensure_callback(void)
{
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(relcache_changed, (Datum) 0);
		callback_registered = true;
	}
}

void
PopsellOnRelChange(PopsellRelChanged fn)
{
	ensure_callback();
	for (int i = 0; i < nlisteners; i++)
		if (listeners[i] == fn)
			return;
	if (nlisteners >= MAX_LISTENERS)
		elog(ERROR, "too many popsell catalog listeners");
	listeners[nlisteners++] = fn;
}

/* OID of one of popsell's relations; PS001 when it is missing. */
Oid
PopsellRelid(PopsellRel rel)
{
	if (!relids_valid)
	{
		Oid			nsp;

		ensure_callback();
		nsp = get_namespace_oid("popsell", false);
		for (int i = 0; i < REL__COUNT; i++)
		{
			relids[i] = get_relname_relid(rel_names[i], nsp);
			if (!OidIsValid(relids[i]))
				ereport(ERROR,
						(errcode(ERRCODE_POPSELL_INSTALL),
						 errmsg("relation popsell.%s is missing", rel_names[i]),
						 errhint("Reinstall the extension.")));
		}
		relids_valid = true;
	}
	return relids[rel];
}

/* Column NAME of one of popsell's relations; PS001 when it is missing. */
AttrNumber
PopsellAttnum(PopsellRel rel, const char *name)
{
	AttrNumber	a = get_attnum(PopsellRelid(rel), name);

	if (a == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_INSTALL),
				 errmsg("popsell.%s has no column \"%s\"", rel_names[rel], name),
				 errhint("Reinstall the extension.")));
	return a;
}

/* OID of type popsell.NAME, or InvalidOid. */
Oid
PopsellTypid(const char *name)
{
	return GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid, CStringGetDatum(name),
						   ObjectIdGetDatum(get_namespace_oid("popsell", false)));
}
