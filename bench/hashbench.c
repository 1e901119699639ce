/*
 * hashbench — the placement algorithms as the proxy runs them (proxy/placement.h), measured
 * by the method of research/hashing.md §7 and printed in its §7.6 line format:
 *
 *   balance     exact shares from the table (x…, maglev and ring) and sampled counts with
 *               χ²/dof against the weights, beside the floor row (a perfect random map of the
 *               same keys)
 *   disruption  eject one / eject 10 % / drain one (overlay), remove / add one, halve or
 *               double one weight (rebuild): moved, × optimum, × own, stray
 *   speed       lookup ns in throughput and latency modes, build ms (median), memory; key
 *               hashing (XXH3-64, CRC32) and the whole router_route pick path (p50/p99)
 *   bounded     steady-state spill and live PMR at c = 1.25 and 1.10 (§7.5)
 *
 * Default run: K = 10^6 keys (fewer for O(n) rendezvous at n = 1000), disruption on
 * 2·10^5, weighted pools up to n = 100; about a minute. --full: K = 10^7, 4·10^6,
 * weighted n = 1000 too (minutes; a 20M-point ring). Timings depend on the machine:
 * compare runs on one machine, or callgrind instruction counts.
 *
 *   hashbench [--full] [--policy maglev|rendezvous|ring] [--n 10,100,1000] [--keys K]
 */
#define _GNU_SOURCE

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf.h"
#include "hash.h"
#include "ketama.h"
#include "log.h"
#include "placement.h"
#include "pool.h"
#include "router.h"

#define HB_GOLDEN        0x9e3779b97f4a7c15ULL
#define HB_KEY_SEED      0x6b657973ULL /* key generator seed */
#define HB_WEIGHT_SEED   777           /* research §7.1 */
#define HB_TRIAL_SEED    0x747269616cULL
#define HB_FLOOR_SALT    0xf100f100f100f100ULL
#define HB_MAX_N         1000
#define HB_ID_LEN        36 /* UUID-style conversation id */
#define HB_WARMUP        100000
#define HB_REPS          3
#define HB_BUILDS        5
#define HB_PER           100  /* live conversations per backend (§7.5) */
#define HB_PMR_EVERY     1024 /* live PMR sampled every this many steps */
#define HB_PICK_BATCH    64   /* router_route calls timed together */
#define HB_PICK_BATCHES  2000
#define HB_LOOKUP_BUDGET 2e8 /* (lookups × n) for one O(n) rendezvous pass */

struct opts {
	size_t keys;  /* balance and speed keys */
	size_t dkeys; /* disruption keys */
	int trials;   /* per disruption event */
	bool full;
	int policy;          /* -1 = all, else enum rl_hash */
	size_t ns[8], nn;    /* pool sizes */
	size_t weighted_max; /* largest n run with weights U[1,256] */
};

/* ---- keys and backends ---- */

static volatile uint64_t hb_sink; /* results the compiler must not drop */

static uint64_t next_u64(uint64_t *s)
{
	*s += HB_GOLDEN;
	return hash_mix64(*s);
}

