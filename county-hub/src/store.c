/* The hub's SQLite store: see store.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store.h"
#include "common/banned.h"

#ifndef SQLITE_DEFAULT_WAL_AUTOCHECKPOINT
#define SQLITE_DEFAULT_WAL_AUTOCHECKPOINT 1000 /* pages, as SQLite's own default */
#endif

/* Each entry brings the schema from version i to i + 1, in one transaction. */
static const char *const migrations[] = {
        /* 1: the roster, submissions, outbox, approvals and lock exceptions */
        "CREATE TABLE schools ("
        " school_id TEXT PRIMARY KEY CHECK (length(school_id) = 10),"
        " name TEXT NOT NULL,"
        " type TEXT NOT NULL DEFAULT '',"
        " opened_on TEXT,"
        " closed_from TEXT,"
        " public_key BLOB NOT NULL CHECK (length(public_key) = 32),"
        " updated_at TEXT NOT NULL"
        ") STRICT;"
        "CREATE TABLE submissions ("
        " submission_id TEXT PRIMARY KEY,"
        " school_id TEXT NOT NULL REFERENCES schools (school_id),"
        " form TEXT NOT NULL,"
        " form_version INTEGER NOT NULL,"
        " period TEXT NOT NULL,"
        " created_at TEXT NOT NULL,"
        " supersedes TEXT REFERENCES submissions (submission_id),"
        " payload_sha256 TEXT NOT NULL,"
        " payload TEXT NOT NULL,"
        " jws TEXT NOT NULL,"
        " received_at TEXT NOT NULL,"
        " received_ms INTEGER NOT NULL,"
        " on_time INTEGER CHECK (on_time IN (0, 1)),"
        " receipt TEXT NOT NULL"
        ") STRICT;"
        "CREATE INDEX submissions_by_period ON submissions (form, period, school_id, received_ms);"
        "CREATE INDEX submissions_by_supersedes ON submissions (supersedes)"
        " WHERE supersedes IS NOT NULL;"
        "CREATE TABLE outbox ("
        " id INTEGER PRIMARY KEY,"
        " kind TEXT NOT NULL,"
        " ref TEXT NOT NULL,"
        " body TEXT,"
        " created_ms INTEGER NOT NULL,"
        " attempts INTEGER NOT NULL DEFAULT 0,"
        " next_attempt_ms INTEGER NOT NULL DEFAULT 0,"
        " last_error TEXT,"
        " done_ms INTEGER"
        ") STRICT;"
        "CREATE INDEX outbox_pending ON outbox (next_attempt_ms) WHERE done_ms IS NULL;"
        "CREATE TABLE approvals ("
        " form TEXT NOT NULL,"
        " period TEXT NOT NULL,"
        " approved_at TEXT NOT NULL,"
        " PRIMARY KEY (form, period)"
        ") STRICT;"
        "CREATE TABLE lock_exceptions ("
        " school_id TEXT NOT NULL REFERENCES schools (school_id),"
        " form TEXT NOT NULL,"
        " period TEXT NOT NULL,"
        " granted_at TEXT NOT NULL,"
        " PRIMARY KEY (school_id, form, period)"
        ") STRICT;",
        /* 2: forwarding. Rosters go out whole and versioned (docs/PROTOCOL.md), so the
         * per-school entries of version 1 stay as history under another kind, not sent;
         * roll-ups get strictly increasing computed_at instants per (form, period). The
         * outbox is rebuilt with AUTOINCREMENT: a pending roll-up that is replaced is
         * deleted, and its id must never come back for a newer row, or a late
         * confirmation of the old one would mark the new one sent. */
        "CREATE TABLE outbox2 ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " kind TEXT NOT NULL,"
        " ref TEXT NOT NULL,"
        " body TEXT,"
        " created_ms INTEGER NOT NULL,"
        " attempts INTEGER NOT NULL DEFAULT 0,"
        " next_attempt_ms INTEGER NOT NULL DEFAULT 0,"
        " last_error TEXT,"
        " done_ms INTEGER"
        ") STRICT;"
        /* the first per-school entry becomes a placeholder for the whole roster (body
         * NULL), which `serve` signs at start: it keeps its place before the returns
         * that need it */
        "INSERT INTO outbox2 SELECT id,"
        " CASE WHEN kind <> 'roster' THEN kind WHEN id = (SELECT min(id) FROM outbox"
        "  WHERE kind = 'roster') THEN 'roster' ELSE 'roster_entry' END,"
        " ref, CASE kind WHEN 'roster' THEN NULL ELSE body END,"
        " created_ms, attempts, next_attempt_ms, last_error,"
        " CASE WHEN kind <> 'roster' OR id = (SELECT min(id) FROM outbox"
        "  WHERE kind = 'roster') THEN done_ms ELSE coalesce(done_ms, created_ms) END"
        " FROM outbox;"
        "UPDATE outbox2 SET last_error = 'not sent: replaced by whole rosters'"
        " WHERE kind = 'roster_entry';"
        "DROP TABLE outbox;"
        "ALTER TABLE outbox2 RENAME TO outbox;"
        "CREATE INDEX outbox_pending_id ON outbox (id) WHERE done_ms IS NULL;"
        "CREATE INDEX outbox_pending_ref ON outbox (kind, ref) WHERE done_ms IS NULL;"
        "CREATE TABLE counters ("
        " name TEXT PRIMARY KEY,"
        " value INTEGER NOT NULL"
        ") STRICT;"
        "CREATE TABLE rollup_stamps ("
        " form TEXT NOT NULL,"
        " period TEXT NOT NULL,"
        " computed_ms INTEGER NOT NULL,"
        " PRIMARY KEY (form, period)"
        ") STRICT;",
};

