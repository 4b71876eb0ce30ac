/* school-agent import: returns from a CSV file as a spreadsheet saves it (docs/CSV-IMPORT.md).
 *   school-agent import [--dir DIR] --form FORM [--period PERIOD]
 *                       [--encoding auto|utf-8|gb18030] FILE.csv
 * The first record names the columns: a field name or its x-label-zh, nested fields
 * joined with '.' ("victims.female", "被欺凌学生数.女"). Each later record is one return
 * (incident, screening, summary), or, for a form whose return is a list (rectification:
 * "items"), one element of the list; such rows are grouped into one return per period
 * and value of the return-level columns (as_of).
 * Every row is checked as `submit` checks a return; problems name the line and column.
 * Nothing is queued unless every row is valid; then the returns are queued in file order
 * and their ids printed one per line. Exit 0, 65 (bad data), 64 (usage), 66, 74.
 *
 * Memory stays flat whatever the file holds: the file is read in pieces that end at a
 * record boundary, and each return is checked, signed and written to a batch folder
 * (spool.h) as soon as its row is read, then forgotten. A list form's rows are held until
 * the end of the file (a return is whole only then), at most IMPORT_ROWS_MAX of them.
 * Once every row is valid the batch is queued whole; with a problem it is removed. A
 * crash or kill leaves no half-queued file: before the batch is marked complete nothing of
 * it is queued (the next agent command removes it, and the file is imported again);
 * after, all of it is (the next agent command finishes moving it into the outbox and logs
 * that it did, so the file must not be imported again: `status` lists its returns). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "agent.h"
#include "commands.h"
#include "csvchunk.h"
#include "spool.h"
#include "submit.h"
#include "common/buf.h"
#include "common/csv.h"
#include "common/datetime.h"
#include "common/errlist.h"
#include "common/fileio.h"
#include "common/form.h"
#include "common/log.h"
#include "common/schema.h"
#include "common/banned.h"

#define IMPORT_ROWS_MAX 10000
#define IMPORT_COLUMNS_MAX 128
#define IMPORT_DEPTH_MAX 4 /* "a.b.c.d" */
#define IMPORT_NAME_MAX 128
#define IMPORT_PROBLEMS_MAX 200 /* printed; more are counted */

struct column {
	const char *header;                           /* borrowed from the header copy */
	char path[IMPORT_DEPTH_MAX][IMPORT_NAME_MAX]; /* member names from the row object */
	int depth;
	char pointer[IMPORT_DEPTH_MAX * (IMPORT_NAME_MAX + 1) + 1];
	int return_level; /* list forms: a member of the return, not of the list element */
	const cJSON *schema;
	int required; /* the parent object requires it */
};

/* One return being assembled; for a list form, the lines of its elements. */
struct pending {
	cJSON *data;
	char period[CALENDAR_PERIOD_MAX];
	char *key; /* list forms: the period and return-level values, to group rows */
	size_t first_line;
	size_t *lines; /* list forms: the line of each element */
	size_t count, alloc;
};

/* A period that has a return already (forms with one return per period). */
struct seen {
	char period[CALENDAR_PERIOD_MAX];
	size_t line;
};

struct import {
	struct submitter *sub;
	const struct form *form;
	const char *file;
	const char *period_arg;
	const cJSON *root;        /* the form's schema */
	const char *list_member;  /* list forms: e.g. "items" */
	const cJSON *item_schema; /* its element schema */
	int one_per_period;       /* not an event form: one return per period */
	struct column columns[IMPORT_COLUMNS_MAX];
	size_t ncolumns;
	char *headers;           /* copies of the header fields, NUL-separated */
	struct pending *returns; /* list forms only: the returns being assembled */
	size_t nreturns, alloc;
	struct seen *seen; /* periods with a return, for one_per_period */
	size_t nseen, seen_alloc;
	struct spool_batch batch; /* the signed returns, until every row is valid */
	int batching;
	char (*ids)[IDS_UUID_LEN + 1]; /* of the returns in the batch, in file order */
	size_t nids, ids_alloc;
	size_t records;  /* read, the header included */
	size_t problems; /* errors found */
	size_t warnings;
	int failed; /* a return could not be signed or written: the exit code */
};

static void problem(struct import *im, int warning, size_t line, const struct column *col,
                    const char *fmt, ...) PRINTF_LIKE(5, 6);

