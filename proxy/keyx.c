/*
 * keyx — conversation key extraction from the request head and the buffered body.
 *
 * Every source, whether configured, a preset row or one half of a sym pair, becomes a
 * struct keyx_loc (borrowed slices) and goes through the same loc_get: so a preset is
 * nothing but a table of locations. A location yields a status ranked by how much it
 * says about the request (absent < body of another type < invalid < bad body); the worst
 * one names the miss when nothing matched.
 */
#include "keyx.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jsonkey.h"
#include "preset.h"

#define KEYX_REGEX_PATH_MAX (KEYX_MAX * 4) /* longest path a regex source examines, bytes */
#define KEYX_SEGMENT_DIGITS 9              /* path:N in a sym location: at most 9 digits */
#define KEYX_MESSAGEID      ";messageid="  /* Teams thread suffix of a conversation id */

/* One location, borrowed from a configured source, a preset row or a sym half. */
struct keyx_loc {
	enum rl_keysrc_type type;
	const char *arg;     /* name, JSON path, regex text, formjson field or sym location */
	size_t arglen;       /* bytes (arg is NUL-terminated except a formjson field) */
	const char *arg2;    /* formjson JSON path or the second sym location; else NULL */
	size_t arg2len;      /* bytes */
	unsigned segment;    /* path:N */
	const regex_t *re;   /* compiled path:REGEX, or NULL to compile arg on use */
	unsigned json_flags; /* JSONKEY_F_* */
	bool cut_messageid;  /* drop a ";messageid=..." suffix from the value */
};

/* The value one location yielded. */
struct keyx_val {
	char buf[KEYX_MAX + 1]; /* decoded text, NUL-terminated */
	size_t len;             /* bytes */
	enum jsonkey_kind kind; /* JSONKEY_STRING for values outside JSON */
	size_t count;           /* JSON object members or array elements */
};

/* Outcome of one location, in rank order: a higher one explains a miss better. */
enum loc_status {
	LOC_FOUND = 0,
	LOC_ABSENT,     /* not there */
	LOC_OTHER_TYPE, /* the body has another content type than this source reads */
	LOC_INVALID,    /* there, but not usable as a key */
	LOC_BAD_BODY,   /* the body is incomplete or not well-formed */
};

enum body_type { BODY_UNKNOWN = 0, BODY_JSON, BODY_FORM, BODY_OTHER };

/* Per-call state: the request and what was parsed of its body (at most once each). */
struct keyx_req {
	const char *buf;           /* borrowed: the head bytes */
	const struct http_head *h; /* borrowed */
	const char *path, *query;  /* slices of the target ('?' excluded) */
	size_t plen, qlen;         /* bytes */
	const char *body;          /* borrowed, or NULL */
	size_t body_len;           /* bytes */
	bool body_complete;        /* false: body is only a prefix */
	enum body_type body_type;  /* from Content-Type, on first use */
	bool body_read;            /* a source of the body's own type looked inside */
	bool json_tried;           /* json was parsed (or failed) */
	struct jsonkey_doc *json;  /* owned: the JSON body, or NULL */
	const char *fj_field;      /* the form field fj was parsed from, or NULL */
	size_t fj_fieldlen;        /* bytes */
	enum loc_status fj_status; /* LOC_FOUND when fj is usable */
	char *fj_text;             /* owned: the field's decoded value */
	struct jsonkey_doc *fj;    /* owned: its JSON, or NULL */
};

static enum loc_status worse(enum loc_status a, enum loc_status b)
{
	return a > b ? a : b;
}

/* ---- values ---- */

static void val_reset(struct keyx_val *v)
{
	v->buf[0] = '\0';
	v->len = 0;
	v->kind = JSONKEY_STRING;
	v->count = 0;
}

