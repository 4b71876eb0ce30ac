/* region-query's table output: the tables of an inspection answer (the JSON of
 * GET /v1/inspections/<name>, see region-server/src/inspect.h) as aligned text for a
 * terminal. Widths are display columns (common/textwidth.h: a Chinese character takes
 * two), numbers are right-aligned, other cells left-aligned, null is shown empty, arrays
 * are joined by ", ", and a cell is cut at RENDER_CELL_MAX columns with "...". */
#ifndef REGION_QUERY_RENDER_H
#define REGION_QUERY_RENDER_H

#include <stdio.h>

#include "common/macro.h"

struct cJSON;

#define RENDER_CELL_MAX 48 /* display columns of one cell */

/* Prints every table of answer (borrowed) to out: its name and row count, a header, a
 * rule, the rows. -EINVAL when answer is not shaped as an inspection answer, -ENOMEM. */
int render_tables(FILE *out, const struct cJSON *answer) WUR;

#endif
