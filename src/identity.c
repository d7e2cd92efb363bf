/*-------------------------------------------------------------------------
 *
 * identity.c
 *	  Who is acting: the ambassador of the current transaction, the path a
 *	  change comes through, restore mode, and the owner context in which
 *	  popsell reads and writes its own bookkeeping.
 *
 * Only superusers and trusted roles set the identity and path settings, so
 * nobody can impersonate an ambassador or forge the actor of a consent
 * change: popsell.actor and popsell.as_of are PGC_SUSET, granted SET to
 * popsell_owner; popsell.ambassador_id is checked by its check hook (members
 * of popsell_app; see may_set_trusted_setting for why not PGC_SUSET).
 *
 * popsell.consent_text (PGC_USERSET: what the contact was shown, recorded
 * in the ledger, SPEC S13) follows the same rule: the same check hook lets
 * only superusers and members of popsell_app set it.
 *
 * They also live in one transaction (SPEC section 2, v2): each value
 * carries, as its GUC "extra", the local transaction id in which it was
 * set, and that transaction's start time (a 32-bit local id wraps around
 * in a long-lived session; the pair does not repeat).  PostgreSQL saves
 * and restores the extra together with the value
 * (transaction and subtransaction ends, function SET clauses), so a value
 * left over by a plain SET, a role or database default, or a connection
 * option is recognised as stale by its stamp and counts as unset.
 *
 *-------------------------------------------------------------------------
 */
#include "popsell.h"

#include <ctype.h>

#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/primnodes.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/rls.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(current_ambassador_id);
PG_FUNCTION_INFO_V1(popsell_restoring);
PG_FUNCTION_INFO_V1(popsell_current_path);

const char *const popsell_path_names[PATH__COUNT] = {
	[PATH_AMBASSADOR] = "ambassador",
	[PATH_STAFF] = "staff",
	[PATH_APP] = "app",
	[PATH_CONTACT] = "contact",
	[PATH_CONFIRM_EMAIL] = "confirm_email",
	[PATH_BRAND_SYNC] = "brand_sync",
	[PATH_SYSTEM] = "system",
	[PATH_EMAIL_CALLBACK] = "email_callback",
	[PATH_MIGRATION] = "migration",
	[PATH_SEND_INVITATION] = "send_invitation",
	[PATH_RELEASE_SOFT_BOUNCE] = "release_soft_bounce",
	[PATH_RIGHTS] = "rights",
};

const char *const popsell_actor_names[ACTOR__COUNT] = {
	[ACTOR_CONTACT] = "contact",
	[ACTOR_AMBASSADOR] = "ambassador",
	[ACTOR_STAFF] = "staff",
	[ACTOR_BRAND_SYNC] = "brand_sync",
	[ACTOR_SYSTEM] = "system",
};

static char *ambassador_id_guc = NULL;
static char *actor_guc = NULL;
static char *as_of_guc = NULL;
static char *consent_text_guc = NULL;

static SPIPlanPtr by_role_plan = NULL;
static SPIPlanPtr by_id_plan = NULL;

/* Cache of the parsed popsell.as_of, keyed by the string it came from. */
static char as_of_cached_text[64];
static TimestampTz as_of_cached_value;

/*
 * The local id of the current top-level transaction; InvalidLocalTransactionId
 * outside one.
 */
static inline LocalTransactionId
current_lxid(void)
{
	if (MyProc == NULL)
		return InvalidLocalTransactionId;
	return MyProcLocalTransactionId();
}

/* What a popsell.* setting's GUC "extra" holds: when it was set. */
typedef struct GucStamp
{
	LocalTransactionId lxid;	/* transaction that set it; Invalid = stale */
	TimestampTz xact_start;		/* and its start time */
} GucStamp;

/* The extras of the values in force (assign hooks keep them). */
static GucStamp *ambassador_id_stamp = NULL;
static GucStamp *actor_stamp = NULL;
static GucStamp *as_of_stamp = NULL;
static GucStamp *consent_text_stamp = NULL;

