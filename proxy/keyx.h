/*
 * keyx — find the conversation key of a request from [routing] key sources and preset.
 *
 *     configured sources, in order ──first usable value──► key
 *         │ none
 *         ▼
 *     preset NOKEY rows ──any match──► KEYX_MISS_NO_KEY_EVENT
 *     preset KEY rows   ──first usable value──► value
 *     preset SCOPE rows ──first usable value──► key = "scope/value" (else key = value)
 *
 * Head sources (header, query, cookie, path segment, path regex) are read in place from
 * the parsed head. Body sources read the buffered body: json (Content-Type
 * application/json or ...+json), form and formjson (application/x-www-form-urlencoded).
 * A sym pair joins two locations' values in sorted order. Pure: no I/O; at most one
 * allocation per parsed JSON document (the body, a formjson field), freed before return.
 */
#ifndef RL_KEYX_H
#define RL_KEYX_H

#include <stdbool.h>
#include <stddef.h>

#include "conf.h"
#include "http1.h"

#define KEYX_MAX     512 /* longest key accepted, bytes; longer counts as invalid */
#define KEYX_SYM_SEP '|' /* between the two sorted values of a sym:LOC|LOC key */

/* Why no key was found (the label of a no-key counter), or KEYX_FOUND. */
enum keyx_miss {
	KEYX_FOUND = 0,
	KEYX_MISS_ABSENT,       /* no configured source or preset location present */
	KEYX_MISS_INVALID,      /* present but unusable: empty, over KEYX_MAX, control bytes,
	                           or a JSON object, array or boolean */
	KEYX_MISS_BAD_BODY,     /* the body could not be examined: over max_key_body (only a
	                           prefix), not well-formed JSON, or not the content type the
	                           body sources need */
	KEYX_MISS_NO_KEY_EVENT, /* a request the preset documents as keyless (Slack
	                           url_verification, Discord PING, Meta GET verification,
	                           LINE "events":[], Viber "webhook", Intercom ping, ...) */
};

#define KEYX_MISS_COUNT (KEYX_MISS_NO_KEY_EVENT + 1) /* entries in enum keyx_miss */

struct keyx_key {
	char buf[KEYX_MAX + 1]; /* the key, NUL-terminated (decoded, unescaped) */
	size_t len;             /* bytes, without the NUL */
	int source;             /* index into conf->keysrc that matched, -1 if none */
	int preset_row;         /* index into the preset's rows of the KEY row that matched,
	                           -1 if none */
};

/*
 * Extract the key of the request whose head h was parsed from buf. body[0..body_len) is
 * the buffered body, or NULL/0 when none was buffered; body_complete is false when it is
 * only the first max_key_body bytes of a longer body (body sources then miss with
 * KEYX_MISS_BAD_BODY; head sources still work). Returns KEYX_FOUND with out filled, or why
 * not (out->buf empty, out->source and out->preset_row -1). Never reads past body_len.
 */
enum keyx_miss keyx_extract(const struct rl_conf *c, const char *buf, const struct http_head *h,
                            const char *body, size_t body_len, bool body_complete,
                            struct keyx_key *out);

/* True when a configured source or the preset reads the body, so it must be buffered
 * (up to max_key_body) before keyx_extract. */
bool keyx_needs_body(const struct rl_conf *c);

/* The first configured source type this build cannot extract, or NULL (every source
 * type is supported now; kept so startup can keep asking). */
const char *keyx_unsupported(const struct rl_conf *c);

/* Counter label of a reason ("absent", "bad_body", ...); "unknown" out of range. */
const char *keyx_miss_name(enum keyx_miss m);

#endif
