/* Runs every case of the official JSON Schema Test Suite (draft 2020-12 files) through
 * common/schema. The folder is $JSON_SCHEMA_SUITE, else the shared copy next to the
 * repository, else the copy in tests/data. Fails on any wrong verdict (naming the file,
 * group and test), on a schema that does not compile, and on an empty folder. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "common/errlist.h"
#include "common/schema.h"
#include "common/banned.h"

#define SHARED_SUITE "../shared/testdata/json-schema-test-suite/draft2020-12"
#define LOCAL_SUITE "tests/data/json-schema-test-suite/draft2020-12"
#define MAX_FILES 256
#define MAX_FILE_SIZE (16 * 1024 * 1024)

struct tally {
	size_t files, cases, failed;
};

static const char *suite_dir(void)
{
	const char *env = getenv("JSON_SCHEMA_SUITE");
	struct stat st;

	if (env && *env)
		return env;
	if (stat(SHARED_SUITE, &st) == 0 && S_ISDIR(st.st_mode))
		return SHARED_SUITE;
	return LOCAL_SUITE;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n <= MAX_FILE_SIZE &&
	    fseek(f, 0, SEEK_SET) == 0) {
		data = malloc((size_t)n + 1);
		if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
			free(data);
			data = NULL;
		} else if (data) {
			data[n] = '\0';
		}
	}
	fclose(f);
	return data;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One test: the verdict without messages, and with messages (which must agree, and
 * list at least one error exactly when invalid). */
static void run_case(const char *file, const char *group, const struct schema *s, const cJSON *test,
                     struct tally *t)
{
	const cJSON *desc = cJSON_GetObjectItemCaseSensitive(test, "description");
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(test, "data");
	const cJSON *valid = cJSON_GetObjectItemCaseSensitive(test, "valid");
	const char *name = cJSON_IsString(desc) ? desc->valuestring : "?";
	struct errlist errors;
	int quiet, loud;

	t->cases++;
	if (!data || !cJSON_IsBool(valid)) {
		print_error("%s: \"%s\" / \"%s\": malformed test case\n", file, group, name);
		t->failed++;
		return;
	}
	errlist_init(&errors);
	quiet = schema_validate(s, data, NULL);
	loud = schema_validate(s, data, &errors);
	if (quiet < 0 || loud < 0) {
		print_error("%s: \"%s\" / \"%s\": validation failed: %s\n", file, group, name,
		            strerror(-(quiet < 0 ? quiet : loud)));
		t->failed++;
	} else if ((quiet == 0) != cJSON_IsTrue(valid)) {
		print_error("%s: \"%s\" / \"%s\": expected %s, got %s\n", file, group, name,
		            cJSON_IsTrue(valid) ? "valid" : "invalid",
		            quiet == 0 ? "valid" : "invalid");
		for (size_t i = 0; i < errors.count; i++)
			print_error("    %s: %s (%s)\n", errors.entries[i].pointer,
			            errors.entries[i].message, errors.entries[i].keyword);
		t->failed++;
	} else if ((loud == 0) != (quiet == 0) || (size_t)loud != errors.errors ||
	           (loud > 0 && errors.count == 0)) {
		print_error("%s: \"%s\" / \"%s\": verdict %d without messages, %d with %zu "
		            "errors\n",
		            file, group, name, quiet, loud, errors.errors);
		t->failed++;
	}
	errlist_release(&errors);
}

static void run_file(const char *dir, const char *file, struct tally *t)
{
	char path[4096], err[512];
	cJSON *doc;
	const cJSON *group;
	char *text;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	text = read_file(path);
	if (!text) {
		print_error("%s: cannot read\n", path);
		t->failed++;
		return;
	}
	doc = cJSON_Parse(text);
	free(text);
	if (!cJSON_IsArray(doc)) {
		print_error("%s: not a JSON array of test groups\n", path);
		t->failed++;
		cJSON_Delete(doc);
		return;
	}
	t->files++;
	cJSON_ArrayForEach(group, doc)
	{
		const cJSON *desc = cJSON_GetObjectItemCaseSensitive(group, "description");
		const cJSON *schema = cJSON_GetObjectItemCaseSensitive(group, "schema");
		const cJSON *tests = cJSON_GetObjectItemCaseSensitive(group, "tests");
		const char *gname = cJSON_IsString(desc) ? desc->valuestring : "?";
		struct schema *s = NULL;
		const cJSON *test;
		int r;

		r = schema_compile_json(schema, &s, err, sizeof(err));
		if (r < 0) {
			size_t n = cJSON_GetArraySize(tests);

			print_error("%s: \"%s\": schema does not compile: %s\n", file, gname, err);
			t->cases += n;
			t->failed += n ? n : 1;
			continue;
		}
		cJSON_ArrayForEach(test, tests) run_case(file, gname, s, test, t);
		schema_free(s);
	}
	cJSON_Delete(doc);
}

static void test_suite(void **state)
{
	const char *dir = suite_dir();
	char *names[MAX_FILES];
	size_t n = 0;
	struct tally t = {0};
	struct dirent *e;
	DIR *d;

	(void)state;
	d = opendir(dir);
	if (!d)
		fail_msg("cannot open the test suite folder '%s': %s", dir, strerror(errno));
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);

		if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
			continue;
		assert_true(n < MAX_FILES);
		names[n] = strdup(e->d_name);
		assert_non_null(names[n]);
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n; i++) {
		run_file(dir, names[i], &t);
		free(names[i]);
	}
	print_message("json-schema-test-suite (%s): %zu files, %zu cases, %zu failed\n", dir,
	              t.files, t.cases, t.failed);
	if (t.files == 0)
		fail_msg("no test files in '%s'", dir);
	assert_int_equal(t.failed, 0);
	assert_true(t.cases > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_suite),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