/*
 * While _PG_init defines the settings, PostgreSQL re-applies the values a
 * session gave them before the library was loaded (placeholders).  Only
 * the current value, and only when it was set in the current transaction
 * (the placeholder has a stack entry), is fresh.
 */
static bool defining = false;
static bool placeholder_fresh = false;
static char *placeholder_value = NULL;
static Oid	placeholder_srole = InvalidOid;

static void
note_placeholder(const char *name)
{
	struct config_generic **vars;
	int			n;

	placeholder_fresh = false;
	placeholder_value = NULL;
	placeholder_srole = InvalidOid;
	vars = get_guc_variables_compat(&n);
	for (int i = 0; i < n; i++)
	{
		struct config_generic *g = vars[i];

		if (g == NULL || strcmp(g->name, name) != 0)
			continue;
		if ((g->flags & GUC_CUSTOM_PLACEHOLDER) && g->vartype == PGC_STRING)
		{
			struct config_string *cs = (struct config_string *) g;

			placeholder_fresh = (g->stack != NULL);
			placeholder_srole = g->srole;
			if (cs->variable != NULL && *cs->variable != NULL)
				placeholder_value = pstrdup(*cs->variable);
		}
		break;
	}
}

/*
 * Sources that store a value for later sessions or transactions: the
 * configuration file, ALTER SYSTEM, ALTER DATABASE/ROLE ... SET and
 * connection options.  PGC_S_TEST is the validation of ALTER ROLE/DATABASE
 * ... SET (and of a function's SET clause).
 */
static bool
stored_source(GucSource source)
{
	switch (source)
	{
		case PGC_S_FILE:
		case PGC_S_ARGV:
		case PGC_S_GLOBAL:
		case PGC_S_DATABASE:
		case PGC_S_USER:
		case PGC_S_DATABASE_USER:
		case PGC_S_CLIENT:
			return true;
		default:
			return false;
	}
}

/*
 * Stamp a new value with the transaction setting it.  A non-empty value
 * from a stored source is refused (where PostgreSQL asks: with the library
 * loaded; otherwise it is stamped stale and means nothing).
 */
static bool
stamp_value(const char *name, char **newval, void **extra, GucSource source,
			bool refuse_test)
{
	GucStamp   *stamp;
	bool		empty = (*newval == NULL || (*newval)[0] == '\0');

	if (!empty && (stored_source(source) || (refuse_test && source == PGC_S_TEST)))
	{
		GUC_check_errcode(ERRCODE_POPSELL_IDENTITY);
		GUC_check_errmsg("%s cannot be a role, database, server or connection default", name);
		GUC_check_errdetail("It counts only in the transaction that sets it.");
		GUC_check_errhint("Set it in each transaction with SET LOCAL or set_config('%s', value, true).", name);
		return false;
	}

	stamp = (GucStamp *) guc_extra_malloc(sizeof(GucStamp));
	if (stamp == NULL)
		return false;
	stamp->lxid = current_lxid();
	stamp->xact_start = GetCurrentTransactionStartTimestamp();
	if (stored_source(source) || source == PGC_S_DEFAULT ||
		source == PGC_S_DYNAMIC_DEFAULT || source == PGC_S_ENV_VAR ||
		InitializingParallelWorker)
		stamp->lxid = InvalidLocalTransactionId;
	else if (defining &&
			 !(placeholder_fresh && placeholder_value != NULL && *newval != NULL &&
			   strcmp(placeholder_value, *newval) == 0))
		stamp->lxid = InvalidLocalTransactionId;
	*extra = stamp;
	return true;
}

/* Whether a setting's value was set in the current transaction. */
static inline bool
fresh(const GucStamp *stamp)
{
	return stamp != NULL && stamp->lxid != InvalidLocalTransactionId &&
		stamp->lxid == current_lxid() &&
		stamp->xact_start == GetCurrentTransactionStartTimestamp();
}

