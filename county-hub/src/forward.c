/* The outbox forwarder: see forward.h. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <sodium.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/datetime.h"
#include "common/gzip.h"
#include "common/ids.h"
#include "common/json.h"
#include "common/jwk.h"
#include "common/jws.h"
#include "common/log.h"
#include "common/version.h"
#include "forward.h"
#include "metrics.h"
#include "outbox.h"
#include "report.h"
#include "store.h"
#include "common/banned.h"

#define ERR_MAX 512
#define BUSY_RETRY_MS 100 /* the store was locked: try again soon, not a failure */
#define MARK_TRIES 50     /* attempts to record a confirmed batch before giving up */
#define ITEM_OVERHEAD 64  /* {"kind":"submission","jws":,"receipt":} and a comma */

enum item_state {
	ITEM_SEND,    /* text is ready */
	ITEM_COMPUTE, /* a roll-up queued without a body */
	ITEM_SKIP,    /* cannot be sent: marked done with note */
	ITEM_GONE,    /* a roll-up replaced by a newer one meanwhile: not sent, not marked */
	ITEM_HELD,    /* a roll-up sent too recently (rollup_interval_ms): left for later */
};

struct item {
	long long id;
	char kind[16];
	char ref[STORE_REF_MAX];
	char *text; /* the JWS to send */
	char *receipt;
	struct report *report; /* ITEM_COMPUTE: the figures, computed in the read snapshot */
	enum item_state state;
	const char *note;
	size_t size;   /* bytes it adds to the batch payload */
	int too_large; /* skipped: it alone exceeds FORWARD_PAYLOAD_MAX */
};

struct batch {
	struct item *items;
	size_t count, limit;
};

/* When the roll-up of one (form, period) was last computed to be sent (monotonic ms). */
struct rollup_sent {
	char ref[STORE_REF_MAX];
	int64_t at_ms;
};

struct forwarder {
	struct forward_options o;
	struct metrics *metrics;
	struct store *store;
	CURL *curl;
	struct curl_slist *headers;
	char *url;
	struct gzip_compressor gz;
	size_t batch_limit;       /* batch_max, halved by each 413 */
	struct rollup_sent *sent; /* one per roll-up ref sent since the start */
	size_t sent_count, sent_alloc;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int woken;
	atomic_int stopping;
	int started;
};

/* Waits up to ms, or until stopped (or woken, when wakeable). */
static void pause_for(struct forwarder *f, int64_t ms, int wakeable)
{
	struct timespec until;
	int64_t ns;

	clock_gettime(CLOCK_MONOTONIC, &until);
	ns = (int64_t)until.tv_nsec + (ms % 1000) * 1000000;
	until.tv_sec += (time_t)(ms / 1000 + ns / 1000000000);
	until.tv_nsec = (long)(ns % 1000000000);
	pthread_mutex_lock(&f->lock);
	while (!atomic_load(&f->stopping) && !(wakeable && f->woken))
		if (pthread_cond_timedwait(&f->wake, &f->lock, &until) == ETIMEDOUT)
			break;
	if (wakeable)
		f->woken = 0;
	pthread_mutex_unlock(&f->lock);
}

void forward_wake(void *forwarder)
{
	struct forwarder *f = forwarder;

	pthread_mutex_lock(&f->lock);
	f->woken = 1;
	pthread_cond_signal(&f->wake);
	pthread_mutex_unlock(&f->lock);
}

/* Bytes a string adds to JSON text (quotes and escapes included), as cJSON writes it. */
static size_t json_string_size(const char *s)
{
	size_t n = 2;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		n += *p == '"' || *p == '\\' ? 2 : *p < 0x20 ? 6 : 1;
	return n;
}

static void item_report_free(struct item *it)
{
	if (it->report)
		report_release(it->report);
	free(it->report);
	it->report = NULL;
}

static void batch_release(struct batch *b)
{
	for (size_t i = 0; i < b->count; i++) {
		free(b->items[i].text);
		free(b->items[i].receipt);
		item_report_free(&b->items[i]);
	}
	free(b->items);
	memset(b, 0, sizeof(*b));
}

