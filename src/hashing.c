/*-------------------------------------------------------------------------
 *
 * hashing.c
 *	  Normalization of emails and identifiers, and their keyed hashes.
 *
 * A hash is HMAC-SHA-256 (OpenSSL) of the trimmed, lower-cased, NFC
 * normalized text under the brand's secret key: a plain SHA-256 of an email
 * is reversible by dictionary.  A key with a NULL secret is the guide's
 * legacy plain SHA-256.  Every key stays live after a rotation so entries
 * hashed under an older key keep matching; new entries use the newest key.
 *
 * Keyed OpenSSL contexts are kept per backend (creating one per call costs
 * more than the hash).  PostgreSQL's resource owners do not track them, so
 * they live for the backend and are rebuilt only when popsell.hash_keys
 * changes (relcache invalidation sent by a trigger on that table, taken
 * at every use), read with the latest snapshot (see load_keys).
 *
 *-------------------------------------------------------------------------
 */
#include "popsell.h"
#include "catalog.h"

#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/core_names.h>

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "commands/trigger.h"
#include "common/unicode_norm.h"
#include "executor/tuptable.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>
#include <unicode/utf8.h>

PG_FUNCTION_INFO_V1(normalize_email);
PG_FUNCTION_INFO_V1(has_visible_text);
PG_FUNCTION_INFO_V1(hash_email);
PG_FUNCTION_INFO_V1(email_hashes);
PG_FUNCTION_INFO_V1(hash_key_id);
PG_FUNCTION_INFO_V1(hash_keys_changed);
PG_FUNCTION_INFO_V1(popsell_random_bytes);

typedef struct KeySlot
{
	int32		key_id;
	EVP_MAC_CTX *mac;			/* NULL: legacy plain SHA-256 */
} KeySlot;

/* every live key, newest first; grown in TopMemoryContext, no limit (S13) */
static KeySlot *keys = NULL;
static int	keys_allocated = 0;
static int	nkeys = 0;
static bool keys_valid = false;
static bool keys_latest = false;	/* read with the latest snapshot */

static EVP_MAC *hmac_alg = NULL;
static EVP_MD *sha256_md = NULL;
static EVP_MD_CTX *md_ctx = NULL;

static void
openssl_failed(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("could not compute hash: %s failed", what)));
}

/* catalog.c tells us when popsell.hash_keys changed (or everything did) */
static void
keys_invalidate(PopsellRel rel)
{
	if (rel == REL_HASH_KEYS || rel == REL__COUNT)
		keys_valid = false;
}

static void
free_keys(void)
{
	for (int i = 0; i < nkeys; i++)
	{
		if (keys[i].mac != NULL)
			EVP_MAC_CTX_free(keys[i].mac);
		keys[i].mac = NULL;
	}
	nkeys = 0;
}

static void
ensure_algorithms(void)
{
	if (hmac_alg == NULL)
	{
		hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
		if (hmac_alg == NULL)
			openssl_failed("EVP_MAC_fetch");
	}
	if (sha256_md == NULL)
	{
		sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
		if (sha256_md == NULL)
			openssl_failed("EVP_MD_fetch");
	}
	if (md_ctx == NULL)
	{
		md_ctx = EVP_MD_CTX_new();
		if (md_ctx == NULL)
			openssl_failed("EVP_MD_CTX_new");
	}
}

/* Keys read from popsell.hash_keys, before they are sorted. */
typedef struct KeyRow
{
	int32		key_id;
	bytea	   *secret;			/* NULL: legacy */
} KeyRow;

static int
keyrow_newest_first(const void *a, const void *b)
{
	int32		ka = ((const KeyRow *) a)->key_id;
	int32		kb = ((const KeyRow *) b)->key_id;

	return ka > kb ? -1 : ka < kb ? 1 : 0;
}

/*
 * Read every key, newest first.
 *
 * With the latest snapshot, not the transaction's: a transaction that
 * started before a rotation committed (REPEATABLE READ, or a statement
 * that was already running) must still hash under the new key, or it
 * would miss blacklist entries made under it, which the probes read with
 * the latest snapshot too.  Keys are never deleted while entries use
 * them, so reading more keys than the snapshot shows is always safe.
 *
 * Pending invalidations are taken first: the statement trigger on
 * popsell.hash_keys sends one when a rotation commits, and a running
 * statement that holds all its locks already would otherwise not look
 * at it until its transaction ends.
 */
