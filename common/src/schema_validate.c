/* Schema validation: walks a compiled schema over an instance. Reads the compiled schema
 * only; everything that changes lives in struct vctx on the caller's stack, so one schema
 * serves many threads. See schema.h. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/datetime.h"
#include "common/errlist.h"
#include "common/json.h"
#include "common/schema.h"
#include "schema_int.h"
#include "common/banned.h"

#define UNIQUE_QUADRATIC_MAX 16 /* up to this many items, compare every pair */
#define ENUM_SHOWN 6            /* enum values listed in a message */

/* An instance location, on the stack; made into a JSON Pointer only for a message. */
struct frame {
	const struct frame *up;
	const char *key; /* NULL: array index */
	size_t index;
	int depth;
};

struct vctx {
	const struct schema *s;
	struct errlist *errs; /* NULL: only the verdict is wanted, stop at the first failure */
	pcre2_match_data *md;
	size_t steps, max_steps;
	char limit_msg[256]; /* why validation stopped, when it did */
	char limit_ptr[ERRLIST_POINTER_MAX + 1];
};

/* Records a failure, or keeps going: r < 0 ends validation, r > 0 marks it invalid and,
 * when no one wants the messages, ends it too. Needs `int bad` and `struct vctx *c`. */
#define STEP(expr)                                                                                 \
	do {                                                                                       \
		int step_r = (expr);                                                               \
		if (step_r < 0)                                                                    \
			return step_r;                                                             \
		if (step_r > 0) {                                                                  \
			if (!c->errs)                                                              \
				return 1;                                                          \
			bad = 1;                                                                   \
		}                                                                                  \
	} while (0)

static int validate(struct vctx *c, const struct schema_node *n, const cJSON *inst,
                    const struct frame *at, int depth, unsigned char *ev);

static int frame_pointer(const struct frame *f, struct buf *b)
{
	int r;

	if (!f || !f->up)
		return 0;
	r = frame_pointer(f->up, b);
	if (r < 0)
		return r;
	return f->key ? json_pointer_append(b, f->key) : json_pointer_append_index(b, f->index);
}

/* The pointer text of f into out; cut when it does not fit. */
static void pointer_text(const struct frame *f, char *out, size_t outlen)
{
	struct buf b;

	buf_init(&b, 8192);
	if (frame_pointer(f, &b) < 0 && b.len == 0)
		snprintf(out, outlen, "/...");
	else
		snprintf(out, outlen, "%s", b.data ? b.data : "");
	buf_release(&b);
}

/* Adds an error at `at` when errors are collected. Returns 1 (invalid) or -ENOMEM. */
static int PRINTF_LIKE(4, 5)
        report(struct vctx *c, const struct frame *at, const char *keyword, const char *fmt, ...)
{
	char ptr[ERRLIST_POINTER_MAX + 1];
	char msg[ERRLIST_MESSAGE_MAX];
	va_list ap;
	int r;

	if (!c->errs)
		return 1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pointer_text(at, ptr, sizeof(ptr));
	r = errlist_add(c->errs, ERRLIST_ERROR, ptr, keyword, "%s", msg);
	return r < 0 ? r : 1;
}

/* Validation cannot finish: remembers why (the first reason) and returns code. */
static int PRINTF_LIKE(4, 5)
        limit(struct vctx *c, const struct frame *at, int code, const char *fmt, ...)
{
	va_list ap;

	if (c->limit_msg[0])
		return code;
	va_start(ap, fmt);
	vsnprintf(c->limit_msg, sizeof(c->limit_msg), fmt, ap);
	va_end(ap);
	pointer_text(at, c->limit_ptr, sizeof(c->limit_ptr));
	return code;
}

/* Trees made by hand may hold NULL strings; json_parse_untrusted() never makes them. */
static const char *text_of(const cJSON *v)
{
	return v->valuestring ? v->valuestring : "";
}

static const char *name_of(const cJSON *member)
{
	return member->string ? member->string : "";
}

static void format_number(double v, char *out, size_t outlen)
{
	if (floor(v) == v && fabs(v) < 1e15) {
		snprintf(out, outlen, "%.0f", v);
		return;
	}
	snprintf(out, outlen, "%.15g", v);
	if (strtod(out, NULL) != v)
		snprintf(out, outlen, "%.17g", v);
}

