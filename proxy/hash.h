/*
 * hash — the one wrapper around xxHash, plus the small integer mixers the placement
 * code needs. Only hash.c includes <xxhash.h>.
 */
#ifndef RL_HASH_H
#define RL_HASH_H

#include <stddef.h>
#include <stdint.h>

struct hash128 {
	uint64_t lo;
	uint64_t hi;
};

/* XXH3-64 of data with seed. */
uint64_t hash64(const void *data, size_t len, uint64_t seed);

/* XXH3-128 of data with seed (affinity keys). */
struct hash128 hash128(const void *data, size_t len, uint64_t seed);

/* xxHash version linked at run time, e.g. "0.8.1", written into out. */
void hash_library_version(char *out, size_t outlen);

/* Bits of a draw for hash_hrw_score: (2·draw + 1)·2⁻⁵³ is then exact and below 1. */
#define HASH_DRAW_BITS 52

/*
 * Weighted rendezvous score of a draw (HASH_DRAW_BITS bits from a hash): −weight / ln u with
 * u = (draw + ½)·2⁻⁵² ∈ (0, 1), the logarithmic method of Schindelhauer & Schomaker, so the
 * highest score among the candidates of a key is candidate i with probability w_i / Σw.
 */
double hash_hrw_score(uint64_t draw, unsigned weight);

/* ln x for x in (0, 1) (normal doubles), within 8 ulps of libm's log (about 2.5 times its
 * time: 10 ns against 4 here). */
double hash_ln_unit(double x);

/* A bijective 64-bit finaliser (splitmix64's), for probe sequences. */
static inline uint64_t hash_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* Map h uniformly onto [0, n) without a division (Lemire's fastrange). */
static inline uint32_t hash_range(uint64_t h, uint32_t n)
{
	return (uint32_t)(((unsigned __int128)h * n) >> 64);
}

#endif
