/*
 * botsim: a small, stateful fake bot backend. It is the backend of the README demo, of the
 * benches and of the end-to-end tests, so every answer is exact and easy to assert on.
 *
 *   client ──► evhttp ──► route table ──► handler ──► reply now
 *                                            │
 *                                            └──► struct pending ──► reply later
 *                                                 (timer: -d, /slow, /sse;
 *                                                  output drained: /big)
 *
 * Any path without a route is a bot message: it bumps a per-conversation counter and
 * answers {"backend":"NAME","conv":"CONV","seq":N}. The other endpoints (health, echo,
 * streaming, big bodies, status codes, close) are listed in usage() below.
 *
 * One thread, one event loop. A deferred reply registers a close callback on its
 * connection, so a client that goes away frees the pending state and nothing fires later.
 * libevent watches for the close only once response bytes have been written: a stream
 * (/sse, /big) notices at once, a timed reply (-d, /slow) when its timer fires.
 */

#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>

#define BOTSIM_MAX_LISTENERS        16
#define BOTSIM_NAME_MAX             64          /* bytes; [A-Za-z0-9._-] only */
#define BOTSIM_HOST_MAX             256         /* bytes, listen host without brackets */
#define BOTSIM_LOG_LINE_MAX         512         /* bytes; longer log lines are truncated */
#define BOTSIM_LOG_URI_MAX          200         /* bytes of the request URI shown in a log line */
#define BOTSIM_LOG_CONV_MAX         64          /* bytes of the conversation shown in a log line */
#define BOTSIM_MAX_HEADERS_SIZE     (64 * 1024) /* bytes: request line plus headers */
#define BOTSIM_IDLE_TIMEOUT_S       120         /* seconds a connection may stall reading/writing */
#define BOTSIM_STREAM_TIMEOUT_S     86400       /* seconds, same, while /sse or /big streams */
#define BOTSIM_DELAY_MAX_MS         3600000     /* ms, cap for -d, /slow?ms and interval_ms */
#define BOTSIM_CONV_MAX             1000000     /* conversations kept before the table resets */
#define BOTSIM_CONV_BUCKETS_MIN     1024        /* initial hash buckets (power of two) */
#define BOTSIM_ECHO_BODY_MAX        4096        /* bytes: /echo shows bodies up to this size */
#define BOTSIM_PEEK_VECS            16          /* extents read per evbuffer_peek call */
#define BOTSIM_SSE_DEFAULT_N        10          /* events */
#define BOTSIM_SSE_MAX_N            1000000     /* events */
#define BOTSIM_SSE_DEFAULT_INTERVAL 100         /* ms between events */
#define BOTSIM_SLOW_DEFAULT_MS      1000        /* ms */
#define BOTSIM_BIG_CHUNK            (64 * 1024) /* bytes handed to the connection at once */
#define BOTSIM_BIG_MAX              (UINT64_C(16) << 30) /* bytes, cap for /big?bytes */
#define BOTSIM_PATTERN_PERIOD       10                   /* body byte at offset k is '0' + k % 10 */
#define BOTSIM_STATUS_MIN           200
#define BOTSIM_STATUS_MAX           599
#define BOTSIM_FNV_OFFSET           UINT64_C(14695981039346656037)
#define BOTSIM_FNV_PRIME            UINT64_C(1099511628211)

#define BOTSIM_EXIT_RUNTIME 1
#define BOTSIM_EXIT_USAGE   2

#define BOTSIM_ALL_METHODS                                                                         \
	(EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | \
	 EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH)

#define CT_JSON "application/json"
#define CT_TEXT "text/plain"
#define CT_SSE  "text/event-stream"

/* One bucket chain link; the key is stored inline (one allocation per conversation). */
struct conv_entry {
	struct conv_entry *next;
	uint64_t hash;
	uint64_t seq; /* messages seen so far */
	char key[];
};

struct conv_table {
	struct conv_entry **buckets; /* owned; nbuckets slots */
	size_t nbuckets;             /* power of two */
	size_t count;                /* entries */
	uint64_t resets;             /* times the table hit BOTSIM_CONV_MAX and was emptied */
};

struct listen_addr {
	const char *spec;           /* borrowed from argv, for messages */
	char host[BOTSIM_HOST_MAX]; /* without IPv6 brackets */
	uint16_t port;              /* as asked; 0 = ephemeral */
	uint16_t bound_port;        /* as bound */
};

/*
 * A request answered later: a complete reply waiting for its timer (-d, /slow), an event
 * stream paced by its timer (/sse), or a large body paced by the output draining (/big).
 * Lives until it completes or its connection closes.
 */
struct pending {
	struct pending *prev, *next;     /* in botsim.pending */
	struct botsim *bs;               /* borrowed */
	struct evhttp_request *req;      /* borrowed: libevent owns it */
	struct evhttp_connection *evcon; /* borrowed; NULL once closed */
	struct event *timer;             /* owned; NULL for /big */
	struct evbuffer *buf;            /* owned: timed reply body, or chunk staging */
	int code;                        /* timed reply: HTTP status */
	uint64_t done;                   /* /sse: events sent; /big: bytes queued */
	uint64_t total;                  /* /sse: events to send; /big: bytes to send */
	struct timeval interval;         /* /sse: time between events */
};

enum botsim_signal {
	SIG_SLOT_TERM = 0,
	SIG_SLOT_INT,
	SIG_SLOT_USR1,
	SIG_SLOT_USR2,
	SIG_SLOT_COUNT,
};

struct botsim {
	const char *name;     /* borrowed from argv; validated charset */
	int quiet;            /* no per-request log lines */
	unsigned delay_ms;    /* -d: added before every conversation answer */
	unsigned jitter_ms;   /* -j: mean of an exponential extra delay (a long tail) */
	uint64_t rng;         /* xorshift64 state for the jitter */
	const char *pidfile;  /* borrowed; NULL = none */
	const char *portfile; /* borrowed; NULL = none */
	struct listen_addr listen[BOTSIM_MAX_LISTENERS];
	size_t nlisten;

