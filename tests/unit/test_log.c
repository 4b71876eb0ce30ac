/* Unit tests for common/log: the lines it writes to standard error (fd 2 is pointed at a
 * temporary file while a test logs). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/datetime.h"
#include "common/log.h"
#include "common/banned.h"

struct capture {
	FILE *file;
	int saved;
};

static void capture_start(struct capture *c)
{
	fflush(stderr);
	c->file = tmpfile();
	assert_non_null(c->file);
	c->saved = dup(STDERR_FILENO);
	assert_true(c->saved >= 0);
	assert_true(dup2(fileno(c->file), STDERR_FILENO) >= 0);
}

/* Restores fd 2 and returns what was written (caller frees). */
static char *capture_end(struct capture *c, size_t *ret_len)
{
	char *text;
	long n;

	assert_true(dup2(c->saved, STDERR_FILENO) >= 0);
	close(c->saved);
	assert_int_equal(fseek(c->file, 0, SEEK_END), 0);
	n = ftell(c->file);
	assert_true(n >= 0);
	rewind(c->file);
	text = malloc((size_t)n + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)n, c->file), (size_t)n);
	text[n] = '\0';
	fclose(c->file);
	if (ret_len)
		*ret_len = (size_t)n;
	return text;
}

static void fixed_clock(struct clock *c, const char *instant)
{
	char err[128];

	if (clock_init(c, instant, err, sizeof(err)) != 0)
		fail_msg("clock_init: %s", err);
}

static void test_parse_level(void **state)
{
	static const struct {
		const char *name;
		enum log_level level;
	} ok[] = {
	        {"error", LOG_LEVEL_ERROR},
	        {"warning", LOG_LEVEL_WARNING},
	        {"info", LOG_LEVEL_INFO},
	        {"debug", LOG_LEVEL_DEBUG},
	};
	static const char *const bad[] = {"",       "ERROR", "warn",   "info ",
	                                  " debug", "trace", "errorx", "Info"};
	enum log_level l;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		l = (enum log_level)99;
		assert_int_equal(log_parse_level(ok[i].name, &l), 0);
		assert_int_equal(l, ok[i].level);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		l = (enum log_level)99;
		assert_int_equal(log_parse_level(bad[i], &l), -EINVAL);
		assert_int_equal(l, 99); /* untouched */
	}
}

static void test_line_format(void **state)
{
	struct clock c;
	struct capture cap;
	char want[512], *got;

	(void)state;
	fixed_clock(&c, "2024-05-03T09:12:00.123+08:00");
	log_setup("county-hub", LOG_LEVEL_DEBUG, &c);
	assert_int_equal(log_get_level(), LOG_LEVEL_DEBUG);
	capture_start(&cap);
	log_info("accepted submission \"%s\"", "0190f6c2");
	log_error("failed to open '%s'", "/x");
	log_warning("disk at %d%%, retrying in 4 s", 95);
	log_debug("debug %u", 7u);
	log_msg(LOG_LEVEL_INFO, "%s", "");
	got = capture_end(&cap, NULL);
	snprintf(want, sizeof(want),
	         "2024-05-03T09:12:00.123+08:00 county-hub[%ld] info: accepted submission "
	         "\"0190f6c2\"\n"
	         "2024-05-03T09:12:00.123+08:00 county-hub[%ld] error: failed to open '/x'\n"
	         "2024-05-03T09:12:00.123+08:00 county-hub[%ld] warning: disk at 95%%, retrying "
	         "in 4 s\n"
	         "2024-05-03T09:12:00.123+08:00 county-hub[%ld] debug: debug 7\n"
	         "2024-05-03T09:12:00.123+08:00 county-hub[%ld] info: \n",
	         (long)getpid(), (long)getpid(), (long)getpid(), (long)getpid(), (long)getpid());
	assert_string_equal(got, want);
	free(got);
}

/* Instants are shown in China Standard Time whatever offset the clock was given in. */
static void test_shanghai_time(void **state)
{
	struct clock c;
	struct capture cap;
	char want[256], *got;

	(void)state;
	fixed_clock(&c, "2024-02-29T23:30:00Z");
	log_setup("school-agent", LOG_LEVEL_INFO, &c);
	capture_start(&cap);
	log_info("x");
	got = capture_end(&cap, NULL);
	snprintf(want, sizeof(want), "2024-03-01T07:30:00+08:00 school-agent[%ld] info: x\n",
	         (long)getpid());
	assert_string_equal(got, want);
	free(got);
}

static void test_level_filter(void **state)
{
	struct clock c;
	struct capture cap;
	char *got;

	(void)state;
	fixed_clock(&c, "2024-05-03T09:12:00+08:00");
	log_setup("p", LOG_LEVEL_WARNING, &c);
	assert_int_equal(log_get_level(), LOG_LEVEL_WARNING);
	capture_start(&cap);
	log_debug("d");
	log_info("i");
	log_warning("w");
	log_error("e");
	got = capture_end(&cap, NULL);
	assert_null(strstr(got, " debug: "));
	assert_null(strstr(got, " info: "));
	assert_non_null(strstr(got, "] warning: w\n"));
	assert_non_null(strstr(got, "] error: e\n"));
	free(got);

	log_setup("p", LOG_LEVEL_ERROR, &c);
	capture_start(&cap);
	log_warning("w");
	log_error("e");
	got = capture_end(&cap, NULL);
	assert_null(strstr(got, "warning"));
	assert_non_null(strstr(got, "] error: e\n"));
	free(got);
}

