/*
 * conf — the ini configuration: parse → validate → build one struct rl_conf.
 *
 *   file or text ──conf_reader──► inih ──on_key──► conf_rows[] ──► struct rl_conf
 *                  line numbers,      key = value    type, range,      │
 *                  length, sections,  splitting,     default, offset   ▼
 *                  syntax errors      ';' comments                  validate()
 *                                                                   cross-key rules
 *
 * conf_rows[] is the single source of truth: one row per key gives its section, type,
 * range, default text, field offset and whether a reload may change it. Defaults are
 * applied by parsing each row's default text exactly like file text, so they are
 * validated too, and conf_free releases fields by walking the same rows.
 *
 * inih 55 as Debian builds it (INI_MAX_LINE 200 on the stack, multiline values and
 * inline " ;" comments on, no line numbers for the handler) is handed nothing but
 * "key = value" lines. The reader in front of it:
 *  - counts physical lines, so every message carries file:line;
 *  - rejects a key line that does not fit inih's buffer (inih 55 would split it in two)
 *    and any line over CONF_LINE_MAX;
 *  - strips leading whitespace, so inih never sees a continuation line: an indented line
 *    is an ordinary line, and a mistake in it is reported instead of being appended to
 *    the previous value;
 *  - parses [section] headers itself (inih truncates names at 50 bytes and says nothing
 *    about an empty section);
 *  - reports a line that inih did not turn into a key (no '=' or ':').
 * Every error is collected; loading never stops at the first one and never exits.
 *
 * Only this file includes inih.
 */
#include "conf.h"
#include "conf_text.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#define CONF_INIH_SLACK 3 /* inih's buffer must hold the line plus "\r\n\0" */
#define CONF_UTF8_BOM   "\xef\xbb\xbf"
#define CONF_NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

#define SECONDS(x) ((uint64_t)(x)*1000)
#define MINUTES(x) SECONDS((uint64_t)(x)*60)
#define HOURS(x)   MINUTES((uint64_t)(x)*60)
#define DAYS(x)    HOURS((uint64_t)(x)*24)
#define KIB(x)     ((uint64_t)(x) << 10)
#define MIB(x)     ((uint64_t)(x) << 20)
#define GIB(x)     ((uint64_t)(x) << 30)

/* ---- string tables (index = enum value) ---- */

static const char *const log_level_names[] = {[RL_LOG_ERROR] = "error",
                                              [RL_LOG_WARN] = "warn",
                                              [RL_LOG_INFO] = "info",
                                              [RL_LOG_DEBUG] = "debug",
                                              [RL_LOG_DEBUG + 1] = NULL};
static const char *const missing_key_names[] = {[RL_MISSING_LEAST_LOADED] = "least_loaded",
                                                [RL_MISSING_REJECT] = "reject",
                                                [RL_MISSING_RANDOM] = "random",
                                                [RL_MISSING_CLIENT_IP] = "client_ip",
                                                [RL_MISSING_CLIENT_IP + 1] = NULL};
static const char *const hash_names[] = {[RL_HASH_MAGLEV] = "maglev",
                                         [RL_HASH_RENDEZVOUS] = "rendezvous",
                                         [RL_HASH_RING] = "ring",
                                         [RL_HASH_RING + 1] = NULL};
static const char *const backend_state_names[] = {[RL_BACKEND_UP] = "up",
                                                  [RL_BACKEND_DRAINING] = "draining",
                                                  [RL_BACKEND_DRAINING + 1] = NULL};
static const char *const tls_version_names[] = {[RL_TLS_1_0] = "TLSv1.0",
                                                [RL_TLS_1_1] = "TLSv1.1",
                                                [RL_TLS_1_2] = "TLSv1.2",
                                                [RL_TLS_1_3] = "TLSv1.3",
                                                [RL_TLS_1_3 + 1] = NULL};
static const char *const preset_names[] = {
        "telegram", "slack", "discord",  "botframework", "twilio", "whatsapp-cloud", "messenger",
        "line",     "viber", "sunshine", "intercom",     "rasa",   "botpress",       "openai",
        "generic",  NULL};

/* CONF_ENUM rows store the index through an int. */
_Static_assert(sizeof(enum rl_log_level) == sizeof(int), "enum size");
_Static_assert(sizeof(enum rl_missing_key) == sizeof(int), "enum size");
_Static_assert(sizeof(enum rl_hash) == sizeof(int), "enum size");
_Static_assert(sizeof(enum rl_backend_state) == sizeof(int), "enum size");
_Static_assert(sizeof(enum rl_tls_version) == sizeof(int), "enum size");

/* ---- the key table ---- */

enum conf_type {
	CONF_BOOL = 0,     /* bool: on|off, yes|no, true|false */
	CONF_UINT,         /* unsigned, min..max */
	CONF_UINT_AUTO,    /* unsigned: "auto" (stored as 0) or min..max */
	CONF_U64,          /* uint64_t, min..max */
	CONF_DURATION,     /* uint64_t milliseconds; min..max in ms */
	CONF_SIZE,         /* size_t bytes; min..max in bytes */
	CONF_FACTOR,       /* double: 0 (off) or min..max */
	CONF_STRING,       /* char *, owned; "" is kept as "" */
	CONF_OPT_STRING,   /* char *, owned; "" is stored as NULL */
	CONF_ENUM,         /* enum stored as int: index in names; min = first allowed */
	CONF_ADDR,         /* struct rl_addr, a concrete (non-wildcard) address */
	CONF_ADDR_LIST,    /* struct rl_addr_list; "" = none */
	CONF_KEYSRC_LIST,  /* size_t count at off, struct rl_keysrc[CONF_MAX_KEYSRC] at off2 */
	CONF_STATUS_RANGE, /* unsigned lo at off, hi at off2; both within min..max */
};

struct conf_row {
	const char *section; /* "proxy" ... "admin", or "backend" for every [backend NAME] */
	const char *key;
	enum conf_type type;
	uint64_t min, max; /* range in the type's unit: count, ms, bytes, enum index */
	const char *def;   /* default text, parsed like file text; NULL = required key */
	size_t off;        /* field in struct rl_conf (struct rl_backend_conf for backends) */
	bool reload;       /* a reload may change it; false = needs a restart */
	size_t off2;       /* second field of CONF_KEYSRC_LIST and CONF_STATUS_RANGE */
	const char *const *names;            /* CONF_ENUM values; for strings: allowed values */
	const char *(*check)(const char *v); /* extra rule for strings: NULL or why not */
	const char *below_min;               /* CONF_ENUM: why values before min are refused */
};

#define RELOAD  true
#define RESTART false
#define G(f)    offsetof(struct rl_conf, f)
#define B(f)    offsetof(struct rl_backend_conf, f)
#define ROW(sect, k, t, lo, hi, d, field, rl, ...)                                                 \
	{                                                                                          \
		.section = sect, .key = k, .type = t, .min = lo, .max = hi, .def = d,              \
		.off = field, .reload = rl, __VA_ARGS__                                            \
	}

static const char *check_not_empty(const char *v);
static const char *check_header_name(const char *v);
static const char *check_url_path(const char *v);
static const char *check_visible(const char *v);

