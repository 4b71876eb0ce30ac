/* HTTP client for the county hub: see http.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "http.h"
#include "common/clock.h"
#include "common/peer_url.h"
#include "common/version.h"
#include "common/banned.h"

#define SUBMISSIONS_PATH "/v1/submissions"

static size_t on_body(char *data, size_t size, size_t n, void *userdata)
{
	struct http_client *c = userdata;

	/* past the cap, a short count makes libcurl fail the transfer */
	if (buf_append(&c->body, data, n) < 0)
		return 0;
	(void)size;
	return n;
}

static void parse_retry_after(struct http_client *c, const char *v, size_t len)
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
	c->retry_after_s = secs > HTTP_RETRY_AFTER_MAX ? HTTP_RETRY_AFTER_MAX : (long)secs;
}

static size_t on_header(char *data, size_t size, size_t n, void *userdata)
{
	static const char ra[] = "retry-after:", ct[] = "content-type:";
	struct http_client *c = userdata;

	(void)size;
	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		/* a new answer (after a 100 Continue, say): forget the previous one's */
		c->retry_after_s = -1;
		c->content_type[0] = '\0';
	} else if (n > sizeof(ra) - 1 && strncasecmp(data, ra, sizeof(ra) - 1) == 0) {
		parse_retry_after(c, data + sizeof(ra) - 1, n - (sizeof(ra) - 1));
	} else if (n > sizeof(ct) - 1 && strncasecmp(data, ct, sizeof(ct) - 1) == 0) {
		size_t i = sizeof(ct) - 1, len = n;

		while (i < len && data[i] == ' ')
			i++;
		while (len > i && (data[len - 1] == '\r' || data[len - 1] == '\n'))
			len--;
		if (len - i < sizeof(c->content_type)) {
			memcpy(c->content_type, data + i, len - i);
			c->content_type[len - i] = '\0';
		}
	}
	return n;
}

int http_client_init(struct http_client *ret, const char *base_url, const struct http_options *o,
                     char *err, size_t errlen)
{
	struct http_client c = {0};
	size_t n = strlen(base_url);
	CURL *curl;
	CURLcode cc = CURLE_OK;
	int r;

	r = peer_url_check(base_url, "hub", err, errlen);
	if (r < 0)
		return r;
	while (n > 0 && base_url[n - 1] == '/')
		n--;
	c.url = malloc(n + sizeof(SUBMISSIONS_PATH));
	if (!c.url)
		return -ENOMEM;
	memcpy(c.url, base_url, n);
	memcpy(c.url + n, SUBMISSIONS_PATH, sizeof(SUBMISSIONS_PATH));
	buf_init(&c.body, HTTP_BODY_MAX);
	c.retry_after_s = -1;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(c.url);
		snprintf(err, errlen, "libcurl cannot start");
		return -EIO;
	}
	curl = curl_easy_init();
	c.curl = curl;
	c.headers = curl_slist_append(NULL, "Content-Type: application/jose+json");
	if (c.headers)
		c.headers = curl_slist_append(c.headers, "Content-Encoding: gzip");
	if (c.headers)
		c.headers = curl_slist_append(c.headers, "Accept: application/jose+json, "
		                                         "application/json");
	if (c.headers) /* no "Expect: 100-continue" round trip */
		c.headers = curl_slist_append(c.headers, "Expect:");
	if (!curl || !c.headers) {
		r = -ENOMEM;
		goto fail;
	}
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_URL, c.url);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_HTTPHEADER, c.headers);
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
		cc = curl_easy_setopt(curl, CURLOPT_WRITEDATA, ret);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(curl, CURLOPT_HEADERDATA, ret);
	if (cc == CURLE_OK && o->cacert)
		cc = curl_easy_setopt(curl, CURLOPT_CAINFO, o->cacert);
	if (cc == CURLE_OK && o->client_cert)
		cc = curl_easy_setopt(curl, CURLOPT_SSLCERT, o->client_cert);
	if (cc == CURLE_OK && o->client_key)
		cc = curl_easy_setopt(curl, CURLOPT_SSLKEY, o->client_key);
	if (cc != CURLE_OK) {
		snprintf(err, errlen, "libcurl: %s", curl_easy_strerror(cc));
		r = -EIO;
		goto fail;
	}
	*ret = c;
	return 0;
fail:
	http_client_release(&c);
	return r;
}

void http_client_release(struct http_client *c)
{
	if (c->curl) {
		curl_easy_cleanup(c->curl);
		curl_global_cleanup();
	}
	curl_slist_free_all(c->headers);
	free(c->url);
	buf_release(&c->body);
	c->curl = NULL;
	c->headers = NULL;
	c->url = NULL;
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

int http_post_submission(struct http_client *c, const void *gz, size_t len, long *ret_status,
                         char *err, size_t errlen)
{
	char why[CURL_ERROR_SIZE] = "";
	long status = 0;
	CURLcode cc;

	buf_reset(&c->body);
	c->retry_after_s = -1;
	c->content_type[0] = '\0';
	cc = curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, why);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, gz);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	if (cc == CURLE_OK)
		cc = curl_easy_perform(c->curl);
	/* the error buffer lives on this stack frame only */
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, NULL);
	if (cc != CURLE_OK) {
		snprintf(err, errlen, "%s", why[0] ? why : curl_easy_strerror(cc));
		if (cc == CURLE_WRITE_ERROR)
			snprintf(err, errlen, "the hub's answer is larger than %u bytes",
			         HTTP_BODY_MAX);
		return errno_of(cc);
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	*ret_status = status;
	return 0;
}
