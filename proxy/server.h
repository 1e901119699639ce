/*
 * server — one data-path event loop: its listeners, client connections, upstream
 * keep-alive pools and the routing snapshot it reads.
 *
 *   evconnlistener ──accept──► conn (client) ──route──► upstream (backend connection)
 *                                   ▲                          │
 *                                   └───── response stream ◄───┘
 *
 * A server is driven by one thread. The snapshot pointer is replaced only through
 * server_set_pool() on that thread; connections keep a reference to the snapshot their
 * request started with.
 */
#ifndef RL_SERVER_H
#define RL_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "conf.h"
#include "http1.h"
#include "keyx.h"
#include "log.h"
#include "pool.h"
#include "util.h"

struct event_base;
struct evconnlistener;
struct conn;
struct upstream;

TAILQ_HEAD(upstream_list, upstream);
TAILQ_HEAD(conn_list, conn);

/* Counters of one server (one thread writes them; read for the shutdown summary). */
struct server_stats {
	uint64_t accepted;                /* client connections accepted */
	uint64_t refused;                 /* closed at once: over max_connections */
	uint64_t requests;                /* request heads parsed */
	uint64_t responses[6];            /* by class: [1]..[5] */
	uint64_t proxy_errors;            /* responses the proxy generated */
	uint64_t retries;                 /* connect failures retried on another backend */
	uint64_t accept_errors;           /* EMFILE and friends */
	uint64_t no_key[KEYX_MISS_COUNT]; /* requests without a key, by enum keyx_miss */
};

struct server {
	struct event_base *base;                                 /* borrowed */
	struct rl_pool *pool;                                    /* ref: current snapshot */
	struct evconnlistener *listeners[2 * CONF_MAX_LISTEN];   /* owned: [proxy] and [tls] */
	char listener_addr[2 * CONF_MAX_LISTEN][CONF_ADDR_TEXT]; /* address of listeners[i] */
	bool listener_tls[2 * CONF_MAX_LISTEN];                  /* listeners[i] is [tls] */
	size_t nlisteners;
	struct accesslog *alog; /* borrowed */
	struct util_rng rng;
	struct conn_list conns;           /* every open client connection */
	unsigned nconns;                  /* client connections of this server */
	atomic_uint *open_conns;          /* borrowed: client connections of the process */
	atomic_uint own_open_conns;       /* open_conns when no worker set shares one */
	unsigned fd_budget;               /* most clients the descriptor limit allows */
	struct upstream_list *idle;       /* owned array, one list per backend of pool */
	size_t nidle;                     /* entries of idle[] (pool->n) */
	unsigned *nparked;                /* owned: connections in each idle[i] */
	bool *scratch;                    /* owned: CONF_MAX_BACKENDS flags for routing */
	struct http_head head;            /* scratch: the head being parsed right now */
	struct event *accept_retry;       /* owned: re-enables listeners after EMFILE */
	bool stopping;                    /* no new connections; exit when idle */
	bool reuse_port;                  /* listen with SO_REUSEPORT (one socket per worker) */
	void *owner_ctx;                  /* borrowed: the worker that runs this server */
	void (*on_idle)(struct server *); /* called when stopping and the last conn closed */
	struct server_stats stats;
};

/* Create a server on base for snapshot pool (a reference is taken). NULL on failure. */
struct server *server_new(struct event_base *base, struct rl_pool *pool, struct accesslog *alog);
void server_free(struct server *s);

/* Bind and listen on every [proxy] and [tls] listen address. 0, or -1 after logging
 * the failure. */
int server_listen(struct server *s);

/* Replace the snapshot (idle upstream connections of the old one are closed). */
void server_set_pool(struct server *s, struct rl_pool *pool);

/* Stop accepting; finish in-flight requests, close idle keep-alive connections, then
 * call on_idle. */
void server_stop(struct server *s, void (*on_idle)(struct server *));

#endif
