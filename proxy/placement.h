/*
 * placement — P(h, configured set): where a new conversation goes, behind one const ops
 * table per algorithm (as haproxy's struct lb_ops), research/hashing.md §6.1 layer 2.
 *
 *   [routing] hash ──placement_ops_of──► maglev | rendezvous | ring
 *   conf backends ──placement_from_conf──► struct placement (immutable; the pool owns it)
 *   key ──placement_key_hash──► h ──placement_lookup(h, eligible)──► backend index
 *
 * Every algorithm is a pure function of the configured set (input order never matters) and
 * takes the same eligibility overlay: a flag per backend, false for down, draining,
 * already-tried or over-cap backends; skipping one moves only the keys it would have taken.
 *
 *   algorithm   identity   key hash            overlay                     lookup
 *   maglev      name       XXH3-64(hash_seed)  key-derived probes, HRW      O(1)
 *   rendezvous  name       XXH3-64(hash_seed)  next-highest score           O(n)
 *   ring        address    CRC32 (nginx)       next point clockwise         O(log P)
 *
 * The ring reproduces nginx's `hash $key consistent` bit for bit, so hash_seed does not
 * apply to it.
 *
 * Fingerprint: XXH3-64 of (PLACEMENT_FINGERPRINT_TAG, algorithm, seed if it applies, and
 * per backend in name order: name, weight, address for the ring). Two instances with the
 * same fingerprint map every key the same way.
 */
#ifndef RL_PLACEMENT_H
#define RL_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

#define PLACEMENT_FINGERPRINT_HEX 16 /* hex digits of a fingerprint */
/* Bumped whenever a mapping changes for the same configuration (salts, formulas). */
#define PLACEMENT_FINGERPRINT_TAG "ringleader-placement-1"

/* One backend as the placement sees it; strings borrowed for the build only. */
struct placement_backend {
	const char *name;    /* identity of maglev and rendezvous */
	const char *address; /* "host:port" text: identity on the ring */
	unsigned weight;     /* 1..256 */
};

struct placement_ops {
	enum rl_hash kind;
	const char *name; /* as in [routing] hash */
	bool seeded;      /* hash_seed enters the mapping */
	bool by_address;  /* identity on the hash is the address, not the name */
	/* A new table over b[0..n); NULL on bad arguments or no memory. */
	void *(*build)(const struct placement_backend *b, size_t n, uint64_t seed);
	/* Backend index for key hash h among eligible (NULL = all); -1 if none. Lock-free. */
	int (*lookup)(const void *table, uint64_t h, const bool *eligible);
	void (*free)(void *table);
	/* The key's hash as lookup expects it. */
	uint64_t (*key_hash)(const void *key, size_t len, uint64_t seed);
	/* share[i] = backend i's share of the key space: exact from the table, or w_i/W. */
	void (*shares)(const void *table, size_t n, double *share);
	size_t (*bytes)(const void *table);
	/* Size in words for logs and benches: "M=65537", "points=480", "no table". */
	void (*describe)(const void *table, char *out, size_t len);
};

struct placement {
	const struct placement_ops *ops; /* static */
	void *table;                     /* owned (ops->free) */
	size_t n;                        /* backends */
	uint64_t seed;                   /* hash_seed (unused by the ring) */
	uint64_t fingerprint;            /* placement_fingerprint of the build's input */
};

/* The ops of kind; NULL for an unknown kind. */
const struct placement_ops *placement_ops_of(enum rl_hash kind);

/* Build kind over b[0..n) (n >= 1). NULL on bad arguments or no memory. */
struct placement *placement_new(enum rl_hash kind, const struct placement_backend *b, size_t n,
                                uint64_t seed);

/* Build from a configuration: its hash, hash_seed and backends in file order. */
struct placement *placement_from_conf(const struct rl_conf *c);

void placement_free(struct placement *pl);

/* Backend index for key hash h (see struct placement_ops lookup). */
static inline int placement_lookup(const struct placement *pl, uint64_t h, const bool *eligible)
{
	return pl->ops->lookup(pl->table, h, eligible);
}

static inline uint64_t placement_key_hash(const struct placement *pl, const void *key, size_t len)
{
	return pl->ops->key_hash(key, len, pl->seed);
}

static inline const char *placement_name(const struct placement *pl)
{
	return pl->ops->name;
}

/*
 * Fingerprint of what decides the mapping (see the top of this file). Independent of the
 * order of b. 0 only on no memory (and then by chance 1 in 2^64).
 */
uint64_t placement_fingerprint(enum rl_hash kind, const struct placement_backend *b, size_t n,
                               uint64_t seed);

/* fp as PLACEMENT_FINGERPRINT_HEX lowercase hex digits and a NUL. */
void placement_fingerprint_hex(uint64_t fp, char out[PLACEMENT_FINGERPRINT_HEX + 1]);

/* Bytes of the table and size words (ops->bytes, ops->describe). */
size_t placement_bytes(const struct placement *pl);
void placement_describe(const struct placement *pl, char *out, size_t len);

/* share[i] for i < pl->n (ops->shares). */
void placement_shares(const struct placement *pl, double *share);

/*
 * Compare a (current) with b (candidate) over the key space, unpinned keys, no overlay.
 * Backends are matched through entries: amap[i] is the entry of a's backend i, bmap[j] the
 * entry of b's backend j, all < nent. Fills before[e] and after[e] (share under a and b)
 * and stay[e] (share owned by e under both); moved = 1 − Σ stay.
 * *exact: true when counted from the two tables (maglev or ring, same key hash);
 * false for an expectation: rendezvous (computed from the weights: a backend k kept in
 * both keeps w_k/(w_k + R_k) of the key space, see placement.c) or unrelated key hashes
 * (Σ a·b). 0, or -1 on no memory.
 */
int placement_compare(const struct placement *a, const size_t *amap, const struct placement *b,
                      const size_t *bmap, size_t nent, double *before, double *after, double *stay,
                      bool *exact);

#endif
