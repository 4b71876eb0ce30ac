/* libFuzzer target: arbitrary bytes to both RFC 3339 parsers. Accepted text must survive a
 * round trip: formatting what was parsed and parsing it again gives the same instant and
 * offset (and for a date, the same text). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/datetime.h"
#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	char out[DATETIME_RFC3339_MAX], text[11];
	struct date d, local;
	int64_t ms, ms2;
	int off, off2;

	if (datetime_parse_date(s, size, &d) == 0) {
		date_format(&d, text);
		if (size != 10 || memcmp(text, s, 10) != 0)
			abort();
		date_from_days(date_to_days(&d), &local);
		if (date_compare(&local, &d) != 0)
			abort();
	}
	if (datetime_parse_rfc3339(s, size, &ms, &off) == 0) {
		datetime_format_rfc3339(ms, off, out);
		if (datetime_parse_rfc3339(out, strlen(out), &ms2, &off2) != 0 || ms2 != ms ||
		    off2 != off)
			abort();
		/* the local date is the written one (a leap second stays in its day) */
		datetime_local_date(ms, off, &local);
		if (datetime_parse_date(s, 10, &d) != 0 || date_compare(&local, &d) != 0)
			abort();
		if (ms < datetime_day_start(&d, off) || ms >= datetime_day_end(&d, off))
			abort();
	}
	return 0;
}
