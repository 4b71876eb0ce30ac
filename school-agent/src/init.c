/* school-agent init: sets up a school's folder (agent.h) with a new key pair.
 *   school-agent init --dir DIR --school-id ID --county-id ID --hub URL
 *                     --county-key FILE [--name NAME] [--schemas-dir DIR] [--cacert FILE]
 *                     [--client-cert FILE --client-key FILE]
 * Prints the school's public JWK and its RFC 7638 thumbprint on stdout, for the county.
 * agent.json is written last: a folder without it is not set up, and init may run again. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>

#include <cjson/cJSON.h>

#include "agent.h"
#include "commands.h"
#include "spool.h"
#include "common/datetime.h"
#include "common/fileio.h"
#include "common/jwk.h"
#include "common/log.h"
#include "common/peer_url.h"
#include "common/banned.h"

/* agent.json from the config, only the members that are set. */
static int write_config(const struct agent *a, const char *path)
{
	const struct agent_config *c = &a->cfg;
	const struct {
		const char *name, *value;
	} strings[] = {
	        {"school_id", c->school_id},
	        {"county_id", c->county_id},
	        {"hub", c->hub},
	        {"name", c->name},
	        {"schemas_dir", c->schemas_dir},
	        {"cacert", c->cacert},
	        {"client_cert", c->client_cert},
	        {"client_key", c->client_key},
	        {"opened_on", c->opened_on},
	        {"closed_on", c->closed_on},
	};
	cJSON *root = cJSON_CreateObject();
	char *text = NULL;
	int r = -ENOMEM;

	if (!root)
		return r;
	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
		if (strings[i].value &&
		    !cJSON_AddStringToObject(root, strings[i].name, strings[i].value))
			goto out;
	if (!cJSON_AddNumberToObject(root, "timeout", (double)c->timeout) ||
	    !cJSON_AddNumberToObject(root, "retry_max", (double)c->retry_max) ||
	    !cJSON_AddNumberToObject(root, "parallel", (double)c->parallel))
		goto out;
	text = cJSON_Print(root);
	if (!text)
		goto out;
	r = fileio_write_atomic(path, text, strlen(text), 0600);
out:
	cJSON_free(text);
	cJSON_Delete(root);
	return r;
}

static int check_date(const char *name, const char *value)
{
	struct date d;

	if (value && datetime_parse_date(value, strlen(value), &d) < 0) {
		fprintf(stderr, "school-agent init: --%s '%s' is not a date (YYYY-MM-DD)\n", name,
		        value);
		return -EINVAL;
	}
	return 0;
}

static int absolute(char **path)
{
	char *abs;

	if (!*path || (*path)[0] == '/')
		return 0;
	abs = realpath(*path, NULL);
	if (!abs)
		return -errno;
	free(*path);
	*path = abs;
	return 0;
}

