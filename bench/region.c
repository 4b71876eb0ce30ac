/* bench/region: `region-server serve` ingesting a generated province-year, beside the
 * baselines it is judged against, all measured in the same run on the same machine
 * (issue 5 "Benchmark"):
 *
 *   - ingest: every county's batches (its roster, then its returns and roll-ups, at most
 *     1,000 items a batch, each return a school-signed JWS with the hub's county-signed
 *     receipt) through POST /v1/ingest, each county in order over one connection as its
 *     hub sends them, BENCH_REGION_CONNECTIONS counties at once; items per second, counted
 *     from the first request to the last answer (an answer is sent after COMMIT);
 *   - (a) COPY of the same rows into the same tables (submissions, with the triggers that
 *     keep the returns that count; rollups and the returns each lists), in another
 *     database of the same server;
 *   - (b) bare signature verification of the same school returns (jws_parse + jws_verify,
 *     one thread);
 *   - each inspection query's p50 and p95 over HTTP (token check, the SQL functions, the
 *     audit row) on the whole data set;
 *   - "accepted to visible": while the counties are being ingested, a return sent alone is
 *     looked for with chain-of-custody right after its 200: the time from its 200 to the
 *     first answer that shows it (p95, max).
 *
 * Data: BENCH_REGION_SCHOOLS schools (default 30,000) in BENCH_REGION_COUNTIES counties
 * (100), each filing the 2024 campaign: screening (P1), summary (P1-P3; one in ten late),
 * rectification ledgers (2024-03 to 2024-11, two items each; one ledger in ten has an item
 * past its deadline) and, for a third of the schools, one or two incidents (one in fifty
 * of level 3): about 13.5 returns a school, 405,000 in all at the default size. A county's
 * schools send a period's return one after the other, 10 s apart. Roll-ups, as a hub
 * forwards them when its figures change: for each (county, form, period), one after every
 * BENCH_REGION_ROLLUP_EVERY (20) returns in the order the hub received them and one after
 * the last, computed 5 s after the last return it counts, listing every return received
 * by then, with the figures and roll-up object the hub computes (about 20,000 roll-ups,
 * 15 versions of each county's summary of a phase, listing 3 million returns in all).
 *
 * Targets: ingest >= 50% of the slower of (a) and (b); every query p95 <= 100 ms; accepted
 * to visible <= 1 s. A benchmark, not a test: a missed target is reported, never an
 * error. Writes <results>/region.json (bench/bench.h), whose details also say what CPU
 * (from /proc) the ingest took, region-server's and its PostgreSQL backends' (the probes
 * included), and the COPY's backend: on a shared machine that tells whether a ratio moved
 * for the work or for the share of the machine it got.
 *
 * Environment: REGION_SERVER (region-server/region-server), PG_TMP (scripts/pg-tmp),
 * BENCH_SCHEMAS (schemas), BENCH_TMPDIR (/var/tmp), BENCH_REGION_SCHOOLS,
 * BENCH_REGION_COUNTIES, BENCH_REGION_CONNECTIONS (2), BENCH_REGION_QUERY_RUNS (40),
 * BENCH_REGION_ROLLUP_EVERY (20; 0: no roll-ups) and BENCH_KEEP (set: the database and the
 * logs are kept, and the connection string printed). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <libpq-fe.h>
#include <sodium.h>

#include "bench.h"
#include "common/buf.h"
#include "common/calendar.h"
#include "common/clock.h"
#include "common/datetime.h"
#include "common/fileio.h"
#include "common/form.h"
#include "common/gzip.h"
#include "common/ids.h"
#include "common/jwk.h"
#include "common/jws.h"
#include "common/rollup.h"
#include "common/schema.h"
#include "common/banned.h"

#define NAME "region"
#define BATCH_ITEMS 1000
#define BATCH_BYTES (6u << 20) /* of item texts: the inflated batch stays far below 16 MiB */
#define ROLLUP_EVERY 20
#define SCHOOL_SPREAD_MS 10000 /* between two schools' returns of a period */
#define OFFSET_MIN 480
#define PROBES_MAX 400
#define TOKEN "rgn_bench_token_for_the_inspection_queries_0000"

struct item {
	char id[IDS_UUID_LEN + 1];
	char school[11];
	char form[16];
	char period[16];
	char created[DATETIME_RFC3339_MAX];
	char received[DATETIME_RFC3339_MAX];
	char sha[IDS_SHA256_HEX_LEN + 1];
	int on_time; /* 1, 0, -1 null */
	int64_t received_ms;
	char *payload;
	char *jws;
	char *receipt; /* NULL for a roll-up */
	/* a roll-up (rollup set): created is its computed_at; what the COPY baseline stores */
	int rollup;
	long long expected, received_n, on_time_n; /* expected -1: null */
	char *rollup_text, *missing_text; /* its x-rollup object, missing as a text[] literal */
	char *listed_rows;                /* "submission_id\tsha256\n" for each listed return */
};

struct school {
	char id[11];
	struct jwk key;
};

struct county {
	char id[7];
	char name[32];
	struct jwk key;
	struct school *schools;
	size_t nschools;
};

struct templates {
	cJSON *screening, *summary, *rectification, *incident, *level3;
};

struct bench {
	const char *server_bin, *schemas, *pg_tmp;
	char dir[4096], pg_dir[4200], conninfo[1024], dsn_ingest[1200], dsn_copy[1200];
	char url[128];
	pid_t server;
	struct clock clock;
	struct form_set *forms;
	struct calendar *calendar;
	struct rollup_plan **plans; /* one per form, as forms */
	struct templates tpl;
	struct county *counties;
	size_t ncounties;
	long schools, connections, query_runs, rollup_every;
	/* measured */
	double ingest_s, copy_s, verify_s;
	double copy_cpu_s; /* of the COPY's backend */
	size_t items, returns, rollups, listed, stored, not_stored;
	long long copy_rollup_id; /* the last rollup_id the COPY baseline gave */
	char sample_id[IDS_UUID_LEN + 1];
};

/* --- small helpers ------------------------------------------------------------------- */

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (!p)
		bench_fail(NAME, "out of memory");
	return p;
}

static cJSON *load_json(const char *path)
{
	struct buf text;
	cJSON *j;

	buf_init(&text, 1 << 20);
	if (fileio_read(path, &text) < 0)
		bench_fail(NAME, path);
	j = cJSON_ParseWithLength(text.data, text.len);
	buf_release(&text);
	if (!j)
		bench_fail(NAME, path);
	return j;
}

static void exec_sql(const char *conninfo, const char *sql)
{
	PGconn *c = PQconnectdb(conninfo);
	PGresult *r;

	if (PQstatus(c) != CONNECTION_OK)
		bench_fail(NAME, PQerrorMessage(c));
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "%s: %s: %s", NAME, sql, PQresultErrorMessage(r));
		exit(1);
	}
	PQclear(r);
	PQfinish(c);
}

/* Runs a shell command and returns the first line of its output (static). */
static const char *run_line(const char *cmd)
{
	static char line[1024];
	FILE *p = popen(cmd, "r");

	line[0] = '\0';
	if (!p || !fgets(line, sizeof(line), p))
		bench_fail(NAME, cmd);
	if (pclose(p) != 0)
		bench_fail(NAME, cmd);
	line[strcspn(line, "\n")] = '\0';
	return line;
}

static int64_t at(int y, int m, int d, int hour, int minute)
{
	struct date day = {.year = y, .month = m, .day = d};

	return datetime_day_start(&day, OFFSET_MIN) + ((int64_t)hour * 60 + minute) * 60000;
}

static void sign_text(const struct jwk *key, const char *kid, const char *text, char **ret)
{
	char err[256];

	if (jws_sign(key, kid, text, strlen(text), ret, NULL, err, sizeof(err)) < 0)
		bench_fail(NAME, err);
}

/* --- CPU used (/proc) ----------------------------------------------------------------- */