static enum loc_status val_set(struct keyx_val *v, const char *s, size_t len)
{
	if (len > KEYX_MAX)
		return LOC_INVALID;
	memcpy(v->buf, s, len);
	v->buf[len] = '\0';
	v->len = len;
	return LOC_FOUND;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The byte at s[*i] percent-decoded ('+' → space); *i moves to the escape's last byte. */
static char decode_at(const char *s, size_t len, size_t *i)
{
	char ch = s[*i];

	if (ch == '%' && *i + 2 < len && hexval(s[*i + 1]) >= 0 && hexval(s[*i + 2]) >= 0) {
		ch = (char)(hexval(s[*i + 1]) * 16 + hexval(s[*i + 2]));
		*i += 2;
	} else if (ch == '+') {
		ch = ' ';
	}
	return ch;
}

/* Percent-decode s[0..len) into out[0..outlen); returns the decoded length or -1. */
static long percent_decode(const char *s, size_t len, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		char ch = decode_at(s, len, &i);
		if (o == outlen)
			return -1;
		out[o++] = ch;
	}
	return (long)o;
}

static enum loc_status val_set_decoded(struct keyx_val *v, const char *s, size_t len)
{
	long n = percent_decode(s, len, v->buf, KEYX_MAX);

	if (n < 0)
		return LOC_INVALID;
	v->buf[n] = '\0';
	v->len = (size_t)n;
	return LOC_FOUND;
}

/* A found value as a key: a non-empty string or number without control bytes (it is
 * forwarded in a header). JSON null counts as absent. */
static enum loc_status val_usable(const struct keyx_val *v)
{
	if (v->kind == JSONKEY_NULL)
		return LOC_ABSENT;
	if ((v->kind != JSONKEY_STRING && v->kind != JSONKEY_NUMBER) || v->len == 0)
		return LOC_INVALID;
	for (size_t i = 0; i < v->len; i++) {
		unsigned char ch = (unsigned char)v->buf[i];
		if (ch < 0x20 || ch == 0x7f)
			return LOC_INVALID;
	}
	return LOC_FOUND;
}

static bool val_is(const struct keyx_val *v, const char *text)
{
	return v->kind != JSONKEY_OBJECT && v->kind != JSONKEY_ARRAY && v->len == strlen(text) &&
	       memcmp(v->buf, text, v->len) == 0;
}

static void cut_messageid(struct keyx_val *v)
{
	char *p = strstr(v->buf, KEYX_MESSAGEID);

	if (p != NULL) {
		*p = '\0';
		v->len = (size_t)(p - v->buf);
	}
}

/* ---- head sources ---- */

static enum loc_status from_header(const struct keyx_req *rq, const char *name, struct keyx_val *v)
{
	int i = http_find_field(rq->h, rq->buf, name);

	if (i < 0)
		return LOC_ABSENT;
	return val_set(v, rq->buf + rq->h->fields[i].value.off, rq->h->fields[i].value.len);
}

/* Find name=value in pairs separated by sep (query: '&', cookie: ';'). */
static enum loc_status from_pairs(const char *name, size_t nlen, const char *s, size_t len,
                                  char sep, bool decode, struct keyx_val *v)
{
	const char *end = s + len;

	while (s < end) {
		const char *next = memchr(s, sep, (size_t)(end - s));
		const char *stop = next != NULL ? next : end;
		while (s < stop && (*s == ' ' || *s == '\t'))
			s++;
		if ((size_t)(stop - s) > nlen && memcmp(s, name, nlen) == 0 && s[nlen] == '=') {
			const char *val = s + nlen + 1;
			size_t vlen = (size_t)(stop - val);
			return decode ? val_set_decoded(v, val, vlen) : val_set(v, val, vlen);
		}
		if (next == NULL)
			break;
		s = next + 1;
	}
	return LOC_ABSENT;
}

static enum loc_status from_cookie(const struct keyx_req *rq, const struct keyx_loc *l,
                                   struct keyx_val *v)
{
	const struct http_head *h = rq->h;

	for (unsigned i = 0; i < h->nfields; i++) {
		if (!http_slice_ieq(rq->buf, h->fields[i].name, "cookie"))
			continue;
		enum loc_status r = from_pairs(l->arg, l->arglen, rq->buf + h->fields[i].value.off,
		                               h->fields[i].value.len, ';', false, v);
		if (r != LOC_ABSENT)
			return r;
	}
	return LOC_ABSENT;
}

