/* school-agent status: every return of the folder, oldest first, with its state.
 *   school-agent status [--dir DIR] [--json]
 * A return is "sent" only when its kept receipt verifies against the county's key now;
 * one whose receipt does not is shown "unverified" with the reason. Queued returns show
 * their attempts and last error, rejected ones the hub's reason. What an interrupted
 * import left is finished or removed first (spool_recover). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <cjson/cJSON.h>

#include "agent.h"
#include "commands.h"
#include "receipt.h"
#include "spool.h"
#include "common/buf.h"
#include "common/json.h"
#include "common/jwk.h"
#include "common/log.h"
#include "common/banned.h"

#define EXTRA_MAX (1024u * 1024)

struct row {
	struct spool_item item;
	enum spool_state state;
	const char *state_name;
	int verified; /* sent: the receipt verifies */
	struct receipt rc;
	char reason[512]; /* rejected: the hub's; unverified: why; queued: the last error */
	char error[64];   /* rejected: the hub's error code */
	long long attempts;
	cJSON *hub_error; /* rejected: the hub's body, when JSON */
};

static void copy_string(char *out, size_t outlen, const cJSON *v)
{
	if (cJSON_IsString(v))
		snprintf(out, outlen, "%s", v->valuestring);
}

static void read_rejection(const struct agent *a, struct row *row, struct buf *extra)
{
	const cJSON *details;
	cJSON *body = NULL;
	char err[256];

	if (spool_read_extra(a, SPOOL_REJECTED, row->item.id, extra) < 0 ||
	    json_parse_untrusted(extra->data ? extra->data : "", extra->len, JSON_MAX_DEPTH, &body,
	                         err, sizeof(err)) < 0 ||
	    !cJSON_IsObject(body)) {
		cJSON_Delete(body);
		snprintf(row->reason, sizeof(row->reason), "(the hub's answer is not kept)");
		return;
	}
	copy_string(row->error, sizeof(row->error),
	            cJSON_GetObjectItemCaseSensitive(body, "error"));
	copy_string(row->reason, sizeof(row->reason),
	            cJSON_GetObjectItemCaseSensitive(body, "message"));
	details = cJSON_GetObjectItemCaseSensitive(body, "details");
	if (cJSON_IsArray(details) && cJSON_GetArraySize(details) > 0) {
		const cJSON *d = cJSON_GetArrayItem(details, 0);
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(d, "pointer");
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(d, "message");
		size_t n = strlen(row->reason);

		if (cJSON_IsString(p) && cJSON_IsString(m))
			snprintf(row->reason + n, sizeof(row->reason) - n, " (%s: %s%s)",
			         p->valuestring, m->valuestring,
			         cJSON_GetArraySize(details) > 1 ? "; ..." : "");
	}
	row->hub_error = body;
}

static void read_retry(const struct agent *a, struct row *row, struct buf *extra)
{
	cJSON *state = NULL;
	const cJSON *n;
	char err[256];

	if (spool_read_extra(a, SPOOL_QUEUED, row->item.id, extra) < 0 ||
	    json_parse_untrusted(extra->data ? extra->data : "", extra->len, 4, &state, err,
	                         sizeof(err)) < 0) {
		cJSON_Delete(state);
		return;
	}
	n = cJSON_GetObjectItemCaseSensitive(state, "attempts");
	if (cJSON_IsNumber(n))
		row->attempts = (long long)n->valuedouble;
	copy_string(row->reason, sizeof(row->reason),
	            cJSON_GetObjectItemCaseSensitive(state, "last_error"));
	cJSON_Delete(state);
}

/* Fills row for id in state s; -errno when the return cannot be read at all. */
static int load_row(const struct agent *a, const struct jwk *county, const char *id,
                    enum spool_state s, struct row *row, struct buf *text, struct buf *extra)
{
	char err[512];
	int r;

