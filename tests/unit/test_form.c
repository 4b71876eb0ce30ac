/* Unit tests for common/form: the forms of the tree (schemas/forms) against the example
 * returns (tests/data/returns/<form>/), and loading errors with forms written here.
 * Runs from the repository root. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/errlist.h"
#include "common/fileio.h"
#include "common/form.h"
#include "common/json.h"
#include "common/rules.h"
#include "common/banned.h"

#define FORMS_DIR "schemas/forms"
#define RETURNS_DIR "tests/data/returns"

static const char *const tree_forms[] = {"incident", "rectification", "screening", "summary"};

static cJSON *read_json(const char *path)
{
	struct buf b;
	char err[256];
	cJSON *j = NULL;

	buf_init(&b, 4 << 20);
	if (fileio_read(path, &b) < 0)
		fail_msg("cannot read %s", path);
	if (json_parse_untrusted(b.data ? b.data : "", b.len, JSON_MAX_DEPTH, &j, err,
	                         sizeof(err)) < 0)
		fail_msg("%s: %s", path, err);
	buf_release(&b);
	return j;
}

static char *read_text(const char *path)
{
	struct buf b;
	char *s;

	buf_init(&b, 1 << 20);
	if (fileio_read(path, &b) < 0)
		fail_msg("cannot read %s", path);
	s = buf_detach(&b, NULL);
	return s ? s : strdup("");
}

/* "pointer keyword\n" per entry, the format of the .expect files. */
static char *entries_text(const struct errlist *l)
{
	struct buf b;
	char *s;

	buf_init(&b, 1 << 20);
	for (size_t i = 0; i < l->count; i++)
		assert_int_equal(
		        buf_printf(&b, "%s %s\n", l->entries[i].pointer, l->entries[i].keyword), 0);
	s = buf_detach(&b, NULL);
	return s ? s : strdup("");
}

static bool has_keyword_prefix(const struct errlist *l, const char *prefix)
{
	for (size_t i = 0; i < l->count; i++)
		if (strncmp(l->entries[i].keyword, prefix, strlen(prefix)) == 0)
			return true;
	return false;
}

