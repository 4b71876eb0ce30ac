/* Unit tests for common/schema and common/json (the official suite runs in
 * test_schema_suite.c). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "common/buf.h"
#include "common/errlist.h"
#include "common/json.h"
#include "common/schema.h"
#include "common/banned.h"

static struct schema *compile_ok(const char *text)
{
	struct schema *s = NULL;
	char err[512] = "";
	int r = schema_compile(text, strlen(text), &s, err, sizeof(err));

	if (r < 0)
		fail_msg("schema_compile(%s): %d %s", text, r, err);
	return s;
}

/* Compiles a schema that must be refused; err receives the message. */
static int compile_err(const char *text, char *err, size_t errlen)
{
	struct schema *s = NULL;
	int r = schema_compile(text, strlen(text), &s, err, errlen);

	if (r >= 0)
		fail_msg("schema_compile(%s) succeeded", text);
	assert_null(s);
	return r;
}

static cJSON *parse(const char *text)
{
	char err[256] = "";
	cJSON *j = NULL;

	if (json_parse_untrusted(text, strlen(text), JSON_MAX_DEPTH, &j, err, sizeof(err)) < 0)
		fail_msg("json_parse_untrusted(%s): %s", text, err);
	return j;
}

/* Validates instance text; errors may be NULL. */
static int check(const struct schema *s, const char *instance, struct errlist *errors)
{
	cJSON *j = parse(instance);
	int r = schema_validate(s, j, errors);

	cJSON_Delete(j);
	return r;
}

static bool valid(const struct schema *s, const char *instance)
{
	struct errlist e;
	int quiet, loud;

	errlist_init(&e);
	quiet = check(s, instance, NULL);
	loud = check(s, instance, &e);
	assert_true(quiet >= 0);
	assert_true(loud >= 0);
	/* the verdict does not depend on whether messages are wanted */
	assert_int_equal(quiet == 0, loud == 0);
	assert_int_equal((size_t)loud, e.errors);
	errlist_release(&e);
	return quiet == 0;
}

static const struct errlist_entry *find(const struct errlist *e, const char *pointer,
                                        const char *keyword)
{
	for (size_t i = 0; i < e->count; i++)
		if (strcmp(e->entries[i].pointer, pointer) == 0 &&
		    strcmp(e->entries[i].keyword, keyword) == 0)
			return &e->entries[i];
	return NULL;
}

static void dump(const struct errlist *e)
{
	for (size_t i = 0; i < e->count; i++)
		print_message("  '%s' %s: %s\n", e->entries[i].pointer, e->entries[i].keyword,
		              e->entries[i].message);
}

/* The one error at pointer with keyword, whose message must contain `contains`. */
static void expect_error(const struct errlist *e, const char *pointer, const char *keyword,
                         const char *contains)
{
	const struct errlist_entry *x = find(e, pointer, keyword);

	if (!x) {
		dump(e);
		fail_msg("no error '%s' at '%s'", keyword, pointer);
	}
	if (contains && !strstr(x->message, contains)) {
		dump(e);
		fail_msg("message '%s' lacks '%s'", x->message, contains);
	}
}

static void test_ref_defs(void **state)
{
	struct schema *s = compile_ok(
	        "{\"$defs\": {"
	        "  \"count\": {\"type\": \"integer\", \"minimum\": 0},"
	        "  \"pair\": {\"type\": \"object\", \"properties\": {"
	        "    \"female\": {\"$ref\": \"#/$defs/count\"},"
	        "    \"male\": {\"$ref\": \"#/$defs/count\"}},"
	        "    \"required\": [\"female\", \"male\"], \"additionalProperties\": false},"
	        "  \"outer\": {\"$defs\": {\"inner\": {\"const\": \"deep\"}}},"
	        "  \"a/b\": {\"const\": \"slash\"},"
	        "  \"t~x\": {\"const\": \"tilde\"},"
	        "  \"c%d\": {\"const\": \"percent\"},"
	        "  \"\xe4\xb8\xad\": {\"const\": \"han\"}"
	        "},"
	        "\"properties\": {"
	        "  \"victims\": {\"$ref\": \"#/$defs/pair\"},"
	        "  \"perpetrators\": {\"$ref\": \"#/properties/victims\"},"
	        "  \"nested\": {\"$ref\": \"#/$defs/outer/$defs/inner\"},"
	        "  \"slash\": {\"$ref\": \"#/$defs/a~1b\"},"
	        "  \"tilde\": {\"$ref\": \"#/$defs/t~0x\"},"
	        "  \"percent\": {\"$ref\": \"#/$defs/c%25d\"},"
	        "  \"han\": {\"$ref\": \"#/$defs/%E4%B8%AD\"},"
	        "  \"self\": {\"$ref\": \"#\"}"
	        "}}");
	struct errlist e;

	(void)state;
	assert_true(valid(s, "{\"victims\": {\"female\": 0, \"male\": 1},"
	                     "\"perpetrators\": {\"female\": 2, \"male\": 0}}"));
	assert_false(valid(s, "{\"perpetrators\": {\"female\": -1, \"male\": 0}}"));
	assert_true(valid(s, "{\"nested\": \"deep\", \"slash\": \"slash\", \"tilde\": \"tilde\","
	                     "\"percent\": \"percent\", \"han\": \"han\"}"));
	assert_false(valid(s, "{\"nested\": \"shallow\"}"));
	assert_false(valid(s, "{\"slash\": \"tilde\"}"));
	assert_false(valid(s, "{\"tilde\": \"slash\"}"));
	assert_false(valid(s, "{\"percent\": \"x\"}"));
	assert_false(valid(s, "{\"han\": \"x\"}"));
	assert_true(
	        valid(s, "{\"self\": {\"self\": {\"victims\": {\"female\": 0, \"male\": 0}}}}"));
	assert_false(valid(s, "{\"self\": {\"self\": {\"victims\": {\"female\": 0}}}}"));

	errlist_init(&e);
	assert_int_equal(check(s, "{\"perpetrators\": {\"female\": -1, \"male\": 1.5}}", &e), 2);
	expect_error(&e, "/perpetrators/female", "minimum", "must be >= 0, got -1");
	expect_error(&e, "/perpetrators/male", "type", "must be integer, got 1.5");
	errlist_release(&e);
	schema_free(s);
}

