/* The county's figures for one (form, period) (DESIGN sections 6 and 8): the schools
 * expected to file it, those that did, on time or late, the missing ones (the 催报 list),
 * and the roll-up of the returns that count, made by common/rollup from the form's
 * x-rollup. GET /v1/status, GET /v1/rollups, `county-hub status` and the county-signed
 * roll-ups of the outbox all come from report_compute().
 *
 * The returns that count: for phase and monthly forms, per school the latest received
 * return that no stored return supersedes; for event forms (incident), every return that
 * none supersedes, one per event.
 * Expected: when the period is required, the roster's schools open at least one day of
 * it (opened_on <= its last day and closed_from after its first day); an optional period
 * has no expected set, and neither has an event form: completeness and timeliness are
 * then not defined (NULL in JSON). Received counts expected schools with a return (every
 * school with one when nothing is expected), or the events of an event form. A school is
 * on time when its first return of the period arrived before the deadline, so a late
 * correction does not make it late; an event is on time when its receipt said so.
 *
 * report_compute() only reads: run it inside one transaction (store_begin_read, or the
 * write transaction of the change) so that every figure comes from one snapshot. A
 * struct report_source is read-only once loaded and may be shared between threads. */
#ifndef COUNTY_HUB_REPORT_H
#define COUNTY_HUB_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "common/calendar.h"
#include "common/datetime.h"
#include "common/form.h"
#include "common/macro.h"
#include "store.h"

struct cJSON;
struct rollup_plan;

/* The forms, the calendar and each form's compiled roll-up plan. */
struct report_source {
	struct calendar *calendar;
	struct form_set *forms;
	struct rollup_plan **plans; /* plans[i] is the plan of forms->forms[i] */
};

/* Loads DIR/forms, DIR/campaigns and compiles every form's x-rollup. err names the file
 * and the problem. Release with report_source_release(). */
int report_source_load(const char *schemas_dir, struct report_source *ret, char *err,
                       size_t errlen) WUR;
void report_source_release(struct report_source *src);

struct report_school {
	char school_id[11];
	char name[STORE_NAME_MAX + 1];
	int expected;      /* open during a required period */
	int received;      /* has a return that counts */
	int on_time;       /* received, and its first return came before the deadline */
	int64_t first_ms;  /* its first return of the period (0: none) */
	int64_t latest_ms; /* the return that counts (phase and monthly forms) */
	unsigned long long events, events_on_time; /* event forms */
};

struct report {
	char form[FORM_ID_MAX + 1];
	char period[CALENDAR_PERIOD_MAX];
	enum calendar_period_type type;
	int required;
	struct date start, end;
	int has_due; /* due and deadline_ms are set (not for event forms) */
	struct date due;
	int64_t deadline_ms;
	int approved;                  /* final; otherwise provisional */
	long long expected;            /* -1: not defined */
	long long received;            /* schools, or events */
	long long on_time;             /* schools, or events */
	long long returns;             /* the returns that count (rolled up) */
	struct report_school *schools; /* every school of the roster, in order of id */
	size_t count;
	struct cJSON *rollup;      /* the roll-up object (docs/FORMS-FORMAT.md) */
	struct cJSON *submissions; /* [{"submission_id", "sha256"}] of the returns that count */
};

/* Computes the figures of (form, period) from the store into *ret; release it with
 * report_release(). -ENOENT: the form is not in the calendar or has no form file;
 * -EINVAL: period is not one of the form's; -EDOM: a stored return does not fit the
 * form's roll-up plan (rollup_add refused it: the form file changed since?); -ENOMEM, or a
 * store error. err says what. */
int report_compute(const struct report_source *src, struct store *store, const char *form,
                   const char *period, struct report *ret, char *err, size_t errlen) WUR;
void report_release(struct report *r);

/* "final" or "provisional". */
const char *report_status(const struct report *r);

/* The status document of GET /v1/status and `county-hub status --json`:
 *   {"county_id", "form", "period", "period_type", "required", "start", "end",
 *    "due_date" (null for events), "deadline" (RFC 3339, null), "status", "as_of",
 *    "expected" (null when not defined), "received", "on_time", "late", "missing" (null),
 *    "completeness", "timeliness" (fractions 0..1, null when not defined),
 *    "late_schools": [{"school_id", "name", "received_at"}] (first return),
 *    "missing_schools": [{"school_id", "name"}]}
 * (for event forms both lists are null). Caller frees *ret with cJSON_Delete(). -ENOMEM. */
int report_status_json(const struct report *r, const char *county_id, int64_t now_ms,
                       int offset_min, struct cJSON **ret) WUR;

/* The roll-up payload of docs/PROTOCOL.md ("County hub -> region"):
 *   {"type": "rollup", "county_id", "form", "period", "status", "computed_at", "expected",
 *    "received", "on_time", "rollup", "submissions": [{"submission_id", "sha256"}],
 *    "missing": [school ids]}
 * Caller frees *ret with cJSON_Delete(). -ENOMEM. */
int report_rollup_json(const struct report *r, const char *county_id, int64_t computed_ms,
                       int offset_min, struct cJSON **ret) WUR;

#endif
