/* bench/hub: `county-hub serve` under load, beside the baselines it is judged against,
 * all measured in the same run on the same machine and disk (issue 4):
 *
 *   - accepted durable returns per second: a fresh hub (init, 1,000 schools imported, on a
 *     free loopback port, its folder under BENCH_TMPDIR or /var/tmp) takes pre-signed,
 *     pre-gzipped returns of about 4 KB (a rectification ledger of four items) over 64
 *     keep-alive connections (libcurl multi) as fast as it answers; only 201 counts, and
 *     a 201 is sent after the group commit holding the return is durable;
 *   - the single-core CPU ceiling of the accept path: the loop of bench/accept_path
 *     (accept_loop.h) over the same return, one thread, for a second before the hub runs
 *     and a second after (the machine is shared: what else runs moves it), the ceiling
 *     being their mean;
 *   - one fsync per upload: 4 KB written and synced with fdatasync(2) over a file made
 *     beforehand, as the hub's log is written once a checkpoint has emptied it, measured
 *     in the hub's folder for a second before the hub runs and a second after (the disk
 *     is shared: its rate moves with what else runs), the baseline being their mean;
 *   - the hub's syncs per accepted return, from its /metrics (commits, checkpoints and
 *     restarts of its log; SYNCS_PER_CHECKPOINT below): group commit at work is well
 *     under one;
 *   - the hub's CPU time per accepted return (all its threads, from /proc) beside the CPU
 *     time of one pass of the accept path: what the HTTP, storage and receipt layers add,
 *     which holds up on a busy machine better than a rate does;
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
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

#define CEILING_SECONDS 1.0 /* before the hub runs, and again after */
#define SYNC_SECONDS 1.0    /* before the hub runs, and again after */
#define SYNC_RECORDS 1000
/* The hub's syncs, from its /metrics: each commit syncs the log once, each checkpoint
 * twice (the log before it is copied, the database file after), each restart of the log
 * once (its new header). Checked against `perf stat -e syscalls:sys_enter_fdatasync,
 * syscalls:sys_enter_fsync` on the hub (docs/PERFORMANCE.md). */
#define SYNCS_PER_CHECKPOINT 2

/* CPU seconds (user + system) the hub's threads have used so far, summed by role: the
 * work threads (the accept path, the receipts), libmicrohttpd's (the bytes, TLS), the
 * writer with its checkpointer (SQLite, the syncs) and the rest (main, watchdog). From
 * /proc/PID/task/TID/stat. */
struct hub_cpu {
	double work, http, writer, other;
};

static void hub_cpu_read(pid_t pid, struct hub_cpu *ret)
{
	char path[320], line[1024], comm[64];
	long ticks = sysconf(_SC_CLK_TCK);
	struct dirent *e;
	DIR *d;

	memset(ret, 0, sizeof(*ret));
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return;
	while ((e = readdir(d))) {
		unsigned long utime = 0, stime = 0;
		const char *open, *close;
		double s;
		size_t n;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", (int)pid, e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		n = fread(line, 1, sizeof(line) - 1, f);
		fclose(f);
		line[n] = '\0';
		/* pid (comm) state ppid ... field 14 utime, 15 stime; comm may hold spaces */
		open = strchr(line, '(');
		close = strrchr(line, ')');
		if (!open || !close || close < open)
			continue;
		snprintf(comm, sizeof(comm), "%.*s", (int)(close - open - 1), open + 1);
		if (sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
		           &stime) != 2)
			continue;
		s = (double)(utime + stime) / (double)(ticks > 0 ? ticks : 100);
		if (strcmp(comm, "hub-work") == 0)
			ret->work += s;
		else if (strncmp(comm, "MHD-", 4) == 0)
			ret->http += s;
		else if (strcmp(comm, "hub-writer") == 0 || strcmp(comm, "hub-checkpoint") == 0)
			ret->writer += s;
		else
			ret->other += s;
	}
	closedir(d);
}

