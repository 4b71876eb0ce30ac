/* libFuzzer target: arbitrary bytes as the CSV file school-agent import reads in pieces
 * (school-agent/src/csvchunk.h), with piece sizes small enough that every input is cut.
 * The first two bytes pick the sizes; the rest is the file, given through a memfd. Checks:
 *   - the pieces, end to end, are the file;
 *   - unless a piece had to be cut without a boundary (a record longer than the largest
 *     piece, which import's sizes make longer than any valid record): the chunker's line
 *     count before each piece is the file's, and the records read piece by piece (line
 *     numbers shifted by the lines before the piece) are exactly the records read from
 *     the whole file; where the whole file is malformed, reading it piece by piece fails
 *     too, at the same line. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/csv.h"
#include "csvchunk.h"
#include "common/banned.h"

#define RECORDS_MAX (1u << 20)
#define ERR_MAX 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Records of a text as one string: "line|field|field\n" each, with the error's line. */
struct transcript {
	struct buf text;
	int failed;       /* a read error ended it */
	size_t fail_line; /* the line its message names */
};

static size_t message_line(const char *err)
{
	return strncmp(err, "line ", 5) == 0 ? strtoul(err + 5, NULL, 10) : 0;
}

/* Appends the records of text (len bytes) to t, lines shifted by offset; 0 at the end,
 * 1 when reading failed (t->failed set). */
static int transcribe(struct transcript *t, const char *text, size_t len, size_t offset)
{
	const struct csv_limits limits = {.max_line = 1u << 20,
	                                  .max_field = 1u << 20,
	                                  .max_fields = 1u << 16,
	                                  .max_records = RECORDS_MAX};
	struct csv_reader reader;
	struct csv_record rec;
	char err[ERR_MAX];
	int r;

	if (csv_reader_init(&reader, text, len, &limits) < 0)
		abort();
	while ((r = csv_read(&reader, &rec, err, sizeof(err))) == 1) {
		if (buf_printf(&t->text, "%zu", rec.line + offset) < 0)
			abort();
		for (size_t i = 0; i < rec.count; i++)
			if (buf_append(&t->text, "|", 1) < 0 ||
			    buf_append(&t->text, rec.fields[i], rec.lengths[i]) < 0)
				abort();
		if (buf_append(&t->text, "\n", 1) < 0)
			abort();
	}
	csv_reader_release(&reader);
	if (r == 0)
		return 0;
	if (r != -EBADMSG && r != -EMSGSIZE)
		abort();
	t->failed = 1;
	t->fail_line = message_line(err) + offset;
	return 1;
}

/* The line breaks of text as the CSV reader counts lines: LF, CRLF, lone CR. */
static size_t count_breaks(const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		if (s[i] == '\n' || (s[i] == '\r' && !(i + 1 < len && s[i + 1] == '\n')))
			n++;
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct transcript whole = {0}, pieces = {0};
	struct csv_chunker c;
	struct buf joined;
	const char *file, *piece;
	size_t len, target, max;
	int fd, r, forced = 0;

	if (size < 2 || memchr(data + 2, '\0', size - 2))
		return 0; /* the reader takes text: import's decoder refuses NUL bytes first */
	target = 1 + data[0] % 64;
	max = target + data[1] % 192;
	file = (const char *)data + 2;
	size -= 2;
	fd = memfd_create("csv", MFD_CLOEXEC);
	if (fd < 0 || (size && write(fd, file, size) != (ssize_t)size) ||
	    lseek(fd, 0, SEEK_SET) != 0)
		abort();
	buf_init(&joined, size + 1);
	buf_init(&whole.text, 64u * 1024 * 1024);
	buf_init(&pieces.text, 64u * 1024 * 1024);
	transcribe(&whole, file, size, 0);

	csv_chunker_init_fd(&c, fd, 1 + data[0] % 7, target, max);
	while ((r = csv_chunker_next(&c, &piece, &len)) == 1) {
		if (len == 0 || len > c.max)
			abort();
		forced |= len == c.max; /* perhaps cut without a boundary */
		if (buf_append(&joined, piece, len) < 0)
			abort();
		if (!forced && c.lines != count_breaks(joined.data, joined.len - len))
			abort();
		if (!forced && !pieces.failed)
			transcribe(&pieces, piece, len, c.lines);
	}
	if (r != 0)
		abort();
	/* the pieces are the file */
	if (joined.len != size || (size && memcmp(joined.data, file, size) != 0))
		abort();
	/* the same records; a failure where the whole file fails */
	if (forced)
		goto out;
	if (whole.failed != pieces.failed || (whole.failed && whole.fail_line != pieces.fail_line))
		abort();
	if (!whole.failed &&
	    (whole.text.len != pieces.text.len ||
	     (whole.text.len && memcmp(whole.text.data, pieces.text.data, whole.text.len) != 0)))
		abort();
out:
	csv_chunker_close(&c);
	close(fd);
	buf_release(&joined);
	buf_release(&whole.text);
	buf_release(&pieces.text);
	return 0;
}
