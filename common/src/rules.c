/* The x-rules evaluator: see rules.h and docs/FORMS-FORMAT.md. */
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
#include "common/errlist.h"
#include "common/json.h"
#include "common/rules.h"
#include "common/banned.h"

/* A value shown in a message is cut to this many bytes. */
#define VALUE_TEXT_MAX 48
/* A pointer is built only this far: errlist cuts longer ones anyway. */
#define POINTER_BUILD_MAX (4 * ERRLIST_POINTER_MAX)

enum operand_kind {
	OPERAND_POINTER, /* into the document */
	OPERAND_AT,      /* into the current "each" element */
	OPERAND_LITERAL,
	OPERAND_SUM,
	OPERAND_LENGTH,
};

struct operand {
	enum operand_kind kind;
	char *pointer;         /* POINTER: "/a/b"; AT: what follows '@' ("" or "/a") */
	cJSON *literal;        /* LITERAL: owned copy */
	struct operand *terms; /* SUM: nterms; LENGTH: one */
	size_t nterms;
};

enum op {
	OP_LT,
	OP_LE,
	OP_GT,
	OP_GE,
	OP_EQ,
	OP_NE,
	OP_IN,
	OP_NOT_IN,
	OP_CONTAINS,
	OP_NOT_CONTAINS,
	OP_UNIQUE,
};

static const struct {
	const char *name;
	const char *failed; /* between the two values when the test fails */
} ops[] = {
        [OP_LT] = {"<", ">="},
        [OP_LE] = {"<=", ">"},
        [OP_GT] = {">", "<="},
        [OP_GE] = {">=", "<"},
        [OP_EQ] = {"==", "!="},
        [OP_NE] = {"!=", "=="},
        [OP_IN] = {"in", "is not one of"},
        [OP_NOT_IN] = {"not_in", "is one of"},
        [OP_CONTAINS] = {"contains", "does not contain"},
        [OP_NOT_CONTAINS] = {"not_contains", "contains"},
        [OP_UNIQUE] = {"unique", "also at"},
};

struct condition {
	enum op op;
	struct operand left;
	struct operand right; /* unused for OP_UNIQUE */
};

struct rule {
	char *id;
	char *keyword; /* "x-rules:<id>" */
	char *message;
	enum errlist_severity severity;
	char *each; /* NULL when the rule has none */
	struct condition test;
	struct condition *when;
	size_t nwhen;
};

struct rules {
	struct rule *rules;
	size_t count;
};

struct rules_condition_set {
	char *each;
	struct condition *when;
	size_t nwhen;
};

/* ---- compiling ---- */

/* Where a compile error is, for its message. */
struct cerr {
	char *err;
	size_t errlen;
	const char *where; /* "x-rules[2] (\"id\")", or "" */
};

static int PRINTF_LIKE(3, 4) cfail(const struct cerr *e, const char *part, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	if (!e->err || !e->errlen)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(e->err, e->errlen, "%s%s%s%s%s", e->where, *e->where && *part ? ": " : "", part,
	         *e->where || *part ? ": " : "", what);
	return -EINVAL;
}

static void operand_release(struct operand *o)
{
	free(o->pointer);
	cJSON_Delete(o->literal);
	for (size_t i = 0; i < o->nterms; i++)
		operand_release(&o->terms[i]);
	free(o->terms);
	memset(o, 0, sizeof(*o));
}

static void condition_release(struct condition *c)
{
	operand_release(&c->left);
	operand_release(&c->right);
}

static void conditions_free(struct condition *when, size_t n)
{
	for (size_t i = 0; i < n; i++)
		condition_release(&when[i]);
	free(when);
}

/* RFC 6901 syntax: "" or "/..." with every '~' followed by '0' or '1'. */
static bool pointer_valid(const char *p)
{
	if (*p && *p != '/')
		return false;
	for (; *p; p++)
		if (*p == '~' && p[1] != '0' && p[1] != '1')
			return false;
	return true;
}

/* p is the pointer, written as shown (with its '@', if any). */
static int check_pointer(const struct cerr *e, const char *part, const char *p, const char *shown)
{
	if (strlen(p) > RULES_POINTER_MAX)
		return cfail(e, part, "pointer longer than %d bytes", RULES_POINTER_MAX);
	if (!pointer_valid(p))
		return cfail(e, part, "malformed JSON Pointer \"%s\"", shown);
	return 0;
}

/* A string with its text (hand-built cJSON may lack it: then it is no string). */
static bool is_text(const cJSON *j)
{
	return cJSON_IsString(j) && j->valuestring;
}

static const char *json_type_name(const cJSON *j)
{
	if (cJSON_IsNull(j))
		return "null";
	if (cJSON_IsBool(j))
		return "a boolean";
	if (cJSON_IsNumber(j))
		return "a number";
	if (is_text(j))
		return "a string";
	if (cJSON_IsArray(j))
		return "an array";
	if (cJSON_IsObject(j))
		return "an object";
	return "not JSON";
}

static int compile_operand(const struct cerr *e, const char *part, const cJSON *j, bool in_each,
                           int depth, struct operand *ret);

