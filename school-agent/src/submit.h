/* Turning a return's data into a queued, signed submission (DESIGN §4), offline: the
 * checks the hub will make (the form's schema, x-rules and privacy guard; the period
 * known to the calendar for the form, and for an event form the month of its event
 * date), the payload, the signature with the school's key, a final pass of the hub's own
 * envelope check (common/submission.h) over the signed bytes, and the durable write to
 * the outbox. Used by `submit` and `import`. Not thread-safe. */
#ifndef SCHOOL_AGENT_SUBMIT_H
#define SCHOOL_AGENT_SUBMIT_H

#include <stddef.h>

#include "common/calendar.h"
#include "common/clock.h"
#include "common/ids.h"
#include "common/jwk.h"
#include "common/macro.h"

struct agent;
struct cJSON;
struct errlist;
struct form;
struct form_set;
struct schema;

struct submitter {
	const struct agent *agent; /* borrowed */
	struct form_set *forms;
	struct calendar *cal;
	struct schema *envelope; /* schemas/submission.schema.json */
	struct jwk key;          /* the school's private key */
	struct clock clock;
};

/* Loads the forms, the calendar, the envelope schema and the school's key of a.
 * Release with submitter_release. Negative errno with err on failure (-EPERM: the key
 * file is readable by others). */
int submitter_init(struct submitter *ret, const struct agent *a, char *err, size_t errlen) WUR;
void submitter_release(struct submitter *s);

/* The form named id, or NULL with a message in err. */
const struct form *submitter_form(const struct submitter *s, const char *id, char *err,
                                  size_t errlen);

/* The period of data for form f: period itself when not NULL, else, for an event form,
 * the month of its event date. Into ret; -EINVAL with a message in err when period is
 * NULL for another form or the date is missing. */
int submitter_period(const struct submitter *s, const struct form *f, const char *period,
                     const struct cJSON *data, char ret[static CALENDAR_PERIOD_MAX], char *err,
                     size_t errlen) WUR;

/* Checks data (borrowed) for form f and period as the hub will, adding every problem to
 * errs (pointers into data; calendar problems with keyword "period" at the event date or
 * the document). Returns 0 when it may be queued (warnings allowed), the number of
 * errors, or a negative errno when checking could not finish. */
int submitter_check(const struct submitter *s, const struct form *f, const char *period,
                    const struct cJSON *data, struct errlist *errs) WUR;

/* Builds the payload of data (already checked) under a new submission id and signs it:
 * the id into ret_id, the JWS text into *ret_jws (caller frees with free()) and its length
 * into *ret_len. supersedes may be NULL. err says why on failure (-EPROTO: the signed
 * return fails the hub's own checks, a bug). */
int submitter_sign(struct submitter *s, const struct form *f, const char *period,
                   const char *supersedes, const struct cJSON *data,
                   char ret_id[static IDS_UUID_LEN + 1], char **ret_jws, size_t *ret_len, char *err,
                   size_t errlen) WUR;

/* submitter_sign, then the durable write to the outbox (spool_queue). The id into
 * ret_id. err says why on failure. */
int submitter_queue(struct submitter *s, const struct form *f, const char *period,
                    const char *supersedes, const struct cJSON *data,
                    char ret_id[static IDS_UUID_LEN + 1], char *err, size_t errlen) WUR;

/* The agent's clock reading (RETURNS_CLOCK) and the calendar's local date of it. */
void submitter_today(const struct submitter *s, struct date *ret);

#endif
