/* The public form of an inspection table (?public=1; DESIGN section 7): only tables of
 * counts by county (and level and type) have one. To each, margins are added (a total
 * row; for incidents the totals over levels and over counties of each type), and its
 * counts go through common/suppress.h with one line per published sum: a count from 1 to
 * 4 is shown as "<5", a count hidden so that a sum does not give one away as "x". A ratio
 * computed from a hidden count (completeness, timeliness, coverage) is shown as "x" too.
 * The tables:
 *   late-returns/counties      expected, received, on_time, late, missing; lines: each
 *                              column over the counties and the total row, and in each row
 *                              received = on_time + late, expected = received + missing;
 *   screening-coverage/counties schools, reported, students_enrolled, students_screened,
 *                              without_committee, without_reporting_channel; lines: each
 *                              column over the counties and the total row;
 *   incidents/counts           incidents, victims, perpetrators by county x level for each
 *                              type (and for all types, type null), with the rows
 *                              level null (all levels of a county) and county null (all
 *                              counties); lines: over levels and over counties, each
 *                              measure on its own. (One incident may have several types:
 *                              types do not add up, so no line runs across them.)
 * A margin row has county_id null and county_name "合计", or level null. */
#ifndef REGION_PUBLISH_H
#define REGION_PUBLISH_H

#include <stddef.h>

#include "common/macro.h"

struct cJSON;

/* A table of an inspection answer: rows is a cJSON array of objects whose members are
 * the columns, in order. */
struct publish_table {
	const char *name;
	struct cJSON *rows;
};

/* 1 when table of query has a public form, else 0. */
int publish_supported(const char *query, const char *table);

/* Turns t into its public form in place. -ENOENT (no public form), -E2BIG (too large to
 * suppress), -ENOMEM. */
int publish_apply(const char *query, struct publish_table *t) WUR;

#endif
