/*
 * http1 — strict HTTP/1.1 head parser and chunked-body validator (RFC 9112, RFC 9110).
 *
 * The head parser is stateless: every call scans buf from byte 0 in a single pass and
 * stops at the first byte that settles the answer, so a bad byte is reported as soon as
 * it arrives, and a prefix that is valid so far is HTTP_NEED_MORE. Character classes come
 * from one 256-entry table; nothing is copied and nothing is allocated.
 *
 *     [CRLF x <= 4] request-line / status-line   parse_request_line, parse_status_line
 *     field-line CRLF ...                          parse_field_line, note_field (per name)
 *     CRLF                                         request_framing, response_framing
 *
 * The chunked validator is a byte-level state machine over struct http_chunked that
 * skips chunk data in bulk; it can be resumed at any byte boundary.
 */
#include "http1.h"

#include <stdint.h>
#include <string.h>

/* Empty lines (CRLF) tolerated before a request line (RFC 9112 §2.2 asks for one). */
#define HTTP_LEADING_CRLF_MAX 4
/* Most hex digits in a chunk-size, leading zeros included. */
#define HTTP_CHUNK_SIZE_DIGITS_MAX 16
/* Largest Content-Length or chunk-size accepted: fits off_t and ev_ssize_t. */
#define HTTP_LENGTH_MAX ((uint64_t)INT64_MAX)

/* ---- character classes ---- */

enum char_class {
	CC_TCHAR = 0x01,  /* token character (RFC 9110 §5.6.2) */
	CC_TARGET = 0x02, /* request-target byte: VCHAR 0x21-0x7E */
	CC_VALUE = 0x04,  /* field-value byte: VCHAR, obs-text, SP, HTAB */
	CC_HEX = 0x08,    /* HEXDIG */
	CC_QDTEXT = 0x10, /* quoted-string text: qdtext, i.e. VALUE minus '"' and '\' */
	CC_WS = 0x20,     /* SP, HTAB */
	CC_HOST = 0x40,   /* uri-host / port byte: unreserved, sub-delims, ':', '[', ']', '%' */
};

/* clang-format off */
static const uint8_t char_class[256] = {
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x34, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 0x00 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 0x10 */
	0x34, 0x57, 0x06, 0x17, 0x57, 0x57, 0x57, 0x57, 0x56, 0x56, 0x57, 0x57, 0x56, 0x57, 0x57, 0x16, /* 0x20 */
	0x5f, 0x5f, 0x5f, 0x5f, 0x5f, 0x5f, 0x5f, 0x5f, 0x5f, 0x5f, 0x56, 0x56, 0x16, 0x56, 0x16, 0x16, /* 0x30 */
	0x16, 0x5f, 0x5f, 0x5f, 0x5f, 0x5f, 0x5f, 0x57, 0x57, 0x57, 0x57, 0x57, 0x57, 0x57, 0x57, 0x57, /* 0x40 */
	0x57, 0x57, 0x57, 0x57, 0x57, 0x57, 0x57, 0x57, 0x57, 0x57, 0x57, 0x56, 0x06, 0x56, 0x17, 0x57, /* 0x50 */
	0x17, 0x5f, 0x5f, 0x5f, 0x5f, 0x5f, 0x5f, 0x57, 0x57, 0x57, 0x57, 0x57, 0x57, 0x57, 0x57, 0x57, /* 0x60 */
	0x57, 0x57, 0x57, 0x57, 0x57, 0x57, 0x57, 0x57, 0x57, 0x57, 0x57, 0x16, 0x17, 0x16, 0x57, 0x00, /* 0x70 */
	0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, /* 0x80 */
	0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, /* 0x90 */
	0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, /* 0xa0 */
	0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, /* 0xb0 */
	0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, /* 0xc0 */
	0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, /* 0xd0 */
	0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, /* 0xe0 */
	0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, /* 0xf0 */
};
/* clang-format on */

static inline bool is_class(char ch, unsigned cls)
{
	return (char_class[(uint8_t)ch] & cls) != 0;
}

static inline unsigned hex_value(char ch)
{
	return ch <= '9' ? (unsigned)(ch - '0') : (unsigned)((ch | 0x20) - 'a' + 10);
}

static inline char ascii_lower(char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (char)(ch + ('a' - 'A')) : ch;
}

