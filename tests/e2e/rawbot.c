/*
 * rawbot — scripted raw TCP backend on a thread (see rawbot.h).
 *
 * One poll() loop over a wake-up pipe, the listener and up to RAWBOT_MAX_CONNS accepted
 * connections. Each connection collects bytes until a head ends (CRLF CRLF), skips a
 * Content-Length body if the head announced one, and acts on the head per the mode. A
 * "close" is a half-close (shutdown SHUT_WR): the peer reads the script, then EOF, and
 * never a reset caused by bytes we left unread.
 */
#define _GNU_SOURCE /* memmem, pipe2 */
#include "rawbot.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define RAWBOT_MAX_CONNS      32            /* connections served at once */
#define RAWBOT_RX_MAX         (64u * 1024u) /* bytes of one unfinished head kept */
#define RAWBOT_SEND_TIMEOUT_S 2 /* a peer that stops reading cannot block the thread longer */
#define RAWBOT_OK_REPLY       "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"

struct rawbot_conn {
	int fd;        /* -1 when the slot is free */
	char *rx;      /* owned: bytes of the head being read */
	size_t rxlen;  /* bytes */
	uint64_t skip; /* request body bytes still to discard */
	bool done;     /* half-closed or hung: read and discard only */
};

struct rawbot {
	pthread_t thread;
	pthread_mutex_t mu; /* guards everything below the listener */
	int lfd;
	int wake[2]; /* pipe: a byte means stop */
	int port;
	enum rawbot_mode mode;
	char *script;      /* owned */
	size_t script_len; /* bytes */
	unsigned requests;
	unsigned connections;
	char *log; /* owned: received bytes, RAWBOT_LOG_MAX at most */
	size_t log_len;
	struct rawbot_conn conns[RAWBOT_MAX_CONNS];
};

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void conn_drop(struct rawbot_conn *c)
{
	close(c->fd);
	free(c->rx);
	*c = (struct rawbot_conn){.fd = -1};
}

/* Value of Content-Length in head[0..len), 0 if absent or unreadable. */
static uint64_t head_content_length(const char *head, size_t len)
{
	static const char name[] = "\r\ncontent-length:";
	size_t nlen = sizeof(name) - 1;

	for (size_t i = 0; i + nlen <= len; i++) {
		if (strncasecmp(head + i, name, nlen) != 0)
			continue;
		const char *p = head + i + nlen;
		while (p < head + len && (*p == ' ' || *p == '\t'))
			p++;
		uint64_t v = 0;
		while (p < head + len && *p >= '0' && *p <= '9' && v < UINT64_C(1) << 40)
			v = v * 10 + (uint64_t)(*p++ - '0');
		return v;
	}
	return 0;
}

static bool head_is_ok(const char *head, size_t len)
{
	const char *sp = memchr(head, ' ', len);

	return sp != NULL && (size_t)(head + len - sp) > 4 && memcmp(sp + 1, "/ok", 3) == 0;
}

/* Act on every complete head in c->rx. Called with rb->mu held. */
static void conn_process(struct rawbot *rb, struct rawbot_conn *c)
{
	while (!c->done) {
		if (c->skip > 0) {
			size_t n = c->skip < c->rxlen ? (size_t)c->skip : c->rxlen;
			memmove(c->rx, c->rx + n, c->rxlen - n);
			c->rxlen -= n;
			c->skip -= n;
			if (c->skip > 0)
				return;
		}
		char *end = memmem(c->rx, c->rxlen, "\r\n\r\n", 4);
		if (end == NULL) {
			if (c->rxlen == RAWBOT_RX_MAX)
				c->rxlen = 0;
			return;
		}
		size_t hlen = (size_t)(end - c->rx) + 4;
		bool ok = head_is_ok(c->rx, hlen);
		c->skip = head_content_length(c->rx, hlen);
		memmove(c->rx, c->rx + hlen, c->rxlen - hlen);
		c->rxlen -= hlen;
		rb->requests++;
		if (ok) {
			write_all(c->fd, RAWBOT_OK_REPLY, sizeof(RAWBOT_OK_REPLY) - 1);
			continue;
		}
		switch (rb->mode) {
		case RAWBOT_REPLY:
			write_all(c->fd, rb->script, rb->script_len);
			break;
		case RAWBOT_REPLY_CLOSE:
			write_all(c->fd, rb->script, rb->script_len);
			shutdown(c->fd, SHUT_WR);
			c->done = true;
			break;
		case RAWBOT_HANG:
			c->done = true;
			break;
		case RAWBOT_CLOSE:
			shutdown(c->fd, SHUT_WR);
			c->done = true;
			break;
		}
	}
}

static void accept_one(struct rawbot *rb)
{
	struct timeval tv = {.tv_sec = RAWBOT_SEND_TIMEOUT_S};
	int fd = accept(rb->lfd, NULL, NULL);

	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	for (int i = 0; i < RAWBOT_MAX_CONNS; i++) {
		struct rawbot_conn *c = &rb->conns[i];
		if (c->fd >= 0)
			continue;
		c->rx = malloc(RAWBOT_RX_MAX);
		if (c->rx == NULL)
			break;
		c->fd = fd;
		pthread_mutex_lock(&rb->mu);
		rb->connections++;
		pthread_mutex_unlock(&rb->mu);
		return;
	}
	close(fd);
}

