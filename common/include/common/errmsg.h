/* Caller-provided error buffers (STYLE rule 3, Redis anet's "char *err"): one way to fill
 * them, and one way to show untrusted text inside them so that it can never forge a log
 * line or run on for kilobytes. Thread-safe. */
#ifndef COMMON_ERRMSG_H
#define COMMON_ERRMSG_H

#include <stddef.h>

#include "common/macro.h"

/* Formats into err (which may be NULL or errlen 0: nothing is written) and returns r, so
 * that a failure path reads: return errmsg_set(err, errlen, -EINVAL, "bad '%s'", x); */
int errmsg_set(char *err, size_t errlen, int r, const char *fmt, ...) PRINTF_LIKE(4, 5);

/* At most 32 bytes of s, cut at a UTF-8 character boundary and ended by "..." when cut,
 * control characters shown as '?', into out; returns out. */
#define ERRMSG_QUOTE_SIZE 40
const char *errmsg_quote(const char *s, char out[static ERRMSG_QUOTE_SIZE]);

#endif
