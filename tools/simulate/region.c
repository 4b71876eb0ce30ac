/* The simulated region: see region.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "region.h"
#include "rng.h"
#include "common/buf.h"
#include "common/fileio.h"
#include "common/json.h"
#include "common/banned.h"

#define STREAM_COUNTY 0x100000000ULL /* rng streams of counties: STREAM_COUNTY + index */
#define SERIAL_MAX 99999
#define SERIAL_STRIDE 10007 /* prime, coprime to SERIAL_MAX: distinct serials per county */

static const char *const type_ids[] = {
        [SCHOOL_PRIMARY] = "primary",
        [SCHOOL_JUNIOR] = "junior",
        [SCHOOL_SENIOR] = "senior",
        [SCHOOL_NINE_YEAR] = "nine_year",
};
static const char *const profile_ids[] = {
        [PROFILE_DILIGENT] = "diligent",
        [PROFILE_LATE] = "late",
        [PROFILE_SILENT] = "silent",
};

const char *school_type_id(enum school_type t)
{
	return type_ids[t];
}

const char *school_profile_id(enum school_profile p)
{
	return profile_ids[p];
}

int school_open_during(const struct sim_school *s, const struct date *start, const struct date *end)
{
	if (s->opened.year && date_compare(&s->opened, end) > 0)
		return 0;
	if (s->closed.year && date_compare(&s->closed, start) < 0)
		return 0;
	return 1;
}

int school_open_on(const struct sim_school *s, const struct date *d)
{
	return school_open_during(s, d, d);
}

/* Names already given in one county. */
static int name_used(const struct sim_school *first, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(first[i].name, name) == 0)
			return 1;
	return 0;
}

struct numbering {
	int primary, junior, senior, nine;
};

/* A name for school s, the n-th of its county (first[0..n-1] already named). */
static void name_school(struct sim_school *s, const struct sim_school *first, size_t n,
                        const char *county, struct numbering *num, struct rng *r)
{
	static const char *const town_suffix[] = {
	        [SCHOOL_PRIMARY] = "中心小学",
	        [SCHOOL_JUNIOR] = "中学",
	        [SCHOOL_SENIOR] = "高级中学",
	        [SCHOOL_NINE_YEAR] = "九年一贯制学校",
	};
	static const double town_chance[] = {
	        [SCHOOL_PRIMARY] = 0.5,
	        [SCHOOL_JUNIOR] = 0.4,
	        [SCHOOL_SENIOR] = 0.0,
	        [SCHOOL_NINE_YEAR] = 1.0,
	};
	char numeral[16];
	int *counter;
	const char *suffix;

	if (rng_chance(r, town_chance[s->type])) {
		for (int tries = 0; tries < 8; tries++) {
			if (snprintf(s->name, sizeof(s->name), "%s%s%s", county, names_town(r),
			             town_suffix[s->type]) < (int)sizeof(s->name) &&
			    !name_used(first, n, s->name))
				return;
		}
	}
	switch (s->type) {
	case SCHOOL_PRIMARY:
		counter = &num->primary, suffix = "小学";
		break;
	case SCHOOL_JUNIOR:
		counter = &num->junior, suffix = "中学";
		break;
	case SCHOOL_SENIOR:
		counter = &num->senior, suffix = "高级中学";
		break;
	default:
		counter = &num->nine, suffix = "九年制学校";
		break;
	}
	do {
		names_numeral(++*counter, numeral);
		if (snprintf(s->name, sizeof(s->name), "%s第%s%s", county, numeral, suffix) >=
		    (int)sizeof(s->name))
			break; /* a county name this long is not made here */
	} while (name_used(first, n, s->name));
}

static void build_school(struct sim_school *s, size_t county_index, const struct sim_county *c,
                         long serial, const struct sim_school *first, size_t n,
                         struct numbering *num, struct rng *r)
{
	static const double weights[] = {
	        [SCHOOL_PRIMARY] = 0.55,
	        [SCHOOL_JUNIOR] = 0.25,
	        [SCHOOL_SENIOR] = 0.08,
	        [SCHOOL_NINE_YEAR] = 0.12,
	};
	static const long enrolled[][2] = {
	        [SCHOOL_PRIMARY] = {180, 1800},
	        [SCHOOL_JUNIOR] = {300, 2200},
	        [SCHOOL_SENIOR] = {600, 3200},
	        [SCHOOL_NINE_YEAR] = {250, 1500},
	};