static void
load_keys(void)
{
	Oid			relid;
	Relation	rel;
	Snapshot	snap;
	TableScanDesc scan;
	TupleTableSlot *slot;
	AttrNumber	id_att,
				secret_att;
	KeyRow	   *rows;
	int			rows_allocated = 8;
	int			nrows = 0;

	AcceptInvalidationMessages();
	if (keys_valid && (keys_latest || IsInParallelMode()))
		return;

	ensure_algorithms();
	PopsellOnRelChange(keys_invalidate);
	relid = PopsellRelid(REL_HASH_KEYS);
	free_keys();

	/* popsell's own read: no RLS, no privilege of the caller needed */
	rel = table_open(relid, AccessShareLock);
	id_att = PopsellAttnum(REL_HASH_KEYS, "key_id");
	secret_att = PopsellAttnum(REL_HASH_KEYS, "secret");
	/*
	 * A parallel query cannot take a new snapshot: its workers read under
	 * the query's, and the leader reads again after it.
	 */
	keys_latest = !IsInParallelMode();
	snap = RegisterSnapshot(keys_latest ? GetLatestSnapshot() : GetActiveSnapshot());
	scan = table_beginscan(rel, snap, 0, NULL);
	slot = table_slot_create(rel, NULL);
	rows = palloc(rows_allocated * sizeof(KeyRow));
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d;

		CHECK_FOR_INTERRUPTS();
		if (nrows == rows_allocated)
		{
			/* any number of rotations (SPEC S13) */
			if ((Size) rows_allocated * 2 > MaxAllocSize / sizeof(KeyRow))
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("too many hashing keys: %d", nrows)));
			rows_allocated *= 2;
			rows = repalloc(rows, rows_allocated * sizeof(KeyRow));
		}
		d = slot_getattr(slot, id_att, &isnull);
		if (isnull)
			continue;
		rows[nrows].key_id = DatumGetInt32(d);
		d = slot_getattr(slot, secret_att, &isnull);
		rows[nrows].secret = isnull ? NULL : DatumGetByteaPCopy(d);
		nrows++;
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);

	if (nrows == 0)
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_INSTALL),
				 errmsg("popsell has no hashing key"),
				 errhint("Create one with SELECT popsell.rotate_hash_key();")));
	qsort(rows, nrows, sizeof(KeyRow), keyrow_newest_first);
	if (nrows > keys_allocated)
	{
		int			want = Max(nrows, 2 * keys_allocated);

		keys = keys == NULL
			? MemoryContextAllocZero(TopMemoryContext, want * sizeof(KeySlot))
			: repalloc(keys, want * sizeof(KeySlot));
		keys_allocated = want;
	}

	for (int i = 0; i < nrows; i++)
	{
		keys[nkeys].key_id = rows[i].key_id;
		keys[nkeys].mac = NULL;
		if (rows[i].secret != NULL)
		{
			bytea	   *k = rows[i].secret;
			OSSL_PARAM	params[2];
			EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac_alg);

			if (ctx == NULL)
				openssl_failed("EVP_MAC_CTX_new");
			/* count the slot before anything can fail, so it gets freed */
			keys[nkeys].mac = ctx;
			params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
														 (char *) "SHA256", 0);
			params[1] = OSSL_PARAM_construct_end();
			nkeys++;
			if (!EVP_MAC_init(ctx, (const unsigned char *) VARDATA_ANY(k),
							  VARSIZE_ANY_EXHDR(k), params))
				openssl_failed("EVP_MAC_init");
			pfree(k);
			continue;
		}
		nkeys++;
	}
	pfree(rows);
	keys_valid = true;
}

