/*
 * convload: a conversation-aware HTTP/1.1 load client for ringleader's benches.
 *
 *   slot 0..c-1: one conversation at a time, one message in flight
 *      │   POST PATH, X-Conversation-ID: PREFIX-SLOT-GEN, -m messages, then a new one
 *      ▼
 *   connection (keep-alive, or new per request; plain or TLS) ──► target
 *      ▲
 *      └── reply: status line, framing (Content-Length | chunked | close), then botsim's
 *          {"backend":B,"conv":C,"seq":N}: another backend, or a seq that does not follow
 *          the conversation's own count, means the conversation moved
 *
 * Closed loop (default): a slot sends its next message when the previous reply is in.
 * Fixed rate (-R): every slot follows a schedule of intended send times (rate / c each)
 * and latency counts from the intended time, so a stall is charged to every message it
 * delayed (no coordinated omission, as in wrk2).
 *
 * SIGUSR1 closes the current phase: a "phase" line for the time since the previous mark,
 * then the next phase starts. SIGUSR2 marks the moment within a phase after which new
 * conversations are also counted apart (settled_new.NAME in the phase line): a bench
 * sends it once a reload has surely taken effect. SIGINT/SIGTERM end the run early. The run ends
 * with a report (unless -q) and one machine-readable "summary" line of key=value pairs.
 */

#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define CL_MAX_SLOTS      100000        /* conversations in flight at most */
#define CL_MAX_BACKENDS   64            /* distinct backend names tracked; more count as "?" */
#define CL_NAME_MAX       64            /* bytes of a backend name, with the NUL */
#define CL_ID_MAX         96            /* bytes of a conversation id, with the NUL */
#define CL_PREFIX_MAX     48            /* bytes of the id prefix */
#define CL_HEAD_MAX       (64 * 1024)   /* bytes: a longer response head is a parse error */
#define CL_BODY_KEEP      2048          /* bytes of a response body kept for the JSON check */
#define CL_REQ_HEAD_MAX   1024          /* bytes of a request head */
#define CL_BODY_MAX       (1024 * 1024) /* bytes, cap for -b */
#define CL_ERR_BACKOFF_MS 10            /* closed loop: pause of a slot after a failure */
#define CL_MAX_PIDS       16            /* -C: processes whose CPU and memory are read */
#define CL_FREE_PORTS_MAX 64
#define CL_STATUS_MAX     600
#define NS_PER_S          UINT64_C(1000000000)
#define NS_PER_MS         UINT64_C(1000000)
#define NS_PER_US         1000.0

/* Log-linear latency histogram (as HdrHistogram): values in ns, HIST_SUB sub-buckets per
 * power of two, so a bucket is at most 1/HIST_SUB (1.6%) wide; up to 2^46 ns (~19.5 h). */
#define HIST_SUB_BITS  6
#define HIST_SUB       (1u << HIST_SUB_BITS)
#define HIST_MAX_SHIFT 40
#define HIST_BUCKETS   ((HIST_MAX_SHIFT + 2) * HIST_SUB)
#define HIST_MAX_VALUE ((UINT64_C(1) << (HIST_MAX_SHIFT + HIST_SUB_BITS + 1)) - 1)

#define CL_EXIT_USAGE   2
#define CL_EXIT_RUNTIME 1

enum cl_err {
	ERR_CONNECT = 0, /* TCP connect failed or refused */
	ERR_TLS,         /* TLS handshake failed */
	ERR_TIMEOUT,     /* no complete reply within -t */
	ERR_CLOSED,      /* connection closed or reset before the reply was complete */
	ERR_PARSE,       /* malformed HTTP, or a 2xx body that is not this conversation's answer */
	ERR_STATUS,      /* a complete reply with a status other than 2xx (by code in status[]) */
	ERR_COUNT,
};

static const char *const err_names[ERR_COUNT] = {
        [ERR_CONNECT] = "connect", [ERR_TLS] = "tls",     [ERR_TIMEOUT] = "timeout",
        [ERR_CLOSED] = "closed",   [ERR_PARSE] = "parse", [ERR_STATUS] = "status",
};

struct hist {
	uint64_t count;
	uint64_t max;             /* ns */
	uint64_t b[HIST_BUCKETS]; /* counts */
};

/* Counters of one period: the whole run (after warmup) or one phase. */
struct stats {
	uint64_t start_ns;              /* monotonic */
	uint64_t replies;               /* complete HTTP replies, any status */
	uint64_t ok;                    /* 2xx replies that passed the conversation check */
	uint64_t err[ERR_COUNT];        /* failed messages by kind */
	uint64_t status[CL_STATUS_MAX]; /* non-2xx replies by code */
	uint64_t moved;                 /* conversation moves seen */
	uint64_t new_convs;             /* conversations placed (their first good reply) */
	uint64_t handshakes;            /* connections established (TLS: handshakes) */
	uint64_t resumed;               /* TLS handshakes that resumed a session (-S) */
	uint64_t replies_by[CL_MAX_BACKENDS];
	uint64_t new_by[CL_MAX_BACKENDS];
	struct hist lat; /* latency of complete replies */
};

enum slot_state {
	SLOT_IDLE = 0,  /* nothing in flight; the send timer may be armed */
	SLOT_IN_FLIGHT, /* a request was written, its reply is being read */
};

enum resp_phase {
	RESP_HEAD = 0,
	RESP_BODY_LEN,   /* Content-Length body */
	RESP_CHUNK_SIZE, /* expecting a chunk-size line */
	RESP_CHUNK_DATA, /* chunk data plus its CRLF */
	RESP_TRAILER,    /* trailer lines up to the empty one */
	RESP_BODY_EOF,   /* body delimited by the connection closing */
	RESP_DONE,
};

enum resp_result { RESP_MORE = 0, RESP_COMPLETE, RESP_BAD };

struct resp {
	enum resp_phase phase;
	int status;
	int close;                   /* the connection ends after this reply */
	uint64_t left;               /* bytes left of the body or of the chunk (with CRLF) */
	size_t body_len;             /* bytes kept in body */
	char body[CL_BODY_KEEP + 1]; /* NUL-terminated prefix of the body */
};

struct conv {
	char id[CL_ID_MAX];
	uint64_t gen;      /* conversations this slot started */
	uint64_t sent;     /* messages sent in this conversation */
	uint64_t next_seq; /* seq the next good reply should carry */
	int backend;       /* index in convload.backends; -1 before the first good reply */
	int uncertain;     /* a message failed: the next seq may have skipped one */
	int moved;         /* moved at least once */
};

struct convload;