/* Seconds of CPU (user and system) process pid has used; 0 when there is none. */
static double cpu_seconds(long pid)
{
	unsigned long long utime = 0, stime = 0;
	char path[64], line[1024], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	p = fgets(line, sizeof(line), f);
	fclose(f);
	/* after the command, which may hold spaces: state ppid pgrp session tty_nr tpgid
	 * flags minflt cminflt majflt cmajflt utime stime */
	if (!p || !(p = strrchr(line, ')')) ||
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
	           &stime) != 2)
		return 0;
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* The backends of one database and the CPU each had used, by pid. */
#define BACKENDS_MAX 256
struct backends {
	long pid[BACKENDS_MAX];
	double cpu[BACKENDS_MAX];
	size_t n;
};

static void backends_of(PGconn *conn, const char *dbname, struct backends *ret)
{
	const char *params[1] = {dbname};
	PGresult *r = PQexecParams(conn, "SELECT pid FROM pg_stat_activity WHERE datname = $1", 1,
	                           NULL, params, NULL, NULL, 0);

	ret->n = 0;
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_fail(NAME, PQresultErrorMessage(r));
	for (int i = 0; i < PQntuples(r) && ret->n < BACKENDS_MAX; i++) {
		ret->pid[ret->n] = strtol(PQgetvalue(r, i, 0), NULL, 10);
		ret->cpu[ret->n] = cpu_seconds(ret->pid[ret->n]);
		ret->n++;
	}
	PQclear(r);
}

/* CPU the backends of now used since then (a backend gone meanwhile is not counted). */
static double backends_cpu_since(const struct backends *then, const struct backends *now)
{
	double sum = 0;

	for (size_t i = 0; i < now->n; i++) {
		double before = 0;

		for (size_t j = 0; j < then->n; j++)
			if (then->pid[j] == now->pid[i])
				before = then->cpu[j];
		sum += now->cpu[i] - before;
	}
	return sum;
}

/* --- the data set ---------------------------------------------------------------------- */

static void make_counties(struct bench *b)
{
	long per = b->schools / (long)b->ncounties, extra = b->schools % (long)b->ncounties;
	char err[256];

	b->counties = xcalloc(b->ncounties, sizeof(*b->counties));
	for (size_t c = 0; c < b->ncounties; c++) {
		struct county *k = &b->counties[c];

		snprintf(k->id, sizeof(k->id), "65%04u", (unsigned)((c + 1) % 10000));
		snprintf(k->name, sizeof(k->name), "县%zu", c + 1);
		if (jwk_generate(&k->key, k->id, err, sizeof(err)) < 0)
			bench_fail(NAME, err);
		k->nschools = (size_t)(per + ((long)c < extra));
		k->schools = xcalloc(k->nschools, sizeof(*k->schools));
		for (size_t s = 0; s < k->nschools; s++) {
			snprintf(k->schools[s].id, sizeof(k->schools[s].id), "%.6s%04u", k->id,
			         (unsigned)((s + 1) % 10000));
			if (jwk_generate(&k->schools[s].key, k->schools[s].id, err, sizeof(err)) <
			    0)
				bench_fail(NAME, err);
		}
	}
}

static void register_counties(struct bench *b, const char *dsn, int with_token)
{
	struct buf sql;
	char *pub = NULL, hash[IDS_SHA256_HEX_LEN + 1];

	buf_init(&sql, 64u << 20);
	if (buf_puts(&sql, "INSERT INTO counties (county_id, name, hub_key) VALUES ") < 0)
		bench_fail(NAME, "out of memory");
	for (size_t c = 0; c < b->ncounties; c++) {
		struct jwk k = b->counties[c].key;

		k.has_private = 0;
		if (jwk_serialize(&k, 0, &pub) < 0 ||
		    buf_printf(&sql, "%s('%s', '%s', '%s')", c ? ", " : "", b->counties[c].id,
		               b->counties[c].name, pub) < 0)
			bench_fail(NAME, "out of memory");
		jwk_text_free(pub);
		pub = NULL;
	}
	exec_sql(dsn, sql.data);
	if (with_token) {
		ids_sha256_hex(TOKEN, strlen(TOKEN), hash);
		buf_reset(&sql);
		if (buf_printf(&sql,
		               "INSERT INTO tokens (name, role, secret_sha256) VALUES "
		               "('bench', 'region-inspector', '%s')",
		               hash) < 0)
			bench_fail(NAME, "out of memory");
		exec_sql(dsn, sql.data);
	}
	buf_release(&sql);
}

static int form_version(const struct bench *b, const char *form)
{
	const struct form *f = form_set_find(b->forms, form);

	if (!f)
		bench_fail(NAME, form);
	return f->version;
}

/* One signed return with its receipt. data is consumed. */
static void make_return(struct bench *b, const struct county *c, const struct school *s,
                        const char *form, const char *period, cJSON *data, int64_t created_ms,
                        int64_t received_ms, int on_time, struct item *it)
{
	cJSON *p = cJSON_CreateObject(), *r = cJSON_CreateObject();
	char *text;

	memset(it, 0, sizeof(*it));
	if (ids_uuid7(&b->clock, it->id) < 0)
		bench_fail(NAME, "uuid");
	snprintf(it->school, sizeof(it->school), "%s", s->id);
	snprintf(it->form, sizeof(it->form), "%s", form);
	snprintf(it->period, sizeof(it->period), "%s", period);
	datetime_format_rfc3339(created_ms, OFFSET_MIN, it->created);
	datetime_format_rfc3339(received_ms, OFFSET_MIN, it->received);
	it->received_ms = received_ms;
	it->on_time = on_time;
	if (!p || !r || !cJSON_AddStringToObject(p, "form", form) ||
	    !cJSON_AddNumberToObject(p, "form_version", form_version(b, form)) ||
	    !cJSON_AddStringToObject(p, "submission_id", it->id) ||
	    !cJSON_AddStringToObject(p, "school_id", s->id) ||
	    !cJSON_AddStringToObject(p, "county_id", c->id) ||
	    !cJSON_AddStringToObject(p, "period", period) ||
	    !cJSON_AddStringToObject(p, "created_at", it->created) ||
	    !cJSON_AddNullToObject(p, "supersedes") || !cJSON_AddItemToObject(p, "data", data))
		bench_fail(NAME, "out of memory");
	it->payload = cJSON_PrintUnformatted(p);
	if (!it->payload)
		bench_fail(NAME, "out of memory");
	sign_text(&s->key, s->id, it->payload, &it->jws);
	ids_sha256_hex(it->payload, strlen(it->payload), it->sha);
	if (!cJSON_AddStringToObject(r, "type", "receipt") ||
	    !cJSON_AddStringToObject(r, "submission_id", it->id) ||
	    !cJSON_AddStringToObject(r, "school_id", s->id) ||
	    !cJSON_AddStringToObject(r, "county_id", c->id) ||
	    !cJSON_AddStringToObject(r, "form", form) ||
	    !cJSON_AddStringToObject(r, "period", period) ||
	    !cJSON_AddStringToObject(r, "sha256", it->sha) ||
	    !cJSON_AddStringToObject(r, "received_at", it->received) ||
	    !(on_time < 0 ? cJSON_AddNullToObject(r, "on_time")
	                  : cJSON_AddBoolToObject(r, "on_time", on_time)))
		bench_fail(NAME, "out of memory");
	text = cJSON_PrintUnformatted(r);
	if (!text)
		bench_fail(NAME, "out of memory");
	sign_text(&c->key, c->id, text, &it->receipt);
	free(text);
	cJSON_Delete(p);
	cJSON_Delete(r);
}

static void item_release(struct item *it)
{
	free(it->payload);
	free(it->jws);
	free(it->receipt);
	free(it->rollup_text);
	free(it->missing_text);
	free(it->listed_rows);
	memset(it, 0, sizeof(*it));
}

static cJSON *json_dup(const cJSON *t)
{
	cJSON *d = cJSON_Duplicate(t, 1);

	if (!d)
		bench_fail(NAME, "out of memory");
	return d;
}

static void set_num(cJSON *o, const char *name, double v)
{
	cJSON_ReplaceItemInObjectCaseSensitive(o, name, cJSON_CreateNumber(v));
}

static void set_str(cJSON *o, const char *name, const char *v)
{
	cJSON_ReplaceItemInObjectCaseSensitive(o, name, cJSON_CreateString(v));
}

