/* Unit tests for common/submission: real signed returns (keys made here, JWSs made with
 * jws_sign) over the example payloads of tests/data/submissions and example data of
 * tests/data/returns, through every verdict. Runs from the repository root. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <sodium.h>

#include "common/buf.h"
#include "common/errlist.h"
#include "common/fileio.h"
#include "common/form.h"
#include "common/json.h"
#include "common/jwk.h"
#include "common/jws.h"
#include "common/schema.h"
#include "common/submission.h"
#include "common/banned.h"

#define SUBMISSIONS_DIR "tests/data/submissions"
#define RETURNS_DIR "tests/data/returns"
#define SCHOOL "2165000123"
#define OTHER_SCHOOL "2165000456"
#define SHORT_SCHOOL "216500012" /* bad-schema-school-id.json's school_id */
#define COUNTY "654201"

/* The "roster": schools and their key pairs. */
struct roster {
	struct jwk keys[3];
	struct jwk stranger; /* a key pair with no kid, known to nobody */
	int fail_with;       /* lookup answers this error for every kid when not 0 */
	int lookups;
};

struct fixture {
	struct roster roster;
	struct schema *envelope;
	struct form_set *forms;
	struct submission_context ctx;
};

static int lookup(void *data, const char *kid, struct jwk *ret_key, char *err, size_t errlen)
{
	struct roster *r = data;

	r->lookups++;
	if (r->fail_with) {
		snprintf(err, errlen, "roster unavailable");
		return r->fail_with;
	}
	for (size_t i = 0; i < ARRAY_SIZE(r->keys); i++) {
		if (strcmp(r->keys[i].kid, kid) == 0) {
			/* only the public part, as a roster holds it */
			memset(ret_key, 0, sizeof(*ret_key));
			memcpy(ret_key->public_key, r->keys[i].public_key,
			       sizeof(ret_key->public_key));
			memcpy(ret_key->kid, r->keys[i].kid, sizeof(ret_key->kid));
			return 0;
		}
	}
	snprintf(err, errlen, "unknown school \"%s\"", kid);
	return -ENOKEY;
}

static int setup(void **state)
{
	static const char *const kids[] = {SCHOOL, OTHER_SCHOOL, SHORT_SCHOOL};
	struct fixture *f = calloc(1, sizeof(*f));
	char err[512];

	if (!f)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(kids); i++)
		if (jwk_generate(&f->roster.keys[i], kids[i], err, sizeof(err)) != 0)
			goto fail;
	if (jwk_generate(&f->roster.stranger, NULL, err, sizeof(err)) != 0)
		goto fail;
	if (schema_load_file("schemas/submission.schema.json", &f->envelope, err, sizeof(err)) != 0)
		goto fail;
	if (form_set_load_dir("schemas/forms", &f->forms, err, sizeof(err)) != 0)
		goto fail;
	f->ctx.envelope = f->envelope;
	f->ctx.forms = f->forms;
	f->ctx.county_id = COUNTY;
	f->ctx.lookup_key = lookup;
	f->ctx.lookup_data = &f->roster;
	*state = f;
	return 0;
fail:
	fprintf(stderr, "setup: %s\n", err);
	schema_free(f->envelope);
	free(f);
	return -1;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < ARRAY_SIZE(f->roster.keys); i++)
		jwk_release(&f->roster.keys[i]);
	jwk_release(&f->roster.stranger);
	schema_free(f->envelope);
	form_set_free(f->forms);
	free(f);
	return 0;
}

/* Every test starts from the fixture's normal context. */
static int reset(void **state)
{
	struct fixture *f = *state;

	f->ctx.county_id = COUNTY;
	f->ctx.max_text = 0;
	f->roster.fail_with = 0;
	return 0;
}

static const struct jwk *key_of(const struct fixture *f, const char *kid)
{
	for (size_t i = 0; i < ARRAY_SIZE(f->roster.keys); i++)
		if (strcmp(f->roster.keys[i].kid, kid) == 0)
			return &f->roster.keys[i];
	fail_msg("no key for %s", kid);
	return NULL;
}

static char *read_file(const char *path, size_t *ret_len)
{
	struct buf b;
	char *s;

	buf_init(&b, 4 << 20);
	if (fileio_read(path, &b) < 0)
		fail_msg("cannot read %s", path);
	s = buf_detach(&b, ret_len);
	if (!s) {
		s = strdup("");
		*ret_len = 0;
	}
	return s;
}

static cJSON *read_json(const char *path)
{
	char err[256], *text;
	size_t len;
	cJSON *j = NULL;

	text = read_file(path, &len);
	if (json_parse_untrusted(text, len, JSON_MAX_DEPTH, &j, err, sizeof(err)) < 0)
		fail_msg("%s: %s", path, err);
	free(text);
	return j;
}