static char *copy_text(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* store_outbox_pending callback: copies one row. */
static int collect(void *data, const struct store_outbox_row *row)
{
	struct batch *b = data;
	struct item *it;

	if (b->count == b->limit)
		return 1;
	it = &b->items[b->count];
	memset(it, 0, sizeof(*it));
	it->id = row->id;
	snprintf(it->kind, sizeof(it->kind), "%s", row->kind);
	snprintf(it->ref, sizeof(it->ref), "%s", row->ref);
	b->count++;
	if (strcmp(row->kind, "submission") == 0) {
		if (!row->jws || !row->receipt) {
			it->state = ITEM_SKIP;
			it->note = "not sent: the submission is not in the store";
			return 0;
		}
		it->text = copy_text(row->jws);
		it->receipt = copy_text(row->receipt);
		if (!it->text || !it->receipt)
			return -ENOMEM;
	} else if (strcmp(row->kind, "roster") == 0 || strcmp(row->kind, "rollup") == 0) {
		if (!row->body && strcmp(row->kind, "rollup") == 0) {
			it->state = ITEM_COMPUTE;
			return 0;
		}
		if (!row->body) {
			it->state = ITEM_SKIP;
			it->note = "not sent: a roster without its body";
			return 0;
		}
		it->text = copy_text(row->body);
		if (!it->text)
			return -ENOMEM;
	} else {
		it->state = ITEM_SKIP;
		it->note = "not sent: unknown kind";
	}
	return 0;
}

static struct rollup_sent *rollup_sent_find(struct forwarder *f, const char *ref)
{
	for (size_t i = 0; i < f->sent_count; i++)
		if (strcmp(f->sent[i].ref, ref) == 0)
			return &f->sent[i];
	return NULL;
}

/* 1 when the roll-up ref was computed to be sent less than rollup_interval_ms ago. */
static int rollup_held(struct forwarder *f, const char *ref, int64_t now_ms)
{
	const struct rollup_sent *s = rollup_sent_find(f, ref);

	return s && now_ms - s->at_ms < f->o.rollup_interval_ms;
}

/* Records that the roll-up ref goes out now. Best effort: without memory it is not held
 * next time, which costs only a roll-up computed sooner. */
static void rollup_note_sent(struct forwarder *f, const char *ref, int64_t now_ms)
{
	struct rollup_sent *s = rollup_sent_find(f, ref);

	if (!s && f->sent_count == f->sent_alloc) {
		size_t n = f->sent_alloc ? f->sent_alloc * 2 : 16;
		struct rollup_sent *grown = realloc(f->sent, n * sizeof(*grown));

		if (!grown)
			return;
		f->sent = grown;
		f->sent_alloc = n;
	}
	if (!s) {
		s = &f->sent[f->sent_count++];
		snprintf(s->ref, sizeof(s->ref), "%s", ref);
	}
	s->at_ms = now_ms;
}

/* Computes the figures of a roll-up queued without a body, in the read snapshot. 0, 1
 * when it cannot ever be computed (the item is then skipped), or a store error. */
static int compute_rollup(struct forwarder *f, struct item *it)
{
	char form[STORE_REF_MAX], *period, err[ERR_MAX] = "";
	int r;

	snprintf(form, sizeof(form), "%s", it->ref);
	period = strchr(form, '/');
	if (!period) {
		it->state = ITEM_SKIP;
		it->note = "not sent: a roll-up ref that is not form/period";
		return 1;
	}
	*period++ = '\0';
	it->report = calloc(1, sizeof(*it->report));
	if (!it->report)
		return -ENOMEM;
	r = report_compute(f->o.src, f->store, form, period, it->report, err, sizeof(err));
	if (r < 0) {
		free(it->report);
		it->report = NULL;
	}
	if (r == -ENOENT || r == -EINVAL || r == -EDOM) {
		log_error("cannot compute the roll-up of %s %s, not forwarding it: %s", form,
		          period, err);
		it->state = ITEM_SKIP;
		it->note = "not sent: the roll-up cannot be computed";
		return 1;
	}
	if (r < 0)
		log_warning("cannot compute the roll-up of %s %s: %s", form, period, err);
	return r;
}

/* Signs a roll-up computed in the snapshot and stores it as its row's body, inside the
 * write transaction. A row no longer pending was replaced meanwhile (a later commit
 * queued a newer roll-up of that form and period): the item is then not sent. */
static int sign_rollup(struct forwarder *f, struct item *it, int64_t now_ms)
{
	char err[ERR_MAX] = "";
	int r;

	r = outbox_rollup_sign(it->report, f->store, f->o.county_key, f->o.county_id, now_ms,
	                       f->o.offset_min, &it->text, err, sizeof(err));
	item_report_free(it);
	if (r < 0) {
		log_warning("cannot sign the roll-up %s: %s", it->ref, err);
		return r;
	}
	r = store_outbox_set_body(f->store, it->id, it->text);
	if (r < 0)
		return r;
	if (r == 0) {
		free(it->text);
		it->text = NULL;
		it->state = ITEM_GONE;
		return 0;
	}
	it->state = ITEM_SEND;
	return 0;
}

static int note_any(void *data, const struct store_outbox_row *row)
{
	(void)row;
	*(int *)data = 1;
	return 1;
}

/* The bytes an item ready to send adds to the batch; one that alone would not fit in a
 * batch is skipped (sending it would block the queue forever). */
static void check_size(struct item *it)
{
	if (it->state != ITEM_SEND)
		return;
	it->size = ITEM_OVERHEAD + json_string_size(it->text) +
	           (it->receipt ? json_string_size(it->receipt) : 0);
	if (it->size > FORWARD_PAYLOAD_MAX) {
		it->state = ITEM_SKIP;
		it->note = "not sent: too large for one batch to the region";
		it->too_large = 1;
	}
}

/* Reads the next batch and readies its roll-ups. The rows are read and the roll-ups
 * computed in one read snapshot, so that the writer is not kept waiting while they are;
 * a write transaction follows only when there is something to write (a roll-up's body,
 * a row that cannot be sent, marked done), and it is short. Returns 0 (b->count may be
 * 0), or -EBUSY or another store error. */
static int prepare(struct forwarder *f, struct batch *b)
{
	int64_t now_ms, mono_ms = clock_monotonic_ms();
	size_t total = 0, keep;
	int any = 0, write = 0, r;

	/* a plain read first: an idle hub takes no snapshot */
	r = store_outbox_pending(f->store, 0, 1, note_any, &any);
	if (r < 0 || !any)
		return r;
	b->limit = f->batch_limit;
	b->items = calloc(b->limit, sizeof(*b->items));
	if (!b->items)
		return -ENOMEM;
	r = store_begin_read(f->store);
	if (r < 0)
		return r;
	r = store_outbox_pending(f->store, 0, b->limit, collect, b);
	/* Read the clock once the snapshot is taken (by that first read): every return it
	 * holds was received earlier, so a roll-up never counts a return received after its
	 * computed_at (the region judges roll-ups by that instant). A return received but
	 * not yet committed is missing from this one; its commit queues a newer roll-up. */
	now_ms = clock_now_ms(f->o.clock);
	for (size_t i = 0; r == 0 && i < b->count; i++) {
		struct item *it = &b->items[i];

		if (it->state == ITEM_COMPUTE && rollup_held(f, it->ref, mono_ms))
			it->state = ITEM_HELD;
		if (it->state == ITEM_COMPUTE)
			r = compute_rollup(f, it);
		check_size(it);
		write |= it->state == ITEM_COMPUTE || it->state == ITEM_SKIP;
		r = r > 0 ? 0 : r;
	}
	store_rollback(f->store); /* the end of the snapshot: nothing was written */
	if (r < 0)
		return r;
	if (write) {
		r = store_begin(f->store);
		for (size_t i = 0; r == 0 && i < b->count; i++) {
			struct item *it = &b->items[i];

			if (it->state == ITEM_COMPUTE) {
				r = sign_rollup(f, it, now_ms);
				check_size(it);
				if (r == 0 && it->state == ITEM_SEND)
					rollup_note_sent(f, it->ref, mono_ms);
			}
			if (r == 0 && it->state == ITEM_SKIP) {
				log_error("outbox row %lld (%s \"%s\") %s", it->id, it->kind,
				          it->ref, it->note);
				r = store_outbox_done(f->store, it->id, now_ms, it->note);
			}
		}
		if (r == 0)
			r = store_commit(f->store);
		if (r < 0) {
			store_rollback(f->store);
			return r;
		}
	}
	for (size_t i = 0; i < b->count; i++)
		if (b->items[i].too_large)
			atomic_fetch_add(&f->metrics->forward_rejected, 1);
	/* keep what fits in one batch; skipped rows are done already */
	for (keep = 0; keep < b->count; keep++) {
		struct item *it = &b->items[keep];

		if (it->state != ITEM_SEND)
			continue;
		if (total + it->size > FORWARD_PAYLOAD_MAX)
			break;
		total += it->size;
	}
	for (size_t i = keep; i < b->count; i++) {
		free(b->items[i].text);
		free(b->items[i].receipt);
		item_report_free(&b->items[i]);
	}
	b->count = keep;
	return 0;
}

/* The batch payload of docs/PROTOCOL.md, signed and gzipped into out. */
static int make_body(struct forwarder *f, const struct batch *b, const char *batch_id,
                     struct buf *out, char *err, size_t errlen)
{
	cJSON *root = cJSON_CreateObject(), *items, *o;
	char at[DATETIME_RFC3339_MAX], *payload = NULL, *jws = NULL;
	size_t jws_len = 0;
	int r = -ENOMEM;

	datetime_format_rfc3339(clock_now_ms(f->o.clock), f->o.offset_min, at);
	if (!root || !cJSON_AddStringToObject(root, "type", "batch") ||
	    !cJSON_AddStringToObject(root, "county_id", f->o.county_id) ||
	    !cJSON_AddStringToObject(root, "batch_id", batch_id) ||
	    !cJSON_AddStringToObject(root, "sent_at", at) ||
	    !(items = cJSON_AddArrayToObject(root, "items")))
		goto out;
	for (size_t i = 0; i < b->count; i++) {
		const struct item *it = &b->items[i];

		if (it->state != ITEM_SEND)
			continue;
		o = cJSON_CreateObject();
		if (!o)
			goto out;
		cJSON_AddItemToArray(items, o);
		if (!cJSON_AddStringToObject(o, "kind", it->kind) ||
		    !cJSON_AddStringToObject(o, "jws", it->text) ||
		    (it->receipt && !cJSON_AddStringToObject(o, "receipt", it->receipt)))
			goto out;
	}
	payload = cJSON_PrintUnformatted(root);
	if (!payload)
		goto out;
	r = jws_sign(f->o.county_key, f->o.county_id, payload, strlen(payload), &jws, &jws_len, err,
	             errlen);
	if (r < 0)
		goto out;
	buf_reset(out);
	r = gzip_compress(&f->gz, jws, jws_len, out);
	if (r < 0)
		snprintf(err, errlen, "cannot gzip the batch: %s", strerror(-r));
out:
	if (r == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	free(jws);
	free(payload);
	cJSON_Delete(root);
	return r;
}

static size_t on_answer(char *data, size_t size, size_t n, void *userdata)
{
	struct buf *answer = userdata;

	(void)size;
	return buf_append(answer, data, n) < 0 ? 0 : n; /* past the cap: fail the transfer */
}

static int on_progress(void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
	struct forwarder *f = data;

	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	return atomic_load(&f->stopping) ? 1 : 0;
}

/* POSTs body; 0 with *ret_status and the answer, or -EIO with err. */
static int post(struct forwarder *f, const struct buf *body, struct buf *answer, long *ret_status,
                char *err, size_t errlen)
{
	char curl_err[CURL_ERROR_SIZE] = "";
	CURLcode rc;
	long status = 0;

	buf_reset(answer);
	curl_easy_setopt(f->curl, CURLOPT_POSTFIELDS, body->data);
	curl_easy_setopt(f->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
	curl_easy_setopt(f->curl, CURLOPT_WRITEDATA, answer);
	curl_easy_setopt(f->curl, CURLOPT_ERRORBUFFER, curl_err);
	rc = curl_easy_perform(f->curl);
	curl_easy_setopt(f->curl, CURLOPT_ERRORBUFFER, NULL);
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s", curl_err[0] ? curl_err : curl_easy_strerror(rc));
		return -EIO;
	}
	curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &status);
	*ret_status = status;
	return 0;
}

/* Checks the region's 200 answer against the batch: one result per item, each with its
 * index and a known status. Fills status[i] (0 stored, 1 duplicate, 2 rejected) and
 * reason[i] (borrowed from *ret_root). -EBADMSG with err when it does not match. */
static int read_answer(const struct buf *answer, const char *batch_id, size_t n, int *status,
                       const char **reason, cJSON **ret_root, char *err, size_t errlen)
{
	cJSON *root = NULL;
	const cJSON *id, *results, *res;
	char why[256] = "";
	size_t seen = 0;
	int r;

	r = json_parse_untrusted(answer->data ? answer->data : "", answer->len, 8, &root, why,
	                         sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "the region's answer is not JSON: %s", why);
		return -EBADMSG;
	}
	id = cJSON_GetObjectItemCaseSensitive(root, "batch_id");
	results = cJSON_GetObjectItemCaseSensitive(root, "results");
	if (!cJSON_IsString(id) || strcmp(id->valuestring, batch_id) != 0 ||
	    !cJSON_IsArray(results) || (size_t)cJSON_GetArraySize(results) != n) {
		snprintf(err, errlen, "the region's answer is not for this batch of %zu items", n);
		goto bad;
	}
	for (size_t i = 0; i < n; i++)
		status[i] = -1;
	cJSON_ArrayForEach(res, results)
	{
		const cJSON *index = cJSON_GetObjectItemCaseSensitive(res, "index");
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(res, "status");
		const cJSON *why_item = cJSON_GetObjectItemCaseSensitive(res, "reason");
		double d = cJSON_IsNumber(index) ? index->valuedouble : -1;
		size_t i;

		if (!(d >= 0 && d < (double)n && d == (double)(size_t)d) || !cJSON_IsString(st)) {
			snprintf(err, errlen,
			         "the region's answer has a result without a valid "
			         "index and status");
			goto bad;
		}
		i = (size_t)d;
		if (status[i] >= 0) {
			snprintf(err, errlen, "the region's answer has two results for item %zu",
			         i);
			goto bad;
		}
		if (strcmp(st->valuestring, "stored") == 0)
			status[i] = 0;
		else if (strcmp(st->valuestring, "duplicate") == 0)
			status[i] = 1;
		else if (strcmp(st->valuestring, "rejected") == 0)
			status[i] = 2;
		else {
			snprintf(err, errlen, "the region's answer has an unknown status \"%.40s\"",
			         st->valuestring);
			goto bad;
		}
		reason[i] = cJSON_IsString(why_item) ? why_item->valuestring : NULL;
		seen++;
	}
	if (seen != n) {
		snprintf(err, errlen, "the region's answer misses results");
		goto bad;
	}
	*ret_root = root;
	return 0;
bad:
	cJSON_Delete(root);
	return -EBADMSG;
}

