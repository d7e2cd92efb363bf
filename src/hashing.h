/*-------------------------------------------------------------------------
 *
 * hashing.h
 *	  Normalization of emails and identifiers, and their keyed hashes
 *	  under every live key of popsell.hash_keys (hashing.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef POPSELL_HASHING_H
#define POPSELL_HASHING_H

#include "postgres.h"

#define POPSELL_HASH_LEN 32
/* longest email or identifier normalized (SPEC section 8) */
#define POPSELL_MAX_RAW_INPUT 1024

typedef struct PopsellHash
{
	int32		key_id;
	uint8		digest[POPSELL_HASH_LEN];
} PopsellHash;

extern char *NormalizeIdentifier(const char *s, int len, int *outlen);
extern int	HashUnderAllKeys(const char *norm, int len, PopsellHash **out);
extern void HashUnderCurrentKey(const char *norm, int len, PopsellHash *out);
extern bool EmailLooksValid(const char *norm, int len);
extern bool TextHasVisible(const char *s, int len);

#endif							/* POPSELL_HASHING_H */
