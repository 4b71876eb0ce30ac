/* `county-hub serve`: the HTTP server (libmicrohttpd) and its routes.
 *
 * Routes: POST /v1/submissions (upload.h), GET /v1/submissions/{id}/receipt,
 * GET /v1/status and GET /v1/rollups (?form=F&period=P, report.h), GET /healthz,
 * GET /metrics.
 *
 * HTTPS with --tls-cert and --tls-key; plain HTTP only on a loopback address unless
 * --insecure-plain-http (common/http_server.h).
 *
 * Threads: one libmicrohttpd thread (epoll) moves the bytes of every connection (and does
 * TLS); the work pool (workpool.h, one thread per CPU unless `threads` says otherwise)
 * does the CPU work of an upload (inflate, verify, validate, sign the receipt) and of a
 * report, with a worker (store reader, inflater) borrowed from a pool: one queue for all
 * connections, so the cores share the work evenly; the writer thread (writer.h) stores
 * the uploads in group commits and a checkpointer copies the store's log beside it; the
 * forwarder (forward.h, only with a region URL) sends the outbox to the region; the
 * watchdog (common/http_server.h) cuts off requests that take too long to arrive; the
 * main thread waits for SIGTERM or SIGINT.
 *
 * An upload or a report waits for its work, and an upload then for its commit, with its
 * connection suspended (MHD_suspend_connection), so waiting costs no thread: the pool, or
 * the writer after the commit, resumes it and the handler, called again, answers. The
 * answer is queued only on the handler's final call (upload_data_size 0), or on the first
 * call for an upload refused before its body is read (MHD then closes the connection
 * instead of reading the body).
 *
 * Shutdown on SIGTERM/SIGINT: stop accepting connections, let the pool finish the work
 * queued and the writer store everything queued and answer it, wait for requests in
 * progress, stop MHD, stop the forwarder (a batch in flight stays pending and is sent
 * again next time), close the store, exit 0. */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <microhttpd.h>

#include "common/calendar.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/form.h"
#include "common/http_server.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/peer_url.h"
#include "common/schema.h"
#include "forward.h"
#include "hub.h"
#include "metrics.h"
#include "outbox.h"
#include "report.h"
#include "server.h"
#include "store.h"
#include "upload.h"
#include "workpool.h"
#include "writer.h"
#include "common/banned.h"

#define ERR_MAX 1024
#define OTHER_BODY_MAX (64 * 1024) /* bytes of body we discard on a route that takes none */
#define DISCARD_FACTOR 4 /* an upload over the cap is read (and dropped) up to this many caps */
#define SHUTDOWN_WAIT_MS 10000

enum route {
	ROUTE_SUBMIT,
	ROUTE_RECEIPT,
	ROUTE_STATUS,
	ROUTE_ROLLUPS,
	ROUTE_HEALTH,
	ROUTE_METRICS,
	ROUTE_NOT_FOUND,
	ROUTE_METHOD, /* known path, wrong method */
};

enum request_state {
	REQ_RECEIVING, /* headers in, body arriving */
	REQ_WORKING,   /* suspended: the work pool, then for an upload the writer, holds it */
	REQ_ANSWERED,  /* the answer is queued */
};

#define ARG_MAX 128 /* bytes of a query argument (form, period) */

/* One HTTP request, from the first call of the access handler to MHD's completion
 * callback, which frees it. */
struct request {
	struct server *srv;
	struct MHD_Connection *conn;
	struct http_watch *watch;
	enum route route;
	enum request_state state;
	const char *allow; /* ROUTE_METHOD */
	char submission_id[IDS_UUID_LEN + 1];
	char peer[64];
	struct buf body;
	size_t discarded;
	int too_large;
	char form[ARG_MAX], period[ARG_MAX]; /* ROUTE_STATUS, ROUTE_ROLLUPS */
	struct workpool_job work;
	int to_writer;       /* set by the work pool before the writer holds the upload */
	atomic_int job_done; /* the answer can be made: the work (and the commit) is over */
	struct upload upload;
	struct http_reply reply;
};

