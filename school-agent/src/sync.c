/* school-agent sync: one pass over the outbox (sync.h says what each answer does).
 *   school-agent sync [--dir DIR] [--now] [--cacert FILE] [--client-cert FILE
 *                     --client-key FILE] [--timeout SECONDS]
 * Exit 0 when the outbox is empty afterwards, 75 (EX_TEMPFAIL) when returns remain. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "agent.h"
#include "commands.h"
#include "receipt.h"
#include "spool.h"
#include "sync.h"
#include "common/datetime.h"
#include "common/fileio.h"
#include "common/ids.h"
#include "common/json.h"
#include "common/log.h"
#include "common/banned.h"

#define STATE_MAX (16u * 1024)
#define BACKOFF_SHIFT_MAX 30

int syncer_init(struct syncer *ret, const struct agent *a, char *err, size_t errlen)
{
	const struct http_options o = {
	        .cacert = a->cfg.cacert,
	        .client_cert = a->cfg.client_cert,
	        .client_key = a->cfg.client_key,
	        .timeout_s = (long)a->cfg.timeout,
	};
	int r;

	memset(ret, 0, sizeof(*ret));
	ret->agent = a;
	buf_init(&ret->text, SPOOL_ITEM_MAX);
	/* a gzip member of incompressible data is a little larger than the data */
	buf_init(&ret->body, SPOOL_ITEM_MAX + SPOOL_ITEM_MAX / 100 + 1024);
	buf_init(&ret->state, STATE_MAX);
	r = clock_init(&ret->real, NULL, err, errlen);
	if (r < 0)
		return r;
	r = agent_county_key(a, &ret->county, err, errlen);
	if (r < 0)
		return r;
	r = gzip_compressor_init(&ret->gz, 6);
	if (r < 0) {
		snprintf(err, errlen, "cannot set up gzip: %s", strerror(-r));
		goto fail;
	}
	r = http_client_init(&ret->http, a->cfg.hub, &o, err, errlen);
	if (r < 0)
		goto fail;
	return 0;
fail:
	gzip_compressor_release(&ret->gz);
	jwk_release(&ret->county);
	return r;
}

void syncer_release(struct syncer *s)
{
	http_client_release(&s->http);
	gzip_compressor_release(&s->gz);
	jwk_release(&s->county);
	buf_release(&s->text);
	buf_release(&s->body);
	buf_release(&s->state);
}

/* Backoff state: {"attempts": n, "next_attempt_ms": ms, "next_attempt_at": "...",
 * "last_error": "..."}. A missing or unreadable state is no state. */
struct backoff {
	long long attempts;
	int64_t next_ms;
};

static void parse_backoff(const struct buf *text, struct backoff *ret)
{
	const cJSON *a, *n;
	cJSON *root = NULL;

	ret->attempts = 0;
	ret->next_ms = 0;
	if (json_parse_untrusted(text->data ? text->data : "", text->len, 4, &root, NULL, 0) < 0)
		return;
	a = cJSON_GetObjectItemCaseSensitive(root, "attempts");
	n = cJSON_GetObjectItemCaseSensitive(root, "next_attempt_ms");
	if (cJSON_IsNumber(a) && a->valuedouble >= 0 && a->valuedouble < 1e9)
		ret->attempts = (long long)a->valuedouble;
	if (cJSON_IsNumber(n) && n->valuedouble >= 0 && n->valuedouble < 1e15)
		ret->next_ms = (int64_t)n->valuedouble;
	cJSON_Delete(root);
}

/* The delay after the attempts-th consecutive failure, in ms: full jitter, at least
 * retry_after_s (-1: none). */
static int64_t backoff_delay(const struct syncer *s, long long attempts, long retry_after_s)
{
	int64_t cap_s = s->agent->cfg.retry_max, delay;
	int shift = attempts > BACKOFF_SHIFT_MAX ? BACKOFF_SHIFT_MAX : (int)attempts;

	if (((int64_t)1 << shift) < cap_s)
		cap_s = (int64_t)1 << shift;
	/* uniform in [0, cap] milliseconds */
	delay = (int64_t)randombytes_uniform((uint32_t)(cap_s * 1000 + 1));
	if (retry_after_s >= 0 && delay < (int64_t)retry_after_s * 1000)
		delay = (int64_t)retry_after_s * 1000;
	return delay;
}

