/* A (form, period)'s figures and roll-up: see report.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/calendar.h"
#include "common/datetime.h"
#include "common/form.h"
#include "common/json.h"
#include "common/rollup.h"
#include "common/schema.h"
#include "report.h"
#include "store.h"
#include "common/banned.h"

#define PATH_LEN 4096
#define SCHOOLS_MAX 1000000 /* a roster is a county's schools: hundreds */

int report_source_load(const char *schemas_dir, struct report_source *ret, char *err, size_t errlen)
{
	struct report_source src;
	char path[PATH_LEN], why[512] = "";
	int r;

	memset(&src, 0, sizeof(src));
	snprintf(path, sizeof(path), "%s/forms", schemas_dir);
	r = form_set_load_dir(path, &src.forms, err, errlen);
	if (r < 0)
		goto fail;
	snprintf(path, sizeof(path), "%s/campaigns", schemas_dir);
	r = calendar_load_dir(path, &src.calendar, err, errlen);
	if (r < 0)
		goto fail;
	src.plans = calloc(src.forms->count ? src.forms->count : 1, sizeof(*src.plans));
	if (!src.plans) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < src.forms->count; i++) {
		const struct form *f = &src.forms->forms[i];

		r = rollup_plan_compile(schema_root(f->schema), why, sizeof(why), &src.plans[i]);
		if (r < 0) {
			snprintf(err, errlen, "form \"%s\": %s", f->id, why);
			goto fail;
		}
	}
	*ret = src;
	return 0;
fail:
	report_source_release(&src);
	return r;
}

void report_source_release(struct report_source *src)
{
	if (src->plans && src->forms)
		for (size_t i = 0; i < src->forms->count; i++)
			rollup_plan_free(src->plans[i]);
	free(src->plans);
	form_set_free(src->forms);
	calendar_free(src->calendar);
	memset(src, 0, sizeof(*src));
}

/* What report_compute gathers while reading the store. */
struct gather {
	struct report *r;
	struct rollup rollup;
	size_t alloc;            /* room in r->schools */
	const char *prev_school; /* phase and monthly forms: one return per school */
	char prev[11];
	char *err;
	size_t errlen;
	int failed; /* an error with a message in err */
};

