/* Default schemas folder: see datadir.h. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/datadir.h"
#include "common/banned.h"

#ifndef RETURNS_DATADIR
#define RETURNS_DATADIR "/usr/local/share/returns"
#endif

static int has_forms(const char *schemas)
{
	char path[PATH_MAX];
	struct stat st;

	if (snprintf(path, sizeof(path), "%s/forms", schemas) >= (int)sizeof(path))
		return 0;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int copy_out(const char *s, char *out, size_t outlen)
{
	if (strlen(s) >= outlen)
		return -ENAMETOOLONG;
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

int datadir_schemas(char *out, size_t outlen)
{
	char exe[PATH_MAX], tree[PATH_MAX];
	ssize_t n;
	char *slash;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		/* <tree>/<program>/<binary>: strip two components */
		for (int i = 0; i < 2; i++) {
			slash = strrchr(exe, '/');
			if (!slash)
				break;
			*slash = '\0';
		}
		if (exe[0] && snprintf(tree, sizeof(tree), "%s/schemas", exe) < (int)sizeof(tree) &&
		    has_forms(tree))
			return copy_out(tree, out, outlen);
	}
	if (has_forms(RETURNS_DATADIR))
		return copy_out(RETURNS_DATADIR, out, outlen);
	return -ENOENT;
}