static void date_text(int y, int m, int d, char out[11])
{
	snprintf(out, 11, "%04d-%02d-%02d", y, m, d);
}

/* A county's year: every school's returns, in the order a hub would receive them
 * roughly (school by school here: the order does not matter to the region). */
static struct item *make_year(struct bench *b, const struct county *c, size_t *ret_n)
{
	size_t cap = c->nschools * 20 + 8, n = 0;
	struct item *items = xcalloc(cap, sizeof(*items));
	static const char *const phases[3] = {"2024-P1", "2024-P2", "2024-P3"};
	static const int phase_end[3][2] = {{4, 30}, {9, 30}, {11, 30}};
	static const int month_days[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	for (size_t i = 0; i < c->nschools; i++) {
		const struct school *s = &c->schools[i];
		unsigned h = (unsigned)(i * 2654435761u);
		int64_t spread = (int64_t)i * SCHOOL_SPREAD_MS; /* one school after the other */
		cJSON *d;
		char day[11], period[16];

		/* screening, 2024-P1 */
		d = json_dup(b->tpl.screening);
		set_num(d, "students_enrolled", 200 + h % 1800);
		set_num(d, "students_screened", 200 + h % 1800 - h % 7);
		cJSON_ReplaceItemInObjectCaseSensitive(d, "committee_established",
		                                       cJSON_CreateBool(h % 13 != 0));
		make_return(b, c, s, "screening", "2024-P1", d,
		            at(2024, 4, 20 + (int)(h % 10), 9, 0) + spread,
		            at(2024, 4, 20 + (int)(h % 10), 9, 5) + spread, 1, &items[n++]);
		/* summaries; one in ten late */
		for (int p = 0; p < 3; p++) {
			int late = (h >> p) % 10 == 0;
			int64_t when = at(2024, phase_end[p][0], phase_end[p][1] - 3, 10, 0) +
			               (late ? 5 * 86400000LL : 0) + spread;

			d = json_dup(b->tpl.summary);
			set_num(d, "training_sessions", (double)(h % 9));
			make_return(b, c, s, "summary", phases[p], d, when, when + 60000, !late,
			            &items[n++]);
		}
		/* the ledgers, month by month: the second item runs late in some months */
		for (int m = 3; m <= 11; m++) {
			cJSON *it;

			d = json_dup(b->tpl.rectification);
			date_text(2024, m, month_days[m], day);
			set_str(d, "as_of", day);
			it = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(d, "items"), 1);
			date_text(2024, m, 10 + (int)(h % 15), day);
			set_str(it, "deadline", day);
			date_text(2024, m, 1, day);
			set_str(it, "found_on", day);
			/* most items are done by the month's end; one ledger in ten runs late */
			if ((h + (unsigned)m) % 10 != 0) {
				set_str(it, "status", "done");
				date_text(2024, m, 10 + (int)(h % 15), day);
				set_str(it, "completed_on", day);
			}
			snprintf(period, sizeof(period), "2024-%02d", m);
			make_return(b, c, s, "rectification", period, d,
			            at(2024, m + 1, 2, 9, 0) + spread,
			            at(2024, m + 1, 2, 9, 1) + spread, 1, &items[n++]);
		}
		/* incidents for a third of the schools, one or two each, one in fifty of level 3 */
		for (unsigned k = 0; i % 3 == 0 && k < 1 + h % 2; k++) {
			int m = 3 + (int)((h + k * 5) % 9), dd = 1 + (int)((h + k * 7) % 27);
			int level3 = (h / 7 + k) % 50 == 0;

			d = json_dup(level3 ? b->tpl.level3 : b->tpl.incident);
			date_text(2024, m, dd, day);
			set_str(d, "occurred_on", day);
			set_str(d, "discovered_on", day);
			set_str(d, "reported_on", day);
			if (level3) {
				date_text(2024, m, dd + 1, day);
				set_str(d, "closed_on", day);
			} else {
				set_num(d, "level", 1 + (h + k) % 2);
			}
			snprintf(period, sizeof(period), "2024-%02d", m);
			make_return(b, c, s, "incident", period, d, at(2024, m, dd, 18, 0) + spread,
			            at(2024, m, dd, 18, 10) + spread, 1, &items[n++]);
		}
	}
	*ret_n = n;
	return items;
}

/* --- roll-ups, as a hub sends them ------------------------------------------------- */

struct ref {
	const struct item *it;
	size_t pos; /* in the county's stream */
};

/* By form, period, then the time the hub received it. */
static int compare_ref(const void *a, const void *b)
{
	const struct ref *x = a, *y = b;
	int c = strcmp(x->it->form, y->it->form);

	if (c == 0)
		c = strcmp(x->it->period, y->it->period);
	if (c == 0)
		c = (x->it->received_ms > y->it->received_ms) -
		    (x->it->received_ms < y->it->received_ms);
	if (c == 0)
		c = (x->pos > y->pos) - (x->pos < y->pos);
	return c;
}

/* A roll-up's place in the stream: after the last return it lists. */
struct placed {
	struct item it;
	size_t after;
	size_t order;
};

static int compare_placed(const void *a, const void *b)
{
	const struct placed *x = a, *y = b;

	if (x->after != y->after)
		return (x->after > y->after) - (x->after < y->after);
	return (x->order > y->order) - (x->order < y->order);
}

static const struct rollup_plan *plan_of(const struct bench *b, const char *form)
{
	for (size_t i = 0; i < b->forms->count; i++)
		if (strcmp(b->forms->forms[i].id, form) == 0)
			return b->plans[i];
	bench_fail(NAME, form);
	return NULL;
}

/* The roll-up of refs[0, n) (one (form, period), by receive time) as county c's hub
 * computes it 5 s after the last of them (county-hub/src/report.c), signed. *roll holds
 * those returns' data. */
static void make_rollup(const struct county *c, const struct ref *refs, size_t n,
                        const struct rollup *roll, const unsigned char *seen, int expected,
                        long long on_time, struct item *it)
{
	cJSON *p = cJSON_CreateObject(), *list, *missing, *obj = NULL, *o;
	struct buf rows, arr;

	memset(it, 0, sizeof(*it));
	it->rollup = 1;
	snprintf(it->form, sizeof(it->form), "%s", refs[0].it->form);
	snprintf(it->period, sizeof(it->period), "%s", refs[0].it->period);
	datetime_format_rfc3339(refs[n - 1].it->received_ms + 5000, OFFSET_MIN, it->created);
	it->expected = expected ? (long long)c->nschools : -1;
	it->received_n = (long long)n;
	it->on_time_n = on_time;
	if (rollup_to_json(roll, &obj) < 0)
		bench_fail(NAME, "out of memory");
	it->rollup_text = cJSON_PrintUnformatted(obj);
	if (!p || !it->rollup_text || !cJSON_AddStringToObject(p, "type", "rollup") ||
	    !cJSON_AddStringToObject(p, "county_id", c->id) ||
	    !cJSON_AddStringToObject(p, "form", it->form) ||
	    !cJSON_AddStringToObject(p, "period", it->period) ||
	    !cJSON_AddStringToObject(p, "status", "provisional") ||
	    !cJSON_AddStringToObject(p, "computed_at", it->created) ||
	    !(expected ? cJSON_AddNumberToObject(p, "expected", (double)c->nschools)
	               : cJSON_AddNullToObject(p, "expected")) ||
	    !cJSON_AddNumberToObject(p, "received", (double)n) ||
	    !cJSON_AddNumberToObject(p, "on_time", (double)on_time))
		bench_fail(NAME, "out of memory");
	cJSON_AddItemToObject(p, "rollup", obj);
	buf_init(&rows, 64u << 20);
	buf_init(&arr, 1u << 20);
	if (!(list = cJSON_AddArrayToObject(p, "submissions")) ||
	    !(missing = cJSON_AddArrayToObject(p, "missing")) || buf_putc(&arr, '{') < 0)
		bench_fail(NAME, "out of memory");
	for (size_t i = 0; i < n; i++) {
		o = cJSON_CreateObject();
		cJSON_AddItemToArray(list, o);
		if (!o || !cJSON_AddStringToObject(o, "submission_id", refs[i].it->id) ||
		    !cJSON_AddStringToObject(o, "sha256", refs[i].it->sha) ||
		    buf_printf(&rows, "%s\t%s\n", refs[i].it->id, refs[i].it->sha) < 0)
			bench_fail(NAME, "out of memory");
	}
	for (size_t s = 0; expected && s < c->nschools; s++) {
		if (seen[s])
			continue;
		if (!cJSON_AddItemToArray(missing, cJSON_CreateString(c->schools[s].id)) ||
		    buf_printf(&arr, "%s%s", arr.len > 1 ? "," : "", c->schools[s].id) < 0)
			bench_fail(NAME, "out of memory");
	}
	if (buf_putc(&arr, '}') < 0)
		bench_fail(NAME, "out of memory");
	it->payload = cJSON_PrintUnformatted(p);
	if (!it->payload)
		bench_fail(NAME, "out of memory");
	sign_text(&c->key, c->id, it->payload, &it->jws);
	it->listed_rows = rows.data ? strdup(rows.data) : strdup("");
	it->missing_text = strdup(arr.data);
	if (!it->listed_rows || !it->missing_text)
		bench_fail(NAME, "out of memory");
	buf_release(&rows);
	buf_release(&arr);
	cJSON_Delete(p);
}

