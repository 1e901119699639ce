/*
 * pool — build and release routing snapshots; share backend runtime state by name;
 * walk draining backends through the lifecycle contract.
 *
 *   reload: pool_new(new conf, current) ──► configured backends (same rt by name)
 *                                       └─► removed ones kept, flagged, until drained
 *   tick:   draining ──(no pins left | drain_timeout)──► drained ──(removed)──► forgotten
 *                                                                   at the next snapshot
 */
#include "pool.h"

#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "log.h"
#include "placement.h"

#define POOL_EXPIRE_BUDGET 100000 /* idle pins removed per tick at most */

/* The affinity table is shared by every snapshot; the last one frees it. */
struct pins {
	atomic_uint refs;
	struct affinity *table; /* owned */
};

static struct pins *pins_new(const struct rl_conf *conf)
{
	struct pins *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->table = affinity_new(conf->affinity_max, conf->affinity_ttl_ms);
	if (p->table == NULL) {
		free(p);
		return NULL;
	}
	atomic_init(&p->refs, 1);
	return p;
}

static struct pins *pins_ref(struct pins *p)
{
	atomic_fetch_add(&p->refs, 1);
	return p;
}

static void pins_unref(struct pins *p)
{
	if (p != NULL && atomic_fetch_sub(&p->refs, 1) == 1) {
		affinity_free(p->table);
		free(p);
	}
}

static struct backend_rt *backend_rt_new(uint32_t id)
{
	struct backend_rt *rt = calloc(1, sizeof(*rt));

	if (rt != NULL) {
		atomic_init(&rt->refs, 1);
		rt->id = id;
	}
	return rt;
}

static struct backend_rt *backend_rt_ref(struct backend_rt *rt)
{
	atomic_fetch_add(&rt->refs, 1);
	return rt;
}

static void backend_rt_unref(struct backend_rt *rt)
{
	if (rt != NULL && atomic_fetch_sub(&rt->refs, 1) == 1)
		free(rt);
}

/* Runtime state for backend `name`: borrowed from prev when it has it, else fresh. */
static struct backend_rt *runtime_for(struct rl_pool *p, const struct rl_pool *prev,
                                      const char *name)
{
	int i = prev != NULL ? pool_find(prev, name) : -1;

	return i >= 0 ? backend_rt_ref(prev->b[i].rt) : backend_rt_new(p->next_id++);
}

/* Say which mapping this snapshot uses, so operators can compare instances. */
static void log_placement(const struct rl_pool *p, const struct rl_pool *prev)
{
	char fp[PLACEMENT_FINGERPRINT_HEX + 1], size[32];

	placement_fingerprint_hex(p->placement->fingerprint, fp);
	placement_describe(p->placement, size, sizeof(size));
	log_info("routing: ring fingerprint %s (hash %s, %s, %zu backends%s)%s", fp,
	         placement_name(p->placement), size, p->nconf,
	         p->conf->balance_factor > 0 ? ", bounded load" : "",
	         prev != NULL && prev->placement->fingerprint == p->placement->fingerprint
	                 ? ", unchanged"
	                 : "");
}

/* A backend of prev that the new config dropped and that still has conversations to
 * finish: it stays in the snapshot, flagged removed, until drained. */
static bool keeps_draining(const struct rl_backend *old, const struct rl_conf *conf)
{
	return conf_backend(conf, old->conf->name) == NULL &&
	       atomic_load(&old->rt->life) != BACKEND_DRAINED;
}

static size_t count_removed(const struct rl_pool *prev, const struct rl_conf *conf)
{
	size_t n = 0;

	for (size_t i = 0; prev != NULL && i < prev->n; i++)
		n += keeps_draining(&prev->b[i], conf);
	return n;
}

static void keep_removed(struct rl_pool *p, const struct rl_pool *prev)
{
	for (size_t i = 0; prev != NULL && i < prev->n; i++) {
		const struct rl_backend *old = &prev->b[i];
		if (!keeps_draining(old, p->conf)) {
			if (conf_backend(p->conf, old->conf->name) == NULL)
				log_info("backend %s: removed", old->conf->name);
			continue;
		}
		struct rl_backend *b = &p->b[p->n++];
		b->removed = true;
		b->removed_conf = *old->conf;
		b->removed_conf.ca = NULL; /* owned by the old conf */
		b->conf = &b->removed_conf;
		b->rt = backend_rt_ref(old->rt);
		if (!old->removed)
			log_info("backend %s: removed from the config, draining", b->conf->name);
	}
}

static int build_index(struct rl_pool *p)
{
	p->index_of = malloc((p->next_id > 0 ? p->next_id : 1) * sizeof(*p->index_of));
	if (p->index_of == NULL)
		return -1;
	for (uint32_t id = 0; id < p->next_id; id++)
		p->index_of[id] = -1;
	for (size_t i = 0; i < p->n; i++)
		p->index_of[p->b[i].rt->id] = (int32_t)i;
	return 0;
}

static struct pins *pins_for(const struct rl_pool *prev, const struct rl_conf *conf)
{
	if (prev == NULL)
		return pins_new(conf);
	affinity_set_ttl(prev->pins->table, conf->affinity_ttl_ms);
	return pins_ref(prev->pins);
}

struct rl_pool *pool_new(struct rl_conf *conf, const struct rl_pool *prev)
{
	struct rl_pool *p = calloc(1, sizeof(*p));
	size_t total;