/* A JWS over len bytes of payload by key, naming kid. Caller frees. */
static char *sign(const struct jwk *key, const char *kid, const void *payload, size_t len)
{
	char err[256], *text = NULL;
	size_t n;

	if (jws_sign(key, kid, payload, len, &text, &n, err, sizeof(err)) != 0)
		fail_msg("jws_sign: %s", err);
	assert_int_equal(strlen(text), n);
	return text;
}

static char *sign_json(const struct jwk *key, const char *kid, const cJSON *payload)
{
	char *p = cJSON_PrintUnformatted(payload), *jws;

	assert_non_null(p);
	jws = sign(key, kid, p, strlen(p));
	cJSON_free(p);
	return jws;
}

struct outcome {
	int r;
	enum submission_verdict verdict;
	char err[512];
	struct errlist errs;
	struct submission sub;
};

/* Runs submission_check over text with an errlist, and checks what holds whatever the
 * verdict: 0 returned, err filled on refusal, ret untouched on refusal, and no error in
 * the list unless the verdict is SUBMISSION_INVALID. Release with outcome_release. */
static void run_check(struct fixture *f, const char *text, size_t len, struct outcome *o)
{
	static const unsigned char poison = 0x5a;
	unsigned char sentinel[sizeof(struct submission)];

	memset(o, 0, sizeof(*o));
	memset(o->err, poison, sizeof(o->err) - 1);
	errlist_init(&o->errs);
	memset(&o->sub, poison, sizeof(o->sub));
	memcpy(sentinel, &o->sub, sizeof(sentinel));
	o->verdict = (enum submission_verdict)99;
	o->r = submission_check(&f->ctx, text, len, &o->errs, o->err, sizeof(o->err), &o->verdict,
	                        &o->sub);
	if (o->r < 0) {
		/* nothing known, nothing handed out */
		assert_memory_equal(&o->sub, sentinel, sizeof(sentinel));
		submission_init(&o->sub);
		return;
	}
	assert_true(o->verdict <= SUBMISSION_INVALID);
	if (o->verdict == SUBMISSION_ACCEPTABLE) {
		assert_int_equal(o->errs.errors, 0);
		return;
	}
	/* refused: a reason, nothing handed out */
	assert_non_null(memchr(o->err, '\0', sizeof(o->err)));
	assert_true(o->err[0] != '\0' && (unsigned char)o->err[0] != poison);
	assert_memory_equal(&o->sub, sentinel, sizeof(sentinel));
	memset(&o->sub, 0, sizeof(o->sub));
	submission_init(&o->sub);
	if (o->verdict == SUBMISSION_INVALID)
		assert_true(o->errs.errors > 0);
	else
		assert_int_equal(o->errs.count, 0);
}

static void run_check_str(struct fixture *f, const char *text, struct outcome *o)
{
	run_check(f, text, strlen(text), o);
}

static void outcome_release(struct outcome *o)
{
	errlist_release(&o->errs);
	submission_release(&o->sub);
}

static void expect_verdict(const struct outcome *o, enum submission_verdict want)
{
	if (o->r != 0 || o->verdict != want)
		fail_msg("got r %d verdict %d (%s), want verdict %d", o->r, (int)o->verdict, o->err,
		         (int)want);
}

static bool reported(const struct errlist *l, const char *pointer, const char *keyword)
{
	for (size_t i = 0; i < l->count; i++)
		if (l->entries[i].severity == ERRLIST_ERROR &&
		    strcmp(l->entries[i].pointer, pointer) == 0 &&
		    strcmp(l->entries[i].keyword, keyword) == 0)
			return true;
	return false;
}

static char *entries_text(const struct errlist *l)
{
	struct buf b;
	char *s;

	buf_init(&b, 1 << 20);
	for (size_t i = 0; i < l->count; i++)
		assert_int_equal(
		        buf_printf(&b, "%s %s\n", l->entries[i].pointer, l->entries[i].keyword), 0);
	s = buf_detach(&b, NULL);
	return s ? s : strdup("");
}

/* Each "pointer keyword" line of the .expect file at path, with prefix before the
 * pointer, is among l's errors. */
