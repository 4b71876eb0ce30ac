/* HTTP client for the county hub: see http.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "http.h"
#include "common/clock.h"
#include "common/peer_url.h"
#include "common/version.h"
#include "common/banned.h"

#define SUBMISSIONS_PATH "/v1/submissions"

static size_t on_body(char *data, size_t size, size_t n, void *userdata)
{
	struct http_transfer *t = userdata;

	/* past the cap, a short count makes libcurl fail the transfer */
	if (buf_append(&t->body, data, n) < 0)
		return 0;
	(void)size;
	return n;
}

static void parse_retry_after(struct http_transfer *t, const char *v, size_t len)
{
	char text[128];
	struct clock real;
	long long secs = 0;
	size_t i = 0;

	while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
		len--;
	while (i < len && v[i] == ' ')
		i++;
	if (i == len || len - i >= sizeof(text))
		return;
	memcpy(text, v + i, len - i);
	text[len - i] = '\0';
	if (text[0] >= '0' && text[0] <= '9') {
		for (const char *p = text; *p; p++) {
			if (*p < '0' || *p > '9')
				return;
			if (secs < HTTP_RETRY_AFTER_MAX)
				secs = secs * 10 + (*p - '0');
		}
	} else {
		/* an HTTP-date is a wall-clock instant: compare it with the real clock */
		time_t when = curl_getdate(text, NULL);

		if (when == -1 || clock_init(&real, NULL, NULL, 0) < 0)
			return;
		secs = (long long)when - clock_now_ms(&real) / 1000;
		if (secs < 0)
			secs = 0;
	}
	t->retry_after_s = secs > HTTP_RETRY_AFTER_MAX ? HTTP_RETRY_AFTER_MAX : (long)secs;
}

static size_t on_header(char *data, size_t size, size_t n, void *userdata)
{
	static const char ra[] = "retry-after:", ct[] = "content-type:";
	struct http_transfer *t = userdata;

	(void)size;
	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		/* a new answer (after a 100 Continue, say): forget the previous one's */
		t->retry_after_s = -1;
		t->content_type[0] = '\0';
	} else if (n > sizeof(ra) - 1 && strncasecmp(data, ra, sizeof(ra) - 1) == 0) {
		parse_retry_after(t, data + sizeof(ra) - 1, n - (sizeof(ra) - 1));
	} else if (n > sizeof(ct) - 1 && strncasecmp(data, ct, sizeof(ct) - 1) == 0) {
		size_t i = sizeof(ct) - 1, len = n;

		while (i < len && data[i] == ' ')
			i++;
		while (len > i && (data[len - 1] == '\r' || data[len - 1] == '\n'))
			len--;
		if (len - i < sizeof(t->content_type)) {
			memcpy(t->content_type, data + i, len - i);
			t->content_type[len - i] = '\0';
		}
	}
	return n;
}

/* One easy handle with every option but the body, answering into t. */
static CURLcode transfer_setup(struct http_transfer *t, const struct http_client *c,
                               const struct http_options *o)
{
	CURL *curl = t->curl;
	CURLcode cc = CURLE_OK;

	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_URL, c->url);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_HTTPHEADER, c->headers);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_USERAGENT, "school-agent/" RETURNS_VERSION);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT,
		                      o->timeout_s < 10 ? o->timeout_s : 10L);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_TIMEOUT, o->timeout_s);
	/* a stalled hub: less than one byte a second for the timeout (at most 30 s) */
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME,
		                      o->timeout_s < 30 ? o->timeout_s : 30L);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_WRITEDATA, t);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_HEADERDATA, t);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, t->error);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_PRIVATE, t);
	if (cc == CURLE_OK && o->cacert)
		cc = curl_easy_setopt(curl, CURLOPT_CAINFO, o->cacert);
	if (cc == CURLE_OK && o->client_cert)
		cc = curl_easy_setopt(curl, CURLOPT_SSLCERT, o->client_cert);
	if (cc == CURLE_OK && o->client_key)
		cc = curl_easy_setopt(curl, CURLOPT_SSLKEY, o->client_key);
	return cc;
}

