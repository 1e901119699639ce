/*
 * conn — the client side of the data path: read a request head, route it, stream the
 * request to a backend and the response back, then wait for the next request.
 *
 *   client input ──parse head──► key ──router──► upstream (idle or new connection)
 *        │                                          │
 *        └── body moved (evbuffer_remove_buffer) ──►│ backend
 *   client output ◄── rewritten head + body moved ◄─┘
 *
 * Backpressure: when the buffer queued toward one side passes CONN_STREAM_HWM, reading
 * from the other side stops until it drains below half of that (write low watermark).
 * Every exit goes through conn_close(). Callbacks return right after conn_close() and
 * never touch the connection again.
 */
#include "conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hash.h"
#include "health.h"
#include "keyx.h"
#include "reply.h"
#include "router.h"
#include "server.h"
#include "stats.h"
#include "tls.h"
#include "upstream.h"
#include "wsframe.h"

#define CONN_STREAM_HWM            (256u * 1024u) /* bytes queued toward a peer before pausing */
#define CONN_RESPONSE_HEAD_MAX     (64u * 1024u)  /* largest response head accepted, bytes */
#define CONN_REQUEST_ID_MAX        128            /* longest client X-Request-ID kept, bytes */
#define CONN_LOG_TARGET_MAX        256            /* request target bytes kept for the log */
#define CONN_METHOD_MAX            24             /* method bytes kept for the log */
#define CONN_MAX_ATTEMPTS          11             /* 1 + the largest `retries` */
#define CONN_LINGER_MS             2000           /* wait for the client's FIN after an error */
#define CONN_MAX_CONNECTION_TOKENS 16             /* fields named in Connection we drop */
#define CONN_READ_SLACK            (16u * 1024u)  /* input bytes beyond head + key body */
#define CONN_REPARSE_STEP          1024           /* bytes of new head data worth a re-parse */
#define CONN_HEAD_STAGE            4096           /* stack bytes a rewritten head is built in */

#define SSE_DRAIN_EVENT "event: ringleader-drain\ndata: {}\n\n"

enum conn_state {
	CONN_WAIT_HEAD = 1, /* reading a request head */
	CONN_FORWARD,       /* exchange with a backend in progress */
	CONN_TUNNEL,        /* after 101: bytes both ways */
	CONN_CLOSING,       /* final bytes queued; close once flushed */
};

enum conn_timer {
	CONN_TIMER_HEAD = 1, /* header_timeout: 408 */
	CONN_TIMER_IDLE,     /* client_idle_timeout between requests: silent close */
	CONN_TIMER_LINGER,   /* lingering close after an error response */
};

/* One request/response exchange. */
struct exchange {
	uint64_t started_us;    /* head parsed */
	uint64_t upstream_us;   /* backend picked / connect started */
	uint64_t first_byte_us; /* response head received */
	char method[CONN_METHOD_MAX + 1];
	char target[CONN_LOG_TARGET_MAX + 1];
	char request_id[CONN_REQUEST_ID_MAX + 1];
	uint64_t key_hash;      /* XXH3 of the key, for the log; 0 when keyless */
	struct hash128 pin_key; /* XXH3-128 of the key: its pin identity */
	bool has_key;
	char moved_from[CONF_NAME_MAX]; /* backend the conversation left, "" if it did not */
	bool pin_created;               /* this exchange placed a new conversation */
	size_t head_out_len;            /* bytes of the request head as forwarded */
	int backend;                    /* index in pool, -1 before routing */
	int tried[CONN_MAX_ATTEMPTS];
	unsigned attempts;     /* connection attempts made */
	int status;            /* status sent to the client, 0 before */
	uint64_t bytes_out;    /* response bytes queued to the client */
	int version_minor;     /* client's HTTP/1.x */
	bool client_keepalive; /* request allows keep-alive */
	bool is_head;          /* HEAD request: response has no body */
	bool upgrade;          /* request asked for Upgrade */
	bool websocket;        /* ... to websocket: frames are tracked in the tunnel */
	bool inflight_counted; /* backend inflight was incremented */
	/* request body */
	enum http_body req_body;
	uint64_t req_remaining;  /* LENGTH: bytes still to forward */
	uint64_t req_body_bytes; /* forwarded so far */
	struct http_chunked req_chunked;
	bool req_done; /* request fully handed to the upstream */
	/* response */
	bool resp_head_done;
	enum http_body resp_body;
	uint64_t resp_remaining;
	struct http_chunked resp_chunked;
	bool resp_keepalive; /* backend allows reuse */
	bool resp_stream;    /* text/event-stream: idle timeout is tunnel_idle */
};

struct conn {
	TAILQ_ENTRY(conn) link;
	struct server *srv;       /* borrowed */
	struct bufferevent *cbev; /* owned: client */
	struct evbuffer *tls_out; /* owned, TLS only: client-bound bytes not yet given to OpenSSL;
	                             empty whenever control is back in the event loop */
	struct upstream *up;      /* owned while attached */
	struct rl_pool *pool;     /* ref for the current exchange, NULL between */
	struct event *timer;      /* owned: one timer, see enum conn_timer */
	enum conn_state state;
	enum conn_timer timer_mode;
	char client[UTIL_ADDR_TEXT]; /* "ip:port" */
	char client_ip[UTIL_ADDR_TEXT];
	uint64_t client_hash;       /* hash of the client address, for missing_key=client_ip */
	bool tls;                   /* client connection is TLS (c->cbev is an SSL bufferevent) */
	bool client_eof;            /* client finished sending */
	bool close_after;           /* close once the current response is flushed */
	bool upstream_paused;       /* upstream reading paused for client backpressure */
	bool client_paused;         /* client reading paused for upstream backpressure */
	bool body_timer;            /* client read timeout armed while a request body arrives */
	unsigned requests;          /* exchanges on this connection */
	size_t head_tried;          /* input bytes seen by the last NEED_MORE parse */
	size_t body_wait;           /* head + body bytes a body key source waits for, or 0 */
	bool upstream_shut_pending; /* tunnel: the client half-closed; pass it on once flushed */
	bool cut_pending;           /* backend drained at its deadline: end the stream at the
	                               next message boundary */
	struct ws_track ws_up;      /* client → backend WebSocket frames */
	struct ws_track ws_down;    /* backend → client WebSocket frames */
	struct exchange x;
};

static void client_readcb(struct bufferevent *bev, void *arg);
static void client_writecb(struct bufferevent *bev, void *arg);
static void client_eventcb(struct bufferevent *bev, short what, void *arg);
static void upstream_readcb(struct bufferevent *bev, void *arg);
static void upstream_writecb(struct bufferevent *bev, void *arg);
static void upstream_eventcb(struct bufferevent *bev, short what, void *arg);
static int try_request_head(struct conn *c);
static int send_to_backend(struct conn *c);
static void send_now(struct conn *c, struct bufferevent *bev);
static struct evbuffer *client_out(struct conn *c);
static void shut_upstream_if_flushed(struct conn *c);

static struct timeval ms_to_tv(uint64_t ms)
{
	return (struct timeval){.tv_sec = (time_t)(ms / 1000), .tv_usec = (long)(ms % 1000) * 1000};
}

static const struct rl_conf *conf_of(const struct conn *c)
{
	return c->pool != NULL ? c->pool->conf : c->srv->pool->conf;
}

static void arm_timer(struct conn *c, enum conn_timer mode, uint64_t ms)
{
	struct timeval tv = ms_to_tv(ms);

	c->timer_mode = mode;
	evtimer_add(c->timer, &tv);
}

/* ---- closing ---- */

static void release_backend_load(struct conn *c)
{
	if (c->x.inflight_counted) {
		atomic_fetch_sub(&c->pool->b[c->x.backend].rt->inflight, 1);
		c->x.inflight_counted = false;
	}
}

static void detach_upstream(struct conn *c, bool reusable)
{
	if (c->up == NULL)
		return;
	if (reusable)
		upstream_release(c->up);
	else
		upstream_free(c->up);
	c->up = NULL;
	c->upstream_paused = false;
}