struct worker *server_worker_get(struct server *srv)
{
	const struct hub_config *cfg = srv->cfg;
	struct worker *w;
	char err[ERR_MAX] = "";
	int r;

	pthread_mutex_lock(&srv->pool_lock);
	w = srv->pool;
	if (w)
		srv->pool = w->next;
	pthread_mutex_unlock(&srv->pool_lock);
	if (w)
		return w;
	w = calloc(1, sizeof(*w));
	if (!w) {
		log_errno(-ENOMEM, "cannot make a worker");
		return NULL;
	}
	r = store_open(srv->store_path, STORE_READ_ONLY, (int)cfg->busy_timeout_ms, &w->reader, err,
	               sizeof(err));
	if (r < 0) {
		log_error("cannot open a reader: %s", err);
		free(w);
		return NULL;
	}
	r = gzip_inflater_init(&w->inflater, (size_t)cfg->inflate_max,
	                       (unsigned)cfg->inflate_ratio);
	if (r < 0) {
		log_errno(r, "cannot make an inflater");
		store_close(w->reader);
		free(w);
		return NULL;
	}
	buf_init(&w->plain, (size_t)cfg->inflate_max);
	return w;
}

void server_worker_put(struct server *srv, struct worker *w)
{
	if (!w)
		return;
	buf_reset(&w->plain);
	pthread_mutex_lock(&srv->pool_lock);
	w->next = srv->pool;
	srv->pool = w;
	pthread_mutex_unlock(&srv->pool_lock);
}

static void worker_free(struct worker *w)
{
	store_close(w->reader);
	gzip_inflater_release(&w->inflater);
	buf_release(&w->plain);
	free(w);
}

