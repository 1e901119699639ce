/*
 * e2e_limits — greedy and hostile clients against the real binary: max_connections, the
 * descriptor limit (EMFILE), a request body that stalls, a flood of slow near-maximal
 * heads and a flood of garbage (DESIGN.md "Errors a client sees"; README "Limits and
 * hardening").
 *
 *   test ──N raw sockets──► ringleader ──► rawbot (scripted backend thread in this process)
 *        ──/proc/PID──────►     │      └─► botsim
 *        ──GET /metrics───► admin API
 *
 * Each test asserts what a client sees (a status, a close, the latency of a normal request
 * next to the abuse), that nothing hostile reached the backend, and that the proxy exits 0
 * at the end (a sanitizer report makes the exit status non-zero). Waits are bounded polls
 * on what the proxy shows (/proc, /metrics, sockets); the only timed pauses pace a trickle
 * or span a CPU-time measurement.
 */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "rawbot.h"

#define L_TEST_TIMEOUT_S 30   /* criterion kills a test after this */
#define L_ANSWER_MS      3000 /* bound for any answer that involves no configured wait */
#define L_FAST_MS        1000 /* a normal request next to the abuse answers within this */
#define L_CONF_MAX       4096 /* bytes of a config section built here */
#define L_METRICS_MAX    256  /* bytes of a metric name */
#define L_OK_REQUEST     "GET /ok HTTP/1.1\r\nHost: x\r\nX-Conversation-ID: c1\r\n\r\n"
#define L_OK_REPLY       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"

/* max_connections */
#define L_MAXCONN       5  /* max_connections in those tests */
#define L_MAXCONN_TRIES 12 /* connections tried against it with two workers */

/* descriptor limit */
#define L_NOFILE        40   /* RLIMIT_NOFILE of the proxy under test */
#define L_NOFILE_CLIENT 60   /* client connections opened against it: more than fit */
#define L_SPIN_MS       1000 /* window in which the proxy's CPU time is measured */
#define L_SPIN_MAX_MS   300  /* CPU time it may use in that window while at the limit */
#define L_BACKLOG_MS    1000 /* no answer within this: the connection waits in the backlog */

/* slow body */
#define L_BODY_IDLE_MS 500 /* client_idle_timeout in that test */

/* slow heads */
#define L_FLOOD_CONNS    200   /* connections trickling a near-maximal head */
#define L_HEAD_MAX       16384 /* max_header_size (the default, 16k) */
#define L_FLOOD_FIRST    15000 /* head bytes each sends at once */
#define L_FLOOD_STEP     50    /* head bytes each adds per round */
#define L_FLOOD_ROUNDS   12    /* rounds; FIRST + ROUNDS * STEP stays below L_HEAD_MAX */
#define L_FLOOD_PACE_MS  100   /* pause between rounds */
#define L_HEAD_TIMEOUT_S 2     /* header_timeout in that test */

/* garbage */
#define L_GARBAGE_CONNS 100 /* connections sending garbage */
#define L_GARBAGE_BYTES 512 /* bytes each sends */

/* What one test started; stopped by finish() or, after a failed assertion, teardown(). */
static struct h_proxy px;
static bool px_running;
static struct h_bot bots[1];
static int nbots;
static struct rawbot *rb;
static int admin_port;

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

static void teardown(void)
{
	if (px_running) {
		px_running = false;
		h_proxy_stop(&px);
	}
	h_bots_stop(bots, nbots);
	nbots = 0;
	rawbot_stop(rb);
	rb = NULL;
	h_tmpdir_remove();
}

/* Stop everything and check the proxy exited cleanly. */
static void finish(void)
{
	int st;

	px_running = false;
	st = h_proxy_stop(&px);
	h_bots_stop(bots, nbots);
	nbots = 0;
	rawbot_stop(rb);
	rb = NULL;
	cr_assert_eq(st, 0, "ringleader exit status %d (log %s)", st, px.log);
}

static long long now_ms(void)
{
	return (long long)h_now_ms();
}

/* ---- starting things ---- */

