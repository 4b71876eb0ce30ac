/* region-server token add --name NAME --role region-inspector|county-viewer [--county ID]
 * [--db CONNINFO]: makes a bearer token for the inspection API and prints it once on
 * stdout. The database keeps only its SHA-256, so a lost token is replaced, not recovered.
 * A token is "rgn_" and 43 base64url characters (32 random bytes).
 * Exit: 0, 64 usage, 65 invalid input (unknown county, name taken), 69 database
 * unavailable, 70 other failures. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include <sodium.h>

#include "common/config.h"
#include "common/ids.h"
#include "common/log.h"
#include "commands.h"
#include "db.h"
#include "common/banned.h"

#define USAGE                                                                                      \
	"token add --name NAME --role region-inspector|county-viewer [--county ID] "               \
	"[--db CONNINFO]"
#define TOKEN_PREFIX "rgn_"
#define TOKEN_RANDOM_BYTES 32
#define TOKEN_NAME_MAX 100

/* 1 when name is 1..TOKEN_NAME_MAX bytes without control characters. */
static int token_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > TOKEN_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return 0;
	return 1;
}

/* A new random token into ret (NUL-terminated). -EIO when libsodium cannot start. */
static int token_generate(char *ret, size_t retlen)
{
	unsigned char secret[TOKEN_RANDOM_BYTES];
	size_t prefix = strlen(TOKEN_PREFIX);

	if (sodium_init() < 0)
		return -EIO;
	if (retlen < prefix + sodium_base64_ENCODED_LEN(TOKEN_RANDOM_BYTES,
	                                                sodium_base64_VARIANT_URLSAFE_NO_PADDING))
		return -ENOBUFS;
	randombytes_buf(secret, sizeof(secret));
	memcpy(ret, TOKEN_PREFIX, prefix);
	sodium_bin2base64(ret + prefix, retlen - prefix, secret, sizeof(secret),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(secret, sizeof(secret));
	return 0;
}

static int token_add(int argc, char **argv)
{
	char *conninfo = NULL, *name = NULL, *role = NULL, *county = NULL;
	const struct config_option options[] = {
	        {.name = "name",
	         .type = CONFIG_STRING,
	         .target = &name,
	         .help = "who holds the token (unique; written to the audit log)",
	         .metavar = "NAME"},
	        {.name = "role",
	         .type = CONFIG_STRING,
	         .target = &role,
	         .help = "region-inspector (every county) or county-viewer (one county)",
	         .metavar = "ROLE"},
	        {.name = "county",
	         .type = CONFIG_STRING,
	         .target = &county,
	         .help = "the county a county-viewer sees",
	         .metavar = "ID"},
	        {.name = "db",
	         .type = CONFIG_STRING,
	         .target = &conninfo,
	         .help = "libpq connection string (default: PG* variables)",
	         .metavar = "CONNINFO"},
	        {.name = NULL},
	};
	char token[128], hash[IDS_SHA256_HEX_LEN + 1], err[DB_ERR_MAX];
	const char *params[4];
	struct db *db = NULL;
	int next, r, status;

	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		command_help(USAGE, options);
		return EX_OK;
	}
	token[0] = '\0';
	status = command_parse(options, argc, argv, USAGE, &next);
	if (status != EX_OK)
		goto out;
	status = EX_USAGE;
	if (next < argc || !name || !role) {
		log_error("usage: region-server %s", USAGE);
		goto out;
	}
	if (strcmp(role, "region-inspector") != 0 && strcmp(role, "county-viewer") != 0) {
		log_error("role '%s' is neither region-inspector nor county-viewer", role);
		goto out;
	}
	if (!county != (strcmp(role, "region-inspector") == 0)) {
		log_error(county ? "a region-inspector sees every county: drop --county"
		                 : "a county-viewer needs --county ID");
		goto out;
	}
	if (!token_name_valid(name)) {
		log_error("token name '%s' must be 1 to %d bytes without control characters", name,
		          TOKEN_NAME_MAX);
		status = EX_DATAERR;
		goto out;
	}
	status = EX_UNAVAILABLE;
	if (command_db_open(conninfo, &db) < 0)
		goto out;
	r = token_generate(token, sizeof(token));
	if (r < 0) {
		log_errno(r, "cannot make a token");
		status = EX_SOFTWARE;
		goto out;
	}
	ids_sha256_hex(token, strlen(token), hash);
	params[0] = name;
	params[1] = role;
	params[2] = county;
	params[3] = hash;
	/* printed inside the transaction: a token that could not be shown is not kept */
	r = db_begin(db, err, sizeof(err));
	if (r >= 0)
		r = db_exec(db,
		            "INSERT INTO tokens (name, role, county_id, secret_sha256) "
		            "VALUES ($1, $2, $3, $4)",
		            4, params, err, sizeof(err));
	if (r == -EEXIST) {
		log_error("a token named '%s' exists already", name);
		status = EX_DATAERR;
		goto out;
	}
	if (r == -ENOENT && strcmp(db_sqlstate(db), "23503") == 0) {
		log_error("county '%s' is not registered (region-server county add)", county);
		status = EX_DATAERR;
		goto out;
	}
	if (r < 0) {
		log_error("cannot store the token: %s", err);
		status = r == -ECONNRESET ? EX_UNAVAILABLE : EX_SOFTWARE;
		goto out;
	}
	/* the only time the token exists outside its holder's hands */
	if (printf("%s\n", token) < 0 || fflush(stdout) != 0) {
		log_error("cannot print the token, not storing it");
		status = EX_IOERR;
		goto out;
	}
	r = db_commit(db, err, sizeof(err));
	if (r < 0) {
		log_error("cannot store the token, the one printed is not valid: %s", err);
		status = r == -ECONNRESET ? EX_UNAVAILABLE : EX_SOFTWARE;
		goto out;
	}
	log_info("token '%s' (%s%s%s) stored; it is shown only this once", name, role,
	         county ? " of county " : "", county ? county : "");
	status = EX_OK;
out:
	sodium_memzero(token, sizeof(token));
	db_free(db);
	config_release(options);
	return status;
}

int command_token(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "add") == 0)
		return token_add(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "--help") == 0) {
		printf("usage: region-server %s\n", USAGE);
		return EX_OK;
	}
	log_error("usage: region-server %s", USAGE);
	return EX_USAGE;
}
