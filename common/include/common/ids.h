/* Identifiers and digests: UUIDv7 submission ids (RFC 9562 section 5.7) and SHA-256
 * (FIPS 180-4) of stored bytes, with libsodium.
 * A UUIDv7 is 48 bits of Unix time in milliseconds (big-endian), version 7, variant
 * 0b10, and 74 random bits: ids made in different milliseconds sort by time as text,
 * ids made within one millisecond are unordered. Text is the canonical lowercase
 * 8-4-4-4-12 form. Thread-safe: no state besides the caller's arguments. */
#ifndef COMMON_IDS_H
#define COMMON_IDS_H

#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

struct clock;

#define IDS_UUID_LEN 36             /* characters of a UUID, without the NUL */
#define IDS_SHA256_HEX_LEN 64       /* lowercase hex of a SHA-256 */
#define IDS_SHA256_BASE64URL_LEN 43 /* base64url of a SHA-256, no padding (RFC 4648 §5) */

/* A new UUIDv7 stamped with clock_now_ms(c), written to ret with its NUL.
 * -ERANGE when the clock reads before 1970 or after the year 10889 (48 bits of ms),
 * -EIO when libsodium cannot be initialised. */
int ids_uuid7(const struct clock *c, char ret[static IDS_UUID_LEN + 1]) WUR;

/* 0 when the len bytes at s are a UUID in canonical text form: exactly 36 characters,
 * hyphens at offsets 8, 13, 18 and 23, lowercase hex digits elsewhere. Any version and
 * variant is accepted; uppercase hex, braces and "urn:uuid:" are not (RFC 9562 section 4
 * makes lowercase the form to emit, and one spelling per id keeps ids comparable as
 * bytes). -EINVAL otherwise. */
int ids_uuid_check(const char *s, size_t len) WUR;

/* The Unix time in milliseconds stamped in a UUIDv7 (checked as ids_uuid_check does, plus
 * version 7 and variant 0b10). -EINVAL for anything else. */
int ids_uuid7_time_ms(const char *s, size_t len, int64_t *ret_ms) WUR;

/* SHA-256 of the len bytes at data as 64 lowercase hex digits and a NUL. */
void ids_sha256_hex(const void *data, size_t len, char ret[static IDS_SHA256_HEX_LEN + 1]);
/* The same digest in base64url without padding: 43 characters and a NUL. */
void ids_sha256_base64url(const void *data, size_t len,
                          char ret[static IDS_SHA256_BASE64URL_LEN + 1]);

#endif
