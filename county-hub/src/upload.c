/* The upload pipeline: see upload.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/statvfs.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/calendar.h"
#include "common/clock.h"
#include "common/datetime.h"
#include "common/errlist.h"
#include "common/form.h"
#include "common/gzip.h"
#include "common/http_server.h"
#include "common/ids.h"
#include "common/jwk.h"
#include "common/log.h"
#include "common/submission.h"
#include "hub.h"
#include "metrics.h"
#include "receipt.h"
#include "server.h"
#include "store.h"
#include "upload.h"
#include "common/banned.h"

#define ERR_MAX 512
#define RETRY_AFTER_S 2
#define FREE_SPACE_CHECK_MS 250 /* how old the store disk's free space may be */

void upload_init(struct upload *u, const char *peer)
{
	memset(u, 0, sizeof(*u));
	submission_init(&u->s);
	u->peer = peer ? peer : "-";
	u->on_time = -1;
}

void upload_release(struct upload *u)
{
	submission_release(&u->s);
	free(u->jws_text);
	free(u->receipt);
	free(u->job.receipt);
	memset(u, 0, sizeof(*u));
}

/* Builds an error answer, counts it and logs the decision. */
static void reject(struct server *srv, struct upload *u, struct http_reply *reply, int status,
                   enum metrics_reason reason, const char *message, const struct errlist *errors,
                   const char *lock_reason)
{
	const char *code = metrics_reason_name(reason);
	const char *school = u && u->s.jws.kid[0] ? u->s.jws.kid : "-";
	const char *id = u && u->s.submission_id ? u->s.submission_id : "-";

	metrics_rejected(&srv->metrics, reason);
	if (http_reply_error(reply, status, code, message, errors, lock_reason) < 0)
		http_reply_text(reply, 500, "out of memory\n");
	if (status == 503)
		reply->retry_after = RETRY_AFTER_S;
	if (errors && errors->count > 0)
		log_info("rejected upload status=%d reason=%s peer=%s school=%s submission=%s "
		         "errors=%zu first=\"%s\" keyword=\"%s\": %s",
		         status, code, u ? u->peer : "-", school, id, errors->errors,
		         errors->entries[0].pointer, errors->entries[0].keyword, message);
	else
		log_info("rejected upload status=%d reason=%s%s%s peer=%s school=%s submission=%s: "
		         "%s",
		         status, code, lock_reason ? " lock=" : "", lock_reason ? lock_reason : "",
		         u ? u->peer : "-", school, id, message);
}

/* 1 when the store's disk has less free space than min_free_bytes, as statvfs(3) said at
 * most FREE_SPACE_CHECK_MS ago: one system call per upload would cost more than the
 * answer is worth at thousands of uploads a second. */
static int disk_nearly_full(struct server *srv)
{
	int64_t now = clock_monotonic_ms();
	long long free_bytes = atomic_load(&srv->free_bytes);
	struct statvfs st;

	if (now - atomic_load(&srv->free_checked_ms) > FREE_SPACE_CHECK_MS) {
		if (statvfs(srv->store_dir, &st) == 0)
			free_bytes = (long long)((unsigned long long)st.f_bavail * st.f_frsize);
		else
			free_bytes = -1; /* unknown: let the store say when it is full */
		atomic_store(&srv->free_bytes, free_bytes);
		atomic_store(&srv->free_checked_ms, now);
	}
	return free_bytes >= 0 && free_bytes < srv->cfg->min_free_bytes;
}

/* A media type without its parameters, compared case-insensitively. */
static int media_type_is(const char *value, const char *type)
{
	size_t n = strlen(type);

	if (!value)
		return 0;
	while (*value == ' ' || *value == '\t')
		value++;
	if (strncasecmp(value, type, n) != 0)
		return 0;
	value += n;
	while (*value == ' ' || *value == '\t')
		value++;
	return *value == '\0' || *value == ';';
}

