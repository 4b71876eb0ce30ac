/* Unit tests for errmsg: filling error buffers and quoting untrusted text. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/errmsg.h"
#include "common/banned.h"

static void test_set(void **state)
{
	char err[16];

	(void)state;
	assert_int_equal(errmsg_set(err, sizeof(err), -EINVAL, "bad %d", 7), -EINVAL);
	assert_string_equal(err, "bad 7");
	/* cut to the buffer, always terminated */
	assert_int_equal(errmsg_set(err, sizeof(err), -E2BIG, "%s", "0123456789abcdefghij"),
	                 -E2BIG);
	assert_string_equal(err, "0123456789abcde");
	/* no buffer: only the code */
	assert_int_equal(errmsg_set(NULL, 0, -EIO, "ignored"), -EIO);
	assert_int_equal(errmsg_set(err, 0, 5, "ignored"), 5);
}

static void test_quote(void **state)
{
	char out[ERRMSG_QUOTE_SIZE];

	(void)state;
	assert_string_equal(errmsg_quote("6542010001", out), "6542010001");
	/* a newline or an escape cannot forge a log line */
	assert_string_equal(errmsg_quote("a\nb\x1b[2Jc\x7f", out), "a?b?[2Jc?");
	/* long text is cut to 32 bytes and marked */
	assert_string_equal(errmsg_quote("0123456789012345678901234567890123456789", out),
	                    "01234567890123456789012345678901...");
	/* never inside a UTF-8 character: 11 three-byte characters are 33 bytes */
	assert_string_equal(errmsg_quote("学学学学学学学学学学学", out), "学学学学学学学学学学...");
	assert_string_equal(errmsg_quote("", out), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_set),
	        cmocka_unit_test(test_quote),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
