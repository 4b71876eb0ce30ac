/* County-signed outbox items: see outbox.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/datetime.h"
#include "common/jwk.h"
#include "common/jws.h"
#include "outbox.h"
#include "report.h"
#include "store.h"
#include "common/banned.h"

static int put_text_or_null(cJSON *o, const char *name, const char *date)
{
	return (date && date[0] ? cJSON_AddStringToObject(o, name, date)
	                        : cJSON_AddNullToObject(o, name))
	               ? 0
	               : -ENOMEM;
}

/* One school of the roster payload. */
static int add_roster_school(void *data, const struct store_school *s)
{
	cJSON *schools = data, *o, *key;
	struct jwk pub;
	struct date closed;
	char *jwk_text = NULL, last_open[11] = "";
	int r;

	o = cJSON_CreateObject();
	if (!o)
		return -ENOMEM;
	cJSON_AddItemToArray(schools, o);
	if (s->closed_from[0]) {
		if (datetime_parse_date(s->closed_from, strlen(s->closed_from), &closed) < 0)
			return -EINVAL;
		date_from_days(date_to_days(&closed) - 1, &closed);
		date_format(&closed, last_open);
	}
	if (!cJSON_AddStringToObject(o, "school_id", s->school_id) ||
	    !cJSON_AddStringToObject(o, "name", s->name) ||
	    put_text_or_null(o, "type", s->type) < 0 ||
	    put_text_or_null(o, "opened", s->opened_on) < 0 ||
	    put_text_or_null(o, "closed", last_open) < 0)
		return -ENOMEM;
	memset(&pub, 0, sizeof(pub));
	memcpy(pub.public_key, s->public_key, sizeof(pub.public_key));
	snprintf(pub.kid, sizeof(pub.kid), "%s", s->school_id);
	r = jwk_serialize(&pub, 0, &jwk_text);
	if (r < 0)
		return r;
	key = cJSON_Parse(jwk_text);
	jwk_text_free(jwk_text);
	if (!key)
		return -ENOMEM;
	cJSON_AddItemToObject(o, "key", key);
	return 0;
}

static int sign_json(const struct jwk *key, const char *county_id, const cJSON *payload, char **ret,
                     char *err, size_t errlen)
{
	char *text = cJSON_PrintUnformatted(payload);
	int r;

	if (!text) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = jws_sign(key, county_id, text, strlen(text), ret, NULL, err, errlen);
	free(text);
	return r;
}

int outbox_add_roster(struct store *store, const struct jwk *key, const char *county_id,
                      int64_t now_ms, int offset_min, long long placeholder, long long *ret_version,
                      char *err, size_t errlen)
{
	cJSON *root = cJSON_CreateObject(), *schools;
	char at[DATETIME_RFC3339_MAX], ref[32], *jws = NULL;
	long long version = 0;
	int r = -ENOMEM;

	datetime_format_rfc3339(now_ms, offset_min, at);
	if (!root || !cJSON_AddStringToObject(root, "type", "roster") ||
	    !cJSON_AddStringToObject(root, "county_id", county_id)) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	r = store_counter_next(store, "roster_version", &version);
	if (r < 0) {
		snprintf(err, errlen, "cannot number the roster: %s", store_errmsg(store));
		goto out;
	}
	schools = cJSON_CreateArray();
	if (!cJSON_AddNumberToObject(root, "version", (double)version) ||
	    !cJSON_AddStringToObject(root, "issued_at", at) || !schools) {
		cJSON_Delete(schools);
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	cJSON_AddItemToObject(root, "schools", schools);
	r = store_school_list(store, add_roster_school, schools);
	if (r < 0) {
		snprintf(err, errlen, "cannot read the roster: %s",
		         r == -ENOMEM ? "out of memory" : store_errmsg(store));
		goto out;
	}
	r = sign_json(key, county_id, root, &jws, err, errlen);
	if (r < 0)
		goto out;
	snprintf(ref, sizeof(ref), "%lld", version);
	if (placeholder > 0)
		r = store_outbox_fill(store, placeholder, ref, jws);
	else
		r = store_outbox_add(store, "roster", ref, jws, now_ms);
	if (r < 0) {
		snprintf(err, errlen, "cannot queue the roster: %s", store_errmsg(store));
		goto out;
	}
	if (ret_version)
		*ret_version = version;
out:
	free(jws);
	cJSON_Delete(root);
	return r;
}

int outbox_rollup_sign(const struct report *report, struct store *store, const struct jwk *key,
                       const char *county_id, int64_t now_ms, int offset_min, char **ret_jws,
                       char *err, size_t errlen)
{
	cJSON *payload = NULL;
	int64_t computed_ms;
	int r;

	r = store_rollup_stamp(store, report->form, report->period, now_ms, &computed_ms);
	if (r < 0) {
		snprintf(err, errlen, "cannot stamp the roll-up: %s", store_errmsg(store));
		return r;
	}
	r = report_rollup_json(report, county_id, computed_ms, offset_min, &payload);
	if (r < 0) {
		snprintf(err, errlen, "out of memory");
		return r;
	}
	r = sign_json(key, county_id, payload, ret_jws, err, errlen);
	cJSON_Delete(payload);
	return r;
}

int outbox_rollup_make(const struct report_source *src, struct store *store, const struct jwk *key,
                       const char *county_id, const char *form, const char *period, int64_t now_ms,
                       int offset_min, char **ret_jws, char *err, size_t errlen)
{
	struct report report;
	int r;

	r = report_compute(src, store, form, period, &report, err, errlen);
	if (r < 0)
		return r;
	r = outbox_rollup_sign(&report, store, key, county_id, now_ms, offset_min, ret_jws, err,
	                       errlen);
	report_release(&report);
	return r;
}

int outbox_add_rollup(const struct report_source *src, struct store *store, const struct jwk *key,
                      const char *county_id, const char *form, const char *period, int64_t now_ms,
                      int offset_min, char *err, size_t errlen)
{
	char *jws = NULL;
	int r;

	r = outbox_rollup_make(src, store, key, county_id, form, period, now_ms, offset_min, &jws,
	                       err, errlen);
	if (r < 0)
		return r;
	r = store_rollup_mark(store, form, period, jws, now_ms);
	if (r < 0)
		snprintf(err, errlen, "cannot queue the roll-up: %s", store_errmsg(store));
	free(jws);
	return r;
}
