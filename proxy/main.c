/*
 * main — the ringleader daemon: command line, configuration, signals, and composing
 * the modules. The control thread (this loop) owns config load and reload, signals,
 * health checks, the admin API and the lifecycle tick; the data path runs in workers
 * (on this same loop when workers = 1).
 *
 *   conf_load ──► pool_new ──► health_set_pool ──► workers (data path)
 *                                                └► admin (reads the current snapshot)
 *   SIGHUP / POST /reload ──► daemon_reload: the same chain on a new snapshot
 *   SIGTERM / SIGINT ──► workers_stop ──► all idle ──► exit 0
 *
 *   ringleader -c FILE       run
 *   ringleader -t -c FILE    check the configuration and exit 0 / 1
 *   ringleader -V | -h
 */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "admin.h"
#include "conf.h"
#include "health.h"
#include "keyx.h"
#include "log.h"
#include "pool.h"
#include "stats.h"
#include "tls.h"
#include "util.h"
#include "version.h"
#include "workers.h"

#define RL_DEFAULT_CONFIG "conf/ringleader.ini"
#define RL_STOP_GRACE_MS  10000 /* in-flight requests get this long after SIGTERM */
#define RL_TICK_MS        1000  /* lifecycle tick: drain progress, pin expiry */

struct options {
	const char *config;
	int test_only;
	int version;
	int help;
};

/* Everything the control side owns while running. */
struct daemon {
	struct event_base *base;                    /* owned */
	struct workers *workers;                    /* owned: the data path */
	struct health *health;                      /* owned */
	struct admin *admin;                        /* owned */
	struct rl_pool *pool;                       /* ref: the current snapshot */
	struct accesslog *alog;                     /* owned */
	struct event *sig_term, *sig_int, *sig_hup; /* owned */
	struct event *grace;     /* owned: ends a graceful stop that takes too long */
	struct event *tick;      /* owned: lifecycle tick every RL_TICK_MS */
	struct server_stats sum; /* scratch: the workers' counters for the admin API */
	bool stopping;
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
		case 'c':
			o->config = optarg;
			break;
		case 't':
			o->test_only = 1;
			break;
		case 'V':
			o->version = 1;
			break;
		case 'h':
			o->help = 1;
			break;
		default:
			return -1;
		}
	}
	return optind == argc ? 0 : -1;
}

/* Load path, logging every error as "file:line: ..." and keeping them in errs (may be
 * NULL). NULL on failure. */
static struct rl_conf *load_config(const char *path, struct conf_errors *errs)
{
	struct conf_errors own = {0};
	struct conf_errors *e = errs != NULL ? errs : &own;
	struct rl_conf *c = conf_load(path, e);

	if (c != NULL && tls_check(c, e) < 0) {
		conf_free(c);
		c = NULL;
	}
	for (size_t i = 0; i < e->n; i++)
		log_error("%s", e->msg[i]);
	conf_errors_free(&own);
	return c;
}

/* Features whose keys are accepted but whose behaviour is not built yet: say so. */
static void warn_unimplemented(const struct rl_conf *c)
{
	const char *src = keyx_unsupported(c);

	if (src != NULL)
		log_warn("routing: key source %s: is not implemented yet and is skipped", src);
}

/* ---- stopping ---- */

static void stopped(void *arg)
{
	struct daemon *d = arg;

	event_base_loopexit(d->base, NULL);
}

static void grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	log_warn("stop: grace period over with %u connections open; closing them",
	         workers_connections(d->workers));
	event_base_loopexit(d->base, NULL);
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct timeval grace = {RL_STOP_GRACE_MS / 1000, (RL_STOP_GRACE_MS % 1000) * 1000};

	if (d->stopping) {
		log_warn("stop: second signal, exiting now");
		event_base_loopexit(d->base, NULL);
		return;
	}
	d->stopping = true;
	log_info("stop: signal %d, finishing %u connections", (int)sig,
	         workers_connections(d->workers));
	evtimer_add(d->grace, &grace);
	workers_stop(d->workers);
}

/* ---- reload ---- */

static bool same_addrs(const struct rl_addr_list *a, const struct rl_addr_list *b)
{
	bool same = a->n == b->n;

	for (size_t i = 0; same && i < a->n; i++)
		same = strcmp(a->addr[i].text, b->addr[i].text) == 0;
	return same;
}

/* Data-path listeners follow a reload (server.c opens and closes them); the admin
 * listener does not yet, and a reload that changes it says so. */
static void warn_listener_change(const struct rl_conf *old, const struct rl_conf *new)
{
	if (strcmp(old->access_log, new->access_log) != 0)
		log_warn("reload: access_log changes need a restart; still writing to %s",
		         old->access_log);
	if (!same_addrs(&old->admin_listen, &new->admin_listen))
		log_warn("reload: [admin] listen changes need a restart; keeping %s%s",
		         old->admin_listen.n > 0 ? old->admin_listen.addr[0].text : "none",
		         old->admin_listen.n > 1 ? ", ..." : "");
}

static int reload_failed(const char *why)
{
	stats_inc(STAT_reloads_failed);
	log_error("reload: failed (%s), keeping the running configuration", why);
	return -1;
}

/*
 * The one reload path (SIGHUP and POST /reload): parse and validate the file, build the
 * next snapshot, let health checks adopt it, then publish it. 0, or -1 with the
 * configuration errors in errs (may be NULL); the running snapshot is untouched then.
 */
