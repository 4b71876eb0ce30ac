/* Calendar dates and instants without the C library's time zone machinery.
 * Instants are milliseconds since the Unix epoch (UTC). A local date is a civil date in
 * a fixed UTC offset (the campaign runs in Asia/Shanghai, UTC+08:00 all year: China
 * has no daylight saving time since 1991). Parsers are strict RFC 3339 (section 5.6),
 * never read past len, and need no NUL terminator. Thread-safe. */
#ifndef COMMON_DATETIME_H
#define COMMON_DATETIME_H

#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

#define DATETIME_SHANGHAI_OFFSET_MIN 480
#define DATETIME_MS_PER_DAY 86400000LL

struct date {
	int year;  /* 1..9999 */
	int month; /* 1..12 */
	int day;   /* 1..31 */
};

/* Days since 1970-01-01 of a valid civil date (proleptic Gregorian). */
int64_t date_to_days(const struct date *d);
void date_from_days(int64_t days, struct date *ret);
int date_days_in_month(int year, int month);
/* <0, 0, >0 like strcmp. */
int date_compare(const struct date *a, const struct date *b);
/* "YYYY-MM-DD", into out of at least 11 bytes. */
void date_format(const struct date *d, char out[static 11]);

/* RFC 3339 full-date "YYYY-MM-DD" with a day that exists in that month.
 * -EINVAL otherwise. */
int datetime_parse_date(const char *s, size_t len, struct date *ret) WUR;

/* RFC 3339 date-time: "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)", 'T'/'Z' in either
 * case, a leap second (:60) accepted only at 23:59:60 UTC and read as 23:59:59.999 UTC
 * (POSIX time has no leap seconds; it stays in its own day). Fractions below a millisecond
 * are dropped. ret_offset_min (may be NULL) receives the written offset. -EINVAL otherwise. */
int datetime_parse_rfc3339(const char *s, size_t len, int64_t *ret_ms, int *ret_offset_min) WUR;

/* "2024-05-03T09:12:00+08:00" (milliseconds appear only when not zero; offset 0 is "Z",
 * and an offset beyond +-23:59 is ignored: UTC), into out of at least
 * DATETIME_RFC3339_MAX bytes. */
#define DATETIME_RFC3339_MAX 40
void datetime_format_rfc3339(int64_t ms, int offset_min, char out[static DATETIME_RFC3339_MAX]);

/* The local date of an instant at the given UTC offset. */
void datetime_local_date(int64_t ms, int offset_min, struct date *ret);
/* The first instant of a local date, and the first instant after it (the end of that
 * day, exclusive: a deadline on day D is met by any instant < datetime_day_end(D)). */
int64_t datetime_day_start(const struct date *d, int offset_min);
int64_t datetime_day_end(const struct date *d, int offset_min);

#endif
