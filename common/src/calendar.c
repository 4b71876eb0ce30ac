/* The campaign calendar: see calendar.h. Loading checks everything once; the queries
 * then only walk small fixed arrays, so they cannot fail except on bad arguments. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/calendar.h"
#include "common/json.h"
#include "common/banned.h"

#define CALENDAR_JSON_DEPTH 8
#define EXPIRY_DAYS_MAX 3660
#define WITHIN_DAYS_MAX 366
#define QUOTE_MAX 48 /* bytes of a user value quoted in a message */
#define POINTER_MAX (CALENDAR_NAME_MAX + 64)

enum due_rule {
	DUE_PERIOD_END,
	DUE_NEXT_MONTH_DAY,
	DUE_DAYS_AFTER_END,
};

struct cal_phase {
	char id[CALENDAR_PERIOD_MAX];
	struct date start, end;
};

struct cal_form {
	char name[CALENDAR_NAME_MAX + 1];
	enum calendar_period_type type;
	uint32_t required; /* phase forms: bit i for phases[i] */
	enum due_rule due_rule;
	int due_arg;
	int from_month, to_month; /* monthly and event forms: year * 12 + month - 1 */
	int expiry_days;
	int report_within_days, receive_within_days;
	char period_from[CALENDAR_NAME_MAX + 1];
};

struct cal_campaign {
	char name[CALENDAR_NAME_MAX + 1];
	int offset_min;
	struct date start, end; /* first day of the first phase, last day of the last */
	size_t nphases, nforms;
	struct cal_phase phases[CALENDAR_PHASES_MAX];
	struct cal_form forms[CALENDAR_FORMS_MAX];
};

struct calendar {
	int offset_min;
	size_t ncampaigns;
	struct cal_campaign *campaigns;
};

/* Where a load reports its first problem. */
struct loader {
	const char *name;
	char *err;
	size_t errlen;
};

/* A resolved (form, period) pair. */
struct period_ref {
	const struct cal_campaign *campaign;
	const struct cal_form *form;
	size_t phase; /* phase forms */
	int month;    /* monthly and event forms */
	struct date start, end;
};

PRINTF_LIKE(4, 5)
static int load_fail(const struct loader *ld, int r, const char *pointer, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!ld->err || !ld->errlen)
		return r;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (pointer)
		snprintf(ld->err, ld->errlen, "%s: %s: %s", ld->name, *pointer ? pointer : "/",
		         msg);
	else
		snprintf(ld->err, ld->errlen, "%s: %s", ld->name, msg);
	return r;
}

/* A user string fit for a message: cut, and without control characters. */
static const char *quote(const char *s, char out[static QUOTE_MAX + 4])
{
	size_t i;

	for (i = 0; s[i] && i < QUOTE_MAX; i++)
		out[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
	if (s[i]) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}

static int month_index(const struct date *d)
{
	return d->year * 12 + d->month - 1;
}

static void month_first_day(int month, struct date *ret)
{
	ret->year = month / 12;
	ret->month = month % 12 + 1;
	ret->day = 1;
}

static void month_last_day(int month, struct date *ret)
{
	month_first_day(month, ret);
	ret->day = date_days_in_month(ret->year, ret->month);
}

static void add_days(const struct date *d, int64_t days, struct date *ret)
{
	date_from_days(date_to_days(d) + days, ret);
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* "YYYY-MM", year 0001..9999. */
static int parse_month(const char *s, int *ret)
{
	int year, month;

	if (strlen(s) != 7 || s[4] != '-')
		return -EINVAL;
	for (int i = 0; i < 7; i++) {
		if (i != 4 && !is_digit(s[i]))
			return -EINVAL;
	}
	year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	month = (s[5] - '0') * 10 + (s[6] - '0');
	if (year < 1 || month < 1 || month > 12)
		return -EINVAL;
	*ret = year * 12 + month - 1;
	return 0;
}

static void format_month(int month, char out[static CALENDAR_PERIOD_MAX])
{
	struct date d;
	char text[11];

	month_first_day(month, &d);
	date_format(&d, text);
	memcpy(out, text, 7);
	out[7] = '\0';
}

/* "YYYY-Pn", n 1..99 without a leading zero. */
static int is_phase_id(const char *s)
{
	size_t len = strlen(s);

	if (len < 7 || len > 8 || s[4] != '-' || s[5] != 'P' || s[6] == '0')
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (i != 4 && i != 5 && !is_digit(s[i]))
			return 0;
	}
	return s[0] != '0' || s[1] != '0' || s[2] != '0' || s[3] != '0';
}

/* Campaign names: [a-z0-9-]; form and member names: [a-z][a-z0-9_]*. */
static int is_name(const char *s, int campaign)
{
	size_t len = strlen(s);

	if (len == 0 || len > CALENDAR_NAME_MAX)
		return 0;
	if (!campaign && !(s[0] >= 'a' && s[0] <= 'z'))
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || is_digit(c) || (campaign ? c == '-' : c == '_')))
			return 0;
	}
	return 1;
}

