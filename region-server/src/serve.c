/* `region-server serve`: the HTTP server (libmicrohttpd) in front of PostgreSQL.
 *
 * Routes: POST /v1/ingest (ingest.h, the county hubs), GET /v1/inspections/<name>
 * (inspect.h, the inspectors; GET /v1/inspections lists the queries), GET /healthz (200
 * when the database answers, else 503), GET /metrics (metrics.h).
 *
 * HTTPS with --tls-cert and --tls-key; plain HTTP only on a loopback address unless
 * --insecure-plain-http (common/http_server.h).
 *
 * Threads: one per connection (MHD_USE_THREAD_PER_CONNECTION: a request waits for the
 * database, and a thread pool would stall every other connection of the waiting thread),
 * at most max_connections. The access handler does each request's work on the final call
 * (the whole body in, upload_data_size 0) with a worker (a database connection, an
 * inflater) borrowed from a pool of at most db_connections: requests beyond that wait for
 * one. The watchdog (common/http_server.h) cuts off requests that take too long to
 * arrive; the main thread waits for SIGTERM or SIGINT.
 *
 * At start, unless --no-migrate, the schema and the calendar are brought up to date as
 * `region-server migrate` does (DESIGN section 9: migrations applied at start).
 *
 * Shutdown on SIGTERM/SIGINT: stop accepting connections, let the requests in progress
 * finish (an ingest commits or rolls back as a whole), stop MHD, close the connections,
 * exit 0. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "common/calendar.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/form.h"
#include "common/log.h"
#include "common/rollup.h"
#include "common/schema.h"
#include "commands.h"
#include "db.h"
#include "ingest.h"
#include "inspect.h"
#include "metrics.h"
#include "migrate.h"
#include "server.h"
#include "common/banned.h"

#define USAGE                                                                                      \
	"serve [--db CONNINFO] [--listen ADDR:PORT] [--tls-cert FILE --tls-key FILE] "             \
	"[--schemas-dir DIR] [--config FILE] [OPTIONS]"
#define OTHER_BODY_MAX (64 * 1024) /* bytes of body we discard on a route that takes none */
#define SHUTDOWN_WAIT_MS 30000
#define INSPECTIONS_PREFIX "/v1/inspections/"

enum route {
	ROUTE_INGEST,
	ROUTE_INSPECT,
	ROUTE_LIST,
	ROUTE_HEALTH,
	ROUTE_METRICS,
	ROUTE_NOT_FOUND,
	ROUTE_METHOD, /* known path, wrong method */
};

/* One HTTP request, from the first call of the access handler to MHD's completion
 * callback, which frees it. */
struct request {
	struct server *srv;
	struct MHD_Connection *conn;
	struct http_watch *watch;
	enum route route;
	const char *allow;
	int query; /* ROUTE_INSPECT */
	int answered;
	int too_large;
	struct timespec start;
	char peer[64];
	struct buf body;
	size_t discarded;
	struct http_reply reply;
};

/* --- workers ------------------------------------------------------------------------ */

static void worker_free(struct worker *w)
{
	if (!w)
		return;
	db_free(w->db);
	gzip_inflater_release(&w->inflater);
	buf_release(&w->plain);
	free(w);
}

/* Sets a new connection up: local time of the calendar (timestamps in answers), a
 * statement timeout, the ingest's temporary table. */
static int session_setup(struct server *srv, struct db *db, char *err, size_t errlen)
{
	char sql[256];
	int off = srv->offset_min < 0 ? -srv->offset_min : srv->offset_min, r;

	snprintf(
	        sql, sizeof(sql),
	        "SET TIME ZONE INTERVAL '%c%02d:%02d' HOUR TO MINUTE; SET statement_timeout = %lld;"
	        " SET DateStyle = 'ISO, YMD'",
	        srv->offset_min < 0 ? '-' : '+', off / 60, off % 60,
	        (long long)srv->cfg->statement_timeout_ms);
	r = db_exec_script(db, sql, err, errlen);
	if (r == 0)
		r = db_exec_script(db, ingest_session_sql, err, errlen);
	return r;
}

