/* JWS flattened JSON serialization with EdDSA: see jws.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "common/buf.h"
#include "common/errmsg.h"
#include "common/json.h"
#include "common/jwk.h"
#include "common/jws.h"
#include "common/banned.h"

#define B64URL_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define SIGNATURE_B64_LEN 86 /* unpadded base64url characters of 64 bytes */

void jws_init(struct jws *j)
{
	memset(j, 0, sizeof(*j));
}

void jws_release(struct jws *j)
{
	free(j->signing_input);
	free(j->payload);
	jws_init(j);
}

/* The value of each base64url character, BAD (bits no value 0-63 has) for the others. */
#define BAD_BITS 0xc0u
#define BAD BAD_BITS
/* clang-format off */
static const unsigned char b64url_values[256] = {
	BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
	BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
	BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,  62, BAD, BAD,
	 52,  53,  54,  55,  56,  57,  58,  59,  60,  61, BAD, BAD, BAD, BAD, BAD, BAD,
	BAD,   0,   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,  14,
	 15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25, BAD, BAD, BAD, BAD,  63,
	BAD,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,
	 41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51, BAD, BAD, BAD, BAD, BAD,
	BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
	BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
	BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
	BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
	BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
	BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
	BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
	BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD, BAD,
};
/* clang-format on */
#undef BAD

int jws_base64url_decode(const char *s, size_t len, unsigned char *out, size_t outmax,
                         size_t *ret_len)
{
	const unsigned char *in = (const unsigned char *)s;
	size_t groups = len / 4, rest = len % 4, n = groups * 3 + (rest ? rest - 1 : 0);
	unsigned bad = 0;
	uint32_t v;

	if (rest == 1)
		return -EBADMSG;
	if (n > outmax)
		return -ENOBUFS;
	/* no branch per character: an invalid one sets bits that are checked once, at the
	 * end (out may then hold garbage, which the caller never reads) */
	for (size_t i = 0; i < groups; i++, in += 4, out += 3) {
		unsigned a = b64url_values[in[0]], b = b64url_values[in[1]],
		         c = b64url_values[in[2]], d = b64url_values[in[3]];

		bad |= a | b | c | d;
		v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
		out[0] = (unsigned char)(v >> 16);
		out[1] = (unsigned char)(v >> 8);
		out[2] = (unsigned char)v;
	}
	if (rest) {
		/* 2 characters are 1 byte and 4 padding bits, 3 are 2 bytes and 2 bits: the
		 * padding bits must be zero, so that every byte string has one spelling */
		unsigned a = b64url_values[in[0]], b = b64url_values[in[1]],
		         c = rest == 3 ? b64url_values[in[2]] : 0;

		bad |= a | b | c;
		v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
		out[0] = (unsigned char)(v >> 16);
		if (rest == 3)
			out[1] = (unsigned char)(v >> 8);
		/* non-zero padding bits (1-15) + 0x3f reach 0x40, a BAD bit */
		bad |= ((rest == 2 ? b & 0x0f : c & 0x03) + 0x3f) & 0x40;
	}
	if (bad & BAD_BITS)
		return -EBADMSG;
	*ret_len = n;
	return 0;
}

/* Strict unpadded base64url of s into out (room for outmax bytes). */
static int b64url_decode(const char *s, size_t len, unsigned char *out, size_t outmax,
                         size_t *ret_len)
{
	return jws_base64url_decode(s, len, out, outmax, ret_len) < 0 ? -EBADMSG : 0;
}

/* "crit" and "b64" change how a JWS must be processed; we implement neither. */
static int check_extensions(const cJSON *h, const char *which, char *err, size_t errlen)
{
	if (cJSON_GetObjectItemCaseSensitive(h, "crit"))
		return errmsg_set(
		        err, errlen, -EBADMSG,
		        "%s header: \"crit\" is present, but no extension is understood, so "
		        "the JWS is refused",
		        which);
	if (cJSON_GetObjectItemCaseSensitive(h, "b64"))
		return errmsg_set(
		        err, errlen, -EBADMSG,
		        "%s header: \"b64\" (RFC 7797 unencoded payload) is not supported", which);
	return 0;
}