/* A short description of a value for messages: 5, "text", true, an object. */
static void describe(const cJSON *v, char *out, size_t outlen)
{
	size_t o = 0, chars = 0;

	if (cJSON_IsNumber(v)) {
		format_number(v->valuedouble, out, outlen);
		return;
	}
	if (!cJSON_IsString(v)) {
		snprintf(out, outlen, "%s",
		         cJSON_IsNull(v)     ? "null"
		         : cJSON_IsTrue(v)   ? "true"
		         : cJSON_IsFalse(v)  ? "false"
		         : cJSON_IsArray(v)  ? "an array"
		         : cJSON_IsObject(v) ? "an object"
		                             : "a value");
		return;
	}
	/* a quoted string, cut after 60 characters, control characters as spaces */
	if (outlen < 16) {
		snprintf(out, outlen, "a string");
		return;
	}
	out[o++] = '"';
	for (const unsigned char *s = (const unsigned char *)text_of(v); *s; s++) {
		/* room for one more character, "...", the quote and the NUL */
		if (((*s & 0xC0) != 0x80 && ++chars > 60) || o + 9 > outlen) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		out[o++] = *s < 0x20 ? ' ' : (char)*s;
	}
	out[o++] = '"';
	out[o] = '\0';
}

static size_t code_points(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

static size_t child_count(const cJSON *v)
{
	size_t n = 0;

	for (const cJSON *c = v->child; c; c = c->next)
		n++;
	return n;
}

static bool is_integer(const cJSON *v)
{
	return cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
	       floor(v->valuedouble) == v->valuedouble;
}

/* JSON equality: numbers by value (1 == 1.0), members in any order. 1, 0 or -ELOOP. */
static int json_eq(const cJSON *a, const cJSON *b, int depth)
{
	const cJSON *x, *y;
	int r;

	if (depth > SCHEMA_MAX_DEPTH)
		return -ELOOP;
	if ((a->type & 0xFF) != (b->type & 0xFF))
		return 0;
	if (cJSON_IsNumber(a))
		return a->valuedouble == b->valuedouble;
	if (cJSON_IsString(a) || cJSON_IsRaw(a))
		return strcmp(text_of(a), text_of(b)) == 0;
	if (cJSON_IsArray(a)) {
		for (x = a->child, y = b->child; x && y; x = x->next, y = y->next) {
			r = json_eq(x, y, depth + 1);
			if (r <= 0)
				return r;
		}
		return !x && !y;
	}
	if (cJSON_IsObject(a)) {
		if (child_count(a) != child_count(b))
			return 0;
		for (x = a->child; x; x = x->next) {
			y = cJSON_GetObjectItemCaseSensitive(b, x->string);
			if (!y)
				return 0;
			r = json_eq(x, y, depth + 1);
			if (r <= 0)
				return r;
		}
		return 1;
	}
	return 1; /* null, true, false */
}

static uint64_t mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

static uint64_t hash_string(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

/* A hash that agrees with json_eq(): equal values hash alike. */
static int json_hash(const cJSON *v, int depth, uint64_t *ret)
{
	uint64_t h = (uint64_t)(v->type & 0xFF) * 0x9E3779B97F4A7C15ull, sub;
	int r;

	if (depth > SCHEMA_MAX_DEPTH)
		return -ELOOP;
	if (cJSON_IsNumber(v)) {
		double d = v->valuedouble == 0 ? 0.0 : v->valuedouble; /* -0 == 0 */

		memcpy(&sub, &d, sizeof(sub));
		h ^= sub;
	} else if (cJSON_IsString(v) || cJSON_IsRaw(v)) {
		h ^= hash_string(text_of(v));
	} else if (cJSON_IsArray(v)) {
		for (const cJSON *x = v->child; x; x = x->next) {
			r = json_hash(x, depth + 1, &sub);
			if (r < 0)
				return r;
			h = mix(h * 31 + sub);
		}
	} else if (cJSON_IsObject(v)) {
		for (const cJSON *x = v->child; x; x = x->next) {
			r = json_hash(x, depth + 1, &sub);
			if (r < 0)
				return r;
			h += mix(hash_string(x->string) ^ (sub * 0x9E3779B97F4A7C15ull));
		}
	}
	*ret = mix(h);
	return 0;
}

struct hashed {
	uint64_t hash;
	size_t index;
	const cJSON *item;
};

static int cmp_hashed(const void *a, const void *b)
{
	const struct hashed *x = a, *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* Finds two equal items; *ret_i < *ret_j, both SIZE_MAX when all differ. */
static int find_equal_items(const cJSON *arr, size_t count, size_t *ret_i, size_t *ret_j)
{
	struct hashed *h;
	size_t i = 0;
	int r = 0;

	*ret_i = *ret_j = SIZE_MAX;
	if (count <= UNIQUE_QUADRATIC_MAX) {
		size_t a = 0;

		for (const cJSON *x = arr->child; x; x = x->next, a++) {
			size_t b = a + 1;

			for (const cJSON *y = x->next; y; y = y->next, b++) {
				r = json_eq(x, y, 0);
				if (r < 0)
					return r;
				if (r) {
					*ret_i = a;
					*ret_j = b;
					return 0;
				}
			}
		}
		return 0;
	}
	h = malloc(count * sizeof(*h));
	if (!h)
		return -ENOMEM;
	for (const cJSON *x = arr->child; x; x = x->next, i++) {
		r = json_hash(x, 0, &h[i].hash);
		if (r < 0)
			goto out;
		h[i].index = i;
		h[i].item = x;
	}
	qsort(h, count, sizeof(*h), cmp_hashed);
	for (i = 0; i < count; i++) {
		for (size_t j = i + 1; j < count && h[j].hash == h[i].hash; j++) {
			r = json_eq(h[i].item, h[j].item, 0);
			if (r < 0)
				goto out;
			if (r && (h[i].index < *ret_i ||
			          (h[i].index == *ret_i && h[j].index < *ret_j))) {
				*ret_i = h[i].index;
				*ret_j = h[j].index;
			}
		}
	}
	r = 0;
out:
	free(h);
	return r;
}

/* 1 when s matches, 0 when not, or a negative errno. */
static int regex_match(struct vctx *c, const struct schema_regex *re, const char *s,
                       const struct frame *at)
{
	int rc = pcre2_match(re->code, (PCRE2_SPTR)s, strlen(s), 0, 0, c->md, c->s->match_ctx);

	if (rc >= 0)
		return 1;
	if (rc == PCRE2_ERROR_NOMATCH)
		return 0;
	if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21)
		return 0; /* not UTF-8: matches no pattern */
	if (rc == PCRE2_ERROR_NOMEMORY)
		return -ENOMEM;
	if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
	    rc == PCRE2_ERROR_HEAPLIMIT)
		return limit(c, at, -E2BIG, "matching the pattern \"%.100s\" took too long",
		             re->source);
	return limit(c, at, -EIO, "matching the pattern \"%.100s\" failed (PCRE2 error %d)",
	             re->source, rc);
}

static const char *type_name(unsigned bit)
{
	switch (bit) {
	case SCHEMA_T_NULL:
		return "null";
	case SCHEMA_T_BOOLEAN:
		return "boolean";
	case SCHEMA_T_OBJECT:
		return "object";
	case SCHEMA_T_ARRAY:
		return "array";
	case SCHEMA_T_NUMBER:
		return "number";
	case SCHEMA_T_STRING:
		return "string";
	default:
		return "integer";
	}
}

static unsigned type_bits(const cJSON *v)
{
	if (cJSON_IsNull(v))
		return SCHEMA_T_NULL;
	if (cJSON_IsBool(v))
		return SCHEMA_T_BOOLEAN;
	if (cJSON_IsObject(v))
		return SCHEMA_T_OBJECT;
	if (cJSON_IsArray(v))
		return SCHEMA_T_ARRAY;
	if (cJSON_IsString(v))
		return SCHEMA_T_STRING;
	if (cJSON_IsNumber(v))
		return SCHEMA_T_NUMBER | (is_integer(v) ? SCHEMA_T_INTEGER : 0);
	return 0;
}

static int check_type(struct vctx *c, const struct schema_node *n, const cJSON *inst,
                      const struct frame *at)
{
	char names[128] = "", got[128];
	size_t o = 0;

	if (!n->types || (type_bits(inst) & n->types))
		return 0;
	if (!c->errs)
		return 1;
	for (unsigned bit = 1; bit <= SCHEMA_T_INTEGER; bit <<= 1) {
		if (!(n->types & bit))
			continue;
		o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%s", o ? " or " : "",
		                      type_name(bit));
		if (o >= sizeof(names))
			break;
	}
	describe(inst, got, sizeof(got));
	return report(c, at, "type", "must be %s, got %s", names, got);
}

