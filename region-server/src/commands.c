/* Helpers shared by the region-server's commands: see commands.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/datadir.h"
#include "common/log.h"
#include "commands.h"
#include "db.h"
#include "common/banned.h"

int command_schemas_dir(const char *given, char *out, size_t outlen)
{
	int r;

	if (given) {
		if (strlen(given) >= outlen)
			return log_errno(-ENAMETOOLONG, "schemas folder '%s'", given);
		memcpy(out, given, strlen(given) + 1);
		return 0;
	}
	r = datadir_schemas(out, outlen);
	if (r < 0)
		return log_errno(r, "no schemas folder found, give --schemas-dir");
	return 0;
}

void command_help(const char *usage, const struct config_option *options)
{
	struct buf text;

	buf_init(&text, 64 * 1024);
	printf("usage: region-server %s\n", usage);
	if (config_usage(options, &text) == 0 && text.data)
		fputs(text.data, stdout);
	buf_release(&text);
}

int command_parse(const struct config_option *options, int argc, char **argv, const char *usage,
                  int *ret_next)
{
	char err[512];
	int r;

	r = config_parse_args(options, argc, argv, ret_next, err, sizeof(err));
	if (r < 0) {
		log_error("%s; usage: region-server %s", err, usage);
		return EX_USAGE;
	}
	return EX_OK;
}

int command_db_open(const char *conninfo, struct db **ret)
{
	char err[DB_ERR_MAX];
	int r;

	r = db_open(conninfo, ret, err, sizeof(err));
	if (r == -ENOMEM)
		return log_errno(r, "cannot connect to the database");
	if (r < 0)
		log_error("cannot connect to the database: %s", err);
	return r;
}
