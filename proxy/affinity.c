/*
 * affinity — sharded pin table with per-shard LRU and idle TTL.
 *
 * A key folds to a 64-bit id; its top bits pick the shard, its low bits the home slot of the
 * shard's open-addressing index (linear probing, load <= 1/2, backward-shift deletion, no
 * tombstones). Index slots hold entry numbers; entries live in one array per shard that is
 * allocated up front, so pinning never calls malloc:
 *
 *   id ──top bits──▶ shard ──lock──▶ index[id & mask, +1, …] ──▶ entries[e]
 *                                                                  id, seen_ms, backend,
 *                                                                  prev/next (LRU, 32-bit)
 *   LRU list: head (most recent) ⇄ … ⇄ tail (least recent; evicted or expired first)
 *
 * Every pin and hit stamps the entry with the shard clock (the largest now_ms the shard has
 * seen) and moves it to the head, so the list is sorted by last-seen time: expired entries
 * form a run at the tail, which the sweep and the full-shard eviction take from.
 *
 * Counters and pin counts are written under the shard lock with relaxed atomic stores and
 * read without it, so statistics never take a lock.
 */
#include "affinity.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define AFF_NIL         UINT32_MAX /* no entry: end of the LRU or free list */
#define AFF_SLOT_EMPTY  0u         /* index slot holding no entry; others hold entry + 1 */
#define AFF_INDEX_LOAD  2u         /* index slots per entry, at least: load factor <= 1/2 */
#define AFF_INDEX_MIN   8u         /* fewest index slots of a shard */
#define AFF_SHARD_SHIFT 58         /* shard = top 6 bits of the id, masked to the shard count */
#define AFF_CACHE_LINE  64         /* bytes; shards are aligned to it against false sharing */

_Static_assert((1ull << (64 - AFF_SHARD_SHIFT)) == AFFINITY_SHARDS_MAX,
               "shard bits must cover AFFINITY_SHARDS_MAX");
_Static_assert((AFFINITY_SHARDS_MAX & (AFFINITY_SHARDS_MAX - 1)) == 0,
               "AFFINITY_SHARDS_MAX must be a power of two");

enum aff_ctr {
	AFF_HITS = 0,
	AFF_MISSES,
	AFF_INSERTS,
	AFF_REPINS,
	AFF_EVICTIONS,
	AFF_EXPIRATIONS,
	AFF_UNPINS,
	AFF_CTR_COUNT
};

/* One pin; 32 bytes (4 of them padding). */
struct aff_entry {
	uint64_t id;      /* folded key */
	uint64_t seen_ms; /* shard clock at the last pin or hit */
	uint32_t backend; /* caller's backend id */
	uint32_t prev;    /* LRU neighbour towards the head (more recent); AFF_NIL at the head */
	uint32_t next;    /* towards the tail (older); free-list link while unused */
};

struct aff_shard {
	pthread_mutex_t lock;      /* guards everything below */
	struct aff_entry *entries; /* cap entries (of affinity's block), written before read */
	uint32_t *index;           /* mask + 1 slots (of affinity's block): empty or entry + 1 */
	uint32_t mask;             /* index slots - 1 (a power of two minus one) */
	uint32_t cap;              /* most pins this shard holds */
	uint32_t used;             /* entries[0, used) have been handed out at least once */
	uint32_t free;             /* head of the free list of entries, AFF_NIL if empty */
	uint32_t head;             /* most recently used entry, AFF_NIL if empty */
	uint32_t tail;             /* least recently used entry, AFF_NIL if empty */
	uint32_t count;            /* pins on the LRU list; read without the lock */
	uint64_t clock_ms;         /* largest now_ms seen: every stamp, so stamps never decrease */
	uint64_t ctr[AFF_CTR_COUNT]; /* events, read without the lock */
} __attribute__((aligned(AFF_CACHE_LINE)));