static void
digest_with(KeySlot *slot, const char *data, int len, uint8 *out)
{
	if (slot->mac != NULL)
	{
		size_t		outl = 0;

		/* a NULL key re-initializes with the key already set */
		if (!EVP_MAC_init(slot->mac, NULL, 0, NULL) ||
			!EVP_MAC_update(slot->mac, (const unsigned char *) data, len) ||
			!EVP_MAC_final(slot->mac, out, &outl, POPSELL_HASH_LEN) ||
			outl != POPSELL_HASH_LEN)
			openssl_failed("HMAC");
	}
	else
	{
		unsigned int outl = 0;

		if (!EVP_DigestInit_ex(md_ctx, sha256_md, NULL) ||
			!EVP_DigestUpdate(md_ctx, data, len) ||
			!EVP_DigestFinal_ex(md_ctx, out, &outl) ||
			outl != POPSELL_HASH_LEN)
			openssl_failed("SHA-256");
	}
}

void
HashUnderCurrentKey(const char *norm, int len, PopsellHash *out)
{
	load_keys();
	out->key_id = keys[0].key_id;
	digest_with(&keys[0], norm, len, out->digest);
}

/*
 * Hashes under every live key, newest first, in a palloc'd array;
 * returns how many.  Any number of rotations is supported.
 */
int
HashUnderAllKeys(const char *norm, int len, PopsellHash **out)
{
	PopsellHash *h;

	load_keys();
	h = palloc(nkeys * sizeof(PopsellHash));
	for (int i = 0; i < nkeys; i++)
	{
		CHECK_FOR_INTERRUPTS();
		h[i].key_id = keys[i].key_id;
		digest_with(&keys[i], norm, len, h[i].digest);
	}
	*out = h;
	return nkeys;
}

static inline bool
is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/*
 * Whether an email may not hold code point C: white space of any kind, an
 * invisible, format or default-ignorable character (zero-width space,
 * byte-order mark, combining grapheme joiner, Hangul fillers ...), a
 * variation selector, a private-use, control, surrogate or unassigned code
 * point, or a character that looks blank (braille pattern blank).
 */
static bool
refused_code_point(UChar32 c)
{
	int8_t		type = u_charType(c);

	return u_isUWhiteSpace(c) ||
		u_hasBinaryProperty(c, UCHAR_DEFAULT_IGNORABLE_CODE_POINT) ||
		u_hasBinaryProperty(c, UCHAR_VARIATION_SELECTOR) ||
		type == U_FORMAT_CHAR || type == U_CONTROL_CHAR ||
		type == U_UNASSIGNED || type == U_PRIVATE_USE_CHAR ||
		type == U_SURROGATE || type == U_LINE_SEPARATOR ||
		type == U_PARAGRAPH_SEPARATOR ||
		c == 0x2800 ||			/* braille pattern blank */
		c == 0x3164 || c == 0xFFA0 || c == 0x115F || c == 0x1160;	/* Hangul fillers */
}

/*
 * Whether code point C shows nothing: white space of any kind, an
 * invisible, format, control or default-ignorable character, a variation
 * selector, or a character that looks blank (braille pattern blank,
 * Hangul fillers).
 */
static bool
blank_code_point(UChar32 c)
{
	int8_t		type = u_charType(c);

	return u_isUWhiteSpace(c) ||
		u_hasBinaryProperty(c, UCHAR_DEFAULT_IGNORABLE_CODE_POINT) ||
		u_hasBinaryProperty(c, UCHAR_VARIATION_SELECTOR) ||
		type == U_FORMAT_CHAR || type == U_CONTROL_CHAR ||
		type == U_LINE_SEPARATOR || type == U_PARAGRAPH_SEPARATOR ||
		c == 0x2800 ||
		c == 0x3164 || c == 0xFFA0 || c == 0x115F || c == 0x1160;
}

/*
 * Whether a text field holds something visible (SPEC section 3: a personal
 * field counts only when filled): trimmed like an email, so a value of
 * only white space or invisible characters is empty.  In a database that
 * is not UTF-8, bytes above ASCII count as visible.
 */
bool
TextHasVisible(const char *s, int len)
{
	bool		utf8 = GetDatabaseEncoding() == PG_UTF8;
	int32_t		i = 0;

	while (i < len)
	{
		unsigned char b = (unsigned char) s[i];
		UChar32		c;

		if (b < 0x80)
		{
			if (!is_space(b) && b >= 0x20 && b != 0x7f)
				return true;
			i++;
			continue;
		}
		if (!utf8)
			return true;
		U8_NEXT((const uint8_t *) s, i, len, c);
		if (c < 0 || !blank_code_point(c))
			return true;
	}
	return false;
}

