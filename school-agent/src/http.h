/* The agent's HTTP client for the county hub (libcurl multi interface). A client holds a
 * fixed number of transfers (o->transfers), each one upload of a return; up to o->parallel
 * of them are in flight at the same time, on connections (and TLS sessions) kept alive and
 * reused from one upload to the next, at most o->parallel connections. Transfers beyond
 * parallel let a caller start the next uploads before it reads the answers of those that
 * ended (an ended transfer keeps its answer until it is started again).
 * HTTPS peers are verified (CA bundle: the system's or cacert); plain HTTP is allowed to a
 * loopback address only. Redirects are not followed. Each answer is read into its
 * transfer's buffer, capped at HTTP_BODY_MAX bytes. Not thread-safe, but for http_wake. */
#ifndef SCHOOL_AGENT_HTTP_H
#define SCHOOL_AGENT_HTTP_H

#include <stdatomic.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/macro.h"

#define HTTP_BODY_MAX (1024u * 1024)     /* bytes of an answer */
#define HTTP_RETRY_AFTER_MAX (7 * 86400) /* seconds: a longer Retry-After is cut to this */
#define HTTP_PARALLEL_MAX 64             /* transfers of one client */

struct http_options {
	const char *cacert;      /* may be NULL */
	const char *client_cert; /* may be NULL */
	const char *client_key;  /* may be NULL */
	long timeout_s;          /* the whole exchange, and the longest stall */
	size_t parallel;         /* uploads in flight at once: 1 to HTTP_PARALLEL_MAX */
	size_t transfers;        /* transfers held: parallel to 2 x parallel (0: parallel) */
};

/* One upload and, once it has ended, its outcome. */
struct http_transfer {
	void *curl;         /* CURL * */
	int running;        /* started and not yet reported ended by http_post_wait */
	int result;         /* once ended: 0 when an answer arrived, else a negative errno */
	long status;        /* once ended with an answer: its HTTP status */
	struct buf body;    /* ... its body */
	long retry_after_s; /* ... its Retry-After in seconds; -1: none (or not valid) */
	char content_type[128];
	char error[256]; /* once ended without an answer: libcurl's reason */
};

struct http_client {
	void *multi; /* CURLM * */
	struct curl_slist *headers;
	char *url; /* the hub's POST /v1/submissions */
	struct http_transfer *transfers;
	size_t count;     /* of transfers */
	size_t parallel;  /* transfers in flight at most */
	size_t running;   /* transfers in flight */
	int failed;       /* libcurl's multi interface failed: every running transfer ends */
	atomic_int woken; /* http_wake was called since a wait last returned for it */
};

/* Sets up a client for the hub at base_url ("https://hub:8443", with or without a final
 * slash). Release with http_client_release. -EINVAL (bad URL, parallel or transfers, err
 * says why), -ENOMEM, -EIO (libcurl refused an option). */
int http_client_init(struct http_client *ret, const char *base_url, const struct http_options *o,
                     char *err, size_t errlen) WUR;
/* Ends the transfers still in flight (their answers are dropped) and frees everything. */
void http_client_release(struct http_client *c);

/* Starts POSTing len bytes of gzip-compressed JWS text on transfer i, which must not be
 * running: the request goes out on the next http_post_send or http_post_wait. gz is
 * borrowed until http_post_wait reports the transfer ended. -EBUSY when it is running,
 * -EAGAIN when parallel transfers are, -EINVAL for a bad i, -EIO when libcurl refuses. */
int http_post_start(struct http_client *c, size_t i, const void *gz, size_t len) WUR;

/* Sends what can be sent of the uploads just started, without waiting: their requests go
 * out while the caller does other work. What ended meanwhile is reported by the next
 * http_post_wait. */
void http_post_send(struct http_client *c);

/* Makes a wait of http_post_wait, now or the next one, return 0: from any thread. */
void http_wake(struct http_client *c);

/* Reports one transfer that ended: returns 1 with its index in *ret_index, its outcome in
 * the transfer (result 0: status, body, retry_after_s and content_type; otherwise result
 * -ETIMEDOUT, -ECONNREFUSED, -EPROTO (TLS), -EMSGSIZE (an answer over HTTP_BODY_MAX) or
 * -EIO, with libcurl's reason in error). Waits up to timeout_ms for one to end (0: only
 * one that already has; -1: as long as it takes, each transfer being bounded by the
 * timeout). Returns 0 when none is to be reported: nothing is running, none ended in time,
 * or http_wake woke it. */
int http_post_wait(struct http_client *c, int timeout_ms, size_t *ret_index) WUR;

#endif
