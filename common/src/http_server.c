/* HTTP server helpers: see http_server.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/errlist.h"
#include "common/errmsg.h"
#include "common/fileio.h"
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

int http_reply_queue(struct MHD_Connection *conn, struct http_reply *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char value[32];

	if (r->static_body || !r->body) {
		resp = MHD_create_response_from_buffer(r->len, r->body ? r->body : (char *)"",
		                                       MHD_RESPMEM_PERSISTENT);
	} else {
		/* handed over, not copied: an inspection's answer can be megabytes */
		resp = MHD_create_response_from_buffer_with_free_callback(r->len, r->body, free);
		if (resp) {
			r->body = NULL;
			r->len = 0;
		}
	}
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

int http_address_is_loopback(const struct sockaddr_storage *addr)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	const struct sockaddr_in *in4 = (const struct sockaddr_in *)(const void *)addr;
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)addr;

	if (addr->ss_family == AF_INET)
		return (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
	if (addr->ss_family != AF_INET6)
		return 0;
	if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
		return 1;
	return memcmp(in6->sin6_addr.s6_addr, mapped, sizeof(mapped)) == 0 &&
	       in6->sin6_addr.s6_addr[12] == 127;
}

/* MHD's error log: one line per message, to the program's callback. */
static void on_mhd_error(void *data, const char *fmt, va_list ap) PRINTF_LIKE(2, 0);
static void on_mhd_error(void *data, const char *fmt, va_list ap)
{
	struct http_server *s = data;
	char line[512];
	size_t n;

	if (!s->on_error)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	s->on_error(s->on_error_data, line);
}

/* The PEM text of path, NUL-terminated; caller frees *ret with free(). */
static int read_pem(const char *path, const char *what, char **ret, char *err, size_t errlen)
{
	struct buf text;
	int r;

	buf_init(&text, HTTP_TLS_FILE_MAX);
	r = fileio_read(path, &text);
	if (r == 0 && (!text.data || !strstr(text.data, "-----BEGIN ")))
		r = -EINVAL;
	if (r < 0) {
		buf_release(&text);
		return errmsg_set(err, errlen, r, "cannot read the TLS %s '%s': %s", what, path,
		                  r == -EINVAL     ? "not a PEM file"
		                  : r == -EMSGSIZE ? "larger than 1 MiB"
		                                   : strerror(-r));
	}
	*ret = buf_detach(&text, NULL);
	return 0;
}

int http_server_check(const struct http_server_options *o, char *err, size_t errlen)
{
	const char *cert = o->tls_cert && o->tls_cert[0] ? o->tls_cert : NULL;
	const char *key = o->tls_key && o->tls_key[0] ? o->tls_key : NULL;
	struct sockaddr_storage addr;
	unsigned addr_len;

	if (!o->listen || http_parse_listen(o->listen, &addr, &addr_len) < 0)
		return errmsg_set(err, errlen, -EINVAL, "listen address '%s' is not ADDR:PORT",
		                  o->listen ? o->listen : "");
	if (!cert != !key)
		return errmsg_set(err, errlen, -EINVAL,
		                  "give both the TLS certificate and its key, or neither");
	if (!cert && !o->insecure_plain_http && !http_address_is_loopback(&addr))
		return errmsg_set(
		        err, errlen, -EINVAL,
		        "refusing plain HTTP on %s, which is not a loopback address: give "
		        "a TLS certificate and key, or allow it explicitly with "
		        "--insecure-plain-http",
		        o->listen);
	if (cert && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
		return errmsg_set(err, errlen, -ENOTSUP,
		                  "this libmicrohttpd was built without TLS: cannot serve HTTPS");
	return 0;
}

int http_server_start(struct http_server *s, const struct http_server_options *o, char *err,
                      size_t errlen)
{
	const char *cert = o->tls_cert && o->tls_cert[0] ? o->tls_cert : NULL;
	const char *key = o->tls_key && o->tls_key[0] ? o->tls_key : NULL;
	struct MHD_OptionItem extra[6];
	struct sockaddr_storage addr;
	const union MHD_DaemonInfo *info;
	/* ITC: MHD_quiesce_daemon needs it with MHD's own threads */
	unsigned flags = o->flags | MHD_USE_ERROR_LOG | MHD_USE_ITC, addr_len;
	size_t n = 0;
	int r;

	memset(s, 0, sizeof(*s));
	s->on_error = o->on_error;
	s->on_error_data = o->on_error_data;
	r = http_server_check(o, err, errlen);
	if (r < 0)
		return r;
	if (http_parse_listen(o->listen, &addr, &addr_len) < 0)
		return -EINVAL; /* checked */
	s->tls = cert != NULL;
	if (s->tls) {
		r = read_pem(cert, "certificate", &s->tls_cert_pem, err, errlen);
		if (r == 0)
			r = read_pem(key, "key", &s->tls_key_pem, err, errlen);
		if (r < 0)
			goto fail;
		flags |= MHD_USE_TLS;
		extra[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert_pem};
		extra[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key_pem};
	}
	if (addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (o->thread_pool)
		extra[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE,
		                                     (intptr_t)o->thread_pool, NULL};
	if (o->watchdog)
		extra[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION,
		                                     (intptr_t)http_watch_notify_connection,
		                                     o->watchdog};
	extra[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	s->daemon = MHD_start_daemon(
	        flags, 0, NULL, NULL, o->on_request, o->request_data, MHD_OPTION_EXTERNAL_LOGGER,
	        on_mhd_error, s, MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_CONNECTION_LIMIT,
	        o->max_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT, o->connection_memory,
	        MHD_OPTION_CONNECTION_TIMEOUT, o->idle_timeout, MHD_OPTION_NOTIFY_COMPLETED,
	        o->on_completed, o->completed_data, MHD_OPTION_ARRAY, extra, MHD_OPTION_END);
	if (!s->daemon) {
		r = errmsg_set(
		        err, errlen, -EADDRINUSE,
		        s->tls ? "cannot serve HTTPS on %s (the address is in use or not one "
		                 "of this machine, or the certificate and the key do not "
		                 "go together)"
		               : "cannot serve on %s (in use, or not an address of this "
		                 "machine)",
		        o->listen);
		goto fail;
	}
	info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info ? (unsigned)info->port : 0u;
	return 0;
fail:
	http_server_stop(s);
	return r;
}

void http_server_quiesce(struct http_server *s)
{
	MHD_socket fd;

	if (!s->daemon || s->quiesced)
		return;
	fd = MHD_quiesce_daemon(s->daemon);
	s->quiesced = fd != MHD_INVALID_SOCKET;
	s->listen_fd = fd;
}

void http_server_stop(struct http_server *s)
{
	if (s->daemon)
		MHD_stop_daemon(s->daemon);
	if (s->quiesced)
		close(s->listen_fd);
	free(s->tls_cert_pem);
	free(s->tls_key_pem);
	memset(s, 0, sizeof(*s));
}

static void *watchdog_main(void *data)
{
	struct http_watchdog *w = data;
	struct timespec until;

	pthread_setname_np(pthread_self(), "http-watchdog");
	pthread_mutex_lock(&w->lock);
	while (!w->stopping) {
		int64_t now = clock_monotonic_ms();

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
	e->phase_start_ms = clock_monotonic_ms();
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
	e->phase_start_ms = clock_monotonic_ms();
	pthread_mutex_unlock(&w->lock);
}
