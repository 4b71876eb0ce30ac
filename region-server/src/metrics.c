/* Prometheus counters: see metrics.h. */
#include <errno.h>
#include <string.h>

#include "common/buf.h"
#include "metrics.h"
#include "common/banned.h"

static const double bounds[METRICS_LATENCY_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                       0.5,   1,    2.5,   5,    10,  30};
static const char *const item_names[METRICS_ITEM_COUNT] = {"stored", "duplicate", "rejected"};
static const char *const batch_names[METRICS_BATCH_COUNT] = {"200", "400", "401", "413",
                                                             "415", "500", "503"};
static const char *const outcome_names[METRICS_CALL_COUNT] = {"ok", "bad_request", "denied",
                                                              "failed"};

int metrics_init(struct metrics *m, const char *const *names, size_t count)
{
	if (count > METRICS_QUERIES_MAX)
		return -EINVAL;
	memset(m, 0, sizeof(*m));
	for (size_t i = 0; i < count; i++)
		m->query_names[i] = names[i];
	m->queries = count;
	pthread_mutex_init(&m->lock, NULL);
	return 0;
}

void metrics_release(struct metrics *m)
{
	pthread_mutex_destroy(&m->lock);
}

enum metrics_batch metrics_batch_of(int http_status)
{
	switch (http_status) {
	case 200:
		return METRICS_BATCH_200;
	case 400:
		return METRICS_BATCH_400;
	case 401:
		return METRICS_BATCH_401;
	case 413:
		return METRICS_BATCH_413;
	case 415:
		return METRICS_BATCH_415;
	case 503:
		return METRICS_BATCH_503;
	default:
		return METRICS_BATCH_500;
	}
}

void metrics_ingest(struct metrics *m, int http_status, double seconds)
{
	size_t b = 0;

	atomic_fetch_add(&m->batches[metrics_batch_of(http_status)], 1);
	while (b < METRICS_LATENCY_BUCKETS && seconds > bounds[b])
		b++;
	pthread_mutex_lock(&m->lock);
	m->latency[b]++;
	m->latency_sum += seconds;
	pthread_mutex_unlock(&m->lock);
}

void metrics_call(struct metrics *m, size_t query, enum metrics_outcome outcome)
{
	if (query < m->queries)
		atomic_fetch_add(&m->calls[query][outcome], 1);
}

int metrics_format(struct metrics *m, struct buf *out)
{
	unsigned long long latency[METRICS_LATENCY_BUCKETS + 1], cumulative = 0;
	double sum;
	int r = 0;

	pthread_mutex_lock(&m->lock);
	memcpy(latency, m->latency, sizeof(latency));
	sum = m->latency_sum;
	pthread_mutex_unlock(&m->lock);

	r |= buf_puts(out, "# HELP region_ingest_items_total Items of ingested batches, by what "
	                   "became of them.\n# TYPE region_ingest_items_total counter\n");
	for (size_t i = 0; i < METRICS_ITEM_COUNT; i++)
		r |= buf_printf(out, "region_ingest_items_total{status=\"%s\"} %llu\n",
		                item_names[i], (unsigned long long)atomic_load(&m->items[i]));
	r |= buf_puts(out, "# HELP region_ingest_batches_total Ingest requests answered, by HTTP "
	                   "status.\n# TYPE region_ingest_batches_total counter\n");
	for (size_t i = 0; i < METRICS_BATCH_COUNT; i++)
		r |= buf_printf(out, "region_ingest_batches_total{code=\"%s\"} %llu\n",
		                batch_names[i], (unsigned long long)atomic_load(&m->batches[i]));
	r |= buf_printf(out,
	                "# HELP region_integrity_findings_total Integrity findings recorded by "
	                "the ingest.\n# TYPE region_integrity_findings_total counter\n"
	                "region_integrity_findings_total %llu\n",
	                (unsigned long long)atomic_load(&m->findings));
	r |= buf_puts(out, "# HELP region_ingest_seconds Time from an ingest request's arrival "
	                   "to its answer (after COMMIT).\n# TYPE region_ingest_seconds "
	                   "histogram\n");
	for (size_t b = 0; b <= METRICS_LATENCY_BUCKETS; b++) {
		cumulative += latency[b];
		if (b < METRICS_LATENCY_BUCKETS)
			r |= buf_printf(out, "region_ingest_seconds_bucket{le=\"%g\"} %llu\n",
			                bounds[b], cumulative);
		else
			r |= buf_printf(out, "region_ingest_seconds_bucket{le=\"+Inf\"} %llu\n",
			                cumulative);
	}
	r |= buf_printf(out, "region_ingest_seconds_sum %.6f\nregion_ingest_seconds_count %llu\n",
	                sum, cumulative);
	r |= buf_puts(out, "# HELP region_inspection_calls_total Inspection queries asked, by "
	                   "query and outcome.\n# TYPE region_inspection_calls_total counter\n");
	for (size_t q = 0; q < m->queries; q++)
		for (size_t o = 0; o < METRICS_CALL_COUNT; o++)
			r |= buf_printf(
			        out,
			        "region_inspection_calls_total{query=\"%s\",outcome=\"%s\"} "
			        "%llu\n",
			        m->query_names[q], outcome_names[o],
			        (unsigned long long)atomic_load(&m->calls[q][o]));
	return r < 0 ? -EMSGSIZE : 0;
}
