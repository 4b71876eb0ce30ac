/* Unit tests for common/fileio. Each test works in its own temporary folder. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/fileio.h"
#include "common/banned.h"

struct tmpdir {
	char path[256];
};

static int setup_dir(void **state)
{
	struct tmpdir *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	snprintf(t->path, sizeof(t->path), "/tmp/test_fileio.XXXXXX");
	if (!mkdtemp(t->path)) {
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static void remove_tree(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	char sub[PATH_MAX];

	if (lstat(path, &st) < 0)
		return;
	if (!S_ISDIR(st.st_mode)) {
		unlink(path);
		return;
	}
	chmod(path, 0700);
	d = opendir(path);
	while (d && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		remove_tree(sub);
	}
	if (d)
		closedir(d);
	rmdir(path);
}

static int teardown_dir(void **state)
{
	struct tmpdir *t = *state;

	remove_tree(t->path);
	free(t);
	return 0;
}

static void path_in(const struct tmpdir *t, const char *name, char out[static PATH_MAX])
{
	snprintf(out, PATH_MAX, "%s/%s", t->path, name);
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* The names in dir, sorted and joined with spaces (without . and ..). */
static void list_dir(const char *dir, char *out, size_t outlen)
{
	struct dirent **names;
	size_t o = 0;
	int n = scandir(dir, &names, NULL, alphasort);

	assert_true(n >= 0);
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (strcmp(names[i]->d_name, ".") != 0 && strcmp(names[i]->d_name, "..") != 0)
			o += (size_t)snprintf(out + o, outlen - o, "%s%s", o ? " " : "",
			                      names[i]->d_name);
		free(names[i]);
	}
	free(names);
}

static void assert_file(const char *path, const char *want, size_t len)
{
	struct buf b;

	buf_init(&b, 1 << 20);
	assert_int_equal(fileio_read(path, &b), 0);
	assert_int_equal(b.len, len);
	if (len)
		assert_memory_equal(b.data, want, len);
	buf_release(&b);
}

static void test_read(void **state)
{
	struct tmpdir *t = *state;
	char path[PATH_MAX];
	struct buf b;

	path_in(t, "f", path);
	write_file(path, "hello\0world", 11);
	buf_init(&b, 100);
	assert_int_equal(fileio_read(path, &b), 0);
	assert_int_equal(b.len, 11);
	assert_memory_equal(b.data, "hello\0world", 12);
	/* appends */
	assert_int_equal(fileio_read(path, &b), 0);
	assert_int_equal(b.len, 22);
	assert_memory_equal(b.data + 11, "hello\0world", 12);
	buf_release(&b);

	/* an empty file */
	path_in(t, "empty", path);
	write_file(path, "", 0);
	buf_init(&b, 0);
	assert_int_equal(fileio_read(path, &b), 0);
	assert_int_equal(b.len, 0);
	buf_release(&b);
}

static void test_read_cap(void **state)
{
	struct tmpdir *t = *state;
	char path[PATH_MAX];
	static char big[200000];
	struct buf b;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('A' + i % 23);
	path_in(t, "big", path);
	write_file(path, big, sizeof(big));

	/* exactly the maximum */
	buf_init(&b, sizeof(big));
	assert_int_equal(fileio_read(path, &b), 0);
	assert_int_equal(b.len, sizeof(big));
	assert_memory_equal(b.data, big, sizeof(big));
	buf_release(&b);

	/* one byte short, after several full chunks went in: out is as it was */
	buf_init(&b, sizeof(big) - 1 + 4);
	assert_int_equal(buf_puts(&b, "keep"), 0);
	assert_int_equal(fileio_read(path, &b), -EMSGSIZE);
	assert_int_equal(b.len, 4);
	assert_string_equal(b.data, "keep");
	/* and still usable */
	assert_int_equal(buf_puts(&b, "!"), 0);
	assert_string_equal(b.data, "keep!");
	buf_release(&b);

	/* a cap in the first chunk, on an empty buffer */
	buf_init(&b, 10);
	assert_int_equal(fileio_read(path, &b), -EMSGSIZE);
	assert_int_equal(b.len, 0);
	assert_true(b.data == NULL || b.data[0] == '\0');
	buf_release(&b);

	/* an endless source ends at the cap too */
	buf_init(&b, 300000);
	assert_int_equal(fileio_read("/dev/zero", &b), -EMSGSIZE);
	assert_int_equal(b.len, 0);
	buf_release(&b);
}

static void test_read_errors(void **state)
{
	struct tmpdir *t = *state;
	char path[PATH_MAX];
	struct buf b;

	buf_init(&b, 100);
	assert_int_equal(buf_puts(&b, "x"), 0);
	path_in(t, "missing", path);
	assert_int_equal(fileio_read(path, &b), -ENOENT);
	path_in(t, "missing/deeper", path);
	assert_int_equal(fileio_read(path, &b), -ENOENT);
	assert_int_equal(fileio_read(t->path, &b), -EISDIR);
	assert_int_equal(b.len, 1);
	assert_string_equal(b.data, "x");
	buf_release(&b);
}

