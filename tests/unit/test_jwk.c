/* Unit tests for common/jwk: RFC 8037 key parsing, serialization, thumbprints, files. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "common/jwk.h"
#include "common/banned.h"

/* RFC 8037 appendix A.1 and A.3 */
#define RFC_D "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
#define RFC_X "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
#define RFC_THUMBPRINT "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
#define RFC_PRIVATE "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"" RFC_D "\",\"x\":\"" RFC_X "\"}"
#define RFC_PUBLIC "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X "\"}"

static int parse_str(struct jwk *k, const char *text, char *err, size_t errlen)
{
	return jwk_parse(k, text, strlen(text), err, errlen);
}

static void test_rfc8037_key(void **state)
{
	static const unsigned char x[32] = {
	        0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe,
	        0xd3, 0xc9, 0x64, 0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6,
	        0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
	};
	char tp[JWK_THUMBPRINT_SIZE], err[256] = "";
	struct jwk k, pub;
	char *text;

	(void)state;
	assert_int_equal(parse_str(&k, RFC_PRIVATE, err, sizeof(err)), 0);
	assert_true(k.has_private);
	assert_string_equal(k.kid, "");
	assert_memory_equal(k.public_key, x, 32);
	assert_memory_equal(k.secret_key + 32, x, 32);
	assert_int_equal(jwk_thumbprint(&k, tp), 0);
	assert_string_equal(tp, RFC_THUMBPRINT);

	assert_int_equal(jwk_serialize(&k, 1, &text), 0);
	assert_string_equal(text, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X
	                          "\",\"d\":\"" RFC_D "\"}");
	jwk_text_free(text);
	assert_int_equal(jwk_serialize(&k, 0, &text), 0);
	assert_string_equal(text, RFC_PUBLIC);
	jwk_text_free(text);

	assert_int_equal(parse_str(&pub, RFC_PUBLIC, err, sizeof(err)), 0);
	assert_false(pub.has_private);
	assert_memory_equal(pub.public_key, x, 32);
	assert_int_equal(jwk_thumbprint(&pub, tp), 0);
	assert_string_equal(tp, RFC_THUMBPRINT);
	assert_int_equal(jwk_serialize(&pub, 1, &text), -EINVAL);
	jwk_release(&k);
}

static void test_generate_round_trip(void **state)
{
	char err[256] = "", tp1[JWK_THUMBPRINT_SIZE], tp2[JWK_THUMBPRINT_SIZE];
	struct jwk k, k2, pub;
	char *text;

	(void)state;
	assert_int_equal(jwk_generate(&k, "2165000123", err, sizeof(err)), 0);
	assert_true(k.has_private);
	assert_string_equal(k.kid, "2165000123");

	assert_int_equal(jwk_serialize(&k, 1, &text), 0);
	assert_non_null(strstr(text, "\"kid\":\"2165000123\""));
	assert_int_equal(parse_str(&k2, text, err, sizeof(err)), 0);
	jwk_text_free(text);
	assert_true(k2.has_private);
	assert_memory_equal(k2.secret_key, k.secret_key, 64);
	assert_memory_equal(k2.public_key, k.public_key, 32);
	assert_string_equal(k2.kid, "2165000123");

	assert_int_equal(jwk_serialize(&k, 0, &text), 0);
	assert_null(strstr(text, "\"d\""));
	assert_int_equal(parse_str(&pub, text, err, sizeof(err)), 0);
	jwk_text_free(text);
	assert_false(pub.has_private);
	assert_memory_equal(pub.public_key, k.public_key, 32);

	assert_int_equal(jwk_thumbprint(&k, tp1), 0);
	assert_int_equal(jwk_thumbprint(&pub, tp2), 0);
	assert_string_equal(tp1, tp2);
	assert_int_equal(strlen(tp1), 43);

	/* two keys differ */
	assert_int_equal(jwk_generate(&k2, NULL, err, sizeof(err)), 0);
	assert_string_equal(k2.kid, "");
	assert_memory_not_equal(k2.public_key, k.public_key, 32);

	jwk_release(&k);
	for (size_t i = 0; i < sizeof(k); i++)
		assert_int_equal(((unsigned char *)&k)[i], 0);
	jwk_release(&k2);
	jwk_text_free(NULL);
}