static int load_tree(void **state)
{
	struct form_set *set = NULL;
	char err[512];

	if (form_set_load_dir(FORMS_DIR, &set, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	*state = set;
	return 0;
}

static int free_tree(void **state)
{
	form_set_free(*state);
	return 0;
}

static void test_tree_loads(void **state)
{
	const struct form_set *set = *state;

	assert_int_equal(set->count, ARRAY_SIZE(tree_forms));
	for (size_t i = 0; i < set->count; i++) {
		const struct form *f = &set->forms[i];
		char path[256];
		cJSON *schema, *rules;

		assert_string_equal(f->id, tree_forms[i]); /* sorted */
		assert_non_null(f->schema);
		assert_non_null(f->rules);
		snprintf(path, sizeof(path), FORMS_DIR "/%s.schema.json", f->id);
		schema = read_json(path);
		assert_string_equal(cJSON_GetObjectItemCaseSensitive(schema, "x-form")->valuestring,
		                    f->id);
		assert_int_equal(
		        cJSON_GetObjectItemCaseSensitive(schema, "x-form-version")->valueint,
		        f->version);
		rules = cJSON_GetObjectItemCaseSensitive(schema, "x-rules");
		assert_int_equal(rules_count(f->rules), (size_t)cJSON_GetArraySize(rules));
		assert_true(rules_count(f->rules) > 0);
		cJSON_Delete(schema);
	}
}

static void test_find(void **state)
{
	const struct form_set *set = *state;

	for (size_t i = 0; i < ARRAY_SIZE(tree_forms); i++) {
		const struct form *f = form_set_find(set, tree_forms[i]);

		assert_non_null(f);
		assert_ptr_equal(f, &set->forms[i]);
		assert_string_equal(f->id, tree_forms[i]);
	}
	assert_null(form_set_find(set, ""));
	assert_null(form_set_find(set, "nope"));
	assert_null(form_set_find(set, "Incident"));
	assert_null(form_set_find(set, "incidents"));
	assert_null(form_set_find(set, "incid"));
}

/* "pointer keyword" lines of the .expect file at path, each found among the errors of l
 * (the files list what must be reported; a stricter check may report more, e.g. format
 * "date" on "20240502", which RFC 3339 does not allow). */
static void expect_reported(const char *path, const struct errlist *l)
{
	char *want = read_text(path), *line, *save = NULL;
	int pairs = 0;

	for (line = strtok_r(want, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *space = strrchr(line, ' ');
		bool found = false;

		if (line[0] == '#')
			continue;
		assert_non_null(space);
		*space = '\0';
		for (size_t i = 0; i < l->count && !found; i++)
			found = l->entries[i].severity == ERRLIST_ERROR &&
			        strcmp(l->entries[i].pointer, line) == 0 &&
			        strcmp(l->entries[i].keyword, space + 1) == 0;
		if (!found) {
			char *got = entries_text(l);

			fail_msg("%s: \"%s %s\" not reported; got\n%s", path, line, space + 1, got);
		}
		pairs++;
	}
	assert_true(pairs > 0);
	free(want);
}

/* Every keyword of l's errors starts with prefix. */
static bool all_keywords(const struct errlist *l, const char *prefix)
{
	for (size_t i = 0; i < l->count; i++)
		if (l->entries[i].severity == ERRLIST_ERROR &&
		    strncmp(l->entries[i].keyword, prefix, strlen(prefix)) != 0)
			return false;
	return true;
}

/* Every example return: good-* is accepted with no error; bad-* is refused, with what
 * its .expect lists, and (like tests/integration/test_forms_oracle.py) a bad-rules or
 * bad-privacy example breaks that one thing only, a bad-schema one keeps the rules from
 * running. */
static void test_examples(void **state)
{
	const struct form_set *set = *state;
	int good = 0, bad = 0;

	for (size_t i = 0; i < ARRAY_SIZE(tree_forms); i++) {
		const struct form *f = form_set_find(set, tree_forms[i]);
		char dirpath[256];
		struct dirent **names;
		int n;

		snprintf(dirpath, sizeof(dirpath), RETURNS_DIR "/%s", tree_forms[i]);
		n = scandir(dirpath, &names, NULL, alphasort);
		assert_true(n > 0);
		for (int k = 0; k < n; k++) {
			const char *name = names[k]->d_name;
			size_t len = strlen(name);
			char path[512];
			struct errlist errs;
			cJSON *data;
			int r;

			if (len < 6 || strcmp(name + len - 5, ".json") != 0) {
				free(names[k]);
				continue;
			}
			snprintf(path, sizeof(path), "%s/%s", dirpath, name);
			data = read_json(path);
			errlist_init(&errs);
			r = form_check(f, data, &errs);
			if (strncmp(name, "good-", 5) == 0) {
				if (r != 0 || errs.errors)
					fail_msg("%s: %d, %s %s: %s", path, r,
					         errs.count ? errs.entries[0].pointer : "",
					         errs.count ? errs.entries[0].keyword : "",
					         errs.count ? errs.entries[0].message : "");
				good++;
			} else {
				if (r <= 0 || (size_t)r != errs.errors)
					fail_msg("%s: form_check %d, %zu errors", path, r,
					         errs.errors);
				if (strncmp(name, "bad-rules-", 10) == 0)
					assert_true(all_keywords(&errs, "x-rules:"));
				else if (strncmp(name, "bad-privacy-", 12) == 0)
					assert_true(all_keywords(&errs, "privacy"));
				else if (strncmp(name, "bad-schema-", 11) == 0)
					assert_false(has_keyword_prefix(&errs, "x-rules:") ||
					             has_keyword_prefix(&errs, "privacy"));
				else
					fail_msg("%s: unknown kind of example", path);
				snprintf(path + strlen(path) - 5, 8, ".expect");
				expect_reported(path, &errs);
				bad++;
			}
			errlist_release(&errs);
			cJSON_Delete(data);
			free(names[k]);
		}
		free(names);
	}
	print_message("checked %d good and %d bad example returns\n", good, bad);
	assert_true(good >= 4);
	assert_true(bad >= 4);
}

/* The rules run only when the schema holds; the privacy guard always runs. */
static void test_check_order(void **state)
{
	const struct form_set *set = *state;
	const struct form *incident = form_set_find(set, "incident");
	struct errlist errs;
	cJSON *data;
	char *got;

	/* a rule breach alone is found */
	data = read_json(RETURNS_DIR "/incident/bad-rules-occurred_le_discovered.json");
	errlist_init(&errs);
	assert_int_equal(form_check(incident, data, &errs), 1);
	got = entries_text(&errs);
	assert_string_equal(got, "/occurred_on x-rules:occurred_le_discovered\n");
	free(got);
	errlist_release(&errs);

	/* with a schema error as well, only the schema error */
	cJSON_AddNumberToObject(data, "unexpected", 1);
	assert_int_equal(form_check(incident, data, &errs), 1);
	got = entries_text(&errs);
	assert_string_equal(got, " additionalProperties\n");
	free(got);
	errlist_release(&errs);
	cJSON_Delete(data);

	/* personal data and a schema error: both */
	data = read_json(RETURNS_DIR "/incident/bad-privacy-mobile.json");
	assert_int_equal(form_check(incident, data, &errs), 1);
	errlist_release(&errs);
	cJSON_ReplaceItemInObjectCaseSensitive(data, "level", cJSON_CreateNumber(9));
	assert_int_equal(form_check(incident, data, &errs), 2);
	got = entries_text(&errs);
	assert_string_equal(got, "/level enum\n/summary privacy\n");
	free(got);
	errlist_release(&errs);
	cJSON_Delete(data);

	/* personal data and a rule breach: both */
	data = read_json(RETURNS_DIR "/incident/bad-rules-occurred_le_discovered.json");
	cJSON_ReplaceItemInObjectCaseSensitive(data, "summary",
	                                       cJSON_CreateString("家长电话 13812345678"));
	assert_int_equal(form_check(incident, data, &errs), 2);
	got = entries_text(&errs);
	assert_string_equal(got, "/occurred_on x-rules:occurred_le_discovered\n/summary privacy\n");
	free(got);
	errlist_release(&errs);
	cJSON_Delete(data);

	/* data that is not even an object: the schema says so, privacy finds nothing */
	data = cJSON_CreateString("13812345678");
	assert_int_equal(form_check(incident, data, &errs), 2);
	got = entries_text(&errs);
	assert_string_equal(got, " type\n privacy\n");
	free(got);
	errlist_release(&errs);
	cJSON_Delete(data);
}

/* The return value counts this call's errors, not what the list held before. */
static void test_check_counts_new_errors(void **state)
{
	const struct form_set *set = *state;
	const struct form *incident = form_set_find(set, "incident");
	struct errlist errs;
	cJSON *data;

	errlist_init(&errs);
	assert_int_equal(errlist_add(&errs, ERRLIST_ERROR, "/x", "k", "earlier"), 0);
	assert_int_equal(errlist_add(&errs, ERRLIST_WARNING, "/y", "k", "earlier"), 0);
	data = read_json(RETURNS_DIR "/incident/good-forms-md-example.json");
	assert_int_equal(form_check(incident, data, &errs), 0);
	assert_int_equal(errs.count, 2);
	cJSON_Delete(data);
	data = read_json(RETURNS_DIR "/incident/bad-schema-wrong-type-level.json");
	assert_int_equal(form_check(incident, data, &errs), 2);
	assert_int_equal(errs.errors, 3);
	assert_int_equal(errs.count, 4);
	cJSON_Delete(data);
	/* a full list still counts what it cannot hold */
	errlist_release(&errs);
	for (int i = 0; i < ERRLIST_MAX; i++)
		assert_int_equal(errlist_add(&errs, ERRLIST_ERROR, "", "k", "filler"), 0);
	data = read_json(RETURNS_DIR "/incident/bad-schema-wrong-type-level.json");
	assert_int_equal(form_check(incident, data, &errs), 2);
	assert_int_equal(errs.count, ERRLIST_MAX);
	assert_int_equal(errs.errors, ERRLIST_MAX + 2);
	cJSON_Delete(data);
	errlist_release(&errs);
}

/* ---- forms written by the test ---- */

struct scratch {
	char dir[128];
};

static int make_scratch(void **state)
{
	struct scratch *s = calloc(1, sizeof(*s));

	if (!s)
		return -1;
	snprintf(s->dir, sizeof(s->dir), "/tmp/test_form.XXXXXX");
	if (!mkdtemp(s->dir)) {
		free(s);
		return -1;
	}
	*state = s;
	return 0;
}

static void empty_dir(const char *dir)
{
	struct dirent *de;
	char path[PATH_MAX];
	DIR *d = opendir(dir);

	while (d && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) < 0) {
			empty_dir(path);
			rmdir(path);
		}
	}
	if (d)
		closedir(d);
}

static int remove_scratch(void **state)
{
	struct scratch *s = *state;

	empty_dir(s->dir);
	rmdir(s->dir);
	free(s);
	return 0;
}

static void put(const struct scratch *s, const char *name, const char *text, char *ret_path,
                size_t pathlen)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", s->dir, name);
	assert_int_equal(fileio_write_atomic(path, text, strlen(text), 0644), 0);
	if (ret_path)
		snprintf(ret_path, pathlen, "%s", path);
}

