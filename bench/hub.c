/* bench/hub: `county-hub serve` under load, beside the baselines it is judged against,
 * all measured in the same run on the same machine and disk (issue 4):
 *
 *   - accepted durable returns per second: a fresh hub (init, 1,000 schools imported, on a
 *     free loopback port, its folder under BENCH_TMPDIR or /var/tmp) takes pre-signed,
 *     pre-gzipped returns of about 4 KB (a rectification ledger of four items) over 64
 *     keep-alive connections (libcurl multi) as fast as it answers; only 201 counts, and
 *     a 201 is sent after the group commit holding the return is durable;
 *   - the single-core CPU ceiling of the accept path: the loop of bench/accept_path
 *     (accept_loop.h) over the same return, one thread;
 *   - one fsync per upload: write + fsync of 4 KB records in the hub's folder, in a loop;
 *   - p50/p99 latency at full load, and at a paced 2,000 returns/s (open loop: latency
 *     counts from the moment a return was due to be sent, so a stalled hub cannot hide
 *     behind a slowed client);
 *   - the average group-commit size (the hub's /metrics) and the hub's peak RSS (VmHWM).
 *
 * Targets: throughput >= 50% of the ceiling and >= 10x the fsync rate; p99 <= 50 ms at
 * 2,000 returns/s; peak RSS <= 64 MB. A benchmark, not a test: a missed target is
 * reported, never an error. Prints every figure with its baseline and ratio and writes
 * <results>/hub.json (bench/bench.h). The load generator is bench/loadgen.h, which
 * bench/agent uses too.
 *
 * Environment: COUNTY_HUB (default county-hub/county-hub), BENCH_SCHEMAS (schemas),
 * BENCH_TMPDIR (/var/tmp), BENCH_HUB_RETURNS (returns of the full-load run, 20000),
 * BENCH_HUB_RATE (2000), BENCH_HUB_PACED_SECONDS (5) and BENCH_KEEP (set: the bench folder
 * and the hub's log are kept). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "accept_loop.h"
#include "bench.h"
#include "loadgen.h"
#include "common/buf.h"
#include "common/form.h"
#include "common/gzip.h"
#include "common/schema.h"
#include "common/submission.h"
#include "common/banned.h"

#define CEILING_SECONDS 2.0
#define FSYNC_SECONDS 2.0

/* The accept path's rate on one core over the first upload. */
static double measure_ceiling(struct loadgen *lg, const struct schema *envelope)
{
	struct submission_context ctx = {0};
	struct gzip_inflater inflater;
	struct buf plain;
	char err[512];
	double s;
	long n;

	ctx.envelope = envelope;
	ctx.forms = lg->forms;
	ctx.county_id = LOADGEN_COUNTY_ID;
	ctx.lookup_key = loadgen_lookup_key;
	ctx.lookup_data = lg;
	buf_init(&plain, 8 << 20);
	if (gzip_inflater_init(&inflater, 8 << 20, 100) < 0)
		bench_fail("hub", "out of memory");
	s = bench_accept_loop(&ctx, &inflater, &plain, lg->uploads[0].body, lg->uploads[0].len, 200,
	                      err, sizeof(err));
	if (s < 0)
		bench_fail("hub: the return is refused", err);
	n = (long)(CEILING_SECONDS * 200 / (s > 1e-6 ? s : 1e-6));
	n = n < 200 ? 200 : n;
	s = bench_accept_loop(&ctx, &inflater, &plain, lg->uploads[0].body, lg->uploads[0].len, n,
	                      err, sizeof(err));
	gzip_inflater_release(&inflater);
	buf_release(&plain);
	return s > 0 ? (double)n / s : 0;
}