/* Records one more failure in the state file path (hub: id NULL) and returns when the
 * next attempt may be made. */
static int64_t record_failure(struct syncer *s, const char *id, const char *why, long retry_after_s)
{
	char path[PATH_MAX], at[DATETIME_RFC3339_MAX];
	struct backoff b = {0};
	cJSON *root = NULL;
	char *text = NULL;
	int64_t now = clock_now_ms(&s->real), next;
	int r;

	buf_reset(&s->state);
	if (id)
		r = spool_read_extra(s->agent, SPOOL_QUEUED, id, &s->state);
	else if ((r = agent_path(s->agent, path, sizeof(path), AGENT_SYNC_STATE)) == 0)
		r = fileio_read(path, &s->state);
	if (r == 0)
		parse_backoff(&s->state, &b);
	b.attempts++;
	next = now + backoff_delay(s, b.attempts, retry_after_s);
	datetime_format_rfc3339(next, DATETIME_SHANGHAI_OFFSET_MIN, at);
	root = cJSON_CreateObject();
	if (!root || !cJSON_AddNumberToObject(root, "attempts", (double)b.attempts) ||
	    !cJSON_AddNumberToObject(root, "next_attempt_ms", (double)next) ||
	    !cJSON_AddStringToObject(root, "next_attempt_at", at) ||
	    !cJSON_AddStringToObject(root, "last_error", why) ||
	    !(text = cJSON_PrintUnformatted(root))) {
		r = -ENOMEM;
	} else if (id) {
		r = spool_write_retry(s->agent, id, text);
	} else {
		r = agent_path(s->agent, path, sizeof(path), AGENT_SYNC_STATE);
		if (r == 0)
			r = fileio_write_atomic(path, text, strlen(text), 0600);
	}
	if (r < 0)
		log_warning_errno(r, "failed to record the backoff state%s%s", id ? " of " : "",
		                  id ? id : "");
	cJSON_free(text);
	cJSON_Delete(root);
	return next;
}

/* The hub answered: forget its failures. */
static void hub_recovered(struct syncer *s, int *cleared)
{
	char path[PATH_MAX];

	if (*cleared)
		return;
	*cleared = 1;
	if (agent_path(s->agent, path, sizeof(path), AGENT_SYNC_STATE) == 0 && unlink(path) == 0)
		log_info("the hub at '%s' answers again", s->agent->cfg.hub);
}

/* When the hub may be tried again (0: now). */
static int64_t hub_next_attempt(struct syncer *s)
{
	char path[PATH_MAX];
	struct backoff b = {0};

	buf_reset(&s->state);
	if (agent_path(s->agent, path, sizeof(path), AGENT_SYNC_STATE) == 0 &&
	    fileio_read(path, &s->state) == 0)
		parse_backoff(&s->state, &b);
	return b.next_ms;
}

static void format_wait(int64_t ms, char *out, size_t outlen)
{
	if (ms < 10000)
		snprintf(out, outlen, "%.1f s", (double)ms / 1000);
	else
		snprintf(out, outlen, "%lld s", (long long)((ms + 999) / 1000));
}

/* The hub's error body as kept in rejected/: the body itself when it is a JSON object,
 * else one made from the status and the start of the text. Caller frees. */