static double thread_cpu_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The accept path's rate on one core over the first upload (wall clock), and the CPU
 * seconds one pass costs into *ret_cpu. */
static double measure_ceiling(struct loadgen *lg, const struct schema *envelope, double *ret_cpu)
{
	struct submission_context ctx = {0};
	struct gzip_inflater inflater;
	struct buf plain;
	char err[512];
	double s, cpu;
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
	cpu = thread_cpu_seconds();
	s = bench_accept_loop(&ctx, &inflater, &plain, lg->uploads[0].body, lg->uploads[0].len, n,
	                      err, sizeof(err));
	*ret_cpu = (thread_cpu_seconds() - cpu) / (double)n;
	gzip_inflater_release(&inflater);
	buf_release(&plain);
	return s > 0 ? (double)n / s : 0;
}

/* write + fdatasync of 4 KB records over a file of 1,000 of them made beforehand, for
 * seconds: one sync per upload on this disk, done the way the hub's log is written (a
 * commit overwrites the log from its start once a checkpoint has emptied it, and SQLite
 * syncs it with fdatasync). */
static double measure_sync(const char *folder, double seconds)
{
	char path[4200], record[4096];
	double t0, s;
	long n = 0;
	int fd;

	memset(record, 'x', sizeof(record));
	snprintf(path, sizeof(path), "%s/sync-probe", folder);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		bench_fail("hub", "cannot open the sync probe");
	for (int i = 0; i < SYNC_RECORDS; i++)
		if (write(fd, record, sizeof(record)) != (ssize_t)sizeof(record))
			bench_fail("hub", "cannot write the sync probe");
	if (fsync(fd) < 0)
		bench_fail("hub", "cannot sync the sync probe");
	t0 = bench_now_seconds();
	do {
		off_t at = (off_t)(n % SYNC_RECORDS) * (off_t)sizeof(record);

		if (pwrite(fd, record, sizeof(record), at) != (ssize_t)sizeof(record) ||
		    fdatasync(fd) < 0)
			bench_fail("hub", "cannot write the sync probe");
		n++;
	} while ((s = bench_now_seconds() - t0) < seconds);
	close(fd);
	unlink(path);
	return (double)n / s;
}

/* What the hub's /metrics says at one moment. */
struct hub_counts {
	double groups, items, accepted, checkpoints, restarts;
};