/* a[0..n) equals the lower-case literal lit[0..n), ignoring the case of a. */
static bool ieq_n(const char *a, const char *lit, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ascii_lower(a[i]) != lit[i])
			return false;
	return true;
}

static inline bool slice_is(const char *buf, struct http_slice s, const char *lit, size_t n)
{
	return s.len == n && ieq_n(buf + s.off, lit, n);
}

#define LIT(s) s, sizeof(s) - 1

/* ---- cursor: the bytes one parse may look at ---- */

struct cursor {
	const char *buf;
	size_t pos;  /* next unread byte */
	size_t end;  /* bytes this parse may read: min(len, max_head) */
	bool capped; /* end is max_head: a head not complete by then never will be */
};

/* Evaluate a step returning enum http_result; return its result unless HTTP_OK. */
#define TRY(step)                                                                                  \
	do {                                                                                       \
		enum http_result r_ = (step);                                                      \
		if (r_ != HTTP_OK)                                                                 \
			return r_;                                                                 \
	} while (0)

static void cursor_init(struct cursor *c, const char *buf, size_t len, size_t max_head)
{
	if (max_head > UINT32_MAX)
		max_head = UINT32_MAX; /* slices hold 32-bit offsets */
	c->buf = buf;
	c->pos = 0;
	c->end = len < max_head ? len : max_head;
	c->capped = len >= max_head;
}

static inline bool at_end(const struct cursor *c)
{
	return c->pos == c->end;
}

static inline char peek(const struct cursor *c)
{
	return c->buf[c->pos];
}

/* Advance over bytes of class cls; stops at the first other byte or at the end. */
static inline void scan(struct cursor *c, unsigned cls)
{
	size_t i = c->pos;
	while (i < c->end && is_class(c->buf[i], cls))
		i++;
	c->pos = i;
}

static inline struct http_slice slice(size_t from, size_t to)
{
	return (struct http_slice){.off = (uint32_t)from, .len = (uint32_t)(to - from)};
}

static enum http_result expect_byte(struct cursor *c, char ch)
{
	if (at_end(c))
		return HTTP_NEED_MORE;
	if (peek(c) != ch)
		return HTTP_ERR_BAD_REQUEST;
	c->pos++;
	return HTTP_OK;
}

/* The line reader: consume CRLF. A bare CR, bare LF or any other byte is malformed. */
static enum http_result read_eol(struct cursor *c)
{
	TRY(expect_byte(c, '\r'));
	return expect_byte(c, '\n');
}

/* Scan a non-empty run of class cls that must end with the byte stop; the run is *out. */
static enum http_result read_until(struct cursor *c, unsigned cls, char stop,
                                   struct http_slice *out)
{
	size_t start = c->pos;

	scan(c, cls);
	if (at_end(c))
		return HTTP_NEED_MORE;
	if (c->pos == start || peek(c) != stop)
		return HTTP_ERR_BAD_REQUEST;
	*out = slice(start, c->pos);
	c->pos++;
	return HTTP_OK;
}

static enum http_result read_digit(struct cursor *c, int *digit)
{
	if (at_end(c))
		return HTTP_NEED_MORE;
	if (peek(c) < '0' || peek(c) > '9')
		return HTTP_ERR_BAD_REQUEST;
	*digit = peek(c) - '0';
	c->pos++;
	return HTTP_OK;
}

/* ---- start lines ---- */

/* HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive. Syntax only; see check_version. */
static enum http_result read_version(struct cursor *c, int *major, int *minor)
{
	static const char name[] = "HTTP/";

	for (size_t i = 0; i < sizeof(name) - 1; i++)
		TRY(expect_byte(c, name[i]));
	TRY(read_digit(c, major));
	TRY(expect_byte(c, '.'));
	return read_digit(c, minor);
}

static enum http_result check_version(int major, int minor, struct http_head *h)
{
	if (major != 1 || minor > 1)
		return HTTP_ERR_VERSION;
	h->version_minor = minor;
	return HTTP_OK;
}

/* RFC 9112 §2.2: ignore a few empty lines before a request line, counted in head_len. */
static enum http_result skip_empty_lines(struct cursor *c)
{
	for (int n = 0;; n++) {
		if (at_end(c))
			return HTTP_NEED_MORE;
		if (peek(c) != '\r')
			return HTTP_OK;
		if (n == HTTP_LEADING_CRLF_MAX)
			return HTTP_ERR_BAD_REQUEST;
		TRY(read_eol(c));
	}
}