#define MINI(id, version)                                                                          \
	"{\"x-form\": \"" id "\", \"x-form-version\": " version ", "                               \
	"\"type\": \"object\"}"

/* form_load_file fails with want, err mentions what, and *ret is untouched. */
static void load_fails(const struct scratch *s, const char *name, const char *text, int want,
                       const char *what)
{
	char path[PATH_MAX], err[1024] = "";
	struct form f;
	int r;

	if (text)
		put(s, name, text, path, sizeof(path));
	else
		snprintf(path, sizeof(path), "%s/%s", s->dir, name);
	memset(&f, 0x5a, sizeof(f));
	r = form_load_file(path, &f, err, sizeof(err));
	if (r != want)
		fail_msg("%s: got %d, want %d (%s)", name, r, want, err);
	if (!strstr(err, what))
		fail_msg("%s: \"%s\" does not mention \"%s\"", name, err, what);
	if (!strstr(err, path))
		fail_msg("%s: \"%s\" does not name the file", name, err);
	for (size_t i = 0; i < sizeof(f); i++)
		assert_int_equal(((unsigned char *)&f)[i], 0x5a);
	if (text)
		unlink(path);
}

static void test_load_file(void **state)
{
	struct scratch *s = *state;
	char path[PATH_MAX], err[512];
	struct form f;
	const char *id32 = "abcdefghij_bcdefghij0123456789zz";

	/* a minimal form, without x-rules */
	put(s, "mini.schema.json", MINI("mini", "3"), path, sizeof(path));
	assert_int_equal(form_load_file(path, &f, err, sizeof(err)), 0);
	assert_string_equal(f.id, "mini");
	assert_int_equal(f.version, 3);
	assert_non_null(f.schema);
	assert_non_null(f.rules);
	assert_int_equal(rules_count(f.rules), 0);
	form_release(&f);
	assert_null(f.schema);
	form_release(&f); /* twice is harmless */
	form_release(NULL);
	unlink(path);

	/* the longest id */
	assert_int_equal(strlen(id32), FORM_ID_MAX);
	{
		char name[64], text[256];

		snprintf(name, sizeof(name), "%s.schema.json", id32);
		snprintf(text, sizeof(text),
		         "{\"x-form\": \"%s\", \"x-form-version\": 1, \"type\": \"object\"}", id32);
		put(s, name, text, path, sizeof(path));
		assert_int_equal(form_load_file(path, &f, err, sizeof(err)), 0);
		assert_string_equal(f.id, id32);
		form_release(&f);
		unlink(path);
	}
}