static void make_id(uint64_t *state, char out[HB_ID_LEN + 1])
{
	uint64_t a = next_u64(state), b = next_u64(state);

	snprintf(out, HB_ID_LEN + 1, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(a >> 32),
	         (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xffff, (unsigned)(b >> 48),
	         (unsigned long long)(b & 0xffffffffffffULL));
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The key corpus hashed both ways: XXH3-64 (seed 0) and CRC32 (the ring). */
struct corpus {
	size_t k;
	uint64_t *xxh; /* maglev, rendezvous */
	uint64_t *crc; /* ring */
	double xxh_ns, crc_ns;
};

/* Hash the ids of a slice again, timing only the hash function. */
static double time_hash(bool crc, size_t m)
{
	char(*ids)[HB_ID_LEN + 1] = malloc(m * sizeof(*ids));
	uint64_t state = HB_KEY_SEED, acc = 0;
	double t0, ns = 0;

	if (ids == NULL)
		return 0;
	for (size_t i = 0; i < m; i++)
		make_id(&state, ids[i]);
	t0 = now_s();
	for (size_t i = 0; i < m; i++)
		acc += crc ? ketama_crc32(ids[i], HB_ID_LEN) : hash64(ids[i], HB_ID_LEN, 0);
	ns = (now_s() - t0) * 1e9 / (double)m;
	free(ids);
	hb_sink = acc; /* keeps the loop */
	return ns;
}

static void corpus_make(struct corpus *c, size_t k)
{
	uint64_t state = HB_KEY_SEED;
	char id[HB_ID_LEN + 1];

	c->k = k;
	c->xxh = malloc(k * sizeof(*c->xxh));
	c->crc = malloc(k * sizeof(*c->crc));
	if (c->xxh == NULL || c->crc == NULL) {
		fprintf(stderr, "hashbench: out of memory for %zu keys\n", k);
		exit(1);
	}
	for (size_t i = 0; i < k; i++) {
		make_id(&state, id);
		c->xxh[i] = hash64(id, HB_ID_LEN, 0);
		c->crc[i] = ketama_crc32(id, HB_ID_LEN);
	}
	c->xxh_ns = time_hash(false, k < 1000000 ? k : 1000000);
	c->crc_ns = time_hash(true, k < 1000000 ? k : 1000000);
}

static const uint64_t *corpus_for(const struct corpus *c, enum rl_hash kind)
{
	return kind == RL_HASH_RING ? c->crc : c->xxh;
}

/* A pool of n backends, names bot-%04zu.svc:8080, unique addresses, caller order. */
struct pool_def {
	size_t n;
	char (*name)[40];
	char (*addr)[40];
	struct placement_backend *b;
};

static void def_init(struct pool_def *d, size_t n, bool weighted)
{
	uint64_t ws = HB_WEIGHT_SEED;

	d->n = n;
	d->name = calloc(n + 1, sizeof(*d->name));
	d->addr = calloc(n + 1, sizeof(*d->addr));
	d->b = calloc(n + 1, sizeof(*d->b));
	for (size_t i = 0; i <= n; i++) { /* one spare for "add" */
		snprintf(d->name[i], sizeof(d->name[i]), "bot-%04zu.svc:8080", i);
		snprintf(d->addr[i], sizeof(d->addr[i]), "10.%zu.%zu.%zu:8080", i >> 16,
		         (i >> 8) & 0xff, i & 0xff);
		d->b[i] = (struct placement_backend){
		        d->name[i], d->addr[i], weighted ? 1 + (unsigned)(next_u64(&ws) % 256) : 1};
	}
}

static void def_free(struct pool_def *d)
{
	free(d->name);
	free(d->addr);
	free(d->b);
}

static double def_weight(const struct placement_backend *b, size_t n)
{
	double w = 0;

	for (size_t i = 0; i < n; i++)
		w += b[i].weight;
	return w;
}

static struct placement *build_or_die(enum rl_hash kind, const struct placement_backend *b,
                                      size_t n)
{
	struct placement *pl = placement_new(kind, b, n, 0);

	if (pl == NULL) {
		fprintf(stderr, "hashbench: %s build failed (n=%zu)\n", conf_hash_name(kind), n);
		exit(1);
	}
	return pl;
}

static void size_word(const struct placement *pl, char *out, size_t len)
{
	if (pl->ops->kind == RL_HASH_RENDEZVOUS)
		snprintf(out, len, "M=-");
	else
		placement_describe(pl, out, len);
}

/* Keys a pass may use: everything, except O(n) rendezvous at large n. */
static size_t budget(enum rl_hash kind, size_t n, size_t want)
{
	size_t cap = (size_t)(HB_LOOKUP_BUDGET / (double)n);

	return kind == RL_HASH_RENDEZVOUS && cap < want ? cap : want;
}

/* ---- balance (§7.2) ---- */

struct spread {
	double pmr, min, cov, chi2dof;
};

/* Ratios share/expected and χ²/dof of counts (NULL counts: ratios only, no χ²). */
static struct spread spread_of(const double *share, const unsigned *count, size_t k,
                               const double *expect, size_t n)
{
	struct spread s = {0, INFINITY, 0, 0};
	double chi2 = 0;

	for (size_t i = 0; i < n; i++) {
		double r = share[i] / expect[i];

		s.pmr = fmax(s.pmr, r);
		s.min = fmin(s.min, r);
		s.cov += (r - 1) * (r - 1);
		if (count != NULL) {
			double e = expect[i] * (double)k;
			chi2 += (count[i] - e) * (count[i] - e) / e;
		}
	}
	s.cov = sqrt(s.cov / (double)n);
	s.chi2dof = chi2 / (double)(n - 1);
	return s;
}

/* Perfect random assignment of the same keys by weight: the sampling floor. */
static size_t floor_pick(uint64_t h, const double *cum, size_t n)
{
	double u = (double)(hash_mix64(h ^ HB_FLOOR_SALT) >> 11) * 0x1.0p-53;
	size_t lo = 0, hi = n - 1;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (cum[mid] > u)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static void run_balance(enum rl_hash kind, const struct pool_def *d, const struct corpus *c,
                        size_t keys, const char *wname)
{
	size_t n = d->n;
	struct placement *pl = build_or_die(kind, d->b, n);
	const uint64_t *h = corpus_for(c, kind);
	double *share = calloc(n, sizeof(*share)), *expect = calloc(n, sizeof(*expect));
	double *cum = calloc(n, sizeof(*cum)), *sampled = calloc(n, sizeof(*sampled));
	double *fshare = calloc(n, sizeof(*fshare)), w = def_weight(d->b, n), acc = 0;
	unsigned *count = calloc(n, sizeof(*count)), *fcount = calloc(n, sizeof(*fcount));
	char size[32];

	for (size_t i = 0; i < n; i++) {
		expect[i] = d->b[i].weight / w;
		acc += expect[i];
		cum[i] = acc;
	}
	cum[n - 1] = 1.0;
	placement_shares(pl, share);
	for (size_t i = 0; i < keys; i++) {
		count[placement_lookup(pl, h[i], NULL)]++;
		fcount[floor_pick(c->xxh[i], cum, n)]++;
	}
	for (size_t i = 0; i < n; i++) {
		sampled[i] = (double)count[i] / (double)keys;
		fshare[i] = (double)fcount[i] / (double)keys;
	}
	struct spread x = spread_of(share, NULL, 0, expect, n);
	struct spread s = spread_of(sampled, count, keys, expect, n);
	struct spread f = spread_of(fshare, fcount, keys, expect, n);
	size_word(pl, size, sizeof(size));
	printf("policy=%s %s n=%zu w=%s K=%zu ", placement_name(pl), size, n, wname, keys);
	if (kind == RL_HASH_RENDEZVOUS)
		printf("xPMR=- xmin=- xCoV=- ");
	else
		printf("xPMR=%.4f xmin=%.4f xCoV=%.4f ", x.pmr, x.min, x.cov);
	printf("PMR=%.4f min=%.4f CoV=%.4f chi2dof=%.2f floorPMR=%.4f floorchi2dof=%.2f\n", s.pmr,
	       s.min, s.cov, s.chi2dof, f.pmr, f.chi2dof);
	fflush(stdout);
	placement_free(pl);
	free(share);
	free(expect);
	free(cum);
	free(sampled);
	free(fshare);
	free(count);
	free(fcount);
}

/* ---- disruption (§7.3) ---- */

enum event { EV_EJECT, EV_EJECT10, EV_DRAIN, EV_REMOVE, EV_ADD, EV_HALVE, EV_DOUBLE, EV_COUNT };
static const char *const event_names[] = {"eject", "eject10%", "drain", "remove",
                                          "add",   "halve",    "double"};

struct tally {
	double moved, xopt, xown, stray;
	int trials;
};

/*
 * One trial: before[] holds the owner name index of each key under the base pool. The
 * event changes backends flagged in changed[] (by name index, n + 1 entries).
 */
static void trial(enum rl_hash kind, const struct pool_def *d, const uint64_t *h, size_t keys,
                  const int *before, enum event ev, uint64_t *rs, struct tally *t)
{
	size_t n = d->n, victim = (size_t)(next_u64(rs) % (n - 1)); /* never the last */
	bool *eligible = calloc(n + 1, sizeof(*eligible)), *changed = calloc(n + 1, sizeof(bool));
	struct placement_backend *b = calloc(n + 1, sizeof(*b));
	int *idx = calloc(n + 1, sizeof(*idx)); /* placement index → name index */
	size_t nb = n;
	double w = def_weight(d->b, n), opt = 0;
	struct placement *pl = NULL;

	memcpy(b, d->b, n * sizeof(*b));
	for (size_t i = 0; i <= n; i++) {
		idx[i] = (int)i;
		eligible[i] = true;
	}
	switch (ev) {
	case EV_EJECT:
	case EV_DRAIN:
		eligible[victim] = false;
		changed[victim] = true;
		opt = b[victim].weight / w;
		break;
	case EV_EJECT10:
		for (size_t k = 0; k < (n + 9) / 10;) {
			size_t v = (size_t)(next_u64(rs) % (n - 1));
			if (!changed[v]) {
				changed[v] = true;
				eligible[v] = false;
				opt += b[v].weight / w;
				k++;
			}
		}
		break;
	case EV_REMOVE:
		changed[victim] = true;
		opt = b[victim].weight / w;
		b[victim] = b[n - 1];
		idx[victim] = (int)(n - 1);
		nb = n - 1;
		break;
	case EV_ADD:
		b[n] = d->b[n];
		changed[n] = true;
		nb = n + 1;
		opt = b[n].weight / (w + b[n].weight);
		break;
	case EV_HALVE:
	case EV_DOUBLE: {
		unsigned old = b[victim].weight;
		unsigned nw =
		        ev == EV_HALVE ? (old > 1 ? old / 2 : 1) : (old * 2 > 256 ? 256 : old * 2);
		b[victim].weight = nw;
		changed[victim] = true;
		opt = fabs(nw / (w - old + nw) - old / w);
		break;
	}
	case EV_COUNT:
		break;
	}
	pl = build_or_die(kind, b, nb);
	bool overlay = ev == EV_EJECT || ev == EV_EJECT10 || ev == EV_DRAIN;
	size_t moved = 0, stray = 0, own_before = 0, own_after = 0;
	for (size_t i = 0; i < keys; i++) {
		int a = idx[placement_lookup(pl, h[i], overlay ? eligible : NULL)];
		int f = before[i];

		own_before += changed[f];
		own_after += changed[a];
		if (a == f)
			continue;
		moved++;
		stray += !changed[a] && !changed[f];
	}
	/* own: keys the changed backends had (eject, remove), got (add), or the net change */
	double own = ev == EV_ADD ? (double)own_after
	             : (ev == EV_HALVE || ev == EV_DOUBLE)
	                     ? fabs((double)own_after - (double)own_before)
	                     : (double)own_before;
	double mv = (double)moved / (double)keys;
	if (opt > 0) {
		t->moved += mv;
		t->xopt += mv / opt;
		t->xown += own > 0 ? (double)moved / own : 0;
		t->stray += (double)stray / (double)keys;
		t->trials++;
	}
	placement_free(pl);
	free(eligible);
	free(changed);
	free(b);
	free(idx);
}

static void run_disruption(enum rl_hash kind, const struct pool_def *d, const struct corpus *c,
                           size_t keys, int trials, bool weighted)
{
	size_t n = d->n;
	struct placement *pl = build_or_die(kind, d->b, n);
	const uint64_t *h = corpus_for(c, kind);
	int *before = malloc(keys * sizeof(*before));
	char size[32];

	size_word(pl, size, sizeof(size));
	for (size_t i = 0; i < keys; i++)
		before[i] = placement_lookup(pl, h[i], NULL);
	for (int ev = 0; ev < EV_COUNT; ev++) {
		struct tally t = {0};
		uint64_t rs = HB_TRIAL_SEED + (uint64_t)ev;

		if (ev == EV_HALVE && !weighted)
			continue; /* weight 1 cannot halve */
		for (int k = 0; k < trials; k++)
			trial(kind, d, h, keys, before, (enum event)ev, &rs, &t);
		if (t.trials == 0)
			continue;
		printf("policy=%s %s n=%zu w=%s K=%zu event=%s moved=%.3f%% xopt=%.3f xown=%.3f "
		       "stray=%.3f%%\n",
		       placement_name(pl), size, n, weighted ? "weighted" : "uniform", keys,
		       event_names[ev], 100 * t.moved / t.trials, t.xopt / t.trials,
		       t.xown / t.trials, 100 * t.stray / t.trials);
		fflush(stdout);
	}
	placement_free(pl);
	free(before);
}

/* ---- speed (§7.4) ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void run_speed(enum rl_hash kind, const struct pool_def *d, const struct corpus *c,
                      size_t keys, bool weighted)
{
	size_t n = d->n, mask = 1;
	const uint64_t *h = corpus_for(c, kind);
	double builds[HB_BUILDS], thr = INFINITY, lat = INFINITY;
	int nbuilds = (kind == RL_HASH_RING && weighted && n >= 1000) ? 2 : HB_BUILDS;
	struct placement *pl = NULL;
	uint64_t sink = 0;
	size_t lookups = budget(kind, n, keys);
	char size[32];

	for (int i = 0; i < nbuilds; i++) {
		double t0 = now_s();
		struct placement *x = build_or_die(kind, d->b, n);
		builds[i] = (now_s() - t0) * 1e3;
		if (pl == NULL)
			pl = x;
		else
			placement_free(x);
	}
	qsort(builds, (size_t)nbuilds, sizeof(builds[0]), cmp_double);
	while (mask * 2 <= keys)
		mask *= 2;
	mask--;
	for (size_t i = 0; i < HB_WARMUP && i < keys; i++)
		sink += (uint64_t)placement_lookup(pl, h[i], NULL);
	for (int rep = 0; rep < HB_REPS; rep++) {
		uint64_t acc = 0;
		size_t idx = 0;
		double t0 = now_s();

		for (size_t i = 0; i < lookups; i++)
			acc += (uint64_t)placement_lookup(pl, h[i], NULL);
		thr = fmin(thr, (now_s() - t0) * 1e9 / (double)lookups);
		t0 = now_s();
		for (size_t i = 0; i < lookups; i++) {
			int r = placement_lookup(pl, h[idx], NULL);
			idx = (idx + 1 + ((unsigned)r & 1)) & mask;
		}
		lat = fmin(lat, (now_s() - t0) * 1e9 / (double)lookups);
		sink += acc + idx;
	}
	size_word(pl, size, sizeof(size));
	printf("policy=%s %s n=%zu w=%s lookup_thr_ns=%.2f lookup_lat_ns=%.2f build_ms=%.2f "
	       "mem_B=%zu\n",
	       placement_name(pl), size, n, weighted ? "weighted" : "uniform", thr, lat,
	       builds[nbuilds / 2], placement_bytes(pl));
	fflush(stdout);
	placement_free(pl);
	hb_sink = sink;
}

/* Median and 99th percentile of router_route on new keys (pin miss, overlay, [cap],
 * placement, pin), ns per call, timed in batches. */
static void pick_path(enum rl_hash kind, size_t n, double factor, double *p50, double *p99)
{
	size_t cap = 256 + n * 64, len = 0, total = HB_PICK_BATCH * HB_PICK_BATCHES;
	char *text = malloc(cap), id[HB_ID_LEN + 1];
	struct conf_errors errs = {0};
	struct rl_conf *conf;
	struct rl_pool *p;
	struct router_request *rq = malloc(total * sizeof(*rq));
	double *batch = malloc(HB_PICK_BATCHES * sizeof(*batch));
	bool *scratch = calloc(n, sizeof(*scratch));
	struct util_rng rng;
	uint64_t state = HB_KEY_SEED ^ 0x7069636bULL;

	len += (size_t)snprintf(text + len, cap - len,
	                        "[routing]\nhash = %s\nbalance_factor = %g\naffinity_max = %zu\n",
	                        conf_hash_name(kind), factor, total * 2);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap - len,
		                        "[backend bot-%04zu]\naddress = 10.%zu.%zu.%zu:8080\n", i,
		                        i >> 16, (i >> 8) & 0xff, i & 0xff);
	conf = conf_load_string(text, "hashbench", &errs);
	free(text);
	conf_errors_free(&errs);
	p = conf != NULL ? pool_new(conf, NULL) : NULL;
	if (p == NULL || rq == NULL || batch == NULL || scratch == NULL) {
		fprintf(stderr, "hashbench: no pool for the pick path\n");
		exit(1);
	}
	util_rng_seed(&rng);
	for (size_t i = 0; i < total; i++) {
		make_id(&state, id);
		rq[i] = (struct router_request){.has_key = true,
		                                .key_hash = router_key_hash(p, id, HB_ID_LEN),
		                                .pin_key = router_pin_key(p, id, HB_ID_LEN),
		                                .now_ms = 1};
	}
	for (size_t k = 0; k < HB_PICK_BATCHES; k++) {
		double t0 = now_s();
		for (size_t j = 0; j < HB_PICK_BATCH; j++)
			router_route(p, &rq[k * HB_PICK_BATCH + j], NULL, scratch, &rng);
		batch[k] = (now_s() - t0) * 1e9 / HB_PICK_BATCH;
	}
	qsort(batch, HB_PICK_BATCHES, sizeof(*batch), cmp_double);
	*p50 = batch[HB_PICK_BATCHES / 2];
	*p99 = batch[HB_PICK_BATCHES * 99 / 100];
	pool_unref(p);
	free(rq);
	free(batch);
	free(scratch);
}

static void run_pick(enum rl_hash kind, size_t n)
{
	double p50, p99, c50, c99;

	pick_path(kind, n, 0, &p50, &p99);
	pick_path(kind, n, 1.25, &c50, &c99);
	printf("policy=%s n=%zu pick_p50_ns=%.1f pick_p99_ns=%.1f capped_p50_ns=%.1f "
	       "capped_p99_ns=%.1f (router_route on new keys: pin miss, placement, pin; capped: "
	       "c=1.25, O(n) overlay; batches of %d)\n",
	       conf_hash_name(kind), n, p50, p99, c50, c99, HB_PICK_BATCH);
	fflush(stdout);
}

/* ---- bounded load, steady state (§7.5) ---- */

static void run_bounded(enum rl_hash kind, const struct pool_def *d, double c)
{
	size_t n = d->n, m = n * HB_PER, steps = 20 * m, warm = 10 * m;
	struct placement *pl = build_or_die(kind, d->b, n);
	unsigned *load = calloc(n, sizeof(*load)), *capb = calloc(n, sizeof(*capb));
	unsigned *conv = malloc(m * sizeof(*conv));
	bool *eligible = calloc(n, sizeof(*eligible));
	double w = def_weight(d->b, n), pmr_sum = 0, pmr_max = 0;
	uint64_t ks = HB_KEY_SEED ^ 0xb0bULL, rs = HB_TRIAL_SEED ^ 0xb0bULL;
	size_t spills = 0, placed = 0, samples = 0;
	char size[32];

	for (size_t i = 0; i < n; i++)
		capb[i] = (unsigned)ceil(c * (double)m * d->b[i].weight / w - 1e-9);
	for (size_t j = 0; j < m; j++) { /* fill with the primary choice only */
		conv[j] = (unsigned)placement_lookup(pl, next_u64(&ks), NULL);
		load[conv[j]]++;
	}
	for (size_t i = 0; i < n; i++)
		eligible[i] = load[i] + 1 <= capb[i];
	for (size_t s = 0; s < steps; s++) {
		size_t j = (size_t)(next_u64(&rs) % m);
		unsigned old = conv[j];
		uint64_t h = next_u64(&ks);
		int first, b;

		load[old]--;
		eligible[old] = load[old] + 1 <= capb[old];
		first = placement_lookup(pl, h, NULL);
		b = eligible[first] ? first : placement_lookup(pl, h, eligible);
		if (s >= warm) {
			placed++;
			spills += b != first;
		}
		conv[j] = (unsigned)b;
		load[b]++;
		eligible[b] = load[b] + 1 <= capb[b];
		if (s >= warm && s % HB_PMR_EVERY == 0) {
			double pmr = 0;
			for (size_t i = 0; i < n; i++)
				pmr = fmax(pmr, load[i] / ((double)m * d->b[i].weight / w));
			pmr_sum += pmr;
			pmr_max = fmax(pmr_max, pmr);
			samples++;
		}
	}
	size_word(pl, size, sizeof(size));
	printf("policy=%s %s n=%zu per=%d c=%.2f spill=%.3f%% livePMR_avg=%.3f livePMR_max=%.3f\n",
	       placement_name(pl), size, n, HB_PER, c, 100.0 * (double)spills / (double)placed,
	       pmr_sum / (double)samples, pmr_max);
	fflush(stdout);
	placement_free(pl);
	free(load);
	free(capb);
	free(conv);
	free(eligible);
}

/* ---- driver ---- */

static void header(const struct opts *o, const struct corpus *c)
{
	char line[256], model[200] = "unknown";
	FILE *f = fopen("/proc/cpuinfo", "r");

	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "model name", 10) == 0) {
			snprintf(model, sizeof(model), "%s", strchr(line, ':') + 2);
			model[strcspn(model, "\n")] = '\0';
			break;
		}
	}
	if (f != NULL)
		fclose(f);
	printf("# hashbench: cpu=\"%s\" cc=\"%s\" optimized=%s sanitizers=%s\n", model, __VERSION__,
#ifdef __OPTIMIZE__
	       "yes",
#else
	       "no",
#endif
#if defined(__SANITIZE_ADDRESS__)
	       "yes (timings inflated)"
#else
	       "no"
#endif
	);
	printf("# K=%zu keys (UUID-style, 36 bytes), disruption K=%zu, %d trials, %s\n", o->keys,
	       o->dkeys, o->trials, o->full ? "full run" : "default run (--full for 10^7)");
	printf("keyhash xxh3_64_ns=%.2f crc32_ns=%.2f (36-byte ids)\n", c->xxh_ns, c->crc_ns);
	fflush(stdout);
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){.keys = 1000000,
	                   .dkeys = 200000,
	                   .trials = 3,
	                   .policy = -1,
	                   .ns = {10, 100, 1000},
	                   .nn = 3,
	                   .weighted_max = 100};
	for (int i = 1; i < argc; i++) {
		char *end;

		if (strcmp(argv[i], "--full") == 0) {
			o->full = true;
			o->keys = 10000000;
			o->dkeys = 4000000;
			o->weighted_max = HB_MAX_N;
		} else if (strcmp(argv[i], "--policy") == 0 && i + 1 < argc) {
			const char *v = argv[++i];
			o->policy = strcmp(v, "maglev") == 0       ? RL_HASH_MAGLEV
			            : strcmp(v, "rendezvous") == 0 ? RL_HASH_RENDEZVOUS
			            : strcmp(v, "ring") == 0       ? RL_HASH_RING
			                                           : -2;
			if (o->policy == -2)
				return -1;
		} else if (strcmp(argv[i], "--keys") == 0 && i + 1 < argc) {
			unsigned long long k = strtoull(argv[++i], &end, 10);
			if (*end != '\0' || k < 1000 || k > 100000000)
				return -1;
			o->keys = (size_t)k;
			if (o->dkeys > o->keys)
				o->dkeys = o->keys;
		} else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc) {
			char *s = argv[++i];
			o->nn = 0;
			while (*s != '\0' && o->nn < sizeof(o->ns) / sizeof(o->ns[0])) {
				unsigned long v = strtoul(s, &end, 10);
				if (end == s || v < 2 || v > HB_MAX_N)
					return -1;
				o->ns[o->nn++] = v;
				s = *end == ',' ? end + 1 : end;
				if (*end != ',' && *end != '\0')
					return -1;
			}
		} else {
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct corpus c;

	if (parse_args(argc, argv, &o) < 0) {
		fprintf(stderr, "usage: hashbench [--full] [--policy maglev|rendezvous|ring] "
		                "[--n 10,100,1000] [--keys K]\n");
		return 2;
	}
	log_set_level(RL_LOG_WARN);
	corpus_make(&c, o.keys);
	header(&o, &c);
	for (int kind = RL_HASH_MAGLEV; kind <= RL_HASH_RING; kind++) {
		if (o.policy >= 0 && o.policy != kind)
			continue;
		for (size_t ni = 0; ni < o.nn; ni++) {
			for (int weighted = 0; weighted <= 1; weighted++) {
				size_t n = o.ns[ni];
				struct pool_def d;

				if (weighted && n > o.weighted_max)
					continue;
				def_init(&d, n, weighted);
				run_balance(kind, &d, &c, budget(kind, n, o.keys),
				            weighted ? "weighted" : "uniform");
				run_disruption(kind, &d, &c, budget(kind, n, o.dkeys), o.trials,
				               weighted);
				run_speed(kind, &d, &c, o.keys, weighted);
				if (!weighted) {
					run_pick(kind, n);
					run_bounded(kind, &d, 1.25);
					run_bounded(kind, &d, 1.10);
				}
				def_free(&d);
			}
		}
	}
	free(c.xxh);
	free(c.crc);
	return 0;
}
