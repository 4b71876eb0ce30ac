/* simulate: a whole region of schools running the campaign through the real school-agent
 * code (issue 6), for `make demo`, the tests and the scaling runs.
 *   simulate counties --counties K [--region CODE]
 *   simulate generate --seed N --counties K --schools-per-county M --hubs FILE --out DIR
 *   simulate run --dir DIR [--seed N]
 * This file only parses the command line and calls into the commands. */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "simulate.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/version.h"
#include "common/banned.h"

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
        {"counties", sim_counties, "print the county codes and names a region will have"},
        {"generate", sim_generate, "make the region: schools, keys, rosters and plans"},
        {"run", sim_run, "drive every school through the campaign on RETURNS_CLOCK"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: simulate COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'simulate COMMAND --help' describes one command.\n");
}

int main(int argc, char **argv)
{
	log_setup("simulate", LOG_LEVEL_WARNING, NULL);
	if (argc < 2) {
		usage(stderr);
		return EX_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return EX_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("simulate %s\n", RETURNS_VERSION);
		return EX_OK;
	}
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "simulate: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EX_USAGE;
}
