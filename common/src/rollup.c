/* Roll-ups from x-rollup annotations: see rollup.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/errlist.h"
#include "common/json.h"
#include "common/rollup.h"
#include "common/rules.h"
#include "common/banned.h"

/* Integers beyond this are not all exact as doubles, and cJSON numbers are doubles. */
#define EXACT_MAX INT64_C(9007199254740992) /* 2^53 */
#define WHERE_MAX 4096
#define DIFF_POINTER_MAX (64u * 1024)

enum node_kind {
	NODE_NONE,     /* not aggregated; never in a compiled plan */
	NODE_OBJECT,   /* an object: its properties one by one */
	NODE_ELEMENTS, /* x-rollup "count" on an array of objects */
	NODE_SUM,
	NODE_MAX,
	NODE_COUNT_TRUE,
	NODE_COUNT_BY,
};

struct rollup_node {
	enum node_kind kind;
	char *name; /* the member name in data and in the output; NULL for the root */
	struct rollup_node *children; /* NODE_OBJECT and NODE_ELEMENTS */
	size_t nchildren;
	size_t slot; /* its state in struct rollup */
};

struct derived {
	char *name;
	struct rules_condition_set *set;
};

struct rollup_plan {
	struct rollup_node root;
	bool count_returns; /* root "x-rollup": "count" */
	struct derived *derived;
	size_t nderived;
	size_t nslots;
};

struct key_entry {
	char *key;
	uint64_t count; /* entries with 0 exist only after a failed rollup_add() */
	uint64_t stamp; /* the array that counted it last */
};

/* The state of one field: the totals, and what the return being added contributes. */
struct rollup_slot {
	uint64_t count; /* count_true, or elements */
	int64_t sum;
	int64_t max;
	bool has_max;
	struct key_entry *keys; /* count_by, sorted by strcmp() */
	size_t nkeys;
	size_t keys_alloc;
	int64_t add_sum;
	int64_t add_max;
	bool add_has_max;
};

/* ---- compiling ---- */

enum {
	T_NULL = 1 << 0,
	T_BOOLEAN = 1 << 1,
	T_OBJECT = 1 << 2,
	T_ARRAY = 1 << 3,
	T_NUMBER = 1 << 4,
	T_STRING = 1 << 5,
	T_INTEGER = 1 << 6,
	T_UNKNOWN = 1 << 7,
};

/* What a property schema says, after following its $ref chain. */
struct view {
	const cJSON *xrollup;
	const cJSON *type;
	const cJSON *properties;
	const cJSON *items;
};

struct compiler {
	const cJSON *root;
	char *err;
	size_t errlen;
	struct buf where; /* "#/properties/victims" */
	size_t visited;
};

/* Fails with "<where><at>: <what>", e.g. "#/properties/level/x-rollup: unknown value ...". */
static int PRINTF_LIKE(3, 4) cfail(const struct compiler *c, const char *at, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	if (!c->err || !c->errlen)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(c->err, c->errlen, "%s%s: %s", c->where.data ? c->where.data : "#", at, what);
	return -EINVAL;
}

static int type_bit(const cJSON *t)
{
	static const struct {
		const char *name;
		int bit;
	} types[] = {
	        {"null", T_NULL},       {"boolean", T_BOOLEAN}, {"object", T_OBJECT},
	        {"array", T_ARRAY},     {"number", T_NUMBER},   {"string", T_STRING},
	        {"integer", T_INTEGER},
	};

	if (!cJSON_IsString(t))
		return T_UNKNOWN;
	for (size_t i = 0; i < ARRAY_SIZE(types); i++)
		if (!strcmp(t->valuestring, types[i].name))
			return types[i].bit;
	return T_UNKNOWN;
}

/* The "type" keyword as a mask of T_*; 0 when there is none. */
static int type_mask(const struct view *v)
{
	const cJSON *t;
	int mask = 0;

	if (!v->type)
		return 0;
	if (!cJSON_IsArray(v->type))
		return type_bit(v->type);
	cJSON_ArrayForEach(t, v->type)
	{
		mask |= type_bit(t);
	}
	return mask;
}

/* mask names some of allowed and at least one of wanted, nothing else. */
static bool type_within(int mask, int allowed, int wanted)
{
	return (mask & wanted) && !(mask & ~allowed);
}

static bool is_object_schema(const struct view *v)
{
	int mask = type_mask(v);

	return (mask & T_OBJECT) || (!mask && v->properties);
}

/* Follows schema's local $ref chain and takes each keyword from the first schema on it
 * that has it. */
