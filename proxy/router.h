/*
 * router — choose the backend for one request: the conversation key hashed onto the
 * placement ([routing] hash, placement.h) under the eligibility overlay and the optional
 * bounded-load cap (balance_factor), or the missing_key policy when the request carries no
 * key. Pure: reads a pool snapshot, touches no socket.
 */
#ifndef RL_ROUTER_H
#define RL_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"
#include "pool.h"
#include "util.h"

enum router_reason {
	ROUTER_HASHED = 0,   /* the key's place on the table (or the next one under its cap) */
	ROUTER_LEAST_LOADED, /* no key: fewest in-flight requests */
	ROUTER_RANDOM,       /* no key: uniform among placeable backends */
	ROUTER_CLIENT_IP,    /* no key: client address hashed onto the table */
	ROUTER_NONE,         /* no backend can take it (503) */
	ROUTER_PINNED,       /* the conversation's pin */
	ROUTER_REPINNED,     /* its pinned backend is down, drained or failed: moved, re-pinned */
};

struct router_request {
	bool has_key;           /* a conversation key was found */
	uint64_t key_hash;      /* router_key_hash() of the key */
	uint64_t client_hash;   /* hash of the client address (client_ip policy) */
	struct hash128 pin_key; /* router_pin_key() of the key: its pin identity */
	uint64_t now_ms;        /* monotonic clock, for pin expiry */
};

struct router_choice {
	int backend; /* index into the pool, -1 with ROUTER_NONE */
	enum router_reason reason;
	int moved_from; /* ROUTER_REPINNED: index of the backend it left, or -1 */
};

/*
 * Pick a backend. excluded: NULL or p->n flags of backends already tried for this
 * request (connect failed). scratch: p->n bools of caller-owned working space.
 * missing_key = reject is the caller's business (it answers 400 before routing).
 * A keyed request with balance_factor c > 0 skips backends at their cap (router.c
 * cap_load: live pins + 1 > ceil(c·(L+1)·w/W) over the eligible set); when all are at it
 * (counts racing), none is skipped. Cost: one placement lookup when the key's first choice
 * may take it and there is no cap; otherwise O(n) marking plus the lookup.
 */
struct router_choice router_select(const struct rl_pool *p, const struct router_request *req,
                                   const bool *excluded, bool *scratch, struct util_rng *rng);

/*
 * Route a request with the pin table: a keyed conversation goes to its pinned backend
 * while that one is usable (up or draining, not excluded); otherwise it is placed with
 * router_select() and pinned there. A pin that had to move counts a failover on the
 * backend it left. Keyless requests are never pinned. Thread-safe (the pin table locks
 * per shard). A new pin adds one to its backend's backend_rt.pinned (a re-pin also takes
 * one from the backend it left), so bounded load sees pins made since the last lifecycle
 * tick recounted them. A pinned conversation is never moved for load.
 */
struct router_choice router_route(const struct rl_pool *p, const struct router_request *req,
                                  const bool *excluded, bool *scratch, struct util_rng *rng);

const char *router_reason_name(enum router_reason r);

/* The 128-bit pin identity of a key under the snapshot's hash_seed. */
struct hash128 router_pin_key(const struct rl_pool *p, const char *key, size_t len);

/* Hash of a conversation key as the snapshot's placement expects it: XXH3-64 under
 * hash_seed (maglev, rendezvous) or CRC32 (ring, as nginx; no seed). */
uint64_t router_key_hash(const struct rl_pool *p, const char *key, size_t len);

#endif
