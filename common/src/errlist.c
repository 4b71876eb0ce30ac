/* Bounded list of validation problems: see errlist.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/errlist.h"
#include "common/banned.h"

void errlist_init(struct errlist *l)
{
	memset(l, 0, sizeof(*l));
}

void errlist_release(struct errlist *l)
{
	for (size_t i = 0; i < l->count; i++) {
		free(l->entries[i].pointer);
		free(l->entries[i].keyword);
		free(l->entries[i].message);
	}
	free(l->entries);
	errlist_init(l);
}

static char *copy_bounded(const char *s, size_t max)
{
	size_t n = strlen(s);
	char *p;

	if (n <= max)
		return strdup(s);
	p = malloc(max + 1);
	if (!p)
		return NULL;
	/* cut at a UTF-8 character boundary, then mark the cut */
	n = max - 3;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	memcpy(p, s, n);
	memcpy(p + n, "...", 4);
	return p;
}

int errlist_add(struct errlist *l, enum errlist_severity severity, const char *pointer,
                const char *keyword, const char *fmt, ...)
{
	struct errlist_entry *e;
	char message[ERRLIST_MESSAGE_MAX + 3]; /* 3 bytes to see past the cut */
	va_list ap;
	size_t cut;
	int n;

	if (severity == ERRLIST_ERROR)
		l->errors++;
	else
		l->warnings++;
	if (l->count >= ERRLIST_MAX)
		return 0;
	if (!l->entries) {
		l->entries = calloc(ERRLIST_MAX, sizeof(*l->entries));
		if (!l->entries)
			return -ENOMEM;
	}
	va_start(ap, fmt);
	n = vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (n < 0) {
		message[0] = '\0';
	} else if (n >= ERRLIST_MESSAGE_MAX) {
		/* keep at most ERRLIST_MESSAGE_MAX - 1 bytes, cut at a UTF-8 character boundary:
		 * messages end up in JSON answers */
		cut = ERRLIST_MESSAGE_MAX - 1;
		while (cut > 0 && ((unsigned char)message[cut] & 0xC0) == 0x80)
			cut--;
		message[cut] = '\0';
	}

	e = &l->entries[l->count];
	e->severity = severity;
	e->pointer = copy_bounded(pointer ? pointer : "", ERRLIST_POINTER_MAX);
	e->keyword = strdup(keyword ? keyword : "");
	e->message = strdup(message);
	if (!e->pointer || !e->keyword || !e->message) {
		free(e->pointer);
		free(e->keyword);
		free(e->message);
		return -ENOMEM;
	}
	l->count++;
	return 0;
}

int errlist_prefix_pointers(struct errlist *l, size_t first, const char *prefix)
{
	for (size_t i = first; i < l->count; i++) {
		char *old = l->entries[i].pointer, *joined;
		size_t a = strlen(prefix), b = strlen(old);

		joined = malloc(a + b + 1);
		if (!joined)
			return -ENOMEM;
		memcpy(joined, prefix, a);
		memcpy(joined + a, old, b + 1);
		l->entries[i].pointer = copy_bounded(joined, ERRLIST_POINTER_MAX);
		free(joined);
		if (!l->entries[i].pointer) {
			l->entries[i].pointer = old;
			return -ENOMEM;
		}
		free(old);
	}
	return 0;
}

int errlist_format(const struct errlist *l, const char *prefix, struct buf *out)
{
	size_t dropped = l->errors + l->warnings - l->count;
	int r;

	for (size_t i = 0; i < l->count; i++) {
		const struct errlist_entry *e = &l->entries[i];

		r = buf_printf(out, "%s%s%s: %s (%s)\n", prefix ? prefix : "",
		               e->severity == ERRLIST_WARNING ? "warning: " : "",
		               e->pointer[0] ? e->pointer : "(document)", e->message, e->keyword);
		if (r < 0)
			return r;
	}
	if (dropped) {
		r = buf_printf(out, "%s... and %zu more\n", prefix ? prefix : "", dropped);
		if (r < 0)
			return r;
	}
	return 0;
}