/* Every member of obj is one of allowed (a NULL-terminated list). */
static int check_members(const struct loader *ld, const char *pointer, const cJSON *obj,
                         const char *const *allowed)
{
	char q[QUOTE_MAX + 4];

	if (!cJSON_IsObject(obj))
		return load_fail(ld, -EINVAL, pointer, "must be an object");
	for (const cJSON *m = obj->child; m; m = m->next) {
		const char *const *a;

		for (a = allowed; *a; a++) {
			if (strcmp(*a, m->string) == 0)
				break;
		}
		if (!*a)
			return load_fail(ld, -EINVAL, pointer, "unknown member '%s'",
			                 quote(m->string, q));
	}
	return 0;
}

/* The optional members for people: strings when present. */
static int check_labels(const struct loader *ld, const char *pointer, const cJSON *obj)
{
	static const char *const labels[] = {"title", "x-label-zh", "description"};

	for (size_t i = 0; i < ARRAY_SIZE(labels); i++) {
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, labels[i]);

		if (m && !cJSON_IsString(m))
			return load_fail(ld, -EINVAL, pointer, "'%s' must be a string", labels[i]);
	}
	return 0;
}

static int get_string(const struct loader *ld, const char *pointer, const cJSON *obj,
                      const char *key, const char **ret)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!m)
		return load_fail(ld, -EINVAL, pointer, "missing member '%s'", key);
	if (!cJSON_IsString(m))
		return load_fail(ld, -EINVAL, pointer, "'%s' must be a string", key);
	*ret = m->valuestring;
	return 0;
}

static int int_value(const struct loader *ld, const char *pointer, const cJSON *m, const char *key,
                     int lo, int hi, int *ret)
{
	double v;

	if (!cJSON_IsNumber(m))
		return load_fail(ld, -EINVAL, pointer, "'%s' must be an integer", key);
	v = m->valuedouble;
	if (!(v >= lo && v <= hi) || v != (double)(int)v)
		return load_fail(ld, -EINVAL, pointer, "'%s' must be an integer from %d to %d", key,
		                 lo, hi);
	*ret = (int)v;
	return 0;
}

static int get_int(const struct loader *ld, const char *pointer, const cJSON *obj, const char *key,
                   int lo, int hi, int *ret)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!m)
		return load_fail(ld, -EINVAL, pointer, "missing member '%s'", key);
	return int_value(ld, pointer, m, key, lo, hi, ret);
}

static int get_date(const struct loader *ld, const char *pointer, const cJSON *obj, const char *key,
                    struct date *ret)
{
	char q[QUOTE_MAX + 4];
	const char *s;
	int r = get_string(ld, pointer, obj, key, &s);

	if (r < 0)
		return r;
	if (datetime_parse_date(s, strlen(s), ret) < 0)
		return load_fail(ld, -EINVAL, pointer, "'%s': '%s' is not a date (YYYY-MM-DD)", key,
		                 quote(s, q));
	return 0;
}

static int get_month(const struct loader *ld, const char *pointer, const cJSON *obj,
                     const char *key, int *ret)
{
	char q[QUOTE_MAX + 4];
	const char *s;
	int r = get_string(ld, pointer, obj, key, &s);

	if (r < 0)
		return r;
	if (parse_month(s, ret) < 0)
		return load_fail(ld, -EINVAL, pointer, "'%s': '%s' is not a month (YYYY-MM)", key,
		                 quote(s, q));
	return 0;
}

static int parse_offset(const char *s, int *ret)
{
	int h, m;

	if (strlen(s) != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':' || !is_digit(s[1]) ||
	    !is_digit(s[2]) || !is_digit(s[4]) || !is_digit(s[5]))
		return -EINVAL;
	h = (s[1] - '0') * 10 + (s[2] - '0');
	m = (s[4] - '0') * 10 + (s[5] - '0');
	if (h > 23 || m > 59)
		return -EINVAL;
	*ret = (h * 60 + m) * (s[0] == '-' ? -1 : 1);
	return 0;
}

static int parse_phases(const struct loader *ld, const cJSON *phases, struct cal_campaign *c)
{
	static const char *const allowed[] = {"id",         "start",       "end", "title",
	                                      "x-label-zh", "description", NULL};
	char pointer[POINTER_MAX], q[QUOTE_MAX + 4];
	int size, r;

	if (!cJSON_IsArray(phases))
		return load_fail(ld, -EINVAL, "/phases", "must be an array");
	size = cJSON_GetArraySize(phases);
	if (size < 1 || size > CALENDAR_PHASES_MAX)
		return load_fail(ld, -EINVAL, "/phases", "must hold 1 to %d phases",
		                 CALENDAR_PHASES_MAX);
	for (const cJSON *p = phases->child; p; p = p->next) {
		struct cal_phase *ph = &c->phases[c->nphases];
		const char *id;

		snprintf(pointer, sizeof(pointer), "/phases/%zu", c->nphases);
		r = check_members(ld, pointer, p, allowed);
		if (r < 0)
			return r;
		r = check_labels(ld, pointer, p);
		if (r < 0)
			return r;
		r = get_string(ld, pointer, p, "id", &id);
		if (r < 0)
			return r;
		if (!is_phase_id(id))
			return load_fail(ld, -EINVAL, pointer,
			                 "'id': '%s' is not a phase id such as '2024-P1'",
			                 quote(id, q));
		for (size_t i = 0; i < c->nphases; i++) {
			if (strcmp(c->phases[i].id, id) == 0)
				return load_fail(ld, -EINVAL, pointer, "phase '%s' appears twice",
				                 id);
		}
		memcpy(ph->id, id, strlen(id) + 1);
		r = get_date(ld, pointer, p, "start", &ph->start);
		if (r < 0)
			return r;
		r = get_date(ld, pointer, p, "end", &ph->end);
		if (r < 0)
			return r;
		if (date_compare(&ph->start, &ph->end) > 0)
			return load_fail(ld, -EINVAL, pointer, "ends before it starts");
		if (c->nphases > 0 && date_compare(&ph->start, &c->phases[c->nphases - 1].end) <= 0)
			return load_fail(ld, -EINVAL, pointer,
			                 "starts before the previous phase ends (phases must be "
			                 "in order and must not overlap)");
		c->nphases++;
	}
	c->start = c->phases[0].start;
	c->end = c->phases[c->nphases - 1].end;
	if (month_index(&c->end) - month_index(&c->start) + 1 > CALENDAR_MONTHS_MAX)
		return load_fail(ld, -EINVAL, "/phases", "the campaign spans more than %d months",
		                 CALENDAR_MONTHS_MAX);
	return 0;
}

