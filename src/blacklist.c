/*-------------------------------------------------------------------------
 *
 * blacklist.c
 *	  Probes of popsell.blacklist and of contacts by email, done directly
 *	  on popsell's own relations and indexes (resolved by OID in schema
 *	  popsell, never through search_path) with the latest snapshot.
 *
 * Why the latest snapshot: a global opt-out (popsell._blacklist_add) locks
 * popsell.contacts in SHARE ROW EXCLUSIVE mode, so it waits for every
 * transaction that is inserting or updating contacts and blocks new ones
 * until it commits.  An insert that waited for it must then see its
 * blacklist row even under REPEATABLE READ, whose transaction snapshot
 * predates the opt-out; like PostgreSQL's own foreign-key checks, the probe
 * reads the latest committed state.  The opt-out side, in turn, refuses to
 * go on under REPEATABLE READ when contact rows of the email were committed
 * after its snapshot (popsell._email_rows_unseen), so neither order lets an
 * email escape a global opt-out.
 *
 *-------------------------------------------------------------------------
 */
#include "consent.h"
#include "catalog.h"

#include "access/genam.h"
#include "access/hash.h"
#include "access/nbtree.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_collation.h"
#include "catalog/namespace.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "storage/bufmgr.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "storage/proc.h"

PG_FUNCTION_INFO_V1(email_rows_unseen);

typedef struct RelIds
{
	Oid			blacklist;
	Oid			blacklist_pkey;
	Oid			contacts;
	Oid			contacts_email_idx;
	Oid			contacts_pkey;
	Oid			ambassadors;
	Oid			ambassadors_pkey;
	AttrNumber	reason_attno;
	AttrNumber	hash_attno;
} RelIds;

static RelIds ids;
static bool ids_valid = false;

/*
 * A Bloom filter of the blacklist's hashes, kept per backend once one
 * statement has probed enough rows to be worth it (a bulk import), so that the common
 * case, an email that is not blacklisted, costs no index probe.  Every
 * write to popsell.blacklist sends a relcache invalidation (statement
 * trigger), which drops the filter; every probe takes pending
 * invalidations first, so an entry committed while a long statement runs
 * (through popsell's functions or a direct write) is seen by the rows it
 * probes afterwards.  The filter only says "maybe": an entry counts only
 * once its full digest is compared (BlacklistReasons).  The digests are
 * HMAC outputs, uniformly random already: their bytes are the hash
 * functions.
 */
#define BLOOM_AFTER_PROBES	2000
#define BLOOM_K				8	/* bits set per entry, all in one 64-byte block */

static uint64 *bloom = NULL;
static uint64 bloom_blocks_mask = 0;	/* number of 512-bit blocks - 1 */
static bool bloom_valid = false;
static int64 probes_without_bloom = 0;
static TimestampTz probes_stmt = 0;	/* statement the probes were counted in */
static LocalTransactionId probes_lxid = InvalidLocalTransactionId;

/* catalog.c tells us when one of popsell's relations changed */
static void
rel_changed(PopsellRel rel)
{
	ids_valid = false;
	if (rel == REL_BLACKLIST || rel == REL__COUNT)
	{
		bloom_valid = false;
		probes_without_bloom = 0;
	}
}

/*
 * A blocked Bloom filter: the first 8 digest bytes pick a 64-byte block,
 * the next 8 bytes give the bit positions inside it, so a probe touches a
 * single cache line.
 */
static inline uint64 *
bloom_block(const uint8 *digest, uint16 *bits)
{
	uint64		h1;
	uint64		h2;

	memcpy(&h1, digest, sizeof(h1));
	memcpy(&h2, digest + 8, sizeof(h2));
	for (int i = 0; i < BLOOM_K; i++)
		bits[i] = (uint16) ((h2 >> (i * 8)) & 0xFF) | (uint16) (((h1 >> (56 + (i % 8))) & 1) << 8);
	return &bloom[(h1 & bloom_blocks_mask) * 8];
}

