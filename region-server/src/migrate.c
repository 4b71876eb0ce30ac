/* Schema migrations and the calendar in the database: see migrate.h. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/buf.h"
#include "common/calendar.h"
#include "common/datetime.h"
#include "common/fileio.h"
#include "common/form.h"
#include "common/ids.h"
#include "db.h"
#include "migrate.h"
#include "common/banned.h"

/* pg_advisory_lock key of the migrators: "regionmg" in ASCII, a number no one else uses */
#define MIGRATE_LOCK_KEY "8243124871476291431"
#define MIGRATION_NAME_MAX 128

struct migration {
	int version;
	char name[MIGRATION_NAME_MAX + 1];
};

/* 1 when name is "NNN_[a-z0-9_]+.sql" and fits, with *ret_version set to NNN. */
static int migration_name_valid(const char *name, int *ret_version)
{
	size_t len = strlen(name);

	if (len < 9 || len > MIGRATION_NAME_MAX || strcmp(name + len - 4, ".sql") != 0)
		return 0;
	for (size_t i = 0; i < 3; i++)
		if (name[i] < '0' || name[i] > '9')
			return 0;
	if (name[3] != '_')
		return 0;
	for (size_t i = 4; i < len - 4; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		      name[i] == '_'))
			return 0;
	*ret_version = (name[0] - '0') * 100 + (name[1] - '0') * 10 + (name[2] - '0');
	return *ret_version > 0;
}

static int migration_compare(const void *a, const void *b)
{
	const struct migration *x = a, *y = b;

	return (x->version > y->version) - (x->version < y->version);
}

/* The migrations of dir sorted by version; caller frees *ret with free(). */
static int migrations_list(const char *dir, struct migration **ret, size_t *ret_count, char *err,
                           size_t errlen)
{
	struct migration *list = NULL;
	size_t count = 0;
	struct dirent *de;
	DIR *d;
	int r = 0;

	d = opendir(dir);
	if (!d) {
		r = -errno;
		snprintf(err, errlen, "cannot open '%s': %s", dir, strerror(errno));
		return r;
	}
	list = calloc(MIGRATE_FILES_MAX, sizeof(*list));
	if (!list) {
		r = -ENOMEM;
		goto fail;
	}
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		int version;

		if (len < 4 || strcmp(de->d_name + len - 4, ".sql") != 0)
			continue;
		if (!migration_name_valid(de->d_name, &version)) {
			snprintf(err, errlen,
			         "'%s/%s': a migration is named NNN_name.sql (name: a-z 0-9 _)",
			         dir, de->d_name);
			r = -EINVAL;
			goto fail;
		}
		if (count == MIGRATE_FILES_MAX) {
			snprintf(err, errlen, "'%s': more than %d migrations", dir,
			         MIGRATE_FILES_MAX);
			r = -EMSGSIZE;
			goto fail;
		}
		list[count].version = version;
		memcpy(list[count].name, de->d_name, len + 1);
		count++;
	}
	if (count == 0) {
		snprintf(err, errlen, "'%s' holds no migration (NNN_name.sql)", dir);
		r = -ENOENT;
		goto fail;
	}
	qsort(list, count, sizeof(*list), migration_compare);
	for (size_t i = 1; i < count; i++) {
		if (list[i].version == list[i - 1].version) {
			snprintf(err, errlen, "'%s': '%s' and '%s' have the same number", dir,
			         list[i - 1].name, list[i].name);
			r = -EINVAL;
			goto fail;
		}
	}
	closedir(d);
	*ret = list;
	*ret_count = count;
	return 0;
fail:
	closedir(d);
	free(list);
	return r;
}

/* The rows of schema_migrations (version, name, sha256), or NULL in *ret when the table
 * does not exist yet (a new database). */
static int applied_list(struct db *db, struct pg_result **ret, char *err, size_t errlen)
{
	struct pg_result *res = NULL;
	int r;

	r = db_query(db, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL, &res, err,
	             errlen);
	if (r < 0)
		return r;
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		db_result_free(res);
		*ret = NULL;
		return 0;
	}
	db_result_free(res);
	r = db_query(db, "SELECT version, name, sha256 FROM schema_migrations ORDER BY version", 0,
	             NULL, &res, err, errlen);
	if (r < 0)
		return r;
	*ret = res;
	return 0;
}

/* The row of applied with that version, or -1. */
static int applied_find(const struct pg_result *applied, int version)
{
	if (!applied)
		return -1;
	for (int i = 0; i < PQntuples(applied); i++)
		if (strtol(PQgetvalue(applied, i, 0), NULL, 10) == version)
			return i;
	return -1;
}