static void expect_reported(const char *path, const char *prefix, const struct errlist *l)
{
	size_t len;
	char *want = read_file(path, &len), *line, *save = NULL;
	int pairs = 0;

	for (line = strtok_r(want, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *space = strrchr(line, ' '), ptr[1024];

		if (line[0] == '#')
			continue;
		assert_non_null(space);
		*space = '\0';
		snprintf(ptr, sizeof(ptr), "%s%s", prefix, line);
		if (!reported(l, ptr, space + 1)) {
			char *got = entries_text(l);

			fail_msg("%s: \"%s %s\" not reported; got\n%s", path, ptr, space + 1, got);
		}
		pairs++;
	}
	assert_true(pairs > 0);
	free(want);
}

/* ---- acceptable ---- */

static void check_fields(const struct fixture *f, const struct submission *s, const cJSON *want,
                         const char *raw, size_t raw_len)
{
	const cJSON *sup = cJSON_GetObjectItemCaseSensitive(want, "supersedes");
	const char *form = cJSON_GetObjectItemCaseSensitive(want, "form")->valuestring;

#define FIELD(name) cJSON_GetObjectItemCaseSensitive(want, name)->valuestring
	assert_non_null(s->payload);
	assert_string_equal(s->submission_id, FIELD("submission_id"));
	assert_string_equal(s->school_id, FIELD("school_id"));
	assert_string_equal(s->county_id, FIELD("county_id"));
	assert_string_equal(s->period, FIELD("period"));
	assert_string_equal(s->created_at, FIELD("created_at"));
#undef FIELD
	if (cJSON_IsNull(sup))
		assert_null(s->supersedes);
	else
		assert_string_equal(s->supersedes, sup->valuestring);
	assert_ptr_equal(s->form, form_set_find(f->forms, form));
	assert_ptr_equal(s->data, cJSON_GetObjectItemCaseSensitive(s->payload, "data"));
	assert_true(cJSON_Compare(s->data, cJSON_GetObjectItemCaseSensitive(want, "data"), 1));
	/* the strings live in the payload the submission owns */
	assert_ptr_equal(s->school_id,
	                 cJSON_GetObjectItemCaseSensitive(s->payload, "school_id")->valuestring);
	/* the signed bytes, unchanged */
	assert_int_equal(s->jws.payload_len, raw_len);
	assert_memory_equal(s->jws.payload, raw, raw_len);
	assert_string_equal(s->jws.kid, s->school_id);
}

static void test_acceptable_examples(void **state)
{
	struct fixture *f = *state;
	struct dirent **names;
	int n, checked = 0, corrections = 0;

	n = scandir(SUBMISSIONS_DIR, &names, NULL, alphasort);
	assert_true(n > 0);
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		char path[512], *raw, *jws;
		struct outcome o;
		size_t len;
		cJSON *want;

		if (strncmp(name, "good-", 5) != 0) {
			free(names[i]);
			continue;
		}
		snprintf(path, sizeof(path), SUBMISSIONS_DIR "/%s", name);
		raw = read_file(path, &len);
		want = read_json(path);
		jws = sign(
		        key_of(f, cJSON_GetObjectItemCaseSensitive(want, "school_id")->valuestring),
		        cJSON_GetObjectItemCaseSensitive(want, "school_id")->valuestring, raw, len);
		run_check_str(f, jws, &o);
		if (o.r != 0 || o.verdict != SUBMISSION_ACCEPTABLE)
			fail_msg("%s: r %d verdict %d: %s", name, o.r, (int)o.verdict, o.err);
		assert_int_equal(o.errs.count, 0);
		check_fields(f, &o.sub, want, raw, len);
		corrections += o.sub.supersedes != NULL;
		outcome_release(&o);
		/* released: empty again, and releasing twice is harmless */
		assert_null(o.sub.payload);
		assert_null(o.sub.school_id);
		submission_release(&o.sub);
		free(jws);
		free(raw);
		cJSON_Delete(want);
		free(names[i]);
		checked++;
	}
	free(names);
	assert_true(checked >= 4);
	assert_true(corrections >= 1);
}

/* A payload of a county other than ours is fine when the context names no county. */
static void test_any_county(void **state)
{
	struct fixture *f = *state;
	struct outcome o;
	cJSON *p = read_json(SUBMISSIONS_DIR "/good-incident.json");
	char *jws;

	cJSON_ReplaceItemInObjectCaseSensitive(p, "county_id", cJSON_CreateString("650102"));
	jws = sign_json(key_of(f, SCHOOL), SCHOOL, p);
	run_check_str(f, jws, &o);
	expect_verdict(&o, SUBMISSION_FORBIDDEN);
	assert_non_null(strstr(o.err, "650102"));
	outcome_release(&o);

	f->ctx.county_id = NULL;
	run_check_str(f, jws, &o);
	expect_verdict(&o, SUBMISSION_ACCEPTABLE);
	assert_string_equal(o.sub.county_id, "650102");
	outcome_release(&o);
	free(jws);
	cJSON_Delete(p);
}

