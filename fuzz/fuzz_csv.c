/* libFuzzer target: arbitrary bytes as a CSV file for school-agent import. The first byte
 * picks the encoding; the rest is decoded, then read record by record with small limits.
 * Every input must end in a clean end or one of the documented errors, every record must
 * respect the limits, and nothing may be read past the text. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/csv.h"
#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct csv_limits limits = {
	        .max_line = 512, .max_field = 128, .max_fields = 16, .max_records = 64};
	struct csv_reader reader;
	struct csv_record rec;
	struct buf text;
	char err[256];
	enum csv_encoding enc;
	int r;

	if (size == 0)
		return 0;
	enc = (enum csv_encoding)(data[0] % 3);
	buf_init(&text, 2 * size + 16);
	r = csv_decode((const char *)data + 1, size - 1, enc, &text, NULL, err, sizeof(err));
	if (r != 0 && r != -EILSEQ)
		abort();
	if (r == 0) {
		if (memchr(text.data ? text.data : "", '\0', text.len))
			abort();
		if (csv_reader_init(&reader, text.data ? text.data : "", text.len, &limits) < 0)
			abort();
		while ((r = csv_read(&reader, &rec, err, sizeof(err))) == 1) {
			if (rec.count == 0 || rec.count > limits.max_fields)
				abort();
			for (size_t i = 0; i < rec.count; i++)
				if (rec.lengths[i] > limits.max_field ||
				    strlen(rec.fields[i]) != rec.lengths[i])
					abort();
		}
		if (r != 0 && r != -EBADMSG && r != -EMSGSIZE)
			abort();
		if (r < 0 && (strncmp(err, "line ", 5) != 0 ||
		              csv_read(&reader, &rec, err, sizeof(err)) != r))
			abort();
		csv_reader_release(&reader);
	}
	buf_release(&text);
	return 0;
}