/* Applies one migration with its record, in one transaction. */
static int apply_one(struct db *db, const struct migration *m, const char *sql, const char *sha256,
                     char *err, size_t errlen)
{
	char version[16], dberr[DB_ERR_MAX];
	const char *params[3] = {version, m->name, sha256};
	int r;

	snprintf(version, sizeof(version), "%d", m->version);
	r = db_begin(db, dberr, sizeof(dberr));
	if (r < 0)
		goto fail;
	r = db_exec_script(db, sql, dberr, sizeof(dberr));
	if (r < 0)
		goto fail_rollback;
	r = db_exec(db, "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
	            3, params, dberr, sizeof(dberr));
	if (r < 0)
		goto fail_rollback;
	r = db_commit(db, dberr, sizeof(dberr));
	if (r < 0)
		goto fail;
	return 0;
fail_rollback:
	db_rollback(db);
fail:
	snprintf(err, errlen, "migration '%s' failed: %s", m->name, dberr);
	return r;
}

int migrate_apply(struct db *db, const char *dir, int *ret_applied, char *err, size_t errlen)
{
	const char *const lock_params[1] = {MIGRATE_LOCK_KEY};
	struct pg_result *applied = NULL;
	struct migration *list = NULL;
	size_t count = 0;
	char path[PATH_MAX], sha256[IDS_SHA256_HEX_LEN + 1];
	struct buf sql;
	int r, done = 0, locked = 0;

	buf_init(&sql, MIGRATE_FILE_MAX);
	r = migrations_list(dir, &list, &count, err, errlen);
	if (r < 0)
		goto out;
	r = db_exec(db, "SELECT pg_advisory_lock($1::bigint)", 1, lock_params, err, errlen);
	if (r < 0)
		goto out;
	locked = 1;
	r = applied_list(db, &applied, err, errlen);
	if (r < 0)
		goto out;
	/* a schema newer than this program: its queries may not fit it */
	for (int i = 0; applied && i < PQntuples(applied); i++) {
		long v = strtol(PQgetvalue(applied, i, 0), NULL, 10);
		size_t j;

		for (j = 0; j < count && list[j].version != v; j++)
			;
		if (j == count) {
			snprintf(err, errlen,
			         "the database has migration '%s', which '%s' lacks: this "
			         "region-server is older than the database",
			         PQgetvalue(applied, i, 1), dir);
			r = -EPROTO;
			goto out;
		}
	}
	for (size_t i = 0; i < count; i++) {
		const struct migration *m = &list[i];
		int row;

		if (snprintf(path, sizeof(path), "%s/%s", dir, m->name) >= (int)sizeof(path)) {
			snprintf(err, errlen, "'%s/%s': path too long", dir, m->name);
			r = -ENAMETOOLONG;
			goto out;
		}
		buf_reset(&sql);
		r = fileio_read(path, &sql);
		if (r < 0) {
			snprintf(err, errlen, "cannot read '%s': %s", path,
			         r == -EMSGSIZE ? "file too large" : strerror(-r));
			goto out;
		}
		ids_sha256_hex(sql.data ? sql.data : "", sql.len, sha256);
		row = applied_find(applied, m->version);
		if (row >= 0) {
			if (strcmp(PQgetvalue(applied, row, 1), m->name) != 0 ||
			    strcmp(PQgetvalue(applied, row, 2), sha256) != 0) {
				snprintf(err, errlen,
				         "'%s' differs from migration %d ('%s') as it was applied; "
				         "changes go into a new migration",
				         path, m->version, PQgetvalue(applied, row, 1));
				r = -EINVAL;
				goto out;
			}
			continue;
		}
		if (memchr(sql.data ? sql.data : "", '\0', sql.len)) {
			snprintf(err, errlen, "'%s' holds a NUL byte", path);
			r = -EINVAL;
			goto out;
		}
		r = apply_one(db, m, sql.data ? sql.data : "", sha256, err, errlen);
		if (r < 0)
			goto out;
		done++;
	}
	*ret_applied = done;
	r = 0;
out:
	if (locked) {
		char dberr[DB_ERR_MAX];

		/* the lock also ends with the session: a failed unlock costs nothing lasting */
		if (db_exec(db, "SELECT pg_advisory_unlock($1::bigint)", 1, lock_params, dberr,
		            sizeof(dberr)) < 0 &&
		    r == 0) {
			snprintf(err, errlen, "cannot release the migration lock: %s", dberr);
			r = -EIO;
		}
	}
	db_result_free(applied);
	free(list);
	buf_release(&sql);
	return r;
}

