/*
 * placement (maglev, rendezvous, ring behind one ops table), the bounded-load cap of the
 * router, and the placement fingerprint (research/hashing.md §6, §7 method).
 *
 * For every algorithm: the mapping is a pure function of the configured set (input order
 * does not matter), weights are respected, the eligibility overlay moves only the keys of
 * the backend it skips. Rendezvous moves exactly the keys that must move on every change.
 * The ring reproduces nginx's `hash $key consistent`: known answers taken from nginx 1.22.1,
 * plus an independent reference implementation written from nginx's algorithm.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "hash.h"
#include "ketama.h"
#include "placement.h"
#include "pool.h"
#include "router.h"

#define T_MAX_N    64
#define T_TEXT     40
#define T_KEYS     100000
#define T_GOLDEN   0x9e3779b97f4a7c15ULL
#define T_WEIGHTS  777 /* weight generator seed, as research §7.1 */
#define T_CHI2_MAX 2.5 /* χ²/dof bound: about 3σ above 1 at 9 degrees of freedom */

static const enum rl_hash kinds[] = {RL_HASH_MAGLEV, RL_HASH_RENDEZVOUS, RL_HASH_RING};
#define T_KINDS (sizeof(kinds) / sizeof(kinds[0]))

static uint64_t next_u64(uint64_t *state)
{
	*state += T_GOLDEN;
	return hash_mix64(*state); /* splitmix64 */
}

/* Backends bot-NNNN.svc with addresses 10.0.X.Y:8080, in caller order. */
struct set {
	size_t n;
	char name[T_MAX_N][T_TEXT];
	char addr[T_MAX_N][T_TEXT];
	struct placement_backend b[T_MAX_N];
};

static void set_init(struct set *s, size_t n, unsigned weight)
{
	cr_assert(n <= T_MAX_N);
	s->n = n;
	for (size_t i = 0; i < n; i++) {
		snprintf(s->name[i], T_TEXT, "bot-%04zu.svc", i);
		snprintf(s->addr[i], T_TEXT, "10.0.%zu.%zu:8080", i / 200, i % 200 + 1);
		s->b[i] = (struct placement_backend){s->name[i], s->addr[i], weight};
	}
}

/* Pointers into s->name/s->addr must follow the struct when it is copied. */
static void set_fix(struct set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		s->b[i].name = s->name[i];
		s->b[i].address = s->addr[i];
	}
}

static void set_random_weights(struct set *s, uint64_t seed)
{
	for (size_t i = 0; i < s->n; i++)
		s->b[i].weight = 1 + (unsigned)(next_u64(&seed) % 256);
}

/* Same backends, order shuffled (Fisher–Yates, fixed seed). */
static void set_shuffled(struct set *dst, const struct set *src, uint64_t seed)
{
	*dst = *src;
	for (size_t i = src->n - 1; i > 0; i--) {
		size_t j = (size_t)(next_u64(&seed) % (i + 1));
		char t[T_TEXT];
		unsigned w = dst->b[i].weight;

		memcpy(t, dst->name[i], T_TEXT);
		memcpy(dst->name[i], dst->name[j], T_TEXT);
		memcpy(dst->name[j], t, T_TEXT);
		memcpy(t, dst->addr[i], T_TEXT);
		memcpy(dst->addr[i], dst->addr[j], T_TEXT);
		memcpy(dst->addr[j], t, T_TEXT);
		dst->b[i].weight = dst->b[j].weight;
		dst->b[j].weight = w;
	}
	set_fix(dst);
}

static struct placement *build(enum rl_hash kind, const struct set *s, uint64_t seed)
{
	struct placement *pl = placement_new(kind, s->b, s->n, seed);

	cr_assert_not_null(pl, "%s: build failed (n=%zu)", conf_hash_name(kind), s->n);
	return pl;
}

/* Key i of the test stream: pre-hashed, as placement_lookup takes it. */
static uint64_t key_hash(uint64_t i)
{
	uint64_t state = i * 7919 + 1;

	return next_u64(&state);
}

static double chi2_per_dof(const unsigned *count, const double *expect_share, size_t n,
                           unsigned keys)
{
	double chi2 = 0;

	for (size_t i = 0; i < n; i++) {
		double e = expect_share[i] * keys;
		chi2 += (count[i] - e) * (count[i] - e) / e;
	}
	return chi2 / (double)(n - 1);
}

/* ---- the ops table ---- */

