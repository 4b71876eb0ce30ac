/* `county-hub approve|unapprove --form F --period P` and
 * `county-hub unlock --school ID --form F --period P [--revoke]`: the county's locks.
 * An approved period is final: uploads for it get 423 with reason "approved" (DESIGN
 * section 6) until it is unapproved; a lock exception lets one school through either
 * lock, expiry or approval. These commands write to the store directly, beside a running
 * hub: SQLite serialises the writers (busy timeout), and the hub's writer checks the
 * approval again inside the transaction that stores an upload, so no upload committed
 * after the approval slips through.
 * Approving or reopening queues the county-signed roll-up of the period, now "final" or
 * "provisional" again, in the same transaction (outbox.h): the region sees the two apart. */
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
#include "common/jwk.h"
#include "hub.h"
#include "outbox.h"
#include "report.h"
#include "store.h"
#include "common/banned.h"

#define ERR_MAX 1024
#define PATH_LEN 4096

enum lock_action {
	LOCK_APPROVE,
	LOCK_UNAPPROVE,
	LOCK_UNLOCK,
};

/* Loads the forms and the calendar into *ret and checks that period is a period of form;
 * logs why not. */
static int load_and_check(const struct hub_config *cfg, const char *form, const char *period,
                          struct report_source *ret)
{
	char err[ERR_MAX] = "";
	int r;

	if (!hub_schemas_dir(cfg))
		return -ENOENT;
	r = report_source_load(cfg->schemas_dir, ret, err, sizeof(err));
	if (r < 0) {
		log_error("cannot load the forms and the calendar: %s", err);
		return r;
	}
	r = calendar_period_check(ret->calendar, form, period);
	if (r == -ENOENT)
		log_error("form \"%s\" is not in the calendar", form);
	else if (r < 0)
		log_error("\"%s\" is not a period of form \"%s\"", period, form);
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
	struct report_source src;
	struct store *store = NULL;
	struct clock clock;
	struct jwk key;
	char *form = NULL, *period = NULL, *school = NULL, now[DATETIME_RFC3339_MAX];
	char path[PATH_LEN], err[ERR_MAX] = "";
	int64_t now_ms;
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
	memset(&src, 0, sizeof(src));
	memset(&key, 0, sizeof(key));
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
	r = load_and_check(&cfg, form, period, &src);
	if (r < 0) {
		ret = r == -EINVAL || r == -ENOENT ? EX_DATAERR : EX_CONFIG;
		goto out;
	}
	if (action != LOCK_UNLOCK) {
		if (!cfg.county_id) {
			log_error("hub.json names no county_id");
			ret = EX_CONFIG;
			goto out;
		}
		r = hub_path(&cfg, HUB_KEY_FILE, path, sizeof(path));
		if (r == 0)
			r = jwk_load(&key, path, err, sizeof(err));
		if (r < 0) {
			log_error("cannot load the county key: %s", err[0] ? err : strerror(-r));
			goto out;
		}
	}
	if (hub_clock(&clock) < 0 || hub_open_store(&cfg, 0, &store) < 0)
		goto out;
	now_ms = clock_now_ms(&clock);
	datetime_format_rfc3339(now_ms, DATETIME_SHANGHAI_OFFSET_MIN, now);
	r = store_begin(store);
	if (r == 0 && action == LOCK_UNLOCK)
		r = store_set_exception(store, school, form, period, !revoke, now);
	else if (r == 0)
		r = store_set_approved(store, form, period, action == LOCK_APPROVE, now);
	/* the roll-up goes out final (or provisional again) only when the state changed */
	if (r > 0 && action != LOCK_UNLOCK &&
	    outbox_add_rollup(&src, store, &key, cfg.county_id, form, period, now_ms,
	                      calendar_utc_offset_min(src.calendar), err, sizeof(err)) < 0) {
		log_error("cannot queue the roll-up of %s %s: %s", form, period, err);
		store_rollback(store);
		goto out;
	}
	if (r >= 0) {
		int c = store_commit(store);

		r = c < 0 ? c : r;
	}
	if (r < 0)
		store_rollback(store);
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
	jwk_release(&key);
	report_source_release(&src);
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
