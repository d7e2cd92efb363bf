/*-------------------------------------------------------------------------
 *
 * ledger.h
 *	  Appending to popsell.consent_events, the consent ledger.
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPSELL_LEDGER_H
#define POPSELL_LEDGER_H

#include "consent.h"

typedef struct LedgerEntry
{
	int64		contact_id;
	int64		ambassador_id;
	bool		ambassador_id_null;
	int			old_v[FIELD__COUNT];	/* -1 = none (initial state) */
	int			new_v[FIELD__COUNT];
	ContactSource source;
	PopsellPath path;
	const char *note;			/* a static string or NULL */
	TimestampTz at;
} LedgerEntry;

extern void LedgerInit(void);
extern void LedgerAppend(const LedgerEntry *e);
extern void LedgerFlush(void);
extern void QueueGlobalOptout(const char *email, PopsellPath path);
extern void QueueOutboxRecheck(int64 contact_id);

#endif							/* POPSELL_LEDGER_H */
