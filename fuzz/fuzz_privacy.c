/* libFuzzer target: arbitrary bytes as free text for the privacy guard, and as a JSON
 * document for its tree walker. The scan must stay inside the text, report a match whose
 * offsets agree with each other, and find the same match again from where it starts. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/errlist.h"
#include "common/privacy.h"
#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct privacy_match m, again;
	struct errlist errs;
	cJSON *root;
	int r;

	if (privacy_scan(text, size, &m)) {
		if (m.offset > size || m.length > size - m.offset || m.length == 0)
			abort();
		/* every character is 1 to 4 bytes */
		if (m.char_offset > m.offset || m.offset > 4 * m.char_offset)
			abort();
		if (m.char_length < 11 || m.char_length > m.length || m.length > 4 * m.char_length)
			abort();
		/* the match alone, cut out of its context, is still a match of the same kind
		 * and length: nothing outside it was needed */
		if (privacy_scan(text + m.offset, m.length, &again) != 1 || again.offset != 0 ||
		    again.length != m.length || again.kind != m.kind)
			abort();
	}

	root = cJSON_ParseWithLength(text, size);
	if (!root)
		return 0;
	errlist_init(&errs);
	r = privacy_check(root, &errs);
	if (r >= 0 && (size_t)r != errs.errors)
		abort();
	for (size_t i = 0; i < errs.count; i++)
		if (strcmp(errs.entries[i].keyword, "privacy") != 0)
			abort();
	errlist_release(&errs);
	cJSON_Delete(root);
	return 0;
}
