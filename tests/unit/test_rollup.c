/* Unit tests for common/rollup: the four forms of the tree over their example returns
 * (tests/data/returns/<form>/good-*.json) against totals worked out by hand, order
 * independence, the empty roll-up, compile errors, rollup_add() refusing without changing
 * anything, and rollup_diff(). Runs from the repository root. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/errlist.h"
#include "common/fileio.h"
#include "common/form.h"
#include "common/json.h"
#include "common/rollup.h"
#include "common/schema.h"
#include "common/banned.h"

#define FORMS_DIR "schemas/forms"
#define RETURNS_DIR "tests/data/returns"
#define NRETURNS 4

static cJSON *parse(const char *json)
{
	cJSON *j = NULL;
	char err[256] = "";

	if (json_parse_untrusted(json, strlen(json), JSON_MAX_DEPTH, &j, err, sizeof(err)) < 0)
		fail_msg("test JSON does not parse (%s): %s", err, json);
	return j;
}

static cJSON *read_json(const char *path)
{
	struct buf b;
	char err[256] = "";
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

/* The schema text is freed right after compiling: the plan must not borrow it. */
static struct rollup_plan *plan_ok(const char *schema)
{
	cJSON *j = parse(schema);
	struct rollup_plan *plan = NULL;
	char err[512] = "";
	int r = rollup_plan_compile(j, err, sizeof(err), &plan);

	cJSON_Delete(j);
	if (r != 0)
		fail_msg("compile failed (%d): %s\nschema: %s", r, err, schema);
	assert_non_null(plan);
	return plan;
}

static void plan_fails(const char *schema, const char *expect)
{
	struct rollup_plan *sentinel = (struct rollup_plan *)&sentinel, *plan = sentinel;
	cJSON *j = parse(schema);
	char err[512] = "";
	int r = rollup_plan_compile(j, err, sizeof(err), &plan);

	cJSON_Delete(j);
	if (r != -EINVAL)
		fail_msg("compile returned %d, not -EINVAL: %s", r, schema);
	assert_ptr_equal(plan, sentinel); /* untouched on failure */
	if (!strstr(err, expect))
		fail_msg("error \"%s\" lacks \"%s\"\nschema: %s", err, expect, schema);
}

/* The roll-up's text; caller frees. */
static char *text_of(const struct rollup *r)
{
	cJSON *j = NULL;
	char *s;

	assert_int_equal(rollup_to_json(r, &j), 0);
	s = cJSON_PrintUnformatted(j);
	assert_non_null(s);
	cJSON_Delete(j);
	return s;
}

static void add_ok(struct rollup *r, const char *data)
{
	cJSON *j = parse(data);
	int ret = rollup_add(r, j);

	cJSON_Delete(j);
	if (ret != 0)
		fail_msg("rollup_add returned %d for %s", ret, data);
}

