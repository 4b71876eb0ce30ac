/* Schema compilation: from the schema document to linked schema_node structs, with
 * every $ref resolved and every keyword's value checked. See schema.h. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/schema.h"
#include "schema_int.h"
#include "common/banned.h"

#define SCHEMA_PATH_MAX 1024 /* longest schema location put in a message */

/* A place in the schema document, on the stack; made into "#/properties/a" on error. */
struct spath {
	const struct spath *up;
	const char *key; /* NULL: index; otherwise a member name */
	size_t index;
	int raw; /* key is already an escaped JSON Pointer (a $ref target) */
};

struct pending_ref {
	struct schema_node *node;
	char *where; /* "#/properties/a" */
};

struct map_slot {
	const cJSON *json;
	struct schema_node *node;
};

struct compiler {
	struct schema *s;
	struct pending_ref *refs;
	size_t n_refs, alloc_refs;
	struct map_slot *map; /* open addressing, json -> node */
	size_t map_cap, map_used;
	char *err;
	size_t errlen;
};

static int path_build(const struct spath *p, struct buf *b)
{
	int r;

	if (!p)
		return buf_putc(b, '#');
	r = path_build(p->up, b);
	if (r < 0)
		return r;
	if (p->raw)
		return buf_puts(b, p->key);
	if (p->key)
		return json_pointer_append(b, p->key);
	return json_pointer_append_index(b, p->index);
}

/* Fills err with "<location>: <message>" and returns code. */
static int PRINTF_LIKE(4, 5)
        fail(struct compiler *c, const struct spath *at, int code, const char *fmt, ...)
{
	struct buf where;
	char msg[512];
	va_list ap;

	if (!c->err || !c->errlen)
		return code;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	buf_init(&where, SCHEMA_PATH_MAX);
	if (path_build(at, &where) < 0)
		snprintf(c->err, c->errlen, "%s", msg);
	else
		snprintf(c->err, c->errlen, "%s: %s", where.data, msg);
	buf_release(&where);
	return code;
}

static size_t map_hash(const cJSON *json, size_t cap)
{
	uint64_t h = (uint64_t)(uintptr_t)json * 0x9E3779B97F4A7C15ull;

	return (size_t)(h >> 17) & (cap - 1);
}

static struct schema_node *map_get(const struct compiler *c, const cJSON *json)
{
	if (!c->map_cap)
		return NULL;
	for (size_t i = map_hash(json, c->map_cap);; i = (i + 1) & (c->map_cap - 1)) {
		if (!c->map[i].json)
			return NULL;
		if (c->map[i].json == json)
			return c->map[i].node;
	}
}

static int map_put(struct compiler *c, const cJSON *json, struct schema_node *node)
{
	size_t i;

	if ((c->map_used + 1) * 2 > c->map_cap) {
		size_t cap = c->map_cap ? c->map_cap * 2 : 64;
		struct map_slot *m = calloc(cap, sizeof(*m));

		if (!m)
			return -ENOMEM;
		for (size_t j = 0; j < c->map_cap; j++) {
			if (!c->map[j].json)
				continue;
			for (i = map_hash(c->map[j].json, cap); m[i].json; i = (i + 1) & (cap - 1))
				;
			m[i] = c->map[j];
		}
		free(c->map);
		c->map = m;
		c->map_cap = cap;
	}
	for (i = map_hash(json, c->map_cap); c->map[i].json; i = (i + 1) & (c->map_cap - 1))
		;
	c->map[i].json = json;
	c->map[i].node = node;
	c->map_used++;
	return 0;
}