/* County c's returns items[0, n) with, after them, the roll-ups its hub forwards: for each
 * (form, period), one after every b->rollup_every returns in receive order and one after
 * the last, each placed in the stream after the last return it lists. items is consumed;
 * the stream is returned, *ret_n items long, and *ret_rollups of them are roll-ups. */
static struct item *add_rollups(struct bench *b, const struct county *c, struct item *items,
                                size_t n, size_t *ret_n, size_t *ret_rollups)
{
	struct ref *refs = xcalloc(n, sizeof(*refs));
	struct placed *placed = xcalloc(n, sizeof(*placed));
	unsigned char *seen = xcalloc(c->nschools, 1);
	struct item *out;
	size_t np = 0, k = 0, j = 0;

	for (size_t i = 0; i < n; i++)
		refs[i] = (struct ref){.it = &items[i], .pos = i};
	qsort(refs, n, sizeof(*refs), compare_ref);
	for (size_t g = 0; g < n; g = k) {
		enum calendar_period_type type;
		struct rollup roll;
		int64_t deadline = 0;
		int expected, has_deadline;
		long long on_time = 0;
		size_t after = 0;

		for (k = g; k < n && strcmp(refs[k].it->form, refs[g].it->form) == 0 &&
		            strcmp(refs[k].it->period, refs[g].it->period) == 0;
		     k++)
			;
		if (calendar_period_type(b->calendar, refs[g].it->form, &type) < 0 ||
		    rollup_init(&roll, plan_of(b, refs[g].it->form)) < 0)
			bench_fail(NAME, "a form without a calendar or a plan");
		expected = type != CALENDAR_PERIOD_EVENT &&
		           calendar_period_required(b->calendar, refs[g].it->form,
		                                    refs[g].it->period) > 0;
		has_deadline = type != CALENDAR_PERIOD_EVENT &&
		               calendar_deadline_ms(b->calendar, refs[g].it->form,
		                                    refs[g].it->period, &deadline) == 0;
		memset(seen, 0, c->nschools);
		for (size_t i = g; i < k; i++) {
			const struct item *it = refs[i].it;
			cJSON *payload = cJSON_Parse(it->payload);
			size_t school = strtoul(it->school + 6, NULL, 10) - 1;

			if (!payload ||
			    rollup_add(&roll, cJSON_GetObjectItemCaseSensitive(payload, "data")) <
			            0 ||
			    school >= c->nschools)
				bench_fail(NAME, "a generated return does not fit its roll-up");
			cJSON_Delete(payload);
			seen[school] = 1;
			on_time += type == CALENDAR_PERIOD_EVENT
			                   ? it->on_time == 1
			                   : has_deadline && it->received_ms < deadline;
			after = refs[i].pos > after ? refs[i].pos : after;
			if ((i - g + 1) % (size_t)b->rollup_every == 0 || i + 1 == k) {
				make_rollup(c, &refs[g], i - g + 1, &roll, seen, expected, on_time,
				            &placed[np].it);
				placed[np].after = after;
				placed[np].order = np;
				np++;
			}
		}
		rollup_release(&roll);
	}
	qsort(placed, np, sizeof(*placed), compare_placed);
	out = xcalloc(n + np, sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		out[i + j] = items[i];
		for (; j < np && placed[j].after == i; j++)
			out[i + j + 1] = placed[j].it;
	}
	free(items);
	free(refs);
	free(placed);
	free(seen);
	*ret_n = n + np;
	*ret_rollups = np;
	return out;
}

static char *make_roster(const struct county *c)
{
	cJSON *p = cJSON_CreateObject(), *schools;
	char *text, *jws, *pub = NULL;

	if (!p || !cJSON_AddStringToObject(p, "type", "roster") ||
	    !cJSON_AddStringToObject(p, "county_id", c->id) ||
	    !cJSON_AddNumberToObject(p, "version", 1) ||
	    !cJSON_AddStringToObject(p, "issued_at", "2024-03-01T08:00:00+08:00") ||
	    !(schools = cJSON_AddArrayToObject(p, "schools")))
		bench_fail(NAME, "out of memory");
	for (size_t i = 0; i < c->nschools; i++) {
		cJSON *o = cJSON_CreateObject();
		struct jwk k = c->schools[i].key;
		char name[64];

		k.has_private = 0;
		snprintf(name, sizeof(name), "%s第%zu学校", c->name, i + 1);
		if (!o || jwk_serialize(&k, 0, &pub) < 0)
			bench_fail(NAME, "out of memory");
		cJSON_AddItemToArray(schools, o);
		if (!cJSON_AddStringToObject(o, "school_id", c->schools[i].id) ||
		    !cJSON_AddStringToObject(o, "name", name) ||
		    !cJSON_AddStringToObject(o, "type", "primary") ||
		    !cJSON_AddNullToObject(o, "opened") || !cJSON_AddNullToObject(o, "closed") ||
		    !cJSON_AddItemToObject(o, "key", cJSON_Parse(pub)))
			bench_fail(NAME, "out of memory");
		jwk_text_free(pub);
		pub = NULL;
	}
	text = cJSON_PrintUnformatted(p);
	if (!text)
		bench_fail(NAME, "out of memory");
	sign_text(&c->key, c->id, text, &jws);
	free(text);
	cJSON_Delete(p);
	return jws;
}

/* The gzipped, county-signed batch of items[from, to) (and the roster first, if any). */
static void make_batch(const struct county *c, const char *roster, const struct item *items,
                       size_t from, size_t to, struct gzip_compressor *gz, struct buf *out)
{
	cJSON *p = cJSON_CreateObject(), *list, *o;
	char id[IDS_UUID_LEN + 1], *text, *jws;
	struct clock real;
	char err[64];

	if (clock_init(&real, NULL, err, sizeof(err)) < 0 || ids_uuid7(&real, id) < 0)
		bench_fail(NAME, "uuid");
	if (!p || !cJSON_AddStringToObject(p, "type", "batch") ||
	    !cJSON_AddStringToObject(p, "county_id", c->id) ||
	    !cJSON_AddStringToObject(p, "batch_id", id) ||
	    !cJSON_AddStringToObject(p, "sent_at", "2024-12-01T10:00:00+08:00") ||
	    !(list = cJSON_AddArrayToObject(p, "items")))
		bench_fail(NAME, "out of memory");
	if (roster) {
		o = cJSON_CreateObject();
		cJSON_AddItemToArray(list, o);
		if (!cJSON_AddStringToObject(o, "kind", "roster") ||
		    !cJSON_AddStringToObject(o, "jws", roster))
			bench_fail(NAME, "out of memory");
	}
	for (size_t i = from; i < to; i++) {
		o = cJSON_CreateObject();
		cJSON_AddItemToArray(list, o);
		if (!cJSON_AddStringToObject(o, "kind",
		                             items[i].rollup ? "rollup" : "submission") ||
		    !cJSON_AddStringToObject(o, "jws", items[i].jws) ||
		    (!items[i].rollup && !cJSON_AddStringToObject(o, "receipt", items[i].receipt)))
			bench_fail(NAME, "out of memory");
	}
	text = cJSON_PrintUnformatted(p);
	if (!text)
		bench_fail(NAME, "out of memory");
	sign_text(&c->key, c->id, text, &jws);
	buf_reset(out);
	if (gzip_compress(gz, jws, strlen(jws), out) < 0)
		bench_fail(NAME, "gzip");
	free(jws);
	free(text);
	cJSON_Delete(p);
}

