/* Roll-ups: a form's returns aggregated as its x-rollup annotations say (docs/FORMS-FORMAT.md,
 * "x-rollup", which also shows the output). The county hub computes one per (form, period)
 * from the latest return of each school; the region recomputes it from the returns it holds
 * and compares the two with rollup_diff() (DESIGN sections 8 and 9). So the output is
 * deterministic: the same returns added in any order give a byte-identical
 * cJSON_PrintUnformatted() text. Members come in schema property order, count_by keys
 * sorted by bytes, and every sum is exact (integers up to 2^53, the doubles' exact range).
 *
 * A form's plan is compiled once from its schema into an immutable struct rollup_plan that
 * any number of threads may share; compiling copies what it keeps. A struct rollup adds
 * returns to one roll-up: one owner at a time.
 * Limits, refused when compiling with a message: ROLLUP_MAX_PROPERTIES property schemas
 * visited, objects nested ROLLUP_MAX_DEPTH deep, ROLLUP_REF_HOPS local $ref in a row,
 * ROLLUP_DERIVED_MAX derived counts. When adding: count_by keys of ROLLUP_KEY_MAX bytes
 * and ROLLUP_KEYS_MAX distinct keys per field. */
#ifndef COMMON_ROLLUP_H
#define COMMON_ROLLUP_H

#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

struct cJSON;
struct errlist;
struct rollup_plan;
struct rollup_slot;

#define ROLLUP_MAX_PROPERTIES 4096
#define ROLLUP_MAX_DEPTH 16
#define ROLLUP_REF_HOPS 16
#define ROLLUP_DERIVED_MAX 64
#define ROLLUP_NAME_MAX 64 /* bytes of an x-rollup-derived name */
#define ROLLUP_KEY_MAX 256
#define ROLLUP_KEYS_MAX 10000
#define ROLLUP_DIFF_MAX_DEPTH 64

/* Compiles the x-rollup and x-rollup-derived annotations of a form schema (borrowed, e.g.
 * schema_root() of the form's schema). Properties are read through "properties", "items"
 * and local "$ref" ("#/$defs/..."); annotations beside a $ref win over its target's.
 * Refused with -EINVAL and err (may be NULL) saying where and what, e.g.
 * "#/properties/level/x-rollup: unknown value \"avg\"": an unknown x-rollup value, a
 * scalar property without x-rollup, sum or max on a property not of "type" "integer",
 * count_true not on "boolean", count_by on anything but string, integer, boolean or an
 * array of them, count on anything but an array of objects, a property whose name the
 * output uses itself ("returns" and "derived" at the root, "count" in an element), a bad
 * x-rollup-derived entry. Returns 0, -EINVAL or -ENOMEM. Caller frees *ret_plan with
 * rollup_plan_free(). */
int rollup_plan_compile(const struct cJSON *schema_root, char *err, size_t errlen,
                        struct rollup_plan **ret_plan) WUR;
void rollup_plan_free(struct rollup_plan *plan);

/* One roll-up being computed. The members are private. */
struct rollup {
	const struct rollup_plan *plan;
	struct rollup_slot *slots; /* one per aggregated field */
	uint64_t *derived;         /* one per x-rollup-derived entry */
	uint64_t returns;
	uint64_t stamp; /* tells one count_by array from the next */
};

/* An empty roll-up for plan, which is borrowed and must outlive it. 0 or -ENOMEM. */
int rollup_init(struct rollup *r, const struct rollup_plan *plan) WUR;
/* Frees what r holds; r is not usable again before rollup_init(). */
void rollup_release(struct rollup *r);

/* Adds one return's data (borrowed; the form's "data", already valid against the form).
 * Absent and null values add nothing. All or nothing: on failure r is as it was. Returns
 * 0; -EINVAL when a value does not fit the plan (a sum that is not an integer within
 * +-2^53, a count_by value that is an object, data that is not an object, ...); -E2BIG
 * past ROLLUP_KEY_MAX or ROLLUP_KEYS_MAX; -EOVERFLOW when a sum would leave +-2^53;
 * -ENOMEM. */
int rollup_add(struct rollup *r, const struct cJSON *data) WUR;

/* The roll-up as JSON, shaped as docs/FORMS-FORMAT.md shows. Caller frees *ret_json with
 * cJSON_Delete(). 0 or -ENOMEM. */
int rollup_to_json(const struct rollup *r, struct cJSON **ret_json) WUR;

/* Compares two roll-ups (borrowed), e.g. the region's recomputation (expected) with what a
 * county sent (actual, parsed with json_parse_untrusted(), which refuses duplicate member
 * names). Objects are compared member by member in any order, arrays element by element,
 * numbers by exact value. Adds one error to diffs per difference, keyword "rollup", at its
 * JSON Pointer ("/level/2"), in member name order, with a message such as "expected 3, got
 * 2", "expected 3, missing" or "not expected, got 2". Returns the number of differences
 * (also those diffs only counted because it was full; 0 when equal), -ELOOP when values
 * nest deeper than ROLLUP_DIFF_MAX_DEPTH, -EMSGSIZE when a pointer would exceed 64 KiB,
 * -EINVAL for an object member without a name (not made by a parser), or -ENOMEM. */
int rollup_diff(const struct cJSON *expected, const struct cJSON *actual,
                struct errlist *diffs) WUR;

#endif