/* clang-format off */
static const struct conf_row conf_rows[] = {
	/* section, key, type, min, max, default, field, reload, extras */
	ROW("proxy", "listen", CONF_ADDR_LIST, 0, 0, "127.0.0.1:8080", G(listen), RELOAD),
	ROW("proxy", "workers", CONF_UINT_AUTO, 1, 256, "auto", G(workers), RESTART),
	ROW("proxy", "max_connections", CONF_UINT, 1, 1000000, "10000", G(max_connections),
	    RELOAD),
	ROW("proxy", "header_timeout", CONF_DURATION, 1, HOURS(1), "10s",
	    G(header_timeout_ms), RELOAD),
	ROW("proxy", "client_idle_timeout", CONF_DURATION, 1, DAYS(1), "60s",
	    G(client_idle_timeout_ms), RELOAD),
	ROW("proxy", "max_header_size", CONF_SIZE, KIB(1), MIB(1), "16k", G(max_header_size),
	    RELOAD),
	ROW("proxy", "max_body_size", CONF_SIZE, KIB(1), GIB(1), "1m", G(max_body_size), RELOAD),
	ROW("proxy", "log_level", CONF_ENUM, 0, 0, "info", G(log_level), RELOAD,
	    .names = log_level_names),
	ROW("proxy", "access_log", CONF_STRING, 0, 0, "-", G(access_log), RELOAD,
	    .check = check_not_empty),

	ROW("tls", "listen", CONF_ADDR_LIST, 0, 0, "", G(tls_listen), RELOAD),
	ROW("tls", "cert", CONF_OPT_STRING, 0, 0, "", G(tls_cert), RELOAD),
	ROW("tls", "key", CONF_OPT_STRING, 0, 0, "", G(tls_key), RELOAD),
	ROW("tls", "sni", CONF_OPT_STRING, 0, 0, "", G(tls_sni), RELOAD),
	ROW("tls", "min_version", CONF_ENUM, RL_TLS_1_2, 0, "TLSv1.2", G(tls_min_version), RELOAD,
	    .names = tls_version_names, .below_min = "TLSv1.0/1.1 are insecure"),

	ROW("routing", "key", CONF_KEYSRC_LIST, 0, 0, "header:X-Conversation-ID", G(nkeysrc),
	    RELOAD, .off2 = G(keysrc)),
	ROW("routing", "preset", CONF_OPT_STRING, 0, 0, "", G(preset), RELOAD,
	    .names = preset_names),
	ROW("routing", "missing_key", CONF_ENUM, 0, 0, "least_loaded", G(missing_key), RELOAD,
	    .names = missing_key_names),
	ROW("routing", "max_key_body", CONF_SIZE, KIB(1), MIB(16), "64k", G(max_key_body),
	    RELOAD),
	ROW("routing", "key_header", CONF_STRING, 0, 0, "X-Conversation-Key", G(key_header),
	    RELOAD, .check = check_header_name),
	ROW("routing", "hash", CONF_ENUM, 0, 0, "maglev", G(hash), RELOAD, .names = hash_names),
	ROW("routing", "hash_seed", CONF_U64, 0, UINT64_MAX, "0", G(hash_seed), RELOAD),
	ROW("routing", "balance_factor", CONF_FACTOR, 1, 100, "0", G(balance_factor), RELOAD),
	ROW("routing", "affinity_ttl", CONF_DURATION, SECONDS(1), DAYS(30), "30m",
	    G(affinity_ttl_ms), RELOAD),
	ROW("routing", "affinity_max", CONF_U64, 1, 1000000000, "1000000", G(affinity_max),
	    RESTART),
	ROW("routing", "drain_timeout", CONF_DURATION, SECONDS(1), DAYS(30), "15m",
	    G(drain_timeout_ms), RELOAD),

	ROW("upstream", "connect_timeout", CONF_DURATION, 1, MINUTES(10), "2s",
	    G(connect_timeout_ms), RELOAD),
	ROW("upstream", "response_timeout", CONF_DURATION, 1, DAYS(1), "30s",
	    G(response_timeout_ms), RELOAD),
	ROW("upstream", "tunnel_idle_timeout", CONF_DURATION, SECONDS(1), DAYS(7), "10m",
	    G(tunnel_idle_timeout_ms), RELOAD),
	ROW("upstream", "max_idle_per_backend", CONF_UINT, 0, 100000, "64",
	    G(max_idle_per_backend), RELOAD),
	ROW("upstream", "retries", CONF_UINT, 0, 10, "1", G(retries), RELOAD),

	ROW("health", "path", CONF_STRING, 0, 0, "/healthz", G(health_path), RELOAD,
	    .check = check_url_path),
	ROW("health", "interval", CONF_DURATION, 100, HOURS(1), "2s", G(health_interval_ms),
	    RELOAD),
	ROW("health", "timeout", CONF_DURATION, 1, HOURS(1), "1s", G(health_timeout_ms), RELOAD),
	ROW("health", "rise", CONF_UINT, 1, 100, "2", G(health_rise), RELOAD),
	ROW("health", "fall", CONF_UINT, 1, 100, "3", G(health_fall), RELOAD),
	ROW("health", "expect", CONF_STATUS_RANGE, 100, 599, "200-399", G(health_expect_lo),
	    RELOAD, .off2 = G(health_expect_hi)),
	ROW("health", "passive_failures", CONF_UINT, 0, 1000, "3", G(passive_failures), RELOAD),

	ROW("admin", "listen", CONF_ADDR_LIST, 0, 0, "127.0.0.1:9901", G(admin_listen), RELOAD),
	ROW("admin", "token", CONF_STRING, 0, 0, "", G(admin_token), RELOAD,
	    .check = check_visible),

	ROW("backend", "address", CONF_ADDR, 0, 0, NULL, B(address), RELOAD),
	ROW("backend", "weight", CONF_UINT, 1, 256, "1", B(weight), RELOAD),
	ROW("backend", "state", CONF_ENUM, 0, 0, "up", B(state), RELOAD,
	    .names = backend_state_names),
	ROW("backend", "tls", CONF_BOOL, 0, 0, "off", B(tls), RELOAD),
	ROW("backend", "ca", CONF_OPT_STRING, 0, 0, "", B(ca), RELOAD),
};
/* clang-format on */

#define CONF_NROWS (sizeof(conf_rows) / sizeof(conf_rows[0]))

/* The fixed sections, in the order of the documented sample; "backend" repeats. */
static const char *const conf_sections[] = {"proxy",  "tls",   "routing", "upstream",
                                            "health", "admin", NULL};
#define CONF_NSECTIONS (sizeof(conf_sections) / sizeof(conf_sections[0]) - 1)
#define CONF_BACKEND   "backend"

/* ---- errors ---- */

static int errors_push(struct conf_errors *e, char *msg)
{
	char **grown = realloc(e->msg, (e->n + 1) * sizeof(*grown));

	if (grown == NULL) {
		free(msg);
		return -1;
	}
	e->msg = grown;
	e->msg[e->n++] = msg;
	return 0;
}

void conf_errors_free(struct conf_errors *e)
{
	if (e == NULL)
		return;
	for (size_t i = 0; i < e->n; i++)
		free(e->msg[i]);
	free(e->msg);
	e->msg = NULL;
	e->n = 0;
}

/* Format a reason into buf; returns -1 so parsers can `return conf_why(...)`. */
int FORMAT(3, 4) conf_why(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- small text helpers ---- */

const char *conf_skip_space(const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	return s;
}

/* Copy s[0..len) without surrounding whitespace; NULL when out of memory. */
char *conf_dup_trimmed(const char *s, size_t len)
{
	while (len > 0 && isspace((unsigned char)*s)) {
		s++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	return strndup(s, len);
}

/* Visible ASCII only (no spaces, no control bytes), at least one byte. */
bool conf_is_visible(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s > '~')
			return false;
	return true;
}

/* An RFC 9110 token (header field name). */
bool conf_is_token(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && strchr("!#$%&'*+-.^_`|~", *s) == NULL)
			return false;
	return true;
}

