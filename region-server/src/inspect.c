/* The inspection queries over HTTP: see inspect.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <microhttpd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/datetime.h"
#include "common/errmsg.h"
#include "common/http_server.h"
#include "common/ids.h"
#include "common/json.h"
#include "db.h"
#include "inspect.h"
#include "publish.h"
#include "server.h"
#include "common/banned.h"

#define PARAMS_MAX 8
#define PARTS_MAX 4
#define ARGS_MAX 16                     /* query-string arguments of one request */
#define ANSWER_MAX (256u * 1024 * 1024) /* bytes of one answer */
#define ROW_DEPTH 8
#define COLUMNS_MAX 32 /* of a table rendered here; wider ones are left to row_to_json() */
#define BOM "\xef\xbb\xbf"

enum param_type {
	P_FORM,
	P_PERIOD,
	P_DATE,
	P_YEAR,
	P_LEVEL,
	P_COUNTY,
	P_UUID,
};

struct param_def {
	const char *name;
	enum param_type type;
	int required;
};

struct part_def {
	const char *name;
	/* what follows "SELECT <columns> ": the rows, as "FROM <function>(...) t [WHERE ...]";
	 * $1.. are the query's parameters in order */
	const char *from;
};

struct query_def {
	const char *name;
	struct param_def params[PARAMS_MAX]; /* ends with name NULL; "county" is the county */
	struct part_def parts[PARTS_MAX];    /* ends with name NULL */
};

#define ROWS(source) "FROM " source " t"

static const struct query_def queries[] = {
        {"late-returns",
         {{"form", P_FORM, 1}, {"period", P_PERIOD, 1}, {"county", P_COUNTY, 0}, {NULL}},
         {{"counties", ROWS("late_returns($1, $2, $3)")},
          {"schools", ROWS("late_schools($1, $2, $3)")},
          {NULL}}},
        {"incidents",
         {{"from", P_DATE, 1}, {"to", P_DATE, 1}, {"county", P_COUNTY, 0}, {NULL}},
         {{"counts", ROWS("incidents($1::date, $2::date, $3)")},
          {"level3", ROWS("incidents_level3($1::date, $2::date, $3)")},
          {NULL}}},
        {"level3",
         {{"from", P_DATE, 1}, {"to", P_DATE, 1}, {"county", P_COUNTY, 0}, {NULL}},
         {{"level3", ROWS("incidents_level3($1::date, $2::date, $3)")}, {NULL}}},
        {"overdue-rectification",
         {{"as_of", P_DATE, 1}, {"county", P_COUNTY, 0}, {NULL}},
         {{"items", ROWS("overdue_rectification($1::date, $2)")}, {NULL}}},
        {"follow-up",
         {{"year", P_YEAR, 1},
          {"min_level", P_LEVEL, 0},
          {"county", P_COUNTY, 0},
          {"as_of", P_DATE, 0},
          {NULL}},
         {{"schools", ROWS("follow_up($1::integer, coalesce($2::integer, 2), $3, $4::date)")},
          {NULL}}},
        {"screening-coverage",
         {{"period", P_PERIOD, 1}, {"county", P_COUNTY, 0}, {NULL}},
         {{"counties", ROWS("screening_coverage($1, $2)")},
          {"schools", ROWS("screening_coverage_schools($1, $2)")},
          {NULL}}},
        {"rollup-integrity",
         {{"form", P_FORM, 1}, {"period", P_PERIOD, 1}, {"county", P_COUNTY, 0}, {NULL}},
         {{"counties", ROWS("rollup_integrity($1, $2, $3)")},
          {"mismatches", ROWS("rollup_mismatches($1, $2, $3)")},
          {"findings",
           ROWS("(SELECT f.county_id, f.finding_id, f.found_at, f.kind, f.school_id,"
                " f.submission_id, f.batch_id, f.detail FROM integrity_findings f"
                " WHERE f.form = $1 AND f.period = $2 AND ($3::text IS NULL OR f.county_id = $3)"
                " ORDER BY f.county_id, f.found_at, f.finding_id)")},
          {NULL}}},
        {"chain-of-custody",
         {{"submission_id", P_UUID, 1}, {"county", P_COUNTY, 0}, {NULL}},
         {{"chain", "FROM chain_of_custody($1::uuid) t WHERE $2::text IS NULL OR t.county_id = $2"},
          {"findings",
           ROWS("(SELECT f.finding_id, f.found_at, f.kind, f.detail FROM integrity_findings f"
                " WHERE f.submission_id = $1::uuid AND ($2::text IS NULL OR f.county_id = $2)"
                " ORDER BY f.found_at, f.finding_id)")},
          {NULL}}},
};

