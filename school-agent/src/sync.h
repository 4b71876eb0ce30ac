/* Delivering the outbox to the county hub (docs/PROTOCOL.md), oldest first, with up to
 * `parallel` uploads in flight (agent.json, --parallel; default 16): read a return's JWS,
 * gzip it, POST it, and act on the answer. As many more returns are read and compressed
 * ahead by a thread of their own (prepare.h) while the uploads are in flight, so that
 * when uploads end (a hub commits many at once) the next ones go out at once, before the
 * receipts that came back are checked: what the agent does per return overlaps the hub's
 * work instead of adding to each round trip. The answers:
 *   200/201 with a receipt that verifies (county key, submission_id, sha256 of the
 *           payload bytes, school, county, form, period)   -> sent/ with the receipt
 *   200/201 whose receipt does not verify                    -> stays queued; an error,
 *           and no further upload starts (the hub, or what sits between, cannot be trusted
 *           now; those started as its answer came end as they may)
 *   4xx other than 408, 423, 429                             -> rejected/ with the body,
 *           and the pass goes on: one bad return never blocks the queue
 *   408, 423 (locked: the county may lift it), 500, 502, 504 and other 5xx
 *                                                            -> stays queued; this
 *           return backs off, the pass goes on with the next
 *   no answer (refused, reset, timeout, stall, TLS), 429, 503, 507, or an unexpected status
 *                                                            -> stays queued; the whole
 *           hub backs off and no new upload starts (those in flight end as they may)
 * Backoff is exponential with full jitter: the n-th consecutive failure waits a uniformly
 * random time in [0, min(retry_max, 2^n s)], and never less than the hub's Retry-After.
 * The hub's count goes up once per pass however many uploads failed together, and a later
 * answer of the same pass does not clear it. The state survives restarts:
 * DIR/sync-state.json for the hub, outbox/<id>.retry per return, both written
 * atomically. Waits are real time, whatever RETURNS_CLOCK says: they are about the
 * network, not the campaign.
 * Delivered returns are moved to sent/ in groups (spool_mark_sent_group: the receipts'
 * fdatasyncs together and an fsync of each folder per step, not four fsyncs per return,
 * and never a flush of the whole filesystem): a group is handed to a writer
 * thread once it could not take another round of uploads, once its first return has
 * waited SYNC_GROUP_WAIT_MS, or when no upload is in flight, and the uploads go on while
 * it is written; the next group fills meanwhile and waits for the writer only if it fills
 * up first. A return is reported sent only once its group is written (the pass ends after
 * the last one): one the agent dies holding is still queued and is sent again (the hub
 * answers with the same receipt).
 * Memory stays flat whatever the queue holds: only the ids are listed, and only the
 * returns in flight are in memory (a slot's buffers are freed after a large one). */
#ifndef SCHOOL_AGENT_SYNC_H
#define SCHOOL_AGENT_SYNC_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/ids.h"
#include "common/jwk.h"
#include "common/macro.h"
#include "http.h"
#include "prepare.h"
#include "receipt.h"
#include "spool.h"

struct agent;

#define SYNC_GROUP_MAX 64      /* delivered returns moved to sent/ together, at most */
#define SYNC_GROUP_WAIT_MS 250 /* the longest a delivered return waits for its group */

struct sync_result {
	size_t sent;
	size_t rejected;
	size_t failed;       /* attempts that left a return queued */
	size_t remaining;    /* returns in the outbox after the pass */
	int64_t hub_next_ms; /* the hub is backing off until then (real time); 0: it is not */
};

/* Where a slot is: an upload goes free -> preparing -> running -> ended -> free. */
enum sync_slot_state {
	SYNC_SLOT_FREE,
	SYNC_SLOT_PREPARING, /* handed to the preparer, which owns up until it gives it back */
	SYNC_SLOT_RUNNING,   /* in flight */
	SYNC_SLOT_ENDED,     /* its answer is to be read */
};

/* One upload: the return on the transfer of the same index. */
struct sync_slot {
	enum sync_slot_state state;
	struct prepared up; /* the return read, checked and compressed; up.tag is the index */
	int retry;          /* it has an outbox/<id>.retry */
};

/* A return whose receipt verified, waiting to be moved to sent/ with its group. Its slot
 * is free again meanwhile. */
struct sync_delivered {
	struct spool_item item;
	struct receipt rc;
	struct buf receipt; /* as the hub sent it */
	int retry;
};

/* The group being written to sent/ by the writer thread. While running is set, only that
 * thread touches items, sent and result; pthread_join hands them back. */
struct sync_writer {
	const struct agent *agent; /* borrowed */
	pthread_t thread;
	int running;
	struct sync_delivered *items; /* SYNC_GROUP_MAX */
	struct spool_sent *sent;      /* SYNC_GROUP_MAX */
	size_t count;
	int result; /* of spool_mark_sent_group */
};

struct syncer {
	const struct agent *agent; /* borrowed */
	struct jwk county;
	struct http_client http;
	struct clock real;
	struct buf state;
	struct sync_slot *slots;      /* one per transfer of http: twice the uploads in flight */
	struct preparer *prep;        /* prepares as many returns again as are in flight */
	struct sync_delivered *group; /* SYNC_GROUP_MAX: the group filling */
	size_t grouped;               /* in group */
	int64_t group_since;          /* real time of the group's first return */
	struct sync_writer writer;    /* the group before it, being written */
	int force;                    /* ignore the backoff state */
	/* Set by the caller (may stay NULL): called on the thread of syncer_pass for each
	 * return once it is durably in sent/ with its verified receipt, which the caller
	 * then need not read back and verify again (item and rc are borrowed for the call) */
	void (*on_sent)(void *data, const struct spool_item *item, const struct receipt *rc);
	void *on_sent_data;
};

/* The agent's config gives the hub, TLS files, timeout and uploads in flight; the county
 * key is read from county.pub.jwk. Release with syncer_release. Negative errno with a
 * message in err. */
int syncer_init(struct syncer *ret, const struct agent *a, char *err, size_t errlen) WUR;
/* The same with the county's key given, for a caller that makes many syncers for the
 * agents of one county (tools/simulate: one per action) and reads and checks the key once
 * with agent_county_key, instead of once per syncer. Only its public half is copied
 * (county is borrowed for the call). Its kid must be a->cfg.county_id: -EINVAL (err says
 * so) otherwise. */
int syncer_init_with_key(struct syncer *ret, const struct agent *a, const struct jwk *county,
                         char *err, size_t errlen) WUR;
/* Waits for a group still being written (none is after syncer_pass) and frees everything. */
void syncer_release(struct syncer *s);

/* One pass over the outbox, after finishing what an interrupted import left
 * (spool_recover). stop (may be NULL) is asked before each upload is prepared; a nonzero answer
 * ends the pass once the uploads in flight have ended and their returns are written to
 * sent/ or left queued. Returns 0 with *ret filled, or a negative errno when the outbox
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
	long long parallel;
};
void sync_flags_apply(const struct sync_flags *f, struct agent *a);

#endif