static void test_load_file_errors(void **state)
{
	struct scratch *s = *state;

	/* file names */
	load_fails(s, "Bad.schema.json", MINI("Bad", "1"), -EINVAL, "<id>.schema.json");
	load_fails(s, "1abc.schema.json", MINI("1abc", "1"), -EINVAL, "<id>.schema.json");
	load_fails(s, "_abc.schema.json", MINI("_abc", "1"), -EINVAL, "<id>.schema.json");
	load_fails(s, "a-b.schema.json", MINI("a-b", "1"), -EINVAL, "<id>.schema.json");
	load_fails(s, "a.b.schema.json", MINI("a.b", "1"), -EINVAL, "<id>.schema.json");
	load_fails(s, "abc.json", MINI("abc", "1"), -EINVAL, "<id>.schema.json");
	load_fails(s, ".schema.json", MINI("", "1"), -EINVAL, "<id>.schema.json");
	load_fails(s, "abcdefghij_bcdefghij0123456789zzz.schema.json",
	           MINI("abcdefghij_bcdefghij0123456789zzz", "1"), -EINVAL, "<id>.schema.json");

	/* x-form */
	load_fails(s, "foo.schema.json", MINI("bar", "1"), -EINVAL,
	           "\"x-form\" must be the string \"foo\"");
	load_fails(s, "foo.schema.json", "{\"x-form-version\": 1}", -EINVAL, "\"x-form\"");
	load_fails(s, "foo.schema.json", "{\"x-form\": 7, \"x-form-version\": 1}", -EINVAL,
	           "\"x-form\"");
	load_fails(s, "foo.schema.json", MINI("FOO", "1"), -EINVAL, "\"x-form\"");

	/* x-form-version */
	load_fails(s, "foo.schema.json", "{\"x-form\": \"foo\", \"type\": \"object\"}", -EINVAL,
	           "\"x-form-version\" must be an integer >= 1");
	load_fails(s, "foo.schema.json", MINI("foo", "0"), -EINVAL, "\"x-form-version\"");
	load_fails(s, "foo.schema.json", MINI("foo", "-1"), -EINVAL, "\"x-form-version\"");
	load_fails(s, "foo.schema.json", MINI("foo", "1.5"), -EINVAL, "\"x-form-version\"");
	load_fails(s, "foo.schema.json", MINI("foo", "\"1\""), -EINVAL, "\"x-form-version\"");
	load_fails(s, "foo.schema.json", MINI("foo", "null"), -EINVAL, "\"x-form-version\"");
	load_fails(s, "foo.schema.json", MINI("foo", "3000000000"), -EINVAL, "\"x-form-version\"");
	load_fails(s, "foo.schema.json", MINI("foo", "1e300"), -EINVAL, "\"x-form-version\"");

	/* x-rules */
	load_fails(s, "foo.schema.json",
	           "{\"x-form\": \"foo\", \"x-form-version\": 1, \"x-rules\": 5}", -EINVAL,
	           "x-rules");
	load_fails(s, "foo.schema.json",
	           "{\"x-form\": \"foo\", \"x-form-version\": 1, \"x-rules\": [{\"id\": \"r\", "
	           "\"left\": \"/a\", \"op\": \"=<\", \"right\": 1, \"message\": \"m\"}]}",
	           -EINVAL, "x-rules");
	load_fails(s, "foo.schema.json",
	           "{\"x-form\": \"foo\", \"x-form-version\": 1, \"x-rules\": [{\"id\": \"r\", "
	           "\"left\": \"/a\", \"op\": \"<=\", \"right\": 1, \"message\": \"m\", "
	           "\"importance\": \"eror\"}]}",
	           -EINVAL, "x-rules");

	/* the schema itself */
	load_fails(s, "foo.schema.json", "{\"x-form\": \"foo\",", -EINVAL, "foo.schema.json");
	load_fails(s, "foo.schema.json",
	           "{\"x-form\": \"foo\", \"x-form-version\": 1, \"type\": \"objekt\"}", -EINVAL,
	           "foo.schema.json");
	load_fails(s, "missing.schema.json", NULL, -ENOENT, "missing.schema.json");
}