static int is_get(const char *method)
{
	return strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
	       strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

static void route(struct request *req, const char *url, const char *method)
{
	static const char receipt_prefix[] = "/v1/submissions/";
	static const char receipt_suffix[] = "/receipt";
	size_t len = strlen(url), pre = sizeof(receipt_prefix) - 1,
	       suf = sizeof(receipt_suffix) - 1;

	if (strcmp(url, "/v1/submissions") == 0) {
		req->route =
		        strcmp(method, MHD_HTTP_METHOD_POST) == 0 ? ROUTE_SUBMIT : ROUTE_METHOD;
		req->allow = "POST";
	} else if (strcmp(url, "/v1/status") == 0 || strcmp(url, "/v1/rollups") == 0) {
		req->route = !is_get(method) ? ROUTE_METHOD
		             : url[4] == 's' ? ROUTE_STATUS
		                             : ROUTE_ROLLUPS;
		req->allow = "GET, HEAD";
	} else if (strcmp(url, "/healthz") == 0 || strcmp(url, "/metrics") == 0) {
		req->route = !is_get(method) ? ROUTE_METHOD
		             : url[1] == 'h' ? ROUTE_HEALTH
		                             : ROUTE_METRICS;
		req->allow = "GET, HEAD";
	} else if (len == pre + IDS_UUID_LEN + suf && strncmp(url, receipt_prefix, pre) == 0 &&
	           strcmp(url + pre + IDS_UUID_LEN, receipt_suffix) == 0 &&
	           ids_uuid_check(url + pre, IDS_UUID_LEN) == 0) {
		req->route = is_get(method) ? ROUTE_RECEIPT : ROUTE_METHOD;
		req->allow = "GET, HEAD";
		memcpy(req->submission_id, url + pre, IDS_UUID_LEN);
		req->submission_id[IDS_UUID_LEN] = '\0';
	} else {
		req->route = ROUTE_NOT_FOUND;
	}
}

static struct request *request_new(struct server *srv, struct MHD_Connection *conn, const char *url,
                                   const char *method)
{
	const union MHD_ConnectionInfo *info;
	struct request *req = calloc(1, sizeof(*req));

	if (!req)
		return NULL;
	req->srv = srv;
	req->conn = conn;
	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	req->watch = info ? info->socket_context : NULL;
	atomic_init(&req->job_done, 0);
	buf_init(&req->body, (size_t)srv->cfg->body_max);
	http_peer_address(conn, req->peer, sizeof(req->peer));
	upload_init(&req->upload, req->peer);
	route(req, url, method);
	return req;
}

static void request_free(struct request *req)
{
	buf_release(&req->body);
	upload_release(&req->upload);
	http_reply_release(&req->reply);
	free(req);
}

/* Writer thread: the job's commit is over; wake the connection. */
static void job_done(struct writer_job *job)
{
	struct request *req = job->data;

	atomic_store(&req->job_done, 1);
	MHD_resume_connection(req->conn);
}

static void answer_receipt_get(struct request *req)
{
	struct worker *w = server_worker_get(req->srv);
	char *receipt = NULL;
	size_t len = 0;
	int r = -EIO;

	if (w)
		r = store_receipt_get(w->reader, req->submission_id, &receipt, &len);
	server_worker_put(req->srv, w);
	if (r == 0) {
		req->reply.status = 200;
		req->reply.body = receipt;
		req->reply.len = len;
		req->reply.content_type = "application/jose+json";
	} else if (r == -ENOENT) {
		if (http_reply_error(&req->reply, 404, "not_found", "no such submission", NULL,
		                     NULL) < 0)
			http_reply_text(&req->reply, 404, "no such submission\n");
	} else {
		log_errno(r, "cannot read a receipt");
		http_reply_text(&req->reply, r == -EBUSY ? 503 : 500, "the store failed\n");
	}
}

static void answer_bad_request(struct request *req, const char *message)
{
	if (http_reply_error(&req->reply, 400, "bad_request", message, NULL, NULL) < 0)
		http_reply_text(&req->reply, 400, "bad request\n");
}

/* GET /v1/status or /v1/rollups?form=F&period=P: computed now, from one snapshot. On a
 * pool thread: the arguments were copied into req beforehand. */
static void answer_report(struct request *req, int rollup)
{
	struct server *srv = req->srv;
	const char *form = req->form, *period = req->period;
	int offset = calendar_utc_offset_min(srv->calendar);
	int64_t now_ms = clock_now_ms(&srv->clock);
	struct report report;
	struct worker *w;
	cJSON *doc = NULL;
	char err[ERR_MAX] = "", *text;
	int r;

	w = server_worker_get(srv);
	if (!w) {
		http_reply_text(&req->reply, 500, "internal error\n");
		return;
	}
	r = store_begin_read(w->reader);
	if (r == 0)
		r = report_compute(&srv->src, w->reader, form, period, &report, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "%s", store_errmsg(w->reader));
	store_rollback(w->reader);
	server_worker_put(srv, w);
	if (r == -ENOENT || r == -EINVAL) {
		answer_bad_request(req, err);
		return;
	}
	if (r < 0) {
		log_errno(r, "cannot compute the figures of \"%s\" \"%s\": %s", form, period, err);
		http_reply_text(&req->reply, r == -EBUSY ? 503 : 500, "the store failed\n");
		if (r == -EBUSY)
			req->reply.retry_after = 1;
		return;
	}
	r = rollup ? report_rollup_json(&report, srv->cfg->county_id, now_ms, offset, &doc)
	           : report_status_json(&report, srv->cfg->county_id, now_ms, offset, &doc);
	report_release(&report);
	text = r == 0 ? cJSON_PrintUnformatted(doc) : NULL;
	cJSON_Delete(doc);
	if (!text) {
		http_reply_text(&req->reply, 500, "out of memory\n");
		return;
	}
	req->reply.status = 200;
	req->reply.body = text;
	req->reply.len = strlen(text);
	req->reply.content_type = "application/json";
}

static void answer_metrics(struct request *req)
{
	struct worker *w = server_worker_get(req->srv);
	struct buf out;
	long long depth = -1;

	if (w && store_outbox_depth(w->reader, &depth) < 0)
		depth = -1;
	server_worker_put(req->srv, w);
	buf_init(&out, 1024 * 1024);
	if (metrics_format(&req->srv->metrics, depth, &out) < 0) {
		buf_release(&out);
		http_reply_text(&req->reply, 500, "cannot format the metrics\n");
		return;
	}
	req->reply.status = 200;
	req->reply.body = buf_detach(&out, &req->reply.len);
	req->reply.content_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* The checks of an upload, on a pool thread: then it is answered, or handed to the writer.
 * Returns 1 when the writer holds it (and will resume the connection). */
static int check_upload(struct request *req)
{
	struct server *srv = req->srv;
	struct worker *w;
	int r;

	w = server_worker_get(srv);
	if (!w) {
		http_reply_text(&req->reply, 500, "internal error\n");
		return 0;
	}
	r = upload_check(srv, w, req->body.data ? req->body.data : "", req->body.len,
	                 req->too_large, &req->upload, &req->reply);
	server_worker_put(srv, w);
	buf_release(&req->body);
	if (r != 0)
		return 0;
	r = writer_reserve(srv->writer);
	if (r < 0) {
		upload_finish(srv, &req->upload, r, &req->reply);
		return 0;
	}
	req->upload.job.done = job_done;
	req->upload.job.data = req;
	req->to_writer = 1;
	writer_submit(srv->writer, &req->upload.job);
	return 1;
}

/* Pool thread: the CPU work of a request, then its connection is woken to answer. */
static void run_request(struct workpool_job *job)
{
	struct request *req =
	        (struct request *)(void *)((char *)job - offsetof(struct request, work));

	if (req->route == ROUTE_SUBMIT) {
		if (check_upload(req))
			return;
	} else {
		answer_report(req, req->route == ROUTE_ROLLUPS);
	}
	atomic_store(&req->job_done, 1);
	MHD_resume_connection(req->conn);
}

/* Copies a query argument of a report into out; 0, or -EINVAL when absent or too long. */
static int copy_arg(struct request *req, const char *name, char *out, size_t outlen)
{
	const char *v = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);

	if (!v || !v[0] || strlen(v) >= outlen)
		return -EINVAL;
	memcpy(out, v, strlen(v) + 1);
	return 0;
}

/* The final call of a request whose work is CPU-heavy (an upload, a report): suspends the
 * connection and hands the request to the work pool. Returns 1 when it did; 0 with the
 * answer in req->reply. */
static int start_work(struct request *req)
{
	struct server *srv = req->srv;
	int r;

	if (req->route != ROUTE_SUBMIT &&
	    (copy_arg(req, "form", req->form, sizeof(req->form)) < 0 ||
	     copy_arg(req, "period", req->period, sizeof(req->period)) < 0)) {
		answer_bad_request(req, "give the form and the period: ?form=F&period=P");
		return 0;
	}
	req->work.run = run_request;
	req->state = REQ_WORKING;
	/* suspend before the pool can resume */
	MHD_suspend_connection(req->conn);
	r = workpool_submit(srv->pool_work, &req->work);
	if (r < 0) {
		/* the hub is stopping */
		if (req->route == ROUTE_SUBMIT)
			upload_finish(srv, &req->upload, r, &req->reply);
		else
			http_reply_text(&req->reply, 503, "the hub is shutting down\n");
		atomic_store(&req->job_done, 1);
		MHD_resume_connection(req->conn);
	}
	return 1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	struct server *srv = cls;
	struct request *req = *con_cls;
	size_t n = *upload_data_size;

	(void)version;
	if (!req) {
		req = request_new(srv, conn, url, method);
		if (!req)
			return MHD_NO;
		*con_cls = req;
		atomic_fetch_add(&srv->active, 1);
		if (req->route == ROUTE_SUBMIT &&
		    upload_precheck(srv,
		                    MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                                MHD_HTTP_HEADER_CONTENT_TYPE),
		                    MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                                MHD_HTTP_HEADER_CONTENT_ENCODING),
		                    MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                                MHD_HTTP_HEADER_CONTENT_LENGTH),
		                    req->peer, &req->reply) == 1) {
			/* refused before reading the body: MHD closes the connection after */
			req->state = REQ_ANSWERED;
			req->reply.close = 1;
			http_watch_busy(&srv->watchdog, req->watch);
			return (enum MHD_Result)http_reply_queue(conn, &req->reply);
		}
		return MHD_YES;
	}
	if (n > 0) {
		*upload_data_size = 0;
		if (req->route == ROUTE_SUBMIT && !req->too_large) {
			int r = buf_append(&req->body, upload_data, n);

			if (r == -EMSGSIZE) {
				req->too_large = 1;
				req->discarded = req->body.len;
				buf_release(&req->body);
			} else if (r < 0) {
				return MHD_NO;
			}
		}
		if (req->route != ROUTE_SUBMIT || req->too_large) {
			req->discarded += n;
			if (req->discarded > (req->route == ROUTE_SUBMIT
			                              ? (size_t)srv->cfg->body_max * DISCARD_FACTOR
			                              : (size_t)OTHER_BODY_MAX))
				return MHD_NO; /* no answer is worth reading this much for */
		}
		return MHD_YES;
	}

	/* the final call: the whole request is in, or the writer resumed us */
	switch (req->state) {
	case REQ_RECEIVING:
		http_watch_busy(&srv->watchdog, req->watch);
		switch (req->route) {
		case ROUTE_SUBMIT:
		case ROUTE_STATUS:
		case ROUTE_ROLLUPS:
			if (start_work(req))
				return MHD_YES;
			break;
		case ROUTE_RECEIPT:
			answer_receipt_get(req);
			break;
		case ROUTE_HEALTH:
			http_reply_text(&req->reply, 200, "ok\n");
			break;
		case ROUTE_METRICS:
			answer_metrics(req);
			break;
		case ROUTE_METHOD:
			if (http_reply_error(&req->reply, 405, "method_not_allowed",
			                     "method not allowed here", NULL, NULL) < 0)
				http_reply_text(&req->reply, 405, "method not allowed\n");
			req->reply.allow = req->allow;
			break;
		case ROUTE_NOT_FOUND:
			if (http_reply_error(&req->reply, 404, "not_found", "no such resource",
			                     NULL, NULL) < 0)
				http_reply_text(&req->reply, 404, "not found\n");
			break;
		}
		break;
	case REQ_WORKING:
		if (!atomic_load(&req->job_done))
			return MHD_YES;
		if (req->to_writer)
			upload_finish(srv, &req->upload, 0, &req->reply);
		break;
	case REQ_ANSWERED:
		return MHD_YES;
	}
	req->state = REQ_ANSWERED;
	return (enum MHD_Result)http_reply_queue(conn, &req->reply);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct server *srv = cls;
	struct request *req = *con_cls;

	(void)conn;
	(void)toe;
	if (!req)
		return;
	*con_cls = NULL;
	http_watch_idle(&srv->watchdog, req->watch);
	if (req->state == REQ_WORKING && !atomic_load(&req->job_done)) {
		/* cannot happen: the pool and the writer are drained before MHD stops. One of
		 * them still holds the request, so it must outlive this callback. */
		log_error("a request ended while it was being worked on; leaking it");
	} else {
		request_free(req);
	}
	atomic_fetch_sub(&srv->active, 1);
}