struct affinity {
	struct aff_shard *shards;  /* owned, nshards, cache-line aligned */
	struct aff_entry *entries; /* owned (mmap): every shard's entries */
	uint32_t *index;           /* owned (mmap): every shard's index slots */
	size_t entries_len;        /* bytes mapped at entries */
	size_t index_len;          /* bytes mapped at index */
	uint32_t nshards;          /* power of two, 1..AFFINITY_SHARDS_MAX */
	uint32_t sweep_next;       /* atomic: shard where the next affinity_expire starts */
	uint64_t ttl_ms;           /* atomic: reload may change it; AFFINITY_TTL_NEVER = none */
	size_t capacity;           /* max_entries */
	size_t bytes;              /* bytes allocated, for memory accounting */
};

/* ---- small helpers ---- */

/* Both key halves, mixed, so structured keys (tests, hand-made ids) still spread evenly. */
static uint64_t aff_id(struct hash128 key)
{
	return hash_mix64(key.lo ^ hash_mix64(key.hi));
}

static struct aff_shard *aff_shard_of(const struct affinity *a, uint64_t id)
{
	return &a->shards[(id >> AFF_SHARD_SHIFT) & (a->nshards - 1)];
}

static bool aff_expired(uint64_t seen_ms, uint64_t now_ms, uint64_t ttl_ms)
{
	return ttl_ms != AFFINITY_TTL_NEVER && now_ms > seen_ms && now_ms - seen_ms > ttl_ms;
}

static uint64_t aff_ttl(const struct affinity *a)
{
	return __atomic_load_n(&a->ttl_ms, __ATOMIC_RELAXED);
}

/* Writers hold the shard lock, so a plain load+store is enough; lock-free readers stay legal. */
static void ctr_add(struct aff_shard *sh, enum aff_ctr c, uint64_t n)
{
	__atomic_store_n(&sh->ctr[c], sh->ctr[c] + n, __ATOMIC_RELAXED);
}

static void count_set(struct aff_shard *sh, uint32_t count)
{
	__atomic_store_n(&sh->count, count, __ATOMIC_RELAXED);
}

/* Advance the shard clock to now_ms (never back) and return it as the stamp to use. */
static uint64_t shard_stamp(struct aff_shard *sh, uint64_t now_ms)
{
	if (now_ms > sh->clock_ms)
		sh->clock_ms = now_ms;
	return sh->clock_ms;
}

