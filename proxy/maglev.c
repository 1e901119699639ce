/*
 * maglev — weighted Maglev placement (Eisenbud et al., NSDI 2016, §3.4) with Envoy's
 * weighted turns, plus the eligibility overlay (research/hashing.md §3.2, §4.4, §6.1).
 *
 * Build. Every backend walks its own permutation of the M slots, derived from its name:
 *
 *     slot_j = (offset + j·skip) mod M      offset = H(name, seed^A) mod M
 *                                           skip   = H(name, seed^B) mod (M−1) + 1
 *
 * M is prime, so every skip generates all M slots. Backends, in name order, take turns
 * claiming the next free slot of their walk until the table is full. Turns are weighted
 * by credit: in round r backend b claims when r·w_b ≥ due_b, and each claim raises due_b
 * by w_max, so b claims in ≈ w_b/w_max of the rounds, ends with ≈ M·w_b/W slots (at least
 * one) and the heaviest backend claims every round. M (auto) is the first step of a ladder
 * of primes (≈ 65536·2^k) holding 100·W, so it survives small changes (§4.5's 100·W/w_min
 * would change M, and remap nearly every key, whenever the lightest backend changes).
 *
 *   names ──sort by name──▶ (offset, skip, w) ──weighted turns──▶ table[M] (uint16 index)
 *
 * Sorting by name makes the table a pure function of (names, weights, seed): input order
 * only decides which caller index is stored.
 *
 * Lookup. b = table[fastrange(h, M)]. If b is not eligible, probe the key-derived slots
 * table[fastrange(mix64(h + i·φ), M)], i = 1..MAGLEV_PROBES; the probes land on slots, so
 * an ejected backend's keys spread over the others in proportion to their slots (≈ weight)
 * and no key of an eligible backend moves. If every probe fails, weighted rendezvous over
 * the eligible backends decides.
 */
#include "maglev.h"

#include "hash.h"

#include <stdlib.h>
#include <string.h>

/*
 * Arbitrary distinct salts for the per-name hashes. They are part of the mapping: changing
 * one remaps every key, so instances running different builds would disagree.
 */
#define MG_SALT_OFFSET     0x5851f42d4c957f2dULL
#define MG_SALT_SKIP       0x14057b7ef767814fULL
#define MG_SALT_RENDEZVOUS 0xd1b54a32d192ed03ULL

/*
 * Auto sizes: the first prime at or above 65536·2^k, k = 0..6 (then MAGLEV_MAX_SIZE). A pool
 * keeps its M across small configuration changes; M doubles (and most unpinned keys move)
 * only when the sizing rule crosses a step.
 */
static const uint32_t mg_ladder[] = {65537, 131101, 262147, 524309, 1048583, 2097169, 4194319};

/* Auto size: slots per weight unit, for ≈1 % share accuracy even on a weight-1 backend. */
#define MG_SIZE_FACTOR       100u
#define MG_PROBE_STEP        0x9e3779b97f4a7c15ULL /* 2^64/φ: a Weyl step, probes far apart */
#define MG_EMPTY             UINT16_MAX  /* unclaimed slot while building; never an index */
#define MG_LARGEST_PRIME_U32 4294967291u /* no prime above it fits in 32 bits */

/* Build-time state of one backend; freed once the table is full. */
struct mg_entry {
	const char *name; /* borrowed from the caller for the build */
	uint64_t due;     /* round·weight at which the next claim is due */
	uint32_t pos;     /* current slot of this backend's permutation walk */
	uint32_t skip;    /* walk stride, 1..M−1 */
	unsigned weight;  /* 1..MAGLEV_MAX_WEIGHT */
	uint16_t index;   /* caller's backend index, stored in the table */
};

struct maglev {
	uint16_t *table;     /* size entries: caller's backend index per slot; owned */
	uint32_t size;       /* M, entries, prime */
	size_t n;            /* backends */
	uint64_t *name_hash; /* n: rendezvous hash per backend, caller order; owned */
	unsigned *weight;    /* n: weight per backend, caller order; owned */
};

/* ---- primes ---- */