/* "due" of a phase or monthly form. */
static int parse_due(const struct loader *ld, const char *pointer, const cJSON *form,
                     struct cal_form *f)
{
	static const char *const one_rule[] = {"next_month_day", "days_after_end", NULL};
	const char *end_word = f->type == CALENDAR_PERIOD_PHASE ? "phase_end" : "month_end";
	const cJSON *due = cJSON_GetObjectItemCaseSensitive(form, "due");
	const cJSON *m;
	int r;

	if (!due)
		return load_fail(ld, -EINVAL, pointer, "missing member 'due'");
	if (cJSON_IsString(due)) {
		if (strcmp(due->valuestring, end_word) != 0)
			return load_fail(
			        ld, -EINVAL, pointer,
			        "'due' must be \"%s\" or an object with "
			        "\"days_after_end\"%s",
			        end_word,
			        f->type == CALENDAR_PERIOD_MONTHLY ? " or \"next_month_day\"" : "");
		f->due_rule = DUE_PERIOD_END;
		f->due_arg = 0;
		return 0;
	}
	r = check_members(ld, pointer, due, one_rule);
	if (r < 0)
		return load_fail(
		        ld, -EINVAL, pointer,
		        "'due' must be \"%s\" or an object with \"days_after_end\"%s", end_word,
		        f->type == CALENDAR_PERIOD_MONTHLY ? " or \"next_month_day\"" : "");
	if (cJSON_GetArraySize(due) != 1)
		return load_fail(ld, -EINVAL, pointer, "'due' must hold exactly one rule");
	m = due->child;
	if (strcmp(m->string, "days_after_end") == 0) {
		f->due_rule = DUE_DAYS_AFTER_END;
		return int_value(ld, pointer, m, "days_after_end", 0, WITHIN_DAYS_MAX, &f->due_arg);
	}
	if (f->type != CALENDAR_PERIOD_MONTHLY)
		return load_fail(ld, -EINVAL, pointer,
		                 "'next_month_day' is only for monthly forms");
	f->due_rule = DUE_NEXT_MONTH_DAY;
	return int_value(ld, pointer, m, "next_month_day", 1, 28, &f->due_arg);
}

static int parse_required_in(const struct loader *ld, const char *pointer, const cJSON *form,
                             const struct cal_campaign *c, struct cal_form *f)
{
	const cJSON *req = cJSON_GetObjectItemCaseSensitive(form, "required_in");
	char q[QUOTE_MAX + 4];

	if (!req)
		return load_fail(ld, -EINVAL, pointer, "missing member 'required_in'");
	if (!cJSON_IsArray(req))
		return load_fail(ld, -EINVAL, pointer,
		                 "'required_in' must be an array of phase ids");
	f->required = 0;
	for (const cJSON *e = req->child; e; e = e->next) {
		size_t i;

		if (!cJSON_IsString(e))
			return load_fail(ld, -EINVAL, pointer,
			                 "'required_in' must be an array of phase ids");
		for (i = 0; i < c->nphases; i++) {
			if (strcmp(c->phases[i].id, e->valuestring) == 0)
				break;
		}
		if (i == c->nphases)
			return load_fail(ld, -EINVAL, pointer,
			                 "'required_in': '%s' is not a phase of this campaign",
			                 quote(e->valuestring, q));
		if (f->required & (UINT32_C(1) << i))
			return load_fail(ld, -EINVAL, pointer, "'required_in': '%s' appears twice",
			                 c->phases[i].id);
		f->required |= UINT32_C(1) << i;
	}
	return 0;
}

/* "from" and "to" of a monthly (required) or event (optional) form. */
static int parse_months(const struct loader *ld, const char *pointer, const cJSON *form,
                        const struct cal_campaign *c, struct cal_form *f)
{
	int first = month_index(&c->start), last = month_index(&c->end), r;
	int optional = f->type == CALENDAR_PERIOD_EVENT;

	f->from_month = first;
	f->to_month = last;
	if (!optional || cJSON_GetObjectItemCaseSensitive(form, "from")) {
		r = get_month(ld, pointer, form, "from", &f->from_month);
		if (r < 0)
			return r;
	}
	if (!optional || cJSON_GetObjectItemCaseSensitive(form, "to")) {
		r = get_month(ld, pointer, form, "to", &f->to_month);
		if (r < 0)
			return r;
	}
	if (f->from_month > f->to_month)
		return load_fail(ld, -EINVAL, pointer, "'from' is after 'to'");
	if (f->from_month < first || f->to_month > last)
		return load_fail(ld, -EINVAL, pointer,
		                 "'from' and 'to' must be within the campaign's months");
	return 0;
}