static int check_enum(struct vctx *c, const struct schema_node *n, const cJSON *inst,
                      const struct frame *at)
{
	char list[ERRLIST_MESSAGE_MAX / 2] = "", one[96], got[96];
	size_t o = 0, shown = 0;
	int r;

	for (const cJSON *v = n->enum_values->child; v; v = v->next) {
		r = json_eq(inst, v, 0);
		if (r != 0)
			return r < 0 ? limit(c, at, r, "value nested too deeply to compare") : 0;
	}
	if (!c->errs)
		return 1;
	for (const cJSON *v = n->enum_values->child; v && o < sizeof(list); v = v->next) {
		if (shown++ == ENUM_SHOWN) {
			snprintf(list + o, sizeof(list) - o, ", ...");
			break;
		}
		describe(v, one, sizeof(one));
		o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", o ? ", " : "", one);
	}
	describe(inst, got, sizeof(got));
	return report(c, at, "enum", "must be one of %s, got %s", list, got);
}

static int check_const(struct vctx *c, const struct schema_node *n, const cJSON *inst,
                       const struct frame *at)
{
	char want[96], got[96];
	int r = json_eq(inst, n->const_value, 0);

	if (r < 0)
		return limit(c, at, r, "value nested too deeply to compare");
	if (r)
		return 0;
	if (!c->errs)
		return 1;
	describe(n->const_value, want, sizeof(want));
	describe(inst, got, sizeof(got));
	return report(c, at, "const", "must be %s, got %s", want, got);
}

