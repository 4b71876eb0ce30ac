/* The region's PostgreSQL connection, over libpq. Every statement that carries a value is
 * sent with its parameters apart from the SQL text (PQexecParams): nothing is ever pasted
 * into SQL. libpq's results are translated here, at the module boundary, into negative
 * errno values plus the server's message in a caller-provided buffer:
 *   -ECONNREFUSED  cannot connect               -ECONNRESET  connection lost
 *   -EEXIST        unique violation (23505)     -ENOENT      foreign key violation
 *                                                            (23503), undefined table
 *   -EINVAL        other integrity or data errors, SQL errors (22, 23, 42 classes)
 *   -EAGAIN        serialization failure, deadlock (40)     -EBUSY  lock not available
 *   -ENOSPC        disk full    -ENOMEM  out of memory      -EACCES insufficient privilege
 *   -ECANCELED     statement cancelled          -EIO         anything else
 * db_sqlstate() gives the SQLSTATE of the last failure for finer decisions.
 * One struct db is one connection: use it from one thread at a time. */
#ifndef REGION_DB_H
#define REGION_DB_H

#include <stddef.h>

#include "common/macro.h"

struct db;
struct pg_result; /* libpq's PGresult */

#define DB_ERR_MAX 1024 /* a good size for the err buffers below */

/* Connects with conninfo, a libpq connection string or URI; NULL or "" takes everything
 * from the PG* environment variables and libpq's defaults. The session uses UTF-8 and
 * names itself "region-server" unless conninfo names it otherwise. Caller frees *ret with
 * db_free(). -ECONNREFUSED (err says why) or -ENOMEM. */
int db_open(const char *conninfo, struct db **ret, char *err, size_t errlen) WUR;
/* Closes the connection; accepts NULL. */
void db_free(struct db *db);

/* Runs one statement with nparams text parameters (params[i] NULL is SQL NULL; params may
 * be NULL when nparams is 0) and discards any rows. Returns the number of rows the
 * statement affected or returned (>= 0), or a negative errno as listed above. */
int db_exec(struct db *db, const char *sql, int nparams, const char *const *params, char *err,
            size_t errlen) WUR;

/* Runs one statement as db_exec() does and hands its rows to the caller, who frees *ret
 * with db_result_free(). Values are read with libpq's PQgetvalue()/PQgetisnull(). */
int db_query(struct db *db, const char *sql, int nparams, const char *const *params,
             struct pg_result **ret, char *err, size_t errlen) WUR;
/* Accepts NULL. */
void db_result_free(struct pg_result *res);

/* Runs a script of several statements with no parameters (PQexec): only for trusted SQL
 * such as the migrations in schemas/region/. Same returns as db_exec(), 0 on success. */
int db_exec_script(struct db *db, const char *sql, char *err, size_t errlen) WUR;

/* Transactions. db_rollback() is for cleanup paths: its failure is only logged at debug
 * (the connection is then unusable anyway). */
int db_begin(struct db *db, char *err, size_t errlen) WUR;
int db_commit(struct db *db, char *err, size_t errlen) WUR;
void db_rollback(struct db *db);

/* Runs sql, a "COPY ... FROM STDIN" statement, feeding it the len bytes at data (COPY text
 * format). Returns the number of rows copied, or a negative errno as db_exec(). */
int db_copy_in(struct db *db, const char *sql, const char *data, size_t len, char *err,
               size_t errlen) WUR;

/* The same COPY in pieces, so the data can be sent as it is made and the server work on
 * it meanwhile: db_copy_start() runs sql (0, or a negative errno as db_exec()); then
 * db_copy_put() any number of times; then db_copy_end(), which returns the number of rows
 * copied or a negative errno, the first failure of a put included (the server may report
 * a bad row only there). Nothing else may run on db in between. db_copy_abort() ends a
 * started COPY as failed instead (a cleanup path: the transaction is then aborted). */
int db_copy_start(struct db *db, const char *sql, char *err, size_t errlen) WUR;
int db_copy_put(struct db *db, const char *data, size_t len, char *err, size_t errlen) WUR;
int db_copy_end(struct db *db, char *err, size_t errlen) WUR;
void db_copy_abort(struct db *db);

/* 1 while the connection is usable; 0 once it is lost (a pool then replaces it). */
int db_usable(const struct db *db);

/* The five-character SQLSTATE of the last failed statement, "" when there was none or
 * the failure came from the client side. Borrowed from db. */
const char *db_sqlstate(const struct db *db);

#endif