/* A tree: a schema that refers to itself through $defs. */
static void test_ref_recursive(void **state)
{
	struct schema *s = compile_ok("{\"$ref\": \"#/$defs/node\", \"$defs\": {\"node\": {"
	                              "  \"type\": \"object\", \"required\": [\"value\"], "
	                              "\"additionalProperties\": false,"
	                              "  \"properties\": {\"value\": {\"type\": \"integer\"},"
	                              "    \"children\": {\"type\": \"array\", \"items\": "
	                              "{\"$ref\": \"#/$defs/node\"}}}}}}");
	struct errlist e;

	(void)state;
	assert_true(valid(s, "{\"value\": 1}"));
	assert_true(valid(s, "{\"value\": 1, \"children\": [{\"value\": 2}, {\"value\": 3,"
	                     "\"children\": [{\"value\": 4, \"children\": []}]}]}"));
	errlist_init(&e);
	assert_int_equal(
	        check(s,
	              "{\"value\": 1, \"children\": [{\"value\": 2,"
	              "\"children\": [{\"value\": 3}, {\"value\": \"x\", \"extra\": 1}]}]}",
	              &e),
	        2);
	expect_error(&e, "/children/0/children/1/value", "type", "must be integer, got \"x\"");
	expect_error(&e, "/children/0/children/1", "additionalProperties",
	             "unexpected property \"extra\"");
	errlist_release(&e);
	schema_free(s);
}

/* A $ref that never reaches the instance's end must stop, not overflow the stack. */
static void test_ref_loop(void **state)
{
	static const char *const loops[] = {
	        "{\"$ref\": \"#\"}",
	        "{\"$defs\": {\"a\": {\"$ref\": \"#/$defs/b\"}, \"b\": {\"allOf\": [{\"$ref\": "
	        "\"#/$defs/a\"}]}}, \"$ref\": \"#/$defs/a\"}",
	        "{\"anyOf\": [{\"$ref\": \"#\"}, {\"$ref\": \"#\"}]}",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(loops); i++) {
		struct schema *s = compile_ok(loops[i]);
		struct errlist e;
		int r;

		errlist_init(&e);
		r = check(s, "1", &e);
		assert_true(r == -ELOOP || r == -E2BIG);
		assert_int_equal(e.count, 1);
		assert_string_equal(e.entries[0].keyword, "limit");
		r = check(s, "1", NULL);
		assert_true(r == -ELOOP || r == -E2BIG);
		errlist_release(&e);
		schema_free(s);
	}
}

static void test_compile_errors(void **state)
{
	static const struct {
		const char *schema;
		int code;
		const char *message;
	} cases[] = {
	        {"{\"properties\": {\"n\": {\"minimum\": \"x\"}}}", -EINVAL,
	         "#/properties/n/minimum: must be a number"},
	        {"{\"properties\": {\"a/b\": {\"maxLength\": -1}}}", -EINVAL,
	         "#/properties/a~1b/maxLength: must be a non-negative integer"},
	        {"{\"maxItems\": 1.5}", -EINVAL, "#/maxItems"},
	        {"{\"type\": \"integr\"}", -EINVAL, "unknown type \"integr\""},
	        {"{\"type\": [\"string\", \"string\"]}", -EINVAL, "twice"},
	        {"{\"required\": [\"a\", 1]}", -EINVAL, "#/required"},
	        {"{\"required\": [\"a\", \"a\"]}", -EINVAL, "#/required"},
	        {"{\"multipleOf\": 0}", -EINVAL, "#/multipleOf"},
	        {"{\"uniqueItems\": 1}", -EINVAL, "#/uniqueItems"},
	        {"{\"items\": [{\"type\": \"string\"}]}", -EINVAL, "#/items"},
	        {"{\"allOf\": []}", -EINVAL, "#/allOf"},
	        {"{\"anyOf\": [{}, 3]}", -EINVAL, "#/anyOf/1"},
	        {"{\"enum\": 3}", -EINVAL, "#/enum"},
	        {"{\"pattern\": \"(\"}", -EINVAL, "#/pattern: invalid regular expression"},
	        {"{\"patternProperties\": {\"[\": {}}}", -EINVAL, "#/patternProperties/["},
	        {"{\"properties\": {\"a\": {\"$ref\": \"#/$defs/missing\"}}}", -EINVAL,
	         "#/properties/a/$ref: \"#/$defs/missing\" does not point to anything"},
	        {"{\"$ref\": \"#/$defs/x%2\"}", -EINVAL, "percent"},
	        {"{\"$ref\": \"#/required/0\", \"required\": [\"a\"]}", -EINVAL,
	         "must be a schema"},
	        {"{\"$ref\": \"https://example.com/other.json\"}", -EOPNOTSUPP,
	         "remote schemas are not supported"},
	        {"{\"$ref\": \"other.json#/$defs/a\"}", -EOPNOTSUPP, "not a local reference"},
	        {"{\"$ref\": \"#anchor\"}", -EOPNOTSUPP, "anchor"},
	        {"{\"$dynamicRef\": \"#node\"}", -EOPNOTSUPP, "\"$dynamicRef\" is not supported"},
	        {"{\"$anchor\": \"x\"}", -EOPNOTSUPP, "$anchor"},
	        {"{\"dependencies\": {}}", -EOPNOTSUPP, "dependentRequired"},
	        {"{\"properties\": {\"d\": {\"format\": \"email\"}}}", -EOPNOTSUPP,
	         "#/properties/d/format: format \"email\""},
	        {"{\"$schema\": \"http://json-schema.org/draft-07/schema#\"}", -EOPNOTSUPP,
	         "draft 2020-12"},
	        {"{\"properties\": {\"a\": {\"$id\": \"https://example.com/a\"}}}", -EOPNOTSUPP,
	         "$id"},
	        {"3", -EINVAL, "must be a schema"},
	        {"{\"type\": \"string\",}", -EINVAL, "expected a member name at line 1, column 19"},
	        {"{\"a\": 1, \"a\": 2}", -EINVAL, "duplicate member \"a\""},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char err[512] = "";
		int r = compile_err(cases[i].schema, err, sizeof(err));

		if (r != cases[i].code || !strstr(err, cases[i].message))
			fail_msg("%s: got %d '%s', want %d '%s'", cases[i].schema, r, err,
			         cases[i].code, cases[i].message);
	}
}

