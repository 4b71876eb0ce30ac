/* The list of problems found in one document by the schema validator, the x-rules
 * evaluator and the privacy guard. Each entry names where (a JSON Pointer into the
 * document, RFC 6901), what rule (the keyword or rule id) and why (a message for people).
 * The list is bounded: past ERRLIST_MAX entries further problems are only counted, so a
 * hostile document cannot make the list grow without limit. Not thread-safe. */
#ifndef COMMON_ERRLIST_H
#define COMMON_ERRLIST_H

#include <stddef.h>

#include "common/macro.h"

#define ERRLIST_MAX 100
#define ERRLIST_POINTER_MAX 512 /* longer pointers are cut and end in "..." */
#define ERRLIST_MESSAGE_MAX 512

enum errlist_severity {
	ERRLIST_ERROR,
	ERRLIST_WARNING,
};

struct errlist_entry {
	enum errlist_severity severity;
	char *pointer; /* "" is the whole document */
	char *keyword; /* e.g. "minimum", "x-rules:screened_le_enrolled", "privacy" */
	char *message;
};

struct errlist {
	struct errlist_entry *entries;
	size_t count;    /* entries held */
	size_t errors;   /* errors found, held or not */
	size_t warnings; /* warnings found, held or not */
};

void errlist_init(struct errlist *l);
/* Frees every entry; the list is empty and usable again. */
void errlist_release(struct errlist *l);

/* Adds one problem; copies every string. Returns 0 (also when the entry was only counted
 * because the list is full) or -ENOMEM. */
int errlist_add(struct errlist *l, enum errlist_severity severity, const char *pointer,
                const char *keyword, const char *fmt, ...) PRINTF_LIKE(5, 6) WUR;

/* Puts prefix (a JSON Pointer, e.g. "/data") in front of the pointer of every entry from
 * index first on, for problems found in a part of a larger document. 0 or -ENOMEM. */
int errlist_prefix_pointers(struct errlist *l, size_t first, const char *prefix) WUR;

/* Appends one line per entry ("/victims/female: must be >= 0 (minimum)") to out.
 * prefix, when not NULL, starts each line (e.g. a file name and ": "). */
struct buf;
int errlist_format(const struct errlist *l, const char *prefix, struct buf *out) WUR;

#endif
