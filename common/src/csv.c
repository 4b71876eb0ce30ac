/* CSV records from spreadsheet files: see csv.h. */
#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/csv.h"
#include "common/banned.h"

#define UTF8_BOM "\xef\xbb\xbf"

/* Bytes of the valid UTF-8 sequence at s (at most len bytes), or 0 when there is none:
 * overlong forms, surrogates and code points past U+10FFFF are invalid (RFC 3629). */
static size_t utf8_sequence(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* The line and character column (both from 1) of offset off in the len bytes of text,
 * counting line breaks as the reader does (LF, CRLF, lone CR). */
static void locate(const char *text, size_t len, size_t off, size_t *ret_line, size_t *ret_col)
{
	size_t line = 1, col = 1;

	for (size_t i = 0; i < off && i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c == '\r' && i + 1 < len && text[i + 1] == '\n')
			continue; /* the LF of a CRLF ends the line */
		if (c == '\n' || c == '\r') {
			line++;
			col = 1;
		} else if ((c & 0xc0) != 0x80) {
			col++;
		}
	}
	*ret_line = line;
	*ret_col = col;
}

/* Checks that text is UTF-8 without NUL bytes; 0, or -EILSEQ with the place in err. */
static int check_utf8(const char *text, size_t len, char *err, size_t errlen)
{
	size_t i = 0, line, col;

	while (i < len) {
		size_t n = utf8_sequence((const unsigned char *)text + i, len - i);

		if (n == 0 || text[i] == '\0') {
			locate(text, len, i, &line, &col);
			snprintf(err, errlen, "line %zu, column %zu: %s", line, col,
			         n == 0 ? "not valid UTF-8 (give the file's encoding)"
			                : "a NUL byte");
			return -EILSEQ;
		}
		i += n;
	}
	return 0;
}

static int decode_gb18030(const char *in, size_t len, struct buf *out, char *err, size_t errlen)
{
	size_t start = out->len, line, col;
	char chunk[16 * 1024];
	char *inp = (char *)in; /* iconv's prototype is not const-correct; it does not write */
	size_t inleft = len;
	iconv_t cd;
	int r = 0;

	cd = iconv_open("UTF-8", "GB18030");
	if (cd == (iconv_t)-1) {
		snprintf(err, errlen, "this system cannot convert GB18030");
		return -EIO;
	}
	while (inleft > 0) {
		char *outp = chunk;
		size_t outleft = sizeof(chunk), n;
		int e;

		n = iconv(cd, &inp, &inleft, &outp, &outleft);
		e = errno;
		r = buf_append(out, chunk, sizeof(chunk) - outleft);
		if (r < 0)
			goto fail;
		if (n == (size_t)-1 && e != E2BIG) {
			/* what was converted is exactly the text before the bad sequence */
			locate(out->data ? out->data + start : "", out->len - start,
			       out->len - start, &line, &col);
			snprintf(err, errlen, "line %zu, column %zu: %s", line, col,
			         e == EINVAL ? "the file ends inside a character"
			                     : "not valid GB18030 (give the file's encoding)");
			r = -EILSEQ;
			goto fail;
		}
	}
	/* GB18030 spells U+FEFF as 84 31 95 33: drop it as a UTF-8 BOM is dropped */
	if (out->len - start >= 3 && memcmp(out->data + start, UTF8_BOM, 3) == 0) {
		memmove(out->data + start, out->data + start + 3, out->len - start - 3);
		out->len -= 3;
		out->data[out->len] = '\0';
	}
	iconv_close(cd);
	return 0;
fail:
	iconv_close(cd);
	out->len = start;
	if (out->data)
		out->data[start] = '\0';
	return r;
}

int csv_decode(const char *in, size_t len, enum csv_encoding enc, struct buf *out,
               enum csv_encoding *ret_used, char *err, size_t errlen)
{
	size_t start = out->len;
	int has_bom = len >= 3 && memcmp(in, UTF8_BOM, 3) == 0;
	int r;

