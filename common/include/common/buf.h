/* A growable byte buffer with a hard maximum set at init (curl's dynbuf "toobig").
 * The contents are always NUL-terminated (the NUL is not counted in len), so text can be
 * passed to C string functions. Not thread-safe: one owner at a time. */
#ifndef COMMON_BUF_H
#define COMMON_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "common/macro.h"

struct buf {
	char *data;   /* NULL until the first append */
	size_t len;   /* bytes used, without the terminating NUL */
	size_t alloc; /* bytes allocated */
	size_t max;   /* len may never exceed this */
};

/* An empty buffer that refuses to grow past max bytes (at most SIZE_MAX / 4). Allocates
 * nothing. */
void buf_init(struct buf *b, size_t max);
/* Frees the contents; the buffer is empty and usable again with the same max. */
void buf_release(struct buf *b);
/* Forgets the contents but keeps the allocation for reuse. */
void buf_reset(struct buf *b);

/* Appends n bytes. -EMSGSIZE when the result would exceed max (the buffer is unchanged),
 * -ENOMEM when allocation fails. */
int buf_append(struct buf *b, const void *data, size_t n) WUR;
int buf_puts(struct buf *b, const char *s) WUR;
int buf_putc(struct buf *b, char c) WUR;
int buf_printf(struct buf *b, const char *fmt, ...) PRINTF_LIKE(2, 3) WUR;
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) PRINTF_LIKE(2, 0) WUR;
/* Makes room for at least n more bytes without changing len; same errors as buf_append. */
int buf_reserve(struct buf *b, size_t n) WUR;

/* Hands the contents to the caller (caller frees with free()); the buffer becomes empty.
 * Returns NULL for a buffer that never held anything; *ret_len may be NULL. */
char *buf_detach(struct buf *b, size_t *ret_len);

#endif
