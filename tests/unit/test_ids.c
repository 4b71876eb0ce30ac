/* Unit tests for common/ids. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/datetime.h"
#include "common/ids.h"
#include "common/banned.h"

/* 2024-05-03T09:12:00+08:00 */
#define FIXED_MS INT64_C(1714698720000)

static void fixed_clock(struct clock *c, int64_t ms)
{
	char spec[DATETIME_RFC3339_MAX], err[256] = "";

	datetime_format_rfc3339(ms, 0, spec);
	if (clock_init(c, spec, err, sizeof(err)) < 0)
		fail_msg("clock_init('%s'): %s", spec, err);
}

static int check(const char *s)
{
	return ids_uuid_check(s, strlen(s));
}

/* FIPS 180-4 / NIST examples; base64url values from Python's hashlib and base64. */
static void test_sha256_vectors(void **state)
{
	static const struct {
		const char *in;
		size_t repeat;
		const char *hex, *b64;
	} v[] = {
	        {"", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	         "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"},
	        {"abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	         "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"},
	        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
	         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
	         "JI1qYdIGOLjlwCaTDD5gOaM85Flk_yFn9uzt1BnbBsE"},
	        {"a", 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
	         "zcduXJkU-5KBocfihNc-Z_GAmkiklyAOBG05zMcRLNA"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		size_t n = strlen(v[i].in) * v[i].repeat;
		char *data = malloc(n + 1);
		char hex[IDS_SHA256_HEX_LEN + 1], b64[IDS_SHA256_BASE64URL_LEN + 1];

		assert_non_null(data);
		for (size_t k = 0; k < v[i].repeat; k++)
			memcpy(data + k * strlen(v[i].in), v[i].in, strlen(v[i].in));
		memset(hex, 'x', sizeof(hex));
		memset(b64, 'x', sizeof(b64));
		ids_sha256_hex(data, n, hex);
		ids_sha256_base64url(data, n, b64);
		assert_string_equal(hex, v[i].hex);
		assert_string_equal(b64, v[i].b64);
		free(data);
	}
	/* NULL with no bytes is the empty message */
	{
		char hex[IDS_SHA256_HEX_LEN + 1];

		ids_sha256_hex(NULL, 0, hex);
		assert_string_equal(hex, v[0].hex);
	}
}

static void test_uuid7_fixed_clock(void **state)
{
	struct clock c;
	char id[IDS_UUID_LEN + 1], err[256] = "";
	int64_t ms = 0;

	(void)state;
	if (clock_init(&c, "2024-05-03T09:12:00+08:00", err, sizeof(err)) < 0)
		fail_msg("clock_init: %s", err);
	assert_int_equal(clock_now_ms(&c), FIXED_MS);
	memset(id, 'x', sizeof(id));
	assert_int_equal(ids_uuid7(&c, id), 0);
	assert_int_equal(strlen(id), IDS_UUID_LEN);
	assert_int_equal(check(id), 0);
	/* 48-bit big-endian milliseconds: 0x018f3c021300 */
	assert_memory_equal(id, "018f3c02-1300-7", 15);
	assert_non_null(strchr("89ab", id[19]));
	assert_int_equal(ids_uuid7_time_ms(id, strlen(id), &ms), 0);
	assert_int_equal(ms, FIXED_MS);
}

/* The version and variant bits are set whatever the random bytes were. */
static void test_uuid7_bits(void **state)
{
	unsigned seen_variant[4] = {0}, seen_digit[16] = {0};
	struct clock c;

	(void)state;
	fixed_clock(&c, FIXED_MS);
	for (int i = 0; i < 2000; i++) {
		char id[IDS_UUID_LEN + 1];

		assert_int_equal(ids_uuid7(&c, id), 0);
		assert_int_equal(id[14], '7');
		switch (id[19]) {
		case '8':
			seen_variant[0]++;
			break;
		case '9':
			seen_variant[1]++;
			break;
		case 'a':
			seen_variant[2]++;
			break;
		case 'b':
			seen_variant[3]++;
			break;
		default:
			fail_msg("variant digit '%c' in %s", id[19], id);
		}
		/* the last digit is random: all 16 values show up */
		seen_digit[id[35] <= '9' ? id[35] - '0' : id[35] - 'a' + 10]++;
	}
	/* the two random bits beside the variant are not stuck */
	for (int i = 0; i < 4; i++)
		assert_true(seen_variant[i] > 0);
	for (int i = 0; i < 16; i++)
		assert_true(seen_digit[i] > 0);
}

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, IDS_UUID_LEN);
}