/* Records a confirmed batch: every item done (rejected ones with their reason). Retries
 * while the store is busy; a batch that cannot be recorded is sent again later, which
 * the region answers as duplicates. */
static void mark_done(struct forwarder *f, const struct batch *b, const int *status,
                      const char *const *reason)
{
	int64_t now_ms = clock_now_ms(f->o.clock);
	char note[256];
	int r = -EBUSY;

	for (int tries = 0; r == -EBUSY && tries < MARK_TRIES; tries++) {
		if (tries)
			pause_for(f, BUSY_RETRY_MS, 0);
		r = store_begin(f->store);
		for (size_t i = 0, k = 0; r == 0 && i < b->count; i++) {
			if (b->items[i].state != ITEM_SEND)
				continue;
			if (status[k] == 2)
				snprintf(note, sizeof(note), "rejected by the region: %s",
				         reason[k] ? reason[k] : "no reason given");
			r = store_outbox_done(f->store, b->items[i].id, now_ms,
			                      status[k] == 2 ? note : NULL);
			k++;
		}
		if (r == 0)
			r = store_commit(f->store);
		if (r < 0)
			store_rollback(f->store);
	}
	if (r < 0)
		log_warning_errno(r,
		                  "cannot record a batch the region confirmed, it will be sent "
		                  "again: %s",
		                  store_errmsg(f->store));
}