static int compile_sum(const struct cerr *e, const char *part, const cJSON *terms, bool in_each,
                       int depth, struct operand *o)
{
	const cJSON *t;
	size_t n = 0, i = 0;
	int r;

	if (!cJSON_IsArray(terms))
		return cfail(e, part, "\"sum\" takes an array of operands");
	for (t = terms->child; t; t = t->next)
		n++;
	if (n == 0 || n > RULES_SUM_TERMS_MAX)
		return cfail(e, part, "\"sum\" takes 1 to %d operands", RULES_SUM_TERMS_MAX);
	o->terms = calloc(n, sizeof(*o->terms));
	if (!o->terms)
		return -ENOMEM;
	o->kind = OPERAND_SUM;
	o->nterms = n; /* zeroed terms release safely */
	for (t = terms->child; t; t = t->next) {
		char sub[160];

		snprintf(sub, sizeof(sub), "%s: sum[%zu]", part, i);
		r = compile_operand(e, sub, t, in_each, depth + 1, &o->terms[i]);
		if (r < 0)
			return r;
		if (o->terms[i].kind == OPERAND_LITERAL && !cJSON_IsNumber(o->terms[i].literal))
			return cfail(e, sub, "a sum adds numbers, not %s",
			             json_type_name(o->terms[i].literal));
		i++;
	}
	return 0;
}

/* On failure *ret may hold parts: the caller releases it either way. */
static int compile_operand(const struct cerr *e, const char *part, const cJSON *j, bool in_each,
                           int depth, struct operand *ret)
{
	const cJSON *inner;
	char sub[160];
	int r;

	memset(ret, 0, sizeof(*ret));
	if (depth > RULES_OPERAND_DEPTH)
		return cfail(e, part, "operands nested deeper than %d", RULES_OPERAND_DEPTH);
	if (is_text(j)) {
		const char *s = j->valuestring;

		if (s[0] == '/') {
			ret->kind = OPERAND_POINTER;
		} else if (s[0] == '@') {
			if (!in_each)
				return cfail(e, part,
				             "\"%s\" addresses an element, but there is no "
				             "\"each\"",
				             s);
			ret->kind = OPERAND_AT;
			s++;
		} else {
			return cfail(
			        e, part,
			        "bad operand \"%s\": a string operand is a JSON "
			        "Pointer (\"/...\" or \"@/...\"); write text as {\"const\": ...}",
			        s);
		}
		r = check_pointer(e, part, s, j->valuestring);
		if (r < 0)
			return r;
		ret->pointer = strdup(s);
		return ret->pointer ? 0 : -ENOMEM;
	}
	if (cJSON_IsNumber(j) || cJSON_IsBool(j) || cJSON_IsNull(j)) {
		ret->kind = OPERAND_LITERAL;
		ret->literal = cJSON_Duplicate(j, false);
		return ret->literal ? 0 : -ENOMEM;
	}
	if (!cJSON_IsObject(j))
		return cfail(e, part, "bad operand: %s; write it as {\"const\": ...}",
		             json_type_name(j));
	inner = j->child;
	if (!inner || inner->next)
		return cfail(e, part,
		             "bad operand: an object operand has exactly one member, "
		             "\"const\", \"sum\" or \"length\"");
	if (strcmp(inner->string, "const") == 0) {
		ret->kind = OPERAND_LITERAL;
		ret->literal = cJSON_Duplicate(inner, true);
		return ret->literal ? 0 : -ENOMEM;
	}
	if (strcmp(inner->string, "sum") == 0)
		return compile_sum(e, part, inner, in_each, depth, ret);
	if (strcmp(inner->string, "length") == 0) {
		ret->terms = calloc(1, sizeof(*ret->terms));
		if (!ret->terms)
			return -ENOMEM;
		ret->kind = OPERAND_LENGTH;
		ret->nterms = 1;
		snprintf(sub, sizeof(sub), "%s: length", part);
		r = compile_operand(e, sub, inner, in_each, depth + 1, &ret->terms[0]);
		if (r < 0)
			return r;
		if (ret->terms[0].kind == OPERAND_LITERAL &&
		    !cJSON_IsArray(ret->terms[0].literal) && !cJSON_IsObject(ret->terms[0].literal))
			return cfail(e, sub, "a length is of an array or object, not %s",
			             json_type_name(ret->terms[0].literal));
		if (ret->terms[0].kind == OPERAND_SUM || ret->terms[0].kind == OPERAND_LENGTH)
			return cfail(e, sub, "a length is of an array or object, not a number");
		return 0;
	}
	return cfail(e, part,
	             "bad operand: unknown member \"%s\" (use \"const\", \"sum\" or "
	             "\"length\")",
	             inner->string);
}

static bool operand_is_number(const struct operand *o)
{
	return o->kind == OPERAND_SUM || o->kind == OPERAND_LENGTH ||
	       (o->kind == OPERAND_LITERAL && cJSON_IsNumber(o->literal));
}

/* The shape checks that need no document: literals of the wrong type for the op. */
static int check_shapes(const struct cerr *e, const char *part, const struct condition *c)
{
	const struct operand *l = &c->left, *r = &c->right;

	switch (c->op) {
	case OP_LT:
	case OP_LE:
	case OP_GT:
	case OP_GE:
		for (int i = 0; i < 2; i++) {
			const struct operand *o = i ? r : l;

			if (o->kind == OPERAND_LITERAL && !cJSON_IsNumber(o->literal) &&
			    !is_text(o->literal))
				return cfail(e, part,
				             "%s: \"%s\" compares numbers or strings, not %s",
				             i ? "right" : "left", ops[c->op].name,
				             json_type_name(o->literal));
		}
		return 0;
	case OP_IN:
	case OP_NOT_IN:
		if ((r->kind == OPERAND_LITERAL && !cJSON_IsArray(r->literal)) ||
		    operand_is_number(r))
			return cfail(e, part, "right: \"%s\" needs an array on the right",
			             ops[c->op].name);
		return 0;
	case OP_CONTAINS:
	case OP_NOT_CONTAINS:
		if ((l->kind == OPERAND_LITERAL && !cJSON_IsArray(l->literal)) ||
		    operand_is_number(l))
			return cfail(e, part, "left: \"%s\" needs an array on the left",
			             ops[c->op].name);
		return 0;
	default:
		return 0;
	}
}