struct slot {
	struct convload *cl; /* borrowed */
	unsigned idx;
	struct bufferevent *bev;  /* owned; NULL when not connected */
	struct event *send_timer; /* owned: next send (fixed rate, backoff) */
	struct event *deadline;   /* owned: reply timeout */
	enum slot_state state;
	int connected;     /* bev finished connecting (and its TLS handshake) */
	uint64_t t_start;  /* ns: intended (fixed rate) or actual send time */
	uint64_t intended; /* ns: fixed rate schedule */
	struct resp resp;
	struct conv conv;
	SSL_SESSION *session; /* owned: the last ticket the server issued (-S), or NULL */
};

struct options {
	struct sockaddr_in addr;
	char addr_text[64];
	unsigned conns;
	double duration_s; /* 0 = until a signal */
	double warmup_s;
	uint64_t msgs;  /* per conversation; 0 = endless */
	double rate;    /* requests/s in total; 0 = closed loop */
	int close_each; /* new connection per request */
	int tls;
	int resume; /* TLS: offer the slot's last session ticket on every new connection */
	const char *path;
	size_t body_bytes;
	const char *header;
	uint64_t timeout_ms;
	char prefix[CL_PREFIX_MAX];
	pid_t pids[CL_MAX_PIDS];
	size_t npids;
	const char *label;
	int quiet;
};

struct proc_sample {
	uint64_t ticks; /* utime + stime over every -C process, clock ticks */
	uint64_t rss_kb;
	uint64_t hwm_kb;
	int ok;
};

struct convload {
	struct options o;
	struct event_base *base;
	SSL_CTX *ssl_ctx;
	struct slot *slots;
	char *body; /* owned: request body */
	struct event *sig_usr1, *sig_usr2, *sig_int, *sig_term;
	struct event *warm_timer, *end_timer;
	int measuring; /* after the warmup */
	unsigned phase_idx;
	struct stats total, phase;
	int settled;                             /* SIGUSR2 came in this phase */
	uint64_t settle_new_by[CL_MAX_BACKENDS]; /* phase.new_by at the last SIGUSR2 */
	uint64_t settle_ns;                      /* monotonic time of the last SIGUSR2 */
	char backends[CL_MAX_BACKENDS][CL_NAME_MAX];
	size_t nbackends;
	uint64_t moved_convs;    /* distinct conversations that moved */
	uint64_t interval_ns;    /* fixed rate: per slot */
	struct proc_sample cpu0; /* at the start of the measurement */
	uint64_t run_ns;         /* measured time, set when the run ends */
};

/* ---- time and numbers ---- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static struct timeval ns_to_tv(uint64_t ns)
{
	struct timeval tv = {.tv_sec = (time_t)(ns / NS_PER_S),
	                     .tv_usec = (suseconds_t)(ns % NS_PER_S / 1000)};

	return tv;
}

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

/* Parses a non-negative decimal number (may have a fraction) up to max; 0 or -1. */
static int parse_double(const char *s, double max, double *out)
{
	char *end;
	double v;

	if ((s[0] < '0' || s[0] > '9') && s[0] != '.')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !(v >= 0 && v <= max))
		return -1;
	*out = v;
	return 0;
}

/* ---- histogram ---- */

static size_t hist_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < 2 * HIST_SUB)
		return (size_t)v;
	if (v > HIST_MAX_VALUE)
		v = HIST_MAX_VALUE;
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - HIST_SUB_BITS;
	return (size_t)(shift + 1) * HIST_SUB + (size_t)((v >> shift) - HIST_SUB);
}

/* The highest value that falls into bucket `i`. */
static uint64_t hist_bucket_high(size_t i)
{
	unsigned shift;
	uint64_t sub;

	if (i < 2 * HIST_SUB)
		return i;
	shift = (unsigned)(i / HIST_SUB) - 1;
	sub = i % HIST_SUB + HIST_SUB;
	return ((sub + 1) << shift) - 1;
}

static void hist_add(struct hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->count++;
	if (v > h->max)
		h->max = v;
}

/* The value at percentile `p` (0..100], in ns; 0 for an empty histogram. */
static uint64_t hist_pct(const struct hist *h, double p)
{
	uint64_t rank, seen = 0;

	if (h->count == 0)
		return 0;
	rank = (uint64_t)ceil(p / 100.0 * (double)h->count);
	if (rank == 0)
		rank = 1;
	for (size_t i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			uint64_t v = hist_bucket_high(i);
			return v < h->max ? v : h->max;
		}
	}
	return h->max;
}

/* ---- processes watched with -C ---- */

/* utime + stime of one process (all its threads), from /proc/PID/stat; 0 or -1. */
static int proc_ticks(pid_t pid, uint64_t *ticks)
{
	char path[64], buf[1024];
	unsigned long long ut, st;
	const char *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
	if (p == NULL)
		return -1;
	/* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
	 * utime stime (fields 3..15) */
	if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	*ticks = ut + st;
	return 0;
}

/* VmRSS and VmHWM of one process in kB; 0 or -1. */
static int proc_mem(pid_t pid, uint64_t *rss, uint64_t *hwm)
{
	char path[64], line[256];
	unsigned long long v;
	int found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "VmRSS: %llu", &v) == 1)
			*rss = v, found++;
		else if (sscanf(line, "VmHWM: %llu", &v) == 1)
			*hwm = v, found++;
	}
	fclose(f);
	return found == 2 ? 0 : -1;
}

static struct proc_sample proc_sample(const struct options *o)
{
	struct proc_sample s = {.ok = o->npids > 0};

	for (size_t i = 0; i < o->npids; i++) {
		uint64_t t = 0, rss = 0, hwm = 0;

		if (proc_ticks(o->pids[i], &t) != 0 || proc_mem(o->pids[i], &rss, &hwm) != 0)
			s.ok = 0;
		s.ticks += t;
		s.rss_kb += rss;
		s.hwm_kb += hwm;
	}
	return s;
}

/* ---- backends and statistics ---- */

/* Index of backend `name` (len bytes), added when new; the last slot collects overflow. */
static int backend_index(struct convload *cl, const char *name, size_t len)
{
	size_t i;

	if (len >= CL_NAME_MAX)
		len = CL_NAME_MAX - 1;
	for (i = 0; i < cl->nbackends; i++)
		if (strncmp(cl->backends[i], name, len) == 0 && cl->backends[i][len] == '\0')
			return (int)i;
	if (cl->nbackends == CL_MAX_BACKENDS - 1) {
		snprintf(cl->backends[i], CL_NAME_MAX, "?");
		cl->nbackends++;
	}
	if (cl->nbackends == CL_MAX_BACKENDS)
		return CL_MAX_BACKENDS - 1;
	memcpy(cl->backends[i], name, len);
	cl->backends[i][len] = '\0';
	cl->nbackends++;
	return (int)i;
}