static void conn_readable(struct rawbot *rb, struct rawbot_conn *c)
{
	char buf[16384];
	ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

	if (n < 0 && errno == EINTR)
		return;
	if (n <= 0) {
		conn_drop(c);
		return;
	}
	pthread_mutex_lock(&rb->mu);
	size_t keep =
	        (size_t)n < RAWBOT_LOG_MAX - rb->log_len ? (size_t)n : RAWBOT_LOG_MAX - rb->log_len;
	memcpy(rb->log + rb->log_len, buf, keep);
	rb->log_len += keep;
	if (!c->done) {
		for (size_t off = 0; off < (size_t)n;) {
			size_t room = RAWBOT_RX_MAX - c->rxlen;
			size_t take = (size_t)n - off < room ? (size_t)n - off : room;
			memcpy(c->rx + c->rxlen, buf + off, take);
			c->rxlen += take;
			off += take;
			conn_process(rb, c);
			if (c->done)
				break;
		}
	}
	pthread_mutex_unlock(&rb->mu);
}

static void *rawbot_main(void *arg)
{
	struct rawbot *rb = arg;

	for (;;) {
		struct pollfd pfd[2 + RAWBOT_MAX_CONNS];
		int slot[2 + RAWBOT_MAX_CONNS];
		nfds_t n = 0;

		pfd[n++] = (struct pollfd){.fd = rb->wake[0], .events = POLLIN};
		pfd[n++] = (struct pollfd){.fd = rb->lfd, .events = POLLIN};
		for (int i = 0; i < RAWBOT_MAX_CONNS; i++) {
			if (rb->conns[i].fd < 0)
				continue;
			slot[n] = i;
			pfd[n++] = (struct pollfd){.fd = rb->conns[i].fd, .events = POLLIN};
		}
		if (poll(pfd, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].revents != 0)
			break;
		for (nfds_t i = 2; i < n; i++)
			if (pfd[i].revents != 0)
				conn_readable(rb, &rb->conns[slot[i]]);
		if (pfd[1].revents & POLLIN)
			accept_one(rb);
	}
	return NULL;
}

struct rawbot *rawbot_start(enum rawbot_mode mode, const void *script, size_t len)
{
	struct rawbot *rb = calloc(1, sizeof(*rb));
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t slen = sizeof(sin);

	if (rb == NULL)
		return NULL;
	rb->lfd = -1;
	rb->wake[0] = rb->wake[1] = -1;
	for (int i = 0; i < RAWBOT_MAX_CONNS; i++)
		rb->conns[i].fd = -1;
	pthread_mutex_init(&rb->mu, NULL);
	rb->log = malloc(RAWBOT_LOG_MAX);
	rb->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (rb->log == NULL || rb->lfd < 0 || bind(rb->lfd, (struct sockaddr *)&sin, slen) != 0 ||
	    listen(rb->lfd, 64) != 0 || getsockname(rb->lfd, (struct sockaddr *)&sin, &slen) != 0 ||
	    pipe2(rb->wake, O_CLOEXEC) != 0)
		goto fail;
	rb->port = ntohs(sin.sin_port);
	rawbot_set(rb, mode, script, len);
	if (pthread_create(&rb->thread, NULL, rawbot_main, rb) != 0)
		goto fail;
	return rb;
fail:
	if (rb->lfd >= 0)
		close(rb->lfd);
	if (rb->wake[0] >= 0) {
		close(rb->wake[0]);
		close(rb->wake[1]);
	}
	free(rb->log);
	free(rb->script);
	pthread_mutex_destroy(&rb->mu);
	free(rb);
	return NULL;
}

void rawbot_set(struct rawbot *rb, enum rawbot_mode mode, const void *script, size_t len)
{
	char *copy = malloc(len + 1);

	if (copy == NULL)
		return;
	memcpy(copy, script, len);
	pthread_mutex_lock(&rb->mu);
	free(rb->script);
	rb->script = copy;
	rb->script_len = len;
	rb->mode = mode;
	pthread_mutex_unlock(&rb->mu);
}

int rawbot_port(const struct rawbot *rb)
{
	return rb->port;
}

unsigned rawbot_requests(struct rawbot *rb)
{
	pthread_mutex_lock(&rb->mu);
	unsigned n = rb->requests;
	pthread_mutex_unlock(&rb->mu);
	return n;
}

unsigned rawbot_connections(struct rawbot *rb)
{
	pthread_mutex_lock(&rb->mu);
	unsigned n = rb->connections;
	pthread_mutex_unlock(&rb->mu);
	return n;
}

bool rawbot_saw(struct rawbot *rb, const char *needle)
{
	pthread_mutex_lock(&rb->mu);
	bool seen = memmem(rb->log, rb->log_len, needle, strlen(needle)) != NULL;
	pthread_mutex_unlock(&rb->mu);
	return seen;
}

void rawbot_stop(struct rawbot *rb)
{
	if (rb == NULL)
		return;
	while (write(rb->wake[1], "x", 1) < 0 && errno == EINTR)
		;
	pthread_join(rb->thread, NULL);
	for (int i = 0; i < RAWBOT_MAX_CONNS; i++)
		if (rb->conns[i].fd >= 0)
			conn_drop(&rb->conns[i]);
	close(rb->lfd);
	close(rb->wake[0]);
	close(rb->wake[1]);
	free(rb->log);
	free(rb->script);
	pthread_mutex_destroy(&rb->mu);
	free(rb);
}
