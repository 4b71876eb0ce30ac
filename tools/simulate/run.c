/* simulate run --dir DIR [--seed N] [--workers W] [--verbose]
 * Drives every school of DIR (made by simulate generate) through its plan on the campaign
 * clock of RETURNS_CLOCK, which must be the same moving clock the hubs run on (the demo
 * anchors it: "2024-03-01T00:00:00+08:00 x345600 @<unix seconds>"). For each planned
 * action, at its campaign instant, a school does what the school-agent does: it checks
 * the return (schema, x-rules, privacy, calendar), signs and queues it in its outbox
 * (submitter_queue), and syncs the outbox to its hub (syncer_pass), keeping the receipts.
 * Schools are shared among W worker threads; one school is only ever handled by one of
 * them, in plan order. A return its form or the calendar refuses, or that the hub
 * rejects, is a simulator bug: the run says so and exits with 70. Returns the hub could
 * not take at once are retried; at the end every outbox must be empty (else 75).
 * Then DIR/truth.json is written (truth.h). SIGINT or SIGTERM stop the run early (75). */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "agent.h"
#include "plan.h"
#include "receipt.h"
#include "region.h"
#include "simulate.h"
#include "spool.h"
#include "submit.h"
#include "sync.h"
#include "truth.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/datetime.h"
#include "common/errlist.h"
#include "common/form.h"
#include "common/json.h"
#include "common/log.h"
#include "common/banned.h"

#define WORKERS_DEFAULT 24
#define WORKERS_MAX 256
#define SLEEP_SLICE_MS 100
#define PASSES_PER_ACTION 6 /* sync passes right after queueing, backing off 20 ms .. 640 ms */
#define FLUSH_SECONDS 60    /* at the end: how long the last returns may take */
#define ERR_MAX 1024

/* One action of a school's plan, read once before the run: the plan files are not parsed
 * again for each return (that cost more than signing it). */
struct action_meta {
	int64_t at_ms;
	int planned;
	long corrects;
	char *text; /* "form\0period\0data as compact JSON\0", freed once the return is queued */
};

/* One school during the run: only its worker touches it. */
struct school_run {
	char dir[PATH_MAX];
	struct jwk key; /* the school's private key, once loaded */
	int keyed;
	struct action_meta *actions;
	size_t action_count;
	char (*ids)[IDS_UUID_LEN + 1]; /* the id of each action once queued, else "" */
	unsigned char *confirmed;      /* its receipt is recorded */
	size_t pending;                /* queued, no receipt yet */
};

struct scheduled {
	int64_t at_ms;
	uint32_t school, action;
};

struct worker {
	struct run_ctx *ctx;
	struct scheduled *items;
	size_t count;
	pthread_t thread;
};

/* A county's public key, read from the folder of its first school that syncs, then
 * shared by all its schools' syncers. */
struct county_key {
	struct jwk key;
	int loaded;
};

struct run_ctx {
	const struct region *g;
	const char *dir;
	struct clock clock;
	struct submitter proto; /* forms, calendar and envelope shared by every school */
	struct school_run *schools;
	struct county_key *county_keys; /* one per county of g */
	atomic_int stop;
	atomic_int failed;
	atomic_int running;   /* workers not done yet */
	pthread_mutex_t lock; /* guards what follows */
	struct truth_record *records;
	size_t record_count, record_alloc;
	size_t queued, late, incidents;
	int64_t max_lag_ms;
	double act_seconds; /* real time spent in act(), all workers */
};

static int stop_requested(void *data)
{
	struct run_ctx *ctx = data;

	return atomic_load(&ctx->stop);
}

