/* Receipts: see receipt.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/jwk.h"
#include "common/jws.h"
#include "receipt.h"
#include "common/banned.h"

int receipt_make(const struct jwk *key, const struct receipt_fields *f, char **ret, size_t *ret_len,
                 char *err, size_t errlen)
{
	cJSON *root = cJSON_CreateObject();
	char *payload = NULL;
	int r = -ENOMEM;

	if (!root || !cJSON_AddStringToObject(root, "type", "receipt") ||
	    !cJSON_AddStringToObject(root, "submission_id", f->submission_id) ||
	    !cJSON_AddStringToObject(root, "school_id", f->school_id) ||
	    !cJSON_AddStringToObject(root, "county_id", f->county_id) ||
	    !cJSON_AddStringToObject(root, "form", f->form) ||
	    !cJSON_AddStringToObject(root, "period", f->period) ||
	    !cJSON_AddStringToObject(root, "sha256", f->sha256) ||
	    !cJSON_AddStringToObject(root, "received_at", f->received_at))
		goto out;
	if (!(f->on_time < 0 ? cJSON_AddNullToObject(root, "on_time")
	                     : cJSON_AddBoolToObject(root, "on_time", f->on_time)))
		goto out;
	payload = cJSON_PrintUnformatted(root);
	if (!payload)
		goto out;
	r = jws_sign(key, f->county_id, payload, strlen(payload), ret, ret_len, err, errlen);
out:
	free(payload);
	cJSON_Delete(root);
	return r;
}
