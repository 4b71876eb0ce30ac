/* The spool: one file per return, in the folder of its state (agent.h). A return is
 * queued once outbox/<id>.jws exists under its final name: it is written under a
 * temporary name, fsynced, renamed and the folder fsynced, so a crash leaves either no
 * return or a complete one, and a temporary file is never taken for a queued return (only
 * names of exactly "<uuid>.jws" count). A state change writes the companion file
 * (<id>.receipt, <id>.error.json) durably first, then renames the JWS and makes that
 * durable: after a crash in between, the return is still queued and is simply sent
 * again (the hub answers a resend with the same receipt). Returns delivered together are
 * moved as a group: the receipts' fdatasyncs are issued together, and each folder is
 * fsynced once per step for the whole group.
 *
 * An import queues all the returns of a file or none: they are written to a batch folder,
 * staging/<batch>/, which the importing process holds locked (flock), and moved into the
 * outbox only once every one is written and a durable mark says the batch is complete.
 * A batch a crash left behind is finished (complete) or removed (incomplete) by the next
 * agent command that looks at the outbox (spool_recover). */
#ifndef SCHOOL_AGENT_SPOOL_H
#define SCHOOL_AGENT_SPOOL_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ids.h"
#include "common/macro.h"

struct agent;
struct buf;

enum spool_state {
	SPOOL_QUEUED,
	SPOOL_SENT,
	SPOOL_REJECTED,
};

#define SPOOL_ITEM_MAX (8u * 1024 * 1024) /* bytes of one queued JWS */
#define SPOOL_LIST_MAX 1000000            /* returns listed from one folder */

/* The folder name of a state ("outbox", "sent", "rejected") and its word for people
 * ("queued", "sent", "rejected"). */
const char *spool_folder(enum spool_state s);
const char *spool_state_name(enum spool_state s);

/* Creates the three folders and staging/ (mode 0700) if missing, and fsyncs a->dir. */
int spool_create(const struct agent *a) WUR;

/* Writes len bytes of JWS text as outbox/<id>.jws durably (mode 0600). -EEXIST when a
 * return with that id is already in any folder. */
int spool_queue(const struct agent *a, const char *id, const void *text, size_t len) WUR;

/* Reads the JWS of id in state s into out (capped at SPOOL_ITEM_MAX by the caller's
 * buffer maximum). Errors of fileio_read. */
int spool_read(const struct agent *a, enum spool_state s, const char *id, struct buf *out) WUR;
/* Reads the companion file of id in s (".receipt" in sent, ".error.json" in rejected,
 * ".retry" in the outbox). -ENOENT when there is none. */
int spool_read_extra(const struct agent *a, enum spool_state s, const char *id,
                     struct buf *out) WUR;

/* outbox -> rejected with the hub's error body. */
int spool_mark_rejected(const struct agent *a, const char *id, const void *error_body,
                        size_t len) WUR;

/* One delivered return of a group for spool_mark_sent_group (all borrowed). */
struct spool_sent {
	const char *id;
	const void *receipt;
	size_t len;
	int retry; /* it has an outbox/<id>.retry to remove */
	int moved; /* set by spool_mark_sent_group once it is durably in sent/ */
};

/* outbox -> sent for n returns at once, each with its receipt: every receipt is written
 * as sent/<id>.receipt, all of them fdatasynced at once (issued together, not one after
 * another) and sent/ fsynced; then every JWS is renamed into sent/, the .retry files
 * removed, and sent/ then outbox/ fsynced. Only the group's own files and folders are
 * flushed, never the whole filesystem: what other programs have written is not waited
 * for. A return is never in sent/ without its whole receipt (a receipt torn by a crash
 * sits beside a return still queued, which is sent again), and a crash at any point
 * leaves each return sent with its receipt or still queued. Sets items[i].moved for the
 * returns moved to sent/. Returns 0, or the first error: a failure before the renames
 * moves none of the group, a later one may leave some moved. Thread-safe for distinct
 * items (it logs nothing). */
int spool_mark_sent_group(const struct agent *a, struct spool_sent *items, size_t n) WUR;

