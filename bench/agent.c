/* bench/agent: the real school-agent queueing and delivering 10,000 returns to a real county
 * hub on loopback, beside what the same hub accepts from the load generator of bench/hub
 * (bench/loadgen.h) in the same run (issue 3):
 *
 *   - queue: `school-agent import` of incident reports from CSV files (10,000 rows a file,
 *     the import's limit, unless BENCH_AGENT_IMPORT_ROWS says fewer), each return checked
 *     and signed as `submit` does, the file's returns queued together once all are valid
 *     (a staging folder, one flush of the filesystem for the file); its rate beside one
 *     fsync per upload on the same disk (no target: an order of magnitude);
 *   - sync: one `school-agent sync` delivering the whole outbox (gzip, the agent's default
 *     of 16 uploads in flight on keep-alive connections, each receipt verified, the
 *     receipts of the returns delivered together kept durably as a group); its rate
 *     beside the accepted durable returns per second of the load generator (1,000 schools,
 *     64 connections) against the same hub (the target's baseline), half of its returns
 *     sent just before the sync and half just after, the rate over both (this machine's
 *     speed moves from run to run and within one: the load generator alone made 3,770 to
 *     6,418 returns/s in one day's runs); and beside the load generator over one
 *     connection (no target: what a client sending one return at a time reaches) and over
 *     AGENT_PARALLEL connections (no target: what the hub gives a client that keeps as
 *     many uploads in flight as the agent does);
 *   - the CPU time per return of the agent (rusage) and of the hub (/proc) during the sync,
 *     and of the hub and the load generator during its 64-connection runs: with both
 *     CPUs busy, the sync can reach about (hub + load generator) / (hub + agent) of the
 *     load generator's rate, and CPU time moves less than a rate on a busy machine;
 *   - the peak RSS of each agent command: ru_maxrss from wait4. A child's ru_maxrss counts
 *     what it held before its exec, so every agent command runs under a small launcher (this
 *     program, re-executed with --measure) that forks it and reads its rusage; the
 *     launcher's floor is measured too (/bin/true under the same launcher).
 *
 * Targets: peak RSS <= 16 MB (10^6 bytes); sync rate >= 50% of the load generator's. A
 * benchmark, not a test: a missed target is reported, never an error; a return that does
 * not arrive is a setup failure (exit 1, the logs are left in the bench folder). Writes
 * <results>/agent.json (bench/bench.h).
 *
 * Environment: SCHOOL_AGENT (default school-agent/school-agent), COUNTY_HUB
 * (county-hub/county-hub), BENCH_SCHEMAS (schemas), BENCH_TMPDIR (/var/tmp),
 * BENCH_AGENT_RETURNS (10000), BENCH_AGENT_IMPORT_ROWS (10000),
 * BENCH_AGENT_LOADGEN_RETURNS (10000: returns of the 64-connection run; the one- and
 * AGENT_PARALLEL-connection runs send a fifth as many each) and BENCH_KEEP (set: the bench
 * folder and its logs are kept). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "bench.h"
#include "loadgen.h"
#include "common/banned.h"

#define SCHOOL_ID "6542019001" /* not one of the load generator's 65420xxxxx, x <= 01000 */
#define AGENT_CLOCK "2024-05-31T18:00:00+08:00" /* before the hub's LOADGEN_HUB_CLOCK */
#define IMPORT_ROWS_MAX 10000                   /* the import's own limit */
#define FSYNC_SECONDS 2.0
#define MEASURE_FLAG "--measure"
#define AGENT_PARALLEL 16 /* the agent's default uploads in flight */
#define AGENT_PARALLEL_TEXT "16"

struct bench_agent {
	const char *agent_binary; /* borrowed */
	const char *schemas;
	char tmp[4000]; /* the bench folder */
	char dir[4200]; /* the agent's folder */
	char log[4200]; /* the agent commands' output */
};

/* One agent command under the launcher. */
struct measured {
	int status; /* exit status, or -1 */
	double seconds;
	double peak_rss;    /* bytes */
	double cpu_seconds; /* user + system, all its threads */
};

/* The launcher: MEASURE_FLAG OUT PROGRAM ARGS... runs PROGRAM, waits for it and writes
 * "status maxrss_kib seconds cpu_seconds" to OUT. Exec'd afresh, it holds little, so what
 * its child counts before its own exec is small (and measured: see measure_floor). */