/* Start the proxy; nofile > 0 limits its descriptors. */
static void start_proxy(const char *proxy_extra, const char *sections, const struct h_bot *b, int n,
                        long nofile)
{
	int port = h_free_port();
	char *text = h_conf_text(port, proxy_extra, sections, b, n);
	int rc;

	cr_assert_not_null(text);
	rc = h_proxy_start_limited(&px, port, text, nofile);
	if (rc != 0)
		cr_log_error("ringleader did not start on:\n%s", text);
	free(text);
	cr_assert_eq(rc, 0, "ringleader did not start");
	px_running = true;
}

/* The proxy in front of one rawbot backend "raw" (sections go before it). */
static void start_with_rawbot(const char *proxy_extra, const char *sections)
{
	char sect[L_CONF_MAX];

	rb = rawbot_start(RAWBOT_REPLY, L_OK_REPLY, strlen(L_OK_REPLY));
	cr_assert_not_null(rb, "rawbot did not start");
	snprintf(sect, sizeof(sect), "%s\n[backend raw]\naddress = 127.0.0.1:%d\n", sections,
	         rawbot_port(rb));
	start_proxy(proxy_extra, sect, NULL, 0, 0);
}

/* The proxy in front of one botsim backend bot-1. */
static void start_with_botsim(const char *proxy_extra, const char *sections, long nofile)
{
	cr_assert_eq(h_bots_start(bots, 1), 0, "botsim did not start");
	nbots = 1;
	start_proxy(proxy_extra, sections, bots, 1, nofile);
}

/* ---- talking ---- */

enum outcome {
	OUT_RESPONSE = 1, /* a whole response was read */
	OUT_CLOSED,       /* the proxy closed (or reset) without sending a byte */
	OUT_SILENT,       /* nothing within the timeout, connection still open */
	OUT_GARBLED,      /* some bytes, but no whole response */
};

static const char *outcome_name(enum outcome o)
{
	switch (o) {
	case OUT_RESPONSE:
		return "response";
	case OUT_CLOSED:
		return "closed";
	case OUT_SILENT:
		return "silent";
	case OUT_GARBLED:
		return "garbled";
	}
	return "?";
}

/* What the proxy does on fd within timeout_ms; r is filled (free it) in every case. */
static enum outcome read_outcome(int fd, struct h_response *r, int timeout_ms)
{
	if (h_read_response(fd, r, false, timeout_ms) == 0)
		return OUT_RESPONSE;
	if (r->head[0] != '\0' || r->status != 0)
		return OUT_GARBLED;
	return h_wait_closed(fd, 0) == 0 ? OUT_CLOSED : OUT_SILENT;
}

/* Send a normal request on fd (keep-alive) and expect its 200. */
static void request_ok(int fd, const char *what)
{
	struct h_response r;
	enum outcome o;

	cr_assert_eq(h_send_str(fd, L_OK_REQUEST), 0, "%s: send failed", what);
	o = read_outcome(fd, &r, L_ANSWER_MS);
	cr_assert_eq(o, OUT_RESPONSE, "%s: %s instead of a response", what, outcome_name(o));
	cr_assert_eq(r.status, 200, "%s: got %d:\n%s%s", what, r.status, r.head, r.body);
	h_response_free(&r);
}

/* A normal request on a new connection is answered 200; returns how long it took (ms). */
static long long expect_serving(const char *after)
{
	long long t0 = now_ms();
	int fd = h_connect(px.port);

	cr_assert(fd >= 0, "after %s: connect failed", after);
	request_ok(fd, after);
	h_close(fd);
	return now_ms() - t0;
}

/* The response on fd is a proxy error `status` with a JSON body, and the connection closes.
 * Returns the "error" text in why (may be NULL). */