/* A worker given up (lost connection, failed start): another may be made. */
static void worker_gone(struct server *srv)
{
	pthread_mutex_lock(&srv->pool_lock);
	srv->workers--;
	pthread_cond_signal(&srv->pool_free);
	pthread_mutex_unlock(&srv->pool_lock);
}

struct worker *server_worker_get(struct server *srv)
{
	const struct region_config *cfg = srv->cfg;
	struct worker *w = NULL;
	struct timespec until;
	char err[DB_ERR_MAX] = "";
	int r;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WORKER_WAIT_MS / 1000;
	pthread_mutex_lock(&srv->pool_lock);
	while (!srv->pool && srv->workers >= srv->workers_max)
		if (pthread_cond_timedwait(&srv->pool_free, &srv->pool_lock, &until) == ETIMEDOUT)
			break;
	if (srv->pool) {
		w = srv->pool;
		srv->pool = w->next;
	} else if (srv->workers < srv->workers_max) {
		srv->workers++; /* made below */
	} else {
		pthread_mutex_unlock(&srv->pool_lock);
		log_warning("no database connection came free in %d s", WORKER_WAIT_MS / 1000);
		return NULL;
	}
	pthread_mutex_unlock(&srv->pool_lock);
	if (w && db_usable(w->db))
		return w;
	worker_free(w); /* its connection was lost: a new one takes its place */
	w = calloc(1, sizeof(*w));
	if (!w) {
		worker_gone(srv);
		log_errno(-ENOMEM, "cannot make a worker");
		return NULL;
	}
	r = gzip_inflater_init(&w->inflater, (size_t)cfg->inflate_max,
	                       (unsigned)cfg->inflate_ratio);
	if (r < 0) {
		worker_gone(srv);
		log_errno(r, "cannot make an inflater");
		free(w);
		return NULL;
	}
	buf_init(&w->plain, (size_t)cfg->inflate_max);
	r = db_open(cfg->db, &w->db, err, sizeof(err));
	if (r == 0)
		r = session_setup(srv, w->db, err, sizeof(err));
	if (r < 0) {
		log_warning("cannot connect to the database: %s", err);
		worker_free(w);
		worker_gone(srv);
		return NULL;
	}
	return w;
}

void server_worker_put(struct server *srv, struct worker *w)
{
	if (!w)
		return;
	if (!db_usable(w->db)) {
		worker_free(w);
		worker_gone(srv);
		return;
	}
	buf_reset(&w->plain);
	pthread_mutex_lock(&srv->pool_lock);
	w->next = srv->pool;
	srv->pool = w;
	pthread_cond_signal(&srv->pool_free);
	pthread_mutex_unlock(&srv->pool_lock);
}

/* --- requests ------------------------------------------------------------------------ */

