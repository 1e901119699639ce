/*
 * tls — the one wrapper around OpenSSL (only tls.c includes it): TLS termination for
 * [tls] listen, re-encryption to backends with tls = on, the certificate checks behind
 * `-t` and reload, handshake counters.
 *
 *   control thread: tls_check(conf)      every file readable, key matches, not expired
 *                   tls_attach(pool) ──► SSL_CTX (default cert) ── SNI table: name ──► SSL_CTX
 *   worker:         accept ──► tls_bufferevent_new(pool) ──► handshake (SNI picks the cert)
 *                   conn_close ──► tls_conn_close (close_notify; an unfinished handshake
 *                                  is counted by reason and logged at debug level)
 *                   upstream_connect ──► tls_upstream_bufferevent_new(pool, backend)
 *                                  ──► handshake, peer verified against the backend's ca
 *                                      and its IP address (a failure is a connect failure)
 *   control loop:   health check ──► tls_health_bufferevent_new ──► evhttp over TLS
 *
 * Contexts (the server's, and one client context per tls = on backend) are built on the
 * control thread at startup and on every reload and travel in the pool snapshot. Each SSL
 * holds its own reference to its SSL_CTX, so connections opened before a reload keep their
 * certificate while new handshakes use the new one. Session tickets are encrypted with
 * process-wide keys that rotate every TLS_TICKET_ROTATE_S (the previous key still
 * decrypts), so tickets survive reloads. A backend's client context keeps the last session
 * it was given, so new connections to it resume (per snapshot).
 */
#ifndef RL_TLS_H
#define RL_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct evbuffer;
struct event_base;
struct rl_conf;
struct rl_pool;
struct conf_errors;

/* A ticket key encrypts this long, then decrypts for as long again; also the session
 * lifetime, so no ticket outlives the key that opens it. Seconds. */
#define TLS_TICKET_ROTATE_S (12 * 3600)

/* Why a handshake failed: enum, metric name, help text (one row each). */
#define TLS_FAIL_REASONS(X)                                                                        \
	X(TLS_FAIL_VERSION, "protocol_version", "client offered only versions below min_version")  \
	X(TLS_FAIL_CIPHER, "no_shared_cipher", "no cipher suite, group or signature in common")    \
	X(TLS_FAIL_CLIENT_ALERT, "client_alert",                                                   \
	  "client aborted, e.g. it rejected the certificate")                                      \
	X(TLS_FAIL_NOT_TLS, "not_tls", "plain HTTP or other non-TLS bytes on a TLS listener")      \
	X(TLS_FAIL_INCOMPLETE, "incomplete",                                                       \
	  "peer closed or timed out before the handshake ended")                                   \
	X(TLS_FAIL_OTHER, "other", "any other handshake error")

/* clang-format off */
enum tls_fail {
#define TLS_FAIL_ENUM(e, name, help) e,
	TLS_FAIL_REASONS(TLS_FAIL_ENUM)
#undef TLS_FAIL_ENUM
	TLS_FAIL_COUNT
};
/* clang-format on */

/* Process-wide TLS counters (every worker adds to the same atomics). */
struct tls_stats {
	uint64_t handshakes;             /* completed handshakes */
	uint64_t resumed;                /* of those, resumed from a session ticket */
	uint64_t failed[TLS_FAIL_COUNT]; /* handshakes that did not complete, by reason */
	uint64_t ticket_key_rotations;   /* ticket keys generated (the first one counts) */
};

/* A snapshot of the counters (each read atomically; the set may be slightly skewed). */
void tls_stats(struct tls_stats *out);

/* "protocol_version", ...; "unknown" out of range. */
const char *tls_fail_name(enum tls_fail f);
const char *tls_fail_help(enum tls_fail f);

/*
 * Check the [tls] files of conf as a reload would load them: cert and key readable and
 * PEM, the key matches the certificate, the certificate is valid now, and every NAME.pem
 * of the sni folder has its NAME.key (and the same checks); the ca file of every backend
 * with tls = on is readable and holds PEM certificates. Each problem is appended to
 * errs (may be NULL) as "FILE: reason". Without [tls] listen only backends are checked.
 * Returns 0 or -1. Never logs.
 */
int tls_check(const struct rl_conf *conf, struct conf_errors *errs);

/*
 * Build the TLS contexts for p->conf (server, and a client context per backend with
 * tls = on) and attach them to p (p->tls, released with the snapshot). Nothing to do
 * without [tls] listen or TLS backends. Returns 0, or -1 after logging every problem
 * ("FILE: reason"). Control thread, before p is published.
 */
int tls_attach(struct rl_pool *p);

/*
 * A server-side TLS bufferevent on accepted socket fd for snapshot p (BEV_OPT_CLOSE_ON_FREE:
 * freeing it closes fd). NULL when p has no TLS context or on allocation failure; fd is
 * then untouched and still the caller's. Runs the handshake; the caller's event callback
 * gets BEV_EVENT_CONNECTED when it completes.
 */
struct bufferevent *tls_bufferevent_new(const struct rl_pool *p, struct event_base *base, int fd);

/* Has the handshake on bev completed? */
bool tls_handshake_done(struct bufferevent *bev);

/*
 * Encrypt and send from src what the socket takes now, draining what was sent: one record
 * (and one write(2)) per 16 kB record, however src is chained. Only on a server
 * bufferevent whose handshake is done and whose own output is empty (the caller's check).
 * Stops at the first record the socket does not take whole: its bytes stay at the front of
 * src, and the caller hands src to the bufferevent, whose retry is what OpenSSL requires.
 */
void tls_write_now(struct bufferevent *bev, struct evbuffer *src);

/* Queue close_notify once (best effort, never blocks) after the handshake completed. */
void tls_close_notify(struct bufferevent *bev);

/*
 * Called by conn_close before bev is freed: sends close_notify after a completed
 * handshake; otherwise counts the failure by reason and logs it at debug level with
 * client ("ip:port").
 */
void tls_conn_close(struct bufferevent *bev, const char *client);

/* Does backend (index in p) re-encrypt (tls = on, its context built)? */
bool tls_backend_on(const struct rl_pool *p, size_t backend);

/*
 * A client TLS bufferevent to backend of snapshot p over fd, a socket whose non-blocking
 * connect is started (or about to be: bufferevent_socket_connect works on it)
 * (BEV_OPT_CLOSE_ON_FREE). The handshake runs once connected; BEV_EVENT_CONNECTED comes
 * after it; a failed handshake (certificate not trusted, wrong address, not TLS) is a
 * BEV_EVENT_ERROR, logged at warn level "backend NAME: TLS handshake failed (...)".
 * Resumes the backend's last session when it has one. NULL when the backend has no TLS
 * context or on allocation failure; fd is then untouched and still the caller's.
 */
struct bufferevent *tls_upstream_bufferevent_new(const struct rl_pool *p, size_t backend,
                                                 struct event_base *base, int fd);

/* The same without a socket, for evhttp_connection_base_bufferevent_new (which connects
 * it); handshake failures are logged at debug level only. NULL as above. */
struct bufferevent *tls_health_bufferevent_new(const struct rl_pool *p, size_t backend,
                                               struct event_base *base);

/* Is bev a TLS bufferevent (writes must go through it, never to its fd)? */
bool tls_bufferevent_is_tls(struct bufferevent *bev);

/* "TLS handshake failed" when the handshake on the backend connection bev failed for a
 * TLS reason (already logged), else NULL (plain socket errors: see errno). */
const char *tls_upstream_error(struct bufferevent *bev);

/* "OpenSSL 3.0.x ..." of the library linked at run time. */
const char *tls_library_version(void);

#endif
