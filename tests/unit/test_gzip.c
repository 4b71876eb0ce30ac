/* Unit tests for common/gzip. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "common/buf.h"
#include "common/gzip.h"
#include "common/banned.h"

#define MiB (1024u * 1024)
/* buffers without a practical maximum (buf_init with SIZE_MAX would overflow max + 1) */
#define BIG ((size_t)4096 * MiB)

/* "hello, gzip\n" compressed by GNU gzip 1.12 (header with FNAME "hello.txt" and mtime):
 * an independent producer. */
static const unsigned char gnu_gzip[] = {
        0x1f, 0x8b, 0x08, 0x08, 0xe0, 0x39, 0x34, 0x66, 0x00, 0x03, 0x68, 0x65, 0x6c, 0x6c,
        0x6f, 0x2e, 0x74, 0x78, 0x74, 0x00, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0xd7, 0x51, 0x48,
        0xaf, 0xca, 0x2c, 0xe0, 0x02, 0x00, 0x86, 0x1f, 0x82, 0xa4, 0x0c, 0x00, 0x00, 0x00,
};

/* "extra fields" behind a header with every optional field: FEXTRA, FNAME, FCOMMENT and
 * FHCRC (made with Python's zlib, header assembled by hand). */
static const unsigned char all_flags[] = {
        0x1f, 0x8b, 0x08, 0x1e, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x04, 0x00, 0x61, 0x62,
        0x00, 0x00, 0x6e, 0x61, 0x6d, 0x65, 0x00, 0x63, 0x6f, 0x6d, 0x6d, 0x65, 0x6e, 0x74,
        0x00, 0xb5, 0x41, 0x4b, 0xad, 0x28, 0x29, 0x4a, 0x54, 0x48, 0xcb, 0x4c, 0xcd, 0x49,
        0x29, 0x06, 0x00, 0xe2, 0x7b, 0xe9, 0xb2, 0x0c, 0x00, 0x00, 0x00,
};

/* Deterministic pseudo-random bytes (xorshift64). */
static void fill_random(unsigned char *p, size_t n, uint64_t seed)
{
	uint64_t x = seed | 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)(x >> 24);
	}
}

/* Text-like data that compresses well, as JSON does. */
static void fill_text(unsigned char *p, size_t n, uint64_t seed)
{
	static const char *const words[] = {
	        "{\"school_id\":", "\"2165000123\",", "\"data\":", "[1,2,3],",
	        "\"victims\":",    "null}",           " ",         "\n"};
	uint64_t x = seed | 1;
	size_t i = 0;

	while (i < n) {
		const char *w;
		size_t wl;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w = words[x % ARRAY_SIZE(words)];
		wl = strlen(w);
		if (wl > n - i)
			wl = n - i;
		memcpy(p + i, w, wl);
		i += wl;
	}
}

static void compress_into(const void *in, size_t len, struct buf *out)
{
	struct gzip_compressor c;

	assert_int_equal(gzip_compressor_init(&c, 6), 0);
	assert_int_equal(gzip_compress(&c, in, len, out), 0);
	gzip_compressor_release(&c);
}

static void round_trip(const void *in, size_t len)
{
	struct gzip_compressor c;
	struct gzip_inflater z;
	struct buf gz, back;
	char err[256] = "";

	buf_init(&gz, BIG);
	buf_init(&back, BIG);
	assert_int_equal(gzip_compressor_init(&c, -1), 0);
	assert_int_equal(gzip_compress(&c, in, len, &gz), 0);
	/* RFC 1952 header: ID1 ID2 CM=deflate */
	assert_true(gz.len >= 18);
	assert_int_equal((unsigned char)gz.data[0], 0x1f);
	assert_int_equal((unsigned char)gz.data[1], 0x8b);
	assert_int_equal((unsigned char)gz.data[2], 8);
	assert_int_equal(gzip_inflater_init(&z, len ? len : 1, 0), 0);
	assert_int_equal(gzip_inflate(&z, gz.data, gz.len, &back, err, sizeof(err)), 0);
	assert_int_equal(back.len, len);
	if (len)
		assert_memory_equal(back.data, in, len);
	gzip_inflater_release(&z);
	gzip_compressor_release(&c);
	buf_release(&gz);
	buf_release(&back);
}