static int is_get(const char *method)
{
	return strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
	       strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

static void route(struct request *req, const char *url, const char *method)
{
	size_t pre = sizeof(INSPECTIONS_PREFIX) - 1;

	req->allow = "GET, HEAD";
	if (strcmp(url, "/v1/ingest") == 0) {
		req->route =
		        strcmp(method, MHD_HTTP_METHOD_POST) == 0 ? ROUTE_INGEST : ROUTE_METHOD;
		req->allow = "POST";
	} else if (strncmp(url, INSPECTIONS_PREFIX, pre) == 0 &&
	           (req->query = inspect_find(url + pre)) >= 0) {
		req->route = is_get(method) ? ROUTE_INSPECT : ROUTE_METHOD;
	} else if (strcmp(url, "/v1/inspections") == 0) {
		req->route = is_get(method) ? ROUTE_LIST : ROUTE_METHOD;
	} else if (strcmp(url, "/healthz") == 0) {
		req->route = is_get(method) ? ROUTE_HEALTH : ROUTE_METHOD;
	} else if (strcmp(url, "/metrics") == 0) {
		req->route = is_get(method) ? ROUTE_METRICS : ROUTE_METHOD;
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
	req->query = -1;
	clock_gettime(CLOCK_MONOTONIC, &req->start);
	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	req->watch = info ? info->socket_context : NULL;
	buf_init(&req->body, (size_t)srv->cfg->body_max);
	http_peer_address(conn, req->peer, sizeof(req->peer));
	route(req, url, method);
	return req;
}

static void request_free(struct request *req)
{
	buf_release(&req->body);
	http_reply_release(&req->reply);
	free(req);
}

static double seconds_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void reply_error(struct http_reply *reply, int status, const char *code, const char *message)
{
	if (http_reply_error(reply, status, code, message, NULL, NULL) < 0)
		http_reply_text(reply, 500, "out of memory\n");
}

/* Before the body: an ingest must be a gzipped JOSE body within the size cap. Returns 1
 * with the refusal in req->reply, else 0. */
static int ingest_precheck(struct request *req)
{
	struct MHD_Connection *conn = req->conn;
	const char *type =
	        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	const char *encoding = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	                                                   MHD_HTTP_HEADER_CONTENT_ENCODING);
	const char *length =
	        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	size_t n;

	n = type ? strcspn(type, "; ") : 0;
	if (!type || n != strlen("application/jose+json") ||
	    strncasecmp(type, "application/jose+json", n) != 0 || !encoding ||
	    strcasecmp(encoding, "gzip") != 0) {
		reply_error(&req->reply, 415, "unsupported_media_type",
		            "send Content-Type: application/jose+json with Content-Encoding: gzip");
		return 1;
	}
	if (length && strtoull(length, NULL, 10) > (unsigned long long)req->srv->cfg->body_max) {
		reply_error(&req->reply, 413, "too_large", "the batch is larger than the limit");
		return 1;
	}
	return 0;
}

static void answer_ingest(struct request *req)
{
	struct server *srv = req->srv;
	struct ingest_outcome o;
	struct worker *w;
	int r;

	if (req->too_large) {
		reply_error(&req->reply, 413, "too_large", "the batch is larger than the limit");
		metrics_ingest(&srv->metrics, 413, seconds_since(&req->start));
		return;
	}
	w = server_worker_get(srv);
	if (!w) {
		reply_error(&req->reply, 503, "unavailable", "the database is not available");
		req->reply.retry_after = 5;
		metrics_ingest(&srv->metrics, 503, seconds_since(&req->start));
		return;
	}
	r = ingest_handle(srv, w, req->body.data ? req->body.data : "", req->body.len, &req->reply,
	                  &o);
	server_worker_put(srv, w);
	buf_release(&req->body);
	if (r < 0) {
		http_reply_text(&req->reply, 500, "out of memory\n");
		o.status = 500;
	}
	metrics_ingest(&srv->metrics, o.status, seconds_since(&req->start));
	if (o.status == 200) {
		atomic_fetch_add(&srv->metrics.items[METRICS_ITEM_STORED], o.stored);
		atomic_fetch_add(&srv->metrics.items[METRICS_ITEM_DUPLICATE], o.duplicates);
		atomic_fetch_add(&srv->metrics.items[METRICS_ITEM_REJECTED], o.rejected);
		atomic_fetch_add(&srv->metrics.findings, o.findings);
		if (o.rejected)
			log_warning("batch \"%s\" of county \"%s\": %zu items, %zu stored, %zu "
			            "duplicate, "
			            "%zu rejected (integrity findings recorded)",
			            o.batch_id, o.county_id, o.items, o.stored, o.duplicates,
			            o.rejected);
		else
			log_info("batch \"%s\" of county \"%s\": %zu items, %zu stored, %zu "
			         "duplicate "
			         "(%.3f s)",
			         o.batch_id, o.county_id, o.items, o.stored, o.duplicates,
			         seconds_since(&req->start));
	} else {
		log_warning("refused a batch%s%s from %s: %d %.*s",
		            o.county_id[0] ? " of county " : "", o.county_id, req->peer, o.status,
		            (int)(req->reply.len < 300 ? req->reply.len : 300),
		            req->reply.body ? req->reply.body : "");
	}
}

/* The bearer token of the request, or NULL. */
static const char *bearer(struct MHD_Connection *conn)
{
	const char *h =
	        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);

	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	return *h ? h : NULL;
}

