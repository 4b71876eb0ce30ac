/* returns-validate: checks one document against a form schema the way the county hub
 * does (DESIGN §4): the JSON Schema, then, unless --schema-only, the schema's x-rules and
 * the privacy guard. A developer tool: one line per problem on stdout, as errlist_format()
 * writes them ("/victims/male: must be >= 0, got -1 (minimum)").
 * Exit status: 0 valid (warnings allowed), 1 invalid, 2 usage, I/O or schema errors. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/errlist.h"
#include "common/json.h"
#include "common/log.h"
#include "common/privacy.h"
#include "common/rules.h"
#include "common/schema.h"
#include "common/banned.h"

#define EXIT_VALID 0
#define EXIT_INVALID 1
#define EXIT_TROUBLE 2

#define ERR_MAX 512
#define OUTPUT_MAX (4u * 1024 * 1024)

static void usage(FILE *f)
{
	fputs("usage: returns-validate [--schema-only] SCHEMA.json DATA.json\n"
	      "Validates DATA.json against the JSON Schema SCHEMA.json and, unless\n"
	      "--schema-only is given, against the schema's x-rules and the privacy guard.\n"
	      "Prints one line per problem; exits 0 when valid (warnings allowed), 1 when\n"
	      "invalid, 2 on usage, I/O or schema errors.\n",
	      f);
}

/* Reads the whole file into out, which must be empty: -EMSGSIZE when it holds more than
 * out's maximum, or the negative errno of open() or read(). */
static int read_file(const char *path, struct buf *out)
{
	char chunk[64 * 1024];
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		r = buf_append(out, chunk, (size_t)n);
		if (r < 0)
			break;
	}
	close(fd);
	return r;
}

/* Parses the document into *ret_data, or records why it is not one in errs (then
 * *ret_data is left alone and 0 is returned as well: a malformed document is invalid,
 * not a failure of the tool). Returns a negative errno only for I/O or memory trouble. */
static int load_document(const char *path, struct errlist *errs, cJSON **ret_data)
{
	struct buf text;
	char err[ERR_MAX] = "";
	cJSON *data = NULL;
	int r;

	buf_init(&text, JSON_MAX_TEXT);
	r = read_file(path, &text);
	if (r == -EMSGSIZE) {
		r = errlist_add(errs, ERRLIST_ERROR, "", "json", "document larger than %u bytes",
		                JSON_MAX_TEXT);
		goto out;
	}
	if (r < 0) {
		log_errno(r, "failed to read '%s'", path);
		goto out;
	}
	r = json_parse_untrusted(text.data ? text.data : "", text.len, JSON_MAX_DEPTH, &data, err,
	                         sizeof(err));
	if (r == -EINVAL || r == -EMSGSIZE) {
		r = errlist_add(errs, ERRLIST_ERROR, "", "json", "not a JSON document: %s",
		                err[0] ? err : "malformed");
		goto out;
	}
	if (r < 0) {
		log_errno(r, "failed to parse '%s'", path);
		goto out;
	}
	*ret_data = data;
out:
	buf_release(&text);
	return r;
}

static int print_problems(const struct errlist *errs)
{
	struct buf out;
	int r;

	buf_init(&out, OUTPUT_MAX);
	r = errlist_format(errs, NULL, &out);
	if (r < 0)
		goto out;
	if (out.len > 0 && fwrite(out.data, 1, out.len, stdout) != out.len)
		r = -EIO;
	if (fflush(stdout) != 0)
		r = -EIO;
out:
	buf_release(&out);
	return r;
}

int main(int argc, char **argv)
{
	const char *schema_path = NULL, *data_path = NULL;
	struct schema *schema = NULL;
	struct rules *rules = NULL;
	struct errlist errs;
	cJSON *data = NULL;
	char err[ERR_MAX] = "";
	int schema_only = 0, ret = EXIT_TROUBLE, r;

	log_setup("returns-validate", LOG_LEVEL_INFO, NULL);
	errlist_init(&errs);

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--schema-only") == 0) {
			schema_only = 1;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return EXIT_VALID;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			log_error("unknown option '%s'", argv[i]);
			usage(stderr);
			return EXIT_TROUBLE;
		} else if (!schema_path) {
			schema_path = argv[i];
		} else if (!data_path) {
			data_path = argv[i];
		} else {
			usage(stderr);
			return EXIT_TROUBLE;
		}
	}
	if (!data_path) {
		usage(stderr);
		return EXIT_TROUBLE;
	}

	r = schema_load_file(schema_path, &schema, err, sizeof(err));
	if (r < 0) {
		log_error("failed to load schema: %s", err[0] ? err : strerror(-r));
		goto out;
	}
	if (!schema_only) {
		const cJSON *x_rules =
		        cJSON_GetObjectItemCaseSensitive(schema_root(schema), "x-rules");

		r = rules_compile(x_rules, err, sizeof(err), &rules);
		if (r < 0) {
			log_error("failed to compile the x-rules of '%s': %s", schema_path,
			          err[0] ? err : strerror(-r));
			goto out;
		}
	}

	r = load_document(data_path, &errs, &data);
	if (r < 0)
		goto out;
	if (data) {
		/* Check everything, so the list names every problem at once as the hub's 422
		 * does: rules and the guard let missing or mistyped values pass. */
		r = schema_validate(schema, data, &errs);
		if (r == -ENOMEM) {
			log_errno(r, "failed to validate '%s'", data_path);
			goto out;
		}
		/* -ELOOP, -E2BIG: a limit was hit, errs says which, and the document is refused */
		if (r < 0 && errs.errors == 0) {
			r = errlist_add(&errs, ERRLIST_ERROR, "", "limit", "validation stopped: %s",
			                strerror(-r));
			if (r < 0)
				goto out;
		}
		if (!schema_only) {
			r = rules_check(rules, data, &errs);
			if (r < 0) {
				log_errno(r, "failed to check the x-rules on '%s'", data_path);
				goto out;
			}
			r = privacy_check(data, &errs);
			if (r < 0) {
				log_errno(r, "failed to run the privacy guard on '%s'", data_path);
				goto out;
			}
		}
	}

	r = print_problems(&errs);
	if (r < 0) {
		log_errno(r, "failed to write the report");
		goto out;
	}
	ret = errs.errors > 0 ? EXIT_INVALID : EXIT_VALID;
out:
	cJSON_Delete(data);
	rules_free(rules);
	schema_free(schema);
	errlist_release(&errs);
	return ret;
}