static void
bloom_add(const uint8 *digest)
{
	uint16		bits[BLOOM_K];
	uint64	   *block = bloom_block(digest, bits);

	for (int i = 0; i < BLOOM_K; i++)
		block[bits[i] >> 6] |= UINT64CONST(1) << (bits[i] & 63);
}

static bool
bloom_maybe(const uint8 *digest)
{
	uint16		bits[BLOOM_K];
	uint64	   *block = bloom_block(digest, bits);

	for (int i = 0; i < BLOOM_K; i++)
		if (!(block[bits[i] >> 6] & (UINT64CONST(1) << (bits[i] & 63))))
			return false;
	return true;
}

/* Build the filter from every blacklist row visible to the latest snapshot. */
static void
bloom_build(void)
{
	Relation	heap;
	Snapshot	snap;
	TableScanDesc scan;
	TupleTableSlot *slot;
	AttrNumber	hash_attno;
	double		ntuples;
	uint64		nblocks = 2;

	heap = table_open(ids.blacklist, AccessShareLock);
	/* opening may have processed an invalidation that reset us */
	ntuples = Max(heap->rd_rel->reltuples, RelationGetNumberOfBlocks(heap) * 100.0);
	/* about 16 bits per entry, 64 MB at most */
	while (nblocks * 512 < (uint64) (ntuples * 16) && nblocks < (UINT64CONST(1) << 20))
		nblocks <<= 1;
	if (bloom != NULL)
		pfree(bloom);
	bloom = MemoryContextAllocHuge(TopMemoryContext, nblocks * 64);
	memset(bloom, 0, nblocks * 64);
	bloom_blocks_mask = nblocks - 1;

	hash_attno = get_attnum(ids.blacklist, "email_hash");
	snap = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(heap, snap, 0, NULL);
	slot = table_slot_create(heap, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, hash_attno, &isnull);
		bytea	   *b;

		if (isnull)
			continue;
		b = DatumGetByteaPP(d);
		if (VARSIZE_ANY_EXHDR(b) >= 16)
			bloom_add((const uint8 *) VARDATA_ANY(b));
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(heap, AccessShareLock);
	bloom_valid = true;
}

static void
resolve_ids(void)
{
	if (ids_valid)
		return;
	PopsellOnRelChange(rel_changed);
	ids.blacklist = PopsellRelid(REL_BLACKLIST);
	ids.blacklist_pkey = PopsellRelid(REL_BLACKLIST_HASH_IDX);
	ids.contacts = PopsellRelid(REL_CONTACTS);
	ids.contacts_email_idx = PopsellRelid(REL_CONTACTS_EMAIL_IDX);
	ids.contacts_pkey = PopsellRelid(REL_CONTACTS_PKEY);
	ids.ambassadors = PopsellRelid(REL_AMBASSADORS);
	ids.ambassadors_pkey = PopsellRelid(REL_AMBASSADORS_PKEY);
	ids.reason_attno = PopsellAttnum(REL_BLACKLIST, "reason");
	ids.hash_attno = PopsellAttnum(REL_BLACKLIST, "email_hash");
	ids_valid = true;
}

/* Is the stored bytea D exactly DIGEST? */
static bool
digest_equals(Datum d, const uint8 *digest)
{
	bytea	   *b = DatumGetByteaPP(d);
	bool		eq;

	eq = VARSIZE_ANY_EXHDR(b) == POPSELL_HASH_LEN &&
		memcmp(VARDATA_ANY(b), digest, POPSELL_HASH_LEN) == 0;
	if ((Pointer) b != DatumGetPointer(d))
		pfree(b);
	return eq;
}

/*
 * Blacklist reasons recorded for any of the hashes (one per live key),
 * as one bit per BlacklistReason.  Both structures consulted are lossy
 * (the Bloom filter answers "maybe", the hash index returns every entry
 * sharing a 32-bit code): a reason counts only for an entry whose stored
 * digest is byte for byte one of HASHES, as the SQL-side checks compare.
 */