static int new_node(struct compiler *c, const cJSON *json, struct schema_node **ret)
{
	struct schema *s = c->s;
	struct schema_node *n;
	int r;

	if (s->n_nodes == s->alloc_nodes) {
		size_t alloc = s->alloc_nodes ? s->alloc_nodes * 2 : 32;
		struct schema_node **v = realloc(s->nodes, alloc * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->nodes = v;
		s->alloc_nodes = alloc;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->json = json;
	n->max_length = SIZE_MAX;
	n->max_items = SIZE_MAX;
	n->max_properties = SIZE_MAX;
	n->min_contains = 1;
	n->max_contains = SIZE_MAX;
	r = map_put(c, json, n);
	if (r < 0) {
		free(n);
		return r;
	}
	s->nodes[s->n_nodes++] = n;
	*ret = n;
	return 0;
}

void schema_node_free(struct schema_node *n)
{
	if (!n)
		return;
	pcre2_code_free(n->pattern.code);
	for (size_t i = 0; i < n->n_pattern_properties; i++)
		pcre2_code_free(n->pattern_properties[i].re.code);
	free(n->pattern_properties);
	free(n->prefix_items.v);
	free(n->properties);
	free(n->dependent_required);
	free(n->dependent_schemas);
	free(n->all_of.v);
	free(n->any_of.v);
	free(n->one_of.v);
	free(n);
}

static int compile_node(struct compiler *c, const cJSON *json, const struct spath *at, int depth,
                        struct schema_node **ret);

static int get_number(struct compiler *c, const struct spath *at, const cJSON *v, double *ret)
{
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
		return fail(c, at, -EINVAL, "must be a number");
	*ret = v->valuedouble;
	return 0;
}

/* A non-negative integer (2.0 counts); values beyond SIZE_MAX mean "no limit reachable". */
static int get_count(struct compiler *c, const struct spath *at, const cJSON *v, size_t *ret)
{
	double d;

	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
	    floor(v->valuedouble) != v->valuedouble)
		return fail(c, at, -EINVAL, "must be a non-negative integer");
	d = v->valuedouble;
	*ret = d >= 18446744073709549568.0 ? SIZE_MAX : (size_t)d;
	return 0;
}

static int get_bool(struct compiler *c, const struct spath *at, const cJSON *v, bool *ret)
{
	if (!cJSON_IsBool(v))
		return fail(c, at, -EINVAL, "must be true or false");
	*ret = cJSON_IsTrue(v);
	return 0;
}

static int get_regex(struct compiler *c, const struct spath *at, const char *source,
                     struct schema_regex *ret)
{
	char msg[256] = "";
	pcre2_code *code;
	int r;

	r = schema_regex_compile(source, &code, msg, sizeof(msg));
	if (r == -ENOMEM)
		return fail(c, at, r, "out of memory");
	if (r < 0)
		return fail(c, at, r, "invalid regular expression \"%.200s\": %s", source, msg);
	ret->source = source;
	ret->code = code;
	c->s->has_regex = true;
	return 0;
}

/* An array of unique strings (required, dependentRequired). */
static int get_names(struct compiler *c, const struct spath *at, const cJSON *v)
{
	if (!cJSON_IsArray(v))
		return fail(c, at, -EINVAL, "must be an array of strings");
	for (const cJSON *a = v->child; a; a = a->next) {
		if (!cJSON_IsString(a))
			return fail(c, at, -EINVAL, "must be an array of strings");
		for (const cJSON *b = v->child; b != a; b = b->next)
			if (strcmp(a->valuestring, b->valuestring) == 0)
				return fail(c, at, -EINVAL, "must not repeat \"%.200s\"",
				            a->valuestring);
	}
	return 0;
}

static int get_schema_list(struct compiler *c, const struct spath *at, const cJSON *v, int depth,
                           struct schema_list *ret)
{
	size_t n = 0, i = 0;
	const cJSON *item;
	int r;

	if (!cJSON_IsArray(v) || !v->child)
		return fail(c, at, -EINVAL, "must be a non-empty array of schemas");
	cJSON_ArrayForEach(item, v) n++;
	ret->v = calloc(n, sizeof(*ret->v));
	if (!ret->v)
		return -ENOMEM;
	ret->n = n;
	cJSON_ArrayForEach(item, v)
	{
		struct spath sub = {.up = at, .index = i};

		r = compile_node(c, item, &sub, depth + 1, &ret->v[i]);
		if (r < 0)
			return r;
		i++;
	}
	return 0;
}

static int cmp_named(const void *a, const void *b)
{
	return strcmp(((const struct schema_named *)a)->name,
	              ((const struct schema_named *)b)->name);
}

/* An object whose members are schemas (properties, dependentSchemas, $defs). */
static int get_schema_map(struct compiler *c, const struct spath *at, const cJSON *v, int depth,
                          struct schema_named **ret, size_t *ret_n)
{
	struct schema_named *named = NULL;
	size_t n = 0, i = 0;
	const cJSON *item;
	int r;

	if (!cJSON_IsObject(v))
		return fail(c, at, -EINVAL, "must be an object whose members are schemas");
	cJSON_ArrayForEach(item, v) n++;
	if (n) {
		named = calloc(n, sizeof(*named));
		if (!named)
			return -ENOMEM;
	}
	cJSON_ArrayForEach(item, v)
	{
		struct spath sub = {.up = at, .key = item->string};

		named[i].name = item->string;
		r = compile_node(c, item, &sub, depth + 1, &named[i].node);
		if (r < 0)
			goto fail;
		i++;
	}
	if (n)
		qsort(named, n, sizeof(*named), cmp_named);
	if (ret) {
		*ret = named;
		*ret_n = n;
	} else {
		free(named);
	}
	return 0;
fail:
	free(named);
	return r;
}

static int get_type(struct compiler *c, const struct spath *at, const cJSON *v, unsigned *ret)
{
	static const char *const names[] = {"null",   "boolean", "object", "array",
	                                    "number", "string",  "integer"};
	const cJSON *one = v;
	unsigned mask = 0;

	if (cJSON_IsArray(v))
		one = v->child;
	for (; one; one = cJSON_IsArray(v) ? one->next : NULL) {
		size_t i;

		if (!cJSON_IsString(one))
			goto bad;
		for (i = 0; i < ARRAY_SIZE(names); i++)
			if (strcmp(one->valuestring, names[i]) == 0)
				break;
		if (i == ARRAY_SIZE(names))
			return fail(c, at, -EINVAL, "unknown type \"%.100s\"", one->valuestring);
		if (mask & (1u << i))
			return fail(c, at, -EINVAL, "type \"%s\" appears twice", names[i]);
		mask |= 1u << i;
	}
	if (!cJSON_IsString(v) && !cJSON_IsArray(v))
		goto bad;
	*ret = mask;
	return 0;
bad:
	return fail(c, at, -EINVAL, "must be a type name or an array of type names");
}

static int add_ref(struct compiler *c, struct schema_node *n, const struct spath *at)
{
	struct buf where;
	int r;

	if (c->n_refs == c->alloc_refs) {
		size_t alloc = c->alloc_refs ? c->alloc_refs * 2 : 16;
		struct pending_ref *v = realloc(c->refs, alloc * sizeof(*v));

		if (!v)
			return -ENOMEM;
		c->refs = v;
		c->alloc_refs = alloc;
	}
	buf_init(&where, SCHEMA_PATH_MAX);
	r = path_build(at, &where);
	if (r == -EMSGSIZE) {
		buf_reset(&where);
		r = buf_puts(&where, "#/...");
	}
	if (r < 0) {
		buf_release(&where);
		return r;
	}
	c->refs[c->n_refs].node = n;
	c->refs[c->n_refs].where = buf_detach(&where, NULL);
	c->n_refs++;
	return 0;
}

static int get_format(struct compiler *c, const struct spath *at, const cJSON *v,
                      enum schema_format *ret)
{
	if (!cJSON_IsString(v))
		return fail(c, at, -EINVAL, "must be a string");
	if (strcmp(v->valuestring, "date") == 0)
		*ret = SCHEMA_FORMAT_DATE;
	else if (strcmp(v->valuestring, "date-time") == 0)
		*ret = SCHEMA_FORMAT_DATE_TIME;
	else
		return fail(c, at, -EOPNOTSUPP,
		            "format \"%.100s\" is not checked by this validator (only \"date\" and "
		            "\"date-time\" are): use \"pattern\"",
		            v->valuestring);
	return 0;
}

static int check_dialect(struct compiler *c, const struct spath *at, const cJSON *v)
{
	if (!cJSON_IsString(v))
		return fail(c, at, -EINVAL, "must be a string");
	if (strcmp(v->valuestring, "https://json-schema.org/draft/2020-12/schema") != 0 &&
	    strcmp(v->valuestring, "https://json-schema.org/draft/2020-12/schema#") != 0)
		return fail(c, at, -EOPNOTSUPP, "only draft 2020-12 is supported, not \"%.200s\"",
		            v->valuestring);
	return 0;
}

/* Keywords of the specification (or of its earlier drafts) that are not implemented:
 * refusing them is better than ignoring what the schema's author relies on. */
static const struct {
	const char *keyword;
	const char *hint;
} unsupported[] = {
        {"$dynamicRef", ""},
        {"$dynamicAnchor", ""},
        {"$anchor", " (use a \"$ref\" with a JSON Pointer)"},
        {"$recursiveRef", ""},
        {"$recursiveAnchor", ""},
        {"dependencies", " (draft 7: use dependentRequired or dependentSchemas)"},
        {"additionalItems", " (before draft 2020-12: use prefixItems and items)"},
};

static int compile_keyword(struct compiler *c, struct schema_node *n, const cJSON *v,
                           const struct spath *at, int depth)
{
	const char *k = v->string;
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(unsupported); i++)
		if (strcmp(k, unsupported[i].keyword) == 0)
			return fail(c, at, -EOPNOTSUPP, "keyword \"%s\" is not supported%s", k,
			            unsupported[i].hint);
	if (strcmp(k, "type") == 0)
		return get_type(c, at, v, &n->types);
	if (strcmp(k, "enum") == 0) {
		if (!cJSON_IsArray(v))
			return fail(c, at, -EINVAL, "must be an array");
		n->enum_values = v;
		return 0;
	}
	if (strcmp(k, "const") == 0) {
		n->const_value = v;
		return 0;
	}
	if (strcmp(k, "multipleOf") == 0) {
		r = get_number(c, at, v, &n->multiple_of);
		if (r == 0 && n->multiple_of <= 0)
			return fail(c, at, -EINVAL, "must be greater than 0");
		n->has_multiple_of = r == 0;
		return r;
	}
	if (strcmp(k, "maximum") == 0) {
		n->has_maximum = true;
		return get_number(c, at, v, &n->maximum);
	}
	if (strcmp(k, "exclusiveMaximum") == 0) {
		n->has_exclusive_maximum = true;
		return get_number(c, at, v, &n->exclusive_maximum);
	}
	if (strcmp(k, "minimum") == 0) {
		n->has_minimum = true;
		return get_number(c, at, v, &n->minimum);
	}
	if (strcmp(k, "exclusiveMinimum") == 0) {
		n->has_exclusive_minimum = true;
		return get_number(c, at, v, &n->exclusive_minimum);
	}
	if (strcmp(k, "maxLength") == 0)
		return get_count(c, at, v, &n->max_length);
	if (strcmp(k, "minLength") == 0)
		return get_count(c, at, v, &n->min_length);
	if (strcmp(k, "pattern") == 0) {
		if (!cJSON_IsString(v))
			return fail(c, at, -EINVAL, "must be a string");
		return get_regex(c, at, v->valuestring, &n->pattern);
	}
	if (strcmp(k, "format") == 0)
		return get_format(c, at, v, &n->format);
	if (strcmp(k, "maxItems") == 0)
		return get_count(c, at, v, &n->max_items);
	if (strcmp(k, "minItems") == 0)
		return get_count(c, at, v, &n->min_items);
	if (strcmp(k, "uniqueItems") == 0)
		return get_bool(c, at, v, &n->unique_items);
	if (strcmp(k, "prefixItems") == 0)
		return get_schema_list(c, at, v, depth, &n->prefix_items);
	if (strcmp(k, "items") == 0)
		return compile_node(c, v, at, depth + 1, &n->items);
	if (strcmp(k, "contains") == 0)
		return compile_node(c, v, at, depth + 1, &n->contains);
	if (strcmp(k, "minContains") == 0)
		return get_count(c, at, v, &n->min_contains);
	if (strcmp(k, "maxContains") == 0)
		return get_count(c, at, v, &n->max_contains);
	if (strcmp(k, "unevaluatedItems") == 0)
		return compile_node(c, v, at, depth + 1, &n->unevaluated_items);
	if (strcmp(k, "maxProperties") == 0)
		return get_count(c, at, v, &n->max_properties);
	if (strcmp(k, "minProperties") == 0)
		return get_count(c, at, v, &n->min_properties);
	if (strcmp(k, "required") == 0) {
		r = get_names(c, at, v);
		if (r == 0)
			n->required = v;
		return r;
	}
	if (strcmp(k, "properties") == 0)
		return get_schema_map(c, at, v, depth, &n->properties, &n->n_properties);
	if (strcmp(k, "patternProperties") == 0) {
		const cJSON *item;
		size_t count = 0;

		if (!cJSON_IsObject(v))
			return fail(c, at, -EINVAL, "must be an object whose members are schemas");
		cJSON_ArrayForEach(item, v) count++;
		if (!count)
			return 0;
		n->pattern_properties = calloc(count, sizeof(*n->pattern_properties));
		if (!n->pattern_properties)
			return -ENOMEM;
		cJSON_ArrayForEach(item, v)
		{
			struct schema_pattern_prop *pp =
			        &n->pattern_properties[n->n_pattern_properties];
			struct spath sub = {.up = at, .key = item->string};

			r = get_regex(c, &sub, item->string, &pp->re);
			if (r < 0)
				return r;
			n->n_pattern_properties++;
			r = compile_node(c, item, &sub, depth + 1, &pp->node);
			if (r < 0)
				return r;
		}
		return 0;
	}
	if (strcmp(k, "additionalProperties") == 0)
		return compile_node(c, v, at, depth + 1, &n->additional_properties);
	if (strcmp(k, "dependentRequired") == 0) {
		const cJSON *item;
		size_t count = 0;

		if (!cJSON_IsObject(v))
			return fail(c, at, -EINVAL, "must be an object of arrays of strings");
		cJSON_ArrayForEach(item, v) count++;
		if (!count)
			return 0;
		n->dependent_required = calloc(count, sizeof(*n->dependent_required));
		if (!n->dependent_required)
			return -ENOMEM;
		cJSON_ArrayForEach(item, v)
		{
			struct spath sub = {.up = at, .key = item->string};

			r = get_names(c, &sub, item);
			if (r < 0)
				return r;
			n->dependent_required[n->n_dependent_required].name = item->string;
			n->dependent_required[n->n_dependent_required].required = item;
			n->n_dependent_required++;
		}
		return 0;
	}
	if (strcmp(k, "dependentSchemas") == 0)
		return get_schema_map(c, at, v, depth, &n->dependent_schemas,
		                      &n->n_dependent_schemas);
	if (strcmp(k, "propertyNames") == 0)
		return compile_node(c, v, at, depth + 1, &n->property_names);
	if (strcmp(k, "unevaluatedProperties") == 0)
		return compile_node(c, v, at, depth + 1, &n->unevaluated_properties);
	if (strcmp(k, "allOf") == 0)
		return get_schema_list(c, at, v, depth, &n->all_of);
	if (strcmp(k, "anyOf") == 0)
		return get_schema_list(c, at, v, depth, &n->any_of);
	if (strcmp(k, "oneOf") == 0)
		return get_schema_list(c, at, v, depth, &n->one_of);
	if (strcmp(k, "not") == 0)
		return compile_node(c, v, at, depth + 1, &n->not_schema);
	if (strcmp(k, "if") == 0)
		return compile_node(c, v, at, depth + 1, &n->if_schema);
	if (strcmp(k, "then") == 0)
		return compile_node(c, v, at, depth + 1, &n->then_schema);
	if (strcmp(k, "else") == 0)
		return compile_node(c, v, at, depth + 1, &n->else_schema);
	if (strcmp(k, "$defs") == 0)
		return get_schema_map(c, at, v, depth, NULL, NULL);
	if (strcmp(k, "$ref") == 0) {
		if (!cJSON_IsString(v))
			return fail(c, at, -EINVAL, "must be a string");
		n->ref_text = v->valuestring;
		return add_ref(c, n, at);
	}
	if (strcmp(k, "$schema") == 0)
		return check_dialect(c, at, v);
	if (strcmp(k, "$id") == 0) {
		if (!cJSON_IsString(v))
			return fail(c, at, -EINVAL, "must be a string");
		if (at->up)
			return fail(c, at, -EOPNOTSUPP,
			            "\"$id\" is only supported at the top of the schema");
		return 0;
	}
	return 0; /* unknown keywords are annotations */
}