static int parse_form(const struct loader *ld, const cJSON *form, struct cal_campaign *c,
                      int default_expiry, struct cal_form *f)
{
	static const char *const phase_members[] = {"period_type", "required_in", "due",
	                                            "expiry_days", "title",       "x-label-zh",
	                                            "description", NULL};
	static const char *const monthly_members[] = {"period_type", "from",        "to",
	                                              "due",         "expiry_days", "title",
	                                              "x-label-zh",  "description", NULL};
	static const char *const event_members[] = {
	        "period_type",         "period_from", "report_within_days",
	        "receive_within_days", "from",        "to",
	        "expiry_days",         "title",       "x-label-zh",
	        "description",         NULL};
	char pointer[POINTER_MAX], q[QUOTE_MAX + 4];
	const char *type, *field;
	const cJSON *expiry;
	int r;

	snprintf(pointer, sizeof(pointer), "/forms/%.*s", CALENDAR_NAME_MAX, f->name);
	if (!cJSON_IsObject(form))
		return load_fail(ld, -EINVAL, pointer, "must be an object");
	r = get_string(ld, pointer, form, "period_type", &type);
	if (r < 0)
		return r;
	if (strcmp(type, "phase") == 0) {
		f->type = CALENDAR_PERIOD_PHASE;
		r = check_members(ld, pointer, form, phase_members);
		if (r >= 0)
			r = parse_required_in(ld, pointer, form, c, f);
		if (r >= 0)
			r = parse_due(ld, pointer, form, f);
	} else if (strcmp(type, "monthly") == 0) {
		f->type = CALENDAR_PERIOD_MONTHLY;
		r = check_members(ld, pointer, form, monthly_members);
		if (r >= 0)
			r = parse_months(ld, pointer, form, c, f);
		if (r >= 0)
			r = parse_due(ld, pointer, form, f);
	} else if (strcmp(type, "event") == 0) {
		f->type = CALENDAR_PERIOD_EVENT;
		r = check_members(ld, pointer, form, event_members);
		if (r >= 0)
			r = parse_months(ld, pointer, form, c, f);
		if (r >= 0)
			r = get_string(ld, pointer, form, "period_from", &field);
		if (r >= 0 && !is_name(field, 0))
			r = load_fail(ld, -EINVAL, pointer,
			              "'period_from': '%s' is not a member name", quote(field, q));
		if (r >= 0)
			memcpy(f->period_from, field, strlen(field) + 1);
		if (r >= 0)
			r = get_int(ld, pointer, form, "report_within_days", 0, WITHIN_DAYS_MAX,
			            &f->report_within_days);
		if (r >= 0)
			r = get_int(ld, pointer, form, "receive_within_days", 0, WITHIN_DAYS_MAX,
			            &f->receive_within_days);
	} else {
		return load_fail(ld, -EINVAL, pointer,
		                 "'period_type': '%s' is not one of \"phase\", \"monthly\", "
		                 "\"event\"",
		                 quote(type, q));
	}
	if (r < 0)
		return r;
	r = check_labels(ld, pointer, form);
	if (r < 0)
		return r;
	f->expiry_days = default_expiry;
	expiry = cJSON_GetObjectItemCaseSensitive(form, "expiry_days");
	if (expiry)
		return int_value(ld, pointer, expiry, "expiry_days", 0, EXPIRY_DAYS_MAX,
		                 &f->expiry_days);
	return 0;
}

static int parse_campaign(const struct loader *ld, const cJSON *root, struct cal_campaign *c)
{
	static const char *const allowed[] = {"description", "campaign",   "title",
	                                      "x-label-zh",  "utc_offset", "expiry_days",
	                                      "phases",      "forms",      NULL};
	char q[QUOTE_MAX + 4];
	const char *name, *offset;
	const cJSON *forms;
	int expiry, r;

	r = check_members(ld, "", root, allowed);
	if (r < 0)
		return r;
	r = check_labels(ld, "", root);
	if (r < 0)
		return r;
	r = get_string(ld, "", root, "campaign", &name);
	if (r < 0)
		return r;
	if (!is_name(name, 1))
		return load_fail(ld, -EINVAL, "/campaign",
		                 "'%s' is not a campaign name ([a-z0-9-], at most %d characters)",
		                 quote(name, q), CALENDAR_NAME_MAX);
	memcpy(c->name, name, strlen(name) + 1);
	r = get_string(ld, "", root, "utc_offset", &offset);
	if (r < 0)
		return r;
	if (parse_offset(offset, &c->offset_min) < 0)
		return load_fail(ld, -EINVAL, "/utc_offset",
		                 "'%s' is not an offset such as \"+08:00\"", quote(offset, q));
	r = get_int(ld, "", root, "expiry_days", 0, EXPIRY_DAYS_MAX, &expiry);
	if (r < 0)
		return r;
	if (!cJSON_GetObjectItemCaseSensitive(root, "phases"))
		return load_fail(ld, -EINVAL, "", "missing member 'phases'");
	r = parse_phases(ld, cJSON_GetObjectItemCaseSensitive(root, "phases"), c);
	if (r < 0)
		return r;

	forms = cJSON_GetObjectItemCaseSensitive(root, "forms");
	if (!forms)
		return load_fail(ld, -EINVAL, "", "missing member 'forms'");
	if (!cJSON_IsObject(forms))
		return load_fail(ld, -EINVAL, "/forms", "must be an object");
	if (cJSON_GetArraySize(forms) < 1 || cJSON_GetArraySize(forms) > CALENDAR_FORMS_MAX)
		return load_fail(ld, -EINVAL, "/forms", "must hold 1 to %d forms",
		                 CALENDAR_FORMS_MAX);
	for (const cJSON *m = forms->child; m; m = m->next) {
		struct cal_form *f = &c->forms[c->nforms];

		if (!is_name(m->string, 0))
			return load_fail(
			        ld, -EINVAL, "/forms",
			        "'%s' is not a form name ([a-z][a-z0-9_]*, at most %d characters)",
			        quote(m->string, q), CALENDAR_NAME_MAX);
		memset(f, 0, sizeof(*f));
		memcpy(f->name, m->string, strlen(m->string) + 1);
		r = parse_form(ld, m, c, expiry, f);
		if (r < 0)
			return r;
		c->nforms++;
	}
	return 0;
}