static void expect_error_on(const char *what, int fd, int status, int timeout_ms, char *why,
                            size_t cap)
{
	struct h_response r;
	char v[256];
	enum outcome o = read_outcome(fd, &r, timeout_ms);

	cr_assert_eq(o, OUT_RESPONSE, "%s: %s instead of a %d within %d ms", what, outcome_name(o),
	             status, timeout_ms);
	cr_assert_eq(r.status, status, "%s: got %d, expected %d:\n%s%s", what, r.status, status,
	             r.head, r.body);
	cr_assert_not_null(h_header(&r, "Content-Type", v, sizeof(v)), "%s: no Content-Type", what);
	cr_assert_str_eq(v, "application/json", "%s", what);
	cr_assert_not_null(h_json_field(r.body, "error", v, sizeof(v)), "%s: body %s", what,
	                   r.body);
	if (why != NULL)
		snprintf(why, cap, "%s", v);
	cr_assert_not_null(h_json_field(r.body, "request_id", v, sizeof(v)), "%s: body %s", what,
	                   r.body);
	cr_assert(r.closed || h_wait_closed(fd, L_ANSWER_MS) == 0,
	          "%s: connection still open after the %d", what, status);
	h_response_free(&r);
}

/* ---- the admin API ---- */

/* "[admin]" section on a free port (remembered in admin_port). */
static const char *admin_section(void)
{
	static char text[128];

	admin_port = h_free_port();
	snprintf(text, sizeof(text), "[admin]\nlisten = 127.0.0.1:%d\n", admin_port);
	return text;
}

/* Value of the Prometheus sample `name` (no labels) from GET /metrics, or -1. */
static double metric(const char *name)
{
	struct h_response r;
	char pat[L_METRICS_MAX];
	double v = -1;
	const char *p;

	if (h_exchange(admin_port, "GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
	               &r) == 0 &&
	    r.status == 200) {
		snprintf(pat, sizeof(pat), "\n%s ", name);
		p = strstr(r.body, pat);
		if (p != NULL)
			v = strtod(p + strlen(pat), NULL);
	}
	h_response_free(&r);
	return v;
}

/* Poll until metric `name` equals want; 0, or -1 after timeout_ms. */
static int wait_metric(const char *name, double want, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;

	for (;;) {
		if (metric(name) == want)
			return 0;
		if (now_ms() >= deadline)
			return -1;
		poll(NULL, 0, 10);
	}
}

/* ---- max_connections ---- */

TestSuite(limits, .init = setup, .fini = teardown, .timeout = L_TEST_TIMEOUT_S);

Test(limits, connections_over_max_connections_are_closed_at_once_and_counted)
{
	char extra[64];
	int fds[L_MAXCONN], over;
	long long t0, took;
	double refused0;

	snprintf(extra, sizeof(extra), "max_connections = %d", L_MAXCONN);
	start_with_rawbot(extra, admin_section());
	cr_assert_eq(h_wait_port(admin_port, H_TIMEOUT_MS), 0, "admin port never accepted");
	/* the readiness probe's connection is gone before counting starts */
	cr_assert_eq(wait_metric("ringleader_connections_open", 0, L_ANSWER_MS), 0,
	             "connections_open never fell to 0");
	refused0 = metric("ringleader_connections_refused_total");
	cr_assert(refused0 >= 0, "no ringleader_connections_refused_total in /metrics");

	for (int i = 0; i < L_MAXCONN; i++) {
		fds[i] = h_connect(px.port);
		cr_assert(fds[i] >= 0);
		request_ok(fds[i], "a connection within max_connections");
	}
	over = h_connect(px.port);
	cr_assert(over >= 0, "the kernel completes the handshake before the proxy decides");
	t0 = now_ms();
	cr_assert_eq(h_wait_closed(over, L_FAST_MS), 0,
	             "connection %d (max_connections = %d) not closed within %d ms", L_MAXCONN + 1,
	             L_MAXCONN, L_FAST_MS);
	took = now_ms() - t0;
	cr_log_info("connection over max_connections closed after %lld ms", took);
	h_close(over);
	for (int i = 0; i < L_MAXCONN; i++)
		request_ok(fds[i], "an accepted connection next to a refused one");
	cr_assert_eq(metric("ringleader_connections_refused_total"), refused0 + 1,
	             "the refused connection is not counted");
	cr_assert_eq(metric("ringleader_connections_open"), L_MAXCONN);

	/* one leaves: once the proxy has seen it go, a new connection is served */
	h_close(fds[0]);
	cr_assert_eq(wait_metric("ringleader_connections_open", L_MAXCONN - 1, L_ANSWER_MS), 0,
	             "the proxy never noticed a client leaving");
	fds[0] = h_connect(px.port);
	cr_assert(fds[0] >= 0);
	request_ok(fds[0], "a new connection after one left");
	cr_assert_eq(metric("ringleader_connections_refused_total"), refused0 + 1);
	for (int i = 0; i < L_MAXCONN; i++)
		h_close(fds[i]);
	cr_assert_eq(rawbot_requests(rb), 2 * L_MAXCONN + 1, "backend saw %u requests",
	             rawbot_requests(rb));
	finish();
}

