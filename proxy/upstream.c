/*
 * upstream — backend connections and the per-backend idle keep-alive pools.
 */
#include "upstream.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"
#include "tls.h"

static struct timeval ms_to_tv(uint64_t ms)
{
	return (struct timeval){.tv_sec = (time_t)(ms / 1000), .tv_usec = (long)(ms % 1000) * 1000};
}

/* The idle lists and their counts change only here. */
static void park(struct upstream *u)
{
	TAILQ_INSERT_HEAD(&u->srv->idle[u->backend], u, link);
	u->srv->nparked[u->backend]++;
	u->idle = true;
}

static void unpark(struct upstream *u)
{
	TAILQ_REMOVE(&u->srv->idle[u->backend], u, link);
	u->srv->nparked[u->backend]--;
	u->idle = false;
}

static void idle_lost(struct upstream *u)
{
	unpark(u);
	upstream_free(u);
}

/* A parked connection must stay silent: data or EOF means the backend gave it up. */
static void idle_readcb(struct bufferevent *bev, void *arg)
{
	idle_lost(arg);
}

static void idle_eventcb(struct bufferevent *bev, short what, void *arg)
{
	idle_lost(arg);
}

/* A parked connection whose FIN (or stray bytes) arrived but whose event has not run
 * yet is dead: handing it out would cost the request a 502. */
static bool idle_still_open(const struct upstream *u)
{
	char byte;
	ssize_t n = recv(bufferevent_getfd(u->bev), &byte, 1, MSG_PEEK | MSG_DONTWAIT);

	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

struct upstream *upstream_take_idle(struct server *s, int backend)
{
	struct upstream *u;

	if ((size_t)backend >= s->nidle)
		return NULL;
	while ((u = TAILQ_FIRST(&s->idle[backend])) != NULL) {
		unpark(u);
		if (idle_still_open(u)) {
			bufferevent_setcb(u->bev, NULL, NULL, NULL, NULL);
			u->reused = true;
			return u;
		}
		upstream_free(u);
	}
	return NULL;
}

static int socket_for(const struct rl_addr *a)
{
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

struct upstream *upstream_connect(struct server *s, const struct rl_pool *p, int backend)
{
	const struct rl_backend_conf *bc = p->b[backend].conf;
	struct upstream *u = calloc(1, sizeof(*u));
	struct timeval tv = ms_to_tv(p->conf->connect_timeout_ms);
	int fd;

	if (u == NULL)
		return NULL;
	fd = socket_for(&bc->address);
	if (fd < 0) {
		free(u);
		return NULL;
	}
	/* tls = on: the handshake runs once connected; CONNECTED fires after it */
	u->bev = tls_backend_on(p, (size_t)backend)
	                 ? tls_upstream_bufferevent_new(p, (size_t)backend, s->base, fd)
	                 : bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (u->bev == NULL) {
		close(fd);
		free(u);
		return NULL;
	}
	u->srv = s;
	u->backend = backend;
	u->generation = p->generation;
	u->connect_started_us = util_now_us();
	/* The write timeout bounds the connect (a TLS handshake waits on reads too: both);
	 * the caller sets the exchange timeouts. */
	bufferevent_set_timeouts(u->bev, bc->tls ? &tv : NULL, &tv);
	if (bufferevent_socket_connect(u->bev, (const struct sockaddr *)&bc->address.ss,
	                               (int)bc->address.len) < 0) {
		/* Immediate failure (e.g. no route); report it through the event callback
		 * path by leaving the bufferevent unconnected: the caller sees an error. */
		int saved = errno;
		upstream_free(u);
		errno = saved != 0 ? saved : ECONNREFUSED;
		return NULL;
	}
	return u;
}

void upstream_release(struct upstream *u)
{
	struct server *s = u->srv;
	if (u->generation != s->pool->generation || (size_t)u->backend >= s->nidle ||
	    evbuffer_get_length(bufferevent_get_input(u->bev)) != 0 ||
	    s->nparked[u->backend] >= s->pool->conf->max_idle_per_backend) {
		upstream_free(u);
		return;
	}
	bufferevent_set_timeouts(u->bev, NULL, NULL);
	bufferevent_setcb(u->bev, idle_readcb, NULL, idle_eventcb, u);
	if (!(bufferevent_get_enabled(u->bev) & EV_READ)) /* paused by backpressure */
		bufferevent_enable(u->bev, EV_READ);
	park(u);
}

void upstream_free(struct upstream *u)
{
	if (u == NULL)
		return;
	if (u->idle)
		unpark(u);
	bufferevent_free(u->bev);
	free(u);
}

void upstream_close_idle(struct server *s)
{
	for (size_t i = 0; i < s->nidle; i++) {
		struct upstream *u;
		while ((u = TAILQ_FIRST(&s->idle[i])) != NULL)
			upstream_free(u);
	}
}
