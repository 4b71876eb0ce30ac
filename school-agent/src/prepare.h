/* The preparer: a thread that reads, checks and compresses queued returns ahead of their
 * upload, in the order they are handed to it, so that the thread that uploads only starts
 * uploads and reads answers. On 2 CPUs shared with a hub, what the agent does per return
 * (read, parse, gzip) then overlaps the uploads in flight instead of delaying the next
 * ones (docs/PERFORMANCE.md, agent).
 *
 * One thread hands returns over (preparer_add) and takes them back, oldest first, once
 * prepared (preparer_next); between the two the preparer's thread owns the return. When
 * preparer_next found none ready, the next one prepared wakes the client's
 * http_post_wait (once). When no thread can be had, the returns are prepared by
 * preparer_next on the caller's thread instead. */
#ifndef SCHOOL_AGENT_PREPARE_H
#define SCHOOL_AGENT_PREPARE_H

#include <stddef.h>

#include "common/buf.h"
#include "common/ids.h"
#include "common/macro.h"
#include "http.h"
#include "spool.h"

struct agent;

/* One queued return and, once prepared, what became of it. */
struct prepared {
	char id[IDS_UUID_LEN + 1]; /* set by the caller */
	size_t tag;                /* the caller's, untouched */
	/* once prepared: result 0 with item, text (the JWS as queued) and body (its gzip);
	 * -ENOENT (it left the outbox), -EBADMSG (not a return this agent wrote: err says
	 * why), -ECANCELED (preparer_cancel) or another negative errno (err says what failed) */
	int result;
	char err[512];
	struct spool_item item;
	struct buf text;
	struct buf body;
};

/* Opaque: its lock and thread live on the heap (preparer_new). */
struct preparer;

/* A preparer of up to capacity returns at once for agent a. Free with preparer_free.
 * -ENOMEM. */
int preparer_new(struct preparer **ret, const struct agent *a, size_t capacity) WUR;
/* Stops the thread if it runs and frees p (not the returns handed over); NULL is fine. */
void preparer_free(struct preparer *p);

/* Starts the thread, which wakes wake's waits (borrowed until preparer_end): once per
 * pass. Without a thread to be had, returns are prepared inline. */
void preparer_begin(struct preparer *p, struct http_client *wake);
/* Stops the thread; every return handed over must have been taken back. */
void preparer_end(struct preparer *p);

/* Hands over up (its id set); at most capacity at once: -ENOSPC beyond. */
int preparer_add(struct preparer *p, struct prepared *up) WUR;
/* The oldest return handed over, once prepared: NULL when none is handed over, or when
 * the oldest is not prepared yet and wait is 0 (with wait set, waits for it). */
struct prepared *preparer_next(struct preparer *p, int wait);
/* Returns handed over and not taken back. */
size_t preparer_count(struct preparer *p);
/* Those not prepared yet will not be: they come back from preparer_next with
 * result -ECANCELED (waits for the one being prepared). */
void preparer_cancel(struct preparer *p);

#endif