static void end_exchange_refs(struct conn *c)
{
	release_backend_load(c);
	if (c->pool != NULL) {
		pool_unref(c->pool);
		c->pool = NULL;
	}
}

/* Take one of the process-wide client slots: at most max_connections over all workers,
 * and no more than the descriptors allow (s->fd_budget keeps one for each client's
 * backend connection plus a reserve, so accepted clients never meet EMFILE upstream). */
static bool take_slot(struct server *s, unsigned max)
{
	unsigned limit = max < s->fd_budget ? max : s->fd_budget;

	if (atomic_fetch_add(s->open_conns, 1) < limit)
		return true;
	atomic_fetch_sub(s->open_conns, 1);
	return false;
}

static void release_slot(struct server *s)
{
	atomic_fetch_sub(s->open_conns, 1);
}

void conn_close(struct conn *c, const char *reason)
{
	struct server *s = c->srv;

	log_debug("conn %s: closed (%s)", c->client, reason);
	detach_upstream(c, false);
	end_exchange_refs(c);
	event_free(c->timer);
	if (c->tls)
		tls_conn_close(c->cbev, c->client);
	bufferevent_free(c->cbev);
	if (c->tls_out != NULL)
		evbuffer_free(c->tls_out);
	TAILQ_REMOVE(&s->conns, c, link);
	s->nconns--;
	release_slot(s);
	free(c);
	if (s->stopping && s->nconns == 0 && s->on_idle != NULL)
		s->on_idle(s);
}

/* Flush queued output, then half-close and wait briefly for the client's FIN so the
 * kernel does not reset the connection under a response the client has not read. */
static void start_closing(struct conn *c)
{
	c->state = CONN_CLOSING;
	detach_upstream(c, false);
	bufferevent_set_timeouts(c->cbev, NULL, NULL);
	c->body_timer = false;
	send_now(c, c->cbev);
	if (evbuffer_get_length(bufferevent_get_output(c->cbev)) == 0)
		client_writecb(c->cbev, c);
}

/* ---- access log ---- */

