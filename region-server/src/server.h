/* The state of `region-server serve`, shared by its modules: what was loaded at start
 * (read-only afterwards, shared by every thread) and the pieces that have their own locks
 * (the worker pool, the metrics, the watchdog). */
#ifndef REGION_SERVER_H
#define REGION_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/gzip.h"
#include "common/http_server.h"
#include "common/macro.h"
#include "metrics.h"

struct form_set;
struct calendar;
struct db;
struct rollup_plan;
struct schema;

/* The settings of serve (flags and --config FILE), read-only after start. */
struct region_config {
	char *config;
	char *db;
	char *listen;
	char *schemas_dir;
	char *log_level;
	long long db_connections; /* requests working at once; 0: two per CPU, at least 4 */
	long long max_connections;
	long long connection_memory;
	long long idle_timeout;    /* seconds a connection may stay silent */
	long long request_timeout; /* seconds a request may take to arrive */
	long long body_max;        /* bytes of a (compressed) ingest body */
	long long inflate_max;     /* bytes it may inflate to */
	long long inflate_ratio;
	long long statement_timeout_ms;
	int no_migrate;
};

/* What one request needs: a database connection (its session set up: time zone,
 * statement timeout, the ingest's temporary table), an inflater and its output buffer.
 * Borrowed from the pool for one request. */
struct worker {
	struct db *db;
	struct gzip_inflater inflater;
	struct buf plain;
	struct worker *next;
};

struct server {
	const struct region_config *cfg;
	struct clock clock;
	int offset_min; /* of the campaign calendar: local times and dates */
	struct form_set *forms;
	struct calendar *calendar;
	struct schema *envelope;    /* schemas/submission.schema.json */
	struct rollup_plan **plans; /* one per form of forms, same order */
	struct metrics metrics;
	struct http_watchdog watchdog;
	atomic_int active; /* requests between their first call and their completion */

	pthread_mutex_t pool_lock;
	pthread_cond_t pool_free;
	struct worker *pool;
	size_t workers, workers_max; /* made (in the pool or lent), and the cap */
};

/* A worker from the pool, made (and connected) when none is free and fewer than
 * workers_max exist, else waited for (at most WORKER_WAIT_MS); a worker whose connection
 * was lost is replaced. NULL with a log line when the database cannot be reached or no
 * worker came free in time (the caller answers 503). */
#define WORKER_WAIT_MS 30000
struct worker *server_worker_get(struct server *srv);
/* Gives w back (accepts NULL); a worker whose connection is lost is freed instead. */
void server_worker_put(struct server *srv, struct worker *w);

#endif
