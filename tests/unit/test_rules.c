/* Unit tests for common/rules: the x-rules grammar of docs/FORMS-FORMAT.md, the rules of
 * shared/FORMS.md, and the forms and example returns in the tree. Run from the repo root. */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "common/errlist.h"
#include "common/rules.h"
#include "common/banned.h"

static cJSON *parse(const char *json)
{
	cJSON *j = cJSON_Parse(json);

	if (!j)
		fail_msg("test JSON does not parse: %s", json);
	return j;
}

/* The schema text is freed right after compiling: the rules must not borrow it. */
static struct rules *compile_ok(const char *json)
{
	cJSON *j = parse(json);
	struct rules *rs = NULL;
	char err[256] = "";
	int r = rules_compile(j, err, sizeof(err), &rs);

	cJSON_Delete(j);
	if (r != 0)
		fail_msg("compile failed (%d): %s\nrules: %s", r, err, json);
	assert_non_null(rs);
	return rs;
}

static void compile_fails(const char *json, const char *expect)
{
	struct rules *sentinel = (struct rules *)&sentinel, *rs = sentinel;
	cJSON *j = parse(json);
	char err[256] = "";
	int r = rules_compile(j, err, sizeof(err), &rs);

	cJSON_Delete(j);
	if (r != -EINVAL)
		fail_msg("compile returned %d, not -EINVAL: %s", r, json);
	assert_ptr_equal(rs, sentinel); /* untouched on failure */
	if (!strstr(err, expect))
		fail_msg("error \"%s\" lacks \"%s\"", err, expect);
}

/* Checks data against rules; the entries stay in errs. */
static int check(const char *rules_json, const char *data_json, struct errlist *errs)
{
	struct rules *rs = compile_ok(rules_json);
	cJSON *data = parse(data_json);
	int r = rules_check(rs, data, errs);

	cJSON_Delete(data);
	rules_free(rs);
	return r;
}

/* How many failures one rule "left op right" finds in data (0 or 1). */
static int verdict(const char *left, const char *op, const char *right, const char *data)
{
	struct errlist errs;
	char rule[1024];
	int r;

	if (right)
		snprintf(rule, sizeof(rule),
		         "[{\"id\": \"t\", \"left\": %s, \"op\": \"%s\", \"right\": %s, "
		         "\"message\": \"m\"}]",
		         left, op, right);
	else
		snprintf(rule, sizeof(rule),
		         "[{\"id\": \"t\", \"left\": %s, \"op\": \"%s\", \"message\": \"m\"}]",
		         left, op);
	errlist_init(&errs);
	r = check(rule, data, &errs);
	assert_true(r >= 0);
	assert_int_equal((size_t)r, errs.count);
	errlist_release(&errs);
	return r;
}

#define PASSES(l, op, r, data) assert_int_equal(verdict(l, op, r, data), 0)
#define FAILS(l, op, r, data) assert_int_equal(verdict(l, op, r, data), 1)

static void test_ordered_operators(void **state)
{
	const char *d =
	        "{\"a\": 1, \"b\": 2, \"c\": 2, \"s\": \"2024-05-02\", \"t\": \"2024-05-03\"}";

	(void)state;
	PASSES("\"/a\"", "<", "\"/b\"", d);
	FAILS("\"/b\"", "<", "\"/c\"", d);
	FAILS("\"/b\"", "<", "\"/a\"", d);
	PASSES("\"/b\"", "<=", "\"/c\"", d);
	PASSES("\"/a\"", "<=", "\"/b\"", d);
	FAILS("\"/b\"", "<=", "\"/a\"", d);
	PASSES("\"/b\"", ">", "\"/a\"", d);
	FAILS("\"/b\"", ">", "\"/c\"", d);
	PASSES("\"/b\"", ">=", "\"/c\"", d);
	FAILS("\"/a\"", ">=", "\"/b\"", d);
	/* numbers by value, fractions too */
	PASSES("1.5", "<", "2", "{}");
	FAILS("-1e3", ">", "-999", "{}");
	/* strings by bytes: dates order correctly */
	PASSES("\"/s\"", "<=", "\"/t\"", d);
	PASSES("\"/s\"", "<", "\"/t\"", d);
	FAILS("\"/t\"", "<=", "\"/s\"", d);
	FAILS("\"/s\"", ">", "\"/t\"", d);
	PASSES("\"/s\"", ">=", "{\"const\": \"2024-05-02\"}", d);
	FAILS("\"/s\"", ">=", "{\"const\": \"2024-12-01\"}", d);
	FAILS("{\"const\": \"b\"}", "<", "{\"const\": \"B\"}", "{}");
	PASSES("{\"const\": \"\xC3\xA9\"}", ">", "{\"const\": \"z\"}", "{}"); /* bytes, unsigned */
}

static void test_equality_operators(void **state)
{
	const char *d =
	        "{\"n\": 1, \"o\": {\"a\": 1, \"b\": [1, 2]}, \"p\": {\"b\": [1, 2], \"a\": 1.0},"
	        " \"q\": {\"b\": [2, 1], \"a\": 1}, \"z\": null}";

	(void)state;
	PASSES("\"/n\"", "==", "1.0", d);
	FAILS("\"/n\"", "!=", "1", d);
	PASSES("\"/n\"", "!=", "2", d);
	PASSES("{\"const\": \"a\"}", "==", "{\"const\": \"a\"}", "{}");
	FAILS("{\"const\": \"a\"}", "==", "{\"const\": \"A\"}", "{}");
	/* objects regardless of member order; arrays in order */
	PASSES("\"/o\"", "==", "\"/p\"", d);
	FAILS("\"/o\"", "==", "\"/q\"", d);
	PASSES("\"/o\"", "!=", "\"/q\"", d);
	PASSES("\"/o/b\"", "==", "{\"const\": [1, 2]}", d);
	FAILS("\"/o/b\"", "==", "{\"const\": [1, 2, 3]}", d);
	FAILS("\"/o\"", "==", "{\"const\": {\"a\": 1}}", d);
	/* different types are never equal */
	FAILS("1", "==", "{\"const\": \"1\"}", "{}");
	FAILS("true", "==", "1", "{}");
	FAILS("false", "==", "null", "{}");
	FAILS("{\"const\": []}", "==", "{\"const\": {}}", "{}");
	PASSES("true", "==", "true", "{}");
	FAILS("true", "==", "false", "{}");
	/* null equals only null; a missing value is null */
	PASSES("\"/z\"", "==", "null", d);
	PASSES("\"/missing\"", "==", "null", d);
	PASSES("\"/missing\"", "==", "\"/z\"", d);
	FAILS("\"/missing\"", "!=", "null", d);
	FAILS("\"/n\"", "==", "null", d);
	PASSES("\"/n\"", "!=", "null", d);
}

static void test_membership_operators(void **state)
{
	const char *d = "{\"s\": \"done\", \"m\": [\"education\", \"discipline\"], \"n\": 3,"
	                " \"objs\": [{\"a\": 1}, [1, 2]]}";

	(void)state;
	PASSES("\"/s\"", "in", "{\"const\": [\"done\", \"verified\"]}", d);
	FAILS("\"/s\"", "in", "{\"const\": [\"open\", \"verified\"]}", d);
	PASSES("\"/s\"", "not_in", "{\"const\": [\"open\"]}", d);
	FAILS("\"/s\"", "not_in", "{\"const\": [\"open\", \"done\"]}", d);
	PASSES("\"/n\"", "in", "{\"const\": [1, 2, 3.0]}", d);
	PASSES("{\"const\": \"discipline\"}", "in", "\"/m\"", d);
	PASSES("\"/m\"", "contains", "{\"const\": \"education\"}", d);
	FAILS("\"/m\"", "contains", "{\"const\": \"police_referral\"}", d);
	PASSES("\"/m\"", "not_contains", "{\"const\": \"police_referral\"}", d);
	FAILS("\"/m\"", "not_contains", "{\"const\": \"discipline\"}", d);
	PASSES("\"/objs\"", "contains", "{\"const\": {\"a\": 1.0}}", d);
	PASSES("\"/objs\"", "contains", "{\"const\": [1, 2]}", d);
	FAILS("\"/objs\"", "contains", "{\"const\": [2, 1]}", d);
	/* null is a value like any other on the searched side */
	PASSES("\"/missing\"", "in", "{\"const\": [null]}", d);
	FAILS("\"/missing\"", "in", "{\"const\": [\"a\"]}", d);
	PASSES("\"/missing\"", "not_in", "{\"const\": [\"a\"]}", d);
	/* empty arrays */
	FAILS("\"/s\"", "in", "{\"const\": []}", d);
	PASSES("\"/s\"", "not_in", "{\"const\": []}", d);
}