static void test_kid_rules(void **state)
{
	char kid64[65], err[256] = "";
	struct jwk k;

	(void)state;
	memset(kid64, 'a', 64);
	kid64[64] = '\0';
	assert_true(jwk_kid_valid("2165000123"));
	assert_true(jwk_kid_valid("county-654201.v2:a_b"));
	assert_true(jwk_kid_valid(kid64));
	assert_true(jwk_kid_valid(RFC_THUMBPRINT));
	assert_false(jwk_kid_valid(""));
	assert_false(jwk_kid_valid("a b"));
	assert_false(jwk_kid_valid("a\"b"));
	assert_false(jwk_kid_valid("a/b"));
	assert_false(jwk_kid_valid("学校"));
	kid64[63] = '!';
	assert_false(jwk_kid_valid(kid64));
	memset(kid64, 'a', 64);

	assert_int_equal(jwk_generate(&k, kid64, err, sizeof(err)), 0);
	assert_string_equal(k.kid, kid64);
	jwk_release(&k);
	assert_int_equal(jwk_generate(&k, "bad kid", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "kid \"bad kid\""));
}

struct bad_case {
	const char *text;
	int r;
	const char *message; /* a part of the error message */
};

static void test_parse_rejections(void **state)
{
	char kid65[65 + 1];
	char kid65_text[256];
	const struct bad_case cases[] = {
	        {"", -EINVAL, "not valid JSON"},
	        {"{", -EINVAL, "not valid JSON"},
	        {RFC_PUBLIC " x", -EINVAL, "not valid JSON"},
	        {"[" RFC_PUBLIC "]", -EINVAL, "not a JSON object"},
	        {"\"OKP\"", -EINVAL, "not a JSON object"},
	        {"{\"crv\":\"Ed25519\",\"x\":\"" RFC_X "\"}", -EINVAL, "no \"kty\""},
	        {"{\"kty\":\"RSA\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X "\"}", -EINVAL,
	         "kty \"RSA\" is not supported"},
	        {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" RFC_X "\"}", -EINVAL, "kty \"EC\""},
	        {"{\"kty\":1,\"crv\":\"Ed25519\",\"x\":\"" RFC_X "\"}", -EINVAL,
	         "\"kty\" is not a string"},
	        {"{\"kty\":\"okp\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X "\"}", -EINVAL,
	         "kty \"okp\""},
	        {"{\"kty\":\"OKP\",\"x\":\"" RFC_X "\"}", -EINVAL, "no \"crv\""},
	        {"{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"" RFC_X "\"}", -EINVAL,
	         "crv \"X25519\" is not supported"},
	        {"{\"kty\":\"OKP\",\"crv\":\"Ed448\",\"x\":\"" RFC_X "\"}", -EINVAL,
	         "crv \"Ed448\""},
	        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\"}", -EINVAL, "no \"x\""},
	        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":null}", -EINVAL,
	         "\"x\" is not a string"},
	        /* padding, whitespace, the other alphabet, wrong lengths, non-canonical bits */
	        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X "=\"}", -EINVAL,
	         "\"x\" is not unpadded base64url of 32 bytes"},
	        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\" " RFC_X "\"}", -EINVAL,
	         "\"x\" is not unpadded base64url"},
	        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS/"
	         "7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
	         -EINVAL, "\"x\" is not unpadded base64url"},
	        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_"
	         "7TyWQHOg7hcvPapiMlrwIaaPcHUR\"}",
	         -EINVAL, "of 32 bytes"},
	        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_"
	         "7TyWQHOg7hcvPapiMlrwIaaPcHURoAA\"}",
	         -EINVAL, "of 32 bytes"},
	        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_"
	         "7TyWQHOg7hcvPapiMlrwIaaPcHURp\"}",
	         -EINVAL, "of 32 bytes"},
	        /* 32 zero bytes: a point of small order */
	        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":"
	         "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
	         -EINVAL, "not a valid Ed25519 public key"},
	        /* d from another key, d of the wrong length, d not a string */
	        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X
	         "\",\"d\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
	         -EINVAL, "does not match the public key derived from \"d\""},
	        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X "\",\"d\":\"AAAA\"}",
	         -EINVAL, "\"d\" is not unpadded base64url of 32 bytes"},
	        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X "\",\"d\":true}", -EINVAL,
	         "\"d\" is not a string"},
	        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X "\",\"use\":\"enc\"}",
	         -EINVAL, "use \"enc\" is not \"sig\""},
	        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X "\",\"alg\":\"ES256\"}",
	         -EINVAL, "alg \"ES256\" is not \"EdDSA\""},
	        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X "\",\"kid\":\"a b\"}",
	         -EINVAL, "kid \"a b\" is not 1 to 64"},
	        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X "\",\"kid\":\"\"}", -EINVAL,
	         "kid \"\" is not"},
	        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X "\",\"kid\":7}", -EINVAL,
	         "\"kid\" is not a string"},
	        {kid65_text, -EINVAL, "is not 1 to 64"},
	        /* a duplicate could hide a second key from one reader and not another */
	        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X "\",\"x\":\"" RFC_X "\"}",
	         -EINVAL, "duplicate member \"x\""},
	        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X "\",\"d\":\"" RFC_D
	         "\",\"d\":\"" RFC_D "\"}",
	         -EINVAL, "duplicate member \"d\""},
	};
	char err[256];

	(void)state;
	memset(kid65, 'k', 65);
	kid65[65] = '\0';
	snprintf(kid65_text, sizeof(kid65_text),
	         "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X "\",\"kid\":\"%s\"}", kid65);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct jwk k;
		int r;

		memset(&k, 0x5a, sizeof(k));
		err[0] = '\0';
		r = parse_str(&k, cases[i].text, err, sizeof(err));
		if (r != cases[i].r || !strstr(err, cases[i].message))
			fail_msg("case %zu (%s): got %d \"%s\", want %d \"%s\"", i, cases[i].text,
			         r, err, cases[i].r, cases[i].message);
		/* ret is written only on success */
		for (size_t j = 0; j < sizeof(k); j++)
			assert_int_equal(((unsigned char *)&k)[j], 0x5a);
	}
}