/* request-line = method SP request-target SP HTTP-version CRLF */
static enum http_result parse_request_line(struct cursor *c, struct http_head *h)
{
	int major, minor;

	TRY(skip_empty_lines(c));
	TRY(read_until(c, CC_TCHAR, ' ', &h->method));
	TRY(read_until(c, CC_TARGET, ' ', &h->target));
	TRY(read_version(c, &major, &minor));
	TRY(read_eol(c));
	return check_version(major, minor, h);
}

/* status-line = HTTP-version SP 3DIGIT SP [ reason-phrase ] CRLF */
static enum http_result parse_status_line(struct cursor *c, struct http_head *h)
{
	int major, minor, d[3];
	size_t reason;

	TRY(read_version(c, &major, &minor));
	TRY(expect_byte(c, ' '));
	for (int i = 0; i < 3; i++)
		TRY(read_digit(c, &d[i]));
	h->status = d[0] * 100 + d[1] * 10 + d[2];
	if (h->status < 100)
		return HTTP_ERR_BAD_REQUEST;
	TRY(expect_byte(c, ' '));
	reason = c->pos;
	scan(c, CC_VALUE);
	h->reason = slice(reason, c->pos);
	TRY(read_eol(c));
	return check_version(major, minor, h);
}

/* ---- field lines ---- */

/*
 * What the framing decision needs from the fields, gathered while they are parsed.
 * Transfer-Encoding lists of repeated fields count as one list (RFC 9110 §5.3).
 */
struct head_scan {
	const char *buf;     /* borrowed: the buffer being parsed */
	struct http_head *h; /* borrowed: the head being filled */
	bool is_request;
	bool cl_seen;         /* a Content-Length field was seen */
	uint64_t cl;          /* bytes: its value (all repeats are identical) */
	unsigned te_fields;   /* Transfer-Encoding field lines */
	unsigned te_chunked;  /* "chunked" codings among them */
	bool te_chunked_last; /* the last coding listed is "chunked" */
	bool te_other;        /* a coding other than "chunked" is listed */
};

/*
 * field-line = field-name ":" OWS field-value OWS CRLF. The name must be a token that
 * ends right at the colon; a line starting with SP/HTAB (obs-fold) has an empty name and
 * is rejected here too. The value keeps inner whitespace, loses the OWS on both ends.
 */
static enum http_result parse_field_line(struct cursor *c, struct http_field *f)
{
	size_t value, last;

	TRY(read_until(c, CC_TCHAR, ':', &f->name));
	scan(c, CC_WS);
	value = c->pos;
	scan(c, CC_VALUE);
	last = c->pos;
	TRY(read_eol(c));
	while (last > value && is_class(c->buf[last - 1], CC_WS))
		last--;
	f->value = slice(value, last);
	return HTTP_OK;
}

/* Next element of a comma-separated list in buf[*pos, end) with OWS trimmed; may be
 * empty. Returns false when the list is exhausted. */
static bool list_next(const char *buf, size_t *pos, size_t end, struct http_slice *elem)
{
	size_t i = *pos, start, last;

	if (i > end)
		return false;
	while (i < end && is_class(buf[i], CC_WS))
		i++;
	start = i;
	while (i < end && buf[i] != ',')
		i++;
	last = i;
	while (last > start && is_class(buf[last - 1], CC_WS))
		last--;
	*elem = slice(start, last);
	*pos = i + 1; /* past the comma, or past end: the next call stops */
	return true;
}

static bool slice_all(const char *buf, struct http_slice s, unsigned cls)
{
	for (uint32_t i = 0; i < s.len; i++)
		if (!is_class(buf[s.off + i], cls))
			return false;
	return true;
}

/* Host: one per request, value made of uri-host [":" port] bytes (may be empty). */
static enum http_result note_host(struct head_scan *s, unsigned idx)
{
	if (!s->is_request)
		return HTTP_OK;
	if (s->h->host_field >= 0 || !slice_all(s->buf, s->h->fields[idx].value, CC_HOST))
		return HTTP_ERR_BAD_REQUEST;
	s->h->host_field = (int)idx;
	return HTTP_OK;
}

/* Content-Length = 1*DIGIT up to HTTP_LENGTH_MAX. Repeats must carry the same number;
 * a comma list is not accepted at all. */
static enum http_result note_content_length(struct head_scan *s, unsigned idx)
{
	struct http_slice v = s->h->fields[idx].value;
	uint64_t n = 0;

