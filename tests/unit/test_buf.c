/* Unit tests for common/buf. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/banned.h"

/* The invariants every buffer keeps between calls. */
static void assert_sane(const struct buf *b)
{
	assert_true(b->len <= b->max);
	if (!b->data) {
		assert_int_equal(b->len, 0);
		assert_int_equal(b->alloc, 0);
		return;
	}
	assert_true(b->len < b->alloc);
	assert_true(b->alloc - 1 <= b->max);
	assert_int_equal(b->data[b->len], '\0');
}

static void test_init(void **state)
{
	struct buf b;

	(void)state;
	memset(&b, 0x5a, sizeof(b));
	buf_init(&b, 100);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.alloc, 0);
	assert_int_equal(b.max, 100);
	buf_release(&b);
	assert_null(b.data);
	assert_int_equal(b.max, 100);
}

static void test_append_up_to_max(void **state)
{
	char want[200];
	struct buf b;

	(void)state;
	for (size_t i = 0; i < sizeof(want); i++)
		want[i] = (char)('a' + i % 26);
	buf_init(&b, 150);
	assert_int_equal(buf_append(&b, want, 100), 0);
	assert_sane(&b);
	assert_int_equal(b.len, 100);
	/* exactly to max */
	assert_int_equal(buf_append(&b, want + 100, 50), 0);
	assert_sane(&b);
	assert_int_equal(b.len, 150);
	assert_memory_equal(b.data, want, 150);
	assert_int_equal(strlen(b.data), 150);
	/* one byte more is refused and changes nothing */
	assert_int_equal(buf_append(&b, "x", 1), -EMSGSIZE);
	assert_int_equal(buf_putc(&b, 'x'), -EMSGSIZE);
	assert_int_equal(buf_puts(&b, "x"), -EMSGSIZE);
	assert_int_equal(buf_printf(&b, "%d", 1), -EMSGSIZE);
	assert_int_equal(buf_reserve(&b, 1), -EMSGSIZE);
	assert_sane(&b);
	assert_int_equal(b.len, 150);
	assert_memory_equal(b.data, want, 150);
	/* appending nothing at max still works */
	assert_int_equal(buf_append(&b, "", 0), 0);
	assert_int_equal(buf_reserve(&b, 0), 0);
	assert_int_equal(b.len, 150);
	buf_release(&b);
}

static void test_append_over_max_at_once(void **state)
{
	char big[64];
	struct buf b;

	(void)state;
	memset(big, 'z', sizeof(big));
	buf_init(&b, 10);
	assert_int_equal(buf_append(&b, "abc", 3), 0);
	/* 3 + 8 = 11 > 10: refused, unchanged */
	assert_int_equal(buf_append(&b, big, 8), -EMSGSIZE);
	assert_int_equal(b.len, 3);
	assert_string_equal(b.data, "abc");
	/* sizes that would overflow len + n */
	assert_int_equal(buf_append(&b, big, SIZE_MAX), -EMSGSIZE);
	assert_int_equal(buf_reserve(&b, SIZE_MAX), -EMSGSIZE);
	assert_int_equal(buf_reserve(&b, SIZE_MAX - 2), -EMSGSIZE);
	assert_int_equal(b.len, 3);
	assert_string_equal(b.data, "abc");
	assert_int_equal(buf_append(&b, big, 7), 0);
	assert_string_equal(b.data, "abczzzzzzz");
	assert_sane(&b);
	buf_release(&b);
}

static void test_max_zero(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 0);
	assert_int_equal(buf_putc(&b, 'a'), -EMSGSIZE);
	assert_null(b.data);
	assert_int_equal(buf_append(&b, "", 0), 0);
	assert_sane(&b);
	assert_non_null(b.data);
	assert_string_equal(b.data, "");
	assert_int_equal(buf_printf(&b, "%s", ""), 0);
	assert_int_equal(buf_printf(&b, "%s", "a"), -EMSGSIZE);
	assert_int_equal(b.len, 0);
	buf_release(&b);
}

