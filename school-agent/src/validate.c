/* school-agent validate: checks return files against their form offline, as the hub will.
 *   school-agent validate --form FORM FILE.json...
 *   school-agent validate --schema SCHEMA.json FILE.json...
 * Exit 0 when every file may be submitted (rule warnings are printed but do not fail),
 * 65 (EX_DATAERR) when one may not, 64 on usage errors, 66/74 when a file cannot be read. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/datadir.h"
#include "common/errlist.h"
#include "common/form.h"
#include "common/fileio.h"
#include "common/json.h"
#include "common/banned.h"

#define RETURN_FILE_MAX (8u * 1024 * 1024)

static int check_file(const struct form *form, const char *path)
{
	struct errlist errors;
	struct buf text, out;
	cJSON *data = NULL;
	char err[512];
	int r, status;

	buf_init(&text, RETURN_FILE_MAX);
	buf_init(&out, 1024 * 1024);
	errlist_init(&errors);
	r = fileio_read(path, &text);
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", path,
			r == -EMSGSIZE ? "file too large" : strerror(-r));
		status = r == -ENOENT ? EX_NOINPUT : EX_IOERR;
		goto out;
	}
	r = json_parse_untrusted(text.data, text.len, JSON_MAX_DEPTH, &data, err, sizeof(err));
	if (r < 0) {
		printf("%s: not valid JSON: %s\n", path, err);
		status = EX_DATAERR;
		goto out;
	}
	r = form_check(form, data, &errors);
	if (r < 0) {
		printf("%s: could not be checked: %s\n", path, strerror(-r));
		status = EX_DATAERR;
		goto out;
	}
	snprintf(err, sizeof(err), "%s: ", path);
	if (errlist_format(&errors, err, &out) == 0)
		fputs(out.data ? out.data : "", stdout);
	status = r > 0 ? EX_DATAERR : EX_OK;
out:
	cJSON_Delete(data);
	errlist_release(&errors);
	buf_release(&text);
	buf_release(&out);
	return status;
}

int command_validate(int argc, char **argv)
{
	char *form_id = NULL, *schema_path = NULL, *schemas_dir = NULL;
	const struct config_option options[] = {
		{.name = "form", .type = CONFIG_STRING, .target = &form_id,
		 .help = "the form of the files (e.g. incident)", .metavar = "FORM"},
		{.name = "schema", .type = CONFIG_STRING, .target = &schema_path,
		 .help = "check against this form file instead", .metavar = "SCHEMA.json"},
		{.name = "schemas_dir", .type = CONFIG_STRING, .target = &schemas_dir,
		 .help = "the folder holding forms/ and campaigns/", .metavar = "DIR"},
		{.name = NULL},
	};
	struct form_set *set = NULL;
	struct form single = {0};
	const struct form *form = NULL;
	char path[PATH_MAX], err[1024];
	int next, r, status = EX_OK;

	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		struct buf usage;

		buf_init(&usage, 64 * 1024);
		printf("usage: school-agent validate (--form FORM | --schema SCHEMA.json) "
		       "FILE.json...\n");
		if (config_usage(options, &usage) == 0)
			fputs(usage.data, stdout);
		buf_release(&usage);
		return EX_OK;
	}
	r = config_parse_args(options, argc, argv, &next, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "school-agent validate: %s\n", err);
		status = EX_USAGE;
		goto out;
	}
	if (!!form_id == !!schema_path || next >= argc) {
		fprintf(stderr, "usage: school-agent validate (--form FORM | --schema SCHEMA.json) "
				"FILE.json...\n");
		status = EX_USAGE;
		goto out;
	}
	if (schema_path) {
		r = form_load_file(schema_path, &single, err, sizeof(err));
		form = &single;
	} else {
		if (!schemas_dir) {
			r = datadir_schemas(path, sizeof(path));
			if (r < 0) {
				fprintf(stderr, "school-agent validate: no schemas folder found; "
						"give --schemas-dir\n");
				status = EX_CONFIG;
				goto out;
			}
		} else {
			snprintf(path, sizeof(path), "%s", schemas_dir);
		}
		if (strlen(path) + sizeof("/forms") > sizeof(path)) {
			status = EX_USAGE;
			goto out;
		}
		memcpy(path + strlen(path), "/forms", sizeof("/forms"));
		r = form_set_load_dir(path, &set, err, sizeof(err));
		if (r == 0) {
			form = form_set_find(set, form_id);
			if (!form) {
				fprintf(stderr, "school-agent validate: unknown form '%s'\n",
					form_id);
				status = EX_USAGE;
				goto out;
			}
		}
	}
	if (r < 0) {
		fprintf(stderr, "school-agent validate: %s\n", err);
		status = EX_CONFIG;
		goto out;
	}
	for (int i = next; i < argc; i++) {
		int s = check_file(form, argv[i]);

		if (s != EX_OK && (status == EX_OK || status == EX_DATAERR))
			status = s;
	}
out:
	form_release(&single);
	form_set_free(set);
	config_release(options);
	return status;
}
