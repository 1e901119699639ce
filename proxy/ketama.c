/*
 * ketama — nginx's `hash ... consistent` ring (ngx_http_upstream_init_chash and
 * ngx_http_upstream_get_chash_peer), rebuilt from the algorithm:
 *
 *   server "host:port", weight w
 *     base = crc32_update(init, host) · "\0" · port        (the Cache::Memcached::Fast form)
 *     prev = 0
 *     for j in 0 .. w·160−1:  point = crc32_final(base · le32(prev));  prev = point
 *
 *   every point of every server ──radix sort by (point, address rank)──▶ drop duplicates
 *   key ──crc32──▶ first point >= hash (wrap to point 0) ──▶ its server; ineligible: next point
 *
 * The split of "host:port" is nginx's: the port is the run of digits after the last ':'
 * (none: the whole text is the host); a "unix:" prefix is dropped and has no port.
 */
#include "ketama.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KT_CRC_INIT    0xffffffffu /* ngx_crc32_init */
#define KT_RANK_BITS   16          /* low bits of a sort key: the server's address rank */
#define KT_DIGIT_BITS  16          /* radix sort digit */
#define KT_SORT_PASSES 3           /* 32 point bits + 16 rank bits */
#define KT_UNIX_PREFIX "unix:"

struct ketama {
	uint32_t *point; /* npoints, ascending, no duplicates; owned */
	uint16_t *owner; /* npoints: caller index of the point's server; owned */
	size_t npoints;
	size_t n; /* servers */
};