/* Members a rule or a condition may carry besides its own: annotations. */
static bool annotation(const char *name)
{
	return strncmp(name, "x-", 2) == 0 || strcmp(name, "$comment") == 0 ||
	       strcmp(name, "description") == 0 || strcmp(name, "title") == 0;
}

static bool name_in(const char *name, const char *const *names)
{
	for (; *names; names++)
		if (strcmp(name, *names) == 0)
			return true;
	return false;
}

static int check_members(const struct cerr *e, const char *part, const cJSON *obj,
                         const char *const *names)
{
	const cJSON *m;

	for (m = obj->child; m; m = m->next) {
		if (!name_in(m->string, names) && !annotation(m->string))
			return cfail(e, part, "unknown member \"%s\"", m->string);
	}
	return 0;
}

/* What a test is part of: "unique" is only the test of a rule with "each". */
enum test_role {
	TEST_CONDITION,
	TEST_RULE,
};

/* left, op, right: the members of a condition or rule (NULL when missing). On failure
 * *ret may hold parts: the caller releases it either way. */
static int compile_test(const struct cerr *e, const char *part, const cJSON *left, const cJSON *op,
                        const cJSON *right, bool in_each, enum test_role role,
                        struct condition *ret)
{
	char sub[160];
	size_t i;
	int r;

	memset(ret, 0, sizeof(*ret));
	if (!op)
		return cfail(e, part, "missing op");
	if (!is_text(op))
		return cfail(e, part, "op is %s, not a string", json_type_name(op));
	for (i = 0; i < ARRAY_SIZE(ops); i++)
		if (strcmp(op->valuestring, ops[i].name) == 0)
			break;
	if (i == ARRAY_SIZE(ops))
		return cfail(e, part, "unknown op \"%s\"", op->valuestring);
	ret->op = (enum op)i;
	if (ret->op == OP_UNIQUE && role == TEST_CONDITION)
		return cfail(e, part, "\"unique\" is a rule of its own, not a condition");
	if (ret->op == OP_UNIQUE && !in_each)
		return cfail(e, part, "\"unique\" without \"each\"");
	if (!left)
		return cfail(e, part, "missing left");
	if (ret->op == OP_UNIQUE && right)
		return cfail(e, part, "\"unique\" takes no right operand");
	if (ret->op != OP_UNIQUE && !right)
		return cfail(e, part, "missing right for binary op \"%s\"", ops[ret->op].name);
	snprintf(sub, sizeof(sub), "%s%sleft", part, *part ? ": " : "");
	r = compile_operand(e, sub, left, in_each, 0, &ret->left);
	if (r < 0)
		return r;
	if (right) {
		snprintf(sub, sizeof(sub), "%s%sright", part, *part ? ": " : "");
		r = compile_operand(e, sub, right, in_each, 0, &ret->right);
		if (r < 0)
			return r;
	}
	return check_shapes(e, part, ret);
}

/* A condition of "when": {"left", "op", "right"}. */
static int compile_condition(const struct cerr *e, const char *part, const cJSON *j, bool in_each,
                             struct condition *ret)
{
	static const char *const members[] = {"left", "op", "right", NULL};
	int r;

	memset(ret, 0, sizeof(*ret));
	if (!cJSON_IsObject(j))
		return cfail(e, part, "a condition is an object, not %s", json_type_name(j));
	r = check_members(e, part, j, members);
	if (r < 0)
		return r;
	return compile_test(e, part, cJSON_GetObjectItemCaseSensitive(j, "left"),
	                    cJSON_GetObjectItemCaseSensitive(j, "op"),
	                    cJSON_GetObjectItemCaseSensitive(j, "right"), in_each, TEST_CONDITION,
	                    ret);
}

/* "when": one condition or an array of them. */
static int compile_when(const struct cerr *e, const cJSON *when, bool in_each,
                        struct condition **ret_when, size_t *ret_n)
{
	struct condition *c = NULL;
	const cJSON *item;
	size_t n = 0, i = 0;
	char part[32];
	int r;

	if (!when) {
		*ret_when = NULL;
		*ret_n = 0;
		return 0;
	}
	if (cJSON_IsObject(when)) {
		n = 1;
	} else if (cJSON_IsArray(when)) {
		for (item = when->child; item; item = item->next)
			n++;
	} else {
		return cfail(e, "when", "a condition or an array of conditions, not %s",
		             json_type_name(when));
	}
	if (n > RULES_WHEN_MAX)
		return cfail(e, "when", "more than %d conditions", RULES_WHEN_MAX);
	if (n) {
		c = calloc(n, sizeof(*c));
		if (!c)
			return -ENOMEM;
	}
	if (cJSON_IsObject(when)) {
		r = compile_condition(e, "when", when, in_each, &c[0]);
		i = 1;
		if (r < 0)
			goto fail;
	} else {
		for (item = when->child; item; item = item->next) {
			snprintf(part, sizeof(part), "when[%zu]", i);
			r = compile_condition(e, part, item, in_each, &c[i++]);
			if (r < 0)
				goto fail;
		}
	}
	*ret_when = c;
	*ret_n = n;
	return 0;
fail:
	conditions_free(c, i);
	return r;
}

static int compile_each(const struct cerr *e, const cJSON *each, char **ret_each)
{
	char *copy;
	int r;

	if (!each) {
		*ret_each = NULL;
		return 0;
	}
	if (!is_text(each))
		return cfail(e, "each", "a JSON Pointer string, not %s", json_type_name(each));
	r = check_pointer(e, "each", each->valuestring, each->valuestring);
	if (r < 0)
		return r;
	copy = strdup(each->valuestring);
	if (!copy)
		return -ENOMEM;
	*ret_each = copy;
	return 0;
}

