/* Small-cell suppression for tables published beyond the inspection team (DESIGN section
 * 7): a count from 1 to SUPPRESS_MIN - 1 (1-4) could point at a child, so it is not shown;
 * and since a table also publishes sums (a row total, a column total, "received = on time
 * + late"), a hidden count must not be recoverable from them.
 *
 * The method, applied to the cells of one table:
 *   1. Primary suppression: every count c with 0 < c < SUPPRESS_MIN is hidden.
 *      Zeros are shown: a zero cannot point at anyone.
 *   2. Complementary suppression: the caller declares the table's lines, each a set of
 *      cells tied by one published sum (the cells of a row, and the row's total). A line in which
 * exactly one cell is hidden gives that cell away (the total minus the others), so one more cell of
 * the line is hidden: the smallest visible count greater than zero (a zero only when the line has
 * no such count left), the first of equal ones. Lines are visited in the order declared, again and
 * again, until no line has exactly one hidden cell.
 *   3. Then the lines are solved as a linear system whose unknowns are the hidden cells
 *      (Gaussian elimination): a hidden cell that the published sums still pin down
 *      exactly, through several lines at once (a cell that is the only link between two
 *      groups of hidden cells, say), gets one more complementary cell: the smallest
 *      visible count greater than zero among the lines it is in (failing that, among the
 *      lines of any hidden cell). Steps 2 and 3 repeat until no hidden cell is pinned down.
 * Each round hides one more cell or stops, so this ends, with the same result for the
 * same input. Steps 1 and 2 are the usual "at least two suppressed cells in every row and
 * column that has a total" rule of statistical offices; step 3 closes the gaps it leaves.
 * A hidden cell can still be bounded ("<5" itself says 1-4; sums and the fact that counts
 * are not negative bound the others): suppression hides exact values, not ranges.
 *
 * A cell that is not a count (a NULL, a ratio) takes no part: it is never hidden by this
 * module, and a line holding one is not a published sum and is ignored. Limits:
 * SUPPRESS_CELLS_MAX cells, SUPPRESS_ENTRIES_MAX cell references over all lines, and
 * SUPPRESS_SYSTEM_MAX entries (lines times hidden cells) in the linear system.
 * Not thread-safe: one owner at a time. */
#ifndef COMMON_SUPPRESS_H
#define COMMON_SUPPRESS_H

#include <stddef.h>

#include "common/macro.h"

#define SUPPRESS_MIN 5 /* counts below this, and above zero, are hidden */
#define SUPPRESS_CELLS_MAX (1u << 20)
#define SUPPRESS_ENTRIES_MAX (1u << 22)
#define SUPPRESS_SYSTEM_MAX (1u << 22)

enum suppress_state {
	SUPPRESS_SHOWN,
	SUPPRESS_PRIMARY,       /* a count from 1 to SUPPRESS_MIN - 1: shown as "<5" */
	SUPPRESS_COMPLEMENTARY, /* hidden so that a sum does not give a primary one away */
};

/* The members are private. */
struct suppress {
	size_t ncells;
	long long *values;    /* < 0: not a count */
	unsigned char *state; /* enum suppress_state */
	size_t *entries;      /* every line, one after the other: its total, then its parts */
	size_t nentries, entries_alloc;
	size_t *line_end; /* line i is entries[line_end[i - 1] .. line_end[i]) */
	size_t nlines, lines_alloc;
};

/* A table of ncells cells, none of them a count yet. -EINVAL when ncells is 0, -E2BIG
 * over SUPPRESS_CELLS_MAX, -ENOMEM. Release with suppress_release(). */
int suppress_init(struct suppress *s, size_t ncells) WUR;
/* Frees what s holds; s is then all zero. Accepts a zeroed struct. */
void suppress_release(struct suppress *s);

/* Cell number cell holds the count value (>= 0); a negative value makes it not a count.
 * -EINVAL when cell is out of range. */
int suppress_set(struct suppress *s, size_t cell, long long value) WUR;

/* Declares a line: the count in cell total is published as the sum of the n cells parts
 * (borrowed; copied). A part named twice counts once. n == 0 ties nothing and is skipped.
 * -EINVAL for a cell out of range or a total among its parts, -E2BIG past
 * SUPPRESS_ENTRIES_MAX, -ENOMEM. */
int suppress_line(struct suppress *s, size_t total, const size_t *parts, size_t n) WUR;

/* Runs the steps (again from the start when called again) and returns how many cells are
 * hidden, or -E2BIG (the linear system would pass SUPPRESS_SYSTEM_MAX) or -ENOMEM: then
 * nothing may be published. */
long suppress_run(struct suppress *s) WUR;

/* The state of a cell after suppress_run(); SUPPRESS_SHOWN for a cell out of range. */
enum suppress_state suppress_get(const struct suppress *s, size_t cell);

#endif
