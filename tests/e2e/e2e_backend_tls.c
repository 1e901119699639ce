/*
 * e2e_backend_tls — re-encryption to backends (tls = on): a front ringleader speaks TLS to
 * a backend that is itself a ringleader with a [tls] listener in front of a botsim.
 * Certificates are made at test time with the openssl CLI.
 *
 *   test ──raw HTTP──► front ringleader ──TLS (verified with ca)──► back ringleader ──► botsim
 *                                       └──plain HTTP (a second backend)──────────────► botsim
 *
 * Certificates (per test, in the scratch directory): ca.pem, a test CA; server.pem for
 * IP 127.0.0.1 signed by it; rogue.pem for 127.0.0.1 signed by another CA; otherhost.pem
 * for other.test / 127.0.0.2 signed by the test CA; garbage.pem, not a certificate.
 */
#define _GNU_SOURCE

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define TEST_TIMEOUT_S  60
#define START_ATTEMPTS  3
#define OUT_CAP         (64 * 1024)
#define TEXT_CAP        4096
#define PATH_CAP        512
#define PKI_CAP         256
#define CERT_TIMEOUT_MS 20000
#define REQUESTS        5
#define SPREAD_CONVS    12 /* conversations spread over two backends */
#define HEALTH_WAIT_MS  5000

/* A TLS-terminating ringleader in front of one botsim: the TLS backend. */
struct back {
	struct h_bot bot;
	struct h_proxy px;
	int tls_port;
	int admin_port;
};

static struct back back;
static struct h_bot plain; /* a plain second backend */
static struct h_proxy front;
static char pki[PKI_CAP];
static char ca[PATH_CAP];
static char out[OUT_CAP];

/* ---- certificates ---- */

static const char make_certs_script[] =
        "set -e\n"
        "cd \"$1\"\n"
        "ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1'\n"
        "openssl req -x509 $ec -nodes -keyout ca.key -out ca.pem -days 3 "
        "-subj /CN=ringleader-test-CA 2>/dev/null\n"
        "openssl req -x509 $ec -nodes -keyout rogue-ca.key -out rogue-ca.pem -days 3 "
        "-subj /CN=ringleader-rogue-CA 2>/dev/null\n"
        "leaf() {\n" /* file, CA file prefix, subjectAltName, serial */
        "  openssl req $ec -nodes -keyout \"$1.key\" -out \"$1.csr\" -subj /CN=backend "
        "2>/dev/null\n"
        "  printf 'subjectAltName=%s\\nbasicConstraints=CA:FALSE\\n' \"$3\" >\"$1.ext\"\n"
        "  openssl x509 -req -in \"$1.csr\" -CA \"$2.pem\" -CAkey \"$2.key\" -set_serial \"$4\" "
        "-days 2 -extfile \"$1.ext\" -out \"$1.pem\" 2>/dev/null\n"
        "  rm -f \"$1.csr\" \"$1.ext\"\n"
        "}\n"
        "leaf server ca IP:127.0.0.1 1001\n"
        "leaf rogue rogue-ca IP:127.0.0.1 1002\n"
        "leaf otherhost ca DNS:other.test,IP:127.0.0.2 1003\n"
        "printf 'not a certificate\\n' >garbage.pem\n";

static void make_certs(void)
{
	int rc;

	snprintf(pki, sizeof(pki), "%s/pki", h_tmpdir());
	snprintf(ca, sizeof(ca), "%s/ca.pem", pki);
	cr_assert_eq(mkdir(pki, 0700), 0, "mkdir %s", pki);
	rc = h_runl(out, sizeof(out), CERT_TIMEOUT_MS, "sh", "-c", make_certs_script, "sh", pki,
	            NULL);
	cr_assert_eq(rc, 0, "making test certificates failed (is openssl installed?):\n%s", out);
}

static bool out_has(const char *needle)
{
	return strstr(out, needle) != NULL;
}

/* ---- processes ---- */

static void teardown(void)
{
	int rc_front = h_proxy_stop(&front);
	int rc_back = h_proxy_stop(&back.px);

	h_bots_stop(&back.bot, 1);
	h_bots_stop(&plain, 1);
	h_stop_all();
	h_tmpdir_remove();
	cr_expect_eq(rc_front, 0, "front ringleader exited with %d (sanitizer report or crash)",
	             rc_front);
	cr_expect_eq(rc_back, 0, "back ringleader exited with %d (sanitizer report or crash)",
	             rc_back);
}

