/*
 * preset — built-in key extraction for known bot platforms ([routing] preset = NAME).
 *
 * A preset is a static table of locations in the [routing] key grammar, each with a role:
 *
 *     NOKEY rows  ──► any match: a documented request without a key (Slack
 *                     url_verification, Discord PING, Meta GET verification, ...)
 *     KEY rows    ──► the first one present is the conversation key's value
 *     SCOPE rows  ──► the first one present prefixes it:  key = "scope/value"
 *
 * keyx evaluates the rows with the same code as configured sources, after those
 * (research/bot-traffic.md §7). Pure: no I/O; the tables are constant, and the few
 * path regexes are compiled once, on first use, for the life of the process.
 */
#ifndef RL_PRESET_H
#define RL_PRESET_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#include "conf.h"

#define PRESET_SCOPE_SEP '/' /* between scope and value in a preset's key */

enum preset_role {
	PRESET_NOKEY = 0, /* matching `test`: the request carries no key by design */
	PRESET_SCOPE,     /* the first scope row present prefixes the key */
	PRESET_KEY,       /* the first key row present is the key's value */
};

/* What makes a NOKEY row match. */
enum preset_test {
	PRESET_TEST_NONE = 0, /* (KEY and SCOPE rows) */
	PRESET_TEST_EQUALS,   /* the location's text equals `value` ("1", "true", "ping") */
	PRESET_TEST_PRESENT,  /* the location exists, whatever its type */
	PRESET_TEST_EMPTY,    /* the location is an empty JSON array */
};

/* Row flags. */
#define PRESET_F_ANY_MEMBER    (1u << 0) /* a "*" JSON path segment matches any member */
#define PRESET_F_CUT_MESSAGEID (1u << 1) /* drop a ";messageid=..." suffix (Teams threads) */

/* One location. Strings are static; arguments as in struct rl_keysrc. */
struct preset_row {
	enum preset_role role;
	enum rl_keysrc_type type;
	const char *arg;       /* header/query/cookie/form name, JSON path, path regex,
	                          formjson field, or sym's first location */
	const char *arg2;      /* formjson JSON path or sym's second location; else NULL */
	enum preset_test test; /* NOKEY rows */
	const char *value;     /* text for PRESET_TEST_EQUALS and for `when` */
	const char *when;      /* KEY rows: JSON path that must hold `value`, or NULL */
	const char *method;    /* NOKEY rows: only for this request method, or NULL */
	unsigned flags;        /* PRESET_F_* */
};

struct preset {
	const char *name; /* as written in [routing] preset */
	const struct preset_row *rows;
	size_t nrows;
};

/* The preset called name, or NULL (also for NULL and ""). */
const struct preset *preset_find(const char *name);

/* All presets, in the order of the documentation: index 0 .. preset_count() - 1. */
size_t preset_count(void);
const struct preset *preset_at(size_t i);

/* True when a row of p reads the request body (json, form, formjson, a sym over them, or
 * a `when` condition). */
bool preset_needs_body(const struct preset *p);

/* True when the location text ("form:From") reads the body. */
bool preset_loc_reads_body(const char *loc);

/* The compiled regex of a RL_KEYSRC_PATH_REGEX row (REG_EXTENDED), or NULL. Thread-safe. */
const regex_t *preset_regex(const struct preset_row *r);

/* The row as a [routing] key location ("json:message.chat.id"); snprintf's result. */
int preset_row_format(const struct preset_row *r, char *buf, size_t len);

/* Short names for logs and tests ("key"); never NULL. */
const char *preset_role_name(enum preset_role r);

#endif
