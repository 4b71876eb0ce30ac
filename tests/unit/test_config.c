/* Unit tests for common/config. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/banned.h"

/* A program's options, as a daemon would declare them. */
struct opts {
	char *config;
	char *schemas_dir;
	long long port;
	long long count;
	int verbose;
	int no_color;
	char **peers;
};

#define TABLE(o)                                                                                   \
	{                                                                                          \
		{"config", CONFIG_STRING, &(o)->config, "read options from FILE", "FILE", 0, 0},   \
		        {"schemas_dir",                                                            \
		         CONFIG_STRING,                                                            \
		         &(o)->schemas_dir,                                                        \
		         "forms and calendars",                                                    \
		         "DIR",                                                                    \
		         0,                                                                        \
		         0},                                                                       \
		        {"port", CONFIG_INTEGER, &(o)->port, "TCP port", NULL, 1, 65535},          \
		        {"count", CONFIG_INTEGER, &(o)->count, "any integer", NULL, 0, 0},         \
		        {"verbose", CONFIG_BOOLEAN, &(o)->verbose, "log debug lines", NULL, 0, 0}, \
		        {"no_color", CONFIG_BOOLEAN, &(o)->no_color, NULL, NULL, 0, 0},            \
		        {"peer", CONFIG_STRING_LIST, &(o)->peers, "peer URL", "URL", 0, 0},        \
		        {NULL, 0, NULL, NULL, NULL, 0, 0},                                         \
	}

static void opts_defaults(struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->port = 8443;
	o->count = 7;
}

static size_t list_len(char **list)
{
	size_t n = 0;

	while (list && list[n])
		n++;
	return n;
}

static int load(const struct config_option *t, const char *text, char *err, size_t errlen)
{
	return config_load_text(t, text, strlen(text), err, errlen);
}

/* text is refused with -EINVAL, a message containing msg, and no target changed. */
static void expect_file_error(const char *text, const char *msg)
{
	struct opts o;
	struct config_option t[] = TABLE(&o);
	char err[512] = "";

	opts_defaults(&o);
	assert_int_equal(load(t, text, err, sizeof(err)), -EINVAL);
	if (!strstr(err, msg))
		fail_msg("for %s: error '%s' does not mention '%s'", text, err, msg);
	assert_null(o.schemas_dir);
	assert_int_equal(o.port, 8443);
	assert_int_equal(o.count, 7);
	assert_int_equal(o.verbose, 0);
	assert_null(o.peers);
	config_release(t);
}

static void test_file_ok(void **state)
{
	struct opts o;
	struct config_option t[] = TABLE(&o);
	char err[512] = "";

	(void)state;
	opts_defaults(&o);
	o.schemas_dir = strdup("/default");
	assert_int_equal(load(t,
	                      "{\"schemas_dir\": \"/srv/schemas\", \"port\": 8080, \"count\": "
	                      "-9007199254740991, \"verbose\": true, \"no_color\": false,\n"
	                      " \"peer\": [\"https://a\", \"https://b\"]}",
	                      err, sizeof(err)),
	                 0);
	assert_string_equal(o.schemas_dir, "/srv/schemas");
	assert_int_equal(o.port, 8080);
	assert_int_equal(o.count, -9007199254740991LL);
	assert_int_equal(o.verbose, 1);
	assert_int_equal(o.no_color, 0);
	assert_int_equal(list_len(o.peers), 2);
	assert_string_equal(o.peers[0], "https://a");
	assert_string_equal(o.peers[1], "https://b");

	/* a second file replaces values, lists included; absent keys stay */
	assert_int_equal(load(t, "{\"peer\": [\"https://c\"], \"verbose\": false, \"port\": 1}",
	                      err, sizeof(err)),
	                 0);
	assert_int_equal(list_len(o.peers), 1);
	assert_string_equal(o.peers[0], "https://c");
	assert_int_equal(o.verbose, 0);
	assert_int_equal(o.port, 1);
	assert_string_equal(o.schemas_dir, "/srv/schemas");
	assert_int_equal(
	        load(t, "{\"peer\": [], \"port\": 65535, \"schemas_dir\": \"\"}", err, sizeof(err)),
	        0);
	assert_non_null(o.peers);
	assert_int_equal(list_len(o.peers), 0);
	assert_int_equal(o.port, 65535);
	assert_string_equal(o.schemas_dir, "");
	/* an empty object changes nothing; UTF-8 strings are kept as they are */
	assert_int_equal(load(t, " {} ", err, sizeof(err)), 0);
	assert_int_equal(
	        load(t, "{\"schemas_dir\": \"\\u5b66\\u6821/\xe5\xad\xa6\"}", err, sizeof(err)), 0);
	assert_string_equal(o.schemas_dir, "\xe5\xad\xa6\xe6\xa0\xa1/\xe5\xad\xa6");

	config_release(t);
	assert_null(o.schemas_dir);
	assert_null(o.peers);
	/* release twice is harmless */
	config_release(t);
}

