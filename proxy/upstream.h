/*
 * upstream — connections to backends: connect with a timeout, park idle keep-alive
 * connections per backend (max_idle_per_backend), and notice when a backend closes a
 * parked connection so it is never handed out dead.
 */
#ifndef RL_UPSTREAM_H
#define RL_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

struct server;
struct rl_pool;
struct bufferevent;

struct upstream {
	struct bufferevent *bev; /* owned */
	struct server *srv;      /* borrowed */
	int backend;             /* index in the server's current pool */
	uint64_t generation;     /* pool generation it was opened for */
	bool connected;
	bool idle;   /* parked in srv->idle[backend] */
	bool reused; /* taken from the idle pool (served before) */
	uint64_t connect_started_us;
	TAILQ_ENTRY(upstream) link; /* idle list */
};

/* Take a parked connection to backend i, or NULL if none is ready. */
struct upstream *upstream_take_idle(struct server *s, int backend);

/* Start a new non-blocking connection to backend i of snapshot p (the exchange's own
 * snapshot: indexes differ between snapshots), connect_timeout applies.
 * NULL with errno set when the socket cannot even be created. */
struct upstream *upstream_connect(struct server *s, const struct rl_pool *p, int backend);

/* Park u for reuse (or free it when the pool for its backend is full or stale). */
void upstream_release(struct upstream *u);

void upstream_free(struct upstream *u);

/* Close every parked connection (snapshot swap, shutdown). */
void upstream_close_idle(struct server *s);

#endif
