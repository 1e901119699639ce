/*
 * stats (and the pure helpers of admin): Prometheus text lines, JSON escaping, the
 * latency histogram, key space shares between two configurations, and the bearer token
 * and loopback checks.
 */
#define _GNU_SOURCE

#include <criterion/criterion.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "conf.h"
#include "placement.h"
#include "pool.h"
#include "stats.h"

/* ---- rendering helpers ---- */

struct out {
	FILE *f;
	char *p;
	size_t len;
};

static void out_open(struct out *o)
{
	o->p = NULL;
	o->f = open_memstream(&o->p, &o->len);
	cr_assert_not_null(o->f);
}

static char *out_close(struct out *o)
{
	cr_assert_eq(fclose(o->f), 0);
	return o->p;
}

static char *json_of(const char *s, size_t len)
{
	struct out o;

	out_open(&o);
	stats_json_string(o.f, s, len);
	return out_close(&o);
}

/* Two backends, one with a name that needs escaping in a label. */
static void fill_snapshot(struct stats_snapshot *s, struct stats_backend b[2])
{
	memset(s, 0, sizeof(*s));
	memset(b, 0, 2 * sizeof(*b));
	for (int id = 0; id < STAT_COUNT; id++)
		s->v[id] = (uint64_t)id * 10;
	s->responses[1] = 42; /* 2xx */
	s->proxy_errors[502 - STATS_STATUS_MIN] = 3;
	b[0] = (struct stats_backend){.name = "bot-1",
	                              .address = "127.0.0.1:9001",
	                              .weight = 1,
	                              .state = "up",
	                              .health = "up"};
	b[1] = (struct stats_backend){.name = "we\"ird\\na\nme",
	                              .address = "[::1]:9002",
	                              .weight = 2,
	                              .state = "checking",
	                              .health = "checking"};
	for (int k = 0; k < POOL_LATENCY_BUCKETS; k++)
		b[0].latency[k] = k < 3 ? 0 : 5; /* cumulative */
	b[0].latency_sum_us = 12345;
	b[0].v[STATB_requests] = 7;
	s->b = b;
	s->nbackends = 2;
	s->hash = "ring";
	snprintf(s->ring_fingerprint, sizeof(s->ring_fingerprint), "%s", "3f2a00000000000b");
}

static char *prometheus_text(void)
{
	struct stats_snapshot s;
	struct stats_backend b[2];
	struct out o;

	fill_snapshot(&s, b);
	out_open(&o);
	stats_write_prometheus(o.f, &s);
	return out_close(&o);
}

/* ---- Prometheus ---- */

Test(prometheus, every_line_is_help_type_or_a_valid_sample)
{
	char *text = prometheus_text();
	regex_t re;
	int samples = 0;

	cr_assert_eq(
	        regcomp(&re,
	                "^[a-zA-Z_:][a-zA-Z0-9_:]*(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\""
	                "(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\")*\\})? "
	                "-?[0-9]+(\\.[0-9]+)?$",
	                REG_EXTENDED | REG_NOSUB),
	        0);
	for (char *save = NULL, *l = strtok_r(text, "\n", &save); l != NULL;
	     l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, "# HELP ringleader_", 18) == 0 ||
		    strncmp(l, "# TYPE ringleader_", 18) == 0)
			continue;
		cr_expect_eq(regexec(&re, l, 0, NULL, 0), 0, "bad line: \"%s\"", l);
		cr_expect_eq(strncmp(l, "ringleader_", 11), 0, "%s", l);
		samples++;
	}
	regfree(&re);
	cr_expect_gt(samples, STAT_COUNT);
	free(text);
}