static void hub_counts_read(const struct loadgen *lg, struct hub_counts *ret)
{
	ret->groups = loadgen_metric(lg, "county_hub_commit_group_size_count");
	ret->items = loadgen_metric(lg, "county_hub_commit_group_size_sum");
	ret->accepted = loadgen_metric(lg, "county_hub_accepted_total");
	ret->checkpoints = loadgen_metric(lg, "county_hub_store_checkpoints_total");
	ret->restarts = loadgen_metric(lg, "county_hub_store_wal_restarts_total");
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
	double ceiling, ceiling_before, ceiling_after, cpu_before = 0, cpu_after = 0;
	double sync_before, sync_after, sync_rate, throughput, group_full, group_paced;
	double rss, ceiling_cpu = 0, hub_cpu, work_cpu, http_cpu, writer_cpu, syncs, commits;
	double checkpoints;
	struct hub_counts c0, c1, c2;
	struct hub_cpu cpu0, cpu1;
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
	ceiling_before = measure_ceiling(&lg, envelope, &cpu_before);
	sync_before = measure_sync(lg.dir, SYNC_SECONDS);

	loadgen_start_hub(&lg);
	hub_counts_read(&lg, &c0);
	hub_cpu_read(lg.hub, &cpu0);
	loadgen_load(&lg, 0, (size_t)returns, 0, LOADGEN_CONNECTIONS, &full);
	hub_cpu_read(lg.hub, &cpu1);
	hub_counts_read(&lg, &c1);
	loadgen_load(&lg, (size_t)returns, paced_count, rate, LOADGEN_CONNECTIONS, &paced);
	hub_counts_read(&lg, &c2);
	rss = bench_peak_rss(lg.hub);
	loadgen_stop_hub(&lg);
	/* what else runs on the machine moves the CPU and the disk: the baselines are measured
	 * on both sides of the run, and their mean is the one it is judged against */
	sync_after = measure_sync(lg.dir, SYNC_SECONDS);
	sync_rate = (sync_before + sync_after) / 2;
	ceiling_after = measure_ceiling(&lg, envelope, &cpu_after);
	ceiling = (ceiling_before + ceiling_after) / 2;
	ceiling_cpu = (cpu_before + cpu_after) / 2;

	throughput = loadgen_rate(&full);
	commits = c1.groups - c0.groups;
	checkpoints = c1.checkpoints - c0.checkpoints;
	group_full = commits > 0 ? (c1.items - c0.items) / commits : 0;
	group_paced = c2.groups > c1.groups ? (c2.items - c1.items) / (c2.groups - c1.groups) : 0;
	syncs = c1.accepted > c0.accepted ? (commits + SYNCS_PER_CHECKPOINT * checkpoints +
	                                     c1.restarts - c0.restarts) /
	                                            (c1.accepted - c0.accepted)
	                                  : 0;

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
	work_cpu = full.accepted ? (cpu1.work - cpu0.work) / (double)full.accepted : 0;
	http_cpu = full.accepted ? (cpu1.http - cpu0.http) / (double)full.accepted : 0;
	writer_cpu = full.accepted ? (cpu1.writer - cpu0.writer) / (double)full.accepted : 0;
	hub_cpu = full.accepted ? (cpu1.work + cpu1.http + cpu1.writer + cpu1.other - cpu0.work -
	                           cpu0.http - cpu0.writer - cpu0.other) /
	                                  (double)full.accepted
	                        : 0;
	printf("  hub CPU per accepted return: %.3f ms (work threads %.3f, HTTP %.3f, writer "
	       "%.3f); the accept path alone: %.3f ms; the hub used %.2f cores\n",
	       hub_cpu * 1e3, work_cpu * 1e3, http_cpu * 1e3, writer_cpu * 1e3, ceiling_cpu * 1e3,
	       full.seconds > 0 ? hub_cpu * (double)full.accepted / full.seconds : 0);

	bench_report_init(&report, "hub");
	bench_report_figure(&report, "county-hub accepted, durable", throughput, "returns/s",
	                    "accept path, 1 core", ceiling, "ratio >= 0.5",
	                    ceiling > 0 && throughput >= 0.5 * ceiling);
	bench_report_figure(&report, "county-hub accepted, durable", throughput, "returns/s",
	                    "one fsync per upload", sync_rate, "ratio >= 10",
	                    sync_rate > 0 && throughput >= 10 * sync_rate);
	bench_report_figure(&report, "county-hub fsyncs per accepted return, full load", syncs,
	                    "fsyncs", NULL, 0, NULL, 0);
	bench_report_figure(&report, "county-hub CPU per accepted return", hub_cpu * 1e3, "ms",
	                    "accept path alone, 1 core", ceiling_cpu * 1e3, NULL, 0);
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
	bench_report_detail(&report, "full_commits", commits);
	bench_report_detail(&report, "full_checkpoints", checkpoints);
	bench_report_detail(&report, "full_log_restarts", c1.restarts - c0.restarts);
	bench_report_detail(&report, "ceiling_before", ceiling_before);
	bench_report_detail(&report, "ceiling_after", ceiling_after);
	bench_report_detail(&report, "sync_rate_before", sync_before);
	bench_report_detail(&report, "sync_rate_after", sync_after);
	bench_report_detail(&report, "hub_cpu_ms_work_threads", work_cpu * 1e3);
	bench_report_detail(&report, "hub_cpu_ms_http_thread", http_cpu * 1e3);
	bench_report_detail(&report, "hub_cpu_ms_writer", writer_cpu * 1e3);
	bench_report_detail(&report, "hub_cores_used",
	                    full.seconds > 0 ? hub_cpu * (double)full.accepted / full.seconds : 0);
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