static int name_index(const char *const *names, const char *v)
{
	for (int i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], v) == 0)
			return i;
	return -1;
}

static size_t names_count(const char *const *names)
{
	size_t n = 0;

	while (names[n] != NULL)
		n++;
	return n;
}

/* "a | b | c" from names[first..] into buf. */
static const char *names_join(const char *const *names, size_t first, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = first; names[i] != NULL && used < size; i++)
		used += (size_t)snprintf(buf + used, size - used, "%s%s", i > first ? " | " : "",
		                         names[i]);
	return buf;
}

static const char *check_not_empty(const char *v)
{
	return *v != '\0' ? NULL : "must not be empty";
}

static const char *check_header_name(const char *v)
{
	return *v == '\0' || conf_is_token(v) ? NULL : "expected a header name, or \"\" for off";
}

static const char *check_url_path(const char *v)
{
	return *v == '\0' || (v[0] == '/' && conf_is_visible(v))
	               ? NULL
	               : "expected a path starting with /";
}

static const char *check_visible(const char *v)
{
	return *v == '\0' || conf_is_visible(v) ? NULL : "only visible ASCII, no spaces";
}

/* ---- numbers with units ---- */

struct conf_unit {
	const char *suffix;
	uint64_t mult; /* base units (ms, bytes) per one */
};

/* Largest first, so formatting picks the largest exact unit. A bare number is seconds. */
static const struct conf_unit duration_units[] = {{"h", HOURS(1)},   {"m", MINUTES(1)},
                                                  {"s", SECONDS(1)}, {"ms", 1},
                                                  {"", SECONDS(1)},  {NULL, 0}};
static const struct conf_unit size_units[] = {{"m", MIB(1)}, {"M", MIB(1)}, {"k", KIB(1)},
                                              {"K", KIB(1)}, {"", 1},       {NULL, 0}};
static const struct conf_unit count_units[] = {{"", 1}, {NULL, 0}};

/* Leading decimal digits of s (no sign, no space); *end is set after them. */
enum conf_num conf_parse_digits(const char *s, uint64_t *out, const char **end)
{
	char *e;

	if (!isdigit((unsigned char)*s))
		return CONF_NUM_SYNTAX;
	errno = 0;
	unsigned long long n = strtoull(s, &e, 10);
	if (errno == ERANGE)
		return CONF_NUM_OVERFLOW;
	*out = n;
	*end = e;
	return CONF_NUM_OK;
}

/* A whole number followed by exactly one of the units' suffixes. */
static enum conf_num parse_with_unit(const char *s, const struct conf_unit *units, uint64_t *out)
{
	const char *end;
	uint64_t n;
	enum conf_num rc = conf_parse_digits(s, &n, &end);

	if (rc != CONF_NUM_OK)
		return rc;
	for (const struct conf_unit *u = units; u->suffix != NULL; u++) {
		if (strcmp(end, u->suffix) != 0)
			continue;
		if (n > UINT64_MAX / u->mult)
			return CONF_NUM_OVERFLOW;
		*out = n * u->mult;
		return CONF_NUM_OK;
	}
	return CONF_NUM_SYNTAX;
}

/* v in the largest unit that divides it exactly: 3600000 → "1h", 1536 → "1536". */
static const char *format_units(uint64_t v, const struct conf_unit *units, char *buf, size_t size)
{
	const struct conf_unit *u = units;

	while (v != 0 && u[1].suffix != NULL && v % u->mult != 0)
		u++;
	if (v == 0)
		snprintf(buf, size, "0");
	else
		snprintf(buf, size, "%llu%s", (unsigned long long)(v / u->mult), u->suffix);
	return buf;
}

int conf_parse_duration_ms(const char *s, uint64_t *out)
{
	return parse_with_unit(s, duration_units, out) == CONF_NUM_OK ? 0 : -1;
}

int conf_parse_size(const char *s, uint64_t *out)
{
	return parse_with_unit(s, size_units, out) == CONF_NUM_OK ? 0 : -1;
}

/* ---- addresses ---- */

/* "1..65535", digits only. */
static int parse_port(const char *s, unsigned *out)
{
	uint64_t n;
	const char *end;

	if (conf_parse_digits(s, &n, &end) != CONF_NUM_OK || *end != '\0' || n < 1 || n > 65535)
		return -1;
	*out = (unsigned)n;
	return 0;
}

/* Why host (text between the brackets if v6) is not a numeric address of its kind. */
static const char *addr_host_why(const char *host, bool v6)
{
	if (v6)
		return "not an IPv6 address";
	if (*host == '\0')
		return "missing host (use * for every address)";
	for (const char *s = host; *s != '\0'; s++)
		if (isalpha((unsigned char)*s))
			return "hostnames are not resolved, use a numeric IP address";
	return "not an IPv4 address";
}

static const char *addr_fill_v6(const char *host, unsigned port, struct rl_addr *out)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
	char ip[INET6_ADDRSTRLEN];

	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
		return addr_host_why(host, true);
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons((uint16_t)port);
	out->len = sizeof(*sin6);
	inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
	snprintf(out->text, sizeof(out->text), "[%s]:%u", ip, port);
	return NULL;
}

/* host is dotted IPv4 or "*" (any address). */
static const char *addr_fill_v4(const char *host, unsigned port, struct rl_addr *out)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
	char ip[INET_ADDRSTRLEN];

	memset(out, 0, sizeof(*out));
	if (strcmp(host, "*") == 0)
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		return addr_host_why(host, false);
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	out->len = sizeof(*sin);
	inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
	snprintf(out->text, sizeof(out->text), "%s:%u", ip, port);
	return NULL;
}

/* Parse "a.b.c.d:port", "[v6]:port" or "*:port"; NULL on success, else why not. */
static const char *addr_parse(const char *s, struct rl_addr *out)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *sep, *start = s;
	bool v6 = s[0] == '[';
	unsigned port;

	if (v6) {
		start = s + 1;
		sep = strchr(start, ']');
		if (sep == NULL || sep[1] != ':')
			return "expected [IPv6]:port";
	} else {
		sep = strchr(s, ':');
		if (sep == NULL)
			return "expected host:port";
		if (strchr(sep + 1, ':') != NULL)
			return "an IPv6 address needs brackets: [addr]:port";
	}
	snprintf(host, sizeof(host), "%.*s", (int)(sep - start), start);
	if ((size_t)(sep - start) >= sizeof(host))
		return addr_host_why(host, v6);
	if (parse_port(sep + (v6 ? 2 : 1), &port) < 0)
		return "port must be 1..65535";
	return v6 ? addr_fill_v6(host, port, out) : addr_fill_v4(host, port, out);
}

int conf_parse_addr(const char *s, struct rl_addr *out)
{
	struct rl_addr a;

	if (addr_parse(s, &a) != NULL)
		return -1;
	*out = a;
	return 0;
}

static bool addr_is_wildcard(const struct rl_addr *a)
{
	if (a->ss.ss_family == AF_INET)
		return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
}

static bool addr_is_loopback(const struct rl_addr *a)
{
	if (a->ss.ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr) >> 24) == 127;
	const struct in6_addr *ip = &((const struct sockaddr_in6 *)&a->ss)->sin6_addr;
	return IN6_IS_ADDR_LOOPBACK(ip) || (IN6_IS_ADDR_V4MAPPED(ip) && ip->s6_addr[12] == 127);
}

