/* Unit tests for common/jws: flattened JWS with EdDSA, every rejection of jws.h. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "common/jwk.h"
#include "common/jws.h"
#include "common/banned.h"

/* RFC 8037 appendix A.1 and A.4 */
#define RFC_PRIVATE                                                                                \
	"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"nWGxne_"                                     \
	"9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A\","                                                  \
	"\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}"
#define RFC_PAYLOAD "Example of Ed25519 signing"
#define RFC_PROTECTED "eyJhbGciOiJFZERTQSJ9"
#define RFC_PAYLOAD_B64 "RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
#define RFC_SIGNATURE                                                                              \
	"hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"

#define KID "2165000123"
#define PROT "{\"alg\":\"EdDSA\",\"kid\":\"" KID "\"}"
#define B64(n) sodium_base64_ENCODED_LEN((n), sodium_base64_VARIANT_URLSAFE_NO_PADDING)

struct keys {
	struct jwk school;  /* private, kid KID */
	struct jwk other;   /* private, kid KID: same name, another key */
	struct jwk nokid;   /* the school's key without a kid */
	struct jwk renamed; /* the school's public key under another kid */
};

static int setup(void **state)
{
	struct keys *k = calloc(1, sizeof(*k));

	if (!k || jwk_generate(&k->school, KID, NULL, 0) < 0 ||
	    jwk_generate(&k->other, KID, NULL, 0) < 0)
		return -1;
	k->nokid = k->school;
	k->nokid.kid[0] = '\0';
	k->renamed = k->school;
	k->renamed.has_private = 0;
	memcpy(k->renamed.kid, "2165000999", 11);
	*state = k;
	return 0;
}

static int teardown(void **state)
{
	struct keys *k = *state;

	jwk_release(&k->school);
	jwk_release(&k->other);
	jwk_release(&k->nokid);
	jwk_release(&k->renamed);
	free(k);
	return 0;
}

