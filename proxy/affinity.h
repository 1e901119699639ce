/*
 * affinity — the pin table: conversation key (XXH3-128) → backend id + last-seen time
 * (DESIGN.md "Routing state", research/hashing.md §6.1 layer 1).
 *
 * A live conversation goes to its pinned backend; pins end by unpin, by idling past the TTL,
 * by least-recently-used eviction when the table is full, or by a backend-wide unpin/repin
 * (drain deadline, failover). The table outlives configuration reloads.
 *
 * Thread safety: every function may be called from any thread at the same time, except
 * affinity_free, which needs the table quiescent. The table is split into shards by key bits,
 * each behind its own mutex; a per-key operation locks one shard, backend-wide operations lock
 * one shard at a time (so they see each shard at a different instant, never a global lock).
 *
 * Time: now_ms is caller-supplied monotonic milliseconds. A pin idle for more than the TTL
 * (now_ms - last_seen > ttl_ms) is expired. Stamps never go backwards inside a shard: a now_ms
 * smaller than one the shard has already seen (clock skew between worker threads) counts as
 * the latest one seen, which keeps each shard's LRU list in last-seen order.
 *
 * Key identity: the two halves of the key are folded into one 64-bit identifier. Two live
 * conversations share a pin with probability about n²/2^65 (3·10⁻⁸ at 10^6 pins).
 */
#ifndef RL_AFFINITY_H
#define RL_AFFINITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"

#define AFFINITY_SHARDS_MAX        64  /* shards of an auto-sized table (power of two) */
#define AFFINITY_SHARD_MIN_ENTRIES 256 /* auto sizing: fewer shards below this many pins each */
#define AFFINITY_MAX_ENTRIES       (1u << 30) /* largest max_entries accepted */
#define AFFINITY_TTL_NEVER         0          /* ttl_ms value: pins never expire (LRU only) */

struct affinity;

/* Counters and sizes; every counter counts since affinity_new. */
struct affinity_stats {
	size_t entries;       /* pins held, including expired ones not removed yet */
	size_t capacity;      /* max_entries */
	size_t shards;        /* number of shards */
	size_t bytes;         /* bytes allocated by the table (preallocated, not resident) */
	uint64_t hits;        /* lookups that found a live pin */
	uint64_t misses;      /* lookups that found none (or an expired one) */
	uint64_t inserts;     /* pins that created an entry */
	uint64_t repins;      /* pins moved to another backend (re-pin, affinity_repin_backend) */
	uint64_t evictions;   /* live entries dropped because their shard was full */
	uint64_t expirations; /* entries dropped for idling past the TTL */
	uint64_t unpins;      /* entries dropped by affinity_unpin or affinity_unpin_backend */
};

/*
 * New table holding at most max_entries pins (1..AFFINITY_MAX_ENTRIES), idle TTL ttl_ms
 * (AFFINITY_TTL_NEVER = none). All memory is allocated here, none per pin: about 40-48 bytes
 * per entry of max_entries, touched (resident) only as pins arrive. Shards: the largest power
 * of two <= AFFINITY_SHARDS_MAX leaving at least AFFINITY_SHARD_MIN_ENTRIES per shard (one
 * shard for small tables, so LRU is exact there). Each shard holds an equal share and keys
 * fall into shards at random, so the busiest shards start evicting a little before the table
 * holds max_entries: 10^6 distinct keys into a 10^6 table keep about 99.6 % of them (64
 * shards). Returns NULL on bad arguments or no memory.
 */
struct affinity *affinity_new(size_t max_entries, uint64_t ttl_ms);

/*
 * Same with an explicit shard count: a power of two in 1..AFFINITY_SHARDS_MAX, and at most
 * max_entries; 0 = auto as affinity_new. LRU eviction is per shard: each shard holds
 * max_entries/shards pins (the first max_entries%shards hold one more).
 */
struct affinity *affinity_new_sharded(size_t max_entries, uint64_t ttl_ms, unsigned shards);

/* Free the table; accepts NULL. No other thread may use it any more. */
void affinity_free(struct affinity *a);

/*
 * The backend pinned for key, into *backend_id; true when pinned and not expired. A hit
 * refreshes the pin's last-seen time and makes it the shard's most recently used; an expired
 * pin is removed (counted as an expiration) and reported as a miss. O(1).
 */
bool affinity_lookup(struct affinity *a, struct hash128 key, uint64_t now_ms, uint32_t *backend_id);

/*
 * Pin key to backend_id at now_ms: insert, or overwrite an existing pin (re-pin). Either way
 * the pin becomes its shard's most recently used. A full shard first drops its least recently
 * used pin (an expiration if it had expired, else an eviction). O(1).
 */
/*
 * Read-only lookup for observers (admin API): like affinity_lookup but refreshes nothing,
 * counts nothing and removes nothing. idle_ms (may be NULL) gets the pin's idle time.
 */
bool affinity_peek(struct affinity *a, struct hash128 key, uint64_t now_ms, uint32_t *backend_id,
                   uint64_t *idle_ms);

void affinity_pin(struct affinity *a, struct hash128 key, uint32_t backend_id, uint64_t now_ms);

/* Drop key's pin; true if there was one (expired or not). O(1). */
bool affinity_unpin(struct affinity *a, struct hash128 key);

/*
 * Remove up to budget expired pins, oldest first within each shard, and return how many.
 * Successive calls resume at the shard where the last one ran out of budget, so a small
 * budget called periodically (control thread) sweeps the whole table. O(budget + shards).
 */
size_t affinity_expire(struct affinity *a, uint64_t now_ms, size_t budget);

/*
 * Pins held, expired or not (affinity_expire removes the expired ones). Exact when no other
 * thread changes the table; otherwise a sum of per-shard counts read at slightly different
 * instants. O(shards), takes no lock.
 */
size_t affinity_count(const struct affinity *a);

/*
 * Live (unexpired) pins per backend: counts[id] for id < max_id, zeroed first; pins to an id
 * >= max_id are not counted. O(entries); locks one shard at a time.
 */
void affinity_count_by_backend(struct affinity *a, uint64_t now_ms, size_t *counts,
                               uint32_t max_id);

/*
 * Drop every pin to backend_id (drain deadline, forced move) and return how many, expired
 * ones included. O(entries); locks one shard at a time.
 */
size_t affinity_unpin_backend(struct affinity *a, uint32_t backend_id);

/*
 * Move every pin from backend `from` to backend `to`, keeping last-seen times and LRU order;
 * returns how many (expired ones included). O(entries); locks one shard at a time.
 */
size_t affinity_repin_backend(struct affinity *a, uint32_t from, uint32_t to);

/* Change the idle TTL (reload); applies to every pin from the next call on. */
void affinity_set_ttl(struct affinity *a, uint64_t ttl_ms);

/* Counters and sizes into *out; a snapshot assembled shard by shard, takes no lock. */
void affinity_get_stats(const struct affinity *a, struct affinity_stats *out);

#endif