static int launcher(int argc, char **argv)
{
	struct rusage ru;
	double t0 = bench_now_seconds();
	int status, code;
	pid_t pid;
	FILE *out;

	if (argc < 4)
		return 64;
	pid = fork();
	if (pid < 0)
		return 71;
	if (pid == 0) {
		execv(argv[3], argv + 3);
		_exit(127);
	}
	if (wait4(pid, &status, 0, &ru) < 0)
		return 71;
	code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	out = fopen(argv[2], "w");
	if (!out)
		return 73;
	fprintf(out, "%d %ld %.6f %.6f\n", code, ru.ru_maxrss, bench_now_seconds() - t0,
	        (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	                (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
	return fclose(out) == 0 ? 0 : 74;
}

/* Runs argv (argv[0] a path, at most 14 words) under the launcher at the agent's clock,
 * output appended to the agent log. */
static void measure(const struct bench_agent *b, const char *const argv[], struct measured *ret)
{
	char out[4200], line[128];
	const char *words[20];
	long kib = 0;
	int n = 0, status, fd;
	FILE *f;
	pid_t pid;

	snprintf(out, sizeof(out), "%s/measured", b->tmp);
	unlink(out);
	words[n++] = "/proc/self/exe";
	words[n++] = MEASURE_FLAG;
	words[n++] = out;
	for (int i = 0; argv[i] && n < 19; i++)
		words[n++] = argv[i];
	words[n] = NULL;
	pid = fork();
	if (pid < 0)
		bench_fail("agent", "cannot fork");
	if (pid == 0) {
		fd = open(b->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		setenv("RETURNS_CLOCK", AGENT_CLOCK, 1);
		execv(words[0], (char *const *)words);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		bench_fail("agent", "the launcher failed");
	f = fopen(out, "r");
	if (!f || !fgets(line, sizeof(line), f) ||
	    sscanf(line, "%d %ld %lf %lf", &ret->status, &kib, &ret->seconds, &ret->cpu_seconds) !=
	            4)
		bench_fail("agent", "the launcher wrote no figures");
	fclose(f);
	ret->peak_rss = (double)kib * 1024;
}

/* The CPU time (user + system, every thread) process pid has used so far: fields 14 and
 * 15 of /proc/PID/stat, after the command name (which may hold spaces), in clock ticks. */
static double process_cpu_seconds(pid_t pid)
{
	char path[64], text[1024], *end;
	unsigned long long user, sys;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		bench_fail("agent", "cannot read the hub's CPU time");
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	text[n > 0 ? n : 0] = '\0';
	end = strrchr(text, ')');
	if (!end || sscanf(end + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &user,
	                   &sys) != 2)
		bench_fail("agent", "cannot read the hub's CPU time");
	return (double)(user + sys) / (double)sysconf(_SC_CLK_TCK);
}

/* The returns queued in a folder of the agent ("outbox", "sent", "rejected"). */
static size_t count_returns(const struct bench_agent *b, const char *folder)
{
	char path[4400];
	struct dirent *e;
	size_t n = 0, len;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", b->dir, folder);
	d = opendir(path);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		len = strlen(e->d_name);
		if (len > 4 && strcmp(e->d_name + len - 4, ".jws") == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* Bytes of one queued return (any in the outbox). */
static double queued_size(const struct bench_agent *b)
{
	char path[4400];
	struct dirent *e;
	struct stat st;
	double size = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/outbox", b->dir);
	d = opendir(path);
	if (!d)
		return 0;
	while (size == 0 && (e = readdir(d))) {
		size_t len = strlen(e->d_name);

		if (len <= 4 || strcmp(e->d_name + len - 4, ".jws") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/outbox/%s", b->dir, e->d_name);
		if (stat(path, &st) == 0)
			size = (double)st.st_size;
	}
	closedir(d);
	return size;
}

/* A CSV of rows incident reports, numbered from first: a mix of levels, types and places
 * as a school's log of a month might hold, each with a summary near the form's 500
 * characters (so that a return is about as big as the load generator's). */
static void write_incidents(const char *path, long first, long rows)
{
	static const char *const types[] = {"verbal", "physical;verbal", "relational", "cyber",
	                                    "property"};
	static const char *const settings[] = {"classroom", "dormitory", "playground",
	                                       "canteen",   "toilet",    "commute"};
	static const char *const bands[] = {"primary_high", "junior", "senior"};
	FILE *f = fopen(path, "w");

	if (!f)
		bench_fail("agent", "cannot write the incident CSV");
	fprintf(f, "incident_ref,occurred_on,discovered_on,reported_on,level,types,setting,"
	           "grade_band,victims.female,victims.male,perpetrators.female,perpetrators.male,"
	           "measures,parents_notified,psychological_support,status,closed_on,summary\n");
	for (long i = first; i < first + rows; i++) {
		int day = 1 + (int)(i % 28), level = i % 50 == 0 ? 3 : i % 8 == 0 ? 2 : 1;
		const char *measures = level == 3   ? "education;police_referral"
		                       : level == 2 ? "education;discipline"
		                                    : "education";

		fprintf(f,
		        "BENCH-%06ld,2024-05-%02d,2024-05-%02d,2024-05-%02d,%d,\"%s\",%s,%s,%d,%d,"
		        "%d,%d,\"%s\",是,%s,open,,",
		        i, day, day, day + (int)(i % 2), level, types[i % 5], settings[i % 6],
		        bands[i % 3], (int)(i % 2), 1 - (int)(i % 2), (int)(i % 3 == 0),
		        1 + (int)(i % 2), measures, i % 4 ? "是" : "否");
		for (int k = 0; k < 18; k++)
			fputs(k % 2 ? "班主任跟进。课间在宿舍发生推搡，已分别谈话并通知家长。"
			            : "课间在宿舍发生推搡，已分别谈话并通知家长。班主任跟进。",
			      f);
		fputc('\n', f);
	}
	if (fclose(f) != 0)
		bench_fail("agent", "cannot write the incident CSV");
}

/* `school-agent init`, and the school in the hub's roster with its new key. */
static void make_agent(struct bench_agent *b, struct loadgen *lg)
{
	char county_key[4400], school_key[4400];
	const char *init[] = {
	        b->agent_binary, "init",        "--dir",           b->dir,     "--school-id",
	        SCHOOL_ID,       "--county-id", LOADGEN_COUNTY_ID, "--hub",    lg->url,
	        "--county-key",  county_key,    "--schemas-dir",   b->schemas, "--name",
	        "测评第一中学",  NULL};
	const char *roster[] = {"roster",      "add",      "--dir",  lg->dir,
	                        "--school-id", SCHOOL_ID,  "--name", "测评第一中学",
	                        "--key",       school_key, NULL};

	snprintf(county_key, sizeof(county_key), "%s/county.pub.jwk", lg->dir);
	snprintf(school_key, sizeof(school_key), "%s/school.pub.jwk", b->dir);
	if (bench_run(init, AGENT_CLOCK, b->log) != 0)
		bench_fail("agent", "school-agent init failed (see agent.log in the bench folder)");
	if (loadgen_hub_command(lg, roster) != 0)
		bench_fail("agent",
		           "county-hub roster add failed (see hub.log in the bench folder)");
}

/* Queues returns incidents with `school-agent import`, per_file rows a file: the total
 * time and the largest peak RSS of the imports. */
static void queue(struct bench_agent *b, long returns, long per_file, struct measured *ret)
{
	char csv[4400];
	const char *argv[] = {b->agent_binary, "import",   "--dir", b->dir,
	                      "--form",        "incident", csv,     NULL};

	memset(ret, 0, sizeof(*ret));
	for (long first = 0; first < returns; first += per_file) {
		long rows = returns - first < per_file ? returns - first : per_file;
		struct measured m;

		snprintf(csv, sizeof(csv), "%s/incidents-%ld.csv", b->tmp, first / per_file);
		write_incidents(csv, first, rows);
		measure(b, argv, &m);
		if (m.status != 0)
			bench_fail("agent", "school-agent import failed (see agent.log)");
		ret->seconds += m.seconds;
		if (m.peak_rss > ret->peak_rss)
			ret->peak_rss = m.peak_rss;
		unlink(csv);
	}
}

static int rss_met(double bytes)
{
	return bytes > 0 && bytes <= 16e6;
}

int main(int argc, char **argv)
{
	const char *results = argc > 1 ? argv[1] : "bench/results";
	struct bench_agent b;
	struct loadgen lg;
	struct loadgen_run load, after, serial, as_agent;
	struct measured queued, synced, floor;
	struct bench_report report;
	const char *sync[] = {NULL, "sync", "--dir", NULL, NULL};
	const char *true_argv[] = {"/bin/true", NULL};
	long returns = bench_env_long("BENCH_AGENT_RETURNS", 10000);
	long load_returns = bench_env_long("BENCH_AGENT_LOADGEN_RETURNS", 10000);
	long per_file = bench_env_long("BENCH_AGENT_IMPORT_ROWS", IMPORT_ROWS_MAX);
	long serial_returns = load_returns / 5 > 0 ? load_returns / 5 : 1;
	long load_half = load_returns / 2;
	double fsync_rate, load_rate, serial_rate, as_agent_rate, queue_rate, sync_rate,
	        return_bytes;
	double hub_cpu_load, hub_cpu_sync, hub_cpu_after;
	size_t sent, rejected, remaining;
	char path[4200];

	if (argc > 1 && strcmp(argv[1], MEASURE_FLAG) == 0)
		return launcher(argc, argv);

	memset(&b, 0, sizeof(b));
	b.agent_binary = bench_env_text("SCHOOL_AGENT", "school-agent/school-agent");
	b.schemas = bench_env_text("BENCH_SCHEMAS", "schemas");
	if (access(b.agent_binary, X_OK) != 0)
		bench_fail("agent", "no school-agent binary: run make first, or set SCHOOL_AGENT");
	if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		bench_fail("agent", "cannot start libsodium or libcurl");
	snprintf(b.tmp, sizeof(b.tmp), "%s/agent-bench-XXXXXX",
	         bench_env_text("BENCH_TMPDIR", "/var/tmp"));
	if (!mkdtemp(b.tmp))
		bench_fail("agent", "cannot make the bench folder");
	snprintf(b.dir, sizeof(b.dir), "%s/agent", b.tmp);
	snprintf(b.log, sizeof(b.log), "%s/agent.log", b.tmp);
	snprintf(path, sizeof(path), "%s/hub", b.tmp);
	loadgen_init(&lg, bench_env_text("COUNTY_HUB", "county-hub/county-hub"), b.schemas, path);

	printf("agent: setting up a hub with %d + 1 schools, queueing %ld returns ...\n",
	       LOADGEN_SCHOOLS, returns);
	fflush(stdout);
	loadgen_make_hub(&lg);
	loadgen_set_port(&lg, 0);
	make_agent(&b, &lg);
	measure(&b, true_argv, &floor);
	if (per_file > IMPORT_ROWS_MAX)
		per_file = IMPORT_ROWS_MAX;
	queue(&b, returns, per_file, &queued);
	if (count_returns(&b, "outbox") != (size_t)returns)
		bench_fail("agent", "the outbox does not hold every imported return");
	return_bytes = queued_size(&b);
	fsync_rate = bench_measure_fsync(b.dir, FSYNC_SECONDS);

	printf("agent: signing %ld + 2 x %ld returns for the load generator ...\n", load_returns,
	       serial_returns);
	fflush(stdout);
	loadgen_make_uploads(&lg, (size_t)(load_returns + 2 * serial_returns));
	loadgen_start_hub(&lg);
	/* the 64-connection baseline brackets the sync: half before it, half after */
	hub_cpu_load = process_cpu_seconds(lg.hub);
	loadgen_load(&lg, 0, (size_t)load_half, 0, LOADGEN_CONNECTIONS, &load);
	hub_cpu_load = process_cpu_seconds(lg.hub) - hub_cpu_load;
	loadgen_load(&lg, (size_t)load_returns, (size_t)serial_returns, 0, 1, &serial);
	loadgen_load(&lg, (size_t)(load_returns + serial_returns), (size_t)serial_returns, 0,
	             AGENT_PARALLEL, &as_agent);
	serial_rate = loadgen_rate(&serial);
	as_agent_rate = loadgen_rate(&as_agent);

	sync[0] = b.agent_binary;
	sync[3] = b.dir;
	hub_cpu_sync = process_cpu_seconds(lg.hub);
	measure(&b, sync, &synced);
	hub_cpu_sync = process_cpu_seconds(lg.hub) - hub_cpu_sync;
	hub_cpu_after = process_cpu_seconds(lg.hub);
	loadgen_load(&lg, (size_t)load_half, (size_t)(load_returns - load_half), 0,
	             LOADGEN_CONNECTIONS, &after);
	hub_cpu_load += process_cpu_seconds(lg.hub) - hub_cpu_after;
	load.sent += after.sent;
	load.accepted += after.accepted;
	load.other += after.other;
	load.seconds += after.seconds;
	load.client_cpu_s += after.client_cpu_s;
	load_rate = loadgen_rate(&load);
	loadgen_stop_hub(&lg);
	sent = count_returns(&b, "sent");
	rejected = count_returns(&b, "rejected");
	remaining = count_returns(&b, "outbox");
	if (synced.status != 0 || sent != (size_t)returns) {
		fprintf(stderr,
		        "agent: school-agent sync exited %d with %zu sent, %zu rejected, "
		        "%zu queued (logs in '%s')\n",
		        synced.status, sent, rejected, remaining, b.tmp);
		return 1;
	}

	queue_rate = queued.seconds > 0 ? (double)returns / queued.seconds : 0;
	sync_rate = synced.seconds > 0 ? (double)sent / synced.seconds : 0;
	printf("agent: one school, %ld incident returns of %.0f bytes signed, imported %ld a "
	       "file; the load generator: %d schools, returns of %zu bytes signed, %d "
	       "connections\n",
	       returns, return_bytes, per_file, LOADGEN_SCHOOLS, lg.jws_len, LOADGEN_CONNECTIONS);
	printf("  import: %ld returns in %.2f s; sync: %zu sent in %.2f s; load generator: "
	       "%zu accepted, %zu other in %.2f s (%d connections), %zu accepted, %zu other in "
	       "%.2f s (1 connection), %zu accepted, %zu other in %.2f s (%d connections)\n",
	       returns, queued.seconds, sent, synced.seconds, load.accepted, load.other,
	       load.seconds, LOADGEN_CONNECTIONS, serial.accepted, serial.other, serial.seconds,
	       as_agent.accepted, as_agent.other, as_agent.seconds, AGENT_PARALLEL);
	printf("  launcher floor (/bin/true under it): %.1f MB\n", floor.peak_rss / 1e6);

	bench_report_init(&report, "agent");
	bench_report_figure(&report, "school-agent sync", sync_rate, "returns/s",
	                    "load generator, 64 connections", load_rate, "ratio >= 0.5",
	                    load_rate > 0 && sync_rate >= 0.5 * load_rate);
	bench_report_figure(&report, "school-agent sync", sync_rate, "returns/s",
	                    "load generator, 1 connection", serial_rate, NULL, 0);
	bench_report_figure(&report, "school-agent sync", sync_rate, "returns/s",
	                    "load generator, " AGENT_PARALLEL_TEXT " connections", as_agent_rate,
	                    NULL, 0);
	bench_report_figure(&report, "school-agent sync peak RSS", synced.peak_rss / 1e6, "MB",
	                    NULL, 0, "<= 16 MB", rss_met(synced.peak_rss));
	bench_report_figure(&report, "school-agent import (queue)", queue_rate, "returns/s",
	                    "one fsync per upload", fsync_rate, NULL, 0);
	bench_report_figure(&report, "school-agent import peak RSS", queued.peak_rss / 1e6, "MB",
	                    NULL, 0, "<= 16 MB", rss_met(queued.peak_rss));
	bench_report_detail(&report, "returns", (double)returns);
	bench_report_detail(&report, "return_bytes", return_bytes);
	bench_report_detail(&report, "import_rows_per_file", (double)per_file);
	bench_report_detail(&report, "import_seconds", queued.seconds);
	bench_report_detail(&report, "sync_seconds", synced.seconds);
	/* CPU per return, which a busy machine moves less than a rate: the agent's, and the
	 * hub's while it served the sync and while it served the 64-connection load */
	bench_report_detail(&report, "sync_agent_cpu_us_per_return",
	                    sent ? synced.cpu_seconds / (double)sent * 1e6 : 0);
	bench_report_detail(&report, "sync_hub_cpu_us_per_return",
	                    sent ? hub_cpu_sync / (double)sent * 1e6 : 0);
	bench_report_detail(&report, "loadgen_hub_cpu_us_per_return",
	                    load.accepted ? hub_cpu_load / (double)load.accepted * 1e6 : 0);
	bench_report_detail(&report, "loadgen_client_cpu_us_per_return",
	                    load.accepted ? load.client_cpu_s / (double)load.accepted * 1e6 : 0);
	bench_report_detail(&report, "loadgen_returns", (double)load.sent);
	bench_report_detail(&report, "loadgen_accepted", (double)load.accepted);
	bench_report_detail(&report, "loadgen_return_bytes", (double)lg.jws_len);
	bench_report_detail(&report, "loadgen_seconds", load.seconds);
	bench_report_detail(&report, "loadgen_1_connection_returns", (double)serial.sent);
	bench_report_detail(&report, "loadgen_1_connection_accepted", (double)serial.accepted);
	bench_report_detail(&report, "loadgen_" AGENT_PARALLEL_TEXT "_connections_returns",
	                    (double)as_agent.sent);
	bench_report_detail(&report, "loadgen_" AGENT_PARALLEL_TEXT "_connections_accepted",
	                    (double)as_agent.accepted);
	bench_report_detail(&report, "launcher_floor_rss_mb", floor.peak_rss / 1e6);
	bench_report_print(&report);

	loadgen_release(&lg);
	if (getenv("BENCH_KEEP"))
		printf("  the bench folder is kept: '%s'\n", b.tmp);
	else
		bench_remove_tree(b.tmp);
	curl_global_cleanup();
	return bench_report_write(&report, results);
}