static void test_round_trip(void **state)
{
	unsigned char *p = malloc(MiB);

	(void)state;
	assert_non_null(p);
	round_trip("", 0);
	round_trip("{}", 2);
	fill_text(p, MiB, 1);
	round_trip(p, MiB);
	fill_random(p, MiB, 2);
	round_trip(p, MiB);
	fill_random(p, 1000, 3);
	round_trip(p, 1000);
	free(p);
}

/* Output of other gzip implementations, with optional header fields, is accepted. */
static void test_gnu_gzip(void **state)
{
	struct gzip_inflater z;
	struct buf out;
	char err[256];

	(void)state;
	buf_init(&out, 1000);
	assert_int_equal(gzip_inflater_init(&z, 1000, 10), 0);
	assert_int_equal(gzip_inflate(&z, gnu_gzip, sizeof(gnu_gzip), &out, err, sizeof(err)), 0);
	assert_string_equal(out.data, "hello, gzip\n");
	buf_reset(&out);
	assert_int_equal(gzip_inflate(&z, all_flags, sizeof(all_flags), &out, err, sizeof(err)), 0);
	assert_string_equal(out.data, "extra fields");
	gzip_inflater_release(&z);
	buf_release(&out);
}

/* One compressor and one inflater serve 1000 documents of varied sizes, some of them
 * rejected in between. */
static void test_reuse(void **state)
{
	enum { DOCS = 1000, MAXLEN = 20000, NOISE = 256 * 1024 };
	struct gzip_compressor c;
	struct gzip_inflater z;
	unsigned char *doc = malloc(MAXLEN), *noise = malloc(NOISE);
	struct buf gz, back;
	char err[256];

	(void)state;
	assert_non_null(doc);
	assert_non_null(noise);
	fill_random(noise, NOISE, 99);
	buf_init(&gz, BIG);
	buf_init(&back, BIG);
	assert_int_equal(gzip_compressor_init(&c, 6), 0);
	assert_int_equal(gzip_inflater_init(&z, MAXLEN, 1000), 0);
	for (unsigned i = 0; i < DOCS; i++) {
		size_t len = (i * 7919u) % MAXLEN;

		if (i % 3)
			fill_text(doc, len, i + 1);
		else
			fill_random(doc, len, i + 1);
		buf_reset(&gz);
		buf_reset(&back);
		if (i % 10 == 3) {
			/* a refused document must not leave input behind for the next one */
			struct buf tiny;

			buf_init(&tiny, 1000);
			assert_int_equal(gzip_compress(&c, noise, NOISE, &tiny), -EMSGSIZE);
			buf_release(&tiny);
		}
		assert_int_equal(gzip_compress(&c, doc, len, &gz), 0);
		if (i % 10 == 5) {
			/* nor a corrupt upload */
			assert_int_equal(
			        gzip_inflate(&z, gz.data, gz.len - 1, &back, err, sizeof(err)),
			        -EBADMSG);
			assert_int_equal(back.len, 0);
		}
		if (i % 10 == 7) {
			/* nor one whose trailing bytes zlib never read */
			assert_int_equal(buf_puts(&gz, "trailing"), 0);
			assert_int_equal(gzip_inflate(&z, gz.data, gz.len, &back, err, sizeof(err)),
			                 -EBADMSG);
			assert_int_equal(back.len, 0);
			gz.len -= 8;
		}
		assert_int_equal(gzip_inflate(&z, gz.data, gz.len, &back, err, sizeof(err)), 0);
		assert_int_equal(back.len, len);
		if (len)
			assert_memory_equal(back.data, doc, len);
	}
	gzip_inflater_release(&z);
	gzip_compressor_release(&c);
	buf_release(&gz);
	buf_release(&back);
	free(doc);
	free(noise);
}

