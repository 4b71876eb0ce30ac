/* `county-hub status [--form F] --period P [--json]`: the figures of one (form, period) for
 * county staff in a terminal (report.h): expected, received, on time, late, missing,
 * completeness and timeliness, then one line per school that is missing, late or on time
 * (the 催报 list first), with Chinese names aligned (common/textwidth.h). Without --form, every
 * form that has the period, one after the other. --json prints the document of
 * GET /v1/status (an array of them without --form). Reads the store without writing: safe
 * beside a running hub. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <cjson/cJSON.h>

#include "common/calendar.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/datetime.h"
#include "common/log.h"
#include "common/textwidth.h"
#include "hub.h"
#include "report.h"
#include "store.h"
#include "common/banned.h"

#define ERR_MAX 1024

enum school_state {
	STATE_MISSING,
	STATE_LATE,
	STATE_ON_TIME,
	STATE_NONE, /* not listed */
};

static const char *const state_labels[] = {
        [STATE_MISSING] = "missing 未报",
        [STATE_LATE] = "late 迟报",
        [STATE_ON_TIME] = "on time 按时",
};

static enum school_state state_of(const struct report *r, const struct report_school *s)
{
	if (r->expected >= 0 && !s->expected)
		return STATE_NONE;
	if (!s->received)
		return r->expected >= 0 ? STATE_MISSING : STATE_NONE;
	return s->on_time ? STATE_ON_TIME : STATE_LATE;
}

static void print_percent(long long part, long long whole)
{
	if (whole > 0)
		printf("%.1f%%", 100.0 * (double)part / (double)whole);
	else
		printf("-");
}

static void print_header(const struct report *r, const char *county_id, int64_t now_ms, int offset)
{
	static const char *const types[] = {
	        [CALENDAR_PERIOD_PHASE] = "phase",
	        [CALENDAR_PERIOD_MONTHLY] = "monthly",
	        [CALENDAR_PERIOD_EVENT] = "event",
	};
	char start[11], end[11], due[11], at[DATETIME_RFC3339_MAX];

	date_format(&r->start, start);
	date_format(&r->end, end);
	datetime_format_rfc3339(now_ms, offset, at);
	printf("county %s  %s %s  %s %s..%s", county_id, r->form, r->period, types[r->type], start,
	       end);
	if (r->has_due) {
		date_format(&r->due, due);
		printf("  due %s", due);
	}
	printf("  %s%s\nas of %s\n\n", report_status(r),
	       r->type != CALENDAR_PERIOD_EVENT && !r->required ? "  (optional period)" : "", at);
}

static void print_periodic(const struct report *r, int offset)
{
	enum school_state order[] = {STATE_MISSING, STATE_LATE, STATE_ON_TIME};
	int name_w = text_width("NAME"), state_w = text_width("STATUS");
	char at[DATETIME_RFC3339_MAX];
	size_t listed = 0;

	if (r->expected >= 0)
		printf("expected  %6lld\n", r->expected);
	else
		printf("expected  %6s  (nobody must file an optional period)\n", "-");
	printf("received  %6lld  completeness ", r->received);
	print_percent(r->received, r->expected);
	printf("\non time   %6lld  timeliness   ", r->on_time);
	print_percent(r->on_time, r->expected);
	printf("\nlate      %6lld\n", r->received - r->on_time);
	if (r->expected >= 0)
		printf("missing   %6lld\n", r->expected - r->received);

	for (size_t i = 0; i < r->count; i++) {
		enum school_state st = state_of(r, &r->schools[i]);
		int w;

		if (st == STATE_NONE)
			continue;
		listed++;
		w = text_width(r->schools[i].name);
		name_w = w > name_w ? w : name_w;
		w = text_width(state_labels[st]);
		state_w = w > state_w ? w : state_w;
	}
	if (listed == 0) {
		printf("\nno school to list\n");
		return;
	}
	printf("\n%-10s  ", "SCHOOL");
	text_pad(stdout, "NAME", name_w);
	printf("  ");
	text_pad(stdout, "STATUS", state_w);
	printf("  FIRST RECEIVED\n");
	for (size_t k = 0; k < ARRAY_SIZE(order); k++) {
		for (size_t i = 0; i < r->count; i++) {
			const struct report_school *s = &r->schools[i];

			if (state_of(r, s) != order[k])
				continue;
			printf("%-10s  ", s->school_id);
			text_pad(stdout, s->name, name_w);
			printf("  ");
			text_pad(stdout, state_labels[order[k]], state_w);
			if (s->received)
				datetime_format_rfc3339(s->first_ms, offset, at);
			printf("  %s\n", s->received ? at : "-");
		}
	}
}

static void print_events(const struct report *r)
{
	int name_w = text_width("NAME");
	size_t listed = 0;

	printf("events    %6lld  (no school is expected to have one)\n", r->received);
	printf("on time   %6lld\nlate      %6lld\n", r->on_time, r->received - r->on_time);
	for (size_t i = 0; i < r->count; i++) {
		int w = text_width(r->schools[i].name);

		if (!r->schools[i].events)
			continue;
		listed++;
		name_w = w > name_w ? w : name_w;
	}
	if (listed == 0) {
		printf("\nno school reported an event\n");
		return;
	}
	printf("\n%-10s  ", "SCHOOL");
	text_pad(stdout, "NAME", name_w);
	printf("  %6s  %7s  %4s\n", "EVENTS", "ON TIME", "LATE");
	for (size_t i = 0; i < r->count; i++) {
		const struct report_school *s = &r->schools[i];

		if (!s->events)
			continue;
		printf("%-10s  ", s->school_id);
		text_pad(stdout, s->name, name_w);
		printf("  %6llu  %7llu  %4llu\n", s->events, s->events_on_time,
		       s->events - s->events_on_time);
	}
}