/* errors may be NULL: the verdicts are the same. */
static void test_errors_null(void **state)
{
	struct fixture *f = *state;
	struct submission sub;
	enum submission_verdict v;
	char err[256], *jws;
	cJSON *p = read_json(SUBMISSIONS_DIR "/good-incident.json");
	cJSON *data = cJSON_GetObjectItemCaseSensitive(p, "data");

	jws = sign_json(key_of(f, SCHOOL), SCHOOL, p);
	submission_init(&sub);
	assert_int_equal(
	        submission_check(&f->ctx, jws, strlen(jws), NULL, err, sizeof(err), &v, &sub), 0);
	assert_int_equal(v, SUBMISSION_ACCEPTABLE);
	submission_release(&sub);
	free(jws);

	cJSON_ReplaceItemInObjectCaseSensitive(data, "level", cJSON_CreateNumber(7));
	jws = sign_json(key_of(f, SCHOOL), SCHOOL, p);
	assert_int_equal(
	        submission_check(&f->ctx, jws, strlen(jws), NULL, err, sizeof(err), &v, &sub), 0);
	assert_int_equal(v, SUBMISSION_INVALID);
	free(jws);

	cJSON_ReplaceItemInObjectCaseSensitive(p, "form", cJSON_CreateString("nosuch"));
	jws = sign_json(key_of(f, SCHOOL), SCHOOL, p);
	assert_int_equal(
	        submission_check(&f->ctx, jws, strlen(jws), NULL, err, sizeof(err), &v, &sub), 0);
	assert_int_equal(v, SUBMISSION_INVALID);
	free(jws);

	cJSON_ReplaceItemInObjectCaseSensitive(p, "period", cJSON_CreateString("2024-Q2"));
	jws = sign_json(key_of(f, SCHOOL), SCHOOL, p);
	assert_int_equal(
	        submission_check(&f->ctx, jws, strlen(jws), NULL, err, sizeof(err), &v, &sub), 0);
	assert_int_equal(v, SUBMISSION_INVALID);
	free(jws);

	assert_int_equal(submission_check(&f->ctx, "{", 1, NULL, err, sizeof(err), &v, &sub), 0);
	assert_int_equal(v, SUBMISSION_MALFORMED);
	cJSON_Delete(p);
}

/* ---- 400 ---- */

static void test_malformed_envelope(void **state)
{
	static const char *const texts[] = {
	        "",
	        "not json",
	        "{}",
	        "[]",
	        "null",
	        "{\"payload\":\"e30\",\"protected\":\"e30\"}",
	        "{\"payload\":\"e30\",\"protected\":\"e30\",\"signature\":\"AAAA\"}",
	        "{\"payload\":\"e30\",\"payload\":\"e30\",\"protected\":\"e30\",\"signature\":"
	        "\"\"}",
	};
	struct fixture *f = *state;
	struct outcome o;
	char *good, *cut;
	size_t len;
	cJSON *j;

	f->roster.lookups = 0;
	for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
		run_check_str(f, texts[i], &o);
		expect_verdict(&o, SUBMISSION_MALFORMED);
		outcome_release(&o);
	}
	assert_int_equal(f->roster.lookups, 0); /* refused before any key is looked up */

	/* a good JWS cut short, or with something added */
	good = sign(key_of(f, SCHOOL), SCHOOL, "{}", 2);
	len = strlen(good);
	for (size_t k = 1; k < len; k += 7) {
		run_check(f, good, k, &o);
		expect_verdict(&o, SUBMISSION_MALFORMED);
		outcome_release(&o);
	}
	cut = malloc(len + 3);
	memcpy(cut, good, len - 1);
	memcpy(cut + len - 1, ",1}", 4);
	run_check_str(f, cut, &o);
	expect_verdict(&o, SUBMISSION_MALFORMED);
	outcome_release(&o);
	free(cut);

	j = cJSON_Parse(good);
	cJSON_AddStringToObject(j, "extra", "x");
	cut = cJSON_PrintUnformatted(j);
	run_check_str(f, cut, &o);
	expect_verdict(&o, SUBMISSION_MALFORMED);
	outcome_release(&o);
	cJSON_free(cut);
	cJSON_Delete(j);

	/* longer than the context allows */
	f->ctx.max_text = len - 1;
	run_check_str(f, good, &o);
	expect_verdict(&o, SUBMISSION_MALFORMED);
	outcome_release(&o);
	f->ctx.max_text = len;
	run_check_str(f, good, &o);
	assert_int_not_equal(o.verdict, SUBMISSION_MALFORMED);
	outcome_release(&o);
	free(good);
}

/* A payload that is signed but not strict JSON is malformed (after the signature). */
static void test_malformed_payload(void **state)
{
	static const char *const payloads[] = {
	        "not json",
	        "{\"form\": \"incident\",}",
	        "{\"a\": 1, \"a\": 2}",
	        "{\"a\": \"\\u0000\"}",
	        "{\"a\": \"\xC3\x28\"}",
	        "",
	        "{} {}",
	};
	struct fixture *f = *state;
	struct outcome o;

	for (size_t i = 0; i < ARRAY_SIZE(payloads); i++) {
		char *jws = sign(key_of(f, SCHOOL), SCHOOL, payloads[i], strlen(payloads[i]));

		f->roster.lookups = 0;
		run_check_str(f, jws, &o);
		expect_verdict(&o, SUBMISSION_MALFORMED);
		assert_int_equal(f->roster.lookups, 1);
		assert_memory_equal(o.err, "payload: ", 9);
		outcome_release(&o);
		free(jws);
	}
	/* deeper than JSON_MAX_DEPTH */
	{
		char deep[2 * (JSON_MAX_DEPTH + 2) + 1], *jws;
		size_t n = 0;

		for (int i = 0; i < JSON_MAX_DEPTH + 1; i++)
			deep[n++] = '[';
		for (int i = 0; i < JSON_MAX_DEPTH + 1; i++)
			deep[n++] = ']';
		jws = sign(key_of(f, SCHOOL), SCHOOL, deep, n);
		run_check_str(f, jws, &o);
		expect_verdict(&o, SUBMISSION_MALFORMED);
		outcome_release(&o);
		free(jws);
	}
}