static void rule_release(struct rule *ru)
{
	free(ru->id);
	free(ru->keyword);
	free(ru->message);
	free(ru->each);
	condition_release(&ru->test);
	conditions_free(ru->when, ru->nwhen);
}

static bool id_valid(const char *id)
{
	if (!*id)
		return false;
	for (; *id; id++)
		if (!((*id >= 'a' && *id <= 'z') || (*id >= '0' && *id <= '9') || *id == '_'))
			return false;
	return true;
}

/* On failure *ru may hold parts: the caller releases it either way. */
static int compile_rule(struct cerr *e, const cJSON *j, const struct rule *done, size_t ndone,
                        struct rule *ru)
{
	static const char *const members[] = {"id",   "left",       "op",      "right", "when",
	                                      "each", "importance", "message", NULL};
	const cJSON *id, *imp, *msg;
	struct buf kw;
	int r;

	memset(ru, 0, sizeof(*ru));
	if (!cJSON_IsObject(j))
		return cfail(e, "", "a rule is an object, not %s", json_type_name(j));
	id = cJSON_GetObjectItemCaseSensitive(j, "id");
	if (!id)
		return cfail(e, "", "missing id");
	if (!is_text(id))
		return cfail(e, "", "id is %s, not a string", json_type_name(id));
	if (strlen(id->valuestring) > RULES_ID_MAX)
		return cfail(e, "", "id longer than %d bytes", RULES_ID_MAX);
	if (!id_valid(id->valuestring))
		return cfail(e, "", "bad id \"%s\": only a-z, 0-9 and _", id->valuestring);
	for (size_t i = 0; i < ndone; i++)
		if (strcmp(done[i].id, id->valuestring) == 0)
			return cfail(e, "", "duplicate id \"%s\" (also x-rules[%zu])",
			             id->valuestring, i);
	r = check_members(e, "", j, members);
	if (r < 0)
		return r;

	ru->id = strdup(id->valuestring);
	if (!ru->id)
		return -ENOMEM;
	buf_init(&kw, RULES_ID_MAX + 16);
	r = buf_printf(&kw, "x-rules:%s", ru->id);
	if (r < 0) {
		buf_release(&kw);
		return r;
	}
	ru->keyword = buf_detach(&kw, NULL);

	msg = cJSON_GetObjectItemCaseSensitive(j, "message");
	if (!msg)
		return cfail(e, "", "missing message");
	if (!is_text(msg) || !*msg->valuestring)
		return cfail(e, "", "message is not a non-empty string");
	if (strlen(msg->valuestring) > RULES_MESSAGE_MAX)
		return cfail(e, "", "message longer than %d bytes", RULES_MESSAGE_MAX);
	ru->message = strdup(msg->valuestring);
	if (!ru->message)
		return -ENOMEM;

	imp = cJSON_GetObjectItemCaseSensitive(j, "importance");
	ru->severity = ERRLIST_ERROR;
	if (imp) {
		if (is_text(imp) && strcmp(imp->valuestring, "warning") == 0)
			ru->severity = ERRLIST_WARNING;
		else if (!is_text(imp) || strcmp(imp->valuestring, "error") != 0)
			return cfail(e, "",
			             "unknown importance %s%s%s (use \"error\" or "
			             "\"warning\")",
			             is_text(imp) ? "\"" : "",
			             is_text(imp) ? imp->valuestring : json_type_name(imp),
			             is_text(imp) ? "\"" : "");
	}

	r = compile_each(e, cJSON_GetObjectItemCaseSensitive(j, "each"), &ru->each);
	if (r < 0)
		return r;
	r = compile_when(e, cJSON_GetObjectItemCaseSensitive(j, "when"), ru->each != NULL,
	                 &ru->when, &ru->nwhen);
	if (r < 0)
		return r;
	return compile_test(e, "", cJSON_GetObjectItemCaseSensitive(j, "left"),
	                    cJSON_GetObjectItemCaseSensitive(j, "op"),
	                    cJSON_GetObjectItemCaseSensitive(j, "right"), ru->each != NULL,
	                    TEST_RULE, &ru->test);
}

int rules_compile(const cJSON *x_rules, char *err, size_t errlen, struct rules **ret_rules)
{
	struct rules *rs;
	struct cerr e = {.err = err, .errlen = errlen, .where = "x-rules"};
	const cJSON *j;
	size_t n = 0;
	int r;

	if (x_rules && !cJSON_IsArray(x_rules))
		return cfail(&e, "", "an array of rules, not %s", json_type_name(x_rules));
	for (j = x_rules ? x_rules->child : NULL; j; j = j->next)
		n++;
	if (n > RULES_MAX)
		return cfail(&e, "", "more than %d rules", RULES_MAX);
	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return -ENOMEM;
	if (n) {
		rs->rules = calloc(n, sizeof(*rs->rules));
		if (!rs->rules) {
			r = -ENOMEM;
			goto fail;
		}
	}
	for (j = x_rules ? x_rules->child : NULL; j; j = j->next) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
		char where[RULES_ID_MAX + 40];

		if (is_text(id))
			snprintf(where, sizeof(where), "x-rules[%zu] (\"%.*s\")", rs->count,
			         RULES_ID_MAX, id->valuestring);
		else
			snprintf(where, sizeof(where), "x-rules[%zu]", rs->count);
		e.where = where;
		r = compile_rule(&e, j, rs->rules, rs->count, &rs->rules[rs->count]);
		rs->count++; /* so that rules_free() releases the partial rule too */
		if (r < 0)
			goto fail;
	}
	*ret_rules = rs;
	return 0;