	memset(s, 0, sizeof(*s));
	s->county = county_index;
	/* national school code style: 2, the province, the county suffix, a serial */
	if (snprintf(s->id, sizeof(s->id), "2%.2s%.2s%05ld", c->id, c->id + 4, serial) != 10)
		s->id[0] = '\0'; /* cannot happen: serial is 1..SERIAL_MAX */
	s->type = (enum school_type)rng_weighted(r, weights, ARRAY_SIZE(weights));
	s->enrolled = rng_range(r, enrolled[s->type][0], enrolled[s->type][1]);
	s->profile = rng_chance(r, 0.08) ? PROFILE_LATE : PROFILE_DILIGENT;
	name_school(s, first, n, c->name, num, r);
}

/* The schools of one county whose dates the campaign changes: one opens during the
 * campaign, one never files; in the first county one also closes early. */
static void special_schools(struct sim_school *first, size_t n, size_t county_index, struct rng *r)
{
	static const struct date openings[] = {{2024, 9, 1}, {2024, 4, 15}, {2024, 6, 1}};
	size_t opened, silent, closed;
	struct date d = {2024, 7, 1};

	if (n < 4)
		return;
	opened = (size_t)rng_range(r, 1, (long)n - 1);
	do
		silent = (size_t)rng_range(r, 1, (long)n - 1);
	while (silent == opened);
	first[opened].opened = openings[county_index % ARRAY_SIZE(openings)];
	first[silent].profile = PROFILE_SILENT;
	if (county_index != 0)
		return;
	do
		closed = (size_t)rng_range(r, 1, (long)n - 1);
	while (closed == opened || closed == silent);
	date_from_days(date_to_days(&d) + rng_range(r, 0, 25), &first[closed].closed);
	first[closed].profile = PROFILE_DILIGENT;
}

int region_build(struct region *ret, uint64_t seed, const char *code, size_t counties,
                 size_t per_county, char *err, size_t errlen)
{
	struct region g = {.seed = seed};
	int r;

	if (!names_region_code_valid(code)) {
		snprintf(err, errlen, "'%s' is not a prefecture code (6 digits ending in 00)",
		         code);
		return -EINVAL;
	}
	if (counties < 1 || counties > REGION_COUNTIES_MAX || per_county < 1 ||
	    per_county > REGION_SCHOOLS_PER_COUNTY_MAX) {
		snprintf(err, errlen, "give 1..%d counties of 1..%d schools", REGION_COUNTIES_MAX,
		         REGION_SCHOOLS_PER_COUNTY_MAX);
		return -EINVAL;
	}
	memcpy(g.code, code, 7);
	names_region(code, g.name);
	g.counties = calloc(counties, sizeof(*g.counties));
	g.schools = calloc(counties * per_county, sizeof(*g.schools));
	if (!g.counties || !g.schools) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t c = 0; c < counties; c++) {
		struct sim_school *first = g.schools + c * per_county;
		struct numbering num = {0};
		struct rng rng;
		long start;

		r = names_county(code, c, g.counties[c].id, g.counties[c].name);
		if (r < 0) {
			snprintf(err, errlen, "the region %s has no room for %zu counties", code,
			         counties);
			goto fail;
		}
		rng_init(&rng, seed, STREAM_COUNTY + c);
		start = rng_range(&rng, 0, SERIAL_MAX - 1);
		for (size_t i = 0; i < per_county; i++)
			build_school(&first[i], c, &g.counties[c],
			             (start + (long)i * SERIAL_STRIDE) % SERIAL_MAX + 1, first, i,
			             &num, &rng);
		special_schools(first, per_county, c, &rng);
		g.county_count++;
		g.school_count += per_county;
	}
	*ret = g;
	return 0;
fail:
	region_release(&g);
	return r;
}

