/*
 * test_http1 — the HTTP/1.1 head parser and chunked validator, on tables of inputs.
 *
 * Every table row is also fed split at every byte offset: each prefix must be
 * HTTP_NEED_MORE (or, for a row that fails, the same error), each prefix lives in a
 * buffer of exactly its size so AddressSanitizer catches a read past the end.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"

#define ARRAY_LEN(a)  (sizeof(a) / sizeof((a)[0]))
#define TEST_MAX_HEAD 8192

/* String literal with its length, so inputs may hold NUL bytes. */
#define IN(s) .in = (s), .len = sizeof(s) - 1

/* Field lines for the field-count limit (Host is one more). */
#define F1   "X-F: v\r\n"
#define F4   F1 F1 F1 F1
#define F16  F4 F4 F4 F4
#define F64  F16 F16 F16 F16
#define F127 F64 F16 F16 F16 F4 F4 F4 F1 F1 F1
#define A64  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

struct head_case {
	const char *name;
	const char *in;
	size_t len;
	size_t tail;     /* bytes after the head (body, next message) */
	size_t max_head; /* 0: TEST_MAX_HEAD */
	bool head_req;   /* responses: the request was HEAD */
	enum http_result want;
	/* checked when want == HTTP_OK */
	const char *method, *target, *reason, *host; /* NULL: not checked */
	int status;
	int minor;
	unsigned nfields;
	enum http_body body;
	uint64_t cl;
	unsigned flags;
};

/* ---- the split-everywhere driver ---- */

typedef enum http_result (*parse_fn)(const struct head_case *tc, const char *buf, size_t len,
                                     struct http_head *h);

static enum http_result parse_req(const struct head_case *tc, const char *buf, size_t len,
                                  struct http_head *h)
{
	return http_parse_request(buf, len, tc->max_head ? tc->max_head : TEST_MAX_HEAD, h);
}

static enum http_result parse_resp(const struct head_case *tc, const char *buf, size_t len,
                                   struct http_head *h)
{
	return http_parse_response(buf, len, tc->max_head ? tc->max_head : TEST_MAX_HEAD,
	                           tc->head_req, h);
}

/* Parse the first k bytes of tc->in from a heap copy of exactly k bytes. */
static enum http_result parse_prefix(const struct head_case *tc, parse_fn parse, size_t k,
                                     struct http_head *h)
{
	char *copy = malloc(k ? k : 1);
	enum http_result r;

	cr_assert_not_null(copy);
	memcpy(copy, tc->in, k);
	r = parse(tc, copy, k, h);
	free(copy);
	return r;
}

static bool slice_eq(const char *buf, struct http_slice s, const char *want)
{
	return s.len == strlen(want) && memcmp(buf + s.off, want, s.len) == 0;
}

static void check_slice(const struct head_case *tc, const char *what, struct http_slice s,
                        const char *want)
{
	if (want)
		cr_expect(slice_eq(tc->in, s, want), "%s: %s is \"%.*s\", want \"%s\"", tc->name,
		          what, (int)s.len, tc->in + s.off, want);
}

static void check_in_head(const struct head_case *tc, const struct http_head *h,
                          struct http_slice s)
{
	cr_assert_leq((size_t)s.off + s.len, h->head_len, "%s: slice outside the head", tc->name);
}

static void check_head(const struct head_case *tc, const struct http_head *h)
{
	cr_expect_eq(h->head_len, tc->len - tc->tail, "%s: head_len %zu", tc->name, h->head_len);
	check_slice(tc, "method", h->method, tc->method);
	check_slice(tc, "target", h->target, tc->target);
	check_slice(tc, "reason", h->reason, tc->reason);
	if (tc->host) {
		cr_assert_geq(h->host_field, 0, "%s: no host_field", tc->name);
		check_slice(tc, "host", h->fields[h->host_field].value, tc->host);
	}
	cr_expect_eq(h->status, tc->status, "%s: status %d", tc->name, h->status);
	cr_expect_eq(h->version_minor, tc->minor, "%s: minor %d", tc->name, h->version_minor);
	cr_expect_eq(h->nfields, tc->nfields, "%s: nfields %u", tc->name, h->nfields);
	cr_expect_eq(h->body, tc->body, "%s: body %d", tc->name, (int)h->body);
	cr_expect_eq(h->content_length, tc->cl, "%s: content_length %llu", tc->name,
	             (unsigned long long)h->content_length);
	cr_expect_eq(h->flags, tc->flags, "%s: flags %#x", tc->name, h->flags);
	for (unsigned i = 0; i < h->nfields; i++) {
		check_in_head(tc, h, h->fields[i].name);
		check_in_head(tc, h, h->fields[i].value);
	}
}

/*
 * Every prefix shorter than the head is NEED_MORE or (for a failing row) the expected
 * error; every longer one, the whole input included, gives the expected answer.
 */
static void check_every_split(const struct head_case *tc, parse_fn parse)
{
	size_t head = tc->len - tc->tail;
	struct http_head h;

	for (size_t k = 0; k <= tc->len; k++) {
		enum http_result r = parse_prefix(tc, parse, k, &h);

		if (k == tc->len || (k >= head && tc->want == HTTP_OK))
			cr_assert_eq(r, tc->want, "%s: %zu of %zu bytes gave %s, want %s", tc->name,
			             k, tc->len, http_result_str(r), http_result_str(tc->want));
		else
			cr_assert(r == HTTP_NEED_MORE || (r == tc->want && r != HTTP_OK),
			          "%s: prefix %zu of %zu gave %s, want need-more or %s", tc->name,
			          k, tc->len, http_result_str(r), http_result_str(tc->want));
	}
	if (tc->want == HTTP_OK) {
		parse_prefix(tc, parse, tc->len, &h);
		check_head(tc, &h);
	}
}