fail:
	if (r == -ENOMEM && err && errlen)
		snprintf(err, errlen, "out of memory compiling x-rules");
	rules_free(rs);
	return r;
}

void rules_free(struct rules *rs)
{
	if (!rs)
		return;
	for (size_t i = 0; i < rs->count; i++)
		rule_release(&rs->rules[i]);
	free(rs->rules);
	free(rs);
}

size_t rules_count(const struct rules *rs)
{
	return rs ? rs->count : 0;
}

int rules_compile_condition_set(const cJSON *def, char *err, size_t errlen,
                                struct rules_condition_set **ret_set)
{
	struct cerr e = {.err = err, .errlen = errlen, .where = ""};
	struct rules_condition_set *set;
	int r;

	if (!cJSON_IsObject(def))
		return cfail(&e, "", "a condition set is an object, not %s", json_type_name(def));
	set = calloc(1, sizeof(*set));
	if (!set)
		return -ENOMEM;
	r = compile_each(&e, cJSON_GetObjectItemCaseSensitive(def, "each"), &set->each);
	if (r < 0)
		goto fail;
	r = compile_when(&e, cJSON_GetObjectItemCaseSensitive(def, "when"), set->each != NULL,
	                 &set->when, &set->nwhen);
	if (r < 0)
		goto fail;
	*ret_set = set;
	return 0;
fail:
	if (r == -ENOMEM && err && errlen)
		snprintf(err, errlen, "out of memory compiling conditions");
	rules_condition_set_free(set);
	return r;
}

void rules_condition_set_free(struct rules_condition_set *set)
{
	if (!set)
		return;
	free(set->each);
	conditions_free(set->when, set->nwhen);
	free(set);
}

/* ---- values ---- */

/* The text of a string node, "" when it has none. */
static const char *str_of(const cJSON *j)
{
	return j->valuestring ? j->valuestring : "";
}

enum val_kind {
	VAL_NULL,   /* null, or nothing there */
	VAL_NUMBER, /* num */
	VAL_JSON,   /* json: a string, boolean, array or object */
};

struct val {
	enum val_kind kind;
	double num;
	const cJSON *json;
};

/* The outcome of a test: a null or a type mismatch makes it not apply. */
enum outcome {
	OUTCOME_FALSE,
	OUTCOME_TRUE,
	OUTCOME_NA,
};

/* What operands are evaluated against. */
struct scope {
	const cJSON *data;
	const cJSON *elem; /* the current "each" element, NULL outside */
};

static struct val val_of(const cJSON *j)
{
	struct val v = {.kind = VAL_NULL};

	if (!j || cJSON_IsNull(j) || cJSON_IsInvalid(j) || cJSON_IsRaw(j) ||
	    (cJSON_IsString(j) && !j->valuestring))
		return v;
	if (cJSON_IsNumber(j)) {
		v.kind = VAL_NUMBER;
		v.num = j->valuedouble;
		return v;
	}
	v.kind = VAL_JSON;
	v.json = j;
	return v;
}

static size_t member_count(const cJSON *j)
{
	size_t n = 0;

	for (const cJSON *c = j->child; c; c = c->next)
		n++;
	return n;
}

static struct val eval_operand(const struct operand *o, const struct scope *s)
{
	struct val v = {.kind = VAL_NULL}, t;

	switch (o->kind) {
	case OPERAND_POINTER:
		return val_of(json_pointer_get(s->data, o->pointer));
	case OPERAND_AT:
		return val_of(s->elem ? json_pointer_get(s->elem, o->pointer) : NULL);
	case OPERAND_LITERAL:
		return val_of(o->literal);
	case OPERAND_SUM:
		v.kind = VAL_NUMBER;
		v.num = 0;
		for (size_t i = 0; i < o->nterms; i++) {
			t = eval_operand(&o->terms[i], s);
			if (t.kind != VAL_NUMBER)
				return (struct val){.kind = VAL_NULL};
			v.num += t.num;
		}
		return v;
	case OPERAND_LENGTH:
		t = eval_operand(&o->terms[0], s);
		if (t.kind == VAL_JSON && (cJSON_IsArray(t.json) || cJSON_IsObject(t.json))) {
			v.kind = VAL_NUMBER;
			v.num = (double)member_count(t.json);
		}
		return v;
	}
	return v;
}

/* 1 equal, 0 not, -1 nested too deep to tell. JSON equality: numbers by value, objects
 * regardless of member order. */
static int json_equal(const cJSON *a, const cJSON *b, int depth)
{
	const cJSON *x, *y;
	int r;

	if (depth > RULES_VALUE_DEPTH)
		return -1;
	if ((a->type & 0xFF) != (b->type & 0xFF))
		return 0;
	if (cJSON_IsNumber(a))
		return a->valuedouble == b->valuedouble;
	if (cJSON_IsString(a))
		return strcmp(str_of(a), str_of(b)) == 0;
	if (cJSON_IsArray(a)) {
		for (x = a->child, y = b->child; x && y; x = x->next, y = y->next) {
			r = json_equal(x, y, depth + 1);
			if (r != 1)
				return r;
		}
		return !x && !y;
	}
	if (cJSON_IsObject(a)) {
		if (member_count(a) != member_count(b))
			return 0;
		/* Same order is the common case: then each lookup is one step. */
		for (x = a->child, y = b->child; x; x = x->next, y = y ? y->next : NULL) {
			const cJSON *m = y && strcmp(x->string, y->string) == 0
			                         ? y
			                         : cJSON_GetObjectItemCaseSensitive(b, x->string);

			if (!m)
				return 0;
			r = json_equal(x, m, depth + 1);
			if (r != 1)
				return r;
		}
		return 1;
	}
	return 1; /* true, false, null */
}