/* multipleOf on doubles: exact for integers, otherwise the quotient must be within
 * rounding error of an integer (0.0075 is a multiple of 0.0001). An infinite quotient
 * (1e308 / 0.123456789) is not a multiple. */
static bool is_multiple(double v, double m)
{
	double q;

	if (floor(v) == v && floor(m) == m && fabs(v) < 9007199254740992.0 &&
	    fabs(m) < 9007199254740992.0)
		return fmod(v, m) == 0;
	q = v / m;
	if (!isfinite(q))
		return false;
	return fabs(q - nearbyint(q)) <= 1e-9 * fmax(1.0, fabs(q));
}

static int check_number(struct vctx *c, const struct schema_node *n, const cJSON *inst,
                        const struct frame *at)
{
	double v = inst->valuedouble;
	char got[48], lim[48];
	int bad = 0;

	format_number(v, got, sizeof(got));
	if (n->has_multiple_of && !is_multiple(v, n->multiple_of)) {
		format_number(n->multiple_of, lim, sizeof(lim));
		STEP(report(c, at, "multipleOf", "must be a multiple of %s, got %s", lim, got));
	}
	if (n->has_maximum && !(v <= n->maximum)) {
		format_number(n->maximum, lim, sizeof(lim));
		STEP(report(c, at, "maximum", "must be <= %s, got %s", lim, got));
	}
	if (n->has_exclusive_maximum && !(v < n->exclusive_maximum)) {
		format_number(n->exclusive_maximum, lim, sizeof(lim));
		STEP(report(c, at, "exclusiveMaximum", "must be < %s, got %s", lim, got));
	}
	if (n->has_minimum && !(v >= n->minimum)) {
		format_number(n->minimum, lim, sizeof(lim));
		STEP(report(c, at, "minimum", "must be >= %s, got %s", lim, got));
	}
	if (n->has_exclusive_minimum && !(v > n->exclusive_minimum)) {
		format_number(n->exclusive_minimum, lim, sizeof(lim));
		STEP(report(c, at, "exclusiveMinimum", "must be > %s, got %s", lim, got));
	}
	return bad;
}

static int check_string(struct vctx *c, const struct schema_node *n, const cJSON *inst,
                        const struct frame *at)
{
	const char *s = text_of(inst);
	char got[96];
	int bad = 0, r;

	if (n->max_length != SIZE_MAX || n->min_length) {
		size_t len = code_points(s);

		if (len > n->max_length)
			STEP(report(c, at, "maxLength",
			            "must be at most %zu character%s long, got %zu", n->max_length,
			            n->max_length == 1 ? "" : "s", len));
		if (len < n->min_length)
			STEP(report(c, at, "minLength",
			            "must be at least %zu character%s long, got %zu", n->min_length,
			            n->min_length == 1 ? "" : "s", len));
	}
	if (n->pattern.code) {
		r = regex_match(c, &n->pattern, s, at);
		if (r < 0)
			return r;
		if (r == 0) {
			describe(inst, got, sizeof(got));
			STEP(report(c, at, "pattern", "must match the pattern \"%.200s\", got %s",
			            n->pattern.source, got));
		}
	}
	if (n->format == SCHEMA_FORMAT_DATE) {
		struct date d;

		if (datetime_parse_date(s, strlen(s), &d) < 0) {
			describe(inst, got, sizeof(got));
			STEP(report(c, at, "format", "must be a date (YYYY-MM-DD), got %s", got));
		}
	} else if (n->format == SCHEMA_FORMAT_DATE_TIME) {
		int64_t ms;

		if (datetime_parse_rfc3339(s, strlen(s), &ms, NULL) < 0) {
			describe(inst, got, sizeof(got));
			STEP(report(c, at, "format",
			            "must be an RFC 3339 date-time such as "
			            "\"2024-05-03T09:12:00+08:00\", got %s",
			            got));
		}
	}
	return bad;
}

static int child_frame(struct vctx *c, const struct frame *at, const char *key, size_t index,
                       struct frame *ret)
{
	ret->up = at;
	ret->key = key;
	ret->index = index;
	ret->depth = at->depth + 1;
	if (ret->depth > SCHEMA_MAX_DEPTH)
		return limit(c, ret, -ELOOP, "document nested deeper than %d levels",
		             SCHEMA_MAX_DEPTH);
	return 0;
}

