/*
 * admin — routes, authentication and JSON answers of the control API (see admin.h).
 *
 *   evhttp ──gencb──► dispatch: route by path ──► 404 | 405 | 401 ──► handler
 *                                                            │
 *              stats_collect / router / conf_load_string ◄───┘──► JSON into a memstream
 *
 * Handlers run on the control loop and read the snapshot the daemon hands out through
 * ops->source; nothing here is shared with the data path except the atomics of struct
 * backend_rt (admin drain flag) and the pin table.
 */
#define _GNU_SOURCE

#include "admin.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "affinity.h"
#include "log.h"
#include "placement.h"
#include "router.h"
#include "util.h"

#define ADMIN_JSON       "application/json"
#define ADMIN_PROMETHEUS "text/plain; version=0.0.4; charset=utf-8"
#define ADMIN_BEARER     "Bearer "

struct admin {
	struct event_base *base;     /* borrowed */
	struct evhttp *http;         /* owned; NULL when nothing is configured */
	const struct admin_ops *ops; /* borrowed */
	void *arg;                   /* borrowed */
	struct util_rng rng;         /* for router_select (keyed lookups do not use it) */
};

/* A response body being written: a memstream the handler prints into. */
struct body {
	FILE *f;
	char *p;
	size_t len;
};

enum route_method { ROUTE_GET = 0, ROUTE_POST };

typedef void (*route_cb)(struct admin *a, struct evhttp_request *req, const char *rest);

struct route {
	const char *path;   /* the exact path, or the prefix when suffix is set */
	const char *suffix; /* NULL: exact; else what the path must end with ("" = anything) */
	enum route_method method;
	route_cb handle;
};

/* ---- responses ---- */

static int body_open(struct body *b)
{
	b->p = NULL;
	b->len = 0;
	b->f = open_memstream(&b->p, &b->len);
	return b->f != NULL ? 0 : -1;
}

static void send_raw(struct evhttp_request *req, int code, const char *ctype, const char *p,
                     size_t len)
{
	struct evbuffer *buf = evbuffer_new();
	struct evkeyvalq *hd = evhttp_request_get_output_headers(req);

	evhttp_add_header(hd, "Content-Type", ctype);
	evhttp_add_header(hd, "Cache-Control", "no-store");
	if (buf != NULL && len > 0)
		evbuffer_add(buf, p, len);
	evhttp_send_reply(req, code, NULL, buf);
	if (buf != NULL)
		evbuffer_free(buf);
}

static void send_error(struct evhttp_request *req, int code, const char *msg)
{
	struct body b;

	if (body_open(&b) != 0) {
		send_raw(req, 500, ADMIN_JSON, "", 0);
		return;
	}
	fputs("{\"error\":", b.f);
	stats_json_string(b.f, msg, strlen(msg));
	fputs("}\n", b.f);
	fclose(b.f);
	send_raw(req, code, ADMIN_JSON, b.p, b.len);
	free(b.p);
}

/* Close b and send it, or a 500 if writing it ran out of memory. */
static void send_body(struct evhttp_request *req, int code, const char *ctype, struct body *b)
{
	int bad = ferror(b->f);

	if (fclose(b->f) != 0 || bad)
		send_error(req, 500, "out of memory");
	else
		send_raw(req, code, ctype, b->p, b->len);
	free(b->p);
}

/* ---- snapshot access ---- */

static struct rl_pool *current_pool(struct admin *a, struct stats_source *src)
{
	a->ops->source(a->arg, src);
	return src->pool;
}

/* Collect and render with one of the stats writers. */
static void send_stats(struct admin *a, struct evhttp_request *req, const char *ctype,
                       void (*write)(FILE *, const struct stats_snapshot *))
{
	struct stats_source src;
	struct stats_snapshot snap;
	struct body b;

	a->ops->source(a->arg, &src);
	if (stats_collect(&src, &snap) != 0 || body_open(&b) != 0) {
		stats_snapshot_free(&snap);
		send_error(req, 500, "out of memory");
		return;
	}
	write(b.f, &snap);
	stats_snapshot_free(&snap);
	send_body(req, 200, ctype, &b);
}

static void handle_backends(struct admin *a, struct evhttp_request *req, const char *rest)
{
	send_stats(a, req, ADMIN_JSON, stats_write_backends_json);
}

static void handle_stats(struct admin *a, struct evhttp_request *req, const char *rest)
{
	send_stats(a, req, ADMIN_JSON, stats_write_json);
}

static void handle_metrics(struct admin *a, struct evhttp_request *req, const char *rest)
{
	send_stats(a, req, ADMIN_PROMETHEUS, stats_write_prometheus);
}

