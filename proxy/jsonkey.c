/*
 * jsonkey — dotted-path lookup in a JSON document, over the jsmn tokenizer.
 *
 * jsmn is fast and allocation-free but lenient: it accepts "[1 2]", "{"a":1,}", a leading
 * comma, bare words as primitives, raw control bytes in strings, and it stops at a NUL.
 * jsonkey_parse therefore checks the token tree and the bytes between tokens once, so a
 * document is either well-formed JSON or refused as a whole, and lookups never guess.
 *
 *     pass 1: jsmn counts tokens (no output)      → cap, then one allocation
 *     pass 2: jsmn fills the tokens (parent links) → O(depth) per closing bracket
 *     pass 3: check_value walks the tree once      → separators, literals, depth cap
 */
#define JSMN_STATIC       /* jsmn's functions become static here: one copy in the library */
#define JSMN_STRICT       /* no unquoted keys, primitives only where values go */
#define JSMN_PARENT_LINKS /* closing brackets walk up parents instead of rescanning tokens */
#include <jsmn.h>

#include "jsonkey.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define JSONKEY_INDEX_DIGITS 9    /* an array index has at most this many digits (fits int) */
#define JSONKEY_NAME_MAX     256  /* longest escaped member name compared after unescaping */
#define CHECK_BROKEN         (-1) /* check_*: not well-formed */
#define CHECK_TOO_DEEP       (-2) /* check_*: nested deeper than JSONKEY_DEPTH_MAX */

struct jsonkey_doc {
	const char *js;  /* borrowed: the document text */
	int ntok;        /* tokens in tok */
	jsmntok_t tok[]; /* in document order; a token's children follow it */
};

/* ---- pass 3: well-formedness of the token tree ---- */

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* First and one-past-last byte of a token including a string's quotes. */
static int outer_start(const jsmntok_t *t)
{
	return t->type == JSMN_STRING ? t->start - 1 : t->start;
}

static int outer_end(const jsmntok_t *t)
{
	return t->type == JSMN_STRING ? t->end + 1 : t->end;
}

/* js[from..to) is whitespace around exactly one sep (or only whitespace when sep is 0). */
static bool gap_ok(const char *js, int from, int to, char sep)
{
	bool seen = sep == '\0';

	if (from > to)
		return false;
	for (int i = from; i < to; i++) {
		if (!seen && js[i] == sep)
			seen = true;
		else if (!is_ws(js[i]))
			return false;
	}
	return seen;
}

static bool digits(const char *s, const char *end, const char **stop)
{
	const char *p = s;

	while (p < end && *p >= '0' && *p <= '9')
		p++;
	*stop = p;
	return p > s;
}

/* RFC 8259 number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool number_ok(const char *s, const char *end)
{
	const char *p = s + (s < end && *s == '-');

	if (p < end && *p == '0')
		p++;
	else if (!digits(p, end, &p))
		return false;
	if (p < end && *p == '.' && !digits(p + 1, end, &p))
		return false;
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!digits(p, end, &p))
			return false;
	}
	return p == end;
}

static bool literal_is(const char *s, size_t len, const char *lit)
{
	return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

static bool primitive_ok(const char *js, const jsmntok_t *t)
{
	const char *s = js + t->start;
	size_t len = (size_t)(t->end - t->start);

	return literal_is(s, len, "true") || literal_is(s, len, "false") ||
	       literal_is(s, len, "null") || number_ok(s, s + len);
}

/* jsmn checks escapes but lets raw control bytes through; JSON does not. */
static bool string_ok(const char *js, const jsmntok_t *t)
{
	for (int i = t->start; i < t->end; i++)
		if ((unsigned char)js[i] < 0x20)
			return false;
	return true;
}

static int check_value(const struct jsonkey_doc *d, int i, int depth);

/* An object member's key at index i: a string with exactly one child, after sep. */
static int check_member_key(const struct jsonkey_doc *d, int i, int pos, char sep)
{
	const jsmntok_t *k = &d->tok[i];

	if (k->type != JSMN_STRING || k->size != 1 || !string_ok(d->js, k) ||
	    !gap_ok(d->js, pos, outer_start(k), sep) || i + 1 >= d->ntok ||
	    !gap_ok(d->js, outer_end(k), outer_start(&d->tok[i + 1]), ':'))
		return CHECK_BROKEN;
	return i + 1;
}

/*
 * Container at i: its children and the bytes between them. Returns the index after it,
 * or CHECK_BROKEN / CHECK_TOO_DEEP.
 */