static int val_equal(const struct val *a, const struct val *b)
{
	if (a->kind != b->kind)
		return 0;
	if (a->kind == VAL_NULL)
		return 1;
	if (a->kind == VAL_NUMBER)
		return a->num == b->num;
	return json_equal(a->json, b->json, 1);
}

/* 1 when v equals an element of the array arr, 0 when none does, -1 when that cannot be
 * told (an element nested too deep). */
static int element_of(const struct val *v, const cJSON *arr)
{
	bool unsure = false;

	for (const cJSON *c = arr->child; c; c = c->next) {
		struct val e = val_of(c);
		int r = val_equal(v, &e);

		if (r == 1)
			return 1;
		if (r < 0)
			unsure = true;
	}
	return unsure ? -1 : 0;
}

static enum outcome outcome_of(bool b)
{
	return b ? OUTCOME_TRUE : OUTCOME_FALSE;
}

static enum outcome compare(enum op op, const struct val *l, const struct val *r)
{
	int c, e;

	switch (op) {
	case OP_LT:
	case OP_LE:
	case OP_GT:
	case OP_GE:
		if (l->kind == VAL_NUMBER && r->kind == VAL_NUMBER) {
			if (isnan(l->num) || isnan(r->num))
				return OUTCOME_NA;
			c = l->num < r->num ? -1 : l->num > r->num;
		} else if (l->kind == VAL_JSON && r->kind == VAL_JSON && is_text(l->json) &&
		           is_text(r->json)) {
			c = strcmp(l->json->valuestring, r->json->valuestring);
		} else {
			return OUTCOME_NA;
		}
		if (op == OP_LT)
			return outcome_of(c < 0);
		if (op == OP_LE)
			return outcome_of(c <= 0);
		if (op == OP_GT)
			return outcome_of(c > 0);
		return outcome_of(c >= 0);
	case OP_EQ:
	case OP_NE:
		e = val_equal(l, r);
		if (e < 0)
			return OUTCOME_NA;
		return outcome_of((e == 1) == (op == OP_EQ));
	case OP_IN:
	case OP_NOT_IN:
		if (r->kind != VAL_JSON || !cJSON_IsArray(r->json))
			return OUTCOME_NA;
		e = element_of(l, r->json);
		if (e < 0)
			return OUTCOME_NA;
		return outcome_of((e == 1) == (op == OP_IN));
	case OP_CONTAINS:
	case OP_NOT_CONTAINS:
		if (l->kind != VAL_JSON || !cJSON_IsArray(l->json))
			return OUTCOME_NA;
		e = element_of(r, l->json);
		if (e < 0)
			return OUTCOME_NA;
		return outcome_of((e == 1) == (op == OP_CONTAINS));
	case OP_UNIQUE:
		break;
	}
	return OUTCOME_NA;
}

static enum outcome eval_condition(const struct condition *c, const struct scope *s,
                                   struct val *ret_l, struct val *ret_r)
{
	*ret_l = eval_operand(&c->left, s);
	*ret_r = eval_operand(&c->right, s);
	return compare(c->op, ret_l, ret_r);
}

/* Every condition holds; one that does not apply does not hold. */
static bool conditions_hold(const struct condition *when, size_t n, const struct scope *s)
{
	struct val l, r;

	for (size_t i = 0; i < n; i++)
		if (eval_condition(&when[i], s, &l, &r) != OUTCOME_TRUE)
			return false;
	return true;
}

/* ---- messages ---- */

static int render_number(struct buf *b, double d)
{
	char tmp[40];

	if (d == 0)
		return buf_puts(b, "0");
	if (isfinite(d) && d == floor(d) && fabs(d) < 1e15)
		return buf_printf(b, "%.0f", d);
	snprintf(tmp, sizeof(tmp), "%.15g", d);
	if (strtod(tmp, NULL) != d)
		snprintf(tmp, sizeof(tmp), "%.17g", d);
	return buf_puts(b, tmp);
}

/* JSON-ish text of j; fails with -EMSGSIZE once b is full, which also bounds the
 * recursion (every level writes a byte first). */
static int render_json(struct buf *b, const cJSON *j)
{
	const char *sep = "";
	int r;

	if (cJSON_IsNumber(j))
		return render_number(b, j->valuedouble);
	if (cJSON_IsTrue(j))
		return buf_puts(b, "true");
	if (cJSON_IsFalse(j))
		return buf_puts(b, "false");
	if (cJSON_IsString(j)) {
		r = buf_putc(b, '"');
		for (const unsigned char *s = (const unsigned char *)str_of(j); r == 0 && *s; s++) {
			if (*s == '"' || *s == '\\')
				r = buf_printf(b, "\\%c", *s);
			else if (*s < 0x20)
				r = buf_printf(b, "\\u%04x", *s);
			else
				r = buf_putc(b, (char)*s);
		}
		return r < 0 ? r : buf_putc(b, '"');
	}
	if (cJSON_IsArray(j) || cJSON_IsObject(j)) {
		r = buf_putc(b, cJSON_IsArray(j) ? '[' : '{');
		for (const cJSON *c = j->child; r == 0 && c; c = c->next) {
			r = buf_puts(b, sep);
			if (r == 0 && cJSON_IsObject(j)) {
				cJSON key = {.type = cJSON_String, .valuestring = c->string};

				r = render_json(b, &key);
				if (r == 0)
					r = buf_puts(b, ": ");
			}
			if (r == 0)
				r = render_json(b, c);
			sep = ", ";
		}
		return r < 0 ? r : buf_putc(b, cJSON_IsArray(j) ? ']' : '}');
	}
	return buf_puts(b, "null");
}