static int add_school(void *data, const struct store_school *school)
{
	struct gather *g = data;
	struct report *r = g->r;
	struct report_school *s, *grown;
	int open;

	if (r->count >= SCHOOLS_MAX)
		return -E2BIG;
	if (r->count == g->alloc) {
		size_t alloc = g->alloc ? g->alloc * 2 : 64;

		grown = realloc(r->schools, alloc * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		r->schools = grown;
		g->alloc = alloc;
	}
	s = &r->schools[r->count++];
	memset(s, 0, sizeof(*s));
	snprintf(s->school_id, sizeof(s->school_id), "%s", school->school_id);
	snprintf(s->name, sizeof(s->name), "%s", school->name);
	if (r->required && r->type != CALENDAR_PERIOD_EVENT) {
		char start[11], end[11];

		date_format(&r->start, start);
		date_format(&r->end, end);
		/* open at least one day: opened on or before the last day, and the first
		 * closed day after the first day */
		open = (!school->opened_on[0] || strcmp(school->opened_on, end) <= 0) &&
		       (!school->closed_from[0] || strcmp(school->closed_from, start) > 0);
		s->expected = open;
	}
	return 0;
}

static int compare_school(const void *key, const void *elem)
{
	return strcmp(key, ((const struct report_school *)elem)->school_id);
}

static int add_return(void *data, const struct store_return *ret)
{
	struct gather *g = data;
	struct report *r = g->r;
	struct report_school *s;
	const cJSON *payload_data;
	cJSON *payload = NULL, *item;
	char why[256] = "";
	int rc;

	if (r->type != CALENDAR_PERIOD_EVENT) {
		/* the first row of each school is its latest received return */
		if (g->prev_school && strcmp(g->prev, ret->school_id) == 0)
			return 0;
		snprintf(g->prev, sizeof(g->prev), "%s", ret->school_id);
		g->prev_school = g->prev;
	}
	s = bsearch(ret->school_id, r->schools, r->count, sizeof(*r->schools), compare_school);
	if (!s) /* cannot happen: a submission's school is in the roster (foreign key) */
		return 0;
	rc = json_parse_untrusted(ret->payload, ret->payload_len, JSON_MAX_DEPTH, &payload, why,
	                          sizeof(why));
	if (rc < 0) {
		snprintf(g->err, g->errlen, "return \"%s\": %s", ret->submission_id, why);
		g->failed = 1;
		return rc == -ENOMEM ? rc : -EDOM;
	}
	payload_data = cJSON_GetObjectItemCaseSensitive(payload, "data");
	rc = rollup_add(&g->rollup, payload_data);
	cJSON_Delete(payload);
	if (rc < 0) {
		snprintf(g->err, g->errlen, "return \"%s\" does not fit the roll-up of \"%s\": %s",
		         ret->submission_id, r->form, strerror(-rc));
		g->failed = 1;
		return rc == -ENOMEM ? rc : -EDOM;
	}
	item = cJSON_CreateObject();
	if (!item)
		return -ENOMEM;
	cJSON_AddItemToArray(r->submissions, item);
	if (!cJSON_AddStringToObject(item, "submission_id", ret->submission_id) ||
	    !cJSON_AddStringToObject(item, "sha256", ret->sha256))
		return -ENOMEM;
	r->returns++;
	if (r->type == CALENDAR_PERIOD_EVENT) {
		s->received = 1;
		s->events++;
		s->events_on_time += ret->on_time == 1;
		if (!s->first_ms || ret->received_ms < s->first_ms)
			s->first_ms = ret->received_ms;
		return 0;
	}
	s->received = 1;
	s->first_ms = ret->first_ms;
	s->latest_ms = ret->received_ms;
	s->on_time = r->has_due && ret->first_ms < r->deadline_ms;
	return 0;
}

static const struct rollup_plan *plan_of(const struct report_source *src, const char *form)
{
	for (size_t i = 0; i < src->forms->count; i++)
		if (strcmp(src->forms->forms[i].id, form) == 0)
			return src->plans[i];
	return NULL;
}

int report_compute(const struct report_source *src, struct store *store, const char *form,
                   const char *period, struct report *ret, char *err, size_t errlen)
{
	const struct rollup_plan *plan = plan_of(src, form);
	struct report r;
	struct gather g;
	int rc;

	memset(&r, 0, sizeof(r));
	memset(&g, 0, sizeof(g));
	g.r = &r;
	g.err = err;
	g.errlen = errlen;
	if (!plan || calendar_period_type(src->calendar, form, &r.type) < 0) {
		snprintf(err, errlen, "unknown form \"%s\"", form);
		return -ENOENT;
	}
	if (strlen(form) >= sizeof(r.form) || strlen(period) >= sizeof(r.period) ||
	    calendar_period_dates(src->calendar, form, period, &r.start, &r.end) < 0) {
		snprintf(err, errlen, "\"%s\" is not a period of form \"%s\"", period, form);
		return -EINVAL;
	}
	snprintf(r.form, sizeof(r.form), "%s", form);
	snprintf(r.period, sizeof(r.period), "%s", period);
	rc = calendar_period_required(src->calendar, form, period);
	r.required = rc > 0;
	if (r.type != CALENDAR_PERIOD_EVENT &&
	    calendar_due_date(src->calendar, form, period, &r.due) == 0 &&
	    calendar_deadline_ms(src->calendar, form, period, &r.deadline_ms) == 0)
		r.has_due = 1;

	rc = rollup_init(&g.rollup, plan);
	if (rc < 0)
		return rc;
	r.submissions = cJSON_CreateArray();
	if (!r.submissions) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = store_approved(store, form, period);
	if (rc < 0)
		goto store_fail;
	r.approved = rc;
	rc = store_school_list(store, add_school, &g);
	if (rc < 0)
		goto store_fail;
	rc = store_current_returns(store, form, period, add_return, &g);
	if (rc < 0)
		goto store_fail;
	rc = rollup_to_json(&g.rollup, &r.rollup);
	if (rc < 0)
		goto fail;

	r.expected = r.required && r.type != CALENDAR_PERIOD_EVENT ? 0 : -1;
	for (size_t i = 0; i < r.count; i++) {
		const struct report_school *s = &r.schools[i];

		if (r.type == CALENDAR_PERIOD_EVENT) {
			r.received += (long long)s->events;
			r.on_time += (long long)s->events_on_time;
			continue;
		}
		if (r.expected >= 0) {
			if (!s->expected)
				continue;
			r.expected++;
		}
		r.received += s->received;
		r.on_time += s->received && s->on_time;
	}
	rollup_release(&g.rollup);
	*ret = r;
	return 0;
store_fail:
	if (!g.failed)
		snprintf(err, errlen, "cannot read the store: %s", store_errmsg(store));
fail:
	if (rc == -ENOMEM && !g.failed)
		snprintf(err, errlen, "out of memory");
	rollup_release(&g.rollup);
	report_release(&r);
	return rc;
}

void report_release(struct report *r)
{
	free(r->schools);
	cJSON_Delete(r->rollup);
	cJSON_Delete(r->submissions);
	memset(r, 0, sizeof(*r));
}

const char *report_status(const struct report *r)
{
	return r->approved ? "final" : "provisional";
}

static cJSON *count_or_null(long long n)
{
	return n < 0 ? cJSON_CreateNull() : cJSON_CreateNumber((double)n);
}

static cJSON *fraction_or_null(long long part, long long whole)
{
	return whole <= 0 ? cJSON_CreateNull() : cJSON_CreateNumber((double)part / (double)whole);
}

/* Adds item to o under name; 0, or -ENOMEM (item NULL). */
static int put(cJSON *o, const char *name, cJSON *item)
{
	if (!item)
		return -ENOMEM;
	cJSON_AddItemToObject(o, name, item);
	return 0;
}

static int put_date(cJSON *o, const char *name, const struct date *d)
{
	char text[11];

	date_format(d, text);
	return cJSON_AddStringToObject(o, name, text) ? 0 : -ENOMEM;
}

static const char *type_name(enum calendar_period_type t)
{
	return t == CALENDAR_PERIOD_PHASE     ? "phase"
	       : t == CALENDAR_PERIOD_MONTHLY ? "monthly"
	                                      : "event";
}

/* The school lists of the status document. */
static int school_lists(const struct report *r, int offset_min, cJSON *o)
{
	cJSON *late, *missing, *item;
	char at[DATETIME_RFC3339_MAX];

	if (r->type == CALENDAR_PERIOD_EVENT) {
		if (!cJSON_AddNullToObject(o, "late_schools") ||
		    !cJSON_AddNullToObject(o, "missing_schools"))
			return -ENOMEM;
		return 0;
	}
	late = cJSON_AddArrayToObject(o, "late_schools");
	missing = cJSON_AddArrayToObject(o, "missing_schools");
	if (!late || !missing)
		return -ENOMEM;
	for (size_t i = 0; i < r->count; i++) {
		const struct report_school *s = &r->schools[i];

		if (r->expected >= 0 && !s->expected)
			continue;
		if (s->received && s->on_time)
			continue;
		if (!s->received && r->expected < 0)
			continue; /* nobody is missing from an optional period */
		item = cJSON_CreateObject();
		if (!item)
			return -ENOMEM;
		cJSON_AddItemToArray(s->received ? late : missing, item);
		if (!cJSON_AddStringToObject(item, "school_id", s->school_id) ||
		    !cJSON_AddStringToObject(item, "name", s->name))
			return -ENOMEM;
		if (s->received) {
			datetime_format_rfc3339(s->first_ms, offset_min, at);
			if (!cJSON_AddStringToObject(item, "received_at", at))
				return -ENOMEM;
		}
	}
	return 0;
}

int report_status_json(const struct report *r, const char *county_id, int64_t now_ms,
                       int offset_min, struct cJSON **ret)
{
	cJSON *o = cJSON_CreateObject();
	char at[DATETIME_RFC3339_MAX];
	long long missing = r->expected >= 0 ? r->expected - r->received : -1;
	int rc = -ENOMEM;

	if (!o || !cJSON_AddStringToObject(o, "county_id", county_id) ||
	    !cJSON_AddStringToObject(o, "form", r->form) ||
	    !cJSON_AddStringToObject(o, "period", r->period) ||
	    !cJSON_AddStringToObject(o, "period_type", type_name(r->type)) ||
	    !cJSON_AddBoolToObject(o, "required", r->required) ||
	    put_date(o, "start", &r->start) < 0 || put_date(o, "end", &r->end) < 0)
		goto fail;
	if (r->has_due) {
		datetime_format_rfc3339(r->deadline_ms, offset_min, at);
		if (put_date(o, "due_date", &r->due) < 0 ||
		    !cJSON_AddStringToObject(o, "deadline", at))
			goto fail;
	} else if (!cJSON_AddNullToObject(o, "due_date") || !cJSON_AddNullToObject(o, "deadline")) {
		goto fail;
	}
	datetime_format_rfc3339(now_ms, offset_min, at);
	if (!cJSON_AddStringToObject(o, "status", report_status(r)) ||
	    !cJSON_AddStringToObject(o, "as_of", at) ||
	    put(o, "expected", count_or_null(r->expected)) < 0 ||
	    !cJSON_AddNumberToObject(o, "received", (double)r->received) ||
	    !cJSON_AddNumberToObject(o, "on_time", (double)r->on_time) ||
	    !cJSON_AddNumberToObject(o, "late", (double)(r->received - r->on_time)) ||
	    put(o, "missing", count_or_null(missing)) < 0 ||
	    put(o, "completeness", fraction_or_null(r->received, r->expected)) < 0 ||
	    put(o, "timeliness", fraction_or_null(r->on_time, r->expected)) < 0)
		goto fail;
	rc = school_lists(r, offset_min, o);
	if (rc < 0)
		goto fail;
	*ret = o;
	return 0;
fail:
	cJSON_Delete(o);
	return rc;
}

int report_rollup_json(const struct report *r, const char *county_id, int64_t computed_ms,
                       int offset_min, struct cJSON **ret)
{
	cJSON *o = cJSON_CreateObject(), *missing, *copy;
	char at[DATETIME_RFC3339_MAX];

	datetime_format_rfc3339(computed_ms, offset_min, at);
	if (!o || !cJSON_AddStringToObject(o, "type", "rollup") ||
	    !cJSON_AddStringToObject(o, "county_id", county_id) ||
	    !cJSON_AddStringToObject(o, "form", r->form) ||
	    !cJSON_AddStringToObject(o, "period", r->period) ||
	    !cJSON_AddStringToObject(o, "status", report_status(r)) ||
	    !cJSON_AddStringToObject(o, "computed_at", at) ||
	    put(o, "expected", count_or_null(r->expected)) < 0 ||
	    !cJSON_AddNumberToObject(o, "received", (double)r->received) ||
	    !cJSON_AddNumberToObject(o, "on_time", (double)r->on_time))
		goto fail;
	copy = cJSON_Duplicate(r->rollup, 1);
	if (put(o, "rollup", copy) < 0)
		goto fail;
	copy = cJSON_Duplicate(r->submissions, 1);
	if (put(o, "submissions", copy) < 0)
		goto fail;
	missing = cJSON_AddArrayToObject(o, "missing");
	if (!missing)
		goto fail;
	for (size_t i = 0; r->expected >= 0 && i < r->count; i++) {
		const struct report_school *s = &r->schools[i];

		if (s->expected && !s->received) {
			cJSON *id = cJSON_CreateString(s->school_id);

			if (!id)
				goto fail;
			cJSON_AddItemToArray(missing, id);
		}
	}
	*ret = o;
	return 0;
fail:
	cJSON_Delete(o);
	return -ENOMEM;
}
