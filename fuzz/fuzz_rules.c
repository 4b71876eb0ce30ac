/* libFuzzer target: arbitrary bytes as {"rules": <x-rules>, "data": <document>,
 * "set": <x-rollup-derived entry>}. Compiling must fail cleanly with a message or give
 * rules that check any document without crashing, leaking or growing errlist past its
 * bound, and checking twice must give the same answer (the rules are immutable). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/errlist.h"
#include "common/rules.h"
#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_twice(const struct rules *rs, const cJSON *doc)
{
	struct errlist a, b;
	int ra, rb;

	errlist_init(&a);
	errlist_init(&b);
	ra = rules_check(rs, doc, &a);
	rb = rules_check(rs, doc, &b);
	if (ra != rb || a.count != b.count || a.count > ERRLIST_MAX)
		abort();
	if (ra >= 0 && (size_t)ra != a.errors + a.warnings)
		abort();
	for (size_t i = 0; i < a.count; i++) {
		if (strncmp(a.entries[i].keyword, "x-rules:", 8) != 0 ||
		    strcmp(a.entries[i].message, b.entries[i].message) != 0 ||
		    strcmp(a.entries[i].pointer, b.entries[i].pointer) != 0)
			abort();
		if (a.entries[i].pointer[0] && a.entries[i].pointer[0] != '/')
			abort();
	}
	errlist_release(&a);
	errlist_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rules_condition_set *set = NULL;
	struct rules *rs = NULL;
	const cJSON *doc;
	char err[256];
	cJSON *root;

	root = cJSON_ParseWithLength((const char *)data, size);
	if (!root)
		return 0;
	doc = cJSON_GetObjectItemCaseSensitive(root, "data");
	err[0] = '\0';
	if (rules_compile(cJSON_GetObjectItemCaseSensitive(root, "rules"), err, sizeof(err), &rs) ==
	    0) {
		check_twice(rs, doc);
		/* the rules do not borrow the schema: check the whole input as a document too */
		check_twice(rs, root);
		rules_free(rs);
	} else if (!err[0]) {
		abort(); /* a refusal always says why */
	}
	if (cJSON_GetObjectItemCaseSensitive(root, "set") &&
	    rules_compile_condition_set(cJSON_GetObjectItemCaseSensitive(root, "set"), err,
	                                sizeof(err), &set) == 0) {
		size_t n = rules_count_matching(set, doc);

		if (n != rules_count_matching(set, doc))
			abort();
		rules_condition_set_free(set);
	}
	cJSON_Delete(root);
	return 0;
}