/*
 * Whether the role setting popsell.ambassador_id or popsell.consent_text
 * may: a superuser or a role with the privileges of popsell_app.  The setting is PGC_USERSET and
 * checked here rather than PGC_SUSET with GRANT SET: a parallel worker
 * restores the leader's settings in a start-up transaction of its own,
 * before it joins the leader's, and PostgreSQL's own check there does not
 * see a role or grant the leader's transaction made ("permission denied to
 * set parameter" in the worker).  The worker takes the leader's value
 * unchecked (the leader checked it) and stamps it stale: in a worker it
 * identifies nobody (current_ambassador_id() is PARALLEL RESTRICTED).
 * A value set before the library was loaded is checked against the role
 * that set it (the placeholder's), not the one loading the library.
 */
static bool
may_set_trusted_setting(void)
{
	Oid			setter;
	Oid			app;

	if (InitializingParallelWorker)
		return true;
	if (!IsTransactionState())
		return false;
	setter = defining ? placeholder_srole : GetUserId();
	if (!OidIsValid(setter))
		return false;
	if (superuser_arg(setter))
		return true;
	app = get_role_oid("popsell_app", true);
	return OidIsValid(app) && has_privs_of_role(setter, app);
}

static bool
check_ambassador_id(char **newval, void **extra, GucSource source)
{
	/*
	 * Accept any shape here: a malformed value must mean "nobody", not an
	 * error that a caller could probe.  current_ambassador_id() parses it.
	 * Refuse it as a stored default (PGC_S_TEST too: no function of
	 * popsell's sets it in a SET clause), and from a role that is not a
	 * trusted application.  Anybody may clear it.
	 */
	if (*newval != NULL && (*newval)[0] != '\0' &&
		!(stored_source(source) || source == PGC_S_TEST) &&
		source != PGC_S_DEFAULT && !may_set_trusted_setting())
	{
		GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
		GUC_check_errmsg("permission denied to set parameter \"popsell.ambassador_id\"");
		GUC_check_errdetail("Only trusted applications (members of popsell_app) name the ambassador they act for.");
		GUC_check_errhint("Connect as the application's role, or GRANT popsell_app to it.");
		return false;
	}
	return stamp_value("popsell.ambassador_id", newval, extra, source, true);
}

static void
assign_ambassador_id(const char *newval, void *extra)
{
	ambassador_id_stamp = (GucStamp *) extra;
}

static bool
check_actor(char **newval, void **extra, GucSource source)
{
	/* popsell's functions set it in their SET clauses (PGC_S_TEST) */
	return stamp_value("popsell.actor", newval, extra, source, false);
}

static void
assign_actor(const char *newval, void *extra)
{
	actor_stamp = (GucStamp *) extra;
}

static bool
check_as_of(char **newval, void **extra, GucSource source)
{
	return stamp_value("popsell.as_of", newval, extra, source, false);
}

static void
assign_as_of(const char *newval, void *extra)
{
	as_of_stamp = (GucStamp *) extra;
}

static bool
check_consent_text(char **newval, void **extra, GucSource source)
{
	/*
	 * Recorded in the ledger as the text the contact was shown: set by the
	 * product, never by the caller (SPEC S13).  Checked like
	 * popsell.ambassador_id; no stored default (PGC_S_TEST refused too).
	 */
	if (*newval != NULL && (*newval)[0] != '\0' &&
		!(stored_source(source) || source == PGC_S_TEST) &&
		source != PGC_S_DEFAULT && !may_set_trusted_setting())
	{
		GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
		GUC_check_errmsg("permission denied to set parameter \"popsell.consent_text\"");
		GUC_check_errdetail("Only trusted applications (members of popsell_app) say which consent text the contact was shown.");
		GUC_check_errhint("Set it from the application's role, or GRANT popsell_app to it.");
		return false;
	}
	return stamp_value("popsell.consent_text", newval, extra, source, true);
}

static void
assign_consent_text(const char *newval, void *extra)
{
	consent_text_stamp = (GucStamp *) extra;
}

