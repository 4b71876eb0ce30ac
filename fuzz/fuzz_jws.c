/* libFuzzer target: jws_parse, jws_verify, jws_base64url_decode and jwk_parse on untrusted
 * bytes. Besides "no crash, no leak, no UB", it checks what jws.h promises of an accepted
 * JWS: the payload and signing input fit in the input, the kid is valid, and re-signing
 * the payload gives a JWS that parses back to the same bytes and verifies, and that the
 * general path (the JSON parser) reads it as the shortcut for plain envelopes did; and that
 * the base64url decoder agrees with libsodium's (on ASCII: libsodium 1.0.18 takes bytes
 * above 0x7f for characters, which the decoder refuses). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/jwk.h"
#include "common/jws.h"
#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_accepted(const struct jws *j, size_t size)
{
	static const unsigned char seed[crypto_sign_SEEDBYTES] = {1, 2, 3};
	char err[256], *text = NULL;
	struct jws again;
	struct jwk key;
	size_t len;

	if (j->payload_len > size || j->signing_input_len > size || !jwk_kid_valid(j->kid) ||
	    j->payload[j->payload_len] != '\0')
		abort();
	memset(&key, 0, sizeof(key));
	crypto_sign_seed_keypair(key.public_key, key.secret_key, seed);
	key.has_private = 1;
	/* a random signature never verifies with this key */
	if (jws_verify(j, &key, err, sizeof(err)) == 0)
		abort();
	if (jws_sign(&key, j->kid, j->payload, j->payload_len, &text, &len, err, sizeof(err)) < 0)
		abort();
	if (jws_parse(&again, text, len, 0, err, sizeof(err)) < 0 ||
	    again.payload_len != j->payload_len ||
	    memcmp(again.payload, j->payload, j->payload_len) != 0 ||
	    strcmp(again.kid, j->kid) != 0 || jws_verify(&again, &key, err, sizeof(err)) < 0)
		abort();
	jws_release(&again);
	free(text);
	jwk_release(&key);
}

static void check_base64url(const uint8_t *data, size_t size)
{
	size_t room = size / 4 * 3 + 2, n_mine = 0, n_theirs = 0;
	unsigned char *mine = malloc(room), *theirs = malloc(room);
	int r, want, high = 0;

	if (!mine || !theirs)
		abort();
	for (size_t i = 0; i < size; i++)
		high |= data[i] >= 0x80;
	r = jws_base64url_decode((const char *)data, size, mine, room, &n_mine);
	want = sodium_base642bin(theirs, room, (const char *)data, size, NULL, &n_theirs, NULL,
	                         sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	if (r != 0 && r != -EBADMSG)
		abort();
	if (high ? r == 0 : (r == 0) != (want == 0))
		abort();
	if (r == 0 && (n_mine != n_theirs || memcmp(mine, theirs, n_mine) != 0))
		abort();
	/* one byte short of room: refused, whatever the text */
	if (r == 0 && n_mine > 0 &&
	    jws_base64url_decode((const char *)data, size, mine, n_mine - 1, &n_mine) != -ENOBUFS)
		abort();
	free(mine);
	free(theirs);
}

/* jws_parse reads a plain envelope without the JSON parser (jws.c): the same text with an
 * empty unprotected header, which only the general path takes, must give the same JWS.
 * For small envelopes without escapes or a header of their own, where the extra member
 * changes nothing else. */
static void check_general_path(const uint8_t *data, size_t size, const struct jws *j)
{
	static const char header[] = "\"header\":{},";
	const uint8_t *brace = memchr(data, '{', size);
	size_t values = 0, at;
	char err[256], *text;
	struct jws again;

	if (!brace || memchr(data, '\\', size) || memmem(data, size, "header", 6))
		return;
	for (size_t i = 0; i < size; i++)
		values += data[i] == '{' || data[i] == '[' || data[i] == ',';
	if (values > 32)
		return;
	at = (size_t)(brace - data) + 1;
	text = malloc(size + sizeof(header));
	if (!text)
		abort();
	memcpy(text, data, at);
	memcpy(text + at, header, sizeof(header) - 1);
	memcpy(text + at + sizeof(header) - 1, data + at, size - at);
	if (jws_parse(&again, text, size + sizeof(header) - 1, 0, err, sizeof(err)) < 0 ||
	    again.payload_len != j->payload_len ||
	    memcmp(again.payload, j->payload, j->payload_len) != 0 ||
	    again.signing_input_len != j->signing_input_len ||
	    strcmp(again.signing_input, j->signing_input) != 0 || strcmp(again.kid, j->kid) != 0 ||
	    memcmp(again.signature, j->signature, sizeof(j->signature)) != 0)
		abort();
	jws_release(&again);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	struct jws j;
	struct jwk k;

	check_base64url(data, size);
	memset(err, 0x7f, sizeof(err));
	if (jws_parse(&j, (const char *)data, size, 0, err, sizeof(err)) == 0) {
		check_accepted(&j, size);
		check_general_path(data, size, &j);
		jws_release(&j);
	} else if (err[0] == 0x7f || !memchr(err, '\0', sizeof(err))) {
		abort(); /* every failure leaves a message */
	}
	if (jwk_parse(&k, (const char *)data, size, err, sizeof(err)) == 0)
		jwk_release(&k);
	return 0;
}
