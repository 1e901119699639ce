/*
 * health — active checks with evhttp on the control loop, passive ejection from the data
 * path, and the state machine they share (struct backend_rt health + down).
 *
 * Every state change is a compare-and-swap on rt->health, made by either side; `down` is
 * then republished from health (publish_down), so the router never sees the two disagree
 * for longer than one write.
 */
#include "health.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "stats.h"
#include "tls.h"
#include "util.h"

/* One backend under watch. Lives while the backend is in the current snapshot. */
struct checker {
	struct health *h;                /* borrowed: owner */
	const struct rl_backend *b;      /* borrowed from h->pool */
	struct backend_rt *rt;           /* borrowed (h->pool holds the ref): identity */
	char addr[CONF_ADDR_TEXT];       /* address evcon was made for */
	struct evhttp_connection *evcon; /* owned; NULL while active checks are off */
	struct event *timer;             /* owned: next check (or passive expiry) */
	struct evhttp_request *req;      /* borrowed (libevent owns it): check in flight */
	uint64_t started_us;             /* when the check in flight started */
	const char *error;               /* evhttp's error for the check in flight, or NULL */
	unsigned good, bad;              /* consecutive results counting toward rise / fall */
	bool started;                    /* configured once: its backend's state is known */
	bool tls;                        /* evcon speaks TLS (tls = on) */
};

struct health {
	struct event_base *base; /* borrowed: the control loop */
	struct rl_pool *pool;    /* ref: the snapshot being watched */
	struct checker **c;      /* owned array of n owned checkers (pool order) */
	size_t n;
	struct util_rng rng;
};

/* ---- the shared state machine ---- */

/* Make rt->down agree with rt->health. Every writer of health calls this afterwards; the
 * re-read makes the last writer's view win even when two sides race. */
static void publish_down(struct backend_rt *rt)
{
	int h;

	do {
		h = atomic_load(&rt->health);
		atomic_store(&rt->down, h != RL_HEALTH_UP);
	} while (atomic_load(&rt->health) != h);
}

/* from → to, unless someone else changed the state first. true when it happened. */
static bool transition(struct backend_rt *rt, enum rl_health from, enum rl_health to)
{
	int expect = (int)from;

	if (!atomic_compare_exchange_strong(&rt->health, &expect, (int)to))
		return false;
	if (to == RL_HEALTH_UP)
		atomic_store(&rt->passive_fails, 0);
	publish_down(rt);
	stats_inc(STAT_health_changes);
	return true;
}

static void force_state(struct backend_rt *rt, enum rl_health to)
{
	if (atomic_exchange(&rt->health, (int)to) != (int)to)
		stats_inc(STAT_health_changes);
	if (to == RL_HEALTH_UP)
		atomic_store(&rt->passive_fails, 0);
	publish_down(rt);
}

void health_passive_report(const struct rl_backend *b, bool failed, unsigned threshold)
{
	struct backend_rt *rt = b->rt;

	if (threshold == 0)
		return;
	if (!failed) {
		if (atomic_load_explicit(&rt->passive_fails, memory_order_relaxed) != 0)
			atomic_store(&rt->passive_fails, 0);
		return;
	}
	if (atomic_fetch_add(&rt->passive_fails, 1) + 1 < threshold)
		return;
	atomic_store(&rt->ejected_us, util_now_us()); /* before the CAS: expiry reads it */
	if (!transition(rt, RL_HEALTH_UP, RL_HEALTH_DOWN))
		return;
	stats_inc(STAT_passive_ejections);
	log_warn("backend %s: DOWN (passive: %u failures in a row)", b->conf->name, threshold);
}

/* ---- scheduling ---- */

static bool checks_on(const struct health *h)
{
	return h->pool->conf->health_path[0] != '\0';
}

/* interval ± HEALTH_JITTER_PCT, so checks of many backends do not fire together */
static void schedule(struct checker *c, uint64_t base_ms)
{
	uint64_t span = 2 * HEALTH_JITTER_PCT + 1;
	uint64_t pct = 100 - HEALTH_JITTER_PCT + util_rng_next(&c->h->rng) % span;
	uint64_t ms = base_ms * pct / 100;
	struct timeval tv = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000};

	evtimer_add(c->timer, &tv);
}

