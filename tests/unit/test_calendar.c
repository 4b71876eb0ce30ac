/* Unit tests for common/calendar, against the real 2024 campaign file and hand-made ones. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/calendar.h"
#include "common/datetime.h"
#include "common/banned.h"

#define CAMPAIGN_DIR "schemas/campaigns"
#define CAMPAIGN_2024 CAMPAIGN_DIR "/2024-anti-bullying.json"

#define PHASES_2024                                                                                \
	"{\"id\": \"2024-P1\", \"start\": \"2024-03-01\", \"end\": \"2024-04-30\"},"               \
	"{\"id\": \"2024-P2\", \"start\": \"2024-05-01\", \"end\": \"2024-09-30\"},"               \
	"{\"id\": \"2024-P3\", \"start\": \"2024-10-01\", \"end\": \"2024-11-30\"}"
#define FORMS_2024                                                                                 \
	"\"screening\": {\"period_type\": \"phase\", \"required_in\": [\"2024-P1\"],"              \
	" \"due\": \"phase_end\"},"                                                                \
	"\"rectification\": {\"period_type\": \"monthly\", \"from\": \"2024-03\","                 \
	" \"to\": \"2024-11\", \"due\": {\"next_month_day\": 5}},"                                 \
	"\"incident\": {\"period_type\": \"event\", \"period_from\": \"occurred_on\","             \
	" \"report_within_days\": 1, \"receive_within_days\": 1}"

static int64_t instant(const char *s)
{
	int64_t ms;

	assert_int_equal(datetime_parse_rfc3339(s, strlen(s), &ms, NULL), 0);
	return ms;
}

static struct date day(const char *s)
{
	struct date d;

	assert_int_equal(datetime_parse_date(s, strlen(s), &d), 0);
	return d;
}

static void assert_date(const struct date *d, const char *expect)
{
	char text[11];

	date_format(d, text);
	assert_string_equal(text, expect);
}

/* A calendar text: the campaign's name, extra top-level members (each followed by a
 * comma), the phases and the forms. Caller frees. */
static char *doc(const char *campaign, const char *top, const char *phases, const char *forms)
{
	char *text;

	assert_true(asprintf(&text,
	                     "{\"campaign\": \"%s\", \"utc_offset\": \"+08:00\", %s"
	                     "\"expiry_days\": 30, \"phases\": [%s], \"forms\": {%s}}",
	                     campaign, top, phases, forms) > 0);
	return text;
}

static int load_text(const char *text, struct calendar **ret, char *err, size_t errlen)
{
	return calendar_load_buffer(text, strlen(text), "t.json", ret, err, errlen);
}

static int setup_2024(void **state)
{
	struct calendar *cal = NULL;
	char err[512] = "";
	int r = calendar_load_file(CAMPAIGN_2024, &cal, err, sizeof(err));

	if (r < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	*state = cal;
	return 0;
}

static int teardown_2024(void **state)
{
	calendar_free(*state);
	return 0;
}

static void test_load_dir(void **state)
{
	struct calendar *cal = NULL;
	char err[512] = "";
	struct date d;

	(void)state;
	assert_int_equal(calendar_load_dir(CAMPAIGN_DIR, &cal, err, sizeof(err)), 0);
	assert_non_null(cal);
	assert_int_equal(calendar_utc_offset_min(cal), DATETIME_SHANGHAI_OFFSET_MIN);
	assert_int_equal(calendar_due_date(cal, "screening", "2024-P1", &d), 0);
	assert_date(&d, "2024-04-30");
	calendar_free(cal);
	calendar_free(NULL);
}

static void test_forms_and_types(void **state)
{
	const struct calendar *cal = *state;
	enum calendar_period_type type;
	const char *field = NULL;

	assert_int_equal(calendar_utc_offset_min(cal), 480);
	assert_true(calendar_form_known(cal, "screening"));
	assert_true(calendar_form_known(cal, "summary"));
	assert_true(calendar_form_known(cal, "rectification"));
	assert_true(calendar_form_known(cal, "incident"));
	assert_false(calendar_form_known(cal, "attendance"));
	assert_false(calendar_form_known(cal, "Screening"));
	assert_false(calendar_form_known(cal, ""));
	assert_false(calendar_form_known(cal, NULL));

	assert_int_equal(calendar_period_type(cal, "screening", &type), 0);
	assert_int_equal(type, CALENDAR_PERIOD_PHASE);
	assert_int_equal(calendar_period_type(cal, "summary", &type), 0);
	assert_int_equal(type, CALENDAR_PERIOD_PHASE);
	assert_int_equal(calendar_period_type(cal, "rectification", &type), 0);
	assert_int_equal(type, CALENDAR_PERIOD_MONTHLY);
	assert_int_equal(calendar_period_type(cal, "incident", &type), 0);
	assert_int_equal(type, CALENDAR_PERIOD_EVENT);
	assert_int_equal(calendar_period_type(cal, "attendance", &type), -ENOENT);

	assert_int_equal(calendar_event_field(cal, "incident", &field), 0);
	assert_string_equal(field, "occurred_on");
	assert_int_equal(calendar_event_field(cal, "summary", &field), -EINVAL);
	assert_int_equal(calendar_event_field(cal, "attendance", &field), -ENOENT);
}

static void test_period_check(void **state)
{
	const struct calendar *cal = *state;
	static const char *const months[] = {"2024-03", "2024-04", "2024-05", "2024-06", "2024-07",
	                                     "2024-08", "2024-09", "2024-10", "2024-11"};
	static const char *const bad_months[] = {
	        "2024-13", "2024-00", "2024-02",    "2024-12", "2023-05", "2025-05",  "2024-P1",
	        "2024-5",  "24-05",   "2024-05-01", "2024/05", "",        " 2024-05", "2024-05 ",
	};
	static const char *const bad_phases[] = {
	        "2024-P4", "2024-P0", "2024-p1", "2025-P1",  "2024-P01",
	        "2024-05", "P1",      "",        "2024-P1 ",
	};

	for (size_t i = 0; i < ARRAY_SIZE(months); i++) {
		assert_int_equal(calendar_period_check(cal, "rectification", months[i]), 0);
		assert_int_equal(calendar_period_check(cal, "incident", months[i]), 0);
		assert_int_equal(calendar_period_check(cal, "screening", months[i]), -EINVAL);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad_months); i++) {
		assert_int_equal(calendar_period_check(cal, "rectification", bad_months[i]),
		                 -EINVAL);
		assert_int_equal(calendar_period_check(cal, "incident", bad_months[i]), -EINVAL);
	}
	assert_int_equal(calendar_period_check(cal, "screening", "2024-P1"), 0);
	assert_int_equal(calendar_period_check(cal, "screening", "2024-P2"), 0); /* optional */
	assert_int_equal(calendar_period_check(cal, "screening", "2024-P3"), 0);
	assert_int_equal(calendar_period_check(cal, "summary", "2024-P3"), 0);
	for (size_t i = 0; i < ARRAY_SIZE(bad_phases); i++) {
		assert_int_equal(calendar_period_check(cal, "screening", bad_phases[i]), -EINVAL);
		assert_int_equal(calendar_period_check(cal, "summary", bad_phases[i]), -EINVAL);
	}
	assert_int_equal(calendar_period_check(cal, "summary", NULL), -EINVAL);
	assert_int_equal(calendar_period_check(cal, "attendance", "2024-05"), -ENOENT);
	assert_int_equal(calendar_period_check(cal, NULL, "2024-05"), -ENOENT);
}