	if (v.len == 0)
		return HTTP_ERR_BAD_REQUEST;
	for (uint32_t i = 0; i < v.len; i++) {
		char ch = s->buf[v.off + i];
		unsigned d = (unsigned)(ch - '0');

		if (ch < '0' || ch > '9' || n > (HTTP_LENGTH_MAX - d) / 10)
			return HTTP_ERR_BAD_REQUEST;
		n = n * 10 + d;
	}
	if (s->cl_seen && n != s->cl)
		return HTTP_ERR_BAD_REQUEST;
	s->cl_seen = true;
	s->cl = n;
	return HTTP_OK;
}

/* Transfer-Encoding: a non-empty list of bare tokens (no coding we meet takes parameters;
 * a parameter or an empty element is malformed). The verdict waits for the whole head. */
static enum http_result note_transfer_encoding(struct head_scan *s, unsigned idx)
{
	struct http_slice v = s->h->fields[idx].value, coding;
	size_t pos = v.off;

	s->te_fields++;
	while (list_next(s->buf, &pos, (size_t)v.off + v.len, &coding)) {
		if (coding.len == 0 || !slice_all(s->buf, coding, CC_TCHAR))
			return HTTP_ERR_BAD_REQUEST;
		s->te_chunked_last = slice_is(s->buf, coding, LIT("chunked"));
		if (s->te_chunked_last)
			s->te_chunked++;
		else
			s->te_other = true;
	}
	return HTTP_OK;
}

/* Connection: options are matched as case-insensitive tokens; others are left alone. */
static enum http_result note_connection(struct head_scan *s, unsigned idx)
{
	struct http_slice v = s->h->fields[idx].value, opt;
	size_t pos = v.off;

	while (list_next(s->buf, &pos, (size_t)v.off + v.len, &opt)) {
		if (slice_is(s->buf, opt, LIT("close")))
			s->h->flags |= HTTP_F_CONN_CLOSE;
		else if (slice_is(s->buf, opt, LIT("keep-alive")))
			s->h->flags |= HTTP_F_CONN_KEEPALIVE;
	}
	return HTTP_OK;
}

static enum http_result note_upgrade(struct head_scan *s, unsigned idx)
{
	s->h->flags |= HTTP_F_UPGRADE;
	return HTTP_OK;
}

static enum http_result note_expect(struct head_scan *s, unsigned idx)
{
	if (slice_is(s->buf, s->h->fields[idx].value, LIT("100-continue")))
		s->h->flags |= HTTP_F_EXPECT_CONTINUE;
	return HTTP_OK;
}

/* Fields the parser itself interprets; names in lower case. */
static const struct field_rule {
	const char *name;
	size_t len;
	enum http_result (*note)(struct head_scan *s, unsigned idx);
} field_rules[] = {
        {LIT("host"), note_host},
        {LIT("content-length"), note_content_length},
        {LIT("transfer-encoding"), note_transfer_encoding},
        {LIT("connection"), note_connection},
        {LIT("upgrade"), note_upgrade},
        {LIT("expect"), note_expect},
};

static enum http_result note_field(struct head_scan *s, unsigned idx)
{
	struct http_slice name = s->h->fields[idx].name;

	for (size_t i = 0; i < sizeof(field_rules) / sizeof(field_rules[0]); i++) {
		const struct field_rule *rule = &field_rules[i];

		if (slice_is(s->buf, name, rule->name, rule->len))
			return rule->note(s, idx);
	}
	return HTTP_OK;
}

/* Field lines up to and including the empty line that ends the head. */
static enum http_result parse_fields(struct cursor *c, struct head_scan *s)
{
	struct http_head *h = s->h;

	for (;;) {
		if (at_end(c))
			return HTTP_NEED_MORE;
		if (peek(c) == '\r')
			break;
		if (h->nfields == HTTP_MAX_HEADERS)
			return HTTP_ERR_HEAD_TOO_LARGE;
		TRY(parse_field_line(c, &h->fields[h->nfields]));
		TRY(note_field(s, h->nfields++));
	}
	TRY(read_eol(c));
	h->head_len = c->pos;
	return HTTP_OK;
}

/* ---- framing (RFC 9112 §6.3) ---- */

