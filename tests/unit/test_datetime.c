/* Unit tests for common/datetime. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/datetime.h"
#include "common/banned.h"

static int parse_date(const char *s, struct date *ret)
{
	return datetime_parse_date(s, strlen(s), ret);
}

static int parse_dt(const char *s, int64_t *ret_ms, int *ret_off)
{
	return datetime_parse_rfc3339(s, strlen(s), ret_ms, ret_off);
}

static void test_days_known(void **state)
{
	struct date d = {1970, 1, 1}, back;

	(void)state;
	assert_int_equal(date_to_days(&d), 0);
	d = (struct date){2000, 3, 1};
	assert_int_equal(date_to_days(&d), 11017);
	d = (struct date){2024, 3, 1};
	assert_int_equal(date_to_days(&d), 19783);
	d = (struct date){1969, 12, 31};
	assert_int_equal(date_to_days(&d), -1);
	d = (struct date){1, 1, 1};
	assert_int_equal(date_to_days(&d), -719162);
	d = (struct date){9999, 12, 31};
	assert_int_equal(date_to_days(&d), 2932896);
	date_from_days(-719162, &back);
	assert_int_equal(back.year, 1);
	assert_int_equal(back.month, 1);
	assert_int_equal(back.day, 1);
}

/* Every day from 0001-01-01 to 9999-12-31 maps to the next day number and back. */
static void test_days_round_trip_all(void **state)
{
	struct date d = {1, 1, 1}, back;
	int64_t expect = -719162;

	(void)state;
	while (d.year <= 9999) {
		int64_t days = date_to_days(&d);

		assert_int_equal(days, expect);
		date_from_days(days, &back);
		assert_int_equal(date_compare(&d, &back), 0);
		expect++;
		if (++d.day > date_days_in_month(d.year, d.month)) {
			d.day = 1;
			if (++d.month > 12) {
				d.month = 1;
				d.year++;
			}
		}
	}
	assert_int_equal(expect, 2932897);
}

static void test_days_in_month(void **state)
{
	(void)state;
	assert_int_equal(date_days_in_month(2024, 2), 29);
	assert_int_equal(date_days_in_month(2023, 2), 28);
	assert_int_equal(date_days_in_month(1900, 2), 28);
	assert_int_equal(date_days_in_month(2000, 2), 29);
	assert_int_equal(date_days_in_month(2024, 4), 30);
	assert_int_equal(date_days_in_month(2024, 12), 31);
	assert_int_equal(date_days_in_month(2024, 0), 0);
	assert_int_equal(date_days_in_month(2024, 13), 0);
}

static void test_compare_format(void **state)
{
	struct date a = {2024, 5, 1}, b = {2024, 4, 30}, c = {2023, 12, 31};
	char out[11];

	(void)state;
	assert_true(date_compare(&a, &b) > 0);
	assert_true(date_compare(&b, &a) < 0);
	assert_true(date_compare(&c, &b) < 0);
	assert_int_equal(date_compare(&a, &a), 0);
	date_format(&a, out);
	assert_string_equal(out, "2024-05-01");
	c = (struct date){7, 1, 9};
	date_format(&c, out);
	assert_string_equal(out, "0007-01-09");
}

static void test_parse_date_valid(void **state)
{
	static const char *const valid[] = {
	        "1963-06-19", "2020-01-31", "2020-02-29", "2000-02-29",
	        "2024-12-31", "0001-01-01", "9999-12-31", "2021-04-30",
	};
	struct date d;

	(void)state;
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		char out[11];

		assert_int_equal(parse_date(valid[i], &d), 0);
		date_format(&d, out);
		assert_string_equal(out, valid[i]);
	}
	assert_int_equal(parse_date("2024-03-01", &d), 0);
	assert_int_equal(d.year, 2024);
	assert_int_equal(d.month, 3);
	assert_int_equal(d.day, 1);
}

static void test_parse_date_invalid(void **state)
{
	/* Mostly from the JSON Schema test suite's "date" format tests. */
	static const char *const invalid[] = {
	        "2020-01-32",
	        "2021-02-29",
	        "2020-02-30",
	        "2020-03-32",
	        "2020-04-31",
	        "2020-05-32",
	        "2020-06-31",
	        "2020-07-32",
	        "2020-08-32",
	        "2020-09-31",
	        "2020-10-32",
	        "2020-11-31",
	        "2020-12-32",
	        "2020-13-01",
	        "2020-00-10",
	        "2020-01-00",
	        "1900-02-29",
	        "06/19/1963",
	        "2013-350",
	        "1998-1-20",
	        "1998-01-1",
	        "1998-13-01",
	        "1963-06-1\xe0\xa7\xaa",
	        "20230328",
	        "2023-W01",
	        "2023-W13-2",
	        "2022W527",
	        "",
	        "2024-03-01T",
	        "2024-03-01 ",
	        " 2024-03-01",
	        "0000-01-01",
	        "+2024-03-01",
	        "2024-+3-01",
	        "2024-03--1",
	        "2024/03/01",
	};
	struct date d = {0, 0, 0};

	(void)state;
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		assert_int_equal(parse_date(invalid[i], &d), -EINVAL);
		assert_int_equal(d.year, 0); /* untouched on failure */
	}
	/* len bounds the read: the NUL is not needed and not looked for */
	assert_int_equal(datetime_parse_date("2024-03-01xyz", 10, &d), 0);
	assert_int_equal(datetime_parse_date("2024-03-01", 9, &d), -EINVAL);
	assert_int_equal(datetime_parse_date(NULL, 0, &d), -EINVAL);
}