/* ---- 401 ---- */

static char *b64url(const void *data, size_t len)
{
	size_t n = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *s = malloc(n);

	assert_non_null(s);
	sodium_bin2base64(s, n, data, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return s;
}

/* A flattened JWS with the given protected header, payload and signature bytes. */
static char *forge(const char *protected_json, const char *payload, const unsigned char *sig,
                   size_t sig_len)
{
	char *p = b64url(protected_json, strlen(protected_json));
	char *q = b64url(payload, strlen(payload));
	char *s = b64url(sig, sig_len);
	char *out;
	size_t n = strlen(p) + strlen(q) + strlen(s) + 64;

	out = malloc(n);
	assert_non_null(out);
	snprintf(out, n, "{\"payload\":\"%s\",\"protected\":\"%s\",\"signature\":\"%s\"}", q, p, s);
	free(p);
	free(q);
	free(s);
	return out;
}

/* The member name of a JWS text replaced by the same member of another. */
static char *splice(const char *jws, const char *donor, const char *member)
{
	cJSON *a = cJSON_Parse(jws), *b = cJSON_Parse(donor);
	char *out;

	assert_non_null(a);
	assert_non_null(b);
	cJSON_ReplaceItemInObjectCaseSensitive(
	        a, member, cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(b, member), 1));
	out = cJSON_PrintUnformatted(a);
	cJSON_Delete(a);
	cJSON_Delete(b);
	return out;
}

static void expect_unauthenticated(struct fixture *f, const char *jws, const char *why)
{
	struct outcome o;

	run_check_str(f, jws, &o);
	expect_verdict(&o, SUBMISSION_UNAUTHENTICATED);
	if (why && !strstr(o.err, why))
		fail_msg("\"%s\" does not mention \"%s\"", o.err, why);
	outcome_release(&o);
}

static void test_unauthenticated(void **state)
{
	struct fixture *f = *state;
	unsigned char sig[64];
	size_t len;
	char *raw = read_file(SUBMISSIONS_DIR "/good-incident.json", &len);
	char *good, *other, *jws;

	raw = realloc(raw, len + 1);
	raw[len] = '\0';
	good = sign(key_of(f, SCHOOL), SCHOOL, raw, len);
	other = sign(key_of(f, SCHOOL), SCHOOL, "{}", 2);
	memset(sig, 0, sizeof(sig));

	/* alg none and other algorithms */
	jws = forge("{\"alg\":\"none\",\"kid\":\"" SCHOOL "\"}", raw, sig, 0);
	expect_unauthenticated(f, jws, NULL);
	free(jws);
	jws = forge("{\"alg\":\"none\",\"kid\":\"" SCHOOL "\"}", raw, sig, sizeof(sig));
	expect_unauthenticated(f, jws, NULL);
	free(jws);
	jws = forge("{\"alg\":\"HS256\",\"kid\":\"" SCHOOL "\"}", raw, sig, sizeof(sig));
	expect_unauthenticated(f, jws, NULL);
	free(jws);

	/* an unknown kid: the lookup's reason */
	{
		char *p = strdup(raw), *at = strstr(p, SCHOOL);

		memcpy(at, "2165000999", 10);
		jws = sign(&f->roster.stranger, "2165000999", p, strlen(p));
		expect_unauthenticated(f, jws, "unknown school \"2165000999\"");
		free(jws);
		free(p);
	}

	/* a signature that is not over these bytes */
	jws = splice(good, other, "signature");
	expect_unauthenticated(f, jws, NULL);
	free(jws);
	jws = splice(good, other, "payload");
	expect_unauthenticated(f, jws, NULL);
	free(jws);
	jws = forge("{\"alg\":\"EdDSA\",\"kid\":\"" SCHOOL "\"}", raw, sig, sizeof(sig));
	expect_unauthenticated(f, jws, NULL);
	free(jws);

	/* the key of another school (or of nobody) naming this school */
	jws = sign(&f->roster.stranger, SCHOOL, raw, len);
	expect_unauthenticated(f, jws, NULL);
	free(jws);
	{
		struct jwk k = *key_of(f, OTHER_SCHOOL);

		k.kid[0] = '\0'; /* so that jws_sign lets it name another kid */
		jws = sign(&k, SCHOOL, raw, len);
		expect_unauthenticated(f, jws, NULL);
		free(jws);
		jwk_release(&k);
	}
	/* the right key for the header's school, but the header names the other school */
	{
		struct jwk k = *key_of(f, SCHOOL);

		k.kid[0] = '\0';
		jws = sign(&k, OTHER_SCHOOL, raw, len);
		expect_unauthenticated(f, jws, NULL);
		free(jws);
		jwk_release(&k);
	}

	/* a bad signature wins over a bad payload: 401 before 400, 403 and 422 */
	jws = sign(&f->roster.stranger, SCHOOL, "not json", 8);
	expect_unauthenticated(f, jws, NULL);
	free(jws);

	free(good);
	free(other);
	free(raw);
}