	if (len > CSV_FILE_MAX) {
		snprintf(err, errlen, "the file is larger than %u bytes", CSV_FILE_MAX);
		return -EMSGSIZE;
	}
	if (enc == CSV_ENCODING_AUTO)
		enc = has_bom || check_utf8(in, len, NULL, 0) == 0 ? CSV_ENCODING_UTF8
		                                                   : CSV_ENCODING_GB18030;
	if (enc == CSV_ENCODING_GB18030) {
		r = decode_gb18030(in, len, out, err, errlen);
		if (r < 0)
			return r;
		r = check_utf8(out->data ? out->data + start : "", out->len - start, err, errlen);
		if (r < 0)
			goto fail;
	} else {
		if (has_bom) {
			in += 3;
			len -= 3;
		}
		r = check_utf8(in, len, err, errlen);
		if (r < 0)
			return r;
		r = buf_append(out, in, len);
		if (r < 0) {
			snprintf(err, errlen, "the text does not fit in memory");
			return r;
		}
	}
	if (ret_used)
		*ret_used = enc;
	return 0;
fail:
	out->len = start;
	if (out->data)
		out->data[start] = '\0';
	return r;
}

int csv_reader_init(struct csv_reader *ret, const char *text, size_t len,
                    const struct csv_limits *limits)
{
	static const struct csv_limits defaults = CSV_LIMITS_DEFAULT;
	struct csv_reader r = {0};

	if (!limits)
		limits = &defaults;
	if (limits->max_line == 0 || limits->max_field == 0 || limits->max_fields == 0 ||
	    limits->max_records == 0 || limits->max_fields > SIZE_MAX / 16 / sizeof(size_t) ||
	    limits->max_field > SIZE_MAX / 16 / limits->max_fields)
		return -EINVAL;
	r.text = text;
	r.len = len;
	r.line = 1;
	r.limits = *limits;
	r.data = malloc(sizeof(*r.data));
	r.offsets = calloc(limits->max_fields, sizeof(*r.offsets));
	r.lengths = calloc(limits->max_fields, sizeof(*r.lengths));
	r.fields = calloc(limits->max_fields, sizeof(*r.fields));
	if (!r.data || !r.offsets || !r.lengths || !r.fields) {
		csv_reader_release(&r);
		return -ENOMEM;
	}
	buf_init(r.data, limits->max_fields * (limits->max_field + 1));
	*ret = r;
	return 0;
}

void csv_reader_release(struct csv_reader *r)
{
	if (r->data)
		buf_release(r->data);
	free(r->data);
	free(r->offsets);
	free(r->lengths);
	free(r->fields);
	r->data = NULL;
	r->offsets = r->lengths = NULL;
	r->fields = NULL;
}

static size_t column_at(const struct csv_reader *r, size_t pos)
{
	size_t col = 1;

	for (size_t i = r->line_start; i < pos && i < r->len; i++)
		if (((unsigned char)r->text[i] & 0xc0) != 0x80)
			col++;
	return col;
}

static int fail_at(struct csv_reader *r, size_t pos, int code, char *err, size_t errlen,
                   const char *what)
{
	snprintf(err, errlen, "line %zu, column %zu: %s", r->line, column_at(r, pos), what);
	r->failed = code;
	return code;
}

/* Consumes the line break at pos (LF, CRLF or CR) and starts a new line. */
static void next_line(struct csv_reader *r)
{
	if (r->text[r->pos] == '\r' && r->pos + 1 < r->len && r->text[r->pos + 1] == '\n')
		r->pos++;
	r->pos++;
	r->line++;
	r->line_start = r->pos;
}

/* Appends the n bytes at pos to the current field, which started at offset field_start of
 * data, and moves pos past them. */
static int take(struct csv_reader *r, size_t n, size_t field_start, char *err, size_t errlen)
{
	char what[96];
	int e;

	if (r->pos + n - r->line_start > r->limits.max_line) {
		snprintf(what, sizeof(what), "the line is longer than %zu bytes",
		         r->limits.max_line);
		return fail_at(r, r->line_start + r->limits.max_line, -EMSGSIZE, err, errlen, what);
	}
	if (r->data->len - field_start + n > r->limits.max_field) {
		snprintf(what, sizeof(what), "a field longer than %zu bytes", r->limits.max_field);
		/* point at the first byte past the limit */
		return fail_at(r, r->pos + (r->limits.max_field - (r->data->len - field_start)),
		               -EMSGSIZE, err, errlen, what);
	}
	e = buf_append(r->data, r->text + r->pos, n);
	if (e < 0)
		return fail_at(r, r->pos, e, err, errlen, "out of memory");
	r->pos += n;
	return 0;
}