int upload_precheck(struct server *srv, const char *content_type, const char *content_encoding,
                    const char *content_length, const char *peer, struct http_reply *reply)
{
	const struct hub_config *cfg = srv->cfg;
	struct upload u;
	char message[160];
	int ret = 1;

	upload_init(&u, peer);
	if (content_length) {
		char *end;
		unsigned long long n;

		errno = 0;
		n = strtoull(content_length, &end, 10);
		if (errno || end == content_length || n > (unsigned long long)cfg->body_max) {
			snprintf(message, sizeof(message),
			         "the body (Content-Length %.24s) is over the limit of %lld bytes",
			         content_length, cfg->body_max);
			reject(srv, &u, reply, 413, REASON_TOO_LARGE, message, NULL, NULL);
			goto out;
		}
	}
	if (!media_type_is(content_type, "application/jose+json")) {
		reject(srv, &u, reply, 415, REASON_UNSUPPORTED_MEDIA_TYPE,
		       "Content-Type must be application/jose+json", NULL, NULL);
		goto out;
	}
	if (!media_type_is(content_encoding, "gzip")) {
		reject(srv, &u, reply, 415, REASON_UNSUPPORTED_MEDIA_TYPE,
		       "Content-Encoding must be gzip", NULL, NULL);
		goto out;
	}
	if (cfg->min_free_bytes > 0 && disk_nearly_full(srv)) {
		reject(srv, &u, reply, 507, REASON_STORE_FULL,
		       "the disk holding the store is nearly full", NULL, NULL);
		goto out;
	}
	ret = 0;
out:
	upload_release(&u);
	return ret;
}

/* The roster lookup of submission_check: the school's key, if the school is open on the
 * day the upload was received. */
struct lookup {
	struct store *reader;
	char today[11];
};

static int lookup_key(void *data, const char *kid, struct jwk *ret_key, char *err, size_t errlen)
{
	struct lookup *l = data;
	struct store_school school;
	int r;

	r = store_school_get(l->reader, kid, &school);
	if (r == -ENOENT) {
		snprintf(err, errlen, "school \"%s\" is not in this county's roster", kid);
		return -ENOKEY;
	}
	if (r < 0) {
		snprintf(err, errlen, "cannot read the roster: %s", store_errmsg(l->reader));
		return r;
	}
	if (school.opened_on[0] && strcmp(l->today, school.opened_on) < 0) {
		snprintf(err, errlen, "school \"%s\" opens on %s", kid, school.opened_on);
		return -ENOKEY;
	}
	if (school.closed_from[0] && strcmp(l->today, school.closed_from) >= 0) {
		snprintf(err, errlen, "school \"%s\" is closed since %s", kid, school.closed_from);
		return -ENOKEY;
	}
	memset(ret_key, 0, sizeof(*ret_key));
	memcpy(ret_key->public_key, school.public_key, sizeof(ret_key->public_key));
	snprintf(ret_key->kid, sizeof(ret_key->kid), "%s", school.school_id);
	return 0;
}

static enum metrics_reason reason_of(enum submission_verdict v)
{
	switch (v) {
	case SUBMISSION_MALFORMED:
		return REASON_MALFORMED;
	case SUBMISSION_UNAUTHENTICATED:
		return REASON_UNAUTHENTICATED;
	case SUBMISSION_FORBIDDEN:
		return REASON_FORBIDDEN;
	case SUBMISSION_INVALID:
		return REASON_INVALID;
	default:
		return REASON_INTERNAL;
	}
}

/* A date member of the return's data, or -EINVAL. */
static int data_date(const struct submission *s, const char *name, struct date *ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive((cJSON *)s->data, name);

	if (!cJSON_IsString(v))
		return -EINVAL;
	return datetime_parse_date(v->valuestring, strlen(v->valuestring), ret);
}

/* The period must be one of the form's in the calendar, and for an event form the month
 * of its event date. 0, or 1 with *reply set. */
