/*
 * e2e_control — the control plane as an operator meets it: active health checks taking
 * backends down and up, passive ejection, and the admin API (/backends, /stats, /metrics,
 * /conversations, drain/undrain, /reload, /preview, bearer token), all against the real
 * binary and real botsim backends.
 *
 *   test ──raw socket──► ringleader admin (127.0.0.1:free port) ──► JSON / Prometheus text
 *        ──raw socket──► ringleader proxy ──► botsim bot-1..bot-n (POST /admin/sick, kill)
 *
 * Every wait is a bounded poll of /backends or of a log file; every process is stopped by
 * PID in .fini.
 */
#define _GNU_SOURCE

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <regex.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define JSMN_STATIC
#define JSMN_STRICT
#include <jsmn.h>

#include "harness.h"

#define TEST_TIMEOUT_S   60
#define TOKEN            "s3cret-token"
#define HEALTH_WAIT_MS   8000  /* bound for a health transition (100 ms checks, ASan) */
#define PASSIVE_INTERVAL "2s"  /* with checks off: how long a passive ejection lasts */
#define JSON_TOKENS      65536 /* jsmn tokens for a /stats or /backends body */
#define SAMPLE_KEYS      1000  /* keys compared before and after a /preview'd change */
#define SHARE_TOLERANCE  0.02  /* exact preview shares vs the ideal 1/n */
#define SAMPLE_TOLERANCE 0.05  /* preview vs 1000 sampled keys (~3.5 sigma) */
#define NAME_CAP         64    /* bytes of a backend name read from a response */

static struct h_bot bots[H_MAX_BOTS];
static int nbots;
static struct h_proxy px;
static int admin_port;

/* ---- fixtures ---- */

static void teardown(void)
{
	int rc = h_proxy_stop(&px);

	h_bots_stop(bots, nbots);
	h_stop_all();
	h_tmpdir_remove();
	cr_expect_eq(rc, 0,
	             "ringleader exited with %d at teardown (sanitizer report or crash; "
	             "its log was printed above)",
	             rc);
}

/* [health] and [admin] sections: checks every 100 ms when health_on, admin on a free
 * port with TOKEN. passive: passive_failures. */
static void control_sections(char *out, size_t cap, bool health_on, unsigned passive)
{
	snprintf(out, cap,
	         "[health]\npath = %s\ninterval = %s\ntimeout = 50ms\nrise = 2\nfall = 3\n"
	         "passive_failures = %u\n"
	         "[admin]\nlisten = 127.0.0.1:%d\ntoken = " TOKEN "\n",
	         health_on ? "/healthz" : "", health_on ? "100ms" : PASSIVE_INTERVAL, passive,
	         admin_port);
}

/* n bots, the first in_conf of them in the config, proxy + admin up. */
static void start_with(int n, int in_conf, bool health_on, unsigned passive)
{
	char sections[1024], *conf;
	int port;

	nbots = 0;
	if (h_bots_start(bots, n) != 0)
		cr_assert_fail("botsim did not start (RL_BOTSIM=%s)", getenv("RL_BOTSIM"));
	nbots = n;
	admin_port = h_free_port();
	port = h_free_port();
	control_sections(sections, sizeof(sections), health_on, passive);
	conf = h_conf_text(port, "", sections, bots, in_conf);
	cr_assert_not_null(conf);
	if (h_proxy_start(&px, port, conf) != 0) {
		free(conf);
		cr_assert_fail("ringleader did not start (RL_BIN=%s; log above)", getenv("RL_BIN"));
	}
	free(conf);
	cr_assert_eq(h_wait_port(admin_port, H_TIMEOUT_MS), 0, "admin port %d never accepted",
	             admin_port);
}

static void setup_admin(void)
{
	start_with(3, 3, false, 0);
}

static void setup_health(void)
{
	start_with(3, 3, true, 0);
}

static void setup_spare(void)
{
	start_with(4, 3, false, 0);
}

static void setup_passive(void)
{
	start_with(3, 3, false, 3);
}

/* ---- admin requests ---- */

/* method path on the admin port, with the token when with_token, and an optional body. */
static int admin_req(const char *method, const char *path, bool with_token, const char *body,
                     struct h_response *r)
{
	size_t blen = body != NULL ? strlen(body) : 0;
	size_t cap = blen + 1024;
	char *raw = malloc(cap);
	int rc;

	cr_assert_not_null(raw);
	snprintf(raw, cap,
	         "%s %s HTTP/1.1\r\nHost: admin\r\n%sContent-Length: %zu\r\nConnection: "
	         "close\r\n\r\n%s",
	         method, path, with_token ? "Authorization: Bearer " TOKEN "\r\n" : "", blen,
	         body != NULL ? body : "");
	rc = h_exchange(admin_port, raw, r);
	free(raw);
	return rc;
}

static void admin_get(const char *path, struct h_response *r)
{
	cr_assert_eq(admin_req("GET", path, false, NULL, r), 0, "GET %s: no response", path);
}

static void admin_post(const char *path, const char *body, struct h_response *r)
{
	cr_assert_eq(admin_req("POST", path, true, body, r), 0, "POST %s: no response", path);
}

static void expect_json_type(const struct h_response *r)
{
	char ct[128];

	cr_assert_not_null(h_header(r, "Content-Type", ct, sizeof(ct)), "%s", r->head);
	cr_expect_str_eq(ct, "application/json");
}