/* The reflected CRC-32 table of polynomial 0xedb88320 (zlib's, nginx's ngx_crc32_table256). */
static const uint32_t kt_crc_table[256] = {
        0x00000000, 0x77073096, 0xee0e612c, 0x990951ba, 0x076dc419, 0x706af48f, 0xe963a535,
        0x9e6495a3, 0x0edb8832, 0x79dcb8a4, 0xe0d5e91e, 0x97d2d988, 0x09b64c2b, 0x7eb17cbd,
        0xe7b82d07, 0x90bf1d91, 0x1db71064, 0x6ab020f2, 0xf3b97148, 0x84be41de, 0x1adad47d,
        0x6ddde4eb, 0xf4d4b551, 0x83d385c7, 0x136c9856, 0x646ba8c0, 0xfd62f97a, 0x8a65c9ec,
        0x14015c4f, 0x63066cd9, 0xfa0f3d63, 0x8d080df5, 0x3b6e20c8, 0x4c69105e, 0xd56041e4,
        0xa2677172, 0x3c03e4d1, 0x4b04d447, 0xd20d85fd, 0xa50ab56b, 0x35b5a8fa, 0x42b2986c,
        0xdbbbc9d6, 0xacbcf940, 0x32d86ce3, 0x45df5c75, 0xdcd60dcf, 0xabd13d59, 0x26d930ac,
        0x51de003a, 0xc8d75180, 0xbfd06116, 0x21b4f4b5, 0x56b3c423, 0xcfba9599, 0xb8bda50f,
        0x2802b89e, 0x5f058808, 0xc60cd9b2, 0xb10be924, 0x2f6f7c87, 0x58684c11, 0xc1611dab,
        0xb6662d3d, 0x76dc4190, 0x01db7106, 0x98d220bc, 0xefd5102a, 0x71b18589, 0x06b6b51f,
        0x9fbfe4a5, 0xe8b8d433, 0x7807c9a2, 0x0f00f934, 0x9609a88e, 0xe10e9818, 0x7f6a0dbb,
        0x086d3d2d, 0x91646c97, 0xe6635c01, 0x6b6b51f4, 0x1c6c6162, 0x856530d8, 0xf262004e,
        0x6c0695ed, 0x1b01a57b, 0x8208f4c1, 0xf50fc457, 0x65b0d9c6, 0x12b7e950, 0x8bbeb8ea,
        0xfcb9887c, 0x62dd1ddf, 0x15da2d49, 0x8cd37cf3, 0xfbd44c65, 0x4db26158, 0x3ab551ce,
        0xa3bc0074, 0xd4bb30e2, 0x4adfa541, 0x3dd895d7, 0xa4d1c46d, 0xd3d6f4fb, 0x4369e96a,
        0x346ed9fc, 0xad678846, 0xda60b8d0, 0x44042d73, 0x33031de5, 0xaa0a4c5f, 0xdd0d7cc9,
        0x5005713c, 0x270241aa, 0xbe0b1010, 0xc90c2086, 0x5768b525, 0x206f85b3, 0xb966d409,
        0xce61e49f, 0x5edef90e, 0x29d9c998, 0xb0d09822, 0xc7d7a8b4, 0x59b33d17, 0x2eb40d81,
        0xb7bd5c3b, 0xc0ba6cad, 0xedb88320, 0x9abfb3b6, 0x03b6e20c, 0x74b1d29a, 0xead54739,
        0x9dd277af, 0x04db2615, 0x73dc1683, 0xe3630b12, 0x94643b84, 0x0d6d6a3e, 0x7a6a5aa8,
        0xe40ecf0b, 0x9309ff9d, 0x0a00ae27, 0x7d079eb1, 0xf00f9344, 0x8708a3d2, 0x1e01f268,
        0x6906c2fe, 0xf762575d, 0x806567cb, 0x196c3671, 0x6e6b06e7, 0xfed41b76, 0x89d32be0,
        0x10da7a5a, 0x67dd4acc, 0xf9b9df6f, 0x8ebeeff9, 0x17b7be43, 0x60b08ed5, 0xd6d6a3e8,
        0xa1d1937e, 0x38d8c2c4, 0x4fdff252, 0xd1bb67f1, 0xa6bc5767, 0x3fb506dd, 0x48b2364b,
        0xd80d2bda, 0xaf0a1b4c, 0x36034af6, 0x41047a60, 0xdf60efc3, 0xa867df55, 0x316e8eef,
        0x4669be79, 0xcb61b38c, 0xbc66831a, 0x256fd2a0, 0x5268e236, 0xcc0c7795, 0xbb0b4703,
        0x220216b9, 0x5505262f, 0xc5ba3bbe, 0xb2bd0b28, 0x2bb45a92, 0x5cb36a04, 0xc2d7ffa7,
        0xb5d0cf31, 0x2cd99e8b, 0x5bdeae1d, 0x9b64c2b0, 0xec63f226, 0x756aa39c, 0x026d930a,
        0x9c0906a9, 0xeb0e363f, 0x72076785, 0x05005713, 0x95bf4a82, 0xe2b87a14, 0x7bb12bae,
        0x0cb61b38, 0x92d28e9b, 0xe5d5be0d, 0x7cdcefb7, 0x0bdbdf21, 0x86d3d2d4, 0xf1d4e242,
        0x68ddb3f8, 0x1fda836e, 0x81be16cd, 0xf6b9265b, 0x6fb077e1, 0x18b74777, 0x88085ae6,
        0xff0f6a70, 0x66063bca, 0x11010b5c, 0x8f659eff, 0xf862ae69, 0x616bffd3, 0x166ccf45,
        0xa00ae278, 0xd70dd2ee, 0x4e048354, 0x3903b3c2, 0xa7672661, 0xd06016f7, 0x4969474d,
        0x3e6e77db, 0xaed16a4a, 0xd9d65adc, 0x40df0b66, 0x37d83bf0, 0xa9bcae53, 0xdebb9ec5,
        0x47b2cf7f, 0x30b5ffe9, 0xbdbdf21c, 0xcabac28a, 0x53b39330, 0x24b4a3a6, 0xbad03605,
        0xcdd70693, 0x54de5729, 0x23d967bf, 0xb3667a2e, 0xc4614ab8, 0x5d681b02, 0x2a6f2b94,
        0xb40bbe37, 0xc30c8ea1, 0x5a05df1b, 0x2d02ef8d,
};

static uint32_t kt_crc_update(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++)
		crc = kt_crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return crc;
}

