/* school-agent sync: one pass over the outbox (sync.h says what each answer does).
 *   school-agent sync [--dir DIR] [--now] [--parallel N] [--cacert FILE] [--client-cert FILE
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
#define SLOT_KEEP (256u * 1024) /* a slot keeps buffers up to this between uploads */

/* Sets up everything but the county key, which the caller has put in ret->county. */
static int init_with(struct syncer *ret, const struct agent *a, char *err, size_t errlen)
{
	const struct http_options o = {
	        .cacert = a->cfg.cacert,
	        .client_cert = a->cfg.client_cert,
	        .client_key = a->cfg.client_key,
	        .timeout_s = (long)a->cfg.timeout,
	        .parallel = (size_t)a->cfg.parallel,
	        .transfers = 2 * (size_t)a->cfg.parallel, /* as many again prepared ahead */
	};
	struct syncer s = {.agent = a, .county = ret->county};
	int r;

	buf_init(&s.state, STATE_MAX);
	r = clock_init(&s.real, NULL, err, errlen);
	if (r < 0)
		goto fail;
	r = http_client_init(&s.http, a->cfg.hub, &o, err, errlen);
	if (r < 0)
		goto fail;
	r = preparer_new(&s.prep, a, s.http.count);
	if (r < 0) {
		snprintf(err, errlen, "cannot set up the preparer: %s", strerror(-r));
		goto fail;
	}
	s.slots = calloc(s.http.count, sizeof(*s.slots));
	s.group = calloc(SYNC_GROUP_MAX, sizeof(*s.group));
	s.writer.items = calloc(SYNC_GROUP_MAX, sizeof(*s.writer.items));
	s.writer.sent = calloc(SYNC_GROUP_MAX, sizeof(*s.writer.sent));
	if (!s.slots || !s.group || !s.writer.items || !s.writer.sent) {
		snprintf(err, errlen, "out of memory");
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < s.http.count; i++) {
		s.slots[i].up.tag = i;
		buf_init(&s.slots[i].up.text, SPOOL_ITEM_MAX);
		/* a gzip member of incompressible data is a little larger than the data */
		buf_init(&s.slots[i].up.body, SPOOL_ITEM_MAX + SPOOL_ITEM_MAX / 100 + 1024);
	}
	for (size_t i = 0; i < SYNC_GROUP_MAX; i++) {
		buf_init(&s.group[i].receipt, HTTP_BODY_MAX);
		buf_init(&s.writer.items[i].receipt, HTTP_BODY_MAX);
	}
	*ret = s;
	return 0;
fail:
	free(s.slots);
	free(s.group);
	free(s.writer.items);
	free(s.writer.sent);
	preparer_free(s.prep);
	http_client_release(&s.http);
	jwk_release(&s.county);
	return r;
}

int syncer_init(struct syncer *ret, const struct agent *a, char *err, size_t errlen)
{
	struct syncer s = {0};
	int r;

	r = agent_county_key(a, &s.county, err, errlen);
	if (r < 0)
		return r;
	r = init_with(&s, a, err, errlen);
	if (r < 0)
		return r;
	*ret = s;
	return 0;
}

int syncer_init_with_key(struct syncer *ret, const struct agent *a, const struct jwk *county,
                         char *err, size_t errlen)
{
	struct syncer s = {0};
	int r;

	if (strcmp(county->kid, a->cfg.county_id) != 0) {
		snprintf(err, errlen, "the key \"%s\" is not the key of county %s", county->kid,
		         a->cfg.county_id);
		return -EINVAL;
	}
	memcpy(s.county.public_key, county->public_key, sizeof(s.county.public_key));
	memcpy(s.county.kid, county->kid, sizeof(s.county.kid));
	r = init_with(&s, a, err, errlen);
	if (r < 0)
		return r;
	*ret = s;
	return 0;
}

static void release_group(struct sync_delivered *group)
{
	for (size_t i = 0; group && i < SYNC_GROUP_MAX; i++)
		buf_release(&group[i].receipt);
	free(group);
}

