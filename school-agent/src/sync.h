/* Delivering the outbox to the county hub (docs/PROTOCOL.md), one return at a time in id
 * order: read its JWS, gzip it, POST it, and act on the answer:
 *   200/201 with a receipt that verifies (county key, submission_id, sha256 of the
 *           payload bytes, school, county, form, period)   -> sent/ with the receipt
 *   200/201 whose receipt does not verify                    -> stays queued; an error,
 *           and the pass stops (the hub, or what sits between, cannot be trusted now)
 *   4xx other than 408, 423, 429                             -> rejected/ with the body,
 *           and the pass goes on: one bad return never blocks the queue
 *   408, 423 (locked: the county may lift it), 500, 502, 504 and other 5xx
 *                                                            -> stays queued; this
 *           return backs off, the pass goes on with the next
 *   no answer (refused, reset, timeout, stall, TLS), 429, 503, 507, or an unexpected status
 *                                                            -> stays queued; the whole
 *           hub backs off and the pass stops
 * Backoff is exponential with full jitter: the n-th consecutive failure waits a uniformly
 * random time in [0, min(retry_max, 2^n s)], and never less than the hub's Retry-After.
 * The state survives restarts: DIR/sync-state.json for the hub, outbox/<id>.retry per
 * return, both written atomically. Waits are real time, whatever RETURNS_CLOCK says: they
 * are about the network, not the campaign. Memory stays flat whatever the queue holds:
 * only the ids are listed, and one return is in memory at a time. */
#ifndef SCHOOL_AGENT_SYNC_H
#define SCHOOL_AGENT_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/gzip.h"
#include "common/jwk.h"
#include "common/macro.h"
#include "http.h"

struct agent;

struct sync_result {
	size_t sent;
	size_t rejected;
	size_t failed;       /* attempts that left a return queued */
	size_t remaining;    /* returns in the outbox after the pass */
	int64_t hub_next_ms; /* the hub is backing off until then (real time); 0: it is not */
};

struct syncer {
	const struct agent *agent; /* borrowed */
	struct jwk county;
	struct http_client http; /* do not move a syncer after init: curl points into it */
	struct gzip_compressor gz;
	struct clock real;
	struct buf text, body, state;
	int force; /* ignore the backoff state */
};

/* The agent's config gives the hub, TLS files and timeout. ret must stay where it is
 * until syncer_release. Negative errno with a message in err. */
int syncer_init(struct syncer *ret, const struct agent *a, char *err, size_t errlen) WUR;
void syncer_release(struct syncer *s);

/* One pass over the outbox. stop (may be NULL) is asked between returns; a nonzero answer
 * ends the pass early. Returns 0 with *ret filled, or a negative errno when the outbox
 * cannot be read at all. */
int syncer_pass(struct syncer *s, int (*stop)(void *data), void *stop_data,
                struct sync_result *ret) WUR;

/* The flags that sync and run share (they override agent.json), and applying them. */
struct sync_flags {
	char *dir;
	char *cacert;
	char *client_cert;
	char *client_key;
	long long timeout;
};
void sync_flags_apply(const struct sync_flags *f, struct agent *a);

#endif
