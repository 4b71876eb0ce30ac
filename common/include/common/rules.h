/* The x-rules evaluator: a form's cross-field rules, as docs/FORMS-FORMAT.md ("x-rules")
 * defines them. A form's rules are compiled once from its schema into an immutable
 * struct rules, then checked against any number of documents, from any number of threads
 * at once: checking only reads the compiled rules and the document. Compiling copies
 * what it keeps, so the schema may be freed afterwards.
 * The same condition grammar counts elements for the roll-up's x-rollup-derived
 * (struct rules_condition_set).
 * Limits, each refused at compile time with a message: RULES_MAX rules, ids of
 * RULES_ID_MAX bytes, messages of RULES_MESSAGE_MAX bytes, pointers of RULES_POINTER_MAX
 * bytes, RULES_WHEN_MAX conditions per rule, RULES_SUM_TERMS_MAX terms per sum and
 * operands nested RULES_OPERAND_DEPTH deep. Checking a document takes time linear in the
 * rules times the elements they visit (unique: n log n; only comparing two objects whose
 * members come in different orders is quadratic in their size); values compared deeper
 * than RULES_VALUE_DEPTH levels make a comparison not apply, like a type mismatch. */
#ifndef COMMON_RULES_H
#define COMMON_RULES_H

#include <stddef.h>

#include "common/macro.h"

struct cJSON;
struct errlist;

#define RULES_MAX 1000
#define RULES_ID_MAX 64
#define RULES_MESSAGE_MAX 300
#define RULES_POINTER_MAX 256
#define RULES_WHEN_MAX 16
#define RULES_SUM_TERMS_MAX 64
#define RULES_OPERAND_DEPTH 8
#define RULES_VALUE_DEPTH 64

struct rules;
struct rules_condition_set;

/* Compiles the root "x-rules" array of a form schema (borrowed; NULL means no rules).
 * On -EINVAL err (may be NULL) receives what is wrong and where, e.g.
 * "x-rules[2] (\"found_le_deadline\"): unknown op \"=<\"". Returns 0, -EINVAL or -ENOMEM.
 * Caller frees *ret_rules with rules_free(). */
int rules_compile(const struct cJSON *x_rules, char *err, size_t errlen,
                  struct rules **ret_rules) WUR;
void rules_free(struct rules *rules);
/* How many rules were compiled. */
size_t rules_count(const struct rules *rules);

/* Checks data (the form's "data", borrowed) and adds one entry to errs per failing rule,
 * and inside "each" per failing element: severity from the rule's importance, keyword
 * "x-rules:<id>", pointer the rule's left pointer resolved in data ("/items/3/deadline"),
 * or the "each" element when left is not a pointer ("" outside "each"), message the
 * rule's message followed by the values, e.g. "... (1300 > 1200)". Returns the number of
 * entries added (counting those errs only counted because it was full) or -ENOMEM. */
int rules_check(const struct rules *rules, const struct cJSON *data, struct errlist *errs) WUR;

/* Compiles the "each" (optional) and "when" (optional: one condition or an array) members
 * of def, e.g. one entry of x-rollup-derived (borrowed; other members are ignored). Errors
 * as for rules_compile(), e.g. "when[1]: right: ...". Caller frees *ret_set with
 * rules_condition_set_free(). */
int rules_compile_condition_set(const struct cJSON *def, char *err, size_t errlen,
                                struct rules_condition_set **ret_set) WUR;
void rules_condition_set_free(struct rules_condition_set *set);

/* With "each": how many elements of the array (or member values of the object) at that
 * pointer in data meet every condition (0 when there is no array or object there).
 * Without: 1 when data meets every condition, else 0. A condition that does not apply
 * (null or mismatched types) is not met. */
size_t rules_count_matching(const struct rules_condition_set *set, const struct cJSON *data);

#endif
