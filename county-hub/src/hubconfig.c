/* The hub's configuration: hub.json plus flags. See hub.h. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/datadir.h"
#include "common/http_server.h"
#include "common/log.h"
#include "hub.h"
#include "store.h"
#include "common/banned.h"

#define ERR_MAX 1024
#define PATH_MAX_HUB 4096

int hub_config_init(struct hub_config *c)
{
	memset(c, 0, sizeof(*c));
	c->dir = strdup(".");
	c->listen = strdup(HUB_DEFAULT_LISTEN);
	c->log_level = strdup("info");
	c->body_max = 1024 * 1024;
	c->inflate_max = 8 * 1024 * 1024;
	c->inflate_ratio = 100;
	c->max_connections = 256;
	c->connection_memory = 64 * 1024;
	c->idle_timeout = 15;
	c->request_timeout = 60;
	c->min_free_bytes = 64 * 1024 * 1024;
	c->store_max_bytes = 0;
	c->group_max = 256;
	c->queue_max = 4096;
	c->threads = 0;
	c->busy_timeout_ms = 5000;
	c->forward_batch_max = 500;
	c->forward_backoff_base_ms = 1000;
	c->forward_backoff_max_ms = 300000;
	c->forward_poll_ms = 1000;
	c->rollup_interval_ms = 60000;
	c->forward_linger_ms = 250;
	c->forward_timeout = 60;
	if (!c->dir || !c->listen || !c->log_level) {
		hub_config_release(c);
		return -ENOMEM;
	}
	return 0;
}

void hub_config_release(struct hub_config *c)
{
	char **strings[] = {&c->dir,       &c->config,       &c->schemas_dir, &c->log_level,
	                    &c->county_id, &c->region_url,   &c->listen,      &c->tls_cert,
	                    &c->tls_key,   &c->region_cacert};

	for (size_t i = 0; i < ARRAY_SIZE(strings); i++) {
		free(*strings[i]);
		*strings[i] = NULL;
	}
}

void hub_options_add(struct config_option *table, size_t *n, const struct config_option *extra)
{
	for (; extra->name && *n + 1 < HUB_OPTIONS_MAX; extra++)
		table[(*n)++] = *extra;
	memset(&table[*n], 0, sizeof(table[*n]));
}

void hub_options_common(struct hub_config *c, struct config_option *table, size_t *n)
{
	const struct config_option common[] = {
	        {"dir", CONFIG_STRING, &c->dir, "the hub's folder (default: the current one)",
	         "DIR", 0, 0},
	        {"config", CONFIG_STRING, &c->config, "config file (default: DIR/hub.json)", "FILE",
	         0, 0},
	        {"schemas_dir", CONFIG_STRING, &c->schemas_dir,
	         "folder with the forms and calendars", "DIR", 0, 0},
	        {"log_level", CONFIG_STRING, &c->log_level, "error, warning, info or debug",
	         "LEVEL", 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};

	hub_options_add(table, n, common);
}

void hub_options_file(struct hub_config *c, struct config_option *table, size_t *n)
{
	const struct config_option file[] = {
	        {"schemas_dir", CONFIG_STRING, &c->schemas_dir,
	         "folder with the forms and calendars", "DIR", 0, 0},
	        {"log_level", CONFIG_STRING, &c->log_level, "error, warning, info or debug",
	         "LEVEL", 0, 0},
	        {"county_id", CONFIG_STRING, &c->county_id, "6-digit county code", "ID", 0, 0},
	        {"region_url", CONFIG_STRING, &c->region_url,
	         "the region server's URL: forward the outbox there", "URL", 0, 0},
	        {"region", CONFIG_STRING, &c->region_url, "the same as region_url", "URL", 0, 0},
	        {"region_cacert", CONFIG_STRING, &c->region_cacert,
	         "CA certificates (PEM) to check the region's HTTPS certificate against "
	         "(default: the system's)",
	         "FILE", 0, 0},
	        {"listen", CONFIG_STRING, &c->listen, "address to serve on (127.0.0.1:8401)",
	         "ADDR:PORT", 0, 0},
	        {"tls_cert", CONFIG_STRING, &c->tls_cert,
	         "serve HTTPS with this certificate chain (PEM)", "FILE", 0, 0},
	        {"tls_key", CONFIG_STRING, &c->tls_key, "the private key (PEM) of tls_cert", "FILE",
	         0, 0},
	        {"insecure_plain_http", CONFIG_BOOLEAN, &c->insecure_plain_http,
	         "serve plain HTTP on an address other than loopback (returns cross the network "
	         "in clear text)",
	         NULL, 0, 0},
	        {"body_max", CONFIG_INTEGER, &c->body_max, "bytes of compressed upload", "N", 64,
	         256LL << 20},
	        {"inflate_max", CONFIG_INTEGER, &c->inflate_max, "bytes an upload may inflate to",
	         "N", 1024, 16LL << 20},
	        {"inflate_ratio", CONFIG_INTEGER, &c->inflate_ratio,
	         "inflated/compressed ratio cap (0: none)", "N", 0, 100000},
	        {"max_connections", CONFIG_INTEGER, &c->max_connections, "open connections", "N", 1,
	         65536},
	        {"connection_memory", CONFIG_INTEGER, &c->connection_memory,
	         "bytes of buffers per connection", "N", 4096, 16LL << 20},
	        {"idle_timeout", CONFIG_INTEGER, &c->idle_timeout,
	         "seconds of silence before a connection is closed", "S", 1, 86400},
	        {"request_timeout", CONFIG_INTEGER, &c->request_timeout,
	         "seconds for a whole request to arrive", "S", 1, 86400},
	        {"min_free_bytes", CONFIG_INTEGER, &c->min_free_bytes,
	         "free disk below which uploads get 507", "N", 0, 1LL << 52},
	        {"store_max_bytes", CONFIG_INTEGER, &c->store_max_bytes,
	         "cap on the store's size (0: none)", "N", 0, 1LL << 52},
	        {"group_max", CONFIG_INTEGER, &c->group_max, "uploads in one group commit", "N", 1,
	         100000},
	        {"queue_max", CONFIG_INTEGER, &c->queue_max, "uploads waiting for the store", "N",
	         1, 1000000},
	        {"threads", CONFIG_INTEGER, &c->threads,
	         "threads checking uploads and computing reports (0: one per CPU)", "N", 0, 1024},
	        {"busy_timeout_ms", CONFIG_INTEGER, &c->busy_timeout_ms,
	         "wait for a locked store at most this long", "MS", 0, 600000},
	        {"forward_batch_max", CONFIG_INTEGER, &c->forward_batch_max,
	         "items in one batch to the region", "N", 1, 1000},
	        {"forward_backoff_base_ms", CONFIG_INTEGER, &c->forward_backoff_base_ms,
	         "first retry to the region after at most this", "MS", 1, 3600000},
	        {"forward_backoff_max_ms", CONFIG_INTEGER, &c->forward_backoff_max_ms,
	         "longest wait between retries to the region", "MS", 1, 86400000},
	        {"forward_poll_ms", CONFIG_INTEGER, &c->forward_poll_ms,
	         "look for new outbox rows this often when idle", "MS", 10, 600000},
	        {"forward_linger_ms", CONFIG_INTEGER, &c->forward_linger_ms,
	         "after a batch that was not full, wait this long before the next", "MS", 0, 60000},
	        {"rollup_interval_ms", CONFIG_INTEGER, &c->rollup_interval_ms,
	         "send the roll-up of one form and period at most this often (0: each change)",
	         "MS", 0, 86400000},
	        {"forward_timeout", CONFIG_INTEGER, &c->forward_timeout,
	         "seconds for one request to the region", "S", 1, 3600},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};

	hub_options_add(table, n, file);
}

int hub_digits(const char *s, size_t n)
{
	if (!s || strlen(s) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

int hub_path(const struct hub_config *c, const char *name, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "%s/%s", c->dir, name);

	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

/* One pass over the command line: flags go to table, operands to ret_operands. */
static int parse_flags(const struct config_option *table, int argc, char **argv,
                       const char **ret_operands, size_t max_operands, size_t *ret_count, char *err,
                       size_t errlen)
{
	size_t count = 0;
	int i = 0, next, r;

	for (;;) {
		/* argv[i] plays argv[0]: the command's name, then the last operand */
		r = config_parse_args(table, argc - i, argv + i, &next, err, errlen);
		if (r < 0)
			return r;
		i += next;
		if (i >= argc)
			break;
		if (count >= max_operands) {
			snprintf(err, errlen, "unexpected argument '%s'", argv[i]);
			return -EINVAL;
		}
		ret_operands[count++] = argv[i];
		if (strcmp(argv[i - 1], "--") == 0) {
			/* after "--" everything is an operand */
			while (++i < argc) {
				if (count >= max_operands) {
					snprintf(err, errlen, "unexpected argument '%s'", argv[i]);
					return -EINVAL;
				}
				ret_operands[count++] = argv[i];
			}
			break;
		}
	}
	*ret_count = count;
	return 0;
}