/* A null or a type mismatch makes a rule not apply: it passes. */
static void test_not_applicable(void **state)
{
	const char *d = "{\"n\": 1, \"s\": \"x\", \"b\": true, \"z\": null, \"a\": [1], \"o\": {}}";

	(void)state;
	PASSES("\"/missing\"", "<", "1", d);
	PASSES("\"/missing\"", ">", "1", d);
	PASSES("\"/z\"", ">=", "\"/n\"", d);
	PASSES("\"/n\"", "<=", "\"/missing\"", d);
	PASSES("\"/s\"", "<", "\"/n\"", d); /* string and number */
	PASSES("\"/n\"", ">", "\"/s\"", d);
	PASSES("\"/b\"", "<", "\"/b\"", d); /* booleans do not order */
	PASSES("\"/a\"", ">", "\"/a\"", d);
	PASSES("\"/o\"", ">", "0", d);
	PASSES("\"/missing/deeper/still\"", "<", "0", d);
	/* in/not_in need an array on the right, contains on the left */
	PASSES("\"/n\"", "in", "\"/missing\"", d);
	PASSES("\"/n\"", "not_in", "\"/missing\"", d);
	PASSES("\"/n\"", "in", "\"/o\"", d);
	PASSES("\"/missing\"", "contains", "1", d);
	PASSES("\"/s\"", "not_contains", "{\"const\": \"x\"}", d);
	PASSES("\"/o\"", "contains", "1", d);
	/* an array index out of range, or a pointer into a scalar, is null */
	PASSES("\"/a/5\"", "==", "null", d);
	PASSES("\"/n/x\"", "==", "null", d);
}

static void test_operands(void **state)
{
	const char *d = "{\"v\": {\"female\": 2, \"male\": 3}, \"a/b\": 7, \"m~n\": 8,"
	                " \"list\": [10, 20, 30], \"obj\": {\"x\": 1, \"y\": 2}, \"z\": null,"
	                " \"s\": \"text\", \"t\": true}";

	(void)state;
	/* pointers, with escapes and array indexes */
	PASSES("\"/v/female\"", "==", "2", d);
	PASSES("\"/a~1b\"", "==", "7", d);
	PASSES("\"/m~0n\"", "==", "8", d);
	PASSES("\"/list/1\"", "==", "20", d);
	FAILS("\"/list/1\"", "==", "10", d);
	/* literals */
	PASSES("\"/t\"", "==", "true", d);
	PASSES("false", "!=", "\"/t\"", d);
	PASSES("\"/z\"", "==", "null", d);
	PASSES("\"/s\"", "==", "{\"const\": \"text\"}", d);
	PASSES("\"/obj\"", "==", "{\"const\": {\"y\": 2, \"x\": 1}}", d);
	PASSES("{\"const\": 5}", "==", "5", d);
	PASSES("{\"const\": null}", "==", "null", d);
	/* sum */
	PASSES("{\"sum\": [\"/v/female\", \"/v/male\"]}", "==", "5", d);
	FAILS("{\"sum\": [\"/v/female\", \"/v/male\"]}", ">=", "6", d);
	PASSES("{\"sum\": [\"/v/female\", 0.5, {\"const\": 1}]}", "==", "3.5", d);
	PASSES("{\"sum\": [\"/v/female\", {\"sum\": [\"/list/0\", \"/list/2\"]}]}", "==", "42", d);
	PASSES("{\"sum\": [\"/list/0\", {\"length\": \"/list\"}]}", "==", "13", d);
	/* a null (or missing, or non-number) term makes the sum null: the rule does not apply */
	PASSES("{\"sum\": [\"/v/female\", \"/z\"]}", ">=", "100", d);
	PASSES("{\"sum\": [\"/v/female\", \"/missing\"]}", ">=", "100", d);
	PASSES("{\"sum\": [\"/v/female\", \"/s\"]}", ">=", "100", d);
	PASSES("{\"sum\": [\"/v/female\", \"/z\"]}", "==", "null", d);
	/* length of arrays and objects; of anything else null */
	PASSES("{\"length\": \"/list\"}", "==", "3", d);
	PASSES("{\"length\": \"/obj\"}", "==", "2", d);
	PASSES("{\"length\": {\"const\": []}}", "==", "0", d);
	FAILS("{\"length\": \"/list\"}", "<", "3", d);
	PASSES("{\"length\": \"/s\"}", "==", "null", d);
	PASSES("{\"length\": \"/missing\"}", "<", "0", d);
}