static int check_container(const struct jsonkey_doc *d, int i, int depth)
{
	const jsmntok_t *t = &d->tok[i];
	bool object = t->type == JSMN_OBJECT;
	int pos = t->start + 1, next = i + 1;

	if (depth > JSONKEY_DEPTH_MAX)
		return CHECK_TOO_DEEP;
	for (int k = 0; k < t->size; k++) {
		char sep = k == 0 ? '\0' : ',';
		if (next >= d->ntok)
			return CHECK_BROKEN;
		if (object)
			next = check_member_key(d, next, pos, sep);
		else if (!gap_ok(d->js, pos, outer_start(&d->tok[next]), sep))
			return CHECK_BROKEN;
		if (next < 0)
			return next;
		int value = next;
		next = check_value(d, value, depth + 1);
		if (next < 0)
			return next;
		pos = outer_end(&d->tok[value]);
	}
	return gap_ok(d->js, pos, t->end - 1, '\0') ? next : CHECK_BROKEN;
}

/* The value at i (at nesting level depth) and everything under it. Returns the index
 * after it, or CHECK_BROKEN / CHECK_TOO_DEEP. */
static int check_value(const struct jsonkey_doc *d, int i, int depth)
{
	const jsmntok_t *t = &d->tok[i];

	switch (t->type) {
	case JSMN_OBJECT:
	case JSMN_ARRAY:
		return check_container(d, i, depth);
	case JSMN_STRING:
		return t->size == 0 && string_ok(d->js, t) ? i + 1 : CHECK_BROKEN;
	case JSMN_PRIMITIVE:
		return primitive_ok(d->js, t) ? i + 1 : CHECK_BROKEN;
	case JSMN_UNDEFINED:
		break;
	}
	return CHECK_BROKEN;
}

/* One object or array, alone between whitespace, and well-formed throughout. */
static enum jsonkey_status doc_check(const struct jsonkey_doc *d, int len)
{
	const jsmntok_t *top = &d->tok[0];

	if (top->type != JSMN_OBJECT && top->type != JSMN_ARRAY)
		return JSONKEY_BROKEN;
	int end = check_value(d, 0, 1);
	if (end == CHECK_TOO_DEEP)
		return JSONKEY_TOO_BIG;
	if (end != d->ntok || !gap_ok(d->js, 0, top->start, '\0') ||
	    !gap_ok(d->js, top->end, len, '\0'))
		return JSONKEY_BROKEN;
	return JSONKEY_OK;
}

/* ---- parse ---- */

enum jsonkey_status jsonkey_parse(const char *js, size_t len, struct jsonkey_doc **out)
{
	jsmn_parser p;
	int n;

	*out = NULL;
	if (len > JSONKEY_LEN_MAX)
		return JSONKEY_TOO_BIG;
	if (len == 0 || memchr(js, '\0', len) != NULL)
		return JSONKEY_BROKEN;
	jsmn_init(&p);
	n = jsmn_parse(&p, js, len, NULL, 0);
	if (n == JSMN_ERROR_NOMEM || n > JSONKEY_TOKENS_MAX)
		return JSONKEY_TOO_BIG;
	if (n <= 0)
		return JSONKEY_BROKEN;
	struct jsonkey_doc *d = malloc(sizeof(*d) + (size_t)n * sizeof(d->tok[0]));
	if (d == NULL)
		return JSONKEY_NOMEM;
	d->js = js;
	jsmn_init(&p);
	d->ntok = jsmn_parse(&p, js, len, d->tok, (unsigned)n);
	enum jsonkey_status st = d->ntok == n ? doc_check(d, (int)len) : JSONKEY_BROKEN;
	if (st != JSONKEY_OK) {
		free(d);
		return st;
	}
	*out = d;
	return JSONKEY_OK;
}

void jsonkey_free(struct jsonkey_doc *d)
{
	free(d);
}

/* ---- lookup ---- */

/* Index after the subtree at i (sizes count direct children; the tree is checked). */
static int skip(const struct jsonkey_doc *d, int i)
{
	int pending = 1;

	while (pending > 0 && i < d->ntok) {
		pending += d->tok[i].size - 1;
		i++;
	}
	return i;
}