/* Frees what c holds but libcurl's global state. */
static void release_parts(struct http_client *c)
{
	for (size_t i = 0; i < c->count; i++) {
		struct http_transfer *t = &c->transfers[i];

		if (t->running)
			curl_multi_remove_handle(c->multi, t->curl);
		curl_easy_cleanup(t->curl);
		buf_release(&t->body);
	}
	if (c->multi)
		curl_multi_cleanup(c->multi);
	curl_slist_free_all(c->headers);
	free(c->transfers);
	free(c->url);
	memset(c, 0, sizeof(*c));
}

int http_client_init(struct http_client *ret, const char *base_url, const struct http_options *o,
                     char *err, size_t errlen)
{
	struct http_client c = {.parallel = o->parallel};
	size_t transfers = o->transfers ? o->transfers : o->parallel;
	size_t n = strlen(base_url);
	CURLcode cc = CURLE_OK;
	CURLMcode mc = CURLM_OK;
	int r;

	if (o->parallel < 1 || o->parallel > HTTP_PARALLEL_MAX) {
		snprintf(err, errlen, "uploads in flight must be 1 to %d, not %zu",
		         HTTP_PARALLEL_MAX, o->parallel);
		return -EINVAL;
	}
	if (transfers < o->parallel || transfers > 2 * o->parallel) {
		snprintf(err, errlen, "transfers must be %zu to %zu, not %zu", o->parallel,
		         2 * o->parallel, transfers);
		return -EINVAL;
	}
	r = peer_url_check(base_url, "hub", err, errlen);
	if (r < 0)
		return r;
	while (n > 0 && base_url[n - 1] == '/')
		n--;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "libcurl cannot start");
		return -EIO;
	}
	r = -ENOMEM;
	c.url = malloc(n + sizeof(SUBMISSIONS_PATH));
	c.transfers = calloc(transfers, sizeof(*c.transfers));
	c.multi = curl_multi_init();
	if (!c.url || !c.transfers || !c.multi)
		goto fail;
	memcpy(c.url, base_url, n);
	memcpy(c.url + n, SUBMISSIONS_PATH, sizeof(SUBMISSIONS_PATH));
	c.headers = curl_slist_append(NULL, "Content-Type: application/jose+json");
	if (c.headers)
		c.headers = curl_slist_append(c.headers, "Content-Encoding: gzip");
	if (c.headers)
		c.headers = curl_slist_append(c.headers, "Accept: application/jose+json, "
		                                         "application/json");
	if (c.headers) /* no "Expect: 100-continue" round trip */
		c.headers = curl_slist_append(c.headers, "Expect:");
	if (!c.headers)
		goto fail;
	/* one connection per upload in flight, kept alive between uploads */
	mc = curl_multi_setopt(c.multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o->parallel);
	if (mc == CURLM_OK)
		mc = curl_multi_setopt(c.multi, CURLMOPT_MAXCONNECTS, (long)o->parallel);
	if (mc != CURLM_OK) {
		snprintf(err, errlen, "libcurl: %s", curl_multi_strerror(mc));
		r = -EIO;
		goto fail;
	}
	/* the transfers live on the heap: what libcurl points to never moves */
	for (c.count = 0; c.count < transfers; c.count++) {
		struct http_transfer *t = &c.transfers[c.count];

		buf_init(&t->body, HTTP_BODY_MAX);
		t->retry_after_s = -1;
		t->curl = curl_easy_init();
		if (!t->curl)
			goto fail;
		cc = transfer_setup(t, &c, o);
		if (cc != CURLE_OK) {
			c.count++;
			snprintf(err, errlen, "libcurl: %s", curl_easy_strerror(cc));
			r = -EIO;
			goto fail;
		}
	}
	*ret = c;
	return 0;
fail:
	release_parts(&c);
	curl_global_cleanup();
	return r;
}

void http_client_release(struct http_client *c)
{
	if (!c->multi)
		return;
	release_parts(c);
	curl_global_cleanup();
}

