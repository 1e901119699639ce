/*
 * conf_keysrc — the syntax of one [routing] key source ("header:X-Conversation-ID",
 * "path:^/c/([0-9]+)", "sym:form:From|form:To", ...): parsed and checked at config load,
 * path regexes compiled here (with a size budget: glibc's regcomp copies repeated
 * subexpressions), so the data path only ever sees valid sources.
 */
#include "conf.h"
#include "conf_text.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CONF_PATH_SEG_MAX 64        /* largest N in path:N */
#define CONF_RE_BOUND_MAX 255       /* largest {m,n} count in a path:REGEX */
#define CONF_RE_SIZE_MAX  (1 << 14) /* path:REGEX length × its copy multipliers (see below) */

/* ---- key sources ---- */

struct keysrc_kind {
	const char *prefix;
	enum rl_keysrc_type type;
	int (*parse)(struct rl_keysrc *out, const char *arg, char *why, size_t size);
};

static int keysrc_header(struct rl_keysrc *out, const char *arg, char *why, size_t size);
static int keysrc_name(struct rl_keysrc *out, const char *arg, char *why, size_t size);
static int keysrc_path(struct rl_keysrc *out, const char *arg, char *why, size_t size);
static int keysrc_json(struct rl_keysrc *out, const char *arg, char *why, size_t size);
static int keysrc_formjson(struct rl_keysrc *out, const char *arg, char *why, size_t size);
static int keysrc_sym(struct rl_keysrc *out, const char *arg, char *why, size_t size);

static const struct keysrc_kind keysrc_kinds[] = {
        {"header:", RL_KEYSRC_HEADER, keysrc_header},
        {"query:", RL_KEYSRC_QUERY, keysrc_name},
        {"cookie:", RL_KEYSRC_COOKIE, keysrc_name},
        {"path:", RL_KEYSRC_PATH_SEG, keysrc_path}, /* or RL_KEYSRC_PATH_REGEX */
        {"json:", RL_KEYSRC_JSON, keysrc_json},
        {"form:", RL_KEYSRC_FORM, keysrc_name},
        {"formjson:", RL_KEYSRC_FORMJSON, keysrc_formjson},
        {"sym:", RL_KEYSRC_SYM, keysrc_sym},
        {NULL, 0, NULL},
};

static const struct keysrc_kind *keysrc_kind_of(const char *s)
{
	for (const struct keysrc_kind *k = keysrc_kinds; k->prefix != NULL; k++)
		if (strncmp(s, k->prefix, strlen(k->prefix)) == 0)
			return k;
	return NULL;
}

/*
 * End of the source that starts at s: the next sep whose following text (after blanks)
 * starts a known source prefix, else the end of s. So "path:^/a,b/([0-9]+)" keeps its
 * comma, while ", header:X" starts a new source.
 */
const char *conf_keysrc_end(const char *s, char sep)
{
	for (const char *p = strchr(s, sep); p != NULL; p = strchr(p + 1, sep))
		if (keysrc_kind_of(conf_skip_space(p + 1)) != NULL)
			return p;
	return s + strlen(s);
}

static int keysrc_set_arg(struct rl_keysrc *out, const char *arg, char *why, size_t size)
{
	out->arg = strdup(arg);
	return out->arg != NULL ? 0 : conf_why(why, size, "out of memory");
}

static int keysrc_header(struct rl_keysrc *out, const char *arg, char *why, size_t size)
{
	if (!conf_is_token(arg))
		return conf_why(why, size, "expected a header name after header:");
	return keysrc_set_arg(out, arg, why, size);
}

static int keysrc_name(struct rl_keysrc *out, const char *arg, char *why, size_t size)
{
	if (!conf_is_visible(arg))
		return conf_why(why, size, "expected a name (visible ASCII, no spaces)");
	return keysrc_set_arg(out, arg, why, size);
}

/* "a.b.0.c": non-empty dot-separated segments of visible ASCII. */
static bool json_path_ok(const char *s)
{
	if (!conf_is_visible(s) || s[0] == '.')
		return false;
	for (; *s != '\0'; s++)
		if (s[0] == '.' && (s[1] == '.' || s[1] == '\0'))
			return false;
	return true;
}

static int keysrc_json(struct rl_keysrc *out, const char *arg, char *why, size_t size)
{
	if (!json_path_ok(arg))
		return conf_why(why, size, "expected a JSON path such as message.chat.id");
	return keysrc_set_arg(out, arg, why, size);
}

static int keysrc_formjson(struct rl_keysrc *out, const char *arg, char *why, size_t size)
{
	const char *colon = strchr(arg, ':');

	if (colon == NULL || colon == arg || !json_path_ok(colon + 1))
		return conf_why(why, size, "expected formjson:FIELD:json.path");
	out->arg = strndup(arg, (size_t)(colon - arg));
	out->arg2 = strdup(colon + 1);
	if (out->arg == NULL || out->arg2 == NULL)
		return conf_why(why, size, "out of memory");
	if (!conf_is_visible(out->arg))
		return conf_why(why, size, "expected formjson:FIELD:json.path");
	return 0;
}

