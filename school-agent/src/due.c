/* school-agent due: the returns the calendar expects from this school (calendar_expected,
 * from opened_on/closed_on in agent.json), each marked
 *   done    a sent return with a verified receipt exists for the form and period
 *           (the receipt says whether it was on time);
 *   queued  one is in the outbox but not delivered yet (it counts once it is);
 *   due     none yet, the due date is today or later ("N days left");
 *   late    none, and the due date has passed.
 *   school-agent due [--dir DIR] [--as-of DATE] [--json]
 * DATE defaults to today on the agent's clock (RETURNS_CLOCK). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <cjson/cJSON.h>

#include "agent.h"
#include "commands.h"
#include "receipt.h"
#include "spool.h"
#include "common/buf.h"
#include "common/calendar.h"
#include "common/clock.h"
#include "common/datetime.h"
#include "common/json.h"
#include "common/jwk.h"
#include "common/log.h"
#include "common/banned.h"

struct filed {
	char form[65];
	char period[16];
	enum spool_state state;
	int on_time; /* from the receipt: 1, 0, -1 unknown */
};

struct filed_list {
	struct filed *items;
	size_t count, alloc;
};

static int add_filed(struct filed_list *l, const struct spool_item *item, enum spool_state s,
                     int on_time)
{
	struct filed *f;

	if (l->count == l->alloc) {
		size_t n = l->alloc ? 2 * l->alloc : 64;
		void *p = realloc(l->items, n * sizeof(*l->items));

		if (!p)
			return -ENOMEM;
		l->items = p;
		l->alloc = n;
	}
	f = &l->items[l->count++];
	memcpy(f->form, item->form, sizeof(f->form));
	memcpy(f->period, item->period, sizeof(f->period));
	f->state = s;
	f->on_time = on_time;
	return 0;
}

/* The on_time of the kept receipt of item: 1, 0, -1 (null); -2 when the receipt does not
 * verify, and the return does not count as sent. */
static int receipt_on_time(const struct agent *a, const struct jwk *county,
                           const struct spool_item *item, struct buf *extra)
{
	const struct receipt_expect want = {
	        .submission_id = item->id,
	        .sha256 = item->sha256,
	        .school_id = a->cfg.school_id,
	        .county_id = a->cfg.county_id,
	        .form = item->form,
	        .period = item->period,
	};
	struct receipt rc;
	char err[256];

	buf_reset(extra);
	if (spool_read_extra(a, SPOOL_SENT, item->id, extra) < 0 ||
	    receipt_verify(extra->data ? extra->data : "", extra->len, county, &want, &rc, err,
	                   sizeof(err)) < 0)
		return -2;
	return rc.on_time;
}

static int collect(const struct agent *a, const struct jwk *county, struct filed_list *ret)
{
	struct filed_list l = {0};
	struct buf text, extra;
	char err[256];
	int r = 0;

	buf_init(&text, SPOOL_ITEM_MAX);
	buf_init(&extra, 64 * 1024);
	for (int s = SPOOL_QUEUED; s <= SPOOL_SENT && r == 0; s++) {
		struct spool_list ids;

		r = spool_list(a, (enum spool_state)s, &ids);
		if (r < 0)
			break;
		for (size_t i = 0; i < ids.count && r == 0; i++) {
			struct spool_item item;
			int on_time;

			buf_reset(&text);
			if (spool_read(a, (enum spool_state)s, ids.ids[i], &text) < 0 ||
			    spool_item_parse(text.data, text.len, &item, err, sizeof(err)) < 0)
				continue;
			on_time = s == SPOOL_SENT ? receipt_on_time(a, county, &item, &extra) : -1;
			if (on_time == -2) /* no verified receipt: not sent */
				continue;
			r = add_filed(&l, &item, (enum spool_state)s, on_time);
		}
		spool_list_release(&ids);
	}
	buf_release(&text);
	buf_release(&extra);
	if (r < 0) {
		free(l.items);
		return r;
	}
	*ret = l;
	return 0;
}

static int parse_config_date(const char *name, const char *value, struct date *ret)
{
	if (datetime_parse_date(value, strlen(value), ret) < 0) {
		log_error("%s: %s '%s' is not a date (YYYY-MM-DD)", AGENT_CONFIG, name, value);
		return -EINVAL;
	}
	return 0;
}

