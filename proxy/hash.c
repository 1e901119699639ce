/*
 * hash — the one place that includes <xxhash.h> (STYLE.md: one wrapper per third-party
 * header). Everything else hashes through hash64/hash128, so swapping or pinning the
 * xxHash version touches this file only.
 */
#include "hash.h"

#include <stdio.h>
#include <string.h>

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

/*
 * ln x = e·ln 2 + ln m with x = m·2^e, m ∈ [√½, √2), and ln m = 2·atanh s, s = (m − 1)/(m + 1),
 * |s| ≤ 0.172: the odd series to s²¹ is exact to a double, evaluated by Estrin's scheme
 * (short dependency chains; the division bounds it). Our own rather than libm's: this was
 * all the proxy needed libm for, and mapping libm cost an idle proxy about 300 kB of RSS.
 */
double hash_ln_unit(double x)
{
	static const double ln2 = 0.6931471805599453;
	static const double sqrt2 = 1.4142135623730951;
	uint64_t bits;
	double m, s, z, z2, z4, q0, q1, q2;
	int e;

	memcpy(&bits, &x, sizeof(bits));
	e = (int)((bits >> 52) & 0x7ff) - 1023;
	bits = (bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL; /* m ∈ [1, 2) */
	memcpy(&m, &bits, sizeof(m));
	if (m > sqrt2) {
		m *= 0.5;
		e++;
	}
	s = (m - 1) / (m + 1);
	z = s * s;
	z2 = z * z;
	z4 = z2 * z2;
	/* Σ z^k / (2k + 1), k = 0..10 */
	q0 = (1 + z * (1.0 / 3)) + (1.0 / 5 + z * (1.0 / 7)) * z2;
	q1 = (1.0 / 9 + z * (1.0 / 11)) + (1.0 / 13 + z * (1.0 / 15)) * z2;
	q2 = (1.0 / 17 + z * (1.0 / 19)) + (1.0 / 21) * z2;
	return e * ln2 + 2 * s * ((q0 + q1 * z4) + q2 * (z4 * z4));
}

double hash_hrw_score(uint64_t draw, unsigned weight)
{
	/* 53 bits, so exact: (draw + ½)·2⁻⁵² never rounds up to 1 (where ln u = 0) */
	double u = (double)(2 * draw + 1) * 0x1p-53;

	return -(double)weight / hash_ln_unit(u);
}
