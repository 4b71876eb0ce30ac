/* Unit tests for peer_url: https anywhere, plain http to loopback only. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/peer_url.h"
#include "common/banned.h"

static void test_accepted(void **state)
{
	static const char *const good[] = {
	        "https://hub.example.cn", "https://10.1.2.3:8401/", "http://127.0.0.1:8401",
	        "http://127.9.8.7",       "http://localhost:8401/", "http://[::1]:8401",
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(peer_url_check(good[i], "hub", err, sizeof(err)), 0);
}

static void test_refused(void **state)
{
	char err[256];

	(void)state;
	assert_int_equal(peer_url_check("http://hub.example.cn", "region", err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "the region URL 'http://hub.example.cn' must be https://"));
	assert_int_equal(peer_url_check("http://127.0.0.1.example.cn", "hub", err, sizeof(err)),
	                 -EINVAL);
	assert_int_equal(peer_url_check("https://hub.example.cn/?x=1", "hub", err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "may not have a query"));
	assert_int_equal(peer_url_check("ftp://127.0.0.1", "hub", err, sizeof(err)), -EINVAL);
	assert_int_equal(peer_url_check("not a url", "hub", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "is not a URL"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_accepted),
	        cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
