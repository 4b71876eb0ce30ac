/* gzip compressor (libdeflate) and capped inflater (zlib): see gzip.h. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <libdeflate.h>
#include <zlib.h>

#include "common/errmsg.h"
#include "common/buf.h"
#include "common/gzip.h"
#include "common/banned.h"

/* zlib counts in uInt: hand it at most this much input or output space at a time. */
#define CHUNK_MAX (1u << 30)
/* windowBits: 15 plus 16 selects the gzip wrapper only (32 would also accept zlib). */
#define GZIP_WINDOW_BITS (15 + 16)
/* zlib's level -1 */
#define ZLIB_DEFAULT_LEVEL 6
#define INFLATE_FIRST_RESERVE (16u * 1024)

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* Bytes free after out->len, not counting the byte kept for the terminating NUL. */
static size_t buf_room(const struct buf *out)
{
	return out->data ? out->alloc - out->len - 1 : 0;
}

int gzip_compressor_init(struct gzip_compressor *ret, int level)
{
	if (level < -1 || level > 9)
		return -EINVAL;
	ret->dc = libdeflate_alloc_compressor(level < 0 ? ZLIB_DEFAULT_LEVEL : level);
	return ret->dc ? 0 : -ENOMEM;
}

void gzip_compressor_release(struct gzip_compressor *z)
{
	libdeflate_free_compressor(z->dc);
	z->dc = NULL;
}

int gzip_compress(struct gzip_compressor *z, const void *in, size_t len, struct buf *out)
{
	size_t bound = libdeflate_gzip_compress_bound(z->dc, len), n;
	unsigned char *aside;
	int r;

	if (bound <= out->max - out->len) {
		/* the worst case fits: compress in place */
		r = buf_reserve(out, bound);
		if (r < 0)
			return r;
		n = libdeflate_gzip_compress(z->dc, in, len, out->data + out->len, bound);
		if (n == 0) /* never, with the bound's room */
			return -EIO;
		out->len += n;
		out->data[out->len] = '\0';
		return 0;
	}
	/* Less room than the worst case: compress aside, keep the member if it fits. */
	aside = malloc(bound);
	if (!aside)
		return -ENOMEM;
	n = libdeflate_gzip_compress(z->dc, in, len, aside, bound);
	r = n == 0 ? -EIO : n > out->max - out->len ? -EMSGSIZE : buf_append(out, aside, n);
	free(aside);
	return r;
}

int gzip_inflater_init(struct gzip_inflater *ret, size_t max_output, unsigned max_ratio)
{
	z_stream *zs;
	int zr;

	if (max_output == 0)
		return -EINVAL;
	zs = calloc(1, sizeof(*zs));
	if (!zs)
		return -ENOMEM;
	zr = inflateInit2(zs, GZIP_WINDOW_BITS);
	if (zr != Z_OK) {
		free(zs);
		return zr == Z_MEM_ERROR ? -ENOMEM : -EIO;
	}
	ret->zs = zs;
	ret->max_output = max_output;
	ret->max_ratio = max_ratio;
	return 0;
}

void gzip_inflater_release(struct gzip_inflater *z)
{
	if (!z->zs)
		return;
	inflateEnd(z->zs);
	free(z->zs);
	z->zs = NULL;
}

enum limit_kind {
	LIMIT_OUTPUT,
	LIMIT_RATIO,
	LIMIT_BUFFER,
};

static int too_big(const struct gzip_inflater *z, enum limit_kind kind, size_t limit, size_t len,
                   char *err, size_t errlen)
{
	switch (kind) {
	case LIMIT_OUTPUT:
		errmsg_set(err, errlen, 0, "inflated data exceed the limit of %zu bytes", limit);
		break;
	case LIMIT_RATIO:
		errmsg_set(err, errlen, 0,
		           "inflated data exceed %zu bytes, %u times the %zu compressed bytes",
		           limit, z->max_ratio, len);
		break;
	case LIMIT_BUFFER:
		errmsg_set(err, errlen, 0, "inflated data exceed the %zu bytes left in the buffer",
		           limit);
		break;
	}
	return -EFBIG;
}

