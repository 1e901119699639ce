/*
 * main — the ringleader daemon: command line, configuration, signals, and composing
 * the modules. The control side (config load and reload, signals) runs here; the data
 * path runs in server.c on the same event loop for now.
 *
 *   ringleader -c FILE       run
 *   ringleader -t -c FILE    check the configuration and exit 0 / 1
 *   ringleader -V | -h
 */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "keyx.h"
#include "log.h"
#include "pool.h"
#include "server.h"
#include "version.h"

#define RL_DEFAULT_CONFIG "conf/ringleader.ini"
#define RL_STOP_GRACE_MS 10000 /* in-flight requests get this long after SIGTERM */

struct options {
	const char *config;
	int test_only;
	int version;
	int help;
};

/* Everything the control side owns while running. */
struct daemon {
	struct event_base *base;   /* owned */
	struct server *server;     /* owned */
	struct rl_pool *pool;      /* ref: the current snapshot */
	struct accesslog *alog;    /* owned */
	struct event *sig_term, *sig_int, *sig_hup; /* owned */
	struct event *grace;       /* owned: ends a graceful stop that takes too long */
	unsigned reloads_ok;
	unsigned reloads_failed;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: ringleader [-c FILE] [-t] [-V] [-h]\n"
		"  -c FILE  configuration file (default %s)\n"
		"  -t       check the configuration and exit (0 valid, 1 invalid)\n"
		"  -V       print version and library versions\n"
		"  -h       this help\n",
		RL_DEFAULT_CONFIG);
}

static int parse_options(int argc, char **argv, struct options *o)
{
	int ch;

	o->config = RL_DEFAULT_CONFIG;
	while ((ch = getopt(argc, argv, "c:tVh")) != -1) {
		switch (ch) {
		case 'c': o->config = optarg; break;
		case 't': o->test_only = 1; break;
		case 'V': o->version = 1; break;
		case 'h': o->help = 1; break;
		default: return -1;
		}
	}
	return optind == argc ? 0 : -1;
}

/* Load path, printing every error as "file:line: ..." on stderr. NULL on failure. */
static struct rl_conf *load_config(const char *path)
{
	struct conf_errors errs = {0};
	struct rl_conf *c = conf_load(path, &errs);

	for (size_t i = 0; i < errs.n; i++)
		log_error("%s", errs.msg[i]);
	conf_errors_free(&errs);
	return c;
}

/* Features whose keys are accepted but whose behaviour is not built yet: say so. */
static void warn_unimplemented(const struct rl_conf *c)
{
	const char *src = keyx_unsupported(c);

	if (c->tls_listen.n > 0)
		log_warn("tls: TLS termination is not implemented yet; [tls] listen is ignored");
	if (c->health_path[0] != '\0')
		log_warn("health: active health checks are not implemented yet; backends count as up");
	if (c->passive_failures > 0)
		log_warn("health: passive ejection is not implemented yet");
	if (c->admin_listen.n > 0)
		log_warn("admin: the admin API is not implemented yet; [admin] listen is ignored");
	if (c->workers != 1)
		log_warn("proxy: worker threads are not implemented yet; running one event loop");
	if (c->hash != RL_HASH_MAGLEV)
		log_warn("routing: hash = %s is not implemented yet; using maglev",
			 conf_hash_name(c->hash));
	if (c->balance_factor > 0)
		log_warn("routing: balance_factor (bounded load) is not implemented yet");
	if (c->preset != NULL && c->preset[0] != '\0')
		log_warn("routing: preset %s is not implemented yet", c->preset);
	if (src != NULL)
		log_warn("routing: key source %s: is not implemented yet and is skipped", src);
	log_warn("routing: affinity pins are not implemented yet; conversations follow the hash");
	for (size_t i = 0; i < c->nbackends; i++)
		if (c->backends[i].tls)
			log_warn("backend %s: tls = on is not implemented yet; plain HTTP is used",
				 c->backends[i].name);
}

static void stopped(struct server *s)
{
	event_base_loopexit(s->base, NULL);
}

static void grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	log_warn("stop: grace period over with %u connections open; closing them",
		 d->server->nconns);
	event_base_loopexit(d->base, NULL);
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct timeval grace = {RL_STOP_GRACE_MS / 1000, (RL_STOP_GRACE_MS % 1000) * 1000};

	if (d->server->stopping) {
		log_warn("stop: second signal, exiting now");
		event_base_loopexit(d->base, NULL);
		return;
	}
	log_info("stop: signal %d, finishing %u connections", (int)sig, d->server->nconns);
	evtimer_add(d->grace, &grace);
	server_stop(d->server, stopped);
}

