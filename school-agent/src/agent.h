/* A school-agent folder (made by `school-agent init`) and what every command shares:
 *   DIR/agent.json       the configuration (see agent_open)
 *   DIR/school.jwk       the school's private key (0600), school.pub.jwk its public half
 *   DIR/county.pub.jwk   the county hub's public key: receipts are verified against it
 *   DIR/outbox/          <id>.jws queued returns (plus <id>.retry while backing off)
 *   DIR/sent/            <id>.jws and <id>.receipt: delivered, with a verified receipt
 *   DIR/rejected/        <id>.jws and <id>.error.json: refused for good by the hub
 *   DIR/staging/         an import's returns until all are written (spool.h)
 *   DIR/sync-state.json  when the hub may be tried again after a failure
 * Every file is replaced atomically and durably (common/fileio.h). */
#ifndef SCHOOL_AGENT_AGENT_H
#define SCHOOL_AGENT_AGENT_H

#include <limits.h>
#include <stddef.h>

#include "common/config.h"
#include "common/macro.h"

struct calendar;
struct form_set;

#define AGENT_CONFIG "agent.json"
#define AGENT_KEY "school.jwk"
#define AGENT_PUBLIC_KEY "school.pub.jwk"
#define AGENT_COUNTY_KEY "county.pub.jwk"
#define AGENT_SYNC_STATE "sync-state.json"
#define AGENT_OUTBOX "outbox"
#define AGENT_SENT "sent"
#define AGENT_REJECTED "rejected"
#define AGENT_STAGING "staging"

#define AGENT_OPTIONS_MAX 16

/* The keys of agent.json; strings are heap memory owned by the agent. */
struct agent_config {
	char *school_id;   /* 10 digits */
	char *county_id;   /* 6 digits */
	char *hub;         /* base URL of the county hub, e.g. "https://hub.example:8443" */
	char *name;        /* the school's name, for people; may be NULL */
	char *schemas_dir; /* forms and calendars; NULL: datadir_schemas() */
	char *cacert;      /* CA bundle for the hub's certificate; NULL: the system's */
	char *client_cert; /* optional TLS client certificate and key (PEM) */
	char *client_key;
	char *opened_on;     /* optional YYYY-MM-DD: the school opened during the campaign */
	char *closed_on;     /* optional YYYY-MM-DD: its last open day */
	long long timeout;   /* seconds one upload may take */
	long long retry_max; /* seconds: the longest wait between attempts */
	long long parallel;  /* uploads in flight at once during a sync */
};

struct agent {
	char dir[PATH_MAX];
	struct agent_config cfg;
	struct config_option options[AGENT_OPTIONS_MAX]; /* bound to cfg: do not copy */
};

/* Reads dir/agent.json into a (which must stay where it is until agent_release). On
 * failure err says why, e.g. "'x' is not a school-agent folder (no agent.json); run
 * school-agent init". Returns 0, -ENOENT, -EINVAL (bad or incomplete config) or the
 * errors of config_load_file. */
int agent_open(struct agent *a, const char *dir, char *err, size_t errlen) WUR;
void agent_release(struct agent *a);

/* Binds the agent.json option table to cfg (used by init to write the file). */
void agent_options_bind(struct agent *a);

/* Writes dir "/" and the formatted rest into out. -ENAMETOOLONG when it does not fit. */
int agent_path(const struct agent *a, char *out, size_t outlen, const char *fmt, ...)
        PRINTF_LIKE(4, 5) WUR;

/* The schemas folder: schemas_dir, or where datadir_schemas() finds it. */
int agent_schemas_dir(const struct agent *a, char *out, size_t outlen) WUR;
/* The forms of schemas/forms and the calendar of schemas/campaigns; caller frees with
 * form_set_free and calendar_free. err says why on failure. */
int agent_load_forms(const struct agent *a, struct form_set **ret, char *err, size_t errlen) WUR;
int agent_load_calendar(const struct agent *a, struct calendar **ret, char *err, size_t errlen) WUR;

/* The county hub's public key (county.pub.jwk), named by the county id. */
struct jwk;
int agent_county_key(const struct agent *a, struct jwk *ret, char *err, size_t errlen) WUR;

/* 1 when s is exactly n ASCII digits. */
int agent_digits(const char *s, size_t n);

/* The sysexits.h code for a negative errno: EX_NOINPUT, EX_NOPERM, EX_DATAERR,
 * EX_CANTCREAT, EX_OSERR or EX_IOERR. */
int agent_exit_code(int r);

/* config_parse_args() over a whole command line, flags and operands in any order (GNU
 * style: "submit --form incident FILE --supersedes ID"); everything after "--" is an
 * operand. The operands (borrowed from argv) go to operands[0..max-1] and their number to
 * *ret_count. -E2BIG with a message when there are more than max, else the errors of
 * config_parse_args(). */
int agent_parse_args(const struct config_option *options, int argc, char **argv, char **operands,
                     int max, int *ret_count, char *err, size_t errlen) WUR;

/* The usage line and option table of a command on stdout. */
void agent_print_usage(const char *synopsis, const struct config_option *options);

#endif
