/* The ingest of county batches: see ingest.h. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
#define COPY_FLUSH (8u << 20) /* bytes of pending COPY data that trigger a flush */
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

/* A return waiting in the COPY buffer. */
struct pending {
	size_t index;
	size_t off, len; /* its row in the COPY text */
	char id[IDS_UUID_LEN + 1];
	char sha256[IDS_SHA256_HEX_LEN + 1];
	char school_id[16];
	char form[FORM_ID_MAX + 1];
	char period[16];
};

struct roster_key {
	char school_id[16];
	unsigned char pk[32];
};

struct batch {
	struct server *srv;
	struct db *db;
	char county[8];
	char batch_id[IDS_UUID_LEN + 1];
	char now[DATETIME_RFC3339_MAX]; /* the region's receive time of everything in it */
	struct jwk county_key;
	/* the county's latest roster, as the items so far leave it */
	long long roster_version; /* 0: none */
	struct roster_key *keys;
	size_t nkeys;
	struct item_result *results;
	size_t nitems;
	/* returns seen in this batch, for duplicates inside it, and their hash */
	struct pending *seen;
	size_t nseen;
	size_t *slots; /* index + 1 into seen, 0: empty */
	size_t nslots;
	/* the returns not yet flushed */
	int safe; /* flush through the temporary table (see flush()) */
	struct buf copy;
	struct pending *pend;
	size_t npend;
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

static void item_reject(struct batch *b, size_t i, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void item_reject(struct batch *b, size_t i, const char *fmt, ...)
{
	va_list ap;

	b->results[i].status = ITEM_REJECTED;
	va_start(ap, fmt);
	vsnprintf(b->results[i].reason, sizeof(b->results[i].reason), fmt, ap);
	va_end(ap);
	/* a reason is one line */
	for (char *p = b->results[i].reason; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

static int put_or_null(cJSON *o, const char *name, const char *value)
{
	return (value ? cJSON_AddStringToObject(o, name, value) : cJSON_AddNullToObject(o, name))
	               ? 0
	               : -ENOMEM;
}

/* Records an integrity finding (inserted with the others before COMMIT). evidence is the
 * offending text (may be NULL), cut at INGEST_EVIDENCE_MAX. */
static int finding(struct batch *b, const char *kind, const char *form, const char *period,
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

/* A county-signed item: parses text, checks the kid and the county's signature, parses
 * the payload. 0 with *ret_payload (caller frees with cJSON_Delete) and *ret_jws (caller
 * releases); -EBADMSG (not a JWS or its payload not JSON) or -EKEYREJECTED with why;
 * -ENOMEM. */
static int county_item(struct batch *b, const char *text, size_t len, struct jws *ret_jws,
                       cJSON **ret_payload, char *why, size_t whylen)
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
	return strcmp(((const struct roster_key *)a)->school_id,
	              ((const struct roster_key *)b)->school_id);
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

/* Loads the county's latest roster, as committed, into b->keys. */
static int roster_load(struct batch *b)
{
	const char *params[1] = {b->county};
	struct pg_result *res = NULL;
	PGresult *pg;
	int n, r;

	n = db_query(b->db,
	             "SELECT c.roster_version, s.school_id, s.public_key->>'x' FROM counties c"
	             " LEFT JOIN roster_schools s ON s.county_id = c.county_id"
	             " AND s.version = c.roster_version WHERE c.county_id = $1",
	             1, params, &res, b->err, sizeof(b->err));
	if (n < 0)
		return n;
	pg = (PGresult *)res;
	free(b->keys);
	b->keys = NULL;
	b->nkeys = 0;
	b->roster_version = 0;
	r = 0;
	if (n > 0 && !PQgetisnull(pg, 0, 0))
		b->roster_version = strtoll(PQgetvalue(pg, 0, 0), NULL, 10);
	if (n > 0 && !PQgetisnull(pg, 0, 1)) {
		b->keys = calloc((size_t)n, sizeof(*b->keys));
		if (!b->keys) {
			r = -ENOMEM;
			goto out;
		}
		for (int i = 0; i < n; i++) {
			struct roster_key *k = &b->keys[b->nkeys];

			snprintf(k->school_id, sizeof(k->school_id), "%s", PQgetvalue(pg, i, 1));
			if (decode_x(PQgetvalue(pg, i, 2), k->pk) == 0)
				b->nkeys++;
		}
		qsort(b->keys, b->nkeys, sizeof(*b->keys), compare_key);
	}
out:
	db_result_free(res);
	return r;
}

/* submission_context.lookup_key over the roster in memory. */
static int lookup_key(void *data, const char *kid, struct jwk *ret_key, char *err, size_t errlen)
{
	const struct batch *b = data;
	struct roster_key key, *k;

	snprintf(key.school_id, sizeof(key.school_id), "%s", kid);
	k = b->nkeys && strlen(kid) < sizeof(key.school_id)
	            ? bsearch(&key, b->keys, b->nkeys, sizeof(*b->keys), compare_key)
	            : NULL;
	if (!k) {
		snprintf(err, errlen, "school \"%s\" is not in the county's roster (version %lld)",
		         kid, b->roster_version);
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
                        cJSON **ret_rows, struct roster_key **ret_keys, size_t *ret_nkeys,
                        char *why, size_t whylen)
{
	const cJSON *schools = cJSON_GetObjectItemCaseSensitive(p, "schools"), *s;
	const char *type = member_string(p, "type"), *cid = member_string(p, "county_id");
	struct roster_key *keys = NULL;
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

static int roster_item(struct batch *b, size_t index, const char *text, size_t len)
{
	struct roster_key *keys = NULL;
	struct pg_result *res = NULL;
	struct jws j;
	cJSON *payload = NULL, *rows = NULL;
	char why[512] = "", version_text[32], *rows_text = NULL;
	const char *params[6];
	long long version = 0;
	size_t nkeys = 0;
	int r, n;

	jws_init(&j);
	r = county_item(b, text, len, &j, &payload, why, sizeof(why));
	if (r == -ENOMEM)
		goto out;
	if (r == 0)
		r = roster_check(payload, b->county, &version, &rows, &keys, &nkeys, why,
		                 sizeof(why));
	if (r == -ENOMEM)
		goto out;
	if (r < 0) {
		item_reject(b, index, "roster: %s", why);
		r = finding(b, "roster_rejected", NULL, NULL, NULL, NULL, b->results[index].reason,
		            text, len);
		goto out;
	}
	snprintf(version_text, sizeof(version_text), "%lld", version);
	params[0] = b->county;
	params[1] = version_text;
	params[2] = member_string(payload, "issued_at");
	params[3] = text;
	params[4] = b->now;
	n = db_exec(b->db,
	            "INSERT INTO rosters (county_id, version, issued_at, jws, region_received_at)"
	            " VALUES ($1, $2::bigint, $3::timestamptz, $4, $5::timestamptz)"
	            " ON CONFLICT (county_id, version) DO NOTHING",
	            5, params, b->err, sizeof(b->err));
	if (n < 0) {
		r = n;
		goto out;
	}
	if (n == 0) {
		/* that version is here already: the same text is a resend */
		n = db_query(b->db,
		             "SELECT jws = $3 FROM rosters WHERE county_id = $1 AND version = "
		             "$2::bigint",
		             3, (const char *[]){b->county, version_text, text}, &res, b->err,
		             sizeof(b->err));
		if (n < 0) {
			r = n;
			goto out;
		}
		if (n == 1 && strcmp(PQgetvalue((PGresult *)res, 0, 0), "t") == 0) {
			b->results[index].status = ITEM_DUPLICATE;
		} else {
			item_reject(b, index,
			            "roster version %lld is held already with another text",
			            version);
			r = finding(b, "roster_conflict", NULL, NULL, NULL, NULL,
			            b->results[index].reason, text, len);
			goto out;
		}
	} else {
		rows_text = cJSON_PrintUnformatted(rows);
		if (!rows_text) {
			r = -ENOMEM;
			goto out;
		}
		params[2] = rows_text;
		n = db_exec(
		        b->db,
		        "INSERT INTO roster_schools (county_id, version, school_id, name, type,"
		        " opened, closed, public_key)"
		        " SELECT $1, $2::bigint, s.school_id, s.name, s.type, s.opened, s.closed,"
		        " s.key FROM jsonb_to_recordset($3::jsonb) AS s(school_id text, name text,"
		        " type text, opened date, closed date, key jsonb)",
		        3, params, b->err, sizeof(b->err));
		if (n < 0) {
			r = n;
			goto out;
		}
		b->results[index].status = ITEM_STORED;
	}
	if (version > b->roster_version) {
		free(b->keys);
		b->keys = keys;
		b->nkeys = nkeys;
		b->roster_version = version;
		keys = NULL;
	}
	r = 0;
out:
	db_result_free(res);
	free(rows_text);
	free(keys);
	cJSON_Delete(rows);
	cJSON_Delete(payload);
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
static int receipt_check(struct batch *b, const char *text, const struct submission *s,
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
	r = jws_parse(&j, text, strlen(text), 64 * 1024, msg, sizeof(msg));
	if (r == -ENOMEM)
		goto out;
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

/* The slot of id in the batch's hash of returns seen (open addressing over twice as many
 * slots as items): the one holding it, or the empty one where it goes. */
static size_t seen_slot(const struct batch *b, const char *id)
{
	size_t h = 5381, n = b->nslots;

	for (const char *p = id; *p; p++)
		h = h * 33 + (unsigned char)*p;
	for (h %= n; b->slots[h] && strcmp(b->seen[b->slots[h] - 1].id, id) != 0; h = (h + 1) % n)
		;
	return h;
}

static struct pending *seen_find(struct batch *b, const char *id)
{
	size_t slot = seen_slot(b, id);

	return b->slots[slot] ? &b->seen[b->slots[slot] - 1] : NULL;
}

static int submission_item(struct batch *b, size_t index, const char *text, size_t len,
                           const char *receipt)
{
	struct submission_context ctx = {
	        .envelope = b->srv->envelope,
	        .forms = b->srv->forms,
	        .county_id = b->county,
	        .lookup_key = lookup_key,
	        .lookup_data = b,
	        .max_text = INGEST_TEXT_MAX,
	};
	enum submission_verdict verdict;
	struct submission s;
	struct pending *p, *seen;
	struct buf *out = &b->copy;
	cJSON *rc = NULL;
	const char *received_at = NULL, *on_time = NULL;
	char why[512] = "", sha[IDS_SHA256_HEX_LEN + 1], num[32], version[16];
	size_t start;
	int r;

	submission_init(&s);
	r = submission_check(&ctx, text, len, NULL, why, sizeof(why), &verdict, &s);
	if (r < 0)
		goto out;
	if (verdict != SUBMISSION_ACCEPTABLE) {
		item_reject(b, index, "%s: %s", submission_verdict_code(verdict), why);
		r = finding(b, finding_kind(verdict), NULL, NULL, NULL, NULL,
		            b->results[index].reason, text, len);
		goto out;
	}
	ids_sha256_hex(s.jws.payload, s.jws.payload_len, sha);
	if (!instant_valid(s.created_at) ||
	    (s.supersedes && strcmp(s.supersedes, s.submission_id) == 0)) {
		item_reject(b, index, "invalid: created_at or supersedes is not usable");
		r = finding(b, "invalid_return", s.form->id, s.period, s.school_id, s.submission_id,
		            b->results[index].reason, text, len);
		goto out;
	}
	r = receipt_check(b, receipt, &s, sha, &rc, &received_at, &on_time, why, sizeof(why));
	if (r == -ENOMEM)
		goto out;
	if (r < 0) {
		item_reject(b, index, "receipt: %s", why);
		r = finding(b, "receipt_invalid", s.form->id, s.period, s.school_id,
		            s.submission_id, b->results[index].reason, receipt ? receipt : text,
		            receipt ? strlen(receipt) : len);
		goto out;
	}
	seen = seen_find(b, s.submission_id);
	if (seen) {
		if (strcmp(seen->sha256, sha) == 0) {
			b->results[index].status = ITEM_DUPLICATE;
		} else {
			item_reject(b, index, "submission %s came twice with other payloads",
			            s.submission_id);
			r = finding(b, "sha256_conflict", s.form->id, s.period, s.school_id,
			            s.submission_id, b->results[index].reason, text, len);
		}
		goto out;
	}
	/* the COPY row */
	start = out->len;
	snprintf(version, sizeof(version), "%d", s.form->version);
	r = copy_text(out, s.submission_id, 0);
	r = r < 0 ? r : copy_text(out, b->county, 0);
	r = r < 0 ? r : copy_text(out, s.school_id, 0);
	r = r < 0 ? r : copy_text(out, s.form->id, 0);
	r = r < 0 ? r : copy_text(out, version, 0);
	r = r < 0 ? r : copy_text(out, s.period, 0);
	r = r < 0 ? r : copy_field(out, (const char *)s.jws.payload, s.jws.payload_len, 0);
	r = r < 0 ? r : copy_field(out, text, len, 0);
	r = r < 0 ? r : copy_text(out, sha, 0);
	r = r < 0 ? r : copy_text(out, receipt, 0);
	r = r < 0 ? r : copy_text(out, "t", 0);
	r = r < 0 ? r : copy_text(out, s.created_at, 0);
	r = r < 0 ? r : copy_text(out, received_at, 0);
	r = r < 0 ? r : copy_text(out, b->now, 0);
	r = r < 0 ? r : copy_text(out, on_time, 0);
	r = r < 0 ? r : copy_text(out, s.supersedes, 0);
	r = r < 0 ? r : copy_text(out, "t", 0);
	snprintf(num, sizeof(num), "%lld", b->roster_version);
	r = r < 0 ? r : copy_text(out, num, 0);
	r = r < 0 ? r : copy_text(out, b->batch_id, 1);
	if (r < 0)
		goto out;
	p = &b->pend[b->npend++];
	memset(p, 0, sizeof(*p));
	p->index = index;
	p->off = start;
	p->len = out->len - start;
	snprintf(p->id, sizeof(p->id), "%s", s.submission_id);
	snprintf(p->sha256, sizeof(p->sha256), "%s", sha);
	snprintf(p->school_id, sizeof(p->school_id), "%s", s.school_id);
	snprintf(p->form, sizeof(p->form), "%s", s.form->id);
	snprintf(p->period, sizeof(p->period), "%s", s.period);
	b->seen[b->nseen++] = *p;
	b->slots[seen_slot(b, p->id)] = b->nseen;
	b->results[index].status = ITEM_PENDING;
	r = 0;
out:
	cJSON_Delete(rc);
	submission_release(&s);
	return r;
}

static int compare_id(const void *a, const void *b)
{
	return strcmp(((const struct pending *)a)->id, ((const struct pending *)b)->id);
}

/* The pending returns that some row of res (submission_id, payload_sha256, county_id =
 * this county) holds already: duplicates when the same county holds the same payload,
 * else refused with a finding. Others are left pending. */
static int mark_held(struct batch *b, PGresult *res)
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
static int lookup_held(struct batch *b)
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

/* Stores the pending returns in one of two ways:
 *   fast (the usual): look up which are held already, then COPY the others straight into
 *     submissions: the same work as a bare COPY. A return that a concurrent batch stores
 *     between the look-up and the COPY makes the COPY fail on the unique key, and the
 *     whole batch is then applied again the safe way (apply());
 *   safe: COPY into the temporary table ingest_rows, one INSERT ... ON CONFLICT
 *     (submission_id) DO NOTHING RETURNING, and the look-up of those not inserted. */
static int flush(struct batch *b)
{
	struct pg_result *res = NULL;
	struct buf rows;
	int n, r = 0;

	if (b->npend == 0)
		return 0;
	qsort(b->pend, b->npend, sizeof(*b->pend), compare_id);
	buf_init(&rows, b->copy.len + 1);
	if (!b->safe) {
		r = lookup_held(b);
		/* the rows still to store, in one COPY */
		for (size_t i = 0; r == 0 && i < b->npend; i++)
			if (b->results[b->pend[i].index].status == ITEM_PENDING)
				r = buf_append(&rows, b->copy.data + b->pend[i].off,
				               b->pend[i].len);
		if (r == 0 && rows.len > 0) {
			n = db_copy_in(b->db, copy_direct_sql, rows.data, rows.len, b->err,
			               sizeof(b->err));
			r = n < 0 ? n : 0;
		}
		for (size_t i = 0; r == 0 && i < b->npend; i++)
			if (b->results[b->pend[i].index].status == ITEM_PENDING)
				b->results[b->pend[i].index].status = ITEM_STORED;
		goto out;
	}
	n = db_copy_in(b->db, copy_safe_sql, b->copy.data, b->copy.len, b->err, sizeof(b->err));
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
		buf_reset(&b->copy);
		b->npend = 0;
	}
	db_result_free(res);
	buf_release(&rows);
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
static int rollup_check(const struct batch *b, const cJSON *p, struct buf *ids, size_t *ret_count,
                        char *why, size_t whylen)
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

/* Recomputes the roll-up from the returns it lists, as held here, and compares. Adds
 * the differences to diffs (a listed return missing here, or held with another hash,
 * counts as one). Returns the number of differences or a negative errno. */
static int rollup_recompute(struct batch *b, const cJSON *p, const char *ids, struct errlist *diffs)
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

static int rollup_item(struct batch *b, size_t index, const char *text, size_t len)
{
	struct pg_result *res = NULL;
	struct errlist diffs;
	struct buf ids, detail;
	struct jws j;
	cJSON *payload = NULL;
	char why[512] = "", *rollup_text = NULL, *missing_text = NULL, *listed_text = NULL;
	char expected[24], received[24], on_time[24], rollup_id[24];
	const char *form, *period;
	size_t count = 0;
	long long v;
	int r, n;

	jws_init(&j);
	errlist_init(&diffs);
	buf_init(&ids, (size_t)INGEST_ROLLUP_LISTED_MAX * (IDS_UUID_LEN + 1) + 8);
	buf_init(&detail, 4096);
	r = county_item(b, text, len, &j, &payload, why, sizeof(why));
	if (r == 0)
		r = rollup_check(b, payload, &ids, &count, why, sizeof(why));
	if (r == -ENOMEM)
		goto out;
	if (r < 0) {
		item_reject(b, index, "rollup: %s", why);
		r = finding(b, "rollup_rejected", payload ? member_string(payload, "form") : NULL,
		            NULL, NULL, NULL, b->results[index].reason, text, len);
		goto out;
	}
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
		        (const char *)j.payload,
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
	r = rollup_recompute(b, payload, ids.data, &diffs);
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
	buf_release(&ids);
	buf_release(&detail);
	errlist_release(&diffs);
	cJSON_Delete(payload);
	jws_release(&j);
	return r;
}

/* --- the batch ---------------------------------------------------------------------- */

static int findings_store(struct batch *b)
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

/* Applies every item in one transaction. 0 (committed), or a db.h error with b->err. */
static int apply_once(struct batch *b, const cJSON *items)
{
	const cJSON *it;
	size_t i = 0;
	int r;

	r = db_begin(b->db, b->err, sizeof(b->err));
	if (r < 0)
		return r;
	r = roster_load(b);
	cJSON_ArrayForEach(it, items)
	{
		const char *kind = member_string(it, "kind");
		const cJSON *jws = cJSON_GetObjectItemCaseSensitive(it, "jws");
		const char *receipt = member_string(it, "receipt");

		if (r < 0)
			break;
		if (!cJSON_IsObject(it) || !kind || !cJSON_IsString(jws)) {
			item_reject(b, i, "malformed item: it needs a kind and a jws");
			r = finding(b, "malformed_item", NULL, NULL, NULL, NULL,
			            b->results[i].reason, NULL, 0);
		} else if (strcmp(kind, "submission") == 0) {
			r = submission_item(b, i, jws->valuestring, strlen(jws->valuestring),
			                    receipt);
			if (r == 0 && b->copy.len > COPY_FLUSH)
				r = flush(b);
		} else if (strcmp(kind, "roster") == 0) {
			r = roster_item(b, i, jws->valuestring, strlen(jws->valuestring));
		} else if (strcmp(kind, "rollup") == 0) {
			r = rollup_item(b, i, jws->valuestring, strlen(jws->valuestring));
		} else {
			item_reject(b, i, "unknown kind of item");
			r = finding(b, "malformed_item", NULL, NULL, NULL, NULL,
			            b->results[i].reason, NULL, 0);
		}
		i++;
	}
	if (r == 0)
		r = flush(b);
	if (r == 0)
		r = findings_store(b);
	if (r == 0)
		r = db_commit(b->db, b->err, sizeof(b->err));
	if (r < 0) {
		if (r == -ENOMEM && !b->err[0])
			snprintf(b->err, sizeof(b->err), "out of memory");
		db_rollback(b->db);
	}
	return r;
}

/* apply_once(), and again the safe way when a concurrent batch stored one of the returns
 * meanwhile (the fast flush then fails on the unique key: see flush()). */
static int apply(struct batch *b, const cJSON *items)
{
	int r = apply_once(b, items);

	if (r != -EEXIST || b->safe)
		return r;
	memset(b->results, 0, b->nitems * sizeof(*b->results));
	memset(b->slots, 0, b->nslots * sizeof(*b->slots));
	b->nseen = 0;
	b->npend = 0;
	buf_reset(&b->copy);
	cJSON_Delete(b->findings);
	b->findings = cJSON_CreateArray();
	b->nfindings = 0;
	b->err[0] = '\0';
	if (!b->findings)
		return -ENOMEM;
	b->safe = 1;
	log_info("a concurrent batch stored returns of batch \"%s\" meanwhile: applying it "
	         "again with ON CONFLICT",
	         b->batch_id);
	return apply_once(b, items);
}

static int answer(struct batch *b, struct http_reply *reply, struct ingest_outcome *o)
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

/* The county's registered key into b->county_key: 0, -ENOKEY (no such county), a db.h
 * error. */
static int county_key(struct batch *b)
{
	const char *params[1] = {b->county};
	struct pg_result *res = NULL;
	const char *x;
	int n, r;

	n = db_query(b->db, "SELECT hub_key->>'x' FROM counties WHERE county_id = $1", 1, params,
	             &res, b->err, sizeof(b->err));
	if (n < 0)
		return n;
	r = -ENOKEY;
	if (n == 1) {
		x = PQgetvalue((PGresult *)res, 0, 0);
		memset(&b->county_key, 0, sizeof(b->county_key));
		r = decode_x(x, b->county_key.public_key) == 0 ? 0 : -ENOKEY;
		snprintf(b->county_key.kid, sizeof(b->county_key.kid), "%s", b->county);
	}
	db_result_free(res);
	return r;
}

static int db_status(int r)
{
	/* connection trouble, overload, conflicts: worth retrying; anything else is ours */
	return r == -ECONNRESET || r == -ECONNREFUSED || r == -EAGAIN || r == -EBUSY ||
	                       r == -ENOSPC || r == -ECANCELED
	               ? 503
	               : 500;
}

int ingest_handle(struct server *srv, struct worker *w, const char *body, size_t len,
                  struct http_reply *reply, struct ingest_outcome *ret)
{
	struct batch b;
	struct jws j;
	cJSON *payload = NULL;
	const cJSON *items;
	const char *id, *type, *county;
	char msg[DB_ERR_MAX + 64], quoted[ERRMSG_QUOTE_SIZE];
	size_t n;
	int r;

	memset(&b, 0, sizeof(b));
	memset(ret, 0, sizeof(*ret));
	jws_init(&j);
	b.srv = srv;
	b.db = w->db;
	buf_init(&b.copy, (size_t)INGEST_TEXT_MAX * 3);
	datetime_format_rfc3339(clock_now_ms(&srv->clock), srv->offset_min, b.now);

	buf_reset(&w->plain);
	r = gzip_inflate(&w->inflater, body, len, &w->plain, msg, sizeof(msg));
	if (r == -EFBIG) {
		r = refuse(reply, ret, 413, "too_large", "the batch inflates past the limit");
		goto out;
	}
	if (r < 0) {
		r = r == -ENOMEM ? r : refuse(reply, ret, 400, "malformed", msg);
		goto out;
	}
	r = jws_parse(&j, w->plain.data, w->plain.len, INGEST_TEXT_MAX, msg, sizeof(msg));
	if (r < 0) {
		r = r == -ENOMEM     ? r
		    : r == -EMSGSIZE ? refuse(reply, ret, 413, "too_large", msg)
		                     : refuse(reply, ret, r == -EPERM ? 401 : 400,
		                              r == -EPERM ? "unauthenticated" : "malformed", msg);
		goto out;
	}
	if (!digits(j.kid, 6)) {
		r = refuse(reply, ret, 401, "unauthenticated",
		           "the batch's kid is not a county id");
		goto out;
	}
	snprintf(b.county, sizeof(b.county), "%s", j.kid);
	snprintf(ret->county_id, sizeof(ret->county_id), "%s", b.county);
	r = county_key(&b);
	if (r == -ENOKEY) {
		snprintf(msg, sizeof(msg), "county \"%s\" is not registered here", b.county);
		r = refuse(reply, ret, 401, "unauthenticated", msg);
		goto out;
	}
	if (r < 0) {
		r = refuse(reply, ret, db_status(r), "unavailable",
		           "the database is not available");
		goto out;
	}
	r = jws_verify(&j, &b.county_key, msg, sizeof(msg));
	if (r < 0) {
		r = refuse(reply, ret, 401, "unauthenticated", msg);
		goto out;
	}
	r = json_parse_untrusted((const char *)j.payload, j.payload_len, BATCH_DEPTH, &payload, msg,
	                         sizeof(msg));
	if (r < 0) {
		r = r == -ENOMEM ? r : refuse(reply, ret, 400, "malformed", msg);
		goto out;
	}
	type = member_string(payload, "type");
	county = member_string(payload, "county_id");
	id = member_string(payload, "batch_id");
	items = cJSON_GetObjectItemCaseSensitive(payload, "items");
	if (!type || strcmp(type, "batch") != 0 || !county || strcmp(county, b.county) != 0 ||
	    !uuid_valid(id) || !instant_valid(member_string(payload, "sent_at")) ||
	    !cJSON_IsArray(items)) {
		snprintf(msg, sizeof(msg),
		         "not a batch of county \"%s\" (type, county_id, batch_id, sent_at, items)",
		         errmsg_quote(b.county, quoted));
		r = refuse(reply, ret, 400, "malformed", msg);
		goto out;
	}
	snprintf(b.batch_id, sizeof(b.batch_id), "%s", id);
	snprintf(ret->batch_id, sizeof(ret->batch_id), "%s", id);
	n = (size_t)cJSON_GetArraySize(items);
	if (n > INGEST_ITEMS_MAX) {
		snprintf(msg, sizeof(msg), "a batch holds at most %d items, not %zu",
		         INGEST_ITEMS_MAX, n);
		r = refuse(reply, ret, 413, "too_large", msg);
		goto out;
	}
	ret->items = n;
	b.nitems = n;
	b.results = calloc(n ? n : 1, sizeof(*b.results));
	b.seen = calloc(n ? n : 1, sizeof(*b.seen));
	b.pend = calloc(n ? n : 1, sizeof(*b.pend));
	b.nslots = 2 * n + 1;
	b.slots = calloc(b.nslots, sizeof(*b.slots));
	b.findings = cJSON_CreateArray();
	if (!b.results || !b.seen || !b.pend || !b.slots || !b.findings) {
		r = -ENOMEM;
		goto out;
	}
	r = apply(&b, items);
	if (r < 0) {
		snprintf(msg, sizeof(msg), "the batch could not be stored: %s", b.err);
		r = refuse(reply, ret, r == -ENOMEM ? 500 : db_status(r),
		           r == -ENOMEM ? "internal" : "unavailable", msg);
		goto out;
	}
	ret->findings = b.nfindings;
	/* committed: only memory can fail now, and a resend is answered as duplicates */
	r = answer(&b, reply, ret);
out:
	cJSON_Delete(payload);
	cJSON_Delete(b.findings);
	jws_release(&j);
	free(b.results);
	free(b.seen);
	free(b.slots);
	free(b.pend);
	free(b.keys);
	buf_release(&b.copy);
	jwk_release(&b.county_key);
	return r;
}