static void test_compile_limits(void **state)
{
	struct buf b;
	char err[256] = "";
	struct schema *s = NULL;

	(void)state;
	/* nesting beyond SCHEMA_MAX_DEPTH */
	buf_init(&b, 1 << 20);
	for (int i = 0; i < SCHEMA_MAX_DEPTH + 1; i++)
		assert_int_equal(buf_puts(&b, "{\"not\":"), 0);
	assert_int_equal(buf_puts(&b, "{}"), 0);
	for (int i = 0; i < SCHEMA_MAX_DEPTH + 1; i++)
		assert_int_equal(buf_putc(&b, '}'), 0);
	assert_int_equal(schema_compile(b.data, b.len, &s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "nesting too deep"));
	buf_release(&b);

	/* larger than SCHEMA_MAX_TEXT (the length is checked before any byte is read) */
	assert_int_equal(schema_compile("{}", SCHEMA_MAX_TEXT + 1, &s, err, sizeof(err)),
	                 -EMSGSIZE);
	assert_null(s);

	/* schema_compile_json checks a tree it did not parse */
	{
		cJSON *root = cJSON_CreateObject(), *cur = root;

		for (int i = 0; i < SCHEMA_MAX_DEPTH + 1; i++)
			cur = cJSON_AddObjectToObject(cur, "not");
		assert_int_equal(schema_compile_json(root, &s, err, sizeof(err)), -EINVAL);
		cJSON_Delete(root);
	}
}

static void test_compile_json_keeps_numbers(void **state)
{
	cJSON *root = cJSON_CreateObject();
	struct schema *s = NULL;
	char err[256] = "";

	(void)state;
	cJSON_AddNumberToObject(root, "const", 9007199254740993.0);
	cJSON_AddStringToObject(root, "x-label-zh", "\xe4\xba\x8b\xe4\xbb\xb6");
	assert_int_equal(schema_compile_json(root, &s, err, sizeof(err)), 0);
	cJSON_Delete(root); /* the schema has its own copy */
	assert_true(valid(s, "9007199254740992"));
	assert_false(valid(s, "9007199254740990"));
	assert_string_equal(
	        cJSON_GetObjectItemCaseSensitive(schema_root(s), "x-label-zh")->valuestring,
	        "\xe4\xba\x8b\xe4\xbb\xb6");
	schema_free(s);
	schema_free(NULL);
}

static void test_format_date(void **state)
{
	static const char *const good[] = {"2024-02-29", "2000-02-29", "2023-12-31", "0001-01-01"};
	static const char *const bad[] = {
	        "2024-02-30",
	        "2023-02-29",
	        "1900-02-29",
	        "2024-13-01",
	        "2024-00-10",
	        "2024-01-00",
	        "2024-1-01",
	        "24-01-01",
	        "2024-01-01T00:00:00Z",
	        " 2024-01-01",
	        "2024/01/01",
	        "",
	        "2024-06-1\xe0\xa7\xaa",
	};
	struct schema *s = compile_ok("{\"properties\": {\"d\": {\"format\": \"date\"}}}");
	char doc[128];
	struct errlist e;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		snprintf(doc, sizeof(doc), "{\"d\": \"%s\"}", good[i]);
		if (!valid(s, doc))
			fail_msg("%s should be a valid date", good[i]);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		snprintf(doc, sizeof(doc), "{\"d\": \"%s\"}", bad[i]);
		if (valid(s, doc))
			fail_msg("%s should not be a valid date", bad[i]);
	}
	/* format applies to strings only */
	assert_true(valid(s, "{\"d\": 20240101}"));
	errlist_init(&e);
	assert_int_equal(check(s, "{\"d\": \"2024-02-30\"}", &e), 1);
	expect_error(&e, "/d", "format", "must be a date (YYYY-MM-DD), got \"2024-02-30\"");
	errlist_release(&e);
	schema_free(s);
}

static void test_format_date_time(void **state)
{
	static const char *const good[] = {
	        "2024-05-03T09:12:00+08:00",
	        "2024-05-03T01:12:00Z",
	        "2024-05-03t01:12:00z",
	        "2024-05-03T09:12:00.123456+08:00",
	        "1985-04-12T00:59:59.999999999999999Z",
	        "1998-12-31T23:59:60Z",
	        "1998-12-31T15:59:60.123-08:00",
	        "2016-12-31T23:59:60+00:00",
	        "2017-01-01T07:59:60+08:00",
	};
	static const char *const bad[] = {
	        "2024-05-03T09:12:00",       /* no offset */
	        "2024-05-03T09:12",          /* no seconds */
	        "2024-05-03 09:12:00Z",      /* space */
	        "2024-02-30T09:12:00Z",      /* no such day */
	        "1998-12-31T23:58:60Z",      /* leap second in the wrong minute */
	        "1998-12-31T22:59:60Z",      /* ... the wrong hour */
	        "1998-12-31T23:59:61Z",      /* past a leap second */
	        "1998-12-31T23:59:60+08:00", /* 15:59:60 UTC */
	        "2024-05-03T24:00:00Z",       "2024-05-03T09:60:00Z",
	        "2024-05-03T09:12:00+24:00",  "2024-05-03T09:12:00+10:60",
	        "2024-05-03T09:12:00+08:00Z", "2024-05-03T09:12:00.Z",
	        "+12024-05-03T09:12:00Z",     "2024-05-03T0\xe0\xa7\xaa:00:00Z",
	};
	struct schema *s = compile_ok("{\"items\": {\"format\": \"date-time\"}}");
	char doc[128];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		snprintf(doc, sizeof(doc), "[\"%s\"]", good[i]);
		if (!valid(s, doc))
			fail_msg("%s should be a valid date-time", good[i]);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		snprintf(doc, sizeof(doc), "[\"%s\"]", bad[i]);
		if (valid(s, doc))
			fail_msg("%s should not be a valid date-time", bad[i]);
	}
	schema_free(s);
}