static bool mg_is_prime(uint32_t x)
{
	if (x < 2)
		return false;
	if (x < 4)
		return true;
	if (x % 2 == 0 || x % 3 == 0)
		return false;
	for (uint64_t d = 5; d * d <= x; d += 6) {
		if (x % d == 0 || x % (d + 2) == 0)
			return false;
	}
	return true;
}

/* Trial division: ≈ 2·√n divisions per candidate, microseconds for table sizes. */
uint32_t maglev_next_prime(uint32_t n)
{
	if (n > MG_LARGEST_PRIME_U32)
		return 0;
	for (uint32_t c = n;; c++) {
		if (mg_is_prime(c))
			return c;
	}
}

/* ---- argument checks and sizing ---- */

static bool mg_weights_valid(const unsigned *weights, size_t n)
{
	if (weights == NULL || n == 0 || n > MAGLEV_MAX_BACKENDS)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (weights[i] < 1 || weights[i] > MAGLEV_MAX_WEIGHT)
			return false;
	}
	return true;
}

static bool mg_names_valid(const char *const *names, size_t n)
{
	if (names == NULL)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (names[i] == NULL)
			return false;
	}
	return true;
}

static bool mg_size_valid(uint32_t size, size_t n)
{
	return size == 0 || (size >= n && size <= MAGLEV_MAX_SIZE && mg_is_prime(size));
}

static uint64_t mg_max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

uint32_t maglev_auto_size(const unsigned *weights, size_t n)
{
	uint64_t total = 0;

	if (!mg_weights_valid(weights, n))
		return 0;
	for (size_t i = 0; i < n; i++)
		total += weights[i];
	/* 100 slots per weight unit: >= 100·W/w_min (±1 % for the lightest backend) and >= 100·n */
	uint64_t want = mg_max_u64(MAGLEV_MIN_SIZE, (uint64_t)MG_SIZE_FACTOR * total);
	for (size_t k = 0; k < sizeof(mg_ladder) / sizeof(mg_ladder[0]); k++)
		if (mg_ladder[k] >= want)
			return mg_ladder[k];
	return MAGLEV_MAX_SIZE;
}

/* ---- build ---- */

static int mg_entry_cmp(const void *a, const void *b)
{
	const struct mg_entry *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/*
 * Per-backend walks sorted by name. Returns NULL on allocation failure or when two
 * backends share a name (their order, hence the table, would depend on input order).
 */
static struct mg_entry *mg_entries_new(const char *const *names, const unsigned *weights, size_t n,
                                       uint64_t seed, uint32_t size)
{
	struct mg_entry *e = calloc(n, sizeof(*e));

	if (e == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(names[i]);

		e[i].name = names[i];
		e[i].pos = (uint32_t)(hash64(names[i], len, seed ^ MG_SALT_OFFSET) % size);
		e[i].skip = (uint32_t)(hash64(names[i], len, seed ^ MG_SALT_SKIP) % (size - 1) + 1);
		e[i].weight = weights[i];
		e[i].index = (uint16_t)i;
	}
	qsort(e, n, sizeof(*e), mg_entry_cmp);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(e[i - 1].name, e[i].name) == 0) {
			free(e);
			return NULL;
		}
	}
	return e;
}

/* Give e the next free slot of its walk; the table must not be full. */
static void mg_claim(uint16_t *table, uint32_t size, struct mg_entry *e)
{
	while (table[e->pos] != MG_EMPTY) {
		e->pos += e->skip;
		if (e->pos >= size)
			e->pos -= size;
	}
	table[e->pos] = e->index;
}

/*
 * Weighted turns until every slot is claimed. Cost: the walks take O(M log M) expected
 * probes; the due checks take O(M·w_max/w_mean), since the heaviest backend claims every
 * round and there are ≈ M·w_max/W rounds of n checks.
 */
