/* Small helpers around libmicrohttpd for the programs' HTTP servers (county-hub and
 * region-server): starting a server, with TLS or on loopback only without it (DESIGN
 * section 10), answers (struct http_reply) with their headers, the JSON error body of
 * docs/PROTOCOL.md, and a watchdog that cuts off connections whose request does not
 * arrive in time.
 *
 * TLS: libmicrohttpd with GnuTLS, a certificate chain and its private key in PEM files.
 * Plain HTTP is refused on an address other than loopback unless the program says so
 * explicitly (its --insecure-plain-http): a county's returns then cross a network in
 * clear text. A plain-HTTP client of a TLS port fails the handshake and gets no answer.
 *
 * Why a watchdog: MHD_OPTION_CONNECTION_TIMEOUT only closes connections that stay
 * silent; a client that trickles one byte a second keeps it from ever firing. The
 * watchdog gives every request a deadline from the moment its connection is ready for it
 * (accepted, or done with the previous request) to the end of its body; past it, the
 * socket is shut down, which MHD sees as the peer going away. A request being processed
 * (e.g. waiting for the group commit) or answered has no deadline.
 * The watchdog is thread-safe; a struct http_reply has one owner. Nothing here logs above
 * debug. */
#ifndef COMMON_HTTP_SERVER_H
#define COMMON_HTTP_SERVER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "common/macro.h"

struct MHD_Connection;
struct MHD_Daemon;
struct errlist;
struct http_watchdog;
struct sockaddr_storage;

#define HTTP_TLS_FILE_MAX (1024 * 1024) /* bytes of a PEM certificate chain or key file */

/* What a program's server is: its address, its threads, its limits, its handlers. */
struct http_server_options {
	const char *listen;   /* "ADDR:PORT" (http_parse_listen) */
	unsigned flags;       /* the program's MHD_USE_* threading flags (MHD_USE_ITC is added) */
	unsigned thread_pool; /* MHD_OPTION_THREAD_POOL_SIZE; 0: none */
	unsigned max_connections; /* MHD_OPTION_CONNECTION_LIMIT */
	size_t connection_memory; /* MHD_OPTION_CONNECTION_MEMORY_LIMIT, bytes */
	unsigned idle_timeout;    /* MHD_OPTION_CONNECTION_TIMEOUT, seconds */
	MHD_AccessHandlerCallback on_request;
	void *request_data;
	MHD_RequestCompletedCallback on_completed;
	void *completed_data;
	struct http_watchdog *watchdog; /* deadlines of the requests; may be NULL */
	const char *tls_cert;           /* PEM files, both or neither (NULL or "": plain HTTP) */
	const char *tls_key;
	int insecure_plain_http; /* allow plain HTTP on an address other than loopback */
	/* libmicrohttpd's error messages, one line each without its newline, on whatever
	 * thread it ran into them (may be NULL: dropped); the program logs them */
	void (*on_error)(void *data, const char *line);
	void *on_error_data;
};

/* A running server. The daemon belongs to it, with the PEM text MHD was given. All zero
 * (= {0}) is a server that never started. */
struct http_server {
	struct MHD_Daemon *daemon;
	unsigned port; /* the port bound (useful with port 0) */
	int tls;       /* 1: HTTPS */
	int quiesced;  /* http_server_quiesce took listen_fd from MHD */
	int listen_fd;
	char *tls_cert_pem, *tls_key_pem;
	void (*on_error)(void *data, const char *line);
	void *on_error_data;
};

/* 1 when addr is a loopback address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104), else 0. */
int http_address_is_loopback(const struct sockaddr_storage *addr);

/* The checks of http_server_start that need no file and no socket, for a program to run
 * before it touches anything: same errors (-EINVAL, -ENOTSUP), err says what. */
int http_server_check(const struct http_server_options *o, char *err, size_t errlen) WUR;

/* Checks o, reads the certificate and the key and starts MHD into *s (stop it with
 * http_server_stop, which is also right after a failure). -EINVAL: a bad listen address, one of
 * cert and key without the other, plain HTTP on an address other than loopback without
 * insecure_plain_http; -ENOTSUP: libmicrohttpd without TLS; -errno or -EMSGSIZE (over
 * HTTP_TLS_FILE_MAX) reading a PEM file; -EADDRINUSE for any failure of MHD to start
 * (the address is in use or not one of this machine, or the certificate and the key are
 * not PEM or do not belong together: MHD's own message went to on_error). err says what,
 * quoting the address and the files. Nothing is logged here. */
