/* Unit tests for common/errlist. */
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

#include "common/buf.h"
#include "common/errlist.h"
#include "common/macro.h"
#include "common/banned.h"

/* Strict UTF-8 (RFC 3629), written independently of the module. */
static bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned char c = *p;
		int extra;
		uint32_t cp;

		if (c < 0x80) {
			p++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			extra = 1;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			extra = 2;
			cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			extra = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		for (int i = 1; i <= extra; i++) {
			if ((p[i] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (p[i] & 0x3F);
		}
		if ((extra == 2 && cp < 0x800) || (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		p += extra + 1;
	}
	return true;
}

static void test_init_release(void **state)
{
	struct errlist l;

	(void)state;
	memset(&l, 0x5a, sizeof(l));
	errlist_init(&l);
	assert_null(l.entries);
	assert_int_equal(l.count, 0);
	assert_int_equal(l.errors, 0);
	assert_int_equal(l.warnings, 0);
	errlist_release(&l); /* empty */
	assert_int_equal(errlist_add(&l, ERRLIST_ERROR, "/a", "minimum", "m"), 0);
	errlist_release(&l);
	assert_null(l.entries);
	assert_int_equal(l.count, 0);
	assert_int_equal(l.errors, 0);
	/* usable again */
	assert_int_equal(errlist_add(&l, ERRLIST_WARNING, "/b", "k", "w"), 0);
	assert_int_equal(l.count, 1);
	assert_int_equal(l.warnings, 1);
	errlist_release(&l);
}

static void test_add_copies(void **state)
{
	char pointer[] = "/victims/female", keyword[] = "minimum", arg[] = "-1";
	struct errlist l;

	(void)state;
	errlist_init(&l);
	assert_int_equal(
	        errlist_add(&l, ERRLIST_ERROR, pointer, keyword, "must be >= 0, got %s", arg), 0);
	memset(pointer, 'x', sizeof(pointer) - 1);
	memset(keyword, 'x', sizeof(keyword) - 1);
	memset(arg, 'x', sizeof(arg) - 1);
	assert_int_equal(l.count, 1);
	assert_int_equal(l.errors, 1);
	assert_int_equal(l.warnings, 0);
	assert_int_equal(l.entries[0].severity, ERRLIST_ERROR);
	assert_string_equal(l.entries[0].pointer, "/victims/female");
	assert_string_equal(l.entries[0].keyword, "minimum");
	assert_string_equal(l.entries[0].message, "must be >= 0, got -1");

	/* NULL pointer and keyword are the empty string */
	assert_int_equal(errlist_add(&l, ERRLIST_WARNING, NULL, NULL, "%d%%", 5), 0);
	assert_int_equal(l.count, 2);
	assert_int_equal(l.warnings, 1);
	assert_int_equal(l.entries[1].severity, ERRLIST_WARNING);
	assert_string_equal(l.entries[1].pointer, "");
	assert_string_equal(l.entries[1].keyword, "");
	assert_string_equal(l.entries[1].message, "5%");
	errlist_release(&l);
}

static void test_bounded(void **state)
{
	struct errlist l;

	(void)state;
	errlist_init(&l);
	for (int i = 0; i < ERRLIST_MAX; i++) {
		assert_int_equal(errlist_add(&l, i % 3 ? ERRLIST_ERROR : ERRLIST_WARNING, "/x", "k",
		                             "entry %d", i),
		                 0);
		assert_int_equal(l.count, (size_t)i + 1);
	}
	/* full: further problems are counted, not held */
	for (int i = 0; i < 250; i++)
		assert_int_equal(errlist_add(&l, ERRLIST_ERROR, "/y", "k", "over %d", i), 0);
	for (int i = 0; i < 7; i++)
		assert_int_equal(errlist_add(&l, ERRLIST_WARNING, "/y", "k", "over %d", i), 0);
	assert_int_equal(l.count, ERRLIST_MAX);
	assert_int_equal(l.warnings, 34 + 7);
	assert_int_equal(l.errors, ERRLIST_MAX - 34 + 250);
	/* the held entries are the first ones, in order */
	for (int i = 0; i < ERRLIST_MAX; i++) {
		char want[32];

		snprintf(want, sizeof(want), "entry %d", i);
		assert_string_equal(l.entries[i].message, want);
		assert_string_equal(l.entries[i].pointer, "/x");
	}
	errlist_release(&l);
}

static void test_pointer_bounded(void **state)
{
	char p[ERRLIST_POINTER_MAX + 100];
	struct errlist l;

	(void)state;
	errlist_init(&l);
	/* exactly ERRLIST_POINTER_MAX bytes: kept whole */
	memset(p, 'a', ERRLIST_POINTER_MAX);
	p[0] = '/';
	p[ERRLIST_POINTER_MAX] = '\0';
	assert_int_equal(errlist_add(&l, ERRLIST_ERROR, p, "k", "m"), 0);
	assert_string_equal(l.entries[0].pointer, p);
	/* one more: cut to ERRLIST_POINTER_MAX bytes ending in "..." */
	memset(p, 'b', ERRLIST_POINTER_MAX + 1);
	p[0] = '/';
	p[ERRLIST_POINTER_MAX + 1] = '\0';
	assert_int_equal(errlist_add(&l, ERRLIST_ERROR, p, "k", "m"), 0);
	assert_int_equal(strlen(l.entries[1].pointer), ERRLIST_POINTER_MAX);
	assert_memory_equal(l.entries[1].pointer, p, ERRLIST_POINTER_MAX - 3);
	assert_string_equal(l.entries[1].pointer + ERRLIST_POINTER_MAX - 3, "...");
	errlist_release(&l);
}

/* Characters of 2, 3 and 4 bytes at every alignment against the cut: the kept part is a
 * whole-character prefix of the original, valid UTF-8, followed by "...". */
static void test_pointer_cut_utf8(void **state)
{
	static const char *const chars[] = {"\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80"};
	struct errlist l;

	(void)state;
	errlist_init(&l);
	for (size_t c = 0; c < ARRAY_SIZE(chars); c++) {
		size_t clen = strlen(chars[c]);

		for (size_t pad = 0; pad < 4; pad++) {
			char p[ERRLIST_POINTER_MAX * 2];
			const char *got;
			size_t n = 0, kept;

			p[n++] = '/';
			for (size_t i = 0; i < pad; i++)
				p[n++] = 'x';
			while (n + clen < sizeof(p) - 1) {
				memcpy(p + n, chars[c], clen);
				n += clen;
			}
			p[n] = '\0';
			errlist_release(&l);
			assert_int_equal(errlist_add(&l, ERRLIST_ERROR, p, "k", "m"), 0);
			got = l.entries[0].pointer;
			kept = strlen(got);
			assert_true(kept <= ERRLIST_POINTER_MAX);
			/* no more than one character short of the room */
			assert_true(kept > ERRLIST_POINTER_MAX - clen);
			assert_true(utf8_valid(got));
			assert_string_equal(got + kept - 3, "...");
			assert_memory_equal(got, p, kept - 3);
			/* the cut falls on a character boundary of the original */
			assert_true(kept - 3 == 1 + pad || ((kept - 3 - 1 - pad) % clen) == 0);
		}
	}
	errlist_release(&l);
}

/* A message longer than ERRLIST_MESSAGE_MAX is cut, and never inside a character: it
 * ends up in JSON answers, which must be valid UTF-8. */
static void test_message_bounded(void **state)
{
	char text[ERRLIST_MESSAGE_MAX * 2];
	struct errlist l;

	(void)state;
	errlist_init(&l);
	for (size_t pad = 0; pad < 3; pad++) {
		size_t n = 0;

		for (size_t i = 0; i < pad; i++)
			text[n++] = 'x';
		while (n + 3 < sizeof(text) - 1) {
			memcpy(text + n, "\xE4\xB8\xAD", 3);
			n += 3;
		}
		text[n] = '\0';
		errlist_release(&l);
		assert_int_equal(errlist_add(&l, ERRLIST_ERROR, "", "k", "%s", text), 0);
		assert_true(strlen(l.entries[0].message) < ERRLIST_MESSAGE_MAX);
		assert_true(strlen(l.entries[0].message) >= ERRLIST_MESSAGE_MAX - 4);
		assert_true(utf8_valid(l.entries[0].message));
		assert_memory_equal(l.entries[0].message, text, strlen(l.entries[0].message));
	}
	errlist_release(&l);
}

static void test_prefix_pointers(void **state)
{
	char longp[ERRLIST_POINTER_MAX + 1];
	struct errlist l;

	(void)state;
	errlist_init(&l);
	assert_int_equal(errlist_add(&l, ERRLIST_ERROR, "/form", "x-form", "a"), 0);
	assert_int_equal(errlist_add(&l, ERRLIST_ERROR, "/victims/male", "minimum", "b"), 0);
	assert_int_equal(errlist_add(&l, ERRLIST_WARNING, "", "required", "c"), 0);
	memset(longp, 'z', ERRLIST_POINTER_MAX);
	longp[0] = '/';
	longp[ERRLIST_POINTER_MAX] = '\0';
	assert_int_equal(errlist_add(&l, ERRLIST_ERROR, longp, "k", "d"), 0);

	assert_int_equal(errlist_prefix_pointers(&l, 1, "/data"), 0);
	assert_string_equal(l.entries[0].pointer, "/form"); /* before first: untouched */
	assert_string_equal(l.entries[1].pointer, "/data/victims/male");
	assert_string_equal(l.entries[2].pointer, "/data");
	/* a pointer that was at the limit is cut again, keeping the prefix */
	assert_int_equal(strlen(l.entries[3].pointer), ERRLIST_POINTER_MAX);
	assert_memory_equal(l.entries[3].pointer, "/data/zzz", 9);
	assert_string_equal(l.entries[3].pointer + ERRLIST_POINTER_MAX - 3, "...");
	/* messages, keywords and counts are untouched */
	assert_string_equal(l.entries[1].message, "b");
	assert_string_equal(l.entries[1].keyword, "minimum");
	assert_int_equal(l.count, 4);
	assert_int_equal(l.errors, 3);
	assert_int_equal(l.warnings, 1);

	/* first at or past the end: nothing to do */
	assert_int_equal(errlist_prefix_pointers(&l, 4, "/x"), 0);
	assert_int_equal(errlist_prefix_pointers(&l, 99, "/x"), 0);
	assert_string_equal(l.entries[1].pointer, "/data/victims/male");
	/* an empty prefix changes nothing */
	assert_int_equal(errlist_prefix_pointers(&l, 0, ""), 0);
	assert_string_equal(l.entries[0].pointer, "/form");
	assert_string_equal(l.entries[1].pointer, "/data/victims/male");
	errlist_release(&l);

	/* an empty list */
	errlist_init(&l);
	assert_int_equal(errlist_prefix_pointers(&l, 0, "/data"), 0);
	errlist_release(&l);
}

static void test_format(void **state)
{
	struct errlist l;
	struct buf out;

	(void)state;
	errlist_init(&l);
	buf_init(&out, 100000);
	/* empty list: nothing */
	assert_int_equal(errlist_format(&l, NULL, &out), 0);
	assert_int_equal(out.len, 0);

	assert_int_equal(
	        errlist_add(&l, ERRLIST_ERROR, "/victims/female", "minimum", "must be >= 0"), 0);
	assert_int_equal(errlist_add(&l, ERRLIST_WARNING, "/level", "x-rules:r1", "looks odd"), 0);
	assert_int_equal(errlist_add(&l, ERRLIST_ERROR, "", "required", "\"data\" is missing"), 0);
	assert_int_equal(errlist_format(&l, NULL, &out), 0);
	assert_string_equal(out.data, "/victims/female: must be >= 0 (minimum)\n"
	                              "warning: /level: looks odd (x-rules:r1)\n"
	                              "(document): \"data\" is missing (required)\n");
	buf_reset(&out);
	assert_int_equal(errlist_format(&l, "f.json: ", &out), 0);
	assert_string_equal(out.data, "f.json: /victims/female: must be >= 0 (minimum)\n"
	                              "f.json: warning: /level: looks odd (x-rules:r1)\n"
	                              "f.json: (document): \"data\" is missing (required)\n");
	/* appends after what out holds */
	buf_reset(&out);
	assert_int_equal(buf_puts(&out, "head\n"), 0);
	assert_int_equal(errlist_format(&l, "", &out), 0);
	assert_memory_equal(out.data, "head\n/victims/female: ", 22);
	errlist_release(&l);
	buf_release(&out);
}

static void test_format_more(void **state)
{
	struct errlist l;
	struct buf out;
	size_t lines = 0;
	const char *last;

	(void)state;
	errlist_init(&l);
	buf_init(&out, 1000000);
	for (int i = 0; i < ERRLIST_MAX + 5; i++)
		assert_int_equal(errlist_add(&l, ERRLIST_ERROR, "/a", "k", "e%d", i), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(errlist_add(&l, ERRLIST_WARNING, "/a", "k", "w%d", i), 0);
	assert_int_equal(errlist_format(&l, "p: ", &out), 0);
	for (const char *c = out.data; *c; c++)
		lines += *c == '\n';
	assert_int_equal(lines, ERRLIST_MAX + 1);
	assert_non_null(strstr(out.data, "p: /a: e0 (k)\n"));
	assert_non_null(strstr(out.data, "p: /a: e99 (k)\n"));
	assert_null(strstr(out.data, "e100"));
	last = out.data + out.len - 1;
	while (last > out.data && last[-1] != '\n')
		last--;
	assert_string_equal(last, "p: ... and 8 more\n");

	/* without a prefix */
	buf_reset(&out);
	assert_int_equal(errlist_format(&l, NULL, &out), 0);
	assert_non_null(strstr(out.data, "\n... and 8 more\n"));
	errlist_release(&l);
	buf_release(&out);
}

static void test_format_limit(void **state)
{
	struct errlist l;
	struct buf out;

	(void)state;
	errlist_init(&l);
	buf_init(&out, 30);
	assert_int_equal(errlist_add(&l, ERRLIST_ERROR, "/a", "k", "short"), 0);
	assert_int_equal(errlist_add(&l, ERRLIST_ERROR, "/b", "k", "a longer message here"), 0);
	assert_int_equal(errlist_format(&l, NULL, &out), -EMSGSIZE);
	/* what fitted is there, whole lines only */
	assert_string_equal(out.data, "/a: short (k)\n");
	errlist_release(&l);
	buf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_init_release),     cmocka_unit_test(test_add_copies),
	        cmocka_unit_test(test_bounded),          cmocka_unit_test(test_pointer_bounded),
	        cmocka_unit_test(test_pointer_cut_utf8), cmocka_unit_test(test_message_bounded),
	        cmocka_unit_test(test_prefix_pointers),  cmocka_unit_test(test_format),
	        cmocka_unit_test(test_format_more),      cmocka_unit_test(test_format_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