static int try_start_back(const char *cert)
{
	char sections[TEXT_CAP];
	int port = h_free_port(), rc;
	char *conf;

	back.tls_port = h_free_port();
	back.admin_port = h_free_port();
	if (port == back.tls_port || port == back.admin_port || back.tls_port == back.admin_port)
		return -1;
	snprintf(sections, sizeof(sections),
	         "[tls]\nlisten = 127.0.0.1:%d\ncert = %s/%s.pem\nkey = %s/%s.key\n"
	         "[admin]\nlisten = 127.0.0.1:%d\ntoken = back-token\n",
	         back.tls_port, pki, cert, pki, cert, back.admin_port);
	conf = h_conf_text(port, "log_level = debug", sections, &back.bot, 1);
	cr_assert_not_null(conf);
	rc = h_proxy_start(&back.px, port, conf);
	free(conf);
	if (rc == 0 && (h_wait_port(back.tls_port, H_TIMEOUT_MS) != 0 ||
	                h_wait_port(back.admin_port, H_TIMEOUT_MS) != 0)) {
		h_proxy_stop(&back.px);
		return -1;
	}
	return rc;
}

/* The TLS backend: botsim "tls-bot" behind a ringleader serving pki/CERT.pem. */
static void start_back(const char *cert)
{
	if (h_bot_start(&back.bot, "tls-bot", NULL) != 0)
		cr_assert_fail("botsim did not start (RL_BOTSIM=%s)", getenv("RL_BOTSIM"));
	for (int attempt = 0; attempt < START_ATTEMPTS; attempt++)
		if (try_start_back(cert) == 0)
			return;
	cr_assert_fail("back ringleader did not start (RL_BIN=%s; log above)", getenv("RL_BIN"));
}

/*
 * The front ringleader: [backend secure] at the back's TLS port with tls = on and ca
 * (NULL: none), then extra sections; with_plain adds the plain botsim "plain-bot".
 */
static void start_front(const char *ca_file, const char *extra, bool with_plain)
{
	char sections[TEXT_CAP];

	if (with_plain && h_bot_start(&plain, "plain-bot", NULL) != 0)
		cr_assert_fail("botsim did not start (RL_BOTSIM=%s)", getenv("RL_BOTSIM"));
	for (int attempt = 0; attempt < START_ATTEMPTS; attempt++) {
		int port = h_free_port(), rc;
		char *conf;

		snprintf(sections, sizeof(sections),
		         "%s[backend secure]\naddress = 127.0.0.1:%d\ntls = on\n%s%s\n", extra,
		         back.tls_port, ca_file != NULL ? "ca = " : "",
		         ca_file != NULL ? ca_file : "");
		conf = h_conf_text(port, "log_level = debug", sections, &plain, with_plain ? 1 : 0);
		cr_assert_not_null(conf);
		rc = h_proxy_start(&front, port, conf);
		free(conf);
		if (rc == 0)
			return;
	}
	cr_assert_fail("front ringleader did not start (RL_BIN=%s; log above)", getenv("RL_BIN"));
}

/* ---- requests ---- */

static int send_get(int fd, const char *conv)
{
	char raw[TEXT_CAP];

	snprintf(raw, sizeof(raw),
	         "GET /msg HTTP/1.1\r\nHost: front\r\nX-Conversation-ID: %s\r\n\r\n", conv);
	return h_send_str(fd, raw);
}

/* One request on fd: its status, the answering backend's name in backend ("" if none). */
static int get_on(int fd, const char *conv, char *backend, size_t cap)
{
	struct h_response r;
	int status;

	backend[0] = '\0';
	if (send_get(fd, conv) != 0 || h_read_response(fd, &r, false, H_TIMEOUT_MS) != 0)
		return -1;
	status = r.status;
	if (r.body != NULL && h_json_field(r.body, "backend", backend, cap) == NULL)
		backend[0] = '\0';
	h_response_free(&r);
	return status;
}

/* One request on a fresh connection to the front. */
static int get_once(const char *conv, char *backend, size_t cap)
{
	int fd = h_connect(front.port);
	int status;

	if (fd < 0)
		return -1;
	status = get_on(fd, conv, backend, cap);
	h_close(fd);
	return status;
}

/* A counter of the back ringleader's /metrics ("ringleader_NAME"), or -1. */
static long back_metric(const char *name)
{
	struct h_response r;
	char needle[128];
	const char *at;
	long v = -1;

	if (h_exchange(back.admin_port,
	               "GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
	               &r) != 0)
		return -1;
	snprintf(needle, sizeof(needle), "\nringleader_%s ", name);
	if (r.body != NULL && (at = strstr(r.body, needle)) != NULL)
		v = strtol(at + strlen(needle), NULL, 10);
	h_response_free(&r);
	return v;
}

/* ---- the data path ---- */

