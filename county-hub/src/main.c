/* county-hub: a county bureau's hub: verifies, stores, rolls up and forwards its schools' returns.
 * This file only parses the command line and calls into the commands' modules. */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "hub.h"
#include "common/version.h"
#include "common/banned.h"

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
        {"init", command_init, "create a hub folder: config, county key pair, store"},
        {"roster", command_roster, "add, import, list or remove the county's schools"},
        {"serve", command_serve, "accept the schools' returns over HTTP"},
        {"approve", command_approve, "lock a form's period: the county's data is final"},
        {"unapprove", command_unapprove, "reopen an approved period"},
        {"unlock", command_unlock, "let one school submit to a locked period"},
        {"status", command_status, "who is expected, on time, late or missing for a period"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: county-hub COMMAND [OPTIONS] [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'county-hub COMMAND --help' describes one command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EX_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return EX_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("county-hub %s\n", RETURNS_VERSION);
		return EX_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "county-hub: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EX_USAGE;
}
