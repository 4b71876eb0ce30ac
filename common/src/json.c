/* Strict JSON from untrusted sources and JSON Pointers: see json.h. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/errmsg.h"
#include "common/buf.h"
#include "common/json.h"
#include "common/banned.h"

#define CJSON_DEPTH_CAP 1000 /* CJSON_NESTING_LIMIT: cJSON refuses deeper input anyway */

struct scan {
	const unsigned char *s;
	size_t len;
	size_t pos;
	char *err;
	size_t errlen;
};

/* A path from the root to the current value, on the stack; built into text on error. */
struct frame {
	const struct frame *up;
	const char *key; /* NULL for an array element */
	size_t index;
};

/* "line 3, column 7" of pos; columns count characters, not bytes. */
static int scan_fail(struct scan *sc, const char *what)
{
	unsigned line = 1, col = 1;

	for (size_t i = 0; i < sc->pos && i < sc->len; i++) {
		if (sc->s[i] == '\n') {
			line++;
			col = 1;
		} else if ((sc->s[i] & 0xC0) != 0x80) {
			col++;
		}
	}
	if (sc->pos >= sc->len)
		errmsg_set(sc->err, sc->errlen, 0, "%s at end of input (line %u, column %u)", what,
		           line, col);
	else
		errmsg_set(sc->err, sc->errlen, 0, "%s at line %u, column %u", what, line, col);
	return -EINVAL;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 when invalid: no
 * overlong forms, no surrogates, nothing above U+10FFFF (RFC 3629). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF) {
		unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;

		if (n < 3 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80)
			return 0;
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;

		if (n < 4 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80 ||
		    (s[3] & 0xC0) != 0x80)
			return 0;
		return 4;
	}
	return 0;
}

static void skip_ws(struct scan *sc)
{
	while (sc->pos < sc->len) {
		unsigned char c = sc->s[sc->pos];

		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		sc->pos++;
	}
}