static const struct cal_form *campaign_form(const struct cal_campaign *c, const char *name)
{
	for (size_t i = 0; i < c->nforms; i++) {
		if (strcmp(c->forms[i].name, name) == 0)
			return &c->forms[i];
	}
	return NULL;
}

/* What must hold between campaigns (see calendar.h). */
static int check_against(const struct loader *ld, const struct calendar *cal,
                         const struct cal_campaign *c)
{
	char pointer[POINTER_MAX], from[CALENDAR_PERIOD_MAX], to[CALENDAR_PERIOD_MAX];

	for (size_t k = 0; k < cal->ncampaigns; k++) {
		const struct cal_campaign *o = &cal->campaigns[k];

		if (strcmp(o->name, c->name) == 0)
			return load_fail(ld, -EINVAL, "/campaign", "campaign '%s' is loaded twice",
			                 c->name);
		if (o->offset_min != c->offset_min)
			return load_fail(ld, -EINVAL, "/utc_offset",
			                 "differs from campaign '%s' (one calendar, one offset)",
			                 o->name);
		for (size_t i = 0; i < c->nphases; i++) {
			for (size_t j = 0; j < o->nphases; j++) {
				if (strcmp(c->phases[i].id, o->phases[j].id) != 0)
					continue;
				snprintf(pointer, sizeof(pointer), "/phases/%zu", i);
				return load_fail(ld, -EINVAL, pointer,
				                 "phase id '%s' is also a phase of campaign '%s'",
				                 c->phases[i].id, o->name);
			}
		}
		for (size_t i = 0; i < c->nforms; i++) {
			const struct cal_form *f = &c->forms[i];
			const struct cal_form *of = campaign_form(o, f->name);

			if (!of)
				continue;
			snprintf(pointer, sizeof(pointer), "/forms/%.*s", CALENDAR_NAME_MAX,
			         f->name);
			if (of->type != f->type)
				return load_fail(ld, -EINVAL, pointer,
				                 "has another period type in campaign '%s'",
				                 o->name);
			if (f->type == CALENDAR_PERIOD_PHASE || f->to_month < of->from_month ||
			    f->from_month > of->to_month)
				continue;
			format_month(f->from_month > of->from_month ? f->from_month
			                                            : of->from_month,
			             from);
			format_month(f->to_month < of->to_month ? f->to_month : of->to_month, to);
			return load_fail(ld, -EINVAL, pointer,
			                 "periods %s to %s also belong to campaign '%s'", from, to,
			                 o->name);
		}
	}
	return 0;
}

static int calendar_add_text(struct calendar *cal, const char *text, size_t len,
                             const struct loader *ld)
{
	struct cal_campaign *c = NULL, *grown;
	char jerr[256] = "";
	cJSON *root = NULL;
	int r;

	if (len > CALENDAR_FILE_MAX) {
		r = load_fail(ld, -EMSGSIZE, NULL, "larger than %d bytes", CALENDAR_FILE_MAX);
		goto fail;
	}
	if (cal->ncampaigns >= CALENDAR_FILES_MAX) {
		r = load_fail(ld, -EMSGSIZE, NULL, "more than %d campaigns", CALENDAR_FILES_MAX);
		goto fail;
	}
	r = json_parse_untrusted(text, len, CALENDAR_JSON_DEPTH, &root, jerr, sizeof(jerr));
	if (r < 0) {
		r = load_fail(ld, r == -ENOMEM ? -ENOMEM : -EINVAL, NULL, "not valid JSON: %s",
		              jerr);
		goto fail;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		r = -ENOMEM;
		goto fail;
	}
	r = parse_campaign(ld, root, c);
	if (r < 0)
		goto fail;
	r = check_against(ld, cal, c);
	if (r < 0)
		goto fail;
	grown = realloc(cal->campaigns, (cal->ncampaigns + 1) * sizeof(*grown));
	if (!grown) {
		r = -ENOMEM;
		goto fail;
	}
	cal->campaigns = grown;
	cal->campaigns[cal->ncampaigns++] = *c;
	cal->offset_min = c->offset_min;
	r = 0;
fail:
	free(c);
	cJSON_Delete(root);
	return r;
}