static void test_period_dates(void **state)
{
	const struct calendar *cal = *state;
	struct date start = {0, 0, 0}, end = {0, 0, 0};

	assert_int_equal(calendar_period_dates(cal, "screening", "2024-P1", &start, &end), 0);
	assert_date(&start, "2024-03-01");
	assert_date(&end, "2024-04-30");
	assert_int_equal(calendar_period_dates(cal, "summary", "2024-P2", &start, &end), 0);
	assert_date(&start, "2024-05-01");
	assert_date(&end, "2024-09-30");
	assert_int_equal(calendar_period_dates(cal, "summary", "2024-P3", &start, &end), 0);
	assert_date(&start, "2024-10-01");
	assert_date(&end, "2024-11-30");
	assert_int_equal(calendar_period_dates(cal, "rectification", "2024-06", &start, &end), 0);
	assert_date(&start, "2024-06-01");
	assert_date(&end, "2024-06-30");
	assert_int_equal(calendar_period_dates(cal, "incident", "2024-03", &start, &end), 0);
	assert_date(&start, "2024-03-01");
	assert_date(&end, "2024-03-31");

	start.year = 42;
	assert_int_equal(calendar_period_dates(cal, "rectification", "2024-13", &start, &end),
	                 -EINVAL);
	assert_int_equal(calendar_period_dates(cal, "attendance", "2024-05", &start, &end),
	                 -ENOENT);
	assert_int_equal(start.year, 42); /* untouched on failure */
}

static void test_period_required(void **state)
{
	const struct calendar *cal = *state;

	assert_int_equal(calendar_period_required(cal, "screening", "2024-P1"), 1);
	assert_int_equal(calendar_period_required(cal, "screening", "2024-P2"), 0);
	assert_int_equal(calendar_period_required(cal, "screening", "2024-P3"), 0);
	assert_int_equal(calendar_period_required(cal, "summary", "2024-P1"), 1);
	assert_int_equal(calendar_period_required(cal, "summary", "2024-P2"), 1);
	assert_int_equal(calendar_period_required(cal, "summary", "2024-P3"), 1);
	assert_int_equal(calendar_period_required(cal, "rectification", "2024-03"), 1);
	assert_int_equal(calendar_period_required(cal, "incident", "2024-05"), 0);
	assert_int_equal(calendar_period_required(cal, "summary", "2024-P4"), -EINVAL);
	assert_int_equal(calendar_period_required(cal, "attendance", "2024-P1"), -ENOENT);
}

static void test_due_and_deadline(void **state)
{
	const struct calendar *cal = *state;
	struct date due;
	int64_t ms = 42;

	assert_int_equal(calendar_due_date(cal, "screening", "2024-P1", &due), 0);
	assert_date(&due, "2024-04-30");
	assert_int_equal(calendar_due_date(cal, "screening", "2024-P2", &due), 0);
	assert_date(&due, "2024-09-30");
	assert_int_equal(calendar_due_date(cal, "summary", "2024-P2", &due), 0);
	assert_date(&due, "2024-09-30");
	assert_int_equal(calendar_due_date(cal, "summary", "2024-P3", &due), 0);
	assert_date(&due, "2024-11-30");
	assert_int_equal(calendar_due_date(cal, "rectification", "2024-03", &due), 0);
	assert_date(&due, "2024-04-05");
	assert_int_equal(calendar_due_date(cal, "rectification", "2024-06", &due), 0);
	assert_date(&due, "2024-07-05");
	assert_int_equal(calendar_due_date(cal, "rectification", "2024-11", &due), 0);
	assert_date(&due, "2024-12-05");
	assert_int_equal(calendar_due_date(cal, "incident", "2024-05", &due), -ENODATA);
	assert_int_equal(calendar_due_date(cal, "rectification", "2024-P1", &due), -EINVAL);
	assert_int_equal(calendar_due_date(cal, "attendance", "2024-P1", &due), -ENOENT);

	assert_int_equal(calendar_deadline_ms(cal, "screening", "2024-P1", &ms), 0);
	assert_int_equal(ms, instant("2024-05-01T00:00:00+08:00"));
	assert_int_equal(ms, instant("2024-04-30T16:00:00Z"));
	assert_int_equal(calendar_deadline_ms(cal, "rectification", "2024-06", &ms), 0);
	assert_int_equal(ms, instant("2024-07-06T00:00:00+08:00"));
	ms = 42;
	assert_int_equal(calendar_deadline_ms(cal, "incident", "2024-05", &ms), -ENODATA);
	assert_int_equal(calendar_deadline_ms(cal, "summary", "2024-P4", &ms), -EINVAL);
	assert_int_equal(ms, 42);
}

static void test_on_time(void **state)
{
	const struct calendar *cal = *state;

	assert_int_equal(calendar_is_on_time(cal, "screening", "2024-P1",
	                                     instant("2024-04-30T23:59:59.999+08:00")),
	                 1);
	assert_int_equal(calendar_is_on_time(cal, "screening", "2024-P1",
	                                     instant("2024-05-01T00:00:00+08:00")),
	                 0);
	assert_int_equal(calendar_is_on_time(cal, "screening", "2024-P1",
	                                     instant("2024-04-30T15:59:59.999Z")),
	                 1);
	assert_int_equal(
	        calendar_is_on_time(cal, "screening", "2024-P1", instant("2024-04-30T23:59:59Z")),
	        0);
	/* early is on time */
	assert_int_equal(calendar_is_on_time(cal, "screening", "2024-P1",
	                                     instant("2024-03-02T09:00:00+08:00")),
	                 1);
	assert_int_equal(calendar_is_on_time(cal, "rectification", "2024-06",
	                                     instant("2024-07-05T23:59:59.999+08:00")),
	                 1);
	assert_int_equal(calendar_is_on_time(cal, "rectification", "2024-06",
	                                     instant("2024-07-06T00:00:00+08:00")),
	                 0);
	assert_int_equal(calendar_is_on_time(cal, "incident", "2024-06", 0), -ENODATA);
	assert_int_equal(calendar_is_on_time(cal, "rectification", "2024-P2", 0), -EINVAL);
	assert_int_equal(calendar_is_on_time(cal, "attendance", "2024-06", 0), -ENOENT);
}