enum stmt_id {
	STMT_BEGIN,
	STMT_COMMIT,
	STMT_ROLLBACK,
	STMT_SAVEPOINT,
	STMT_RELEASE,
	STMT_ROLLBACK_TO,
	STMT_SCHOOL_GET,
	STMT_SCHOOL_INSERT,
	STMT_SCHOOL_REPLACE,
	STMT_SCHOOL_LIST,
	STMT_SUBMISSION_INSERT,
	STMT_SUBMISSION_FIND,
	STMT_APPROVED,
	STMT_EXCEPTION,
	STMT_APPROVE,
	STMT_UNAPPROVE,
	STMT_GRANT,
	STMT_REVOKE,
	STMT_OUTBOX_ADD,
	STMT_OUTBOX_DEPTH,
	STMT_RECEIPT,
	STMT_BEGIN_READ,
	STMT_CURRENT_RETURNS,
	STMT_ROLLUP_UNMARK,
	STMT_STAMP_GET,
	STMT_STAMP_PUT,
	STMT_COUNTER_GET,
	STMT_COUNTER_PUT,
	STMT_OUTBOX_HAS_KIND,
	STMT_SCHOOL_COUNT,
	STMT_OUTBOX_PENDING,
	STMT_OUTBOX_SET_BODY,
	STMT_OUTBOX_DONE,
	STMT_OUTBOX_FAILED,
	STMT_OUTBOX_PLACEHOLDER,
	STMT_OUTBOX_FILL,
	STMT_COUNT,
};