Test(placement, ops_table_covers_every_hash_setting)
{
	for (size_t k = 0; k < T_KINDS; k++) {
		const struct placement_ops *ops = placement_ops_of(kinds[k]);

		cr_assert_not_null(ops);
		cr_expect_eq(ops->kind, kinds[k]);
		cr_expect_str_eq(ops->name, conf_hash_name(kinds[k]));
		cr_expect(ops->build && ops->lookup && ops->free && ops->key_hash && ops->shares &&
		          ops->bytes && ops->describe);
	}
	cr_expect_null(placement_ops_of((enum rl_hash)99));
	cr_expect(!placement_ops_of(RL_HASH_RING)->seeded);
	cr_expect(placement_ops_of(RL_HASH_RING)->by_address);
}

Test(placement, bad_arguments)
{
	struct set s;

	set_init(&s, 3, 1);
	for (size_t k = 0; k < T_KINDS; k++) {
		cr_expect_null(placement_new(kinds[k], s.b, 0, 0));
		s.b[1].weight = 0;
		cr_expect_null(placement_new(kinds[k], s.b, 3, 0), "%s: weight 0",
		               conf_hash_name(kinds[k]));
		s.b[1].weight = 257;
		cr_expect_null(placement_new(kinds[k], s.b, 3, 0));
		s.b[1].weight = 1;
	}
	/* the identity must be unique: names for maglev and rendezvous, addresses for the ring */
	s.b[2].name = s.b[0].name;
	cr_expect_null(placement_new(RL_HASH_MAGLEV, s.b, 3, 0));
	cr_expect_null(placement_new(RL_HASH_RENDEZVOUS, s.b, 3, 0));
	set_fix(&s);
	s.b[2].address = s.b[0].address;
	cr_expect_null(placement_new(RL_HASH_RING, s.b, 3, 0));
	placement_free(NULL);
}

/* ---- order independence ---- */

Test(placement, same_set_same_mapping_whatever_the_order)
{
	struct set a, b;

	set_init(&a, 40, 1);
	set_random_weights(&a, T_WEIGHTS);
	set_shuffled(&b, &a, 42);
	for (size_t k = 0; k < T_KINDS; k++) {
		struct placement *pa = build(kinds[k], &a, 7), *pb = build(kinds[k], &b, 7);

		cr_expect_eq(pa->fingerprint, pb->fingerprint);
		for (uint64_t i = 0; i < 20000; i++) {
			uint64_t h = key_hash(i);
			int x = placement_lookup(pa, h, NULL), y = placement_lookup(pb, h, NULL);

			cr_assert(x >= 0 && y >= 0);
			cr_assert_str_eq(a.name[x], b.name[y], "%s: key %llu",
			                 conf_hash_name(kinds[k]), (unsigned long long)i);
		}
		placement_free(pa);
		placement_free(pb);
	}
}

/* ---- weights ---- */

/* Sampled counts over T_KEYS keys into count[]. */
static void sample(const struct placement *pl, const bool *eligible, unsigned *count)
{
	memset(count, 0, pl->n * sizeof(*count));
	for (uint64_t i = 0; i < T_KEYS; i++) {
		int b = placement_lookup(pl, key_hash(i), eligible);

		cr_assert(b >= 0 && (size_t)b < pl->n);
		count[b]++;
	}
}

Test(placement, maglev_and_rendezvous_follow_weights)
{
	struct set s;
	double expect[T_MAX_N], share[T_MAX_N], total = 0;
	unsigned count[T_MAX_N];

	set_init(&s, 10, 1);
	set_random_weights(&s, T_WEIGHTS);
	for (size_t i = 0; i < s.n; i++)
		total += s.b[i].weight;
	for (size_t i = 0; i < s.n; i++)
		expect[i] = s.b[i].weight / total;
	for (size_t k = 0; k < 2; k++) {
		struct placement *pl = build(kinds[k], &s, 0);

		sample(pl, NULL, count);
		double c = chi2_per_dof(count, expect, s.n, T_KEYS);
		cr_expect(c <= T_CHI2_MAX, "%s: chi2/dof %.2f", placement_name(pl), c);
		placement_shares(pl, share);
		for (size_t i = 0; i < s.n; i++)
			cr_expect(fabs(share[i] / expect[i] - 1) <= 0.01,
			          "%s: backend %zu share %.4f of %.4f", placement_name(pl), i,
			          share[i], expect[i]);
		placement_free(pl);
	}
}

