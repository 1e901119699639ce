/*
 * conn — one client connection and the request/response exchange it carries.
 *
 *   WAIT_HEAD ──head ok──► FORWARD (request body → backend, response ← backend)
 *       ▲                      │ 101 / upgrade
 *       │ keep-alive           ▼
 *       └──── response done ◄─ TUNNEL (bytes both ways until one side closes)
 *   any state ──error──► CLOSING (flush what is queued, then conn_close)
 *
 * One exit: conn_close(c, reason) logs, counts and frees everything the connection owns.
 */
#ifndef RL_CONN_H
#define RL_CONN_H

#include <stdbool.h>
#include <sys/socket.h>

struct server;
struct conn;

/* Take ownership of accepted socket fd; tls: it came in on a [tls] listener. */
void conn_accept(struct server *s, int fd, const struct sockaddr *addr, socklen_t addrlen,
                 bool tls);

/* Close c now, releasing everything it owns. reason is logged at debug level. */
void conn_close(struct conn *c, const char *reason);

/* Graceful stop: close every connection that is between requests; the others close
 * after their current response. */
void conn_shutdown_all(struct server *s);

/* Once a second: event streams and tunnels still open to a backend that reached its drain
 * deadline end cleanly (WebSocket close 1001, a final `event: ringleader-drain`). */
void conn_sweep(struct server *s);

#endif
