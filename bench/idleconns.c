/*
 * idleconns — hold many client connections open against a proxy, for memory measurements.
 *
 *   idleconns -p PORT -n N [-m connect|request|head|pipeline] [-s BYTES] [-d MS]
 *
 *   connect   open N connections and send nothing
 *   request   on each, one keep-alive request (read its whole response), then stay idle
 *   head      on each, BYTES of a request head that never ends (a maximal head when
 *             BYTES = max_header_size - 1), then hold
 *   pipeline  on each, a request botsim answers after MS (GET /slow?ms=MS, default 10
 *             minutes), then up to BYTES of further requests pipelined behind it (what
 *             the socket takes at once), then hold: the proxy must not buffer them all
 *
 * When all N are set up it prints one line `ready opened=N failed=F` on stdout, then holds
 * every connection until SIGTERM or SIGINT, and prints `done alive=A closed=C`
 * (connections the peer had closed meanwhile). The descriptor
 * limit is raised to the hard limit first. Plain POSIX sockets, no event library.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define IC_MAX_CONNS     1000000    /* most connections asked for */
#define IC_HEAD_MAX      (1u << 20) /* largest -s, bytes (max_header_size's range) */
#define IC_RESP_MAX      65536      /* largest response read in request mode, bytes */
#define IC_IO_TIMEOUT_MS 10000      /* bound for one connect, send or response */
#define IC_REQUEST_TEXT  "GET /idle HTTP/1.1\r\nHost: x\r\nX-Conversation-ID: idle\r\n\r\n"
#define IC_SLOW_FORMAT   "GET /slow?ms=%ld HTTP/1.1\r\nHost: x\r\nX-Conversation-ID: idle\r\n\r\n"
#define IC_SLOW_MS       600000 /* default -d: botsim answers the pipelining clients after it */
#define IC_SLOW_MS_MAX   86400000

enum ic_mode { IC_CONNECT = 1, IC_REQUEST, IC_HEAD, IC_PIPELINE };

static volatile sig_atomic_t ic_stop;

static void on_signal(int sig)
{
	(void)sig;
	ic_stop = 1;
}

static void usage(void) __attribute__((noreturn));

static void usage(void)
{
	fprintf(stderr,
	        "usage: idleconns -p PORT -n N [-m connect|request|head] [-s HEAD_BYTES]\n");
	exit(2);
}

