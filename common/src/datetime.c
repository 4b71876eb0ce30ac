/* Civil dates and RFC 3339 instants: see datetime.h. The day arithmetic is Howard
 * Hinnant's days_from_civil and civil_from_days, exact over the whole proleptic Gregorian
 * calendar: http://howardhinnant.github.io/date_algorithms.html */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/datetime.h"
#include "common/banned.h"

#define MS_PER_MIN 60000LL
#define OFFSET_MAX_MIN (23 * 60 + 59)

/* Division rounding towards negative infinity, for instants before 1970. */
static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

/* Day number and millisecond of the UTC day, without overflow for any int64 instant. */
static void split_day(int64_t ms, int64_t *ret_days, int64_t *ret_rem)
{
	int64_t days = ms / DATETIME_MS_PER_DAY, rem = ms % DATETIME_MS_PER_DAY;

	if (rem < 0) {
		rem += DATETIME_MS_PER_DAY;
		days--;
	}
	*ret_days = days;
	*ret_rem = rem;
}

int64_t date_to_days(const struct date *d)
{
	int64_t y = d->year - (d->month <= 2);
	int64_t era = floor_div(y, 400);
	int64_t yoe = y - era * 400;
	int64_t mp = (d->month + 9) % 12; /* March is 0 */
	int64_t doy = (153 * mp + 2) / 5 + d->day - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

void date_from_days(int64_t days, struct date *ret)
{
	int64_t z = days + 719468;
	int64_t era = floor_div(z, 146097);
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int64_t month = mp < 10 ? mp + 3 : mp - 9;

	ret->day = (int)(doy - (153 * mp + 2) / 5 + 1);
	ret->month = (int)month;
	ret->year = (int)(yoe + era * 400 + (month <= 2));
}

static int is_leap_year(int year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int date_days_in_month(int year, int month)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	if (month < 1 || month > 12)
		return 0;
	if (month == 2 && is_leap_year(year))
		return 29;
	return days[month - 1];
}

int date_compare(const struct date *a, const struct date *b)
{
	if (a->year != b->year)
		return a->year < b->year ? -1 : 1;
	if (a->month != b->month)
		return a->month < b->month ? -1 : 1;
	if (a->day != b->day)
		return a->day < b->day ? -1 : 1;
	return 0;
}

static void put_digits(char *out, unsigned value, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		out[i] = (char)('0' + value % 10);
		value /= 10;
	}
}

void date_format(const struct date *d, char out[static 11])
{
	int year = d->year < 0 ? 0 : d->year > 9999 ? 9999 : d->year;
	int month = d->month < 0 ? 0 : d->month > 99 ? 99 : d->month;
	int day = d->day < 0 ? 0 : d->day > 99 ? 99 : d->day;

	put_digits(out, (unsigned)year, 4);
	out[4] = '-';
	put_digits(out + 5, (unsigned)month, 2);
	out[7] = '-';
	put_digits(out + 8, (unsigned)day, 2);
	out[10] = '\0';
}

/* n ASCII digits at s (locale-independent: isdigit would accept more in some locales). */
static int read_digits(const char *s, int n, int *ret)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*ret = v;
	return 0;
}

int datetime_parse_date(const char *s, size_t len, struct date *ret)
{
	struct date d;

	if (!s || len != 10 || s[4] != '-' || s[7] != '-')
		return -EINVAL;
	if (read_digits(s, 4, &d.year) < 0 || read_digits(s + 5, 2, &d.month) < 0 ||
	    read_digits(s + 8, 2, &d.day) < 0)
		return -EINVAL;
	if (d.year < 1 || d.month < 1 || d.month > 12 || d.day < 1 ||
	    d.day > date_days_in_month(d.year, d.month))
		return -EINVAL;
	*ret = d;
	return 0;
}