	memset(row, 0, sizeof(*row));
	row->state = s;
	row->state_name = spool_state_name(s);
	buf_reset(text);
	buf_reset(extra);
	r = spool_read(a, s, id, text);
	if (r == 0)
		r = spool_item_parse(text->data, text->len, &row->item, err, sizeof(err));
	if (r < 0) {
		log_warning("cannot read the return '%s' in %s/, skipping it", id, spool_folder(s));
		return r;
	}
	if (s == SPOOL_SENT) {
		const struct receipt_expect want = {
		        .submission_id = row->item.id,
		        .sha256 = row->item.sha256,
		        .school_id = a->cfg.school_id,
		        .county_id = a->cfg.county_id,
		        .form = row->item.form,
		        .period = row->item.period,
		};

		r = spool_read_extra(a, s, id, extra);
		if (r == 0)
			r = receipt_verify(extra->data, extra->len, county, &want, &row->rc, err,
			                   sizeof(err));
		else
			snprintf(err, sizeof(err), "no receipt kept");
		if (r < 0) {
			row->state_name = "unverified";
			snprintf(row->reason, sizeof(row->reason), "%s", err);
		} else {
			row->verified = 1;
		}
	} else if (s == SPOOL_REJECTED) {
		read_rejection(a, row, extra);
	} else {
		read_retry(a, row, extra);
	}
	return 0;
}

static const char *on_time_word(const struct row *row)
{
	if (!row->verified)
		return "-";
	return row->rc.on_time == 1 ? "on time" : row->rc.on_time == 0 ? "late" : "-";
}

static int print_text(const struct row *row)
{
	char detail[600] = "";

	if (row->state == SPOOL_REJECTED)
		snprintf(detail, sizeof(detail), "%s%s%s", row->error, row->error[0] ? ": " : "",
		         row->reason);
	else if (row->state == SPOOL_QUEUED && row->attempts > 0)
		snprintf(detail, sizeof(detail), "%lld attempt%s, last: %s", row->attempts,
		         row->attempts == 1 ? "" : "s", row->reason);
	else if (!row->verified && row->state == SPOOL_SENT)
		snprintf(detail, sizeof(detail), "%s", row->reason);
	return printf("%-36s  %-13s  %-7s  %-10s  %-25s  %-7s  %s\n", row->item.id, row->item.form,
	              row->item.period, row->state_name, row->verified ? row->rc.received_at : "-",
	              on_time_word(row), detail);
}

static int print_json(struct row *row, int first)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	int r = -ENOMEM;

	if (!o)
		return r;
	if (!cJSON_AddStringToObject(o, "submission_id", row->item.id) ||
	    !cJSON_AddStringToObject(o, "form", row->item.form) ||
	    !cJSON_AddStringToObject(o, "period", row->item.period) ||
	    !cJSON_AddStringToObject(o, "created_at", row->item.created_at) ||
	    !(row->item.supersedes[0]
	              ? cJSON_AddStringToObject(o, "supersedes", row->item.supersedes)
	              : cJSON_AddNullToObject(o, "supersedes")) ||
	    !cJSON_AddStringToObject(o, "state", row->state_name) ||
	    !(row->verified ? cJSON_AddStringToObject(o, "received_at", row->rc.received_at)
	                    : cJSON_AddNullToObject(o, "received_at")) ||
	    !(row->verified && row->rc.on_time >= 0
	              ? cJSON_AddBoolToObject(o, "on_time", row->rc.on_time)
	              : cJSON_AddNullToObject(o, "on_time")))
		goto out;
	if (row->state == SPOOL_REJECTED) {
		if (!cJSON_AddStringToObject(o, "error", row->error) ||
		    !cJSON_AddStringToObject(o, "reason", row->reason))
			goto out;
		if (row->hub_error) {
			cJSON_AddItemToObject(o, "hub_error", row->hub_error);
			row->hub_error = NULL;
		}
	} else if (row->state == SPOOL_QUEUED) {
		if (!cJSON_AddNumberToObject(o, "attempts", (double)row->attempts) ||
		    !(row->reason[0] ? cJSON_AddStringToObject(o, "last_error", row->reason)
		                     : cJSON_AddNullToObject(o, "last_error")))
			goto out;
	} else if (!row->verified) {
		if (!cJSON_AddStringToObject(o, "reason", row->reason))
			goto out;
	}
	text = cJSON_PrintUnformatted(o);
	if (!text)
		goto out;
	printf("%s%s", first ? "\n" : ",\n", text);
	r = 0;