void region_release(struct region *r)
{
	free(r->counties);
	free(r->schools);
	memset(r, 0, sizeof(*r));
}

static int add_date(cJSON *o, const char *name, const struct date *d)
{
	char text[11];

	if (!d->year)
		return cJSON_AddNullToObject(o, name) ? 0 : -ENOMEM;
	date_format(d, text);
	return cJSON_AddStringToObject(o, name, text) ? 0 : -ENOMEM;
}

static int school_json(const struct region *g, const struct sim_school *s, cJSON *list)
{
	cJSON *o = cJSON_CreateObject();

	if (!o || !cJSON_AddItemToArray(list, o))
		goto fail;
	if (!cJSON_AddStringToObject(o, "school_id", s->id) ||
	    !cJSON_AddStringToObject(o, "county_id", g->counties[s->county].id) ||
	    !cJSON_AddStringToObject(o, "name", s->name) ||
	    !cJSON_AddStringToObject(o, "type", school_type_id(s->type)) ||
	    !cJSON_AddNumberToObject(o, "enrolled", (double)s->enrolled) ||
	    add_date(o, "opened", &s->opened) < 0 || add_date(o, "closed", &s->closed) < 0 ||
	    !cJSON_AddStringToObject(o, "profile", school_profile_id(s->profile)))
		return -ENOMEM;
	return 0;
fail:
	cJSON_Delete(o);
	return -ENOMEM;
}

int region_save(const struct region *g, const char *path)
{
	cJSON *root = cJSON_CreateObject(), *counties, *schools;
	char *text = NULL;
	int r = -ENOMEM;

	if (!root || !cJSON_AddNumberToObject(root, "seed", (double)g->seed) ||
	    !cJSON_AddStringToObject(root, "region", g->code) ||
	    !cJSON_AddStringToObject(root, "name", g->name) ||
	    !(counties = cJSON_AddArrayToObject(root, "counties")) ||
	    !(schools = cJSON_AddArrayToObject(root, "schools")))
		goto out;
	for (size_t i = 0; i < g->county_count; i++) {
		cJSON *o = cJSON_CreateObject();

		if (!o || !cJSON_AddItemToArray(counties, o)) {
			cJSON_Delete(o);
			goto out;
		}
		if (!cJSON_AddStringToObject(o, "county_id", g->counties[i].id) ||
		    !cJSON_AddStringToObject(o, "name", g->counties[i].name) ||
		    !cJSON_AddStringToObject(o, "hub", g->counties[i].hub))
			goto out;
	}
	for (size_t i = 0; i < g->school_count; i++)
		if (school_json(g, &g->schools[i], schools) < 0)
			goto out;
	text = cJSON_Print(root);
	if (!text)
		goto out;
	r = fileio_write_atomic(path, text, strlen(text), 0644);
out:
	free(text);
	cJSON_Delete(root);
	return r;
}

/* A string member of o that fits in size bytes, or NULL. */
static const char *get_string(const cJSON *o, const char *name, size_t size)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!cJSON_IsString(v) || strlen(v->valuestring) >= size)
		return NULL;
	return v->valuestring;
}

/* A date member (null: year 0). 0 or -EINVAL. */
static int get_date(const cJSON *o, const char *name, struct date *ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	memset(ret, 0, sizeof(*ret));
	if (cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v))
		return -EINVAL;
	return datetime_parse_date(v->valuestring, strlen(v->valuestring), ret);
}

static int parse_enum(const char *s, const char *const *ids, size_t n)
{
	for (size_t i = 0; s && i < n; i++)
		if (strcmp(s, ids[i]) == 0)
			return (int)i;
	return -1;
}

