/* Options from a config file and flags: see config.h. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/json.h"
#include "common/banned.h"

/* An object of arrays of strings is all a config file needs; deeper values are type
 * errors, and past this depth the JSON reader refuses them outright. */
#define CONFIG_MAX_DEPTH 8
/* 2^53: from here on a double no longer holds every integer, and a file's number may
 * have been rounded already. */
#define JSON_INT_LIMIT 9007199254740992.0
#define READ_CHUNK (64 * 1024)
#define NAME_CHARS "abcdefghijklmnopqrstuvwxyz0123456789_"
#define USAGE_COLUMN 30

static void PRINTF_LIKE(4, 5)
        set_err(char *err, size_t errlen, const char *origin, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (!err || !errlen)
		return;
	if (origin)
		n = snprintf(err, errlen, "%s: ", origin);
	if (n < 0 || (size_t)n >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

/* Checks the table once per call: its mistakes are the program's, not the user's. */
static int check_table(const struct config_option *options, size_t *ret_count, char *err,
                       size_t errlen)
{
	size_t n;

	for (n = 0; options[n].name; n++) {
		const struct config_option *o = &options[n];
		size_t len = strlen(o->name);

		if (n >= CONFIG_OPTIONS_MAX) {
			set_err(err, errlen, NULL, "option table: more than %d options",
			        CONFIG_OPTIONS_MAX);
			return -EINVAL;
		}
		if (len == 0 || len > CONFIG_NAME_MAX || strspn(o->name, NAME_CHARS) != len) {
			set_err(err, errlen, NULL, "option table: bad name '%s'", o->name);
			return -EINVAL;
		}
		if (!o->target || (unsigned)o->type > CONFIG_STRING_LIST ||
		    (o->type == CONFIG_INTEGER && o->min > o->max)) {
			set_err(err, errlen, NULL, "option table: bad entry '%s'", o->name);
			return -EINVAL;
		}
		for (size_t k = 0; k < n; k++) {
			if (strcmp(options[k].name, o->name) == 0) {
				set_err(err, errlen, NULL, "option table: '%s' appears twice",
				        o->name);
				return -EINVAL;
			}
		}
	}
	*ret_count = n;
	return 0;
}

static const struct config_option *find_key(const struct config_option *options, const char *key)
{
	for (size_t i = 0; options[i].name; i++) {
		if (strcmp(options[i].name, key) == 0)
			return &options[i];
	}
	return NULL;
}

/* The option whose flag spelling is the n bytes at flag ("schemas-dir"). */
static const struct config_option *find_flag(const struct config_option *options, const char *flag,
                                             size_t n)
{
	for (size_t i = 0; options[i].name; i++) {
		const char *name = options[i].name;
		size_t k;

		for (k = 0; k < n && name[k]; k++) {
			if (name[k] == '_' ? flag[k] != '-' : flag[k] != name[k])
				break;
		}
		if (k == n && name[k] == '\0')
			return &options[i];
	}
	return NULL;
}

static int has_range(const struct config_option *o)
{
	return o->min != 0 || o->max != 0;
}

static int replace_string(const struct config_option *o, const char *value)
{
	char **target = o->target;
	char *copy = strdup(value);

	if (!copy)
		return -ENOMEM;
	free(*target);
	*target = copy;
	return 0;
}

static void free_list(char **list)
{
	if (!list)
		return;
	for (size_t i = 0; list[i]; i++)
		free(list[i]);
	free(list);
}

/* Appends a copy of value to the list at o->target, or starts a new list replacing the
 * old one when fresh is set. */
static int list_add(const struct config_option *o, const char *value, int fresh)
{
	char ***target = o->target;
	char **list = fresh ? NULL : *target;
	size_t n = 0;
	char *copy, **grown;

	while (list && list[n])
		n++;
	copy = strdup(value);
	if (!copy)
		return -ENOMEM;
	grown = realloc(list, (n + 2) * sizeof(*grown));
	if (!grown) {
		free(copy);
		return -ENOMEM;
	}
	grown[n] = copy;
	grown[n + 1] = NULL;
	if (fresh)
		free_list(*target);
	*target = grown;
	return 0;
}

static const char *json_kind(const cJSON *v)
{
	if (cJSON_IsString(v))
		return "a string";
	if (cJSON_IsNumber(v))
		return "a number";
	if (cJSON_IsBool(v))
		return "a boolean";
	if (cJSON_IsNull(v))
		return "null";
	if (cJSON_IsArray(v))
		return "an array";
	return "an object";
}

static const char *type_name(enum config_type type)
{
	switch (type) {
	case CONFIG_STRING:
		return "a string";
	case CONFIG_INTEGER:
		return "an integer";
	case CONFIG_BOOLEAN:
		return "true or false";
	case CONFIG_STRING_LIST:
		return "an array of strings";
	}
	return "?";
}

static int check_range(const struct config_option *o, long long v, const char *what,
                       const char *origin, char *err, size_t errlen)
{
	if (has_range(o) && (v < o->min || v > o->max)) {
		set_err(err, errlen, origin, "%s must be between %lld and %lld, not %lld", what,
		        o->min, o->max, v);
		return -EINVAL;
	}
	return 0;
}

/* Checks (apply == 0) or applies one member of the config file. */
static int file_value(const struct config_option *o, const cJSON *v, int apply, const char *origin,
                      char *err, size_t errlen)
{
	char what[CONFIG_NAME_MAX + 8];
	const cJSON *item;
	size_t n = 0;
	int r;

	snprintf(what, sizeof(what), "key '%s'", o->name);
	switch (o->type) {
	case CONFIG_STRING:
		if (!cJSON_IsString(v))
			goto wrong_type;
		return apply ? replace_string(o, v->valuestring) : 0;
	case CONFIG_INTEGER: {
		double d = v->valuedouble;

		if (!cJSON_IsNumber(v))
			goto wrong_type;
		if (d != floor(d) || fabs(d) >= JSON_INT_LIMIT) {
			set_err(err, errlen, origin,
			        "%s must be an integer below 2^53 in magnitude", what);
			return -EINVAL;
		}
		r = check_range(o, (long long)d, what, origin, err, errlen);
		if (r < 0 || !apply)
			return r;
		*(long long *)o->target = (long long)d;
		return 0;
	}
	case CONFIG_BOOLEAN:
		if (!cJSON_IsBool(v))
			goto wrong_type;
		if (apply)
			*(int *)o->target = cJSON_IsTrue(v) ? 1 : 0;
		return 0;
	case CONFIG_STRING_LIST:
		if (!cJSON_IsArray(v))
			goto wrong_type;
		cJSON_ArrayForEach(item, v)
		{
			if (!cJSON_IsString(item)) {
				set_err(err, errlen, origin,
				        "%s must be an array of strings, not one holding %s", what,
				        json_kind(item));
				return -EINVAL;
			}
			if (++n > CONFIG_LIST_MAX) {
				set_err(err, errlen, origin, "%s has more than %d strings", what,
				        CONFIG_LIST_MAX);
				return -EINVAL;
			}
			if (apply) {
				r = list_add(o, item->valuestring, n == 1);
				if (r < 0)
					return r;
			}
		}
		if (apply && n == 0) {
			/* an empty array empties the list */
			char ***target = o->target;
			char **empty = calloc(1, sizeof(*empty));

			if (!empty)
				return -ENOMEM;
			free_list(*target);
			*target = empty;
		}
		return 0;
	}
	return -EINVAL;

wrong_type:
	set_err(err, errlen, origin, "%s must be %s, not %s", what, type_name(o->type),
	        json_kind(v));
	return -EINVAL;
}

/* deny: the option naming the config file, which the file itself may not set. */
static int load_text(const struct config_option *options, const char *text, size_t len,
                     const char *origin, const char *deny, char *err, size_t errlen)
{
	char jerr[256];
	cJSON *root = NULL;
	const cJSON *v;
	size_t count;
	int r;

	r = check_table(options, &count, err, errlen);
	if (r < 0)
		return r;
	if (len > CONFIG_FILE_MAX) {
		set_err(err, errlen, origin, "larger than %d bytes", CONFIG_FILE_MAX);
		return -EFBIG;
	}
	r = json_parse_untrusted(text, len, CONFIG_MAX_DEPTH, &root, jerr, sizeof(jerr));
	if (r < 0) {
		set_err(err, errlen, origin, "%s", jerr);
		return r == -ENOMEM ? r : -EINVAL;
	}
	if (!cJSON_IsObject(root)) {
		set_err(err, errlen, origin, "must hold a JSON object, not %s", json_kind(root));
		r = -EINVAL;
		goto out;
	}
	/* every member is checked before any target changes */
	for (int apply = 0; apply <= 1; apply++) {
		cJSON_ArrayForEach(v, root)
		{
			const struct config_option *o = find_key(options, v->string);

			if (!o) {
				char fixed[CONFIG_NAME_MAX + 1];
				size_t n = strlen(v->string);

				if (n <= CONFIG_NAME_MAX) {
					for (size_t i = 0; i <= n; i++)
						fixed[i] = v->string[i] == '-' ? '_' : v->string[i];
				}
				if (n <= CONFIG_NAME_MAX && find_key(options, fixed))
					set_err(err, errlen, origin,
					        "unknown key '%s' (did you mean '%s'?)", v->string,
					        fixed);
				else
					set_err(err, errlen, origin, "unknown key '%s'", v->string);
				r = -EINVAL;
				goto out;
			}
			if (deny && strcmp(o->name, deny) == 0) {
				set_err(err, errlen, origin,
				        "key '%s' cannot be set in a config file", o->name);
				r = -EINVAL;
				goto out;
			}
			r = file_value(o, v, apply, origin, err, errlen);
			if (r < 0)
				goto out;
		}
	}
	r = 0;
out:
	cJSON_Delete(root);
	return r;
}

static int load_file(const struct config_option *options, const char *path, const char *deny,
                     char *err, size_t errlen)
{
	char ebuf[128];
	struct buf text;
	int fd, r;

	buf_init(&text, CONFIG_FILE_MAX);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto fail_errno;
	}
	for (;;) {
		size_t room = text.max - text.len;
		char extra;
		ssize_t n;

		if (room == 0) {
			/* full: one more byte means the file is too big */
			n = read(fd, &extra, 1);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				r = -errno;
				goto fail_errno;
			}
			if (n > 0) {
				set_err(err, errlen, path, "larger than %d bytes", CONFIG_FILE_MAX);
				r = -EFBIG;
				goto fail;
			}
			break;
		}
		r = buf_reserve(&text, room < READ_CHUNK ? room : READ_CHUNK);
		if (r < 0) {
			set_err(err, errlen, path, "out of memory");
			goto fail;
		}
		n = read(fd, text.data + text.len, text.alloc - text.len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto fail_errno;
		}
		if (n == 0)
			break;
		text.len += (size_t)n;
	}
	r = load_text(options, text.data ? text.data : "", text.len, path, deny, err, errlen);
	goto out;

fail_errno:
	set_err(err, errlen, NULL, "cannot read '%s': %s", path,
	        strerror_r(-r, ebuf, sizeof(ebuf)));
fail:
out:
	if (fd >= 0)
		close(fd);
	buf_release(&text);
	return r;
}