static void problem(struct import *im, int warning, size_t line, const struct column *col,
                    const char *fmt, ...)
{
	va_list ap;

	if (warning)
		im->warnings++;
	else
		im->problems++;
	if (im->problems + im->warnings > IMPORT_PROBLEMS_MAX)
		return;
	printf("%s: %sline %zu", im->file, warning ? "warning: " : "", line);
	if (col)
		printf(", column %zu (%s)", (size_t)(col - im->columns) + 1, col->header);
	printf(": ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static int type_allows(const cJSON *schema, const char *type)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(schema, "type");
	const cJSON *e;

	if (cJSON_IsString(t))
		return strcmp(t->valuestring, type) == 0;
	cJSON_ArrayForEach(e,
	                   t) if (cJSON_IsString(e) && strcmp(e->valuestring, type) == 0) return 1;
	return 0;
}

static int is_required(const cJSON *object_schema, const char *name)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(
	                              object_schema, "required")) if (cJSON_IsString(e) &&
	                                                              strcmp(e->valuestring,
	                                                                     name) == 0) return 1;
	return 0;
}

/* The property of object_schema named (or labelled in x-label-zh or title) label. */
static const cJSON *find_property(const cJSON *object_schema, const char *label)
{
	const cJSON *props = cJSON_GetObjectItemCaseSensitive(object_schema, "properties");
	const cJSON *p;

	p = cJSON_GetObjectItemCaseSensitive(props, label);
	if (p)
		return p;
	cJSON_ArrayForEach(p, props)
	{
		const cJSON *zh = cJSON_GetObjectItemCaseSensitive(p, "x-label-zh");
		const cJSON *title = cJSON_GetObjectItemCaseSensitive(p, "title");

		if ((cJSON_IsString(zh) && strcmp(zh->valuestring, label) == 0) ||
		    (cJSON_IsString(title) && strcasecmp(title->valuestring, label) == 0))
			return p;
	}
	return NULL;
}

/* Resolves header against object_schema into col; 0, or -ENOENT. */
static int resolve(const cJSON *object_schema, const char *header, struct column *col)
{
	const cJSON *schema = object_schema, *parent = NULL, *p = NULL;
	const char *seg = header;
	size_t n = 0;

	col->depth = 0;
	col->pointer[0] = '\0';
	for (;;) {
		const char *dot = strchr(seg, '.');
		size_t len = dot ? (size_t)(dot - seg) : strlen(seg);
		char name[IMPORT_NAME_MAX];

		if (len == 0 || len >= sizeof(name) || col->depth == IMPORT_DEPTH_MAX)
			return -ENOENT;
		memcpy(name, seg, len);
		name[len] = '\0';
		if (!type_allows(schema, "object"))
			return -ENOENT;
		p = find_property(schema, name);
		if (!p)
			return -ENOENT;
		parent = schema;
		memcpy(col->path[col->depth], p->string, strlen(p->string) + 1);
		col->depth++;
		n += (size_t)snprintf(col->pointer + n, sizeof(col->pointer) - n, "/%s", p->string);
		schema = p;
		if (!dot)
			break;
		seg = dot + 1;
	}
	/* a leaf: a scalar, or a list of scalars */
	if (type_allows(schema, "object"))
		return -ENOENT;
	if (type_allows(schema, "array")) {
		const cJSON *items = cJSON_GetObjectItemCaseSensitive(schema, "items");

		if (type_allows(items, "object") || type_allows(items, "array"))
			return -ENOENT;
	}
	col->schema = schema;
	col->required = is_required(parent, col->path[col->depth - 1]);
	return 0;
}

