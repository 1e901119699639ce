/*
 * server — listeners, accept, and the set of connections of one event loop.
 */
#include "server.h"

#include <errno.h>
#include <limits.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "upstream.h"

#define SERVER_BACKLOG         1024
#define SERVER_ACCEPT_PAUSE_MS 100 /* listeners rest this long after EMFILE */

static int alloc_idle_lists(struct server *s, size_t n)
{
	struct upstream_list *lists = calloc(n > 0 ? n : 1, sizeof(*lists));
	unsigned *counts = calloc(n > 0 ? n : 1, sizeof(*counts));

	if (lists == NULL || counts == NULL) {
		free(lists);
		free(counts);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		TAILQ_INIT(&lists[i]);
	free(s->idle);
	free(s->nparked);
	s->idle = lists;
	s->nparked = counts;
	s->nidle = n;
	return 0;
}

static void accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;

	if (s->stopping)
		return;
	for (size_t i = 0; i < s->nlisteners; i++)
		evconnlistener_enable(s->listeners[i]);
}

struct server *server_new(struct event_base *base, struct rl_pool *pool, struct accesslog *alog)
{
	struct server *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->base = base;
	s->alog = alog;
	atomic_init(&s->own_open_conns, 0);
	s->open_conns = &s->own_open_conns;
	s->fd_budget = UINT_MAX;
	TAILQ_INIT(&s->conns);
	util_rng_seed(&s->rng);
	/* two halves: eligibility flags and the "already tried" flags */
	s->scratch = calloc(2 * CONF_MAX_BACKENDS, sizeof(bool));
	s->accept_retry = evtimer_new(base, accept_retry_cb, s);
	if (s->scratch == NULL || s->accept_retry == NULL || alloc_idle_lists(s, pool->n) < 0) {
		server_free(s);
		return NULL;
	}
	s->pool = pool_ref(pool);
	return s;
}

void server_free(struct server *s)
{
	struct conn *c;

	if (s == NULL)
		return;
	while ((c = TAILQ_FIRST(&s->conns)) != NULL) {
		s->on_idle = NULL;
		conn_close(c, "server freed");
	}
	upstream_close_idle(s);
	for (size_t i = 0; i < s->nlisteners; i++)
		evconnlistener_free(s->listeners[i]);
	if (s->accept_retry != NULL)
		event_free(s->accept_retry);
	free(s->idle);
	free(s->nparked);
	free(s->scratch);
	if (s->pool != NULL)
		pool_unref(s->pool);
	free(s);
}

static void accept_fd(struct server *s, evutil_socket_t fd, struct sockaddr *addr, int addrlen,
                      bool tls)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	conn_accept(s, fd, addr, (socklen_t)addrlen, tls);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
                      int addrlen, void *arg)
{
	accept_fd(arg, fd, addr, addrlen, false);
}

static void accept_tls_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
                          int addrlen, void *arg)
{
	accept_fd(arg, fd, addr, addrlen, true);
}

/* EMFILE/ENFILE are expected under load: pause accepting briefly rather than spin. */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct server *s = arg;
	struct timeval pause = {0, SERVER_ACCEPT_PAUSE_MS * 1000};
	int err = EVUTIL_SOCKET_ERROR();

	s->stats.accept_errors++;
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		for (size_t i = 0; i < s->nlisteners; i++)
			evconnlistener_disable(s->listeners[i]);
		evtimer_add(s->accept_retry, &pause);
	}
	log_warn("listener: accept failed (%s)", strerror(err));
}

static int listen_one(struct server *s, const struct rl_addr *a, bool tls)
{
	unsigned flags = LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
	                 (s->reuse_port ? LEV_OPT_REUSEABLE_PORT : 0);
	struct evconnlistener *l;

	if (s->nlisteners == 2 * CONF_MAX_LISTEN)
		return -1;
	l = evconnlistener_new_bind(s->base, tls ? accept_tls_cb : accept_cb, s, flags,
	                            SERVER_BACKLOG, (const struct sockaddr *)&a->ss, (int)a->len);
	if (l == NULL) {
		log_errno(RL_LOG_ERROR, "listener %s: cannot listen", a->text);
		return -1;
	}
	evconnlistener_set_error_cb(l, accept_error_cb);
	snprintf(s->listener_addr[s->nlisteners], CONF_ADDR_TEXT, "%s", a->text);
	s->listener_tls[s->nlisteners] = tls;
	s->listeners[s->nlisteners++] = l;
	log_info("listener %s: accepting %s", a->text, tls ? "HTTPS" : "HTTP");
	return 0;
}

static int listen_list(struct server *s, const struct rl_addr_list *list, bool tls)
{
	for (size_t i = 0; i < list->n; i++)
		if (listen_one(s, &list->addr[i], tls) < 0)
			return -1;
	return 0;
}

static bool in_list(const struct rl_addr_list *list, const char *text)
{
	for (size_t i = 0; i < list->n; i++)
		if (strcmp(list->addr[i].text, text) == 0)
			return true;
	return false;
}

static bool have_listener(const struct server *s, const char *text, bool tls)
{
	for (size_t i = 0; i < s->nlisteners; i++)
		if (s->listener_tls[i] == tls && strcmp(s->listener_addr[i], text) == 0)
			return true;
	return false;
}

/* Close the listeners a reload removed (connections they accepted carry on), keep the
 * ones that stay (no connection is refused or reset), open the new ones. */
static void sync_listeners(struct server *s, const struct rl_conf *conf)
{
	size_t kept = 0;

	for (size_t i = 0; i < s->nlisteners; i++) {
		const struct rl_addr_list *list =
		        s->listener_tls[i] ? &conf->tls_listen : &conf->listen;
		if (in_list(list, s->listener_addr[i])) {
			s->listeners[kept] = s->listeners[i];
			s->listener_tls[kept] = s->listener_tls[i];
			memmove(s->listener_addr[kept], s->listener_addr[i], CONF_ADDR_TEXT);
			kept++;
			continue;
		}
		evconnlistener_free(s->listeners[i]);
		log_info("listener %s: closed (removed from the config)", s->listener_addr[i]);
	}
	s->nlisteners = kept;
	for (size_t i = 0; i < conf->listen.n; i++)
		if (!have_listener(s, conf->listen.addr[i].text, false))
			listen_one(s, &conf->listen.addr[i], false);
	for (size_t i = 0; i < conf->tls_listen.n; i++)
		if (!have_listener(s, conf->tls_listen.addr[i].text, true))
			listen_one(s, &conf->tls_listen.addr[i], true);
}

int server_listen(struct server *s)
{
	const struct rl_conf *conf = s->pool->conf;

	if (listen_list(s, &conf->listen, false) < 0 || listen_list(s, &conf->tls_listen, true) < 0)
		return -1;
	return 0;
}

void server_set_pool(struct server *s, struct rl_pool *pool)
{
	upstream_close_idle(s);
	if (alloc_idle_lists(s, pool->n) < 0) {
		log_error("server: out of memory swapping the snapshot; keeping the old one");
		return;
	}
	if (!s->stopping)
		sync_listeners(s, pool->conf);
	pool_unref(s->pool);
	s->pool = pool_ref(pool);
}

void server_stop(struct server *s, void (*on_idle)(struct server *))
{
	s->stopping = true;
	s->on_idle = NULL; /* conn_close must not report idle while we are still looping */
	for (size_t i = 0; i < s->nlisteners; i++)
		evconnlistener_disable(s->listeners[i]);
	upstream_close_idle(s);
	conn_shutdown_all(s);
	s->on_idle = on_idle;
	if (s->nconns == 0 && on_idle != NULL)
		on_idle(s);
}