static void test_parse_rfc3339_valid(void **state)
{
	int64_t ms;
	int off;

	(void)state;
	assert_int_equal(parse_dt("1970-01-01T00:00:00Z", &ms, &off), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(off, 0);
	assert_int_equal(parse_dt("2024-03-01T08:00:00+08:00", &ms, &off), 0);
	assert_int_equal(ms, 1709251200000LL);
	assert_int_equal(off, 480);
	assert_int_equal(parse_dt("2024-03-01t00:00:00z", &ms, NULL), 0);
	assert_int_equal(ms, 1709251200000LL);
	assert_int_equal(parse_dt("2024-02-29T19:00:00-05:00", &ms, &off), 0);
	assert_int_equal(ms, 1709251200000LL);
	assert_int_equal(off, -300);
	assert_int_equal(parse_dt("1963-06-19T08:30:06.283185Z", &ms, NULL), 0);
	assert_int_equal(ms, -206292594000LL + 283);
	assert_int_equal(parse_dt("1963-06-19T08:30:06.2Z", &ms, NULL), 0);
	assert_int_equal(ms, -206292594000LL + 200);
	assert_int_equal(parse_dt("1969-12-31T23:59:59.999Z", &ms, NULL), 0);
	assert_int_equal(ms, -1);
	assert_int_equal(parse_dt("1990-12-31T15:59:59-23:59", &ms, &off), 0);
	assert_int_equal(off, -(23 * 60 + 59));
	assert_int_equal(parse_dt("1990-12-31T15:59:59-00:00", &ms, &off), 0);
	assert_int_equal(off, 0);
	assert_int_equal(parse_dt("0001-01-01T00:00:00+23:59", &ms, NULL), 0);
	assert_int_equal(parse_dt("9999-12-31T23:59:59.999-23:59", &ms, NULL), 0);
}

static void test_parse_rfc3339_leap_second(void **state)
{
	int64_t ms, ms59;

	(void)state;
	assert_int_equal(parse_dt("1998-12-31T23:59:59Z", &ms59, NULL), 0);
	assert_int_equal(parse_dt("1998-12-31T23:59:60Z", &ms, NULL), 0);
	assert_int_equal(ms, ms59 + 999);
	assert_int_equal(parse_dt("1998-12-31T15:59:60.123-08:00", &ms, NULL), 0);
	assert_int_equal(ms, ms59 + 999);
	assert_int_equal(parse_dt("1999-01-01T07:59:60+08:00", &ms, NULL), 0);
	assert_int_equal(ms, ms59 + 999);
	assert_int_equal(parse_dt("1998-12-31T23:58:60Z", &ms, NULL), -EINVAL);
	assert_int_equal(parse_dt("1998-12-31T22:59:60Z", &ms, NULL), -EINVAL);
	assert_int_equal(parse_dt("1998-12-31T23:59:60+08:00", &ms, NULL), -EINVAL);
	assert_int_equal(parse_dt("1998-12-31T23:59:61Z", &ms, NULL), -EINVAL);
	assert_int_equal(parse_dt("1998-12-31T15:59:61.123-08:00", &ms, NULL), -EINVAL);
}

static void test_parse_rfc3339_invalid(void **state)
{
	static const char *const invalid[] = {
	        "1990-02-31T15:59:59.123-08:00",
	        "1990-12-31T15:59:59-24:00",
	        "1990-12-31T15:59:59+23:60",
	        "1990-12-31T15:59:59+0800",
	        "1990-12-31T15:59:59+08",
	        "1990-12-31T15:59:59",
	        "1990-12-31T15:59Z",
	        "1963-06-19T08:30:06.Z",
	        "1963-06-19T08:30:06.283185",
	        "06/19/1963 08:30:06 PST",
	        "2013-350T01:01:01",
	        "1963-06-19 08:30:06Z",
	        "1963-06-19_08:30:06Z",
	        "1963-06-1\xe0\xa7\xaaT00:00:00Z",
	        "1963-06-11T0\xe0\xa7\xaa:00:00Z",
	        "24:00:00Z",
	        "2024-03-01T24:00:00Z",
	        "2024-03-01T23:60:00Z",
	        "2024-03-01T08:00:00+08:00 ",
	        "2024-03-01T08:00:00ZZ",
	        "2024-03-01T08:00:00+08:00:00",
	        "2024-03-01T08:00:00 +08:00",
	        "2024-03-01T8:00:00Z",
	        "2024-03-01T08:00:00.+08:00",
	        "2024-03-01T08:00:00,5Z",
	        "2024-03-01T08:00:00UTC",
	        "0000-12-31T23:00:00Z",
	        "",
	        "Z",
	};
	int64_t ms = 42;
	int off = 42;

	(void)state;
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		assert_int_equal(parse_dt(invalid[i], &ms, &off), -EINVAL);
		assert_int_equal(ms, 42);
		assert_int_equal(off, 42);
	}
	/* truncating a valid string anywhere leaves an invalid one */
	{
		const char *s = "2024-03-01T08:00:00.123+08:00";

		for (size_t n = 0; n < strlen(s); n++)
			assert_int_equal(datetime_parse_rfc3339(s, n, &ms, NULL), -EINVAL);
		assert_int_equal(datetime_parse_rfc3339(s, strlen(s), &ms, NULL), 0);
	}
}