/* A rule of importance "warning" is reported but does not refuse the return. */
static void test_warning_rule(void **state)
{
	struct scratch *s = *state;
	char path[PATH_MAX], err[512];
	struct errlist errs;
	struct form f;
	cJSON *data;

	put(s, "warn.schema.json",
	    "{\"x-form\": \"warn\", \"x-form-version\": 2, \"type\": \"object\","
	    " \"properties\": {\"a\": {\"type\": \"integer\"}, \"b\": {\"type\": \"integer\"},"
	    " \"note\": {\"type\": \"string\"}},"
	    " \"x-rules\": ["
	    "  {\"id\": \"a_le_b\", \"left\": \"/a\", \"op\": \"<=\", \"right\": \"/b\","
	    "   \"importance\": \"warning\", \"message\": \"a is usually at most b\"},"
	    "  {\"id\": \"a_ge_0\", \"left\": \"/a\", \"op\": \">=\", \"right\": 0,"
	    "   \"message\": \"a must not be negative\"}]}",
	    path, sizeof(path));
	assert_int_equal(form_load_file(path, &f, err, sizeof(err)), 0);
	errlist_init(&errs);

	data = cJSON_Parse("{\"a\": 5, \"b\": 3}");
	assert_int_equal(form_check(&f, data, &errs), 0);
	assert_int_equal(errs.errors, 0);
	assert_int_equal(errs.warnings, 1);
	assert_int_equal(errs.entries[0].severity, ERRLIST_WARNING);
	assert_string_equal(errs.entries[0].keyword, "x-rules:a_le_b");
	assert_string_equal(errs.entries[0].pointer, "/a");
	cJSON_Delete(data);
	errlist_release(&errs);

	data = cJSON_Parse("{\"a\": -5, \"b\": -9, \"note\": \"110101199003074514\"}");
	assert_int_equal(form_check(&f, data, &errs), 2);
	assert_int_equal(errs.errors, 2);
	assert_int_equal(errs.warnings, 1);
	cJSON_Delete(data);
	errlist_release(&errs);

	/* a schema error: the warning rule does not run either */
	data = cJSON_Parse("{\"a\": 5, \"b\": \"3\"}");
	assert_int_equal(form_check(&f, data, &errs), 1);
	assert_int_equal(errs.warnings, 0);
	assert_string_equal(errs.entries[0].keyword, "type");
	cJSON_Delete(data);
	errlist_release(&errs);
	form_release(&f);
}

