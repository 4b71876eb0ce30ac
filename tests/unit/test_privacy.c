/* Unit tests for common/privacy. */
#include <dirent.h>
#include <errno.h>
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
#include "common/privacy.h"
#include "common/banned.h"

/* The check character of 17 digits by GB 11643-1999 written out independently of the
 * module: weight of position i (from the left, 1-based) is 2^(18-i) mod 11, and the check
 * value is (12 - sum mod 11) mod 11, 10 written X. */
static char check_char(const char *d17)
{
	int sum = 0, w = 1;

	/* weights from the right: position 17 has 2^1, position 1 has 2^17 */
	for (int i = 16; i >= 0; i--) {
		w = (w * 2) % 11;
		sum += (d17[i] - '0') * w;
	}
	int v = (12 - sum % 11) % 11;
	return v == 10 ? 'X' : (char)('0' + v);
}

/* An 18-character ID from 17 digits; out has room for 19 bytes. */
static void make_id(const char *d17, char out[19])
{
	memcpy(out, d17, 17);
	out[17] = check_char(d17);
	out[18] = '\0';
}

/* A wrong but well-formed check character. */
static char wrong_check(char good)
{
	return good == '1' ? '2' : '1';
}

/* ASCII digits and X to full-width (U+FF10.., U+FF38), other bytes copied. */
static void to_fullwidth(const char *s, char *out, size_t outlen)
{
	size_t n = 0;

	for (; *s && n + 4 < outlen; s++) {
		if (*s >= '0' && *s <= '9') {
			out[n++] = (char)0xEF;
			out[n++] = (char)0xBC;
			out[n++] = (char)(0x90 + (*s - '0'));
		} else if (*s == 'X') {
			out[n++] = (char)0xEF;
			out[n++] = (char)0xBC;
			out[n++] = (char)0xB8;
		} else {
			out[n++] = *s;
		}
	}
	out[n] = '\0';
}

static int scan(const char *s, struct privacy_match *m)
{
	return privacy_scan(s, strlen(s), m);
}

static void assert_match(const char *s, enum privacy_kind kind, size_t offset, size_t length,
                         size_t char_offset, size_t char_length)
{
	struct privacy_match m;

	if (scan(s, &m) != 1)
		fail_msg("no match in \"%s\"", s);
	assert_int_equal(m.kind, kind);
	assert_int_equal(m.offset, offset);
	assert_int_equal(m.length, length);
	assert_int_equal(m.char_offset, char_offset);
	assert_int_equal(m.char_length, char_length);
}

static void assert_clean(const char *s)
{
	struct privacy_match m = {.kind = PRIVACY_MOBILE, .offset = 777};

	if (scan(s, &m) != 0)
		fail_msg("unexpected match in \"%s\" at byte %zu", s, m.offset);
	assert_int_equal(m.offset, 777); /* untouched */
}

static void test_check_char_oracle(void **state)
{
	(void)state;
	/* the widely published example, and the textbook weights written out */
	assert_int_equal(check_char("11010519491231002"), 'X');
	assert_int_equal(check_char("44052418800101001"), '4');
}

static void test_id_published_example(void **state)
{
	(void)state;
	assert_match("11010519491231002X", PRIVACY_ID_NUMBER, 0, 18, 0, 18);
	assert_match("11010519491231002x", PRIVACY_ID_NUMBER, 0, 18, 0, 18);
	assert_match("id 11010519491231002X.", PRIVACY_ID_NUMBER, 3, 18, 3, 18);
	assert_clean("110105194912310021");
	assert_clean("110105194912310020");
	assert_clean("11010519491231002Y");
}

static void test_id_computed(void **state)
{
	static const char *const bases[] = {
	        "44052418800101001", "32010219900307123", "65420120120815456", "21050219851212345",
	        "53010219790101889", "11010120000229004", "32010219900301041", "32010219900301121",
	};
	char id[19], bad[19], text[64];
	int saw_x = 0, saw_digit = 0;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bases); i++) {
		make_id(bases[i], id);
		if (id[17] == 'X')
			saw_x = 1;
		else
			saw_digit = 1;
		assert_match(id, PRIVACY_ID_NUMBER, 0, 18, 0, 18);
		memcpy(bad, id, sizeof(bad));
		bad[17] = wrong_check(id[17]);
		assert_clean(bad);
		snprintf(text, sizeof(text), "no. %s!", bad);
		assert_clean(text);
		/* one digit changed in the body breaks the check as well */
		memcpy(bad, id, sizeof(bad));
		bad[5] = bad[5] == '9' ? '0' : (char)(bad[5] + 1);
		assert_clean(bad);
	}
	/* the bases cover both kinds of check character, or the test proves less */
	assert_true(saw_x);
	assert_true(saw_digit);
}

