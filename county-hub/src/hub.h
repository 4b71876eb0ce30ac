/* county-hub: the program's read-only configuration and its commands.
 * The configuration comes from DIR/hub.json (written by `county-hub init`, or the file
 * named by --config) and from flags, which win (common/config.h). It is filled once at
 * start and read-only afterwards (STYLE rule 10). */
#ifndef COUNTY_HUB_HUB_H
#define COUNTY_HUB_HUB_H

#include <stddef.h>

#include "common/macro.h"

struct config_option;

#define HUB_CONFIG_FILE "hub.json"
#define HUB_KEY_FILE "county.jwk"
#define HUB_PUBLIC_KEY_FILE "county.pub.jwk"
#define HUB_STORE_FILE "hub.sqlite"
#define HUB_DEFAULT_LISTEN "127.0.0.1:8401"
#define HUB_COUNTY_ID_LEN 6
#define HUB_SCHOOL_ID_LEN 10
#define HUB_OPTIONS_MAX 64 /* options in one command's table */

/* Every option a hub.json may hold, and the ones every command takes. Integers are
 * long long because config.h fills them so. */
struct hub_config {
	char *dir;         /* --dir: the hub's folder (default ".") */
	char *config;      /* --config: default DIR/hub.json */
	char *schemas_dir; /* default datadir_schemas() */
	char *log_level;   /* error, warning, info, debug */

	char *county_id;         /* 6 digits */
	char *region_url;        /* where the outbox goes (forward.h); NULL: nowhere */
	char *region_cacert;     /* CA certificates the region's is checked against; NULL: the
	                          * system's */
	char *listen;            /* ADDR:PORT, [ADDR6]:PORT */
	char *tls_cert;          /* PEM certificate chain of serve's HTTPS; NULL: plain HTTP */
	char *tls_key;           /* its private key (PEM) */
	int insecure_plain_http; /* serve plain HTTP on an address other than loopback */

	long long body_max;          /* bytes of compressed body */
	long long inflate_max;       /* bytes one body may inflate to */
	long long inflate_ratio;     /* inflated / compressed above GZIP_RATIO_FLOOR */
	long long max_connections;   /* MHD_OPTION_CONNECTION_LIMIT */
	long long connection_memory; /* MHD_OPTION_CONNECTION_MEMORY_LIMIT, bytes */
	long long idle_timeout;      /* s of silence before a connection is closed */
	long long request_timeout;   /* s for a whole request (headers and body) to arrive */
	long long min_free_bytes;    /* 507 before reading a body when the store's disk has less */
	long long store_max_bytes;   /* cap on the store's size (0: none): 507 past it */
	long long group_max;         /* uploads in one group commit */
	long long queue_max;         /* uploads waiting for the writer; 503 beyond */
	long long threads;           /* work threads (uploads, reports; 0: one per CPU) */
	long long busy_timeout_ms;   /* SQLite busy timeout of every connection */
	long long forward_batch_max; /* items in one batch to the region */
	long long forward_backoff_base_ms; /* first retry after at most this */
	long long forward_backoff_max_ms;  /* retries never wait longer */
	long long forward_poll_ms;         /* idle: look for new outbox rows this often */
	long long rollup_interval_ms;      /* one (form, period)'s roll-up at most this often */
	long long forward_linger_ms;       /* after a batch not full, wait this long */
	long long forward_timeout;         /* s for one request to the region */
};

/* Puts the defaults in c (all strings NULL but dir, listen and log_level). -ENOMEM. */
int hub_config_init(struct hub_config *c) WUR;
/* Frees every string of c. */
void hub_config_release(struct hub_config *c);

/* Appends to table (which holds *n entries, room for HUB_OPTIONS_MAX) the options of one
 * group: the ones every command takes (dir, config, schemas_dir, log_level), or every
 * hub.json key. The table stays terminated by a NULL entry. */
void hub_options_common(struct hub_config *c, struct config_option *table, size_t *n);
void hub_options_file(struct hub_config *c, struct config_option *table, size_t *n);
/* Appends the options of extra (terminated by a NULL name) to table. */
void hub_options_add(struct config_option *table, size_t *n, const struct config_option *extra);

/* Reads the command line of one command (argv[0] is its name) with the flags of table,
 * loads the hub's config file (DIR/hub.json unless --config names another; with
 * need_file 0 a missing default file is fine), then applies the flags again so they win.
 * Operands (arguments that are not flags) may come between flags: up to max_operands of
 * them go to ret_operands (borrowed from argv), *ret_count says how many. Also fills
 * schemas_dir when still unset, checks county_id, and sets up logging (program
 * "county-hub"); schemas_dir stays NULL when no schemas folder is found (see
 * hub_schemas_dir). Logs what is wrong and returns -EINVAL (usage) or another negative
 * errno. */
int hub_config_load(struct hub_config *c, const struct config_option *table, int need_file,
                    int argc, char **argv, const char **ret_operands, size_t max_operands,
                    size_t *ret_count) WUR;

/* The schemas folder, or NULL after logging that none was found. */
const char *hub_schemas_dir(const struct hub_config *c);

/* DIR/name into out. -ENAMETOOLONG. */
int hub_path(const struct hub_config *c, const char *name, char *out, size_t outlen) WUR;

/* Parses "ADDR:PORT" (IPv4) or "[ADDR]:PORT" (IPv6) into *ret, *ret_len its size.
 * -EINVAL when it is not one. */
struct sockaddr_storage;
int hub_parse_listen(const char *s, struct sockaddr_storage *ret, unsigned *ret_len) WUR;

/* 1 when s is n ASCII digits exactly, else 0. */
int hub_digits(const char *s, size_t n);

/* Opens DIR/hub.sqlite (store.h flags) for a command; logs why not. */
struct store;
int hub_open_store(const struct hub_config *c, int flags, struct store **ret) WUR;
/* The clock of RETURNS_CLOCK (clock.h); logs why not. */
struct clock;
int hub_clock(struct clock *ret) WUR;

/* Prints the usage of a command: its synopsis, then one line per option of table. */
void hub_usage(const char *synopsis, const struct config_option *table, int to_stderr);

/* The commands: argv[0] is the command's name; each returns a sysexits.h exit code. */
int command_init(int argc, char **argv);
int command_roster(int argc, char **argv);
int command_serve(int argc, char **argv);
int command_approve(int argc, char **argv);
int command_unapprove(int argc, char **argv);
int command_unlock(int argc, char **argv);
int command_status(int argc, char **argv);

#endif