static void test_error_pointers_and_messages(void **state)
{
	struct schema *s = compile_ok(
	        "{\"type\": \"object\", \"additionalProperties\": false,"
	        " \"required\": [\"level\", \"items\", \"a/b~c\"],"
	        " \"properties\": {"
	        "  \"level\": {\"enum\": [1, 2, 3]},"
	        "  \"a/b~c\": {\"type\": \"integer\", \"minimum\": 0},"
	        "  \"status\": {\"const\": \"open\"},"
	        "  \"ratio\": {\"exclusiveMaximum\": 1, \"exclusiveMinimum\": 0, \"multipleOf\": "
	        "0.25},"
	        "  \"code\": {\"type\": \"string\", \"pattern\": \"^R-[0-9]+$\"},"
	        "  \"types\": {\"type\": \"array\", \"minItems\": 1, \"uniqueItems\": true},"
	        "  \"items\": {\"type\": \"array\", \"maxItems\": 5, \"items\": {"
	        "    \"type\": \"object\", \"properties\": {\"deadline\": {\"format\": \"date\"}},"
	        "    \"dependentRequired\": {\"completed_on\": [\"status\"]}}}"
	        "}}");
	struct errlist e;
	int r;

	(void)state;
	errlist_init(&e);
	r = check(s,
	          "{\"a/b~c\": -1, \"status\": \"closed\", \"ratio\": 1, \"code\": \"X-1\","
	          "\"types\": [\"a\", \"b\", \"a\"], \"surprise\": true, \"items\": ["
	          "{}, {}, {}, {\"deadline\": \"2024-02-30\", \"completed_on\": \"2024-01-01\"}]}",
	          &e);
	assert_int_equal(r, 9);
	assert_int_equal((size_t)r, e.count);
	expect_error(&e, "", "required", "missing required property \"level\"");
	expect_error(&e, "", "additionalProperties", "unexpected property \"surprise\"");
	expect_error(&e, "/a~1b~0c", "minimum", "must be >= 0, got -1");
	expect_error(&e, "/status", "const", "must be \"open\", got \"closed\"");
	expect_error(&e, "/ratio", "exclusiveMaximum", "must be < 1, got 1");
	expect_error(&e, "/code", "pattern", "must match the pattern \"^R-[0-9]+$\", got \"X-1\"");
	expect_error(&e, "/types", "uniqueItems", "items 0 and 2 are equal");
	expect_error(&e, "/items/3/deadline", "format", "2024-02-30");
	expect_error(&e, "/items/3", "dependentRequired",
	             "property \"completed_on\" requires property \"status\"");
	assert_null(find(&e, "", "type"));
	errlist_release(&e);

	errlist_init(&e);
	assert_int_equal(
	        check(s, "{\"level\": 4, \"items\": [], \"a/b~c\": 0, \"ratio\": 0.3}", &e), 2);
	expect_error(&e, "/level", "enum", "must be one of 1, 2, 3, got 4");
	expect_error(&e, "/ratio", "multipleOf", "must be a multiple of 0.25, got 0.3");
	errlist_release(&e);

	errlist_init(&e);
	assert_int_equal(check(s, "[]", &e), 1);
	expect_error(&e, "", "type", "must be object, got an array");
	errlist_release(&e);
	schema_free(s);
}

/* anyOf, oneOf and not report once, at their own level. */
static void test_combinator_messages(void **state)
{
	struct schema *s =
	        compile_ok("{\"properties\": {"
	                   " \"any\": {\"anyOf\": [{\"type\": \"integer\", \"minimum\": 10},"
	                   "   {\"type\": \"string\"}, {\"type\": \"array\", \"maxItems\": 0}]},"
	                   " \"one\": {\"oneOf\": [{\"minimum\": 0}, {\"maximum\": 10}]},"
	                   " \"neg\": {\"not\": {\"type\": \"null\"}}}}");
	struct errlist e;

	(void)state;
	errlist_init(&e);
	assert_int_equal(check(s, "{\"any\": 5, \"one\": 5, \"neg\": null}", &e), 3);
	expect_error(&e, "/any", "anyOf", "anyOf/0: must be >= 10, got 5");
	expect_error(&e, "/one", "oneOf", "matches oneOf/0 and oneOf/1");
	expect_error(&e, "/neg", "not", "must not match");
	errlist_release(&e);
	errlist_init(&e);
	assert_int_equal(check(s, "{\"any\": [1, {}], \"one\": 5.5, \"neg\": 0}", &e), 2);
	expect_error(&e, "/any", "anyOf", "at most 0 items");
	errlist_release(&e);
	assert_true(valid(s, "{\"any\": 11, \"one\": 11, \"neg\": 0}"));
	assert_true(valid(s, "{\"one\": -1}"));
	schema_free(s);
}

/* maxLength and minLength count code points, not bytes: Chinese text is 3 bytes each. */
static void test_length_chinese(void **state)
{
	struct schema *s = compile_ok("{\"type\": \"string\", \"minLength\": 2, \"maxLength\": 5}");
	struct errlist e;

	(void)state;
	/* 反霸凌专项: 5 characters, 15 bytes */
	assert_true(valid(s, "\"\xe5\x8f\x8d\xe9\x9c\xb8\xe5\x87\x8c\xe4\xb8\x93\xe9\xa1\xb9\""));
	assert_true(valid(s, "\"\xe6\x95\x99\xe8\x82\xb2\"")); /* 教育 */
	assert_false(valid(s, "\"\xe6\x95\x99\""));            /* 教 */
	assert_true(valid(s, "\"\\u6559\\u80b2\""));
	assert_true(valid(s, "\"\\ud83d\\ude00x\"")); /* an emoji counts once */
	errlist_init(&e);
	assert_int_equal(
	        check(s, "\"\xe5\x8f\x8d\xe9\x9c\xb8\xe5\x87\x8c\xe4\xb8\x93\xe9\xa1\xb9!\"", &e),
	        1);
	expect_error(&e, "", "maxLength", "must be at most 5 characters long, got 6");
	errlist_release(&e);
	schema_free(s);
}