static void test_id_longer_runs(void **state)
{
	char id[19], text[64];

	(void)state;
	make_id("44052418800101001", id);
	assert_true(id[17] >= '0' && id[17] <= '9');
	snprintf(text, sizeof(text), "5%s", id);
	assert_clean(text);
	snprintf(text, sizeof(text), "%s7", id);
	assert_clean(text);
	snprintf(text, sizeof(text), "ref 00%s00 end", id);
	assert_clean(text);
	/* X then a digit: still a longer run */
	assert_clean("11010519491231002X7");
	/* a separator ends the run */
	snprintf(text, sizeof(text), "7 %s 7", id);
	assert_match(text, PRIVACY_ID_NUMBER, 2, 18, 2, 18);
	/* a space inside breaks it: IDs are written without */
	assert_clean("1101051 9491231002X");
}

static void test_id_fullwidth_and_chinese(void **state)
{
	char fw[128], text[256], id[19];

	(void)state;
	to_fullwidth("11010519491231002X", fw, sizeof(fw));
	assert_int_equal(strlen(fw), 54);
	assert_match(fw, PRIVACY_ID_NUMBER, 0, 54, 0, 18);
	/* full-width lower-case x (U+FF58) */
	to_fullwidth("11010519491231002", fw, sizeof(fw));
	snprintf(text, sizeof(text), "%s\xEF\xBD\x98", fw);
	assert_match(text, PRIVACY_ID_NUMBER, 0, 54, 0, 18);
	/* mixed full-width and ASCII digits in one number */
	snprintf(text, sizeof(text), "\xEF\xBC\x91%s", "1010519491231002X");
	assert_match(text, PRIVACY_ID_NUMBER, 0, 20, 0, 18);
	/* embedded in Chinese text: 6 characters (18 bytes) before it */
	assert_match("学生身份证号11010519491231002X，已登记", PRIVACY_ID_NUMBER, 18, 18, 6, 18);
	to_fullwidth("学生身份证号11010519491231002X，已登记", text, sizeof(text));
	assert_match(text, PRIVACY_ID_NUMBER, 18, 54, 6, 18);
	/* a full-width digit before or after makes a longer run */
	make_id("44052418800101001", id);
	to_fullwidth(id, fw, sizeof(fw));
	snprintf(text, sizeof(text), "\xEF\xBC\x95%s", fw);
	assert_clean(text);
	snprintf(text, sizeof(text), "%s\xEF\xBC\x95", fw);
	assert_clean(text);
}

static void test_mobile_forms(void **state)
{
	(void)state;
	assert_match("13800138000", PRIVACY_MOBILE, 0, 11, 0, 11);
	assert_match("19912345678", PRIVACY_MOBILE, 0, 11, 0, 11);
	assert_match("138 0013 8000", PRIVACY_MOBILE, 0, 13, 0, 13);
	assert_match("138-0013-8000", PRIVACY_MOBILE, 0, 13, 0, 13);
	assert_match("138-0013 8000", PRIVACY_MOBILE, 0, 13, 0, 13);
	assert_match("138 00138000", PRIVACY_MOBILE, 0, 12, 0, 12);
	assert_match("+8613800138000", PRIVACY_MOBILE, 0, 14, 0, 14);
	assert_match("+86 138 0013 8000", PRIVACY_MOBILE, 0, 17, 0, 17);
	assert_match("+86-138-0013-8000", PRIVACY_MOBILE, 0, 17, 0, 17);
	assert_match("8613800138000", PRIVACY_MOBILE, 0, 13, 0, 13);
	assert_match("86 13800138000", PRIVACY_MOBILE, 0, 14, 0, 14);
	assert_match("008613800138000", PRIVACY_MOBILE, 0, 15, 0, 15);
	assert_match("0086 138 0013 8000", PRIVACY_MOBILE, 0, 18, 0, 18);
	assert_match("call 13800138000.", PRIVACY_MOBILE, 5, 11, 5, 11);
	/* a mobile number after an unrelated number and a space */
	assert_match("5 13800138000", PRIVACY_MOBILE, 2, 11, 2, 11);
	/* "+" alone is no prefix: the number itself still matches */
	assert_match("+13800138000", PRIVACY_MOBILE, 1, 11, 1, 11);
	/* a separator after the number does not extend the run */
	assert_match("138-0013-8000-1", PRIVACY_MOBILE, 0, 13, 0, 13);
}