	struct event_base *base;           /* owned */
	struct evhttp *http;               /* owned */
	struct event *sig[SIG_SLOT_COUNT]; /* owned */
	struct conv_table convs;
	struct pending *pending; /* list head of deferred requests */
	size_t npending;
	int sick; /* /healthz answers 503 */
	int exit_code;

	uint64_t requests;   /* requests received */
	uint64_t body_bytes; /* request body bytes received */
};

/* Body source for /big: any window of BOTSIM_BIG_CHUNK bytes starting at k % PERIOD. */
static char big_pattern[BOTSIM_BIG_CHUNK + BOTSIM_PATTERN_PERIOD];

static void usage(FILE *out)
{
	fputs("usage: botsim -n NAME -l HOST:PORT [-l HOST:PORT ...] [-d DELAY_MS] [-j MEAN_MS] "
	      "[-q]\n"
	      "              [-p PIDFILE] [-P PORTFILE]\n"
	      "  -n NAME      backend name ([A-Za-z0-9._-], shown in every answer)\n"
	      "  -l HOST:PORT listen address, repeatable; [::1]:PORT for IPv6; PORT 0 = ephemeral\n"
	      "  -d DELAY_MS  delay before every conversation answer\n"
	      "  -j MEAN_MS   plus an exponentially distributed delay of this mean (a long tail,\n"
	      "               like an LLM backend); with -d: fixed + exponential\n"
	      "  -q           no per-request log lines\n"
	      "  -p PIDFILE   write the pid (removed on clean exit)\n"
	      "  -P PORTFILE  write the bound ports, one per line in -l order, atomically\n"
	      "               (removed on clean exit)\n"
	      "endpoints:\n"
	      "  any other path   {\"backend\":NAME,\"conv\":CONV,\"seq\":N}; CONV from header\n"
	      "                   X-Conversation-Key, X-Conversation-ID or query conv\n"
	      "  GET /healthz     ok (200) or sick (503); POST /admin/sick, /admin/well, SIGUSR1\n"
	      "  GET /admin/stats counters as JSON (also logged on SIGUSR2)\n"
	      "  /echo            method, uri, headers, body-bytes, body-sum, body (<= 4096 B)\n"
	      "  /sse?n=K&interval_ms=T   K server-sent events, T ms apart\n"
	      "  /big?bytes=N[&cl=1]      N bytes of 0123456789..., chunked (or Content-Length)\n"
	      "  /slow?ms=T       a conversation answer after T ms\n"
	      "  /status?code=C   status C with a small JSON body\n"
	      "  /close           a conversation answer with Connection: close\n"
	      "  GET /ws          with Upgrade: websocket: 101, then every byte is echoed back\n"
	      "                   (a raw echo, no WebSocket framing or Sec-WebSocket-Accept)\n"
	      "SIGTERM/SIGINT exit 0.\n",
	      out);
}

static void bs_log(const struct botsim *bs, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void bs_log(const struct botsim *bs, const char *fmt, ...)
{
	char line[BOTSIM_LOG_LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "botsim %s: %s\n", bs->name, line);
}

/* ---- numbers and query parameters ---- */

/* Parses a decimal in [0, max]; 0 or -1. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

static char *query_decode(const char *s, size_t len)
{
	char *raw = strndup(s, len);
	char *out;

	if (raw == NULL)
		return NULL;
	out = evhttp_uridecode(raw, 1, NULL);
	free(raw);
	return out;
}

/*
 * Finds query parameter `name` of the request URI. Returns its percent-decoded value
 * (malloc'd, caller frees; "" for a bare `name`) or NULL when absent. Unlike
 * evhttp_parse_query_str it tolerates parameters without '='.
 */
static char *query_get(struct evhttp_request *req, const char *name)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *q = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	size_t nlen = strlen(name);

	while (q != NULL && *q != '\0') {
		const char *amp = strchr(q, '&');
		size_t len = amp != NULL ? (size_t)(amp - q) : strlen(q);

		if (len >= nlen && strncmp(q, name, nlen) == 0 && (len == nlen || q[nlen] == '=')) {
			size_t skip = len == nlen ? nlen : nlen + 1;
			return query_decode(q + skip, len - skip);
		}
		q = amp != NULL ? amp + 1 : NULL;
	}
	return NULL;
}

/* Reads a numeric query parameter; `def` when absent. 0, or -1 when malformed. */
static int query_u64(struct evhttp_request *req, const char *name, uint64_t def, uint64_t max,
                     uint64_t *out)
{
	char *v = query_get(req, name);
	int rc;

	if (v == NULL) {
		*out = def;
		return 0;
	}
	rc = parse_u64(v, max, out);
	free(v);
	return rc;
}

/* ---- conversation table ---- */

static uint64_t conv_hash(const char *s)
{
	uint64_t h = BOTSIM_FNV_OFFSET;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= BOTSIM_FNV_PRIME;
	}
	return h;
}

static int conv_init(struct conv_table *t)
{
	t->buckets = calloc(BOTSIM_CONV_BUCKETS_MIN, sizeof(*t->buckets));
	t->nbuckets = BOTSIM_CONV_BUCKETS_MIN;
	t->count = 0;
	t->resets = 0;
	return t->buckets != NULL ? 0 : -1;
}

/* Frees every entry; the buckets stay. */
static void conv_clear(struct conv_table *t)
{
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct conv_entry *e = t->buckets[i];

		while (e != NULL) {
			struct conv_entry *next = e->next;
			free(e);
			e = next;
		}
		t->buckets[i] = NULL;
	}
	t->count = 0;
}

static void conv_deinit(struct conv_table *t)
{
	if (t->buckets != NULL)
		conv_clear(t);
	free(t->buckets);
	t->buckets = NULL;
}