static void check_mode(const struct tmpdir *t, mode_t mask, mode_t mode)
{
	char path[PATH_MAX], listing[256];
	struct stat st;
	mode_t old;

	path_in(t, "out.json", path);
	unlink(path);
	old = umask(mask);
	assert_int_equal(fileio_write_atomic(path, "{}\n", 3, mode), 0);
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	if ((st.st_mode & 07777) != mode)
		fail_msg("umask %03o, mode %04o: got %04o", (unsigned)mask, (unsigned)mode,
		         (unsigned)(st.st_mode & 07777));
	assert_file(path, "{}\n", 3);
	list_dir(t->path, listing, sizeof(listing));
	assert_string_equal(listing, "out.json");
}

static void test_write_mode(void **state)
{
	static const mode_t masks[] = {0, 022, 077, 0777, 002};
	static const mode_t modes[] = {0600, 0644, 0640, 0666};
	struct tmpdir *t = *state;

	for (size_t i = 0; i < sizeof(masks) / sizeof(masks[0]); i++)
		for (size_t j = 0; j < sizeof(modes) / sizeof(modes[0]); j++)
			check_mode(t, masks[i], modes[j]);
}

/* Replacing an existing file gives the new mode, not the old file's. */
static void test_write_mode_of_replaced(void **state)
{
	struct tmpdir *t = *state;
	char path[PATH_MAX];
	struct stat st;

	path_in(t, "key.jwk", path);
	write_file(path, "old", 3);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(fileio_write_atomic(path, "secret", 6, 0600), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_file(path, "secret", 6);
}

static void test_write_replaces(void **state)
{
	struct tmpdir *t = *state;
	char path[PATH_MAX], old_link[PATH_MAX], listing[256];
	static char big[300000];
	struct stat before, after;

	path_in(t, "data", path);
	path_in(t, "old-link", old_link);
	assert_int_equal(fileio_write_atomic(path, "first version", 13, 0644), 0);
	assert_file(path, "first version", 13);
	assert_int_equal(stat(path, &before), 0);
	/* a hard link keeps the old inode: a rename leaves it intact, an in-place rewrite
	 * would not */
	assert_int_equal(link(path, old_link), 0);

	assert_int_equal(fileio_write_atomic(path, "second", 6, 0644), 0);
	assert_file(path, "second", 6);
	assert_file(old_link, "first version", 13);
	assert_int_equal(stat(path, &after), 0);
	assert_true(after.st_ino != before.st_ino);

	/* larger than one write, and empty */
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7);
	assert_int_equal(fileio_write_atomic(path, big, sizeof(big), 0600), 0);
	assert_file(path, big, sizeof(big));
	assert_int_equal(fileio_write_atomic(path, "", 0, 0600), 0);
	assert_file(path, "", 0);
	list_dir(t->path, listing, sizeof(listing));
	assert_string_equal(listing, "data old-link");
}

/* A stale temporary file of an earlier crash (same pid is impossible to fake portably,
 * so: any leftover named like ours) does not confuse a later write. */
static void test_write_over_stale_temp(void **state)
{
	struct tmpdir *t = *state;
	char path[PATH_MAX], stale[PATH_MAX + 32], listing[256];

	path_in(t, "f", path);
	snprintf(stale, sizeof(stale), "%s.tmp.%ld", path, (long)getpid());
	write_file(stale, "garbage garbage garbage", 23);
	assert_int_equal(fileio_write_atomic(path, "ok", 2, 0644), 0);
	assert_file(path, "ok", 2);
	list_dir(t->path, listing, sizeof(listing));
	assert_string_equal(listing, "f");
}

static void test_write_target_is_directory(void **state)
{
	struct tmpdir *t = *state;
	char path[PATH_MAX], inner[PATH_MAX + 8], listing[256];
	int r;

	path_in(t, "adir", path);
	assert_int_equal(mkdir(path, 0755), 0);
	r = fileio_write_atomic(path, "x", 1, 0644);
	assert_true(r == -EISDIR || r == -ENOTEMPTY || r == -EEXIST);
	list_dir(t->path, listing, sizeof(listing));
	assert_string_equal(listing, "adir");
	/* a non-empty folder too */
	snprintf(inner, sizeof(inner), "%s/inner", path);
	write_file(inner, "i", 1);
	r = fileio_write_atomic(path, "x", 1, 0644);
	assert_true(r == -EISDIR || r == -ENOTEMPTY || r == -EEXIST);
	list_dir(t->path, listing, sizeof(listing));
	assert_string_equal(listing, "adir");
	assert_file(inner, "i", 1);
}

