/* Unit tests for common/textwidth: display widths of Chinese, ASCII, combining marks and
 * broken UTF-8, and the padding that lines tables up. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/textwidth.h"
#include "common/banned.h"

static void test_widths(void **state)
{
	(void)state;
	assert_int_equal(text_width(""), 0);
	assert_int_equal(text_width("abc 123"), 7);
	assert_int_equal(text_width("伊宁市"), 6);              /* CJK ideographs */
	assert_int_equal(text_width("伊宁市第一中学 (A)"), 18); /* mixed */
	assert_int_equal(text_width("，。！"), 6);              /* full-width punctuation */
	assert_int_equal(text_width("ＡＢ"), 4);                /* full-width Latin */
	assert_int_equal(text_width("カナ한글"), 8);            /* kana, Hangul */
	assert_int_equal(text_width("e\xcc\x81"), 1);           /* e + combining acute */
	assert_int_equal(text_width("\xe2\x80\x8b"), 0);        /* zero-width space */
	assert_int_equal(text_width("\xf0\xa0\x80\x80"), 2);    /* U+20000, plane 2 */
	assert_int_equal(text_width("é"), 1);                   /* two bytes, one column */
	assert_int_equal(text_width("\t"), 0);                  /* control characters */
	assert_int_equal(text_width("<5"), 2);
}

static void test_invalid_utf8(void **state)
{
	(void)state;
	/* each byte that does not start a valid sequence takes one column */
	assert_int_equal(text_width("\xff"), 1);
	assert_int_equal(text_width("\x80\x80"), 2);
	assert_int_equal(text_width("\xe4\xbc"), 2); /* truncated 3-byte sequence */
	assert_int_equal(text_width("a\xe4"), 2);    /* truncated at the end */
}

/* Runs fn(out, s, width) into a memory stream and returns what it wrote (static). */
static const char *padded(void (*fn)(FILE *, const char *, int), const char *s, int width)
{
	static char text[256];
	FILE *f = fmemopen(text, sizeof(text), "w");

	assert_non_null(f);
	fn(f, s, width);
	fclose(f);
	return text;
}

static void test_padding(void **state)
{
	(void)state;
	assert_string_equal(padded(text_pad, "伊宁市", 8), "伊宁市  ");
	assert_string_equal(padded(text_pad, "ab", 4), "ab  ");
	assert_string_equal(padded(text_pad, "伊宁市第一中学", 4), "伊宁市第一中学");
	assert_string_equal(padded(text_pad_left, "42", 5), "   42");
	assert_string_equal(padded(text_pad_left, "奎屯", 5), " 奎屯");
	assert_string_equal(padded(text_pad_left, "12345", 3), "12345");
	/* two padded cells line up whatever their scripts */
	assert_int_equal(text_width(padded(text_pad, "伊宁市第二中学", 20)), 20);
	assert_int_equal(text_width(padded(text_pad, "No. 2 Middle School", 20)), 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_widths),
	        cmocka_unit_test(test_invalid_utf8),
	        cmocka_unit_test(test_padding),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
