/* The group-commit writer (DESIGN section 8): one thread owns the store's write
 * connection for uploads in `serve` (the forwarder has its own, for short transactions
 * that mark rows sent). Request handlers hand it verified uploads; it takes everything
 * queued (up to group_max) into one transaction, decides what only the store can decide
 * (an identical resend, the locks and the county's exceptions, a conflicting
 * submission_id, the submission a correction supersedes: the order of DESIGN section 4),
 * inserts each accepted upload with its outbox row,
 * moves the pending roll-up of each (form, period) it stored a return of behind them
 * (store_rollup_mark), commits (synchronous=FULL: durable when COMMIT returns), and only
 * then reports each upload's outcome. Nothing is reported as stored before its commit.
 * The writer never sleeps to let a group grow: it commits whatever is waiting, and what
 * arrives during that commit makes the next group.
 *
 * Checkpoints (copying the store's log into the database file) run on a thread of their
 * own with their own connection, woken when a commit leaves the log past 1,000 pages,
 * rather than inside the commit that crosses that size (store_wal_hook), so no group
 * waits for one.
 *
 * A handler first reserves a place (writer_reserve: -EAGAIN when queue_max uploads are
 * waiting, -ESHUTDOWN once the writer stops), then submits its job, which the writer
 * then borrows until it calls the job's done(), on the writer thread, exactly once. */
#ifndef COUNTY_HUB_WRITER_H
#define COUNTY_HUB_WRITER_H

#include <stddef.h>

#include "common/macro.h"
#include "store.h"

struct metrics;
struct writer;

struct writer_job {
	/* in: the upload to store; borrowed until done() */
	struct store_submission sub;
	int expired; /* in: the period had expired when the upload was received */
	/* out, set before done(), decided in this order: 200 already stored with the same
	 * bytes (receipt: the stored receipt, the job's owner frees it); 423 locked (message
	 * "approved" or "expired") unless the school has a lock exception; 409 stored with
	 * other bytes; 422 supersedes names no submission of this school, form and period;
	 * 201 stored now; 503 store locked; 507 store full; 500 other failures */
	int status;
	const char *message; /* static text for people, for the non-2xx outcomes */
	char *receipt;
	size_t receipt_len;
	void (*done)(struct writer_job *job);
	void *data; /* for done() */
	struct writer_job *next;
};

struct writer_options {
	const char *store_path;
	int busy_timeout_ms;
	long long store_max_bytes; /* 0: no cap */
	size_t group_max;
	size_t queue_max;
	/* called on the writer thread after each durable commit (may be NULL): wakes the
	 * forwarder */
	void (*committed)(void *data);
	void *committed_data;
};

/* Opens the write connection and starts the thread. err says what failed. Stop and free
 * with writer_stop(). */
int writer_start(const struct writer_options *o, struct metrics *m, struct writer **ret, char *err,
                 size_t errlen) WUR;

int writer_reserve(struct writer *w) WUR;
/* Queues job on a reservation. */
void writer_submit(struct writer *w, struct writer_job *job);
/* Gives a reservation back unused. */
void writer_cancel(struct writer *w);

/* Refuses new reservations (writer_reserve then returns -ESHUTDOWN), stores everything
 * queued or reserved and joins the thread. Accepts NULL. */
void writer_stop(struct writer *w);
/* Frees a stopped writer and closes its connection. Accepts NULL. */
void writer_free(struct writer *w);

#endif