static void test_uuid7_unique(void **state)
{
	enum { N = 100000 };
	char(*ids)[IDS_UUID_LEN + 1] = malloc(N * sizeof(*ids));
	struct clock c;

	(void)state;
	assert_non_null(ids);
	/* all in one millisecond: only the random bits tell them apart */
	fixed_clock(&c, FIXED_MS);
	for (int i = 0; i < N; i++)
		assert_int_equal(ids_uuid7(&c, ids[i]), 0);
	qsort(ids, N, sizeof(*ids), cmp_id);
	for (int i = 1; i < N; i++) {
		if (memcmp(ids[i - 1], ids[i], IDS_UUID_LEN) == 0)
			fail_msg("duplicate id %s", ids[i]);
	}
	free(ids);
}

/* Ids made at later instants sort later as text (and as bytes). */
static void test_uuid7_order(void **state)
{
	static const int64_t steps[] = {1, 1, 255, 256, 1000, 65536, 86400000, 1LL << 32};
	char prev[IDS_UUID_LEN + 1], id[IDS_UUID_LEN + 1];
	int64_t ms = 0, t = 0;
	struct clock c;

	(void)state;
	fixed_clock(&c, t);
	assert_int_equal(ids_uuid7(&c, prev), 0);
	assert_memory_equal(prev, "00000000-0000-7", 15);
	t = FIXED_MS;
	for (int round = 0; round < 50; round++) {
		for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
			t += steps[i];
			fixed_clock(&c, t);
			assert_int_equal(ids_uuid7(&c, id), 0);
			if (strcmp(prev, id) >= 0)
				fail_msg("%s (at %lld) does not sort after %s", id, (long long)t,
				         prev);
			assert_int_equal(ids_uuid7_time_ms(id, IDS_UUID_LEN, &ms), 0);
			assert_int_equal(ms, t);
			memcpy(prev, id, sizeof(id));
		}
	}
	/* the real clock moves forward */
	assert_int_equal(clock_init(&c, NULL, NULL, 0), 0);
	assert_int_equal(ids_uuid7(&c, prev), 0);
	for (int i = 0; i < 1000; i++) {
		int64_t a, b;

		assert_int_equal(ids_uuid7(&c, id), 0);
		assert_int_equal(ids_uuid7_time_ms(prev, IDS_UUID_LEN, &a), 0);
		assert_int_equal(ids_uuid7_time_ms(id, IDS_UUID_LEN, &b), 0);
		assert_true(a <= b);
		if (a < b)
			assert_true(strcmp(prev, id) < 0);
		memcpy(prev, id, sizeof(id));
	}
}

static void test_uuid7_range(void **state)
{
	char id[IDS_UUID_LEN + 1] = "untouched";
	struct clock c;

	(void)state;
	fixed_clock(&c, -1);
	assert_int_equal(ids_uuid7(&c, id), -ERANGE);
	assert_string_equal(id, "untouched");
	/* the last instant RFC 3339 can write still fits in 48 bits */
	fixed_clock(&c, INT64_C(253402300799999));
	assert_int_equal(ids_uuid7(&c, id), 0);
	assert_memory_equal(id, "e677d21f-dbff-7", 15);
}

