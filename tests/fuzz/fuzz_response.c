/*
 * fuzz_response — http_parse_response on arbitrary bytes, as a reply to GET and to HEAD.
 * Aborts when the contract breaks:
 *   - HTTP_OK: head_len <= size and <= max_head, head ends with CRLF CRLF, slices inside
 *     the head, status 100..999, bodiless statuses (and replies to HEAD) framed NONE;
 *   - GET and HEAD replies parse the same apart from the framing;
 *   - a prefix is NEED_MORE or the same error; the head alone gives the same head;
 *   - a response is never answered URI_TOO_LONG.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"

#define FUZZ_MAX_HEAD 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

static bool slice_in(struct http_slice s, size_t head_len)
{
	return (size_t)s.off + s.len <= head_len;
}

static enum http_result parse_prefix(const uint8_t *data, size_t k, size_t max_head, bool head_req,
                                     struct http_head *h)
{
	char *copy = malloc(k ? k : 1);
	enum http_result r;

	check(copy != NULL);
	memcpy(copy, data, k);
	r = http_parse_response(copy, k, max_head, head_req, h);
	free(copy);
	return r;
}

static bool no_body_status(int status)
{
	return status < 200 || status == 204 || status == 304;
}

static void check_head(const char *buf, const struct http_head *h, bool head_req)
{
	check(h->head_len >= 4 && memcmp(buf + h->head_len - 4, "\r\n\r\n", 4) == 0);
	check(h->status >= 100 && h->status <= 999);
	check(slice_in(h->reason, h->head_len));
	check(h->version_minor == 0 || h->version_minor == 1);
	check(h->host_field == -1 && h->nfields <= HTTP_MAX_HEADERS);
	for (unsigned i = 0; i < h->nfields; i++) {
		check(h->fields[i].name.len > 0 && slice_in(h->fields[i].name, h->head_len));
		check(slice_in(h->fields[i].value, h->head_len));
	}
	if (head_req || no_body_status(h->status))
		check(h->body == HTTP_BODY_NONE);
	if (h->body == HTTP_BODY_LENGTH)
		check(h->content_length > 0);
	if (h->body == HTTP_BODY_CLOSE)
		check(!http_keep_alive(h));
	check(http_status_reason(h->status) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_head h, hh, p;
	enum http_result r = parse_prefix(data, size, FUZZ_MAX_HEAD, false, &h);
	enum http_result rh = parse_prefix(data, size, FUZZ_MAX_HEAD, true, &hh);

	check(r == rh && r != HTTP_ERR_URI_TOO_LONG);
	check(r != HTTP_NEED_MORE || size < FUZZ_MAX_HEAD);
	if (size > 0 && (r != HTTP_OK || size - 1 < h.head_len)) {
		enum http_result rp = parse_prefix(data, size - 1, FUZZ_MAX_HEAD, false, &p);

		check(rp == HTTP_NEED_MORE || (rp == r && r != HTTP_OK));
	}
	if (r != HTTP_OK)
		return 0;
	check(h.head_len <= size && h.head_len == hh.head_len && h.status == hh.status);
	check(h.content_length == hh.content_length && h.flags == hh.flags);
	check_head((const char *)data, &h, false);
	check_head((const char *)data, &hh, true);
	check(parse_prefix(data, h.head_len, h.head_len, false, &p) == HTTP_OK);
	check(p.head_len == h.head_len && p.body == h.body && p.nfields == h.nfields);
	check(parse_prefix(data, size, h.head_len - 1, false, &p) == HTTP_ERR_HEAD_TOO_LARGE);
	return 0;
}