/* ---- requests ---- */

#define GET11  "GET / HTTP/1.1\r\n"
#define POST11 "POST /m HTTP/1.1\r\nHost: a\r\n"

static const struct head_case request_cases[] = {
        /* accepted */
        {"simple GET", IN(GET11 "Host: a\r\n\r\n"), .want = HTTP_OK, .method = "GET", .target = "/",
         .host = "a", .minor = 1, .nfields = 1},
        {"POST with Content-Length", IN(POST11 "Content-Length: 5\r\n\r\nhello"), .tail = 5,
         .want = HTTP_OK, .method = "POST", .target = "/m", .minor = 1, .nfields = 2,
         .body = HTTP_BODY_LENGTH, .cl = 5},
        {"chunked POST", IN(POST11 "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
         .tail = 15, .want = HTTP_OK, .method = "POST", .minor = 1, .nfields = 2,
         .body = HTTP_BODY_CHUNKED},
        {"chunked any case", IN(POST11 "transfer-encoding: ChunKed\r\n\r\n"), .want = HTTP_OK,
         .minor = 1, .nfields = 2, .body = HTTP_BODY_CHUNKED},
        {"HTTP/1.0 without Host", IN("GET /x HTTP/1.0\r\n\r\n"), .want = HTTP_OK, .target = "/x",
         .minor = 0},
        {"Content-Length 0 is no body", IN(POST11 "Content-Length: 0\r\n\r\n"), .want = HTTP_OK,
         .minor = 1, .nfields = 2, .body = HTTP_BODY_NONE, .cl = 0},
        {"identical Content-Length twice",
         IN(POST11 "Content-Length: 3\r\ncontent-length: 003\r\n\r\nabc"), .tail = 3,
         .want = HTTP_OK, .minor = 1, .nfields = 3, .body = HTTP_BODY_LENGTH, .cl = 3},
        {"largest Content-Length", IN(POST11 "Content-Length: 9223372036854775807\r\n\r\n"),
         .want = HTTP_OK, .minor = 1, .nfields = 2, .body = HTTP_BODY_LENGTH,
         .cl = 9223372036854775807ull},
        {"absolute-form target",
         IN("GET http://example.com:8080/p?q=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"),
         .want = HTTP_OK, .target = "http://example.com:8080/p?q=1", .host = "example.com:8080",
         .minor = 1, .nfields = 1},
        {"unknown token method", IN("M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n"), .want = HTTP_OK,
         .method = "M-SEARCH", .target = "*", .minor = 1, .nfields = 1},
        {"IPv6 Host", IN(GET11 "Host: [::1]:80\r\n\r\n"), .want = HTTP_OK, .host = "[::1]:80",
         .minor = 1, .nfields = 1},
        {"empty Host", IN(GET11 "Host:\r\n\r\n"), .want = HTTP_OK, .host = "", .minor = 1,
         .nfields = 1},
        {"leading empty lines", IN("\r\n\r\n" GET11 "Host: a\r\n\r\n"), .want = HTTP_OK,
         .method = "GET", .minor = 1, .nfields = 1},
        {"OWS trimmed", IN(GET11 "Host: \t a \t \r\n\r\n"), .want = HTTP_OK, .host = "a",
         .minor = 1, .nfields = 1},
        {"obs-text and inner spaces in value",
         IN(GET11 "Host: a\r\nX: caf\xc3\xa9 au\tlait\r\n\r\n"), .want = HTTP_OK, .minor = 1,
         .nfields = 2},
        {"empty value", IN(GET11 "Host: a\r\nX-Empty:\r\n\r\n"), .want = HTTP_OK, .minor = 1,
         .nfields = 2},
        {"Connection options", IN(GET11 "Host: a\r\nConnection: keep-alive, , CLOSE\r\n\r\n"),
         .want = HTTP_OK, .minor = 1, .nfields = 2,
         .flags = HTTP_F_CONN_CLOSE | HTTP_F_CONN_KEEPALIVE},
        {"Upgrade", IN(GET11 "Host: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
         .want = HTTP_OK, .minor = 1, .nfields = 3, .flags = HTTP_F_UPGRADE},
        {"Expect 100-continue", IN(POST11 "Expect: 100-Continue\r\nContent-Length: 1\r\n\r\n"),
         .want = HTTP_OK, .minor = 1, .nfields = 3, .body = HTTP_BODY_LENGTH, .cl = 1,
         .flags = HTTP_F_EXPECT_CONTINUE},
        {"other Expect", IN(GET11 "Host: a\r\nExpect: something\r\n\r\n"), .want = HTTP_OK,
         .minor = 1, .nfields = 2},
        {"128 fields", IN(GET11 "Host: a\r\n" F127 "\r\n"), .want = HTTP_OK, .minor = 1,
         .nfields = HTTP_MAX_HEADERS},
        {"head exactly max_head", IN(GET11 "Host: a\r\n\r\n"), .max_head = 27, .want = HTTP_OK,
         .minor = 1, .nfields = 1},
        {"GET with Content-Length", IN(GET11 "Host: a\r\nContent-Length: 2\r\n\r\nab"), .tail = 2,
         .want = HTTP_OK, .minor = 1, .nfields = 2, .body = HTTP_BODY_LENGTH, .cl = 2},

        /* Host */
        {"HTTP/1.1 without Host", IN(GET11 "X: y\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"duplicate Host", IN(GET11 "Host: a\r\nHost: a\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"duplicate Host in HTTP/1.0", IN("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"Host with space", IN(GET11 "Host: a b\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"Host with path", IN(GET11 "Host: a/b\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"Host with userinfo", IN(GET11 "Host: u@a\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},

        /* Content-Length */
        {"CL and TE", IN(POST11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"TE and CL", IN(POST11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"TE gzip and CL", IN(POST11 "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"differing CL", IN(POST11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"CL with sign", IN(POST11 "Content-Length: +5\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"CL negative", IN(POST11 "Content-Length: -1\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"CL with inner space", IN(POST11 "Content-Length: 5 5\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"CL list differing", IN(POST11 "Content-Length: 5,6\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"CL list identical", IN(POST11 "Content-Length: 5, 5\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"CL empty", IN(POST11 "Content-Length:\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"CL hex", IN(POST11 "Content-Length: 0x5\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"CL 2^63", IN(POST11 "Content-Length: 9223372036854775808\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"CL overflow", IN(POST11 "Content-Length: 184467440737095516160\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},

        /* Transfer-Encoding */
        {"TE gzip", IN(POST11 "Transfer-Encoding: gzip\r\n\r\n"), .want = HTTP_ERR_NOT_IMPLEMENTED},
        {"TE identity", IN(POST11 "Transfer-Encoding: identity\r\n\r\n"),
         .want = HTTP_ERR_NOT_IMPLEMENTED},
        {"TE chunked, gzip", IN(POST11 "Transfer-Encoding: chunked, gzip\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"TE gzip, chunked", IN(POST11 "Transfer-Encoding: gzip, chunked\r\n\r\n"),
         .want = HTTP_ERR_NOT_IMPLEMENTED},
        {"TE gzip then chunked fields",
         IN(POST11 "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"),
         .want = HTTP_ERR_NOT_IMPLEMENTED},
        {"TE chunked then gzip fields",
         IN(POST11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"TE chunked, chunked", IN(POST11 "Transfer-Encoding: chunked, chunked\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"TE chunked twice",
         IN(POST11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"TE empty", IN(POST11 "Transfer-Encoding: \r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"TE empty element", IN(POST11 "Transfer-Encoding: chunked,\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"TE with parameter", IN(POST11 "Transfer-Encoding: chunked;x=1\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"TE chunked-false", IN(POST11 "Transfer-Encoding: chunkedx\r\n\r\n"),
         .want = HTTP_ERR_NOT_IMPLEMENTED},
        {"TE in HTTP/1.0", IN("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},

        /* field syntax */
        {"space before colon", IN(GET11 "Host : a\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"tab before colon", IN(GET11 "Host\t: a\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"obs-fold", IN(GET11 "Host: a\r\nX: b\r\n c\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"space before first field", IN(GET11 " Host: a\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"empty field name", IN(GET11 "Host: a\r\n: b\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"bad byte in field name", IN(GET11 "Host: a\r\nX(y): b\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"line without colon", IN(GET11 "Host: a\r\nnocolon\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"NUL in value",
         IN(GET11 "Host: a\r\nX: a\x00"
                  "b\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"CTL in value",
         IN(GET11 "Host: a\r\nX: a\x01"
                  "b\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"DEL in value",
         IN(GET11 "Host: a\r\nX: a\x7f"
                  "b\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"bare CR in value", IN(GET11 "Host: a\r\nX: a\rb\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"bare LF after field", IN(GET11 "Host: a\nX: b\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"bare LF ends head", IN(GET11 "Host: a\r\n\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"CR CR ends head", IN(GET11 "Host: a\r\n\r\r\n"), .want = HTTP_ERR_BAD_REQUEST},

        /* request line */
        {"bare LF after request line", IN("GET / HTTP/1.1\nHost: a\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"bare LF before request line", IN("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"too many empty lines", IN("\r\n\r\n\r\n\r\n\r\n" GET11 "Host: a\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"bad method byte", IN("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"bad method byte, early", IN("GE\x01"), .want = HTTP_ERR_BAD_REQUEST},
        {"NUL in method, early", IN("G\x00"), .want = HTTP_ERR_BAD_REQUEST},
        {"empty method", IN(" / HTTP/1.1\r\nHost: a\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"two spaces", IN("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"tab separator", IN("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"CTL in target", IN("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"obs-text in target", IN("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"HTTP/0.9 request", IN("GET /\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"HTTP/2.0", IN("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), .want = HTTP_ERR_VERSION},
        {"HTTP/1.2", IN("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), .want = HTTP_ERR_VERSION},
        {"HTTP/0.9 version", IN("GET / HTTP/0.9\r\n\r\n"), .want = HTTP_ERR_VERSION},
        {"lowercase http", IN("GET / http/1.1\r\nHost: a\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"HTTP/1.1x", IN("GET / HTTP/1.1x\r\nHost: a\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"HTTP/1.10", IN("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"HTTP/11", IN("GET / HTTP/11\r\nHost: a\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"space after version", IN("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"garbage", IN("\x16\x03\x01\x02\x00\x01\x00"), .want = HTTP_ERR_BAD_REQUEST},

        /* size limits */
        {"129 fields", IN(GET11 "Host: a\r\nX: 1\r\n" F127 "\r\n"),
         .want = HTTP_ERR_HEAD_TOO_LARGE},
        {"head over max_head", IN(GET11 "Host: a\r\nX: " A64 "\r\n\r\n"), .max_head = 64,
         .want = HTTP_ERR_HEAD_TOO_LARGE},
        {"complete head over max_head", IN(GET11 "Host: a\r\n\r\n"), .max_head = 26,
         .want = HTTP_ERR_HEAD_TOO_LARGE},
        {"long request line", IN("GET /" A64 A64 " HTTP/1.1\r\nHost: a\r\n\r\n"), .max_head = 64,
         .want = HTTP_ERR_URI_TOO_LONG},
        {"long method", IN("GET" A64 A64), .max_head = 64, .want = HTTP_ERR_URI_TOO_LONG},
        {"bad byte before max_head wins", IN("GET /" A64 "\x01" A64), .max_head = 128,
         .want = HTTP_ERR_BAD_REQUEST},
};

ParameterizedTestParameters(http1_request, table)
{
	static size_t idx[ARRAY_LEN(request_cases)];

	for (size_t i = 0; i < ARRAY_LEN(idx); i++)
		idx[i] = i;
	return cr_make_param_array(size_t, idx, ARRAY_LEN(idx));
}

ParameterizedTest(size_t *i, http1_request, table)
{
	check_every_split(&request_cases[*i], parse_req);
}

/* ---- responses ---- */

static const struct head_case response_cases[] = {
        {"200 with Content-Length", IN("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"), .tail = 2,
         .want = HTTP_OK, .status = 200, .reason = "OK", .minor = 1, .nfields = 1,
         .body = HTTP_BODY_LENGTH, .cl = 2},
        {"empty reason", IN("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"), .want = HTTP_OK,
         .status = 200, .reason = "", .minor = 1, .nfields = 1, .body = HTTP_BODY_NONE},
        {"reason with spaces and obs-text", IN("HTTP/1.0 404 Not  Found \xe9\r\n\r\n"),
         .want = HTTP_OK, .status = 404, .reason = "Not  Found \xe9", .minor = 0,
         .body = HTTP_BODY_CLOSE},
        {"204 has no body", IN("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"),
         .want = HTTP_OK, .status = 204, .minor = 1, .nfields = 1, .body = HTTP_BODY_NONE, .cl = 5},
        {"304 has no body", IN("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"),
         .want = HTTP_OK, .status = 304, .minor = 1, .nfields = 1, .body = HTTP_BODY_NONE},
        {"reply to HEAD has no body", IN("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
         .head_req = true, .want = HTTP_OK, .status = 200, .minor = 1, .nfields = 1,
         .body = HTTP_BODY_NONE, .cl = 1000},
        {"chunked", IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), .tail = 5,
         .want = HTTP_OK, .status = 200, .minor = 1, .nfields = 1, .body = HTTP_BODY_CHUNKED},
        {"gzip, chunked", IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
         .want = HTTP_OK, .status = 200, .minor = 1, .nfields = 1, .body = HTTP_BODY_CHUNKED},
        {"TE without final chunked", IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
         .want = HTTP_OK, .status = 200, .minor = 1, .nfields = 1, .body = HTTP_BODY_CLOSE},
        {"chunked, gzip", IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
         .want = HTTP_OK, .status = 200, .minor = 1, .nfields = 1, .body = HTTP_BODY_CLOSE},
        {"close-delimited", IN("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody"),
         .tail = 4, .want = HTTP_OK, .status = 200, .minor = 1, .nfields = 1,
         .body = HTTP_BODY_CLOSE},
        {"101 Switching Protocols",
         IN("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "
            "websocket\r\n\r\n"),
         .want = HTTP_OK, .status = 101, .reason = "Switching Protocols", .minor = 1, .nfields = 2,
         .body = HTTP_BODY_NONE, .flags = HTTP_F_UPGRADE},
        {"100 Continue", IN("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"), .tail = 17,
         .want = HTTP_OK, .status = 100, .minor = 1, .body = HTTP_BODY_NONE},
        {"Content-Length 0", IN("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), .want = HTTP_OK,
         .status = 200, .minor = 1, .nfields = 1, .body = HTTP_BODY_NONE},
        {"identical CL twice",
         IN("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"), .want = HTTP_OK,
         .status = 200, .minor = 1, .nfields = 2, .body = HTTP_BODY_LENGTH, .cl = 1},
        {"Host not interpreted", IN("HTTP/1.1 200 OK\r\nHost: a b\r\nHost: c\r\n\r\n"),
         .want = HTTP_OK, .status = 200, .minor = 1, .nfields = 2, .body = HTTP_BODY_CLOSE},
        {"Connection close",
         IN("HTTP/1.1 500 Oops\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"), .want = HTTP_OK,
         .status = 500, .minor = 1, .nfields = 2, .body = HTTP_BODY_NONE,
         .flags = HTTP_F_CONN_CLOSE},
        {"status 999", IN("HTTP/1.1 999 Custom\r\nContent-Length: 0\r\n\r\n"), .want = HTTP_OK,
         .status = 999, .minor = 1, .nfields = 1},

        {"no SP after status", IN("HTTP/1.1 200\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"two-digit status", IN("HTTP/1.1 20 OK\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"four-digit status", IN("HTTP/1.1 2000 OK\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"status below 100", IN("HTTP/1.1 099 X\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"letters in status", IN("HTTP/1.1 2x0 OK\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"not HTTP", IN("ICY 200 OK\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"HTTP/2", IN("HTTP/2 200 OK\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"HTTP/2.0", IN("HTTP/2.0 200 OK\r\n\r\n"), .want = HTTP_ERR_VERSION},
        {"CTL in reason", IN("HTTP/1.1 200 O\x01K\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"bare LF in status line", IN("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"differing CL", IN("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"CL and TE",
         IN("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"CL and TE on 204",
         IN("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"malformed CL on 304", IN("HTTP/1.1 304 Not Modified\r\nContent-Length: x\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"malformed CL in reply to HEAD", IN("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
         .head_req = true, .want = HTTP_ERR_BAD_REQUEST},
        {"chunked twice", IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"TE in HTTP/1.0", IN("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
         .want = HTTP_ERR_BAD_REQUEST},
        {"obs-fold", IN("HTTP/1.1 200 OK\r\nX: a\r\n\tb\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"leading empty line", IN("\r\nHTTP/1.1 200 OK\r\n\r\n"), .want = HTTP_ERR_BAD_REQUEST},
        {"long status line is 431, not 414", IN("HTTP/1.1 200 " A64), .max_head = 32,
         .want = HTTP_ERR_HEAD_TOO_LARGE},
        {"129 fields", IN("HTTP/1.1 200 OK\r\nX: 1\r\nX: 2\r\n" F127 "\r\n"),
         .want = HTTP_ERR_HEAD_TOO_LARGE},
};

ParameterizedTestParameters(http1_response, table)
{
	static size_t idx[ARRAY_LEN(response_cases)];

	for (size_t i = 0; i < ARRAY_LEN(idx); i++)
		idx[i] = i;
	return cr_make_param_array(size_t, idx, ARRAY_LEN(idx));
}

ParameterizedTest(size_t *i, http1_response, table)
{
	check_every_split(&response_cases[*i], parse_resp);
}

/* ---- character classes, byte by byte against the RFC definitions ---- */

static bool is_tchar(int b)
{
	return b > 0 && b < 0x80 &&
	       (strchr("!#$%&'*+-.^_`|~", b) || (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') ||
	        (b >= 'A' && b <= 'Z'));
}

/* Parse a request built from prefix, the byte b, and suffix. */
static enum http_result parse_with_byte(const char *prefix, int b, const char *suffix)
{
	char buf[256];
	struct http_head h;
	size_t n = strlen(prefix);

	memcpy(buf, prefix, n);
	buf[n++] = (char)b;
	memcpy(buf + n, suffix, strlen(suffix));
	n += strlen(suffix);
	return http_parse_request(buf, n, TEST_MAX_HEAD, &h);
}

Test(http1_bytes, method)
{
	for (int b = 0; b < 256; b++) {
		enum http_result r = parse_with_byte("G", b, "T / HTTP/1.1\r\nHost: a\r\n\r\n");

		cr_expect_eq(r == HTTP_OK, is_tchar(b), "method byte %#x: %s", b,
		             http_result_str(r));
	}
}

Test(http1_bytes, field_name)
{
	for (int b = 0; b < 256; b++) {
		enum http_result r = parse_with_byte(GET11 "Host: a\r\nX", b, "Y: z\r\n\r\n");
		bool ok = is_tchar(b) || b == ':'; /* "X:Y: z" is field X */

		cr_expect_eq(r == HTTP_OK, ok, "field-name byte %#x: %s", b, http_result_str(r));
	}
}

Test(http1_bytes, target)
{
	for (int b = 0; b < 256; b++) {
		enum http_result r = parse_with_byte("GET /", b, "x HTTP/1.1\r\nHost: a\r\n\r\n");

		cr_expect_eq(r == HTTP_OK, b > 0x20 && b < 0x7f, "target byte %#x: %s", b,
		             http_result_str(r));
	}
}

Test(http1_bytes, field_value)
{
	for (int b = 0; b < 256; b++) {
		enum http_result r = parse_with_byte(GET11 "Host: a\r\nX: a", b, "b\r\n\r\n");
		bool ok = b == '\t' || b == ' ' || (b > 0x20 && b != 0x7f);

		cr_expect_eq(r == HTTP_OK, ok, "value byte %#x: %s", b, http_result_str(r));
	}
}

Test(http1_bytes, host)
{
	for (int b = 0; b < 256; b++) {
		enum http_result r = parse_with_byte(GET11 "Host: a", b, "b\r\n\r\n");
		bool ok = (b < 0x80 && isalnum(b)) || (b && strchr("-._~!$&'()*+,;=:[]%", b));

		cr_expect_eq(r == HTTP_OK, ok, "Host byte %#x: %s", b, http_result_str(r));
	}
}

/* ---- helpers ---- */

static const char keepalive_cases[][80] = {
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
        "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
        "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
};

Test(http1_helpers, keep_alive_requests)
{
	static const bool want[] = {true, false, false, true, false};
	struct http_head h;

	for (size_t i = 0; i < ARRAY_LEN(keepalive_cases); i++) {
		const char *in = keepalive_cases[i];

		cr_assert_eq(http_parse_request(in, strlen(in), TEST_MAX_HEAD, &h), HTTP_OK);
		cr_expect_eq(http_keep_alive(&h), want[i], "case %zu", i);
	}
}

Test(http1_helpers, keep_alive_responses)
{
	static const struct {
		const char *in;
		bool want;
	} cases[] = {
	        {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
	        {"HTTP/1.1 200 OK\r\n\r\n", false}, /* close-delimited */
	        {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", false},
	        {"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false},
	        {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", true},
	        {"HTTP/1.1 204 No Content\r\n\r\n", true},
	};
	struct http_head h;

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const char *in = cases[i].in;

		cr_assert_eq(http_parse_response(in, strlen(in), TEST_MAX_HEAD, false, &h),
		             HTTP_OK);
		cr_expect_eq(http_keep_alive(&h), cases[i].want, "case %zu", i);
	}
}

Test(http1_helpers, find_field)
{
	static const char in[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Conversation-ID: c1\r\n"
	                         "x-conversation-id: c2\r\n\r\n";
	struct http_head h;
	int i;

	cr_assert_eq(http_parse_request(in, sizeof(in) - 1, TEST_MAX_HEAD, &h), HTTP_OK);
	i = http_find_field(&h, in, "x-CONVERSATION-id");
	cr_assert_eq(i, 1);
	cr_expect(slice_eq(in, h.fields[i].value, "c1"));
	cr_expect_eq(http_find_field(&h, in, "host"), h.host_field);
	cr_expect_eq(http_find_field(&h, in, "X-Conversation"), -1);
	cr_expect_eq(http_find_field(&h, in, "X-Conversation-IDs"), -1);
	cr_expect_eq(http_find_field(&h, in, ""), -1);
}

Test(http1_helpers, slice_ieq)
{
	static const char buf[] = "Keep-Alive";
	struct http_slice s = {.off = 0, .len = 10};

	cr_expect(http_slice_ieq(buf, s, "keep-alive"));
	cr_expect(http_slice_ieq(buf, s, "KEEP-ALIVE"));
	cr_expect_not(http_slice_ieq(buf, s, "keep-aliv"));
	cr_expect_not(http_slice_ieq(buf, s, "keep-alivex"));
	cr_expect_not(http_slice_ieq(buf, s, "keep_alive"));
}

Test(http1_helpers, hop_by_hop)
{
	static const char *const hop[] = {
	        "Connection", "keep-alive", "Proxy-Connection",   "TE",
	        "Trailer",    "UPGRADE",    "Proxy-Authenticate", "proxy-authorization",
	};
	static const char *const end_to_end[] = {
	        "Transfer-Encoding",
	        "Content-Length",
	        "Host",
	        "Trailers",
	        "T",
	        "",
	        "Connectio",
	        "Upgrade-Insecure-Requests",
	};

	for (size_t i = 0; i < ARRAY_LEN(hop); i++)
		cr_expect(http_is_hop_by_hop(hop[i], strlen(hop[i])), "%s", hop[i]);
	for (size_t i = 0; i < ARRAY_LEN(end_to_end); i++)
		cr_expect_not(http_is_hop_by_hop(end_to_end[i], strlen(end_to_end[i])), "%s",
		              end_to_end[i]);
	/* length bounds the comparison: no NUL needed */
	cr_expect(http_is_hop_by_hop("te: trailers", 2));
}

Test(http1_helpers, status_reason)
{
	cr_expect_str_eq(http_status_reason(100), "Continue");
	cr_expect_str_eq(http_status_reason(101), "Switching Protocols");
	cr_expect_str_eq(http_status_reason(200), "OK");
	cr_expect_str_eq(http_status_reason(204), "No Content");
	cr_expect_str_eq(http_status_reason(400), "Bad Request");
	cr_expect_str_eq(http_status_reason(408), "Request Timeout");
	cr_expect_str_eq(http_status_reason(413), "Content Too Large");
	cr_expect_str_eq(http_status_reason(414), "URI Too Long");
	cr_expect_str_eq(http_status_reason(431), "Request Header Fields Too Large");
	cr_expect_str_eq(http_status_reason(501), "Not Implemented");
	cr_expect_str_eq(http_status_reason(502), "Bad Gateway");
	cr_expect_str_eq(http_status_reason(503), "Service Unavailable");
	cr_expect_str_eq(http_status_reason(504), "Gateway Timeout");
	cr_expect_str_eq(http_status_reason(505), "HTTP Version Not Supported");
	cr_expect_str_eq(http_status_reason(511), "Network Authentication Required");
	cr_expect_str_eq(http_status_reason(0), "Unknown");
	cr_expect_str_eq(http_status_reason(299), "Unknown");
	cr_expect_str_eq(http_status_reason(999), "Unknown");
	cr_expect_str_eq(http_status_reason(-1), "Unknown");
}

Test(http1_helpers, result_status)
{
	cr_expect_eq(http_result_status(HTTP_ERR_BAD_REQUEST), 400);
	cr_expect_eq(http_result_status(HTTP_ERR_VERSION), 505);
	cr_expect_eq(http_result_status(HTTP_ERR_HEAD_TOO_LARGE), 431);
	cr_expect_eq(http_result_status(HTTP_ERR_URI_TOO_LONG), 414);
	cr_expect_eq(http_result_status(HTTP_ERR_NOT_IMPLEMENTED), 501);
	cr_expect_eq(http_result_status(HTTP_OK), 0);
	cr_expect_eq(http_result_status(HTTP_NEED_MORE), 0);
}

Test(http1_helpers, result_str)
{
	for (int a = HTTP_OK; a <= HTTP_ERR_NOT_IMPLEMENTED; a++) {
		cr_assert_str_neq(http_result_str((enum http_result)a), "unknown");
		for (int b = HTTP_OK; b < a; b++)
			cr_expect_str_neq(http_result_str((enum http_result)a),
			                  http_result_str((enum http_result)b));
	}
}

/* ---- chunked bodies ---- */

struct chunk_case {
	const char *name;
	const char *in;
	size_t len;
	enum http_result want;
	size_t used;    /* OK: bytes of the body; error: offset of the bad byte */
	uint64_t bytes; /* chunk data bytes (OK only) */
};

#define CHUNKED_WIKI                                                                               \
	"4;a=b;c\r\nWiki\r\n5 ; name = \"q\\\"x;y\"\r\npedia\r\nE\r\n in\r\n\r\nchunks."           \
	"\r\n0;last\r\nExpires: never\r\nX-Sum:1 \r\n\r\n"

static const struct chunk_case chunk_cases[] = {
        {"one chunk", IN("5\r\nhello\r\n0\r\n\r\n"), HTTP_OK, 15, 5},
        {"last chunk only", IN("0\r\n\r\n"), HTTP_OK, 5, 0},
        {"extensions and trailers", IN(CHUNKED_WIKI), HTTP_OK, sizeof(CHUNKED_WIKI) - 1, 23},
        {"next message not consumed", IN("0\r\n\r\nGET / HTTP/1.1\r\n"), HTTP_OK, 5, 0},
        {"upper-case hex", IN("A\r\n0123456789\r\n0\r\n\r\n"), HTTP_OK, 20, 10},
        {"leading zeros", IN("0005\r\nhello\r\n000\r\n\r\n"), HTTP_OK, 20, 5},
        {"CRLF in data", IN("2\r\n\r\n\r\n0\r\n\r\n"), HTTP_OK, 12, 2},
        {"largest size", IN("7fffffffffffffff\r\nabc"), HTTP_NEED_MORE, 21, 0},
        {"incomplete data", IN("5\r\nhel"), HTTP_NEED_MORE, 6, 0},
        {"incomplete trailer", IN("0\r\nX: y\r\n"), HTTP_NEED_MORE, 9, 0},
        {"unterminated quote", IN("1;a=\"x y"), HTTP_NEED_MORE, 8, 0},

        {"bad hex", IN("5g\r\nhello\r\n"), HTTP_ERR_BAD_REQUEST, 1},
        {"no size", IN("\r\n"), HTTP_ERR_BAD_REQUEST, 0},
        {"0x prefix", IN("0x5\r\n"), HTTP_ERR_BAD_REQUEST, 1},
        {"negative size", IN("-5\r\n"), HTTP_ERR_BAD_REQUEST, 0},
        {"space after size", IN("5 \r\nhello\r\n"), HTTP_ERR_BAD_REQUEST, 2},
        {"17 hex digits", IN("00000000000000005\r\n"), HTTP_ERR_BAD_REQUEST, 16},
        {"size over 2^63-1", IN("8000000000000000\r\n"), HTTP_ERR_BAD_REQUEST, 15},
        {"size overflow", IN("ffffffffffffffff0\r\n"), HTTP_ERR_BAD_REQUEST, 15},
        {"missing CRLF after data", IN("5\r\nhelloX\r\n0\r\n\r\n"), HTTP_ERR_BAD_REQUEST, 8},
        {"data longer than size", IN("3\r\nhello\r\n"), HTTP_ERR_BAD_REQUEST, 6},
        {"bare LF after data", IN("5\r\nhello\n0\r\n\r\n"), HTTP_ERR_BAD_REQUEST, 8},
        {"bare LF after size", IN("5\nhello\r\n"), HTTP_ERR_BAD_REQUEST, 1},
        {"bare CR after size", IN("5\rhello\r\n"), HTTP_ERR_BAD_REQUEST, 2},
        {"bare LF at end", IN("0\r\n\n"), HTTP_ERR_BAD_REQUEST, 3},
        {"CR CR at end", IN("0\r\n\r\r"), HTTP_ERR_BAD_REQUEST, 4},
        {"empty extension name", IN("5;\r\nhello\r\n"), HTTP_ERR_BAD_REQUEST, 2},
        {"empty extension value", IN("5;a=\r\nhello\r\n"), HTTP_ERR_BAD_REQUEST, 4},
        {"space after extension", IN("5;a \r\nhello\r\n"), HTTP_ERR_BAD_REQUEST, 4},
        {"CTL in extension value", IN("5;a=\"\x01\"\r\n"), HTTP_ERR_BAD_REQUEST, 5},
        {"byte after quoted value", IN("5;a=\"b\"c\r\n"), HTTP_ERR_BAD_REQUEST, 7},
        {"trailer obs-fold", IN("0\r\nA: b\r\n c\r\n\r\n"), HTTP_ERR_BAD_REQUEST, 9},
        {"trailer without colon", IN("0\r\nAb\r\n\r\n"), HTTP_ERR_BAD_REQUEST, 5},
        {"trailer space before colon", IN("0\r\nA : b\r\n\r\n"), HTTP_ERR_BAD_REQUEST, 4},
        {"trailer bare LF", IN("0\r\nA: b\n\r\n"), HTTP_ERR_BAD_REQUEST, 7},
        {"trailer NUL", IN("0\r\nA: \x00\r\n\r\n"), HTTP_ERR_BAD_REQUEST, 6},
};

/* Feed in[0..len) as two pieces cut at k, each in an exact-size heap copy. */
static enum http_result feed_split(const struct chunk_case *tc, size_t k, size_t *used,
                                   struct http_chunked *c)
{
	size_t cut[2][2] = {{0, k}, {k, tc->len - k}};
	enum http_result r = HTTP_NEED_MORE;

	http_chunked_init(c);
	*used = 0;
	for (int p = 0; p < 2 && r == HTTP_NEED_MORE; p++) {
		char *copy = malloc(cut[p][1] ? cut[p][1] : 1);
		size_t n;

		cr_assert_not_null(copy);
		memcpy(copy, tc->in + cut[p][0], cut[p][1]);
		r = http_chunked_feed(c, copy, cut[p][1], &n);
		free(copy);
		cr_assert_leq(n, cut[p][1]);
		if (r == HTTP_NEED_MORE)
			cr_assert_eq(n, cut[p][1], "%s: NEED_MORE left bytes unused", tc->name);
		*used += n;
	}
	return r;
}

static void check_chunk_result(const struct chunk_case *tc, const char *how, enum http_result r,
                               size_t used, const struct http_chunked *c)
{
	cr_assert_eq(r, tc->want, "%s (%s): %s, want %s", tc->name, how, http_result_str(r),
	             http_result_str(tc->want));
	cr_assert_eq(used, tc->used, "%s (%s): used %zu, want %zu", tc->name, how, used, tc->used);
	if (r == HTTP_OK)
		cr_assert_eq(c->body_bytes, tc->bytes, "%s (%s): body_bytes %llu", tc->name, how,
		             (unsigned long long)c->body_bytes);
}

static void check_chunk_case(const struct chunk_case *tc)
{
	struct http_chunked c;
	enum http_result r = HTTP_NEED_MORE;
	size_t used = 0, n;

	for (size_t k = 0; k <= tc->len; k++) {
		r = feed_split(tc, k, &used, &c);
		check_chunk_result(tc, "split", r, used, &c);
	}
	http_chunked_init(&c);
	used = 0;
	for (size_t i = 0; i < tc->len; i++) {
		r = http_chunked_feed(&c, tc->in + i, 1, &n);
		used += n;
		if (r != HTTP_NEED_MORE)
			break;
	}
	check_chunk_result(tc, "byte by byte", r, used, &c);
	/* a finished or failed validator keeps its answer and takes nothing more */
	if (r != HTTP_NEED_MORE) {
		cr_expect_eq(http_chunked_feed(&c, "0\r\n\r\n", 5, &n), r);
		cr_expect_eq(n, 0);
	}
}

ParameterizedTestParameters(http1_chunked, table)
{
	static size_t idx[ARRAY_LEN(chunk_cases)];

	for (size_t i = 0; i < ARRAY_LEN(idx); i++)
		idx[i] = i;
	return cr_make_param_array(size_t, idx, ARRAY_LEN(idx));
}

ParameterizedTest(size_t *i, http1_chunked, table)
{
	check_chunk_case(&chunk_cases[*i]);
}

/* Feed a generated body all at once; returns the result, *used set. */
static enum http_result feed_all(const char *buf, size_t len, size_t *used)
{
	struct http_chunked c;

	http_chunked_init(&c);
	return http_chunked_feed(&c, buf, len, used);
}

/* "1;" + n x 'a' + CRLF: a size line of n + 4 bytes with its CR (n + 3 without) */
static size_t long_size_line(char *buf, size_t n)
{
	memcpy(buf, "1;", 2);
	memset(buf + 2, 'a', n);
	memcpy(buf + 2 + n, "\r\nx\r\n0\r\n\r\n", 10);
	return n + 12;
}

Test(http1_chunked, size_line_limit)
{
	static char buf[HTTP_CHUNK_LINE_MAX + 64];
	size_t used, len;

	len = long_size_line(buf, HTTP_CHUNK_LINE_MAX - 3);
	cr_expect_eq(feed_all(buf, len, &used), HTTP_OK);
	cr_expect_eq(used, len);
	len = long_size_line(buf, HTTP_CHUNK_LINE_MAX - 2);
	cr_expect_eq(feed_all(buf, len, &used), HTTP_ERR_BAD_REQUEST);
	cr_expect_eq(used, HTTP_CHUNK_LINE_MAX);
}

Test(http1_chunked, trailer_limit)
{
	static char buf[HTTP_TRAILER_MAX + 64];
	size_t used, n = HTTP_TRAILER_MAX - 7; /* "X: " + n + CRLF CRLF = the limit */

	memcpy(buf, "0\r\nX: ", 6);
	memset(buf + 6, 'v', n);
	memcpy(buf + 6 + n, "\r\n\r\n", 4);
	cr_expect_eq(feed_all(buf, n + 10, &used), HTTP_OK);
	cr_expect_eq(used, n + 10);
	memset(buf + 6, 'v', n + 1);
	memcpy(buf + 7 + n, "\r\n\r\n", 4);
	cr_expect_eq(feed_all(buf, n + 11, &used), HTTP_ERR_BAD_REQUEST);
}

Test(http1_chunked, large_chunk_counted)
{
	static char buf[7 + 70000 + 7];
	struct http_chunked c;
	size_t used, off = 0;
	enum http_result r;

	memcpy(buf, "11170\r\n", 7); /* 0x11170 = 70000 */
	memset(buf + 7, 'd', 70000);
	memcpy(buf + 7 + 70000, "\r\n0\r\n\r\n", 7);
	http_chunked_init(&c);
	/* in pieces of at most 4096, as socket reads would deliver them */
	do {
		size_t n = sizeof(buf) - off < 4096 ? sizeof(buf) - off : 4096;

		r = http_chunked_feed(&c, buf + off, n, &used);
		off += used;
	} while (r == HTTP_NEED_MORE && off < sizeof(buf));
	cr_expect_eq(r, HTTP_OK);
	cr_expect_eq(off, sizeof(buf));
	cr_expect_eq(c.body_bytes, 70000);
}

Test(http1_chunked, boundary_is_only_between_chunks)
{
	struct http_chunked c;
	size_t used = 0;
	const char *body = "5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n";

	http_chunked_init(&c);
	cr_assert(http_chunked_at_boundary(&c));
	cr_assert_eq(http_chunked_feed(&c, body, 1, &used), HTTP_NEED_MORE);
	cr_assert_not(http_chunked_at_boundary(&c), "inside the size line");
	cr_assert_eq(http_chunked_feed(&c, body + 1, 5, &used), HTTP_NEED_MORE);
	cr_assert_not(http_chunked_at_boundary(&c), "inside chunk data");
	cr_assert_eq(http_chunked_feed(&c, body + 6, 4, &used), HTTP_NEED_MORE);
	cr_assert(http_chunked_at_boundary(&c), "after the chunk's CRLF");
}
