/* What happens at one simulated school during the campaign, drawn from its own random
 * stream: its incidents (a Poisson process over its open days, levels about 85/13/2 %)
 * and the items of its problem ledger (问题清单: found at screening, after serious
 * incidents and at inspections; most done by their deadline, some late, some never), and
 * the data of each form built from them: the screening figures, an incident report, the
 * ledger as of a day, a phase summary. Every return built here satisfies its form's schema
 * and x-rules by construction; the caller still checks it with form_check. Dates are day
 * numbers (date_to_days). Not thread-safe: one owner. */
#ifndef SIMULATE_MODEL_H
#define SIMULATE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

struct cJSON;
struct rng;
struct sim_school;

struct incident {
	int64_t occurred, discovered, reported;
	int64_t corrected; /* the day a correction is filed; 0: none */
	int level;
	int escalated;  /* the correction raises it to level 3 */
	unsigned types; /* bit i: incident_types[i] */
	unsigned measures;
	int setting, band;
	int victims_f, victims_m, perps_f, perps_m;
	int parents_notified, support;
	int closed_at_report; /* handled the day it was reported */
	int number;           /* the school's n-th incident: incident_ref "2024-00n" */
};

struct ledger_item {
	int64_t found, deadline;
	int64_t completed, verified; /* 0: never */
	int source, category, text, role;
	int progressing; /* in_progress (not open) once started */
	int number;      /* item_id "R-00n" */
};

struct school_model {
	struct incident *incidents;
	size_t incident_count;
	struct ledger_item *items;
	size_t item_count;
};

/* Draws the school's incidents and ledger items over [first, last] (the campaign's days),
 * within the days it is open. Release with model_release. -ENOMEM. */
int model_build(struct school_model *ret, const struct sim_school *s, int64_t first, int64_t last,
                struct rng *r) WUR;
void model_release(struct school_model *m);

/* The data of each form, NULL on ENOMEM; caller frees with cJSON_Delete. */
struct cJSON *model_screening(const struct sim_school *s, struct rng *r);
/* A correction of screening data: more students screened, a few more figures. */
struct cJSON *model_screening_corrected(const struct cJSON *original, struct rng *r);
/* An incident report; corrected: as the correction filed on i->corrected says it. */
struct cJSON *model_incident(const struct incident *i, int corrected);
/* The ledger as of day as_of: every item found by then, with its status that day. */
struct cJSON *model_ledger(const struct school_model *m, int64_t as_of);
/* The summary of the phase [start, end] filed on day on (phase_no 1..3 picks the texts). */
struct cJSON *model_summary(const struct school_model *m, int64_t start, int64_t end, int64_t on,
                            int phase_no, struct rng *r);

/* "YYYY-MM-DD" of a day number. */
void model_day_text(int64_t day, char ret[static 11]);

#endif
