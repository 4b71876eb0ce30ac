/* Public forms of inspection tables: see publish.h. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/suppress.h"
#include "publish.h"
#include "common/banned.h"

#define MEASURES_MAX 8
#define TOTAL_NAME "合计"

/* A ratio column and the counts it is computed from. */
struct ratio {
	const char *column, *part, *whole;
};

struct spec {
	const char *query, *table;
	const char *counts[MEASURES_MAX]; /* NULL-terminated */
	/* per row: counts[sum] = counts[a] + counts[b] (indexes into counts; -1 ends) */
	int row_lines[4][3];
	struct ratio ratios[3];
	int cube; /* incidents: county x level x type */
};

static const struct spec specs[] = {
        {.query = "late-returns",
         .table = "counties",
         .counts = {"expected", "received", "on_time", "late", "missing", NULL},
         .row_lines = {{1, 2, 3}, {0, 1, 4}, {-1}},
         .ratios = {{"completeness", "received", "expected"},
                    {"timeliness", "on_time", "expected"},
                    {NULL}}},
        {.query = "screening-coverage",
         .table = "counties",
         .counts = {"schools", "reported", "students_enrolled", "students_screened",
                    "without_committee", "without_reporting_channel", NULL},
         .row_lines = {{-1}},
         .ratios = {{"coverage", "students_screened", "students_enrolled"}, {NULL}}},
        {.query = "incidents",
         .table = "counts",
         .counts = {"incidents", "victims", "perpetrators", NULL},
         .row_lines = {{-1}},
         .ratios = {{NULL}},
         .cube = 1},
};

static const struct spec *spec_of(const char *query, const char *table)
{
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
		if (strcmp(specs[i].query, query) == 0 && strcmp(specs[i].table, table) == 0)
			return &specs[i];
	return NULL;
}

int publish_supported(const char *query, const char *table)
{
	return spec_of(query, table) != NULL;
}

/* One row being published: its object and its counts (-1: not a count). */
struct prow {
	cJSON *obj;
	long long v[MEASURES_MAX];
	int margin; /* added here, not a row of the function */
};

struct work {
	const struct spec *spec;
	size_t nmeasures;
	struct prow *rows;
	size_t nrows, alloc;
	size_t norig; /* the function's rows, before the margins */
	struct suppress sup;
};

static long long count_of(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble != floor(v->valuedouble) ||
	    v->valuedouble > 9007199254740991.0)
		return -1;
	return (long long)v->valuedouble;
}

static const char *text_of(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The level of an incidents row: >= 0, or -1 for null (a margin). */
static long long level_of(const cJSON *o)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "level");

	return cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
}

