/* The hub's receipt for an accepted return (docs/PROTOCOL.md): a JWS in flattened JSON,
 * protected header {"alg":"EdDSA","kid":"<county_id>"}, signed with the county key, over
 *   {"type":"receipt","submission_id":…,"school_id":…,"county_id":…,"form":…,
 *    "period":…,"sha256":…,"received_at":…,"on_time":true|false|null}
 * It is made once, when the upload is accepted, and stored with the submission: a resend
 * gets the same bytes. Thread-safe. */
#ifndef COUNTY_HUB_RECEIPT_H
#define COUNTY_HUB_RECEIPT_H

#include <stddef.h>

#include "common/macro.h"

struct jwk;

struct receipt_fields {
	const char *submission_id, *school_id, *county_id, *form, *period;
	const char *sha256;      /* hex SHA-256 of the payload bytes as signed */
	const char *received_at; /* RFC 3339, the hub's clock */
	int on_time;             /* 1, 0, or -1 for null (no deadline) */
};

/* Signs the receipt with key (kid county_id). Caller frees *ret with free(); *ret_len its
 * length. -ENOMEM, or jws_sign's errors with a message in err. */
int receipt_make(const struct jwk *key, const struct receipt_fields *f, char **ret, size_t *ret_len,
                 char *err, size_t errlen) WUR;

#endif