static char *b64url(const void *data, size_t n)
{
	char *s = malloc(B64(n));

	assert_non_null(s);
	sodium_bin2base64(s, B64(n), data, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return s;
}

/* A correctly signed envelope with any protected header text and extra outer members,
 * so that what is refused is refused for its header, not for its signature. */
static char *envelope(const struct jwk *key, const char *protected_json, const char *payload,
                      const char *extra)
{
	char *p = b64url(protected_json, strlen(protected_json));
	char *q = b64url(payload, strlen(payload));
	size_t n = strlen(p) + 1 + strlen(q) + 1, size;
	unsigned char sig[64];
	char *input = malloc(n), *s, *out;

	assert_non_null(input);
	snprintf(input, n, "%s.%s", p, q);
	crypto_sign_detached(sig, NULL, (unsigned char *)input, n - 1, key->secret_key);
	s = b64url(sig, sizeof(sig));
	size = strlen(p) + strlen(q) + strlen(s) + strlen(extra) + 64;
	out = malloc(size);
	assert_non_null(out);
	snprintf(out, size, "{\"payload\":\"%s\",\"protected\":\"%s\",\"signature\":\"%s\"%s}", q,
	         p, s, extra);
	free(p);
	free(q);
	free(s);
	free(input);
	return out;
}

static int parse_str(struct jws *j, const char *text, char *err, size_t errlen)
{
	return jws_parse(j, text, strlen(text), 0, err, errlen);
}

static void check_refused(const char *text, size_t max_len, int want, const char *message)
{
	char err[512] = "";
	struct jws j;
	int r;

	jws_init(&j);
	j.payload_len = 12345; /* ret is written only on success */
	r = jws_parse(&j, text, strlen(text), max_len, err, sizeof(err));
	if (r != want || !strstr(err, message))
		fail_msg("%s\ngot %d \"%s\", want %d \"%s\"", text, r, err, want, message);
	assert_null(j.payload);
	assert_int_equal(j.payload_len, 12345);
}

static void check_refused_header(const struct keys *k, const char *prot, const char *extra,
                                 int want, const char *message)
{
	char *text = envelope(&k->school, prot, "{}", extra);

	check_refused(text, 0, want, message);
	free(text);
}

static void round_trip(const struct keys *k, const void *payload, size_t n)
{
	char err[512] = "", *text, *prot;
	struct jws j;
	size_t len;

	assert_int_equal(jws_sign(&k->school, KID, payload, n, &text, &len, err, sizeof(err)), 0);
	assert_int_equal(strlen(text), len);
	assert_int_equal(jws_parse(&j, text, len, 0, err, sizeof(err)), 0);
	assert_string_equal(j.kid, KID);
	assert_int_equal(j.payload_len, n);
	if (n)
		assert_memory_equal(j.payload, payload, n);
	assert_int_equal(j.payload[n], '\0');
	assert_int_equal(jws_verify(&j, &k->school, err, sizeof(err)), 0);
	assert_int_equal(jws_verify(&j, &k->nokid, err, sizeof(err)), 0);
	/* exact shape: members in this order, protected header exactly this */
	prot = b64url(PROT, strlen(PROT));
	assert_true(strncmp(text, "{\"payload\":\"", 12) == 0);
	assert_non_null(strstr(text, "\",\"protected\":\""));
	assert_non_null(strstr(text, prot));
	assert_non_null(strstr(text, "\",\"signature\":\""));
	assert_true(strstr(text, "\"protected\"") < strstr(text, "\"signature\""));
	assert_string_equal(text + len - 2, "\"}");
	free(prot);
	jws_release(&j);
	jws_release(&j); /* twice is harmless */
	free(text);
}

static void test_round_trips(void **state)
{
	static const unsigned char binary[] = {0, 1, 2, 0xff, 0xfe, 0, '"', '\\', 0x80};
	const struct keys *k = *state;
	const char *chinese = "{\"school\":\"乌鲁木齐市第一中学\",\"note\":\"防范中小学生欺凌\"}";
	size_t big = 1024 * 1024 + 7;
	unsigned char *p = malloc(big);

	round_trip(k, "{\"a\":1}", 7);
	round_trip(k, chinese, strlen(chinese));
	round_trip(k, binary, sizeof(binary));
	round_trip(k, "", 0);
	round_trip(k, "x", 1);
	round_trip(k, "xy", 2);
	round_trip(k, "xyz", 3);
	assert_non_null(p);
	randombytes_buf(p, big);
	round_trip(k, p, big);
	free(p);
}

static void test_rfc8037_a4(void **state)
{
	char err[512] = "", *text;
	struct jwk key;
	struct jws j;
	size_t len;

	(void)state;
	assert_int_equal(jwk_parse(&key, RFC_PRIVATE, strlen(RFC_PRIVATE), err, sizeof(err)), 0);
	assert_int_equal(jws_sign(&key, NULL, RFC_PAYLOAD, strlen(RFC_PAYLOAD), &text, &len, err,
	                          sizeof(err)),
	                 0);
	assert_string_equal(text,
	                    "{\"payload\":\"" RFC_PAYLOAD_B64 "\",\"protected\":\"" RFC_PROTECTED
	                    "\",\"signature\":\"" RFC_SIGNATURE "\"}");
	/* our policy needs a kid, so the RFC's JWS is well signed but refused */
	check_refused(text, 0, -EBADMSG, "protected header: no \"kid\"");
	free(text);

	/* jws_verify on the RFC's signing input and signature, as parsed */
	jws_init(&j);
	j.signing_input = strdup(RFC_PROTECTED "." RFC_PAYLOAD_B64);
	assert_non_null(j.signing_input);
	j.signing_input_len = strlen(j.signing_input);
	assert_int_equal(sodium_base642bin(j.signature, 64, RFC_SIGNATURE, strlen(RFC_SIGNATURE),
	                                   NULL, &len, NULL,
	                                   sodium_base64_VARIANT_URLSAFE_NO_PADDING),
	                 0);
	assert_int_equal(len, 64);
	assert_int_equal(jws_verify(&j, &key, err, sizeof(err)), 0);
	j.signature[10] ^= 1;
	assert_int_equal(jws_verify(&j, &key, err, sizeof(err)), -EKEYREJECTED);
	jws_release(&j);
	jwk_release(&key);
}

static void test_tampering(void **state)
{
	const struct keys *k = *state;
	char err[512] = "", *text, *forged, *p;
	struct jws j;
	size_t len;

	assert_int_equal(
	        jws_sign(&k->school, KID, "{\"victims\":1}", 13, &text, &len, err, sizeof(err)), 0);

	/* payload: another well-formed payload under the old signature */
	forged = strdup(text);
	p = b64url("{\"victims\":0}", 13);
	memcpy(strstr(forged, "\"payload\":\"") + 11, p, strlen(p));
	free(p);
	assert_int_equal(parse_str(&j, forged, err, sizeof(err)), 0);
	assert_memory_equal(j.payload, "{\"victims\":0}", 13);
	assert_int_equal(jws_verify(&j, &k->school, err, sizeof(err)), -EKEYREJECTED);
	assert_non_null(strstr(err, "signature does not verify"));
	jws_release(&j);
	free(forged);

	/* protected: same kid, one more member */
	p = b64url("{\"alg\":\"EdDSA\",\"kid\":\"" KID "\",\"typ\":\"x\"}",
	           strlen("{\"alg\":\"EdDSA\",\"kid\":\"" KID "\",\"typ\":\"x\"}"));
	forged = malloc(len + strlen(p) + 1);
	assert_non_null(forged);
	{
		char *start = strstr(text, "\"protected\":\"") + 13, *end = strchr(start, '"');

		snprintf(forged, len + strlen(p) + 1, "%.*s%s%s", (int)(start - text), text, p,
		         end);
	}
	free(p);
	assert_int_equal(parse_str(&j, forged, err, sizeof(err)), 0);
	assert_int_equal(jws_verify(&j, &k->school, err, sizeof(err)), -EKEYREJECTED);
	jws_release(&j);
	free(forged);

	/* signature: each of a few bits flipped */
	for (int i = 0; i < 64; i += 9) {
		assert_int_equal(parse_str(&j, text, err, sizeof(err)), 0);
		j.signature[i] ^= 0x04;
		assert_int_equal(jws_verify(&j, &k->school, err, sizeof(err)), -EKEYREJECTED);
		jws_release(&j);
	}
	/* and through the text: change one character of the signature */
	forged = strdup(text);
	p = strstr(forged, "\"signature\":\"") + 13;
	p[5] = p[5] == 'A' ? 'B' : 'A';
	assert_int_equal(parse_str(&j, forged, err, sizeof(err)), 0);
	assert_int_equal(jws_verify(&j, &k->school, err, sizeof(err)), -EKEYREJECTED);
	jws_release(&j);
	free(forged);

	/* untouched, it verifies */
	assert_int_equal(parse_str(&j, text, err, sizeof(err)), 0);
	assert_int_equal(jws_verify(&j, &k->school, err, sizeof(err)), 0);
	jws_release(&j);
	free(text);
}

static void test_wrong_key_and_kid(void **state)
{
	const struct keys *k = *state;
	char err[512] = "", *text;
	struct jws j;

	assert_int_equal(jws_sign(&k->school, KID, "{}", 2, &text, NULL, err, sizeof(err)), 0);
	assert_int_equal(parse_str(&j, text, err, sizeof(err)), 0);

	/* another key with the same kid */
	assert_int_equal(jws_verify(&j, &k->other, err, sizeof(err)), -EKEYREJECTED);
	assert_non_null(strstr(err, "signature does not verify"));
	/* the right key under another kid */
	assert_int_equal(jws_verify(&j, &k->renamed, err, sizeof(err)), -EKEYREJECTED);
	assert_string_equal(err, "kid does not match the key: the JWS names \"" KID
	                         "\", the key is \"2165000999\"");
	jws_release(&j);

	/* verifying nothing */
	jws_init(&j);
	assert_int_equal(jws_verify(&j, &k->school, err, sizeof(err)), -EINVAL);
	free(text);
}

static void test_sign_errors(void **state)
{
	const struct keys *k = *state;
	char err[512] = "", *text = NULL;

	assert_int_equal(
	        jws_sign(&k->renamed, "2165000999", "{}", 2, &text, NULL, err, sizeof(err)),
	        -EINVAL);
	assert_non_null(strstr(err, "no private part"));
	assert_int_equal(jws_sign(&k->school, "bad kid", "{}", 2, &text, NULL, err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "kid \"bad kid\""));
	assert_int_equal(jws_sign(&k->school, "2165000999", "{}", 2, &text, NULL, err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "is not the key's kid"));
	assert_int_equal(
	        jws_sign(&k->school, KID, "", JWS_TEXT_MAX_DEFAULT, &text, NULL, err, sizeof(err)),
	        -EMSGSIZE);
	assert_null(text);
	/* a key without a kid signs under any valid kid */
	assert_int_equal(jws_sign(&k->nokid, "x", "{}", 2, &text, NULL, err, sizeof(err)), 0);
	free(text);
}

static void test_sign_size_limit(void **state)
{
	const struct keys *k = *state;
	/* the largest payload whose JWS fits: the frame, protected, signature, payload */
	size_t fixed = strlen("{\"payload\":\"\",\"protected\":\"\",\"signature\":\"\"}") +
	               B64(strlen(PROT)) - 1 + 86;
	size_t n = (JWS_TEXT_MAX_DEFAULT - fixed) / 4 * 3;
	char err[512] = "", *text = NULL;
	unsigned char *p = calloc(1, n + 3);
	struct jws j;
	size_t len;

	assert_non_null(p);
	assert_int_equal(jws_sign(&k->school, KID, p, n, &text, &len, err, sizeof(err)), 0);
	assert_true(len <= JWS_TEXT_MAX_DEFAULT);
	assert_int_equal(jws_parse(&j, text, len, 0, err, sizeof(err)), 0);
	assert_int_equal(jws_verify(&j, &k->school, err, sizeof(err)), 0);
	jws_release(&j);
	free(text);
	assert_int_equal(jws_sign(&k->school, KID, p, n + 3, &text, &len, err, sizeof(err)),
	                 -EMSGSIZE);
	free(p);
}

static void test_envelope_rejections(void **state)
{
	const struct keys *k = *state;
	const char *prot = PROT;
	char *good = envelope(&k->school, prot, "{}", ""), *t, *dup;
	char err[512] = "";
	struct jws j;
	size_t n = strlen(good);

	/* the control: this envelope is fine */
	assert_int_equal(parse_str(&j, good, err, sizeof(err)), 0);
	assert_int_equal(jws_verify(&j, &k->school, err, sizeof(err)), 0);
	jws_release(&j);

	check_refused("", 0, -EBADMSG, "envelope is not valid JSON");
	check_refused("{", 0, -EBADMSG, "envelope is not valid JSON");
	check_refused("[]", 0, -EBADMSG, "envelope is not a JSON object");
	check_refused("\"x\"", 0, -EBADMSG, "envelope is not a JSON object");
	check_refused("null", 0, -EBADMSG, "envelope is not a JSON object");
	check_refused("{}", 0, -EBADMSG, "envelope: no \"protected\" member");
	check_refused("{\"protected\":\"e30\",\"payload\":\"e30\"}", 0, -EBADMSG,
	              "envelope: no \"signature\" member");
	check_refused("{\"protected\":\"e30\",\"signature\":\"e30\"}", 0, -EBADMSG,
	              "envelope: no \"payload\" member");
	check_refused("{\"protected\":\"e30\",\"payload\":1,\"signature\":\"e30\"}", 0, -EBADMSG,
	              "envelope: \"payload\" is not a string");
	check_refused("{\"protected\":{},\"payload\":\"e30\",\"signature\":\"e30\"}", 0, -EBADMSG,
	              "envelope: \"protected\" is not a string");

	/* trailing data, unknown and duplicate members */
	t = malloc(n + 200);
	assert_non_null(t);
	snprintf(t, n + 200, "%s x", good);
	check_refused(t, 0, -EBADMSG, "envelope is not valid JSON");
	snprintf(t, n + 200, "%s%s", good, "{}");
	check_refused(t, 0, -EBADMSG, "envelope is not valid JSON");
	free(t);
	t = envelope(&k->school, prot, "{}", ",\"foo\":1");
	check_refused(t, 0, -EBADMSG, "envelope: unknown member \"foo\"");
	free(t);
	t = envelope(&k->school, prot, "{}", ",\"signatures\":[]");
	check_refused(t, 0, -EBADMSG, "general JSON serialization");
	free(t);
	t = envelope(&k->school, prot, "{}", ",\"Payload\":\"e30\"");
	check_refused(t, 0, -EBADMSG, "unknown member \"Payload\"");
	free(t);
	/* a second payload: cJSON would keep both, and readers disagree on which wins */
	t = envelope(&k->school, prot, "{}", ",\"payload\":\"e30\"");
	check_refused(t, 0, -EBADMSG, "duplicate member \"payload\"");
	free(t);
	t = envelope(&k->school, prot, "{}", ",\"signature\":\"e30\"");
	check_refused(t, 0, -EBADMSG, "duplicate member \"signature\"");
	free(t);
	t = envelope(&k->school, prot, "{}", ",\"protected\":\"e30\"");
	check_refused(t, 0, -EBADMSG, "duplicate member \"protected\"");
	free(t);
	/* the same name spelt with an escape is the same name */
	t = envelope(&k->school, prot, "{}", ",\"p\\u0061yload\":\"e30\"");
	check_refused(t, 0, -EBADMSG, "duplicate member \"payload\"");
	free(t);
	t = envelope(&k->school, prot, "{}", ",\"header\":{\"x\":1},\"header\":{\"y\":1}");
	check_refused(t, 0, -EBADMSG, "duplicate member \"header\"");
	free(t);
	t = envelope(&k->school, prot, "{}", ",\"header\":\"x\"");
	check_refused(t, 0, -EBADMSG, "envelope: \"header\" is not a JSON object");
	free(t);
	t = envelope(&k->school, prot, "{}", ",\"\\u0000\":1");
	check_refused(t, 0, -EBADMSG, "\\u0000");
	free(t);

	/* size limit: exactly max_len is accepted, one byte less is not */
	assert_int_equal(jws_parse(&j, good, n, n, err, sizeof(err)), 0);
	jws_release(&j);
	check_refused(good, n - 1, -EMSGSIZE, "larger than the limit");

	/* many values in the unprotected header are refused before cJSON allocates them */
	t = malloc(2 * JWS_VALUES_MAX + 64);
	assert_non_null(t);
	{
		size_t m = (size_t)snprintf(t, 64, ",\"header\":{\"a\":[0");

		for (int i = 0; i < JWS_VALUES_MAX; i++) {
			t[m++] = ',';
			t[m++] = '0';
		}
		snprintf(t + m, 64, "]}");
	}
	dup = envelope(&k->school, prot, "{}", t);
	check_refused(dup, 0, -EBADMSG, "more than 256 arrays, objects and commas");
	free(dup);
	free(t);
	/* commas inside strings do not count */
	t = malloc(2 * JWS_VALUES_MAX + 64);
	assert_non_null(t);
	memcpy(t, ",\"header\":{\"a\":\"", 16);
	memset(t + 16, ',', 2 * JWS_VALUES_MAX);
	memcpy(t + 16 + 2 * JWS_VALUES_MAX, "\"}", 3);
	dup = envelope(&k->school, prot, "{}", t);
	assert_int_equal(parse_str(&j, dup, err, sizeof(err)), 0);
	jws_release(&j);
	free(dup);
	free(t);
	/* depth */
	t = envelope(&k->school, prot, "{}", ",\"header\":{\"a\":[[[[[[[[1]]]]]]]]}");
	check_refused(t, 0, -EBADMSG, "nesting too deep");
	free(t);
	free(good);
}

static const char *env3(char *out, size_t size, const char *prot, const char *payload,
                        const char *sig)
{
	snprintf(out, size, "{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}", prot,
	         payload, sig);
	return out;
}

static void test_base64url_strictness(void **state)
{
	const struct keys *k = *state;
	char *p = b64url(PROT, strlen(PROT));
	char *q = b64url("{\"a\":12}", 8); /* 11 characters: a partial last group */
	char sig[90], text[512];
	size_t n;

	memset(sig, 'A', 86);
	sig[86] = '\0';
#define ENV(prot, pay, sg) env3(text, sizeof(text), prot, pay, sg)
	/* the control: well-formed (the signature is wrong, but parse does not check it) */
	{
		char err[512];
		struct jws j;

		assert_int_equal(parse_str(&j, ENV(p, q, sig), err, sizeof(err)), 0);
		assert_int_equal(jws_verify(&j, &k->school, err, sizeof(err)), -EKEYREJECTED);
		jws_release(&j);
	}
	n = strlen(q);
	{
		char padded[64], spaced[64], plus[64], noncanon[64], nl[64];

		snprintf(padded, sizeof(padded), "%s=", q);
		check_refused(ENV(p, padded, sig), 0, -EBADMSG,
		              "envelope: \"payload\" is not unpadded base64url");
		snprintf(spaced, sizeof(spaced), "%.4s %s", q, q + 4);
		check_refused(ENV(p, spaced, sig), 0, -EBADMSG, "\"payload\" is not unpadded");
		snprintf(nl, sizeof(nl), "%.4s\\n%s", q, q + 4);
		check_refused(ENV(p, nl, sig), 0, -EBADMSG, "\"payload\" is not unpadded");
		snprintf(plus, sizeof(plus), "%s", q);
		plus[1] = '+';
		check_refused(ENV(p, plus, sig), 0, -EBADMSG, "\"payload\" is not unpadded");
		plus[1] = '/';
		check_refused(ENV(p, plus, sig), 0, -EBADMSG, "\"payload\" is not unpadded");
		/* "eyJhIjoxMn0" ends in '0' (110100): its last 2 bits are padding, so "…Mn1"
		 * decodes to the same bytes in a lax decoder */
		snprintf(noncanon, sizeof(noncanon), "%s", q);
		assert_string_equal(noncanon, "eyJhIjoxMn0");
		noncanon[n - 1] = '1';
		check_refused(ENV(p, noncanon, sig), 0, -EBADMSG, "\"payload\" is not unpadded");
		/* a length no base64 has (13 = 1 mod 4) */
		snprintf(noncanon, sizeof(noncanon), "%sAA", q);
		check_refused(ENV(p, noncanon, sig), 0, -EBADMSG, "\"payload\" is not unpadded");
	}
	{
		char padded[80];

		snprintf(padded, sizeof(padded), "%s=", p);
		check_refused(ENV(padded, q, sig), 0, -EBADMSG,
		              "envelope: \"protected\" is not unpadded base64url");
	}
	{
		char s2[100];

		snprintf(s2, sizeof(s2), "%s==", sig);
		check_refused(ENV(p, q, s2), 0, -EBADMSG,
		              "\"signature\" is not unpadded base64url of 64");
		s2[84] = '\0'; /* 63 bytes */
		check_refused(ENV(p, q, s2), 0, -EBADMSG, "of 64 bytes");
		memset(s2, 'A', 88);
		s2[88] = '\0'; /* 66 bytes */
		check_refused(ENV(p, q, s2), 0, -EBADMSG, "of 64 bytes");
		memcpy(s2, sig, 87);
		s2[85] = 'B'; /* non-zero trailing bits */
		check_refused(ENV(p, q, s2), 0, -EBADMSG, "of 64 bytes");
		s2[85] = 'A';
		s2[3] = '.';
		check_refused(ENV(p, q, s2), 0, -EBADMSG, "of 64 bytes");
		/* bytes above 0x7f (here a UTF-8 "é", valid JSON) are no characters of base64:
		 * libsodium 1.0.18 decoded them, which gave a signature several spellings */
		s2[3] = (char)0xc3;
		s2[4] = (char)0xa9;
		check_refused(ENV(p, q, s2), 0, -EBADMSG, "of 64 bytes");
	}
	{
		char high[64];

		snprintf(high, sizeof(high), "%s", q);
		high[4] = (char)0xc3;
		high[5] = (char)0xa9;
		check_refused(ENV(p, high, sig), 0, -EBADMSG, "\"payload\" is not unpadded");
	}
#undef ENV
	free(p);
	free(q);
}

static void test_header_rejections(void **state)
{
	static const char *bad_algs[] = {
	        "none",   "None",  "NONE",  "eddsa", "EDDSA",   "EdDsa", "EdDSA ",
	        " EdDSA", "HS256", "RS256", "ES256", "Ed25519", "",
	};
	const struct keys *k = *state;
	char prot[256], want[128], kid65[66];

	for (size_t i = 0; i < sizeof(bad_algs) / sizeof(bad_algs[0]); i++) {
		snprintf(prot, sizeof(prot), "{\"alg\":\"%s\",\"kid\":\"" KID "\"}", bad_algs[i]);
		snprintf(want, sizeof(want),
		         "protected header: alg \"%s\" is not allowed, only EdDSA", bad_algs[i]);
		check_refused_header(k, prot, "", -EPERM, want);
	}
	{
		/* alg "none" comes with an empty signature: refused for its alg all the same */
		const char *none = "{\"alg\":\"none\",\"kid\":\"" KID "\"}";
		char *p = b64url(none, strlen(none)), text[256];

		snprintf(text, sizeof(text),
		         "{\"payload\":\"e30\",\"protected\":\"%s\",\"signature\":\"\"}", p);
		check_refused(text, 0, -EPERM, "protected header: alg \"none\" is not allowed");
		free(p);
	}
	check_refused_header(k, "{\"kid\":\"" KID "\"}", "", -EBADMSG,
	                     "protected header: no \"alg\"");
	check_refused_header(k, "{\"alg\":null,\"kid\":\"" KID "\"}", "", -EBADMSG,
	                     "protected header: \"alg\" is not a string");
	check_refused_header(k, "{\"alg\":[\"EdDSA\"],\"kid\":\"" KID "\"}", "", -EBADMSG,
	                     "\"alg\" is not a string");
	/* the unprotected header cannot supply alg or kid */
	check_refused_header(k, "{\"kid\":\"" KID "\"}", ",\"header\":{\"alg\":\"EdDSA\"}",
	                     -EBADMSG, "protected header: no \"alg\"");
	check_refused_header(k, "{\"alg\":\"EdDSA\"}", ",\"header\":{\"kid\":\"" KID "\"}",
	                     -EBADMSG, "protected header: no \"kid\"");
	check_refused_header(k, "{\"alg\":\"EdDSA\"}", "", -EBADMSG,
	                     "protected header: no \"kid\"");
	check_refused_header(k, "{\"alg\":\"EdDSA\",\"kid\":2165000123}", "", -EBADMSG,
	                     "protected header: \"kid\" is not a string");
	check_refused_header(k, "{\"alg\":\"EdDSA\",\"kid\":null}", "", -EBADMSG,
	                     "\"kid\" is not a string");
	check_refused_header(k, "{\"alg\":\"EdDSA\",\"kid\":\"\"}", "", -EBADMSG,
	                     "protected header: kid \"\" is not 1 to 64 characters");
	check_refused_header(k, "{\"alg\":\"EdDSA\",\"kid\":\"../etc\"}", "", -EBADMSG,
	                     "kid \"../etc\" is not");
	memset(kid65, '1', 65);
	kid65[65] = '\0';
	snprintf(prot, sizeof(prot), "{\"alg\":\"EdDSA\",\"kid\":\"%s\"}", kid65);
	check_refused_header(k, prot, "", -EBADMSG, "is not 1 to 64 characters");

	/* extensions */
	check_refused_header(
	        k, "{\"alg\":\"EdDSA\",\"kid\":\"" KID "\",\"crit\":[\"exp\"],\"exp\":1}", "",
	        -EBADMSG, "protected header: \"crit\" is present, but no extension is understood");
	check_refused_header(k, "{\"alg\":\"EdDSA\",\"kid\":\"" KID "\",\"crit\":[]}", "", -EBADMSG,
	                     "\"crit\" is present");
	check_refused_header(
	        k, "{\"alg\":\"EdDSA\",\"kid\":\"" KID "\",\"b64\":false,\"crit\":[\"b64\"]}", "",
	        -EBADMSG, "\"crit\" is present");
	check_refused_header(
	        k, "{\"alg\":\"EdDSA\",\"kid\":\"" KID "\",\"b64\":true}", "", -EBADMSG,
	        "protected header: \"b64\" (RFC 7797 unencoded payload) is not supported");
	check_refused_header(k, "{\"alg\":\"EdDSA\",\"kid\":\"" KID "\"}",
	                     ",\"header\":{\"crit\":[\"exp\"]}", -EBADMSG,
	                     "unprotected header: \"crit\" is present");
	check_refused_header(k, "{\"alg\":\"EdDSA\",\"kid\":\"" KID "\"}",
	                     ",\"header\":{\"b64\":true}", -EBADMSG, "unprotected header: \"b64\"");

	/* overlap between the two headers */
	check_refused_header(k, "{\"alg\":\"EdDSA\",\"kid\":\"" KID "\"}",
	                     ",\"header\":{\"kid\":\"" KID "\"}", -EBADMSG,
	                     "header: \"kid\" is in both the protected and the unprotected header");
	check_refused_header(k, "{\"alg\":\"EdDSA\",\"kid\":\"" KID "\",\"typ\":\"x\"}",
	                     ",\"header\":{\"typ\":\"y\"}", -EBADMSG, "\"typ\" is in both");
	check_refused_header(k, "{\"alg\":\"EdDSA\",\"kid\":\"" KID "\"}",
	                     ",\"header\":{\"x\":1,\"x\":2}", -EBADMSG, "duplicate member \"x\"");

	/* the protected header must be one JSON object */
	check_refused_header(k, "{\"alg\":\"EdDSA\",\"alg\":\"EdDSA\",\"kid\":\"" KID "\"}", "",
	                     -EBADMSG,
	                     "protected header is not valid JSON: duplicate member \"alg\"");
	check_refused_header(k, "{\"alg\":\"none\",\"alg\":\"EdDSA\",\"kid\":\"" KID "\"}", "",
	                     -EBADMSG, "duplicate member \"alg\"");
	check_refused_header(k, "[\"EdDSA\"]", "", -EBADMSG,
	                     "protected header is not a JSON object");
	check_refused_header(k, "\"EdDSA\"", "", -EBADMSG, "protected header is not a JSON object");
	check_refused_header(k, "", "", -EBADMSG, "protected header is not valid JSON");
	check_refused_header(k, "{\"alg\":\"EdDSA\",\"kid\":\"" KID "\"} x", "", -EBADMSG,
	                     "protected header is not valid JSON");
	check_refused_header(k, "{\"alg\":\"EdDSA\",\"kid\":\"" KID "\",\"x\":\"\xff\"}", "",
	                     -EBADMSG, "invalid UTF-8");
	check_refused_header(k, "{\"alg\":\"EdDSA\",\"kid\":\"" KID "\",\"x\":\"\\ud800\"}", "",
	                     -EBADMSG, "surrogate");
	{
		char *big = malloc(JWS_PROTECTED_MAX + 64);

		assert_non_null(big);
		snprintf(big, JWS_PROTECTED_MAX + 64,
		         "{\"alg\":\"EdDSA\",\"kid\":\"" KID "\",\"x\":\"%*s\"}", JWS_PROTECTED_MAX,
		         "");
		check_refused_header(k, big, "", -EBADMSG,
		                     "protected header longer than 4096 bytes");
		free(big);
	}
}

static void test_header_tolerated(void **state)
{
	const char *cases[][2] = {
	        {"{\"kid\":\"" KID "\",\"alg\":\"EdDSA\"}", ""},
	        {"{\"alg\":\"EdDSA\",\"kid\":\"" KID "\",\"typ\":\"JOSE+JSON\",\"cty\":\"json\"}",
	         ""},
	        {"{\"alg\":\"EdDSA\",\"kid\":\"" KID "\"}", ",\"header\":{\"note\":\"unsigned\"}"},
	        {"{\"alg\":\"EdDSA\",\"kid\":\"" KID "\"}", ",\"header\":{}"},
	        {" { \"alg\" : \"EdDSA\" ,\n \"kid\" : \"" KID "\" } ", ""},
	        {"{\"alg\":\"Ed\\u0044SA\",\"kid\":\"" KID "\"}", ""},
	};
	const struct keys *k = *state;
	char err[512] = "";

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *t = envelope(&k->school, cases[i][0], "{\"ok\":true}", cases[i][1]);
		struct jws j;

		if (parse_str(&j, t, err, sizeof(err)) != 0)
			fail_msg("case %zu: %s", i, err);
		assert_string_equal(j.kid, KID);
		assert_int_equal(jws_verify(&j, &k->school, err, sizeof(err)), 0);
		assert_string_equal((char *)j.payload, "{\"ok\":true}");
		jws_release(&j);
		free(t);
	}
}

