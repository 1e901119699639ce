/*
 * e2e_tls — TLS termination as a client meets it: the real ringleader with a [tls]
 * listener in front of a real botsim, certificates made at test time with the openssl
 * CLI, driven with curl, `openssl s_client` and a small OpenSSL client of our own (for
 * held-open connections and timing).
 *
 *   test ──curl / s_client / tconn──► ringleader 127.0.0.1:TLS port ──► botsim bot-1
 *        ──raw socket───────────────► ringleader 127.0.0.1:plain port ─┘
 *
 * Certificates (per test, in the scratch directory): a test CA; server.pem for
 * localhost/127.0.0.1 (serial 1001); server2.pem, the same names (serial 2002) for the
 * reload tests; expired.pem; sni/a.test (RSA), sni/ *.b.test and sni/_.c.test (the two
 * wildcard spellings); other.key, a key that matches nothing.
 */
#define _GNU_SOURCE

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define TEST_TIMEOUT_S    60
#define START_ATTEMPTS    3
#define OUT_CAP           (64 * 1024)
#define CMD_MAX           4096
#define ARGS_MAX          1536 /* s_client arguments */
#define PATH_CAP          512
#define PKI_CAP           256   /* leaves room for file names in a PATH_CAP buffer */
#define CERT_TIMEOUT_MS   20000 /* making every key and certificate */
#define TCONN_BUF         (64 * 1024)
#define SERIAL_SERVER     1001
#define SERIAL_SERVER2    2002
#define SSE_EVENTS        4
#define SSE_INTERVAL_MS   300
#define SSE_MIN_SPREAD_MS 600 /* first → last event; buffering would make it ~0 */
#define WORKER_HANDSHAKES 8
#define BIG_BYTES         16000000 /* more than the socket buffers hold */
#define BIG_BYTES_TEXT    "16000000"
#define BIG_PERIOD        10 /* botsim /big: byte k is '0' + k % 10 */
#define SMALL_RCVBUF      4096
#define SHORT_TIMEOUT     "1s" /* header_timeout and client_idle_timeout */

static struct h_bot bot;
static struct h_proxy px;
static int tls_port;
static char pki[PKI_CAP]; /* certificate directory */
static char ca[PATH_CAP]; /* pki/ca.pem */
static char out[OUT_CAP];

/* ---- certificates ---- */

static const char make_certs_script[] =
        "set -e\n"
        "cd \"$1\"\n"
        "ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1'\n"
        "openssl req -x509 $ec -nodes -keyout ca.key -out ca.pem -days 3 "
        "-subj /CN=ringleader-test-CA 2>/dev/null\n"
        "leaf() {\n" /* file, key spec, CN, subjectAltName, serial, days */
        "  openssl req $2 -nodes -keyout \"$1.key\" -out \"$1.csr\" -subj \"/CN=$3\" 2>/dev/null\n"
        "  printf 'subjectAltName=%s\\nbasicConstraints=CA:FALSE\\n' \"$4\" >\"$1.ext\"\n"
        "  openssl x509 -req -in \"$1.csr\" -CA ca.pem -CAkey ca.key -set_serial \"$5\" "
        "-days \"$6\" -extfile \"$1.ext\" -out \"$1.pem\" 2>/dev/null\n"
        "  rm -f \"$1.csr\" \"$1.ext\"\n"
        "}\n"
        "leaf server \"$ec\" localhost DNS:localhost,IP:127.0.0.1 1001 2\n"
        "leaf server2 \"$ec\" localhost DNS:localhost,IP:127.0.0.1 2002 2\n"
        "leaf expired \"$ec\" localhost DNS:localhost 3003 -1\n"
        "mkdir -p sni\n"
        "leaf sni/a.test '-newkey rsa:2048' a.test DNS:a.test 4004 2\n"
        "leaf 'sni/*.b.test' \"$ec\" '*.b.test' 'DNS:*.b.test' 5005 2\n"
        "leaf sni/_.c.test \"$ec\" '*.c.test' 'DNS:*.c.test' 6006 2\n"
        "openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:prime256v1 -out other.key\n";

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

/* Copy pki/from over pki/to (atomically, as an operator's deploy would). */
static void install(const char *from, const char *to)
{
	char cmd[CMD_MAX];

	snprintf(cmd, sizeof(cmd), "cd '%s' && cp '%s' '%s.tmp' && mv '%s.tmp' '%s'", pki, from, to,
	         to, to);
	cr_assert_eq(h_runl(out, sizeof(out), H_TIMEOUT_MS, "sh", "-c", cmd, NULL), 0, "%s", out);
}

/* ---- processes ---- */

static void teardown(void)
{
	int rc = h_proxy_stop(&px);

	h_bots_stop(&bot, 1);
	h_stop_all();
	h_tmpdir_remove();
	cr_expect_eq(rc, 0, "ringleader exited with %d (sanitizer report or crash; log above)", rc);
}