/* ---- one value of one row ---- */

struct conf_val {
	const struct conf_row *row;
	const char *text;       /* the value, quotes removed */
	void *field;            /* row->off in the base struct */
	void *field2;           /* row->off2 in the base struct */
	char why[CONF_WHY_MAX]; /* reason when parsing fails */
};

#define WHY(v, ...) conf_why((v)->why, sizeof((v)->why), __VA_ARGS__)

/* Accepted suffixes and the expected form of the numeric types. */
static const struct conf_numeric {
	const struct conf_unit *units;
	const char *expect;
} conf_numeric[] = {
        [CONF_UINT] = {count_units, "a whole number"},
        [CONF_UINT_AUTO] = {count_units, "auto or a whole number"},
        [CONF_U64] = {count_units, "a whole number"},
        [CONF_DURATION] = {duration_units, "a whole number with ms, s, m or h; bare = seconds"},
        [CONF_SIZE] = {size_units, "bytes, or a whole number with k or m"},
};

static int why_range(struct conf_val *v)
{
	const struct conf_unit *units = conf_numeric[v->row->type].units;
	char lo[32], hi[32];

	return WHY(v, "out of range: %s (allowed %s..%s)", v->text,
	           format_units(v->row->min, units, lo, sizeof(lo)),
	           format_units(v->row->max, units, hi, sizeof(hi)));
}

static int why_one_of(struct conf_val *v, const char *const *names, size_t first)
{
	char list[CONF_WHY_MAX / 2];

	return WHY(v, "invalid value '%s' (expected %s)", v->text,
	           names_join(names, first, list, sizeof(list)));
}

/* Parse by the row type's units and check min..max. */
static int parse_numeric(struct conf_val *v, uint64_t *out)
{
	const struct conf_numeric *t = &conf_numeric[v->row->type];
	uint64_t n = 0;
	enum conf_num rc = parse_with_unit(v->text, t->units, &n);

	if (rc == CONF_NUM_SYNTAX)
		return WHY(v, "invalid value '%s' (expected %s)", v->text, t->expect);
	if (rc == CONF_NUM_OVERFLOW || n < v->row->min || n > v->row->max)
		return why_range(v);
	*out = n;
	return 0;
}

static int parse_uint(struct conf_val *v)
{
	unsigned *field = v->field;
	uint64_t n;

	if (parse_numeric(v, &n) < 0)
		return -1;
	*field = (unsigned)n;
	return 0;
}

static int parse_uint_auto(struct conf_val *v)
{
	unsigned *field = v->field;

	if (strcmp(v->text, "auto") != 0)
		return parse_uint(v);
	*field = 0;
	return 0;
}

static int parse_u64(struct conf_val *v)
{
	uint64_t *field = v->field;

	return parse_numeric(v, field);
}

static int parse_size(struct conf_val *v)
{
	size_t *field = v->field;
	uint64_t n;

	if (parse_numeric(v, &n) < 0)
		return -1;
	*field = (size_t)n;
	return 0;
}

static int parse_bool(struct conf_val *v)
{
	static const char *const names[] = {"off", "on", "no", "yes", "false", "true", NULL};
	bool *field = v->field;
	int i = name_index(names, v->text);

	if (i < 0)
		return WHY(v, "invalid value '%s' (expected on or off)", v->text);
	*field = i % 2 == 1;
	return 0;
}

/* 0 (off) or a decimal in min..max; no sign, exponent, inf or nan. */
static int parse_factor(struct conf_val *v)
{
	double *field = v->field;
	const char *s = v->text;
	const char *dot = strchr(s, '.');
	double x;

	if (strspn(s, "0123456789.") != strlen(s) || strspn(s, ".") == strlen(s) ||
	    (dot != NULL && strchr(dot + 1, '.') != NULL))
		return WHY(v, "invalid value '%s' (expected 0 or a decimal such as 1.25)", s);
	x = strtod(s, NULL);
	if (x != 0 && (x < (double)v->row->min || x > (double)v->row->max))
		return WHY(v, "out of range: %s (allowed 0 for off, or %llu..%llu)", s,
		           (unsigned long long)v->row->min, (unsigned long long)v->row->max);
	*field = x;
	return 0;
}

static int parse_string(struct conf_val *v)
{
	const struct conf_row *row = v->row;
	const char *bad = row->check != NULL ? row->check(v->text) : NULL;
	char **field = v->field;
	char *copy = NULL;

	if (bad != NULL)
		return WHY(v, "invalid value '%s' (%s)", v->text, bad);
	if (row->names != NULL && v->text[0] != '\0' && name_index(row->names, v->text) < 0)
		return why_one_of(v, row->names, 0);
	if (v->text[0] != '\0' || row->type == CONF_STRING) {
		copy = strdup(v->text);
		if (copy == NULL)
			return WHY(v, "out of memory");
	}
	free(*field);
	*field = copy;
	return 0;
}

static int parse_enum(struct conf_val *v)
{
	int *field = v->field;
	int i = name_index(v->row->names, v->text);

	if (i < 0)
		return why_one_of(v, v->row->names, v->row->min);
	if ((uint64_t)i < v->row->min)
		return WHY(v, "%s is refused (%s)", v->text, v->row->below_min);
	*field = i;
	return 0;
}

static int parse_addr_one(struct conf_val *v)
{
	struct rl_addr *field = v->field;
	struct rl_addr a;
	const char *bad = addr_parse(v->text, &a);

	if (bad == NULL && addr_is_wildcard(&a))
		bad = "a backend needs a concrete address, not a wildcard";
	if (bad != NULL)
		return WHY(v, "invalid address '%s' (%s)", v->text, bad);
	*field = a;
	return 0;
}

/* Append the list item s[0..len) (untrimmed) to list. */
static int addr_list_add(struct conf_val *v, struct rl_addr_list *list, const char *s, size_t len)
{
	char *item = conf_dup_trimmed(s, len);
	struct rl_addr a;
	const char *bad;
	int rc = 0;

	if (item == NULL)
		return WHY(v, "out of memory");
	bad = *item == '\0' ? "empty item in the list" : addr_parse(item, &a);
	if (bad != NULL)
		rc = WHY(v, "invalid address '%s' (%s)", item, bad);
	else if (list->n == CONF_MAX_LISTEN)
		rc = WHY(v, "too many addresses (at most %d)", CONF_MAX_LISTEN);
	for (size_t i = 0; rc == 0 && i < list->n; i++)
		if (strcmp(list->addr[i].text, a.text) == 0)
			rc = WHY(v, "%s is listed twice", a.text);
	if (rc == 0)
		list->addr[list->n++] = a;
	free(item);
	return rc;
}

/* "a, b, c" → addresses; "" → none. The field changes only on success. */
static int parse_addr_list(struct conf_val *v)
{
	struct rl_addr_list *field = v->field;
	struct rl_addr_list list;
	const char *s = v->text;

	memset(&list, 0, sizeof(list));
	for (bool more = *conf_skip_space(s) != '\0'; more;) {
		const char *comma = strchr(s, ',');
		size_t len = comma != NULL ? (size_t)(comma - s) : strlen(s);
		if (addr_list_add(v, &list, s, len) < 0)
			return -1;
		more = comma != NULL;
		s += len + more;
	}
	*field = list;
	return 0;
}

static void free_keysrc_list(void *field, void *field2)
{
	size_t *n = field;
	struct rl_keysrc *src = field2;

	for (size_t i = 0; i < *n; i++)
		conf_keysrc_free(&src[i]);
	*n = 0;
}