static int compile_node(struct compiler *c, const cJSON *json, const struct spath *at, int depth,
                        struct schema_node **ret)
{
	struct schema_node *n;
	const cJSON *kw;
	int r;

	n = map_get(c, json);
	if (n) {
		*ret = n;
		return 0;
	}
	if (depth > SCHEMA_MAX_DEPTH)
		return fail(c, at, -EINVAL, "schema nested deeper than %d levels",
		            SCHEMA_MAX_DEPTH);
	if (!cJSON_IsBool(json) && !cJSON_IsObject(json))
		return fail(c, at, -EINVAL, "must be a schema (an object, true or false)");
	r = new_node(c, json, &n);
	if (r < 0)
		return r;
	if (cJSON_IsBool(json)) {
		n->is_bool = true;
		n->bool_value = cJSON_IsTrue(json);
		*ret = n;
		return 0;
	}
	cJSON_ArrayForEach(kw, json)
	{
		struct spath sub = {.up = at, .key = kw->string};

		r = compile_keyword(c, n, kw, &sub, depth);
		if (r < 0)
			return r;
	}
	n->wants_annotations = n->unevaluated_properties || n->unevaluated_items;
	*ret = n;
	return 0;
}

/* "#/$defs/a%25b" -> "/$defs/a%b"; NULL with *ret_r set on failure. */
static char *fragment_pointer(const char *fragment, int *ret_r)
{
	size_t n = strlen(fragment);
	char *out = malloc(n + 1), *o = out;

	if (!out) {
		*ret_r = -ENOMEM;
		return NULL;
	}
	for (const char *p = fragment; *p; p++) {
		unsigned v = 0;

		if (*p != '%') {
			*o++ = *p;
			continue;
		}
		for (int i = 1; i <= 2; i++) {
			char h = p[i];

			v <<= 4;
			if (h >= '0' && h <= '9')
				v |= (unsigned)(h - '0');
			else if (h >= 'a' && h <= 'f')
				v |= (unsigned)(h - 'a' + 10);
			else if (h >= 'A' && h <= 'F')
				v |= (unsigned)(h - 'A' + 10);
			else
				goto bad;
		}
		if (v == 0)
			goto bad;
		*o++ = (char)v;
		p += 2;
	}
	*o = '\0';
	return out;
bad:
	free(out);
	*ret_r = -EINVAL;
	return NULL;
}