static void test_file_errors(void **state)
{
	char big_list[16384];
	size_t n = 0;

	(void)state;
	expect_file_error("{\"colour\": true}", "unknown key 'colour'");
	expect_file_error("{\"schemas-dir\": \"/x\"}",
	                  "unknown key 'schemas-dir' (did you mean 'schemas_dir'?)");
	expect_file_error("{\"Port\": 1}", "unknown key 'Port'");
	expect_file_error("{\"schemas_dir\": 5}",
	                  "key 'schemas_dir' must be a string, not a number");
	expect_file_error("{\"schemas_dir\": null}",
	                  "key 'schemas_dir' must be a string, not null");
	expect_file_error("{\"schemas_dir\": [\"/x\"]}", "must be a string, not an array");
	expect_file_error("{\"port\": \"80\"}", "key 'port' must be an integer, not a string");
	expect_file_error("{\"port\": 80.5}", "key 'port' must be an integer below 2^53");
	expect_file_error("{\"count\": 1e300}", "key 'count' must be an integer below 2^53");
	expect_file_error("{\"count\": 9007199254740992}", "key 'count' must be an integer");
	expect_file_error("{\"count\": -9007199254740993}", "key 'count' must be an integer");
	expect_file_error("{\"port\": 0}", "key 'port' must be between 1 and 65535, not 0");
	expect_file_error("{\"port\": 65536}", "key 'port' must be between 1 and 65535, not 65536");
	expect_file_error("{\"port\": -1}", "must be between 1 and 65535, not -1");
	expect_file_error("{\"verbose\": \"yes\"}",
	                  "key 'verbose' must be true or false, not a string");
	expect_file_error("{\"verbose\": 1}", "key 'verbose' must be true or false, not a number");
	expect_file_error("{\"peer\": \"https://a\"}",
	                  "key 'peer' must be an array of strings, not a string");
	expect_file_error("{\"peer\": [\"https://a\", 1]}",
	                  "key 'peer' must be an array of strings, not one holding a number");
	expect_file_error("{\"peer\": {\"a\": \"b\"}}",
	                  "must be an array of strings, not an object");
	expect_file_error("{\"peer\": [[\"a\"]]}", "not one holding an array");
	/* the whole file is checked before anything is applied */
	expect_file_error("{\"port\": 8080, \"schemas_dir\": \"/x\", \"peer\": [\"a\"], "
	                  "\"verbose\": \"x\"}",
	                  "key 'verbose'");
	/* not one JSON object */
	expect_file_error("[]", "must hold a JSON object, not an array");
	expect_file_error("\"port\"", "must hold a JSON object, not a string");
	expect_file_error("", "");
	expect_file_error("{", "");
	expect_file_error("{\"port\": 80,}", "");
	expect_file_error("{\"port\": 80} {}", "");
	expect_file_error("{\"port\": 80, \"port\": 81}", "duplicate");
	expect_file_error("{/* comment */}", "");
	expect_file_error("{\"schemas_dir\": \"a\\u0000b\"}", "");
	expect_file_error("{\"schemas_dir\": \"\xff\"}", "UTF-8");
	expect_file_error("{\"peer\": [[[[[[[[[[[[[[[[[[[[[[[[\"a\"]]]]]]]]]]]]]]]]]]]]]]]]}", "");

	/* 1001 strings in one list */
	n += (size_t)snprintf(big_list + n, sizeof(big_list) - n, "{\"peer\": [");
	for (int i = 0; i <= CONFIG_LIST_MAX; i++)
		n += (size_t)snprintf(big_list + n, sizeof(big_list) - n, "%s\"p\"", i ? "," : "");
	n += (size_t)snprintf(big_list + n, sizeof(big_list) - n, "]}");
	assert_true(n < sizeof(big_list));
	expect_file_error(big_list, "key 'peer' has more than 1000 strings");
}