int config_load_file(const struct config_option *options, const char *path, char *err,
                     size_t errlen)
{
	return load_file(options, path, NULL, err, errlen);
}

int config_load_text(const struct config_option *options, const char *text, size_t len, char *err,
                     size_t errlen)
{
	return load_text(options, text, len, NULL, NULL, err, errlen);
}

static int parse_integer(const struct config_option *o, const char *flag, size_t flag_len,
                         const char *s, long long *ret, char *err, size_t errlen)
{
	char what[CONFIG_NAME_MAX + 16];
	char *end;
	long long v;

	snprintf(what, sizeof(what), "option '--%.*s'", (int)flag_len, flag);
	/* strtoll alone would also take leading spaces, "+" and an empty string */
	if (!((s[0] >= '0' && s[0] <= '9') || (s[0] == '-' && s[1] >= '0' && s[1] <= '9'))) {
		set_err(err, errlen, NULL, "%s: '%s' is not an integer", what, s);
		return -EINVAL;
	}
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end) {
		set_err(err, errlen, NULL, "%s: '%s' is not an integer", what, s);
		return -EINVAL;
	}
	if (errno == ERANGE) {
		set_err(err, errlen, NULL, "%s: '%s' is out of range", what, s);
		return -EINVAL;
	}
	if (check_range(o, v, what, NULL, err, errlen) < 0)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* One pass over the flags: checks them all (apply == 0) or applies them. */