static int check_period(struct server *srv, struct upload *u, struct http_reply *reply)
{
	const struct submission *s = &u->s;
	enum calendar_period_type type;
	char message[256], pointer[96], period[CALENDAR_PERIOD_MAX];
	const char *field;
	struct errlist errors;
	struct date on;
	int r;

	errlist_init(&errors);
	r = calendar_period_type(srv->calendar, s->form->id, &type);
	if (r < 0) {
		snprintf(message, sizeof(message), "form \"%s\" is not in the campaign calendar",
		         s->form->id);
		snprintf(pointer, sizeof(pointer), "/form");
		goto invalid;
	}
	if (calendar_period_check(srv->calendar, s->form->id, s->period) < 0) {
		snprintf(message, sizeof(message), "\"%s\" is not a period of form \"%s\"",
		         s->period, s->form->id);
		snprintf(pointer, sizeof(pointer), "/period");
		goto invalid;
	}
	if (type == CALENDAR_PERIOD_EVENT &&
	    calendar_event_field(srv->calendar, s->form->id, &field) == 0) {
		snprintf(pointer, sizeof(pointer), "/data/%s", field);
		if (data_date(s, field, &on) < 0) {
			snprintf(message, sizeof(message), "%s must be a date", field);
			goto invalid;
		}
		r = calendar_event_period(srv->calendar, s->form->id, &on, period);
		if (r < 0) {
			snprintf(message, sizeof(message), "%s is outside the campaign's months",
			         field);
			goto invalid;
		}
		if (strcmp(period, s->period) != 0) {
			snprintf(message, sizeof(message),
			         "the period of this %s is \"%s\", the month of %s", s->form->id,
			         period, field);
			snprintf(pointer, sizeof(pointer), "/period");
			goto invalid;
		}
	}
	return 0;
invalid:
	if (errlist_add(&errors, ERRLIST_ERROR, pointer, "x-calendar", "%s", message) < 0)
		errlist_release(&errors);
	reject(srv, u, reply, 422, REASON_INVALID, message, &errors, NULL);
	errlist_release(&errors);
	return 1;
}

/* 1 on time, 0 late, -1 no deadline (or not computable). */
static int on_time(struct server *srv, const struct submission *s, int64_t received_ms)
{
	enum calendar_period_type type;
	struct date discovered, reported;
	int r;

	if (calendar_period_type(srv->calendar, s->form->id, &type) < 0)
		return -1;
	if (type != CALENDAR_PERIOD_EVENT) {
		r = calendar_is_on_time(srv->calendar, s->form->id, s->period, received_ms);
		return r < 0 ? -1 : r;
	}
	if (data_date(s, "discovered_on", &discovered) < 0 ||
	    data_date(s, "reported_on", &reported) < 0)
		return -1;
	r = calendar_event_timely(srv->calendar, s->form->id, s->period, &discovered, &reported,
	                          received_ms);
	return r < 0 ? -1 : r;
}

static void answer_receipt(struct http_reply *reply, int status, char *receipt, size_t len)
{
	http_reply_release(reply);
	reply->status = status;
	reply->body = receipt;
	reply->len = len;
	reply->content_type = "application/jose+json";
}

int upload_check(struct server *srv, struct worker *w, const char *body, size_t len, int too_large,
                 struct upload *u, struct http_reply *reply)
{
	const struct hub_config *cfg = srv->cfg;
	struct submission_context ctx;
	enum submission_verdict verdict;
	struct receipt_fields rf;
	struct errlist errors;
	struct lookup lookup;
	struct date today;
	char err[ERR_MAX] = "", message[ERR_MAX + 64];
	int r;

	errlist_init(&errors);
	u->received_ms = clock_now_ms(&srv->clock);
	datetime_format_rfc3339(u->received_ms, calendar_utc_offset_min(srv->calendar),
	                        u->received_at);
	if (too_large) {
		snprintf(message, sizeof(message), "the body is over the limit of %lld bytes",
		         cfg->body_max);
		reject(srv, u, reply, 413, REASON_TOO_LARGE, message, NULL, NULL);
		return 1;
	}