static void test_expiry(void **state)
{
	const struct calendar *cal = *state;
	int64_t ms = 42;

	/* due 2024-04-30, locks at the end of 2024-05-30 */
	assert_int_equal(calendar_expiry_ms(cal, "screening", "2024-P1", &ms), 0);
	assert_int_equal(ms, instant("2024-05-31T00:00:00+08:00"));
	assert_int_equal(calendar_is_expired(cal, "screening", "2024-P1",
	                                     instant("2024-05-30T23:59:59.999+08:00")),
	                 0);
	assert_int_equal(calendar_is_expired(cal, "screening", "2024-P1",
	                                     instant("2024-05-31T00:00:00+08:00")),
	                 1);
	assert_int_equal(calendar_is_expired(cal, "screening", "2024-P1",
	                                     instant("2024-04-01T00:00:00+08:00")),
	                 0);
	/* due 2024-07-05, locks at the end of 2024-08-04 */
	assert_int_equal(calendar_expiry_ms(cal, "rectification", "2024-06", &ms), 0);
	assert_int_equal(ms, instant("2024-08-05T00:00:00+08:00"));
	assert_int_equal(calendar_is_expired(cal, "rectification", "2024-06",
	                                     instant("2024-08-04T23:59:59.999+08:00")),
	                 0);
	assert_int_equal(calendar_is_expired(cal, "rectification", "2024-06",
	                                     instant("2024-08-05T00:00:00+08:00")),
	                 1);
	/* due 2024-11-30: end of 2024-12-30 */
	assert_int_equal(calendar_expiry_ms(cal, "summary", "2024-P3", &ms), 0);
	assert_int_equal(ms, instant("2024-12-31T00:00:00+08:00"));
	/* every event period: end of campaign (2024-11-30) + 30 days */
	assert_int_equal(calendar_expiry_ms(cal, "incident", "2024-03", &ms), 0);
	assert_int_equal(ms, instant("2024-12-31T00:00:00+08:00"));
	assert_int_equal(calendar_expiry_ms(cal, "incident", "2024-11", &ms), 0);
	assert_int_equal(ms, instant("2024-12-31T00:00:00+08:00"));
	assert_int_equal(calendar_is_expired(cal, "incident", "2024-03",
	                                     instant("2024-12-30T23:59:59.999+08:00")),
	                 0);
	assert_int_equal(calendar_is_expired(cal, "incident", "2024-03",
	                                     instant("2024-12-31T00:00:00+08:00")),
	                 1);
	ms = 42;
	assert_int_equal(calendar_expiry_ms(cal, "incident", "2024-12", &ms), -EINVAL);
	assert_int_equal(calendar_expiry_ms(cal, "attendance", "2024-03", &ms), -ENOENT);
	assert_int_equal(ms, 42);
	assert_int_equal(calendar_is_expired(cal, "summary", "2024-P4", 0), -EINVAL);
}

static void test_event_period(void **state)
{
	const struct calendar *cal = *state;
	char period[CALENDAR_PERIOD_MAX] = "unchanged";
	struct date d;

	d = day("2024-05-02");
	assert_int_equal(calendar_event_period(cal, "incident", &d, period), 0);
	assert_string_equal(period, "2024-05");
	d = day("2024-03-01");
	assert_int_equal(calendar_event_period(cal, "incident", &d, period), 0);
	assert_string_equal(period, "2024-03");
	d = day("2024-11-30");
	assert_int_equal(calendar_event_period(cal, "incident", &d, period), 0);
	assert_string_equal(period, "2024-11");
	assert_int_equal(calendar_period_check(cal, "incident", period), 0);

	memcpy(period, "unchanged", 10);
	d = day("2024-02-29");
	assert_int_equal(calendar_event_period(cal, "incident", &d, period), -ERANGE);
	d = day("2024-12-01");
	assert_int_equal(calendar_event_period(cal, "incident", &d, period), -ERANGE);
	d = day("2024-05-02");
	assert_int_equal(calendar_event_period(cal, "screening", &d, period), -EINVAL);
	assert_int_equal(calendar_event_period(cal, "rectification", &d, period), -EINVAL);
	assert_int_equal(calendar_event_period(cal, "attendance", &d, period), -ENOENT);
	assert_string_equal(period, "unchanged");
}

static void test_event_timely(void **state)
{
	const struct calendar *cal = *state;
	struct date discovered = day("2024-05-02"), reported = day("2024-05-03");

	/* reported a day after discovery, received by the end of the next day */
	assert_int_equal(calendar_event_timely(cal, "incident", "2024-05", &discovered, &reported,
	                                       instant("2024-05-04T23:59:59.999+08:00")),
	                 1);
	assert_int_equal(calendar_event_timely(cal, "incident", "2024-05", &discovered, &reported,
	                                       instant("2024-05-03T10:00:00+08:00")),
	                 1);
	assert_int_equal(calendar_event_timely(cal, "incident", "2024-05", &discovered, &reported,
	                                       instant("2024-05-05T00:00:00+08:00")),
	                 0);
	/* reported two days after discovery: late however fast it arrives */
	reported = day("2024-05-04");
	assert_int_equal(calendar_event_timely(cal, "incident", "2024-05", &discovered, &reported,
	                                       instant("2024-05-04T09:00:00+08:00")),
	                 0);
	/* same day */
	reported = day("2024-05-02");
	assert_int_equal(calendar_event_timely(cal, "incident", "2024-05", &discovered, &reported,
	                                       instant("2024-05-03T23:00:00+08:00")),
	                 1);
	assert_int_equal(calendar_event_timely(cal, "incident", "2024-05", &discovered, &reported,
	                                       instant("2024-05-04T00:00:00+08:00")),
	                 0);
	/* across a month end */
	discovered = day("2024-05-31");
	reported = day("2024-06-01");
	assert_int_equal(calendar_event_timely(cal, "incident", "2024-05", &discovered, &reported,
	                                       instant("2024-06-02T12:00:00+08:00")),
	                 1);

	assert_int_equal(
	        calendar_event_timely(cal, "incident", "2024-12", &discovered, &reported, 0),
	        -EINVAL);
	assert_int_equal(
	        calendar_event_timely(cal, "summary", "2024-P1", &discovered, &reported, 0),
	        -EINVAL);
	assert_int_equal(
	        calendar_event_timely(cal, "attendance", "2024-05", &discovered, &reported, 0),
	        -ENOENT);
}

static void check_entry(const struct calendar_due *e, const char *form, const char *period,
                        const char *due)
{
	assert_string_equal(e->form, form);
	assert_string_equal(e->period, period);
	assert_date(&e->due, due);
}

