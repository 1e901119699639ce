/*
 * test_hash — the placement arithmetic of hash.c: our ln against libm's, and the weighted
 * rendezvous score built on it.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>

#include "../../proxy/hash.h"

#define T_SAMPLES  1000000
#define T_MAX_ULPS 8.0 /* ranks scores; measured worst: 5 */

/* Distance from libm's log in units of the last place of libm's result. */
static double ulps_off(double x)
{
	double want = log(x), got = hash_ln_unit(x);

	return fabs(got - want) / fabs(nextafter(want, 0.0) - want);
}

Test(hash, ln_matches_libm_over_the_draws)
{
	double worst = 0;

	/* draws over the score's range: u = (draw + ½)·2⁻⁵², draws spread by a mixer */
	for (uint64_t i = 0; i < T_SAMPLES; i++) {
		uint64_t draw = hash_mix64(i) >> (64 - HASH_DRAW_BITS);
		double u = (double)(2 * draw + 1) * 0x1p-53, off = ulps_off(u);

		if (off > worst)
			worst = off;
	}
	cr_expect_leq(worst, T_MAX_ULPS, "worst %.2f ulps", worst);
}

Test(hash, ln_matches_libm_at_the_edges)
{
	const double edges[] = {0x1p-53,
	                        0x1p-53 * 3,
	                        0.25,
	                        0.5,
	                        0.70710678118654746,
	                        0.70710678118654757,
	                        0.7071067811865476,
	                        0.9,
	                        1 - 0x1p-53};

	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
		cr_expect_leq(ulps_off(edges[i]), T_MAX_ULPS, "ln(%a) off by %.2f ulps", edges[i],
		              ulps_off(edges[i]));
}

Test(hash, score_grows_with_the_draw_and_scales_with_the_weight)
{
	uint64_t top = (UINT64_C(1) << HASH_DRAW_BITS) - 1;

	cr_expect_lt(hash_hrw_score(0, 1), hash_hrw_score(1, 1));
	cr_expect_lt(hash_hrw_score(top / 2, 1), hash_hrw_score(top / 2 + 1, 1));
	cr_expect_lt(hash_hrw_score(top - 1, 1), hash_hrw_score(top, 1));
	cr_expect_float_eq(hash_hrw_score(12345, 3), 3 * hash_hrw_score(12345, 1), 1e-15);
	cr_expect_gt(hash_hrw_score(0, 1), 0);
}