/* The request target split into path and query (without '?'). */
static void split_target(struct keyx_req *rq)
{
	const char *t = rq->buf + rq->h->target.off;
	size_t tlen = rq->h->target.len;
	const char *q = memchr(t, '?', tlen);

	rq->path = t;
	rq->plen = q != NULL ? (size_t)(q - t) : tlen;
	rq->query = q != NULL ? q + 1 : t + tlen;
	rq->qlen = q != NULL ? tlen - rq->plen - 1 : 0;
	/* absolute-form: skip "scheme://authority" so segments count from the path */
	if (rq->plen > 0 && *rq->path != '/') {
		const char *p = rq->path, *end = rq->path + rq->plen;
		const char *slash = memchr(p, '/', rq->plen);
		if (slash != NULL && slash + 1 < end && slash[1] == '/')
			slash = memchr(slash + 2, '/', (size_t)(end - slash - 2));
		size_t skip = slash != NULL ? (size_t)(slash - p) : rq->plen;
		rq->path += skip;
		rq->plen -= skip;
	}
}

static enum loc_status from_segment(unsigned n, const char *path, size_t plen, struct keyx_val *v)
{
	size_t pos = 0;
	unsigned seg = 0;

	/* indices rather than pointers: gcc's -O2 bound analysis misreads end - path */
	while (pos < plen) {
		while (pos < plen && path[pos] == '/')
			pos++;
		size_t start = pos;
		while (pos < plen && path[pos] != '/')
			pos++;
		if (pos > start && ++seg == n)
			return val_set_decoded(v, path + start, pos - start);
	}
	return LOC_ABSENT;
}

static enum loc_status regex_match(const regex_t *re, const char *path, size_t plen,
                                   struct keyx_val *v)
{
	char tmp[KEYX_REGEX_PATH_MAX];
	regmatch_t m[2];

	if (plen >= sizeof(tmp))
		return LOC_INVALID;
	memcpy(tmp, path, plen);
	tmp[plen] = '\0';
	if (regexec(re, tmp, 2, m, 0) != 0 || m[1].rm_so < 0)
		return LOC_ABSENT;
	return val_set_decoded(v, tmp + m[1].rm_so, (size_t)(m[1].rm_eo - m[1].rm_so));
}

/* path:REGEX; a regex written inside a sym location is compiled here, per call. */
static enum loc_status from_regex(const struct keyx_loc *l, const char *path, size_t plen,
                                  struct keyx_val *v)
{
	regex_t re;
	enum loc_status r;

	if (l->re != NULL)
		return regex_match(l->re, path, plen, v);
	if (regcomp(&re, l->arg, REG_EXTENDED) != 0)
		return LOC_ABSENT;
	r = re.re_nsub >= 1 ? regex_match(&re, path, plen, v) : LOC_ABSENT;
	regfree(&re);
	return r;
}

/* ---- body ---- */

static bool media_ieq(const char *s, size_t len, const char *lit)
{
	return len == strlen(lit) && strncasecmp(s, lit, len) == 0;
}

/* The body's type from Content-Type (parameters such as charset ignored). */
static enum body_type content_type(const struct keyx_req *rq)
{
	int i = http_find_field(rq->h, rq->buf, "content-type");
	static const char json_suffix[] = "+json";
	size_t slen = sizeof(json_suffix) - 1;

	if (i < 0)
		return BODY_OTHER;
	const char *s = rq->buf + rq->h->fields[i].value.off;
	const char *semi = memchr(s, ';', rq->h->fields[i].value.len);
	size_t len = semi != NULL ? (size_t)(semi - s) : rq->h->fields[i].value.len;
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (media_ieq(s, len, "application/x-www-form-urlencoded"))
		return BODY_FORM;
	if (media_ieq(s, len, "application/json") ||
	    (len > slen && strncasecmp(s + len - slen, json_suffix, slen) == 0))
		return BODY_JSON;
	return BODY_OTHER;
}