static int resolve(struct compiler *c, const cJSON *schema, struct view *ret)
{
	struct view v = {0};
	const char *ref;

	for (int hops = 0;; hops++) {
		const cJSON *next;

		if (!cJSON_IsObject(schema))
			return cfail(c, "",
			             "a property's schema must be an object to carry x-rollup");
		if (!v.xrollup)
			v.xrollup = cJSON_GetObjectItemCaseSensitive(schema, "x-rollup");
		if (!v.type)
			v.type = cJSON_GetObjectItemCaseSensitive(schema, "type");
		if (!v.properties)
			v.properties = cJSON_GetObjectItemCaseSensitive(schema, "properties");
		if (!v.items)
			v.items = cJSON_GetObjectItemCaseSensitive(schema, "items");
		next = cJSON_GetObjectItemCaseSensitive(schema, "$ref");
		if (!next)
			break;
		if (!cJSON_IsString(next))
			return cfail(c, "/$ref", "must be a string");
		ref = next->valuestring;
		if (ref[0] != '#')
			return cfail(c, "/$ref",
			             "\"%.100s\": only local references (\"#/...\") are "
			             "followed",
			             ref);
		if (hops >= ROLLUP_REF_HOPS)
			return cfail(c, "/$ref", "more than %d references in a row (a loop?)",
			             ROLLUP_REF_HOPS);
		schema = json_pointer_get(c->root, ref + 1);
		if (!schema)
			return cfail(c, "/$ref", "\"%.100s\" does not resolve", ref);
	}
	*ret = v;
	return 0;
}

static void node_release(struct rollup_node *n)
{
	for (size_t i = 0; i < n->nchildren; i++)
		node_release(&n->children[i]);
	free(n->children);
	free(n->name);
	memset(n, 0, sizeof(*n));
}