/* Is body one complete, strictly valid JSON value (whitespace around allowed)? */
static bool json_valid(const char *body)
{
	jsmntok_t *t = malloc(JSON_TOKENS * sizeof(*t));
	size_t len = strlen(body);
	jsmn_parser p;
	int n;

	cr_assert_not_null(t);
	while (len > 0 && (body[len - 1] == '\n' || body[len - 1] == ' '))
		len--;
	jsmn_init(&p);
	n = jsmn_parse(&p, body, len, t, JSON_TOKENS);
	bool ok = n > 0 && t[0].start == 0 && (size_t)t[0].end == len;
	free(t);
	return ok;
}

/* The flat object that contains "name":"NAME" in a JSON array body, copied into out. */
static const char *object_named(const char *body, const char *name, char *out, size_t cap)
{
	char pat[128];
	const char *at, *open, *close;

	snprintf(pat, sizeof(pat), "\"name\":\"%s\"", name);
	at = strstr(body, pat);
	if (at == NULL)
		return NULL;
	for (open = at; open > body && *open != '{'; open--)
		;
	close = strchr(at, '}');
	if (*open != '{' || close == NULL || (size_t)(close - open) + 2 > cap)
		return NULL;
	memcpy(out, open, (size_t)(close - open) + 1);
	out[close - open + 1] = '\0';
	return out;
}

/* Field of backend NAME in GET /backends into out; NULL if absent. */
static const char *backend_field(const char *name, const char *field, char *out, size_t cap)
{
	struct h_response r;
	char obj[2048];
	const char *v = NULL;

	admin_get("/backends", &r);
	if (r.status == 200 && object_named(r.body, name, obj, sizeof(obj)) != NULL)
		v = h_json_field(obj, field, out, cap);
	h_response_free(&r);
	return v;
}

static unsigned long long backend_number(const char *name, const char *field)
{
	char v[64];

	cr_assert_not_null(backend_field(name, field, v, sizeof(v)), "%s has no %s", name, field);
	return strtoull(v, NULL, 10);
}

/* Poll /backends until NAME's state is want; 0, or -1 after timeout_ms. */
static int wait_state(const char *name, const char *want, int timeout_ms)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	char v[64];

	do {
		if (backend_field(name, "state", v, sizeof(v)) != NULL && strcmp(v, want) == 0)
			return 0;
		usleep(20 * 1000);
	} while (h_now_ms() < deadline);
	return -1;
}

static void wait_all_up(int n)
{
	for (int i = 0; i < n; i++)
		cr_assert_eq(wait_state(bots[i].name, "up", HEALTH_WAIT_MS), 0, "%s never came up",
		             bots[i].name);
}

/* GET /conversations/KEY: the backend named, into out ("" for null). Returns reason. */
static const char *conversation(const char *key, char *backend, size_t cap, char *reason,
                                size_t rcap)
{
	struct h_response r;
	char path[600];

	snprintf(path, sizeof(path), "/conversations/%s", key);
	admin_get(path, &r);
	cr_assert_eq(r.status, 200, "GET %s: %d %s", path, r.status, r.body);
	if (h_json_field(r.body, "backend", backend, cap) == NULL || strcmp(backend, "null") == 0)
		backend[0] = '\0';
	cr_assert_not_null(h_json_field(r.body, "reason", reason, rcap), "%s", r.body);
	h_response_free(&r);
	return reason;
}

static void hashed_backend(const char *key, char *backend, size_t cap)
{
	char reason[32];

	conversation(key, backend, cap, reason, sizeof(reason));
}

/* ---- proxy traffic ---- */

/* One request for conv on a fresh connection; status, and the answering bot into backend. */
static int message_path(const char *path, const char *conv, char *backend, size_t cap)
{
	struct h_response r;
	char raw[1024];
	int status;

	snprintf(raw, sizeof(raw),
	         "GET %s HTTP/1.1\r\nHost: t\r\nX-Conversation-ID: %s\r\nConnection: close\r\n\r\n",
	         path, conv);
	cr_assert_eq(h_exchange(px.port, raw, &r), 0, "conv %s: no response", conv);
	status = r.status;
	if (h_json_field(r.body, "backend", backend, cap) == NULL)
		backend[0] = '\0';
	h_response_free(&r);
	return status;
}

static int message(const char *conv, char *backend, size_t cap)
{
	return message_path("/msg", conv, backend, cap);
}

/* A key (prefix-N) that hashes to bot name, found through /conversations, into key. */
static void key_on(const char *prefix, const char *name, char *key, size_t cap)
{
	for (int i = 0; i < 500; i++) {
		char backend[64];

		snprintf(key, cap, "%s-%d", prefix, i);
		hashed_backend(key, backend, sizeof(backend));
		if (strcmp(backend, name) == 0)
			return;
	}
	cr_assert_fail("no key of 500 hashes to %s", name);
}

static void bot_post(const struct h_bot *b, const char *path)
{
	struct h_response r;
	char raw[256];

	snprintf(raw, sizeof(raw), "POST %s HTTP/1.1\r\nHost: bot\r\nContent-Length: 0\r\n\r\n",
	         path);
	cr_assert_eq(h_exchange(b->port, raw, &r), 0);
	cr_assert_eq(r.status, 200, "%s %s: %d", b->name, path, r.status);
	h_response_free(&r);
}

static void expect_log(const char *needle)
{
	cr_expect_eq(h_wait_file_contains(px.log, needle, H_TIMEOUT_MS), 0, "no \"%s\" in the log",
	             needle);
}