/* Reads a whole regular file of at most CALENDAR_FILE_MAX bytes; caller frees *ret. */
static int read_file(const char *path, char **ret, size_t *ret_len, const struct loader *ld)
{
	char *data = NULL;
	size_t len = 0;
	struct stat st;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return load_fail(ld, -errno, NULL, "cannot open: %s", strerror(errno));
	if (fstat(fd, &st) < 0) {
		r = load_fail(ld, -errno, NULL, "cannot stat: %s", strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		r = load_fail(ld, -EINVAL, NULL, "not a regular file");
		goto fail;
	}
	data = malloc(CALENDAR_FILE_MAX + 1);
	if (!data) {
		r = -ENOMEM;
		goto fail;
	}
	for (;;) {
		ssize_t n = read(fd, data + len, CALENDAR_FILE_MAX + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = load_fail(ld, -errno, NULL, "cannot read: %s", strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > CALENDAR_FILE_MAX) {
			r = load_fail(ld, -EMSGSIZE, NULL, "larger than %d bytes",
			              CALENDAR_FILE_MAX);
			goto fail;
		}
	}
	close(fd);
	*ret = data;
	*ret_len = len;
	return 0;
fail:
	free(data);
	close(fd);
	return r;
}

static int calendar_add_file(struct calendar *cal, const char *path, const struct loader *ld)
{
	char *text = NULL;
	size_t len;
	int r;

	r = read_file(path, &text, &len, ld);
	if (r < 0)
		return r;
	r = calendar_add_text(cal, text, len, ld);
	free(text);
	return r;
}

void calendar_free(struct calendar *cal)
{
	if (!cal)
		return;
	free(cal->campaigns);
	free(cal);
}

int calendar_load_buffer(const char *text, size_t len, const char *name, struct calendar **ret,
                         char *err, size_t errlen)
{
	struct loader ld = {name ? name : "calendar", err, errlen};
	struct calendar *cal;
	int r;

	cal = calloc(1, sizeof(*cal));
	if (!cal)
		return -ENOMEM;
	r = calendar_add_text(cal, text, len, &ld);
	if (r < 0) {
		calendar_free(cal);
		return r;
	}
	*ret = cal;
	return 0;
}

int calendar_load_file(const char *path, struct calendar **ret, char *err, size_t errlen)
{
	struct loader ld = {path, err, errlen};
	struct calendar *cal;
	int r;

	cal = calloc(1, sizeof(*cal));
	if (!cal)
		return -ENOMEM;
	r = calendar_add_file(cal, path, &ld);
	if (r < 0) {
		calendar_free(cal);
		return r;
	}
	*ret = cal;
	return 0;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_campaign_file(const char *name)
{
	size_t len = strlen(name);

	return name[0] != '.' && len > 5 && strcmp(name + len - 5, ".json") == 0;
}

int calendar_load_dir(const char *dir, struct calendar **ret, char *err, size_t errlen)
{
	struct loader ld = {dir, err, errlen};
	struct calendar *cal = NULL;
	char *names[CALENDAR_FILES_MAX];
	size_t count = 0;
	struct dirent *de;
	char *path = NULL;
	DIR *d;
	int r;

	d = opendir(dir);
	if (!d)
		return load_fail(&ld, -errno, NULL, "cannot open the folder: %s", strerror(errno));
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			r = -errno;
			if (r < 0) {
				load_fail(&ld, r, NULL, "cannot read the folder: %s", strerror(-r));
				goto fail;
			}
			break;
		}
		if (!is_campaign_file(de->d_name))
			continue;
		if (count == CALENDAR_FILES_MAX) {
			r = load_fail(&ld, -EMSGSIZE, NULL, "more than %d campaign files",
			              CALENDAR_FILES_MAX);
			goto fail;
		}
		names[count] = strdup(de->d_name);
		if (!names[count]) {
			r = -ENOMEM;
			goto fail;
		}
		count++;
	}
	if (count == 0) {
		r = load_fail(&ld, -EINVAL, NULL, "no campaign files (*.json)");
		goto fail;
	}
	/* Sorted, so that the same folder always gives the same first error. */
	qsort(names, count, sizeof(names[0]), compare_names);
	cal = calloc(1, sizeof(*cal));
	if (!cal) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < count; i++) {
		struct loader file_ld;

		if (asprintf(&path, "%s/%s", dir, names[i]) < 0) {
			path = NULL;
			r = -ENOMEM;
			goto fail;
		}
		file_ld = (struct loader){path, err, errlen};
		r = calendar_add_file(cal, path, &file_ld);
		if (r < 0)
			goto fail;
		free(path);
		path = NULL;
	}
	*ret = cal;
	cal = NULL;
	r = 0;
fail:
	free(path);
	calendar_free(cal);
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	closedir(d);
	return r;
}

int calendar_utc_offset_min(const struct calendar *cal)
{
	return cal->offset_min;
}

/* The first campaign with the form, or NULL. */
static const struct cal_form *find_form(const struct calendar *cal, const char *form)
{
	if (!form)
		return NULL;
	for (size_t k = 0; k < cal->ncampaigns; k++) {
		const struct cal_form *f = campaign_form(&cal->campaigns[k], form);

		if (f)
			return f;
	}
	return NULL;
}

