/* The school-agent folder: see agent.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "agent.h"
#include "http.h"
#include "common/buf.h"
#include "common/calendar.h"
#include "common/datadir.h"
#include "common/form.h"
#include "common/jwk.h"
#include "common/banned.h"

#define TIMEOUT_DEFAULT 60
#define RETRY_MAX_DEFAULT 3600
#define PARALLEL_DEFAULT 16

void agent_options_bind(struct agent *a)
{
	struct agent_config *c = &a->cfg;
	const struct config_option options[] = {
	        {"school_id", CONFIG_STRING, &c->school_id, "the school's 10-digit code", "ID", 0,
	         0},
	        {"county_id", CONFIG_STRING, &c->county_id, "the county's 6-digit code", "ID", 0,
	         0},
	        {"hub", CONFIG_STRING, &c->hub, "the county hub's base URL", "URL", 0, 0},
	        {"name", CONFIG_STRING, &c->name, "the school's name", "NAME", 0, 0},
	        {"schemas_dir", CONFIG_STRING, &c->schemas_dir, "forms and calendars", "DIR", 0, 0},
	        {"cacert", CONFIG_STRING, &c->cacert, "CA certificates for the hub", "FILE", 0, 0},
	        {"client_cert", CONFIG_STRING, &c->client_cert, "TLS client certificate", "FILE", 0,
	         0},
	        {"client_key", CONFIG_STRING, &c->client_key, "TLS client key", "FILE", 0, 0},
	        {"opened_on", CONFIG_STRING, &c->opened_on, "first open day", "DATE", 0, 0},
	        {"closed_on", CONFIG_STRING, &c->closed_on, "last open day", "DATE", 0, 0},
	        {"timeout", CONFIG_INTEGER, &c->timeout, "seconds per upload", "SECONDS", 1, 3600},
	        {"retry_max", CONFIG_INTEGER, &c->retry_max, "longest wait between attempts",
	         "SECONDS", 1, 7 * 86400},
	        {"parallel", CONFIG_INTEGER, &c->parallel, "uploads in flight at once", "N", 1,
	         HTTP_PARALLEL_MAX},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};

	memset(a->options, 0, sizeof(a->options));
	memcpy(a->options, options, sizeof(options));
	if (c->timeout == 0)
		c->timeout = TIMEOUT_DEFAULT;
	if (c->retry_max == 0)
		c->retry_max = RETRY_MAX_DEFAULT;
	if (c->parallel == 0)
		c->parallel = PARALLEL_DEFAULT;
}

int agent_digits(const char *s, size_t n)
{
	if (!s || strlen(s) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

int agent_open(struct agent *a, const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct stat st;
	int r;

	memset(a, 0, sizeof(*a));
	agent_options_bind(a);
	if (snprintf(a->dir, sizeof(a->dir), "%s", dir) >= (int)sizeof(a->dir))
		return -ENAMETOOLONG;
	r = agent_path(a, path, sizeof(path), AGENT_CONFIG);
	if (r < 0)
		return r;
	if (stat(path, &st) < 0) {
		r = -errno;
		if (r == -ENOENT)
			snprintf(err, errlen,
			         "'%s' is not a school-agent folder (no %s); run "
			         "'school-agent init' first",
			         dir, AGENT_CONFIG);
		else
			snprintf(err, errlen, "cannot read '%s': %s", path, strerror(-r));
		return r;
	}
	r = config_load_file(a->options, path, err, errlen);
	if (r < 0)
		return r;
	if (!agent_digits(a->cfg.school_id, 10) || !agent_digits(a->cfg.county_id, 6) ||
	    !a->cfg.hub) {
		snprintf(err, errlen,
		         "%s: needs school_id (10 digits), county_id (6 digits) and hub", path);
		return -EINVAL;
	}
	return 0;
}

void agent_release(struct agent *a)
{
	config_release(a->options);
}

int agent_path(const struct agent *a, char *out, size_t outlen, const char *fmt, ...)
{
	size_t n = strlen(a->dir);
	va_list ap;
	int k;

	if (n + 1 >= outlen)
		return -ENAMETOOLONG;
	memcpy(out, a->dir, n);
	out[n++] = '/';
	va_start(ap, fmt);
	k = vsnprintf(out + n, outlen - n, fmt, ap);
	va_end(ap);
	if (k < 0 || (size_t)k >= outlen - n)
		return -ENAMETOOLONG;
	return 0;
}

int agent_schemas_dir(const struct agent *a, char *out, size_t outlen)
{
	if (a->cfg.schemas_dir) {
		if (snprintf(out, outlen, "%s", a->cfg.schemas_dir) >= (int)outlen)
			return -ENAMETOOLONG;
		return 0;
	}
	return datadir_schemas(out, outlen);
}

static int sub_dir(const struct agent *a, const char *name, char *out, size_t outlen, char *err,
                   size_t errlen)
{
	char base[PATH_MAX];
	int r;

	r = agent_schemas_dir(a, base, sizeof(base));
	if (r < 0) {
		snprintf(err, errlen, "no schemas folder found; set schemas_dir in %s",
		         AGENT_CONFIG);
		return r;
	}
	if (snprintf(out, outlen, "%s/%s", base, name) >= (int)outlen)
		return -ENAMETOOLONG;
	return 0;
}

int agent_load_forms(const struct agent *a, struct form_set **ret, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int r;

	r = sub_dir(a, "forms", path, sizeof(path), err, errlen);
	if (r < 0)
		return r;
	return form_set_load_dir(path, ret, err, errlen);
}

int agent_load_calendar(const struct agent *a, struct calendar **ret, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int r;

	r = sub_dir(a, "campaigns", path, sizeof(path), err, errlen);
	if (r < 0)
		return r;
	return calendar_load_dir(path, ret, err, errlen);
}

int agent_county_key(const struct agent *a, struct jwk *ret, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct jwk key;
	int r;

	r = agent_path(a, path, sizeof(path), AGENT_COUNTY_KEY);
	if (r < 0)
		return r;
	r = jwk_load(&key, path, err, errlen);
	if (r < 0)
		return r;
	if (key.has_private || strcmp(key.kid, a->cfg.county_id) != 0) {
		snprintf(err, errlen, "%s: not the public key of county %s", path,
		         a->cfg.county_id);
		jwk_release(&key);
		return -EINVAL;
	}
	*ret = key;
	return 0;
}

int agent_exit_code(int r)
{
	switch (r) {
	case -ENOENT:
		return EX_NOINPUT;
	case -EACCES:
	case -EPERM:
		return EX_NOPERM;
	case -EINVAL:
	case -EBADMSG:
	case -EILSEQ:
	case -EMSGSIZE:
		return EX_DATAERR;
	case -EEXIST:
	case -ENOSPC:
	case -EROFS:
		return EX_CANTCREAT;
	case -ENOMEM:
		return EX_OSERR;
	default:
		return EX_IOERR;
	}
}

int agent_parse_args(const struct config_option *options, int argc, char **argv, char **operands,
                     int max, int *ret_count, char *err, size_t errlen)
{
	int i = 0, n = 0, next, r, rest = 0;

	while (i < argc) {
		if (!rest) {
			r = config_parse_args(options, argc - i, argv + i, &next, err, errlen);
			if (r < 0)
				return r;
			rest = next > 1 && strcmp(argv[i + next - 1], "--") == 0;
			i += next;
			if (i >= argc)
				break;
		}
		if (n == max) {
			snprintf(err, errlen, "unexpected argument '%s'", argv[i]);
			return -E2BIG;
		}
		operands[n++] = argv[i];
		if (rest)
			i++;
	}
	*ret_count = n;
	return 0;
}

void agent_print_usage(const char *synopsis, const struct config_option *options)
{
	struct buf usage;

	buf_init(&usage, 64 * 1024);
	printf("usage: %s\n", synopsis);
	if (config_usage(options, &usage) == 0 && usage.data)
		fputs(usage.data, stdout);
	buf_release(&usage);
}