Test(prometheus, counters_end_in_total_and_have_help_and_type)
{
	char *text = prometheus_text();

	cr_expect(strstr(text, "# HELP ringleader_requests_total Request heads parsed\n") != NULL);
	cr_expect(strstr(text, "# TYPE ringleader_requests_total counter\n") != NULL);
	cr_expect(strstr(text, "# TYPE ringleader_connections_open gauge\n") != NULL);
	cr_expect(strstr(text, "# TYPE ringleader_backend_inflight gauge\n") != NULL);
	cr_expect(strstr(text, "# TYPE ringleader_backend_requests_total counter\n") != NULL);
	cr_expect(strstr(text, "# TYPE ringleader_backend_response_seconds histogram\n") != NULL);
	cr_expect(strstr(text, "ringleader_responses_total{class=\"2xx\"} 42\n") != NULL);
	cr_expect(strstr(text, "ringleader_proxy_error_responses_total{status=\"502\"} 3\n") !=
	          NULL);
	cr_expect(strstr(text, "ringleader_backend_requests_total{backend=\"bot-1\"} 7\n") != NULL);
	free(text);
}

Test(prometheus, label_values_are_escaped)
{
	char *text = prometheus_text();

	cr_expect(strstr(text, "{backend=\"we\\\"ird\\\\na\\nme\"}") != NULL, "%s", text);
	cr_expect(strstr(text, "we\"ird") == NULL, "an unescaped quote leaked into a label");
	free(text);
}

Test(prometheus, histogram_is_cumulative_with_inf_sum_and_count)
{
	char *text = prometheus_text();

	cr_expect(strstr(text, "ringleader_backend_response_seconds_bucket{backend=\"bot-1\","
	                       "le=\"0.001\"} 0\n") != NULL);
	cr_expect(strstr(text, "ringleader_backend_response_seconds_bucket{backend=\"bot-1\","
	                       "le=\"0.01\"} 5\n") != NULL);
	cr_expect(strstr(text, "ringleader_backend_response_seconds_bucket{backend=\"bot-1\","
	                       "le=\"+Inf\"} 5\n") != NULL);
	cr_expect(strstr(text, "ringleader_backend_response_seconds_sum{backend=\"bot-1\"} "
	                       "0.012345\n") != NULL);
	cr_expect(
	        strstr(text, "ringleader_backend_response_seconds_count{backend=\"bot-1\"} 5\n") !=
	        NULL);
	free(text);
}

/* ---- JSON ---- */

Test(routing, placement_and_fingerprint_in_stats_and_metrics)
{
	struct stats_snapshot s;
	struct stats_backend b[2];
	struct out o;
	char *text;

	fill_snapshot(&s, b);
	out_open(&o);
	stats_write_json(o.f, &s);
	text = out_close(&o);
	cr_expect_not_null(
	        strstr(text, "\"hash\":\"ring\",\"ring_fingerprint\":\"3f2a00000000000b\""), "%s",
	        text);
	free(text);
	text = prometheus_text();
	cr_expect_not_null(strstr(
	        text,
	        "\nringleader_ring_info{hash=\"ring\",fingerprint=\"3f2a00000000000b\"} 1\n"));
	free(text);
	/* a snapshot that names no placement prints neither */
	s.hash = NULL;
	out_open(&o);
	stats_write_json(o.f, &s);
	text = out_close(&o);
	cr_expect_null(strstr(text, "ring_fingerprint"));
	free(text);
}

