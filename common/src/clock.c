/* RETURNS_CLOCK: see clock.h. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/datetime.h"
#include "common/banned.h"

#define CLOCK_ENV "RETURNS_CLOCK"
#define CLOCK_SPEC_MAX 128
#define FACTOR_MAX 1e9
#define FACTOR_DIGITS_MAX 15
/* 9999-12-31T23:59:59.999Z: a fast clock stops there instead of overflowing. */
#define CLOCK_MAX_MS 253402300799999LL

static int64_t monotonic_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t clock_monotonic_ms(void)
{
	return monotonic_ns() / 1000000;
}

static int64_t realtime_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* "x" 1*DIGIT ["." 1*DIGIT], written without strtod so that neither the locale nor
 * "inf", "nan", hexadecimal or exponents can sneak in. */
static int parse_factor(const char *s, size_t len, double *ret)
{
	double value = 0, scale = 1;
	size_t i = 1, int_digits = 0, frac_digits = 0;

	if (len < 2 || s[0] != 'x')
		return -EINVAL;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, int_digits++)
		value = value * 10 + (s[i] - '0');
	if (i < len && s[i] == '.') {
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, frac_digits++) {
			scale /= 10;
			value += (s[i] - '0') * scale;
		}
		if (frac_digits == 0)
			return -EINVAL;
	}
	if (i != len || int_digits == 0 || int_digits + frac_digits > FACTOR_DIGITS_MAX)
		return -EINVAL;
	*ret = value;
	return 0;
}

/* "@" 1*DIGIT ["." 1*DIGIT]: real Unix seconds, into nanoseconds. */
static int parse_anchor(const char *s, size_t len, int64_t *ret_ns)
{
	int64_t sec = 0, frac_ns = 0, scale = 100000000;
	size_t i = 1, digits = 0;

	if (len < 2 || s[0] != '@')
		return -EINVAL;
	for (; i < len && s[i] >= '0' && s[i] <= '9' && digits < 12; i++, digits++)
		sec = sec * 10 + (s[i] - '0');
	if (digits == 0)
		return -EINVAL;
	if (i < len && s[i] == '.') {
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
			frac_ns += (s[i] - '0') * scale;
			scale /= 10;
		}
	}
	if (i != len)
		return -EINVAL;
	*ret_ns = sec * 1000000000LL + frac_ns;
	return 0;
}

int clock_init(struct clock *ret, const char *spec, char *err, size_t errlen)
{
	struct clock c = {0};
	size_t len, instant_len, rest, factor_len, anchor_len;
	const char *p, *anchor;
	int64_t anchor_ns = -1;

	if (!spec || !*spec) {
		c.is_real = 1;
		c.factor = 1;
		*ret = c;
		return 0;
	}
	len = strnlen(spec, CLOCK_SPEC_MAX + 1);
	if (len > CLOCK_SPEC_MAX) {
		snprintf(err, errlen, CLOCK_ENV ": longer than %d characters", CLOCK_SPEC_MAX);
		return -EINVAL;
	}
	for (instant_len = 0; instant_len < len && !is_space(spec[instant_len]); instant_len++)
		;
	if (datetime_parse_rfc3339(spec, instant_len, &c.start_ms, NULL) < 0) {
		snprintf(err, errlen,
		         CLOCK_ENV ": '%.*s' is not an RFC 3339 date-time such as "
		                   "'2024-03-01T08:00:00+08:00'",
		         (int)instant_len, spec);
		return -EINVAL;
	}
	p = spec + instant_len;
	rest = len - instant_len;
	while (rest && is_space(*p)) {
		p++;
		rest--;
	}
	for (factor_len = 0; factor_len < rest && !is_space(p[factor_len]); factor_len++)
		;
	anchor = p + factor_len;
	anchor_len = rest - factor_len;
	while (anchor_len && is_space(*anchor)) {
		anchor++;
		anchor_len--;
	}
	if ((factor_len < rest && anchor_len == 0) ||
	    (anchor_len && parse_anchor(anchor, anchor_len, &anchor_ns) < 0)) {
		snprintf(err, errlen,
		         CLOCK_ENV ": expected '@' and real Unix seconds after the factor in '%s'",
		         spec);
		return -EINVAL;
	}
	if (rest == 0 && instant_len == len) {
		c.factor = 0; /* fixed */
	} else if (parse_factor(p, factor_len, &c.factor) < 0) {
		snprintf(err, errlen,
		         CLOCK_ENV
		         ": expected 'INSTANT' or 'INSTANT xFACTOR' (e.g. x86400 or x0.5) "
		         "in '%s'",
		         spec);
		return -EINVAL;
	} else if (!(c.factor > 0) || !isfinite(c.factor) || c.factor > FACTOR_MAX) {
		snprintf(err, errlen,
		         CLOCK_ENV
		         ": the factor in '%s' must be a positive number no larger than %.0f",
		         spec, FACTOR_MAX);
		return -EINVAL;
	}
	if (c.factor > 0) {
		c.real_start_ns = monotonic_ns();
		/* anchored: the clock read INSTANT at real time @anchor, in every process */
		if (anchor_ns >= 0)
			c.real_start_ns -= realtime_ns() - anchor_ns;
	}
	*ret = c;
	return 0;
}

int clock_init_from_env(struct clock *ret, char *err, size_t errlen)
{
	return clock_init(ret, getenv(CLOCK_ENV), err, errlen);
}

int64_t clock_now_ms(const struct clock *c)
{
	struct timespec ts;
	double ms;

	if (c->is_real) {
		if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
			return 0;
		return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	}
	if (c->factor <= 0)
		return c->start_ms;
	ms = (double)c->start_ms + (double)(monotonic_ns() - c->real_start_ns) / 1e6 * c->factor;
	if (ms >= (double)CLOCK_MAX_MS)
		return CLOCK_MAX_MS;
	return (int64_t)ms;
}

int64_t clock_real_wait_ms(const struct clock *c, int64_t clock_ms)
{
	double real;

	if (clock_ms <= 0)
		return 0;
	if (c->is_real || c->factor <= 0)
		return clock_ms;
	real = ceil((double)clock_ms / c->factor);
	if (real < 1)
		return 1;
	if (real >= (double)(INT64_MAX / 2))
		return INT64_MAX / 2;
	return (int64_t)real;
}
