/* How many terminal columns a UTF-8 string takes, so that tables of Chinese school names
 * line up: East Asian wide and full-width characters (UAX #11 "W" and "F": CJK ideographs,
 * kana, Hangul, full-width forms) take two columns, combining marks none, everything
 * else one. Decided by code point, not by the locale, so the output does not depend on
 * the environment. Bytes that are not valid UTF-8 count one column each. Thread-safe. */
#ifndef COMMON_TEXTWIDTH_H
#define COMMON_TEXTWIDTH_H

#include <stdio.h>

/* The display width of s. */
int text_width(const char *s);

/* Prints s to out padded with spaces to width columns (nothing added when it is wider). */
void text_pad(FILE *out, const char *s, int width);
/* The same with the spaces before s (right-aligned, for numbers). */
void text_pad_left(FILE *out, const char *s, int width);

#endif