static void test_mobile_not_flagged(void **state)
{
	(void)state;
	assert_clean("10800138000"); /* second digit 0 */
	assert_clean("11800138000");
	assert_clean("12800138000");
	assert_clean("23800138000");  /* first digit not 1 */
	assert_clean("138001380001"); /* 12-digit runs */
	assert_clean("213800138000");
	assert_clean("1380013800"); /* 10 digits */
	assert_clean("138 0013 800");
	assert_clean("138  0013 8000"); /* double separator */
	assert_clean("1380 013 8000");  /* groups not 3-4-4 */
	assert_clean("138 0013 80001");
	assert_clean("1008613800138000"); /* a 16-digit run */
	assert_clean("8713800138000");    /* 87 is no prefix */
}

static void test_innocent_text(void **state)
{
	(void)state;
	assert_clean("");
	assert_clean("2024-017");
	assert_clean("2024-05-03");
	assert_clean("120");
	assert_clean("共有1200名学生，排查1180名，发现风险7例。");
	assert_clean("课间在宿舍发生推搡，已分别谈话并通知家长。");
	assert_clean("R-001 2024-04-10 2024-05-31");
	assert_clean("+86");
	assert_clean("0086");
	assert_clean("x");
	assert_clean("12345678901234567"); /* 17 digits */
}

static void test_offsets_in_characters(void **state)
{
	(void)state;
	/* "联系电话 " is 5 characters, 13 bytes */
	assert_match("联系电话 138-0013-8000 谢谢", PRIVACY_MOBILE, 13, 13, 5, 13);
	/* ideographic space and full-width hyphen as separators */
	assert_match("电话：138\xE3\x80\x80"
	             "0013\xEF\xBC\x8D"
	             "8000",
	             PRIVACY_MOBILE, 9, 17, 3, 13);
	/* full-width digits and plus sign */
	assert_match("电话\xEF\xBC\x8B"
	             "86\xEF\xBC\x91\xEF\xBC\x93\xEF\xBC\x98"
	             "00138000",
	             PRIVACY_MOBILE, 6, 22, 2, 14);
	/* an invalid byte counts as one character and is no digit */
	assert_match("\xFF"
	             "13800138000",
	             PRIVACY_MOBILE, 1, 11, 1, 11);
	assert_match("\xE6\x9D"
	             "13800138000",
	             PRIVACY_MOBILE, 2, 11, 2, 11);
	/* the first match wins */
	assert_match("tel 13800138000, id 11010519491231002X", PRIVACY_MOBILE, 4, 11, 4, 11);
	assert_match("id 11010519491231002X, tel 13800138000", PRIVACY_ID_NUMBER, 3, 18, 3, 18);
}

static void test_no_nul_needed(void **state)
{
	struct privacy_match m;
	const char text[] = "13800138000999";

	(void)state;
	/* the first 11 bytes alone are a number; the whole text is a 14-digit run */
	assert_int_equal(privacy_scan(text, 11, &m), 1);
	assert_int_equal(m.length, 11);
	assert_int_equal(privacy_scan(text, 14, &m), 0);
	/* an embedded NUL is an ordinary non-digit */
	assert_int_equal(privacy_scan("1\0"
	                              "13800138000",
	                              13, &m),
	                 1);
	assert_int_equal(m.offset, 2);
}

static void check_tree(const char *json, struct errlist *errs, int expect)
{
	cJSON *root = cJSON_Parse(json);

	assert_non_null(root);
	assert_int_equal(privacy_check(root, errs), expect);
	cJSON_Delete(root);
}

