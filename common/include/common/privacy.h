/* The privacy guard (DESIGN §7): finds personal data in free text before it travels.
 * It looks for two things that identify a person and have no place in a return:
 * - a resident identity number (GB 11643-1999): 17 digits and a check character (a digit
 *   or X) whose ISO 7064 MOD 11-2 check is valid, not part of a longer digit run;
 * - a mainland mobile number: 11 digits 1[3-9]xxxxxxxxx, not part of a longer digit run,
 *   optionally written with a +86, 86 or 0086 prefix (then optionally one separator)
 *   and with one separator after the 3rd and/or the 7th digit ("138 0013 8000",
 *   "138-0013-8000", "+86 138-0013-8000"). A separator is a space or a hyphen.
 * Full-width forms common in Chinese text count as their ASCII twins: the digits
 * U+FF10..U+FF19, X and x (U+FF38, U+FF58), the plus sign U+FF0B, the hyphen U+FF0D and
 * the ideographic space U+3000. Anything else (e.g. "2024-017", dates, counts) passes.
 * Text is UTF-8; a byte that is not part of a valid UTF-8 sequence counts as one
 * character that is neither a digit nor a separator. The scan is linear in the length
 * of the text, allocates nothing and never fails. Thread-safe: no state. */
#ifndef COMMON_PRIVACY_H
#define COMMON_PRIVACY_H

#include <stddef.h>

#include "common/macro.h"

struct cJSON;
struct errlist;

#define PRIVACY_MAX_DEPTH 256 /* deeper documents are refused by privacy_check() */

enum privacy_kind {
	PRIVACY_ID_NUMBER,
	PRIVACY_MOBILE,
};

struct privacy_match {
	enum privacy_kind kind;
	size_t offset;      /* bytes before the match */
	size_t length;      /* bytes in the match */
	size_t char_offset; /* characters (code points) before the match */
	size_t char_length; /* characters in the match */
};

/* Scans len bytes of text (no NUL terminator needed). Returns 1 and fills *ret_match
 * with the first match (the one that starts first), or returns 0 and leaves *ret_match
 * alone when the text is clean. */
int privacy_scan(const char *text, size_t len, struct privacy_match *ret_match) WUR;

/* "resident identity number" or "mobile phone number". */
const char *privacy_kind_name(enum privacy_kind kind);

/* Scans every string value and every object member name in root (borrowed) and adds one
 * error with keyword "privacy" to errs per offending string, at the JSON Pointer of the
 * string, e.g. "contains what looks like a mobile phone number (characters 12-22); remove
 * personal data". Characters are counted from 1, in code points. The matched text is
 * never repeated, so messages and pointers are safe to log: an offending member name is
 * reported at its object ("a member name contains ...") and its value is not entered.
 * Arrays and objects nested deeper than PRIVACY_MAX_DEPTH are not entered either and
 * are refused with one error, so nothing passes unchecked. Returns the number of errors
 * added (counting those errs only counted because it was full), or -ENOMEM. */
int privacy_check(const struct cJSON *root, struct errlist *errs) WUR;

#endif
