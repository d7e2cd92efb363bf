/*-------------------------------------------------------------------------
 *
 * outbox.c
 *	  The sending guard of popsell.outbox (SPEC C4) and its NOTIFY.
 *
 * popsell never sends mail: the application reads the outbox.  What may be
 * queued for a contact is checked here, against the contact's current
 * consent, email status, restriction and ambassador, so no path (function,
 * plain INSERT, script) can queue a publication to someone who may not
 * receive it.
 *
 *-------------------------------------------------------------------------
 */
#include "consent.h"

#include "access/htup_details.h"
#include "commands/async.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(outbox_before_row);
PG_FUNCTION_INFO_V1(outbox_notify);

extern Datum current_ambassador_id(PG_FUNCTION_ARGS);

static SPIPlanPtr contact_plan = NULL;
static SPIPlanPtr ambassador_plan = NULL;

/* Is the contact row (column 8: ambassador_id) the calling ambassador's? */
static bool
contact_is_callers(HeapTuple ct, TupleDesc cd)
{
	bool		isnull;
	Datum		owner = SPI_getbinval(ct, cd, 8, &isnull);
	Datum		me;
	LOCAL_FCINFO(fc, 0);

	if (isnull)
		return false;
	InitFunctionCallInfoData(*fc, NULL, 0, InvalidOid, NULL, NULL);
	me = current_ambassador_id(fc);
	return !fc->isnull && DatumGetInt64(me) == DatumGetInt64(owner);
}

/*
 * Column COL of the guard's row as text, copied into CXT: SPI_getvalue
 * allocates in SPI's memory, which SPI_finish() frees.
 */
static char *
value_in(MemoryContext cxt, HeapTuple t, TupleDesc d, int col)
{
	char	   *v = SPI_getvalue(t, d, col);

	return v == NULL ? NULL : MemoryContextStrdup(cxt, v);
}

static void
refuse(const char *kind, int64 contact_id, const char *why, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_POPSELL_SENDING),
			 errmsg("cannot queue %s for contact %lld: %s", kind, (long long) contact_id, why),
			 errhint("%s", hint)));
}