/* The ring balances like a 160·w-point ring, and its counted arcs are what keys see. */
Test(placement, ring_follows_weights_roughly_and_its_arcs_are_exact)
{
	struct set s;
	double expect[T_MAX_N], share[T_MAX_N], total = 0, sum = 0;
	unsigned count[T_MAX_N];

	set_init(&s, 10, 1);
	set_random_weights(&s, T_WEIGHTS);
	for (size_t i = 0; i < s.n; i++)
		total += s.b[i].weight;
	struct placement *pl = build(RL_HASH_RING, &s, 0);

	placement_shares(pl, share);
	for (size_t i = 0; i < s.n; i++) {
		expect[i] = s.b[i].weight / total;
		sum += share[i];
		cr_expect(share[i] / expect[i] > 0.65 && share[i] / expect[i] < 1.35,
		          "backend %zu (w=%u): share %.4f, expected %.4f", i, s.b[i].weight,
		          share[i], expect[i]);
	}
	cr_expect(fabs(sum - 1) < 1e-9, "arcs sum to %.12f", sum);
	sample(pl, NULL, count);
	double c = chi2_per_dof(count, share, s.n, T_KEYS);
	cr_expect(c <= T_CHI2_MAX, "keys against the ring's own arcs: chi2/dof %.2f", c);
	placement_free(pl);
}

/* ---- eligibility overlay ---- */

Test(placement, skipping_a_backend_moves_only_its_keys)
{
	struct set s;
	bool eligible[T_MAX_N];
	unsigned got[T_MAX_N];

	set_init(&s, 20, 1);
	set_random_weights(&s, T_WEIGHTS);
	for (size_t k = 0; k < T_KINDS; k++) {
		struct placement *pl = build(kinds[k], &s, 3);
		size_t gone = 7, moved = 0, receivers = 0;

		memset(got, 0, sizeof(got));
		for (size_t i = 0; i < s.n; i++)
			eligible[i] = i != gone;
		for (uint64_t i = 0; i < T_KEYS; i++) {
			uint64_t h = key_hash(i);
			int before = placement_lookup(pl, h, NULL),
			    after = placement_lookup(pl, h, eligible);

			cr_assert_neq(after, (int)gone);
			if (before != (int)gone) {
				cr_assert_eq(after, before,
				             "%s: a key of an eligible backend moved",
				             placement_name(pl));
			} else {
				moved++;
				got[after]++;
			}
		}
		for (size_t i = 0; i < s.n; i++)
			receivers += got[i] > 0;
		cr_expect_gt(moved, 0);
		/* the ring hands a backend's arcs to its clockwise neighbours, the others spread
		 * them over everyone */
		cr_expect_geq(receivers, kinds[k] == RL_HASH_RING ? 5 : s.n - 1,
		              "%s: %zu receivers", placement_name(pl), receivers);
		placement_free(pl);
	}
}

Test(placement, nothing_eligible_is_minus_one)
{
	struct set s;
	bool none[T_MAX_N] = {false}, only[T_MAX_N] = {false};

	set_init(&s, 5, 2);
	only[3] = true;
	for (size_t k = 0; k < T_KINDS; k++) {
		struct placement *pl = build(kinds[k], &s, 0);

		for (uint64_t i = 0; i < 1000; i++) {
			cr_assert_eq(placement_lookup(pl, key_hash(i), none), -1);
			cr_assert_eq(placement_lookup(pl, key_hash(i), only), 3);
		}
		placement_free(pl);
	}
}

/* ---- configuration changes ---- */

/* Index of the backend named name in s, or -1. */
static int set_find(const struct set *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->b[i].name, name) == 0)
			return (int)i;
	return -1;
}

/*
 * Keys moved between a and b (matched by name), and whether every move involves
 * `changed` (as its old or new owner).
 */
static double moved_share(const struct placement *pa, const struct set *a,
                          const struct placement *pb, const struct set *b, const char *changed,
                          size_t *stray)
{
	size_t moved = 0;

	*stray = 0;
	for (uint64_t i = 0; i < T_KEYS; i++) {
		uint64_t h = key_hash(i);
		const char *x = a->b[placement_lookup(pa, h, NULL)].name;
		const char *y = b->b[placement_lookup(pb, h, NULL)].name;

		if (strcmp(x, y) == 0)
			continue;
		moved++;
		if (strcmp(x, changed) != 0 && strcmp(y, changed) != 0)
			(*stray)++;
	}
	return (double)moved / T_KEYS;
}