/* Doubles the bucket array; on allocation failure keeps the old one (longer chains). */
static void conv_grow(struct conv_table *t)
{
	size_t n = t->nbuckets * 2;
	struct conv_entry **b = calloc(n, sizeof(*b));

	if (b == NULL)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct conv_entry *e = t->buckets[i];

		while (e != NULL) {
			struct conv_entry *next = e->next;
			size_t slot = e->hash & (n - 1);

			e->next = b[slot];
			b[slot] = e;
			e = next;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
}

/*
 * Counts one message of conversation `key` and returns its sequence number (from 1),
 * or 0 when out of memory. When the table holds BOTSIM_CONV_MAX conversations it is
 * emptied first (counted in t->resets), which keeps memory bounded.
 */
static uint64_t conv_bump(struct conv_table *t, const char *key)
{
	uint64_t h = conv_hash(key);
	size_t klen = strlen(key);
	struct conv_entry *e;

	for (e = t->buckets[h & (t->nbuckets - 1)]; e != NULL; e = e->next)
		if (e->hash == h && strcmp(e->key, key) == 0)
			return ++e->seq;
	if (t->count >= BOTSIM_CONV_MAX) {
		conv_clear(t);
		t->resets++;
	}
	if (t->count >= t->nbuckets)
		conv_grow(t);
	e = malloc(sizeof(*e) + klen + 1);
	if (e == NULL)
		return 0;
	memcpy(e->key, key, klen + 1);
	e->hash = h;
	e->seq = 1;
	e->next = t->buckets[h & (t->nbuckets - 1)];
	t->buckets[h & (t->nbuckets - 1)] = e;
	t->count++;
	return 1;
}

/* ---- replies ---- */

/* Appends `s` JSON-escaped (without quotes). Bytes >= 0x80 pass through unchanged. */
static void json_add_string(struct evbuffer *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *run = p;

	for (; *p != '\0'; p++) {
		char esc[6] = {'\\', 'u', '0', '0'};
		size_t esclen = 2;

		if (*p >= 0x20 && *p != '"' && *p != '\\')
			continue;
		evbuffer_add(out, run, (size_t)(p - run));
		if (*p == '"' || *p == '\\' || *p == '\n' || *p == '\r' || *p == '\t') {
			esc[1] = *p == '\n' ? 'n' : *p == '\r' ? 'r' : *p == '\t' ? 't' : (char)*p;
		} else {
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 0xf];
			esclen = sizeof(esc);
		}
		evbuffer_add(out, esc, esclen);
		run = p + 1;
	}
	evbuffer_add(out, run, (size_t)(p - run));
}

static void set_header(struct evhttp_request *req, const char *name, const char *value)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);

	evhttp_remove_header(out, name);
	evhttp_add_header(out, name, value);
}

/* Sends a complete reply. X-Backend is already set; `body` (may be NULL) is emptied. */
static void reply_buf(struct evhttp_request *req, int code, const char *ctype,
                      struct evbuffer *body)
{
	if (ctype != NULL)
		set_header(req, "Content-Type", ctype);
	evhttp_send_reply(req, code, NULL, body);
}

static void reply_printf(struct evhttp_request *req, int code, const char *ctype, const char *fmt,
                         ...) __attribute__((format(printf, 4, 5)));

static void reply_printf(struct evhttp_request *req, int code, const char *ctype, const char *fmt,
                         ...)
{
	struct evbuffer *body = evbuffer_new();
	va_list ap;

	if (body == NULL) {
		reply_buf(req, 503, NULL, NULL);
		return;
	}
	va_start(ap, fmt);
	evbuffer_add_vprintf(body, fmt, ap);
	va_end(ap);
	reply_buf(req, code, ctype, body);
	evbuffer_free(body);
}

static void reply_error(struct botsim *bs, struct evhttp_request *req, int code, const char *reason)
{
	reply_printf(req, code, CT_JSON, "{\"backend\":\"%s\",\"error\":\"%s\"}\n", bs->name,
	             reason);
}

static void reply_bad_method(struct botsim *bs, struct evhttp_request *req, const char *allow)
{
	set_header(req, "Allow", allow);
	reply_error(bs, req, 405, "method not allowed");
}

static int req_is(struct evhttp_request *req, enum evhttp_cmd_type cmd)
{
	return evhttp_request_get_command(req) == cmd;
}

static void log_request(struct botsim *bs, struct evhttp_request *req, const char *note);

/* ---- deferred requests ---- */

static void pending_closecb(struct evhttp_connection *evcon, void *arg);

/*
 * Starts tracking `req` for a later answer: links it, and watches its connection so a
 * client that goes away frees it (pending_closecb). NULL when out of memory.
 */
static struct pending *pending_new(struct botsim *bs, struct evhttp_request *req)
{
	struct pending *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->bs = bs;
	p->req = req;
	p->evcon = evhttp_request_get_connection(req);
	p->next = bs->pending;
	if (bs->pending != NULL)
		bs->pending->prev = p;
	bs->pending = p;
	bs->npending++;
	evhttp_connection_set_closecb(p->evcon, pending_closecb, p);
	return p;
}

/* Forgets `p` without touching its request; the caller answers or frees that. */
static void pending_free(struct pending *p)
{
	struct botsim *bs = p->bs;

	if (p->evcon != NULL)
		evhttp_connection_set_closecb(p->evcon, NULL, NULL);
	if (p->prev != NULL)
		p->prev->next = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	if (bs->pending == p)
		bs->pending = p->next;
	bs->npending--;
	if (p->timer != NULL)
		event_free(p->timer);
	if (p->buf != NULL)
		evbuffer_free(p->buf);
	free(p);
}

/*
 * The connection of a pending request is going away (client gone, timeout or shutdown).
 * libevent detaches an unfinished request from a failed connection and leaves it to us;
 * one still attached is freed with the connection.
 */
static void pending_closecb(struct evhttp_connection *evcon, void *arg)
{
	struct pending *p = arg;
	struct evhttp_request *req = p->req;

	evhttp_connection_set_closecb(evcon, NULL, NULL);
	p->evcon = NULL;
	if (!p->bs->quiet)
		bs_log(p->bs, "%.*s: connection closed before the answer completed",
		       BOTSIM_LOG_URI_MAX, evhttp_request_get_uri(req));
	if (evhttp_request_get_connection(req) == NULL)
		evhttp_request_free(req);
	pending_free(p);
}

