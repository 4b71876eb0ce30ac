/* region-server migrate [--db CONNINFO] [--schemas-dir DIR]: brings the database to the
 * schema in DIR/region/ and copies the campaign calendar (DIR/campaigns/, for the forms of
 * DIR/forms/) into it. Safe to run any number of times, and while servers run.
 * Exit: 0, 64 usage, 65 a migration that changed or a database newer than this program,
 * 69 database unavailable, 78 schemas folder unusable, 70 other failures. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "common/calendar.h"
#include "common/config.h"
#include "common/form.h"
#include "common/log.h"
#include "commands.h"
#include "db.h"
#include "migrate.h"
#include "common/banned.h"

#define USAGE "migrate [--db CONNINFO] [--schemas-dir DIR]"

int command_migrate(int argc, char **argv)
{
	char *conninfo = NULL, *schemas_dir = NULL;
	const struct config_option options[] = {
	        {.name = "db",
	         .type = CONFIG_STRING,
	         .target = &conninfo,
	         .help = "libpq connection string (default: PG* variables)",
	         .metavar = "CONNINFO"},
	        {.name = "schemas_dir",
	         .type = CONFIG_STRING,
	         .target = &schemas_dir,
	         .help = "the folder holding region/, forms/ and campaigns/",
	         .metavar = "DIR"},
	        {.name = NULL},
	};
	struct calendar *cal = NULL;
	struct form_set *forms = NULL;
	struct db *db = NULL;
	char dir[PATH_MAX], path[PATH_MAX + 16], err[DB_ERR_MAX];
	int next, r, status, applied = 0, periods = 0;

	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		command_help(USAGE, options);
		return EX_OK;
	}
	status = command_parse(options, argc, argv, USAGE, &next);
	if (status != EX_OK)
		goto out;
	if (next < argc) {
		log_error("unexpected argument '%s'; usage: region-server %s", argv[next], USAGE);
		status = EX_USAGE;
		goto out;
	}
	status = EX_CONFIG;
	if (command_schemas_dir(schemas_dir, dir, sizeof(dir)) < 0)
		goto out;
	/* read everything before touching the database, so a bad file changes nothing */
	snprintf(path, sizeof(path), "%s/campaigns", dir);
	r = calendar_load_dir(path, &cal, err, sizeof(err));
	if (r < 0) {
		log_error("cannot load the calendar from '%s': %s", path, err);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/forms", dir);
	r = form_set_load_dir(path, &forms, err, sizeof(err));
	if (r < 0) {
		log_error("cannot load the forms from '%s': %s", path, err);
		goto out;
	}
	status = EX_UNAVAILABLE;
	if (command_db_open(conninfo, &db) < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/region", dir);
	r = migrate_apply(db, path, &applied, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		status = r == -EPROTO || r == -EINVAL             ? EX_DATAERR
		         : r == -ECONNREFUSED || r == -ECONNRESET ? EX_UNAVAILABLE
		                                                  : EX_SOFTWARE;
		goto out;
	}
	r = migrate_load_calendar(db, cal, forms, &periods, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		status = r == -ECONNRESET ? EX_UNAVAILABLE : EX_SOFTWARE;
		goto out;
	}
	log_info("schema up to date (%d migration%s applied now), calendar stored (%d periods)",
	         applied, applied == 1 ? "" : "s", periods);
	status = EX_OK;
out:
	db_free(db);
	form_set_free(forms);
	calendar_free(cal);
	config_release(options);
	return status;
}