/* Prints the figures of (form, period), or adds its document to array when json. */
static int show(const struct report_source *src, struct store *store, const char *county_id,
                const char *form, const char *period, int64_t now_ms, cJSON *array)
{
	int offset = calendar_utc_offset_min(src->calendar);
	struct report report;
	cJSON *doc = NULL;
	char err[ERR_MAX] = "";
	int r;

	r = store_begin_read(store);
	if (r == 0)
		r = report_compute(src, store, form, period, &report, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "%s", store_errmsg(store));
	store_rollback(store);
	if (r < 0) {
		log_error("%s", err);
		return r;
	}
	if (array) {
		r = report_status_json(&report, county_id, now_ms, offset, &doc);
		if (r == 0)
			cJSON_AddItemToArray(array, doc);
	} else {
		print_header(&report, county_id, now_ms, offset);
		if (report.type == CALENDAR_PERIOD_EVENT)
			print_events(&report);
		else
			print_periodic(&report, offset);
	}
	report_release(&report);
	return r;
}

int command_status(int argc, char **argv)
{
	static const char synopsis[] = "county-hub status [--form F] --period P [--json]";
	struct config_option table[HUB_OPTIONS_MAX];
	struct hub_config cfg;
	struct report_source src;
	struct store *store = NULL;
	struct clock clock;
	cJSON *array = NULL;
	char *form = NULL, *period = NULL, *text, err[ERR_MAX] = "";
	size_t n = 0, count, shown = 0;
	int json = 0, help = 0, ret = EX_SOFTWARE, r = 0;
	int64_t now_ms;
	const struct config_option extra[] = {
	        {"form", CONFIG_STRING, &form, "the form, e.g. summary (default: every form)", "F",
	         0, 0},
	        {"period", CONFIG_STRING, &period, "the period, e.g. 2024-P2 or 2024-05", "P", 0,
	         0},
	        {"json", CONFIG_BOOLEAN, &json, "print the JSON of GET /v1/status", NULL, 0, 0},
	        {"help", CONFIG_BOOLEAN, &help, "show this help", NULL, 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};

	memset(&src, 0, sizeof(src));
	memset(table, 0, sizeof(table));
	if (hub_config_init(&cfg) < 0)
		return EX_OSERR;
	hub_options_common(&cfg, table, &n);
	hub_options_add(table, &n, extra);
	if (hub_config_load(&cfg, table, 1, argc, argv, NULL, 0, &count) < 0) {
		ret = EX_USAGE;
		goto out;
	}
	if (help || !period) {
		hub_usage(synopsis, table, !help);
		ret = help ? EX_OK : EX_USAGE;
		goto out;
	}
	if (!cfg.county_id) {
		log_error("hub.json names no county_id");
		ret = EX_CONFIG;
		goto out;
	}
	if (!hub_schemas_dir(&cfg)) {
		ret = EX_CONFIG;
		goto out;
	}
	r = report_source_load(cfg.schemas_dir, &src, err, sizeof(err));
	if (r < 0) {
		log_error("cannot load the forms and the calendar: %s", err);
		ret = EX_CONFIG;
		goto out;
	}
	if (hub_clock(&clock) < 0 || hub_open_store(&cfg, STORE_READ_ONLY, &store) < 0)
		goto out;
	now_ms = clock_now_ms(&clock);
	if (json && !(array = cJSON_CreateArray()))
		goto out;
	if (form) {
		r = show(&src, store, cfg.county_id, form, period, now_ms, array);
		shown = r == 0;
	} else {
		for (size_t i = 0; r >= 0 && i < src.forms->count; i++) {
			const char *id = src.forms->forms[i].id;

			if (calendar_period_check(src.calendar, id, period) < 0)
				continue;
			if (shown && !json)
				printf("\n\n");
			r = show(&src, store, cfg.county_id, id, period, now_ms, array);
			shown += r == 0;
		}
		if (r == 0 && shown == 0) {
			log_error("no form has a period \"%s\"", period);
			r = -EINVAL;
		}
	}
	if (r < 0) {
		ret = r == -ENOENT || r == -EINVAL ? EX_DATAERR
		      : r == -EBUSY                ? EX_TEMPFAIL
		                                   : EX_SOFTWARE;
		goto out;
	}
	if (json) {
		/* one form: its document; every form: the array */
		text = cJSON_Print(form ? cJSON_GetArrayItem(array, 0) : array);
		if (!text) {
			log_errno(-ENOMEM, "cannot print the status");
			goto out;
		}
		printf("%s\n", text);
		free(text);
	}
	ret = fflush(stdout) == 0 ? EX_OK : EX_IOERR;
out:
	cJSON_Delete(array);
	store_close(store);
	report_source_release(&src);
	config_release(extra);
	hub_config_release(&cfg);
	return ret;
}