#define NQUERIES (sizeof(queries) / sizeof(queries[0]))

size_t inspect_count(void)
{
	return NQUERIES;
}

const char *inspect_name(size_t i)
{
	return i < NQUERIES ? queries[i].name : NULL;
}

int inspect_find(const char *name)
{
	for (size_t i = 0; i < NQUERIES; i++)
		if (strcmp(queries[i].name, name) == 0)
			return (int)i;
	return -ENOENT;
}

int inspect_authenticate(struct worker *w, const char *token, struct inspect_caller *ret)
{
	char hash[IDS_SHA256_HEX_LEN + 1], err[DB_ERR_MAX];
	const char *params[1] = {hash};
	struct inspect_caller c;
	PGresult *res = NULL;
	int n;

	if (!token || !token[0] || strlen(token) > 512)
		return -EACCES;
	ids_sha256_hex(token, strlen(token), hash);
	n = db_query(w->db,
	             "SELECT name, role, coalesce(county_id, '') FROM tokens"
	             " WHERE secret_sha256 = $1 AND revoked_at IS NULL",
	             1, params, &res, err, sizeof(err));
	if (n < 0)
		return n;
	if (n != 1) {
		db_result_free(res);
		return -EACCES;
	}
	memset(&c, 0, sizeof(c));
	snprintf(c.name, sizeof(c.name), "%s", PQgetvalue(res, 0, 0));
	snprintf(c.role, sizeof(c.role), "%s", PQgetvalue(res, 0, 1));
	snprintf(c.county_id, sizeof(c.county_id), "%s", PQgetvalue(res, 0, 2));
	db_result_free(res);
	*ret = c;
	return 0;
}

/* --- parameters ------------------------------------------------------------------------ */

struct arg {
	char name[32];
	char value[INSPECT_VALUE_MAX + 1];
};

struct args {
	struct arg a[ARGS_MAX];
	size_t n;
	char err[256];
};

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
	struct args *args = cls;
	char q[ERRMSG_QUOTE_SIZE];

	(void)kind;
	if (args->err[0])
		return MHD_NO;
	if (args->n == ARGS_MAX) {
		snprintf(args->err, sizeof(args->err), "too many parameters (at most %d)",
		         ARGS_MAX);
		return MHD_NO;
	}
	if (strlen(key) >= sizeof(args->a[0].name) ||
	    (value && strlen(value) > INSPECT_VALUE_MAX)) {
		snprintf(args->err, sizeof(args->err), "parameter \"%s\" is too long",
		         errmsg_quote(key, q));
		return MHD_NO;
	}
	for (size_t i = 0; i < args->n; i++)
		if (strcmp(args->a[i].name, key) == 0) {
			snprintf(args->err, sizeof(args->err), "parameter \"%s\" is given twice",
			         errmsg_quote(key, q));
			return MHD_NO;
		}
	snprintf(args->a[args->n].name, sizeof(args->a[0].name), "%s", key);
	snprintf(args->a[args->n].value, sizeof(args->a[0].value), "%s", value ? value : "");
	args->n++;
	return MHD_YES;
}

static const char *arg_get(const struct args *args, const char *name)
{
	for (size_t i = 0; i < args->n; i++)
		if (strcmp(args->a[i].name, name) == 0)
			return args->a[i].value;
	return NULL;
}

static int all_digits(const char *s, size_t n)
{
	if (strlen(s) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* 1 when value is a valid value of type. */
static int param_valid(enum param_type type, const char *v)
{
	struct date d;
	size_t n = strlen(v);

	switch (type) {
	case P_FORM:
		if (n == 0 || n > 64 || v[0] < 'a' || v[0] > 'z')
			return 0;
		for (size_t i = 0; i < n; i++)
			if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') ||
			      v[i] == '_'))
				return 0;
		return 1;
	case P_PERIOD:
		if (n < 7 || n > 8 || v[4] != '-')
			return 0;
		for (size_t i = 0; i < n; i++)
			if (i != 4 && !(v[i] >= '0' && v[i] <= '9') && !(i == 5 && v[i] == 'P'))
				return 0;
		return 1;
	case P_DATE:
		return datetime_parse_date(v, n, &d) == 0 && d.year >= 1900;
	case P_YEAR:
		return all_digits(v, 4) && strcmp(v, "1900") >= 0;
	case P_LEVEL:
		return n == 1 && v[0] >= '1' && v[0] <= '3';
	case P_COUNTY:
		return all_digits(v, 6);
	case P_UUID:
		return ids_uuid_check(v, n) == 0;
	}
	return 0;
}