static void stats_reset(struct stats *st, uint64_t now)
{
	memset(st, 0, sizeof(*st));
	st->start_ns = now;
}

/* Runs `expr` on st_, once for the run's and once for the phase's counters, when measuring. */
#define STATS_BOTH(cl, expr)                                                                       \
	do {                                                                                       \
		if ((cl)->measuring) {                                                             \
			struct stats *st_ = &(cl)->total;                                          \
			for (int k_ = 0; k_ < 2; k_++, st_ = &(cl)->phase) {                       \
				expr;                                                              \
			}                                                                          \
		}                                                                                  \
	} while (0)

static uint64_t stats_errors(const struct stats *st)
{
	uint64_t n = 0;

	for (int i = 0; i < ERR_COUNT; i++)
		n += st->err[i];
	return n;
}

/* Prints the key=value pairs shared by "phase" and "summary" lines. */
static void print_pairs(const struct convload *cl, const struct stats *st, uint64_t dur_ns)
{
	double secs = (double)dur_ns / (double)NS_PER_S;

	printf(" duration_s=%.3f replies=%" PRIu64 " ok=%" PRIu64 " rps=%.1f", secs, st->replies,
	       st->ok, secs > 0 ? (double)st->ok / secs : 0.0);
	printf(" p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f",
	       (double)hist_pct(&st->lat, 50) / NS_PER_US,
	       (double)hist_pct(&st->lat, 90) / NS_PER_US,
	       (double)hist_pct(&st->lat, 99) / NS_PER_US,
	       (double)hist_pct(&st->lat, 99.9) / NS_PER_US, (double)st->lat.max / NS_PER_US);
	printf(" errors=%" PRIu64, stats_errors(st));
	for (int i = 0; i < ERR_COUNT; i++)
		printf(" err_%s=%" PRIu64, err_names[i], st->err[i]);
	for (int c = 0; c < CL_STATUS_MAX; c++)
		if (st->status[c] > 0)
			printf(" status_%d=%" PRIu64, c, st->status[c]);
	printf(" moved=%" PRIu64 " new_convs=%" PRIu64 " connections=%" PRIu64
	       " tls_resumed=%" PRIu64,
	       st->moved, st->new_convs, st->handshakes, st->resumed);
	for (size_t b = 0; b < cl->nbackends; b++)
		printf(" replies.%s=%" PRIu64 " new.%s=%" PRIu64, cl->backends[b],
		       st->replies_by[b], cl->backends[b], st->new_by[b]);
}

/* SIGUSR1, and the end of the run: prints the phase line, starts the next phase. */
static void phase_close(struct convload *cl)
{
	uint64_t now = now_ns();

	if (!cl->measuring)
		return;
	printf("phase idx=%u t_s=%.3f", cl->phase_idx,
	       (double)(cl->phase.start_ns - cl->total.start_ns) / (double)NS_PER_S);
	print_pairs(cl, &cl->phase, now - cl->phase.start_ns);
	if (cl->settled) {
		printf(" settled_t_s=%.3f",
		       (double)(cl->settle_ns - cl->phase.start_ns) / (double)NS_PER_S);
		for (size_t b = 0; b < cl->nbackends; b++)
			printf(" settled_new.%s=%" PRIu64, cl->backends[b],
			       cl->phase.new_by[b] - cl->settle_new_by[b]);
	}
	printf("\n");
	fflush(stdout);
	cl->phase_idx++;
	cl->settled = 0;
	stats_reset(&cl->phase, now);
}

/* ---- requests ---- */

static void slot_send(struct slot *s);
static void slot_schedule(struct slot *s, int failed);

static void conv_start(struct slot *s)
{
	struct conv *c = &s->conv;

	c->gen++;
	snprintf(c->id, sizeof(c->id), "%s-%u-%" PRIu64, s->cl->o.prefix, s->idx, c->gen);
	c->sent = 0;
	c->next_seq = 1;
	c->backend = -1;
	c->uncertain = 0;
	c->moved = 0;
}

static void slot_disconnect(struct slot *s)
{
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	s->bev = NULL;
	s->connected = 0;
}

/* A message failed: counts it, drops the connection, and moves on. */
static void slot_fail(struct slot *s, enum cl_err kind)
{
	struct convload *cl = s->cl;

	evtimer_del(s->deadline);
	STATS_BOTH(cl, st_->err[kind]++);
	slot_disconnect(s);
	s->state = SLOT_IDLE;
	s->conv.uncertain = 1;
	slot_schedule(s, 1);
}

/* Finds `"key":` in the body and returns what follows, or NULL. */
static const char *json_field(const char *body, const char *key)
{
	char pat[32];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(body, pat);
	return p != NULL ? p + strlen(pat) : NULL;
}

/*
 * Checks a 2xx body against the slot's conversation and follows it: sets *moved when the
 * reply came from another backend than the previous one, or its seq does not follow.
 * 0, or -1 when the body is not this conversation's botsim answer.
 */
static int conv_check(struct slot *s, int *moved, int *placed, int *backend)
{
	struct conv *c = &s->conv;
	const char *b = json_field(s->resp.body, "backend");
	const char *cv = json_field(s->resp.body, "conv");
	const char *sq = json_field(s->resp.body, "seq");
	const char *bend;
	size_t idlen = strlen(c->id);
	unsigned long long seq;
	char *end;

	if (b == NULL || cv == NULL || sq == NULL || *b != '"' || *cv != '"')
		return -1;
	bend = strchr(b + 1, '"');
	if (bend == NULL || strncmp(cv + 1, c->id, idlen) != 0 || cv[1 + idlen] != '"')
		return -1;
	errno = 0;
	seq = strtoull(sq, &end, 10);
	if (errno != 0 || end == sq || seq == 0)
		return -1;
	*backend = backend_index(s->cl, b + 1, (size_t)(bend - b - 1));
	*moved = 0;
	*placed = 0;
	if (c->backend < 0) {
		*placed = 1;
	} else if (*backend != c->backend) {
		*moved = 1;
	} else if (seq != c->next_seq && !(c->uncertain && seq == c->next_seq + 1)) {
		*moved = 1; /* moved away and back: the count there went on without us */
	}
	c->backend = *backend;
	c->next_seq = (uint64_t)seq + 1;
	c->uncertain = 0;
	return 0;
}

