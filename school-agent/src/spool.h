/* The spool: one file per return, in the folder of its state (agent.h). A return is
 * queued once outbox/<id>.jws exists under its final name: it is written under a
 * temporary name, fsynced, renamed and the folder fsynced, so a crash leaves either no
 * return or a complete one, and a temporary file is never taken for a queued return (only
 * names of exactly "<uuid>.jws" count). A state change writes the companion file
 * (<id>.receipt, <id>.error.json) durably first, then renames the JWS and fsyncs both
 * folders: after a crash in between, the return is still queued and is simply sent
 * again (the hub answers a resend with the same receipt). */
#ifndef SCHOOL_AGENT_SPOOL_H
#define SCHOOL_AGENT_SPOOL_H

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

/* Creates the three folders (mode 0700) if missing, and fsyncs a->dir. */
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

/* outbox -> sent with the receipt text; outbox -> rejected with the hub's error body. */
int spool_mark_sent(const struct agent *a, const char *id, const void *receipt, size_t len) WUR;
int spool_mark_rejected(const struct agent *a, const char *id, const void *error_body,
                        size_t len) WUR;

/* Writes (or, with text NULL, removes) outbox/<id>.retry, the item's backoff state. */
int spool_write_retry(const struct agent *a, const char *id, const char *text) WUR;

/* The ids in one folder, sorted (UUIDv7 ids sort by creation time). Only the names are
 * kept, 37 bytes each, never the documents. */
struct spool_list {
	char (*ids)[IDS_UUID_LEN + 1];
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

#endif
