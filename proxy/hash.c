/*
 * hash — the one place that includes <xxhash.h> (STYLE.md: one wrapper per third-party
 * header). Everything else hashes through hash64/hash128, so swapping or pinning the
 * xxHash version touches this file only.
 */
#include "hash.h"

#include <stdio.h>

/* xxHash compiled into this file (the header carries the whole library): the hashes inline
 * into hash64/hash128, and the process maps one shared library less (about 100 kB of RSS). */
#define XXH_INLINE_ALL
#include <xxhash.h>

uint64_t hash64(const void *data, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(data, len, seed);
}

struct hash128 hash128(const void *data, size_t len, uint64_t seed)
{
	XXH128_hash_t r = XXH3_128bits_withSeed(data, len, seed);

	return (struct hash128){.lo = r.low64, .hi = r.high64};
}

void hash_library_version(char *out, size_t outlen)
{
	unsigned v = XXH_versionNumber();

	snprintf(out, outlen, "%u.%u.%u", v / 10000, v / 100 % 100, v % 100);
}