/* Cuts the text in b to at most max bytes (max > 3) ending in "...", at a character
 * boundary. */
static int cut_text(struct buf *b, size_t max)
{
	if (b->len > max - 3)
		b->len = max - 3;
	while (b->len > 0 && ((unsigned char)b->data[b->len] & 0xC0) == 0x80)
		b->len--;
	if (b->data)
		b->data[b->len] = '\0';
	return buf_puts(b, "...");
}

/* v as text of at most VALUE_TEXT_MAX bytes. */
static int render_val(struct buf *b, const struct val *v)
{
	int r;

	if (v->kind == VAL_NULL)
		r = buf_puts(b, "null");
	else if (v->kind == VAL_NUMBER)
		r = render_number(b, v->num);
	else
		r = render_json(b, v->json);
	return r == -EMSGSIZE ? cut_text(b, VALUE_TEXT_MAX) : r;
}

/* Appends s (escaped as one reference token when token is true), only while b is short
 * enough for errlist to keep it; a long s is cut and errlist marks the cut with "...". */
static int pointer_cat(struct buf *b, const char *s, bool token)
{
	char cut[ERRLIST_POINTER_MAX + 2];
	size_t n;

	if (b->len > ERRLIST_POINTER_MAX)
		return 0;
	n = strnlen(s, sizeof(cut) - 1);
	if (!token)
		return buf_append(b, s, n);
	memcpy(cut, s, n);
	cut[n] = '\0';
	return json_pointer_append(b, cut);
}

/* The pointer of the element at index i (its member name when it has one) of the
 * "each" collection. */
static int element_pointer(struct buf *b, const char *each, const cJSON *elem, size_t i)
{
	int r = pointer_cat(b, each, false);

	if (r < 0 || b->len > ERRLIST_POINTER_MAX)
		return r;
	if (elem->string)
		return pointer_cat(b, elem->string, true);
	return json_pointer_append_index(b, i);
}

/* Where an error of the rule points: left's pointer, else the element, else the root. */
static int error_pointer(struct buf *b, const struct rule *ru, const cJSON *elem, size_t i)
{
	int r;

	if (ru->test.left.kind == OPERAND_POINTER)
		return pointer_cat(b, ru->test.left.pointer, false);
	if (!elem)
		return 0;
	r = element_pointer(b, ru->each, elem, i);
	if (r == 0 && ru->test.left.kind == OPERAND_AT)
		r = pointer_cat(b, ru->test.left.pointer, false);
	return r;
}

/* One failure; right_text, when not NULL, replaces the right value. */
static int report(struct errlist *errs, const struct rule *ru, const cJSON *elem, size_t i,
                  const struct val *l, const struct val *r, const char *right_text)
{
	struct buf ptr, lt, rt;
	int ret = 0;

	if (errs->count >= ERRLIST_MAX) /* only counted: spare the formatting */
		return errlist_add(errs, ru->severity, "", ru->keyword, "%s", ru->message);
	buf_init(&ptr, POINTER_BUILD_MAX);
	buf_init(&lt, VALUE_TEXT_MAX);
	buf_init(&rt, VALUE_TEXT_MAX);
	ret = error_pointer(&ptr, ru, elem, i);
	if (ret == 0)
		ret = render_val(&lt, l);
	if (ret == 0)
		ret = right_text ? 0 : render_val(&rt, r);
	if (ret == 0)
		ret = errlist_add(errs, ru->severity, ptr.data ? ptr.data : "", ru->keyword,
		                  "%s (%s %s %s)", ru->message, lt.data, ops[ru->test.op].failed,
		                  right_text ? right_text : rt.data);
	buf_release(&ptr);
	buf_release(&lt);
	buf_release(&rt);
	return ret;
}

/* ---- checking ---- */

