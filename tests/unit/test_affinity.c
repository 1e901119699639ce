/*
 * Unit tests for proxy/affinity.c: pin/lookup/unpin, re-pin, idle TTL (on lookup, by the
 * budgeted sweep, refreshed by hits, changed by reload), LRU eviction by use rather than by
 * insertion, per-backend counts and unpins, argument checks, a randomized single-shard run
 * against a reference model, and threads sharing one table.
 * Time is a plain counter: every call gets now_ms from the test.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "affinity.h"
#include "hash.h"

#define T_SEED    0x5eedULL
#define T_GOLDEN  0x9e3779b97f4a7c15ULL
#define T_TTL     1000u  /* ms */
#define T_BIG     100000 /* a table that never fills in these tests */
#define T_BACKEND 7u

/* Key of conversation i, hashed the way the proxy hashes conversation ids. */
static struct hash128 key(uint64_t i)
{
	char id[32];
	int n = snprintf(id, sizeof(id), "conv-%llu", (unsigned long long)i);

	return hash128(id, (size_t)n, T_SEED);
}

static uint64_t next_u64(uint64_t *state)
{
	*state += T_GOLDEN;
	return hash_mix64(*state); /* splitmix64 */
}

static struct affinity *table(size_t max, uint64_t ttl, unsigned shards)
{
	struct affinity *a = affinity_new_sharded(max, ttl, shards);

	cr_assert_not_null(a, "affinity_new_sharded(%zu, %llu, %u)", max, (unsigned long long)ttl,
	                   shards);
	return a;
}

/* Assert key i is pinned to backend want at now. */
static void expect_pin(struct affinity *a, uint64_t i, uint64_t now, uint32_t want)
{
	uint32_t got = UINT32_MAX;

	cr_assert(affinity_lookup(a, key(i), now, &got), "key %llu not pinned at %llu",
	          (unsigned long long)i, (unsigned long long)now);
	cr_assert_eq(got, want, "key %llu pinned to %u, want %u", (unsigned long long)i, got, want);
}

static void expect_miss(struct affinity *a, uint64_t i, uint64_t now)
{
	uint32_t got = UINT32_MAX;

	cr_assert_not(affinity_lookup(a, key(i), now, &got), "key %llu still pinned (to %u)",
	              (unsigned long long)i, got);
}

static struct affinity_stats stats(const struct affinity *a)
{
	struct affinity_stats s;

	affinity_get_stats(a, &s);
	return s;
}

/* ---- basic pins ---- */

Test(affinity, pin_then_lookup)
{
	struct affinity *a = affinity_new(T_BIG, T_TTL);

	cr_assert_not_null(a);
	expect_miss(a, 1, 0);
	affinity_pin(a, key(1), T_BACKEND, 0);
	expect_pin(a, 1, 10, T_BACKEND);
	cr_assert_eq(affinity_count(a), 1);
	cr_assert_eq(stats(a).hits, 1);
	cr_assert_eq(stats(a).misses, 1);
	affinity_free(a);
}

/* The largest table (about 40 GB of address space, more than this machine's RAM) is made,
 * used and freed: its memory is reserved, not committed, and touched only as pins arrive. */
Test(affinity, the_largest_table_starts_without_committing_its_memory)
{
	struct affinity *a = affinity_new(AFFINITY_MAX_ENTRIES, T_TTL);

	cr_assert_not_null(a);
	affinity_pin(a, key(1), T_BACKEND, 0);
	expect_pin(a, 1, 10, T_BACKEND);
	affinity_free(a);
}

Test(affinity, different_keys_are_independent)
{
	struct affinity *a = affinity_new(T_BIG, T_TTL);

	for (uint32_t i = 0; i < 1000; i++)
		affinity_pin(a, key(i), i % 13, 0);
	for (uint32_t i = 0; i < 1000; i++)
		expect_pin(a, i, 1, i % 13);
	expect_miss(a, 1000, 1);
	cr_assert(affinity_unpin(a, key(500)));
	expect_miss(a, 500, 2);
	expect_pin(a, 499, 2, 499 % 13);
	expect_pin(a, 501, 2, 501 % 13);
	cr_assert_eq(affinity_count(a), 999);
	affinity_free(a);
}