/* A complete reply is in: check, count, keep or drop the connection, go on. */
static void slot_done(struct slot *s)
{
	struct convload *cl = s->cl;
	uint64_t now = now_ns();
	uint64_t lat = now > s->t_start ? now - s->t_start : 0;
	int status = s->resp.status;
	int moved = 0, placed = 0, backend = -1, bad = 0;

	evtimer_del(s->deadline);
	s->state = SLOT_IDLE;
	if (status >= 200 && status < 300)
		bad = conv_check(s, &moved, &placed, &backend) != 0;
	else
		s->conv.uncertain = 1;
	if (moved && !s->conv.moved && cl->measuring) {
		s->conv.moved = 1;
		cl->moved_convs++;
	}
	STATS_BOTH(cl, {
		st_->replies++;
		hist_add(&st_->lat, lat);
		if (status < 200 || status >= 300) {
			st_->err[ERR_STATUS]++;
			st_->status[status < CL_STATUS_MAX ? status : 0]++;
		} else if (bad) {
			st_->err[ERR_PARSE]++;
		} else {
			st_->ok++;
			st_->replies_by[backend]++;
			st_->moved += (uint64_t)moved;
			st_->new_convs += (uint64_t)placed;
			st_->new_by[backend] += (uint64_t)placed;
		}
	});
	if (s->resp.close || cl->o.close_each)
		slot_disconnect(s);
	slot_schedule(s, bad || status < 200 || status >= 300);
}

/* ---- response parsing ---- */

static void resp_keep(struct resp *r, struct evbuffer *in, size_t n)
{
	size_t room = CL_BODY_KEEP - r->body_len;
	size_t take = n < room ? n : room;

	if (take > 0) {
		evbuffer_remove(in, r->body + r->body_len, take);
		r->body_len += take;
		r->body[r->body_len] = '\0';
	}
	evbuffer_drain(in, n - take);
}

/* Case-insensitive: does the comma list `v` (len bytes) hold the token `tok`? */
static int has_token(const char *v, size_t len, const char *tok)
{
	size_t tl = strlen(tok);

	for (size_t i = 0; i + tl <= len; i++)
		if (strncasecmp(v + i, tok, tl) == 0)
			return 1;
	return 0;
}

/* Parses the head (already complete, `len` bytes with the final CRLFCRLF). */
static enum resp_result resp_head(struct resp *r, const char *h, size_t len)
{
	const char *line, *eol, *end = h + len;
	int minor, keep_alive = 0, close = 0, chunked = 0, have_len = 0;
	uint64_t clen = 0;

	if (len < 12 || memcmp(h, "HTTP/1.", 7) != 0 || (h[7] != '0' && h[7] != '1') ||
	    h[8] != ' ' || h[9] < '1' || h[9] > '5' || h[10] < '0' || h[10] > '9' || h[11] < '0' ||
	    h[11] > '9')
		return RESP_BAD;
	minor = h[7] - '0';
	r->status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
	line = memchr(h, '\n', len);
	for (line = line != NULL ? line + 1 : end; line < end; line = eol + 1) {
		const char *colon, *v;
		size_t nlen, vlen;

		eol = memchr(line, '\n', (size_t)(end - line));
		if (eol == NULL || eol == line || eol[-1] != '\r')
			return RESP_BAD;
		if (eol - line == 1)
			break; /* the empty line */
		colon = memchr(line, ':', (size_t)(eol - line));
		if (colon == NULL)
			return RESP_BAD;
		nlen = (size_t)(colon - line);
		for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
			;
		vlen = (size_t)(eol - 1 - v);
		if (nlen == 14 && strncasecmp(line, "Content-Length", nlen) == 0) {
			char num[24];
			uint64_t n;

			if (vlen == 0 || vlen >= sizeof(num))
				return RESP_BAD;
			memcpy(num, v, vlen);
			num[vlen] = '\0';
			while (vlen > 0 && (num[vlen - 1] == ' ' || num[vlen - 1] == '\t'))
				num[--vlen] = '\0';
			if (parse_u64(num, UINT64_MAX / 2, &n) != 0 || (have_len && n != clen))
				return RESP_BAD;
			clen = n;
			have_len = 1;
		} else if (nlen == 17 && strncasecmp(line, "Transfer-Encoding", nlen) == 0) {
			chunked = has_token(v, vlen, "chunked");
		} else if (nlen == 10 && strncasecmp(line, "Connection", nlen) == 0) {
			close |= has_token(v, vlen, "close");
			keep_alive |= has_token(v, vlen, "keep-alive");
		}
	}
	r->close = close || (minor == 0 && !keep_alive);
	if (r->status == 204 || r->status == 304) {
		r->phase = RESP_DONE;
	} else if (chunked) {
		r->phase = RESP_CHUNK_SIZE;
	} else if (have_len) {
		r->left = clen;
		r->phase = clen > 0 ? RESP_BODY_LEN : RESP_DONE;
	} else {
		r->close = 1;
		r->phase = RESP_BODY_EOF;
	}
	return RESP_MORE;
}

/* Reads a CRLF-terminated line of at most `max` bytes into `out` (NUL-terminated, without
 * CRLF). 1 when read, 0 when more is needed, -1 when malformed. */
static int read_line(struct evbuffer *in, char *out, size_t max)
{
	size_t eol_len = 0;
	struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF_STRICT);

	if (p.pos < 0)
		return evbuffer_get_length(in) > max ? -1 : 0;
	if ((size_t)p.pos >= max)
		return -1;
	evbuffer_remove(in, out, (size_t)p.pos);
	out[p.pos] = '\0';
	evbuffer_drain(in, eol_len);
	return 1;
}

/* Consumes what `in` holds of the reply. RESP_MORE, RESP_COMPLETE or RESP_BAD. */
static enum resp_result resp_parse(struct resp *r, struct evbuffer *in)
{
	char line[128];
	int rc;