static void answer_inspect(struct request *req)
{
	struct server *srv = req->srv;
	struct inspect_caller caller;
	struct worker *w;
	const char *token = bearer(req->conn);
	int r, status = 500;

	if (!token) {
		reply_error(&req->reply, 401, "unauthenticated",
		            "send Authorization: Bearer <token> (region-server token add)");
		req->reply.www_authenticate = "Bearer realm=\"region\"";
		metrics_call(&srv->metrics, (size_t)req->query, METRICS_CALL_DENIED);
		return;
	}
	w = server_worker_get(srv);
	if (!w) {
		reply_error(&req->reply, 503, "unavailable", "the database is not available");
		req->reply.retry_after = 2;
		metrics_call(&srv->metrics, (size_t)req->query, METRICS_CALL_FAILED);
		return;
	}
	r = inspect_authenticate(w, token, &caller);
	if (r == -EACCES) {
		reply_error(&req->reply, 401, "unauthenticated", "unknown or revoked token");
		req->reply.www_authenticate = "Bearer realm=\"region\", error=\"invalid_token\"";
		metrics_call(&srv->metrics, (size_t)req->query, METRICS_CALL_DENIED);
		log_warning("refused an inspection from %s: unknown or revoked token", req->peer);
		goto out;
	}
	if (r < 0) {
		reply_error(&req->reply, 503, "unavailable", "the database is not available");
		req->reply.retry_after = 2;
		metrics_call(&srv->metrics, (size_t)req->query, METRICS_CALL_FAILED);
		goto out;
	}
	r = inspect_handle(srv, w, req->conn, req->query, &caller, &req->reply, &status);
	if (r < 0) {
		http_reply_text(&req->reply, 500, "out of memory\n");
		status = 500;
	}
	metrics_call(&srv->metrics, (size_t)req->query,
	             status == 200   ? METRICS_CALL_OK
	             : status == 403 ? METRICS_CALL_DENIED
	             : status < 500  ? METRICS_CALL_BAD_REQUEST
	                             : METRICS_CALL_FAILED);
	if (status == 403)
		log_warning("refused %s to token \"%s\" (%s of county %s): another county",
		            inspect_name((size_t)req->query), caller.name, caller.role,
		            caller.county_id);
	else if (status >= 500)
		log_warning("inspection %s for \"%s\" failed: %d %.*s",
		            inspect_name((size_t)req->query), caller.name, status,
		            (int)(req->reply.len < 300 ? req->reply.len : 300),
		            req->reply.body ? req->reply.body : "");
out:
	server_worker_put(srv, w);
}

static void answer_list(struct request *req)
{
	cJSON *root = cJSON_CreateObject(),
	      *names = root ? cJSON_AddArrayToObject(root, "queries") : NULL;
	char *text = NULL;

	for (size_t i = 0; names && i < inspect_count(); i++) {
		cJSON *s = cJSON_CreateString(inspect_name(i));

		if (!s)
			break;
		cJSON_AddItemToArray(names, s);
	}
	if (names && cJSON_GetArraySize(names) == (int)inspect_count())
		text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!text) {
		http_reply_text(&req->reply, 500, "out of memory\n");
		return;
	}
	req->reply.status = 200;
	req->reply.body = text;
	req->reply.len = strlen(text);
	req->reply.content_type = "application/json";
}