Test(affinity, repin_overwrites)
{
	struct affinity *a = affinity_new(T_BIG, T_TTL);

	affinity_pin(a, key(1), 1, 0);
	affinity_pin(a, key(1), 2, 1);
	expect_pin(a, 1, 2, 2);
	cr_assert_eq(affinity_count(a), 1, "a re-pin must not add an entry");
	cr_assert_eq(stats(a).inserts, 1);
	cr_assert_eq(stats(a).repins, 1);
	affinity_free(a);
}

Test(affinity, unpin_reports_whether_pinned)
{
	struct affinity *a = affinity_new(T_BIG, T_TTL);

	cr_assert_not(affinity_unpin(a, key(1)));
	affinity_pin(a, key(1), 1, 0);
	cr_assert(affinity_unpin(a, key(1)));
	cr_assert_not(affinity_unpin(a, key(1)));
	expect_miss(a, 1, 0);
	cr_assert_eq(affinity_count(a), 0);
	cr_assert_eq(stats(a).unpins, 1);
	affinity_free(a);
}

/* ---- idle TTL ---- */

Test(affinity, expires_on_lookup_after_ttl)
{
	struct affinity *a = affinity_new(T_BIG, T_TTL);

	affinity_pin(a, key(1), 1, 100);
	affinity_pin(a, key(2), 2, 100);
	expect_pin(a, 1, 100 + T_TTL, 1);   /* idle exactly ttl: still live */
	expect_miss(a, 2, 100 + T_TTL + 1); /* idle past ttl */
	cr_assert_eq(affinity_count(a), 1, "the expired pin is removed by the lookup");
	cr_assert_eq(stats(a).expirations, 1);
	affinity_free(a);
}

Test(affinity, lookup_refreshes_last_seen)
{
	struct affinity *a = affinity_new(T_BIG, T_TTL);

	affinity_pin(a, key(1), 1, 0);
	expect_pin(a, 1, T_TTL, 1);
	expect_pin(a, 1, 2 * T_TTL, 1); /* 2·ttl after the pin, ttl after the last hit */
	expect_pin(a, 1, 3 * T_TTL, 1);
	expect_miss(a, 1, 4 * T_TTL + 1);
	affinity_free(a);
}

Test(affinity, repin_refreshes_last_seen)
{
	struct affinity *a = affinity_new(T_BIG, T_TTL);

	affinity_pin(a, key(1), 1, 0);
	affinity_pin(a, key(1), 1, T_TTL);
	expect_pin(a, 1, 2 * T_TTL, 1);
	affinity_free(a);
}

Test(affinity, ttl_never_keeps_pins)
{
	struct affinity *a = affinity_new(T_BIG, AFFINITY_TTL_NEVER);

	affinity_pin(a, key(1), 1, 0);
	expect_pin(a, 1, UINT64_MAX / 2, 1);
	cr_assert_eq(affinity_expire(a, UINT64_MAX, 10), 0);
	affinity_free(a);
}

Test(affinity, set_ttl_applies_to_existing_pins)
{
	struct affinity *a = affinity_new(T_BIG, T_TTL);

	affinity_pin(a, key(1), 1, 0);
	affinity_pin(a, key(2), 2, 0);
	expect_pin(a, 1, T_TTL / 2, 1);
	affinity_set_ttl(a, T_TTL / 4);
	expect_miss(a, 2, T_TTL / 2); /* idle ttl/2 > new ttl */
	affinity_set_ttl(a, 10 * T_TTL);
	expect_pin(a, 1, 5 * T_TTL, 1);
	affinity_free(a);
}

Test(affinity, time_going_back_does_not_expire_or_reorder)
{
	struct affinity *a = table(2, T_TTL, 1);

	affinity_pin(a, key(1), 1, 5000);
	affinity_pin(a, key(2), 2, 100); /* a late thread: stamped 5000, newest */
	expect_pin(a, 1, 50, 1);         /* key 1 newest now */
	affinity_pin(a, key(3), 3, 5001);
	expect_miss(a, 2, 5002); /* key 2 was least recently used */
	expect_pin(a, 1, 5000 + T_TTL, 1);
	affinity_free(a);
}

