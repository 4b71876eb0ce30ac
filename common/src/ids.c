/* UUIDv7 and SHA-256: see ids.h. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "common/clock.h"
#include "common/ids.h"
#include "common/banned.h"

#define UUID7_MAX_MS ((INT64_C(1) << 48) - 1)

static int is_hyphen_at(size_t i)
{
	return i == 8 || i == 13 || i == 18 || i == 23;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int ids_uuid7(const struct clock *c, char ret[static IDS_UUID_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	int64_t ms = clock_now_ms(c);
	unsigned char b[16];
	size_t o = 0;

	if (ms < 0 || ms > UUID7_MAX_MS)
		return -ERANGE;
	/* randombytes_buf works without it, but libsodium asks for it first; idempotent. */
	if (sodium_init() < 0)
		return -EIO;
	for (int i = 0; i < 6; i++)
		b[i] = (unsigned char)((uint64_t)ms >> (40 - 8 * i));
	randombytes_buf(b + 6, sizeof(b) - 6);
	b[6] = (unsigned char)(0x70 | (b[6] & 0x0f)); /* version 7 */
	b[8] = (unsigned char)(0x80 | (b[8] & 0x3f)); /* variant 0b10 */

	for (size_t i = 0; i < sizeof(b); i++) {
		if (is_hyphen_at(o))
			ret[o++] = '-';
		ret[o++] = digits[b[i] >> 4];
		ret[o++] = digits[b[i] & 0x0f];
	}
	ret[o] = '\0';
	return 0;
}

int ids_uuid_check(const char *s, size_t len)
{
	if (len != IDS_UUID_LEN)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (is_hyphen_at(i) ? s[i] != '-' : hex_value(s[i]) < 0)
			return -EINVAL;
	}
	return 0;
}

int ids_uuid7_time_ms(const char *s, size_t len, int64_t *ret_ms)
{
	int64_t ms = 0;

	if (ids_uuid_check(s, len) < 0)
		return -EINVAL;
	/* version: the first digit of the third group; variant: top bits of the fourth */
	if (s[14] != '7' || (hex_value(s[19]) & 0xc) != 0x8)
		return -EINVAL;
	/* 48 bits: the first 12 hex digits, around the hyphen at offset 8 */
	for (size_t i = 0; i < 13; i++) {
		if (i != 8)
			ms = ms << 4 | hex_value(s[i]);
	}
	*ret_ms = ms;
	return 0;
}

void ids_sha256_hex(const void *data, size_t len, char ret[static IDS_SHA256_HEX_LEN + 1])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	/* libsodium's SHA-256 has no CPU dispatch: it needs no sodium_init(). */
	crypto_hash_sha256(h, len ? data : (const void *)"", len);
	sodium_bin2hex(ret, IDS_SHA256_HEX_LEN + 1, h, sizeof(h));
}

void ids_sha256_base64url(const void *data, size_t len,
                          char ret[static IDS_SHA256_BASE64URL_LEN + 1])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, len ? data : (const void *)"", len);
	sodium_bin2base64(ret, IDS_SHA256_BASE64URL_LEN + 1, h, sizeof(h),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}