static char *rejection_body(const struct syncer *s, long status)
{
	const struct buf *b = &s->http.body;
	cJSON *parsed = NULL, *made;
	char *text, message[256];

	if (json_parse_untrusted(b->data ? b->data : "", b->len, JSON_MAX_DEPTH, &parsed, NULL,
	                         0) == 0 &&
	    cJSON_IsObject(parsed)) {
		cJSON_Delete(parsed);
		text = malloc(b->len + 1);
		if (text)
			memcpy(text, b->data, b->len + 1);
		return text;
	}
	cJSON_Delete(parsed);
	snprintf(message, sizeof(message), "HTTP %ld: %.200s", status,
	         b->data ? b->data : "(no body)");
	made = cJSON_CreateObject();
	if (!made || !cJSON_AddStringToObject(made, "error", "http_error") ||
	    !cJSON_AddStringToObject(made, "message", message) ||
	    !cJSON_AddNumberToObject(made, "http_status", (double)status)) {
		cJSON_Delete(made);
		return NULL;
	}
	text = cJSON_PrintUnformatted(made);
	cJSON_Delete(made);
	return text;
}

/* The "message" (and 423 "reason") of an error answer, for a log line. */
static void answer_summary(const struct syncer *s, long status, char *out, size_t outlen)
{
	const struct buf *b = &s->http.body;
	const cJSON *m, *reason;
	cJSON *root = NULL;

	snprintf(out, outlen, "HTTP %ld", status);
	if (json_parse_untrusted(b->data ? b->data : "", b->len, JSON_MAX_DEPTH, &root, NULL, 0) <
	    0)
		return;
	m = cJSON_GetObjectItemCaseSensitive(root, "message");
	reason = cJSON_GetObjectItemCaseSensitive(root, "reason");
	snprintf(out, outlen, "HTTP %ld%s%.200s%s%.40s%s", status, cJSON_IsString(m) ? ": " : "",
	         cJSON_IsString(m) ? m->valuestring : "", cJSON_IsString(reason) ? " (" : "",
	         cJSON_IsString(reason) ? reason->valuestring : "",
	         cJSON_IsString(reason) ? ")" : "");
	cJSON_Delete(root);
}

enum outcome {
	OUTCOME_SENT,
	OUTCOME_REJECTED,
	OUTCOME_RETRY_ITEM, /* this return backs off, the pass goes on */
	OUTCOME_RETRY_HUB,  /* the hub backs off, the pass stops */
	OUTCOME_SKIPPED,
};

/* Uploads one return; its outcome. */
static enum outcome upload(struct syncer *s, const char *id, int *hub_cleared, int64_t *ret_next)
{
	const struct agent *a = s->agent;
	char err[512], why[600], wait[32];
	struct spool_item item;
	struct receipt rc;
	long status = 0;
	char *body;
	int r;