static void test_numbers(void **state)
{
	struct schema *s = compile_ok("{\"multipleOf\": 0.0001}");
	struct schema *big = compile_ok("{\"type\": \"integer\", \"multipleOf\": 0.123456789}");
	struct schema *integer = compile_ok("{\"type\": \"integer\"}");

	(void)state;
	assert_true(valid(s, "0.0075"));
	assert_true(valid(s, "19.99"));
	assert_false(valid(s, "0.00751"));
	assert_false(valid(big, "1e308"));
	assert_true(valid(integer, "1.0"));
	assert_true(valid(integer, "-0"));
	assert_true(valid(integer, "1e300"));
	assert_false(valid(integer, "1.5"));
	assert_false(valid(integer, "\"1\""));
	schema_free(s);
	schema_free(big);
	schema_free(integer);
}

static void test_unique_items(void **state)
{
	struct schema *s = compile_ok("{\"uniqueItems\": true}");
	struct buf b;
	struct errlist e;

	(void)state;
	assert_false(valid(s, "[1, 1.0]"));
	assert_false(valid(s, "[0, -0]"));
	assert_true(valid(s, "[0, false, null, \"0\", [], {}]"));
	assert_false(valid(s, "[{\"a\": 1, \"b\": [1, 2]}, {\"b\": [1, 2.0], \"a\": 1}]"));
	assert_true(valid(s, "[{\"a\": 1, \"b\": [1, 2]}, {\"b\": [2, 1], \"a\": 1}]"));
	assert_true(valid(s, "[[1, 2], [2, 1]]"));

	/* enough items to take the hashing path */
	buf_init(&b, 1 << 20);
	assert_int_equal(buf_putc(&b, '['), 0);
	for (int i = 0; i < 500; i++)
		assert_int_equal(
		        buf_printf(&b, "%s{\"n\": %d, \"s\": \"v%d\"}", i ? "," : "", i, i), 0);
	assert_int_equal(buf_putc(&b, ']'), 0);
	assert_true(valid(s, b.data));
	b.len--;
	assert_int_equal(buf_puts(&b, ", {\"s\": \"v123\", \"n\": 123.0}]"), 0);
	errlist_init(&e);
	assert_int_equal(check(s, b.data, &e), 1);
	expect_error(&e, "", "uniqueItems", "items 123 and 500 are equal");
	errlist_release(&e);
	buf_release(&b);
	schema_free(s);
}

static void test_regex_ecma(void **state)
{
	struct schema *digit = compile_ok("{\"pattern\": \"^\\\\d+$\"}");
	struct schema *letter = compile_ok("{\"pattern\": \"^\\\\p{Letter}+$\"}");
	struct schema *space = compile_ok("{\"pattern\": \"^\\\\s$\"}");
	struct schema *end = compile_ok("{\"pattern\": \"^a$\"}");
	struct schema *pair = compile_ok("{\"pattern\": \"^\\\\ud83d\\\\ude00$\"}");
	struct schema *props =
	        compile_ok("{\"patternProperties\": {\"^x-\": {\"type\": \"string\"}}, "
	                   "\"additionalProperties\": {\"type\": \"integer\"}}");

	(void)state;
	assert_true(valid(digit, "\"0123\""));
	assert_false(valid(digit, "\"\xd9\xa1\"")); /* ARABIC-INDIC DIGIT ONE: ASCII only */
	assert_true(valid(letter, "\"\xe4\xb8\xad\xe6\x96\x87"
	                          "abc\""));
	assert_false(valid(letter, "\"abc1\""));
	assert_true(valid(space, "\"\\u00a0\""));
	assert_true(valid(space, "\"\\u3000\""));
	assert_false(valid(space, "\"x\""));
	assert_true(valid(end, "\"a\""));
	assert_false(valid(end, "\"a\\n\""));
	assert_true(valid(pair, "\"\\ud83d\\ude00\""));
	assert_true(valid(props, "{\"x-a\": \"s\", \"n\": 1}"));
	assert_false(valid(props, "{\"x-a\": 1}"));
	assert_false(valid(props, "{\"n\": \"s\"}"));
	schema_free(digit);
	schema_free(letter);
	schema_free(space);
	schema_free(end);
	schema_free(pair);
	schema_free(props);
}

/* Catastrophic backtracking hits the match limit instead of running for ever. */
static void test_regex_limit(void **state)
{
	struct schema *s = compile_ok("{\"pattern\": \"^(a|a?)+$\"}");
	struct errlist e;
	char doc[128];
	int r;

	(void)state;
	memset(doc, 'a', sizeof(doc));
	doc[0] = '"';
	doc[sizeof(doc) - 3] = 'b';
	doc[sizeof(doc) - 2] = '"';
	doc[sizeof(doc) - 1] = '\0';
	errlist_init(&e);
	r = check(s, doc, &e);
	assert_int_equal(r, -E2BIG);
	expect_error(&e, "", "limit", "took too long");
	errlist_release(&e);
	schema_free(s);
}

