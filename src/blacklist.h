/*-------------------------------------------------------------------------
 *
 * blacklist.h
 *	  Direct probes of popsell.blacklist, ambassadors and contacts
 *	  (blacklist.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPSELL_BLACKLIST_H
#define POPSELL_BLACKLIST_H

#include "hashing.h"

extern uint32 BlacklistReasons(const PopsellHash *h, int n, const char *norm,
							   int len, bool wait);
extern void BlacklistRowProbed(void);
extern void BlacklistRowSkipped(void);
extern void BlacklistStatementEnd(void);
extern bool AmbassadorExists(int64 id);
extern bool ContactIdExists(int64 id);

#endif							/* POPSELL_BLACKLIST_H */
