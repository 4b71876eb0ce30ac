/* The hub's durable store: one SQLite file (DIR/hub.sqlite) in WAL mode with
 * synchronous=FULL, so a transaction is on disk when its COMMIT returns.
 *
 * Tables (migrations 1 and 2; PRAGMA user_version counts the migrations applied):
 *   schools          the roster, the denominator of every completeness figure: school_id,
 *                    name, type, opened_on (first open day, NULL: open before the
 *                    campaign), closed_from (first closed day, NULL: open; the school's
 *                    last open day, calendar.h's closed_on, is the day before), public_key
 *                    (32 bytes of Ed25519), updated_at.
 *   submissions      every accepted return: the JWS exactly as received (inflated), the
 *                    payload bytes as signed (JSON text, for json_extract in roll-ups),
 *                    its SHA-256, the parsed envelope fields, received_at/received_ms
 *                    (the hub's clock), on_time (1, 0, NULL: no deadline), the receipt.
 *                    Rows are never updated or deleted; a correction is a new row whose
 *                    supersedes names the earlier one.
 *   outbox           what must reach the region, in order, written in the transaction of
 *                    the change it reports: kind 'submission' (ref: submission_id; body
 *                    NULL: the row's jws is forwarded untouched), 'roster' (ref: the
 *                    version; body: the whole roster signed by the county) or 'rollup'
 *                    (ref: "form/period"; body: the county-signed roll-up, or NULL until
 *                    the forwarder computes it: at most one is pending per (form, period),
 *                    and a change deletes it and queues a new one behind the submissions
 *                    it covers; ids are AUTOINCREMENT, never reused). done_ms is set once
 *                    the region confirmed (last_error then holds a rejection's reason);
 *                    'roster_entry' rows (version 1's per-school entries) are history,
 *                    marked done without being sent; the first of them became a 'roster'
 *                    placeholder without a body, which `serve` fills at start.
 *   counters         named integers (the roster version).
 *   rollup_stamps    the last computed_at of each (form, period), so that each roll-up
 *                    gets a later one even under a fixed RETURNS_CLOCK.
 *   approvals        (form, period) the county approved: locked, final.
 *   lock_exceptions  (school_id, form, period) that may still submit despite a lock.
 *
 * A struct store is one SQLite connection with its prepared statements: use it from one
 * thread at a time. Errors are negative errno: -EBUSY (locked beyond the busy timeout),
 * -ENOSPC (disk or store_max_bytes full: SQLITE_FULL), -EEXIST (constraint), -ENOENT
 * (no such row), -ENOMEM, -EIO (anything else; store_errmsg() says what). */
#ifndef COUNTY_HUB_STORE_H
#define COUNTY_HUB_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

struct store;

#define STORE_SCHEMA_VERSION 2
#define STORE_NAME_MAX 255 /* bytes of a school's name */
#define STORE_TYPE_MAX 32  /* bytes of a school's type */
#define STORE_DATE_LEN 10  /* YYYY-MM-DD */
#define STORE_REF_MAX 128  /* bytes of an outbox ref, with the NUL */

enum store_open_flags {
	STORE_CREATE = 1,    /* create the file if missing (init) */
	STORE_READ_ONLY = 2, /* PRAGMA query_only: a reader of a running hub */
};

/* Opens (and with STORE_CREATE creates) the store at path and brings its schema up to
 * STORE_SCHEMA_VERSION (not with STORE_READ_ONLY: then an old schema is -EPROTO). A
 * store written by a newer program is -EPROTO. busy_timeout_ms: how long a statement
 * waits for another connection's lock. err says what went wrong. Caller frees *ret with
 * store_close(). */
int store_open(const char *path, int flags, int busy_timeout_ms, struct store **ret, char *err,
               size_t errlen) WUR;
/* Accepts NULL. */
void store_close(struct store *s);
/* The last SQLite error message of this connection (borrowed, until the next call). */
const char *store_errmsg(const struct store *s);
/* Caps the file at max_bytes (0: no cap; rounded down to whole pages): past it, writes
 * fail with -ENOSPC. Only for this connection. */
int store_set_max_bytes(struct store *s, long long max_bytes) WUR;