static const char *const stmt_sql[STMT_COUNT] = {
        [STMT_BEGIN] = "BEGIN IMMEDIATE",
        [STMT_COMMIT] = "COMMIT",
        [STMT_ROLLBACK] = "ROLLBACK",
        [STMT_SAVEPOINT] = "SAVEPOINT item",
        [STMT_RELEASE] = "RELEASE item",
        [STMT_ROLLBACK_TO] = "ROLLBACK TO item",
        [STMT_SCHOOL_GET] = "SELECT school_id, name, type, coalesce(opened_on, ''),"
                            " coalesce(closed_from, ''), public_key, updated_at"
                            " FROM schools WHERE school_id = ?1",
        [STMT_SCHOOL_INSERT] = "INSERT INTO schools (school_id, name, type, opened_on,"
                               " closed_from, public_key, updated_at)"
                               " VALUES (?1, ?2, ?3, nullif(?4, ''), nullif(?5, ''), ?6, ?7)",
        [STMT_SCHOOL_REPLACE] = "UPDATE schools SET name = ?2, type = ?3,"
                                " opened_on = nullif(?4, ''), closed_from = nullif(?5, ''),"
                                " public_key = ?6, updated_at = ?7 WHERE school_id = ?1"
                                " AND (name IS NOT ?2 OR type IS NOT ?3"
                                " OR opened_on IS NOT nullif(?4, '')"
                                " OR closed_from IS NOT nullif(?5, '') OR public_key IS NOT ?6)",
        [STMT_SCHOOL_LIST] = "SELECT school_id, name, type, coalesce(opened_on, ''),"
                             " coalesce(closed_from, ''), public_key, updated_at"
                             " FROM schools ORDER BY school_id",
        [STMT_SUBMISSION_INSERT] =
                "INSERT INTO submissions (submission_id, school_id, form, form_version, period,"
                " created_at, supersedes, payload_sha256, payload, jws, received_at, received_ms,"
                " on_time, receipt)"
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        [STMT_SUBMISSION_FIND] = "SELECT payload_sha256, school_id, form, period, receipt"
                                 " FROM submissions WHERE submission_id = ?1",
        [STMT_APPROVED] = "SELECT 1 FROM approvals WHERE form = ?1 AND period = ?2",
        [STMT_EXCEPTION] = "SELECT 1 FROM lock_exceptions"
                           " WHERE school_id = ?1 AND form = ?2 AND period = ?3",
        [STMT_APPROVE] = "INSERT INTO approvals (form, period, approved_at) VALUES (?1, ?2, ?3)"
                         " ON CONFLICT DO NOTHING",
        [STMT_UNAPPROVE] = "DELETE FROM approvals WHERE form = ?1 AND period = ?2",
        [STMT_GRANT] = "INSERT INTO lock_exceptions (school_id, form, period, granted_at)"
                       " VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
        [STMT_REVOKE] = "DELETE FROM lock_exceptions"
                        " WHERE school_id = ?1 AND form = ?2 AND period = ?3",
        [STMT_OUTBOX_ADD] = "INSERT INTO outbox (kind, ref, body, created_ms)"
                            " VALUES (?1, ?2, ?3, ?4)",
        [STMT_OUTBOX_DEPTH] = "SELECT count(*) FROM outbox WHERE done_ms IS NULL",
        [STMT_RECEIPT] = "SELECT receipt FROM submissions WHERE submission_id = ?1",
        [STMT_BEGIN_READ] = "BEGIN",
        /* not superseded; per school the latest received first, with the school's first
         * receive time of the period (a late correction does not make it late) */
        [STMT_CURRENT_RETURNS] =
                "SELECT s.submission_id, s.school_id, s.payload_sha256, s.payload,"
                " s.received_ms, s.on_time,"
                " (SELECT min(f.received_ms) FROM submissions f WHERE f.form = s.form"
                "  AND f.period = s.period AND f.school_id = s.school_id)"
                " FROM submissions s WHERE s.form = ?1 AND s.period = ?2"
                " AND NOT EXISTS (SELECT 1 FROM submissions c"
                "  WHERE c.supersedes = s.submission_id)"
                " ORDER BY s.school_id, s.received_ms DESC, s.rowid DESC",
        [STMT_ROLLUP_UNMARK] = "DELETE FROM outbox WHERE kind = 'rollup' AND ref = ?1"
                               " AND done_ms IS NULL",
        [STMT_STAMP_GET] = "SELECT computed_ms FROM rollup_stamps WHERE form = ?1 AND period = ?2",
        [STMT_STAMP_PUT] = "INSERT INTO rollup_stamps (form, period, computed_ms)"
                           " VALUES (?1, ?2, ?3) ON CONFLICT (form, period)"
                           " DO UPDATE SET computed_ms = excluded.computed_ms",
        [STMT_COUNTER_GET] = "SELECT value FROM counters WHERE name = ?1",
        [STMT_COUNTER_PUT] = "INSERT INTO counters (name, value) VALUES (?1, ?2)"
                             " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        [STMT_OUTBOX_HAS_KIND] = "SELECT 1 FROM outbox WHERE kind = ?1 LIMIT 1",
        [STMT_SCHOOL_COUNT] = "SELECT count(*) FROM schools",
        [STMT_OUTBOX_PENDING] = "SELECT o.id, o.kind, o.ref, o.body, s.jws, s.receipt"
                                " FROM outbox o LEFT JOIN submissions s"
                                " ON o.kind = 'submission' AND s.submission_id = o.ref"
                                " WHERE o.done_ms IS NULL AND o.id > ?1 ORDER BY o.id LIMIT ?2",
        [STMT_OUTBOX_SET_BODY] = "UPDATE outbox SET body = ?2 WHERE id = ?1 AND done_ms IS NULL",
        [STMT_OUTBOX_DONE] = "UPDATE outbox SET done_ms = ?2, last_error = ?3"
                             " WHERE id = ?1 AND done_ms IS NULL",
        [STMT_OUTBOX_PLACEHOLDER] = "SELECT id FROM outbox WHERE kind = ?1 AND body IS NULL"
                                    " AND done_ms IS NULL ORDER BY id LIMIT 1",
        [STMT_OUTBOX_FILL] = "UPDATE outbox SET ref = ?2, body = ?3 WHERE id = ?1",
        [STMT_OUTBOX_FAILED] = "UPDATE outbox SET attempts = attempts + 1, last_error = ?3"
                               " WHERE id BETWEEN ?1 AND ?2 AND done_ms IS NULL",
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *stmt[STMT_COUNT];
	void (*wal_fn)(void *data, int wal_pages);
	void *wal_data;
};

static int errno_of(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	default:
		return -EIO;
	}
}

const char *store_errmsg(const struct store *s)
{
	return sqlite3_errmsg(s->db);
}

