/* Log lines on stderr: see log.h. One write(2) per line so lines from threads and
 * processes sharing stderr do not interleave. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/datetime.h"
#include "common/log.h"
#include "common/banned.h"

#define LOG_LINE_MAX 4096

/* Set once at start by log_setup(), read-only afterwards (STYLE rule 10). */
static const char *log_program = "returns";
static enum log_level log_level = LOG_LEVEL_INFO;
static const struct clock *log_clock;

static const char *const level_names[] = {
        [LOG_LEVEL_ERROR] = "error",
        [LOG_LEVEL_WARNING] = "warning",
        [LOG_LEVEL_INFO] = "info",
        [LOG_LEVEL_DEBUG] = "debug",
};

void log_setup(const char *program, enum log_level level, const struct clock *clock)
{
	log_program = program;
	log_level = level;
	log_clock = clock;
}

int log_parse_level(const char *name, enum log_level *ret)
{
	for (size_t i = 0; i < ARRAY_SIZE(level_names); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*ret = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

enum log_level log_get_level(void)
{
	return log_level;
}

static void log_write(enum log_level level, int err, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	char stamp[DATETIME_RFC3339_MAX];
	struct clock real;
	const struct clock *c = log_clock;
	size_t n;
	int k;

	if (!c) {
		real.is_real = 1;
		real.factor = 1;
		real.start_ms = 0;
		real.real_start_ns = 0;
		c = &real;
	}
	datetime_format_rfc3339(clock_now_ms(c), DATETIME_SHANGHAI_OFFSET_MIN, stamp);
	k = snprintf(line, sizeof(line), "%s %s[%ld] %s: ", stamp, log_program, (long)getpid(),
	             level_names[level]);
	n = k < 0 ? 0 : (size_t)k;
	if (n < sizeof(line)) {
		k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		n += k < 0 ? 0 : (size_t)k;
	}
	if (err && n < sizeof(line)) {
		k = snprintf(line + n, sizeof(line) - n, ": %s", strerror(err));
		n += k < 0 ? 0 : (size_t)k;
	}
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* a failed log write has nowhere to be reported */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	log_write(level, 0, fmt, ap);
	va_end(ap);
}

int log_errno_at(enum log_level level, int err, const char *fmt, ...)
{
	va_list ap;

	if (err < 0)
		err = -err;
	if (level <= log_level) {
		va_start(ap, fmt);
		log_write(level, err, fmt, ap);
		va_end(ap);
	}
	return -err;
}
