/* The CPU work threads of `serve`: see workpool.h. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workpool.h"
#include "common/banned.h"

struct workpool {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct workpool_job *head, *tail;
	int stopping, joined;
	char name[16];
	size_t threads, started;
	pthread_t thread[];
};

static void *pool_main(void *data)
{
	struct workpool *p = data;
	struct workpool_job *job;

	pthread_setname_np(pthread_self(), p->name);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->head && !p->stopping)
			pthread_cond_wait(&p->wake, &p->lock);
		job = p->head;
		if (!job)
			break; /* stopping, and nothing left */
		p->head = job->next;
		if (!p->head)
			p->tail = NULL;
		pthread_mutex_unlock(&p->lock);
		job->next = NULL;
		job->run(job); /* the job is no longer ours */
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int workpool_start(size_t threads, const char *name, struct workpool **ret)
{
	struct workpool *p;
	int r = 0;

	if (threads == 0)
		threads = 1;
	p = calloc(1, sizeof(*p) + threads * sizeof(p->thread[0]));
	if (!p)
		return -ENOMEM;
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->threads = threads;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	for (; p->started < threads; p->started++) {
		r = -pthread_create(&p->thread[p->started], NULL, pool_main, p);
		if (r < 0)
			break;
	}
	if (r < 0) {
		workpool_free(p);
		return r;
	}
	*ret = p;
	return 0;
}

int workpool_submit(struct workpool *p, struct workpool_job *job)
{
	int r = 0;

	job->next = NULL;
	pthread_mutex_lock(&p->lock);
	if (p->stopping) {
		r = -ESHUTDOWN;
	} else {
		if (p->tail)
			p->tail->next = job;
		else
			p->head = job;
		p->tail = job;
		pthread_cond_signal(&p->wake);
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

void workpool_stop(struct workpool *p)
{
	if (!p || p->joined)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < p->started; i++)
		pthread_join(p->thread[i], NULL);
	p->joined = 1;
}

void workpool_free(struct workpool *p)
{
	if (!p)
		return;
	workpool_stop(p);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
