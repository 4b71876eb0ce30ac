/* The campaign's forms, loaded from schemas/forms/<form>.schema.json at start (DESIGN
 * section 5): each form's compiled JSON Schema and x-rules, and one entry point that
 * checks a return's data the same way at every tier: the schema, then (when the schema
 * holds) the cross-field rules, and always the privacy guard. A form needs no C change.
 * A struct form_set is immutable after loading: several threads may share it. */
#ifndef COMMON_FORM_H
#define COMMON_FORM_H

#include <stddef.h>

#include "common/macro.h"

struct cJSON;
struct errlist;
struct rules;
struct schema;

#define FORM_ID_MAX 32
#define FORM_SET_MAX 64 /* forms in one folder */

struct form {
	char id[FORM_ID_MAX + 1]; /* the file name stem, equal to the schema's x-form */
	int version;              /* x-form-version */
	struct schema *schema;
	struct rules *rules;
};

struct form_set {
	struct form *forms;
	size_t count;
};

/* Loads every *.schema.json of dir (e.g. "schemas/forms"), sorted by id. On failure err
 * names the file and the problem. Caller frees *ret with form_set_free(). Returns 0,
 * -ENOENT (no such folder, or no form in it), -EINVAL (a file is not a valid form),
 * -E2BIG (more than FORM_SET_MAX forms) or another negative errno. */
int form_set_load_dir(const char *dir, struct form_set **ret, char *err, size_t errlen) WUR;
/* Loads one form file; its id is the file name without ".schema.json". */
int form_load_file(const char *path, struct form *ret, char *err, size_t errlen) WUR;
void form_release(struct form *f);
void form_set_free(struct form_set *set);

/* The form with that id, borrowed from set; NULL if there is none. */
const struct form *form_set_find(const struct form_set *set, const char *id);

/* Checks data (a return's "data", borrowed) against f: schema, then rules when the schema
 * holds, then the privacy guard. Adds every problem to errors. Returns 0 when the return
 * may be accepted (warnings allowed), the number of errors (> 0) when it may not, or a
 * negative errno when checking could not finish (a validation limit, -ENOMEM). */
int form_check(const struct form *f, const struct cJSON *data, struct errlist *errors) WUR;

#endif
