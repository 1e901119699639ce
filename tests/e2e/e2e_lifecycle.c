/*
 * e2e_lifecycle — the "no dropped conversations" contract of DESIGN.md, on the real
 * binary: pins hold through draining and removal, a conversation that must move says
 * where it came from, a drained backend is reported as such, and at the drain deadline
 * open event streams and WebSocket tunnels end cleanly rather than by a reset.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "harness.h"

#define TOKEN          "lifecycle-token"
#define TEST_TIMEOUT_S 40
#define KEY_TRIES      200  /* keys tried to find one that lands on a given backend */
#define CUT_WAIT_MS    8000 /* drain_timeout (1s) + a tick + slack for a loaded machine */

static struct h_bot bots[3];
static struct h_proxy px;
static int admin_port;

static void start(const char *routing)
{
	char sections[512], *conf;
	int port;

	cr_assert_eq(h_bots_start(bots, 3), 0, "botsim did not start");
	admin_port = h_free_port();
	port = h_free_port();
	snprintf(sections, sizeof(sections),
	         "[routing]\n%s\n[admin]\nlisten = 127.0.0.1:%d\ntoken = " TOKEN "\n", routing,
	         admin_port);
	conf = h_conf_text(port, "", sections, bots, 3);
	cr_assert_eq(h_proxy_start(&px, port, conf), 0, "ringleader did not start");
	free(conf);
	cr_assert_eq(h_wait_port(admin_port, H_TIMEOUT_MS), 0);
}

static void setup_bots(void)
{
	cr_assert_eq(h_bots_start(bots, 3), 0, "botsim did not start");
}

/* Proxy on the running bots with extra [proxy] lines and extra sections (admin added). */
static void start_custom(const char *proxy_extra, const char *sections)
{
	char all[768], *conf;
	int port = h_free_port();

	admin_port = h_free_port();
	snprintf(all, sizeof(all), "%s[admin]\nlisten = 127.0.0.1:%d\ntoken = " TOKEN "\n",
	         sections, admin_port);
	conf = h_conf_text(port, proxy_extra, all, bots, 3);
	cr_assert_eq(h_proxy_start(&px, port, conf), 0, "ringleader did not start");
	free(conf);
	cr_assert_eq(h_wait_port(admin_port, H_TIMEOUT_MS), 0);
}

static void setup_deadline(void)
{
	start("drain_timeout = 1s\naffinity_ttl = 1h");
}

static void setup_default(void)
{
	start("");
}

static void teardown(void)
{
	int rc = h_proxy_stop(&px);

	h_bots_stop(bots, 3);
	h_stop_all();
	h_tmpdir_remove();
	cr_expect_eq(rc, 0, "ringleader exited with %d (sanitizer report or crash)", rc);
}

/* One request for conversation key to path; the answering backend into backend. */
static int send_message(const char *path, const char *key, char *backend, size_t cap,
                        struct h_response *keep)
{
	char raw[512];
	struct h_response r;

	snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: t\r\nX-Conversation-ID: %s\r\n\r\n",
	         path, key);
	if (h_exchange(px.port, raw, &r) != 0)
		return -1;
	if (h_header(&r, "X-Backend", backend, cap) == NULL)
		backend[0] = '\0';
	int status = r.status;
	if (keep != NULL)
		*keep = r;
	else
		h_response_free(&r);
	return status;
}

/* A key whose conversation is pinned (by a first message) on backend `name`. */
static void key_on(const char *name, char *key, size_t cap)
{
	char backend[64];

	for (int i = 0; i < KEY_TRIES; i++) {
		snprintf(key, cap, "conv-%s-%d", name, i);
		cr_assert_eq(send_message("/", key, backend, sizeof(backend), NULL), 200);
		if (strcmp(backend, name) == 0)
			return;
	}
	cr_assert_fail("no key landed on %s in %d tries", name, KEY_TRIES);
}

static void admin_post(const char *path)
{
	char raw[256];
	struct h_response r;

	snprintf(raw, sizeof(raw),
	         "POST %s HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " TOKEN
	         "\r\nContent-Length: 0\r\n\r\n",
	         path);
	cr_assert_eq(h_exchange(admin_port, raw, &r), 0);
	cr_assert_eq(r.status, 200, "POST %s: %d %s", path, r.status, r.body);
	h_response_free(&r);
}

