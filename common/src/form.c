/* Forms as data: see form.h. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/errlist.h"
#include "common/form.h"
#include "common/privacy.h"
#include "common/rules.h"
#include "common/schema.h"
#include "common/banned.h"

#define FORM_SUFFIX ".schema.json"

static int form_id_from_path(const char *path, char ret[static FORM_ID_MAX + 1])
{
	const char *base = strrchr(path, '/');
	size_t n, suffix = strlen(FORM_SUFFIX);

	base = base ? base + 1 : path;
	n = strlen(base);
	if (n <= suffix || strcmp(base + n - suffix, FORM_SUFFIX) != 0)
		return -EINVAL;
	n -= suffix;
	if (n > FORM_ID_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = base[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '_' && i > 0)))
			return -EINVAL;
	}
	if (!(base[0] >= 'a' && base[0] <= 'z'))
		return -EINVAL;
	memcpy(ret, base, n);
	ret[n] = '\0';
	return 0;
}

void form_release(struct form *f)
{
	if (!f)
		return;
	schema_free(f->schema);
	rules_free(f->rules);
	memset(f, 0, sizeof(*f));
}

int form_load_file(const char *path, struct form *ret, char *err, size_t errlen)
{
	struct form f = {0};
	const cJSON *root, *x_form, *version;
	char why[512];
	int r;

	r = form_id_from_path(path, f.id);
	if (r < 0) {
		snprintf(err, errlen,
		         "%s: a form file is named <id>.schema.json, <id> being "
		         "[a-z][a-z0-9_]* of at most %d characters",
		         path, FORM_ID_MAX);
		return r;
	}
	r = schema_load_file(path, &f.schema, err, errlen);
	if (r < 0)
		return r;
	root = schema_root(f.schema);
	x_form = cJSON_GetObjectItemCaseSensitive(root, "x-form");
	if (!cJSON_IsString(x_form) || strcmp(x_form->valuestring, f.id) != 0) {
		snprintf(err, errlen, "%s: \"x-form\" must be the string \"%s\"", path, f.id);
		r = -EINVAL;
		goto fail;
	}
	version = cJSON_GetObjectItemCaseSensitive(root, "x-form-version");
	if (!cJSON_IsNumber(version) || version->valuedouble < 1 ||
	    version->valuedouble > INT_MAX || version->valuedouble != (int)version->valuedouble) {
		snprintf(err, errlen, "%s: \"x-form-version\" must be an integer >= 1", path);
		r = -EINVAL;
		goto fail;
	}
	f.version = (int)version->valuedouble;
	r = rules_compile(cJSON_GetObjectItemCaseSensitive(root, "x-rules"), why, sizeof(why),
	                  &f.rules);
	if (r < 0) {
		snprintf(err, errlen, "%s: x-rules: %s", path, why);
		goto fail;
	}
	*ret = f;
	return 0;
fail:
	form_release(&f);
	return r;
}

void form_set_free(struct form_set *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->count; i++)
		form_release(&set->forms[i]);
	free(set->forms);
	free(set);
}

static int compare_forms(const void *a, const void *b)
{
	return strcmp(((const struct form *)a)->id, ((const struct form *)b)->id);
}

int form_set_load_dir(const char *dir, struct form_set **ret, char *err, size_t errlen)
{
	struct form_set *set;
	struct dirent *de;
	char path[PATH_MAX];
	DIR *d;
	int r = 0;

	set = calloc(1, sizeof(*set));
	if (!set)
		return -ENOMEM;
	set->forms = calloc(FORM_SET_MAX, sizeof(*set->forms));
	if (!set->forms) {
		r = -ENOMEM;
		goto fail;
	}
	d = opendir(dir);
	if (!d) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);

		if (n <= strlen(FORM_SUFFIX) ||
		    strcmp(de->d_name + n - strlen(FORM_SUFFIX), FORM_SUFFIX) != 0)
			continue;
		if (set->count == FORM_SET_MAX) {
			snprintf(err, errlen, "%s: more than %d forms", dir, FORM_SET_MAX);
			r = -E2BIG;
			break;
		}
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path)) {
			snprintf(err, errlen, "%s: path too long", dir);
			r = -ENAMETOOLONG;
			break;
		}
		r = form_load_file(path, &set->forms[set->count], err, errlen);
		if (r < 0)
			break;
		set->count++;
	}
	closedir(d);
	if (r < 0)
		goto fail;
	if (set->count == 0) {
		snprintf(err, errlen, "%s: no *%s file", dir, FORM_SUFFIX);
		r = -ENOENT;
		goto fail;
	}
	qsort(set->forms, set->count, sizeof(*set->forms), compare_forms);
	*ret = set;
	return 0;
fail:
	form_set_free(set);
	return r;
}

const struct form *form_set_find(const struct form_set *set, const char *id)
{
	for (size_t i = 0; i < set->count; i++)
		if (strcmp(set->forms[i].id, id) == 0)
			return &set->forms[i];
	return NULL;
}

int form_check(const struct form *f, const cJSON *data, struct errlist *errors)
{
	size_t before = errors->errors;
	int r;

	r = schema_validate(f->schema, data, errors);
	if (r < 0)
		return r;
	if (r == 0) {
		r = rules_check(f->rules, data, errors);
		if (r < 0)
			return r;
	}
	r = privacy_check(data, errors);
	if (r < 0)
		return r;
	return (int)(errors->errors - before);
}
