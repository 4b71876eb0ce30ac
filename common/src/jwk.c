/* Ed25519 JSON Web Keys: see jwk.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "common/json.h"
#include "common/errmsg.h"
#include "common/fileio.h"
#include "common/jwk.h"
#include "common/banned.h"

#define JWK_DEPTH_MAX 8 /* a JWK is a flat object; x5c and key_ops nest one level more */
#define B64URL_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define B64URL_32_SIZE 44 /* 43 characters for 32 bytes, and the NUL */

int jwk_kid_valid(const char *kid)
{
	size_t n = 0;

	for (; kid[n]; n++) {
		char c = kid[n];

		if (n >= JWK_KID_MAX)
			return 0;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == ':' || c == '-'))
			return 0;
	}
	return n > 0;
}

static int set_kid(struct jwk *k, const char *kid, char *err, size_t errlen)
{
	char q[ERRMSG_QUOTE_SIZE];

	if (!kid || !kid[0]) {
		k->kid[0] = '\0';
		return 0;
	}
	if (!jwk_kid_valid(kid))
		return errmsg_set(err, errlen, -EINVAL, "kid \"%s\" is not " JWK_KID_RULE,
		                  errmsg_quote(kid, q));
	memcpy(k->kid, kid, strlen(kid) + 1);
	return 0;
}

static int init_sodium(char *err, size_t errlen)
{
	if (sodium_init() < 0)
		return errmsg_set(err, errlen, -EIO, "libsodium failed to initialize");
	return 0;
}

int jwk_generate(struct jwk *ret, const char *kid, char *err, size_t errlen)
{
	struct jwk k;
	int r;

	r = init_sodium(err, errlen);
	if (r < 0)
		return r;
	memset(&k, 0, sizeof(k));
	r = set_kid(&k, kid, err, errlen);
	if (r < 0)
		return r;
	crypto_sign_keypair(k.public_key, k.secret_key);
	k.has_private = 1;
	*ret = k;
	sodium_memzero(&k, sizeof(k));
	return 0;
}

/* Decodes strict unpadded base64url of exactly n bytes (libsodium refuses padding,
 * whitespace, other alphabets and non-zero trailing bits). */
static int b64url_decode_exact(const char *s, unsigned char *out, size_t n)
{
	size_t got = 0;

	if (sodium_base642bin(out, n, s, strlen(s), NULL, &got, NULL, B64URL_VARIANT) != 0 ||
	    got != n)
		return -EINVAL;
	return 0;
}

/* The string member name of obj: 0 and *ret (NULL when absent), or -EINVAL. */
static int get_string(const cJSON *obj, const char *name, const char **ret, char *err,
                      size_t errlen)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);

	*ret = NULL;
	if (!item)
		return 0;
	if (!cJSON_IsString(item))
		return errmsg_set(err, errlen, -EINVAL, "JWK member \"%s\" is not a string", name);
	*ret = item->valuestring;
	return 0;
}

/* Everything but "d", which the caller handles so it can wipe it. */
static int parse_public(struct jwk *k, const cJSON *json, char *err, size_t errlen)
{
	const char *kty, *crv, *x, *use, *alg, *kid;
	char q[ERRMSG_QUOTE_SIZE];
	int r;

	if ((r = get_string(json, "kty", &kty, err, errlen)) < 0 ||
	    (r = get_string(json, "crv", &crv, err, errlen)) < 0 ||
	    (r = get_string(json, "x", &x, err, errlen)) < 0 ||
	    (r = get_string(json, "use", &use, err, errlen)) < 0 ||
	    (r = get_string(json, "alg", &alg, err, errlen)) < 0 ||
	    (r = get_string(json, "kid", &kid, err, errlen)) < 0)
		return r;
	if (!kty)
		return errmsg_set(err, errlen, -EINVAL, "JWK has no \"kty\"");
	if (strcmp(kty, "OKP") != 0)
		return errmsg_set(err, errlen, -EINVAL,
		                  "JWK kty \"%s\" is not supported, only \"OKP\" (Ed25519)",
		                  errmsg_quote(kty, q));
	if (!crv)
		return errmsg_set(err, errlen, -EINVAL, "JWK has no \"crv\"");
	if (strcmp(crv, "Ed25519") != 0)
		return errmsg_set(err, errlen, -EINVAL,
		                  "JWK crv \"%s\" is not supported, only \"Ed25519\"",
		                  errmsg_quote(crv, q));
	if (!x)
		return errmsg_set(err, errlen, -EINVAL, "JWK has no \"x\"");
	if (b64url_decode_exact(x, k->public_key, sizeof(k->public_key)) < 0)
		return errmsg_set(err, errlen, -EINVAL,
		                  "JWK \"x\" is not unpadded base64url of 32 bytes");
	if (!crypto_core_ed25519_is_valid_point(k->public_key))
		return errmsg_set(err, errlen, -EINVAL,
		                  "JWK \"x\" is not a valid Ed25519 public key");
	if (use && strcmp(use, "sig") != 0)
		return errmsg_set(err, errlen, -EINVAL, "JWK use \"%s\" is not \"sig\"",
		                  errmsg_quote(use, q));
	if (alg && strcmp(alg, "EdDSA") != 0)
		return errmsg_set(err, errlen, -EINVAL, "JWK alg \"%s\" is not \"EdDSA\"",
		                  errmsg_quote(alg, q));
	if (kid && !kid[0]) /* set_kid takes "" for "no kid"; in a file it is an error */
		return errmsg_set(err, errlen, -EINVAL, "kid \"\" is not " JWK_KID_RULE);
	return set_kid(k, kid, err, errlen);
}