int calendar_form_known(const struct calendar *cal, const char *form)
{
	return find_form(cal, form) != NULL;
}

int calendar_period_type(const struct calendar *cal, const char *form,
                         enum calendar_period_type *ret)
{
	const struct cal_form *f = find_form(cal, form);

	if (!f)
		return -ENOENT;
	*ret = f->type;
	return 0;
}

int calendar_event_field(const struct calendar *cal, const char *form, const char **ret)
{
	const struct cal_form *f = find_form(cal, form);

	if (!f)
		return -ENOENT;
	if (f->type != CALENDAR_PERIOD_EVENT)
		return -EINVAL;
	*ret = f->period_from;
	return 0;
}

static int resolve(const struct calendar *cal, const char *form, const char *period,
                   struct period_ref *ret)
{
	struct period_ref ref = {0};
	int month = -1, known = 0;

	if (!find_form(cal, form))
		return -ENOENT;
	if (!period)
		return -EINVAL;
	if (parse_month(period, &month) < 0)
		month = -1;
	for (size_t k = 0; k < cal->ncampaigns; k++) {
		const struct cal_campaign *c = &cal->campaigns[k];
		const struct cal_form *f = campaign_form(c, form);

		if (!f)
			continue;
		known = 1;
		ref.campaign = c;
		ref.form = f;
		if (f->type == CALENDAR_PERIOD_PHASE) {
			for (size_t i = 0; i < c->nphases; i++) {
				if (strcmp(c->phases[i].id, period) != 0)
					continue;
				ref.phase = i;
				ref.start = c->phases[i].start;
				ref.end = c->phases[i].end;
				*ret = ref;
				return 0;
			}
		} else if (month >= f->from_month && month <= f->to_month) {
			ref.month = month;
			month_first_day(month, &ref.start);
			month_last_day(month, &ref.end);
			*ret = ref;
			return 0;
		}
	}
	return known ? -EINVAL : -ENOENT;
}

int calendar_period_check(const struct calendar *cal, const char *form, const char *period)
{
	struct period_ref ref;

	return resolve(cal, form, period, &ref);
}

int calendar_period_dates(const struct calendar *cal, const char *form, const char *period,
                          struct date *ret_start, struct date *ret_end)
{
	struct period_ref ref;
	int r = resolve(cal, form, period, &ref);

	if (r < 0)
		return r;
	*ret_start = ref.start;
	*ret_end = ref.end;
	return 0;
}

static int ref_required(const struct period_ref *ref)
{
	switch (ref->form->type) {
	case CALENDAR_PERIOD_PHASE:
		return (ref->form->required >> ref->phase) & 1;
	case CALENDAR_PERIOD_MONTHLY:
		return 1;
	case CALENDAR_PERIOD_EVENT:
		break;
	}
	return 0;
}

int calendar_period_required(const struct calendar *cal, const char *form, const char *period)
{
	struct period_ref ref;
	int r = resolve(cal, form, period, &ref);

	if (r < 0)
		return r;
	return ref_required(&ref);
}

/* Phase and monthly forms only. */
static void ref_due(const struct period_ref *ref, struct date *ret)
{
	switch (ref->form->due_rule) {
	case DUE_PERIOD_END:
		*ret = ref->end;
		break;
	case DUE_DAYS_AFTER_END:
		add_days(&ref->end, ref->form->due_arg, ret);
		break;
	case DUE_NEXT_MONTH_DAY:
		month_first_day(month_index(&ref->end) + 1, ret);
		ret->day = ref->form->due_arg;
		break;
	}
}

static int64_t ref_deadline(const struct period_ref *ref)
{
	struct date due;

	ref_due(ref, &due);
	return datetime_day_end(&due, ref->campaign->offset_min);
}

static int64_t ref_expiry(const struct period_ref *ref)
{
	struct date base, day;

	if (ref->form->type == CALENDAR_PERIOD_EVENT)
		base = date_compare(&ref->end, &ref->campaign->end) > 0 ? ref->end
		                                                        : ref->campaign->end;
	else
		ref_due(ref, &base);
	add_days(&base, ref->form->expiry_days, &day);
	return datetime_day_end(&day, ref->campaign->offset_min);
}

/* resolve(), and -ENODATA for event forms, which have no due date. */
static int resolve_due(const struct calendar *cal, const char *form, const char *period,
                       struct period_ref *ret)
{
	int r = resolve(cal, form, period, ret);

	if (r < 0)
		return r;
	return ret->form->type == CALENDAR_PERIOD_EVENT ? -ENODATA : 0;
}

int calendar_due_date(const struct calendar *cal, const char *form, const char *period,
                      struct date *ret)
{
	struct period_ref ref;
	int r = resolve_due(cal, form, period, &ref);

	if (r < 0)
		return r;
	ref_due(&ref, ret);
	return 0;
}

int calendar_deadline_ms(const struct calendar *cal, const char *form, const char *period,
                         int64_t *ret_ms)
{
	struct period_ref ref;
	int r = resolve_due(cal, form, period, &ref);

	if (r < 0)
		return r;
	*ret_ms = ref_deadline(&ref);
	return 0;
}

