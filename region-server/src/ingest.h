/* POST /v1/ingest (docs/PROTOCOL.md "County hub -> region"): one county-signed batch of
 * rosters, school returns and roll-ups, checked again here and stored in one transaction.
 *
 * The whole batch is refused, with nothing stored, when it is malformed (400: not one gzip
 * member, not a JWS, a payload that is not a batch), too large (413: over the inflate cap
 * or INGEST_ITEMS_MAX items), not the county's (401: unknown county, a signature that does
 * not verify with the county's registered key), or when the database fails (503, with
 * Retry-After). Otherwise each item, in order, is:
 *   roster      county-signed; stored with its schools (every version is kept; the latest
 *               gives the keys that later returns are verified with);
 *   submission  the school's JWS checked as the hub checked it (common/submission.h: the
 *               signature against the key of the county's latest roster, the envelope, the
 *               form, the privacy guard), and the hub's receipt (the county's signature,
 *               the same submission, payload hash and school); stored with the raw JWS,
 *               the payload as jsonb, its SHA-256, the receipt and each tier's time;
 *   rollup      county-signed; stored with the returns it lists, and recomputed here
 *               from those returns (common/rollup.h).
 * and answered "stored", "duplicate" (the same submission_id and payload hash, roster
 * version with the same text, or roll-up (form, period, computed_at) with the same text)
 * or "rejected" with a reason. A rejected item is recorded as an integrity finding (its
 * text kept as evidence), as is a roll-up that does not match the returns it lists: such
 * a roll-up is stored all the same, flagged by its finding, and answered "rejected" (and
 * "duplicate" when sent again: it is held). A school JWS that does not verify is never
 * stored as a return: it could otherwise take the submission_id of a genuine one. A batch
 * sent again records no finding twice.
 * Bulk: the returns of a batch go in with one COPY straight into submissions, after one
 * look-up of those held already; when a concurrent batch stores one of them in between,
 * the batch is applied again through a temporary table and INSERT ... ON CONFLICT
 * (submission_id) DO NOTHING. A roll-up first flushes the returns before it. The answer is
 * sent only after COMMIT. */
#ifndef REGION_INGEST_H
#define REGION_INGEST_H

#include <stddef.h>

#include "common/macro.h"

struct http_reply;
struct server;
struct worker;

#define INGEST_ITEMS_MAX 1000               /* items in one batch */
#define INGEST_TEXT_MAX (16u * 1024 * 1024) /* bytes of inflated batch */
#define INGEST_ROSTER_SCHOOLS_MAX 100000    /* schools in one roster */
#define INGEST_ROLLUP_LISTED_MAX 100000     /* returns one roll-up lists */
#define INGEST_EVIDENCE_MAX (1024u * 1024)  /* bytes of an item kept as evidence */
#define INGEST_REASON_MAX 256               /* bytes of an item's reason */

/* What one batch came to, for the metrics and the log. */
struct ingest_outcome {
	int status; /* the HTTP status answered */
	size_t items, stored, duplicates, rejected, findings;
	char county_id[8];
	char batch_id[40];
};

/* The SQL that readies a new connection for ingesting (the temporary table COPY fills).
 * Run once per connection. */
extern const char ingest_session_sql[];

/* Handles one ingest request whose (compressed) body is body/len: fills *reply (status,
 * JSON body) and *ret. w's inflater and buffer are used, its connection for the
 * transaction. Returns 0, or -ENOMEM when not even the answer could be made. */
int ingest_handle(struct server *srv, struct worker *w, const char *body, size_t len,
                  struct http_reply *reply, struct ingest_outcome *ret) WUR;

#endif
