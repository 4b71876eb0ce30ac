/* The forwarder (DESIGN section 8, docs/PROTOCOL.md "County hub -> region"): one thread of
 * `serve`, started only when a region URL is configured, that sends the outbox to the
 * region's POST /v1/ingest in order, in batches (at most batch_max items and
 * FORWARD_PAYLOAD_MAX bytes), each a gzipped JWS signed by the county key.
 *
 * One round (its own store connection): in one read snapshot, read the oldest pending
 * rows and compute the figures of the roll-ups queued without a body, so that the writer
 * never waits while they are computed; then, in a short write transaction, sign those
 * roll-ups and store them in their rows (outbox.h; a resend carries the same computed_at),
 * unless a newer roll-up of the same form and period replaced the row meanwhile (that
 * one is sent in a later round); then send. A batch of returns alone takes no write lock
 * until the region confirmed it. Rows are marked done
 * only after the region's 200 with one result per item; an item the region rejected is
 * logged, counted, and marked done too (with the reason), so that one bad item never
 * blocks the queue. A failed round (network error, timeout, any other answer, an answer
 * that does not match the batch) is retried after an exponential backoff with full
 * jitter: a delay drawn uniformly from [0, min(backoff_max_ms, backoff_base_ms * 2^n)]
 * after the n-th failure in a row. A 413 also halves the batch size. An item that alone
 * exceeds FORWARD_PAYLOAD_MAX (an upload of several MiB) could never be sent: it is
 * marked done unsent, logged and counted with the rejected ones. Uploads never wait
 * for the region: the hub keeps accepting whatever the forwarder is doing.
 * After a batch that was not full the forwarder waits linger_ms before the next round, so
 * that a busy county sends a few larger batches a second rather than many small ones:
 * the region's work per batch (the county signature, the roster, a transaction and its
 * flush) is then shared by more returns, at the cost of that much latency.
 * Roll-ups are paced: the roll-up of a (form, period) is computed and sent at most once
 * per rollup_interval_ms (real time, counted from when the last one was computed). One
 * that comes sooner is held: its row stays pending while the rows behind it go ahead
 * (none of them changes its form and period: such a change would have moved the roll-up
 * behind itself), and it goes out in the first round after the interval, with the
 * figures of that moment. Returns are never held. Each roll-up lists every current
 * return of its (form, period), so without pacing a busy county (a thousand schools at a
 * deadline) would recompute and send that whole list with every batch: measured, that
 * was 90% of a hub's CPU and as much again at the region.
 * Resending is harmless: the region stores each item once (submission_id, roster version,
 * roll-up computed_at). */
#ifndef COUNTY_HUB_FORWARD_H
#define COUNTY_HUB_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

struct clock;
struct jwk;
struct metrics;
struct report_source;
struct forwarder;

#define FORWARD_ITEMS_MAX 1000 /* items in one batch (docs/PROTOCOL.md) */
/* bytes of batch payload: its JWS (base64url, 4/3 larger) stays within what jws_sign
 * makes (8 MiB) and far below the region's 16 MiB */
#define FORWARD_PAYLOAD_MAX (6u * 1000 * 1000)
#define FORWARD_ANSWER_MAX (4u * 1024 * 1024) /* bytes of the region's answer */

struct forward_options {
	const char *store_path;
	int busy_timeout_ms;
	const char *region_url; /* the ingest endpoint is <region_url>/v1/ingest */
	const char *cacert;     /* CA certificates (PEM) for an https:// region; NULL or "": the
	                         * system's. The region's certificate is always verified. */
	const char *county_id;
	const struct jwk *county_key;    /* borrowed, outlives the forwarder */
	const struct clock *clock;       /* sent_at, computed_at, done_ms */
	const struct report_source *src; /* to compute roll-ups */
	int offset_min;                  /* of the times written */
	size_t batch_max;                /* 1..FORWARD_ITEMS_MAX */
	int64_t backoff_base_ms, backoff_max_ms;
	int64_t poll_ms;            /* idle: look for rows other processes queued this often */
	int64_t rollup_interval_ms; /* a (form, period)'s roll-up at most this often; 0: always */
	int64_t linger_ms; /* after a batch that was not full, wait this long before the next */
	long timeout_s;    /* one whole request */
};

/* Opens the connection and starts the thread (call curl_global_init first). err says what
 * failed. Stop and free with forward_stop(). */
int forward_start(const struct forward_options *o, struct metrics *m, struct forwarder **ret,
                  char *err, size_t errlen) WUR;
/* Something was committed: look at the outbox now rather than at the next poll. Cheap,
 * callable from any thread (the writer calls it after each commit). */
void forward_wake(void *forwarder);
/* Interrupts a request in flight (its rows stay pending), joins the thread, closes the
 * connection and frees f. Accepts NULL. */
void forward_stop(struct forwarder *f);

#endif