int calendar_is_on_time(const struct calendar *cal, const char *form, const char *period,
                        int64_t received_ms)
{
	struct period_ref ref;
	int r = resolve_due(cal, form, period, &ref);

	if (r < 0)
		return r;
	return received_ms < ref_deadline(&ref);
}

int calendar_expiry_ms(const struct calendar *cal, const char *form, const char *period,
                       int64_t *ret_ms)
{
	struct period_ref ref;
	int r = resolve(cal, form, period, &ref);

	if (r < 0)
		return r;
	*ret_ms = ref_expiry(&ref);
	return 0;
}

int calendar_is_expired(const struct calendar *cal, const char *form, const char *period,
                        int64_t now_ms)
{
	struct period_ref ref;
	int r = resolve(cal, form, period, &ref);

	if (r < 0)
		return r;
	return now_ms >= ref_expiry(&ref);
}

int calendar_event_period(const struct calendar *cal, const char *form, const struct date *on,
                          char ret[static CALENDAR_PERIOD_MAX])
{
	const struct cal_form *first = find_form(cal, form);
	int month;

	if (!first)
		return -ENOENT;
	if (first->type != CALENDAR_PERIOD_EVENT)
		return -EINVAL;
	month = month_index(on);
	for (size_t k = 0; k < cal->ncampaigns; k++) {
		const struct cal_form *f = campaign_form(&cal->campaigns[k], form);

		if (f && month >= f->from_month && month <= f->to_month) {
			format_month(month, ret);
			return 0;
		}
	}
	return -ERANGE;
}

int calendar_event_timely(const struct calendar *cal, const char *form, const char *period,
                          const struct date *discovered_on, const struct date *reported_on,
                          int64_t received_ms)
{
	struct period_ref ref;
	struct date last_received;
	int r = resolve(cal, form, period, &ref);

	if (r < 0)
		return r;
	if (ref.form->type != CALENDAR_PERIOD_EVENT)
		return -EINVAL;
	if (date_to_days(reported_on) > date_to_days(discovered_on) + ref.form->report_within_days)
		return 0;
	add_days(reported_on, ref.form->receive_within_days, &last_received);
	return received_ms < datetime_day_end(&last_received, ref.campaign->offset_min);
}

static int compare_due(const void *a, const void *b)
{
	const struct calendar_due *x = a, *y = b;
	int r = date_compare(&x->due, &y->due);

	if (r == 0)
		r = strcmp(x->form, y->form);
	if (r == 0)
		r = strcmp(x->period, y->period);
	return r;
}

/* Visits every required period of the open school; fills out when not NULL. */
static size_t collect_expected(const struct calendar *cal, const struct date *opened_on,
                               const struct date *closed_on, const struct date *as_of,
                               struct calendar_due *out)
{
	size_t n = 0;

	for (size_t k = 0; k < cal->ncampaigns; k++) {
		const struct cal_campaign *c = &cal->campaigns[k];

		for (size_t i = 0; i < c->nforms; i++) {
			const struct cal_form *f = &c->forms[i];
			struct period_ref ref = {.campaign = c, .form = f};
			size_t count;

			if (f->type == CALENDAR_PERIOD_EVENT)
				continue;
			count = f->type == CALENDAR_PERIOD_PHASE
			                ? c->nphases
			                : (size_t)(f->to_month - f->from_month + 1);
			for (size_t p = 0; p < count; p++) {
				struct calendar_due *e;

				if (f->type == CALENDAR_PERIOD_PHASE) {
					ref.phase = p;
					ref.start = c->phases[p].start;
					ref.end = c->phases[p].end;
				} else {
					ref.month = f->from_month + (int)p;
					month_first_day(ref.month, &ref.start);
					month_last_day(ref.month, &ref.end);
				}
				if (!ref_required(&ref) ||
				    (opened_on && date_compare(opened_on, &ref.end) > 0) ||
				    (closed_on && date_compare(closed_on, &ref.start) < 0) ||
				    (as_of && date_compare(&ref.start, as_of) > 0))
					continue;
				if (out) {
					e = &out[n];
					memcpy(e->form, f->name, sizeof(e->form));
					if (f->type == CALENDAR_PERIOD_PHASE)
						memcpy(e->period, c->phases[p].id,
						       sizeof(e->period));
					else
						format_month(ref.month, e->period);
					e->start = ref.start;
					e->end = ref.end;
					ref_due(&ref, &e->due);
					e->deadline_ms = ref_deadline(&ref);
					e->expiry_ms = ref_expiry(&ref);
				}
				n++;
			}
		}
	}
	return n;
}

int calendar_expected(const struct calendar *cal, const struct date *opened_on,
                      const struct date *closed_on, const struct date *as_of,
                      struct calendar_due **ret, size_t *ret_count)
{
	struct calendar_due *list = NULL;
	size_t n;

	if (opened_on && closed_on && date_compare(closed_on, opened_on) < 0)
		return -EINVAL;
	n = collect_expected(cal, opened_on, closed_on, as_of, NULL);
	if (n > 0) {
		list = calloc(n, sizeof(*list));
		if (!list)
			return -ENOMEM;
		collect_expected(cal, opened_on, closed_on, as_of, list);
		qsort(list, n, sizeof(*list), compare_due);
	}
	*ret = list;
	*ret_count = n;
	return 0;
}
