/*
 * e2e_proxy — the real ringleader in front of real botsim backends, driven over real
 * sockets (and with curl): conversation affinity, balance, keep-alive and pipelining,
 * the headers a bot receives, request and response bodies (chunked, Content-Length,
 * SSE), missing-key policies, backend failure, signals (graceful stop, reload) and the
 * access log.
 *
 *   test ──raw socket / curl──► ringleader (127.0.0.1:free port) ──► botsim bot-1..bot-n
 *
 * Every test starts its processes in .init and stops them by PID in .fini, which
 * criterion runs even when an assertion failed.
 */
#define _GNU_SOURCE

#include <criterion/criterion.h>

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define NBOTS_DEFAULT   3
#define START_ATTEMPTS  3          /* proxy starts tried (a free port can be raced away) */
#define TEST_TIMEOUT_S  40         /* criterion kills a test that runs longer */
#define BIG_TIMEOUT_MS  20000      /* bound for multi-megabyte transfers (sanitizer build) */
#define BIG_BODY_LIMIT  "16m"      /* max_body_size for the upload tests */
#define CHUNKED_UPLOAD  (1u << 20) /* bytes */
#define CL_UPLOAD       (2u << 20) /* bytes */
#define DOWNLOAD_BYTES  5000000u
#define PATTERN_PERIOD  10 /* botsim /big: byte k is '0' + k % 10 */
#define SSE_EVENTS      5
#define SSE_INTERVAL_MS 300
#define SSE_MIN_SPREAD  600 /* ms between first and last event that rules out buffering */

static struct h_bot bots[H_MAX_BOTS];
static int nbots;
static struct h_proxy px;

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

/* Start n bots and a proxy in front of the first `in_conf` of them. Fails the test
 * (after stopping what started) when anything does not come up. */
static void start_env(int n, int in_conf, const char *proxy_extra, const char *sections)
{
	nbots = 0;
	if (h_bots_start(bots, n) != 0)
		cr_assert_fail("botsim did not start (RL_BOTSIM=%s)", getenv("RL_BOTSIM"));
	nbots = n;
	/* the free port can be taken by a parallel test before the proxy binds it: retry */
	for (int attempt = 0; attempt < START_ATTEMPTS; attempt++) {
		int port = h_free_port();
		char *conf = h_conf_text(port, proxy_extra, sections, bots, in_conf);
		int rc;

		cr_assert_not_null(conf);
		rc = h_proxy_start(&px, port, conf);
		free(conf);
		if (rc == 0)
			return;
	}
	h_bots_stop(bots, nbots);
	h_stop_all();
	cr_assert_fail("ringleader did not start (RL_BIN=%s; log above)", getenv("RL_BIN"));
}

static void setup_default(void)
{
	start_env(NBOTS_DEFAULT, NBOTS_DEFAULT, "", "");
}

static void setup_big_bodies(void)
{
	start_env(NBOTS_DEFAULT, NBOTS_DEFAULT, "max_body_size = " BIG_BODY_LIMIT, "");
}

static void setup_reject(void)
{
	start_env(NBOTS_DEFAULT, NBOTS_DEFAULT, "", "[routing]\nmissing_key = reject\n");
}

static void setup_least_loaded(void)
{
	start_env(NBOTS_DEFAULT, NBOTS_DEFAULT, "", "[routing]\nmissing_key = least_loaded\n");
}

static void setup_random(void)
{
	start_env(NBOTS_DEFAULT, NBOTS_DEFAULT, "", "[routing]\nmissing_key = random\n");
}

static void setup_key_header_off(void)
{
	start_env(NBOTS_DEFAULT, NBOTS_DEFAULT, "", "[routing]\nkey_header =\n");
}

static void setup_no_idle(void)
{
	start_env(NBOTS_DEFAULT, NBOTS_DEFAULT, "",
	          "[upstream]\nmax_idle_per_backend = 0\nretries = 1\n");
}

static void setup_spare_bot(void)
{
	start_env(NBOTS_DEFAULT + 1, NBOTS_DEFAULT, "", "");
}

static char access_log_path[512];

static void setup_access_log(void)
{
	char extra[600];

	snprintf(access_log_path, sizeof(access_log_path), "%s/access.log", h_tmpdir());
	snprintf(extra, sizeof(extra), "access_log = %s", access_log_path);
	start_env(NBOTS_DEFAULT, NBOTS_DEFAULT, extra, "");
}

/* ---- helpers ---- */

/* Sends GET path with X-Conversation-ID conv (NULL: none) and extra raw header lines
 * (each ending in CRLF; may be NULL) on fd. 0 / -1. */
static int send_get(int fd, const char *path, const char *conv, const char *extra_headers)
{
	char req[2048];

	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: test.local\r\n%s%s%s%s\r\n", path,
	         conv != NULL ? "X-Conversation-ID: " : "", conv != NULL ? conv : "",
	         conv != NULL ? "\r\n" : "", extra_headers != NULL ? extra_headers : "");
	return h_send_str(fd, req);
}

/* send_get without extra headers, then read its response. 0 / -1. */
static int get(int fd, const char *path, const char *conv, struct h_response *r)
{
	if (send_get(fd, path, conv, NULL) != 0) {
		memset(r, 0, sizeof(*r));
		return -1;
	}
	return h_read_response(fd, r, false, H_TIMEOUT_MS);
}

/* A conversation message on a fresh connection; the answering backend's name into out. */
static int message(const char *conv, char *backend, size_t cap, long *seq)
{
	struct h_response r;
	char num[32];
	int fd = h_connect(px.port);
	int rc = -1;

	if (fd < 0)
		return -1;
	if (get(fd, "/msg", conv, &r) == 0 && r.status == 200 &&
	    h_json_field(r.body, "backend", backend, cap) != NULL) {
		rc = 0;
		if (seq != NULL)
			*seq = h_json_field(r.body, "seq", num, sizeof(num)) != NULL
			               ? strtol(num, NULL, 10)
			               : -1;
	}
	h_response_free(&r);
	h_close(fd);
	return rc;
}