static int hex4(const char *s)
{
	int v = 0;

	for (int i = 0; i < 4; i++) {
		char c = s[i];
		int h = c >= '0' && c <= '9'   ? c - '0'
		        : c >= 'a' && c <= 'f' ? c - 'a' + 10
		        : c >= 'A' && c <= 'F' ? c - 'A' + 10
		                               : -1;
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* Append code point cp as UTF-8 to out[*o..size); false when it does not fit. */
static bool put_utf8(uint32_t cp, char *out, size_t size, size_t *o)
{
	unsigned char b[4];
	size_t n;

	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (unsigned char)(0xc0 | cp >> 6);
		b[1] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (unsigned char)(0xe0 | cp >> 12);
		b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (unsigned char)(0xf0 | cp >> 18);
		b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		b[3] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	if (*o + n > size)
		return false;
	memcpy(out + *o, b, n);
	*o += n;
	return true;
}

/*
 * The code point of the \u escape at s[*i] (s[*i] == 'u'), joining a surrogate pair;
 * advances *i to the escape's last byte. -1 for a lone surrogate. jsmn checked the hex.
 */
static long unicode_escape(const char *s, size_t len, size_t *i)
{
	long hi = hex4(s + *i + 1);

	*i += 4;
	if (hi < 0xd800 || hi > 0xdfff)
		return hi;
	if (hi > 0xdbff || *i + 6 >= len || s[*i + 1] != '\\' || s[*i + 2] != 'u')
		return -1;
	long lo = hex4(s + *i + 3);
	if (lo < 0xdc00 || lo > 0xdfff)
		return -1;
	*i += 6;
	return 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
}

static char simple_escape(char c)
{
	switch (c) {
	case 'b':
		return '\b';
	case 'f':
		return '\f';
	case 'n':
		return '\n';
	case 'r':
		return '\r';
	case 't':
		return '\t';
	default:
		return c; /* " \ / */
	}
}

/* Unescape the string body s[0..len) into out[0..size); *olen gets the length. */
static enum jsonkey_status unescape(const char *s, size_t len, char *out, size_t size, size_t *olen)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] != '\\') {
			if (o == size)
				return JSONKEY_TOO_LONG;
			out[o++] = s[i];
			continue;
		}
		i++; /* jsmn guarantees a valid escape follows */
		if (s[i] == 'u') {
			long cp = unicode_escape(s, len, &i);
			if (cp < 0)
				return JSONKEY_BAD_STRING;
			if (!put_utf8((uint32_t)cp, out, size, &o))
				return JSONKEY_TOO_LONG;
			continue;
		}
		if (o == size)
			return JSONKEY_TOO_LONG;
		out[o++] = simple_escape(s[i]);
	}
	*olen = o;
	return JSONKEY_OK;
}

/* Does member key token k spell name[0..nlen)? */
static bool key_is(const struct jsonkey_doc *d, const jsmntok_t *k, const char *name, size_t nlen)
{
	const char *s = d->js + k->start;
	size_t len = (size_t)(k->end - k->start);
	char tmp[JSONKEY_NAME_MAX];
	size_t tlen;

	if (memchr(s, '\\', len) == NULL)
		return len == nlen && memcmp(s, name, nlen) == 0;
	return unescape(s, len, tmp, sizeof(tmp), &tlen) == JSONKEY_OK && tlen == nlen &&
	       memcmp(tmp, name, nlen) == 0;
}

/* A segment of only digits (at most JSONKEY_INDEX_DIGITS) as an index; else -1. */
static int segment_index(const char *seg, size_t len)
{
	int v = 0;

	if (len == 0 || len > JSONKEY_INDEX_DIGITS)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (seg[i] < '0' || seg[i] > '9')
			return -1;
		v = v * 10 + (seg[i] - '0');
	}
	return v;
}

/* The child of container i named (object) or indexed (array) by seg; -1 if none. */
static int child(const struct jsonkey_doc *d, int i, const char *seg, size_t len)
{
	const jsmntok_t *t = &d->tok[i];
	int index = t->type == JSMN_ARRAY ? segment_index(seg, len) : -1;
	int c = i + 1;

	if (t->type == JSMN_ARRAY && index < 0)
		return -1;
	for (int k = 0; k < t->size && c < d->ntok; k++) {
		if (t->type == JSMN_OBJECT) {
			if (key_is(d, &d->tok[c], seg, len))
				return c + 1;
			c = skip(d, c + 1);
		} else {
			if (k == index)
				return c;
			c = skip(d, c);
		}
	}
	return -1;
}

static int resolve(const struct jsonkey_doc *d, int i, const char *path, size_t plen,
                   unsigned flags);