static int check_contains(struct vctx *c, const struct schema_node *n, const cJSON *inst,
                          const struct frame *at, int depth, unsigned char *ev)
{
	struct errlist *saved = c->errs;
	size_t matched = 0, i = 0;
	int r = 0;

	c->errs = NULL;
	for (const cJSON *item = inst->child; item; item = item->next, i++) {
		struct frame f;

		r = child_frame(c, at, NULL, i, &f);
		if (r < 0)
			break;
		r = validate(c, n->contains, item, &f, depth + 1, NULL);
		if (r < 0)
			break;
		if (r == 0) {
			matched++;
			if (ev)
				ev[i] = 1;
			else if (matched >= n->min_contains && n->max_contains == SIZE_MAX)
				break;
		}
	}
	c->errs = saved;
	if (r < 0)
		return r;
	if (matched < n->min_contains)
		return report(c, at, "contains",
		              "must contain at least %zu item%s matching the \"contains\" schema, "
		              "found %zu",
		              n->min_contains, n->min_contains == 1 ? "" : "s", matched);
	if (matched > n->max_contains)
		return report(c, at, "maxContains",
		              "must contain at most %zu item%s matching the \"contains\" schema, "
		              "found %zu",
		              n->max_contains, n->max_contains == 1 ? "" : "s", matched);
	return 0;
}

static int check_array(struct vctx *c, const struct schema_node *n, const cJSON *inst,
                       const struct frame *at, int depth, unsigned char *ev)
{
	size_t count = child_count(inst), i = 0;
	int bad = 0, r;

	if (count > n->max_items)
		STEP(report(c, at, "maxItems", "must have at most %zu item%s, got %zu",
		            n->max_items, n->max_items == 1 ? "" : "s", count));
	if (count < n->min_items)
		STEP(report(c, at, "minItems", "must have at least %zu item%s, got %zu",
		            n->min_items, n->min_items == 1 ? "" : "s", count));
	if (n->unique_items && count > 1) {
		size_t a, b;

		r = find_equal_items(inst, count, &a, &b);
		if (r < 0)
			return r == -ELOOP ? limit(c, at, r, "value nested too deeply to compare")
			                   : r;
		if (a != SIZE_MAX)
			STEP(report(c, at, "uniqueItems",
			            "must not contain duplicates, but items %zu and %zu are equal",
			            a, b));
	}
	for (const cJSON *item = inst->child; item; item = item->next, i++) {
		const struct schema_node *sub =
		        i < n->prefix_items.n ? n->prefix_items.v[i] : n->items;
		struct frame f;

		if (!sub)
			break;
		if (sub->is_bool && !sub->bool_value && sub == n->items) {
			STEP(report(c, at, "items", "must have at most %zu item%s, got %zu",
			            n->prefix_items.n, n->prefix_items.n == 1 ? "" : "s", count));
			break;
		}
		STEP(child_frame(c, at, NULL, i, &f));
		STEP(validate(c, sub, item, &f, depth + 1, NULL));
		if (ev)
			ev[i] = 1;
	}
	if (n->contains)
		STEP(check_contains(c, n, inst, at, depth, ev));
	return bad;
}