Test(affinity, expire_removes_only_expired_within_budget)
{
	enum { OLD = 1000, FRESH = 200, BUDGET = 7 };
	struct affinity *a = affinity_new(T_BIG, T_TTL); /* many shards: the sweep must resume */
	uint64_t now = T_TTL + 1;
	size_t total = 0, n;

	cr_assert_gt(stats(a).shards, 1);
	for (uint32_t i = 0; i < OLD; i++)
		affinity_pin(a, key(i), 1, 0);
	for (uint32_t i = OLD; i < OLD + FRESH; i++)
		affinity_pin(a, key(i), 2, 1);
	cr_assert_eq(affinity_expire(a, now, 0), 0);
	while ((n = affinity_expire(a, now, BUDGET)) > 0) {
		cr_assert_leq(n, BUDGET);
		total += n;
		cr_assert_eq(affinity_count(a), OLD + FRESH - total);
	}
	cr_assert_eq(total, OLD, "every expired pin and nothing else is swept");
	cr_assert_eq(stats(a).expirations, OLD);
	for (uint32_t i = OLD; i < OLD + FRESH; i++)
		expect_pin(a, i, now, 2);
	affinity_free(a);
}

/* ---- LRU bound ---- */

Test(affinity, full_shard_evicts_least_recently_used)
{
	struct affinity *a = table(4, T_TTL, 1);

	for (uint32_t i = 0; i < 4; i++)
		affinity_pin(a, key(i), i, i);
	expect_pin(a, 0, 4, 0); /* touch the oldest: key 1 is now least recently used */
	affinity_pin(a, key(4), 4, 5);
	expect_miss(a, 1, 6);
	expect_pin(a, 0, 6, 0);
	expect_pin(a, 2, 6, 2);
	expect_pin(a, 3, 6, 3);
	expect_pin(a, 4, 6, 4);
	cr_assert_eq(stats(a).evictions, 1);
	cr_assert_eq(affinity_count(a), 4);
	affinity_free(a);
}

Test(affinity, full_shard_drops_expired_tail_as_expiration)
{
	struct affinity *a = table(2, T_TTL, 1);

	affinity_pin(a, key(1), 1, 0);
	affinity_pin(a, key(2), 2, T_TTL + 10);
	affinity_pin(a, key(3), 3, T_TTL + 20);
	cr_assert_eq(stats(a).expirations, 1);
	cr_assert_eq(stats(a).evictions, 0);
	affinity_free(a);
}

Test(affinity, small_table_keeps_the_most_recent)
{
	enum { MAX = 10, KEYS = 100 };
	struct affinity *a = affinity_new(MAX, T_TTL);

	cr_assert_eq(stats(a).shards, 1, "a small table is one shard");
	for (uint32_t i = 0; i < KEYS; i++)
		affinity_pin(a, key(i), i, i);
	cr_assert_eq(affinity_count(a), MAX);
	cr_assert_eq(stats(a).evictions, KEYS - MAX);
	for (uint32_t i = 0; i < KEYS - MAX; i++)
		expect_miss(a, i, KEYS);
	for (uint32_t i = KEYS - MAX; i < KEYS; i++)
		expect_pin(a, i, KEYS, i);
	affinity_free(a);
}

Test(affinity, sharded_table_never_exceeds_max)
{
	enum { MAX = 5000, KEYS = 50000 };
	struct affinity *a = affinity_new(MAX, T_TTL);

	cr_assert_gt(stats(a).shards, 1);
	for (uint32_t i = 0; i < KEYS; i++)
		affinity_pin(a, key(i), 1, 0);
	cr_assert_eq(affinity_count(a), MAX, "each shard full, none over");
	cr_assert_eq(stats(a).evictions, KEYS - MAX);
	affinity_free(a);
}

Test(affinity, one_entry_table)
{
	struct affinity *a = table(1, T_TTL, 1);

	affinity_pin(a, key(1), 1, 0);
	affinity_pin(a, key(1), 2, 1); /* re-pin in a full table evicts nothing */
	cr_assert_eq(stats(a).evictions, 0);
	expect_pin(a, 1, 2, 2);
	affinity_pin(a, key(2), 3, 3);
	expect_miss(a, 1, 4);
	expect_pin(a, 2, 4, 3);
	cr_assert(affinity_unpin(a, key(2)));
	cr_assert_eq(affinity_count(a), 0);
	affinity_pin(a, key(3), 4, 5); /* reuses the freed entry */
	expect_pin(a, 3, 6, 4);
	cr_assert_eq(affinity_count(a), 1);
	affinity_free(a);
}

