/* Prometheus counters: see metrics.h. */
#include <errno.h>
#include <string.h>

#include "common/buf.h"
#include "metrics.h"
#include "common/banned.h"

static const char *const reason_names[REASON_COUNT] = {
        [REASON_TOO_LARGE] = "too_large",
        [REASON_UNSUPPORTED_MEDIA_TYPE] = "unsupported_media_type",
        [REASON_MALFORMED] = "malformed",
        [REASON_UNAUTHENTICATED] = "unauthenticated",
        [REASON_FORBIDDEN] = "forbidden",
        [REASON_INVALID] = "invalid",
        [REASON_LOCKED] = "locked",
        [REASON_CONFLICT] = "conflict",
        [REASON_BUSY] = "busy",
        [REASON_STORE_FULL] = "store_full",
        [REASON_INTERNAL] = "internal",
};

/* Upper bounds in seconds (a commit is one fsync of the WAL, usually milliseconds). */
static const double latency_bounds[METRICS_LATENCY_BUCKETS] = {
        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10,
};
static const double group_bounds[METRICS_GROUP_BUCKETS] = {
        1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096,
};

int metrics_init(struct metrics *m)
{
	memset(m, 0, sizeof(*m));
	atomic_init(&m->accepted, 0);
	atomic_init(&m->duplicates, 0);
	for (size_t i = 0; i < REASON_COUNT; i++)
		atomic_init(&m->rejected[i], 0);
	atomic_init(&m->queue_depth, 0);
	atomic_init(&m->forward_batches, 0);
	atomic_init(&m->forwarded_items, 0);
	atomic_init(&m->forward_rejected, 0);
	atomic_init(&m->forward_failures, 0);
	atomic_init(&m->checkpoints, 0);
	atomic_init(&m->checkpoint_failures, 0);
	atomic_init(&m->checkpoint_us, 0);
	atomic_init(&m->wal_pages, 0);
	atomic_init(&m->wal_restarts, 0);
	return -pthread_mutex_init(&m->lock, NULL);
}

void metrics_release(struct metrics *m)
{
	pthread_mutex_destroy(&m->lock);
}

const char *metrics_reason_name(enum metrics_reason reason)
{
	return (unsigned)reason < REASON_COUNT ? reason_names[reason] : "internal";
}

void metrics_rejected(struct metrics *m, enum metrics_reason reason)
{
	if ((unsigned)reason >= REASON_COUNT)
		reason = REASON_INTERNAL;
	atomic_fetch_add(&m->rejected[reason], 1);
}

void metrics_commit(struct metrics *m, double seconds, size_t group_size)
{
	size_t i;

	pthread_mutex_lock(&m->lock);
	for (i = 0; i < METRICS_LATENCY_BUCKETS && seconds > latency_bounds[i]; i++)
		;
	m->latency[i]++;
	m->latency_sum += seconds;
	for (i = 0; i < METRICS_GROUP_BUCKETS && (double)group_size > group_bounds[i]; i++)
		;
	m->groups[i]++;
	m->group_items += group_size;
	pthread_mutex_unlock(&m->lock);
}

void metrics_checkpoint(struct metrics *m, double seconds, int failed)
{
	atomic_fetch_add(failed ? &m->checkpoint_failures : &m->checkpoints, 1);
	atomic_fetch_add(&m->checkpoint_us, (unsigned long long)(seconds * 1e6));
}

static int histogram(struct buf *out, const char *name, const char *help, const double *bounds,
                     size_t n, const unsigned long long *counts, double sum)
{
	unsigned long long cumulative = 0;
	int r;

	r = buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		cumulative += counts[i];
		r = buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], cumulative);
	}
	if (r < 0)
		return r;
	cumulative += counts[n];
	return buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
	                  cumulative, name, sum, name, cumulative);
}

