/* The ingest of county batches: see ingest.h. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <sodium.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/datetime.h"
#include "common/errlist.h"
#include "common/errmsg.h"
#include "common/form.h"
#include "common/gzip.h"
#include "common/http_server.h"
#include "common/ids.h"
#include "common/json.h"
#include "common/jwk.h"
#include "common/jws.h"
#include "common/log.h"
#include "common/rollup.h"
#include "common/submission.h"
#include "db.h"
#include "ingest.h"
#include "server.h"
#include "common/banned.h"

#define ITEM_DEPTH 32 /* nesting of a roster or roll-up payload */
#define BATCH_DEPTH 8 /* nesting of the batch payload */
#define RECEIPT_DEPTH 4
#define COPY_FLUSH (8u << 20) /* bytes of pending COPY rows that trigger a flush */
#define ITEMS_PER_THREAD 16   /* a thread is worth starting for this many items */
#define INT53 9007199254740992.0

/* The columns of submissions the ingest writes, in the order of its COPY rows. */
#define COLUMNS                                                                                    \
	"submission_id, county_id, school_id, form, form_version, period, payload, jws,"           \
	" payload_sha256, receipt_jws, receipt_verified, created_at, hub_received_at,"             \
	" region_received_at, on_time, supersedes, signature_verified, roster_version, batch_id"

/* The temporary table of the safe path (see flush()). */
const char ingest_session_sql[] =
        "CREATE TEMP TABLE IF NOT EXISTS ingest_rows ("
        " submission_id uuid NOT NULL, county_id text NOT NULL, school_id text NOT NULL,"
        " form text NOT NULL, form_version integer NOT NULL, period text NOT NULL,"
        " payload jsonb NOT NULL, jws text NOT NULL, payload_sha256 text NOT NULL,"
        " receipt_jws text NOT NULL, receipt_verified boolean NOT NULL,"
        " created_at timestamptz NOT NULL, hub_received_at timestamptz NOT NULL,"
        " region_received_at timestamptz NOT NULL, on_time boolean, supersedes uuid,"
        " signature_verified boolean NOT NULL, roster_version bigint, batch_id uuid)"
        " ON COMMIT DELETE ROWS";

static const char copy_direct_sql[] = "COPY submissions (" COLUMNS ") FROM STDIN";
static const char copy_safe_sql[] = "COPY ingest_rows (" COLUMNS ") FROM STDIN";
static const char insert_safe_sql[] =
        "INSERT INTO submissions (" COLUMNS ") SELECT " COLUMNS " FROM ingest_rows"
        " ON CONFLICT (submission_id) DO NOTHING RETURNING submission_id::text";

enum item_status {
	ITEM_PENDING, /* a return waiting for the flush */
	ITEM_STORED,
	ITEM_DUPLICATE,
	ITEM_REJECTED,
};

struct item_result {
	enum item_status status;
	char reason[INGEST_REASON_MAX];
};

/* A return ready to store: its COPY row (owned by its item_check) and what names it. */
struct pending {
	size_t index;
	const char *row;
	size_t len;
	char id[IDS_UUID_LEN + 1];
	char sha256[IDS_SHA256_HEX_LEN + 1];
	char school_id[16];
	char form[FORM_ID_MAX + 1];
	char period[16];
};

/* A roster's keys: the county's latest as committed, or those a roster item brings. */
struct keyset {
	long long version;              /* 0: no roster */
	struct ingest_school_key *keys; /* sorted by school_id */
	size_t nkeys;
};

enum item_kind {
	KIND_MALFORMED, /* refused before any check: no kind or jws, too large */
	KIND_SUBMISSION,
	KIND_ROSTER,
	KIND_ROLLUP,
};

/* What the check found of one item, for the store. */
struct item_check {
	enum item_kind kind;
	const char *text; /* the item's JWS, borrowed from the batch's payload */
	size_t len;
	const char *receipt; /* a submission's receipt, borrowed; NULL when there is none */
	int error;           /* a negative errno when the check could not finish */
	/* a refusal: why, and the integrity finding that records it (what it is about:
	 * NULL or owned strings; the evidence borrowed) */
	int refused;
	char reason[INGEST_REASON_MAX];
	const char *finding;
	char *form, *period, *school_id, *submission_id;
	const char *evidence;
	size_t evidence_len;
	/* a submission: the roster its signature was checked with, and its row (owned) */
	const struct keyset *keyset;
	struct pending row;
	/* a roster: its keys, its schools as jsonb rows; a roster or roll-up: its payload */
	struct keyset roster;
	char *rows_text;
	cJSON *payload;
	/* a roll-up: its JWS, the ids it lists as a uuid[] literal and their number */
	struct jws jws;
	struct buf ids;
	size_t count;
};

struct ingest_batch {
	const struct server *srv;
	struct db *db; /* the store's connection, during ingest_store() */
	char county[8];
	char batch_id[IDS_UUID_LEN + 1];
	char now[DATETIME_RFC3339_MAX]; /* the region's receive time of everything in it */
	struct jwk county_key;
	struct jws jws;       /* the county's JWS of the batch */
	cJSON *payload;       /* its payload: the items' texts are borrowed from it */
	struct keyset loaded; /* the county's latest roster, as committed before the check */
	struct item_check *checks;
	size_t nitems;
	/* the check's threads, which take the items in turn and mark each one done (under
	 * lock): the store waits for each item in order, not for the whole batch */
	pthread_t threads[INGEST_THREADS_MAX];
	size_t nthreads, started; /* meant to run (0: checked already), and running */
	atomic_size_t next;
	pthread_mutex_t lock;
	pthread_cond_t checked;
	unsigned char *done;
	int copying; /* a COPY into submissions is open (the store's fast path) */
	/* the store: the roster as the items so far leave it, what each item came to */
	const struct keyset *keyset;
	struct item_result *results;
	/* returns seen in this batch, for duplicates inside it, and their hash */
	struct pending *seen;
	size_t nseen;
	size_t *slots; /* index + 1 into seen, 0: empty */
	size_t nslots;
	/* the returns not yet flushed */
	int safe; /* flush through the temporary table (see flush()) */
	struct pending *pend;
	size_t npend, pend_bytes;
	cJSON *findings;
	size_t nfindings;
	char err[DB_ERR_MAX];
};

/* --- small helpers ------------------------------------------------------------------- */

