/*
 * reply — responses the proxy writes itself: JSON error bodies with the request id.
 */
#ifndef RL_REPLY_H
#define RL_REPLY_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

/*
 * Append a complete HTTP/1.1 response with body {"error":"<message>","request_id":"<id>"}.
 * keep_alive false adds "Connection: close". Returns the bytes appended.
 */
size_t reply_error(struct evbuffer *out, int status, const char *message, const char *request_id,
                   bool keep_alive);

/* Short machine-friendly message for a status the proxy generates ("bad request"). */
const char *reply_default_message(int status);

#endif