/* May a source reading `want` look at the body? LOC_FOUND: yes; else why not. */
static enum loc_status body_gate(struct keyx_req *rq, enum body_type want)
{
	if (rq->body == NULL || rq->body_len == 0)
		return LOC_ABSENT;
	if (rq->body_type == BODY_UNKNOWN)
		rq->body_type = content_type(rq);
	if (rq->body_type != want)
		return LOC_OTHER_TYPE;
	rq->body_read = true;
	return rq->body_complete ? LOC_FOUND : LOC_BAD_BODY;
}

static enum loc_status json_value(const struct jsonkey_doc *d, const char *path, size_t plen,
                                  unsigned flags, struct keyx_val *v)
{
	struct jsonkey_val jv;

	switch (jsonkey_get(d, path, plen, flags, &jv, v->buf, sizeof(v->buf))) {
	case JSONKEY_OK:
		v->len = jv.len;
		v->kind = jv.kind;
		v->count = jv.count;
		return LOC_FOUND;
	case JSONKEY_ABSENT:
		return LOC_ABSENT;
	default:
		return LOC_INVALID;
	}
}

/* The JSON body, parsed on first use. */
static enum loc_status json_body(struct keyx_req *rq, const struct jsonkey_doc **doc)
{
	enum loc_status st = body_gate(rq, BODY_JSON);

	if (st != LOC_FOUND)
		return st;
	if (!rq->json_tried) {
		rq->json_tried = true;
		(void)jsonkey_parse(rq->body, rq->body_len, &rq->json);
	}
	*doc = rq->json;
	return rq->json != NULL ? LOC_FOUND : LOC_BAD_BODY;
}

static enum loc_status from_json(struct keyx_req *rq, const struct keyx_loc *l, struct keyx_val *v)
{
	const struct jsonkey_doc *doc = NULL;
	enum loc_status st = json_body(rq, &doc);

	return st == LOC_FOUND ? json_value(doc, l->arg, l->arglen, l->json_flags, v) : st;
}

/* Does the encoded form name raw[0..rlen) decode to name[0..nlen)? */
static bool form_name_is(const char *raw, size_t rlen, const char *name, size_t nlen)
{
	size_t j = 0;

	for (size_t i = 0; i < rlen; i++) {
		char ch = decode_at(raw, rlen, &i);
		if (j == nlen || name[j++] != ch)
			return false;
	}
	return j == nlen;
}

/* The still-encoded value of the first pair named name in a urlencoded form. */
static bool form_find(const char *s, size_t len, const char *name, size_t nlen, const char **val,
                      size_t *vlen)
{
	const char *end = s + len;

	while (s < end) {
		const char *amp = memchr(s, '&', (size_t)(end - s));
		const char *stop = amp != NULL ? amp : end;
		const char *eq = memchr(s, '=', (size_t)(stop - s));
		const char *nend = eq != NULL ? eq : stop;
		if (form_name_is(s, (size_t)(nend - s), name, nlen)) {
			*val = eq != NULL ? eq + 1 : stop;
			*vlen = (size_t)(stop - *val);
			return true;
		}
		if (amp == NULL)
			break;
		s = amp + 1;
	}
	return false;
}

static enum loc_status from_form(struct keyx_req *rq, const struct keyx_loc *l, struct keyx_val *v)
{
	enum loc_status st = body_gate(rq, BODY_FORM);
	const char *val;
	size_t vlen;

	if (st != LOC_FOUND)
		return st;
	if (!form_find(rq->body, rq->body_len, l->arg, l->arglen, &val, &vlen))
		return LOC_ABSENT;
	return val_set_decoded(v, val, vlen);
}

static void formjson_release(struct keyx_req *rq)
{
	jsonkey_free(rq->fj);
	free(rq->fj_text);
	rq->fj = NULL;
	rq->fj_text = NULL;
	rq->fj_field = NULL;
}