static int hex4(struct scan *sc, unsigned *ret)
{
	unsigned v = 0;

	if (sc->len - sc->pos < 4)
		return scan_fail(sc, "truncated \\u escape");
	for (int i = 0; i < 4; i++) {
		unsigned char c = sc->s[sc->pos + i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return scan_fail(sc, "invalid \\u escape");
	}
	sc->pos += 4;
	*ret = v;
	return 0;
}

/* At the opening quote. */
static int scan_string(struct scan *sc)
{
	unsigned cp, lo;
	int r;

	sc->pos++;
	for (;;) {
		unsigned char c;
		size_t n;

		if (sc->pos >= sc->len)
			return scan_fail(sc, "unterminated string");
		c = sc->s[sc->pos];
		if (c == '"') {
			sc->pos++;
			return 0;
		}
		if (c < 0x20)
			return scan_fail(sc, "control character in string");
		if (c >= 0x80) {
			n = utf8_seq(sc->s + sc->pos, sc->len - sc->pos);
			if (!n)
				return scan_fail(sc, "invalid UTF-8");
			sc->pos += n;
			continue;
		}
		sc->pos++;
		if (c != '\\')
			continue;
		if (sc->pos >= sc->len)
			return scan_fail(sc, "unterminated string");
		c = sc->s[sc->pos++];
		if (c && strchr("\"\\/bfnrt", c))
			continue;
		if (c != 'u') {
			sc->pos--;
			return scan_fail(sc, "invalid escape in string");
		}
		r = hex4(sc, &cp);
		if (r < 0)
			return r;
		if (cp == 0)
			return scan_fail(sc, "\\u0000 in string");
		if (cp >= 0xDC00 && cp <= 0xDFFF)
			return scan_fail(sc, "lone low surrogate escape");
		if (cp < 0xD800 || cp > 0xDBFF)
			continue;
		if (sc->len - sc->pos < 2 || sc->s[sc->pos] != '\\' || sc->s[sc->pos + 1] != 'u')
			return scan_fail(sc, "lone high surrogate escape");
		sc->pos += 2;
		r = hex4(sc, &lo);
		if (r < 0)
			return r;
		if (lo < 0xDC00 || lo > 0xDFFF)
			return scan_fail(sc, "lone high surrogate escape");
	}
}

static bool at_digit(const struct scan *sc)
{
	return sc->pos < sc->len && sc->s[sc->pos] >= '0' && sc->s[sc->pos] <= '9';
}

static int scan_number(struct scan *sc)
{
	size_t start = sc->pos;

	if (sc->s[sc->pos] == '-')
		sc->pos++;
	if (!at_digit(sc))
		return scan_fail(sc, "invalid number");
	if (sc->s[sc->pos] == '0') {
		sc->pos++;
		if (at_digit(sc))
			return scan_fail(sc, "leading zero in number");
	} else {
		while (at_digit(sc))
			sc->pos++;
	}
	if (sc->pos < sc->len && sc->s[sc->pos] == '.') {
		sc->pos++;
		if (!at_digit(sc))
			return scan_fail(sc, "invalid number");
		while (at_digit(sc))
			sc->pos++;
	}
	if (sc->pos < sc->len && (sc->s[sc->pos] == 'e' || sc->s[sc->pos] == 'E')) {
		sc->pos++;
		if (sc->pos < sc->len && (sc->s[sc->pos] == '+' || sc->s[sc->pos] == '-'))
			sc->pos++;
		if (!at_digit(sc))
			return scan_fail(sc, "invalid number");
		while (at_digit(sc))
			sc->pos++;
	}
	if (sc->pos - start > JSON_MAX_NUMBER) {
		sc->pos = start;
		return scan_fail(sc, "number too long");
	}
	return 0;
}

static int scan_literal(struct scan *sc, const char *word)
{
	size_t n = strlen(word);

	if (sc->len - sc->pos < n || memcmp(sc->s + sc->pos, word, n) != 0)
		return scan_fail(sc, "unexpected character");
	sc->pos += n;
	return 0;
}

/* Checks the grammar of RFC 8259 without recursion; stack holds '[' or '{' per level. */
static int scan_text(struct scan *sc, int max_depth)
{
	char stack[CJSON_DEPTH_CAP];
	int depth = 0, r;

value:
	skip_ws(sc);
	if (sc->pos >= sc->len)
		return scan_fail(sc, "expected a value");
	switch (sc->s[sc->pos]) {
	case '{':
	case '[':
		if (depth >= max_depth) {
			scan_fail(sc, "nesting too deep");
			return -EINVAL;
		}
		stack[depth++] = (char)sc->s[sc->pos++];
		skip_ws(sc);
		if (sc->pos < sc->len && sc->s[sc->pos] == (stack[depth - 1] == '{' ? '}' : ']')) {
			sc->pos++;
			depth--;
			goto after;
		}
		if (stack[depth - 1] == '{')
			goto key;
		goto value;
	case '"':
		r = scan_string(sc);
		break;
	case 't':
		r = scan_literal(sc, "true");
		break;
	case 'f':
		r = scan_literal(sc, "false");
		break;
	case 'n':
		r = scan_literal(sc, "null");
		break;
	default:
		if (sc->s[sc->pos] == '-' || (sc->s[sc->pos] >= '0' && sc->s[sc->pos] <= '9'))
			r = scan_number(sc);
		else if (sc->s[sc->pos] >= 0x80 && !utf8_seq(sc->s + sc->pos, sc->len - sc->pos))
			r = scan_fail(sc, "invalid UTF-8");
		else if (strchr(",:]}", sc->s[sc->pos]))
			r = scan_fail(sc, "expected a value");
		else
			r = scan_fail(sc, "unexpected character");
	}
	if (r < 0)
		return r;
after:
	skip_ws(sc);
	if (depth == 0) {
		if (sc->pos != sc->len)
			return scan_fail(sc, "unexpected data after the value");
		return 0;
	}
	if (sc->pos >= sc->len)
		return scan_fail(sc, "unterminated array or object");
	if (sc->s[sc->pos] == ',') {
		sc->pos++;
		if (stack[depth - 1] == '[')
			goto value;
		skip_ws(sc);
		goto key;
	}
	if (sc->s[sc->pos] == (stack[depth - 1] == '{' ? '}' : ']')) {
		sc->pos++;
		depth--;
		goto after;
	}
	return scan_fail(sc,
	                 stack[depth - 1] == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
key:
	if (sc->pos >= sc->len || sc->s[sc->pos] != '"')
		return scan_fail(sc, "expected a member name");
	r = scan_string(sc);
	if (r < 0)
		return r;
	skip_ws(sc);
	if (sc->pos >= sc->len || sc->s[sc->pos] != ':')
		return scan_fail(sc, "expected ':'");
	sc->pos++;
	goto value;
}

static int frame_pointer(const struct frame *f, struct buf *b)
{
	int r;

	if (!f || !f->up)
		return 0;
	r = frame_pointer(f->up, b);
	if (r < 0)
		return r;
	if (f->key)
		return json_pointer_append(b, f->key);
	return json_pointer_append_index(b, f->index);
}

static int PRINTF_LIKE(4, 5)
        tree_fail(const struct frame *f, char *err, size_t errlen, const char *fmt, ...)
{
	struct buf b;
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	buf_init(&b, 1024);
	if (frame_pointer(f, &b) < 0 || b.len == 0)
		errmsg_set(err, errlen, 0, "%s at the top level", what);
	else
		errmsg_set(err, errlen, 0, "%s at %s", what, b.data);
	buf_release(&b);
	return -EINVAL;
}

static int cmp_names(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;

	return strcmp(x->string, y->string);
}

/* The first duplicate member name of an object, or NULL. Sorts when it is large. */
static int find_duplicate(const cJSON *obj, const char **ret_name)
{
	const cJSON **v;
	size_t n = 0, i = 0;
	const cJSON *c;

	*ret_name = NULL;
	cJSON_ArrayForEach(c, obj) n++;
	if (n <= 16) {
		for (const cJSON *a = obj->child; a; a = a->next)
			for (const cJSON *b = a->next; b; b = b->next)
				if (strcmp(a->string, b->string) == 0) {
					*ret_name = a->string;
					return 0;
				}
		return 0;
	}
	v = malloc(n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	cJSON_ArrayForEach(c, obj) v[i++] = c;
	qsort(v, n, sizeof(*v), cmp_names);
	for (i = 1; i < n; i++)
		if (strcmp(v[i - 1]->string, v[i]->string) == 0) {
			*ret_name = v[i]->string;
			break;
		}
	free(v);
	return 0;
}

static bool utf8_valid(const char *s)
{
	size_t len = strlen(s), n;

	for (size_t i = 0; i < len; i += n) {
		n = utf8_seq((const unsigned char *)s + i, len - i);
		if (!n)
			return false;
	}
	return true;
}

/* What the grammar check cannot see: duplicate names and numbers beyond double range.
 * For trees not made by json_parse_untrusted() (full), also depth and UTF-8. */
static int check_tree(const cJSON *node, const struct frame *f, int depth, int max_depth, bool full,
                      char *err, size_t errlen)
{
	const char *dup;
	size_t i = 0;
	int r;

	if (cJSON_IsNumber(node) && !isfinite(node->valuedouble))
		return tree_fail(f, err, errlen, "number out of range");
	if (full) {
		if ((cJSON_IsObject(node) || cJSON_IsArray(node)) && depth >= max_depth)
			return tree_fail(f, err, errlen, "nesting too deep");
		if (node->string && !utf8_valid(node->string))
			return tree_fail(f, err, errlen, "invalid UTF-8 in a member name");
		if (cJSON_IsString(node) && (!node->valuestring || !utf8_valid(node->valuestring)))
			return tree_fail(f, err, errlen, "invalid UTF-8");
		if (cJSON_IsRaw(node) || cJSON_IsInvalid(node))
			return tree_fail(f, err, errlen, "not a JSON value");
		if (cJSON_IsObject(node))
			for (const cJSON *c = node->child; c; c = c->next)
				if (!c->string)
					return tree_fail(f, err, errlen, "member without a name");
	}
	if (cJSON_IsObject(node)) {
		r = find_duplicate(node, &dup);
		if (r < 0) {
			errmsg_set(err, errlen, 0, "out of memory");
			return r;
		}
		if (dup)
			return tree_fail(f, err, errlen, "duplicate member \"%.100s\"", dup);
	}
	if (!cJSON_IsObject(node) && !cJSON_IsArray(node))
		return 0;
	for (const cJSON *c = node->child; c; c = c->next, i++) {
		struct frame sub = {
		        .up = f,
		        .key = cJSON_IsObject(node) ? c->string : NULL,
		        .index = i,
		};

		r = check_tree(c, &sub, depth + 1, max_depth, full, err, errlen);
		if (r < 0)
			return r;
	}
	return 0;
}

int json_parse_untrusted(const char *text, size_t len, int max_depth, cJSON **ret_json, char *err,
                         size_t errlen)
{
	struct scan sc = {
	        .s = (const unsigned char *)text, .len = len, .err = err, .errlen = errlen};
	struct frame root = {0};
	cJSON *json = NULL;
	int r;

	if (len > JSON_MAX_TEXT) {
		errmsg_set(err, errlen, 0,
		           "document of %zu bytes is larger than the limit of %u bytes", len,
		           JSON_MAX_TEXT);
		return -EMSGSIZE;
	}
	if (max_depth < 0)
		max_depth = 0;
	if (max_depth > CJSON_DEPTH_CAP)
		max_depth = CJSON_DEPTH_CAP;
	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
		errmsg_set(err, errlen, 0, "byte order mark before JSON text");
		return -EINVAL;
	}
	r = scan_text(&sc, max_depth);
	if (r < 0)
		return r;
	json = cJSON_ParseWithLength(text, len);
	if (!json) {
		/* the text is valid JSON, so cJSON can only have run out of memory */
		errmsg_set(err, errlen, 0, "out of memory parsing JSON");
		return -ENOMEM;
	}
	r = check_tree(json, &root, 0, max_depth, false, err, errlen);
	if (r < 0)
		goto fail;
	*ret_json = json;
	return 0;
fail:
	cJSON_Delete(json);
	return r;
}

int json_check_tree(const cJSON *root, int max_depth, char *err, size_t errlen)
{
	struct frame top = {0};

	if (!root) {
		errmsg_set(err, errlen, 0, "no JSON value");
		return -EINVAL;
	}
	return check_tree(root, &top, 0, max_depth, true, err, errlen);
}

/* Compares the escaped reference token tok (n bytes) with the name s. */
static bool token_equals(const char *tok, size_t n, const char *s)
{
	size_t i = 0;

	while (i < n) {
		char c = tok[i++];

		if (c == '~') {
			if (i >= n)
				return false;
			c = tok[i++] == '0' ? '~' : '/';
		}
		if (*s++ != c)
			return false;
	}
	return *s == '\0';
}

static bool token_valid(const char *tok, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (tok[i] == '~' && (i + 1 >= n || (tok[i + 1] != '0' && tok[i + 1] != '1')))
			return false;
	return true;
}

static bool token_index(const char *tok, size_t n, size_t *ret)
{
	size_t v = 0;

	if (n == 0 || n > 9 || (n > 1 && tok[0] == '0'))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (tok[i] < '0' || tok[i] > '9')
			return false;
		v = v * 10 + (size_t)(tok[i] - '0');
	}
	*ret = v;
	return true;
}

const cJSON *json_pointer_get(const cJSON *root, const char *pointer)
{
	const cJSON *cur = root;
	const char *p = pointer;

	if (!root || !pointer)
		return NULL;
	while (*p) {
		const char *tok, *end;
		size_t n, index;
		const cJSON *c;

		if (*p != '/')
			return NULL;
		tok = p + 1;
		end = strchr(tok, '/');
		n = end ? (size_t)(end - tok) : strlen(tok);
		if (!token_valid(tok, n))
			return NULL;
		if (cJSON_IsObject(cur)) {
			for (c = cur->child; c; c = c->next)
				if (c->string && token_equals(tok, n, c->string))
					break;
		} else if (cJSON_IsArray(cur)) {
			if (!token_index(tok, n, &index))
				return NULL;
			for (c = cur->child; c && index; c = c->next)
				index--;
		} else {
			return NULL;
		}
		if (!c)
			return NULL;
		cur = c;
		p = tok + n;
	}
	return cur;
}

int json_pointer_append(struct buf *b, const char *token)
{
	size_t start = b->len;
	int r;

	r = buf_putc(b, '/');
	for (const char *s = token; r == 0 && *s; s++) {
		if (*s == '~')
			r = buf_append(b, "~0", 2);
		else if (*s == '/')
			r = buf_append(b, "~1", 2);
		else
			r = buf_putc(b, *s);
	}
	if (r < 0 && b->data) {
		/* leave the buffer as it was */
		b->len = start;
		b->data[start] = '\0';
	}
	return r;
}

int json_pointer_append_index(struct buf *b, size_t index)
{
	return buf_printf(b, "/%zu", index);
}

int json_too_many_values(const char *text, size_t len, size_t max)
{
	size_t n = 0;
	int in_string = 0;

	for (size_t i = 0; i < len; i++) {
		char c = text[i];

		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = 0;
		} else if (c == '"') {
			in_string = 1;
		} else if (c == '{' || c == '[' || c == ',') {
			if (++n > max)
				return 1;
		}
	}
	return 0;
}
