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
 * <results>/hub.json.
 *
 * Environment: COUNTY_HUB (default county-hub/county-hub), BENCH_SCHEMAS (schemas),
 * BENCH_TMPDIR (/var/tmp), BENCH_HUB_RETURNS (returns of the full-load run, 20000),
 * BENCH_HUB_RATE (2000) and BENCH_HUB_PACED_SECONDS (5). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
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

#include <curl/curl.h>
#include <sodium.h>

#include "accept_loop.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/form.h"
#include "common/gzip.h"
#include "common/ids.h"
#include "common/jwk.h"
#include "common/jws.h"
#include "common/schema.h"
#include "common/submission.h"
#include "common/banned.h"

#define COUNTY_ID "654201"
#define SCHOOLS 1000
#define CONNECTIONS 64
#define HUB_CLOCK "2024-06-01T10:00:00+08:00" /* rectification 2024-05 is due 06-05 */
#define CEILING_SECONDS 2.0
#define FSYNC_SECONDS 2.0
#define RECORD_SIZE 4096

struct school {
	char id[11];
	struct jwk key;
};

struct upload {
	char *body; /* gzipped JWS */
	size_t len;
};

struct bench {
	const char *hub_binary, *schemas, *results;
	char dir[4096];
	char url[64];
	pid_t hub;
	struct school *schools;
	struct upload *uploads;
	size_t uploads_count;
	size_t jws_len; /* of the first upload, signed */
	const struct form *form;
	struct form_set *forms;
	struct schema *envelope;
	struct clock clock;
};

/* One load run's outcome. */
struct run {
	size_t sent, accepted, other;
	long first_other; /* the first status that was not 201 */
	double seconds;
	double p50_ms, p99_ms;
	double client_cpu_s; /* CPU the load generator itself used */
};

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static const char ledger_text[] = "教学楼东侧楼梯间存在监控盲区，课间巡查力量不足，"
                                  "寄宿生夜间管理需要加强，已明确责任岗位并限期整改，"
                                  "由安全办每周复查一次，整改情况在校务公开栏公示。";
static const char *const categories[] = {"facility", "supervision", "education", "mechanism"};

static void fail(const char *what)
{
	fprintf(stderr, "hub: %s\n", what);
	exit(1);
}

static long env_long(const char *name, long fallback)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (!v || !*v)
		return fallback;
	n = strtol(v, &end, 10);
	return *end || n <= 0 ? fallback : n;
}

static const char *env_text(const char *name, const char *fallback)
{
	const char *v = getenv(name);

	return v && *v ? v : fallback;
}

/* Runs argv with RETURNS_CLOCK set, its output appended to DIR/../hub-bench.log; the exit
 * status, or -1. */