	if (p == NULL) {
		conf_free(conf);
		return NULL;
	}
	atomic_init(&p->refs, 1);
	p->conf = conf;
	p->generation = prev != NULL ? prev->generation + 1 : 1;
	p->next_id = prev != NULL ? prev->next_id : 0;
	total = conf->nbackends + count_removed(prev, conf);
	p->b = calloc(total > 0 ? total : 1, sizeof(*p->b));
	p->placement = placement_from_conf(conf);
	p->pins = pins_for(prev, conf);
	if (p->b == NULL || p->placement == NULL || p->pins == NULL)
		goto fail;
	for (size_t i = 0; i < conf->nbackends; i++) {
		p->b[i].conf = &conf->backends[i];
		p->b[i].rt = runtime_for(p, prev, conf->backends[i].name);
		if (p->b[i].rt == NULL)
			goto fail;
		p->n++;
	}
	p->nconf = p->n;
	keep_removed(p, prev);
	if (build_index(p) < 0)
		goto fail;
	log_placement(p, prev);
	return p;
fail:
	pool_unref(p);
	return NULL;
}

struct rl_pool *pool_ref(struct rl_pool *p)
{
	atomic_fetch_add(&p->refs, 1);
	return p;
}

void pool_unref(struct rl_pool *p)
{
	if (p == NULL || atomic_fetch_sub(&p->refs, 1) != 1)
		return;
	for (size_t i = 0; i < p->n; i++)
		backend_rt_unref(p->b[i].rt);
	free(p->b);
	free(p->index_of);
	placement_free(p->placement);
	pins_unref(p->pins);
	if (p->tls_free != NULL)
		p->tls_free(p->tls);
	conf_free(p->conf);
	free(p);
}

bool pool_draining(const struct rl_pool *p, size_t i)
{
	const struct rl_backend *b = &p->b[i];

	return b->removed || b->conf->state == RL_BACKEND_DRAINING ||
	       atomic_load(&b->rt->admin_draining);
}

bool pool_placeable(const struct rl_pool *p, size_t i)
{
	const struct backend_rt *rt = p->b[i].rt;

	return i < p->nconf && !pool_draining(p, i) && !atomic_load(&rt->down) &&
	       atomic_load(&rt->life) != BACKEND_DRAINED;
}

bool pool_pin_usable(const struct rl_pool *p, size_t i)
{
	const struct backend_rt *rt = p->b[i].rt;

	return !atomic_load(&rt->down) && atomic_load(&rt->life) != BACKEND_DRAINED;
}

struct affinity *pool_affinity(const struct rl_pool *p)
{
	return p->pins->table;
}

int pool_index_of(const struct rl_pool *p, uint32_t id)
{
	return id < p->next_id ? p->index_of[id] : -1;
}

int pool_find(const struct rl_pool *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->b[i].conf->name, name) == 0)
			return (int)i;
	return -1;
}

const char *pool_state_name(const struct rl_pool *p, size_t i)
{
	const struct backend_rt *rt = p->b[i].rt;
	int life = atomic_load(&rt->life);

	if (p->b[i].removed)
		return life == BACKEND_DRAINED ? "removed" : "draining";
	if (life == BACKEND_DRAINED)
		return "drained";
	if (pool_draining(p, i))
		return "draining";
	return atomic_load(&rt->down) ? "down" : "up";
}

/* One draining backend: drained when its last pin is gone or its deadline passed. */
static void drain_step(const struct rl_pool *p, size_t i, size_t pinned, uint64_t now_ms)
{
	struct backend_rt *rt = p->b[i].rt;
	const char *name = p->b[i].conf->name;

	if (atomic_load(&rt->life) == BACKEND_ACTIVE) {
		atomic_store(&rt->life, BACKEND_DRAINING);
		rt->drain_started_ms = now_ms;
		log_info("backend %s: DRAINING (%zu pinned conversations)", name, pinned);
	}
	if (atomic_load(&rt->life) != BACKEND_DRAINING)
		return;
	if (pinned == 0 && atomic_load(&rt->inflight) == 0) {
		atomic_store(&rt->life, BACKEND_DRAINED);
		log_info("backend %s: DRAINED (no pinned conversations or open requests left)",
		         name);
	} else if (now_ms - rt->drain_started_ms >= p->conf->drain_timeout_ms) {
		size_t moved = affinity_unpin_backend(pool_affinity(p), rt->id);
		atomic_fetch_add(&rt->forced_moves, moved);
		atomic_store(&rt->life, BACKEND_DRAINED);
		log_warn("backend %s: DRAINED (drain_timeout, %zu conversations re-pinned, open "
		         "streams closed)",
		         name, moved);
	}
}

void pool_lifecycle_tick(struct rl_pool *p, uint64_t now_ms)
{
	size_t *pinned = calloc(p->next_id > 0 ? p->next_id : 1, sizeof(*pinned));

	affinity_expire(pool_affinity(p), now_ms, POOL_EXPIRE_BUDGET);
	if (pinned == NULL)
		return;
	affinity_count_by_backend(pool_affinity(p), now_ms, pinned, p->next_id);
	for (size_t i = 0; i < p->n; i++) {
		struct backend_rt *rt = p->b[i].rt;
		atomic_store(&rt->pinned, (unsigned)pinned[rt->id]);
		if (pool_draining(p, i)) {
			drain_step(p, i, pinned[rt->id], now_ms);
		} else if (atomic_load(&rt->life) != BACKEND_ACTIVE) {
			atomic_store(&rt->life, BACKEND_ACTIVE);
			log_info("backend %s: UP again (undrained)", p->b[i].conf->name);
		}
	}
	free(pinned);
}