/* The first check of a new backend: soon, spread over a tenth of the interval. */
static void schedule_first(struct checker *c)
{
	uint64_t spread = c->h->pool->conf->health_interval_ms / 10 + 1;
	uint64_t ms = util_rng_next(&c->h->rng) % spread;
	struct timeval tv = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000};

	evtimer_add(c->timer, &tv);
}

/* ---- one active check ---- */

static void record_good(struct checker *c)
{
	const struct rl_conf *conf = c->h->pool->conf;
	enum rl_health cur = (enum rl_health)atomic_load(&c->rt->health);

	c->bad = 0;
	if (cur == RL_HEALTH_UP) {
		c->good = 0;
		return;
	}
	if (++c->good < conf->health_rise || !transition(c->rt, cur, RL_HEALTH_UP))
		return;
	log_info("backend %s: UP (%u/%u checks)", c->b->conf->name, c->good, conf->health_rise);
	c->good = 0;
}

static void record_bad(struct checker *c, const char *why)
{
	const struct rl_conf *conf = c->h->pool->conf;
	enum rl_health cur = (enum rl_health)atomic_load(&c->rt->health);

	stats_inc(STAT_health_checks_failed);
	c->good = 0;
	if (cur == RL_HEALTH_DOWN) {
		c->bad = 0;
		return;
	}
	log_debug("backend %s: check failed (%s, %u/%u)", c->b->conf->name, why, c->bad + 1,
	          conf->health_fall);
	if (++c->bad < conf->health_fall || !transition(c->rt, cur, RL_HEALTH_DOWN))
		return;
	log_warn("backend %s: DOWN (%s, %u/%u checks)", c->b->conf->name, why, c->bad,
	         conf->health_fall);
	c->bad = 0;
}

static const char *request_error_name(enum evhttp_request_error e)
{
	switch (e) {
	case EVREQ_HTTP_TIMEOUT:
		return "timeout";
	case EVREQ_HTTP_EOF:
		return "connection closed";
	case EVREQ_HTTP_INVALID_HEADER:
		return "invalid response";
	case EVREQ_HTTP_BUFFER_ERROR:
		return "read error";
	case EVREQ_HTTP_REQUEST_CANCEL:
		return "cancelled";
	case EVREQ_HTTP_DATA_TOO_LONG:
		return "response too large";
	}
	return "error";
}

/* evhttp reports errors after the connection was made; this runs before check_done. */
static void check_error(enum evhttp_request_error e, void *arg)
{
	struct checker *c = arg;

	c->error = request_error_name(e);
}

/*
 * Why a check got no response. evhttp reports a failed connect without an error code
 * (and errno is gone by then): one that took the whole timeout timed out; a quicker one
 * was refused (RST), the usual case for a stopped backend.
 */
static const char *failure_reason(const struct checker *c)
{
	uint64_t took_ms = (util_now_us() - c->started_us) / 1000;

	if (c->error != NULL)
		return c->error;
	return took_ms >= c->h->pool->conf->health_timeout_ms ? "timeout" : "connect refused";
}

/* evhttp: the check finished (req NULL or status 0 when it failed). May run inside
 * evhttp_make_request when the connect fails at once. */
static void check_done(struct evhttp_request *req, void *arg)
{
	struct checker *c = arg;
	const struct rl_conf *conf = c->h->pool->conf;
	int code = req != NULL ? evhttp_request_get_response_code(req) : 0;
	char why[48];

	c->req = NULL;
	stats_inc(STAT_health_checks);
	if (code == 0) {
		record_bad(c, failure_reason(c));
	} else if ((unsigned)code < conf->health_expect_lo ||
	           (unsigned)code > conf->health_expect_hi) {
		snprintf(why, sizeof(why), "status %d", code);
		record_bad(c, why);
	} else {
		record_good(c);
	}
}