void
IdentityInit(void)
{
	defining = true;
	note_placeholder("popsell.ambassador_id");
	DefineCustomStringVariable("popsell.ambassador_id",
							   "Ambassador a trusted application acts as in this transaction.",
							   "Set with SET LOCAL or set_config(..., true) by popsell_app members only; it counts only in the transaction that set it; unset, empty or malformed means nobody.",
							   &ambassador_id_guc, "",
							   PGC_USERSET, GUC_NOT_IN_SAMPLE,
							   check_ambassador_id, assign_ambassador_id, NULL);
	note_placeholder("popsell.actor");
	DefineCustomStringVariable("popsell.actor",
							   "Path through which popsell event functions change consents (internal).",
							   "Set only by popsell's own functions in their SET clause; it counts only in the transaction that set it.",
							   &actor_guc, "",
							   PGC_SUSET, GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL,
							   check_actor, assign_actor, NULL);
	note_placeholder("popsell.as_of");
	DefineCustomStringVariable("popsell.as_of",
							   "Time popsell.run_maintenance acts as of (internal).",
							   "It counts only in the transaction that set it.",
							   &as_of_guc, "",
							   PGC_SUSET, GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL,
							   check_as_of, assign_as_of, NULL);
	note_placeholder("popsell.consent_text");
	DefineCustomStringVariable("popsell.consent_text",
							   "Version or hash of the consent text shown to the contact, recorded in the consent ledger.",
							   "Set with SET LOCAL or set_config(..., true) by popsell_app members only; it counts only in the transaction that set it.",
							   &consent_text_guc, "",
							   PGC_USERSET, GUC_NOT_IN_SAMPLE,
							   check_consent_text, assign_consent_text, NULL);
	defining = false;
	placeholder_fresh = false;
	placeholder_value = NULL;
}

/* Role OID by name, or InvalidOid when the role does not exist. */
static Oid
role_oid(const char *name)
{
	return get_role_oid(name, true);
}

static bool
role_has(Oid roleid, const char *group)
{
	Oid			g = role_oid(group);

	return OidIsValid(g) && has_privs_of_role(roleid, g);
}

Oid
PopsellOwnerId(void)
{
	Oid			owner = role_oid("popsell_owner");

	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_INSTALL),
				 errmsg("role popsell_owner does not exist"),
				 errhint("Reinstall the extension: DROP EXTENSION popsell; CREATE EXTENSION popsell;")));
	return owner;
}

/*
 * Run popsell's own reads and writes as popsell_owner, whoever the caller
 * is.  An error aborts the (sub)transaction, which restores the user id.
 */
void
EnterOwnerContext(Oid *save_userid, int *save_sec)
{
	GetUserIdAndSecContext(save_userid, save_sec);
	SetUserIdAndSecContext(PopsellOwnerId(),
						   *save_sec | SECURITY_LOCAL_USERID_CHANGE);
}

void
LeaveOwnerContext(Oid save_userid, int save_sec)
{
	SetUserIdAndSecContext(save_userid, save_sec);
}

/*
 * Restore mode: a superuser loading rows with row_security off, which is
 * what pg_dump's output and pg_restore do.  Restoring rows is not
 * collecting them, so the triggers let them through unchanged.
 */
bool
RestoringData(void)
{
	/*
	 * The session user, not the current one: inside popsell's SECURITY
	 * DEFINER triggers the current user is popsell_owner.
	 */
	return !row_security && (superuser() || superuser_arg(GetSessionUserId()));
}

/*
 * History columns (created_at, *_optin_at, last_activity_at...) may be
 * given on INSERT by a superuser, popsell_owner or popsell_app: migrations
 * and brand syncs carry real history.  The outer user is checked so that
 * popsell's own SECURITY DEFINER functions do not lend it to their callers.
 */
bool
CallerMayGiveHistory(void)
{
	Oid			outer = GetOuterUserId();

	return superuser_arg(outer) ||
		role_has(outer, "popsell_owner") ||
		role_has(outer, "popsell_app");
}