/* Listener changes need the per-listener diff of the lifecycle work; until then a
 * reload that changes them keeps the running sockets and says so. */
static void warn_listener_change(const struct rl_conf *old, const struct rl_conf *new)
{
	bool same = old->listen.n == new->listen.n;

	for (size_t i = 0; same && i < old->listen.n; i++)
		same = strcmp(old->listen.addr[i].text, new->listen.addr[i].text) == 0;
	if (!same)
		log_warn("reload: listener changes need a restart for now; keeping %s%s",
			 old->listen.n > 0 ? old->listen.addr[0].text : "none",
			 old->listen.n > 1 ? ", ..." : "");
}

static void reload_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct rl_conf *c = load_config(d->pool->conf->path);
	struct rl_pool *p;

	if (c == NULL) {
		d->reloads_failed++;
		log_error("reload: failed, keeping the running configuration");
		return;
	}
	warn_listener_change(d->pool->conf, c);
	p = pool_new(c, d->pool);
	if (p == NULL) {
		d->reloads_failed++;
		log_error("reload: out of memory, keeping the running configuration");
		return;
	}
	log_set_level(p->conf->log_level);
	server_set_pool(d->server, p);
	pool_unref(d->pool);
	d->pool = p;
	d->reloads_ok++;
	log_info("reload: ok (%zu backends, generation %llu)", p->n,
		 (unsigned long long)p->generation);
}

static int add_signal(struct daemon *d, struct event **ev, int sig, event_callback_fn cb)
{
	*ev = evsignal_new(d->base, sig, cb, d);
	return *ev != NULL && evsignal_add(*ev, NULL) == 0 ? 0 : -1;
}

static void daemon_free(struct daemon *d)
{
	struct event *evs[] = {d->sig_term, d->sig_int, d->sig_hup, d->grace};

	server_free(d->server);
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i] != NULL)
			event_free(evs[i]);
	if (d->pool != NULL)
		pool_unref(d->pool);
	accesslog_close(d->alog);
	if (d->base != NULL)
		event_base_free(d->base);
}

static int daemon_start(struct daemon *d, struct rl_conf *conf)
{
	int off;

	d->alog = accesslog_open(conf->access_log, &off);
	if (d->alog == NULL && !off) {
		log_errno(RL_LOG_ERROR, "access_log %s: cannot open", conf->access_log);
		conf_free(conf);
		return -1;
	}
	d->base = event_base_new();
	d->pool = d->base != NULL ? pool_new(conf, NULL) : NULL;
	if (d->pool == NULL) {
		log_error("startup: out of memory");
		return -1;
	}
	d->server = server_new(d->base, d->pool, d->alog);
	d->grace = evtimer_new(d->base, grace_cb, d);
	if (d->server == NULL || d->grace == NULL || server_listen(d->server) < 0)
		return -1;
	if (add_signal(d, &d->sig_term, SIGTERM, stop_cb) < 0 ||
	    add_signal(d, &d->sig_int, SIGINT, stop_cb) < 0 ||
	    add_signal(d, &d->sig_hup, SIGHUP, reload_cb) < 0)
		return -1;
	return 0;
}

static int run(struct rl_conf *conf)
{
	struct daemon d = {0};
	int rc = 1;

	signal(SIGPIPE, SIG_IGN);
	log_set_level(conf->log_level);
	warn_unimplemented(conf);
	if (daemon_start(&d, conf) == 0) {
		log_info("ringleader %s: ready, %zu backends, pid %ld", PACKAGE_VERSION, d.pool->n,
			 (long)getpid());
		event_base_dispatch(d.base);
		log_info("ringleader: stopped (%llu requests)",
			 (unsigned long long)d.server->stats.requests);
		rc = 0;
	}
	daemon_free(&d);
	return rc;
}

int main(int argc, char **argv)
{
	struct options o = {0};
	struct rl_conf *conf;

	if (parse_options(argc, argv, &o) < 0) {
		usage(stderr);
		return 2;
	}
	if (o.help) {
		usage(stdout);
		return 0;
	}
	if (o.version) {
		version_print(stdout);
		return 0;
	}
	conf = load_config(o.config);
	if (o.test_only) {
		fprintf(stderr, "ringleader: configuration file %s test %s\n", o.config,
			conf != NULL ? "is successful" : "failed");
		conf_free(conf);
		return conf != NULL ? 0 : 1;
	}
	if (conf == NULL)
		return 1;
	return run(conf);
}