/* Counts a failed attempt on the rows from the batch's first to its last item sent (best
 * effort: a busy store skips it). */
static void note_failure(struct forwarder *f, const struct batch *b, const char *error)
{
	long long first = -1, last = -1;

	for (size_t i = 0; i < b->count; i++)
		if (b->items[i].state == ITEM_SEND) {
			first = first < 0 ? b->items[i].id : first;
			last = b->items[i].id;
		}
	if (first < 0 || store_begin(f->store) < 0)
		return;
	if (store_outbox_failed(f->store, first, last, error) < 0 || store_commit(f->store) < 0)
		store_rollback(f->store);
}

/* One round. Returns the number of items sent (0: nothing pending), -EBUSY (store
 * locked), or another negative errno with err (the region did not confirm). */
static int forward_round(struct forwarder *f, char *err, size_t errlen)
{
	struct batch b;
	struct buf body, answer;
	char batch_id[IDS_UUID_LEN + 1];
	const char **reason = NULL;
	int *status = NULL;
	cJSON *root = NULL;
	size_t n = 0, rejected = 0, duplicates = 0;
	long http = 0;
	int r;

	memset(&b, 0, sizeof(b));
	buf_init(&body, 16u * 1024 * 1024);
	buf_init(&answer, FORWARD_ANSWER_MAX);
	r = prepare(f, &b);
	if (r < 0) {
		if (r != -EBUSY)
			snprintf(err, errlen, "cannot read the outbox: %s", store_errmsg(f->store));
		goto out;
	}
	for (size_t i = 0; i < b.count; i++)
		n += b.items[i].state == ITEM_SEND;
	if (n == 0) {
		/* rows skipped or replaced: look again at once; roll-ups held only: idle */
		r = 0;
		for (size_t i = 0; i < b.count; i++)
			r |= b.items[i].state == ITEM_SKIP || b.items[i].state == ITEM_GONE;
		goto out;
	}
	r = ids_uuid7(f->o.clock, batch_id);
	if (r == 0)
		r = make_body(f, &b, batch_id, &body, err, errlen);
	if (r < 0)
		goto failed;
	r = post(f, &body, &answer, &http, err, errlen);
	if (r < 0)
		goto failed;
	if (http != 200) {
		snprintf(err, errlen, "the region answered %ld%s%.200s", http,
		         answer.len ? ": " : "", answer.len ? answer.data : "");
		for (char *p = err; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		if (http == 413 && f->batch_limit > 1) {
			f->batch_limit = (f->batch_limit + 1) / 2;
			log_warning("the region refused a batch of %zu items as too large: sending "
			            "at most %zu from now on",
			            n, f->batch_limit);
		}
		r = -EPROTO;
		goto failed;
	}
	status = calloc(n, sizeof(*status));
	reason = calloc(n, sizeof(*reason));
	if (!status || !reason) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto failed;
	}
	r = read_answer(&answer, batch_id, n, status, reason, &root, err, errlen);
	if (r < 0)
		goto failed;
	for (size_t i = 0, k = 0; i < b.count; i++) {
		if (b.items[i].state != ITEM_SEND)
			continue;
		if (status[k] == 2) {
			rejected++;
			log_warning("the region rejected %s \"%s\" (outbox row %lld): %s",
			            b.items[i].kind, b.items[i].ref, b.items[i].id,
			            reason[k] ? reason[k] : "no reason given");
		}
		duplicates += status[k] == 1;
		k++;
	}
	mark_done(f, &b, status, reason);
	atomic_fetch_add(&f->metrics->forward_batches, 1);
	atomic_fetch_add(&f->metrics->forwarded_items, n);
	atomic_fetch_add(&f->metrics->forward_rejected, rejected);
	log_info("forwarded batch %s: %zu items, %zu stored, %zu duplicate, %zu rejected", batch_id,
	         n, n - duplicates - rejected, duplicates, rejected);
	r = (int)n;
	goto out;
failed:
	note_failure(f, &b, err);
	if (r >= 0)
		r = -EIO;
out:
	cJSON_Delete(root);
	free(status);
	free(reason);
	batch_release(&b);
	buf_release(&body);
	buf_release(&answer);
	return r;
}