/* libmicrohttpd's error messages (common/http_server.h). */
static void on_mhd_error(void *data, const char *line)
{
	(void)data;
	log_warning("libmicrohttpd: %s", line);
}

static int load_data(struct server *srv)
{
	const struct hub_config *cfg = srv->cfg;
	char path[4096 + 64], err[ERR_MAX] = "";
	int r;

	if (!hub_schemas_dir(cfg))
		return -ENOENT;
	r = report_source_load(cfg->schemas_dir, &srv->src, err, sizeof(err));
	if (r < 0) {
		log_error("cannot load the forms and the calendar: %s", err);
		return r;
	}
	srv->forms = srv->src.forms;
	srv->calendar = srv->src.calendar;
	snprintf(path, sizeof(path), "%s/submission.schema.json", cfg->schemas_dir);
	r = schema_load_file(path, &srv->envelope, err, sizeof(err));
	if (r < 0) {
		log_error("cannot load the submission schema: %s", err);
		return r;
	}
	r = hub_path(cfg, HUB_KEY_FILE, path, sizeof(path));
	if (r == 0)
		r = jwk_load(&srv->county_key, path, err, sizeof(err));
	if (r < 0) {
		log_error("cannot load the county key: %s", err[0] ? err : strerror(-r));
		return r;
	}
	if (strcmp(srv->county_key.kid, cfg->county_id) != 0) {
		log_error("the county key is named \"%s\", not the county id \"%s\"",
		          srv->county_key.kid, cfg->county_id);
		return -EINVAL;
	}
	log_info("loaded %zu forms from '%s'", srv->forms->count, cfg->schemas_dir);
	return 0;
}