/* Ends a streamed reply. The close callback goes first: ending may close the connection. */
static void pending_end_stream(struct pending *p)
{
	struct evhttp_request *req = p->req;

	if (p->evcon != NULL)
		evhttp_connection_set_timeout(p->evcon, BOTSIM_IDLE_TIMEOUT_S);
	pending_free(p);
	evhttp_send_reply_end(req);
}

static struct timeval ms_to_tv(uint64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
	                     .tv_usec = (suseconds_t)(ms % 1000) * 1000};

	return tv;
}

static void deferred_reply_fire(evutil_socket_t fd, short what, void *arg)
{
	struct pending *p = arg;
	struct evhttp_request *req = p->req;
	struct evbuffer *body = p->buf;
	int code = p->code;

	(void)fd, (void)what;

	p->buf = NULL;
	pending_free(p);
	reply_buf(req, code, NULL, body);
	evbuffer_free(body);
}

/* Answers `req` with `body` (ownership taken) after `ms` milliseconds. */
static void reply_later(struct botsim *bs, struct evhttp_request *req, int code,
                        struct evbuffer *body, uint64_t ms)
{
	struct pending *p = pending_new(bs, req);
	struct timeval tv = ms_to_tv(ms);

	if (p == NULL) {
		evbuffer_free(body);
		reply_error(bs, req, 503, "out of memory");
		return;
	}
	p->buf = body;
	p->code = code;
	p->timer = evtimer_new(bs->base, deferred_reply_fire, p);
	if (p->timer == NULL || evtimer_add(p->timer, &tv) != 0) {
		pending_free(p);
		reply_error(bs, req, 503, "no timer");
	}
}

/*
 * Before evhttp_send_reply_start: an HTTP/1.0 client gets a body delimited by closing the
 * connection, so its keep-alive wish is dropped (nothing can follow such a body).
 */
static void stream_framing(struct evhttp_request *req)
{
	if (req->major == 1 && req->minor == 0) {
		evhttp_remove_header(evhttp_request_get_input_headers(req), "Connection");
		set_header(req, "Connection", "close");
	}
}

/* Starts a streamed reply for `p`; a long stall timeout until pending_end_stream. */
static void stream_start(struct pending *p)
{
	stream_framing(p->req);
	evhttp_connection_set_timeout(p->evcon, BOTSIM_STREAM_TIMEOUT_S);
	evhttp_send_reply_start(p->req, 200, NULL);
}

/* A stream without a body: HEAD, or zero events or bytes. */
static void stream_empty(struct evhttp_request *req)
{
	stream_framing(req);
	evhttp_send_reply_start(req, 200, NULL);
	evhttp_send_reply_end(req);
}

/* ---- conversation answers: default route, /slow, /close ---- */

/* The conversation of a message: header, then query `conv`, else "". Malloc'd. */
static char *conv_of(struct evhttp_request *req)
{
	const struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *v = evhttp_find_header(h, "X-Conversation-Key");
	char *q;

	if (v == NULL)
		v = evhttp_find_header(h, "X-Conversation-ID");
	if (v != NULL)
		return strdup(v);
	q = query_get(req, "conv");
	return q != NULL ? q : strdup("");
}

/* Counts one message and answers it after `delay_ms` (0 = now). */
static void answer_conversation(struct botsim *bs, struct evhttp_request *req, uint64_t delay_ms)
{
	uint64_t resets = bs->convs.resets;
	char *conv = conv_of(req);
	uint64_t seq = conv != NULL ? conv_bump(&bs->convs, conv) : 0;
	struct evbuffer *body = seq != 0 ? evbuffer_new() : NULL;
	char note[BOTSIM_LOG_LINE_MAX];

	if (bs->convs.resets != resets)
		bs_log(bs, "conversations: table full, forgot all (%d kept at most)",
		       BOTSIM_CONV_MAX);
	evbuffer_drain(evhttp_request_get_input_buffer(req), (size_t)-1);
	if (body == NULL) {
		free(conv);
		reply_error(bs, req, 503, "out of memory");
		return;
	}
	evbuffer_add_printf(body, "{\"backend\":\"%s\",\"conv\":\"", bs->name);
	json_add_string(body, conv);
	evbuffer_add_printf(body, "\",\"seq\":%" PRIu64 "}\n", seq);
	if (!bs->quiet) {
		snprintf(note, sizeof(note), "conv=%.*s seq=%" PRIu64, BOTSIM_LOG_CONV_MAX, conv,
		         seq);
		log_request(bs, req, note);
	}
	free(conv);
	set_header(req, "Content-Type", CT_JSON);
	if (delay_ms > 0) {
		reply_later(bs, req, 200, body, delay_ms);
		return;
	}
	reply_buf(req, 200, NULL, body);
	evbuffer_free(body);
}

/* -d plus an exponential sample of mean -j (inverse transform of a uniform draw). */
static uint64_t answer_delay(struct botsim *bs)
{
	double u;

	if (bs->jitter_ms == 0)
		return bs->delay_ms;
	bs->rng ^= bs->rng << 13;
	bs->rng ^= bs->rng >> 7;
	bs->rng ^= bs->rng << 17;
	u = ((double)(bs->rng >> 11) + 1.0) / 9007199254740993.0; /* (0, 1] */
	double extra = -log(u) * bs->jitter_ms;
	return bs->delay_ms + (uint64_t)(extra < BOTSIM_DELAY_MAX_MS ? extra : BOTSIM_DELAY_MAX_MS);
}

static void handle_default(struct botsim *bs, struct evhttp_request *req)
{
	answer_conversation(bs, req, answer_delay(bs));
}

static void handle_slow(struct botsim *bs, struct evhttp_request *req)
{
	uint64_t ms;

	if (query_u64(req, "ms", BOTSIM_SLOW_DEFAULT_MS, BOTSIM_DELAY_MAX_MS, &ms) != 0) {
		reply_error(bs, req, 400, "bad ms");
		return;
	}
	answer_conversation(bs, req, ms);
}

static void handle_close(struct botsim *bs, struct evhttp_request *req)
{
	set_header(req, "Connection", "close");
	answer_conversation(bs, req, answer_delay(bs));
}

