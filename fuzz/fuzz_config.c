/* libFuzzer target: arbitrary bytes as a config file for a table with every option type.
 * Loading must succeed or fail with -EINVAL/-EFBIG and a message, never crash or leak,
 * and a refused file must leave every target as it was. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *str = NULL, **list = NULL, err[256] = "";
	long long num = 42, ranged = 5;
	int flag = 0, r;
	const struct config_option options[] = {
	        {"schemas_dir", CONFIG_STRING, &str, "a string", "DIR", 0, 0},
	        {"count", CONFIG_INTEGER, &num, "any integer", NULL, 0, 0},
	        {"port", CONFIG_INTEGER, &ranged, "a ranged integer", NULL, 1, 65535},
	        {"verbose", CONFIG_BOOLEAN, &flag, "a boolean", NULL, 0, 0},
	        {"peer", CONFIG_STRING_LIST, &list, "a list", "URL", 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};

	r = config_load_text(options, (const char *)data, size, err, sizeof(err));
	if (r == 0) {
		if (ranged < 1 || ranged > 65535 || (flag != 0 && flag != 1))
			abort();
		for (size_t i = 0; list && list[i]; i++) {
			if (i >= CONFIG_LIST_MAX)
				abort();
		}
	} else {
		if (r != -EINVAL && r != -EFBIG)
			abort();
		if (!err[0] || str || list || num != 42 || ranged != 5 || flag != 0)
			abort();
	}
	config_release(options);
	return 0;
}
