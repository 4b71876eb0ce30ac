/* Display width of UTF-8 text: see textwidth.h. */
#include <stddef.h>
#include <stdio.h>

#include "common/textwidth.h"
#include "common/banned.h"

struct range {
	unsigned first, last;
};

/* Wide and full-width ranges (UAX #11), enough for Chinese text and its punctuation. */
static const struct range wide[] = {
        {0x1100, 0x115f},   {0x231a, 0x231b},   {0x2329, 0x232a},   {0x2e80, 0x303e},
        {0x3041, 0x33ff},   {0x3400, 0x4dbf},   {0x4e00, 0x9fff},   {0xa000, 0xa4cf},
        {0xa960, 0xa97f},   {0xac00, 0xd7a3},   {0xf900, 0xfaff},   {0xfe10, 0xfe19},
        {0xfe30, 0xfe6f},   {0xff00, 0xff60},   {0xffe0, 0xffe6},   {0x1f300, 0x1f64f},
        {0x1f900, 0x1f9ff}, {0x20000, 0x2fffd}, {0x30000, 0x3fffd},
};

/* Combining marks that take no column of their own. */
static const struct range zero[] = {
        {0x0300, 0x036f}, {0x200b, 0x200f}, {0x20d0, 0x20ff}, {0x302a, 0x302f},
        {0x3099, 0x309a}, {0xfe00, 0xfe0f}, {0xfe20, 0xfe2f},
};

static int in(const struct range *r, size_t n, unsigned cp)
{
	for (size_t i = 0; i < n; i++)
		if (cp >= r[i].first && cp <= r[i].last)
			return 1;
	return 0;
}

/* The width of the character at s, *ret_len its bytes. */
static int char_width(const unsigned char *s, size_t *ret_len)
{
	unsigned cp;
	size_t n;

	if (s[0] < 0x80) {
		*ret_len = 1;
		return s[0] < 0x20 || s[0] == 0x7f ? 0 : 1;
	}
	n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			n = 0;
	if (n == 0) {
		*ret_len = 1;
		return 1;
	}
	cp = n == 2 ? (s[0] & 0x1fu) : n == 3 ? (s[0] & 0x0fu) : (s[0] & 0x07u);
	for (size_t i = 1; i < n; i++)
		cp = cp << 6 | (s[i] & 0x3fu);
	*ret_len = n;
	if (in(zero, sizeof(zero) / sizeof(zero[0]), cp))
		return 0;
	return in(wide, sizeof(wide) / sizeof(wide[0]), cp) ? 2 : 1;
}

int text_width(const char *s)
{
	int w = 0;
	size_t n;

	for (const unsigned char *p = (const unsigned char *)s; *p; p += n)
		w += char_width(p, &n);
	return w;
}

void text_pad(FILE *out, const char *s, int width)
{
	int w = text_width(s);

	fputs(s, out);
	for (; w < width; w++)
		fputc(' ', out);
}

void text_pad_left(FILE *out, const char *s, int width)
{
	for (int w = text_width(s); w < width; w++)
		fputc(' ', out);
	fputs(s, out);
}