static int args_pass(const struct config_option *options, int argc, char *const *argv, int apply,
                     int *ret_next, char *err, size_t errlen)
{
	size_t list_seen[CONFIG_OPTIONS_MAX] = {0};
	int i;

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i], *name, *eq, *value = NULL;
		const struct config_option *o;
		size_t name_len;
		int negated = 0, r = 0;

		if (strcmp(arg, "--") == 0) {
			i++;
			break;
		}
		if (arg[0] != '-' || arg[1] == '\0')
			break;
		if (arg[1] != '-') {
			set_err(err, errlen, NULL,
			        "unknown option '%s' (options are spelled --name)", arg);
			return -EINVAL;
		}
		name = arg + 2;
		eq = strchr(name, '=');
		name_len = eq ? (size_t)(eq - name) : strlen(name);
		o = find_flag(options, name, name_len);
		if (!o && name_len > 3 && memcmp(name, "no-", 3) == 0) {
			o = find_flag(options, name + 3, name_len - 3);
			if (o && o->type != CONFIG_BOOLEAN) {
				set_err(err, errlen, NULL,
				        "option '--%.*s' is not a boolean and cannot be negated",
				        (int)(name_len - 3), name + 3);
				return -EINVAL;
			}
			negated = 1;
		}
		if (!o) {
			set_err(err, errlen, NULL, "unknown option '--%.*s'", (int)name_len, name);
			return -EINVAL;
		}
		if (o->type == CONFIG_BOOLEAN) {
			if (eq) {
				set_err(err, errlen, NULL, "option '--%.*s' takes no value",
				        (int)name_len, name);
				return -EINVAL;
			}
		} else if (eq) {
			value = eq + 1;
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			set_err(err, errlen, NULL, "option '--%.*s' needs a value", (int)name_len,
			        name);
			return -EINVAL;
		}

		switch (o->type) {
		case CONFIG_STRING:
			if (apply)
				r = replace_string(o, value);
			break;
		case CONFIG_INTEGER: {
			long long v;

			r = parse_integer(o, name, name_len, value, &v, err, errlen);
			if (r == 0 && apply)
				*(long long *)o->target = v;
			break;
		}
		case CONFIG_BOOLEAN:
			if (apply)
				*(int *)o->target = !negated;
			break;
		case CONFIG_STRING_LIST: {
			size_t *seen = &list_seen[o - options];

			if (++*seen > CONFIG_LIST_MAX) {
				set_err(err, errlen, NULL,
				        "option '--%.*s' given more than %d times", (int)name_len,
				        name, CONFIG_LIST_MAX);
				return -EINVAL;
			}
			if (apply)
				r = list_add(o, value, *seen == 1);
			break;
		}
		}
		if (r == -ENOMEM)
			set_err(err, errlen, NULL, "out of memory");
		if (r < 0)
			return r;
	}
	*ret_next = i;
	return 0;
}