void syncer_release(struct syncer *s)
{
	if (s->writer.running)
		pthread_join(s->writer.thread, NULL);
	s->writer.running = 0;
	for (size_t i = 0; s->slots && i < s->http.count; i++) {
		buf_release(&s->slots[i].up.text);
		buf_release(&s->slots[i].up.body);
	}
	release_group(s->group);
	release_group(s->writer.items);
	free(s->writer.sent);
	free(s->slots);
	s->slots = NULL;
	s->group = NULL;
	s->writer.items = NULL;
	s->writer.sent = NULL;
	preparer_free(s->prep);
	s->prep = NULL;
	http_client_release(&s->http);
	jwk_release(&s->county);
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

/* Records a failure in the state file (of the hub: id NULL) and returns when the next
 * attempt may be made. again: the same failure as one already recorded (the hub's, by
 * another upload of the pass), which does not count as one more. */
static int64_t record_failure(struct syncer *s, const char *id, const char *why, long retry_after_s,
                              int again)
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
	if (!again || b.attempts == 0)
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

/* What one pass knows of the hub. */
struct pass {
	struct sync_result res;
	int hub_failed;  /* the hub failed: no new upload starts, its backoff stands */
	int hub_cleared; /* its earlier failures were forgotten */
};

/* The hub failed (for one upload of the pass): it backs off; the first failure of a pass
 * counts, a later one only makes the wait longer if its Retry-After asks for that. When the
 * hub may be tried again. */
static int64_t hub_failed(struct syncer *s, struct pass *p, const char *why, long retry_after_s)
{
	int64_t now = clock_now_ms(&s->real);

	if (!p->hub_failed) {
		p->hub_failed = 1;
		p->res.hub_next_ms = record_failure(s, NULL, why, retry_after_s, 0);
	} else if (retry_after_s >= 0 && now + (int64_t)retry_after_s * 1000 > p->res.hub_next_ms) {
		p->res.hub_next_ms = record_failure(s, NULL, why, retry_after_s, 1);
	}
	return p->res.hub_next_ms;
}

/* The hub answered: forget its failures, unless it failed earlier in this pass. */
static void hub_recovered(struct syncer *s, struct pass *p)
{
	char path[PATH_MAX];

	if (p->hub_cleared || p->hub_failed)
		return;
	p->hub_cleared = 1;
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
static char *rejection_body(const struct buf *b, long status)
{
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
static void answer_summary(const struct buf *b, long status, char *out, size_t outlen)
{
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
	OUTCOME_SENT,       /* its receipt verifies: to be moved to sent/ with its group */
	OUTCOME_REJECTED,   /* moved to rejected/ */
	OUTCOME_RETRY_ITEM, /* this return backs off, the pass goes on */
	OUTCOME_RETRY_HUB,  /* the hub backs off, no new upload starts */
	OUTCOME_SKIPPED,
};

/* Moves a queued file that is not a return out of the queue, so it cannot block it. */
static enum outcome reject_corrupt(struct syncer *s, const char *id, const char *why)
{
	char message[600];
	cJSON *local = cJSON_CreateObject();
	char *text = NULL;
	int r;

	snprintf(message, sizeof(message), "the queued file is not a return: %s", why);
	if (local && cJSON_AddStringToObject(local, "error", "corrupt") &&
	    cJSON_AddStringToObject(local, "message", message))
		text = cJSON_PrintUnformatted(local);
	cJSON_Delete(local);
	log_error("the queued file '%s' is not a return (%s), moving it to %s/", id, why,
	          AGENT_REJECTED);
	r = text ? spool_mark_rejected(s->agent, id, text, strlen(text)) : -ENOMEM;
	cJSON_free(text);
	return r < 0 ? OUTCOME_SKIPPED : OUTCOME_REJECTED;
}

/* Hands the queued return id to the preparer, in the free slot i. */
static void hand_over(struct syncer *s, size_t i, const char *id, int retry)
{
	struct sync_slot *slot = &s->slots[i];

	snprintf(slot->up.id, sizeof(slot->up.id), "%s", id);
	slot->retry = retry;
	slot->state = SYNC_SLOT_PREPARING;
	if (preparer_add(s->prep, &slot->up) < 0)
		slot->state = SYNC_SLOT_FREE; /* cannot happen: as many slots as room */
}

/* A return the preparer gave back that will not be uploaded: what failed is acted on,
 * and its slot is free. */
static void unprepared(struct syncer *s, struct prepared *up, struct pass *p)
{
	if (up->result == -EBADMSG) {
		if (reject_corrupt(s, up->id, up->err) == OUTCOME_REJECTED)
			p->res.rejected++;
	} else if (up->result != -ENOENT && up->result != -ECANCELED) {
		/* ENOENT: another process moved it */
		log_warning_errno(up->result, "%s, skipping it", up->err);
	}
	s->slots[up->tag].state = SYNC_SLOT_FREE;
}

/* Starts the prepared uploads, oldest first, while fewer than parallel are in flight
 * (waiting for one while none is), and sends them. */
static void start_prepared(struct syncer *s, struct pass *p)
{
	struct prepared *up;
	size_t started = 0;

	while (s->http.running < s->http.parallel &&
	       (up = preparer_next(s->prep, s->http.running == 0))) {
		struct sync_slot *slot = &s->slots[up->tag];
		int r;

		if (up->result < 0) {
			unprepared(s, up, p);
			continue;
		}
		r = http_post_start(&s->http, up->tag, up->body.data, up->body.len);
		if (r < 0) {
			log_errno(r, "failed to start the upload of '%s'", up->id);
			slot->state = SYNC_SLOT_FREE;
			continue;
		}
		slot->state = SYNC_SLOT_RUNNING;
		started++;
	}
	if (started > 0)
		http_post_send(&s->http);
}

/* The returns handed to the preparer that will not start this pass: they stay queued. */
static void drop_prepared(struct syncer *s, struct pass *p)
{
	struct prepared *up;

	preparer_cancel(s->prep);
	while ((up = preparer_next(s->prep, 1)))
		unprepared(s, up, p);
}

/* What the end of the upload in slot i means; a return whose receipt verifies joins the
 * group to be moved to sent/ (OUTCOME_SENT). */
static enum outcome ended(struct syncer *s, size_t i, struct pass *p)
{
	const struct http_transfer *t = &s->http.transfers[i];
	struct sync_slot *slot = &s->slots[i];
	const struct agent *a = s->agent;
	const char *id = slot->up.id;
	char err[512], why[600], wait[32];
	char *body;
	int64_t next;
	int r;

	if (t->result < 0) {
		snprintf(why, sizeof(why), "no answer from the hub: %s", t->error);
		next = hub_failed(s, p, why, -1);
		format_wait(next - clock_now_ms(&s->real), wait, sizeof(wait));
		log_warning("%s, keeping %s queued, retrying in %s", why, id, wait);
		return OUTCOME_RETRY_HUB;
	}
	if (t->status == 200 || t->status == 201) {
		const struct receipt_expect want = {
		        .submission_id = slot->up.item.id,
		        .sha256 = slot->up.item.sha256,
		        .school_id = a->cfg.school_id,
		        .county_id = a->cfg.county_id,
		        .form = slot->up.item.form,
		        .period = slot->up.item.period,
		};
		struct sync_delivered *d = &s->group[s->grouped];

		if (s->grouped == SYNC_GROUP_MAX)
			return OUTCOME_SKIPPED; /* cannot happen: the pass flushes before */
		r = receipt_verify(t->body.data ? t->body.data : "", t->body.len, &s->county, &want,
		                   &d->rc, err, sizeof(err));
		if (r < 0) {
			snprintf(why, sizeof(why),
			         "the hub answered %ld but its receipt does not verify: %s",
			         t->status, err);
			hub_failed(s, p, why, -1);
			log_error("%s; keeping %s queued", why, id);
			return OUTCOME_RETRY_HUB;
		}
		buf_reset(&d->receipt);
		r = buf_append(&d->receipt, t->body.data, t->body.len);
		if (r < 0) {
			log_errno(r,
			          "failed to keep the receipt of '%s' (it stays queued and is "
			          "sent again)",
			          id);
			return OUTCOME_SKIPPED;
		}
		d->item = slot->up.item;
		d->retry = slot->retry;
		if (s->grouped++ == 0)
			s->group_since = clock_now_ms(&s->real);
		return OUTCOME_SENT;
	}
	answer_summary(&t->body, t->status, why, sizeof(why));
	if (t->status == 429 || t->status == 503 || t->status == 507 || t->status < 400 ||
	    t->status > 599) {
		next = hub_failed(s, p, why, t->retry_after_s);
		format_wait(next - clock_now_ms(&s->real), wait, sizeof(wait));
		log_warning("the hub answered %s, keeping %s queued, retrying in %s", why, id,
		            wait);
		return OUTCOME_RETRY_HUB;
	}
	hub_recovered(s, p);
	if (t->status == 408 || t->status == 423 || t->status >= 500) {
		next = record_failure(s, id, why, t->retry_after_s, 0);
		format_wait(next - clock_now_ms(&s->real), wait, sizeof(wait));
		log_warning("the hub answered %s for %s, keeping it queued, retrying in %s", why,
		            id, wait);
		return OUTCOME_RETRY_ITEM;
	}
	body = rejection_body(&t->body, t->status);
	r = body ? spool_mark_rejected(a, id, body, strlen(body)) : -ENOMEM;
	free(body);
	if (r < 0) {
		log_errno(r, "failed to move the rejected return '%s'", id);
		return OUTCOME_SKIPPED;
	}
	log_error("the hub rejected %s (%s %s): %s; moved to %s/", id, slot->up.item.form,
	          slot->up.item.period, why, AGENT_REJECTED);
	return OUTCOME_REJECTED;
}

/* A slot's buffers go back to the system after a large return. */
static void slot_trim(struct sync_slot *slot)
{
	if (slot->up.text.alloc > SLOT_KEEP)
		buf_release(&slot->up.text);
	if (slot->up.body.alloc > SLOT_KEEP)
		buf_release(&slot->up.body);
}

/* Acts on the end of the upload in slot i. */
static void collect(struct syncer *s, size_t i, struct pass *p)
{
	enum outcome o = ended(s, i, p);

	if (o == OUTCOME_REJECTED)
		p->res.rejected++;
	else if (o == OUTCOME_RETRY_ITEM || o == OUTCOME_RETRY_HUB)
		p->res.failed++;
	s->slots[i].state = SYNC_SLOT_FREE;
	slot_trim(&s->slots[i]);
}

/* The writer thread: the group to sent/, durably. It touches nothing but the group and
 * the files, and logs nothing: the pass reports the group once it has joined. */
static void *write_group(void *data)
{
	struct sync_writer *w = data;

	w->result = spool_mark_sent_group(w->agent, w->sent, w->count);
	return NULL;
}

/* Counts and logs the group the writer has written. */
static void report_group(struct syncer *s, struct pass *p)
{
	struct sync_writer *w = &s->writer;

	if (w->result < 0)
		log_errno(w->result, "failed to keep the receipts of %zu returns", w->count);
	for (size_t j = 0; j < w->count; j++) {
		const struct sync_delivered *d = &w->items[j];

		if (!w->sent[j].moved) {
			log_error("failed to keep the receipt of '%s' (it stays queued and is sent "
			          "again)",
			          d->item.id);
			continue;
		}
		p->res.sent++;
		hub_recovered(s, p);
		if (s->on_sent)
			s->on_sent(s->on_sent_data, &d->item, &d->rc);
		log_info("sent %s (%s %s), received %s%s", d->item.id, d->item.form, d->item.period,
		         d->rc.received_at,
		         d->rc.on_time == 1   ? ", on time"
		         : d->rc.on_time == 0 ? ", late"
		                              : "");
	}
	w->count = 0;
}

/* Waits for the group being written, if any, and reports it. */
static void finish_group(struct syncer *s, struct pass *p)
{
	if (!s->writer.running)
		return;
	pthread_join(s->writer.thread, NULL);
	s->writer.running = 0;
	report_group(s, p);
}

/* Hands the group of returns whose receipts verified to the writer, once the group before
 * it is written and reported: the uploads go on while it is written. */
static void flush_group(struct syncer *s, struct pass *p)
{
	struct sync_writer *w = &s->writer;
	struct sync_delivered *filled = s->group;

	finish_group(s, p);
	/* the buffers swap: the writer's, reported, hold the next group */
	s->group = w->items;
	w->items = filled;
	w->count = s->grouped;
	s->grouped = 0;
	for (size_t j = 0; j < w->count; j++)
		w->sent[j] = (struct spool_sent){.id = filled[j].item.id,
		                                 .receipt = filled[j].receipt.data,
		                                 .len = filled[j].receipt.len,
		                                 .retry = filled[j].retry};
	w->agent = s->agent;
	if (pthread_create(&w->thread, NULL, write_group, w) == 0) {
		w->running = 1;
		return;
	}
	/* no thread to be had now: written here, as the uploads wait */
	write_group(w);
	report_group(s, p);
}

/* Whether every upload that ended was answered 200 or 201, with a receipt to check: then
 * no answer among them can stop new uploads but a receipt that does not verify, and that
 * stops those after the ones started meanwhile. */
static int ended_with_receipts(const struct syncer *s)
{
	for (size_t i = 0; i < s->http.count; i++) {
		const struct http_transfer *t = &s->http.transfers[i];

		if (s->slots[i].state == SYNC_SLOT_ENDED &&
		    (t->result < 0 || (t->status != 200 && t->status != 201)))
			return 0;
	}
	return 1;
}

/* A free slot, or http.count when there is none. */
static size_t free_slot(const struct syncer *s)
{
	size_t i = 0;

	while (i < s->http.count && s->slots[i].state != SYNC_SLOT_FREE)
		i++;
	return i;
}

int syncer_pass(struct syncer *s, int (*stop)(void *data), void *stop_data, struct sync_result *ret)
{
	struct pass p = {0};
	struct spool_list ids = {0};
	size_t next_id = 0, done;
	int64_t now = clock_now_ms(&s->real), next, waited;
	int r, stopped = 0;

	/* what an interrupted import left complete is queued now (it logs its failures) */
	r = spool_recover(s->agent);
	if (r < 0)
		log_debug("the outbox may lack the returns of an interrupted import");
	next = hub_next_attempt(s);
	if (!s->force && next > now) {
		char wait[32];

		format_wait(next - now, wait, sizeof(wait));
		log_info("the hub failed recently; next attempt in %s (--now to try at once)",
		         wait);
		p.res.hub_next_ms = next;
		goto count;
	}
	r = spool_list(s->agent, SPOOL_QUEUED, &ids);
	if (r < 0)
		return log_errno(r, "failed to list the outbox");
	preparer_begin(s->prep, &s->http);
	for (;;) {
		int going;
		size_t i;

		/* the next uploads go out at once (they were prepared while the hub worked),
		 * before the receipts of those that ended are checked when all carry one */
		if (!p.hub_failed && !stopped && ended_with_receipts(s))
			start_prepared(s, &p);
		/* the answers of the uploads that ended (a failed hub stops the next ones) */
		for (i = 0; i < s->http.count; i++)
			if (s->slots[i].state == SYNC_SLOT_ENDED)
				collect(s, i, &p);
		going = !p.hub_failed && !stopped;
		if (going)
			start_prepared(s, &p);
		/* the group to its writer, while the hub works on the uploads just started */
		waited = clock_now_ms(&s->real) - s->group_since;
		if (s->grouped && (s->grouped + s->http.parallel > SYNC_GROUP_MAX ||
		                   s->http.running == 0 || waited >= SYNC_GROUP_WAIT_MS)) {
			flush_group(s, &p);
			waited = 0;
		}
		/* as many returns again prepared, to start when those in flight end */
		while (going && next_id < ids.count && preparer_count(s->prep) < s->http.parallel &&
		       (i = free_slot(s)) < s->http.count) {
			const char *id = ids.ids[next_id];
			struct backoff b = {0};
			int retry = ids.extra && ids.extra[next_id];

			next_id++;
			if (stop && stop(stop_data)) {
				stopped = 1;
				going = 0;
				break;
			}
			/* the listing says which returns have a .retry (one that another process
			 * writes after it is seen next pass) */
			buf_reset(&s->state);
			if (retry && spool_read_extra(s->agent, SPOOL_QUEUED, id, &s->state) < 0)
				retry = 0;
			if (retry)
				parse_backoff(&s->state, &b);
			if (!s->force && b.next_ms > clock_now_ms(&s->real))
				continue;
			hand_over(s, i, id, retry);
		}
		if (!going)
			drop_prepared(s, &p);
		if (s->http.running == 0) {
			if (preparer_count(s->prep) == 0)
				break;
			continue; /* the first uploads, or after a run of returns left queued */
		}
		/* one upload ends, and whatever else ended with it; or (the preparer wakes it) a
		 * return is prepared */
		if (http_post_wait(&s->http, s->grouped ? (int)(SYNC_GROUP_WAIT_MS - waited) : -1,
		                   &done) == 0)
			continue;
		do
			s->slots[done].state = SYNC_SLOT_ENDED;
		while (http_post_wait(&s->http, 0, &done) == 1);
	}
	preparer_end(s->prep);
	finish_group(s, &p);
	spool_list_release(&ids);
count:
	r = spool_list(s->agent, SPOOL_QUEUED, &ids);
	if (r < 0)
		return log_errno(r, "failed to list the outbox");
	p.res.remaining = ids.count;
	spool_list_release(&ids);
	*ret = p.res;
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
	if (f->parallel)
		a->cfg.parallel = f->parallel;
}

int command_sync(int argc, char **argv)
{
	static const char synopsis[] = "school-agent sync [--dir DIR] [--now] [--parallel N] "
	                               "[OPTIONS]";
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
	        {"parallel", CONFIG_INTEGER, &f.parallel,
	         "uploads in flight at once (default: agent.json's parallel, else 16)", "N", 1,
	         HTTP_PARALLEL_MAX},
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
