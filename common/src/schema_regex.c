/* ECMA-262 regular expressions (what JSON Schema's "pattern" means) on PCRE2.
 * PCRE2 without PCRE2_UCP already agrees on \d, \w and \b (ASCII only); the rest of the
 * differences that matter are rewritten before compiling:
 *   \s, \S          ECMA-262 counts Unicode spaces and line terminators as \s
 *   \p{Letter}      long general category names (PCRE2 knows only "L", "Lu", ...)
 *   \uD83D\uDE00    a surrogate pair escape is one code point
 *   [^] and []      "any character" and "nothing"
 *   $               matches only at the very end (PCRE2_DOLLAR_ENDONLY)
 *   \uXXXX, \u{X}   PCRE2_ALT_BSUX and PCRE2_EXTRA_ALT_BSUX
 * Known remaining difference: \S inside a character class stays ASCII-only. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "schema_int.h"
#include "common/banned.h"

/* Bounds the work of one pcre2_match(); exceeding them fails validation with -E2BIG. */
#define MATCH_LIMIT 1000000
#define DEPTH_LIMIT 10000
#define HEAP_LIMIT_KIB (16 * 1024)

/* ECMA-262 WhiteSpace and LineTerminator, as the inside of a character class. */
#define ECMA_SPACE                                                                                 \
	"\\t\\n\\u000b\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f"            \
	"\\u3000\\ufeff"

static const struct {
	const char *name;
	const char *abbr;
} categories[] = {
        {"Letter", "L"},
        {"Cased_Letter", "L&"},
        {"LC", "L&"},
        {"Uppercase_Letter", "Lu"},
        {"Lowercase_Letter", "Ll"},
        {"Titlecase_Letter", "Lt"},
        {"Modifier_Letter", "Lm"},
        {"Other_Letter", "Lo"},
        {"Mark", "M"},
        {"Combining_Mark", "M"},
        {"Nonspacing_Mark", "Mn"},
        {"Spacing_Mark", "Mc"},
        {"Enclosing_Mark", "Me"},
        {"Number", "N"},
        {"Decimal_Number", "Nd"},
        {"digit", "Nd"},
        {"Letter_Number", "Nl"},
        {"Other_Number", "No"},
        {"Punctuation", "P"},
        {"punct", "P"},
        {"Connector_Punctuation", "Pc"},
        {"Dash_Punctuation", "Pd"},
        {"Open_Punctuation", "Ps"},
        {"Close_Punctuation", "Pe"},
        {"Initial_Punctuation", "Pi"},
        {"Final_Punctuation", "Pf"},
        {"Other_Punctuation", "Po"},
        {"Symbol", "S"},
        {"Math_Symbol", "Sm"},
        {"Currency_Symbol", "Sc"},
        {"Modifier_Symbol", "Sk"},
        {"Other_Symbol", "So"},
        {"Separator", "Z"},
        {"Space_Separator", "Zs"},
        {"Line_Separator", "Zl"},
        {"Paragraph_Separator", "Zp"},
        {"Other", "C"},
        {"Control", "Cc"},
        {"cntrl", "Cc"},
        {"Format", "Cf"},
        {"Surrogate", "Cs"},
        {"Private_Use", "Co"},
        {"Unassigned", "Cn"},
};

static int hex_value(const char *s, size_t n, unsigned *ret)
{
	unsigned v = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -EINVAL;
	}
	*ret = v;
	return 0;
}

/* At "\p{" or "\P{": writes the escape with a PCRE2 name, returns bytes consumed. */
static int translate_property(const char *p, struct buf *out, size_t *ret_used)
{
	const char *open = p + 2, *close = strchr(open, '}');
	const char *name;
	size_t n;
	int r;

	if (!close) {
		*ret_used = 0;
		return 0;
	}
	name = open + 1;
	n = (size_t)(close - name);
	/* "General_Category=Letter" and "gc=Letter" mean the category */
	if (n > 17 && memcmp(name, "General_Category=", 17) == 0) {
		name += 17;
		n -= 17;
	} else if (n > 3 && memcmp(name, "gc=", 3) == 0) {
		name += 3;
		n -= 3;
	}
	for (size_t i = 0; i < ARRAY_SIZE(categories); i++) {
		if (strlen(categories[i].name) == n && memcmp(categories[i].name, name, n) == 0) {
			r = buf_printf(out, "\\%c{%s}", p[1], categories[i].abbr);
			if (r < 0)
				return r;
			*ret_used = (size_t)(close - p) + 1;
			return 0;
		}
	}
	r = buf_printf(out, "\\%c{%.*s}", p[1], (int)n, name);
	if (r < 0)
		return r;
	*ret_used = (size_t)(close - p) + 1;
	return 0;
}

