/* libFuzzer target: submission_check on untrusted bytes, with the real envelope schema and
 * forms (loaded once from schemas/, relative to the working folder: run from the
 * repository root) and one known school key.
 *
 * An input starting with '!' is a payload (the rest of the input) that the target signs
 * itself with the school's key, so that mutations reach checks 3-5 (strict JSON, school
 * and county, envelope, form) that a signature would otherwise keep them from; any other
 * input is JWS text as it would arrive.
 *
 * Besides "no crash, no leak, no UB", it checks what submission.h promises: 0 with a
 * verdict or one of the documented errors; a reason for every refusal; problems listed
 * exactly when the verdict is SUBMISSION_INVALID; an accepted return fully filled in,
 * from this school and county, with the signed bytes unchanged; and for a payload we
 * signed, never SUBMISSION_UNAUTHENTICATED, and SUBMISSION_MALFORMED exactly when the
 * payload is not strict JSON. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/errlist.h"
#include "common/form.h"
#include "common/json.h"
#include "common/jwk.h"
#include "common/jws.h"
#include "common/schema.h"
#include "common/submission.h"
#include "common/banned.h"

#define SCHOOL "2165000123"
#define COUNTY "654201"

/* The key the seed corpus (fuzz/corpus/fuzz_submission/) is signed with: test data only,
 * made with `tools/returns-jose keygen --kid 2165000123`. */
static const char school_jwk[] =
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
        "\"x\":\"vs0pgUepNLWqf1x5AHLGdwSx-zJ97xYdwYCV05i46p8\","
        "\"d\":\"rnGCcPNHAk8B7hmRvf4Rb1Pn_GT1pw8TUZajpAZzJ4I\",\"kid\":\"" SCHOOL "\"}";

/* Set once by LLVMFuzzerInitialize, read-only afterwards. */
static struct jwk school_key;
static struct schema *envelope;
static struct form_set *forms;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[512];

	(void)argc;
	(void)argv;
	if (jwk_parse(&school_key, school_jwk, strlen(school_jwk), err, sizeof(err)) < 0 ||
	    schema_load_file("schemas/submission.schema.json", &envelope, err, sizeof(err)) < 0 ||
	    form_set_load_dir("schemas/forms", &forms, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz_submission: %s (run from the repository root)\n", err);
		abort();
	}
	return 0;
}

static int lookup(void *data, const char *kid, struct jwk *ret_key, char *err, size_t errlen)
{
	(void)data;
	if (strcmp(kid, SCHOOL) != 0) {
		snprintf(err, errlen, "unknown school \"%s\"", kid);
		return -ENOKEY;
	}
	memset(ret_key, 0, sizeof(*ret_key));
	memcpy(ret_key->public_key, school_key.public_key, sizeof(ret_key->public_key));
	memcpy(ret_key->kid, school_key.kid, sizeof(ret_key->kid));
	return 0;
}

static void check_accepted(const struct submission *s, const void *payload, size_t payload_len)
{
	const cJSON *form;

	if (!s->payload || !s->form || !s->data || !s->submission_id || !s->school_id ||
	    !s->county_id || !s->period || !s->created_at)
		abort();
	if (strcmp(s->jws.kid, SCHOOL) != 0 || strcmp(s->school_id, SCHOOL) != 0 ||
	    strcmp(s->county_id, COUNTY) != 0 || !cJSON_IsObject(s->data))
		abort();
	form = cJSON_GetObjectItemCaseSensitive(s->payload, "form");
	if (!cJSON_IsString(form) || strcmp(form->valuestring, s->form->id) != 0)
		abort();
	if (s->supersedes &&
	    !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(s->payload, "supersedes")))
		abort();
	if (payload && (s->jws.payload_len != payload_len ||
	                memcmp(s->jws.payload, payload, payload_len) != 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct submission_context ctx = {
	        .envelope = envelope,
	        .forms = forms,
	        .county_id = COUNTY,
	        .lookup_key = lookup,
	};
	enum submission_verdict v = (enum submission_verdict)99;
	const void *payload = NULL;
	size_t payload_len = 0, len = size;
	char err[512], *signed_text = NULL;
	const char *text = (const char *)data;
	struct submission s;
	struct errlist errs;
	int r;

	if (size > 0 && data[0] == '!') {
		payload = data + 1;
		payload_len = size - 1;
		if (jws_sign(&school_key, SCHOOL, payload, payload_len, &signed_text, &len, err,
		             sizeof(err)) < 0)
			return 0; /* too large to sign: nothing to check */
		text = signed_text;
	}

	errlist_init(&errs);
	submission_init(&s);
	memset(err, 0x7f, sizeof(err));
	r = submission_check(&ctx, text, len, &errs, err, sizeof(err), &v, &s);
	if (r < 0) {
		if (r != -ENOMEM && r != -ELOOP && r != -E2BIG)
			abort();
		goto out;
	}
	if (r != 0 || v > SUBMISSION_INVALID)
		abort();
	if (v == SUBMISSION_ACCEPTABLE) {
		if (errs.errors != 0)
			abort();
		check_accepted(&s, payload, payload_len);
		submission_release(&s);
		goto out;
	}
	/* refused: a reason, and problems exactly for SUBMISSION_INVALID */
	if (err[0] == 0x7f || err[0] == '\0' || !memchr(err, '\0', sizeof(err)))
		abort();
	if ((v == SUBMISSION_INVALID) != (errs.errors > 0) ||
	    errs.count > errs.errors + errs.warnings)
		abort();
	if (s.payload || s.school_id)
		abort(); /* ret is written only on success */
	if (payload) {
		cJSON *j = NULL;
		int strict = json_parse_untrusted(payload, payload_len, JSON_MAX_DEPTH, &j, NULL,
		                                  0) == 0;

		cJSON_Delete(j);
		if (v == SUBMISSION_UNAUTHENTICATED || (v == SUBMISSION_MALFORMED) == strict)
			abort();
	}
out:
	errlist_release(&errs);
	free(signed_text);
	return 0;
}
