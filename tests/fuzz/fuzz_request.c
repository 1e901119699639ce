/*
 * fuzz_request — http_parse_request on arbitrary bytes. Besides memory errors it
 * checks the parser's contract and aborts when one breaks:
 *   - HTTP_OK: head_len <= size and <= max_head, the head ends with CRLF CRLF, every
 *     slice lies inside the head, the framing fields agree with each other;
 *   - the answer does not depend on where the input is cut: a prefix is NEED_MORE or
 *     the same error, the head alone gives the same head, bytes after it are unread;
 *   - a max_head just below head_len gives 431/414, never a different head.
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

/* Parse the first k bytes from a copy of exactly k bytes, so overreads are caught. */
static enum http_result parse_prefix(const uint8_t *data, size_t k, size_t max_head,
                                     struct http_head *h)
{
	char *copy = malloc(k ? k : 1);
	enum http_result r;

	check(copy != NULL);
	memcpy(copy, data, k);
	r = http_parse_request(copy, k, max_head, h);
	free(copy);
	return r;
}

static void check_head(const char *buf, const struct http_head *h)
{
	check(h->head_len >= 4 && memcmp(buf + h->head_len - 4, "\r\n\r\n", 4) == 0);
	check(h->method.len > 0 && slice_in(h->method, h->head_len));
	check(h->target.len > 0 && slice_in(h->target, h->head_len));
	check(h->version_minor == 0 || h->version_minor == 1);
	check(h->nfields <= HTTP_MAX_HEADERS);
	for (unsigned i = 0; i < h->nfields; i++) {
		check(h->fields[i].name.len > 0 && slice_in(h->fields[i].name, h->head_len));
		check(slice_in(h->fields[i].value, h->head_len));
		http_is_hop_by_hop(buf + h->fields[i].name.off, h->fields[i].name.len);
	}
	check(h->host_field < (int)h->nfields);
	check(h->version_minor == 0 || h->host_field >= 0);
	check(http_find_field(h, buf, "host") == h->host_field);
	check(h->body != HTTP_BODY_CLOSE);
	check((h->body == HTTP_BODY_LENGTH) == (h->content_length > 0));
	check(h->body != HTTP_BODY_CHUNKED || h->version_minor == 1);
	(void)http_keep_alive(h);
}

static bool same_head(const struct http_head *a, const struct http_head *b)
{
	return a->head_len == b->head_len && a->nfields == b->nfields && a->body == b->body &&
	       a->content_length == b->content_length && a->flags == b->flags &&
	       a->host_field == b->host_field && a->method.off == b->method.off &&
	       a->target.len == b->target.len;
}

/* Drive a chunked body that follows the head, if any, to keep the two in step. */
static void check_body(const uint8_t *body, size_t len)
{
	struct http_chunked c;
	size_t used;

	http_chunked_init(&c);
	if (http_chunked_feed(&c, (const char *)body, len, &used) != HTTP_ERR_BAD_REQUEST)
		check(used <= len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_head h, p; /* ~2 KiB each: keep them off the stack */
	enum http_result r = parse_prefix(data, size, FUZZ_MAX_HEAD, &h);
	size_t cuts[] = {size / 2, size > 0 ? size - 1 : 0};

	check(r >= HTTP_OK && r <= HTTP_ERR_NOT_IMPLEMENTED);
	check(r == HTTP_OK || r == HTTP_NEED_MORE || http_result_status(r) >= 400);
	check(r != HTTP_NEED_MORE || size < FUZZ_MAX_HEAD);
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		enum http_result rp;

		if (r == HTTP_OK && cuts[i] >= h.head_len)
			continue;
		rp = parse_prefix(data, cuts[i], FUZZ_MAX_HEAD, &p);
		check(rp == HTTP_NEED_MORE || (rp == r && r != HTTP_OK));
	}
	if (r != HTTP_OK)
		return 0;
	check(h.head_len <= size && h.head_len <= FUZZ_MAX_HEAD);
	check_head((const char *)data, &h);
	/* the head alone, and the head under a limit of exactly its size */
	check(parse_prefix(data, h.head_len, h.head_len, &p) == HTTP_OK && same_head(&h, &p));
	r = parse_prefix(data, size, h.head_len - 1, &p);
	check(r == HTTP_ERR_HEAD_TOO_LARGE || r == HTTP_ERR_URI_TOO_LONG);
	if (h.body == HTTP_BODY_CHUNKED)
		check_body(data + h.head_len, size - h.head_len);
	return 0;
}