Test(json, strings_are_escaped)
{
	static const struct {
		const char *in;
		size_t len;
		const char *want;
	} cases[] = {
	        {"plain", 5, "\"plain\""},
	        {"q\"b\\s", 5, "\"q\\\"b\\\\s\""},
	        {"a\nb\rc\td", 7, "\"a\\nb\\rc\\td\""},
	        {"\x01\x1f\x7f", 3, "\"\\u0001\\u001f\\u007f\""},
	        {"nul\0x", 5, "\"nul\\u0000x\""},
	        {"caf\xc3\xa9", 5, "\"caf\xc3\xa9\""},
	        {"", 0, "\"\""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = json_of(cases[i].in, cases[i].len);

		cr_expect_str_eq(got, cases[i].want, "case %zu", i);
		free(got);
	}
}

Test(json, backends_array_has_the_lifecycle_fields)
{
	struct stats_snapshot s;
	struct stats_backend b[2];
	struct out o;
	char *text;

	fill_snapshot(&s, b);
	out_open(&o);
	stats_write_backends_json(o.f, &s);
	text = out_close(&o);
	cr_expect(strncmp(text,
	                  "[{\"name\":\"bot-1\",\"address\":\"127.0.0.1:9001\",\"weight\":1,"
	                  "\"state\":\"up\",\"health\":\"up\"",
	                  strlen("[{\"name\":\"bot-1\",\"address\":\"127.0.0.1:9001\",\"weight\":1,"
	                         "\"state\":\"up\",\"health\":\"up\"")) == 0,
	          "%s", text);
	cr_expect(strstr(text, "\"name\":\"we\\\"ird\\\\na\\nme\"") != NULL, "%s", text);
	cr_expect(strstr(text, "\"pinned\":0") != NULL);
	cr_expect(strstr(text, "\"requests\":7") != NULL);
	free(text);
}

/* ---- counting ---- */

Test(latency, observations_land_in_the_right_bucket)
{
	struct backend_rt *rt = calloc(1, sizeof(*rt));

	cr_assert_not_null(rt);
	stats_observe_latency(rt, 0);
	stats_observe_latency(rt, 1000);     /* on the bound: le 1 ms */
	stats_observe_latency(rt, 1001);     /* next bucket */
	stats_observe_latency(rt, 60000000); /* a minute: +Inf */
	cr_expect_eq(atomic_load(&rt->latency[0]), 2);
	cr_expect_eq(atomic_load(&rt->latency[1]), 1);
	cr_expect_eq(atomic_load(&rt->latency[POOL_LATENCY_BUCKETS - 1]), 1);
	cr_expect_eq(atomic_load(&rt->latency_sum_us), 60002001);
	for (size_t i = 1; i < POOL_LATENCY_BUCKETS; i++)
		cr_expect_gt(stats_latency_bound_us(i), stats_latency_bound_us(i - 1));
	cr_expect_eq(stats_latency_bound_us(POOL_LATENCY_BUCKETS - 1), UINT64_MAX);
	free(rt);
}

Test(names, health_names_round_trip)
{
	cr_expect_str_eq(stats_health_name(RL_HEALTH_UP), "up");
	cr_expect_str_eq(stats_health_name(RL_HEALTH_CHECKING), "checking");
	cr_expect_str_eq(stats_health_name(RL_HEALTH_DOWN), "down");
	cr_expect_str_eq(stats_health_name((enum rl_health)99), "?");
}

/* ---- key space diff ---- */

static struct rl_conf *conf_of_backends(int n, const char *routing)
{
	char text[4096];
	size_t len;
	struct conf_errors errs = {0};
	struct rl_conf *c;

	len = (size_t)snprintf(text, sizeof(text), "[routing]\naffinity_max = 1000\n%s\n", routing);
	for (int i = 1; i <= n; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len,
		                        "[backend bot-%d]\naddress = 127.0.0.1:%d\n", i, 9000 + i);
	c = conf_load_string(text, "t.ini", &errs);
	for (size_t i = 0; i < errs.n; i++)
		cr_log_error("%s", errs.msg[i]);
	conf_errors_free(&errs);
	cr_assert_not_null(c);
	return c;
}

static struct placement *table_of(const struct rl_conf *c)
{
	return placement_from_conf(c);
}

struct diff_case {
	struct rl_pool *cur;  /* 3 backends */
	struct rl_conf *cand; /* the names in d borrow from cur and cand */
	struct stats_diff d;
};

/* Diff of a 3-backend pool against a candidate of n backends. */
static void diff_against(int n, const char *cand_routing, struct diff_case *dc)
{
	struct placement *t;

	dc->cur = pool_new(conf_of_backends(3, ""), NULL);
	dc->cand = conf_of_backends(n, cand_routing);
	t = table_of(dc->cand);
	cr_assert_not_null(dc->cur);
	cr_assert_not_null(t);
	cr_assert_eq(stats_key_space_diff(dc->cur, dc->cand, t, &dc->d), 0);
	placement_free(t);
}

static void diff_case_free(struct diff_case *dc)
{
	stats_diff_free(&dc->d);
	conf_free(dc->cand);
	pool_unref(dc->cur);
}

static void expect_shares_sum_to_one(const struct stats_diff *d)
{
	double before = 0, after = 0, gained = 0, lost = 0;

	for (size_t i = 0; i < d->n; i++) {
		before += d->m[i].before;
		after += d->m[i].after;
		gained += d->m[i].gained;
		lost += d->m[i].lost;
	}
	cr_expect(fabs(before - 1) < 1e-9 && fabs(after - 1) < 1e-9, "%f %f", before, after);
	cr_expect(fabs(gained - d->moved) < 1e-9 && fabs(lost - d->moved) < 1e-9);
}

Test(diff, same_configuration_moves_nothing)
{
	struct diff_case dc;

	diff_against(3, "", &dc);
	cr_expect(dc.d.exact);
	cr_expect_eq(dc.d.n, 3);
	cr_expect(dc.d.moved < 1e-12, "moved %f", dc.d.moved);
	expect_shares_sum_to_one(&dc.d);
	diff_case_free(&dc);
}

Test(diff, a_fourth_backend_takes_a_quarter_from_the_others)
{
	struct diff_case dc;
	const struct stats_move *m;

	diff_against(4, "", &dc);
	m = dc.d.m;
	cr_expect(dc.d.exact);
	cr_assert_eq(dc.d.n, 4);
	cr_expect_str_eq(m[3].name, "bot-4");
	cr_expect(m[3].added && !m[0].added && !m[0].removed);
	cr_expect(fabs(dc.d.moved - 0.25) < 0.01, "moved %f", dc.d.moved);
	cr_expect(fabs(m[3].gained - 0.25) < 0.01);
	for (int i = 0; i < 3; i++)
		cr_expect(fabs(m[i].lost - 0.25 / 3) < 0.01, "%s lost %f", m[i].name, m[i].lost);
	expect_shares_sum_to_one(&dc.d);
	diff_case_free(&dc);
}

Test(diff, a_removed_backend_loses_its_whole_share)
{
	struct diff_case dc;
	const struct stats_move *gone;

	diff_against(2, "", &dc);
	cr_assert_eq(dc.d.n, 3);
	gone = &dc.d.m[2];
	cr_expect(gone->removed);
	cr_expect(fabs(gone->lost - gone->before) < 1e-9);
	cr_expect(gone->after == 0);
	expect_shares_sum_to_one(&dc.d);
	diff_case_free(&dc);
}

Test(diff, another_seed_is_an_estimate_of_a_full_reshuffle)
{
	struct diff_case dc;

	diff_against(3, "hash_seed = 42", &dc);
	cr_expect_not(dc.d.exact);
	cr_expect(fabs(dc.d.moved - 2.0 / 3) < 0.01, "moved %f", dc.d.moved);
	diff_case_free(&dc);
}

/* ---- admin helpers ---- */

Test(admin, bearer_token_check)
{
	cr_expect(admin_token_ok(NULL, ""));
	cr_expect(admin_token_ok("anything", ""));
	cr_expect(admin_token_ok("Bearer s3cret", "s3cret"));
	cr_expect(admin_token_ok("bearer s3cret", "s3cret"));
	cr_expect_not(admin_token_ok(NULL, "s3cret"));
	cr_expect_not(admin_token_ok("s3cret", "s3cret"));
	cr_expect_not(admin_token_ok("Bearer s3cre", "s3cret"));
	cr_expect_not(admin_token_ok("Bearer s3cretX", "s3cret"));
	cr_expect_not(admin_token_ok("Bearer S3cret", "s3cret"));
	cr_expect_not(admin_token_ok("Bearer ", "s3cret"));
	cr_expect_not(admin_token_ok("Basic s3cret", "s3cret"));
}

static bool loopback(const char *text)
{
	struct rl_addr a;

	cr_assert_eq(conf_parse_addr(text, &a), 0, "%s", text);
	return admin_addr_is_loopback(&a);
}

Test(admin, loopback_addresses)
{
	cr_expect(loopback("127.0.0.1:9901"));
	cr_expect(loopback("127.9.8.7:9901"));
	cr_expect(loopback("[::1]:9901"));
	cr_expect_not(loopback("0.0.0.0:9901"));
	cr_expect_not(loopback("10.0.0.1:9901"));
	cr_expect_not(loopback("[::]:9901"));
	cr_expect_not(loopback("*:9901"));
}