static void test_tree_pointers_and_messages(void **state)
{
	struct errlist errs;

	(void)state;
	errlist_init(&errs);
	check_tree(
	        "{\"summary\": \"请联系班主任，电话 13800138000。\","
	        " \"items\": [{\"problem\": \"ok\"}, {\"problem\": \"身份证11010519491231002X\","
	        " \"measure\": \"fine 2024-05-31\"}],"
	        " \"a/b~c\": \"+86 138 0013 8000\", \"n\": 13800138000, \"clean\": \"2024-017\"}",
	        &errs, 3);
	assert_int_equal(errs.count, 3);
	assert_int_equal(errs.errors, 3);
	assert_string_equal(errs.entries[0].pointer, "/summary");
	assert_string_equal(errs.entries[0].keyword, "privacy");
	assert_int_equal(errs.entries[0].severity, ERRLIST_ERROR);
	assert_string_equal(errs.entries[0].message,
	                    "contains what looks like a mobile phone number (characters 11-21); "
	                    "remove personal data");
	assert_string_equal(errs.entries[1].pointer, "/items/1/problem");
	assert_string_equal(
	        errs.entries[1].message,
	        "contains what looks like a resident identity number (characters 4-21); "
	        "remove personal data");
	assert_string_equal(errs.entries[2].pointer, "/a~1b~0c");
	for (size_t i = 0; i < errs.count; i++) {
		assert_null(strstr(errs.entries[i].message, "138"));
		assert_null(strstr(errs.entries[i].message, "1101"));
	}
	errlist_release(&errs);

	/* a clean document adds nothing; scalars at the root too */
	check_tree("{\"a\": [1, 2, \"2024-05-03\", {\"b\": null}], \"c\": true}", &errs, 0);
	check_tree("\"13800138000\"", &errs, 1);
	assert_string_equal(errs.entries[0].pointer, "");
	errlist_release(&errs);
}

static void test_tree_member_names(void **state)
{
	struct errlist errs;

	(void)state;
	errlist_init(&errs);
	check_tree("{\"x\": {\"tel 13800138000\": {\"y\": \"13900139000\"}, \"ok\": 1}}", &errs, 1);
	assert_int_equal(errs.count, 1);
	/* at the object, so that neither pointer nor message repeats the number */
	assert_string_equal(errs.entries[0].pointer, "/x");
	assert_string_equal(errs.entries[0].message,
	                    "a member name contains what looks like a mobile phone number "
	                    "(characters 5-15); remove personal data");
	errlist_release(&errs);
}

static void test_tree_deep_and_full(void **state)
{
	struct errlist errs;
	cJSON *root, *cur;
	char text[32];

	(void)state;
	errlist_init(&errs);
	/* nesting past the limit is refused, not skipped */
	root = cJSON_CreateArray();
	assert_non_null(root);
	cur = root;
	for (int i = 0; i < PRIVACY_MAX_DEPTH + 10; i++) {
		cJSON *a = cJSON_CreateArray();

		assert_non_null(a);
		cJSON_AddItemToArray(cur, a);
		cur = a;
	}
	assert_int_equal(privacy_check(root, &errs), 1);
	assert_int_equal(errs.count, 1);
	assert_non_null(strstr(errs.entries[0].message, "too deep"));
	assert_int_equal(strlen(errs.entries[0].pointer), 2 * PRIVACY_MAX_DEPTH);
	cJSON_Delete(root);
	errlist_release(&errs);

	/* exactly at the limit is checked */
	root = cJSON_CreateArray();
	assert_non_null(root);
	cur = root;
	for (int i = 1; i < PRIVACY_MAX_DEPTH; i++) {
		cJSON *a = cJSON_CreateArray();

		assert_non_null(a);
		cJSON_AddItemToArray(cur, a);
		cur = a;
	}
	cJSON_AddItemToArray(cur, cJSON_CreateString("13800138000"));
	assert_int_equal(privacy_check(root, &errs), 1);
	assert_non_null(strstr(errs.entries[0].message, "mobile"));
	cJSON_Delete(root);
	errlist_release(&errs);

	/* more offending strings than the list holds: all counted */
	root = cJSON_CreateArray();
	assert_non_null(root);
	for (int i = 0; i < ERRLIST_MAX + 50; i++) {
		snprintf(text, sizeof(text), "1390013%04d", i);
		cJSON_AddItemToArray(root, cJSON_CreateString(text));
	}
	assert_int_equal(privacy_check(root, &errs), ERRLIST_MAX + 50);
	assert_int_equal(errs.count, ERRLIST_MAX);
	assert_int_equal(errs.errors, ERRLIST_MAX + 50);
	assert_string_equal(errs.entries[ERRLIST_MAX - 1].pointer, "/99");
	cJSON_Delete(root);
	errlist_release(&errs);
}

static void test_long_member_name_pointer(void **state)
{
	struct errlist errs;
	char *key;
	cJSON *root, *obj;
	size_t n = 100000;

	(void)state;
	errlist_init(&errs);
	key = malloc(n + 1);
	assert_non_null(key);
	memset(key, 'k', n);
	key[n] = '\0';
	root = cJSON_CreateObject();
	obj = cJSON_AddObjectToObject(root, key);
	assert_non_null(obj);
	assert_non_null(cJSON_AddStringToObject(obj, "v", "13800138000"));
	assert_int_equal(privacy_check(root, &errs), 1);
	/* cut by errlist, marked with "..." */
	assert_int_equal(strlen(errs.entries[0].pointer), ERRLIST_POINTER_MAX);
	assert_string_equal(errs.entries[0].pointer + ERRLIST_POINTER_MAX - 3, "...");
	assert_memory_equal(errs.entries[0].pointer, "/kkk", 4);
	free(key);
	cJSON_Delete(root);
	errlist_release(&errs);
}

