/* A school's plan: see plan.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "model.h"
#include "plan.h"
#include "region.h"
#include "rng.h"
#include "common/buf.h"
#include "common/datetime.h"
#include "common/fileio.h"
#include "common/json.h"
#include "common/banned.h"

#define STREAM_SCHOOL 0x200000000ULL /* rng streams of schools: this + the school's code */
#define MINUTE_MS 60000LL
#define OFFICE_OPEN 510   /* 08:30, in minutes */
#define OFFICE_CLOSE 1050 /* 17:30 */
#define EXPIRY_MARGIN 4   /* days: a late return still arrives this long before the lock */

struct entry {
	int64_t at_ms;
	int seq;
	int corrects_seq; /* -1: none */
	char form[CALENDAR_NAME_MAX + 1];
	char period[CALENDAR_PERIOD_MAX];
	int on_time;
	cJSON *data;
};

struct builder {
	struct entry *entries;
	size_t count;
	int offset_min;
	struct rng *rng;
};

static int64_t day_of_ms(int64_t ms, int offset_min)
{
	struct date d;

	datetime_local_date(ms, offset_min, &d);
	return date_to_days(&d);
}

/* An instant on day at a minute between lo and hi (minutes after midnight). */
static int64_t at_minutes(const struct builder *b, int64_t day, long lo, long hi)
{
	struct date d;

	date_from_days(day, &d);
	return datetime_day_start(&d, b->offset_min) + rng_range(b->rng, lo, hi) * MINUTE_MS;
}

/* Appends an entry that takes data (also freed on failure). Its seq, or -ENOMEM. */
static int add(struct builder *b, int64_t at_ms, const char *form, const char *period, int on_time,
               int corrects, cJSON *data)
{
	struct entry *e;

	if (!data || b->count >= PLAN_ACTIONS_MAX) {
		cJSON_Delete(data);
		return -ENOMEM;
	}
	e = &b->entries[b->count];
	e->at_ms = at_ms;
	e->seq = (int)b->count;
	e->corrects_seq = corrects;
	snprintf(e->form, sizeof(e->form), "%s", form);
	snprintf(e->period, sizeof(e->period), "%s", period);
	e->on_time = on_time;
	e->data = data;
	return (int)b->count++;
}

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* The day a required return is filed, or 0 when the school does not file it. */
static int64_t filing_day(const struct sim_school *s, const struct calendar_due *d,
                          int64_t expiry_day, int monthly, struct rng *r)
{
	double p_miss = s->profile == PROFILE_LATE ? 0.10 : 0.03;
	double p_late = s->profile == PROFILE_LATE ? 0.55 : 0.03;
	int64_t start = date_to_days(&d->start), end = date_to_days(&d->end);
	int64_t due = date_to_days(&d->due), lo = start, day;
	int is_miss = rng_chance(r, p_miss), is_late = rng_chance(r, p_late);

	if (s->profile == PROFILE_SILENT || is_miss)
		return 0;
	if (s->opened.year && date_to_days(&s->opened) > lo)
		lo = date_to_days(&s->opened);
	if (is_late)
		day = clamp(due + rng_range(r, 3, 20), due + 1, expiry_day - EXPIRY_MARGIN);
	else if (monthly)
		day = end + rng_range(r, 0, 3);
	else if (strcmp(d->form, "screening") == 0)
		day = end - rng_range(r, 4, 25);
	else
		day = end - rng_range(r, 2, 12);
	if (day < lo)
		day = lo + rng_range(r, 0, 2);
	if (!is_late && day > due)
		day = due;
	/* a school that closes files a few days before it does (a day's margin, so that a
	 * simulation lagging its clock never reaches a hub that already refuses it) */
	if (s->closed.year && day >= date_to_days(&s->closed))
		day = clamp(date_to_days(&s->closed) - rng_range(r, 1, 3), lo,
		            date_to_days(&s->closed));
	return day;
}

static int phase_number(const char *period)
{
	const char *p = strstr(period, "-P");

	return p ? (int)strtol(p + 2, NULL, 10) : 1;
}