static double total_weight(const struct set *s)
{
	double w = 0;

	for (size_t i = 0; i < s->n; i++)
		w += s->b[i].weight;
	return w;
}

/* Rendezvous and the ring move exactly the keys that must move; rendezvous exactly as
 * many as the weights say. */
Test(placement, add_remove_and_reweigh_move_only_the_changed_backend)
{
	struct set base, added, removed, reweighed;
	size_t stray;

	set_init(&base, 12, 1);
	set_random_weights(&base, T_WEIGHTS);
	set_init(&added, 13, 1);
	set_random_weights(&added, T_WEIGHTS); /* the same 12 weights, then one more */
	removed = base;
	set_fix(&removed);
	removed.b[5] = removed.b[11]; /* bot-0005 goes */
	removed.n = 11;
	reweighed = base;
	set_fix(&reweighed);
	reweighed.b[4].weight = base.b[4].weight / 2 + 1;

	for (size_t k = 1; k < T_KINDS; k++) {
		struct placement *p0 = build(kinds[k], &base, 9), *p1 = build(kinds[k], &added, 9);
		struct placement *p2 = build(kinds[k], &removed, 9);
		struct placement *p3 = build(kinds[k], &reweighed, 9);
		double w = total_weight(&base), wn = added.b[12].weight, m;
		const char *name = placement_name(p0);

		m = moved_share(p0, &base, p1, &added, added.b[12].name, &stray);
		cr_expect_eq(stray, 0, "%s add: %zu keys moved between unchanged backends", name,
		             stray);
		if (kinds[k] == RL_HASH_RENDEZVOUS)
			cr_expect(fabs(m - wn / (w + wn)) < 0.01, "add moved %.4f, optimum %.4f", m,
			          wn / (w + wn));
		m = moved_share(p0, &base, p2, &removed, base.b[5].name, &stray);
		cr_expect_eq(stray, 0, "%s remove: %zu stray", name, stray);
		if (kinds[k] == RL_HASH_RENDEZVOUS)
			cr_expect(fabs(m - base.b[5].weight / w) < 0.01, "remove moved %.4f", m);
		m = moved_share(p0, &base, p3, &reweighed, base.b[4].name, &stray);
		cr_expect_eq(stray, 0, "%s weight change: %zu stray", name, stray);
		cr_expect_gt(m, 0);
		placement_free(p0);
		placement_free(p1);
		placement_free(p2);
		placement_free(p3);
	}
	cr_expect_eq(set_find(&removed, base.b[5].name), -1);
}

/* ---- key-space comparison (POST /preview) ---- */

Test(placement, compare_matches_counted_moves)
{
	struct set base, added;
	size_t amap[T_MAX_N], bmap[T_MAX_N], stray;
	double before[T_MAX_N], after[T_MAX_N], stay[T_MAX_N];
	bool exact;

	set_init(&base, 12, 1);
	set_random_weights(&base, T_WEIGHTS);
	set_init(&added, 13, 1);
	set_random_weights(&added, T_WEIGHTS);
	for (size_t i = 0; i < added.n; i++)
		amap[i] = bmap[i] = i; /* same names at the same indexes, one more in added */
	for (size_t k = 0; k < T_KINDS; k++) {
		struct placement *p0 = build(kinds[k], &base, 5), *p1 = build(kinds[k], &added, 5);
		double kept = 0,
		       counted = moved_share(p0, &base, p1, &added, added.name[12], &stray);

		cr_assert_eq(
		        placement_compare(p0, amap, p1, bmap, added.n, before, after, stay, &exact),
		        0);
		for (size_t e = 0; e < added.n; e++)
			kept += stay[e];
		cr_expect_eq(exact, kinds[k] != RL_HASH_RENDEZVOUS, "%s", placement_name(p0));
		cr_expect(fabs((1 - kept) - counted) < 0.01,
		          "%s: compare says %.4f moved, %.4f counted", placement_name(p0), 1 - kept,
		          counted);
		cr_expect(before[12] == 0 && after[12] > 0);
		/* against itself nothing moves */
		cr_assert_eq(
		        placement_compare(p0, amap, p0, amap, base.n, before, after, stay, &exact),
		        0);
		kept = 0;
		for (size_t e = 0; e < base.n; e++)
			kept += stay[e];
		cr_expect(fabs(kept - 1) < 1e-9, "%s: %.12f kept against itself",
		          placement_name(p0), kept);
		placement_free(p0);
		placement_free(p1);
	}
}