static void test_binary_and_terminated(void **state)
{
	static const char bin[] = {'a', '\0', 'b', '\0', 'c'};
	struct buf b;

	(void)state;
	buf_init(&b, 1000);
	assert_int_equal(buf_append(&b, bin, sizeof(bin)), 0);
	assert_int_equal(b.len, 5);
	assert_memory_equal(b.data, bin, 5);
	assert_int_equal(b.data[5], '\0');
	assert_int_equal(buf_puts(&b, "xyz"), 0);
	assert_int_equal(buf_putc(&b, '!'), 0);
	assert_int_equal(b.len, 9);
	assert_memory_equal(b.data + 5, "xyz!", 5);
	assert_sane(&b);
	buf_release(&b);
}

static void test_printf_growth(void **state)
{
	char want[8192];
	struct buf b;
	size_t n = 0;

	(void)state;
	buf_init(&b, sizeof(want) - 1);
	for (int i = 0; i < 300; i++) {
		size_t before = b.len;

		assert_int_equal(buf_printf(&b, "[%d:%s]", i, i % 7 ? "seven" : ""), 0);
		n += (size_t)snprintf(want + n, sizeof(want) - n, "[%d:%s]", i,
		                      i % 7 ? "seven" : "");
		assert_int_equal(b.len, n);
		assert_true(b.len > before);
		assert_memory_equal(b.data, want, n + 1);
		assert_sane(&b);
	}
	assert_true(b.alloc > 64);
	/* one printf larger than everything so far, in one go */
	assert_int_equal(buf_printf(&b, "%0500d", 7), 0);
	n += (size_t)snprintf(want + n, sizeof(want) - n, "%0500d", 7);
	assert_int_equal(b.len, n);
	assert_string_equal(b.data, want);
	assert_sane(&b);
	buf_release(&b);
}

static void test_printf_over_max(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 20);
	assert_int_equal(buf_printf(&b, "%s", "0123456789"), 0);
	/* 10 + 11 = 21 > 20 */
	assert_int_equal(buf_printf(&b, "%s-%d", "abcdefgh", 12), -EMSGSIZE);
	assert_int_equal(b.len, 10);
	assert_string_equal(b.data, "0123456789");
	/* exactly 20 */
	assert_int_equal(buf_printf(&b, "%s-%d", "abcdefg", 12), 0);
	assert_int_equal(b.len, 20);
	assert_string_equal(b.data, "0123456789abcdefg-12");
	assert_sane(&b);
	buf_release(&b);
}

static int vprintf_helper(struct buf *b, const char *fmt, ...) PRINTF_LIKE(2, 3);
static int vprintf_helper(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

static void test_vprintf(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 100);
	assert_int_equal(vprintf_helper(&b, "%s=%u;", "a", 1u), 0);
	assert_int_equal(vprintf_helper(&b, "%s=%u;", "bb", 22u), 0);
	assert_string_equal(b.data, "a=1;bb=22;");
	buf_release(&b);
}

static void test_reserve(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 1000);
	assert_int_equal(buf_puts(&b, "hello"), 0);
	assert_int_equal(buf_reserve(&b, 500), 0);
	assert_int_equal(b.len, 5);
	assert_string_equal(b.data, "hello");
	assert_true(b.alloc >= 5 + 500 + 1);
	assert_int_equal(buf_reserve(&b, 995), 0);
	assert_true(b.alloc >= 1001);
	assert_int_equal(buf_reserve(&b, 996), -EMSGSIZE);
	assert_int_equal(b.len, 5);
	assert_sane(&b);
	/* the reserved room is usable without a reallocation */
	{
		char *p = b.data;
		char fill[995];

		memset(fill, 'q', sizeof(fill));
		assert_int_equal(buf_append(&b, fill, sizeof(fill)), 0);
		assert_ptr_equal(b.data, p);
		assert_int_equal(b.len, 1000);
	}
	buf_release(&b);
}

