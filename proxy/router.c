/*
 * router — key → backend. Keys go through the placement (maglev, rendezvous or ring)
 * with the eligibility overlay: down, draining and already-tried backends are skipped
 * without a rebuild, and with balance_factor so is a backend at its bounded-load cap
 * (research/hashing.md §6.2). Keyless requests follow [routing] missing_key.
 *
 *   pin? ──yes, usable──► pinned backend (never moved for load)
 *     └─no──► eligible = placeable ∧ ¬tried ∧ under cap ──placement_lookup──► pin, count
 */
#include "router.h"

#include <limits.h>
#include <math.h>

#include "affinity.h"
#include "hash.h"
#include "placement.h"

/* Slack under ceil() so c·(L+1)·w/W landing on an integer is not rounded up by float error. */
#define ROUTER_CAP_SLACK 1e-9

/* Fill eligible[] and return how many backends may take this request. */
static size_t mark_eligible(const struct rl_pool *p, const bool *excluded, bool *eligible)
{
	size_t count = 0;

	for (size_t i = 0; i < p->n; i++) {
		eligible[i] = pool_placeable(p, i) && (excluded == NULL || !excluded[i]);
		count += eligible[i];
	}
	return count;
}

static int pick_least_loaded(const struct rl_pool *p, const bool *eligible, struct util_rng *rng)
{
	unsigned best = UINT_MAX;
	size_t start = p->n > 1 ? util_rng_next(rng) % p->n : 0;
	int choice = -1;

	/* Start at a random index so ties do not all land on the first backend. */
	for (size_t k = 0; k < p->n; k++) {
		size_t i = (start + k) % p->n;
		unsigned load = atomic_load_explicit(&p->b[i].rt->inflight, memory_order_relaxed);
		if (eligible[i] && load < best) {
			best = load;
			choice = (int)i;
		}
	}
	return choice;
}

static int pick_random(const struct rl_pool *p, const bool *eligible, size_t count,
                       struct util_rng *rng)
{
	size_t nth = util_rng_next(rng) % count;

	for (size_t i = 0; i < p->n; i++)
		if (eligible[i] && nth-- == 0)
			return (int)i;
	return -1;
}

static struct router_choice keyless(const struct rl_pool *p, const struct router_request *req,
                                    const bool *eligible, size_t count, struct util_rng *rng)
{
	switch (p->conf->missing_key) {
	case RL_MISSING_RANDOM:
		return (struct router_choice){pick_random(p, eligible, count, rng), ROUTER_RANDOM,
		                              -1};
	case RL_MISSING_CLIENT_IP:
		return (struct router_choice){
		        placement_lookup(p->placement, req->client_hash, eligible),
		        ROUTER_CLIENT_IP, -1};
	case RL_MISSING_REJECT: /* the caller answered 400; route like the default if asked */
	case RL_MISSING_LEAST_LOADED:
		break;
	}
	return (struct router_choice){pick_least_loaded(p, eligible, rng), ROUTER_LEAST_LOADED, -1};
}

/*
 * Bounded load: backend b of the eligible set E is full when pinned_b + 1 > cap_b,
 * cap_b = ceil(c·(L_E + 1)·w_b / W_E), L_E = live pins on E, W_E = weight of E (HAProxy's
 * chash_server_is_eligible restricted to E). Full backends leave eligible[]; Σ cap_b >=
 * L_E + 1 keeps one eligible, and should counts read at different instants (other workers
 * pin meanwhile) say otherwise, the uncapped set is restored: load never makes a 503.
 */
static bool over_cap(const struct rl_pool *p, size_t i, double per_weight)
{
	double cap = ceil(per_weight * p->b[i].conf->weight - ROUTER_CAP_SLACK);
	unsigned pinned = atomic_load_explicit(&p->b[i].rt->pinned, memory_order_relaxed);

	return (double)pinned + 1 > cap;
}

static void cap_load(const struct rl_pool *p, const bool *excluded, bool *eligible)
{
	uint64_t live = 0, weight = 0;
	size_t open = 0;
	double per_weight;

	for (size_t i = 0; i < p->n; i++) {
		if (!eligible[i])
			continue;
		live += atomic_load_explicit(&p->b[i].rt->pinned, memory_order_relaxed);
		weight += p->b[i].conf->weight;
	}
	per_weight = p->conf->balance_factor * (double)(live + 1) / (double)weight;
	for (size_t i = 0; i < p->n; i++) {
		if (eligible[i] && over_cap(p, i, per_weight))
			eligible[i] = false;
		open += eligible[i];
	}
	if (open == 0)
		mark_eligible(p, excluded, eligible);
}

