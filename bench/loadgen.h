/* The load generator of the county-hub benchmark, and what a benchmark needs to run a real
 * `county-hub serve` of its own: a hub folder with 1,000 schools in its roster (keys made
 * here), pre-signed and pre-gzipped returns of about 4 KB (a rectification ledger of four
 * items) round robin over those schools, and a libcurl multi client that posts them over
 * up to LOADGEN_CONNECTIONS keep-alive connections on loopback, either as fast as the hub
 * answers or paced (open loop). Shared by bench/hub and bench/agent so that both measure the same
 * thing; header-only because the Makefile builds each bench/NAME.c into a program of its
 * own. A benchmark is a program of its own too: a setup failure prints why and exits. */
#ifndef BENCH_LOADGEN_H
#define BENCH_LOADGEN_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "bench.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/form.h"
#include "common/gzip.h"
#include "common/ids.h"
#include "common/jwk.h"
#include "common/jws.h"

#define LOADGEN_COUNTY_ID "654201"
#define LOADGEN_SCHOOLS 1000
#define LOADGEN_CONNECTIONS 64
#define LOADGEN_HUB_CLOCK "2024-06-01T10:00:00+08:00" /* rectification 2024-05 is due 06-05 */

struct loadgen_school {
	char id[11];
	struct jwk key;
};

struct loadgen_upload {
	char *body; /* gzipped JWS */
	size_t len;
};

struct loadgen {
	const char *hub_binary; /* borrowed */
	const char *schemas;    /* borrowed */
	char dir[4096];         /* the hub's folder; its log is dir + ".log" */
	char url[64];           /* http://127.0.0.1:PORT once the hub is started */
	pid_t hub;
	struct loadgen_school *schools; /* LOADGEN_SCHOOLS */
	struct loadgen_upload *uploads;
	size_t uploads_count;
	size_t jws_len; /* of the first upload, signed */
	struct form_set *forms;
	const struct form *form; /* rectification, in forms */
	struct clock clock;
};

/* One load run's outcome. */
struct loadgen_run {
	size_t sent, accepted, other;
	long first_other; /* the first status that was not 201 (-1: no answer) */
	double seconds;
	double p50_ms, p99_ms;
	double client_cpu_s; /* CPU the load generator itself used */
};

/* Loads the forms of schemas; dir is the hub's folder to be (it must not exist yet). */
static inline void loadgen_init(struct loadgen *lg, const char *hub_binary, const char *schemas,
                                const char *dir)
{
	char err[1024], path[4200];

	memset(lg, 0, sizeof(*lg));
	lg->hub_binary = hub_binary;
	lg->schemas = schemas;
	if (strlen(dir) >= sizeof(lg->dir) - 64)
		bench_fail("bench", "the bench folder's path is too long");
	memcpy(lg->dir, dir, strlen(dir) + 1);
	if (access(hub_binary, X_OK) != 0)
		bench_fail("bench", "no county-hub binary: run make first, or set COUNTY_HUB");
	if (clock_init(&lg->clock, NULL, err, sizeof(err)) < 0)
		bench_fail("bench", err);
	snprintf(path, sizeof(path), "%s/forms", schemas);
	if (form_set_load_dir(path, &lg->forms, err, sizeof(err)) < 0)
		bench_fail("bench", err);
	lg->form = form_set_find(lg->forms, "rectification");
	if (!lg->form)
		bench_fail("bench", "no rectification form");
}

/* Runs `county-hub argv...` (argv[0] is the first word after the binary, NULL-terminated,
 * at most 14 words) at the hub's clock; the exit status, or -1. */
static inline int loadgen_hub_command(const struct loadgen *lg, const char *const words[])
{
	const char *argv[16];
	char log[4200];
	int n = 0;

	argv[n++] = lg->hub_binary;
	while (words[n - 1] && n < 15) {
		argv[n] = words[n - 1];
		n++;
	}
	argv[n] = NULL;
	snprintf(log, sizeof(log), "%s.log", lg->dir);
	return bench_run(argv, LOADGEN_HUB_CLOCK, log);
}

/* The hub's folder: `county-hub init`, then the roster of LOADGEN_SCHOOLS schools with new
 * keys (`county-hub roster import`). */