PopsellPath
CurrentPath(void)
{
	Oid			user;

	if (actor_guc != NULL && actor_guc[0] != '\0' && fresh(actor_stamp))
	{
		for (int i = 0; i < PATH__COUNT; i++)
			if (strcmp(actor_guc, popsell_path_names[i]) == 0)
				return (PopsellPath) i;
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_MISUSE),
				 errmsg("unknown popsell.actor value \"%s\"", actor_guc),
				 errhint("popsell.actor is set by popsell's functions only; RESET popsell.actor.")));
	}

	user = GetUserId();
	if (role_has(user, "popsell_technical") ||
		role_has(user, "popsell_account_team") ||
		role_has(user, "popsell_brand"))
		return PATH_STAFF;
	if (role_has(user, "popsell_app"))
		return PATH_APP;
	return PATH_AMBASSADOR;
}

PopsellActor
PathActor(PopsellPath path)
{
	switch (path)
	{
		case PATH_CONTACT:
		case PATH_CONFIRM_EMAIL:
			return ACTOR_CONTACT;
		case PATH_BRAND_SYNC:
			return ACTOR_BRAND_SYNC;
		case PATH_SYSTEM:
		case PATH_EMAIL_CALLBACK:
		case PATH_MIGRATION:
			return ACTOR_SYSTEM;
		case PATH_STAFF:
		case PATH_RIGHTS:
			return ACTOR_STAFF;
		case PATH_APP:
			/* a trusted form or webhook records what the contact did */
			return ACTOR_CONTACT;
		case PATH_AMBASSADOR:
		case PATH_SEND_INVITATION:
		case PATH_RELEASE_SOFT_BOUNCE:
		default:
			return ACTOR_AMBASSADOR;
	}
}

/* The time stamps carry: run_maintenance's "as of", else the statement's. */
TimestampTz
PopsellNow(void)
{
	if (as_of_guc != NULL && as_of_guc[0] != '\0' && fresh(as_of_stamp))
	{
		if (strncmp(as_of_guc, as_of_cached_text, sizeof(as_of_cached_text)) != 0)
		{
			Datum		d;

			d = DirectFunctionCall3(timestamptz_in,
									CStringGetDatum(as_of_guc),
									ObjectIdGetDatum(InvalidOid),
									Int32GetDatum(-1));
			as_of_cached_value = DatumGetTimestampTz(d);
			strlcpy(as_of_cached_text, as_of_guc, sizeof(as_of_cached_text));
		}
		return as_of_cached_value;
	}
	return GetCurrentStatementStartTimestamp();
}

const char *
ConsentTextRef(void)
{
	/* a value left over from an earlier transaction records nothing */
	if (consent_text_guc == NULL || consent_text_guc[0] == '\0' ||
		!fresh(consent_text_stamp))
		return NULL;
	return consent_text_guc;
}

/*
 * Strict parse of popsell.ambassador_id: 1 to 18 decimal digits, nothing
 * else.  Anything else is nobody.
 */
static int64
parse_ambassador_id(const char *s)
{
	int64		v = 0;
	int			n = 0;

	if (s == NULL)
		return 0;
	for (; *s; s++, n++)
	{
		if (n >= 18 || !isdigit((unsigned char) *s))
			return 0;
		v = v * 10 + (*s - '0');
	}
	return v;
}

/* Look an active ambassador up as popsell_owner; 0 when none. */
static int64
lookup_active(SPIPlanPtr *plan, const char *query, Oid argtype, Datum arg)
{
	int64		result = 0;
	Oid			save_userid;
	int			save_sec;

	EnterOwnerContext(&save_userid, &save_sec);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(query, 1, &argtype);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	if (SPI_execute_plan(*plan, &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "ambassador lookup failed");
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0],
									  SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			result = DatumGetInt64(d);
	}
	SPI_finish();
	LeaveOwnerContext(save_userid, save_sec);
	return result;
}