	/* inflate, with the output and ratio caps */
	buf_reset(&w->plain);
	r = gzip_inflate(&w->inflater, body, len, &w->plain, err, sizeof(err));
	if (r == -EFBIG) {
		snprintf(message, sizeof(message), "the body inflates past the limit: %s", err);
		reject(srv, u, reply, 413, REASON_TOO_LARGE, message, NULL, NULL);
		return 1;
	}
	if (r == -EBADMSG) {
		snprintf(message, sizeof(message), "the body is not one gzip member: %s", err);
		reject(srv, u, reply, 400, REASON_MALFORMED, message, NULL, NULL);
		return 1;
	}
	if (r < 0) {
		log_errno(r, "cannot inflate an upload");
		reject(srv, u, reply, 500, REASON_INTERNAL, "internal error", NULL, NULL);
		return 1;
	}

	/* checks 1-5: envelope, signer, payload, school and county, schemas */
	memset(&ctx, 0, sizeof(ctx));
	ctx.envelope = srv->envelope;
	ctx.forms = srv->forms;
	ctx.county_id = cfg->county_id;
	ctx.lookup_key = lookup_key;
	ctx.lookup_data = &lookup;
	ctx.max_text = (size_t)cfg->inflate_max;
	lookup.reader = w->reader;
	datetime_local_date(u->received_ms, calendar_utc_offset_min(srv->calendar), &today);
	date_format(&today, lookup.today);
	r = submission_check(&ctx, w->plain.data ? w->plain.data : "", w->plain.len, &errors, err,
	                     sizeof(err), &verdict, &u->s);
	if (r < 0) {
		log_errno(r, "cannot check an upload");
		reject(srv, u, reply, r == -EBUSY ? 503 : 500,
		       r == -EBUSY ? REASON_BUSY : REASON_INTERNAL,
		       r == -EBUSY ? "the store is busy" : "internal error", NULL, NULL);
		errlist_release(&errors);
		return 1;
	}
	if (verdict != SUBMISSION_ACCEPTABLE) {
		reject(srv, u, reply, submission_verdict_http_status(verdict), reason_of(verdict),
		       err, verdict == SUBMISSION_INVALID ? &errors : NULL, NULL);
		errlist_release(&errors);
		return 1;
	}
	errlist_release(&errors);
	ids_sha256_hex(u->s.jws.payload, u->s.jws.payload_len, u->sha256);

	if (check_period(srv, u, reply))
		return 1;

	/* The checks that need the store (an identical resend, the approval lock and the
	 * county's exceptions, a conflicting resend, what a correction supersedes) are the
	 * writer's, in that order, inside the transaction that stores the upload: reading
	 * them here too would cost every upload a second round of reads. The expiry is a
	 * matter of the calendar and the receive time, decided here. */
	u->job.expired =
	        calendar_is_expired(srv->calendar, u->s.form->id, u->s.period, u->received_ms) == 1;
	if (u->s.supersedes && strcmp(u->s.supersedes, u->s.submission_id) == 0) {
		if (errlist_add(&errors, ERRLIST_ERROR, "/supersedes", "x-supersedes",
		                "a submission cannot supersede itself") < 0)
			errlist_release(&errors);
		reject(srv, u, reply, 422, REASON_INVALID, "a submission cannot supersede itself",
		       &errors, NULL);
		errlist_release(&errors);
		return 1;
	}

