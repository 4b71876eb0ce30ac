/* school-agent: a school's returns, from the safety officer's file to the county hub.
 * This file only parses the command line and calls into the commands' modules. */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "commands.h"
#include "common/log.h"
#include "common/version.h"
#include "common/banned.h"

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
        {"init", command_init, "set up the school's folder and key pair"},
        {"validate", command_validate, "check a return against its form, offline"},
        {"submit", command_submit, "check, sign and queue a return, offline"},
        {"import", command_import, "queue returns from a CSV file (Excel, UTF-8 or GB18030)"},
        {"sync", command_sync, "upload the queue to the county hub and keep the receipts"},
        {"status", command_status, "every return with its state and receipt"},
        {"requeue", command_requeue, "send returns the hub rejected again, unchanged"},
        {"due", command_due, "the returns the calendar expects from this school"},
        {"run", command_run, "stay up and sync periodically"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: school-agent COMMAND [OPTIONS] [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'school-agent COMMAND --help' describes one command.\n");
}

int main(int argc, char **argv)
{
	log_setup("school-agent", LOG_LEVEL_INFO, NULL);
	if (argc < 2) {
		usage(stderr);
		return EX_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("school-agent %s\n", RETURNS_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "school-agent: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EX_USAGE;
}
