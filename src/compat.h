/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  The one place for differences between the PostgreSQL major versions
 *	  popsell builds against (15 to 18): one macro per changed API, named
 *	  after it, so the .c files read the same on every version.
 *
 * The macros expand where they are used; each caller includes the header
 * that declares the underlying API.
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPSELL_COMPAT_H
#define POPSELL_COMPAT_H

/* PostgreSQL 15 renamed EmitWarningsOnPlaceholders. */
#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(className) EmitWarningsOnPlaceholders(className)
#endif

/*
 * PostgreSQL 18 replaced the pg_attribute_noreturn() suffix by the
 * pg_noreturn prefix (C11 _Noreturn); GCC accepts the attribute as a prefix.
 */
#if PG_VERSION_NUM < 180000
#define pg_noreturn pg_attribute_noreturn()
#endif

/*
 * varlena macros (VARSIZE, VARDATA...): in varatt.h since PostgreSQL 16,
 * which postgres.h stopped including in 18.
 */
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

/*
 * The backend's local transaction id: PostgreSQL 17 moved it from
 * PGPROC.lxid into PGPROC.vxid (storage/proc.h).
 */
#if PG_VERSION_NUM >= 170000
#define MyProcLocalTransactionId() (MyProc->vxid.lxid)
#else
#define MyProcLocalTransactionId() (MyProc->lxid)
#endif

/*
 * ExecInsertIndexTuples (executor/executor.h): PostgreSQL 16 added the
 * onlySummarizing argument, false for a plain insert.
 */
#if PG_VERSION_NUM >= 160000
#define ExecInsertIndexTuplesCompat(rri, slot, estate, update, noDupErr, specConflict, arbiterIndexes) \
	ExecInsertIndexTuples((rri), (slot), (estate), (update), (noDupErr), \
						  (specConflict), (arbiterIndexes), false)
#else
#define ExecInsertIndexTuplesCompat(rri, slot, estate, update, noDupErr, specConflict, arbiterIndexes) \
	ExecInsertIndexTuples((rri), (slot), (estate), (update), (noDupErr), \
						  (specConflict), (arbiterIndexes))
#endif

/*
 * index_beginscan (access/genam.h): PostgreSQL 18 added the instrument
 * argument, NULL when the scan is not part of an EXPLAIN ANALYZE.
 */
#if PG_VERSION_NUM >= 180000
#define index_beginscan_compat(heap, index, snapshot, nkeys, norderbys) \
	index_beginscan((heap), (index), (snapshot), NULL, (nkeys), (norderbys))
#else
#define index_beginscan_compat(heap, index, snapshot, nkeys, norderbys) \
	index_beginscan((heap), (index), (snapshot), (nkeys), (norderbys))
#endif

/*
 * get_guc_variables (utils/guc_tables.h): PostgreSQL 16 returns the count
 * through an argument instead of GetNumConfigOptions().
 */
#if PG_VERSION_NUM >= 160000
#define get_guc_variables_compat(countp) get_guc_variables(countp)
#else
#define get_guc_variables_compat(countp) \
	(*(countp) = GetNumConfigOptions(), get_guc_variables())
#endif

/*
 * A GUC check hook's "extra": PostgreSQL 16 frees it with guc_free (pfree
 * in the GUC memory context), so it must come from guc_malloc there;
 * before 16 guc_malloc is static and extras are plain malloc'ed memory.
 * NULL when out of memory (the hook then returns false).
 */
#if PG_VERSION_NUM >= 160000
#define guc_extra_malloc(size) guc_malloc(LOG, (size))
#else
#define guc_extra_malloc(size) malloc(size)
#endif

#endif							/* POPSELL_COMPAT_H */
