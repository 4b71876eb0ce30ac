/* The county hub's receipt for a return (docs/PROTOCOL.md "The receipt"): a JWS signed
 * by the hub's key whose payload names the return and the SHA-256 of its payload bytes.
 * A return is "sent" only once its receipt verifies here. Thread-safe: no state. */
#ifndef SCHOOL_AGENT_RECEIPT_H
#define SCHOOL_AGENT_RECEIPT_H

#include <stddef.h>
#include <stdint.h>

#include "common/datetime.h"
#include "common/ids.h"
#include "common/macro.h"

struct jwk;

#define RECEIPT_TEXT_MAX (64u * 1024)

/* What the receipt must say: the return as it was sent (all borrowed). */
struct receipt_expect {
	const char *submission_id;
	const char *sha256; /* lowercase hex of the signed payload bytes */
	const char *school_id;
	const char *county_id;
	const char *form;
	const char *period;
};

struct receipt {
	char received_at[DATETIME_RFC3339_MAX]; /* as the hub wrote it */
	int64_t received_ms;
	int on_time; /* 1, 0, or -1 for null (the form has no deadline) */
};

/* Verifies len bytes of receipt text: a JWS whose kid is the county id, signed by
 * county_key, whose payload is strict JSON with "type": "receipt" and submission_id,
 * sha256, school_id, county_id, form and period equal to want, an RFC 3339
 * received_at and on_time true, false or null. Returns 0 and fills *ret, or -EBADMSG
 * (malformed), -EKEYREJECTED (bad signature or key), -EPROTO (it is a receipt, but for
 * something else) or -ENOMEM, with the reason in err. */
int receipt_verify(const char *text, size_t len, const struct jwk *county_key,
                   const struct receipt_expect *want, struct receipt *ret, char *err,
                   size_t errlen) WUR;

#endif