int metrics_format(struct metrics *m, long long outbox_depth, struct buf *out)
{
	unsigned long long latency[METRICS_LATENCY_BUCKETS + 1], groups[METRICS_GROUP_BUCKETS + 1];
	double latency_sum, group_items;
	int r;

	pthread_mutex_lock(&m->lock);
	memcpy(latency, m->latency, sizeof(latency));
	memcpy(groups, m->groups, sizeof(groups));
	latency_sum = m->latency_sum;
	group_items = (double)m->group_items;
	pthread_mutex_unlock(&m->lock);

	r = buf_printf(out,
	               "# HELP county_hub_accepted_total uploads stored (201)\n"
	               "# TYPE county_hub_accepted_total counter\n"
	               "county_hub_accepted_total %llu\n"
	               "# HELP county_hub_duplicates_total uploads already stored with the same "
	               "bytes (200)\n"
	               "# TYPE county_hub_duplicates_total counter\n"
	               "county_hub_duplicates_total %llu\n"
	               "# HELP county_hub_rejected_total uploads refused, by error code\n"
	               "# TYPE county_hub_rejected_total counter\n",
	               (unsigned long long)atomic_load(&m->accepted),
	               (unsigned long long)atomic_load(&m->duplicates));
	for (size_t i = 0; r >= 0 && i < REASON_COUNT; i++)
		r = buf_printf(out, "county_hub_rejected_total{reason=\"%s\"} %llu\n",
		               reason_names[i], (unsigned long long)atomic_load(&m->rejected[i]));
	if (r < 0)
		return r;
	r = histogram(out, "county_hub_store_commit_seconds",
	              "time from BEGIN to a durable COMMIT of one group", latency_bounds,
	              METRICS_LATENCY_BUCKETS, latency, latency_sum);
	if (r < 0)
		return r;
	r = histogram(out, "county_hub_commit_group_size", "uploads committed together",
	              group_bounds, METRICS_GROUP_BUCKETS, groups, group_items);
	if (r < 0)
		return r;
	r = buf_printf(
	        out,
	        "# HELP county_hub_store_checkpoints_total checkpoints of the store's log "
	        "(each syncs the log and the database file), run beside the commits\n"
	        "# TYPE county_hub_store_checkpoints_total counter\n"
	        "county_hub_store_checkpoints_total %llu\n"
	        "# HELP county_hub_store_checkpoint_failures_total checkpoints that failed "
	        "(retried after a later commit)\n"
	        "# TYPE county_hub_store_checkpoint_failures_total counter\n"
	        "county_hub_store_checkpoint_failures_total %llu\n"
	        "# HELP county_hub_store_checkpoint_seconds_total time spent in checkpoints\n"
	        "# TYPE county_hub_store_checkpoint_seconds_total counter\n"
	        "county_hub_store_checkpoint_seconds_total %.6f\n"
	        "# HELP county_hub_store_wal_pages the store's log after the last commit, in "
	        "pages\n"
	        "# TYPE county_hub_store_wal_pages gauge\n"
	        "county_hub_store_wal_pages %lld\n"
	        "# HELP county_hub_store_wal_restarts_total commits that started the log over "
	        "from its beginning (each syncs the log's new header once more)\n"
	        "# TYPE county_hub_store_wal_restarts_total counter\n"
	        "county_hub_store_wal_restarts_total %llu\n",
	        (unsigned long long)atomic_load(&m->checkpoints),
	        (unsigned long long)atomic_load(&m->checkpoint_failures),
	        (double)atomic_load(&m->checkpoint_us) / 1e6, (long long)atomic_load(&m->wal_pages),
	        (unsigned long long)atomic_load(&m->wal_restarts));
	if (r < 0)
		return r;
	r = buf_printf(out,
	               "# HELP county_hub_queue_depth uploads waiting for the store\n"
	               "# TYPE county_hub_queue_depth gauge\n"
	               "county_hub_queue_depth %lld\n"
	               "# HELP county_hub_forward_batches_total batches the region confirmed\n"
	               "# TYPE county_hub_forward_batches_total counter\n"
	               "county_hub_forward_batches_total %llu\n"
	               "# HELP county_hub_forwarded_items_total outbox items the region confirmed\n"
	               "# TYPE county_hub_forwarded_items_total counter\n"
	               "county_hub_forwarded_items_total %llu\n"
	               "# HELP county_hub_forward_rejected_total items the region rejected "
	               "(recorded there as findings)\n"
	               "# TYPE county_hub_forward_rejected_total counter\n"
	               "county_hub_forward_rejected_total %llu\n"
	               "# HELP county_hub_forward_failures_total attempts to forward a batch that "
	               "failed (retried)\n"
	               "# TYPE county_hub_forward_failures_total counter\n"
	               "county_hub_forward_failures_total %llu\n",
	               (long long)atomic_load(&m->queue_depth),
	               (unsigned long long)atomic_load(&m->forward_batches),
	               (unsigned long long)atomic_load(&m->forwarded_items),
	               (unsigned long long)atomic_load(&m->forward_rejected),
	               (unsigned long long)atomic_load(&m->forward_failures));
	if (r < 0 || outbox_depth < 0)
		return r;
	return buf_printf(out,
	                  "# HELP county_hub_outbox_depth changes not yet confirmed by the region\n"
	                  "# TYPE county_hub_outbox_depth gauge\n"
	                  "county_hub_outbox_depth %lld\n",
	                  outbox_depth);
}