/* Full jitter: uniform in [0, min(max, base * 2^(failures - 1))]. */
static int64_t backoff_ms(const struct forwarder *f, unsigned failures)
{
	int64_t cap = f->o.backoff_base_ms;

	for (unsigned i = 1; i < failures && cap < f->o.backoff_max_ms; i++)
		cap *= 2;
	if (cap > f->o.backoff_max_ms)
		cap = f->o.backoff_max_ms;
	if (cap <= 0)
		return 0;
	if (cap >= (int64_t)UINT32_MAX)
		cap = (int64_t)UINT32_MAX - 1;
	return (int64_t)randombytes_uniform((uint32_t)cap + 1);
}

static void *forward_main(void *data)
{
	struct forwarder *f = data;
	char err[ERR_MAX];
	unsigned failures = 0;
	int64_t delay;
	int r;

	pthread_setname_np(pthread_self(), "hub-forward");
	while (!atomic_load(&f->stopping)) {
		err[0] = '\0';
		r = forward_round(f, err, sizeof(err));
		if (atomic_load(&f->stopping))
			break;
		if (r > 0) {
			failures = 0;
			/* a batch not full: let the next one gather for linger_ms */
			if ((size_t)r < f->batch_limit && f->o.linger_ms > 0)
				pause_for(f, f->o.linger_ms, 0);
			continue;
		}
		if (r == 0) {
			pause_for(f, f->o.poll_ms, 1);
			continue;
		}
		if (r == -EBUSY) {
			pause_for(f, BUSY_RETRY_MS, 0);
			continue;
		}
		failures++;
		atomic_fetch_add(&f->metrics->forward_failures, 1);
		delay = backoff_ms(f, failures);
		log_warning("cannot forward to the region (%s), retrying in %lld ms (failure %u "
		            "in a row)",
		            err[0] ? err : strerror(-r), (long long)delay, failures);
		pause_for(f, delay, 0);
	}
	return NULL;
}

