/* The plan of one school: every return it will file during the campaign, at which campaign
 * instant, for which form and period, with which data, and which earlier return a
 * correction replaces. Drawn at `simulate generate` from the seed (the school's model,
 * model.h, and its profile: diligent, late or silent) and the calendar's required
 * periods; saved as DIR/plans/<school_id>.json and executed by `simulate run`:
 *   {"school_id", "county_id", "name", "profile",
 *    "actions": [{"at": RFC 3339, "form", "period", "on_time": true|false|null (as
 *                 planned; the hub's receipt has the last word), "corrects": null or
 *                 the index of the action it supersedes, "data": {...}}]}
 * Actions are sorted by "at"; a correction always comes after what it corrects. */
#ifndef SIMULATE_PLAN_H
#define SIMULATE_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "common/calendar.h"
#include "common/macro.h"

struct cJSON;
struct region;

#define PLAN_FILE_MAX (16u * 1024 * 1024)
#define PLAN_ACTIONS_MAX 2000

/* The plan of school (an index of g) as a JSON document (see above); caller frees *ret
 * with cJSON_Delete. -EINVAL when the calendar requires a form the simulator cannot
 * fill, or on a calendar error (err says which), -ENOMEM. */
int plan_build(const struct region *g, size_t school, const struct calendar *cal,
               struct cJSON **ret, char *err, size_t errlen) WUR;

/* One action of a loaded plan, borrowed from the document. */
struct plan_action {
	int64_t at_ms;
	const char *form;
	const char *period;
	int on_time;   /* as planned: 1, 0, -1 (null) */
	long corrects; /* index of an earlier action, or -1 */
	const struct cJSON *data;
};

/* Reads DIR/plans/<school_id>.json. *ret_doc is the document (caller frees with
 * cJSON_Delete), *ret_actions its actions (caller frees with free()) and *ret_count their
 * number. -EINVAL when the file is not a plan (err says why), or the errors of fileio_read
 * and json_parse_untrusted. */
int plan_load(const char *path, struct cJSON **ret_doc, struct plan_action **ret_actions,
              size_t *ret_count, char *err, size_t errlen) WUR;

#endif