/* A lookup that cannot answer is not a verdict on the school: the error comes back. */
static void test_lookup_fails(void **state)
{
	struct fixture *f = *state;
	char *jws = sign(key_of(f, SCHOOL), SCHOOL, "{}", 2);
	struct outcome o;

	f->roster.fail_with = -ENOMEM;
	run_check_str(f, jws, &o);
	assert_int_equal(o.r, -ENOMEM);
	outcome_release(&o);
	f->roster.fail_with = -EIO;
	run_check_str(f, jws, &o);
	assert_int_equal(o.r, -EIO);
	outcome_release(&o);
	f->roster.fail_with = -ENOKEY;
	run_check_str(f, jws, &o);
	expect_verdict(&o, SUBMISSION_UNAUTHENTICATED);
	assert_string_equal(o.err, "roster unavailable");
	outcome_release(&o);
	free(jws);
}

/* ---- 403 ---- */

static void test_forbidden(void **state)
{
	struct fixture *f = *state;
	struct outcome o;
	cJSON *p = read_json(SUBMISSIONS_DIR "/good-incident.json");
	char *jws;

	/* another school speaking for this one, with its own valid signature */
	jws = sign_json(key_of(f, OTHER_SCHOOL), OTHER_SCHOOL, p);
	run_check_str(f, jws, &o);
	expect_verdict(&o, SUBMISSION_FORBIDDEN);
	assert_non_null(strstr(o.err, SCHOOL));
	assert_non_null(strstr(o.err, OTHER_SCHOOL));
	outcome_release(&o);
	free(jws);

	/* another county */
	f->ctx.county_id = "654202";
	jws = sign_json(key_of(f, SCHOOL), SCHOOL, p);
	run_check_str(f, jws, &o);
	expect_verdict(&o, SUBMISSION_FORBIDDEN);
	assert_non_null(strstr(o.err, "654201"));
	assert_non_null(strstr(o.err, "654202"));
	outcome_release(&o);
	free(jws);
	f->ctx.county_id = COUNTY;

	/* 403 comes before 422: wrong county and invalid data */
	cJSON_ReplaceItemInObjectCaseSensitive(p, "county_id", cJSON_CreateString("654299"));
	cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "data"), "level",
	                                       cJSON_CreateString("high"));
	cJSON_ReplaceItemInObjectCaseSensitive(p, "period", cJSON_CreateString("someday"));
	jws = sign_json(key_of(f, SCHOOL), SCHOOL, p);
	run_check_str(f, jws, &o);
	expect_verdict(&o, SUBMISSION_FORBIDDEN);
	outcome_release(&o);
	free(jws);
	cJSON_Delete(p);
}

/* ---- 422 ---- */

/* The envelope examples: refused with what their .expect lists, and the form's check
 * does not run. */
static void test_invalid_envelope_examples(void **state)
{
	struct fixture *f = *state;
	struct dirent **names;
	int n, checked = 0;

	n = scandir(SUBMISSIONS_DIR, &names, NULL, alphasort);
	assert_true(n > 0);
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		size_t len = strlen(name), raw_len;
		const cJSON *school;
		const char *kid;
		char path[512], *raw, *jws;
		struct outcome o;
		cJSON *p;

		if (strncmp(name, "bad-", 4) != 0 || strcmp(name + len - 5, ".json") != 0) {
			free(names[i]);
			continue;
		}
		snprintf(path, sizeof(path), SUBMISSIONS_DIR "/%s", name);
		raw = read_file(path, &raw_len);
		p = read_json(path);
		school = cJSON_GetObjectItemCaseSensitive(p, "school_id");
		kid = cJSON_IsString(school) ? school->valuestring : SCHOOL;
		jws = sign(key_of(f, kid), kid, raw, raw_len);
		run_check_str(f, jws, &o);
		if (o.r != 0 || o.verdict != SUBMISSION_INVALID)
			fail_msg("%s: r %d verdict %d: %s", name, o.r, (int)o.verdict, o.err);
		assert_string_equal(o.err, "the submission envelope is not valid");
		for (size_t k = 0; k < o.errs.count; k++)
			assert_false(strncmp(o.errs.entries[k].pointer, "/data/", 6) == 0);
		snprintf(path + strlen(path) - 5, 8, ".expect");
		expect_reported(path, "", &o.errs);
		outcome_release(&o);
		free(jws);
		free(raw);
		cJSON_Delete(p);
		free(names[i]);
		checked++;
	}
	free(names);
	assert_true(checked >= 10);
}

