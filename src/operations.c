/*-------------------------------------------------------------------------
 *
 * operations.c
 *	  What loaders meet: COPY into popsell.contacts.
 *
 * DROP EXTENSION popsell is watched by PL/pgSQL event triggers
 * (src/sql/13_operations.sql): no C on the DDL path, so every DROP still
 * works when popsell's library file is gone.
 *
 *-------------------------------------------------------------------------
 */
#include "popsell.h"

#include "catalog/namespace.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/lsyscache.h"
#include "utils/rls.h"

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