static int read_quoted(struct csv_reader *r, size_t field_start, char *err, size_t errlen)
{
	size_t open_line = r->line, open_col = column_at(r, r->pos);
	char what[128];
	int e;

	r->pos++; /* the opening quote */
	for (;;) {
		size_t end = r->pos;

		while (end < r->len && r->text[end] != '"' && r->text[end] != '\r' &&
		       r->text[end] != '\n')
			end++;
		e = take(r, end - r->pos, field_start, err, errlen);
		if (e < 0)
			return e;
		if (r->pos >= r->len) {
			snprintf(what, sizeof(what),
			         "the quoted field opened at line %zu, column %zu is never closed",
			         open_line, open_col);
			return fail_at(r, r->pos, -EBADMSG, err, errlen, what);
		}
		if (r->text[r->pos] == '"') {
			if (r->pos + 1 < r->len && r->text[r->pos + 1] == '"') {
				/* a doubled quote is one quote */
				e = take(r, 1, field_start, err, errlen);
				if (e < 0)
					return e;
				r->pos++;
				continue;
			}
			r->pos++;
			break;
		}
		/* a line break inside the field is kept as one LF */
		if (r->data->len - field_start + 1 > r->limits.max_field) {
			snprintf(what, sizeof(what), "a field longer than %zu bytes",
			         r->limits.max_field);
			return fail_at(r, r->pos, -EMSGSIZE, err, errlen, what);
		}
		e = buf_putc(r->data, '\n');
		if (e < 0)
			return fail_at(r, r->pos, e, err, errlen, "out of memory");
		next_line(r);
	}
	if (r->pos < r->len && r->text[r->pos] != ',' && r->text[r->pos] != '\r' &&
	    r->text[r->pos] != '\n')
		return fail_at(r, r->pos, -EBADMSG, err, errlen,
		               "text after the closing quote of a field (a quote inside a quoted "
		               "field is written twice: \"\")");
	return 0;
}

static int read_unquoted(struct csv_reader *r, size_t field_start, char *err, size_t errlen)
{
	size_t end = r->pos;

	while (end < r->len && r->text[end] != ',' && r->text[end] != '\r' &&
	       r->text[end] != '\n') {
		if (r->text[end] == '"') {
			int e = take(r, end - r->pos, field_start, err, errlen);

			if (e < 0)
				return e;
			return fail_at(r, end, -EBADMSG, err, errlen,
			               "a quote inside an unquoted field (quote the whole field "
			               "and write the quote twice)");
		}
		end++;
	}
	return take(r, end - r->pos, field_start, err, errlen);
}

int csv_read(struct csv_reader *r, struct csv_record *ret, char *err, size_t errlen)
{
	size_t count = 0, line = r->line;
	char what[96];
	int e;

	if (r->failed) {
		snprintf(err, errlen, "line %zu: the reader stopped at an earlier error", r->line);
		return r->failed;
	}
	if (r->pos >= r->len)
		return 0;
	if (r->records >= r->limits.max_records) {
		snprintf(what, sizeof(what), "more than %zu records", r->limits.max_records);
		return fail_at(r, r->pos, -EMSGSIZE, err, errlen, what);
	}
	buf_reset(r->data);
	for (;;) {
		size_t field_start = r->data->len;

		if (count == r->limits.max_fields) {
			snprintf(what, sizeof(what), "more than %zu fields", r->limits.max_fields);
			return fail_at(r, r->pos, -EMSGSIZE, err, errlen, what);
		}
		if (r->pos < r->len && r->text[r->pos] == '"')
			e = read_quoted(r, field_start, err, errlen);
		else
			e = read_unquoted(r, field_start, err, errlen);
		if (e < 0)
			return e;
		r->offsets[count] = field_start;
		r->lengths[count] = r->data->len - field_start;
		e = buf_putc(r->data, '\0');
		if (e < 0)
			return fail_at(r, r->pos, e, err, errlen, "out of memory");
		count++;
		if (r->pos >= r->len)
			break;
		if (r->text[r->pos] == ',') {
			r->pos++;
			continue;
		}
		next_line(r);
		break;
	}
	for (size_t i = 0; i < count; i++)
		r->fields[i] = r->data->data + r->offsets[i];
	r->records++;
	ret->line = line;
	ret->count = count;
	ret->fields = r->fields;
	ret->lengths = r->lengths;
	return 1;
}