Datum
outbox_before_row(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	tup;
	bool		isnull;
	Datum		d;
	char	   *kind;
	int64		contact_id;
	Oid			argtype = INT8OID;
	Oid			save_userid;
	int			save_sec;
	char	   *ao,
			   *es,
			   *amb_status,
			   *source;
	bool		restricted,
				has_email,
				unconfirmed;
	bool		to_contact;
	bool		row_amb_null;
	int64		row_amb = 0;
	bool		contact_amb_null = true;
	int64		contact_amb = 0;
	PopsellPath path;
	MemoryContext caller_cxt = CurrentMemoryContext;

	CheckPopsellTrigger(fcinfo, "popsell.outbox_before_row", "outbox", true, true);
	if (!TRIGGER_FIRED_BY_INSERT(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_MISUSE),
				 errmsg("popsell.outbox_before_row handles INSERT only")));
	tup = td->tg_trigtuple;
	if (RestoringData())
		return PointerGetDatum(tup);

	desc = RelationGetDescr(td->tg_relation);
	d = SPI_getbinval(tup, desc, SPI_fnumber(desc, "contact_id"), &isnull);
	if (isnull)
		return PointerGetDatum(tup);
	contact_id = DatumGetInt64(d);
	{
		Datum		a = SPI_getbinval(tup, desc, SPI_fnumber(desc, "ambassador_id"),
									  &row_amb_null);

		if (!row_amb_null)
			row_amb = DatumGetInt64(a);
	}
	kind = SPI_getvalue(tup, desc, SPI_fnumber(desc, "kind"));
	if (kind == NULL)
		return PointerGetDatum(tup);	/* NOT NULL constraint reports it */

	/* Files and partner notices are not messages to the contact. */
	if (strcmp(kind, "delete_file") == 0 || strcmp(kind, "partner_erasure") == 0 ||
		strcmp(kind, "partner_optout") == 0)
		return PointerGetDatum(tup);
	/* Notices to ambassadors are never addressed to a contact. */
	if (strcmp(kind, "inactivity_warning") == 0 || strcmp(kind, "suspension_notice") == 0 ||
		strcmp(kind, "deletion_notice") == 0 || strcmp(kind, "migration_notice") == 0)
		refuse(kind, contact_id, "it is a message to ambassadors, not to contacts",
			   "Queue it with contact_id NULL and the ambassador_id.");
	to_contact = true;
	path = CurrentPath();		/* the caller's, before we act as the owner */

	EnterOwnerContext(&save_userid, &save_sec);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (contact_plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(
									"SELECT c.ambassador_optin::pg_catalog.text, c.email_status::pg_catalog.text,"
									"       c.restricted, c.email IS NOT NULL,"
									"       a.status::pg_catalog.text, c.source::pg_catalog.text,"
									"       c.email_confirmed_at IS NULL, c.ambassador_id"
									"  FROM popsell.contacts c"
									"  LEFT JOIN popsell.ambassadors a ON a.id OPERATOR(pg_catalog.=) c.ambassador_id"
									" WHERE c.id OPERATOR(pg_catalog.=) $1"
									"   FOR SHARE OF c",
									1, &argtype);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "could not prepare the outbox guard");
		contact_plan = p;
	}
	/*
	 * FOR SHARE: a change of the contact's consent racing this insert waits
	 * for it (and then cancels the queued row, see ledger.c), or this
	 * insert waits for the change and reads its result (READ COMMITTED) or
	 * fails with a serialization error (REPEATABLE READ).
	 */
	if (SPI_execute_plan(contact_plan, &d, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read popsell.contacts");
	/*
	 * Answer before saying anything about the contact: a plain INSERT by an
	 * ambassador (or anyone not trusted) must not learn whether another
	 * ambassador's contact exists or what its consent is.
	 */
	if (SPI_processed == 0 ||
		(path == PATH_AMBASSADOR &&
		 !contact_is_callers(SPI_tuptable->vals[0], SPI_tuptable->tupdesc)))
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_UNKNOWN_ID),
				 errmsg("contact %lld does not exist or is not yours", (long long) contact_id),
				 errhint("Queue messages only for your own existing contacts.")));
	{
		HeapTuple	ct = SPI_tuptable->vals[0];
		TupleDesc	cd = SPI_tuptable->tupdesc;

		/* the strings must outlive SPI_finish(): copy them out */
		ao = value_in(caller_cxt, ct, cd, 1);
		es = value_in(caller_cxt, ct, cd, 2);
		restricted = DatumGetBool(SPI_getbinval(ct, cd, 3, &isnull));
		has_email = DatumGetBool(SPI_getbinval(ct, cd, 4, &isnull));
		amb_status = value_in(caller_cxt, ct, cd, 5);
		source = value_in(caller_cxt, ct, cd, 6);
		unconfirmed = DatumGetBool(SPI_getbinval(ct, cd, 7, &isnull));
		contact_amb = DatumGetInt64(SPI_getbinval(ct, cd, 8, &contact_amb_null));
	}

	/*
	 * Lock the ambassador row too and read its status again: an ambassador
	 * who starts leaving while this insert waited cancels its unsent mail,
	 * so the mail must see the leaving status (or be seen by it).
	 */
	if (!contact_amb_null)
	{
		Datum		ad = Int64GetDatum(contact_amb);

		if (ambassador_plan == NULL)
		{
			SPIPlanPtr	p = SPI_prepare("SELECT a.status::pg_catalog.text FROM popsell.ambassadors a"
										" WHERE a.id OPERATOR(pg_catalog.=) $1 FOR SHARE",
										1, &argtype);

			if (p == NULL || SPI_keepplan(p) != 0)
				elog(ERROR, "could not prepare the outbox guard");
			ambassador_plan = p;
		}
		if (SPI_execute_plan(ambassador_plan, &ad, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read popsell.ambassadors");
		amb_status = SPI_processed == 0 ? NULL
			: value_in(caller_cxt, SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	}
	SPI_finish();
	LeaveOwnerContext(save_userid, save_sec);

	/*
	 * Mail to a contact belongs to the contact's ambassador: leaving cancels
	 * it by that ambassador (SPEC C4), so it cannot be filed under another.
	 */
	if (!contact_amb_null && (row_amb_null || row_amb != contact_amb))
		refuse(kind, contact_id, "its ambassador_id is not the contact's ambassador",
			   "Queue it with the ambassador_id of the contact.");

	if (to_contact && restricted)
		refuse(kind, contact_id, "its processing is restricted (GDPR art. 18)",
			   "Lift the restriction with popsell.restrict_subject(email, false) first.");
	if (!has_email)
		refuse(kind, contact_id, "it has no email address", "Add an email address to the contact.");

	if (strcmp(kind, "email_confirmation") == 0)
	{
		if (!(unconfirmed && (strcmp(source, "blog") == 0 ||
							  strcmp(source, "blog_internal_form") == 0 ||
							  strcmp(source, "store_purchase") == 0)))
			refuse(kind, contact_id, "it is not pending email confirmation",
				   "Confirmation emails go only to contacts collected by a blog form or store purchase.");
		return PointerGetDatum(tup);
	}

	if (amb_status == NULL || strcmp(amb_status, "active") != 0)
		refuse(kind, contact_id, "its ambassador is not active",
			   "Only active ambassadors send to their contacts.");
	if (strcmp(es, "ok") != 0)
		refuse(kind, contact_id, psprintf("its email status is \"%s\"", es),
			   "Only an email with status ok can be sent to.");

	if (strcmp(kind, "invitation") == 0)
	{
		if (strcmp(ao, "new") != 0)
			refuse(kind, contact_id, psprintf("its ambassador_optin is \"%s\", not \"new\"", ao),
				   "Invitations go only to new contacts, once.");
	}
	else if (strcmp(kind, "invitation_reminder") == 0)
	{
		if (path != PATH_SYSTEM)
			refuse(kind, contact_id, "reminders are queued by popsell.run_maintenance only",
				   "Let the invitation_reminder rule queue it.");
		if (strcmp(ao, "invitation_sent") != 0)
			refuse(kind, contact_id, psprintf("its ambassador_optin is \"%s\", not \"invitation_sent\"", ao),
				   "Reminders go only to contacts who have not answered an invitation.");
	}
	else if (strcmp(ao, "new") == 0)
		refuse(kind, contact_id, "new contacts receive nothing but an invitation",
			   "Send an invitation with popsell.send_invitation() and wait for the contact's answer.");
	else if (strcmp(kind, "publication") == 0 &&
			 !AmbIsOptedIn((AmbOptin) EnumIndexByLabel(ENUM_AMB, ao)))
		refuse(kind, contact_id, psprintf("its ambassador_optin \"%s\" is not an opt-in", ao),
			   "Publications go only to contacts who opted in.");
	return PointerGetDatum(tup);
}

/* AFTER INSERT statement trigger: wake the application's outbox reader. */
Datum
outbox_notify(PG_FUNCTION_ARGS)
{
	CheckPopsellTrigger(fcinfo, "popsell.outbox_notify", "outbox", false, false);
	if (!RestoringData())
		Async_Notify("popsell_outbox", NULL);
	return PointerGetDatum(NULL);
}