/* ---- the ring is nginx's ---- */

Test(ring, crc32_check_value)
{
	cr_expect_eq(ketama_crc32("123456789", 9), 0xcbf43926u);
	cr_expect_eq(ketama_crc32("", 0), 0);
}

/*
 * Answers of nginx 1.22.1 (Debian 12) for `hash $arg_k consistent` over this upstream block,
 * recorded from real requests; 10.1.2.3:9104 was marked `down`:
 *   server 127.0.0.1:9101; server 127.0.0.1:9102 weight=2; server 127.0.0.1:9103;
 *   server 10.1.2.3:9104 down; server [::1]:9106 weight=2; server 127.0.0.1:9105 weight=3;
 * (The same run agreed with this implementation on 20,000 keys.)
 */
Test(ring, known_nginx_answers)
{
	const char *addr[] = {"127.0.0.1:9101", "127.0.0.1:9102", "127.0.0.1:9103",
	                      "10.1.2.3:9104",  "[::1]:9106",     "127.0.0.1:9105"};
	const unsigned weight[] = {1, 2, 1, 1, 2, 3};
	const bool up[] = {true, true, true, false, true, true};
	static const struct {
		const char *key;
		const char *port;
	} answers[] = {
	        {"alice", "9101"},   {"bob", "9103"},
	        {"carol", "9102"},   {"conv-1", "9105"},
	        {"conv-42", "9103"}, {"8d3e4f6a-1b2c-4d5e-9f00-112233445566", "9105"},
	        {"x", "9102"},       {"telegram:123456789", "9103"},
	};
	struct placement_backend b[6];

	for (size_t i = 0; i < 6; i++)
		b[i] = (struct placement_backend){addr[i], addr[i], weight[i]};
	struct placement *pl = placement_new(RL_HASH_RING, b, 6, 12345);
	cr_assert_not_null(pl);
	cr_expect_eq(ketama_points(pl->table), 160 * 10);
	for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
		const char *key = answers[i].key;
		int got = placement_lookup(pl, placement_key_hash(pl, key, strlen(key)), up);

		cr_assert_geq(got, 0);
		cr_expect_str_eq(strrchr(addr[got], ':') + 1, answers[i].port, "key %s", key);
	}
	placement_free(pl);
}

/* Independent reference: bitwise CRC32, every point kept in a flat list, linear search. */
static uint32_t ref_crc(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
	}
	return crc;
}

struct ref_point {
	uint32_t hash;
	size_t server;
};

static size_t ref_build(const char *const *addr, const unsigned *weight, size_t n,
                        struct ref_point *pt)
{
	size_t m = 0;

	for (size_t s = 0; s < n; s++) {
		const char *colon = strrchr(addr[s], ':');
		uint32_t prev = 0;
		unsigned char zero = 0;

		for (unsigned j = 0; j < weight[s] * 160; j++) {
			uint32_t c = ref_crc(0xffffffffu, addr[s], (size_t)(colon - addr[s]));
			unsigned char le[4] = {(unsigned char)prev, (unsigned char)(prev >> 8),
			                       (unsigned char)(prev >> 16),
			                       (unsigned char)(prev >> 24)};

			c = ref_crc(c, &zero, 1);
			c = ref_crc(c, colon + 1, strlen(colon + 1));
			prev = ref_crc(c, le, 4) ^ 0xffffffffu;
			pt[m++] = (struct ref_point){prev, s};
		}
	}
	return m;
}

/* The server of the smallest point >= h (the smaller address on a tie), else of the smallest. */
static size_t ref_lookup(const struct ref_point *pt, size_t m, const char *const *addr, uint32_t h)
{
	const struct ref_point *best = NULL, *low = &pt[0];

	for (size_t i = 0; i < m; i++) {
		const struct ref_point *p = &pt[i];

		if (p->hash < low->hash ||
		    (p->hash == low->hash && strcmp(addr[p->server], addr[low->server]) < 0))
			low = p;
		if (p->hash >= h &&
		    (best == NULL || p->hash < best->hash ||
		     (p->hash == best->hash && strcmp(addr[p->server], addr[best->server]) < 0)))
			best = p;
	}
	return (best != NULL ? best : low)->server;
}