out:
	cJSON_free(text);
	cJSON_Delete(o);
	return r;
}

int command_status(int argc, char **argv)
{
	static const char synopsis[] = "school-agent status [--dir DIR] [--json]";
	char *dir = NULL;
	int json = 0;
	const struct config_option options[] = {
	        {"dir", CONFIG_STRING, &dir, "the agent's folder (default: .)", "DIR", 0, 0},
	        {"json", CONFIG_BOOLEAN, &json, "one JSON array", NULL, 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};
	struct spool_list lists[3] = {{0}};
	size_t pos[3] = {0, 0, 0}, shown = 0;
	struct buf text, extra;
	struct jwk county = {0};
	struct agent agent;
	char err[1024];
	int next, r, status = EX_OK, opened = 0;

	buf_init(&text, SPOOL_ITEM_MAX);
	buf_init(&extra, EXTRA_MAX);
	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		agent_print_usage(synopsis, options);
		return EX_OK;
	}
	r = config_parse_args(options, argc, argv, &next, err, sizeof(err));
	if (r < 0 || next != argc) {
		fprintf(stderr, "school-agent status: %s\nusage: %s\n",
		        r < 0 ? err : "unexpected argument", synopsis);
		status = EX_USAGE;
		goto out;
	}
	r = agent_open(&agent, dir ? dir : ".", err, sizeof(err));
	opened = 1;
	if (r == 0)
		r = agent_county_key(&agent, &county, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		status = EX_CONFIG;
		goto out;
	}
	/* an import a crash interrupted: queued whole, or not at all */
	if (spool_recover(&agent) < 0)
		log_warning("the outbox may lack the returns of an interrupted import");
	for (int s = 0; s < 3; s++) {
		r = spool_list(&agent, (enum spool_state)s, &lists[s]);
		if (r < 0) {
			log_errno(r, "failed to list %s/", spool_folder((enum spool_state)s));
			status = EX_IOERR;
			goto out;
		}
	}
	if (json)
		printf("[");
	else
		printf("%-36s  %-13s  %-7s  %-10s  %-25s  %-7s  %s\n", "SUBMISSION", "FORM",
		       "PERIOD", "STATE", "RECEIVED", "ON TIME", "DETAIL");
	/* merge the three sorted lists: oldest first whatever the state */
	for (;;) {
		const char *id = NULL;
		struct row row;
		int best = -1;

		for (int s = 0; s < 3; s++)
			if (pos[s] < lists[s].count &&
			    (!id || strcmp(lists[s].ids[pos[s]], id) < 0)) {
				id = lists[s].ids[pos[s]];
				best = s;
			}
		if (best < 0)
			break;
		pos[best]++;
		if (load_row(&agent, &county, id, (enum spool_state)best, &row, &text, &extra) < 0)
			continue;
		r = json ? print_json(&row, shown == 0) : print_text(&row) < 0 ? -EIO : 0;
		cJSON_Delete(row.hub_error);
		if (r < 0) {
			status = EX_IOERR;
			goto out;
		}
		shown++;
	}
	if (json)
		printf("%s]\n", shown ? "\n" : "");
	if (fflush(stdout) != 0)
		status = EX_IOERR;
out:
	for (int s = 0; s < 3; s++)
		spool_list_release(&lists[s]);
	jwk_release(&county);
	if (opened)
		agent_release(&agent);
	buf_release(&text);
	buf_release(&extra);
	config_release(options);
	return status;
}