/* Adds data, which must be refused with want, and checks that nothing changed. */
static void add_fails(struct rollup *r, const char *data, int want)
{
	char *before = text_of(r), *after;
	cJSON *j = parse(data);
	int ret = rollup_add(r, j);

	cJSON_Delete(j);
	if (ret != want)
		fail_msg("rollup_add returned %d, not %d, for %s", ret, want, data);
	after = text_of(r);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

/* The roll-up of schema over data[0..n), in that order. */
static char *rollup_text(const char *schema, const char *const *data, size_t n)
{
	struct rollup_plan *plan = plan_ok(schema);
	struct rollup r;
	char *s;

	assert_int_equal(rollup_init(&r, plan), 0);
	for (size_t i = 0; i < n; i++)
		add_ok(&r, data[i]);
	s = text_of(&r);
	rollup_release(&r);
	rollup_plan_free(plan);
	return s;
}

static void expect_rollup(const char *schema, const char *const *data, size_t n, const char *want)
{
	char *s = rollup_text(schema, data, n);

	assert_string_equal(s, want);
	free(s);
}

/* ---- the forms of the tree ---- */

struct tree_case {
	const char *form;
	const char *returns[NRETURNS];
	const char *want;
};

/* Worked out by hand from the files (not by this code), in schema property order. */
static const struct tree_case tree_cases[] = {
        {"incident",
         {"good-closed-level3", "good-forms-md-example", "good-same-day-all-types",
          "good-near-miss-numbers"},
         "{\"returns\":4,\"level\":{\"1\":1,\"2\":2,\"3\":1},"
         "\"types\":{\"cyber\":1,\"physical\":4,\"property\":2,\"relational\":1,"
         "\"sexual_harassment\":1,\"verbal\":3},"
         "\"setting\":{\"commute\":1,\"dormitory\":2,\"online\":1},"
         "\"victims\":{\"female\":2,\"male\":3},\"perpetrators\":{\"female\":0,\"male\":7}}"},
        {"rectification",
         {"good-empty-items", "good-forms-md-example", "good-mixed-statuses",
          "good-texts-200-characters"},
         "{\"returns\":4,\"items\":{\"count\":7,"
         "\"category\":{\"education\":1,\"facility\":3,\"mechanism\":1,\"other\":1,"
         "\"supervision\":1},"
         "\"status\":{\"done\":3,\"in_progress\":1,\"open\":2,\"verified\":1}},"
         "\"derived\":{\"overdue\":2}}"},
        {"screening",
         {"good-all-zero", "good-boundaries", "good-forms-md-example", "good-nothing-to-report"},
         "{\"returns\":4,\"students_enrolled\":5841,\"students_screened\":5821,"
         "\"risk_cases_found\":12,"
         "\"risk_cases_by_type\":{\"physical\":7,\"verbal\":8,\"relational\":6,\"cyber\":6,"
         "\"property\":5},"
         "\"interventions_taken\":14,\"home_visits\":30,\"counselling_sessions\":44,"
         "\"parent_meetings\":9,\"staff_trained\":196,\"student_lessons\":56,\"drills_held\":5,"
         "\"hidden_risk_points_checked\":61,\"hidden_risk_points_found\":12,"
         "\"committee_established\":2,\"reporting_channel_published\":3}"},
        {"summary",
         {"good-boundaries", "good-forms-md-example", "good-nothing-to-report",
          "good-texts-2000-characters"},
         "{\"returns\":4,\"incidents_by_level\":{\"level_1\":9,\"level_2\":3,\"level_3\":0},"
         "\"ledger_items_total\":19,\"ledger_items_done\":14,\"ledger_items_overdue\":5,"
         "\"training_sessions\":18,\"parent_outreach\":36,\"principal_confirmed\":3}"},
};

/* Every permutation of 4 indexes, in lexicographic order. */
static bool next_permutation(size_t *p, size_t n)
{
	size_t i = n - 1, j = n - 1, t;

	while (i > 0 && p[i - 1] >= p[i])
		i--;
	if (i == 0)
		return false;
	while (p[j] <= p[i - 1])
		j--;
	t = p[i - 1];
	p[i - 1] = p[j];
	p[j] = t;
	for (j = n - 1; i < j; i++, j--) {
		t = p[i];
		p[i] = p[j];
		p[j] = t;
	}
	return true;
}

/* Loads the form as the county hub does, checks that each example return is accepted,
 * and rolls the returns up in all 24 orders: each gives the expected text, byte for byte. */
static void run_tree_case(const struct tree_case *tc)
{
	struct form f;
	struct rollup_plan *plan = NULL;
	struct rollup r;
	cJSON *data[NRETURNS];
	size_t order[NRETURNS] = {0, 1, 2, 3};
	char path[256], err[512] = "";
	int orders = 0;

	snprintf(path, sizeof(path), FORMS_DIR "/%s.schema.json", tc->form);
	if (form_load_file(path, &f, err, sizeof(err)) != 0)
		fail_msg("%s: %s", path, err);
	if (rollup_plan_compile(schema_root(f.schema), err, sizeof(err), &plan) != 0)
		fail_msg("%s: %s", path, err);
	for (size_t i = 0; i < NRETURNS; i++) {
		struct errlist errs;

		snprintf(path, sizeof(path), RETURNS_DIR "/%s/%s.json", tc->form, tc->returns[i]);
		data[i] = read_json(path);
		errlist_init(&errs);
		if (form_check(&f, data[i], &errs) != 0)
			fail_msg("%s is not accepted by its form", path);
		errlist_release(&errs);
	}
	/* the plan does not borrow the schema */
	form_release(&f);

	do {
		char *s;

		assert_int_equal(rollup_init(&r, plan), 0);
		for (size_t i = 0; i < NRETURNS; i++)
			assert_int_equal(rollup_add(&r, data[order[i]]), 0);
		s = text_of(&r);
		if (strcmp(s, tc->want))
			fail_msg("%s, order %zu%zu%zu%zu:\n got  %s\n want %s", tc->form, order[0],
			         order[1], order[2], order[3], s, tc->want);
		free(s);
		rollup_release(&r);
		orders++;
	} while (next_permutation(order, NRETURNS));
	assert_int_equal(orders, 24);

	for (size_t i = 0; i < NRETURNS; i++)
		cJSON_Delete(data[i]);
	rollup_plan_free(plan);
}

static void test_tree_forms(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(tree_cases) / sizeof(tree_cases[0]); i++)
		run_tree_case(&tree_cases[i]);
}

/* The form's plan, loaded as the county hub does. */
static struct rollup_plan *tree_plan(const char *form)
{
	struct schema *schema = NULL;
	struct rollup_plan *plan = NULL;
	char path[256], err[512] = "";

	snprintf(path, sizeof(path), FORMS_DIR "/%s.schema.json", form);
	if (schema_load_file(path, &schema, err, sizeof(err)) != 0)
		fail_msg("%s: %s", path, err);
	if (rollup_plan_compile(schema_root(schema), err, sizeof(err), &plan) != 0)
		fail_msg("%s: %s", path, err);
	schema_free(schema);
	return plan;
}

/* The two examples of docs/FORMS-FORMAT.md ("The roll-up document"), byte for byte. */
static void test_docs_examples(void **state)
{
	struct rollup_plan *plan;
	struct rollup r;
	cJSON *j;
	char *s;
	(void)state;

	plan = tree_plan("rectification");
	assert_int_equal(rollup_init(&r, plan), 0);
	add_ok(&r,
	       "{\"as_of\": \"2024-06-30\", \"items\": ["
	       "{\"item_id\": \"R-1\", \"found_on\": \"2024-04-10\", \"source\": \"screening\","
	       " \"category\": \"facility\", \"problem\": \"\", \"measure\": \"\","
	       " \"responsible_role\": \"principal\", \"deadline\": \"2024-05-31\","
	       " \"status\": \"done\", \"completed_on\": \"2024-05-20\"},"
	       "{\"item_id\": \"R-2\", \"found_on\": \"2024-04-12\", \"source\": \"inspection\","
	       " \"category\": \"supervision\", \"problem\": \"\", \"measure\": \"\","
	       " \"responsible_role\": \"principal\", \"deadline\": \"2024-06-15\","
	       " \"status\": \"in_progress\", \"completed_on\": null}]}");
	add_ok(&r, "{\"as_of\": \"2024-06-30\", \"items\": []}");
	s = text_of(&r);
	assert_string_equal(s, "{\"returns\":2,\"items\":{\"count\":2,\"category\":{\"facility\":1,"
	                       "\"supervision\":1},\"status\":{\"done\":1,\"in_progress\":1}},"
	                       "\"derived\":{\"overdue\":1}}");
	free(s);
	rollup_release(&r);
	rollup_plan_free(plan);

	plan = tree_plan("incident");
	assert_int_equal(rollup_init(&r, plan), 0);
	j = read_json(RETURNS_DIR "/incident/good-forms-md-example.json");
	assert_int_equal(rollup_add(&r, j), 0);
	cJSON_Delete(j);
	j = read_json(RETURNS_DIR "/incident/good-closed-level3.json");
	assert_int_equal(rollup_add(&r, j), 0);
	cJSON_Delete(j);
	s = text_of(&r);
	assert_string_equal(s,
	                    "{\"returns\":2,\"level\":{\"2\":1,\"3\":1},\"types\":{\"physical\":2,"
	                    "\"property\":1,\"verbal\":1},\"setting\":{\"commute\":1,"
	                    "\"dormitory\":1},\"victims\":{\"female\":1,\"male\":2},"
	                    "\"perpetrators\":{\"female\":0,\"male\":5}}");
	free(s);
	rollup_release(&r);
	rollup_plan_free(plan);
}