static uint32_t next_pow2(uint32_t n)
{
	uint32_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

/* ---- LRU list ---- */

static void lru_unlink(struct aff_shard *sh, uint32_t e)
{
	struct aff_entry *x = &sh->entries[e];

	if (x->prev != AFF_NIL)
		sh->entries[x->prev].next = x->next;
	else
		sh->head = x->next;
	if (x->next != AFF_NIL)
		sh->entries[x->next].prev = x->prev;
	else
		sh->tail = x->prev;
}

static void lru_push_head(struct aff_shard *sh, uint32_t e)
{
	struct aff_entry *x = &sh->entries[e];

	x->prev = AFF_NIL;
	x->next = sh->head;
	if (sh->head != AFF_NIL)
		sh->entries[sh->head].prev = e;
	else
		sh->tail = e;
	sh->head = e;
}

/* A hit or re-pin: new stamp, most recently used. */
static void lru_touch(struct aff_shard *sh, uint32_t e, uint64_t stamp)
{
	sh->entries[e].seen_ms = stamp;
	if (sh->head == e)
		return;
	lru_unlink(sh, e);
	lru_push_head(sh, e);
}

/* ---- open-addressing index ---- */

/* Index slot holding id, or AFF_NIL. Terminates: the index is never more than half full. */
static uint32_t index_find(const struct aff_shard *sh, uint64_t id)
{
	for (uint32_t i = (uint32_t)id & sh->mask;; i = (i + 1) & sh->mask) {
		uint32_t v = sh->index[i];

		if (v == AFF_SLOT_EMPTY)
			return AFF_NIL;
		if (sh->entries[v - 1].id == id)
			return i;
	}
}

/* Index slot holding entry e (which is in the index). */
static uint32_t index_slot_of(const struct aff_shard *sh, uint32_t e)
{
	uint32_t i = (uint32_t)sh->entries[e].id & sh->mask;

	while (sh->index[i] != e + 1)
		i = (i + 1) & sh->mask;
	return i;
}

static void index_insert(struct aff_shard *sh, uint64_t id, uint32_t e)
{
	uint32_t i = (uint32_t)id & sh->mask;

	while (sh->index[i] != AFF_SLOT_EMPTY)
		i = (i + 1) & sh->mask;
	sh->index[i] = e + 1;
}

/*
 * Empty slot `hole` and close the gap: each later entry of the probe run moves back into the
 * hole when the hole lies between its home slot and where it sits (cyclically).
 */
static void index_delete(struct aff_shard *sh, uint32_t hole)
{
	for (uint32_t j = (hole + 1) & sh->mask; sh->index[j] != AFF_SLOT_EMPTY;
	     j = (j + 1) & sh->mask) {
		uint32_t home = (uint32_t)sh->entries[sh->index[j] - 1].id & sh->mask;

		if (((j - home) & sh->mask) >= ((j - hole) & sh->mask)) {
			sh->index[hole] = sh->index[j];
			hole = j;
		}
	}
	sh->index[hole] = AFF_SLOT_EMPTY;
}

/* ---- entries ---- */

/* A free entry number; the caller has checked count < cap. */
static uint32_t entry_alloc(struct aff_shard *sh)
{
	uint32_t e = sh->free;

	if (e == AFF_NIL)
		return sh->used++;
	sh->free = sh->entries[e].next;
	return e;
}

/* Drop entry e (listed and indexed), counting it under counter c. */
static void entry_remove(struct aff_shard *sh, uint32_t e, enum aff_ctr c)
{
	index_delete(sh, index_slot_of(sh, e));
	lru_unlink(sh, e);
	sh->entries[e].next = sh->free;
	sh->free = e;
	count_set(sh, sh->count - 1);
	ctr_add(sh, c, 1);
}

/* Make room in a full shard: drop the LRU entry (an expiration if it had expired). */
static void shard_drop_lru(struct aff_shard *sh, uint64_t stamp, uint64_t ttl_ms)
{
	uint32_t e = sh->tail;
	bool expired = aff_expired(sh->entries[e].seen_ms, stamp, ttl_ms);

	entry_remove(sh, e, expired ? AFF_EXPIRATIONS : AFF_EVICTIONS);
}

/* ---- shards ---- */

/* Pins of shard i when max_entries are spread over shards. */
static uint32_t shard_cap(size_t max_entries, unsigned shards, unsigned i)
{
	return (uint32_t)(max_entries / shards + (i < max_entries % shards));
}

static uint32_t shard_slots(uint32_t cap)
{
	uint32_t slots = next_pow2(cap * AFF_INDEX_LOAD);

	return slots < AFF_INDEX_MIN ? AFF_INDEX_MIN : slots;
}

/* Set up a shard of cap pins over the given entries and zeroed index slots. */
static int shard_init(struct aff_shard *sh, uint32_t cap, struct aff_entry *entries,
                      uint32_t *index, uint32_t slots)
{
	if (pthread_mutex_init(&sh->lock, NULL) != 0)
		return -1;
	sh->entries = entries;
	sh->index = index;
	sh->mask = slots - 1;
	sh->cap = cap;
	sh->free = sh->head = sh->tail = AFF_NIL;
	return 0;
}

/* Zeroed memory touched only as it is used, even when larger than RAM may allow today
 * (MAP_NORESERVE: a big affinity_max must not stop the proxy from starting). NULL on
 * failure. */
static void *block_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Two blocks for all shards, not two per shard: each malloc above the mmap threshold costs
 * a page of header in RSS, which for 64 shards was half a megabyte of an idle proxy. */
static int alloc_blocks(struct affinity *a, size_t max_entries, unsigned shards)
{
	size_t slots = 0;

	for (unsigned i = 0; i < shards; i++)
		slots += shard_slots(shard_cap(max_entries, shards, i));
	a->entries_len = max_entries * sizeof(*a->entries);
	a->index_len = slots * sizeof(*a->index); /* zero = AFF_SLOT_EMPTY */
	a->entries = block_map(a->entries_len);
	a->index = block_map(a->index_len);
	a->bytes += a->entries_len + a->index_len;
	return a->entries && a->index ? 0 : -1;
}

/* Largest power of two <= AFFINITY_SHARDS_MAX leaving AFFINITY_SHARD_MIN_ENTRIES per shard. */
static unsigned auto_shards(size_t max_entries)
{
	unsigned n = AFFINITY_SHARDS_MAX;

	while (n > 1 && max_entries / n < AFFINITY_SHARD_MIN_ENTRIES)
		n >>= 1;
	return n;
}

static bool shards_valid(size_t max_entries, unsigned shards)
{
	return shards >= 1 && shards <= AFFINITY_SHARDS_MAX && (shards & (shards - 1)) == 0 &&
	       shards <= max_entries;
}

/* ---- lifecycle ---- */

struct affinity *affinity_new_sharded(size_t max_entries, uint64_t ttl_ms, unsigned shards)
{
	struct affinity *a;
	void *mem;

	if (max_entries == 0 || max_entries > AFFINITY_MAX_ENTRIES)
		return NULL;
	if (shards == 0)
		shards = auto_shards(max_entries);
	if (!shards_valid(max_entries, shards))
		return NULL;
	a = calloc(1, sizeof(*a));
	if (!a || posix_memalign(&mem, AFF_CACHE_LINE, shards * sizeof(struct aff_shard)) != 0) {
		free(a);
		return NULL;
	}
	memset(mem, 0, shards * sizeof(struct aff_shard));
	a->shards = mem;
	a->ttl_ms = ttl_ms;
	a->capacity = max_entries;
	a->bytes = sizeof(*a) + shards * sizeof(struct aff_shard);
	if (alloc_blocks(a, max_entries, shards) != 0) {
		affinity_free(a);
		return NULL;
	}
	struct aff_entry *entries = a->entries;
	uint32_t *index = a->index;

	for (unsigned i = 0; i < shards; i++) {
		uint32_t cap = shard_cap(max_entries, shards, i), slots = shard_slots(cap);

		if (shard_init(&a->shards[i], cap, entries, index, slots) != 0) {
			affinity_free(a);
			return NULL;
		}
		a->nshards = i + 1; /* affinity_free releases exactly the shards made so far */
		entries += cap;
		index += slots;
	}
	return a;
}

struct affinity *affinity_new(size_t max_entries, uint64_t ttl_ms)
{
	return affinity_new_sharded(max_entries, ttl_ms, 0);
}

void affinity_free(struct affinity *a)
{
	if (!a)
		return;
	for (uint32_t i = 0; i < a->nshards; i++)
		pthread_mutex_destroy(&a->shards[i].lock);
	if (a->entries != NULL)
		munmap(a->entries, a->entries_len);
	if (a->index != NULL)
		munmap(a->index, a->index_len);
	free(a->shards);
	free(a);
}

/* ---- per-key operations ---- */

bool affinity_lookup(struct affinity *a, struct hash128 key, uint64_t now_ms, uint32_t *backend_id)
{
	uint64_t id = aff_id(key);
	struct aff_shard *sh = aff_shard_of(a, id);
	bool hit = false;

	pthread_mutex_lock(&sh->lock);
	uint64_t stamp = shard_stamp(sh, now_ms);
	uint32_t slot = index_find(sh, id);

	if (slot != AFF_NIL) {
		uint32_t e = sh->index[slot] - 1;

		if (aff_expired(sh->entries[e].seen_ms, stamp, aff_ttl(a))) {
			entry_remove(sh, e, AFF_EXPIRATIONS);
		} else {
			lru_touch(sh, e, stamp);
			*backend_id = sh->entries[e].backend;
			hit = true;
		}
	}
	ctr_add(sh, hit ? AFF_HITS : AFF_MISSES, 1);
	pthread_mutex_unlock(&sh->lock);
	return hit;
}

bool affinity_peek(struct affinity *a, struct hash128 key, uint64_t now_ms, uint32_t *backend_id,
                   uint64_t *idle_ms)
{
	uint64_t id = aff_id(key);
	struct aff_shard *sh = aff_shard_of(a, id);
	bool hit = false;

	pthread_mutex_lock(&sh->lock);
	uint32_t slot = index_find(sh, id);

	if (slot != AFF_NIL) {
		const struct aff_entry *en = &sh->entries[sh->index[slot] - 1];
		uint64_t seen = en->seen_ms;
		uint64_t now = now_ms > seen ? now_ms : seen;

		if (!aff_expired(seen, now, aff_ttl(a))) {
			*backend_id = en->backend;
			if (idle_ms != NULL)
				*idle_ms = now - seen;
			hit = true;
		}
	}
	pthread_mutex_unlock(&sh->lock);
	return hit;
}

void affinity_pin(struct affinity *a, struct hash128 key, uint32_t backend_id, uint64_t now_ms)
{
	uint64_t id = aff_id(key);
	struct aff_shard *sh = aff_shard_of(a, id);

	pthread_mutex_lock(&sh->lock);
	uint64_t stamp = shard_stamp(sh, now_ms);
	uint32_t slot = index_find(sh, id);
	uint32_t e;

	if (slot != AFF_NIL) {
		e = sh->index[slot] - 1;
		if (sh->entries[e].backend != backend_id)
			ctr_add(sh, AFF_REPINS, 1);
		sh->entries[e].backend = backend_id;
		lru_touch(sh, e, stamp);
	} else {
		if (sh->count == sh->cap)
			shard_drop_lru(sh, stamp, aff_ttl(a));
		e = entry_alloc(sh);
		sh->entries[e] =
		        (struct aff_entry){.id = id, .seen_ms = stamp, .backend = backend_id};
		index_insert(sh, id, e);
		lru_push_head(sh, e);
		count_set(sh, sh->count + 1);
		ctr_add(sh, AFF_INSERTS, 1);
	}
	pthread_mutex_unlock(&sh->lock);
}

bool affinity_unpin(struct affinity *a, struct hash128 key)
{
	uint64_t id = aff_id(key);
	struct aff_shard *sh = aff_shard_of(a, id);

	pthread_mutex_lock(&sh->lock);
	uint32_t slot = index_find(sh, id);

	if (slot != AFF_NIL)
		entry_remove(sh, sh->index[slot] - 1, AFF_UNPINS);
	pthread_mutex_unlock(&sh->lock);
	return slot != AFF_NIL;
}

/* ---- sweeps and backend-wide operations ---- */

/* Remove up to max expired entries from the tail of one shard; returns how many. */
static size_t shard_expire(struct aff_shard *sh, uint64_t now_ms, uint64_t ttl_ms, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&sh->lock);
	while (n < max && sh->tail != AFF_NIL &&
	       aff_expired(sh->entries[sh->tail].seen_ms, now_ms, ttl_ms)) {
		entry_remove(sh, sh->tail, AFF_EXPIRATIONS);
		n++;
	}
	pthread_mutex_unlock(&sh->lock);
	return n;
}

