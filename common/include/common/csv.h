/* CSV as spreadsheets save it (RFC 4180): records of comma-separated fields; a field in
 * double quotes may hold commas, line breaks and doubled quotes (""). Lines end in LF,
 * CRLF or a lone CR; a line break inside a quoted field is kept as one LF. The last record
 * may lack its line break.
 *
 * Text first goes through csv_decode(), which turns the file's bytes into UTF-8: it drops
 * a byte order mark, converts GB18030 (what Chinese Excel writes by default) with
 * iconv(3), and refuses NUL bytes and invalid sequences. The reader then splits the UTF-8
 * text into records. Both are meant for untrusted files: every size is capped (the file,
 * a physical line, a field, the fields of a record, the records of a file), and every
 * error is a negative errno with a message naming the line and column (columns count
 * characters from 1), e.g. "line 4, column 17: a quote inside an unquoted field".
 * Nothing is ever read past len. Not thread-safe: one reader per thread. */
#ifndef COMMON_CSV_H
#define COMMON_CSV_H

#include <stddef.h>

#include "common/macro.h"

struct buf;

#define CSV_FILE_MAX (16u * 1024 * 1024) /* bytes of a file that csv_decode() accepts */

enum csv_encoding {
	CSV_ENCODING_AUTO,    /* a BOM or valid UTF-8 means UTF-8, anything else GB18030 */
	CSV_ENCODING_UTF8,    /* with or without a BOM */
	CSV_ENCODING_GB18030, /* GB 18030-2005, a superset of GBK and GB2312 */
};

struct csv_limits {
	size_t max_line;    /* bytes in one physical line, without its line break */
	size_t max_field;   /* bytes in one field, after unquoting */
	size_t max_fields;  /* fields in one record */
	size_t max_records; /* records in the text, a header included */
};

#define CSV_LIMITS_DEFAULT                                                                         \
	{                                                                                          \
		.max_line = 64 * 1024, .max_field = 16 * 1024, .max_fields = 256,                  \
		.max_records = 100000                                                              \
	}

/* One record, borrowed from the reader until its next csv_read() or release. The caller
 * may change the bytes of a field in place (e.g. trim it) within its length. */
struct csv_record {
	size_t line;           /* physical line the record starts on, from 1 */
	size_t count;          /* fields, at least 1 ("" is a record of one empty field) */
	char *const *fields;   /* NUL-terminated UTF-8, without their quotes */
	const size_t *lengths; /* bytes of each field */
};

struct csv_reader {
	const char *text;
	size_t len, pos;
	size_t line;       /* physical line of pos, from 1 */
	size_t line_start; /* offset of that line's first byte */
	size_t records;    /* records returned so far */
	int failed;        /* an error was returned: every later call fails the same way */
	struct csv_limits limits;
	struct buf *data; /* the current record's fields, each followed by a NUL */
	size_t *offsets;  /* max_fields offsets into data */
	size_t *lengths;  /* max_fields lengths */
	char **fields;    /* max_fields pointers into data */
};

/* Converts len bytes of a file in encoding enc (CSV_ENCODING_AUTO: guess as described
 * above) to UTF-8 without a BOM, appended to out (whose maximum should allow for the
 * growth of conversion: GB18030 text grows by at most half). *ret_used (may be NULL)
 * receives the encoding read. Returns 0, -EMSGSIZE (len over CSV_FILE_MAX, or out is
 * full), -EILSEQ (invalid or truncated sequence, or a NUL byte; err names the line and
 * column), -ENOMEM, or -EIO when iconv cannot convert GB18030 at all. */
int csv_decode(const char *in, size_t len, enum csv_encoding enc, struct buf *out,
               enum csv_encoding *ret_used, char *err, size_t errlen) WUR;

/* A reader over len bytes of UTF-8 text (borrowed: it must outlive the reader), with
 * limits (NULL: CSV_LIMITS_DEFAULT). -EINVAL for a limit of 0, -ENOMEM. Release with
 * csv_reader_release(), also after a failed read. */
int csv_reader_init(struct csv_reader *ret, const char *text, size_t len,
                    const struct csv_limits *limits) WUR;
void csv_reader_release(struct csv_reader *r);

/* Reads the next record into *ret. Returns 1 with a record, 0 at the end of the text,
 * -EBADMSG for malformed CSV (a quote inside an unquoted field, text after a closing
 * quote, a quoted field never closed), -EMSGSIZE when a limit is exceeded, -ENOMEM; err
 * says what and where. */
int csv_read(struct csv_reader *r, struct csv_record *ret, char *err, size_t errlen) WUR;

#endif
