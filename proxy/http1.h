/*
 * http1 — strict HTTP/1.1 message-head parser and chunked-body validator (RFC 9112).
 *
 * Pure: no I/O, no allocation. The parser reads a contiguous buffer holding the start of
 * a message and, once the whole head (up to and including the empty line) is present,
 * fills a struct http_head whose fields are offsets into that same buffer (zero copy).
 *
 *     bytes ──► http_parse_request / http_parse_response ──► struct http_head (slices)
 *                                                        └─► body framing decision
 *     body bytes ──► http_chunked_feed (state machine, never copies) ──► message end
 *
 * Anything RFC 9112 lets a recipient reject is rejected, because a proxy that is lenient
 * where the backend is strict (or the reverse) can be made to smuggle requests:
 * CL together with TE, differing or malformed Content-Length, a transfer coding other
 * than a final "chunked", whitespace before a colon, obs-fold, NUL/CR/LF inside a value,
 * bare LF line endings, a missing or repeated Host in HTTP/1.1, bad method or version.
 */
#ifndef RL_HTTP1_H
#define RL_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most header fields one head may carry; more is answered 431. */
#define HTTP_MAX_HEADERS 128

enum http_result {
	HTTP_OK = 0,              /* a complete head (or chunked body) was parsed */
	HTTP_NEED_MORE,           /* valid so far, more bytes needed */
	HTTP_ERR_BAD_REQUEST,     /* malformed syntax or framing: 400 (502 for a response) */
	HTTP_ERR_VERSION,         /* HTTP version other than 1.0 / 1.1: 505 */
	HTTP_ERR_HEAD_TOO_LARGE,  /* head over max_head bytes or too many fields: 431 */
	HTTP_ERR_URI_TOO_LONG,    /* request line alone over max_head bytes: 414 */
	HTTP_ERR_NOT_IMPLEMENTED, /* transfer coding we do not implement: 501 */
};

/* Index range [off, off + len) into the buffer that was parsed. */
struct http_slice {
	uint32_t off; /* bytes from the start of the buffer */
	uint32_t len; /* bytes */
};

struct http_field {
	struct http_slice name;  /* without the colon */
	struct http_slice value; /* leading and trailing OWS trimmed */
};

enum http_body {
	HTTP_BODY_NONE = 0, /* no body (CL: 0, GET without framing, 204, 304, 1xx, HEAD reply) */
	HTTP_BODY_LENGTH,   /* content_length bytes follow */
	HTTP_BODY_CHUNKED,  /* chunked transfer coding; validate with http_chunked_feed */
	HTTP_BODY_CLOSE,    /* response only: body runs until the server closes */
};

/* Flags computed from the Connection / Upgrade / Expect fields. */
enum http_flag {
	HTTP_F_CONN_CLOSE = 1 << 0,      /* "Connection: close" present */
	HTTP_F_CONN_KEEPALIVE = 1 << 1,  /* "Connection: keep-alive" present */
	HTTP_F_UPGRADE = 1 << 2,         /* an Upgrade field is present */
	HTTP_F_EXPECT_CONTINUE = 1 << 3, /* "Expect: 100-continue" */
};

struct http_head {
	/* request line (requests only) */
	struct http_slice method;
	struct http_slice target;
	/* status line (responses only) */
	int status; /* 100..999 */
	struct http_slice reason;
	/* both */
	int version_minor; /* 0 or 1 (HTTP/1.x) */
	size_t head_len;   /* bytes of the head including the final CRLF CRLF */
	unsigned nfields;
	struct http_field fields[HTTP_MAX_HEADERS];
	int host_field; /* index into fields of Host, or -1 */
	enum http_body body;
	uint64_t content_length; /* bytes: the body when body == HTTP_BODY_LENGTH; else the
	                            Content-Length value if one was sent (HEAD, 304), or 0 */
	unsigned flags;          /* enum http_flag bits */
};

/*
 * Parse a request head from buf[0..len). max_head bounds the head size in bytes.
 * Returns HTTP_OK with *h filled, HTTP_NEED_MORE when buf holds a valid but incomplete
 * head (and len < max_head), or an HTTP_ERR_*. The same input split anywhere gives
 * NEED_MORE for every prefix that is valid so far and the same final answer.
 * Stateless: each call rescans buf from byte 0; bytes past head_len are not read.
 *
 * Framing: "Transfer-Encoding: chunked" → CHUNKED; Content-Length N > 0 → LENGTH;
 * Content-Length 0 or neither → NONE (content_length 0). Up to 4 empty lines before the
 * request line are skipped and counted in head_len. Repeated Content-Length fields with
 * the same value are accepted (and forwarded as they came); a comma list is 400.
 * Transfer-Encoding: a "chunked" that is not last or appears twice → 400; any other
 * coding, even "gzip, chunked" → 501; TE with CL, or TE in HTTP/1.0 → 400.
 */