/* Decode form field name and parse it as JSON into rq->fj. */
static enum loc_status formjson_parse(struct keyx_req *rq, const char *name, size_t nlen)
{
	const char *val;
	size_t vlen;

	if (!form_find(rq->body, rq->body_len, name, nlen, &val, &vlen))
		return LOC_ABSENT;
	rq->fj_text = malloc(vlen + 1);
	if (rq->fj_text == NULL)
		return LOC_BAD_BODY;
	long n = percent_decode(val, vlen, rq->fj_text, vlen);
	if (n < 0 || jsonkey_parse(rq->fj_text, (size_t)n, &rq->fj) != JSONKEY_OK)
		return LOC_BAD_BODY;
	return LOC_FOUND;
}

/* The JSON in form field name (Slack's payload=), parsed once per field. */
static enum loc_status formjson_doc(struct keyx_req *rq, const char *name, size_t nlen)
{
	enum loc_status st = body_gate(rq, BODY_FORM);

	if (st != LOC_FOUND)
		return st;
	if (rq->fj_field != NULL && rq->fj_fieldlen == nlen &&
	    memcmp(rq->fj_field, name, nlen) == 0)
		return rq->fj_status;
	formjson_release(rq);
	rq->fj_field = name;
	rq->fj_fieldlen = nlen;
	rq->fj_status = formjson_parse(rq, name, nlen);
	return rq->fj_status;
}

static enum loc_status from_formjson(struct keyx_req *rq, const struct keyx_loc *l,
                                     struct keyx_val *v)
{
	enum loc_status st = formjson_doc(rq, l->arg, l->arglen);

	if (st != LOC_FOUND)
		return st;
	return json_value(rq->fj, l->arg2, l->arg2len, l->json_flags, v);
}

/* ---- locations ---- */

static enum loc_status loc_get(struct keyx_req *rq, const struct keyx_loc *l, struct keyx_val *v);

/* A location's value checked for use as (part of) a key. */
static enum loc_status loc_key(struct keyx_req *rq, const struct keyx_loc *l, struct keyx_val *v)
{
	enum loc_status st = loc_get(rq, l, v);

	if (st != LOC_FOUND)
		return st;
	if (l->cut_messageid)
		cut_messageid(v);
	return val_usable(v);
}

static unsigned segment_of(const char *s, size_t len)
{
	unsigned n = 0;

	if (len == 0 || len > KEYX_SEGMENT_DIGITS || strspn(s, "0123456789") < len)
		return 0;
	for (size_t i = 0; i < len; i++)
		n = n * 10 + (unsigned)(s[i] - '0');
	return n;
}

/* A location written as text ("form:From", "path:^/c/([^/]+)"), as in a sym pair.
 * Borrows text, which must stay NUL-terminated. False if it is not a location. */
static bool loc_parse(const char *text, struct keyx_loc *l)
{
	static const struct {
		const char *prefix;
		enum rl_keysrc_type type;
	} kinds[] = {
	        {"header:", RL_KEYSRC_HEADER},     {"query:", RL_KEYSRC_QUERY},
	        {"cookie:", RL_KEYSRC_COOKIE},     {"path:", RL_KEYSRC_PATH_SEG},
	        {"json:", RL_KEYSRC_JSON},         {"form:", RL_KEYSRC_FORM},
	        {"formjson:", RL_KEYSRC_FORMJSON},
	};

	memset(l, 0, sizeof(*l));
	for (size_t i = 0; text != NULL && i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t plen = strlen(kinds[i].prefix);
		if (strncmp(text, kinds[i].prefix, plen) != 0)
			continue;
		l->type = kinds[i].type;
		l->arg = text + plen;
		l->arglen = strlen(l->arg);
		if (l->type == RL_KEYSRC_PATH_SEG) {
			l->segment = segment_of(l->arg, l->arglen);
			l->type = l->segment > 0 ? RL_KEYSRC_PATH_SEG : RL_KEYSRC_PATH_REGEX;
		}
		if (l->type != RL_KEYSRC_FORMJSON)
			return true;
		const char *colon = memchr(l->arg, ':', l->arglen);
		if (colon == NULL)
			return false;
		l->arg2 = colon + 1;
		l->arg2len = (size_t)(l->arg + l->arglen - l->arg2);
		l->arglen = (size_t)(colon - l->arg);
		return true;
	}
	return false;
}