/* The protected header (decoded) and the unprotected one (may be NULL); fills kid. */
static int check_headers(const unsigned char *prot, size_t prot_len, const cJSON *unprot,
                         char kid[static JWK_KID_MAX + 1], char *err, size_t errlen)
{
	const cJSON *alg, *k, *c;
	cJSON *h = NULL;
	char msg[200], q[ERRMSG_QUOTE_SIZE];
	int r;

	r = json_parse_untrusted((const char *)prot, prot_len, JWS_DEPTH_MAX, &h, msg, sizeof(msg));
	if (r < 0)
		return errmsg_set(err, errlen, r == -ENOMEM ? -ENOMEM : -EBADMSG,
		                  "protected header is not valid JSON: %s", msg);
	if (!cJSON_IsObject(h)) {
		r = errmsg_set(err, errlen, -EBADMSG, "protected header is not a JSON object");
		goto fail;
	}
	alg = cJSON_GetObjectItemCaseSensitive(h, "alg");
	if (!alg) {
		r = errmsg_set(err, errlen, -EBADMSG, "protected header: no \"alg\"");
		goto fail;
	}
	if (!cJSON_IsString(alg)) {
		r = errmsg_set(err, errlen, -EBADMSG, "protected header: \"alg\" is not a string");
		goto fail;
	}
	if (strcmp(alg->valuestring, "EdDSA") != 0) {
		r = errmsg_set(err, errlen, -EPERM,
		               "protected header: alg \"%s\" is not allowed, only EdDSA",
		               errmsg_quote(alg->valuestring, q));
		goto fail;
	}
	r = check_extensions(h, "protected", err, errlen);
	if (r < 0)
		goto fail;
	k = cJSON_GetObjectItemCaseSensitive(h, "kid");
	if (!k) {
		r = errmsg_set(err, errlen, -EBADMSG, "protected header: no \"kid\"");
		goto fail;
	}
	if (!cJSON_IsString(k)) {
		r = errmsg_set(err, errlen, -EBADMSG, "protected header: \"kid\" is not a string");
		goto fail;
	}
	if (!jwk_kid_valid(k->valuestring)) {
		r = errmsg_set(err, errlen, -EBADMSG,
		               "protected header: kid \"%s\" is not " JWK_KID_RULE,
		               errmsg_quote(k->valuestring, q));
		goto fail;
	}
	if (unprot) {
		r = check_extensions(unprot, "unprotected", err, errlen);
		if (r < 0)
			goto fail;
		cJSON_ArrayForEach(c, unprot)
		{
			if (cJSON_GetObjectItemCaseSensitive(h, c->string)) {
				r = errmsg_set(err, errlen, -EBADMSG,
				               "header: \"%s\" is in both the protected and the "
				               "unprotected header",
				               errmsg_quote(c->string, q));
				goto fail;
			}
		}
	}
	memcpy(kid, k->valuestring, strlen(k->valuestring) + 1);
	r = 0;
fail:
	cJSON_Delete(h);
	return r;
}

/* The string member name of the envelope, required. */
static int get_member(const cJSON *env, const char *name, const char **ret, char *err,
                      size_t errlen)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(env, name);

	if (!item)
		return errmsg_set(err, errlen, -EBADMSG, "envelope: no \"%s\" member", name);
	if (!cJSON_IsString(item))
		return errmsg_set(err, errlen, -EBADMSG, "envelope: \"%s\" is not a string", name);
	*ret = item->valuestring;
	return 0;
}

/* JSON whitespace */
static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The envelope as every tier writes it, {"payload":"…","protected":"…","signature":"…"}:
 * those three members once each, in any order, JSON whitespace anywhere between tokens,
 * each value made of base64url characters only. Sets parts[] (payload, protected,
 * signature: pointers into text) and lens[], and returns 1; 0 for any other text, which
 * the general parser then takes or refuses. A shortcut past the JSON parser, not a
 * grammar of its own: such a text is strict JSON that the general path reads the same. */
