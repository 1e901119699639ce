/*
 * placement — the three placement algorithms behind struct placement_ops, the
 * configuration fingerprint, and the key-space comparison used by POST /preview.
 *
 *   placement_new(kind) ──ops_of(kind)──► ops->build ──► struct placement {ops, table}
 *   router ──placement_lookup──► ops->lookup(table, h, eligible)     (one indirect call)
 */
#include "placement.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "ketama.h"
#include "maglev.h"
#include "rendezvous.h"

/* Identities (names or addresses) and weights of b as two arrays; -1 on no memory. */
static int pl_split(const struct placement_backend *b, size_t n, bool by_address, const char ***ids,
                    unsigned **weights)
{
	*ids = malloc(n * sizeof(**ids));
	*weights = malloc(n * sizeof(**weights));
	if (*ids == NULL || *weights == NULL) {
		free(*ids);
		free(*weights);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		(*ids)[i] = by_address ? b[i].address : b[i].name;
		(*weights)[i] = b[i].weight;
	}
	return 0;
}

static uint64_t pl_xxh3_key(const void *key, size_t len, uint64_t seed)
{
	return hash64(key, len, seed);
}

/* ---- maglev ---- */

static void *mg_build(const struct placement_backend *b, size_t n, uint64_t seed)
{
	const char **names;
	unsigned *weights;
	struct maglev *m;

	if (pl_split(b, n, false, &names, &weights) < 0)
		return NULL;
	m = maglev_build(names, weights, n, seed, 0);
	free(names);
	free(weights);
	return m;
}

static int mg_lookup(const void *t, uint64_t h, const bool *eligible)
{
	return maglev_lookup(t, h, eligible);
}

static void mg_free(void *t)
{
	maglev_free(t);
}

static void mg_shares(const void *t, size_t n, double *share)
{
	uint32_t m = maglev_size(t);

	memset(share, 0, n * sizeof(*share));
	for (uint32_t k = 0; k < m; k++) {
		unsigned b = maglev_slot(t, k);

		if (b < n)
			share[b] += 1.0 / m;
	}
}

static size_t mg_bytes(const void *t)
{
	/* the table, plus a name hash and a weight per backend for the fallback */
	return (size_t)maglev_size(t) * sizeof(uint16_t) +
	       maglev_backends(t) * (sizeof(uint64_t) + sizeof(unsigned));
}

static void mg_describe(const void *t, char *out, size_t len)
{
	snprintf(out, len, "M=%u", maglev_size(t));
}

/* ---- rendezvous ---- */

static void *rv_build(const struct placement_backend *b, size_t n, uint64_t seed)
{
	const char **names;
	unsigned *weights;
	struct rendezvous *r;

	if (pl_split(b, n, false, &names, &weights) < 0)
		return NULL;
	r = rendezvous_build(names, weights, n, seed);
	free(names);
	free(weights);
	return r;
}

static int rv_lookup(const void *t, uint64_t h, const bool *eligible)
{
	return rendezvous_lookup(t, h, eligible);
}

static void rv_free(void *t)
{
	rendezvous_free(t);
}

static void rv_shares(const void *t, size_t n, double *share)
{
	double total = 0;

	for (size_t i = 0; i < n; i++)
		total += rendezvous_weight(t, i);
	for (size_t i = 0; i < n; i++)
		share[i] = rendezvous_weight(t, i) / total;
}

static size_t rv_bytes(const void *t)
{
	return rendezvous_bytes(t);
}

static void rv_describe(const void *t, char *out, size_t len)
{
	snprintf(out, len, "no table");
	(void)t;
}

/* ---- ring ---- */

static void *kt_build(const struct placement_backend *b, size_t n, uint64_t seed)
{
	const char **addresses;
	unsigned *weights;
	struct ketama *k;

	(void)seed; /* nginx has no seed: the ring must match it bit for bit */
	if (pl_split(b, n, true, &addresses, &weights) < 0)
		return NULL;
	k = ketama_build(addresses, weights, n);
	free(addresses);
	free(weights);
	return k;
}

static int kt_lookup(const void *t, uint64_t h, const bool *eligible)
{
	return ketama_lookup(t, h, eligible);
}

static void kt_free(void *t)
{
	ketama_free(t);
}

static uint64_t kt_key(const void *key, size_t len, uint64_t seed)
{
	(void)seed;
	return ketama_crc32(key, len);
}