static int daemon_reload(struct daemon *d, struct conf_errors *errs)
{
	struct rl_conf *c = load_config(d->pool->conf->path, errs);
	struct rl_pool *p;

	if (c == NULL)
		return reload_failed("invalid configuration");
	warn_listener_change(d->pool->conf, c);
	p = pool_new(c, d->pool);
	if (p == NULL)
		return reload_failed("out of memory");
	if (tls_attach(p) < 0) {
		pool_unref(p);
		return reload_failed("TLS certificates");
	}
	if (health_set_pool(d->health, p) < 0) {
		pool_unref(p);
		return reload_failed("out of memory");
	}
	log_set_level(p->conf->log_level);
	workers_set_pool(d->workers, p);
	pool_unref(d->pool);
	d->pool = p;
	stats_inc(STAT_reloads_ok);
	log_info("reload: ok (%zu backends, generation %llu)", p->nconf,
	         (unsigned long long)p->generation);
	return 0;
}

static void reload_cb(evutil_socket_t sig, short what, void *arg)
{
	daemon_reload(arg, NULL);
}

/* ---- control-thread services ---- */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	pool_lifecycle_tick(d->pool, util_now_us() / 1000);
	workers_sweep(d->workers);
}

static void admin_source(void *arg, struct stats_source *src)
{
	struct daemon *d = arg;

	workers_stats(d->workers, &d->sum);
	src->pool = d->pool;
	src->servers = &d->sum;
	src->connections = workers_connections(d->workers);
	src->now_ms = util_now_us() / 1000;
}

static int admin_reload(void *arg, struct conf_errors *errs)
{
	return daemon_reload(arg, errs);
}

static const struct admin_ops admin_ops = {
        .source = admin_source,
        .reload = admin_reload,
};

/* ---- start and free ---- */

static int add_signal(struct daemon *d, struct event **ev, int sig, event_callback_fn cb)
{
	*ev = evsignal_new(d->base, sig, cb, d);
	return *ev != NULL && evsignal_add(*ev, NULL) == 0 ? 0 : -1;
}

static void daemon_free(struct daemon *d)
{
	struct event *evs[] = {d->sig_term, d->sig_int, d->sig_hup, d->grace, d->tick};

	admin_free(d->admin);
	workers_free(d->workers);
	health_free(d->health);
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i] != NULL)
			event_free(evs[i]);
	if (d->pool != NULL)
		pool_unref(d->pool);
	accesslog_close(d->alog);
	if (d->base != NULL)
		event_base_free(d->base);
}

/* Loop, first snapshot, health checks: everything before traffic. 0 / -1 (logged). */
static int daemon_prepare(struct daemon *d, struct rl_conf *conf)
{
	int off;

	d->alog = accesslog_open(conf->access_log, &off);
	if (d->alog == NULL && !off) {
		log_errno(RL_LOG_ERROR, "access_log %s: cannot open", conf->access_log);
		conf_free(conf);
		return -1;
	}
	d->base = event_base_new();
	if (d->base == NULL) {
		conf_free(conf);
		log_error("startup: cannot create the event loop");
		return -1;
	}
	d->pool = pool_new(conf, NULL);
	if (d->pool != NULL && tls_attach(d->pool) < 0)
		return -1;
	d->health = health_new(d->base);
	if (d->pool == NULL || d->health == NULL || health_set_pool(d->health, d->pool) < 0) {
		log_error("startup: out of memory");
		return -1;
	}
	return 0;
}

static int daemon_start(struct daemon *d, struct rl_conf *conf)
{
	struct timeval tick = {RL_TICK_MS / 1000, (RL_TICK_MS % 1000) * 1000};
	unsigned n = conf->workers != 0 ? conf->workers : workers_auto();

	/* The control loop is signalled from worker threads: locking must be on before any
	 * event_base exists. One worker runs on the control loop and needs none. */
	if (n > 1 && evthread_use_pthreads() < 0) {
		log_error("startup: libevent has no pthread support");
		return -1;
	}
	if (daemon_prepare(d, conf) < 0)
		return -1;
	/* Handlers before listeners: a signal must never meet the default action once the
	 * port accepts. Events only run from event_base_dispatch(), after everything is set. */
	if (add_signal(d, &d->sig_term, SIGTERM, stop_cb) < 0 ||
	    add_signal(d, &d->sig_int, SIGINT, stop_cb) < 0 ||
	    add_signal(d, &d->sig_hup, SIGHUP, reload_cb) < 0)
		return -1;
	/* admin first: a startup that fails there has opened no data-path listener yet */
	d->admin = admin_new(d->base, d->pool->conf, &admin_ops, d);
	if (d->admin == NULL)
		return -1;
	d->workers = workers_start(d->base, n, d->pool, d->alog, stopped, d);
	if (d->workers == NULL)
		return -1;
	d->grace = evtimer_new(d->base, grace_cb, d);
	d->tick = event_new(d->base, -1, EV_PERSIST, tick_cb, d);
	if (d->grace == NULL || d->tick == NULL || event_add(d->tick, &tick) < 0)
		return -1;
	return 0;
}

/* A proxy holds two descriptors per client: take all the kernel grants (soft = hard). */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			log_errno(RL_LOG_WARN, "startup: cannot raise the descriptor limit");
	}
}

static int run(struct rl_conf *conf)
{
	struct daemon d = {0};
	int rc = 1;

	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	log_set_level(conf->log_level);
	warn_unimplemented(conf);
	if (daemon_start(&d, conf) == 0) {
		log_info("ringleader %s: ready, %zu backends, %u workers, pid %ld", PACKAGE_VERSION,
		         d.pool->nconf, workers_count(d.workers), (long)getpid());
		event_base_dispatch(d.base);
		workers_stats(d.workers, &d.sum);
		log_info("ringleader: stopped (%llu requests)", (unsigned long long)d.sum.requests);
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
	conf = load_config(o.config, NULL);
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