/* Output of exactly max_output bytes is accepted, one byte more is refused. */
static void test_output_cap_exact(void **state)
{
	enum { N = 100000 };
	unsigned char *doc = malloc(N + 1);
	struct gzip_inflater z;
	struct buf at, over, out;
	char err[256] = "";

	(void)state;
	assert_non_null(doc);
	fill_text(doc, N + 1, 7);
	buf_init(&at, BIG);
	buf_init(&over, BIG);
	buf_init(&out, BIG);
	compress_into(doc, N, &at);
	compress_into(doc, N + 1, &over);

	assert_int_equal(gzip_inflater_init(&z, N, 0), 0);
	assert_int_equal(gzip_inflate(&z, at.data, at.len, &out, err, sizeof(err)), 0);
	assert_int_equal(out.len, N);
	assert_memory_equal(out.data, doc, N);
	buf_reset(&out);
	assert_int_equal(gzip_inflate(&z, over.data, over.len, &out, err, sizeof(err)), -EFBIG);
	assert_int_equal(out.len, 0);
	assert_true(out.alloc <= N + 1);
	assert_non_null(strstr(err, "limit of 100000 bytes"));
	gzip_inflater_release(&z);

	/* The room left in the output buffer is a cap too, counted after what it holds. */
	assert_int_equal(gzip_inflater_init(&z, 10 * N, 0), 0);
	buf_release(&out);
	buf_init(&out, N + 3);
	assert_int_equal(buf_puts(&out, "ab"), 0);
	assert_int_equal(gzip_inflate(&z, over.data, over.len, &out, err, sizeof(err)), 0);
	assert_int_equal(out.len, N + 3);
	assert_memory_equal(out.data, "ab", 2);
	assert_memory_equal(out.data + 2, doc, N + 1);
	buf_release(&out);
	buf_init(&out, N + 2);
	assert_int_equal(buf_puts(&out, "ab"), 0);
	assert_int_equal(gzip_inflate(&z, over.data, over.len, &out, err, sizeof(err)), -EFBIG);
	assert_int_equal(out.len, 2);
	assert_string_equal(out.data, "ab");
	gzip_inflater_release(&z);

	buf_release(&at);
	buf_release(&over);
	buf_release(&out);
	free(doc);
}

static void zeros_gz(size_t n, struct buf *gz)
{
	unsigned char *zeros = calloc(1, n ? n : 1);

	assert_non_null(zeros);
	compress_into(zeros, n, gz);
	free(zeros);
}

/* 100 MiB of zeros in about 100 KiB: stopped at the cap, with no more allocated. */
static void test_bomb(void **state)
{
	struct gzip_inflater z;
	struct buf gz, out;
	char err[256] = "";
	size_t ratio_limit;

	(void)state;
	buf_init(&gz, BIG);
	buf_init(&out, BIG);
	zeros_gz(100 * MiB, &gz);
	assert_true(gz.len < 200 * 1024);

	/* the output cap of a county hub */
	assert_int_equal(gzip_inflater_init(&z, 8 * MiB, 100), 0);
	assert_int_equal(gzip_inflate(&z, gz.data, gz.len, &out, err, sizeof(err)), -EFBIG);
	assert_int_equal(out.len, 0);
	assert_true(out.alloc <= 8 * MiB + 1);
	gzip_inflater_release(&z);
	buf_release(&out);

	/* a ratio cap below the output cap */
	assert_int_equal(gzip_inflater_init(&z, 1024 * MiB, 20), 0);
	ratio_limit = 20 * gz.len;
	assert_int_equal(gzip_inflate(&z, gz.data, gz.len, &out, err, sizeof(err)), -EFBIG);
	assert_int_equal(out.len, 0);
	assert_true(out.alloc <= ratio_limit + 1);
	assert_non_null(strstr(err, "20 times"));
	gzip_inflater_release(&z);

	buf_release(&gz);
	buf_release(&out);
}