#define KT_SPACE 4294967296.0 /* 2^32 key hashes on the ring */

/* Point i owns the arc (point[i−1], point[i]]; point 0 also owns everything after the last. */
static void kt_shares(const void *t, size_t n, double *share)
{
	size_t m = ketama_points(t);
	unsigned owner, last_owner;
	uint32_t prev = ketama_point(t, m - 1, &last_owner);

	memset(share, 0, n * sizeof(*share));
	for (size_t i = 0; i < m; i++) {
		uint32_t p = ketama_point(t, i, &owner);
		/* arc length mod 2^32; a single point owns the whole ring */
		uint64_t arc = m == 1 ? (uint64_t)1 << 32 : (uint32_t)(p - prev);

		if (owner < n)
			share[owner] += (double)arc / KT_SPACE;
		prev = p;
	}
}

static size_t kt_bytes(const void *t)
{
	return ketama_bytes(t);
}

static void kt_describe(const void *t, char *out, size_t len)
{
	snprintf(out, len, "points=%zu", ketama_points(t));
}

/* ---- the ops tables ---- */

static const struct placement_ops ops_maglev = {
        .kind = RL_HASH_MAGLEV,
        .name = "maglev",
        .seeded = true,
        .by_address = false,
        .build = mg_build,
        .lookup = mg_lookup,
        .free = mg_free,
        .key_hash = pl_xxh3_key,
        .shares = mg_shares,
        .bytes = mg_bytes,
        .describe = mg_describe,
};

static const struct placement_ops ops_rendezvous = {
        .kind = RL_HASH_RENDEZVOUS,
        .name = "rendezvous",
        .seeded = true,
        .by_address = false,
        .build = rv_build,
        .lookup = rv_lookup,
        .free = rv_free,
        .key_hash = pl_xxh3_key,
        .shares = rv_shares,
        .bytes = rv_bytes,
        .describe = rv_describe,
};

static const struct placement_ops ops_ring = {
        .kind = RL_HASH_RING,
        .name = "ring",
        .seeded = false,
        .by_address = true,
        .build = kt_build,
        .lookup = kt_lookup,
        .free = kt_free,
        .key_hash = kt_key,
        .shares = kt_shares,
        .bytes = kt_bytes,
        .describe = kt_describe,
};

const struct placement_ops *placement_ops_of(enum rl_hash kind)
{
	switch (kind) {
	case RL_HASH_MAGLEV:
		return &ops_maglev;
	case RL_HASH_RENDEZVOUS:
		return &ops_rendezvous;
	case RL_HASH_RING:
		return &ops_ring;
	}
	return NULL;
}

/* ---- lifecycle ---- */

struct placement *placement_new(enum rl_hash kind, const struct placement_backend *b, size_t n,
                                uint64_t seed)
{
	const struct placement_ops *ops = placement_ops_of(kind);
	struct placement *pl;

	if (ops == NULL || b == NULL || n == 0)
		return NULL;
	pl = calloc(1, sizeof(*pl));
	if (pl == NULL)
		return NULL;
	pl->ops = ops;
	pl->n = n;
	pl->seed = seed;
	pl->table = ops->build(b, n, seed);
	pl->fingerprint = placement_fingerprint(kind, b, n, seed);
	if (pl->table == NULL) {
		free(pl);
		return NULL;
	}
	return pl;
}

struct placement *placement_from_conf(const struct rl_conf *c)
{
	struct placement_backend *b = calloc(c->nbackends > 0 ? c->nbackends : 1, sizeof(*b));
	struct placement *pl = NULL;

	if (b == NULL)
		return NULL;
	for (size_t i = 0; i < c->nbackends; i++)
		b[i] = (struct placement_backend){c->backends[i].name, c->backends[i].address.text,
		                                  c->backends[i].weight};
	pl = placement_new(c->hash, b, c->nbackends, c->hash_seed);
	free(b);
	return pl;
}

void placement_free(struct placement *pl)
{
	if (pl == NULL)
		return;
	pl->ops->free(pl->table);
	free(pl);
}

size_t placement_bytes(const struct placement *pl)
{
	return pl->ops->bytes(pl->table);
}

void placement_describe(const struct placement *pl, char *out, size_t len)
{
	pl->ops->describe(pl->table, out, len);
}