Test(affinity, constructor_rejects_bad_arguments)
{
	cr_assert_null(affinity_new(0, T_TTL));
	cr_assert_null(affinity_new((size_t)AFFINITY_MAX_ENTRIES + 1, T_TTL));
	cr_assert_null(affinity_new_sharded(100, T_TTL, 3), "not a power of two");
	cr_assert_null(affinity_new_sharded(1000, T_TTL, 2 * AFFINITY_SHARDS_MAX));
	cr_assert_null(affinity_new_sharded(2, T_TTL, 4), "more shards than entries");
	affinity_free(NULL);
}

Test(affinity, auto_shard_count)
{
	struct affinity *a = affinity_new(1000000, T_TTL);

	cr_assert_eq(stats(a).shards, AFFINITY_SHARDS_MAX);
	cr_assert_eq(stats(a).capacity, 1000000);
	affinity_free(a);
	a = affinity_new(4 * AFFINITY_SHARD_MIN_ENTRIES, T_TTL);
	cr_assert_eq(stats(a).shards, 4);
	affinity_free(a);
}

/* ---- per-backend operations ---- */

Test(affinity, count_by_backend_counts_live_pins)
{
	enum { MAX_ID = 4 };
	struct affinity *a = affinity_new(T_BIG, T_TTL);
	size_t counts[MAX_ID] = {99, 99, 99, 99};
	uint64_t now = T_TTL + 50;

	for (uint32_t i = 0; i < 6; i++)
		affinity_pin(a, key(i), i < 3 ? 0 : i < 5 ? 1 : 2, 100);
	affinity_pin(a, key(6), 9, 100); /* id >= max_id: not counted */
	affinity_pin(a, key(7), 3, 0);   /* expired at now */
	affinity_count_by_backend(a, now, counts, MAX_ID);
	cr_assert_eq(counts[0], 3);
	cr_assert_eq(counts[1], 2);
	cr_assert_eq(counts[2], 1);
	cr_assert_eq(counts[3], 0, "expired pins are not live");
	affinity_free(a);
}

Test(affinity, unpin_backend_removes_only_its_pins)
{
	struct affinity *a = affinity_new(T_BIG, T_TTL);

	for (uint32_t i = 0; i < 3000; i++)
		affinity_pin(a, key(i), i % 3, 0);
	cr_assert_eq(affinity_unpin_backend(a, 1), 1000);
	cr_assert_eq(affinity_unpin_backend(a, 1), 0);
	cr_assert_eq(affinity_count(a), 2000);
	for (uint32_t i = 0; i < 3000; i++) {
		if (i % 3 == 1)
			expect_miss(a, i, 1);
		else
			expect_pin(a, i, 1, i % 3);
	}
	cr_assert_eq(stats(a).unpins, 1000);
	affinity_free(a);
}

Test(affinity, repin_backend_moves_only_its_pins)
{
	struct affinity *a = affinity_new(T_BIG, T_TTL);

	for (uint32_t i = 0; i < 300; i++)
		affinity_pin(a, key(i), i % 3, 0);
	cr_assert_eq(affinity_repin_backend(a, 1, 5), 100);
	for (uint32_t i = 0; i < 300; i++)
		expect_pin(a, i, 1, i % 3 == 1 ? 5 : i % 3);
	cr_assert_eq(affinity_count(a), 300);
	affinity_free(a);
}

/* ---- randomized single-shard run against a reference model ---- */

#define M_KEYS 200
#define M_CAP  64
#define M_OPS  200000
#define M_TTL  150 /* ops: keys idle that long expire now and then */

struct model {
	bool pinned[M_KEYS];
	uint32_t backend[M_KEYS];
	uint64_t seen[M_KEYS];
	size_t count;
};