static int translate(const char *src, struct buf *out)
{
	const char *p = src;
	int in_class = 0;
	int r = 0;

	while (*p && r == 0) {
		size_t used = 0;
		unsigned hi, lo;

		if (!in_class && p[0] == '[') {
			if (p[1] == ']') {
				r = buf_puts(out, "(?!)");
				p += 2;
			} else if (p[1] == '^' && p[2] == ']') {
				r = buf_puts(out, "(?s:.)");
				p += 3;
			} else {
				in_class = 1;
				r = buf_putc(out, '[');
				p++;
				if (*p == '^') {
					r = r ? r : buf_putc(out, '^');
					p++;
				}
				/* a leading ']' closes the class in ECMA-262 but not in PCRE2:
				 * the cases above took care of it */
			}
			continue;
		}
		if (in_class && p[0] == ']') {
			in_class = 0;
			r = buf_putc(out, ']');
			p++;
			continue;
		}
		if (p[0] != '\\' || !p[1]) {
			r = buf_putc(out, *p++);
			continue;
		}
		switch (p[1]) {
		case 's':
			r = buf_puts(out, in_class ? ECMA_SPACE : "[" ECMA_SPACE "]");
			p += 2;
			break;
		case 'S':
			r = buf_puts(out, in_class ? "\\S" : "[^" ECMA_SPACE "]");
			p += 2;
			break;
		case 'p':
		case 'P':
			if (p[2] != '{') {
				r = buf_append(out, p, 2);
				p += 2;
				break;
			}
			r = translate_property(p, out, &used);
			if (r == 0 && used == 0) {
				r = buf_append(out, p, 2);
				used = 2;
			}
			p += used;
			break;
		case 'u':
			/* \uD83D\uDE00: one code point */
			if (strlen(p) >= 12 && hex_value(p + 2, 4, &hi) == 0 && hi >= 0xD800 &&
			    hi <= 0xDBFF && p[6] == '\\' && p[7] == 'u' &&
			    hex_value(p + 8, 4, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
				r = buf_printf(out, "\\u{%x}",
				               0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
				p += 12;
				break;
			}
			r = buf_append(out, p, 2);
			p += 2;
			break;
		default:
			r = buf_append(out, p, 2);
			p += 2;
		}
	}
	return r;
}

int schema_regex_compile(const char *source, pcre2_code **ret_code, char *err, size_t errlen)
{
	pcre2_compile_context *cctx = NULL;
	pcre2_code *code = NULL;
	struct buf pattern;
	PCRE2_SIZE offset;
	int errcode, r;

	buf_init(&pattern, 16 * strlen(source) + 64);
	r = translate(source, &pattern);
	if (r == 0 && !pattern.data)
		r = buf_puts(&pattern, "");
	if (r < 0)
		goto fail;
	cctx = pcre2_compile_context_create(NULL);
	if (!cctx) {
		r = -ENOMEM;
		goto fail;
	}
	pcre2_set_newline(cctx, PCRE2_NEWLINE_ANY);
	pcre2_set_compile_extra_options(cctx, PCRE2_EXTRA_ALT_BSUX);
	code = pcre2_compile((PCRE2_SPTR)pattern.data, pattern.len,
	                     PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_ALT_BSUX, &errcode, &offset,
	                     cctx);
	if (!code) {
		PCRE2_UCHAR msg[256];

		if (errcode == PCRE2_ERROR_NOMEMORY || errcode == PCRE2_ERROR_HEAP_FAILED) {
			r = -ENOMEM;
			goto fail;
		}
		pcre2_get_error_message(errcode, msg, sizeof(msg));
		if (err && errlen)
			snprintf(err, errlen, "%s", (const char *)msg);
		r = -EINVAL;
		goto fail;
	}
	*ret_code = code;
	r = 0;
fail:
	pcre2_compile_context_free(cctx);
	buf_release(&pattern);
	return r;
}

pcre2_match_context *schema_regex_match_context(void)
{
	pcre2_match_context *m = pcre2_match_context_create(NULL);

	if (!m)
		return NULL;
	pcre2_set_match_limit(m, MATCH_LIMIT);
	pcre2_set_depth_limit(m, DEPTH_LIMIT);
	pcre2_set_heap_limit(m, HEAP_LIMIT_KIB);
	return m;
}
