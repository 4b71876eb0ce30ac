/* school-agent validate: checks return files against their form offline, as the hub will.
 *   school-agent validate [--schema-only] --form FORM FILE.json...
 *   school-agent validate [--schema-only] --schema SCHEMA.json FILE.json...
 * The JSON Schema, then (when it holds) the schema's x-rules, and the privacy guard;
 * --schema-only checks the JSON Schema alone. Any schema file may be given with --schema
 * (x-form is not needed; its x-rules are used when it has them).
 * Exit 0 when every file may be submitted (rule warnings are printed but do not fail),
 * 65 (EX_DATAERR) when one may not, 64 on usage errors, 66/74 when a file cannot be read,
 * 78 (EX_CONFIG) when the schema cannot be used. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <cjson/cJSON.h>

#include "agent.h"
#include "commands.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/datadir.h"
#include "common/errlist.h"
#include "common/form.h"
#include "common/fileio.h"
#include "common/json.h"
#include "common/rules.h"
#include "common/schema.h"
#include "common/banned.h"

#define RETURN_FILE_MAX (8u * 1024 * 1024)

static int check_file(const struct form *form, int schema_only, const char *path)
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
		fprintf(stderr, "%s: %s\n", path, r == -EMSGSIZE ? "file too large" : strerror(-r));
		status = r == -ENOENT ? EX_NOINPUT : EX_IOERR;
		goto out;
	}
	r = json_parse_untrusted(text.data ? text.data : "", text.len, JSON_MAX_DEPTH, &data, err,
	                         sizeof(err));
	if (r < 0) {
		printf("%s: not valid JSON: %s\n", path, err);
		status = EX_DATAERR;
		goto out;
	}
	if (schema_only) {
		r = schema_validate(form->schema, data, &errors);
		/* a limit was hit: errors says which, and the document is refused */
		if (r < 0 && r != -ENOMEM)
			r = errors.errors > 0 ? (int)errors.errors : 1;
	} else {
		r = form_check(form, data, &errors);
	}
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

/* Any schema file, not only a form's: the schema and its x-rules, if it has them. */
static int load_any_schema(const char *path, struct form *ret, char *err, size_t errlen)
{
	struct form f = {0};
	char why[512];
	int r;

	r = schema_load_file(path, &f.schema, err, errlen);
	if (r < 0)
		return r;
	r = rules_compile(cJSON_GetObjectItemCaseSensitive(schema_root(f.schema), "x-rules"), why,
	                  sizeof(why), &f.rules);
	if (r < 0) {
		snprintf(err, errlen, "%s: x-rules: %s", path, why);
		form_release(&f);
		return r;
	}
	*ret = f;
	return 0;
}

int command_validate(int argc, char **argv)
{
	char *form_id = NULL, *schema_path = NULL, *schemas_dir = NULL;
	int schema_only = 0;
	const struct config_option options[] = {
	        {.name = "schema_only",
	         .type = CONFIG_BOOLEAN,
	         .target = &schema_only,
	         .help = "check the JSON Schema only (no x-rules, no privacy guard)"},
	        {.name = "form",
	         .type = CONFIG_STRING,
	         .target = &form_id,
	         .help = "the form of the files (e.g. incident)",
	         .metavar = "FORM"},
	        {.name = "schema",
	         .type = CONFIG_STRING,
	         .target = &schema_path,
	         .help = "check against this form file instead",
	         .metavar = "SCHEMA.json"},
	        {.name = "schemas_dir",
	         .type = CONFIG_STRING,
	         .target = &schemas_dir,
	         .help = "the folder holding forms/ and campaigns/",
	         .metavar = "DIR"},
	        {.name = NULL},
	};
	struct form_set *set = NULL;
	struct form single = {0};
	const struct form *form = NULL;
	char path[PATH_MAX], err[1024];
	char **files = NULL;
	int nfiles = 0, r, status = EX_OK;

	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		struct buf usage;

		buf_init(&usage, 64 * 1024);
		printf("usage: school-agent validate [--schema-only] (--form FORM | --schema "
		       "SCHEMA.json) FILE.json...\n");
		if (config_usage(options, &usage) == 0)
			fputs(usage.data, stdout);
		buf_release(&usage);
		return EX_OK;
	}
	files = calloc((size_t)argc, sizeof(*files));
	if (!files) {
		status = EX_OSERR;
		goto out;
	}
	r = agent_parse_args(options, argc, argv, files, argc, &nfiles, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "school-agent validate: %s\n", err);
		status = EX_USAGE;
		goto out;
	}
	if (!!form_id == !!schema_path || nfiles == 0) {
		fprintf(stderr, "usage: school-agent validate (--form FORM | --schema SCHEMA.json) "
		                "FILE.json...\n");
		status = EX_USAGE;
		goto out;
	}
	if (schema_path) {
		r = load_any_schema(schema_path, &single, err, sizeof(err));
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
		status = r == -ENOENT ? EX_NOINPUT : EX_CONFIG;
		goto out;
	}
	for (int i = 0; i < nfiles; i++) {
		int s = check_file(form, schema_only, files[i]);

		if (s != EX_OK && (status == EX_OK || status == EX_DATAERR))
			status = s;
	}
out:
	free(files);
	form_release(&single);
	form_set_free(set);
	config_release(options);
	return status;
}
