/*
 * Unit tests for proxy/maglev.c and proxy/hash.c: prime and size rules, order
 * independence, exact balance (counted over table slots), the eligibility overlay, rebuild
 * disruption and argument checks (research/hashing.md §6.3 targets, §7 method).
 * Keys are pre-hashed uint64 values from a fixed-seed splitmix64 stream.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "maglev.h"

#define T_MAX_N     128
#define T_NAME_LEN  32
#define T_KEYS      100000
#define T_GOLDEN    0x9e3779b97f4a7c15ULL
#define T_SEED      0x5eedULL
#define T_WEIGHT_RS 777 /* weight generator seed, as research/hashing.md §7.1 */

/* A pool of backends named bot-%04zu.svc:8080, in caller order. */
struct pool {
	size_t n;
	char buf[T_MAX_N][T_NAME_LEN];
	const char *names[T_MAX_N];
	unsigned weights[T_MAX_N];
};

static uint64_t next_u64(uint64_t *state)
{
	*state += T_GOLDEN;
	return hash_mix64(*state); /* splitmix64 */
}

static void pool_init(struct pool *p, size_t n, unsigned weight)
{
	cr_assert(n <= T_MAX_N);
	p->n = n;
	for (size_t i = 0; i < n; i++) {
		snprintf(p->buf[i], T_NAME_LEN, "bot-%04zu.svc:8080", i);
		p->names[i] = p->buf[i];
		p->weights[i] = weight;
	}
}

/* Weights uniform in 1..256 from a fixed-seed generator. */
static void pool_random_weights(struct pool *p, uint64_t seed)
{
	for (size_t i = 0; i < p->n; i++)
		p->weights[i] = 1 + (unsigned)(next_u64(&seed) % MAGLEV_MAX_WEIGHT);
}

static struct maglev *pool_build(const struct pool *p, uint64_t seed, uint32_t size)
{
	struct maglev *m = maglev_build(p->names, p->weights, p->n, seed, size);

	cr_assert_not_null(m, "maglev_build failed (n=%zu, size=%u)", p->n, size);
	return m;
}

/* Same backends, caller order shuffled by a fixed-seed Fisher–Yates. */
static void pool_shuffled(struct pool *dst, const struct pool *src, uint64_t seed)
{
	*dst = *src;
	for (size_t i = src->n - 1; i > 0; i--) {
		size_t j = (size_t)(next_u64(&seed) % (i + 1));
		char tmp[T_NAME_LEN];
		unsigned w = dst->weights[i];

		memcpy(tmp, dst->buf[i], T_NAME_LEN);
		memcpy(dst->buf[i], dst->buf[j], T_NAME_LEN);
		memcpy(dst->buf[j], tmp, T_NAME_LEN);
		dst->weights[i] = dst->weights[j];
		dst->weights[j] = w;
	}
	for (size_t i = 0; i < dst->n; i++)
		dst->names[i] = dst->buf[i];
}

static unsigned pool_total_weight(const struct pool *p)
{
	unsigned total = 0;

	for (size_t i = 0; i < p->n; i++)
		total += p->weights[i];
	return total;
}

/* Exact key-space share of every backend: its slots / M. */
static void slot_shares(const struct maglev *m, double *share)
{
	size_t n = maglev_backends(m);
	uint32_t size = maglev_size(m);

	memset(share, 0, n * sizeof(*share));
	for (uint32_t i = 0; i < size; i++) {
		unsigned b = maglev_slot(m, i);

		cr_assert(b < n, "slot %u holds %u (n=%zu)", i, b, n);
		share[b] += 1.0 / size;
	}
}

/* ---- hash wrapper ---- */

/*
 * Known answers from xxHash's own sanity vectors (cli/xsum_sanity_check.c, XSUM_XXH3_testdata
 * and XSUM_XXH128_testdata): input is its pseudo-random test buffer, reproduced here.
 * Also confirmed once against libxxhash 0.8.1 through this wrapper.
 */
#define XSUM_PRIME32 2654435761U
#define XSUM_PRIME64 11400714785074694797ULL
#define XSUM_LEN     24

static void xsum_fill(unsigned char *buf, size_t len)
{
	uint64_t gen = XSUM_PRIME32;

	for (size_t i = 0; i < len; i++) {
		buf[i] = (unsigned char)(gen >> 56);
		gen *= XSUM_PRIME64;
	}
}