static void test_expected_full(void **state)
{
	const struct calendar *cal = *state;
	static const char *const want[][3] = {
	        {"rectification", "2024-03", "2024-04-05"},
	        {"screening", "2024-P1", "2024-04-30"},
	        {"summary", "2024-P1", "2024-04-30"},
	        {"rectification", "2024-04", "2024-05-05"},
	        {"rectification", "2024-05", "2024-06-05"},
	        {"rectification", "2024-06", "2024-07-05"},
	        {"rectification", "2024-07", "2024-08-05"},
	        {"rectification", "2024-08", "2024-09-05"},
	        {"summary", "2024-P2", "2024-09-30"},
	        {"rectification", "2024-09", "2024-10-05"},
	        {"rectification", "2024-10", "2024-11-05"},
	        {"summary", "2024-P3", "2024-11-30"},
	        {"rectification", "2024-11", "2024-12-05"},
	};
	struct calendar_due *list = NULL;
	struct date opened = day("2001-09-01");
	size_t n = 0;

	assert_int_equal(calendar_expected(cal, &opened, NULL, NULL, &list, &n), 0);
	assert_int_equal(n, ARRAY_SIZE(want));
	for (size_t i = 0; i < n; i++)
		check_entry(&list[i], want[i][0], want[i][1], want[i][2]);
	/* every field of one entry */
	assert_date(&list[1].start, "2024-03-01");
	assert_date(&list[1].end, "2024-04-30");
	assert_int_equal(list[1].deadline_ms, instant("2024-05-01T00:00:00+08:00"));
	assert_int_equal(list[1].expiry_ms, instant("2024-05-31T00:00:00+08:00"));
	assert_date(&list[5].start, "2024-06-01");
	assert_date(&list[5].end, "2024-06-30");
	assert_int_equal(list[5].deadline_ms, instant("2024-07-06T00:00:00+08:00"));
	assert_int_equal(list[5].expiry_ms, instant("2024-08-05T00:00:00+08:00"));
	free(list);

	/* opened_on NULL: the same */
	assert_int_equal(calendar_expected(cal, NULL, NULL, NULL, &list, &n), 0);
	assert_int_equal(n, ARRAY_SIZE(want));
	free(list);
}

static size_t expected_count(const struct calendar *cal, const char *opened, const char *closed,
                             const char *as_of, struct calendar_due **ret)
{
	struct date o, c, a;
	size_t n = 99;

	if (opened)
		o = day(opened);
	if (closed)
		c = day(closed);
	if (as_of)
		a = day(as_of);
	assert_int_equal(calendar_expected(cal, opened ? &o : NULL, closed ? &c : NULL,
	                                   as_of ? &a : NULL, ret, &n),
	                 0);
	return n;
}

static void test_expected_open_close(void **state)
{
	const struct calendar *cal = *state;
	struct calendar_due *list = NULL;
	struct date o, c;
	size_t n;

	/* opened mid-campaign: no screening, no P1 summary, rectification from June */
	n = expected_count(cal, "2024-06-15", NULL, NULL, &list);
	assert_int_equal(n, 8);
	check_entry(&list[0], "rectification", "2024-06", "2024-07-05");
	check_entry(&list[3], "summary", "2024-P2", "2024-09-30");
	check_entry(&list[7], "rectification", "2024-11", "2024-12-05");
	free(list);

	/* open on the last day of P1 is open during P1 */
	n = expected_count(cal, "2024-04-30", NULL, NULL, &list);
	assert_int_equal(n, 12);
	check_entry(&list[0], "screening", "2024-P1", "2024-04-30");
	check_entry(&list[1], "summary", "2024-P1", "2024-04-30");
	check_entry(&list[2], "rectification", "2024-04", "2024-05-05");
	free(list);

	/* closed early: its last open day is 2024-05-01 */
	n = expected_count(cal, "1990-01-01", "2024-05-01", NULL, &list);
	assert_int_equal(n, 6);
	check_entry(&list[0], "rectification", "2024-03", "2024-04-05");
	check_entry(&list[1], "screening", "2024-P1", "2024-04-30");
	check_entry(&list[2], "summary", "2024-P1", "2024-04-30");
	check_entry(&list[3], "rectification", "2024-04", "2024-05-05");
	check_entry(&list[4], "rectification", "2024-05", "2024-06-05");
	check_entry(&list[5], "summary", "2024-P2", "2024-09-30");
	free(list);
	n = expected_count(cal, NULL, "2024-04-30", NULL, &list);
	assert_int_equal(n, 4);
	free(list);

	/* open only in summer */
	n = expected_count(cal, "2024-07-10", "2024-08-20", NULL, &list);
	assert_int_equal(n, 3);
	check_entry(&list[0], "rectification", "2024-07", "2024-08-05");
	check_entry(&list[1], "rectification", "2024-08", "2024-09-05");
	check_entry(&list[2], "summary", "2024-P2", "2024-09-30");
	free(list);

	/* open one day */
	n = expected_count(cal, "2024-11-30", "2024-11-30", NULL, &list);
	assert_int_equal(n, 2);
	free(list);

	/* never open during the campaign */
	list = (struct calendar_due *)&n;
	assert_int_equal(expected_count(cal, "2025-01-01", NULL, NULL, &list), 0);
	assert_null(list);
	assert_int_equal(expected_count(cal, "2001-01-01", "2024-02-29", NULL, &list), 0);
	assert_null(list);

	o = day("2024-05-01");
	c = day("2024-04-30");
	assert_int_equal(calendar_expected(cal, &o, &c, NULL, &list, &n), -EINVAL);
}

static void test_expected_as_of(void **state)
{
	const struct calendar *cal = *state;
	struct calendar_due *list = NULL;
	size_t n;

	n = expected_count(cal, NULL, NULL, "2024-05-10", &list);
	assert_int_equal(n, 6);
	check_entry(&list[0], "rectification", "2024-03", "2024-04-05");
	check_entry(&list[1], "screening", "2024-P1", "2024-04-30");
	check_entry(&list[2], "summary", "2024-P1", "2024-04-30");
	check_entry(&list[3], "rectification", "2024-04", "2024-05-05");
	check_entry(&list[4], "rectification", "2024-05", "2024-06-05");
	check_entry(&list[5], "summary", "2024-P2", "2024-09-30");
	free(list);

	assert_int_equal(expected_count(cal, NULL, NULL, "2024-03-01", &list), 3);
	free(list);
	assert_int_equal(expected_count(cal, NULL, NULL, "2024-02-29", &list), 0);
	assert_int_equal(expected_count(cal, NULL, NULL, "2030-01-01", &list), 13);
	free(list);
	/* as_of and a late opening together */
	assert_int_equal(expected_count(cal, "2024-06-15", NULL, "2024-07-01", &list), 3);
	free(list);
}

struct bad_case {
	const char *text;
	const char *message;
};