static void test_instance_depth(void **state)
{
	struct schema *s = compile_ok("{\"$defs\": {\"t\": {\"items\": {\"$ref\": \"#/$defs/t\"}}},"
	                              "\"$ref\": \"#/$defs/t\"}");
	struct errlist e;
	cJSON *root = cJSON_CreateArray(), *cur = root;
	int r;

	(void)state;
	for (int i = 0; i < 200; i++) {
		cJSON *next = cJSON_CreateArray();

		cJSON_AddItemToArray(cur, next);
		cur = next;
	}
	errlist_init(&e);
	r = schema_validate(s, root, &e);
	assert_int_equal(r, -ELOOP);
	expect_error(&e,
	             "/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/"
	             "0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0",
	             "limit", "nested deeper than 64");
	errlist_release(&e);
	cJSON_Delete(root);
	/* 64 levels are fine */
	{
		struct buf b;

		buf_init(&b, 4096);
		for (int i = 0; i < 64; i++)
			assert_int_equal(buf_putc(&b, '['), 0);
		for (int i = 0; i < 64; i++)
			assert_int_equal(buf_putc(&b, ']'), 0);
		assert_true(valid(s, b.data));
		buf_release(&b);
	}
	schema_free(s);
}

static void test_unevaluated(void **state)
{
	struct schema *s = compile_ok(
	        "{\"type\": \"object\", \"properties\": {\"kind\": {\"enum\": [\"a\", \"b\"]}},"
	        " \"if\": {\"properties\": {\"kind\": {\"const\": \"a\"}}},"
	        " \"then\": {\"properties\": {\"a_only\": true}},"
	        " \"else\": {\"properties\": {\"b_only\": true}},"
	        " \"unevaluatedProperties\": false}");
	struct schema *items = compile_ok(
	        "{\"prefixItems\": [{\"type\": \"string\"}], \"contains\": {\"type\": \"integer\"},"
	        " \"unevaluatedItems\": {\"type\": \"boolean\"}}");
	struct errlist e;

	(void)state;
	assert_true(valid(s, "{\"kind\": \"a\", \"a_only\": 1}"));
	assert_true(valid(s, "{\"kind\": \"b\", \"b_only\": 1}"));
	assert_false(valid(s, "{\"kind\": \"b\", \"a_only\": 1}"));
	errlist_init(&e);
	assert_int_equal(check(s, "{\"kind\": \"a\", \"b_only\": 1}", &e), 1);
	expect_error(&e, "", "unevaluatedProperties", "unexpected property \"b_only\"");
	errlist_release(&e);
	assert_true(valid(items, "[\"s\", 1, true, 2, false]"));
	assert_false(valid(items, "[\"s\", 1, \"t\"]"));
	schema_free(s);
	schema_free(items);
}

static void test_contains(void **state)
{
	struct schema *s =
	        compile_ok("{\"contains\": {\"const\": \"police_referral\"}, \"minContains\": 1, "
	                   "\"maxContains\": 2}");
	struct errlist e;

	(void)state;
	assert_true(valid(s, "[\"education\", \"police_referral\"]"));
	assert_false(valid(s, "[\"police_referral\", \"police_referral\", \"police_referral\"]"));
	errlist_init(&e);
	assert_int_equal(check(s, "[\"education\"]", &e), 1);
	expect_error(&e, "", "contains", "found 0");
	errlist_release(&e);
	schema_free(s);
}

static void test_root_and_file(void **state)
{
	char path[] = "/tmp/test_schema_XXXXXX";
	const char text[] = "\xef\xbb\xbf{\"title\": \"Incident\", \"x-rules\": [{\"left\": "
	                    "\"victims\"}], \"type\": \"object\"}";
	struct schema *s = NULL;
	char err[512] = "";
	const cJSON *rules;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
	close(fd);
	assert_int_equal(schema_load_file(path, &s, err, sizeof(err)), 0);
	rules = cJSON_GetObjectItemCaseSensitive(schema_root(s), "x-rules");
	assert_true(cJSON_IsArray(rules));
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(schema_root(s), "title")->valuestring,
	                    "Incident");
	assert_false(valid(s, "1"));
	schema_free(s);
	unlink(path);

	s = NULL;
	assert_int_equal(schema_load_file(path, &s, err, sizeof(err)), -ENOENT);
	assert_null(s);
	assert_non_null(strstr(err, path));
}

struct worker {
	const struct schema *s;
	cJSON *good, *bad;
	int failures;
};

static void *work(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 2000; i++) {
		struct errlist e;

		errlist_init(&e);
		if (schema_validate(w->s, w->good, NULL) != 0 ||
		    schema_validate(w->s, w->bad, &e) != 3 || e.count != 3 ||
		    strcmp(e.entries[0].pointer, "/items/1/item_id") != 0)
			w->failures++;
		errlist_release(&e);
	}
	return NULL;
}

/* Two threads share one compiled schema (patterns included). */
static void test_threads(void **state)
{
	struct schema *s = compile_ok(
	        "{\"type\": \"object\", \"properties\": {\"items\": {\"type\": \"array\","
	        " \"items\": {\"type\": \"object\", \"required\": [\"item_id\"],"
	        "  \"properties\": {\"item_id\": {\"type\": \"string\", \"pattern\": "
	        "\"^R-\\\\d{3}$\"},"
	        "   \"deadline\": {\"format\": \"date\"}, \"problem\": {\"maxLength\": 4}},"
	        "  \"unevaluatedProperties\": false}}}}");
	struct worker w[2];
	pthread_t t[2];

	(void)state;
	for (int i = 0; i < 2; i++) {
		w[i].s = s;
		w[i].failures = 0;
		w[i].good = parse(
		        "{\"items\": [{\"item_id\": \"R-001\", \"deadline\": \"2024-05-31\","
		        "\"problem\": \"\xe7\x9b\x91\xe6\x8e\xa7\xe7\x9b\xb2\xe5\x8c\xba\"}]}");
		w[i].bad = parse("{\"items\": [{\"item_id\": \"R-001\"}, {\"item_id\": \"R-1\","
		                 "\"deadline\": \"2024-06-31\", \"x\": 1}]}");
		assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].failures, 0);
		cJSON_Delete(w[i].good);
		cJSON_Delete(w[i].bad);
	}
	schema_free(s);
}

