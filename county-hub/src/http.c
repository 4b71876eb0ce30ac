/* HTTP helpers: see http.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "common/errlist.h"
#include "common/log.h"
#include "http.h"
#include "common/banned.h"

#define WATCHDOG_TICK_MS 250

void http_reply_release(struct http_reply *r)
{
	if (!r->static_body)
		free(r->body);
	memset(r, 0, sizeof(*r));
}

int http_reply_queue(struct MHD_Connection *conn, const struct http_reply *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char value[32];

	resp = MHD_create_response_from_buffer(r->len, r->body ? r->body : (char *)"",
	                                       MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	if (r->content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
	if (r->allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
	if (r->retry_after) {
		snprintf(value, sizeof(value), "%u", r->retry_after);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, value);
	}
	if (r->close)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(conn, (unsigned)r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

void http_reply_text(struct http_reply *r, int status, const char *text)
{
	http_reply_release(r);
	r->status = status;
	r->body = (char *)text;
	r->len = strlen(text);
	r->static_body = 1;
	r->content_type = "text/plain; charset=utf-8";
}

int http_reply_error(struct http_reply *r, int status, const char *code, const char *message,
                     const struct errlist *errors, const char *reason)
{
	cJSON *root = cJSON_CreateObject(), *details, *d;
	char *text = NULL;
	int ret = -ENOMEM;

	if (!root || !cJSON_AddStringToObject(root, "error", code) ||
	    !cJSON_AddStringToObject(root, "message", message))
		goto out;
	if (reason && !cJSON_AddStringToObject(root, "reason", reason))
		goto out;
	details = cJSON_AddArrayToObject(root, "details");
	if (!details)
		goto out;
	for (size_t i = 0; errors && i < errors->count; i++) {
		const struct errlist_entry *e = &errors->entries[i];

		if (e->severity != ERRLIST_ERROR)
			continue;
		d = cJSON_CreateObject();
		if (!d)
			goto out;
		cJSON_AddItemToArray(details, d);
		if (!cJSON_AddStringToObject(d, "pointer", e->pointer) ||
		    !cJSON_AddStringToObject(d, "keyword", e->keyword) ||
		    !cJSON_AddStringToObject(d, "message", e->message))
			goto out;
	}
	text = cJSON_PrintUnformatted(root);
	if (!text)
		goto out;
	http_reply_release(r);
	r->status = status;
	r->body = text;
	r->len = strlen(text);
	r->content_type = "application/json";
	ret = 0;
out:
	cJSON_Delete(root);
	return ret;
}

static int64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *watchdog_main(void *data)
{
	struct http_watchdog *w = data;
	struct timespec until;

	pthread_mutex_lock(&w->lock);
	while (!w->stopping) {
		int64_t now = monotonic_ms();

		for (struct http_watch *e = w->list; e; e = e->next) {
			if (e->busy || e->cut || now - e->phase_start_ms <= w->deadline_ms)
				continue;
			/* the entry is still listed, so MHD has not closed the socket yet: the
			 * closed notification removes it under this lock first */
			shutdown(e->fd, SHUT_RDWR);
			e->cut = 1;
			w->cut_total++;
			log_info("cut off a connection whose request took over %lld ms to arrive",
			         (long long)w->deadline_ms);
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += WATCHDOG_TICK_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&w->wake, &w->lock, &until);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int http_watchdog_start(struct http_watchdog *w, int64_t deadline_ms)
{
	int r;

	memset(w, 0, sizeof(*w));
	w->deadline_ms = deadline_ms;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	r = -pthread_create(&w->thread, NULL, watchdog_main, w);
	if (r < 0) {
		pthread_cond_destroy(&w->wake);
		pthread_mutex_destroy(&w->lock);
		return r;
	}
	w->started = 1;
	return 0;
}

void http_watchdog_stop(struct http_watchdog *w)
{
	if (!w->started)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = 1;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	/* entries left belong to connections MHD closes later; the caller stops MHD first */
	while (w->list) {
		struct http_watch *e = w->list;

		w->list = e->next;
		free(e);
	}
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	w->started = 0;
}

struct http_watch *http_watch_open(struct http_watchdog *w, int fd)
{
	struct http_watch *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->fd = fd;
	e->phase_start_ms = monotonic_ms();
	pthread_mutex_lock(&w->lock);
	e->next = w->list;
	if (w->list)
		w->list->prev = e;
	w->list = e;
	pthread_mutex_unlock(&w->lock);
	return e;
}

void http_watch_close(struct http_watchdog *w, struct http_watch *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&w->lock);
	if (e->prev)
		e->prev->next = e->next;
	else
		w->list = e->next;
	if (e->next)
		e->next->prev = e->prev;
	pthread_mutex_unlock(&w->lock);
	free(e);
}

void http_watch_busy(struct http_watchdog *w, struct http_watch *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&w->lock);
	e->busy = 1;
	pthread_mutex_unlock(&w->lock);
}

void http_watch_idle(struct http_watchdog *w, struct http_watch *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&w->lock);
	e->busy = 0;
	e->phase_start_ms = monotonic_ms();
	pthread_mutex_unlock(&w->lock);
}