int config_parse_args(const struct config_option *options, int argc, char *const *argv,
                      int *ret_next, char *err, size_t errlen)
{
	size_t count;
	int next, r;

	r = check_table(options, &count, err, errlen);
	if (r < 0)
		return r;
	r = args_pass(options, argc, argv, 0, &next, err, errlen);
	if (r < 0)
		return r;
	r = args_pass(options, argc, argv, 1, &next, err, errlen);
	if (r < 0)
		return r;
	*ret_next = next;
	return 0;
}

int config_parse(const struct config_option *options, const char *file_option, int argc,
                 char *const *argv, int *ret_next, char *err, size_t errlen)
{
	const struct config_option *file;
	const char *path;
	int next, r;

	r = config_parse_args(options, argc, argv, &next, err, errlen);
	if (r < 0)
		return r;
	if (file_option) {
		file = find_key(options, file_option);
		if (!file || file->type != CONFIG_STRING) {
			set_err(err, errlen, NULL, "option table: no string option '%s'",
			        file_option);
			return -EINVAL;
		}
		path = *(char **)file->target;
		if (path) {
			r = load_file(options, path, file_option, err, errlen);
			if (r < 0)
				return r;
			r = config_parse_args(options, argc, argv, &next, err, errlen);
			if (r < 0)
				return r;
		}
	}
	*ret_next = next;
	return 0;
}

