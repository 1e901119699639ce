/*
 * router and pool: keys follow the table, keyless requests follow missing_key, and
 * draining, down or already-tried backends never get a request.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "pool.h"
#include "router.h"

static struct rl_pool *pool_from(const char *routing, const char *extra_backend_state)
{
	char text[2048];
	struct conf_errors errs = {0};

	snprintf(text, sizeof(text),
	         "[routing]\n%s\n"
	         "[backend a]\naddress = 127.0.0.1:9001\n"
	         "[backend b]\naddress = 127.0.0.1:9002\n"
	         "[backend c]\naddress = 127.0.0.1:9003\n%s\n",
	         routing, extra_backend_state);
	struct rl_conf *c = conf_load_string(text, "t.ini", &errs);
	for (size_t i = 0; i < errs.n; i++)
		cr_log_error("%s", errs.msg[i]);
	conf_errors_free(&errs);
	cr_assert_not_null(c);
	struct rl_pool *p = pool_new(c, NULL);
	cr_assert_not_null(p);
	return p;
}

static struct router_choice pick(struct rl_pool *p, const char *key, const bool *excluded,
                                 struct util_rng *rng)
{
	bool scratch[CONF_MAX_BACKENDS];
	struct router_request rq = {.has_key = key != NULL, .client_hash = 7};

	if (key != NULL)
		rq.key_hash = router_key_hash(p, key, strlen(key));
	return router_select(p, &rq, excluded, scratch, rng);
}

Test(router, same_key_same_backend_and_keys_spread)
{
	struct rl_pool *p = pool_from("", "");
	struct util_rng rng;
	unsigned count[3] = {0};
	char key[32];

	util_rng_seed(&rng);
	for (int i = 0; i < 3000; i++) {
		snprintf(key, sizeof(key), "conv-%d", i);
		struct router_choice a = pick(p, key, NULL, &rng), b = pick(p, key, NULL, &rng);
		cr_assert_eq(a.backend, b.backend);
		cr_assert_eq(a.reason, ROUTER_HASHED);
		count[a.backend]++;
	}
	for (int i = 0; i < 3; i++)
		cr_expect_gt(count[i], 800, "backend %d got %u of 3000", i, count[i]);
	pool_unref(p);
}

Test(router, draining_backend_gets_no_new_key)
{
	struct rl_pool *p =
	        pool_from("", "[backend d]\naddress = 127.0.0.1:9004\nstate = draining\n");
	struct util_rng rng;
	char key[32];
	int d = pool_find(p, "d");

	util_rng_seed(&rng);
	cr_assert_geq(d, 0);
	cr_assert(!pool_placeable(p, (size_t)d));
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		cr_assert_neq(pick(p, key, NULL, &rng).backend, d);
		cr_assert_neq(pick(p, NULL, NULL, &rng).backend, d);
	}
	pool_unref(p);
}

Test(router, down_backend_moves_only_its_keys)
{
	struct rl_pool *p = pool_from("", "");
	struct util_rng rng;
	int before[1000];
	char key[32];

	util_rng_seed(&rng);
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		before[i] = pick(p, key, NULL, &rng).backend;
	}
	atomic_store(&p->b[1].rt->down, true);
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		int now = pick(p, key, NULL, &rng).backend;
		cr_assert_neq(now, 1);
		if (before[i] != 1)
			cr_assert_eq(now, before[i], "key %d moved though its backend is up", i);
	}
	pool_unref(p);
}

Test(router, excluded_backend_is_skipped_for_retry)
{
	struct rl_pool *p = pool_from("", "");
	struct util_rng rng;
	bool excluded[3] = {false, false, false};

	util_rng_seed(&rng);
	struct router_choice first = pick(p, "retry-me", NULL, &rng);
	excluded[first.backend] = true;
	struct router_choice second = pick(p, "retry-me", excluded, &rng);
	cr_assert_geq(second.backend, 0);
	cr_assert_neq(second.backend, first.backend);
	pool_unref(p);
}

Test(router, nothing_placeable_is_none)
{
	struct rl_pool *p = pool_from("", "");
	struct util_rng rng;
	bool excluded[3] = {true, true, true};

	util_rng_seed(&rng);
	struct router_choice ch = pick(p, "k", excluded, &rng);
	cr_assert_eq(ch.backend, -1);
	cr_assert_eq(ch.reason, ROUTER_NONE);
	pool_unref(p);
}

Test(router, least_loaded_prefers_fewest_inflight)
{
	struct rl_pool *p = pool_from("missing_key = least_loaded", "");
	struct util_rng rng;

	util_rng_seed(&rng);
	atomic_store(&p->b[0].rt->inflight, 5);
	atomic_store(&p->b[1].rt->inflight, 1);
	atomic_store(&p->b[2].rt->inflight, 3);
	for (int i = 0; i < 50; i++) {
		struct router_choice ch = pick(p, NULL, NULL, &rng);
		cr_assert_eq(ch.backend, 1);
		cr_assert_eq(ch.reason, ROUTER_LEAST_LOADED);
	}
	pool_unref(p);
}

Test(router, random_spreads_keyless_requests)
{
	struct rl_pool *p = pool_from("missing_key = random", "");
	struct util_rng rng;
	unsigned count[3] = {0};

	util_rng_seed(&rng);
	for (int i = 0; i < 3000; i++) {
		struct router_choice ch = pick(p, NULL, NULL, &rng);
		cr_assert_eq(ch.reason, ROUTER_RANDOM);
		count[ch.backend]++;
	}
	for (int i = 0; i < 3; i++)
		cr_expect_gt(count[i], 800);
	pool_unref(p);
}

Test(router, client_ip_is_sticky)
{
	struct rl_pool *p = pool_from("missing_key = client_ip", "");
	struct util_rng rng;

	util_rng_seed(&rng);
	struct router_choice a = pick(p, NULL, NULL, &rng);
	for (int i = 0; i < 20; i++)
		cr_assert_eq(pick(p, NULL, NULL, &rng).backend, a.backend);
	cr_assert_eq(a.reason, ROUTER_CLIENT_IP);
	pool_unref(p);
}

Test(pool, runtime_state_carries_over_by_name)
{
	struct rl_pool *p1 = pool_from("", "");
	atomic_store(&p1->b[pool_find(p1, "b")].rt->requests, 42);

	struct conf_errors errs = {0};
	struct rl_conf *c = conf_load_string("[backend b]\naddress = 127.0.0.1:9002\n"
	                                     "[backend z]\naddress = 127.0.0.1:9010\n",
	                                     "t2.ini", &errs);
	cr_assert_not_null(c);
	struct rl_pool *p2 = pool_new(c, p1);
	cr_assert_eq(p2->generation, p1->generation + 1);
	cr_assert_eq(atomic_load(&p2->b[pool_find(p2, "b")].rt->requests), 42);
	cr_assert_eq(atomic_load(&p2->b[pool_find(p2, "z")].rt->requests), 0);
	pool_unref(p1);
	cr_assert_eq(atomic_load(&p2->b[pool_find(p2, "b")].rt->requests), 42);
	pool_unref(p2);
}

Test(router, reason_names)
{
	cr_assert_str_eq(router_reason_name(ROUTER_HASHED), "hashed");
	cr_assert_str_eq(router_reason_name(ROUTER_NONE), "none");
	cr_assert_str_eq(router_reason_name((enum router_reason)99), "?");
}
