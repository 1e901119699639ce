/*
 * conf — the ini configuration: parse → validate → build one typed struct rl_conf.
 *
 * One table row per key (section, key, type, range, default, field offset) drives
 * parsing, defaults, validation and the documented sample file. Every error is reported
 * as "file:line: [section] key: reason"; all errors of a file are collected in one run.
 * Loading never exits the process and never touches running state: a reload builds a new
 * struct and the caller swaps it in only when conf_load succeeded.
 *
 * Only conf.c includes inih.
 */
#ifndef RL_CONF_H
#define RL_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <regex.h>
#include <sys/socket.h>

/* A line holding a key must also fit inih's own buffer: 197 bytes with inih 55. */
#define CONF_LINE_MAX     4096 /* longest accepted config line, bytes */
#define CONF_MAX_LISTEN   16   /* listeners per list */
#define CONF_MAX_KEYSRC   16   /* key sources in [routing] key */
#define CONF_MAX_BACKENDS 4096
#define CONF_NAME_MAX     64 /* backend name, bytes */
#define CONF_ADDR_TEXT    64 /* "host:port" / "[v6]:port" text form */

/* A numeric socket address parsed from "host:port", "[v6]:port" or "*:port". */
struct rl_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[CONF_ADDR_TEXT]; /* as written in the config, normalised */
};

struct rl_addr_list {
	size_t n;
	struct rl_addr addr[CONF_MAX_LISTEN];
};

enum rl_log_level { RL_LOG_ERROR = 0, RL_LOG_WARN, RL_LOG_INFO, RL_LOG_DEBUG };
enum rl_missing_key {
	RL_MISSING_LEAST_LOADED = 0,
	RL_MISSING_REJECT,
	RL_MISSING_RANDOM,
	RL_MISSING_CLIENT_IP
};
enum rl_hash { RL_HASH_MAGLEV = 0, RL_HASH_RENDEZVOUS, RL_HASH_RING };
enum rl_backend_state { RL_BACKEND_UP = 0, RL_BACKEND_DRAINING };
enum rl_tls_version { RL_TLS_1_0 = 0, RL_TLS_1_1, RL_TLS_1_2, RL_TLS_1_3 };

/* One location of a conversation key ([routing] key is an ordered list of these). */
enum rl_keysrc_type {
	RL_KEYSRC_HEADER = 0, /* header:NAME */
	RL_KEYSRC_QUERY,      /* query:NAME */
	RL_KEYSRC_COOKIE,     /* cookie:NAME */
	RL_KEYSRC_PATH_SEG,   /* path:N (1-based segment) */
	RL_KEYSRC_PATH_REGEX, /* path:REGEX (first capture group) */
	RL_KEYSRC_JSON,       /* json:a.b.0.c */
	RL_KEYSRC_FORM,       /* form:NAME */
	RL_KEYSRC_FORMJSON,   /* formjson:FIELD:a.b */
	RL_KEYSRC_SYM,        /* sym:LOC|LOC */
};

struct rl_keysrc {
	enum rl_keysrc_type type;
	char *arg;        /* owned: header/query/cookie/form name, json path, regex text, ... */
	char *arg2;       /* owned: formjson's json path, sym's second location; else NULL */
	unsigned segment; /* path:N */
	regex_t *re;      /* owned: compiled path:REGEX (REG_EXTENDED), else NULL */
};

struct rl_backend_conf {
	char name[CONF_NAME_MAX]; /* identity on the hash */
	struct rl_addr address;
	unsigned weight;             /* 1..256 */
	enum rl_backend_state state; /* initial admin state */
	bool tls;                    /* re-encrypt to the backend */
	char *ca;                    /* owned, CA file path or NULL */
	unsigned line;               /* line of the [backend NAME] header, for messages */
};

struct rl_conf {
	char *path; /* owned: the file this was loaded from */

	/* [proxy] */
	struct rl_addr_list listen;
	unsigned workers; /* 0 = auto (CPU count) */
	unsigned max_connections;
	uint64_t header_timeout_ms;
	uint64_t client_idle_timeout_ms;
	size_t max_header_size; /* bytes */
	size_t max_body_size;   /* bytes */
	enum rl_log_level log_level;
	char *access_log; /* owned: path, "-" (stderr) or "off" */

