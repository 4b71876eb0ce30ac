/* libFuzzer target: arbitrary bytes as a campaign calendar file. Loading must fail cleanly
 * or give a calendar whose every query answers without crashing. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/calendar.h"
#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void query(const struct calendar *cal)
{
	static const char *const forms[] = {
	        "screening", "summary", "rectification", "incident", "s", "m", "e", "a"};
	static const char *const periods[] = {"2024-P1", "2024-P2", "2024-P3",  "2024-03",
	                                      "2024-06", "2024-11", "2024-12",  "2024-13",
	                                      "0001-01", "9999-12", "9999-P99", "0001-P1"};
	struct date d = {2024, 5, 2}, d2 = {2024, 5, 3}, start, end, due;
	char period[CALENDAR_PERIOD_MAX];
	enum calendar_period_type type;
	struct calendar_due *list;
	const char *field;
	int64_t ms;
	size_t n;

	(void)calendar_utc_offset_min(cal);
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		(void)calendar_form_known(cal, forms[i]);
		(void)!calendar_period_type(cal, forms[i], &type);
		(void)!calendar_event_field(cal, forms[i], &field);
		(void)!calendar_event_period(cal, forms[i], &d, period);
		for (size_t j = 0; j < sizeof(periods) / sizeof(periods[0]); j++) {
			const char *p = periods[j];

			(void)!calendar_period_check(cal, forms[i], p);
			(void)!calendar_period_dates(cal, forms[i], p, &start, &end);
			(void)!calendar_period_required(cal, forms[i], p);
			(void)!calendar_due_date(cal, forms[i], p, &due);
			(void)!calendar_deadline_ms(cal, forms[i], p, &ms);
			(void)!calendar_is_on_time(cal, forms[i], p, 0);
			(void)!calendar_expiry_ms(cal, forms[i], p, &ms);
			(void)!calendar_is_expired(cal, forms[i], p, 0);
			(void)!calendar_event_timely(cal, forms[i], p, &d, &d2, 0);
		}
	}
	if (calendar_expected(cal, NULL, NULL, NULL, &list, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			/* every expected period is a valid, required period of its form */
			if (calendar_period_check(cal, list[i].form, list[i].period) != 0 ||
			    calendar_period_required(cal, list[i].form, list[i].period) != 1)
				abort();
			if (list[i].expiry_ms < list[i].deadline_ms)
				abort();
		}
		free(list);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct calendar *cal;
	char err[256];

	if (calendar_load_buffer((const char *)data, size, "fuzz.json", &cal, err, sizeof(err)) <
	    0) {
		if (!memchr(err, '\0', sizeof(err)))
			abort();
		return 0;
	}
	query(cal);
	calendar_free(cal);
	return 0;
}
