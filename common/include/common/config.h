/* Program options from a JSON config file and from command-line flags, both driven by one
 * table of struct config_option per program (git's parse-options is the model).
 *
 * Names: the option "schemas_dir" is the key "schemas_dir" in a config file and the flag
 * "--schemas-dir" on the command line: names are made of [a-z0-9_], and a flag spells
 * each '_' as '-'. Neither spelling is accepted in the other place.
 *
 * Config file: one JSON object whose keys are option names; strict JSON as
 * json_parse_untrusted() reads it (so no comments, no duplicate keys), at most
 * CONFIG_FILE_MAX bytes. Unknown keys, wrong types and integers out of range are errors
 * that name the key; nothing is changed unless the whole file is valid.
 *
 * Flags (GNU style): "--name value" and "--name=value"; a boolean is "--name" or
 * "--no-name" and takes no value; a list option is repeated, "--peer a --peer b". Parsing
 * stops at "--" (skipped) or at the first argument that does not start with "-" or is
 * "-" alone (a subcommand or operand). No short options, no abbreviations. Every flag is
 * checked before any target changes.
 *
 * Precedence: flags override the config file, which overrides the values the program
 * put in the targets before parsing (its defaults). config_parse() does the whole job
 * for a program that takes "--config FILE": it reads the flags, loads the file the flags
 * (or the default) name, then applies the flags again. A program's main() does:
 *
 *	static struct hub_config cfg = {.port = 8443};  (the program's read-only config)
 *	static const struct config_option options[] = {
 *		{"config", CONFIG_STRING, &cfg.config, "read options from FILE", "FILE", 0, 0},
 *		{"port", CONFIG_INTEGER, &cfg.port, "TCP port", NULL, 1, 65535},
 *		{NULL, 0, NULL, NULL, NULL, 0, 0},
 *	};
 *	r = config_parse(options, "config", argc, argv, &next, err, sizeof(err));
 *	... argv[next] is the first operand; at exit, config_release(options).
 *
 * Ownership: string and list targets are heap memory that the config owns: before parsing
 * a string target holds NULL or a malloc'd default, a list target NULL or a malloc'd
 * NULL-terminated array of malloc'd strings; a new value frees the old one, and
 * config_release() frees them all. Not thread-safe: configure once at start. */
#ifndef COMMON_CONFIG_H
#define COMMON_CONFIG_H

#include <stddef.h>

#include "common/macro.h"

struct buf;

#define CONFIG_FILE_MAX (1024 * 1024) /* bytes in a config file */
#define CONFIG_LIST_MAX 1000          /* strings in one list option */
#define CONFIG_OPTIONS_MAX 128        /* options in one table */
#define CONFIG_NAME_MAX 64            /* characters in an option name */

enum config_type {
	CONFIG_STRING,      /* char **target; in a file a string */
	CONFIG_INTEGER,     /* long long *target; in a file an integer, |n| < 2^53 */
	CONFIG_BOOLEAN,     /* int *target, set to 0 or 1; in a file true or false */
	CONFIG_STRING_LIST, /* char ***target, NULL-terminated; in a file an array of strings;
	                     * among flags, the first occurrence replaces the list and later
	                     * ones append */
};

/* One option. A table is an array of these ending with an entry whose name is NULL. */
struct config_option {
	const char *name; /* file key; the flag is "--" and name with '_' as '-' */
	enum config_type type;
	void *target;        /* see enum config_type */
	const char *help;    /* one line for config_usage(), may be NULL */
	const char *metavar; /* value placeholder in the usage, e.g. "DIR"; NULL: by type */
	long long min, max;  /* CONFIG_INTEGER: allowed range, unless both are 0 */
};

/* Applies the config file at path. Errors, with a message in err that starts with path:
 * -errno when it cannot be read, -EFBIG when larger than CONFIG_FILE_MAX, -EINVAL for
 * bad JSON, an unknown key, a wrong type, a value out of range (or a bad table),
 * -ENOMEM. */
int config_load_file(const struct config_option *options, const char *path, char *err,
                     size_t errlen) WUR;
/* The same for len bytes of config file text already in memory (no NUL needed); messages
 * carry no file name. */
int config_load_text(const struct config_option *options, const char *text, size_t len, char *err,
                     size_t errlen) WUR;

/* Applies the flags in argv[1..argc-1] (argv[0] is the program or subcommand name: for a
 * subcommand pass argc - i, argv + i). *ret_next receives the index of the first
 * argument not consumed (argc when all were). -EINVAL with a message naming the flag for
 * an unknown flag, a missing or unexpected value, a bad integer; -ENOMEM. */
int config_parse_args(const struct config_option *options, int argc, char *const *argv,
                      int *ret_next, char *err, size_t errlen) WUR;

/* Flags, then the config file, then the flags again so that they win. file_option names
 * the CONFIG_STRING option holding the file's path (e.g. "config"): when it is NULL after
 * the first pass, no file is read. The file may not set that option itself. Errors are
 * those of config_parse_args() and config_load_file(). */
int config_parse(const struct config_option *options, const char *file_option, int argc,
                 char *const *argv, int *ret_next, char *err, size_t errlen) WUR;

/* Frees every string and list target and sets it to NULL. */
void config_release(const struct config_option *options);

/* Appends one line per option to out, e.g.
 *   "  --schemas-dir DIR     folder with the forms and calendars"
 *   "  --[no-]verbose        log debug lines"
 * with an integer's range and "(repeatable)" for lists. Same errors as buf_append. */
int config_usage(const struct config_option *options, struct buf *out) WUR;

#endif