/* The HTTP server's settings (common/http_server.h). */
static void http_options(struct server *srv, struct http_server_options *ret)
{
	const struct hub_config *cfg = srv->cfg;

	memset(ret, 0, sizeof(*ret));
	ret->listen = cfg->listen;
	/* one thread moves the bytes (and does TLS); the work pool does the rest */
	ret->flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC;
	ret->max_connections = (unsigned)cfg->max_connections;
	ret->connection_memory = (size_t)cfg->connection_memory;
	ret->idle_timeout = (unsigned)cfg->idle_timeout;
	ret->on_request = on_request;
	ret->request_data = srv;
	ret->on_completed = on_completed;
	ret->completed_data = srv;
	ret->watchdog = &srv->watchdog;
	ret->tls_cert = cfg->tls_cert;
	ret->tls_key = cfg->tls_key;
	ret->insecure_plain_http = cfg->insecure_plain_http;
	ret->on_error = on_mhd_error;
}

/* A store written before rosters went out whole (migration 2) has a placeholder where its
 * first per-school entry was, or, with schools but no roster queued at all, needs one at
 * the end: queue the roster as it is, so the region can verify the schools' returns. */
static int ensure_roster(struct server *srv, struct store *store)
{
	char err[ERR_MAX] = "";
	long long schools = 0, version = 0, placeholder = 0;
	int r;

	r = store_school_count(store, &schools);
	if (r < 0 || schools == 0)
		return r;
	r = store_outbox_placeholder(store, "roster", &placeholder);
	if (r == 0)
		r = store_outbox_has_kind(store, "roster");
	if (r < 0)
		return r;
	if (placeholder == 0 && r == 1)
		return 0;
	r = store_begin(store);
	if (r == 0)
		r = outbox_add_roster(store, &srv->county_key, srv->cfg->county_id,
		                      clock_now_ms(&srv->clock),
		                      calendar_utc_offset_min(srv->calendar), placeholder, &version,
		                      err, sizeof(err));
	if (r == 0)
		r = store_commit(store);
	if (r < 0) {
		store_rollback(store);
		return log_errno(r, "cannot queue the roster for the region: %s",
		                 err[0] ? err : store_errmsg(store));
	}
	log_info("queued roster version %lld (%lld schools) for the region", version, schools);
	return 0;
}

