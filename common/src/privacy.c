/* The privacy guard: see privacy.h. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/errlist.h"
#include "common/json.h"
#include "common/privacy.h"
#include "common/banned.h"

#define ID_LENGTH 18
#define MOBILE_DIGITS 11
/* A pointer is built only this far: errlist cuts longer ones anyway. */
#define POINTER_BUILD_MAX (4 * ERRLIST_POINTER_MAX)

enum sym_kind {
	SYM_OTHER,
	SYM_DIGIT,
	SYM_X,
	SYM_PLUS,
	SYM_SEP,
};

struct sym {
	enum sym_kind kind;
	int digit;    /* SYM_DIGIT: 0..9 */
	size_t bytes; /* length of its UTF-8 sequence, >= 1 */
};

/* A position in the text, in bytes and in characters. */
struct cursor {
	const unsigned char *s;
	size_t len;
	size_t pos;
	size_t chars;
};

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xBF;
	size_t want;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		want = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		want = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		want = 4;
	else
		return 0;
	if (n < want)
		return 0;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < want; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	return want;
}

/* The symbol at the cursor; the cursor must not be at the end. */
static void peek(const struct cursor *c, struct sym *ret)
{
	const unsigned char *p = c->s + c->pos;
	size_t n = utf8_seq(p, c->len - c->pos);

	ret->kind = SYM_OTHER;
	ret->digit = 0;
	ret->bytes = n ? n : 1;
	if (n == 1) {
		if (p[0] >= '0' && p[0] <= '9') {
			ret->kind = SYM_DIGIT;
			ret->digit = p[0] - '0';
		} else if (p[0] == 'X' || p[0] == 'x') {
			ret->kind = SYM_X;
		} else if (p[0] == '+') {
			ret->kind = SYM_PLUS;
		} else if (p[0] == ' ' || p[0] == '-') {
			ret->kind = SYM_SEP;
		}
	} else if (n == 3 && p[0] == 0xEF && p[1] == 0xBC) {
		/* U+FF00..U+FF3F */
		if (p[2] >= 0x90 && p[2] <= 0x99) {
			ret->kind = SYM_DIGIT;
			ret->digit = p[2] - 0x90;
		} else if (p[2] == 0xB8) {
			ret->kind = SYM_X;
		} else if (p[2] == 0x8B) {
			ret->kind = SYM_PLUS;
		} else if (p[2] == 0x8D) {
			ret->kind = SYM_SEP;
		}
	} else if (n == 3 && p[0] == 0xEF && p[1] == 0xBD && p[2] == 0x98) {
		ret->kind = SYM_X; /* U+FF58 */
	} else if (n == 3 && p[0] == 0xE3 && p[1] == 0x80 && p[2] == 0x80) {
		ret->kind = SYM_SEP; /* U+3000 */
	}
}

static bool at_end(const struct cursor *c)
{
	return c->pos >= c->len;
}

/* Reads one symbol; false at the end of the text. */
static bool take(struct cursor *c, struct sym *ret)
{
	if (at_end(c))
		return false;
	peek(c, ret);
	c->pos += ret->bytes;
	c->chars++;
	return true;
}

static bool take_digit(struct cursor *c, int *ret_digit)
{
	struct sym s;

	if (!take(c, &s) || s.kind != SYM_DIGIT)
		return false;
	*ret_digit = s.digit;
	return true;
}

/* True when the next symbol is a digit: the candidate continues a longer run. */
static bool digit_follows(const struct cursor *c)
{
	struct sym s;

	if (at_end(c))
		return false;
	peek(c, &s);
	return s.kind == SYM_DIGIT;
}

static void skip_one_sep(struct cursor *c)
{
	struct sym s;

	if (at_end(c))
		return;
	peek(c, &s);
	if (s.kind == SYM_SEP) {
		c->pos += s.bytes;
		c->chars++;
	}
}

static void fill_match(enum privacy_kind kind, const struct cursor *start, const struct cursor *end,
                       struct privacy_match *ret)
{
	ret->kind = kind;
	ret->offset = start->pos;
	ret->length = end->pos - start->pos;
	ret->char_offset = start->chars;
	ret->char_length = end->chars - start->chars;
}

/* GB 11643-1999: weights 2^(17-i) mod 11; the check character c makes
 * sum + c == 1 (mod 11), with X standing for 10. */
static bool match_id(const struct cursor *start, struct privacy_match *ret)
{
	static const int weight[ID_LENGTH - 1] = {7, 9, 10, 5,  8, 4, 2, 1, 6,
	                                          3, 7, 9,  10, 5, 8, 4, 2};
	struct cursor c = *start;
	struct sym s;
	int sum = 0, d, check;

	for (int i = 0; i < ID_LENGTH - 1; i++) {
		if (!take_digit(&c, &d))
			return false;
		sum += d * weight[i];
	}
	if (!take(&c, &s))
		return false;
	if (s.kind == SYM_DIGIT)
		check = s.digit;
	else if (s.kind == SYM_X)
		check = 10;
	else
		return false;
	if (digit_follows(&c) || (sum + check) % 11 != 1)
		return false;
	fill_match(PRIVACY_ID_NUMBER, start, &c, ret);
	return true;
}

/* 1[3-9]x xxxx xxxx, one optional separator after the 3rd and after the 7th digit. */
static bool match_mobile_digits(struct cursor *c)
{
	int d;

	for (int i = 0; i < MOBILE_DIGITS; i++) {
		if (i == 3 || i == 7)
			skip_one_sep(c);
		if (!take_digit(c, &d))
			return false;
		if ((i == 0 && d != 1) || (i == 1 && d < 3))
			return false;
	}
	return !digit_follows(c);
}