static int add_child(struct rollup_node *parent, struct rollup_node *child)
{
	struct rollup_node *p;

	p = realloc(parent->children, (parent->nchildren + 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	parent->children = p;
	parent->children[parent->nchildren++] = *child;
	memset(child, 0, sizeof(*child));
	return 0;
}

static int compile_properties(struct compiler *c, const cJSON *properties,
                              struct rollup_node *parent, int depth);

static int compile_leaf(struct compiler *c, const struct view *v, enum node_kind kind,
                        const char *kind_name)
{
	int mask = type_mask(v), items_mask;
	struct view items;
	int r;

	switch (kind) {
	case NODE_SUM:
	case NODE_MAX:
		/* integers only: a sum of fractions would depend on the order of the returns */
		if (!type_within(mask, T_INTEGER | T_NULL, T_INTEGER))
			return cfail(c, "/x-rollup", "%s needs \"type\": \"integer\"", kind_name);
		return 0;
	case NODE_COUNT_TRUE:
		if (!type_within(mask, T_BOOLEAN | T_NULL, T_BOOLEAN))
			return cfail(c, "/x-rollup", "count_true needs \"type\": \"boolean\"");
		return 0;
	case NODE_COUNT_BY:
		if (is_object_schema(v))
			return cfail(c, "/x-rollup",
			             "count_by cannot count an object: leave x-rollup "
			             "out to aggregate its properties one by one");
		if (type_within(mask, T_STRING | T_INTEGER | T_BOOLEAN | T_NULL,
		                T_STRING | T_INTEGER | T_BOOLEAN))
			return 0;
		if (type_within(mask, T_ARRAY | T_NULL, T_ARRAY) && v->items) {
			r = resolve(c, v->items, &items);
			if (r < 0)
				return r;
			items_mask = type_mask(&items);
			if (type_within(items_mask, T_STRING | T_INTEGER | T_BOOLEAN | T_NULL,
			                T_STRING | T_INTEGER | T_BOOLEAN))
				return 0;
		}
		return cfail(c, "/x-rollup",
		             "count_by needs \"type\" string, integer or boolean, "
		             "or an array with such \"items\"");
	default:
		return -EINVAL;
	}
}

/* x-rollup "count" on a property: an array of objects. */
static int compile_elements(struct compiler *c, const struct view *v, struct rollup_node *node,
                            int depth)
{
	struct view items;
	size_t len = c->where.len;
	int r;

	if (!type_within(type_mask(v), T_ARRAY | T_NULL, T_ARRAY) || !v->items)
		return cfail(c, "/x-rollup", "count needs an array of objects");
	r = buf_puts(&c->where, "/items");
	if (r < 0)
		return cfail(c, "", "schema path too long");
	r = resolve(c, v->items, &items);
	if (r < 0)
		return r;
	if (!is_object_schema(&items) || !items.properties) {
		c->where.len = len;
		c->where.data[len] = '\0';
		return cfail(c, "/x-rollup", "count needs an array of objects with properties");
	}
	if (items.xrollup)
		return cfail(c, "/x-rollup",
		             "not read here: the array's x-rollup counts its "
		             "elements");
	node->kind = NODE_ELEMENTS;
	r = compile_properties(c, items.properties, node, depth + 1);
	c->where.len = len;
	c->where.data[len] = '\0';
	return r;
}

/* Compiles one property into *node; node->kind stays NODE_NONE when it is not aggregated. */
static int compile_property(struct compiler *c, const cJSON *schema, struct rollup_node *node,
                            int depth)
{
	static const struct {
		const char *name;
		enum node_kind kind;
	} kinds[] = {
	        {"sum", NODE_SUM},
	        {"max", NODE_MAX},
	        {"count_true", NODE_COUNT_TRUE},
	        {"count_by", NODE_COUNT_BY},
	};
	struct view v;
	const char *x;
	int r;

	r = resolve(c, schema, &v);
	if (r < 0)
		return r;
	if (!v.xrollup) {
		if (!is_object_schema(&v))
			return cfail(c, "", "no x-rollup (\"none\" leaves a field out)");
		if (!v.properties)
			return cfail(c, "",
			             "an object without properties has nothing to aggregate: "
			             "write \"x-rollup\": \"none\"");
		node->kind = NODE_OBJECT;
		return compile_properties(c, v.properties, node, depth + 1);
	}
	if (!cJSON_IsString(v.xrollup))
		return cfail(c, "/x-rollup", "must be a string");
	x = v.xrollup->valuestring;
	if (!strcmp(x, "none"))
		return 0;
	if (!strcmp(x, "count"))
		return compile_elements(c, &v, node, depth);
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		if (strcmp(x, kinds[i].name))
			continue;
		if (kinds[i].kind != NODE_COUNT_BY && is_object_schema(&v))
			return cfail(c, "/x-rollup",
			             "%s cannot aggregate an object: leave x-rollup "
			             "out to aggregate its properties one by one",
			             x);
		r = compile_leaf(c, &v, kinds[i].kind, x);
		if (r < 0)
			return r;
		node->kind = kinds[i].kind;
		return 0;
	}
	return cfail(c, "/x-rollup", "unknown value \"%.64s\"", x);
}

/* Whether a property of that name would collide with a member the roll-up adds itself. */
static bool reserved_name(const struct rollup_node *parent, int depth, const char *name)
{
	if (depth == 1 && (!strcmp(name, "returns") || !strcmp(name, "derived")))
		return true;
	return parent->kind == NODE_ELEMENTS && !strcmp(name, "count");
}

static int compile_properties(struct compiler *c, const cJSON *properties,
                              struct rollup_node *parent, int depth)
{
	size_t len = c->where.len;
	const cJSON *p;
	int r = 0;

	if (depth > ROLLUP_MAX_DEPTH)
		return cfail(c, "", "objects nested deeper than %d levels", ROLLUP_MAX_DEPTH);
	if (!cJSON_IsObject(properties))
		return cfail(c, "/properties", "must be an object");
	cJSON_ArrayForEach(p, properties)
	{
		struct rollup_node child = {.kind = NODE_NONE};

		if (++c->visited > ROLLUP_MAX_PROPERTIES)
			return cfail(c, "", "more than %d properties", ROLLUP_MAX_PROPERTIES);
		r = buf_puts(&c->where, "/properties");
		if (r == 0)
			r = json_pointer_append(&c->where, p->string);
		if (r < 0)
			return r == -ENOMEM ? r : cfail(c, "", "schema path too long");
		r = compile_property(c, p, &child, depth);
		if (r == 0 && child.kind != NODE_NONE && reserved_name(parent, depth, p->string))
			r = cfail(c, "", "the name \"%.64s\" is taken by the roll-up itself",
			          p->string);
		/* an object with nothing aggregated in it is left out */
		if (r == 0 && child.kind != NODE_NONE &&
		    !(child.kind == NODE_OBJECT && !child.nchildren)) {
			child.name = strdup(p->string);
			r = child.name ? add_child(parent, &child) : -ENOMEM;
		}
		node_release(&child);
		if (r < 0)
			return r;
		c->where.len = len;
		c->where.data[len] = '\0';
	}
	return 0;
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > ROLLUP_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

static bool derived_member_ok(const char *name)
{
	static const char *const ok[] = {"name",  "each",        "when",
	                                 "title", "description", "$comment"};

	if (!strncmp(name, "x-", 2))
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
		if (!strcmp(name, ok[i]))
			return true;
	return false;
}

static int compile_derived(struct compiler *c, const cJSON *list, struct rollup_plan *plan)
{
	char rerr[384];
	const cJSON *def, *m, *name;
	size_t n = 0;
	int r;

	r = buf_puts(&c->where, "/x-rollup-derived");
	if (r < 0)
		return r;
	if (!cJSON_IsArray(list))
		return cfail(c, "", "must be an array");
	n = (size_t)cJSON_GetArraySize(list);
	if (n > ROLLUP_DERIVED_MAX)
		return cfail(c, "", "more than %d entries", ROLLUP_DERIVED_MAX);
	plan->derived = calloc(n ? n : 1, sizeof(*plan->derived));
	if (!plan->derived)
		return -ENOMEM;
	cJSON_ArrayForEach(def, list)
	{
		struct derived *d = &plan->derived[plan->nderived];

		r = json_pointer_append_index(&c->where, plan->nderived);
		if (r < 0)
			return r;
		if (!cJSON_IsObject(def))
			return cfail(c, "", "must be an object");
		name = cJSON_GetObjectItemCaseSensitive(def, "name");
		if (!cJSON_IsString(name) || !name_ok(name->valuestring))
			return cfail(c, "/name", "must be [a-z0-9_]+ of at most %d bytes",
			             ROLLUP_NAME_MAX);
		for (size_t i = 0; i < plan->nderived; i++)
			if (!strcmp(plan->derived[i].name, name->valuestring))
				return cfail(c, "/name", "\"%s\" is used twice", name->valuestring);
		cJSON_ArrayForEach(m, def)
		{
			if (!derived_member_ok(m->string))
				return cfail(c, "", "unknown member \"%.64s\"", m->string);
		}
		rerr[0] = '\0';
		r = rules_compile_condition_set(def, rerr, sizeof(rerr), &d->set);
		if (r < 0) {
			char named[ROLLUP_NAME_MAX + 8];

			snprintf(named, sizeof(named), " (\"%s\")", name->valuestring);
			return r == -ENOMEM ? r : cfail(c, named, "%s", rerr);
		}
		d->name = strdup(name->valuestring);
		if (!d->name) {
			rules_condition_set_free(d->set);
			d->set = NULL;
			return -ENOMEM;
		}
		plan->nderived++;
		c->where.len = strlen("#/x-rollup-derived");
		c->where.data[c->where.len] = '\0';
	}
	return 0;
}

static size_t number_slots(struct rollup_node *n, size_t next)
{
	n->slot = next++;
	for (size_t i = 0; i < n->nchildren; i++)
		next = number_slots(&n->children[i], next);
	return next;
}

int rollup_plan_compile(const cJSON *schema_root, char *err, size_t errlen,
                        struct rollup_plan **ret_plan)
{
	struct compiler c = {.root = schema_root, .err = err, .errlen = errlen};
	struct rollup_plan *plan;
	struct view v;
	const cJSON *derived;
	int r;

	buf_init(&c.where, WHERE_MAX);
	plan = calloc(1, sizeof(*plan));
	if (!plan)
		return -ENOMEM;
	plan->root.kind = NODE_OBJECT;
	r = buf_puts(&c.where, "#");
	if (r < 0)
		goto fail;
	if (!cJSON_IsObject(schema_root)) {
		r = cfail(&c, "", "a form schema is an object");
		goto fail;
	}
	r = resolve(&c, schema_root, &v);
	if (r < 0)
		goto fail;
	if (v.xrollup) {
		if (!cJSON_IsString(v.xrollup) || strcmp(v.xrollup->valuestring, "count")) {
			r = cfail(&c, "/x-rollup", "the root takes only \"count\"");
			goto fail;
		}
		plan->count_returns = true;
	}
	if (v.properties) {
		r = compile_properties(&c, v.properties, &plan->root, 1);
		if (r < 0)
			goto fail;
	}
	derived = cJSON_GetObjectItemCaseSensitive(schema_root, "x-rollup-derived");
	if (derived) {
		r = compile_derived(&c, derived, plan);
		if (r < 0)
			goto fail;
	}
	plan->nslots = number_slots(&plan->root, 0);
	buf_release(&c.where);
	*ret_plan = plan;
	return 0;
fail:
	if (r == -ENOMEM && err && errlen)
		snprintf(err, errlen, "out of memory compiling x-rollup");
	buf_release(&c.where);
	rollup_plan_free(plan);
	return r;
}

void rollup_plan_free(struct rollup_plan *plan)
{
	if (!plan)
		return;
	node_release(&plan->root);
	for (size_t i = 0; i < plan->nderived; i++) {
		free(plan->derived[i].name);
		rules_condition_set_free(plan->derived[i].set);
	}
	free(plan->derived);
	free(plan);
}

/* ---- adding returns ---- */

int rollup_init(struct rollup *r, const struct rollup_plan *plan)
{
	struct rollup_slot *slots;
	uint64_t *derived;

	slots = calloc(plan->nslots, sizeof(*slots));
	derived = calloc(plan->nderived ? plan->nderived : 1, sizeof(*derived));
	if (!slots || !derived) {
		free(slots);
		free(derived);
		return -ENOMEM;
	}
	r->plan = plan;
	r->slots = slots;
	r->derived = derived;
	r->returns = 0;
	r->stamp = 0;
	return 0;
}

void rollup_release(struct rollup *r)
{
	if (r->slots) {
		for (size_t i = 0; i < r->plan->nslots; i++) {
			for (size_t k = 0; k < r->slots[i].nkeys; k++)
				free(r->slots[i].keys[k].key);
			free(r->slots[i].keys);
		}
	}
	free(r->slots);
	free(r->derived);
	memset(r, 0, sizeof(*r));
}

/* A number that is an integer within +-2^53. */
static int integer_of(const cJSON *v, int64_t *ret)
{
	double d;

	if (!cJSON_IsNumber(v))
		return -EINVAL;
	d = v->valuedouble;
	if (!(d >= -(double)EXACT_MAX && d <= (double)EXACT_MAX))
		return -EINVAL;
	if ((double)(int64_t)d != d)
		return -EINVAL;
	*ret = (int64_t)d;
	return 0;
}

/* The count_by key of a scalar: its text, "true"/"false", or an integer in decimal. */
static int key_of(const cJSON *v, char *numbuf, size_t numlen, const char **ret)
{
	int64_t i;

	if (cJSON_IsString(v)) {
		if (strlen(v->valuestring) > ROLLUP_KEY_MAX)
			return -E2BIG;
		*ret = v->valuestring;
		return 0;
	}
	if (cJSON_IsBool(v)) {
		*ret = cJSON_IsTrue(v) ? "true" : "false";
		return 0;
	}
	if (integer_of(v, &i) < 0)
		return -EINVAL;
	snprintf(numbuf, numlen, "%" PRId64, i);
	*ret = numbuf;
	return 0;
}

/* The index of key in s->keys, or where it would go (then *found is false). */
static size_t key_find(const struct rollup_slot *s, const char *key, bool *found)
{
	size_t lo = 0, hi = s->nkeys;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->keys[mid].key, key);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

/* Makes sure key has an entry (with count 0 when new), so that counting cannot fail. */
static int key_reserve(struct rollup_slot *s, const char *key)
{
	bool found;
	size_t at = key_find(s, key, &found);
	char *copy;

	if (found)
		return 0;
	if (s->nkeys >= ROLLUP_KEYS_MAX)
		return -E2BIG;
	if (s->nkeys == s->keys_alloc) {
		size_t alloc = s->keys_alloc ? s->keys_alloc * 2 : 8;
		struct key_entry *p = realloc(s->keys, alloc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		s->keys = p;
		s->keys_alloc = alloc;
	}
	copy = strdup(key);
	if (!copy)
		return -ENOMEM;
	memmove(&s->keys[at + 1], &s->keys[at], (s->nkeys - at) * sizeof(*s->keys));
	s->keys[at] = (struct key_entry){.key = copy};
	s->nkeys++;
	return 0;
}

static bool absent(const cJSON *v)
{
	return !v || cJSON_IsNull(v);
}

/* First pass: checks every value against the plan, reserves count_by keys and works out
 * what this return adds to each sum and max. Changes nothing that rollup_to_json() shows. */
static int prepare(struct rollup *r, const struct rollup_node *n, const cJSON *v)
{
	struct rollup_slot *s = &r->slots[n->slot];
	const cJSON *el;
	char num[32];
	const char *key;
	int64_t i;
	int ret;

	if (absent(v))
		return 0;
	switch (n->kind) {
	case NODE_OBJECT:
		if (!cJSON_IsObject(v))
			return -EINVAL;
		for (size_t c = 0; c < n->nchildren; c++) {
			ret = prepare(r, &n->children[c],
			              cJSON_GetObjectItemCaseSensitive(v, n->children[c].name));
			if (ret < 0)
				return ret;
		}
		return 0;
	case NODE_ELEMENTS:
		if (!cJSON_IsArray(v))
			return -EINVAL;
		cJSON_ArrayForEach(el, v)
		{
			if (!cJSON_IsObject(el))
				return -EINVAL;
			for (size_t c = 0; c < n->nchildren; c++) {
				ret = prepare(
				        r, &n->children[c],
				        cJSON_GetObjectItemCaseSensitive(el, n->children[c].name));
				if (ret < 0)
					return ret;
			}
		}
		return 0;
	case NODE_SUM:
		if (integer_of(v, &i) < 0)
			return -EINVAL;
		if (__builtin_add_overflow(s->add_sum, i, &s->add_sum))
			return -EOVERFLOW;
		return 0;
	case NODE_MAX:
		if (integer_of(v, &i) < 0)
			return -EINVAL;
		if (!s->add_has_max || i > s->add_max)
			s->add_max = i;
		s->add_has_max = true;
		return 0;
	case NODE_COUNT_TRUE:
		return cJSON_IsBool(v) ? 0 : -EINVAL;
	case NODE_COUNT_BY:
		if (!cJSON_IsArray(v)) {
			ret = key_of(v, num, sizeof(num), &key);
			return ret < 0 ? ret : key_reserve(s, key);
		}
		cJSON_ArrayForEach(el, v)
		{
			if (absent(el))
				continue;
			ret = key_of(el, num, sizeof(num), &key);
			if (ret == 0)
				ret = key_reserve(s, key);
			if (ret < 0)
				return ret;
		}
		return 0;
	case NODE_NONE:
		break;
	}
	return -EINVAL;
}

static void count_key(struct rollup *r, struct rollup_slot *s, const cJSON *v)
{
	char num[32];
	const char *key;
	bool found;
	size_t at;

	if (absent(v) || key_of(v, num, sizeof(num), &key) < 0)
		return; /* not after prepare() */
	at = key_find(s, key, &found);
	if (!found || s->keys[at].stamp == r->stamp)
		return; /* counted already for this array */
	s->keys[at].count++;
	s->keys[at].stamp = r->stamp;
}

/* Second pass, after prepare() succeeded: counts. Cannot fail. */
static void apply(struct rollup *r, const struct rollup_node *n, const cJSON *v)
{
	struct rollup_slot *s = &r->slots[n->slot];
	const cJSON *el;

	if (absent(v))
		return;
	switch (n->kind) {
	case NODE_OBJECT:
		for (size_t c = 0; c < n->nchildren; c++)
			apply(r, &n->children[c],
			      cJSON_GetObjectItemCaseSensitive(v, n->children[c].name));
		break;
	case NODE_ELEMENTS:
		cJSON_ArrayForEach(el, v)
		{
			s->count++;
			for (size_t c = 0; c < n->nchildren; c++)
				apply(r, &n->children[c],
				      cJSON_GetObjectItemCaseSensitive(el, n->children[c].name));
		}
		break;
	case NODE_COUNT_TRUE:
		if (cJSON_IsTrue(v))
			s->count++;
		break;
	case NODE_COUNT_BY:
		/* an array counts each value once, however often it holds it */
		r->stamp++;
		if (!cJSON_IsArray(v)) {
			count_key(r, s, v);
			break;
		}
		cJSON_ArrayForEach(el, v)
		{
			count_key(r, s, el);
		}
		break;
	case NODE_SUM:
	case NODE_MAX:
	case NODE_NONE:
		break; /* sums and maxima from add_sum and add_max */
	}
}

int rollup_add(struct rollup *r, const cJSON *data)
{
	const struct rollup_plan *plan = r->plan;
	int64_t sum;
	int ret;

	if (!cJSON_IsObject(data))
		return -EINVAL;
	for (size_t i = 0; i < plan->nslots; i++) {
		r->slots[i].add_sum = 0;
		r->slots[i].add_has_max = false;
	}
	ret = prepare(r, &plan->root, data);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < plan->nslots; i++) {
		if (__builtin_add_overflow(r->slots[i].sum, r->slots[i].add_sum, &sum) ||
		    sum > EXACT_MAX || sum < -EXACT_MAX)
			return -EOVERFLOW;
	}

	apply(r, &plan->root, data);
	for (size_t i = 0; i < plan->nslots; i++) {
		struct rollup_slot *s = &r->slots[i];

		s->sum += s->add_sum;
		if (s->add_has_max && (!s->has_max || s->add_max > s->max)) {
			s->max = s->add_max;
			s->has_max = true;
		}
	}
	for (size_t i = 0; i < plan->nderived; i++)
		r->derived[i] += rules_count_matching(plan->derived[i].set, data);
	r->returns++;
	return 0;
}

/* ---- output ---- */

/* Adds item (may be NULL: creating it failed) to object; frees it when that fails. */
static int add_member(cJSON *object, const char *name, cJSON *item)
{
	if (item && cJSON_AddItemToObject(object, name, item))
		return 0;
	cJSON_Delete(item);
	return -ENOMEM;
}

static cJSON *node_json(const struct rollup *r, const struct rollup_node *n)
{
	const struct rollup_slot *s = &r->slots[n->slot];
	cJSON *j;

	switch (n->kind) {
	case NODE_OBJECT:
	case NODE_ELEMENTS:
		j = cJSON_CreateObject();
		if (!j)
			return NULL;
		if (n->kind == NODE_ELEMENTS &&
		    add_member(j, "count", cJSON_CreateNumber((double)s->count)) < 0)
			goto fail;
		for (size_t c = 0; c < n->nchildren; c++)
			if (add_member(j, n->children[c].name, node_json(r, &n->children[c])) < 0)
				goto fail;
		return j;
	case NODE_SUM:
		return cJSON_CreateNumber((double)s->sum);
	case NODE_MAX:
		return s->has_max ? cJSON_CreateNumber((double)s->max) : cJSON_CreateNull();
	case NODE_COUNT_TRUE:
		return cJSON_CreateNumber((double)s->count);
	case NODE_COUNT_BY:
		j = cJSON_CreateObject();
		if (!j)
			return NULL;
		for (size_t k = 0; k < s->nkeys; k++) {
			if (!s->keys[k].count)
				continue;
			if (add_member(j, s->keys[k].key,
			               cJSON_CreateNumber((double)s->keys[k].count)) < 0)
				goto fail;
		}
		return j;
	case NODE_NONE:
		break;
	}
	return NULL;
fail:
	cJSON_Delete(j);
	return NULL;
}

int rollup_to_json(const struct rollup *r, cJSON **ret_json)
{
	const struct rollup_plan *plan = r->plan;
	cJSON *root, *derived;

	root = cJSON_CreateObject();
	if (!root)
		return -ENOMEM;
	if (plan->count_returns &&
	    add_member(root, "returns", cJSON_CreateNumber((double)r->returns)) < 0)
		goto fail;
	for (size_t c = 0; c < plan->root.nchildren; c++)
		if (add_member(root, plan->root.children[c].name,
		               node_json(r, &plan->root.children[c])) < 0)
			goto fail;
	if (plan->nderived) {
		derived = cJSON_CreateObject();
		if (add_member(root, "derived", derived) < 0)
			goto fail;
		for (size_t i = 0; i < plan->nderived; i++)
			if (add_member(derived, plan->derived[i].name,
			               cJSON_CreateNumber((double)r->derived[i])) < 0)
				goto fail;
	}
	*ret_json = root;
	return 0;
fail:
	cJSON_Delete(root);
	return -ENOMEM;
}

/* ---- comparing ---- */

/* A short description of v for a message. */
static void describe(const cJSON *v, char *out, size_t len)
{
	int64_t i;
	size_t cut;

	if (cJSON_IsNumber(v)) {
		if (integer_of(v, &i) == 0)
			snprintf(out, len, "%" PRId64, i);
		else
			snprintf(out, len, "%.17g", v->valuedouble);
	} else if (cJSON_IsString(v)) {
		cut = strlen(v->valuestring);
		if (cut <= 40) {
			snprintf(out, len, "\"%s\"", v->valuestring);
			return;
		}
		cut = 37;
		while (cut > 0 && ((unsigned char)v->valuestring[cut] & 0xC0) == 0x80)
			cut--;
		snprintf(out, len, "\"%.*s...\"", (int)cut, v->valuestring);
	} else if (cJSON_IsTrue(v)) {
		snprintf(out, len, "true");
	} else if (cJSON_IsFalse(v)) {
		snprintf(out, len, "false");
	} else if (cJSON_IsNull(v)) {
		snprintf(out, len, "null");
	} else if (cJSON_IsObject(v)) {
		snprintf(out, len, "an object");
	} else if (cJSON_IsArray(v)) {
		snprintf(out, len, "an array");
	} else {
		snprintf(out, len, "an invalid value");
	}
}

struct differ {
	struct errlist *diffs;
	struct buf pointer;
	int found;
};

static int report(struct differ *d, const cJSON *expected, const cJSON *actual)
{
	char e[64], a[64];
	int r;

	if (expected)
		describe(expected, e, sizeof(e));
	if (actual)
		describe(actual, a, sizeof(a));
	if (expected && actual)
		r = errlist_add(d->diffs, ERRLIST_ERROR, d->pointer.data, "rollup",
		                "expected %s, got %s", e, a);
	else if (expected)
		r = errlist_add(d->diffs, ERRLIST_ERROR, d->pointer.data, "rollup",
		                "expected %s, missing", e);
	else
		r = errlist_add(d->diffs, ERRLIST_ERROR, d->pointer.data, "rollup",
		                "not expected, got %s", a);
	if (r < 0)
		return r;
	if (d->found < INT32_MAX)
		d->found++;
	return 0;
}

struct member {
	const cJSON *item;
	size_t pos;
};

/* By name, then by position, so that of a name given twice the first is compared. */
static int by_name(const void *a, const void *b)
{
	const struct member *x = a, *y = b;
	int c = strcmp(x->item->string, y->item->string);

	if (c)
		return c;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* The members of object, sorted; *ret NULL when there are none. Caller frees *ret. */
static int sorted_members(const cJSON *object, struct member **ret, size_t *ret_n)
{
	struct member *v;
	const cJSON *m;
	size_t n = 0;

	for (m = object->child; m; m = m->next) {
		if (!m->string)
			return -EINVAL;
		n++;
	}
	*ret = NULL;
	*ret_n = 0;
	if (!n)
		return 0;
	v = malloc(n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	n = 0;
	for (m = object->child; m; m = m->next) {
		v[n].item = m;
		v[n].pos = n;
		n++;
	}
	qsort(v, n, sizeof(*v), by_name);
	*ret = v;
	*ret_n = n;
	return 0;
}

static int diff_value(struct differ *d, const cJSON *e, const cJSON *a, int depth);

/* Compares the member or element at the pointer plus token (a name, or index i). */
static int diff_at(struct differ *d, const char *name, size_t i, const cJSON *e, const cJSON *a,
                   int depth)
{
	size_t len = d->pointer.len;
	int r;

	r = name ? json_pointer_append(&d->pointer, name)
	         : json_pointer_append_index(&d->pointer, i);
	if (r < 0)
		return r;
	if (!e || !a)
		r = report(d, e, a);
	else
		r = diff_value(d, e, a, depth + 1);
	d->pointer.len = len;
	d->pointer.data[len] = '\0';
	return r;
}

static int diff_objects(struct differ *d, const cJSON *e, const cJSON *a, int depth)
{
	struct member *ev = NULL, *av = NULL;
	size_t en = 0, an = 0, i = 0, k = 0;
	int r;

	r = sorted_members(e, &ev, &en);
	if (r == 0)
		r = sorted_members(a, &av, &an);
	while (r == 0 && (i < en || k < an)) {
		const cJSON *x = i < en ? ev[i].item : NULL, *y = k < an ? av[k].item : NULL;
		int c = !x ? 1 : !y ? -1 : strcmp(x->string, y->string);

		/* a name given twice (in a tree not from json_parse_untrusted()): the later
		 * ones are missing or extra */
		if (c == 0 && i > 0 && !strcmp(x->string, ev[i - 1].item->string))
			c = -1;
		else if (c == 0 && k > 0 && !strcmp(y->string, av[k - 1].item->string))
			c = 1;
		if (c < 0) {
			r = diff_at(d, x->string, 0, x, NULL, depth);
			i++;
		} else if (c > 0) {
			r = diff_at(d, y->string, 0, NULL, y, depth);
			k++;
		} else {
			r = diff_at(d, x->string, 0, x, y, depth);
			i++;
			k++;
		}
	}
	free(ev);
	free(av);
	return r;
}

static int diff_value(struct differ *d, const cJSON *e, const cJSON *a, int depth)
{
	const cJSON *x, *y;
	size_t i = 0;
	int r;

	if (depth > ROLLUP_DIFF_MAX_DEPTH)
		return -ELOOP;
	if ((e->type & 0xFF) != (a->type & 0xFF))
		return report(d, e, a);
	if (cJSON_IsObject(e))
		return diff_objects(d, e, a, depth);
	if (cJSON_IsArray(e)) {
		for (x = e->child, y = a->child; x || y; i++) {
			r = diff_at(d, NULL, i, x, y, depth);
			if (r < 0)
				return r;
			x = x ? x->next : NULL;
			y = y ? y->next : NULL;
		}
		return 0;
	}
	if (cJSON_IsNumber(e) && e->valuedouble == a->valuedouble)
		return 0;
	if (cJSON_IsString(e) && e->valuestring && a->valuestring &&
	    !strcmp(e->valuestring, a->valuestring))
		return 0;
	if (cJSON_IsBool(e) || cJSON_IsNull(e))
		return 0; /* same type, same value */
	return report(d, e, a);
}

int rollup_diff(const cJSON *expected, const cJSON *actual, struct errlist *diffs)
{
	struct differ d = {.diffs = diffs};
	int r;

	buf_init(&d.pointer, DIFF_POINTER_MAX);
	r = buf_puts(&d.pointer, "");
	if (r == 0)
		r = diff_value(&d, expected, actual, 0);
	buf_release(&d.pointer);
	return r < 0 ? r : d.found;
}
