/* region-server: the regional bureau's server: stores every return in PostgreSQL and answers
 * the inspectors. This file only parses the command line and calls into the commands. */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "commands.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/version.h"
#include "common/banned.h"

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
        {"migrate", command_migrate, "bring the database to the current schema and calendar"},
        {"county", command_county, "county add: register a county and its hub's public key"},
        {"token", command_token, "token add: make a bearer token for the inspection API"},
        {"serve", command_serve, "the HTTP server: ingest from county hubs, inspection queries"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: region-server COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'region-server COMMAND --help' describes one command. Database commands "
	             "take --db CONNINFO\n(a libpq connection string; default: the PG* "
	             "environment variables).\n");
}

int main(int argc, char **argv)
{
	log_setup("region-server", LOG_LEVEL_INFO, NULL);
	if (argc < 2) {
		usage(stderr);
		return EX_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return EX_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("region-server %s\n", RETURNS_VERSION);
		return EX_OK;
	}
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	log_error("unknown command '%s'", argv[1]);
	usage(stderr);
	return EX_USAGE;
}