/* Transfer-Encoding of a request: only a lone, final "chunked" is accepted. A "chunked"
 * that is not final (or repeated) makes the length unknowable: 400. Any other coding,
 * even before a final "chunked" ("gzip, chunked"): 501, we do not decode it. */
static enum http_result request_codings(const struct head_scan *s)
{
	if (s->te_chunked > 1 || (s->te_chunked == 1 && !s->te_chunked_last))
		return HTTP_ERR_BAD_REQUEST;
	if (s->te_other)
		return HTTP_ERR_NOT_IMPLEMENTED;
	return HTTP_OK;
}

static enum http_result request_framing(struct head_scan *s)
{
	struct http_head *h = s->h;

	if (h->version_minor == 1 && h->host_field < 0)
		return HTTP_ERR_BAD_REQUEST;
	if (s->te_fields > 0) {
		/* TE in HTTP/1.0 is faulty framing (§6.1); TE with CL is how requests
		 * are smuggled (§6.3 rule 3 lets a server reject it). */
		if (s->cl_seen || h->version_minor == 0)
			return HTTP_ERR_BAD_REQUEST;
		TRY(request_codings(s));
		h->body = HTTP_BODY_CHUNKED;
	} else if (s->cl_seen) {
		h->content_length = s->cl;
		h->body = s->cl > 0 ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
	}
	return HTTP_OK;
}

static bool response_has_no_body(const struct http_head *h, bool request_was_head)
{
	return request_was_head || h->status < 200 || h->status == 204 || h->status == 304;
}

static enum http_result response_framing(struct head_scan *s, bool request_was_head)
{
	struct http_head *h = s->h;

	if (s->te_fields > 0 && (s->cl_seen || h->version_minor == 0 || s->te_chunked > 1))
		return HTTP_ERR_BAD_REQUEST;
	if (s->cl_seen)
		h->content_length = s->cl;
	if (response_has_no_body(h, request_was_head))
		h->body = HTTP_BODY_NONE;
	else if (s->te_fields > 0)
		h->body = s->te_chunked_last ? HTTP_BODY_CHUNKED : HTTP_BODY_CLOSE;
	else if (s->cl_seen)
		h->body = s->cl > 0 ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
	else
		h->body = HTTP_BODY_CLOSE;
	return HTTP_OK;
}

/* ---- entry points ---- */

static void head_reset(struct http_head *h)
{
	h->method = h->target = h->reason = (struct http_slice){0, 0};
	h->status = 0;
	h->version_minor = 0;
	h->head_len = 0;
	h->nfields = 0;
	h->host_field = -1;
	h->body = HTTP_BODY_NONE;
	h->content_length = 0;
	h->flags = 0;
}

static void scan_init(struct head_scan *s, const char *buf, struct http_head *h, bool is_request)
{
	*s = (struct head_scan){.buf = buf, .h = h, .is_request = is_request};
}

/* A valid prefix that has used up max_head bytes will never fit: too_large instead. */
static enum http_result cap(const struct cursor *c, enum http_result r, enum http_result too_large)
{
	return r == HTTP_NEED_MORE && c->capped ? too_large : r;
}

enum http_result http_parse_request(const char *buf, size_t len, size_t max_head,
                                    struct http_head *h)
{
	struct cursor c;
	struct head_scan s;

	cursor_init(&c, buf, len, max_head);
	head_reset(h);
	scan_init(&s, buf, h, true);
	TRY(cap(&c, parse_request_line(&c, h), HTTP_ERR_URI_TOO_LONG));
	TRY(cap(&c, parse_fields(&c, &s), HTTP_ERR_HEAD_TOO_LARGE));
	return request_framing(&s);
}

enum http_result http_parse_response(const char *buf, size_t len, size_t max_head,
                                     bool request_was_head, struct http_head *h)
{
	struct cursor c;
	struct head_scan s;

	cursor_init(&c, buf, len, max_head);
	head_reset(h);
	scan_init(&s, buf, h, false);
	TRY(cap(&c, parse_status_line(&c, h), HTTP_ERR_HEAD_TOO_LARGE));
	TRY(cap(&c, parse_fields(&c, &s), HTTP_ERR_HEAD_TOO_LARGE));
	return response_framing(&s, request_was_head);
}