static void dir_fails(const char *dir, int want, const char *what)
{
	struct form_set *set = (struct form_set *)(uintptr_t)0x5a5a;
	char err[1024] = "";
	int r;

	r = form_set_load_dir(dir, &set, err, sizeof(err));
	if (r != want)
		fail_msg("%s: got %d, want %d (%s)", dir, r, want, err);
	if (!strstr(err, what))
		fail_msg("%s: \"%s\" does not mention \"%s\"", dir, err, what);
	assert_ptr_equal(set, (struct form_set *)(uintptr_t)0x5a5a);
}

static void test_load_dir(void **state)
{
	struct scratch *s = *state;
	struct form_set *set = NULL;
	char err[512], path[PATH_MAX];

	dir_fails("/nonexistent/forms", -ENOENT, "/nonexistent/forms");
	/* empty, then only files that are not forms */
	dir_fails(s->dir, -ENOENT, "no *.schema.json file");
	put(s, "README.md", "not a form", NULL, 0);
	put(s, "other.json", "{}", NULL, 0);
	put(s, "x.schema.json.bak", "{}", NULL, 0);
	dir_fails(s->dir, -ENOENT, "no *.schema.json file");

	/* forms in any order come out sorted */
	put(s, "zeta.schema.json", MINI("zeta", "1"), NULL, 0);
	put(s, "alpha.schema.json", MINI("alpha", "4"), NULL, 0);
	put(s, "mid_2.schema.json", MINI("mid_2", "2"), NULL, 0);
	assert_int_equal(form_set_load_dir(s->dir, &set, err, sizeof(err)), 0);
	assert_int_equal(set->count, 3);
	assert_string_equal(set->forms[0].id, "alpha");
	assert_int_equal(set->forms[0].version, 4);
	assert_string_equal(set->forms[1].id, "mid_2");
	assert_string_equal(set->forms[2].id, "zeta");
	assert_ptr_equal(form_set_find(set, "zeta"), &set->forms[2]);
	assert_null(form_set_find(set, "README"));
	form_set_free(set);
	form_set_free(NULL);

	/* one bad form spoils the folder, and is named */
	put(s, "broken.schema.json", MINI("broken", "0"), NULL, 0);
	dir_fails(s->dir, -EINVAL, "broken.schema.json");
	snprintf(path, sizeof(path), "%s/broken.schema.json", s->dir);
	unlink(path);
	put(s, "Upper.schema.json", MINI("Upper", "1"), NULL, 0);
	dir_fails(s->dir, -EINVAL, "Upper.schema.json");
	snprintf(path, sizeof(path), "%s/Upper.schema.json", s->dir);
	unlink(path);
	assert_int_equal(form_set_load_dir(s->dir, &set, err, sizeof(err)), 0);
	form_set_free(set);
}