static void answer_health(struct request *req)
{
	struct worker *w = server_worker_get(req->srv);
	char err[DB_ERR_MAX];
	int r = w ? db_exec(w->db, "SELECT 1", 0, NULL, err, sizeof(err)) : -ECONNREFUSED;

	server_worker_put(req->srv, w);
	if (r < 0) {
		http_reply_text(&req->reply, 503, "database unavailable\n");
		req->reply.retry_after = 2;
		return;
	}
	http_reply_text(&req->reply, 200, "ok\n");
}

static void answer_metrics(struct request *req)
{
	struct buf out;

	buf_init(&out, 1024 * 1024);
	if (metrics_format(&req->srv->metrics, &out) < 0) {
		buf_release(&out);
		http_reply_text(&req->reply, 500, "cannot format the metrics\n");
		return;
	}
	req->reply.status = 200;
	req->reply.body = buf_detach(&out, &req->reply.len);
	req->reply.content_type = "text/plain; version=0.0.4; charset=utf-8";
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
		if (req->route == ROUTE_INGEST && ingest_precheck(req)) {
			/* refused before reading the body: MHD closes the connection after */
			req->answered = 1;
			req->reply.close = 1;
			metrics_ingest(&srv->metrics, req->reply.status, 0);
			http_watch_busy(&srv->watchdog, req->watch);
			return (enum MHD_Result)http_reply_queue(conn, &req->reply);
		}
		return MHD_YES;
	}
	if (n > 0) {
		*upload_data_size = 0;
		if (req->answered)
			return MHD_YES;
		if (req->route == ROUTE_INGEST && !req->too_large) {
			int r = buf_append(&req->body, upload_data, n);

			if (r == -EMSGSIZE) {
				req->too_large = 1;
				req->discarded = req->body.len;
				buf_release(&req->body);
			} else if (r < 0) {
				return MHD_NO;
			}
		}
		if (req->route != ROUTE_INGEST || req->too_large) {
			req->discarded += n;
			if (req->discarded > (req->route == ROUTE_INGEST
			                              ? (size_t)srv->cfg->body_max * 2
			                              : (size_t)OTHER_BODY_MAX))
				return MHD_NO; /* no answer is worth reading this much for */
		}
		return MHD_YES;
	}
	if (req->answered)
		return MHD_YES;
	/* the final call: the whole request is in */
	http_watch_busy(&srv->watchdog, req->watch);
	switch (req->route) {
	case ROUTE_INGEST:
		answer_ingest(req);
		break;
	case ROUTE_INSPECT:
		answer_inspect(req);
		break;
	case ROUTE_LIST:
		answer_list(req);
		break;
	case ROUTE_HEALTH:
		answer_health(req);
		break;
	case ROUTE_METRICS:
		answer_metrics(req);
		break;
	case ROUTE_METHOD:
		reply_error(&req->reply, 405, "method_not_allowed", "method not allowed here");
		req->reply.allow = req->allow;
		break;
	case ROUTE_NOT_FOUND:
		reply_error(&req->reply, 404, "not_found", "no such resource");
		break;
	}
	req->answered = 1;
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
	request_free(req);
	atomic_fetch_sub(&srv->active, 1);
}

/* libmicrohttpd's error messages (common/http_server.h). */
static void on_mhd_error(void *data, const char *line)
{
	(void)data;
	log_warning("libmicrohttpd: %s", line);
}

static void on_cut(void *data, int64_t deadline_ms)
{
	(void)data;
	log_info("cut off a connection whose request took over %lld ms to arrive",
	         (long long)deadline_ms);
}

/* --- start and stop ------------------------------------------------------------------ */

