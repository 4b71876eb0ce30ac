/* The threads that do the CPU work of `serve`'s requests (an upload's inflate, signature,
 * schemas, rules and receipt; a report's figures), away from libmicrohttpd's thread,
 * which then only moves bytes. One queue feeds them all: a request goes to whichever
 * thread is free, so the cores share the work evenly whatever connection it came on (a
 * thread per connection group, as MHD's own pool gives, leaves one core idle while the
 * other has a queue).
 *
 * A job is queued with its connection suspended and resumes it when done; the pool
 * borrows the job from workpool_submit() until its run() returns. The queue needs no
 * cap of its own: each connection has at most one request in it, and MHD caps the
 * connections. Thread-safe. */
#ifndef COUNTY_HUB_WORKPOOL_H
#define COUNTY_HUB_WORKPOOL_H

#include <stddef.h>

#include "common/macro.h"

struct workpool;

struct workpool_job {
	void (*run)(struct workpool_job *job); /* on a pool thread */
	struct workpool_job *next;             /* the pool's */
};

/* Starts threads threads (at least 1), named name (at most 15 bytes). -errno. Stop and
 * free with workpool_free(). */
int workpool_start(size_t threads, const char *name, struct workpool **ret) WUR;
/* Queues job. -ESHUTDOWN once workpool_stop() has begun: the job is not run. */
int workpool_submit(struct workpool *p, struct workpool_job *job) WUR;
/* Refuses new jobs, runs every job queued and joins the threads. Accepts NULL. */
void workpool_stop(struct workpool *p);
/* Stops p if needed and frees it. Accepts NULL. */
void workpool_free(struct workpool *p);

#endif