/* No returns: zeros, empty count_by objects, a null max, zero derived counts. */
static void test_empty(void **state)
{
	static const struct {
		const char *form, *want;
	} cases[] = {
	        {"incident", "{\"returns\":0,\"level\":{},\"types\":{},\"setting\":{},"
	                     "\"victims\":{\"female\":0,\"male\":0},"
	                     "\"perpetrators\":{\"female\":0,\"male\":0}}"},
	        {"rectification", "{\"returns\":0,\"items\":{\"count\":0,\"category\":{},"
	                          "\"status\":{}},\"derived\":{\"overdue\":0}}"},
	        {"summary", "{\"returns\":0,\"incidents_by_level\":{\"level_1\":0,\"level_2\":0,"
	                    "\"level_3\":0},\"ledger_items_total\":0,\"ledger_items_done\":0,"
	                    "\"ledger_items_overdue\":0,\"training_sessions\":0,"
	                    "\"parent_outreach\":0,\"principal_confirmed\":0}"},
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rollup_plan *plan = tree_plan(cases[i].form);
		struct rollup r;
		char *s;

		assert_int_equal(rollup_init(&r, plan), 0);
		s = text_of(&r);
		assert_string_equal(s, cases[i].want);
		free(s);
		rollup_release(&r);
		rollup_plan_free(plan);
	}

	expect_rollup("{\"x-rollup\": \"count\", \"properties\": {"
	              "\"n\": {\"type\": \"integer\", \"x-rollup\": \"max\"}}}",
	              NULL, 0, "{\"returns\":0,\"n\":null}");
	/* without a root "count" there is no "returns" */
	expect_rollup("{\"properties\": {\"n\": {\"type\": \"integer\", \"x-rollup\": \"sum\"}}}",
	              NULL, 0, "{\"n\":0}");
}

/* ---- the grammar, with schemas written here ---- */

static void test_max(void **state)
{
	static const char schema[] =
	        "{\"x-rollup\": \"count\", \"properties\": {"
	        "\"n\": {\"type\": [\"integer\", \"null\"], \"x-rollup\": \"max\"}}}";
	const char *const a[] = {"{\"n\": -5}", "{\"n\": -7}", "{\"n\": null}", "{}"};
	const char *const b[] = {"{\"n\": 3}", "{\"n\": 12}", "{\"n\": 12}", "{\"n\": 0}"};
	const char *const c[] = {"{\"n\": null}", "{}"};
	(void)state;

	expect_rollup(schema, a, 4, "{\"returns\":4,\"n\":-5}"); /* negatives: not 0 */
	expect_rollup(schema, b, 4, "{\"returns\":4,\"n\":12}");
	expect_rollup(schema, c, 2, "{\"returns\":2,\"n\":null}"); /* returns, but no value */
}

static void test_count_by(void **state)
{
	static const char schema[] =
	        "{\"x-rollup\": \"count\", \"properties\": {"
	        "\"tags\": {\"type\": \"array\", \"items\": {\"type\": \"string\"},"
	        " \"x-rollup\": \"count_by\"},"
	        "\"level\": {\"type\": [\"integer\", \"null\"], \"x-rollup\": \"count_by\"},"
	        "\"flag\": {\"type\": \"boolean\", \"x-rollup\": \"count_by\"},"
	        "\"ok\": {\"type\": \"boolean\", \"x-rollup\": \"count_true\"},"
	        "\"nums\": {\"type\": \"array\", \"items\": {\"type\": \"integer\"},"
	        " \"x-rollup\": \"count_by\"}}}";
	const char *const data[] = {
	        /* an array counts a value once however often it holds it */
	        "{\"tags\": [\"b\", \"a\", \"b\", \"b\"], \"level\": 2, \"flag\": true, \"ok\": "
	        "true,"
	        " \"nums\": [10, 2, 2, -1]}",
	        "{\"tags\": [\"a\"], \"level\": 10, \"flag\": false, \"ok\": false, \"nums\": "
	        "[2.0]}",
	        "{\"tags\": [], \"level\": null, \"flag\": true, \"ok\": true, \"nums\": [null]}",
	        "{\"tags\": [\"a/b\", \"\"], \"level\": 2, \"ok\": null}",
	};
	/* keys sorted by bytes: "10" before "2", "" first */
	const char *want = "{\"returns\":4,\"tags\":{\"\":1,\"a\":2,\"a/b\":1,\"b\":1},"
	                   "\"level\":{\"10\":1,\"2\":2},\"flag\":{\"false\":1,\"true\":2},"
	                   "\"ok\":2,\"nums\":{\"-1\":1,\"10\":1,\"2\":2}}";
	(void)state;

	expect_rollup(schema, data, 4, want);
}

/* Objects recurse, arrays of objects count and aggregate their elements (also nested),
 * local $ref are followed, an object of only "none" is left out, and the annotations
 * beside a $ref win over its target's. */