static const char *member_string(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* An integer member within [min, max]: 0; 1 when it is null or absent and nullable;
 * -EINVAL otherwise. */
static int member_int(const cJSON *o, const char *name, long long min, long long max, int nullable,
                      long long *ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	double d;

	if ((!v || cJSON_IsNull(v)) && nullable)
		return 1;
	if (!cJSON_IsNumber(v))
		return -EINVAL;
	d = v->valuedouble;
	if (!(d >= (double)min && d <= (double)max) || d != floor(d) || fabs(d) >= INT53)
		return -EINVAL;
	*ret = (long long)d;
	return 0;
}

/* 1 when s is an instant PostgreSQL reads the same way: RFC 3339 with a year from 1900
 * and an offset within +-15:59. */
static int instant_valid(const char *s)
{
	int64_t ms;
	int offset;

	if (!s || datetime_parse_rfc3339(s, strlen(s), &ms, &offset) < 0)
		return 0;
	return strncmp(s, "1900", 4) >= 0 && offset > -16 * 60 && offset < 16 * 60;
}

static int date_valid(const char *s)
{
	struct date d;

	return s && datetime_parse_date(s, strlen(s), &d) == 0 && d.year >= 1900;
}

static int digits(const char *s, size_t n)
{
	if (!s || strlen(s) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

static int sha256_hex_valid(const char *s)
{
	if (!s || strlen(s) != IDS_SHA256_HEX_LEN)
		return 0;
	for (size_t i = 0; i < IDS_SHA256_HEX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static int uuid_valid(const char *s)
{
	return s && ids_uuid_check(s, strlen(s)) == 0;
}

/* A period id as the region's tables take it ("2024-05", "2024-P1"). */
static int period_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 7 || n > 8 || s[4] != '-')
		return 0;
	for (size_t i = 0; i < 4; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	if (s[5] == 'P')
		return s[6] >= '1' && s[6] <= '9' && (n == 7 || (s[7] >= '0' && s[7] <= '9'));
	return n == 7 && ((s[5] == '0' && s[6] >= '1' && s[6] <= '9') ||
	                  (s[5] == '1' && s[6] >= '0' && s[6] <= '2'));
}

static int compare_id(const void *a, const void *b)
{
	return strcmp(((const struct pending *)a)->id, ((const struct pending *)b)->id);
}

/* A reason is one line. */
static void one_line(char *s)
{
	for (char *p = s; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

/* Refuses checked item c: the reason, what the finding is about (each may be NULL) and
 * its evidence (borrowed, may be NULL). 0 or -ENOMEM. */
static int check_refuse(struct item_check *c, const char *finding, const char *form,
                        const char *period, const char *school_id, const char *submission_id,
                        const char *evidence, size_t evidence_len, const char *fmt, ...)
        PRINTF_LIKE(9, 10);
static int check_refuse(struct item_check *c, const char *finding, const char *form,
                        const char *period, const char *school_id, const char *submission_id,
                        const char *evidence, size_t evidence_len, const char *fmt, ...)
{
	va_list ap;

	c->refused = 1;
	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
	one_line(c->reason);
	c->finding = finding;
	c->evidence = evidence;
	c->evidence_len = evidence_len;
	if ((form && !(c->form = strdup(form))) || (period && !(c->period = strdup(period))) ||
	    (school_id && !(c->school_id = strdup(school_id))) ||
	    (submission_id && !(c->submission_id = strdup(submission_id))))
		return -ENOMEM;
	return 0;
}

/* Forgets what a check found of a submission, before it is checked again. */
static void check_clear(struct item_check *c)
{
	c->refused = 0;
	c->reason[0] = '\0';
	c->finding = NULL;
	free(c->form);
	free(c->period);
	free(c->school_id);
	free(c->submission_id);
	c->form = c->period = c->school_id = c->submission_id = NULL;
	c->evidence = NULL;
	c->evidence_len = 0;
	free((char *)c->row.row);
	memset(&c->row, 0, sizeof(c->row));
}

static void item_reject(struct ingest_batch *b, size_t i, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void item_reject(struct ingest_batch *b, size_t i, const char *fmt, ...)
{
	va_list ap;

	b->results[i].status = ITEM_REJECTED;
	va_start(ap, fmt);
	vsnprintf(b->results[i].reason, sizeof(b->results[i].reason), fmt, ap);
	va_end(ap);
	one_line(b->results[i].reason);
}

static int put_or_null(cJSON *o, const char *name, const char *value)
{
	return (value ? cJSON_AddStringToObject(o, name, value) : cJSON_AddNullToObject(o, name))
	               ? 0
	               : -ENOMEM;
}

/* Records an integrity finding (inserted with the others before COMMIT). evidence is the
 * offending text (may be NULL), cut at INGEST_EVIDENCE_MAX. */
static int finding(struct ingest_batch *b, const char *kind, const char *form, const char *period,
                   const char *school_id, const char *submission_id, const char *detail,
                   const char *evidence, size_t evidence_len)
{
	cJSON *o = cJSON_CreateObject();
	char *cut = NULL;
	int r = -ENOMEM;

	if (!o)
		return -ENOMEM;
	if (evidence && evidence_len > INGEST_EVIDENCE_MAX) {
		/* cut at a character boundary: the evidence column is text */
		size_t n = INGEST_EVIDENCE_MAX;

		while (n > 0 && ((unsigned char)evidence[n] & 0xc0) == 0x80)
			n--;
		evidence_len = n;
	}
	if (evidence) {
		cut = malloc(evidence_len + 1);
		if (!cut)
			goto out;
		memcpy(cut, evidence, evidence_len);
		cut[evidence_len] = '\0';
	}
	if (!cJSON_AddStringToObject(o, "kind", kind) || put_or_null(o, "form", form) < 0 ||
	    put_or_null(o, "period", period) < 0 || put_or_null(o, "school_id", school_id) < 0 ||
	    put_or_null(o, "submission_id", submission_id) < 0 ||
	    !cJSON_AddStringToObject(o, "detail", detail) || put_or_null(o, "evidence", cut) < 0)
		goto out;
	cJSON_AddItemToArray(b->findings, o);
	o = NULL;
	b->nfindings++;
	r = 0;
out:
	free(cut);
	cJSON_Delete(o);
	return r;
}

/* Item i, refused by the check: rejected, with its finding. */
static int item_refused(struct ingest_batch *b, size_t i)
{
	const struct item_check *c = &b->checks[i];

	b->results[i].status = ITEM_REJECTED;
	memcpy(b->results[i].reason, c->reason, sizeof(c->reason));
	return finding(b, c->finding, c->form, c->period, c->school_id, c->submission_id, c->reason,
	               c->evidence, c->evidence_len);
}

/* A county-signed item: parses text, checks the kid and the county's signature, parses
 * the payload. 0 with *ret_payload (caller frees with cJSON_Delete) and *ret_jws (caller
 * releases); -EBADMSG (not a JWS or its payload not JSON) or -EKEYREJECTED with why;
 * -ENOMEM. */
static int county_item(const struct ingest_batch *b, const char *text, size_t len,
                       struct jws *ret_jws, cJSON **ret_payload, char *why, size_t whylen)
{
	struct jws j;
	cJSON *payload = NULL;
	char msg[256];
	int r;

	jws_init(&j);
	r = jws_parse(&j, text, len, INGEST_TEXT_MAX, msg, sizeof(msg));
	if (r < 0) {
		if (r != -ENOMEM) {
			snprintf(why, whylen, "not a JWS: %s", msg);
			r = r == -EPERM ? -EKEYREJECTED : -EBADMSG;
		}
		goto fail;
	}
	if (strcmp(j.kid, b->county) != 0) {
		snprintf(why, whylen, "signed by \"%s\", not by the county", j.kid);
		r = -EKEYREJECTED;
		goto fail;
	}
	r = jws_verify(&j, &b->county_key, msg, sizeof(msg));
	if (r < 0) {
		snprintf(why, whylen, "the county's signature does not verify: %s", msg);
		r = -EKEYREJECTED;
		goto fail;
	}
	r = json_parse_untrusted((const char *)j.payload, j.payload_len, ITEM_DEPTH, &payload, msg,
	                         sizeof(msg));
	if (r < 0) {
		if (r != -ENOMEM) {
			snprintf(why, whylen, "payload: %s", msg);
			r = -EBADMSG;
		}
		goto fail;
	}
	if (!cJSON_IsObject(payload)) {
		snprintf(why, whylen, "the payload is not an object");
		r = -EBADMSG;
		goto fail;
	}
	*ret_jws = j;
	*ret_payload = payload;
	return 0;
fail:
	cJSON_Delete(payload);
	jws_release(&j);
	return r;
}

/* --- the county's roster --------------------------------------------------------------- */

static int compare_key(const void *a, const void *b)
{
	return strcmp(((const struct ingest_school_key *)a)->school_id,
	              ((const struct ingest_school_key *)b)->school_id);
}

static int decode_x(const char *x, unsigned char pk[32])
{
	size_t n = 0;

	if (!x ||
	    sodium_base642bin(pk, 32, x, strlen(x), NULL, &n, NULL,
	                      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    n != 32)
		return -EINVAL;
	return 0;
}

/* submission_context.lookup_key over a roster in memory (data: its struct keyset). */
static int lookup_key(void *data, const char *kid, struct jwk *ret_key, char *err, size_t errlen)
{
	const struct keyset *ks = data;
	struct ingest_school_key key, *k;

	snprintf(key.school_id, sizeof(key.school_id), "%s", kid);
	k = ks->nkeys && strlen(kid) < sizeof(key.school_id)
	            ? bsearch(&key, ks->keys, ks->nkeys, sizeof(*ks->keys), compare_key)
	            : NULL;
	if (!k) {
		snprintf(err, errlen, "school \"%s\" is not in the county's roster (version %lld)",
		         kid, ks->version);
		return -ENOKEY;
	}
	memset(ret_key, 0, sizeof(*ret_key));
	memcpy(ret_key->public_key, k->pk, sizeof(k->pk));
	snprintf(ret_key->kid, sizeof(ret_key->kid), "%s", k->school_id);
	return 0;
}

/* Checks a roster payload and makes the schools' rows for jsonb_to_recordset (*ret_rows)
 * and their keys (*ret_keys, sorted). -EINVAL with why, -ENOMEM. */
static int roster_check(const cJSON *p, const char *county, long long *ret_version,
                        cJSON **ret_rows, struct ingest_school_key **ret_keys, size_t *ret_nkeys,
                        char *why, size_t whylen)
{
	const cJSON *schools = cJSON_GetObjectItemCaseSensitive(p, "schools"), *s;
	const char *type = member_string(p, "type"), *cid = member_string(p, "county_id");
	struct ingest_school_key *keys = NULL;
	cJSON *rows = NULL, *row;
	long long version;
	size_t n = 0, i = 0;
	int r = -EINVAL;

	if (!type || strcmp(type, "roster") != 0 || !cid || strcmp(cid, county) != 0) {
		snprintf(why, whylen, "not a roster of this county");
		goto fail;
	}
	if (member_int(p, "version", 1, (long long)INT53 - 1, 0, &version) != 0) {
		snprintf(why, whylen, "the roster has no valid version");
		goto fail;
	}
	if (!instant_valid(member_string(p, "issued_at"))) {
		snprintf(why, whylen, "the roster has no valid issued_at");
		goto fail;
	}
	if (!cJSON_IsArray(schools) ||
	    (n = (size_t)cJSON_GetArraySize(schools)) > INGEST_ROSTER_SCHOOLS_MAX) {
		snprintf(why, whylen, "the roster's schools are not an array of at most %d",
		         INGEST_ROSTER_SCHOOLS_MAX);
		goto fail;
	}
	rows = cJSON_CreateArray();
	keys = calloc(n ? n : 1, sizeof(*keys));
	if (!rows || !keys) {
		r = -ENOMEM;
		goto fail;
	}
	cJSON_ArrayForEach(s, schools)
	{
		const char *id = member_string(s, "school_id"), *name = member_string(s, "name");
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "type");
		const cJSON *opened = cJSON_GetObjectItemCaseSensitive(s, "opened");
		const cJSON *closed = cJSON_GetObjectItemCaseSensitive(s, "closed");
		const cJSON *key = cJSON_GetObjectItemCaseSensitive(s, "key");
		struct jwk jwk;
		char *key_text = NULL, msg[256];
		int kr;

		if (!cJSON_IsObject(s) || !digits(id, 10) || !name || !name[0] ||
		    strlen(name) > 255 ||
		    !(!t || cJSON_IsNull(t) ||
		      (cJSON_IsString(t) && strlen(t->valuestring) <= 64)) ||
		    !(!opened || cJSON_IsNull(opened) ||
		      (cJSON_IsString(opened) && date_valid(opened->valuestring))) ||
		    !(!closed || cJSON_IsNull(closed) ||
		      (cJSON_IsString(closed) && date_valid(closed->valuestring))) ||
		    !cJSON_IsObject(key)) {
			snprintf(why, whylen, "roster school %zu is malformed", i);
			goto fail;
		}
		if (cJSON_IsString(opened) && cJSON_IsString(closed) &&
		    strcmp(closed->valuestring, opened->valuestring) < 0) {
			snprintf(why, whylen, "roster school \"%s\" closes before it opens", id);
			goto fail;
		}
		key_text = cJSON_PrintUnformatted(key);
		if (!key_text) {
			r = -ENOMEM;
			goto fail;
		}
		kr = jwk_parse(&jwk, key_text, strlen(key_text), msg, sizeof(msg));
		free(key_text);
		if (kr == -ENOMEM) {
			r = kr;
			goto fail;
		}
		if (kr < 0 || jwk.has_private || (jwk.kid[0] && strcmp(jwk.kid, id) != 0)) {
			snprintf(why, whylen,
			         "the key of roster school \"%s\" is not its public key%s%s", id,
			         kr < 0 ? ": " : "", kr < 0 ? msg : "");
			jwk_release(&jwk);
			goto fail;
		}
		snprintf(keys[i].school_id, sizeof(keys[i].school_id), "%s", id);
		memcpy(keys[i].pk, jwk.public_key, 32);
		jwk_release(&jwk);
		row = cJSON_CreateObject();
		if (!row) {
			r = -ENOMEM;
			goto fail;
		}
		cJSON_AddItemToArray(rows, row);
		if (!cJSON_AddStringToObject(row, "school_id", id) ||
		    !cJSON_AddStringToObject(row, "name", name) ||
		    put_or_null(row, "type", cJSON_IsString(t) ? t->valuestring : NULL) < 0 ||
		    put_or_null(row, "opened",
		                cJSON_IsString(opened) ? opened->valuestring : NULL) < 0 ||
		    put_or_null(row, "closed",
		                cJSON_IsString(closed) ? closed->valuestring : NULL) < 0 ||
		    !cJSON_AddItemToObject(row, "key", cJSON_Duplicate(key, 1))) {
			r = -ENOMEM;
			goto fail;
		}
		i++;
	}
	qsort(keys, n, sizeof(*keys), compare_key);
	for (i = 1; i < n; i++)
		if (strcmp(keys[i - 1].school_id, keys[i].school_id) == 0) {
			snprintf(why, whylen, "the roster names school \"%s\" twice",
			         keys[i].school_id);
			goto fail;
		}
	*ret_version = version;
	*ret_rows = rows;
	*ret_keys = keys;
	*ret_nkeys = n;
	return 0;
fail:
	cJSON_Delete(rows);
	free(keys);
	return r;
}

/* Checks roster item c: the county's signature, the roster (roster_check()); its keys and
 * its schools' rows are kept for the store. A refusal is left in c. 0 or -ENOMEM. */
static int check_roster(const struct ingest_batch *b, struct item_check *c)
{
	struct jws j;
	cJSON *rows = NULL;
	char why[512] = "";
	int r;

	jws_init(&j);
	r = county_item(b, c->text, c->len, &j, &c->payload, why, sizeof(why));
	if (r == 0)
		r = roster_check(c->payload, b->county, &c->roster.version, &rows, &c->roster.keys,
		                 &c->roster.nkeys, why, sizeof(why));
	if (r == -ENOMEM)
		goto out;
	if (r < 0) {
		r = check_refuse(c, "roster_rejected", NULL, NULL, NULL, NULL, c->text, c->len,
		                 "roster: %s", why);
		goto out;
	}
	c->rows_text = cJSON_PrintUnformatted(rows);
	r = c->rows_text ? 0 : -ENOMEM;
out:
	cJSON_Delete(rows);
	jws_release(&j);
	return r;
}

/* --- school returns -------------------------------------------------------------------- */

/* Appends s to the COPY text with its special characters escaped (COPY text format). */
static int copy_field(struct buf *out, const char *s, size_t len, int last)
{
	size_t i = 0;
	int r = 0;

	while (i < len && r == 0) {
		size_t run = i;

		/* the plain run first, in one append */
		while (run < len && s[run] != '\\' && s[run] != '\n' && s[run] != '\r' &&
		       s[run] != '\t')
			run++;
		if (run > i)
			r = buf_append(out, s + i, run - i);
		if (r == 0 && run < len) {
			char escaped[2] = {'\\', s[run] == '\n'   ? 'n'
			                         : s[run] == '\r' ? 'r'
			                         : s[run] == '\t' ? 't'
			                                          : '\\'};

			r = buf_append(out, escaped, 2);
			run++;
		}
		i = run;
	}
	if (r == 0)
		r = buf_putc(out, last ? '\n' : '\t');
	return r;
}

static int copy_text(struct buf *out, const char *s, int last)
{
	if (!s) {
		int r = buf_append(out, "\\N", 2);

		return r < 0 ? r : buf_putc(out, last ? '\n' : '\t');
	}
	return copy_field(out, s, strlen(s), last);
}

/* Checks the hub's receipt of return s (payload hash sha256). 0, or -EINVAL with why;
 * -ENOMEM. On success *ret_received_at and *ret_on_time ("t", "f" or NULL) point into
 * *ret_receipt, which the caller frees. */
static int receipt_check(const struct ingest_batch *b, const char *text, const struct submission *s,
                         const char *sha256, cJSON **ret_receipt, const char **ret_received_at,
                         const char **ret_on_time, char *why, size_t whylen)
{
	struct jws j;
	cJSON *p = NULL;
	const cJSON *on_time;
	const char *received_at;
	char msg[256];
	int r = -EINVAL;

	jws_init(&j);
	if (!text) {
		snprintf(why, whylen, "no receipt");
		goto out;
	}
	r = jws_parse(&j, text, strlen(text), INGEST_RECEIPT_MAX, msg, sizeof(msg));
	if (r == -ENOMEM)
		goto out;
	if (r == -EMSGSIZE) {
		snprintf(why, whylen, "the hub's receipt is larger than the limit of %u bytes",
		         INGEST_RECEIPT_MAX);
		r = -EINVAL;
		goto out;
	}
	if (r < 0 || strcmp(j.kid, b->county) != 0 ||
	    jws_verify(&j, &b->county_key, msg, sizeof(msg)) < 0) {
		snprintf(why, whylen, "the hub's receipt is not signed by the county");
		r = -EINVAL;
		goto out;
	}
	r = json_parse_untrusted((const char *)j.payload, j.payload_len, RECEIPT_DEPTH, &p, msg,
	                         sizeof(msg));
	if (r == -ENOMEM)
		goto out;
	r = -EINVAL;
	if (!p || !cJSON_IsObject(p) || !member_string(p, "type") ||
	    strcmp(member_string(p, "type"), "receipt") != 0) {
		snprintf(why, whylen, "the hub's receipt is malformed");
		goto out;
	}
	if (!member_string(p, "submission_id") ||
	    strcmp(member_string(p, "submission_id"), s->submission_id) != 0 ||
	    !member_string(p, "school_id") ||
	    strcmp(member_string(p, "school_id"), s->school_id) != 0 ||
	    !member_string(p, "county_id") ||
	    strcmp(member_string(p, "county_id"), b->county) != 0) {
		snprintf(why, whylen, "the hub's receipt is for another return");
		goto out;
	}
	if (!member_string(p, "sha256") || strcmp(member_string(p, "sha256"), sha256) != 0) {
		snprintf(why, whylen,
		         "the hub's receipt names another payload hash than the return's %s",
		         sha256);
		goto out;
	}
	received_at = member_string(p, "received_at");
	on_time = cJSON_GetObjectItemCaseSensitive(p, "on_time");
	if (!instant_valid(received_at) || !(cJSON_IsBool(on_time) || cJSON_IsNull(on_time))) {
		snprintf(why, whylen, "the hub's receipt has no valid received_at or on_time");
		goto out;
	}
	*ret_received_at = received_at;
	*ret_on_time = cJSON_IsTrue(on_time) ? "t" : cJSON_IsFalse(on_time) ? "f" : NULL;
	*ret_receipt = p;
	p = NULL;
	r = 0;
out:
	cJSON_Delete(p);
	jws_release(&j);
	return r;
}

static const char *finding_kind(enum submission_verdict v)
{
	switch (v) {
	case SUBMISSION_UNAUTHENTICATED:
		return "signature_invalid";
	case SUBMISSION_FORBIDDEN:
		return "wrong_school_or_county";
	case SUBMISSION_INVALID:
		return "invalid_return";
	default:
		return "malformed_return";
	}
}

/* Checks item c, a submission, with the keys of the roster c->keyset: the school's JWS as
 * the hub checked it, then the hub's receipt; makes its COPY row. A refusal is left in c.
 * 0, or a negative errno when checking could not finish (submission_check()). */
static int check_submission(const struct ingest_batch *b, struct item_check *c)
{
	struct submission_context ctx = {
	        .envelope = b->srv->envelope,
	        .forms = b->srv->forms,
	        .county_id = b->county,
	        .lookup_key = lookup_key,
	        .lookup_data = (void *)c->keyset,
	        .max_text = INGEST_ITEM_MAX,
	};
	const char *receipt = c->receipt, *text = c->text;
	enum submission_verdict verdict;
	struct submission s;
	struct pending *p = &c->row;
	struct buf out;
	cJSON *rc = NULL;
	const char *received_at = NULL, *on_time = NULL;
	char why[512] = "", sha[IDS_SHA256_HEX_LEN + 1], num[32], version[16];
	size_t len = c->len;
	int r;

	check_clear(c);
	submission_init(&s);
	/* every field escaped at worst doubles, and the payload is shorter than the JWS */
	buf_init(&out, 4 * len + 2 * (receipt ? strlen(receipt) : 0) + 4096);
	r = submission_check(&ctx, text, len, NULL, why, sizeof(why), &verdict, &s);
	if (r < 0)
		goto out;
	if (verdict != SUBMISSION_ACCEPTABLE) {
		r = check_refuse(c, finding_kind(verdict), NULL, NULL, NULL, NULL, text, len,
		                 "%s: %s", submission_verdict_code(verdict), why);
		goto out;
	}
	ids_sha256_hex(s.jws.payload, s.jws.payload_len, sha);
	if (!instant_valid(s.created_at) ||
	    (s.supersedes && strcmp(s.supersedes, s.submission_id) == 0)) {
		r = check_refuse(c, "invalid_return", s.form->id, s.period, s.school_id,
		                 s.submission_id, text, len,
		                 "invalid: created_at or supersedes is not usable");
		goto out;
	}
	r = receipt_check(b, receipt, &s, sha, &rc, &received_at, &on_time, why, sizeof(why));
	if (r == -ENOMEM)
		goto out;
	if (r < 0) {
		r = check_refuse(c, "receipt_invalid", s.form->id, s.period, s.school_id,
		                 s.submission_id, receipt ? receipt : text,
		                 receipt ? strlen(receipt) : len, "receipt: %s", why);
		goto out;
	}
	/* the COPY row */
	snprintf(version, sizeof(version), "%d", s.form->version);
	snprintf(num, sizeof(num), "%lld", c->keyset->version);
	r = copy_text(&out, s.submission_id, 0);
	r = r < 0 ? r : copy_text(&out, b->county, 0);
	r = r < 0 ? r : copy_text(&out, s.school_id, 0);
	r = r < 0 ? r : copy_text(&out, s.form->id, 0);
	r = r < 0 ? r : copy_text(&out, version, 0);
	r = r < 0 ? r : copy_text(&out, s.period, 0);
	r = r < 0 ? r : copy_field(&out, (const char *)s.jws.payload, s.jws.payload_len, 0);
	r = r < 0 ? r : copy_field(&out, text, len, 0);
	r = r < 0 ? r : copy_text(&out, sha, 0);
	r = r < 0 ? r : copy_text(&out, receipt, 0);
	r = r < 0 ? r : copy_text(&out, "t", 0);
	r = r < 0 ? r : copy_text(&out, s.created_at, 0);
	r = r < 0 ? r : copy_text(&out, received_at, 0);
	r = r < 0 ? r : copy_text(&out, b->now, 0);
	r = r < 0 ? r : copy_text(&out, on_time, 0);
	r = r < 0 ? r : copy_text(&out, s.supersedes, 0);
	r = r < 0 ? r : copy_text(&out, "t", 0);
	r = r < 0 ? r : copy_text(&out, num, 0);
	r = r < 0 ? r : copy_text(&out, b->batch_id, 1);
	if (r < 0)
		goto out;
	snprintf(p->id, sizeof(p->id), "%s", s.submission_id);
	snprintf(p->sha256, sizeof(p->sha256), "%s", sha);
	snprintf(p->school_id, sizeof(p->school_id), "%s", s.school_id);
	snprintf(p->form, sizeof(p->form), "%s", s.form->id);
	snprintf(p->period, sizeof(p->period), "%s", s.period);
	p->row = buf_detach(&out, &p->len);
	r = 0;
out:
	buf_release(&out);
	cJSON_Delete(rc);
	submission_release(&s);
	return r;
}

/* --- roll-ups ------------------------------------------------------------------------- */

static const struct rollup_plan *plan_of(const struct server *srv, const char *form)
{
	for (size_t i = 0; i < srv->forms->count; i++)
		if (strcmp(srv->forms->forms[i].id, form) == 0)
			return srv->plans[i];
	return NULL;
}

/* Checks a roll-up payload. 0, -EINVAL with why. *ret_ids: the listed ids as a uuid[]
 * literal, *ret_count their number. */
static int rollup_check(const struct ingest_batch *b, const cJSON *p, struct buf *ids,
                        size_t *ret_count, char *why, size_t whylen)
{
	const cJSON *listed = cJSON_GetObjectItemCaseSensitive(p, "submissions");
	const cJSON *missing = cJSON_GetObjectItemCaseSensitive(p, "missing"), *e;
	const char *type = member_string(p, "type"), *cid = member_string(p, "county_id");
	const char *form = member_string(p, "form"), *status = member_string(p, "status");
	struct pending *sorted = NULL;
	long long v;
	size_t n = 0;
	int r = -EINVAL;

	if (!type || strcmp(type, "rollup") != 0 || !cid || strcmp(cid, b->county) != 0) {
		snprintf(why, whylen, "not a roll-up of this county");
		return -EINVAL;
	}
	if (!form || !plan_of(b->srv, form)) {
		snprintf(why, whylen, "unknown form");
		return -EINVAL;
	}
	if (!period_valid(member_string(p, "period")) || !status ||
	    (strcmp(status, "provisional") != 0 && strcmp(status, "final") != 0) ||
	    !instant_valid(member_string(p, "computed_at")) ||
	    member_int(p, "expected", 0, INT32_MAX, 1, &v) < 0 ||
	    member_int(p, "received", 0, INT32_MAX, 0, &v) != 0 ||
	    member_int(p, "on_time", 0, INT32_MAX, 0, &v) != 0 ||
	    !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(p, "rollup"))) {
		snprintf(why, whylen,
		         "the roll-up's period, status, computed_at or figures are "
		         "malformed");
		return -EINVAL;
	}
	if (!cJSON_IsArray(missing)) {
		snprintf(why, whylen, "the roll-up's missing is not an array");
		return -EINVAL;
	}
	cJSON_ArrayForEach(e, missing)
	{
		if (!cJSON_IsString(e) || !digits(e->valuestring, 10)) {
			snprintf(why, whylen,
			         "the roll-up's missing holds something else than school "
			         "ids");
			return -EINVAL;
		}
	}
	if (!cJSON_IsArray(listed) ||
	    (n = (size_t)cJSON_GetArraySize(listed)) > INGEST_ROLLUP_LISTED_MAX) {
		snprintf(why, whylen, "the roll-up's submissions are not an array of at most %d",
		         INGEST_ROLLUP_LISTED_MAX);
		return -EINVAL;
	}
	sorted = calloc(n ? n : 1, sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	n = 0;
	cJSON_ArrayForEach(e, listed)
	{
		const char *id = member_string(e, "submission_id"),
		           *sha = member_string(e, "sha256");

		if (!uuid_valid(id) || !sha256_hex_valid(sha)) {
			snprintf(why, whylen,
			         "the roll-up lists a return without a valid "
			         "submission_id and sha256");
			goto out;
		}
		snprintf(sorted[n].id, sizeof(sorted[n].id), "%s", id);
		snprintf(sorted[n].sha256, sizeof(sorted[n].sha256), "%s", sha);
		n++;
	}
	qsort(sorted, n, sizeof(*sorted), compare_id);
	r = buf_putc(ids, '{');
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (i > 0 && strcmp(sorted[i - 1].id, sorted[i].id) == 0) {
			snprintf(why, whylen, "the roll-up lists return %s twice", sorted[i].id);
			r = -EINVAL;
			goto out;
		}
		r = buf_printf(ids, "%s%s", i ? "," : "", sorted[i].id);
	}
	r = r < 0 ? r : buf_putc(ids, '}');
	if (r == 0)
		*ret_count = n;
out:
	free(sorted);
	return r;
}

/* Checks roll-up item c: the county's signature and the roll-up (rollup_check()); its JWS,
 * payload and listed ids are kept for the store. A refusal is left in c. 0 or -ENOMEM. */
static int check_rollup(const struct ingest_batch *b, struct item_check *c)
{
	char why[512] = "";
	int r;

	r = county_item(b, c->text, c->len, &c->jws, &c->payload, why, sizeof(why));
	if (r == 0)
		r = rollup_check(b, c->payload, &c->ids, &c->count, why, sizeof(why));
	if (r == -ENOMEM || r == 0)
		return r;
	return check_refuse(c, "rollup_rejected",
	                    c->payload ? member_string(c->payload, "form") : NULL, NULL, NULL, NULL,
	                    c->text, c->len, "rollup: %s", why);
}

/* --- the check ------------------------------------------------------------------------ */

/* One thread of the check: takes items in turn until none is left. Rosters were checked
 * before (the returns after them need their keys); the rest is independent. */
static void *check_items(void *data)
{
	struct ingest_batch *b = data;
	size_t i;

	while ((i = atomic_fetch_add(&b->next, 1)) < b->nitems) {
		struct item_check *c = &b->checks[i];
		int r = 0;

		if (c->kind == KIND_SUBMISSION)
			r = check_submission(b, c);
		else if (c->kind == KIND_ROLLUP)
			r = check_rollup(b, c);
		if (r < 0)
			c->error = r;
		if (b->nthreads) {
			pthread_mutex_lock(&b->lock);
			b->done[i] = 1;
			pthread_cond_broadcast(&b->checked);
			pthread_mutex_unlock(&b->lock);
		}
	}
	return NULL;
}

/* Starts checking the items after the rosters on up to max threads, one per
 * ITEMS_PER_THREAD of them, and returns: the store waits for each item (check_wait()).
 * Too few items for a thread, or no thread that starts, and they are checked here. */
static void check_start(struct ingest_batch *b, unsigned max)
{
	size_t work = 0, want;

	for (size_t i = 0; i < b->nitems; i++)
		work += b->checks[i].kind == KIND_SUBMISSION || b->checks[i].kind == KIND_ROLLUP;
	if (max == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		max = cpus > 0 ? (unsigned)cpus : 1;
	}
	want = work / ITEMS_PER_THREAD;
	want = want < max ? want : max;
	want = want < INGEST_THREADS_MAX ? want : INGEST_THREADS_MAX;
	atomic_store(&b->next, 0);
	if (want > 0) {
		b->done = calloc(b->nitems, 1);
		if (b->done && pthread_mutex_init(&b->lock, NULL) == 0) {
			if (pthread_cond_init(&b->checked, NULL) == 0) {
				/* nthreads is set before any thread runs: they read it */
				b->nthreads = want;
				while (b->started < want &&
				       pthread_create(&b->threads[b->started], NULL, check_items,
				                      b) == 0)
					b->started++;
				if (b->started > 0)
					return;
				b->nthreads = 0;
				pthread_cond_destroy(&b->checked);
			}
			pthread_mutex_destroy(&b->lock);
		}
		free(b->done);
		b->done = NULL;
	}
	check_items(b);
}

/* Waits until item i is checked. */
static void check_wait(struct ingest_batch *b, size_t i)
{
	if (!b->nthreads)
		return;
	pthread_mutex_lock(&b->lock);
	while (!b->done[i])
		pthread_cond_wait(&b->checked, &b->lock);
	pthread_mutex_unlock(&b->lock);
}

/* Waits for the check's threads to end, once they finish the items they hold: the items
 * none took yet are left unchecked (the batch is being freed). */
static void check_join(struct ingest_batch *b)
{
	if (!b->nthreads)
		return;
	atomic_store(&b->next, b->nitems);
	for (size_t t = 0; t < b->started; t++)
		pthread_join(b->threads[t], NULL);
	pthread_cond_destroy(&b->checked);
	pthread_mutex_destroy(&b->lock);
	b->nthreads = 0;
	b->started = 0;
}

/* Sorts out the items of the batch's payload: what kind each is, its texts, and its size.
 * Checks the rosters, in order, and gives each return the roster the items before it
 * would leave: the one loaded, or the latest of a higher version the batch brings. */
static int check_sort(struct ingest_batch *b, const cJSON *items)
{
	const struct keyset *roster = &b->loaded;
	const cJSON *it;
	size_t i = 0;
	int r = 0;

	cJSON_ArrayForEach(it, items)
	{
		struct item_check *c = &b->checks[i++];
		const char *kind = member_string(it, "kind");
		const cJSON *jws = cJSON_GetObjectItemCaseSensitive(it, "jws");

		if (!cJSON_IsObject(it) || !kind || !cJSON_IsString(jws)) {
			r = check_refuse(c, "malformed_item", NULL, NULL, NULL, NULL, NULL, 0,
			                 "malformed item: it needs a kind and a jws");
			if (r < 0)
				return r;
			continue;
		}
		c->text = jws->valuestring;
		c->len = strlen(c->text);
		if (strcmp(kind, "submission") == 0) {
			c->kind = KIND_SUBMISSION;
			c->receipt = member_string(it, "receipt");
			c->keyset = roster;
		} else if (strcmp(kind, "roster") == 0) {
			c->kind = KIND_ROSTER;
		} else if (strcmp(kind, "rollup") == 0) {
			c->kind = KIND_ROLLUP;
		} else {
			r = check_refuse(c, "malformed_item", NULL, NULL, NULL, NULL, NULL, 0,
			                 "unknown kind of item");
			if (r < 0)
				return r;
			continue;
		}
		if (c->len > INGEST_ITEM_MAX) {
			c->kind = KIND_MALFORMED;
			r = check_refuse(c, "malformed_item", NULL, NULL, NULL, NULL, c->text,
			                 c->len,
			                 "%s: a JWS of %zu bytes is larger than the limit of %u",
			                 kind, c->len, INGEST_ITEM_MAX);
		} else if (c->kind == KIND_ROSTER) {
			r = check_roster(b, c);
			if (r == 0 && !c->refused && c->roster.version > roster->version)
				roster = &c->roster;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* refuse()'s result as the check's: 1 (refused) or -ENOMEM. */
static int refused(int r)
{
	return r < 0 ? r : 1;
}

/* A refusal of the whole batch. */
static int refuse(struct http_reply *reply, struct ingest_outcome *o, int status, const char *code,
                  const char *message)
{
	o->status = status;
	if (http_reply_error(reply, status, code, message, NULL, NULL) < 0)
		return -ENOMEM;
	if (status == 503)
		reply->retry_after = 5;
	return 0;
}

static int db_status(int r)
{
	/* connection trouble, overload, conflicts: worth retrying; anything else is ours */
	return r == -ECONNRESET || r == -ECONNREFUSED || r == -EAGAIN || r == -EBUSY ||
	                       r == -ENOSPC || r == -ECANCELED
	               ? 503
	               : 500;
}

static struct ingest_batch *batch_new(const struct server *srv)
{
	struct ingest_batch *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->srv = srv;
	jws_init(&b->jws);
	datetime_format_rfc3339(clock_now_ms(&srv->clock), srv->offset_min, b->now);
	return b;
}

void ingest_batch_free(struct ingest_batch *b)
{
	if (!b)
		return;
	check_join(b);
	free(b->done);
	for (size_t i = 0; b->checks && i < b->nitems; i++) {
		struct item_check *c = &b->checks[i];

		check_clear(c);
		free(c->roster.keys);
		free(c->rows_text);
		cJSON_Delete(c->payload);
		jws_release(&c->jws);
		buf_release(&c->ids);
	}
	free(b->checks);
	free(b->results);
	free(b->seen);
	free(b->slots);
	free(b->pend);
	free(b->loaded.keys);
	cJSON_Delete(b->findings);
	cJSON_Delete(b->payload);
	jws_release(&b->jws);
	jwk_release(&b->county_key);
	free(b);
}

/* Parses and checks the batch's payload, once its signature verified: its members, its
 * items, the county's roster (asked of src). 1 with the refusal made, 0, -ENOMEM. */
static int check_payload(struct ingest_batch *b, const struct ingest_source *src,
                         struct http_reply *reply, struct ingest_outcome *ret)
{
	const cJSON *items;
	const char *id, *type, *county;
	char msg[512], quoted[ERRMSG_QUOTE_SIZE];
	size_t n;
	int r;

	if (json_too_many_values((const char *)b->jws.payload, b->jws.payload_len,
	                         INGEST_BATCH_VALUES_MAX)) {
		snprintf(msg, sizeof(msg),
		         "the batch holds more than %d JSON arrays, objects and commas",
		         INGEST_BATCH_VALUES_MAX);
		return refused(refuse(reply, ret, 413, "too_large", msg));
	}
	r = json_parse_untrusted((const char *)b->jws.payload, b->jws.payload_len, BATCH_DEPTH,
	                         &b->payload, msg, sizeof(msg));
	if (r < 0)
		return r == -ENOMEM ? r : refused(refuse(reply, ret, 400, "malformed", msg));
	type = member_string(b->payload, "type");
	county = member_string(b->payload, "county_id");
	id = member_string(b->payload, "batch_id");
	items = cJSON_GetObjectItemCaseSensitive(b->payload, "items");
	if (!type || strcmp(type, "batch") != 0 || !county || strcmp(county, b->county) != 0 ||
	    !uuid_valid(id) || !instant_valid(member_string(b->payload, "sent_at")) ||
	    !cJSON_IsArray(items)) {
		snprintf(msg, sizeof(msg),
		         "not a batch of county \"%s\" (type, county_id, batch_id, sent_at, items)",
		         errmsg_quote(b->county, quoted));
		return refused(refuse(reply, ret, 400, "malformed", msg));
	}
	snprintf(b->batch_id, sizeof(b->batch_id), "%s", id);
	snprintf(ret->batch_id, sizeof(ret->batch_id), "%s", id);
	n = (size_t)cJSON_GetArraySize(items);
	if (n > INGEST_ITEMS_MAX) {
		snprintf(msg, sizeof(msg), "a batch holds at most %d items, not %zu",
		         INGEST_ITEMS_MAX, n);
		return refused(refuse(reply, ret, 413, "too_large", msg));
	}
	ret->items = n;
	b->nitems = n;
	b->checks = calloc(n ? n : 1, sizeof(*b->checks));
	b->results = calloc(n ? n : 1, sizeof(*b->results));
	b->seen = calloc(n ? n : 1, sizeof(*b->seen));
	b->pend = calloc(n ? n : 1, sizeof(*b->pend));
	b->nslots = 2 * n + 1;
	b->slots = calloc(b->nslots, sizeof(*b->slots));
	if (!b->checks || !b->results || !b->seen || !b->pend || !b->slots)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		jws_init(&b->checks[i].jws);
		buf_init(&b->checks[i].ids,
		         (size_t)INGEST_ROLLUP_LISTED_MAX * (IDS_UUID_LEN + 1) + 8);
	}
	r = src->roster(src->data, b->county, &b->loaded.version, &b->loaded.keys,
	                &b->loaded.nkeys);
	if (r < 0)
		return r == -ENOMEM ? r
		                    : refused(refuse(reply, ret, db_status(r), "unavailable",
		                                     "the database is not available"));
	if (b->loaded.nkeys)
		qsort(b->loaded.keys, b->loaded.nkeys, sizeof(*b->loaded.keys), compare_key);
	r = check_sort(b, items);
	if (r < 0)
		return r;
	check_start(b, src->threads);
	return 0;
}

int ingest_check(const struct server *srv, const struct ingest_source *src,
                 struct gzip_inflater *inflater, struct buf *plain, const char *body, size_t len,
                 struct ingest_batch **ret_batch, struct http_reply *reply,
                 struct ingest_outcome *ret)
{
	struct ingest_batch *b;
	char msg[512];
	int r;

	memset(ret, 0, sizeof(*ret));
	b = batch_new(srv);
	if (!b)
		return -ENOMEM;
	buf_reset(plain);
	r = gzip_inflate(inflater, body, len, plain, msg, sizeof(msg));
	if (r == -EFBIG) {
		r = refused(
		        refuse(reply, ret, 413, "too_large", "the batch inflates past the limit"));
		goto out;
	}
	if (r < 0) {
		r = r == -ENOMEM ? r : refused(refuse(reply, ret, 400, "malformed", msg));
		goto out;
	}
	r = jws_parse(&b->jws, plain->data, plain->len, INGEST_TEXT_MAX, msg, sizeof(msg));
	if (r < 0) {
		r = r == -ENOMEM ? r
		    : r == -EMSGSIZE
		            ? refused(refuse(reply, ret, 413, "too_large", msg))
		            : refused(refuse(reply, ret, r == -EPERM ? 401 : 400,
		                             r == -EPERM ? "unauthenticated" : "malformed", msg));
		goto out;
	}
	if (!digits(b->jws.kid, 6)) {
		r = refused(refuse(reply, ret, 401, "unauthenticated",
		                   "the batch's kid is not a county id"));
		goto out;
	}
	snprintf(b->county, sizeof(b->county), "%s", b->jws.kid);
	snprintf(ret->county_id, sizeof(ret->county_id), "%s", b->county);
	r = src->county_key(src->data, b->county, b->county_key.public_key);
	if (r == -ENOKEY) {
		snprintf(msg, sizeof(msg), "county \"%s\" is not registered here", b->county);
		r = refused(refuse(reply, ret, 401, "unauthenticated", msg));
		goto out;
	}
	if (r < 0) {
		r = r == -ENOMEM ? r
		                 : refused(refuse(reply, ret, db_status(r), "unavailable",
		                                  "the database is not available"));
		goto out;
	}
	snprintf(b->county_key.kid, sizeof(b->county_key.kid), "%s", b->county);
	r = jws_verify(&b->jws, &b->county_key, msg, sizeof(msg));
	if (r < 0) {
		r = refused(refuse(reply, ret, 401, "unauthenticated", msg));
		goto out;
	}
	r = check_payload(b, src, reply, ret);
out:
	if (r < 0) {
		ingest_batch_free(b);
		return r;
	}
	if (r > 0) {
		/* refused: the reply says why */
		ingest_batch_free(b);
		b = NULL;
	}
	*ret_batch = b;
	return 0;
}

size_t ingest_batch_count(const struct ingest_batch *b)
{
	return b->nitems;
}

int ingest_batch_refused(struct ingest_batch *b, size_t i, const char **ret_reason)
{
	const struct item_check *c = &b->checks[i];

	check_wait(b, i);
	if (c->error < 0) {
		*ret_reason = "the item could not be checked";
		return 1;
	}
	if (!c->refused)
		return 0;
	*ret_reason = c->reason;
	return 1;
}

/* --- the store: returns -------------------------------------------------------------- */

/* The slot of id in the batch's hash of returns seen (open addressing over twice as many
 * slots as items): the one holding it, or the empty one where it goes. */
static size_t seen_slot(const struct ingest_batch *b, const char *id)
{
	size_t h = 5381, n = b->nslots;

	for (const char *p = id; *p; p++)
		h = h * 33 + (unsigned char)*p;
	for (h %= n; b->slots[h] && strcmp(b->seen[b->slots[h] - 1].id, id) != 0; h = (h + 1) % n)
		;
	return h;
}

static struct pending *seen_find(struct ingest_batch *b, const char *id)
{
	size_t slot = seen_slot(b, id);

	return b->slots[slot] ? &b->seen[b->slots[slot] - 1] : NULL;
}

/* Submission i: checked again when the roster it was checked with is not the one the
 * items before it left; then a duplicate of one before it in the batch, or pending. */
static int store_submission(struct ingest_batch *b, size_t i)
{
	struct item_check *c = &b->checks[i];
	struct pending *p, *seen;
	int r;

	if (c->keyset != b->keyset) {
		c->keyset = b->keyset;
		r = check_submission(b, c);
		if (r < 0)
			return r;
	}
	if (c->refused)
		return item_refused(b, i);
	seen = seen_find(b, c->row.id);
	if (seen) {
		if (strcmp(seen->sha256, c->row.sha256) == 0) {
			b->results[i].status = ITEM_DUPLICATE;
			return 0;
		}
		item_reject(b, i, "submission %s came twice with other payloads", c->row.id);
		return finding(b, "sha256_conflict", c->row.form, c->row.period, c->row.school_id,
		               c->row.id, b->results[i].reason, c->text, c->len);
	}
	p = &b->pend[b->npend++];
	*p = c->row;
	p->index = i;
	b->pend_bytes += p->len;
	b->seen[b->nseen++] = *p;
	b->slots[seen_slot(b, p->id)] = b->nseen;
	b->results[i].status = ITEM_PENDING;
	if (b->safe)
		return 0;
	/* the fast path: the row goes to the server now, which stores it while the items
	 * after it are being checked */
	if (!b->copying) {
		r = db_copy_start(b->db, copy_direct_sql, b->err, sizeof(b->err));
		if (r < 0)
			return r;
		b->copying = 1;
	}
	return db_copy_put(b->db, p->row, p->len, b->err, sizeof(b->err));
}

/* The pending returns that some row of res (submission_id, payload_sha256, county_id =
 * this county) holds already: duplicates when the same county holds the same payload,
 * else refused with a finding. Others are left pending. */
static int mark_held(struct ingest_batch *b, PGresult *res)
{
	for (int i = 0; i < PQntuples(res); i++) {
		struct pending key, *p;
		const char *held = PQgetvalue(res, i, 1);
		int same_county = strcmp(PQgetvalue(res, i, 2), "t") == 0, r;

		snprintf(key.id, sizeof(key.id), "%s", PQgetvalue(res, i, 0));
		p = bsearch(&key, b->pend, b->npend, sizeof(*b->pend), compare_id);
		if (!p || b->results[p->index].status != ITEM_PENDING)
			continue;
		if (same_county && strcmp(held, p->sha256) == 0) {
			b->results[p->index].status = ITEM_DUPLICATE;
			continue;
		}
		item_reject(b, p->index,
		            "submission %s is held already with another payload (sha256 %s)", p->id,
		            held);
		r = finding(b, "sha256_conflict", p->form, p->period, p->school_id, p->id,
		            b->results[p->index].reason, NULL, 0);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Looks up the pending returns among those held, and marks them (mark_held). */
static int lookup_held(struct ingest_batch *b)
{
	struct pg_result *res = NULL;
	struct buf ids;
	size_t left = 0;
	int n, r;

	buf_init(&ids, (size_t)INGEST_ITEMS_MAX * (IDS_UUID_LEN + 1) + 8);
	r = buf_putc(&ids, '{');
	for (size_t i = 0; r == 0 && i < b->npend; i++)
		if (b->results[b->pend[i].index].status == ITEM_PENDING)
			r = buf_printf(&ids, "%s%s", left++ ? "," : "", b->pend[i].id);
	r = r < 0 ? r : buf_putc(&ids, '}');
	if (r == 0 && left > 0) {
		const char *params[2] = {ids.data, b->county};

		n = db_query(b->db,
		             "SELECT submission_id::text, payload_sha256, county_id = $2"
		             " FROM submissions WHERE submission_id = ANY($1::uuid[])",
		             2, params, &res, b->err, sizeof(b->err));
		r = n < 0 ? n : mark_held(b, (PGresult *)res);
	}
	db_result_free(res);
	buf_release(&ids);
	return r;
}

/* The rows of the pending returns, in *rows. */
static int pending_rows(const struct ingest_batch *b, struct buf *rows)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < b->npend; i++)
		r = buf_append(rows, b->pend[i].row, b->pend[i].len);
	return r;
}

/* Stores the pending returns in one of two ways:
 *   fast (the usual): their rows went into one COPY straight into submissions as they
 *     came (store_submission()), the same work as a bare COPY; here it ends. A return
 *     held already (a batch sent again, another payload under a held id, or a concurrent
 *     batch that stored it meanwhile) makes it fail on the unique key, and the whole
 *     batch is then applied again the safe way (apply());
 *   safe: COPY into the temporary table ingest_rows, one INSERT ... ON CONFLICT
 *     (submission_id) DO NOTHING RETURNING, and the look-up of those not inserted: held
 *     already by this county with the same payload (duplicates), or else refused. */
static int flush(struct ingest_batch *b)
{
	struct pg_result *res = NULL;
	struct buf rows;
	int n, r = 0;

	if (b->npend == 0)
		return 0;
	qsort(b->pend, b->npend, sizeof(*b->pend), compare_id);
	buf_init(&rows, b->pend_bytes + 1);
	if (!b->safe) {
		if (b->copying) {
			b->copying = 0;
			n = db_copy_end(b->db, b->err, sizeof(b->err));
			r = n < 0 ? n : 0;
		}
		for (size_t i = 0; r == 0 && i < b->npend; i++)
			b->results[b->pend[i].index].status = ITEM_STORED;
		goto out;
	}
	r = pending_rows(b, &rows);
	if (r < 0)
		goto out;
	n = db_copy_in(b->db, copy_safe_sql, rows.data, rows.len, b->err, sizeof(b->err));
	if (n >= 0)
		n = db_query(b->db, insert_safe_sql, 0, NULL, &res, b->err, sizeof(b->err));
	if (n < 0) {
		r = n;
		goto out;
	}
	/* what was inserted is stored; the rest was held already */
	for (int i = 0; i < n; i++) {
		struct pending key, *p;

		snprintf(key.id, sizeof(key.id), "%s", PQgetvalue((PGresult *)res, i, 0));
		p = bsearch(&key, b->pend, b->npend, sizeof(*b->pend), compare_id);
		if (p)
			b->results[p->index].status = ITEM_STORED;
	}
	/* a statement of its own: it sees what concurrent batches committed meanwhile */
	r = lookup_held(b);
	for (size_t i = 0; r == 0 && i < b->npend; i++)
		if (b->results[b->pend[i].index].status == ITEM_PENDING) {
			/* cannot happen: neither inserted nor held */
			snprintf(b->err, sizeof(b->err),
			         "submission %s was neither stored nor found", b->pend[i].id);
			r = -EIO;
		}
	if (r == 0) {
		n = db_exec(b->db, "TRUNCATE ingest_rows", 0, NULL, b->err, sizeof(b->err));
		r = n < 0 ? n : 0;
	}
out:
	if (r == 0) {
		b->npend = 0;
		b->pend_bytes = 0;
	}
	db_result_free(res);
	buf_release(&rows);
	return r;
}

/* --- the store: rosters and roll-ups ---------------------------------------------------- */

/* Roster i: stored with its schools, or found held with the same text (a duplicate) or
 * another (rejected). Either of the first two gives the returns after it its keys, when
 * it is the latest version. */
static int store_roster(struct ingest_batch *b, size_t i)
{
	struct item_check *c = &b->checks[i];
	struct pg_result *res = NULL;
	char version_text[32];
	const char *params[5];
	int r, n;

	if (c->refused)
		return item_refused(b, i);
	/* the returns before it first: their COPY may be open */
	r = flush(b);
	if (r < 0)
		return r;
	snprintf(version_text, sizeof(version_text), "%lld", c->roster.version);
	params[0] = b->county;
	params[1] = version_text;
	params[2] = member_string(c->payload, "issued_at");
	params[3] = c->text;
	params[4] = b->now;
	n = db_exec(b->db,
	            "INSERT INTO rosters (county_id, version, issued_at, jws, region_received_at)"
	            " VALUES ($1, $2::bigint, $3::timestamptz, $4, $5::timestamptz)"
	            " ON CONFLICT (county_id, version) DO NOTHING",
	            5, params, b->err, sizeof(b->err));
	if (n < 0)
		return n;
	if (n == 0) {
		/* that version is here already: the same text is a resend */
		n = db_query(b->db,
		             "SELECT jws = $3 FROM rosters WHERE county_id = $1 AND version = "
		             "$2::bigint",
		             3, (const char *[]){b->county, version_text, c->text}, &res, b->err,
		             sizeof(b->err));
		if (n < 0)
			return n;
		r = n == 1 && strcmp(PQgetvalue((PGresult *)res, 0, 0), "t") == 0;
		db_result_free(res);
		if (!r) {
			item_reject(b, i, "roster version %lld is held already with another text",
			            c->roster.version);
			return finding(b, "roster_conflict", NULL, NULL, NULL, NULL,
			               b->results[i].reason, c->text, c->len);
		}
		b->results[i].status = ITEM_DUPLICATE;
	} else {
		params[2] = c->rows_text;
		n = db_exec(
		        b->db,
		        "INSERT INTO roster_schools (county_id, version, school_id, name, type,"
		        " opened, closed, public_key)"
		        " SELECT $1, $2::bigint, s.school_id, s.name, s.type, s.opened, s.closed,"
		        " s.key FROM jsonb_to_recordset($3::jsonb) AS s(school_id text, name text,"
		        " type text, opened date, closed date, key jsonb)",
		        3, params, b->err, sizeof(b->err));
		if (n < 0)
			return n;
		b->results[i].status = ITEM_STORED;
	}
	if (c->roster.version > b->keyset->version)
		b->keyset = &c->roster;
	return 0;
}

/* Recomputes the roll-up from the returns it lists, as held here, and compares. Adds
 * the differences to diffs (a listed return missing here, or held with another hash,
 * counts as one). Returns the number of differences or a negative errno. */
static int rollup_recompute(struct ingest_batch *b, const cJSON *p, const char *ids,
                            struct errlist *diffs)
{
	const cJSON *listed = cJSON_GetObjectItemCaseSensitive(p, "submissions"), *e;
	const struct rollup_plan *plan = plan_of(b->srv, member_string(p, "form"));
	const char *params[2] = {b->county, ids};
	struct pg_result *res = NULL;
	struct rollup roll;
	struct pending *held = NULL;
	cJSON *mine = NULL;
	size_t nheld = 0;
	int n, r, problems = 0;

	r = rollup_init(&roll, plan);
	if (r < 0)
		return r;
	n = db_query(b->db,
	             "SELECT submission_id::text, payload_sha256, (payload->'data')::text"
	             " FROM submissions WHERE county_id = $1 AND submission_id = ANY($2::uuid[])",
	             2, params, &res, b->err, sizeof(b->err));
	if (n < 0) {
		r = n;
		goto out;
	}
	held = calloc((size_t)n + 1, sizeof(*held));
	if (!held) {
		r = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		snprintf(held[i].id, sizeof(held[i].id), "%s", PQgetvalue((PGresult *)res, i, 0));
		snprintf(held[i].sha256, sizeof(held[i].sha256), "%s",
		         PQgetvalue((PGresult *)res, i, 1));
		held[i].index = (size_t)i;
	}
	nheld = (size_t)n;
	qsort(held, nheld, sizeof(*held), compare_id);
	cJSON_ArrayForEach(e, listed)
	{
		struct pending key, *h;
		const char *text;
		cJSON *data = NULL;

		snprintf(key.id, sizeof(key.id), "%s", member_string(e, "submission_id"));
		h = nheld ? bsearch(&key, held, nheld, sizeof(*held), compare_id) : NULL;
		if (!h) {
			problems++;
			r = errlist_add(diffs, ERRLIST_ERROR, "/submissions", "missing_at_region",
			                "return %s is not held at the region", key.id);
		} else if (strcmp(h->sha256, member_string(e, "sha256")) != 0) {
			problems++;
			r = errlist_add(diffs, ERRLIST_ERROR, "/submissions", "sha256_differs",
			                "return %s is held with sha256 %s", key.id, h->sha256);
		} else {
			text = PQgetvalue((PGresult *)res, (int)h->index, 2);
			r = json_parse_untrusted(text, strlen(text), JSON_MAX_DEPTH, &data, NULL,
			                         0);
			if (r == 0)
				r = rollup_add(&roll, data);
			cJSON_Delete(data);
			if (r == -EINVAL || r == -E2BIG || r == -EOVERFLOW) {
				problems++;
				r = errlist_add(diffs, ERRLIST_ERROR, "/submissions", "rollup",
				                "return %s does not fit the roll-up", key.id);
			}
		}
		if (r < 0)
			goto out;
	}
	r = rollup_to_json(&roll, &mine);
	if (r < 0)
		goto out;
	r = rollup_diff(mine, cJSON_GetObjectItemCaseSensitive(p, "rollup"), diffs);
	if (r >= 0)
		r += problems;
out:
	cJSON_Delete(mine);
	free(held);
	db_result_free(res);
	rollup_release(&roll);
	return r;
}

/* Roll-up i: stored with the returns it lists (after the returns before it), recomputed
 * from them and flagged when it does not match; or found held (a duplicate, or another
 * text: rejected). */
static int store_rollup(struct ingest_batch *b, size_t index)
{
	const struct item_check *c = &b->checks[index];
	const cJSON *payload = c->payload;
	const char *text = c->text;
	size_t len = c->len, count = c->count;
	struct pg_result *res = NULL;
	struct errlist diffs;
	struct buf detail;
	char *rollup_text = NULL, *missing_text = NULL, *listed_text = NULL;
	char expected[24], received[24], on_time[24], rollup_id[24];
	const char *form, *period;
	long long v;
	int r, n;

	if (c->refused)
		return item_refused(b, index);
	errlist_init(&diffs);
	buf_init(&detail, 4096);
	/* the returns before it are stored first: it may list them */
	r = flush(b);
	if (r < 0)
		goto out;
	form = member_string(payload, "form");
	period = member_string(payload, "period");
	expected[0] = '\0';
	if (member_int(payload, "expected", 0, INT32_MAX, 1, &v) == 0)
		snprintf(expected, sizeof(expected), "%lld", v);
	if (member_int(payload, "received", 0, INT32_MAX, 0, &v) == 0)
		snprintf(received, sizeof(received), "%lld", v);
	if (member_int(payload, "on_time", 0, INT32_MAX, 0, &v) == 0)
		snprintf(on_time, sizeof(on_time), "%lld", v);
	rollup_text = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(payload, "rollup"));
	missing_text = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(payload, "missing"));
	listed_text =
	        cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(payload, "submissions"));
	if (!rollup_text || !missing_text || !listed_text) {
		r = -ENOMEM;
		goto out;
	}
	{
		const char *params[14] = {
		        b->county,
		        form,
		        period,
		        member_string(payload, "status"),
		        member_string(payload, "computed_at"),
		        expected[0] ? expected : NULL,
		        received,
		        on_time,
		        rollup_text,
		        missing_text,
		        (const char *)c->jws.payload,
		        text,
		        b->now,
		        b->batch_id,
		};

		n = db_query(b->db,
		             "INSERT INTO rollups (county_id, form, period, status, computed_at,"
		             " expected, received, on_time, rollup, missing, payload, jws,"
		             " signature_verified, region_received_at, batch_id)"
		             " VALUES ($1, $2, $3, $4, $5::timestamptz, $6::integer, $7::integer,"
		             " $8::integer, $9::jsonb, ARRAY(SELECT "
		             "jsonb_array_elements_text($10::jsonb)),"
		             " $11::jsonb, $12, true, $13::timestamptz, $14::uuid)"
		             " ON CONFLICT (county_id, form, period, computed_at) DO NOTHING"
		             " RETURNING rollup_id",
		             14, params, &res, b->err, sizeof(b->err));
	}
	if (n < 0) {
		r = n;
		goto out;
	}
	if (n == 0) {
		const char *params[5] = {b->county, form, period,
		                         member_string(payload, "computed_at"), text};

		db_result_free(res);
		res = NULL;
		n = db_query(b->db,
		             "SELECT jws = $5 FROM rollups WHERE county_id = $1 AND form = $2"
		             " AND period = $3 AND computed_at = $4::timestamptz",
		             5, params, &res, b->err, sizeof(b->err));
		if (n < 0) {
			r = n;
			goto out;
		}
		if (n == 1 && strcmp(PQgetvalue((PGresult *)res, 0, 0), "t") == 0) {
			b->results[index].status = ITEM_DUPLICATE;
			r = 0;
		} else {
			item_reject(b, index,
			            "rollup: a roll-up of %s %s computed at %s is held already "
			            "with another text",
			            form, period, member_string(payload, "computed_at"));
			r = finding(b, "rollup_conflict", form, period, NULL, NULL,
			            b->results[index].reason, text, len);
		}
		goto out;
	}
	snprintf(rollup_id, sizeof(rollup_id), "%s", PQgetvalue((PGresult *)res, 0, 0));
	{
		const char *params[3] = {b->county, rollup_id, listed_text};

		n = db_exec(
		        b->db,
		        "INSERT INTO rollup_submissions (county_id, rollup_id, submission_id, "
		        "sha256)"
		        " SELECT $1, $2::bigint, l.submission_id, l.sha256"
		        " FROM jsonb_to_recordset($3::jsonb) AS l(submission_id uuid, sha256 text)",
		        3, params, b->err, sizeof(b->err));
	}
	if (n < 0) {
		r = n;
		goto out;
	}
	r = rollup_recompute(b, payload, c->ids.data, &diffs);
	if (r < 0)
		goto out;
	b->results[index].status = ITEM_STORED;
	if (r > 0) {
		int k = buf_printf(&detail,
		                   "the roll-up of %s %s computed at %s does not match the "
		                   "%zu returns it lists (%d difference%s): ",
		                   form, period, member_string(payload, "computed_at"), count, r,
		                   r == 1 ? "" : "s");

		for (size_t i = 0; k == 0 && i < diffs.count && i < 10; i++)
			k = buf_printf(&detail, "%s%s %s: %s", i ? "; " : "",
			               diffs.entries[i].keyword, diffs.entries[i].pointer,
			               diffs.entries[i].message);
		if (k == -ENOMEM) {
			r = k;
			goto out;
		}
		item_reject(b, index,
		            "rollup: does not match the returns it lists (%d difference%s), "
		            "stored and flagged",
		            r, r == 1 ? "" : "s");
		r = finding(b, "rollup_mismatch", form, period, NULL, NULL,
		            detail.data ? detail.data : "roll-up mismatch", NULL, 0);
		goto out;
	}
	r = 0;
out:
	db_result_free(res);
	free(rollup_text);
	free(missing_text);
	free(listed_text);
	buf_release(&detail);
	errlist_release(&diffs);
	return r;
}

/* --- the store: the batch ------------------------------------------------------------- */

static int findings_store(struct ingest_batch *b)
{
	char *text;
	int n;

	if (b->nfindings == 0)
		return 0;
	text = cJSON_PrintUnformatted(b->findings);
	if (!text)
		return -ENOMEM;
	/* a batch sent again records nothing twice */
	n = db_exec(b->db,
	            "INSERT INTO integrity_findings (county_id, found_at, batch_id, kind, form,"
	            " period, school_id, submission_id, detail, evidence)"
	            " SELECT $1, $2::timestamptz, $3::uuid, f.kind, f.form, f.period, f.school_id,"
	            " f.submission_id, f.detail, f.evidence"
	            " FROM jsonb_to_recordset($4::jsonb) AS f(kind text, form text, period text,"
	            " school_id text, submission_id uuid, detail text, evidence text)"
	            " WHERE NOT EXISTS (SELECT 1 FROM integrity_findings x WHERE x.county_id = $1"
	            " AND x.kind = f.kind AND x.form IS NOT DISTINCT FROM f.form"
	            " AND x.period IS NOT DISTINCT FROM f.period"
	            " AND x.submission_id IS NOT DISTINCT FROM f.submission_id"
	            " AND x.detail = f.detail AND x.evidence IS NOT DISTINCT FROM f.evidence)",
	            4, (const char *[]){b->county, b->now, b->batch_id, text}, b->err,
	            sizeof(b->err));
	free(text);
	return n < 0 ? n : 0;
}

/* Forgets what an attempt to store the batch did, before the first or another. */
static int store_reset(struct ingest_batch *b)
{
	memset(b->results, 0, (b->nitems ? b->nitems : 1) * sizeof(*b->results));
	memset(b->slots, 0, b->nslots * sizeof(*b->slots));
	b->keyset = &b->loaded;
	b->nseen = 0;
	b->npend = 0;
	b->pend_bytes = 0;
	b->err[0] = '\0';
	cJSON_Delete(b->findings);
	b->nfindings = 0;
	b->findings = cJSON_CreateArray();
	return b->findings ? 0 : -ENOMEM;
}

/* Applies every item in one transaction. 0 (committed), or a db.h error with b->err. */
static int apply_once(struct ingest_batch *b)
{
	int r;

	r = store_reset(b);
	if (r < 0)
		return r;
	r = db_begin(b->db, b->err, sizeof(b->err));
	if (r < 0)
		return r;
	for (size_t i = 0; r == 0 && i < b->nitems; i++) {
		check_wait(b, i);
		if (b->checks[i].error < 0) {
			r = b->checks[i].error;
			snprintf(b->err, sizeof(b->err), "item %zu could not be checked: %s", i,
			         r == -ENOMEM ? "out of memory" : strerror(-r));
			break;
		}
		switch (b->checks[i].kind) {
		case KIND_SUBMISSION:
			r = store_submission(b, i);
			if (r == 0 && b->safe && b->pend_bytes > COPY_FLUSH)
				r = flush(b);
			break;
		case KIND_ROSTER:
			r = store_roster(b, i);
			break;
		case KIND_ROLLUP:
			r = store_rollup(b, i);
			break;
		default:
			r = item_refused(b, i);
			break;
		}
	}
	if (r == 0)
		r = flush(b);
	if (r == 0)
		r = findings_store(b);
	if (r == 0)
		r = db_commit(b->db, b->err, sizeof(b->err));
	if (r < 0) {
		if (!b->err[0])
			snprintf(b->err, sizeof(b->err), "%s",
			         r == -ENOMEM ? "out of memory" : strerror(-r));
		if (b->copying)
			db_copy_abort(b->db);
		b->copying = 0;
		db_rollback(b->db);
	}
	return r;
}

/* apply_once(), and again the safe way when some of the returns are held already (the
 * fast path's COPY then fails on the unique key: see flush()). */
static int apply(struct ingest_batch *b)
{
	int r = apply_once(b);

	if (r != -EEXIST || b->safe)
		return r;
	b->safe = 1;
	log_info("batch \"%s\" holds returns stored already (sent again, or stored meanwhile): "
	         "applying it again with ON CONFLICT",
	         b->batch_id);
	return apply_once(b);
}

static int answer(const struct ingest_batch *b, struct http_reply *reply, struct ingest_outcome *o)
{
	cJSON *root = cJSON_CreateObject(), *results, *x;
	char *text;

	if (!root || !cJSON_AddStringToObject(root, "batch_id", b->batch_id) ||
	    !(results = cJSON_AddArrayToObject(root, "results")))
		goto nomem;
	for (size_t i = 0; i < b->nitems; i++) {
		static const char *const names[] = {"rejected", "stored", "duplicate", "rejected"};
		const struct item_result *res = &b->results[i];

		x = cJSON_CreateObject();
		if (!x)
			goto nomem;
		cJSON_AddItemToArray(results, x);
		if (!cJSON_AddNumberToObject(x, "index", (double)i) ||
		    !cJSON_AddStringToObject(x, "status", names[res->status]) ||
		    (res->status == ITEM_REJECTED &&
		     !cJSON_AddStringToObject(x, "reason", res->reason)))
			goto nomem;
		o->stored += res->status == ITEM_STORED;
		o->duplicates += res->status == ITEM_DUPLICATE;
		o->rejected += res->status == ITEM_REJECTED;
	}
	text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!text)
		return -ENOMEM;
	http_reply_release(reply);
	reply->status = 200;
	reply->body = text;
	reply->len = strlen(text);
	reply->content_type = "application/json";
	o->status = 200;
	return 0;
nomem:
	cJSON_Delete(root);
	return -ENOMEM;
}

int ingest_store(struct ingest_batch *b, struct db *db, struct http_reply *reply,
                 struct ingest_outcome *ret)
{
	char msg[DB_ERR_MAX + 64];
	int r;

	b->db = db;
	r = apply(b);
	b->db = NULL;
	if (r < 0) {
		snprintf(msg, sizeof(msg), "the batch could not be stored: %s", b->err);
		return refuse(reply, ret, r == -ENOMEM ? 500 : db_status(r),
		              r == -ENOMEM ? "internal" : "unavailable", msg);
	}
	ret->findings = b->nfindings;
	/* committed: only memory can fail now, and a resend is answered as duplicates */
	return answer(b, reply, ret);
}

/* --- the database's side of the check -------------------------------------------------- */

/* ingest_source.county_key from the counties table (data: the struct db). */
static int db_county_key(void *data, const char *county_id, unsigned char ret_pk[32])
{
	const char *params[1] = {county_id};
	struct pg_result *res = NULL;
	char err[DB_ERR_MAX];
	int n, r;

	n = db_query(data, "SELECT hub_key->>'x' FROM counties WHERE county_id = $1", 1, params,
	             &res, err, sizeof(err));
	if (n < 0) {
		log_warning("cannot read the key of county \"%s\": %s", county_id, err);
		return n;
	}
	r = n == 1 ? decode_x(PQgetvalue((PGresult *)res, 0, 0), ret_pk) : -ENOKEY;
	db_result_free(res);
	return r < 0 ? -ENOKEY : 0;
}

/* ingest_source.roster: the county's latest roster, as committed (data: the struct db). */
static int db_roster(void *data, const char *county_id, long long *ret_version,
                     struct ingest_school_key **ret_keys, size_t *ret_nkeys)
{
	const char *params[1] = {county_id};
	struct ingest_school_key *keys = NULL;
	struct pg_result *res = NULL;
	long long version = 0;
	char err[DB_ERR_MAX];
	size_t nkeys = 0;
	PGresult *pg;
	int n;

	n = db_query(data,
	             "SELECT c.roster_version, s.school_id, s.public_key->>'x' FROM counties c"
	             " LEFT JOIN roster_schools s ON s.county_id = c.county_id"
	             " AND s.version = c.roster_version WHERE c.county_id = $1",
	             1, params, &res, err, sizeof(err));
	if (n < 0) {
		log_warning("cannot read the roster of county \"%s\": %s", county_id, err);
		return n;
	}
	pg = (PGresult *)res;
	if (n > 0 && !PQgetisnull(pg, 0, 0))
		version = strtoll(PQgetvalue(pg, 0, 0), NULL, 10);
	if (n > 0 && !PQgetisnull(pg, 0, 1)) {
		keys = calloc((size_t)n, sizeof(*keys));
		if (!keys) {
			db_result_free(res);
			return -ENOMEM;
		}
		for (int i = 0; i < n; i++) {
			struct ingest_school_key *k = &keys[nkeys];

			snprintf(k->school_id, sizeof(k->school_id), "%s", PQgetvalue(pg, i, 1));
			if (decode_x(PQgetvalue(pg, i, 2), k->pk) == 0)
				nkeys++;
		}
	}
	db_result_free(res);
	*ret_version = version;
	*ret_keys = keys;
	*ret_nkeys = nkeys;
	return 0;
}

int ingest_handle(struct server *srv, struct worker *w, const char *body, size_t len,
                  struct http_reply *reply, struct ingest_outcome *ret)
{
	const struct ingest_source src = {
	        .county_key = db_county_key,
	        .roster = db_roster,
	        .data = w->db,
	};
	struct ingest_batch *b = NULL;
	int r;

	r = ingest_check(srv, &src, &w->inflater, &w->plain, body, len, &b, reply, ret);
	if (r == 0 && b)
		r = ingest_store(b, w->db, reply, ret);
	ingest_batch_free(b);
	return r;
}