static inline void loadgen_make_hub(struct loadgen *lg)
{
	char err[256], csv[4200], x[64];
	const char *init[] = {"init", "--dir", lg->dir, "--county-id", LOADGEN_COUNTY_ID, NULL};
	const char *import[] = {"roster", "import", "--dir", lg->dir, csv, NULL};
	FILE *f;

	if (loadgen_hub_command(lg, init) != 0)
		bench_fail("bench", "county-hub init failed (see the .log beside the hub folder)");
	lg->schools = calloc(LOADGEN_SCHOOLS, sizeof(*lg->schools));
	if (!lg->schools)
		bench_fail("bench", "out of memory");
	snprintf(csv, sizeof(csv), "%s/roster.csv", lg->dir);
	f = fopen(csv, "w");
	if (!f)
		bench_fail("bench", "cannot write the roster");
	fprintf(f, "school_id,name,type,key_x\n");
	for (int i = 0; i < LOADGEN_SCHOOLS; i++) {
		struct loadgen_school *s = &lg->schools[i];

		snprintf(s->id, sizeof(s->id), "65420%05d", i + 1);
		if (jwk_generate(&s->key, s->id, err, sizeof(err)) < 0)
			bench_fail("bench", err);
		sodium_bin2base64(x, sizeof(x), s->key.public_key, sizeof(s->key.public_key),
		                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		fprintf(f, "%s,第%d中学,junior,%s\n", s->id, i + 1, x);
	}
	if (fclose(f) != 0)
		bench_fail("bench", "cannot write the roster");
	if (loadgen_hub_command(lg, import) != 0)
		bench_fail("bench", "county-hub roster import failed (see the .log)");
}

/* The key of a loadgen school for a submission_context's lookup_key (data: the loadgen). */
static inline int loadgen_lookup_key(void *data, const char *kid, struct jwk *ret_key, char *err,
                                     size_t errlen)
{
	const struct loadgen *lg = data;
	long i = strtol(kid + 5, NULL, 10) - 1;

	if (strlen(kid) != 10 || strncmp(kid, "65420", 5) != 0 || i < 0 || i >= LOADGEN_SCHOOLS) {
		snprintf(err, errlen, "unknown school \"%s\"", kid);
		return -ENOKEY;
	}
	*ret_key = lg->schools[i].key;
	ret_key->has_private = 0;
	return 0;
}

/* One return of school s: a ledger of four items, about 4 KB signed. */
static inline char *loadgen_payload(struct loadgen *lg, const struct loadgen_school *s)
{
	static const char text[] = "教学楼东侧楼梯间存在监控盲区，课间巡查力量不足，"
	                           "寄宿生夜间管理需要加强，已明确责任岗位并限期整改，"
	                           "由安全办每周复查一次，整改情况在校务公开栏公示。";
	static const char *const categories[] = {"facility", "supervision", "education",
	                                         "mechanism"};
	char id[IDS_UUID_LEN + 1];
	struct buf b;

	buf_init(&b, 64 * 1024);
	if (ids_uuid7(&lg->clock, id) < 0)
		bench_fail("bench", "cannot make an id");
	if (buf_printf(&b,
	               "{\"form\":\"rectification\",\"form_version\":%d,\"submission_id\":\"%s\","
	               "\"school_id\":\"%s\",\"county_id\":\"" LOADGEN_COUNTY_ID
	               "\",\"period\":\"2024-05\","
	               "\"created_at\":\"2024-06-01T09:00:00+08:00\",\"supersedes\":null,"
	               "\"data\":{\"as_of\":\"2024-05-31\",\"items\":[",
	               lg->form->version, id, s->id) < 0)
		bench_fail("bench", "out of memory");
	for (int k = 0; k < 4; k++)
		if (buf_printf(&b,
		               "%s{\"item_id\":\"R-%03d\",\"found_on\":\"2024-05-0%d\","
		               "\"source\":\"screening\",\"category\":\"%s\",\"problem\":\"%s\","
		               "\"measure\":\"%s\",\"responsible_role\":\"safety_officer\","
		               "\"deadline\":\"2024-06-30\",\"status\":\"in_progress\","
		               "\"completed_on\":null}",
		               k ? "," : "", k + 1, k + 1, categories[k], text, text) < 0)
			bench_fail("bench", "out of memory");
	if (buf_puts(&b, "]}}") < 0)
		bench_fail("bench", "out of memory");
	return buf_detach(&b, NULL);
}

/* Signs and gzips count returns, round robin over the schools. */
static inline void loadgen_make_uploads(struct loadgen *lg, size_t count)
{
	struct gzip_compressor gz;
	struct buf wire;
	char err[256];

	lg->uploads = calloc(count ? count : 1, sizeof(*lg->uploads));
	if (!lg->uploads || gzip_compressor_init(&gz, 6) < 0)
		bench_fail("bench", "out of memory");
	buf_init(&wire, 1 << 20);
	for (size_t i = 0; i < count; i++) {
		const struct loadgen_school *s = &lg->schools[i % LOADGEN_SCHOOLS];
		char *payload = loadgen_payload(lg, s), *jws = NULL;
		size_t jws_len;

		if (!payload || jws_sign(&s->key, s->id, payload, strlen(payload), &jws, &jws_len,
		                         err, sizeof(err)) < 0)
			bench_fail("bench", "cannot sign a return");
		if (i == 0)
			lg->jws_len = jws_len;
		buf_reset(&wire);
		if (gzip_compress(&gz, jws, jws_len, &wire) < 0)
			bench_fail("bench", "cannot gzip a return");
		lg->uploads[i].len = wire.len;
		lg->uploads[i].body = malloc(wire.len);
		if (!lg->uploads[i].body)
			bench_fail("bench", "out of memory");
		memcpy(lg->uploads[i].body, wire.data, wire.len);
		free(jws);
		free(payload);
	}
	lg->uploads_count = count;
	buf_release(&wire);
	gzip_compressor_release(&gz);
}

static inline size_t loadgen_discard(char *data, size_t size, size_t n, void *userdata)
{
	(void)data, (void)size, (void)userdata;
	return n;
}

static inline size_t loadgen_keep(char *data, size_t size, size_t n, void *userdata)
{
	(void)size;
	return buf_append(userdata, data, n) < 0 ? 0 : n;
}

/* GET path of the hub into out (may be NULL); the HTTP status, or -1. */
static inline long loadgen_get(const struct loadgen *lg, const char *path, struct buf *out)
{
	char url[256];
	CURL *c = curl_easy_init();
	long status = -1;

	if (!c)
		return -1;
	snprintf(url, sizeof(url), "%s%s", lg->url, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, out ? loadgen_keep : loadgen_discard);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	return status;
}

/* Sets the hub's URL to port (0: a free one); loadgen_start_hub listens there. */
static inline void loadgen_set_port(struct loadgen *lg, int port)
{
	snprintf(lg->url, sizeof(lg->url), "http://127.0.0.1:%d", port ? port : bench_free_port());
}

/* `county-hub serve` at the hub's clock on the port of lg->url (loadgen_set_port first,
 * or a free port is picked), and waits until /healthz answers. */
static inline void loadgen_start_hub(struct loadgen *lg)
{
	char listen[64], log[4200];
	double t0;
	int fd;

	if (!lg->url[0])
		loadgen_set_port(lg, 0);
	snprintf(listen, sizeof(listen), "%s", lg->url + strlen("http://"));
	snprintf(log, sizeof(log), "%s.log", lg->dir);
	lg->hub = fork();
	if (lg->hub < 0)
		bench_fail("bench", "cannot fork");
	if (lg->hub == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		setenv("RETURNS_CLOCK", LOADGEN_HUB_CLOCK, 1);
		execl(lg->hub_binary, "county-hub", "serve", "--dir", lg->dir, "--schemas-dir",
		      lg->schemas, "--listen", listen, (char *)NULL);
		_exit(127);
	}
	t0 = bench_now_seconds();
	while (loadgen_get(lg, "/healthz", NULL) != 200) {
		if (bench_now_seconds() - t0 > 15 || waitpid(lg->hub, NULL, WNOHANG) != 0)
			bench_fail("bench",
			           "the hub did not start (see the .log beside its folder)");
		usleep(20000);
	}
}

/* SIGTERM, then SIGKILL after 20 s. */
static inline void loadgen_stop_hub(struct loadgen *lg)
{
	double t0 = bench_now_seconds();

	if (lg->hub <= 0)
		return;
	kill(lg->hub, SIGTERM);
	while (waitpid(lg->hub, NULL, WNOHANG) == 0) {
		if (bench_now_seconds() - t0 > 20) {
			kill(lg->hub, SIGKILL);
			waitpid(lg->hub, NULL, 0);
			break;
		}
		usleep(20000);
	}
	lg->hub = 0;
}

/* A counter or gauge of the hub's /metrics, or -1. */
static inline double loadgen_metric(const struct loadgen *lg, const char *name)
{
	struct buf text;
	size_t n = strlen(name);
	double v = -1;

	buf_init(&text, 1 << 20);
	if (loadgen_get(lg, "/metrics", &text) == 200 && text.data) {
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

static inline int loadgen_compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct loadgen_slot {
	CURL *easy;
	size_t index;
	double due; /* when the return was due to go (paced), or sent */
};

/* Posts uploads[first .. first + count) to the hub over connections keep-alive
 * connections (1 to LOADGEN_CONNECTIONS): as fast as the hub answers (rate 0), or one every
 * 1/rate s (open loop: latency counts from the moment a return was due, so a stalled hub
 * cannot hide behind a slowed client). Only 201 counts as accepted. */
static inline void loadgen_load(struct loadgen *lg, size_t first, size_t count, double rate,
                                int connections, struct loadgen_run *ret)
{
	struct curl_slist *headers = NULL;
	struct loadgen_slot slots[LOADGEN_CONNECTIONS];
	char url[128];
	double *latency, t0;
	size_t next = 0, done = 0, busy = 0;
	CURLM *multi = curl_multi_init();

	if (first + count > lg->uploads_count)
		bench_fail("bench", "more returns asked for than were made");
	if (connections < 1 || connections > LOADGEN_CONNECTIONS)
		bench_fail("bench", "connections out of range");
	memset(ret, 0, sizeof(*ret));
	latency = calloc(count ? count : 1, sizeof(*latency));
	if (!multi || !latency)
		bench_fail("bench", "out of memory");
	snprintf(url, sizeof(url), "%s/v1/submissions", lg->url);
	headers = curl_slist_append(headers, "Content-Type: application/jose+json");
	headers = curl_slist_append(headers, "Content-Encoding: gzip");
	headers = curl_slist_append(headers, "Expect:");
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)connections);
	for (int i = 0; i < connections; i++) {
		slots[i].easy = curl_easy_init();
		if (!slots[i].easy)
			bench_fail("bench", "out of memory");
		slots[i].index = SIZE_MAX;
		curl_easy_setopt(slots[i].easy, CURLOPT_URL, url);
		curl_easy_setopt(slots[i].easy, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(slots[i].easy, CURLOPT_WRITEFUNCTION, loadgen_discard);
		curl_easy_setopt(slots[i].easy, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(slots[i].easy, CURLOPT_TIMEOUT, 60L);
		curl_easy_setopt(slots[i].easy, CURLOPT_PRIVATE, &slots[i]);
	}
	ret->client_cpu_s = bench_cpu_seconds();
	t0 = bench_now_seconds();
	while (done < count) {
		double now = bench_now_seconds();
		int running, queued;
		CURLMsg *msg;

		for (int i = 0; i < connections && next < count; i++) {
			double due = rate > 0 ? t0 + (double)next / rate : now;

			if (slots[i].index != SIZE_MAX)
				continue;
			if (due > now)
				break;
			slots[i].index = next;
			slots[i].due = due;
			curl_easy_setopt(slots[i].easy, CURLOPT_POSTFIELDS,
			                 lg->uploads[first + next].body);
			curl_easy_setopt(slots[i].easy, CURLOPT_POSTFIELDSIZE,
			                 (long)lg->uploads[first + next].len);
			curl_multi_add_handle(multi, slots[i].easy);
			next++;
			busy++;
		}
		curl_multi_perform(multi, &running);
		while ((msg = curl_multi_info_read(multi, &queued))) {
			struct loadgen_slot *s = NULL;
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
		if (done < count) {
			/* sleep until a socket stirs, or the next return is due on a free
			 * connection; not at all when one can go now */
			int timeout_ms = 100;

			if (next < count && busy < (size_t)connections) {
				double wait =
				        rate > 0 ? t0 + (double)next / rate - bench_now_seconds()
				                 : 0;

				timeout_ms = wait <= 0    ? 0
				             : wait < 0.1 ? (int)(wait * 1000) + 1
				                          : 100;
			}
			if (timeout_ms > 0)
				curl_multi_poll(multi, NULL, 0, timeout_ms, NULL);
		}
	}
	ret->seconds = bench_now_seconds() - t0;
	ret->client_cpu_s = bench_cpu_seconds() - ret->client_cpu_s;
	ret->sent = count;
	qsort(latency, count, sizeof(*latency), loadgen_compare_double);
	if (count) {
		ret->p50_ms = latency[(count - 1) / 2];
		ret->p99_ms = latency[(size_t)((double)(count - 1) * 0.99)];
	}
	for (int i = 0; i < connections; i++)
		curl_easy_cleanup(slots[i].easy);
	curl_multi_cleanup(multi);
	curl_slist_free_all(headers);
	free(latency);
}

/* Accepted returns per second of a run. */
static inline double loadgen_rate(const struct loadgen_run *r)
{
	return r->seconds > 0 ? (double)r->accepted / r->seconds : 0;
}

/* Stops the hub if it runs and frees what lg holds (not its folder). */
static inline void loadgen_release(struct loadgen *lg)
{
	loadgen_stop_hub(lg);
	for (size_t i = 0; i < lg->uploads_count; i++)
		free(lg->uploads[i].body);
	free(lg->uploads);
	if (lg->schools)
		for (int i = 0; i < LOADGEN_SCHOOLS; i++)
			jwk_release(&lg->schools[i].key);
	free(lg->schools);
	form_set_free(lg->forms);
	memset(lg, 0, sizeof(*lg));
}

#endif