static char *trim(char *s)
{
	size_t n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

static int read_header(struct import *im, const struct csv_record *rec)
{
	size_t total = 0, off = 0;

	if (rec->count > IMPORT_COLUMNS_MAX) {
		problem(im, 0, rec->line, NULL, "more than %d columns", IMPORT_COLUMNS_MAX);
		return 0;
	}
	for (size_t i = 0; i < rec->count; i++)
		total += rec->lengths[i] + 1;
	im->headers = malloc(total ? total : 1);
	if (!im->headers)
		return -ENOMEM;
	im->ncolumns = rec->count;
	for (size_t i = 0; i < rec->count; i++) {
		struct column *col = &im->columns[i];
		char *h = im->headers + off;

		memcpy(h, rec->fields[i], rec->lengths[i] + 1);
		off += rec->lengths[i] + 1;
		col->header = trim(h);
		if (im->item_schema && resolve(im->item_schema, col->header, col) == 0)
			continue;
		if (resolve(im->root, col->header, col) == 0) {
			col->return_level = im->item_schema != NULL;
			if (!(im->list_member && col->depth == 1 &&
			      strcmp(col->path[0], im->list_member) == 0))
				continue;
		}
		col->schema = NULL;
		problem(im, 0, rec->line, col,
		        "unknown column: not a field of the %s form (name a field by its name or "
		        "its Chinese label, nested fields joined with '.', e.g. victims.female)",
		        im->form->id);
	}
	for (size_t i = 0; i < im->ncolumns; i++)
		for (size_t k = 0; k < i; k++)
			if (im->columns[i].schema && im->columns[k].schema &&
			    im->columns[i].return_level == im->columns[k].return_level &&
			    strcmp(im->columns[i].pointer, im->columns[k].pointer) == 0)
				problem(im, 0, rec->line, &im->columns[i],
				        "the same field as column %zu", k + 1);
	return 0;
}

/* "2024-5-2", "2024/05/02" (as Excel shows dates) as "2024-05-02"; 0 when s is not
 * such a date. */
static int normalize_date(const char *s, char out[static 11])
{
	unsigned y = 0, m = 0, d = 0;
	int n = 0;
	char sep;
	struct date date;

	if (sscanf(s, "%4u%c%2u", &y, &sep, &m) != 3 || (sep != '-' && sep != '/'))
		return 0;
	if (sscanf(s, sep == '-' ? "%4u-%2u-%2u%n" : "%4u/%2u/%2u%n", &y, &m, &d, &n) != 3 ||
	    s[n] != '\0')
		return 0;
	date.year = (int)y;
	date.month = (int)m;
	date.day = (int)d;
	if (y < 1 || m < 1 || m > 12 || d < 1 || (int)d > date_days_in_month(date.year, date.month))
		return 0;
	date_format(&date, out);
	return 1;
}

/* The JSON value of one cell for a scalar schema; NULL with *ret_why set when the text
 * cannot be one, or on -ENOMEM (*ret_why NULL). */
static cJSON *scalar(const cJSON *schema, const char *text, const char **ret_why)
{
	const cJSON *format = cJSON_GetObjectItemCaseSensitive(schema, "format");
	char date[11];

	*ret_why = NULL;
	if (type_allows(schema, "integer") || type_allows(schema, "number")) {
		int integer = !type_allows(schema, "number");
		char *end;
		double v;

		errno = 0;
		v = strtod(text, &end);
		if (*text && *end == '\0' && errno == 0 && text[0] != ' ' &&
		    strspn(text, "+-0123456789.eE") == strlen(text) &&
		    (!integer || (v == (double)(long long)v && !strpbrk(text, ".eE") &&
		                  v > -9007199254740992.0 && v < 9007199254740992.0)))
			return cJSON_CreateNumber(v);
		if (!type_allows(schema, "string")) {
			*ret_why = integer ? "is not a whole number" : "is not a number";
			return NULL;
		}
	}
	if (type_allows(schema, "boolean")) {
		static const char *const yes[] = {"true", "TRUE", "True", "yes", "Yes",
		                                  "YES",  "1",    "是",   "Y",   "y"};
		static const char *const no[] = {"false", "FALSE", "False", "no", "No",
		                                 "NO",    "0",     "否",    "N",  "n"};

		for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
			if (strcmp(text, yes[i]) == 0)
				return cJSON_CreateTrue();
			if (strcmp(text, no[i]) == 0)
				return cJSON_CreateFalse();
		}
		if (!type_allows(schema, "string")) {
			*ret_why = "is not yes or no (write true/false, yes/no, 是/否 or 1/0)";
			return NULL;
		}
	}
	if (type_allows(schema, "string")) {
		if (cJSON_IsString(format) && strcmp(format->valuestring, "date") == 0 &&
		    normalize_date(text, date))
			return cJSON_CreateString(date);
		return cJSON_CreateString(text);
	}
	*ret_why = "cannot be read for this field";
	return NULL;
}

/* A list cell: items separated by ';', '；', '、', ',' or '，'. */
static cJSON *list(const cJSON *schema, char *text, const char **ret_why)
{
	const cJSON *items = cJSON_GetObjectItemCaseSensitive(schema, "items");
	cJSON *arr = cJSON_CreateArray();
	char *p = text;

	*ret_why = NULL;
	if (!arr)
		return NULL;
	while (*p) {
		static const char *const seps[] = {";", "；", "、", ",", "，"};
		size_t len = strlen(p), cut = len, skip = 0;
		char saved;
		cJSON *v;

		for (size_t i = 0; i < sizeof(seps) / sizeof(seps[0]); i++) {
			char *s = strstr(p, seps[i]);

			if (s && (size_t)(s - p) < cut) {
				cut = (size_t)(s - p);
				skip = strlen(seps[i]);
			}
		}
		saved = p[cut];
		p[cut] = '\0';
		if (*trim(p)) {
			v = scalar(items, trim(p), ret_why);
			if (!v || !cJSON_AddItemToArray(arr, v)) {
				cJSON_Delete(v);
				cJSON_Delete(arr);
				return NULL;
			}
		}
		p[cut] = saved;
		p += cut + skip;
		if (cut == len)
			break;
	}
	return arr;
}

