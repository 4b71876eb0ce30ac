/* Unit tests for common/csv: RFC 4180 records, the encodings Excel writes, and every
 * limit and error with its line and column. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/csv.h"
#include "common/banned.h"

#define MAX_RECORDS 16
#define MAX_FIELDS 8

/* Every record of text as "a|b|c" lines joined by "\n" into out; returns what the last
 * csv_read returned (0 at a clean end). */
static int read_all(const char *text, size_t len, const struct csv_limits *limits, struct buf *out,
                    char *err, size_t errlen)
{
	struct csv_reader r;
	struct csv_record rec;
	int ret;

	assert_int_equal(csv_reader_init(&r, text, len, limits), 0);
	while ((ret = csv_read(&r, &rec, err, errlen)) == 1) {
		assert_true(rec.count >= 1);
		for (size_t i = 0; i < rec.count; i++) {
			assert_int_equal(strlen(rec.fields[i]), rec.lengths[i]);
			assert_int_equal(buf_printf(out, "%s%s", i ? "|" : "", rec.fields[i]), 0);
		}
		assert_int_equal(buf_printf(out, "@%zu\n", rec.line), 0);
	}
	csv_reader_release(&r);
	return ret;
}

static void expect_records(const char *text, const char *want)
{
	struct buf out;
	char err[256] = "";

	buf_init(&out, 1 << 20);
	assert_int_equal(read_all(text, strlen(text), NULL, &out, err, sizeof(err)), 0);
	assert_string_equal(out.data ? out.data : "", want);
	buf_release(&out);
}

static void expect_error(const char *text, const struct csv_limits *limits, int code,
                         const char *want_err)
{
	struct buf out;
	char err[256] = "";

	buf_init(&out, 1 << 20);
	assert_int_equal(read_all(text, strlen(text), limits, &out, err, sizeof(err)), code);
	assert_string_equal(err, want_err);
	buf_release(&out);
}

static void test_plain_records(void **state)
{
	(void)state;
	expect_records("", "");
	expect_records("a,b,c\n1,2,3\n", "a|b|c@1\n1|2|3@2\n");
	/* no line break after the last record */
	expect_records("a,b\n1,2", "a|b@1\n1|2@2\n");
	/* CRLF as Excel writes it, and a lone CR as old Mac files have it */
	expect_records("a,b\r\n1,2\r\n", "a|b@1\n1|2@2\n");
	expect_records("a,b\r1,2\r", "a|b@1\n1|2@2\n");
	/* empty fields, an empty line, a trailing comma */
	expect_records("a,,c\n\n,\nx,\n", "a||c@1\n@2\n|@3\nx|@4\n");
	/* spaces belong to the field */
	expect_records(" a , b \n", " a | b @1\n");
}

static void test_quoted_fields(void **state)
{
	(void)state;
	expect_records("\"a,b\",c\n", "a,b|c@1\n");
	expect_records("\"say \"\"hi\"\"\",x\n", "say \"hi\"|x@1\n");
	expect_records("\"\",\"\"\"\"\n", "|\"@1\n");
	/* line breaks inside quotes: kept as LF, and the next record knows its line */
	expect_records("id,text\n1,\"one\r\ntwo\rthree\nfour\"\n2,x\n",
	               "id|text@1\n1|one\ntwo\nthree\nfour@2\n2|x@6\n");
	/* a quoted field at the very end, without a line break */
	expect_records("a,\"b\nc\"", "a|b\nc@1\n");
	/* Chinese text with a full-width comma and an ASCII one */
	expect_records("事件编号,概述\n2024-017,\"推搡，谈话, 已通知家长\"\n",
	               "事件编号|概述@1\n2024-017|推搡，谈话, 已通知家长@2\n");
}

static void test_malformed(void **state)
{
	(void)state;
	/* columns count characters: 事件 is 2 characters, 6 bytes */
	expect_error("a,b\n事件,x\"y\n", NULL, -EBADMSG,
	             "line 2, column 5: a quote inside an unquoted field (quote the whole field "
	             "and write the quote twice)");
	expect_error("a,\"b\"c\n", NULL, -EBADMSG,
	             "line 1, column 6: text after the closing quote of a field (a quote inside a "
	             "quoted field is written twice: \"\")");
	expect_error("a\n1,\"open\nstill\nopen", NULL, -EBADMSG,
	             "line 4, column 5: the quoted field opened at line 2, column 3 is never "
	             "closed");
}