static void log_exchange(struct conn *c)
{
	char line[1024], ts[32];
	uint64_t now = util_now_us();
	const struct exchange *x = &c->x;
	const char *backend =
	        x->backend >= 0 && c->pool != NULL ? c->pool->b[x->backend].conf->name : "-";
	double up_ms = x->first_byte_us > x->upstream_us && x->upstream_us != 0
	                       ? (double)(x->first_byte_us - x->upstream_us) / 1000.0
	                       : 0.0;
	int n;

	if (c->srv->alog == NULL)
		return;
	util_timestamp(ts, sizeof(ts));
	char request[CONN_METHOD_MAX + CONN_LOG_TARGET_MAX + 16];
	if (x->target[0] == '\0') /* refused before the request line was understood */
		snprintf(request, sizeof(request), "-");
	else
		snprintf(request, sizeof(request), "%s %s HTTP/1.%d", x->method, x->target,
		         x->version_minor);
	n = snprintf(line, sizeof(line),
	             "%s %s \"%s\" %d %llu backend=%s key=%016llx up=%.3fms total=%.3fms rid=%s",
	             ts, c->client, request, x->status, (unsigned long long)x->bytes_out, backend,
	             (unsigned long long)x->key_hash, up_ms, (double)(now - x->started_us) / 1000.0,
	             x->request_id);
	if (n > 0)
		accesslog_write(c->srv->alog, line,
		                (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void count_response(struct conn *c, int status)
{
	unsigned cls = (unsigned)status / 100;

	if (cls >= 1 && cls <= 5)
		c->srv->stats.responses[cls]++;
}

/* Answer with a proxy-generated error and close. If the response head was already
 * sent, the client can only be told by closing. */
static void fail(struct conn *c, int status, const char *why)
{
	if (c->state == CONN_CLOSING)
		return;
	if (!c->x.resp_head_done && c->state != CONN_TUNNEL) {
		if (c->x.request_id[0] == '\0')
			util_request_id(&c->srv->rng, c->x.request_id);
		c->x.status = status;
		c->x.bytes_out += reply_error(client_out(c), status, why, c->x.request_id, false);
		c->srv->stats.proxy_errors++;
		stats_proxy_error(status);
		count_response(c, status);
		if (c->x.started_us != 0)
			log_exchange(c);
	}
	if (c->x.backend >= 0 && c->pool != NULL && status >= 502)
		atomic_fetch_add(&c->pool->b[c->x.backend].rt->errors, 1);
	end_exchange_refs(c);
	start_closing(c);
}

/* ---- writing, backpressure ---- */

static bool write_is_direct(const struct conn *c, const struct bufferevent *bev)
{
	return bev == c->cbev ||
	       (c->up != NULL && c->up->connected && !tls_bufferevent_is_tls(c->up->bev));
}

/* Where client-bound bytes go; send_now(c, c->cbev) sends them. */
static struct evbuffer *client_out(struct conn *c)
{
	return c->tls_out != NULL ? c->tls_out : bufferevent_get_output(c->cbev);
}

/* TLS: encrypt and send what the socket takes now, unless libevent still holds older
 * output (order) or the handshake is not done; the rest goes to libevent. */
static void send_now_tls(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->cbev);

	if (evbuffer_get_length(c->tls_out) == 0)
		return;
	if (evbuffer_get_length(out) == 0)
		tls_write_now(c->cbev, c->tls_out);
	if (evbuffer_get_length(c->tls_out) > 0) {
		evbuffer_add_buffer(out, c->tls_out);
		bufferevent_enable(c->cbev, EV_WRITE);
	}
}

/*
 * Write queued output now rather than on the next loop turn. The socket is nearly always
 * writable, and waiting for EPOLLOUT would cost two epoll_ctl calls and a loop turn per
 * write. So client sockets and plain upstreams keep EV_WRITE disabled while their output
 * is empty; what the kernel does not take stays queued, and EV_WRITE is enabled for
 * libevent to write the rest (the write callbacks disable it again once the output is
 * empty). A TLS client's bytes wait in tls_out, not in the bufferevent's output, whose
 * every first byte would make libevent add EV_WRITE; a TLS upstream writes through
 * libevent, and so does a connecting upstream (libevent writes once connected). A write
 * error is left for libevent to find on that retry.
 */
static void send_now(struct conn *c, struct bufferevent *bev)
{
	struct evbuffer *out;

	if (bev == c->cbev && c->tls_out != NULL) {
		send_now_tls(c);
		return;
	}
	out = bufferevent_get_output(bev);
	if (!write_is_direct(c, bev) || evbuffer_get_length(out) == 0)
		return;
	/* a socket bufferevent freezes its output's front between its own writes */
	evbuffer_unfreeze(out, 1);
	(void)evbuffer_write(out, bufferevent_getfd(bev));
	evbuffer_freeze(out, 1);
	if (evbuffer_get_length(out) > 0)
		bufferevent_enable(bev, EV_WRITE);
}

/* From a write callback: the output is empty again, so go back to direct writes. */
static void write_idle(struct conn *c, struct bufferevent *bev)
{
	if (write_is_direct(c, bev) && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_disable(bev, EV_WRITE);
}

static void move_to_client(struct conn *c, struct evbuffer *src, size_t n)
{
	evbuffer_remove_buffer(src, client_out(c), n);
	c->x.bytes_out += n;
	send_now(c, c->cbev);
	if (evbuffer_get_length(bufferevent_get_output(c->cbev)) >= CONN_STREAM_HWM &&
	    c->up != NULL) {
		bufferevent_disable(c->up->bev, EV_READ);
		c->upstream_paused = true;
	}
}

static void move_to_upstream(struct conn *c, struct evbuffer *src, size_t n)
{
	struct evbuffer *out = bufferevent_get_output(c->up->bev);

	evbuffer_remove_buffer(src, out, n);
	send_now(c, c->up->bev);
	if (evbuffer_get_length(out) >= CONN_STREAM_HWM) {
		bufferevent_disable(c->cbev, EV_READ);
		c->client_paused = true;
	}
}

/* ---- request side ---- */

static void reset_exchange(struct conn *c)
{
	memset(&c->x, 0, sizeof(c->x));
	c->x.backend = -1;
}

static void copy_slice(char *dst, size_t cap, const char *buf, struct http_slice s)
{
	size_t n = s.len < cap ? s.len : cap;

	memcpy(dst, buf + s.off, n);
	dst[n] = '\0';
}

/* A field name test that skips the byte comparison when the lengths differ (most do). */
#define FIELD_IS(buf, name, lit)                                                                   \
	((name).len == sizeof(lit) - 1 && http_slice_ieq((buf), (name), (lit)))

/* http_find_field() that compares bytes only where the lengths match. */
static int find_field_len(const struct http_head *h, const char *buf, const char *name, size_t len)
{
	for (unsigned i = 0; i < h->nfields; i++)
		if (h->fields[i].name.len == len && http_slice_ieq(buf, h->fields[i].name, name))
			return (int)i;
	return -1;
}

#define FIND_FIELD(h, buf, lit) find_field_len((h), (buf), (lit), sizeof(lit) - 1)

/* Keep the client's X-Request-ID when it is a sane token, else make one. */
static void choose_request_id(struct conn *c, const char *buf, const struct http_head *h)
{
	int i = FIND_FIELD(h, buf, "x-request-id");

	if (i >= 0 && h->fields[i].value.len > 0 && h->fields[i].value.len <= CONN_REQUEST_ID_MAX) {
		copy_slice(c->x.request_id, CONN_REQUEST_ID_MAX, buf, h->fields[i].value);
		for (char *p = c->x.request_id; *p != '\0'; p++)
			if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x21)
				goto generate;
		return;
	}
generate:
	util_request_id(&c->srv->rng, c->x.request_id);
}

/* Collect the field names listed in Connection (they are hop-by-hop for this message). */
static size_t connection_tokens(const char *buf, const struct http_head *h, struct http_slice *tok,
                                size_t max)
{
	size_t n = 0;

	for (unsigned i = 0; i < h->nfields; i++) {
		if (!FIELD_IS(buf, h->fields[i].name, "connection"))
			continue;
		uint32_t p = h->fields[i].value.off, end = p + h->fields[i].value.len;
		while (p < end && n < max) {
			while (p < end && (buf[p] == ',' || buf[p] == ' ' || buf[p] == '\t'))
				p++;
			uint32_t start = p;
			while (p < end && buf[p] != ',' && buf[p] != ' ' && buf[p] != '\t')
				p++;
			if (p > start)
				tok[n++] = (struct http_slice){start, p - start};
		}
	}
	return n;
}

static bool named_in(const char *buf, struct http_slice name, const struct http_slice *tok,
                     size_t ntok)
{
	for (size_t i = 0; i < ntok; i++)
		if (tok[i].len == name.len &&
		    strncasecmp(buf + tok[i].off, buf + name.off, name.len) == 0)
			return true;
	return false;
}

/* Fields the proxy replaces with its own values. */
static bool proxy_owned_field(const char *buf, struct http_slice name, const char *key_header,
                              size_t key_header_len)
{
	return FIELD_IS(buf, name, "x-forwarded-for") || FIELD_IS(buf, name, "x-forwarded-proto") ||
	       FIELD_IS(buf, name, "x-request-id") ||
	       FIELD_IS(buf, name, "x-conversation-moved-from") ||
	       (key_header_len > 0 && name.len == key_header_len &&
	        http_slice_ieq(buf, name, key_header));
}

/*
 * A rewritten head is assembled on the stack and handed to the evbuffer in one
 * evbuffer_add: every add runs the bufferevent's buffer callbacks (and, for a
 * printf, a vsnprintf), which cost far more than the copy. A head larger than the
 * stage goes out in stage-sized pieces.
 */
struct head_out {
	struct evbuffer *out; /* borrowed: where the head goes */
	size_t len;           /* bytes staged in buf */
	size_t total;         /* bytes of head written so far, staged or added */
	char buf[CONN_HEAD_STAGE];
};

static void ho_init(struct head_out *o, struct evbuffer *out)
{
	o->out = out;
	o->len = 0;
	o->total = 0;
}

static void ho_flush(struct head_out *o)
{
	if (o->len > 0)
		evbuffer_add(o->out, o->buf, o->len);
	o->len = 0;
}

static void ho_add(struct head_out *o, const void *p, size_t n)
{
	o->total += n;
	if (o->len + n > sizeof(o->buf)) {
		ho_flush(o);
		if (n > sizeof(o->buf)) {
			evbuffer_add(o->out, p, n);
			return;
		}
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

#define ho_lit(o, lit) ho_add((o), (lit), sizeof(lit) - 1)

static void ho_str(struct head_out *o, const char *s)
{
	ho_add(o, s, strlen(s));
}

static void ho_slice(struct head_out *o, const char *buf, struct http_slice s)
{
	ho_add(o, buf + s.off, s.len);
}

static void ho_uint(struct head_out *o, unsigned v)
{
	char digits[12];
	size_t i = sizeof(digits);

	do {
		digits[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	ho_add(o, digits + i, sizeof(digits) - i);
}

/* "name: value\r\n"; one bounds check for the usual field that fits the stage */
static void ho_field(struct head_out *o, const char *buf, const struct http_field *f)
{
	size_t n = f->name.len + f->value.len + 4;

	if (o->len + n <= sizeof(o->buf)) {
		char *p = o->buf + o->len;
		memcpy(p, buf + f->name.off, f->name.len);
		p += f->name.len;
		*p++ = ':';
		*p++ = ' ';
		memcpy(p, buf + f->value.off, f->value.len);
		p += f->value.len;
		*p++ = '\r';
		*p = '\n';
		o->len += n;
		o->total += n;
		return;
	}
	ho_slice(o, buf, f->name);
	ho_lit(o, ": ");
	ho_slice(o, buf, f->value);
	ho_lit(o, "\r\n");
}

static void add_forwarded_for(struct head_out *o, const char *buf, const struct http_head *h,
                              const char *client_ip)
{
	ho_lit(o, "X-Forwarded-For: ");
	for (unsigned i = 0; i < h->nfields; i++) {
		if (!FIELD_IS(buf, h->fields[i].name, "x-forwarded-for") ||
		    h->fields[i].value.len == 0)
			continue;
		ho_slice(o, buf, h->fields[i].value);
		ho_lit(o, ", ");
	}
	ho_str(o, client_ip);
	ho_lit(o, "\r\n");
}

/* Write the request head as the backend must see it: hop-by-hop fields removed, the
 * proxy's own fields added (RFC 9110 §7.6). Returns the head's length in bytes. */
static size_t write_request_head(struct conn *c, struct evbuffer *out, const char *buf,
                                 const struct http_head *h, const struct keyx_key *key)
{
	const struct rl_conf *conf = conf_of(c);
	struct http_slice tok[CONN_MAX_CONNECTION_TOKENS];
	size_t ntok = connection_tokens(buf, h, tok, CONN_MAX_CONNECTION_TOKENS);
	size_t key_header_len = strlen(conf->key_header);
	int upgrade_field = c->x.upgrade ? FIND_FIELD(h, buf, "upgrade") : -1;
	bool length_sent = false;
	struct head_out o;

	ho_init(&o, out);
	ho_slice(&o, buf, h->method);
	ho_lit(&o, " ");
	ho_slice(&o, buf, h->target);
	ho_lit(&o, " HTTP/1.");
	ho_uint(&o, (unsigned)h->version_minor);
	ho_lit(&o, "\r\n");
	for (unsigned i = 0; i < h->nfields; i++) {
		struct http_slice name = h->fields[i].name;
		if (http_is_hop_by_hop(buf + name.off, name.len) ||
		    named_in(buf, name, tok, ntok) ||
		    proxy_owned_field(buf, name, conf->key_header, key_header_len))
			continue;
		/* identical repeats were accepted by the parser; strict backends refuse them */
		if (FIELD_IS(buf, name, "content-length")) {
			if (length_sent)
				continue;
			length_sent = true;
		}
		ho_field(&o, buf, &h->fields[i]);
	}
	if (upgrade_field >= 0) {
		ho_lit(&o, "Connection: upgrade\r\nUpgrade: ");
		ho_slice(&o, buf, h->fields[upgrade_field].value);
		ho_lit(&o, "\r\n");
	}
	add_forwarded_for(&o, buf, h, c->client_ip);
	ho_lit(&o, "X-Forwarded-Proto: ");
	ho_str(&o, c->tls ? "https" : "http");
	ho_lit(&o, "\r\nX-Request-ID: ");
	ho_str(&o, c->x.request_id);
	ho_lit(&o, "\r\n");
	if (key != NULL && key_header_len > 0) {
		ho_add(&o, conf->key_header, key_header_len);
		ho_lit(&o, ": ");
		ho_str(&o, key->buf);
		ho_lit(&o, "\r\n");
	}
	if (c->x.moved_from[0] != '\0') {
		ho_lit(&o, "X-Conversation-Moved-From: ");
		ho_str(&o, c->x.moved_from);
		ho_lit(&o, "\r\n");
	}
	ho_lit(&o, "\r\n");
	ho_flush(&o);
	return o.total;
}

/*
 * response_timeout times the backend's answer once the whole request reached it; while
 * the client is still sending, only writes to the backend are timed. A client that stalls
 * its upload meets client_idle_timeout (408): it never becomes the backend's 504, nor a
 * passive failure that could eject a healthy backend.
 */
static void arm_upstream_timeouts(struct conn *c)
{
	struct timeval rt = ms_to_tv(conf_of(c)->response_timeout_ms);

	bufferevent_set_timeouts(c->up->bev, c->x.req_done ? &rt : NULL, &rt);
}

/* Forward as much request body as is buffered. Returns -1 if the connection closed. */
static int forward_request_body(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cbev);
	struct exchange *x = &c->x;

	while (!x->req_done && evbuffer_get_length(in) > 0 && !c->client_paused) {
		size_t avail = evbuffer_get_length(in), n = avail;
		if (x->req_body == HTTP_BODY_LENGTH) {
			if (n > x->req_remaining)
				n = (size_t)x->req_remaining;
			x->req_remaining -= n;
			x->req_done = x->req_remaining == 0;
		} else {
			struct evbuffer_iovec vec;
			size_t used = 0;
			if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1)
				break;
			enum http_result r = http_chunked_feed(&x->req_chunked, vec.iov_base,
			                                       vec.iov_len, &used);
			if (r == HTTP_ERR_BAD_REQUEST) {
				fail(c, 400, "malformed chunked body");
				return -1;
			}
			n = used;
			x->req_done = r == HTTP_OK;
			if (x->req_chunked.body_bytes > conf_of(c)->max_body_size) {
				fail(c, 413, reply_default_message(413));
				return -1;
			}
		}
		x->req_body_bytes += n;
		move_to_upstream(c, in, n);
	}
	if (x->req_done && c->body_timer) {
		bufferevent_set_timeouts(c->cbev, NULL, NULL);
		c->body_timer = false;
		/* the whole request is on its way: now the backend's answer is timed */
		if (c->up != NULL && c->up->connected)
			arm_upstream_timeouts(c);
	}
	if (c->up != NULL)
		send_now(c, c->up->bev);
	return 0;
}

/* Everything about the parsed head that outlives the input buffer. */
static void record_request(struct conn *c, const char *buf, const struct http_head *h)
{
	struct exchange *x = &c->x;

	x->started_us = util_now_us();
	copy_slice(x->method, CONN_METHOD_MAX, buf, h->method);
	copy_slice(x->target, CONN_LOG_TARGET_MAX, buf, h->target);
	x->version_minor = h->version_minor;
	x->client_keepalive = http_keep_alive(h);
	x->is_head = http_slice_ieq(buf, h->method, "HEAD");
	x->upgrade = (h->flags & HTTP_F_UPGRADE) != 0;
	int up = x->upgrade ? FIND_FIELD(h, buf, "upgrade") : -1;
	x->websocket = up >= 0 && http_slice_ieq(buf, h->fields[up].value, "websocket");
	x->req_body = h->body;
	x->req_remaining = h->body == HTTP_BODY_LENGTH ? h->content_length : 0;
	x->req_done = h->body == HTTP_BODY_NONE ||
	              (h->body == HTTP_BODY_LENGTH && h->content_length == 0);
	http_chunked_init(&x->req_chunked);
	choose_request_id(c, buf, h);
	c->srv->stats.requests++;
}

/* Status for a head we refuse before routing, 0 if acceptable. */
static int refuse_request(const struct conn *c, const char *buf, const struct http_head *h,
                          const char **why)
{
	if (http_slice_ieq(buf, h->method, "CONNECT")) {
		*why = "CONNECT is not supported";
		return 501;
	}
	if (h->body == HTTP_BODY_LENGTH && h->content_length > conf_of(c)->max_body_size) {
		*why = reply_default_message(413);
		return 413;
	}
	return 0;
}

/* Pick a backend for the current exchange, skipping those already tried. */
static bool route(struct conn *c)
{
	struct server *s = c->srv;
	bool *excluded = s->scratch + CONF_MAX_BACKENDS;
	struct router_request rq = {
	        .has_key = c->x.has_key,
	        .key_hash = c->x.key_hash,
	        .client_hash = c->client_hash,
	        .pin_key = c->x.pin_key,
	        .now_ms = util_now_us() / 1000,
	};

	memset(excluded, 0, c->pool->n);
	for (unsigned i = 0; i < c->x.attempts; i++)
		excluded[c->x.tried[i]] = true;
	struct router_choice ch = router_route(c->pool, &rq, excluded, s->scratch, &s->rng);
	c->x.backend = ch.backend;
	/* A conversation this very request placed did not move when a retry re-places it. */
	if (ch.reason == ROUTER_HASHED && c->x.has_key)
		c->x.pin_created = true;
	if (ch.moved_from >= 0 && !c->x.pin_created)
		snprintf(c->x.moved_from, sizeof(c->x.moved_from), "%s",
		         c->pool->b[ch.moved_from].conf->name);
	return ch.backend >= 0;
}

/* Process a complete, valid request head sitting at the front of the client input. */
static int start_exchange(struct conn *c, const char *buf, const struct http_head *h,
                          const char *body, size_t body_len)
{
	const char *why = NULL;
	int status;
	struct keyx_key key;
	enum keyx_miss miss;

	c->pool = pool_ref(c->srv->pool);
	record_request(c, buf, h);
	status = refuse_request(c, buf, h, &why);
	if (status != 0) {
		fail(c, status, why);
		return -1;
	}
	miss = keyx_extract(c->pool->conf, buf, h, body, body_len,
	                    body != NULL && body_len == h->content_length, &key);
	if (miss == KEYX_FOUND) {
		c->x.has_key = true;
		c->x.key_hash = router_key_hash(c->pool, key.buf, key.len);
		c->x.pin_key = router_pin_key(c->pool, key.buf, key.len);
	} else {
		c->srv->stats.no_key[miss]++;
		/* platform handshakes carry no key by design: route them, never reject */
		if (miss != KEYX_MISS_NO_KEY_EVENT &&
		    c->pool->conf->missing_key == RL_MISSING_REJECT) {
			fail(c, 400, "conversation key missing");
			return -1;
		}
	}
	if (!route(c)) {
		fail(c, 503, reply_default_message(503));
		return -1;
	}
	c->state = CONN_FORWARD;
	evtimer_del(c->timer);
	if (send_to_backend(c) < 0)
		return -1;
	/* The upstream's output is empty at attach: the head goes straight into it. */
	c->x.head_out_len = write_request_head(c, bufferevent_get_output(c->up->bev), buf, h,
	                                       c->x.has_key ? &key : NULL);
	evbuffer_drain(bufferevent_get_input(c->cbev), h->head_len);
	if (forward_request_body(c) < 0)
		return -1;
	/* Most bodies arrive with their head; only a body still on its way needs the timer. */
	if (!c->x.req_done) {
		struct timeval idle = ms_to_tv(c->pool->conf->client_idle_timeout_ms);
		bufferevent_set_timeouts(c->cbev, &idle, NULL);
		c->body_timer = true;
	}
	return 0;
}

/* ---- upstream attach, retry ---- */

static void attach_upstream(struct conn *c, struct upstream *u)
{
	c->up = u;
	c->x.tried[c->x.attempts++] = u->backend;
	c->x.upstream_us = util_now_us();
	atomic_fetch_add(&c->pool->b[u->backend].rt->inflight, 1);
	atomic_fetch_add(&c->pool->b[u->backend].rt->requests, 1);
	c->x.inflight_counted = true;
	bufferevent_setcb(u->bev, upstream_readcb, upstream_writecb, upstream_eventcb, c);
	bufferevent_setwatermark(u->bev, EV_WRITE, CONN_STREAM_HWM / 2, 0);
	/* a connecting upstream needs EV_WRITE to learn it connected; else see send_now().
	 * A parked one reads already: re-enabling would cost an event_add. */
	if (!u->connected)
		bufferevent_enable(u->bev, EV_READ | EV_WRITE);
	else if (!(bufferevent_get_enabled(u->bev) & EV_READ))
		bufferevent_enable(u->bev, EV_READ);
	if (u->connected)
		arm_upstream_timeouts(c);
}

/* Get a connection to the chosen backend (parked or new). -1 if the conn closed. */
static int send_to_backend(struct conn *c)
{
	for (;;) {
		/* parked connections belong to the server's current snapshot: a request that
		 * started in an older one (a reload in between) opens its own */
		struct upstream *u =
		        c->pool == c->srv->pool ? upstream_take_idle(c->srv, c->x.backend) : NULL;
		if (u == NULL)
			u = upstream_connect(c->srv, c->pool, c->x.backend);
		if (u != NULL) {
			attach_upstream(c, u);
			return 0;
		}
		/* Could not even start a connection: treat as a connect failure. */
		c->x.tried[c->x.attempts++] = c->x.backend;
		atomic_fetch_add(&c->pool->b[c->x.backend].rt->connect_failures, 1);
		health_passive_report(&c->pool->b[c->x.backend], true,
		                      conf_of(c)->passive_failures);
		if (c->x.attempts > conf_of(c)->retries || c->x.attempts >= CONN_MAX_ATTEMPTS ||
		    !route(c)) {
			fail(c, 502, reply_default_message(502));
			return -1;
		}
	}
}

/* The retry re-pinned the conversation: tell the new backend where it came from by
 * inserting the header before the blank line that ends the staged head. */
static void add_moved_from(struct conn *c, struct evbuffer *staged)
{
	struct evbuffer *rebuilt = evbuffer_new();
	size_t head_lines = c->x.head_out_len - 2;

	if (rebuilt == NULL || evbuffer_get_length(staged) < c->x.head_out_len) {
		evbuffer_free(rebuilt);
		return;
	}
	evbuffer_remove_buffer(staged, rebuilt, head_lines);
	evbuffer_add_printf(rebuilt, "X-Conversation-Moved-From: %s\r\n", c->x.moved_from);
	c->x.head_out_len = evbuffer_get_length(rebuilt) + 2;
	evbuffer_add_buffer(rebuilt, staged);
	evbuffer_add_buffer(staged, rebuilt);
	evbuffer_free(rebuilt);
}

/* The connection attempt failed before anything was sent: move the staged request to
 * the next candidate, if retries allow. A request once sent is never replayed. */
static void connect_failed(struct conn *c, const char *why)
{
	struct evbuffer *staged = evbuffer_new();
	struct rl_backend *b = &c->pool->b[c->x.backend];

	log_warn("backend %s: connect failed (%s)", b->conf->name, why);
	atomic_fetch_add(&b->rt->connect_failures, 1);
	health_passive_report(b, true, conf_of(c)->passive_failures);
	atomic_fetch_add(&b->rt->errors, 1);
	release_backend_load(c);
	if (staged == NULL || c->x.attempts > conf_of(c)->retries ||
	    c->x.attempts >= CONN_MAX_ATTEMPTS || !route(c)) {
		evbuffer_free(staged);
		fail(c, 502, reply_default_message(502));
		return;
	}
	/* A keyed request goes to its next candidate on the table (tried backends are
	 * ineligible in the overlay); a keyless one follows missing_key again. */
	evbuffer_add_buffer(staged, bufferevent_get_output(c->up->bev));
	if (c->x.moved_from[0] != '\0')
		add_moved_from(c, staged);
	detach_upstream(c, false);
	c->srv->stats.retries++;
	if (send_to_backend(c) == 0) {
		evbuffer_add_buffer(bufferevent_get_output(c->up->bev), staged);
		forward_request_body(c);
	}
	evbuffer_free(staged);
}

/* ---- response side ---- */

static bool response_keeps_upstream(const struct exchange *x)
{
	return x->resp_keepalive && x->req_done && x->resp_body != HTTP_BODY_CLOSE;
}

/* The response is complete: log, release, and go back to waiting for a request. */
static void finish_exchange(struct conn *c)
{
	struct exchange *x = &c->x;
	bool reuse = c->up != NULL && response_keeps_upstream(x) &&
	             evbuffer_get_length(bufferevent_get_input(c->up->bev)) == 0;

	send_now(c, c->cbev);
	count_response(c, x->status);
	log_exchange(c);
	detach_upstream(c, reuse);
	end_exchange_refs(c);
	if (!x->req_done || c->close_after || c->srv->stopping) {
		start_closing(c);
		return;
	}
	c->requests++;
	reset_exchange(c);
	c->state = CONN_WAIT_HEAD;
	if (c->client_paused) /* re-enabling a live read event costs an event_add */
		bufferevent_enable(c->cbev, EV_READ);
	c->client_paused = false;
	if (evbuffer_get_length(bufferevent_get_input(c->cbev)) > 0) {
		arm_timer(c, CONN_TIMER_HEAD, conf_of(c)->header_timeout_ms);
		try_request_head(c);
	} else {
		arm_timer(c, CONN_TIMER_IDLE, conf_of(c)->client_idle_timeout_ms);
	}
}

static void write_response_head(struct conn *c, const char *buf, const struct http_head *h)
{
	bool switching = h->status == 101;
	bool final = !switching;
	struct head_out o;

	ho_init(&o, client_out(c));
	ho_lit(&o, "HTTP/1.1 ");
	ho_uint(&o, (unsigned)h->status);
	ho_lit(&o, " ");
	ho_slice(&o, buf, h->reason);
	ho_lit(&o, "\r\n");
	for (unsigned i = 0; i < h->nfields; i++) {
		struct http_slice name = h->fields[i].name;
		bool keep_for_upgrade = switching && FIELD_IS(buf, name, "upgrade");
		if (http_is_hop_by_hop(buf + name.off, name.len) && !keep_for_upgrade)
			continue;
		ho_field(&o, buf, &h->fields[i]);
	}
	if (switching)
		ho_lit(&o, "Connection: upgrade\r\n");
	else if (h->status < 200)
		final = false; /* an interim response says nothing about the connection */
	if (final && c->close_after)
		ho_lit(&o, "Connection: close\r\n");
	else if (final && c->x.version_minor == 0)
		ho_lit(&o, "Connection: keep-alive\r\n");
	ho_lit(&o, "\r\n");
	ho_flush(&o);
	c->x.bytes_out += h->head_len;
}

static void enter_tunnel(struct conn *c)
{
	struct timeval idle = ms_to_tv(conf_of(c)->tunnel_idle_timeout_ms);

	c->state = CONN_TUNNEL;
	count_response(c, 101);
	log_exchange(c);
	bufferevent_set_timeouts(c->cbev, &idle, NULL);
	bufferevent_set_timeouts(c->up->bev, &idle, NULL);
	bufferevent_enable(c->cbev, EV_READ);
	c->client_paused = false;
}

/* Decide what the final response means for both connections. */
static void adopt_response(struct conn *c, const char *buf, const struct http_head *h)
{
	struct exchange *x = &c->x;
	int ct = FIND_FIELD(h, buf, "content-type");

	x->status = h->status;
	x->resp_head_done = true;
	x->first_byte_us = util_now_us();
	health_passive_report(&c->pool->b[x->backend], h->status >= 500,
	                      conf_of(c)->passive_failures);
	stats_observe_latency(c->pool->b[x->backend].rt, x->first_byte_us - x->upstream_us);
	x->resp_body = h->body;
	x->resp_remaining = h->body == HTTP_BODY_LENGTH ? h->content_length : 0;
	x->resp_keepalive = http_keep_alive(h);
	http_chunked_init(&x->resp_chunked);
	x->resp_stream = ct >= 0 && h->fields[ct].value.len >= 17 &&
	                 strncasecmp(buf + h->fields[ct].value.off, "text/event-stream", 17) == 0;
	if (!x->client_keepalive || h->body == HTTP_BODY_CLOSE || c->client_eof ||
	    c->srv->stopping || !x->req_done)
		c->close_after = true;
	if (x->resp_stream) {
		struct timeval idle = ms_to_tv(conf_of(c)->tunnel_idle_timeout_ms);
		bufferevent_set_timeouts(c->up->bev, &idle, NULL);
	}
}

/* Parse response heads at the front of the upstream input (1xx are relayed as they come).
 * Returns 1 when the final head was taken, 0 when more bytes are needed, -1 closed. */
static int take_response_head(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->up->bev);
	struct http_head *h = &c->srv->head;

	for (;;) {
		size_t len = evbuffer_get_length(in);
		size_t look = len < CONN_RESPONSE_HEAD_MAX + 1 ? len : CONN_RESPONSE_HEAD_MAX + 1;
		const char *buf = (const char *)evbuffer_pullup(in, (ssize_t)look);
		enum http_result r;

		if (len == 0)
			return 0;
		r = http_parse_response(buf, look, CONN_RESPONSE_HEAD_MAX, c->x.is_head, h);
		if (r == HTTP_NEED_MORE)
			return 0;
		if (r != HTTP_OK) {
			log_warn("backend %s: malformed response head",
			         c->pool->b[c->x.backend].conf->name);
			fail(c, 502, reply_default_message(502));
			return -1;
		}
		if (h->status >= 100 && h->status < 200 && h->status != 101) {
			/* interim responses mean nothing to an HTTP/1.0 client (RFC 9110 §15.2) */
			if (c->x.version_minor > 0)
				write_response_head(c, buf, h);
			evbuffer_drain(in, h->head_len);
			continue;
		}
		if (h->status == 101 && !c->x.upgrade) {
			fail(c, 502, "backend switched protocols unasked");
			return -1;
		}
		adopt_response(c, buf, h);
		write_response_head(c, buf, h);
		evbuffer_drain(in, h->head_len);
		if (h->status == 101)
			enter_tunnel(c);
		return 1;
	}
}

/* Move response body bytes to the client. Returns 1 when the body ended, 0 for more,
 * -1 when the connection closed. */
static int forward_response_body(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->up->bev);
	struct exchange *x = &c->x;

	if (x->resp_body == HTTP_BODY_NONE)
		return 1;
	while (evbuffer_get_length(in) > 0 && !c->upstream_paused) {
		size_t n = evbuffer_get_length(in);
		if (x->resp_body == HTTP_BODY_LENGTH) {
			if (n > x->resp_remaining)
				n = (size_t)x->resp_remaining;
			x->resp_remaining -= n;
		} else if (x->resp_body == HTTP_BODY_CHUNKED) {
			struct evbuffer_iovec vec;
			size_t used = 0;
			evbuffer_peek(in, -1, NULL, &vec, 1);
			enum http_result r = http_chunked_feed(&x->resp_chunked, vec.iov_base,
			                                       vec.iov_len, &used);
			if (r == HTTP_ERR_BAD_REQUEST) {
				log_warn("backend %s: malformed chunked body",
				         c->pool->b[x->backend].conf->name);
				fail(c, 502, reply_default_message(502));
				return -1;
			}
			n = used;
			if (r == HTTP_OK) {
				move_to_client(c, in, n);
				return 1;
			}
		}
		move_to_client(c, in, n);
		/* a stream waiting to be cut stops at the first chunk boundary */
		if (c->cut_pending && x->resp_body == HTTP_BODY_CHUNKED &&
		    http_chunked_at_boundary(&x->resp_chunked))
			return 0;
		if (x->resp_body == HTTP_BODY_LENGTH && x->resp_remaining == 0)
			return 1;
	}
	return x->resp_body == HTTP_BODY_LENGTH && x->resp_remaining == 0;
}

/* Track the first n bytes of buf, however many chains they span. */
static void ws_feed_buffer(struct ws_track *t, struct evbuffer *buf, size_t n)
{
	struct evbuffer_ptr pos;
	struct evbuffer_iovec vec[8];

	evbuffer_ptr_set(buf, &pos, 0, EVBUFFER_PTR_SET);
	while (n > 0) {
		int nvec = evbuffer_peek(buf, (ev_ssize_t)n, &pos, vec, 8);
		size_t fed = 0;

		for (int i = 0; i < nvec && i < 8 && fed < n; i++) {
			size_t k = vec[i].iov_len < n - fed ? vec[i].iov_len : n - fed;
			ws_feed(t, vec[i].iov_base, k);
			fed += k;
		}
		if (fed == 0 || evbuffer_ptr_set(buf, &pos, fed, EVBUFFER_PTR_ADD) < 0)
			break;
		n -= fed;
	}
}

static void cut_stream(struct conn *c);

static void tunnel_pump(struct conn *c, struct bufferevent *from)
{
	struct evbuffer *in = bufferevent_get_input(from);
	size_t n = evbuffer_get_length(in);

	/* at the drain deadline, stop at a frame boundary (more bytes wait in the buffer) */
	if (c->x.websocket) {
		struct ws_track *t = from == c->cbev ? &c->ws_up : &c->ws_down;
		if (c->cut_pending && ws_at_boundary(t))
			n = 0;
		else
			ws_feed_buffer(t, in, n);
	}
	if (from == c->cbev)
		move_to_upstream(c, in, n);
	else
		move_to_client(c, in, n);
	if (c->cut_pending)
		cut_stream(c);
}

static void upstream_readcb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	int r;

	if (c->state == CONN_TUNNEL) {
		tunnel_pump(c, bev);
		return;
	}
	if (c->state != CONN_FORWARD)
		return;
	if (!c->x.resp_head_done) {
		r = take_response_head(c);
		if (r == 0) /* relayed 1xx heads, if any */
			send_now(c, c->cbev);
		if (r <= 0 || c->state == CONN_TUNNEL) {
			if (c->state == CONN_TUNNEL && r > 0)
				tunnel_pump(c, bev);
			return;
		}
	}
	r = forward_response_body(c);
	if (r == 1) {
		finish_exchange(c);
	} else if (r == 0) {
		send_now(c, c->cbev); /* a head whose body is still on its way */
		if (c->cut_pending)
			cut_stream(c);
	}
}

static void upstream_writecb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	write_idle(c, bev);
	if (c->state == CONN_TUNNEL)
		shut_upstream_if_flushed(c);
	if (c->client_paused && c->state != CONN_CLOSING) {
		c->client_paused = false;
		bufferevent_enable(c->cbev, EV_READ);
		if (c->state == CONN_TUNNEL)
			tunnel_pump(c, c->cbev);
		else if (c->state == CONN_FORWARD)
			forward_request_body(c);
	}
}

