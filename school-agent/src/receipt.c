/* Receipt verification: see receipt.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "receipt.h"
#include "common/json.h"
#include "common/jwk.h"
#include "common/jws.h"
#include "common/banned.h"

#define RECEIPT_DEPTH 4

static int member_equals(const cJSON *payload, const char *name, const char *want, char *err,
                         size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(payload, name);

	if (!cJSON_IsString(v)) {
		snprintf(err, errlen, "the receipt has no string \"%s\"", name);
		return -EBADMSG;
	}
	if (strcmp(v->valuestring, want) != 0) {
		snprintf(err, errlen, "the receipt's %s is \"%.80s\", not \"%s\"", name,
		         v->valuestring, want);
		return -EPROTO;
	}
	return 0;
}

int receipt_verify(const char *text, size_t len, const struct jwk *county_key,
                   const struct receipt_expect *want, struct receipt *ret, char *err, size_t errlen)
{
	const struct {
		const char *name, *value;
	} fields[] = {
	        {"type", "receipt"},
	        {"submission_id", want->submission_id},
	        {"sha256", want->sha256},
	        {"school_id", want->school_id},
	        {"county_id", want->county_id},
	        {"form", want->form},
	        {"period", want->period},
	};
	struct receipt rc = {0};
	const cJSON *at, *on_time;
	cJSON *payload = NULL;
	struct jws jws;
	char why[256];
	int r;

	jws_init(&jws);
	r = jws_parse(&jws, text, len, RECEIPT_TEXT_MAX, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "the receipt is not a JWS: %s", why);
		r = r == -ENOMEM ? r : -EBADMSG;
		goto out;
	}
	if (strcmp(jws.kid, want->county_id) != 0) {
		snprintf(err, errlen, "the receipt is signed by \"%s\", not the county \"%s\"",
		         jws.kid, want->county_id);
		r = -EKEYREJECTED;
		goto out;
	}
	r = jws_verify(&jws, county_key, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen,
		         "the receipt's signature does not verify with the county's "
		         "key: %s",
		         why);
		r = r == -ENOMEM ? r : -EKEYREJECTED;
		goto out;
	}
	r = json_parse_untrusted((const char *)jws.payload, jws.payload_len, RECEIPT_DEPTH,
	                         &payload, why, sizeof(why));
	if (r < 0 || !cJSON_IsObject(payload)) {
		snprintf(err, errlen, "the receipt's payload is not a JSON object%s%s",
		         r < 0 ? ": " : "", r < 0 ? why : "");
		r = r == -ENOMEM ? r : -EBADMSG;
		goto out;
	}
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		r = member_equals(payload, fields[i].name, fields[i].value, err, errlen);
		if (r < 0)
			goto out;
	}
	at = cJSON_GetObjectItemCaseSensitive(payload, "received_at");
	if (!cJSON_IsString(at) || strlen(at->valuestring) >= sizeof(rc.received_at) ||
	    datetime_parse_rfc3339(at->valuestring, strlen(at->valuestring), &rc.received_ms,
	                           NULL) < 0) {
		snprintf(err, errlen, "the receipt's received_at is not an RFC 3339 time");
		r = -EBADMSG;
		goto out;
	}
	memcpy(rc.received_at, at->valuestring, strlen(at->valuestring) + 1);
	on_time = cJSON_GetObjectItemCaseSensitive(payload, "on_time");
	if (cJSON_IsTrue(on_time)) {
		rc.on_time = 1;
	} else if (cJSON_IsFalse(on_time)) {
		rc.on_time = 0;
	} else if (cJSON_IsNull(on_time)) {
		rc.on_time = -1;
	} else {
		snprintf(err, errlen, "the receipt's on_time is not true, false or null");
		r = -EBADMSG;
		goto out;
	}
	*ret = rc;
	r = 0;
out:
	cJSON_Delete(payload);
	jws_release(&jws);
	return r;
}