Test(backend_tls, requests_are_reencrypted_and_reuse_the_connection, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char backend[64], conv[32];
	int fd;

	make_certs();
	start_back("server");
	start_front(ca, "", false);

	fd = h_connect(front.port);
	cr_assert(fd >= 0);
	for (int i = 0; i < REQUESTS; i++) {
		cr_assert_eq(get_on(fd, "c-1", backend, sizeof(backend)), 200, "request %d", i);
		cr_expect_str_eq(backend, "tls-bot");
	}
	h_close(fd);
	for (int i = 0; i < REQUESTS; i++) {
		snprintf(conv, sizeof(conv), "c-%d", i);
		cr_expect_eq(get_once(conv, backend, sizeof(backend)), 200, "request %d", i);
	}
	/* every request went over TLS, and parked connections were reused */
	cr_expect_eq(back_metric("tls_handshakes_total"), 1,
	             "one backend connection for %d requests", 2 * REQUESTS);
	cr_expect(!h_file_contains(front.log, "is not implemented yet"), "stale warning");
}

Test(backend_tls, sessions_are_resumed_across_connections, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char backend[64];

	make_certs();
	start_back("server");
	start_front(ca, "[upstream]\nmax_idle_per_backend = 0\n", false);

	for (int i = 0; i < REQUESTS; i++)
		cr_assert_eq(get_once("c-1", backend, sizeof(backend)), 200, "request %d", i);
	long resumed = back_metric("tls_resumed_total");

	cr_expect_eq(back_metric("tls_handshakes_total"), REQUESTS, "a connection per request");
	cr_expect_geq(resumed, REQUESTS - 1, "later connections resume the first session: %ld",
	              resumed);
}

Test(backend_tls, untrusted_certificate_is_a_connect_failure, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char backend[64];

	make_certs();
	start_back("rogue");
	start_front(ca, "", false);

	cr_expect_eq(get_once("c-1", backend, sizeof(backend)), 502);
	cr_expect_eq(
	        h_wait_file_contains(front.log,
	                             "backend secure: TLS handshake failed (certificate verify "
	                             "failed: ",
	                             H_TIMEOUT_MS),
	        0, "no handshake failure logged");
	cr_expect(h_file_contains(front.log,
	                          "backend secure: connect failed (TLS handshake failed)"));
	cr_expect_eq(back_metric("tls_handshakes_total"), 0);
}

Test(backend_tls, untrusted_backend_is_retried_on_the_next, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char backend[64], conv[32];

	make_certs();
	start_back("rogue");
	start_front(ca, "[upstream]\nretries = 1\n", true);

	/* conversations spread over both backends; those placed on secure are retried */
	for (int i = 0; i < SPREAD_CONVS; i++) {
		snprintf(conv, sizeof(conv), "conv-%d", i);
		cr_expect_eq(get_once(conv, backend, sizeof(backend)), 200, "%s", conv);
		cr_expect_str_eq(backend, "plain-bot", "%s", conv);
	}
	cr_expect(h_file_contains(front.log, "backend secure: TLS handshake failed"),
	          "no conversation was placed on the TLS backend");
}

Test(backend_tls, certificate_for_another_host_is_refused, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char backend[64];

	make_certs();
	start_back("otherhost");
	start_front(ca, "", false);

	cr_expect_eq(get_once("c-1", backend, sizeof(backend)), 502);
	cr_expect_eq(h_wait_file_contains(front.log, "IP address mismatch", H_TIMEOUT_MS), 0,
	             "no host mismatch logged");
}

Test(backend_tls, no_ca_uses_the_system_store_and_refuses_a_test_ca, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char backend[64];

	make_certs();
	start_back("server");
	start_front(NULL, "", false);

	cr_expect_eq(get_once("c-1", backend, sizeof(backend)), 502);
	cr_expect_eq(h_wait_file_contains(front.log, "certificate verify failed", H_TIMEOUT_MS), 0);
}

/* Rewrite the front's config with `ca = ca_file`, SIGHUP it, and wait for the log line. */
static void reload_front_with_ca(const char *ca_file, const char *expect)
{
	char *text = h_read_file(front.conf);
	char *at, *eol;
	FILE *f;

	cr_assert_not_null(text);
	at = strstr(text, "\nca = ");
	cr_assert_not_null(at, "%s", text);
	eol = strchr(at + 1, '\n');
	f = fopen(front.conf, "w");
	cr_assert_not_null(f);
	fprintf(f, "%.*s\nca = %s%s", (int)(at - text), text, ca_file, eol != NULL ? eol : "\n");
	fclose(f);
	free(text);
	cr_assert_eq(kill(front.pid, SIGHUP), 0);
	cr_assert_eq(h_wait_file_contains(front.log, expect, H_TIMEOUT_MS), 0, "no \"%s\"", expect);
}