/* Parse the source s[0..len) (untrimmed) into *out, with the source in the reason. */
static int keysrc_list_item(struct conf_val *v, const char *s, size_t len, struct rl_keysrc *out)
{
	char inner[CONF_WHY_MAX / 2];
	char *item = conf_dup_trimmed(s, len);
	int rc = 0;

	if (item == NULL)
		return WHY(v, "out of memory");
	if (conf_parse_keysrc(item, out, inner, sizeof(inner)) < 0)
		rc = WHY(v, "'%s': %s", item, inner);
	free(item);
	return rc;
}

/*
 * An ordered list of sources. A comma separates two sources only when a known prefix
 * follows it (see conf_keysrc_end), so a regex may contain commas. The field changes only
 * on success.
 */
static int parse_keysrc_list(struct conf_val *v)
{
	struct rl_keysrc list[CONF_MAX_KEYSRC];
	size_t n = 0;
	int rc = 0;

	for (const char *s = conf_skip_space(v->text); rc == 0 && *s != '\0';) {
		const char *end = conf_keysrc_end(s, ',');
		if (n == CONF_MAX_KEYSRC)
			rc = WHY(v, "too many key sources (at most %d)", CONF_MAX_KEYSRC);
		else if (keysrc_list_item(v, s, (size_t)(end - s), &list[n]) == 0)
			n++;
		else
			rc = -1;
		s = *end != '\0' ? conf_skip_space(end + 1) : end;
	}
	if (rc < 0) {
		free_keysrc_list(&n, list);
		return -1;
	}
	free_keysrc_list(v->field, v->field2);
	memcpy(v->field2, list, n * sizeof(list[0]));
	*(size_t *)v->field = n;
	return 0;
}

/* "200-399" or "200"; both ends within min..max, lo <= hi. */
static int parse_status_range(struct conf_val *v)
{
	unsigned *lo_field = v->field, *hi_field = v->field2;
	const char *end = v->text;
	uint64_t lo = 0, hi;
	bool ok = conf_parse_digits(v->text, &lo, &end) == CONF_NUM_OK;

	hi = lo;
	if (ok && *end == '-')
		ok = conf_parse_digits(end + 1, &hi, &end) == CONF_NUM_OK;
	if (!ok || *end != '\0' || lo < v->row->min || hi > v->row->max || lo > hi)
		return WHY(v, "invalid value '%s' (expected a status or LO-HI within %llu..%llu)",
		           v->text, (unsigned long long)v->row->min,
		           (unsigned long long)v->row->max);
	*lo_field = (unsigned)lo;
	*hi_field = (unsigned)hi;
	return 0;
}

static void free_string(void *field, void *field2)
{
	char **s = field;

	free(*s);
	*s = NULL;
}

static const struct conf_type_ops {
	int (*parse)(struct conf_val *v);        /* text → field(s); 0, or -1 with v->why */
	void (*free)(void *field, void *field2); /* releases what parse stored, or NULL */
	size_t size;                             /* bytes at off, compared for restarts */
} conf_types[] = {
        [CONF_BOOL] = {parse_bool, NULL, sizeof(bool)},
        [CONF_UINT] = {parse_uint, NULL, sizeof(unsigned)},
        [CONF_UINT_AUTO] = {parse_uint_auto, NULL, sizeof(unsigned)},
        [CONF_U64] = {parse_u64, NULL, sizeof(uint64_t)},
        [CONF_DURATION] = {parse_u64, NULL, sizeof(uint64_t)},
        [CONF_SIZE] = {parse_size, NULL, sizeof(size_t)},
        [CONF_FACTOR] = {parse_factor, NULL, sizeof(double)},
        [CONF_STRING] = {parse_string, free_string, sizeof(char *)},
        [CONF_OPT_STRING] = {parse_string, free_string, sizeof(char *)},
        [CONF_ENUM] = {parse_enum, NULL, sizeof(int)},
        [CONF_ADDR] = {parse_addr_one, NULL, sizeof(struct rl_addr)},
        [CONF_ADDR_LIST] = {parse_addr_list, NULL, sizeof(struct rl_addr_list)},
        [CONF_KEYSRC_LIST] = {parse_keysrc_list, free_keysrc_list, sizeof(size_t)},
        [CONF_STATUS_RANGE] = {parse_status_range, NULL, sizeof(unsigned)},
};

/* ---- parse state ---- */

/* Where lines come from: a FILE or an in-memory text. */
struct conf_source {
	FILE *file;       /* borrowed, or NULL */
	const char *text; /* cursor into the text when file is NULL */
	int err;          /* errno of a read error, 0 if none */
};

enum conf_sect_kind {
	SECT_NONE = 0, /* before the first header */
	SECT_IGNORED,  /* after a bad header: its keys were not checked */
	SECT_GLOBAL,   /* one of conf_sections */
	SECT_BACKEND,  /* [backend NAME] */
};

struct conf_parse {
	struct rl_conf *conf; /* owned until returned */
	const char *file;     /* name used in messages; borrowed */
	struct conf_errors errs;
	bool failed; /* an error was found (even if its message was lost) */

	/* reader */
	struct conf_source *src;
	unsigned line;                 /* current physical line, 1-based */
	size_t len;                    /* its length, bytes, without "\r\n" */
	bool nul;                      /* it contains a NUL byte */
	bool key_pending;              /* handed to inih, not seen by on_key yet */
	char buf[CONF_LINE_MAX + 2];   /* the line (a longer one is cut, then rejected) */
	char value[CONF_LINE_MAX + 1]; /* the current value without its quotes */

	/* the section being read */
	enum conf_sect_kind kind;
	const char *sect;              /* row section: "proxy" ... or "backend" */
	size_t backend;                /* index in conf->backends when SECT_BACKEND */
	char label[CONF_LINE_MAX + 1]; /* as shown in messages: "proxy", "backend bot-1" */

	bool backend_header;                /* a [backend ...] header was seen, even a bad one */
	unsigned sect_line[CONF_NSECTIONS]; /* header line of each fixed section, 0 = none */
	unsigned seen[CONF_NROWS];          /* line that set each global key, 0 = default */
	unsigned (*bseen)[CONF_NROWS];      /* the same per backend; owned */
	size_t bcap;                        /* allocated backends and bseen entries */
};

/*
 * "FILE[:LINE]: [LABEL] KEY: reason", or "[LABEL]: reason" without a key, or just
 * "FILE[:LINE]: reason". Line 0 means the problem has no line. NULL when out of memory.
 */
static char *FORMAT(5, 0) format_msg(const char *file, unsigned line, const char *label,
                                     const char *key, const char *fmt, va_list ap)
{
	char *msg = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&msg, &len);

	if (m == NULL)
		return NULL;
	fputs(file, m);
	if (line > 0)
		fprintf(m, ":%u", line);
	fputs(": ", m);
	if (label != NULL)
		fprintf(m, "[%s]%s", label, key != NULL ? " " : ": ");
	if (key != NULL)
		fprintf(m, "%s: ", key);
	vfprintf(m, fmt, ap);
	if (fclose(m) != 0) {
		free(msg);
		return NULL;
	}
	return msg;
}

static void FORMAT(5, 0) conf_verr(struct conf_parse *p, unsigned line, const char *label,
                                   const char *key, const char *fmt, va_list ap)
{
	char *msg = format_msg(p->file, line, label, key, fmt, ap);

	p->failed = true;
	if (msg != NULL)
		errors_push(&p->errs, msg);
}