static void test_uuid_check(void **state)
{
	static const char *const good[] = {
	        "00000000-0000-0000-0000-000000000000", /* nil */
	        "ffffffff-ffff-ffff-ffff-ffffffffffff", /* max */
	        "017f22e2-79b0-7cc3-98c4-dc0c0c07398f", /* RFC 9562 A.6, lowercased */
	        "919108f7-52d1-4320-9bac-f847db4148a8", /* RFC 9562 A.3, version 4 */
	        "0190f6c2-0000-7000-c000-000000000000", /* variant 0b110 is still well-formed */
	};
	static const char *const bad[] = {
	        "",
	        "017F22E2-79B0-7CC3-98C4-DC0C0C07398F", /* uppercase */
	        "017f22e2-79b0-7cc3-98c4-dc0c0c07398F",
	        "{017f22e2-79b0-7cc3-98c4-dc0c0c07398f}",
	        "urn:uuid:017f22e2-79b0-7cc3-98c4-dc0c0c07398f",
	        "017f22e279b07cc398c4dc0c0c07398f",
	        "017f22e2-79b0-7cc3-98c4-dc0c0c07398",
	        "017f22e2-79b0-7cc3-98c4-dc0c0c07398f0",
	        "017f22e2-79b0-7cc3-98c4-dc0c0c07398g",
	        "017f22e2-79b07-cc3-98c4-dc0c0c07398f",
	        "017f22e2_79b0_7cc3_98c4_dc0c0c07398f",
	        "017f22e2-79b0-7cc3-98c4-dc0c0c07398 ",
	        " 17f22e2-79b0-7cc3-98c4-dc0c0c07398f",
	        "017f22e2--9b0-7cc3-98c4-dc0c0c07398f",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		if (check(good[i]) != 0)
			fail_msg("'%s' refused", good[i]);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (check(bad[i]) != -EINVAL)
			fail_msg("'%s' accepted", bad[i]);
	}
	/* len counts, not the NUL: a NUL inside is a bad character, a longer string is cut */
	{
		char nul[] = "017f22e2-79b0-7cc3-98c4-dc0c0c07398f";

		nul[31] = '\0';
		assert_int_equal(ids_uuid_check(nul, 36), -EINVAL);
	}
	assert_int_equal(ids_uuid_check("017f22e2-79b0-7cc3-98c4-dc0c0c07398f trailing", 36), 0);
	assert_int_equal(ids_uuid_check("017f22e2-79b0-7cc3-98c4-dc0c0c07398f", 35), -EINVAL);
}

static void test_uuid7_time(void **state)
{
	int64_t ms = 42;

	(void)state;
	/* RFC 9562 appendix A.6: Tuesday, February 22, 2022 2:22:22.00 PM GMT-05:00 */
	assert_int_equal(ids_uuid7_time_ms("017f22e2-79b0-7cc3-98c4-dc0c0c07398f", 36, &ms), 0);
	assert_int_equal(ms, INT64_C(1645557742000));
	ms = 42;
	/* version 4 */
	assert_int_equal(ids_uuid7_time_ms("919108f7-52d1-4320-9bac-f847db4148a8", 36, &ms),
	                 -EINVAL);
	/* variant 0b110 (Microsoft), 0b0 (NCS) */
	assert_int_equal(ids_uuid7_time_ms("017f22e2-79b0-7cc3-c8c4-dc0c0c07398f", 36, &ms),
	                 -EINVAL);
	assert_int_equal(ids_uuid7_time_ms("017f22e2-79b0-7cc3-78c4-dc0c0c07398f", 36, &ms),
	                 -EINVAL);
	/* not canonical */
	assert_int_equal(ids_uuid7_time_ms("017F22E2-79B0-7CC3-98C4-DC0C0C07398F", 36, &ms),
	                 -EINVAL);
	assert_int_equal(ids_uuid7_time_ms("017f22e2-79b0-7cc3-98c4", 23, &ms), -EINVAL);
	assert_int_equal(ms, 42);
	/* the largest timestamp */
	assert_int_equal(ids_uuid7_time_ms("ffffffff-ffff-7fff-bfff-ffffffffffff", 36, &ms), 0);
	assert_int_equal(ms, (INT64_C(1) << 48) - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_sha256_vectors), cmocka_unit_test(test_uuid7_fixed_clock),
	        cmocka_unit_test(test_uuid7_bits),     cmocka_unit_test(test_uuid7_unique),
	        cmocka_unit_test(test_uuid7_order),    cmocka_unit_test(test_uuid7_range),
	        cmocka_unit_test(test_uuid_check),     cmocka_unit_test(test_uuid7_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