static void test_unknown_form_and_version(void **state)
{
	struct fixture *f = *state;
	struct outcome o;
	cJSON *p = read_json(SUBMISSIONS_DIR "/good-incident.json");
	char *jws, *got;

	cJSON_ReplaceItemInObjectCaseSensitive(p, "form", cJSON_CreateString("nosuch"));
	jws = sign_json(key_of(f, SCHOOL), SCHOOL, p);
	run_check_str(f, jws, &o);
	expect_verdict(&o, SUBMISSION_INVALID);
	assert_string_equal(o.err, "unknown form \"nosuch\"");
	got = entries_text(&o.errs);
	assert_string_equal(got, "/form x-form\n");
	free(got);
	outcome_release(&o);
	free(jws);

	cJSON_ReplaceItemInObjectCaseSensitive(p, "form", cJSON_CreateString("incident"));
	cJSON_ReplaceItemInObjectCaseSensitive(p, "form_version", cJSON_CreateNumber(2));
	jws = sign_json(key_of(f, SCHOOL), SCHOOL, p);
	run_check_str(f, jws, &o);
	expect_verdict(&o, SUBMISSION_INVALID);
	assert_non_null(strstr(o.err, "version"));
	got = entries_text(&o.errs);
	assert_string_equal(got, "/form_version x-form-version\n");
	free(got);
	outcome_release(&o);
	free(jws);

	/* the data is not looked at when the form version is wrong */
	cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "data"), "level",
	                                       cJSON_CreateNumber(9));
	jws = sign_json(key_of(f, SCHOOL), SCHOOL, p);
	run_check_str(f, jws, &o);
	expect_verdict(&o, SUBMISSION_INVALID);
	assert_int_equal(o.errs.count, 1);
	outcome_release(&o);
	free(jws);
	cJSON_Delete(p);
}

/* An envelope around data for form (the envelope of good-incident.json). */
static cJSON *envelope_for(const struct fixture *f, const char *form, cJSON *data)
{
	cJSON *p = read_json(SUBMISSIONS_DIR "/good-incident.json");

	cJSON_ReplaceItemInObjectCaseSensitive(p, "form", cJSON_CreateString(form));
	cJSON_ReplaceItemInObjectCaseSensitive(
	        p, "form_version", cJSON_CreateNumber(form_set_find(f->forms, form)->version));
	cJSON_ReplaceItemInObjectCaseSensitive(p, "data", data);
	return p;
}

/* The example data of every form, in an envelope: good ones accepted, bad ones refused
 * with their .expect pointers under /data. */
static void test_form_data(void **state)
{
	static const char *const forms[] = {"incident", "rectification", "screening", "summary"};
	struct fixture *f = *state;
	int good = 0, bad = 0;

	for (size_t i = 0; i < ARRAY_SIZE(forms); i++) {
		char dirpath[256];
		struct dirent **names;
		int n;

		snprintf(dirpath, sizeof(dirpath), RETURNS_DIR "/%s", forms[i]);
		n = scandir(dirpath, &names, NULL, alphasort);
		assert_true(n > 0);
		for (int k = 0; k < n; k++) {
			const char *name = names[k]->d_name;
			size_t len = strlen(name);
			char path[512], *jws;
			struct outcome o;
			cJSON *p;

			if (len < 6 || strcmp(name + len - 5, ".json") != 0) {
				free(names[k]);
				continue;
			}
			snprintf(path, sizeof(path), "%s/%s", dirpath, name);
			p = envelope_for(f, forms[i], read_json(path));
			jws = sign_json(key_of(f, SCHOOL), SCHOOL, p);
			run_check_str(f, jws, &o);
			if (strncmp(name, "good-", 5) == 0) {
				if (o.r != 0 || o.verdict != SUBMISSION_ACCEPTABLE)
					fail_msg("%s: r %d verdict %d: %s", path, o.r,
					         (int)o.verdict, o.err);
				assert_string_equal(o.sub.form->id, forms[i]);
				good++;
			} else {
				char want_err[128];

				if (o.r != 0 || o.verdict != SUBMISSION_INVALID)
					fail_msg("%s: r %d verdict %d: %s", path, o.r,
					         (int)o.verdict, o.err);
				/* data that is not an object already fails the envelope */
				if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(p, "data")))
					snprintf(want_err, sizeof(want_err),
					         "the %s return has %zu error%s", forms[i],
					         o.errs.errors, o.errs.errors == 1 ? "" : "s");
				else
					snprintf(want_err, sizeof(want_err),
					         "the submission envelope is not valid");
				assert_string_equal(o.err, want_err);
				for (size_t e = 0; e < o.errs.count; e++) {
					const char *ptr = o.errs.entries[e].pointer;

					if (strcmp(ptr, "/data") != 0 &&
					    strncmp(ptr, "/data/", 6) != 0)
						fail_msg("%s: pointer \"%s\"", path, ptr);
				}
				snprintf(path + strlen(path) - 5, 8, ".expect");
				expect_reported(path, "/data", &o.errs);
				bad++;
			}
			outcome_release(&o);
			free(jws);
			cJSON_Delete(p);
			free(names[k]);
		}
		free(names);
	}
	assert_true(good >= 8);
	assert_true(bad >= 20);
}