static int PRINTF_LIKE(4, 5)
        ref_fail(struct compiler *c, const struct pending_ref *pr, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!c->err || !c->errlen)
		return code;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(c->err, c->errlen, "%s: \"%.200s\" %s", pr->where, pr->node->ref_text, msg);
	return code;
}

static int resolve_ref(struct compiler *c, const struct pending_ref *pr)
{
	const char *ref = pr->node->ref_text;
	const cJSON *target;
	char *pointer;
	int r = 0;

	if (ref[0] != '#')
		return ref_fail(c, pr, -EOPNOTSUPP,
		                "is not a local reference (\"#/...\"): remote schemas are not "
		                "supported");
	if (ref[1] != '\0' && ref[1] != '/')
		return ref_fail(c, pr, -EOPNOTSUPP,
		                "names an anchor: anchors are not supported, use a JSON Pointer");
	pointer = fragment_pointer(ref + 1, &r);
	if (!pointer)
		return r == -EINVAL ? ref_fail(c, pr, r, "has invalid percent-encoding") : r;
	target = json_pointer_get(c->s->root, pointer);
	if (!target) {
		r = ref_fail(c, pr, -EINVAL, "does not point to anything in this schema");
	} else {
		struct spath at = {.key = pointer, .raw = 1};

		r = compile_node(c, target, &at, 0, &pr->node->ref);
	}
	free(pointer);
	return r;
}

