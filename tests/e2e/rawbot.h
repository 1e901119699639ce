/*
 * rawbot — a scripted raw TCP backend for the end-to-end tests, running on a thread inside
 * the test process. It answers what a real bot never would: garbage, a head with two
 * Content-Lengths, a short body then close, nothing at all, or a close before any answer.
 *
 *   proxy ──► listener (127.0.0.1, ephemeral port) ──► read one request head
 *                                                       ├─ target /ok*: a valid 200 "ok"
 *                                                       └─ else: the script (mode below)
 *
 * A request whose target starts with "/ok" always gets a valid keep-alive 200 with body
 * "ok", whatever the script: a test uses it to show the proxy still serves after an error.
 * Every byte received is kept (up to RAWBOT_LOG_MAX) so a test can assert that a request
 * (a smuggled one, say) never reached the backend.
 */
#ifndef RL_RAWBOT_H
#define RL_RAWBOT_H

#include <stdbool.h>
#include <stddef.h>

#define RAWBOT_LOG_MAX (256u * 1024u) /* received bytes kept for rawbot_saw, bytes */

enum rawbot_mode {
	RAWBOT_REPLY = 1,   /* write the script after each head, keep the connection */
	RAWBOT_REPLY_CLOSE, /* write the script, then close */
	RAWBOT_HANG,        /* never answer; keep the connection open until stopped */
	RAWBOT_CLOSE,       /* close as soon as the head is in, answering nothing */
};

struct rawbot;

/* Listen on 127.0.0.1:0 and serve on a new thread. script (len bytes, may hold NUL) is
 * copied. NULL on failure. */
struct rawbot *rawbot_start(enum rawbot_mode mode, const void *script, size_t len);

/* Replace mode and script for heads read from now on. */
void rawbot_set(struct rawbot *rb, enum rawbot_mode mode, const void *script, size_t len);

int rawbot_port(const struct rawbot *rb);

/* Request heads received (all connections, /ok ones included), connections accepted. */
unsigned rawbot_requests(struct rawbot *rb);
unsigned rawbot_connections(struct rawbot *rb);

/* Did the received bytes (all connections, in arrival order) contain needle? */
bool rawbot_saw(struct rawbot *rb, const char *needle);

/* Stop the thread, close every socket, free. Accepts NULL. */
void rawbot_stop(struct rawbot *rb);

#endif