static const char *type_hint(enum param_type type)
{
	switch (type) {
	case P_FORM:
		return "a form name such as screening";
	case P_PERIOD:
		return "a period such as 2024-P1 or 2024-05";
	case P_DATE:
		return "a date YYYY-MM-DD";
	case P_YEAR:
		return "a year such as 2024";
	case P_LEVEL:
		return "a level 1, 2 or 3";
	case P_COUNTY:
		return "a 6-digit county code";
	case P_UUID:
		return "a submission id (lowercase UUID)";
	}
	return "";
}

/* --- the answer ------------------------------------------------------------------------ */

struct part {
	const struct part_def *def;
	PGresult *cols; /* the rows, one value a column (SELECT t.*) */
	PGresult *res;  /* NULL, or one column: each row as JSON text (row_to_json) */
	cJSON *rows;    /* parsed (public or CSV), else NULL */
	unsigned char how[COLUMNS_MAX]; /* enum render of each column of cols */
	struct buf keys;                /* "{\"name\":" then ",\"name\":" for each column */
	size_t key_end[COLUMNS_MAX];    /* where the key of each column ends in keys */
};

/* --- rows as JSON ---------------------------------------------------------------------
 * Each row is written here as PostgreSQL's row_to_json() writes it (PostgreSQL 15,
 * src/backend/utils/adt/json.c), from the text of each value: formatting the values as
 * text costs the server a third of what row_to_json() costs it, which matters for the
 * lists of every school. The transaction sets DateStyle to ISO, the text the conversion
 * of dates and times below reads. A table with a column of any other type is left to
 * row_to_json() on the server. */

/* type OIDs, from PostgreSQL's pg_type.dat: fixed for built-in types */
#define OID_BOOL 16
#define OID_CHAR 18
#define OID_NAME 19
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_TEXT 25
#define OID_JSON 114
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_NAME_ARRAY 1003
#define OID_BPCHAR_ARRAY 1014
#define OID_TEXT_ARRAY 1009
#define OID_VARCHAR_ARRAY 1015
#define OID_BPCHAR 1042
#define OID_VARCHAR 1043
#define OID_DATE 1082
#define OID_TIMESTAMP 1114
#define OID_TIMESTAMPTZ 1184
#define OID_NUMERIC 1700
#define OID_UUID 2950
#define OID_UUID_ARRAY 2951
#define OID_JSONB 3802

enum render {
	R_NONE,   /* not rendered here */
	R_STRING, /* a JSON string of the text (dates too: ISO is what JSON has) */
	R_NUMBER, /* as is when it is a JSON number, else a string (NaN, Infinity) */
	R_BOOL,
	R_TIME, /* ISO "2024-07-31 12:00:00+08" as "2024-07-31T12:00:00+08:00" */
	R_JSON, /* as is */
	R_ARRAY /* a one- or more-dimensional array of strings */
};

static enum render render_of(Oid type)
{
	switch (type) {
	case OID_CHAR:
	case OID_NAME:
	case OID_TEXT:
	case OID_BPCHAR:
	case OID_VARCHAR:
	case OID_UUID:
	case OID_DATE:
		return R_STRING;
	case OID_INT2:
	case OID_INT4:
	case OID_INT8:
	case OID_FLOAT4:
	case OID_FLOAT8:
	case OID_NUMERIC:
		return R_NUMBER;
	case OID_BOOL:
		return R_BOOL;
	case OID_TIMESTAMP:
	case OID_TIMESTAMPTZ:
		return R_TIME;
	case OID_JSON:
	case OID_JSONB:
		return R_JSON;
	case OID_NAME_ARRAY:
	case OID_TEXT_ARRAY:
	case OID_BPCHAR_ARRAY:
	case OID_VARCHAR_ARRAY:
	case OID_UUID_ARRAY:
		return R_ARRAY;
	}
	return R_NONE;
}

/* The length of the n bytes at s once escaped as PostgreSQL's escape_json() escapes them. */
static size_t escaped_len(const char *s, size_t n)
{
	size_t len = n;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' ||
		    c == '\t')
			len += 1;
		else if (c < ' ')
			len += 5;
	}
	return len;
}

/* Appends the n bytes at s escaped as escape_json() escapes them, in quotes when quote
 * is set. Written in place after one reservation: the lists of every school are
 * megabytes of such text. */