/* Checkpoints (the write-ahead log copied into the database file). By default SQLite runs
 * one inside the COMMIT that takes the log past 1,000 pages, so that commit returns late.
 * store_wal_hook() instead calls fn(data, wal_pages) after each commit of this connection,
 * on its thread, with the log's size in pages, and SQLite no longer checkpoints on this
 * connection: the caller runs store_checkpoint() elsewhere (fn NULL restores SQLite's
 * automatic checkpoint). store_checkpoint() is a passive checkpoint on this connection:
 * it copies what no reader still needs and syncs both files, without blocking the writer;
 * *ret_wal_pages is the log's size, *ret_copied the pages now in the database file. The
 * log starts over from its beginning at the first commit after a complete checkpoint. */
void store_wal_hook(struct store *s, void (*fn)(void *data, int wal_pages), void *data);
int store_checkpoint(struct store *s, int *ret_wal_pages, int *ret_copied) WUR;

/* Transactions: BEGIN IMMEDIATE (takes the write lock now, or -EBUSY), COMMIT,
 * ROLLBACK (harmless when none is open), and savepoints inside one. store_begin_read
 * opens a deferred transaction: every read until store_commit sees one snapshot. */
int store_begin(struct store *s) WUR;
int store_begin_read(struct store *s) WUR;
int store_commit(struct store *s) WUR;
void store_rollback(struct store *s);
int store_savepoint(struct store *s) WUR;
int store_release(struct store *s) WUR;
void store_rollback_to(struct store *s);

/* One school of the roster. Dates are "YYYY-MM-DD" or "" (none). */
struct store_school {
	char school_id[11];
	char name[STORE_NAME_MAX + 1];
	char type[STORE_TYPE_MAX + 1];
	char opened_on[STORE_DATE_LEN + 1];
	char closed_from[STORE_DATE_LEN + 1];
	unsigned char public_key[32];
	char updated_at[40];
};

/* The school with that id into *ret; -ENOENT when the roster has none. */
int store_school_get(struct store *s, const char *school_id, struct store_school *ret) WUR;
/* Adds a school, or with replace replaces the one with the same id (-EEXIST without).
 * *ret_changed (may be NULL) is 0 when replace found the same values. */
int store_school_put(struct store *s, const struct store_school *school, int replace,
                     int *ret_changed) WUR;
/* Calls fn for every school in order of id; stops at fn's first negative return and
 * returns it. */
int store_school_list(struct store *s, int (*fn)(void *data, const struct store_school *school),
                      void *data) WUR;

/* An accepted submission as the writer stores it (every string borrowed). */
struct store_submission {
	const char *submission_id, *school_id, *form, *period, *created_at, *supersedes;
	int form_version;
	const char *payload_sha256; /* 64 hex digits */
	const char *payload;        /* the payload bytes as signed */
	size_t payload_len;
	const char *jws; /* the JWS text as received */
	size_t jws_len;
	const char *received_at;
	int64_t received_ms;
	int on_time; /* 1, 0, or -1: no deadline (NULL) */
	const char *receipt;
	size_t receipt_len;
};

/* Inserts the submission and its outbox row (kind 'submission'). Call inside a
 * transaction. -EEXIST when the submission_id is taken. */
int store_submission_insert(struct store *s, const struct store_submission *sub,
                            int64_t now_ms) WUR;

/* What the store knows of a submission_id. */
struct store_found {
	char payload_sha256[65];
	char school_id[11];
	char form[65];
	char period[17];
};
/* Looks up submission_id: 0 and *ret (and, when ret_receipt is not NULL, the receipt:
 * caller frees *ret_receipt with free(), *ret_len its length), or -ENOENT. */
int store_submission_find(struct store *s, const char *submission_id, struct store_found *ret,
                          char **ret_receipt, size_t *ret_len) WUR;

/* The locks of (form, period) as they bear on school_id: *ret_approved 1 when the county
 * approved the period, *ret_exception 1 when it granted school_id a lock exception. */
int store_lock_state(struct store *s, const char *school_id, const char *form, const char *period,
                     int *ret_approved, int *ret_exception) WUR;
/* approved 1: marks (form, period) approved at the instant at (text) and returns 1, or 0
 * when it already was; approved 0: removes the approval, 1 when there was one. */
int store_set_approved(struct store *s, const char *form, const char *period, int approved,
                       const char *at) WUR;
/* grant 1: grants school_id a lock exception for (form, period); 0 revokes it. Returns 1
 * when something changed, 0 when not; -ENOENT for a school not in the roster. */