static void test_malformed(void **state)
{
	static const char *const valid_phases = PHASES_2024;
	static const char *const valid_forms = FORMS_2024;
	struct {
		const char *top, *phases, *forms, *message;
	} variants[] = {
	        {"\"foo\": 1,", NULL, NULL, "t.json: /: unknown member 'foo'"},
	        {"\"title\": 5,", NULL, NULL, "'title' must be a string"},
	        {"\"description\": [],", NULL, NULL, "'description' must be a string"},
	        {"\"campaign\": \"again\",", NULL, NULL, "not valid JSON"}, /* duplicate member */
	        {NULL, "", NULL, "/phases: must hold 1 to 32 phases"},
	        {NULL, "{\"id\": \"2024-P1\", \"start\": \"2024-02-30\", \"end\": \"2024-04-30\"}",
	         "\"s\": {\"period_type\": \"phase\", \"required_in\": [], \"due\": \"phase_end\"}",
	         "t.json: /phases/0: 'start': '2024-02-30' is not a date (YYYY-MM-DD)"},
	        {NULL, "{\"id\": \"2024-P1\", \"start\": \"2024-03-01\", \"end\": \"2024-4-30\"}",
	         NULL, "/phases/0: 'end': '2024-4-30' is not a date"},
	        {NULL, "{\"id\": \"2024-P1\", \"start\": \"2024-03-01\", \"end\": \"2024-02-01\"}",
	         NULL, "/phases/0: ends before it starts"},
	        {NULL,
	         "{\"id\": \"2024-P1\", \"start\": \"2024-03-01\", \"end\": \"2024-04-30\"},"
	         "{\"id\": \"2024-P2\", \"start\": \"2024-04-30\", \"end\": \"2024-09-30\"}",
	         NULL, "/phases/1: starts before the previous phase ends"},
	        {NULL,
	         "{\"id\": \"2024-P2\", \"start\": \"2024-05-01\", \"end\": \"2024-09-30\"},"
	         "{\"id\": \"2024-P1\", \"start\": \"2024-03-01\", \"end\": \"2024-04-30\"}",
	         NULL, "/phases/1: starts before the previous phase ends"},
	        {NULL,
	         "{\"id\": \"2024-P1\", \"start\": \"2024-03-01\", \"end\": \"2024-04-30\"},"
	         "{\"id\": \"2024-P1\", \"start\": \"2024-05-01\", \"end\": \"2024-09-30\"}",
	         NULL, "/phases/1: phase '2024-P1' appears twice"},
	        {NULL, "{\"id\": \"P1\", \"start\": \"2024-03-01\", \"end\": \"2024-04-30\"}", NULL,
	         "'id': 'P1' is not a phase id"},
	        {NULL, "{\"id\": \"2024-P1\", \"start\": \"2024-03-01\"}", NULL,
	         "/phases/0: missing member 'end'"},
	        {NULL,
	         "{\"id\": \"2024-P1\", \"start\": \"2024-03-01\", \"end\": \"2024-04-30\", "
	         "\"due\": \"2024-04-30\"}",
	         NULL, "/phases/0: unknown member 'due'"},
	        {NULL, "{\"id\": \"2024-P1\", \"start\": \"2014-03-01\", \"end\": \"2024-04-30\"}",
	         NULL, "spans more than 120 months"},
	        {NULL, "\"2024-P1\"", NULL, "/phases/0: must be an object"},
	        {NULL, NULL, "", "/forms: must hold 1 to 64 forms"},
	        {NULL, NULL, "\"s\": {\"period_type\": \"weekly\"}",
	         "/forms/s: 'period_type': 'weekly' is not one of \"phase\", \"monthly\", "
	         "\"event\""},
	        {NULL, NULL, "\"s\": {\"due\": \"phase_end\"}",
	         "/forms/s: missing member 'period_type'"},
	        {NULL, NULL, "\"s\": 1", "/forms/s: must be an object"},
	        {NULL, NULL, "\"Screening\": {\"period_type\": \"event\"}",
	         "/forms: 'Screening' is not a form name"},
	        {NULL, NULL,
	         "\"s\": {\"period_type\": \"phase\", \"required_in\": [\"2024-P9\"], "
	         "\"due\": \"phase_end\"}",
	         "/forms/s: 'required_in': '2024-P9' is not a phase of this campaign"},
	        {NULL, NULL,
	         "\"s\": {\"period_type\": \"phase\", \"required_in\": [\"2024-P1\", \"2024-P1\"], "
	         "\"due\": \"phase_end\"}",
	         "'required_in': '2024-P1' appears twice"},
	        {NULL, NULL, "\"s\": {\"period_type\": \"phase\", \"due\": \"phase_end\"}",
	         "missing member 'required_in'"},
	        {NULL, NULL,
	         "\"s\": {\"period_type\": \"phase\", \"required_in\": [], \"due\": \"month_end\"}",
	         "/forms/s: 'due' must be \"phase_end\" or an object with \"days_after_end\""},
	        {NULL, NULL,
	         "\"s\": {\"period_type\": \"phase\", \"required_in\": [], "
	         "\"due\": {\"next_month_day\": 5}}",
	         "'next_month_day' is only for monthly forms"},
	        {NULL, NULL,
	         "\"s\": {\"period_type\": \"phase\", \"required_in\": [], "
	         "\"due\": {\"days_after_end\": 5, \"next_month_day\": 5}}",
	         "'due' must hold exactly one rule"},
	        {NULL, NULL,
	         "\"s\": {\"period_type\": \"phase\", \"required_in\": [], \"due\": \"phase_end\", "
	         "\"from\": \"2024-03\"}",
	         "/forms/s: unknown member 'from'"},
	        {NULL, NULL,
	         "\"m\": {\"period_type\": \"monthly\", \"from\": \"2024-13\", \"to\": "
	         "\"2024-11\", "
	         "\"due\": \"month_end\"}",
	         "/forms/m: 'from': '2024-13' is not a month (YYYY-MM)"},
	        {NULL, NULL,
	         "\"m\": {\"period_type\": \"monthly\", \"from\": \"2024-05\", \"to\": "
	         "\"2024-04\", "
	         "\"due\": \"month_end\"}",
	         "'from' is after 'to'"},
	        {NULL, NULL,
	         "\"m\": {\"period_type\": \"monthly\", \"from\": \"2024-02\", \"to\": "
	         "\"2024-11\", "
	         "\"due\": \"month_end\"}",
	         "'from' and 'to' must be within the campaign's months"},
	        {NULL, NULL,
	         "\"m\": {\"period_type\": \"monthly\", \"from\": \"2024-03\", \"to\": "
	         "\"2024-12\", "
	         "\"due\": \"month_end\"}",
	         "'from' and 'to' must be within the campaign's months"},
	        {NULL, NULL,
	         "\"m\": {\"period_type\": \"monthly\", \"from\": \"2024-03\", \"to\": "
	         "\"2024-11\", "
	         "\"due\": {\"next_month_day\": 31}}",
	         "'next_month_day' must be an integer from 1 to 28"},
	        {NULL, NULL,
	         "\"m\": {\"period_type\": \"monthly\", \"from\": \"2024-03\", \"to\": "
	         "\"2024-11\", "
	         "\"due\": {\"next_month_day\": 5.5}}",
	         "'next_month_day' must be an integer from 1 to 28"},
	        {NULL, NULL,
	         "\"m\": {\"period_type\": \"monthly\", \"from\": \"2024-03\", \"to\": "
	         "\"2024-11\", "
	         "\"due\": {\"weekday\": 5}}",
	         "'due' must be \"month_end\" or an object"},
	        {NULL, NULL,
	         "\"m\": {\"period_type\": \"monthly\", \"from\": \"2024-03\", \"to\": "
	         "\"2024-11\"}",
	         "/forms/m: missing member 'due'"},
	        {NULL, NULL,
	         "\"m\": {\"period_type\": \"monthly\", \"from\": \"2024-03\", \"to\": "
	         "\"2024-11\", "
	         "\"due\": \"month_end\", \"expiry_days\": -1}",
	         "'expiry_days' must be an integer from 0 to 3660"},
	        {NULL, NULL,
	         "\"e\": {\"period_type\": \"event\", \"period_from\": \"occurred_on\", "
	         "\"receive_within_days\": 1}",
	         "/forms/e: missing member 'report_within_days'"},
	        {NULL, NULL,
	         "\"e\": {\"period_type\": \"event\", \"period_from\": \"occurred on\", "
	         "\"report_within_days\": 1, \"receive_within_days\": 1}",
	         "'period_from': 'occurred on' is not a member name"},
	        {NULL, NULL,
	         "\"e\": {\"period_type\": \"event\", \"period_from\": \"occurred_on\", "
	         "\"report_within_days\": 1, \"receive_within_days\": \"1\"}",
	         "'receive_within_days' must be an integer"},
	        {NULL, NULL,
	         "\"e\": {\"period_type\": \"event\", \"period_from\": \"occurred_on\", "
	         "\"report_within_days\": 1, \"receive_within_days\": 1, \"due\": \"month_end\"}",
	         "/forms/e: unknown member 'due'"},
	        {NULL, NULL,
	         "\"e\": {\"period_type\": \"event\", \"period_from\": \"occurred_on\", "
	         "\"report_within_days\": 1, \"receive_within_days\": 1, \"from\": \"2023-03\"}",
	         "must be within the campaign's months"},
	};
	static const struct bad_case whole[] = {
	        {"", "t.json: not valid JSON"},
	        {"{", "t.json: not valid JSON"},
	        {"[]", "t.json: /: must be an object"},
	        {"{\"campaign\": \"t\"} x", "not valid JSON"},
	        {"{\"utc_offset\": \"+08:00\", \"expiry_days\": 30}", "missing member 'campaign'"},
	        {"{\"campaign\": \"Bad Name\"}", "/campaign: 'Bad Name' is not a campaign name"},
	        {"{\"campaign\": \"c\\nd\"}", "/campaign: 'c?d' is not a campaign name"},
	        {"{\"campaign\": \"t\", \"utc_offset\": \"+8:00\"}",
	         "/utc_offset: '+8:00' is not an offset"},
	        {"{\"campaign\": \"t\", \"utc_offset\": \"+24:00\"}", "is not an offset"},
	        {"{\"campaign\": \"t\", \"utc_offset\": \"+08:00\"}",
	         "missing member 'expiry_days'"},
	        {"{\"campaign\": \"t\", \"utc_offset\": \"+08:00\", \"expiry_days\": \"30\"}",
	         "'expiry_days' must be an integer"},
	        {"{\"campaign\": \"t\", \"utc_offset\": \"+08:00\", \"expiry_days\": 1e9}",
	         "'expiry_days' must be an integer from 0 to 3660"},
	        {"{\"campaign\": \"t\", \"utc_offset\": \"+08:00\", \"expiry_days\": 30}",
	         "missing member 'phases'"},
	        {"{\"campaign\": \"t\", \"utc_offset\": \"+08:00\", \"expiry_days\": 30, "
	         "\"phases\": {}}",
	         "/phases: must be an array"},
	        {"{\"campaign\": \"t\", \"utc_offset\": \"+08:00\", \"expiry_days\": 30, "
	         "\"phases\": [" PHASES_2024 "]}",
	         "missing member 'forms'"},
	        {"{\"campaign\": \"t\", \"utc_offset\": \"+08:00\", \"expiry_days\": 30, "
	         "\"phases\": [" PHASES_2024 "], \"forms\": []}",
	         "/forms: must be an object"},
	        {"{\"campaign\": \"t\", \"utc_offset\": \"+08:00\", \"expiry_days\": 30, "
	         "\"phases\": [" PHASES_2024 "], \"forms\": {\"a\": {\"b\": {\"c\": {\"d\": "
	         "{\"e\": {\"f\": {\"g\": {}}}}}}}}}",
	         "not valid JSON"}, /* too deep */
	};
	struct calendar *cal = (struct calendar *)&cal;
	char err[512], *text;

	(void)state;
	/* the base document is valid */
	text = doc("t", "", valid_phases, valid_forms);
	assert_int_equal(load_text(text, &cal, err, sizeof(err)), 0);
	calendar_free(cal);
	free(text);

	for (size_t i = 0; i < ARRAY_SIZE(variants); i++) {
		cal = (struct calendar *)&cal;
		err[0] = '\0';
		text = doc("t", variants[i].top ? variants[i].top : "",
		           variants[i].phases ? variants[i].phases : valid_phases,
		           variants[i].forms ? variants[i].forms : valid_forms);
		if (load_text(text, &cal, err, sizeof(err)) != -EINVAL ||
		    !strstr(err, variants[i].message))
			fail_msg("case %zu: %s\n  err: %s\n  want: %s", i, text, err,
			         variants[i].message);
		assert_ptr_equal(cal, &cal); /* untouched */
		assert_true(strncmp(err, "t.json: ", 8) == 0);
		free(text);
	}
	for (size_t i = 0; i < ARRAY_SIZE(whole); i++) {
		err[0] = '\0';
		if (load_text(whole[i].text, &cal, err, sizeof(err)) != -EINVAL ||
		    !strstr(err, whole[i].message))
			fail_msg("case %zu: %s\n  err: %s\n  want: %s", i, whole[i].text, err,
			         whole[i].message);
	}
	/* a tiny error buffer is cut, never overrun */
	assert_int_equal(load_text("{", &cal, err, 4), -EINVAL);
	assert_string_equal(err, "t.j");
	assert_int_equal(load_text("{", &cal, NULL, 0), -EINVAL);
}

