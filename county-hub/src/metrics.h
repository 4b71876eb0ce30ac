/* The hub's counters for GET /metrics (Prometheus text format 0.0.4): uploads accepted,
 * duplicates answered, rejections by reason, store commit latency and group-commit size
 * (histograms), checkpoints of the store's log and its size, queue depth, outbox depth and
 * forwarding to the region (batches and items confirmed, items the region rejected, failed
 * attempts). Thread-safe: counters are atomic, histograms take a lock (once per group commit). */
#ifndef COUNTY_HUB_METRICS_H
#define COUNTY_HUB_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "common/macro.h"

struct buf;

/* Why an upload was refused: the "error" code of docs/PROTOCOL.md. */
enum metrics_reason {
	REASON_TOO_LARGE,
	REASON_UNSUPPORTED_MEDIA_TYPE,
	REASON_MALFORMED,
	REASON_UNAUTHENTICATED,
	REASON_FORBIDDEN,
	REASON_INVALID,
	REASON_LOCKED,
	REASON_CONFLICT,
	REASON_BUSY,
	REASON_STORE_FULL,
	REASON_INTERNAL,
	REASON_COUNT,
};

#define METRICS_LATENCY_BUCKETS 14
#define METRICS_GROUP_BUCKETS 12

struct metrics {
	atomic_ullong accepted;   /* 201: stored now */
	atomic_ullong duplicates; /* 200: already stored, same bytes */
	atomic_ullong rejected[REASON_COUNT];
	atomic_llong queue_depth;       /* uploads waiting for the writer */
	atomic_ullong forward_batches;  /* batches the region confirmed */
	atomic_ullong forwarded_items;  /* items the region confirmed (rejected ones included) */
	atomic_ullong forward_rejected; /* items rejected by the region, or too large to send */
	atomic_ullong forward_failures; /* attempts that failed: network, 5xx, refusals */
	atomic_ullong checkpoints;      /* checkpoints of the store's log done, off the commits */
	atomic_ullong checkpoint_failures;
	atomic_ullong checkpoint_us; /* time spent in them */
	atomic_llong wal_pages;      /* the log's size after the last commit */
	atomic_ullong wal_restarts;  /* commits that started the log over */
	pthread_mutex_t lock;        /* the histograms */
	unsigned long long latency[METRICS_LATENCY_BUCKETS + 1]; /* the last: +Inf */
	double latency_sum;
	unsigned long long groups[METRICS_GROUP_BUCKETS + 1];
	unsigned long long group_items;
};

int metrics_init(struct metrics *m) WUR;
void metrics_release(struct metrics *m);

/* The error code of a reason ("too_large", ...), as in the protocol and the label. */
const char *metrics_reason_name(enum metrics_reason reason);
void metrics_rejected(struct metrics *m, enum metrics_reason reason);
/* One committed group: how long BEGIN to COMMIT took, and how many uploads it held. */
void metrics_commit(struct metrics *m, double seconds, size_t group_size);
/* One checkpoint of the store's log: how long it took, whether it failed. */
void metrics_checkpoint(struct metrics *m, double seconds, int failed);

/* Appends the exposition text to out; outbox_depth < 0 leaves that gauge out. Same
 * errors as buf_append. */
int metrics_format(struct metrics *m, long long outbox_depth, struct buf *out) WUR;

#endif