/* Puts value at the column's path in obj, making the objects on the way. */
static int put(cJSON *obj, const struct column *col, cJSON *value)
{
	for (int i = 0; i < col->depth - 1; i++) {
		cJSON *next = cJSON_GetObjectItemCaseSensitive(obj, col->path[i]);

		if (!next) {
			next = cJSON_AddObjectToObject(obj, col->path[i]);
			if (!next)
				goto fail;
		}
		obj = next;
	}
	if (!cJSON_AddItemToObject(obj, col->path[col->depth - 1], value))
		goto fail;
	return 0;
fail:
	cJSON_Delete(value);
	return -ENOMEM;
}

/* Fills row (the return, or the list element) and ret_level (list forms: the return-level
 * members) from one record. */
static int read_row(struct import *im, const struct csv_record *rec, cJSON *row, cJSON *level)
{
	for (size_t i = 0; i < im->ncolumns; i++) {
		const struct column *col = &im->columns[i];
		const char *why = NULL;
		char empty[1] = "", *text;
		cJSON *v;

		if (!col->schema)
			continue;
		text = i < rec->count ? trim(rec->fields[i]) : empty;
		if (!*text) {
			if (type_allows(col->schema, "null")) {
				v = cJSON_CreateNull();
			} else {
				if (col->required)
					problem(im, 0, rec->line, col,
					        "empty, but the form needs it");
				continue;
			}
		} else if (type_allows(col->schema, "array")) {
			v = list(col->schema, text, &why);
		} else {
			v = scalar(col->schema, text, &why);
		}
		if (!v && why) {
			problem(im, 0, rec->line, col, "'%s' %s", text, why);
			continue;
		}
		if (!v || put(col->return_level ? level : row, col, v) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int add_line(struct pending *p, size_t line)
{
	if (p->count == p->alloc) {
		size_t n = p->alloc ? 2 * p->alloc : 16;
		void *q = realloc(p->lines, n * sizeof(*p->lines));

		if (!q)
			return -ENOMEM;
		p->lines = q;
		p->alloc = n;
	}
	p->lines[p->count++] = line;
	return 0;
}

static struct pending *new_return(struct import *im)
{
	if (im->nreturns == im->alloc) {
		size_t n = im->alloc ? 2 * im->alloc : 16;
		void *q = realloc(im->returns, n * sizeof(*im->returns));

		if (!q)
			return NULL;
		im->returns = q;
		im->alloc = n;
	}
	memset(&im->returns[im->nreturns], 0, sizeof(im->returns[0]));
	return &im->returns[im->nreturns++];
}

/* The period of a list form's group: --period, or for a monthly form the month of the
 * first return-level date (as_of). */
static int group_period(struct import *im, const cJSON *level, char ret[CALENDAR_PERIOD_MAX])
{
	enum calendar_period_type type;
	const cJSON *v;

	if (im->period_arg)
		return snprintf(ret, CALENDAR_PERIOD_MAX, "%s", im->period_arg) <
		                       CALENDAR_PERIOD_MAX
		               ? 0
		               : -EINVAL;
	if (calendar_period_type(im->sub->cal, im->form->id, &type) < 0 ||
	    type != CALENDAR_PERIOD_MONTHLY)
		return -EINVAL;
	cJSON_ArrayForEach(v, level)
	{
		struct date d;

		if (cJSON_IsString(v) &&
		    datetime_parse_date(v->valuestring, strlen(v->valuestring), &d) == 0) {
			snprintf(ret, CALENDAR_PERIOD_MAX, "%04d-%02d", d.year, d.month);
			return 0;
		}
	}
	return -EINVAL;
}

/* The column whose pointer is pointer or a prefix of it at a token boundary. */
static const struct column *column_of(const struct import *im, const char *pointer,
                                      int return_level)
{
	const struct column *best = NULL;

	for (size_t i = 0; i < im->ncolumns; i++) {
		const struct column *c = &im->columns[i];
		size_t n = strlen(c->pointer);

		if (!c->schema || c->return_level != return_level)
			continue;
		if (strncmp(pointer, c->pointer, n) == 0 &&
		    (pointer[n] == '\0' || pointer[n] == '/') &&
		    (!best || n > strlen(best->pointer)))
			best = c;
	}
	return best;
}

static void report(struct import *im, const struct pending *p, const struct errlist *errs)
{
	for (size_t i = 0; i < errs->count; i++) {
		const struct errlist_entry *e = &errs->entries[i];
		int warning = e->severity == ERRLIST_WARNING;
		char pointer[ERRLIST_POINTER_MAX + IMPORT_NAME_MAX + 2];
		size_t line = p->first_line;
		const char *rel = pointer;
		int level = 0;

		snprintf(pointer, sizeof(pointer), "%s", e->pointer);
		/* "missing required property "x"" is reported at the object: point at x */
		if (strcmp(e->keyword, "required") == 0) {
			const char *q = strchr(e->message, '"');
			const char *end = q ? strchr(q + 1, '"') : NULL;

			if (end && (size_t)(end - q - 1) < IMPORT_NAME_MAX)
				snprintf(pointer + strlen(pointer),
				         sizeof(pointer) - strlen(pointer), "/%.*s",
				         (int)(end - q - 1), q + 1);
		}
		if (im->list_member) {
			size_t n = strlen(im->list_member);
			char *end;

			if (pointer[0] == '/' && strncmp(pointer + 1, im->list_member, n) == 0 &&
			    pointer[n + 1] == '/') {
				unsigned long k = strtoul(pointer + n + 2, &end, 10);

				if (k < p->count)
					line = p->lines[k];
				rel = end;
			} else {
				level = 1;
			}
		}
		const struct column *col = column_of(im, rel, level);

		if (col)
			problem(im, warning, line, col, "%s (%s)", e->message, e->keyword);
		else
			problem(im, warning, line, NULL, "%s: %s (%s)",
			        e->pointer[0] ? e->pointer : "(the return)", e->message,
			        e->keyword);
	}
}

/* Remembers id, the next return of the batch. */
static int add_id(struct import *im, const char id[static IDS_UUID_LEN + 1])
{
	if (im->nids == im->ids_alloc) {
		size_t n = im->ids_alloc ? 2 * im->ids_alloc : 256;
		void *q = realloc(im->ids, n * sizeof(*im->ids));

		if (!q)
			return -ENOMEM;
		im->ids = q;
		im->ids_alloc = n;
	}
	memcpy(im->ids[im->nids++], id, IDS_UUID_LEN + 1);
	return 0;
}

/* Signs data, a return that passed its checks, into the batch. Once a problem is found
 * nothing more is signed: nothing will be queued. Sets im->failed on failure. */
static void stage(struct import *im, const char *period, const cJSON *data, size_t line)
{
	char id[IDS_UUID_LEN + 1], err[1024];
	char *jws = NULL;
	size_t len;
	int r;

	if (im->problems || im->failed)
		return;
	if (!im->batching) {
		r = spool_batch_begin(im->sub->agent, im->file, &im->batch);
		if (r < 0) {
			log_errno(r, "failed to make a batch folder for the import");
			im->failed = agent_exit_code(r);
			return;
		}
		im->batching = 1;
	}
	r = submitter_sign(im->sub, im->form, period, NULL, data, id, &jws, &len, err, sizeof(err));
	if (r == 0) {
		r = spool_batch_add(&im->batch, id, jws, len);
		if (r < 0)
			snprintf(err, sizeof(err), "cannot write the return: %s", strerror(-r));
	}
	if (r == 0)
		r = add_id(im, id);
	free(jws);
	if (r < 0) {
		log_error("line %zu: %s", line, r == -ENOMEM ? "out of memory" : err);
		im->failed = r == -EPROTO ? EX_SOFTWARE : agent_exit_code(r);
	}
}

/* The checks `submit` makes of one return, and the file's one return per period (for the
 * forms that have one); the problems are reported. 0, or -ENOMEM. */
static int check_return(struct import *im, const struct pending *p)
{
	struct errlist errs;
	int r;

	if (im->one_per_period) {
		for (size_t k = 0; k < im->nseen; k++)
			if (strcmp(im->seen[k].period, p->period) == 0) {
				problem(im, 0, p->first_line, NULL,
				        "a second %s return for %s in this file (line %zu starts "
				        "the first)",
				        im->form->id, p->period, im->seen[k].line);
				break;
			}
		if (im->nseen == im->seen_alloc) {
			size_t n = im->seen_alloc ? 2 * im->seen_alloc : 16;
			void *q = realloc(im->seen, n * sizeof(*im->seen));

			if (!q)
				return -ENOMEM;
			im->seen = q;
			im->seen_alloc = n;
		}
		memcpy(im->seen[im->nseen].period, p->period, sizeof(p->period));
		im->seen[im->nseen++].line = p->first_line;
	}
	errlist_init(&errs);
	r = submitter_check(im->sub, im->form, p->period, p->data, &errs);
	if (r < 0)
		problem(im, 0, p->first_line, NULL, "could not be checked: %s", strerror(-r));
	else
		report(im, p, &errs);
	errlist_release(&errs);
	return r == -ENOMEM ? r : 0;
}

static int add_record(struct import *im, const struct csv_record *rec)
{
	cJSON *row = cJSON_CreateObject(), *level = cJSON_CreateObject();
	char err[256], period[CALENDAR_PERIOD_MAX];
	size_t before = im->problems;
	struct pending *p = NULL;
	char *key = NULL;
	int r = -ENOMEM;

	if (!row || !level)
		goto out;
	r = read_row(im, rec, row, level);
	if (r < 0 || im->problems > before)
		goto out;
	if (!im->list_member) {
		/* a return of its own: checked, signed into the batch and forgotten */
		size_t line = rec->line;
		struct pending one = {.data = row, .first_line = line, .lines = &line, .count = 1};

		r = submitter_period(im->sub, im->form, im->period_arg, row, period, err,
		                     sizeof(err));
		if (r < 0) {
			problem(im, 0, rec->line, NULL, "%s", err);
			r = 0;
			goto out;
		}
		memcpy(one.period, period, sizeof(period));
		r = check_return(im, &one);
		if (r == 0 && im->problems == before)
			stage(im, period, row, rec->line);
		goto out;
	}
	if (group_period(im, level, period) < 0) {
		problem(im, 0, rec->line, NULL,
		        "give the period (--period), or an as_of date to take the month from");
		r = 0;
		goto out;
	}
	key = cJSON_PrintUnformatted(level);
	r = -ENOMEM;
	if (!key)
		goto out;
	for (size_t i = 0; i < im->nreturns; i++)
		if (strcmp(im->returns[i].period, period) == 0 &&
		    strcmp(im->returns[i].key, key) == 0)
			p = &im->returns[i];
	if (!p) {
		cJSON *items;

		p = new_return(im);
		if (!p)
			goto out;
		p->data = level;
		level = NULL;
		p->key = key;
		key = NULL;
		p->first_line = rec->line;
		memcpy(p->period, period, sizeof(period));
		items = cJSON_AddArrayToObject(p->data, im->list_member);
		if (!items)
			goto out;
	}
	if (!cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(p->data, im->list_member), row))
		goto out;
	row = NULL;
	r = add_line(p, rec->line);
out:
	free(key);
	cJSON_Delete(row);
	cJSON_Delete(level);
	return r;
}

static void import_release(struct import *im)
{
	for (size_t i = 0; i < im->nreturns; i++) {
		cJSON_Delete(im->returns[i].data);
		free(im->returns[i].key);
		free(im->returns[i].lines);
	}
	free(im->returns);
	free(im->headers);
	free(im->seen);
	free(im->ids);
	if (im->batching)
		spool_batch_abort(&im->batch);
}

/* The list member of a list form: the root's only array of objects. */
static void find_list(struct import *im)
{
	const cJSON *p, *found = NULL;
	int n = 0;

	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(im->root, "properties"))
	{
		const cJSON *items = cJSON_GetObjectItemCaseSensitive(p, "items");

		if (type_allows(p, "array") && type_allows(items, "object")) {
			found = p;
			n++;
		}
	}
	if (n == 1) {
		im->list_member = found->string;
		im->item_schema = cJSON_GetObjectItemCaseSensitive(found, "items");
	}
}

static int parse_encoding(const char *name, enum csv_encoding *ret)
{
	if (!name || strcmp(name, "auto") == 0)
		*ret = CSV_ENCODING_AUTO;
	else if (strcasecmp(name, "utf-8") == 0 || strcasecmp(name, "utf8") == 0)
		*ret = CSV_ENCODING_UTF8;
	else if (strcasecmp(name, "gb18030") == 0 || strcasecmp(name, "gbk") == 0 ||
	         strcasecmp(name, "gb2312") == 0)
		*ret = CSV_ENCODING_GB18030;
	else
		return -EINVAL;
	return 0;
}

/* The encoding of the whole file for --encoding auto: UTF-8 when it starts with a BOM or
 * is valid UTF-8 throughout, else GB18030. */
static int guess_encoding(const char *path, enum csv_encoding *ret)
{
	struct csv_chunker c;
	struct buf scratch;
	const char *text;
	size_t len;
	int r, first = 1;

	*ret = CSV_ENCODING_UTF8;
	buf_init(&scratch, CSVCHUNK_MAX);
	r = csv_chunker_open(&c, path);
	while (r == 0) {
		r = csv_chunker_next(&c, &text, &len);
		if (r <= 0)
			break;
		if (first && len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
			break;
		first = 0;
		buf_reset(&scratch);
		r = csv_decode(text, len, CSV_ENCODING_UTF8, &scratch, NULL, NULL, 0);
		if (r == -EILSEQ) {
			*ret = CSV_ENCODING_GB18030;
			r = 0;
			break;
		}
		if (r < 0)
			break;
		r = 0;
	}
	csv_chunker_close(&c);
	buf_release(&scratch);
	return r < 0 ? r : 0;
}

/* Reads, decodes, parses and checks the file piece by piece, each row into add_record;
 * an exit code. */
static int read_file(struct import *im, enum csv_encoding enc)
{
	const struct csv_limits limits = {.max_line = 64 * 1024,
	                                  .max_field = 16 * 1024,
	                                  .max_fields = IMPORT_COLUMNS_MAX,
	                                  .max_records = IMPORT_ROWS_MAX + 1};
	struct csv_chunker c = {.fd = -1};
	struct csv_reader reader;
	struct csv_record rec;
	struct buf text;
	const char *piece;
	size_t len;
	int r, status = EX_OK, have_reader = 0, header = 1;
	char err[512] = "";

	buf_init(&text, CSVCHUNK_MAX + CSVCHUNK_MAX / 2);
	r = enc == CSV_ENCODING_AUTO ? guess_encoding(im->file, &enc) : 0;
	if (r == 0)
		r = csv_chunker_open(&c, im->file);
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", im->file,
		        r == -EMSGSIZE ? "file too large" : strerror(-r));
		status = r == -ENOENT ? EX_NOINPUT : r == -EMSGSIZE ? EX_DATAERR : EX_IOERR;
		goto out;
	}
	while (r == 0 && !im->failed) {
		r = csv_chunker_next(&c, &piece, &len);
		if (r == -EMSGSIZE)
			snprintf(err, sizeof(err), "the file is larger than %u bytes",
			         CSV_FILE_MAX);
		else if (r < 0 && r != -ENOMEM)
			snprintf(err, sizeof(err), "cannot read the file: %s", strerror(-r));
		if (r <= 0)
			break;
		buf_reset(&text);
		r = csv_decode(piece, len, enc, &text, NULL, err, sizeof(err));
		if (r == 0) {
			if (have_reader)
				csv_reader_release(&reader);
			have_reader = 0;
			r = csv_reader_init(&reader, text.data ? text.data : "", text.len, &limits);
			have_reader = r == 0;
		}
		while (r == 0 && !im->failed) {
			r = csv_read(&reader, &rec, err, sizeof(err));
			if (r <= 0)
				break;
			r = 0;
			rec.line += c.lines;
			if (++im->records > IMPORT_ROWS_MAX + 1) {
				snprintf(err, sizeof(err),
				         "line %zu, column 1: more than %d records",
				         rec.line - c.lines, IMPORT_ROWS_MAX + 1);
				r = -EMSGSIZE;
				break;
			}
			if (header) {
				header = 0;
				r = read_header(im, &rec);
				if (im->problems)
					goto out;
				continue;
			}
			/* Excel leaves rows of empty cells at the end of a sheet */
			size_t filled = 0;

			for (size_t i = 0; i < rec.count; i++)
				filled += *trim(rec.fields[i]) != '\0';
			if (filled == 0)
				continue;
			r = add_record(im, &rec);
		}
		if (r < 0 && r != -ENOMEM)
			csv_chunker_shift_lines(err, sizeof(err), c.lines);
	}
	if (im->failed) {
		status = im->failed;
	} else if (r == -ENOMEM) {
		log_error("out of memory");
		status = EX_OSERR;
	} else if (r < 0) {
		printf("%s: %s\n", im->file, err);
		status = EX_DATAERR;
	} else if (header && !im->problems) {
		printf("%s: the file is empty: the first line names the columns\n", im->file);
		status = EX_DATAERR;
	}
out:
	if (have_reader)
		csv_reader_release(&reader);
	csv_chunker_close(&c);
	buf_release(&text);
	return status;
}

