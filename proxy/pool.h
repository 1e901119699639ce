/*
 * pool — the routing snapshot: backends plus the placement table built from them.
 *
 *   struct rl_conf ──pool_new──► struct rl_pool (immutable, refcounted)
 *                                  ├─ backends[i]: name, address, weight, admin state
 *                                  │     └─ rt ──► struct backend_rt (refcounted, kept
 *                                  │               across snapshots by backend name)
 *                                  └─ placement (maglev | rendezvous | ring, placement.h)
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

struct placement;

/* Health of a backend (health.c); 0 is up so fresh runtime state is placeable. */
enum rl_health {
	RL_HEALTH_UP = 0,   /* checks pass (or checks are off) */
	RL_HEALTH_CHECKING, /* new with active checks on: waits for `rise` good checks */
	RL_HEALTH_DOWN,     /* failed `fall` checks, or ejected by passive failures */
};

#define POOL_LATENCY_BUCKETS 14 /* response-time histogram buckets, +Inf included (stats.c) */

/* Runtime state of one backend, shared by every snapshot that names it. */
struct backend_rt {
	atomic_uint refs;       /* snapshots holding this */
	atomic_uint inflight;   /* requests sent and not yet answered */
	atomic_ullong requests; /* requests sent to it */
	atomic_ullong errors;   /* connect failures, bad responses, timeouts */
	atomic_ullong connect_failures;
	atomic_bool down;   /* ejected (health checks or passive); never placed */
	atomic_uint pinned; /* live pins: recounted every lifecycle tick, +1 per new
	                       pin in between (bounded load, router.c) */
	/* lifecycle (written by the control thread, read by workers) */
	uint32_t id;                /* stable id pins refer to; never reused */
	atomic_int life;            /* enum backend_life */
	uint64_t drain_started_ms;  /* control thread: when draining began */
	atomic_ullong failovers;    /* pinned conversations moved off it (down, failure) */
	atomic_ullong forced_moves; /* pins dropped at its drain deadline */
	/* control plane (health.c, admin.c, stats.c) */
	atomic_int health;          /* enum rl_health; `down` mirrors health != RL_HEALTH_UP */
	atomic_uint passive_fails;  /* consecutive connect failures / 5xx seen by the data path */
	atomic_ullong ejected_us;   /* util_now_us() of the last passive ejection */
	atomic_bool admin_draining; /* POST /backends/NAME/drain; survives reloads */
	atomic_ullong latency[POOL_LATENCY_BUCKETS]; /* responses per bucket, not cumulative */
	atomic_ullong latency_sum_us; /* sum of observed response times, microseconds */
};

/* Where a backend is in the lifecycle contract (DESIGN.md). */
enum backend_life {
	BACKEND_ACTIVE = 0, /* takes new conversations when placeable */
	BACKEND_DRAINING,   /* no new conversations; pinned ones still reach it */
	BACKEND_DRAINED,    /* no traffic at all: safe to stop */
};

struct rl_backend {
	const struct rl_backend_conf *conf;  /* borrowed: the snapshot's conf, or removed_conf */
	struct backend_rt *rt;               /* ref */
	bool removed;                        /* gone from the config, kept until drained */
	struct rl_backend_conf removed_conf; /* copy of its last configuration when removed */
};

struct affinity;
struct pins; /* the shared affinity table with its reference count (pool.c) */

struct rl_pool {
	atomic_uint refs;
	struct rl_conf *conf;        /* owned: the configuration this snapshot was built from */
	size_t n;                    /* backends */
	struct rl_backend *b;        /* owned array of n */
	size_t nconf;                /* the first nconf backends are configured (on the table);
	                                the rest are removed ones still draining */
	struct placement *placement; /* owned: placement over b[0..nconf) */
	uint64_t generation;         /* increases with every snapshot */
	struct pins *pins;           /* ref: conversation pins, shared by every snapshot */
	uint32_t next_id;            /* next backend id to hand out */
	int32_t *index_of;           /* owned: backend id -> index in b, -1 if absent */
	void *tls;                   /* owned: TLS server context (tls.c attaches it before the
	                                snapshot is published); NULL without [tls] listen */
	void (*tls_free)(void *);    /* releases tls with the snapshot */
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

/* May a conversation pinned to backend i keep going there (not down, not drained)? */
bool pool_pin_usable(const struct rl_pool *p, size_t i);

/* Is backend i draining (config state, removed from the config) — before deadline? */
bool pool_draining(const struct rl_pool *p, size_t i);

/* The pin table (shared by every snapshot of this process). */
struct affinity *pool_affinity(const struct rl_pool *p);

/* Index of the backend with id, or -1. */
int pool_index_of(const struct rl_pool *p, uint32_t id);

/*
 * Control thread, about once a second: move draining backends to drained when their
 * last pinned conversation ended or drain_timeout passed (then their remaining pins are
 * dropped and counted as forced moves), expire idle pins. Logs each transition.
 */
void pool_lifecycle_tick(struct rl_pool *p, uint64_t now_ms);

/* Lifecycle name for /backends and logs: up, draining, drained, removed, down. */
const char *pool_state_name(const struct rl_pool *p, size_t i);

/* Index of the backend named name, or -1. */
int pool_find(const struct rl_pool *p, const char *name);

#endif