static void test_format_rfc3339(void **state)
{
	char out[DATETIME_RFC3339_MAX];
	int64_t ms;
	int off;

	(void)state;
	datetime_format_rfc3339(1709251200000LL, 480, out);
	assert_string_equal(out, "2024-03-01T08:00:00+08:00");
	datetime_format_rfc3339(1709251200000LL, 0, out);
	assert_string_equal(out, "2024-03-01T00:00:00Z");
	datetime_format_rfc3339(1709251200123LL, -330, out);
	assert_string_equal(out, "2024-02-29T18:30:00.123-05:30");
	datetime_format_rfc3339(-1, 0, out);
	assert_string_equal(out, "1969-12-31T23:59:59.999Z");
	datetime_format_rfc3339(-1, 480, out);
	assert_string_equal(out, "1970-01-01T07:59:59.999+08:00");
	/* an offset no RFC 3339 string can carry is written as UTC */
	datetime_format_rfc3339(0, 24 * 60, out);
	assert_string_equal(out, "1970-01-01T00:00:00Z");
	/* extremes do not overflow */
	datetime_format_rfc3339(INT64_MAX, 1439, out);
	assert_true(strlen(out) < DATETIME_RFC3339_MAX);
	datetime_format_rfc3339(INT64_MIN, -1439, out);
	assert_true(strlen(out) < DATETIME_RFC3339_MAX);

	/* round trip */
	assert_int_equal(parse_dt("2024-05-03T09:12:00.5+08:00", &ms, &off), 0);
	datetime_format_rfc3339(ms, off, out);
	assert_string_equal(out, "2024-05-03T09:12:00.500+08:00");
	assert_int_equal(parse_dt("1998-12-31T15:59:60.123-08:00", &ms, &off), 0);
	datetime_format_rfc3339(ms, off, out);
	assert_string_equal(out, "1998-12-31T15:59:59.999-08:00");
}

static void test_local_days(void **state)
{
	struct date d = {2024, 4, 30}, local;
	int64_t ms;

	(void)state;
	assert_int_equal(parse_dt("2024-04-30T00:00:00+08:00", &ms, NULL), 0);
	assert_int_equal(datetime_day_start(&d, DATETIME_SHANGHAI_OFFSET_MIN), ms);
	assert_int_equal(parse_dt("2024-05-01T00:00:00+08:00", &ms, NULL), 0);
	assert_int_equal(datetime_day_end(&d, DATETIME_SHANGHAI_OFFSET_MIN), ms);
	assert_int_equal(parse_dt("2024-04-30T16:00:00Z", &ms, NULL), 0);
	assert_int_equal(datetime_day_end(&d, DATETIME_SHANGHAI_OFFSET_MIN), ms);

	/* 2024-04-30T15:59:59.999Z is still the 30th in Shanghai, 16:00Z is the 1st */
	datetime_local_date(ms - 1, DATETIME_SHANGHAI_OFFSET_MIN, &local);
	assert_int_equal(date_compare(&local, &d), 0);
	datetime_local_date(ms, DATETIME_SHANGHAI_OFFSET_MIN, &local);
	assert_int_equal(local.month, 5);
	assert_int_equal(local.day, 1);
	datetime_local_date(ms, 0, &local);
	assert_int_equal(local.day, 30);
	datetime_local_date(ms, -17 * 60, &local);
	assert_int_equal(local.day, 29);
	/* before 1970 */
	datetime_local_date(-1, 0, &local);
	assert_int_equal(local.year, 1969);
	assert_int_equal(local.day, 31);
	datetime_local_date(-1, 1, &local);
	assert_int_equal(local.year, 1970);
	d = (struct date){1969, 12, 31};
	assert_int_equal(datetime_day_start(&d, 0), -DATETIME_MS_PER_DAY);
	assert_int_equal(datetime_day_end(&d, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_days_known),
	        cmocka_unit_test(test_days_round_trip_all),
	        cmocka_unit_test(test_days_in_month),
	        cmocka_unit_test(test_compare_format),
	        cmocka_unit_test(test_parse_date_valid),
	        cmocka_unit_test(test_parse_date_invalid),
	        cmocka_unit_test(test_parse_rfc3339_valid),
	        cmocka_unit_test(test_parse_rfc3339_leap_second),
	        cmocka_unit_test(test_parse_rfc3339_invalid),
	        cmocka_unit_test(test_format_rfc3339),
	        cmocka_unit_test(test_local_days),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
