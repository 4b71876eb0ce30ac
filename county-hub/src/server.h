/* The state of `county-hub serve`, shared by its modules: what was loaded at start
 * (read-only afterwards, shared by every thread) and the pieces that have their own
 * locks (writer queue, forwarder, metrics, worker pool, watchdog). */
#ifndef COUNTY_HUB_SERVER_H
#define COUNTY_HUB_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/gzip.h"
#include "common/http_server.h"
#include "common/jwk.h"
#include "common/macro.h"
#include "metrics.h"
#include "report.h"

struct calendar;
struct form_set;
struct forwarder;
struct hub_config;
struct schema;
struct store;
struct workpool;
struct writer;

/* What one thread needs to check an upload: a read-only store connection, an inflater
 * and its output buffer. Borrowed from the pool for one call of the access handler. */
struct worker {
	struct store *reader;
	struct gzip_inflater inflater;
	struct buf plain;
	struct worker *next;
};

struct server {
	const struct hub_config *cfg;
	struct clock clock;
	struct report_source src;  /* owns the forms and the calendar */
	struct calendar *calendar; /* src.calendar */
	struct form_set *forms;    /* src.forms */
	struct schema *envelope;
	struct jwk county_key;
	char store_path[4096];
	char store_dir[4096];
	struct workpool *pool_work; /* the CPU work of uploads and reports (workpool.h) */
	struct writer *writer;
	struct forwarder *forwarder; /* NULL: no region configured */
	struct metrics metrics;
	struct http_watchdog watchdog;
	atomic_int active; /* requests between their first call and their completion */
	/* free bytes on the store's disk (-1: unknown) and when they were read (monotonic) */
	atomic_llong free_bytes;
	atomic_llong free_checked_ms;

	pthread_mutex_t pool_lock;
	struct worker *pool;
};

/* A worker from the pool (made when none is free). NULL with a log line on failure. */
struct worker *server_worker_get(struct server *srv);
void server_worker_put(struct server *srv, struct worker *w);

#endif