/* ---- /ws: an upgraded connection that echoes raw bytes ---- */

static void ws_echo(struct bufferevent *bev, void *arg)
{
	bufferevent_write_buffer(bev, bufferevent_get_input(bev));
}

/* The connection is ours since the 101: free it (with its request) when it ends. */
static void ws_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		evhttp_connection_free(arg);
}

/* Takes the connection away from evhttp: the request is never answered through it. */
static void handle_ws(struct botsim *bs, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
	const char *up = evhttp_find_header(evhttp_request_get_input_headers(req), "Upgrade");

	log_request(bs, req, NULL);
	if (bev == NULL || up == NULL || evutil_ascii_strcasecmp(up, "websocket") != 0) {
		reply_error(bs, req, 400, "expected Upgrade: websocket");
		return;
	}
	evbuffer_add_printf(bufferevent_get_output(bev),
	                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	                    "Connection: Upgrade\r\nX-Backend: %s\r\n\r\n",
	                    bs->name);
	bufferevent_setcb(bev, ws_echo, NULL, ws_event, evcon);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	ws_echo(bev, evcon);
}

/* ---- health, admin, status ---- */

static void handle_healthz(struct botsim *bs, struct evhttp_request *req)
{
	log_request(bs, req, NULL);
	if (bs->sick)
		reply_printf(req, 503, CT_TEXT, "sick\n");
	else
		reply_printf(req, 200, CT_TEXT, "ok\n");
}

static void set_sick(struct botsim *bs, int sick, const char *why)
{
	if (bs->sick != sick)
		bs_log(bs, "%s (%s)", sick ? "sick" : "well", why);
	bs->sick = sick;
}

static void handle_admin_health(struct botsim *bs, struct evhttp_request *req, int sick)
{
	log_request(bs, req, NULL);
	if (!req_is(req, EVHTTP_REQ_POST)) {
		reply_bad_method(bs, req, "POST");
		return;
	}
	set_sick(bs, sick, "admin request");
	reply_printf(req, 200, CT_JSON, "{\"backend\":\"%s\",\"sick\":%s}\n", bs->name,
	             bs->sick ? "true" : "false");
}

static void handle_admin_sick(struct botsim *bs, struct evhttp_request *req)
{
	handle_admin_health(bs, req, 1);
}

static void handle_admin_well(struct botsim *bs, struct evhttp_request *req)
{
	handle_admin_health(bs, req, 0);
}

static void handle_admin_stats(struct botsim *bs, struct evhttp_request *req)
{
	log_request(bs, req, NULL);
	if (!req_is(req, EVHTTP_REQ_GET) && !req_is(req, EVHTTP_REQ_HEAD)) {
		reply_bad_method(bs, req, "GET, HEAD");
		return;
	}
	reply_printf(req, 200, CT_JSON,
	             "{\"backend\":\"%s\",\"requests\":%" PRIu64 ",\"conversations\":%zu,"
	             "\"conversation_resets\":%" PRIu64 ",\"body_bytes\":%" PRIu64
	             ",\"pending\":%zu,\"sick\":%s}\n",
	             bs->name, bs->requests, bs->convs.count, bs->convs.resets, bs->body_bytes,
	             bs->npending, bs->sick ? "true" : "false");
}

static void handle_status(struct botsim *bs, struct evhttp_request *req)
{
	uint64_t code;

	log_request(bs, req, NULL);
	if (query_u64(req, "code", 0, BOTSIM_STATUS_MAX, &code) != 0 || code < BOTSIM_STATUS_MIN) {
		reply_error(bs, req, 400, "bad code");
		return;
	}
	reply_printf(req, (int)code, CT_JSON, "{\"backend\":\"%s\",\"status\":%d}\n", bs->name,
	             (int)code);
}

/* ---- /echo ---- */

static const char *method_name(enum evhttp_cmd_type cmd)
{
	static const struct {
		enum evhttp_cmd_type cmd;
		const char *name;
	} names[] = {
	        {EVHTTP_REQ_GET, "GET"},       {EVHTTP_REQ_POST, "POST"},
	        {EVHTTP_REQ_HEAD, "HEAD"},     {EVHTTP_REQ_PUT, "PUT"},
	        {EVHTTP_REQ_DELETE, "DELETE"}, {EVHTTP_REQ_OPTIONS, "OPTIONS"},
	        {EVHTTP_REQ_TRACE, "TRACE"},   {EVHTTP_REQ_CONNECT, "CONNECT"},
	        {EVHTTP_REQ_PATCH, "PATCH"},
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].cmd == cmd)
			return names[i].name;
	return "?";
}

/* Sum of all bytes of `buf` modulo 2^32, read in place, BOTSIM_PEEK_VECS extents at a time
 * (with len -1, evbuffer_peek stops at the vector count). */
static uint32_t body_sum(struct evbuffer *buf)
{
	struct evbuffer_iovec v[BOTSIM_PEEK_VECS];
	struct evbuffer_ptr pos;
	size_t total = evbuffer_get_length(buf);
	size_t off = 0;
	uint32_t sum = 0;

	evbuffer_ptr_set(buf, &pos, 0, EVBUFFER_PTR_SET);
	while (off < total) {
		int n = evbuffer_peek(buf, -1, &pos, v, BOTSIM_PEEK_VECS);
		size_t seen = 0;

		for (int i = 0; i < n && i < BOTSIM_PEEK_VECS; i++) {
			const unsigned char *b = v[i].iov_base;

			for (size_t k = 0; k < v[i].iov_len; k++)
				sum += b[k];
			seen += v[i].iov_len;
		}
		off += seen;
		if (seen == 0 ||
		    (off < total && evbuffer_ptr_set(buf, &pos, seen, EVBUFFER_PTR_ADD) != 0))
			break;
	}
	return sum;
}