/* The lifecycle state /backends reports for name, into out. */
static const char *state_of(const char *name, char *out, size_t cap)
{
	struct h_response r;
	const char *at;

	out[0] = '\0';
	if (h_exchange(admin_port, "GET /backends HTTP/1.1\r\nHost: a\r\n\r\n", &r) != 0)
		return out;
	char needle[96];
	snprintf(needle, sizeof(needle), "\"name\":\"%s\"", name);
	at = r.body != NULL ? strstr(r.body, needle) : NULL;
	if (at != NULL)
		h_json_field(at, "state", out, cap);
	h_response_free(&r);
	return out;
}

static bool wait_state(const char *name, const char *want, int timeout_ms)
{
	char state[32];
	uint64_t end = h_now_ms() + (uint64_t)timeout_ms;

	while (h_now_ms() < end) {
		if (strcmp(state_of(name, state, sizeof(state)), want) == 0)
			return true;
		struct timespec poll = {0, 20 * 1000 * 1000};
		nanosleep(&poll, NULL);
	}
	return false;
}

Test(lifecycle, event_stream_ends_with_a_drain_event_at_the_deadline, .init = setup_deadline,
     .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	char key[64], raw[256], first[256] = "";
	int fd;

	key_on("bot-2", key, sizeof(key));
	fd = h_connect(px.port);
	cr_assert_geq(fd, 0);
	snprintf(raw, sizeof(raw),
	         "GET /sse?n=1000&interval_ms=100 HTTP/1.1\r\nHost: t\r\nX-Conversation-ID: "
	         "%s\r\n\r\n",
	         key);
	cr_assert_eq(h_send_str(fd, raw), 0);
	/* the stream is flowing before the drain starts */
	cr_assert_gt(h_recv(fd, first, sizeof(first) - 1, H_TIMEOUT_MS), 0);

	admin_post("/backends/bot-2/drain");
	/* The stream keeps going past the drain; at drain_timeout it gets a last event, the
	 * chunked body is terminated properly, and the connection closes. */
	static char rest[1 << 20];
	ssize_t got = h_read_until_close(fd, rest, sizeof(rest) - 1, CUT_WAIT_MS);
	cr_assert_gt(got, 0, "nothing after the drain");
	rest[got] = '\0';
	char *drain = strstr(rest, "event: ringleader-drain");
	cr_assert_not_null(drain, "no drain event before the close");
	cr_expect_not_null(strstr(drain, "\r\n0\r\n\r\n"), "the chunked body was not terminated");
	cr_expect_not_null(strstr(first, "HTTP/1.1 200"), "%s", first);
	h_close(fd);
	char state[32];
	cr_expect(wait_state("bot-2", "drained", H_TIMEOUT_MS), "bot-2 is %s, not drained",
	          state_of("bot-2", state, sizeof(state)));
}

/* A masked client frame (RFC 6455 §5.3) carrying text. */
static size_t ws_frame(const char *text, unsigned char *out)
{
	size_t n = strlen(text);
	const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};

	out[0] = 0x81;
	out[1] = (unsigned char)(0x80 | n);
	memcpy(out + 2, mask, 4);
	for (size_t i = 0; i < n; i++)
		out[6 + i] = (unsigned char)text[i] ^ mask[i % 4];
	return 6 + n;
}

Test(lifecycle, websocket_gets_close_1001_at_the_deadline, .init = setup_deadline, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char key[64], raw[512], head[1024];
	unsigned char frame[64], echo[64], close_frame[16];
	size_t n;
	ssize_t got;
	int fd;

	key_on("bot-3", key, sizeof(key));
	fd = h_connect(px.port);
	cr_assert_geq(fd, 0);
	snprintf(raw, sizeof(raw),
	         "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	         "X-Conversation-ID: %s\r\n\r\n",
	         key);
	cr_assert_eq(h_send_str(fd, raw), 0);
	got = h_recv(fd, head, sizeof(head) - 1, H_TIMEOUT_MS);
	cr_assert_gt(got, 0);
	head[got] = '\0';
	cr_assert_neq(strstr(head, " 101 "), NULL, "no 101: %s", head);

	n = ws_frame("hello", frame);
	cr_assert_eq(h_send(fd, frame, n), 0);
	size_t have = 0;
	while (have < n && (got = h_recv(fd, echo + have, n - have, H_TIMEOUT_MS)) > 0)
		have += (size_t)got;
	cr_assert_eq(have, n, "echo through the tunnel");
	cr_assert_eq(memcmp(echo, frame, n), 0);

	admin_post("/backends/bot-3/drain");
	have = 0;
	while (have < 4 &&
	       (got = h_recv(fd, close_frame + have, sizeof(close_frame) - have, CUT_WAIT_MS)) > 0)
		have += (size_t)got;
	cr_assert_geq(have, 4, "no close frame at the drain deadline");
	cr_expect_eq(close_frame[0], 0x88, "opcode %02x is not close", close_frame[0]);
	cr_expect_eq(close_frame[1], 0x02);
	cr_expect_eq(close_frame[2] << 8 | close_frame[3], 1001, "close code");
	cr_expect_eq(h_wait_closed(fd, H_TIMEOUT_MS), 0, "the proxy did not close after 1001");
	h_close(fd);
}