void config_release(const struct config_option *options)
{
	for (size_t i = 0; options[i].name; i++) {
		const struct config_option *o = &options[i];

		if (o->type == CONFIG_STRING) {
			free(*(char **)o->target);
			*(char **)o->target = NULL;
		} else if (o->type == CONFIG_STRING_LIST) {
			free_list(*(char ***)o->target);
			*(char ***)o->target = NULL;
		}
	}
}

/* "--schemas-dir DIR", "--[no-]verbose" */
static int usage_flag(const struct config_option *o, struct buf *out)
{
	static const char *const metavars[] = {
	        [CONFIG_STRING] = "STRING",
	        [CONFIG_INTEGER] = "N",
	        [CONFIG_STRING_LIST] = "STRING",
	};
	int r = buf_puts(out, o->type == CONFIG_BOOLEAN ? "--[no-]" : "--");

	for (const char *p = o->name; *p && r == 0; p++)
		r = buf_putc(out, *p == '_' ? '-' : *p);
	if (r == 0 && o->type != CONFIG_BOOLEAN)
		r = buf_printf(out, " %s", o->metavar ? o->metavar : metavars[o->type]);
	return r;
}

int config_usage(const struct config_option *options, struct buf *out)
{
	int r = 0;

	for (size_t i = 0; options[i].name && r == 0; i++) {
		const struct config_option *o = &options[i];
		size_t start = out->len;

		r = buf_puts(out, "  ");
		if (r == 0)
			r = usage_flag(o, out);
		if (r < 0)
			break;
		/* the help starts at USAGE_COLUMN, or on the next line after a long flag */
		if (out->len - start + 2 > USAGE_COLUMN)
			r = buf_printf(out, "\n%*s", USAGE_COLUMN, "");
		else
			r = buf_printf(out, "%*s", (int)(USAGE_COLUMN - (out->len - start)), "");
		if (r == 0)
			r = buf_puts(out, o->help ? o->help : "(undocumented)");
		if (r == 0 && o->type == CONFIG_INTEGER && has_range(o))
			r = buf_printf(out, " (%lld..%lld)", o->min, o->max);
		if (r == 0 && o->type == CONFIG_STRING_LIST)
			r = buf_puts(out, " (repeatable)");
		if (r == 0)
			r = buf_putc(out, '\n');
	}
	return r;
}