static void test_envelope_layout(void **state)
{
	const struct keys *k = *state;
	char err[512] = "", *text, *pretty, *a, *b, *c;
	struct jws j;
	size_t size;

	/* member order, whitespace and a final newline do not matter */
	assert_int_equal(jws_sign(&k->school, KID, "{}", 2, &text, NULL, err, sizeof(err)), 0);
	a = strstr(text, "\"payload\"");
	b = strstr(text, "\"protected\"");
	c = strstr(text, "\"signature\"");
	size = strlen(text) + 64;
	pretty = malloc(size);
	assert_non_null(pretty);
	snprintf(pretty, size, "{\n  %.*s,\n  %.*s,\n  %.*s\n}\n", (int)(strchr(c, '}') - c), c,
	         (int)(b - a - 1), a, (int)(c - b - 1), b);
	assert_int_equal(parse_str(&j, pretty, err, sizeof(err)), 0);
	assert_int_equal(jws_verify(&j, &k->school, err, sizeof(err)), 0);
	jws_release(&j);
	free(pretty);
	free(text);
}

/* jws_base64url_decode against libsodium's strict decoder (the one it replaced), which is
 * the oracle: the same verdict and the same bytes. With one exception: libsodium 1.0.18
 * takes every byte above 0x7f for a character (its char is signed), which RFC 4648 does
 * not, and which would give one JWS several spellings; those are refused. */