int jwk_parse(struct jwk *ret, const char *text, size_t len, char *err, size_t errlen)
{
	unsigned char seed[crypto_sign_SEEDBYTES], derived[crypto_sign_PUBLICKEYBYTES];
	cJSON *json = NULL, *d = NULL;
	char msg[200];
	struct jwk k;
	int r;

	memset(&k, 0, sizeof(k));
	if (len > JWK_TEXT_MAX)
		return errmsg_set(err, errlen, -EMSGSIZE,
		                  "JWK of %zu bytes is larger than the limit of %d", len,
		                  JWK_TEXT_MAX);
	r = init_sodium(err, errlen);
	if (r < 0)
		return r;
	r = json_parse_untrusted(text, len, JWK_DEPTH_MAX, &json, msg, sizeof(msg));
	if (r < 0) {
		r = errmsg_set(err, errlen, r == -ENOMEM ? -ENOMEM : -EINVAL,
		               "JWK is not valid JSON: %s", msg);
		goto fail;
	}
	if (!cJSON_IsObject(json)) {
		r = errmsg_set(err, errlen, -EINVAL, "JWK is not a JSON object");
		goto fail;
	}
	d = cJSON_GetObjectItemCaseSensitive(json, "d");
	r = parse_public(&k, json, err, errlen);
	if (r < 0)
		goto fail;
	if (d) {
		if (!cJSON_IsString(d)) {
			r = errmsg_set(err, errlen, -EINVAL, "JWK member \"d\" is not a string");
			goto fail;
		}
		if (b64url_decode_exact(d->valuestring, seed, sizeof(seed)) < 0) {
			r = errmsg_set(err, errlen, -EINVAL,
			               "JWK \"d\" is not unpadded base64url of 32 bytes");
			goto fail;
		}
		crypto_sign_seed_keypair(derived, k.secret_key, seed);
		if (sodium_memcmp(derived, k.public_key, sizeof(derived)) != 0) {
			r = errmsg_set(
			        err, errlen, -EINVAL,
			        "JWK \"x\" does not match the public key derived from \"d\"");
			goto fail;
		}
		k.has_private = 1;
	}
	*ret = k;
	r = 0;
fail:
	if (cJSON_IsString(d))
		sodium_memzero(d->valuestring, strlen(d->valuestring));
	cJSON_Delete(json);
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(&k, sizeof(k));
	return r;
}