/*
 * Without a load cap, a key whose first choice may take it needs no overlay: every
 * placement returns the first choice whenever it is eligible. Saves the O(n) marking.
 */
static int first_choice(const struct rl_pool *p, const struct router_request *req,
                        const bool *excluded)
{
	int b;

	if (!req->has_key || p->conf->balance_factor > 0)
		return -1;
	b = placement_lookup(p->placement, req->key_hash, NULL);
	if (b < 0 || !pool_placeable(p, (size_t)b) || (excluded != NULL && excluded[b]))
		return -1;
	return b;
}

struct router_choice router_select(const struct rl_pool *p, const struct router_request *req,
                                   const bool *excluded, bool *scratch, struct util_rng *rng)
{
	int first = first_choice(p, req, excluded);
	size_t count;
	struct router_choice c;

	if (first >= 0)
		return (struct router_choice){first, ROUTER_HASHED, -1};
	count = mark_eligible(p, excluded, scratch);
	if (count == 0)
		return (struct router_choice){-1, ROUTER_NONE, -1};
	if (req->has_key) {
		if (p->conf->balance_factor > 0)
			cap_load(p, excluded, scratch);
		c = (struct router_choice){placement_lookup(p->placement, req->key_hash, scratch),
		                           ROUTER_HASHED, -1};
	} else {
		c = keyless(p, req, scratch, count, rng);
	}
	if (c.backend < 0)
		c.reason = ROUTER_NONE;
	return c;
}

const char *router_reason_name(enum router_reason r)
{
	/* clang-format off */
	static const char *const names[] = {
	        [ROUTER_HASHED] = "hashed",
	        [ROUTER_LEAST_LOADED] = "least_loaded",
	        [ROUTER_RANDOM] = "random",
	        [ROUTER_CLIENT_IP] = "client_ip",
	        [ROUTER_NONE] = "none",
	        [ROUTER_PINNED] = "pinned",
	        [ROUTER_REPINNED] = "repinned",
	};
	/* clang-format on */
	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

uint64_t router_key_hash(const struct rl_pool *p, const char *key, size_t len)
{
	return placement_key_hash(p->placement, key, len);
}

struct hash128 router_pin_key(const struct rl_pool *p, const char *key, size_t len)
{
	return hash128(key, len, p->conf->hash_seed);
}

/* One pin left rt (re-pinned elsewhere); never below 0 (the tick recount may have run). */
static void pinned_dec(struct backend_rt *rt)
{
	unsigned v = atomic_load_explicit(&rt->pinned, memory_order_relaxed);

	while (v > 0 && !atomic_compare_exchange_weak_explicit(
	                        &rt->pinned, &v, v - 1, memory_order_relaxed, memory_order_relaxed))
		;
}

/* The pinned backend when it may still serve this request; else -1 and *left set to the
 * backend the conversation leaves (-1 when it had no pin or that backend is gone). */
static int pinned_backend(const struct rl_pool *p, const struct router_request *req,
                          const bool *excluded, int *left)
{
	uint32_t id;
	int i;

	*left = -1;
	if (!affinity_lookup(pool_affinity(p), req->pin_key, req->now_ms, &id))
		return -1;
	i = pool_index_of(p, id);
	if (i >= 0 && pool_pin_usable(p, (size_t)i) && (excluded == NULL || !excluded[i]))
		return i;
	*left = i;
	return -1;
}

struct router_choice router_route(const struct rl_pool *p, const struct router_request *req,
                                  const bool *excluded, bool *scratch, struct util_rng *rng)
{
	struct router_choice c;
	int left;

	if (!req->has_key)
		return router_select(p, req, excluded, scratch, rng);
	c.backend = pinned_backend(p, req, excluded, &left);
	if (c.backend >= 0)
		return (struct router_choice){c.backend, ROUTER_PINNED, -1};
	c = router_select(p, req, excluded, scratch, rng);
	if (c.backend < 0)
		return c;
	affinity_pin(pool_affinity(p), req->pin_key, p->b[c.backend].rt->id, req->now_ms);
	atomic_fetch_add_explicit(&p->b[c.backend].rt->pinned, 1, memory_order_relaxed);
	if (left >= 0) {
		pinned_dec(p->b[left].rt);
		atomic_fetch_add(&p->b[left].rt->failovers, 1);
		c.reason = ROUTER_REPINNED;
		c.moved_from = left;
	}
	return c;
}
