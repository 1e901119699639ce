/*
 * ketama — the consistent-hash ring of nginx's `hash $key consistent`
 * (ngx_http_upstream_hash_module), reproduced bit for bit so that ringleader and nginx
 * send every key to the same server during a migration (research/hashing.md §3.1, T10).
 *
 * A server's identity on the ring is its address text "host:port" (nginx's `server`
 * argument as written), not a backend name; its weight w gives it w·KETAMA_POINTS_PER_WEIGHT
 * 32-bit points. A key is hashed with plain CRC32 (ngx_crc32_long) and goes to the first
 * point >= its hash, wrapping to the first point. Balance is that of a 160-point ring:
 * key-space PMR about 1.16-1.32 (documented, not a goal).
 *
 * Eligibility overlay: an ineligible owner is skipped by walking to the next point (nginx's
 * `hp->hash++`), so only that server's keys move, each to its clockwise neighbour.
 */
#ifndef RL_KETAMA_H
#define RL_KETAMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KETAMA_POINTS_PER_WEIGHT 160   /* nginx: npoints = peer->weight * 160 */
#define KETAMA_MAX_BACKENDS      65535 /* owners are uint16_t */
#define KETAMA_MAX_WEIGHT        256   /* weights are 1..KETAMA_MAX_WEIGHT */

struct ketama;

/*
 * Build the ring of n servers (1..KETAMA_MAX_BACKENDS): addresses[i] is server i's
 * "host:port" text, weights[i] in 1..KETAMA_MAX_WEIGHT. Returns NULL on allocation failure,
 * a NULL address, a weight out of range or two equal addresses. Copies nothing it borrows.
 * Memory: 6 bytes per point (160·Σw points); the build needs 16 bytes per point for a moment.
 * Two servers whose chains produce the same 32-bit point (probability about P²/2^33 for
 * P points) keep one point: the one of the smaller address, so input order never matters.
 * nginx keeps the one listed first in its upstream block; order the nginx block by address
 * to match even then.
 */
struct ketama *ketama_build(const char *const *addresses, const unsigned *weights, size_t n);
void ketama_free(struct ketama *k);

/*
 * Owner (caller index) for key hash h: only the low 32 bits are used (CRC32 of the key for
 * nginx compatibility). eligible: NULL (all) or ketama_backends(k) flags; an ineligible owner
 * is passed over by walking clockwise. -1 when none is eligible (or k is NULL).
 * O(log P), plus the walk past ineligible points.
 */
int ketama_lookup(const struct ketama *k, uint64_t h, const bool *eligible);

/* Points on the ring (after duplicates are dropped) and servers. */
size_t ketama_points(const struct ketama *k);
size_t ketama_backends(const struct ketama *k);

/* Point i in ascending order (i < ketama_points) and its owner, for exact shares. */
uint32_t ketama_point(const struct ketama *k, size_t i, unsigned *owner);

/* Bytes held by the ring. */
size_t ketama_bytes(const struct ketama *k);

/* CRC32 (IEEE 802.3, reflected, as zlib and ngx_crc32_long) of data. */
uint32_t ketama_crc32(const void *data, size_t len);

#endif