int command_init(int argc, char **argv)
{
	static const char synopsis[] =
	        "school-agent init --dir DIR --school-id ID --county-id ID --hub URL "
	        "--county-key FILE [--name NAME] [OPTIONS]";
	struct agent a;
	char *dir = NULL, *county_key = NULL;
	struct agent_config *c = &a.cfg;
	struct config_option options[] = {
	        {"dir", CONFIG_STRING, &dir, "the folder to set up (created if missing)", "DIR", 0,
	         0},
	        {"school_id", CONFIG_STRING, &c->school_id, "the school's 10-digit code", "ID", 0,
	         0},
	        {"county_id", CONFIG_STRING, &c->county_id, "the county's 6-digit code", "ID", 0,
	         0},
	        {"hub", CONFIG_STRING, &c->hub, "the county hub's URL", "URL", 0, 0},
	        {"county_key", CONFIG_STRING, &county_key, "the county hub's public JWK", "FILE", 0,
	         0},
	        {"name", CONFIG_STRING, &c->name, "the school's name", "NAME", 0, 0},
	        {"schemas_dir", CONFIG_STRING, &c->schemas_dir,
	         "forms and calendars (default: the installed ones)", "DIR", 0, 0},
	        {"cacert", CONFIG_STRING, &c->cacert, "CA certificates for the hub", "FILE", 0, 0},
	        {"client_cert", CONFIG_STRING, &c->client_cert, "TLS client certificate (PEM)",
	         "FILE", 0, 0},
	        {"client_key", CONFIG_STRING, &c->client_key, "TLS client key (PEM)", "FILE", 0, 0},
	        {"opened_on", CONFIG_STRING, &c->opened_on, "the school opened on DATE", "DATE", 0,
	         0},
	        {"closed_on", CONFIG_STRING, &c->closed_on, "the school's last open day", "DATE", 0,
	         0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};
	char err[1024], path[PATH_MAX], thumb[JWK_THUMBPRINT_SIZE];
	struct jwk school = {0}, county = {0};
	char *public_text = NULL;
	struct stat st;
	int next, r, status = EX_OK;

	memset(&a, 0, sizeof(a));
	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		agent_print_usage(synopsis, options);
		return EX_OK;
	}
	r = config_parse_args(options, argc, argv, &next, err, sizeof(err));
	if (r < 0 || next != argc || !dir || !c->school_id || !c->county_id || !c->hub ||
	    !county_key) {
		fprintf(stderr, "school-agent init: %s\nusage: %s\n",
		        r < 0 ? err
		              : "--dir, --school-id, --county-id, --hub and --county-key are "
		                "required",
		        synopsis);
		status = EX_USAGE;
		goto out;
	}
	if (!agent_digits(c->school_id, 10) || !agent_digits(c->county_id, 6)) {
		fprintf(stderr, "school-agent init: the school id is 10 digits and the county id "
		                "6 digits\n");
		status = EX_USAGE;
		goto out;
	}
	if (peer_url_check(c->hub, "hub", err, sizeof(err)) < 0) {
		fprintf(stderr, "school-agent init: %s\n", err);
		status = EX_USAGE;
		goto out;
	}
	if (check_date("opened-on", c->opened_on) < 0 ||
	    check_date("closed-on", c->closed_on) < 0) {
		status = EX_USAGE;
		goto out;
	}
	/* the folder may be used from anywhere later: keep absolute paths */
	if (absolute(&c->schemas_dir) < 0 || absolute(&c->cacert) < 0 ||
	    absolute(&c->client_cert) < 0 || absolute(&c->client_key) < 0) {
		fprintf(stderr, "school-agent init: a file given does not exist\n");
		status = EX_NOINPUT;
		goto out;
	}
	r = jwk_load(&county, county_key, err, sizeof(err));
	if (r < 0 || county.has_private) {
		fprintf(stderr, "school-agent init: %s\n",
		        r < 0 ? err : "--county-key holds a private key: give the public one");
		status = r == -ENOENT ? EX_NOINPUT : EX_DATAERR;
		goto out;
	}
	if (county.kid[0] && strcmp(county.kid, c->county_id) != 0) {
		fprintf(stderr, "school-agent init: the county key is named \"%s\", not \"%s\"\n",
		        county.kid, c->county_id);
		status = EX_DATAERR;
		goto out;
	}
	memcpy(county.kid, c->county_id, strlen(c->county_id) + 1);

	if (snprintf(a.dir, sizeof(a.dir), "%s", dir) >= (int)sizeof(a.dir)) {
		status = EX_USAGE;
		goto out;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_errno(-errno, "failed to create '%s'", dir);
		status = EX_CANTCREAT;
		goto out;
	}
	if (agent_path(&a, path, sizeof(path), AGENT_CONFIG) < 0 || stat(path, &st) == 0) {
		log_error("'%s' is already set up (it has %s), leaving it alone", dir,
		          AGENT_CONFIG);
		status = EX_CANTCREAT;
		goto out;
	}
	r = spool_create(&a);
	if (r < 0) {
		log_errno(r, "failed to create the spool folders in '%s'", dir);
		status = EX_CANTCREAT;
		goto out;
	}
	r = jwk_generate(&school, c->school_id, err, sizeof(err));
	if (r == 0 && (r = agent_path(&a, path, sizeof(path), AGENT_KEY)) == 0)
		r = jwk_save(&school, 1, path, err, sizeof(err));
	if (r == 0 && (r = agent_path(&a, path, sizeof(path), AGENT_PUBLIC_KEY)) == 0)
		r = jwk_save(&school, 0, path, err, sizeof(err));
	if (r == 0 && (r = agent_path(&a, path, sizeof(path), AGENT_COUNTY_KEY)) == 0)
		r = jwk_save(&county, 0, path, err, sizeof(err));
	if (r < 0) {
		log_error("failed to write the keys: %s",
		          r == -ENAMETOOLONG ? "name too long" : err);
		status = EX_CANTCREAT;
		goto out;
	}
	agent_options_bind(&a); /* the defaults of timeout and retry_max */
	r = agent_path(&a, path, sizeof(path), AGENT_CONFIG);
	if (r == 0)
		r = write_config(&a, path);
	if (r < 0) {
		log_errno(r, "failed to write '%s'", path);
		status = EX_CANTCREAT;
		goto out;
	}
	r = jwk_serialize(&school, 0, &public_text);
	if (r == 0)
		r = jwk_thumbprint(&school, thumb);
	if (r < 0) {
		log_errno(r, "failed to print the public key");
		status = EX_SOFTWARE;
		goto out;
	}
	printf("%s\nthumbprint: %s\n", public_text, thumb);
	fprintf(stderr,
	        "school %s is set up in '%s'; give the county %s the public key above "
	        "(also in %s/%s) and check the thumbprint with them\n",
	        c->school_id, dir, c->county_id, dir, AGENT_PUBLIC_KEY);
out:
	jwk_text_free(public_text);
	jwk_release(&school);
	jwk_release(&county);
	config_release(options);
	return status;
}