static int bot_index(const char *name)
{
	for (int i = 0; i < nbots; i++)
		if (strcmp(bots[i].name, name) == 0)
			return i;
	return -1;
}

/* Value of the header `name` as the bot saw it in an /echo body ("h: Name: value"),
 * or NULL; *count gets how many times it arrived. */
static const char *echo_header(const char *body, const char *name, char *out, size_t cap,
                               int *count)
{
	size_t nlen = strlen(name);
	const char *found = NULL;
	int n = 0;

	for (const char *l = body; l != NULL && *l != '\0';) {
		const char *end = strchr(l, '\n');
		size_t len = end != NULL ? (size_t)(end - l) : strlen(l);

		if (len > 3 + nlen + 2 && strncmp(l, "h: ", 3) == 0 &&
		    strncasecmp(l + 3, name, nlen) == 0 && l[3 + nlen] == ':' &&
		    l[3 + nlen + 1] == ' ') {
			if (found == NULL && cap > 0) {
				size_t vlen = len - (3 + nlen + 2);

				vlen = vlen < cap - 1 ? vlen : cap - 1;
				memcpy(out, l + 3 + nlen + 2, vlen);
				out[vlen] = '\0';
				found = out;
			}
			n++;
		}
		l = end != NULL ? end + 1 : NULL;
	}
	if (count != NULL)
		*count = n;
	return found;
}

static bool is_hex32(const char *s)
{
	if (strlen(s) != 32)
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') ||
		      (*s >= 'A' && *s <= 'F')))
			return false;
	return true;
}

/* Deterministic test bytes and their sum mod 2^32 (botsim's body-sum). */
static uint32_t fill_bytes(unsigned char *p, size_t n, uint32_t seed)
{
	uint32_t x = seed, sum = 0;

	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (unsigned char)(x >> 16);
		sum += p[i];
	}
	return sum;
}

/* GET /echo with extra raw header lines on fd and read the answer. 0 / -1. */
static int echo(int fd, const char *extra_headers, struct h_response *r)
{
	if (send_get(fd, "/echo", NULL, extra_headers) != 0) {
		memset(r, 0, sizeof(*r));
		return -1;
	}
	return h_read_response(fd, r, false, H_TIMEOUT_MS);
}

/* ---- affinity and balance ---- */

Test(affinity, same_conversation_keepalive_same_backend, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char first[64] = "", backend[64], num[32];
	int fd = h_connect(px.port);

	cr_assert_geq(fd, 0);
	for (int i = 1; i <= 50; i++) {
		struct h_response r;

		cr_assert_eq(get(fd, "/chat", "conv-sticky", &r), 0, "request %d: no response", i);
		cr_assert_eq(r.status, 200, "request %d: status %d\n%s", i, r.status, r.head);
		cr_assert_not_null(h_json_field(r.body, "backend", backend, sizeof(backend)),
		                   "request %d: body %s", i, r.body);
		if (i == 1)
			strcpy(first, backend);
		cr_assert_str_eq(backend, first, "request %d went to %s, the first to %s", i,
		                 backend, first);
		cr_assert_not_null(h_json_field(r.body, "seq", num, sizeof(num)));
		cr_assert_eq(strtol(num, NULL, 10), i, "request %d: seq %s (the bot lost count)", i,
		             num);
		cr_assert_not_null(h_json_field(r.body, "conv", num, sizeof(num)));
		cr_assert_str_eq(num, "conv-sticky");
		cr_assert(!r.closed, "request %d: the proxy closed a keep-alive connection", i);
		h_response_free(&r);
	}
	h_close(fd);
}

Test(affinity, same_conversation_separate_curl_connections, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char url[128], out[4096], backend[64], first[64] = "", seq[32];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", px.port);
	for (int i = 1; i <= 5; i++) {
		int rc = h_runl(out, sizeof(out), H_TIMEOUT_MS, "curl", "-sS", "--max-time", "5",
		                "-H", "X-Conversation-ID: curl-conv", url, NULL);

		cr_assert_eq(rc, 0, "curl %d exited %d: %s", i, rc, out);
		cr_assert_not_null(h_json_field(out, "backend", backend, sizeof(backend)),
		                   "curl %d: %s", i, out);
		if (i == 1)
			strcpy(first, backend);
		cr_assert_str_eq(backend, first, "connection %d went to %s, the first to %s", i,
		                 backend, first);
		cr_assert_not_null(h_json_field(out, "seq", seq, sizeof(seq)));
		cr_assert_eq(strtol(seq, NULL, 10), i, "connection %d: seq %s", i, seq);
	}
}

Test(balance, distinct_conversations_spread_over_all_backends, .init = setup_default,
     .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	int count[H_MAX_BOTS] = {0};
	const int total = 300;
	int fd = h_connect(px.port);

	cr_assert_geq(fd, 0);
	for (int i = 0; i < total; i++) {
		struct h_response r;
		char conv[32], backend[64];
		int b;

		snprintf(conv, sizeof(conv), "spread-%d", i);
		cr_assert_eq(get(fd, "/m", conv, &r), 0, "request %d: no response", i);
		cr_assert_eq(r.status, 200, "request %d: status %d", i, r.status);
		cr_assert_not_null(h_json_field(r.body, "backend", backend, sizeof(backend)));
		b = bot_index(backend);
		cr_assert_geq(b, 0, "unknown backend %s", backend);
		count[b]++;
		h_response_free(&r);
	}
	for (int i = 0; i < nbots; i++)
		cr_expect_geq(count[i], total * 15 / 100,
		              "%s got %d of %d conversations (%d/%d/%d)", bots[i].name, count[i],
		              total, count[0], count[1], count[2]);
	h_close(fd);
}

/* ---- connection handling ---- */

