/* A school's signed return as it arrives at a tier (DESIGN section 4): the checks that
 * every tier makes the same way, in the design's order, cheap ones first:
 *   1. the JWS envelope parses                                  -> SUBMISSION_MALFORMED
 *   2. the kid names a known key, the signature verifies         -> SUBMISSION_UNAUTHENTICATED
 *   3. the payload is strict JSON                                -> SUBMISSION_MALFORMED
 *   4. payload school_id = kid, county_id = the expected county  -> SUBMISSION_FORBIDDEN
 *   5. the payload envelope (schemas/submission.schema.json), a
 *      known form of that version, and the form's own check     -> SUBMISSION_INVALID
 * Size caps and decompression come before (gzip.h); period locks and duplicates after,
 * at the tier that owns the store. Thread-safe when the context's lookup is. */
#ifndef COMMON_SUBMISSION_H
#define COMMON_SUBMISSION_H

#include <stddef.h>

#include "common/jws.h"
#include "common/macro.h"

struct cJSON;
struct errlist;
struct form;
struct form_set;
struct jwk;
struct schema;

enum submission_verdict {
	SUBMISSION_ACCEPTABLE,
	SUBMISSION_MALFORMED,       /* HTTP 400 */
	SUBMISSION_UNAUTHENTICATED, /* HTTP 401 */
	SUBMISSION_FORBIDDEN,       /* HTTP 403 */
	SUBMISSION_INVALID,         /* HTTP 422, details in the errlist */
};

struct submission_context {
	const struct schema *envelope; /* schemas/submission.schema.json */
	const struct form_set *forms;
	const char *county_id; /* the county the return must name; NULL: any */
	/* Fills *ret_key with the public key of kid: 0, or -ENOKEY when kid is unknown or
	 * not allowed to submit (e.g. a closed school); err says why. Any other negative
	 * errno (the roster could not be read) is returned by submission_check. */
	int (*lookup_key)(void *lookup_data, const char *kid, struct jwk *ret_key, char *err,
	                  size_t errlen);
	void *lookup_data;
	size_t max_text; /* bytes of JWS text; 0: JWS_TEXT_MAX_DEFAULT */
};

/* A return that passed every check. Owns the parsed JWS and payload; the string members
 * are borrowed from payload and live until submission_release(). */
struct submission {
	struct jws jws;
	struct cJSON *payload;
	const struct form *form;
	const char *submission_id;
	const char *school_id;
	const char *county_id;
	const char *period;
	const char *created_at;
	const char *supersedes; /* NULL when the payload has null */
	const struct cJSON *data;
};

void submission_init(struct submission *s);
void submission_release(struct submission *s);

/* Runs checks 1-5 over len bytes of JWS text (already decompressed). On success
 * *ret_verdict is SUBMISSION_ACCEPTABLE and *ret is filled (release it with
 * submission_release). Otherwise *ret_verdict says which check failed, err a one-line
 * reason, and errors (may be NULL) every schema, rule and privacy problem found by check 5
 * with its JSON Pointer into the payload ("/data/victims/female"). Returns 0 whatever
 * the verdict, or a negative errno when checking could not finish (-ENOMEM, a
 * validation limit, or the lookup's own error) and nothing is known. */
int submission_check(const struct submission_context *ctx, const char *text, size_t len,
                     struct errlist *errors, char *err, size_t errlen,
                     enum submission_verdict *ret_verdict, struct submission *ret) WUR;

/* The HTTP status of a verdict (200 for SUBMISSION_ACCEPTABLE), and its short error code
 * ("malformed", "unauthenticated", "forbidden", "invalid"). */
int submission_verdict_http_status(enum submission_verdict v);
const char *submission_verdict_code(enum submission_verdict v);

#endif