/* popsell._has_visible_text(value text) */
Datum
has_visible_text(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_BOOL(TextHasVisible(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
}

/*
 * Trim, case-fold and NFC-normalize, whatever the database's locale.
 *
 * The input is bounded before any work (SPEC section 8): an email holds at
 * most 254 bytes and an identifier 256, so POPSELL_MAX_RAW_INPUT leaves
 * room for surrounding white space and nothing more.  ASCII, by far the
 * common case, is handled inline.  Other text (UTF-8 databases) goes
 * through ICU, which PostgreSQL is built with: Unicode white space (no-break
 * space, ideographic space ...) is stripped at both ends, and the rest gets
 * ICU's NFKC case folding (locale-independent full case folding plus
 * compatibility forms: fullwidth letters, ligatures ... fold to their plain
 * form), then the NFC form from PostgreSQL's Unicode tables.  A value
 * holding a character that refused_code_point() names (invisible, format,
 * default-ignorable, variation selector, private use, blank-looking) is
 * only case-folded, so those characters stay for EmailLooksValid() to
 * refuse instead of vanishing into another address's form.
 */
char *
NormalizeIdentifier(const char *s, int len, int *outlen)
{
	int			start = 0;
	int			end = len;
	bool		ascii = true;
	char	   *out;

	if (len > POPSELL_MAX_RAW_INPUT)
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_TOO_LONG),
				 errmsg("value of %d bytes is too long for an email or identifier", len),
				 errdetail("popsell normalizes at most %d bytes: an email holds at most 254 bytes, an identifier at most 256.",
						   POPSELL_MAX_RAW_INPUT),
				 errhint("Correct the value."),
				 errhidestmt(true)));

	while (start < end && is_space((unsigned char) s[start]))
		start++;
	while (end > start && is_space((unsigned char) s[end - 1]))
		end--;

	for (int i = start; i < end; i++)
		if ((unsigned char) s[i] >= 0x80)
		{
			ascii = false;
			break;
		}

	if (ascii)
	{
		out = palloc(end - start + 1);
		for (int i = start; i < end; i++)
			out[i - start] = pg_ascii_tolower((unsigned char) s[i]);
		out[end - start] = '\0';
		*outlen = end - start;
		return out;
	}

	if (GetDatabaseEncoding() == PG_UTF8)
	{
		UErrorCode	err = U_ZERO_ERROR;
		int32_t		ulen;
		int32_t		ustart = 0;
		int32_t		uend;
		int32_t		flen;
		int32_t		olen;
		UChar	   *u;
		UChar	   *folded;
		char	   *folded8;
		int			n;
		pg_wchar   *w;
		pg_wchar   *nfc;
		int			wlen;
		int			nfclen = 0;
		char	   *res;
		bool		refused = false;

		/* UTF-8 to UTF-16 (bounded above: at most len code units) */
		u = palloc((end - start + 1) * sizeof(UChar));
		u_strFromUTF8(u, end - start + 1, &ulen, s + start, end - start, &err);
		if (U_FAILURE(err))
			ereport(ERROR,
					(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
					 errmsg("could not decode an email or identifier as UTF-8: %s", u_errorName(err))));

		/* strip Unicode white space at both ends */
		uend = ulen;
		while (ustart < uend)
		{
			UChar32		c;
			int32_t		i = ustart;

			CHECK_FOR_INTERRUPTS();
			U16_NEXT(u, i, uend, c);
			if (!u_isUWhiteSpace(c))
				break;
			ustart = i;
		}
		while (uend > ustart)
		{
			UChar32		c;
			int32_t		i = uend;

			CHECK_FOR_INTERRUPTS();
			U16_PREV(u, ustart, i, c);
			if (!u_isUWhiteSpace(c))
				break;
			uend = i;
		}

		/* does it hold a character an email may not hold? */
		for (int32_t i = ustart; i < uend;)
		{
			UChar32		c;

			CHECK_FOR_INTERRUPTS();
			U16_NEXT(u, i, uend, c);
			if (refused_code_point(c))
			{
				refused = true;
				break;
			}
		}

		if (refused)
		{
			/* full case folding only (at most three code units per code unit) */
			folded = palloc((3 * (uend - ustart) + 1) * sizeof(UChar));
			flen = u_strFoldCase(folded, 3 * (uend - ustart) + 1, u + ustart, uend - ustart,
								 U_FOLD_CASE_DEFAULT, &err);
		}
		else
		{
			/* NFKC case folding; grow the buffer once if it expands more */
			const UNormalizer2 *nfkc_cf = unorm2_getNFKCCasefoldInstance(&err);
			int32_t		cap = 3 * (uend - ustart) + 1;

			if (U_FAILURE(err))
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("could not load ICU's NFKC case folding: %s", u_errorName(err))));
			folded = palloc(cap * sizeof(UChar));
			flen = unorm2_normalize(nfkc_cf, u + ustart, uend - ustart, folded, cap, &err);
			if (err == U_BUFFER_OVERFLOW_ERROR)
			{
				err = U_ZERO_ERROR;
				pfree(folded);
				cap = flen + 1;
				folded = palloc(cap * sizeof(UChar));
				flen = unorm2_normalize(nfkc_cf, u + ustart, uend - ustart, folded, cap, &err);
			}
		}
		if (U_FAILURE(err))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not case-fold an email or identifier: %s", u_errorName(err))));
		folded8 = palloc(4 * flen + 1);
		u_strToUTF8(folded8, 4 * flen + 1, &olen, folded, flen, &err);
		if (U_FAILURE(err))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not encode an email or identifier as UTF-8: %s", u_errorName(err))));
		folded8[olen] = '\0';
		pfree(u);
		pfree(folded);

		/* NFC with PostgreSQL's Unicode tables */
		n = olen;
		w = palloc((n + 1) * sizeof(pg_wchar));
		wlen = pg_mb2wchar_with_len(folded8, w, n);
		w[wlen] = 0;
		nfc = unicode_normalize(UNICODE_NFC, w);
		if (nfc == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		while (nfc[nfclen] != 0)
			nfclen++;
		res = palloc(nfclen * MAX_MULTIBYTE_CHAR_LEN + 1);
		*outlen = pg_wchar2mb_with_len(nfc, res, nfclen);
		res[*outlen] = '\0';
		pfree(w);
		pfree(nfc);
		pfree(folded8);
		return res;
	}

	/* other server encodings: the database's lower() rules */
	out = str_tolower(s + start, end - start, DEFAULT_COLLATION_OID);
	*outlen = strlen(out);
	return out;
}