static void test_parse_tolerates(void **state)
{
	const char *ok[] = {
	        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X
	        "\",\"use\":\"sig\",\"alg\":\"EdDSA\",\"kid\":\"2165000123\"}",
	        "{\"x\":\"" RFC_X "\",\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"key_ops\":[\"verify\"],"
	        "\"ext\":true}",
	        " \n{ \"kty\" : \"OKP\", \"crv\" : \"Ed25519\", \"x\" : \"" RFC_X "\" }\n",
	        /* \u escapes are JSON, not base64url: the decoded string is what counts */
	        "{\"kty\":\"\\u004fKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X "\"}",
	};
	char err[256] = "", tp[JWK_THUMBPRINT_SIZE];

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct jwk k;

		if (parse_str(&k, ok[i], err, sizeof(err)) != 0)
			fail_msg("case %zu: %s", i, err);
		assert_false(k.has_private);
		assert_int_equal(jwk_thumbprint(&k, tp), 0);
		assert_string_equal(tp, RFC_THUMBPRINT);
	}
}

static void test_parse_size_limit(void **state)
{
	char *text = malloc(JWK_TEXT_MAX + 2);
	size_t n = strlen(RFC_PUBLIC);
	char err[256] = "";
	struct jwk k;

	(void)state;
	assert_non_null(text);
	/* exactly at the limit (trailing whitespace) is accepted, one byte more is not */
	memcpy(text, RFC_PUBLIC, n);
	memset(text + n, ' ', JWK_TEXT_MAX + 1 - n);
	assert_int_equal(jwk_parse(&k, text, JWK_TEXT_MAX, err, sizeof(err)), 0);
	assert_int_equal(jwk_parse(&k, text, JWK_TEXT_MAX + 1, err, sizeof(err)), -EMSGSIZE);
	assert_non_null(strstr(err, "larger than the limit"));
	/* deep nesting in an ignored member is refused, not recursed into */
	snprintf(text, JWK_TEXT_MAX,
	         "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X
	         "\",\"n\":[[[[[[[[[[1]]]]]]]]]]}");
	assert_int_equal(parse_str(&k, text, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "nesting too deep"));
	free(text);
}