Test(ring, matches_an_independent_reference)
{
	enum { N = 7, KEYS = 3000 };
	const char *addr[N] = {"192.168.0.10:80",   "192.168.0.11:80", "10.0.0.1:8080",
	                       "[2001:db8::1]:443", "127.0.0.1:9001",  "127.0.0.1:9002",
	                       "172.16.5.4:65535"};
	unsigned weight[N] = {1, 1, 3, 2, 5, 1, 4};
	struct ref_point *pt = malloc(sizeof(*pt) * 160 * 17);
	struct ketama *k = ketama_build(addr, weight, N);
	size_t m;
	char key[64];

	cr_assert_not_null(pt);
	cr_assert_not_null(k);
	m = ref_build(addr, weight, N, pt);
	cr_expect_eq(m, 160 * 17);
	for (int i = 0; i < KEYS; i++) {
		snprintf(key, sizeof(key), i % 3 ? "conv-%d" : "%08x-user", i);
		uint32_t h = ref_crc(0xffffffffu, key, strlen(key)) ^ 0xffffffffu;

		cr_assert_eq(ketama_crc32(key, strlen(key)), h);
		cr_assert_eq((size_t)ketama_lookup(k, h, NULL), ref_lookup(pt, m, addr, h),
		             "key %s", key);
	}
	free(pt);
	ketama_free(k);
}

/* ---- fingerprint ---- */

static uint64_t fp_of(enum rl_hash kind, const struct set *s, uint64_t seed)
{
	return placement_fingerprint(kind, s->b, s->n, seed);
}

Test(fingerprint, follows_what_decides_the_mapping)
{
	struct set s, t;
	char hex[PLACEMENT_FINGERPRINT_HEX + 1];

	set_init(&s, 8, 2);
	for (size_t k = 0; k < T_KINDS; k++) {
		enum rl_hash kind = kinds[k];
		uint64_t fp = fp_of(kind, &s, 1);

		set_shuffled(&t, &s, 99);
		cr_expect_eq(fp_of(kind, &t, 1), fp, "file order changed the fingerprint");
		t = s;
		set_fix(&t);
		t.b[3].weight = 3;
		cr_expect_neq(fp_of(kind, &t, 1), fp, "weight");
		t = s;
		set_fix(&t);
		snprintf(t.name[3], T_TEXT, "bot-renamed");
		cr_expect_neq(fp_of(kind, &t, 1), fp, "name");
		t = s;
		set_fix(&t);
		t.n = 7;
		cr_expect_neq(fp_of(kind, &t, 1), fp, "a backend fewer");
		t = s;
		set_fix(&t);
		snprintf(t.addr[3], T_TEXT, "10.9.9.9:8080");
		if (kind == RL_HASH_RING)
			cr_expect_neq(fp_of(kind, &t, 1), fp, "ring: address");
		else
			cr_expect_eq(fp_of(kind, &t, 1), fp, "%s: the address is not on the hash",
			             conf_hash_name(kind));
		if (kind == RL_HASH_RING)
			cr_expect_eq(fp_of(kind, &s, 2), fp, "ring: hash_seed does not apply");
		else
			cr_expect_neq(fp_of(kind, &s, 2), fp, "%s: seed", conf_hash_name(kind));
		for (size_t j = 0; j < T_KINDS; j++)
			if (j != k)
				cr_expect_neq(fp_of(kinds[j], &s, 1), fp, "algorithm");
	}
	placement_fingerprint_hex(0x3f2a00000000000bULL, hex);
	cr_expect_str_eq(hex, "3f2a00000000000b");
}

/* ---- through the pool and the router ---- */

static struct rl_pool *pool_from(const char *routing, int nbackends)
{
	char text[4096];
	size_t len;
	struct conf_errors errs = {0};
	struct rl_conf *c;
	struct rl_pool *p;

	len = (size_t)snprintf(text, sizeof(text), "[routing]\naffinity_max = 100000\n%s\n",
	                       routing);
	for (int i = 0; i < nbackends; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len,
		                        "[backend %c]\naddress = 127.0.0.1:%d\n", 'a' + i,
		                        9001 + i);
	c = conf_load_string(text, "t.ini", &errs);
	for (size_t i = 0; i < errs.n; i++)
		cr_log_error("%s", errs.msg[i]);
	conf_errors_free(&errs);
	cr_assert_not_null(c);
	p = pool_new(c, NULL);
	cr_assert_not_null(p);
	return p;
}

