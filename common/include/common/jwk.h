/* Ed25519 keys as JSON Web Keys (RFC 7517, RFC 8037 "OKP"), the form every school and
 * county hub keeps its key pair in (DESIGN section 3), readable by any JOSE library:
 *   public:  {"kty":"OKP","crv":"Ed25519","x":"<b64url 32 bytes>","kid":"2165000123"}
 *   private: the same plus "d", the 32-byte seed.
 * Parsing is strict: wrong kty/crv, bad base64url, wrong lengths, an x that is not a valid
 * Ed25519 point or does not match d, "use" other than "sig", "alg" other than "EdDSA",
 * a kid that fails jwk_kid_valid, duplicate members and text over JWK_TEXT_MAX bytes are
 * refused; other members are ignored (RFC 7517 section 4).
 * Saving is durable (temporary file, fsync, rename, fsync of the folder); a private key
 * file is created mode 0600 and loading one that group or others may access is refused.
 * Secrets are wiped from memory with sodium_memzero: call jwk_release on every struct jwk
 * that held a private key. Thread-safe: no state besides the caller's arguments. */
#ifndef COMMON_JWK_H
#define COMMON_JWK_H

#include <stddef.h>

#include "common/macro.h"

#define JWK_KID_MAX 64         /* bytes in a kid */
#define JWK_TEXT_MAX 8192      /* bytes of JWK text accepted by jwk_parse and jwk_load */
#define JWK_THUMBPRINT_SIZE 44 /* 43 base64url characters and the NUL */

struct jwk {
	unsigned char public_key[32];
	unsigned char secret_key[64]; /* libsodium layout: seed || public key */
	int has_private;
	char kid[JWK_KID_MAX + 1]; /* "" when the key has none */
};

/* A kid is 1..JWK_KID_MAX characters of A-Z a-z 0-9 . _ : - (a school or county code,
 * a thumbprint). Returns 1 when kid is one, else 0. JWK_KID_RULE says so in messages. */
#define JWK_KID_RULE "1 to 64 characters of A-Z a-z 0-9 . _ : -"
int jwk_kid_valid(const char *kid);

/* A new random key pair named kid (NULL or "" for none). -EINVAL with a message in err
 * for an invalid kid. */
int jwk_generate(struct jwk *ret, const char *kid, char *err, size_t errlen) WUR;

/* Parses len bytes of JWK text (no NUL needed). Returns 0, -EMSGSIZE (len over
 * JWK_TEXT_MAX), -EINVAL (not a valid Ed25519 JWK; err says why) or -ENOMEM.
 * ret is written only on success; jwk_release it when has_private is set. */
int jwk_parse(struct jwk *ret, const char *text, size_t len, char *err, size_t errlen) WUR;

/* The JWK text of k, members in the order kty, crv, x, d, kid, without a newline;
 * "d" only when with_private (-EINVAL if k has no private part). Caller frees *ret_text
 * with jwk_text_free, which wipes it first. */
int jwk_serialize(const struct jwk *k, int with_private, char **ret_text) WUR;
/* Wipes and frees text from jwk_serialize; accepts NULL. */
void jwk_text_free(char *text);

/* The RFC 7638 thumbprint: base64url of SHA-256 over {"crv":"Ed25519","kty":"OKP","x":"…"}.
 * 0, or -EIO when libsodium cannot initialize. */
int jwk_thumbprint(const struct jwk *k, char ret[static JWK_THUMBPRINT_SIZE]) WUR;

/* Reads and parses the JWK file at path. A file holding "d" is refused with -EPERM when
 * its mode lets group or others in (mode & 077). Other errors: negative errno of
 * open/read/fstat, -EINVAL for a file that is not regular, and those of jwk_parse.
 * err says what went wrong, naming path. */
int jwk_load(struct jwk *ret, const char *path, char *err, size_t errlen) WUR;

/* Writes the JWK text of k and a newline to path, replacing it atomically: a temporary
 * file in the same folder, fsync, rename, fsync of the folder. Mode 0600 when
 * with_private, else 0644. Negative errno with a message in err on failure; no temporary
 * file is left, and path is untouched unless only the final fsync of the folder failed. */
int jwk_save(const struct jwk *k, int with_private, const char *path, char *err, size_t errlen) WUR;

/* Wipes the whole struct (secret included); k is then all zero. */
void jwk_release(struct jwk *k);

#endif
