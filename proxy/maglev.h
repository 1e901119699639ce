/*
 * maglev — weighted Maglev placement table (research/hashing.md §6.1).
 *
 * The table is a pure function of (backend names, weights, seed): every instance with the
 * same configuration maps every key identically, and backend order in the file does not
 * matter. Built off the data path, immutable afterwards, read without locks.
 *
 * Eligibility overlay: a backend that is down, draining or over its load cap is skipped
 * by probing table[hash_range(hash_mix64(h + i·GOLDEN), M)] for i = 1..MAGLEV_PROBES,
 * then falling back to weighted rendezvous over the eligible backends — no rebuild.
 */
#ifndef RL_MAGLEV_H
#define RL_MAGLEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAGLEV_MIN_SIZE     65537u   /* smallest table, entries (prime) */
#define MAGLEV_MAX_SIZE     5000011u /* largest table, entries (prime) */
#define MAGLEV_PROBES       32       /* overlay probes before the rendezvous fallback */
#define MAGLEV_MAX_BACKENDS 65535    /* entries are uint16_t */
#define MAGLEV_MAX_WEIGHT   256      /* weights are 1..MAGLEV_MAX_WEIGHT */

struct maglev;

/*
 * Build a table for n backends (n >= 1). names[i] identifies backend i, weights[i] in
 * 1..256. size 0 = auto: the smallest step of the size ladder (maglev.c: the first prime
 * at or above 65536·2^k, then MAGLEV_MAX_SIZE) holding 100·W, W = Σ weights. Returns NULL
 * on allocation failure or bad arguments. Copies what it keeps (not the names).
 * Bad arguments: n = 0 or > MAGLEV_MAX_BACKENDS, a NULL name, two equal names, a weight
 * outside 1..MAGLEV_MAX_WEIGHT, an explicit size that is not a prime in n..MAGLEV_MAX_SIZE.
 */
struct maglev *maglev_build(const char *const *names, const unsigned *weights, size_t n,
                            uint64_t seed, uint32_t size);
void maglev_free(struct maglev *m);

/* Table size M (entries) and backend count. */
uint32_t maglev_size(const struct maglev *m);
size_t maglev_backends(const struct maglev *m);

/* Owner of table slot i (for exact share measurements); MAGLEV_MAX_BACKENDS if i >= M. */
unsigned maglev_slot(const struct maglev *m, uint32_t i);

/*
 * Backend index for key hash h. eligible: NULL (all eligible) or an array of
 * maglev_backends(m) flags. Returns -1 when no backend is eligible (or m is NULL).
 * O(1) when the primary slot is eligible; O(MAGLEV_PROBES + n) worst case.
 */
int maglev_lookup(const struct maglev *m, uint64_t h, const bool *eligible);

/* Smallest prime >= n (n < 2^32); 0 if none fits in 32 bits (n > 4294967291). */
uint32_t maglev_next_prime(uint32_t n);

/*
 * The size maglev_build picks for size 0; 0 if n or a weight is out of range. Steps of the
 * ladder, not the tightest prime, so that adding, removing or re-weighing a backend keeps M
 * (and moves about the optimum of keys) unless 100·W crosses a doubling: a new M
 * remaps nearly every unpinned key.
 */
uint32_t maglev_auto_size(const unsigned *weights, size_t n);

#endif
