/*
 * relayfloor — the kernel floor of relaying keep-alive HTTP on loopback. A reference relay
 * that does only what every proxy must (accept, one backend connection per client, read and
 * write the bytes both ways) and nothing else (no HTTP parsing, no routing by key, no
 * allocation per request, no timers, no logging), so its CPU time per request is the socket
 * cost a real proxy cannot go below on the same machine.
 *
 *   relayfloor -l 127.0.0.1:PORT -b 127.0.0.1:PORT [-b ...]
 *
 *   client ──► buf[0] (16 kB) ──► backend   (chosen round-robin at accept, kept for life)
 *   client ◄── buf[1] (16 kB) ◄── backend
 *
 * Relaying bytes is enough for a closed-loop request/response client because each client
 * has a backend connection of its own: responses come back, in order, on the connection
 * that asked. One thread, one epoll set, edge-triggered: each socket is registered once for
 * input and output and never modified, so the steady state is epoll_wait, read and write
 * only. EOF or an error on either side closes both (the workload has no half-closed
 * requests). IPv4 only. PORT 0 on -l takes an ephemeral port; the bound one is printed on
 * stdout ("relayfloor listening on 127.0.0.1:PORT"). SIGTERM or SIGINT: close all, exit 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define RF_BUF_SIZE     16384 /* bytes per direction per client */
#define RF_MAX_BACKENDS 64
#define RF_BACKLOG      4096 /* the kernel caps it at somaxconn */
#define RF_MAX_EVENTS   256  /* epoll events taken per wait */
#define RF_EXIT_USAGE   2

enum rf_kind { RF_LISTENER, RF_SIGNAL, RF_CLIENT, RF_BACKEND };

/* One registered descriptor: what epoll hands back in data.ptr. */
struct rf_end {
	int fd;
	enum rf_kind kind;
	struct rf_relay *relay; /* NULL for the listener and the signalfd */
	bool readable;          /* bytes may be waiting: set by an edge, cleared once drained */
	bool eof_seen;          /* RDHUP, HUP or ERR reported: read until 0 or an error */
};

/* Bytes read from one end that the other end has not taken yet. */
struct rf_buf {
	size_t off, len;
	char data[RF_BUF_SIZE];
};

/* A client and its backend. end[0] is the client, end[1] the backend; buf[d] holds bytes
 * read from end[d] for end[!d]. */
struct rf_relay {
	struct rf_relay *prev, *next; /* in rf.live; once closed, next links rf.dead */
	struct rf_end end[2];
	struct rf_buf buf[2];
	bool closed;
};

struct rf {
	int ep;
	struct rf_end listener, signal;
	struct sockaddr_in backend[RF_MAX_BACKENDS];
	size_t nbackends, next_backend;
	struct rf_relay *live; /* every open relay, so the exit path can close them */
	struct rf_relay *dead; /* closed in this epoll batch: freed once the batch is done */
	unsigned long accepted;
};

static void usage(void) __attribute__((noreturn));

static void usage(void)
{
	fprintf(stderr, "usage: relayfloor -l 127.0.0.1:PORT -b 127.0.0.1:PORT [-b ...]\n");
	exit(RF_EXIT_USAGE);
}

/* "A.B.C.D:PORT" into sa; PORT 0 only where an ephemeral port makes sense (-l). */
static void parse_addr(const char *spec, struct sockaddr_in *sa, long min_port)
{
	char host[INET_ADDRSTRLEN];
	const char *colon = strrchr(spec, ':');
	char *end;
	long port;

	if (colon == NULL || (size_t)(colon - spec) >= sizeof(host))
		usage();
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || port < min_port || port > 65535)
		usage();
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		usage();
}

/* Two descriptors per client: many clients need more than the usual soft limit. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Small requests and responses must leave at once, not wait for Nagle's ACK. */
static void set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int ep_add(struct rf *rf, struct rf_end *e, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = e};

	return epoll_ctl(rf->ep, EPOLL_CTL_ADD, e->fd, &ev);
}

static int open_listener(const struct sockaddr_in *sa)
{
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0 ||
	    listen(fd, RF_BACKLOG) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* SIGTERM and SIGINT arrive as a readable descriptor in the epoll set: no handler, no
 * flag, and no window between checking a flag and sleeping in epoll_wait. */
static int open_signalfd(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return -1;
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* Non-blocking connect. While it is in progress write() says EAGAIN, and the end of the
 * handshake raises an EPOLLOUT edge: a connecting backend is just a full one. */
static int connect_backend(const struct sockaddr_in *sa)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	set_nodelay(fd);
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0 && errno != EINPROGRESS) {
		perror("relayfloor: connect");
		close(fd);
		return -1;
	}
	return fd;
}