static int load_data(struct server *srv, const char *dir)
{
	char path[PATH_MAX + 64], err[1024] = "";
	int r;

	snprintf(path, sizeof(path), "%s/forms", dir);
	r = form_set_load_dir(path, &srv->forms, err, sizeof(err));
	if (r < 0)
		return log_errno(r, "cannot load the forms from '%s': %s", path, err);
	snprintf(path, sizeof(path), "%s/campaigns", dir);
	r = calendar_load_dir(path, &srv->calendar, err, sizeof(err));
	if (r < 0)
		return log_errno(r, "cannot load the calendar from '%s': %s", path, err);
	srv->offset_min = calendar_utc_offset_min(srv->calendar);
	snprintf(path, sizeof(path), "%s/submission.schema.json", dir);
	r = schema_load_file(path, &srv->envelope, err, sizeof(err));
	if (r < 0)
		return log_errno(r, "cannot load the submission schema: %s", err);
	srv->plans = calloc(srv->forms->count, sizeof(*srv->plans));
	if (!srv->plans)
		return log_errno(-ENOMEM, "cannot compile the roll-ups");
	for (size_t i = 0; i < srv->forms->count; i++) {
		const struct form *f = &srv->forms->forms[i];

		r = rollup_plan_compile(schema_root(f->schema), err, sizeof(err), &srv->plans[i]);
		if (r < 0)
			return log_errno(r, "cannot compile the roll-up of form '%s': %s", f->id,
			                 err);
	}
	log_info("loaded %zu forms from '%s'", srv->forms->count, dir);
	return 0;
}

static int migrate_at_start(struct server *srv, const char *dir)
{
	char path[PATH_MAX + 16], err[DB_ERR_MAX];
	struct db *db = NULL;
	int applied = 0, periods = 0, r;

	r = command_db_open(srv->cfg->db, &db);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/region", dir);
	r = migrate_apply(db, path, &applied, err, sizeof(err));
	if (r == 0)
		r = migrate_load_calendar(db, srv->calendar, srv->forms, &periods, err,
		                          sizeof(err));
	db_free(db);
	if (r < 0) {
		log_error("cannot bring the database up to date: %s", err);
		return r;
	}
	log_info("schema up to date (%d migration%s applied now), calendar stored (%d periods)",
	         applied, applied == 1 ? "" : "s", periods);
	return 0;
}

static void server_release(struct server *srv)
{
	while (srv->pool) {
		struct worker *w = srv->pool;

		srv->pool = w->next;
		worker_free(w);
	}
	for (size_t i = 0; srv->plans && srv->forms && i < srv->forms->count; i++)
		rollup_plan_free(srv->plans[i]);
	free(srv->plans);
	schema_free(srv->envelope);
	calendar_free(srv->calendar);
	form_set_free(srv->forms);
}

/* The HTTPS settings of serve (flags and --config FILE). */
struct tls_options {
	char *cert;
	char *key;
	int insecure_plain_http;
};

static void http_options(struct server *srv, const struct tls_options *tls,
                         struct http_server_options *ret)
{
	const struct region_config *cfg = srv->cfg;

	memset(ret, 0, sizeof(*ret));
	ret->listen = cfg->listen;
	ret->flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC;
	ret->max_connections = (unsigned)cfg->max_connections;
	ret->connection_memory = (size_t)cfg->connection_memory;
	ret->idle_timeout = (unsigned)cfg->idle_timeout;
	ret->on_request = on_request;
	ret->request_data = srv;
	ret->on_completed = on_completed;
	ret->completed_data = srv;
	ret->watchdog = &srv->watchdog;
	ret->tls_cert = tls->cert;
	ret->tls_key = tls->key;
	ret->insecure_plain_http = tls->insecure_plain_http;
	ret->on_error = on_mhd_error;
}