static void upstream_connected(struct conn *c)
{
	c->up->connected = true;
	arm_upstream_timeouts(c);
}

/* The backend closed (EOF) or failed. */
static void upstream_gone(struct conn *c, short what)
{
	struct exchange *x = &c->x;

	if (c->state == CONN_TUNNEL) {
		start_closing(c);
		return;
	}
	if (x->resp_head_done && x->resp_body == HTTP_BODY_CLOSE && (what & BEV_EVENT_EOF)) {
		/* Close-delimited body: drain what is left, then the body is complete. */
		upstream_readcb(c->up->bev, c);
		if (c->state == CONN_FORWARD && c->up != NULL) {
			move_to_client(c, bufferevent_get_input(c->up->bev),
			               evbuffer_get_length(bufferevent_get_input(c->up->bev)));
			c->close_after = true;
			finish_exchange(c);
		}
		return;
	}
	/* A reused connection the backend closed as it was handed out is the keep-alive
	 * race, not a sick backend: it answers 502 but is no passive failure. */
	if (!x->resp_head_done && !(c->up->reused && (what & BEV_EVENT_EOF)))
		health_passive_report(&c->pool->b[x->backend], true, conf_of(c)->passive_failures);
	if (!x->resp_head_done && (what & BEV_EVENT_TIMEOUT)) {
		log_warn("backend %s: no response in time", c->pool->b[x->backend].conf->name);
		fail(c, 504, reply_default_message(504));
		return;
	}
	log_warn("backend %s: connection lost (%s)", c->pool->b[x->backend].conf->name,
	         what & BEV_EVENT_TIMEOUT ? "timeout"
	         : what & BEV_EVENT_EOF   ? "closed"
	                                  : "error");
	fail(c, 502, reply_default_message(502));
}