/* The prepared statement id, reset and with its bindings cleared; NULL on failure. */
static sqlite3_stmt *stmt(struct store *s, enum stmt_id id)
{
	if (!s->stmt[id]) {
		if (sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
		                       &s->stmt[id], NULL) != SQLITE_OK)
			return NULL;
	} else {
		sqlite3_reset(s->stmt[id]);
		sqlite3_clear_bindings(s->stmt[id]);
	}
	return s->stmt[id];
}

static int prepare_error(struct store *s)
{
	int r = errno_of(sqlite3_errcode(s->db));

	return r < 0 ? r : -EIO;
}

/* Runs a statement that returns no rows; resets it. */
static int step_done(struct store *s, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return 0;
	(void)s;
	return errno_of(rc) < 0 ? errno_of(rc) : -EIO;
}

static int bind_text(sqlite3_stmt *st, int i, const char *text)
{
	if (!text)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC);
}

static int exec(struct store *s, const char *sql)
{
	return errno_of(sqlite3_exec(s->db, sql, NULL, NULL, NULL));
}

static int migrate(struct store *s, int read_only, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int version, r;

	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		snprintf(err, errlen, "cannot read the schema version: %s", store_errmsg(s));
		return prepare_error(s);
	}
	version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version > (int)ARRAY_SIZE(migrations)) {
		snprintf(err, errlen,
		         "the store is at schema version %d, newer than this program's %d", version,
		         (int)ARRAY_SIZE(migrations));
		return -EPROTO;
	}
	if (version == (int)ARRAY_SIZE(migrations))
		return 0;
	if (read_only) {
		snprintf(err, errlen, "the store is at schema version %d, not %d: restart the hub",
		         version, (int)ARRAY_SIZE(migrations));
		return -EPROTO;
	}
	r = exec(s, "BEGIN IMMEDIATE");
	if (r < 0)
		goto fail;
	/* read again under the write lock: another process may have migrated meanwhile */
	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		r = prepare_error(s);
		goto fail;
	}
	version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	for (; version < (int)ARRAY_SIZE(migrations); version++) {
		char sql[64];

		r = exec(s, migrations[version]);
		if (r < 0)
			goto fail;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", version + 1);
		r = exec(s, sql);
		if (r < 0)
			goto fail;
	}
	r = exec(s, "COMMIT");
	if (r < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "cannot migrate the store to version %d: %s", version + 1,
	         store_errmsg(s));
	exec(s, "ROLLBACK");
	return r;
}

int store_open(const char *path, int flags, int busy_timeout_ms, struct store **ret, char *err,
               size_t errlen)
{
	int oflags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
	struct store *s;
	int r, rc;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if (flags & STORE_CREATE)
		oflags |= SQLITE_OPEN_CREATE;
	rc = sqlite3_open_v2(path, &s->db, oflags, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open the store '%s': %s", path,
		         s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		r = errno_of(rc) < 0 ? errno_of(rc) : -EIO;
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 0);
	sqlite3_busy_timeout(s->db, busy_timeout_ms);
	/* WAL for concurrent readers and one writer; FULL: a commit is on disk when it
	 * returns (WAL fsync on every commit) */
	r = exec(s, "PRAGMA journal_mode = WAL");
	if (r == 0)
		r = exec(s, "PRAGMA synchronous = FULL");
	if (r == 0)
		r = exec(s, "PRAGMA foreign_keys = ON");
	if (r < 0) {
		snprintf(err, errlen, "cannot set up the store '%s': %s", path, store_errmsg(s));
		goto fail;
	}
	r = migrate(s, flags & STORE_READ_ONLY, err, errlen);
	if (r < 0)
		goto fail;
	if ((flags & STORE_READ_ONLY) && exec(s, "PRAGMA query_only = 1") < 0) {
		snprintf(err, errlen, "cannot set up the store '%s': %s", path, store_errmsg(s));
		r = -EIO;
		goto fail;
	}
	*ret = s;
	return 0;
fail:
	store_close(s);
	return r;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < STMT_COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	sqlite3_close(s->db);
	free(s);
}