	for (;;) {
		size_t avail = evbuffer_get_length(in);

		switch (r->phase) {
		case RESP_HEAD: {
			struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
			size_t hlen;

			if (p.pos < 0)
				return avail > CL_HEAD_MAX ? RESP_BAD : RESP_MORE;
			hlen = (size_t)p.pos + 4;
			if (resp_head(r, (const char *)evbuffer_pullup(in, (ev_ssize_t)hlen),
			              hlen) != RESP_MORE)
				return RESP_BAD;
			evbuffer_drain(in, hlen);
			if (r->status >= 100 && r->status < 200) /* interim: the real one follows */
				r->phase = RESP_HEAD;
			break;
		}
		case RESP_BODY_LEN: {
			size_t n = avail < r->left ? avail : (size_t)r->left;

			resp_keep(r, in, n);
			r->left -= n;
			if (r->left > 0)
				return RESP_MORE;
			r->phase = RESP_DONE;
			break;
		}
		case RESP_CHUNK_SIZE: {
			char *end;
			unsigned long long n;

			rc = read_line(in, line, sizeof(line));
			if (rc <= 0)
				return rc == 0 ? RESP_MORE : RESP_BAD;
			errno = 0;
			n = strtoull(line, &end, 16);
			if (end == line || errno != 0 || (*end != '\0' && *end != ';') ||
			    n > UINT64_MAX / 2)
				return RESP_BAD;
			r->left = n + 2;
			r->phase = n > 0 ? RESP_CHUNK_DATA : RESP_TRAILER;
			break;
		}
		case RESP_CHUNK_DATA: {
			size_t n = avail < r->left ? avail : (size_t)r->left;

			if (r->left > 2) {
				size_t data = n < r->left - 2 ? n : (size_t)(r->left - 2);
				resp_keep(r, in, data);
				r->left -= data;
				n -= data;
			}
			evbuffer_drain(in, n); /* the chunk's CRLF */
			r->left -= n;
			if (r->left > 0)
				return RESP_MORE;
			r->phase = RESP_CHUNK_SIZE;
			break;
		}
		case RESP_TRAILER:
			rc = read_line(in, line, sizeof(line));
			if (rc <= 0)
				return rc == 0 ? RESP_MORE : RESP_BAD;
			if (line[0] == '\0')
				r->phase = RESP_DONE;
			break;
		case RESP_BODY_EOF:
			resp_keep(r, in, avail);
			return RESP_MORE;
		case RESP_DONE:
			return avail > 0 && !r->close ? RESP_BAD : RESP_COMPLETE;
		}
	}
}

/* ---- connections ---- */

