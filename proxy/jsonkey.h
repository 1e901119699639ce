/*
 * jsonkey — one value out of a JSON document, found by a dotted path ("json:a.b.0.c").
 *
 *     bytes ──► jsonkey_parse ──► doc (jsmn tokens, checked to be one well-formed value)
 *     doc + "message.chat.id" ──► jsonkey_get ──► kind + text
 *
 * Strings come out unescaped (\uXXXX and surrogate pairs as UTF-8); numbers, true, false
 * and null as their raw token text, so a 64-bit id is never rounded through a double.
 * Bounded: at most JSONKEY_TOKENS_MAX tokens and JSONKEY_DEPTH_MAX levels, one
 * allocation per document. Pure: no I/O. Only jsonkey.c includes <jsmn.h>.
 */
#ifndef RL_JSONKEY_H
#define RL_JSONKEY_H

#include <stdbool.h>
#include <stddef.h>

#define JSONKEY_TOKENS_MAX 16384       /* tokens per document; more is refused (TOO_BIG) */
#define JSONKEY_DEPTH_MAX  64          /* nesting of objects and arrays; deeper is TOO_BIG */
#define JSONKEY_LEN_MAX    (64u << 20) /* bytes per document (jsmn counts in int) */

/* jsonkey_get flags */
#define JSONKEY_F_ANY_MEMBER                                                                       \
	(1u << 0) /* a "*" segment matches any member of an object                                 \
	             (the first one for which the rest of the path                                 \
	             resolves); without it "*" is a member name */

enum jsonkey_status {
	JSONKEY_OK = 0,     /* parsed, or found */
	JSONKEY_ABSENT,     /* get: the path leads nowhere */
	JSONKEY_TOO_LONG,   /* get: the text does not fit the caller's buffer */
	JSONKEY_BAD_STRING, /* get: a \u escape decodes to no character (lone surrogate) */
	JSONKEY_BROKEN,     /* parse: not exactly one well-formed object or array */
	JSONKEY_TOO_BIG,    /* parse: over JSONKEY_LEN_MAX, _TOKENS_MAX or _DEPTH_MAX */
	JSONKEY_NOMEM,      /* parse: the token allocation failed */
};

enum jsonkey_kind {
	JSONKEY_STRING = 0,
	JSONKEY_NUMBER,
	JSONKEY_TRUE,
	JSONKEY_FALSE,
	JSONKEY_NULL,
	JSONKEY_OBJECT,
	JSONKEY_ARRAY,
};

/* What jsonkey_get found. */
struct jsonkey_val {
	enum jsonkey_kind kind;
	size_t count; /* OBJECT: members, ARRAY: elements; else 0 */
	size_t len;   /* bytes of text written (scalars); 0 for OBJECT and ARRAY */
};

struct jsonkey_doc;

/*
 * Tokenize js[0..len) (no NUL needed; a NUL byte inside is BROKEN). The top level must be
 * an object or an array with nothing but whitespace around it. On JSONKEY_OK *out is a
 * new document that borrows js (keep js alive and unchanged; free with jsonkey_free);
 * otherwise *out is NULL.
 */
enum jsonkey_status jsonkey_parse(const char *js, size_t len, struct jsonkey_doc **out);

void jsonkey_free(struct jsonkey_doc *d);

/*
 * Follow path[0..plen) ("a.b.0.c": a numeric segment indexes an array, and names a
 * member of an object) and describe the value there. Scalars' text goes to out, at most
 * outsize - 1 bytes plus a NUL. Returns JSONKEY_OK, _ABSENT, _TOO_LONG or _BAD_STRING.
 */
enum jsonkey_status jsonkey_get(const struct jsonkey_doc *d, const char *path, size_t plen,
                                unsigned flags, struct jsonkey_val *v, char *out, size_t outsize);

/* Short names for logs and tests ("absent"); never NULL. */
const char *jsonkey_status_name(enum jsonkey_status s);
const char *jsonkey_kind_name(enum jsonkey_kind k);

#endif