Test(connection, keepalive_reuse_20_requests, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	int fd = h_connect(px.port);

	cr_assert_geq(fd, 0);
	for (int i = 0; i < 20; i++) {
		struct h_response r;
		char path[64], want[80], v[64];

		snprintf(path, sizeof(path), "/echo?i=%d", i);
		cr_assert_eq(get(fd, path, "ka", &r), 0, "request %d got no response", i);
		cr_assert_eq(r.status, 200, "request %d: %d", i, r.status);
		snprintf(want, sizeof(want), "uri %s\n", path);
		cr_assert(strstr(r.body, want) != NULL, "request %d did not reach the bot:\n%s", i,
		          r.body);
		cr_assert(strstr(r.body, "backend bot-") != NULL);
		cr_assert(h_header(&r, "Connection", v, sizeof(v)) == NULL ||
		                  strcasestr(v, "close") == NULL,
		          "request %d: the proxy announced Connection: %s", i, v);
		cr_assert(!r.closed, "request %d: connection closed", i);
		h_response_free(&r);
	}
	h_close(fd);
}

Test(connection, pipelined_requests_answered_in_order, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char batch[4096] = "";
	size_t off = 0;
	int fd = h_connect(px.port);

	cr_assert_geq(fd, 0);
	/* the first is slow: later answers must still wait for it */
	for (int i = 0; i < 5; i++)
		off += (size_t)snprintf(
		        batch + off, sizeof(batch) - off,
		        "GET %s HTTP/1.1\r\nHost: t\r\nX-Conversation-ID: pipe-%d\r\n\r\n",
		        i == 0 ? "/slow?ms=200" : "/m", i);
	cr_assert_eq(h_send(fd, batch, off), 0);
	for (int i = 0; i < 5; i++) {
		struct h_response r;
		char conv[64], want[32];

		cr_assert_eq(h_read_response(fd, &r, false, H_TIMEOUT_MS), 0,
		             "pipelined response %d missing (status %d)", i, r.status);
		cr_assert_eq(r.status, 200, "response %d: %d", i, r.status);
		snprintf(want, sizeof(want), "pipe-%d", i);
		cr_assert_not_null(h_json_field(r.body, "conv", conv, sizeof(conv)), "%s", r.body);
		cr_assert_str_eq(conv, want, "response %d out of order", i);
		h_response_free(&r);
	}
	h_close(fd);
}

Test(connection, head_request_has_no_body_and_connection_is_reusable, .init = setup_default,
     .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	struct h_response r;
	char seq[32];
	int fd = h_connect(px.port);

	cr_assert_geq(fd, 0);
	cr_assert_eq(h_send_str(fd, "HEAD /hello HTTP/1.1\r\nHost: t\r\n"
	                            "X-Conversation-ID: head-conv\r\n\r\n"),
	             0);
	cr_assert_eq(h_read_response(fd, &r, true, H_TIMEOUT_MS), 0);
	cr_assert_eq(r.status, 200, "%s", r.head);
	cr_assert_eq(r.body_len, 0);
	h_response_free(&r);
	/* a body sent after the HEAD response would show up as garbage here */
	cr_assert_eq(get(fd, "/hello", "head-conv", &r), 0, "no response after HEAD: %s", r.head);
	cr_assert_eq(r.status, 200, "%s", r.head);
	cr_assert_not_null(h_json_field(r.body, "seq", seq, sizeof(seq)), "%s", r.body);
	cr_assert_str_eq(seq, "2");
	h_response_free(&r);
	h_close(fd);
}

Test(connection, http10_without_host_is_answered_then_closed, .init = setup_default,
     .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	struct h_response r;
	char conv[32];
	int fd = h_connect(px.port);

	cr_assert_geq(fd, 0);
	cr_assert_eq(h_send_str(fd, "GET /ten HTTP/1.0\r\nX-Conversation-ID: ten\r\n\r\n"), 0);
	cr_assert_eq(h_read_response(fd, &r, false, H_TIMEOUT_MS), 0, "status %d", r.status);
	cr_assert_eq(r.status, 200, "%s", r.head);
	cr_assert_not_null(h_json_field(r.body, "conv", conv, sizeof(conv)), "%s", r.body);
	cr_assert_str_eq(conv, "ten");
	cr_assert(r.closed || h_wait_closed(fd, H_TIMEOUT_MS) == 0,
	          "an HTTP/1.0 request without keep-alive left the connection open");
	h_response_free(&r);
	h_close(fd);
}

/* ---- headers the bot receives ---- */

Test(headers, forwarded_for_proto_request_id_key_and_host, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	struct h_response r;
	char v[256];
	int n, fd = h_connect(px.port);

	cr_assert_geq(fd, 0);
	cr_assert_eq(h_send_str(fd, "GET /echo HTTP/1.1\r\nHost: bots.example:8080\r\n"
	                            "X-Conversation-ID: conv-hdr\r\n\r\n"),
	             0);
	cr_assert_eq(h_read_response(fd, &r, false, H_TIMEOUT_MS), 0);
	cr_assert_eq(r.status, 200);
	cr_assert_not_null(echo_header(r.body, "X-Forwarded-For", v, sizeof(v), &n), "%s", r.body);
	cr_assert_str_eq(v, "127.0.0.1");
	cr_assert_eq(n, 1);
	cr_assert_not_null(echo_header(r.body, "X-Forwarded-Proto", v, sizeof(v), NULL));
	cr_assert_str_eq(v, "http");
	cr_assert_not_null(echo_header(r.body, "X-Request-ID", v, sizeof(v), &n), "%s", r.body);
	cr_assert(is_hex32(v), "generated X-Request-ID '%s' is not 32 hex digits", v);
	cr_assert_eq(n, 1);
	cr_assert_not_null(echo_header(r.body, "X-Conversation-Key", v, sizeof(v), &n), "%s",
	                   r.body);
	cr_assert_str_eq(v, "conv-hdr");
	cr_assert_eq(n, 1);
	cr_assert_not_null(echo_header(r.body, "Host", v, sizeof(v), &n));
	cr_assert_str_eq(v, "bots.example:8080");
	cr_assert_eq(n, 1);
	h_response_free(&r);
	h_close(fd);
}