int hub_config_load(struct hub_config *c, const struct config_option *table, int need_file,
                    int argc, char **argv, const char **ret_operands, size_t max_operands,
                    size_t *ret_count)
{
	struct config_option file_table[HUB_OPTIONS_MAX];
	char err[ERR_MAX] = "", path[PATH_MAX_HUB], schemas[PATH_MAX_HUB];
	enum log_level level;
	size_t n = 0, count;
	int r;

	memset(file_table, 0, sizeof(file_table));
	log_setup("county-hub", LOG_LEVEL_INFO, NULL);
	r = parse_flags(table, argc, argv, ret_operands, max_operands, &count, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		return -EINVAL;
	}
	if (c->config) {
		if (snprintf(path, sizeof(path), "%s", c->config) >= (int)sizeof(path))
			return log_errno(-ENAMETOOLONG, "config path too long");
	} else if (hub_path(c, HUB_CONFIG_FILE, path, sizeof(path)) < 0) {
		return log_errno(-ENAMETOOLONG, "folder path too long");
	}
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--help") == 0)
			need_file = -1; /* help needs no hub folder */
	if (need_file >= 0 && (c->config || need_file || access(path, F_OK) == 0)) {
		hub_options_file(c, file_table, &n);
		r = config_load_file(file_table, path, err, sizeof(err));
		if (r == -ENOENT && !c->config)
			log_error("no %s in '%s': run 'county-hub init --dir %s' first",
			          HUB_CONFIG_FILE, c->dir, c->dir);
		else if (r < 0)
			log_error("%s", err);
		if (r < 0)
			return r;
		r = parse_flags(table, argc, argv, ret_operands, max_operands, &count, err,
		                sizeof(err));
		if (r < 0) {
			log_error("%s", err);
			return -EINVAL;
		}
	}
	if (log_parse_level(c->log_level, &level) < 0) {
		log_error("unknown log level '%s': use error, warning, info or debug",
		          c->log_level);
		return -EINVAL;
	}
	log_setup("county-hub", level, NULL);
	if (c->county_id && !hub_digits(c->county_id, HUB_COUNTY_ID_LEN)) {
		log_error("county id '%s' is not a 6-digit code", c->county_id);
		return -EINVAL;
	}
	/* left NULL when not found: only the commands that read forms need it */
	if (!c->schemas_dir && datadir_schemas(schemas, sizeof(schemas)) == 0) {
		c->schemas_dir = strdup(schemas);
		if (!c->schemas_dir)
			return log_errno(-ENOMEM, "out of memory");
	}
	*ret_count = count;
	return 0;
}

