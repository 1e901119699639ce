/*
 * wsframe — follows WebSocket frame boundaries (RFC 6455 §5.2) in one direction of a
 * tunnel, without keeping any payload, so the proxy can add a close frame of its own
 * without cutting another frame in two. Pure: no I/O.
 */
#ifndef RL_WSFRAME_H
#define RL_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_CLOSE_GOING_AWAY 1001 /* RFC 6455 §7.4.1 */
#define WS_HEADER_MAX 14          /* longest frame header, bytes */

struct ws_track {
	uint64_t left;              /* payload bytes of the current frame still to pass */
	uint8_t hdr[WS_HEADER_MAX]; /* the frame header read so far */
	uint8_t have;               /* bytes in hdr */
};

/* Account for the next n bytes of the stream. */
void ws_feed(struct ws_track *t, const uint8_t *p, size_t n);

/* True between frames: the next byte starts a frame header. */
bool ws_at_boundary(const struct ws_track *t);

#endif