/* sym:A|B — both values, sorted, joined by KEYX_SYM_SEP; a miss if either is. */
static enum loc_status from_sym(struct keyx_req *rq, const struct keyx_loc *l, struct keyx_val *v)
{
	struct keyx_loc la, lb;
	struct keyx_val a, b;

	if (!loc_parse(l->arg, &la) || !loc_parse(l->arg2, &lb))
		return LOC_ABSENT;
	val_reset(&a);
	val_reset(&b);
	enum loc_status sa = loc_key(rq, &la, &a), sb = loc_key(rq, &lb, &b);
	if (sa != LOC_FOUND || sb != LOC_FOUND)
		return worse(worse(sa, sb), LOC_ABSENT);
	const struct keyx_val *lo = &a, *hi = &b;
	int cmp = memcmp(a.buf, b.buf, a.len < b.len ? a.len : b.len);
	if (cmp > 0 || (cmp == 0 && a.len > b.len)) {
		lo = &b;
		hi = &a;
	}
	if (a.len + 1 + b.len > KEYX_MAX)
		return LOC_INVALID;
	memcpy(v->buf, lo->buf, lo->len);
	v->buf[lo->len] = KEYX_SYM_SEP;
	memcpy(v->buf + lo->len + 1, hi->buf, hi->len);
	v->len = a.len + 1 + b.len;
	v->buf[v->len] = '\0';
	return LOC_FOUND;
}

static enum loc_status loc_get(struct keyx_req *rq, const struct keyx_loc *l, struct keyx_val *v)
{
	val_reset(v);
	switch (l->type) {
	case RL_KEYSRC_HEADER:
		return from_header(rq, l->arg, v);
	case RL_KEYSRC_QUERY:
		return from_pairs(l->arg, l->arglen, rq->query, rq->qlen, '&', true, v);
	case RL_KEYSRC_COOKIE:
		return from_cookie(rq, l, v);
	case RL_KEYSRC_PATH_SEG:
		return from_segment(l->segment, rq->path, rq->plen, v);
	case RL_KEYSRC_PATH_REGEX:
		return from_regex(l, rq->path, rq->plen, v);
	case RL_KEYSRC_JSON:
		return from_json(rq, l, v);
	case RL_KEYSRC_FORM:
		return from_form(rq, l, v);
	case RL_KEYSRC_FORMJSON:
		return from_formjson(rq, l, v);
	case RL_KEYSRC_SYM:
		return from_sym(rq, l, v);
	}
	return LOC_ABSENT;
}

static void loc_of_source(const struct rl_keysrc *s, struct keyx_loc *l)
{
	memset(l, 0, sizeof(*l));
	l->type = s->type;
	l->arg = s->arg != NULL ? s->arg : "";
	l->arglen = strlen(l->arg);
	l->arg2 = s->arg2;
	l->arg2len = s->arg2 != NULL ? strlen(s->arg2) : 0;
	l->segment = s->segment;
	l->re = s->re;
}

static void loc_of_row(const struct preset_row *r, struct keyx_loc *l)
{
	memset(l, 0, sizeof(*l));
	l->type = r->type;
	l->arg = r->arg;
	l->arglen = strlen(r->arg);
	l->arg2 = r->arg2;
	l->arg2len = r->arg2 != NULL ? strlen(r->arg2) : 0;
	l->segment = r->type == RL_KEYSRC_PATH_SEG ? segment_of(r->arg, l->arglen) : 0;
	l->re = r->type == RL_KEYSRC_PATH_REGEX ? preset_regex(r) : NULL;
	l->json_flags = (r->flags & PRESET_F_ANY_MEMBER) ? JSONKEY_F_ANY_MEMBER : 0;
	l->cut_messageid = (r->flags & PRESET_F_CUT_MESSAGEID) != 0;
}

