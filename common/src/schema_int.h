/* The compiled form of a schema, shared by schema_compile.c (which builds it),
 * schema_validate.c (which only reads it) and schema.c. Not a public interface. */
#ifndef COMMON_SCHEMA_INT_H
#define COMMON_SCHEMA_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8

#include <stdbool.h>
#include <stddef.h>

#include <pcre2.h>

#include "common/macro.h"

struct cJSON;
struct schema_node;

enum schema_type_bit {
	SCHEMA_T_NULL = 1 << 0,
	SCHEMA_T_BOOLEAN = 1 << 1,
	SCHEMA_T_OBJECT = 1 << 2,
	SCHEMA_T_ARRAY = 1 << 3,
	SCHEMA_T_NUMBER = 1 << 4,
	SCHEMA_T_STRING = 1 << 5,
	SCHEMA_T_INTEGER = 1 << 6,
};

enum schema_format {
	SCHEMA_FORMAT_NONE,
	SCHEMA_FORMAT_DATE,
	SCHEMA_FORMAT_DATE_TIME,
};

/* A pattern as written (borrowed from the schema document) and compiled. */
struct schema_regex {
	const char *source;
	pcre2_code *code;
};

struct schema_named {
	const char *name; /* borrowed from the schema document */
	struct schema_node *node;
};

struct schema_pattern_prop {
	struct schema_regex re;
	struct schema_node *node;
};

struct schema_dep_required {
	const char *name;
	const struct cJSON *required; /* array of strings */
};

struct schema_list {
	struct schema_node **v;
	size_t n;
};

/* Limits absent from the schema are SIZE_MAX (max*) or 0 (min*). */
struct schema_node {
	const struct cJSON *json; /* this subschema in the schema document */
	bool is_bool;             /* true or false schema: only bool_value counts */
	bool bool_value;

	unsigned types; /* enum schema_type_bit mask, 0: any */
	const struct cJSON *enum_values;
	const struct cJSON *const_value;

	bool has_multiple_of, has_maximum, has_exclusive_maximum, has_minimum,
	        has_exclusive_minimum;
	double multiple_of, maximum, exclusive_maximum, minimum, exclusive_minimum;

	size_t max_length, min_length;
	struct schema_regex pattern; /* code NULL: none */
	enum schema_format format;

	size_t max_items, min_items;
	bool unique_items;
	struct schema_list prefix_items;
	struct schema_node *items;
	struct schema_node *contains;
	size_t min_contains, max_contains;
	struct schema_node *unevaluated_items;

	size_t max_properties, min_properties;
	const struct cJSON *required;    /* array of strings */
	struct schema_named *properties; /* sorted by name (strcmp) */
	size_t n_properties;
	struct schema_pattern_prop *pattern_properties;
	size_t n_pattern_properties;
	struct schema_node *additional_properties;
	struct schema_dep_required *dependent_required;
	size_t n_dependent_required;
	struct schema_named *dependent_schemas;
	size_t n_dependent_schemas;
	struct schema_node *property_names;
	struct schema_node *unevaluated_properties;

	struct schema_list all_of, any_of, one_of;
	struct schema_node *not_schema;
	struct schema_node *if_schema, *then_schema, *else_schema;
	struct schema_node *ref;
	const char *ref_text;

	/* An evaluation of this node needs to know which members or items its keywords
	 * and in-place subschemas evaluated (unevaluated* are present). */
	bool wants_annotations;
};

struct schema {
	struct cJSON *root; /* owned */
	struct schema_node *top;
	struct schema_node **nodes; /* every node, owned */
	size_t n_nodes;
	size_t alloc_nodes;
	pcre2_match_context *match_ctx; /* read-only once compiled */
	bool has_regex;
};

/* Compiles an ECMA-262 pattern for PCRE2 (see schema_regex.c). err receives PCRE2's
 * message. Returns 0, -EINVAL or -ENOMEM. */
int schema_regex_compile(const char *source, pcre2_code **ret_code, char *err, size_t errlen) WUR;
/* The match context with the backtracking limits; caller frees with
 * pcre2_match_context_free(). NULL when out of memory. */
pcre2_match_context *schema_regex_match_context(void);

void schema_node_free(struct schema_node *n);

#endif