Test(lifecycle, a_moved_conversation_says_where_it_came_from, .init = setup_default,
     .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	char key[64], backend[64], moved[64];
	struct h_response r;

	key_on("bot-1", key, sizeof(key));
	cr_assert_eq(h_stop(bots[0].pid, SIGKILL, H_TIMEOUT_MS) >= 0, 1);
	bots[0].pid = 0;
	/* the connect fails, the request is retried elsewhere and the pin moves with it */
	cr_assert_eq(send_message("/echo", key, backend, sizeof(backend), &r), 200);
	cr_expect_str_neq(backend, "bot-1");
	cr_expect_neq(strstr(r.body, "X-Conversation-Moved-From: bot-1"), NULL,
	              "the new backend was not told: %.400s", r.body);
	h_response_free(&r);
	/* the next message follows the new pin and is not "moved" again */
	char again[64];
	cr_assert_eq(send_message("/echo", key, again, sizeof(again), &r), 200);
	cr_expect_str_eq(again, backend, "the moved conversation did not stay on its new pin");
	cr_expect_null(strstr(r.body, "Moved-From"), "moved twice: %.400s", r.body);
	h_response_free(&r);
	(void)moved;
}

Test(lifecycle, drain_without_pins_is_drained_and_removal_is_forgotten, .init = setup_default,
     .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	char state[32], *conf;

	/* nothing is pinned to bot-3 yet: draining it leaves nothing to wait for */
	admin_post("/backends/bot-3/drain");
	cr_expect(wait_state("bot-3", "drained", H_TIMEOUT_MS), "bot-3 is %s",
	          state_of("bot-3", state, sizeof(state)));

	/* bot-2 removed from the file: draining, then drained, then gone after a reload */
	char sections[256];
	snprintf(sections, sizeof(sections), "[admin]\nlisten = 127.0.0.1:%d\ntoken = " TOKEN "\n",
	         admin_port);
	struct h_bot keep[2] = {bots[0], bots[2]};
	conf = h_conf_text(px.port, "", sections, keep, 2);
	h_write_file("ringleader.conf.new", conf);
	cr_assert_eq(rename(h_write_file("ringleader.conf.new", conf), px.conf), 0);
	free(conf);
	cr_assert_eq(kill(px.pid, SIGHUP), 0);
	cr_expect(wait_state("bot-2", "removed", H_TIMEOUT_MS), "bot-2 is %s",
	          state_of("bot-2", state, sizeof(state)));
	cr_assert_eq(kill(px.pid, SIGHUP), 0);
	cr_assert(h_wait_file_contains(px.log, "backend bot-2: removed", H_TIMEOUT_MS) == 0,
	          "bot-2 was not forgotten at the next reload");
}

/* Replace the running config with text, then SIGHUP and wait for the reload to apply. */
static void reload_with(const char *text, unsigned nth_reload)
{
	char needle[64];

	cr_assert_eq(rename(h_write_file("ringleader.conf.new", text), px.conf), 0);
	cr_assert_eq(kill(px.pid, SIGHUP), 0);
	snprintf(needle, sizeof(needle), "generation %u", nth_reload + 1);
	cr_assert_eq(h_wait_file_contains(px.log, needle, H_TIMEOUT_MS), 0, "reload %u not applied",
	             nth_reload);
}

/* The test config with [proxy] listen set to `listen` (malloc'ed). */
static char *conf_listening(const char *listen, const char *sections)
{
	char *base = h_conf_text(px.port, "", sections, bots, 3), *line, *out;
	size_t cap;

	cr_assert_not_null(base);
	line = strstr(base, "listen = ");
	cr_assert_not_null(line);
	cap = strlen(base) + strlen(listen) + 16;
	out = malloc(cap);
	cr_assert_not_null(out);
	snprintf(out, cap, "%.*slisten = %s%s", (int)(line - base), base, listen,
	         strchr(line, '\n'));
	free(base);
	return out;
}