static void fail_run(struct run_ctx *ctx)
{
	atomic_store(&ctx->failed, 1);
	atomic_store(&ctx->stop, 1);
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int add_record(struct run_ctx *ctx, const struct truth_record *rec)
{
	int r = 0;

	pthread_mutex_lock(&ctx->lock);
	if (ctx->record_count == ctx->record_alloc) {
		size_t n = ctx->record_alloc ? ctx->record_alloc * 2 : 1024;
		struct truth_record *grown = realloc(ctx->records, n * sizeof(*grown));

		if (!grown) {
			r = -ENOMEM;
			goto out;
		}
		ctx->records = grown;
		ctx->record_alloc = n;
	}
	ctx->records[ctx->record_count++] = *rec;
	if (rec->on_time == 0 && rec->planned == 1)
		ctx->late++;
out:
	pthread_mutex_unlock(&ctx->lock);
	return r;
}

/* Records the receipt of action k: rc verified for the queued item. */
static int record(struct run_ctx *ctx, uint32_t school, size_t k, const struct spool_item *item,
                  const struct receipt *rc)
{
	struct school_run *sr = &ctx->schools[school];
	struct truth_record rec = {.school = school, .action = (uint32_t)k};
	int r;

	memcpy(rec.id, item->id, sizeof(rec.id));
	memcpy(rec.supersedes, item->supersedes, sizeof(rec.supersedes));
	rec.received_ms = rc->received_ms;
	rec.on_time = rc->on_time;
	rec.planned = sr->actions[k].planned;
	r = add_record(ctx, &rec);
	if (r == 0) {
		sr->confirmed[k] = 1;
		sr->pending--;
	}
	return r;
}

/* Records the receipt of action k found in sent/ (one that the syncer's on_sent did not
 * report), read back and verified against the county's key. */
static int record_from_spool(struct run_ctx *ctx, uint32_t school, size_t k, const struct agent *a,
                             const struct jwk *county)
{
	struct school_run *sr = &ctx->schools[school];
	struct spool_item item;
	struct receipt_expect want;
	struct receipt rc;
	struct buf jws, text;
	char err[ERR_MAX];
	int r;

	buf_init(&jws, SPOOL_ITEM_MAX);
	buf_init(&text, RECEIPT_TEXT_MAX);
	r = spool_read(a, SPOOL_SENT, sr->ids[k], &jws);
	if (r == 0)
		r = spool_read_extra(a, SPOOL_SENT, sr->ids[k], &text);
	if (r < 0) {
		log_errno(r, "school %s: failed to read the receipt of %s", a->cfg.school_id,
		          sr->ids[k]);
		goto out;
	}
	r = spool_item_parse(jws.data ? jws.data : "", jws.len, &item, err, sizeof(err));
	if (r == 0) {
		want = (struct receipt_expect){
		        .submission_id = item.id,
		        .sha256 = item.sha256,
		        .school_id = a->cfg.school_id,
		        .county_id = a->cfg.county_id,
		        .form = item.form,
		        .period = item.period,
		};
		r = receipt_verify(text.data ? text.data : "", text.len, county, &want, &rc, err,
		                   sizeof(err));
	}
	if (r < 0) {
		log_error("school %s: the receipt of %s does not verify: %s", a->cfg.school_id,
		          sr->ids[k], err);
		goto out;
	}
	r = record(ctx, school, k, &item, &rc);
out:
	buf_release(&jws);
	buf_release(&text);
	return r;
}

/* What the syncer's on_sent needs to record a receipt. */
struct sent_hook {
	struct run_ctx *ctx;
	uint32_t school;
	int result; /* the first failure to record, else 0 */
};

/* syncer.on_sent: the receipt the syncer has just verified and written to sent/. */
static void on_sent(void *data, const struct spool_item *item, const struct receipt *rc)
{
	struct sent_hook *h = data;
	struct school_run *sr = &h->ctx->schools[h->school];
	int r;

	for (size_t k = 0; k < sr->action_count; k++) {
		if (sr->confirmed[k] || strcmp(sr->ids[k], item->id) != 0)
			continue;
		r = record(h->ctx, h->school, k, item, rc);
		if (r < 0 && h->result == 0)
			h->result = r;
		return;
	}
	/* not one of this run's returns (left by an earlier run): nothing to record */
}

/* Looks at every queued return of the school without a receipt yet. */
static int collect(struct run_ctx *ctx, uint32_t school, const struct agent *a,
                   const struct jwk *county)
{
	struct school_run *sr = &ctx->schools[school];

	for (size_t k = 0; k < sr->action_count && sr->pending; k++) {
		enum spool_state st;
		struct buf body;
		int r;

		if (!sr->ids[k][0] || sr->confirmed[k])
			continue;
		r = spool_find(a, sr->ids[k], &st);
		if (r < 0)
			return log_errno(r, "school %s: return %s is in none of its folders",
			                 a->cfg.school_id, sr->ids[k]);
		if (st == SPOOL_SENT) {
			r = record_from_spool(ctx, school, k, a, county);
			if (r < 0)
				return r;
		} else if (st == SPOOL_REJECTED) {
			buf_init(&body, 64 * 1024);
			if (spool_read_extra(a, SPOOL_REJECTED, sr->ids[k], &body) < 0)
				body.len = 0;
			log_error("school %s: the hub rejected return %s (plan action %zu): %s",
			          a->cfg.school_id, sr->ids[k], k, body.data ? body.data : "");
			buf_release(&body);
			return -EPROTO;
		}
	}
	return 0;
}

/* The public key of the school's county, loaded once for all its schools. */
static int county_key(struct run_ctx *ctx, uint32_t school, const struct agent *a,
                      const struct jwk **ret)
{
	struct county_key *ck = &ctx->county_keys[ctx->g->schools[school].county];
	char err[ERR_MAX];
	int r = 0;

	pthread_mutex_lock(&ctx->lock);
	if (!ck->loaded) {
		r = agent_county_key(a, &ck->key, err, sizeof(err));
		if (r == 0)
			ck->loaded = 1;
		else
			log_error("school %s: %s", a->cfg.school_id, err);
	}
	pthread_mutex_unlock(&ctx->lock);
	*ret = &ck->key;
	return r;
}

/* Sync passes until the school's outbox is empty or passes run out. Each receipt is
 * recorded as the syncer writes it (on_sent); collect() then finds what is left: a
 * rejection, or a receipt written by a pass whose report was cut short. */
static int deliver(struct run_ctx *ctx, uint32_t school, const struct agent *a, int passes)
{
	struct school_run *sr = &ctx->schools[school];
	struct sent_hook hook = {.ctx = ctx, .school = school};
	const struct jwk *county;
	struct sync_result res;
	struct syncer sy;
	char err[ERR_MAX];
	int r;

	r = county_key(ctx, school, a, &county);
	if (r < 0)
		return r;
	r = syncer_init_with_key(&sy, a, county, err, sizeof(err));
	if (r < 0) {
		log_error("school %s: cannot sync: %s", a->cfg.school_id, err);
		return r;
	}
	sy.force = 1; /* the simulated officer presses "send now" */
	sy.on_sent = on_sent;
	sy.on_sent_data = &hook;
	for (int i = 0; i < passes && sr->pending && !atomic_load(&ctx->stop); i++) {
		if (i > 0)
			sleep_ms(20LL << (i < 6 ? i - 1 : 5));
		r = syncer_pass(&sy, stop_requested, ctx, &res);
		if (r == 0)
			r = hook.result;
		if (r == 0)
			r = collect(ctx, school, a, &sy.county);
		if (r < 0)
			break;
	}
	syncer_release(&sy);
	return r;
}

/* The submitter of one school: the shared forms and calendar, its own key (read from its
 * folder on its first return, as the agent's submit does, then kept). */
static int school_submitter(const struct run_ctx *ctx, struct school_run *sr, const struct agent *a,
                            struct submitter *ret)
{
	char path[PATH_MAX], err[ERR_MAX];
	int r = 0;

	if (!sr->keyed) {
		r = agent_path(a, path, sizeof(path), AGENT_KEY);
		if (r == 0)
			r = jwk_load(&sr->key, path, err, sizeof(err));
		if (r == 0 &&
		    (!sr->key.has_private || strcmp(sr->key.kid, a->cfg.school_id) != 0)) {
			jwk_release(&sr->key);
			r = -EINVAL;
			snprintf(err, sizeof(err), "not the key of school %s", a->cfg.school_id);
		}
		if (r < 0) {
			log_error("%s: %s", path, err);
			return r;
		}
		sr->keyed = 1;
	}
	*ret = ctx->proto;
	ret->agent = a;
	ret->key = sr->key;
	return 0;
}

/* Checks, queues and sends action k of the school. */
static int act(struct run_ctx *ctx, uint32_t school, size_t k)
{
	struct school_run *sr = &ctx->schools[school];
	struct action_meta *am = &sr->actions[k];
	const char *form = am->text, *period = form + strlen(form) + 1;
	const char *data_text = period + strlen(period) + 1;
	struct submitter sub = {0};
	const char *supersedes = NULL;
	char err[ERR_MAX];
	const struct form *f;
	struct errlist errs;
	struct agent agent;
	struct buf out;
	cJSON *data = NULL;
	int r, opened = 0;

	errlist_init(&errs);
	buf_init(&out, 64 * 1024);
	r = agent_open(&agent, sr->dir, err, sizeof(err));
	opened = 1;
	if (r < 0) {
		log_error("%s", err);
		goto out;
	}
	r = json_parse_untrusted(data_text, strlen(data_text), JSON_MAX_DEPTH, &data, err,
	                         sizeof(err));
	if (r < 0) {
		log_error("school %s: plan action %zu: %s", agent.cfg.school_id, k, err);
		goto out;
	}
	f = submitter_form(&ctx->proto, form, err, sizeof(err));
	r = f ? school_submitter(ctx, sr, &agent, &sub) : -EINVAL;
	if (!f)
		log_error("school %s: %s", agent.cfg.school_id, err);
	if (r < 0)
		goto out;
	if (am->corrects >= 0) {
		supersedes = sr->ids[am->corrects];
		if (!supersedes[0]) {
			log_error(
			        "school %s: action %zu corrects action %ld, which was never queued",
			        agent.cfg.school_id, k, am->corrects);
			r = -EPROTO;
			goto out;
		}
	}
	r = submitter_check(&sub, f, period, data, &errs);
	if (r != 0 || errs.warnings) {
		if (errlist_format(&errs, "  ", &out) < 0 || !out.data)
			out.len = 0;
		log_error("school %s: plan action %zu (%s %s) fails the agent's checks%s\n%s",
		          agent.cfg.school_id, k, form, period, r < 0 ? ": checking failed" : "",
		          out.data ? out.data : "");
		r = -EPROTO;
		goto out;
	}
	r = submitter_queue(&sub, f, period, supersedes, data, sr->ids[k], err, sizeof(err));
	if (r < 0) {
		log_error("school %s: cannot queue plan action %zu: %s", agent.cfg.school_id, k,
		          err);
		goto out;
	}
	sr->pending++;
	pthread_mutex_lock(&ctx->lock);
	ctx->queued++;
	if (strcmp(form, "incident") == 0 && am->corrects < 0)
		ctx->incidents++;
	pthread_mutex_unlock(&ctx->lock);
	free(am->text); /* queued: its plan text is no longer needed */
	am->text = NULL;
	r = deliver(ctx, school, &agent, PASSES_PER_ACTION);
out:
	if (opened)
		agent_release(&agent);
	cJSON_Delete(data);
	errlist_release(&errs);
	buf_release(&out);
	return r;
}

/* Waits (real time) until the campaign clock reads at_ms. 0, or 1 when asked to stop. */
static int wait_until(struct run_ctx *ctx, int64_t at_ms)
{
	for (;;) {
		int64_t now = clock_now_ms(&ctx->clock), wait;

		if (atomic_load(&ctx->stop))
			return 1;
		if (now >= at_ms)
			return 0;
		wait = clock_real_wait_ms(&ctx->clock, at_ms - now);
		sleep_ms(wait < SLEEP_SLICE_MS ? wait : SLEEP_SLICE_MS);
	}
}

static void *work(void *data)
{
	struct worker *w = data;
	struct run_ctx *ctx = w->ctx;

	for (size_t i = 0; i < w->count; i++) {
		const struct scheduled *it = &w->items[i];
		struct timespec t0, t1;
		int64_t lag;
		int r;

		if (wait_until(ctx, it->at_ms))
			break;
		lag = clock_now_ms(&ctx->clock) - it->at_ms;
		pthread_mutex_lock(&ctx->lock);
		if (lag > ctx->max_lag_ms)
			ctx->max_lag_ms = lag;
		pthread_mutex_unlock(&ctx->lock);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		r = act(ctx, it->school, it->action);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		pthread_mutex_lock(&ctx->lock);
		ctx->act_seconds +=
		        (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
		pthread_mutex_unlock(&ctx->lock);
		if (r < 0) {
			fail_run(ctx);
			break;
		}
	}
	atomic_fetch_sub(&ctx->running, 1);
	return NULL;
}

static int cmp_scheduled(const void *a, const void *b)
{
	const struct scheduled *x = a, *y = b;

	if (x->at_ms != y->at_ms)
		return x->at_ms < y->at_ms ? -1 : 1;
	if (x->school != y->school)
		return x->school < y->school ? -1 : 1;
	return x->action < y->action ? -1 : x->action > y->action;
}

/* *ret: "form\0period\0data\0" of a (data as compact JSON) in one allocation. */
static int action_text(const struct plan_action *a, char **ret)
{
	char *data = cJSON_PrintUnformatted(a->data);
	size_t nf = strlen(a->form) + 1, np = strlen(a->period) + 1, nd;
	char *text;

	if (!data)
		return -ENOMEM;
	nd = strlen(data) + 1;
	text = malloc(nf + np + nd);
	if (text) {
		memcpy(text, a->form, nf);
		memcpy(text + nf, a->period, np);
		memcpy(text + nf + np, data, nd);
	}
	cJSON_free(data);
	if (!text)
		return -ENOMEM;
	*ret = text;
	return 0;
}

/* Reads every school's plan into ctx->schools and deals the actions to the workers. */
static int schedule(struct run_ctx *ctx, struct worker *workers, size_t nworkers)
{
	const struct region *g = ctx->g;
	int r = 0;

	for (size_t i = 0; i < g->school_count && r == 0; i++) {
		struct school_run *sr = &ctx->schools[i];
		struct plan_action *actions = NULL;
		struct worker *w = &workers[i % nworkers];
		char path[PATH_MAX], err[ERR_MAX];
		struct scheduled *grown;
		cJSON *doc = NULL;
		size_t n = 0;

		snprintf(sr->dir, sizeof(sr->dir), "%s/schools/%s", ctx->dir, g->schools[i].id);
		snprintf(path, sizeof(path), "%s/plans/%s.json", ctx->dir, g->schools[i].id);
		r = plan_load(path, &doc, &actions, &n, err, sizeof(err));
		if (r < 0) {
			log_error("%s", err);
			break;
		}
		sr->action_count = n;
		sr->actions = calloc(n + 1, sizeof(*sr->actions));
		sr->ids = calloc(n + 1, sizeof(*sr->ids));
		sr->confirmed = calloc(n + 1, 1);
		grown = realloc(w->items, (w->count + n + 1) * sizeof(*grown));
		if (grown)
			w->items = grown;
		if (!sr->actions || !sr->ids || !sr->confirmed || !grown)
			r = -ENOMEM;
		for (size_t k = 0; r == 0 && k < n; k++) {
			sr->actions[k] = (struct action_meta){actions[k].at_ms, actions[k].on_time,
			                                      actions[k].corrects, NULL};
			r = action_text(&actions[k], &sr->actions[k].text);
			if (r < 0)
				log_error("'%s': cannot keep action %zu: %s", path, k,
				          strerror(-r));
			else
				w->items[w->count++] = (struct scheduled){actions[k].at_ms,
				                                          (uint32_t)i, (uint32_t)k};
		}
		free(actions);
		cJSON_Delete(doc);
	}
	for (size_t i = 0; i < nworkers; i++)
		qsort(workers[i].items, workers[i].count, sizeof(*workers[i].items), cmp_scheduled);
	return r;
}

/* The shared submitter, made by the agent's own init from the first school's folder. */
static int make_proto(struct run_ctx *ctx)
{
	struct agent first;
	char err[ERR_MAX];
	int r;

	r = agent_open(&first, ctx->schools[0].dir, err, sizeof(err));
	if (r == 0)
		r = submitter_init(&ctx->proto, &first, err, sizeof(err));
	if (r < 0)
		log_error("%s", err);
	jwk_release(&ctx->proto.key);
	ctx->proto.agent = NULL;
	agent_release(&first);
	return r;
}

/* Sends what is still queued at the end, for up to FLUSH_SECONDS. */
static int flush(struct run_ctx *ctx)
{
	struct timespec start, now;
	size_t left;
	int r = 0;

	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		left = 0;
		for (uint32_t i = 0; i < ctx->g->school_count && r == 0; i++) {
			struct agent a;
			char err[ERR_MAX];

			if (!ctx->schools[i].pending)
				continue;
			r = agent_open(&a, ctx->schools[i].dir, err, sizeof(err));
			if (r == 0)
				r = deliver(ctx, i, &a, 1);
			else
				log_error("%s", err);
			agent_release(&a);
			left += ctx->schools[i].pending;
		}
		if (left && r == 0)
			sleep_ms(500);
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (left && r == 0 && !atomic_load(&ctx->stop) &&
	         now.tv_sec - start.tv_sec < FLUSH_SECONDS);
	if (r == 0 && left) {
		log_error("%zu returns are still queued after %d s: the hubs do not take them",
		          left, FLUSH_SECONDS);
		return -ETIMEDOUT;
	}
	return r;
}

/* The main thread: progress by campaign month from first_ms on, and SIGINT/SIGTERM. */
static void watch(struct run_ctx *ctx, const sigset_t *signals, size_t total, int64_t first_ms)
{
	const struct timespec tick = {.tv_sec = 0, .tv_nsec = 250 * 1000000};
	struct date today, shown = {0};
	char day[11];

	for (;;) {
		int64_t now;
		size_t done;

		if (sigtimedwait(signals, NULL, &tick) > 0) {
			log_warning("stopping the simulation early");
			atomic_store(&ctx->stop, 1);
		}
		pthread_mutex_lock(&ctx->lock);
		done = ctx->record_count;
		now = clock_now_ms(&ctx->clock);
		datetime_local_date(now, DATETIME_SHANGHAI_OFFSET_MIN, &today);
		if (now >= first_ms && (today.month != shown.month || today.year != shown.year)) {
			date_format(&today, day);
			printf("%s  %5zu of %zu returns received by the hubs (%zu incidents)\n",
			       day, done, total, ctx->incidents);
			fflush(stdout);
			shown = today;
		}
		pthread_mutex_unlock(&ctx->lock);
		if (done >= total || atomic_load(&ctx->stop) || !atomic_load(&ctx->running))
			return;
	}
}

struct run_args {
	char *dir;
	long long seed, workers;
	int verbose;
};

static int run(const struct run_args *a, const struct region *g, const char *spec)
{
	struct run_ctx ctx = {.g = g, .dir = a->dir};
	size_t nworkers = (size_t)a->workers, total = 0;
	int64_t first_ms = INT64_MAX;
	struct worker *workers = NULL;
	sigset_t signals;
	size_t started = 0;
	char err[ERR_MAX];
	int r;

	pthread_mutex_init(&ctx.lock, NULL);
	r = clock_init(&ctx.clock, spec, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		goto out;
	}
	if (ctx.clock.is_real || ctx.clock.factor <= 0) {
		log_error("RETURNS_CLOCK must be a moving campaign clock, e.g. "
		          "'2024-03-01T00:00:00+08:00 x345600 @%lld', the same as the hubs'",
		          (long long)time(NULL));
		r = -EINVAL;
		goto out;
	}
	if (nworkers > g->school_count)
		nworkers = g->school_count;
	ctx.schools = calloc(g->school_count, sizeof(*ctx.schools));
	ctx.county_keys = calloc(g->county_count, sizeof(*ctx.county_keys));
	workers = calloc(nworkers, sizeof(*workers));
	r = ctx.schools && ctx.county_keys && workers ? schedule(&ctx, workers, nworkers) : -ENOMEM;
	if (r == 0)
		r = make_proto(&ctx);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < g->school_count; i++) {
		total += ctx.schools[i].action_count;
		if (ctx.schools[i].action_count && ctx.schools[i].actions[0].at_ms < first_ms)
			first_ms = ctx.schools[i].actions[0].at_ms;
	}
	printf("simulating %zu schools in %zu counties: %zu returns on the clock '%s'\n",
	       g->school_count, g->county_count, total, spec);
	/* signals go to the main thread only, which asks the workers to stop */
	sigemptyset(&signals);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	atomic_store(&ctx.running, (int)nworkers);
	for (; started < nworkers; started++) {
		workers[started].ctx = &ctx;
		if (pthread_create(&workers[started].thread, NULL, work, &workers[started]) != 0) {
			log_error("cannot start the worker threads");
			atomic_fetch_sub(&ctx.running, (int)(nworkers - started));
			fail_run(&ctx);
			break;
		}
	}
	watch(&ctx, &signals, total, first_ms);
	for (size_t i = 0; i < started; i++)
		pthread_join(workers[i].thread, NULL);
	if (!atomic_load(&ctx.stop))
		r = flush(&ctx);
	if (atomic_load(&ctx.failed)) {
		r = -EPROTO;
	} else if (atomic_load(&ctx.stop) && r == 0) {
		r = -EINTR;
	}
	printf("%zu returns queued, %zu receipts; %zu planned on time came late; the schools "
	       "lagged the clock by at most %.1f campaign hours; %.0f ms per return\n",
	       ctx.queued, ctx.record_count, ctx.late, (double)ctx.max_lag_ms / 3600000.0,
	       ctx.queued ? ctx.act_seconds * 1000 / (double)ctx.queued : 0.0);
	if (r == 0) {
		r = truth_write(a->dir, g, ctx.proto.cal, ctx.records, ctx.record_count, spec, err,
		                sizeof(err));
		if (r < 0)
			log_error("failed to write the ground truth: %s", err);
		else
			printf("ground truth in '%s/truth.json'\n", a->dir);
	}
	curl_global_cleanup();
out:
	for (size_t i = 0; ctx.schools && i < g->school_count; i++) {
		for (size_t k = 0; ctx.schools[i].actions && k < ctx.schools[i].action_count; k++)
			free(ctx.schools[i].actions[k].text);
		if (ctx.schools[i].keyed)
			jwk_release(&ctx.schools[i].key);
		free(ctx.schools[i].actions);
		free(ctx.schools[i].ids);
		free(ctx.schools[i].confirmed);
	}
	for (size_t i = 0; workers && i < nworkers; i++)
		free(workers[i].items);
	free(workers);
	for (size_t i = 0; ctx.county_keys && i < g->county_count; i++)
		if (ctx.county_keys[i].loaded)
			jwk_release(&ctx.county_keys[i].key);
	free(ctx.county_keys);
	free(ctx.schools);
	free(ctx.records);
	ctx.proto.agent = NULL;
	submitter_release(&ctx.proto);
	pthread_mutex_destroy(&ctx.lock);
	return r;
}

int sim_run(int argc, char **argv)
{
	static const char synopsis[] =
	        "simulate run --dir DIR [--seed N] [--workers W] [--verbose]";
	struct run_args a = {.seed = -1, .workers = WORKERS_DEFAULT};
	const struct config_option options[] = {
	        {"dir", CONFIG_STRING, &a.dir, "the folder simulate generate filled", "DIR", 0, 0},
	        {"seed", CONFIG_INTEGER, &a.seed, "refuse a region generated with another seed",
	         "N", 0, 9007199254740991LL},
	        {"workers", CONFIG_INTEGER, &a.workers, "threads sharing the schools", "W", 1,
	         WORKERS_MAX},
	        {"verbose", CONFIG_BOOLEAN, &a.verbose, "log every return sent", NULL, 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};
	const char *spec = getenv("RETURNS_CLOCK");
	struct region g = {0};
	char err[ERR_MAX], path[PATH_MAX];
	int next, r, status = EX_OK;

	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		struct buf help;

		buf_init(&help, 64 * 1024);
		if (config_usage(options, &help) == 0)
			printf("usage: %s\n%s", synopsis, help.data);
		buf_release(&help);
		return EX_OK;
	}
	r = config_parse_args(options, argc, argv, &next, err, sizeof(err));
	if (r < 0 || next != argc || !a.dir) {
		fprintf(stderr, "simulate run: %s\nusage: %s\n", r < 0 ? err : "give --dir",
		        synopsis);
		status = EX_USAGE;
		goto out;
	}
	if (a.verbose)
		log_setup("simulate", LOG_LEVEL_INFO, NULL);
	snprintf(path, sizeof(path), "%s/region.json", a.dir);
	r = region_load(&g, path, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		status = EX_NOINPUT;
		goto out;
	}
	if (a.seed >= 0 && (uint64_t)a.seed != g.seed) {
		log_error("the region in '%s' was generated with seed %llu, not %lld", a.dir,
		          (unsigned long long)g.seed, a.seed);
		status = EX_USAGE;
		goto out;
	}
	r = run(&a, &g, spec ? spec : "");
	status = r == 0            ? EX_OK
	         : r == -EINVAL    ? EX_USAGE
	         : r == -ETIMEDOUT ? EX_TEMPFAIL
	         : r == -EPROTO    ? EX_SOFTWARE
	         : r == -EINTR     ? EX_TEMPFAIL
	                           : EX_IOERR;
out:
	region_release(&g);
	config_release(options);
	return status;
}