static int start_forwarder(struct server *srv)
{
	const struct hub_config *cfg = srv->cfg;
	struct forward_options fo;
	char err[ERR_MAX] = "";
	int r;

	if (!cfg->region_url || !cfg->region_url[0]) {
		log_info("no region URL configured: the outbox is kept, not forwarded");
		return 0;
	}
	r = peer_url_check(cfg->region_url, "region", err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		return r;
	}
	fo = (struct forward_options){
	        .store_path = srv->store_path,
	        .busy_timeout_ms = (int)cfg->busy_timeout_ms,
	        .region_url = cfg->region_url,
	        .cacert = cfg->region_cacert,
	        .county_id = cfg->county_id,
	        .county_key = &srv->county_key,
	        .clock = &srv->clock,
	        .src = &srv->src,
	        .offset_min = calendar_utc_offset_min(srv->calendar),
	        .batch_max = (size_t)cfg->forward_batch_max,
	        .backoff_base_ms = cfg->forward_backoff_base_ms,
	        .backoff_max_ms = cfg->forward_backoff_max_ms,
	        .poll_ms = cfg->forward_poll_ms,
	        .rollup_interval_ms = cfg->rollup_interval_ms,
	        .linger_ms = cfg->forward_linger_ms,
	        .timeout_s = (long)cfg->forward_timeout,
	};
	r = forward_start(&fo, &srv->metrics, &srv->forwarder, err, sizeof(err));
	if (r < 0)
		return log_errno(r, "cannot start the forwarder: %s", err);
	log_info("forwarding the outbox to '%s'", cfg->region_url);
	return 0;
}