static void check_start(struct checker *c)
{
	const struct rl_conf *conf = c->h->pool->conf;
	struct timeval tv = {(time_t)(conf->health_timeout_ms / 1000),
	                     (long)(conf->health_timeout_ms % 1000) * 1000};
	struct evhttp_request *req = evhttp_request_new(check_done, c);
	struct evkeyvalq *hd;

	if (req == NULL) {
		log_error("backend %s: health check skipped (out of memory)", c->b->conf->name);
		return;
	}
	evhttp_request_set_error_cb(req, check_error);
	hd = evhttp_request_get_output_headers(req);
	evhttp_add_header(hd, "Host", c->b->conf->address.text);
	evhttp_add_header(hd, "User-Agent", HEALTH_USER_AGENT);
	evhttp_add_header(hd, "Connection", "close"); /* every check proves accept() works */
	evhttp_connection_set_timeout_tv(c->evcon, &tv);
	c->error = NULL;
	c->started_us = util_now_us();
	c->req = req;
	if (evhttp_make_request(c->evcon, req, EVHTTP_REQ_GET, conf->health_path) != 0)
		c->req = NULL; /* libevent freed it */
}

/* ---- passive ejection without active checks ---- */

/* Checks off: an ejected backend gets traffic again one interval after its ejection. */
static void passive_expiry(struct checker *c)
{
	uint64_t interval_ms = c->h->pool->conf->health_interval_ms;
	uint64_t since_ms = (util_now_us() - atomic_load(&c->rt->ejected_us)) / 1000;

	if (atomic_load(&c->rt->health) != RL_HEALTH_DOWN || since_ms < interval_ms)
		return;
	if (transition(c->rt, RL_HEALTH_DOWN, RL_HEALTH_UP))
		log_info("backend %s: UP (passive ejection over after %llu ms; active checks off)",
		         c->b->conf->name, (unsigned long long)since_ms);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct checker *c = arg;

	if (c->evcon == NULL)
		passive_expiry(c);
	else if (c->req == NULL)
		check_start(c);
	schedule(c, c->h->pool->conf->health_interval_ms);
}

/* ---- checkers ---- */

static void checker_free(struct checker *c)
{
	if (c == NULL)
		return;
	if (c->evcon != NULL)
		evhttp_connection_free(c->evcon); /* drops a check in flight, no callback */
	if (c->timer != NULL)
		event_free(c->timer);
	free(c);
}

static struct checker *checker_new(struct health *h, const struct rl_backend *b)
{
	struct checker *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->h = h;
	c->b = b;
	c->rt = b->rt;
	c->timer = evtimer_new(h->base, tick_cb, c);
	if (c->timer == NULL) {
		checker_free(c);
		return NULL;
	}
	return c;
}

/* A connection to backend i of p; over TLS when it has tls = on. */
static struct evhttp_connection *connection_for(struct event_base *base, const struct rl_pool *p,
                                                size_t i)
{
	const struct rl_addr *a = &p->b[i].conf->address;
	const struct sockaddr *sa = (const struct sockaddr *)&a->ss;
	char host[UTIL_ADDR_TEXT];
	uint16_t port = sa->sa_family == AF_INET6
	                        ? ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port)
	                        : ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
	struct evhttp_connection *evcon;
	struct bufferevent *bev = NULL;

	util_format_addr(sa, 0, host, sizeof(host));
	if (tls_backend_on(p, i) && (bev = tls_health_bufferevent_new(p, i, base)) == NULL)
		return NULL;
	/* evhttp owns bev from here: freed with the connection */
	evcon = evhttp_connection_base_bufferevent_new(base, NULL, bev, host, port);
	if (evcon != NULL) {
		evhttp_connection_set_retries(evcon, 0);
		evhttp_connection_set_max_body_size(evcon, HEALTH_BODY_MAX);
	}
	return evcon;
}