int store_set_exception(struct store *s, const char *school_id, const char *form,
                        const char *period, int grant, const char *at) WUR;

/* Adds an outbox row (kind, ref, body may be NULL). Call inside the transaction of the
 * change it reports. */
int store_outbox_add(struct store *s, const char *kind, const char *ref, const char *body,
                     int64_t now_ms) WUR;
/* Rows of the outbox not yet confirmed by the region. */
int store_outbox_depth(struct store *s, long long *ret) WUR;

/* The receipt stored with submission_id; caller frees *ret with free(). -ENOENT. */
int store_receipt_get(struct store *s, const char *submission_id, char **ret, size_t *ret_len) WUR;

/* How many schools the roster holds. */
int store_school_count(struct store *s, long long *ret) WUR;

/* One return of a (form, period) that no stored return supersedes. Strings are borrowed
 * for the callback only. */
struct store_return {
	const char *submission_id, *school_id;
	const char *sha256;  /* of the payload */
	const char *payload; /* the payload bytes as signed (JSON text) */
	size_t payload_len;
	int64_t received_ms;
	int on_time;      /* the receipt's verdict: 1, 0, -1 (none) */
	int64_t first_ms; /* the school's first return of the (form, period), superseded or not */
};
/* Calls fn for every return of (form, period) not superseded by a stored one, ordered by
 * school, then latest received first. Stops at fn's first negative return and returns
 * it. */
int store_current_returns(struct store *s, const char *form, const char *period,
                          int (*fn)(void *data, const struct store_return *ret), void *data) WUR;
/* 1 when the county approved (form, period), 0 when not. */
int store_approved(struct store *s, const char *form, const char *period) WUR;

/* Replaces the pending roll-up of (form, period) by a new outbox row at the end of the
 * queue: body is the county-signed roll-up, or NULL for the forwarder to compute when it
 * sends it. Call inside the transaction of the change. */
int store_rollup_mark(struct store *s, const char *form, const char *period, const char *body,
                      int64_t now_ms) WUR;
/* The computed_at instant of a new roll-up of (form, period): now_ms, or 1 ms after the
 * last one when that is not earlier. Records it; call inside a write transaction. */
int store_rollup_stamp(struct store *s, const char *form, const char *period, int64_t now_ms,
                       int64_t *ret_ms) WUR;
/* Adds one to the counter name (0 when new) and returns the new value. Inside a write
 * transaction. */
int store_counter_next(struct store *s, const char *name, long long *ret) WUR;
/* 1 when the outbox ever held a row of kind, else 0. */
int store_outbox_has_kind(struct store *s, const char *kind) WUR;

/* One pending outbox row; strings borrowed for the callback only. */
struct store_outbox_row {
	long long id;
	const char *kind, *ref;
	const char *body; /* NULL: none */
	size_t body_len;
	const char *jws; /* kind 'submission': the school's JWS as received, and the receipt */
	size_t jws_len;
	const char *receipt;
	size_t receipt_len;
};
/* Calls fn for the pending rows with an id above after_id, in id order, at most limit of
 * them. fn returns 0 to go on, 1 to stop there, or a negative errno, which is returned. */
int store_outbox_pending(struct store *s, long long after_id, size_t limit,
                         int (*fn)(void *data, const struct store_outbox_row *row), void *data) WUR;
/* Sets the body of a pending row: 1, or 0 when it is no longer pending. */
int store_outbox_set_body(struct store *s, long long id, const char *body) WUR;
/* Marks a row confirmed by the region at now_ms; note (may be NULL) goes to last_error
 * (e.g. why the region rejected it). */
int store_outbox_done(struct store *s, long long id, int64_t now_ms, const char *note) WUR;
/* The oldest pending row of kind without a body (migration 2 leaves one for the roster):
 * 1 and *ret_id, or 0 when there is none. */
int store_outbox_placeholder(struct store *s, const char *kind, long long *ret_id) WUR;
/* Sets the ref and body of row id. */
int store_outbox_fill(struct store *s, long long id, const char *ref, const char *body) WUR;
/* Counts a failed attempt on the pending rows with ids first_id..last_id. */
int store_outbox_failed(struct store *s, long long first_id, long long last_id,
                        const char *error) WUR;

#endif