/*
 * popsell.current_ambassador_id(): the ambassador whose login_role is the
 * session's role (SET ROLE included, SECURITY DEFINER excluded), else the
 * one named by popsell.ambassador_id when it was set in this transaction;
 * NULL when none or not active.  PARALLEL RESTRICTED: a parallel worker
 * gets the leader's settings in a transaction of its own, so it could not
 * tell a fresh value from a stale one.
 */
/*
 * The answer is kept for the rest of the statement: the same transaction,
 * statement, command id, role and setting give the same ambassador (the
 * statement's snapshot cannot see a later change), and a query's policies
 * may ask more than once.
 */
static struct
{
	LocalTransactionId lxid;
	CommandId	cid;
	TimestampTz stmt_start;
	Oid			outer;
	bool		fresh;
	char		guc[32];
	int64		id;
}			identity_cache;

Datum
current_ambassador_id(PG_FUNCTION_ARGS)
{
	Oid			outer = GetOuterUserId();
	char	   *rolname;
	int64		id = 0;
	const char *guc = ambassador_id_guc ? ambassador_id_guc : "";
	bool		guc_fresh = fresh(ambassador_id_stamp);
	bool		cacheable = strlen(guc) < sizeof(identity_cache.guc);
	CommandId	cid = GetCurrentCommandId(false);

	if (cacheable && identity_cache.lxid == current_lxid() &&
		identity_cache.cid == cid && identity_cache.outer == outer &&
		identity_cache.stmt_start == GetCurrentStatementStartTimestamp() &&
		identity_cache.fresh == guc_fresh &&
		strcmp(identity_cache.guc, guc) == 0)
	{
		if (identity_cache.id == 0)
			PG_RETURN_NULL();
		PG_RETURN_INT64(identity_cache.id);
	}

	rolname = GetUserNameFromId(outer, true);

	if (rolname != NULL)
		id = lookup_active(&by_role_plan,
						   "SELECT a.id FROM popsell.ambassadors a"
						   " WHERE a.login_role OPERATOR(pg_catalog.=) $1::pg_catalog.name"
						   "   AND a.status OPERATOR(pg_catalog.=) 'active'::popsell.ambassador_status",
						   TEXTOID, CStringGetTextDatum(rolname));
	if (id == 0 && guc_fresh)
	{
		/* only a value set in this transaction names anyone */
		int64		wanted = parse_ambassador_id(ambassador_id_guc);

		if (wanted > 0)
			id = lookup_active(&by_id_plan,
							   "SELECT a.id FROM popsell.ambassadors a"
							   " WHERE a.id OPERATOR(pg_catalog.=) $1"
							   "   AND a.status OPERATOR(pg_catalog.=) 'active'::popsell.ambassador_status",
							   INT8OID, Int64GetDatum(wanted));
	}
	if (cacheable)
	{
		identity_cache.lxid = current_lxid();
		identity_cache.cid = cid;
		identity_cache.fresh = guc_fresh;
		identity_cache.stmt_start = GetCurrentStatementStartTimestamp();
		identity_cache.outer = outer;
		strlcpy(identity_cache.guc, guc, sizeof(identity_cache.guc));
		identity_cache.id = id;
	}
	if (id == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(id);
}

/*
 * popsell._as_of(): the time popsell.as_of names when it was set in this
 * transaction (run_maintenance's "as of"), else NULL.
 */
PG_FUNCTION_INFO_V1(popsell_as_of);
Datum
popsell_as_of(PG_FUNCTION_ARGS)
{
	if (as_of_guc == NULL || as_of_guc[0] == '\0' || !fresh(as_of_stamp))
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(PopsellNow());
}

/* popsell._restoring(): whether triggers are in restore mode. */
Datum
popsell_restoring(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(RestoringData());
}

/* popsell.current_path(): the path the next change would be recorded under. */
Datum
popsell_current_path(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(popsell_path_names[CurrentPath()]));
}