/* Writes (or, with text NULL, removes) outbox/<id>.retry, the item's backoff state. */
int spool_write_retry(const struct agent *a, const char *id, const char *text) WUR;

/* The ids in one folder, sorted (UUIDv7 ids sort by creation time). Only the names are
 * kept, 38 bytes each, never the documents: with each id, whether its companion file
 * (see spool_read_extra) was in the folder too, so that a sync need not look for the
 * .retry of every queued return (one failed open each). */
struct spool_list {
	char (*ids)[IDS_UUID_LEN + 1];
	unsigned char *extra; /* extra[i]: the companion of ids[i] was listed; NULL if none was */
	size_t count;
	size_t alloc;
};

/* Fills *ret (caller frees with spool_list_release). -E2BIG past SPOOL_LIST_MAX. */
int spool_list(const struct agent *a, enum spool_state s, struct spool_list *ret) WUR;
void spool_list_release(struct spool_list *l);

/* 1 when name is "<uuid>.jws", and then the id into ret. */
int spool_name_id(const char *name, char ret[static IDS_UUID_LEN + 1]);

/* What the agent needs to know of a return, read from its own signed JWS. */
struct spool_item {
	char id[IDS_UUID_LEN + 1];
	char form[65];
	char period[16];
	char created_at[40];
	char supersedes[IDS_UUID_LEN + 1];   /* "" for none */
	char sha256[IDS_SHA256_HEX_LEN + 1]; /* of the payload bytes exactly as signed */
};

/* Parses len bytes of a queued JWS (not verifying the signature: it is ours) into *ret.
 * -EBADMSG with a message in err when it is not a return this agent wrote, -ENOMEM. */
int spool_item_parse(const char *text, size_t len, struct spool_item *ret, char *err,
                     size_t errlen) WUR;

/* The state that holds id: 0 and *ret_state, or -ENOENT. */
int spool_find(const struct agent *a, const char *id, enum spool_state *ret_state) WUR;

/* rejected -> outbox, unchanged (the same bytes, so the same submission id: resending it
 * is idempotent at the hub), without the hub's error: the JWS is renamed, the outbox
 * fsynced, then <id>.error.json removed and rejected/ fsynced. A crash in between leaves
 * the return queued (and at worst a stale error file, which nothing reads). -ENOENT when
 * id is not rejected, -EBADMSG (err says why) when the file is not a return this agent
 * wrote. */
int spool_requeue(const struct agent *a, const char *id, char *err, size_t errlen) WUR;

/* A batch of returns being queued together (import). */
struct spool_batch {
	char dir[PATH_MAX]; /* staging/<batch> */
	int fd;             /* that folder, locked while the batch is open; -1: none */
	size_t count;       /* returns written to it */
	char source[256];   /* what it is queued from, for people */
};

/* Makes a new, locked batch folder described in its mark by source (e.g. the CSV file's
 * name, for the log of a later recovery). Close it with spool_batch_commit or
 * spool_batch_abort. */
int spool_batch_begin(const struct agent *a, const char *source, struct spool_batch *ret) WUR;
/* Writes the JWS of id into the batch (the commit makes it durable). */
int spool_batch_add(struct spool_batch *b, const char *id, const void *text, size_t len) WUR;
/* Queues every return of the batch: flushes the filesystem (syncfs: every return of the
 * batch durable with one flush, where a batch may hold 10,000 files; it waits for what
 * other programs have written too, once per import), marks the batch complete durably,
 * renames each return into the outbox, fsyncs the outbox and removes the batch. Returns 0
 * when every return is durably in the outbox; 1 when the batch is queued (marked
 * complete) but the move failed part way: the next spool_recover finishes it; a negative
 * errno when nothing is queued (the batch is removed). The batch is closed in every
 * case. */
int spool_batch_commit(const struct agent *a, struct spool_batch *b) WUR;
/* Removes the batch and all it holds: nothing of it is queued. */
void spool_batch_abort(struct spool_batch *b);

/* Finishes every batch left complete by a process that died (its returns are queued) and
 * removes every incomplete one; batches another process holds are left alone. Logs what
 * it did. Returns the number of returns it queued, or a negative errno. */
int spool_recover(const struct agent *a) WUR;

#endif
