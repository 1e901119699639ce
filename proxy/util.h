/*
 * util — small helpers shared by the I/O modules: monotonic time, a per-thread random
 * generator, request ids, sockaddr formatting. Pure (no event loop).
 */
#ifndef RL_UTIL_H
#define RL_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define UTIL_REQUEST_ID_LEN 32 /* hex characters of a generated X-Request-ID */
#define UTIL_ADDR_TEXT      64 /* "[v6]:port" text, bytes with NUL */

/* Monotonic clock in microseconds. */
uint64_t util_now_us(void);

/* xoshiro-style generator; one per worker, seeded from the kernel. Not for secrets. */
struct util_rng {
	uint64_t s[2];
};

void util_rng_seed(struct util_rng *r);
uint64_t util_rng_next(struct util_rng *r);

/* Write a fresh request id (UTIL_REQUEST_ID_LEN hex chars + NUL) into out. */
void util_request_id(struct util_rng *r, char out[UTIL_REQUEST_ID_LEN + 1]);

/* "1.2.3.4:80" / "[::1]:80" into out (size UTIL_ADDR_TEXT); host only when with_port is 0. */
void util_format_addr(const struct sockaddr *sa, int with_port, char *out, size_t outlen);

/* Format a UTC wall-clock timestamp "2026-11-28T06:53:48.123Z" into out (>= 32 bytes). */
void util_timestamp(char *out, size_t outlen);

#endif