static int errno_of(CURLcode cc)
{
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -ECONNREFUSED;
	case CURLE_WRITE_ERROR:
		return -EMSGSIZE;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
		return -EPROTO;
	default:
		return -EIO;
	}
}

int http_post_start(struct http_client *c, size_t i, const void *gz, size_t len)
{
	struct http_transfer *t;
	CURLcode cc;

	if (i >= c->count)
		return -EINVAL;
	t = &c->transfers[i];
	if (t->running)
		return -EBUSY;
	if (c->running >= c->parallel)
		return -EAGAIN;
	buf_reset(&t->body);
	t->result = 0;
	t->status = 0;
	t->retry_after_s = -1;
	t->content_type[0] = '\0';
	t->error[0] = '\0';
	cc = curl_easy_setopt(t->curl, CURLOPT_POSTFIELDS, gz);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(t->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	if (cc != CURLE_OK || curl_multi_add_handle(c->multi, t->curl) != CURLM_OK)
		return -EIO;
	t->running = 1;
	c->running++;
	return 0;
}

void http_post_send(struct http_client *c)
{
	int running;

	/* a failure here shows again, and is handled, in http_post_wait */
	if (c->running > 0 && !c->failed)
		(void)curl_multi_perform(c->multi, &running);
}

void http_wake(struct http_client *c)
{
	atomic_store(&c->woken, 1);
	(void)curl_multi_wakeup(c->multi);
}

/* Records how t ended and takes it out of the multi handle. */
static void finish(struct http_client *c, struct http_transfer *t, CURLcode cc)
{
	curl_multi_remove_handle(c->multi, t->curl);
	t->running = 0;
	c->running--;
	if (cc == CURLE_OK) {
		curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &t->status);
		t->result = 0;
		return;
	}
	if (cc == CURLE_WRITE_ERROR)
		snprintf(t->error, sizeof(t->error), "the hub's answer is larger than %u bytes",
		         HTTP_BODY_MAX);
	else if (!t->error[0])
		snprintf(t->error, sizeof(t->error), "%s", curl_easy_strerror(cc));
	t->result = errno_of(cc);
}

int http_post_wait(struct http_client *c, int timeout_ms, size_t *ret_index)
{
	int64_t deadline = timeout_ms > 0 ? clock_monotonic_ms() + timeout_ms : 0;

	for (;;) {
		struct http_transfer *t = NULL;
		CURLMcode mc = CURLM_OK;
		CURLMsg *msg;
		int running, queued, poll_ms = 1000;

		if (c->running == 0)
			return 0;
		if (!c->failed)
			mc = curl_multi_perform(c->multi, &running);
		while (mc == CURLM_OK && !c->failed &&
		       (msg = curl_multi_info_read(c->multi, &queued))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
			finish(c, t, msg->data.result);
			*ret_index = (size_t)(t - c->transfers);
			return 1;
		}
		if (timeout_ms > 0) {
			int64_t left = deadline - clock_monotonic_ms();

			if (left <= 0)
				timeout_ms = 0;
			else if (left < poll_ms)
				poll_ms = (int)left;
		}
		if (mc == CURLM_OK && !c->failed && timeout_ms != 0) {
			mc = curl_multi_poll(c->multi, NULL, 0, poll_ms, NULL);
			if (mc == CURLM_OK && atomic_exchange(&c->woken, 0))
				return 0;
		}
		if (mc != CURLM_OK && !c->failed) {
			/* cannot happen short of running out of memory: end every transfer */
			c->failed = 1;
			for (size_t i = 0; i < c->count; i++)
				if (c->transfers[i].running)
					snprintf(c->transfers[i].error,
					         sizeof(c->transfers[i].error), "libcurl: %s",
					         curl_multi_strerror(mc));
		}
		if (c->failed) {
			for (size_t i = 0; i < c->count; i++) {
				if (!c->transfers[i].running)
					continue;
				finish(c, &c->transfers[i], CURLE_OUT_OF_MEMORY);
				*ret_index = i;
				return 1;
			}
		}
		if (timeout_ms == 0)
			return 0;
	}
}