static long parse_num(const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		usage();
	return v;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int open_conn(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {.tv_sec = IC_IO_TIMEOUT_MS / 1000};
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read one response with a Content-Length body (what the proxy and botsim send). 0 / -1. */
static int read_response(int fd, char *buf, size_t cap)
{
	size_t len = 0, need = 0;

	for (;;) {
		ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
		char *end, *cl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = '\0';
		if (need == 0 && (end = strstr(buf, "\r\n\r\n")) != NULL) {
			cl = strcasestr(buf, "\r\ncontent-length:");
			if (strncmp(buf, "HTTP/1.1 200", 12) != 0 || cl == NULL || cl > end)
				return -1;
			need = (size_t)(end - buf) + 4 + strtoul(cl + 17, NULL, 10);
		}
		if (need > 0 && len >= need)
			return 0;
		if (len == cap - 1)
			return -1;
	}
}

/* Peer closed (or reset) fd? Non-blocking check. */
static bool peer_closed(int fd)
{
	struct pollfd pf = {.fd = fd, .events = POLLIN};
	char b;

	if (poll(&pf, 1, 0) <= 0)
		return false;
	return recv(fd, &b, 1, MSG_DONTWAIT | MSG_PEEK) <= 0;
}

int main(int argc, char **argv)
{
	enum ic_mode mode = IC_CONNECT;
	long port = 0, n = 0, head_bytes = 0, opened = 0, failed = 0, closed = 0;
	long slow_ms = IC_SLOW_MS;
	static const char req[] = IC_REQUEST_TEXT; /* one conversation key: one pin in all */
	static char resp[IC_RESP_MAX];
	char *head = NULL;
	int *fds, opt;

	while ((opt = getopt(argc, argv, "p:n:m:s:d:")) != -1) {
		switch (opt) {
		case 'p':
			port = parse_num(optarg, 1, 65535);
			break;
		case 'n':
			n = parse_num(optarg, 1, IC_MAX_CONNS);
			break;
		case 'm':
			if (strcmp(optarg, "connect") == 0)
				mode = IC_CONNECT;
			else if (strcmp(optarg, "request") == 0)
				mode = IC_REQUEST;
			else if (strcmp(optarg, "head") == 0)
				mode = IC_HEAD;
			else if (strcmp(optarg, "pipeline") == 0)
				mode = IC_PIPELINE;
			else
				usage();
			break;
		case 'd':
			slow_ms = parse_num(optarg, 0, IC_SLOW_MS_MAX);
			break;
		case 's':
			head_bytes = parse_num(optarg, 64, IC_HEAD_MAX);
			break;
		default:
			usage();
		}
	}
	if (port == 0 || n == 0 || ((mode == IC_HEAD || mode == IC_PIPELINE) && head_bytes == 0))
		usage();
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	fds = calloc((size_t)n, sizeof(*fds));
	if (mode == IC_HEAD) {
		static const char start[] = "GET /idle HTTP/1.1\r\nHost: x\r\nX-Pad: ";
		head = malloc((size_t)head_bytes);
		if (head != NULL) {
			memset(head, 'a', (size_t)head_bytes);
			memcpy(head, start, sizeof(start) - 1);
		}
	}
	if (mode == IC_PIPELINE) {
		static const char one[] = IC_REQUEST_TEXT;
		char slow[sizeof(IC_SLOW_FORMAT) + 16];
		size_t k = (size_t)snprintf(slow, sizeof(slow), IC_SLOW_FORMAT, slow_ms);

		if ((size_t)head_bytes < k)
			head_bytes = (long)k;
		head = malloc((size_t)head_bytes);
		if (head != NULL) {
			memcpy(head, slow, k);
			for (; k + sizeof(one) - 1 <= (size_t)head_bytes; k += sizeof(one) - 1)
				memcpy(head + k, one, sizeof(one) - 1);
			head_bytes = (long)k;
		}
	}
	if (fds == NULL || ((mode == IC_HEAD || mode == IC_PIPELINE) && head == NULL)) {
		fprintf(stderr, "idleconns: out of memory\n");
		return 1;
	}
	for (long i = 0; i < n && !ic_stop; i++) {
		int fd = open_conn((int)port);
		bool ok = fd >= 0;

		if (ok && mode == IC_REQUEST)
			ok = send_all(fd, req, sizeof(req) - 1) == 0 &&
			     read_response(fd, resp, sizeof(resp)) == 0;
		else if (ok && mode == IC_HEAD)
			ok = send_all(fd, head, (size_t)head_bytes) == 0;
		else if (ok && mode == IC_PIPELINE) /* what fits now; the rest is never sent */
			ok = send(fd, head, (size_t)head_bytes, MSG_NOSIGNAL | MSG_DONTWAIT) > 0;
		if (!ok) {
			if (fd >= 0)
				close(fd);
			fd = -1;
			failed++;
		} else {
			opened++;
		}
		fds[i] = fd;
	}
	printf("ready opened=%ld failed=%ld\n", opened, failed);
	fflush(stdout);
	while (!ic_stop)
		poll(NULL, 0, 1000); /* a signal ends the wait early */
	for (long i = 0; i < n; i++) {
		if (fds[i] < 0)
			continue;
		if (peer_closed(fds[i]))
			closed++;
		close(fds[i]);
	}
	printf("done alive=%ld closed=%ld\n", opened - closed, closed);
	free(fds);
	free(head);
	return 0;
}