/* Under GZIP_RATIO_FLOOR bytes of output the ratio does not matter. */
static void test_ratio_floor(void **state)
{
	struct gzip_inflater z;
	struct buf gz, out;
	char err[256] = "";

	(void)state;
	buf_init(&gz, BIG);
	buf_init(&out, BIG);
	assert_int_equal(gzip_inflater_init(&z, 8 * MiB, 2), 0);

	zeros_gz(GZIP_RATIO_FLOOR, &gz);
	assert_true(gz.len * 2 < GZIP_RATIO_FLOOR);
	assert_int_equal(gzip_inflate(&z, gz.data, gz.len, &out, err, sizeof(err)), 0);
	assert_int_equal(out.len, GZIP_RATIO_FLOOR);

	buf_reset(&gz);
	buf_reset(&out);
	zeros_gz(GZIP_RATIO_FLOOR + 1, &gz);
	assert_int_equal(gzip_inflate(&z, gz.data, gz.len, &out, err, sizeof(err)), -EFBIG);
	assert_int_equal(out.len, 0);

	gzip_inflater_release(&z);
	buf_release(&gz);
	buf_release(&out);
}

static void expect_bad(struct gzip_inflater *z, const void *in, size_t len, const char *msg)
{
	struct buf out;
	char err[256] = "";

	buf_init(&out, BIG);
	assert_int_equal(buf_puts(&out, "keep"), 0);
	assert_int_equal(gzip_inflate(z, in, len, &out, err, sizeof(err)), -EBADMSG);
	assert_int_equal(out.len, 4);
	assert_string_equal(out.data, "keep");
	if (msg && !strstr(err, msg))
		fail_msg("error '%s' does not mention '%s' (%zu bytes)", err, msg, len);
	buf_release(&out);
}

static void test_truncated(void **state)
{
	struct gzip_inflater z;
	struct buf gz;

	(void)state;
	buf_init(&gz, BIG);
	compress_into("a small document, a small document", 34, &gz);
	assert_int_equal(gzip_inflater_init(&z, 1000, 10), 0);
	expect_bad(&z, gz.data, 0, "empty");
	for (size_t n = 1; n < gz.len; n++)
		expect_bad(&z, gz.data, n, NULL);
	for (size_t n = 1; n < sizeof(gnu_gzip); n++)
		expect_bad(&z, gnu_gzip, n, NULL);
	expect_bad(&z, gnu_gzip, sizeof(gnu_gzip) - 1, "truncated");
	gzip_inflater_release(&z);
	buf_release(&gz);
}

static void test_bad_trailer(void **state)
{
	struct gzip_inflater z;
	unsigned char copy[sizeof(gnu_gzip)];
	size_t n = sizeof(gnu_gzip);

	(void)state;
	assert_int_equal(gzip_inflater_init(&z, 1000, 10), 0);
	for (size_t i = n - 8; i < n; i++) {
		for (int bit = 0; bit < 8; bit++) {
			memcpy(copy, gnu_gzip, n);
			copy[i] ^= (unsigned char)(1u << bit);
			expect_bad(&z, copy, n,
			           i < n - 4 ? "incorrect data check" : "incorrect length check");
		}
	}
	gzip_inflater_release(&z);
}

static void test_trailing(void **state)
{
	struct gzip_inflater z;
	struct buf gz;
	size_t one;

	(void)state;
	buf_init(&gz, BIG);
	compress_into("first", 5, &gz);
	one = gz.len;
	assert_int_equal(gzip_inflater_init(&z, 1000, 10), 0);

	assert_int_equal(buf_putc(&gz, '\0'), 0);
	expect_bad(&z, gz.data, gz.len, "1 bytes after the gzip member");
	gz.len = one;
	assert_int_equal(buf_puts(&gz, "garbage after the member"), 0);
	expect_bad(&z, gz.data, gz.len, "after the gzip member");

	/* two concatenated members: valid for gunzip, refused here */
	gz.len = one;
	compress_into("second", 6, &gz);
	expect_bad(&z, gz.data, gz.len, "after the gzip member");
	gzip_inflater_release(&z);
	buf_release(&gz);
}

