/*
 * admin — the HTTP control API on [admin] listen (evhttp, control loop).
 *
 *   GET  /backends                 lifecycle view of every backend (JSON array)
 *   GET  /stats                    every counter as JSON
 *   GET  /metrics                  the same in Prometheus text format 0.0.4
 *   GET  /conversations/KEY        where KEY goes and why (pinned | hashed | repinned)
 *   POST /backends/NAME/drain      no new conversations for NAME (runtime state)
 *   POST /backends/NAME/undrain    take new conversations again
 *   POST /reload                   re-read the configuration file (the SIGHUP path)
 *   POST /preview                  body = candidate config: what would move, not applied
 *
 * POSTs need "Authorization: Bearer TOKEN" when [admin] token is set (compared in
 * constant time); GETs are open to whoever reaches the listener, which is why a
 * non-loopback listener needs a token. Every answer is JSON except /metrics.
 */
#ifndef RL_ADMIN_H
#define RL_ADMIN_H

#include "conf.h"
#include "stats.h"

#define ADMIN_BODY_MAX    (1024 * 1024) /* bytes: a /preview config at most */
#define ADMIN_HEADERS_MAX (16 * 1024)   /* bytes of request line and headers */
#define ADMIN_TIMEOUT_S   30            /* idle admin connections close after this */
#define ADMIN_BACKLOG     64
#define ADMIN_KEY_MAX     512 /* bytes of a decoded /conversations/KEY */

struct event_base;
struct admin;

/* What the admin API needs from the daemon; every call is on the control loop. */
struct admin_ops {
	/* The current snapshot and the data path's counters; valid until the handler that
	 * asked returns. */
	void (*source)(void *arg, struct stats_source *src);
	/* Reload the configuration file as SIGHUP does: 0, or -1 with the reasons in errs
	 * (empty when memory ran out). */
	int (*reload)(void *arg, struct conf_errors *errs);
};

/*
 * Listen on conf's [admin] listen addresses (none: returns a valid admin that does
 * nothing). Refuses (NULL, logged) a non-loopback address without a token, or an
 * address it cannot bind. ops and arg are borrowed for the admin's lifetime.
 */
struct admin *admin_new(struct event_base *base, const struct rl_conf *conf,
                        const struct admin_ops *ops, void *arg);
void admin_free(struct admin *a);

/* Is a loopback address (127.0.0.0/8, ::1)? */
bool admin_addr_is_loopback(const struct rl_addr *a);

/* Constant-time check of an Authorization header value against token ("" = no token:
 * always true). */
bool admin_token_ok(const char *authorization, const char *token);

#endif