static uint64_t mix64(uint64_t x)
{
	/* splitmix64's finalizer */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static uint64_t hash_bytes(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return mix64(h);
}

static uint64_t hash_number(double d)
{
	uint64_t bits;

	if (d == 0)
		d = 0; /* -0 == 0 */
	memcpy(&bits, &d, sizeof(bits));
	return mix64(bits ^ 0x1111);
}

/* A hash that agrees with json_equal(): equal values hash alike. false when nested too
 * deep to tell. */
static bool hash_json(const cJSON *j, int depth, uint64_t *ret)
{
	uint64_t h, sub, sum = 0;

	if (depth > RULES_VALUE_DEPTH)
		return false;
	if (cJSON_IsNumber(j)) {
		h = hash_number(j->valuedouble);
	} else if (cJSON_IsString(j)) {
		h = hash_bytes(str_of(j));
	} else if (cJSON_IsArray(j)) {
		h = 0xa11a7;
		for (const cJSON *c = j->child; c; c = c->next) {
			if (!hash_json(c, depth + 1, &sub))
				return false;
			h = mix64(h * 31 + sub);
		}
	} else if (cJSON_IsObject(j)) {
		/* a sum does not depend on member order */
		for (const cJSON *c = j->child; c; c = c->next) {
			if (!hash_json(c, depth + 1, &sub))
				return false;
			sum += mix64(hash_bytes(c->string) ^ (sub * 0x9e3779b97f4a7c15ULL));
		}
		h = mix64(sum ^ 0x0b1ec7);
	} else {
		h = mix64((uint64_t)(j->type & 0xFF) + 0x5eed);
	}
	*ret = h;
	return true;
}

struct unique_item {
	uint64_t hash;
	size_t index;  /* the element's index in the collection */
	size_t order;  /* position in the items array */
	size_t dup_of; /* order of the first equal item, or SIZE_MAX */
	const cJSON *elem;
	struct val v;
};

static int cmp_unique(const void *a, const void *b)
{
	const struct unique_item *x = *(const struct unique_item *const *)a;
	const struct unique_item *y = *(const struct unique_item *const *)b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* The left values of the elements meeting "when" (nulls left out: missing values are the
 * schema's business) must be pairwise distinct. Sorting by hash finds equal values in
 * n log n; each later duplicate is reported and points at the first. */
static int check_unique(const struct rule *ru, const cJSON *data, const cJSON *coll,
                        struct errlist *errs)
{
	struct unique_item *items = NULL, **sorted = NULL;
	struct scope s = {.data = data};
	size_t n = 0, cap = member_count(coll), i = 0;
	int found = 0, r = 0;

	if (cap == 0)
		return 0;
	items = calloc(cap, sizeof(*items));
	sorted = calloc(cap, sizeof(*sorted));
	if (!items || !sorted) {
		r = -ENOMEM;
		goto fail;
	}
	for (const cJSON *el = coll->child; el; el = el->next, i++) {
		struct unique_item *it = &items[n];

		s.elem = el;
		if (!conditions_hold(ru->when, ru->nwhen, &s))
			continue;
		it->v = eval_operand(&ru->test.left, &s);
		if (it->v.kind == VAL_NULL)
			continue;
		if (it->v.kind == VAL_NUMBER)
			it->hash = hash_number(it->v.num);
		else if (!hash_json(it->v.json, 1, &it->hash))
			continue;
		it->index = i;
		it->order = n;
		it->dup_of = SIZE_MAX;
		it->elem = el;
		sorted[n] = it;
		n++;
	}
	qsort(sorted, n, sizeof(*sorted), cmp_unique);
	for (size_t g = 0; g < n;) {
		size_t end = g + 1;

		while (end < n && sorted[end]->hash == sorted[g]->hash)
			end++;
		/* within a group of equal hashes, in document order */
		for (size_t k = g + 1; k < end; k++)
			for (size_t m = g; m < k; m++)
				if (sorted[m]->dup_of == SIZE_MAX &&
				    val_equal(&sorted[m]->v, &sorted[k]->v) == 1) {
					sorted[k]->dup_of = sorted[m]->order;
					break;
				}
		g = end;
	}
	for (size_t k = 0; k < n; k++) {
		const struct unique_item *it = &items[k], *first;
		struct buf at;

		if (it->dup_of == SIZE_MAX)
			continue;
		first = &items[it->dup_of];
		buf_init(&at, POINTER_BUILD_MAX);
		r = errs->count < ERRLIST_MAX ? error_pointer(&at, ru, first->elem, first->index)
		                              : 0;
		if (r == 0 && at.len > 2 * VALUE_TEXT_MAX)
			r = cut_text(&at, 2 * VALUE_TEXT_MAX);
		if (r == 0)
			r = report(errs, ru, it->elem, it->index, &it->v, NULL,
			           at.data ? at.data : "");
		buf_release(&at);
		if (r < 0)
			goto fail;
		if (found < INT_MAX)
			found++;
	}
	r = found;
fail:
	free(items);
	free(sorted);
	return r;
}

/* Returns the failures added, or -ENOMEM. */
static int check_rule(const struct rule *ru, const cJSON *data, struct errlist *errs)
{
	struct scope s = {.data = data};
	const cJSON *coll;
	struct val l, r;
	size_t i = 0;
	int found = 0, ret;

	if (!ru->each) {
		if (!conditions_hold(ru->when, ru->nwhen, &s) ||
		    eval_condition(&ru->test, &s, &l, &r) != OUTCOME_FALSE)
			return 0;
		ret = report(errs, ru, NULL, 0, &l, &r, NULL);
		return ret < 0 ? ret : 1;
	}
	coll = json_pointer_get(data, ru->each);
	if (!coll || !(cJSON_IsArray(coll) || cJSON_IsObject(coll)))
		return 0;
	if (ru->test.op == OP_UNIQUE)
		return check_unique(ru, data, coll, errs);
	for (const cJSON *el = coll->child; el; el = el->next, i++) {
		s.elem = el;
		if (!conditions_hold(ru->when, ru->nwhen, &s) ||
		    eval_condition(&ru->test, &s, &l, &r) != OUTCOME_FALSE)
			continue;
		ret = report(errs, ru, el, i, &l, &r, NULL);
		if (ret < 0)
			return ret;
		if (found < INT_MAX)
			found++;
	}
	return found;
}

int rules_check(const struct rules *rs, const cJSON *data, struct errlist *errs)
{
	int found = 0, r;

	for (size_t i = 0; rs && i < rs->count; i++) {
		r = check_rule(&rs->rules[i], data, errs);
		if (r < 0)
			return r;
		found = r > INT_MAX - found ? INT_MAX : found + r;
	}
	return found;
}

size_t rules_count_matching(const struct rules_condition_set *set, const cJSON *data)
{
	struct scope s = {.data = data};
	const cJSON *coll;
	size_t n = 0;

	if (!set->each)
		return conditions_hold(set->when, set->nwhen, &s) ? 1 : 0;
	coll = json_pointer_get(data, set->each);
	if (!coll || !(cJSON_IsArray(coll) || cJSON_IsObject(coll)))
		return 0;
	for (const cJSON *el = coll->child; el; el = el->next) {
		s.elem = el;
		if (conditions_hold(set->when, set->nwhen, &s))
			n++;
	}
	return n;
}
