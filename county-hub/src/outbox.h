/* The county-signed items of the outbox (docs/PROTOCOL.md, "County hub -> region"): the
 * whole roster, versioned, and the roll-up of one (form, period). Both are JWS in
 * flattened JSON signed with the county key (kid: the county id), made inside the write
 * transaction of the change they report, so that they describe exactly what that
 * transaction commits and come after it in the queue. Thread-safe given one store per
 * thread. */
#ifndef COUNTY_HUB_OUTBOX_H
#define COUNTY_HUB_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

struct jwk;
struct report;
struct report_source;
struct store;

/* Queues the roster as it stands in this transaction:
 *   {"type": "roster", "county_id", "version", "issued_at", "schools": [{"school_id",
 *    "name", "type", "opened", "closed", "key"}]}
 * version: one more than the last roster's; "opened" is the first open day, "closed" the
 * last open day (the day before the roster's closed_from), each null when there is none;
 * "type" null when empty; "key" the school's public JWK (kid: its id). placeholder > 0:
 * put it in that row (store_outbox_placeholder) rather than in a new one at the end.
 * *ret_version (may be NULL) receives the version. err says what failed. */
int outbox_add_roster(struct store *store, const struct jwk *key, const char *county_id,
                      int64_t now_ms, int offset_min, long long placeholder, long long *ret_version,
                      char *err, size_t errlen) WUR;

/* The county-signed roll-up of (form, period) as the store holds it now (report.h), with
 * a computed_at of now_ms or just after the previous roll-up of that (form, period)
 * (store_rollup_stamp). Inside a write transaction. Caller frees *ret_jws with free().
 * Errors of report_compute, -ENOMEM, or jws_sign's; err says what. */
int outbox_rollup_make(const struct report_source *src, struct store *store, const struct jwk *key,
                       const char *county_id, const char *form, const char *period, int64_t now_ms,
                       int offset_min, char **ret_jws, char *err, size_t errlen) WUR;

/* The second half of outbox_rollup_make, for a report computed earlier (in a read
 * snapshot, so that the write lock is held only for this): stamps computed_at (now_ms or
 * just after the previous one), builds the payload and signs it. Inside a write
 * transaction. Caller frees *ret_jws with free(). */
int outbox_rollup_sign(const struct report *report, struct store *store, const struct jwk *key,
                       const char *county_id, int64_t now_ms, int offset_min, char **ret_jws,
                       char *err, size_t errlen) WUR;

/* outbox_rollup_make, then queues it in place of the pending roll-up of (form, period). */
int outbox_add_rollup(const struct report_source *src, struct store *store, const struct jwk *key,
                      const char *county_id, const char *form, const char *period, int64_t now_ms,
                      int offset_min, char *err, size_t errlen) WUR;

#endif
