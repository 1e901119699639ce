/*
 * pool — the routing snapshot: backends plus the placement table built from them.
 *
 *   struct rl_conf ──pool_new──► struct rl_pool (immutable, refcounted)
 *                                  ├─ backends[i]: name, address, weight, admin state
 *                                  │     └─ rt ──► struct backend_rt (refcounted, kept
 *                                  │               across snapshots by backend name)
 *                                  └─ placement table (maglev)
 *
 * A snapshot never changes after pool_new returns; connections hold a reference to the
 * one their request started with. Live per-backend figures (in-flight requests,
 * counters, health) sit in struct backend_rt and are updated with atomics, so workers
 * touch them without locks.
 */
#ifndef RL_POOL_H
#define RL_POOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

struct maglev;

/* Runtime state of one backend, shared by every snapshot that names it. */
struct backend_rt {
	atomic_uint refs;             /* snapshots holding this */
	atomic_uint inflight;         /* requests sent and not yet answered */
	atomic_ullong requests;       /* requests sent to it */
	atomic_ullong errors;         /* connect failures, bad responses, timeouts */
	atomic_ullong connect_failures;
	atomic_bool down;             /* ejected (health checks or passive); never placed */
};

struct rl_backend {
	const struct rl_backend_conf *conf; /* borrowed from the snapshot's conf */
	struct backend_rt *rt;              /* ref */
};

struct rl_pool {
	atomic_uint refs;
	struct rl_conf *conf;      /* owned: the configuration this snapshot was built from */
	size_t n;                  /* backends */
	struct rl_backend *b;      /* owned array of n */
	struct maglev *table;      /* owned placement table */
	uint64_t generation;       /* increases with every snapshot */
};

/*
 * Build a snapshot that takes ownership of conf. prev (may be NULL) lends its runtime
 * state to backends with the same name, so counters and health carry over.
 * Returns NULL (conf freed) on allocation failure.
 */
struct rl_pool *pool_new(struct rl_conf *conf, const struct rl_pool *prev);
struct rl_pool *pool_ref(struct rl_pool *p);
void pool_unref(struct rl_pool *p);

/* May backend i take a new conversation (up, not draining, not down)? */
bool pool_placeable(const struct rl_pool *p, size_t i);

/* Index of the backend named name, or -1. */
int pool_find(const struct rl_pool *p, const char *name);

#endif
