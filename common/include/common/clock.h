/* The one source of "now" for every program (DESIGN section 6).
 * RETURNS_CLOCK unset or empty: the real clock. "INSTANT" (RFC 3339): a fixed clock that
 * never moves. "INSTANT xFACTOR": starts at INSTANT when clock_init runs and goes FACTOR
 * times faster than real time (x86400 makes a real second a campaign day).
 * "INSTANT xFACTOR @SECONDS": the same, anchored: the clock read INSTANT at the real Unix
 * time SECONDS (decimals allowed), so processes started at different moments (the demo's
 * hubs, region and simulated schools) share one timeline.
 * A struct clock is read-only after init and safe to share between threads. */
#ifndef COMMON_CLOCK_H
#define COMMON_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

struct clock {
	int64_t start_ms;      /* the clock's reading at init */
	int64_t real_start_ns; /* CLOCK_MONOTONIC at init */
	double factor;         /* 0: fixed; 1: real speed */
	int is_real;           /* follow CLOCK_REALTIME */
};

/* Reads spec (the value of RETURNS_CLOCK; NULL or "" means the real clock).
 * -EINVAL with a message in err for a malformed spec. */
int clock_init(struct clock *ret, const char *spec, char *err, size_t errlen) WUR;
/* clock_init(getenv("RETURNS_CLOCK")). */
int clock_init_from_env(struct clock *ret, char *err, size_t errlen) WUR;

/* Milliseconds since the Unix epoch, as this clock reads them. */
int64_t clock_now_ms(const struct clock *c);

/* How long to really wait for clock_ms of this clock's time to pass (at least 1 ms for a
 * positive wait; a fixed clock never advances, so it waits clock_ms of real time). */
int64_t clock_real_wait_ms(const struct clock *c, int64_t clock_ms);

/* Milliseconds of real time on CLOCK_MONOTONIC, from an arbitrary origin: for timeouts,
 * pacing and measured durations, which must not follow RETURNS_CLOCK nor jumps of the
 * wall clock. Never a date. */
int64_t clock_monotonic_ms(void);

#endif
