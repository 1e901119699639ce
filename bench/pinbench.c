/*
 * pinbench — memory and speed of the affinity (pin) table at its default size.
 *
 *   pinbench [pins]        (default 1000000, the affinity_max default)
 *
 * Prints the table's own allocation count, the resident-set growth while filling it (from
 * VmRSS in /proc/self/status), and ns per operation for: first pin (insert), lookup hit,
 * re-pin, pin into a full table (evicts), with one thread and with two threads sharing the
 * table; plus the cost of hashing a conversation id, for the whole pin path.
 *
 * Key n is derived in the loop from n (two splitmix64 outputs: uniform like XXH3-128, and no
 * key array whose cache misses would be charged to the table). Random passes visit keys in a
 * scrambled order, so a large table misses the cache the way live traffic does.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "affinity.h"
#include "hash.h"

#define PB_DEFAULT_PINS  1000000u
#define PB_TTL_MS        (30u * 60u * 1000u) /* affinity_ttl default: 30m */
#define PB_LOOKUP_ROUNDS 4                   /* lookups = rounds × pins */
#define PB_THREADS       2
#define PB_KEY_LO        0x243f6a8885a308d3ULL /* key derivation salts (digits of π) */
#define PB_KEY_HI        0x13198a2e03707344ULL
#define PB_ORDER_SEED    0x0bd3ULL                              /* scrambles the visiting order */
#define PB_HASH_OPS      1000000                                /* XXH3-128 timing loop */
#define PB_ID            "3f2b8c1e-9d4a-4e6b-a7c5-0f1e2d3c4b5a" /* a 36-byte conversation id */
#define PB_BACKENDS      16
#define PB_NS_PER_S      1000000000.0
#define PB_KIB           1024.0
#define PB_MIB           (1024.0 * 1024.0)

enum pb_op { PB_PIN = 0, PB_LOOKUP };

/*
 * One timed pass of one thread: ops operations on keys first..first+span-1, either in
 * scrambled order (random) or first, first + 1, … (sequential: every key once).
 */
struct pb_job {
	struct affinity *a;  /* borrowed */
	size_t first;        /* first key number */
	size_t span;         /* keys to draw from, random order */
	size_t ops;          /* operations to run */
	bool sequential;     /* keys first..first+ops-1; threads take consecutive slices */
	uint64_t order_seed; /* scrambling seed (random order) */
	enum pb_op op;
	uint32_t backend; /* pinned backend id */
	double seconds;   /* result: wall time of the pass */
	size_t hits;      /* result: lookups that hit */
};

static volatile uint64_t pb_sink; /* keeps timed hashing from being optimised away */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / PB_NS_PER_S;
}

/* VmRSS of this process in bytes, 0 if unreadable. */
static size_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long kib = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %lu kB", &kib) == 1)
			break;
	fclose(f);
	return (size_t)(kib * PB_KIB);
}

static struct hash128 pb_key(size_t n)
{
	return (struct hash128){.lo = hash_mix64(n ^ PB_KEY_LO), .hi = hash_mix64(n ^ PB_KEY_HI)};
}

static void *job_run(void *arg)
{
	struct pb_job *j = arg;
	double t0 = now_s();

	for (size_t i = 0; i < j->ops; i++) {
		size_t n = j->sequential ? j->first + i
		                         : j->first + hash_mix64(j->order_seed + i) % j->span;
		uint32_t b;

		if (j->op == PB_PIN)
			affinity_pin(j->a, pb_key(n), j->backend, 0);
		else
			j->hits += affinity_lookup(j->a, pb_key(n), 0, &b);
	}
	j->seconds = now_s() - t0;
	return NULL;
}

/* Inserts keys 0..n-1 in order, one thread; returns seconds. */
static double fill(struct affinity *a, size_t n)
{
	double t0 = now_s();

	for (size_t i = 0; i < n; i++)
		affinity_pin(a, pb_key(i), (uint32_t)(i % PB_BACKENDS), 0);
	return now_s() - t0;
}