/* Compiles the document root, which the new schema takes over (also on failure). */
static int compile_document(cJSON *root, struct schema **ret_schema, char *err, size_t errlen)
{
	struct compiler c = {.err = err, .errlen = errlen};
	struct schema *s;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s) {
		cJSON_Delete(root);
		return -ENOMEM;
	}
	s->root = root;
	c.s = s;
	r = compile_node(&c, root, NULL, 0, &s->top);
	/* resolving a $ref may compile more nodes and so add more refs */
	for (size_t i = 0; r == 0 && i < c.n_refs; i++)
		r = resolve_ref(&c, &c.refs[i]);
	if (r == 0 && s->has_regex) {
		s->match_ctx = schema_regex_match_context();
		if (!s->match_ctx)
			r = -ENOMEM;
	}
	if (r == -ENOMEM && err && errlen)
		snprintf(err, errlen, "out of memory compiling the schema");
	for (size_t i = 0; i < c.n_refs; i++)
		free(c.refs[i].where);
	free(c.refs);
	free(c.map);
	if (r < 0) {
		schema_free(s);
		return r;
	}
	*ret_schema = s;
	return 0;
}

int schema_compile(const char *text, size_t len, struct schema **ret_schema, char *err,
                   size_t errlen)
{
	cJSON *root = NULL;
	int r;

	if (len > SCHEMA_MAX_TEXT) {
		if (err && errlen)
			snprintf(err, errlen, "schema of %zu bytes is larger than the limit of %u",
			         len, SCHEMA_MAX_TEXT);
		return -EMSGSIZE;
	}
	r = json_parse_untrusted(text, len, SCHEMA_MAX_DEPTH, &root, err, errlen);
	if (r < 0)
		return r;
	return compile_document(root, ret_schema, err, errlen);
}

int schema_compile_json(const cJSON *root, struct schema **ret_schema, char *err, size_t errlen)
{
	cJSON *copy;
	int r;

	r = json_check_tree(root, SCHEMA_MAX_DEPTH, err, errlen);
	if (r < 0)
		return r;
	copy = cJSON_Duplicate(root, 1);
	if (!copy) {
		if (err && errlen)
			snprintf(err, errlen, "out of memory copying the schema");
		return -ENOMEM;
	}
	return compile_document(copy, ret_schema, err, errlen);
}