	buf_reset(&s->text);
	r = spool_read(a, SPOOL_QUEUED, id, &s->text);
	if (r == -ENOENT)
		return OUTCOME_SKIPPED; /* another process moved it */
	if (r < 0) {
		log_warning_errno(r, "failed to read the queued return '%s', skipping it", id);
		return OUTCOME_SKIPPED;
	}
	r = spool_item_parse(s->text.data, s->text.len, &item, err, sizeof(err));
	if (r == 0 && strcmp(item.id, id) != 0) {
		snprintf(err, sizeof(err), "its submission_id is \"%s\"", item.id);
		r = -EBADMSG;
	}
	if (r < 0) {
		/* not something submit wrote: out of the queue, so it cannot block it */
		char message[600];
		cJSON *local = cJSON_CreateObject();
		char *text = NULL;

		snprintf(message, sizeof(message), "the queued file is not a return: %s", err);
		if (local && cJSON_AddStringToObject(local, "error", "corrupt") &&
		    cJSON_AddStringToObject(local, "message", message))
			text = cJSON_PrintUnformatted(local);
		cJSON_Delete(local);
		log_error("the queued file '%s' is not a return (%s), moving it to %s/", id, err,
		          AGENT_REJECTED);
		r = text ? spool_mark_rejected(a, id, text, strlen(text)) : -ENOMEM;
		cJSON_free(text);
		if (r < 0)
			return OUTCOME_SKIPPED;
		return OUTCOME_REJECTED;
	}
	buf_reset(&s->body);
	r = gzip_compress(&s->gz, s->text.data, s->text.len, &s->body);
	if (r < 0) {
		log_errno(r, "failed to compress '%s'", id);
		return OUTCOME_SKIPPED;
	}
	r = http_post_submission(&s->http, s->body.data, s->body.len, &status, err, sizeof(err));
	if (r < 0) {
		snprintf(why, sizeof(why), "no answer from the hub: %s", err);
		*ret_next = record_failure(s, NULL, why, -1);
		format_wait(*ret_next - clock_now_ms(&s->real), wait, sizeof(wait));
		log_warning("%s, keeping %s queued, retrying in %s", why, id, wait);
		return OUTCOME_RETRY_HUB;
	}
	if (status == 200 || status == 201) {
		const struct receipt_expect want = {
		        .submission_id = item.id,
		        .sha256 = item.sha256,
		        .school_id = a->cfg.school_id,
		        .county_id = a->cfg.county_id,
		        .form = item.form,
		        .period = item.period,
		};

		r = receipt_verify(s->http.body.data ? s->http.body.data : "", s->http.body.len,
		                   &s->county, &want, &rc, err, sizeof(err));
		if (r < 0) {
			snprintf(why, sizeof(why),
			         "the hub answered %ld but its receipt does not "
			         "verify: %s",
			         status, err);
			*ret_next = record_failure(s, NULL, why, -1);
			log_error("%s; keeping %s queued", why, id);
			return OUTCOME_RETRY_HUB;
		}
		r = spool_mark_sent(a, id, s->http.body.data, s->http.body.len);
		if (r < 0) {
			log_errno(r,
			          "failed to keep the receipt of '%s' (it stays queued and is sent "
			          "again)",
			          id);
			return OUTCOME_SKIPPED;
		}
		hub_recovered(s, hub_cleared);
		log_info("sent %s (%s %s), received %s%s", id, item.form, item.period,
		         rc.received_at,
		         rc.on_time == 1   ? ", on time"
		         : rc.on_time == 0 ? ", late"
		                           : "");
		return OUTCOME_SENT;
	}
	answer_summary(s, status, why, sizeof(why));
	if (status == 429 || status == 503 || status == 507 || status < 400 || status > 599) {
		*ret_next = record_failure(s, NULL, why, s->http.retry_after_s);
		format_wait(*ret_next - clock_now_ms(&s->real), wait, sizeof(wait));
		log_warning("the hub answered %s, keeping %s queued, retrying in %s", why, id,
		            wait);
		return OUTCOME_RETRY_HUB;
	}
	hub_recovered(s, hub_cleared);
	if (status == 408 || status == 423 || status >= 500) {
		int64_t next = record_failure(s, id, why, s->http.retry_after_s);

		format_wait(next - clock_now_ms(&s->real), wait, sizeof(wait));
		log_warning("the hub answered %s for %s, keeping it queued, retrying in %s", why,
		            id, wait);
		return OUTCOME_RETRY_ITEM;
	}
	body = rejection_body(s, status);
	r = body ? spool_mark_rejected(a, id, body, strlen(body)) : -ENOMEM;
	free(body);
	if (r < 0) {
		log_errno(r, "failed to move the rejected return '%s'", id);
		return OUTCOME_SKIPPED;
	}
	log_error("the hub rejected %s (%s %s): %s; moved to %s/", id, item.form, item.period, why,
	          AGENT_REJECTED);
	return OUTCOME_REJECTED;
}

