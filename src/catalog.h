/*-------------------------------------------------------------------------
 *
 * catalog.h
 *	  popsell's own relations and types, looked up by name in schema
 *	  popsell (never through search_path) and cached per backend.
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPSELL_CATALOG_H
#define POPSELL_CATALOG_H

#include "postgres.h"
#include "access/attnum.h"

typedef enum PopsellRel
{
	REL_AMBASSADORS,
	REL_AMBASSADORS_PKEY,
	REL_BLACKLIST,
	REL_BLACKLIST_HASH_IDX,
	REL_CONTACTS,
	REL_CONTACTS_PKEY,
	REL_CONTACTS_EMAIL_IDX,
	REL_HASH_KEYS,
	REL__COUNT
} PopsellRel;

/* Told which relation changed (a relcache invalidation); REL__COUNT: all. */
typedef void (*PopsellRelChanged) (PopsellRel rel);

extern Oid	PopsellRelid(PopsellRel rel);
extern AttrNumber PopsellAttnum(PopsellRel rel, const char *name);
extern Oid	PopsellTypid(const char *name);
extern void PopsellOnRelChange(PopsellRelChanged fn);

#endif							/* POPSELL_CATALOG_H */