/* ---- GET /conversations/KEY ---- */

struct key_place {
	int backend;        /* index in the pool, or -1 */
	int pinned_to;      /* index of the pinned backend, or -1 */
	const char *reason; /* pinned | hashed | repinned | none */
};

/* The pinned backend of key, or -1. A pin to a backend that left the pool counts as none.
 * Peeking leaves the pin's idle time and LRU place as they were: observing is not use. */
static int pinned_backend(const struct rl_pool *p, const char *key, size_t len, uint64_t now_ms)
{
	uint32_t id;

	if (!affinity_peek(pool_affinity(p), router_pin_key(p, key, len), now_ms, &id, NULL))
		return -1;
	return pool_index_of(p, id);
}

/* Where the next request with key would go, without pinning it. -1 on no memory. */
static int place_key(struct admin *a, const struct rl_pool *p, const char *key, size_t len,
                     uint64_t now_ms, struct key_place *out)
{
	struct router_request rr = {.has_key = true, .key_hash = router_key_hash(p, key, len)};
	bool *scratch = calloc(p->n > 0 ? p->n : 1, sizeof(*scratch));
	struct router_choice c;

	if (scratch == NULL)
		return -1;
	out->pinned_to = pinned_backend(p, key, len, now_ms);
	if (out->pinned_to >= 0 && pool_pin_usable(p, (size_t)out->pinned_to)) {
		out->backend = out->pinned_to;
		out->reason = "pinned";
	} else {
		c = router_select(p, &rr, NULL, scratch, &a->rng);
		out->backend = c.backend;
		out->reason = c.backend < 0 ? "none" : out->pinned_to >= 0 ? "repinned" : "hashed";
	}
	free(scratch);
	return 0;
}

static void json_backend_or_null(FILE *f, const struct rl_pool *p, int i)
{
	if (i < 0)
		fputs("null", f);
	else
		stats_json_string(f, p->b[i].conf->name, strlen(p->b[i].conf->name));
}

static void write_placement(FILE *f, const struct rl_pool *p, const char *key, size_t len,
                            const struct key_place *pl)
{
	fputs("{\"key\":", f);
	stats_json_string(f, key, len);
	fprintf(f, ",\"key_hash\":\"%016llx\",\"backend\":",
	        (unsigned long long)router_key_hash(p, key, len));
	json_backend_or_null(f, p, pl->backend);
	fprintf(f, ",\"reason\":\"%s\",\"pinned_to\":", pl->reason);
	json_backend_or_null(f, p, pl->pinned_to);
	fputs("}\n", f);
}

static void handle_conversation(struct admin *a, struct evhttp_request *req, const char *rest)
{
	struct stats_source src;
	struct rl_pool *p = current_pool(a, &src);
	size_t len = 0;
	char *key = evhttp_uridecode(rest, 0, &len);
	struct key_place pl;
	struct body b;

	if (key == NULL || len == 0 || len > ADMIN_KEY_MAX) {
		send_error(req, 400, "the key must be 1 to 512 bytes");
	} else if (place_key(a, p, key, len, src.now_ms, &pl) != 0 || body_open(&b) != 0) {
		send_error(req, 500, "out of memory");
	} else {
		write_placement(b.f, p, key, len, &pl);
		send_body(req, 200, ADMIN_JSON, &b);
	}
	free(key);
}

/* ---- POST /backends/NAME/drain | undrain ---- */

static void set_drain(struct admin *a, struct evhttp_request *req, const char *rest, bool on)
{
	struct stats_source src;
	struct rl_pool *p = current_pool(a, &src);
	char *name = evhttp_uridecode(rest, 0, NULL);
	int i = name != NULL ? pool_find(p, name) : -1;
	struct body b;

	if (i < 0) {
		send_error(req, 404, "no such backend");
		free(name);
		return;
	}
	if (atomic_exchange(&p->b[i].rt->admin_draining, on) != on)
		log_info("backend %s: %s (admin)", name, on ? "drain requested" : "undrained");
	pool_lifecycle_tick(p, src.now_ms); /* move the lifecycle state now, not in a second */
	if (body_open(&b) != 0) {
		send_error(req, 500, "out of memory");
	} else {
		fputs("{\"backend\":", b.f);
		stats_json_string(b.f, name, strlen(name));
		fprintf(b.f, ",\"state\":\"%s\",\"admin_draining\":%s,\"config_state\":\"%s\"}\n",
		        stats_backend_state(p, (size_t)i), on ? "true" : "false",
		        conf_backend_state_name(p->b[i].conf->state));
		send_body(req, 200, ADMIN_JSON, &b);
	}
	free(name);
}

