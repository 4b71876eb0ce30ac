/* Unit tests for common/suppress: hand-made tables, then random tables with margins whose
 * result is checked by brute force (every hidden cell can change, in some other table
 * with the same published figures). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/suppress.h"
#include "common/banned.h"

static void test_init_limits(void **state)
{
	struct suppress s = {0};
	size_t parts[2] = {0, 1};

	(void)state;
	assert_int_equal(suppress_init(&s, 0), -EINVAL);
	assert_int_equal(suppress_init(&s, (size_t)SUPPRESS_CELLS_MAX + 1), -E2BIG);
	assert_int_equal(suppress_init(&s, 3), 0);
	assert_int_equal(suppress_set(&s, 3, 1), -EINVAL);
	assert_int_equal(suppress_line(&s, 3, parts, 2), -EINVAL);
	assert_int_equal(suppress_line(&s, 0, parts, 2), -EINVAL); /* total among its parts */
	parts[1] = 7;
	assert_int_equal(suppress_line(&s, 2, parts, 2), -EINVAL);
	assert_int_equal(suppress_line(&s, 2, parts, 0), 0); /* ties nothing */
	assert_int_equal(s.nlines, 0);
	assert_int_equal(suppress_get(&s, 99), SUPPRESS_SHOWN);
	suppress_release(&s);
	suppress_release(&s); /* a released struct is zero: releasing again is fine */
}

static void test_primary(void **state)
{
	const long long v[] = {0, 1, 4, 5, -1, 2, 100};
	const enum suppress_state want[] = {SUPPRESS_SHOWN, SUPPRESS_PRIMARY, SUPPRESS_PRIMARY,
	                                    SUPPRESS_SHOWN, SUPPRESS_SHOWN,   SUPPRESS_PRIMARY,
	                                    SUPPRESS_SHOWN};
	struct suppress s;

	(void)state;
	assert_int_equal(suppress_init(&s, ARRAY_SIZE(v)), 0);
	for (size_t i = 0; i < ARRAY_SIZE(v); i++)
		assert_int_equal(suppress_set(&s, i, v[i]), 0);
	assert_int_equal(suppress_run(&s), 3);
	for (size_t i = 0; i < ARRAY_SIZE(v); i++)
		assert_int_equal(suppress_get(&s, i), want[i]);
	suppress_release(&s);
}

/* total 20 = 3 + 7 + 10: 3 is primary; 7, the smallest other count, goes with it. */
static void test_one_line(void **state)
{
	const long long v[] = {20, 3, 7, 10};
	const size_t parts[] = {1, 2, 3};
	struct suppress s;

	(void)state;
	assert_int_equal(suppress_init(&s, 4), 0);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(suppress_set(&s, i, v[i]), 0);
	assert_int_equal(suppress_line(&s, 0, parts, 3), 0);
	assert_int_equal(suppress_run(&s), 2);
	assert_int_equal(suppress_get(&s, 0), SUPPRESS_SHOWN);
	assert_int_equal(suppress_get(&s, 1), SUPPRESS_PRIMARY);
	assert_int_equal(suppress_get(&s, 2), SUPPRESS_COMPLEMENTARY);
	assert_int_equal(suppress_get(&s, 3), SUPPRESS_SHOWN);
	/* zeros are passed over while a count above zero is left */
	assert_int_equal(suppress_set(&s, 2, 0), 0);
	assert_int_equal(suppress_set(&s, 0, 13), 0);
	assert_int_equal(suppress_run(&s), 2);
	assert_int_equal(suppress_get(&s, 2), SUPPRESS_SHOWN);
	assert_int_equal(suppress_get(&s, 3), SUPPRESS_COMPLEMENTARY);
	/* a line holding something that is not a count is no published sum */
	assert_int_equal(suppress_set(&s, 0, -1), 0);
	assert_int_equal(suppress_run(&s), 1);
	suppress_release(&s);
}

/* A 2 x 3 table with margins, cells numbered row by row over the 3 x 4 grid:
 *        3  10  12 | 25
 *        8   9  20 | 37
 *       11  19  32 | 62
 * 3 is primary; its row hides 10, its column 8; 10's column then hides 9. */