int syncer_pass(struct syncer *s, int (*stop)(void *data), void *stop_data, struct sync_result *ret)
{
	struct sync_result res = {0};
	struct spool_list ids = {0};
	int64_t now = clock_now_ms(&s->real), next;
	int r, hub_cleared = 0;

	next = hub_next_attempt(s);
	if (!s->force && next > now) {
		char wait[32];

		format_wait(next - now, wait, sizeof(wait));
		log_info("the hub failed recently; next attempt in %s (--now to try at once)",
		         wait);
		res.hub_next_ms = next;
		goto count;
	}
	r = spool_list(s->agent, SPOOL_QUEUED, &ids);
	if (r < 0)
		return log_errno(r, "failed to list the outbox");
	for (size_t i = 0; i < ids.count; i++) {
		struct backoff b = {0};
		enum outcome o;

		if (stop && stop(stop_data))
			break;
		buf_reset(&s->state);
		if (spool_read_extra(s->agent, SPOOL_QUEUED, ids.ids[i], &s->state) == 0)
			parse_backoff(&s->state, &b);
		if (!s->force && b.next_ms > clock_now_ms(&s->real))
			continue;
		o = upload(s, ids.ids[i], &hub_cleared, &next);
		if (o == OUTCOME_SENT)
			res.sent++;
		else if (o == OUTCOME_REJECTED)
			res.rejected++;
		else if (o == OUTCOME_RETRY_ITEM)
			res.failed++;
		if (o == OUTCOME_RETRY_HUB) {
			res.failed++;
			res.hub_next_ms = next;
			break;
		}
	}
	spool_list_release(&ids);
count:
	r = spool_list(s->agent, SPOOL_QUEUED, &ids);
	if (r < 0)
		return log_errno(r, "failed to list the outbox");
	res.remaining = ids.count;
	spool_list_release(&ids);
	*ret = res;
	return 0;
}

void sync_flags_apply(const struct sync_flags *f, struct agent *a)
{
	char *const *from[] = {&f->cacert, &f->client_cert, &f->client_key};
	char **to[] = {&a->cfg.cacert, &a->cfg.client_cert, &a->cfg.client_key};

	for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
		if (!*from[i])
			continue;
		free(*to[i]);
		*to[i] = strdup(*from[i]); /* NULL on ENOMEM: then the system's defaults */
	}
	if (f->timeout)
		a->cfg.timeout = f->timeout;
}

int command_sync(int argc, char **argv)
{
	static const char synopsis[] = "school-agent sync [--dir DIR] [--now] [OPTIONS]";
	struct sync_flags f = {0};
	int now = 0;
	const struct config_option options[] = {
	        {"dir", CONFIG_STRING, &f.dir, "the agent's folder (default: .)", "DIR", 0, 0},
	        {"now", CONFIG_BOOLEAN, &now, "try every queued return now, ignoring the backoff",
	         NULL, 0, 0},
	        {"cacert", CONFIG_STRING, &f.cacert, "CA certificates for the hub", "FILE", 0, 0},
	        {"client_cert", CONFIG_STRING, &f.client_cert, "TLS client certificate (PEM)",
	         "FILE", 0, 0},
	        {"client_key", CONFIG_STRING, &f.client_key, "TLS client key (PEM)", "FILE", 0, 0},
	        {"timeout", CONFIG_INTEGER, &f.timeout, "seconds one upload may take", "SECONDS", 1,
	         3600},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};
	struct sync_result res;
	struct syncer syncer;
	struct agent agent;
	char err[1024];
	int next, r, status, opened = 0, ready = 0;

	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		agent_print_usage(synopsis, options);
		return EX_OK;
	}
	r = config_parse_args(options, argc, argv, &next, err, sizeof(err));
	if (r < 0 || next != argc) {
		fprintf(stderr, "school-agent sync: %s\nusage: %s\n",
		        r < 0 ? err : "unexpected argument", synopsis);
		status = EX_USAGE;
		goto out;
	}
	r = agent_open(&agent, f.dir ? f.dir : ".", err, sizeof(err));
	opened = 1;
	if (r == 0) {
		sync_flags_apply(&f, &agent);
		r = syncer_init(&syncer, &agent, err, sizeof(err));
		ready = r == 0;
	}
	if (r < 0) {
		log_error("%s", err);
		status = EX_CONFIG;
		goto out;
	}
	syncer.force = now;
	r = syncer_pass(&syncer, NULL, NULL, &res);
	if (r < 0) {
		status = EX_IOERR;
		goto out;
	}
	if (res.sent || res.rejected || res.remaining)
		log_info("%zu sent, %zu rejected, %zu still queued", res.sent, res.rejected,
		         res.remaining);
	status = res.remaining ? EX_TEMPFAIL : EX_OK;
out:
	if (ready)
		syncer_release(&syncer);
	if (opened)
		agent_release(&agent);
	config_release(options);
	return status;
}