int main(int argc, char **argv)
{
	const char *results = argc > 1 ? argv[1] : "bench/results";
	struct loadgen lg;
	struct loadgen_run full, paced;
	struct bench_report report;
	struct schema *envelope = NULL;
	char err[1024], path[4200], tmpl[4000], target[64];
	long returns = bench_env_long("BENCH_HUB_RETURNS", 20000);
	double rate = (double)bench_env_long("BENCH_HUB_RATE", 2000);
	long paced_seconds = bench_env_long("BENCH_HUB_PACED_SECONDS", 5);
	size_t paced_count = (size_t)(rate * (double)paced_seconds);
	double ceiling, fsync_rate, throughput, groups0, items0, groups1, items1, groups2, items2;
	double group_full, group_paced, rss;
	const char *schemas = bench_env_text("BENCH_SCHEMAS", "schemas");

	if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		bench_fail("hub", "cannot start libsodium or libcurl");
	snprintf(tmpl, sizeof(tmpl), "%s/hub-bench-XXXXXX",
	         bench_env_text("BENCH_TMPDIR", "/var/tmp"));
	if (!mkdtemp(tmpl))
		bench_fail("hub", "cannot make the bench folder");
	snprintf(path, sizeof(path), "%s/hub", tmpl);
	loadgen_init(&lg, bench_env_text("COUNTY_HUB", "county-hub/county-hub"), schemas, path);
	snprintf(path, sizeof(path), "%s/submission.schema.json", schemas);
	if (schema_load_file(path, &envelope, err, sizeof(err)) < 0)
		bench_fail("hub", err);

	printf("hub: setting up %d schools, signing %ld + %zu returns ...\n", LOADGEN_SCHOOLS,
	       returns, paced_count);
	fflush(stdout);
	loadgen_make_hub(&lg);
	loadgen_make_uploads(&lg, (size_t)returns + paced_count);
	ceiling = measure_ceiling(&lg, envelope);
	fsync_rate = bench_measure_fsync(lg.dir, FSYNC_SECONDS);

	loadgen_start_hub(&lg);
	groups0 = loadgen_metric(&lg, "county_hub_commit_group_size_count");
	items0 = loadgen_metric(&lg, "county_hub_commit_group_size_sum");
	loadgen_load(&lg, 0, (size_t)returns, 0, LOADGEN_CONNECTIONS, &full);
	groups1 = loadgen_metric(&lg, "county_hub_commit_group_size_count");
	items1 = loadgen_metric(&lg, "county_hub_commit_group_size_sum");
	loadgen_load(&lg, (size_t)returns, paced_count, rate, LOADGEN_CONNECTIONS, &paced);
	groups2 = loadgen_metric(&lg, "county_hub_commit_group_size_count");
	items2 = loadgen_metric(&lg, "county_hub_commit_group_size_sum");
	rss = bench_peak_rss(lg.hub);
	loadgen_stop_hub(&lg);

	throughput = loadgen_rate(&full);
	group_full = groups1 > groups0 ? (items1 - items0) / (groups1 - groups0) : 0;
	group_paced = groups2 > groups1 ? (items2 - items1) / (groups2 - groups1) : 0;

	printf("hub: %d schools, returns of %zu bytes signed (%zu gzipped), %d connections, "
	       "loopback, %s\n",
	       LOADGEN_SCHOOLS, lg.jws_len, lg.uploads[0].len, LOADGEN_CONNECTIONS,
	       LOADGEN_HUB_CLOCK);
	printf("  full load: %zu returns in %.2f s, %zu accepted (201), %zu other", full.sent,
	       full.seconds, full.accepted, full.other);
	if (full.other)
		printf(" (the first: %ld)", full.first_other);
	printf("; the load generator used %.0f%% of a core\n",
	       full.seconds > 0 ? 100 * full.client_cpu_s / full.seconds : 0);
	printf("  paced at %.0f/s: %zu returns in %.2f s, %zu accepted, %zu other\n", rate,
	       paced.sent, paced.seconds, paced.accepted, paced.other);

	bench_report_init(&report, "hub");
	bench_report_figure(&report, "county-hub accepted, durable", throughput, "returns/s",
	                    "accept path, 1 core", ceiling, "ratio >= 0.5",
	                    ceiling > 0 && throughput >= 0.5 * ceiling);
	bench_report_figure(&report, "county-hub accepted, durable", throughput, "returns/s",
	                    "one fsync per upload", fsync_rate, "ratio >= 10",
	                    fsync_rate > 0 && throughput >= 10 * fsync_rate);
	bench_report_figure(&report, "county-hub p50 latency, full load", full.p50_ms, "ms", NULL,
	                    0, NULL, 0);
	bench_report_figure(&report, "county-hub p99 latency, full load", full.p99_ms, "ms", NULL,
	                    0, NULL, 0);
	snprintf(target, sizeof(target), "county-hub p99 latency at %.0f/s", rate);
	bench_report_figure(&report, target, paced.p99_ms, "ms", NULL, 0, "<= 50 ms",
	                    paced.p99_ms <= 50 && paced.other == 0);
	bench_report_figure(&report, "county-hub accepted, paced", loadgen_rate(&paced),
	                    "returns/s", "offered rate", rate, NULL, 0);
	bench_report_figure(&report, "county-hub group commit, full load", group_full, "uploads",
	                    NULL, 0, NULL, 0);
	bench_report_figure(&report, "county-hub peak RSS", rss / 1e6, "MB", NULL, 0, "<= 64 MB",
	                    rss > 0 && rss <= 64e6);
	bench_report_detail(&report, "schools", LOADGEN_SCHOOLS);
	bench_report_detail(&report, "connections", LOADGEN_CONNECTIONS);
	bench_report_detail(&report, "return_bytes", (double)lg.jws_len);
	bench_report_detail(&report, "gzip_bytes", (double)lg.uploads[0].len);
	bench_report_detail(&report, "full_returns", (double)full.sent);
	bench_report_detail(&report, "full_accepted", (double)full.accepted);
	bench_report_detail(&report, "full_other", (double)full.other);
	bench_report_detail(&report, "full_seconds", full.seconds);
	bench_report_detail(&report, "load_generator_cpu_share",
	                    full.seconds > 0 ? full.client_cpu_s / full.seconds : 0);
	bench_report_detail(&report, "paced_rate", rate);
	bench_report_detail(&report, "paced_returns", (double)paced.sent);
	bench_report_detail(&report, "paced_accepted", (double)paced.accepted);
	bench_report_detail(&report, "paced_other", (double)paced.other);
	bench_report_detail(&report, "paced_p50_ms", paced.p50_ms);
	bench_report_detail(&report, "paced_average_group_commit", group_paced);
	bench_report_print(&report);

	loadgen_release(&lg);
	if (getenv("BENCH_KEEP"))
		printf("  the bench folder is kept: '%s'\n", tmpl);
	else
		bench_remove_tree(tmpl);
	schema_free(envelope);
	curl_global_cleanup();
	return bench_report_write(&report, results);
}
