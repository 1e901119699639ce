/*
 * keyx — find the conversation key of a request from the [routing] key sources.
 *
 * Sources are tried in configured order; the first one present wins. Sources in the
 * head (header, query, cookie, path segment, path regex) are read in place from the
 * parsed head. Body sources (json, form, formjson) and sym pairs are parsed by the
 * configuration but not extracted yet: keyx_unsupported() names them so startup can warn.
 * Pure: no I/O.
 */
#ifndef RL_KEYX_H
#define RL_KEYX_H

#include <stdbool.h>
#include <stddef.h>

#include "conf.h"
#include "http1.h"

#define KEYX_MAX 512 /* longest key accepted, bytes; longer counts as missing */

enum keyx_miss {
	KEYX_FOUND = 0,
	KEYX_MISS_ABSENT,  /* no configured source present */
	KEYX_MISS_INVALID, /* present but too long, empty, or with control bytes */
};

struct keyx_key {
	char buf[KEYX_MAX + 1]; /* the key, NUL-terminated (decoded for query/cookie) */
	size_t len;
	int source;             /* index into conf->keysrc that matched, -1 if none */
};

/* Extract the key from a parsed request head in buf. Returns KEYX_FOUND or why not. */
enum keyx_miss keyx_extract(const struct rl_conf *c, const char *buf, const struct http_head *h,
			    struct keyx_key *out);

/* The first configured source type this build cannot extract yet, or NULL. */
const char *keyx_unsupported(const struct rl_conf *c);

#endif