static void test_size_limit(void **state)
{
	struct calendar *cal = NULL;
	char err[512] = "", *text, *big, path[] = "/tmp/test_calendar_XXXXXX";
	size_t len;
	FILE *f;
	int fd;

	(void)state;
	/* a valid document padded with spaces past the limit */
	text = doc("t", "", PHASES_2024, FORMS_2024);
	len = CALENDAR_FILE_MAX + 1;
	big = malloc(len);
	assert_non_null(big);
	memset(big, ' ', len);
	memcpy(big, text, strlen(text));
	assert_int_equal(calendar_load_buffer(big, len, "big.json", &cal, err, sizeof(err)),
	                 -EMSGSIZE);
	assert_non_null(strstr(err, "big.json: larger than"));
	/* exactly at the limit is fine */
	assert_int_equal(calendar_load_buffer(big, len - 1, "big.json", &cal, err, sizeof(err)), 0);
	calendar_free(cal);

	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(big, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(calendar_load_file(path, &cal, err, sizeof(err)), -EMSGSIZE);
	assert_non_null(strstr(err, "larger than"));
	assert_int_equal(unlink(path), 0);
	free(big);
	free(text);
}

/* A scratch folder of campaign files. */
static char *make_dir(void)
{
	char *dir = strdup("/tmp/test_calendar_XXXXXX");

	assert_non_null(dir);
	assert_non_null(mkdtemp(dir));
	return dir;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char *path;
	FILE *f;

	assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	free(path);
}

static void remove_dir(char *dir)
{
	char *cmd;

	assert_true(asprintf(&cmd, "rm -rf '%s'", dir) > 0);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(dir);
}

#define PHASES_2025 "{\"id\": \"2025-P1\", \"start\": \"2025-03-01\", \"end\": \"2025-06-30\"}"
#define FORMS_2025                                                                                 \
	"\"screening\": {\"period_type\": \"phase\", \"required_in\": [\"2025-P1\"],"              \
	" \"due\": {\"days_after_end\": 10}, \"expiry_days\": 5},"                                 \
	"\"rectification\": {\"period_type\": \"monthly\", \"from\": \"2025-03\","                 \
	" \"to\": \"2025-06\", \"due\": \"month_end\"},"                                           \
	"\"incident\": {\"period_type\": \"event\", \"period_from\": \"occurred_on\","             \
	" \"report_within_days\": 2, \"receive_within_days\": 0}"

static void test_dir_two_campaigns(void **state)
{
	struct calendar *cal = NULL;
	struct calendar_due *list = NULL;
	char err[512] = "", *dir = make_dir(), *t1, *t2;
	char period[CALENDAR_PERIOD_MAX];
	struct date d, discovered, reported;
	int64_t ms;
	size_t n;

	(void)state;
	t1 = doc("a-2024", "", PHASES_2024, FORMS_2024);
	t2 = doc("b-2025", "", PHASES_2025, FORMS_2025);
	write_file(dir, "2024.json", t1);
	write_file(dir, "2025.json", t2);
	write_file(dir, ".hidden.json", "not json");
	write_file(dir, "notes.txt", "not json");
	write_file(dir, "x.json.orig", "not json");
	assert_int_equal(calendar_load_dir(dir, &cal, err, sizeof(err)), 0);

	assert_int_equal(calendar_period_check(cal, "screening", "2024-P1"), 0);
	assert_int_equal(calendar_period_check(cal, "screening", "2025-P1"), 0);
	assert_int_equal(calendar_period_check(cal, "rectification", "2025-06"), 0);
	assert_int_equal(calendar_period_check(cal, "rectification", "2024-12"), -EINVAL);
	assert_int_equal(calendar_period_check(cal, "rectification", "2025-07"), -EINVAL);
	/* each campaign's own rules */
	assert_int_equal(calendar_due_date(cal, "screening", "2025-P1", &d), 0);
	assert_date(&d, "2025-07-10");
	assert_int_equal(calendar_expiry_ms(cal, "screening", "2025-P1", &ms), 0);
	assert_int_equal(ms, instant("2025-07-16T00:00:00+08:00"));
	assert_int_equal(calendar_due_date(cal, "rectification", "2025-04", &d), 0);
	assert_date(&d, "2025-04-30");
	assert_int_equal(calendar_due_date(cal, "rectification", "2024-04", &d), 0);
	assert_date(&d, "2024-05-05");
	d = day("2025-03-15");
	assert_int_equal(calendar_event_period(cal, "incident", &d, period), 0);
	assert_string_equal(period, "2025-03");
	d = day("2025-01-15");
	assert_int_equal(calendar_event_period(cal, "incident", &d, period), -ERANGE);
	discovered = day("2025-03-15");
	reported = day("2025-03-17");
	assert_int_equal(calendar_event_timely(cal, "incident", "2025-03", &discovered, &reported,
	                                       instant("2025-03-17T23:00:00+08:00")),
	                 1);
	assert_int_equal(calendar_event_timely(cal, "incident", "2025-03", &discovered, &reported,
	                                       instant("2025-03-18T00:00:00+08:00")),
	                 0);
	/* 2024: screening and 9 months; 2025: screening and 4 months (no summary form) */
	assert_int_equal(calendar_expected(cal, NULL, NULL, NULL, &list, &n), 0);
	assert_int_equal(n, 1 + 9 + 1 + 4);
	check_entry(&list[n - 1], "screening", "2025-P1", "2025-07-10");
	free(list);
	assert_int_equal(
	        calendar_expected(cal, NULL, NULL, &(struct date){2024, 12, 31}, &list, &n), 0);
	assert_int_equal(n, 10);
	free(list);
	calendar_free(cal);
	free(t1);
	free(t2);
	remove_dir(dir);
}

static void test_dir_errors(void **state)
{
	struct {
		const char *second, *message;
	} cases[] = {
	        {"{\"campaign\": \"a-2024\", \"utc_offset\": \"+08:00\", \"expiry_days\": 30, "
	         "\"phases\": [" PHASES_2025 "], \"forms\": {" FORMS_2025 "}}",
	         "2.json: /campaign: campaign 'a-2024' is loaded twice"},
	        {"{\"campaign\": \"b\", \"utc_offset\": \"+07:00\", \"expiry_days\": 30, "
	         "\"phases\": [" PHASES_2025 "], \"forms\": {" FORMS_2025 "}}",
	         "2.json: /utc_offset: differs from campaign 'a-2024'"},
	        {"{\"campaign\": \"b\", \"utc_offset\": \"+08:00\", \"expiry_days\": 30, "
	         "\"phases\": [{\"id\": \"2024-P3\", \"start\": \"2025-03-01\", "
	         "\"end\": \"2025-06-30\"}], \"forms\": {\"summary\": {\"period_type\": "
	         "\"phase\", \"required_in\": [\"2024-P3\"], \"due\": \"phase_end\"}}}",
	         "2.json: /phases/0: phase id '2024-P3' is also a phase of campaign 'a-2024'"},
	        {"{\"campaign\": \"b\", \"utc_offset\": \"+08:00\", \"expiry_days\": 30, "
	         "\"phases\": [" PHASES_2025 "], \"forms\": {\"incident\": {\"period_type\": "
	         "\"monthly\", \"from\": \"2025-03\", \"to\": \"2025-04\", \"due\": "
	         "\"month_end\"}}}",
	         "2.json: /forms/incident: has another period type in campaign 'a-2024'"},
	        {"{\"campaign\": \"b\", \"utc_offset\": \"+08:00\", \"expiry_days\": 30, "
	         "\"phases\": [{\"id\": \"2024-P9\", \"start\": \"2024-11-01\", "
	         "\"end\": \"2025-02-28\"}], \"forms\": {\"rectification\": {\"period_type\": "
	         "\"monthly\", \"from\": \"2024-11\", \"to\": \"2025-02\", \"due\": "
	         "\"month_end\"}}}",
	         "2.json: /forms/rectification: periods 2024-11 to 2024-11 also belong to campaign "
	         "'a-2024'"},
	        {"{\"campaign\": \"b\", \"utc_offset\": \"+08:00\", \"expiry_days\": 30, "
	         "\"phases\": [{\"id\": \"2024-P9\", \"start\": \"2024-11-01\", "
	         "\"end\": \"2025-02-28\"}], \"forms\": {" FORMS_2025 "}}",
	         "2.json: /forms/screening: 'required_in': '2025-P1' is not a phase"},
	        {"{\"campaign\": \"b\", \"utc_offset\": \"+08:00\", \"expiry_days\": 30, "
	         "\"phases\": [{\"id\": \"2024-P9\", \"start\": \"2024-10-01\", "
	         "\"end\": \"2025-02-28\"}], \"forms\": {\"incident\": {\"period_type\": "
	         "\"event\", \"period_from\": \"occurred_on\", \"report_within_days\": 1, "
	         "\"receive_within_days\": 1}}}",
	         "2.json: /forms/incident: periods 2024-10 to 2024-11 also belong to campaign "
	         "'a-2024'"},
	        {"not json", "2.json: not valid JSON"},
	};
	struct calendar *cal = (struct calendar *)&cal;
	char err[512], *dir, *t1, *path;

	(void)state;
	t1 = doc("a-2024", "", PHASES_2024, FORMS_2024);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		dir = make_dir();
		write_file(dir, "1.json", t1);
		write_file(dir, "2.json", cases[i].second);
		err[0] = '\0';
		if (calendar_load_dir(dir, &cal, err, sizeof(err)) != -EINVAL ||
		    !strstr(err, cases[i].message))
			fail_msg("case %zu:\n  err: %s\n  want: %s", i, err, cases[i].message);
		assert_ptr_equal(cal, &cal);
		remove_dir(dir);
	}

	/* an empty folder, a missing one, a folder named like a file */
	dir = make_dir();
	assert_int_equal(calendar_load_dir(dir, &cal, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no campaign files"));
	assert_true(asprintf(&path, "%s/sub.json", dir) > 0);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(calendar_load_dir(dir, &cal, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "sub.json: not a regular file"));
	assert_int_equal(calendar_load_file(path, &cal, err, sizeof(err)), -EINVAL);
	free(path);
	assert_true(asprintf(&path, "%s/missing", dir) > 0);
	assert_int_equal(calendar_load_dir(path, &cal, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "missing: cannot open the folder"));
	assert_int_equal(calendar_load_file(path, &cal, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "missing: cannot open"));
	free(path);
	assert_ptr_equal(cal, &cal);
	remove_dir(dir);

	/* too many files */
	dir = make_dir();
	for (int i = 0; i <= CALENDAR_FILES_MAX; i++) {
		char name[32];

		snprintf(name, sizeof(name), "%03d.json", i);
		write_file(dir, name, "{}");
	}
	assert_int_equal(calendar_load_dir(dir, &cal, err, sizeof(err)), -EMSGSIZE);
	assert_non_null(strstr(err, "more than 64 campaign files"));
	remove_dir(dir);
	free(t1);
}

/* Queries on one shared calendar from several threads (ThreadSanitizer would flag a hidden
 * write; here each thread checks its answers). */
static void *query_thread(void *arg)
{
	const struct calendar *cal = arg;
	struct calendar_due *list;
	struct date due;
	size_t n;

	for (int i = 0; i < 2000; i++) {
		if (calendar_due_date(cal, "rectification", "2024-06", &due) < 0 ||
		    due.month != 7 || due.day != 5)
			return (void *)1;
		if (calendar_expected(cal, NULL, NULL, NULL, &list, &n) < 0)
			return (void *)1;
		free(list);
		if (n != 13)
			return (void *)1;
	}
	return NULL;
}

static void test_threads(void **state)
{
	pthread_t threads[4];

	for (size_t i = 0; i < ARRAY_SIZE(threads); i++)
		assert_int_equal(pthread_create(&threads[i], NULL, query_thread, *state), 0);
	for (size_t i = 0; i < ARRAY_SIZE(threads); i++) {
		void *result;

		assert_int_equal(pthread_join(threads[i], &result), 0);
		assert_null(result);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_load_dir),
	        cmocka_unit_test_setup_teardown(test_forms_and_types, setup_2024, teardown_2024),
	        cmocka_unit_test_setup_teardown(test_period_check, setup_2024, teardown_2024),
	        cmocka_unit_test_setup_teardown(test_period_dates, setup_2024, teardown_2024),
	        cmocka_unit_test_setup_teardown(test_period_required, setup_2024, teardown_2024),
	        cmocka_unit_test_setup_teardown(test_due_and_deadline, setup_2024, teardown_2024),
	        cmocka_unit_test_setup_teardown(test_on_time, setup_2024, teardown_2024),
	        cmocka_unit_test_setup_teardown(test_expiry, setup_2024, teardown_2024),
	        cmocka_unit_test_setup_teardown(test_event_period, setup_2024, teardown_2024),
	        cmocka_unit_test_setup_teardown(test_event_timely, setup_2024, teardown_2024),
	        cmocka_unit_test_setup_teardown(test_expected_full, setup_2024, teardown_2024),
	        cmocka_unit_test_setup_teardown(test_expected_open_close, setup_2024,
	                                        teardown_2024),
	        cmocka_unit_test_setup_teardown(test_expected_as_of, setup_2024, teardown_2024),
	        cmocka_unit_test(test_malformed),
	        cmocka_unit_test(test_size_limit),
	        cmocka_unit_test(test_dir_two_campaigns),
	        cmocka_unit_test(test_dir_errors),
	        cmocka_unit_test_setup_teardown(test_threads, setup_2024, teardown_2024),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
