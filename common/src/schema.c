/* Schema files and the compiled schema's lifetime: see schema.h. Compilation is in
 * schema_compile.c, validation in schema_validate.c, patterns in schema_regex.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/schema.h"
#include "schema_int.h"
#include "common/banned.h"

const cJSON *schema_root(const struct schema *schema)
{
	return schema->root;
}

void schema_free(struct schema *schema)
{
	if (!schema)
		return;
	for (size_t i = 0; i < schema->n_nodes; i++)
		schema_node_free(schema->nodes[i]);
	free(schema->nodes);
	pcre2_match_context_free(schema->match_ctx);
	cJSON_Delete(schema->root);
	free(schema);
}

/* Reads at most max bytes; -EMSGSIZE when the file is longer. Caller frees *ret. */
static int read_bounded(int fd, size_t max, char **ret, size_t *ret_len)
{
	size_t len = 0, alloc = 4096;
	char *data = malloc(alloc);
	int r;

	if (!data)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (len == alloc) {
			char *p;

			if (alloc > max) {
				r = -EMSGSIZE;
				goto fail;
			}
			alloc *= 2;
			p = realloc(data, alloc);
			if (!p) {
				r = -ENOMEM;
				goto fail;
			}
			data = p;
		}
		n = read(fd, data + len, alloc - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max) {
		r = -EMSGSIZE;
		goto fail;
	}
	*ret = data;
	*ret_len = len;
	return 0;
fail:
	free(data);
	return r;
}

int schema_load_file(const char *path, struct schema **ret_schema, char *err, size_t errlen)
{
	char msg[512] = "";
	char *text = NULL;
	size_t len = 0, skip = 0;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(msg, sizeof(msg), "cannot open: %s", strerror(-r));
		goto fail;
	}
	r = read_bounded(fd, SCHEMA_MAX_TEXT, &text, &len);
	close(fd);
	if (r == -EMSGSIZE) {
		snprintf(msg, sizeof(msg), "larger than the limit of %u bytes", SCHEMA_MAX_TEXT);
		goto fail;
	}
	if (r < 0) {
		snprintf(msg, sizeof(msg), "cannot read: %s", strerror(-r));
		goto fail;
	}
	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
		skip = 3;
	r = schema_compile(text + skip, len - skip, ret_schema, msg, sizeof(msg));
fail:
	if (r < 0 && err && errlen)
		snprintf(err, errlen, "%s: %s", path, msg);
	free(text);
	return r;
}
