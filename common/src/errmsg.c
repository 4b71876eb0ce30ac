/* Error buffers: see errmsg.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/errmsg.h"
#include "common/banned.h"

int errmsg_set(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

const char *errmsg_quote(const char *s, char out[static ERRMSG_QUOTE_SIZE])
{
	size_t n = strlen(s), i;

	if (n > 32) {
		n = 32;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	for (i = 0; i < n; i++)
		out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	out[i] = '\0';
	if (n < strlen(s))
		memcpy(out + i, "...", 4);
	return out;
}