static void upstream_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		upstream_connected(c);
		return;
	}
	if (c->state == CONN_CLOSING) {
		detach_upstream(c, false);
		return;
	}
	if (!c->up->connected) {
		char why[64];
		const char *tls_why = tls_upstream_error(bev); /* logged with its reason */
		snprintf(why, sizeof(why), "%s",
		         what & BEV_EVENT_TIMEOUT ? "timeout"
		         : tls_why != NULL        ? tls_why
		                           : strerror(EVUTIL_SOCKET_ERROR() ? EVUTIL_SOCKET_ERROR()
		                                                            : ECONNREFUSED));
		connect_failed(c, why);
		return;
	}
	/* Data may have arrived together with the EOF. */
	if ((what & BEV_EVENT_EOF) && evbuffer_get_length(bufferevent_get_input(bev)) > 0 &&
	    c->state == CONN_FORWARD) {
		upstream_readcb(bev, c);
		if (c->state != CONN_FORWARD || c->up == NULL)
			return;
	}
	upstream_gone(c, what);
}

/* ---- client side ---- */

/*
 * The parser rescans from the first byte, so a head trickled byte by byte would cost
 * O(n²). Parse the first bytes at once (early rejection of garbage), then again only
 * when the end of the head may have arrived or another CONN_REPARSE_STEP bytes came.
 */