uint32_t ketama_crc32(const void *data, size_t len)
{
	return kt_crc_update(KT_CRC_INIT, data, len) ^ KT_CRC_INIT;
}

/* nginx's split of a server string into host and port (port may be empty). */
static void kt_split(const char *s, const char **host, size_t *host_len, const char **port,
                     size_t *port_len)
{
	size_t len = strlen(s), plen = sizeof(KT_UNIX_PREFIX) - 1;

	*port = s + len;
	*port_len = 0;
	if (len >= plen && strncasecmp(s, KT_UNIX_PREFIX, plen) == 0) {
		*host = s + plen;
		*host_len = len - plen;
		return;
	}
	*host = s;
	*host_len = len;
	for (size_t j = 0; j < len; j++) {
		char c = s[len - j - 1];

		if (c == ':') {
			*host_len = len - j - 1;
			*port = s + len - j;
			*port_len = j;
			return;
		}
		if (c < '0' || c > '9')
			return;
	}
}

/* Append server's w·KETAMA_POINTS_PER_WEIGHT points to keys as (point << 16 | rank). */
static uint64_t *kt_chain(uint64_t *keys, const char *address, unsigned weight, unsigned rank)
{
	const char *host, *port;
	size_t host_len, port_len;
	uint32_t base, prev = 0;
	unsigned char le[4];

	kt_split(address, &host, &host_len, &port, &port_len);
	base = kt_crc_update(KT_CRC_INIT, host, host_len);
	base = kt_crc_update(base, "", 1);
	base = kt_crc_update(base, port, port_len);
	for (unsigned j = 0; j < weight * KETAMA_POINTS_PER_WEIGHT; j++) {
		/* nginx feeds prev_hash's bytes in little-endian order on every platform */
		le[0] = (unsigned char)prev;
		le[1] = (unsigned char)(prev >> 8);
		le[2] = (unsigned char)(prev >> 16);
		le[3] = (unsigned char)(prev >> 24);
		prev = kt_crc_update(base, le, sizeof(le)) ^ KT_CRC_INIT;
		*keys++ = (uint64_t)prev << KT_RANK_BITS | rank;
	}
	return keys;
}

/* LSD radix sort of n 48-bit keys; tmp holds n. 0, or -1 without memory. */
static int kt_sort(uint64_t *keys, uint64_t *tmp, size_t n)
{
	size_t *count = malloc(((size_t)1 << KT_DIGIT_BITS) * sizeof(*count));
	const uint64_t mask = ((uint64_t)1 << KT_DIGIT_BITS) - 1;

	if (count == NULL)
		return -1;
	for (unsigned pass = 0; pass < KT_SORT_PASSES; pass++) {
		unsigned shift = pass * KT_DIGIT_BITS;
		size_t sum = 0;

		memset(count, 0, ((size_t)1 << KT_DIGIT_BITS) * sizeof(*count));
		for (size_t i = 0; i < n; i++)
			count[(keys[i] >> shift) & mask]++;
		for (size_t d = 0; d <= mask; d++) {
			size_t c = count[d];

			count[d] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			tmp[count[(keys[i] >> shift) & mask]++] = keys[i];
		memcpy(keys, tmp, n * sizeof(*keys));
	}
	free(count);
	return 0;
}

/* ---- build ---- */

struct kt_rank {
	const char *address; /* borrowed */
	size_t index;        /* caller index */
};

static int kt_rank_cmp(const void *a, const void *b)
{
	const struct kt_rank *x = a, *y = b;

	return strcmp(x->address, y->address);
}

/* Servers sorted by address; NULL on bad arguments or no memory. */
static struct kt_rank *kt_ranks(const char *const *addresses, const unsigned *weights, size_t n,
                                size_t *npoints)
{
	struct kt_rank *r;

	if (addresses == NULL || weights == NULL || n == 0 || n > KETAMA_MAX_BACKENDS)
		return NULL;
	*npoints = 0;
	for (size_t i = 0; i < n; i++) {
		if (addresses[i] == NULL || weights[i] < 1 || weights[i] > KETAMA_MAX_WEIGHT)
			return NULL;
		*npoints += (size_t)weights[i] * KETAMA_POINTS_PER_WEIGHT;
	}
	r = malloc(n * sizeof(*r));
	if (r == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		r[i] = (struct kt_rank){addresses[i], i};
	qsort(r, n, sizeof(*r), kt_rank_cmp);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(r[i - 1].address, r[i].address) == 0) {
			free(r);
			return NULL;
		}
	}
	return r;
}

