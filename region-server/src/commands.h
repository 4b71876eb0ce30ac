/* The region-server's commands: each takes its own argv (argv[0] is the command's name,
 * e.g. "migrate" or "county") and returns a sysexits.h exit code. Database commands take
 * --db CONNINFO (a libpq connection string; default: the PG* environment variables). */
#ifndef REGION_COMMANDS_H
#define REGION_COMMANDS_H

#include <stddef.h>

#include "common/macro.h"

struct config_option;
struct db;

int command_migrate(int argc, char **argv);
int command_county(int argc, char **argv);
int command_token(int argc, char **argv);
int command_serve(int argc, char **argv);

/* Helpers shared by the commands (commands.c). */

/* The schemas folder: given (borrowed, may be NULL) or datadir_schemas(). Logs why not
 * and returns a negative errno when there is none. */
int command_schemas_dir(const char *given, char *out, size_t outlen) WUR;
/* Prints "usage: region-server " usage, a newline and the options' help to stdout. */
void command_help(const char *usage, const struct config_option *options);
/* Parses argv into options; on error logs it with the usage line and returns EX_USAGE,
 * else EX_OK with *ret_next the first operand. */
int command_parse(const struct config_option *options, int argc, char **argv, const char *usage,
                  int *ret_next);
/* Connects to conninfo (NULL: PG* variables); logs and returns a negative errno on
 * failure. Caller frees *ret with db_free(). */
int command_db_open(const char *conninfo, struct db **ret) WUR;

#endif