void placement_shares(const struct placement *pl, double *share)
{
	pl->ops->shares(pl->table, pl->n, share);
}

/* ---- fingerprint ---- */

static int pl_backend_cmp(const void *x, const void *y)
{
	const struct placement_backend *a = x, *b = y;
	int c = strcmp(a->name, b->name);

	if (c == 0)
		c = strcmp(a->address != NULL ? a->address : "",
		           b->address != NULL ? b->address : "");
	if (c == 0)
		c = (a->weight > b->weight) - (a->weight < b->weight);
	return c;
}

/* Append s and its NUL to buf at *len (buf sized by the caller). */
static void pl_put(char *buf, size_t *len, const char *s)
{
	size_t l = strlen(s) + 1;

	memcpy(buf + *len, s, l);
	*len += l;
}

#define PL_NUM_TEXT 24 /* a uint64 in decimal or hex, with its NUL */

uint64_t placement_fingerprint(enum rl_hash kind, const struct placement_backend *b, size_t n,
                               uint64_t seed)
{
	const struct placement_ops *ops = placement_ops_of(kind);
	struct placement_backend *s = malloc((n > 0 ? n : 1) * sizeof(*s));
	size_t cap = sizeof(PLACEMENT_FINGERPRINT_TAG) + 2 * PL_NUM_TEXT, len = 0;
	char num[PL_NUM_TEXT], *buf;
	uint64_t fp = 0;

	if (ops == NULL || s == NULL) {
		free(s);
		return 0;
	}
	memcpy(s, b, n * sizeof(*s));
	qsort(s, n, sizeof(*s), pl_backend_cmp);
	for (size_t i = 0; i < n; i++)
		cap += strlen(s[i].name) + PL_NUM_TEXT + 1 +
		       (ops->by_address && s[i].address != NULL ? strlen(s[i].address) + 1 : 0);
	buf = malloc(cap);
	if (buf != NULL) {
		pl_put(buf, &len, PLACEMENT_FINGERPRINT_TAG);
		pl_put(buf, &len, ops->name);
		snprintf(num, sizeof(num), "%016llx", (unsigned long long)seed);
		pl_put(buf, &len, ops->seeded ? num : "-");
		for (size_t i = 0; i < n; i++) {
			pl_put(buf, &len, s[i].name);
			snprintf(num, sizeof(num), "%u", s[i].weight);
			pl_put(buf, &len, num);
			if (ops->by_address)
				pl_put(buf, &len, s[i].address != NULL ? s[i].address : "");
		}
		fp = hash64(buf, len, 0);
	}
	free(buf);
	free(s);
	return fp;
}

void placement_fingerprint_hex(uint64_t fp, char out[PLACEMENT_FINGERPRINT_HEX + 1])
{
	snprintf(out, PLACEMENT_FINGERPRINT_HEX + 1, "%016llx", (unsigned long long)fp);
}

/* ---- key-space comparison ---- */

/*
 * Two Maglev tables: slot i of a table of size M covers hashes [i/M, (i+1)/M) of the
 * range (maglev_lookup uses fastrange), so the partitions merge exactly in units of
 * 1/(M1·M2).
 */
static void mg_sweep(const void *a, const size_t *amap, const void *b, const size_t *bmap,
                     double *stay)
{
	uint64_t m1 = maglev_size(a), m2 = maglev_size(b), pos = 0;
	double unit = 1.0 / ((double)m1 * (double)m2);
	uint32_t i = 0, j = 0;

	while (i < m1 && j < m2) {
		uint64_t end_i = (uint64_t)(i + 1) * m2, end_j = (uint64_t)(j + 1) * m1;
		uint64_t end = end_i < end_j ? end_i : end_j;
		size_t from = amap[maglev_slot(a, i)], to = bmap[maglev_slot(b, j)];

		if (from == to)
			stay[from] += (double)(end - pos) * unit;
		pos = end;
		i += end == end_i;
		j += end == end_j;
	}
}

/* Upper end of point i's arc and its owner; i = number of points is the wrap-around arc
 * (after the last point, owned by point 0's server). */
static uint64_t kt_boundary(const void *t, size_t i, unsigned *owner)
{
	size_t m = ketama_points(t);

	if (i < m)
		return ketama_point(t, i, owner);
	ketama_point(t, 0, owner); /* past the last point: wrap to the first */
	return UINT32_MAX;
}