int store_set_max_bytes(struct store *s, long long max_bytes)
{
	char sql[96];
	sqlite3_stmt *st = NULL;
	long long page_size = 4096, pages;
	int r;

	if (max_bytes <= 0)
		return 0;
	if (sqlite3_prepare_v2(s->db, "PRAGMA page_size", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		page_size = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	pages = max_bytes / (page_size > 0 ? page_size : 4096);
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld", pages > 1 ? pages : 1);
	r = exec(s, sql);
	return r;
}

static int on_wal(void *data, sqlite3 *db, const char *name, int wal_pages)
{
	struct store *s = data;

	(void)db;
	(void)name;
	s->wal_fn(s->wal_data, wal_pages);
	return SQLITE_OK;
}

void store_wal_hook(struct store *s, void (*fn)(void *data, int wal_pages), void *data)
{
	s->wal_fn = fn;
	s->wal_data = data;
	if (fn)
		sqlite3_wal_hook(s->db, on_wal, s);
	else
		sqlite3_wal_autocheckpoint(s->db, SQLITE_DEFAULT_WAL_AUTOCHECKPOINT);
}

int store_checkpoint(struct store *s, int *ret_wal_pages, int *ret_copied)
{
	int wal_pages = 0, copied = 0, rc;

	rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &wal_pages, &copied);
	if (rc != SQLITE_OK)
		return errno_of(rc) < 0 ? errno_of(rc) : -EIO;
	*ret_wal_pages = wal_pages;
	*ret_copied = copied;
	return 0;
}

static int run_simple(struct store *s, enum stmt_id id)
{
	sqlite3_stmt *st = stmt(s, id);

	return st ? step_done(s, st) : prepare_error(s);
}

int store_begin(struct store *s)
{
	return run_simple(s, STMT_BEGIN);
}

int store_commit(struct store *s)
{
	return run_simple(s, STMT_COMMIT);
}

void store_rollback(struct store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		(void)run_simple(s, STMT_ROLLBACK);
}

int store_savepoint(struct store *s)
{
	return run_simple(s, STMT_SAVEPOINT);
}

int store_release(struct store *s)
{
	return run_simple(s, STMT_RELEASE);
}

void store_rollback_to(struct store *s)
{
	/* ROLLBACK TO keeps the savepoint open: release it too */
	if (!sqlite3_get_autocommit(s->db) && run_simple(s, STMT_ROLLBACK_TO) == 0)
		(void)run_simple(s, STMT_RELEASE);
}

static void copy_column(sqlite3_stmt *st, int col, char *out, size_t outlen)
{
	const unsigned char *text = sqlite3_column_text(st, col);

	snprintf(out, outlen, "%s", text ? (const char *)text : "");
}

static void read_school(sqlite3_stmt *st, struct store_school *ret)
{
	const void *key = sqlite3_column_blob(st, 5);

	memset(ret, 0, sizeof(*ret));
	copy_column(st, 0, ret->school_id, sizeof(ret->school_id));
	copy_column(st, 1, ret->name, sizeof(ret->name));
	copy_column(st, 2, ret->type, sizeof(ret->type));
	copy_column(st, 3, ret->opened_on, sizeof(ret->opened_on));
	copy_column(st, 4, ret->closed_from, sizeof(ret->closed_from));
	if (key && sqlite3_column_bytes(st, 5) == (int)sizeof(ret->public_key))
		memcpy(ret->public_key, key, sizeof(ret->public_key));
	copy_column(st, 6, ret->updated_at, sizeof(ret->updated_at));
}

int store_school_get(struct store *s, const char *school_id, struct store_school *ret)
{
	sqlite3_stmt *st = stmt(s, STMT_SCHOOL_GET);
	int rc, r = -ENOENT;

	if (!st)
		return prepare_error(s);
	bind_text(st, 1, school_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		read_school(st, ret);
		r = 0;
	} else if (rc != SQLITE_DONE) {
		r = errno_of(rc) < 0 ? errno_of(rc) : -EIO;
	}
	sqlite3_reset(st);
	return r;
}

static void bind_school(sqlite3_stmt *st, const struct store_school *school)
{
	bind_text(st, 1, school->school_id);
	bind_text(st, 2, school->name);
	bind_text(st, 3, school->type);
	bind_text(st, 4, school->opened_on);
	bind_text(st, 5, school->closed_from);
	sqlite3_bind_blob(st, 6, school->public_key, sizeof(school->public_key), SQLITE_STATIC);
	bind_text(st, 7, school->updated_at);
}

int store_school_put(struct store *s, const struct store_school *school, int replace,
                     int *ret_changed)
{
	struct store_school old;
	sqlite3_stmt *st;
	int r, changed = 1;

	r = store_school_get(s, school->school_id, &old);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == 0 && !replace)
		return -EEXIST;
	st = stmt(s, r == 0 ? STMT_SCHOOL_REPLACE : STMT_SCHOOL_INSERT);
	if (!st)
		return prepare_error(s);
	bind_school(st, school);
	r = step_done(s, st);
	if (r < 0)
		return r;
	changed = sqlite3_changes(s->db) > 0;
	if (ret_changed)
		*ret_changed = changed;
	return 0;
}