static void test_structure(void **state)
{
	static const char schema[] =
	        "{\"x-rollup\": \"count\", \"$defs\": {"
	        "  \"sex\": {\"type\": \"object\", \"properties\": {"
	        "    \"female\": {\"$ref\": \"#/$defs/n\"}, \"male\": {\"$ref\": \"#/$defs/n\"}}},"
	        "  \"n\": {\"type\": \"integer\", \"x-rollup\": \"sum\"},"
	        "  \"item\": {\"type\": \"object\", \"properties\": {"
	        "    \"kind\": {\"type\": \"string\", \"x-rollup\": \"count_by\"},"
	        "    \"note\": {\"type\": \"string\", \"x-rollup\": \"none\"},"
	        "    \"parts\": {\"type\": \"array\", \"x-rollup\": \"count\", \"items\": {"
	        "      \"type\": \"object\", \"properties\": {"
	        "        \"weight\": {\"$ref\": \"#/$defs/n\", \"x-rollup\": \"max\"}}}}}}},"
	        "\"properties\": {"
	        "  \"victims\": {\"$ref\": \"#/$defs/sex\"},"
	        "  \"texts\": {\"type\": \"object\", \"properties\": {"
	        "    \"a\": {\"type\": \"string\", \"x-rollup\": \"none\"}}},"
	        "  \"deep\": {\"type\": \"object\", \"properties\": {\"inner\": {\"type\": "
	        "\"object\","
	        "    \"properties\": {\"x\": {\"type\": \"integer\", \"x-rollup\": \"sum\"}}}}},"
	        "  \"items\": {\"type\": \"array\", \"x-rollup\": \"count\","
	        "    \"items\": {\"$ref\": \"#/$defs/item\"}}}}";
	const char *const data[] = {
	        "{\"victims\": {\"female\": 1, \"male\": 2}, \"texts\": {\"a\": \"x\"},"
	        " \"deep\": {\"inner\": {\"x\": 5}},"
	        " \"items\": [{\"kind\": \"k1\", \"note\": \"n\", \"parts\": [{\"weight\": 4}]},"
	        "            {\"kind\": \"k2\", \"parts\": []}]}",
	        "{\"victims\": {\"female\": 3, \"male\": 0}, \"deep\": {},"
	        " \"items\": [{\"kind\": \"k1\", \"parts\": [{\"weight\": 9}, {\"weight\": 1}]}]}",
	        "{\"victims\": null, \"items\": []}",
	};
	const char *want = "{\"returns\":3,\"victims\":{\"female\":4,\"male\":2},"
	                   "\"deep\":{\"inner\":{\"x\":5}},"
	                   "\"items\":{\"count\":3,\"kind\":{\"k1\":2,\"k2\":1},"
	                   "\"parts\":{\"count\":3,\"weight\":9}}}";
	(void)state;

	expect_rollup(schema, data, 3, want);
}

/* A count_by value repeated across elements of different returns, and derived counts
 * with and without "each". */
static void test_derived(void **state)
{
	static const char schema[] =
	        "{\"x-rollup\": \"count\", \"properties\": {"
	        "  \"as_of\": {\"type\": \"string\", \"x-rollup\": \"none\"},"
	        "  \"items\": {\"type\": \"array\", \"x-rollup\": \"count\", \"items\": {"
	        "    \"type\": \"object\", \"properties\": {"
	        "      \"deadline\": {\"type\": \"string\", \"x-rollup\": \"none\"},"
	        "      \"status\": {\"type\": \"string\", \"x-rollup\": \"count_by\"}}}}},"
	        "\"x-rollup-derived\": ["
	        "  {\"name\": \"overdue\", \"each\": \"/items\", \"title\": \"t\", \"x-label-zh\": "
	        "\"z\","
	        "   \"when\": [{\"left\": \"@/status\", \"op\": \"!=\", \"right\": {\"const\": "
	        "\"done\"}},"
	        "            {\"left\": \"/as_of\", \"op\": \">\", \"right\": \"@/deadline\"}]},"
	        "  {\"name\": \"late_ledgers\", \"when\": {\"left\": \"/as_of\", \"op\": \">\","
	        "   \"right\": {\"const\": \"2024-06-01\"}}},"
	        "  {\"name\": \"all\"}]}";
	const char *const data[] = {
	        "{\"as_of\": \"2024-06-30\", \"items\": ["
	        " {\"deadline\": \"2024-06-01\", \"status\": \"open\"},"
	        " {\"deadline\": \"2024-07-01\", \"status\": \"open\"},"
	        " {\"status\": \"open\"},"
	        " {\"deadline\": \"2024-05-01\", \"status\": \"done\"}]}",
	        "{\"as_of\": \"2024-05-31\", \"items\": ["
	        " {\"deadline\": \"2024-05-30\", \"status\": \"in_progress\"}]}",
	        "{\"items\": [{\"deadline\": \"2024-05-30\", \"status\": \"open\"}]}",
	};
	/* an item without a deadline, or a ledger without as_of, is not overdue */
	const char *want = "{\"returns\":3,\"items\":{\"count\":6,"
	                   "\"status\":{\"done\":1,\"in_progress\":1,\"open\":4}},"
	                   "\"derived\":{\"overdue\":2,\"late_ledgers\":1,\"all\":3}}";
	(void)state;

	expect_rollup(schema, data, 3, want);
}

/* The same multiset of returns in many orders gives one text. */
static void test_order_independence(void **state)
{
	static const char schema[] =
	        "{\"x-rollup\": \"count\", \"properties\": {"
	        "\"k\": {\"type\": \"array\", \"items\": {\"type\": \"string\"},"
	        " \"x-rollup\": \"count_by\"},"
	        "\"n\": {\"type\": \"integer\", \"x-rollup\": \"sum\"},"
	        "\"m\": {\"type\": \"integer\", \"x-rollup\": \"max\"}}}";
	struct rollup_plan *plan = plan_ok(schema);
	char data[64][96];
	char *first = NULL;
	size_t order[64];
	unsigned seed = 12345;
	(void)state;

	for (size_t i = 0; i < 64; i++) {
		snprintf(data[i], sizeof(data[i]),
		         "{\"k\": [\"v%zu\", \"v%zu\", \"w\"], \"n\": %d, \"m\": %d}", i % 7, i % 3,
		         (int)(i * 37 % 101) - 50, (int)(i * 53 % 97) - 48);
		order[i] = i;
	}
	for (int round = 0; round < 20; round++) {
		struct rollup r;
		char *s;

		for (size_t i = 63; i > 0; i--) { /* Fisher-Yates with a fixed LCG */
			size_t j, t;

			seed = seed * 1103515245u + 12345u;
			j = (seed >> 8) % (i + 1);
			t = order[i];
			order[i] = order[j];
			order[j] = t;
		}
		assert_int_equal(rollup_init(&r, plan), 0);
		for (size_t i = 0; i < 64; i++)
			add_ok(&r, data[order[i]]);
		s = text_of(&r);
		if (!first)
			first = s;
		else {
			assert_string_equal(s, first);
			free(s);
		}
		rollup_release(&r);
	}
	/* and the total is right, not only stable */
	{
		long n = 0, m = -1000;

		for (size_t i = 0; i < 64; i++) {
			long v = (long)(i * 37 % 101) - 50, w = (long)(i * 53 % 97) - 48;

			n += v;
			if (w > m)
				m = w;
		}
		char want[64];

		snprintf(want, sizeof(want), "\"n\":%ld,\"m\":%ld}", n, m);
		assert_non_null(strstr(first, want));
		assert_non_null(strstr(first, "\"w\":64"));
	}
	free(first);
	rollup_plan_free(plan);
}