static void handle_drain(struct admin *a, struct evhttp_request *req, const char *rest)
{
	set_drain(a, req, rest, true);
}

static void handle_undrain(struct admin *a, struct evhttp_request *req, const char *rest)
{
	set_drain(a, req, rest, false);
}

/* ---- POST /reload ---- */

static void write_errors(FILE *f, const struct conf_errors *errs)
{
	fputs("\"errors\":[", f);
	for (size_t i = 0; i < errs->n; i++) {
		if (i > 0)
			fputc(',', f);
		stats_json_string(f, errs->msg[i], strlen(errs->msg[i]));
	}
	fputc(']', f);
}

static void send_conf_errors(struct evhttp_request *req, const struct conf_errors *errs)
{
	struct body b;

	if (errs->n == 0) { /* out of memory, or a problem only the error log names */
		send_error(req, 500, "reload failed; see the error log");
		return;
	}
	if (body_open(&b) != 0) {
		send_error(req, 500, "out of memory");
		return;
	}
	fputs("{\"result\":\"invalid\",", b.f);
	write_errors(b.f, errs);
	fputs("}\n", b.f);
	send_body(req, 422, ADMIN_JSON, &b);
}

static void send_reloaded(struct admin *a, struct evhttp_request *req)
{
	struct stats_source src;
	const struct rl_pool *p = current_pool(a, &src);
	struct body b;

	if (body_open(&b) != 0) {
		send_error(req, 500, "out of memory");
		return;
	}
	fprintf(b.f, "{\"result\":\"ok\",\"generation\":%llu,\"backends\":%zu}\n",
	        (unsigned long long)p->generation, p->nconf);
	send_body(req, 200, ADMIN_JSON, &b);
}

static void handle_reload(struct admin *a, struct evhttp_request *req, const char *rest)
{
	struct conf_errors errs = {0};

	if (a->ops->reload(a->arg, &errs) != 0)
		send_conf_errors(req, &errs);
	else
		send_reloaded(a, req);
	conf_errors_free(&errs);
}

/* ---- POST /preview ---- */

/* Pins per current backend (by index) and how many sit on backends the candidate drains
 * or removes: those stay until idle or drain_timeout, then move. */
static size_t count_pins(const struct rl_pool *p, const struct rl_conf *cand, uint64_t now_ms,
                         size_t *pins_of)
{
	size_t *by_id = calloc(p->next_id > 0 ? p->next_id : 1, sizeof(*by_id));
	size_t draining = 0;

	if (by_id == NULL)
		return 0;
	affinity_count_by_backend(pool_affinity(p), now_ms, by_id, p->next_id);
	for (size_t i = 0; i < p->n; i++) {
		const struct rl_backend_conf *bc = conf_backend(cand, p->b[i].conf->name);

		pins_of[i] = by_id[p->b[i].rt->id];
		if (bc == NULL || bc->state == RL_BACKEND_DRAINING)
			draining += pins_of[i];
	}
	free(by_id);
	return draining;
}

static void write_move(FILE *f, const struct stats_move *m, size_t pinned)
{
	fputs("{\"name\":", f);
	stats_json_string(f, m->name, strlen(m->name));
	fprintf(f,
	        ",\"share_before\":%.6f,\"share_after\":%.6f,\"gained\":%.6f,\"lost\":%.6f,"
	        "\"added\":%s,\"removed\":%s,\"pinned\":%zu}",
	        m->before, m->after, m->gained, m->lost, m->added ? "true" : "false",
	        m->removed ? "true" : "false", pinned);
}

static void write_preview(FILE *f, const struct rl_pool *p, const struct stats_diff *d,
                          const struct placement *cand, const size_t *pins_of, size_t pins_draining)
{
	char fp[PLACEMENT_FINGERPRINT_HEX + 1];

	placement_fingerprint_hex(cand->fingerprint, fp);
	fprintf(f,
	        "{\"result\":\"ok\",\"applied\":false,\"hash\":\"%s\",\"ring_fingerprint\":\"%s\","
	        "\"exact\":%s,\"moved\":%.6f,",
	        placement_name(cand), fp, d->exact ? "true" : "false", d->moved);
	fprintf(f,
	        "\"pinned\":{\"moving_now\":0,\"on_draining_backends\":%zu,\"note\":\"a "
	        "configuration change never moves a pinned conversation; pins on removed or "
	        "draining backends stay until idle (affinity_ttl) or drain_timeout, then "
	        "move\"},\"backends\":[",
	        pins_draining);
	for (size_t k = 0; k < d->n; k++) {
		int i = pool_find(p, d->m[k].name);

		if (k > 0)
			fputc(',', f);
		write_move(f, &d->m[k], i >= 0 && !d->m[k].added ? pins_of[i] : 0);
	}
	fputs("]}\n", f);
}

