/*-------------------------------------------------------------------------
 *
 * uninstall.c
 *	  What DROP EXTENSION popsell must not leave behind: the pg_cron job of
 *	  popsell.run_maintenance, which would then fail every day.
 *
 * An event trigger on ddl_command_start (a member of the extension, so it
 * goes with it) looks at the statement: when it drops the extension
 * popsell (DROP EXTENSION popsell, or DROP SCHEMA popsell CASCADE) it
 * calls popsell._before_drop(), which removes the job when pg_cron lives
 * in this database and otherwise says where to remove it.  Only the parse
 * tree tells which extension a DROP names, hence C.
 *
 *-------------------------------------------------------------------------
 */
#include "popsell.h"

#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "nodes/value.h"

PG_FUNCTION_INFO_V1(popsell_drop_guard);

/* Whether a DROP statement names the extension (or schema) popsell. */
static bool
drops_popsell(Node *parsetree)
{
	DropStmt   *stmt;
	ListCell   *lc;

	if (parsetree == NULL || !IsA(parsetree, DropStmt))
		return false;
	stmt = (DropStmt *) parsetree;
	if (stmt->removeType != OBJECT_EXTENSION && stmt->removeType != OBJECT_SCHEMA)
		return false;
	if (stmt->removeType == OBJECT_SCHEMA && stmt->behavior != DROP_CASCADE)
		return false;
	foreach(lc, stmt->objects)
	{
		Node	   *obj = (Node *) lfirst(lc);

		if (obj != NULL && IsA(obj, String) && strcmp(strVal(obj), "popsell") == 0)
			return true;
	}
	return false;
}

Datum
popsell_drop_guard(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_MISUSE),
				 errmsg("popsell._drop_guard() must be called as an event trigger")));
	trigdata = (EventTriggerData *) fcinfo->context;
	if (!drops_popsell(trigdata->parsetree))
		PG_RETURN_NULL();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT popsell._before_drop()", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "popsell._before_drop() failed");
	SPI_finish();
	PG_RETURN_NULL();
}