static int put_text(struct buf *out, const char *s, size_t n, int quote)
{
	static const char hex[] = "0123456789abcdef";
	size_t len = escaped_len(s, n) + (quote ? 2 : 0);
	char *p;
	int r = buf_reserve(out, len);

	if (r < 0)
		return r;
	p = out->data + out->len;
	if (quote)
		*p++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= ' ' && c != '"' && c != '\\') {
			*p++ = (char)c;
			continue;
		}
		*p++ = '\\';
		switch (c) {
		case '\b':
			*p++ = 'b';
			break;
		case '\f':
			*p++ = 'f';
			break;
		case '\n':
			*p++ = 'n';
			break;
		case '\r':
			*p++ = 'r';
			break;
		case '\t':
			*p++ = 't';
			break;
		case '"':
		case '\\':
			*p++ = (char)c;
			break;
		default:
			*p++ = 'u';
			*p++ = '0';
			*p++ = '0';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
			break;
		}
	}
	if (quote)
		*p++ = '"';
	out->len += len;
	out->data[out->len] = '\0';
	return 0;
}

static int put_string(struct buf *out, const char *s, size_t n)
{
	return put_text(out, s, n, 1);
}

/* 1 when s is a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int json_number(const char *s)
{
	if (*s == '-')
		s++;
	if (*s == '0')
		s++;
	else if (*s >= '1' && *s <= '9')
		while (*s >= '0' && *s <= '9')
			s++;
	else
		return 0;
	if (*s == '.') {
		if (!(*++s >= '0' && *s <= '9'))
			return 0;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!(*s >= '0' && *s <= '9'))
			return 0;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return *s == '\0';
}

/* A date and time as ISO text ("2024-07-31 12:00:00.5+08", maybe " BC" after) in the
 * form of XML Schema that JSON takes: a 'T' between date and time, and the offset with
 * its minutes ("+08:00"). "infinity" has no space and stays as it is. */
static int put_time(struct buf *out, const char *s)
{
	const char *time = strchr(s, ' '), *zone, *rest;
	size_t n;
	int r;

	if (!time)
		return put_string(out, s, strlen(s));
	time++;
	zone = time + strcspn(time, "+-");
	r = buf_putc(out, '"');
	r = r < 0 ? r : buf_append(out, s, (size_t)(time - 1 - s));
	r = r < 0 ? r : buf_putc(out, 'T');
	r = r < 0 ? r : buf_append(out, time, (size_t)(zone - time));
	if (*zone) {
		n = 1 + strspn(zone + 1, "0123456789:");
		r = r < 0 ? r : buf_append(out, zone, n);
		if (n == 3)
			r = r < 0 ? r : buf_append(out, ":00", 3);
		rest = zone + n;
	} else {
		rest = zone;
	}
	r = r < 0 ? r : buf_puts(out, rest);
	return r < 0 ? r : buf_putc(out, '"');
}

/* An array of strings in PostgreSQL's text form ("{a,\"b c\",NULL}", maybe after
 * dimensions "[0:1]=") as array_to_json() writes it: ["a","b c",null]. */
static int put_array(struct buf *out, const char *s)
{
	int r = 0;

	if (*s == '[') {
		s = strchr(s, '=');
		if (!s)
			return -EINVAL;
		s++;
	}
	while (r >= 0 && *s) {
		size_t n;

		switch (*s) {
		case '{':
			r = buf_putc(out, '[');
			s++;
			break;
		case '}':
			r = buf_putc(out, ']');
			s++;
			break;
		case ',':
			r = buf_putc(out, ',');
			s++;
			break;
		case '"':
			/* quoted: a '"' or '\' in it comes after a backslash */
			r = buf_putc(out, '"');
			s++;
			while (r >= 0 && *s != '"') {
				n = strcspn(s, "\"\\");
				r = put_text(out, s, n, 0);
				s += n;
				if (*s == '\\') {
					if (!s[1])
						return -EINVAL;
					r = r < 0 ? r : put_text(out, s + 1, 1, 0);
					s += 2;
				} else if (*s != '"') {
					return -EINVAL;
				}
			}
			if (r < 0)
				return r;
			s++;
			r = buf_putc(out, '"');
			break;
		default:
			n = strcspn(s, ",}");
			if (n == 4 && memcmp(s, "NULL", 4) == 0)
				r = buf_append(out, "null", 4);
			else
				r = put_string(out, s, n);
			s += n;
			break;
		}
	}
	return r;
}

/* Chooses how each column of p->cols is written and makes the keys; 0, -ENOMEM, or
 * -ENOTSUP when a type is not known here (then row_to_json() writes the rows). */
