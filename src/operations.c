/*-------------------------------------------------------------------------
 *
 * operations.c
 *	  What DBAs and loaders meet: DROP EXTENSION popsell, and COPY into
 *	  popsell.contacts.
 *
 * DROP EXTENSION popsell must not leave behind the pg_cron job of
 * popsell.run_maintenance, which would then fail every day.
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

#include "catalog/namespace.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "nodes/value.h"
#include "tcop/utility.h"
#include "utils/lsyscache.h"
#include "utils/rls.h"

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

/*
 * COPY FROM into popsell.contacts by a role under row security: PostgreSQL
 * refuses it ("use INSERT statements instead"); say instead what loads a
 * file into an ambassador's contacts.  Seen whenever the library is loaded
 * in the session (after any popsell function, policy or trigger ran, or
 * with session_preload_libraries).
 */
static ProcessUtility_hook_type prev_process_utility = NULL;

static void
check_copy(Node *parsetree)
{
	CopyStmt   *cs;
	Oid			nsp;
	Oid			relid;

	if (parsetree == NULL || !IsA(parsetree, CopyStmt))
		return;
	cs = (CopyStmt *) parsetree;
	if (!cs->is_from || cs->relation == NULL)
		return;
	nsp = get_namespace_oid("popsell", true);
	if (!OidIsValid(nsp))
		return;
	relid = RangeVarGetRelid(cs->relation, NoLock, true);
	if (!OidIsValid(relid) || relid != get_relname_relid("contacts", nsp))
		return;
	if (check_enable_rls(relid, InvalidOid, true) != RLS_ENABLED)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("COPY FROM is not supported on popsell.contacts under row security"),
			 errdetail("Row security decides which contacts this role may write; COPY cannot apply it."),
			 errhint("Copy the file into a staging table (\\copy staging FROM 'contacts.csv' WITH (FORMAT csv, HEADER)), "
					 "then load its rows with popsell.import_contacts(ambassador_id, (SELECT jsonb_agg(s) FROM staging s)).")));
}

static void
popsell_process_utility(PlannedStmt *pstmt, const char *queryString,
						bool readOnlyTree, ProcessUtilityContext context,
						ParamListInfo params, QueryEnvironment *queryEnv,
						DestReceiver *dest, QueryCompletion *qc)
{
	check_copy(pstmt->utilityStmt);
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

void
OperationsInit(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = popsell_process_utility;
}