Test(hash, known_answers_xxh3_64)
{
	unsigned char buf[XSUM_LEN];

	xsum_fill(buf, sizeof(buf));
	cr_assert_eq(hash64("", 0, 0), 0x2D06800538D394C2ULL);
	cr_assert_eq(hash64("", 0, XSUM_PRIME64), 0xA8A6B918B2F0364AULL);
	cr_assert_eq(hash64(buf, 6, 0), 0x27B56A84CD2D7325ULL);
	cr_assert_eq(hash64(buf, 6, XSUM_PRIME64), 0x84589C116AB59AB9ULL);
	cr_assert_eq(hash64(buf, 24, 0), 0xA3FE70BF9D3510EBULL);
	cr_assert_eq(hash64(buf, 24, XSUM_PRIME64), 0x850E80FC35BDD690ULL);
}

Test(hash, known_answers_xxh3_128)
{
	unsigned char buf[XSUM_LEN];
	struct hash128 h;

	xsum_fill(buf, sizeof(buf));
	h = hash128("", 0, 0);
	cr_assert(h.lo == 0x6001C324468D497FULL && h.hi == 0x99AA06D3014798D8ULL);
	h = hash128(buf, 6, XSUM_PRIME32);
	cr_assert(h.lo == 0x269D8F70BE98856EULL && h.hi == 0x5A865B5389ABD2B1ULL);
	h = hash128(buf, 24, 0);
	cr_assert(h.lo == 0x1E7044D28B1B901DULL && h.hi == 0x0CE966E4678D3761ULL);
}

Test(hash, stable_and_seeded)
{
	static const char id[] = "3f2b8c1e-9d4a-4e7b-8a1c-2b5d6e7f8a9b";
	char copy[sizeof(id)];

	memcpy(copy, id, sizeof(id));
	cr_assert_eq(hash64(id, strlen(id), 7), hash64(copy, strlen(copy), 7));
	cr_assert_neq(hash64(id, strlen(id), 7), hash64(id, strlen(id), 8));
	cr_assert_neq(hash64(id, strlen(id), 7), hash64(id, strlen(id) - 1, 7));

	struct hash128 a = hash128(id, strlen(id), 7), b = hash128(copy, strlen(copy), 7);
	struct hash128 c = hash128(id, strlen(id), 8);
	cr_assert(a.lo == b.lo && a.hi == b.hi);
	cr_assert(a.lo != c.lo && a.hi != c.hi);
}

Test(hash, range_stays_in_bounds)
{
	uint64_t s = T_SEED;
	static const uint32_t bounds[] = {1, 2, 3, 65537, 5000011, UINT32_MAX};

	for (size_t b = 0; b < sizeof(bounds) / sizeof(bounds[0]); b++) {
		cr_assert_eq(hash_range(0, bounds[b]), 0);
		cr_assert_eq(hash_range(UINT64_MAX, bounds[b]), bounds[b] - 1);
		for (int i = 0; i < 1000; i++)
			cr_assert_lt(hash_range(next_u64(&s), bounds[b]), bounds[b]);
	}
}

/* ---- primes and sizes ---- */