/* The required returns of the calendar for this school. */
static int plan_required(struct builder *b, const struct sim_school *s,
                         const struct school_model *m, const struct calendar *cal, char *err,
                         size_t errlen)
{
	const struct date *closed = s->closed.year ? &s->closed : NULL;
	struct calendar_due *dues = NULL;
	size_t n = 0;
	int r;

	r = calendar_expected(cal, s->opened.year ? &s->opened : NULL, closed, NULL, &dues, &n);
	if (r < 0) {
		snprintf(err, errlen, "the calendar cannot list the returns of school %s", s->id);
		return r;
	}
	for (size_t i = 0; i < n && r >= 0; i++) {
		const struct calendar_due *d = &dues[i];
		enum calendar_period_type type;
		int64_t expiry_day = day_of_ms(d->expiry_ms - 1, b->offset_min), day, at;
		int monthly, seq;
		cJSON *data;

		r = calendar_period_type(cal, d->form, &type);
		if (r < 0)
			break;
		monthly = type == CALENDAR_PERIOD_MONTHLY;
		day = filing_day(s, d, expiry_day, monthly, b->rng);
		if (!day)
			continue;
		at = at_minutes(b, day, OFFICE_OPEN, OFFICE_CLOSE);
		if (strcmp(d->form, "screening") == 0)
			data = model_screening(s, b->rng);
		else if (strcmp(d->form, "summary") == 0)
			data = model_summary(m, date_to_days(&d->start), date_to_days(&d->end), day,
			                     phase_number(d->period), b->rng);
		else if (strcmp(d->form, "rectification") == 0)
			data = model_ledger(m, day < date_to_days(&d->end) ? day
			                                                   : date_to_days(&d->end));
		else {
			snprintf(err, errlen,
			         "the calendar requires the form '%s', which the "
			         "simulator cannot fill",
			         d->form);
			r = -EINVAL;
			break;
		}
		seq = add(b, at, d->form, d->period, at < d->deadline_ms, -1, data);
		if (seq < 0) {
			r = seq;
			break;
		}
		/* a few screening returns are corrected within days */
		if (strcmp(d->form, "screening") == 0 && rng_chance(b->rng, 0.05)) {
			int64_t later = day + rng_range(b->rng, 2, 6);

			if (later > expiry_day - EXPIRY_MARGIN ||
			    (closed && later >= date_to_days(closed)))
				continue;
			data = model_screening_corrected(b->entries[seq].data, b->rng);
			at = at_minutes(b, later, OFFICE_OPEN, OFFICE_CLOSE);
			r = add(b, at, d->form, d->period, at < d->deadline_ms, seq, data);
		}
	}
	free(dues);
	return r < 0 ? r : 0;
}

/* The incidents, each reported on its day, and their corrections. */
static int plan_incidents(struct builder *b, const struct school_model *m)
{
	for (size_t k = 0; k < m->incident_count; k++) {
		const struct incident *i = &m->incidents[k];
		char period[CALENDAR_PERIOD_MAX];
		struct date occurred;
		int seq;

		date_from_days(i->occurred, &occurred);
		snprintf(period, sizeof(period), "%04d-%02d", occurred.year, occurred.month);
		/* filed the morning of the report: on time unless reported late */
		seq = add(b, at_minutes(b, i->reported, OFFICE_OPEN, 690), "incident", period,
		          i->reported <= i->discovered + 1, -1, model_incident(i, 0));
		if (seq < 0)
			return seq;
		if (i->corrected) {
			seq = add(b, at_minutes(b, i->corrected, 600, OFFICE_CLOSE), "incident",
			          period, 0, seq, model_incident(i, 1));
			if (seq < 0)
				return seq;
		}
	}
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->at_ms != y->at_ms)
		return x->at_ms < y->at_ms ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The sorted entries as the plan's "actions"; the data move into it. */
static int write_actions(struct builder *b, cJSON *actions)
{
	int *index_of = calloc(b->count + 1, sizeof(*index_of));
	int r = -ENOMEM;

	if (!index_of)
		return r;
	qsort(b->entries, b->count, sizeof(*b->entries), cmp_entry);
	for (size_t i = 0; i < b->count; i++)
		index_of[b->entries[i].seq] = (int)i;
	for (size_t i = 0; i < b->count; i++) {
		struct entry *e = &b->entries[i];
		char at[DATETIME_RFC3339_MAX];
		cJSON *o = cJSON_CreateObject();

		if (!o || !cJSON_AddItemToArray(actions, o)) {
			cJSON_Delete(o);
			goto out;
		}
		datetime_format_rfc3339(e->at_ms, b->offset_min, at);
		if (!cJSON_AddStringToObject(o, "at", at) ||
		    !cJSON_AddStringToObject(o, "form", e->form) ||
		    !cJSON_AddStringToObject(o, "period", e->period) ||
		    !(e->on_time < 0 ? cJSON_AddNullToObject(o, "on_time")
		                     : cJSON_AddBoolToObject(o, "on_time", e->on_time)) ||
		    !(e->corrects_seq < 0 ? cJSON_AddNullToObject(o, "corrects")
		                          : cJSON_AddNumberToObject(o, "corrects",
		                                                    index_of[e->corrects_seq])) ||
		    !cJSON_AddItemToObject(o, "data", e->data))
			goto out;
		e->data = NULL;
	}
	r = 0;
out:
	free(index_of);
	return r;
}

