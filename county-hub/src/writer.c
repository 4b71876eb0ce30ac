/* The group-commit writer: see writer.h. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "metrics.h"
#include "store.h"
#include "writer.h"
#include "common/banned.h"

/* The log's size past which the checkpointer copies it into the database file: SQLite's
 * own threshold for the checkpoint it would otherwise run inside a commit. */
#define CHECKPOINT_PAGES 1000

/* SQLite starts the log over (instead of making it longer) at the first commit after a
 * checkpoint that copied all of it, provided nothing was committed in between. Under a
 * steady load the writer always commits while the checkpointer copies, so a checkpoint
 * done beside the commits alone never lets the log start over. Hence two steps: the
 * checkpointer copies the bulk beside the commits (CKPT_BULK), then the writer, between
 * two groups and after answering the first, copies the few pages committed meanwhile
 * (CKPT_FINISH), and its next commit starts the log over. */
enum ckpt_state {
	CKPT_IDLE,
	CKPT_BULK,   /* the checkpointer is at work */
	CKPT_FINISH, /* the bulk is copied: the writer finishes after its current group */
};

struct writer {
	struct writer_options o;
	struct store *store;
	struct metrics *metrics;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct writer_job *head, *tail; /* the queue */
	size_t queued, reserved;
	int stopping;
	int joined;

	/* the checkpointer: its own connection and thread, woken by the writer's commits */
	struct store *ckpt_store;
	pthread_t ckpt_thread;
	pthread_cond_t ckpt_wake;
	enum ckpt_state ckpt; /* under lock */
	int ckpt_stopping;    /* under lock */
	int last_wal_pages;   /* writer thread only */
};

static double monotonic_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The outcome of an error that ends the whole group. */
static void group_status(int r, int *ret_status, const char **ret_message)
{
	if (r == -EBUSY) {
		*ret_status = 503;
		*ret_message = "the store is busy";
	} else if (r == -ENOSPC) {
		*ret_status = 507;
		*ret_message = "the store is full";
	} else {
		*ret_status = 500;
		*ret_message = "the store failed";
	}
}

/* Decides and stores one job inside the group's transaction. Returns 0 with job->status
 * set, or a negative errno that ends the whole group (-ENOSPC, -EBUSY, -ENOMEM, -EIO). */
static int store_job(struct writer *w, struct writer_job *job)
{
	const struct store_submission *sub = &job->sub;
	struct store_found found;
	char *receipt = NULL;
	size_t receipt_len = 0;
	int approved, exception, have, r;

	r = store_submission_find(w->store, sub->submission_id, &found, &receipt, &receipt_len);
	if (r < 0 && r != -ENOENT)
		return r;
	have = r == 0;
	if (have && strcmp(found.payload_sha256, sub->payload_sha256) == 0) {
		/* answered even when the period has locked since: it is stored */
		job->status = 200;
		job->receipt = receipt;
		job->receipt_len = receipt_len;
		return 0;
	}
	free(receipt);
	r = store_lock_state(w->store, sub->school_id, sub->form, sub->period, &approved,
	                     &exception);
	if (r < 0)
		return r;
	if (!exception && (approved || job->expired)) {
		job->status = 423;
		job->message = approved ? "approved" : "expired";
		return 0;
	}
	if (have) {
		job->status = 409;
		job->message = "this submission_id is already stored with other bytes";
		return 0;
	}
	if (sub->supersedes) {
		r = store_submission_find(w->store, sub->supersedes, &found, NULL, NULL);
		if (r < 0 && r != -ENOENT)
			return r;
		if (r == -ENOENT || strcmp(found.school_id, sub->school_id) != 0 ||
		    strcmp(found.form, sub->form) != 0 || strcmp(found.period, sub->period) != 0) {
			job->status = 422;
			job->message = "supersedes names no stored submission of this school, form "
			               "and period";
			return 0;
		}
	}
	r = store_savepoint(w->store);
	if (r < 0)
		return r;
	r = store_submission_insert(w->store, sub, sub->received_ms);
	if (r == -ENOSPC || r == -EBUSY || r == -ENOMEM)
		return r;
	if (r < 0) {
		log_error("cannot store submission \"%s\": %s", sub->submission_id,
		          store_errmsg(w->store));
		store_rollback_to(w->store);
		job->status = 500;
		job->message = "the store failed";
		return 0;
	}
	r = store_release(w->store);
	if (r < 0)
		return r;
	job->status = 201;
	return 0;
}

