/* PostgreSQL over libpq: see db.h. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/log.h"
#include "db.h"
#include "common/banned.h"

struct db {
	PGconn *conn;
	char sqlstate[6];
	int copy_failed; /* a db_copy_put() failed: the COPY's end reports it */
};

/* libpq prints NOTICEs on stderr by default; they are not worth more than debug here. */
static void db_notice(void *arg, const PGresult *res)
{
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	(void)arg;
	log_debug("postgresql notice: %s", msg ? msg : "(none)");
}

/* Copies msg into err as one line: libpq ends messages with a newline and continues some
 * on indented lines, and a log line must stay one line. */
static void set_err(char *err, size_t errlen, const char *msg)
{
	size_t n, j = 0;

	if (!err || errlen == 0)
		return;
	snprintf(err, errlen, "%s", msg && msg[0] ? msg : "unknown database error");
	n = strlen(err);
	while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
		err[--n] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (err[i] == '\n' || err[i] == '\r') {
			/* "; " only where it replaces two characters or more: j never passes i */
			if (i + 1 < n && (err[i + 1] == '\t' || err[i + 1] == ' '))
				err[j++] = ';';
			err[j++] = ' ';
			while (i + 1 < n && (err[i + 1] == '\t' || err[i + 1] == ' '))
				i++;
		} else {
			err[j++] = err[i] == '\t' ? ' ' : err[i];
		}
	}
	err[j] = '\0';
}

static int errno_from_sqlstate(const char *s)
{
	if (strcmp(s, "23505") == 0)
		return -EEXIST;
	if (strcmp(s, "23503") == 0 || strcmp(s, "42P01") == 0)
		return -ENOENT;
	if (strcmp(s, "53100") == 0)
		return -ENOSPC;
	if (strcmp(s, "53200") == 0)
		return -ENOMEM;
	if (strcmp(s, "53300") == 0 || strcmp(s, "55P03") == 0)
		return -EBUSY;
	if (strcmp(s, "57014") == 0)
		return -ECANCELED;
	if (strcmp(s, "42501") == 0)
		return -EACCES;
	if (strncmp(s, "08", 2) == 0 || strncmp(s, "57P", 3) == 0)
		return -ECONNRESET;
	if (strncmp(s, "40", 2) == 0)
		return -EAGAIN;
	if (strncmp(s, "22", 2) == 0 || strncmp(s, "23", 2) == 0 || strncmp(s, "42", 2) == 0)
		return -EINVAL;
	return -EIO;
}

/* Translates a finished result: >= 0 (rows affected or returned) when it succeeded. The
 * message is the server's primary message, with its detail and hint when there are. */
static int db_check(struct db *db, const PGresult *res, char *err, size_t errlen)
{
	const char *state, *primary, *detail, *hint;
	char msg[DB_ERR_MAX];
	ExecStatusType st;
	long n;

	db->sqlstate[0] = '\0';
	if (!res) {
		set_err(err, errlen, PQerrorMessage(db->conn));
		return PQstatus(db->conn) == CONNECTION_OK ? -ENOMEM : -ECONNRESET;
	}
	st = PQresultStatus(res);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		if (st == PGRES_TUPLES_OK)
			return PQntuples(res);
		n = strtol(PQcmdTuples((PGresult *)res), NULL, 10);
		return n < 0 || n > INT_MAX ? INT_MAX : (int)n;
	}
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	if (primary && detail)
		snprintf(msg, sizeof(msg), "%s (%s)", primary, detail);
	else if (primary)
		snprintf(msg, sizeof(msg), "%s", primary);
	else
		snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(res));
	if (hint) {
		size_t len = strlen(msg);

		snprintf(msg + len, sizeof(msg) - len, "; hint: %s", hint);
	}
	set_err(err, errlen, msg);
	if (PQstatus(db->conn) != CONNECTION_OK)
		return -ECONNRESET;
	if (!state)
		return -EIO;
	snprintf(db->sqlstate, sizeof(db->sqlstate), "%s", state);
	return errno_from_sqlstate(state);
}

int db_open(const char *conninfo, struct db **ret, char *err, size_t errlen)
{
	/* the caller's conninfo (expanded from "dbname") overrides the timeout before it and
	 * is overridden by the encoding after it: the store is UTF-8 throughout */
	const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname",
	                            "client_encoding", NULL};
	const char *const values[] = {"10", "region-server", conninfo ? conninfo : "", "UTF8",
	                              NULL};
	struct db *db;

	db = calloc(1, sizeof(*db));
	if (!db)
		return -ENOMEM;
	db->conn = PQconnectdbParams(keys, values, 1);
	if (!db->conn) {
		free(db);
		return -ENOMEM;
	}
	if (PQstatus(db->conn) != CONNECTION_OK) {
		set_err(err, errlen, PQerrorMessage(db->conn));
		db_free(db);
		return -ECONNREFUSED;
	}
	PQsetNoticeReceiver(db->conn, db_notice, NULL);
	*ret = db;
	return 0;
}