/* --- the baselines --------------------------------------------------------------------- */

static double verify_all(const struct county *c, const struct item *items, size_t n)
{
	double t0 = bench_now_seconds();
	char err[256];

	for (size_t i = 0; i < n; i++) {
		/* the roster lookup a tier makes, by the school's number within its county */
		size_t k = strtoul(items[i].school + 6, NULL, 10) - 1;
		const struct school *s = k < c->nschools ? &c->schools[k] : NULL;
		struct jws j;

		if (items[i].rollup)
			continue;
		jws_init(&j);
		if (!s ||
		    jws_parse(&j, items[i].jws, strlen(items[i].jws), 0, err, sizeof(err)) < 0 ||
		    jws_verify(&j, &s->key, err, sizeof(err)) < 0)
			bench_fail(NAME, "a generated return does not verify");
		jws_release(&j);
	}
	return bench_now_seconds() - t0;
}

static void copy_field(struct buf *out, const char *s, int last)
{
	int r = 0;

	for (; *s && r == 0; s++)
		r = *s == '\\'   ? buf_puts(out, "\\\\")
		    : *s == '\n' ? buf_puts(out, "\\n")
		    : *s == '\r' ? buf_puts(out, "\\r")
		    : *s == '\t' ? buf_puts(out, "\\t")
		                 : buf_putc(out, *s);
	if (r < 0 || buf_putc(out, last ? '\n' : '\t') < 0)
		bench_fail(NAME, "out of memory");
}

/* Sends rows with COPY; the seconds it took. */
static double copy_rows(PGconn *conn, const char *sql, const struct buf *rows)
{
	double t0 = bench_now_seconds();
	PGresult *r = PQexec(conn, sql);

	if (PQresultStatus(r) != PGRES_COPY_IN)
		bench_fail(NAME, PQresultErrorMessage(r));
	PQclear(r);
	if (PQputCopyData(conn, rows->data ? rows->data : "", (int)rows->len) != 1 ||
	    PQputCopyEnd(conn, NULL) != 1)
		bench_fail(NAME, PQerrorMessage(conn));
	while ((r = PQgetResult(conn)) != NULL) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			bench_fail(NAME, PQresultErrorMessage(r));
		PQclear(r);
	}
	return bench_now_seconds() - t0;
}

static void copy_number(struct buf *out, long long v, int last)
{
	if ((v < 0 ? buf_puts(out, "\\N") : buf_printf(out, "%lld", v)) < 0 ||
	    buf_putc(out, last ? '\n' : '\t') < 0)
		bench_fail(NAME, "out of memory");
}

/* The returns of items[0, n) into submissions, then its roll-ups into rollups and
 * rollup_submissions, as the ingest stores them (ids given here). */
static double copy_all(struct bench *b, PGconn *conn, const struct county *c,
                       const struct item *items, size_t n)
{
	struct buf rows, rollups, listed;
	double seconds;
	char version[8];

	buf_init(&rows, 1u << 30);
	buf_init(&rollups, 1u << 30);
	buf_init(&listed, 1u << 30);
	for (size_t i = 0; i < n; i++) {
		const struct item *it = &items[i];

		if (it->rollup) {
			long long id = ++b->copy_rollup_id;

			copy_number(&rollups, id, 0);
			copy_field(&rollups, c->id, 0);
			copy_field(&rollups, it->form, 0);
			copy_field(&rollups, it->period, 0);
			copy_field(&rollups, "provisional", 0);
			copy_field(&rollups, it->created, 0);
			copy_number(&rollups, it->expected, 0);
			copy_number(&rollups, it->received_n, 0);
			copy_number(&rollups, it->on_time_n, 0);
			copy_field(&rollups, it->rollup_text, 0);
			copy_field(&rollups, it->missing_text, 0);
			copy_field(&rollups, it->payload, 0);
			copy_field(&rollups, it->jws, 0);
			copy_field(&rollups, "t", 0);
			copy_field(&rollups, "2024-12-01T10:00:00+08:00", 1);
			for (const char *l = it->listed_rows; *l;) {
				const char *end = strchr(l, '\n');

				if (buf_printf(&listed, "%lld\t%s\t%.*s\n", id, c->id,
				               (int)(end - l), l) < 0)
					bench_fail(NAME, "out of memory");
				l = end + 1;
			}
			continue;
		}
		snprintf(version, sizeof(version), "%d", 1);
		copy_field(&rows, it->id, 0);
		copy_field(&rows, c->id, 0);
		copy_field(&rows, it->school, 0);
		copy_field(&rows, it->form, 0);
		copy_field(&rows, version, 0);
		copy_field(&rows, it->period, 0);
		copy_field(&rows, it->payload, 0);
		copy_field(&rows, it->jws, 0);
		copy_field(&rows, it->sha, 0);
		copy_field(&rows, it->receipt, 0);
		copy_field(&rows, "t", 0);
		copy_field(&rows, it->created, 0);
		copy_field(&rows, it->received, 0);
		copy_field(&rows, "2024-12-01T10:00:00+08:00", 0);
		copy_field(&rows, it->on_time < 0 ? "\\N" : it->on_time ? "t" : "f", 0);
		if (buf_puts(&rows, "\\N\t") < 0)
			bench_fail(NAME, "out of memory");
		copy_field(&rows, "t", 0);
		copy_field(&rows, "1", 0);
		if (buf_puts(&rows, "\\N\n") < 0)
			bench_fail(NAME, "out of memory");
	}
	seconds = copy_rows(conn,
	                    "COPY submissions (submission_id, county_id, school_id, form,"
	                    " form_version, period, payload, jws, payload_sha256, receipt_jws,"
	                    " receipt_verified, created_at, hub_received_at, region_received_at,"
	                    " on_time, supersedes, signature_verified, roster_version, batch_id)"
	                    " FROM STDIN",
	                    &rows);
	if (rollups.len > 0) {
		/* COPY writes the identity column as given */
		seconds += copy_rows(conn,
		                     "COPY rollups (rollup_id, county_id, form, period, status,"
		                     " computed_at, expected, received, on_time, rollup, missing,"
		                     " payload, jws, signature_verified, region_received_at)"
		                     " FROM STDIN",
		                     &rollups);
		seconds += copy_rows(conn,
		                     "COPY rollup_submissions (rollup_id, county_id, submission_id,"
		                     " sha256) FROM STDIN",
		                     &listed);
	}
	buf_release(&rows);
	buf_release(&rollups);
	buf_release(&listed);
	return seconds;
}

/* --- HTTP --------------------------------------------------------------------------- */

static size_t on_data(char *data, size_t size, size_t n, void *userdata)
{
	(void)size;
	return buf_append(userdata, data, n) < 0 ? 0 : n;
}

/* POSTs a batch; the status, the answer in *answer. */
static long post(CURL *curl, const char *url, const struct buf *body, struct buf *answer)
{
	struct curl_slist *h = NULL;
	long status = 0;

	h = curl_slist_append(h, "Content-Type: application/jose+json");
	h = curl_slist_append(h, "Content-Encoding: gzip");
	h = curl_slist_append(h, "Expect:");
	buf_reset(answer);
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body->data);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, answer);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 600L);
	if (curl_easy_perform(curl) == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	return status;
}

static long get(CURL *curl, const char *url, struct buf *answer)
{
	struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer " TOKEN);
	long status = 0;

	buf_reset(answer);
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, answer);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 600L);
	if (curl_easy_perform(curl) == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	return status;
}

