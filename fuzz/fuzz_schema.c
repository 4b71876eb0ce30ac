/* libFuzzer target for common/schema and common/json.
 * The input is "SCHEMA \0 INSTANCE [\0 POINTER]", or only an INSTANCE when it holds no NUL.
 * The schema text is compiled, the instance parsed as untrusted JSON and validated
 * against it and against a fixed schema shaped like the return forms. Nothing may crash,
 * leak or hang, and the verdict must not depend on whether messages are collected. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/errlist.h"
#include "common/json.h"
#include "common/schema.h"
#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char form_schema[] =
        "{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\","
        " \"title\": \"incident\", \"x-rules\": [{\"left\": \"victims.female\", \"op\": \">=\"}],"
        " \"type\": \"object\", \"additionalProperties\": false,"
        " \"required\": [\"occurred_on\", \"level\", \"types\", \"victims\", \"status\"],"
        " \"$defs\": {\"count\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 100000},"
        "  \"sex\": {\"type\": \"object\", \"required\": [\"female\", \"male\"],"
        "   \"properties\": {\"female\": {\"$ref\": \"#/$defs/count\"},"
        "    \"male\": {\"$ref\": \"#/$defs/count\"}}, \"unevaluatedProperties\": false},"
        "  \"date\": {\"type\": \"string\", \"format\": \"date\","
        "   \"pattern\": \"^[0-9]{4}-[0-9]{2}-[0-9]{2}$\"}},"
        " \"properties\": {"
        "  \"incident_ref\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 64},"
        "  \"occurred_on\": {\"$ref\": \"#/$defs/date\"},"
        "  \"created_at\": {\"type\": \"string\", \"format\": \"date-time\"},"
        "  \"level\": {\"type\": \"integer\", \"enum\": [1, 2, 3]},"
        "  \"ratio\": {\"type\": \"number\", \"multipleOf\": 0.01, \"exclusiveMaximum\": 1},"
        "  \"types\": {\"type\": \"array\", \"minItems\": 1, \"maxItems\": 6, \"uniqueItems\": "
        "true,"
        "   \"items\": {\"enum\": [\"physical\", \"verbal\", \"relational\", \"cyber\"]}},"
        "  \"measures\": {\"type\": \"array\", \"contains\": {\"const\": \"education\"},"
        "   \"maxContains\": 1, \"prefixItems\": [{\"type\": \"string\"}]},"
        "  \"victims\": {\"$ref\": \"#/$defs/sex\"},"
        "  \"status\": {\"enum\": [\"open\", \"closed\"]},"
        "  \"closed_on\": {\"anyOf\": [{\"$ref\": \"#/$defs/date\"}, {\"type\": \"null\"}]},"
        "  \"summary\": {\"type\": \"string\", \"maxLength\": 500, \"pattern\": "
        "\"^\\\\S.*\\\\p{L}\"},"
        "  \"extra\": {\"type\": \"object\", \"propertyNames\": {\"pattern\": \"^x-[a-z_]+$\"},"
        "   \"patternProperties\": {\"^x-n\": {\"type\": \"number\"}},"
        "   \"dependentRequired\": {\"x-a\": [\"x-b\"]}, \"maxProperties\": 8},"
        "  \"kind\": {\"oneOf\": [{\"type\": \"string\"}, {\"type\": \"integer\"}]},"
        "  \"not_null\": {\"not\": {\"type\": \"null\"}}},"
        " \"if\": {\"properties\": {\"status\": {\"const\": \"closed\"}}},"
        " \"then\": {\"required\": [\"closed_on\"]},"
        " \"else\": {\"properties\": {\"closed_on\": {\"type\": \"null\"}}}}";

static void validate_both(const struct schema *s, const cJSON *inst)
{
	struct errlist errors;
	int quiet, loud;

	errlist_init(&errors);
	quiet = schema_validate(s, inst, NULL);
	loud = schema_validate(s, inst, &errors);
	if (quiet >= 0 && loud >= 0 && (quiet == 0) != (loud == 0))
		abort();
	if (loud > 0 && ((size_t)loud != errors.errors || errors.count == 0))
		abort();
	errlist_release(&errors);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct schema *form;
	const char *text = (const char *)data;
	const char *nul = memchr(text, '\0', size), *inst_text = text;
	size_t inst_len = size;
	char *pointer = NULL;
	struct schema *s = NULL;
	cJSON *inst = NULL;
	char err[256];

	if (!form && schema_compile(form_schema, strlen(form_schema), &form, err, sizeof(err)) < 0)
		abort();
	if (nul) {
		const char *second;

		inst_text = nul + 1;
		inst_len = size - (size_t)(inst_text - text);
		second = memchr(inst_text, '\0', inst_len);
		if (second) {
			inst_len = (size_t)(second - inst_text);
			pointer = strndup(second + 1, size - (size_t)(second + 1 - text));
			if (!pointer)
				return 0;
		}
		if (schema_compile(text, (size_t)(nul - text), &s, err, sizeof(err)) == 0 &&
		    !schema_root(s))
			abort();
	}
	if (json_parse_untrusted(inst_text, inst_len, JSON_MAX_DEPTH, &inst, err, sizeof(err)) ==
	    0) {
		validate_both(form, inst);
		if (s)
			validate_both(s, inst);
		if (pointer)
			(void)json_pointer_get(inst, pointer);
		cJSON_Delete(inst);
	}
	schema_free(s);
	free(pointer);
	return 0;
}
