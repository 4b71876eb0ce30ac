/* The region server's counters for GET /metrics (Prometheus text format 0.0.4): ingested
 * items by status, ingest batches by HTTP status, ingest latency (a histogram), inspection
 * calls by query and outcome. Thread-safe: counters are atomic, the histogram takes a
 * lock. */
#ifndef REGION_METRICS_H
#define REGION_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "common/macro.h"

struct buf;

enum metrics_item {
	METRICS_ITEM_STORED,
	METRICS_ITEM_DUPLICATE,
	METRICS_ITEM_REJECTED,
	METRICS_ITEM_COUNT,
};

/* HTTP statuses an ingest answers with, as label values. */
enum metrics_batch {
	METRICS_BATCH_200,
	METRICS_BATCH_400,
	METRICS_BATCH_401,
	METRICS_BATCH_413,
	METRICS_BATCH_415,
	METRICS_BATCH_500,
	METRICS_BATCH_503,
	METRICS_BATCH_COUNT,
};

enum metrics_outcome {
	METRICS_CALL_OK,
	METRICS_CALL_BAD_REQUEST, /* 400 */
	METRICS_CALL_DENIED,      /* 401 and 403 */
	METRICS_CALL_FAILED,      /* 5xx */
	METRICS_CALL_COUNT,
};

#define METRICS_LATENCY_BUCKETS 12
#define METRICS_QUERIES_MAX 16

struct metrics {
	atomic_ullong items[METRICS_ITEM_COUNT];
	atomic_ullong batches[METRICS_BATCH_COUNT];
	atomic_ullong findings; /* integrity findings recorded */
	atomic_ullong calls[METRICS_QUERIES_MAX][METRICS_CALL_COUNT];
	const char *query_names[METRICS_QUERIES_MAX]; /* borrowed, static */
	size_t queries;
	pthread_mutex_t lock;                                    /* the histogram */
	unsigned long long latency[METRICS_LATENCY_BUCKETS + 1]; /* the last: +Inf */
	double latency_sum;
};

/* names: the inspection queries (borrowed, static strings), at most METRICS_QUERIES_MAX.
 * -EINVAL past that. */
int metrics_init(struct metrics *m, const char *const *names, size_t count) WUR;
void metrics_release(struct metrics *m);

enum metrics_batch metrics_batch_of(int http_status);
/* One answered ingest: its status and how long it took, request in to answer out. */
void metrics_ingest(struct metrics *m, int http_status, double seconds);
/* One inspection call of query number query (as given to metrics_init). */
void metrics_call(struct metrics *m, size_t query, enum metrics_outcome outcome);

/* Appends the exposition text to out. -EMSGSIZE when out is full or memory ran out. */
int metrics_format(struct metrics *m, struct buf *out) WUR;

#endif