static void test_reset(void **state)
{
	struct buf b;
	char *p;
	size_t alloc;

	(void)state;
	buf_init(&b, 100);
	buf_reset(&b); /* nothing allocated yet */
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(buf_puts(&b, "some text"), 0);
	p = b.data;
	alloc = b.alloc;
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_ptr_equal(b.data, p);
	assert_int_equal(b.alloc, alloc);
	assert_string_equal(b.data, "");
	assert_int_equal(b.max, 100);
	assert_int_equal(buf_puts(&b, "xy"), 0);
	assert_string_equal(b.data, "xy");
	assert_ptr_equal(b.data, p);
	/* the maximum still applies after a reset */
	buf_reset(&b);
	{
		char fill[101];

		memset(fill, 'f', sizeof(fill));
		assert_int_equal(buf_append(&b, fill, 101), -EMSGSIZE);
		assert_int_equal(buf_append(&b, fill, 100), 0);
	}
	buf_release(&b);
}

static void test_detach(void **state)
{
	struct buf b;
	size_t len = 99;
	char *p;

	(void)state;
	buf_init(&b, 64);
	/* never held anything */
	assert_null(buf_detach(&b, &len));
	assert_int_equal(len, 0);
	assert_null(buf_detach(&b, NULL));

	assert_int_equal(buf_printf(&b, "%s %d", "abc", 42), 0);
	p = buf_detach(&b, &len);
	assert_non_null(p);
	assert_int_equal(len, 6);
	assert_string_equal(p, "abc 42");
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.alloc, 0);
	assert_int_equal(b.max, 64);
	/* the buffer is usable again and independent of the detached text */
	assert_int_equal(buf_puts(&b, "new"), 0);
	assert_string_equal(b.data, "new");
	assert_string_equal(p, "abc 42");
	free(p);
	p = buf_detach(&b, NULL);
	assert_string_equal(p, "new");
	free(p);
	buf_release(&b);
}

static void test_release_reuse(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 8);
	assert_int_equal(buf_puts(&b, "12345678"), 0);
	buf_release(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.alloc, 0);
	assert_int_equal(b.max, 8);
	assert_int_equal(buf_puts(&b, "123456789"), -EMSGSIZE);
	assert_int_equal(buf_puts(&b, "12345678"), 0);
	assert_string_equal(b.data, "12345678");
	buf_release(&b);
	buf_release(&b); /* twice is harmless */
}

/* Growth from a small first allocation to a large max, byte by byte. */
static void test_grow_byte_by_byte(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 5000);
	for (size_t i = 0; i < 5000; i++) {
		assert_int_equal(buf_putc(&b, (char)('0' + i % 10)), 0);
		assert_int_equal(b.len, i + 1);
		assert_sane(&b);
	}
	assert_int_equal(buf_putc(&b, 'x'), -EMSGSIZE);
	for (size_t i = 0; i < 5000; i++)
		assert_int_equal(b.data[i], '0' + i % 10);
	buf_release(&b);
}

/* A maximum of SIZE_MAX ("no limit of our own") is capped, and growth is still correct. */
static void test_max_unlimited(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, SIZE_MAX);
	assert_true(b.max <= SIZE_MAX / 4); /* buf.h: a maximum is at most SIZE_MAX / 4 */
	assert_true(b.max >= SIZE_MAX / 8);
	assert_int_equal(buf_puts(&b, "abc"), 0);
	assert_string_equal(b.data, "abc");
	assert_true(b.alloc >= 4);
	assert_sane(&b);
	for (int i = 0; i < 100; i++)
		assert_int_equal(buf_puts(&b, "0123456789"), 0);
	assert_int_equal(b.len, 1003);
	assert_true(b.alloc >= 1004);
	/* room for SIZE_MAX - len more bytes plus the NUL cannot exist */
	assert_true(buf_reserve(&b, SIZE_MAX - b.len) < 0);
	assert_int_equal(b.len, 1003);
	buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_init),
	        cmocka_unit_test(test_append_up_to_max),
	        cmocka_unit_test(test_append_over_max_at_once),
	        cmocka_unit_test(test_max_zero),
	        cmocka_unit_test(test_binary_and_terminated),
	        cmocka_unit_test(test_printf_growth),
	        cmocka_unit_test(test_printf_over_max),
	        cmocka_unit_test(test_vprintf),
	        cmocka_unit_test(test_reserve),
	        cmocka_unit_test(test_reset),
	        cmocka_unit_test(test_detach),
	        cmocka_unit_test(test_release_reuse),
	        cmocka_unit_test(test_grow_byte_by_byte),
	        cmocka_unit_test(test_max_unlimited),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