bool http_slice_ieq(const char *buf, struct http_slice s, const char *lit)
{
	size_t n = strlen(lit);

	if (s.len != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (ascii_lower(buf[s.off + i]) != ascii_lower(lit[i]))
			return false;
	return true;
}

int http_find_field(const struct http_head *h, const char *buf, const char *name)
{
	for (unsigned i = 0; i < h->nfields; i++)
		if (http_slice_ieq(buf, h->fields[i].name, name))
			return (int)i;
	return -1;
}

bool http_keep_alive(const struct http_head *h)
{
	if (h->body == HTTP_BODY_CLOSE || (h->flags & HTTP_F_CONN_CLOSE))
		return false;
	return h->version_minor >= 1 || (h->flags & HTTP_F_CONN_KEEPALIVE);
}

/*
 * Transfer-Encoding is deliberately absent: the proxy forwards chunked bodies unchanged,
 * so the field must travel with them. Fields named in Connection are hop-by-hop too;
 * the caller strips those itself.
 */
bool http_is_hop_by_hop(const char *name, size_t len)
{
	static const struct {
		const char *name;
		size_t len;
	} hop[] = {
	        {LIT("connection")},
	        {LIT("keep-alive")},
	        {LIT("proxy-connection")},
	        {LIT("te")},
	        {LIT("trailer")},
	        {LIT("upgrade")},
	        {LIT("proxy-authenticate")},
	        {LIT("proxy-authorization")},
	};

	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (len == hop[i].len && ieq_n(name, hop[i].name, len))
			return true;
	return false;
}

/* ---- chunked body ---- */

/*
 *   chunk      = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-ext  = *( BWS ";" BWS ext-name [ BWS "=" BWS ( token / quoted-string ) ] )
 *   last-chunk = 1*("0") [ chunk-ext ] CRLF, then *( field-line CRLF ) CRLF
 */
enum chunk_state {
	CH_SIZE = 0,       /* chunk-size hex digits */
	CH_EXT_WS,         /* BWS before ";" */
	CH_EXT_NAME_WS,    /* BWS after ";" */
	CH_EXT_NAME,       /* ext-name */
	CH_EXT_EQ_WS,      /* BWS after ext-name, before "=" */
	CH_EXT_VALUE_WS,   /* BWS after "=" */
	CH_EXT_TOKEN,      /* token ext-value */
	CH_EXT_QUOTED,     /* inside a quoted ext-value */
	CH_EXT_QUOTED_ESC, /* after a backslash in it */
	CH_EXT_QUOTE_END,  /* after the closing quote */
	CH_SIZE_LF,        /* CR of the size line seen */
	CH_DATA,           /* chunk-data: remaining bytes to go */
	CH_DATA_CR,        /* CRLF after chunk-data */
	CH_DATA_LF,
	CH_TRAILER, /* start of a trailer field line, or of the final CRLF */
	CH_TRAILER_NAME,
	CH_TRAILER_VALUE,
	CH_TRAILER_LF, /* CR after a trailer field seen */
	CH_END_LF,     /* CR of the final empty line seen */
	CH_DONE,
	CH_ERROR,
};

void http_chunked_init(struct http_chunked *c)
{
	*c = (struct http_chunked){.state = CH_SIZE};
}

bool http_chunked_at_boundary(const struct http_chunked *c)
{
	return c->state == CH_SIZE && c->digits == 0;
}

static int chunk_size_digit(struct http_chunked *c, char ch)
{
	if (c->digits == HTTP_CHUNK_SIZE_DIGITS_MAX || c->remaining > (HTTP_LENGTH_MAX >> 4))
		return CH_ERROR;
	c->remaining = c->remaining << 4 | hex_value(ch);
	c->digits++;
	return CH_SIZE;
}

/* Where a size line goes after a complete size or ext-value. */
static int chunk_ext_next(char ch)
{
	if (is_class(ch, CC_WS))
		return CH_EXT_WS;
	if (ch == ';')
		return CH_EXT_NAME_WS;
	if (ch == '\r')
		return CH_SIZE_LF;
	return CH_ERROR;
}

/* One byte of an ext-value (after "="). */
static int chunk_ext_value(int state, char ch)
{
	switch (state) {
	case CH_EXT_VALUE_WS:
		if (is_class(ch, CC_WS))
			return CH_EXT_VALUE_WS;
		if (ch == '"')
			return CH_EXT_QUOTED;
		return is_class(ch, CC_TCHAR) ? CH_EXT_TOKEN : CH_ERROR;
	case CH_EXT_TOKEN:
		return is_class(ch, CC_TCHAR) ? CH_EXT_TOKEN : chunk_ext_next(ch);
	case CH_EXT_QUOTED:
		if (ch == '"')
			return CH_EXT_QUOTE_END;
		if (ch == '\\')
			return CH_EXT_QUOTED_ESC;
		return is_class(ch, CC_QDTEXT) ? CH_EXT_QUOTED : CH_ERROR;
	case CH_EXT_QUOTED_ESC:
		return is_class(ch, CC_VALUE) ? CH_EXT_QUOTED : CH_ERROR;
	default: /* CH_EXT_QUOTE_END */
		return chunk_ext_next(ch);
	}
}

/* One byte of a chunk-size line before its CR. */
static int chunk_size_line(struct http_chunked *c, char ch)
{
	if (++c->line_len > HTTP_CHUNK_LINE_MAX)
		return CH_ERROR;
	switch (c->state) {
	case CH_SIZE:
		if (is_class(ch, CC_HEX))
			return chunk_size_digit(c, ch);
		return c->digits > 0 ? chunk_ext_next(ch) : CH_ERROR;
	case CH_EXT_WS:
		if (is_class(ch, CC_WS))
			return CH_EXT_WS;
		return ch == ';' ? CH_EXT_NAME_WS : CH_ERROR;
	case CH_EXT_NAME_WS:
		if (is_class(ch, CC_WS))
			return CH_EXT_NAME_WS;
		return is_class(ch, CC_TCHAR) ? CH_EXT_NAME : CH_ERROR;
	case CH_EXT_NAME:
		if (is_class(ch, CC_TCHAR))
			return CH_EXT_NAME;
		if (is_class(ch, CC_WS))
			return CH_EXT_EQ_WS;
		return ch == '=' ? CH_EXT_VALUE_WS : chunk_ext_next(ch);
	case CH_EXT_EQ_WS:
		if (is_class(ch, CC_WS))
			return CH_EXT_EQ_WS;
		if (ch == ';')
			return CH_EXT_NAME_WS;
		return ch == '=' ? CH_EXT_VALUE_WS : CH_ERROR;
	default:
		return chunk_ext_value(c->state, ch);
	}
}

/* LF that ends a chunk-size line: data follows, or the trailer section after "0". */
static int chunk_size_end(struct http_chunked *c, char ch)
{
	if (ch != '\n')
		return CH_ERROR;
	c->line_len = 0;
	c->digits = 0;
	return c->remaining > 0 ? CH_DATA : CH_TRAILER;
}

/* One byte of the trailer section, final CRLF included. */
static int chunk_trailer(struct http_chunked *c, char ch)
{
	if (++c->line_len > HTTP_TRAILER_MAX)
		return CH_ERROR;
	switch (c->state) {
	case CH_TRAILER:
		if (ch == '\r')
			return CH_END_LF;
		return is_class(ch, CC_TCHAR) ? CH_TRAILER_NAME : CH_ERROR;
	case CH_TRAILER_NAME:
		if (is_class(ch, CC_TCHAR))
			return CH_TRAILER_NAME;
		return ch == ':' ? CH_TRAILER_VALUE : CH_ERROR;
	case CH_TRAILER_VALUE:
		if (is_class(ch, CC_VALUE))
			return CH_TRAILER_VALUE;
		return ch == '\r' ? CH_TRAILER_LF : CH_ERROR;
	case CH_TRAILER_LF:
		return ch == '\n' ? CH_TRAILER : CH_ERROR;
	default: /* CH_END_LF */
		return ch == '\n' ? CH_DONE : CH_ERROR;
	}
}

/* Next state after one byte outside chunk-data. */
static int chunk_step(struct http_chunked *c, char ch)
{
	switch (c->state) {
	case CH_SIZE_LF:
		return chunk_size_end(c, ch);
	case CH_DATA_CR:
		return ch == '\r' ? CH_DATA_LF : CH_ERROR;
	case CH_DATA_LF:
		return ch == '\n' ? CH_SIZE : CH_ERROR;
	case CH_TRAILER:
	case CH_TRAILER_NAME:
	case CH_TRAILER_VALUE:
	case CH_TRAILER_LF:
	case CH_END_LF:
		return chunk_trailer(c, ch);
	default:
		return chunk_size_line(c, ch);
	}
}

/* Skip up to avail bytes of chunk-data; returns how many were taken. */
static size_t chunk_data(struct http_chunked *c, size_t avail)
{
	size_t n = c->remaining < avail ? (size_t)c->remaining : avail;

	c->remaining -= n;
	c->body_bytes += n;
	if (c->remaining == 0)
		c->state = CH_DATA_CR;
	return n;
}

/*
 * On HTTP_ERR_BAD_REQUEST *used is the offset of the offending byte. A finished or
 * failed validator keeps its answer: HTTP_OK (or the error) with *used = 0.
 */
enum http_result http_chunked_feed(struct http_chunked *c, const char *buf, size_t len,
                                   size_t *used)
{
	size_t i = 0;

	*used = 0;
	if (c->state == CH_DONE)
		return HTTP_OK;
	if (c->state == CH_ERROR)
		return HTTP_ERR_BAD_REQUEST;
	while (i < len) {
		if (c->state == CH_DATA) {
			i += chunk_data(c, len - i);
			continue;
		}
		c->state = chunk_step(c, buf[i]);
		if (c->state == CH_ERROR) {
			*used = i;
			return HTTP_ERR_BAD_REQUEST;
		}
		i++;
		if (c->state == CH_DONE) {
			*used = i;
			return HTTP_OK;
		}
	}
	*used = len;
	return HTTP_NEED_MORE;
}

/* ---- status codes ---- */

int http_result_status(enum http_result r)
{
	switch (r) {
	case HTTP_ERR_BAD_REQUEST:
		return 400;
	case HTTP_ERR_VERSION:
		return 505;
	case HTTP_ERR_HEAD_TOO_LARGE:
		return 431;
	case HTTP_ERR_URI_TOO_LONG:
		return 414;
	case HTTP_ERR_NOT_IMPLEMENTED:
		return 501;
	case HTTP_OK:
	case HTTP_NEED_MORE:
		break;
	}
	return 0;
}

const char *http_result_str(enum http_result r)
{
	switch (r) {
	case HTTP_OK:
		return "ok";
	case HTTP_NEED_MORE:
		return "incomplete";
	case HTTP_ERR_BAD_REQUEST:
		return "malformed message";
	case HTTP_ERR_VERSION:
		return "unsupported HTTP version";
	case HTTP_ERR_HEAD_TOO_LARGE:
		return "head too large";
	case HTTP_ERR_URI_TOO_LONG:
		return "request line too long";
	case HTTP_ERR_NOT_IMPLEMENTED:
		return "unsupported transfer coding";
	}
	return "unknown";
}

/* Registered codes with their RFC 9110 (and extension RFC) phrases, sorted by code. */
static const struct {
	int status;
	const char *reason;
} reasons[] = {
        {100, "Continue"},
        {101, "Switching Protocols"},
        {102, "Processing"},
        {103, "Early Hints"},
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {203, "Non-Authoritative Information"},
        {204, "No Content"},
        {205, "Reset Content"},
        {206, "Partial Content"},
        {207, "Multi-Status"},
        {208, "Already Reported"},
        {226, "IM Used"},
        {300, "Multiple Choices"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {303, "See Other"},
        {304, "Not Modified"},
        {305, "Use Proxy"},
        {307, "Temporary Redirect"},
        {308, "Permanent Redirect"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {402, "Payment Required"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {406, "Not Acceptable"},
        {407, "Proxy Authentication Required"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {410, "Gone"},
        {411, "Length Required"},
        {412, "Precondition Failed"},
        {413, "Content Too Large"},
        {414, "URI Too Long"},
        {415, "Unsupported Media Type"},
        {416, "Range Not Satisfiable"},
        {417, "Expectation Failed"},
        {421, "Misdirected Request"},
        {422, "Unprocessable Content"},
        {423, "Locked"},
        {424, "Failed Dependency"},
        {425, "Too Early"},
        {426, "Upgrade Required"},
        {428, "Precondition Required"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {451, "Unavailable For Legal Reasons"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
        {505, "HTTP Version Not Supported"},
        {506, "Variant Also Negotiates"},
        {507, "Insufficient Storage"},
        {508, "Loop Detected"},
        {510, "Not Extended"},
        {511, "Network Authentication Required"},
};

const char *http_status_reason(int status)
{
	size_t lo = 0, hi = sizeof(reasons) / sizeof(reasons[0]);

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (reasons[mid].status == status)
			return reasons[mid].reason;
		if (reasons[mid].status < status)
			lo = mid + 1;
		else
			hi = mid;
	}
	return "Unknown";
}