/* Run nthreads copies of job (each with its own scrambling seed or slice); prints one line. */
static void run_threads(const char *what, const struct pb_job *job, int nthreads)
{
	struct pb_job jobs[PB_THREADS];
	pthread_t t[PB_THREADS];
	double ops = 0, secs = 0;

	for (int i = 0; i < nthreads; i++) {
		jobs[i] = *job;
		jobs[i].order_seed += (uint64_t)i * PB_ORDER_SEED;
		if (job->sequential)
			jobs[i].first += (size_t)i * job->ops;
		if (pthread_create(&t[i], NULL, job_run, &jobs[i]) != 0) {
			perror("pthread_create");
			exit(1);
		}
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(t[i], NULL);
		ops += (double)jobs[i].ops;
		secs = jobs[i].seconds > secs ? jobs[i].seconds : secs;
	}
	printf("%-30s threads=%d %6.1f ns/op per thread %6.2f Mops/s total", what, nthreads,
	       secs * PB_NS_PER_S * nthreads / ops, ops / secs / 1e6);
	if (job->op == PB_LOOKUP)
		printf("  hits=%.1f%%", 100.0 * (double)jobs[0].hits / (double)jobs[0].ops);
	printf("\n");
}

static void report_memory(const struct affinity *a, size_t pins, size_t rss0, size_t rss_new,
                          size_t rss_full)
{
	struct affinity_stats s;

	affinity_get_stats(a, &s);
	printf("pins=%zu shards=%zu held=%zu (evicted while filling: %" PRIu64 ")\n", pins,
	       s.shards, s.entries, s.evictions);
	printf("allocated (table accounting)  %8.1f MiB  (%.1f bytes/pin)\n",
	       (double)s.bytes / PB_MIB, (double)s.bytes / (double)pins);
	printf("RSS delta after affinity_new  %8.1f MiB\n", (double)(rss_new - rss0) / PB_MIB);
	printf("RSS delta after the pins      %8.1f MiB  (%.1f bytes/pin)\n",
	       (double)(rss_full - rss0) / PB_MIB, (double)(rss_full - rss0) / (double)pins);
}

static void time_hash(void)
{
	double t0 = now_s();

	for (uint64_t i = 0; i < PB_HASH_OPS; i++)
		pb_sink += hash128(PB_ID, sizeof(PB_ID) - 1, i).lo;
	printf("%-30s threads=1 %6.1f ns/op\n", "XXH3-128 of a 36-byte id",
	       (now_s() - t0) * PB_NS_PER_S / PB_HASH_OPS);
}

/* The pin count from argv[1], PB_DEFAULT_PINS without one, 0 if it is not a number. */
static size_t parse_pins(int argc, char **argv)
{
	char *end;
	unsigned long long n;

	if (argc < 2)
		return PB_DEFAULT_PINS;
	n = strtoull(argv[1], &end, 10);
	return (*end || end == argv[1] || n > AFFINITY_MAX_ENTRIES) ? 0 : (size_t)n;
}

int main(int argc, char **argv)
{
	size_t pins = parse_pins(argc, argv);
	size_t rss0 = rss_bytes();
	struct affinity *a = affinity_new(pins, PB_TTL_MS);
	size_t rss_new = rss_bytes();

	if (!a) {
		fprintf(stderr, "usage: pinbench [pins: 1..%u] (affinity_new(%zu) failed)\n",
		        AFFINITY_MAX_ENTRIES, pins);
		return 1;
	}
	double t_fill = fill(a, pins);

	report_memory(a, pins, rss0, rss_new, rss_bytes());
	printf("%-30s threads=1 %6.1f ns/op\n", "pin (insert, empty table)",
	       t_fill * PB_NS_PER_S / (double)pins);

	struct pb_job job = {.a = a, .span = pins, .order_seed = PB_ORDER_SEED};

	job.op = PB_LOOKUP;
	job.ops = PB_LOOKUP_ROUNDS * pins;
	run_threads("lookup (hit)", &job, 1);
	run_threads("lookup (hit)", &job, PB_THREADS);
	job.op = PB_PIN;
	job.ops = pins;
	job.backend = PB_BACKENDS;
	run_threads("re-pin (overwrite)", &job, 1);
	run_threads("re-pin (overwrite)", &job, PB_THREADS);
	/* Keys not in the table, each once: every pin evicts. */
	job.sequential = true;
	job.first = pins;
	run_threads("pin into full table (evicts)", &job, 1);
	job.first = 0; /* keys evicted by the pass above */
	job.ops = pins / PB_THREADS;
	run_threads("pin into full table (evicts)", &job, PB_THREADS);
	time_hash();
	affinity_free(a);
	return 0;
}
