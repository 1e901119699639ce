/*
 * pool — build and release routing snapshots; share backend runtime state by name.
 */
#include "pool.h"

#include <stdlib.h>
#include <string.h>

#include "maglev.h"

static struct backend_rt *backend_rt_new(void)
{
	struct backend_rt *rt = calloc(1, sizeof(*rt));

	if (rt != NULL)
		atomic_init(&rt->refs, 1);
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
static struct backend_rt *runtime_for(const struct rl_pool *prev, const char *name)
{
	int i = prev != NULL ? pool_find(prev, name) : -1;

	return i >= 0 ? backend_rt_ref(prev->b[i].rt) : backend_rt_new();
}

static struct maglev *build_table(const struct rl_conf *conf)
{
	const char **names = calloc(conf->nbackends, sizeof(*names));
	unsigned *weights = calloc(conf->nbackends, sizeof(*weights));
	struct maglev *m = NULL;

	if (names != NULL && weights != NULL) {
		for (size_t i = 0; i < conf->nbackends; i++) {
			names[i] = conf->backends[i].name;
			weights[i] = conf->backends[i].weight;
		}
		m = maglev_build(names, weights, conf->nbackends, conf->hash_seed, 0);
	}
	free(names);
	free(weights);
	return m;
}

struct rl_pool *pool_new(struct rl_conf *conf, const struct rl_pool *prev)
{
	struct rl_pool *p = calloc(1, sizeof(*p));

	if (p == NULL) {
		conf_free(conf);
		return NULL;
	}
	atomic_init(&p->refs, 1);
	p->conf = conf;
	p->generation = prev != NULL ? prev->generation + 1 : 1;
	p->b = calloc(conf->nbackends, sizeof(*p->b));
	p->table = build_table(conf);
	if (p->b == NULL || p->table == NULL)
		goto fail;
	for (size_t i = 0; i < conf->nbackends; i++) {
		p->b[i].conf = &conf->backends[i];
		p->b[i].rt = runtime_for(prev, conf->backends[i].name);
		if (p->b[i].rt == NULL)
			goto fail;
		p->n++;
	}
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
	maglev_free(p->table);
	conf_free(p->conf);
	free(p);
}

bool pool_placeable(const struct rl_pool *p, size_t i)
{
	return p->b[i].conf->state == RL_BACKEND_UP && !atomic_load(&p->b[i].rt->down);
}

int pool_find(const struct rl_pool *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->b[i].conf->name, name) == 0)
			return (int)i;
	return -1;
}