/* Lists what arrived: see usage(). Bodies up to BOTSIM_ECHO_BODY_MAX end the reply raw. */
static void handle_echo(struct botsim *bs, struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evbuffer *out = evbuffer_new();
	size_t len = evbuffer_get_length(in);
	struct evkeyval *h;

	log_request(bs, req, NULL);
	if (out == NULL) {
		reply_error(bs, req, 503, "out of memory");
		return;
	}
	evbuffer_add_printf(out, "backend %s\nmethod %s\nuri %s\n", bs->name,
	                    method_name(evhttp_request_get_command(req)),
	                    evhttp_request_get_uri(req));
	TAILQ_FOREACH(h, evhttp_request_get_input_headers(req), next)
	evbuffer_add_printf(out, "h: %s: %s\n", h->key, h->value);
	evbuffer_add_printf(out, "body-bytes %zu\nbody-sum %" PRIu32 "\n", len, body_sum(in));
	if (len <= BOTSIM_ECHO_BODY_MAX) {
		evbuffer_add(out, "body: ", 6);
		evbuffer_add_buffer(out, in);
		evbuffer_add(out, "\n", 1);
	}
	reply_buf(req, 200, CT_TEXT, out);
	evbuffer_free(out);
}

/* ---- /sse ---- */

static void sse_send_event(struct pending *p)
{
	p->done++;
	evbuffer_add_printf(p->buf,
	                    "id: %" PRIu64 "\ndata: {\"backend\":\"%s\",\"i\":%" PRIu64 "}\n\n",
	                    p->done, p->bs->name, p->done);
	evhttp_send_reply_chunk(p->req, p->buf);
}

static void sse_tick(evutil_socket_t fd, short what, void *arg)
{
	struct pending *p = arg;

	(void)fd, (void)what;

	sse_send_event(p);
	if (p->done >= p->total) {
		pending_end_stream(p);
		return;
	}
	evtimer_add(p->timer, &p->interval);
}

/* Starts the stream; the first event goes out with the headers, the rest T ms apart. */
static void sse_start(struct botsim *bs, struct evhttp_request *req, uint64_t n, uint64_t ms)
{
	struct pending *p = pending_new(bs, req);

	if (p == NULL || (p->buf = evbuffer_new()) == NULL ||
	    (p->timer = evtimer_new(bs->base, sse_tick, p)) == NULL) {
		if (p != NULL)
			pending_free(p);
		reply_error(bs, req, 503, "out of memory");
		return;
	}
	p->total = n;
	p->interval = ms_to_tv(ms);
	stream_start(p);
	sse_tick(-1, 0, p);
}

static void handle_sse(struct botsim *bs, struct evhttp_request *req)
{
	uint64_t n, ms;

	log_request(bs, req, NULL);
	if (query_u64(req, "n", BOTSIM_SSE_DEFAULT_N, BOTSIM_SSE_MAX_N, &n) != 0 ||
	    query_u64(req, "interval_ms", BOTSIM_SSE_DEFAULT_INTERVAL, BOTSIM_DELAY_MAX_MS, &ms) !=
	            0) {
		reply_error(bs, req, 400, "bad n or interval_ms");
		return;
	}
	set_header(req, "Content-Type", CT_SSE);
	set_header(req, "Cache-Control", "no-cache");
	if (n == 0 || req_is(req, EVHTTP_REQ_HEAD)) {
		stream_empty(req);
		return;
	}
	sse_start(bs, req, n, ms);
}

/* ---- /big ---- */

static void big_drained(struct evhttp_connection *evcon, void *arg);

/* Hands the next chunk to the connection; big_drained runs once it is written. */
static void big_send_next(struct pending *p)
{
	uint64_t left = p->total - p->done;
	size_t n = left < BOTSIM_BIG_CHUNK ? (size_t)left : BOTSIM_BIG_CHUNK;

	evbuffer_add_reference(p->buf, big_pattern + p->done % BOTSIM_PATTERN_PERIOD, n, NULL,
	                       NULL);
	p->done += n;
	evhttp_send_reply_chunk_with_cb(p->req, p->buf, big_drained, p);
}

static void big_drained(struct evhttp_connection *evcon, void *arg)
{
	struct pending *p = arg;

	(void)evcon;

	if (p->done < p->total)
		big_send_next(p);
	else
		pending_end_stream(p);
}

/* Streams `bytes` of pattern, one chunk per drained output, so memory stays bounded. */
static void big_stream(struct botsim *bs, struct evhttp_request *req, uint64_t bytes)
{
	struct pending *p;

	if (bytes == 0 || req_is(req, EVHTTP_REQ_HEAD)) {
		stream_empty(req);
		return;
	}
	p = pending_new(bs, req);
	if (p == NULL || (p->buf = evbuffer_new()) == NULL) {
		if (p != NULL)
			pending_free(p);
		reply_error(bs, req, 503, "out of memory");
		return;
	}
	p->total = bytes;
	stream_start(p);
	big_send_next(p);
}

/* Sends `bytes` of pattern in one Content-Length reply built from references (no copies). */
static void big_whole(struct botsim *bs, struct evhttp_request *req, uint64_t bytes)
{
	struct evbuffer *body = evbuffer_new();
	char len[24];

	if (body == NULL) {
		reply_error(bs, req, 503, "out of memory");
		return;
	}
	for (uint64_t off = 0; off < bytes; off += BOTSIM_BIG_CHUNK) {
		uint64_t left = bytes - off;
		size_t n = left < BOTSIM_BIG_CHUNK ? (size_t)left : BOTSIM_BIG_CHUNK;

		evbuffer_add_reference(body, big_pattern + off % BOTSIM_PATTERN_PERIOD, n, NULL,
		                       NULL);
	}
	snprintf(len, sizeof(len), "%" PRIu64, bytes);
	set_header(req, "Content-Length", len);
	reply_buf(req, 200, NULL, body);
	evbuffer_free(body);
}

static void handle_big(struct botsim *bs, struct evhttp_request *req)
{
	uint64_t bytes, cl;

	log_request(bs, req, NULL);
	if (query_u64(req, "bytes", 0, BOTSIM_BIG_MAX, &bytes) != 0 ||
	    query_u64(req, "cl", 0, 1, &cl) != 0) {
		reply_error(bs, req, 400, "bad bytes or cl");
		return;
	}
	set_header(req, "Content-Type", "application/octet-stream");
	if (cl)
		big_whole(bs, req, bytes);
	else
		big_stream(bs, req, bytes);
}

