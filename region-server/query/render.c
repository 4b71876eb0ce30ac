/* Aligned tables: see render.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/textwidth.h"
#include "render.h"
#include "common/banned.h"

/* The text of one cell, cut to RENDER_CELL_MAX columns. Caller frees. */
static char *cell_text(const cJSON *v)
{
	struct buf b;
	const cJSON *e;
	char *text = NULL;
	size_t len;
	int r = 0;

	buf_init(&b, 1024 * 1024);
	if (!v || cJSON_IsNull(v)) {
		r = buf_puts(&b, "");
	} else if (cJSON_IsString(v)) {
		r = buf_puts(&b, v->valuestring);
	} else if (cJSON_IsArray(v)) {
		cJSON_ArrayForEach(e, v)
		{
			r = b.len ? buf_puts(&b, ", ") : 0;
			if (r == 0 && cJSON_IsString(e)) {
				r = buf_puts(&b, e->valuestring);
			} else if (r == 0) {
				text = cJSON_PrintUnformatted(e);
				r = text ? buf_puts(&b, text) : -ENOMEM;
				free(text);
			}
			if (r < 0)
				break;
		}
		r = r < 0 ? r : buf_puts(&b, "");
	} else {
		text = cJSON_PrintUnformatted(v);
		r = text ? buf_puts(&b, text) : -ENOMEM;
		free(text);
	}
	if (r < 0) {
		buf_release(&b);
		return NULL;
	}
	text = buf_detach(&b, &len);
	/* control characters would break the layout */
	for (char *p = text; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	if (text_width(text) > RENDER_CELL_MAX) {
		/* cut at a character boundary so that it fits with "..." */
		size_t keep = 0;
		char save;

		for (size_t n = 1; n <= len; n++) {
			if (n < len && ((unsigned char)text[n] & 0xc0) == 0x80)
				continue;
			save = text[n];
			text[n] = '\0';
			if (text_width(text) > RENDER_CELL_MAX - 3) {
				text[n] = save;
				break;
			}
			text[n] = save;
			keep = n;
		}
		memcpy(text + keep, "...", 4);
	}
	return text;
}

static int right_aligned(const cJSON *v)
{
	return cJSON_IsNumber(v);
}

static void rule(FILE *out, const int *width, int ncols)
{
	for (int c = 0; c < ncols; c++) {
		for (int i = 0; i < width[c]; i++)
			fputc('-', out);
		fputs(c + 1 < ncols ? "  " : "\n", out);
	}
}

static int render_one(FILE *out, const cJSON *table)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(table, "name");
	const cJSON *columns = cJSON_GetObjectItemCaseSensitive(table, "columns");
	const cJSON *rows = cJSON_GetObjectItemCaseSensitive(table, "rows"), *col, *row;
	int ncols, nrows, *width = NULL, r = -ENOMEM;
	char **cells = NULL;

	if (!cJSON_IsString(name) || !cJSON_IsArray(columns) || !cJSON_IsArray(rows))
		return -EINVAL;
	ncols = cJSON_GetArraySize(columns);
	nrows = cJSON_GetArraySize(rows);
	width = calloc((size_t)ncols + 1, sizeof(*width));
	cells = calloc((size_t)ncols * (size_t)nrows + 1, sizeof(*cells));
	if (!width || !cells)
		goto out;
	for (int c = 0; c < ncols; c++) {
		col = cJSON_GetArrayItem(columns, c);
		if (!cJSON_IsString(col)) {
			r = -EINVAL;
			goto out;
		}
		width[c] = text_width(col->valuestring);
	}
	for (int i = 0; i < nrows; i++) {
		row = cJSON_GetArrayItem(rows, i);
		for (int c = 0; c < ncols; c++) {
			char **cell = &cells[(size_t)i * (size_t)ncols + (size_t)c];
			const char *cname = cJSON_GetArrayItem(columns, c)->valuestring;

			*cell = cell_text(cJSON_GetObjectItemCaseSensitive(row, cname));
			if (!*cell)
				goto out;
			if (text_width(*cell) > width[c])
				width[c] = text_width(*cell);
		}
	}
	fprintf(out, "%s (%d row%s)\n", name->valuestring, nrows, nrows == 1 ? "" : "s");
	for (int c = 0; c < ncols; c++) {
		const char *cname = cJSON_GetArrayItem(columns, c)->valuestring;

		if (c + 1 < ncols) {
			text_pad(out, cname, width[c]);
			fputs("  ", out);
		} else {
			fputs(cname, out);
			fputc('\n', out);
		}
	}
	rule(out, width, ncols);
	for (int i = 0; i < nrows; i++) {
		row = cJSON_GetArrayItem(rows, i);
		for (int c = 0; c < ncols; c++) {
			const char *cname = cJSON_GetArrayItem(columns, c)->valuestring;
			const char *text = cells[(size_t)i * (size_t)ncols + (size_t)c];

			if (right_aligned(cJSON_GetObjectItemCaseSensitive(row, cname)))
				text_pad_left(out, text, width[c]);
			else if (c + 1 < ncols)
				text_pad(out, text, width[c]);
			else
				fputs(text, out);
			fputs(c + 1 < ncols ? "  " : "\n", out);
		}
	}
	r = 0;
out:
	for (size_t k = 0; cells && k < (size_t)ncols * (size_t)nrows; k++)
		free(cells[k]);
	free(cells);
	free(width);
	return r;
}

int render_tables(FILE *out, const cJSON *answer)
{
	const cJSON *tables = cJSON_GetObjectItemCaseSensitive(answer, "tables"), *t;
	int first = 1, r;

	if (!cJSON_IsArray(tables))
		return -EINVAL;
	cJSON_ArrayForEach(t, tables)
	{
		if (!first)
			fputc('\n', out);
		first = 0;
		r = render_one(out, t);
		if (r < 0)
			return r;
	}
	return 0;
}