size_t affinity_expire(struct affinity *a, uint64_t now_ms, size_t budget)
{
	uint64_t ttl_ms = aff_ttl(a);
	uint32_t start = __atomic_load_n(&a->sweep_next, __ATOMIC_RELAXED);
	size_t removed = 0;

	if (ttl_ms == AFFINITY_TTL_NEVER)
		return 0;
	for (uint32_t i = 0; i < a->nshards && removed < budget; i++) {
		uint32_t s = (start + i) & (a->nshards - 1);

		removed += shard_expire(&a->shards[s], now_ms, ttl_ms, budget - removed);
		if (removed == budget) /* this shard may hold more: start here next time */
			__atomic_store_n(&a->sweep_next, s, __ATOMIC_RELAXED);
	}
	return removed;
}

size_t affinity_count(const struct affinity *a)
{
	size_t n = 0;

	for (uint32_t i = 0; i < a->nshards; i++)
		n += __atomic_load_n(&a->shards[i].count, __ATOMIC_RELAXED);
	return n;
}

void affinity_count_by_backend(struct affinity *a, uint64_t now_ms, size_t *counts, uint32_t max_id)
{
	uint64_t ttl_ms = aff_ttl(a);

	if (max_id == 0)
		return;
	memset(counts, 0, max_id * sizeof(*counts));
	for (uint32_t i = 0; i < a->nshards; i++) {
		struct aff_shard *sh = &a->shards[i];

		pthread_mutex_lock(&sh->lock);
		/* Newest first: the first expired entry ends the live run. */
		for (uint32_t e = sh->head; e != AFF_NIL; e = sh->entries[e].next) {
			const struct aff_entry *x = &sh->entries[e];

			if (aff_expired(x->seen_ms, now_ms, ttl_ms))
				break;
			if (x->backend < max_id)
				counts[x->backend]++;
		}
		pthread_mutex_unlock(&sh->lock);
	}
}