/* Moves the pending roll-up of each (form, period) the group stored a return of behind
 * those returns, for the forwarder to compute when it sends it (store_rollup_mark). */
static int mark_rollups(struct writer *w, struct writer_job *group)
{
	struct writer_job *job, *seen;
	int r;

	for (job = group; job; job = job->next) {
		if (job->status != 201)
			continue;
		for (seen = group; seen != job; seen = seen->next)
			if (seen->status == 201 && strcmp(seen->sub.form, job->sub.form) == 0 &&
			    strcmp(seen->sub.period, job->sub.period) == 0)
				break;
		if (seen != job)
			continue;
		r = store_rollup_mark(w->store, job->sub.form, job->sub.period, NULL,
		                      job->sub.received_ms);
		if (r < 0)
			return r;
	}
	return 0;
}

static void run_group(struct writer *w, struct writer_job *group, size_t count)
{
	struct writer_job *job, *next;
	double t0 = monotonic_seconds();
	const char *message = NULL;
	int status = 0, r;

	r = store_begin(w->store);
	for (job = group; r == 0 && job; job = job->next)
		r = store_job(w, job);
	if (r == 0)
		r = mark_rollups(w, group);
	if (r == 0)
		r = store_commit(w->store);
	if (r < 0) {
		log_warning("group of %zu uploads not stored: %s", count, store_errmsg(w->store));
		store_rollback(w->store);
		group_status(r, &status, &message);
	} else {
		metrics_commit(w->metrics, monotonic_seconds() - t0, count);
		if (w->o.committed)
			w->o.committed(w->o.committed_data);
	}
	for (job = group; job; job = next) {
		next = job->next;
		if (status) {
			free(job->receipt);
			job->receipt = NULL;
			job->status = status;
			job->message = message;
		}
		job->next = NULL;
		atomic_fetch_sub(&w->metrics->queue_depth, 1);
		job->done(job); /* the job is no longer ours */
	}
}

/* Writer thread, after each commit (store_wal_hook): wake the checkpointer once the log
 * is long enough. Never waits for a checkpoint. */
static void on_wal(void *data, int wal_pages)
{
	struct writer *w = data;

	atomic_store(&w->metrics->wal_pages, wal_pages);
	if (wal_pages < w->last_wal_pages)
		atomic_fetch_add(&w->metrics->wal_restarts, 1);
	w->last_wal_pages = wal_pages;
	if (wal_pages < CHECKPOINT_PAGES)
		return;
	pthread_mutex_lock(&w->lock);
	if (w->ckpt == CKPT_IDLE) {
		w->ckpt = CKPT_BULK;
		pthread_cond_signal(&w->ckpt_wake);
	}
	pthread_mutex_unlock(&w->lock);
}

/* A passive checkpoint on store, counted. 1 when it copied all of the log it saw, 0 when
 * readers kept some of it back, or a negative errno. */
static int checkpoint(struct writer *w, struct store *store)
{
	double t0 = monotonic_seconds();
	int wal_pages = 0, copied = 0, r;

	r = store_checkpoint(store, &wal_pages, &copied);
	metrics_checkpoint(w->metrics, monotonic_seconds() - t0, r < 0);
	if (r < 0 && r != -EBUSY)
		log_warning("cannot checkpoint the store, retrying after a later commit: %s",
		            store_errmsg(store));
	if (r < 0)
		return r;
	log_debug("checkpoint: %d of %d log pages in the database file", copied, wal_pages);
	return copied >= wal_pages;
}

/* The checkpointer's thread: the bulk of each checkpoint, beside the commits, so that no
 * upload waits for it (inside a commit it would cost that group the copy of some 4 MB and
 * two more syncs). */