Test(lifecycle, reload_opens_new_listeners_and_closes_removed_ones, .init = setup_default,
     .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	char sections[256], listen[128], backend[64], raw[256];
	struct h_response r;
	int second = h_free_port(), kept_fd;

	snprintf(sections, sizeof(sections), "[admin]\nlisten = 127.0.0.1:%d\ntoken = " TOKEN "\n",
	         admin_port);
	/* a keep-alive client on the original port, held across both reloads */
	kept_fd = h_connect(px.port);
	cr_assert_geq(kept_fd, 0);
	snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: t\r\nX-Conversation-ID: held\r\n\r\n");
	cr_assert_eq(h_send_str(kept_fd, raw), 0);
	cr_assert_eq(h_read_response(kept_fd, &r, false, H_TIMEOUT_MS), 0);
	cr_assert_eq(r.status, 200);
	h_response_free(&r);

	/* add a second listener */
	snprintf(listen, sizeof(listen), "127.0.0.1:%d, 127.0.0.1:%d", px.port, second);
	char *conf = conf_listening(listen, sections);
	reload_with(conf, 1);
	free(conf);
	cr_assert_eq(h_wait_port(second, H_TIMEOUT_MS), 0, "the new listener never accepted");
	int old_port = px.port;
	px.port = second;
	cr_expect_eq(send_message("/", "via-second", backend, sizeof(backend), NULL), 200);

	/* drop the original listener: new connections are refused, the held one goes on */
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", second);
	conf = conf_listening(listen, sections);
	reload_with(conf, 2);
	free(conf);
	cr_assert_eq(h_wait_file_contains(px.log, "closed (removed from the config)", H_TIMEOUT_MS),
	             0);
	int fd = h_connect(old_port);
	cr_expect(fd < 0 || h_wait_closed(fd, 1000) == 0, "the removed listener still accepts");
	h_close(fd);
	cr_assert_eq(h_send_str(kept_fd, raw), 0);
	cr_assert_eq(h_read_response(kept_fd, &r, false, H_TIMEOUT_MS), 0,
	             "a connection from the removed listener was cut");
	cr_expect_eq(r.status, 200);
	h_response_free(&r);
	h_close(kept_fd);
}

Test(lifecycle, a_stalled_upload_is_the_clients_408_not_the_backends_504, .init = setup_bots,
     .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	char key[64], backend[64], state[32];
	struct h_response r;
	int fd;

	start_custom(
	        "client_idle_timeout = 1s\n",
	        "[upstream]\nresponse_timeout = 300ms\n[health]\npath =\npassive_failures = 1\n");
	key_on("bot-1", key, sizeof(key));
	fd = h_connect(px.port);
	cr_assert_geq(fd, 0);
	char raw[256];
	snprintf(raw, sizeof(raw),
	         "POST / HTTP/1.1\r\nHost: t\r\nX-Conversation-ID: %s\r\nContent-Length: 100\r\n"
	         "\r\nabc",
	         key);
	cr_assert_eq(h_send_str(fd, raw), 0);
	cr_assert_eq(h_read_response(fd, &r, false, H_TIMEOUT_MS), 0);
	cr_expect_eq(r.status, 408, "a stalled upload got %d: %s", r.status, r.body);
	h_response_free(&r);
	h_close(fd);
	/* the backend was never at fault: still up, the conversation still there */
	cr_expect_str_eq(state_of("bot-1", state, sizeof(state)), "up");
	cr_assert_eq(send_message("/", key, backend, sizeof(backend), NULL), 200);
	cr_expect_str_eq(backend, "bot-1");
}

Test(lifecycle, a_second_instance_on_the_same_port_refuses_to_start, .init = setup_bots,
     .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	char out[8192], sections[128], *conf;
	const char *path;
	int rc;

	/* both with worker threads, whose per-worker listeners use SO_REUSEPORT */
	start_custom("workers = 2\n", "");
	snprintf(sections, sizeof(sections), "[admin]\nlisten = 127.0.0.1:%d\n", h_free_port());
	conf = h_conf_text(px.port, "workers = 2\n", sections, bots, 3);
	path = h_write_file("second.ini", conf);
	free(conf);
	rc = h_runl(out, sizeof(out), H_TIMEOUT_MS, h_env("RL_BIN"), "-c", path, NULL);
	cr_expect_eq(rc, 1, "a second instance started on the same port: %s", out);
	cr_expect_not_null(strstr(out, "cannot listen"), "%s", out);
}