uint32
BlacklistReasons(const PopsellHash *h, int n)
{
	Relation	heap;
	Relation	idx;
	Snapshot	snap;
	TupleTableSlot *slot;
	IndexScanDesc scan;
	uint32		found = 0;
	bytea	   *key;

	/* a blacklist write committed since the last probe drops the filter */
	AcceptInvalidationMessages();
	resolve_ids();
	/*
	 * Only a statement that probes many emails (a bulk load) builds the
	 * filter: single-row statements of an application, however many a
	 * connection sends, keep probing the index rather than pay a scan of
	 * the whole blacklist.
	 */
	if (!bloom_valid &&
		(probes_lxid != MyProcLocalTransactionId() ||
		 probes_stmt != GetCurrentStatementStartTimestamp()))
	{
		probes_lxid = MyProcLocalTransactionId();
		probes_stmt = GetCurrentStatementStartTimestamp();
		probes_without_bloom = 0;
	}
	if (!bloom_valid && ++probes_without_bloom >= BLOOM_AFTER_PROBES)
		bloom_build();
	if (bloom_valid)
	{
		bool		maybe = false;

		for (int i = 0; i < n && !maybe; i++)
			maybe = bloom_maybe(h[i].digest);
		if (!maybe)
			return 0;
	}

	key = palloc(VARHDRSZ + POPSELL_HASH_LEN);
	heap = table_open(ids.blacklist, AccessShareLock);
	idx = index_open(ids.blacklist_pkey, AccessShareLock);
	snap = RegisterSnapshot(GetLatestSnapshot());
	slot = table_slot_create(heap, NULL);
	scan = index_beginscan_compat(heap, idx, snap, 1, 0);

	SET_VARSIZE(key, VARHDRSZ + POPSELL_HASH_LEN);
	for (int i = 0; i < n; i++)
	{
		ScanKeyData sk;

		memcpy(VARDATA(key), h[i].digest, POPSELL_HASH_LEN);
		ScanKeyInit(&sk, 1, HTEqualStrategyNumber, F_BYTEAEQ, PointerGetDatum(key));
		index_rescan(scan, &sk, 1, NULL, 0);
		while (index_getnext_slot(scan, ForwardScanDirection, slot))
		{
			bool		isnull;
			Datum		d;

			/*
			 * A hash index returns every entry whose 32-bit hash code
			 * matches: only an entry with the very digest counts.
			 */
			d = slot_getattr(slot, ids.hash_attno, &isnull);
			if (isnull || !digest_equals(d, h[i].digest))
				continue;
			d = slot_getattr(slot, ids.reason_attno, &isnull);
			if (!isnull)
				found |= 1u << EnumIndex(ENUM_REASON, DatumGetObjectId(d));
		}
	}

	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snap);
	index_close(idx, AccessShareLock);
	table_close(heap, AccessShareLock);
	pfree(key);
	return found;
}

/* Is a contact row with this email committed but invisible to MINE? */
static bool
any_row_unseen(Relation heap, Relation idx, Snapshot latest, Snapshot mine, text *email)
{
	TupleTableSlot *slot = table_slot_create(heap, NULL);
	IndexScanDesc scan = index_beginscan_compat(heap, idx, latest, 1, 0);
	ScanKeyData sk;
	bool		unseen = false;

	/* contacts_email_idx holds lookup keys, not emails (SPEC S11) */
	ScanKeyInit(&sk, 1, BTEqualStrategyNumber, F_BYTEAEQ,
				PointerGetDatum(LookupKeyBytea(email)));
	index_rescan(scan, &sk, 1, NULL, 0);
	while (!unseen && index_getnext_slot(scan, ForwardScanDirection, slot))
		unseen = !table_tuple_satisfies_snapshot(heap, slot, mine);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	return unseen;
}