/*
 * Whether the UTF-8 sequence at E (non-ASCII) is a character an email may
 * not hold (refused_code_point(), or malformed UTF-8).  Sets *step to the
 * sequence's length.
 */
static bool
forbidden_in_email(const unsigned char *e, int left, int *step)
{
	int			l = pg_utf_mblen(e);
	UChar32		c;

	if (l > left || !pg_utf8_islegal(e, l))
	{
		*step = 1;
		return true;
	}
	*step = l;
	c = (UChar32) utf8_to_unicode(e);
	return refused_code_point(c);
}

/*
 * A deliberately plain check: one '@', a non-empty local part of at most
 * 64 bytes, a dotted domain, no spaces or control characters, 254 bytes
 * at most.  Deliverability is the email provider's business.
 */
bool
EmailLooksValid(const char *e, int len)
{
	int			at = -1;
	int			dot_after_at = -1;

	if (len < 3 || len > 254)
		return false;
	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) e[i];

		CHECK_FOR_INTERRUPTS();
		if (c >= 0x80 && GetDatabaseEncoding() == PG_UTF8)
		{
			int			step;

			if (forbidden_in_email((const unsigned char *) e + i, len - i, &step))
				return false;
			i += step - 1;
			continue;
		}

		if (c <= 0x20 || c == 0x7f || c == ',' || c == ';' || c == '<' ||
			c == '>' || c == '(' || c == ')' || c == '[' || c == ']' ||
			c == '\\' || c == '"')
			return false;
		if (c == '@')
		{
			if (at >= 0)
				return false;
			at = i;
		}
		else if (c == '.' && at >= 0)
			dot_after_at = i;
		if (c == '.' && i > 0 && e[i - 1] == '.')
			return false;
	}
	if (at < 1 || at > 64)
		return false;
	if (dot_after_at < at + 2 || dot_after_at >= len - 1)
		return false;
	if (e[at + 1] == '.' || e[at + 1] == '-' || e[len - 1] == '-' ||
		e[0] == '.' || e[at - 1] == '.')
		return false;
	return true;
}