/* zlib (RFC 1950) and raw deflate (RFC 1951) streams are not gzip. */
static void test_not_gzip(void **state)
{
	static const char doc[] = "a document compressed in another format";
	unsigned char zbuf[256];
	uLongf zlen = sizeof(zbuf);
	struct gzip_inflater z;
	z_stream zs;

	(void)state;
	assert_int_equal(gzip_inflater_init(&z, 1000, 10), 0);
	assert_int_equal(compress2(zbuf, &zlen, (const Bytef *)doc, sizeof(doc), 6), Z_OK);
	expect_bad(&z, zbuf, zlen, "incorrect header check");

	memset(&zs, 0, sizeof(zs));
	assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
	zs.next_in = (Bytef *)doc;
	zs.avail_in = sizeof(doc);
	zs.next_out = zbuf;
	zs.avail_out = sizeof(zbuf);
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	expect_bad(&z, zbuf, zs.total_out, "corrupt gzip data");
	deflateEnd(&zs);

	expect_bad(&z, doc, sizeof(doc), "corrupt gzip data");
	/* a gzip header with another compression method than deflate */
	memcpy(zbuf, gnu_gzip, sizeof(gnu_gzip));
	zbuf[2] = 7;
	expect_bad(&z, zbuf, sizeof(gnu_gzip), "corrupt gzip data");
	gzip_inflater_release(&z);
}

static void test_bad_arguments(void **state)
{
	struct gzip_compressor c = {NULL};
	struct gzip_inflater z = {NULL, 0, 0};

	(void)state;
	assert_int_equal(gzip_compressor_init(&c, 10), -EINVAL);
	assert_int_equal(gzip_compressor_init(&c, -2), -EINVAL);
	assert_null(c.dc);
	assert_int_equal(gzip_inflater_init(&z, 0, 10), -EINVAL);
	assert_null(z.zs);
	/* release of an object whose init failed is harmless */
	gzip_compressor_release(&c);
	gzip_inflater_release(&z);
	for (int level = -1; level <= 9; level++) {
		assert_int_equal(gzip_compressor_init(&c, level), 0);
		gzip_compressor_release(&c);
	}
}

/* A member larger than the output buffer allows is refused and the buffer kept. */
static void test_compress_too_big(void **state)
{
	unsigned char doc[4096];
	struct gzip_compressor c;
	struct buf out, full;

	(void)state;
	fill_random(doc, sizeof(doc), 11);
	buf_init(&full, BIG);
	compress_into(doc, sizeof(doc), &full);
	assert_int_equal(gzip_compressor_init(&c, 6), 0);

	buf_init(&out, full.len);
	assert_int_equal(buf_puts(&out, "x"), 0);
	assert_int_equal(gzip_compress(&c, doc, sizeof(doc), &out), -EMSGSIZE);
	assert_int_equal(out.len, 1);
	assert_string_equal(out.data, "x");
	buf_release(&out);

	/* exactly enough room, after what the buffer already holds */
	buf_init(&out, full.len + 1);
	assert_int_equal(buf_puts(&out, "x"), 0);
	assert_int_equal(gzip_compress(&c, doc, sizeof(doc), &out), 0);
	assert_int_equal(out.len, full.len + 1);
	buf_release(&out);

	gzip_compressor_release(&c);
	buf_release(&full);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_round_trip),    cmocka_unit_test(test_gnu_gzip),
	        cmocka_unit_test(test_reuse),         cmocka_unit_test(test_output_cap_exact),
	        cmocka_unit_test(test_bomb),          cmocka_unit_test(test_ratio_floor),
	        cmocka_unit_test(test_truncated),     cmocka_unit_test(test_bad_trailer),
	        cmocka_unit_test(test_trailing),      cmocka_unit_test(test_not_gzip),
	        cmocka_unit_test(test_bad_arguments), cmocka_unit_test(test_compress_too_big),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