/* Sorted keys → point and owner arrays, first of each run of equal points kept. */
static int kt_fill(struct ketama *k, const uint64_t *keys, size_t nkeys, const struct kt_rank *r)
{
	size_t m = 0;

	k->point = malloc(nkeys * sizeof(*k->point));
	k->owner = malloc(nkeys * sizeof(*k->owner));
	if (k->point == NULL || k->owner == NULL)
		return -1;
	for (size_t i = 0; i < nkeys; i++) {
		uint32_t point = (uint32_t)(keys[i] >> KT_RANK_BITS);

		if (m > 0 && k->point[m - 1] == point)
			continue;
		k->point[m] = point;
		k->owner[m++] = (uint16_t)r[keys[i] & (((uint64_t)1 << KT_RANK_BITS) - 1)].index;
	}
	k->npoints = m;
	return 0;
}

struct ketama *ketama_build(const char *const *addresses, const unsigned *weights, size_t n)
{
	size_t total = 0;
	struct kt_rank *r = kt_ranks(addresses, weights, n, &total);
	struct ketama *k = r != NULL ? calloc(1, sizeof(*k)) : NULL;
	uint64_t *keys = k != NULL ? malloc(total * sizeof(*keys)) : NULL;
	uint64_t *tmp = keys != NULL ? malloc(total * sizeof(*tmp)) : NULL;
	int rc = -1;

	if (tmp != NULL) {
		uint64_t *end = keys;

		for (size_t j = 0; j < n; j++)
			end = kt_chain(end, r[j].address, weights[r[j].index], (unsigned)j);
		rc = kt_sort(keys, tmp, total);
		if (rc == 0)
			rc = kt_fill(k, keys, total, r);
	}
	free(tmp);
	free(keys);
	free(r);
	if (rc != 0) {
		ketama_free(k);
		return NULL;
	}
	k->n = n;
	return k;
}

void ketama_free(struct ketama *k)
{
	if (k == NULL)
		return;
	free(k->point);
	free(k->owner);
	free(k);
}

/* ---- queries ---- */

size_t ketama_points(const struct ketama *k)
{
	return k != NULL ? k->npoints : 0;
}

size_t ketama_backends(const struct ketama *k)
{
	return k != NULL ? k->n : 0;
}

uint32_t ketama_point(const struct ketama *k, size_t i, unsigned *owner)
{
	if (k == NULL || i >= k->npoints) {
		*owner = KETAMA_MAX_BACKENDS;
		return 0;
	}
	*owner = k->owner[i];
	return k->point[i];
}

size_t ketama_bytes(const struct ketama *k)
{
	if (k == NULL)
		return 0;
	return sizeof(*k) + k->npoints * (sizeof(*k->point) + sizeof(*k->owner));
}

/* ngx_http_upstream_find_chash_point: the first point >= hash; npoints means wrap to 0. */
static size_t kt_find(const struct ketama *k, uint32_t hash)
{
	size_t lo = 0, hi = k->npoints;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (k->point[mid] < hash)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < k->npoints ? lo : 0;
}

int ketama_lookup(const struct ketama *k, uint64_t h, const bool *eligible)
{
	size_t i;

	if (k == NULL)
		return -1;
	i = kt_find(k, (uint32_t)h);
	if (eligible == NULL)
		return k->owner[i];
	/* every server owns at least one point, so the walk ends within one lap */
	for (size_t walked = 0; walked < k->npoints; walked++) {
		if (eligible[k->owner[i]])
			return k->owner[i];
		if (++i == k->npoints)
			i = 0;
	}
	return -1;
}
