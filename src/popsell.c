/*-------------------------------------------------------------------------
 *
 * popsell.c
 *	  Module entry point: each concept initializes its own settings.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "utils/guc.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	IdentityInit();
	ConsentInit();
	LedgerInit();

	/* Nobody may invent popsell.* settings the library does not define. */
	MarkGUCPrefixReserved("popsell");
}
