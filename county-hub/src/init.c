/* `county-hub init`: a new hub folder with its config, key pair and store.
 * Never overwrites: a folder that already holds any of them is refused, so a county key
 * that schools already trust cannot be replaced by accident. hub.json is written last:
 * its presence says the folder is complete. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/config.h"
#include "common/fileio.h"
#include "common/jwk.h"
#include "common/log.h"
#include "hub.h"
#include "store.h"
#include "common/banned.h"

#define ERR_MAX 1024
#define PATH_LEN 4096

static const char synopsis[] = "county-hub init --dir DIR --county-id ID [--region URL] "
                               "[--listen ADDR:PORT]";

static int write_config(const struct hub_config *c, const char *path)
{
	cJSON *root = cJSON_CreateObject();
	char *text = NULL, *line = NULL;
	size_t n;
	int r = -ENOMEM;

	if (!root || !cJSON_AddStringToObject(root, "county_id", c->county_id) ||
	    !cJSON_AddStringToObject(root, "listen", c->listen))
		goto out;
	if (c->region_url && !cJSON_AddStringToObject(root, "region_url", c->region_url))
		goto out;
	text = cJSON_Print(root);
	if (!text)
		goto out;
	n = strlen(text);
	line = malloc(n + 2);
	if (!line)
		goto out;
	memcpy(line, text, n);
	line[n] = '\n';
	line[n + 1] = '\0';
	r = fileio_write_atomic(path, line, n + 1, 0644);
out:
	free(line);
	free(text);
	cJSON_Delete(root);
	return r;
}

static int check_absent(const struct hub_config *c, const char *name)
{
	char path[PATH_LEN];

	if (hub_path(c, name, path, sizeof(path)) < 0)
		return log_errno(-ENAMETOOLONG, "folder path too long");
	if (access(path, F_OK) == 0) {
		log_error("'%s' already exists: this folder holds a hub, refusing to overwrite it",
		          path);
		return -EEXIST;
	}
	return 0;
}

int command_init(int argc, char **argv)
{
	struct config_option table[HUB_OPTIONS_MAX];
	struct hub_config cfg;
	struct sockaddr_storage addr;
	struct store *store = NULL;
	struct jwk key;
	char path[PATH_LEN], err[ERR_MAX] = "";
	const char *names[] = {HUB_CONFIG_FILE, HUB_KEY_FILE, HUB_PUBLIC_KEY_FILE, HUB_STORE_FILE};
	unsigned addr_len;
	size_t n = 0, operands;
	int help = 0, ret = EX_SOFTWARE, r;

	memset(&key, 0, sizeof(key));
	memset(table, 0, sizeof(table));
	if (hub_config_init(&cfg) < 0)
		return EX_OSERR;
	{
		const struct config_option extra[] = {
		        {"county_id", CONFIG_STRING, &cfg.county_id, "6-digit county code", "ID", 0,
		         0},
		        {"region", CONFIG_STRING, &cfg.region_url, "the region server's URL", "URL",
		         0, 0},
		        {"listen", CONFIG_STRING, &cfg.listen, "address to serve on", "ADDR:PORT",
		         0, 0},
		        {"help", CONFIG_BOOLEAN, &help, "show this help", NULL, 0, 0},
		        {NULL, 0, NULL, NULL, NULL, 0, 0},
		};

		hub_options_common(&cfg, table, &n);
		hub_options_add(table, &n, extra);
	}
	r = hub_config_load(&cfg, table, 0, argc, argv, NULL, 0, &operands);
	if (r < 0) {
		ret = EX_USAGE;
		goto out;
	}
	if (help) {
		hub_usage(synopsis, table, 0);
		ret = EX_OK;
		goto out;
	}
	if (!cfg.county_id) {
		log_error("--county-id is required");
		hub_usage(synopsis, table, 1);
		ret = EX_USAGE;
		goto out;
	}
	if (hub_parse_listen(cfg.listen, &addr, &addr_len) < 0) {
		log_error("--listen '%s' is not ADDR:PORT", cfg.listen);
		ret = EX_USAGE;
		goto out;
	}
	if (cfg.region_url && strncmp(cfg.region_url, "http://", 7) != 0 &&
	    strncmp(cfg.region_url, "https://", 8) != 0) {
		log_error("--region '%s' is not an http:// or https:// URL", cfg.region_url);
		ret = EX_USAGE;
		goto out;
	}
	if (mkdir(cfg.dir, 0750) < 0 && errno != EEXIST) {
		log_errno(errno, "cannot create the folder '%s'", cfg.dir);
		ret = EX_CANTCREAT;
		goto out;
	}
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (check_absent(&cfg, names[i]) < 0) {
			ret = EX_CANTCREAT;
			goto out;
		}
	}

	r = jwk_generate(&key, cfg.county_id, err, sizeof(err));
	if (r < 0) {
		log_error("cannot make the county key: %s", err);
		goto out;
	}
	if (hub_path(&cfg, HUB_KEY_FILE, path, sizeof(path)) < 0 ||
	    jwk_save(&key, 1, path, err, sizeof(err)) < 0) {
		log_error("cannot save the county key: %s", err);
		ret = EX_CANTCREAT;
		goto out;
	}
	if (hub_path(&cfg, HUB_PUBLIC_KEY_FILE, path, sizeof(path)) < 0 ||
	    jwk_save(&key, 0, path, err, sizeof(err)) < 0) {
		log_error("cannot save the county public key: %s", err);
		ret = EX_CANTCREAT;
		goto out;
	}
	if (hub_open_store(&cfg, STORE_CREATE, &store) < 0) {
		ret = EX_CANTCREAT;
		goto out;
	}
	if (hub_path(&cfg, HUB_CONFIG_FILE, path, sizeof(path)) < 0 ||
	    (r = write_config(&cfg, path)) < 0) {
		log_errno(r, "cannot write '%s'", path);
		ret = EX_CANTCREAT;
		goto out;
	}
	log_info("initialised county hub \"%s\" in '%s': give schools '%s/%s'", cfg.county_id,
	         cfg.dir, cfg.dir, HUB_PUBLIC_KEY_FILE);
	ret = EX_OK;
out:
	store_close(store);
	jwk_release(&key);
	hub_config_release(&cfg);
	return ret;
}