static void FORMAT(5, 6) conf_err(struct conf_parse *p, unsigned line, const char *label,
                                  const char *key, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conf_verr(p, line, label, key, fmt, ap);
	va_end(ap);
}

static bool row_is_backend(const struct conf_row *row)
{
	return strcmp(row->section, CONF_BACKEND) == 0;
}

static const struct conf_row *row_find(const char *section, const char *key)
{
	for (size_t i = 0; i < CONF_NROWS; i++)
		if (strcmp(conf_rows[i].section, section) == 0 &&
		    strcmp(conf_rows[i].key, key) == 0)
			return &conf_rows[i];
	return NULL;
}

/* Parse text into the row's field of base; a failure is reported at line under label. */
static void row_apply(struct conf_parse *p, const struct conf_row *row, const char *text,
                      void *base, unsigned line, const char *label)
{
	struct conf_val v = {.row = row,
	                     .text = text,
	                     .field = (char *)base + row->off,
	                     .field2 = (char *)base + row->off2};

	if (conf_types[row->type].parse(&v) < 0)
		conf_err(p, line, label, row->key, "%s", v.why);
}

/* Apply every default of the global rows (backend = false) or the backend rows. */
static void rows_default(struct conf_parse *p, bool backend, void *base, const char *label)
{
	for (size_t i = 0; i < CONF_NROWS; i++) {
		const struct conf_row *row = &conf_rows[i];
		if (row_is_backend(row) == backend && row->def != NULL)
			row_apply(p, row, row->def, base, 0, backend ? label : row->section);
	}
}

static void rows_free(void *base, bool backend)
{
	for (size_t i = 0; i < CONF_NROWS; i++) {
		const struct conf_row *row = &conf_rows[i];
		if (row_is_backend(row) == backend && conf_types[row->type].free != NULL)
			conf_types[row->type].free((char *)base + row->off,
			                           (char *)base + row->off2);
	}
}

/* ---- sections ---- */

static int section_index(const char *name)
{
	return name_index(conf_sections, name);
}

/* NULL if name is a valid backend name, else why not. */
static const char *backend_name_why(const char *name)
{
	size_t len = strlen(name);

	if (len == 0)
		return "missing backend name ([backend NAME])";
	if (len >= CONF_NAME_MAX || strspn(name, CONF_NAME_CHARS) != len)
		return "invalid backend name (1..63 of A-Z a-z 0-9 . _ -)";
	return NULL;
}

static int backends_grow(struct conf_parse *p)
{
	struct rl_conf *c = p->conf;
	size_t cap = p->bcap != 0 ? p->bcap * 2 : 8;
	struct rl_backend_conf *b = realloc(c->backends, cap * sizeof(*b));

	if (b == NULL)
		return -1;
	c->backends = b;
	unsigned(*seen)[CONF_NROWS] = realloc(p->bseen, cap * sizeof(*seen));
	if (seen == NULL)
		return -1;
	p->bseen = seen;
	p->bcap = cap;
	return 0;
}

/* Append a backend with its defaults; -1 when out of memory (reported). */
static int backend_add(struct conf_parse *p, const char *name)
{
	struct rl_conf *c = p->conf;
	struct rl_backend_conf *b;

	if (c->nbackends == p->bcap && backends_grow(p) < 0) {
		conf_err(p, p->line, p->label, NULL, "out of memory");
		return -1;
	}
	b = &c->backends[c->nbackends];
	memset(b, 0, sizeof(*b));
	memset(p->bseen[c->nbackends], 0, sizeof(p->bseen[0]));
	snprintf(b->name, sizeof(b->name), "%s", name);
	b->line = p->line;
	c->nbackends++;
	rows_default(p, true, b, p->label);
	return 0;
}

static void backend_begin(struct conf_parse *p, const char *name)
{
	const char *bad = backend_name_why(name);
	const struct rl_backend_conf *dup;

	p->backend_header = true;
	snprintf(p->label, sizeof(p->label), "%s%s%s", CONF_BACKEND, *name ? " " : "", name);
	if (bad != NULL) {
		conf_err(p, p->line, p->label, NULL, "%s", bad);
		return;
	}
	dup = conf_backend(p->conf, name);
	if (dup != NULL) {
		conf_err(p, p->line, p->label, NULL, "duplicate backend name (first at line %u)",
		         dup->line);
		return;
	}
	if (p->conf->nbackends == CONF_MAX_BACKENDS) {
		conf_err(p, p->line, p->label, NULL, "too many backends (at most %d)",
		         CONF_MAX_BACKENDS);
		return;
	}
	if (backend_add(p, name) < 0)
		return;
	p->kind = SECT_BACKEND;
	p->sect = CONF_BACKEND;
	p->backend = p->conf->nbackends - 1;
}

static void global_begin(struct conf_parse *p, const char *name)
{
	int i = section_index(name);

	snprintf(p->label, sizeof(p->label), "%s", name);
	if (i < 0) {
		conf_err(p, p->line, p->label, NULL, "unknown section");
		return;
	}
	if (p->sect_line[i] != 0) {
		conf_err(p, p->line, p->label, NULL, "duplicate section (first at line %u)",
		         p->sect_line[i]);
		return;
	}
	p->sect_line[i] = p->line;
	p->kind = SECT_GLOBAL;
	p->sect = conf_sections[i];
}

/* A "[...]" line (s starts at '['). Keys after a bad header are ignored. */
static void section_begin(struct conf_parse *p, char *s)
{
	char *close = strchr(s, ']');
	const char *rest = close != NULL ? conf_skip_space(close + 1) : NULL;
	size_t kw = strlen(CONF_BACKEND);

	p->kind = SECT_IGNORED;
	if (rest == NULL || (*rest != '\0' && *rest != ';' && *rest != '#')) {
		conf_err(p, p->line, NULL, NULL, "malformed section header (expected [name])");
		return;
	}
	while (close > s + 1 && isspace((unsigned char)close[-1]))
		close--;
	*close = '\0';
	s++;
	while (isspace((unsigned char)*s))
		s++;
	if (strncmp(s, CONF_BACKEND, kw) == 0 && (s[kw] == '\0' || isspace((unsigned char)s[kw])))
		backend_begin(p, conf_skip_space(s + kw));
	else
		global_begin(p, s);
}

/* ---- keys (inih handler) ---- */

/* The value without one pair of surrounding double quotes: `""` is the empty string. */
static const char *unquote(struct conf_parse *p, const char *value)
{
	size_t n = strlen(value);

	if (n < 2 || value[0] != '"' || value[n - 1] != '"' || n - 2 >= sizeof(p->value))
		return value;
	memcpy(p->value, value + 1, n - 2);
	p->value[n - 2] = '\0';
	return p->value;
}

static unsigned *seen_slot(struct conf_parse *p, const struct conf_row *row)
{
	size_t i = (size_t)(row - conf_rows);

	return p->kind == SECT_BACKEND ? &p->bseen[p->backend][i] : &p->seen[i];
}

static void *section_base(struct conf_parse *p)
{
	return p->kind == SECT_BACKEND ? (void *)&p->conf->backends[p->backend] : (void *)p->conf;
}