/* Entries the caller's list held before keep their pointers. */
static void test_errors_appended(void **state)
{
	struct fixture *f = *state;
	struct errlist errs;
	struct submission sub;
	enum submission_verdict v;
	char err[256], *jws;
	cJSON *p = read_json(SUBMISSIONS_DIR "/good-incident.json");

	cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "data"), "level",
	                                       cJSON_CreateNumber(9));
	jws = sign_json(key_of(f, SCHOOL), SCHOOL, p);
	errlist_init(&errs);
	assert_int_equal(errlist_add(&errs, ERRLIST_ERROR, "/level", "earlier", "before"), 0);
	submission_init(&sub);
	assert_int_equal(
	        submission_check(&f->ctx, jws, strlen(jws), &errs, err, sizeof(err), &v, &sub), 0);
	assert_int_equal(v, SUBMISSION_INVALID);
	assert_int_equal(errs.count, 2);
	assert_string_equal(errs.entries[0].pointer, "/level");
	assert_string_equal(errs.entries[1].pointer, "/data/level");
	assert_string_equal(errs.entries[1].keyword, "enum");
	assert_string_equal(err, "the incident return has 1 error");
	errlist_release(&errs);
	free(jws);
	cJSON_Delete(p);
}

/* Personal data in the data is refused at every tier by the same check. */
static void test_privacy_in_data(void **state)
{
	struct fixture *f = *state;
	struct outcome o;
	cJSON *p = read_json(SUBMISSIONS_DIR "/good-incident.json");
	char *jws, *got;

	cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "data"),
	                                       "summary",
	                                       cJSON_CreateString("联系电话 138-1234-5678"));
	jws = sign_json(key_of(f, SCHOOL), SCHOOL, p);
	run_check_str(f, jws, &o);
	expect_verdict(&o, SUBMISSION_INVALID);
	got = entries_text(&o.errs);
	assert_string_equal(got, "/data/summary privacy\n");
	free(got);
	outcome_release(&o);
	free(jws);
	cJSON_Delete(p);
}

static void test_verdict_names(void **state)
{
	(void)state;
	assert_int_equal(submission_verdict_http_status(SUBMISSION_ACCEPTABLE), 200);
	assert_int_equal(submission_verdict_http_status(SUBMISSION_MALFORMED), 400);
	assert_int_equal(submission_verdict_http_status(SUBMISSION_UNAUTHENTICATED), 401);
	assert_int_equal(submission_verdict_http_status(SUBMISSION_FORBIDDEN), 403);
	assert_int_equal(submission_verdict_http_status(SUBMISSION_INVALID), 422);
	assert_int_equal(submission_verdict_http_status((enum submission_verdict)42), 500);
	assert_string_equal(submission_verdict_code(SUBMISSION_ACCEPTABLE), "ok");
	assert_string_equal(submission_verdict_code(SUBMISSION_MALFORMED), "malformed");
	assert_string_equal(submission_verdict_code(SUBMISSION_UNAUTHENTICATED), "unauthenticated");
	assert_string_equal(submission_verdict_code(SUBMISSION_FORBIDDEN), "forbidden");
	assert_string_equal(submission_verdict_code(SUBMISSION_INVALID), "invalid");
	assert_string_equal(submission_verdict_code((enum submission_verdict)42), "internal");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup(fn, reset)
	const struct CMUnitTest tests[] = {
	        T(test_acceptable_examples),
	        T(test_any_county),
	        T(test_errors_null),
	        T(test_malformed_envelope),
	        T(test_malformed_payload),
	        T(test_unauthenticated),
	        T(test_lookup_fails),
	        T(test_forbidden),
	        T(test_invalid_envelope_examples),
	        T(test_unknown_form_and_version),
	        T(test_form_data),
	        T(test_errors_appended),
	        T(test_privacy_in_data),
	        T(test_verdict_names),
	};
#undef T

	return cmocka_run_group_tests(tests, setup, teardown);
}