/* ---- configured sources ---- */

static void key_set(struct keyx_key *out, const struct keyx_val *v)
{
	memcpy(out->buf, v->buf, v->len);
	out->buf[v->len] = '\0';
	out->len = v->len;
}

static bool from_sources(struct keyx_req *rq, const struct rl_conf *c, struct keyx_key *out,
                         enum loc_status *worst)
{
	struct keyx_loc l;
	struct keyx_val v;

	for (size_t i = 0; i < c->nkeysrc; i++) {
		loc_of_source(&c->keysrc[i], &l);
		enum loc_status st = loc_key(rq, &l, &v);
		if (st == LOC_FOUND) {
			key_set(out, &v);
			out->source = (int)i;
			return true;
		}
		*worst = worse(*worst, st);
	}
	return false;
}

/* ---- preset ---- */

static bool method_is(const struct keyx_req *rq, const char *m)
{
	size_t len = strlen(m);

	return rq->h->method.len == len && memcmp(rq->buf + rq->h->method.off, m, len) == 0;
}

static bool nokey_matches(struct keyx_req *rq, const struct preset_row *r)
{
	struct keyx_loc l;
	struct keyx_val v;

	if (r->method != NULL && !method_is(rq, r->method))
		return false;
	loc_of_row(r, &l);
	enum loc_status st = loc_get(rq, &l, &v);
	switch (r->test) {
	case PRESET_TEST_EQUALS:
		return st == LOC_FOUND && val_is(&v, r->value);
	case PRESET_TEST_PRESENT:
		return st == LOC_FOUND || st == LOC_INVALID;
	case PRESET_TEST_EMPTY:
		return st == LOC_FOUND && v.kind == JSONKEY_ARRAY && v.count == 0;
	case PRESET_TEST_NONE:
		break;
	}
	return false;
}

/* A KEY row's `when`: its JSON path holds `value` (messenger echoes). */
static bool when_holds(struct keyx_req *rq, const struct preset_row *r)
{
	const struct jsonkey_doc *doc = NULL;
	struct keyx_val v;

	if (r->when == NULL)
		return true;
	val_reset(&v);
	return json_body(rq, &doc) == LOC_FOUND &&
	       json_value(doc, r->when, strlen(r->when), 0, &v) == LOC_FOUND &&
	       val_is(&v, r->value);
}

/* The first usable value among p's rows of role; *row gets its index. */
static enum loc_status preset_value(struct keyx_req *rq, const struct preset *p,
                                    enum preset_role role, struct keyx_val *v, int *row)
{
	enum loc_status worst = LOC_ABSENT;
	struct keyx_loc l;

	for (size_t i = 0; i < p->nrows; i++) {
		const struct preset_row *r = &p->rows[i];
		if (r->role != role || !when_holds(rq, r))
			continue;
		loc_of_row(r, &l);
		enum loc_status st = loc_key(rq, &l, v);
		if (st == LOC_FOUND) {
			*row = (int)i;
			return LOC_FOUND;
		}
		worst = worse(worst, st);
	}
	return worst;
}

/* "scope/value" (or value alone when no scope row is present) into out. */
static enum loc_status preset_join(struct keyx_req *rq, const struct preset *p,
                                   const struct keyx_val *value, struct keyx_key *out)
{
	struct keyx_val scope;
	int srow = -1;

	if (preset_value(rq, p, PRESET_SCOPE, &scope, &srow) != LOC_FOUND) {
		key_set(out, value);
		return LOC_FOUND;
	}
	if (scope.len + 1 + value->len > KEYX_MAX)
		return LOC_INVALID;
	memcpy(out->buf, scope.buf, scope.len);
	out->buf[scope.len] = PRESET_SCOPE_SEP;
	memcpy(out->buf + scope.len + 1, value->buf, value->len);
	out->len = scope.len + 1 + value->len;
	out->buf[out->len] = '\0';
	return LOC_FOUND;
}