static void model_drop_lru(struct model *m)
{
	size_t lru = M_KEYS;

	for (size_t k = 0; k < M_KEYS; k++)
		if (m->pinned[k] && (lru == M_KEYS || m->seen[k] < m->seen[lru]))
			lru = k;
	m->pinned[lru] = false;
	m->count--;
}

static void model_pin(struct model *m, size_t k, uint32_t b, uint64_t now)
{
	if (!m->pinned[k] && m->count == M_CAP)
		model_drop_lru(m);
	if (!m->pinned[k])
		m->count++;
	m->pinned[k] = true;
	m->backend[k] = b;
	m->seen[k] = now;
}

/* true and *b when live; an expired pin is dropped. */
static bool model_lookup(struct model *m, size_t k, uint64_t now, uint32_t *b)
{
	if (m->pinned[k] && now - m->seen[k] > M_TTL) {
		m->pinned[k] = false;
		m->count--;
	}
	if (!m->pinned[k])
		return false;
	m->seen[k] = now;
	*b = m->backend[k];
	return true;
}

Test(affinity, matches_reference_model)
{
	static struct model m;
	struct affinity *a = table(M_CAP, M_TTL, 1);
	uint64_t rng = T_SEED;

	for (uint64_t now = 1; now <= M_OPS; now++) {
		uint64_t r = next_u64(&rng);
		size_t k = (size_t)(r % M_KEYS);
		uint32_t want = 0, got = 0;

		switch ((r >> 32) % 4) {
		case 0:
		case 1:
			cr_assert_eq(affinity_lookup(a, key(k), now, &got),
			             model_lookup(&m, k, now, &want), "op %llu key %zu",
			             (unsigned long long)now, k);
			cr_assert_eq(got, want);
			break;
		case 2:
			affinity_pin(a, key(k), (uint32_t)(r >> 40), now);
			model_pin(&m, k, (uint32_t)(r >> 40), now);
			break;
		default:
			cr_assert_eq(affinity_unpin(a, key(k)), m.pinned[k]);
			if (m.pinned[k])
				m.count--;
			m.pinned[k] = false;
			break;
		}
		cr_assert_eq(affinity_count(a), m.count, "op %llu", (unsigned long long)now);
	}
	affinity_free(a);
}

/* ---- threads ---- */

#define C_THREADS 4
#define C_OPS     100000
#define C_KEYS    4096 /* per thread */

struct worker {
	struct affinity *a;
	uint32_t id;                 /* thread number, also its backend ids' base */
	uint32_t backend[C_KEYS];    /* expected pin, or UINT32_MAX */
	struct hash128 keys[C_KEYS]; /* this thread's own conversations */
	size_t wrong;                /* lookups that disagreed with backend[] */
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	uint64_t rng = T_SEED + w->id;

	for (uint64_t op = 0; op < C_OPS; op++) {
		uint64_t r = next_u64(&rng);
		size_t k = (size_t)(r % C_KEYS);
		uint32_t b = w->id * C_THREADS + (uint32_t)((r >> 32) % C_THREADS);
		uint32_t got;
		bool hit;

		switch ((r >> 48) % 3) {
		case 0:
			affinity_pin(w->a, w->keys[k], b, op);
			w->backend[k] = b;
			break;
		case 1:
			hit = affinity_lookup(w->a, w->keys[k], op, &got);
			w->wrong += hit ? got != w->backend[k] : w->backend[k] != UINT32_MAX;
			break;
		default:
			hit = affinity_unpin(w->a, w->keys[k]);
			w->wrong += hit != (w->backend[k] != UINT32_MAX);
			w->backend[k] = UINT32_MAX;
			break;
		}
	}
	return NULL;
}

