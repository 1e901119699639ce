/*
 * workers — one server per thread; the control thread talks to them only through
 * events activated on their own loops (libevent's pthread locking makes that safe).
 */
#include "workers.h"

#include "conn.h"

#include <event2/event.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define WORKERS_FD_RESERVE 32 /* descriptors kept for listeners, logs, admin, reloads */

struct worker {
	struct workers *owner;   /* borrowed */
	struct event_base *base; /* owned, except with a single worker (the control base) */
	struct server *server;   /* owned */
	pthread_t thread;
	bool has_thread;
	struct event *swap_ev;     /* owned: picks up owner->next_pool on this loop */
	struct event *stop_ev;     /* owned: starts the graceful stop on this loop */
	struct event *sweep_ev;    /* owned: ends streams to drained backends on this loop */
	struct event *done_ev;     /* owned, on the control loop: this worker finished */
	struct rl_pool *next_pool; /* ref handed over by the control thread, swapped once */
	pthread_mutex_t lock;      /* guards next_pool */
};

struct workers {
	struct event_base *control; /* borrowed */
	unsigned n;                 /* workers initialised */
	unsigned n_planned;         /* workers asked for */
	struct worker *w;           /* owned array of n */
	atomic_uint running;        /* workers not yet finished after stop */
	atomic_uint open_conns;     /* client connections over all workers (max_connections) */
	void (*on_stopped)(void *);
	void *arg;
};

unsigned workers_auto(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	return cpus > 0 ? (unsigned)cpus : 1;
}

static void swap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct rl_pool *p;

	pthread_mutex_lock(&w->lock);
	p = w->next_pool;
	w->next_pool = NULL;
	pthread_mutex_unlock(&w->lock);
	if (p != NULL) {
		server_set_pool(w->server, p);
		pool_unref(p);
	}
}

/* Runs on the worker's loop once its last connection closed. */
static void server_idle(struct server *s)
{
	struct worker *w = s->owner_ctx;

	if (w->has_thread)
		event_base_loopexit(w->base, NULL);
	event_active(w->done_ev, EV_TIMEOUT, 0);
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	conn_sweep(w->server);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	server_stop(w->server, server_idle);
}

/* Control loop: one more worker finished. */
static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct workers *ws = w->owner;

	if (atomic_fetch_sub(&ws->running, 1) == 1 && ws->on_stopped != NULL)
		ws->on_stopped(ws->arg);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

/*
 * Clients the descriptor limit allows: every client may need a backend connection too, so
 * half of what is left after a reserve for listeners, logs, the admin API and health checks
 * (WORKERS_FD_RESERVE + one per backend) and for the idle keep-alive pools.
 */
static unsigned fd_budget(const struct rl_conf *conf, unsigned nworkers)
{
	struct rlimit rl;
	uint64_t reserve = WORKERS_FD_RESERVE + conf->nbackends +
	                   (uint64_t)conf->nbackends * conf->max_idle_per_backend * nworkers;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return UINT_MAX;
	if (rl.rlim_cur <= reserve + 2)
		return 1;
	return (unsigned)((rl.rlim_cur - reserve) / 2 < UINT_MAX ? (rl.rlim_cur - reserve) / 2
	                                                         : UINT_MAX);
}

static int worker_init(struct workers *ws, struct worker *w, struct rl_pool *pool,
                       struct accesslog *alog, bool threaded)
{
	w->owner = ws;
	pthread_mutex_init(&w->lock, NULL);
	w->base = threaded ? event_base_new() : ws->control;
	if (w->base == NULL)
		return -1;
	w->server = server_new(w->base, pool, alog);
	if (w->server == NULL)
		return -1;
	w->server->owner_ctx = w;
	w->server->open_conns = &ws->open_conns;
	w->server->fd_budget = fd_budget(pool->conf, threaded ? ws->n_planned : 1);
	w->server->reuse_port = threaded;
	w->swap_ev = event_new(w->base, -1, 0, swap_cb, w);
	w->stop_ev = event_new(w->base, -1, 0, stop_cb, w);
	w->sweep_ev = event_new(w->base, -1, 0, sweep_cb, w);
	w->done_ev = event_new(ws->control, -1, 0, done_cb, w);
	if (w->swap_ev == NULL || w->stop_ev == NULL || w->sweep_ev == NULL || w->done_ev == NULL)
		return -1;
	return server_listen(w->server);
}

/* SO_REUSEPORT would let a second ringleader share these ports without a word: make
 * sure no other socket holds them before the workers bind their own. */
