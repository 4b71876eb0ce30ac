/* POST /v1/ingest (docs/PROTOCOL.md "County hub -> region"): one county-signed batch of
 * rosters, school returns and roll-ups, checked again here and stored in one transaction.
 *
 * The whole batch is refused, with nothing stored, when it is malformed (400: not one gzip
 * member, not a JWS, a payload that is not a batch or nested deeper than 8), too large
 * (413: over the inflate cap, INGEST_ITEMS_MAX items or INGEST_BATCH_VALUES_MAX JSON
 * values), not the county's (401: unknown county, a signature that does not verify with
 * the county's registered key), or when the database fails (503, with Retry-After).
 * Otherwise each item, in order, is:
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
 * or "rejected" with a reason. An item whose JWS is over INGEST_ITEM_MAX bytes (a receipt
 * over INGEST_RECEIPT_MAX) is rejected, not the batch: one bad item never blocks a
 * county's queue. A rejected item is recorded as an integrity finding (its text kept as
 * evidence), as is a roll-up that does not match the returns it lists: such a roll-up is
 * stored all the same, flagged by its finding, and answered "rejected" (and "duplicate"
 * when sent again: it is held). A school JWS that does not verify is never stored as a
 * return: it could otherwise take the submission_id of a genuine one. A batch sent again
 * records no finding twice.
 *
 * Two steps, so that the checking needs no database (and can be fuzzed): ingest_check()
 * takes the body to a batch whose every signature is verified, asking its caller for the
 * county's key and latest roster, the items checked on up to one thread per CPU;
 * ingest_store() stores each item, in order, as soon as it is checked, all in one
 * transaction, and makes the answer, sent only after COMMIT. A roster item changes the keys of the
 * returns after it: the check verifies them with the roster the batch would leave, and the store
 * verifies again any return for which that turned out otherwise (a roster version held already with
 * another text). Bulk: the returns of a batch go in with one COPY straight into submissions, each
 * row sent as soon as its item is checked and stored (the server works on the rows while the items
 * after them are checked); a roster or roll-up ends it first (a roll-up may list the returns before
 * it). When one of the returns is held already (a batch sent again, another payload under a held
 * submission_id, a concurrent batch that stored it), the COPY fails on the unique key and the whole
 * batch is applied again through a temporary table and INSERT ... ON CONFLICT (submission_id) DO
 * NOTHING, which tells duplicates from conflicts. */
#ifndef REGION_INGEST_H
#define REGION_INGEST_H

#include <stddef.h>

#include "common/macro.h"

struct buf;
struct db;
struct gzip_inflater;
struct http_reply;
struct server;
struct worker;

#define INGEST_ITEMS_MAX 1000               /* items in one batch */
#define INGEST_TEXT_MAX (16u * 1024 * 1024) /* bytes of inflated batch */
#define INGEST_BATCH_VALUES_MAX 20000       /* '{', '[' and ',' in the batch payload */
#define INGEST_ITEM_MAX (8u * 1024 * 1024)  /* bytes of one item's JWS (the hub's cap) */
#define INGEST_RECEIPT_MAX (64u * 1024)     /* bytes of one receipt's JWS */
#define INGEST_ROSTER_SCHOOLS_MAX 100000    /* schools in one roster */
#define INGEST_ROLLUP_LISTED_MAX 100000     /* returns one roll-up lists */
#define INGEST_EVIDENCE_MAX (1024u * 1024)  /* bytes of an item kept as evidence */
#define INGEST_REASON_MAX 256               /* bytes of an item's reason */
#define INGEST_THREADS_MAX 8                /* threads checking one batch's items */

/* What one batch came to, for the metrics and the log. */
struct ingest_outcome {
	int status; /* the HTTP status answered */
	size_t items, stored, duplicates, rejected, findings;
	char county_id[8];
	char batch_id[40];
};

/* A school of a roster, as the check needs it. */
struct ingest_school_key {
	char school_id[16];
	unsigned char pk[32]; /* its Ed25519 public key */
};

/* What the check asks of the store, and how it may run. */
struct ingest_source {
	/* Fills ret_pk with the registered public key of county_id: 0, -ENOKEY when the
	 * county is not registered, any other negative errno when the store failed. */
	int (*county_key)(void *data, const char *county_id, unsigned char ret_pk[32]);
	/* The county's latest roster: its version (0: none) and its schools, in any order;
	 * the caller (the check) frees *ret_keys with free(). 0 or a negative errno. */
	int (*roster)(void *data, const char *county_id, long long *ret_version,
	              struct ingest_school_key **ret_keys, size_t *ret_nkeys);
	void *data;
	unsigned threads; /* at most this many threads check the items; 0: one per CPU */
};

/* A batch between its check and its store. */
struct ingest_batch;

/* The SQL that readies a new connection for ingesting (the temporary table COPY fills).
 * Run once per connection. */
extern const char ingest_session_sql[];

/* Checks the (compressed) body/len of one ingest request, with no database of its own:
 * inflates it with inflater into plain (both the caller's, reused), parses the county's
 * JWS, asks src for the county's key, verifies the signature, parses the batch and checks
 * every item (signatures, receipts, forms, rosters, roll-ups) against the roster src
 * gives. srv gives the forms, schemas, roll-up plans and clock, read-only.
 * Returns 0 with *ret_batch to store (the caller frees it with ingest_batch_free()), or 0
 * with *ret_batch NULL when the whole batch is refused: *reply then holds the refusal and
 * ret->status its status. ret (the outcome so far) is filled in either case. -ENOMEM when
 * not even the refusal could be made. The items of a large batch may still be being
 * checked, on other threads, when it returns: ingest_batch_refused() and ingest_store()
 * wait for each item as they come to it, so the store starts with the first ones. */
int ingest_check(const struct server *srv, const struct ingest_source *src,
                 struct gzip_inflater *inflater, struct buf *plain, const char *body, size_t len,
                 struct ingest_batch **ret_batch, struct http_reply *reply,
                 struct ingest_outcome *ret) WUR;

/* The number of items of a checked batch, and what the check found of item i (waiting
 * for it: see ingest_check()): 1 when it refused it (*ret_reason, borrowed from b, says
 * why in one line), 0 when the store decides. */
size_t ingest_batch_count(const struct ingest_batch *b);
int ingest_batch_refused(struct ingest_batch *b, size_t i, const char **ret_reason);

/* Stores checked batch b over db in one transaction and fills *reply with the answer
 * (200 with each item's status), or the refusal (503 with Retry-After when the database
 * failed and a retry may succeed, else 500), and *ret. Returns 0, or -ENOMEM when not
 * even the answer could be made. b stays the caller's. */
int ingest_store(struct ingest_batch *b, struct db *db, struct http_reply *reply,
                 struct ingest_outcome *ret) WUR;

/* Waits for the check's threads and frees b; accepts NULL. */
void ingest_batch_free(struct ingest_batch *b);

/* Handles one ingest request whose (compressed) body is body/len: ingest_check() with the
 * county's key and roster from w's connection, then ingest_store() on it. Fills *reply
 * (status, JSON body) and *ret. Returns 0, or -ENOMEM when not even the answer could be
 * made. */
int ingest_handle(struct server *srv, struct worker *w, const char *body, size_t len,
                  struct http_reply *reply, struct ingest_outcome *ret) WUR;

#endif