static const struct schema_node *find_property(const struct schema_node *n, const char *name)
{
	size_t lo = 0, hi = n->n_properties;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int d = strcmp(name, n->properties[mid].name);

		if (d == 0)
			return n->properties[mid].node;
		if (d < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static int check_property_names(struct vctx *c, const struct schema_node *n, const cJSON *inst,
                                const struct frame *at, int depth)
{
	struct errlist *saved = c->errs, sub;
	int bad = 0, r = 0;

	errlist_init(&sub);
	for (const cJSON *m = inst->child; m; m = m->next) {
		/* the name as a JSON string; validate() never writes to it */
		cJSON name = {.type = cJSON_String, .valuestring = (char *)name_of(m)};

		errlist_release(&sub);
		c->errs = saved ? &sub : NULL;
		r = validate(c, n->property_names, &name, at, depth + 1, NULL);
		c->errs = saved;
		if (r < 0)
			break;
		if (r == 0)
			continue;
		bad = 1;
		if (!saved)
			break;
		r = report(c, at, "propertyNames", "property name \"%.200s\" is invalid: %s",
		           name_of(m), sub.count ? sub.entries[0].message : "rejected");
		if (r < 0)
			break;
	}
	errlist_release(&sub);
	return r < 0 ? r : bad;
}

static int check_object(struct vctx *c, const struct schema_node *n, const cJSON *inst,
                        const struct frame *at, int depth, unsigned char *ev)
{
	size_t count = child_count(inst), i = 0;
	int bad = 0, r;

	if (count > n->max_properties)
		STEP(report(c, at, "maxProperties", "must have at most %zu propert%s, got %zu",
		            n->max_properties, n->max_properties == 1 ? "y" : "ies", count));
	if (count < n->min_properties)
		STEP(report(c, at, "minProperties", "must have at least %zu propert%s, got %zu",
		            n->min_properties, n->min_properties == 1 ? "y" : "ies", count));
	if (n->required)
		for (const cJSON *name = n->required->child; name; name = name->next)
			if (!cJSON_GetObjectItemCaseSensitive(inst, name->valuestring))
				STEP(report(c, at, "required", "missing required property \"%s\"",
				            name->valuestring));
	for (size_t d = 0; d < n->n_dependent_required; d++) {
		const struct schema_dep_required *dep = &n->dependent_required[d];

		if (!cJSON_GetObjectItemCaseSensitive(inst, dep->name))
			continue;
		for (const cJSON *name = dep->required->child; name; name = name->next)
			if (!cJSON_GetObjectItemCaseSensitive(inst, name->valuestring))
				STEP(report(c, at, "dependentRequired",
				            "property \"%s\" requires property \"%s\"", dep->name,
				            name->valuestring));
	}
	for (const cJSON *m = inst->child; m; m = m->next, i++) {
		const struct schema_node *sub = find_property(n, name_of(m));
		bool evaluated = false;
		struct frame f;

		if (!sub && !n->n_pattern_properties && !n->additional_properties)
			continue;
		STEP(child_frame(c, at, name_of(m), 0, &f));
		if (sub) {
			evaluated = true;
			STEP(validate(c, sub, m, &f, depth + 1, NULL));
		}
		for (size_t p = 0; p < n->n_pattern_properties; p++) {
			const struct schema_pattern_prop *pp = &n->pattern_properties[p];

			r = regex_match(c, &pp->re, name_of(m), &f);
			if (r < 0)
				return r;
			if (r == 0)
				continue;
			evaluated = true;
			STEP(validate(c, pp->node, m, &f, depth + 1, NULL));
		}
		if (!evaluated && n->additional_properties) {
			const struct schema_node *add = n->additional_properties;

			evaluated = true;
			if (add->is_bool && !add->bool_value)
				STEP(report(c, at, "additionalProperties",
				            "unexpected property \"%s\"", name_of(m)));
			else
				STEP(validate(c, add, m, &f, depth + 1, NULL));
		}
		if (evaluated && ev)
			ev[i] = 1;
	}
	if (n->property_names)
		STEP(check_property_names(c, n, inst, at, depth));
	return bad;
}

/* Runs one branch of anyOf or oneOf for its verdict only. With annotations wanted (ev),
 * the branch gets its own map, merged into ev when it passes. */
static int run_branch(struct vctx *c, const struct schema_node *branch, const cJSON *inst,
                      const struct frame *at, int depth, unsigned char *ev, size_t count)
{
	struct errlist *saved = c->errs;
	unsigned char *mine = NULL;
	int r;

	if (ev) {
		mine = calloc(count + 1, 1);
		if (!mine)
			return -ENOMEM;
	}
	c->errs = NULL;
	r = validate(c, branch, inst, at, depth + 1, mine);
	c->errs = saved;
	if (r == 0 && ev)
		for (size_t i = 0; i < count; i++)
			ev[i] |= mine[i];
	free(mine);
	return r;
}

/* When no branch of an anyOf or oneOf passed: "anyOf/1: /a/b: must be integer, got 5"
 * for the closest branch, one that accepts the instance's type, then the one with the
 * fewest errors. The pointer is left out when it is where the anyOf is. Runs the
 * branches again, collecting their errors: failure is the rare case. */
static int find_closest(struct vctx *c, const struct schema_list *branches, const char *keyword,
                        const cJSON *inst, const struct frame *at, int depth, char *out,
                        size_t outlen)
{
	struct errlist *saved = c->errs, sub;
	char here[ERRLIST_POINTER_MAX + 1];
	size_t best = SIZE_MAX;
	int r = 0;

	out[0] = '\0';
	if (!saved)
		return 0;
	pointer_text(at, here, sizeof(here));
	errlist_init(&sub);
	for (size_t i = 0; i < branches->n; i++) {
		const struct errlist_entry *e;
		size_t score;

		errlist_release(&sub);
		c->errs = &sub;
		r = validate(c, branches->v[i], inst, at, depth + 1, NULL);
		c->errs = saved;
		if (r < 0)
			break;
		if (!sub.count)
			continue;
		score = sub.errors;
		for (size_t j = 0; j < sub.count; j++)
			if (strcmp(sub.entries[j].keyword, "type") == 0 &&
			    strcmp(sub.entries[j].pointer, here) == 0) {
				score += SIZE_MAX / 2;
				break;
			}
		if (score >= best)
			continue;
		best = score;
		e = &sub.entries[0];
		if (strcmp(e->pointer, here) != 0)
			snprintf(out, outlen, " (closest, %s/%zu: %s: %s)", keyword, i, e->pointer,
			         e->message);
		else
			snprintf(out, outlen, " (closest, %s/%zu: %s)", keyword, i, e->message);
	}
	errlist_release(&sub);
	return r < 0 ? r : 0;
}

static int check_any_of(struct vctx *c, const struct schema_node *n, const cJSON *inst,
                        const struct frame *at, int depth, unsigned char *ev, size_t count)
{
	char closest[ERRLIST_MESSAGE_MAX / 2];
	bool matched = false;
	int r;

	for (size_t i = 0; i < n->any_of.n; i++) {
		r = run_branch(c, n->any_of.v[i], inst, at, depth, ev, count);
		if (r < 0)
			return r;
		if (r == 0) {
			matched = true;
			if (!ev)
				break; /* no annotations wanted from the other branches */
		}
	}
	if (matched)
		return 0;
	r = find_closest(c, &n->any_of, "anyOf", inst, at, depth, closest, sizeof(closest));
	if (r < 0)
		return r;
	return report(c, at, "anyOf", "must match at least one of the %zu schemas in anyOf%s",
	              n->any_of.n, closest);
}

static int check_one_of(struct vctx *c, const struct schema_node *n, const cJSON *inst,
                        const struct frame *at, int depth, unsigned char *ev, size_t count)
{
	char closest[ERRLIST_MESSAGE_MAX / 2];
	size_t first = SIZE_MAX, second = SIZE_MAX;
	unsigned char *mine = NULL;
	int r = 0;

	if (ev) {
		mine = calloc(count + 1, 1);
		if (!mine)
			return -ENOMEM;
	}
	for (size_t i = 0; i < n->one_of.n && second == SIZE_MAX; i++) {
		r = run_branch(c, n->one_of.v[i], inst, at, depth, mine, count);
		if (r < 0)
			goto out;
		if (r == 0 && first == SIZE_MAX)
			first = i;
		else if (r == 0)
			second = i;
	}
	r = 0;
	if (first == SIZE_MAX) {
		r = find_closest(c, &n->one_of, "oneOf", inst, at, depth, closest, sizeof(closest));
		if (r == 0)
			r = report(c, at, "oneOf",
			           "must match exactly one of the %zu schemas in oneOf, matches "
			           "none%s",
			           n->one_of.n, closest);
	} else if (second != SIZE_MAX) {
		r = report(c, at, "oneOf",
		           "must match exactly one of the %zu schemas in oneOf, matches oneOf/%zu "
		           "and oneOf/%zu",
		           n->one_of.n, first, second);
	} else if (ev) {
		for (size_t i = 0; i < count; i++)
			ev[i] |= mine[i];
	}
out:
	free(mine);
	return r;
}

/* Applies a subschema to a copy of ev; the copy's marks count only if it passes. */
static int check_quiet(struct vctx *c, const struct schema_node *sub, const cJSON *inst,
                       const struct frame *at, int depth, unsigned char *ev, size_t count)
{
	struct errlist *saved = c->errs;
	unsigned char *mine = NULL;
	int r;

	if (ev) {
		mine = calloc(count + 1, 1);
		if (!mine)
			return -ENOMEM;
	}
	c->errs = NULL;
	r = validate(c, sub, inst, at, depth + 1, mine);
	c->errs = saved;
	if (r == 0 && ev)
		for (size_t i = 0; i < count; i++)
			ev[i] |= mine[i];
	free(mine);
	return r;
}

/* Keywords that apply subschemas to this same instance. */
static int check_in_place(struct vctx *c, const struct schema_node *n, const cJSON *inst,
                          const struct frame *at, int depth, unsigned char *ev, size_t count)
{
	int bad = 0, r;

	if (n->ref)
		STEP(validate(c, n->ref, inst, at, depth + 1, ev));
	for (size_t i = 0; i < n->all_of.n; i++)
		STEP(validate(c, n->all_of.v[i], inst, at, depth + 1, ev));
	if (n->any_of.n)
		STEP(check_any_of(c, n, inst, at, depth, ev, count));
	if (n->one_of.n)
		STEP(check_one_of(c, n, inst, at, depth, ev, count));
	if (n->not_schema) {
		r = check_quiet(c, n->not_schema, inst, at, depth, NULL, 0);
		if (r < 0)
			return r;
		if (r == 0)
			STEP(report(c, at, "not", "must not match the schema in \"not\""));
	}
	if (n->if_schema) {
		r = check_quiet(c, n->if_schema, inst, at, depth, ev, count);
		if (r < 0)
			return r;
		if (r == 0 && n->then_schema)
			STEP(validate(c, n->then_schema, inst, at, depth + 1, ev));
		if (r > 0 && n->else_schema)
			STEP(validate(c, n->else_schema, inst, at, depth + 1, ev));
	}
	if (n->n_dependent_schemas && cJSON_IsObject(inst))
		for (size_t i = 0; i < n->n_dependent_schemas; i++)
			if (cJSON_GetObjectItemCaseSensitive(inst, n->dependent_schemas[i].name))
				STEP(validate(c, n->dependent_schemas[i].node, inst, at, depth + 1,
				              ev));
	return bad;
}

static int check_unevaluated(struct vctx *c, const struct schema_node *n, const cJSON *inst,
                             const struct frame *at, int depth, unsigned char *ev)
{
	const struct schema_node *sub;
	const char *keyword;
	size_t i = 0;
	int bad = 0;

	if (cJSON_IsObject(inst) && n->unevaluated_properties) {
		sub = n->unevaluated_properties;
		keyword = "unevaluatedProperties";
	} else if (cJSON_IsArray(inst) && n->unevaluated_items) {
		sub = n->unevaluated_items;
		keyword = "unevaluatedItems";
	} else {
		return 0;
	}
	for (const cJSON *m = inst->child; m; m = m->next, i++) {
		struct frame f;

		if (ev[i])
			continue;
		ev[i] = 1;
		STEP(child_frame(c, at, cJSON_IsObject(inst) ? name_of(m) : NULL, i, &f));
		if (sub->is_bool && !sub->bool_value) {
			if (cJSON_IsObject(inst))
				STEP(report(c, at, keyword, "unexpected property \"%s\"",
				            name_of(m)));
			else
				STEP(report(c, at, keyword, "unexpected item %zu", i));
			continue;
		}
		STEP(validate(c, sub, m, &f, depth + 1, NULL));
	}
	return bad;
}

static int check_node(struct vctx *c, const struct schema_node *n, const cJSON *inst,
                      const struct frame *at, int depth, unsigned char *ev, size_t count)
{
	int bad = 0;

	STEP(check_type(c, n, inst, at));
	if (n->enum_values)
		STEP(check_enum(c, n, inst, at));
	if (n->const_value)
		STEP(check_const(c, n, inst, at));
	if (cJSON_IsNumber(inst))
		STEP(check_number(c, n, inst, at));
	else if (cJSON_IsString(inst))
		STEP(check_string(c, n, inst, at));
	else if (cJSON_IsArray(inst))
		STEP(check_array(c, n, inst, at, depth, ev));
	else if (cJSON_IsObject(inst))
		STEP(check_object(c, n, inst, at, depth, ev));
	STEP(check_in_place(c, n, inst, at, depth, ev, count));
	if (n->wants_annotations)
		STEP(check_unevaluated(c, n, inst, at, depth, ev));
	return bad;
}

/* 0 valid, 1 invalid (errors reported when c->errs), or a negative errno. ev, when not
 * NULL, has one byte per member or item of inst; the keywords set those they evaluated
 * (the annotations unevaluatedProperties and unevaluatedItems look at). */
static int validate(struct vctx *c, const struct schema_node *n, const cJSON *inst,
                    const struct frame *at, int depth, unsigned char *ev)
{
	unsigned char *mine = ev;
	size_t count = 0;
	int r;

	if (++c->steps > c->max_steps)
		return limit(c, at, -E2BIG, "validation needs more than %zu steps", c->max_steps);
	if (depth > SCHEMA_MAX_EVAL_DEPTH)
		return limit(c, at, -ELOOP, "schemas nested deeper than %d levels (a $ref loop?)",
		             SCHEMA_MAX_EVAL_DEPTH);
	if (n->is_bool)
		return n->bool_value ? 0 : report(c, at, "false", "no value is allowed here");
	if (cJSON_IsObject(inst) || cJSON_IsArray(inst))
		count = child_count(inst);
	if (n->wants_annotations) {
		/* unevaluated* see only this subschema's annotations, not the caller's */
		mine = calloc(count + 1, 1);
		if (!mine)
			return -ENOMEM;
	}
	r = check_node(c, n, inst, at, depth, mine, count);
	if (mine != ev) {
		if (r == 0 && ev)
			for (size_t i = 0; i < count; i++)
				ev[i] |= mine[i];
		free(mine);
	}
	return r;
}

/* Values in v, as far down as validation may go. */
static size_t count_values(const cJSON *v, int depth)
{
	size_t n = 1;

	if (depth < SCHEMA_MAX_DEPTH)
		for (const cJSON *c = v->child; c; c = c->next)
			n += count_values(c, depth + 1);
	return n;
}

int schema_validate(const struct schema *schema, const cJSON *instance, struct errlist *errors)
{
	struct vctx c = {.s = schema, .errs = errors};
	struct frame root = {0};
	size_t before = errors ? errors->errors : 0, values;
	int r;

	if (!instance)
		return -EINVAL;
	values = count_values(instance, 0);
	c.max_steps = SCHEMA_STEPS_BASE + (values > SIZE_MAX / SCHEMA_STEPS_PER_VALUE / 2
	                                           ? SIZE_MAX / 2
	                                           : values * SCHEMA_STEPS_PER_VALUE);
	if (schema->has_regex) {
		c.md = pcre2_match_data_create(1, NULL);
		if (!c.md)
			return -ENOMEM;
	}
	r = validate(&c, schema->top, instance, &root, 0, NULL);
	pcre2_match_data_free(c.md);
	if (r < 0) {
		if (errors && c.limit_msg[0] &&
		    errlist_add(errors, ERRLIST_ERROR, c.limit_ptr, "limit", "%s", c.limit_msg) < 0)
			return -ENOMEM;
		return r;
	}
	if (r == 0)
		return 0;
	if (!errors || errors->errors <= before)
		return 1;
	return errors->errors - before > INT_MAX ? INT_MAX : (int)(errors->errors - before);
}
