/*
 * router — key → backend. Keys go through the placement table with the eligibility
 * overlay (down, draining and already-tried backends are skipped without a rebuild);
 * keyless requests follow [routing] missing_key.
 */
#include "router.h"

#include <limits.h>

#include "affinity.h"
#include "hash.h"
#include "maglev.h"

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

static int pick_least_loaded(const struct rl_pool *p, const bool *eligible,
			     struct util_rng *rng)
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
		return (struct router_choice){maglev_lookup(p->table, req->client_hash, eligible),
					      ROUTER_CLIENT_IP, -1};
	case RL_MISSING_REJECT: /* the caller answered 400; route like the default if asked */
	case RL_MISSING_LEAST_LOADED:
		break;
	}
	return (struct router_choice){pick_least_loaded(p, eligible, rng), ROUTER_LEAST_LOADED,
				      -1};
}

struct router_choice router_select(const struct rl_pool *p, const struct router_request *req,
				   const bool *excluded, bool *scratch, struct util_rng *rng)
{
	size_t count = mark_eligible(p, excluded, scratch);
	struct router_choice c;

	if (count == 0)
		return (struct router_choice){-1, ROUTER_NONE, -1};
	if (req->has_key) {
		c = (struct router_choice){maglev_lookup(p->table, req->key_hash, scratch),
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
	static const char *const names[] = {
		[ROUTER_HASHED] = "hashed",
		[ROUTER_LEAST_LOADED] = "least_loaded",
		[ROUTER_RANDOM] = "random",
		[ROUTER_CLIENT_IP] = "client_ip",
		[ROUTER_NONE] = "none",
		[ROUTER_PINNED] = "pinned",
		[ROUTER_REPINNED] = "repinned",
	};
	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

uint64_t router_key_hash(const struct rl_pool *p, const char *key, size_t len)
{
	return hash64(key, len, p->conf->hash_seed);
}

struct hash128 router_pin_key(const struct rl_pool *p, const char *key, size_t len)
{
	return hash128(key, len, p->conf->hash_seed);
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
	if (left >= 0) {
		atomic_fetch_add(&p->b[left].rt->failovers, 1);
		c.reason = ROUTER_REPINNED;
		c.moved_from = left;
	}
	return c;
}