static int same_text(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int add_row(struct work *w, cJSON *obj, const long long *v)
{
	if (w->nrows == w->alloc) {
		size_t alloc = w->alloc ? w->alloc * 2 : 64;
		struct prow *p = realloc(w->rows, alloc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		w->rows = p;
		w->alloc = alloc;
	}
	w->rows[w->nrows].obj = obj;
	memcpy(w->rows[w->nrows].v, v, sizeof(w->rows[w->nrows].v));
	w->rows[w->nrows].margin = w->nrows >= w->norig;
	w->nrows++;
	return 0;
}

/* A copy of template with the columns of the spec's counts set to v and ratios cleared;
 * county_id/county_name/level replaced as asked (keep: leave them). Added to w. */
static int add_margin(struct work *w, const cJSON *template, const long long *v, int county_total,
                      int level_total)
{
	cJSON *o = cJSON_Duplicate(template, 1);
	int r;

	if (!o)
		return -ENOMEM;
	for (size_t m = 0; m < w->nmeasures; m++) {
		cJSON *n = v[m] < 0 ? cJSON_CreateNull() : cJSON_CreateNumber((double)v[m]);

		if (!n || !cJSON_ReplaceItemInObjectCaseSensitive(o, w->spec->counts[m], n)) {
			cJSON_Delete(n);
			cJSON_Delete(o);
			return -ENOMEM;
		}
	}
	if (county_total) {
		cJSON *id = cJSON_CreateNull(), *name = cJSON_CreateString(TOTAL_NAME);

		if (!id || !name || !cJSON_ReplaceItemInObjectCaseSensitive(o, "county_id", id)) {
			cJSON_Delete(id);
			cJSON_Delete(name);
			cJSON_Delete(o);
			return -ENOMEM;
		}
		if (!cJSON_ReplaceItemInObjectCaseSensitive(o, "county_name", name)) {
			cJSON_Delete(name);
			cJSON_Delete(o);
			return -ENOMEM;
		}
	}
	if (level_total) {
		cJSON *n = cJSON_CreateNull();

		if (!n || !cJSON_ReplaceItemInObjectCaseSensitive(o, "level", n)) {
			cJSON_Delete(n);
			cJSON_Delete(o);
			return -ENOMEM;
		}
	}
	r = add_row(w, o, v);
	if (r < 0)
		cJSON_Delete(o);
	return r;
}

/* Adds v into sum (-1, not a count, wins). */
static void accumulate(long long *sum, const long long *v, size_t n)
{
	for (size_t m = 0; m < n; m++)
		sum[m] = sum[m] < 0 || v[m] < 0 ? -1 : sum[m] + v[m];
}

static size_t cell(const struct work *w, size_t row, size_t m)
{
	return row * w->nmeasures + m;
}

/* One line per measure: rows total = the sum of rows parts. */
static int lines(struct work *w, size_t total, const size_t *parts, size_t n, size_t *scratch)
{
	int r = 0;

	for (size_t m = 0; r == 0 && m < w->nmeasures; m++) {
		for (size_t i = 0; i < n; i++)
			scratch[i] = cell(w, parts[i], m);
		r = suppress_line(&w->sup, cell(w, total, m), scratch, n);
	}
	return r;
}

/* Tables with one row per county: a total row and column lines, plus the spec's row lines. */
static int flat(struct work *w, size_t **ret_scratch)
{
	long long sum[MEASURES_MAX];
	size_t n = w->nrows, *parts, *scratch;
	int r;

	for (size_t m = 0; m < MEASURES_MAX; m++)
		sum[m] = m < w->nmeasures ? 0 : -1;
	for (size_t i = 0; i < n; i++)
		accumulate(sum, w->rows[i].v, w->nmeasures);
	if (n > 0) {
		r = add_margin(w, w->rows[0].obj, sum, 1, 0);
		if (r < 0)
			return r;
	}
	r = suppress_init(&w->sup, (w->nrows ? w->nrows : 1) * w->nmeasures);
	if (r < 0)
		return r;
	parts = calloc(w->nrows + 1, sizeof(*parts));
	scratch = calloc(w->nrows + 1, sizeof(*scratch));
	*ret_scratch = scratch;
	if (!parts || !scratch) {
		free(parts);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		parts[i] = i;
	for (size_t m = 0; r == 0 && n > 0 && m < w->nmeasures; m++) {
		for (size_t i = 0; i < n; i++)
			scratch[i] = cell(w, i, m);
		r = suppress_line(&w->sup, cell(w, n, m), scratch, n);
	}
	for (size_t i = 0; r == 0 && i < w->nrows; i++)
		for (size_t l = 0; r == 0 && l < 4 && w->spec->row_lines[l][0] >= 0; l++) {
			const int *x = w->spec->row_lines[l];
			size_t two[2] = {cell(w, i, (size_t)x[1]), cell(w, i, (size_t)x[2])};

			r = suppress_line(&w->sup, cell(w, i, (size_t)x[0]), two, 2);
		}
	free(parts);
	return r;
}

static int compare_text(const char *a, const char *b, int nulls_first)
{
	if (!a || !b)
		return !a && !b ? 0 : (!a) == nulls_first ? -1 : 1;
	return strcmp(a, b);
}

/* county NULLS LAST, level NULLS LAST, type NULLS FIRST: the functions' own order, with
 * the margins after what they add up. */
static int compare_rows(const void *pa, const void *pb)
{
	const cJSON *a = ((const struct prow *)pa)->obj, *b = ((const struct prow *)pb)->obj;
	long long la = level_of(a), lb = level_of(b);
	int c;

	c = compare_text(text_of(a, "county_id"), text_of(b, "county_id"), 0);
	if (c)
		return c;
	if (la != lb)
		return la < 0 ? 1 : lb < 0 ? -1 : la < lb ? -1 : 1;
	return compare_text(text_of(a, "type"), text_of(b, "type"), 1);
}

/* incidents: for each type, county x level with margins. */
static int cube(struct work *w, size_t **ret_scratch)
{
	size_t n = w->nrows, *parts = NULL, *scratch = NULL, *done = NULL;
	int r = 0;

	/* the margins, type by type */
	done = calloc(n + 1, sizeof(*done));
	if (!done)
		return -ENOMEM;
	for (size_t i = 0; r == 0 && i < n; i++) {
		const char *type = text_of(w->rows[i].obj, "type");
		long long grand[MEASURES_MAX];

		if (done[i])
			continue;
		for (size_t m = 0; m < MEASURES_MAX; m++)
			grand[m] = m < w->nmeasures ? 0 : -1;
		/* the counties of this type */
		for (size_t j = i; r == 0 && j < n; j++) {
			const char *county = text_of(w->rows[j].obj, "county_id");
			long long sum[MEASURES_MAX];

			if (done[j] || !same_text(type, text_of(w->rows[j].obj, "type")))
				continue;
			for (size_t m = 0; m < MEASURES_MAX; m++)
				sum[m] = m < w->nmeasures ? 0 : -1;
			for (size_t k = j; k < n; k++)
				if (!done[k] && same_text(type, text_of(w->rows[k].obj, "type")) &&
				    same_text(county, text_of(w->rows[k].obj, "county_id"))) {
					accumulate(sum, w->rows[k].v, w->nmeasures);
					done[k] = 1;
				}
			accumulate(grand, sum, w->nmeasures);
			r = add_margin(w, w->rows[j].obj, sum, 0, 1);
		}
		/* the levels of this type */
		for (size_t j = 0; r == 0 && j < n; j++) {
			long long level = level_of(w->rows[j].obj), sum[MEASURES_MAX];
			int first = 1;

			if (!same_text(type, text_of(w->rows[j].obj, "type")))
				continue;
			for (size_t k = 0; k < j && first; k++)
				first = !(same_text(type, text_of(w->rows[k].obj, "type")) &&
				          level_of(w->rows[k].obj) == level);
			if (!first)
				continue;
			for (size_t m = 0; m < MEASURES_MAX; m++)
				sum[m] = m < w->nmeasures ? 0 : -1;
			for (size_t k = j; k < n; k++)
				if (same_text(type, text_of(w->rows[k].obj, "type")) &&
				    level_of(w->rows[k].obj) == level)
					accumulate(sum, w->rows[k].v, w->nmeasures);
			r = add_margin(w, w->rows[j].obj, sum, 1, 0);
		}
		if (r == 0)
			r = add_margin(w, w->rows[i].obj, grand, 1, 1);
	}
	free(done);
	if (r < 0)
		return r;
	/* the lines, from the rows as they stand now (the margins found by their nulls) */
	r = suppress_init(&w->sup, (w->nrows ? w->nrows : 1) * w->nmeasures);
	if (r < 0)
		return r;
	parts = calloc(w->nrows + 1, sizeof(*parts));
	scratch = calloc(w->nrows + 1, sizeof(*scratch));
	*ret_scratch = scratch;
	if (!parts || !scratch) {
		free(parts);
		return -ENOMEM;
	}
	for (size_t t = n; r == 0 && t < w->nrows; t++) {
		const cJSON *total = w->rows[t].obj;
		const char *type = text_of(total, "type"), *county = text_of(total, "county_id");
		long long level = level_of(total);
		size_t k = 0;

		/* a margin adds up, within its type, the rows that differ from it only where it
		 * is null: (county, null level) the county's levels; (null county, level) the
		 * counties' rows of that level; (null, null) the counties' margins, and again the
		 * levels' margins */
		if (county && level < 0) {
			for (size_t i = 0; i < n; i++)
				if (same_text(type, text_of(w->rows[i].obj, "type")) &&
				    same_text(county, text_of(w->rows[i].obj, "county_id")))
					parts[k++] = i;
			r = lines(w, t, parts, k, scratch);
		} else if (!county && level >= 0) {
			for (size_t i = 0; i < n; i++)
				if (same_text(type, text_of(w->rows[i].obj, "type")) &&
				    level_of(w->rows[i].obj) == level)
					parts[k++] = i;
			r = lines(w, t, parts, k, scratch);
		} else if (!county && level < 0) {
			for (size_t i = n; i < w->nrows; i++)
				if (i != t && same_text(type, text_of(w->rows[i].obj, "type")) &&
				    text_of(w->rows[i].obj, "county_id") &&
				    level_of(w->rows[i].obj) < 0)
					parts[k++] = i;
			r = lines(w, t, parts, k, scratch);
			k = 0;
			for (size_t i = n; r == 0 && i < w->nrows; i++)
				if (i != t && same_text(type, text_of(w->rows[i].obj, "type")) &&
				    !text_of(w->rows[i].obj, "county_id") &&
				    level_of(w->rows[i].obj) >= 0)
					parts[k++] = i;
			if (r == 0)
				r = lines(w, t, parts, k, scratch);
		}
	}
	free(parts);
	return r;
}

static int mark(cJSON *o, const char *name, const char *text)
{
	cJSON *s = cJSON_CreateString(text);

	if (!s || !cJSON_ReplaceItemInObjectCaseSensitive(o, name, s)) {
		cJSON_Delete(s);
		return -ENOMEM;
	}
	return 0;
}

static int measure_index(const struct spec *spec, const char *name)
{
	for (int m = 0; spec->counts[m]; m++)
		if (strcmp(spec->counts[m], name) == 0)
			return m;
	return -1;
}

int publish_apply(const char *query, struct publish_table *t)
{
	const struct spec *spec = spec_of(query, t->name);
	struct work w;
	size_t *scratch = NULL;
	cJSON *row, *rows;
	long r;

	if (!spec)
		return -ENOENT;
	memset(&w, 0, sizeof(w));
	w.spec = spec;
	while (spec->counts[w.nmeasures])
		w.nmeasures++;
	cJSON_ArrayForEach(row, t->rows)
	{
		long long v[MEASURES_MAX];

		for (size_t m = 0; m < MEASURES_MAX; m++)
			v[m] = m < w.nmeasures ? count_of(row, spec->counts[m]) : -1;
		w.norig++; /* before add_row: this one is not a margin */
		r = add_row(&w, row, v);
		if (r < 0)
			goto out;
	}
	r = spec->cube ? cube(&w, &scratch) : flat(&w, &scratch);
	if (r < 0)
		goto out;
	for (size_t i = 0; r == 0 && i < w.nrows; i++)
		for (size_t m = 0; r == 0 && m < w.nmeasures; m++)
			r = suppress_set(&w.sup, cell(&w, i, m), w.rows[i].v[m]);
	if (r < 0)
		goto out;
	r = suppress_run(&w.sup);
	if (r < 0)
		goto out;
	r = 0;
	/* write the result back: hidden counts, then ratios and margins' ratios */
	for (size_t i = 0; r == 0 && i < w.nrows; i++) {
		cJSON *o = w.rows[i].obj;

		for (size_t m = 0; r == 0 && m < w.nmeasures; m++) {
			enum suppress_state st = suppress_get(&w.sup, cell(&w, i, m));

			if (st != SUPPRESS_SHOWN)
				r = mark(o, spec->counts[m], st == SUPPRESS_PRIMARY ? "<5" : "x");
		}
		for (size_t k = 0; r == 0 && spec->ratios[k].column; k++) {
			const struct ratio *q = &spec->ratios[k];
			int a = measure_index(spec, q->part), b = measure_index(spec, q->whole);
			long long part = w.rows[i].v[a], whole = w.rows[i].v[b];
			cJSON *value;

			if (suppress_get(&w.sup, cell(&w, i, (size_t)a)) != SUPPRESS_SHOWN ||
			    suppress_get(&w.sup, cell(&w, i, (size_t)b)) != SUPPRESS_SHOWN) {
				r = mark(o, q->column, "x");
				continue;
			}
			if (!w.rows[i].margin)
				continue; /* a row of the function: its ratio stands */
			value = part >= 0 && whole > 0
			                ? cJSON_CreateNumber(
			                          round((double)part / (double)whole * 1e4) / 1e4)
			                : cJSON_CreateNull();
			if (!value ||
			    !cJSON_ReplaceItemInObjectCaseSensitive(o, q->column, value)) {
				cJSON_Delete(value);
				r = -ENOMEM;
			}
		}
	}
	if (r < 0)
		goto out;
	/* the rows in their order, margins included */
	rows = cJSON_CreateArray();
	if (!rows) {
		r = -ENOMEM;
		goto out;
	}
	if (spec->cube)
		qsort(w.rows, w.nrows, sizeof(*w.rows), compare_rows);
	for (size_t i = 0; i < w.nrows; i++) {
		cJSON *o = w.rows[i].obj;

		/* the function's rows leave the old array; margins are free-standing */
		if (!w.rows[i].margin)
			cJSON_DetachItemViaPointer(t->rows, o);
		cJSON_AddItemToArray(rows, o);
	}
	cJSON_Delete(t->rows);
	t->rows = rows;
	w.nrows = 0; /* every row is in the new array now */
out:
	for (size_t i = 0; i < w.nrows; i++)
		if (w.rows[i].margin)
			cJSON_Delete(w.rows[i].obj); /* margins not handed over */
	free(w.rows);
	free(scratch);
	suppress_release(&w.sup);
	return (int)r;
}