static void test_write_missing_folder(void **state)
{
	struct tmpdir *t = *state;
	char path[PATH_MAX], listing[256];

	path_in(t, "nofolder/f", path);
	assert_int_equal(fileio_write_atomic(path, "x", 1, 0644), -ENOENT);
	/* a path through a regular file */
	path_in(t, "plain", path);
	write_file(path, "p", 1);
	path_in(t, "plain/f", path);
	assert_int_equal(fileio_write_atomic(path, "x", 1, 0644), -ENOTDIR);
	list_dir(t->path, listing, sizeof(listing));
	assert_string_equal(listing, "plain");
}

/* Runs fn in a child process (for uid and rlimit changes); the child's exit status is
 * 0 when every check held, else the line of the first failed one. */
#define CHILD_CHECK(cond)                                                                          \
	do {                                                                                       \
		if (!(cond))                                                                       \
			_exit(__LINE__ % 250 + 1);                                                 \
	} while (0)

static void run_child(void (*fn)(const struct tmpdir *), const struct tmpdir *t)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		fn(t);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) != 0)
		fail_msg("a check in the child failed (code %d)", WEXITSTATUS(status));
}

static void child_unwritable(const struct tmpdir *t)
{
	char dir[PATH_MAX], path[PATH_MAX + 8];

	path_in(t, "ro", dir);
	snprintf(path, sizeof(path), "%s/f", dir);
	/* root ignores folder permissions: act as nobody */
	if (geteuid() == 0) {
		CHILD_CHECK(chown(t->path, 65534, 65534) == 0);
		CHILD_CHECK(chown(dir, 65534, 65534) == 0);
		CHILD_CHECK(setgid(65534) == 0);
		CHILD_CHECK(setuid(65534) == 0);
	}
	CHILD_CHECK(fileio_write_atomic(path, "x", 1, 0644) == -EACCES);
	CHILD_CHECK(access(path, F_OK) < 0);
}

static void test_write_unwritable_folder(void **state)
{
	struct tmpdir *t = *state;
	char dir[PATH_MAX], listing[256];

	path_in(t, "ro", dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(chmod(dir, 0555), 0);
	run_child(child_unwritable, t);
	list_dir(dir, listing, sizeof(listing));
	assert_string_equal(listing, "");
}

/* A write that fails after the temporary file exists (file size limit) removes it and
 * leaves the old file alone. */
static void child_write_fails(const struct tmpdir *t)
{
	char path[PATH_MAX], big[8192];
	struct rlimit rl = {.rlim_cur = 4096, .rlim_max = RLIM_INFINITY};
	int r;

	memset(big, 'b', sizeof(big));
	path_in(t, "limited", path);
	CHILD_CHECK(signal(SIGXFSZ, SIG_IGN) != SIG_ERR);
	CHILD_CHECK(getrlimit(RLIMIT_FSIZE, &rl) == 0);
	rl.rlim_cur = 4096;
	CHILD_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
	r = fileio_write_atomic(path, big, sizeof(big), 0644);
	CHILD_CHECK(r == -EFBIG);
}

static void test_write_fails_midway(void **state)
{
	struct tmpdir *t = *state;
	char path[PATH_MAX], listing[256];

	path_in(t, "limited", path);
	write_file(path, "old", 3);
	run_child(child_write_fails, t);
	assert_file(path, "old", 3);
	list_dir(t->path, listing, sizeof(listing));
	assert_string_equal(listing, "limited");
}

static void test_fsync_parent(void **state)
{
	struct tmpdir *t = *state;
	char path[PATH_MAX];
	char longpath[PATH_MAX + 100];

	path_in(t, "anything", path);
	assert_int_equal(fileio_fsync_parent(path), 0);
	assert_int_equal(fileio_fsync_parent("no-slash"), 0); /* the current folder */
	assert_int_equal(fileio_fsync_parent("/top"), 0);     /* the root */
	path_in(t, "missing/f", path);
	assert_int_equal(fileio_fsync_parent(path), -ENOENT);
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 3] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(fileio_fsync_parent(longpath), -ENAMETOOLONG);
}

static void test_write_name_too_long(void **state)
{
	char longpath[PATH_MAX + 10];

	(void)state;
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(fileio_write_atomic(longpath, "x", 1, 0644), -ENAMETOOLONG);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)
	const struct CMUnitTest tests[] = {
	        T(test_read),
	        T(test_read_cap),
	        T(test_read_errors),
	        T(test_write_mode),
	        T(test_write_mode_of_replaced),
	        T(test_write_replaces),
	        T(test_write_over_stale_temp),
	        T(test_write_target_is_directory),
	        T(test_write_missing_folder),
	        T(test_write_unwritable_folder),
	        T(test_write_fails_midway),
	        T(test_fsync_parent),
	        T(test_write_name_too_long),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