/* New conversations prefix-0..n-1: every one answered 200, none by `avoid`. */
static void expect_new_conversations_avoid(const char *prefix, int n, const char *avoid)
{
	for (int i = 0; i < n; i++) {
		char conv[64], backend[64];
		int status;

		snprintf(conv, sizeof(conv), "%s-%d", prefix, i);
		status = message(conv, backend, sizeof(backend));
		cr_assert_eq(status, 200, "conv %s: %d", conv, status);
		cr_assert_str_neq(backend, avoid, "new conversation %s reached %s", conv, avoid);
	}
}

/* ---- health ---- */

static unsigned long long stats_number(const char *key)
{
	struct h_response r;
	char v[64];
	unsigned long long n;

	admin_get("/stats", &r);
	cr_assert_not_null(h_json_field(r.body, key, v, sizeof(v)), "/stats lacks %s", key);
	n = strtoull(v, NULL, 10);
	h_response_free(&r);
	return n;
}

Test(health, sick_backend_goes_down_after_fall_checks_and_back_after_rise, .init = setup_health,
     .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	char live[64], fresh[64], backend[64], reason[32];
	const struct h_bot *victim = &bots[1];
	unsigned long long changes;

	wait_all_up(nbots);
	key_on("sick", victim->name, live, sizeof(live));
	key_on("fresh", victim->name, fresh, sizeof(fresh));
	cr_assert_eq(message(live, backend, sizeof(backend)), 200);
	cr_assert_str_eq(backend, victim->name);
	changes = stats_number("health_changes");

	bot_post(victim, "/admin/sick");
	cr_assert_eq(wait_state(victim->name, "down", HEALTH_WAIT_MS), 0,
	             "%s answered 503 to its checks but never went down", victim->name);
	expect_log("backend bot-2: DOWN (status 503, 3/3 checks)");
	/* its live conversation moves; new ones, even those hashed to it, go elsewhere */
	cr_assert_eq(message(live, backend, sizeof(backend)), 200);
	cr_assert_str_neq(backend, victim->name, "conversation %s still reached a down backend",
	                  live);
	conversation(fresh, backend, sizeof(backend), reason, sizeof(reason));
	cr_expect_str_neq(backend, victim->name, "/conversations sends %s to a down backend",
	                  fresh);
	cr_expect_str_eq(reason, "hashed");
	expect_new_conversations_avoid("while-sick", 60, victim->name);

	bot_post(victim, "/admin/well");
	cr_assert_eq(wait_state(victim->name, "up", HEALTH_WAIT_MS), 0,
	             "%s recovered but never came back up", victim->name);
	expect_log("backend bot-2: UP (2/2 checks)");
	cr_assert_eq(message(fresh, backend, sizeof(backend)), 200);
	cr_assert_str_eq(backend, victim->name, "a new conversation hashed to %s went to %s",
	                 victim->name, backend);
	cr_expect_geq(stats_number("health_changes"), changes + 2);
}

Test(health, stopped_backend_goes_down_with_connect_refused, .init = setup_health, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char keys[20][64], backend[64];
	struct h_bot *victim = &bots[2];

	wait_all_up(nbots);
	for (int i = 0; i < 20; i++) {
		char prefix[32];

		snprintf(prefix, sizeof(prefix), "stop%d", i);
		key_on(prefix, victim->name, keys[i], sizeof(keys[i]));
	}
	h_stop(victim->pid, SIGTERM, H_TIMEOUT_MS);
	victim->pid = 0;
	cr_assert_eq(wait_state(victim->name, "down", HEALTH_WAIT_MS), 0,
	             "a stopped backend never went down");
	expect_log("backend bot-3: DOWN (connect refused, 3/3 checks)");
	for (int i = 0; i < 20; i++) {
		cr_assert_eq(message(keys[i], backend, sizeof(backend)), 200, "conv %s", keys[i]);
		cr_assert_str_neq(backend, victim->name);
	}
	cr_assert_eq(h_bot_restart(victim, NULL), 0);
	cr_assert_eq(wait_state(victim->name, "up", HEALTH_WAIT_MS), 0,
	             "the restarted backend never came back up");
}

static void setup_health_spare(void)
{
	start_with(4, 3, true, 0);
}

Test(health, reload_keeps_health_and_checks_new_backends, .init = setup_health_spare,
     .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	const char *base = strrchr(px.conf, '/') + 1;
	char sections[1024], state[32], *conf;

	wait_all_up(3);
	bot_post(&bots[1], "/admin/sick");
	cr_assert_eq(wait_state("bot-2", "down", HEALTH_WAIT_MS), 0);
	control_sections(sections, sizeof(sections), true, 0);
	conf = h_conf_text(px.port, "", sections, bots, 4);
	h_write_file(base, conf);
	free(conf);
	cr_assert_eq(kill(px.pid, SIGHUP), 0);
	expect_log("reload: ok");
	cr_assert_not_null(backend_field("bot-4", "state", state, sizeof(state)));
	cr_expect(strcmp(state, "checking") == 0 || strcmp(state, "up") == 0,
	          "a backend added by a reload is %s before its checks", state);
	expect_log("backend bot-4: CHECKING (up after 2 good checks)");
	cr_assert_eq(wait_state("bot-4", "up", HEALTH_WAIT_MS), 0);
	cr_expect_str_eq(backend_field("bot-2", "state", state, sizeof(state)), "down",
	                 "the reload reset the health of a backend that stayed");
	bot_post(&bots[1], "/admin/well");
	cr_assert_eq(wait_state("bot-2", "up", HEALTH_WAIT_MS), 0);
}