static int plain_envelope(const char *text, size_t len, const char *parts[3], size_t lens[3])
{
	static const char *const names[3] = {"payload", "protected", "signature"};
	unsigned seen = 0;
	size_t i = 0;

#define SKIP_WS()                                                                                  \
	do {                                                                                       \
		while (i < len && is_ws(text[i]))                                                  \
			i++;                                                                       \
	} while (0)
	SKIP_WS();
	if (i == len || text[i++] != '{')
		return 0;
	for (int m = 0; m < 3; m++) {
		size_t start, k;

		SKIP_WS();
		if (m > 0 && (i == len || text[i++] != ','))
			return 0;
		SKIP_WS();
		if (i == len || text[i++] != '"')
			return 0;
		start = i;
		while (i < len && text[i] >= 'a' && text[i] <= 'z')
			i++;
		if (i == len || text[i] != '"')
			return 0;
		for (k = 0; k < 3; k++)
			if (strlen(names[k]) == i - start &&
			    memcmp(names[k], text + start, i - start) == 0)
				break;
		if (k == 3 || (seen & (1u << k)))
			return 0;
		seen |= 1u << k;
		i++;
		SKIP_WS();
		if (i == len || text[i++] != ':')
			return 0;
		SKIP_WS();
		if (i == len || text[i++] != '"')
			return 0;
		start = i;
		while (i < len && b64url_values[(unsigned char)text[i]] < 64)
			i++;
		if (i == len || text[i] != '"')
			return 0;
		parts[k] = text + start;
		lens[k] = i - start;
		i++;
	}
	SKIP_WS();
	if (i == len || text[i++] != '}')
		return 0;
	SKIP_WS();
#undef SKIP_WS
	return i == len;
}

/* The general path: the envelope through the strict JSON parser, every member checked.
 * Sets parts[] and lens[] (payload, protected, signature: borrowed from *ret_env, which
 * the caller frees with cJSON_Delete) and *ret_unprot (the unprotected header, or NULL). */
static int parse_envelope(const char *text, size_t len, cJSON **ret_env, const cJSON **ret_unprot,
                          const char *parts[3], size_t lens[3], char *err, size_t errlen)
{
	cJSON *env = NULL;
	const cJSON *c, *unprot;
	const char *prot_b64, *payload_b64, *sig_b64;
	char msg[200], q[ERRMSG_QUOTE_SIZE];
	int r;

	if (json_too_many_values(text, len, JWS_VALUES_MAX))
		return errmsg_set(err, errlen, -EBADMSG,
		                  "envelope: more than %d arrays, objects and commas",
		                  JWS_VALUES_MAX);
	r = json_parse_untrusted(text, len, JWS_DEPTH_MAX, &env, msg, sizeof(msg));
	if (r < 0)
		return errmsg_set(err, errlen, r == -ENOMEM || r == -EMSGSIZE ? r : -EBADMSG,
		                  "envelope is not valid JSON: %s", msg);
	if (!cJSON_IsObject(env)) {
		r = errmsg_set(err, errlen, -EBADMSG, "envelope is not a JSON object");
		goto fail;
	}
	cJSON_ArrayForEach(c, env)
	{
		if (strcmp(c->string, "signatures") == 0) {
			r = errmsg_set(
			        err, errlen, -EBADMSG,
			        "envelope: \"signatures\" (general JSON serialization) is not "
			        "supported, only the flattened one");
			goto fail;
		}
		if (strcmp(c->string, "protected") != 0 && strcmp(c->string, "payload") != 0 &&
		    strcmp(c->string, "signature") != 0 && strcmp(c->string, "header") != 0) {
			r = errmsg_set(err, errlen, -EBADMSG, "envelope: unknown member \"%s\"",
			               errmsg_quote(c->string, q));
			goto fail;
		}
	}
	if ((r = get_member(env, "protected", &prot_b64, err, errlen)) < 0 ||
	    (r = get_member(env, "payload", &payload_b64, err, errlen)) < 0 ||
	    (r = get_member(env, "signature", &sig_b64, err, errlen)) < 0)
		goto fail;
	unprot = cJSON_GetObjectItemCaseSensitive(env, "header");
	if (unprot && !cJSON_IsObject(unprot)) {
		r = errmsg_set(err, errlen, -EBADMSG, "envelope: \"header\" is not a JSON object");
		goto fail;
	}
	parts[0] = payload_b64;
	lens[0] = strlen(payload_b64);
	parts[1] = prot_b64;
	lens[1] = strlen(prot_b64);
	parts[2] = sig_b64;
	lens[2] = strlen(sig_b64);
	*ret_unprot = unprot;
	*ret_env = env;
	return 0;
fail:
	cJSON_Delete(env);
	return r;
}

