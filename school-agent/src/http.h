/* The agent's HTTP client for the county hub (libcurl easy interface). One handle is set
 * up once and reused for every upload of a sync, so the connection (and its TLS session)
 * is kept alive between returns. HTTPS peers are verified (CA bundle: the system's or
 * cacert); plain HTTP is allowed to a loopback address only. Redirects are not followed.
 * Answers are read into a buffer capped at HTTP_BODY_MAX bytes. Not thread-safe. */
#ifndef SCHOOL_AGENT_HTTP_H
#define SCHOOL_AGENT_HTTP_H

#include <stddef.h>

#include "common/buf.h"
#include "common/macro.h"

#define HTTP_BODY_MAX (1024u * 1024)     /* bytes of an answer */
#define HTTP_RETRY_AFTER_MAX (7 * 86400) /* seconds: a longer Retry-After is cut to this */

struct http_options {
	const char *cacert;      /* may be NULL */
	const char *client_cert; /* may be NULL */
	const char *client_key;  /* may be NULL */
	long timeout_s;          /* the whole exchange, and the longest stall */
};

struct http_client {
	void *curl; /* CURL * */
	struct curl_slist *headers;
	char *url; /* the hub's POST /v1/submissions */
	struct buf body;
	long retry_after_s; /* -1: the last answer had no (valid) Retry-After */
	char content_type[128];
};

/* Sets up a client for the hub at base_url ("https://hub:8443", with or without a final
 * slash). Release with http_client_release. -EINVAL (bad URL, err says why), -ENOMEM,
 * -EIO (libcurl refused an option). */
int http_client_init(struct http_client *ret, const char *base_url, const struct http_options *o,
                     char *err, size_t errlen) WUR;
void http_client_release(struct http_client *c);

/* POSTs len bytes of gzip-compressed JWS text. When an answer arrived, returns 0 with
 * its status in *ret_status, its body in c->body, its Retry-After in c->retry_after_s
 * and its Content-Type in c->content_type. Otherwise (no connection, a connection lost
 * mid-way, a timeout or stall, a TLS failure, an answer over HTTP_BODY_MAX) returns
 * -ETIMEDOUT, -ECONNREFUSED, -EPROTO, -EMSGSIZE or -EIO with libcurl's reason in err. */
int http_post_submission(struct http_client *c, const void *gz, size_t len, long *ret_status,
                         char *err, size_t errlen) WUR;

#endif