static void key_set(struct conf_parse *p, const char *name, const char *value)
{
	const struct conf_row *row;
	unsigned *seen;

	if (*name == '\0') {
		conf_err(p, p->line, NULL, NULL, "missing key name before '='");
		return;
	}
	if (p->kind == SECT_NONE) {
		conf_err(p, p->line, NULL, name, "key before any [section]");
		return;
	}
	if (p->kind == SECT_IGNORED)
		return;
	row = row_find(p->sect, name);
	if (row == NULL) {
		conf_err(p, p->line, p->label, name, "unknown key");
		return;
	}
	seen = seen_slot(p, row);
	if (*seen != 0) {
		conf_err(p, p->line, p->label, name, "duplicate key (first at line %u)", *seen);
		return;
	}
	*seen = p->line;
	row_apply(p, row, unquote(p, value), section_base(p), p->line, p->label);
}

/*
 * inih handler. The section inih passes is ignored: the reader tracks sections itself.
 * Always returns 1 (go on): errors are collected here, not through inih's return value.
 */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct conf_parse *p = user;

	p->key_pending = false;
	key_set(p, name, value);
	return 1;
}

/* ---- the reader in front of inih ---- */

static int src_getc(struct conf_source *s)
{
	int ch;

	if (s->file == NULL)
		return *s->text != '\0' ? (unsigned char)*s->text++ : EOF;
	ch = getc(s->file);
	if (ch == EOF && ferror(s->file))
		s->err = errno;
	return ch;
}

/* Read one physical line into p->buf, without "\n" or "\r\n". False at end of input. */
static bool line_read(struct conf_parse *p)
{
	const size_t cap = sizeof(p->buf) - 1;
	size_t n = 0;
	int ch;

	p->nul = false;
	while ((ch = src_getc(p->src)) != EOF && ch != '\n') {
		p->nul |= ch == '\0';
		if (n < cap)
			p->buf[n] = (char)ch;
		n++;
	}
	if (ch == EOF && n == 0)
		return false;
	if (n > 0 && n <= cap && p->buf[n - 1] == '\r')
		n--;
	p->buf[n < cap ? n : cap] = '\0';
	p->len = n;
	p->line++;
	return true;
}

/*
 * Classify the line just read: comments, blanks and headers are handled here; a key
 * line is returned for inih (without leading blanks, so it is never a continuation).
 * Key lines must fit key_limit (inih's buffer), other lines CONF_LINE_MAX.
 */
static const char *line_take(struct conf_parse *p, size_t key_limit)
{
	size_t bom = strlen(CONF_UTF8_BOM);

	if (p->line != 1 || strncmp(p->buf, CONF_UTF8_BOM, bom) != 0)
		bom = 0;
	char *s = p->buf + (conf_skip_space(p->buf + bom) - p->buf);

	if (p->nul || p->len > CONF_LINE_MAX) {
		if (p->nul)
			conf_err(p, p->line, NULL, NULL, "NUL byte in line");
		else
			conf_err(p, p->line, NULL, NULL, "line too long (more than %d bytes)",
			         CONF_LINE_MAX);
		if (*s == '[')
			p->kind =
			        SECT_IGNORED; /* keys after an unreadable header are not checked */
		return NULL;
	}
	if (*s == '\0' || *s == ';' || *s == '#')
		return NULL;
	if (*s == '[') {
		section_begin(p, s);
		return NULL;
	}
	if (p->len > key_limit) {
		conf_err(p, p->line, NULL, NULL, "line too long (more than %zu bytes)", key_limit);
		return NULL;
	}
	return s;
}

/* A key line inih did not pass to on_key had no '=' or ':'. */
static void key_line_done(struct conf_parse *p)
{
	if (p->key_pending)
		conf_err(p, p->line, NULL, NULL, "expected key = value");
	p->key_pending = false;
}

/*
 * ini_reader: hand inih the next key line. num is inih's buffer size; a key line must fit
 * it whole (inih 55 would split a longer one into two lines).
 */
static char *conf_reader(char *str, int num, void *stream)
{
	struct conf_parse *p = stream;
	size_t limit = num > CONF_INIH_SLACK ? (size_t)num - CONF_INIH_SLACK : 0;

	if (limit > CONF_LINE_MAX)
		limit = CONF_LINE_MAX;
	key_line_done(p);
	while (line_read(p)) {
		const char *kv = line_take(p, limit);
		if (kv != NULL) {
			memcpy(str, kv, strlen(kv) + 1);
			p->key_pending = true;
			return str;
		}
	}
	return NULL;
}

/* ---- cross-key validation ---- */

/* Line that set a global key, 0 when it kept its default. */
static unsigned key_line(const struct conf_parse *p, const char *section, const char *key)
{
	const struct conf_row *row = row_find(section, key);

	return row != NULL ? p->seen[row - conf_rows] : 0;
}

static void FORMAT(4, 5)
        key_err(struct conf_parse *p, const char *section, const char *key, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conf_verr(p, key_line(p, section, key), section, key, fmt, ap);
	va_end(ap);
}

/* Required backend keys (rows without a default) must be set. */
static void check_backend_required(struct conf_parse *p, size_t i)
{
	const struct rl_backend_conf *b = &p->conf->backends[i];
	char label[CONF_NAME_MAX + sizeof(CONF_BACKEND)];

	snprintf(label, sizeof(label), "%s %s", CONF_BACKEND, b->name);
	for (size_t r = 0; r < CONF_NROWS; r++)
		if (row_is_backend(&conf_rows[r]) && conf_rows[r].def == NULL &&
		    p->bseen[i][r] == 0)
			conf_err(p, b->line, label, NULL, "missing %s", conf_rows[r].key);
}

static void check_backend_address(struct conf_parse *p, size_t i)
{
	const struct rl_backend_conf *b = p->conf->backends;
	size_t row = (size_t)(row_find(CONF_BACKEND, "address") - conf_rows);
	char label[CONF_NAME_MAX + sizeof(CONF_BACKEND)];

	if (b[i].address.text[0] == '\0')
		return;
	snprintf(label, sizeof(label), "%s %s", CONF_BACKEND, b[i].name);
	for (size_t j = 0; j < i; j++)
		if (strcmp(b[i].address.text, b[j].address.text) == 0) {
			conf_err(p, p->bseen[i][row], label, "address",
			         "duplicate backend address %s (also backend %s)",
			         b[i].address.text, b[j].name);
			return;
		}
}

static void check_backends(struct conf_parse *p)
{
	if (!p->backend_header)
		conf_err(p, 0, NULL, NULL, "no backend configured (add a [backend NAME] section)");
	for (size_t i = 0; i < p->conf->nbackends; i++) {
		check_backend_required(p, i);
		check_backend_address(p, i);
	}
}

static const struct rl_addr_list *listen_list(const struct rl_conf *c, const struct conf_row *row)
{
	if (row->type != CONF_ADDR_LIST || row_is_backend(row))
		return NULL;
	return (const void *)((const char *)c + row->off);
}

/* Report each address of row b's list that row a's list has too. */
static void check_lists_disjoint(struct conf_parse *p, const struct conf_row *a,
                                 const struct conf_row *b)
{
	const struct rl_addr_list *la = listen_list(p->conf, a), *lb = listen_list(p->conf, b);

	for (size_t j = 0; j < lb->n; j++)
		for (size_t i = 0; i < la->n; i++)
			if (strcmp(la->addr[i].text, lb->addr[j].text) == 0)
				key_err(p, b->section, b->key, "%s is also in [%s] %s",
				        lb->addr[j].text, a->section, a->key);
}

/* An address may appear in only one of the listener lists. */
static void check_listener_overlap(struct conf_parse *p)
{
	for (size_t a = 0; a < CONF_NROWS; a++)
		for (size_t b = a + 1; b < CONF_NROWS; b++)
			if (listen_list(p->conf, &conf_rows[a]) != NULL &&
			    listen_list(p->conf, &conf_rows[b]) != NULL)
				check_lists_disjoint(p, &conf_rows[a], &conf_rows[b]);
}