	/* [tls] */
	struct rl_addr_list tls_listen;
	char *tls_cert; /* owned or NULL */
	char *tls_key;  /* owned or NULL */
	char *tls_sni;  /* owned or NULL */
	enum rl_tls_version tls_min_version;

	/* [routing] */
	size_t nkeysrc;
	struct rl_keysrc keysrc[CONF_MAX_KEYSRC];
	char *preset; /* owned or NULL (validated name) */
	enum rl_missing_key missing_key;
	size_t max_key_body; /* bytes */
	char *key_header;    /* owned; "" = off */
	enum rl_hash hash;
	uint64_t hash_seed;
	double balance_factor; /* 0 = off, else >= 1.0 */
	uint64_t affinity_ttl_ms;
	uint64_t affinity_max;
	uint64_t drain_timeout_ms;

	/* [upstream] */
	uint64_t connect_timeout_ms;
	uint64_t response_timeout_ms;
	uint64_t tunnel_idle_timeout_ms;
	unsigned max_idle_per_backend;
	unsigned retries;

	/* [health] */
	char *health_path; /* owned; "" = active checks off */
	uint64_t health_interval_ms;
	uint64_t health_timeout_ms;
	unsigned health_rise;
	unsigned health_fall;
	unsigned health_expect_lo; /* status range, inclusive */
	unsigned health_expect_hi;
	unsigned passive_failures;

	/* [admin] */
	struct rl_addr_list admin_listen;
	char *admin_token; /* owned; "" = none */

	/* [backend NAME] sections, in file order */
	size_t nbackends;
	struct rl_backend_conf *backends; /* owned array of nbackends */
};

/* Collected error messages, each "file:line: [section] key: reason". */
struct conf_errors {
	size_t n;
	char **msg; /* owned strings */
};

void conf_errors_free(struct conf_errors *e);

/*
 * Load and validate path. Returns a new struct rl_conf, or NULL with every problem
 * appended to errs (errs may be NULL). Never exits, never logs.
 */
struct rl_conf *conf_load(const char *path, struct conf_errors *errs);

/* Same as conf_load on an in-memory text; name is used in messages (admin preview). */
struct rl_conf *conf_load_string(const char *text, const char *name, struct conf_errors *errs);

void conf_free(struct rl_conf *c);

/* Find a backend by name; NULL if absent. */
const struct rl_backend_conf *conf_backend(const struct rl_conf *c, const char *name);

/* Parse helpers, exported for tests and for other modules (admin, CLI). 0 / -1. */
int conf_parse_duration_ms(const char *s, uint64_t *out);
int conf_parse_size(const char *s, uint64_t *out);
int conf_parse_addr(const char *s, struct rl_addr *out);

/*
 * Parse one key source ("header:X-Id", "path:2", "path:^/c/([^/]+)", "sym:LOC|LOC", ...)
 * into out (owned strings and regex; release with conf_keysrc_free). Returns 0, or -1
 * with a reason in why (may be NULL). keyx can use it for the two locations of a sym.
 */
int conf_parse_keysrc(const char *text, struct rl_keysrc *out, char *why, size_t whylen);
void conf_keysrc_free(struct rl_keysrc *s);

/* One row of the key table, for documentation and tests. */
struct conf_key_info {
	const char *section; /* "proxy" ... "admin", or "backend" for [backend NAME] keys */
	const char *key;
	const char *def; /* default text, as it would be written in the file; NULL = required */
	bool reload;     /* false: a change needs a restart */
};

/* Row i of the key table (in the documented order): 0, or -1 past the last row. */
int conf_key_info(size_t i, struct conf_key_info *out);

/*
 * 1 if a key that a reload cannot change (e.g. [proxy] workers) differs between old and
 * cur, with "[section] key" written to what (may be NULL); else 0.
 */
int conf_restart_needed(const struct rl_conf *old, const struct rl_conf *cur, char *what,
                        size_t len);

/* String tables, tested for round trips. */
const char *conf_log_level_name(enum rl_log_level v);
const char *conf_missing_key_name(enum rl_missing_key v);
const char *conf_hash_name(enum rl_hash v);
const char *conf_backend_state_name(enum rl_backend_state v);
const char *conf_tls_version_name(enum rl_tls_version v);

#endif