/* How many copies regcomp makes of what the quantifier at s applies to (1 = none). */
static uint64_t regex_copies(const char *s)
{
	uint64_t lo = 0, hi;
	const char *q = s + 1;
	bool has_lo;

	if (*s == '+')
		return 2; /* x+ is built as x x* */
	if (*s != '{')
		return 1;
	has_lo = conf_parse_digits(q, &lo, &q) == CONF_NUM_OK;
	if (*q == ',') {
		q++;
		if (conf_parse_digits(q, &hi, &q) != CONF_NUM_OK)
			hi = lo + 1; /* x{n,} is n copies and a star */
	} else if (has_lo) {
		hi = lo;
	} else {
		return 1; /* a literal '{': regcomp judges it */
	}
	if (lo > CONF_RE_BOUND_MAX || hi > CONF_RE_BOUND_MAX)
		return UINT64_MAX;
	return hi > 0 ? hi : 1;
}

/*
 * glibc's regcomp copies the subexpression of x+ and x{m,n} once per repetition, so
 * nested or stacked quantifiers multiply its memory: ((a{100}){100}){100} or (a)++++...
 * take gigabytes. Bound the pattern length times the product of every quantifier's
 * copies. Conservative: a quantifier counts even when it is not nested.
 */
static bool regex_size_ok(const char *re)
{
	uint64_t size = strlen(re) + 1;

	for (const char *s = re; *s != '\0'; s++) {
		if (*s == '\\' && s[1] != '\0') {
			s++;
			continue;
		}
		uint64_t copies = regex_copies(s);
		if (copies > CONF_RE_SIZE_MAX / size)
			return false;
		size *= copies;
	}
	return true;
}

static int keysrc_regex(struct rl_keysrc *out, const char *arg, char *why, size_t size)
{
	char err[CONF_WHY_MAX / 2];
	int rc;

	if (!regex_size_ok(arg))
		return conf_why(why, size,
		                "regex too large (counts up to %d; nested + and {m,n} multiply)",
		                CONF_RE_BOUND_MAX);
	out->type = RL_KEYSRC_PATH_REGEX;
	out->re = calloc(1, sizeof(*out->re));
	if (out->re == NULL)
		return conf_why(why, size, "out of memory");
	rc = regcomp(out->re, arg, REG_EXTENDED);
	if (rc != 0) {
		regerror(rc, out->re, err, sizeof(err));
		free(out->re);
		out->re = NULL;
		return conf_why(why, size, "invalid regex (%s)", err);
	}
	if (out->re->re_nsub == 0)
		return conf_why(why, size, "regex needs a capture group for the key, %s",
		                "e.g. ^/chat/([^/]+)");
	return keysrc_set_arg(out, arg, why, size);
}

/* path:N (all digits) is a 1-based segment; anything else is a regex. */
static int keysrc_path(struct rl_keysrc *out, const char *arg, char *why, size_t size)
{
	uint64_t n;
	const char *end;

	if (*arg == '\0')
		return conf_why(why, size, "expected path:N or path:REGEX");
	if (strspn(arg, "0123456789") != strlen(arg))
		return keysrc_regex(out, arg, why, size);
	if (conf_parse_digits(arg, &n, &end) != CONF_NUM_OK || n < 1 || n > CONF_PATH_SEG_MAX)
		return conf_why(why, size, "path segment must be 1..%d", CONF_PATH_SEG_MAX);
	out->segment = (unsigned)n;
	return keysrc_set_arg(out, arg, why, size);
}

/* Validate one location of a sym pair; it must not itself be a sym. */
static int keysrc_sym_loc(const char *loc, const char *which, char *why, size_t size)
{
	struct rl_keysrc tmp;
	char inner[CONF_WHY_MAX / 2];

	if (strncmp(loc, "sym:", 4) == 0)
		return conf_why(why, size, "sym: %s location cannot be a sym", which);
	if (conf_parse_keysrc(loc, &tmp, inner, sizeof(inner)) < 0)
		return conf_why(why, size, "sym: %s location: %s", which, inner);
	conf_keysrc_free(&tmp);
	return 0;
}

/* sym:LOC|LOC, split at the first '|' that starts a known source; stores both texts. */
static int keysrc_sym(struct rl_keysrc *out, const char *arg, char *why, size_t size)
{
	const char *bar = conf_keysrc_end(arg, '|');

	if (*bar == '\0')
		return conf_why(why, size, "expected sym:LOC|LOC");
	out->arg = conf_dup_trimmed(arg, (size_t)(bar - arg));
	out->arg2 = conf_dup_trimmed(bar + 1, strlen(bar + 1));
	if (out->arg == NULL || out->arg2 == NULL)
		return conf_why(why, size, "out of memory");
	if (keysrc_sym_loc(out->arg, "first", why, size) < 0 ||
	    keysrc_sym_loc(out->arg2, "second", why, size) < 0)
		return -1;
	return 0;
}

void conf_keysrc_free(struct rl_keysrc *s)
{
	if (s == NULL)
		return;
	if (s->re != NULL) {
		regfree(s->re);
		free(s->re);
	}
	free(s->arg);
	free(s->arg2);
	memset(s, 0, sizeof(*s));
}

int conf_parse_keysrc(const char *text, struct rl_keysrc *out, char *why, size_t whylen)
{
	char scratch[CONF_WHY_MAX];
	const struct keysrc_kind *kind = keysrc_kind_of(text);

	if (why == NULL || whylen == 0) {
		why = scratch;
		whylen = sizeof(scratch);
	}
	memset(out, 0, sizeof(*out));
	if (kind == NULL)
		return conf_why(why, whylen,
		                "unknown key source (expected header:, query:, "
		                "cookie:, path:, json:, form:, formjson: or sym:)");
	out->type = kind->type;
	if (kind->parse(out, text + strlen(kind->prefix), why, whylen) < 0) {
		conf_keysrc_free(out);
		return -1;
	}
	return 0;
}
