/* The simulator's ground truth (issue 6: "the simulator writes its own ground truth"):
 * DIR/truth.json, computed only from what the simulator sent and the receipts the hubs
 * gave it, never from the hubs' or the region's figures, so the demo's reports can be
 * checked against it:
 *   {"seed", "region", "clock",
 *    "returns": [{"submission_id", "school_id", "county_id", "form", "period",
 *                 "action" (its index in the school's plan), "supersedes",
 *                 "received_at", "on_time", "planned_on_time"}],
 *    "periods": [{"county_id", "form", "period", "required", "due_date", "expected",
 *                 "received", "on_time", "late", "missing", "late_schools",
 *                 "missing_schools"}]          required (form, period) x county
 *    "events": [{"county_id", "form", "period", "received", "on_time",
 *                "by_level": {"1": n, ...}}]   event forms: the returns that count
 *    "incidents": {"from", "to", "by_level": [{"county_id", "level", "incidents",
 *                  "victims", "perpetrators"}], "by_type": [{"county_id", "level", "type",
 *                  "incidents"}]},
 *    "level3": [{"county_id", "school_id", "incident_ref", "occurred_on", "submission_id"}],
 *    "overdue": {"as_of", "items": [{"county_id", "school_id", "item_id", "deadline",
 *                "days_overdue", "ledger_period", "submission_id"}]},
 *    "follow_up": {"year", "min_level", "as_of", "schools": [{"county_id", "school_id",
 *                  "incidents", "max_level", "level3", "overdue_items"}]},
 *    "screening": {"period", "counties": [{"county_id", "schools", "reported",
 *                  "students_enrolled", "students_screened", "without_committee",
 *                  "without_reporting_channel"}]}}
 * "The returns that count" are, as DESIGN section 8 says, per school and (form, period)
 * the latest received return no other supersedes (phase and monthly forms), or every
 * event return no other supersedes. A school is expected when the period is required and
 * the school is open on at least one of its days; it is on time when its first return
 * of the period was (per its receipt). Also writes DIR/periods.tsv, "FORM<TAB>PERIOD"
 * for every (form, period) some county reports on, for scripts. */
#ifndef SIMULATE_TRUTH_H
#define SIMULATE_TRUTH_H

#include <stddef.h>
#include <stdint.h>

#include "common/ids.h"
#include "common/macro.h"

struct calendar;
struct region;

/* One return the hub gave a verified receipt for. */
struct truth_record {
	uint32_t school; /* index in the region */
	uint32_t action; /* index in the school's plan */
	char id[IDS_UUID_LEN + 1];
	char supersedes[IDS_UUID_LEN + 1]; /* "" for none */
	int64_t received_ms;               /* the hub's received_at */
	int on_time;                       /* the receipt's: 1, 0, -1 null */
	int planned;                       /* the plan's: 1, 0, -1 */
};

/* Writes DIR/truth.json and DIR/periods.tsv from the records (in any order; the schools'
 * plans are read again from DIR/plans for the data of each return). clock is the
 * RETURNS_CLOCK the run used (for people). err says what failed. */
int truth_write(const char *dir, const struct region *g, const struct calendar *cal,
                const struct truth_record *records, size_t count, const char *clock, char *err,
                size_t errlen) WUR;

#endif