int jws_parse(struct jws *ret, const char *text, size_t len, size_t max_len, char *err,
              size_t errlen)
{
	unsigned char prot[JWS_PROTECTED_MAX];
	const char *parts[3], *prot_b64, *payload_b64, *sig_b64;
	size_t lens[3], prot_len, prot_b64_len, payload_b64_len, sig_len;
	cJSON *env = NULL;
	const cJSON *unprot = NULL;
	struct jws j;
	int r;

	jws_init(&j);
	if (!max_len)
		max_len = JWS_TEXT_MAX_DEFAULT;
	if (max_len > JSON_MAX_TEXT)
		max_len = JSON_MAX_TEXT; /* what the general path's JSON parser takes */
	if (len > max_len)
		return errmsg_set(err, errlen, -EMSGSIZE,
		                  "JWS of %zu bytes is larger than the limit of %zu", len, max_len);
	/* most envelopes are plain: they need no JSON parser, and no copy of their parts */
	if (!plain_envelope(text, len, parts, lens)) {
		r = parse_envelope(text, len, &env, &unprot, parts, lens, err, errlen);
		if (r < 0)
			return r;
	}
	payload_b64 = parts[0];
	payload_b64_len = lens[0];
	prot_b64 = parts[1];
	prot_b64_len = lens[1];
	sig_b64 = parts[2];

	/* cheap checks first: the small protected header (so alg "none" with its empty
	 * signature is refused for its alg), then the signature, then the payload */
	if (prot_b64_len / 4 * 3 + (prot_b64_len % 4 ? prot_b64_len % 4 - 1 : 0) >
	    JWS_PROTECTED_MAX) {
		r = errmsg_set(err, errlen, -EBADMSG,
		               "envelope: protected header longer than %d bytes",
		               JWS_PROTECTED_MAX);
		goto fail;
	}
	if (b64url_decode(prot_b64, prot_b64_len, prot, sizeof(prot), &prot_len) < 0) {
		r = errmsg_set(err, errlen, -EBADMSG,
		               "envelope: \"protected\" is not unpadded base64url");
		goto fail;
	}
	r = check_headers(prot, prot_len, unprot, j.kid, err, errlen);
	if (r < 0)
		goto fail;
	if (lens[2] != SIGNATURE_B64_LEN ||
	    b64url_decode(sig_b64, SIGNATURE_B64_LEN, j.signature, sizeof(j.signature), &sig_len) <
	            0 ||
	    sig_len != sizeof(j.signature)) {
		r = errmsg_set(err, errlen, -EBADMSG,
		               "envelope: \"signature\" is not unpadded base64url of 64 bytes");
		goto fail;
	}

	j.payload = malloc(payload_b64_len / 4 * 3 + 3);
	j.signing_input = malloc(prot_b64_len + 1 + payload_b64_len + 1);
	if (!j.payload || !j.signing_input) {
		r = errmsg_set(err, errlen, -ENOMEM, "out of memory");
		goto fail;
	}
	if (b64url_decode(payload_b64, payload_b64_len, j.payload, payload_b64_len / 4 * 3 + 2,
	                  &j.payload_len) < 0) {
		r = errmsg_set(err, errlen, -EBADMSG,
		               "envelope: \"payload\" is not unpadded base64url");
		goto fail;
	}
	j.payload[j.payload_len] = '\0';
	memcpy(j.signing_input, prot_b64, prot_b64_len);
	j.signing_input[prot_b64_len] = '.';
	memcpy(j.signing_input + prot_b64_len + 1, payload_b64, payload_b64_len);
	j.signing_input_len = prot_b64_len + 1 + payload_b64_len;
	j.signing_input[j.signing_input_len] = '\0';

	*ret = j;
	jws_init(&j);
	r = 0;
fail:
	jws_release(&j);
	cJSON_Delete(env);
	return r;
}

int jws_verify(const struct jws *j, const struct jwk *key, char *err, size_t errlen)
{
	if (!j->signing_input)
		return errmsg_set(err, errlen, -EINVAL, "no parsed JWS to verify");
	if (key->kid[0] && strcmp(key->kid, j->kid) != 0)
		return errmsg_set(
		        err, errlen, -EKEYREJECTED,
		        "kid does not match the key: the JWS names \"%s\", the key is \"%s\"",
		        j->kid, key->kid);
	if (sodium_init() < 0)
		return errmsg_set(err, errlen, -EIO, "libsodium failed to initialize");
	if (crypto_sign_verify_detached(j->signature, (const unsigned char *)j->signing_input,
	                                j->signing_input_len, key->public_key) != 0)
		return errmsg_set(err, errlen, -EKEYREJECTED,
		                  "signature does not verify with the key for kid \"%s\"", j->kid);
	return 0;
}