/*
 * max_connections bounds the process, not each worker: with workers = 2 (one SO_REUSEPORT
 * listener each, the kernel spreading connections between them) the sixth connection is
 * refused all the same.
 */
Test(limits, max_connections_holds_for_the_process_across_workers)
{
	int fds[L_MAXCONN_TRIES];
	int served = 0, refused = 0;
	char extra[64];

	snprintf(extra, sizeof(extra), "workers = 2\nmax_connections = %d", L_MAXCONN);
	start_with_rawbot(extra, admin_section());
	cr_assert_eq(h_wait_port(admin_port, H_TIMEOUT_MS), 0, "admin port never accepted");
	cr_assert_eq(wait_metric("ringleader_connections_open", 0, L_ANSWER_MS), 0,
	             "connections_open never fell to 0");
	for (int i = 0; i < L_MAXCONN_TRIES; i++) {
		struct h_response r;
		enum outcome o;

		fds[i] = h_connect(px.port);
		cr_assert(fds[i] >= 0);
		cr_assert_eq(h_send_str(fds[i], L_OK_REQUEST), 0);
		o = read_outcome(fds[i], &r, L_ANSWER_MS);
		cr_assert(o == OUT_CLOSED || (o == OUT_RESPONSE && r.status == 200),
		          "connection %d: %s %d", i, outcome_name(o), r.status);
		if (o == OUT_CLOSED)
			refused++;
		else
			served++;
		h_response_free(&r);
	}
	cr_log_info("workers = 2, max_connections = %d: %d of %d connections served", L_MAXCONN,
	            served, L_MAXCONN_TRIES);
	cr_expect_eq(metric("ringleader_connections_open"), served);
	cr_assert_eq(served, L_MAXCONN,
	             "%d connections open at once with max_connections = %d (workers = 2): the "
	             "limit is enforced per worker, not for the process",
	             served, L_MAXCONN);
	cr_assert_eq(refused, L_MAXCONN_TRIES - L_MAXCONN);
	for (int i = 0; i < L_MAXCONN_TRIES; i++)
		h_close(fds[i]);
	finish();
}

/* ---- the descriptor limit ---- */

/* Poll until the proxy holds at most (atmost) or at least (!atmost) n descriptors. */
static int wait_fds(int n, bool atmost, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;

	for (;;) {
		int have = h_proc_fds(px.pid);

		if (have >= 0 && (atmost ? have <= n : have >= n))
			return 0;
		if (now_ms() >= deadline)
			return -1;
		poll(NULL, 0, 5);
	}
}

/* Has the proxy closed any of fds[0..n)? (They sent nothing, so readable means closed.) */
static bool any_closed(const int *fds, int n)
{
	for (int i = 0; i < n; i++) {
		struct pollfd pf = {.fd = fds[i], .events = POLLIN | POLLRDHUP};

		if (poll(&pf, 1, 0) == 1)
			return true;
	}
	return false;
}

/*
 * More clients than descriptors: the proxy either runs into EMFILE (then it must pause
 * accepting rather than spin on a listener that stays readable) or refuses the excess
 * at once from a descriptor budget. Either way it stays up and idle, and serves again once
 * the clients leave.
 */
