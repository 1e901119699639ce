/*
 * stats — counter storage, collection from the live atomics, and the Prometheus and JSON
 * renderings. Every figure is named by one X-macro row in stats.h; the tables below are
 * generated from those rows, so adding a row is the whole job of adding a metric.
 */
#include "stats.h"

#include "keyx.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "placement.h"
#include "server.h"

/* Histogram bucket upper bounds, microseconds (the last bucket, +Inf, has none). */
static const uint64_t latency_bounds_us[POOL_LATENCY_BUCKETS - 1] = {
        1000,   2500,   5000,    10000,   25000,   50000,    100000,
        250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

#define STATS_US_PER_S 1e6

struct stats_meta {
	const char *name;
	enum stats_kind kind;
	const char *help;
};

#define META(id, kind, help)             {#id, kind, help},
#define META_SRC(id, kind, source, help) {#id, kind, help},

static const struct stats_meta process_meta[STAT_COUNT] = {
        STATS_SERVER_ROWS(META_SRC) STATS_CONTROL_ROWS(META) STATS_DERIVED_ROWS(META)};
static const struct stats_meta backend_meta[STATB_COUNT] = {
        STATS_BACKEND_RT_ROWS(META_SRC) STATS_BACKEND_DERIVED_ROWS(META)};

#undef META
#undef META_SRC

/* Storage of the control rows (the server rows live in struct server_stats). */
static atomic_ullong control[STAT_COUNT];
static atomic_ullong proxy_errors[STATS_STATUS_MAX - STATS_STATUS_MIN + 1];

/* ---- counting ---- */

void stats_inc(enum stats_id id)
{
	if ((unsigned)id < STAT_COUNT)
		atomic_fetch_add_explicit(&control[id], 1, memory_order_relaxed);
}

void stats_proxy_error(int status)
{
	if (status >= STATS_STATUS_MIN && status <= STATS_STATUS_MAX)
		atomic_fetch_add_explicit(&proxy_errors[status - STATS_STATUS_MIN], 1,
		                          memory_order_relaxed);
}

static size_t latency_bucket(uint64_t usec)
{
	size_t i = 0;

	while (i < POOL_LATENCY_BUCKETS - 1 && usec > latency_bounds_us[i])
		i++;
	return i;
}

void stats_observe_latency(struct backend_rt *rt, uint64_t usec)
{
	atomic_fetch_add_explicit(&rt->latency[latency_bucket(usec)], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&rt->latency_sum_us, usec, memory_order_relaxed);
}

uint64_t stats_latency_bound_us(size_t i)
{
	return i < POOL_LATENCY_BUCKETS - 1 ? latency_bounds_us[i] : UINT64_MAX;
}

/* ---- names ---- */

const char *stats_health_name(enum rl_health h)
{
	static const char *const names[] = {
	        [RL_HEALTH_UP] = "up",
	        [RL_HEALTH_CHECKING] = "checking",
	        [RL_HEALTH_DOWN] = "down",
	};
	return (unsigned)h < sizeof(names) / sizeof(names[0]) ? names[h] : "?";
}

const char *stats_backend_state(const struct rl_pool *p, size_t i)
{
	const char *s = pool_state_name(p, i);

	if (strcmp(s, "down") == 0 && atomic_load(&p->b[i].rt->health) == (int)RL_HEALTH_CHECKING)
		return "checking";
	return s;
}

/* ---- collecting ---- */

static uint64_t load(atomic_ullong *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static void collect_process(const struct stats_source *src, struct stats_snapshot *out)
{
	const struct server_stats *ss = src->servers;

#define FROM_SERVER(id, kind, member, help) out->v[STAT_##id] = ss->member;
#define FROM_CONTROL(id, kind, help)        out->v[STAT_##id] = load(&control[STAT_##id]);
	STATS_SERVER_ROWS(FROM_SERVER)
	STATS_CONTROL_ROWS(FROM_CONTROL)
#undef FROM_SERVER
#undef FROM_CONTROL
	out->v[STAT_connections_open] = src->connections;
	out->v[STAT_backends] = src->pool->n;
	out->v[STAT_generation] = src->pool->generation;
	out->v[STAT_pins] = affinity_count(pool_affinity(src->pool));
	out->hash = placement_name(src->pool->placement);
	placement_fingerprint_hex(src->pool->placement->fingerprint, out->ring_fingerprint);
	for (int c = 0; c < STATS_CLASSES; c++)
		out->responses[c] = ss->responses[c + 1];
	for (size_t k = 0; k < sizeof(out->proxy_errors) / sizeof(out->proxy_errors[0]); k++)
		out->proxy_errors[k] = load(&proxy_errors[k]);
}

static void collect_latency(struct backend_rt *rt, struct stats_backend *b)
{
	uint64_t sum = 0;

	for (size_t k = 0; k < POOL_LATENCY_BUCKETS; k++) {
		sum += load(&rt->latency[k]);
		b->latency[k] = sum;
	}
	b->latency_sum_us = load(&rt->latency_sum_us);
}

static void collect_backend(const struct rl_pool *p, size_t i, const size_t *pinned,
                            struct stats_backend *b)
{
	struct backend_rt *rt = p->b[i].rt;
	int health = atomic_load(&rt->health);

	b->name = p->b[i].conf->name;
	b->address = p->b[i].conf->address.text;
	b->weight = p->b[i].conf->weight;
	b->state = stats_backend_state(p, i);
	b->health = stats_health_name((enum rl_health)health);
	b->admin_draining = atomic_load(&rt->admin_draining);
#define FROM_RT(id, kind, field, help)                                                             \
	b->v[STATB_##id] = atomic_load_explicit(&rt->field, memory_order_relaxed);
	STATS_BACKEND_RT_ROWS(FROM_RT)
#undef FROM_RT
	b->v[STATB_pinned] = pinned != NULL ? pinned[rt->id] : 0;
	b->v[STATB_health_state] = (uint64_t)health;
	b->v[STATB_placeable] = pool_placeable(p, i);
	collect_latency(rt, b);
}

int stats_collect(const struct stats_source *src, struct stats_snapshot *out)
{
	const struct rl_pool *p = src->pool;
	size_t *pinned = calloc(p->next_id > 0 ? p->next_id : 1, sizeof(*pinned));

	memset(out, 0, sizeof(*out));
	out->b = calloc(p->n > 0 ? p->n : 1, sizeof(*out->b));
	if (out->b == NULL || pinned == NULL) {
		free(pinned);
		stats_snapshot_free(out);
		return -1;
	}
	collect_process(src, out);
	for (int m = 0; m < KEYX_MISS_COUNT; m++)
		out->no_key[m] = src->servers->no_key[m];
	tls_stats(&out->tls);
	affinity_count_by_backend(pool_affinity(p), src->now_ms, pinned, p->next_id);
	for (size_t i = 0; i < p->n; i++)
		collect_backend(p, i, pinned, &out->b[i]);
	out->nbackends = p->n;
	free(pinned);
	return 0;
}

void stats_snapshot_free(struct stats_snapshot *s)
{
	free(s->b);
	s->b = NULL;
	s->nbackends = 0;
}

/* ---- escaping ---- */

void stats_json_string(FILE *out, const char *s, size_t len)
{
	fputc('"', out);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", out);
		else if (c == '\r')
			fputs("\\r", out);
		else if (c == '\t')
			fputs("\\t", out);
		else if (c < 0x20 || c == 0x7f)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void json_str(FILE *out, const char *s)
{
	stats_json_string(out, s, strlen(s));
}

void stats_prom_label_value(FILE *out, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(out, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", out);
		else
			fputc(*s, out);
	}
}

/* ---- Prometheus ---- */

static const char *prom_type(enum stats_kind k)
{
	return k == STATS_COUNTER ? "counter" : "gauge";
}

/* Family name: prefix, optional "backend_", id, "_total" for counters. */
static void prom_name(char *out, size_t cap, const char *scope, const char *id, enum stats_kind k)
{
	snprintf(out, cap, STATS_PREFIX "%s%s%s", scope, id, k == STATS_COUNTER ? "_total" : "");
}

static void prom_header(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prom_process(FILE *out, const struct stats_snapshot *s)
{
	char name[128];

	for (int id = 0; id < STAT_COUNT; id++) {
		const struct stats_meta *m = &process_meta[id];

		prom_name(name, sizeof(name), "", m->name, m->kind);
		prom_header(out, name, prom_type(m->kind), m->help);
		fprintf(out, "%s %" PRIu64 "\n", name, s->v[id]);
	}
}

static void prom_labeled_families(FILE *out, const struct stats_snapshot *s)
{
	const char *resp = STATS_PREFIX "responses_total";
	const char *errs = STATS_PREFIX "proxy_error_responses_total";

	prom_header(out, resp, "counter", "Responses sent to clients, by status class");
	for (int c = 0; c < STATS_CLASSES; c++)
		fprintf(out, "%s{class=\"%dxx\"} %" PRIu64 "\n", resp, c + 1, s->responses[c]);
	prom_header(out, errs, "counter", "Responses generated by the proxy, by status");
	for (int k = 0; k <= STATS_STATUS_MAX - STATS_STATUS_MIN; k++)
		if (s->proxy_errors[k] != 0)
			fprintf(out, "%s{status=\"%d\"} %" PRIu64 "\n", errs, k + STATS_STATUS_MIN,
			        s->proxy_errors[k]);
}

_Static_assert(STATS_NO_KEY_REASONS == KEYX_MISS_COUNT, "no-key reasons out of step");

/* Keyless requests by reason and TLS handshakes: families labelled by a reason name. */
static void prom_reason_families(FILE *out, const struct stats_snapshot *s)
{
	const char *nokey = STATS_PREFIX "requests_without_key_total";
	const char *fails = STATS_PREFIX "tls_handshake_failures_total";

	prom_header(out, nokey, "counter", "Requests without a conversation key, by reason");
	for (int m = KEYX_MISS_ABSENT; m < KEYX_MISS_COUNT; m++)
		fprintf(out, "%s{reason=\"%s\"} %" PRIu64 "\n", nokey, keyx_miss_name(m),
		        s->no_key[m]);
	prom_header(out, STATS_PREFIX "tls_handshakes_total", "counter",
	            "TLS handshakes completed");
	fprintf(out, STATS_PREFIX "tls_handshakes_total %" PRIu64 "\n", s->tls.handshakes);
	prom_header(out, STATS_PREFIX "tls_resumed_total", "counter",
	            "TLS handshakes resumed from a session ticket");
	fprintf(out, STATS_PREFIX "tls_resumed_total %" PRIu64 "\n", s->tls.resumed);
	prom_header(out, fails, "counter", "TLS handshakes that did not complete, by reason");
	for (int f = 0; f < TLS_FAIL_COUNT; f++)
		fprintf(out, "%s{reason=\"%s\"} %" PRIu64 "\n", fails, tls_fail_name(f),
		        s->tls.failed[f]);
}

/* Which placement runs: compare ring_fingerprint across instances. */
static void prom_routing(FILE *out, const struct stats_snapshot *s)
{
	const char *info = STATS_PREFIX "ring_info";

	if (s->hash == NULL)
		return;
	prom_header(out, info, "gauge",
	            "Always 1; labels: placement algorithm and fingerprint of the mapping "
	            "(equal on instances that place every key alike)");
	fprintf(out, "%s{hash=\"%s\",fingerprint=\"%s\"} 1\n", info, s->hash, s->ring_fingerprint);
}

static void prom_backend_label(FILE *out, const char *name)
{
	fputs("{backend=\"", out);
	stats_prom_label_value(out, name);
	fputc('"', out);
}

static void prom_backends(FILE *out, const struct stats_snapshot *s)
{
	char name[128];

	for (int id = 0; id < STATB_COUNT; id++) {
		const struct stats_meta *m = &backend_meta[id];

		prom_name(name, sizeof(name), "backend_", m->name, m->kind);
		prom_header(out, name, prom_type(m->kind), m->help);
		for (size_t i = 0; i < s->nbackends; i++) {
			fputs(name, out);
			prom_backend_label(out, s->b[i].name);
			fprintf(out, "} %" PRIu64 "\n", s->b[i].v[id]);
		}
	}
}

static void prom_histogram(FILE *out, const struct stats_snapshot *s)
{
	const char *h = STATS_PREFIX "backend_response_seconds";

	prom_header(out, h, "histogram",
	            "Backend response time: upstream connection taken (or connect started) to "
	            "response head");
	for (size_t i = 0; i < s->nbackends; i++) {
		const struct stats_backend *b = &s->b[i];

		for (size_t k = 0; k < POOL_LATENCY_BUCKETS; k++) {
			fprintf(out, "%s_bucket", h);
			prom_backend_label(out, b->name);
			if (k < POOL_LATENCY_BUCKETS - 1)
				fprintf(out, ",le=\"%g\"}",
				        (double)latency_bounds_us[k] / STATS_US_PER_S);
			else
				fputs(",le=\"+Inf\"}", out);
			fprintf(out, " %" PRIu64 "\n", b->latency[k]);
		}
		fprintf(out, "%s_sum", h);
		prom_backend_label(out, b->name);
		fprintf(out, "} %.6f\n", (double)b->latency_sum_us / STATS_US_PER_S);
		fprintf(out, "%s_count", h);
		prom_backend_label(out, b->name);
		fprintf(out, "} %" PRIu64 "\n", b->latency[POOL_LATENCY_BUCKETS - 1]);
	}
}

void stats_write_prometheus(FILE *out, const struct stats_snapshot *s)
{
	prom_process(out, s);
	prom_labeled_families(out, s);
	prom_routing(out, s);
	prom_reason_families(out, s);
	prom_backends(out, s);
	prom_histogram(out, s);
}

/* ---- JSON ---- */

static void json_process(FILE *out, const struct stats_snapshot *s)
{
	for (int id = 0; id < STAT_COUNT; id++)
		fprintf(out, "\"%s\":%" PRIu64 ",", process_meta[id].name, s->v[id]);
	fputs("\"responses\":{", out);
	for (int c = 0; c < STATS_CLASSES; c++)
		fprintf(out, "%s\"%dxx\":%" PRIu64, c > 0 ? "," : "", c + 1, s->responses[c]);
	fputs("},\"proxy_error_responses\":{", out);
	for (int k = 0, first = 1; k <= STATS_STATUS_MAX - STATS_STATUS_MIN; k++) {
		if (s->proxy_errors[k] == 0)
			continue;
		fprintf(out, "%s\"%d\":%" PRIu64, first ? "" : ",", k + STATS_STATUS_MIN,
		        s->proxy_errors[k]);
		first = 0;
	}
	fputs("},\"requests_without_key\":{", out);
	for (int m = KEYX_MISS_ABSENT; m < KEYX_MISS_COUNT; m++)
		fprintf(out, "%s\"%s\":%" PRIu64, m > KEYX_MISS_ABSENT ? "," : "",
		        keyx_miss_name(m), s->no_key[m]);
	fprintf(out, "},\"tls\":{\"handshakes\":%" PRIu64 ",\"resumed\":%" PRIu64 ",\"failures\":{",
	        s->tls.handshakes, s->tls.resumed);
	for (int f = 0; f < TLS_FAIL_COUNT; f++)
		fprintf(out, "%s\"%s\":%" PRIu64, f > 0 ? "," : "", tls_fail_name(f),
		        s->tls.failed[f]);
	fputs("}}", out);
}

/* ,"hash":..,"ring_fingerprint":.. when the snapshot says. */
static void json_routing(FILE *out, const struct stats_snapshot *s)
{
	if (s->hash != NULL)
		fprintf(out, ",\"hash\":\"%s\",\"ring_fingerprint\":\"%s\"", s->hash,
		        s->ring_fingerprint);
}

/* Fields shared by /stats and /backends (no braces). */
static void json_backend_head(FILE *out, const struct stats_backend *b)
{
	fputs("\"name\":", out);
	json_str(out, b->name);
	fputs(",\"address\":", out);
	json_str(out, b->address);
	fprintf(out, ",\"weight\":%u,\"state\":\"%s\",\"health\":\"%s\",\"admin_draining\":%s",
	        b->weight, b->state, b->health, b->admin_draining ? "true" : "false");
	for (int id = 0; id < STATB_COUNT; id++)
		fprintf(out, ",\"%s\":%" PRIu64, backend_meta[id].name, b->v[id]);
}

static void json_latency(FILE *out, const struct stats_backend *b)
{
	fputs(",\"latency\":{\"buckets\":[", out);
	for (size_t k = 0; k < POOL_LATENCY_BUCKETS; k++) {
		if (k < POOL_LATENCY_BUCKETS - 1)
			fprintf(out, "%s{\"le_us\":%" PRIu64 ",\"count\":%" PRIu64 "}",
			        k > 0 ? "," : "", latency_bounds_us[k], b->latency[k]);
		else
			fprintf(out, ",{\"le_us\":null,\"count\":%" PRIu64 "}", b->latency[k]);
	}
	fprintf(out, "],\"sum_us\":%" PRIu64 ",\"count\":%" PRIu64 "}", b->latency_sum_us,
	        b->latency[POOL_LATENCY_BUCKETS - 1]);
}

void stats_write_json(FILE *out, const struct stats_snapshot *s)
{
	fputc('{', out);
	json_process(out, s);
	json_routing(out, s);
	fputs(",\"backends\":[", out);
	for (size_t i = 0; i < s->nbackends; i++) {
		fputs(i > 0 ? ",{" : "{", out);
		json_backend_head(out, &s->b[i]);
		json_latency(out, &s->b[i]);
		fputc('}', out);
	}
	fputs("]}\n", out);
}

void stats_write_backends_json(FILE *out, const struct stats_snapshot *s)
{
	fputc('[', out);
	for (size_t i = 0; i < s->nbackends; i++) {
		fputs(i > 0 ? ",\n{" : "{", out);
		json_backend_head(out, &s->b[i]);
		fputc('}', out);
	}
	fputs("]\n", out);
}

/* ---- key space diff ---- */

/* Entries: cur's configured backends in order, then candidate backends new by name. */
static int diff_entries(const struct rl_pool *cur, const struct rl_conf *cand, size_t *amap,
                        size_t *bmap, struct stats_diff *d)
{
	d->m = calloc(cur->nconf + cand->nbackends + 1, sizeof(*d->m));
	if (d->m == NULL)
		return -1;
	for (size_t i = 0; i < cur->nconf; i++) {
		amap[i] = d->n;
		d->m[d->n].name = cur->b[i].conf->name;
		d->m[d->n++].removed = conf_backend(cand, cur->b[i].conf->name) == NULL;
	}
	for (size_t j = 0; j < cand->nbackends; j++) {
		int i = pool_find(cur, cand->backends[j].name);

		if (i >= 0 && (size_t)i < cur->nconf) {
			bmap[j] = amap[i];
			continue;
		}
		bmap[j] = d->n;
		d->m[d->n].name = cand->backends[j].name;
		d->m[d->n++].added = true;
	}
	return 0;
}

/* before/after/stay per entry → the moves. */
static void diff_moves(const double *before, const double *after, const double *stay,
                       struct stats_diff *d)
{
	double kept = 0;

	for (size_t e = 0; e < d->n; e++) {
		struct stats_move *m = &d->m[e];

		m->before = before[e];
		m->after = after[e];
		m->lost = before[e] - stay[e];
		m->gained = after[e] - stay[e];
		kept += stay[e];
	}
	d->moved = 1 - kept;
}

int stats_key_space_diff(const struct rl_pool *cur, const struct rl_conf *cand,
                         const struct placement *cand_pl, struct stats_diff *out)
{
	size_t nent = cur->nconf + cand->nbackends + 1;
	size_t *amap = calloc(cur->nconf + 1, sizeof(*amap));
	size_t *bmap = calloc(cand->nbackends + 1, sizeof(*bmap));
	double *share = calloc(3 * nent, sizeof(*share));
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (amap != NULL && bmap != NULL && share != NULL &&
	    diff_entries(cur, cand, amap, bmap, out) == 0 &&
	    placement_compare(cur->placement, amap, cand_pl, bmap, out->n, share, share + nent,
	                      share + 2 * nent, &out->exact) == 0) {
		diff_moves(share, share + nent, share + 2 * nent, out);
		rc = 0;
	}
	free(amap);
	free(bmap);
	free(share);
	if (rc != 0)
		stats_diff_free(out);
	return rc;
}

void stats_diff_free(struct stats_diff *d)
{
	free(d->m);
	d->m = NULL;
	d->n = 0;
}
