/* HTTP server helpers: see http_server.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "common/errlist.h"
#include "common/http_server.h"
#include "common/log.h"
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
	if (r->www_authenticate)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		                        r->www_authenticate);
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

int http_parse_listen(const char *s, struct sockaddr_storage *ret, unsigned *ret_len)
{
	char host[64];
	const char *colon, *port_text;
	struct sockaddr_storage ss;
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	unsigned long port;
	char *end;
	size_t n;

	memset(&ss, 0, sizeof(ss));
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		n = (size_t)(close - s - 1);
		port_text = close + 2;
		s++;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		n = (size_t)(colon - s);
		port_text = colon + 1;
	}
	if (n == 0 || n >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	errno = 0;
	port = strtoul(port_text, &end, 10);
	if (errno || end == port_text || *end || port > 65535 || port_text[0] == '-' ||
	    port_text[0] == '+')
		return -EINVAL;
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*ret_len = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*ret_len = sizeof(struct sockaddr_in6);
	} else {
		return -EINVAL;
	}
	*ret = ss;
	return 0;
}

void http_peer_address(struct MHD_Connection *conn, char *out, size_t outlen)
{
	const union MHD_ConnectionInfo *info =
	        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = info ? info->client_addr : NULL;

	snprintf(out, outlen, "-");
	if (!sa)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
		          (socklen_t)outlen);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		          out, (socklen_t)outlen);
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

	pthread_setname_np(pthread_self(), "http-watchdog");
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
			log_debug("cut off a connection whose request took over %lld ms to arrive",
			          (long long)w->deadline_ms);
			if (w->on_cut)
				w->on_cut(w->on_cut_data, w->deadline_ms);
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
	return http_watchdog_start_notify(w, deadline_ms, NULL, NULL);
}

int http_watchdog_start_notify(struct http_watchdog *w, int64_t deadline_ms,
                               void (*on_cut)(void *data, int64_t deadline_ms), void *data)
{
	int r;

	memset(w, 0, sizeof(*w));
	w->deadline_ms = deadline_ms;
	w->on_cut = on_cut;
	w->on_cut_data = data;
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

void http_watch_notify_connection(void *watchdog, struct MHD_Connection *conn,
                                  void **socket_context, enum MHD_ConnectionNotificationCode code)
{
	const union MHD_ConnectionInfo *info;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		*socket_context = info ? http_watch_open(watchdog, info->connect_fd) : NULL;
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		http_watch_close(watchdog, *socket_context);
		*socket_context = NULL;
	}
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