static void test_limits(void **state)
{
	const struct csv_limits limits = {
	        .max_line = 10, .max_field = 6, .max_fields = 3, .max_records = 2};

	(void)state;
	/* exactly at every limit */
	expect_records("abcdef,gh\n", "abcdef|gh@1\n");
	{
		struct buf out;
		char err[256];

		buf_init(&out, 4096);
		assert_int_equal(
		        read_all("abcdef,gh\na,b,c\n", 16, &limits, &out, err, sizeof(err)), 0);
		assert_string_equal(out.data, "abcdef|gh@1\na|b|c@2\n");
		buf_release(&out);
	}
	expect_error("abcdef,ghij\n", &limits, -EMSGSIZE,
	             "line 1, column 11: the line is longer than 10 bytes");
	expect_error("abcdefg\n", &limits, -EMSGSIZE,
	             "line 1, column 7: a field longer than 6 bytes");
	/* a quoted field spanning lines is bounded by max_field */
	expect_error("\"abc\ndefg\"\n", &limits, -EMSGSIZE,
	             "line 2, column 3: a field longer than 6 bytes");
	expect_error("\"abcd\"\"\"\"\"\"\"\n", &limits, -EMSGSIZE,
	             "line 1, column 10: a field longer than 6 bytes");
	expect_error("a,b,c,d\n", &limits, -EMSGSIZE, "line 1, column 7: more than 3 fields");
	expect_error("a\nb\nc\n", &limits, -EMSGSIZE, "line 3, column 1: more than 2 records");
}

static void test_error_is_sticky(void **state)
{
	struct csv_reader r;
	struct csv_record rec;
	char err[256];

	(void)state;
	assert_int_equal(csv_reader_init(&r, "a\"\nb\n", 5, NULL), 0);
	assert_int_equal(csv_read(&r, &rec, err, sizeof(err)), -EBADMSG);
	assert_int_equal(csv_read(&r, &rec, err, sizeof(err)), -EBADMSG);
	csv_reader_release(&r);

	const struct csv_limits zero = {
	        .max_line = 1, .max_field = 1, .max_fields = 0, .max_records = 1};
	assert_int_equal(csv_reader_init(&r, "", 0, &zero), -EINVAL);
}

static void expect_decoded(const char *in, size_t len, enum csv_encoding enc,
                           enum csv_encoding want_used, const char *want)
{
	enum csv_encoding used = CSV_ENCODING_AUTO;
	struct buf out;
	char err[256] = "";

	buf_init(&out, 1 << 20);
	assert_int_equal(csv_decode(in, len, enc, &out, &used, err, sizeof(err)), 0);
	assert_int_equal(used, want_used);
	assert_int_equal(out.len, strlen(want));
	assert_memory_equal(out.data ? out.data : "", want, out.len);
	buf_release(&out);
}

static void expect_decode_error(const char *in, size_t len, enum csv_encoding enc, int code,
                                const char *want_err)
{
	enum csv_encoding used = (enum csv_encoding)42;
	struct buf out;
	char err[256] = "";

	buf_init(&out, 1 << 20);
	assert_int_equal(csv_decode(in, len, enc, &out, &used, err, sizeof(err)), code);
	assert_string_equal(err, want_err);
	assert_int_equal(out.len, 0);
	assert_int_equal((int)used, 42);
	buf_release(&out);
}

/* "事件编号,发生日期\r\n2024-017,\"推搡，谈话\"\r\n" as Chinese Excel saves it */
static const char gb_text[] = "\xca\xc2\xbc\xfe\xb1\xe0\xba\xc5\x2c\xb7\xa2\xc9\xfa\xc8\xd5\xc6"
                              "\xda\x0d\x0a\x32\x30\x32\x34\x2d\x30\x31\x37\x2c\x22\xcd\xc6\xde"
                              "\xfa\xa3\xac\xcc\xb8\xbb\xb0\x22\x0d\x0a";
static const char gb_as_utf8[] = "事件编号,发生日期\r\n2024-017,\"推搡，谈话\"\r\n";

static void test_decode_utf8(void **state)
{
	(void)state;
	expect_decoded("a,b\n", 4, CSV_ENCODING_AUTO, CSV_ENCODING_UTF8, "a,b\n");
	/* a BOM is dropped, with the encoding guessed or given */
	expect_decoded("\xef\xbb\xbf事件,x\n", 12, CSV_ENCODING_AUTO, CSV_ENCODING_UTF8,
	               "事件,x\n");
	expect_decoded("\xef\xbb\xbf事件,x\n", 12, CSV_ENCODING_UTF8, CSV_ENCODING_UTF8,
	               "事件,x\n");
	expect_decoded("事件,x\n", 9, CSV_ENCODING_UTF8, CSV_ENCODING_UTF8, "事件,x\n");
	expect_decoded("", 0, CSV_ENCODING_AUTO, CSV_ENCODING_UTF8, "");
	/* invalid UTF-8 when UTF-8 was asked for: where it is */
	expect_decode_error("a,b\n事件,\xc3\x28\n", 12, CSV_ENCODING_UTF8, -EILSEQ,
	                    "line 2, column 4: not valid UTF-8 (give the file's encoding)");
	/* overlong, surrogate, beyond U+10FFFF, truncated */
	expect_decode_error("\xc0\xaf", 2, CSV_ENCODING_UTF8, -EILSEQ,
	                    "line 1, column 1: not valid UTF-8 (give the file's encoding)");
	expect_decode_error("x\xed\xa0\x80", 4, CSV_ENCODING_UTF8, -EILSEQ,
	                    "line 1, column 2: not valid UTF-8 (give the file's encoding)");
	expect_decode_error("\r\n\xf4\x90\x80\x80", 6, CSV_ENCODING_UTF8, -EILSEQ,
	                    "line 2, column 1: not valid UTF-8 (give the file's encoding)");
	expect_decode_error("ab\xe4\xba", 4, CSV_ENCODING_UTF8, -EILSEQ,
	                    "line 1, column 3: not valid UTF-8 (give the file's encoding)");
	expect_decode_error("a\rb\0", 4, CSV_ENCODING_UTF8, -EILSEQ,
	                    "line 2, column 2: a NUL byte");
}