static int plan_columns(struct part *p)
{
	int ncols = PQnfields(p->cols), r = 0;

	if (ncols > COLUMNS_MAX)
		return -ENOTSUP;
	buf_init(&p->keys, 64 * 1024);
	for (int c = 0; r >= 0 && c < ncols; c++) {
		const char *name = PQfname(p->cols, c);

		p->how[c] = (unsigned char)render_of(PQftype(p->cols, c));
		if (p->how[c] == R_NONE || PQfformat(p->cols, c) != 0)
			return -ENOTSUP;
		r = buf_putc(&p->keys, c ? ',' : '{');
		r = r < 0 ? r : put_string(&p->keys, name, strlen(name));
		r = r < 0 ? r : buf_putc(&p->keys, ':');
		p->key_end[c] = p->keys.len;
	}
	return r < 0 ? -ENOMEM : 0;
}

static int part_rows(const struct part *p)
{
	return PQntuples(p->res ? p->res : p->cols);
}

/* Appends row number k of p as one JSON object. */
static int put_row(struct buf *out, const struct part *p, int k)
{
	int ncols = PQnfields(p->cols), r = 0;

	if (p->res)
		return buf_puts(out, PQgetvalue(p->res, k, 0));
	for (int c = 0; r >= 0 && c < ncols; c++) {
		size_t start = c ? p->key_end[c - 1] : 0;
		const char *v = PQgetvalue(p->cols, k, c);
		size_t n = (size_t)PQgetlength(p->cols, k, c);

		r = buf_append(out, p->keys.data + start, p->key_end[c] - start);
		if (r < 0)
			break;
		if (PQgetisnull(p->cols, k, c)) {
			r = buf_append(out, "null", 4);
			continue;
		}
		switch ((enum render)p->how[c]) {
		case R_NUMBER:
			r = json_number(v) ? buf_append(out, v, n) : put_string(out, v, n);
			break;
		case R_BOOL:
			r = v[0] == 't' ? buf_append(out, "true", 4) : buf_append(out, "false", 5);
			break;
		case R_TIME:
			r = put_time(out, v);
			break;
		case R_JSON:
			r = buf_append(out, v, n);
			break;
		case R_ARRAY:
			r = put_array(out, v);
			break;
		case R_STRING:
		case R_NONE:
			r = put_string(out, v, n);
			break;
		}
	}
	if (r >= 0 && ncols == 0)
		r = buf_putc(out, '{');
	return r < 0 ? r : buf_putc(out, '}');
}

static int error_reply(struct http_reply *reply, int *ret_status, int status, const char *code,
                       const char *message)
{
	*ret_status = status;
	return http_reply_error(reply, status, code, message, NULL, NULL);
}

/* Appends the JSON string of s to out. */
static int put_json_string(struct buf *out, const char *s)
{
	cJSON *str = cJSON_CreateString(s);
	char *text = str ? cJSON_PrintUnformatted(str) : NULL;
	int r = text ? buf_puts(out, text) : -ENOMEM;

	free(text);
	cJSON_Delete(str);
	return r;
}

static int put_json(struct buf *out, const cJSON *item)
{
	char *text = cJSON_PrintUnformatted(item);
	int r = text ? buf_puts(out, text) : -ENOMEM;

	free(text);
	return r;
}

static int parse_rows(struct part *p)
{
	int n = part_rows(p);
	struct buf text;
	int r = 0;

	p->rows = cJSON_CreateArray();
	if (!p->rows)
		return -ENOMEM;
	buf_init(&text, ANSWER_MAX);
	for (int i = 0; r >= 0 && i < n; i++) {
		cJSON *row = NULL;

		buf_reset(&text);
		r = put_row(&text, p, i);
		if (r >= 0)
			r = json_parse_untrusted(text.data, text.len, ROW_DEPTH, &row, NULL, 0);
		if (r < 0)
			r = r == -ENOMEM ? r : -EIO;
		else
			cJSON_AddItemToArray(p->rows, row);
	}
	buf_release(&text);
	return r < 0 ? r : 0;
}

static int json_answer(const struct query_def *q, const cJSON *params, int public, const char *at,
                       struct part *parts, size_t nparts, struct buf *out)
{
	int r = 0;

