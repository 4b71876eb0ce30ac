/* The tier-independent checks of a signed return: see submission.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/errlist.h"
#include "common/errmsg.h"
#include "common/form.h"
#include "common/json.h"
#include "common/jwk.h"
#include "common/schema.h"
#include "common/submission.h"
#include "common/banned.h"

void submission_init(struct submission *s)
{
	memset(s, 0, sizeof(*s));
	jws_init(&s->jws);
}

void submission_release(struct submission *s)
{
	jws_release(&s->jws);
	cJSON_Delete(s->payload);
	submission_init(s);
}

static const char *member_string(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Runs the form's check on /data, so that every pointer names its place in the payload. */
static int check_form_data(const struct form *form, const cJSON *data, struct errlist *errors)
{
	size_t first = errors->count;
	int r, k;

	r = form_check(form, data, errors);
	if (r < 0)
		return r;
	k = errlist_prefix_pointers(errors, first, "/data");
	return k < 0 ? k : r;
}

int submission_check(const struct submission_context *ctx, const char *text, size_t len,
                     struct errlist *errors, char *err, size_t errlen,
                     enum submission_verdict *ret_verdict, struct submission *ret)
{
	struct submission s;
	struct errlist scratch;
	struct jwk key;
	const cJSON *version;
	const char *form_id;
	char why[512], quoted[ERRMSG_QUOTE_SIZE];
	int r;

	submission_init(&s);
	errlist_init(&scratch);
	if (!errors)
		errors = &scratch;

	/* 1: the envelope */
	r = jws_parse(&s.jws, text, len, ctx->max_text, why, sizeof(why));
	if (r == -ENOMEM)
		goto fail;
	if (r < 0) {
		snprintf(err, errlen, "%s", why);
		*ret_verdict = r == -EPERM ? SUBMISSION_UNAUTHENTICATED : SUBMISSION_MALFORMED;
		r = 0;
		goto fail;
	}

	/* 2: who signed it */
	memset(&key, 0, sizeof(key));
	r = ctx->lookup_key(ctx->lookup_data, s.jws.kid, &key, why, sizeof(why));
	if (r == -ENOKEY) {
		snprintf(err, errlen, "%s", why);
		*ret_verdict = SUBMISSION_UNAUTHENTICATED;
		r = 0;
		goto fail;
	}
	if (r < 0) /* the lookup could not answer (-ENOMEM, a store error): no verdict */
		goto fail;
	r = jws_verify(&s.jws, &key, why, sizeof(why));
	jwk_release(&key);
	if (r < 0) {
		snprintf(err, errlen, "%s", why);
		*ret_verdict = SUBMISSION_UNAUTHENTICATED;
		r = 0;
		goto fail;
	}

	/* 3: the payload */
	r = json_parse_untrusted((const char *)s.jws.payload, s.jws.payload_len, JSON_MAX_DEPTH,
	                         &s.payload, why, sizeof(why));
	if (r == -ENOMEM)
		goto fail;
	if (r < 0) {
		snprintf(err, errlen, "payload: %s", why);
		*ret_verdict = SUBMISSION_MALFORMED;
		r = 0;
		goto fail;
	}

	/* 4: a school speaks only for itself, to its own county */
	s.school_id = member_string(s.payload, "school_id");
	s.county_id = member_string(s.payload, "county_id");
	if (s.school_id && strcmp(s.school_id, s.jws.kid) != 0) {
		snprintf(err, errlen, "payload school_id \"%s\" is not the signer \"%s\"",
		         errmsg_quote(s.school_id, quoted), s.jws.kid);
		*ret_verdict = SUBMISSION_FORBIDDEN;
		goto fail;
	}
	if (ctx->county_id && s.county_id && strcmp(s.county_id, ctx->county_id) != 0) {
		snprintf(err, errlen, "payload county_id \"%s\" is not this county \"%s\"",
		         errmsg_quote(s.county_id, quoted), ctx->county_id);
		*ret_verdict = SUBMISSION_FORBIDDEN;
		goto fail;
	}

	/* 5: the payload envelope, then the form's own data */
	r = schema_validate(ctx->envelope, s.payload, errors);
	if (r < 0)
		goto fail;
	if (r > 0) {
		snprintf(err, errlen, "the submission envelope is not valid");
		*ret_verdict = SUBMISSION_INVALID;
		r = 0;
		goto fail;
	}
	form_id = member_string(s.payload, "form");
	s.form = form_set_find(ctx->forms, form_id);
	if (!s.form) {
		errmsg_quote(form_id, quoted);
		snprintf(err, errlen, "unknown form \"%s\"", quoted);
		r = errlist_add(errors, ERRLIST_ERROR, "/form", "x-form", "unknown form \"%s\"",
		                quoted);
		if (r < 0)
			goto fail;
		*ret_verdict = SUBMISSION_INVALID;
		goto fail;
	}
	version = cJSON_GetObjectItemCaseSensitive(s.payload, "form_version");
	if (version->valuedouble != s.form->version) {
		snprintf(err, errlen, "form \"%s\" is at version %d, not %g", form_id,
		         s.form->version, version->valuedouble);
		r = errlist_add(errors, ERRLIST_ERROR, "/form_version", "x-form-version",
		                "form \"%s\" is at version %d", form_id, s.form->version);
		if (r < 0)
			goto fail;
		*ret_verdict = SUBMISSION_INVALID;
		goto fail;
	}
	s.data = cJSON_GetObjectItemCaseSensitive(s.payload, "data");
	r = check_form_data(s.form, s.data, errors);
	if (r < 0)
		goto fail;
	if (r > 0) {
		snprintf(err, errlen, "the %s return has %d error%s", form_id, r,
		         r == 1 ? "" : "s");
		*ret_verdict = SUBMISSION_INVALID;
		r = 0;
		goto fail;
	}
	s.submission_id = member_string(s.payload, "submission_id");
	s.period = member_string(s.payload, "period");
	s.created_at = member_string(s.payload, "created_at");
	s.supersedes = member_string(s.payload, "supersedes");
	*ret_verdict = SUBMISSION_ACCEPTABLE;
	*ret = s;
	errlist_release(&scratch);
	return 0;
fail:
	submission_release(&s);
	errlist_release(&scratch);
	return r < 0 ? r : 0;
}

int submission_verdict_http_status(enum submission_verdict v)
{
	switch (v) {
	case SUBMISSION_ACCEPTABLE:
		return 200;
	case SUBMISSION_MALFORMED:
		return 400;
	case SUBMISSION_UNAUTHENTICATED:
		return 401;
	case SUBMISSION_FORBIDDEN:
		return 403;
	case SUBMISSION_INVALID:
		return 422;
	}
	return 500;
}

const char *submission_verdict_code(enum submission_verdict v)
{
	switch (v) {
	case SUBMISSION_ACCEPTABLE:
		return "ok";
	case SUBMISSION_MALFORMED:
		return "malformed";
	case SUBMISSION_UNAUTHENTICATED:
		return "unauthenticated";
	case SUBMISSION_FORBIDDEN:
		return "forbidden";
	case SUBMISSION_INVALID:
		return "invalid";
	}
	return "internal";
}
