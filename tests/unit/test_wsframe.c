/*
 * wsframe: frame boundaries are found whatever the split of the byte stream.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "wsframe.h"

/* Two frames back to back: a masked 5-byte text frame and an unmasked 300-byte binary
 * frame (16-bit length). Returns the stream length; *first_end is where frame 1 ends. */
static size_t two_frames(uint8_t *buf, size_t *first_end)
{
	size_t n = 0;

	buf[n++] = 0x81;
	buf[n++] = 0x80 | 5;
	memcpy(buf + n, "\x01\x02\x03\x04", 4);
	n += 4;
	memcpy(buf + n, "hello", 5);
	n += 5;
	*first_end = n;
	buf[n++] = 0x82;
	buf[n++] = 126;
	buf[n++] = 300 >> 8;
	buf[n++] = 300 & 0xff;
	memset(buf + n, 'x', 300);
	return n + 300;
}

Test(wsframe, boundaries_at_every_split)
{
	uint8_t buf[512];
	size_t first_end, len = two_frames(buf, &first_end);

	for (size_t cut = 0; cut <= len; cut++) {
		struct ws_track t = {0};
		ws_feed(&t, buf, cut);
		bool want = cut == 0 || cut == first_end || cut == len;
		cr_assert_eq(ws_at_boundary(&t), want, "after %zu of %zu bytes", cut, len);
		ws_feed(&t, buf + cut, len - cut);
		cr_assert(ws_at_boundary(&t), "end of stream after a split at %zu", cut);
	}
}

Test(wsframe, byte_by_byte_and_64_bit_length)
{
	uint8_t hdr[10] = {0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}; /* 65536-byte payload */
	struct ws_track t = {0};
	uint8_t zero[4096] = {0};

	for (size_t i = 0; i < sizeof(hdr); i++) {
		ws_feed(&t, hdr + i, 1);
		cr_assert_not(ws_at_boundary(&t));
	}
	for (int i = 0; i < 16; i++) {
		cr_assert_not(ws_at_boundary(&t));
		ws_feed(&t, zero, sizeof(zero));
	}
	cr_assert(ws_at_boundary(&t));
}