/* prefix: '+' and ASCII digits, matched against normalized symbols. */
static bool match_prefix(struct cursor *c, const char *prefix)
{
	struct sym s;

	for (const char *p = prefix; *p; p++) {
		if (!take(c, &s))
			return false;
		if (*p == '+' ? s.kind != SYM_PLUS : (s.kind != SYM_DIGIT || s.digit != *p - '0'))
			return false;
	}
	if (*prefix)
		skip_one_sep(c);
	return true;
}

static bool match_mobile(const struct cursor *start, struct privacy_match *ret)
{
	static const char *const prefixes[] = {"+86", "0086", "86", ""};

	for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++) {
		struct cursor c = *start;

		if (match_prefix(&c, prefixes[i]) && match_mobile_digits(&c)) {
			fill_match(PRIVACY_MOBILE, start, &c, ret);
			return true;
		}
	}
	return false;
}

/* Every candidate starts where a digit run (or a '+') starts, and a try reads at most
 * about 20 characters, so the scan is linear. */
int privacy_scan(const char *text, size_t len, struct privacy_match *ret_match)
{
	struct cursor c = {.s = (const unsigned char *)text, .len = len};
	bool after_digit = false;
	struct sym s;

	while (!at_end(&c)) {
		peek(&c, &s);
		if (!after_digit && (s.kind == SYM_DIGIT || s.kind == SYM_PLUS) &&
		    (match_id(&c, ret_match) || match_mobile(&c, ret_match)))
			return 1;
		after_digit = s.kind == SYM_DIGIT;
		c.pos += s.bytes;
		c.chars++;
	}
	return 0;
}

const char *privacy_kind_name(enum privacy_kind kind)
{
	switch (kind) {
	case PRIVACY_ID_NUMBER:
		return "resident identity number";
	case PRIVACY_MOBILE:
		return "mobile phone number";
	}
	return "personal number";
}

/* A path from the root to the current value, on the stack; built into text on a hit. */
struct frame {
	const struct frame *up;
	const char *key; /* NULL for an array element */
	size_t index;
};

/* Builds the pointer of f into b, only as far as errlist keeps it: a long member name
 * is cut, and errlist marks the cut pointer with "...". */
static int frame_pointer(const struct frame *f, struct buf *b)
{
	char token[ERRLIST_POINTER_MAX + 2];
	size_t n;
	int r;

	if (!f || !f->up)
		return 0;
	r = frame_pointer(f->up, b);
	if (r < 0 || b->len > ERRLIST_POINTER_MAX)
		return r;
	if (!f->key)
		return json_pointer_append_index(b, f->index);
	n = strnlen(f->key, sizeof(token) - 1);
	memcpy(token, f->key, n);
	token[n] = '\0';
	return json_pointer_append(b, token);
}

static int report(struct errlist *errs, const struct frame *f, const char *what,
                  const struct privacy_match *m)
{
	struct buf b;
	int r = 0;

	buf_init(&b, POINTER_BUILD_MAX);
	if (errs->count < ERRLIST_MAX)
		r = frame_pointer(f, &b);
	if (r == 0)
		r = errlist_add(
		        errs, ERRLIST_ERROR, b.data ? b.data : "", "privacy",
		        "%s what looks like a %s (characters %zu-%zu); remove personal data", what,
		        privacy_kind_name(m->kind), m->char_offset + 1,
		        m->char_offset + m->char_length);
	buf_release(&b);
	return r;
}

/* depth: how many arrays and objects enclose node. Returns the errors added or -ENOMEM. */
static int walk(const cJSON *node, const struct frame *f, int depth, struct errlist *errs)
{
	struct privacy_match m;
	int found = 0, r;
	size_t i = 0;

	if (cJSON_IsString(node) && node->valuestring) {
		if (!privacy_scan(node->valuestring, strlen(node->valuestring), &m))
			return 0;
		r = report(errs, f, "contains", &m);
		return r < 0 ? r : 1;
	}
	if (!cJSON_IsArray(node) && !cJSON_IsObject(node))
		return 0;
	if (depth >= PRIVACY_MAX_DEPTH) {
		struct buf b;

		buf_init(&b, POINTER_BUILD_MAX);
		r = frame_pointer(f, &b);
		if (r == 0)
			r = errlist_add(errs, ERRLIST_ERROR, b.data ? b.data : "", "privacy",
			                "nested deeper than %d levels, too deep to check for "
			                "personal data",
			                PRIVACY_MAX_DEPTH);
		buf_release(&b);
		return r < 0 ? r : 1;
	}
	for (const cJSON *c = node->child; c; c = c->next, i++) {
		struct frame sub = {
		        .up = f,
		        .key = cJSON_IsObject(node) ? (c->string ? c->string : "") : NULL,
		        .index = i,
		};

		/* Reported at the object: the member's own pointer would repeat the name.
		 * Its value is not entered, so no other pointer repeats it either. */
		if (sub.key && privacy_scan(sub.key, strlen(sub.key), &m)) {
			r = report(errs, f, "a member name contains", &m);
			if (r < 0)
				return r;
			if (found < INT_MAX)
				found++;
			continue;
		}
		r = walk(c, &sub, depth + 1, errs);
		if (r < 0)
			return r;
		found = r > INT_MAX - found ? INT_MAX : found + r;
	}
	return found;
}

int privacy_check(const cJSON *root, struct errlist *errs)
{
	struct frame top = {0};

	if (!root)
		return 0;
	return walk(root, &top, 0, errs);
}