/* Active checks on: a connection to the backend's current address. 0 / -1. */
static int checker_connect(struct checker *c)
{
	const struct rl_addr *a = &c->b->conf->address;

	/* a TLS connection is remade on every snapshot: it holds that snapshot's ca */
	if (c->evcon != NULL && strcmp(c->addr, a->text) == 0 && !c->tls && !c->b->conf->tls)
		return 0;
	if (c->evcon != NULL)
		evhttp_connection_free(c->evcon);
	c->req = NULL;
	c->evcon = connection_for(c->h->base, c->h->pool, (size_t)(c->b - c->h->pool->b));
	c->tls = c->b->conf->tls;
	snprintf(c->addr, sizeof(c->addr), "%s", a->text);
	return c->evcon != NULL ? 0 : -1;
}

static void checker_disconnect(struct checker *c)
{
	if (c->evcon != NULL)
		evhttp_connection_free(c->evcon);
	c->evcon = NULL;
	c->req = NULL;
	c->good = c->bad = 0;
}

/* Active checks turned off: their verdict no longer stands. A passive ejection (checks
 * were off already) runs its course. */
static void checks_off(struct checker *c)
{
	bool was_active = c->evcon != NULL;

	checker_disconnect(c);
	if (!was_active || atomic_load(&c->rt->health) == RL_HEALTH_UP)
		return;
	force_state(c->rt, RL_HEALTH_UP);
	log_info("backend %s: UP (health checks off)", c->b->conf->name);
}

/* Point c at its entry in the new snapshot and at the mode the snapshot asks for. */
static void checker_configure(struct checker *c, const struct rl_backend *b, bool on)
{
	bool fresh = !c->started;

	c->b = b;
	c->started = true;
	if (!on) {
		checks_off(c);
	} else if (checker_connect(c) < 0) {
		log_error("backend %s: cannot start health checks (out of memory)", b->conf->name);
	} else if (fresh) {
		force_state(c->rt, RL_HEALTH_CHECKING);
		log_info("backend %s: CHECKING (up after %u good checks)", b->conf->name,
		         c->h->pool->conf->health_rise);
	}
	if (fresh)
		schedule_first(c);
}

/* Index of the checker watching rt in h's current set, or -1. */
static long find_checker(const struct health *h, const struct backend_rt *rt)
{
	for (size_t i = 0; i < h->n; i++)
		if (h->c[i] != NULL && h->c[i]->rt == rt)
			return (long)i;
	return -1;
}

static void free_checkers(struct checker **c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		checker_free(c[i]);
	free(c);
}

struct health *health_new(struct event_base *base)
{
	struct health *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return NULL;
	h->base = base;
	util_rng_seed(&h->rng);
	return h;
}

void health_free(struct health *h)
{
	if (h == NULL)
		return;
	free_checkers(h->c, h->n);
	if (h->pool != NULL)
		pool_unref(h->pool);
	free(h);
}

/* A checker per backend of p: new ones allocated, existing ones left in h->c for now.
 * NULL (nothing changed) on allocation failure. */
static struct checker **prepare(struct health *h, struct rl_pool *p)
{
	struct checker **next = calloc(p->n > 0 ? p->n : 1, sizeof(*next));

	for (size_t i = 0; next != NULL && i < p->n; i++) {
		if (find_checker(h, p->b[i].rt) >= 0)
			continue;
		next[i] = checker_new(h, &p->b[i]);
		if (next[i] == NULL) {
			free_checkers(next, i);
			return NULL;
		}
	}
	return next;
}

int health_set_pool(struct health *h, struct rl_pool *p)
{
	struct checker **next = prepare(h, p);
	struct rl_pool *old = h->pool;

	if (next == NULL)
		return -1;
	for (size_t i = 0; i < p->n; i++) {
		long k = find_checker(h, p->b[i].rt);

		if (k >= 0) {
			next[i] = h->c[k];
			h->c[k] = NULL;
		}
	}
	free_checkers(h->c, h->n); /* only backends that left the snapshot remain here */
	h->c = next;
	h->n = p->n;
	h->pool = pool_ref(p);
	for (size_t i = 0; i < p->n; i++)
		checker_configure(next[i], &p->b[i], checks_on(h));
	if (old != NULL)
		pool_unref(old);
	return 0;
}
