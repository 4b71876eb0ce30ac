/* The preparer: see prepare.h. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prepare.h"
#include "common/gzip.h"
#include "common/banned.h"

struct preparer {
	const struct agent *agent; /* borrowed */
	struct http_client *wake;  /* borrowed while the thread runs: woken when wanted is set */
	struct gzip_compressor gz; /* the preparer thread's, or the caller's when inline */
	pthread_mutex_t lock;      /* guards what follows */
	pthread_cond_t work;       /* a return came, or stop */
	pthread_cond_t done;       /* a return is prepared */
	struct prepared **queue;   /* a ring of capacity: handed over, not yet taken back */
	size_t capacity;
	size_t first; /* in queue */
	size_t count; /* handed over, not taken back */
	size_t ready; /* of count, from first: prepared */
	int busy;     /* the thread is preparing queue[first + ready] */
	int wanted;   /* preparer_next found nothing ready: wake the client when one is */
	int stop;
	int threaded; /* the thread runs */
	pthread_t thread;
};

int preparer_new(struct preparer **ret, const struct agent *a, size_t capacity)
{
	struct preparer *p = calloc(1, sizeof(*p));
	int r = -ENOMEM;

	if (!p)
		return -ENOMEM;
	p->agent = a;
	p->capacity = capacity;
	p->queue = calloc(capacity, sizeof(*p->queue));
	if (!p->queue)
		goto fail;
	r = gzip_compressor_init(&p->gz, 6);
	if (r < 0)
		goto fail;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	*ret = p;
	return 0;
fail:
	free(p->queue);
	free(p);
	return r;
}

void preparer_free(struct preparer *p)
{
	if (!p)
		return;
	preparer_end(p);
	gzip_compressor_release(&p->gz);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	free(p->queue);
	free(p);
}

/* Reads, checks and compresses up (on whichever thread owns it). */
static void prepare(struct preparer *p, struct prepared *up)
{
	int r;

	buf_reset(&up->text);
	buf_reset(&up->body);
	up->err[0] = '\0';
	r = spool_read(p->agent, SPOOL_QUEUED, up->id, &up->text);
	if (r < 0) {
		snprintf(up->err, sizeof(up->err), "failed to read the queued return '%s'", up->id);
		goto out;
	}
	r = spool_item_parse(up->text.data, up->text.len, &up->item, up->err, sizeof(up->err));
	if (r == 0 && strcmp(up->item.id, up->id) != 0) {
		snprintf(up->err, sizeof(up->err), "its submission_id is \"%s\"", up->item.id);
		r = -EBADMSG;
	}
	if (r < 0)
		goto out;
	r = gzip_compress(&p->gz, up->text.data, up->text.len, &up->body);
	if (r < 0)
		snprintf(up->err, sizeof(up->err), "failed to compress '%s'", up->id);
out:
	up->result = r;
}

/* The thread: the oldest return not yet prepared, one after another, until stop. */
static void *run(void *data)
{
	struct preparer *p = data;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct prepared *up;

		while (!p->stop && p->ready == p->count)
			pthread_cond_wait(&p->work, &p->lock);
		if (p->stop)
			break;
		up = p->queue[(p->first + p->ready) % p->capacity];
		p->busy = 1;
		pthread_mutex_unlock(&p->lock);
		prepare(p, up);
		pthread_mutex_lock(&p->lock);
		p->busy = 0;
		p->ready++;
		pthread_cond_signal(&p->done);
		/* only a loop that found nothing to start is woken: one with every upload in
		 * flight takes this return when an upload ends (a wake per return cost it a
		 * pass over its transfers each time). Nothing waits on a wake alone: with
		 * uploads in flight one ending wakes the loop, with none preparer_next waits. */
		if (p->wanted) {
			p->wanted = 0;
			http_wake(p->wake);
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

void preparer_begin(struct preparer *p, struct http_client *wake)
{
	if (p->threaded)
		return;
	p->wake = wake;
	p->stop = 0;
	p->threaded = pthread_create(&p->thread, NULL, run, p) == 0;
}

void preparer_end(struct preparer *p)
{
	if (!p->threaded)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	p->threaded = 0;
}

int preparer_add(struct preparer *p, struct prepared *up)
{
	pthread_mutex_lock(&p->lock);
	if (p->count == p->capacity) {
		pthread_mutex_unlock(&p->lock);
		return -ENOSPC;
	}
	p->queue[(p->first + p->count) % p->capacity] = up;
	p->count++;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

struct prepared *preparer_next(struct preparer *p, int wait)
{
	struct prepared *up = NULL;

	pthread_mutex_lock(&p->lock);
	if (p->count > 0 && p->ready == 0 && !p->threaded) {
		/* no thread: prepared here (nothing else touches it meanwhile) */
		pthread_mutex_unlock(&p->lock);
		prepare(p, p->queue[p->first]);
		pthread_mutex_lock(&p->lock);
		p->ready++;
	}
	while (wait && p->count > 0 && p->ready == 0)
		pthread_cond_wait(&p->done, &p->lock);
	if (p->ready > 0) {
		up = p->queue[p->first];
		p->first = (p->first + 1) % p->capacity;
		p->count--;
		p->ready--;
	} else {
		p->wanted = 1;
	}
	pthread_mutex_unlock(&p->lock);
	return up;
}

size_t preparer_count(struct preparer *p)
{
	size_t n;

	pthread_mutex_lock(&p->lock);
	n = p->count;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void preparer_cancel(struct preparer *p)
{
	pthread_mutex_lock(&p->lock);
	while (p->busy)
		pthread_cond_wait(&p->done, &p->lock);
	for (; p->ready < p->count; p->ready++) {
		struct prepared *up = p->queue[(p->first + p->ready) % p->capacity];

		up->result = -ECANCELED;
		snprintf(up->err, sizeof(up->err), "not sent in this pass");
	}
	pthread_mutex_unlock(&p->lock);
}