static int load_school(struct region *g, const cJSON *o, struct sim_school *s)
{
	const char *id = get_string(o, "school_id", sizeof(s->id));
	const char *county = get_string(o, "county_id", 7);
	const char *name = get_string(o, "name", sizeof(s->name));
	const cJSON *enrolled = cJSON_GetObjectItemCaseSensitive(o, "enrolled");
	int type = parse_enum(get_string(o, "type", 16), type_ids, ARRAY_SIZE(type_ids));
	int profile =
	        parse_enum(get_string(o, "profile", 16), profile_ids, ARRAY_SIZE(profile_ids));

	if (!id || strlen(id) != 10 || !county || !name || type < 0 || profile < 0 ||
	    !cJSON_IsNumber(enrolled) || enrolled->valuedouble < 0 || enrolled->valuedouble > 1e6 ||
	    get_date(o, "opened", &s->opened) < 0 || get_date(o, "closed", &s->closed) < 0)
		return -EINVAL;
	memcpy(s->id, id, 11);
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->type = (enum school_type)type;
	s->profile = (enum school_profile)profile;
	s->enrolled = (long)enrolled->valuedouble;
	for (s->county = 0; s->county < g->county_count; s->county++)
		if (strcmp(g->counties[s->county].id, county) == 0)
			return 0;
	return -EINVAL;
}

int region_load(struct region *ret, const char *path, char *err, size_t errlen)
{
	struct region g = {0};
	const cJSON *counties, *schools, *seed, *item;
	const char *code, *name;
	cJSON *root = NULL;
	struct buf text;
	size_t i;
	int r;

	buf_init(&text, REGION_FILE_MAX);
	r = fileio_read(path, &text);
	if (r < 0) {
		snprintf(err, errlen, "cannot read '%s': %s", path, strerror(-r));
		goto out;
	}
	r = json_parse_untrusted(text.data ? text.data : "", text.len, 8, &root, err, errlen);
	if (r < 0)
		goto out;
	r = -EINVAL;
	seed = cJSON_GetObjectItemCaseSensitive(root, "seed");
	code = get_string(root, "region", sizeof(g.code));
	name = get_string(root, "name", sizeof(g.name));
	counties = cJSON_GetObjectItemCaseSensitive(root, "counties");
	schools = cJSON_GetObjectItemCaseSensitive(root, "schools");
	if (!cJSON_IsNumber(seed) || seed->valuedouble < 0 ||
	    seed->valuedouble > 9007199254740991.0 || !code || !name || !cJSON_IsArray(counties) ||
	    !cJSON_IsArray(schools) || cJSON_GetArraySize(counties) < 1 ||
	    cJSON_GetArraySize(counties) > REGION_COUNTIES_MAX || cJSON_GetArraySize(schools) < 1) {
		snprintf(err, errlen, "'%s' is not a region written by simulate generate", path);
		goto out;
	}
	g.seed = (uint64_t)seed->valuedouble;
	memcpy(g.code, code, strlen(code) + 1);
	snprintf(g.name, sizeof(g.name), "%s", name);
	g.counties = calloc((size_t)cJSON_GetArraySize(counties), sizeof(*g.counties));
	g.schools = calloc((size_t)cJSON_GetArraySize(schools), sizeof(*g.schools));
	if (!g.counties || !g.schools) {
		r = -ENOMEM;
		goto out;
	}
	i = 0;
	cJSON_ArrayForEach(item, counties)
	{
		const char *id = get_string(item, "county_id", 7),
		           *cn = get_string(item, "name", NAMES_MAX);
		const char *hub = get_string(item, "hub", REGION_URL_MAX);
		struct sim_county *c = &g.counties[i++];

		if (!id || strlen(id) != 6 || !cn || !hub) {
			snprintf(err, errlen, "%s: county %zu is incomplete", path, i);
			goto out;
		}
		memcpy(c->id, id, 7);
		snprintf(c->name, sizeof(c->name), "%s", cn);
		snprintf(c->hub, sizeof(c->hub), "%s", hub);
		g.county_count = i;
	}
	i = 0;
	cJSON_ArrayForEach(item, schools)
	{
		if (load_school(&g, item, &g.schools[i]) < 0) {
			snprintf(err, errlen, "%s: school %zu is incomplete or of no known county",
			         path, i + 1);
			goto out;
		}
		g.school_count = ++i;
	}
	*ret = g;
	memset(&g, 0, sizeof(g));
	r = 0;
out:
	region_release(&g);
	cJSON_Delete(root);
	buf_release(&text);
	return r;
}