/* ---- routing ---- */

typedef void route_cb(struct botsim *bs, struct evhttp_request *req);

static const struct route {
	const char *path;
	route_cb *cb;
} routes[] = {
        {"/healthz", handle_healthz},
        {"/admin/sick", handle_admin_sick},
        {"/admin/well", handle_admin_well},
        {"/admin/stats", handle_admin_stats},
        {"/echo", handle_echo},
        {"/sse", handle_sse},
        {"/big", handle_big},
        {"/slow", handle_slow},
        {"/status", handle_status},
        {"/close", handle_close},
        {"/ws", handle_ws},
};

static void log_request(struct botsim *bs, struct evhttp_request *req, const char *note)
{
	if (bs->quiet)
		return;
	bs_log(bs, "%s %.*s%s%s%s", method_name(evhttp_request_get_command(req)),
	       BOTSIM_LOG_URI_MAX, evhttp_request_get_uri(req), note != NULL ? " (" : "",
	       note != NULL ? note : "", note != NULL ? ")" : "");
}

/* evhttp's one callback: counts, tags the reply with X-Backend and dispatches by path. */
static void on_request(struct evhttp_request *req, void *arg)
{
	struct botsim *bs = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;

	bs->requests++;
	bs->body_bytes += evbuffer_get_length(evhttp_request_get_input_buffer(req));
	evhttp_add_header(evhttp_request_get_output_headers(req), "X-Backend", bs->name);
	for (size_t i = 0; path != NULL && i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcmp(path, routes[i].path) == 0) {
			routes[i].cb(bs, req);
			return;
		}
	}
	handle_default(bs, req);
}

/* ---- signals ---- */

static void log_stats(const struct botsim *bs)
{
	bs_log(bs,
	       "stats (requests=%" PRIu64 " conversations=%zu conversation_resets=%" PRIu64
	       " body_bytes=%" PRIu64 " pending=%zu sick=%d)",
	       bs->requests, bs->convs.count, bs->convs.resets, bs->body_bytes, bs->npending,
	       bs->sick);
}

static void on_signal(evutil_socket_t signo, short what, void *arg)
{
	struct botsim *bs = arg;

	(void)what;

	switch (signo) {
	case SIGUSR1:
		set_sick(bs, !bs->sick, "SIGUSR1");
		break;
	case SIGUSR2:
		log_stats(bs);
		break;
	default:
		if (!bs->quiet)
			bs_log(bs, "stopping (%s)", signo == SIGINT ? "SIGINT" : "SIGTERM");
		event_base_loopbreak(bs->base);
		break;
	}
}

static int signals_start(struct botsim *bs)
{
	static const int signos[SIG_SLOT_COUNT] = {
	        [SIG_SLOT_TERM] = SIGTERM,
	        [SIG_SLOT_INT] = SIGINT,
	        [SIG_SLOT_USR1] = SIGUSR1,
	        [SIG_SLOT_USR2] = SIGUSR2,
	};
	struct sigaction ign = {.sa_handler = SIG_IGN};

	/* A client closing mid-stream must fail a write, not kill the process. */
	if (sigaction(SIGPIPE, &ign, NULL) != 0)
		return -1;
	for (int i = 0; i < SIG_SLOT_COUNT; i++) {
		bs->sig[i] = evsignal_new(bs->base, signos[i], on_signal, bs);
		if (bs->sig[i] == NULL || evsignal_add(bs->sig[i], NULL) != 0)
			return -1;
	}
	return 0;
}

/* ---- command line, listeners and files ---- */

static int name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > BOTSIM_NAME_MAX)
		return 0;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
	       len;
}

/* Splits HOST:PORT or [V6]:PORT; an empty host or "*" means every IPv4 address. 0 or -1. */
static int listen_parse(const char *spec, struct listen_addr *la)
{
	const char *colon = strrchr(spec, ':');
	const char *host = spec;
	size_t hlen;
	uint64_t port;

	if (colon == NULL || parse_u64(colon + 1, UINT16_MAX, &port) != 0)
		return -1;
	hlen = (size_t)(colon - spec);
	if (spec[0] == '[') {
		if (hlen < 2 || spec[hlen - 1] != ']')
			return -1;
		host = spec + 1;
		hlen -= 2;
	} else if (memchr(spec, ':', hlen) != NULL) {
		return -1; /* an IPv6 address needs brackets */
	}
	if (hlen == 0 || (hlen == 1 && host[0] == '*'))
		host = "0.0.0.0", hlen = strlen("0.0.0.0");
	if (hlen >= sizeof(la->host))
		return -1;
	memcpy(la->host, host, hlen);
	la->host[hlen] = '\0';
	la->spec = spec;
	la->port = (uint16_t)port;
	return 0;
}