static void test_message_and_pointer(void **state)
{
	struct errlist errs;

	(void)state;
	errlist_init(&errs);
	assert_int_equal(
	        check("[{\"id\": \"screened_le_enrolled\", \"left\": \"/students_screened\","
	              " \"op\": \"<=\", \"right\": \"/students_enrolled\", \"message\":"
	              " \"students screened must not exceed students enrolled\"}]",
	              "{\"students_enrolled\": 1200, \"students_screened\": 1300}", &errs),
	        1);
	assert_int_equal(errs.errors, 1);
	assert_int_equal(errs.entries[0].severity, ERRLIST_ERROR);
	assert_string_equal(errs.entries[0].pointer, "/students_screened");
	assert_string_equal(errs.entries[0].keyword, "x-rules:screened_le_enrolled");
	assert_string_equal(errs.entries[0].message,
	                    "students screened must not exceed students enrolled (1300 > 1200)");
	errlist_release(&errs);

	/* each failing operator shows the values and what went wrong */
	struct {
		const char *left, *op, *right, *shown;
	} cases[] = {
	        {"2", "<", "1", "(2 >= 1)"},
	        {"2.5", "<=", "1", "(2.5 > 1)"},
	        {"1", ">", "1", "(1 <= 1)"},
	        {"{\"const\": \"2024-05-01\"}", ">=", "{\"const\": \"2024-05-02\"}",
	         "(\"2024-05-01\" < \"2024-05-02\")"},
	        {"null", "==", "{\"const\": \"a\\\"b\"}", "(null != \"a\\\"b\")"},
	        {"{\"const\": [1, {\"k\": \"v\"}]}", "!=", "{\"const\": [1, {\"k\": \"v\"}]}",
	         "([1, {\"k\": \"v\"}] == [1, {\"k\": \"v\"}])"},
	        {"{\"const\": \"x\"}", "in", "{\"const\": [\"a\", \"b\"]}",
	         "(\"x\" is not one of [\"a\", \"b\"])"},
	        {"{\"const\": \"a\"}", "not_in", "{\"const\": [\"a\"]}",
	         "(\"a\" is one of [\"a\"])"},
	        {"{\"const\": [true]}", "contains", "false", "([true] does not contain false)"},
	        {"{\"const\": [null]}", "not_contains", "null", "([null] contains null)"},
	        {"1e300", ">", "{\"sum\": [1e300, 1e300]}", "(1e+300 <= 2e+300)"},
	        {"0.1", ">", "1", "(0.1 <= 1)"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char rule[512], want[256];

		snprintf(rule, sizeof(rule),
		         "[{\"id\": \"t\", \"left\": %s, \"op\": \"%s\", \"right\": %s, "
		         "\"message\": \"m\"}]",
		         cases[i].left, cases[i].op, cases[i].right);
		snprintf(want, sizeof(want), "m %s", cases[i].shown);
		assert_int_equal(check(rule, "{}", &errs), 1);
		assert_string_equal(errs.entries[0].message, want);
		assert_string_equal(errs.entries[0].pointer, ""); /* left is not a pointer */
		errlist_release(&errs);
	}

	/* long values are cut, at a character boundary */
	assert_int_equal(
	        check("[{\"id\": \"t\", \"left\": \"/s\", \"op\": \"==\", \"right\": 1,"
	              " \"message\": \"m\"}]",
	              "{\"s\": \"排查排查排查排查排查排查排查排查排查排查排查排查排查排查\"}",
	              &errs),
	        1);
	assert_string_equal(errs.entries[0].message, "m (\"排查排查排查排查排查排查排查... != 1)");
	assert_string_equal(errs.entries[0].pointer, "/s");
	errlist_release(&errs);
}

static void test_importance(void **state)
{
	struct errlist errs;

	(void)state;
	errlist_init(&errs);
	assert_int_equal(check("[{\"id\": \"w\", \"left\": 1, \"op\": \">\", \"right\": 2,"
	                       " \"importance\": \"warning\", \"message\": \"soft\"},"
	                       " {\"id\": \"e\", \"left\": 1, \"op\": \">\", \"right\": 2,"
	                       " \"importance\": \"error\", \"message\": \"hard\"},"
	                       " {\"id\": \"d\", \"left\": 1, \"op\": \">\", \"right\": 2,"
	                       " \"message\": \"default\"}]",
	                       "{}", &errs),
	                 3);
	assert_int_equal(errs.warnings, 1);
	assert_int_equal(errs.errors, 2);
	assert_int_equal(errs.entries[0].severity, ERRLIST_WARNING);
	assert_string_equal(errs.entries[0].keyword, "x-rules:w");
	assert_int_equal(errs.entries[1].severity, ERRLIST_ERROR);
	assert_int_equal(errs.entries[2].severity, ERRLIST_ERROR);
	errlist_release(&errs);
}

static void test_when(void **state)
{
	const char *single = "[{\"id\": \"t\", \"when\": {\"left\": \"/level\", \"op\": \"==\","
	                     " \"right\": 3}, \"left\": \"/measures\", \"op\": \"contains\","
	                     " \"right\": {\"const\": \"police_referral\"}, \"message\": \"m\"}]";
	const char *all =
	        "[{\"id\": \"t\", \"when\": [{\"left\": \"/a\", \"op\": \">\", \"right\": 0},"
	        " {\"left\": \"/s\", \"op\": \"in\", \"right\": {\"const\": [\"x\", \"y\"]}}],"
	        " \"left\": \"/b\", \"op\": \"==\", \"right\": 1, \"message\": \"m\"}]";
	struct errlist errs;

	(void)state;
	errlist_init(&errs);
	assert_int_equal(check(single, "{\"level\": 3, \"measures\": [\"education\"]}", &errs), 1);
	assert_string_equal(errs.entries[0].pointer, "/measures");
	errlist_release(&errs);
	assert_int_equal(check(single, "{\"level\": 2, \"measures\": [\"education\"]}", &errs), 0);
	assert_int_equal(
	        check(single, "{\"level\": 3, \"measures\": [\"police_referral\"]}", &errs), 0);
	/* a condition that does not apply does not hold */
	assert_int_equal(check(single, "{\"measures\": [\"education\"]}", &errs), 0);

	assert_int_equal(check(all, "{\"a\": 1, \"s\": \"y\", \"b\": 2}", &errs), 1);
	errlist_release(&errs);
	assert_int_equal(check(all, "{\"a\": 0, \"s\": \"y\", \"b\": 2}", &errs), 0);
	assert_int_equal(check(all, "{\"a\": 1, \"s\": \"z\", \"b\": 2}", &errs), 0);
	assert_int_equal(check(all, "{\"a\": \"1\", \"s\": \"y\", \"b\": 2}", &errs), 0);
	assert_int_equal(check(all, "{\"a\": 1, \"s\": \"x\", \"b\": 1}", &errs), 0);
	/* an empty array of conditions always holds */
	assert_int_equal(check("[{\"id\": \"t\", \"when\": [], \"left\": 1, \"op\": \"==\","
	                       " \"right\": 2, \"message\": \"m\"}]",
	                       "{}", &errs),
	                 1);
	errlist_release(&errs);
	assert_int_equal(errs.count, 0);
}

static void test_each_array(void **state)
{
	const char *rules =
	        "[{\"id\": \"found_le_deadline\", \"each\": \"/items\", \"left\": \"@/found_on\","
	        " \"op\": \"<=\", \"right\": \"@/deadline\", \"message\": \"deadline before "
	        "found\"},"
	        " {\"id\": \"le_as_of\", \"each\": \"/items\", \"when\": {\"left\": \"@/status\","
	        " \"op\": \"==\", \"right\": {\"const\": \"done\"}}, \"left\": \"/as_of\", \"op\": "
	        "\">=\","
	        " \"right\": \"@/completed_on\", \"message\": \"completed after as_of\"},"
	        " {\"id\": \"whole\", \"each\": \"/items\", \"left\": {\"length\": \"@\"}, \"op\": "
	        "\"<=\","
	        " \"right\": 4, \"message\": \"too many members\"}]";
	const char *data = "{\"as_of\": \"2024-06-30\", \"items\": ["
	                   "{\"found_on\": \"2024-04-10\", \"deadline\": \"2024-05-31\"},"
	                   "{\"found_on\": \"2024-06-10\", \"deadline\": \"2024-05-31\"},"
	                   "{\"found_on\": \"2024-04-10\", \"deadline\": \"2024-05-31\","
	                   " \"status\": \"done\", \"completed_on\": \"2024-07-01\"},"
	                   "{\"found_on\": \"2024-07-10\", \"deadline\": \"2024-07-01\","
	                   " \"status\": \"open\", \"completed_on\": \"2024-07-01\", \"x\": 1}]}";
	struct errlist errs;

	(void)state;
	errlist_init(&errs);
	assert_int_equal(check(rules, data, &errs), 4);
	assert_string_equal(errs.entries[0].pointer, "/items/1/found_on");
	assert_string_equal(errs.entries[0].message,
	                    "deadline before found (\"2024-06-10\" > \"2024-05-31\")");
	assert_string_equal(errs.entries[1].pointer, "/items/3/found_on");
	/* an absolute left pointer stays as it is inside each */
	assert_string_equal(errs.entries[2].pointer, "/as_of");
	assert_string_equal(errs.entries[2].keyword, "x-rules:le_as_of");
	/* left not a pointer: the element */
	assert_string_equal(errs.entries[3].pointer, "/items/3");
	assert_string_equal(errs.entries[3].message, "too many members (5 > 4)");
	errlist_release(&errs);

	/* no array there, or an empty one: nothing to check */
	assert_int_equal(check(rules, "{\"as_of\": \"2024-06-30\"}", &errs), 0);
	assert_int_equal(check(rules, "{\"items\": []}", &errs), 0);
	assert_int_equal(check(rules, "{\"items\": \"2024\"}", &errs), 0);
	assert_int_equal(check(rules, "{\"items\": [1, null, \"x\", []]}", &errs), 0);
	assert_int_equal(errs.count, 0);
}

static void test_each_object(void **state)
{
	/* each value of risk_cases_by_type <= risk_cases_found */
	const char *rules =
	        "[{\"id\": \"risk_type_le_found\", \"each\": \"/risk_cases_by_type\","
	        " \"left\": \"@\", \"op\": \"<=\", \"right\": \"/risk_cases_found\","
	        " \"message\": \"risk cases of one type must not exceed risk cases found\"}]";
	struct errlist errs;

	(void)state;
	errlist_init(&errs);
	assert_int_equal(check(rules,
	                       "{\"risk_cases_found\": 3, \"risk_cases_by_type\": {\"physical\": 4,"
	                       " \"verbal\": 3, \"a/b~c\": 9, \"cyber\": null}}",
	                       &errs),
	                 2);
	assert_string_equal(errs.entries[0].pointer, "/risk_cases_by_type/physical");
	assert_string_equal(errs.entries[0].message,
	                    "risk cases of one type must not exceed risk cases found (4 > 3)");
	assert_string_equal(errs.entries[1].pointer, "/risk_cases_by_type/a~1b~0c");
	errlist_release(&errs);
	/* nested: @ pointers inside an object's member values */
	assert_int_equal(check("[{\"id\": \"t\", \"each\": \"/by_school\", \"left\": \"@/done\","
	                       " \"op\": \"<=\", \"right\": \"@/total\", \"message\": \"m\"}]",
	                       "{\"by_school\": {\"2165000123\": {\"done\": 2, \"total\": 1},"
	                       " \"2165000124\": {\"done\": 1, \"total\": 1}}}",
	                       &errs),
	                 1);
	assert_string_equal(errs.entries[0].pointer, "/by_school/2165000123/done");
	errlist_release(&errs);
}

static void test_unique(void **state)
{
	const char *rules =
	        "[{\"id\": \"item_id_unique\", \"each\": \"/items\", \"left\": \"@/item_id\","
	        " \"op\": \"unique\", \"message\": \"item ids must be unique\"}]";
	struct errlist errs;

	(void)state;
	errlist_init(&errs);
	assert_int_equal(
	        check(rules,
	              "{\"items\": [{\"item_id\": \"R-001\"}, {\"item_id\": \"R-002\"},"
	              " {\"item_id\": \"R-001\"}, {}, {\"item_id\": null}, {\"item_id\": null},"
	              " {\"item_id\": \"R-002\"}, {\"item_id\": \"R-001\"}, {\"item_id\": "
	              "\"r-001\"}]}",
	              &errs),
	        3);
	/* each later duplicate, in document order, naming the first */
	assert_string_equal(errs.entries[0].pointer, "/items/2/item_id");
	assert_string_equal(errs.entries[0].message,
	                    "item ids must be unique (\"R-001\" also at /items/0/item_id)");
	assert_string_equal(errs.entries[1].pointer, "/items/6/item_id");
	assert_string_equal(errs.entries[1].message,
	                    "item ids must be unique (\"R-002\" also at /items/1/item_id)");
	assert_string_equal(errs.entries[2].pointer, "/items/7/item_id");
	assert_string_equal(errs.entries[2].message,
	                    "item ids must be unique (\"R-001\" also at /items/0/item_id)");
	errlist_release(&errs);
	assert_int_equal(check(rules, "{\"items\": [{\"item_id\": \"R-001\"}]}", &errs), 0);
	assert_int_equal(check(rules, "{\"items\": []}", &errs), 0);
	assert_int_equal(check(rules, "{}", &errs), 0);

	/* numbers by value, objects regardless of order, over object members, with when */
	assert_int_equal(
	        check("[{\"id\": \"u\", \"each\": \"/m\", \"left\": \"@\", \"op\": \"unique\","
	              " \"when\": {\"left\": \"@\", \"op\": \"!=\", \"right\": 0},"
	              " \"message\": \"m\"}]",
	              "{\"m\": {\"a\": 1, \"b\": 0, \"c\": 1.0, \"d\": 0, \"e\": {\"x\": 1, \"y\": "
	              "2},"
	              " \"f\": {\"y\": 2, \"x\": 1}, \"g\": [1, 2], \"h\": [2, 1], \"i\": \"1\"}}",
	              &errs),
	        2);
	assert_string_equal(errs.entries[0].pointer, "/m/c");
	assert_string_equal(errs.entries[0].message, "m (1 also at /m/a)");
	assert_string_equal(errs.entries[1].pointer, "/m/f");
	errlist_release(&errs);
	assert_int_equal(errs.count, 0);
}

/* Many elements: sorting keeps unique fast, and errlist holds at most ERRLIST_MAX. */
static void test_unique_large(void **state)
{
	const char *rules =
	        "[{\"id\": \"u\", \"each\": \"/items\", \"left\": \"@/id\", \"op\": \"unique\","
	        " \"message\": \"m\"}]";
	struct rules *rs = compile_ok(rules);
	cJSON *data = cJSON_CreateObject(), *items;
	struct errlist errs;
	int n = 50000;
	char id[32];

	(void)state;
	errlist_init(&errs);
	items = cJSON_AddArrayToObject(data, "items");
	for (int i = 0; i < n; i++) {
		cJSON *it = cJSON_CreateObject();

		snprintf(id, sizeof(id), "R-%d", i % (n - 10)); /* the last 10 repeat the first */
		cJSON_AddStringToObject(it, "id", id);
		cJSON_AddItemToArray(items, it);
	}
	assert_int_equal(rules_check(rs, data, &errs), 10);
	assert_string_equal(errs.entries[0].pointer, "/items/49990/id");
	assert_string_equal(errs.entries[0].message, "m (\"R-0\" also at /items/0/id)");
	errlist_release(&errs);

	/* all equal: every later one is a duplicate of the first; all counted */
	cJSON_Delete(data);
	data = cJSON_CreateObject();
	items = cJSON_AddArrayToObject(data, "items");
	for (int i = 0; i < n; i++) {
		cJSON *it = cJSON_CreateObject();

		cJSON_AddNumberToObject(it, "id", 7);
		cJSON_AddItemToArray(items, it);
	}
	assert_int_equal(rules_check(rs, data, &errs), n - 1);
	assert_int_equal(errs.count, ERRLIST_MAX);
	assert_int_equal(errs.errors, (size_t)n - 1);
	assert_string_equal(errs.entries[ERRLIST_MAX - 1].pointer, "/items/100/id");
	errlist_release(&errs);
	cJSON_Delete(data);
	rules_free(rs);
}

static void test_deep_values(void **state)
{
	struct rules *rs = compile_ok("[{\"id\": \"t\", \"left\": \"/a\", \"op\": \"!=\","
	                              " \"right\": \"/b\", \"message\": \"m\"}]");
	cJSON *data = cJSON_CreateObject(), *a = cJSON_CreateArray(), *b = cJSON_CreateArray();
	cJSON *ca = a, *cb = b;
	struct errlist errs;

	(void)state;
	errlist_init(&errs);
	for (int i = 0; i < 10; i++) {
		cJSON *x = cJSON_CreateArray(), *y = cJSON_CreateArray();

		cJSON_AddItemToArray(ca, x);
		cJSON_AddItemToArray(cb, y);
		ca = x;
		cb = y;
	}
	cJSON_AddItemToObject(data, "a", a);
	cJSON_AddItemToObject(data, "b", b);
	/* equal nested values: != fails */
	assert_int_equal(rules_check(rs, data, &errs), 1);
	errlist_release(&errs);
	for (int i = 0; i < RULES_VALUE_DEPTH; i++) {
		cJSON *x = cJSON_CreateArray(), *y = cJSON_CreateArray();

		cJSON_AddItemToArray(ca, x);
		cJSON_AddItemToArray(cb, y);
		ca = x;
		cb = y;
	}
	/* too deep to compare: the rule does not apply */
	assert_int_equal(rules_check(rs, data, &errs), 0);
	cJSON_Delete(data);
	rules_free(rs);
}

static void test_compile_errors(void **state)
{
	(void)state;
	compile_fails("{}", "x-rules: an array of rules, not an object");
	compile_fails("[1]", "x-rules[0]: a rule is an object");
	compile_fails("[{\"left\": 1, \"op\": \"==\", \"right\": 1, \"message\": \"m\"}]",
	              "x-rules[0]: missing id");
	compile_fails(
	        "[{\"id\": \"ok\", \"left\": 1, \"op\": \"==\", \"right\": 1, \"message\": \"m\"},"
	        " {\"id\": \"Bad-Id\", \"left\": 1, \"op\": \"==\", \"right\": 1, \"message\": "
	        "\"m\"}]",
	        "x-rules[1] (\"Bad-Id\"): bad id \"Bad-Id\"");
	compile_fails(
	        "[{\"id\": \"\", \"left\": 1, \"op\": \"==\", \"right\": 1, \"message\": \"m\"}]",
	        "bad id");
	compile_fails(
	        "[{\"id\": 5, \"left\": 1, \"op\": \"==\", \"right\": 1, \"message\": \"m\"}]",
	        "x-rules[0]: id is a number, not a string");
	compile_fails(
	        "[{\"id\": \"a\", \"left\": 1, \"op\": \"==\", \"right\": 1, \"message\": \"m\"},"
	        " {\"id\": \"b\", \"left\": 1, \"op\": \"==\", \"right\": 1, \"message\": \"m\"},"
	        " {\"id\": \"a\", \"left\": 1, \"op\": \"==\", \"right\": 1, \"message\": \"m\"}]",
	        "x-rules[2] (\"a\"): duplicate id \"a\" (also x-rules[0])");
	compile_fails(
	        "[{\"id\": \"t\", \"left\": 1, \"op\": \"=<\", \"right\": 1, \"message\": \"m\"}]",
	        "x-rules[0] (\"t\"): unknown op \"=<\"");
	compile_fails("[{\"id\": \"t\", \"left\": 1, \"right\": 1, \"message\": \"m\"}]",
	              "x-rules[0] (\"t\"): missing op");
	compile_fails("[{\"id\": \"t\", \"left\": 1, \"op\": 1, \"right\": 1, \"message\": \"m\"}]",
	              "op is a number, not a string");
	compile_fails("[{\"id\": \"t\", \"left\": 1, \"op\": \"<=\", \"message\": \"m\"}]",
	              "x-rules[0] (\"t\"): missing right for binary op \"<=\"");
	compile_fails("[{\"id\": \"t\", \"op\": \"<=\", \"right\": 1, \"message\": \"m\"}]",
	              "missing left");
	compile_fails("[{\"id\": \"t\", \"left\": \"/a\", \"op\": \"unique\", \"message\": \"m\"}]",
	              "x-rules[0] (\"t\"): \"unique\" without \"each\"");
	compile_fails("[{\"id\": \"t\", \"each\": \"/i\", \"left\": \"@/a\", \"op\": \"unique\","
	              " \"right\": 1, \"message\": \"m\"}]",
	              "\"unique\" takes no right operand");
	compile_fails("[{\"id\": \"t\", \"each\": \"/i\", \"when\": {\"left\": \"@/a\","
	              " \"op\": \"unique\"}, \"left\": 1, \"op\": \"==\", \"right\": 1,"
	              " \"message\": \"m\"}]",
	              "x-rules[0] (\"t\"): when: \"unique\" is a rule of its own, not a condition");
	compile_fails("[{\"id\": \"t\", \"left\": 1, \"op\": \"==\", \"right\": 1}]",
	              "x-rules[0] (\"t\"): missing message");
	compile_fails(
	        "[{\"id\": \"t\", \"left\": 1, \"op\": \"==\", \"right\": 1, \"message\": \"\"}]",
	        "message is not a non-empty string");
	compile_fails(
	        "[{\"id\": \"t\", \"left\": 1, \"op\": \"==\", \"right\": 1, \"message\": \"m\","
	        " \"importance\": \"fatal\"}]",
	        "x-rules[0] (\"t\"): unknown importance \"fatal\"");
	compile_fails(
	        "[{\"id\": \"t\", \"left\": 1, \"op\": \"==\", \"right\": 1, \"message\": \"m\","
	        " \"importance\": 2}]",
	        "unknown importance a number");
	compile_fails(
	        "[{\"id\": \"t\", \"left\": 1, \"op\": \"==\", \"right\": 1, \"message\": \"m\","
	        " \"importnace\": \"warning\"}]",
	        "x-rules[0] (\"t\"): unknown member \"importnace\"");
	/* bad operand shapes */
	compile_fails("[{\"id\": \"t\", \"left\": \"closed\", \"op\": \"==\", \"right\": 1,"
	              " \"message\": \"m\"}]",
	              "x-rules[0] (\"t\"): left: bad operand \"closed\"");
	compile_fails("[{\"id\": \"t\", \"left\": \"/a\", \"op\": \"in\", \"right\": [\"a\"],"
	              " \"message\": \"m\"}]",
	              "right: bad operand: an array; write it as {\"const\": ...}");
	compile_fails("[{\"id\": \"t\", \"left\": {\"const\": 1, \"sum\": [1]}, \"op\": \"==\","
	              " \"right\": 1, \"message\": \"m\"}]",
	              "left: bad operand: an object operand has exactly one member");
	compile_fails(
	        "[{\"id\": \"t\", \"left\": {}, \"op\": \"==\", \"right\": 1, \"message\": \"m\"}]",
	        "exactly one member");
	compile_fails("[{\"id\": \"t\", \"left\": {\"max\": [1]}, \"op\": \"==\", \"right\": 1,"
	              " \"message\": \"m\"}]",
	              "left: bad operand: unknown member \"max\"");
	compile_fails("[{\"id\": \"t\", \"left\": \"@/a\", \"op\": \"==\", \"right\": 1,"
	              " \"message\": \"m\"}]",
	              "left: \"@/a\" addresses an element, but there is no \"each\"");
	compile_fails(
	        "[{\"id\": \"t\", \"each\": \"/i\", \"left\": \"@a\", \"op\": \"==\", \"right\": 1,"
	        " \"message\": \"m\"}]",
	        "left: malformed JSON Pointer \"@a\"");
	compile_fails("[{\"id\": \"t\", \"left\": \"/a~2\", \"op\": \"==\", \"right\": 1,"
	              " \"message\": \"m\"}]",
	              "malformed JSON Pointer \"/a~2\"");
	compile_fails(
	        "[{\"id\": \"t\", \"each\": \"items\", \"left\": 1, \"op\": \"==\", \"right\": 1,"
	        " \"message\": \"m\"}]",
	        "x-rules[0] (\"t\"): each: malformed JSON Pointer \"items\"");
	compile_fails("[{\"id\": \"t\", \"each\": 3, \"left\": 1, \"op\": \"==\", \"right\": 1,"
	              " \"message\": \"m\"}]",
	              "each: a JSON Pointer string, not a number");
	compile_fails(
	        "[{\"id\": \"t\", \"left\": {\"sum\": [1, {\"const\": \"2\"}]}, \"op\": \"==\","
	        " \"right\": 1, \"message\": \"m\"}]",
	        "left: sum[1]: a sum adds numbers, not a string");
	compile_fails("[{\"id\": \"t\", \"left\": {\"sum\": []}, \"op\": \"==\", \"right\": 1,"
	              " \"message\": \"m\"}]",
	              "\"sum\" takes 1 to 64 operands");
	compile_fails("[{\"id\": \"t\", \"left\": {\"sum\": \"/a\"}, \"op\": \"==\", \"right\": 1,"
	              " \"message\": \"m\"}]",
	              "\"sum\" takes an array of operands");
	compile_fails("[{\"id\": \"t\", \"left\": {\"length\": 3}, \"op\": \"==\", \"right\": 1,"
	              " \"message\": \"m\"}]",
	              "left: length: a length is of an array or object, not a number");
	compile_fails("[{\"id\": \"t\", \"left\": {\"length\": {\"sum\": [1]}}, \"op\": \"==\","
	              " \"right\": 1, \"message\": \"m\"}]",
	              "a length is of an array or object, not a number");
	compile_fails("[{\"id\": \"t\", \"left\": \"/a\", \"op\": \"<\", \"right\": true,"
	              " \"message\": \"m\"}]",
	              "right: \"<\" compares numbers or strings, not a boolean");
	compile_fails("[{\"id\": \"t\", \"left\": {\"const\": [1]}, \"op\": \">=\", \"right\": 1,"
	              " \"message\": \"m\"}]",
	              "left: \">=\" compares numbers or strings, not an array");
	compile_fails(
	        "[{\"id\": \"t\", \"left\": \"/a\", \"op\": \"in\", \"right\": {\"const\": \"a\"},"
	        " \"message\": \"m\"}]",
	        "right: \"in\" needs an array on the right");
	compile_fails("[{\"id\": \"t\", \"left\": \"/a\", \"op\": \"not_in\", \"right\": "
	              "{\"length\": \"/b\"},"
	              " \"message\": \"m\"}]",
	              "\"not_in\" needs an array on the right");
	compile_fails("[{\"id\": \"t\", \"left\": 3, \"op\": \"contains\", \"right\": 3,"
	              " \"message\": \"m\"}]",
	              "left: \"contains\" needs an array on the left");
	compile_fails(
	        "[{\"id\": \"t\", \"left\": 1, \"op\": \"==\", \"right\": 1, \"message\": \"m\","
	        " \"when\": 3}]",
	        "when: a condition or an array of conditions, not a number");
	compile_fails(
	        "[{\"id\": \"t\", \"left\": 1, \"op\": \"==\", \"right\": 1, \"message\": \"m\","
	        " \"when\": [{\"left\": 1, \"op\": \"==\", \"right\": 1}, {\"left\": 1, \"op\": "
	        "\"<\"}]}]",
	        "x-rules[0] (\"t\"): when[1]: missing right for binary op \"<\"");
	compile_fails(
	        "[{\"id\": \"t\", \"left\": 1, \"op\": \"==\", \"right\": 1, \"message\": \"m\","
	        " \"when\": [{\"left\": 1, \"op\": \"==\", \"right\": 1, \"message\": \"x\"}]}]",
	        "when[0]: unknown member \"message\"");
	compile_fails(
	        "[{\"id\": \"t\", \"left\": 1, \"op\": \"==\", \"right\": 1, \"message\": \"m\","
	        " \"when\": {\"left\": \"@/a\", \"op\": \"==\", \"right\": 1}}]",
	        "when: left: \"@/a\" addresses an element, but there is no \"each\"");
	compile_fails(
	        "[{\"id\": \"t\", \"left\": {\"sum\": [{\"sum\": [{\"sum\": [{\"sum\": [{\"sum\":"
	        " [{\"sum\": [{\"sum\": [{\"sum\": [{\"sum\": [1]}]}]}]}]}]}]}]}]}, \"op\": \"==\","
	        " \"right\": 1, \"message\": \"m\"}]",
	        "operands nested deeper than 8");
}

static void test_compile_limits(void **state)
{
	struct rules *rs = NULL;
	char err[256], id[80];
	cJSON *arr;
	int r;

	(void)state;
	/* annotations are allowed; an empty or absent array is no rules */
	rs = compile_ok(
	        "[{\"id\": \"t\", \"left\": 1, \"op\": \"==\", \"right\": 1, \"message\": \"m\","
	        " \"x-label-zh\": \"中文\", \"$comment\": \"c\", \"description\": \"d\","
	        " \"when\": {\"left\": 1, \"op\": \"==\", \"right\": 1, \"x-note\": 1}}]");
	assert_int_equal(rules_count(rs), 1);
	rules_free(rs);
	rs = compile_ok("[]");
	assert_int_equal(rules_count(rs), 0);
	rules_free(rs);
	rs = NULL;
	assert_int_equal(rules_compile(NULL, err, sizeof(err), &rs), 0);
	assert_int_equal(rules_count(rs), 0);
	rules_free(rs);
	rules_free(NULL);

	/* too many rules */
	arr = cJSON_CreateArray();
	for (int i = 0; i <= RULES_MAX; i++) {
		cJSON *ru =
		        parse("{\"left\": 1, \"op\": \"==\", \"right\": 1, \"message\": \"m\"}");

		snprintf(id, sizeof(id), "r%d", i);
		cJSON_AddStringToObject(ru, "id", id);
		cJSON_AddItemToArray(arr, ru);
	}
	r = rules_compile(arr, err, sizeof(err), &rs);
	assert_int_equal(r, -EINVAL);
	assert_non_null(strstr(err, "more than 1000 rules"));
	/* exactly RULES_MAX compile */
	cJSON_DeleteItemFromArray(arr, 0);
	assert_int_equal(rules_compile(arr, err, sizeof(err), &rs), 0);
	assert_int_equal(rules_count(rs), RULES_MAX);
	rules_free(rs);
	cJSON_Delete(arr);

	/* long ids and messages */
	for (int len = RULES_ID_MAX; len <= RULES_ID_MAX + 1; len++) {
		char big[1024], id_text[RULES_ID_MAX + 2];

		memset(id_text, 'a', (size_t)len);
		id_text[len] = '\0';
		snprintf(big, sizeof(big),
		         "[{\"id\": \"%s\", \"left\": 1, \"op\": \"==\", \"right\": 1, "
		         "\"message\": \"m\"}]",
		         id_text);
		if (len == RULES_ID_MAX)
			rules_free(compile_ok(big));
		else
			compile_fails(big, "id longer than 64 bytes");
	}
	{
		char big[1024];
		int n = snprintf(big, sizeof(big),
		                 "[{\"id\": \"t\", \"left\": 1, \"op\": \"==\", \"right\": 1, "
		                 "\"message\": \"");

		memset(big + n, 'm', RULES_MESSAGE_MAX + 1);
		snprintf(big + n + RULES_MESSAGE_MAX + 1, sizeof(big) - n - RULES_MESSAGE_MAX - 1,
		         "\"}]");
		compile_fails(big, "message longer than 300 bytes");
	}
	/* err may be NULL */
	arr = parse("[{\"id\": \"t\"}]");
	rs = NULL;
	assert_int_equal(rules_compile(arr, NULL, 0, &rs), -EINVAL);
	assert_null(rs);
	cJSON_Delete(arr);
}

/* The rules of shared/FORMS.md, written in the grammar, against its examples. */
static const char screening_rules[] =
        "[{\"id\": \"screened_le_enrolled\", \"left\": \"/students_screened\", \"op\": \"<=\","
        " \"right\": \"/students_enrolled\", \"message\": \"students screened must not exceed"
        " students enrolled\"},"
        " {\"id\": \"risk_type_le_found\", \"each\": \"/risk_cases_by_type\", \"left\": \"@\","
        " \"op\": \"<=\", \"right\": \"/risk_cases_found\", \"message\": \"risk cases of one type"
        " must not exceed risk cases found\"},"
        " {\"id\": \"hidden_found_le_checked\", \"left\": \"/hidden_risk_points_found\","
        " \"op\": \"<=\", \"right\": \"/hidden_risk_points_checked\", \"message\": \"hidden risk"
        " points found must not exceed points checked\"}]";

static const char screening_example[] =
        "{\"students_enrolled\": 1200, \"students_screened\": 1180, \"risk_cases_found\": 7,"
        " \"risk_cases_by_type\": {\"physical\": 2, \"verbal\": 3, \"relational\": 1, \"cyber\": 1,"
        " \"property\": 0}, \"interventions_taken\": 7, \"home_visits\": 15,"
        " \"counselling_sessions\": 22, \"parent_meetings\": 4, \"staff_trained\": 86,"
        " \"student_lessons\": 24, \"drills_held\": 2, \"hidden_risk_points_checked\": 40,"
        " \"hidden_risk_points_found\": 3, \"committee_established\": true,"
        " \"reporting_channel_published\": true}";

static const char incident_rules[] =
        "[{\"id\": \"occurred_le_discovered\", \"left\": \"/occurred_on\", \"op\": \"<=\","
        " \"right\": \"/discovered_on\", \"message\": \"discovered before it occurred\"},"
        " {\"id\": \"discovered_le_reported\", \"left\": \"/discovered_on\", \"op\": \"<=\","
        " \"right\": \"/reported_on\", \"message\": \"reported before it was discovered\"},"
        " {\"id\": \"victims_at_least_one\", \"left\": {\"sum\": [\"/victims/female\","
        " \"/victims/male\"]}, \"op\": \">=\", \"right\": 1, \"message\": \"an incident has at"
        " least one victim\"},"
        " {\"id\": \"level3_police\", \"when\": [{\"left\": \"/level\", \"op\": \"==\", \"right\": "
        "3}],"
        " \"left\": \"/measures\", \"op\": \"contains\", \"right\": {\"const\": "
        "\"police_referral\"},"
        " \"message\": \"a level 3 incident must be referred to the police\"},"
        " {\"id\": \"closed_has_date\", \"when\": {\"left\": \"/status\", \"op\": \"==\","
        " \"right\": {\"const\": \"closed\"}}, \"left\": \"/closed_on\", \"op\": \"!=\","
        " \"right\": null, \"message\": \"a closed incident needs its closing date\"},"
        " {\"id\": \"closed_ge_occurred\", \"when\": {\"left\": \"/status\", \"op\": \"==\","
        " \"right\": {\"const\": \"closed\"}}, \"left\": \"/closed_on\", \"op\": \">=\","
        " \"right\": \"/occurred_on\", \"message\": \"closed before it occurred\"},"
        " {\"id\": \"open_not_closed\", \"when\": {\"left\": \"/status\", \"op\": \"==\","
        " \"right\": {\"const\": \"open\"}}, \"left\": \"/closed_on\", \"op\": \"==\","
        " \"right\": null, \"message\": \"an open incident has no closing date\"}]";

static const char incident_example[] =
        "{\"incident_ref\": \"2024-017\", \"occurred_on\": \"2024-05-02\", \"discovered_on\":"
        " \"2024-05-02\", \"reported_on\": \"2024-05-03\", \"level\": 2, \"types\": [\"physical\","
        " \"verbal\"], \"setting\": \"dormitory\", \"grade_band\": \"junior\", \"victims\":"
        " {\"female\": 0, \"male\": 1}, \"perpetrators\": {\"female\": 0, \"male\": 2}, "
        "\"measures\":"
        " [\"education\", \"discipline\"], \"parents_notified\": true, \"psychological_support\":"
        " true, \"status\": \"open\", \"closed_on\": null, \"summary\": \"课间在宿舍发生推搡。\"}";

static const char rectification_rules[] =
        "[{\"id\": \"found_le_deadline\", \"each\": \"/items\", \"left\": \"@/found_on\","
        " \"op\": \"<=\", \"right\": \"@/deadline\", \"message\": \"the deadline cannot be before"
        " the problem was found\"},"
        " {\"id\": \"done_has_completed\", \"each\": \"/items\", \"when\": {\"left\": \"@/status\","
        " \"op\": \"in\", \"right\": {\"const\": [\"done\", \"verified\"]}}, \"left\":"
        " \"@/completed_on\", \"op\": \"!=\", \"right\": null, \"message\": \"a done or verified"
        " item needs its completion date\"},"
        " {\"id\": \"item_id_unique\", \"each\": \"/items\", \"left\": \"@/item_id\", \"op\":"
        " \"unique\", \"message\": \"item ids must be unique\"}]";

static const char summary_rules[] =
        "[{\"id\": \"done_overdue_le_total\", \"left\": {\"sum\": [\"/ledger_items_done\","
        " \"/ledger_items_overdue\"]}, \"op\": \"<=\", \"right\": \"/ledger_items_total\","
        " \"message\": \"done plus overdue items cannot exceed the total\"}]";

/* Applies edit (cJSON_ReplaceItemInObject-style "pointer-free" top-level edits) to the
 * example and checks: returns the failures and fills errs. */
static int check_edited(const char *rules, const char *example, const char *member,
                        const char *value_json, struct errlist *errs)
{
	struct rules *rs = compile_ok(rules);
	cJSON *data = parse(example);
	int r;

	if (member)
		cJSON_ReplaceItemInObjectCaseSensitive(data, member, parse(value_json));
	r = rules_check(rs, data, errs);
	cJSON_Delete(data);
	rules_free(rs);
	return r;
}

static void expect_one(struct errlist *errs, const char *pointer, const char *keyword,
                       const char *message)
{
	assert_int_equal(errs->count, 1);
	assert_string_equal(errs->entries[0].pointer, pointer);
	assert_string_equal(errs->entries[0].keyword, keyword);
	if (message)
		assert_string_equal(errs->entries[0].message, message);
	errlist_release(errs);
}

static void test_forms_screening(void **state)
{
	struct errlist errs;

	(void)state;
	errlist_init(&errs);
	assert_int_equal(check_edited(screening_rules, screening_example, NULL, NULL, &errs), 0);
	assert_int_equal(check_edited(screening_rules, screening_example, "students_screened",
	                              "1300", &errs),
	                 1);
	expect_one(&errs, "/students_screened", "x-rules:screened_le_enrolled",
	           "students screened must not exceed students enrolled (1300 > 1200)");
	assert_int_equal(
	        check_edited(screening_rules, screening_example, "risk_cases_by_type",
	                     "{\"physical\": 8, \"verbal\": 7, \"relational\": 1, \"cyber\": 9,"
	                     " \"property\": 0}",
	                     &errs),
	        2);
	assert_string_equal(errs.entries[0].pointer, "/risk_cases_by_type/physical");
	assert_string_equal(errs.entries[1].pointer, "/risk_cases_by_type/cyber");
	assert_string_equal(errs.entries[1].message,
	                    "risk cases of one type must not exceed risk cases found (9 > 7)");
	errlist_release(&errs);
	assert_int_equal(check_edited(screening_rules, screening_example,
	                              "hidden_risk_points_found", "41", &errs),
	                 1);
	expect_one(&errs, "/hidden_risk_points_found", "x-rules:hidden_found_le_checked", NULL);
	/* boundaries pass */
	assert_int_equal(check_edited(screening_rules, screening_example, "students_screened",
	                              "1200", &errs),
	                 0);
}

static void test_forms_incident(void **state)
{
	struct errlist errs;
	const char *closed_ok =
	        "{\"occurred_on\": \"2024-05-02\", \"discovered_on\": \"2024-05-02\", "
	        "\"reported_on\":"
	        " \"2024-05-03\", \"level\": 3, \"victims\": {\"female\": 1, \"male\": 0}, "
	        "\"measures\":"
	        " [\"education\", \"police_referral\"], \"status\": \"closed\", \"closed_on\":"
	        " \"2024-05-20\"}";

	(void)state;
	errlist_init(&errs);
	assert_int_equal(check_edited(incident_rules, incident_example, NULL, NULL, &errs), 0);
	assert_int_equal(check_edited(incident_rules, closed_ok, NULL, NULL, &errs), 0);
	/* occurred_on <= discovered_on <= reported_on */
	assert_int_equal(check_edited(incident_rules, incident_example, "occurred_on",
	                              "\"2024-05-03\"", &errs),
	                 1);
	expect_one(&errs, "/occurred_on", "x-rules:occurred_le_discovered",
	           "discovered before it occurred (\"2024-05-03\" > \"2024-05-02\")");
	assert_int_equal(check_edited(incident_rules, incident_example, "reported_on",
	                              "\"2024-05-01\"", &errs),
	                 1);
	expect_one(&errs, "/discovered_on", "x-rules:discovered_le_reported", NULL);
	/* victims female + male >= 1 */
	assert_int_equal(check_edited(incident_rules, incident_example, "victims",
	                              "{\"female\": 0, \"male\": 0}", &errs),
	                 1);
	expect_one(&errs, "", "x-rules:victims_at_least_one",
	           "an incident has at least one victim (0 < 1)");
	/* level 3 requires police_referral */
	assert_int_equal(check_edited(incident_rules, incident_example, "level", "3", &errs), 1);
	expect_one(&errs, "/measures", "x-rules:level3_police",
	           "a level 3 incident must be referred to the police ([\"education\","
	           " \"discipline\"] does not contain \"police_referral\")");
	/* closed requires closed_on, and closed_on >= occurred_on */
	assert_int_equal(check_edited(incident_rules, closed_ok, "closed_on", "null", &errs), 1);
	expect_one(&errs, "/closed_on", "x-rules:closed_has_date",
	           "a closed incident needs its closing date (null == null)");
	assert_int_equal(
	        check_edited(incident_rules, closed_ok, "closed_on", "\"2024-05-01\"", &errs), 1);
	expect_one(&errs, "/closed_on", "x-rules:closed_ge_occurred", NULL);
	/* open requires closed_on null */
	assert_int_equal(check_edited(incident_rules, incident_example, "closed_on",
	                              "\"2024-05-20\"", &errs),
	                 1);
	expect_one(&errs, "/closed_on", "x-rules:open_not_closed",
	           "an open incident has no closing date (\"2024-05-20\" != null)");
}

static void test_forms_rectification(void **state)
{
	struct errlist errs;
	const char *ok =
	        "{\"as_of\": \"2024-06-30\", \"items\": [{\"item_id\": \"R-001\", \"found_on\":"
	        " \"2024-04-10\", \"deadline\": \"2024-05-31\", \"status\": \"done\","
	        " \"completed_on\": \"2024-05-20\"}, {\"item_id\": \"R-002\", \"found_on\":"
	        " \"2024-05-10\", \"deadline\": \"2024-05-10\", \"status\": \"open\","
	        " \"completed_on\": null}]}";
	const char *bad =
	        "{\"as_of\": \"2024-06-30\", \"items\": [{\"item_id\": \"R-001\", \"found_on\":"
	        " \"2024-04-10\", \"deadline\": \"2024-05-31\", \"status\": \"verified\"},"
	        " {\"item_id\": \"R-002\", \"found_on\": \"2024-06-10\", \"deadline\":"
	        " \"2024-05-31\", \"status\": \"in_progress\", \"completed_on\": null},"
	        " {\"item_id\": \"R-001\", \"found_on\": \"2024-04-10\", \"deadline\":"
	        " \"2024-05-31\", \"status\": \"done\", \"completed_on\": null},"
	        " {\"item_id\": \"R-004\", \"found_on\": \"2024-04-10\", \"deadline\":"
	        " \"2024-05-31\", \"status\": \"done\", \"completed_on\": \"2024-05-01\"}]}";

	(void)state;
	errlist_init(&errs);
	assert_int_equal(check_edited(rectification_rules, ok, NULL, NULL, &errs), 0);
	assert_int_equal(check_edited(rectification_rules,
	                              "{\"as_of\": \"2024-06-30\", \"items\": []}", NULL, NULL,
	                              &errs),
	                 0);
	assert_int_equal(check_edited(rectification_rules, bad, NULL, NULL, &errs), 4);
	assert_string_equal(errs.entries[0].pointer, "/items/1/found_on");
	assert_string_equal(errs.entries[0].keyword, "x-rules:found_le_deadline");
	assert_string_equal(errs.entries[1].pointer, "/items/0/completed_on");
	assert_string_equal(errs.entries[1].keyword, "x-rules:done_has_completed");
	assert_string_equal(errs.entries[1].message,
	                    "a done or verified item needs its completion date (null == null)");
	assert_string_equal(errs.entries[2].pointer, "/items/2/completed_on");
	assert_string_equal(errs.entries[3].pointer, "/items/2/item_id");
	assert_string_equal(errs.entries[3].keyword, "x-rules:item_id_unique");
	errlist_release(&errs);
}

static void test_forms_summary(void **state)
{
	const char *example = "{\"ledger_items_total\": 5, \"ledger_items_done\": 4,"
	                      " \"ledger_items_overdue\": 1}";
	struct errlist errs;

	(void)state;
	errlist_init(&errs);
	assert_int_equal(check_edited(summary_rules, example, NULL, NULL, &errs), 0);
	assert_int_equal(check_edited(summary_rules, example, "ledger_items_overdue", "2", &errs),
	                 1);
	expect_one(&errs, "", "x-rules:done_overdue_le_total",
	           "done plus overdue items cannot exceed the total (6 > 5)");
}

static struct rules_condition_set *set_ok(const char *json)
{
	struct rules_condition_set *set = NULL;
	cJSON *j = parse(json);
	char err[256] = "";
	int r = rules_compile_condition_set(j, err, sizeof(err), &set);

	cJSON_Delete(j);
	if (r != 0)
		fail_msg("condition set failed: %s", err);
	return set;
}

static void set_fails(const char *json, const char *expect)
{
	struct rules_condition_set *set = NULL;
	cJSON *j = parse(json);
	char err[256] = "";

	assert_int_equal(rules_compile_condition_set(j, err, sizeof(err), &set), -EINVAL);
	assert_null(set);
	cJSON_Delete(j);
	if (!strstr(err, expect))
		fail_msg("error \"%s\" lacks \"%s\"", err, expect);
}

static void test_condition_sets(void **state)
{
	/* x-rollup-derived "overdue" of docs/FORMS-FORMAT.md */
	struct rules_condition_set *overdue = set_ok(
	        "{\"name\": \"overdue\", \"each\": \"/items\", \"when\": [{\"left\": \"@/status\","
	        " \"op\": \"not_in\", \"right\": {\"const\": [\"done\", \"verified\"]}},"
	        " {\"left\": \"/as_of\", \"op\": \">\", \"right\": \"@/deadline\"}],"
	        " \"title\": \"overdue items\", \"x-label-zh\": \"逾期未整改\"}");
	struct rules_condition_set *s;
	cJSON *data = parse("{\"as_of\": \"2024-06-30\", \"items\": ["
	                    "{\"status\": \"done\", \"deadline\": \"2024-05-31\"},"
	                    "{\"status\": \"open\", \"deadline\": \"2024-05-31\"},"
	                    "{\"status\": \"in_progress\", \"deadline\": \"2024-06-29\"},"
	                    "{\"status\": \"open\", \"deadline\": \"2024-06-30\"},"
	                    "{\"status\": \"verified\", \"deadline\": \"2024-01-01\"},"
	                    "{\"status\": \"open\"},"
	                    "{\"deadline\": \"2024-06-01\"}]}");

	(void)state;
	/* items 1, 2 and 6 (no status is not done): 3 (deadline not passed), 5 (none) are not */
	assert_int_equal(rules_count_matching(overdue, data), 3);
	cJSON_ReplaceItemInObjectCaseSensitive(data, "as_of", cJSON_CreateString("2024-07-01"));
	assert_int_equal(rules_count_matching(overdue, data), 4);
	cJSON_DeleteItemFromObjectCaseSensitive(data, "as_of");
	assert_int_equal(rules_count_matching(overdue, data), 0);
	rules_condition_set_free(overdue);

	/* each over an object's members; without when every element counts */
	s = set_ok("{\"each\": \"/by_type\", \"when\": {\"left\": \"@\", \"op\": \">\", \"right\": "
	           "0}}");
	cJSON_Delete(data);
	data = parse("{\"by_type\": {\"a\": 0, \"b\": 2, \"c\": 5, \"d\": null}}");
	assert_int_equal(rules_count_matching(s, data), 2);
	rules_condition_set_free(s);
	s = set_ok("{\"each\": \"/by_type\"}");
	assert_int_equal(rules_count_matching(s, data), 4);
	rules_condition_set_free(s);
	s = set_ok("{\"each\": \"/nothing\"}");
	assert_int_equal(rules_count_matching(s, data), 0);
	rules_condition_set_free(s);
	/* without each: the document itself, 1 or 0 */
	s = set_ok("{\"when\": {\"left\": \"/by_type/c\", \"op\": \"==\", \"right\": 5}}");
	assert_int_equal(rules_count_matching(s, data), 1);
	rules_condition_set_free(s);
	s = set_ok("{\"when\": {\"left\": \"/by_type/c\", \"op\": \"<\", \"right\": 5}}");
	assert_int_equal(rules_count_matching(s, data), 0);
	rules_condition_set_free(s);
	cJSON_Delete(data);

	set_fails("[]", "a condition set is an object");
	set_fails("{\"each\": \"/i\", \"when\": [{\"left\": \"@/a\", \"op\": \"<\"}]}",
	          "when[0]: missing right for binary op \"<\"");
	set_fails("{\"when\": [{\"left\": \"@/a\", \"op\": \"==\", \"right\": 1}]}",
	          "when[0]: left: \"@/a\" addresses an element, but there is no \"each\"");
	set_fails("{\"each\": \"/i\", \"when\": {\"left\": \"@/a\", \"op\": \"unique\"}}",
	          "when: \"unique\" is a rule of its own, not a condition");
	set_fails("{\"each\": \"i\"}", "each: malformed JSON Pointer \"i\"");
}

/* ---- the forms and example returns in the tree ---- */

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *s;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	s = malloc((size_t)n + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = '\0';
	fclose(f);
	return s;
}

static cJSON *read_json(const char *path)
{
	char *s = read_text(path);
	cJSON *j;

	if (!s)
		return NULL;
	j = cJSON_Parse(s);
	free(s);
	if (!j)
		fail_msg("%s does not parse", path);
	return j;
}

/* Every entry "pointer keyword" of the errs with the given keyword prefix, one per line,
 * equals the .expect file's lines that have that prefix. */
static void compare_expect(const char *path, const struct errlist *errs, const char *prefix)
{
	char *want = read_text(path), got[4096] = "", filtered[4096] = "";
	size_t n = 0, m = 0;

	assert_non_null(want);
	for (size_t i = 0; i < errs->count; i++)
		if (strncmp(errs->entries[i].keyword, prefix, strlen(prefix)) == 0)
			n += (size_t)snprintf(got + n, sizeof(got) - n, "%s %s\n",
			                      errs->entries[i].pointer, errs->entries[i].keyword);
	for (const char *line = want; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		const char *sp = memchr(line, ' ', len);

		if (sp && strncmp(sp + 1, prefix, strlen(prefix)) == 0)
			m += (size_t)snprintf(filtered + m, sizeof(filtered) - m, "%.*s\n",
			                      (int)len, line);
		line += len + (nl ? 1 : 0);
	}
	if (strcmp(got, filtered) != 0)
		fail_msg("%s: expected\n%sgot\n%s", path, filtered, got);
	free(want);
}

/* schemas/forms/<form>.schema.json compile, and their rules agree with the example returns
 * in tests/data/returns/<form>/: good-* pass, bad-rules-* fail exactly as .expect says. */
static void test_tree_forms_and_returns(void **state)
{
	static const char *const forms[] = {"screening", "incident", "rectification", "summary"};
	int checked = 0;

	(void)state;
	for (size_t f = 0; f < ARRAY_SIZE(forms); f++) {
		char path[512], err[256];
		struct rules *rs = NULL;
		cJSON *schema, *derived;
		DIR *dir;
		struct dirent *de;

		snprintf(path, sizeof(path), "schemas/forms/%s.schema.json", forms[f]);
		schema = read_json(path);
		if (!schema) {
			print_message("skipping %s: not there yet\n", path);
			continue;
		}
		if (rules_compile(cJSON_GetObjectItemCaseSensitive(schema, "x-rules"), err,
		                  sizeof(err), &rs) != 0)
			fail_msg("%s: %s", path, err);
		derived = cJSON_GetObjectItemCaseSensitive(schema, "x-rollup-derived");
		for (cJSON *d = derived ? derived->child : NULL; d; d = d->next) {
			struct rules_condition_set *set = NULL;

			if (rules_compile_condition_set(d, err, sizeof(err), &set) != 0)
				fail_msg("%s: x-rollup-derived: %s", path, err);
			rules_condition_set_free(set);
		}
		snprintf(path, sizeof(path), "tests/data/returns/%s", forms[f]);
		dir = opendir(path);
		while (dir && (de = readdir(dir))) {
			size_t len = strlen(de->d_name);
			bool good = strncmp(de->d_name, "good-", 5) == 0;
			bool bad = strncmp(de->d_name, "bad-rules-", 10) == 0;
			struct errlist errs;
			cJSON *data;

			if ((!good && !bad) || len < 6 ||
			    strcmp(de->d_name + len - 5, ".json") != 0)
				continue;
			snprintf(path, sizeof(path), "tests/data/returns/%s/%s", forms[f],
			         de->d_name);
			data = read_json(path);
			errlist_init(&errs);
			assert_true(rules_check(rs, data, &errs) >= 0);
			if (good && errs.count)
				fail_msg("%s: %s %s: %s", path, errs.entries[0].pointer,
				         errs.entries[0].keyword, errs.entries[0].message);
			if (bad) {
				snprintf(path + strlen(path) - 5, 8, ".expect");
				compare_expect(path, &errs, "x-rules:");
			}
			errlist_release(&errs);
			cJSON_Delete(data);
			checked++;
		}
		if (dir)
			closedir(dir);
		rules_free(rs);
		cJSON_Delete(schema);
	}
	print_message("checked %d example returns\n", checked);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_ordered_operators),
	        cmocka_unit_test(test_equality_operators),
	        cmocka_unit_test(test_membership_operators),
	        cmocka_unit_test(test_not_applicable),
	        cmocka_unit_test(test_operands),
	        cmocka_unit_test(test_message_and_pointer),
	        cmocka_unit_test(test_importance),
	        cmocka_unit_test(test_when),
	        cmocka_unit_test(test_each_array),
	        cmocka_unit_test(test_each_object),
	        cmocka_unit_test(test_unique),
	        cmocka_unit_test(test_unique_large),
	        cmocka_unit_test(test_deep_values),
	        cmocka_unit_test(test_compile_errors),
	        cmocka_unit_test(test_compile_limits),
	        cmocka_unit_test(test_forms_screening),
	        cmocka_unit_test(test_forms_incident),
	        cmocka_unit_test(test_forms_rectification),
	        cmocka_unit_test(test_forms_summary),
	        cmocka_unit_test(test_condition_sets),
	        cmocka_unit_test(test_tree_forms_and_returns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
