/* What every benchmark shares: time, the environment, running programs, and the results
 * file in the one shape that scripts/bench-summary reads:
 *
 *   {"benchmark": NAME,
 *    "figures": [{"name", "value", "unit", "baseline_name", "baseline_value", "ratio",
 *                 "target", "met"}, ...],
 *    "details": {...}}
 *
 * ratio is always value / baseline_value, the baseline being measured in the same run on
 * the same machine; baseline_*, ratio, target and met are null where a figure has none.
 * target is words ("ratio >= 0.5", "<= 16 MB") and met says whether this run met it.
 * details holds what a reader needs to judge the run (sizes, counts) and is not summed up.
 * A benchmark reports a missed target; it never fails on one.
 *
 * Header-only because the Makefile builds each bench/NAME.c into a program of its own. A
 * benchmark is a short-lived program: a setup failure prints why and exits. */
#ifndef BENCH_BENCH_H
#define BENCH_BENCH_H

#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cjson/cJSON.h>

#include "common/fileio.h"

static inline double bench_now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void bench_fail(const char *who, const char *what)
{
	fprintf(stderr, "%s: %s\n", who, what);
	exit(1);
}

/* A positive number from the environment, or fallback. */
static inline long bench_env_long(const char *name, long fallback)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (!v || !*v)
		return fallback;
	n = strtol(v, &end, 10);
	return *end || n <= 0 ? fallback : n;
}

static inline const char *bench_env_text(const char *name, const char *fallback)
{
	const char *v = getenv(name);

	return v && *v ? v : fallback;
}

/* CPU seconds (user + system) this process has used. */
static inline double bench_cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Runs argv (argv[0] a path) with RETURNS_CLOCK=clock, stdout and stderr appended to log;
 * the exit status, or -1. */