	r = buf_puts(out, "{\"query\":");
	r = r < 0 ? r : put_json_string(out, q->name);
	r = r < 0 ? r : buf_puts(out, ",\"parameters\":");
	r = r < 0 ? r : put_json(out, params);
	r = r < 0 ? r
	          : buf_printf(out, ",\"public\":%s,\"generated_at\":\"%s\",\"tables\":[",
	                       public ? "true" : "false", at);
	for (size_t i = 0; r >= 0 && i < nparts; i++) {
		struct part *p = &parts[i];
		int ncols = PQnfields(p->cols);

		r = buf_printf(out, "%s{\"name\":", i ? "," : "");
		r = r < 0 ? r : put_json_string(out, p->def->name);
		r = r < 0 ? r : buf_puts(out, ",\"columns\":[");
		for (int c = 0; r >= 0 && c < ncols; c++) {
			r = c > 0 ? buf_putc(out, ',') : 0;
			r = r < 0 ? r : put_json_string(out, PQfname(p->cols, c));
		}
		r = r < 0 ? r : buf_puts(out, "],\"rows\":");
		if (p->rows) {
			r = r < 0 ? r : put_json(out, p->rows);
		} else {
			r = r < 0 ? r : buf_putc(out, '[');
			for (int k = 0; r >= 0 && k < part_rows(p); k++) {
				r = k ? buf_putc(out, ',') : 0;
				r = r < 0 ? r : put_row(out, p, k);
			}
			r = r < 0 ? r : buf_putc(out, ']');
		}
		r = r < 0 ? r : buf_putc(out, '}');
	}
	r = r < 0 ? r : buf_puts(out, "]}\n");
	return r < 0 ? r : 0;
}

/* One CSV field (RFC 4180). A text that a spreadsheet would take for a formula (it starts
 * with = + - @ or a tab) gets a leading apostrophe, so that opening an export never runs
 * what a school typed. */
static int csv_field(struct buf *out, const char *s, int is_text)
{
	int quote = strpbrk(s, ",\"\r\n") != NULL;
	int r = 0;

	if (is_text && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t'))
		r = buf_putc(out, '\'');
	if (r == 0 && !quote)
		return buf_puts(out, s);
	r = r < 0 ? r : buf_putc(out, '"');
	for (const char *p = s; r >= 0 && *p; p++)
		r = *p == '"' ? buf_append(out, "\"\"", 2) : buf_putc(out, *p);
	return r < 0 ? r : buf_putc(out, '"');
}

static int csv_value(struct buf *out, const cJSON *v)
{
	struct buf joined;
	const cJSON *e;
	char *text;
	int r = 0;

	if (!v || cJSON_IsNull(v))
		return 0;
	if (cJSON_IsString(v))
		return csv_field(out, v->valuestring, 1);
	if (cJSON_IsArray(v)) {
		buf_init(&joined, 1024 * 1024);
		cJSON_ArrayForEach(e, v)
		{
			r = joined.len ? buf_puts(&joined, "; ") : 0;
			if (r == 0 && cJSON_IsString(e)) {
				r = buf_puts(&joined, e->valuestring);
			} else if (r == 0) {
				text = cJSON_PrintUnformatted(e);
				r = text ? buf_puts(&joined, text) : -ENOMEM;
				free(text);
			}
			if (r < 0)
				break;
		}
		if (r == 0)
			r = csv_field(out, joined.data ? joined.data : "", 1);
		buf_release(&joined);
		return r;
	}
	text = cJSON_PrintUnformatted(v);
	if (!text)
		return -ENOMEM;
	r = csv_field(out, text, 0);
	free(text);
	return r;
}

static int csv_answer(struct part *p, struct buf *out)
{
	int ncols = PQnfields(p->cols), r;
	const cJSON *row;

	r = buf_puts(out, BOM);
	for (int c = 0; r >= 0 && c < ncols; c++) {
		r = c > 0 ? buf_putc(out, ',') : 0;
		r = r < 0 ? r : csv_field(out, PQfname(p->cols, c), 0);
	}
	r = r < 0 ? r : buf_puts(out, "\r\n");
	cJSON_ArrayForEach(row, p->rows)
	{
		for (int c = 0; r >= 0 && c < ncols; c++) {
			r = c > 0 ? buf_putc(out, ',') : 0;
			r = r < 0 ? r
			          : csv_value(out, cJSON_GetObjectItemCaseSensitive(
			                                   row, PQfname(p->cols, c)));
		}
		r = r < 0 ? r : buf_puts(out, "\r\n");
		if (r < 0)
			break;
	}
	return r < 0 ? r : 0;
}

/* 1 when the client asked for CSV: ?format=csv, or Accept naming text/csv without ?format. */
static int wants_csv(struct MHD_Connection *conn, const char *format)
{
	const char *accept;

	if (format)
		return strcmp(format, "csv") == 0;
	accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
	return accept && strcasestr(accept, "text/csv") != NULL;
}

static int truthy(const char *v)
{
	return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0);
}

static int db_error_status(int r)
{
	if (r == -EINVAL)
		return 400; /* e.g. invalid_parameter_value: an unknown period */
	return r == -ECONNRESET || r == -ECONNREFUSED || r == -EAGAIN || r == -EBUSY ||
	                       r == -ECANCELED
	               ? 503
	               : 500;
}

