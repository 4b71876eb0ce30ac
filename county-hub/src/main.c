/* county-hub: a county bureau's hub: verifies, stores, rolls up and forwards its schools' returns.
 * This file only parses the command line and calls into the commands' modules. */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "common/version.h"
#include "common/banned.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: county-hub COMMAND [OPTIONS]\n\n"
		     "No command is available in this release yet; see README.md.\n");
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("county-hub %s\n", RETURNS_VERSION);
		return EX_OK;
	}
	if (argc >= 2 && strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return EX_OK;
	}
	if (argc >= 2)
		fprintf(stderr, "county-hub: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EX_USAGE;
}