/* ---- refusals ---- */

static void test_compile_errors(void **state)
{
	static const struct {
		const char *schema, *expect;
	} cases[] = {
	        {"{\"properties\": {\"level\": {\"type\": \"integer\", \"x-rollup\": \"avg\"}}}",
	         "#/properties/level/x-rollup: unknown value \"avg\""},
	        {"{\"properties\": {\"v\": {\"type\": \"object\", \"x-rollup\": \"count_by\","
	         " \"properties\": {\"a\": {\"type\": \"integer\", \"x-rollup\": \"sum\"}}}}}",
	         "#/properties/v/x-rollup: count_by cannot count an object"},
	        {"{\"properties\": {\"v\": {\"properties\": {}, \"x-rollup\": \"count_by\"}}}",
	         "count_by cannot count an object"},
	        {"{\"properties\": {\"v\": {\"type\": \"array\", \"x-rollup\": \"count_by\","
	         " \"items\": {\"type\": \"object\"}}}}",
	         "count_by needs"},
	        {"{\"properties\": {\"v\": {\"type\": \"object\", \"x-rollup\": \"sum\","
	         " \"properties\": {}}}}",
	         "sum cannot aggregate an object"},
	        {"{\"properties\": {\"v\": {\"type\": \"string\", \"x-rollup\": \"sum\"}}}",
	         "#/properties/v/x-rollup: sum needs \"type\": \"integer\""},
	        {"{\"properties\": {\"v\": {\"type\": \"number\", \"x-rollup\": \"max\"}}}",
	         "max needs \"type\": \"integer\""},
	        {"{\"properties\": {\"v\": {\"x-rollup\": \"sum\"}}}", "sum needs"},
	        {"{\"properties\": {\"v\": {\"type\": \"integer\", \"x-rollup\": \"count_true\"}}}",
	         "count_true needs \"type\": \"boolean\""},
	        {"{\"properties\": {\"v\": {\"type\": \"integer\", \"x-rollup\": 1}}}",
	         "#/properties/v/x-rollup: must be a string"},
	        {"{\"properties\": {\"v\": {\"type\": \"integer\"}}}",
	         "#/properties/v: no x-rollup"},
	        {"{\"properties\": {\"v\": {\"type\": \"object\"}}}",
	         "#/properties/v: an object without properties"},
	        {"{\"properties\": {\"v\": true}}", "#/properties/v: a property's schema must be"},
	        {"{\"properties\": []}", "#/properties: must be an object"},
	        {"{\"properties\": {\"v\": {\"type\": \"array\", \"x-rollup\": \"count\","
	         " \"items\": {\"type\": \"string\"}}}}",
	         "#/properties/v/x-rollup: count needs an array of objects"},
	        {"{\"properties\": {\"v\": {\"type\": \"integer\", \"x-rollup\": \"count\"}}}",
	         "count needs an array of objects"},
	        {"{\"properties\": {\"v\": {\"type\": \"array\", \"x-rollup\": \"count\","
	         " \"items\": {\"type\": \"object\", \"x-rollup\": \"count\", \"properties\": "
	         "{}}}}}",
	         "#/properties/v/items/x-rollup: not read here"},
	        {"{\"properties\": {\"v\": {\"type\": \"array\", \"x-rollup\": \"count\","
	         " \"items\": {\"type\": \"object\", \"properties\": {"
	         " \"w\": {\"type\": \"string\", \"x-rollup\": \"bogus\"}}}}}}",
	         "#/properties/v/items/properties/w/x-rollup: unknown value \"bogus\""},
	        {"{\"properties\": {\"returns\": {\"type\": \"integer\", \"x-rollup\": \"sum\"}}}",
	         "#/properties/returns: the name \"returns\" is taken"},
	        {"{\"properties\": {\"derived\": {\"type\": \"integer\", \"x-rollup\": \"sum\"}}}",
	         "the name \"derived\" is taken"},
	        {"{\"properties\": {\"v\": {\"type\": \"array\", \"x-rollup\": \"count\","
	         " \"items\": {\"type\": \"object\", \"properties\": {"
	         " \"count\": {\"type\": \"integer\", \"x-rollup\": \"sum\"}}}}}}",
	         "the name \"count\" is taken"},
	        {"{\"x-rollup\": \"sum\", \"properties\": {}}", "#/x-rollup: the root takes only"},
	        {"[]", "a form schema is an object"},
	        {"{\"properties\": {\"v\": {\"$ref\": \"other.json#/a\"}}}",
	         "#/properties/v/$ref: \"other.json#/a\": only local references"},
	        {"{\"properties\": {\"v\": {\"$ref\": \"#/$defs/nope\"}}}",
	         "#/properties/v/$ref: \"#/$defs/nope\" does not resolve"},
	        {"{\"$defs\": {\"a\": {\"$ref\": \"#/$defs/b\"}, \"b\": {\"$ref\": \"#/$defs/a\"}},"
	         " \"properties\": {\"v\": {\"$ref\": \"#/$defs/a\"}}}",
	         "references in a row"},
	        /* a recursive schema ends at the depth limit */
	        {"{\"$defs\": {\"t\": {\"type\": \"object\", \"properties\": {"
	         " \"n\": {\"type\": \"integer\", \"x-rollup\": \"sum\"},"
	         " \"child\": {\"$ref\": \"#/$defs/t\"}}}},"
	         " \"properties\": {\"root\": {\"$ref\": \"#/$defs/t\"}}}",
	         "objects nested deeper than 16 levels"},
	        {"{\"x-rollup-derived\": {}}", "#/x-rollup-derived: must be an array"},
	        {"{\"x-rollup-derived\": [{\"name\": \"Overdue\"}]}",
	         "#/x-rollup-derived/0/name: must be [a-z0-9_]+"},
	        {"{\"x-rollup-derived\": [{\"each\": \"/items\"}]}", "/0/name: must be"},
	        {"{\"x-rollup-derived\": [{\"name\": \"a\"}, {\"name\": \"a\"}]}",
	         "#/x-rollup-derived/1/name: \"a\" is used twice"},
	        {"{\"x-rollup-derived\": [{\"name\": \"a\", \"wehn\": []}]}",
	         "#/x-rollup-derived/0: unknown member \"wehn\""},
	        {"{\"x-rollup-derived\": [{\"name\": \"ok\"}, {\"name\": \"late\", \"each\": "
	         "\"/i\","
	         " \"when\": [{\"left\": \"@/d\", \"op\": \"=<\", \"right\": 1}]}]}",
	         "#/x-rollup-derived/1 (\"late\"): when[0]"},
	        {"{\"x-rollup-derived\": [1]}", "#/x-rollup-derived/0: must be an object"},
	};
	cJSON *j;
	struct rollup_plan *plan = NULL;
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		plan_fails(cases[i].schema, cases[i].expect);

	/* err may be NULL */
	j = parse("{\"properties\": {\"v\": {\"type\": \"integer\", \"x-rollup\": \"avg\"}}}");
	assert_int_equal(rollup_plan_compile(j, NULL, 0, &plan), -EINVAL);
	assert_null(plan);
	cJSON_Delete(j);

	/* at most ROLLUP_DERIVED_MAX derived counts */
	{
		char many[8192];
		size_t n = 0;

		n += (size_t)snprintf(many + n, sizeof(many) - n, "{\"x-rollup-derived\": [");
		for (int k = 0; k <= ROLLUP_DERIVED_MAX; k++)
			n += (size_t)snprintf(many + n, sizeof(many) - n, "%s{\"name\": \"d%d\"}",
			                      k ? "," : "", k);
		snprintf(many + n, sizeof(many) - n, "]}");
		plan_fails(many, "more than 64 entries");
	}
}