static void test_file_size(void **state)
{
	struct opts o;
	struct config_option t[] = TABLE(&o);
	char *text = malloc(CONFIG_FILE_MAX + 1);
	char err[512] = "";

	(void)state;
	assert_non_null(text);
	opts_defaults(&o);
	/* exactly CONFIG_FILE_MAX bytes: accepted */
	memset(text, ' ', CONFIG_FILE_MAX + 1);
	memcpy(text, "{\"port\": 99}", 12);
	assert_int_equal(config_load_text(t, text, CONFIG_FILE_MAX, err, sizeof(err)), 0);
	assert_int_equal(o.port, 99);
	assert_int_equal(config_load_text(t, text, CONFIG_FILE_MAX + 1, err, sizeof(err)), -EFBIG);
	assert_non_null(strstr(err, "larger than 1048576 bytes"));
	config_release(t);
	free(text);
}

struct tmpdir {
	char path[64];
};

static void tmpdir_make(struct tmpdir *d)
{
	snprintf(d->path, sizeof(d->path), "/tmp/test_config.XXXXXX");
	assert_non_null(mkdtemp(d->path));
}

/* Writes len bytes of text to name in the directory; the path goes to ret. */
static void write_file(const struct tmpdir *d, const char *name, const char *text, size_t len,
                       char *ret, size_t retlen)
{
	FILE *f;

	snprintf(ret, retlen, "%s/%s", d->path, name);
	f = fopen(ret, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void tmpdir_remove(struct tmpdir *d, const char *const *names)
{
	char p[128];

	for (size_t i = 0; names[i]; i++) {
		snprintf(p, sizeof(p), "%s/%s", d->path, names[i]);
		unlink(p);
	}
	assert_int_equal(rmdir(d->path), 0);
}

static void test_file_io(void **state)
{
	static const char *const names[] = {"ok.json", "max.json", "big.json", "bad.json", NULL};
	struct opts o;
	struct config_option t[] = TABLE(&o);
	char err[512] = "", path[128], missing[128];
	char *text = malloc(CONFIG_FILE_MAX + 1);
	struct tmpdir d;

	(void)state;
	assert_non_null(text);
	opts_defaults(&o);
	tmpdir_make(&d);

	write_file(&d, "ok.json", "{\"port\": 1234, \"peer\": [\"x\"]}\n", 30, path, sizeof(path));
	assert_int_equal(config_load_file(t, path, err, sizeof(err)), 0);
	assert_int_equal(o.port, 1234);
	assert_string_equal(o.peers[0], "x");

	/* the size limit, read from a file in several chunks */
	memset(text, '\n', CONFIG_FILE_MAX + 1);
	memcpy(text + CONFIG_FILE_MAX - 14, "{\"port\": 4321}", 14);
	write_file(&d, "max.json", text, CONFIG_FILE_MAX, path, sizeof(path));
	assert_int_equal(config_load_file(t, path, err, sizeof(err)), 0);
	assert_int_equal(o.port, 4321);
	write_file(&d, "big.json", text, CONFIG_FILE_MAX + 1, path, sizeof(path));
	assert_int_equal(config_load_file(t, path, err, sizeof(err)), -EFBIG);
	assert_true(strncmp(err, path, strlen(path)) == 0);
	assert_non_null(strstr(err, ": larger than 1048576 bytes"));

	/* messages about the content start with the file name */
	write_file(&d, "bad.json", "{\"prot\": 1}", 11, path, sizeof(path));
	assert_int_equal(config_load_file(t, path, err, sizeof(err)), -EINVAL);
	snprintf(text, CONFIG_FILE_MAX, "%s: unknown key 'prot'", path);
	assert_string_equal(err, text);
	write_file(&d, "bad.json", "{\"port\": 1,\n\"peer\": [x]}", 24, path, sizeof(path));
	assert_int_equal(config_load_file(t, path, err, sizeof(err)), -EINVAL);
	assert_true(strncmp(err, path, strlen(path)) == 0);
	assert_non_null(strstr(err, "line 2"));

	snprintf(missing, sizeof(missing), "%s/missing.json", d.path);
	assert_int_equal(config_load_file(t, missing, err, sizeof(err)), -ENOENT);
	snprintf(text, CONFIG_FILE_MAX, "cannot read '%s': No such file or directory", missing);
	assert_string_equal(err, text);
	assert_int_equal(config_load_file(t, d.path, err, sizeof(err)), -EISDIR);
	assert_non_null(strstr(err, "cannot read"));
	assert_int_equal(config_load_file(t, "/dev/null", err, sizeof(err)), -EINVAL);
	assert_int_equal(o.port, 4321);

	tmpdir_remove(&d, names);
	config_release(t);
	free(text);
}

static int parse(const struct config_option *t, int *ret_next, char *err, size_t errlen, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;

	argv[argc++] = (char *)"prog";
	va_start(ap, errlen);
	for (char *a; (a = va_arg(ap, char *));)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return config_parse_args(t, argc, argv, ret_next, err, errlen);
}

static void test_args_ok(void **state)
{
	struct opts o;
	struct config_option t[] = TABLE(&o);
	char err[512] = "";
	int next = -1;

	(void)state;
	opts_defaults(&o);
	assert_int_equal(parse(t, &next, err, sizeof(err), "--schemas-dir", "/srv/s", "--port=8080",
	                       "--verbose", "--no-color", "--peer", "a", "--peer=b", "--count",
	                       "-5", "serve", "--port", "1", NULL),
	                 0);
	assert_int_equal(next, 11);
	assert_string_equal(o.schemas_dir, "/srv/s");
	assert_int_equal(o.port, 8080);
	assert_int_equal(o.count, -5);
	assert_int_equal(o.verbose, 1);
	assert_int_equal(o.no_color, 1);
	assert_int_equal(list_len(o.peers), 2);
	assert_string_equal(o.peers[0], "a");
	assert_string_equal(o.peers[1], "b");

	/* a new parse replaces the list with its first --peer; the last of a flag wins;
	 * "--" ends the flags and is consumed */
	assert_int_equal(parse(t, &next, err, sizeof(err), "--peer", "c", "--no-verbose", "--port",
	                       "9", "--port", "10", "--", "--port", "11", NULL),
	                 0);
	assert_int_equal(next, 9);
	assert_int_equal(list_len(o.peers), 1);
	assert_string_equal(o.peers[0], "c");
	assert_int_equal(o.verbose, 0);
	assert_int_equal(o.port, 10);
	assert_int_equal(o.no_color, 1);

	/* a value is the next argument whatever it looks like (as with getopt_long);
	 * "--name=" gives an empty string */
	assert_int_equal(parse(t, &next, err, sizeof(err), "--schemas-dir", "--verbose", NULL), 0);
	assert_string_equal(o.schemas_dir, "--verbose");
	assert_int_equal(o.verbose, 0);
	assert_int_equal(parse(t, &next, err, sizeof(err), "--schemas-dir=", "-", NULL), 0);
	assert_string_equal(o.schemas_dir, "");
	assert_int_equal(next, 2); /* "-" alone is an operand */
	assert_int_equal(parse(t, &next, err, sizeof(err), "--schemas-dir=a=b", NULL), 0);
	assert_string_equal(o.schemas_dir, "a=b");
	assert_int_equal(next, 2);
	assert_int_equal(parse(t, &next, err, sizeof(err), NULL), 0);
	assert_int_equal(next, 1);
	assert_int_equal(parse(t, &next, err, sizeof(err), "operand", "--bogus", NULL), 0);
	assert_int_equal(next, 1);
	assert_int_equal(parse(t, &next, err, sizeof(err), "--count", "-9223372036854775808", NULL),
	                 0);
	assert_int_equal(o.count, INT64_MIN);
	config_release(t);
}

/* argv is refused with -EINVAL, a message containing msg, and no target changed. */
static void expect_args_error(const char *msg, ...)
{
	struct opts o;
	struct config_option t[] = TABLE(&o);
	char *argv[32], err[512] = "";
	int argc = 0, next = -1;
	va_list ap;

	opts_defaults(&o);
	argv[argc++] = (char *)"prog";
	va_start(ap, msg);
	for (char *a; (a = va_arg(ap, char *));)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	assert_int_equal(config_parse_args(t, argc, argv, &next, err, sizeof(err)), -EINVAL);
	if (!strstr(err, msg))
		fail_msg("error '%s' does not mention '%s'", err, msg);
	assert_int_equal(next, -1);
	assert_null(o.schemas_dir);
	assert_null(o.peers);
	assert_int_equal(o.port, 8443);
	assert_int_equal(o.verbose, 0);
	config_release(t);
}

static void test_args_errors(void **state)
{
	(void)state;
	expect_args_error("unknown option '--colour'", "--colour", NULL);
	expect_args_error("unknown option '--colour'", "--colour=red", NULL);
	expect_args_error("unknown option '--schemas_dir'", "--schemas_dir", "/x", NULL);
	expect_args_error("unknown option '--Port'", "--Port", "1", NULL);
	expect_args_error("unknown option '--por'", "--por", "1", NULL);
	expect_args_error("unknown option '---port'", "---port", "1", NULL);
	expect_args_error("unknown option '--'", "--=x", NULL);
	expect_args_error("unknown option '-v' (options are spelled --name)", "-v", NULL);
	expect_args_error("unknown option '--no-such'", "--no-such", NULL);
	expect_args_error("option '--port' needs a value", "--port", NULL);
	expect_args_error("option '--peer' needs a value", "--peer", NULL);
	expect_args_error("option '--schemas-dir' needs a value", "--verbose", "--schemas-dir",
	                  NULL);
	expect_args_error("option '--port': 'abc' is not an integer", "--port", "abc", NULL);
	expect_args_error("option '--port': '' is not an integer", "--port=", NULL);
	expect_args_error("option '--port': ' 80' is not an integer", "--port", " 80", NULL);
	expect_args_error("option '--port': '+80' is not an integer", "--port", "+80", NULL);
	expect_args_error("option '--port': '80x' is not an integer", "--port", "80x", NULL);
	expect_args_error("option '--port': '0x50' is not an integer", "--port", "0x50", NULL);
	expect_args_error("option '--port': '-' is not an integer", "--port", "-", NULL);
	expect_args_error("option '--count': '9223372036854775808' is out of range", "--count",
	                  "9223372036854775808", NULL);
	expect_args_error("option '--port' must be between 1 and 65535, not 0", "--port", "0",
	                  NULL);
	expect_args_error("option '--port' must be between 1 and 65535, not 65536", "--port=65536",
	                  NULL);
	expect_args_error("option '--verbose' takes no value", "--verbose=yes", NULL);
	expect_args_error("option '--no-verbose' takes no value", "--no-verbose=", NULL);
	expect_args_error("option '--port' is not a boolean and cannot be negated", "--no-port",
	                  NULL);
	expect_args_error("option '--peer' is not a boolean", "--no-peer", NULL);
	/* every flag is checked before any is applied */
	expect_args_error("unknown option '--bogus'", "--port", "80", "--schemas-dir", "/x",
	                  "--peer", "a", "--verbose", "--bogus", NULL);
}

static void test_args_list_limit(void **state)
{
	struct opts o;
	struct config_option t[] = TABLE(&o);
	char **argv = calloc(2 * CONFIG_LIST_MAX + 4, sizeof(*argv));
	char err[512] = "";
	int argc = 0, next = -1;

	(void)state;
	assert_non_null(argv);
	opts_defaults(&o);
	argv[argc++] = (char *)"prog";
	for (int i = 0; i < CONFIG_LIST_MAX; i++) {
		argv[argc++] = (char *)"--peer";
		argv[argc++] = (char *)"p";
	}
	assert_int_equal(config_parse_args(t, argc, argv, &next, err, sizeof(err)), 0);
	assert_int_equal(next, argc);
	assert_int_equal(list_len(o.peers), CONFIG_LIST_MAX);
	argv[argc++] = (char *)"--peer=q";
	assert_int_equal(config_parse_args(t, argc, argv, &next, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "option '--peer' given more than 1000 times"));
	assert_int_equal(list_len(o.peers), CONFIG_LIST_MAX);
	config_release(t);
	free(argv);
}

static int run(const struct config_option *t, int *ret_next, char *err, size_t errlen, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;

	argv[argc++] = (char *)"prog";
	va_start(ap, errlen);
	for (char *a; (a = va_arg(ap, char *));)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return config_parse(t, "config", argc, argv, ret_next, err, errlen);
}

/* Flags > file > defaults. */
static void test_override_order(void **state)
{
	static const char *const names[] = {"hub.json", "self.json", "bad.json", NULL};
	static const char file[] = "{\"port\": 1000, \"schemas_dir\": \"/file\", \"verbose\": true,"
	                           " \"count\": 3, \"peer\": [\"f1\", \"f2\"]}";
	struct opts o;
	struct config_option t[] = TABLE(&o);
	char err[512] = "", path[128], self[128], bad[128];
	struct tmpdir d;
	int next = -1;

	(void)state;
	tmpdir_make(&d);
	write_file(&d, "hub.json", file, strlen(file), path, sizeof(path));

	/* flags before and after --config win over the file, the file over the defaults */
	opts_defaults(&o);
	o.schemas_dir = strdup("/default");
	assert_int_equal(run(t, &next, err, sizeof(err), "--port", "2000", "--config", path,
	                     "--peer", "a", "--no-verbose", "serve", "--port", "3", NULL),
	                 0);
	assert_int_equal(next, 8);
	assert_int_equal(o.port, 2000);
	assert_string_equal(o.schemas_dir, "/file");
	assert_int_equal(o.verbose, 0);
	assert_int_equal(o.count, 3);
	assert_int_equal(list_len(o.peers), 1);
	assert_string_equal(o.peers[0], "a");
	assert_string_equal(o.config, path);
	config_release(t);

	/* without --config: flags over defaults, no file read */
	opts_defaults(&o);
	assert_int_equal(run(t, &next, err, sizeof(err), "--count", "5", NULL), 0);
	assert_int_equal(next, 3);
	assert_int_equal(o.port, 8443);
	assert_int_equal(o.count, 5);
	assert_null(o.schemas_dir);
	assert_null(o.config);
	config_release(t);

	/* a default config path is read when no flag names another */
	opts_defaults(&o);
	o.config = strdup(path);
	assert_int_equal(run(t, &next, err, sizeof(err), "--verbose", NULL), 0);
	assert_int_equal(o.port, 1000);
	assert_int_equal(o.verbose, 1);
	assert_int_equal(list_len(o.peers), 2);
	config_release(t);

	/* the file may not name a config file */
	opts_defaults(&o);
	write_file(&d, "self.json", "{\"config\": \"/etc/other.json\"}", 29, self, sizeof(self));
	assert_int_equal(run(t, &next, err, sizeof(err), "--config", self, NULL), -EINVAL);
	assert_non_null(strstr(err, "key 'config' cannot be set in a config file"));
	config_release(t);

	/* file errors come through with the file name; flag errors come first */
	opts_defaults(&o);
	write_file(&d, "bad.json", "{\"port\": 0}", 11, bad, sizeof(bad));
	assert_int_equal(run(t, &next, err, sizeof(err), "--config", bad, NULL), -EINVAL);
	assert_true(strncmp(err, bad, strlen(bad)) == 0);
	assert_non_null(strstr(err, "key 'port' must be between 1 and 65535"));
	assert_int_equal(run(t, &next, err, sizeof(err), "--config", bad, "--bogus", NULL),
	                 -EINVAL);
	assert_non_null(strstr(err, "unknown option '--bogus'"));
	config_release(t);

	/* the option naming the file must be a string option of the table */
	opts_defaults(&o);
	assert_int_equal(config_parse(t, "port", 1, (char *[]){(char *)"prog", NULL}, &next, err,
	                              sizeof(err)),
	                 -EINVAL);
	assert_int_equal(
	        config_parse(t, NULL, 1, (char *[]){(char *)"prog", NULL}, &next, err, sizeof(err)),
	        0);
	config_release(t);

	tmpdir_remove(&d, names);
}

static void test_usage(void **state)
{
	struct opts o;
	struct config_option t[] = TABLE(&o);
	struct buf out;

	(void)state;
	buf_init(&out, 4096);
	assert_int_equal(config_usage(t, &out), 0);
	assert_string_equal(out.data, "  --config FILE               read options from FILE\n"
	                              "  --schemas-dir DIR           forms and calendars\n"
	                              "  --port N                    TCP port (1..65535)\n"
	                              "  --count N                   any integer\n"
	                              "  --[no-]verbose              log debug lines\n"
	                              "  --[no-]no-color             (undocumented)\n"
	                              "  --peer URL                  peer URL (repeatable)\n");
	buf_release(&out);

	{
		char *s = NULL;
		const struct config_option longer[] = {
		        {"a_rather_long_option_name", CONFIG_STRING, &s, "help", NULL, 0, 0},
		        {NULL, 0, NULL, NULL, NULL, 0, 0},
		};

		buf_init(&out, 4096);
		assert_int_equal(config_usage(longer, &out), 0);
		assert_string_equal(out.data, "  --a-rather-long-option-name STRING\n"
		                              "                              help\n");
		buf_release(&out);
		/* a buffer too small */
		buf_init(&out, 10);
		assert_int_equal(config_usage(longer, &out), -EMSGSIZE);
		buf_release(&out);
	}
}

static void test_bad_table(void **state)
{
	char *s = NULL, err[256] = "";
	long long n = 0;
	int next;
	const struct config_option dash[] = {
	        {"schemas-dir", CONFIG_STRING, &s, NULL, NULL, 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};
	const struct config_option upper[] = {
	        {"Port", CONFIG_INTEGER, &n, NULL, NULL, 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};
	const struct config_option twice[] = {
	        {"port", CONFIG_INTEGER, &n, NULL, NULL, 0, 0},
	        {"port", CONFIG_INTEGER, &n, NULL, NULL, 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};
	const struct config_option no_target[] = {
	        {"port", CONFIG_INTEGER, NULL, NULL, NULL, 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};
	const struct config_option bad_range[] = {
	        {"port", CONFIG_INTEGER, &n, NULL, NULL, 10, 1},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};
	const struct config_option empty_name[] = {
	        {"", CONFIG_INTEGER, &n, NULL, NULL, 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};
	const struct config_option *const tables[] = {dash,      upper,     twice,
	                                              no_target, bad_range, empty_name};
	char *argv[] = {(char *)"prog", NULL};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(tables); i++) {
		assert_int_equal(config_load_text(tables[i], "{}", 2, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "option table"));
		assert_int_equal(config_parse_args(tables[i], 1, argv, &next, err, sizeof(err)),
		                 -EINVAL);
		assert_non_null(strstr(err, "option table"));
	}
	/* NULL err is allowed */
	assert_int_equal(config_load_text(dash, "{}", 2, NULL, 0), -EINVAL);
	assert_null(s);
	assert_int_equal(n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_file_ok),         cmocka_unit_test(test_file_errors),
	        cmocka_unit_test(test_file_size),       cmocka_unit_test(test_file_io),
	        cmocka_unit_test(test_args_ok),         cmocka_unit_test(test_args_errors),
	        cmocka_unit_test(test_args_list_limit), cmocka_unit_test(test_override_order),
	        cmocka_unit_test(test_usage),           cmocka_unit_test(test_bad_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