/* Counts the statuses of an ingest answer. */
static void tally(const struct buf *answer, size_t *stored, size_t *other)
{
	cJSON *doc = cJSON_ParseWithLength(answer->data, answer->len), *r;

	if (!doc)
		bench_fail(NAME, "the ingest answer is not JSON");
	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(doc, "results"))
	{
		const char *st =
		        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "status"));

		if (st && strcmp(st, "stored") == 0)
			(*stored)++;
		else
			(*other)++;
	}
	cJSON_Delete(doc);
}

/* One county's batches, sent in order over one connection, as its hub sends them; the
 * counties of a group are sent at once, one connection each. */
struct sender {
	struct bench *b;
	const struct county *county;
	struct item *items;
	size_t nitems, nreturns, nrollups;
	char *roster;
	struct buf *bodies;
	size_t nbodies;
	size_t stored, other;
	pthread_t thread;
};

static void *send_main(void *data)
{
	struct sender *s = data;
	CURL *curl = curl_easy_init();
	struct buf answer;
	char url[256];

	buf_init(&answer, 64u << 20);
	snprintf(url, sizeof(url), "%s/v1/ingest", s->b->url);
	for (size_t i = 0; i < s->nbodies; i++) {
		long status = post(curl, url, &s->bodies[i], &answer);

		if (status != 200) {
			fprintf(stderr, "%s: a batch was answered %ld: %.300s\n", NAME, status,
			        answer.data ? answer.data : "");
			exit(1);
		}
		tally(&answer, &s->stored, &s->other);
	}
	buf_release(&answer);
	curl_easy_cleanup(curl);
	return NULL;
}

/* --- accepted to visible, under load ------------------------------------------------ */

struct prober {
	struct bench *b;
	const struct county *c;
	struct item *items;
	size_t n, done;
	double visible_ms[PROBES_MAX];
	atomic_int stop;
	pthread_t thread;
};

static void *probe_main(void *data)
{
	struct prober *p = data;
	CURL *curl = curl_easy_init();
	struct gzip_compressor gz;
	struct buf body, answer;
	char url[256];

	buf_init(&body, 64u << 20);
	buf_init(&answer, 64u << 20);
	if (gzip_compressor_init(&gz, 6) < 0)
		bench_fail(NAME, "gzip");
	while (!atomic_load(&p->stop) && p->done < p->n) {
		struct item *it = &p->items[p->done];
		double accepted;

		make_batch(p->c, NULL, it, 0, 1, &gz, &body);
		snprintf(url, sizeof(url), "%s/v1/ingest", p->b->url);
		if (post(curl, url, &body, &answer) != 200)
			bench_fail(NAME, "a probe was refused");
		accepted = bench_now_seconds();
		snprintf(url, sizeof(url), "%s/v1/inspections/chain-of-custody?submission_id=%s",
		         p->b->url, it->id);
		for (;;) {
			if (get(curl, url, &answer) != 200)
				bench_fail(NAME, "chain-of-custody failed");
			if (strstr(answer.data, it->id) && strstr(answer.data, "\"rows\":[{"))
				break;
			if (bench_now_seconds() - accepted > 30)
				bench_fail(NAME, "a probe never became visible");
		}
		p->visible_ms[p->done++] = (bench_now_seconds() - accepted) * 1000;
		usleep(200000);
	}
	gzip_compressor_release(&gz);
	buf_release(&body);
	buf_release(&answer);
	curl_easy_cleanup(curl);
	return NULL;
}

/* --- the server ------------------------------------------------------------------------ */

static void start_server(struct bench *b)
{
	char listen[64], log[4300];
	CURL *curl = curl_easy_init();
	struct buf answer;
	int port = bench_free_port();

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(b->url, sizeof(b->url), "http://%s", listen);
	snprintf(log, sizeof(log), "%s/region.log", b->dir);
	b->server = fork();
	if (b->server < 0)
		bench_fail(NAME, "fork");
	if (b->server == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		setenv("RETURNS_CLOCK", "2024-12-01T10:00:00+08:00", 1);
		execl(b->server_bin, b->server_bin, "serve", "--db", b->dsn_ingest, "--listen",
		      listen, "--schemas-dir", b->schemas, "--no-migrate", (char *)NULL);
		_exit(127);
	}
	buf_init(&answer, 1 << 20);
	for (int i = 0; i < 600; i++) {
		char url[200];

		snprintf(url, sizeof(url), "%s/healthz", b->url);
		curl_easy_reset(curl);
		curl_easy_setopt(curl, CURLOPT_URL, url);
		curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
		if (curl_easy_perform(curl) == CURLE_OK)
			break;
		usleep(50000);
	}
	buf_release(&answer);
	curl_easy_cleanup(curl);
}

static void stop_server(struct bench *b)
{
	int status;

	if (b->server <= 0)
		return;
	kill(b->server, SIGTERM);
	waitpid(b->server, &status, 0);
	b->server = 0;
}

/* --- the queries -------------------------------------------------------------------- */

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double percentile(double *v, size_t n, double p)
{
	size_t k;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), compare_double);
	k = (size_t)(p * (double)(n - 1) + 0.5);
	return v[k < n ? k : n - 1];
}

static void measure_queries(struct bench *b, struct bench_report *report)
{
	const char *const queries[][2] = {
	        {"late-returns", "form=summary&period=2024-P2"},
	        {"late-returns", "form=rectification&period=2024-09"},
	        {"incidents", "from=2024-03-01&to=2024-11-30"},
	        {"level3", "from=2024-03-01&to=2024-11-30"},
	        {"overdue-rectification", "as_of=2024-11-30"},
	        {"follow-up", "year=2024"},
	        {"screening-coverage", "period=2024-P1"},
	        {"rollup-integrity", "form=summary&period=2024-P2"},
	        {"chain-of-custody", NULL},
	};
	CURL *curl = curl_easy_init();
	struct buf answer;
	double *ms = xcalloc((size_t)b->query_runs, sizeof(*ms));

	buf_init(&answer, 1u << 30);
	for (size_t q = 0; q < sizeof(queries) / sizeof(queries[0]); q++) {
		char url[512], name[160], rows_name[160];
		double p95, bytes = 0;

		if (queries[q][1])
			snprintf(url, sizeof(url), "%s/v1/inspections/%s?%s", b->url, queries[q][0],
			         queries[q][1]);
		else
			snprintf(url, sizeof(url), "%s/v1/inspections/%s?submission_id=%s", b->url,
			         queries[q][0], b->sample_id);
		for (long i = -2; i < b->query_runs; i++) { /* two warm-up calls */
			double t0 = bench_now_seconds();
			long status = get(curl, url, &answer);

			if (status != 200) {
				fprintf(stderr, "%s: %s answered %ld: %.300s\n", NAME, url, status,
				        answer.data ? answer.data : "");
				exit(1);
			}
			if (i >= 0)
				ms[i] = (bench_now_seconds() - t0) * 1000;
			bytes = (double)answer.len;
		}
		snprintf(name, sizeof(name), "%s %s p50", queries[q][0],
		         queries[q][1] ? queries[q][1] : "");
		bench_report_figure(report, name, percentile(ms, (size_t)b->query_runs, 0.5), "ms",
		                    NULL, 0, NULL, 0);
		p95 = percentile(ms, (size_t)b->query_runs, 0.95);
		snprintf(name, sizeof(name), "%s %s p95", queries[q][0],
		         queries[q][1] ? queries[q][1] : "");
		bench_report_figure(report, name, p95, "ms", NULL, 0, "<= 100 ms", p95 <= 100);
		snprintf(rows_name, sizeof(rows_name), "answer_bytes %s %s", queries[q][0],
		         queries[q][1] ? queries[q][1] : "");
		bench_report_detail(report, rows_name, bytes);
	}
	free(ms);
	buf_release(&answer);
	curl_easy_cleanup(curl);
}