static struct router_request request(const struct rl_pool *p, const char *key, uint64_t now_ms)
{
	return (struct router_request){.has_key = true,
	                               .key_hash = router_key_hash(p, key, strlen(key)),
	                               .pin_key = router_pin_key(p, key, strlen(key)),
	                               .now_ms = now_ms};
}

static struct router_choice route(const struct rl_pool *p, const char *key)
{
	bool scratch[CONF_MAX_BACKENDS];
	struct util_rng rng;
	struct router_request rq = request(p, key, 1000);

	util_rng_seed(&rng);
	return router_route(p, &rq, NULL, scratch, &rng);
}

static struct router_choice select_key(const struct rl_pool *p, const char *key)
{
	bool scratch[CONF_MAX_BACKENDS];
	struct util_rng rng;
	struct router_request rq = request(p, key, 1000);

	util_rng_seed(&rng);
	return router_select(p, &rq, NULL, scratch, &rng);
}

static void set_pinned(struct rl_pool *p, unsigned a, unsigned b, unsigned c)
{
	atomic_store(&p->b[0].rt->pinned, a);
	atomic_store(&p->b[1].rt->pinned, b);
	atomic_store(&p->b[2].rt->pinned, c);
}

Test(router_hash, every_algorithm_routes_and_skips_down_backends)
{
	const char *settings[] = {"hash = maglev", "hash = rendezvous", "hash = ring"};
	char key[32];

	for (size_t k = 0; k < 3; k++) {
		struct rl_pool *p = pool_from(settings[k], 4);
		int before[500];
		unsigned seen[4] = {0};

		cr_expect_str_eq(placement_name(p->placement), conf_hash_name(kinds[k]));
		for (int i = 0; i < 500; i++) {
			snprintf(key, sizeof(key), "conv-%d", i);
			before[i] = select_key(p, key).backend;
			cr_assert_geq(before[i], 0);
			seen[before[i]]++;
		}
		for (int b = 0; b < 4; b++)
			cr_expect_gt(seen[b], 50, "%s: backend %d got %u of 500", settings[k], b,
			             seen[b]);
		atomic_store(&p->b[2].rt->down, true);
		for (int i = 0; i < 500; i++) {
			snprintf(key, sizeof(key), "conv-%d", i);
			int now = select_key(p, key).backend;
			cr_assert_neq(now, 2);
			if (before[i] != 2)
				cr_assert_eq(now, before[i], "%s: key %d moved", settings[k], i);
		}
		pool_unref(p);
	}
}

Test(router_hash, ring_keys_hash_like_nginx_and_ignore_the_seed)
{
	struct rl_pool *p = pool_from("hash = ring\nhash_seed = 77", 3);
	struct rl_pool *q = pool_from("hash = maglev\nhash_seed = 77", 3);

	cr_expect_eq(router_key_hash(p, "alice", 5), ketama_crc32("alice", 5));
	cr_expect_eq(router_key_hash(q, "alice", 5), hash64("alice", 5, 77));
	pool_unref(p);
	pool_unref(q);
}

Test(router_hash, pool_carries_the_fingerprint_of_its_configuration)
{
	struct rl_pool *p = pool_from("hash = rendezvous\nhash_seed = 5", 3);
	struct placement *again = placement_from_conf(p->conf);

	cr_assert_not_null(again);
	cr_expect_eq(p->placement->fingerprint, again->fingerprint);
	cr_expect_neq(p->placement->fingerprint, 0);
	placement_free(again);
	pool_unref(p);
}

/* ---- bounded load ---- */

/* A key that the placement (no cap) sends to backend want. */
static void key_for(const struct rl_pool *p, int want, char *key, size_t cap)
{
	for (int i = 0; i < 10000; i++) {
		snprintf(key, cap, "find-%d", i);
		uint64_t h = router_key_hash(p, key, strlen(key));
		if (placement_lookup(p->placement, h, NULL) == want)
			return;
	}
	cr_assert_fail("no key for backend %d", want);
}