static int setup_curl(struct forwarder *f, char *err, size_t errlen)
{
	size_t n = strlen(f->o.region_url);
	char agent[64];

	while (n > 0 && f->o.region_url[n - 1] == '/')
		n--;
	f->url = malloc(n + sizeof("/v1/ingest"));
	if (!f->url)
		return -ENOMEM;
	memcpy(f->url, f->o.region_url, n);
	memcpy(f->url + n, "/v1/ingest", sizeof("/v1/ingest"));
	f->curl = curl_easy_init();
	f->headers = curl_slist_append(NULL, "Content-Type: application/jose+json");
	if (f->headers)
		f->headers = curl_slist_append(f->headers, "Content-Encoding: gzip");
	if (f->headers) /* no "Expect: 100-continue" round trip before big batches */
		f->headers = curl_slist_append(f->headers, "Expect:");
	if (!f->curl || !f->headers) {
		snprintf(err, errlen, "cannot set up libcurl");
		return -ENOMEM;
	}
	snprintf(agent, sizeof(agent), "county-hub/%s", RETURNS_VERSION);
	curl_easy_setopt(f->curl, CURLOPT_URL, f->url);
	curl_easy_setopt(f->curl, CURLOPT_POST, 1L);
	curl_easy_setopt(f->curl, CURLOPT_HTTPHEADER, f->headers);
	curl_easy_setopt(f->curl, CURLOPT_USERAGENT, agent);
	curl_easy_setopt(f->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(f->curl, CURLOPT_TIMEOUT, f->o.timeout_s);
	curl_easy_setopt(f->curl, CURLOPT_CONNECTTIMEOUT,
	                 f->o.timeout_s < 10 ? f->o.timeout_s : 10L);
	curl_easy_setopt(f->curl, CURLOPT_WRITEFUNCTION, on_answer);
	curl_easy_setopt(f->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(f->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(f->curl, CURLOPT_XFERINFODATA, f);
	curl_easy_setopt(f->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(f->curl, CURLOPT_FOLLOWLOCATION, 0L);
	/* the region's certificate is always checked: against region_cacert, or the
	 * system's CA certificates */
	curl_easy_setopt(f->curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(f->curl, CURLOPT_SSL_VERIFYHOST, 2L);
	if (f->o.cacert && f->o.cacert[0]) {
		if (access(f->o.cacert, R_OK) != 0) {
			int e = errno;

			snprintf(err, errlen, "cannot read the region's CA certificates '%s': %s",
			         f->o.cacert, strerror(e));
			return -e;
		}
		if (curl_easy_setopt(f->curl, CURLOPT_CAINFO, f->o.cacert) != CURLE_OK) {
			snprintf(err, errlen, "libcurl takes no CA certificates file");
			return -ENOTSUP;
		}
	}
	return 0;
}

static void forwarder_free(struct forwarder *f)
{
	curl_easy_cleanup(f->curl);
	curl_slist_free_all(f->headers);
	free(f->url);
	gzip_compressor_release(&f->gz);
	store_close(f->store);
	free(f->sent);
	free(f);
}

int forward_start(const struct forward_options *o, struct metrics *m, struct forwarder **ret,
                  char *err, size_t errlen)
{
	struct forwarder *f;
	pthread_condattr_t attr;
	int r;

	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium cannot start");
		return -EIO;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->o = *o;
	f->metrics = m;
	f->batch_limit = o->batch_max < 1                   ? 1
	                 : o->batch_max > FORWARD_ITEMS_MAX ? FORWARD_ITEMS_MAX
	                                                    : o->batch_max;
	atomic_init(&f->stopping, 0);
	r = gzip_compressor_init(&f->gz, 6);
	if (r < 0) {
		snprintf(err, errlen, "cannot set up gzip");
		free(f);
		return r;
	}
	r = store_open(o->store_path, 0, o->busy_timeout_ms, &f->store, err, errlen);
	if (r == 0)
		r = setup_curl(f, err, errlen);
	if (r < 0) {
		forwarder_free(f);
		return r;
	}
	pthread_mutex_init(&f->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&f->wake, &attr);
	pthread_condattr_destroy(&attr);
	r = -pthread_create(&f->thread, NULL, forward_main, f);
	if (r < 0) {
		snprintf(err, errlen, "cannot start the forwarder thread");
		pthread_cond_destroy(&f->wake);
		pthread_mutex_destroy(&f->lock);
		forwarder_free(f);
		return r;
	}
	*ret = f;
	return 0;
}

void forward_stop(struct forwarder *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	atomic_store(&f->stopping, 1);
	pthread_cond_signal(&f->wake);
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->thread, NULL);
	pthread_cond_destroy(&f->wake);
	pthread_mutex_destroy(&f->lock);
	forwarder_free(f);
}
