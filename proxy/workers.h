/*
 * workers — the data-path threads. Each worker owns an event_base, its own listening
 * sockets (SO_REUSEPORT, so the kernel spreads connections), its connections and its
 * upstream keep-alive pools; nothing on the data path takes a global lock.
 *
 *   control thread ──workers_set_pool()──► each worker swaps its snapshot on its own loop
 *                  ──workers_stop()──────► each worker stops accepting, drains, exits
 *
 * With one worker the server runs on the caller's event_base (no extra thread): the
 * lean single-threaded path.
 */
#ifndef RL_WORKERS_H
#define RL_WORKERS_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "pool.h"
#include "server.h"

struct event_base;
struct workers;

/*
 * Start n workers (n >= 1) on snapshot pool. base is the control thread's loop: with
 * n == 1 the only server runs on it. on_stopped runs on the control loop once every
 * worker finished after workers_stop(). NULL if a listener or thread cannot start
 * (logged).
 */
struct workers *workers_start(struct event_base *base, unsigned n, struct rl_pool *pool,
                              struct accesslog *alog, void (*on_stopped)(void *), void *arg);

/* Hand a new snapshot to every worker (each takes its own reference). Control thread. */
void workers_set_pool(struct workers *w, struct rl_pool *pool);

/* Ask every worker to end streams to backends that reached their drain deadline. */
void workers_sweep(struct workers *w);

/* Graceful stop: stop accepting, finish in-flight requests, then on_stopped. */
void workers_stop(struct workers *w);

/* Stop at once (grace period over), join threads and free everything. NULL is fine. */
void workers_free(struct workers *w);

/* Sum of every worker's counters (read without locks: figures may lag slightly). */
void workers_stats(const struct workers *w, struct server_stats *sum);

/* Open client connections over all workers. */
unsigned workers_connections(const struct workers *w);

unsigned workers_count(const struct workers *w);

/* CPU count for workers = auto. */
unsigned workers_auto(void);

#endif