/* The request body as a NUL-terminated string (malloc'ed), or NULL. */
static char *request_text(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	char *text = malloc(len + 1);

	if (text != NULL) {
		evbuffer_copyout(in, text, len);
		text[len] = '\0';
	}
	return text;
}

static void preview_candidate(struct admin *a, struct evhttp_request *req,
                              const struct rl_conf *cand)
{
	struct stats_source src;
	struct rl_pool *p = current_pool(a, &src);
	struct placement *table = placement_from_conf(cand); /* as pool_new builds it */
	size_t *pins_of = calloc(p->n > 0 ? p->n : 1, sizeof(*pins_of));
	struct stats_diff d = {0};
	struct body b;

	if (table == NULL || pins_of == NULL || stats_key_space_diff(p, cand, table, &d) != 0 ||
	    body_open(&b) != 0) {
		send_error(req, 500, "out of memory");
	} else {
		size_t draining = count_pins(p, cand, src.now_ms, pins_of);

		write_preview(b.f, p, &d, table, pins_of, draining);
		send_body(req, 200, ADMIN_JSON, &b);
	}
	stats_diff_free(&d);
	free(pins_of);
	placement_free(table);
}

static void handle_preview(struct admin *a, struct evhttp_request *req, const char *rest)
{
	struct conf_errors errs = {0};
	char *text = request_text(req);
	struct rl_conf *cand = text != NULL ? conf_load_string(text, "preview", &errs) : NULL;

	if (text == NULL)
		send_error(req, 500, "out of memory");
	else if (cand == NULL)
		send_conf_errors(req, &errs);
	else
		preview_candidate(a, req, cand);
	conf_free(cand);
	conf_errors_free(&errs);
	free(text);
}

/* ---- routing and authentication ---- */

static const struct route routes[] = {
        {"/backends", NULL, ROUTE_GET, handle_backends},
        {"/stats", NULL, ROUTE_GET, handle_stats},
        {"/metrics", NULL, ROUTE_GET, handle_metrics},
        {"/conversations/", "", ROUTE_GET, handle_conversation},
        {"/backends/", "/drain", ROUTE_POST, handle_drain},
        {"/backends/", "/undrain", ROUTE_POST, handle_undrain},
        {"/reload", NULL, ROUTE_POST, handle_reload},
        {"/preview", NULL, ROUTE_POST, handle_preview},
};

/* Does path match r? *rest (malloc'ed) gets what a prefix route captures. */
static bool route_match(const struct route *r, const char *path, char **rest)
{
	size_t plen = strlen(r->path), len = strlen(path), slen;

	if (r->suffix == NULL)
		return strcmp(path, r->path) == 0;
	slen = strlen(r->suffix);
	if (len <= plen + slen || strncmp(path, r->path, plen) != 0 ||
	    strcmp(path + len - slen, r->suffix) != 0)
		return false;
	*rest = strndup(path + plen, len - plen - slen);
	/* NAME in /backends/NAME/drain is one segment */
	if (*rest != NULL && slen > 0 && strchr(*rest, '/') != NULL) {
		free(*rest);
		*rest = NULL;
		return false;
	}
	return *rest != NULL;
}

bool admin_token_ok(const char *authorization, const char *token)
{
	size_t plen = strlen(ADMIN_BEARER), tlen = strlen(token), glen;
	const char *given;
	unsigned char diff;

	if (tlen == 0)
		return true;
	if (authorization == NULL || strncasecmp(authorization, ADMIN_BEARER, plen) != 0)
		return false;
	given = authorization + plen;
	glen = strlen(given);
	/* time depends on the token's length only, never on where the first difference is */
	diff = glen != tlen;
	for (size_t i = 0; i < tlen; i++)
		diff |= (unsigned char)token[i] ^ (unsigned char)(i < glen ? given[i] : 0);
	return diff == 0;
}

static bool method_ok(const struct route *r, enum evhttp_cmd_type m)
{
	if (r->method == ROUTE_POST)
		return m == EVHTTP_REQ_POST;
	return m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD;
}

static bool authorized(struct admin *a, struct evhttp_request *req)
{
	struct stats_source src;
	const struct rl_pool *p = current_pool(a, &src);
	const char *auth =
	        evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");

	return admin_token_ok(auth, p->conf->admin_token);
}

