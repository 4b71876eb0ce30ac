/* The simulated region: its counties and their schools, each with a type, an enrolment,
 * optional opening and closing dates and a behaviour profile, all drawn from the seed.
 * Saved as DIR/region.json by `simulate generate` and read back by `simulate run`.
 * A struct region is read-only once built or loaded: threads may share it. */
#ifndef SIMULATE_REGION_H
#define SIMULATE_REGION_H

#include <stddef.h>
#include <stdint.h>

#include "names.h"
#include "common/datetime.h"
#include "common/macro.h"

#define REGION_COUNTIES_MAX 99
#define REGION_SCHOOLS_PER_COUNTY_MAX 9999
#define REGION_FILE_MAX (256u * 1024 * 1024)
#define REGION_URL_MAX 512

enum school_type {
	SCHOOL_PRIMARY,
	SCHOOL_JUNIOR,
	SCHOOL_SENIOR,
	SCHOOL_NINE_YEAR,
};

enum school_profile {
	PROFILE_DILIGENT, /* files on time, now and then misses a return */
	PROFILE_LATE,     /* often files after the due date (before the period locks) */
	PROFILE_SILENT,   /* never files anything */
};

struct sim_county {
	char id[7];
	char name[NAMES_MAX];
	char hub[REGION_URL_MAX]; /* the county hub's base URL ("" until generate sets it) */
};

struct sim_school {
	char id[11];
	size_t county; /* index into region.counties */
	char name[NAMES_MAX];
	enum school_type type;
	long enrolled;
	struct date opened; /* first open day; year 0: open before the campaign */
	struct date closed; /* last open day; year 0: stays open */
	enum school_profile profile;
};

struct region {
	uint64_t seed;
	char code[7];
	char name[NAMES_MAX];
	struct sim_county *counties;
	size_t county_count;
	struct sim_school *schools; /* grouped by county, in order */
	size_t school_count;
};

/* Builds the region code (see names.h) with counties counties of per_county schools each,
 * drawn from seed. Caller releases with region_release. -EINVAL for a bad code or count
 * (err says why), -ENOMEM. */
int region_build(struct region *ret, uint64_t seed, const char *code, size_t counties,
                 size_t per_county, char *err, size_t errlen) WUR;
void region_release(struct region *r);

/* Writes r as JSON to path (durably, atomically). Negative errno. */
int region_save(const struct region *r, const char *path) WUR;
/* Reads what region_save wrote. -EINVAL (err says why), or the errors of fileio_read. */
int region_load(struct region *ret, const char *path, char *err, size_t errlen) WUR;

/* "primary", "junior", "senior", "nine_year" (the roster's type column). */
const char *school_type_id(enum school_type t);
/* "diligent", "late", "silent". */
const char *school_profile_id(enum school_profile p);

/* 1 when school s is open on at least one day of [start, end]. */
int school_open_during(const struct sim_school *s, const struct date *start,
                       const struct date *end);
/* 1 when school s is open on day d. */
int school_open_on(const struct sim_school *s, const struct date *d);

#endif