int store_school_list(struct store *s, int (*fn)(void *data, const struct store_school *school),
                      void *data)
{
	sqlite3_stmt *st = stmt(s, STMT_SCHOOL_LIST);
	struct store_school school;
	int rc, r = 0;

	if (!st)
		return prepare_error(s);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		read_school(st, &school);
		r = fn(data, &school);
		if (r < 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = errno_of(rc) < 0 ? errno_of(rc) : -EIO;
	sqlite3_reset(st);
	return r;
}

int store_outbox_add(struct store *s, const char *kind, const char *ref, const char *body,
                     int64_t now_ms)
{
	sqlite3_stmt *st = stmt(s, STMT_OUTBOX_ADD);

	if (!st)
		return prepare_error(s);
	bind_text(st, 1, kind);
	bind_text(st, 2, ref);
	bind_text(st, 3, body);
	sqlite3_bind_int64(st, 4, now_ms);
	return step_done(s, st);
}

int store_submission_insert(struct store *s, const struct store_submission *sub, int64_t now_ms)
{
	sqlite3_stmt *st = stmt(s, STMT_SUBMISSION_INSERT);
	int r;

	if (!st)
		return prepare_error(s);
	bind_text(st, 1, sub->submission_id);
	bind_text(st, 2, sub->school_id);
	bind_text(st, 3, sub->form);
	sqlite3_bind_int(st, 4, sub->form_version);
	bind_text(st, 5, sub->period);
	bind_text(st, 6, sub->created_at);
	bind_text(st, 7, sub->supersedes);
	bind_text(st, 8, sub->payload_sha256);
	sqlite3_bind_text(st, 9, sub->payload, (int)sub->payload_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, sub->jws, (int)sub->jws_len, SQLITE_STATIC);
	bind_text(st, 11, sub->received_at);
	sqlite3_bind_int64(st, 12, sub->received_ms);
	if (sub->on_time >= 0)
		sqlite3_bind_int(st, 13, sub->on_time);
	else
		sqlite3_bind_null(st, 13);
	sqlite3_bind_text(st, 14, sub->receipt, (int)sub->receipt_len, SQLITE_STATIC);
	r = step_done(s, st);
	if (r < 0)
		return r;
	return store_outbox_add(s, "submission", sub->submission_id, NULL, now_ms);
}

static int copy_blob(sqlite3_stmt *st, int col, char **ret, size_t *ret_len)
{
	const void *data = sqlite3_column_blob(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);
	char *copy = malloc(n + 1);

	if (!copy)
		return -ENOMEM;
	if (n)
		memcpy(copy, data, n);
	copy[n] = '\0';
	*ret = copy;
	*ret_len = n;
	return 0;
}

int store_submission_find(struct store *s, const char *submission_id, struct store_found *ret,
                          char **ret_receipt, size_t *ret_len)
{
	sqlite3_stmt *st = stmt(s, STMT_SUBMISSION_FIND);
	struct store_found found;
	int rc, r = -ENOENT;

	if (!st)
		return prepare_error(s);
	bind_text(st, 1, submission_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		copy_column(st, 0, found.payload_sha256, sizeof(found.payload_sha256));
		copy_column(st, 1, found.school_id, sizeof(found.school_id));
		copy_column(st, 2, found.form, sizeof(found.form));
		copy_column(st, 3, found.period, sizeof(found.period));
		r = ret_receipt ? copy_blob(st, 4, ret_receipt, ret_len) : 0;
		if (r == 0)
			*ret = found;
	} else if (rc != SQLITE_DONE) {
		r = errno_of(rc) < 0 ? errno_of(rc) : -EIO;
	}
	sqlite3_reset(st);
	return r;
}

/* 1 when the query bound with up to three texts returns a row, 0 when not. */
static int exists(struct store *s, enum stmt_id id, const char *a, const char *b, const char *c)
{
	sqlite3_stmt *st = stmt(s, id);
	int rc, r;

	if (!st)
		return prepare_error(s);
	bind_text(st, 1, a);
	bind_text(st, 2, b);
	if (c)
		bind_text(st, 3, c);
	rc = sqlite3_step(st);
	r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : (errno_of(rc) < 0 ? errno_of(rc) : -EIO);
	sqlite3_reset(st);
	return r;
}

int store_lock_state(struct store *s, const char *school_id, const char *form, const char *period,
                     int *ret_approved, int *ret_exception)
{
	int approved, exception;

	approved = exists(s, STMT_APPROVED, form, period, NULL);
	if (approved < 0)
		return approved;
	exception = exists(s, STMT_EXCEPTION, school_id, form, period);
	if (exception < 0)
		return exception;
	*ret_approved = approved;
	*ret_exception = exception;
	return 0;
}

int store_set_approved(struct store *s, const char *form, const char *period, int approved,
                       const char *at)
{
	sqlite3_stmt *st = stmt(s, approved ? STMT_APPROVE : STMT_UNAPPROVE);
	int r;

	if (!st)
		return prepare_error(s);
	bind_text(st, 1, form);
	bind_text(st, 2, period);
	if (approved)
		bind_text(st, 3, at);
	r = step_done(s, st);
	return r < 0 ? r : sqlite3_changes(s->db) > 0;
}

int store_set_exception(struct store *s, const char *school_id, const char *form,
                        const char *period, int grant, const char *at)
{
	struct store_school school;
	sqlite3_stmt *st;
	int r;

	r = store_school_get(s, school_id, &school);
	if (r < 0)
		return r;
	st = stmt(s, grant ? STMT_GRANT : STMT_REVOKE);
	if (!st)
		return prepare_error(s);
	bind_text(st, 1, school_id);
	bind_text(st, 2, form);
	bind_text(st, 3, period);
	if (grant)
		bind_text(st, 4, at);
	r = step_done(s, st);
	return r < 0 ? r : sqlite3_changes(s->db) > 0;
}

int store_outbox_depth(struct store *s, long long *ret)
{
	sqlite3_stmt *st = stmt(s, STMT_OUTBOX_DEPTH);
	int rc, r = 0;

	if (!st)
		return prepare_error(s);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int64(st, 0);
	else
		r = errno_of(rc) < 0 ? errno_of(rc) : -EIO;
	sqlite3_reset(st);
	return r;
}

int store_receipt_get(struct store *s, const char *submission_id, char **ret, size_t *ret_len)
{
	sqlite3_stmt *st = stmt(s, STMT_RECEIPT);
	int rc, r = -ENOENT;

	if (!st)
		return prepare_error(s);
	bind_text(st, 1, submission_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		r = copy_blob(st, 0, ret, ret_len);
	else if (rc != SQLITE_DONE)
		r = errno_of(rc) < 0 ? errno_of(rc) : -EIO;
	sqlite3_reset(st);
	return r;
}

int store_begin_read(struct store *s)
{
	return run_simple(s, STMT_BEGIN_READ);
}

int store_current_returns(struct store *s, const char *form, const char *period,
                          int (*fn)(void *data, const struct store_return *ret), void *data)
{
	sqlite3_stmt *st = stmt(s, STMT_CURRENT_RETURNS);
	struct store_return row;
	int rc, r = 0;

	if (!st)
		return prepare_error(s);
	bind_text(st, 1, form);
	bind_text(st, 2, period);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&row, 0, sizeof(row));
		row.submission_id = (const char *)sqlite3_column_text(st, 0);
		row.school_id = (const char *)sqlite3_column_text(st, 1);
		row.sha256 = (const char *)sqlite3_column_text(st, 2);
		row.payload = (const char *)sqlite3_column_text(st, 3);
		row.payload_len = (size_t)sqlite3_column_bytes(st, 3);
		row.received_ms = sqlite3_column_int64(st, 4);
		row.on_time =
		        sqlite3_column_type(st, 5) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 5);
		row.first_ms = sqlite3_column_int64(st, 6);
		if (!row.submission_id || !row.school_id || !row.sha256 || !row.payload) {
			r = -ENOMEM;
			break;
		}
		r = fn(data, &row);
		if (r < 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW)
		r = errno_of(rc) < 0 ? errno_of(rc) : -EIO;
	sqlite3_reset(st);
	return r;
}

