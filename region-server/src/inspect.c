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
	PGresult *cols; /* the columns only (db_describe) */
	PGresult *res;  /* one column: each row as JSON text */
	cJSON *rows;    /* parsed (public or CSV), else NULL */
};

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
	int n = PQntuples(p->res);

	p->rows = cJSON_CreateArray();
	if (!p->rows)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		const char *text = PQgetvalue(p->res, i, 0);
		cJSON *row = NULL;
		int r = json_parse_untrusted(text, strlen(text), ROW_DEPTH, &row, NULL, 0);

		if (r < 0)
			return r == -ENOMEM ? r : -EIO;
		cJSON_AddItemToArray(p->rows, row);
	}
	return 0;
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
			for (int k = 0; r >= 0 && k < PQntuples(p->res); k++) {
				r = k ? buf_putc(out, ',') : 0;
				r = r < 0 ? r : buf_puts(out, PQgetvalue(p->res, k, 0));
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

	/* read everything from one snapshot, and record the call in the same transaction */
	r = db_exec(w->db, "BEGIN ISOLATION LEVEL REPEATABLE READ", 0, NULL, msg, sizeof(msg));
	if (r < 0)
		goto db_failed;
	in_tx = 1;
	for (size_t i = 0; i < nparts; i++) {
		char sql[1024];

		/* the columns (also when there is no row), then the rows as JSON */
		snprintf(sql, sizeof(sql), "SELECT t.* %s", parts[i].def->from);
		r = db_describe(w->db, sql, (int)nparams, &parts[i].cols, msg, sizeof(msg));
		if (r < 0)
			goto db_failed;
		snprintf(sql, sizeof(sql), "SELECT row_to_json(t)::text %s", parts[i].def->from);
		r = db_query(w->db, sql, (int)nparams, values, &parts[i].res, msg, sizeof(msg));
		if (r < 0)
			goto db_failed;
		rows += PQntuples(parts[i].res);
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
	}
	free(params_text);
	cJSON_Delete(params);
	buf_release(&out);
	return r;
}