Test(bounded_load, new_conversations_avoid_a_backend_over_its_cap)
{
	const char *settings[] = {"balance_factor = 1.25\nhash = maglev",
	                          "balance_factor = 1.25\nhash = rendezvous",
	                          "balance_factor = 1.25\nhash = ring"};
	char key[32];

	for (size_t k = 0; k < 3; k++) {
		struct rl_pool *p = pool_from(settings[k], 3);
		unsigned seen[3] = {0};

		/* L = 100 pins: cap = ceil(1.25·101/3) = 43, a holds 100 */
		set_pinned(p, 100, 0, 0);
		for (int i = 0; i < 600; i++) {
			snprintf(key, sizeof(key), "new-%d", i);
			struct router_choice c = select_key(p, key);
			cr_assert_geq(c.backend, 0);
			cr_assert_eq(c.reason, ROUTER_HASHED);
			seen[c.backend]++;
		}
		cr_expect_eq(seen[0], 0, "%s: %u new conversations went to the full backend",
		             settings[k], seen[0]);
		cr_expect(seen[1] > 100 && seen[2] > 100);
		pool_unref(p);
	}
}

Test(bounded_load, cap_is_ceil_of_factor_times_average_by_weight)
{
	struct rl_pool *p = pool_from("balance_factor = 1.25", 3);
	char key[32];

	key_for(p, 0, key, sizeof(key));
	/* L = 30, cap = ceil(1.25·31/3) = 13: 12 + 1 fits, 13 + 1 does not */
	set_pinned(p, 12, 10, 8);
	cr_expect_eq(select_key(p, key).backend, 0);
	set_pinned(p, 13, 10, 7);
	cr_expect_neq(select_key(p, key).backend, 0);
	/* without pins nobody is full */
	set_pinned(p, 0, 0, 0);
	cr_expect_eq(select_key(p, key).backend, 0);
	pool_unref(p);

	/* balance_factor = 0: no cap at all */
	p = pool_from("balance_factor = 0", 3);
	key_for(p, 0, key, sizeof(key));
	set_pinned(p, 1000, 0, 0);
	cr_expect_eq(select_key(p, key).backend, 0);
	pool_unref(p);
}

Test(bounded_load, a_pinned_conversation_is_never_moved_for_load)
{
	struct rl_pool *p = pool_from("balance_factor = 1.25", 3);
	char key[32];
	struct router_choice c;

	key_for(p, 0, key, sizeof(key));
	c = route(p, key);
	cr_assert_eq(c.backend, 0);
	cr_assert_eq(c.reason, ROUTER_HASHED);
	cr_expect_eq(atomic_load(&p->b[0].rt->pinned), 1, "a new pin is counted");
	set_pinned(p, 500, 0, 0); /* far over its cap */
	for (int i = 0; i < 10; i++) {
		c = route(p, key);
		cr_assert_eq(c.backend, 0);
		cr_assert_eq(c.reason, ROUTER_PINNED);
	}
	/* a failover re-pins through the capped placement and moves the count */
	atomic_store(&p->b[0].rt->down, true);
	c = route(p, key);
	cr_assert_eq(c.reason, ROUTER_REPINNED);
	cr_assert_neq(c.backend, 0);
	cr_expect_eq(atomic_load(&p->b[0].rt->pinned), 499);
	cr_expect_eq(atomic_load(&p->b[c.backend].rt->pinned), 1);
	pool_unref(p);
}

Test(bounded_load, live_load_stays_under_the_cap)
{
	struct rl_pool *p = pool_from("balance_factor = 1.25", 3);
	char key[32];
	unsigned live[3];

	/* a starts with 60 live conversations (say, from before a reload), then 240 arrive:
	 * uncapped, a would end near 60 + 80 = 140 */
	set_pinned(p, 60, 0, 0);
	for (int i = 0; i < 240; i++) {
		snprintf(key, sizeof(key), "conv-%d", i);
		cr_assert_geq(route(p, key).backend, 0);
	}
	for (int b = 0; b < 3; b++) {
		live[b] = atomic_load(&p->b[b].rt->pinned);
		cr_expect_leq(live[b], (unsigned)ceil(1.25 * 300 / 3), "backend %d holds %u", b,
		              live[b]);
	}
	cr_expect_eq(live[0] + live[1] + live[2], 300);
	/* the lifecycle tick recounts from the pin table, which holds the 240 real pins */
	pool_lifecycle_tick(p, 1000);
	cr_expect_eq(atomic_load(&p->b[0].rt->pinned) + atomic_load(&p->b[1].rt->pinned) +
	                     atomic_load(&p->b[2].rt->pinned),
	             240);
	cr_expect_eq(atomic_load(&p->b[0].rt->pinned), live[0] - 60);
	cr_expect_eq(atomic_load(&p->b[1].rt->pinned), live[1]);
	pool_unref(p);
}