Test(backend_tls, reload_checks_the_ca_and_keeps_reencrypting, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char backend[64], garbage[PATH_CAP], rogue_ca[PATH_CAP];

	make_certs();
	snprintf(garbage, sizeof(garbage), "%s/garbage.pem", pki);
	snprintf(rogue_ca, sizeof(rogue_ca), "%s/rogue-ca.pem", pki);
	start_back("server");
	start_front(ca, "", false);
	cr_assert_eq(get_once("c-1", backend, sizeof(backend)), 200);

	/* a bad ca refuses the reload; the running contexts stay */
	reload_front_with_ca(garbage, "reload: failed");
	cr_expect(h_file_contains(front.log, "garbage.pem: not a PEM file of CA certificates"));
	cr_expect_eq(get_once("c-2", backend, sizeof(backend)), 200);
	cr_expect_str_eq(backend, "tls-bot");

	/* a ca that does not sign the backend applies to new connections */
	reload_front_with_ca(rogue_ca, "reload: ok");
	cr_expect_eq(get_once("c-3", backend, sizeof(backend)), 502);
	reload_front_with_ca(ca, "generation 3");
	cr_expect_eq(get_once("c-4", backend, sizeof(backend)), 200);
	cr_expect_str_eq(backend, "tls-bot");
}

/* A listener that never accepts: the kernel completes TCP handshakes, nobody speaks TLS. */
static int silent_listener(int *port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert(fd >= 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(fd, 16), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

Test(backend_tls, stalled_handshake_is_bounded_by_connect_timeout, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char backend[64];
	int lfd;
	uint64_t t0;

	make_certs();
	lfd = silent_listener(&back.tls_port);
	start_front(ca, "[upstream]\nconnect_timeout = 300ms\n", false);

	t0 = h_now_ms();
	cr_expect_eq(get_once("c-1", backend, sizeof(backend)), 502);
	cr_expect_lt(h_now_ms() - t0, 3000, "the handshake was not bounded");
	cr_expect(h_file_contains(front.log, "backend secure: connect failed (timeout)"));
	close(lfd);
}

/* ---- configuration check ---- */

static int check_ca(const char *ca_file)
{
	char sections[TEXT_CAP], path[PATH_CAP];
	const char *bin = h_env("RL_BIN");
	char *text;

	cr_assert_not_null(bin);
	snprintf(sections, sizeof(sections),
	         "[backend secure]\naddress = 127.0.0.1:18444\ntls = on\nca = %s\n", ca_file);
	text = h_conf_text(18081, "", sections, NULL, 0);
	cr_assert_not_null(text);
	snprintf(path, sizeof(path), "%s", h_write_file("check.ini", text));
	free(text);
	return h_runl(out, sizeof(out), H_TIMEOUT_MS, bin, "-t", "-c", path, NULL);
}

Test(backend_tls, check_names_a_bad_ca_file, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	char missing[PATH_CAP], garbage[PATH_CAP], needle[PATH_CAP + 64];

	make_certs();
	snprintf(missing, sizeof(missing), "%s/nope.pem", pki);
	snprintf(garbage, sizeof(garbage), "%s/garbage.pem", pki);

	cr_expect_eq(check_ca(ca), 0, "a valid ca refused:\n%s", out);
	cr_expect_eq(check_ca(missing), 1, "%s", out);
	snprintf(needle, sizeof(needle), "%s: cannot open the CA file (No such file or directory)",
	         missing);
	cr_expect(out_has(needle), "want \"%s\" in:\n%s", needle, out);
	cr_expect_eq(check_ca(garbage), 1, "%s", out);
	snprintf(needle, sizeof(needle), "%s: not a PEM file of CA certificates", garbage);
	cr_expect(out_has(needle), "want \"%s\" in:\n%s", needle, out);
}

/* ---- health checks ---- */

Test(backend_tls, health_checks_speak_tls, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	char backend[64];

	make_certs();
	start_back("server");
	start_front(ca,
	            "[health]\npath = /healthz\ninterval = 100ms\ntimeout = 90ms\nrise = 2\n"
	            "fall = 2\npassive_failures = 0\n",
	            false);

	cr_assert_eq(h_wait_file_contains(front.log, "backend secure: UP", HEALTH_WAIT_MS), 0,
	             "TLS backend never came up");
	cr_expect_geq(back_metric("tls_handshakes_total"), 2, "checks did not use TLS");
	cr_expect_eq(get_once("c-1", backend, sizeof(backend)), 200);
	cr_expect_str_eq(backend, "tls-bot");
}

Test(backend_tls, health_checks_refuse_an_untrusted_backend, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	make_certs();
	start_back("rogue");
	start_front(ca,
	            "[health]\npath = /healthz\ninterval = 100ms\ntimeout = 90ms\nrise = 2\n"
	            "fall = 2\npassive_failures = 0\n",
	            false);

	/* six check intervals: long enough for rise = 2 had the checks passed */
	cr_expect_neq(h_wait_file_contains(front.log, "backend secure: UP", 600), 0,
	              "an untrusted TLS backend came up");
	cr_expect_eq(back_metric("tls_handshakes_total"), 0);
}