/* Watchdog thread: it cut a connection off. */
static void on_cut(void *data, int64_t deadline_ms)
{
	(void)data;
	log_info("cut off a connection whose request took over %lld ms to arrive",
	         (long long)deadline_ms);
}

static int serve(struct server *srv)
{
	const struct hub_config *cfg = srv->cfg;
	struct writer_options wo;
	struct sockaddr_storage addr;
	struct http_server_options ho;
	struct http_server http = {0};
	struct store *store = NULL;
	sigset_t signals;
	char err[ERR_MAX] = "";
	unsigned addr_len;
	size_t threads;
	int64_t until;
	int sig = 0, r;

	if (hub_parse_listen(cfg->listen, &addr, &addr_len) < 0) {
		log_error("listen address '%s' is not ADDR:PORT", cfg->listen);
		return -EINVAL;
	}
	http_options(srv, &ho);
	r = http_server_check(&ho, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		return r;
	}
	r = load_data(srv);
	if (r < 0)
		return r;
	/* bring the schema up to date before the readers open */
	r = hub_open_store(cfg, 0, &store);
	if (r < 0)
		return r;
	r = ensure_roster(srv, store);
	store_close(store);
	if (r < 0)
		return r;

	/* every thread started from here on inherits the blocked signals */
	sigemptyset(&signals);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);
	signal(SIGPIPE, SIG_IGN);

	r = start_forwarder(srv);
	if (r < 0)
		return r;
	wo = (struct writer_options){
	        .store_path = srv->store_path,
	        .busy_timeout_ms = (int)cfg->busy_timeout_ms,
	        .store_max_bytes = cfg->store_max_bytes,
	        .group_max = (size_t)cfg->group_max,
	        .queue_max = (size_t)cfg->queue_max,
	        .committed = srv->forwarder ? forward_wake : NULL,
	        .committed_data = srv->forwarder,
	};
	r = writer_start(&wo, &srv->metrics, &srv->writer, err, sizeof(err));
	if (r < 0) {
		log_error("cannot start the writer: %s", err);
		goto out;
	}
	threads = (size_t)cfg->threads;
	if (threads == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		threads = cpus > 0 ? (size_t)cpus : 1;
	}
	r = workpool_start(threads, "hub-work", &srv->pool_work);
	if (r < 0) {
		log_errno(r, "cannot start the work threads");
		goto out;
	}
	r = http_watchdog_start_notify(&srv->watchdog, cfg->request_timeout * 1000, on_cut, NULL);
	if (r < 0) {
		log_errno(r, "cannot start the watchdog");
		goto out;
	}
	r = http_server_start(&http, &ho, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		goto out;
	}
	if (!http.tls && cfg->insecure_plain_http && !http_address_is_loopback(&addr))
		log_warning("serving plain HTTP on %s, which is not a loopback address: returns "
		            "cross the network in clear text",
		            cfg->listen);
	log_info("county hub \"%s\" serving %s on %s (port %u), store '%s'", cfg->county_id,
	         http.tls ? "HTTPS" : "plain HTTP", cfg->listen, http.port, srv->store_path);

	while (sigwait(&signals, &sig) != 0 || (sig != SIGTERM && sig != SIGINT))
		;
	log_info("stopping on %s: finishing the uploads in progress",
	         sig == SIGTERM ? "SIGTERM" : "SIGINT");
	http_server_quiesce(&http);
	/* the checks queued go to the writer, which stores them all, then answers */
	workpool_stop(srv->pool_work);
	writer_stop(srv->writer);
	until = clock_monotonic_ms() + SHUTDOWN_WAIT_MS;
	while (atomic_load(&srv->active) > 0 && clock_monotonic_ms() < until)
		usleep(10000);
	r = 0;