static void on_read(struct bufferevent *bev, void *arg)
{
	struct slot *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (s->state != SLOT_IN_FLIGHT) {
		/* bytes nobody asked for: the connection is out of step */
		evbuffer_drain(in, evbuffer_get_length(in));
		slot_disconnect(s);
		return;
	}
	switch (resp_parse(&s->resp, in)) {
	case RESP_MORE:
		break;
	case RESP_COMPLETE:
		slot_done(s);
		break;
	case RESP_BAD:
		slot_fail(s, ERR_PARSE);
		break;
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct slot *s = arg;
	struct convload *cl = s->cl;
	enum cl_err kind = ERR_CLOSED;

	if (what & BEV_EVENT_CONNECTED) {
		SSL *ssl = cl->o.tls ? bufferevent_openssl_get_ssl(bev) : NULL;
		s->connected = 1;
		STATS_BOTH(cl, st_->handshakes++);
		if (ssl != NULL && SSL_session_reused(ssl))
			STATS_BOTH(cl, st_->resumed++);
		return;
	}
	if (s->state != SLOT_IN_FLIGHT) { /* an idle keep-alive connection went away */
		slot_disconnect(s);
		return;
	}
	if ((what & BEV_EVENT_EOF) && s->resp.phase == RESP_BODY_EOF) {
		slot_done(s);
		return;
	}
	if (!s->connected)
		kind = cl->o.tls && bufferevent_get_openssl_error(bev) != 0 ? ERR_TLS : ERR_CONNECT;
	slot_fail(s, kind);
}

static int slot_connect(struct slot *s)
{
	struct convload *cl = s->cl;
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (cl->o.tls) {
		SSL *ssl = SSL_new(cl->ssl_ctx);

		if (ssl == NULL) {
			close(fd);
			return -1;
		}
		SSL_set_tlsext_host_name(ssl, "localhost");
		SSL_set_app_data(ssl, s);
		if (s->session != NULL)
			SSL_set_session(ssl, s->session);
		s->bev = bufferevent_openssl_socket_new(
		        cl->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
		if (s->bev == NULL) {
			SSL_free(ssl);
			close(fd);
			return -1;
		}
		bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
	} else {
		s->bev = bufferevent_socket_new(cl->base, fd, BEV_OPT_CLOSE_ON_FREE);
		if (s->bev == NULL) {
			close(fd);
			return -1;
		}
	}
	s->connected = 0;
	bufferevent_setcb(s->bev, on_read, NULL, on_event, s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&cl->o.addr,
	                               sizeof(cl->o.addr)) != 0) {
		slot_disconnect(s);
		return -1;
	}
	return 0;
}

/* Writes the next message of the slot's conversation (starting a new one when due). */
static void slot_send(struct slot *s)
{
	struct convload *cl = s->cl;
	const struct options *o = &cl->o;
	char head[CL_REQ_HEAD_MAX];
	struct timeval tmo = ns_to_tv(o->timeout_ms * NS_PER_MS);
	int n;

	if (o->msgs > 0 && s->conv.sent >= o->msgs)
		conv_start(s);
	s->t_start = o->rate > 0 ? s->intended : now_ns();
	s->conv.sent++;
	memset(&s->resp, 0, offsetof(struct resp, body));
	s->resp.body[0] = '\0';
	s->state = SLOT_IN_FLIGHT;
	evtimer_add(s->deadline, &tmo);
	if (s->bev == NULL && slot_connect(s) != 0) {
		slot_fail(s, ERR_CONNECT);
		return;
	}
	n = snprintf(head, sizeof(head),
	             "POST %s HTTP/1.1\r\nHost: %s\r\n%s: %s\r\nContent-Type: application/json\r\n"
	             "Content-Length: %zu\r\n%s\r\n",
	             o->path, o->addr_text, o->header, s->conv.id, o->body_bytes,
	             o->close_each ? "Connection: close\r\n" : "");
	bufferevent_write(s->bev, head, (size_t)n);
	bufferevent_write(s->bev, cl->body, o->body_bytes);
}

static void on_send_timer(evutil_socket_t fd, short what, void *arg)
{
	struct slot *s = arg;
	uint64_t now = now_ns();

	(void)fd, (void)what;
	if (s->cl->o.rate > 0 && s->intended > now) {
		/* early (timer rounding): never send before the intended time */
		struct timeval tv = ns_to_tv(s->intended - now);

		evtimer_add(s->send_timer, &tv);
		return;
	}
	slot_send(s);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	slot_fail(arg, ERR_TIMEOUT);
}

/* After a reply or a failure: sends at once, or arms the send timer. */
static void slot_schedule(struct slot *s, int failed)
{
	struct convload *cl = s->cl;
	uint64_t now = now_ns(), at;
	struct timeval tv;

	if (cl->o.rate > 0) {
		s->intended += cl->interval_ns;
		at = s->intended;
	} else {
		at = failed ? now + CL_ERR_BACKOFF_MS * NS_PER_MS : now;
	}
	if (at <= now && !failed) {
		slot_send(s);
		return;
	}
	/* after a failure always through the timer, so failures never recurse */
	tv = ns_to_tv(at > now ? at - now : 0);
	evtimer_add(s->send_timer, &tv);
}

/* ---- run ---- */

static void on_warm(evutil_socket_t fd, short what, void *arg)
{
	struct convload *cl = arg;
	uint64_t now = now_ns();

	(void)fd, (void)what;
	stats_reset(&cl->total, now);
	stats_reset(&cl->phase, now);
	cl->cpu0 = proc_sample(&cl->o);
	cl->measuring = 1;
}

static void on_end(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	event_base_loopbreak(((struct convload *)arg)->base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct convload *cl = arg;

	(void)what;
	if (sig == SIGUSR1) {
		phase_close(cl);
	} else if (sig == SIGUSR2) {
		cl->settled = 1;
		cl->settle_ns = now_ns();
		memcpy(cl->settle_new_by, cl->phase.new_by, sizeof(cl->settle_new_by));
	} else {
		event_base_loopbreak(cl->base);
	}
}

static void report(struct convload *cl)
{
	const struct options *o = &cl->o;
	const struct stats *st = &cl->total;
	uint64_t dur = cl->run_ns;
	double secs = (double)dur / (double)NS_PER_S;
	struct proc_sample cpu1 = proc_sample(o);
	long hz = sysconf(_SC_CLK_TCK);
	double cpu_ms = 0, cpu_us_req = 0;
	int cpu_ok = cl->cpu0.ok && cpu1.ok && hz > 0;

	if (cpu_ok) {
		cpu_ms = (double)(cpu1.ticks - cl->cpu0.ticks) * 1000.0 / (double)hz;
		cpu_us_req = st->replies > 0 ? cpu_ms * 1000.0 / (double)st->replies : 0;
	}
	if (!o->quiet) {
		printf("convload %s: %s %s %s, %u conversations, %.2fs, %s\n",
		       o->label != NULL ? o->label : "-", o->addr_text,
		       o->close_each ? "new connection per request" : "keep-alive",
		       o->tls ? "TLS" : "plain", o->conns, secs,
		       o->rate > 0 ? "fixed rate" : "closed loop");
		if (o->rate > 0)
			printf("  rate       %.0f req/s intended\n", o->rate);
		printf("  throughput %.1f req/s (%" PRIu64 " ok of %" PRIu64 " replies)\n",
		       secs > 0 ? (double)st->ok / secs : 0.0, st->ok, st->replies);
		printf("  latency    p50 %.1fus  p90 %.1fus  p99 %.1fus  p99.9 %.1fus  max "
		       "%.1fus\n",
		       (double)hist_pct(&st->lat, 50) / NS_PER_US,
		       (double)hist_pct(&st->lat, 90) / NS_PER_US,
		       (double)hist_pct(&st->lat, 99) / NS_PER_US,
		       (double)hist_pct(&st->lat, 99.9) / NS_PER_US,
		       (double)st->lat.max / NS_PER_US);
		printf("  errors     %" PRIu64, stats_errors(st));
		for (int i = 0; i < ERR_COUNT; i++)
			if (st->err[i] > 0)
				printf("  %s %" PRIu64, err_names[i], st->err[i]);
		for (int c = 0; c < CL_STATUS_MAX; c++)
			if (st->status[c] > 0)
				printf("  [%d] %" PRIu64, c, st->status[c]);
		printf("\n  conversations %" PRIu64 " placed, %" PRIu64 " moved\n", st->new_convs,
		       cl->moved_convs);
		for (size_t b = 0; b < cl->nbackends; b++)
			printf("  backend %-12s %" PRIu64 " replies, %" PRIu64
			       " new conversations\n",
			       cl->backends[b], st->replies_by[b], st->new_by[b]);
		if (cpu_ok)
			printf("  proxy CPU  %.0f ms, %.2f us/request, RSS %" PRIu64
			       " kB (peak %" PRIu64 " kB)\n",
			       cpu_ms, cpu_us_req, cpu1.rss_kb, cpu1.hwm_kb);
	}
	printf("summary label=%s target=%s conn_mode=%s tls=%d loop=%s rate=%.0f conns=%u",
	       o->label != NULL ? o->label : "-", o->addr_text,
	       o->close_each ? "close" : "keepalive", o->tls, o->rate > 0 ? "fixed" : "closed",
	       o->rate, o->conns);
	print_pairs(cl, st, dur);
	printf(" moved_convs=%" PRIu64, cl->moved_convs);
	if (cpu_ok)
		printf(" cpu_ms=%.1f cpu_us_per_req=%.3f rss_kb=%" PRIu64 " hwm_kb=%" PRIu64,
		       cpu_ms, cpu_us_req, cpu1.rss_kb, cpu1.hwm_kb);
	else if (o->npids > 0)
		printf(" cpu_ms=NA cpu_us_per_req=NA rss_kb=NA hwm_kb=NA");
	printf("\n");
	fflush(stdout);
}

/* -S: keep the newest ticket per slot (TLS 1.3 sends it after the handshake). A copy:
 * the connection's own session is marked not resumable when it is freed without a
 * close_notify, which is how the bench ends connections. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct slot *s = SSL_get_app_data(ssl);
	SSL_SESSION *copy = s != NULL ? SSL_SESSION_dup(sess) : NULL;

	if (copy == NULL)
		return 0;
	if (s->session != NULL)
		SSL_SESSION_free(s->session);
	s->session = copy;
	return 0; /* sess stays OpenSSL's */
}

static int ssl_setup(struct convload *cl)
{
	cl->ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (cl->ssl_ctx == NULL)
		return -1;
	/* a bench against its own test certificates: no verification. Without -S no session
	 * resumption, so "new connection per request" means a full handshake each time */
	SSL_CTX_set_verify(cl->ssl_ctx, SSL_VERIFY_NONE, NULL);
	/* TLS 1.3 only: a peer that would settle for 1.2 (nginx 1.22 does by default) fails
	 * loudly instead of being compared on a cheaper handshake */
	if (SSL_CTX_set_min_proto_version(cl->ssl_ctx, TLS1_3_VERSION) != 1)
		return -1;
	if (cl->o.resume) {
		SSL_CTX_set_session_cache_mode(
		        cl->ssl_ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(cl->ssl_ctx, on_new_session);
	} else {
		SSL_CTX_set_session_cache_mode(cl->ssl_ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_options(cl->ssl_ctx, SSL_OP_NO_TICKET);
	}
	return 0;
}

static int run(struct convload *cl)
{
	const struct options *o = &cl->o;
	struct event_config *cfg;
	uint64_t start;
	struct timeval tv;

	cfg = event_config_new();
	/* precise timers: the default coarse monotonic clock ticks in milliseconds, too
	 * coarse for a fixed-rate schedule of sub-millisecond intervals */
	if (cfg == NULL || event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER) != 0)
		return -1;
	cl->base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	cl->slots = calloc(o->conns, sizeof(*cl->slots));
	cl->body = malloc(o->body_bytes + 1);
	if (cl->base == NULL || cl->slots == NULL || cl->body == NULL ||
	    (o->tls && ssl_setup(cl) != 0))
		return -1;
	for (size_t i = 0; i < o->body_bytes; i++)
		cl->body[i] = (char)('a' + i % 26);
	cl->sig_usr1 = evsignal_new(cl->base, SIGUSR1, on_signal, cl);
	cl->sig_usr2 = evsignal_new(cl->base, SIGUSR2, on_signal, cl);
	cl->sig_int = evsignal_new(cl->base, SIGINT, on_signal, cl);
	cl->sig_term = evsignal_new(cl->base, SIGTERM, on_signal, cl);
	cl->warm_timer = evtimer_new(cl->base, on_warm, cl);
	cl->end_timer = evtimer_new(cl->base, on_end, cl);
	if (cl->sig_usr1 == NULL || cl->sig_usr2 == NULL || cl->sig_int == NULL ||
	    cl->sig_term == NULL || cl->warm_timer == NULL || cl->end_timer == NULL ||
	    evsignal_add(cl->sig_usr1, NULL) || evsignal_add(cl->sig_usr2, NULL) ||
	    evsignal_add(cl->sig_int, NULL) || evsignal_add(cl->sig_term, NULL))
		return -1;
	if (o->rate > 0)
		cl->interval_ns = (uint64_t)((double)o->conns * (double)NS_PER_S / o->rate);
	start = now_ns();
	for (unsigned i = 0; i < o->conns; i++) {
		struct slot *s = &cl->slots[i];

		s->cl = cl;
		s->idx = i;
		s->send_timer = evtimer_new(cl->base, on_send_timer, s);
		s->deadline = evtimer_new(cl->base, on_deadline, s);
		if (s->send_timer == NULL || s->deadline == NULL)
			return -1;
		conv_start(s);
		/* fixed rate: the slots' schedules are spread over one interval */
		s->intended = start + cl->interval_ns * i / o->conns;
		tv = ns_to_tv(s->intended - start);
		evtimer_add(s->send_timer, &tv);
	}
	if (o->warmup_s > 0) {
		tv = ns_to_tv((uint64_t)(o->warmup_s * (double)NS_PER_S));
		evtimer_add(cl->warm_timer, &tv);
	} else {
		on_warm(-1, 0, cl);
	}
	if (o->duration_s > 0) {
		tv = ns_to_tv((uint64_t)((o->warmup_s + o->duration_s) * (double)NS_PER_S));
		evtimer_add(cl->end_timer, &tv);
	}
	event_base_dispatch(cl->base);
	if (!cl->measuring)
		on_warm(-1, 0, cl);
	cl->run_ns = now_ns() - cl->total.start_ns;
	phase_close(cl);
	report(cl);
	return 0;
}

static void cleanup(struct convload *cl)
{
	struct event *evs[] = {cl->sig_usr1, cl->sig_usr2,   cl->sig_int,
	                       cl->sig_term, cl->warm_timer, cl->end_timer};

	for (unsigned i = 0; cl->slots != NULL && i < cl->o.conns; i++) {
		slot_disconnect(&cl->slots[i]);
		if (cl->slots[i].send_timer != NULL)
			event_free(cl->slots[i].send_timer);
		if (cl->slots[i].deadline != NULL)
			event_free(cl->slots[i].deadline);
		if (cl->slots[i].session != NULL)
			SSL_SESSION_free(cl->slots[i].session);
	}
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i] != NULL)
			event_free(evs[i]);
	free(cl->slots);
	free(cl->body);
	if (cl->ssl_ctx != NULL)
		SSL_CTX_free(cl->ssl_ctx);
	if (cl->base != NULL)
		event_base_free(cl->base);
}

