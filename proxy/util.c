/*
 * util — monotonic time, per-worker random numbers, request ids, address text.
 */
#include "util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

uint64_t util_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void util_rng_seed(struct util_rng *r)
{
	if (getrandom(r->s, sizeof(r->s), 0) != (ssize_t)sizeof(r->s)) {
		/* No entropy source: ids only need to be unique-ish, so time is enough. */
		r->s[0] = util_now_us();
		r->s[1] = (uint64_t)(uintptr_t)r ^ 0x9e3779b97f4a7c15ULL;
	}
	if (r->s[0] == 0 && r->s[1] == 0)
		r->s[0] = 1;
}

/* xoroshiro128+ */
uint64_t util_rng_next(struct util_rng *r)
{
	uint64_t s0 = r->s[0], s1 = r->s[1];
	uint64_t result = s0 + s1;

	s1 ^= s0;
	r->s[0] = rotl(s0, 24) ^ s1 ^ (s1 << 16);
	r->s[1] = rotl(s1, 37);
	return result;
}

void util_request_id(struct util_rng *r, char out[UTIL_REQUEST_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";

	for (int half = 0; half < 2; half++) {
		uint64_t v = util_rng_next(r);
		for (int i = 0; i < 16; i++, v >>= 4)
			out[half * 16 + i] = hex[v & 0xf];
	}
	out[UTIL_REQUEST_ID_LEN] = '\0';
}

void util_format_addr(const struct sockaddr *sa, int with_port, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
	}
	if (!with_port)
		snprintf(out, outlen, "%s", host);
	else if (sa->sa_family == AF_INET6)
		snprintf(out, outlen, "[%s]:%u", host, port);
	else
		snprintf(out, outlen, "%s:%u", host, port);
}

void util_timestamp(char *out, size_t outlen)
{
	struct timespec ts;
	struct tm tm;
	char base[24];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, outlen, "%s.%03ldZ", base, ts.tv_nsec / 1000000L);
}
