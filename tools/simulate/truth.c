/* The ground truth of a run: see truth.h. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "plan.h"
#include "region.h"
#include "truth.h"
#include "common/calendar.h"
#include "common/datetime.h"
#include "common/fileio.h"
#include "common/banned.h"

/* FORMS.md: the incident types, fixed by the data contract. */
static const char *const incident_types[] = {"physical", "verbal",   "relational",
                                             "cyber",    "property", "sexual_harassment"};
#define TYPES ARRAY_SIZE(incident_types)
#define LEVELS 3
#define MIN_FOLLOW_UP_LEVEL 2

/* One required (form, period) in one county. */
struct period_agg {
	long expected, received, on_time;
	cJSON *late, *missing;
};

/* One event (form, period) in one county. */
struct event_agg {
	size_t county;
	char form[CALENDAR_NAME_MAX + 1];
	char period[CALENDAR_PERIOD_MAX];
	long received, on_time, by_level[LEVELS + 1];
};

struct incident_agg {
	long incidents, victims, perpetrators;
	long by_type[TYPES];
};

struct screening_agg {
	long schools, reported, enrolled, screened, no_committee, no_channel;
};

struct truth {
	const struct region *g;
	const struct calendar *cal;
	int offset;
	struct calendar_due *dues; /* every required (form, period) */
	size_t due_count;
	struct period_agg *periods; /* [county * due_count + due] */
	struct event_agg *events;
	size_t event_count, event_alloc;
	struct incident_agg *incidents;  /* [county * LEVELS + level - 1] */
	struct screening_agg *screening; /* [county] */
	const char *screening_period;
	struct date from, to; /* the campaign's days: the incidents counted */
	struct date overdue_as_of, follow_up_as_of;
	int year;
	cJSON *returns, *level3, *overdue, *follow_up;
	cJSON *overdue_list, *follow_up_list;
};

/* The records of one school, with the plan they came from. */
struct school_view {
	size_t index;
	const struct sim_school *s;
	const struct truth_record *recs;
	size_t count;
	const struct plan_action *actions;
	size_t action_count;
};

static const cJSON *member(const cJSON *o, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(o, name);
}

static long int_member(const cJSON *o, const char *name)
{
	const cJSON *v = member(o, name);

	return cJSON_IsNumber(v) ? (long)v->valuedouble : 0;
}

static int date_member(const cJSON *o, const char *name, struct date *ret)
{
	const cJSON *v = member(o, name);

	if (!cJSON_IsString(v))
		return -EINVAL;
	return datetime_parse_date(v->valuestring, strlen(v->valuestring), ret);
}

static int cmp_record(const void *a, const void *b)
{
	const struct truth_record *x = a, *y = b;

	if (x->school != y->school)
		return x->school < y->school ? -1 : 1;
	return x->action < y->action ? -1 : x->action > y->action;
}

/* 1 when some record of the school supersedes id. */
static int superseded(const struct school_view *v, const char *id)
{
	for (size_t i = 0; i < v->count; i++)
		if (strcmp(v->recs[i].supersedes, id) == 0)
			return 1;
	return 0;
}

static const struct plan_action *action_of(const struct school_view *v,
                                           const struct truth_record *r)
{
	return &v->actions[r->action];
}

static int add_string(cJSON *o, const char *name, const char *value)
{
	return (value ? cJSON_AddStringToObject(o, name, value) : cJSON_AddNullToObject(o, name))
	               ? 0
	               : -ENOMEM;
}

static int add_number(cJSON *o, const char *name, double value)
{
	return cJSON_AddNumberToObject(o, name, value) ? 0 : -ENOMEM;
}