/* ---- command line ---- */

static void usage(FILE *out)
{
	fputs("usage: convload [-a HOST:PORT] [-c N] [-d SEC] [-w SEC] [-m N] [-R RATE] [-K] [-T "
	      "[-S]]\n"
	      "                [-p PATH] [-b BYTES] [-H NAME] [-t MS] [-i PREFIX] [-C PID,...]\n"
	      "                [-l LABEL] [-q]\n"
	      "       convload --free-port [N]\n"
	      "  -a HOST:PORT  target, IPv4 (127.0.0.1:8080)\n"
	      "  -c N          concurrent conversations, one connection each (16)\n"
	      "  -d SEC        measured duration, after the warmup; 0 = until SIGINT/SIGTERM (5)\n"
	      "  -w SEC        warmup, not measured (0)\n"
	      "  -m N          messages per conversation, then a new conversation; 0 = endless "
	      "(20)\n"
	      "  -R RATE       fixed rate in requests/s over all conversations (open loop;\n"
	      "                latency from the intended send time); 0 = closed loop (0)\n"
	      "  -K            a new connection per request (Connection: close)\n"
	      "  -T            TLS 1.3 (no certificate check, no session resumption)\n"
	      "  -S            with -T: resume sessions (each connection offers the ticket its\n"
	      "                slot received last)\n"
	      "  -p PATH       request path (/chat)\n"
	      "  -b BYTES      POST body size (32)\n"
	      "  -H NAME       conversation header (X-Conversation-ID)\n"
	      "  -t MS         reply timeout (5000)\n"
	      "  -i PREFIX     conversation id prefix (default: unique per run)\n"
	      "  -C PID,...    report the CPU time (utime+stime) and RSS of these processes\n"
	      "  -l LABEL      label in the summary line\n"
	      "  -q            no report, only the phase and summary lines\n"
	      "  --free-port N print N free TCP ports of 127.0.0.1 and exit\n"
	      "SIGUSR1 ends a phase (prints a 'phase' line); SIGUSR2 starts counting new\n"
	      "conversations apart within the phase (settled_new.NAME); SIGINT/SIGTERM end the "
	      "run.\n"
	      "A conversation moved when a reply names another backend than the previous one,\n"
	      "or its seq does not follow (botsim counts messages per conversation).\n",
	      out);
}

