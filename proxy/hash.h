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
