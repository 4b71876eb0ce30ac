/* libFuzzer target: jws_parse, jws_verify and jwk_parse on untrusted bytes. Besides "no
 * crash, no leak, no UB", it checks what jws.h promises of an accepted JWS: the payload
 * and signing input fit in the input, the kid is valid, and re-signing the payload gives
 * a JWS that parses back to the same bytes and verifies. */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	struct jws j;
	struct jwk k;

	memset(err, 0x7f, sizeof(err));
	if (jws_parse(&j, (const char *)data, size, 0, err, sizeof(err)) == 0) {
		check_accepted(&j, size);
		jws_release(&j);
	} else if (err[0] == 0x7f || !memchr(err, '\0', sizeof(err))) {
		abort(); /* every failure leaves a message */
	}
	if (jwk_parse(&k, (const char *)data, size, err, sizeof(err)) == 0)
		jwk_release(&k);
	return 0;
}