/* Values that do not fit the plan are refused, and the roll-up is left as it was. */
static void test_add_refusals(void **state)
{
	static const char schema[] =
	        "{\"x-rollup\": \"count\", \"properties\": {"
	        "\"a\": {\"type\": \"integer\", \"x-rollup\": \"sum\"},"
	        "\"m\": {\"type\": \"integer\", \"x-rollup\": \"max\"},"
	        "\"k\": {\"type\": \"string\", \"x-rollup\": \"count_by\"},"
	        "\"t\": {\"type\": \"boolean\", \"x-rollup\": \"count_true\"},"
	        "\"o\": {\"type\": \"object\", \"properties\": {"
	        "  \"x\": {\"type\": \"integer\", \"x-rollup\": \"sum\"}}},"
	        "\"e\": {\"type\": \"array\", \"x-rollup\": \"count\", \"items\": {"
	        "  \"type\": \"object\", \"properties\": {"
	        "    \"y\": {\"type\": \"integer\", \"x-rollup\": \"sum\"}}}}}}";
	struct rollup_plan *plan = plan_ok(schema);
	struct rollup r;
	char big[ROLLUP_KEY_MAX + 32];
	cJSON *j;
	(void)state;

	assert_int_equal(rollup_init(&r, plan), 0);
	add_ok(&r, "{\"a\": 1, \"m\": 5, \"k\": \"x\", \"t\": true, \"o\": {\"x\": 2},"
	           " \"e\": [{\"y\": 3}]}");

	/* each refusal comes after values that would have counted: all or nothing */
	add_fails(&r, "{\"a\": 1, \"k\": \"new\", \"t\": true, \"e\": [{\"y\": 1}], \"m\": 1.5}",
	          -EINVAL);
	add_fails(&r, "{\"k\": \"new\", \"a\": 0.5}", -EINVAL);
	add_fails(&r, "{\"k\": \"new\", \"a\": \"1\"}", -EINVAL);
	add_fails(&r, "{\"k\": \"new\", \"a\": 1e300}", -EINVAL);
	add_fails(&r, "{\"k\": {\"x\": 1}}", -EINVAL);
	add_fails(&r, "{\"k\": \"new\", \"t\": 1}", -EINVAL);
	add_fails(&r, "{\"k\": \"new\", \"o\": [1]}", -EINVAL);
	add_fails(&r, "{\"k\": \"new\", \"e\": {\"y\": 1}}", -EINVAL);
	add_fails(&r, "{\"k\": \"new\", \"e\": [{\"y\": 1}, 2]}", -EINVAL);
	add_fails(&r, "{\"k\": \"new\", \"e\": [{\"y\": 1}], \"o\": {\"x\": true}}", -EINVAL);
	add_fails(&r, "[]", -EINVAL);
	add_fails(&r, "null", -EINVAL);
	snprintf(big, sizeof(big), "{\"k\": \"%0*d\"}", ROLLUP_KEY_MAX + 1, 7);
	add_fails(&r, big, -E2BIG);
	snprintf(big, sizeof(big), "{\"k\": \"%0*d\"}", ROLLUP_KEY_MAX, 7);
	add_ok(&r, big);

	/* sums stay within 2^53, where every integer is exact */
	add_ok(&r, "{\"a\": 9007199254740991}"); /* 1 + 2^53 - 1 */
	add_fails(&r, "{\"a\": 1, \"k\": \"new\"}", -EOVERFLOW);
	add_fails(&r, "{\"e\": [{\"y\": 9007199254740992}, {\"y\": 9007199254740992}]}",
	          -EOVERFLOW);
	add_ok(&r, "{\"a\": -9007199254740991, \"k\": \"x\"}");

	{
		char *s = text_of(&r), want[ROLLUP_KEY_MAX + 256];

		snprintf(want, sizeof(want),
		         "{\"returns\":4,\"a\":1,\"m\":5,\"k\":{\"%0*d\":1,\"x\":2},\"t\":1,"
		         "\"o\":{\"x\":2},\"e\":{\"count\":1,\"y\":3}}",
		         ROLLUP_KEY_MAX, 7);
		assert_string_equal(s, want);
		free(s);
	}
	rollup_release(&r);

	/* ROLLUP_KEYS_MAX distinct values per field, then -E2BIG */
	assert_int_equal(rollup_init(&r, plan), 0);
	j = parse("{\"k\": \"\"}");
	for (int i = 0; i < ROLLUP_KEYS_MAX; i++) {
		char key[16];

		snprintf(key, sizeof(key), "%d", i);
		cJSON_SetValuestring(cJSON_GetObjectItemCaseSensitive(j, "k"), key);
		assert_int_equal(rollup_add(&r, j), 0);
	}
	cJSON_SetValuestring(cJSON_GetObjectItemCaseSensitive(j, "k"), "one more");
	assert_int_equal(rollup_add(&r, j), -E2BIG);
	cJSON_SetValuestring(cJSON_GetObjectItemCaseSensitive(j, "k"), "42");
	assert_int_equal(rollup_add(&r, j), 0);
	cJSON_Delete(j);
	{
		char *s = text_of(&r);

		assert_non_null(strstr(s, "\"returns\":10001,"));
		assert_non_null(strstr(s, ",\"42\":2,"));
		assert_null(strstr(s, "one more"));
		free(s);
	}
	rollup_release(&r);
	rollup_plan_free(plan);
}