int http_server_start(struct http_server *s, const struct http_server_options *o, char *err,
                      size_t errlen) WUR;
/* Stops accepting connections; those open go on (MHD_quiesce_daemon). */
void http_server_quiesce(struct http_server *s);
/* Stops MHD (after the completion callbacks of the requests in progress), closes the
 * socket and frees what s holds. Accepts a server that never started. */
void http_server_stop(struct http_server *s);

/* An answer to queue. body is owned (freed by http_reply_release) unless static_body. */
struct http_reply {
	int status;
	char *body;
	size_t len;
	int static_body;
	const char *content_type;
	const char *allow;            /* 405: the Allow header */
	unsigned retry_after;         /* 503: seconds, 0: no header */
	int close;                    /* Connection: close */
	const char *www_authenticate; /* 401: the WWW-Authenticate header (RFC 6750) */
};

void http_reply_release(struct http_reply *r);
/* Queues r on conn (only from the access handler's final call). An owned body is handed
 * to MHD, not copied (r->body is NULL afterwards; MHD frees it once sent); a static one
 * must outlive the connection (a string literal). MHD_YES/MHD_NO as int. */
int http_reply_queue(struct MHD_Connection *conn, struct http_reply *r);

/* Fills *r with status and a static text body (text/plain). */
void http_reply_text(struct http_reply *r, int status, const char *text);
/* Fills *r with the error body {"error": code, "message": …, "details": […]} (details
 * from errors, which may be NULL; "reason" when reason is not NULL). -ENOMEM. */
int http_reply_error(struct http_reply *r, int status, const char *code, const char *message,
                     const struct errlist *errors, const char *reason) WUR;

/* Parses "ADDR:PORT" (IPv4, or "[IPv6]:PORT"; numeric only, no host names) into *ret and
 * *ret_len. -EINVAL when s is not one. */
int http_parse_listen(const char *s, struct sockaddr_storage *ret, unsigned *ret_len) WUR;
/* The peer's numeric address into out ("-" when unknown). */
void http_peer_address(struct MHD_Connection *conn, char *out, size_t outlen);

/* The deadline keeper. One entry per connection, made by http_watch_open from MHD's
 * connection-started notification and freed by http_watch_close from its closed one. */
struct http_watch {
	int fd;
	int64_t phase_start_ms; /* CLOCK_MONOTONIC */
	int busy;               /* processing or answering: no deadline */
	int cut;                /* shut down already */
	struct http_watch *prev, *next;
};

struct http_watchdog {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	struct http_watch *list;
	int64_t deadline_ms;
	int stopping, started;
	unsigned long long cut_total;
	void (*on_cut)(void *data, int64_t deadline_ms);
	void *on_cut_data;
};

/* Starts the thread; deadline_ms: how long a request may take to arrive. */
int http_watchdog_start(struct http_watchdog *w, int64_t deadline_ms) WUR;
/* The same, and on_cut (may be NULL) is called from the watchdog's thread, with its lock
 * held (it must not call into the watchdog), each time a connection is cut off: the
 * program logs it there if it wants to. */
int http_watchdog_start_notify(struct http_watchdog *w, int64_t deadline_ms,
                               void (*on_cut)(void *data, int64_t deadline_ms), void *data) WUR;
void http_watchdog_stop(struct http_watchdog *w);
/* NULL when out of memory (the connection then simply has no deadline). */
struct http_watch *http_watch_open(struct http_watchdog *w, int fd);
void http_watch_close(struct http_watchdog *w, struct http_watch *e);
/* The MHD_OPTION_NOTIFY_CONNECTION callback, with the watchdog as its closure: opens a
 * connection's entry when MHD starts it and closes it when MHD closes it. */
void http_watch_notify_connection(void *watchdog, struct MHD_Connection *conn,
                                  void **socket_context, enum MHD_ConnectionNotificationCode code);
/* The request has fully arrived: no deadline until http_watch_idle. */
void http_watch_busy(struct http_watchdog *w, struct http_watch *e);
/* The answer is sent: the next request's deadline starts now. */
void http_watch_idle(struct http_watchdog *w, struct http_watch *e);

#endif