int plan_build(const struct region *g, size_t school, const struct calendar *cal, cJSON **ret,
               char *err, size_t errlen)
{
	const struct sim_school *s = &g->schools[school];
	struct calendar_due *all = NULL;
	struct school_model m = {0};
	struct builder b = {.offset_min = calendar_utc_offset_min(cal)};
	cJSON *doc = NULL, *actions;
	int64_t first, last;
	struct rng rng;
	size_t n = 0;
	int r;

	b.rng = &rng;
	rng_init(&rng, g->seed, STREAM_SCHOOL + strtoull(s->id, NULL, 10));
	/* the campaign's days: from the first required period's start to the last's end */
	r = calendar_expected(cal, NULL, NULL, NULL, &all, &n);
	if (r < 0 || n == 0) {
		snprintf(err, errlen, "the calendar requires no returns");
		r = r < 0 ? r : -EINVAL;
		goto out;
	}
	first = date_to_days(&all[0].start);
	last = date_to_days(&all[0].end);
	for (size_t i = 1; i < n; i++) {
		if (date_to_days(&all[i].start) < first)
			first = date_to_days(&all[i].start);
		if (date_to_days(&all[i].end) > last)
			last = date_to_days(&all[i].end);
	}
	b.entries = calloc(PLAN_ACTIONS_MAX, sizeof(*b.entries));
	r = b.entries ? model_build(&m, s, first, last, &rng) : -ENOMEM;
	if (r < 0)
		goto out;
	r = plan_required(&b, s, &m, cal, err, errlen);
	if (r == 0 && s->profile != PROFILE_SILENT)
		r = plan_incidents(&b, &m);
	if (r < 0)
		goto out;
	r = -ENOMEM;
	doc = cJSON_CreateObject();
	if (!doc || !cJSON_AddStringToObject(doc, "school_id", s->id) ||
	    !cJSON_AddStringToObject(doc, "county_id", g->counties[s->county].id) ||
	    !cJSON_AddStringToObject(doc, "name", s->name) ||
	    !cJSON_AddStringToObject(doc, "profile", school_profile_id(s->profile)) ||
	    !(actions = cJSON_AddArrayToObject(doc, "actions")))
		goto out;
	r = write_actions(&b, actions);
	if (r < 0)
		goto out;
	*ret = doc;
	doc = NULL;
out:
	if (r == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	for (size_t i = 0; b.entries && i < b.count; i++)
		cJSON_Delete(b.entries[i].data);
	free(b.entries);
	free(all);
	model_release(&m);
	cJSON_Delete(doc);
	return r;
}

/* One action of the document: 0, or -EINVAL. */
static int parse_action(const cJSON *o, long index, struct plan_action *ret)
{
	const cJSON *at = cJSON_GetObjectItemCaseSensitive(o, "at");
	const cJSON *form = cJSON_GetObjectItemCaseSensitive(o, "form");
	const cJSON *period = cJSON_GetObjectItemCaseSensitive(o, "period");
	const cJSON *on_time = cJSON_GetObjectItemCaseSensitive(o, "on_time");
	const cJSON *corrects = cJSON_GetObjectItemCaseSensitive(o, "corrects");
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data");

	if (!cJSON_IsString(at) || !cJSON_IsString(form) || !cJSON_IsString(period) ||
	    strlen(period->valuestring) >= CALENDAR_PERIOD_MAX || !cJSON_IsObject(data) ||
	    datetime_parse_rfc3339(at->valuestring, strlen(at->valuestring), &ret->at_ms, NULL) < 0)
		return -EINVAL;
	ret->form = form->valuestring;
	ret->period = period->valuestring;
	ret->data = data;
	ret->on_time = cJSON_IsBool(on_time) ? cJSON_IsTrue(on_time) : -1;
	ret->corrects = -1;
	if (cJSON_IsNumber(corrects)) {
		if (corrects->valuedouble < 0 || corrects->valuedouble >= (double)index)
			return -EINVAL;
		ret->corrects = (long)corrects->valuedouble;
	} else if (!cJSON_IsNull(corrects)) {
		return -EINVAL;
	}
	return 0;
}

int plan_load(const char *path, cJSON **ret_doc, struct plan_action **ret_actions,
              size_t *ret_count, char *err, size_t errlen)
{
	struct plan_action *list = NULL;
	const cJSON *actions, *o;
	cJSON *doc = NULL;
	struct buf text;
	long i = 0;
	int r;

	buf_init(&text, PLAN_FILE_MAX);
	r = fileio_read(path, &text);
	if (r < 0) {
		snprintf(err, errlen, "cannot read '%s': %s", path, strerror(-r));
		goto out;
	}
	r = json_parse_untrusted(text.data ? text.data : "", text.len, JSON_MAX_DEPTH, &doc, err,
	                         errlen);
	if (r < 0)
		goto out;
	actions = cJSON_GetObjectItemCaseSensitive(doc, "actions");
	r = -EINVAL;
	if (!cJSON_IsArray(actions) || cJSON_GetArraySize(actions) > PLAN_ACTIONS_MAX) {
		snprintf(err, errlen, "'%s' is not a plan (no actions)", path);
		goto out;
	}
	list = calloc((size_t)cJSON_GetArraySize(actions) + 1, sizeof(*list));
	if (!list) {
		r = -ENOMEM;
		goto out;
	}
	cJSON_ArrayForEach(o, actions)
	{
		if (parse_action(o, i, &list[i]) < 0 ||
		    (i > 0 && list[i].at_ms < list[i - 1].at_ms)) {
			snprintf(err, errlen, "'%s': action %ld is malformed or out of order", path,
			         i);
			goto out;
		}
		i++;
	}
	*ret_doc = doc;
	*ret_actions = list;
	*ret_count = (size_t)i;
	doc = NULL;
	list = NULL;
	r = 0;
out:
	free(list);
	cJSON_Delete(doc);
	buf_release(&text);
	return r;
}