int store_approved(struct store *s, const char *form, const char *period)
{
	return exists(s, STMT_APPROVED, form, period, NULL);
}

int store_rollup_mark(struct store *s, const char *form, const char *period, const char *body,
                      int64_t now_ms)
{
	char ref[STORE_REF_MAX];
	sqlite3_stmt *st;
	int n, r;

	n = snprintf(ref, sizeof(ref), "%s/%s", form, period);
	if (n < 0 || (size_t)n >= sizeof(ref))
		return -EINVAL;
	st = stmt(s, STMT_ROLLUP_UNMARK);
	if (!st)
		return prepare_error(s);
	bind_text(st, 1, ref);
	r = step_done(s, st);
	if (r < 0)
		return r;
	return store_outbox_add(s, "rollup", ref, body, now_ms);
}

/* The single integer of a one-row query bound with up to two texts: 1 and *ret, or 0
 * when there is no row. */
static int one_integer(struct store *s, enum stmt_id id, const char *a, const char *b,
                       long long *ret)
{
	sqlite3_stmt *st = stmt(s, id);
	int rc, r;

	if (!st)
		return prepare_error(s);
	if (a)
		bind_text(st, 1, a);
	if (b)
		bind_text(st, 2, b);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret = sqlite3_column_int64(st, 0);
		r = 1;
	} else {
		r = rc == SQLITE_DONE ? 0 : (errno_of(rc) < 0 ? errno_of(rc) : -EIO);
	}
	sqlite3_reset(st);
	return r;
}