static bool worth_parsing(struct conn *c, struct evbuffer *in, size_t len, size_t max)
{
	struct evbuffer_ptr from;

	if (c->head_tried == 0 || len > max || len >= c->head_tried + CONN_REPARSE_STEP)
		return true;
	if (evbuffer_ptr_set(in, &from, c->head_tried > 3 ? c->head_tried - 3 : 0,
	                     EVBUFFER_PTR_SET) < 0)
		return true;
	return evbuffer_search(in, "\r\n\r\n", 4, &from).pos >= 0;
}

/* Try to parse a request head from the client input and start its exchange. */
/* Bytes of body the key sources must see before routing (0: the head is enough). */
static size_t key_body_wanted(const struct rl_conf *conf, const struct http_head *h)
{
	if (h->body != HTTP_BODY_LENGTH || !keyx_needs_body(conf))
		return 0;
	return h->content_length < conf->max_key_body ? (size_t)h->content_length
	                                              : conf->max_key_body;
}

/* Parse the head at the front of the input. HTTP_NEED_MORE also when parsing is not
 * worth it yet, or while the body a key source needs is still arriving. */
static enum http_result parse_head(struct conn *c, struct evbuffer *in, const char **buf)
{
	const struct rl_conf *conf = conf_of(c);
	size_t len = evbuffer_get_length(in);
	size_t look = len < conf->max_header_size + 1 ? len : conf->max_header_size + 1;
	enum http_result r;