static enum keyx_miss from_preset(struct keyx_req *rq, const struct preset *p, struct keyx_key *out,
                                  enum loc_status *worst)
{
	struct keyx_val value;
	int row = -1;

	for (size_t i = 0; i < p->nrows; i++)
		if (p->rows[i].role == PRESET_NOKEY && nokey_matches(rq, &p->rows[i]))
			return KEYX_MISS_NO_KEY_EVENT;
	enum loc_status st = preset_value(rq, p, PRESET_KEY, &value, &row);
	if (st == LOC_FOUND)
		st = preset_join(rq, p, &value, out);
	if (st == LOC_FOUND) {
		out->preset_row = row;
		return KEYX_FOUND;
	}
	*worst = worse(*worst, st);
	return KEYX_MISS_ABSENT;
}

/* ---- API ---- */

static enum keyx_miss miss_of(enum loc_status worst, bool body_read)
{
	switch (worst) {
	case LOC_FOUND:
		return KEYX_FOUND;
	case LOC_ABSENT:
		return KEYX_MISS_ABSENT;
	case LOC_OTHER_TYPE: /* another source did read the body: nothing was there */
		return body_read ? KEYX_MISS_ABSENT : KEYX_MISS_BAD_BODY;
	case LOC_INVALID:
		return KEYX_MISS_INVALID;
	case LOC_BAD_BODY:
		return KEYX_MISS_BAD_BODY;
	}
	return KEYX_MISS_ABSENT;
}

static void key_reset(struct keyx_key *out)
{
	out->len = 0;
	out->buf[0] = '\0';
	out->source = -1;
	out->preset_row = -1;
}

enum keyx_miss keyx_extract(const struct rl_conf *c, const char *buf, const struct http_head *h,
                            const char *body, size_t body_len, bool body_complete,
                            struct keyx_key *out)
{
	struct keyx_req rq = {.buf = buf,
	                      .h = h,
	                      .body = body,
	                      .body_len = body_len,
	                      .body_complete = body_complete};
	const struct preset *p = preset_find(c->preset);
	enum loc_status worst = LOC_ABSENT;
	enum keyx_miss r = KEYX_MISS_ABSENT;

	key_reset(out);
	split_target(&rq);
	if (from_sources(&rq, c, out, &worst))
		r = KEYX_FOUND;
	else if (p != NULL)
		r = from_preset(&rq, p, out, &worst);
	if (r == KEYX_MISS_ABSENT)
		r = miss_of(worst, rq.body_read);
	if (r != KEYX_FOUND)
		key_reset(out);
	jsonkey_free(rq.json);
	formjson_release(&rq);
	return r;
}

static bool source_reads_body(const struct rl_keysrc *s)
{
	switch (s->type) {
	case RL_KEYSRC_JSON:
	case RL_KEYSRC_FORM:
	case RL_KEYSRC_FORMJSON:
		return true;
	case RL_KEYSRC_SYM:
		return preset_loc_reads_body(s->arg) || preset_loc_reads_body(s->arg2);
	default:
		return false;
	}
}

bool keyx_needs_body(const struct rl_conf *c)
{
	for (size_t i = 0; i < c->nkeysrc; i++)
		if (source_reads_body(&c->keysrc[i]))
			return true;
	return preset_needs_body(preset_find(c->preset));
}

const char *keyx_unsupported(const struct rl_conf *c)
{
	(void)c;
	return NULL;
}

const char *keyx_miss_name(enum keyx_miss m)
{
	static const char *const names[] = {
	        [KEYX_FOUND] = "found",
	        [KEYX_MISS_ABSENT] = "absent",
	        [KEYX_MISS_INVALID] = "invalid",
	        [KEYX_MISS_BAD_BODY] = "bad_body",
	        [KEYX_MISS_NO_KEY_EVENT] = "no_key_event",
	};
	size_t i = (size_t)m;

	return i < sizeof(names) / sizeof(names[0]) ? names[i] : "unknown";
}