static void *checkpoint_main(void *data)
{
	struct writer *w = data;
	int r;

	pthread_setname_np(pthread_self(), "hub-checkpoint");
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (w->ckpt != CKPT_BULK && !w->ckpt_stopping)
			pthread_cond_wait(&w->ckpt_wake, &w->lock);
		if (w->ckpt_stopping)
			break;
		pthread_mutex_unlock(&w->lock);
		r = checkpoint(w, w->ckpt_store);
		pthread_mutex_lock(&w->lock);
		/* readers kept part of it: a later commit asks again */
		w->ckpt = r == 1 ? CKPT_FINISH : CKPT_IDLE;
		if (w->ckpt == CKPT_FINISH)
			pthread_cond_signal(&w->wake);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static void checkpoint_stop(struct writer *w)
{
	pthread_mutex_lock(&w->lock);
	w->ckpt_stopping = 1;
	pthread_cond_signal(&w->ckpt_wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->ckpt_thread, NULL);
}

static void *writer_main(void *data)
{
	struct writer *w = data;
	struct writer_job *group, *last;
	size_t count;

	pthread_setname_np(pthread_self(), "hub-writer");
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->head && w->ckpt != CKPT_FINISH && !(w->stopping && w->reserved == 0))
			pthread_cond_wait(&w->wake, &w->lock);
		if (w->ckpt == CKPT_FINISH) {
			/* between two groups: what waits for this is the next one */
			w->ckpt = CKPT_IDLE;
			pthread_mutex_unlock(&w->lock);
			(void)checkpoint(w, w->store);
			pthread_mutex_lock(&w->lock);
			continue;
		}
		if (!w->head)
			break;
		group = w->head;
		last = group;
		for (count = 1; count < w->o.group_max && last->next; count++)
			last = last->next;
		w->head = last->next;
		if (!w->head)
			w->tail = NULL;
		last->next = NULL;
		w->queued -= count;
		pthread_mutex_unlock(&w->lock);
		run_group(w, group, count);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int writer_start(const struct writer_options *o, struct metrics *m, struct writer **ret, char *err,
                 size_t errlen)
{
	struct writer *w;
	int r;

	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->o = *o;
	w->metrics = m;
	r = store_open(o->store_path, 0, o->busy_timeout_ms, &w->store, err, errlen);
	if (r < 0)
		goto fail;
	r = store_open(o->store_path, 0, o->busy_timeout_ms, &w->ckpt_store, err, errlen);
	if (r < 0)
		goto fail;
	r = store_set_max_bytes(w->store, o->store_max_bytes);
	if (r < 0) {
		snprintf(err, errlen, "cannot cap the store: %s", store_errmsg(w->store));
		goto fail;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	pthread_cond_init(&w->ckpt_wake, NULL);
	r = -pthread_create(&w->ckpt_thread, NULL, checkpoint_main, w);
	if (r < 0) {
		snprintf(err, errlen, "cannot start the checkpoint thread");
		goto fail_sync;
	}
	store_wal_hook(w->store, on_wal, w);
	r = -pthread_create(&w->thread, NULL, writer_main, w);
	if (r < 0) {
		snprintf(err, errlen, "cannot start the writer thread");
		checkpoint_stop(w);
		goto fail_sync;
	}
	*ret = w;
	return 0;
fail_sync:
	pthread_cond_destroy(&w->ckpt_wake);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
fail:
	store_close(w->ckpt_store);
	store_close(w->store);
	free(w);
	return r;
}

int writer_reserve(struct writer *w)
{
	int r = 0;

	pthread_mutex_lock(&w->lock);
	if (w->stopping)
		r = -ESHUTDOWN;
	else if (w->queued + w->reserved >= w->o.queue_max)
		r = -EAGAIN;
	else
		w->reserved++;
	pthread_mutex_unlock(&w->lock);
	return r;
}

void writer_submit(struct writer *w, struct writer_job *job)
{
	job->next = NULL;
	job->status = 0;
	job->receipt = NULL;
	job->message = NULL;
	atomic_fetch_add(&w->metrics->queue_depth, 1);
	pthread_mutex_lock(&w->lock);
	w->reserved--;
	if (w->tail)
		w->tail->next = job;
	else
		w->head = job;
	w->tail = job;
	w->queued++;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

void writer_cancel(struct writer *w)
{
	pthread_mutex_lock(&w->lock);
	w->reserved--;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

void writer_stop(struct writer *w)
{
	if (!w || w->joined)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = 1;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	checkpoint_stop(w);
	w->joined = 1;
}

void writer_free(struct writer *w)
{
	if (!w)
		return;
	writer_stop(w);
	pthread_cond_destroy(&w->ckpt_wake);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	/* the last connection to close checkpoints what is left */
	store_close(w->ckpt_store);
	store_close(w->store);
	free(w);
}