	if (c->body_wait > 0) {
		if (len < c->body_wait)
			return HTTP_NEED_MORE;
		look = c->body_wait;
	} else if (!worth_parsing(c, in, len, conf->max_header_size)) {
		return HTTP_NEED_MORE;
	}
	*buf = (const char *)evbuffer_pullup(in, (ssize_t)look);
	r = http_parse_request(*buf, look, conf->max_header_size, &c->srv->head);
	c->head_tried = r == HTTP_NEED_MORE ? len : 0;
	return r;
}

/* A body key source needs the first max_key_body bytes: wait for them (the head timer
 * keeps running). Returns true when the caller must wait. */
static bool wait_for_key_body(struct conn *c, const struct http_head *h, size_t len)
{
	const struct rl_conf *conf = conf_of(c);
	size_t want = key_body_wanted(conf, h);

	if (want == 0 || c->body_wait > 0 || h->content_length > conf->max_body_size)
		return false;
	c->body_wait = h->head_len + want;
	if (len >= c->body_wait)
		return false;
	/* the client may hold the body back until it hears from us */
	if (h->flags & HTTP_F_EXPECT_CONTINUE)
		evbuffer_add_printf(client_out(c), "HTTP/1.1 100 Continue\r\n\r\n");
	send_now(c, c->cbev);
	return true;
}

/* Try to parse a request head from the client input and start its exchange. */
static int try_request_head(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cbev);
	struct http_head *h = &c->srv->head;
	const char *buf = NULL;
	size_t want;
	enum http_result r;

	if (evbuffer_get_length(in) == 0)
		return 0;
	if (c->timer_mode == CONN_TIMER_IDLE)
		arm_timer(c, CONN_TIMER_HEAD, conf_of(c)->header_timeout_ms);
	r = parse_head(c, in, &buf);
	if (r == HTTP_NEED_MORE)
		return 0;
	if (r != HTTP_OK) {
		int status = http_result_status(r);
		c->x.started_us = util_now_us();
		snprintf(c->x.method, sizeof(c->x.method), "-");
		fail(c, status, reply_default_message(status));
		return -1;
	}
	if (wait_for_key_body(c, h, evbuffer_get_length(in)))
		return 0;
	want = c->body_wait > 0 ? c->body_wait - h->head_len : 0;
	if (want > 0)
		buf = (const char *)evbuffer_pullup(in, (ssize_t)c->body_wait);
	c->body_wait = 0;
	return start_exchange(c, buf, h, want > 0 ? buf + h->head_len : NULL, want);
}

static void client_readcb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	switch (c->state) {
	case CONN_WAIT_HEAD:
		try_request_head(c);
		break;
	case CONN_FORWARD:
		if (!c->x.req_done && c->up != NULL)
			forward_request_body(c);
		break;
	case CONN_TUNNEL:
		tunnel_pump(c, bev);
		break;
	case CONN_CLOSING:
		evbuffer_drain(bufferevent_get_input(bev),
		               evbuffer_get_length(bufferevent_get_input(bev)));
		break;
	}
}

static void client_writecb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	write_idle(c, bev);
	if (c->state == CONN_CLOSING) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
			return;
		if (c->client_eof) {
			conn_close(c, "done");
			return;
		}
		if (c->tls)
			tls_close_notify(bev);
		shutdown(bufferevent_getfd(bev), SHUT_WR);
		bufferevent_enable(bev, EV_READ);
		arm_timer(c, CONN_TIMER_LINGER, CONN_LINGER_MS);
		return;
	}
	if (c->upstream_paused && c->up != NULL) {
		c->upstream_paused = false;
		bufferevent_enable(c->up->bev, EV_READ);
		if (evbuffer_get_length(bufferevent_get_input(c->up->bev)) > 0)
			upstream_readcb(c->up->bev, c);
	}
}

/* Half-close the upstream of a tunnel once its output is flushed. A TLS upstream is not
 * half-closed (shutdown() under TLS would cut the record stream); it ends when a side
 * closes. */
static void shut_upstream_if_flushed(struct conn *c)
{
	if (!c->upstream_shut_pending || c->up == NULL ||
	    evbuffer_get_length(bufferevent_get_output(c->up->bev)) > 0)
		return;
	c->upstream_shut_pending = false;
	if (!tls_bufferevent_is_tls(c->up->bev))
		shutdown(bufferevent_getfd(c->up->bev), SHUT_WR);
}