static const char *period_type_name(enum calendar_period_type t)
{
	switch (t) {
	case CALENDAR_PERIOD_PHASE:
		return "phase";
	case CALENDAR_PERIOD_MONTHLY:
		return "monthly";
	case CALENDAR_PERIOD_EVENT:
		return "event";
	}
	return "?";
}

static int insert_form(struct db *db, const struct calendar *cal, const char *form, char *err,
                       size_t errlen)
{
	enum calendar_period_type type;
	const char *field = NULL;
	const char *params[3];
	int r;

	r = calendar_period_type(cal, form, &type);
	if (r < 0) {
		snprintf(err, errlen, "form '%s': %s", form, strerror(-r));
		return r;
	}
	if (type == CALENDAR_PERIOD_EVENT) {
		r = calendar_event_field(cal, form, &field);
		if (r < 0) {
			snprintf(err, errlen, "form '%s': %s", form, strerror(-r));
			return r;
		}
	}
	params[0] = form;
	params[1] = period_type_name(type);
	params[2] = field;
	r = db_exec(db,
	            "INSERT INTO forms (form, period_type, event_field) VALUES ($1, $2, $3) "
	            "ON CONFLICT (form) DO NOTHING",
	            3, params, err, errlen);
	return r < 0 ? r : 0;
}

/* One period row. due NULL: no due date and no deadline (event periods). */
static int insert_period(struct db *db, const struct calendar *cal, const char *form,
                         const char *period, int required, const struct date *start,
                         const struct date *end, const struct date *due, int64_t deadline_ms,
                         int64_t expiry_ms, char *err, size_t errlen)
{
	char s[11], e[11], d[11], deadline[DATETIME_RFC3339_MAX], expiry[DATETIME_RFC3339_MAX];
	const char *params[8];
	int offset = calendar_utc_offset_min(cal), r;

	date_format(start, s);
	date_format(end, e);
	if (due) {
		date_format(due, d);
		datetime_format_rfc3339(deadline_ms, offset, deadline);
	}
	datetime_format_rfc3339(expiry_ms, offset, expiry);
	params[0] = form;
	params[1] = period;
	params[2] = required ? "true" : "false";
	params[3] = s;
	params[4] = e;
	params[5] = due ? d : NULL;
	params[6] = due ? deadline : NULL;
	params[7] = expiry;
	r = db_exec(db,
	            "INSERT INTO periods (form, period, required, start_date, end_date, due_date, "
	            "deadline, expires_at) VALUES ($1, $2, $3::boolean, $4::date, $5::date, "
	            "$6::date, $7::timestamptz, $8::timestamptz) "
	            "ON CONFLICT (form, period) DO NOTHING",
	            8, params, err, errlen);
	return r < 0 ? r : 0;
}

/* A phase period that is not required (screening in 2024-P2): due date and deadline come
 * from the calendar as for a required one. Nothing when form has no such period. */
static int insert_optional_phase(struct db *db, const struct calendar *cal, const char *form,
                                 const char *period, char *err, size_t errlen)
{
	struct date start, end, due;
	int64_t deadline_ms, expiry_ms;
	int r;

	if (calendar_period_check(cal, form, period) < 0)
		return 0;
	r = calendar_period_required(cal, form, period);
	if (r != 0)
		return r < 0 ? r : 0; /* required ones are in already */
	r = calendar_period_dates(cal, form, period, &start, &end);
	if (r >= 0)
		r = calendar_due_date(cal, form, period, &due);
	if (r >= 0)
		r = calendar_deadline_ms(cal, form, period, &deadline_ms);
	if (r >= 0)
		r = calendar_expiry_ms(cal, form, period, &expiry_ms);
	if (r < 0) {
		snprintf(err, errlen, "form '%s' period '%s': %s", form, period, strerror(-r));
		return r;
	}
	return insert_period(db, cal, form, period, 0, &start, &end, &due, deadline_ms, expiry_ms,
	                     err, errlen);
}

/* Every month of an event form from first to last (months as year * 12 + month - 1). */
static int insert_event_months(struct db *db, const struct calendar *cal, const char *form,
                               int first, int last, char *err, size_t errlen)
{
	for (int m = first; m <= last; m++) {
		char period[CALENDAR_PERIOD_MAX];
		struct date start, end;
		int64_t expiry_ms;
		int r;

		snprintf(period, sizeof(period), "%04d-%02d", m / 12, m % 12 + 1);
		if (calendar_period_check(cal, form, period) < 0)
			continue;
		r = calendar_period_dates(cal, form, period, &start, &end);
		if (r >= 0)
			r = calendar_expiry_ms(cal, form, period, &expiry_ms);
		if (r < 0) {
			snprintf(err, errlen, "form '%s' period '%s': %s", form, period,
			         strerror(-r));
			return r;
		}
		r = insert_period(db, cal, form, period, 0, &start, &end, NULL, 0, expiry_ms, err,
		                  errlen);
		if (r < 0)
			return r;
	}
	return 0;
}