/* Prints `n` distinct ports that were free when asked (bound to port 0 together). */
static int free_ports(unsigned n)
{
	int fds[CL_FREE_PORTS_MAX];
	int rc = 0;

	for (unsigned i = 0; i < n; i++) {
		struct sockaddr_in sa = {.sin_family = AF_INET,
		                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t len = sizeof(sa);

		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
		    getsockname(fds[i], (struct sockaddr *)&sa, &len) != 0) {
			perror("convload: free port");
			rc = CL_EXIT_RUNTIME;
			n = i + 1;
			break;
		}
		printf("%u\n", (unsigned)ntohs(sa.sin_port));
	}
	for (unsigned i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return rc;
}

static int parse_addr(const char *spec, struct options *o)
{
	const char *colon = strrchr(spec, ':');
	char host[INET_ADDRSTRLEN];
	size_t hlen;
	uint64_t port;

	if (colon == NULL || parse_u64(colon + 1, UINT16_MAX, &port) != 0 || port == 0)
		return -1;
	hlen = (size_t)(colon - spec);
	if (hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, spec, hlen);
	host[hlen] = '\0';
	o->addr.sin_family = AF_INET;
	o->addr.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &o->addr.sin_addr) != 1)
		return -1;
	snprintf(o->addr_text, sizeof(o->addr_text), "%s", spec);
	return 0;
}

static int parse_pids(char *list, struct options *o)
{
	for (char *tok = strtok(list, ","); tok != NULL; tok = strtok(NULL, ",")) {
		uint64_t v;

		if (o->npids == CL_MAX_PIDS || parse_u64(tok, INT32_MAX, &v) != 0 || v == 0)
			return -1;
		o->pids[o->npids++] = (pid_t)v;
	}
	return 0;
}

static int valid_token(const char *s, size_t max)
{
	size_t len = strlen(s);

	return len > 0 && len < max &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
	               len;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints a command line error; returns -1. */
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	return -1;
}

/* Parses argv into `o`. 0, 1 (done: --free-port or -h ran), or -1 (usage error). */
static int args_parse(struct options *o, int argc, char **argv, int *exit_code)
{
	static const struct option longopts[] = {
	        {"free-port", no_argument, NULL, 'F'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int c, free_port = 0;
	uint64_t v;

	parse_addr("127.0.0.1:8080", o);
	o->conns = 16;
	o->duration_s = 5;
	o->msgs = 20;
	o->path = "/chat";
	o->body_bytes = 32;
	o->header = "X-Conversation-ID";
	o->timeout_ms = 5000;
	snprintf(o->prefix, sizeof(o->prefix), "c%lx%llx", (long)getpid(),
	         (unsigned long long)time(NULL));
	while ((c = getopt_long(argc, argv, "a:c:d:w:m:R:KTSp:b:H:t:i:C:l:qh", longopts, NULL)) !=
	       -1) {
		switch (c) {
		case 'a':
			if (parse_addr(optarg, o) != 0)
				return usage_error("convload: -a %s: not IPV4:PORT\n", optarg);
			break;
		case 'c':
			if (parse_u64(optarg, CL_MAX_SLOTS, &v) != 0 || v == 0)
				return usage_error("convload: -c: 1..%d\n", CL_MAX_SLOTS);
			o->conns = (unsigned)v;
			break;
		case 'd':
			if (parse_double(optarg, 1e7, &o->duration_s) != 0)
				return usage_error("convload: -d: seconds\n");
			break;
		case 'w':
			if (parse_double(optarg, 1e7, &o->warmup_s) != 0)
				return usage_error("convload: -w: seconds\n");
			break;
		case 'm':
			if (parse_u64(optarg, UINT32_MAX, &o->msgs) != 0)
				return usage_error("convload: -m: a count\n");
			break;
		case 'R':
			if (parse_double(optarg, 1e8, &o->rate) != 0)
				return usage_error("convload: -R: requests/s\n");
			break;
		case 'K':
			o->close_each = 1;
			break;
		case 'S':
			o->resume = 1;
			break;
		case 'T':
			o->tls = 1;
			break;
		case 'p':
			if (optarg[0] != '/' || strpbrk(optarg, " \r\n") != NULL)
				return usage_error("convload: -p: a path\n");
			o->path = optarg;
			break;
		case 'b':
			if (parse_u64(optarg, CL_BODY_MAX, &v) != 0)
				return usage_error("convload: -b: 0..%d\n", CL_BODY_MAX);
			o->body_bytes = (size_t)v;
			break;
		case 'H':
			if (!valid_token(optarg, CL_NAME_MAX))
				return usage_error("convload: -H: a header name\n");
			o->header = optarg;
			break;
		case 't':
			if (parse_u64(optarg, 3600000, &o->timeout_ms) != 0 || o->timeout_ms == 0)
				return usage_error("convload: -t: 1..3600000 ms\n");
			break;
		case 'i':
			if (!valid_token(optarg, CL_PREFIX_MAX))
				return usage_error("convload: -i: [A-Za-z0-9._-]\n");
			snprintf(o->prefix, sizeof(o->prefix), "%s", optarg);
			break;
		case 'C':
			if (parse_pids(optarg, o) != 0)
				return usage_error("convload: -C: PID,PID,...\n");
			break;
		case 'l':
			if (!valid_token(optarg, CL_NAME_MAX))
				return usage_error("convload: -l: [A-Za-z0-9._-]\n");
			o->label = optarg;
			break;
		case 'q':
			o->quiet = 1;
			break;
		case 'F':
			free_port = 1;
			break;
		case 'h':
			usage(stdout);
			*exit_code = 0;
			return 1;
		default:
			return -1;
		}
	}
	if (free_port) {
		v = 1;
		if (optind < argc &&
		    (parse_u64(argv[optind++], CL_FREE_PORTS_MAX, &v) != 0 || v == 0))
			return usage_error("convload: --free-port: 1..%d\n", CL_FREE_PORTS_MAX);
		if (optind != argc)
			return -1;
		*exit_code = free_ports((unsigned)v);
		return 1;
	}
	return optind == argc ? 0 : -1;
}

int main(int argc, char **argv)
{
	static struct convload cl;
	struct sigaction ign = {.sa_handler = SIG_IGN};
	int code = 0;

	switch (args_parse(&cl.o, argc, argv, &code)) {
	case 1:
		return code;
	case -1:
		fputs("usage: convload [options] (-h: help)\n", stderr);
		return CL_EXIT_USAGE;
	default:
		break;
	}
	sigaction(SIGPIPE, &ign, NULL);
	if (run(&cl) != 0) {
		fprintf(stderr, "convload: cannot start (%s)\n", strerror(errno));
		code = CL_EXIT_RUNTIME;
	}
	cleanup(&cl);
	libevent_global_shutdown();
	return code;
}