/* "*" at container i: the first member value for which the rest resolves. */
static int resolve_any(const struct jsonkey_doc *d, int i, const char *rest, size_t rlen,
                       unsigned flags)
{
	int c = i + 1;

	for (int k = 0; k < d->tok[i].size && c < d->ntok; k++) {
		int value = c + 1;
		int r = rlen == 0 ? value : resolve(d, value, rest, rlen, flags);
		if (r >= 0)
			return r;
		c = skip(d, value);
	}
	return -1;
}

/* Token index at path from container i, or -1. Iterative but for "*" segments. */
static int resolve(const struct jsonkey_doc *d, int i, const char *path, size_t plen,
                   unsigned flags)
{
	const char *end = path + plen;

	while (path < end) {
		const char *dot = memchr(path, '.', (size_t)(end - path));
		const char *stop = dot != NULL ? dot : end;
		const char *rest = dot != NULL ? dot + 1 : end;
		size_t slen = (size_t)(stop - path);
		const jsmntok_t *t = &d->tok[i];

		if (t->type != JSMN_OBJECT && t->type != JSMN_ARRAY)
			return -1;
		if ((flags & JSONKEY_F_ANY_MEMBER) && slen == 1 && *path == '*')
			return t->type == JSMN_OBJECT
			               ? resolve_any(d, i, rest, (size_t)(end - rest), flags)
			               : -1;
		i = child(d, i, path, slen);
		if (i < 0)
			return -1;
		path = rest;
	}
	return i;
}

static enum jsonkey_kind primitive_kind(char first)
{
	switch (first) {
	case 't':
		return JSONKEY_TRUE;
	case 'f':
		return JSONKEY_FALSE;
	case 'n':
		return JSONKEY_NULL;
	default:
		return JSONKEY_NUMBER;
	}
}

/* Describe token t in v, its text in out (NUL-terminated). */
static enum jsonkey_status describe(const struct jsonkey_doc *d, const jsmntok_t *t,
                                    struct jsonkey_val *v, char *out, size_t outsize)
{
	const char *s = d->js + t->start;
	size_t len = (size_t)(t->end - t->start);
	enum jsonkey_status st = JSONKEY_OK;

	v->count = 0;
	v->len = 0;
	switch (t->type) {
	case JSMN_OBJECT:
	case JSMN_ARRAY:
		v->kind = t->type == JSMN_OBJECT ? JSONKEY_OBJECT : JSONKEY_ARRAY;
		v->count = (size_t)t->size;
		break;
	case JSMN_STRING:
		v->kind = JSONKEY_STRING;
		st = unescape(s, len, out, outsize - 1, &v->len);
		break;
	default:
		v->kind = primitive_kind(*s);
		if (len > outsize - 1)
			return JSONKEY_TOO_LONG;
		memcpy(out, s, len);
		v->len = len;
		break;
	}
	if (st == JSONKEY_OK)
		out[v->len] = '\0';
	return st;
}

enum jsonkey_status jsonkey_get(const struct jsonkey_doc *d, const char *path, size_t plen,
                                unsigned flags, struct jsonkey_val *v, char *out, size_t outsize)
{
	int i = resolve(d, 0, path, plen, flags);

	if (outsize == 0)
		return JSONKEY_TOO_LONG;
	out[0] = '\0';
	if (i < 0)
		return JSONKEY_ABSENT;
	return describe(d, &d->tok[i], v, out, outsize);
}

/* ---- names ---- */

static const char *const status_names[] = {
        [JSONKEY_OK] = "ok",
        [JSONKEY_ABSENT] = "absent",
        [JSONKEY_TOO_LONG] = "too_long",
        [JSONKEY_BAD_STRING] = "bad_string",
        [JSONKEY_BROKEN] = "broken",
        [JSONKEY_TOO_BIG] = "too_big",
        [JSONKEY_NOMEM] = "nomem",
};

static const char *const kind_names[] = {
        [JSONKEY_STRING] = "string", [JSONKEY_NUMBER] = "number", [JSONKEY_TRUE] = "true",
        [JSONKEY_FALSE] = "false",   [JSONKEY_NULL] = "null",     [JSONKEY_OBJECT] = "object",
        [JSONKEY_ARRAY] = "array",
};

const char *jsonkey_status_name(enum jsonkey_status s)
{
	size_t i = (size_t)s;

	return i < sizeof(status_names) / sizeof(status_names[0]) ? status_names[i] : "unknown";
}

const char *jsonkey_kind_name(enum jsonkey_kind k)
{
	size_t i = (size_t)k;

	return i < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[i] : "unknown";
}
