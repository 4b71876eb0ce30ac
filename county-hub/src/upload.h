/* POST /v1/submissions: the checks of DESIGN section 4 in their order, cheap ones first,
 * with the statuses of docs/PROTOCOL.md, in four steps:
 *   upload_precheck  before the body is read: size by Content-Length (413), media type
 *                    and encoding (415), free space on the store's disk (507);
 *   upload_check     once the body is in: inflate with caps (413/400), submission_check
 *                    (400/401/403/422; the roster lookup refuses a school that is not
 *                    open on the receive date), the period of the form (422 /period), a
 *                    correction that supersedes itself (422); whether the period had
 *                    expired at the receive time; then the receipt is signed and the job
 *                    is ready;
 *   the writer       the checks that need the store, in the transaction that stores the
 *                    upload (writer.h): an identical resend (200 with the stored receipt),
 *                    the locks (423 expired|approved, unless the school has an
 *                    exception), a conflicting resend (409), what a correction supersedes
 *                    (422 /supersedes);
 *   upload_finish    the writer's outcome as an answer (201 with the receipt, 200, 409,
 *                    422 /supersedes, 423, 503 + Retry-After, 507).
 * Every decision is counted (metrics) and logged once, without the payload's text.
 * An identical resend is answered 200 even when the period has locked since: the return
 * is stored, and the school must learn that it was. */
#ifndef COUNTY_HUB_UPLOAD_H
#define COUNTY_HUB_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"
#include "common/submission.h"
#include "writer.h"

struct http_reply;
struct server;
struct worker;

/* One upload in flight. Owns what the writer job borrows. */
struct upload {
	struct submission s;
	char *jws_text;
	size_t jws_len;
	char *receipt;
	size_t receipt_len;
	char sha256[65];
	char received_at[40];
	int64_t received_ms;
	int on_time;
	const char *peer; /* for logs, borrowed */
	struct writer_job job;
};

void upload_init(struct upload *u, const char *peer);
void upload_release(struct upload *u);

/* Headers may be NULL when absent. Returns 0 to read the body, or 1 with *reply set. */
int upload_precheck(struct server *srv, const char *content_type, const char *content_encoding,
                    const char *content_length, const char *peer, struct http_reply *reply);

/* The body has arrived (len bytes, or too_large when it went past the cap while being
 * read). Returns 0 when u->job is ready for the writer, or 1 with *reply set. */
int upload_check(struct server *srv, struct worker *w, const char *body, size_t len, int too_large,
                 struct upload *u, struct http_reply *reply);

/* Answers a job the writer is done with, or one that could not be queued (queue_error:
 * -EAGAIN, -ESHUTDOWN; 0 when it was queued). Always sets *reply. */
void upload_finish(struct server *srv, struct upload *u, int queue_error, struct http_reply *reply);

#endif
