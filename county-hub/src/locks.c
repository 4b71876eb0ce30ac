/* `county-hub approve|unapprove --form F --period P` and
 * `county-hub unlock --school ID --form F --period P [--revoke]`: the county's locks.
 * An approved period is final: uploads for it get 423 with reason "approved" (DESIGN
 * section 6) until it is unapproved; a lock exception lets one school through either
 * lock, expiry or approval. These commands write to the store directly, beside a running
 * hub: SQLite serialises the writers (busy timeout), and the hub's writer checks the
 * approval again inside the transaction that stores an upload, so no upload committed
 * after the approval slips through. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "common/calendar.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/datetime.h"
#include "common/log.h"
#include "hub.h"
#include "store.h"
#include "common/banned.h"

#define ERR_MAX 1024
#define PATH_LEN 4096

enum lock_action {
	LOCK_APPROVE,
	LOCK_UNAPPROVE,
	LOCK_UNLOCK,
};

/* 0 when period is a period of form in the calendar; logs why not. */
static int check_period(const struct hub_config *cfg, const char *form, const char *period)
{
	struct calendar *cal = NULL;
	char path[PATH_LEN], err[ERR_MAX] = "";
	int r;

	if (!hub_schemas_dir(cfg))
		return -ENOENT;
	snprintf(path, sizeof(path), "%s/campaigns", cfg->schemas_dir);
	r = calendar_load_dir(path, &cal, err, sizeof(err));
	if (r < 0) {
		log_error("cannot load the calendar: %s", err);
		return r;
	}
	r = calendar_period_check(cal, form, period);
	if (r == -ENOENT)
		log_error("form \"%s\" is not in the calendar", form);
	else if (r < 0)
		log_error("\"%s\" is not a period of form \"%s\"", period, form);
	calendar_free(cal);
	return r;
}

static int run(enum lock_action action, int argc, char **argv)
{
	static const char *const synopses[] = {
	        [LOCK_APPROVE] = "county-hub approve --form F --period P",
	        [LOCK_UNAPPROVE] = "county-hub unapprove --form F --period P",
	        [LOCK_UNLOCK] = "county-hub unlock --school ID --form F --period P [--revoke]",
	};
	struct config_option table[HUB_OPTIONS_MAX];
	struct hub_config cfg;
	struct store *store = NULL;
	struct clock clock;
	char *form = NULL, *period = NULL, *school = NULL, now[DATETIME_RFC3339_MAX];
	size_t n = 0, count;
	int help = 0, revoke = 0, ret = EX_SOFTWARE, r;
	const struct config_option extra[] = {
	        {"form", CONFIG_STRING, &form, "the form, e.g. screening", "F", 0, 0},
	        {"period", CONFIG_STRING, &period, "the period, e.g. 2024-P1 or 2024-05", "P", 0,
	         0},
	        {"help", CONFIG_BOOLEAN, &help, "show this help", NULL, 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};
	const struct config_option unlock_extra[] = {
	        {"school", CONFIG_STRING, &school, "10-digit school code", "ID", 0, 0},
	        {"revoke", CONFIG_BOOLEAN, &revoke, "take the exception back", NULL, 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};

	memset(table, 0, sizeof(table));
	if (hub_config_init(&cfg) < 0)
		return EX_OSERR;
	hub_options_common(&cfg, table, &n);
	hub_options_add(table, &n, extra);
	if (action == LOCK_UNLOCK)
		hub_options_add(table, &n, unlock_extra);
	if (hub_config_load(&cfg, table, 1, argc, argv, NULL, 0, &count) < 0) {
		ret = EX_USAGE;
		goto out;
	}
	if (help || !form || !period || (action == LOCK_UNLOCK && !school)) {
		hub_usage(synopses[action], table, !help);
		ret = help ? EX_OK : EX_USAGE;
		goto out;
	}
	if (action == LOCK_UNLOCK && !hub_digits(school, HUB_SCHOOL_ID_LEN)) {
		log_error("school id '%s' is not a 10-digit code", school);
		ret = EX_USAGE;
		goto out;
	}
	if (check_period(&cfg, form, period) < 0) {
		ret = EX_DATAERR;
		goto out;
	}
	if (hub_clock(&clock) < 0 || hub_open_store(&cfg, 0, &store) < 0)
		goto out;
	datetime_format_rfc3339(clock_now_ms(&clock), DATETIME_SHANGHAI_OFFSET_MIN, now);
	if (action == LOCK_UNLOCK)
		r = store_set_exception(store, school, form, period, !revoke, now);
	else
		r = store_set_approved(store, form, period, action == LOCK_APPROVE, now);
	if (r == -ENOENT) {
		log_error("school \"%s\" is not in the roster", school);
		ret = EX_DATAERR;
		goto out;
	}
	if (r < 0) {
		log_errno(r, "cannot write the store: %s", store_errmsg(store));
		ret = r == -EBUSY ? EX_TEMPFAIL : EX_SOFTWARE;
		goto out;
	}
	switch (action) {
	case LOCK_APPROVE:
		log_info("%s %s %s: the county's data is final and locked", form, period,
		         r ? "approved" : "was already approved");
		break;
	case LOCK_UNAPPROVE:
		log_info("%s %s %s", form, period, r ? "reopened" : "was not approved");
		break;
	case LOCK_UNLOCK:
		log_info("school \"%s\" %s a lock exception for %s %s", school,
		         revoke ? (r ? "lost" : "had no") : (r ? "granted" : "already had"), form,
		         period);
		break;
	}
	ret = EX_OK;
out:
	store_close(store);
	config_release(extra);
	if (action == LOCK_UNLOCK)
		config_release(unlock_extra);
	hub_config_release(&cfg);
	return ret;
}

int command_approve(int argc, char **argv)
{
	return run(LOCK_APPROVE, argc, argv);
}

int command_unapprove(int argc, char **argv)
{
	return run(LOCK_UNAPPROVE, argc, argv);
}

int command_unlock(int argc, char **argv)
{
	return run(LOCK_UNLOCK, argc, argv);
}