static int run_command(struct bench *b, const char *const argv[])
{
	char log[4200];
	pid_t pid;
	int status, fd;

	snprintf(log, sizeof(log), "%s.log", b->dir);
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
		setenv("RETURNS_CLOCK", HUB_CLOCK, 1);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void make_schools(struct bench *b)
{
	char err[256], path[4200], x[64];
	FILE *csv;

	b->schools = calloc(SCHOOLS, sizeof(*b->schools));
	if (!b->schools)
		fail("out of memory");
	snprintf(path, sizeof(path), "%s/roster.csv", b->dir);
	csv = fopen(path, "w");
	if (!csv)
		fail("cannot write the roster");
	fprintf(csv, "school_id,name,type,key_x\n");
	for (int i = 0; i < SCHOOLS; i++) {
		struct school *s = &b->schools[i];

		snprintf(s->id, sizeof(s->id), "65420%05d", i + 1);
		if (jwk_generate(&s->key, s->id, err, sizeof(err)) < 0)
			fail(err);
		sodium_bin2base64(x, sizeof(x), s->key.public_key, sizeof(s->key.public_key),
		                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		fprintf(csv, "%s,第%d中学,junior,%s\n", s->id, i + 1, x);
	}
	if (fclose(csv) != 0)
		fail("cannot write the roster");
}

/* The hub's folder: init, then the roster. */
static void make_hub(struct bench *b)
{
	char csv[4200];
	const char *init[] = {b->hub_binary, "init",    "--dir", b->dir,
	                      "--county-id", COUNTY_ID, NULL};
	const char *import[] = {b->hub_binary, "roster", "import", "--dir", b->dir, csv, NULL};

	if (run_command(b, init) != 0)
		fail("county-hub init failed (see the .log beside the bench folder)");
	make_schools(b);
	snprintf(csv, sizeof(csv), "%s/roster.csv", b->dir);
	if (run_command(b, import) != 0)
		fail("county-hub roster import failed");
}

/* One return of school s: a ledger of four items, about 4 KB signed. */
static char *make_payload(struct bench *b, const struct school *s)
{
	char id[IDS_UUID_LEN + 1];
	struct buf text;

	buf_init(&text, 64 * 1024);
	if (ids_uuid7(&b->clock, id) < 0)
		fail("cannot make an id");
	if (buf_printf(&text,
	               "{\"form\":\"rectification\",\"form_version\":%d,\"submission_id\":\"%s\","
	               "\"school_id\":\"%s\",\"county_id\":\"" COUNTY_ID
	               "\",\"period\":\"2024-05\","
	               "\"created_at\":\"2024-06-01T09:00:00+08:00\",\"supersedes\":null,"
	               "\"data\":{\"as_of\":\"2024-05-31\",\"items\":[",
	               b->form->version, id, s->id) < 0)
		fail("out of memory");
	for (int k = 0; k < 4; k++)
		if (buf_printf(&text,
		               "%s{\"item_id\":\"R-%03d\",\"found_on\":\"2024-05-0%d\","
		               "\"source\":\"screening\",\"category\":\"%s\",\"problem\":\"%s\","
		               "\"measure\":\"%s\",\"responsible_role\":\"safety_officer\","
		               "\"deadline\":\"2024-06-30\",\"status\":\"in_progress\","
		               "\"completed_on\":null}",
		               k ? "," : "", k + 1, k + 1, categories[k], ledger_text,
		               ledger_text) < 0)
			fail("out of memory");
	if (buf_puts(&text, "]}}") < 0)
		fail("out of memory");
	return buf_detach(&text, NULL);
}

/* Signs and gzips count returns, round robin over the schools. */
static void make_uploads(struct bench *b, size_t count)
{
	struct gzip_compressor gz;
	struct buf wire;
	char err[256];

	b->uploads = calloc(count, sizeof(*b->uploads));
	if (!b->uploads || gzip_compressor_init(&gz, 6) < 0)
		fail("out of memory");
	buf_init(&wire, 1 << 20);
	for (size_t i = 0; i < count; i++) {
		const struct school *s = &b->schools[i % SCHOOLS];
		char *payload = make_payload(b, s), *jws = NULL;
		size_t jws_len;

		if (!payload || jws_sign(&s->key, s->id, payload, strlen(payload), &jws, &jws_len,
		                         err, sizeof(err)) < 0)
			fail("cannot sign a return");
		if (i == 0)
			b->jws_len = jws_len;
		buf_reset(&wire);
		if (gzip_compress(&gz, jws, jws_len, &wire) < 0)
			fail("cannot gzip a return");
		b->uploads[i].len = wire.len;
		b->uploads[i].body = malloc(wire.len);
		if (!b->uploads[i].body)
			fail("out of memory");
		memcpy(b->uploads[i].body, wire.data, wire.len);
		free(jws);
		free(payload);
	}
	b->uploads_count = count;
	buf_release(&wire);
	gzip_compressor_release(&gz);
}

static int lookup_key(void *data, const char *kid, struct jwk *ret_key, char *err, size_t errlen)
{
	const struct bench *b = data;
	long i = strtol(kid + 5, NULL, 10) - 1;

	if (strlen(kid) != 10 || strncmp(kid, "65420", 5) != 0 || i < 0 || i >= SCHOOLS) {
		snprintf(err, errlen, "unknown school \"%s\"", kid);
		return -ENOKEY;
	}
	*ret_key = b->schools[i].key;
	ret_key->has_private = 0;
	return 0;
}

/* The accept path's rate on one core over the first upload. */
static double measure_ceiling(struct bench *b)
{
	struct submission_context ctx = {0};
	struct gzip_inflater inflater;
	struct buf plain;
	char err[512];
	double s;
	long n;

	ctx.envelope = b->envelope;
	ctx.forms = b->forms;
	ctx.county_id = COUNTY_ID;
	ctx.lookup_key = lookup_key;
	ctx.lookup_data = b;
	buf_init(&plain, 8 << 20);
	if (gzip_inflater_init(&inflater, 8 << 20, 100) < 0)
		fail("out of memory");
	s = bench_accept_loop(&ctx, &inflater, &plain, b->uploads[0].body, b->uploads[0].len, 200,
	                      err, sizeof(err));
	if (s < 0) {
		fprintf(stderr, "hub: the return is refused: %s\n", err);
		exit(1);
	}
	n = (long)(CEILING_SECONDS * 200 / (s > 1e-6 ? s : 1e-6));
	n = n < 200 ? 200 : n;
	s = bench_accept_loop(&ctx, &inflater, &plain, b->uploads[0].body, b->uploads[0].len, n,
	                      err, sizeof(err));
	gzip_inflater_release(&inflater);
	buf_release(&plain);
	return s > 0 ? (double)n / s : 0;
}

/* write + fsync of 4 KB records in the hub's folder. */
static double measure_fsync(struct bench *b)
{
	char path[4200], record[RECORD_SIZE];
	double t0 = bench_now_seconds(), s;
	long n = 0;
	int fd;

	memset(record, 'x', sizeof(record));
	snprintf(path, sizeof(path), "%s/fsync-probe", b->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		fail("cannot open the fsync probe");
	do {
		if (write(fd, record, sizeof(record)) != (ssize_t)sizeof(record) || fsync(fd) < 0)
			fail("cannot write the fsync probe");
		n++;
	} while ((s = bench_now_seconds() - t0) < FSYNC_SECONDS);
	close(fd);
	unlink(path);
	return (double)n / s;
}

static int free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		fail("cannot find a free port");
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static size_t discard(char *data, size_t size, size_t n, void *userdata)
{
	(void)data, (void)size, (void)userdata;
	return n;
}

static size_t keep(char *data, size_t size, size_t n, void *userdata)
{
	(void)size;
	return buf_append(userdata, data, n) < 0 ? 0 : n;
}

/* GET path into out; the HTTP status, or -1. */
static long http_get(const struct bench *b, const char *path, struct buf *out)
{
	char url[256];
	CURL *c = curl_easy_init();
	long status = -1;

	snprintf(url, sizeof(url), "%s%s", b->url, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, out ? keep : discard);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	return status;
}

static void start_hub(struct bench *b)
{
	char listen[64], log[4200];
	int port = free_port(), fd;
	double t0;

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(b->url, sizeof(b->url), "http://127.0.0.1:%d", port);
	snprintf(log, sizeof(log), "%s.log", b->dir);
	b->hub = fork();
	if (b->hub < 0)
		fail("cannot fork");
	if (b->hub == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		setenv("RETURNS_CLOCK", HUB_CLOCK, 1);
		execl(b->hub_binary, "county-hub", "serve", "--dir", b->dir, "--schemas-dir",
		      b->schemas, "--listen", listen, (char *)NULL);
		_exit(127);
	}
	t0 = bench_now_seconds();
	while (http_get(b, "/healthz", NULL) != 200) {
		if (bench_now_seconds() - t0 > 15 || waitpid(b->hub, NULL, WNOHANG) != 0)
			fail("the hub did not start (see the .log beside the bench folder)");
		usleep(20000);
	}
}

static void stop_hub(struct bench *b)
{
	double t0 = bench_now_seconds();

	if (b->hub <= 0)
		return;
	kill(b->hub, SIGTERM);
	while (waitpid(b->hub, NULL, WNOHANG) == 0) {
		if (bench_now_seconds() - t0 > 20) {
			kill(b->hub, SIGKILL);
			waitpid(b->hub, NULL, 0);
			break;
		}
		usleep(20000);
	}
	b->hub = 0;
}

/* The hub's peak resident set (VmHWM) in bytes, or 0. */
static double peak_rss(pid_t pid)
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

/* A counter or gauge of the hub's /metrics, or -1. */
static double metric(const struct bench *b, const char *name)
{
	struct buf text;
	size_t n = strlen(name);
	double v = -1;

	buf_init(&text, 1 << 20);
	if (http_get(b, "/metrics", &text) == 200 && text.data) {
		const char *line = text.data, *end;

		for (; *line; line = *end ? end + 1 : end) {
			end = strchr(line, '\n');
			if (!end)
				end = line + strlen(line);
			if (strncmp(line, name, n) == 0 && line[n] == ' ') {
				v = strtod(line + n + 1, NULL);
				break;
			}
		}
	}
	buf_release(&text);
	return v;
}

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct slot {
	CURL *easy;
	size_t index;
	double due; /* when the return was due to go (paced), or sent */
};

/* Sends uploads[first .. first + count) over CONNECTIONS connections: as fast as the hub
 * answers (rate 0), or one every 1/rate s. */
static void load(struct bench *b, size_t first, size_t count, double rate, struct run *ret)
{
	struct curl_slist *headers = NULL;
	struct slot slots[CONNECTIONS];
	char url[128];
	double *latency, t0;
	size_t next = 0, done = 0, busy = 0;
	CURLM *multi = curl_multi_init();

	memset(ret, 0, sizeof(*ret));
	latency = calloc(count ? count : 1, sizeof(*latency));
	if (!multi || !latency)
		fail("out of memory");
	snprintf(url, sizeof(url), "%s/v1/submissions", b->url);
	headers = curl_slist_append(headers, "Content-Type: application/jose+json");
	headers = curl_slist_append(headers, "Content-Encoding: gzip");
	headers = curl_slist_append(headers, "Expect:");
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)CONNECTIONS);
	for (int i = 0; i < CONNECTIONS; i++) {
		slots[i].easy = curl_easy_init();
		slots[i].index = SIZE_MAX;
		curl_easy_setopt(slots[i].easy, CURLOPT_URL, url);
		curl_easy_setopt(slots[i].easy, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(slots[i].easy, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(slots[i].easy, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(slots[i].easy, CURLOPT_TIMEOUT, 60L);
		curl_easy_setopt(slots[i].easy, CURLOPT_PRIVATE, &slots[i]);
	}
	ret->client_cpu_s = cpu_seconds();
	t0 = bench_now_seconds();
	while (done < count) {
		double now = bench_now_seconds();
		int running, queued;
		long wait_ms = 100;
		CURLMsg *msg;

		for (int i = 0; i < CONNECTIONS && next < count; i++) {
			double due = rate > 0 ? t0 + (double)next / rate : now;

			if (slots[i].index != SIZE_MAX)
				continue;
			if (due > now) {
				wait_ms = (long)((due - now) * 1000) + 1;
				break;
			}
			slots[i].index = next;
			slots[i].due = due;
			curl_easy_setopt(slots[i].easy, CURLOPT_POSTFIELDS,
			                 b->uploads[first + next].body);
			curl_easy_setopt(slots[i].easy, CURLOPT_POSTFIELDSIZE,
			                 (long)b->uploads[first + next].len);
			curl_multi_add_handle(multi, slots[i].easy);
			next++;
			busy++;
		}
		curl_multi_perform(multi, &running);
		while ((msg = curl_multi_info_read(multi, &queued))) {
			struct slot *s = NULL;
			long status = 0;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
			latency[done] = (bench_now_seconds() - s->due) * 1000;
			if (msg->data.result == CURLE_OK && status == 201) {
				ret->accepted++;
			} else {
				if (!ret->other)
					ret->first_other =
					        msg->data.result == CURLE_OK ? status : -1;
				ret->other++;
			}
			curl_multi_remove_handle(multi, msg->easy_handle);
			s->index = SIZE_MAX;
			done++;
			busy--;
		}
		if (done < count && (busy > 0 || next < count))
			curl_multi_poll(multi, NULL, 0, busy > 0 && wait_ms > 5 ? 5 : (int)wait_ms,
			                NULL);
	}
	ret->seconds = bench_now_seconds() - t0;
	ret->client_cpu_s = cpu_seconds() - ret->client_cpu_s;
	ret->sent = count;
	qsort(latency, count, sizeof(*latency), compare_double);
	if (count) {
		ret->p50_ms = latency[(count - 1) / 2];
		ret->p99_ms = latency[(size_t)((double)(count - 1) * 0.99)];
	}
	for (int i = 0; i < CONNECTIONS; i++)
		curl_easy_cleanup(slots[i].easy);
	curl_multi_cleanup(multi);
	curl_slist_free_all(headers);
	free(latency);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static const char *verdict(int met)
{
	return met ? "met" : "NOT MET";
}

int main(int argc, char **argv)
{
	struct bench b;
	struct run full, paced;
	char err[1024], path[4200], tmpl[4000];
	long returns = env_long("BENCH_HUB_RETURNS", 20000);
	double rate = (double)env_long("BENCH_HUB_RATE", 2000);
	long paced_seconds = env_long("BENCH_HUB_PACED_SECONDS", 5);
	size_t paced_count = (size_t)(rate * (double)paced_seconds);
	double ceiling, fsync_rate, throughput, groups0, items0, groups1, items1, groups2, items2;
	double group_full, group_paced, rss;
	FILE *out;

	memset(&b, 0, sizeof(b));
	b.results = argc > 1 ? argv[1] : "bench/results";
	b.hub_binary = env_text("COUNTY_HUB", "county-hub/county-hub");
	b.schemas = env_text("BENCH_SCHEMAS", "schemas");
	if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    clock_init(&b.clock, NULL, err, sizeof(err)) < 0)
		fail("cannot start libsodium or libcurl");
	if (access(b.hub_binary, X_OK) != 0)
		fail("no county-hub binary: run make first, or set COUNTY_HUB");
	snprintf(path, sizeof(path), "%s/forms", b.schemas);
	if (form_set_load_dir(path, &b.forms, err, sizeof(err)) < 0)
		fail(err);
	snprintf(path, sizeof(path), "%s/submission.schema.json", b.schemas);
	if (schema_load_file(path, &b.envelope, err, sizeof(err)) < 0)
		fail(err);
	b.form = form_set_find(b.forms, "rectification");
	if (!b.form)
		fail("no rectification form");
	snprintf(tmpl, sizeof(tmpl), "%s/hub-bench-XXXXXX", env_text("BENCH_TMPDIR", "/var/tmp"));
	if (!mkdtemp(tmpl))
		fail("cannot make the bench folder");
	snprintf(b.dir, sizeof(b.dir), "%s/hub", tmpl);

	printf("hub: setting up %d schools, signing %ld + %zu returns ...\n", SCHOOLS, returns,
	       paced_count);
	fflush(stdout);
	make_hub(&b);
	make_uploads(&b, (size_t)returns + paced_count);
	ceiling = measure_ceiling(&b);
	fsync_rate = measure_fsync(&b);

	start_hub(&b);
	groups0 = metric(&b, "county_hub_commit_group_size_count");
	items0 = metric(&b, "county_hub_commit_group_size_sum");
	load(&b, 0, (size_t)returns, 0, &full);
	groups1 = metric(&b, "county_hub_commit_group_size_count");
	items1 = metric(&b, "county_hub_commit_group_size_sum");
	load(&b, (size_t)returns, paced_count, rate, &paced);
	groups2 = metric(&b, "county_hub_commit_group_size_count");
	items2 = metric(&b, "county_hub_commit_group_size_sum");
	rss = peak_rss(b.hub);
	stop_hub(&b);
	nftw(tmpl, remove_entry, 16, FTW_DEPTH | FTW_PHYS);

	throughput = full.seconds > 0 ? (double)full.accepted / full.seconds : 0;
	group_full = groups1 > groups0 ? (items1 - items0) / (groups1 - groups0) : 0;
	group_paced = groups2 > groups1 ? (items2 - items1) / (groups2 - groups1) : 0;

	printf("hub: %d schools, returns of %zu bytes signed (%zu gzipped), %d connections, "
	       "loopback, %s\n",
	       SCHOOLS, b.jws_len, b.uploads[0].len, CONNECTIONS, HUB_CLOCK);
	printf("  full load: %zu returns in %.2f s, %zu accepted (201), %zu other", full.sent,
	       full.seconds, full.accepted, full.other);
	if (full.other)
		printf(" (the first: %ld)", full.first_other);
	printf("; the load generator used %.0f%% of a core\n",
	       full.seconds > 0 ? 100 * full.client_cpu_s / full.seconds : 0);
	printf("  accepted durable returns/s %9.0f   accept-path ceiling (1 core) %7.0f/s   "
	       "ratio %5.2f   target >= 0.50: %s\n",
	       throughput, ceiling, ceiling > 0 ? throughput / ceiling : 0,
	       verdict(ceiling > 0 && throughput >= 0.5 * ceiling));
	printf("  accepted durable returns/s %9.0f   one fsync per upload        %7.0f/s   "
	       "ratio %5.1f   target >= 10: %s\n",
	       throughput, fsync_rate, fsync_rate > 0 ? throughput / fsync_rate : 0,
	       verdict(fsync_rate > 0 && throughput >= 10 * fsync_rate));
	printf("  latency at full load       p50 %6.1f ms   p99 %6.1f ms\n", full.p50_ms,
	       full.p99_ms);
	printf("  paced at %.0f returns/s     p50 %6.1f ms   p99 %6.1f ms   (%zu accepted in "
	       "%.2f s: %.0f/s)   target p99 <= 50 ms: %s\n",
	       rate, paced.p50_ms, paced.p99_ms, paced.accepted, paced.seconds,
	       paced.seconds > 0 ? (double)paced.accepted / paced.seconds : 0,
	       verdict(paced.p99_ms <= 50 && paced.other == 0));
	printf("  average group commit       %6.1f uploads at full load, %.1f paced\n", group_full,
	       group_paced);
	printf("  peak RSS of the hub        %6.1f MB   target <= 64 MB: %s\n", rss / 1e6,
	       verdict(rss > 0 && rss <= 64e6));

	snprintf(path, sizeof(path), "%s/hub.json", b.results);
	out = fopen(path, "w");
	if (out) {
		fprintf(out,
		        "{\"benchmark\":\"hub\",\"schools\":%d,\"connections\":%d,"
		        "\"return_bytes\":%zu,\"gzip_bytes\":%zu,"
		        "\"full_load\":{\"returns\":%zu,\"accepted\":%zu,\"other\":%zu,"
		        "\"seconds\":%.3f,\"accepted_per_second\":%.0f,\"p50_ms\":%.2f,"
		        "\"p99_ms\":%.2f,\"average_group_commit\":%.2f},"
		        "\"paced\":{\"rate\":%.0f,\"returns\":%zu,\"accepted\":%zu,\"other\":%zu,"
		        "\"seconds\":%.3f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,"
		        "\"average_group_commit\":%.2f},"
		        "\"peak_rss_bytes\":%.0f,"
		        "\"baselines\":{\"accept_path_single_core_per_second\":%.0f,"
		        "\"fsync_per_second\":%.0f},"
		        "\"targets\":["
		        "{\"figure\":\"accepted/s / accept-path ceiling\",\"value\":%.3f,"
		        "\"target\":\">= 0.5\",\"met\":%s},"
		        "{\"figure\":\"accepted/s / fsync rate\",\"value\":%.2f,"
		        "\"target\":\">= 10\",\"met\":%s},"
		        "{\"figure\":\"p99 ms at the paced rate\",\"value\":%.2f,"
		        "\"target\":\"<= 50\",\"met\":%s},"
		        "{\"figure\":\"peak RSS MB\",\"value\":%.1f,\"target\":\"<= "
		        "64\",\"met\":%s}]}\n",
		        SCHOOLS, CONNECTIONS, b.jws_len, b.uploads[0].len, full.sent, full.accepted,
		        full.other, full.seconds, throughput, full.p50_ms, full.p99_ms, group_full,
		        rate, paced.sent, paced.accepted, paced.other, paced.seconds, paced.p50_ms,
		        paced.p99_ms, group_paced, rss, ceiling, fsync_rate,
		        ceiling > 0 ? throughput / ceiling : 0,
		        ceiling > 0 && throughput >= 0.5 * ceiling ? "true" : "false",
		        fsync_rate > 0 ? throughput / fsync_rate : 0,
		        fsync_rate > 0 && throughput >= 10 * fsync_rate ? "true" : "false",
		        paced.p99_ms, paced.p99_ms <= 50 && paced.other == 0 ? "true" : "false",
		        rss / 1e6, rss > 0 && rss <= 64e6 ? "true" : "false");
		fclose(out);
	} else {
		fprintf(stderr, "hub: cannot write '%s'\n", path);
	}

	for (size_t i = 0; i < b.uploads_count; i++)
		free(b.uploads[i].body);
	free(b.uploads);
	for (int i = 0; i < SCHOOLS; i++)
		jwk_release(&b.schools[i].key);
	free(b.schools);
	schema_free(b.envelope);
	form_set_free(b.forms);
	curl_global_cleanup();
	return 0;
}
