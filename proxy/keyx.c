/*
 * keyx — conversation key extraction from the request head.
 */
#include "keyx.h"

#include <string.h>
#include <strings.h>

/* Copy a candidate key into out, refusing empty, oversized or control-byte values
 * (the key is forwarded in a header, so it must be a valid field value). */
static enum keyx_miss accept_key(const char *s, size_t len, struct keyx_key *out)
{
	if (len == 0 || len > KEYX_MAX)
		return KEYX_MISS_INVALID;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch == 0x7f)
			return KEYX_MISS_INVALID;
	}
	memcpy(out->buf, s, len);
	out->buf[len] = '\0';
	out->len = len;
	return KEYX_FOUND;
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

/* Percent-decode (and '+' → space) into out; returns the decoded length or -1. */
static long percent_decode(const char *s, size_t len, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (ch == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			ch = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else if (ch == '+') {
			ch = ' ';
		}
		if (o == outlen)
			return -1;
		out[o++] = ch;
	}
	return (long)o;
}

static enum keyx_miss accept_decoded(const char *s, size_t len, struct keyx_key *out)
{
	char tmp[KEYX_MAX];
	long n = percent_decode(s, len, tmp, sizeof(tmp));

	return n < 0 ? KEYX_MISS_INVALID : accept_key(tmp, (size_t)n, out);
}

static enum keyx_miss from_header(const char *name, const char *buf, const struct http_head *h,
				  struct keyx_key *out)
{
	int i = http_find_field(h, buf, name);

	if (i < 0)
		return KEYX_MISS_ABSENT;
	return accept_key(buf + h->fields[i].value.off, h->fields[i].value.len, out);
}

/* Find name=value in a list of pairs separated by sep (query: '&', cookie: ';'). */
static enum keyx_miss from_pairs(const char *name, const char *s, size_t len, char sep,
				 bool decode, struct keyx_key *out)
{
	size_t nlen = strlen(name);
	const char *end = s + len;

	while (s < end) {
		const char *next = memchr(s, sep, (size_t)(end - s));
		const char *stop = next != NULL ? next : end;
		while (s < stop && (*s == ' ' || *s == '\t'))
			s++;
		if ((size_t)(stop - s) > nlen && memcmp(s, name, nlen) == 0 && s[nlen] == '=') {
			const char *v = s + nlen + 1;
			size_t vlen = (size_t)(stop - v);
			return decode ? accept_decoded(v, vlen, out) : accept_key(v, vlen, out);
		}
		s = stop + 1;
	}
	return KEYX_MISS_ABSENT;
}

/* The request target split into path and query (without '?'). */
static void split_target(const char *buf, const struct http_head *h, const char **path,
			 size_t *plen, const char **query, size_t *qlen)
{
	const char *t = buf + h->target.off;
	const char *q = memchr(t, '?', h->target.len);

	*path = t;
	*plen = q != NULL ? (size_t)(q - t) : h->target.len;
	*query = q != NULL ? q + 1 : t + h->target.len;
	*qlen = q != NULL ? h->target.len - *plen - 1 : 0;
	/* absolute-form: skip "scheme://authority" so segments count from the path */
	if (*plen > 0 && **path != '/') {
		const char *slash = memchr(*path, '/', *plen);
		if (slash != NULL && slash + 1 < *path + *plen && slash[1] == '/')
			slash = memchr(slash + 2, '/', (size_t)(*path + *plen - slash - 2));
		size_t skip = slash != NULL ? (size_t)(slash - *path) : *plen;
		*path += skip;
		*plen -= skip;
	}
}

static enum keyx_miss from_segment(unsigned n, const char *path, size_t plen,
				   struct keyx_key *out)
{
	const char *end = path + plen;
	unsigned seg = 0;

	while (path < end) {
		while (path < end && *path == '/')
			path++;
		const char *stop = memchr(path, '/', (size_t)(end - path));
		if (stop == NULL)
			stop = end;
		if (stop > path && ++seg == n)
			return accept_decoded(path, (size_t)(stop - path), out);
		path = stop;
	}
	return KEYX_MISS_ABSENT;
}

static enum keyx_miss from_regex(const regex_t *re, const char *path, size_t plen,
				 struct keyx_key *out)
{
	char tmp[KEYX_MAX * 4];
	regmatch_t m[2];

	if (plen >= sizeof(tmp))
		return KEYX_MISS_INVALID;
	memcpy(tmp, path, plen);
	tmp[plen] = '\0';
	if (regexec(re, tmp, 2, m, 0) != 0 || m[1].rm_so < 0)
		return KEYX_MISS_ABSENT;
	return accept_decoded(tmp + m[1].rm_so, (size_t)(m[1].rm_eo - m[1].rm_so), out);
}

static enum keyx_miss from_cookie(const char *name, const char *buf, const struct http_head *h,
				  struct keyx_key *out)
{
	for (unsigned i = 0; i < h->nfields; i++) {
		if (!http_slice_ieq(buf, h->fields[i].name, "cookie"))
			continue;
		enum keyx_miss r = from_pairs(name, buf + h->fields[i].value.off,
					      h->fields[i].value.len, ';', false, out);
		if (r != KEYX_MISS_ABSENT)
			return r;
	}
	return KEYX_MISS_ABSENT;
}

static enum keyx_miss from_source(const struct rl_keysrc *src, const char *buf,
				  const struct http_head *h, struct keyx_key *out)
{
	const char *path, *query;
	size_t plen, qlen;

	split_target(buf, h, &path, &plen, &query, &qlen);
	switch (src->type) {
	case RL_KEYSRC_HEADER:
		return from_header(src->arg, buf, h, out);
	case RL_KEYSRC_QUERY:
		return from_pairs(src->arg, query, qlen, '&', true, out);
	case RL_KEYSRC_COOKIE:
		return from_cookie(src->arg, buf, h, out);
	case RL_KEYSRC_PATH_SEG:
		return from_segment(src->segment, path, plen, out);
	case RL_KEYSRC_PATH_REGEX:
		return src->re != NULL ? from_regex(src->re, path, plen, out) : KEYX_MISS_ABSENT;
	case RL_KEYSRC_JSON:
	case RL_KEYSRC_FORM:
	case RL_KEYSRC_FORMJSON:
	case RL_KEYSRC_SYM:
		break;
	}
	return KEYX_MISS_ABSENT;
}

enum keyx_miss keyx_extract(const struct rl_conf *c, const char *buf, const struct http_head *h,
			    struct keyx_key *out)
{
	enum keyx_miss worst = KEYX_MISS_ABSENT;

	out->len = 0;
	out->buf[0] = '\0';
	out->source = -1;
	for (size_t i = 0; i < c->nkeysrc; i++) {
		enum keyx_miss r = from_source(&c->keysrc[i], buf, h, out);
		if (r == KEYX_FOUND) {
			out->source = (int)i;
			return KEYX_FOUND;
		}
		if (r == KEYX_MISS_INVALID)
			worst = r;
	}
	return worst;
}

const char *keyx_unsupported(const struct rl_conf *c)
{
	static const char *const names[] = {
		[RL_KEYSRC_JSON] = "json", [RL_KEYSRC_FORM] = "form",
		[RL_KEYSRC_FORMJSON] = "formjson", [RL_KEYSRC_SYM] = "sym"};

	for (size_t i = 0; i < c->nkeysrc; i++)
		if (c->keysrc[i].type >= RL_KEYSRC_JSON)
			return names[c->keysrc[i].type];
	return NULL;
}