int migrate_load_calendar(struct db *db, const struct calendar *cal, const struct form_set *forms,
                          int *ret_periods, char *err, size_t errlen)
{
	struct calendar_due *dues = NULL;
	struct pg_result *res;
	size_t ndues = 0;
	char dberr[DB_ERR_MAX];
	int r, count, first_month = INT_MAX, last_month = INT_MIN;

	r = calendar_expected(cal, NULL, NULL, NULL, &dues, &ndues);
	if (r < 0) {
		snprintf(err, errlen, "cannot list the calendar's periods: %s", strerror(-r));
		return r;
	}
	r = db_begin(db, dberr, sizeof(dberr));
	if (r < 0)
		goto fail;
	/* the old period types, to see below which forms changed */
	r = db_exec(db, "CREATE TEMPORARY TABLE old_forms ON COMMIT DROP AS SELECT * FROM forms", 0,
	            NULL, dberr, sizeof(dberr));
	if (r >= 0)
		r = db_exec(db, "DELETE FROM periods", 0, NULL, dberr, sizeof(dberr));
	if (r >= 0)
		r = db_exec(db, "DELETE FROM forms", 0, NULL, dberr, sizeof(dberr));
	if (r < 0)
		goto fail_rollback;
	for (size_t i = 0; i < forms->count; i++) {
		if (!calendar_form_known(cal, forms->forms[i].id))
			continue;
		r = insert_form(db, cal, forms->forms[i].id, dberr, sizeof(dberr));
		if (r < 0)
			goto fail_rollback;
	}
	/* every required period, and the campaigns' span in months */
	for (size_t i = 0; i < ndues; i++) {
		const struct calendar_due *d = &dues[i];
		int m0 = d->start.year * 12 + d->start.month - 1;
		int m1 = d->end.year * 12 + d->end.month - 1;

		first_month = m0 < first_month ? m0 : first_month;
		last_month = m1 > last_month ? m1 : last_month;
		r = insert_form(db, cal, d->form, dberr, sizeof(dberr));
		if (r < 0)
			goto fail_rollback;
		r = insert_period(db, cal, d->form, d->period, 1, &d->start, &d->end, &d->due,
		                  d->deadline_ms, d->expiry_ms, dberr, sizeof(dberr));
		if (r < 0)
			goto fail_rollback;
	}
	/* the optional periods: other phases of phase forms, and the months of event forms */
	for (size_t i = 0; i < forms->count; i++) {
		const char *form = forms->forms[i].id;
		enum calendar_period_type type;

		if (!calendar_form_known(cal, form) || calendar_period_type(cal, form, &type) < 0)
			continue;
		if (type == CALENDAR_PERIOD_EVENT && first_month <= last_month) {
			r = insert_event_months(db, cal, form, first_month, last_month, dberr,
			                        sizeof(dberr));
			if (r < 0)
				goto fail_rollback;
		} else if (type == CALENDAR_PERIOD_PHASE) {
			for (size_t j = 0; j < ndues; j++) {
				int k = calendar_period_required(cal, form, dues[j].period);

				/* a phase id, once, that this form does not require */
				if (k != 0 || strchr(dues[j].period, 'P') == NULL)
					continue;
				r = insert_optional_phase(db, cal, form, dues[j].period, dberr,
				                          sizeof(dberr));
				if (r < 0)
					goto fail_rollback;
			}
		}
	}
	/* a form that became (or stopped being) an event form counts its returns otherwise */
	r = db_exec(db,
	            "SELECT submission_current_rebuild(f.form) FROM ("
	            " SELECT coalesce(n.form, o.form) AS form"
	            " FROM forms n FULL JOIN pg_temp.old_forms o ON o.form = n.form"
	            " WHERE coalesce(n.period_type = 'event', false)"
	            "  <> coalesce(o.period_type = 'event', false)) f",
	            0, NULL, dberr, sizeof(dberr));
	if (r < 0)
		goto fail_rollback;
	r = db_query(db, "SELECT count(*) FROM periods", 0, NULL, &res, dberr, sizeof(dberr));
	if (r < 0)
		goto fail_rollback;
	count = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
	db_result_free(res);
	r = db_commit(db, dberr, sizeof(dberr));
	if (r < 0)
		goto fail;
	free(dues);
	*ret_periods = count;
	return 0;
fail_rollback:
	db_rollback(db);
fail:
	snprintf(err, errlen, "cannot store the calendar: %s", dberr);
	free(dues);
	return r;
}
