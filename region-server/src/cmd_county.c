/* region-server county add --county-id ID --name NAME --key HUB.pub.jwk [--db CONNINFO]:
 * registers a county and its hub's public key, without which the region accepts nothing
 * from that hub. Adding the same county again with the same name and key is a no-op;
 * with another name or key it is refused (a key change is not a silent overwrite).
 * Exit: 0, 64 usage, 65 invalid or conflicting input, 66 key file unreadable, 69 database
 * unavailable, 70 other failures. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "common/config.h"
#include "common/jwk.h"
#include "common/log.h"
#include "commands.h"
#include "db.h"
#include "common/banned.h"

#define USAGE "county add --county-id ID --name NAME --key HUB.pub.jwk [--db CONNINFO]"
#define COUNTY_NAME_MAX 200 /* bytes; the table allows 200 characters */

/* 1 when s is a 6-digit division code (GB/T 2260). */
static int county_id_valid(const char *s)
{
	if (strlen(s) != 6)
		return 0;
	for (size_t i = 0; i < 6; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* 1 when s holds no control characters (a name goes into reports and CSV files). */
static int name_valid(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > COUNTY_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

/* Inserts the county; when it exists, compares. 0 added, 1 already there as given. */
static int county_store(struct db *db, const char *id, const char *name, const char *key_text,
                        const char *x)
{
	const char *params[3] = {id, name, key_text};
	const char *check[3] = {id, name, x};
	struct pg_result *res = NULL;
	char err[DB_ERR_MAX];
	int r;

	r = db_exec(db,
	            "INSERT INTO counties (county_id, name, hub_key) VALUES ($1, $2, $3::jsonb) "
	            "ON CONFLICT (county_id) DO NOTHING",
	            3, params, err, sizeof(err));
	if (r < 0) {
		log_error("cannot register county '%s': %s", id, err);
		return r;
	}
	if (r == 1)
		return 0;
	r = db_query(db,
	             "SELECT name = $2 AND hub_key->>'x' = $3 FROM counties WHERE county_id = $1",
	             3, check, &res, err, sizeof(err));
	if (r < 0) {
		log_error("cannot read county '%s': %s", id, err);
		return r;
	}
	r = r == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? 1 : -EEXIST;
	db_result_free(res);
	if (r == -EEXIST)
		log_error("county '%s' is already registered with another name or key, refusing",
		          id);
	return r;
}

static int county_add(int argc, char **argv)
{
	char *conninfo = NULL, *county_id = NULL, *name = NULL, *key_path = NULL;
	const struct config_option options[] = {
	        {.name = "county_id",
	         .type = CONFIG_STRING,
	         .target = &county_id,
	         .help = "the county's 6-digit division code",
	         .metavar = "ID"},
	        {.name = "name",
	         .type = CONFIG_STRING,
	         .target = &name,
	         .help = "the county's name (e.g. 伊宁市)",
	         .metavar = "NAME"},
	        {.name = "key",
	         .type = CONFIG_STRING,
	         .target = &key_path,
	         .help = "the hub's public key (JWK file)",
	         .metavar = "HUB.pub.jwk"},
	        {.name = "db",
	         .type = CONFIG_STRING,
	         .target = &conninfo,
	         .help = "libpq connection string (default: PG* variables)",
	         .metavar = "CONNINFO"},
	        {.name = NULL},
	};
	struct db *db = NULL;
	struct jwk key = {0};
	char *key_text = NULL, x[64], err[512];
	int next, r, status;

	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		command_help(USAGE, options);
		return EX_OK;
	}
	status = command_parse(options, argc, argv, USAGE, &next);
	if (status != EX_OK)
		goto out;
	status = EX_USAGE;
	if (next < argc || !county_id || !name || !key_path) {
		log_error("usage: region-server %s", USAGE);
		goto out;
	}
	status = EX_DATAERR;
	if (!county_id_valid(county_id)) {
		log_error("county id '%s' is not a 6-digit division code", county_id);
		goto out;
	}
	if (!name_valid(name)) {
		log_error("county name '%s' must be 1 to %d bytes without control characters", name,
		          COUNTY_NAME_MAX);
		goto out;
	}
	r = jwk_load(&key, key_path, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		status = r == -EINVAL || r == -EMSGSIZE || r == -EPERM ? EX_DATAERR : EX_NOINPUT;
		goto out;
	}
	if (key.has_private) {
		log_error("'%s' holds a private key: give the hub's public key file", key_path);
		goto out;
	}
	if (key.kid[0] && strcmp(key.kid, county_id) != 0) {
		log_error("'%s' names kid '%s', not county '%s'", key_path, key.kid, county_id);
		goto out;
	}
	r = jwk_serialize(&key, 0, &key_text);
	if (r < 0) {
		log_errno(r, "cannot serialize the key of '%s'", key_path);
		status = EX_SOFTWARE;
		goto out;
	}
	/* the x member, for comparing with a registered key */
	sodium_bin2base64(x, sizeof(x), key.public_key, sizeof(key.public_key),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	status = EX_UNAVAILABLE;
	if (command_db_open(conninfo, &db) < 0)
		goto out;
	r = county_store(db, county_id, name, key_text, x);
	if (r < 0) {
		status = r == -EEXIST       ? EX_DATAERR
		         : r == -ECONNRESET ? EX_UNAVAILABLE
		                            : EX_SOFTWARE;
		goto out;
	}
	log_info(r == 1 ? "county '%s' (%s) is already registered with this key"
	                : "registered county '%s' (%s)",
	         county_id, name);
	status = EX_OK;
out:
	db_free(db);
	jwk_text_free(key_text);
	jwk_release(&key);
	config_release(options);
	return status;
}

int command_county(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "add") == 0)
		return county_add(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "--help") == 0) {
		printf("usage: region-server %s\n", USAGE);
		return EX_OK;
	}
	log_error("usage: region-server %s", USAGE);
	return EX_USAGE;
}