/* A backend nobody listens on, besides three real ones. */
static void setup_ghost(void)
{
	nbots = 0;
	cr_assert_eq(h_bots_start(bots, 3), 0);
	nbots = 3;
	bots[3] = (struct h_bot){.pid = 0, .port = h_free_port()};
	snprintf(bots[3].name, sizeof(bots[3].name), "ghost");
	admin_port = h_free_port();

	char sections[1024], *conf;
	int port = h_free_port();

	control_sections(sections, sizeof(sections), true, 0);
	conf = h_conf_text(port, "", sections, bots, 4);
	cr_assert_eq(h_proxy_start(&px, port, conf), 0, "ringleader did not start");
	free(conf);
	cr_assert_eq(h_wait_port(admin_port, H_TIMEOUT_MS), 0);
}

Test(health, at_startup_only_passing_backends_take_traffic, .init = setup_ghost, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char state[32];

	/* a backend is never up before its checks pass */
	cr_assert_not_null(backend_field("ghost", "state", state, sizeof(state)));
	cr_assert(strcmp(state, "checking") == 0 || strcmp(state, "down") == 0,
	          "ghost is %s before any check passed", state);
	wait_all_up(3); /* readiness: the real ones pass their checks */
	cr_assert_eq(wait_state("ghost", "down", HEALTH_WAIT_MS), 0);
	expect_log("backend ghost: DOWN (connect refused, 3/3 checks)");
	expect_new_conversations_avoid("boot", 100, "ghost");
	cr_assert_eq(backend_number("ghost", "requests"), 0);
}

/*
 * ---- passive ejection (health checks off) ----
 *
 * The data path reports each exchange: conn.c calls health_passive_report() on every
 * connect failure, 5xx response head or lost response (failed) and on every other
 * response head (ok).
 */

Test(passive, connect_failures_eject_a_backend_until_its_interval_passes, .init = setup_passive,
     .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	char keys[10][64], backend[64];
	struct h_bot *victim = &bots[0];
	unsigned long long failures;
	int sent = 0;

	for (int i = 0; i < 10; i++) {
		char prefix[32];

		snprintf(prefix, sizeof(prefix), "pass%d", i);
		key_on(prefix, victim->name, keys[i], sizeof(keys[i]));
	}
	h_stop(victim->pid, SIGTERM, H_TIMEOUT_MS);
	victim->pid = 0;
	/* each request meets a refused connect and is retried elsewhere */
	while (sent < 3) {
		cr_assert_eq(message(keys[sent], backend, sizeof(backend)), 200);
		sent++;
	}
	cr_assert_eq(wait_state(victim->name, "down", 1000), 0,
	             "3 connect failures in a row did not eject %s", victim->name);
	expect_log("backend bot-1: DOWN (passive: 3 failures in a row)");
	failures = backend_number(victim->name, "connect_failures");
	for (int i = 3; i < 10; i++) {
		cr_assert_eq(message(keys[i], backend, sizeof(backend)), 200);
		cr_assert_str_neq(backend, victim->name);
	}
	cr_expect_eq(backend_number(victim->name, "connect_failures"), failures,
	             "an ejected backend was still tried");
	cr_assert_eq(h_bot_restart(victim, NULL), 0);
	cr_assert_eq(wait_state(victim->name, "up", HEALTH_WAIT_MS), 0,
	             "the ejection never ended with checks off");
}

Test(passive, five_hundreds_eject_a_backend, .init = setup_passive, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char key[64], backend[64];
	const struct h_bot *victim = &bots[2];

	key_on("five", victim->name, key, sizeof(key));
	for (int i = 0; i < 3; i++)
		cr_assert_eq(message_path("/status?code=500", key, backend, sizeof(backend)), 500);
	cr_assert_eq(wait_state(victim->name, "down", 1000), 0,
	             "3 answers of 500 in a row did not eject %s", victim->name);
	expect_new_conversations_avoid("after-500", 30, victim->name);
}

/* ---- admin: read endpoints ---- */

Test(admin, backends_lists_every_backend_with_its_figures, .init = setup_admin, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	static const char *const fields[] = {"name",   "address",  "weight",   "state", "health",
	                                     "pinned", "inflight", "requests", "errors"};
	struct h_response r;
	unsigned long long total = 0;

	for (int i = 0; i < 30; i++) {
		char conv[32], backend[64];

		snprintf(conv, sizeof(conv), "list-%d", i);
		cr_assert_eq(message(conv, backend, sizeof(backend)), 200);
	}
	admin_get("/backends", &r);
	cr_assert_eq(r.status, 200);
	expect_json_type(&r);
	cr_assert(json_valid(r.body), "not JSON: %s", r.body);
	cr_assert_eq(r.body[0], '[', "%s", r.body);
	for (int i = 0; i < nbots; i++) {
		char obj[2048], v[128], addr[64];

		cr_assert_not_null(object_named(r.body, bots[i].name, obj, sizeof(obj)), "%s",
		                   r.body);
		for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
			cr_expect_not_null(h_json_field(obj, fields[f], v, sizeof(v)),
			                   "%s lacks %s", bots[i].name, fields[f]);
		snprintf(addr, sizeof(addr), "127.0.0.1:%d", bots[i].port);
		cr_expect_str_eq(h_json_field(obj, "address", v, sizeof(v)), addr);
		cr_expect_str_eq(h_json_field(obj, "state", v, sizeof(v)), "up");
		total += strtoull(h_json_field(obj, "requests", v, sizeof(v)), NULL, 10);
	}
	cr_expect_eq(total, 30, "backend request counters sum to %llu, want 30", total);
	h_response_free(&r);
}