static void mg_populate(uint16_t *table, uint32_t size, struct mg_entry *e, size_t n)
{
	unsigned w_max = 0;
	uint32_t filled = 0;

	for (size_t j = 0; j < n; j++) {
		if (e[j].weight > w_max)
			w_max = e[j].weight;
	}
	memset(table, 0xff, (size_t)size * sizeof(*table)); /* every slot MG_EMPTY */
	for (uint64_t round = 0;; round++) {
		for (size_t j = 0; j < n; j++) {
			if (round * e[j].weight < e[j].due)
				continue;
			e[j].due += w_max;
			mg_claim(table, size, &e[j]);
			if (++filled == size)
				return;
		}
	}
}

static struct maglev *mg_alloc(size_t n, uint32_t size)
{
	struct maglev *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->size = size;
	m->n = n;
	m->table = malloc((size_t)size * sizeof(*m->table));
	m->name_hash = malloc(n * sizeof(*m->name_hash));
	m->weight = malloc(n * sizeof(*m->weight));
	if (m->table == NULL || m->name_hash == NULL || m->weight == NULL) {
		maglev_free(m);
		return NULL;
	}
	return m;
}

struct maglev *maglev_build(const char *const *names, const unsigned *weights, size_t n,
                            uint64_t seed, uint32_t size)
{
	if (!mg_weights_valid(weights, n) || !mg_names_valid(names, n) || !mg_size_valid(size, n))
		return NULL;
	if (size == 0)
		size = maglev_auto_size(weights, n);

	struct maglev *m = mg_alloc(n, size);
	if (m == NULL)
		return NULL;
	struct mg_entry *e = mg_entries_new(names, weights, n, seed, size);
	if (e == NULL) {
		maglev_free(m);
		return NULL;
	}
	mg_populate(m->table, size, e, n);
	free(e);
	for (size_t i = 0; i < n; i++) {
		m->name_hash[i] = hash64(names[i], strlen(names[i]), seed ^ MG_SALT_RENDEZVOUS);
		m->weight[i] = weights[i];
	}
	return m;
}

void maglev_free(struct maglev *m)
{
	if (m == NULL)
		return;
	free(m->table);
	free(m->name_hash);
	free(m->weight);
	free(m);
}

/* ---- queries ---- */

uint32_t maglev_size(const struct maglev *m)
{
	return m != NULL ? m->size : 0;
}

size_t maglev_backends(const struct maglev *m)
{
	return m != NULL ? m->n : 0;
}

unsigned maglev_slot(const struct maglev *m, uint32_t i)
{
	if (m == NULL || i >= m->size)
		return MAGLEV_MAX_BACKENDS;
	return m->table[i];
}

/* ---- lookup with the eligibility overlay ---- */

/* Weighted rendezvous score of the (key, backend) pair (hash_hrw_score). */
static double mg_hrw_score(uint64_t h, uint64_t name_hash, unsigned weight)
{
	return hash_hrw_score(hash_mix64(h ^ name_hash) >> (64 - HASH_DRAW_BITS), weight);
}

/* Highest-scoring eligible backend; ties (practically never) go to the larger name hash. */
static int mg_rendezvous(const struct maglev *m, uint64_t h, const bool *eligible)
{
	int best = -1;
	double best_score = 0.0;

	for (size_t i = 0; i < m->n; i++) {
		if (!eligible[i])
			continue;
		double s = mg_hrw_score(h, m->name_hash[i], m->weight[i]);
		if (best < 0 || s > best_score ||
		    (s == best_score && m->name_hash[i] > m->name_hash[best])) {
			best = (int)i;
			best_score = s;
		}
	}
	return best;
}

static int mg_lookup_overlay(const struct maglev *m, uint64_t h, const bool *eligible)
{
	for (uint64_t i = 1; i <= MAGLEV_PROBES; i++) {
		unsigned b = m->table[hash_range(hash_mix64(h + i * MG_PROBE_STEP), m->size)];

		if (eligible[b])
			return (int)b;
	}
	return mg_rendezvous(m, h, eligible);
}

int maglev_lookup(const struct maglev *m, uint64_t h, const bool *eligible)
{
	if (m == NULL)
		return -1;

	unsigned b = m->table[hash_range(h, m->size)];
	if (eligible == NULL || eligible[b])
		return (int)b;
	return mg_lookup_overlay(m, h, eligible);
}