int inspect_handle(struct server *srv, struct worker *w, struct MHD_Connection *conn, int query,
                   const struct inspect_caller *caller, struct http_reply *reply, int *ret_status)
{
	const struct query_def *q = &queries[query];
	const char *values[PARAMS_MAX] = {NULL};
	struct part parts[PARTS_MAX];
	struct args args;
	struct buf out;
	cJSON *params = NULL;
	const char *format, *table, *county = NULL;
	char msg[DB_ERR_MAX + 128], at[DATETIME_RFC3339_MAX], rows_text[24], *params_text = NULL;
	size_t nparams = 0, nparts = 0;
	long long rows = 0;
	int public, csv, r, in_tx = 0;

	memset(parts, 0, sizeof(parts));
	memset(&args, 0, sizeof(args));
	buf_init(&out, ANSWER_MAX);
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect, &args);
	if (args.err[0]) {
		r = error_reply(reply, ret_status, 400, "bad_request", args.err);
		goto out;
	}
	format = arg_get(&args, "format");
	table = arg_get(&args, "table");
	public = truthy(arg_get(&args, "public"));
	if (format && strcmp(format, "csv") != 0 && strcmp(format, "json") != 0) {
		r = error_reply(reply, ret_status, 400, "bad_request", "format is json or csv");
		goto out;
	}
	if (arg_get(&args, "public") && !public && strcmp(arg_get(&args, "public"), "0") != 0 &&
	    strcmp(arg_get(&args, "public"), "false") != 0) {
		r = error_reply(reply, ret_status, 400, "bad_request", "public is 1 or 0");
		goto out;
	}
	csv = wants_csv(conn, format);
	/* every argument must be known: a misspelt one would silently widen the answer */
	for (size_t i = 0; i < args.n; i++) {
		const char *name = args.a[i].name;
		int known = strcmp(name, "format") == 0 || strcmp(name, "table") == 0 ||
		            strcmp(name, "public") == 0;

		for (size_t k = 0; !known && q->params[k].name; k++)
			known = strcmp(q->params[k].name, name) == 0;
		if (!known) {
			snprintf(msg, sizeof(msg), "%s takes no parameter \"%s\"", q->name, name);
			r = error_reply(reply, ret_status, 400, "bad_request", msg);
			goto out;
		}
	}
	params = cJSON_CreateObject();
	if (!params) {
		r = -ENOMEM;
		goto out;
	}
	for (nparams = 0; q->params[nparams].name; nparams++) {
		const struct param_def *d = &q->params[nparams];
		const char *v = arg_get(&args, d->name);

		if (v && !v[0])
			v = NULL;
		if (d->type == P_COUNTY) {
			/* a county viewer sees its own county, and only it */
			if (caller->county_id[0] && v && strcmp(v, caller->county_id) != 0) {
				snprintf(msg, sizeof(msg), "token \"%s\" may read county %s only",
				         caller->name, caller->county_id);
				r = error_reply(reply, ret_status, 403, "forbidden", msg);
				goto out;
			}
			if (caller->county_id[0])
				v = caller->county_id;
			county = v;
		}
		if (!v && d->required) {
			snprintf(msg, sizeof(msg), "%s needs %s=%s", q->name, d->name,
			         type_hint(d->type));
			r = error_reply(reply, ret_status, 400, "bad_request", msg);
			goto out;
		}
		if (v && !param_valid(d->type, v)) {
			snprintf(msg, sizeof(msg), "%s is not %s", d->name, type_hint(d->type));
			r = error_reply(reply, ret_status, 400, "bad_request", msg);
			goto out;
		}
		values[nparams] = v;
		if (!(v ? cJSON_AddStringToObject(params, d->name, v)
		        : cJSON_AddNullToObject(params, d->name))) {
			r = -ENOMEM;
			goto out;
		}
	}
	/* the tables asked for */
	for (size_t i = 0; q->parts[i].name; i++) {
		const struct part_def *d = &q->parts[i];

		if (public && !publish_supported(q->name, d->name))
			continue;
		if (csv && ((table && strcmp(table, d->name) != 0) || (!table && nparts > 0)))
			continue;
		if (!csv && table && strcmp(table, d->name) != 0)
			continue;
		parts[nparts++].def = d;
	}
	if (nparts == 0) {
		snprintf(msg, sizeof(msg), "%s has no %s%s%s", q->name, public ? "public " : "",
		         table ? "table " : "table", table ? table : "");
		r = error_reply(reply, ret_status, 400, "bad_request",
		                public && !table ? "this query has no public form: its tables are "
		                                   "school-level lists"
		                                 : msg);
		goto out;
	}

	/* read everything from one snapshot, and record the call in the same transaction;
	 * dates and times as ISO text, which put_row() reads */
	in_tx = 1;
	r = db_exec_script(w->db,
	                   "BEGIN ISOLATION LEVEL REPEATABLE READ; SET LOCAL DateStyle = ISO", msg,
	                   sizeof(msg));
	if (r < 0)
		goto db_failed;
	for (size_t i = 0; i < nparts; i++) {
		char sql[1024];

		/* the rows, with their columns also when there is none */
		snprintf(sql, sizeof(sql), "SELECT t.* %s", parts[i].def->from);
		r = db_query(w->db, sql, (int)nparams, values, &parts[i].cols, msg, sizeof(msg));
		if (r < 0)
			goto db_failed;
		if (plan_columns(&parts[i]) < 0) {
			/* a type not known to put_row(): the server writes the rows */
			snprintf(sql, sizeof(sql), "SELECT row_to_json(t)::text %s",
			         parts[i].def->from);
			r = db_query(w->db, sql, (int)nparams, values, &parts[i].res, msg,
			             sizeof(msg));
			if (r < 0)
				goto db_failed;
		}
		rows += part_rows(&parts[i]);
	}
	for (size_t i = 0; i < nparts; i++) {
		if (!public && !csv)
			continue;
		r = parse_rows(&parts[i]);
		if (r == 0 && public) {
			struct publish_table t = {parts[i].def->name, parts[i].rows};

			r = publish_apply(q->name, &t);
			parts[i].rows = t.rows;
		}
		if (r < 0) {
			snprintf(msg, sizeof(msg), "cannot prepare table \"%s\"",
			         parts[i].def->name);
			goto failed;
		}
	}
	if (!cJSON_AddStringToObject(params, "format", csv ? "csv" : "json") ||
	    !cJSON_AddBoolToObject(params, "public", public) ||
	    (table && !cJSON_AddStringToObject(params, "table", table))) {
		r = -ENOMEM;
		goto failed;
	}
	params_text = cJSON_PrintUnformatted(params);
	if (!params_text) {
		r = -ENOMEM;
		goto failed;
	}
	datetime_format_rfc3339(clock_now_ms(&srv->clock), srv->offset_min, at);
	snprintf(rows_text, sizeof(rows_text), "%lld", rows);
	{
		const char *audit[7] = {county,  at,          caller->name, caller->role,
		                        q->name, params_text, rows_text};

		r = db_exec(w->db,
		            "INSERT INTO audit_log (county_id, at, who, role, query, parameters,"
		            " rows_returned) VALUES ($1, $2::timestamptz, $3, $4, $5, $6::jsonb,"
		            " $7::bigint)",
		            7, audit, msg, sizeof(msg));
	}
	if (r >= 0)
		r = db_commit(w->db, msg, sizeof(msg));
	in_tx = 0;
	if (r < 0)
		goto db_failed;
	/* the parameters as answered: without format, public and table */
	cJSON_DeleteItemFromObjectCaseSensitive(params, "format");
	cJSON_DeleteItemFromObjectCaseSensitive(params, "public");
	cJSON_DeleteItemFromObjectCaseSensitive(params, "table");
	r = csv ? csv_answer(&parts[0], &out)
	        : json_answer(q, params, public, at, parts, nparts, &out);
	if (r < 0) {
		snprintf(msg, sizeof(msg), "the answer is too large");
		goto failed;
	}
	http_reply_release(reply);
	reply->status = 200;
	reply->body = buf_detach(&out, &reply->len);
	reply->content_type =
	        csv ? "text/csv; charset=utf-8; header=present" : "application/json; charset=utf-8";
	*ret_status = 200;
	r = 0;
	goto out;
db_failed:
	if (in_tx)
		db_rollback(w->db);
	in_tx = 0;
	r = error_reply(reply, ret_status, db_error_status(r),
	                db_error_status(r) == 400 ? "bad_request" : "unavailable", msg);
	if (*ret_status == 503)
		reply->retry_after = 2;
	goto out;
failed:
	if (in_tx)
		db_rollback(w->db);
	in_tx = 0;
	if (r == -ENOMEM)
		snprintf(msg, sizeof(msg), "out of memory");
	r = error_reply(reply, ret_status, 500, "internal", msg);
out:
	for (size_t i = 0; i < PARTS_MAX; i++) {
		PQclear(parts[i].cols);
		PQclear(parts[i].res);
		cJSON_Delete(parts[i].rows);
		buf_release(&parts[i].keys);
	}
	free(params_text);
	cJSON_Delete(params);
	buf_release(&out);
	return r;
}