Test(admin, stats_is_json_with_every_counter, .init = setup_admin, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	static const char *const keys[] = {"connections_accepted",
	                                   "requests",
	                                   "proxy_errors",
	                                   "retries",
	                                   "reloads_ok",
	                                   "reloads_failed",
	                                   "health_changes",
	                                   "responses",
	                                   "proxy_error_responses",
	                                   "backends",
	                                   "latency",
	                                   "pinned"};
	struct h_response r;
	char v[64], backend[64];

	for (int i = 0; i < 10; i++) {
		char conv[32];

		snprintf(conv, sizeof(conv), "stats-%d", i);
		cr_assert_eq(message(conv, backend, sizeof(backend)), 200);
	}
	admin_get("/stats", &r);
	cr_assert_eq(r.status, 200);
	expect_json_type(&r);
	cr_assert(json_valid(r.body), "not JSON: %s", r.body);
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		char pat[64];

		snprintf(pat, sizeof(pat), "\"%s\":", keys[k]);
		cr_expect(strstr(r.body, pat) != NULL, "/stats lacks %s", keys[k]);
	}
	cr_expect_geq(strtoull(h_json_field(r.body, "requests", v, sizeof(v)), NULL, 10), 10);
	cr_expect_geq(strtoull(h_json_field(r.body, "2xx", v, sizeof(v)), NULL, 10), 10);
	h_response_free(&r);
}

/* Family a sample belongs to: its name, or the histogram it is a series of. */
static void sample_family(const char *name, char *out, size_t cap, const char *histograms)
{
	static const char *const suffixes[] = {"_bucket", "_sum", "_count"};

	snprintf(out, cap, "%s", name);
	for (size_t i = 0; i < 3; i++) {
		size_t n = strlen(name), s = strlen(suffixes[i]);
		char base[256], pat[260];

		if (n <= s || strcmp(name + n - s, suffixes[i]) != 0 || n - s >= sizeof(base))
			continue;
		memcpy(base, name, n - s);
		base[n - s] = '\0';
		snprintf(pat, sizeof(pat), " %s ", base);
		if (strstr(histograms, pat) != NULL)
			snprintf(out, cap, "%s", base);
	}
}

/* Every line of a Prometheus 0.0.4 text: "# HELP f", "# TYPE f t" or a sample of a family
 * whose HELP and TYPE came first. Returns the number of samples. */
static int check_prometheus(char *text)
{
	regex_t sample;
	char helped[65536] = " ", typed[65536] = " ", histograms[8192] = " ";
	int samples = 0;

	cr_assert_eq(regcomp(&sample,
	                     "^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|"
	                     "\\\\.)*\""
	                     "(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\")*\\})? "
	                     "(-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?|NaN|[+-]Inf)$",
	                     REG_EXTENDED),
	             0);
	for (char *save = NULL, *l = strtok_r(text, "\n", &save); l != NULL;
	     l = strtok_r(NULL, "\n", &save)) {
		char name[256], type[32], family[256], pat[260];
		regmatch_t m[2];

		if (sscanf(l, "# HELP %255s", name) == 1) {
			snprintf(helped + strlen(helped), sizeof(helped) - strlen(helped), "%s ",
			         name);
			continue;
		}
		if (sscanf(l, "# TYPE %255s %31s", name, type) == 2) {
			cr_expect(strstr(helped, name) != NULL, "TYPE before HELP: %s", l);
			snprintf(typed + strlen(typed), sizeof(typed) - strlen(typed), "%s ", name);
			if (strcmp(type, "histogram") == 0)
				snprintf(histograms + strlen(histograms),
				         sizeof(histograms) - strlen(histograms), "%s ", name);
			continue;
		}
		cr_assert_eq(regexec(&sample, l, 2, m, 0), 0, "not a sample line: \"%s\"", l);
		snprintf(name, sizeof(name), "%.*s", (int)(m[1].rm_eo - m[1].rm_so), l);
		sample_family(name, family, sizeof(family), histograms);
		snprintf(pat, sizeof(pat), " %s ", family);
		cr_expect(strstr(typed, pat) != NULL && strstr(helped, pat) != NULL,
		          "sample of %s without HELP/TYPE before it", family);
		samples++;
	}
	regfree(&sample);
	return samples;
}

/* Value of the sample line that starts with prefix, or -1. */
static double sample_value(const char *text, const char *prefix)
{
	for (const char *l = text; l != NULL && *l != '\0';) {
		if (strncmp(l, prefix, strlen(prefix)) == 0 && l[strlen(prefix)] == ' ')
			return strtod(l + strlen(prefix) + 1, NULL);
		l = strchr(l, '\n');
		l = l != NULL ? l + 1 : NULL;
	}
	return -1;
}