/*
 * popsell._caller_in(role): whether the role that called into popsell
 * (the session's current role, not a SECURITY DEFINER owner) has the
 * privileges of ROLE.  popsell's functions use it to check who asks.
 */
PG_FUNCTION_INFO_V1(popsell_caller_in);
Datum
popsell_caller_in(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_BOOL(role_has(GetOuterUserId(), name));
}

/*
 * popsell._id_in(id, ids): whether ID is in the array IDS (false for a
 * NULL element; STRICT).  The policies on rows tied to a contact pass it
 * ARRAY(SELECT id FROM popsell.contacts) read under the caller's own row
 * security: the array is an initplan, computed once per query whatever
 * rows the query keeps, and the function is costed below any operator, so
 * it runs first on every row the scan reads and the caller's own
 * conditions never decide which rows make popsell read contacts (what a
 * correlated EXISTS did).
 *
 * When the same array comes twice in a row, it is sorted once and kept
 * (with a copy of the array it came from) in fn_extra, then searched by
 * bisection.  "The same" is decided by content, never by address: a
 * per-row array (or a PL/pgSQL variable) may be freed and another built at
 * the same address.  Only a Const argument is the same datum as long as
 * the expression lives, so its address suffices.  Any other array is searched linearly, in the
 * caller's memory context (a detoasted copy is freed at once), so a query
 * passing a new array on every row keeps one array at most.  Every loop
 * over the array checks for interrupts (SPEC section 8).
 */
typedef struct IdSet
{
	Pointer		source;			/* the datum the cache was built from */
	Size		len;			/* the cached array's size ... */
	char	   *raw;			/* ... and a copy of it (NULL: no cache) */
	int			n;
	int64	   *ids;			/* its non-NULL elements, sorted */
	bool		seen;			/* whether an array was seen before ... */
	Size		last_len;		/* ... of this size */
	uint32		last_hash;		/* ... and hash */
} IdSet;

#define ST_SORT sort_ids
#define ST_ELEMENT_TYPE int64
#define ST_COMPARE(a, b) (*(a) < *(b) ? -1 : *(a) > *(b) ? 1 : 0)
#define ST_CHECK_FOR_INTERRUPTS
#define ST_SCOPE static
#define ST_DECLARE
#define ST_DEFINE
#include "lib/sort_template.h"

/* Interrupts are checked every ID_IN_CHUNK elements of a loop. */
#define ID_IN_CHUNK 65536

/*
 * Call FN(value) on each non-NULL element of the bigint array ARR.
 * Returns true as soon as FN does.
 */
static bool
id_array_scan(ArrayType *arr, bool (*fn) (int64 v, void *arg), void *arg)
{
	int			nitems = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	bits8	   *bits = ARR_NULLBITMAP(arr);
	const char *p = ARR_DATA_PTR(arr);

	for (int i = 0; i < nitems; i++)
	{
		int64		v;

		if (i % ID_IN_CHUNK == 0)
			CHECK_FOR_INTERRUPTS();
		if (bits != NULL && (bits[i / 8] & (1 << (i % 8))) == 0)
			continue;
		memcpy(&v, p, sizeof(int64));
		p += sizeof(int64);
		if (fn(v, arg))
			return true;
	}
	return false;
}

static bool
id_equals(int64 v, void *arg)
{
	return v == *(int64 *) arg;
}

static bool
id_collect(int64 v, void *arg)
{
	IdSet	   *set = (IdSet *) arg;

	set->ids[set->n++] = v;
	return false;
}

