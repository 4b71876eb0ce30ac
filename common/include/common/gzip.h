/* gzip (RFC 1952) for upload bodies: compressed with libdeflate, inflated with zlib.
 * A compressor and an inflater are each set up once and reused for many documents (a
 * fresh compressor or zlib stream per document costs far more than the compression of a
 * small one). libdeflate compresses a whole buffer at once, which is all an upload body
 * needs, in about 60 % of zlib's time at the same level and size (a school's 3 KB return:
 * 23 against 35-39 us here; docs/PERFORMANCE.md, "agent"). The inflater is meant for
 * untrusted input: it accepts exactly one gzip member and nothing else, and it enforces
 * its caps while inflating, never trusting the ISIZE trailer, so a bomb is stopped after
 * at most the cap is written. Neither object is thread-safe: one per thread. */
#ifndef COMMON_GZIP_H
#define COMMON_GZIP_H

#include <stddef.h>

#include "common/macro.h"

struct buf;
struct libdeflate_compressor;
struct z_stream_s;

/* The ratio cap applies only once the output exceeds this many bytes, so a tiny but
 * valid upload (e.g. 40 bytes of "{}" padding) is never refused for its ratio. */
#define GZIP_RATIO_FLOOR (64u * 1024)

struct gzip_compressor {
	struct libdeflate_compressor *dc;
};

struct gzip_inflater {
	struct z_stream_s *zs;
	size_t max_output;  /* bytes one document may inflate to */
	unsigned max_ratio; /* output/input above GZIP_RATIO_FLOOR; 0: no ratio cap */
};

/* level: 0..9 as zlib counts (0: stored blocks only) or -1 (zlib's default, 6).
 * -EINVAL for another level, -ENOMEM. Release with gzip_compressor_release(). */
int gzip_compressor_init(struct gzip_compressor *ret, int level) WUR;
void gzip_compressor_release(struct gzip_compressor *z);

/* Appends one complete gzip member (10-byte header, deflate data, CRC-32 and ISIZE
 * trailer) holding the len bytes at in to out. On failure out is as it was (its
 * allocation may have grown): -EMSGSIZE when the member would exceed out->max,
 * -ENOMEM, -EIO for an internal error. */
int gzip_compress(struct gzip_compressor *z, const void *in, size_t len, struct buf *out) WUR;

/* An inflater whose documents may inflate to at most max_output bytes, and, once past
 * GZIP_RATIO_FLOOR bytes, to at most max_ratio times their compressed length (0: no
 * ratio cap). -EINVAL when max_output is 0, -ENOMEM. Release with
 * gzip_inflater_release(). */
int gzip_inflater_init(struct gzip_inflater *ret, size_t max_output, unsigned max_ratio) WUR;
void gzip_inflater_release(struct gzip_inflater *z);

/* Inflates the len bytes at in, which must be exactly one gzip member, and appends the
 * result to out. The effective limit is the smallest of max_output, the ratio cap
 * (max(GZIP_RATIO_FLOOR, max_ratio * len)) and the room left in out; it is checked as
 * output is produced, and out never holds, nor allocates room for, more than the limit
 * beyond what it held before.
 * Returns 0, or on failure leaves out->len as it was, writes a message to err (may be
 * NULL) and returns:
 *   -EFBIG    the output would exceed a cap (an HTTP server answers 413);
 *   -EBADMSG  not exactly one valid gzip member: empty, not gzip (raw deflate or zlib
 *             data are refused), corrupt, truncated, bad CRC-32 or ISIZE trailer, or any
 *             byte after the member, a second member included (HTTP 400);
 *   -ENOMEM, -EIO (zlib internal error). */
int gzip_inflate(struct gzip_inflater *z, const void *in, size_t len, struct buf *out, char *err,
                 size_t errlen) WUR;

#endif
