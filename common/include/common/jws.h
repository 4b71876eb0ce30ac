/* JSON Web Signatures (RFC 7515) in flattened JSON serialization (section 7.2.2) with
 * alg "EdDSA" over Ed25519 (RFC 8037): the envelope of every submission and receipt
 * (DESIGN section 4). A JWS is checked in two steps, so the caller can find the key by
 * kid in between: jws_parse (the envelope, untrusted input) then jws_verify.
 *
 * jws_parse accepts exactly
 *   {"payload":"…","protected":"…","signature":"…"}   (members in any order)
 * plus an optional "header" object (the unprotected header) whose names do not appear
 * in the protected header. The JSON must be strict (common/json.h: no duplicate names at
 * any level, valid UTF-8, no "\u0000"). Base64url must be unpadded, without whitespace,
 * with zero trailing bits, in the URL-safe alphabet only (the one canonical spelling:
 * jws_base64url_decode). A plain envelope, the three members with base64url values and
 * nothing else, is read without the JSON parser, the same way. The protected header must
 * be a JSON object with "alg":"EdDSA" (exactly: "none", "HS256", "eddsa" … are refused)
 * and a string "kid" (see jwk_kid_valid); "crit" and "b64" are refused in either header
 * (we understand no extension), other names are ignored.
 * Limits: the whole text max_len bytes (JWS_TEXT_MAX_DEFAULT), the decoded protected
 * header JWS_PROTECTED_MAX bytes, nesting depth JWS_DEPTH_MAX, and JWS_VALUES_MAX
 * arrays, objects and commas in the envelope (so the unprotected header cannot make
 * the parser allocate millions of nodes).
 *
 * Errors: negative errno, and a message for people in err (may be NULL):
 *   -EMSGSIZE     text longer than max_len, or a JWS that would be (jws_sign)
 *   -EBADMSG      malformed envelope or header (400 at the hub)
 *   -EPERM        alg other than EdDSA
 *   -EKEYREJECTED signature does not verify, or kid does not match the key (401)
 *   -EINVAL       misuse by the caller (no private key, invalid kid)
 *   -ENOMEM, -EIO (libsodium failed to initialize)
 * Thread-safe: no state besides the caller's arguments. */
#ifndef COMMON_JWS_H
#define COMMON_JWS_H

#include <stddef.h>

#include "common/jwk.h"
#include "common/macro.h"

#define JWS_TEXT_MAX_DEFAULT (8u * 1024 * 1024) /* bytes of JWS text */
#define JWS_PROTECTED_MAX 4096                  /* bytes of decoded protected header */
#define JWS_DEPTH_MAX 8                         /* nesting of arrays and objects */
#define JWS_VALUES_MAX 256 /* '{', '[' and ',' outside strings in the envelope */
#define JWS_SIGNATURE_SIZE 64

/* A parsed JWS. Owns its buffers: jws_release frees them. */
struct jws {
	char *signing_input; /* BASE64URL(protected) "." BASE64URL(payload), NUL-terminated */
	size_t signing_input_len;
	unsigned char *payload; /* the payload bytes exactly as signed, then a NUL not counted */
	size_t payload_len;
	unsigned char signature[JWS_SIGNATURE_SIZE];
	char kid[JWK_KID_MAX + 1]; /* from the protected header */
};

/* An empty struct jws, safe to jws_release. */
void jws_init(struct jws *j);
/* Frees what j owns; j is then empty (as after jws_init). */
void jws_release(struct jws *j);

/* Checks the envelope of len bytes of text (no NUL needed) and decodes it into *ret,
 * written only on success; release it with jws_release. max_len 0 means
 * JWS_TEXT_MAX_DEFAULT; above JSON_MAX_TEXT (common/json.h) it is capped by that.
 * Does not check the signature: look the key up by ret->kid and call jws_verify before
 * trusting ret->payload. */
int jws_parse(struct jws *ret, const char *text, size_t len, size_t max_len, char *err,
              size_t errlen) WUR;

/* Checks j's signature with key's public key. -EKEYREJECTED when key has a kid that is
 * not j->kid, or when the signature does not verify. */
int jws_verify(const struct jws *j, const struct jwk *key, char *err, size_t errlen) WUR;

/* Decodes len characters of strict unpadded base64url (RFC 4648 section 5: the URL-safe
 * alphabet only, no padding, no whitespace, zero padding bits, so that every byte string
 * has exactly one spelling) into out, which has room for outmax bytes. 0 with *ret_len
 * the number of bytes; -EBADMSG when s is not strict base64url, -ENOBUFS when the bytes
 * would not fit (out is then untouched). On -EBADMSG out may hold garbage. Table-driven
 * and not constant-time: for public data such as the parts of a JWS, never for secrets. */
int jws_base64url_decode(const char *s, size_t len, unsigned char *out, size_t outmax,
                         size_t *ret_len) WUR;

/* Signs payload_len bytes with key (which needs its private part) and returns
 *   {"payload":"…","protected":"…","signature":"…"}
 * where the protected header is {"alg":"EdDSA","kid":"<kid>"}. kid must be valid
 * (jwk_kid_valid) and, when key has a kid, equal to it; kid NULL leaves it out
 * ({"alg":"EdDSA"}, as in RFC 8037 A.4), which jws_parse then refuses. -EMSGSIZE when
 * the result would exceed JWS_TEXT_MAX_DEFAULT. Caller frees *ret_text with free();
 * *ret_len (may be NULL) receives its length without the NUL. */
int jws_sign(const struct jwk *key, const char *kid, const void *payload, size_t payload_len,
             char **ret_text, size_t *ret_len, char *err, size_t errlen) WUR;

#endif