static void client_eof(struct conn *c)
{
	c->client_eof = true;
	switch (c->state) {
	case CONN_WAIT_HEAD:
		conn_close(c, "client closed");
		return;
	case CONN_FORWARD:
		if (!c->x.req_done) {
			conn_close(c, "client closed mid-request");
			return;
		}
		/* Half-close after a complete request: answer it, then close. */
		c->close_after = true;
		return;
	case CONN_TUNNEL:
		/* pass the half-close on once what the client sent has reached the backend */
		c->upstream_shut_pending = true;
		shut_upstream_if_flushed(c);
		return;
	case CONN_CLOSING:
		if (evbuffer_get_length(bufferevent_get_output(c->cbev)) == 0)
			conn_close(c, "closed after the last response");
		return;
	}
}

static void client_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) /* TLS handshake done */
		return;
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		client_eof(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if ((what & BEV_EVENT_READING) && c->state == CONN_FORWARD && !c->x.req_done)
			fail(c, 408, "request body not received in time");
		else
			conn_close(c, "client timeout");
		return;
	}
	conn_close(c, "client error");
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	switch (c->timer_mode) {
	case CONN_TIMER_HEAD:
		if (c->tls && !tls_handshake_done(c->cbev)) {
			conn_close(c, "TLS handshake not done in time");
			break;
		}
		if (c->state == CONN_WAIT_HEAD) {
			c->x.started_us = util_now_us();
			snprintf(c->x.method, sizeof(c->x.method), "-");
			fail(c, 408, reply_default_message(408));
		}
		break;
	case CONN_TIMER_IDLE:
		if (c->state == CONN_WAIT_HEAD)
			conn_close(c, "idle");
		break;
	case CONN_TIMER_LINGER:
		conn_close(c, "linger done");
		break;
	}
}

/* ---- drain deadline: streams to a drained backend end cleanly ---- */

/* Close frame 1001 "going away" both ways: unmasked to the client, masked (as a client
 * must) to the backend. The backend's copy is best effort: sent only if nothing else is
 * queued toward it, since the upstream is closed right after. */
static void ws_send_close(struct conn *c)
{
	uint8_t code[2] = {WS_CLOSE_GOING_AWAY >> 8, WS_CLOSE_GOING_AWAY & 0xff};
	uint8_t to_client[4] = {0x88, 0x02, code[0], code[1]};
	uint64_t m = util_rng_next(&c->srv->rng);
	uint8_t mask[4] = {(uint8_t)m, (uint8_t)(m >> 8), (uint8_t)(m >> 16), (uint8_t)(m >> 24)};
	uint8_t to_backend[8] = {0x88,
	                         0x82,
	                         mask[0],
	                         mask[1],
	                         mask[2],
	                         mask[3],
	                         (uint8_t)(code[0] ^ mask[0]),
	                         (uint8_t)(code[1] ^ mask[1])};

	evbuffer_add(client_out(c), to_client, sizeof(to_client));
	/* a raw write would bypass a TLS upstream's encryption: plain backends only */
	if (c->up != NULL && !tls_bufferevent_is_tls(c->up->bev) &&
	    evbuffer_get_length(bufferevent_get_output(c->up->bev)) == 0)
		(void)send(bufferevent_getfd(c->up->bev), to_backend, sizeof(to_backend),
		           MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* End an event stream with a final event, framed as the response is. */
static void sse_send_drain(struct conn *c)
{
	struct evbuffer *out = client_out(c);
	size_t len = sizeof(SSE_DRAIN_EVENT) - 1;

	if (c->x.resp_body == HTTP_BODY_CHUNKED)
		evbuffer_add_printf(out, "%zx\r\n%s\r\n0\r\n\r\n", len, SSE_DRAIN_EVENT);
	else if (c->x.resp_body == HTTP_BODY_CLOSE)
		evbuffer_add(out, SSE_DRAIN_EVENT, len);
}

/* Is the stream at a point where the proxy may end it without corrupting a message? */
static bool cut_point(const struct conn *c)
{
	if (c->state == CONN_TUNNEL)
		return !c->x.websocket ||
		       (ws_at_boundary(&c->ws_up) && ws_at_boundary(&c->ws_down));
	if (c->x.resp_body == HTTP_BODY_CHUNKED)
		return http_chunked_at_boundary(&c->x.resp_chunked);
	return true;
}

static void cut_stream(struct conn *c)
{
	c->cut_pending = true;
	if (!cut_point(c))
		return;
	c->cut_pending = false;
	if (c->state == CONN_TUNNEL && c->x.websocket) {
		ws_send_close(c);
	} else if (c->state == CONN_FORWARD) {
		sse_send_drain(c);
		count_response(c, c->x.status);
		log_exchange(c);
	}
	log_info("conn %s: stream to drained backend %s ended", c->client,
	         c->pool->b[c->x.backend].conf->name);
	c->close_after = true;
	start_closing(c);
}

/* Long-lived streams (tunnels, event streams) still open to a backend that reached its
 * drain deadline. */
static bool stream_to_drained(const struct conn *c)
{
	if (c->pool == NULL || c->x.backend < 0 || c->state == CONN_CLOSING)
		return false;
	if (atomic_load(&c->pool->b[c->x.backend].rt->life) != BACKEND_DRAINED)
		return false;
	return c->state == CONN_TUNNEL ||
	       (c->state == CONN_FORWARD && c->x.resp_head_done && c->x.resp_stream);
}

void conn_sweep(struct server *s)
{
	struct conn *c, *next;

	for (c = TAILQ_FIRST(&s->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		if (stream_to_drained(c) && !c->cut_pending)
			cut_stream(c);
	}
}

void conn_accept(struct server *s, int fd, const struct sockaddr *addr, socklen_t addrlen, bool tls)
{
	const struct rl_conf *conf = s->pool->conf;
	struct conn *c;

	s->stats.accepted++;
	if (s->stopping || !take_slot(s, conf->max_connections) ||
	    ((c = calloc(1, sizeof(*c))) == NULL && (release_slot(s), true))) {
		s->stats.refused++;
		close(fd);
		return;
	}
	c->srv = s;
	c->tls = tls;
	c->cbev = tls ? tls_bufferevent_new(s->pool, s->base, fd)
	              : bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->tls_out = tls ? evbuffer_new() : NULL;
	c->timer = evtimer_new(s->base, timer_cb, c);
	if (c->cbev == NULL || c->timer == NULL || (tls && c->tls_out == NULL)) {
		if (c->cbev != NULL)
			bufferevent_free(c->cbev);
		else
			close(fd);
		if (c->timer != NULL)
			event_free(c->timer);
		if (c->tls_out != NULL)
			evbuffer_free(c->tls_out);
		free(c);
		release_slot(s);
		s->stats.refused++;
		return;
	}
	util_format_addr(addr, 1, c->client, sizeof(c->client));
	util_format_addr(addr, 0, c->client_ip, sizeof(c->client_ip));
	c->client_hash = hash64(c->client_ip, strlen(c->client_ip), conf->hash_seed);
	c->state = CONN_WAIT_HEAD;
	reset_exchange(c);
	TAILQ_INSERT_TAIL(&s->conns, c, link);
	s->nconns++;
	bufferevent_setcb(c->cbev, client_readcb, client_writecb, client_eventcb, c);
	/* bodies are moved on as they come: input only holds a head, the part of a body a
	 * key source needs, and some pipelined bytes */
	bufferevent_setwatermark(c->cbev, EV_READ, 0,
	                         conf->max_header_size + conf->max_key_body + CONN_READ_SLACK);
	bufferevent_setwatermark(c->cbev, EV_WRITE, CONN_STREAM_HWM / 2, 0);
	/* written directly (send_now) */
	bufferevent_disable(c->cbev, EV_WRITE); /* on by default in a new bufferevent */
	bufferevent_enable(c->cbev, EV_READ);
	arm_timer(c, CONN_TIMER_HEAD, conf->header_timeout_ms);
	(void)addrlen;
}

void conn_shutdown_all(struct server *s)
{
	struct conn *c, *next;

	for (c = TAILQ_FIRST(&s->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->state == CONN_WAIT_HEAD &&
		    evbuffer_get_length(bufferevent_get_input(c->cbev)) == 0)
			conn_close(c, "shutdown");
		else
			c->close_after = true;
	}
}