void hub_usage(const char *synopsis, const struct config_option *table, int to_stderr)
{
	FILE *out = to_stderr ? stderr : stdout;
	struct buf text;

	buf_init(&text, 64 * 1024);
	fprintf(out, "usage: %s\n\noptions:\n", synopsis);
	if (config_usage(table, &text) == 0 && text.data)
		fputs(text.data, out);
	buf_release(&text);
}

int hub_parse_listen(const char *s, struct sockaddr_storage *ret, unsigned *ret_len)
{
	return http_parse_listen(s, ret, ret_len);
}

int hub_open_store(const struct hub_config *c, int flags, struct store **ret)
{
	char path[PATH_MAX_HUB], err[ERR_MAX] = "";
	int r;

	r = hub_path(c, HUB_STORE_FILE, path, sizeof(path));
	if (r < 0)
		return log_errno(r, "folder path too long");
	r = store_open(path, flags, (int)c->busy_timeout_ms, ret, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err[0] ? err : "cannot open the store");
		return r;
	}
	return 0;
}

int hub_clock(struct clock *ret)
{
	char err[ERR_MAX] = "";
	int r;

	r = clock_init_from_env(ret, err, sizeof(err));
	if (r < 0)
		log_error("RETURNS_CLOCK: %s", err);
	return r;
}

const char *hub_schemas_dir(const struct hub_config *c)
{
	if (!c->schemas_dir)
		log_error("no schemas folder found: use --schemas-dir DIR");
	return c->schemas_dir;
}
