/* The campaign calendar (DESIGN section 6): which periods each form has, when each is
 * due, when it locks, and which returns a school is expected to file. The calendar is
 * data, read from schemas/campaigns/<campaign>.json; one calendar may hold several
 * campaigns (one file each).
 *
 * File format (a JSON object; every member below is required unless marked optional, and
 * any other member is an error):
 *   "description", "title", "x-label-zh": optional strings for people.
 *   "campaign": the campaign name, [a-z0-9-], e.g. "2024-anti-bullying".
 *   "utc_offset": "+HH:MM" or "-HH:MM": the local time of every date in the file
 *       ("+08:00", Asia/Shanghai). All campaigns of one calendar share it.
 *   "expiry_days": 0..3660: a period locks at the end of the local day
 *       due date + expiry_days.
 *   "phases": 1..CALENDAR_PHASES_MAX objects, in order and not overlapping (gaps are
 *       allowed), each {"id": "YYYY-Pn" (n 1..99), "start": "YYYY-MM-DD",
 *       "end": "YYYY-MM-DD", optional "title", "x-label-zh", "description"}.
 *       The campaign runs from the first start to the last end, at most
 *       CALENDAR_MONTHS_MAX calendar months.
 *   "forms": 1..CALENDAR_FORMS_MAX members, form name ([a-z][a-z0-9_]*) to an object
 *       with "period_type" and the members of that type (plus optional "title",
 *       "x-label-zh", "description", and "expiry_days" overriding the campaign's):
 *     "phase": period ids are the phase ids. "required_in": the phase ids in which every
 *         open school must file (the others are valid periods, but optional).
 *         "due": "phase_end" or {"days_after_end": 0..366}.
 *     "monthly": period ids "YYYY-MM". "from", "to": "YYYY-MM", the first and last month,
 *         within the campaign's months; every month is required.
 *         "due": "month_end", {"next_month_day": 1..28} or {"days_after_end": 0..366}.
 *     "event": one return per event, in the period (month "YYYY-MM") of the date named
 *         by "period_from" (a member of the form, e.g. "occurred_on"). Never expected:
 *         no school is late for having had no event. Optional "from", "to" ("YYYY-MM")
 *         limit the months (default: the campaign's months). "report_within_days"
 *         (0..366): the school reports at most that many days after discovery;
 *         "receive_within_days" (0..366): the hub receives it by the end of the local day
 *         reported_on + receive_within_days. An event period has no due date and locks
 *         only at the end of the local day (campaign end + expiry_days), or (end of its
 *         month + expiry_days) if later: an event discovered late must still be
 *         reportable (it is then simply late).
 * Across the campaigns of one calendar: campaign names and phase ids are unique, a form
 * has one period type, and no (form, period id) pair belongs to two campaigns.
 *
 * Dates are local dates in the file's offset; a deadline on day D is met by any instant
 * before the first instant of D + 1. Limits: CALENDAR_FILE_MAX bytes per file,
 * CALENDAR_FILES_MAX files per directory. A struct calendar is immutable after loading
 * and safe to share between threads. */
#ifndef COMMON_CALENDAR_H
#define COMMON_CALENDAR_H

#include <stddef.h>
#include <stdint.h>

#include "common/datetime.h"
#include "common/macro.h"

#define CALENDAR_FILE_MAX (256 * 1024)
#define CALENDAR_FILES_MAX 64
#define CALENDAR_PHASES_MAX 32
#define CALENDAR_FORMS_MAX 64
#define CALENDAR_MONTHS_MAX 120
#define CALENDAR_NAME_MAX 64   /* bytes in a campaign or form name, without the NUL */
#define CALENDAR_PERIOD_MAX 16 /* room for a period id ("2024-P1", "2024-05") and NUL */

enum calendar_period_type {
	CALENDAR_PERIOD_PHASE,
	CALENDAR_PERIOD_MONTHLY,
	CALENDAR_PERIOD_EVENT,
};

struct calendar;

/* One return a school is expected to file. */
struct calendar_due {
	char form[CALENDAR_NAME_MAX + 1];
	char period[CALENDAR_PERIOD_MAX];
	struct date start, end; /* the period's first and last day */
	struct date due;
	int64_t deadline_ms; /* received before this: on time */
	int64_t expiry_ms;   /* from this instant on the period is locked */
};

/* Loads every "*.json" file of dir (not its subfolders; names starting with '.' are
 * skipped), or one file, or len bytes of text (name is used in messages only). On
 * success *ret is the calendar; caller frees with calendar_free(). On failure err
 * receives a message naming the file and the member, e.g.
 * "2024.json: /phases/1: starts before the previous phase ends". Returns 0, -EINVAL
 * (invalid calendar, no campaign file), -EMSGSIZE (too large, too many files), -ENOMEM,
 * or the negative errno of a failed open or read. */