/* A new object appended to list, or NULL. */
static cJSON *append_object(cJSON *list)
{
	cJSON *o = cJSON_CreateObject();

	if (o && !cJSON_AddItemToArray(list, o)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static int add_day(cJSON *o, const char *name, const struct date *d)
{
	char text[11];

	date_format(d, text);
	return add_string(o, name, text);
}

static int add_return(struct truth *t, const struct school_view *v, const struct truth_record *r)
{
	const struct plan_action *a = action_of(v, r);
	char at[DATETIME_RFC3339_MAX];
	cJSON *o = append_object(t->returns);

	datetime_format_rfc3339(r->received_ms, t->offset, at);
	if (!o || add_string(o, "submission_id", r->id) < 0 ||
	    add_string(o, "school_id", v->s->id) < 0 ||
	    add_string(o, "county_id", t->g->counties[v->s->county].id) < 0 ||
	    add_string(o, "form", a->form) < 0 || add_string(o, "period", a->period) < 0 ||
	    add_number(o, "action", r->action) < 0 ||
	    add_string(o, "supersedes", r->supersedes[0] ? r->supersedes : NULL) < 0 ||
	    add_string(o, "received_at", at) < 0 ||
	    !(r->on_time < 0 ? cJSON_AddNullToObject(o, "on_time")
	                     : cJSON_AddBoolToObject(o, "on_time", r->on_time)) ||
	    !(r->planned < 0 ? cJSON_AddNullToObject(o, "planned_on_time")
	                     : cJSON_AddBoolToObject(o, "planned_on_time", r->planned)))
		return -ENOMEM;
	return 0;
}

/* Required periods: expected, received, on time, the late and the missing. */
static int count_periods(struct truth *t, const struct school_view *v)
{
	for (size_t d = 0; d < t->due_count; d++) {
		const struct calendar_due *due = &t->dues[d];
		struct period_agg *p = &t->periods[v->s->county * t->due_count + d];
		const struct truth_record *first = NULL;
		cJSON *entry;

		if (!school_open_during(v->s, &due->start, &due->end))
			continue;
		p->expected++;
		for (size_t i = 0; i < v->count; i++) {
			const struct plan_action *a = action_of(v, &v->recs[i]);

			if (strcmp(a->form, due->form) == 0 &&
			    strcmp(a->period, due->period) == 0 &&
			    (!first || v->recs[i].received_ms < first->received_ms))
				first = &v->recs[i];
		}
		if (first) {
			p->received++;
			if (first->on_time == 1) {
				p->on_time++;
				continue;
			}
		}
		entry = cJSON_CreateString(v->s->id);
		if (!entry || !cJSON_AddItemToArray(first ? p->late : p->missing, entry)) {
			cJSON_Delete(entry);
			return -ENOMEM;
		}
	}
	return 0;
}

static struct event_agg *event_slot(struct truth *t, size_t county, const char *form,
                                    const char *period)
{
	for (size_t i = 0; i < t->event_count; i++) {
		struct event_agg *e = &t->events[i];

		if (e->county == county && strcmp(e->form, form) == 0 &&
		    strcmp(e->period, period) == 0)
			return e;
	}
	if (t->event_count == t->event_alloc) {
		size_t n = t->event_alloc ? t->event_alloc * 2 : 64;
		struct event_agg *grown = realloc(t->events, n * sizeof(*grown));

		if (!grown)
			return NULL;
		t->events = grown;
		t->event_alloc = n;
	}
	memset(&t->events[t->event_count], 0, sizeof(*t->events));
	t->events[t->event_count].county = county;
	snprintf(t->events[t->event_count].form, CALENDAR_NAME_MAX + 1, "%s", form);
	snprintf(t->events[t->event_count].period, CALENDAR_PERIOD_MAX, "%s", period);
	return &t->events[t->event_count++];
}

/* One incident that counts. *ret_level etc. say what follow-up needs. */
static int count_incident(struct truth *t, const struct school_view *v,
                          const struct truth_record *r, const cJSON *data)
{
	size_t c = v->s->county;
	long level = int_member(data, "level");
	const cJSON *types = member(data, "types"), *type;
	struct date occurred;
	struct incident_agg *agg;
	cJSON *o;

	if (level < 1 || level > LEVELS || date_member(data, "occurred_on", &occurred) < 0)
		return -EINVAL;
	if (date_compare(&occurred, &t->from) < 0 || date_compare(&occurred, &t->to) > 0)
		return 0;
	agg = &t->incidents[c * LEVELS + (size_t)level - 1];
	agg->incidents++;
	agg->victims += int_member(member(data, "victims"), "female") +
	                int_member(member(data, "victims"), "male");
	agg->perpetrators += int_member(member(data, "perpetrators"), "female") +
	                     int_member(member(data, "perpetrators"), "male");
	cJSON_ArrayForEach(type, types)
	{
		for (size_t k = 0; k < TYPES; k++)
			if (cJSON_IsString(type) &&
			    strcmp(type->valuestring, incident_types[k]) == 0)
				agg->by_type[k]++;
	}
	if (level != 3)
		return 0;
	o = append_object(t->level3);
	if (!o || add_string(o, "county_id", t->g->counties[c].id) < 0 ||
	    add_string(o, "school_id", v->s->id) < 0 ||
	    add_string(o, "incident_ref", cJSON_GetStringValue(member(data, "incident_ref"))) < 0 ||
	    add_day(o, "occurred_on", &occurred) < 0 || add_string(o, "submission_id", r->id) < 0)
		return -ENOMEM;
	return 0;
}

/* The items of the school's latest ledger as of day that are overdue then; appended to
 * list when it is not NULL. Returns their number. */
static long overdue_items(struct truth *t, const struct school_view *v, const struct date *day,
                          cJSON *list)
{
	const struct truth_record *best = NULL;
	struct date best_as_of = {0}, as_of;
	const cJSON *items, *it;
	long n = 0;

	for (size_t i = 0; i < v->count; i++) {
		const struct plan_action *a = action_of(v, &v->recs[i]);

		if (strcmp(a->form, "rectification") != 0 || superseded(v, v->recs[i].id) ||
		    date_member(a->data, "as_of", &as_of) < 0 || date_compare(&as_of, day) > 0)
			continue;
		if (!best || date_compare(&as_of, &best_as_of) > 0 ||
		    (date_compare(&as_of, &best_as_of) == 0 &&
		     strcmp(a->period, action_of(v, best)->period) > 0)) {
			best = &v->recs[i];
			best_as_of = as_of;
		}
	}
	if (!best)
		return 0;
	items = member(action_of(v, best)->data, "items");
	cJSON_ArrayForEach(it, items)
	{
		const char *status = cJSON_GetStringValue(member(it, "status"));
		struct date deadline;
		cJSON *o;

		if (!status || strcmp(status, "done") == 0 || strcmp(status, "verified") == 0 ||
		    date_member(it, "deadline", &deadline) < 0 || date_compare(&deadline, day) >= 0)
			continue;
		n++;
		if (!list)
			continue;
		o = append_object(list);
		if (!o || add_string(o, "county_id", t->g->counties[v->s->county].id) < 0 ||
		    add_string(o, "school_id", v->s->id) < 0 ||
		    add_string(o, "item_id", cJSON_GetStringValue(member(it, "item_id"))) < 0 ||
		    add_day(o, "deadline", &deadline) < 0 ||
		    add_number(o, "days_overdue",
		               (double)(date_to_days(day) - date_to_days(&deadline))) < 0 ||
		    add_string(o, "ledger_period", action_of(v, best)->period) < 0 ||
		    add_string(o, "submission_id", best->id) < 0)
			return -ENOMEM;
	}
	return n;
}

static int count_screening(struct truth *t, const struct school_view *v)
{
	struct screening_agg *agg = &t->screening[v->s->county];
	const struct truth_record *current = NULL;
	struct date start, end;
	int expected;

	if (!t->screening_period ||
	    calendar_period_dates(t->cal, "screening", t->screening_period, &start, &end) < 0)
		return 0;
	expected = school_open_during(v->s, &start, &end);
	for (size_t i = 0; i < v->count; i++) {
		const struct plan_action *a = action_of(v, &v->recs[i]);

		if (strcmp(a->form, "screening") == 0 &&
		    strcmp(a->period, t->screening_period) == 0 && !superseded(v, v->recs[i].id) &&
		    (!current || v->recs[i].received_ms > current->received_ms))
			current = &v->recs[i];
	}
	if (expected || current)
		agg->schools++;
	if (current) {
		const cJSON *d = action_of(v, current)->data;

		agg->reported++;
		agg->enrolled += int_member(d, "students_enrolled");
		agg->screened += int_member(d, "students_screened");
		agg->no_committee += !cJSON_IsTrue(member(d, "committee_established"));
		agg->no_channel += !cJSON_IsTrue(member(d, "reporting_channel_published"));
	}
	return 0;
}

/* Everything one school contributes. */
static int count_school(struct truth *t, const struct school_view *v)
{
	long incidents = 0, max_level = 0, level3 = 0, overdue;
	int r;

	for (size_t i = 0; i < v->count; i++) {
		r = add_return(t, v, &v->recs[i]);
		if (r < 0)
			return r;
	}
	r = count_periods(t, v);
	if (r == 0)
		r = count_screening(t, v);
	for (size_t i = 0; i < v->count && r == 0; i++) {
		const struct truth_record *rec = &v->recs[i];
		const struct plan_action *a = action_of(v, rec);
		enum calendar_period_type type;
		struct event_agg *e;
		struct date occurred;
		long level;

		if (calendar_period_type(t->cal, a->form, &type) < 0 ||
		    type != CALENDAR_PERIOD_EVENT || superseded(v, rec->id))
			continue;
		e = event_slot(t, v->s->county, a->form, a->period);
		if (!e)
			return -ENOMEM;
		level = int_member(a->data, "level");
		e->received++;
		e->on_time += rec->on_time == 1;
		if (level >= 1 && level <= LEVELS)
			e->by_level[level]++;
		if (strcmp(a->form, "incident") != 0)
			continue;
		r = count_incident(t, v, rec, a->data);
		if (r == 0 && date_member(a->data, "occurred_on", &occurred) == 0 &&
		    occurred.year == t->year && level >= MIN_FOLLOW_UP_LEVEL) {
			incidents++;
			level3 += level == 3;
			max_level = level > max_level ? level : max_level;
		}
	}
	if (r < 0)
		return r;
	if (overdue_items(t, v, &t->overdue_as_of, t->overdue_list) < 0)
		return -ENOMEM;
	overdue = overdue_items(t, v, &t->follow_up_as_of, NULL);
	if (incidents || overdue) {
		cJSON *o = append_object(t->follow_up_list);

		if (!o || add_string(o, "county_id", t->g->counties[v->s->county].id) < 0 ||
		    add_string(o, "school_id", v->s->id) < 0 ||
		    add_number(o, "incidents", (double)incidents) < 0 ||
		    !(incidents ? cJSON_AddNumberToObject(o, "max_level", (double)max_level)
		                : cJSON_AddNullToObject(o, "max_level")) ||
		    add_number(o, "level3", (double)level3) < 0 ||
		    add_number(o, "overdue_items", (double)overdue) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* The figures per county, once every school is counted. */
static int write_aggregates(struct truth *t, cJSON *root)
{
	cJSON *periods = cJSON_AddArrayToObject(root, "periods");
	cJSON *events = cJSON_AddArrayToObject(root, "events");
	cJSON *inc = cJSON_AddObjectToObject(root, "incidents");
	cJSON *scr = cJSON_AddObjectToObject(root, "screening");
	cJSON *by_level, *by_type, *counties;

	if (!periods || !events || !inc || !scr || add_day(inc, "from", &t->from) < 0 ||
	    add_day(inc, "to", &t->to) < 0 ||
	    !(by_level = cJSON_AddArrayToObject(inc, "by_level")) ||
	    !(by_type = cJSON_AddArrayToObject(inc, "by_type")) ||
	    add_string(scr, "period", t->screening_period) < 0 ||
	    !(counties = cJSON_AddArrayToObject(scr, "counties")))
		return -ENOMEM;
	for (size_t c = 0; c < t->g->county_count; c++) {
		const char *county = t->g->counties[c].id;
		const struct screening_agg *s = &t->screening[c];
		cJSON *o;

		for (size_t d = 0; d < t->due_count; d++) {
			struct period_agg *p = &t->periods[c * t->due_count + d];

			o = append_object(periods);
			if (!o || add_string(o, "county_id", county) < 0 ||
			    add_string(o, "form", t->dues[d].form) < 0 ||
			    add_string(o, "period", t->dues[d].period) < 0 ||
			    !cJSON_AddTrueToObject(o, "required") ||
			    add_day(o, "due_date", &t->dues[d].due) < 0 ||
			    add_number(o, "expected", (double)p->expected) < 0 ||
			    add_number(o, "received", (double)p->received) < 0 ||
			    add_number(o, "on_time", (double)p->on_time) < 0 ||
			    add_number(o, "late", (double)(p->received - p->on_time)) < 0 ||
			    add_number(o, "missing", (double)(p->expected - p->received)) < 0)
				return -ENOMEM;
			if (!cJSON_AddItemToObject(o, "late_schools", p->late))
				return -ENOMEM;
			p->late = NULL;
			if (!cJSON_AddItemToObject(o, "missing_schools", p->missing))
				return -ENOMEM;
			p->missing = NULL;
		}
		for (int level = 1; level <= LEVELS; level++) {
			const struct incident_agg *a =
			        &t->incidents[c * LEVELS + (size_t)level - 1];

			if (!a->incidents)
				continue;
			o = append_object(by_level);
			if (!o || add_string(o, "county_id", county) < 0 ||
			    add_number(o, "level", level) < 0 ||
			    add_number(o, "incidents", (double)a->incidents) < 0 ||
			    add_number(o, "victims", (double)a->victims) < 0 ||
			    add_number(o, "perpetrators", (double)a->perpetrators) < 0)
				return -ENOMEM;
			for (size_t k = 0; k < TYPES; k++) {
				if (!a->by_type[k])
					continue;
				o = append_object(by_type);
				if (!o || add_string(o, "county_id", county) < 0 ||
				    add_number(o, "level", level) < 0 ||
				    add_string(o, "type", incident_types[k]) < 0 ||
				    add_number(o, "incidents", (double)a->by_type[k]) < 0)
					return -ENOMEM;
			}
		}
		o = append_object(counties);
		if (!o || add_string(o, "county_id", county) < 0 ||
		    add_number(o, "schools", (double)s->schools) < 0 ||
		    add_number(o, "reported", (double)s->reported) < 0 ||
		    add_number(o, "students_enrolled", (double)s->enrolled) < 0 ||
		    add_number(o, "students_screened", (double)s->screened) < 0 ||
		    add_number(o, "without_committee", (double)s->no_committee) < 0 ||
		    add_number(o, "without_reporting_channel", (double)s->no_channel) < 0)
			return -ENOMEM;
	}
	for (size_t i = 0; i < t->event_count; i++) {
		const struct event_agg *e = &t->events[i];
		cJSON *o = append_object(events), *levels;
		char key[8];

		if (!o || add_string(o, "county_id", t->g->counties[e->county].id) < 0 ||
		    add_string(o, "form", e->form) < 0 || add_string(o, "period", e->period) < 0 ||
		    add_number(o, "received", (double)e->received) < 0 ||
		    add_number(o, "on_time", (double)e->on_time) < 0 ||
		    !(levels = cJSON_AddObjectToObject(o, "by_level")))
			return -ENOMEM;
		for (int level = 1; level <= LEVELS; level++) {
			snprintf(key, sizeof(key), "%d", level);
			if (add_number(levels, key, (double)e->by_level[level]) < 0)
				return -ENOMEM;
		}
	}
	return 0;
}

static int cmp_event(const void *a, const void *b)
{
	const struct event_agg *x = a, *y = b;
	int c;

	if (x->county != y->county)
		return x->county < y->county ? -1 : 1;
	c = strcmp(x->form, y->form);
	return c ? c : strcmp(x->period, y->period);
}

/* DIR/periods.tsv: the required periods, then the event periods that had returns. */
static int write_periods(struct truth *t, const char *dir)
{
	char path[PATH_MAX], line[128];
	size_t len = 0, cap = (t->due_count + t->event_count + 1) * sizeof(line);
	char *text = malloc(cap);
	int r;

	if (!text)
		return -ENOMEM;
	text[0] = '\0';
	for (size_t d = 0; d < t->due_count; d++)
		len += (size_t)snprintf(text + len, cap - len, "%s\t%s\n", t->dues[d].form,
		                        t->dues[d].period);
	for (size_t i = 0; i < t->event_count; i++) {
		int seen = 0;

		for (size_t j = 0; j < i && !seen; j++)
			seen = strcmp(t->events[j].form, t->events[i].form) == 0 &&
			       strcmp(t->events[j].period, t->events[i].period) == 0;
		if (!seen)
			len += (size_t)snprintf(text + len, cap - len, "%s\t%s\n",
			                        t->events[i].form, t->events[i].period);
	}
	r = snprintf(path, sizeof(path), "%s/periods.tsv", dir) < (int)sizeof(path)
	            ? fileio_write_atomic(path, text, len, 0644)
	            : -ENAMETOOLONG;
	free(text);
	return r;
}

/* The campaign's span, the first screening period, and the report dates. */
static int set_dates(struct truth *t)
{
	int r = calendar_expected(t->cal, NULL, NULL, NULL, &t->dues, &t->due_count);

	if (r < 0 || t->due_count == 0)
		return r < 0 ? r : -EINVAL;
	t->from = t->dues[0].start;
	t->to = t->dues[0].end;
	for (size_t d = 0; d < t->due_count; d++) {
		if (date_compare(&t->dues[d].start, &t->from) < 0)
			t->from = t->dues[d].start;
		if (date_compare(&t->dues[d].end, &t->to) > 0)
			t->to = t->dues[d].end;
		if (!t->screening_period && strcmp(t->dues[d].form, "screening") == 0)
			t->screening_period = t->dues[d].period;
	}
	t->year = t->from.year;
	t->overdue_as_of = t->to;
	t->follow_up_as_of = (struct date){t->year, 12, 31};
	return 0;
}

static int build(struct truth *t, const char *dir, const struct truth_record *sorted, size_t count,
                 char *err, size_t errlen)
{
	size_t next = 0;
	int r = 0;

	for (size_t i = 0; i < t->g->school_count && r == 0; i++) {
		struct school_view v = {.index = i, .s = &t->g->schools[i], .recs = sorted + next};
		struct plan_action *actions = NULL;
		char path[PATH_MAX];
		cJSON *doc = NULL;

		while (next < count && sorted[next].school == i)
			next++, v.count++;
		if (snprintf(path, sizeof(path), "%s/plans/%s.json", dir, v.s->id) >=
		    (int)sizeof(path))
			return -ENAMETOOLONG;
		r = plan_load(path, &doc, &actions, &v.action_count, err, errlen);
		v.actions = actions;
		for (size_t k = 0; r == 0 && k < v.count; k++)
			if (v.recs[k].action >= v.action_count)
				r = -EINVAL,
				snprintf(err, errlen, "%s does not match the run", path);
		if (r == 0) {
			r = count_school(t, &v);
			if (r < 0)
				snprintf(err, errlen, "school %s: %s", v.s->id, strerror(-r));
		}
		free(actions);
		cJSON_Delete(doc);
	}
	return r;
}

int truth_write(const char *dir, const struct region *g, const struct calendar *cal,
                const struct truth_record *records, size_t count, const char *clock, char *err,
                size_t errlen)
{
	struct truth t = {.g = g, .cal = cal, .offset = calendar_utc_offset_min(cal)};
	struct truth_record *sorted = malloc((count + 1) * sizeof(*sorted));
	cJSON *root = cJSON_CreateObject();
	char path[PATH_MAX], *text = NULL;
	int r = -ENOMEM;

	snprintf(err, errlen, "out of memory");
	if (!sorted || !root)
		goto out;
	memcpy(sorted, records, count * sizeof(*sorted));
	qsort(sorted, count, sizeof(*sorted), cmp_record);
	r = set_dates(&t);
	if (r < 0) {
		snprintf(err, errlen, "the calendar requires no returns");
		goto out;
	}
	r = -ENOMEM;
	t.periods = calloc(g->county_count * t.due_count + 1, sizeof(*t.periods));
	t.incidents = calloc(g->county_count * LEVELS, sizeof(*t.incidents));
	t.screening = calloc(g->county_count, sizeof(*t.screening));
	if (!t.periods || !t.incidents || !t.screening)
		goto out;
	for (size_t i = 0; i < g->county_count * t.due_count; i++)
		if (!(t.periods[i].late = cJSON_CreateArray()) ||
		    !(t.periods[i].missing = cJSON_CreateArray()))
			goto out;
	if (add_number(root, "seed", (double)g->seed) < 0 ||
	    add_string(root, "region", g->code) < 0 || add_string(root, "clock", clock) < 0 ||
	    !(t.returns = cJSON_AddArrayToObject(root, "returns")) ||
	    !(t.level3 = cJSON_AddArrayToObject(root, "level3")) ||
	    !(t.overdue = cJSON_AddObjectToObject(root, "overdue")) ||
	    add_day(t.overdue, "as_of", &t.overdue_as_of) < 0 ||
	    !(t.overdue_list = cJSON_AddArrayToObject(t.overdue, "items")) ||
	    !(t.follow_up = cJSON_AddObjectToObject(root, "follow_up")) ||
	    add_number(t.follow_up, "year", t.year) < 0 ||
	    add_number(t.follow_up, "min_level", MIN_FOLLOW_UP_LEVEL) < 0 ||
	    add_day(t.follow_up, "as_of", &t.follow_up_as_of) < 0 ||
	    !(t.follow_up_list = cJSON_AddArrayToObject(t.follow_up, "schools")))
		goto out;
	r = build(&t, dir, sorted, count, err, errlen);
	if (r < 0)
		goto out;
	qsort(t.events, t.event_count, sizeof(*t.events), cmp_event);
	r = write_aggregates(&t, root);
	if (r == 0)
		r = write_periods(&t, dir);
	text = r == 0 ? cJSON_Print(root) : NULL;
	if (r == 0 && !text)
		r = -ENOMEM;
	if (r == 0 && snprintf(path, sizeof(path), "%s/truth.json", dir) < (int)sizeof(path))
		r = fileio_write_atomic(path, text, strlen(text), 0644);
	if (r < 0)
		snprintf(err, errlen, "cannot write the truth into '%s': %s", dir, strerror(-r));
out:
	for (size_t i = 0; t.periods && i < g->county_count * t.due_count; i++) {
		cJSON_Delete(t.periods[i].late);
		cJSON_Delete(t.periods[i].missing);
	}
	free(t.periods);
	free(t.incidents);
	free(t.screening);
	free(t.events);
	free(t.dues);
	free(sorted);
	free(text);
	cJSON_Delete(root);
	return r;
}