static void test_decode_gb18030(void **state)
{
	(void)state;
	/* guessed (not valid UTF-8) and given */
	expect_decoded(gb_text, sizeof(gb_text) - 1, CSV_ENCODING_AUTO, CSV_ENCODING_GB18030,
	               gb_as_utf8);
	expect_decoded(gb_text, sizeof(gb_text) - 1, CSV_ENCODING_GB18030, CSV_ENCODING_GB18030,
	               gb_as_utf8);
	/* GB18030's own BOM (U+FEFF as 84 31 95 33) is dropped too */
	expect_decoded("\x84\x31\x95\x33\xbc\xd7", 6, CSV_ENCODING_GB18030, CSV_ENCODING_GB18030,
	               "甲");
	/* 0x80 alone is not GB18030; the column counts converted characters */
	expect_decode_error("\xbc\xd7,\xd2\xd2\n\xbc\xd7\x80", 9, CSV_ENCODING_GB18030, -EILSEQ,
	                    "line 2, column 2: not valid GB18030 (give the file's encoding)");
	expect_decode_error("ab\xbc", 3, CSV_ENCODING_GB18030, -EILSEQ,
	                    "line 1, column 3: the file ends inside a character");
	expect_decode_error("\xbc\xd7\0", 3, CSV_ENCODING_GB18030, -EILSEQ,
	                    "line 1, column 2: a NUL byte");
	/* UTF-8 read as GB18030 is garbage, not an error: the encoding flag decides */
}

static void test_decode_then_read(void **state)
{
	struct buf text, out;
	char err[256];

	(void)state;
	buf_init(&text, 1 << 20);
	buf_init(&out, 1 << 20);
	assert_int_equal(csv_decode(gb_text, sizeof(gb_text) - 1, CSV_ENCODING_AUTO, &text, NULL,
	                            err, sizeof(err)),
	                 0);
	assert_int_equal(read_all(text.data, text.len, NULL, &out, err, sizeof(err)), 0);
	assert_string_equal(out.data, "事件编号|发生日期@1\n2024-017|推搡，谈话@2\n");
	buf_release(&text);
	buf_release(&out);
}

static void test_decode_size_cap(void **state)
{
	size_t len = (size_t)CSV_FILE_MAX + 1;
	char *big = malloc(len);
	struct buf out;
	char err[256] = "";

	(void)state;
	assert_non_null(big);
	memset(big, 'a', len);
	buf_init(&out, 2 * len);
	assert_int_equal(csv_decode(big, len, CSV_ENCODING_AUTO, &out, NULL, err, sizeof(err)),
	                 -EMSGSIZE);
	assert_int_equal(out.len, 0);
	/* exactly at the cap is fine; a full output buffer is refused */
	assert_int_equal(csv_decode(big, len - 1, CSV_ENCODING_AUTO, &out, NULL, err, sizeof(err)),
	                 0);
	assert_int_equal(out.len, len - 1);
	buf_release(&out);
	buf_init(&out, 10);
	assert_int_equal(csv_decode(big, 11, CSV_ENCODING_UTF8, &out, NULL, err, sizeof(err)),
	                 -EMSGSIZE);
	assert_int_equal(csv_decode(big, 11, CSV_ENCODING_GB18030, &out, NULL, err, sizeof(err)),
	                 -EMSGSIZE);
	assert_int_equal(out.len, 0);
	buf_release(&out);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_plain_records),   cmocka_unit_test(test_quoted_fields),
	        cmocka_unit_test(test_malformed),       cmocka_unit_test(test_limits),
	        cmocka_unit_test(test_error_is_sticky), cmocka_unit_test(test_decode_utf8),
	        cmocka_unit_test(test_decode_gb18030),  cmocka_unit_test(test_decode_then_read),
	        cmocka_unit_test(test_decode_size_cap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