/* --- the run ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	const char *results = argc > 1 ? argv[1] : "bench/results";
	struct bench b;
	struct bench_report report;
	struct prober probe;
	struct gzip_compressor gz;
	char cmd[8300], path[4300], err[512];
	PGconn *copy_conn;
	double ingest_rate, copy_rate, verify_rate, slower, vis95 = 0, vis_max = 0;
	double server_cpu, pg_cpu, cpu0;
	struct backends pg_before, pg_after;

	memset(&b, 0, sizeof(b));
	memset(&probe, 0, sizeof(probe));
	b.server_bin = bench_env_text("REGION_SERVER", "region-server/region-server");
	b.schemas = bench_env_text("BENCH_SCHEMAS", "schemas");
	b.pg_tmp = bench_env_text("PG_TMP", "scripts/pg-tmp");
	b.schools = bench_env_long("BENCH_REGION_SCHOOLS", 30000);
	b.ncounties = (size_t)bench_env_long("BENCH_REGION_COUNTIES", 100);
	b.connections = bench_env_long("BENCH_REGION_CONNECTIONS", 2);
	b.connections = b.connections > 64 ? 64 : b.connections;
	b.query_runs = bench_env_long("BENCH_REGION_QUERY_RUNS", 40);
	b.rollup_every = getenv("BENCH_REGION_ROLLUP_EVERY")
	                         ? strtol(getenv("BENCH_REGION_ROLLUP_EVERY"), NULL, 10)
	                         : ROLLUP_EVERY;
	if ((long)b.ncounties > b.schools)
		b.ncounties = (size_t)b.schools;
	if (b.ncounties > 9999 || b.schools / (long)b.ncounties >= 9999)
		bench_fail(NAME, "at most 9999 counties of at most 9998 schools each");
	if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		bench_fail(NAME, "cannot start libsodium or libcurl");
	if (clock_init(&b.clock, "2024-12-01T10:00:00+08:00", err, sizeof(err)) < 0)
		bench_fail(NAME, err);
	snprintf(path, sizeof(path), "%s/forms", b.schemas);
	if (form_set_load_dir(path, &b.forms, err, sizeof(err)) < 0)
		bench_fail(NAME, err);
	snprintf(path, sizeof(path), "%s/campaigns", b.schemas);
	if (calendar_load_dir(path, &b.calendar, err, sizeof(err)) < 0)
		bench_fail(NAME, err);
	b.plans = xcalloc(b.forms->count, sizeof(*b.plans));
	for (size_t i = 0; i < b.forms->count; i++)
		if (rollup_plan_compile(schema_root(b.forms->forms[i].schema), err, sizeof(err),
		                        &b.plans[i]) < 0)
			bench_fail(NAME, err);
	snprintf(path, sizeof(path), "tests/data/returns/screening/good-forms-md-example.json");
	b.tpl.screening = load_json(path);
	b.tpl.summary = load_json("tests/data/returns/summary/good-forms-md-example.json");
	b.tpl.rectification =
	        load_json("tests/data/returns/rectification/good-mixed-statuses.json");
	b.tpl.incident = load_json("tests/data/returns/incident/good-forms-md-example.json");
	b.tpl.level3 = load_json("tests/data/returns/incident/good-closed-level3.json");
	/* two items: the first done long ago, the second the one that may run late */
	while (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(b.tpl.rectification, "items")) >
	       2)
		cJSON_DeleteItemFromArray(
		        cJSON_GetObjectItemCaseSensitive(b.tpl.rectification, "items"), 2);
	{
		cJSON *first = cJSON_GetArrayItem(
		        cJSON_GetObjectItemCaseSensitive(b.tpl.rectification, "items"), 0);

		set_str(first, "found_on", "2024-03-01");
		set_str(first, "deadline", "2024-03-20");
		set_str(first, "completed_on", "2024-03-15");
	}

	snprintf(b.dir, sizeof(b.dir), "%s/region-bench-XXXXXX",
	         bench_env_text("BENCH_TMPDIR", "/var/tmp"));
	if (!mkdtemp(b.dir))
		bench_fail(NAME, "cannot make the bench folder");
	snprintf(b.pg_dir, sizeof(b.pg_dir), "%s/pg", b.dir);
	printf("%s: starting PostgreSQL (%s) ...\n", NAME, b.pg_tmp);
	fflush(stdout);
	snprintf(cmd, sizeof(cmd), "'%s' start '%s'", b.pg_tmp, b.pg_dir);
	snprintf(b.conninfo, sizeof(b.conninfo), "%s", run_line(cmd));
	exec_sql(b.conninfo, "DROP DATABASE IF EXISTS bench_ingest");
	exec_sql(b.conninfo, "DROP DATABASE IF EXISTS bench_copy");
	exec_sql(b.conninfo, "CREATE DATABASE bench_ingest");
	exec_sql(b.conninfo, "CREATE DATABASE bench_copy");
	snprintf(b.dsn_ingest, sizeof(b.dsn_ingest), "%s dbname=bench_ingest", b.conninfo);
	snprintf(b.dsn_copy, sizeof(b.dsn_copy), "%s dbname=bench_copy", b.conninfo);
	snprintf(path, sizeof(path), "%s/migrate.log", b.dir);
	{
		const char *args1[] = {b.server_bin,    "migrate", "--db", b.dsn_ingest,
		                       "--schemas-dir", b.schemas, NULL};
		const char *args2[] = {b.server_bin,    "migrate", "--db", b.dsn_copy,
		                       "--schemas-dir", b.schemas, NULL};

		if (bench_run(args1, "2024-12-01T10:00:00+08:00", path) != 0 ||
		    bench_run(args2, "2024-12-01T10:00:00+08:00", path) != 0)
			bench_fail(NAME, "region-server migrate failed (see migrate.log)");
	}
	printf("%s: %ld schools in %zu counties: making keys ...\n", NAME, b.schools, b.ncounties);
	fflush(stdout);
	make_counties(&b);
	register_counties(&b, b.dsn_ingest, 1);
	register_counties(&b, b.dsn_copy, 0);
	copy_conn = PQconnectdb(b.dsn_copy);
	if (PQstatus(copy_conn) != CONNECTION_OK)
		bench_fail(NAME, PQerrorMessage(copy_conn));
	start_server(&b);
	server_cpu = cpu_seconds(b.server);
	backends_of(copy_conn, "bench_ingest", &pg_before);
	if (gzip_compressor_init(&gz, 6) < 0)
		bench_fail(NAME, "gzip");

	for (size_t g = 0; g < b.ncounties; g += (size_t)b.connections) {
		struct sender s[64];
		size_t group = b.ncounties - g < (size_t)b.connections ? b.ncounties - g
		                                                       : (size_t)b.connections;
		double t0;

		memset(s, 0, sizeof(s));
		for (size_t j = 0; j < group; j++) {
			const struct county *k = &b.counties[g + j];
			size_t n = 0, nb = 0;

			s[j].b = &b;
			s[j].county = k;
			s[j].roster = make_roster(k);
			s[j].items = make_year(&b, k, &n);
			s[j].nreturns = n;
			if (b.rollup_every > 0)
				s[j].items = add_rollups(&b, k, s[j].items, n, &n, &s[j].nrollups);
			s[j].nitems = n;
			if (g + j == 0) {
				snprintf(b.sample_id, sizeof(b.sample_id), "%s", s[j].items[0].id);
				/* the probes: more returns of the first county, sent alone later */
				probe.b = &b;
				probe.c = k;
				probe.items = make_year(&b, k, &probe.n);
				for (size_t i = PROBES_MAX; i < probe.n; i++)
					item_release(&probe.items[i]);
				if (probe.n > PROBES_MAX)
					probe.n = PROBES_MAX;
			}
			b.verify_s += verify_all(k, s[j].items, n);
			cpu0 = cpu_seconds(PQbackendPID(copy_conn));
			b.copy_s += copy_all(&b, copy_conn, k, s[j].items, n);
			b.copy_cpu_s += cpu_seconds(PQbackendPID(copy_conn)) - cpu0;
			/* the batches, the roster first in the first, at most BATCH_ITEMS items and
			 * about BATCH_BYTES of item texts each */
			s[j].bodies = xcalloc(n + 2, sizeof(*s[j].bodies));
			for (size_t from = 0; from < n || nb == 0; nb++) {
				size_t to = from, bytes = 0;

				while (to < n && to - from < BATCH_ITEMS - (nb == 0) &&
				       (to == from || bytes < BATCH_BYTES)) {
					bytes += strlen(s[j].items[to].jws) +
					         (s[j].items[to].receipt
					                  ? strlen(s[j].items[to].receipt)
					                  : 0);
					to++;
				}
				buf_init(&s[j].bodies[nb], 64u << 20);
				make_batch(k, nb == 0 ? s[j].roster : NULL, s[j].items, from, to,
				           &gz, &s[j].bodies[nb]);
				from = to;
			}
			s[j].nbodies = nb;
		}
		t0 = bench_now_seconds();
		for (size_t j = 0; j < group; j++)
			if (pthread_create(&s[j].thread, NULL, send_main, &s[j]) != 0)
				bench_fail(NAME, "thread");
		for (size_t j = 0; j < group; j++)
			pthread_join(s[j].thread, NULL);
		b.ingest_s += bench_now_seconds() - t0;
		for (size_t j = 0; j < group; j++) {
			b.stored += s[j].stored;
			b.not_stored += s[j].other;
			b.returns += s[j].nreturns;
			b.rollups += s[j].nrollups;
			for (size_t i = 0; i < s[j].nitems; i++)
				for (const char *l = s[j].items[i].listed_rows; l && *l; l++)
					b.listed += *l == '\n';
			b.items += s[j].nitems + 1;
			for (size_t i = 0; i < s[j].nbodies; i++)
				buf_release(&s[j].bodies[i]);
			free(s[j].bodies);
			for (size_t i = 0; i < s[j].nitems; i++)
				item_release(&s[j].items[i]);
			free(s[j].items);
			free(s[j].roster);
		}
		/* the probes run from the first group on, alongside the load */
		if (g == 0 && pthread_create(&probe.thread, NULL, probe_main, &probe) != 0)
			bench_fail(NAME, "thread");
		if ((g / (size_t)b.connections + 1) % 5 == 0 || g + group == b.ncounties) {
			printf("%s: %zu/%zu counties, %zu returns, %zu roll-ups: ingest %.0f/s, "
			       "COPY %.0f/s, verification %.0f/s\n",
			       NAME, g + group, b.ncounties, b.returns, b.rollups,
			       (double)b.items / b.ingest_s,
			       (double)(b.returns + b.rollups) / b.copy_s,
			       (double)b.returns / b.verify_s);
			fflush(stdout);
		}
	}
	atomic_store(&probe.stop, 1);
	if (probe.items)
		pthread_join(probe.thread, NULL);
	/* the CPU the ingest took (with the probes alongside), on both sides */
	server_cpu = cpu_seconds(b.server) - server_cpu;
	backends_of(copy_conn, "bench_ingest", &pg_after);
	pg_cpu = backends_cpu_since(&pg_before, &pg_after);
	printf("%s: CPU during the ingest: region-server %.1f s, PostgreSQL %.1f s (%.0f and %.0f "
	       "us "
	       "an item); the COPY's PostgreSQL %.1f s (%.0f us a row)\n",
	       NAME, server_cpu, pg_cpu, server_cpu * 1e6 / (double)b.items,
	       pg_cpu * 1e6 / (double)b.items, b.copy_cpu_s,
	       b.copy_cpu_s * 1e6 / (double)b.returns);
	if (probe.done > 0) {
		vis95 = percentile(probe.visible_ms, probe.done, 0.95);
		vis_max = probe.visible_ms[probe.done - 1];
	}
	printf("%s: querying ...\n", NAME);
	fflush(stdout);
	/* what autovacuum does on its own a little later: the queries are timed on the data
	 * set at rest, not on the dead rows the bulk load leaves */
	exec_sql(b.dsn_ingest, "VACUUM ANALYZE");
	ingest_rate = (double)b.items / b.ingest_s;
	copy_rate = (double)(b.returns + b.rollups) / b.copy_s;
	verify_rate = (double)b.returns / b.verify_s;
	slower = copy_rate < verify_rate ? copy_rate : verify_rate;

	bench_report_init(&report, NAME);
	bench_report_figure(&report, "region ingest (POST /v1/ingest)", ingest_rate, "items/s",
	                    copy_rate < verify_rate ? "COPY of the same rows"
	                                            : "bare signature verification",
	                    slower, "ratio >= 0.5", ingest_rate >= 0.5 * slower);
	bench_report_figure(&report, "COPY of the same rows", copy_rate, "rows/s", NULL, 0, NULL,
	                    0);
	bench_report_figure(&report, "bare signature verification", verify_rate, "returns/s", NULL,
	                    0, NULL, 0);
	bench_report_figure(&report, "accepted to visible p95, under load", vis95, "ms", NULL, 0,
	                    "<= 1000 ms", probe.done > 0 && vis95 <= 1000);
	measure_queries(&b, &report);
	bench_report_detail(&report, "schools", (double)b.schools);
	bench_report_detail(&report, "counties", (double)b.ncounties);
	bench_report_detail(&report, "returns", (double)b.returns);
	bench_report_detail(&report, "rollups", (double)b.rollups);
	bench_report_detail(&report, "rollup_every",
	                    (double)(b.rollup_every > 0 ? b.rollup_every : 0));
	bench_report_detail(&report, "rollup_listed_returns", (double)b.listed);
	bench_report_detail(&report, "items_ingested", (double)b.items);
	bench_report_detail(&report, "items_stored", (double)b.stored);
	bench_report_detail(&report, "items_not_stored", (double)b.not_stored);
	bench_report_detail(&report, "connections", (double)b.connections);
	bench_report_detail(&report, "ingest_seconds", b.ingest_s);
	bench_report_detail(&report, "copy_seconds", b.copy_s);
	bench_report_detail(&report, "ingest_server_cpu_seconds", server_cpu);
	bench_report_detail(&report, "ingest_postgres_cpu_seconds", pg_cpu);
	bench_report_detail(&report, "copy_postgres_cpu_seconds", b.copy_cpu_s);
	bench_report_detail(&report, "verify_seconds", b.verify_s);
	bench_report_detail(&report, "probes", (double)probe.done);
	bench_report_detail(&report, "accepted_to_visible_max_ms", vis_max);
	bench_report_detail(&report, "query_runs", (double)b.query_runs);
	printf("%s: %zu returns of %ld schools, %zu counties, %zu roll-ups listing %zu returns; "
	       "%zu "
	       "items stored, %zu not\n",
	       NAME, b.returns, b.schools, b.ncounties, b.rollups, b.listed, b.stored,
	       b.not_stored);
	bench_report_print(&report);

	stop_server(&b);
	PQfinish(copy_conn);
	gzip_compressor_release(&gz);
	if (getenv("BENCH_KEEP")) {
		printf("  kept: '%s' (PostgreSQL: %s)\n", b.dir, b.dsn_ingest);
	} else {
		snprintf(cmd, sizeof(cmd), "'%s' destroy '%s' >/dev/null", b.pg_tmp, b.pg_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "%s: pg-tmp destroy failed\n", NAME);
		bench_remove_tree(b.dir);
	}
	for (size_t i = 0; probe.items && i < probe.n; i++)
		item_release(&probe.items[i]);
	free(probe.items);
	for (size_t c = 0; c < b.ncounties; c++) {
		for (size_t s = 0; s < b.counties[c].nschools; s++)
			jwk_release(&b.counties[c].schools[s].key);
		free(b.counties[c].schools);
		jwk_release(&b.counties[c].key);
	}
	free(b.counties);
	cJSON_Delete(b.tpl.screening);
	cJSON_Delete(b.tpl.summary);
	cJSON_Delete(b.tpl.rectification);
	cJSON_Delete(b.tpl.incident);
	cJSON_Delete(b.tpl.level3);
	for (size_t i = 0; i < b.forms->count; i++)
		rollup_plan_free(b.plans[i]);
	free(b.plans);
	calendar_free(b.calendar);
	form_set_free(b.forms);
	curl_global_cleanup();
	return bench_report_write(&report, results);
}
