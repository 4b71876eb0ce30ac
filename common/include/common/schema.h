/* JSON Schema (draft 2020-12) validation for the return forms.
 *
 * A schema is compiled once into an immutable form and then validates any number of
 * instances; schema_validate() only reads the compiled schema, so one struct schema may
 * be shared by several threads at once. Compiling resolves every $ref to a direct link
 * and rejects what would otherwise fail late or silently: unresolvable or non-local $ref
 * (there are no remote schemas), keywords with values of the wrong type, patterns that
 * do not compile, and keywords of the specification that this validator does not
 * implement ($dynamicRef, $anchor, format values other than "date" and "date-time", ...).
 * Unknown keywords (title, x-rules, x-label-zh, ...) are ignored and stay readable
 * through schema_root().
 *
 * Implemented: type, enum, const, multipleOf, maximum, exclusiveMaximum, minimum,
 * exclusiveMinimum, maxLength, minLength (in Unicode code points), pattern (ECMA-262
 * flavour on PCRE2: \d and \w are ASCII), maxItems, minItems, uniqueItems, items,
 * prefixItems, contains, minContains, maxContains, maxProperties, minProperties, required,
 * properties, patternProperties, additionalProperties, dependentRequired,
 * dependentSchemas, propertyNames, unevaluatedProperties, unevaluatedItems, allOf,
 * anyOf, oneOf, not, if/then/else, $ref, $defs, boolean schemas, and format "date" and
 * "date-time" as assertions (RFC 3339).
 *
 * Limits: schema text up to SCHEMA_MAX_TEXT bytes and SCHEMA_MAX_DEPTH levels of JSON
 * nesting; validation descends at most SCHEMA_MAX_DEPTH levels into an instance, nests
 * at most SCHEMA_MAX_EVAL_DEPTH subschema evaluations (a $ref loop ends there), and makes
 * at most SCHEMA_STEPS_BASE + SCHEMA_STEPS_PER_VALUE * (values in the instance) of them
 * (against schemas whose anyOf nest into exponential work); each pattern match has a
 * backtracking limit. */
#ifndef COMMON_SCHEMA_H
#define COMMON_SCHEMA_H

#include <stddef.h>

#include "common/macro.h"

struct cJSON;
struct errlist;
struct schema;

#define SCHEMA_MAX_TEXT (1024u * 1024)
#define SCHEMA_MAX_DEPTH 64
#define SCHEMA_MAX_EVAL_DEPTH 512
#define SCHEMA_STEPS_BASE 1000000u
#define SCHEMA_STEPS_PER_VALUE 64u

/* Compiles len bytes of schema text (strict JSON, see json_parse_untrusted()). On
 * success *ret_schema is the caller's, freed with schema_free(). On failure err (may be
 * NULL) names the problem and its place in the schema, e.g.
 * "#/properties/level/minimum: must be a number". Returns 0, -EMSGSIZE (too large),
 * -EINVAL (not JSON, or not a valid schema), -EOPNOTSUPP (valid, but uses something this
 * validator does not implement, e.g. a remote $ref) or -ENOMEM. */
int schema_compile(const char *text, size_t len, struct schema **ret_schema, char *err,
                   size_t errlen) WUR;

/* Same from a parsed tree; root stays the caller's (the schema keeps its own copy). */
int schema_compile_json(const struct cJSON *root, struct schema **ret_schema, char *err,
                        size_t errlen) WUR;

/* Same from a file; a UTF-8 byte order mark is skipped and err starts with the path.
 * Also returns the negative errno of open() or read(). */
int schema_load_file(const char *path, struct schema **ret_schema, char *err, size_t errlen) WUR;

/* Validates instance (borrowed, not modified) and adds one entry to errors (may be NULL:
 * only the verdict) per failed assertion: the instance location as a JSON Pointer, the
 * keyword, and a message such as "must be >= 0, got -1". anyOf, oneOf and not report one
 * entry for themselves, not their branches' errors.
 * Returns 0 when valid, the number of errors added (> 0) when invalid (1 when errors is
 * NULL), or a negative errno when validation could not finish: -ELOOP (nesting beyond
 * SCHEMA_MAX_DEPTH or SCHEMA_MAX_EVAL_DEPTH), -E2BIG (step or pattern match limit),
 * -ENOMEM; then errors, when given, holds an entry saying which limit was hit. */
int schema_validate(const struct schema *schema, const struct cJSON *instance,
                    struct errlist *errors) WUR;

/* The schema document, for reading unknown keywords such as x-rules, x-rollup and title.
 * Borrowed: valid until schema_free(); do not modify it. */
const struct cJSON *schema_root(const struct schema *schema);

void schema_free(struct schema *schema);

#endif