Test(limits, emfile_pauses_accept_without_spinning_and_accept_resumes)
{
	int fds[L_NOFILE_CLIENT];
	long ticks0, ticks1, tck = sysconf(_SC_CLK_TCK);
	long long spent_ms, deadline;
	bool at_limit = false;
	int base;

	start_with_botsim("", "[upstream]\nmax_idle_per_backend = 0\n", L_NOFILE);
	cr_assert_eq(wait_fds(L_NOFILE / 2, true, L_ANSWER_MS), 0,
	             "the proxy holds %d descriptors before any client (limit %d)",
	             h_proc_fds(px.pid), L_NOFILE);
	base = h_proc_fds(px.pid);
	for (int i = 0; i < L_NOFILE_CLIENT; i++) {
		fds[i] = h_connect(px.port);
		cr_assert(fds[i] >= 0, "connect %d failed", i);
	}
	/* saturated: every descriptor in use (accept() fails with EMFILE exactly then), or
	 * the excess refused */
	deadline = now_ms() + L_ANSWER_MS;
	for (;;) {
		at_limit = h_proc_fds(px.pid) >= L_NOFILE;
		if (at_limit || any_closed(fds, L_NOFILE_CLIENT))
			break;
		cr_assert(now_ms() < deadline,
		          "%d clients: the proxy neither reached its descriptor limit (%d of %d in "
		          "use) nor refused any",
		          L_NOFILE_CLIENT, h_proc_fds(px.pid), L_NOFILE);
		poll(NULL, 0, 5);
	}

	ticks0 = h_proc_cpu_ticks(px.pid);
	cr_assert(ticks0 >= 0);
	poll(NULL, 0, L_SPIN_MS); /* a measurement window, not a wait for an event */
	ticks1 = h_proc_cpu_ticks(px.pid);
	spent_ms = (ticks1 - ticks0) * 1000 / tck;
	cr_log_info("%s: %lld ms CPU in %d ms", at_limit ? "at EMFILE" : "refusing the excess",
	            spent_ms, L_SPIN_MS);
	cr_assert_eq(h_wait_exit(px.pid, 0), -1, "ringleader died at the descriptor limit");
	cr_assert(spent_ms <= L_SPIN_MAX_MS,
	          "ringleader used %lld ms CPU in %d ms at the descriptor limit (accept spins)",
	          spent_ms, L_SPIN_MS);
	if (at_limit)
		cr_assert(h_file_contains(px.log, "Too many open files"),
		          "the EMFILE pause is not logged (log %s)", px.log);

	for (int i = 0; i < L_NOFILE_CLIENT; i++)
		h_close(fds[i]);
	/* every client is gone, including those still in the backlog when they left */
	cr_assert_eq(wait_fds(base, true, L_ANSWER_MS), 0,
	             "descriptors not released: %d open, %d before the clients came",
	             h_proc_fds(px.pid), base);
	cr_assert(expect_serving("EMFILE") < L_FAST_MS, "accept did not resume promptly");
	finish();
}

/*
 * At the descriptor limit, a client the proxy did accept must still reach a backend: the
 * proxy keeps descriptors in reserve for upstream connections (and health checks) instead
 * of handing the last ones to new clients. Each backend connection is fresh here
 * (max_idle_per_backend = 0), so nothing idle can stand in for the reserve.
 */
Test(limits, accepted_clients_reach_the_backend_at_the_descriptor_limit)
{
	int fds[L_NOFILE_CLIENT];
	int served = 0, refused = 0, waiting = 0, failed = 0, first_bad = -1, bad_status = 0;
	bool backlogged = false;
	struct h_response r;
	enum outcome o;

	start_with_botsim("", "[upstream]\nmax_idle_per_backend = 0\n", L_NOFILE);
	for (int i = 0; i < L_NOFILE_CLIENT; i++) {
		fds[i] = h_connect(px.port);
		cr_assert(fds[i] >= 0, "connect %d failed", i);
		if (backlogged) { /* the proxy stopped accepting: do not wait on each */
			waiting++;
			continue;
		}
		cr_assert_eq(h_send_str(fds[i], L_OK_REQUEST), 0);
		o = read_outcome(fds[i], &r, L_BACKLOG_MS);
		if (o == OUT_RESPONSE && r.status == 200) {
			served++;
		} else if (o == OUT_CLOSED) {
			/* closed at once: refused without spending a descriptor on it */
			refused++;
		} else if (o == OUT_SILENT) {
			waiting++;
			backlogged = true;
		} else {
			failed++;
			if (first_bad < 0) {
				first_bad = i;
				bad_status = r.status;
			}
		}
		h_response_free(&r);
	}
	cr_log_info("%d clients against RLIMIT_NOFILE %d: %d served, %d refused, %d waiting, "
	            "%d failed",
	            L_NOFILE_CLIENT, L_NOFILE, served, refused, waiting, failed);
	cr_assert(served > 0, "no client was served");
	cr_expect_eq(failed, 0,
	             "%d accepted clients got an error (the first, client %d: %d) instead of a "
	             "200 or a refusal: the proxy accepted clients it had no descriptor left to "
	             "serve (log %s)",
	             failed, first_bad, bad_status, px.log);

	/* the first client is certainly accepted: its next request needs a backend socket */
	cr_assert_eq(h_send_str(fds[0], L_OK_REQUEST), 0);
	o = read_outcome(fds[0], &r, L_ANSWER_MS);
	cr_assert(o == OUT_RESPONSE && r.status == 200,
	          "at the descriptor limit an accepted client got %s %d instead of 200: no "
	          "descriptor kept in reserve for the backend connection",
	          outcome_name(o), r.status);
	h_response_free(&r);
	for (int i = 0; i < L_NOFILE_CLIENT; i++)
		h_close(fds[i]);
	finish();
}

