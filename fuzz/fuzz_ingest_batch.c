/* libFuzzer target: region-server's check of an ingest batch (ingest_check(), ingest.h):
 * everything from the request body's bytes up to, not including, the database. It runs
 * with the real forms, envelope schema and roll-up plans (loaded once from schemas/,
 * relative to the working folder: run from the repository root), county 654201 whose key
 * is below, and that county's roster: version 1, schools 6542010001-6542010003.
 *
 * The first byte of an input says what the rest is:
 *   'P'  a batch payload, which the target signs with the county's key and gzips, so that
 *        mutations reach the payload and item checks the county's signature would
 *        otherwise keep them from;
 *   'I'  a JSON array of items to sign, {"kind": K, "payload": P, "receipt": R}: the
 *        target signs P (a JSON value, or a string taken as the bytes) with the key of
 *        the school P names (6542010001 for anything else) for a submission, with the
 *        county's for any other kind, and R (when not a string) with the county's, and
 *        makes the batch of them; so mutations reach the checks behind the signatures;
 *   anything else: the request body as it arrives (gzip of the county's JWS).
 * The seed corpus (fuzz/corpus/fuzz_ingest_batch/) is made by fuzz/make-ingest-corpus.
 *
 * Besides "no crash, no leak, no UB", it checks what ingest.h promises: 0 or -ENOMEM; a
 * refused batch answered 400, 401, 413 or 500 (a check that could not finish) with a JSON
 * error; an accepted one with as many items as its payload, at most INGEST_ITEMS_MAX,
 * each refused one with a reason of one line; and a batch the target signed never
 * refused for its signature. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/form.h"
#include "common/gzip.h"
#include "common/http_server.h"
#include "common/jwk.h"
#include "common/jws.h"
#include "common/rollup.h"
#include "common/schema.h"
#include "ingest.h"
#include "server.h"
#include "common/banned.h"

#define COUNTY "654201"
#define SCHOOLS 4 /* the roster holds the first ROSTERED */
#define ROSTERED 3
#define ITEMS_MAX 64 /* items an 'I' input makes */

/* Test data only, made with `tools/returns-jose keygen`; fuzz/make-ingest-corpus signs the
 * seeds with the same keys. */
static const char *const jwks[1 + SCHOOLS] = {
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"oSatWZgNGlx6fekbVKQ_"
        "eFD2wzwx1dHW6sDuGz0uKUk\","
        "\"d\":\"5BxfFPyR5HqMuY1vz05KtOzw6TzROzcI_mpauq1yvPI\",\"kid\":\"654201\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"_KRQ0fxMpU7QFVlU83-"
        "LBJmxOdurDADmQUtyM6uMMoI\","
        "\"d\":\"_6eTJ2l1yaMElWLMBMwJbGt-24zK7zuIiTnZEogYA_U\",\"kid\":\"6542010001\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":"
        "\"fjl5DmjRvyqjzfrQ0pFkHpRj4Z100VHAvAzG6uxfL2I\","
        "\"d\":\"_V1yXXZHImHo7fMC5hszcrLlLleLNppzOC3re16FVy8\",\"kid\":\"6542010002\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"osm54oZJIx59LV0Z7uZVmoD1AdqewJ_"
        "x6kdg8FLkKwg\","
        "\"d\":\"fG5J83-4vI78nHTbksGYJr-hJ3bUgZXl-QAlePRVB18\",\"kid\":\"6542010003\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"gNTTmv3KKlndyNVg5c819QJbynVo_"
        "I7znZ5gadZmJdM\","
        "\"d\":\"T9JPVYN_me21TkD9zvJTLAHonSAtuH0MZKWt9Z0zoAU\",\"kid\":\"6542010004\"}",
};

/* Set once by LLVMFuzzerInitialize, read-only afterwards. */
static struct jwk keys[1 + SCHOOLS]; /* the county's, then the schools' */
static struct server srv;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *err)
{
	fprintf(stderr, "fuzz_ingest_batch: %s: %s (run from the repository root)\n", what, err);
	abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[512];