static bytea *
digest_to_bytea(const uint8 *digest)
{
	bytea	   *b = palloc(VARHDRSZ + POPSELL_HASH_LEN);

	SET_VARSIZE(b, VARHDRSZ + POPSELL_HASH_LEN);
	memcpy(VARDATA(b), digest, POPSELL_HASH_LEN);
	return b;
}

/* popsell.normalize_email(text): the stored form of an email, or PS202. */
Datum
normalize_email(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	int			len;
	char	   *norm = NormalizeIdentifier(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &len);

	if (!EmailLooksValid(norm, len))
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_MALFORMED_EMAIL),
				 errmsg("malformed email address"),
				 errdetail("An email needs one \"@\", a local part of at most 64 bytes and a dotted domain, without spaces; at most 254 bytes."),
				 errhint("Correct the address, or leave the email empty."),
				 errhidestmt(true)));
	PG_RETURN_TEXT_P(cstring_to_text_with_len(norm, len));
}

/* popsell.hash_email(text): keyed hash under the newest key. */
Datum
hash_email(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	int			len;
	char	   *norm = NormalizeIdentifier(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &len);
	PopsellHash h;

	HashUnderCurrentKey(norm, len, &h);
	pfree(norm);
	PG_RETURN_BYTEA_P(digest_to_bytea(h.digest));
}

/* popsell.email_hashes(text): the hash under every live key, newest first. */
Datum
email_hashes(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	int			len;
	char	   *norm = NormalizeIdentifier(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &len);
	PopsellHash *h;
	int			n = HashUnderAllKeys(norm, len, &h);
	Datum	   *elems = palloc(n * sizeof(Datum));

	for (int i = 0; i < n; i++)
		elems[i] = PointerGetDatum(digest_to_bytea(h[i].digest));
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, BYTEAOID, -1, false, TYPALIGN_INT));
}

/* popsell.hash_key_id(): id of the key new hashes are made with. */
Datum
hash_key_id(PG_FUNCTION_ARGS)
{
	load_keys();
	PG_RETURN_INT32(keys[0].key_id);
}

/*
 * Statement trigger on popsell.hash_keys and popsell.blacklist: tell every
 * backend, once this transaction commits (and this one at once), to drop
 * what it keeps of them: keyed contexts, the blacklist filter.
 */
Datum
hash_keys_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		strcmp(get_namespace_name(RelationGetNamespace(trigdata->tg_relation)), "popsell") != 0 ||
		(strcmp(RelationGetRelationName(trigdata->tg_relation), "hash_keys") != 0 &&
		 strcmp(RelationGetRelationName(trigdata->tg_relation), "blacklist") != 0))
		ereport(ERROR,
				(errcode(ERRCODE_POPSELL_MISUSE),
				 errmsg("this popsell trigger function must be an AFTER ... FOR EACH STATEMENT trigger on popsell.hash_keys or popsell.blacklist"),
				 errhint("Drop this trigger; popsell attaches its triggers itself.")));
	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
	if (strcmp(RelationGetRelationName(trigdata->tg_relation), "hash_keys") == 0)
		keys_valid = false;
	return PointerGetDatum(NULL);
}

/* popsell._random_bytes(n): key material from the strong random source. */
Datum
popsell_random_bytes(PG_FUNCTION_ARGS)
{
	int32		n = PG_GETARG_INT32(0);
	bytea	   *b;

	if (n < 1 || n > 1024)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("number of random bytes must be between 1 and 1024, not %d", n)));
	b = palloc(VARHDRSZ + n);
	SET_VARSIZE(b, VARHDRSZ + n);
	if (!pg_strong_random(VARDATA(b), n))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes")));
	PG_RETURN_BYTEA_P(b);
}