/* Linear time: a megabyte of digit runs and separators scans quickly. */
static void test_linear(void **state)
{
	size_t n = 1 << 20;
	char *s = malloc(n);
	struct privacy_match m;

	(void)state;
	assert_non_null(s);
	for (size_t i = 0; i < n; i++)
		s[i] = "1386-0 "[i % 7];
	assert_int_equal(privacy_scan(s, n, &m), 0);
	memset(s, '1', n);
	assert_int_equal(privacy_scan(s, n, &m), 0);
	free(s);
}

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

/* The example returns in tests/data/returns/<form>/ (run from the repo root): good-* have
 * no personal data, bad-privacy-* have exactly the "privacy" lines of their .expect. */
static void test_tree_example_returns(void **state)
{
	static const char *const forms[] = {"screening", "incident", "rectification", "summary"};
	int checked = 0;

	(void)state;
	for (size_t f = 0; f < ARRAY_SIZE(forms); f++) {
		char dirpath[256], path[512];
		struct dirent *de;
		DIR *dir;

		snprintf(dirpath, sizeof(dirpath), "tests/data/returns/%s", forms[f]);
		dir = opendir(dirpath);
		if (!dir) {
			print_message("skipping %s: not there yet\n", dirpath);
			continue;
		}
		while ((de = readdir(dir))) {
			size_t len = strlen(de->d_name);
			int good = strncmp(de->d_name, "good-", 5) == 0;
			int bad = strncmp(de->d_name, "bad-privacy-", 12) == 0;
			char got[2048] = "", want[2048] = "", *text, *expect;
			struct errlist errs;
			size_t n = 0, m = 0;
			cJSON *data;

			if ((!good && !bad) || len < 6 ||
			    strcmp(de->d_name + len - 5, ".json") != 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", dirpath, de->d_name);
			text = read_text(path);
			assert_non_null(text);
			data = cJSON_Parse(text);
			free(text);
			if (!data)
				fail_msg("%s does not parse", path);
			errlist_init(&errs);
			n = (size_t)privacy_check(data, &errs);
			assert_int_equal(n, errs.count);
			n = 0;
			for (size_t i = 0; i < errs.count; i++)
				n += (size_t)snprintf(got + n, sizeof(got) - n, "%s %s\n",
				                      errs.entries[i].pointer,
				                      errs.entries[i].keyword);
			if (bad) {
				snprintf(path + strlen(path) - 5, 8, ".expect");
				expect = read_text(path);
				assert_non_null(expect);
				for (const char *line = expect; *line;) {
					const char *nl = strchr(line, '\n');
					size_t l = nl ? (size_t)(nl - line) : strlen(line);
					const char *sp = memchr(line, ' ', l);

					if (sp && strncmp(sp + 1, "privacy", 7) == 0)
						m += (size_t)snprintf(want + m, sizeof(want) - m,
						                      "%.*s\n", (int)l, line);
					line += l + (nl ? 1 : 0);
				}
				free(expect);
			}
			if (strcmp(got, want) != 0)
				fail_msg("%s: expected\n%sgot\n%s", path, want, got);
			errlist_release(&errs);
			cJSON_Delete(data);
			checked++;
		}
		closedir(dir);
	}
	print_message("checked %d example returns\n", checked);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_check_char_oracle),
	        cmocka_unit_test(test_id_published_example),
	        cmocka_unit_test(test_id_computed),
	        cmocka_unit_test(test_id_longer_runs),
	        cmocka_unit_test(test_id_fullwidth_and_chinese),
	        cmocka_unit_test(test_mobile_forms),
	        cmocka_unit_test(test_mobile_not_flagged),
	        cmocka_unit_test(test_innocent_text),
	        cmocka_unit_test(test_offsets_in_characters),
	        cmocka_unit_test(test_no_nul_needed),
	        cmocka_unit_test(test_tree_pointers_and_messages),
	        cmocka_unit_test(test_tree_member_names),
	        cmocka_unit_test(test_tree_deep_and_full),
	        cmocka_unit_test(test_long_member_name_pointer),
	        cmocka_unit_test(test_linear),
	        cmocka_unit_test(test_tree_example_returns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