	(void)argc;
	(void)argv;
	for (size_t i = 0; i < 1 + SCHOOLS; i++)
		if (jwk_parse(&keys[i], jwks[i], strlen(jwks[i]), err, sizeof(err)) < 0)
			fail("a test key", err);
	if (schema_load_file("schemas/submission.schema.json", &srv.envelope, err, sizeof(err)) <
	            0 ||
	    form_set_load_dir("schemas/forms", &srv.forms, err, sizeof(err)) < 0)
		fail("schemas", err);
	srv.plans = calloc(srv.forms->count, sizeof(*srv.plans));
	if (!srv.plans)
		fail("plans", "out of memory");
	for (size_t i = 0; i < srv.forms->count; i++)
		if (rollup_plan_compile(schema_root(srv.forms->forms[i].schema), err, sizeof(err),
		                        &srv.plans[i]) < 0)
			fail("a roll-up plan", err);
	if (clock_init(&srv.clock, "2024-12-01T10:00:00+08:00", err, sizeof(err)) < 0)
		fail("the clock", err);
	srv.offset_min = 480;
	return 0;
}

/* ingest_source: the county above, and its roster of the first ROSTERED schools. */
static int county_key(void *data, const char *county_id, unsigned char ret_pk[32])
{
	(void)data;
	if (strcmp(county_id, COUNTY) != 0)
		return -ENOKEY;
	memcpy(ret_pk, keys[0].public_key, 32);
	return 0;
}

static int roster(void *data, const char *county_id, long long *ret_version,
                  struct ingest_school_key **ret_keys, size_t *ret_nkeys)
{
	struct ingest_school_key *k = calloc(ROSTERED, sizeof(*k));

	(void)data;
	if (strcmp(county_id, COUNTY) != 0)
		abort(); /* asked only once the county's signature verified */
	if (!k)
		return -ENOMEM;
	for (size_t i = 0; i < ROSTERED; i++) {
		snprintf(k[i].school_id, sizeof(k[i].school_id), "%s", keys[1 + i].kid);
		memcpy(k[i].pk, keys[1 + i].public_key, 32);
	}
	*ret_version = 1;
	*ret_keys = k;
	*ret_nkeys = ROSTERED;
	return 0;
}

/* The JWS of len bytes at text, signed with keys[k]; NULL when it cannot be made. */
static char *sign(size_t k, const char *text, size_t len)
{
	char err[256], *out = NULL;

	if (jws_sign(&keys[k], keys[k].kid, text, len, &out, NULL, err, sizeof(err)) < 0)
		return NULL;
	return out;
}

/* Signs v (a JSON value, or a string taken as the bytes) with keys[k]. */
static char *sign_value(size_t k, const cJSON *v)
{
	char *text, *out;

	if (cJSON_IsString(v))
		return sign(k, v->valuestring, strlen(v->valuestring));
	text = cJSON_PrintUnformatted(v);
	if (!text)
		return NULL;
	out = sign(k, text, strlen(text));
	free(text);
	return out;
}

/* The signer of a submission payload: the school it names, the first one else. */
static size_t school_of(const cJSON *payload)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(payload, "school_id");

	for (size_t i = 1; cJSON_IsString(id) && i <= SCHOOLS; i++)
		if (strcmp(id->valuestring, keys[i].kid) == 0)
			return i;
	return 1;
}

/* The batch payload of an 'I' input, NULL when the input is not a JSON array or the
 * batch cannot be made. Caller frees. */