static int args_parse(struct botsim *bs, int argc, char **argv)
{
	uint64_t v;
	int c;

	while ((c = getopt(argc, argv, "n:l:d:j:p:P:qh")) != -1) {
		switch (c) {
		case 'n':
			bs->name = optarg;
			break;
		case 'l':
			if (bs->nlisten == BOTSIM_MAX_LISTENERS ||
			    listen_parse(optarg, &bs->listen[bs->nlisten]) != 0) {
				fprintf(stderr, "botsim: -l %s: bad or too many addresses\n",
				        optarg);
				return -1;
			}
			bs->nlisten++;
			break;
		case 'd':
			if (parse_u64(optarg, BOTSIM_DELAY_MAX_MS, &v) != 0) {
				fprintf(stderr, "botsim: -d %s: not a delay in ms\n", optarg);
				return -1;
			}
			bs->delay_ms = (unsigned)v;
			break;
		case 'j':
			if (parse_u64(optarg, BOTSIM_DELAY_MAX_MS, &v) != 0) {
				fprintf(stderr, "botsim: -j %s: not a mean delay in ms\n", optarg);
				return -1;
			}
			bs->jitter_ms = (unsigned)v;
			bs->rng = (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL | 1;
			break;
		case 'p':
			bs->pidfile = optarg;
			break;
		case 'P':
			bs->portfile = optarg;
			break;
		case 'q':
			bs->quiet = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -1;
		}
	}
	if (optind != argc || bs->name == NULL || !name_valid(bs->name) || bs->nlisten == 0) {
		fprintf(stderr, "botsim: need -n NAME ([A-Za-z0-9._-]) and at least one -l\n");
		return -1;
	}
	return 0;
}

static int bound_port(struct evhttp_bound_socket *h, uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(evhttp_bound_socket_get_fd(h), (struct sockaddr *)&ss, &len) != 0)
		return -1;
	if (ss.ss_family == AF_INET6)
		*port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

static int listeners_bind(struct botsim *bs)
{
	for (size_t i = 0; i < bs->nlisten; i++) {
		struct listen_addr *la = &bs->listen[i];
		struct evhttp_bound_socket *h;

		h = evhttp_bind_socket_with_handle(bs->http, la->host, la->port);
		/* evhttp listens with a backlog of 128: a proxy opening thousands of connections
		 * at once would see connect timeouts that are the bot's, not its own */
		if (h == NULL || listen(evhttp_bound_socket_get_fd(h), SOMAXCONN) != 0 ||
		    bound_port(h, &la->bound_port) != 0) {
			bs_log(bs, "listen %s: cannot bind (%s)", la->spec, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Writes `text` to `path` through a temporary file and rename(), so readers never see a
 * partial file. 0 or -1 (logged). */
static int write_file_atomic(const struct botsim *bs, const char *path, const char *text)
{
	char tmp[4096];
	FILE *f;
	int ok;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
		bs_log(bs, "file %s: path too long", path);
		return -1;
	}
	f = fopen(tmp, "w");
	ok = f != NULL && fputs(text, f) >= 0;
	if (f != NULL && fclose(f) != 0)
		ok = 0;
	if (!ok || rename(tmp, path) != 0) {
		bs_log(bs, "file %s: cannot write (%s)", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int files_write(const struct botsim *bs)
{
	char text[BOTSIM_MAX_LISTENERS * 8];
	size_t off = 0;

	if (bs->portfile != NULL) {
		for (size_t i = 0; i < bs->nlisten; i++)
			off += (size_t)snprintf(text + off, sizeof(text) - off, "%u\n",
			                        (unsigned)bs->listen[i].bound_port);
		if (write_file_atomic(bs, bs->portfile, text) != 0)
			return -1;
	}
	if (bs->pidfile != NULL) {
		snprintf(text, sizeof(text), "%ld\n", (long)getpid());
		if (write_file_atomic(bs, bs->pidfile, text) != 0)
			return -1;
	}
	return 0;
}

static void files_remove(const struct botsim *bs)
{
	if (bs->portfile != NULL)
		unlink(bs->portfile);
	if (bs->pidfile != NULL)
		unlink(bs->pidfile);
}

static void announce(const struct botsim *bs)
{
	for (size_t i = 0; i < bs->nlisten; i++) {
		const struct listen_addr *la = &bs->listen[i];
		int v6 = strchr(la->host, ':') != NULL;

		fprintf(stderr, "botsim %s listening on %s%s%s:%u\n", bs->name, v6 ? "[" : "",
		        la->host, v6 ? "]" : "", (unsigned)la->bound_port);
	}
}

/* ---- lifecycle ---- */

static int botsim_init(struct botsim *bs)
{
	for (size_t i = 0; i < sizeof(big_pattern); i++)
		big_pattern[i] = (char)('0' + i % BOTSIM_PATTERN_PERIOD);
	if (conv_init(&bs->convs) != 0)
		return -1;
	bs->base = event_base_new();
	if (bs->base == NULL)
		return -1;
	bs->http = evhttp_new(bs->base);
	if (bs->http == NULL)
		return -1;
	evhttp_set_gencb(bs->http, on_request, bs);
	evhttp_set_allowed_methods(bs->http, BOTSIM_ALL_METHODS);
	evhttp_set_max_headers_size(bs->http, BOTSIM_MAX_HEADERS_SIZE);
	evhttp_set_timeout(bs->http, BOTSIM_IDLE_TIMEOUT_S);
	return signals_start(bs);
}

/* Frees everything; connections first, so their close callbacks release pending state. */
static void botsim_deinit(struct botsim *bs)
{
	if (bs->http != NULL)
		evhttp_free(bs->http);
	for (struct pending *p = bs->pending, *next; p != NULL; p = next) {
		next = p->next;
		p->evcon = NULL;
		pending_free(p);
	}
	for (int i = 0; i < SIG_SLOT_COUNT; i++)
		if (bs->sig[i] != NULL)
			event_free(bs->sig[i]);
	if (bs->base != NULL)
		event_base_free(bs->base);
	conv_deinit(&bs->convs);
}

int main(int argc, char **argv)
{
	struct botsim bs = {.exit_code = 0};

	if (args_parse(&bs, argc, argv) != 0) {
		fputs("usage: botsim -n NAME -l HOST:PORT [-l ...] [-d MS] [-q] [-p FILE] [-P FILE]"
		      " (-h: help)\n",
		      stderr);
		return BOTSIM_EXIT_USAGE;
	}
	if (botsim_init(&bs) != 0) {
		bs_log(&bs, "cannot start (%s)", strerror(errno));
		bs.exit_code = BOTSIM_EXIT_RUNTIME;
	} else if (listeners_bind(&bs) != 0) {
		bs.exit_code = BOTSIM_EXIT_RUNTIME;
	} else if (files_write(&bs) != 0) {
		files_remove(&bs);
		bs.exit_code = BOTSIM_EXIT_RUNTIME;
	} else {
		announce(&bs);
		if (event_base_dispatch(bs.base) != 0)
			bs.exit_code = BOTSIM_EXIT_RUNTIME;
		files_remove(&bs);
	}
	botsim_deinit(&bs);
	libevent_global_shutdown();
	return bs.exit_code;
}