static inline int bench_run(const char *const argv[], const char *clock, const char *log)
{
	pid_t pid;
	int status, fd;

	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		setenv("RETURNS_CLOCK", clock, 1);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A loopback port that was free a moment ago. */
static inline int bench_free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		bench_fail("bench", "cannot find a free port");
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* The peak resident set (VmHWM) of a live process in bytes, or 0. */
static inline double bench_peak_rss(pid_t pid)
{
	char path[64], line[256];
	double kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmHWM:", 6) == 0)
			kb = strtod(line + 6, NULL);
	fclose(f);
	return kb * 1024;
}

#define BENCH_RECORD_SIZE 4096 /* bytes of one fsync probe write: one upload */

/* write + fsync of BENCH_RECORD_SIZE records to a new file in folder, for seconds: the
 * rate of one fsync per upload on that disk. */
static inline double bench_measure_fsync(const char *folder, double seconds)
{
	char path[8192], record[BENCH_RECORD_SIZE];
	double t0 = bench_now_seconds(), s;
	long n = 0;
	int fd;

	memset(record, 'x', sizeof(record));
	snprintf(path, sizeof(path), "%s/fsync-probe", folder);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		bench_fail("bench", "cannot open the fsync probe");
	do {
		if (write(fd, record, sizeof(record)) != (ssize_t)sizeof(record) || fsync(fd) < 0)
			bench_fail("bench", "cannot write the fsync probe");
		n++;
	} while ((s = bench_now_seconds() - t0) < seconds);
	close(fd);
	unlink(path);
	return (double)n / s;
}

static inline int bench_remove_entry(const char *path, const struct stat *st, int flag,
                                     struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

/* Removes a folder and everything in it (a benchmark's scratch folder). */
static inline void bench_remove_tree(const char *path)
{
	nftw(path, bench_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The results of one benchmark (see the top of this file). */
struct bench_report {
	const char *benchmark; /* borrowed */
	cJSON *root;
	cJSON *figures;
	cJSON *details;
};

#define BENCH_NO_TARGET (-1)

static inline void bench_report_init(struct bench_report *r, const char *benchmark)
{
	r->benchmark = benchmark;
	r->root = cJSON_CreateObject();
	r->figures = cJSON_CreateArray();
	r->details = cJSON_CreateObject();
	if (!r->root || !r->figures || !r->details ||
	    !cJSON_AddStringToObject(r->root, "benchmark", benchmark) ||
	    !cJSON_AddItemToObject(r->root, "figures", r->figures) ||
	    !cJSON_AddItemToObject(r->root, "details", r->details))
		bench_fail(benchmark, "out of memory");
}

/* Rounds to what a measurement on a shared machine can claim: 4 significant digits. */
static inline double bench_round(double v)
{
	double scale;

	if (v == 0 || !isfinite(v))
		return v;
	scale = pow(10, 3 - floor(log10(fabs(v))));
	return round(v * scale) / scale;
}

static inline void bench_add_number_or_null(const char *benchmark, cJSON *obj, const char *name,
                                            int present, double v)
{
	if (!(present && isfinite(v) ? cJSON_AddNumberToObject(obj, name, bench_round(v))
	                             : cJSON_AddNullToObject(obj, name)))
		bench_fail(benchmark, "out of memory");
}

static inline void bench_add_text_or_null(const char *benchmark, cJSON *obj, const char *name,
                                          const char *text)
{
	if (!(text ? cJSON_AddStringToObject(obj, name, text) : cJSON_AddNullToObject(obj, name)))
		bench_fail(benchmark, "out of memory");
}

/* Adds one figure. baseline_name NULL: no baseline (baseline_value ignored). target NULL:
 * no target (met ignored); else met is 1 or 0. */
static inline void bench_report_figure(struct bench_report *r, const char *name, double value,
                                       const char *unit, const char *baseline_name,
                                       double baseline_value, const char *target, int met)
{
	cJSON *f = cJSON_CreateObject();
	int has_ratio = baseline_name && baseline_value > 0;

	if (!f || !cJSON_AddItemToArray(r->figures, f))
		bench_fail(r->benchmark, "out of memory");
	bench_add_text_or_null(r->benchmark, f, "name", name);
	bench_add_number_or_null(r->benchmark, f, "value", 1, value);
	bench_add_text_or_null(r->benchmark, f, "unit", unit);
	bench_add_text_or_null(r->benchmark, f, "baseline_name", baseline_name);
	bench_add_number_or_null(r->benchmark, f, "baseline_value", baseline_name != NULL,
	                         baseline_value);
	bench_add_number_or_null(r->benchmark, f, "ratio", has_ratio,
	                         has_ratio ? value / baseline_value : 0);
	bench_add_text_or_null(r->benchmark, f, "target", target);
	if (!(target ? cJSON_AddBoolToObject(f, "met", met != 0) : cJSON_AddNullToObject(f, "met")))
		bench_fail(r->benchmark, "out of memory");
}

/* A number or a text of the run's details. */
static inline void bench_report_detail(struct bench_report *r, const char *name, double value)
{
	bench_add_number_or_null(r->benchmark, r->details, name, 1, value);
}

static inline void bench_report_detail_text(struct bench_report *r, const char *name,
                                            const char *text)
{
	bench_add_text_or_null(r->benchmark, r->details, name, text);
}

/* Prints the figures, one a line, with baseline, ratio and verdict. */
static inline void bench_report_print(const struct bench_report *r)
{
	const cJSON *f;

	cJSON_ArrayForEach(f, r->figures)
	{
		const cJSON *base = cJSON_GetObjectItemCaseSensitive(f, "baseline_name");
		const cJSON *target = cJSON_GetObjectItemCaseSensitive(f, "target");
		const char *unit =
		        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "unit"));

		printf("  %-36s %10.4g %-9s",
		       cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "name")),
		       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(f, "value")),
		       unit ? unit : "");
		if (cJSON_IsString(base))
			printf("  vs %s %.4g: ratio %.3g", base->valuestring,
			       cJSON_GetNumberValue(
			               cJSON_GetObjectItemCaseSensitive(f, "baseline_value")),
			       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(f, "ratio")));
		if (cJSON_IsString(target))
			printf("  target %s: %s", target->valuestring,
			       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "met"))
			               ? "met"
			               : "NOT MET");
		printf("\n");
	}
}

/* Writes results/<benchmark>.json (atomically) and frees the report. Returns 0, or 1 after
 * saying why on stderr. */
static inline int bench_report_write(struct bench_report *r, const char *results)
{
	char path[4200];
	char *text = cJSON_Print(r->root);
	int ret = 0;

	snprintf(path, sizeof(path), "%s/%s.json", results, r->benchmark);
	if (!text || fileio_write_atomic(path, text, strlen(text), 0644) < 0) {
		fprintf(stderr, "%s: cannot write '%s'\n", r->benchmark, path);
		ret = 1;
	}
	cJSON_free(text);
	cJSON_Delete(r->root);
	r->root = r->figures = r->details = NULL;
	return ret;
}

#endif
