/* school-agent requeue: puts returns the hub rejected back in the outbox, for a rejection
 * whose cause is gone (a 401 because the county had not yet registered the school's key,
 * say).
 *   school-agent requeue [--dir DIR] ID...
 *   school-agent requeue [--dir DIR] --all [--error CODE]
 * A return goes back unchanged: the same bytes, so the same submission id, and the hub
 * stores it once however often it is sent. Its kept rejection (rejected/<id>.error.json)
 * is removed; the move is durable before the id is printed (spool_requeue). --all takes
 * every rejected return, or with --error only those the hub refused with that code (the
 * `error` of its answer, as `status` shows it: unauthenticated for 401, forbidden for
 * 403, ...). A file sync moved aside as not a return ("corrupt") is never requeued.
 * Exit 0 when every named return was requeued, 66 when one is unknown, 65 when one is
 * not rejected or not a return. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <cjson/cJSON.h>

#include "agent.h"
#include "commands.h"
#include "spool.h"
#include "common/buf.h"
#include "common/ids.h"
#include "common/json.h"
#include "common/log.h"
#include "common/banned.h"

#define ERROR_BODY_MAX (1024u * 1024)
#define IDS_MAX 1000 /* named on one command line */

/* The hub's error code kept with rejected return id ("" when none is readable). */
static void error_code(const struct agent *a, const char *id, char *out, size_t outlen)
{
	const cJSON *e;
	cJSON *body = NULL;
	struct buf text;

	out[0] = '\0';
	buf_init(&text, ERROR_BODY_MAX);
	if (spool_read_extra(a, SPOOL_REJECTED, id, &text) == 0 &&
	    json_parse_untrusted(text.data ? text.data : "", text.len, JSON_MAX_DEPTH, &body, NULL,
	                         0) == 0) {
		e = cJSON_GetObjectItemCaseSensitive(body, "error");
		if (cJSON_IsString(e))
			snprintf(out, outlen, "%s", e->valuestring);
	}
	cJSON_Delete(body);
	buf_release(&text);
}

/* Requeues id; an exit code. */
static int requeue_one(const struct agent *a, const char *id)
{
	enum spool_state s;
	char err[1024];
	int r;

	if (ids_uuid_check(id, strlen(id)) < 0) {
		log_error("'%s' is not a submission id", id);
		return EX_DATAERR;
	}
	r = spool_find(a, id, &s);
	if (r == -ENOENT) {
		log_error("no return '%s' in this folder", id);
		return EX_NOINPUT;
	}
	if (r == 0 && s != SPOOL_REJECTED) {
		log_error("the return '%s' is %s, not rejected", id, spool_state_name(s));
		return EX_DATAERR;
	}
	if (r == 0)
		r = spool_requeue(a, id, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "%s", strerror(-r));
	if (r < 0) {
		log_error("cannot requeue '%s': %s", id, err);
		return r == -EBADMSG ? EX_DATAERR : agent_exit_code(r);
	}
	printf("%s\n", id);
	return EX_OK;
}

int command_requeue(int argc, char **argv)
{
	static const char synopsis[] = "school-agent requeue [--dir DIR] ID... | "
	                               "--all [--error CODE]";
	char *dir = NULL, *code = NULL;
	int all = 0;
	const struct config_option options[] = {
	        {"dir", CONFIG_STRING, &dir, "the agent's folder (default: .)", "DIR", 0, 0},
	        {"all", CONFIG_BOOLEAN, &all, "every rejected return (or those of --error)", NULL,
	         0, 0},
	        {"error", CONFIG_STRING, &code,
	         "with --all: only the returns the hub refused with this error code, e.g. "
	         "unauthenticated (401)",
	         "CODE", 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};
	struct spool_list rejected = {0};
	char *ids[IDS_MAX];
	struct agent agent;
	char err[1024], found[64];
	int n = 0, r, status = EX_OK, opened = 0, one;
	size_t requeued = 0;

	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		agent_print_usage(synopsis, options);
		return EX_OK;
	}
	r = agent_parse_args(options, argc, argv, ids, IDS_MAX, &n, err, sizeof(err));
	if (r < 0 || (all ? n != 0 : n == 0 || code)) {
		fprintf(stderr, "school-agent requeue: %s\nusage: %s\n",
		        r < 0  ? err
		        : all  ? "--all takes no ID"
		        : code ? "--error goes with --all"
		               : "give the ID of a rejected return, or --all",
		        synopsis);
		status = EX_USAGE;
		goto out;
	}
	r = agent_open(&agent, dir ? dir : ".", err, sizeof(err));
	opened = 1;
	if (r < 0) {
		log_error("%s", err);
		status = EX_CONFIG;
		goto out;
	}
	if (spool_recover(&agent) < 0)
		log_warning("the outbox may lack the returns of an interrupted import");
	if (!all) {
		for (int i = 0; i < n; i++) {
			one = requeue_one(&agent, ids[i]);
			if (one == EX_OK)
				requeued++;
			else if (status == EX_OK)
				status = one;
		}
		goto done;
	}
	r = spool_list(&agent, SPOOL_REJECTED, &rejected);
	if (r < 0) {
		log_errno(r, "failed to list %s/", AGENT_REJECTED);
		status = EX_IOERR;
		goto out;
	}
	for (size_t i = 0; i < rejected.count; i++) {
		error_code(&agent, rejected.ids[i], found, sizeof(found));
		if (strcmp(found, "corrupt") == 0 || (code && strcmp(found, code) != 0))
			continue;
		one = requeue_one(&agent, rejected.ids[i]);
		if (one == EX_OK)
			requeued++;
		else if (status == EX_OK)
			status = one;
	}
done:
	if (requeued)
		log_info("requeued %zu return%s: the next sync sends %s", requeued,
		         requeued == 1 ? "" : "s", requeued == 1 ? "it" : "them");
	else if (all)
		log_info("no rejected return%s%s%s", code ? " with error '" : "", code ? code : "",
		         code ? "'" : "");
	if (fflush(stdout) != 0)
		status = EX_IOERR;
out:
	spool_list_release(&rejected);
	if (opened)
		agent_release(&agent);
	config_release(options);
	return status;
}