Test(headers, forwarded_for_appends_and_request_id_is_kept, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	struct h_response r;
	char v[256], first_id[64];
	int n, fd = h_connect(px.port);

	cr_assert_geq(fd, 0);
	cr_assert_eq(echo(fd,
	                  "X-Conversation-ID: xff\r\nX-Forwarded-For: 1.2.3.4\r\n"
	                  "X-Request-ID: client-rid-0042\r\n",
	                  &r),
	             0);
	cr_assert_eq(r.status, 200);
	cr_assert_not_null(echo_header(r.body, "X-Forwarded-For", v, sizeof(v), &n), "%s", r.body);
	cr_assert_str_eq(v, "1.2.3.4, 127.0.0.1");
	cr_assert_eq(n, 1, "X-Forwarded-For arrived %d times", n);
	cr_assert_not_null(echo_header(r.body, "X-Request-ID", v, sizeof(v), &n));
	cr_assert_str_eq(v, "client-rid-0042");
	cr_assert_eq(n, 1);
	h_response_free(&r);

	/* two requests without an id get two different ids */
	cr_assert_eq(echo(fd, "X-Conversation-ID: xff\r\n", &r), 0);
	cr_assert_not_null(echo_header(r.body, "X-Request-ID", first_id, sizeof(first_id), NULL));
	h_response_free(&r);
	cr_assert_eq(echo(fd, "X-Conversation-ID: xff\r\n", &r), 0);
	cr_assert_not_null(echo_header(r.body, "X-Request-ID", v, sizeof(v), NULL));
	cr_assert(is_hex32(first_id) && is_hex32(v));
	cr_assert_str_neq(first_id, v, "the same X-Request-ID was generated twice");
	h_response_free(&r);
	h_close(fd);
}

Test(headers, hop_by_hop_fields_are_removed, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	struct h_response r;
	char v[256];
	int fd = h_connect(px.port);

	cr_assert_geq(fd, 0);
	cr_assert_eq(echo(fd,
	                  "X-Conversation-ID: hop\r\nConnection: close, X-Secret\r\n"
	                  "X-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\n"
	                  "Proxy-Authorization: Basic Zm9vOmJhcg==\r\nX-Visible: yes\r\n",
	                  &r),
	             0);
	cr_assert_eq(r.status, 200);
	cr_assert_not_null(echo_header(r.body, "X-Visible", v, sizeof(v), NULL),
	                   "an end-to-end field was dropped:\n%s", r.body);
	cr_assert_null(echo_header(r.body, "X-Secret", v, sizeof(v), NULL),
	               "a field named in Connection reached the bot:\n%s", r.body);
	cr_assert_null(echo_header(r.body, "Keep-Alive", v, sizeof(v), NULL), "%s", r.body);
	cr_assert_null(echo_header(r.body, "TE", v, sizeof(v), NULL), "%s", r.body);
	cr_assert_null(echo_header(r.body, "Proxy-Authorization", v, sizeof(v), NULL), "%s",
	               r.body);
	cr_assert(echo_header(r.body, "Connection", v, sizeof(v), NULL) == NULL ||
	                  strcasestr(v, "X-Secret") == NULL,
	          "the client's Connection field reached the bot: %s", v);
	/* the client asked to close: the proxy answers and closes */
	cr_assert(r.closed || h_wait_closed(fd, H_TIMEOUT_MS) == 0,
	          "Connection: close from the client was not honoured");
	h_response_free(&r);
	h_close(fd);
}

Test(headers, client_conversation_key_is_replaced, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	struct h_response r;
	char v[256];
	int n, fd = h_connect(px.port);

	cr_assert_geq(fd, 0);
	cr_assert_eq(echo(fd, "X-Conversation-Key: forged\r\nX-Conversation-ID: real\r\n", &r), 0);
	cr_assert_eq(r.status, 200);
	cr_assert_not_null(echo_header(r.body, "X-Conversation-Key", v, sizeof(v), &n), "%s",
	                   r.body);
	cr_assert_str_eq(v, "real");
	cr_assert_eq(n, 1, "X-Conversation-Key arrived %d times:\n%s", n, r.body);
	h_response_free(&r);

	/* no key at all: the forged one must not pass either */
	cr_assert_eq(echo(fd, "X-Conversation-Key: forged\r\n", &r), 0);
	cr_assert_eq(r.status, 200);
	cr_assert_null(echo_header(r.body, "X-Conversation-Key", v, sizeof(v), NULL),
	               "a client's X-Conversation-Key passed through:\n%s", r.body);
	h_response_free(&r);
	h_close(fd);
}

Test(headers, key_header_off_sends_no_key_header, .init = setup_key_header_off, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	struct h_response r;
	char v[256];
	int fd = h_connect(px.port);

	cr_assert_geq(fd, 0);
	cr_assert_eq(echo(fd, "X-Conversation-ID: k-off\r\n", &r), 0);
	cr_assert_eq(r.status, 200);
	cr_assert_null(echo_header(r.body, "X-Conversation-Key", v, sizeof(v), NULL),
	               "key_header is off but the bot got X-Conversation-Key: %s", v);
	cr_assert_not_null(echo_header(r.body, "X-Conversation-ID", v, sizeof(v), NULL));
	cr_assert_str_eq(v, "k-off");
	h_response_free(&r);
	h_close(fd);
}

/* ---- bodies ---- */

Test(bodies, chunked_upload_1mb, .init = setup_big_bodies, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	static const size_t sizes[] = {1, 1000, 65536, 12345, 300000, 7, 4096};
	unsigned char *data = malloc(CHUNKED_UPLOAD);
	uint32_t sum = fill_bytes(data, CHUNKED_UPLOAD, 7);
	struct h_response r;
	char want[64];
	size_t off = 0;
	int fd = h_connect(px.port);

	cr_assert_geq(fd, 0);
	cr_assert_eq(h_send_str(fd, "POST /echo HTTP/1.1\r\nHost: t\r\nX-Conversation-ID: up\r\n"
	                            "Content-Type: application/octet-stream\r\n"
	                            "Transfer-Encoding: chunked\r\n\r\n"),
	             0);
	for (size_t i = 0; off < CHUNKED_UPLOAD; i++) {
		size_t n = sizes[i % (sizeof(sizes) / sizeof(sizes[0]))];
		char line[32];

		n = n < CHUNKED_UPLOAD - off ? n : CHUNKED_UPLOAD - off;
		snprintf(line, sizeof(line), "%zx\r\n", n);
		cr_assert_eq(h_send_str(fd, line), 0, "send failed at %zu", off);
		cr_assert_eq(h_send(fd, data + off, n), 0, "send failed at %zu", off);
		cr_assert_eq(h_send_str(fd, "\r\n"), 0);
		off += n;
	}
	cr_assert_eq(h_send_str(fd, "0\r\n\r\n"), 0);
	cr_assert_eq(h_read_response(fd, &r, false, BIG_TIMEOUT_MS), 0);
	cr_assert_eq(r.status, 200, "%s\n%s", r.head, r.body);
	snprintf(want, sizeof(want), "body-bytes %u\n", CHUNKED_UPLOAD);
	cr_assert(strstr(r.body, want) != NULL, "want %s got:\n%.600s", want, r.body);
	snprintf(want, sizeof(want), "body-sum %u\n", sum);
	cr_assert(strstr(r.body, want) != NULL, "want %s got:\n%.600s", want, r.body);
	h_response_free(&r);
	free(data);
	h_close(fd);
}