static void workers_run(struct worker *w, size_t n)
{
	pthread_t t[C_THREADS];

	for (size_t i = 0; i < n; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(pthread_join(t[i], NULL), 0);
}

Test(affinity, threads_share_a_table_consistently, .timeout = 30)
{
	static struct worker w[C_THREADS];
	struct affinity *a = affinity_new(T_BIG, AFFINITY_TTL_NEVER);
	size_t expect = 0;

	for (uint32_t t = 0; t < C_THREADS; t++) {
		w[t].a = a;
		w[t].id = t;
		memset(w[t].backend, 0xff, sizeof(w[t].backend));
		for (size_t k = 0; k < C_KEYS; k++)
			w[t].keys[k] = key(t * C_KEYS + k);
	}
	workers_run(w, C_THREADS);
	for (uint32_t t = 0; t < C_THREADS; t++) {
		cr_assert_eq(w[t].wrong, 0, "thread %u saw %zu wrong answers", t, w[t].wrong);
		for (size_t k = 0; k < C_KEYS; k++) {
			uint32_t got = UINT32_MAX;
			bool hit = affinity_lookup(a, w[t].keys[k], C_OPS, &got);

			cr_assert_eq(hit, w[t].backend[k] != UINT32_MAX);
			cr_assert_eq(got, hit ? w[t].backend[k] : UINT32_MAX);
			expect += hit;
		}
	}
	cr_assert_eq(affinity_count(a), expect);
	affinity_free(a);
}

/* Control thread: sweeps, counts and unpins while the workers run. */
struct control {
	struct affinity *a;
	volatile int stop; /* set by the test once the workers are done */
	size_t rounds;
};

static void *control_run(void *arg)
{
	struct control *c = arg;
	size_t counts[C_THREADS * C_THREADS];

	while (!__atomic_load_n(&c->stop, __ATOMIC_RELAXED)) {
		affinity_expire(c->a, C_OPS / 2, 64);
		affinity_count_by_backend(c->a, C_OPS / 2, counts, C_THREADS * C_THREADS);
		affinity_unpin_backend(c->a, (uint32_t)(c->rounds % (C_THREADS * C_THREADS)));
		c->rounds++;
	}
	return NULL;
}

Test(affinity, threads_with_eviction_and_sweeps_keep_counters_consistent, .timeout = 30)
{
	enum { MAX = 2000 };
	static struct worker w[C_THREADS];
	struct affinity *a = affinity_new(MAX, C_OPS / 4);
	struct control c = {.a = a};
	pthread_t ct;
	struct affinity_stats s;
	size_t counts[C_THREADS * C_THREADS], live = 0;

	cr_assert_gt(stats(a).shards, 1);
	for (uint32_t t = 0; t < C_THREADS; t++) {
		w[t] = (struct worker){.a = a, .id = t};
		for (size_t k = 0; k < C_KEYS; k++)
			w[t].keys[k] = key(k); /* every thread on the same conversations */
	}
	cr_assert_eq(pthread_create(&ct, NULL, control_run, &c), 0);
	workers_run(w, C_THREADS);
	__atomic_store_n(&c.stop, 1, __ATOMIC_RELAXED);
	cr_assert_eq(pthread_join(ct, NULL), 0);
	cr_assert_gt(c.rounds, 0);

	affinity_get_stats(a, &s);
	cr_assert_leq(s.entries, MAX);
	cr_assert_gt(s.evictions, 0, "the table filled up");
	cr_assert_eq(s.entries, s.inserts - s.evictions - s.expirations - s.unpins);
	affinity_set_ttl(a, AFFINITY_TTL_NEVER);
	affinity_count_by_backend(a, C_OPS, counts, C_THREADS * C_THREADS);
	for (size_t i = 0; i < C_THREADS * C_THREADS; i++)
		live += counts[i];
	cr_assert_eq(live, s.entries, "every held pin is to a backend some thread used");
	affinity_free(a);
}

Test(affinity, peek_neither_refreshes_nor_counts)
{
	struct affinity *a = affinity_new(100, 1000);
	struct hash128 k = {.lo = 42, .hi = 7};
	uint32_t b = 0;
	uint64_t idle = 0;

	cr_assert_not_null(a);
	cr_assert_not(affinity_peek(a, k, 0, &b, &idle));
	affinity_pin(a, k, 3, 100);
	cr_assert(affinity_peek(a, k, 600, &b, &idle));
	cr_assert_eq(b, 3);
	cr_assert_eq(idle, 500);
	/* a peek at 600 did not extend the life: at 1101 the pin (seen at 100) has expired */
	cr_assert_not(affinity_peek(a, k, 1101, &b, &idle));
	cr_assert_not(affinity_lookup(a, k, 1101, &b));
	affinity_free(a);
}