static void test_cascade(void **state)
{
	const long long v[] = {3, 10, 12, 25, 8, 9, 20, 37, 11, 19, 32, 62};
	struct suppress s;
	size_t parts[3];

	(void)state;
	assert_int_equal(suppress_init(&s, 12), 0);
	for (size_t i = 0; i < 12; i++)
		assert_int_equal(suppress_set(&s, i, v[i]), 0);
	for (size_t r = 0; r < 3; r++) { /* rows, the margin row too */
		for (size_t c = 0; c < 3; c++)
			parts[c] = r * 4 + c;
		assert_int_equal(suppress_line(&s, r * 4 + 3, parts, 3), 0);
	}
	for (size_t c = 0; c < 4; c++) { /* columns, the margin column too */
		for (size_t r = 0; r < 2; r++)
			parts[r] = r * 4 + c;
		assert_int_equal(suppress_line(&s, 8 + c, parts, 2), 0);
	}
	assert_int_equal(suppress_run(&s), 4);
	assert_int_equal(suppress_get(&s, 0), SUPPRESS_PRIMARY);
	assert_int_equal(suppress_get(&s, 1), SUPPRESS_COMPLEMENTARY);
	assert_int_equal(suppress_get(&s, 4), SUPPRESS_COMPLEMENTARY);
	assert_int_equal(suppress_get(&s, 5), SUPPRESS_COMPLEMENTARY);
	for (size_t i = 0; i < 12; i++)
		if (i != 0 && i != 1 && i != 4 && i != 5)
			assert_int_equal(suppress_get(&s, i), SUPPRESS_SHOWN);
	/* the same input, the same answer */
	assert_int_equal(suppress_run(&s), 4);
	assert_int_equal(suppress_get(&s, 5), SUPPRESS_COMPLEMENTARY);
	suppress_release(&s);
}

/* Three lines, each with two hidden cells, that still fix all three together:
 *   13 = a + b + 10,  24 = a + c + 20,  35 = b + c + 30  with a, b, c = 1, 2, 3.
 * The rule of two per line is met; solving the system is what finds the leak. */
static void test_pinned_by_several_lines(void **state)
{
	/* cells: a b c x1 x2 x3 T1 T2 T3 */
	const long long v[] = {1, 2, 3, 10, 20, 30, 13, 24, 35};
	const size_t l1[] = {0, 1, 3}, l2[] = {0, 2, 4}, l3[] = {1, 2, 5};
	struct suppress s;
	int hidden_x = 0;

	(void)state;
	assert_int_equal(suppress_init(&s, 9), 0);
	for (size_t i = 0; i < 9; i++)
		assert_int_equal(suppress_set(&s, i, v[i]), 0);
	assert_int_equal(suppress_line(&s, 6, l1, 3), 0);
	assert_int_equal(suppress_line(&s, 7, l2, 3), 0);
	assert_int_equal(suppress_line(&s, 8, l3, 3), 0);
	assert_int_equal(suppress_run(&s), 4);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(suppress_get(&s, i), SUPPRESS_PRIMARY);
	for (size_t i = 3; i < 6; i++)
		hidden_x += suppress_get(&s, i) == SUPPRESS_COMPLEMENTARY;
	assert_int_equal(hidden_x, 1);
	assert_int_equal(suppress_get(&s, 3), SUPPRESS_COMPLEMENTARY); /* the smallest */
	suppress_release(&s);
}

/* --- random tables with margins, checked by brute force ------------------------------ */

#define MAX_R 4
#define MAX_C 4
#define BRUTE_MAX 10 /* hidden cells up to which the brute force runs */

struct grid {
	size_t rows, cols; /* inner size; the grid has one more of each for the margins */
	long long v[(MAX_R + 1) * (MAX_C + 1)];
	size_t totals[2 * (MAX_R + MAX_C + 2)];
	size_t parts[2 * (MAX_R + MAX_C + 2)][MAX_R + MAX_C];
	size_t nparts[2 * (MAX_R + MAX_C + 2)];
	size_t nlines;
};

static size_t at(const struct grid *g, size_t r, size_t c)
{
	return r * (g->cols + 1) + c;
}

