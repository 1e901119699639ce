/*
 * reply — proxy-generated responses.
 */
#include "reply.h"

#include <event2/buffer.h>
#include <stdio.h>

#include "http1.h"

/* Append s as a JSON string body (without quotes), escaping what JSON requires. */
static void json_escape(struct evbuffer *out, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			evbuffer_add_printf(out, "\\%c", ch);
		else if (ch < 0x20)
			evbuffer_add_printf(out, "\\u%04x", ch);
		else
			evbuffer_add(out, s, 1);
	}
}

size_t reply_error(struct evbuffer *out, int status, const char *message, const char *request_id,
                   bool keep_alive)
{
	struct evbuffer *body = evbuffer_new();
	size_t before = evbuffer_get_length(out);

	if (body == NULL)
		return 0;
	evbuffer_add_printf(body, "{\"error\":\"");
	json_escape(body, message);
	evbuffer_add_printf(body, "\",\"request_id\":\"");
	json_escape(body, request_id != NULL ? request_id : "");
	evbuffer_add_printf(body, "\"}\n");
	evbuffer_add_printf(out,
	                    "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
	                    "Content-Length: %zu\r\nCache-Control: no-store\r\n%s\r\n",
	                    status, http_status_reason(status), evbuffer_get_length(body),
	                    keep_alive ? "" : "Connection: close\r\n");
	evbuffer_add_buffer(out, body);
	evbuffer_free(body);
	return evbuffer_get_length(out) - before;
}

const char *reply_default_message(int status)
{
	switch (status) {
	case 400:
		return "bad request";
	case 408:
		return "request head not received in time";
	case 413:
		return "request body too large";
	case 414:
		return "request target too long";
	case 431:
		return "request head too large";
	case 501:
		return "transfer coding not implemented";
	case 502:
		return "backend unreachable or sent a malformed response";
	case 503:
		return "no backend can take the conversation";
	case 504:
		return "backend did not answer in time";
	case 505:
		return "HTTP version not supported";
	default:
		return "error";
	}
}
