/* The region's schema, from the numbered migrations in schemas/region/ (issue 5), and the
 * campaign calendar copied into it.
 *
 * A migration is a file "NNN_name.sql" (three digits, then [a-z0-9_]); they are applied in
 * the order of NNN, each in its own transaction together with its row in
 * schema_migrations (version, name, SHA-256 of the file), so a migration is applied
 * entirely or not at all. Applying is idempotent: a migration already recorded is skipped
 * when its file is unchanged, and refused when the file changed since or when the
 * database holds a migration this program does not have (it is older than the schema).
 * Concurrent migrators (several region servers starting together) take turns on a
 * session advisory lock. Limits: MIGRATE_FILES_MAX files of MIGRATE_FILE_MAX bytes. */
#ifndef REGION_MIGRATE_H
#define REGION_MIGRATE_H

#include <stddef.h>

#include "common/macro.h"

struct calendar;
struct db;
struct form_set;

#define MIGRATE_FILES_MAX 1000
#define MIGRATE_FILE_MAX (4u * 1024 * 1024)

/* Applies the migrations of dir (e.g. "schemas/region") that db does not have yet.
 * *ret_applied receives how many were applied now. Returns 0, or with a message in err:
 * -ENOENT (no migration in dir), -EINVAL (a badly named .sql file, two files with one
 * number, a file changed after it was applied), -EPROTO (the database has a migration
 * dir lacks), -EMSGSIZE (a file or the folder over the limits), the errno of reading dir,
 * or a db.h error (the failing migration is rolled back). */
int migrate_apply(struct db *db, const char *dir, int *ret_applied, char *err, size_t errlen) WUR;

/* Replaces the tables forms and periods with what cal says about the forms of forms
 * (borrowed), in one transaction, so SQL can tell who is expected and late: every
 * required period of phase and monthly forms, the optional phase periods (for the phase
 * ids some form requires), and every month of event forms within the campaigns. When a
 * form's period type changed between event and not, the returns that count for it are
 * recomputed (submission_current_rebuild) in the same transaction.
 * *ret_periods receives the number of periods stored. db.h errors, or -ENOMEM. */
int migrate_load_calendar(struct db *db, const struct calendar *cal, const struct form_set *forms,
                          int *ret_periods, char *err, size_t errlen) WUR;

#endif