static int parse_err(const char *text, size_t len, int depth, char *err, size_t errlen)
{
	cJSON *j = NULL;
	int r = json_parse_untrusted(text, len, depth, &j, err, errlen);

	if (r == 0) {
		cJSON_Delete(j);
		fail_msg("json_parse_untrusted accepted %.*s", (int)len, text);
	}
	assert_null(j);
	return r;
}

static void test_json_parse_untrusted(void **state)
{
	static const struct {
		const char *text;
		const char *message;
	} bad[] = {
	        {"\"\xc0\xaf\"", "invalid UTF-8"},         /* overlong */
	        {"\"\xed\xa0\x80\"", "invalid UTF-8"},     /* a surrogate */
	        {"\"\xe4\xb8\"", "invalid UTF-8"},         /* cut short */
	        {"\"\xf4\x90\x80\x80\"", "invalid UTF-8"}, /* beyond U+10FFFF */
	        {"{\"\xff\": 1}", "invalid UTF-8"},
	        {"\xe4\xb8\xad", "unexpected character"},
	        {"\xff", "invalid UTF-8"},
	        {"\"a\\u0000b\"", "\\u0000"},
	        {"\"\\ud800\"", "surrogate"},
	        {"\"\\udc00\\ud800\"", "surrogate"},
	        {"\"\\x41\"", "invalid escape"},
	        {"\"tab\there\"", "control character"},
	        {"01", "leading zero"},
	        {"1.", "invalid number"},
	        {"-", "invalid number"},
	        {".5", "unexpected character"},
	        {"+1", "unexpected character"},
	        {"1e400", "number out of range"},
	        {"[1, 2,]", "expected a value"},
	        {"{\"a\": 1,}", "expected a member name"},
	        {"{\"a\" 1}", "expected ':'"},
	        {"[1 2]", "expected ',' or ']'"},
	        {"{} {}", "unexpected data after the value"},
	        {"", "expected a value"},
	        {"[", "end of input"},
	        {"nul", "unexpected character"},
	        {"NaN", "unexpected character"},
	        {"\xef\xbb\xbf{}", "byte order mark"},
	        {"{\"a\": {\"b\": {\"x\": 1, \"y\": 2, \"x\": 3}}}",
	         "duplicate member \"x\" at /a/b"},
	        {"{\"x\": 1, \"x\": 1}", "duplicate member \"x\" at the top level"},
	        {"[{}, {\"k/~\": {\"d\": 1, \"d\": 1}}]", "at /1/k~1~0"},
	        {"1234567890123456789012345678901234567890123456789012345678901234", "too long"},
	};
	struct buf b;
	char err[256];
	cJSON *j = NULL;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err[0] = '\0';
		assert_int_equal(parse_err(bad[i].text, strlen(bad[i].text), 64, err, sizeof(err)),
		                 -EINVAL);
		if (!strstr(err, bad[i].message))
			fail_msg("%s: '%s' lacks '%s'", bad[i].text, err, bad[i].message);
	}
	/* positions count lines and characters */
	parse_err("{\n  \"\xe4\xb8\xad\": tru\n}", 19, 64, err, sizeof(err));
	assert_non_null(strstr(err, "line 2, column 8"));

	/* many members: duplicates found by sorting */
	buf_init(&b, 1 << 20);
	assert_int_equal(buf_putc(&b, '{'), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(buf_printf(&b, "\"m%d\": %d,", i, i), 0);
	assert_int_equal(buf_puts(&b, "\"m57\": 0}"), 0);
	parse_err(b.data, b.len, 64, err, sizeof(err));
	assert_non_null(strstr(err, "duplicate member \"m57\""));
	buf_release(&b);

	/* depth: 3 allowed, 4 not */
	assert_int_equal(json_parse_untrusted("[[{\"a\": 1}]]", 12, 3, &j, NULL, 0), 0);
	cJSON_Delete(j);
	parse_err("[[{\"a\": []}]]", 13, 3, err, sizeof(err));
	assert_non_null(strstr(err, "nesting too deep"));

	/* no NUL terminator needed: only len bytes are read */
	assert_int_equal(json_parse_untrusted("[1, 2]xyz", 6, 64, &j, NULL, 0), 0);
	assert_int_equal(cJSON_GetArraySize(j), 2);
	cJSON_Delete(j);

	assert_int_equal(json_parse_untrusted("{}", JSON_MAX_TEXT + 1, 64, &j, err, sizeof(err)),
	                 -EMSGSIZE);

	j = parse(" {\"\xe7\x97\x85\": [\"\\ud83d\\ude00\", -0.5e+3, 0, true, false, null,"
	          " \"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]}\r\n");
	assert_true(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "\xe7\x97\x85")));
	assert_string_equal(json_pointer_get(j, "/\xe7\x97\x85/0")->valuestring,
	                    "\xf0\x9f\x98\x80");
	assert_true(json_pointer_get(j, "/\xe7\x97\x85/1")->valuedouble == -500);
	cJSON_Delete(j);
}

static void test_json_pointer(void **state)
{
	cJSON *j = parse("{\"a\": {\"b/c\": [10, 20, {\"~d\": \"x\"}]}, \"\": 1, \"0\": 2}");
	struct buf b;

	(void)state;
	assert_ptr_equal(json_pointer_get(j, ""), j);
	assert_int_equal(json_pointer_get(j, "/a/b~1c/1")->valueint, 20);
	assert_string_equal(json_pointer_get(j, "/a/b~1c/2/~0d")->valuestring, "x");
	assert_int_equal(json_pointer_get(j, "/")->valueint, 1);
	assert_int_equal(json_pointer_get(j, "/0")->valueint, 2);
	assert_null(json_pointer_get(j, "/a/b~1c/3"));
	assert_null(json_pointer_get(j, "/a/b~1c/01"));
	assert_null(json_pointer_get(j, "/a/b~1c/-"));
	assert_null(json_pointer_get(j, "/a/b~1c/1/x"));
	assert_null(json_pointer_get(j, "/a/b~2c"));
	assert_null(json_pointer_get(j, "a"));
	assert_null(json_pointer_get(j, "/missing"));
	assert_null(json_pointer_get(NULL, ""));

	buf_init(&b, 64);
	assert_int_equal(json_pointer_append(&b, "items"), 0);
	assert_int_equal(json_pointer_append_index(&b, 3), 0);
	assert_int_equal(json_pointer_append(&b, "a/b~c"), 0);
	assert_int_equal(json_pointer_append(&b, ""), 0);
	assert_string_equal(b.data, "/items/3/a~1b~0c/");
	assert_non_null(json_pointer_get(j, "/a/b~1c/2/~0d"));
	/* a token that does not fit leaves the buffer as it was */
	assert_int_equal(
	        json_pointer_append(&b, "0123456789012345678901234567890123456789012345678"),
	        -EMSGSIZE);
	assert_string_equal(b.data, "/items/3/a~1b~0c/");
	buf_release(&b);
	cJSON_Delete(j);
}

