/* The hub's durable store: one SQLite file (DIR/hub.sqlite) in WAL mode with
 * synchronous=FULL, so a transaction is on disk when its COMMIT returns.
 *
 * Tables (migration 1; PRAGMA user_version counts the migrations applied):
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
 *   outbox           what must reach the region, written in the transaction of the change
 *                    it reports: kind 'submission' (ref: submission_id; body NULL: the
 *                    row's jws is forwarded untouched) or 'roster' (ref: school_id; body:
 *                    a JWS signed by the county). done_ms is set once the region confirmed.
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

#define STORE_SCHEMA_VERSION 1
#define STORE_NAME_MAX 255 /* bytes of a school's name */
#define STORE_TYPE_MAX 32  /* bytes of a school's type */
#define STORE_DATE_LEN 10  /* YYYY-MM-DD */

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

/* Transactions: BEGIN IMMEDIATE (takes the write lock now, or -EBUSY), COMMIT,
 * ROLLBACK (harmless when none is open), and savepoints inside one. */
int store_begin(struct store *s) WUR;
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

#endif