/* Replace SET's cache by the sorted elements of ARR (a copy in fn_mcxt). */
static void
id_set_build(IdSet *set, ArrayType *arr, Datum source, MemoryContext mcxt)
{
	MemoryContext old;
	Size		len = VARSIZE(arr);
	int			nitems = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));

	if (set->raw != NULL)
		pfree(set->raw);
	if (set->ids != NULL)
		pfree(set->ids);
	set->raw = NULL;
	set->ids = NULL;
	set->n = 0;
	old = MemoryContextSwitchTo(mcxt);
	set->ids = (int64 *) palloc(Max(nitems, 1) * sizeof(int64));
	set->raw = (char *) palloc(len);
	MemoryContextSwitchTo(old);
	memcpy(set->raw, arr, len);
	(void) id_array_scan(arr, id_collect, set);
	sort_ids(set->ids, set->n);
	set->len = len;
	set->source = DatumGetPointer(source);
}

static bool
id_set_contains(const IdSet *set, int64 id)
{
	int			lo = 0;
	int			hi = set->n - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (set->ids[mid] == id)
			return true;
		if (set->ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return false;
}

/*
 * Whether argument ARGNUM of the call is a Const.  Not
 * get_fn_expr_arg_stable: an external Param (a PL/pgSQL variable in a
 * simple expression) takes new values while the expression, and its
 * fn_extra, live on.
 */
static bool
arg_is_const(FmgrInfo *flinfo, int argnum)
{
	Node	   *expr = flinfo->fn_expr;
	List	   *args;

	if (expr == NULL || !IsA(expr, FuncExpr))
		return false;
	args = ((FuncExpr *) expr)->args;
	return argnum < list_length(args) && IsA(list_nth(args, argnum), Const);
}

PG_FUNCTION_INFO_V1(popsell_id_in);
Datum
popsell_id_in(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	Datum		arrd = PG_GETARG_DATUM(1);
	FmgrInfo   *flinfo = fcinfo->flinfo;
	IdSet	   *set = (IdSet *) flinfo->fn_extra;
	ArrayType  *arr;
	Size		len;
	uint32		h;
	bool		result;

	if (set == NULL)
	{
		set = (IdSet *) MemoryContextAllocZero(flinfo->fn_mcxt, sizeof(IdSet));
		flinfo->fn_extra = set;
	}

	/* A constant: the same datum as long as the expression lives. */
	if (set->raw != NULL && set->source == DatumGetPointer(arrd) &&
		arg_is_const(flinfo, 1))
		PG_RETURN_BOOL(id_set_contains(set, id));

	/* Detoasted in the caller's context; a copy is freed below. */
	arr = DatumGetArrayTypeP(arrd);
	if (ARR_ELEMTYPE(arr) != INT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_MISUSE),
				 errmsg("popsell._id_in takes a bigint[] array, not %s",
						format_type_be(ARR_ELEMTYPE(arr)))));
	len = VARSIZE(arr);

	if (set->raw != NULL && set->len == len && memcmp(set->raw, arr, len) == 0)
	{
		set->source = DatumGetPointer(arrd);
		result = id_set_contains(set, id);
	}
	else
	{
		h = hash_bytes((const unsigned char *) arr, (int) len);
		if (set->seen && set->last_len == len && set->last_hash == h)
		{
			/* the same array twice in a row: sort it once and keep it */
			id_set_build(set, arr, arrd, flinfo->fn_mcxt);
			result = id_set_contains(set, id);
		}
		else
			result = id_array_scan(arr, id_equals, &id);
		set->seen = true;
		set->last_len = len;
		set->last_hash = h;
	}
	if ((Pointer) arr != DatumGetPointer(arrd))
		pfree(arr);
	PG_RETURN_BOOL(result);
}

/*
 * popsell._ambassador_id_setting(): the raw popsell.ambassador_id when it
 * was set in this transaction, else NULL: what popsell's own SQL checks
 * compare with, so that they follow the same one-transaction rule as
 * current_ambassador_id() (a value left over by an earlier client of a
 * pooled connection names nobody).
 */
PG_FUNCTION_INFO_V1(popsell_ambassador_id_setting);
Datum
popsell_ambassador_id_setting(PG_FUNCTION_ARGS)
{
	if (ambassador_id_guc == NULL || ambassador_id_guc[0] == '\0' ||
		!fresh(ambassador_id_stamp))
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(ambassador_id_guc));
}