/* The route for path (paths are unique across methods), or NULL; *rest (malloc'ed) gets
 * what a prefix route captures. */
static const struct route *find_route(const char *path, char **rest)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (route_match(&routes[i], path, rest))
			return &routes[i];
	return NULL;
}

static void send_wrong_method(struct evhttp_request *req, const struct route *r)
{
	bool post = r->method == ROUTE_POST;

	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
	                  post ? "POST" : "GET, HEAD");
	send_error(req, 405, post ? "use POST" : "use GET");
}

static void send_unauthorized(struct evhttp_request *req)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
	                  "Bearer realm=\"ringleader\"");
	send_error(req, 401, "missing or wrong bearer token");
}

/* Mutating requests leave a trace in the error log. */
static void log_action(struct evhttp_request *req, const char *path)
{
	char *host = NULL;
	ev_uint16_t port = 0;

	evhttp_connection_get_peer(evhttp_request_get_connection(req), &host, &port);
	log_info("admin: POST %s from %s", path, host != NULL ? host : "?");
}

static void dispatch(struct evhttp_request *req, void *arg)
{
	struct admin *a = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	char *rest = NULL;
	const struct route *r = path != NULL ? find_route(path, &rest) : NULL;

	stats_inc(STAT_admin_requests);
	if (path == NULL) {
		send_error(req, 400, "bad request target");
	} else if (r == NULL) {
		send_error(req, 404, "no such endpoint");
	} else if (!method_ok(r, evhttp_request_get_command(req))) {
		send_wrong_method(req, r);
	} else if (r->method == ROUTE_POST && !authorized(a, req)) {
		send_unauthorized(req);
	} else {
		if (r->method == ROUTE_POST)
			log_action(req, path);
		r->handle(a, req, rest != NULL ? rest : "");
	}
	free(rest);
}

/* ---- lifecycle ---- */

bool admin_addr_is_loopback(const struct rl_addr *a)
{
	const struct sockaddr *sa = (const struct sockaddr *)&a->ss;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;

		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	return false;
}

/* Refuse a configuration that would open the API to the network without a token (the
 * config validation says the same; this is the last line). */
static int check_exposure(const struct rl_conf *conf)
{
	if (conf->admin_token != NULL && conf->admin_token[0] != '\0')
		return 0;
	for (size_t i = 0; i < conf->admin_listen.n; i++) {
		if (!admin_addr_is_loopback(&conf->admin_listen.addr[i])) {
			log_error("admin %s: refusing a non-loopback admin listener without "
			          "[admin] token",
			          conf->admin_listen.addr[i].text);
			return -1;
		}
	}
	return 0;
}

static int admin_bind(struct admin *a, const struct rl_addr *addr)
{
	unsigned flags = LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC;
	struct evconnlistener *l =
	        evconnlistener_new_bind(a->base, NULL, NULL, flags, ADMIN_BACKLOG,
	                                (const struct sockaddr *)&addr->ss, (int)addr->len);

	if (l == NULL || evhttp_bind_listener(a->http, l) == NULL) {
		log_errno(RL_LOG_ERROR, "admin %s: cannot listen", addr->text);
		if (l != NULL)
			evconnlistener_free(l);
		return -1;
	}
	log_info("admin %s: listening", addr->text);
	return 0;
}

static int admin_listen(struct admin *a, const struct rl_conf *conf)
{
	a->http = evhttp_new(a->base);
	if (a->http == NULL)
		return -1;
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
	                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
	                                            EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_max_body_size(a->http, ADMIN_BODY_MAX);
	evhttp_set_max_headers_size(a->http, ADMIN_HEADERS_MAX);
	evhttp_set_timeout(a->http, ADMIN_TIMEOUT_S);
	evhttp_set_gencb(a->http, dispatch, a);
	for (size_t i = 0; i < conf->admin_listen.n; i++)
		if (admin_bind(a, &conf->admin_listen.addr[i]) < 0)
			return -1;
	return 0;
}

struct admin *admin_new(struct event_base *base, const struct rl_conf *conf,
                        const struct admin_ops *ops, void *arg)
{
	struct admin *a;

	if (check_exposure(conf) < 0)
		return NULL;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	a->base = base;
	a->ops = ops;
	a->arg = arg;
	util_rng_seed(&a->rng);
	if (conf->admin_listen.n > 0 && admin_listen(a, conf) < 0) {
		admin_free(a);
		return NULL;
	}
	return a;
}

void admin_free(struct admin *a)
{
	if (a == NULL)
		return;
	if (a->http != NULL)
		evhttp_free(a->http);
	free(a);
}