static void end_init(struct rf_end *e, int fd, enum rf_kind kind, struct rf_relay *r)
{
	*e = (struct rf_end){.fd = fd, .kind = kind, .relay = r};
}

/* Pairs client fd cfd with a new backend connection. 0, or -1 (cfd left to the caller). */
static int relay_open(struct rf *rf, int cfd)
{
	/* In and out on both ends, edge-triggered, once: no epoll_ctl per request. */
	const uint32_t events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
	struct rf_relay *r;
	int bfd = connect_backend(&rf->backend[rf->next_backend]);

	rf->next_backend = (rf->next_backend + 1) % rf->nbackends;
	if (bfd < 0)
		return -1;
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		close(bfd);
		return -1;
	}
	end_init(&r->end[0], cfd, RF_CLIENT, r);
	end_init(&r->end[1], bfd, RF_BACKEND, r);
	if (ep_add(rf, &r->end[0], events) != 0 || ep_add(rf, &r->end[1], events) != 0) {
		close(bfd); /* cfd is closed by the caller before epoll can report it */
		free(r);
		return -1;
	}
	r->next = rf->live;
	if (rf->live != NULL)
		rf->live->prev = r;
	rf->live = r;
	return 0;
}

/* Closing both descriptors takes them out of the epoll set. The memory stays until the
 * batch is done, as events for the other end may still be in the array being walked. */
static void relay_close(struct rf *rf, struct rf_relay *r)
{
	close(r->end[0].fd);
	close(r->end[1].fd);
	r->closed = true;
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		rf->live = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	r->next = rf->dead;
	rf->dead = r;
}

static void reap(struct rf *rf)
{
	while (rf->dead != NULL) {
		struct rf_relay *r = rf->dead;

		rf->dead = r->next;
		free(r);
	}
}

/* Writes what buf[d] holds to end[!d]. 1: all of it; 0: the rest waits for end[!d]'s
 * EPOLLOUT edge; -1: error. A partial write means the socket buffer is full, so there is
 * no second try that could only say EAGAIN. */
static int flush(struct rf_relay *r, int d)
{
	struct rf_buf *b = &r->buf[d];
	ssize_t n;

	if (b->len == 0)
		return 1;
	n = write(r->end[!d].fd, b->data + b->off, b->len);
	if (n < 0)
		return errno == EAGAIN ? 0 : -1;
	b->off += (size_t)n;
	b->len -= (size_t)n;
	if (b->len > 0)
		return 0;
	b->off = 0;
	return 1;
}

/* Reads once from end[d] into the empty buf[d]. Bytes read, 0 when there is nothing to
 * read now, -1 on EOF or error. */
static ssize_t fill(struct rf_relay *r, int d)
{
	struct rf_end *e = &r->end[d];
	ssize_t n = read(e->fd, r->buf[d].data, RF_BUF_SIZE);

	if (n > 0) {
		/* A short TCP read took everything queued, and any later byte raises a new edge:
		 * skip the read that would only say EAGAIN (nginx does the same). Not when an
		 * EOF or error was reported: that came with the edge already taken. */
		if ((size_t)n < RF_BUF_SIZE && !e->eof_seen)
			e->readable = false;
		return n;
	}
	if (n < 0 && errno == EAGAIN) {
		e->readable = false;
		return 0;
	}
	return -1;
}

/* Moves bytes from end[d] to end[!d] until end[d] is drained or end[!d] is full. 0, or -1
 * to close the relay. */
static int pump(struct rf_relay *r, int d)
{
	for (;;) {
		int f = flush(r, d);
		ssize_t n;

		if (f <= 0)
			return f;
		if (!r->end[d].readable)
			return 0;
		n = fill(r, d);
		if (n <= 0)
			return (int)n;
		r->buf[d].len = (size_t)n;
	}
}

static void on_relay_event(struct rf *rf, struct rf_end *e, uint32_t events)
{
	struct rf_relay *r = e->relay;
	int side = e->kind == RF_BACKEND;

	if (r->closed) /* its other end closed it earlier in this batch */
		return;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		e->readable = true;
	if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		e->eof_seen = true;
	/* Read from this end; then write what the other end left waiting for this end's
	 * EPOLLOUT (no system call when nothing waits). */
	if (pump(r, side) < 0 || pump(r, !side) < 0)
		relay_close(rf, r);
}