Test(admin, metrics_is_prometheus_text, .init = setup_admin, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	struct h_response r;
	char ct[128], backend[64], *copy;
	const char *h = "ringleader_backend_response_seconds";
	char inf[256], count[256];

	for (int i = 0; i < 10; i++) {
		char conv[32];

		snprintf(conv, sizeof(conv), "metrics-%d", i);
		cr_assert_eq(message(conv, backend, sizeof(backend)), 200);
	}
	/* one keyless request, counted by its reason */
	cr_assert_eq(h_exchange(px.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
	cr_assert_eq(r.status, 200);
	h_response_free(&r);
	admin_get("/metrics", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_not_null(h_header(&r, "Content-Type", ct, sizeof(ct)));
	cr_expect(strncmp(ct, "text/plain; version=0.0.4", 25) == 0, "Content-Type %s", ct);
	copy = strdup(r.body);
	cr_assert_gt(check_prometheus(copy), 20);
	free(copy);
	cr_expect_geq(sample_value(r.body, "ringleader_requests_total"), 10);
	cr_expect_geq(sample_value(r.body, "ringleader_responses_total{class=\"2xx\"}"), 10);
	cr_expect_eq(sample_value(r.body, "ringleader_reloads_ok_total"), 0);
	/* no TLS listener here, so no handshakes */
	cr_expect_eq(
	        sample_value(r.body, "ringleader_requests_without_key_total{reason=\"absent\"}"),
	        1);
	cr_expect_eq(sample_value(r.body, "ringleader_tls_handshakes_total"), 0);
	cr_expect_eq(
	        sample_value(r.body, "ringleader_tls_handshake_failures_total{reason=\"not_tls\"}"),
	        0);
	for (int i = 0; i < nbots; i++) {
		char series[128];

		snprintf(series, sizeof(series),
		         "ringleader_backend_requests_total{backend=\"%s\"}", bots[i].name);
		cr_expect_geq(sample_value(r.body, series), 0, "no %s", series);
		snprintf(inf, sizeof(inf), "%s_bucket{backend=\"%s\",le=\"+Inf\"}", h,
		         bots[i].name);
		snprintf(count, sizeof(count), "%s_count{backend=\"%s\"}", h, bots[i].name);
		cr_expect_geq(sample_value(r.body, inf), 0, "no %s", inf);
		cr_expect_eq(sample_value(r.body, inf), sample_value(r.body, count));
	}
	h_response_free(&r);
}

Test(admin, conversations_agree_with_the_backend_that_served, .init = setup_admin, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	for (int i = 0; i < 40; i++) {
		char key[32], before[64], after[64], served[64], reason[32];

		snprintf(key, sizeof(key), "agree-%d", i);
		conversation(key, before, sizeof(before), reason, sizeof(reason));
		cr_expect_str_eq(reason, "hashed", "%s before any traffic", key);
		cr_assert_eq(message(key, served, sizeof(served)), 200);
		cr_assert_str_eq(before, served, "/conversations said %s, %s served %s", before,
		                 served, key);
		conversation(key, after, sizeof(after), reason, sizeof(reason));
		cr_assert_str_eq(after, served);
		cr_expect_str_eq(reason, "pinned", "%s after it was served", key);
	}
}

Test(admin, conversation_key_is_percent_decoded_and_escaped, .init = setup_admin, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	struct h_response r;
	char key[64], hashed[64], served[64];

	admin_get("/conversations/a%20b%2Fc%22d", &r);
	cr_assert_eq(r.status, 200);
	expect_json_type(&r);
	cr_assert(json_valid(r.body), "%s", r.body);
	cr_assert_not_null(h_json_field(r.body, "key", key, sizeof(key)));
	cr_expect_str_eq(key, "a b/c\"d");
	cr_assert_not_null(h_json_field(r.body, "backend", hashed, sizeof(hashed)));
	h_response_free(&r);
	cr_assert_eq(message("a%20b", served, sizeof(served)), 200); /* header value as is */
	hashed_backend("a%2520b", key, sizeof(key));
	cr_expect_str_eq(key, served);
}

/* ---- admin: errors and authentication ---- */

static void expect_status_json(const char *method, const char *path, bool token, int want)
{
	struct h_response r;

	cr_assert_eq(admin_req(method, path, token, NULL, &r), 0, "%s %s", method, path);
	cr_expect_eq(r.status, want, "%s %s: %d %s", method, path, r.status, r.body);
	expect_json_type(&r);
	cr_expect(json_valid(r.body), "%s %s: not JSON: %s", method, path, r.body);
	h_response_free(&r);
}

Test(admin, unknown_paths_and_wrong_methods_answer_json, .init = setup_admin, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	struct h_response r;
	char allow[64];

	expect_status_json("GET", "/nope", false, 404);
	expect_status_json("GET", "/backends/bot-1", false, 404);
	expect_status_json("GET", "/reload", false, 405);
	expect_status_json("POST", "/backends", true, 405);
	expect_status_json("DELETE", "/stats", true, 405);
	expect_status_json("POST", "/backends/nobody/drain", true, 404);
	cr_assert_eq(admin_req("GET", "/backends/bot-1/drain", false, NULL, &r), 0);
	cr_expect_eq(r.status, 405);
	cr_expect_str_eq(h_header(&r, "Allow", allow, sizeof(allow)), "POST");
	h_response_free(&r);
}

Test(admin, posts_need_the_bearer_token, .init = setup_admin, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	struct h_response r;
	char raw[512], v[64];

	expect_status_json("POST", "/backends/bot-1/drain", false, 401);
	expect_status_json("POST", "/reload", false, 401);
	snprintf(raw, sizeof(raw),
	         "POST /backends/bot-1/drain HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer "
	         "s3cret-tokeX\r\nContent-Length: 0\r\n\r\n");
	cr_assert_eq(h_exchange(admin_port, raw, &r), 0);
	cr_expect_eq(r.status, 401, "a wrong token was accepted");
	h_response_free(&r);
	cr_assert_not_null(backend_field("bot-1", "admin_draining", v, sizeof(v)));
	cr_expect_str_eq(v, "false", "a refused POST changed state");
	expect_status_json("GET", "/backends", false, 200);
	expect_status_json("POST", "/backends/bot-1/drain", true, 200);
	cr_assert_not_null(backend_field("bot-1", "admin_draining", v, sizeof(v)));
	cr_expect_str_eq(v, "true");
}

/* ---- admin: drain ---- */

Test(admin, drain_keeps_new_conversations_off_and_survives_reload, .init = setup_admin,
     .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	struct h_response r;
	char live[64], backend[64], v[64], fresh[64];
	const char *victim = bots[1].name;

	/* a live conversation pinned to the victim */
	key_on("live", victim, live, sizeof(live));
	cr_assert_eq(message(live, backend, sizeof(backend)), 200);
	cr_assert_str_eq(backend, victim);

	admin_post("/backends/bot-2/drain", NULL, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	expect_json_type(&r);
	cr_expect_str_eq(h_json_field(r.body, "state", v, sizeof(v)), "draining", "%s", r.body);
	h_response_free(&r);
	cr_expect_str_eq(backend_field(victim, "state", v, sizeof(v)), "draining");
	expect_new_conversations_avoid("drained", 200, victim);
	/* the live conversation stays where its state is */
	cr_assert_eq(message(live, backend, sizeof(backend)), 200);
	cr_expect_str_eq(backend, victim, "a draining backend lost its live conversation");

	cr_assert_eq(kill(px.pid, SIGHUP), 0);
	expect_log("reload: ok");
	cr_expect_str_eq(backend_field(victim, "state", v, sizeof(v)), "draining",
	                 "the drain did not survive the reload");
	expect_new_conversations_avoid("after-hup", 50, victim);

	admin_post("/backends/bot-2/undrain", NULL, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_expect_str_eq(h_json_field(r.body, "state", v, sizeof(v)), "up", "%s", r.body);
	h_response_free(&r);
	key_on("undrained", victim, fresh, sizeof(fresh));
	cr_assert_eq(message(fresh, backend, sizeof(backend)), 200);
	cr_expect_str_eq(backend, victim, "after undrain a key hashed to %s went to %s", victim,
	                 backend);
}

/* ---- admin: reload ---- */

Test(admin, reload_with_a_broken_file_answers_errors_and_keeps_serving, .init = setup_spare,
     .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	const char *base = strrchr(px.conf, '/') + 1;
	char sections[1024], needle[600], v[64], *conf;
	bool seen[H_MAX_BOTS] = {false};
	struct h_response r;
	int distinct = 0;

	control_sections(sections, sizeof(sections), false, 0);
	conf = h_conf_text(px.port, "bogus_key = 1", sections, bots, 1);
	h_write_file(base, conf);
	free(conf);
	admin_post("/reload", NULL, &r);
	cr_assert_eq(r.status, 422, "%d %s", r.status, r.body);
	expect_json_type(&r);
	cr_assert(json_valid(r.body), "%s", r.body);
	snprintf(needle, sizeof(needle), "%s:", px.conf);
	cr_expect(strstr(r.body, needle) != NULL && strstr(r.body, "bogus_key") != NULL,
	          "errors do not name file:line and the key: %s", r.body);
	h_response_free(&r);
	for (int i = 0; i < 60; i++) {
		char conv[32], backend[64];

		snprintf(conv, sizeof(conv), "keep-%d", i);
		cr_assert_eq(message(conv, backend, sizeof(backend)), 200);
		for (int b = 0; b < nbots; b++)
			if (strcmp(bots[b].name, backend) == 0 && !seen[b]) {
				seen[b] = true;
				distinct++;
			}
	}
	cr_expect_eq(distinct, 3, "after a failed reload traffic reached %d backends", distinct);
	admin_get("/stats", &r);
	cr_expect_str_eq(h_json_field(r.body, "reloads_failed", v, sizeof(v)), "1");
	h_response_free(&r);

	conf = h_conf_text(px.port, "", sections, bots, 4);
	h_write_file(base, conf);
	free(conf);
	admin_post("/reload", NULL, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_expect_str_eq(h_json_field(r.body, "result", v, sizeof(v)), "ok");
	h_response_free(&r);
	cr_expect_not_null(backend_field("bot-4", "state", v, sizeof(v)), "bot-4 not listed");
	admin_get("/stats", &r);
	cr_expect_str_eq(h_json_field(r.body, "reloads_ok", v, sizeof(v)), "1");
	h_response_free(&r);
}

/* ---- admin: preview ---- */

static double move_field(const char *body, const char *name, const char *field)
{
	char obj[1024], v[64];

	cr_assert_not_null(object_named(body, name, obj, sizeof(obj)), "%s not in %s", name, body);
	cr_assert_not_null(h_json_field(obj, field, v, sizeof(v)), "%s lacks %s", name, field);
	return strtod(v, NULL);
}

/* /conversations/KEY for sample keys 0..SAMPLE_KEYS-1 into names. */
static void sample_placement(char names[][NAME_CAP])
{
	for (int i = 0; i < SAMPLE_KEYS; i++) {
		char key[32];

		snprintf(key, sizeof(key), "sample-%d", i);
		hashed_backend(key, names[i], NAME_CAP);
	}
}

Test(admin, preview_of_a_fourth_backend_matches_what_the_reload_does, .init = setup_spare,
     .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	static char before[SAMPLE_KEYS][NAME_CAP], after[SAMPLE_KEYS][NAME_CAP];
	char sections[1024], v[64], *cand;
	struct h_response r;
	double moved, gained;
	int changed = 0, to_new = 0;

	control_sections(sections, sizeof(sections), false, 0);
	cand = h_conf_text(px.port, "", sections, bots, 4);
	admin_post("/preview", cand, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	expect_json_type(&r);
	cr_assert(json_valid(r.body), "%s", r.body);
	cr_expect_str_eq(h_json_field(r.body, "applied", v, sizeof(v)), "false");
	cr_expect_str_eq(h_json_field(r.body, "moving_now", v, sizeof(v)), "0");
	moved = strtod(h_json_field(r.body, "moved", v, sizeof(v)), NULL);
	gained = move_field(r.body, "bot-4", "gained");
	cr_expect(fabs(moved - 0.25) < SHARE_TOLERANCE, "moved %.4f, want ~0.25", moved);
	cr_expect(fabs(gained - 0.25) < SHARE_TOLERANCE, "bot-4 gains %.4f", gained);
	for (int i = 0; i < 3; i++) {
		double lost = move_field(r.body, bots[i].name, "lost");

		cr_expect(fabs(lost - 0.25 / 3) < SHARE_TOLERANCE, "%s loses %.4f", bots[i].name,
		          lost);
	}
	h_response_free(&r);
	cr_expect_null(backend_field("bot-4", "state", v, sizeof(v)), "the preview was applied");

	sample_placement(before);
	h_write_file(strrchr(px.conf, '/') + 1, cand);
	free(cand);
	admin_post("/reload", NULL, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	h_response_free(&r);
	sample_placement(after);
	for (int i = 0; i < SAMPLE_KEYS; i++) {
		changed += strcmp(before[i], after[i]) != 0;
		to_new += strcmp(before[i], after[i]) != 0 && strcmp(after[i], "bot-4") == 0;
	}
	cr_expect(fabs((double)changed / SAMPLE_KEYS - moved) < SAMPLE_TOLERANCE,
	          "preview said %.4f moves, the reload moved %d of %d sampled keys", moved, changed,
	          SAMPLE_KEYS);
	cr_expect(fabs((double)to_new / SAMPLE_KEYS - gained) < SAMPLE_TOLERANCE,
	          "preview said bot-4 gains %.4f, it got %d of %d sampled keys", gained, to_new,
	          SAMPLE_KEYS);
}

Test(admin, preview_of_a_broken_config_lists_its_errors, .init = setup_admin, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	struct h_response r;

	admin_post("/preview", "[proxy]\nlisten = nowhere\n", &r);
	cr_assert_eq(r.status, 422, "%d %s", r.status, r.body);
	cr_assert(json_valid(r.body), "%s", r.body);
	cr_expect(strstr(r.body, "preview:2:") != NULL, "%s", r.body);
	h_response_free(&r);
	cr_expect_str_eq(backend_field("bot-1", "state", (char[32]){0}, 32), "up");
}

/* ---- admin: startup refusals ---- */

static void setup_bots_only(void)
{
	nbots = 0;
	cr_assert_eq(h_bots_start(bots, 1), 0);
	nbots = 1;
}

/* Run ringleader on conf_text to completion; exit code, output into out. */
static int run_expecting_exit(const char *conf_text, char *out, size_t cap)
{
	const char *bin = h_env("RL_BIN");
	const char *path = h_write_file("refuse.ini", conf_text);

	cr_assert_not_null(bin);
	return h_runl(out, cap, H_TIMEOUT_MS, bin, "-c", path, NULL);
}

Test(admin, public_listener_without_token_is_refused, .init = setup_bots_only, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char sections[256], out[8192], *conf;
	int rc;

	snprintf(sections, sizeof(sections), "[admin]\nlisten = 0.0.0.0:%d\ntoken =\n",
	         h_free_port());
	conf = h_conf_text(h_free_port(), "", sections, bots, 1);
	rc = run_expecting_exit(conf, out, sizeof(out));
	free(conf);
	cr_expect_eq(rc, 1, "started (or crashed) with a public admin listener and no token:\n%s",
	             out);
	cr_expect(strstr(out, "non-loopback") != NULL, "%s", out);
}

Test(admin, taken_admin_port_fails_startup, .init = setup_bots_only, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char sections[256], out[8192], needle[64], *conf;
	int rc;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	          listen(fd, 1) == 0 && getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
	snprintf(sections, sizeof(sections), "[admin]\nlisten = 127.0.0.1:%d\n",
	         ntohs(sa.sin_port));
	snprintf(needle, sizeof(needle), "admin 127.0.0.1:%d: cannot listen", ntohs(sa.sin_port));
	/* one worker, and worker threads (whose shutdown once hung on this path) */
	for (int workers = 1; workers <= 2; workers++) {
		char extra[32];
		snprintf(extra, sizeof(extra), "workers = %d\n", workers);
		conf = h_conf_text(h_free_port(), extra, sections, bots, 1);
		rc = run_expecting_exit(conf, out, sizeof(out));
		free(conf);
		cr_expect_eq(rc, 1, "workers = %d: %s", workers, out);
		cr_expect(strstr(out, needle) != NULL, "%s", out);
	}
	close(fd);
}
