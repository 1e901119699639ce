/*
 * fuzz_chunked — http_chunked_feed on arbitrary bytes. Aborts when the contract breaks:
 *   - *used <= len; NEED_MORE consumes everything; OK ends right after a CRLF;
 *   - feeding byte by byte, or in two pieces cut anywhere, gives the same result and
 *     the same *used as feeding all at once;
 *   - a finished or failed validator keeps its answer and consumes nothing more.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

struct outcome {
	enum http_result r;
	size_t used; /* bytes consumed over all feeds, or offset of the bad byte */
	uint64_t body_bytes;
};

/* Feed data in pieces of at most step bytes, each from an exact-size copy. */
static struct outcome feed_steps(const uint8_t *data, size_t size, size_t step)
{
	struct http_chunked c;
	struct outcome o = {.r = HTTP_NEED_MORE};

	http_chunked_init(&c);
	while (o.r == HTTP_NEED_MORE && o.used < size) {
		size_t n = size - o.used < step ? size - o.used : step, used;
		char *copy = malloc(n);

		check(copy != NULL);
		memcpy(copy, data + o.used, n);
		o.r = http_chunked_feed(&c, copy, n, &used);
		free(copy);
		check(used <= n && (o.r != HTTP_NEED_MORE || used == n));
		o.used += used;
	}
	o.body_bytes = c.body_bytes;
	if (o.r != HTTP_NEED_MORE) {
		size_t used;

		check(http_chunked_feed(&c, "0\r\n\r\n", 5, &used) == o.r && used == 0);
	}
	return o;
}

static bool same(struct outcome a, struct outcome b)
{
	return a.r == b.r && a.used == b.used && a.body_bytes == b.body_bytes;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome all = feed_steps(data, size, size ? size : 1);

	check(all.r == HTTP_OK || all.r == HTTP_NEED_MORE || all.r == HTTP_ERR_BAD_REQUEST);
	check(all.used <= size && all.body_bytes <= all.used);
	if (all.r == HTTP_OK)
		check(all.used >= 5 && memcmp(data + all.used - 2, "\r\n", 2) == 0);
	check(same(all, feed_steps(data, size, 1)));
	check(same(all, feed_steps(data, size, size / 2 + 1)));
	check(same(all, feed_steps(data, size, 7)));
	return 0;
}