/* ---- rollup_diff ---- */

static int diff(const char *expected, const char *actual, struct errlist *errs)
{
	cJSON *e = parse(expected), *a = parse(actual);
	int r;

	errlist_init(errs);
	r = rollup_diff(e, a, errs);
	cJSON_Delete(e);
	cJSON_Delete(a);
	return r;
}

static void expect_entry(const struct errlist *errs, size_t i, const char *pointer,
                         const char *message)
{
	assert_true(i < errs->count);
	assert_int_equal(errs->entries[i].severity, ERRLIST_ERROR);
	assert_string_equal(errs->entries[i].keyword, "rollup");
	assert_string_equal(errs->entries[i].pointer, pointer);
	assert_string_equal(errs->entries[i].message, message);
}

static void test_diff(void **state)
{
	static const char region[] =
	        "{\"returns\":4,\"level\":{\"1\":1,\"2\":2,\"3\":1},\"victims\":{\"female\":2,"
	        "\"male\":3},\"derived\":{\"overdue\":2}}";
	struct errlist errs;
	(void)state;

	/* equal, also with members in another order */
	assert_int_equal(diff(region, region, &errs), 0);
	assert_int_equal(errs.count, 0);
	errlist_release(&errs);
	assert_int_equal(diff(region,
	                      "{\"derived\":{\"overdue\":2},\"victims\":{\"male\":3,\"female\":2},"
	                      "\"level\":{\"3\":1,\"2\":2,\"1\":1},\"returns\":4}",
	                      &errs),
	                 0);
	errlist_release(&errs);

	/* a county that counts one level-2 incident more */
	assert_int_equal(diff(region,
	                      "{\"returns\":4,\"level\":{\"1\":1,\"2\":3,\"3\":1},\"victims\":"
	                      "{\"female\":2,\"male\":3},\"derived\":{\"overdue\":2}}",
	                      &errs),
	                 1);
	expect_entry(&errs, 0, "/level/2", "expected 2, got 3");
	errlist_release(&errs);

	/* missing, extra, wrong type, in member name order */
	assert_int_equal(diff(region,
	                      "{\"returns\":\"4\",\"level\":{\"1\":1,\"2\":2,\"4\":1},\"victims\":"
	                      "{\"female\":2,\"male\":3},\"derived\":{\"overdue\":2},\"x/y\":null}",
	                      &errs),
	                 4);
	expect_entry(&errs, 0, "/level/3", "expected 1, missing");
	expect_entry(&errs, 1, "/level/4", "not expected, got 1");
	expect_entry(&errs, 2, "/returns", "expected 4, got \"4\"");
	expect_entry(&errs, 3, "/x~1y", "not expected, got null");
	errlist_release(&errs);

	/* whole documents, arrays, booleans, null vs max, long strings */
	assert_int_equal(diff("{}", "[]", &errs), 1);
	expect_entry(&errs, 0, "", "expected an object, got an array");
	errlist_release(&errs);
	assert_int_equal(diff("[1,2,{\"a\":true}]", "[1,3,{\"a\":false},4]", &errs), 3);
	expect_entry(&errs, 0, "/1", "expected 2, got 3");
	expect_entry(&errs, 1, "/2/a", "expected true, got false");
	expect_entry(&errs, 2, "/3", "not expected, got 4");
	errlist_release(&errs);
	assert_int_equal(diff("{\"m\":null}", "{\"m\":0.5}", &errs), 1);
	expect_entry(&errs, 0, "/m", "expected null, got 0.5");
	errlist_release(&errs);
	assert_int_equal(diff("{\"s\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
	                      "{\"s\":\"b\"}", &errs),
	                 1);
	expect_entry(&errs, 0, "/s",
	             "expected \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\", got \"b\"");
	errlist_release(&errs);
	assert_int_equal(diff("{\"o\":{\"a\":1}}", "{\"o\":1}", &errs), 1);
	expect_entry(&errs, 0, "/o", "expected an object, got 1");
	errlist_release(&errs);

	/* more differences than the list holds are still counted */
	{
		char a[4096], b[4096];
		size_t na = 0, nb = 0;

		na += (size_t)snprintf(a + na, sizeof(a) - na, "{");
		nb += (size_t)snprintf(b + nb, sizeof(b) - nb, "{");
		for (int i = 0; i < 150; i++) {
			na += (size_t)snprintf(a + na, sizeof(a) - na, "%s\"k%d\":%d", i ? "," : "",
			                       i, i);
			nb += (size_t)snprintf(b + nb, sizeof(b) - nb, "%s\"k%d\":%d", i ? "," : "",
			                       i, i + 1);
		}
		snprintf(a + na, sizeof(a) - na, "}");
		snprintf(b + nb, sizeof(b) - nb, "}");
		assert_int_equal(diff(a, b, &errs), 150);
		assert_int_equal(errs.count, ERRLIST_MAX);
		assert_int_equal(errs.errors, 150);
		errlist_release(&errs);
	}
}

