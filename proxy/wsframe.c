/*
 * wsframe — WebSocket frame boundary tracking.
 */
#include "wsframe.h"

/* Header length once enough of it is known (0 while it is not). */
static size_t header_len(const struct ws_track *t)
{
	uint8_t len7;

	if (t->have < 2)
		return 0;
	len7 = t->hdr[1] & 0x7f;
	return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((t->hdr[1] & 0x80) ? 4 : 0);
}

static uint64_t payload_len(const struct ws_track *t)
{
	uint8_t len7 = t->hdr[1] & 0x7f;
	uint64_t n = 0;

	if (len7 < 126)
		return len7;
	for (int i = 0; i < (len7 == 126 ? 2 : 8); i++)
		n = n << 8 | t->hdr[2 + i];
	return n;
}

void ws_feed(struct ws_track *t, const uint8_t *p, size_t n)
{
	while (n > 0) {
		if (t->left > 0) {
			size_t k = n < t->left ? n : (size_t)t->left;
			t->left -= k;
			p += k;
			n -= k;
			continue;
		}
		t->hdr[t->have++] = *p++;
		n--;
		size_t need = header_len(t);
		if (need != 0 && t->have == need) {
			t->left = payload_len(t);
			t->have = 0;
		}
	}
}

bool ws_at_boundary(const struct ws_track *t)
{
	return t->left == 0 && t->have == 0;
}