/* Accepts until the backlog is empty, as the listener is edge-triggered. On EMFILE and the
 * like the waiting connections stay queued until the next one raises a new edge. */
static void on_accept(struct rf *rf)
{
	for (;;) {
		int fd = accept4(rf->listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == ECONNABORTED || errno == EINTR)
				continue;
			if (errno != EAGAIN)
				perror("relayfloor: accept4");
			return;
		}
		set_nodelay(fd);
		if (relay_open(rf, fd) != 0)
			close(fd);
		else
			rf->accepted++;
	}
}

/* The event loop. Returns 0 on SIGTERM/SIGINT, -1 if epoll_wait fails. */
static int run(struct rf *rf)
{
	struct epoll_event ev[RF_MAX_EVENTS];

	for (;;) {
		int n = epoll_wait(rf->ep, ev, RF_MAX_EVENTS, -1);

		if (n < 0 && errno == EINTR) /* SIGSTOP/SIGCONT interrupt it too */
			continue;
		if (n < 0)
			return -1;
		for (int i = 0; i < n; i++) {
			struct rf_end *e = ev[i].data.ptr;

			if (e->kind == RF_SIGNAL)
				return 0;
			if (e->kind == RF_LISTENER)
				on_accept(rf);
			else
				on_relay_event(rf, e, ev[i].events);
		}
		reap(rf);
	}
}

static void parse_args(struct rf *rf, struct sockaddr_in *listen_sa, int argc, char **argv)
{
	bool have_listen = false;
	int opt;

	while ((opt = getopt(argc, argv, "l:b:")) != -1) {
		if (opt == 'l') {
			parse_addr(optarg, listen_sa, 0);
			have_listen = true;
		} else if (opt == 'b' && rf->nbackends < RF_MAX_BACKENDS) {
			parse_addr(optarg, &rf->backend[rf->nbackends++], 1);
		} else {
			usage();
		}
	}
	if (!have_listen || rf->nbackends == 0 || optind != argc)
		usage();
}

/* Listener, signalfd and epoll set, then "relayfloor listening on ADDR" on stdout. */
static int setup(struct rf *rf, const struct sockaddr_in *listen_sa)
{
	struct sockaddr_in bound;
	socklen_t len = sizeof(bound);
	char host[INET_ADDRSTRLEN];

	rf->ep = epoll_create1(EPOLL_CLOEXEC);
	end_init(&rf->listener, open_listener(listen_sa), RF_LISTENER, NULL);
	end_init(&rf->signal, open_signalfd(), RF_SIGNAL, NULL);
	if (rf->ep < 0 || rf->listener.fd < 0 || rf->signal.fd < 0 ||
	    ep_add(rf, &rf->listener, EPOLLIN | EPOLLET) != 0 ||
	    ep_add(rf, &rf->signal, EPOLLIN) != 0 ||
	    getsockname(rf->listener.fd, (struct sockaddr *)&bound, &len) != 0)
		return -1;
	inet_ntop(AF_INET, &bound.sin_addr, host, sizeof(host));
	printf("relayfloor listening on %s:%u\n", host, ntohs(bound.sin_port));
	fflush(stdout);
	return 0;
}

static void teardown(struct rf *rf)
{
	reap(rf);
	while (rf->live != NULL)
		relay_close(rf, rf->live);
	reap(rf);
	close(rf->listener.fd);
	close(rf->signal.fd);
	close(rf->ep);
}

int main(int argc, char **argv)
{
	static struct rf rf; /* static: the backend table is not for the stack */
	struct sockaddr_in listen_sa;
	int rc;

	parse_args(&rf, &listen_sa, argc, argv);
	raise_nofile();
	/* A peer that closes while we write must give EPIPE, not kill the process. */
	signal(SIGPIPE, SIG_IGN);
	if (setup(&rf, &listen_sa) != 0) {
		perror("relayfloor: setup");
		return 1;
	}
	rc = run(&rf);
	if (rc != 0)
		perror("relayfloor: epoll_wait");
	teardown(&rf);
	fprintf(stderr, "relayfloor: stopped after %lu clients\n", rf.accepted);
	return rc == 0 ? 0 : 1;
}
