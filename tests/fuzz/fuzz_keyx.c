/*
 * fuzz_keyx — keyx_extract on arbitrary requests under several configurations.
 *
 * Input: byte 0 picks a configuration (every preset, then lists of explicit sources),
 * byte 1 holds flags (FUZZ_F_*), the rest is an HTTP request whose body is what follows
 * the head, copied into a buffer of exactly its size. Besides memory errors it checks
 * keyx's contract and aborts when one breaks:
 *   - a key is non-empty, at most KEYX_MAX bytes, NUL-terminated at len, without
 *     control bytes, and names exactly one origin (a configured source or a preset row);
 *   - a miss leaves an empty key and no origin, with a named reason;
 *   - with an incomplete body, a key never comes from a body location;
 *   - the same call twice gives the same answer (no state between calls).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "http1.h"
#include "keyx.h"
#include "preset.h"

#define FUZZ_MAX_HEAD  8192
#define FUZZ_F_PARTIAL (1u << 0) /* the body is only a prefix (body_complete false) */
#define FUZZ_F_ALL     (1u << 1) /* run every configuration, not just the picked one */
#define FUZZ_PREFIX    2         /* selector and flag bytes before the request */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* [routing] lines of the configurations after the presets. */
static const char *const explicit_keys[] = {
        "key = json:message.chat.id, json:a.0.b, form:From, formjson:payload:team.id",
        "key = sym:form:From|form:To, sym:header:X-A|json:x.y",
        "key = query:q, cookie:c, path:2, path:^/c/([^/]+)",
        "key = sym:path:^/u/([^/]+)|query:peer, json:0.1.2\npreset = generic",
        "key = header:X-Conversation-ID\npreset = slack",
};

#define NEXPLICIT    (sizeof(explicit_keys) / sizeof(explicit_keys[0]))
#define NCONFIGS_MAX 64

static struct rl_conf *configs[NCONFIGS_MAX]; /* built once, kept for the process */
static size_t nconfigs;

static void check(bool ok)
{
	if (!ok)
		abort();
}

static void add_config(const char *routing)
{
	char text[1024];
	struct rl_conf *c;

	snprintf(text, sizeof(text), "[routing]\n%s\n[backend b]\naddress = 127.0.0.1:1\n",
	         routing);
	c = conf_load_string(text, "fuzz.ini", NULL);
	check(c != NULL && nconfigs < NCONFIGS_MAX);
	configs[nconfigs++] = c;
}

static void build_configs(void)
{
	char routing[128];

	for (size_t i = 0; i < preset_count(); i++) {
		snprintf(routing, sizeof(routing), "key =\npreset = %s", preset_at(i)->name);
		add_config(routing);
	}
	for (size_t i = 0; i < NEXPLICIT; i++)
		add_config(explicit_keys[i]);
}

static bool type_reads_body(enum rl_keysrc_type t)
{
	return t == RL_KEYSRC_JSON || t == RL_KEYSRC_FORM || t == RL_KEYSRC_FORMJSON;
}

/* Did the key come from a location that reads the body? */
static bool key_from_body(const struct rl_conf *c, const struct keyx_key *k)
{
	if (k->source >= 0) {
		const struct rl_keysrc *s = &c->keysrc[k->source];
		return type_reads_body(s->type) ||
		       (s->type == RL_KEYSRC_SYM &&
		        (preset_loc_reads_body(s->arg) || preset_loc_reads_body(s->arg2)));
	}
	const struct preset_row *r = &preset_find(c->preset)->rows[k->preset_row];
	return type_reads_body(r->type) ||
	       (r->type == RL_KEYSRC_SYM &&
	        (preset_loc_reads_body(r->arg) || preset_loc_reads_body(r->arg2)));
}

static void check_key(const struct rl_conf *c, const struct keyx_key *k, enum keyx_miss r,
                      bool partial)
{
	check(r >= KEYX_FOUND && r < KEYX_MISS_COUNT);
	check(strcmp(keyx_miss_name(r), "unknown") != 0);
	if (r != KEYX_FOUND) {
		check(k->len == 0 && k->buf[0] == '\0' && k->source == -1 && k->preset_row == -1);
		return;
	}
	check(k->len > 0 && k->len <= KEYX_MAX && k->buf[k->len] == '\0');
	check(strlen(k->buf) == k->len);
	for (size_t i = 0; i < k->len; i++)
		check((unsigned char)k->buf[i] >= 0x20 && k->buf[i] != 0x7f);
	check((k->source >= 0) != (k->preset_row >= 0));
	check(k->source < (int)c->nkeysrc);
	check(!partial || !key_from_body(c, k));
}

static void run(const struct rl_conf *c, const char *req, const struct http_head *h,
                const char *body, size_t blen, bool partial)
{
	static struct keyx_key k1, k2;
	enum keyx_miss r1 = keyx_extract(c, req, h, body, blen, !partial, &k1);
	enum keyx_miss r2 = keyx_extract(c, req, h, body, blen, !partial, &k2);

	check_key(c, &k1, r1, partial);
	check(r1 == r2 && k1.len == k2.len && memcmp(k1.buf, k2.buf, k1.len) == 0);
	check(k1.source == k2.source && k1.preset_row == k2.preset_row);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_head h;

	if (nconfigs == 0)
		build_configs();
	if (size < FUZZ_PREFIX)
		return 0;
	size_t pick = data[0] % nconfigs;
	unsigned flags = data[1];
	size_t len = size - FUZZ_PREFIX;
	char *req = malloc(len ? len : 1);
	check(req != NULL);
	memcpy(req, data + FUZZ_PREFIX, len);
	if (http_parse_request(req, len, FUZZ_MAX_HEAD, &h) == HTTP_OK) {
		size_t blen = len - h.head_len;
		char *body = blen > 0 ? malloc(blen) : NULL;
		check(blen == 0 || body != NULL);
		if (blen > 0)
			memcpy(body, req + h.head_len, blen);
		bool partial = (flags & FUZZ_F_PARTIAL) != 0;
		for (size_t i = 0; i < nconfigs; i++)
			if (i == pick || (flags & FUZZ_F_ALL))
				run(configs[i], req, &h, body, blen, partial);
		free(body);
	}
	free(req);
	return 0;
}