out:
	http_server_stop(&http);
	workpool_free(srv->pool_work);
	srv->pool_work = NULL;
	writer_free(srv->writer);
	srv->writer = NULL;
	forward_stop(srv->forwarder);
	srv->forwarder = NULL;
	http_watchdog_stop(&srv->watchdog);
	return r;
}

int command_serve(int argc, char **argv)
{
	static const char synopsis[] = "county-hub serve [--dir DIR] [--listen ADDR:PORT] "
	                               "[--tls-cert FILE --tls-key FILE] "
	                               "[--region URL [--region-cacert FILE]]";
	struct config_option table[HUB_OPTIONS_MAX];
	struct hub_config cfg;
	struct server srv;
	size_t n = 0, count;
	int help = 0, ret = EX_SOFTWARE, r;
	const struct config_option extra[] = {
	        {"help", CONFIG_BOOLEAN, &help, "show this help", NULL, 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};

	memset(&srv, 0, sizeof(srv));
	memset(table, 0, sizeof(table));
	if (hub_config_init(&cfg) < 0)
		return EX_OSERR;
	hub_options_common(&cfg, table, &n);
	/* every hub.json key is a flag of serve too (schemas_dir and log_level are there
	 * already) */
	{
		struct config_option file[HUB_OPTIONS_MAX];
		size_t m = 0;

		memset(file, 0, sizeof(file));
		hub_options_file(&cfg, file, &m);
		for (size_t i = 0; i < m; i++)
			if (strcmp(file[i].name, "schemas_dir") != 0 &&
			    strcmp(file[i].name, "log_level") != 0)
				table[n++] = file[i];
		memset(&table[n], 0, sizeof(table[n]));
	}
	hub_options_add(table, &n, extra);
	if (hub_config_load(&cfg, table, 1, argc, argv, NULL, 0, &count) < 0) {
		ret = EX_USAGE;
		goto out;
	}
	if (help) {
		hub_usage(synopsis, table, 0);
		ret = EX_OK;
		goto out;
	}
	if (!cfg.county_id) {
		log_error("hub.json names no county_id");
		ret = EX_CONFIG;
		goto out;
	}
	srv.cfg = &cfg;
	if (hub_clock(&srv.clock) < 0 ||
	    hub_path(&cfg, HUB_STORE_FILE, srv.store_path, sizeof(srv.store_path)) < 0) {
		ret = EX_CONFIG;
		goto out;
	}
	snprintf(srv.store_dir, sizeof(srv.store_dir), "%s", cfg.dir);
	atomic_init(&srv.active, 0);
	atomic_init(&srv.free_bytes, -1);
	atomic_init(&srv.free_checked_ms, INT64_MIN / 2);
	pthread_mutex_init(&srv.pool_lock, NULL);
	if (metrics_init(&srv.metrics) < 0)
		goto out_pool;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("cannot start libcurl");
		metrics_release(&srv.metrics);
		goto out_pool;
	}
	r = serve(&srv);
	curl_global_cleanup();
	ret = r < 0 ? EX_UNAVAILABLE : EX_OK;
	if (r == 0)
		log_info("stopped");
	metrics_release(&srv.metrics);
out_pool:
	while (srv.pool) {
		struct worker *w = srv.pool;

		srv.pool = w->next;
		worker_free(w);
	}
	pthread_mutex_destroy(&srv.pool_lock);
	report_source_release(&srv.src);
	schema_free(srv.envelope);
	jwk_release(&srv.county_key);
out:
	hub_config_release(&cfg);
	return ret;
}
