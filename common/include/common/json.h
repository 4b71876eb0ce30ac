/* JSON from untrusted sources, and JSON Pointers (RFC 6901).
 * json_parse_untrusted() accepts only strict RFC 8259 JSON in valid UTF-8: it checks the
 * whole text itself before cJSON sees it, with limits on size and nesting, and it
 * rejects what parsers disagree on (duplicate member names, "\u0000", lone surrogates,
 * numbers out of double range), so every tier reads the same signed bytes the same way.
 * Thread-safe: no state besides the caller's arguments. */
#ifndef COMMON_JSON_H
#define COMMON_JSON_H

#include <stddef.h>

#include "common/macro.h"

struct buf;
struct cJSON;

#define JSON_MAX_TEXT (16u * 1024 * 1024) /* bytes accepted by json_parse_untrusted */
#define JSON_MAX_DEPTH 64                 /* a sensible max_depth for documents */
#define JSON_MAX_NUMBER 63                /* characters in one number (cJSON's own limit) */

/* Parses len bytes of text (no NUL terminator needed) into a cJSON tree; caller frees
 * *ret_json with cJSON_Delete(). max_depth bounds the nesting of arrays and objects
 * ("[[1]]" has depth 2; at most 1000). On failure err (may be NULL) receives a message
 * such as "invalid UTF-8 at line 3, column 7" or "duplicate member \"x\" at /a/b".
 * Returns 0, -EMSGSIZE (len > JSON_MAX_TEXT), -EINVAL (not strict JSON, too deep,
 * duplicate member, invalid UTF-8) or -ENOMEM. */
int json_parse_untrusted(const char *text, size_t len, int max_depth, struct cJSON **ret_json,
                         char *err, size_t errlen) WUR;

/* 1 when text holds more than max '{', '[' or ',' outside strings, else 0: bounds the
 * cJSON nodes a text can make, checked before cJSON makes them. The grammar itself is
 * json_parse_untrusted()'s to check. */
int json_too_many_values(const char *text, size_t len, size_t max);

/* Checks a tree made elsewhere (by cJSON_Parse() or by hand) as json_parse_untrusted()
 * checks text: nesting within max_depth, UTF-8, member names present and unique, numbers
 * finite. Returns 0 or -EINVAL (err as for json_parse_untrusted()). */
int json_check_tree(const struct cJSON *root, int max_depth, char *err, size_t errlen) WUR;

/* The value at pointer ("" is root itself, "/a/0/b~1c" the member "b/c" of the first
 * element of "a"), borrowed from root; NULL when there is none or pointer is malformed.
 * Array indexes are decimal without leading zeros; "-" names nothing. */
const struct cJSON *json_pointer_get(const struct cJSON *root, const char *pointer);

/* Appends "/" and token escaped per RFC 6901 ("~" as "~0", "/" as "~1") to b.
 * Same errors as buf_append. */
int json_pointer_append(struct buf *b, const char *token) WUR;
/* Appends "/" and an array index. */
int json_pointer_append_index(struct buf *b, size_t index) WUR;

#endif