Test(bodies, content_length_upload_2mb, .init = setup_big_bodies, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	unsigned char *data = malloc(CL_UPLOAD);
	uint32_t sum = fill_bytes(data, CL_UPLOAD, 11);
	struct h_response r;
	char head[256], want[64];
	int fd = h_connect(px.port);

	cr_assert_geq(fd, 0);
	snprintf(head, sizeof(head),
	         "POST /echo HTTP/1.1\r\nHost: t\r\nX-Conversation-ID: up2\r\n"
	         "Content-Length: %u\r\n\r\n",
	         CL_UPLOAD);
	cr_assert_eq(h_send_str(fd, head), 0);
	cr_assert_eq(h_send(fd, data, CL_UPLOAD), 0);
	cr_assert_eq(h_read_response(fd, &r, false, BIG_TIMEOUT_MS), 0);
	cr_assert_eq(r.status, 200, "%s\n%s", r.head, r.body);
	snprintf(want, sizeof(want), "body-bytes %u\n", CL_UPLOAD);
	cr_assert(strstr(r.body, want) != NULL, "want %s got:\n%.600s", want, r.body);
	snprintf(want, sizeof(want), "body-sum %u\n", sum);
	cr_assert(strstr(r.body, want) != NULL, "want %s got:\n%.600s", want, r.body);
	h_response_free(&r);
	/* the connection is still usable after a large body */
	cr_assert_eq(get(fd, "/after", "up2", &r), 0);
	cr_assert_eq(r.status, 200);
	h_response_free(&r);
	free(data);
	h_close(fd);
}

static void check_pattern(const struct h_response *r, size_t want)
{
	cr_assert_eq(r->body_len, want, "got %zu bytes, want %zu", r->body_len, want);
	for (size_t k = 0; k < r->body_len; k++)
		if (r->body[k] != (char)('0' + k % PATTERN_PERIOD))
			cr_assert_fail("byte %zu is 0x%02x, want '%c'", k,
			               (unsigned char)r->body[k], (char)('0' + k % PATTERN_PERIOD));
}

Test(bodies, chunked_download_5mb, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	struct h_response r;
	char path[64];
	int fd = h_connect(px.port);

	cr_assert_geq(fd, 0);
	snprintf(path, sizeof(path), "/big?bytes=%u", DOWNLOAD_BYTES);
	cr_assert_eq(send_get(fd, path, "dl", NULL), 0);
	cr_assert_eq(h_read_response(fd, &r, false, BIG_TIMEOUT_MS), 0, "status %d, %zu bytes",
	             r.status, r.body_len);
	cr_assert_eq(r.status, 200);
	cr_assert(r.chunked, "a chunked response lost its framing:\n%s", r.head);
	check_pattern(&r, DOWNLOAD_BYTES);
	h_response_free(&r);
	cr_assert_eq(get(fd, "/after", "dl", &r), 0, "connection unusable after the download");
	cr_assert_eq(r.status, 200);
	h_response_free(&r);
	h_close(fd);
}

Test(bodies, content_length_download_5mb, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	struct h_response r;
	char path[64], v[32], want[32];
	int fd = h_connect(px.port);

	cr_assert_geq(fd, 0);
	snprintf(path, sizeof(path), "/big?bytes=%u&cl=1", DOWNLOAD_BYTES);
	cr_assert_eq(send_get(fd, path, "dl", NULL), 0);
	cr_assert_eq(h_read_response(fd, &r, false, BIG_TIMEOUT_MS), 0, "status %d, %zu bytes",
	             r.status, r.body_len);
	cr_assert_eq(r.status, 200);
	cr_assert_not_null(h_header(&r, "Content-Length", v, sizeof(v)), "%s", r.head);
	snprintf(want, sizeof(want), "%u", DOWNLOAD_BYTES);
	cr_assert_str_eq(v, want);
	check_pattern(&r, DOWNLOAD_BYTES);
	h_response_free(&r);
	h_close(fd);
}

Test(bodies, sse_events_arrive_incrementally, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	static char raw[65536];
	char path[64];
	size_t len = 0;
	int events = 0;
	uint64_t t0, t_first = 0, t_last = 0;
	int fd = h_connect(px.port);

	cr_assert_geq(fd, 0);
	snprintf(path, sizeof(path), "/sse?n=%d&interval_ms=%d", SSE_EVENTS, SSE_INTERVAL_MS);
	t0 = h_now_ms();
	cr_assert_eq(send_get(fd, path, "sse", "Accept: text/event-stream\r\n"), 0);
	while (events < SSE_EVENTS) {
		ssize_t n = h_recv(fd, raw + len, sizeof(raw) - 1 - len, H_TIMEOUT_MS);
		int seen = 0;

		cr_assert_gt(n, 0, "stream ended or stalled after %d events:\n%s", events, raw);
		len += (size_t)n;
		raw[len] = '\0';
		for (const char *p = raw; (p = strstr(p, "data:")) != NULL; p++)
			seen++;
		if (seen > 0 && t_first == 0)
			t_first = h_now_ms();
		if (seen >= SSE_EVENTS)
			t_last = h_now_ms();
		events = seen;
	}
	cr_assert(strncmp(raw, "HTTP/1.1 200", 12) == 0, "%s", raw);
	cr_assert(strcasestr(raw, "text/event-stream") != NULL, "%s", raw);
	/* events are 300 ms apart: a proxy that buffers the stream delivers all at once */
	cr_assert_geq(t_last - t_first, SSE_MIN_SPREAD,
	              "first event after %llu ms, last after %llu ms: the stream was buffered",
	              (unsigned long long)(t_first - t0), (unsigned long long)(t_last - t0));
	h_close(fd);
}