/*
 * popsell._email_rows_unseen(email): whether contact rows with this
 * (normalized) email were committed after the transaction's snapshot, so
 * that an UPDATE in this transaction would miss them.  Only possible under
 * REPEATABLE READ or SERIALIZABLE.
 */
Datum
email_rows_unseen(PG_FUNCTION_ARGS)
{
	text	   *email = PG_GETARG_TEXT_PP(0);
	Relation	heap;
	Relation	idx;
	Snapshot	latest;
	Snapshot	mine;
	bool		unseen;

	if (!IsolationUsesXactSnapshot())
		PG_RETURN_BOOL(false);
	resolve_ids();
	heap = table_open(ids.contacts, AccessShareLock);
	idx = index_open(ids.contacts_email_idx, AccessShareLock);
	latest = RegisterSnapshot(GetLatestSnapshot());
	mine = RegisterSnapshot(GetTransactionSnapshot());
	unseen = any_row_unseen(heap, idx, latest, mine, email);
	UnregisterSnapshot(mine);
	UnregisterSnapshot(latest);
	index_close(idx, AccessShareLock);
	table_close(heap, AccessShareLock);
	PG_RETURN_BOOL(unseen);
}

/*
 * Does ambassador ID exist?  Only for a clear PS200 before the foreign key
 * says it with its own code; the foreign key still checks.  Ids seen in
 * this transaction are remembered (a bulk load names few ambassadors).
 */
#define KNOWN_SLOTS 1024
static int64 known_ids[KNOWN_SLOTS];
static LocalTransactionId known_lxid = InvalidLocalTransactionId;

bool
AmbassadorExists(int64 id)
{
	int			slot = (int) ((uint64) id % KNOWN_SLOTS);
	Relation	heap;
	Relation	idx;
	TupleTableSlot *tslot;
	IndexScanDesc scan;
	ScanKeyData sk;
	bool		found;

	if (known_lxid != MyProcLocalTransactionId())
	{
		memset(known_ids, 0, sizeof(known_ids));
		known_lxid = MyProcLocalTransactionId();
	}
	if (id != 0 && known_ids[slot] == id)
		return true;

	resolve_ids();
	heap = table_open(ids.ambassadors, AccessShareLock);
	idx = index_open(ids.ambassadors_pkey, AccessShareLock);
	tslot = table_slot_create(heap, NULL);
	scan = index_beginscan_compat(heap, idx, GetActiveSnapshot(), 1, 0);
	ScanKeyInit(&sk, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(id));
	index_rescan(scan, &sk, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, tslot);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(tslot);
	index_close(idx, AccessShareLock);
	table_close(heap, AccessShareLock);
	if (found)
		known_ids[slot] = id;
	return found;
}

/*
 * Is there already a contact row with this id, committed or written by
 * this transaction (this statement included)?  An INSERT of such an id
 * is not going to store its row: it fails, or INSERT ... ON CONFLICT
 * skips it or updates the existing row instead, so it gets no "initial"
 * ledger row.  (A row another transaction is inserting at the same moment
 * is not seen: at worst an extra row, never a lost one.)
 */
bool
ContactIdExists(int64 id)
{
	Relation	heap;
	Relation	idx;
	TupleTableSlot *tslot;
	IndexScanDesc scan;
	ScanKeyData sk;
	bool		found;

	resolve_ids();
	heap = table_open(ids.contacts, AccessShareLock);
	idx = index_open(ids.contacts_pkey, AccessShareLock);
	tslot = table_slot_create(heap, NULL);
	scan = index_beginscan_compat(heap, idx, SnapshotSelf, 1, 0);
	ScanKeyInit(&sk, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(id));
	index_rescan(scan, &sk, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, tslot);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(tslot);
	index_close(idx, AccessShareLock);
	table_close(heap, AccessShareLock);
	return found;
}