int jwk_serialize(const struct jwk *k, int with_private, char **ret_text)
{
	char x[B64URL_32_SIZE], d[B64URL_32_SIZE], text[256];
	size_t n;
	char *p;

	if (with_private && !k->has_private)
		return -EINVAL;
	if (!memchr(k->kid, '\0', sizeof(k->kid)) || (k->kid[0] && !jwk_kid_valid(k->kid)))
		return -EINVAL;
	sodium_bin2base64(x, sizeof(x), k->public_key, 32, B64URL_VARIANT);
	n = (size_t)snprintf(text, sizeof(text),
	                     "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"", x);
	if (with_private) {
		/* the seed is the first half of libsodium's secret key */
		sodium_bin2base64(d, sizeof(d), k->secret_key, 32, B64URL_VARIANT);
		n += (size_t)snprintf(text + n, sizeof(text) - n, ",\"d\":\"%s\"", d);
		sodium_memzero(d, sizeof(d));
	}
	if (k->kid[0])
		n += (size_t)snprintf(text + n, sizeof(text) - n, ",\"kid\":\"%s\"", k->kid);
	snprintf(text + n, sizeof(text) - n, "}");
	p = strdup(text);
	sodium_memzero(text, sizeof(text));
	if (!p)
		return -ENOMEM;
	*ret_text = p;
	return 0;
}

void jwk_text_free(char *text)
{
	if (!text)
		return;
	sodium_memzero(text, strlen(text));
	free(text);
}

int jwk_thumbprint(const struct jwk *k, char ret[static JWK_THUMBPRINT_SIZE])
{
	unsigned char hash[crypto_hash_sha256_BYTES];
	char x[B64URL_32_SIZE], members[128];
	int n;

	if (sodium_init() < 0)
		return -EIO;
	sodium_bin2base64(x, sizeof(x), k->public_key, 32, B64URL_VARIANT);
	/* RFC 7638 section 3.2: required members only, sorted, no whitespace */
	n = snprintf(members, sizeof(members), "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}",
	             x);
	crypto_hash_sha256(hash, (const unsigned char *)members, (unsigned long long)n);
	sodium_bin2base64(ret, JWK_THUMBPRINT_SIZE, hash, sizeof(hash), B64URL_VARIANT);
	return 0;
}

int jwk_load(struct jwk *ret, const char *path, char *err, size_t errlen)
{
	char text[JWK_TEXT_MAX + 1], msg[256];
	size_t len = 0;
	struct stat st;
	struct jwk k;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return errmsg_set(err, errlen, -errno, "cannot open key file '%s': %s", path,
		                  strerror(errno));
	if (fstat(fd, &st) < 0) {
		r = errmsg_set(err, errlen, -errno, "cannot stat key file '%s': %s", path,
		               strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		r = errmsg_set(err, errlen, -EINVAL, "key file '%s' is not a regular file", path);
		goto fail;
	}
	/* one byte more than allowed tells a file at the limit from one past it */
	while (len < sizeof(text)) {
		ssize_t n = read(fd, text + len, sizeof(text) - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = errmsg_set(err, errlen, -errno, "cannot read key file '%s': %s", path,
			               strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	r = jwk_parse(&k, text, len, msg, sizeof(msg));
	if (r < 0) {
		r = errmsg_set(err, errlen, r, "key file '%s': %s", path, msg);
		goto fail;
	}
	if (k.has_private && (st.st_mode & 077)) {
		sodium_memzero(&k, sizeof(k));
		r = errmsg_set(err, errlen, -EPERM,
		               "refusing private key file '%s': its mode %04o lets group or others "
		               "access it (chmod 600 it)",
		               path, (unsigned)(st.st_mode & 07777));
		goto fail;
	}
	*ret = k;
	sodium_memzero(&k, sizeof(k));
	r = 0;
fail:
	sodium_memzero(text, len);
	close(fd);
	return r;
}

/* Negative errno of the step that just failed, with a message. */
static int save_fail(char *err, size_t errlen, const char *path, const char *step)
{
	int e = errno;

	return errmsg_set(err, errlen, -e, "cannot save key file '%s': %s failed: %s", path, step,
	                  strerror(e));
}

int jwk_save(const struct jwk *k, int with_private, const char *path, char *err, size_t errlen)
{
	static const char suffix[] = ".tmp-XXXXXX";
	char *text = NULL, *tmp = NULL;
	size_t n = strlen(path);
	int fd = -1, r;

	r = jwk_serialize(k, with_private, &text);
	if (r < 0)
		return errmsg_set(err, errlen, r, "cannot serialize key for '%s'%s", path,
		                  r == -EINVAL ? ": no private key or an invalid kid" : "");
	if (n == 0 || path[n - 1] == '/') {
		r = errmsg_set(err, errlen, -EINVAL, "key file name '%s' names a folder", path);
		goto fail;
	}
	tmp = malloc(n + sizeof(suffix));
	if (!tmp) {
		r = errmsg_set(err, errlen, -ENOMEM, "out of memory");
		goto fail;
	}
	memcpy(tmp, path, n);
	memcpy(tmp + n, suffix, sizeof(suffix));
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		r = save_fail(err, errlen, path, "creating a temporary file");
		free(tmp);
		tmp = NULL;
		goto fail;
	}
	/* explicit mode: the umask must not make a public key unreadable */
	if (fchmod(fd, with_private ? 0600 : 0644) < 0) {
		r = save_fail(err, errlen, path, "chmod");
		goto fail;
	}
	r = fileio_write_all(fd, text, strlen(text));
	if (r == 0)
		r = fileio_write_all(fd, "\n", 1);
	if (r < 0) {
		errno = -r;
		r = save_fail(err, errlen, path, "write");
		goto fail;
	}
	if (fsync(fd) < 0) {
		r = save_fail(err, errlen, path, "fsync");
		goto fail;
	}
	r = close(fd);
	fd = -1;
	if (r < 0) {
		r = save_fail(err, errlen, path, "close");
		goto fail;
	}
	if (rename(tmp, path) < 0) {
		r = save_fail(err, errlen, path, "rename");
		goto fail;
	}
	free(tmp);
	tmp = NULL;
	r = fileio_fsync_parent(path);
	if (r < 0)
		r = errmsg_set(err, errlen, r,
		               "wrote key file '%s' but cannot fsync its folder: %s", path,
		               strerror(-r));
fail:
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	jwk_text_free(text);
	return r;
}

void jwk_release(struct jwk *k)
{
	sodium_memzero(k, sizeof(*k));
}