/* ---- missing key ---- */

Test(missing_key, reject_answers_400_json, .init = setup_reject, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	struct h_response r;
	char v[128];

	cr_assert_eq(h_exchange(px.port, "GET /nokey HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
	cr_assert_eq(r.status, 400, "%s", r.head);
	cr_assert_not_null(h_json_field(r.body, "error", v, sizeof(v)), "%s", r.body);
	cr_assert_gt(strlen(v), 0);
	cr_assert_not_null(h_json_field(r.body, "request_id", v, sizeof(v)), "%s", r.body);
	cr_assert_gt(strlen(v), 0);
	cr_assert_not_null(h_header(&r, "Connection", v, sizeof(v)), "%s", r.head);
	cr_assert(strcasestr(v, "close") != NULL);
	cr_assert_null(h_header(&r, "X-Backend", v, sizeof(v)), "a bot answered: %s", v);
	h_response_free(&r);

	/* with a key the same proxy serves */
	cr_assert_eq(h_exchange(px.port,
	                        "GET /k HTTP/1.1\r\nHost: t\r\nX-Conversation-ID: k\r\n\r\n", &r),
	             0);
	cr_assert_eq(r.status, 200);
	h_response_free(&r);
}

Test(missing_key, least_loaded_answers_200, .init = setup_least_loaded, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	struct h_response r;
	char v[64];

	cr_assert_eq(h_exchange(px.port, "GET /nokey HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
	cr_assert_eq(r.status, 200, "%s", r.head);
	cr_assert_not_null(h_json_field(r.body, "backend", v, sizeof(v)), "%s", r.body);
	cr_assert_geq(bot_index(v), 0);
	h_response_free(&r);
}

Test(missing_key, random_spreads_keyless_requests, .init = setup_random, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	bool seen[H_MAX_BOTS] = {false};
	int distinct = 0, fd = h_connect(px.port);

	cr_assert_geq(fd, 0);
	for (int i = 0; i < 60; i++) {
		struct h_response r;
		char v[64];
		int b;

		cr_assert_eq(get(fd, "/nokey", NULL, &r), 0, "request %d", i);
		cr_assert_eq(r.status, 200, "request %d: %s", i, r.head);
		cr_assert_not_null(h_json_field(r.body, "backend", v, sizeof(v)));
		b = bot_index(v);
		cr_assert_geq(b, 0);
		if (!seen[b])
			distinct++;
		seen[b] = true;
		h_response_free(&r);
	}
	cr_assert_gt(distinct, 1, "60 keyless requests all went to one backend");
	h_close(fd);
}

/* ---- backend failure ---- */

/* Finds a conversation answered by bots[victim] and one answered by another bot. */
static void pick_conversations(int victim, char *on_victim, char *elsewhere, size_t cap,
                               char elsewhere_bot[64], long *elsewhere_seq)
{
	on_victim[0] = elsewhere[0] = '\0';
	for (int i = 0; i < 200 && (on_victim[0] == '\0' || elsewhere[0] == '\0'); i++) {
		char conv[32], backend[64];
		long seq;

		snprintf(conv, sizeof(conv), "fail-%d", i);
		cr_assert_eq(message(conv, backend, sizeof(backend), &seq), 0, "conv %s", conv);
		if (bot_index(backend) == victim && on_victim[0] == '\0') {
			snprintf(on_victim, cap, "%s", conv);
		} else if (bot_index(backend) != victim && elsewhere[0] == '\0') {
			snprintf(elsewhere, cap, "%s", conv);
			snprintf(elsewhere_bot, 64, "%s", backend);
			*elsewhere_seq = seq;
		}
	}
	cr_assert(on_victim[0] != '\0' && elsewhere[0] != '\0',
	          "200 conversations did not cover %s and another bot", bots[victim].name);
}

/* One request for conv on a fresh connection; status and backend (or "") out. */
static int timed_message(const char *conv, char *backend, size_t cap, uint64_t *ms)
{
	struct h_response r;
	uint64_t t0 = h_now_ms();
	int fd = h_connect(px.port), status;

	cr_assert_geq(fd, 0);
	cr_assert_eq(get(fd, "/msg", conv, &r), 0, "conv %s: no response (hang?) status %d", conv,
	             r.status);
	*ms = h_now_ms() - t0;
	status = r.status;
	if (h_json_field(r.body, "backend", backend, cap) == NULL)
		backend[0] = '\0';
	if (status == 502) {
		char v[128];

		cr_assert_not_null(h_json_field(r.body, "error", v, sizeof(v)), "%s", r.body);
		cr_assert_not_null(h_json_field(r.body, "request_id", v, sizeof(v)), "%s", r.body);
	}
	h_response_free(&r);
	h_close(fd);
	return status;
}

Test(failure, killed_backend_is_retried_elsewhere, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char on_victim[32], elsewhere[32], other_bot[64], backend[64];
	long seq0, seq;
	const int victim = 1;

	pick_conversations(victim, on_victim, elsewhere, sizeof(on_victim), other_bot, &seq0);
	h_stop(bots[victim].pid, SIGKILL, H_TIMEOUT_MS);
	bots[victim].pid = 0;

	for (int i = 0; i < 5; i++) {
		uint64_t ms;
		int status = timed_message(on_victim, backend, sizeof(backend), &ms);

		cr_assert_lt(ms, 3000, "request %d after the kill took %llu ms", i,
		             (unsigned long long)ms);
		/* the first may have been written to a pooled connection of the dead bot (never
		 * replayed, so 502); every later one meets a refused connect and is retried */
		if (i == 0 && status == 502)
			continue;
		cr_assert_eq(status, 200, "request %d for %s after killing %s: %d", i, on_victim,
		             bots[victim].name, status);
		cr_assert_str_neq(backend, bots[victim].name);
		cr_assert_geq(bot_index(backend), 0, "unknown backend '%s'", backend);
	}
	/* other conversations are unaffected: same bot, counter continues */
	cr_assert_eq(message(elsewhere, backend, sizeof(backend), &seq), 0);
	cr_assert_str_eq(backend, other_bot);
	cr_assert_eq(seq, seq0 + 1);
}

Test(failure, killed_backend_without_pooling_always_retried, .init = setup_no_idle,
     .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	char on_victim[32], elsewhere[32], other_bot[64], backend[64];
	long seq0;
	const int victim = 0;

	pick_conversations(victim, on_victim, elsewhere, sizeof(on_victim), other_bot, &seq0);
	h_stop(bots[victim].pid, SIGKILL, H_TIMEOUT_MS);
	bots[victim].pid = 0;
	for (int i = 0; i < 5; i++) {
		uint64_t ms;
		int status = timed_message(on_victim, backend, sizeof(backend), &ms);

		cr_assert_eq(status, 200, "request %d: connect refused was not retried (%d)", i,
		             status);
		cr_assert_str_neq(backend, bots[victim].name);
		cr_assert_lt(ms, 3000);
	}
}

Test(failure, all_backends_dead_502_then_recovers, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char conv_of[H_MAX_BOTS][32] = {{0}}, backend[64];
	int found = 0;

	for (int i = 0; i < 200 && found < nbots; i++) {
		char conv[32];
		int b;

		snprintf(conv, sizeof(conv), "dead-%d", i);
		cr_assert_eq(message(conv, backend, sizeof(backend), NULL), 0);
		b = bot_index(backend);
		if (b >= 0 && conv_of[b][0] == '\0') {
			snprintf(conv_of[b], sizeof(conv_of[b]), "%s", conv);
			found++;
		}
	}
	cr_assert_eq(found, nbots);
	for (int i = 0; i < nbots; i++) {
		h_stop(bots[i].pid, SIGKILL, H_TIMEOUT_MS);
		bots[i].pid = 0;
	}
	for (int i = 0; i < nbots; i++) {
		uint64_t ms;
		int status = timed_message(conv_of[i], backend, sizeof(backend), &ms);

		cr_assert_eq(status, 502, "conv %s with every backend dead: %d", conv_of[i],
		             status);
		cr_assert_lt(ms, 2000, "a 502 for refused connections took %llu ms",
		             (unsigned long long)ms);
	}
	/* bot-1 comes back on its port: its conversations are served again */
	cr_assert_eq(h_bot_restart(&bots[0], NULL), 0);
	for (int i = 0; i < 3; i++) {
		uint64_t ms;
		int status = timed_message(conv_of[0], backend, sizeof(backend), &ms);

		cr_assert_eq(status, 200, "after restarting bot-1, request %d: %d", i, status);
		cr_assert_str_eq(backend, bots[0].name);
	}
}

/* ---- signals ---- */

Test(signals, sigterm_idle_exits_0_quickly, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	uint64_t t0 = h_now_ms();
	int status = h_stop(px.pid, SIGTERM, H_TIMEOUT_MS);
	uint64_t ms = h_now_ms() - t0;

	px.pid = 0;
	cr_assert_neq(status, -1, "ringleader did not exit within %d ms of SIGTERM", H_TIMEOUT_MS);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status 0x%x", status);
	cr_assert_lt(ms, 2000, "an idle proxy took %llu ms to stop", (unsigned long long)ms);
}

Test(signals, sigterm_closes_idle_keepalive_connections, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	struct h_response r;
	int status, fd = h_connect(px.port);
	uint64_t t0, ms;

	cr_assert_geq(fd, 0);
	cr_assert_eq(get(fd, "/m", "idle", &r), 0);
	cr_assert_eq(r.status, 200);
	h_response_free(&r);
	t0 = h_now_ms();
	status = h_stop(px.pid, SIGTERM, H_TIMEOUT_MS);
	ms = h_now_ms() - t0;
	px.pid = 0;
	cr_assert_neq(status, -1, "an idle keep-alive client kept the proxy from stopping");
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status 0x%x", status);
	cr_assert_lt(ms, 3000, "took %llu ms", (unsigned long long)ms);
	cr_assert_eq(h_wait_closed(fd, H_TIMEOUT_MS), 0);
	h_close(fd);
}

Test(signals, sigterm_finishes_in_flight_request, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	struct h_response r;
	char conv[32];
	int status, arrived = -1, fd = h_connect(px.port);
	uint64_t deadline;

	cr_assert_geq(fd, 0);
	cr_assert_eq(send_get(fd, "/slow?ms=1000", "slow-stop", NULL), 0);
	/* readiness: the bot logged the request, so it is in flight through the proxy */
	deadline = h_now_ms() + H_TIMEOUT_MS;
	while (arrived < 0 && h_now_ms() < deadline)
		for (int i = 0; i < nbots && arrived < 0; i++)
			if (h_wait_file_contains(bots[i].log, "GET /slow?ms=1000", 1) == 0)
				arrived = i;
	cr_assert_geq(arrived, 0, "the slow request never reached a bot");
	cr_assert_eq(kill(px.pid, SIGTERM), 0);
	cr_assert_eq(h_read_response(fd, &r, false, H_TIMEOUT_MS), 0,
	             "the in-flight request was cut off by SIGTERM (status %d)", r.status);
	cr_assert_eq(r.status, 200, "%s", r.head);
	cr_assert_not_null(h_json_field(r.body, "conv", conv, sizeof(conv)), "%s", r.body);
	cr_assert_str_eq(conv, "slow-stop");
	h_response_free(&r);
	h_close(fd); /* the proxy may linger for our FIN before it exits */
	status = h_wait_exit(px.pid, H_TIMEOUT_MS);
	cr_assert_neq(status, -1, "ringleader still runs after its last request finished");
	px.pid = 0;
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status 0x%x", status);
}

Test(signals, sighup_adds_a_backend, .init = setup_spare_bot, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	const char *base = strrchr(px.conf, '/') + 1;
	char *conf = h_conf_text(px.port, "", "", bots, NBOTS_DEFAULT + 1);
	const char *new_bot = bots[NBOTS_DEFAULT].name;
	bool reached = false;
	uint64_t deadline;
	int i = 0;

	h_write_file(base, conf);
	free(conf);
	cr_assert_eq(kill(px.pid, SIGHUP), 0);
	/* bounded poll: new conversations until one lands on the added bot */
	deadline = h_now_ms() + H_TIMEOUT_MS;
	while (!reached && h_now_ms() < deadline) {
		char conv[32], backend[64];

		snprintf(conv, sizeof(conv), "hup-%d", i++);
		cr_assert_eq(message(conv, backend, sizeof(backend), NULL), 0,
		             "request %d around the reload failed", i);
		reached = strcmp(backend, new_bot) == 0;
	}
	cr_assert(reached, "after SIGHUP %d new conversations never reached %s", i, new_bot);
	cr_assert_eq(h_wait_exit(px.pid, 0), -1, "the proxy exited after the reload");
}

Test(signals, sighup_with_broken_config_keeps_serving, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	const char *base = strrchr(px.conf, '/') + 1;
	char *conf = h_conf_text(px.port, "bogus_key = 1", "", bots, 1);
	const char *bad = strstr(conf, "bogus_key");
	char needle[600];
	bool seen[H_MAX_BOTS] = {false};
	int line = 1, distinct = 0;

	for (const char *p = conf; p < bad; p++)
		line += *p == '\n';
	h_write_file(base, conf);
	free(conf);
	cr_assert_eq(kill(px.pid, SIGHUP), 0);
	snprintf(needle, sizeof(needle), "%s:%d:", px.conf, line);
	cr_assert_eq(h_wait_file_contains(px.log, needle, H_TIMEOUT_MS), 0,
	             "no reload error naming %s in the log", needle);
	cr_assert_eq(h_wait_exit(px.pid, 0), -1, "the proxy exited on a broken reload");
	/* the old configuration (three backends) still routes */
	for (int i = 0; i < 60; i++) {
		char conv[32], backend[64];
		int b;

		snprintf(conv, sizeof(conv), "keep-%d", i);
		cr_assert_eq(message(conv, backend, sizeof(backend), NULL), 0, "request %d", i);
		b = bot_index(backend);
		cr_assert_geq(b, 0);
		if (!seen[b])
			distinct++;
		seen[b] = true;
	}
	cr_assert_eq(distinct, NBOTS_DEFAULT,
	             "after a failed reload traffic reached %d backends, want the old %d", distinct,
	             NBOTS_DEFAULT);
}

/* ---- access log ---- */

Test(access_log, request_line_is_logged, .init = setup_access_log, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	struct h_response r;
	char backend[64], *text, *line, *end;

	cr_assert_eq(
	        h_exchange(px.port,
	                   "GET /acc/path?x=1 HTTP/1.1\r\nHost: t\r\nX-Conversation-ID: acc\r\n"
	                   "X-Request-ID: rid-acc-42\r\n\r\n",
	                   &r),
	        0);
	cr_assert_eq(r.status, 200);
	cr_assert_not_null(h_json_field(r.body, "backend", backend, sizeof(backend)));
	h_response_free(&r);
	cr_assert_eq(h_wait_file_contains(access_log_path, "rid-acc-42", H_TIMEOUT_MS), 0,
	             "no access log line with the request id in %s", access_log_path);
	text = h_read_file(access_log_path);
	cr_assert_not_null(text);
	line = strstr(text, "rid-acc-42");
	while (line > text && line[-1] != '\n')
		line--;
	end = strchr(line, '\n');
	if (end != NULL)
		*end = '\0';
	cr_expect(strstr(line, "GET") != NULL, "method missing: %s", line);
	cr_expect(strstr(line, "/acc/path") != NULL, "path missing: %s", line);
	cr_expect(strstr(line, " 200 ") != NULL, "status missing: %s", line);
	cr_expect(strstr(line, backend) != NULL, "backend %s missing: %s", backend, line);
	free(text);
}

/* ---- a real client ---- */

Test(curl, get_and_upload, .init = setup_big_bodies, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	const size_t size = 1536 * 1024; /* over curl's Expect: 100-continue threshold */
	unsigned char *data = malloc(size);
	uint32_t sum = fill_bytes(data, size, 3);
	char url[128], out[8192], v[64], want[64], *file;
	int rc;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", px.port);
	rc = h_runl(out, sizeof(out), H_TIMEOUT_MS, "curl", "-sS", "--max-time", "5", "-H",
	            "X-Conversation-ID: x", url, NULL);
	cr_assert_eq(rc, 0, "curl: %s", out);
	cr_assert_not_null(h_json_field(out, "conv", v, sizeof(v)), "%s", out);
	cr_assert_str_eq(v, "x");

	{
		char path[512];
		FILE *f;

		snprintf(path, sizeof(path), "%s/upload.bin", h_tmpdir());
		f = fopen(path, "wb");
		cr_assert_not_null(f);
		cr_assert_eq(fwrite(data, 1, size, f), size);
		fclose(f);
		file = strdup(path);
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", px.port);
	rc = h_runl(out, sizeof(out), BIG_TIMEOUT_MS, "curl", "-sS", "--max-time", "15",
	            "--http1.1", "-T", file, "-H", "X-Conversation-ID: up", url, NULL);
	cr_assert_eq(rc, 0, "curl -T: %s", out);
	cr_assert(strstr(out, "method PUT\n") != NULL, "%s", out);
	snprintf(want, sizeof(want), "body-bytes %zu\n", size);
	cr_assert(strstr(out, want) != NULL, "want %s got:\n%s", want, out);
	snprintf(want, sizeof(want), "body-sum %u\n", sum);
	cr_assert(strstr(out, want) != NULL, "want %s got:\n%s", want, out);
	free(file);
	free(data);
}