static char *items_payload(const uint8_t *data, size_t size)
{
	cJSON *in = cJSON_ParseWithLength((const char *)data, size), *batch = NULL, *items;
	const cJSON *e;
	char *out = NULL;
	size_t n = 0;

	if (!cJSON_IsArray(in))
		goto done;
	batch = cJSON_CreateObject();
	if (!batch || !cJSON_AddStringToObject(batch, "type", "batch") ||
	    !cJSON_AddStringToObject(batch, "county_id", COUNTY) ||
	    !cJSON_AddStringToObject(batch, "batch_id", "01938a4c-8e00-7000-8000-000000000001") ||
	    !cJSON_AddStringToObject(batch, "sent_at", "2024-12-01T10:00:00+08:00") ||
	    !(items = cJSON_AddArrayToObject(batch, "items")))
		goto done;
	cJSON_ArrayForEach(e, in)
	{
		const cJSON *kind = cJSON_GetObjectItemCaseSensitive(e, "kind");
		const cJSON *payload = cJSON_GetObjectItemCaseSensitive(e, "payload");
		const cJSON *receipt = cJSON_GetObjectItemCaseSensitive(e, "receipt");
		int school = cJSON_IsString(kind) && strcmp(kind->valuestring, "submission") == 0;
		cJSON *item;
		char *jws, *rjws = NULL;

		if (n++ == ITEMS_MAX || !payload)
			break;
		jws = sign_value(school ? school_of(payload) : 0, payload);
		if (receipt)
			rjws = cJSON_IsString(receipt) ? strdup(receipt->valuestring)
			                               : sign_value(0, receipt);
		item = cJSON_CreateObject();
		if (item)
			cJSON_AddItemToArray(items, item);
		if (!item || !jws || (receipt && !rjws) ||
		    (kind && !cJSON_AddItemToObject(item, "kind", cJSON_Duplicate(kind, 1))) ||
		    !cJSON_AddStringToObject(item, "jws", jws) ||
		    (rjws && !cJSON_AddStringToObject(item, "receipt", rjws))) {
			free(jws);
			free(rjws);
			goto done;
		}
		free(jws);
		free(rjws);
	}
	out = cJSON_PrintUnformatted(batch);
done:
	cJSON_Delete(batch);
	cJSON_Delete(in);
	return out;
}

/* The body of a batch payload signed with the county's key, in *body. */
static int signed_body(const char *payload, size_t len, struct buf *body)
{
	struct gzip_compressor gz;
	char *jws = sign(0, payload, len);
	int r;

	if (!jws)
		return -1;
	r = gzip_compressor_init(&gz, 1);
	if (r == 0) {
		r = gzip_compress(&gz, jws, strlen(jws), body);
		gzip_compressor_release(&gz);
	}
	free(jws);
	return r;
}

static void check(const char *body, size_t len, int signed_here)
{
	const struct ingest_source src = {
	        .county_key = county_key,
	        .roster = roster,
	        .threads = 2,
	};
	struct gzip_inflater inflater;
	struct ingest_batch *b = NULL;
	struct ingest_outcome o;
	struct http_reply reply;
	struct buf plain;
	int r;

	memset(&reply, 0, sizeof(reply));
	if (gzip_inflater_init(&inflater, INGEST_TEXT_MAX, 100) < 0)
		abort();
	buf_init(&plain, INGEST_TEXT_MAX);
	r = ingest_check(&srv, &src, &inflater, &plain, body, len, &b, &reply, &o);
	if (r < 0 && r != -ENOMEM)
		abort();
	if (r == 0 && !b) {
		cJSON *answer = cJSON_ParseWithLength(reply.body, reply.len);

		if ((o.status != 400 && o.status != 401 && o.status != 413 && o.status != 500) ||
		    reply.status != o.status || !cJSON_IsObject(answer) ||
		    !cJSON_GetObjectItemCaseSensitive(answer, "error") ||
		    (signed_here && o.status == 401))
			abort();
		cJSON_Delete(answer);
	}
	if (b) {
		size_t n = ingest_batch_count(b);

		if (n > INGEST_ITEMS_MAX || n != o.items || strcmp(o.county_id, COUNTY) != 0)
			abort();
		for (size_t i = 0; i < n; i++) {
			const char *reason = NULL;

			if (ingest_batch_refused(b, i, &reason) &&
			    (!reason || !reason[0] || strlen(reason) >= INGEST_REASON_MAX ||
			     strpbrk(reason, "\r\n")))
				abort();
		}
	}
	ingest_batch_free(b);
	http_reply_release(&reply);
	buf_release(&plain);
	gzip_inflater_release(&inflater);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf body;
	char *payload = NULL;

	if (size == 0 || (data[0] != 'P' && data[0] != 'I')) {
		check((const char *)data, size, 0);
		return 0;
	}
	buf_init(&body, INGEST_TEXT_MAX);
	if (data[0] == 'I')
		payload = items_payload(data + 1, size - 1);
	if (data[0] == 'P' ? signed_body((const char *)data + 1, size - 1, &body) == 0
	                   : payload && signed_body(payload, strlen(payload), &body) == 0)
		check(body.data, body.len, 1);
	free(payload);
	buf_release(&body);
	return 0;
}