	/* the receipt, signed now so that a resend gets these very bytes */
	u->on_time = on_time(srv, &u->s, u->received_ms);
	rf.submission_id = u->s.submission_id;
	rf.school_id = u->s.school_id;
	rf.county_id = cfg->county_id;
	rf.form = u->s.form->id;
	rf.period = u->s.period;
	rf.sha256 = u->sha256;
	rf.received_at = u->received_at;
	rf.on_time = u->on_time;
	r = receipt_make(&srv->county_key, &rf, &u->receipt, &u->receipt_len, err, sizeof(err));
	if (r < 0) {
		log_error("cannot sign a receipt: %s", err);
		reject(srv, u, reply, 500, REASON_INTERNAL, "internal error", NULL, NULL);
		return 1;
	}
	u->jws_text = buf_detach(&w->plain, &u->jws_len);
	if (!u->jws_text) {
		reject(srv, u, reply, 500, REASON_INTERNAL, "internal error", NULL, NULL);
		return 1;
	}
	u->job.sub = (struct store_submission){
	        .submission_id = u->s.submission_id,
	        .school_id = u->s.school_id,
	        .form = u->s.form->id,
	        .period = u->s.period,
	        .created_at = u->s.created_at,
	        .supersedes = u->s.supersedes,
	        .form_version = u->s.form->version,
	        .payload_sha256 = u->sha256,
	        .payload = (const char *)u->s.jws.payload,
	        .payload_len = u->s.jws.payload_len,
	        .jws = u->jws_text,
	        .jws_len = u->jws_len,
	        .received_at = u->received_at,
	        .received_ms = u->received_ms,
	        .on_time = u->on_time,
	        .receipt = u->receipt,
	        .receipt_len = u->receipt_len,
	};
	return 0;
}

void upload_finish(struct server *srv, struct upload *u, int queue_error, struct http_reply *reply)
{
	struct errlist errors;
	char message[256];

	if (queue_error) {
		reject(srv, u, reply, 503, REASON_BUSY,
		       queue_error == -ESHUTDOWN ? "the hub is shutting down"
		                                 : "too many uploads are waiting for the store",
		       NULL, NULL);
		return;
	}
	switch (u->job.status) {
	case 201:
		atomic_fetch_add(&srv->metrics.accepted, 1);
		log_info("accepted upload status=201 peer=%s school=%s submission=%s form=%s "
		         "period=%s on_time=%s sha256=%s",
		         u->peer, u->s.school_id, u->s.submission_id, u->s.form->id, u->s.period,
		         u->on_time < 0 ? "null"
		         : u->on_time   ? "true"
		                        : "false",
		         u->sha256);
		answer_receipt(reply, 201, u->receipt, u->receipt_len);
		u->receipt = NULL;
		break;
	case 200:
		atomic_fetch_add(&srv->metrics.duplicates, 1);
		log_info("duplicate upload status=200 peer=%s school=%s submission=%s: already "
		         "stored with the same bytes",
		         u->peer, u->s.school_id, u->s.submission_id);
		answer_receipt(reply, 200, u->job.receipt, u->job.receipt_len);
		u->job.receipt = NULL;
		break;
	case 409:
		reject(srv, u, reply, 409, REASON_CONFLICT, u->job.message, NULL, NULL);
		break;
	case 422:
		errlist_init(&errors);
		if (errlist_add(&errors, ERRLIST_ERROR, "/supersedes", "x-supersedes", "%s",
		                u->job.message) < 0)
			errlist_release(&errors);
		reject(srv, u, reply, 422, REASON_INVALID, u->job.message, &errors, NULL);
		errlist_release(&errors);
		break;
	case 423: {
		int approved = strcmp(u->job.message, "approved") == 0;

		snprintf(message, sizeof(message), "%s %s is locked: %s", u->s.form->id,
		         u->s.period,
		         approved ? "the county approved it" : "the period has expired");
		reject(srv, u, reply, 423, REASON_LOCKED, message, NULL,
		       approved ? "approved" : "expired");
		break;
	}
	case 503:
		reject(srv, u, reply, 503, REASON_BUSY, u->job.message, NULL, NULL);
		break;
	case 507:
		reject(srv, u, reply, 507, REASON_STORE_FULL, u->job.message, NULL, NULL);
		break;
	default:
		reject(srv, u, reply, 500, REASON_INTERNAL,
		       u->job.message ? u->job.message : "internal error", NULL, NULL);
		break;
	}
}