static void test_errno(void **state)
{
	struct clock c;
	struct capture cap;
	char want[1024], *got;
	long pid = (long)getpid();
	int r1, r2, r3, r4, r5;

	(void)state;
	fixed_clock(&c, "2024-05-03T09:12:00+08:00");
	log_setup("t", LOG_LEVEL_WARNING, &c);
	capture_start(&cap);
	r1 = log_errno(-ENOENT, "failed to open '%s'", "a.jwk");
	r2 = log_errno(EACCES, "failed to write '%s'", "b");
	r3 = log_warning_errno(-EIO, "store busy, retrying in %d s", 4);
	/* below the level: nothing written, the value still comes back */
	r4 = log_errno_at(LOG_LEVEL_INFO, -ENOMEM, "not shown");
	r5 = log_errno_at(LOG_LEVEL_DEBUG, EPERM, "not shown");
	got = capture_end(&cap, NULL);
	assert_int_equal(r1, -ENOENT);
	assert_int_equal(r2, -EACCES);
	assert_int_equal(r3, -EIO);
	assert_int_equal(r4, -ENOMEM);
	assert_int_equal(r5, -EPERM);
	snprintf(want, sizeof(want),
	         "2024-05-03T09:12:00+08:00 t[%ld] error: failed to open 'a.jwk': %s\n"
	         "2024-05-03T09:12:00+08:00 t[%ld] error: failed to write 'b': %s\n"
	         "2024-05-03T09:12:00+08:00 t[%ld] warning: store busy, retrying in 4 s: %s\n",
	         pid, strerror(ENOENT), pid, strerror(EACCES), pid, strerror(EIO));
	assert_string_equal(got, want);
	free(got);
}

/* A line longer than the line buffer is cut, still ends in one newline, and is written
 * whole. */
static void test_long_line(void **state)
{
	static char big[10000];
	struct clock c;
	struct capture cap;
	char prefix[128], *got;
	size_t len, newlines = 0;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	fixed_clock(&c, "2024-05-03T09:12:00+08:00");
	log_setup("t", LOG_LEVEL_INFO, &c);
	capture_start(&cap);
	assert_int_equal(log_errno(-ENOENT, "%s", big), -ENOENT);
	log_info("after");
	got = capture_end(&cap, &len);
	for (size_t i = 0; i < len; i++)
		newlines += got[i] == '\n';
	assert_int_equal(newlines, 2);
	snprintf(prefix, sizeof(prefix), "2024-05-03T09:12:00+08:00 t[%ld] error: xxxx",
	         (long)getpid());
	assert_memory_equal(got, prefix, strlen(prefix));
	{
		const char *nl = strchr(got, '\n');

		assert_true(nl - got + 1 <= 4096);
		assert_true(nl - got + 1 >= 4000);
		/* only x's up to the newline */
		for (const char *p = got + strlen(prefix); p < nl; p++)
			assert_int_equal(*p, 'x');
		snprintf(prefix, sizeof(prefix), "2024-05-03T09:12:00+08:00 t[%ld] info: after\n",
		         (long)getpid());
		assert_string_equal(nl + 1, prefix);
	}
	free(got);
}

/* Without a clock, the real time in +08:00. */
static void test_real_clock(void **state)
{
	struct capture cap;
	char *got, *space;
	int64_t ms, now_ms;
	int offset;
	struct timespec ts;

	(void)state;
	log_setup("real", LOG_LEVEL_INFO, NULL);
	capture_start(&cap);
	log_info("now");
	got = capture_end(&cap, NULL);
	clock_gettime(CLOCK_REALTIME, &ts);
	now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	space = strchr(got, ' ');
	assert_non_null(space);
	assert_int_equal(datetime_parse_rfc3339(got, (size_t)(space - got), &ms, &offset), 0);
	assert_int_equal(offset, 480);
	assert_true(ms <= now_ms && ms > now_ms - 10000);
	assert_non_null(strstr(space, " real["));
	assert_non_null(strstr(space, "] info: now\n"));
	free(got);
}

#define THREADS 4
#define LINES_PER_THREAD 300

static void *log_many(void *arg)
{
	int id = (int)(intptr_t)arg;

	for (int i = 0; i < LINES_PER_THREAD; i++)
		log_info("thread %d line %d %s", id, i,
		         "padding padding padding padding padding padding padding padding");
	return NULL;
}

/* Lines from several threads never interleave. */
static void test_threads(void **state)
{
	pthread_t th[THREADS];
	struct clock c;
	struct capture cap;
	char *got, *line, *save = NULL;
	int seen[THREADS] = {0}, lines = 0;

	(void)state;
	fixed_clock(&c, "2024-05-03T09:12:00+08:00");
	log_setup("mt", LOG_LEVEL_INFO, &c);
	capture_start(&cap);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, log_many, (void *)(intptr_t)i), 0);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	got = capture_end(&cap, NULL);
	for (line = strtok_r(got, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char want[256];
		int id, n;

		assert_int_equal(sscanf(strstr(line, "thread "), "thread %d line %d", &id, &n), 2);
		assert_true(id >= 0 && id < THREADS);
		assert_int_equal(n, seen[id]); /* in order per thread */
		seen[id]++;
		snprintf(want, sizeof(want),
		         "2024-05-03T09:12:00+08:00 mt[%ld] info: thread %d line %d padding "
		         "padding padding padding padding padding padding padding",
		         (long)getpid(), id, n);
		assert_string_equal(line, want);
		lines++;
	}
	assert_int_equal(lines, THREADS * LINES_PER_THREAD);
	free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_level),   cmocka_unit_test(test_line_format),
	        cmocka_unit_test(test_shanghai_time), cmocka_unit_test(test_level_filter),
	        cmocka_unit_test(test_errno),         cmocka_unit_test(test_long_line),
	        cmocka_unit_test(test_real_clock),    cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
