/* Unit tests for common/clock. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/datetime.h"
#include "common/banned.h"

#define MAR1_0800 1709251200000LL /* 2024-03-01T08:00:00+08:00 */

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int64_t realtime_ms(void)
{
	struct timespec ts;

	assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_real(void **state)
{
	struct clock c;
	char err[256] = "";
	int64_t before, now, after;

	(void)state;
	assert_int_equal(clock_init(&c, NULL, err, sizeof(err)), 0);
	assert_true(c.is_real);
	before = realtime_ms();
	now = clock_now_ms(&c);
	after = realtime_ms();
	assert_true(before <= now && now <= after);

	assert_int_equal(clock_init(&c, "", err, sizeof(err)), 0);
	assert_true(c.is_real);
	assert_int_equal(clock_real_wait_ms(&c, 1500), 1500);
	assert_int_equal(clock_real_wait_ms(&c, 0), 0);
	assert_int_equal(clock_real_wait_ms(&c, -5), 0);
}

static void test_fixed(void **state)
{
	struct clock c;
	char err[256] = "";

	(void)state;
	assert_int_equal(clock_init(&c, "2024-03-01T08:00:00+08:00", err, sizeof(err)), 0);
	assert_false(c.is_real);
	assert_int_equal(clock_now_ms(&c), MAR1_0800);
	sleep_ms(20);
	assert_int_equal(clock_now_ms(&c), MAR1_0800);
	assert_int_equal(clock_real_wait_ms(&c, 250), 250);

	assert_int_equal(clock_init(&c, "2024-02-29T16:00:00.5Z", err, sizeof(err)), 0);
	assert_int_equal(clock_now_ms(&c), 1709222400500LL);
}

static void test_fast(void **state)
{
	struct clock c;
	char err[256] = "";
	int64_t t0, t1;

	(void)state;
	assert_int_equal(clock_init(&c, "2024-03-01T08:00:00+08:00 x1000", err, sizeof(err)), 0);
	assert_false(c.is_real);
	t0 = clock_now_ms(&c);
	assert_true(t0 >= MAR1_0800);
	assert_true(t0 < MAR1_0800 + 10000); /* init was under 10 ms of real time ago */
	sleep_ms(20);
	t1 = clock_now_ms(&c);
	/* 20 ms real at x1000 is 20 s of clock time; allow a slow machine up to 5 s real */
	assert_true(t1 - MAR1_0800 >= 20000);
	assert_true(t1 - MAR1_0800 <= 5000000);
	assert_true(clock_now_ms(&c) >= t1); /* monotonic */

	assert_int_equal(clock_real_wait_ms(&c, 20000), 20);
	assert_int_equal(clock_real_wait_ms(&c, 1), 1); /* at least 1 ms */
	assert_int_equal(clock_real_wait_ms(&c, 1500), 2);

	assert_int_equal(clock_init(&c, "2024-03-01T08:00:00+08:00 x86400", err, sizeof(err)), 0);
	assert_int_equal(clock_real_wait_ms(&c, DATETIME_MS_PER_DAY), 1000);

	/* x0.5 is slower than real time: waits are longer */
	assert_int_equal(clock_init(&c, "2024-03-01T08:00:00+08:00 x0.5", err, sizeof(err)), 0);
	assert_int_equal(clock_real_wait_ms(&c, 1000), 2000);
	t0 = clock_now_ms(&c);
	assert_true(t0 >= MAR1_0800 && t0 < MAR1_0800 + 1000);

	/* the same instant at real speed, and tab separated */
	assert_int_equal(clock_init(&c, "2024-03-01T08:00:00+08:00\tx1", err, sizeof(err)), 0);
	assert_int_equal(clock_real_wait_ms(&c, 1000), 1000);
}

static void test_fast_clamped(void **state)
{
	struct clock c;
	char err[256] = "";

	(void)state;
	assert_int_equal(clock_init(&c, "9999-12-31T23:59:59Z x1000000000", err, sizeof(err)), 0);
	sleep_ms(2);
	assert_int_equal(clock_now_ms(&c), 253402300799999LL);
	assert_int_equal(clock_real_wait_ms(&c, INT64_MAX), INT64_MAX / 1000000000 + 1);
	assert_int_equal(clock_init(&c, "2024-03-01T08:00:00+08:00 x0.000000001", err, sizeof(err)),
	                 0);
	assert_int_equal(clock_real_wait_ms(&c, INT64_MAX), INT64_MAX / 2);
}

/* Two processes started at different real moments share one timeline when anchored. */
static void test_anchored(void **state)
{
	struct clock a, b;
	struct timespec ts;
	char spec[128], err[256];
	int64_t start, now_a, now_b;

	(void)state;
	assert_int_equal(datetime_parse_rfc3339("2024-03-01T08:00:00+08:00", 25, &start, NULL), 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	/* the clock read the instant 10 real seconds ago, at x1000: 10,000 s later now */
	snprintf(spec, sizeof(spec), "2024-03-01T08:00:00+08:00 x1000 @%lld.%03ld",
	         (long long)ts.tv_sec - 10, ts.tv_nsec / 1000000);
	assert_int_equal(clock_init(&a, spec, err, sizeof(err)), 0);
	nanosleep(&(struct timespec){.tv_nsec = 200 * 1000000}, NULL);
	assert_int_equal(clock_init(&b, spec, err, sizeof(err)), 0);
	now_a = clock_now_ms(&a);
	now_b = clock_now_ms(&b);
	assert_true(now_a - start >= 10000 * 1000LL);
	assert_true(now_a - start < 10000 * 1000LL + 60 * 1000 * 1000LL);
	/* b started 200 ms of real time later (200,000 ms of clock time) but reads the same
	 * timeline: the two reads are far less than 100 ms of real time apart */
	assert_true(llabs(now_a - now_b) < 100 * 1000);
}

static void test_malformed(void **state)
{
	static const char *const bad[] = {
	        "now",
	        "2024-03-01",
	        "2024-03-01T08:00:00",
	        "2024-03-01T08:00:00+08:00 86400",
	        "2024-03-01T08:00:00+08:00 x",
	        "2024-03-01T08:00:00+08:00 x0",
	        "2024-03-01T08:00:00+08:00 x0.0",
	        "2024-03-01T08:00:00+08:00 x-2",
	        "2024-03-01T08:00:00+08:00 x+2",
	        "2024-03-01T08:00:00+08:00 xinf",
	        "2024-03-01T08:00:00+08:00 xnan",
	        "2024-03-01T08:00:00+08:00 x1e3",
	        "2024-03-01T08:00:00+08:00 x0x10",
	        "2024-03-01T08:00:00+08:00 x.5",
	        "2024-03-01T08:00:00+08:00 x5.",
	        "2024-03-01T08:00:00+08:00 x1,5",
	        "2024-03-01T08:00:00+08:00 x2 x3",
	        "2024-03-01T08:00:00+08:00 x2 ",
	        "2024-03-01T08:00:00+08:00 ",
	        "2024-03-01T08:00:00+08:00 x1000000001",
	        "2024-03-01T08:00:00+08:00 x9999999999999999",
	        " 2024-03-01T08:00:00+08:00",
	        "2024-03-01T08:00:00+08:00x2",
	        "2024-03-01T08:00:00+08:00 x2 @",
	        "2024-03-01T08:00:00+08:00 x2 @abc",
	        "2024-03-01T08:00:00+08:00 x2 @12 ",
	        "2024-03-01T08:00:00+08:00 x2 @1.5.2",
	        "2024-03-01T08:00:00+08:00 x2 1700000000",
	        "2024-03-01T08:00:00+08:00 @1700000000",
	        "1998-12-31T23:58:60Z",
	        "2024-02-30T08:00:00+08:00",
	        "2024-03-01T08:00:00+08:00 "
	        "x00000000000000000000000000000000000000000000000000000000"
	        "00000000000000000000000000000000000000000000000000000000000000000000000000000001",
	};
	struct clock c = {.start_ms = 42};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(clock_init(&c, bad[i], err, sizeof(err)), -EINVAL);
		assert_int_equal(c.start_ms, 42); /* untouched */
		assert_true(strncmp(err, "RETURNS_CLOCK: ", 15) == 0);
	}
	assert_int_equal(clock_init(&c, "2024-03-01T08:00:00+08:00 x0", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "positive"));
	assert_int_equal(clock_init(&c, "yesterday", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "'yesterday'"));
	assert_non_null(strstr(err, "RFC 3339"));
	/* a tiny error buffer is cut, never overrun */
	assert_int_equal(clock_init(&c, "yesterday", err, 8), -EINVAL);
	assert_string_equal(err, "RETURNS");
}

static void test_from_env(void **state)
{
	struct clock c;
	char err[256] = "";

	(void)state;
	assert_int_equal(setenv("RETURNS_CLOCK", "2024-05-01T00:00:00+08:00", 1), 0);
	assert_int_equal(clock_init_from_env(&c, err, sizeof(err)), 0);
	assert_int_equal(clock_now_ms(&c), 1714492800000LL);
	assert_int_equal(setenv("RETURNS_CLOCK", "soon", 1), 0);
	assert_int_equal(clock_init_from_env(&c, err, sizeof(err)), -EINVAL);
	assert_int_equal(unsetenv("RETURNS_CLOCK"), 0);
	assert_int_equal(clock_init_from_env(&c, err, sizeof(err)), 0);
	assert_true(c.is_real);
}

/* Monotonic milliseconds: they follow CLOCK_MONOTONIC (not RETURNS_CLOCK, not the wall
 * clock) and never go back. */
static void test_monotonic(void **state)
{
	struct timespec ts;
	int64_t before, now, after, prev;

	(void)state;
	assert_int_equal(setenv("RETURNS_CLOCK", "2024-05-01T00:00:00+08:00 x86400", 1), 0);
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
	before = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	now = clock_monotonic_ms();
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
	after = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	assert_true(before <= now && now <= after);
	assert_int_equal(unsetenv("RETURNS_CLOCK"), 0);

	prev = clock_monotonic_ms();
	for (int i = 0; i < 1000; i++) {
		now = clock_monotonic_ms();
		assert_true(now >= prev);
		prev = now;
	}
	before = clock_monotonic_ms();
	sleep_ms(30);
	assert_true(clock_monotonic_ms() - before >= 30);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_real),     cmocka_unit_test(test_fixed),
	        cmocka_unit_test(test_fast),     cmocka_unit_test(test_fast_clamped),
	        cmocka_unit_test(test_anchored), cmocka_unit_test(test_malformed),
	        cmocka_unit_test(test_from_env), cmocka_unit_test(test_monotonic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