static int probe_free(const struct rl_addr_list *list)
{
	int one = 1;

	for (size_t i = 0; i < list->n; i++) {
		const struct rl_addr *a = &list->addr[i];
		int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int rc;

		if (fd < 0)
			return -1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		rc = bind(fd, (const struct sockaddr *)&a->ss, a->len);
		close(fd);
		if (rc < 0) {
			log_errno(RL_LOG_ERROR, "listener %s: cannot listen", a->text);
			return -1;
		}
	}
	return 0;
}

struct workers *workers_start(struct event_base *base, unsigned n, struct rl_pool *pool,
                              struct accesslog *alog, void (*on_stopped)(void *), void *arg)
{
	struct workers *ws = calloc(1, sizeof(*ws));
	bool threaded = n > 1;

	if (ws == NULL)
		return NULL;
	ws->control = base;
	ws->n_planned = n;
	atomic_init(&ws->open_conns, 0);
	ws->on_stopped = on_stopped;
	ws->arg = arg;
	if (threaded &&
	    (probe_free(&pool->conf->listen) < 0 || probe_free(&pool->conf->tls_listen) < 0)) {
		free(ws);
		return NULL;
	}
	ws->w = calloc(n, sizeof(*ws->w));
	/* the caller enabled libevent's pthread locking before creating base */
	if (ws->w == NULL) {
		workers_free(ws);
		return NULL;
	}
	for (unsigned i = 0; i < n; i++, ws->n++) {
		if (worker_init(ws, &ws->w[i], pool, alog, threaded) < 0) {
			ws->n++;
			workers_free(ws);
			return NULL;
		}
	}
	for (unsigned i = 0; threaded && i < n; i++) {
		if (pthread_create(&ws->w[i].thread, NULL, worker_main, &ws->w[i]) != 0) {
			log_errno(RL_LOG_ERROR, "workers: cannot start thread %u", i);
			workers_free(ws);
			return NULL;
		}
		ws->w[i].has_thread = true;
	}
	atomic_init(&ws->running, n);
	return ws;
}

void workers_set_pool(struct workers *ws, struct rl_pool *pool)
{
	for (unsigned i = 0; i < ws->n; i++) {
		struct worker *w = &ws->w[i];
		pthread_mutex_lock(&w->lock);
		if (w->next_pool != NULL)
			pool_unref(w->next_pool);
		w->next_pool = pool_ref(pool);
		pthread_mutex_unlock(&w->lock);
		event_active(w->swap_ev, EV_TIMEOUT, 0);
	}
}

void workers_sweep(struct workers *ws)
{
	for (unsigned i = 0; i < ws->n; i++)
		event_active(ws->w[i].sweep_ev, EV_TIMEOUT, 0);
}

void workers_stop(struct workers *ws)
{
	for (unsigned i = 0; i < ws->n; i++)
		event_active(ws->w[i].stop_ev, EV_TIMEOUT, 0);
}

static void worker_deinit(struct worker *w)
{
	if (w->has_thread) {
		/* loopexit, not loopbreak: a break sent before the thread entered its loop
		 * is forgotten when the loop starts, and the join would wait forever */
		event_base_loopexit(w->base, NULL);
		pthread_join(w->thread, NULL);
	}
	server_free(w->server);
	if (w->swap_ev != NULL)
		event_free(w->swap_ev);
	if (w->stop_ev != NULL)
		event_free(w->stop_ev);
	if (w->sweep_ev != NULL)
		event_free(w->sweep_ev);
	if (w->done_ev != NULL)
		event_free(w->done_ev);
	if (w->next_pool != NULL)
		pool_unref(w->next_pool);
	if (w->base != NULL && w->base != w->owner->control)
		event_base_free(w->base);
	pthread_mutex_destroy(&w->lock);
}

void workers_free(struct workers *ws)
{
	if (ws == NULL)
		return;
	for (unsigned i = 0; i < ws->n; i++)
		worker_deinit(&ws->w[i]);
	free(ws->w);
	free(ws);
}

void workers_stats(const struct workers *ws, struct server_stats *sum)
{
	*sum = (struct server_stats){0};
	for (unsigned i = 0; i < ws->n; i++) {
		const struct server_stats *s = &ws->w[i].server->stats;
		sum->accepted += s->accepted;
		sum->refused += s->refused;
		sum->requests += s->requests;
		for (int c = 0; c < 6; c++)
			sum->responses[c] += s->responses[c];
		sum->proxy_errors += s->proxy_errors;
		sum->retries += s->retries;
		sum->accept_errors += s->accept_errors;
		for (int m = 0; m < KEYX_MISS_COUNT; m++)
			sum->no_key[m] += s->no_key[m];
	}
}

unsigned workers_connections(const struct workers *ws)
{
	unsigned n = 0;

	for (unsigned i = 0; i < ws->n; i++)
		n += ws->w[i].server->nconns;
	return n;
}

unsigned workers_count(const struct workers *ws)
{
	return ws->n;
}