enum http_result http_parse_request(const char *buf, size_t len, size_t max_head,
                                    struct http_head *h);

/*
 * Parse a response head. request_was_head: the request was HEAD (no body follows).
 * A 1xx response other than 101 is returned as HTTP_OK with body NONE; the caller
 * forwards it and parses the next head.
 *
 * Framing (RFC 9112 §6.3): HEAD request, 1xx, 204, 304 → NONE whatever the fields say;
 * otherwise a final "chunked" → CHUNKED (earlier codings such as gzip are passed through),
 * Transfer-Encoding without a final "chunked" → CLOSE, Content-Length N > 0 → LENGTH,
 * Content-Length 0 → NONE, neither → CLOSE. Always HTTP_ERR_BAD_REQUEST (answer 502):
 * TE with CL, differing or malformed CL, "chunked" twice, TE in an HTTP/1.0 response.
 * Host is not interpreted (host_field stays -1). Errors are never HTTP_ERR_URI_TOO_LONG.
 */
enum http_result http_parse_response(const char *buf, size_t len, size_t max_head,
                                     bool request_was_head, struct http_head *h);

/* Case-insensitive field lookup; returns the index of the first match or -1. */
int http_find_field(const struct http_head *h, const char *buf, const char *name);

/* True when slice s of buf equals the C string lit, ignoring ASCII case. */
bool http_slice_ieq(const char *buf, struct http_slice s, const char *lit);

/* True when the connection stays open after this message (version, Connection field);
 * false for a close-delimited (HTTP_BODY_CLOSE) response. */
bool http_keep_alive(const struct http_head *h);

/*
 * True for hop-by-hop fields that a proxy must not forward (RFC 9110 §7.6.1):
 * Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade, Proxy-Authenticate,
 * Proxy-Authorization. Transfer-Encoding is NOT listed: chunked bodies are forwarded
 * unchanged, so their Transfer-Encoding must go with them. Fields named by Connection
 * options are hop-by-hop as well; the caller strips those.
 */
bool http_is_hop_by_hop(const char *name, size_t len);

/* ---- chunked body validation ---- */

/* Longest chunk-size line (size + extensions) and trailer section accepted, bytes. */
#define HTTP_CHUNK_LINE_MAX 4096
#define HTTP_TRAILER_MAX    16384

struct http_chunked {
	int state;           /* private */
	uint64_t remaining;  /* data bytes left in the current chunk */
	uint64_t body_bytes; /* total chunk data bytes seen so far */
	size_t line_len;     /* bytes of the current size line / trailer section */
	unsigned digits;     /* hex digits in the current size */
};

void http_chunked_init(struct http_chunked *c);

/* True between chunks: the next byte starts a chunk-size line (a proxy may insert a
 * chunk of its own there). */
bool http_chunked_at_boundary(const struct http_chunked *c);

/*
 * Feed the next len bytes of a chunked body. Sets *used to the bytes consumed.
 * Returns HTTP_NEED_MORE (all len bytes consumed, message not finished), HTTP_OK (the
 * message ended after *used bytes; bytes after that belong to the next message) or
 * HTTP_ERR_BAD_REQUEST (malformed: bad size, missing CRLF, line too long, ...; *used is
 * the offset of the offending byte). Chunk data bytes are counted, not inspected.
 * Resumable at any byte boundary. Chunk sizes are at most 16 hex digits and 2^63-1.
 * Once finished or failed it keeps answering the same with *used = 0.
 */
enum http_result http_chunked_feed(struct http_chunked *c, const char *buf, size_t len,
                                   size_t *used);

/* Status code a client should get for a request-parse error; 0 for OK / NEED_MORE. */
int http_result_status(enum http_result r);

/* Short text for logs ("head too large"); never NULL. */
const char *http_result_str(enum http_result r);

/* Reason phrase for a status code ("Bad Request"), "Unknown" if none. */
const char *http_status_reason(int status);

#endif