size_t affinity_unpin_backend(struct affinity *a, uint32_t backend_id)
{
	size_t n = 0;

	for (uint32_t i = 0; i < a->nshards; i++) {
		struct aff_shard *sh = &a->shards[i];

		pthread_mutex_lock(&sh->lock);
		for (uint32_t e = sh->head, next; e != AFF_NIL; e = next) {
			next = sh->entries[e].next; /* read before the entry joins the free list */
			if (sh->entries[e].backend == backend_id) {
				entry_remove(sh, e, AFF_UNPINS);
				n++;
			}
		}
		pthread_mutex_unlock(&sh->lock);
	}
	return n;
}

size_t affinity_repin_backend(struct affinity *a, uint32_t from, uint32_t to)
{
	size_t n = 0;

	for (uint32_t i = 0; i < a->nshards; i++) {
		struct aff_shard *sh = &a->shards[i];
		size_t moved = 0;

		pthread_mutex_lock(&sh->lock);
		for (uint32_t e = sh->head; e != AFF_NIL; e = sh->entries[e].next) {
			if (sh->entries[e].backend == from) {
				sh->entries[e].backend = to;
				moved++;
			}
		}
		if (from != to)
			ctr_add(sh, AFF_REPINS, moved);
		pthread_mutex_unlock(&sh->lock);
		n += moved;
	}
	return n;
}

void affinity_set_ttl(struct affinity *a, uint64_t ttl_ms)
{
	__atomic_store_n(&a->ttl_ms, ttl_ms, __ATOMIC_RELAXED);
}

void affinity_get_stats(const struct affinity *a, struct affinity_stats *out)
{
	uint64_t sum[AFF_CTR_COUNT] = {0};

	for (uint32_t i = 0; i < a->nshards; i++)
		for (int c = 0; c < AFF_CTR_COUNT; c++)
			sum[c] += __atomic_load_n(&a->shards[i].ctr[c], __ATOMIC_RELAXED);
	*out = (struct affinity_stats){
	        .entries = affinity_count(a),
	        .capacity = a->capacity,
	        .shards = a->nshards,
	        .bytes = a->bytes,
	        .hits = sum[AFF_HITS],
	        .misses = sum[AFF_MISSES],
	        .inserts = sum[AFF_INSERTS],
	        .repins = sum[AFF_REPINS],
	        .evictions = sum[AFF_EVICTIONS],
	        .expirations = sum[AFF_EXPIRATIONS],
	        .unpins = sum[AFF_UNPINS],
	};
}