Test(maglev, next_prime_table)
{
	static const struct {
		uint32_t in, want;
	} cases[] = {
	        {0, 2},
	        {1, 2},
	        {2, 2},
	        {3, 3},
	        {4, 5},
	        {14, 17},
	        {24, 29},
	        {65536, 65537},
	        {65537, 65537},
	        {65538, 65539},
	        {100000, 100003},
	        {486500, 486503},
	        {5000000, 5000011},
	        {5000012, 5000077},
	        {2147483647u, 2147483647u},
	        {4294967291u, 4294967291u}, /* the largest 32-bit prime */
	        {4294967292u, 0},
	        {UINT32_MAX, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t got = maglev_next_prime(cases[i].in);

		cr_assert_eq(got, cases[i].want, "next_prime(%u) = %u, want %u", cases[i].in, got,
		             cases[i].want);
	}
}

Test(maglev, auto_size_rule)
{
	struct pool p;

	pool_init(&p, 3, 1);
	cr_assert_eq(maglev_auto_size(p.weights, 3), MAGLEV_MIN_SIZE); /* floor */
	pool_init(&p, 10, MAGLEV_MAX_WEIGHT);
	cr_assert_eq(maglev_auto_size(p.weights, 10), 262147u); /* 100·W = 256000 */

	unsigned many[1000];
	for (size_t i = 0; i < 1000; i++)
		many[i] = 1;
	cr_assert_eq(maglev_auto_size(many, 1000), 131101u); /* 100·W = 100000: ladder step 1 */
	cr_assert_eq(maglev_auto_size(many, 999), 131101u);  /* one fewer: the same M */

	pool_init(&p, 20, MAGLEV_MAX_WEIGHT);
	p.weights[7] = 1; /* 100·W = 100·(19·256 + 1) = 486500 */
	cr_assert_eq(maglev_auto_size(p.weights, 20), 524309u);
	p.weights[8] = 128; /* 100·(18·256 + 128 + 1) = 473700: same step */
	cr_assert_eq(maglev_auto_size(p.weights, 20), 524309u);
	p.weights[8] = MAGLEV_MAX_WEIGHT;

	for (size_t i = 1; i < 1000; i++)
		many[i] = MAGLEV_MAX_WEIGHT; /* 100·W ≈ 2.6e7: capped */
	cr_assert_eq(maglev_auto_size(many, 1000), MAGLEV_MAX_SIZE);

	/* every step of the ladder is prime, and sizes only grow with the rule */
	uint32_t last = 0;
	for (unsigned w = 1; w <= MAGLEV_MAX_WEIGHT; w *= 2) {
		for (unsigned k = 1; k <= 64; k *= 2) {
			uint32_t m;

			pool_init(&p, k, MAGLEV_MAX_WEIGHT);
			p.weights[0] = w;
			m = maglev_auto_size(p.weights, k);
			cr_assert_eq(maglev_next_prime(m), m, "auto size %u is not prime", m);
		}
	}
	for (size_t n = 1; n <= 1000; n += 37) {
		uint32_t m = maglev_auto_size(many, n);

		cr_assert_geq(m, last);
		last = m;
	}
	pool_init(&p, 20, MAGLEV_MAX_WEIGHT);
	p.weights[3] = 0;
	cr_assert_eq(maglev_auto_size(p.weights, 20), 0u);
	cr_assert_eq(maglev_auto_size(p.weights, 0), 0u);
}

Test(maglev, build_uses_auto_and_explicit_size)
{
	struct pool p;
	struct maglev *m;

	pool_init(&p, 20, MAGLEV_MAX_WEIGHT);
	p.weights[7] = 1;
	m = pool_build(&p, T_SEED, 0);
	cr_assert_eq(maglev_size(m), 524309u);
	cr_assert_eq(maglev_backends(m), 20u);
	maglev_free(m);

	pool_init(&p, 10, 1); /* a tiny explicit table still gives everyone a slot */
	m = pool_build(&p, T_SEED, 13);
	cr_assert_eq(maglev_size(m), 13u);
	double share[10];
	slot_shares(m, share);
	for (size_t i = 0; i < 10; i++)
		cr_assert_gt(share[i], 0.0, "backend %zu has no slot", i);
	cr_assert_eq(maglev_slot(m, 13), (unsigned)MAGLEV_MAX_BACKENDS); /* out of range */
	maglev_free(m);
}

/* ---- arguments ---- */

Test(maglev, bad_arguments)
{
	struct pool p;

	pool_init(&p, 10, 1);
	cr_assert_null(maglev_build(p.names, p.weights, 0, T_SEED, 0), "n = 0");
	cr_assert_null(maglev_build(NULL, p.weights, 10, T_SEED, 0), "names NULL");
	cr_assert_null(maglev_build(p.names, NULL, 10, T_SEED, 0), "weights NULL");
	cr_assert_null(maglev_build(p.names, p.weights, 10, T_SEED, 65536), "size not prime");
	cr_assert_null(maglev_build(p.names, p.weights, 10, T_SEED, 7), "size < n");
	cr_assert_null(maglev_build(p.names, p.weights, 10, T_SEED, 5000077), "size > max");

	p.weights[4] = 0;
	cr_assert_null(maglev_build(p.names, p.weights, 10, T_SEED, 0), "weight 0");
	p.weights[4] = MAGLEV_MAX_WEIGHT + 1;
	cr_assert_null(maglev_build(p.names, p.weights, 10, T_SEED, 0), "weight 257");
	p.weights[4] = MAGLEV_MAX_WEIGHT;
	struct maglev *m = maglev_build(p.names, p.weights, 10, T_SEED, 0);
	cr_assert_not_null(m, "weight 256 is valid");
	maglev_free(m);

	p.names[6] = NULL;
	cr_assert_null(maglev_build(p.names, p.weights, 10, T_SEED, 0), "NULL name");
	p.names[6] = p.names[2];
	cr_assert_null(maglev_build(p.names, p.weights, 10, T_SEED, 0), "duplicate name");
}

Test(maglev, too_many_backends)
{
	size_t n = MAGLEV_MAX_BACKENDS + 1;
	char(*buf)[T_NAME_LEN] = calloc(n, T_NAME_LEN);
	const char **names = calloc(n, sizeof(*names));
	unsigned *weights = calloc(n, sizeof(*weights));

	cr_assert(buf && names && weights);
	for (size_t i = 0; i < n; i++) {
		snprintf(buf[i], T_NAME_LEN, "bot-%06zu", i);
		names[i] = buf[i];
		weights[i] = 1;
	}
	cr_assert_null(maglev_build(names, weights, n, T_SEED, 0));
	free(buf);
	free(names);
	free(weights);
}

Test(maglev, free_and_queries_accept_null)
{
	maglev_free(NULL);
	cr_assert_eq(maglev_size(NULL), 0u);
	cr_assert_eq(maglev_backends(NULL), 0u);
	cr_assert_eq(maglev_lookup(NULL, 42, NULL), -1);
}

/* ---- determinism ---- */

Test(maglev, single_backend)
{
	struct pool p;
	uint64_t s = T_SEED;
	bool off = false;

	pool_init(&p, 1, 1);
	struct maglev *m = pool_build(&p, T_SEED, 0);
	for (uint32_t i = 0; i < maglev_size(m); i++)
		cr_assert_eq(maglev_slot(m, i), 0u);
	for (int k = 0; k < 1000; k++) {
		uint64_t h = next_u64(&s);
		cr_assert_eq(maglev_lookup(m, h, NULL), 0);
		cr_assert_eq(maglev_lookup(m, h, &off), -1);
	}
	maglev_free(m);
}

/* Backend name a key maps to, or NULL when none is eligible. */
static const char *lookup_name(const struct maglev *m, const struct pool *p, uint64_t h,
                               const bool *eligible)
{
	int b = maglev_lookup(m, h, eligible);

	cr_assert(b >= -1 && b < (int)p->n);
	return b < 0 ? NULL : p->names[b];
}

/* eligible flags in dst's order for the backends that are eligible in src (by name). */
static void eligible_by_name(bool *dst, const struct pool *dp, const bool *src,
                             const struct pool *sp)
{
	for (size_t i = 0; i < dp->n; i++) {
		dst[i] = false;
		for (size_t j = 0; j < sp->n; j++) {
			if (strcmp(dp->names[i], sp->names[j]) == 0)
				dst[i] = src[j];
		}
	}
}

Test(maglev, input_order_does_not_matter)
{
	struct pool a, b;
	bool ea[T_MAX_N], eb[T_MAX_N];
	uint64_t s = T_SEED;

	pool_init(&a, 50, 1);
	pool_random_weights(&a, T_WEIGHT_RS);
	pool_shuffled(&b, &a, 99);
	cr_assert_neq(strcmp(a.names[0], b.names[0]), 0, "shuffle left the order alone");

	struct maglev *ma = pool_build(&a, T_SEED, 0), *mb = pool_build(&b, T_SEED, 0);
	cr_assert_eq(maglev_size(ma), maglev_size(mb));
	for (uint32_t i = 0; i < maglev_size(ma); i++)
		cr_assert_str_eq(a.names[maglev_slot(ma, i)], b.names[maglev_slot(mb, i)]);

	/* The overlay and its rendezvous fallback are order-independent too. */
	for (size_t i = 0; i < a.n; i++)
		ea[i] = i % 10 == 3;
	eligible_by_name(eb, &b, ea, &a);
	for (int k = 0; k < T_KEYS; k++) {
		uint64_t h = next_u64(&s);
		cr_assert_str_eq(lookup_name(ma, &a, h, NULL), lookup_name(mb, &b, h, NULL));
		cr_assert_str_eq(lookup_name(ma, &a, h, ea), lookup_name(mb, &b, h, eb));
	}
	maglev_free(ma);
	maglev_free(mb);
}

Test(maglev, seed_changes_mapping)
{
	struct pool p;
	uint64_t s = T_SEED;
	int same = 0;

	pool_init(&p, 10, 1);
	struct maglev *m1 = pool_build(&p, 1, 0), *m2 = pool_build(&p, 2, 0);
	for (int k = 0; k < T_KEYS; k++) {
		uint64_t h = next_u64(&s);
		same += maglev_lookup(m1, h, NULL) == maglev_lookup(m2, h, NULL);
	}
	/* Independent tables agree on ≈ 1/n of the keys. */
	cr_assert_lt(same, T_KEYS / 10 * 1.2, "seeds 1 and 2 agree on %d of %d keys", same, T_KEYS);
	maglev_free(m1);
	maglev_free(m2);
}

/* ---- balance (exact, from the table) ---- */

static void check_shares(const struct pool *p, const struct maglev *m, double tolerance)
{
	double share[T_MAX_N];
	double total = pool_total_weight(p);

	slot_shares(m, share);
	for (size_t i = 0; i < p->n; i++) {
		double ratio = share[i] / (p->weights[i] / total);
		cr_assert(fabs(ratio - 1.0) <= tolerance,
		          "backend %zu (w=%u): share ratio %.4f, tolerance %.3f (n=%zu, M=%u)", i,
		          p->weights[i], ratio, tolerance, p->n, maglev_size(m));
	}
}

Test(maglev, unweighted_exact_share)
{
	static const size_t sizes[] = {10, 100};
	struct pool p;

	for (size_t k = 0; k < 2; k++) {
		pool_init(&p, sizes[k], 1);
		struct maglev *m = pool_build(&p, T_SEED, 0);
		check_shares(&p, m, 0.01);
		maglev_free(m);
	}
}

Test(maglev, weighted_exact_share)
{
	struct pool p;

	pool_init(&p, 20, 1);
	pool_random_weights(&p, T_WEIGHT_RS);
	struct maglev *m = pool_build(&p, T_SEED, 0);
	check_shares(&p, m, 0.02);
	maglev_free(m);
}

/* ---- eligibility overlay ---- */

Test(maglev, eject_one_moves_only_its_keys)
{
	enum { N = 10, EJECT = 3, KEYS = 10 * T_KEYS };
	struct pool p;
	bool eligible[N];
	double share[N];
	long got[N] = {0};
	long moved = 0;
	uint64_t s = T_SEED;

	pool_init(&p, N, 1);
	for (size_t i = 0; i < N; i++) {
		p.weights[i] = 10 * (unsigned)(i + 1); /* 10..100: spread must follow weight */
		eligible[i] = i != EJECT;
	}
	struct maglev *m = pool_build(&p, T_SEED, 0);
	slot_shares(m, share);
	for (int k = 0; k < KEYS; k++) {
		uint64_t h = next_u64(&s);
		int before = maglev_lookup(m, h, NULL), after = maglev_lookup(m, h, eligible);

		cr_assert_neq(after, EJECT);
		cr_assert(before == EJECT || after == before, "stray: key moved %d -> %d", before,
		          after);
		if (before == EJECT) {
			moved++;
			got[after]++;
		}
	}
	double ratio = (double)moved / KEYS / share[EJECT];
	cr_assert(fabs(ratio - 1.0) < 0.1, "moved %.4f of keys, share %.4f", (double)moved / KEYS,
	          share[EJECT]);

	double surviving = pool_total_weight(&p) - p.weights[EJECT];
	for (size_t i = 0; i < N; i++) {
		if (i == EJECT)
			continue;
		double want = moved * p.weights[i] / surviving;
		cr_assert(fabs(got[i] / want - 1.0) < 0.15,
		          "backend %zu (w=%u) received %ld of %ld moved keys, want %.0f", i,
		          p.weights[i], got[i], moved, want);
	}
	maglev_free(m);
}

Test(maglev, none_eligible)
{
	struct pool p;
	bool eligible[10] = {false};
	uint64_t s = T_SEED;

	pool_init(&p, 10, 1);
	struct maglev *m = pool_build(&p, T_SEED, 0);
	for (int k = 0; k < 10000; k++)
		cr_assert_eq(maglev_lookup(m, next_u64(&s), eligible), -1);
	maglev_free(m);
}

Test(maglev, only_one_eligible)
{
	struct pool p;
	bool eligible[10];
	uint64_t s = T_SEED;

	pool_init(&p, 10, 1);
	struct maglev *m = pool_build(&p, T_SEED, 0);
	for (int only = 0; only < 10; only++) {
		for (int i = 0; i < 10; i++)
			eligible[i] = i == only;
		/* 0.9^33 ≈ 3 % of these keys miss every probe and reach the fallback */
		for (int k = 0; k < 10000; k++)
			cr_assert_eq(maglev_lookup(m, next_u64(&s), eligible), only);
	}
	maglev_free(m);
}

Test(maglev, fallback_follows_weights)
{
	enum { N = 100, LIGHT = 10, HEAVY = 20 };
	struct pool p;
	bool eligible[N];
	long heavy = 0, resolved = 0;
	uint64_t s = T_SEED;

	/* Both eligible backends own ≈ 10 of 65537 slots, so nearly every key falls through
	 * the probes to the rendezvous fallback, which must split them 1:3 by weight. */
	pool_init(&p, N, MAGLEV_MAX_WEIGHT);
	p.weights[LIGHT] = 1;
	p.weights[HEAVY] = 3;
	for (size_t i = 0; i < N; i++)
		eligible[i] = i == LIGHT || i == HEAVY;
	struct maglev *m = pool_build(&p, T_SEED, MAGLEV_MIN_SIZE);
	for (int k = 0; k < T_KEYS; k++) {
		int b = maglev_lookup(m, next_u64(&s), eligible);

		cr_assert(b == LIGHT || b == HEAVY);
		heavy += b == HEAVY;
		resolved++;
	}
	double frac = (double)heavy / resolved;
	cr_assert(fabs(frac - 0.75) < 0.015, "heavy backend got %.4f, want 0.75", frac);
	maglev_free(m);
}

/* ---- rebuild disruption (exact, over all slots, compared by name) ---- */

static double moved_fraction(const struct maglev *a, const struct pool *pa, const struct maglev *b,
                             const struct pool *pb)
{
	uint32_t size = maglev_size(a), moved = 0;

	cr_assert_eq(size, maglev_size(b));
	for (uint32_t i = 0; i < size; i++)
		moved += strcmp(pa->names[maglev_slot(a, i)], pb->names[maglev_slot(b, i)]) != 0;
	return (double)moved / size;
}

Test(maglev, add_one_backend)
{
	struct pool p10, p11;
	double share[11];

	pool_init(&p10, 10, 1);
	pool_init(&p11, 11, 1);
	struct maglev *a = pool_build(&p10, T_SEED, MAGLEV_MIN_SIZE);
	struct maglev *b = pool_build(&p11, T_SEED, MAGLEV_MIN_SIZE);
	slot_shares(b, share);

	double moved = moved_fraction(a, &p10, b, &p11);
	/* research/hashing.md §4.3: 1.03× optimum at n=10, M=65537 */
	cr_assert_geq(moved, share[10], "the new backend's keys must have moved");
	cr_assert_leq(moved / (1.0 / 11), 1.2, "moved %.4f, optimum %.4f", moved, 1.0 / 11);
	maglev_free(a);
	maglev_free(b);
}

Test(maglev, remove_one_backend)
{
	struct pool full, less;
	double share[10];

	pool_init(&full, 10, 1);
	less = full;
	less.n = 9; /* drop bot-0004: move the last name into its place */
	memcpy(less.buf[4], less.buf[9], T_NAME_LEN);
	for (size_t i = 0; i < less.n; i++)
		less.names[i] = less.buf[i];
	struct maglev *a = pool_build(&full, T_SEED, MAGLEV_MIN_SIZE);
	struct maglev *b = pool_build(&less, T_SEED, MAGLEV_MIN_SIZE);
	slot_shares(a, share);

	double moved = moved_fraction(a, &full, b, &less);
	cr_assert_geq(moved, share[4], "the removed backend's keys must have moved");
	cr_assert_leq(moved / (1.0 / 10), 1.2, "moved %.4f, optimum %.4f", moved, 1.0 / 10);
	maglev_free(a);
	maglev_free(b);
}