/* Two rings over the same CRC32 space: merge their points. */
static void kt_sweep(const void *a, const size_t *amap, const void *b, const size_t *bmap,
                     double *stay)
{
	size_t i = 0, j = 0, ma = ketama_points(a), mb = ketama_points(b);
	uint64_t pos = 0;

	while (pos <= UINT32_MAX) {
		unsigned oa, ob;
		uint64_t ea = kt_boundary(a, i, &oa), eb = kt_boundary(b, j, &ob);
		uint64_t end = ea < eb ? ea : eb;

		if (amap[oa] == bmap[ob])
			stay[amap[oa]] += (double)(end - pos + 1) / KT_SPACE;
		pos = end + 1;
		i += i < ma && ea == end;
		j += j < mb && eb == end;
	}
}

/*
 * Rendezvous, same seed: backend k's score −w/ln u is an exponential clock X_k of rate w_k
 * (lowest wins), the same u before and after. A weight change scales the clock by
 * r_k = w'_k/w_k. k keeps a key iff it wins both races; integrating over X_k = t gives
 *   stay_k = w_k / (w_k + R_k),  R_k = Σ_common j≠k w_j·max(1, r_j/r_k)
 *                                   + Σ_removed w_j + Σ_added w'_j / r_k
 * (an expectation over ideal hashing; equal to sampled counts within noise). O(nent²).
 */
static int rv_expect(const void *a, const size_t *amap, const void *b, const size_t *bmap,
                     size_t nent, double *stay)
{
	double *wa = calloc(nent, sizeof(*wa)), *wb = calloc(nent, sizeof(*wb));
	double only_a = 0, only_b = 0;
	int rc = -1;

	if (wa == NULL || wb == NULL)
		goto out;
	for (size_t i = 0; i < rendezvous_backends(a); i++)
		wa[amap[i]] = rendezvous_weight(a, i);
	for (size_t j = 0; j < rendezvous_backends(b); j++)
		wb[bmap[j]] = rendezvous_weight(b, j);
	for (size_t e = 0; e < nent; e++) {
		only_a += wb[e] == 0 ? wa[e] : 0;
		only_b += wa[e] == 0 ? wb[e] : 0;
	}
	for (size_t k = 0; k < nent; k++) {
		if (wa[k] == 0 || wb[k] == 0)
			continue;
		double rk = wb[k] / wa[k], r = only_a + only_b / rk;

		for (size_t j = 0; j < nent; j++) {
			if (j == k || wa[j] == 0 || wb[j] == 0)
				continue;
			double rel = (wb[j] / wa[j]) / rk;
			r += wa[j] * (rel > 1 ? rel : 1);
		}
		stay[k] = wa[k] / (wa[k] + r);
	}
	rc = 0;
out:
	free(wa);
	free(wb);
	return rc;
}

int placement_compare(const struct placement *a, const size_t *amap, const struct placement *b,
                      const size_t *bmap, size_t nent, double *before, double *after, double *stay,
                      bool *exact)
{
	double *sa = malloc(a->n * sizeof(*sa)), *sb = malloc(b->n * sizeof(*sb));
	bool same = a->ops == b->ops && (!a->ops->seeded || a->seed == b->seed);

	if (sa == NULL || sb == NULL) {
		free(sa);
		free(sb);
		return -1;
	}
	memset(before, 0, nent * sizeof(*before));
	memset(after, 0, nent * sizeof(*after));
	memset(stay, 0, nent * sizeof(*stay));
	placement_shares(a, sa);
	placement_shares(b, sb);
	for (size_t i = 0; i < a->n; i++)
		before[amap[i]] += sa[i];
	for (size_t j = 0; j < b->n; j++)
		after[bmap[j]] += sb[j];
	free(sa);
	free(sb);
	*exact = same && a->ops->kind != RL_HASH_RENDEZVOUS;
	if (same && a->ops->kind == RL_HASH_MAGLEV) {
		mg_sweep(a->table, amap, b->table, bmap, stay);
	} else if (same && a->ops->kind == RL_HASH_RING) {
		kt_sweep(a->table, amap, b->table, bmap, stay);
	} else if (same) {
		return rv_expect(a->table, amap, b->table, bmap, nent, stay);
	} else {
		/* unrelated key hashes: every key is placed independently */
		for (size_t e = 0; e < nent; e++)
			stay[e] = before[e] * after[e];
	}
	return 0;
}