static void check_listeners(struct conf_parse *p)
{
	const struct rl_conf *c = p->conf;

	if (c->listen.n == 0 && c->tls_listen.n == 0)
		key_err(p, "proxy", "listen",
		        "no listener ([proxy] listen and [tls] listen are both empty)");
	if (c->tls_listen.n > 0 && (c->tls_cert == NULL || c->tls_key == NULL))
		key_err(p, "tls", "listen", "a TLS listener needs cert and key");
	check_listener_overlap(p);
}

static void check_health(struct conf_parse *p)
{
	const struct rl_conf *c = p->conf;
	char t[32], i[32];

	if (c->health_timeout_ms <= c->health_interval_ms)
		return;
	key_err(p, "health", key_line(p, "health", "timeout") != 0 ? "timeout" : "interval",
	        "timeout %s is longer than interval %s",
	        format_units(c->health_timeout_ms, duration_units, t, sizeof(t)),
	        format_units(c->health_interval_ms, duration_units, i, sizeof(i)));
}

static void check_admin(struct conf_parse *p)
{
	const struct rl_conf *c = p->conf;

	if (c->admin_token != NULL && c->admin_token[0] != '\0')
		return;
	for (size_t i = 0; i < c->admin_listen.n; i++)
		if (!addr_is_loopback(&c->admin_listen.addr[i])) {
			key_err(p, "admin", "listen",
			        "refusing non-loopback admin listener without token (%s)",
			        c->admin_listen.addr[i].text);
			return;
		}
}

static void validate(struct conf_parse *p)
{
	check_backends(p);
	check_listeners(p);
	check_health(p);
	check_admin(p);
}

/* ---- loading ---- */

static struct conf_parse *parse_new(struct conf_source *src, const char *name)
{
	struct conf_parse *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->conf = calloc(1, sizeof(*p->conf));
	if (p->conf == NULL || (p->conf->path = strdup(name)) == NULL) {
		free(p->conf);
		free(p);
		return NULL;
	}
	p->file = p->conf->path;
	p->src = src;
	rows_default(p, false, p->conf, NULL);
	return p;
}

/* Append every message of from to to (NULL: drop them); from is left empty. */
static void errors_move(struct conf_errors *from, struct conf_errors *to)
{
	for (size_t i = 0; i < from->n; i++)
		if (to == NULL || errors_push(to, from->msg[i]) < 0)
			free(from->msg[i]);
	free(from->msg);
	from->msg = NULL;
	from->n = 0;
}

/* Hand over the messages; return the conf, or NULL (freed) if anything was wrong. */
static struct rl_conf *parse_finish(struct conf_parse *p, struct conf_errors *errs)
{
	struct rl_conf *c = p->conf;

	errors_move(&p->errs, errs);
	if (p->failed) {
		conf_free(c);
		c = NULL;
	}
	free(p->bseen);
	free(p);
	return c;
}

/* A whole-file problem found before parsing could start: "NAME: reason". */
static void FORMAT(3, 4)
        errors_addf(struct conf_errors *errs, const char *name, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (errs == NULL)
		return;
	va_start(ap, fmt);
	msg = format_msg(name, 0, NULL, NULL, fmt, ap);
	va_end(ap);
	if (msg != NULL)
		errors_push(errs, msg);
}

static struct rl_conf *conf_parse_source(struct conf_source *src, const char *name,
                                         struct conf_errors *errs)
{
	struct conf_parse *p = parse_new(src, name);
	int rc;

	if (p == NULL) {
		errors_addf(errs, name, "out of memory");
		return NULL;
	}
	rc = ini_parse_stream(conf_reader, p, on_key, p);
	key_line_done(p);
	if (src->err != 0)
		conf_err(p, 0, NULL, NULL, "cannot read (%s)", strerror(src->err));
	else if (rc != 0 && !p->failed)
		conf_err(p, 0, NULL, NULL, "parse error (inih %d)", rc); /* not expected */
	else
		validate(p);
	return parse_finish(p, errs);
}

struct rl_conf *conf_load(const char *path, struct conf_errors *errs)
{
	struct conf_source src = {0};
	struct rl_conf *c;

	src.file = fopen(path, "r");
	if (src.file == NULL) {
		errors_addf(errs, path, "cannot open (%s)", strerror(errno));
		return NULL;
	}
	c = conf_parse_source(&src, path, errs);
	fclose(src.file);
	return c;
}

struct rl_conf *conf_load_string(const char *text, const char *name, struct conf_errors *errs)
{
	struct conf_source src = {.text = text != NULL ? text : ""};

	return conf_parse_source(&src, name != NULL ? name : "<string>", errs);
}

void conf_free(struct rl_conf *c)
{
	if (c == NULL)
		return;
	rows_free(c, false);
	for (size_t i = 0; i < c->nbackends; i++)
		rows_free(&c->backends[i], true);
	free(c->backends);
	free(c->path);
	free(c);
}

const struct rl_backend_conf *conf_backend(const struct rl_conf *c, const char *name)
{
	for (size_t i = 0; i < c->nbackends; i++)
		if (strcmp(c->backends[i].name, name) == 0)
			return &c->backends[i];
	return NULL;
}

/*
 * Strings compare by text, everything else by the bytes at off (for a key list that is
 * only its count): restart-only rows are plain values, so this is exact for them.
 */
static bool row_equal(const struct conf_row *row, const void *a, const void *b)
{
	const char *fa = (const char *)a + row->off, *fb = (const char *)b + row->off;

	if (row->type == CONF_STRING || row->type == CONF_OPT_STRING) {
		const char *sa, *sb;
		memcpy(&sa, fa, sizeof(sa));
		memcpy(&sb, fb, sizeof(sb));
		return sa == sb || (sa != NULL && sb != NULL && strcmp(sa, sb) == 0);
	}
	return memcmp(fa, fb, conf_types[row->type].size) == 0;
}

int conf_restart_needed(const struct rl_conf *old, const struct rl_conf *cur, char *what,
                        size_t len)
{
	for (size_t i = 0; i < CONF_NROWS; i++) {
		const struct conf_row *row = &conf_rows[i];
		if (row->reload || row_is_backend(row) || row_equal(row, old, cur))
			continue;
		if (what != NULL && len > 0)
			snprintf(what, len, "[%s] %s", row->section, row->key);
		return 1;
	}
	return 0;
}

int conf_key_info(size_t i, struct conf_key_info *out)
{
	if (i >= CONF_NROWS)
		return -1;
	out->section = conf_rows[i].section;
	out->key = conf_rows[i].key;
	out->def = conf_rows[i].def;
	out->reload = conf_rows[i].reload;
	return 0;
}

/* ---- string tables ---- */

static const char *enum_name(const char *const *names, int v)
{
	if (v < 0 || (size_t)v >= names_count(names))
		return "unknown";
	return names[v];
}

const char *conf_log_level_name(enum rl_log_level v)
{
	return enum_name(log_level_names, (int)v);
}

const char *conf_missing_key_name(enum rl_missing_key v)
{
	return enum_name(missing_key_names, (int)v);
}

const char *conf_hash_name(enum rl_hash v)
{
	return enum_name(hash_names, (int)v);
}

const char *conf_backend_state_name(enum rl_backend_state v)
{
	return enum_name(backend_state_names, (int)v);
}

const char *conf_tls_version_name(enum rl_tls_version v)
{
	return enum_name(tls_version_names, (int)v);
}