int command_import(int argc, char **argv)
{
	static const char synopsis[] =
	        "school-agent import [--dir DIR] --form FORM [--period PERIOD] "
	        "[--encoding auto|utf-8|gb18030] FILE.csv";
	char *dir = NULL, *form_id = NULL, *period_arg = NULL, *encoding = NULL;
	const struct config_option options[] = {
	        {"dir", CONFIG_STRING, &dir, "the agent's folder (default: .)", "DIR", 0, 0},
	        {"form", CONFIG_STRING, &form_id, "the form of the rows", "FORM", 0, 0},
	        {"period", CONFIG_STRING, &period_arg,
	         "the period of every return (event forms: the event's month; rectification: "
	         "the month of as_of)",
	         "PERIOD", 0, 0},
	        {"encoding", CONFIG_STRING, &encoding,
	         "auto (default: a BOM or valid UTF-8 is UTF-8, else GB18030), utf-8 or gb18030",
	         "NAME", 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};
	struct import im = {0};
	struct submitter sub = {0};
	enum calendar_period_type type;
	enum csv_encoding enc;
	struct agent agent;
	char err[1024];
	char *file = NULL;
	int nfiles = 0, r, status = EX_OK, opened = 0, loaded = 0;

	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		agent_print_usage(synopsis, options);
		return EX_OK;
	}
	r = agent_parse_args(options, argc, argv, &file, 1, &nfiles, err, sizeof(err));
	if (r < 0 || !form_id || nfiles != 1 || parse_encoding(encoding, &enc) < 0) {
		fprintf(stderr, "school-agent import: %s\nusage: %s\n",
		        r < 0 ? err : "give --form, a known --encoding and one FILE.csv", synopsis);
		status = EX_USAGE;
		goto out;
	}
	r = agent_open(&agent, dir ? dir : ".", err, sizeof(err));
	opened = 1;
	if (r < 0) {
		log_error("%s", err);
		status = EX_CONFIG;
		goto out;
	}
	r = submitter_init(&sub, &agent, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		status = r == -EPERM ? EX_NOPERM : EX_CONFIG;
		goto out;
	}
	loaded = 1;
	/* an earlier import a crash interrupted: finished, or removed */
	if (spool_recover(&agent) < 0)
		log_warning("the outbox may lack the returns of an interrupted import");
	im.sub = &sub;
	im.file = file;
	im.period_arg = period_arg;
	im.form = submitter_form(&sub, form_id, err, sizeof(err));
	if (!im.form) {
		log_error("%s", err);
		status = EX_USAGE;
		goto out;
	}
	im.root = schema_root(im.form->schema);
	im.one_per_period = calendar_period_type(sub.cal, im.form->id, &type) == 0 &&
	                    type != CALENDAR_PERIOD_EVENT;
	find_list(&im);
	status = read_file(&im, enc);
	if (status != EX_OK)
		goto out;
	/* a list form's returns are whole now: checked, then signed into the batch */
	for (size_t i = 0; i < im.nreturns && !im.failed; i++) {
		if (check_return(&im, &im.returns[i]) < 0) {
			log_error("out of memory");
			status = EX_OSERR;
			goto out;
		}
	}
	for (size_t i = 0; i < im.nreturns && !im.problems && !im.failed; i++)
		stage(&im, im.returns[i].period, im.returns[i].data, im.returns[i].first_line);
	if (im.problems + im.warnings > IMPORT_PROBLEMS_MAX)
		printf("%s: %zu more problems not shown\n", im.file,
		       im.problems + im.warnings - IMPORT_PROBLEMS_MAX);
	if (im.failed) {
		fprintf(stderr, "school-agent import: nothing was queued\n");
		status = im.failed;
		goto out;
	}
	if (im.problems) {
		fprintf(stderr, "school-agent import: %zu problem%s in '%s'; nothing was queued\n",
		        im.problems, im.problems == 1 ? "" : "s", im.file);
		status = EX_DATAERR;
		goto out;
	}
	if (im.nids == 0) {
		printf("%s: no rows below the header\n", im.file);
		status = EX_DATAERR;
		goto out;
	}
	/* every row is valid: the whole batch goes into the outbox */
	im.batching = 0;
	r = spool_batch_commit(&agent, &im.batch);
	if (r < 0) {
		log_errno(r, "failed to queue the returns of '%s'; nothing was queued", im.file);
		status = agent_exit_code(r);
		goto out;
	}
	if (r > 0)
		log_warning("the returns of '%s' are queued, but not all are in the outbox yet: "
		            "the next school-agent command moves them (do not import the file "
		            "again)",
		            im.file);
	for (size_t i = 0; i < im.nids; i++)
		printf("%s\n", im.ids[i]);
	log_info("queued %zu %s return%s from '%s'", im.nids, im.form->id, im.nids == 1 ? "" : "s",
	         im.file);
	if (fflush(stdout) != 0)
		status = EX_IOERR;
out:
	import_release(&im);
	if (loaded)
		submitter_release(&sub);
	if (opened)
		agent_release(&agent);
	config_release(options);
	return status;
}