int calendar_load_dir(const char *dir, struct calendar **ret, char *err, size_t errlen) WUR;
int calendar_load_file(const char *path, struct calendar **ret, char *err, size_t errlen) WUR;
int calendar_load_buffer(const char *text, size_t len, const char *name, struct calendar **ret,
                         char *err, size_t errlen) WUR;
/* Accepts NULL. */
void calendar_free(struct calendar *cal);

/* The UTC offset of every local date in the calendar, in minutes (480 for +08:00). */
int calendar_utc_offset_min(const struct calendar *cal);

/* 1 if some campaign has the form, else 0. */
int calendar_form_known(const struct calendar *cal, const char *form);
/* -ENOENT for an unknown form. */
int calendar_period_type(const struct calendar *cal, const char *form,
                         enum calendar_period_type *ret) WUR;
/* For an event form, the name of the form member that gives its period (borrowed from
 * cal, e.g. "occurred_on"). -ENOENT for an unknown form, -EINVAL for another type. */
int calendar_event_field(const struct calendar *cal, const char *form, const char **ret) WUR;

/* The functions below return -ENOENT for an unknown form and -EINVAL for a period id
 * that is not one of that form's periods ("2024-13", "2024-P4", "2024-02" before the
 * campaign, "2024-P1" for a monthly form). Their answers are local dates or instants. */

/* 0 when period is a valid period of form (expected or not). */
int calendar_period_check(const struct calendar *cal, const char *form, const char *period) WUR;
/* The first and last day of the period. */
int calendar_period_dates(const struct calendar *cal, const char *form, const char *period,
                          struct date *ret_start, struct date *ret_end) WUR;
/* 1 when every school open during the period must file it, 0 when it is optional
 * (phases not in required_in, and every event period). */
int calendar_period_required(const struct calendar *cal, const char *form, const char *period) WUR;
/* The due date, and the deadline: the first instant after the due local day. -ENODATA
 * for an event form (see calendar_event_timely). */
int calendar_due_date(const struct calendar *cal, const char *form, const char *period,
                      struct date *ret) WUR;
int calendar_deadline_ms(const struct calendar *cal, const char *form, const char *period,
                         int64_t *ret_ms) WUR;
/* 1 if a return received at received_ms is on time (received_ms < the deadline), 0 if
 * late; -ENODATA for an event form. */
int calendar_is_on_time(const struct calendar *cal, const char *form, const char *period,
                        int64_t received_ms) WUR;
/* The instant the period locks (see "expiry_days" above). */
int calendar_expiry_ms(const struct calendar *cal, const char *form, const char *period,
                       int64_t *ret_ms) WUR;
/* 1 if the period is locked by expiry at now_ms, else 0. */
int calendar_is_expired(const struct calendar *cal, const char *form, const char *period,
                        int64_t now_ms) WUR;

/* The period id ("2024-05") of an event form for the date given by its period_from
 * member, into ret. -ENOENT for an unknown form, -EINVAL for a form that is not an
 * event form, -ERANGE for a date outside the form's months. (The event functions take
 * the period so that each campaign's own windows apply.) */
int calendar_event_period(const struct calendar *cal, const char *form, const struct date *on,
                          char ret[static CALENDAR_PERIOD_MAX]) WUR;
/* 1 if an event return of period is timely: reported_on <= discovered_on +
 * report_within_days and received_ms < the end of the local day reported_on +
 * receive_within_days; else 0. -EINVAL also for a form that is not an event form. */
int calendar_event_timely(const struct calendar *cal, const char *form, const char *period,
                          const struct date *discovered_on, const struct date *reported_on,
                          int64_t received_ms) WUR;

/* The returns a school must file (completeness denominators, the school agent's "due"):
 * every required period (phase and monthly forms) during which the school was open for
 * at least one day, from opened_on to closed_on, both included (closed_on is its last
 * open day; opened_on NULL: open since before the campaign; closed_on NULL: still open).
 * With as_of (may be NULL) only periods that have started on or before that day. Sorted
 * by due date, then form, then period. *ret is caller-freed with free() (NULL when
 * *ret_count is 0). Returns 0, -EINVAL (closed_on before opened_on) or -ENOMEM. */
int calendar_expected(const struct calendar *cal, const struct date *opened_on,
                      const struct date *closed_on, const struct date *as_of,
                      struct calendar_due **ret, size_t *ret_count) WUR;

#endif