static void grid_make(struct grid *g, unsigned *seed)
{
	memset(g, 0, sizeof(*g));
	g->rows = 2 + (size_t)(rand_r(seed) % (MAX_R - 1));
	g->cols = 2 + (size_t)(rand_r(seed) % (MAX_C - 1));
	for (size_t r = 0; r < g->rows; r++)
		for (size_t c = 0; c < g->cols; c++) {
			int k = rand_r(seed) % 10;

			/* many zeros and small counts, some large */
			g->v[at(g, r, c)] = k < 3   ? 0
			                    : k < 7 ? 1 + rand_r(seed) % 4
			                            : 5 + rand_r(seed) % 20;
		}
	for (size_t r = 0; r < g->rows; r++)
		for (size_t c = 0; c < g->cols; c++) {
			g->v[at(g, r, g->cols)] += g->v[at(g, r, c)];
			g->v[at(g, g->rows, c)] += g->v[at(g, r, c)];
			g->v[at(g, g->rows, g->cols)] += g->v[at(g, r, c)];
		}
	for (size_t r = 0; r <= g->rows; r++, g->nlines++) {
		g->totals[g->nlines] = at(g, r, g->cols);
		for (size_t c = 0; c < g->cols; c++)
			g->parts[g->nlines][g->nparts[g->nlines]++] = at(g, r, c);
	}
	for (size_t c = 0; c <= g->cols; c++, g->nlines++) {
		g->totals[g->nlines] = at(g, g->rows, c);
		for (size_t r = 0; r < g->rows; r++)
			g->parts[g->nlines][g->nparts[g->nlines]++] = at(g, r, c);
	}
}

/* 1 when changing the hidden cells by delta (-1, 0, +1 each) keeps every line's sum. */
static int keeps_sums(const struct grid *g, const int *delta_of_cell)
{
	for (size_t l = 0; l < g->nlines; l++) {
		long long sum = -delta_of_cell[g->totals[l]];

		for (size_t i = 0; i < g->nparts[l]; i++)
			sum += delta_of_cell[g->parts[l][i]];
		if (sum != 0)
			return 0;
	}
	return 1;
}

static void check_grid(const struct grid *g)
{
	size_t n = (g->rows + 1) * (g->cols + 1), hidden[64], nh = 0;
	int movable[64] = {0}, delta_of_cell[64] = {0};
	struct suppress s;
	long count;

	assert_int_equal(suppress_init(&s, n), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(suppress_set(&s, i, g->v[i]), 0);
	for (size_t l = 0; l < g->nlines; l++)
		assert_int_equal(suppress_line(&s, g->totals[l], g->parts[l], g->nparts[l]), 0);
	count = suppress_run(&s);
	assert_true(count >= 0);
	for (size_t i = 0; i < n; i++) {
		enum suppress_state st = suppress_get(&s, i);
		int small = g->v[i] > 0 && g->v[i] < SUPPRESS_MIN;

		assert_int_equal(st == SUPPRESS_PRIMARY, small);
		if (st != SUPPRESS_SHOWN)
			hidden[nh++] = i;
	}
	assert_int_equal((size_t)count, nh);
	/* no line with exactly one hidden cell */
	for (size_t l = 0; l < g->nlines; l++) {
		size_t k = suppress_get(&s, g->totals[l]) != SUPPRESS_SHOWN;

		for (size_t i = 0; i < g->nparts[l]; i++)
			k += suppress_get(&s, g->parts[l][i]) != SUPPRESS_SHOWN;
		assert_true(k != 1);
	}
	/* every hidden cell can move: some change of the hidden cells by -1, 0 or +1 that
	 * keeps every published sum changes it (a table's circuits are such changes) */
	if (nh > 0 && nh <= BRUTE_MAX) {
		size_t combos = 1;

		for (size_t i = 0; i < nh; i++)
			combos *= 3;
		for (size_t k = 1; k < combos; k++) {
			size_t x = k;

			for (size_t i = 0; i < nh; i++, x /= 3)
				delta_of_cell[hidden[i]] = (int)(x % 3) - 1;
			if (!keeps_sums(g, delta_of_cell))
				continue;
			for (size_t i = 0; i < nh; i++)
				movable[i] |= delta_of_cell[hidden[i]] != 0;
		}
		for (size_t i = 0; i < nh; i++)
			assert_true(movable[i]);
	}
	suppress_release(&s);
}

static void test_random_grids(void **state)
{
	unsigned seed = 20240501;
	struct grid g;

	(void)state;
	for (int i = 0; i < 300; i++) {
		grid_make(&g, &seed);
		check_grid(&g);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_init_limits),
	        cmocka_unit_test(test_primary),
	        cmocka_unit_test(test_one_line),
	        cmocka_unit_test(test_cascade),
	        cmocka_unit_test(test_pinned_by_several_lines),
	        cmocka_unit_test(test_random_grids),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