int datetime_parse_rfc3339(const char *s, size_t len, int64_t *ret_ms, int *ret_offset_min)
{
	struct date d;
	int hour, minute, second, frac_ms = 0, offset_min, oh, om;
	size_t i;
	int64_t ms;

	/* "YYYY-MM-DDTHH:MM:SS" then at least "Z" */
	if (!s || len < 20)
		return -EINVAL;
	if (datetime_parse_date(s, 10, &d) < 0)
		return -EINVAL;
	if ((s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
		return -EINVAL;
	if (read_digits(s + 11, 2, &hour) < 0 || read_digits(s + 14, 2, &minute) < 0 ||
	    read_digits(s + 17, 2, &second) < 0)
		return -EINVAL;
	if (hour > 23 || minute > 59 || second > 60)
		return -EINVAL;

	i = 19;
	if (s[i] == '.') {
		size_t digits = 0;

		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
			if (digits < 3)
				frac_ms = frac_ms * 10 + (s[i] - '0');
		}
		if (digits == 0)
			return -EINVAL;
		for (; digits < 3; digits++)
			frac_ms *= 10;
	}

	if (i >= len)
		return -EINVAL;
	if (s[i] == 'Z' || s[i] == 'z') {
		offset_min = 0;
		i++;
	} else if (s[i] == '+' || s[i] == '-') {
		if (len - i < 6 || s[i + 3] != ':')
			return -EINVAL;
		if (read_digits(s + i + 1, 2, &oh) < 0 || read_digits(s + i + 4, 2, &om) < 0)
			return -EINVAL;
		if (oh > 23 || om > 59)
			return -EINVAL;
		offset_min = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
		i += 6;
	} else {
		return -EINVAL;
	}
	if (i != len)
		return -EINVAL;

	if (second == 60) {
		/* A leap second exists only as 23:59:60 UTC. POSIX time has no room for it:
		 * it is read as the last millisecond of 23:59:59, so it stays in its own day. */
		int utc_min = ((hour * 60 + minute - offset_min) % 1440 + 1440) % 1440;

		if (utc_min != 23 * 60 + 59)
			return -EINVAL;
		second = 59;
		frac_ms = 999;
	}

	ms = date_to_days(&d) * DATETIME_MS_PER_DAY +
	     ((int64_t)hour * 3600 + minute * 60 + second) * 1000 + frac_ms -
	     (int64_t)offset_min * MS_PER_MIN;
	*ret_ms = ms;
	if (ret_offset_min)
		*ret_offset_min = offset_min;
	return 0;
}

void datetime_format_rfc3339(int64_t ms, int offset_min, char out[static DATETIME_RFC3339_MAX])
{
	struct date d;
	int64_t days, rem;
	int n, hour, minute, second, millis;
	char offset[8];

	if (offset_min < -OFFSET_MAX_MIN || offset_min > OFFSET_MAX_MIN)
		offset_min = 0;
	/* Split first, then shift by the offset: no overflow for any int64 instant. */
	split_day(ms, &days, &rem);
	rem += (int64_t)offset_min * MS_PER_MIN;
	if (rem < 0) {
		rem += DATETIME_MS_PER_DAY;
		days--;
	} else if (rem >= DATETIME_MS_PER_DAY) {
		rem -= DATETIME_MS_PER_DAY;
		days++;
	}
	date_from_days(days, &d);
	hour = (int)(rem / 3600000);
	minute = (int)(rem / MS_PER_MIN % 60);
	second = (int)(rem / 1000 % 60);
	millis = (int)(rem % 1000);

	if (offset_min == 0)
		snprintf(offset, sizeof(offset), "Z");
	else
		snprintf(offset, sizeof(offset), "%c%02d:%02d", offset_min < 0 ? '-' : '+',
		         abs(offset_min) / 60, abs(offset_min) % 60);
	n = snprintf(out, DATETIME_RFC3339_MAX, "%04d-%02d-%02dT%02d:%02d:%02d", d.year, d.month,
	             d.day, hour, minute, second);
	if (n < 0 || n >= DATETIME_RFC3339_MAX)
		return;
	if (millis)
		snprintf(out + n, (size_t)(DATETIME_RFC3339_MAX - n), ".%03d%s", millis, offset);
	else
		snprintf(out + n, (size_t)(DATETIME_RFC3339_MAX - n), "%s", offset);
}

void datetime_local_date(int64_t ms, int offset_min, struct date *ret)
{
	int64_t days, rem;

	split_day(ms, &days, &rem);
	rem += (int64_t)offset_min * MS_PER_MIN;
	date_from_days(days + floor_div(rem, DATETIME_MS_PER_DAY), ret);
}

int64_t datetime_day_start(const struct date *d, int offset_min)
{
	return date_to_days(d) * DATETIME_MS_PER_DAY - (int64_t)offset_min * MS_PER_MIN;
}

int64_t datetime_day_end(const struct date *d, int offset_min)
{
	return (date_to_days(d) + 1) * DATETIME_MS_PER_DAY - (int64_t)offset_min * MS_PER_MIN;
}