/* The [tls] section for port with the default pair and the sni folder, plus extra. */
static void tls_section(char *buf, size_t cap, int port, const char *extra)
{
	snprintf(buf, cap,
	         "[tls]\nlisten = 127.0.0.1:%d\ncert = %s/server.pem\nkey = %s/server.key\n"
	         "sni = %s/sni\n%s",
	         port, pki, pki, pki, extra);
}

static int try_start(const char *proxy_extra, const char *tls_extra)
{
	char sections[CMD_MAX];
	int port = h_free_port(), rc;
	char *conf;

	tls_port = h_free_port();
	if (port == tls_port)
		return -1;
	tls_section(sections, sizeof(sections), tls_port, tls_extra);
	conf = h_conf_text(port, proxy_extra, sections, &bot, 1);
	cr_assert_not_null(conf);
	rc = h_proxy_start(&px, port, conf);
	free(conf);
	if (rc == 0 && h_wait_port(tls_port, H_TIMEOUT_MS) != 0) {
		h_proxy_stop(&px);
		return -1;
	}
	return rc;
}

/* Certificates, one bot, and a proxy with a plain and a TLS listener. */
static void start_env(const char *proxy_extra, const char *tls_extra)
{
	make_certs();
	if (h_bot_start(&bot, "bot-1", NULL) != 0)
		cr_assert_fail("botsim did not start (RL_BOTSIM=%s)", getenv("RL_BOTSIM"));
	for (int attempt = 0; attempt < START_ATTEMPTS; attempt++)
		if (try_start(proxy_extra, tls_extra) == 0)
			return;
	h_bots_stop(&bot, 1);
	h_stop_all();
	cr_assert_fail("ringleader did not start (RL_BIN=%s; log above)", getenv("RL_BIN"));
}

static void setup_default(void)
{
	start_env("log_level = debug", "");
}

static void setup_tls13(void)
{
	start_env("log_level = debug", "min_version = TLSv1.3\n");
}

static void setup_workers(void)
{
	start_env("workers = 2\nlog_level = debug", "");
}

static void setup_short_timeouts(void)
{
	start_env("log_level = debug\nheader_timeout = " SHORT_TIMEOUT
	          "\nclient_idle_timeout = " SHORT_TIMEOUT,
	          "");
}

/* ---- clients: curl and openssl s_client ---- */

/* curl https://HOST:tls_port/PATH, HOST resolved to 127.0.0.1 and verified against the
 * test CA; body and errors in out. Returns curl's exit code. */
static int curl_https(const char *host, const char *path, const char *header)
{
	char url[PATH_CAP], resolve[PATH_CAP];

	snprintf(url, sizeof(url), "https://%s:%d%s", host, tls_port, path);
	snprintf(resolve, sizeof(resolve), "%s:%d:127.0.0.1", host, tls_port);
	return h_runl(out, sizeof(out), H_TIMEOUT_MS, "curl", "-sS", "--max-time", "5", "--cacert",
	              ca, "--resolve", resolve, "-H",
	              header != NULL ? header : "X-Conversation-ID: tls", url, NULL);
}

/* printf INPUT | openssl s_client -connect 127.0.0.1:tls_port ARGS, merged output in out.
 * INPUT is a printf format without arguments ("" = send nothing, close at once). */
static int s_client(const char *args, const char *input)
{
	char cmd[CMD_MAX];

	snprintf(cmd, sizeof(cmd),
	         "printf '%s' | openssl s_client -connect 127.0.0.1:%d -CAfile '%s' %s 2>&1", input,
	         tls_port, ca, args);
	return h_runl(out, sizeof(out), H_TIMEOUT_MS, "sh", "-c", cmd, NULL);
}

#define HTTP_GET_CLOSE "GET /echo HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n"

static bool out_has(const char *needle)
{
	return strstr(out, needle) != NULL;
}