static void check_like_sodium(const char *s, size_t len)
{
	unsigned char mine[64], theirs[64];
	size_t n_mine = 0, n_theirs = 0;
	int r, want, high = 0;

	assert_true(len / 4 * 3 + 2 <= sizeof(mine));
	for (size_t i = 0; i < len; i++)
		high |= (unsigned char)s[i] >= 0x80;
	want = sodium_base642bin(theirs, sizeof(theirs), s, len, NULL, &n_theirs, NULL,
	                         sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	r = jws_base64url_decode(s, len, mine, sizeof(mine), &n_mine);
	if (want != 0 || high) {
		if (r != -EBADMSG)
			fail_msg("'%.*s' (%zu characters): decoded, libsodium refuses it", (int)len,
			         s, len);
		return;
	}
	if (r != 0)
		fail_msg("'%.*s' (%zu characters): refused, libsodium decodes it", (int)len, s,
		         len);
	assert_int_equal(n_mine, n_theirs);
	assert_memory_equal(mine, theirs, n_mine);
}

static void test_base64url_decoder(void **state)
{
	/* every alphabet character, its neighbours in ASCII, the other alphabet, padding,
	 * whitespace, NUL and bytes above 0x7f */
	static const char probe[] = "AZaz09-_BQw+/=@[`{:,. \n\0\x80\xff";
	const size_t np = sizeof(probe) - 1;
	unsigned char out[64], big[3 * 1000];
	char s[4 * 1000 + 4];
	size_t n;

	(void)state;
	/* every string of up to two bytes */
	for (unsigned a = 0; a < 256; a++) {
		s[0] = (char)a;
		check_like_sodium(s, 1);
		for (unsigned b = 0; b < 256; b++) {
			s[1] = (char)b;
			check_like_sodium(s, 2);
		}
	}
	/* three and four characters over the probe set, in each position of a group */
	for (size_t a = 0; a < np; a++)
		for (size_t b = 0; b < np; b++)
			for (size_t c = 0; c < np; c++) {
				s[0] = probe[a];
				s[1] = probe[b];
				s[2] = probe[c];
				check_like_sodium(s, 3);
				for (size_t d = 0; d < np; d++) {
					s[3] = probe[d];
					check_like_sodium(s, 4);
				}
			}
	/* random valid text of every length up to 80, then one character changed */
	for (size_t len = 0; len <= 80; len++)
		for (int round = 0; round < 50; round++) {
			static const char alphabet[] =
			        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrs"
			        "tuvwxyz0123456789-_";

			for (size_t i = 0; i < len; i++)
				s[i] = alphabet[randombytes_uniform(64)];
			check_like_sodium(s, len);
			if (len > 0) {
				s[randombytes_uniform((uint32_t)len)] =
				        probe[randombytes_uniform((uint32_t)np)];
				check_like_sodium(s, len);
			}
		}
	/* the room for the output: exactly enough, or one byte short (untouched) */
	assert_int_equal(jws_base64url_decode("QUJD", 4, out, 3, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "ABC", 3);
	memset(out, 0x55, sizeof(out));
	assert_int_equal(jws_base64url_decode("QUJD", 4, out, 2, &n), -ENOBUFS);
	assert_int_equal(out[0], 0x55);
	assert_int_equal(jws_base64url_decode("QUI", 3, out, 2, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(jws_base64url_decode("QUI", 3, out, 1, &n), -ENOBUFS);
	assert_int_equal(jws_base64url_decode("", 0, out, 0, &n), 0);
	assert_int_equal(n, 0);
	/* a long text, and a bad character in its middle or its last group */
	randombytes_buf(big, sizeof(big));
	sodium_bin2base64(s, sizeof(s), big, sizeof(big), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	assert_int_equal(jws_base64url_decode(s, 4000, out, sizeof(out), &n), -ENOBUFS);
	{
		unsigned char *back = malloc(sizeof(big));

		assert_non_null(back);
		assert_int_equal(jws_base64url_decode(s, 4000, back, sizeof(big), &n), 0);
		assert_int_equal(n, sizeof(big));
		assert_memory_equal(back, big, sizeof(big));
		s[1999] = '=';
		assert_int_equal(jws_base64url_decode(s, 4000, back, sizeof(big), &n), -EBADMSG);
		s[1999] = 'A';
		s[3998] = '/';
		assert_int_equal(jws_base64url_decode(s, 4000, back, sizeof(big), &n), -EBADMSG);
		free(back);
	}
}

/* A plain envelope is read without the JSON parser: every spelling of the same JWS, plain
 * or not (an unprotected header, escapes, whitespace, another order), gives the same. */
static void test_plain_and_general_paths_agree(void **state)
{
	const struct keys *k = *state;
	char err[512] = "", *text, *p, *q, *sig, variant[4096];
	const char *payload = "{\"a\":[1,2,3],\"b\":\"\u00e9\"}";
	struct jws want, got;

	assert_int_equal(
	        jws_sign(&k->school, KID, payload, strlen(payload), &text, NULL, err, sizeof(err)),
	        0);
	assert_int_equal(parse_str(&want, text, err, sizeof(err)), 0);
	p = strdup(strstr(text, "\"protected\":\"") + 13);
	q = strdup(strstr(text, "\"payload\":\"") + 11);
	sig = strdup(strstr(text, "\"signature\":\"") + 13);
	assert_non_null(p);
	assert_non_null(q);
	assert_non_null(sig);
	*strchr(p, '"') = '\0';
	*strchr(q, '"') = '\0';
	*strchr(sig, '"') = '\0';
	{
		/* each spelling in four pieces, around the payload, protected header and
		 * signature */
		static const char *const spellings[][4] = {
		        /* plain */
		        {"{\"payload\":\"", "\",\"protected\":\"", "\",\"signature\":\"", "\"}"},
		        {" \r\n\t{ \"payload\" :\t\"", "\" ,\n\"protected\": \"",
		         "\",\"signature\":\"", "\"}\n "},
		        /* general: a header, an escaped name */
		        {"{\"header\":{},\"payload\":\"", "\",\"protected\":\"",
		         "\",\"signature\":\"", "\"}"},
		        {"{\"\\u0070ayload\":\"", "\",\"protected\":\"", "\",\"signature\":\"",
		         "\"}"},
		        {"{\"payload\":\"", "\",\"protected\":\"", "\",\"signature\":\"",
		         "\",\"header\":{\"x\":1}}"},
		};

		for (size_t i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
			snprintf(variant, sizeof(variant), "%s%s%s%s%s%s%s", spellings[i][0], q,
			         spellings[i][1], p, spellings[i][2], sig, spellings[i][3]);
			if (parse_str(&got, variant, err, sizeof(err)) != 0)
				fail_msg("spelling %zu refused: %s", i, err);
			assert_int_equal(got.payload_len, want.payload_len);
			assert_memory_equal(got.payload, want.payload, want.payload_len);
			assert_string_equal(got.signing_input, want.signing_input);
			assert_memory_equal(got.signature, want.signature, sizeof(want.signature));
			assert_string_equal(got.kid, want.kid);
			assert_int_equal(jws_verify(&got, &k->school, err, sizeof(err)), 0);
			jws_release(&got);
		}
		/* an escaped character in the signature: the general path decodes it too */
		snprintf(variant, sizeof(variant),
		         "{\"payload\":\"%s\",\"protected\":\"%s\",\"signature\":\"\\u00%02x%s\"}",
		         q, p, (unsigned char)sig[0], sig + 1);
		assert_int_equal(parse_str(&got, variant, err, sizeof(err)), 0);
		assert_memory_equal(got.signature, want.signature, sizeof(want.signature));
		jws_release(&got);
	}
	/* what looks plain but is not: a member twice, one missing, a fourth, a value that is
	 * not a string, something after the object */
	snprintf(variant, sizeof(variant),
	         "{\"payload\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}", q, q, sig);
	check_refused(variant, 0, -EBADMSG, "duplicate member \"payload\"");
	snprintf(variant, sizeof(variant), "{\"payload\":\"%s\",\"signature\":\"%s\"}", q, sig);
	check_refused(variant, 0, -EBADMSG, "no \"protected\" member");
	snprintf(variant, sizeof(variant),
	         "{\"payload\":\"%s\",\"protected\":\"%s\",\"signature\":\"%s\",\"x\":\"\"}", q, p,
	         sig);
	check_refused(variant, 0, -EBADMSG, "unknown member \"x\"");
	snprintf(variant, sizeof(variant),
	         "{\"payload\":\"%s\",\"protected\":\"%s\",\"signature\":1}", q, p);
	check_refused(variant, 0, -EBADMSG, "\"signature\" is not a string");
	snprintf(variant, sizeof(variant),
	         "{\"payload\":\"%s\",\"protected\":\"%s\",\"signature\":\"%s\"}x", q, p, sig);
	check_refused(variant, 0, -EBADMSG, "not valid JSON");
	jws_release(&want);
	free(p);
	free(q);
	free(sig);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_round_trips),
	        cmocka_unit_test(test_rfc8037_a4),
	        cmocka_unit_test(test_tampering),
	        cmocka_unit_test(test_wrong_key_and_kid),
	        cmocka_unit_test(test_sign_errors),
	        cmocka_unit_test(test_sign_size_limit),
	        cmocka_unit_test(test_envelope_rejections),
	        cmocka_unit_test(test_base64url_strictness),
	        cmocka_unit_test(test_base64url_decoder),
	        cmocka_unit_test(test_plain_and_general_paths_agree),
	        cmocka_unit_test(test_header_rejections),
	        cmocka_unit_test(test_header_tolerated),
	        cmocka_unit_test(test_envelope_layout),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