static int run(struct server *srv, const struct tls_options *tls)
{
	const struct region_config *cfg = srv->cfg;
	struct http_server_options o;
	struct http_server http = {0};
	char err[1024];
	sigset_t signals;
	int64_t until;
	int sig = 0, r;

	http_options(srv, tls, &o);
	/* every thread started from here on inherits the blocked signals */
	sigemptyset(&signals);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);
	signal(SIGPIPE, SIG_IGN);
	r = http_watchdog_start_notify(&srv->watchdog, cfg->request_timeout * 1000, on_cut, NULL);
	if (r < 0)
		return log_errno(r, "cannot start the watchdog");
	r = http_server_start(&http, &o, err, sizeof(err));
	if (r < 0) {
		http_watchdog_stop(&srv->watchdog);
		log_error("%s", err);
		return r;
	}
	if (!http.tls && tls->insecure_plain_http)
		log_warning("serving plain HTTP on %s as asked: what travels is readable and "
		            "forgeable on the way unless the address is loopback",
		            cfg->listen);
	log_info("region server serving %s on %s (port %u, at most %zu database connections)",
	         http.tls ? "HTTPS" : "plain HTTP", cfg->listen, http.port, srv->workers_max);

	while (sigwait(&signals, &sig) != 0 || (sig != SIGTERM && sig != SIGINT))
		;
	log_info("stopping on %s: finishing the requests in progress",
	         sig == SIGTERM ? "SIGTERM" : "SIGINT");
	http_server_quiesce(&http);
	until = clock_monotonic_ms() + SHUTDOWN_WAIT_MS;
	while (atomic_load(&srv->active) > 0 && clock_monotonic_ms() < until)
		usleep(10000);
	http_server_stop(&http);
	http_watchdog_stop(&srv->watchdog);
	return 0;
}