/* Duplicate member names (a tree not from json_parse_untrusted()) and nesting too deep to
 * compare. */
static void test_diff_limits(void **state)
{
	struct errlist errs;
	cJSON *e, *a, *deep_e, *deep_a;
	(void)state;

	e = cJSON_Parse("{\"a\":1}");
	a = cJSON_Parse("{\"a\":1,\"a\":2}");
	assert_non_null(e);
	assert_non_null(a);
	errlist_init(&errs);
	assert_int_equal(rollup_diff(e, a, &errs), 1);
	assert_string_equal(errs.entries[0].pointer, "/a");
	assert_non_null(strstr(errs.entries[0].message, "not expected"));
	errlist_release(&errs);
	cJSON_Delete(e);
	cJSON_Delete(a);

	deep_e = cJSON_CreateNumber(1);
	deep_a = cJSON_CreateNumber(1);
	for (int i = 0; i < ROLLUP_DIFF_MAX_DEPTH; i++) {
		cJSON *oe = cJSON_CreateObject(), *oa = cJSON_CreateObject();

		assert_true(cJSON_AddItemToObject(oe, "x", deep_e));
		assert_true(cJSON_AddItemToObject(oa, "x", deep_a));
		deep_e = oe;
		deep_a = oa;
	}
	errlist_init(&errs);
	assert_int_equal(rollup_diff(deep_e, deep_a, &errs), 0); /* 64 levels: compared */
	e = cJSON_CreateObject();
	a = cJSON_CreateObject();
	assert_true(cJSON_AddItemToObject(e, "x", deep_e));
	assert_true(cJSON_AddItemToObject(a, "x", deep_a));
	assert_int_equal(rollup_diff(e, a, &errs), -ELOOP);
	errlist_release(&errs);
	cJSON_Delete(e);
	cJSON_Delete(a);
}

/* The region recomputes and compares: a roll-up compared with itself has no difference,
 * and one with a return fewer differs exactly where that return counted. */
static void test_diff_rollups(void **state)
{
	struct form f;
	struct rollup_plan *plan = NULL;
	struct rollup county, region;
	struct errlist errs;
	cJSON *c = NULL, *g = NULL, *data[2];
	char err[512] = "";
	(void)state;

	assert_int_equal(
	        form_load_file(FORMS_DIR "/rectification.schema.json", &f, err, sizeof(err)), 0);
	assert_int_equal(rollup_plan_compile(schema_root(f.schema), err, sizeof(err), &plan), 0);
	form_release(&f);
	data[0] = read_json(RETURNS_DIR "/rectification/good-mixed-statuses.json");
	data[1] = read_json(RETURNS_DIR "/rectification/good-forms-md-example.json");
	assert_int_equal(rollup_init(&county, plan), 0);
	assert_int_equal(rollup_init(&region, plan), 0);
	assert_int_equal(rollup_add(&county, data[0]), 0);
	assert_int_equal(rollup_add(&county, data[1]), 0);
	assert_int_equal(rollup_add(&region, data[1]), 0);
	assert_int_equal(rollup_add(&region, data[0]), 0);
	assert_int_equal(rollup_to_json(&county, &c), 0);
	assert_int_equal(rollup_to_json(&region, &g), 0);
	errlist_init(&errs);
	assert_int_equal(rollup_diff(g, c, &errs), 0);
	cJSON_Delete(g);
	rollup_release(&region);

	assert_int_equal(rollup_init(&region, plan), 0);
	assert_int_equal(rollup_add(&region, data[0]), 0);
	assert_int_equal(rollup_to_json(&region, &g), 0);
	assert_int_equal(rollup_diff(g, c, &errs), 4);
	expect_entry(&errs, 0, "/items/category/facility", "expected 1, got 2");
	expect_entry(&errs, 1, "/items/count", "expected 5, got 6");
	expect_entry(&errs, 2, "/items/status/done", "expected 1, got 2");
	expect_entry(&errs, 3, "/returns", "expected 1, got 2");
	errlist_release(&errs);

	cJSON_Delete(g);
	cJSON_Delete(c);
	cJSON_Delete(data[0]);
	cJSON_Delete(data[1]);
	rollup_release(&region);
	rollup_release(&county);
	rollup_plan_free(plan);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_tree_forms),     cmocka_unit_test(test_docs_examples),
	        cmocka_unit_test(test_empty),          cmocka_unit_test(test_max),
	        cmocka_unit_test(test_count_by),       cmocka_unit_test(test_structure),
	        cmocka_unit_test(test_derived),        cmocka_unit_test(test_order_independence),
	        cmocka_unit_test(test_compile_errors), cmocka_unit_test(test_add_refusals),
	        cmocka_unit_test(test_diff),           cmocka_unit_test(test_diff_limits),
	        cmocka_unit_test(test_diff_rollups),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