/* ---- a request body that stalls ---- */

Test(limits, stalled_request_body_is_408_after_client_idle_timeout)
{
	char extra[64], why[256];
	long long t0, took, other;
	int fd;

	snprintf(extra, sizeof(extra), "client_idle_timeout = %dms", L_BODY_IDLE_MS);
	start_with_botsim(extra, "", 0);
	fd = h_connect(px.port);
	cr_assert(fd >= 0);
	/* botsim answers /echo only once the whole body is in: the backend never answers */
	cr_assert_eq(h_send_str(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nX-Conversation-ID: up\r\n"
	                            "Content-Length: 1000\r\n\r\n0123456789"),
	             0);
	t0 = now_ms();
	other = expect_serving("a stalled upload");
	cr_assert(other < L_FAST_MS, "a normal request took %lld ms next to a stalled upload",
	          other);
	expect_error_on("stalled body", fd, 408, L_ANSWER_MS, why, sizeof(why));
	took = now_ms() - t0;
	h_close(fd);
	cr_log_info("stalled body: 408 (%s) after %lld ms", why, took);
	cr_assert(took >= L_BODY_IDLE_MS * 8 / 10, "408 after %lld ms, before client_idle_timeout",
	          took);
	cr_assert(took < L_ANSWER_MS, "408 only after %lld ms", took);
	cr_assert(strstr(why, "body") != NULL, "the error does not say the body was late: %s", why);
	expect_serving("a 408 for a stalled body");
	finish();
}

/* ---- floods ---- */

/* Send what fits of buf now (the socket is not waited on). 0 / -1 on a dead socket. */
static int send_now(int fd, const char *buf, size_t len)
{
	ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

	return n >= 0 || errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
}

