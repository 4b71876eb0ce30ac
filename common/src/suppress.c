/* Small-cell suppression: see suppress.h. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/suppress.h"
#include "common/banned.h"

#define EPSILON 1e-9 /* the system's coefficients are small integers and their quotients */

int suppress_init(struct suppress *s, size_t ncells)
{
	struct suppress n = {0};

	if (ncells == 0)
		return -EINVAL;
	if (ncells > SUPPRESS_CELLS_MAX)
		return -E2BIG;
	n.ncells = ncells;
	n.values = malloc(ncells * sizeof(*n.values));
	n.state = calloc(ncells, sizeof(*n.state));
	if (!n.values || !n.state) {
		suppress_release(&n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < ncells; i++)
		n.values[i] = -1;
	*s = n;
	return 0;
}

void suppress_release(struct suppress *s)
{
	free(s->values);
	free(s->state);
	free(s->entries);
	free(s->line_end);
	memset(s, 0, sizeof(*s));
}

int suppress_set(struct suppress *s, size_t cell, long long value)
{
	if (cell >= s->ncells)
		return -EINVAL;
	s->values[cell] = value < 0 ? -1 : value;
	return 0;
}

/* The next capacity of an array of alloc elements that must hold need. */
static size_t capacity(size_t alloc, size_t need)
{
	size_t n = alloc ? alloc : 16;

	while (n < need)
		n *= 2;
	return n;
}

int suppress_line(struct suppress *s, size_t total, const size_t *parts, size_t n)
{
	size_t start = s->nentries, kept = 1;

	if (total >= s->ncells)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (parts[i] >= s->ncells || parts[i] == total)
			return -EINVAL;
	if (n == 0)
		return 0;
	if (n >= SUPPRESS_ENTRIES_MAX - s->nentries)
		return -E2BIG;
	if (s->nentries + n + 1 > s->entries_alloc) {
		size_t alloc = capacity(s->entries_alloc, s->nentries + n + 1);
		size_t *p = realloc(s->entries, alloc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		s->entries = p;
		s->entries_alloc = alloc;
	}
	if (s->nlines + 1 > s->lines_alloc) {
		size_t alloc = capacity(s->lines_alloc, s->nlines + 1);
		size_t *p = realloc(s->line_end, alloc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		s->line_end = p;
		s->lines_alloc = alloc;
	}
	s->entries[start] = total;
	for (size_t i = 0; i < n; i++) {
		size_t j;

		for (j = 1; j < kept && s->entries[start + j] != parts[i]; j++)
			;
		if (j == kept)
			s->entries[start + kept++] = parts[i];
	}
	s->nentries = start + kept;
	s->line_end[s->nlines++] = s->nentries;
	return 0;
}

/* 1 when every cell of the line is a count (the line is a published sum). */
static int line_valid(const struct suppress *s, const size_t *cells, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s->values[cells[i]] < 0)
			return 0;
	return 1;
}

static size_t line_hidden(const struct suppress *s, const size_t *cells, size_t n)
{
	size_t hidden = 0;

	for (size_t i = 0; i < n; i++)
		hidden += s->state[cells[i]] != SUPPRESS_SHOWN;
	return hidden;
}

/* The better of two visible candidates: the smallest count above zero, else a zero; the
 * first of equal ones. n means none yet. */
static size_t better(const struct suppress *s, size_t pick, size_t cell, size_t none)
{
	long long best, v = s->values[cell];

	if (s->state[cell] != SUPPRESS_SHOWN)
		return pick;
	if (pick == none)
		return cell;
	best = s->values[pick];
	return (best == 0 && v > 0) || (v > 0 && v < best) ? cell : pick;
}

/* Step 2 on one line: when exactly one of its cells is hidden, hides another; 1 if so. */
static int visit(struct suppress *s, const size_t *cells, size_t n)
{
	size_t pick = s->ncells;

	if (!line_valid(s, cells, n) || line_hidden(s, cells, n) != 1)
		return 0;
	for (size_t i = 0; i < n; i++)
		pick = better(s, pick, cells[i], s->ncells);
	if (pick == s->ncells)
		return 0; /* cannot happen: a line has two cells or more */
	s->state[pick] = SUPPRESS_COMPLEMENTARY;
	return 1;
}

/* Step 3: finds a hidden cell the lines pin down. 1 with *ret_cell, 0 when there is none,
 * -E2BIG, -ENOMEM. */
static int pinned(const struct suppress *s, size_t *ret_cell)
{
	size_t *column = NULL, *cell_of = NULL, hidden = 0, rows = 0, pivot_row = 0;
	double *m = NULL;
	int r = 0;

	column = malloc(s->ncells * sizeof(*column));
	cell_of = malloc(s->ncells * sizeof(*cell_of));
	if (!column || !cell_of) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < s->ncells; i++) {
		column[i] = s->ncells;
		if (s->state[i] != SUPPRESS_SHOWN) {
			cell_of[hidden] = i;
			column[i] = hidden++;
		}
	}
	for (size_t l = 0, start = 0; l < s->nlines; start = s->line_end[l++]) {
		const size_t *cells = s->entries + start;
		size_t n = s->line_end[l] - start;

		rows += line_valid(s, cells, n) && line_hidden(s, cells, n) > 0;
	}
	if (hidden == 0 || rows == 0)
		goto out;
	if (rows > SUPPRESS_SYSTEM_MAX / hidden) {
		r = -E2BIG;
		goto out;
	}
	m = calloc(rows * hidden, sizeof(*m));
	if (!m) {
		r = -ENOMEM;
		goto out;
	}
	/* one row per line: total - sum of parts = 0, the visible cells being constants */
	rows = 0;
	for (size_t l = 0, start = 0; l < s->nlines; start = s->line_end[l++]) {
		const size_t *cells = s->entries + start;
		size_t n = s->line_end[l] - start;

		if (!line_valid(s, cells, n) || line_hidden(s, cells, n) == 0)
			continue;
		for (size_t i = 0; i < n; i++)
			if (column[cells[i]] < hidden)
				m[rows * hidden + column[cells[i]]] = i == 0 ? 1.0 : -1.0;
		rows++;
	}
	/* reduced row echelon form, partial pivoting */
	for (size_t c = 0; c < hidden && pivot_row < rows; c++) {
		size_t best = pivot_row;
		double *p, f;

		for (size_t i = pivot_row + 1; i < rows; i++)
			if (fabs(m[i * hidden + c]) > fabs(m[best * hidden + c]))
				best = i;
		if (fabs(m[best * hidden + c]) < EPSILON)
			continue;
		if (best != pivot_row)
			for (size_t j = 0; j < hidden; j++) {
				double t = m[best * hidden + j];

				m[best * hidden + j] = m[pivot_row * hidden + j];
				m[pivot_row * hidden + j] = t;
			}
		p = m + pivot_row * hidden;
		f = p[c];
		for (size_t j = 0; j < hidden; j++)
			p[j] /= f;
		for (size_t i = 0; i < rows; i++) {
			double *q = m + i * hidden;

			if (i == pivot_row || fabs(q[c]) < EPSILON)
				continue;
			f = q[c];
			for (size_t j = 0; j < hidden; j++)
				q[j] -= f * p[j];
		}
		pivot_row++;
	}
	/* a row of the reduced form with one unknown left fixes that unknown */
	for (size_t i = 0; i < pivot_row; i++) {
		size_t nonzero = 0, at = 0;

		for (size_t j = 0; j < hidden; j++)
			if (fabs(m[i * hidden + j]) >= EPSILON) {
				nonzero++;
				at = j;
			}
		if (nonzero == 1) {
			*ret_cell = cell_of[at];
			r = 1;
			goto out;
		}
	}
out:
	free(m);
	free(column);
	free(cell_of);
	return r;
}

/* One more complementary cell for the pinned cell h: see suppress.h. 0 when none is
 * left to hide. */
static int protect(struct suppress *s, size_t h)
{
	size_t pick = s->ncells;

	for (int any = 0; any < 2 && pick == s->ncells; any++)
		for (size_t l = 0, start = 0; l < s->nlines; start = s->line_end[l++]) {
			const size_t *cells = s->entries + start;
			size_t n = s->line_end[l] - start, i;

			if (!line_valid(s, cells, n))
				continue;
			for (i = 0; i < n && cells[i] != h; i++)
				;
			if (i == n && (!any || line_hidden(s, cells, n) == 0))
				continue;
			for (i = 0; i < n; i++)
				pick = better(s, pick, cells[i], s->ncells);
		}
	if (pick == s->ncells)
		return 0;
	s->state[pick] = SUPPRESS_COMPLEMENTARY;
	return 1;
}

long suppress_run(struct suppress *s)
{
	size_t hidden = 0, h;
	int changed, r;

	for (size_t i = 0; i < s->ncells; i++) {
		long long v = s->values[i];

		s->state[i] = v > 0 && v < SUPPRESS_MIN ? SUPPRESS_PRIMARY : SUPPRESS_SHOWN;
	}
	for (;;) {
		do {
			changed = 0;
			for (size_t l = 0, start = 0; l < s->nlines; start = s->line_end[l++])
				changed |= visit(s, s->entries + start, s->line_end[l] - start);
		} while (changed);
		r = pinned(s, &h);
		if (r < 0)
			return r;
		if (r == 0 || !protect(s, h))
			break;
	}
	for (size_t i = 0; i < s->ncells; i++)
		hidden += s->state[i] != SUPPRESS_SHOWN;
	return (long)hidden;
}

enum suppress_state suppress_get(const struct suppress *s, size_t cell)
{
	return cell < s->ncells ? (enum suppress_state)s->state[cell] : SUPPRESS_SHOWN;
}