int gzip_inflate(struct gzip_inflater *z, const void *in, size_t len, struct buf *out, char *err,
                 size_t errlen)
{
	z_stream *zs = z->zs;
	const size_t orig_len = out->len, orig_max = out->max;
	const unsigned char *next = in;
	enum limit_kind kind = LIMIT_OUTPUT;
	size_t left = len, limit = z->max_output;
	int r, zr;

	if (len == 0) {
		errmsg_set(err, errlen, 0, "empty input is not gzip data");
		return -EBADMSG;
	}
	if (z->max_ratio) {
		size_t by_ratio = len > SIZE_MAX / z->max_ratio ? SIZE_MAX : len * z->max_ratio;

		if (by_ratio < GZIP_RATIO_FLOOR)
			by_ratio = GZIP_RATIO_FLOOR;
		if (by_ratio < limit) {
			limit = by_ratio;
			kind = LIMIT_RATIO;
		}
	}
	if (out->max - out->len < limit) {
		limit = out->max - out->len;
		kind = LIMIT_BUFFER;
	}
	if (inflateReset(zs) != Z_OK)
		return -EIO;
	/* inflateReset keeps avail_in: a refused document may have left some */
	zs->avail_in = 0;
	/* buf_reserve never allocates past max: lower it for the call so that a bomb cannot
	 * make out allocate more than the limit either. */
	out->max = orig_len + limit;

	for (;;) {
		size_t produced = out->len - orig_len, got;
		unsigned char scratch[64];
		unsigned before;

		if (zs->avail_in == 0 && left > 0) {
			zs->next_in = (unsigned char *)next;
			zs->avail_in = (unsigned)min_size(left, CHUNK_MAX);
			next += zs->avail_in;
			left -= zs->avail_in;
		}
		if (produced < limit) {
			size_t room = buf_room(out);

			if (room == 0) {
				size_t grow = produced > INFLATE_FIRST_RESERVE
				                      ? produced
				                      : INFLATE_FIRST_RESERVE;

				r = buf_reserve(out, min_size(grow, limit - produced));
				if (r < 0)
					goto fail;
				room = buf_room(out);
			}
			zs->next_out = (unsigned char *)out->data + out->len;
			zs->avail_out =
			        (unsigned)min_size(min_size(room, limit - produced), CHUNK_MAX);
		} else {
			/* At the limit: the stream may only end now, any further byte is one
			 * too many. */
			zs->next_out = scratch;
			zs->avail_out = sizeof(scratch);
		}
		before = zs->avail_out;
		zr = inflate(zs, Z_NO_FLUSH);
		got = before - zs->avail_out;
		if (produced >= limit && got > 0) {
			r = too_big(z, kind, limit, len, err, errlen);
			goto fail;
		}
		if (produced < limit)
			out->len += got;

		switch (zr) {
		case Z_OK:
			continue;
		case Z_STREAM_END:
			if (zs->avail_in > 0 || left > 0) {
				errmsg_set(err, errlen, 0, "%zu bytes after the gzip member",
				           (size_t)zs->avail_in + left);
				r = -EBADMSG;
				goto fail;
			}
			goto done;
		case Z_BUF_ERROR:
			/* No progress although output space was given: the input ran out. */
			if (zs->avail_in == 0 && left == 0) {
				errmsg_set(err, errlen, 0, "truncated gzip data");
				r = -EBADMSG;
				goto fail;
			}
			errmsg_set(err, errlen, 0, "zlib made no progress while inflating");
			r = -EIO;
			goto fail;
		case Z_DATA_ERROR:
			errmsg_set(err, errlen, 0, "corrupt gzip data: %s",
			           zs->msg ? zs->msg : "?");
			r = -EBADMSG;
			goto fail;
		case Z_MEM_ERROR:
			errmsg_set(err, errlen, 0, "out of memory while inflating");
			r = -ENOMEM;
			goto fail;
		default:
			errmsg_set(err, errlen, 0, "zlib error %d while inflating", zr);
			r = -EIO;
			goto fail;
		}
	}

done:
	out->max = orig_max;
	if (out->data)
		out->data[out->len] = '\0';
	return 0;

fail:
	out->max = orig_max;
	out->len = orig_len;
	if (out->data)
		out->data[orig_len] = '\0';
	return r;
}