Test(limits, slow_near_maximal_heads_do_not_block_a_normal_request)
{
	static char first[L_FLOOD_FIRST], step[L_FLOOD_STEP];
	static const char start[] = "GET /flood HTTP/1.1\r\nHost: x\r\nX-Pad: ";
	char extra[128];
	int fds[L_FLOOD_CONNS];
	long long t0, worst = 0, deadline;
	int normal = 0;

	_Static_assert(L_FLOOD_FIRST + L_FLOOD_ROUNDS * L_FLOOD_STEP < L_HEAD_MAX,
	               "the flood heads must stay under max_header_size");
	snprintf(extra, sizeof(extra), "header_timeout = %ds\nmax_header_size = %d",
	         L_HEAD_TIMEOUT_S, L_HEAD_MAX);
	start_with_rawbot(extra, "");
	memset(first, 'a', sizeof(first));
	memcpy(first, start, sizeof(start) - 1);
	memset(step, 'b', sizeof(step));

	t0 = now_ms();
	for (int i = 0; i < L_FLOOD_CONNS; i++) {
		fds[i] = h_connect(px.port);
		cr_assert(fds[i] >= 0, "connect %d failed", i);
		cr_assert_eq(h_send(fds[i], first, sizeof(first)), 0);
	}
	for (int round = 0; round < L_FLOOD_ROUNDS && now_ms() - t0 < L_HEAD_TIMEOUT_S * 1000 / 2;
	     round++) {
		for (int i = 0; i < L_FLOOD_CONNS; i++)
			cr_assert_eq(send_now(fds[i], step, sizeof(step)), 0,
			             "flood connection %d died before header_timeout", i);
		long long took = expect_serving("a flood of slow heads");
		normal++;
		if (took > worst)
			worst = took;
		poll(NULL, 0, L_FLOOD_PACE_MS); /* pace the trickle */
	}
	cr_log_info("%d normal requests next to %d slow %d-byte heads: slowest %lld ms", normal,
	            L_FLOOD_CONNS, L_FLOOD_FIRST, worst);
	cr_assert(worst < L_FAST_MS, "a normal request took %lld ms next to the flood", worst);

	/* every slow head is cut at header_timeout with a 408 */
	deadline = t0 + L_HEAD_TIMEOUT_S * 1000 + L_ANSWER_MS;
	for (int i = 0; i < L_FLOOD_CONNS; i++) {
		long long left = deadline - now_ms();
		char what[64];

		snprintf(what, sizeof(what), "slow head %d", i);
		expect_error_on(what, fds[i], 408, left > 0 ? (int)left : 0, NULL, 0);
		h_close(fds[i]);
	}
	cr_assert_eq(rawbot_requests(rb), (unsigned)normal, "the backend saw %u requests, %d sent",
	             rawbot_requests(rb), normal);
	expect_serving("the flood ended");
	finish();
}

/* xorshift32: a fixed, reproducible stream of garbage. */
static uint32_t next_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

Test(limits, garbage_flood_is_400_and_never_reaches_the_backend)
{
	static const char *const prefixes[] = {
	        "",                                /* garbage from the first byte */
	        "GET / HTTP/1.1\r\n",              /* a request line, then garbage fields */
	        "POST /x HTTP/1.1\r\nHost: x\r\n", /* fields, then garbage */
	};
	int fds[L_GARBAGE_CONNS];
	int n400 = 0, nclosed = 0;
	uint32_t seed = 0x9e3779b9u;

	start_with_rawbot("", "");
	for (int i = 0; i < L_GARBAGE_CONNS; i++) {
		char buf[L_GARBAGE_BYTES];
		const char *pre = prefixes[i % 3];
		size_t plen = strlen(pre);

		memcpy(buf, pre, plen);
		for (size_t k = plen; k < sizeof(buf); k++)
			buf[k] = (char)(next_rand(&seed) & 0xff);
		if (i % 2 == 1) /* half of them end as if the head were complete */
			memcpy(buf + sizeof(buf) - 4, "\r\n\r\n", 4);
		fds[i] = h_connect(px.port);
		cr_assert(fds[i] >= 0, "connect %d failed", i);
		cr_assert_eq(h_send(fds[i], buf, sizeof(buf)), 0, "send %d failed", i);
	}
	for (int i = 0; i < L_GARBAGE_CONNS; i++) {
		struct h_response r;
		enum outcome o = read_outcome(fds[i], &r, L_ANSWER_MS);

		cr_assert(o == OUT_RESPONSE || o == OUT_CLOSED, "garbage %d: %s", i,
		          outcome_name(o));
		if (o == OUT_RESPONSE) {
			char v[128];

			cr_assert_eq(r.status, 400, "garbage %d: got %d:\n%s%s", i, r.status,
			             r.head, r.body);
			cr_assert_not_null(h_json_field(r.body, "error", v, sizeof(v)),
			                   "garbage %d: body %s", i, r.body);
			n400++;
		} else {
			nclosed++;
		}
		h_response_free(&r);
		h_close(fds[i]);
	}
	cr_log_info("garbage flood: %d answered 400, %d closed", n400, nclosed);
	cr_assert_eq(rawbot_requests(rb), 0, "garbage reached the backend (%u requests)",
	             rawbot_requests(rb));
	cr_assert(expect_serving("a garbage flood") < L_FAST_MS);
	finish();
}