int jws_sign(const struct jwk *key, const char *kid, const void *payload, size_t payload_len,
             char **ret_text, size_t *ret_len, char *err, size_t errlen)
{
	static const char frame[] = "{\"payload\":\"\",\"protected\":\"\",\"signature\":\"\"}";
	unsigned char sig[JWS_SIGNATURE_SIZE];
	char header[64 + JWK_KID_MAX], sig_b64[SIGNATURE_B64_LEN + 1], q[ERRMSG_QUOTE_SIZE];
	size_t header_len, prot_size, payload_size, input_len, total;
	char *input = NULL;
	struct buf out;
	int r;

	buf_init(&out, JWS_TEXT_MAX_DEFAULT);
	if (!key->has_private)
		return errmsg_set(err, errlen, -EINVAL, "cannot sign: the key has no private part");
	if (kid && !jwk_kid_valid(kid))
		return errmsg_set(err, errlen, -EINVAL,
		                  "cannot sign: kid \"%s\" is not " JWK_KID_RULE,
		                  errmsg_quote(kid, q));
	if (kid && key->kid[0] && strcmp(kid, key->kid) != 0)
		return errmsg_set(err, errlen, -EINVAL,
		                  "cannot sign: kid \"%s\" is not the key's kid \"%s\"", kid,
		                  key->kid);
	if (sodium_init() < 0)
		return errmsg_set(err, errlen, -EIO, "libsodium failed to initialize");
	if (payload_len > JWS_TEXT_MAX_DEFAULT / 4 * 3)
		return errmsg_set(err, errlen, -EMSGSIZE,
		                  "cannot sign: payload of %zu bytes is too large", payload_len);

	if (kid)
		header_len = (size_t)snprintf(header, sizeof(header),
		                              "{\"alg\":\"EdDSA\",\"kid\":\"%s\"}", kid);
	else
		header_len = (size_t)snprintf(header, sizeof(header), "{\"alg\":\"EdDSA\"}");
	/* the sizes include the NUL */
	prot_size = sodium_base64_ENCODED_LEN(header_len, B64URL_VARIANT);
	payload_size = sodium_base64_ENCODED_LEN(payload_len, B64URL_VARIANT);
	total = sizeof(frame) - 1 + prot_size - 1 + payload_size - 1 + SIGNATURE_B64_LEN;
	if (total > JWS_TEXT_MAX_DEFAULT)
		return errmsg_set(
		        err, errlen, -EMSGSIZE,
		        "cannot sign: the JWS would be %zu bytes, more than the limit of %u", total,
		        JWS_TEXT_MAX_DEFAULT);

	/* signing input: ASCII(BASE64URL(protected) || '.' || BASE64URL(payload)) */
	input = malloc(prot_size + payload_size);
	if (!input) {
		r = errmsg_set(err, errlen, -ENOMEM, "out of memory");
		goto fail;
	}
	sodium_bin2base64(input, prot_size, (const unsigned char *)header, header_len,
	                  B64URL_VARIANT);
	input[prot_size - 1] = '.';
	sodium_bin2base64(input + prot_size, payload_size, payload, payload_len, B64URL_VARIANT);
	input_len = prot_size + payload_size - 1;
	crypto_sign_detached(sig, NULL, (const unsigned char *)input, input_len, key->secret_key);
	sodium_bin2base64(sig_b64, sizeof(sig_b64), sig, sizeof(sig), B64URL_VARIANT);

	input[prot_size - 1] = '\0';
	r = buf_reserve(&out, total);
	if (r == 0)
		r = buf_printf(&out,
		               "{\"payload\":\"%s\",\"protected\":\"%s\",\"signature\":\"%s\"}",
		               input + prot_size, input, sig_b64);
	if (r < 0) {
		r = errmsg_set(err, errlen, r, "cannot sign: %s", strerror(-r));
		goto fail;
	}
	*ret_text = buf_detach(&out, ret_len);
	r = 0;
fail:
	buf_release(&out);
	free(input);
	return r;
}
