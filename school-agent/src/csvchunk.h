/* A CSV file in pieces that end at a record boundary (a line break outside quotes), so that
 * `import` decodes and parses each piece on its own and never holds the whole file: a quote
 * or a line break is a byte that never occurs inside a character in UTF-8 or GB18030.
 * Where the CSV is malformed the parser stops at the fault, before any boundary this may
 * misjudge after it. A piece ends at the last boundary once `target` bytes are read; a
 * piece with no boundary in `max` bytes (no valid record is that long) is handed out
 * whole, and the parser says what is wrong. Line breaks are counted as the CSV reader
 * counts lines (LF, CRLF or a lone CR), so that a piece's line numbers plus `lines` are
 * the file's. */
#ifndef SCHOOL_AGENT_CSVCHUNK_H
#define SCHOOL_AGENT_CSVCHUNK_H

#include <stddef.h>

#include "common/buf.h"
#include "common/macro.h"

#define CSVCHUNK_READ (256u * 1024)   /* bytes read from the file at a time */
#define CSVCHUNK_TARGET (512u * 1024) /* a piece ends at the last record boundary past this */
/* a piece without a boundary ends here: any valid record of import is smaller (128 quoted
 * fields of 16 KiB) */
#define CSVCHUNK_MAX (8u * 1024 * 1024)

struct csv_chunker {
	int fd;
	int own_fd;     /* opened here: closed by csv_chunker_close() */
	size_t read;    /* bytes read at a time */
	size_t target;  /* a piece ends at the last boundary past this */
	size_t max;     /* ... or here without one */
	struct buf raw; /* read, not yet handed out */
	size_t handed;  /* bytes of raw handed out as the current piece */
	size_t total;   /* bytes read */
	size_t lines;   /* line breaks before the current piece */
	size_t breaks;  /* ... in it */
	int eof;
};

/* Opens path with the CSVCHUNK_ sizes. -EMSGSIZE for a file over CSV_FILE_MAX bytes, or
 * -errno of open. Close with csv_chunker_close() in every case. */
int csv_chunker_open(struct csv_chunker *c, const char *path) WUR;
/* Reads fd (borrowed, left open) with the given sizes (read >= 1, target >= 1,
 * max >= target), for tests and fuzzing. Close with csv_chunker_close(). */
void csv_chunker_init_fd(struct csv_chunker *c, int fd, size_t read, size_t target, size_t max);
void csv_chunker_close(struct csv_chunker *c);

/* The next piece: 1 with it in *ret_text and *ret_len (borrowed until the next call), 0 at
 * the end of the file, -EMSGSIZE past CSV_FILE_MAX bytes, -ENOMEM or -errno of read. The
 * line breaks before it are in c->lines. */
int csv_chunker_next(struct csv_chunker *c, const char **ret_text, size_t *ret_len) WUR;

/* Adds offset to every "line N" of the message in err (a piece's lines are counted from
 * its start). */
void csv_chunker_shift_lines(char *err, size_t errlen, size_t offset);

#endif