int store_rollup_stamp(struct store *s, const char *form, const char *period, int64_t now_ms,
                       int64_t *ret_ms)
{
	sqlite3_stmt *st;
	long long last = 0;
	int64_t stamp = now_ms;
	int r;

	r = one_integer(s, STMT_STAMP_GET, form, period, &last);
	if (r < 0)
		return r;
	if (r == 1 && stamp <= last)
		stamp = last + 1;
	st = stmt(s, STMT_STAMP_PUT);
	if (!st)
		return prepare_error(s);
	bind_text(st, 1, form);
	bind_text(st, 2, period);
	sqlite3_bind_int64(st, 3, stamp);
	r = step_done(s, st);
	if (r < 0)
		return r;
	*ret_ms = stamp;
	return 0;
}

int store_counter_next(struct store *s, const char *name, long long *ret)
{
	sqlite3_stmt *st;
	long long value = 0;
	int r;

	r = one_integer(s, STMT_COUNTER_GET, name, NULL, &value);
	if (r < 0)
		return r;
	st = stmt(s, STMT_COUNTER_PUT);
	if (!st)
		return prepare_error(s);
	bind_text(st, 1, name);
	sqlite3_bind_int64(st, 2, value + 1);
	r = step_done(s, st);
	if (r < 0)
		return r;
	*ret = value + 1;
	return 0;
}

int store_outbox_has_kind(struct store *s, const char *kind)
{
	long long one;

	return one_integer(s, STMT_OUTBOX_HAS_KIND, kind, NULL, &one);
}

int store_school_count(struct store *s, long long *ret)
{
	long long n = 0;
	int r = one_integer(s, STMT_SCHOOL_COUNT, NULL, NULL, &n);

	if (r < 0)
		return r;
	*ret = n;
	return 0;
}

int store_outbox_pending(struct store *s, long long after_id, size_t limit,
                         int (*fn)(void *data, const struct store_outbox_row *row), void *data)
{
	sqlite3_stmt *st = stmt(s, STMT_OUTBOX_PENDING);
	struct store_outbox_row row;
	int rc, r = 0;

	if (!st)
		return prepare_error(s);
	sqlite3_bind_int64(st, 1, after_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&row, 0, sizeof(row));
		row.id = sqlite3_column_int64(st, 0);
		row.kind = (const char *)sqlite3_column_text(st, 1);
		row.ref = (const char *)sqlite3_column_text(st, 2);
		row.body = (const char *)sqlite3_column_text(st, 3);
		row.body_len = (size_t)sqlite3_column_bytes(st, 3);
		row.jws = (const char *)sqlite3_column_text(st, 4);
		row.jws_len = (size_t)sqlite3_column_bytes(st, 4);
		row.receipt = (const char *)sqlite3_column_text(st, 5);
		row.receipt_len = (size_t)sqlite3_column_bytes(st, 5);
		if (!row.kind || !row.ref) {
			r = -ENOMEM;
			break;
		}
		r = fn(data, &row);
		if (r != 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW)
		r = errno_of(rc) < 0 ? errno_of(rc) : -EIO;
	sqlite3_reset(st);
	return r < 0 ? r : 0;
}

int store_outbox_set_body(struct store *s, long long id, const char *body)
{
	sqlite3_stmt *st = stmt(s, STMT_OUTBOX_SET_BODY);
	int r;

	if (!st)
		return prepare_error(s);
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, body);
	r = step_done(s, st);
	return r < 0 ? r : sqlite3_changes(s->db) > 0;
}

int store_outbox_done(struct store *s, long long id, int64_t now_ms, const char *note)
{
	sqlite3_stmt *st = stmt(s, STMT_OUTBOX_DONE);

	if (!st)
		return prepare_error(s);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now_ms);
	bind_text(st, 3, note);
	return step_done(s, st);
}

int store_outbox_failed(struct store *s, long long first_id, long long last_id, const char *error)
{
	sqlite3_stmt *st = stmt(s, STMT_OUTBOX_FAILED);

	if (!st)
		return prepare_error(s);
	sqlite3_bind_int64(st, 1, first_id);
	sqlite3_bind_int64(st, 2, last_id);
	bind_text(st, 3, error);
	return step_done(s, st);
}

int store_outbox_placeholder(struct store *s, const char *kind, long long *ret_id)
{
	long long id = 0;
	int r = one_integer(s, STMT_OUTBOX_PLACEHOLDER, kind, NULL, &id);

	if (r == 1)
		*ret_id = id;
	return r;
}

int store_outbox_fill(struct store *s, long long id, const char *ref, const char *body)
{
	sqlite3_stmt *st = stmt(s, STMT_OUTBOX_FILL);

	if (!st)
		return prepare_error(s);
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, ref);
	bind_text(st, 3, body);
	return step_done(s, st);
}