static void test_load_dir_limit(void **state)
{
	struct scratch *s = *state;
	struct form_set *set = NULL;
	char err[512], name[64], text[256];

	for (int i = 0; i < FORM_SET_MAX; i++) {
		snprintf(name, sizeof(name), "f%03d.schema.json", i);
		snprintf(text, sizeof(text), MINI("f%03d", "1"), i);
		put(s, name, text, NULL, 0);
	}
	assert_int_equal(form_set_load_dir(s->dir, &set, err, sizeof(err)), 0);
	assert_int_equal(set->count, FORM_SET_MAX);
	for (int i = 0; i < FORM_SET_MAX; i++) {
		snprintf(name, sizeof(name), "f%03d", i);
		assert_string_equal(set->forms[i].id, name);
	}
	form_set_free(set);
	put(s, "one_more.schema.json", MINI("one_more", "1"), NULL, 0);
	dir_fails(s->dir, -E2BIG, "more than 64 forms");
}

int main(void)
{
	const struct CMUnitTest tree[] = {
	        cmocka_unit_test(test_tree_loads),
	        cmocka_unit_test(test_find),
	        cmocka_unit_test(test_examples),
	        cmocka_unit_test(test_check_order),
	        cmocka_unit_test(test_check_counts_new_errors),
	};
	const struct CMUnitTest written[] = {
	        cmocka_unit_test_setup_teardown(test_load_file, make_scratch, remove_scratch),
	        cmocka_unit_test_setup_teardown(test_load_file_errors, make_scratch,
	                                        remove_scratch),
	        cmocka_unit_test_setup_teardown(test_warning_rule, make_scratch, remove_scratch),
	        cmocka_unit_test_setup_teardown(test_load_dir, make_scratch, remove_scratch),
	        cmocka_unit_test_setup_teardown(test_load_dir_limit, make_scratch, remove_scratch),
	};
	int failed = cmocka_run_group_tests_name("tree forms", tree, load_tree, free_tree);

	failed += cmocka_run_group_tests_name("written forms", written, NULL, NULL);
	return failed;
}
