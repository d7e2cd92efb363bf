/*-------------------------------------------------------------------------
 *
 * popsell.h
 *	  Shared declarations of the popsell extension: SQLSTATEs, the actor
 *	  and path model, hashing and owner-context helpers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPSELL_H
#define POPSELL_H

#include "postgres.h"
#include "fmgr.h"
#include "utils/timestamp.h"

/* Differences between PostgreSQL versions: one macro per API. */
#include "compat.h"

/*
 * popsell's own SQLSTATE class "PS": rule violations a caller can act on.
 * The README's error table lists them; keep both in step.
 */
#define ERRCODE_POPSELL_INSTALL			MAKE_SQLSTATE('P','S','0','0','1')
#define ERRCODE_POPSELL_TRANSITION		MAKE_SQLSTATE('P','S','1','0','0')
#define ERRCODE_POPSELL_INITIAL_VALUE	MAKE_SQLSTATE('P','S','1','0','1')
#define ERRCODE_POPSELL_SOURCE			MAKE_SQLSTATE('P','S','1','0','2')
#define ERRCODE_POPSELL_PERSONAL_FIELD	MAKE_SQLSTATE('P','S','1','0','3')
#define ERRCODE_POPSELL_EMPTY_CONTACT	MAKE_SQLSTATE('P','S','1','0','4')
#define ERRCODE_POPSELL_IMMUTABLE		MAKE_SQLSTATE('P','S','1','0','5')
#define ERRCODE_POPSELL_BAD_ARGUMENT	MAKE_SQLSTATE('P','S','1','0','6')
#define ERRCODE_POPSELL_TOO_LONG		MAKE_SQLSTATE('P','S','1','0','7')
#define ERRCODE_POPSELL_DUPLICATE		MAKE_SQLSTATE('P','S','1','0','9')
#define ERRCODE_POPSELL_BLACKLISTED		MAKE_SQLSTATE('P','S','1','1','0')
#define ERRCODE_POPSELL_SENDING			MAKE_SQLSTATE('P','S','1','2','0')
#define ERRCODE_POPSELL_UNKNOWN_ID		MAKE_SQLSTATE('P','S','2','0','0')
#define ERRCODE_POPSELL_MALFORMED_EMAIL	MAKE_SQLSTATE('P','S','2','0','2')
#define ERRCODE_POPSELL_IDENTITY		MAKE_SQLSTATE('P','S','2','1','0')
#define ERRCODE_POPSELL_AMBASSADOR_STATE MAKE_SQLSTATE('P','S','3','0','0')
#define ERRCODE_POPSELL_APPEND_ONLY		MAKE_SQLSTATE('P','S','4','0','0')
#define ERRCODE_POPSELL_MISUSE			MAKE_SQLSTATE('P','S','9','0','0')

/*
 * The path a change comes through.  It is fixed by the function that
 * performs the change (each sets popsell.actor in its own SET clause,
 * which only popsell_owner may do) or, for plain DML, by the caller's role.
 */
typedef enum PopsellPath
{
	PATH_AMBASSADOR = 0,		/* plain DML by an ambassador (default) */
	PATH_STAFF,					/* plain DML by brand, account team, technical */
	PATH_APP,					/* plain DML by popsell_app */
	PATH_CONTACT,				/* accept/decline, opt_out, object_subject,
								 * contact-initiated collect_contact */
	PATH_CONFIRM_EMAIL,			/* confirm_email: the contact's confirmation */
	PATH_BRAND_SYNC,			/* collect_contact with source brand_sync */
	PATH_SYSTEM,				/* run_maintenance */
	PATH_EMAIL_CALLBACK,		/* email_callback */
	PATH_MIGRATION,				/* apply_pre_gdpr_migration */
	PATH_SEND_INVITATION,		/* send_invitation (the ambassador) */
	PATH_RELEASE_SOFT_BOUNCE,	/* release_soft_bounce (the ambassador) */
	PATH_RIGHTS,				/* restrict_subject, erase_subject (staff) */
	PATH__COUNT
} PopsellPath;

/* Coarse actors, as recorded in popsell.consent_events.actor. */
typedef enum PopsellActor
{
	ACTOR_CONTACT = 0,
	ACTOR_AMBASSADOR,
	ACTOR_STAFF,
	ACTOR_BRAND_SYNC,
	ACTOR_SYSTEM,
	ACTOR__COUNT
} PopsellActor;

extern const char *const popsell_path_names[PATH__COUNT];
extern const char *const popsell_actor_names[ACTOR__COUNT];

/* identity.c */
extern void IdentityInit(void);
extern void OperationsInit(void);
extern PopsellPath CurrentPath(void);
extern PopsellActor PathActor(PopsellPath path);
extern bool RestoringData(void);
extern bool CallerMayGiveHistory(void);
extern TimestampTz PopsellNow(void);
extern const char *ConsentTextRef(void);
extern Oid	PopsellOwnerId(void);
extern void EnterOwnerContext(Oid *save_userid, int *save_sec);
extern void LeaveOwnerContext(Oid save_userid, int save_sec);

/* contact_trigger.c */
extern void CheckPopsellTrigger(FunctionCallInfo fcinfo, const char *fname,
								const char *relname, bool before, bool row);

/* hashing.c, blacklist.c: their own headers */
#include "hashing.h"
#include "blacklist.h"

/* lookup.c */
extern void LookupKey(const char *data, int len, uint8 *out);
extern bytea *LookupKeyBytea(text *t);

/* consent.c */
extern void ConsentInit(void);

#endif							/* POPSELL_H */