static int out_count(const char *needle)
{
	int n = 0;

	for (const char *p = strstr(out, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* ---- tconn: a TLS client connection we hold open ---- */

struct tconn {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	char buf[TCONN_BUF + 1]; /* read-ahead, NUL-terminated */
	size_t len;
};

/* A connected client socket; rcvbuf > 0 sets its receive buffer before the handshake
 * (afterwards the window it advertised can no longer shrink to match). */
static int tconn_socket(int port, int rcvbuf)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {.tv_sec = H_TIMEOUT_MS / 1000};
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Connect to the TLS listener with SNI name, verifying against the test CA. 0 / -1. */
static int tconn_open(struct tconn *t, const char *name)
{
	memset(t, 0, sizeof(*t));
	t->fd = tconn_socket(tls_port, 0);
	t->ctx = SSL_CTX_new(TLS_client_method());
	if (t->fd < 0 || t->ctx == NULL || SSL_CTX_load_verify_locations(t->ctx, ca, NULL) != 1)
		return -1;
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	t->ssl = SSL_new(t->ctx);
	if (t->ssl == NULL || SSL_set_fd(t->ssl, t->fd) != 1 ||
	    SSL_set_tlsext_host_name(t->ssl, name) != 1 || SSL_set1_host(t->ssl, name) != 1)
		return -1;
	return SSL_connect(t->ssl) == 1 ? 0 : -1;
}

static void tconn_close(struct tconn *t)
{
	if (t->ssl != NULL)
		SSL_free(t->ssl);
	if (t->ctx != NULL)
		SSL_CTX_free(t->ctx);
	if (t->fd >= 0)
		close(t->fd);
	memset(t, 0, sizeof(*t));
	t->fd = -1;
}

/* Serial number of the certificate the server showed, or -1. */
static long tconn_serial(struct tconn *t)
{
	X509 *c = SSL_get1_peer_certificate(t->ssl);
	long serial = c != NULL ? ASN1_INTEGER_get(X509_get0_serialNumber(c)) : -1;

	X509_free(c);
	return serial;
}

static int tconn_send(struct tconn *t, const char *s)
{
	int n = (int)strlen(s);

	return SSL_write(t->ssl, s, n) == n ? 0 : -1;
}

/* Read more bytes (bounded by the socket timeout). >0, or -1 at EOF / error / timeout. */
static int tconn_fill(struct tconn *t)
{
	int n;

	if (t->len >= TCONN_BUF)
		return -1;
	n = SSL_read(t->ssl, t->buf + t->len, (int)(TCONN_BUF - t->len));
	if (n <= 0)
		return -1;
	t->len += (size_t)n;
	t->buf[t->len] = '\0';
	return n;
}

/* Offset just past needle in the read-ahead, reading as needed; -1 if it never came. */
static long tconn_until(struct tconn *t, const char *needle)
{
	for (;;) {
		char *p = memmem(t->buf, t->len, needle, strlen(needle));

		if (p != NULL)
			return (long)(p - t->buf + (long)strlen(needle));
		if (tconn_fill(t) < 0)
			return -1;
	}
}

static void tconn_consume(struct tconn *t, size_t n)
{
	memmove(t->buf, t->buf + n, t->len - n);
	t->len -= n;
	t->buf[t->len] = '\0';
}

/* One response with a Content-Length body: status (0 on failure); the body is copied
 * into body (NUL-terminated, truncated to cap). */
static int tconn_response(struct tconn *t, char *body, size_t cap)
{
	long head = tconn_until(t, "\r\n\r\n");
	const char *cl;
	int status = 0;
	size_t len;

	if (head < 0 || sscanf(t->buf, "HTTP/1.%*d %d", &status) != 1)
		return 0;
	cl = strcasestr(t->buf, "\r\nContent-Length:");
	if (cl == NULL || cl > t->buf + head)
		return 0;
	len = strtoul(cl + strlen("\r\nContent-Length:"), NULL, 10);
	while (t->len < (size_t)head + len)
		if (tconn_fill(t) < 0)
			return 0;
	snprintf(body, cap, "%.*s", (int)len, t->buf + head);
	tconn_consume(t, (size_t)head + len);
	return status;
}

static int tconn_get_echo(struct tconn *t, char *body, size_t cap)
{
	if (tconn_send(t, "GET /echo HTTP/1.1\r\nHost: localhost\r\n"
	                  "X-Conversation-ID: held\r\n\r\n") != 0)
		return 0;
	return tconn_response(t, body, cap);
}

/* Read until the server closes: true when it sent close_notify first (a clean TLS close,
 * not a truncation). */
static bool tconn_closed_cleanly(struct tconn *t)
{
	char buf[4096];
	int n;

	while ((n = SSL_read(t->ssl, buf, sizeof(buf))) > 0)
		;
	return SSL_get_error(t->ssl, n) == SSL_ERROR_ZERO_RETURN;
}

/* ---- handshakes, certificates, headers ---- */

Test(tls, curl_handshake_and_forwarded_proto, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char url[PATH_CAP];

	cr_assert_eq(curl_https("localhost", "/echo", "X-Forwarded-Proto: http"), 0, "%s", out);
	cr_expect(out_has("h: X-Forwarded-Proto: https\n"), "the bot did not get https:\n%s", out);
	cr_expect(!out_has("X-Forwarded-Proto: http\n"), "the client's value passed:\n%s", out);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", px.port);
	cr_assert_eq(
	        h_runl(out, sizeof(out), H_TIMEOUT_MS, "curl", "-sS", "--max-time", "5", url, NULL),
	        0, "%s", out);
	cr_expect(out_has("h: X-Forwarded-Proto: http\n"), "plain request:\n%s", out);
}

Test(tls, sni_picks_the_certificate, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	static const struct {
		const char *sni, *subject;
	} cases[] = {
	        {"-servername a.test", "subject=CN = a.test"},
	        {"-servername x.b.test", "subject=CN = *.b.test"},
	        {"-servername X.B.TEST", "subject=CN = *.b.test"},
	        {"-servername y.c.test", "subject=CN = *.c.test"},
	        {"-servername deep.x.b.test", "subject=CN = localhost"}, /* one label only */
	        {"-servername b.test", "subject=CN = localhost"},
	        {"-servername unknown.test", "subject=CN = localhost"},
	        {"-noservername", "subject=CN = localhost"},
	};

	/* curl verifies the name, so success means the right certificate */
	cr_expect_eq(curl_https("a.test", "/", NULL), 0, "a.test: %s", out);
	cr_expect_eq(curl_https("x.b.test", "/", NULL), 0, "x.b.test: %s", out);
	cr_expect_eq(curl_https("localhost", "/", NULL), 0, "localhost: %s", out);
	cr_expect_neq(curl_https("unknown.test", "/", NULL), 0, "unknown.test verified?");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		s_client(cases[i].sni, "");
		cr_expect(out_has(cases[i].subject), "%s: want %s in:\n%s", cases[i].sni,
		          cases[i].subject, out);
	}
}

Test(tls, tls_1_0_and_1_1_are_refused, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	static const char *const old[] = {"-tls1_1", "-tls1"};
	char args[256];

	for (size_t i = 0; i < sizeof(old) / sizeof(old[0]); i++) {
		snprintf(args, sizeof(args), "%s -cipher 'DEFAULT:@SECLEVEL=0'", old[i]);
		cr_expect_neq(s_client(args, ""), 0, "%s was accepted:\n%s", old[i], out);
		cr_expect(out_has("alert protocol version"), "%s: %s", old[i], out);
	}
	cr_expect_eq(
	        h_wait_file_contains(px.log, "handshake failed (protocol_version)", H_TIMEOUT_MS),
	        0, "the refusal is not logged at debug level");
	cr_expect_eq(s_client("-tls1_2", ""), 0, "%s", out);
	cr_expect(out_has("New, TLSv1.2, Cipher is ECDHE-"), "%s", out);
	cr_expect_eq(s_client("-tls1_3", ""), 0, "%s", out);
	cr_expect(out_has("New, TLSv1.3, Cipher is TLS_"), "%s", out);
}

Test(tls, min_version_tls13_refuses_tls12, .init = setup_tls13, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	cr_expect_neq(s_client("-tls1_2", ""), 0, "TLSv1.2 accepted:\n%s", out);
	cr_expect_eq(s_client("-tls1_3", ""), 0, "%s", out);
	cr_expect(out_has("New, TLSv1.3"), "%s", out);
}

Test(tls, tls12_ciphers_are_ecdhe_aead_in_server_order, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	/* RSA key exchange and CBC suites are not offered */
	cr_expect_neq(s_client("-tls1_2 -cipher AES128-GCM-SHA256:AES256-SHA", ""), 0, "%s", out);
	cr_expect_neq(s_client("-tls1_2 -cipher ECDHE-ECDSA-AES128-SHA", ""), 0, "%s", out);
	cr_expect_eq(
	        h_wait_file_contains(px.log, "handshake failed (no_shared_cipher)", H_TIMEOUT_MS),
	        0, "no_shared_cipher not logged");
	/* the client prefers AES-256; the server's order puts AES-128 first */
	cr_expect_eq(s_client("-tls1_2 -cipher "
	                      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256",
	                      ""),
	             0, "%s", out);
	cr_expect(out_has("Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"), "%s", out);
}

Test(tls, alpn_selects_http11_or_nothing, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	cr_expect_eq(s_client("-alpn h2,http/1.1", ""), 0, "%s", out);
	cr_expect(out_has("ALPN protocol: http/1.1"), "%s", out);
	cr_expect_eq(s_client("-alpn h2", ""), 0, "an h2-only client must still connect:\n%s", out);
	cr_expect(out_has("No ALPN negotiated"), "%s", out);
}

/* Save a session (after a request, so TLS 1.3 tickets have arrived), then resume it. */
static void expect_resumption(const char *version)
{
	char args[ARGS_MAX], sess[PATH_CAP];

	snprintf(sess, sizeof(sess), "%s/sess%s", h_tmpdir(), version);
	snprintf(args, sizeof(args), "%s -servername localhost -ign_eof -sess_out '%s'", version,
	         sess);
	cr_assert_eq(s_client(args, HTTP_GET_CLOSE), 0, "%s", out);
	cr_expect(out_has("New, TLSv1."), "%s", out);
	snprintf(args, sizeof(args), "%s -servername localhost -ign_eof -sess_in '%s'", version,
	         sess);
	cr_assert_eq(s_client(args, HTTP_GET_CLOSE), 0, "%s", out);
	cr_expect(out_has("Reused, TLSv1."), "%s: session not resumed:\n%s", version, out);
	cr_expect(out_has("X-Forwarded-Proto: https"), "%s", out);
}

/* Each resumed connection must hand out a fresh ticket: a client that always holds the
 * ticket of its last connection resumes every time, not every other time. */
Test(tls, resumed_connections_issue_fresh_tickets, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char args[ARGS_MAX], prev[PATH_CAP], next[PATH_CAP];

	snprintf(prev, sizeof(prev), "%s/chain0", h_tmpdir());
	snprintf(args, sizeof(args), "-tls1_3 -servername localhost -ign_eof -sess_out '%s'", prev);
	cr_assert_eq(s_client(args, HTTP_GET_CLOSE), 0, "%s", out);
	for (int hop = 1; hop <= 3; hop++) {
		snprintf(next, sizeof(next), "%s/chain%d", h_tmpdir(), hop);
		snprintf(args, sizeof(args),
		         "-tls1_3 -servername localhost -ign_eof -sess_in '%s' -sess_out '%s'",
		         prev, next);
		cr_assert_eq(s_client(args, HTTP_GET_CLOSE), 0, "hop %d: %s", hop, out);
		cr_expect(out_has("Reused, TLSv1.3"), "hop %d not resumed:\n%s", hop, out);
		memcpy(prev, next, sizeof(prev));
	}
}

/* One ticket per handshake, full or resumed (OpenSSL's default is two per full one). */
Test(tls, one_ticket_per_handshake, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	static const char arrived[] = "Post-Handshake New Session Ticket arrived";
	char args[ARGS_MAX], sess[PATH_CAP];

	snprintf(sess, sizeof(sess), "%s/sess-one", h_tmpdir());
	snprintf(args, sizeof(args), "-tls1_3 -servername localhost -ign_eof -sess_out '%s'", sess);
	cr_assert_eq(s_client(args, HTTP_GET_CLOSE), 0, "%s", out);
	cr_expect(out_has("New, TLSv1.3"), "%s", out);
	cr_expect_eq(out_count(arrived), 1, "full handshake:\n%s", out);
	snprintf(args, sizeof(args), "-tls1_3 -servername localhost -ign_eof -sess_in '%s'", sess);
	cr_assert_eq(s_client(args, HTTP_GET_CLOSE), 0, "%s", out);
	cr_expect(out_has("Reused, TLSv1.3"), "%s", out);
	cr_expect_eq(out_count(arrived), 1, "resumed handshake:\n%s", out);
}

Test(tls, sessions_resume_with_tickets_across_reloads, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char args[ARGS_MAX], sess[PATH_CAP];

	expect_resumption("-tls1_3");
	expect_resumption("-tls1_2");
	/* ticket keys are process-wide: a reload (new SSL_CTX) still resumes */
	cr_assert_eq(kill(px.pid, SIGHUP), 0);
	cr_assert_eq(h_wait_file_contains(px.log, "reload: ok", H_TIMEOUT_MS), 0);
	snprintf(sess, sizeof(sess), "%s/sess-tls1_3", h_tmpdir());
	snprintf(args, sizeof(args), "-tls1_3 -servername localhost -ign_eof -sess_in '%s'", sess);
	cr_assert_eq(s_client(args, HTTP_GET_CLOSE), 0, "%s", out);
	cr_expect(out_has("Reused, TLSv1.3"), "not resumed after a reload:\n%s", out);
}

Test(tls, early_data_is_not_accepted, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char args[ARGS_MAX], sess[PATH_CAP], early[PATH_CAP];

	snprintf(sess, sizeof(sess), "%s/sess-early", h_tmpdir());
	snprintf(early, sizeof(early), "%s",
	         h_write_file("early.txt", "GET /echo HTTP/1.1\r\n"
	                                   "Host: localhost\r\n\r\n"));
	snprintf(args, sizeof(args), "-tls1_3 -ign_eof -sess_out '%s'", sess);
	cr_assert_eq(s_client(args, HTTP_GET_CLOSE), 0, "%s", out);
	cr_expect(out_has("Max Early Data: 0"), "tickets must allow no early data:\n%s", out);
	snprintf(args, sizeof(args), "-tls1_3 -ign_eof -sess_in '%s' -early_data '%s'", sess,
	         early);
	s_client(args, HTTP_GET_CLOSE);
	cr_expect(!out_has("Early data was accepted"), "0-RTT accepted:\n%s", out);
	/* the ticket allows no early data, so the client does not even try */
	cr_expect(out_has("Early data was not sent"), "%s", out);
}

/* Bytes of the body that break botsim's /big pattern, reading the whole body from t. */
static long big_body_errors(struct tconn *t, size_t *got)
{
	char chunk[TCONN_BUF];
	long bad = 0;
	int n;

	*got = 0;
	for (size_t i = 0; i < t->len; i++, (*got)++)
		bad += t->buf[i] != (char)('0' + *got % BIG_PERIOD);
	while (*got < BIG_BYTES && (n = SSL_read(t->ssl, chunk, sizeof(chunk))) > 0)
		for (int i = 0; i < n; i++, (*got)++)
			bad += chunk[i] != (char)('0' + *got % BIG_PERIOD);
	return bad;
}

/* A response far larger than the socket buffers, to a client with a small receive buffer:
 * the proxy's direct TLS writes fill the socket, and libevent finishes the half-sent
 * record and the rest; every byte must arrive, in order. */
Test(tls, large_response_to_a_slow_reader_arrives_intact, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	struct tconn t;
	long head;
	size_t got;

	memset(&t, 0, sizeof(t));
	t.fd = tconn_socket(tls_port, SMALL_RCVBUF);
	cr_assert_geq(t.fd, 0);
	t.ctx = SSL_CTX_new(TLS_client_method());
	t.ssl = SSL_new(t.ctx);
	cr_assert(t.ssl != NULL && SSL_set_fd(t.ssl, t.fd) == 1);
	cr_assert_eq(SSL_connect(t.ssl), 1);
	cr_assert_eq(tconn_send(&t, "GET /big?cl=1&bytes=" BIG_BYTES_TEXT " HTTP/1.1\r\n"
	                            "Host: x\r\nX-Conversation-ID: big\r\n\r\n"),
	             0);
	head = tconn_until(&t, "\r\n\r\n");
	cr_assert_gt(head, 0, "no response head");
	cr_assert(strncmp(t.buf, "HTTP/1.1 200", 12) == 0, "%.200s", t.buf);
	tconn_consume(&t, (size_t)head);
	cr_expect_eq(big_body_errors(&t, &got), 0, "body bytes out of pattern");
	cr_expect_eq(got, BIG_BYTES, "body cut short");
	tconn_close(&t);
}

Test(tls, worker_threads_share_the_tls_context, .init = setup_workers, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	for (int i = 0; i < WORKER_HANDSHAKES; i++) {
		cr_assert_eq(curl_https("localhost", "/echo", NULL), 0, "handshake %d: %s", i, out);
		cr_assert(out_has("X-Forwarded-Proto: https"), "%s", out);
	}
}

/* ---- reload ---- */

Test(tls, reload_serves_the_new_certificate_and_keeps_open_connections, .init = setup_default,
     .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	struct tconn held, fresh;
	char body[8192];

	cr_assert_eq(tconn_open(&held, "localhost"), 0, "handshake failed");
	cr_assert_eq(tconn_serial(&held), SERIAL_SERVER);
	cr_assert_eq(tconn_get_echo(&held, body, sizeof(body)), 200);

	install("server2.pem", "server.pem");
	install("server2.key", "server.key");
	cr_assert_eq(kill(px.pid, SIGHUP), 0);
	cr_assert_eq(h_wait_file_contains(px.log, "reload: ok", H_TIMEOUT_MS), 0,
	             "reload not done");

	cr_assert_eq(tconn_open(&fresh, "localhost"), 0, "handshake after reload failed");
	cr_expect_eq(tconn_serial(&fresh), SERIAL_SERVER2, "new handshakes use the new cert");
	cr_expect_eq(tconn_get_echo(&fresh, body, sizeof(body)), 200);
	/* the connection opened before the reload goes on, on its old certificate */
	cr_expect_eq(tconn_get_echo(&held, body, sizeof(body)), 200, "held connection broke");
	cr_expect(strstr(body, "X-Forwarded-Proto: https") != NULL, "%s", body);
	cr_expect_eq(tconn_serial(&held), SERIAL_SERVER);
	tconn_close(&held);
	tconn_close(&fresh);
}

Test(tls, reload_with_a_mismatched_key_keeps_the_old_certificate, .init = setup_default,
     .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	struct tconn t;
	char body[8192], key[PATH_CAP];

	snprintf(key, sizeof(key), "%s/server.key", pki);
	install("other.key", "server.key");
	cr_assert_eq(kill(px.pid, SIGHUP), 0);
	cr_assert_eq(h_wait_file_contains(px.log, "reload: failed", H_TIMEOUT_MS), 0,
	             "a broken key was not refused");
	cr_expect(h_file_contains(px.log, key), "the log does not name %s", key);
	cr_expect(h_file_contains(px.log, "does not match"), "the log does not say why");
	cr_assert_eq(tconn_open(&t, "localhost"), 0, "handshake after a failed reload");
	cr_expect_eq(tconn_serial(&t), SERIAL_SERVER);
	cr_expect_eq(tconn_get_echo(&t, body, sizeof(body)), 200);
	tconn_close(&t);
}

/* ---- configuration check ---- */

static int check_tls_files(const char *cert, const char *key, const char *sni)
{
	struct h_bot fake = {.port = 9001, .name = "bot-1"};
	char sections[CMD_MAX], path[PATH_CAP];
	const char *bin = h_env("RL_BIN");
	char *text;

	cr_assert_not_null(bin);
	snprintf(sections, sizeof(sections),
	         "[tls]\nlisten = 127.0.0.1:18443\ncert = %s\nkey = %s\n%s%s\n", cert, key,
	         sni != NULL ? "sni = " : "", sni != NULL ? sni : "");
	text = h_conf_text(18080, "", sections, &fake, 1);
	cr_assert_not_null(text);
	snprintf(path, sizeof(path), "%s", h_write_file("check.ini", text));
	free(text);
	return h_runl(out, sizeof(out), H_TIMEOUT_MS, bin, "-t", "-c", path, NULL);
}

static void expect_check_fails(const char *file, const char *why)
{
	char needle[PATH_CAP + 64];

	snprintf(needle, sizeof(needle), "%s: %s", file, why);
	cr_expect(out_has(needle), "want \"%s\" in:\n%s", needle, out);
	cr_expect(out_has("test failed"), "%s", out);
}

Test(tls, check_names_the_bad_file, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	char cert[PATH_CAP], key[PATH_CAP], other[PATH_CAP], expired[PATH_CAP], sni[PATH_CAP],
	        missing[PATH_CAP], lone[PATH_CAP], garbage[PATH_CAP];

	make_certs();
	snprintf(cert, sizeof(cert), "%s/server.pem", pki);
	snprintf(key, sizeof(key), "%s/server.key", pki);
	snprintf(other, sizeof(other), "%s/other.key", pki);
	snprintf(expired, sizeof(expired), "%s/expired.pem", pki);
	snprintf(sni, sizeof(sni), "%s/sni", pki);
	snprintf(missing, sizeof(missing), "%s/nope.pem", pki);
	snprintf(lone, sizeof(lone), "%s/sni/lone.test.pem", pki);

	cr_expect_eq(check_tls_files(cert, key, sni), 0, "valid files refused:\n%s", out);
	cr_expect_eq(check_tls_files(cert, other, NULL), 1, "%s", out);
	expect_check_fails(other, "private key does not match the certificate");
	cr_expect_eq(check_tls_files(missing, key, NULL), 1, "%s", out);
	expect_check_fails(missing, "cannot open the certificate (No such file or directory)");
	snprintf(expired, sizeof(expired), "%s/expired.pem", pki);
	cr_expect_eq(check_tls_files(expired, key, NULL), 1, "%s", out);
	expect_check_fails(expired, "certificate expired on");
	cr_expect_eq(check_tls_files(pki, key, NULL), 1, "a folder as cert:\n%s", out);
	expect_check_fails(pki, "not a PEM certificate chain");
	/* OpenSSL's reason is named, not "unknown" */
	snprintf(garbage, sizeof(garbage), "%s",
	         h_write_file("garbage.pem", "not a certificate\n"));
	cr_expect_eq(check_tls_files(garbage, key, NULL), 1, "%s", out);
	expect_check_fails(garbage, "not a PEM certificate chain (no start line)");
	install("server.pem", "sni/lone.test.pem");
	cr_expect_eq(check_tls_files(cert, key, sni), 1, "%s", out);
	expect_check_fails(lone, "no matching lone.test.key");
}

/* ---- data path over TLS ---- */

Test(tls, sse_over_tls_arrives_incrementally, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char req[256], last[32];
	struct tconn t;
	uint64_t start, first, done;

	snprintf(req, sizeof(req),
	         "GET /sse?n=%d&interval_ms=%d HTTP/1.1\r\nHost: localhost\r\n"
	         "X-Conversation-ID: sse\r\n\r\n",
	         SSE_EVENTS, SSE_INTERVAL_MS);
	snprintf(last, sizeof(last), "id: %d\n", SSE_EVENTS);
	cr_assert_eq(tconn_open(&t, "localhost"), 0);
	start = h_now_ms();
	cr_assert_eq(tconn_send(&t, req), 0);
	cr_assert_geq(tconn_until(&t, "id: 1\n"), 0, "no first event:\n%s", t.buf);
	first = h_now_ms();
	cr_assert_geq(tconn_until(&t, last), 0, "no last event:\n%s", t.buf);
	done = h_now_ms();
	cr_expect(strcasestr(t.buf, "Content-Type: text/event-stream") != NULL, "%s", t.buf);
	cr_expect_lt(first - start, (uint64_t)SSE_INTERVAL_MS * 2, "first event late");
	cr_expect_geq(done - first, (uint64_t)SSE_MIN_SPREAD_MS,
	              "events arrived together (%llu ms apart): buffered",
	              (unsigned long long)(done - first));
	tconn_close(&t);
}

#define WS_REQUEST                                                                                 \
	"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"     \
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"             \
	"X-Conversation-ID: ws\r\n\r\n"
#define WS_PAYLOAD "ping \x01\x02\xff bytes both ways"

Test(tls, upgrade_tunnel_plain, .init = setup_default, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	struct h_response r;
	char echo[64] = {0};
	size_t got = 0;
	int fd = h_connect(px.port);

	cr_assert_geq(fd, 0);
	cr_assert_eq(h_send_str(fd, WS_REQUEST), 0);
	cr_assert_eq(h_read_response(fd, &r, false, H_TIMEOUT_MS), 0);
	cr_assert_eq(r.status, 101, "%s", r.head);
	h_response_free(&r);
	cr_assert_eq(h_send_str(fd, WS_PAYLOAD), 0);
	while (got < strlen(WS_PAYLOAD)) {
		ssize_t n = h_recv(fd, echo + got, sizeof(echo) - 1 - got, H_TIMEOUT_MS);
		cr_assert_gt(n, 0, "echo stopped after %zu bytes", got);
		got += (size_t)n;
	}
	cr_expect_str_eq(echo, WS_PAYLOAD);
	h_close(fd);
}

Test(tls, upgrade_tunnel_over_tls, .init = setup_default, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	struct tconn t;
	long head;

	cr_assert_eq(tconn_open(&t, "localhost"), 0);
	cr_assert_eq(tconn_send(&t, WS_REQUEST), 0);
	head = tconn_until(&t, "\r\n\r\n");
	cr_assert_geq(head, 0, "no 101:\n%s", t.buf);
	cr_assert(strncmp(t.buf, "HTTP/1.1 101 ", 13) == 0, "%s", t.buf);
	tconn_consume(&t, (size_t)head);
	for (int round = 0; round < 2; round++) {
		cr_assert_eq(tconn_send(&t, WS_PAYLOAD), 0);
		cr_assert_geq(tconn_until(&t, WS_PAYLOAD), 0, "echo %d missing: %s", round, t.buf);
		tconn_consume(&t, strlen(WS_PAYLOAD));
	}
	tconn_close(&t);
}

/* ---- failures are counted and logged at debug level ---- */

Test(tls, non_tls_bytes_and_stalled_handshakes_are_closed, .init = setup_short_timeouts,
     .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	int fd = tconn_socket(tls_port, 0);
	char buf[256];
	ssize_t n;

	/* plain HTTP on the TLS port: closed, never answered in HTTP */
	cr_assert_geq(fd, 0);
	cr_assert_eq(h_send_str(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	n = h_read_until_close(fd, buf, sizeof(buf) - 1, H_TIMEOUT_MS);
	cr_expect(n <= 0 || strncmp(buf, "HTTP/", 5) != 0, "answered in HTTP: %.*s", (int)n, buf);
	h_close(fd);
	cr_expect_eq(h_wait_file_contains(px.log, "handshake failed (not_tls)", H_TIMEOUT_MS), 0);

	/* a client that never starts the handshake is closed after header_timeout */
	fd = tconn_socket(tls_port, 0);
	cr_assert_geq(fd, 0);
	cr_expect_eq(h_wait_closed(fd, H_TIMEOUT_MS), 0, "stalled handshake not closed");
	h_close(fd);
	cr_expect_eq(h_wait_file_contains(px.log, "handshake failed (incomplete)", H_TIMEOUT_MS),
	             0);
}

Test(tls, the_proxy_closes_with_close_notify, .init = setup_short_timeouts, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	struct tconn t;
	char body[8192];

	/* after a response to "Connection: close" */
	cr_assert_eq(tconn_open(&t, "localhost"), 0);
	cr_assert_eq(tconn_send(&t, "GET /echo HTTP/1.1\r\nHost: localhost\r\n"
	                            "Connection: close\r\n\r\n"),
	             0);
	cr_assert_eq(tconn_response(&t, body, sizeof(body)), 200);
	cr_expect(tconn_closed_cleanly(&t), "no close_notify after Connection: close");
	tconn_close(&t);
	/* an idle keep-alive connection closed by client_idle_timeout */
	cr_assert_eq(tconn_open(&t, "localhost"), 0);
	cr_assert_eq(tconn_get_echo(&t, body, sizeof(body)), 200);
	cr_expect(tconn_closed_cleanly(&t), "no close_notify at the idle timeout");
	tconn_close(&t);
}