void db_free(struct db *db)
{
	if (!db)
		return;
	PQfinish(db->conn);
	free(db);
}

int db_query(struct db *db, const char *sql, int nparams, const char *const *params,
             struct pg_result **ret, char *err, size_t errlen)
{
	PGresult *res;
	int r;

	res = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	r = db_check(db, res, err, errlen);
	if (r < 0) {
		PQclear(res);
		return r;
	}
	*ret = res;
	return r;
}

int db_exec(struct db *db, const char *sql, int nparams, const char *const *params, char *err,
            size_t errlen)
{
	PGresult *res;
	int r;

	res = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	r = db_check(db, res, err, errlen);
	PQclear(res);
	return r;
}

void db_result_free(struct pg_result *res)
{
	PQclear(res);
}

int db_exec_script(struct db *db, const char *sql, char *err, size_t errlen)
{
	PGresult *res;
	int r;

	/* PQexec returns the result of the last statement, or of the first that failed */
	res = PQexec(db->conn, sql);
	r = db_check(db, res, err, errlen);
	PQclear(res);
	return r < 0 ? r : 0;
}

int db_begin(struct db *db, char *err, size_t errlen)
{
	int r = db_exec(db, "BEGIN", 0, NULL, err, errlen);

	return r < 0 ? r : 0;
}

int db_commit(struct db *db, char *err, size_t errlen)
{
	PGresult *res;
	int r;

	res = PQexecParams(db->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0);
	r = db_check(db, res, err, errlen);
	/* COMMIT of a failed transaction "succeeds" as ROLLBACK: that is a failure here */
	if (r >= 0 && strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
		set_err(err, errlen, "the transaction was rolled back");
		r = -EIO;
	}
	PQclear(res);
	return r < 0 ? r : 0;
}

void db_rollback(struct db *db)
{
	char err[DB_ERR_MAX];

	if (db_exec(db, "ROLLBACK", 0, NULL, err, sizeof(err)) < 0)
		log_debug("rollback failed: %s", err);
}

int db_copy_start(struct db *db, const char *sql, char *err, size_t errlen)
{
	PGresult *res;
	int r;

	db->copy_failed = 0;
	res = PQexec(db->conn, sql);
	if (!res || PQresultStatus(res) != PGRES_COPY_IN) {
		r = db_check(db, res, err, errlen);
		PQclear(res);
		/* a statement that is not a COPY FROM STDIN is the caller's mistake */
		return r < 0 ? r : -EINVAL;
	}
	PQclear(res);
	return 0;
}

int db_copy_put(struct db *db, const char *data, size_t len, char *err, size_t errlen)
{
	const size_t chunk = 1024 * 1024;

	if (db->copy_failed)
		return -EIO;
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;

		if (PQputCopyData(db->conn, data + off, (int)n) != 1) {
			set_err(err, errlen, PQerrorMessage(db->conn));
			/* db_copy_end() reports the failure: an end is still owed */
			db->copy_failed = 1;
			return -EIO;
		}
	}
	return 0;
}

/* Ends the COPY (as failed when reason is not NULL) and collects its result. */
static int copy_finish(struct db *db, const char *reason, char *err, size_t errlen)
{
	PGresult *res;
	int r = 0;

	if (PQputCopyEnd(db->conn, reason) != 1)
		set_err(err, errlen, PQerrorMessage(db->conn));
	while ((res = PQgetResult(db->conn)) != NULL) {
		int rr = db_check(db, res, err, errlen);

		if (rr < 0 && r >= 0)
			r = rr;
		else if (r >= 0)
			r = rr;
		PQclear(res);
	}
	if (r >= 0 && db->copy_failed) {
		set_err(err, errlen, PQerrorMessage(db->conn));
		r = -EIO;
	}
	db->copy_failed = 0;
	return r;
}

int db_copy_end(struct db *db, char *err, size_t errlen)
{
	return copy_finish(db, NULL, err, errlen);
}

void db_copy_abort(struct db *db)
{
	char err[DB_ERR_MAX];

	if (copy_finish(db, "abandoned by the client", err, sizeof(err)) < 0)
		log_debug("copy abandoned: %s", err);
}

int db_copy_in(struct db *db, const char *sql, const char *data, size_t len, char *err,
               size_t errlen)
{
	int r = db_copy_start(db, sql, err, errlen);

	if (r < 0)
		return r;
	/* a failed put is reported by the end too, which is owed either way */
	if (db_copy_put(db, data, len, err, errlen) < 0)
		log_debug("copy data not sent: %s", err ? err : "");
	return db_copy_end(db, err, errlen);
}

int db_usable(const struct db *db)
{
	return PQstatus(db->conn) == CONNECTION_OK;
}

const char *db_sqlstate(const struct db *db)
{
	return db->sqlstate;
}