/* A form shaped like FORMS.md's incident return. */
static void test_incident_form(void **state)
{
	struct schema *s = compile_ok(
	        "{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\","
	        " \"title\": \"Incident\", \"x-label-zh\": \"\xe4\xba\x8b\xe4\xbb\xb6\","
	        " \"type\": \"object\", \"additionalProperties\": false,"
	        " \"required\": [\"occurred_on\", \"level\", \"types\", \"victims\", \"status\","
	        "   \"closed_on\", \"summary\"],"
	        " \"$defs\": {\"count\": {\"type\": \"integer\", \"minimum\": 0},"
	        "   \"sex\": {\"type\": \"object\", \"additionalProperties\": false,"
	        "     \"required\": [\"female\", \"male\"],"
	        "     \"properties\": {\"female\": {\"$ref\": \"#/$defs/count\"},"
	        "       \"male\": {\"$ref\": \"#/$defs/count\"}}}},"
	        " \"properties\": {"
	        "  \"occurred_on\": {\"type\": \"string\", \"format\": \"date\"},"
	        "  \"level\": {\"type\": \"integer\", \"enum\": [1, 2, 3]},"
	        "  \"types\": {\"type\": \"array\", \"minItems\": 1, \"uniqueItems\": true,"
	        "    \"items\": {\"enum\": [\"physical\", \"verbal\", \"cyber\"]}},"
	        "  \"victims\": {\"$ref\": \"#/$defs/sex\"},"
	        "  \"status\": {\"enum\": [\"open\", \"closed\"]},"
	        "  \"closed_on\": {\"type\": [\"string\", \"null\"], \"format\": \"date\"},"
	        "  \"summary\": {\"type\": \"string\", \"maxLength\": 500}},"
	        " \"if\": {\"properties\": {\"status\": {\"const\": \"closed\"}}},"
	        " \"then\": {\"properties\": {\"closed_on\": {\"type\": \"string\"}}},"
	        " \"else\": {\"properties\": {\"closed_on\": {\"type\": \"null\"}}}}");
	struct errlist e;

	(void)state;
	assert_true(valid(s,
	                  "{\"occurred_on\": \"2024-05-02\", \"level\": 2, \"types\": "
	                  "[\"physical\", \"verbal\"], \"victims\": {\"female\": 0, \"male\": 1},"
	                  "\"status\": \"open\", \"closed_on\": null, \"summary\": "
	                  "\"\xe8\xaf\xbe\xe9\x97\xb4\"}"));
	errlist_init(&e);
	assert_int_equal(check(s,
	                       "{\"occurred_on\": \"2024-5-2\", \"level\": 2.0, \"types\": "
	                       "[\"cyber\", \"cyber\"], \"victims\": {\"female\": -1},"
	                       "\"status\": \"closed\", \"closed_on\": null, \"summary\": \"\"}",
	                       &e),
	                 5);
	expect_error(&e, "/occurred_on", "format", NULL);
	expect_error(&e, "/types", "uniqueItems", NULL);
	expect_error(&e, "/victims", "required", "\"male\"");
	expect_error(&e, "/victims/female", "minimum", "got -1");
	expect_error(&e, "/closed_on", "type", "must be string, got null");
	errlist_release(&e);
	schema_free(s);
}

/* The error list is bounded; the count returned is still the number of failures. */
static void test_many_errors(void **state)
{
	struct schema *s = compile_ok("{\"items\": {\"type\": \"string\"}}");
	struct errlist e;
	struct buf b;

	(void)state;
	buf_init(&b, 1 << 20);
	assert_int_equal(buf_putc(&b, '['), 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(buf_printf(&b, "%s%d", i ? "," : "", i), 0);
	assert_int_equal(buf_putc(&b, ']'), 0);
	errlist_init(&e);
	assert_int_equal(check(s, b.data, &e), 1000);
	assert_int_equal(e.count, ERRLIST_MAX);
	errlist_release(&e);
	buf_release(&b);
	schema_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_ref_defs),
	        cmocka_unit_test(test_ref_recursive),
	        cmocka_unit_test(test_ref_loop),
	        cmocka_unit_test(test_compile_errors),
	        cmocka_unit_test(test_compile_limits),
	        cmocka_unit_test(test_compile_json_keeps_numbers),
	        cmocka_unit_test(test_format_date),
	        cmocka_unit_test(test_format_date_time),
	        cmocka_unit_test(test_error_pointers_and_messages),
	        cmocka_unit_test(test_combinator_messages),
	        cmocka_unit_test(test_length_chinese),
	        cmocka_unit_test(test_numbers),
	        cmocka_unit_test(test_unique_items),
	        cmocka_unit_test(test_regex_ecma),
	        cmocka_unit_test(test_regex_limit),
	        cmocka_unit_test(test_instance_depth),
	        cmocka_unit_test(test_unevaluated),
	        cmocka_unit_test(test_contains),
	        cmocka_unit_test(test_root_and_file),
	        cmocka_unit_test(test_threads),
	        cmocka_unit_test(test_json_parse_untrusted),
	        cmocka_unit_test(test_json_pointer),
	        cmocka_unit_test(test_incident_form),
	        cmocka_unit_test(test_many_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
