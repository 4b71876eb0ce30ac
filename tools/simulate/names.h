/* Codes and names of the simulated region (GB/T 2260 division codes, Chinese names built
 * from fixed parts), so that the demo's reports read like a real bureau's. A few real
 * prefectures are known with their counties; any other code, and counties beyond the
 * known ones, get plausible made-up names. Pure functions of their arguments. */
#ifndef SIMULATE_NAMES_H
#define SIMULATE_NAMES_H

#include <stddef.h>

#include "common/macro.h"

struct rng;

#define NAMES_MAX 192 /* bytes of a name, with the NUL */
#define NAMES_DEFAULT_REGION "654200"

/* 1 when code is a 6-digit prefecture code ending in "00" (not a province's "0000"). */
int names_region_code_valid(const char *code);
/* The region's name into ret (size NAMES_MAX). */
void names_region(const char *code, char ret[static NAMES_MAX]);
/* The index-th county (0-based) of the region: its code and name. -ERANGE when the
 * region has no room for that many counties (two-digit suffixes 01..99). */
int names_county(const char *region_code, size_t index, char ret_id[static 7],
                 char ret_name[static NAMES_MAX]) WUR;

/* A township of a county, drawn from r (for school names such as "…城关镇中心小学"). */
const char *names_town(struct rng *r);
/* n (1..99) in Chinese numerals ("一", "十二", "二十"), into ret (at least 16 bytes). */
void names_numeral(int n, char ret[static 16]);

#endif