struct tmpdir {
	char path[64];
};

#define PATH_SIZE 400

static char *join(const struct tmpdir *d, const char *name, char out[static PATH_SIZE])
{
	snprintf(out, PATH_SIZE, "%s/%s", d->path, name);
	return out;
}

static int setup_dir(void **state)
{
	struct tmpdir *d = malloc(sizeof(*d));

	if (!d)
		return -1;
	snprintf(d->path, sizeof(d->path), "/tmp/test_jwk.XXXXXX");
	if (!mkdtemp(d->path)) {
		free(d);
		return -1;
	}
	*state = d;
	return 0;
}

static int teardown_dir(void **state)
{
	struct tmpdir *d = *state;
	char path[PATH_SIZE];
	struct dirent *e;
	DIR *dir = opendir(d->path);

	if (dir) {
		while ((e = readdir(dir)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				unlink(join(d, e->d_name, path));
		closedir(dir);
	}
	rmdir(d->path);
	free(d);
	return 0;
}

static size_t count_entries(const struct tmpdir *d)
{
	struct dirent *e;
	DIR *dir = opendir(d->path);
	size_t n = 0;

	assert_non_null(dir);
	while ((e = readdir(dir)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(dir);
	return n;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

static void test_save_load(void **state)
{
	struct tmpdir *d = *state;
	char pbuf[PATH_SIZE], qbuf[PATH_SIZE], xbuf[PATH_SIZE];
	char *priv = join(d, "school.jwk", pbuf), *pub = join(d, "school.pub.jwk", qbuf);
	char err[512] = "";
	struct jwk k, got;
	mode_t old;

	assert_int_equal(jwk_generate(&k, "2165000123", err, sizeof(err)), 0);
	/* the umask must not change the modes */
	old = umask(077);
	assert_int_equal(jwk_save(&k, 1, priv, err, sizeof(err)), 0);
	assert_int_equal(jwk_save(&k, 0, pub, err, sizeof(err)), 0);
	umask(old);
	assert_int_equal(mode_of(priv), 0600);
	assert_int_equal(mode_of(pub), 0644);
	assert_int_equal(count_entries(d), 2); /* no temporary file left */

	assert_int_equal(jwk_load(&got, priv, err, sizeof(err)), 0);
	assert_true(got.has_private);
	assert_memory_equal(got.secret_key, k.secret_key, 64);
	assert_string_equal(got.kid, "2165000123");
	jwk_release(&got);
	assert_int_equal(jwk_load(&got, pub, err, sizeof(err)), 0);
	assert_false(got.has_private);
	assert_memory_equal(got.public_key, k.public_key, 32);

	/* a public key may be readable by anyone */
	assert_int_equal(chmod(pub, 0666), 0);
	assert_int_equal(jwk_load(&got, pub, err, sizeof(err)), 0);

	/* saving again replaces the file */
	jwk_release(&k);
	assert_int_equal(jwk_generate(&k, "2165000124", err, sizeof(err)), 0);
	assert_int_equal(jwk_save(&k, 1, priv, err, sizeof(err)), 0);
	assert_int_equal(jwk_load(&got, priv, err, sizeof(err)), 0);
	assert_string_equal(got.kid, "2165000124");
	assert_memory_equal(got.secret_key, k.secret_key, 64);
	jwk_release(&got);
	assert_int_equal(count_entries(d), 2);

	/* no private part to save */
	assert_int_equal(jwk_load(&got, pub, err, sizeof(err)), 0);
	assert_int_equal(jwk_save(&got, 1, join(d, "x.jwk", xbuf), err, sizeof(err)), -EINVAL);
	assert_int_equal(count_entries(d), 2);
	jwk_release(&k);
}

static void test_private_mode_refused(void **state)
{
	static const mode_t bad[] = {0644, 0640, 0604, 0660, 0606, 0610, 0601, 0666};
	struct tmpdir *d = *state;
	char pbuf[PATH_SIZE];
	char *priv = join(d, "school.jwk", pbuf);
	char err[512] = "", want[128];
	struct jwk k, got;

	assert_int_equal(jwk_generate(&k, "2165000123", err, sizeof(err)), 0);
	assert_int_equal(jwk_save(&k, 1, priv, err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(chmod(priv, bad[i]), 0);
		memset(&got, 0x5a, sizeof(got));
		assert_int_equal(jwk_load(&got, priv, err, sizeof(err)), -EPERM);
		snprintf(want, sizeof(want), "mode %04o lets group or others access it",
		         (unsigned)bad[i]);
		assert_non_null(strstr(err, want));
		assert_non_null(strstr(err, priv));
		assert_int_equal(((unsigned char *)&got)[0], 0x5a);
	}
	assert_int_equal(chmod(priv, 0600), 0);
	assert_int_equal(jwk_load(&got, priv, err, sizeof(err)), 0);
	assert_true(got.has_private);
	jwk_release(&got);
	assert_int_equal(chmod(priv, 0400), 0);
	assert_int_equal(jwk_load(&got, priv, err, sizeof(err)), 0);
	jwk_release(&got);
	jwk_release(&k);
}

static void write_file(const char *path, const char *text, size_t n)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static void test_load_errors(void **state)
{
	struct tmpdir *d = *state;
	char err[512] = "", *big, p[PATH_SIZE];
	struct jwk k;

	assert_int_equal(jwk_load(&k, join(d, "missing.jwk", p), err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "missing.jwk"));
	assert_int_equal(jwk_load(&k, d->path, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));

	write_file(join(d, "bad.jwk", p), "{\"kty\":\"RSA\"}", 13);
	assert_int_equal(jwk_load(&k, join(d, "bad.jwk", p), err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bad.jwk"));
	assert_non_null(strstr(err, "kty \"RSA\""));

	big = malloc(JWK_TEXT_MAX + 1);
	assert_non_null(big);
	memset(big, ' ', JWK_TEXT_MAX + 1);
	memcpy(big, RFC_PUBLIC, strlen(RFC_PUBLIC));
	write_file(join(d, "big.jwk", p), big, JWK_TEXT_MAX + 1);
	assert_int_equal(jwk_load(&k, join(d, "big.jwk", p), err, sizeof(err)), -EMSGSIZE);
	write_file(join(d, "big.jwk", p), big, JWK_TEXT_MAX);
	assert_int_equal(jwk_load(&k, join(d, "big.jwk", p), err, sizeof(err)), 0);
	free(big);

	/* saving into a folder that does not exist leaves nothing behind */
	assert_int_equal(jwk_generate(&k, NULL, err, sizeof(err)), 0);
	assert_int_equal(jwk_save(&k, 1, join(d, "no/such.jwk", p), err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no/such.jwk"));
	assert_int_equal(jwk_save(&k, 1, join(d, "dir/", p), err, sizeof(err)), -EINVAL);
	jwk_release(&k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_rfc8037_key),
	        cmocka_unit_test(test_generate_round_trip),
	        cmocka_unit_test(test_kid_rules),
	        cmocka_unit_test(test_parse_rejections),
	        cmocka_unit_test(test_parse_tolerates),
	        cmocka_unit_test(test_parse_size_limit),
	        cmocka_unit_test_setup_teardown(test_save_load, setup_dir, teardown_dir),
	        cmocka_unit_test_setup_teardown(test_private_mode_refused, setup_dir, teardown_dir),
	        cmocka_unit_test_setup_teardown(test_load_errors, setup_dir, teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
