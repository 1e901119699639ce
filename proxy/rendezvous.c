/*
 * rendezvous — weighted HRW. Per (key, backend) pair:
 *
 *   x = mix64(h ^ name_hash_i)               name_hash_i = XXH3(name_i, seed ^ salt)
 *   u = (top 52 bits of x + ½) · 2^−52       u ∈ (0, 1), never 0 or 1 (exact)
 *   score_i = −w_i / ln u                    highest wins; ties: larger name hash
 *
 * −w/ln u is the minimum of exponential clocks with rates w_i in disguise, so backend i
 * wins with probability w_i/Σw over whoever takes part. When every weight is equal the
 * score is monotonic in u, and the lookup compares the 52-bit draws without a log: the
 * same winner (barring float ties of probability about 2^−50), several times faster.
 */
#include "rendezvous.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"

/* Part of the mapping: changing it remaps every key (instances would disagree). */
#define RV_SALT 0x2545f4914f6cdd1dULL

struct rendezvous {
	size_t n;
	uint64_t *name_hash; /* n, caller order; owned */
	unsigned *weight;    /* n, caller order; owned */
	bool uniform;        /* every weight equal: compare u, skip the log */
};

static int rv_str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Are the names present and distinct? Equal names would tie on every key. */
static bool rv_names_valid(const char *const *names, size_t n)
{
	const char **sorted;
	bool ok = true;

	for (size_t i = 0; i < n; i++)
		if (names[i] == NULL)
			return false;
	sorted = malloc(n * sizeof(*sorted));
	if (sorted == NULL)
		return false;
	memcpy(sorted, names, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), rv_str_cmp);
	for (size_t i = 1; ok && i < n; i++)
		ok = strcmp(sorted[i - 1], sorted[i]) != 0;
	free(sorted);
	return ok;
}

struct rendezvous *rendezvous_build(const char *const *names, const unsigned *weights, size_t n,
                                    uint64_t seed)
{
	struct rendezvous *r;

	if (names == NULL || weights == NULL || n == 0 || n > RENDEZVOUS_MAX_BACKENDS)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (weights[i] < 1 || weights[i] > RENDEZVOUS_MAX_WEIGHT)
			return NULL;
	if (!rv_names_valid(names, n))
		return NULL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->n = n;
	r->name_hash = malloc(n * sizeof(*r->name_hash));
	r->weight = malloc(n * sizeof(*r->weight));
	if (r->name_hash == NULL || r->weight == NULL) {
		rendezvous_free(r);
		return NULL;
	}
	r->uniform = true;
	for (size_t i = 0; i < n; i++) {
		r->name_hash[i] = hash64(names[i], strlen(names[i]), seed ^ RV_SALT);
		r->weight[i] = weights[i];
		r->uniform = r->uniform && weights[i] == weights[0];
	}
	return r;
}

void rendezvous_free(struct rendezvous *r)
{
	if (r == NULL)
		return;
	free(r->name_hash);
	free(r->weight);
	free(r);
}

size_t rendezvous_backends(const struct rendezvous *r)
{
	return r != NULL ? r->n : 0;
}

unsigned rendezvous_weight(const struct rendezvous *r, size_t i)
{
	return r != NULL && i < r->n ? r->weight[i] : 0;
}

size_t rendezvous_bytes(const struct rendezvous *r)
{
	if (r == NULL)
		return 0;
	return sizeof(*r) + r->n * (sizeof(*r->name_hash) + sizeof(*r->weight));
}

/* The draw behind u for the pair (h, backend i) (HASH_DRAW_BITS bits). */
static uint64_t rv_draw(const struct rendezvous *r, uint64_t h, size_t i)
{
	return hash_mix64(h ^ r->name_hash[i]) >> (64 - HASH_DRAW_BITS);
}

/* Equal weights: the largest draw has the highest score. */
static int rv_lookup_uniform(const struct rendezvous *r, uint64_t h, const bool *eligible)
{
	int best = -1;
	uint64_t best_draw = 0;

	for (size_t i = 0; i < r->n; i++) {
		if (eligible != NULL && !eligible[i])
			continue;
		uint64_t d = rv_draw(r, h, i);
		if (best < 0 || d > best_draw ||
		    (d == best_draw && r->name_hash[i] > r->name_hash[best])) {
			best = (int)i;
			best_draw = d;
		}
	}
	return best;
}

static int rv_lookup_weighted(const struct rendezvous *r, uint64_t h, const bool *eligible)
{
	int best = -1;
	double best_score = 0.0;

	for (size_t i = 0; i < r->n; i++) {
		if (eligible != NULL && !eligible[i])
			continue;
		double s = hash_hrw_score(rv_draw(r, h, i), r->weight[i]);
		if (best < 0 || s > best_score ||
		    (s == best_score && r->name_hash[i] > r->name_hash[best])) {
			best = (int)i;
			best_score = s;
		}
	}
	return best;
}

int rendezvous_lookup(const struct rendezvous *r, uint64_t h, const bool *eligible)
{
	if (r == NULL)
		return -1;
	return r->uniform ? rv_lookup_uniform(r, h, eligible) : rv_lookup_weighted(r, h, eligible);
}