int command_due(int argc, char **argv)
{
	static const char synopsis[] = "school-agent due [--dir DIR] [--as-of DATE] [--json]";
	char *dir = NULL, *as_of_arg = NULL;
	int json = 0;
	const struct config_option options[] = {
	        {"dir", CONFIG_STRING, &dir, "the agent's folder (default: .)", "DIR", 0, 0},
	        {"as_of", CONFIG_STRING, &as_of_arg, "the day to look from (default: today)",
	         "DATE", 0, 0},
	        {"json", CONFIG_BOOLEAN, &json, "one JSON array", NULL, 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};
	struct date as_of, opened, closed;
	struct calendar_due *expected = NULL;
	struct filed_list filed = {0};
	struct calendar *cal = NULL;
	struct jwk county = {0};
	struct clock clock;
	struct agent agent;
	size_t count = 0;
	char err[1024];
	int next, r, status = EX_OK, opened_agent = 0;

	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		agent_print_usage(synopsis, options);
		return EX_OK;
	}
	r = config_parse_args(options, argc, argv, &next, err, sizeof(err));
	if (r < 0 || next != argc) {
		fprintf(stderr, "school-agent due: %s\nusage: %s\n",
		        r < 0 ? err : "unexpected argument", synopsis);
		status = EX_USAGE;
		goto out;
	}
	if (as_of_arg && datetime_parse_date(as_of_arg, strlen(as_of_arg), &as_of) < 0) {
		fprintf(stderr, "school-agent due: --as-of '%s' is not a date (YYYY-MM-DD)\n",
		        as_of_arg);
		status = EX_USAGE;
		goto out;
	}
	r = clock_init_from_env(&clock, err, sizeof(err));
	if (r < 0) {
		log_error("RETURNS_CLOCK: %s", err);
		status = EX_CONFIG;
		goto out;
	}
	r = agent_open(&agent, dir ? dir : ".", err, sizeof(err));
	opened_agent = 1;
	if (r == 0)
		r = agent_load_calendar(&agent, &cal, err, sizeof(err));
	if (r == 0)
		r = agent_county_key(&agent, &county, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		status = EX_CONFIG;
		goto out;
	}
	/* an import a crash interrupted: queued whole, or not at all */
	if (spool_recover(&agent) < 0)
		log_warning("the outbox may lack the returns of an interrupted import");
	if ((agent.cfg.opened_on &&
	     parse_config_date("opened_on", agent.cfg.opened_on, &opened) < 0) ||
	    (agent.cfg.closed_on &&
	     parse_config_date("closed_on", agent.cfg.closed_on, &closed) < 0)) {
		status = EX_CONFIG;
		goto out;
	}
	if (!as_of_arg)
		datetime_local_date(clock_now_ms(&clock), calendar_utc_offset_min(cal), &as_of);
	r = calendar_expected(cal, agent.cfg.opened_on ? &opened : NULL,
	                      agent.cfg.closed_on ? &closed : NULL, &as_of, &expected, &count);
	if (r < 0) {
		log_errno(r, "failed to list the expected returns");
		status = r == -EINVAL ? EX_CONFIG : EX_SOFTWARE;
		goto out;
	}
	r = collect(&agent, &county, &filed);
	if (r < 0) {
		log_errno(r, "failed to read the returns in '%s'", agent.dir);
		status = EX_IOERR;
		goto out;
	}
	if (json)
		printf("[");
	else
		printf("%-13s  %-8s  %-10s  %-6s  %s\n", "FORM", "PERIOD", "DUE", "STATE",
		       "DETAIL");
	for (size_t i = 0; i < count; i++) {
		const struct calendar_due *d = &expected[i];
		const struct filed *best = NULL;
		long long days = date_to_days(&d->due) - date_to_days(&as_of);
		char due_day[11], detail[64];
		const char *state;

		for (size_t k = 0; k < filed.count; k++) {
			const struct filed *f = &filed.items[k];

			if (strcmp(f->form, d->form) != 0 || strcmp(f->period, d->period) != 0)
				continue;
			if (!best || (f->state == SPOOL_SENT && best->state != SPOOL_SENT) ||
			    (f->state == SPOOL_SENT && f->on_time == 1))
				best = f;
		}
		date_format(&d->due, due_day);
		if (best && best->state == SPOOL_SENT) {
			state = "done";
			snprintf(detail, sizeof(detail), "%s",
			         best->on_time == 1   ? "on time"
			         : best->on_time == 0 ? "late"
			                              : "");
		} else if (best) {
			state = "queued";
			snprintf(detail, sizeof(detail), "not delivered yet; run sync");
		} else if (days >= 0) {
			state = "due";
			snprintf(detail, sizeof(detail), "%lld day%s left", days,
			         days == 1 ? "" : "s");
		} else {
			state = "late";
			snprintf(detail, sizeof(detail), "%lld day%s overdue", -days,
			         days == -1 ? "" : "s");
		}
		if (json)
			printf("%s{\"form\":\"%s\",\"period\":\"%s\",\"due\":\"%s\",\"state\":\"%"
			       "s\","
			       "\"days_left\":%lld,\"detail\":\"%s\"}",
			       i ? ",\n" : "\n", d->form, d->period, due_day, state, days, detail);
		else
			printf("%-13s  %-8s  %-10s  %-6s  %s\n", d->form, d->period, due_day, state,
			       detail);
	}
	if (json)
		printf("%s]\n", count ? "\n" : "");
	if (fflush(stdout) != 0)
		status = EX_IOERR;
out:
	free(expected);
	free(filed.items);
	calendar_free(cal);
	jwk_release(&county);
	if (opened_agent)
		agent_release(&agent);
	config_release(options);
	return status;
}
