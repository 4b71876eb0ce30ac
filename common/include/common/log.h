/* Structured log lines on stderr, one per event, logfmt style:
 *   2024-05-03T09:12:00.123+08:00 county-hub[1234] info: accepted submission "0190..."
 * common/ logs at debug at most; programs log once where they decide (STYLE rule 9).
 * The level and program name are set once at start; log calls are thread-safe. */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H

#include <errno.h>
#include <stdlib.h>

#include "common/macro.h"

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

struct clock;

/* program: borrowed, must outlive logging. clock (may be NULL: real time) stamps lines. */
void log_setup(const char *program, enum log_level level, const struct clock *clock);
/* "error", "warning", "info", "debug"; -EINVAL for anything else. */
int log_parse_level(const char *name, enum log_level *ret) WUR;
enum log_level log_get_level(void);

void log_msg(enum log_level level, const char *fmt, ...) PRINTF_LIKE(2, 3);
/* Logs fmt followed by ": " and strerror(err), and returns -abs(err), so callers can
 * write: return log_errno(r, "failed to open '%s'", path); */
int log_errno_at(enum log_level level, int err, const char *fmt, ...) PRINTF_LIKE(3, 4);

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_errno(err, ...) log_errno_at(LOG_LEVEL_ERROR, (err), __VA_ARGS__)
#define log_warning_errno(err, ...) log_errno_at(LOG_LEVEL_WARNING, (err), __VA_ARGS__)

#endif