int command_serve(int argc, char **argv)
{
	struct tls_options tls = {NULL, NULL, 0};
	struct region_config cfg = {
	        .db_connections = 0,
	        .max_connections = 256,
	        .connection_memory = 64 * 1024,
	        .idle_timeout = 60,
	        .request_timeout = 60,
	        .body_max = 16 * 1024 * 1024,
	        .inflate_max = INGEST_TEXT_MAX,
	        .inflate_ratio = 100,
	        .statement_timeout_ms = 60000,
	};
	const struct config_option options[] = {
	        {"config", CONFIG_STRING, &cfg.config, "read options from FILE (JSON)", "FILE", 0,
	         0},
	        {"db", CONFIG_STRING, &cfg.db, "libpq connection string (default: PG* variables)",
	         "CONNINFO", 0, 0},
	        {"listen", CONFIG_STRING, &cfg.listen, "address and port (default 127.0.0.1:8402)",
	         "ADDR:PORT", 0, 0},
	        {"schemas_dir", CONFIG_STRING, &cfg.schemas_dir,
	         "the folder holding region/, forms/ and campaigns/", "DIR", 0, 0},
	        {"log_level", CONFIG_STRING, &cfg.log_level,
	         "error, warning, info (default), debug", "LEVEL", 0, 0},
	        {"db_connections", CONFIG_INTEGER, &cfg.db_connections,
	         "requests working at once, one database connection each (0: two per CPU, at "
	         "least 4)",
	         "N", 0, 1024},
	        {"max_connections", CONFIG_INTEGER, &cfg.max_connections, "connections at once",
	         "N", 1, 100000},
	        {"connection_memory", CONFIG_INTEGER, &cfg.connection_memory,
	         "bytes of buffer per connection", "BYTES", 8192, 16 * 1024 * 1024},
	        {"idle_timeout", CONFIG_INTEGER, &cfg.idle_timeout,
	         "seconds a silent connection is kept", "S", 1, 86400},
	        {"request_timeout", CONFIG_INTEGER, &cfg.request_timeout,
	         "seconds a request may take to arrive", "S", 1, 86400},
	        {"body_max", CONFIG_INTEGER, &cfg.body_max, "bytes of a compressed ingest batch",
	         "BYTES", 1024, 1024LL * 1024 * 1024},
	        {"inflate_max", CONFIG_INTEGER, &cfg.inflate_max,
	         "bytes an ingest batch may inflate to", "BYTES", 1024, INGEST_TEXT_MAX},
	        {"inflate_ratio", CONFIG_INTEGER, &cfg.inflate_ratio,
	         "inflated/compressed ratio allowed (0: no limit)", "N", 0, 100000},
	        {"statement_timeout_ms", CONFIG_INTEGER, &cfg.statement_timeout_ms,
	         "the longest one SQL statement may run", "MS", 0, 3600000},
	        {"no_migrate", CONFIG_BOOLEAN, &cfg.no_migrate,
	         "do not bring the schema up to date at start", NULL, 0, 0},
	        {"tls_cert", CONFIG_STRING, &tls.cert,
	         "serve HTTPS with this certificate chain (PEM)", "FILE", 0, 0},
	        {"tls_key", CONFIG_STRING, &tls.key, "the private key (PEM) of tls_cert", "FILE", 0,
	         0},
	        {"insecure_plain_http", CONFIG_BOOLEAN, &tls.insecure_plain_http,
	         "serve plain HTTP on an address other than loopback (what travels is readable "
	         "on the way)",
	         NULL, 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};
	struct server srv;
	char dir[PATH_MAX], err[512];
	const char *names[METRICS_QUERIES_MAX];
	enum log_level level;
	int next, r, status = EX_SOFTWARE;

	memset(&srv, 0, sizeof(srv));
	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		command_help(USAGE, options);
		return EX_OK;
	}
	r = config_parse(options, "config", argc, argv, &next, err, sizeof(err));
	if (r < 0 || next < argc) {
		log_error("%s; usage: region-server %s", r < 0 ? err : "unexpected argument",
		          USAGE);
		config_release(options);
		return EX_USAGE;
	}
	if (!cfg.listen && !(cfg.listen = strdup("127.0.0.1:8402"))) {
		config_release(options);
		return EX_OSERR;
	}
	if (cfg.log_level) {
		if (log_parse_level(cfg.log_level, &level) < 0) {
			log_error("log level '%s' is not error, warning, info or debug",
			          cfg.log_level);
			config_release(options);
			return EX_USAGE;
		}
	} else {
		level = LOG_LEVEL_INFO;
	}
	srv.cfg = &cfg;
	r = clock_init_from_env(&srv.clock, err, sizeof(err));
	if (r < 0) {
		log_error("RETURNS_CLOCK: %s", err);
		config_release(options);
		return EX_CONFIG;
	}
	log_setup("region-server", level, &srv.clock);
	atomic_init(&srv.active, 0);
	pthread_mutex_init(&srv.pool_lock, NULL);
	pthread_cond_init(&srv.pool_free, NULL);
	srv.workers_max = (size_t)cfg.db_connections;
	if (srv.workers_max == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		srv.workers_max = cpus > 2 ? 2 * (size_t)cpus : 4;
	}
	for (size_t i = 0; i < inspect_count() && i < METRICS_QUERIES_MAX; i++)
		names[i] = inspect_name(i);
	if (metrics_init(&srv.metrics, names, inspect_count()) < 0)
		goto out;
	status = EX_CONFIG;
	if (command_schemas_dir(cfg.schemas_dir, dir, sizeof(dir)) < 0 || load_data(&srv, dir) < 0)
		goto out_metrics;
	{
		struct http_server_options o;

		http_options(&srv, &tls, &o);
		r = http_server_check(&o, err, sizeof(err));
		if (r < 0) {
			log_error("%s", err);
			goto out_metrics;
		}
	}
	status = EX_UNAVAILABLE;
	if (!cfg.no_migrate && migrate_at_start(&srv, dir) < 0)
		goto out_metrics;
	r = run(&srv, &tls);
	status = r < 0 ? EX_UNAVAILABLE : EX_OK;
	if (r == 0)
		log_info("stopped");
out_metrics:
	metrics_release(&srv.metrics);
out:
	server_release(&srv);
	pthread_cond_destroy(&srv.pool_free);
	pthread_mutex_destroy(&srv.pool_lock);
	config_release(options);
	return status;
}
