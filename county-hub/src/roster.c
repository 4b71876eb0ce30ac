/* `county-hub roster add|import|list|remove`: the county's schools, with the public key
 * each signs its returns with. A school is never deleted: `remove` closes it from a date,
 * so it stays in the history and in the denominators of the periods it was open for.
 * Every command that changes the roster queues the whole roster, signed by the county and
 * with the next version number, in the same transaction (outbox.h), so the region can
 * verify the schools' signatures itself (DESIGN section 3).
 *
 * Import file (CSV, UTF-8 or GB18030 as Excel saves it): a header line naming the columns,
 * in any order, then one school per line:
 *   school_id  10 digits                                   required
 *   name       the school's name, 1..255 bytes              required
 *   type       [a-z0-9_], up to 32 characters              optional
 *   opened     YYYY-MM-DD, first day open                   optional
 *   closed     YYYY-MM-DD, first day closed                 optional
 *   key_file   the school's public JWK file, relative to the CSV's folder
 *   key_x      or the key inline: the JWK "x" (43 characters of base64url)
 * Each line needs exactly one of key_file and key_x. The whole file is imported in one
 * transaction or not at all: the first error names its line. A school already in the
 * roster is updated. */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/csv.h"
#include "common/datetime.h"
#include "common/fileio.h"
#include "common/jwk.h"
#include "common/log.h"
#include "common/textwidth.h"
#include "hub.h"
#include "outbox.h"
#include "store.h"
#include "common/banned.h"

#define ERR_MAX 1024
#define PATH_LEN 4096

/* What every roster command holds. */
struct roster_ctx {
	struct hub_config *cfg;
	struct store *store;
	struct jwk county_key;
	struct clock clock;
	char now[DATETIME_RFC3339_MAX];
	int64_t now_ms;
};

static int valid_date(const char *s)
{
	struct date d;

	return s && datetime_parse_date(s, strlen(s), &d) == 0;
}

static int valid_type(const char *s)
{
	size_t n = strlen(s);

	if (n > STORE_TYPE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

/* 1 when s is valid UTF-8 (no overlong forms, surrogates or code points past U+10FFFF). */
static int valid_utf8(const char *text)
{
	const unsigned char *s = (const unsigned char *)text;

	while (*s) {
		unsigned cp, min;
		size_t n;

		if (s[0] < 0x80) {
			s++;
			continue;
		}
		if (s[0] >= 0xc2 && s[0] <= 0xdf) {
			n = 2, cp = s[0] & 0x1fu, min = 0x80;
		} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
			n = 3, cp = s[0] & 0x0fu, min = 0x800;
		} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
			n = 4, cp = s[0] & 0x07u, min = 0x10000;
		} else {
			return 0;
		}
		for (size_t i = 1; i < n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i] & 0x3fu);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		s += n;
	}
	return 1;
}

/* A name is 1..STORE_NAME_MAX bytes of UTF-8 text without control characters. */
static int valid_name(const char *s, char *err, size_t errlen)
{
	size_t n = strlen(s);

	if (n == 0 || n > STORE_NAME_MAX) {
		snprintf(err, errlen, "the name must have 1 to %d bytes", STORE_NAME_MAX);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f) {
			snprintf(err, errlen, "the name holds a control character");
			return 0;
		}
	}
	if (!valid_utf8(s)) {
		snprintf(err, errlen, "the name is not valid UTF-8");
		return 0;
	}
	return 1;
}

/* Loads a school's public key: kid must be the school id or absent (then it is set). */
static int load_school_key(const char *path, const char *school_id, unsigned char ret[32],
                           char *err, size_t errlen)
{
	char why[ERR_MAX] = "";
	struct jwk key;
	int r;

	r = jwk_load(&key, path, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "%s", why);
		return r;
	}
	if (key.has_private) {
		jwk_release(&key);
		snprintf(err, errlen,
		         "'%s' holds a private key: give the school's public key, never its "
		         "private one",
		         path);
		return -EPERM;
	}
	if (key.kid[0] && strcmp(key.kid, school_id) != 0) {
		snprintf(err, errlen, "the key in '%s' is named \"%s\", not the school id \"%s\"",
		         path, key.kid, school_id);
		return -EINVAL;
	}
	memcpy(ret, key.public_key, 32);
	jwk_release(&key);
	return 0;
}

static int parse_inline_key(const char *x, unsigned char ret[32], char *err, size_t errlen)
{
	char text[256], why[ERR_MAX] = "";
	struct jwk key;
	int n;

	n = snprintf(text, sizeof(text), "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"}", x);
	if (n < 0 || (size_t)n >= sizeof(text) || strchr(x, '"') || strchr(x, '\\')) {
		snprintf(err, errlen, "key_x is not a base64url Ed25519 public key");
		return -EINVAL;
	}
	if (jwk_parse(&key, text, (size_t)n, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "key_x: %s", why);
		return -EINVAL;
	}
	memcpy(ret, key.public_key, 32);
	jwk_release(&key);
	return 0;
}

/* Adds or updates one school inside the caller's transaction. */
static int put_school(struct roster_ctx *rc, const struct store_school *s, int replace,
                      int *ret_changed)
{
	return store_school_put(rc->store, s, replace, ret_changed);
}

/* Queues the whole roster, signed by the county, in the caller's transaction: called
 * once per command that changed it. */
static int queue_roster(struct roster_ctx *rc)
{
	char err[ERR_MAX] = "";
	long long version = 0;
	int r;

	r = outbox_add_roster(rc->store, &rc->county_key, rc->cfg->county_id, rc->now_ms,
	                      DATETIME_SHANGHAI_OFFSET_MIN, 0, &version, err, sizeof(err));
	if (r < 0)
		log_error("cannot queue the roster for the region: %s", err);
	else
		log_debug("roster version %lld queued for the region", version);
	return r;
}

static int ctx_open(struct roster_ctx *rc, struct hub_config *cfg)
{
	char path[PATH_LEN], err[ERR_MAX] = "";
	int r;

	memset(rc, 0, sizeof(*rc));
	rc->cfg = cfg;
	if (!cfg->county_id) {
		log_error("hub.json names no county_id");
		return -EINVAL;
	}
	r = hub_clock(&rc->clock);
	if (r < 0)
		return r;
	rc->now_ms = clock_now_ms(&rc->clock);
	datetime_format_rfc3339(rc->now_ms, DATETIME_SHANGHAI_OFFSET_MIN, rc->now);
	r = hub_path(cfg, HUB_KEY_FILE, path, sizeof(path));
	if (r == 0)
		r = jwk_load(&rc->county_key, path, err, sizeof(err));
	if (r < 0) {
		log_error("cannot load the county key: %s", err[0] ? err : strerror(-r));
		return r;
	}
	return hub_open_store(cfg, 0, &rc->store);
}

static void ctx_close(struct roster_ctx *rc)
{
	store_close(rc->store);
	jwk_release(&rc->county_key);
}

static int exit_of(int r)
{
	switch (r) {
	case -EINVAL:
	case -EEXIST:
	case -ENOENT:
	case -EPERM:
		return EX_DATAERR;
	case -EBUSY:
		return EX_TEMPFAIL;
	default:
		return EX_SOFTWARE;
	}
}

static int roster_add(int argc, char **argv)
{
	struct config_option table[HUB_OPTIONS_MAX];
	static const char synopsis[] =
	        "county-hub roster add --school-id ID --name NAME --key FILE.jwk [--type TYPE] "
	        "[--opened DATE] [--closed DATE] [--replace]";
	struct hub_config cfg;
	struct roster_ctx rc;
	struct store_school s;
	char *school_id = NULL, *name = NULL, *key = NULL, *type = NULL, *opened = NULL,
	     *closed = NULL, err[ERR_MAX] = "";
	int help = 0, replace = 0, changed = 0, ret = EX_SOFTWARE, r;
	size_t n = 0, count;
	const struct config_option extra[] = {
	        {"school_id", CONFIG_STRING, &school_id, "10-digit school code", "ID", 0, 0},
	        {"name", CONFIG_STRING, &name, "the school's name", "NAME", 0, 0},
	        {"key", CONFIG_STRING, &key, "the school's public key (JWK)", "FILE", 0, 0},
	        {"type", CONFIG_STRING, &type, "school type, e.g. primary, junior", "TYPE", 0, 0},
	        {"opened", CONFIG_STRING, &opened, "first day open (default: always)", "DATE", 0,
	         0},
	        {"closed", CONFIG_STRING, &closed, "first day closed (default: open)", "DATE", 0,
	         0},
	        {"replace", CONFIG_BOOLEAN, &replace, "update a school already in the roster", NULL,
	         0, 0},
	        {"help", CONFIG_BOOLEAN, &help, "show this help", NULL, 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};

	memset(&rc, 0, sizeof(rc));
	memset(table, 0, sizeof(table));
	if (hub_config_init(&cfg) < 0)
		return EX_OSERR;
	hub_options_common(&cfg, table, &n);
	hub_options_add(table, &n, extra);
	if (hub_config_load(&cfg, table, 1, argc, argv, NULL, 0, &count) < 0) {
		ret = EX_USAGE;
		goto out;
	}
	if (help) {
		hub_usage(synopsis, table, 0);
		ret = EX_OK;
		goto out;
	}
	ret = EX_USAGE;
	if (!school_id || !name || !key) {
		log_error("--school-id, --name and --key are required");
		goto out;
	}
	if (!hub_digits(school_id, HUB_SCHOOL_ID_LEN)) {
		log_error("school id '%s' is not a 10-digit code", school_id);
		goto out;
	}
	if (!valid_name(name, err, sizeof(err))) {
		log_error("school \"%s\": %s", school_id, err);
		goto out;
	}
	if (type && !valid_type(type)) {
		log_error("type '%s' is not [a-z0-9_], at most %d characters", type,
		          STORE_TYPE_MAX);
		goto out;
	}
	if ((opened && !valid_date(opened)) || (closed && !valid_date(closed))) {
		log_error("dates are YYYY-MM-DD: '%s'",
		          opened && !valid_date(opened) ? opened : closed);
		goto out;
	}
	if (opened && closed && strcmp(closed, opened) <= 0) {
		log_error("the school closes (%s) before it opens (%s)", closed, opened);
		goto out;
	}
	memset(&s, 0, sizeof(s));
	snprintf(s.school_id, sizeof(s.school_id), "%s", school_id);
	snprintf(s.name, sizeof(s.name), "%s", name);
	snprintf(s.type, sizeof(s.type), "%s", type ? type : "");
	snprintf(s.opened_on, sizeof(s.opened_on), "%s", opened ? opened : "");
	snprintf(s.closed_from, sizeof(s.closed_from), "%s", closed ? closed : "");
	r = load_school_key(key, school_id, s.public_key, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		ret = EX_DATAERR;
		goto out;
	}
	if (ctx_open(&rc, &cfg) < 0) {
		ret = EX_SOFTWARE;
		goto out;
	}
	snprintf(s.updated_at, sizeof(s.updated_at), "%s", rc.now);
	r = store_begin(rc.store);
	if (r == 0)
		r = put_school(&rc, &s, replace, &changed);
	if (r == 0 && changed)
		r = queue_roster(&rc);
	if (r == 0)
		r = store_commit(rc.store);
	if (r < 0) {
		store_rollback(rc.store);
		if (r == -EEXIST)
			log_error("school \"%s\" is already in the roster: use --replace to update "
			          "it",
			          school_id);
		else
			log_errno(r, "cannot add school \"%s\": %s", school_id,
			          store_errmsg(rc.store));
		ret = exit_of(r);
		goto out;
	}
	log_info("%s school \"%s\" (%s)", changed ? "added" : "unchanged", school_id, name);
	ret = EX_OK;
out:
	ctx_close(&rc);
	config_release(extra);
	hub_config_release(&cfg);
	return ret;
}

/* The columns of an import file. */
enum column {
	COL_SCHOOL_ID,
	COL_NAME,
	COL_TYPE,
	COL_OPENED,
	COL_CLOSED,
	COL_KEY_FILE,
	COL_KEY_X,
	COL_COUNT,
};

static const char *const column_names[COL_COUNT] = {
        "school_id", "name", "type", "opened", "closed", "key_file", "key_x",
};

/* One data line into *ret; err names what is wrong (the caller adds the line). */
static int import_line(const struct csv_record *rec, const int *pos, const char *base,
                       struct store_school *ret, char *err, size_t errlen)
{
	const char *v[COL_COUNT];
	char path[PATH_LEN];

	for (int c = 0; c < COL_COUNT; c++)
		v[c] = pos[c] >= 0 && (size_t)pos[c] < rec->count ? rec->fields[pos[c]] : "";
	if (!hub_digits(v[COL_SCHOOL_ID], HUB_SCHOOL_ID_LEN)) {
		snprintf(err, errlen, "school_id \"%.20s\" is not a 10-digit code",
		         v[COL_SCHOOL_ID]);
		return -EINVAL;
	}
	if (!valid_name(v[COL_NAME], err, errlen))
		return -EINVAL;
	if (!valid_type(v[COL_TYPE])) {
		snprintf(err, errlen, "type is not [a-z0-9_], at most %d characters",
		         STORE_TYPE_MAX);
		return -EINVAL;
	}
	if ((v[COL_OPENED][0] && !valid_date(v[COL_OPENED])) ||
	    (v[COL_CLOSED][0] && !valid_date(v[COL_CLOSED]))) {
		snprintf(err, errlen, "dates are YYYY-MM-DD");
		return -EINVAL;
	}
	if (v[COL_OPENED][0] && v[COL_CLOSED][0] && strcmp(v[COL_CLOSED], v[COL_OPENED]) <= 0) {
		snprintf(err, errlen, "closed is not after opened");
		return -EINVAL;
	}
	memset(ret, 0, sizeof(*ret));
	snprintf(ret->school_id, sizeof(ret->school_id), "%s", v[COL_SCHOOL_ID]);
	snprintf(ret->name, sizeof(ret->name), "%s", v[COL_NAME]);
	snprintf(ret->type, sizeof(ret->type), "%s", v[COL_TYPE]);
	snprintf(ret->opened_on, sizeof(ret->opened_on), "%s", v[COL_OPENED]);
	snprintf(ret->closed_from, sizeof(ret->closed_from), "%s", v[COL_CLOSED]);
	if (!!v[COL_KEY_FILE][0] == !!v[COL_KEY_X][0]) {
		snprintf(err, errlen, "give exactly one of key_file and key_x");
		return -EINVAL;
	}
	if (v[COL_KEY_X][0])
		return parse_inline_key(v[COL_KEY_X], ret->public_key, err, errlen);
	if (v[COL_KEY_FILE][0] == '/')
		snprintf(path, sizeof(path), "%s", v[COL_KEY_FILE]);
	else if (snprintf(path, sizeof(path), "%s/%s", base, v[COL_KEY_FILE]) >=
	         (int)sizeof(path)) {
		snprintf(err, errlen, "key_file path too long");
		return -EINVAL;
	}
	return load_school_key(path, ret->school_id, ret->public_key, err, errlen);
}

static int import_header(const struct csv_record *rec, int *pos, char *err, size_t errlen)
{
	for (int c = 0; c < COL_COUNT; c++)
		pos[c] = -1;
	for (size_t i = 0; i < rec->count; i++) {
		int c;

		for (c = 0; c < COL_COUNT; c++)
			if (strcmp(rec->fields[i], column_names[c]) == 0)
				break;
		if (c == COL_COUNT) {
			snprintf(err, errlen,
			         "unknown column \"%.40s\" (known: school_id, name, type, opened, "
			         "closed, key_file, key_x)",
			         rec->fields[i]);
			return -EINVAL;
		}
		if (pos[c] >= 0) {
			snprintf(err, errlen, "column \"%s\" appears twice", column_names[c]);
			return -EINVAL;
		}
		pos[c] = (int)i;
	}
	if (pos[COL_SCHOOL_ID] < 0 || pos[COL_NAME] < 0 ||
	    (pos[COL_KEY_FILE] < 0 && pos[COL_KEY_X] < 0)) {
		snprintf(err, errlen, "the header needs school_id, name and key_file or key_x");
		return -EINVAL;
	}
	return 0;
}

#define SEEN_ENTRY 32 /* "<10-digit id> <20-digit line>\n" */

static int compare_entries(const void *a, const void *b)
{
	return memcmp(a, b, SEEN_ENTRY);
}

/* seen holds one SEEN_ENTRY per line: a school id may appear on one line only. */
static int check_unique(const char *file, struct buf *seen)
{
	size_t count = seen->len / SEEN_ENTRY;

	if (count < 2)
		return 0;
	qsort(seen->data, count, SEEN_ENTRY, compare_entries);
	for (size_t i = 1; i < count; i++) {
		const char *a = seen->data + (i - 1) * SEEN_ENTRY, *b = seen->data + i * SEEN_ENTRY;

		if (memcmp(a, b, HUB_SCHOOL_ID_LEN) == 0) {
			log_error("%s: line %zu: school \"%.10s\" is already on line %zu", file,
			          (size_t)strtoull(b + 11, NULL, 10), b,
			          (size_t)strtoull(a + 11, NULL, 10));
			return -EINVAL;
		}
	}
	return 0;
}

/* Imports the whole file in the caller's transaction; *ret_added, *ret_updated. */
static int import_records(struct roster_ctx *rc, const char *file, const char *text, size_t len,
                          size_t *ret_added, size_t *ret_updated)
{
	struct csv_reader reader;
	struct csv_record rec;
	struct store_school s, old;
	char err[ERR_MAX] = "", base[PATH_LEN], *dir_copy;
	int pos[COL_COUNT], r, changed;
	size_t added = 0, updated = 0;
	struct buf seen;

	snprintf(base, sizeof(base), "%s", file);
	dir_copy = dirname(base);
	memmove(base, dir_copy, strlen(dir_copy) + 1);
	buf_init(&seen, (size_t)SEEN_ENTRY * 200000);
	r = csv_reader_init(&reader, text, len, NULL);
	if (r < 0)
		return log_errno(r, "cannot read '%s'", file);
	r = csv_read(&reader, &rec, err, sizeof(err));
	if (r == 0) {
		log_error("'%s' is empty: it needs a header line", file);
		r = -EINVAL;
		goto out;
	}
	if (r > 0)
		r = import_header(&rec, pos, err, sizeof(err));
	if (r < 0) {
		log_error("%s: line 1: %s", file, err);
		goto out;
	}
	while ((r = csv_read(&reader, &rec, err, sizeof(err))) > 0) {
		if (rec.count == 1 && rec.lengths[0] == 0)
			continue; /* an empty line */
		r = import_line(&rec, pos, base, &s, err, sizeof(err));
		if (r < 0) {
			log_error("%s: line %zu: %s", file, rec.line, err);
			goto out;
		}
		r = buf_printf(&seen, "%s %020zu\n", s.school_id, rec.line);
		if (r < 0)
			goto out;
		snprintf(s.updated_at, sizeof(s.updated_at), "%s", rc->now);
		memset(&old, 0, sizeof(old));
		r = store_school_get(rc->store, s.school_id, &old);
		if (r < 0 && r != -ENOENT)
			goto store_fail;
		if (r == 0 && memcmp(old.public_key, s.public_key, sizeof(s.public_key)) != 0)
			log_warning("%s: line %zu: school \"%s\" gets a new key", file, rec.line,
			            s.school_id);
		changed = 0;
		r = r == 0 ? put_school(rc, &s, 1, &changed) : put_school(rc, &s, 0, &changed);
		if (r < 0)
			goto store_fail;
		if (old.school_id[0] && strcmp(old.school_id, s.school_id) == 0)
			updated += (size_t)changed;
		else
			added++;
	}
	if (r < 0) {
		log_error("%s: %s", file, err);
		goto out;
	}
	r = check_unique(file, &seen);
	if (r < 0)
		goto out;
	*ret_added = added;
	*ret_updated = updated;
	r = 0;
	goto out;
store_fail:
	log_errno(r, "%s: line %zu: cannot store school \"%s\": %s", file, rec.line, s.school_id,
	          store_errmsg(rc->store));
out:
	buf_release(&seen);
	csv_reader_release(&reader);
	return r;
}

static int roster_import(int argc, char **argv)
{
	struct config_option table[HUB_OPTIONS_MAX];
	static const char synopsis[] =
	        "county-hub roster import FILE.csv\n\n"
	        "FILE.csv (UTF-8 or GB18030) starts with a header naming its columns, in any "
	        "order:\n"
	        "  school_id  10 digits (required)\n"
	        "  name       the school's name (required)\n"
	        "  type       [a-z0-9_], e.g. primary, junior (optional)\n"
	        "  opened     YYYY-MM-DD, first day open (optional)\n"
	        "  closed     YYYY-MM-DD, first day closed (optional)\n"
	        "  key_file   the school's public JWK file, relative to FILE.csv's folder\n"
	        "  key_x      or the key inline: the JWK's \"x\"\n"
	        "Each line needs one of key_file and key_x. Schools already in the roster are\n"
	        "updated. The file is imported whole or not at all; errors name their line.";
	struct hub_config cfg;
	struct roster_ctx rc;
	const char *file;
	struct buf raw, text;
	char err[ERR_MAX] = "";
	size_t n = 0, count, added = 0, updated = 0;
	int help = 0, ret = EX_SOFTWARE, r;
	const struct config_option extra[] = {
	        {"help", CONFIG_BOOLEAN, &help, "show this help", NULL, 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};

	memset(&rc, 0, sizeof(rc));
	memset(table, 0, sizeof(table));
	buf_init(&raw, CSV_FILE_MAX);
	buf_init(&text, CSV_FILE_MAX + CSV_FILE_MAX / 2);
	if (hub_config_init(&cfg) < 0)
		return EX_OSERR;
	hub_options_common(&cfg, table, &n);
	hub_options_add(table, &n, extra);
	if (hub_config_load(&cfg, table, 1, argc, argv, &file, 1, &count) < 0) {
		ret = EX_USAGE;
		goto out;
	}
	if (help || count != 1) {
		hub_usage(synopsis, table, !help);
		ret = help ? EX_OK : EX_USAGE;
		goto out;
	}
	r = fileio_read(file, &raw);
	if (r < 0) {
		log_errno(r, "cannot read '%s'", file);
		ret = r == -EMSGSIZE ? EX_DATAERR : EX_NOINPUT;
		goto out;
	}
	r = csv_decode(raw.data ? raw.data : "", raw.len, CSV_ENCODING_AUTO, &text, NULL, err,
	               sizeof(err));
	if (r < 0) {
		log_error("%s: %s", file, err[0] ? err : strerror(-r));
		ret = EX_DATAERR;
		goto out;
	}
	if (ctx_open(&rc, &cfg) < 0)
		goto out;
	r = store_begin(rc.store);
	if (r < 0) {
		log_errno(r, "cannot write the store: %s", store_errmsg(rc.store));
		ret = exit_of(r);
		goto out;
	}
	r = import_records(&rc, file, text.data ? text.data : "", text.len, &added, &updated);
	if (r == 0 && added + updated > 0)
		r = queue_roster(&rc);
	if (r == 0)
		r = store_commit(rc.store);
	if (r < 0) {
		store_rollback(rc.store);
		log_error("nothing imported from '%s'", file);
		ret = EX_DATAERR;
		goto out;
	}
	log_info("imported '%s': %zu schools added, %zu updated", file, added, updated);
	ret = EX_OK;
out:
	ctx_close(&rc);
	buf_release(&raw);
	buf_release(&text);
	hub_config_release(&cfg);
	return ret;
}

struct list_state {
	int json;
	cJSON *array;
	int name_width;
	int pass; /* 0: measure, 1: print */
};

static int list_one(void *data, const struct store_school *s)
{
	struct list_state *ls = data;
	struct jwk key;
	char thumb[JWK_THUMBPRINT_SIZE] = "";
	cJSON *o;

	memset(&key, 0, sizeof(key));
	memcpy(key.public_key, s->public_key, sizeof(key.public_key));
	if (jwk_thumbprint(&key, thumb) < 0)
		return -EIO;
	if (ls->json) {
		o = cJSON_CreateObject();
		if (!o)
			return -ENOMEM;
		cJSON_AddItemToArray(ls->array, o);
		if (!cJSON_AddStringToObject(o, "school_id", s->school_id) ||
		    !cJSON_AddStringToObject(o, "name", s->name) ||
		    !cJSON_AddStringToObject(o, "type", s->type) ||
		    !(s->opened_on[0] ? cJSON_AddStringToObject(o, "opened_on", s->opened_on)
		                      : cJSON_AddNullToObject(o, "opened_on")) ||
		    !(s->closed_from[0] ? cJSON_AddStringToObject(o, "closed_from", s->closed_from)
		                        : cJSON_AddNullToObject(o, "closed_from")) ||
		    !cJSON_AddStringToObject(o, "key_thumbprint", thumb) ||
		    !cJSON_AddStringToObject(o, "updated_at", s->updated_at))
			return -ENOMEM;
		return 0;
	}
	if (ls->pass == 0) {
		int w = text_width(s->name);

		if (w > ls->name_width)
			ls->name_width = w;
		return 0;
	}
	printf("%-10s  %s%*s  %-12s  %-10s  %-11s  %s\n", s->school_id, s->name,
	       ls->name_width - text_width(s->name), "", s->type[0] ? s->type : "-",
	       s->opened_on[0] ? s->opened_on : "-", s->closed_from[0] ? s->closed_from : "-",
	       thumb);
	return 0;
}

static int roster_list(int argc, char **argv)
{
	struct config_option table[HUB_OPTIONS_MAX];
	static const char synopsis[] = "county-hub roster list [--json]";
	struct hub_config cfg;
	struct store *store = NULL;
	struct list_state ls;
	size_t n = 0, count;
	int json = 0, help = 0, ret = EX_SOFTWARE, r;
	char *text;
	const struct config_option extra[] = {
	        {"json", CONFIG_BOOLEAN, &json, "print a JSON array", NULL, 0, 0},
	        {"help", CONFIG_BOOLEAN, &help, "show this help", NULL, 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};

	memset(&ls, 0, sizeof(ls));
	memset(table, 0, sizeof(table));
	if (hub_config_init(&cfg) < 0)
		return EX_OSERR;
	hub_options_common(&cfg, table, &n);
	hub_options_add(table, &n, extra);
	if (hub_config_load(&cfg, table, 1, argc, argv, NULL, 0, &count) < 0) {
		ret = EX_USAGE;
		goto out;
	}
	if (help) {
		hub_usage(synopsis, table, 0);
		ret = EX_OK;
		goto out;
	}
	if (hub_open_store(&cfg, STORE_READ_ONLY, &store) < 0)
		goto out;
	ls.json = json;
	ls.name_width = text_width("NAME");
	if (json) {
		ls.array = cJSON_CreateArray();
		if (!ls.array)
			goto out;
		r = store_school_list(store, list_one, &ls);
		text = r == 0 ? cJSON_Print(ls.array) : NULL;
		if (!text) {
			log_errno(r < 0 ? r : -ENOMEM, "cannot list the roster");
			goto out;
		}
		printf("%s\n", text);
		free(text);
	} else {
		r = store_school_list(store, list_one, &ls);
		if (r == 0) {
			printf("%-10s  %s%*s  %-12s  %-10s  %-11s  %s\n", "SCHOOL", "NAME",
			       ls.name_width - text_width("NAME"), "", "TYPE", "OPENED",
			       "CLOSED FROM", "KEY THUMBPRINT");
			ls.pass = 1;
			r = store_school_list(store, list_one, &ls);
		}
		if (r < 0) {
			log_errno(r, "cannot list the roster");
			goto out;
		}
	}
	ret = fflush(stdout) == 0 ? EX_OK : EX_IOERR;
out:
	cJSON_Delete(ls.array);
	store_close(store);
	hub_config_release(&cfg);
	return ret;
}

static int roster_remove(int argc, char **argv)
{
	struct config_option table[HUB_OPTIONS_MAX];
	static const char synopsis[] = "county-hub roster remove --school-id ID [--on DATE]";
	struct hub_config cfg;
	struct roster_ctx rc;
	struct store_school s;
	struct date today;
	char *school_id = NULL, *on = NULL, day[11];
	size_t n = 0, count;
	int help = 0, changed = 0, ret = EX_SOFTWARE, r;
	const struct config_option extra[] = {
	        {"school_id", CONFIG_STRING, &school_id, "10-digit school code", "ID", 0, 0},
	        {"on", CONFIG_STRING, &on, "first day closed (default: today)", "DATE", 0, 0},
	        {"help", CONFIG_BOOLEAN, &help, "show this help", NULL, 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};

	memset(&rc, 0, sizeof(rc));
	memset(table, 0, sizeof(table));
	if (hub_config_init(&cfg) < 0)
		return EX_OSERR;
	hub_options_common(&cfg, table, &n);
	hub_options_add(table, &n, extra);
	if (hub_config_load(&cfg, table, 1, argc, argv, NULL, 0, &count) < 0) {
		ret = EX_USAGE;
		goto out;
	}
	if (help || !school_id) {
		hub_usage(synopsis, table, !help);
		ret = help ? EX_OK : EX_USAGE;
		goto out;
	}
	if (on && !valid_date(on)) {
		log_error("--on '%s' is not YYYY-MM-DD", on);
		ret = EX_USAGE;
		goto out;
	}
	if (ctx_open(&rc, &cfg) < 0)
		goto out;
	datetime_local_date(rc.now_ms, DATETIME_SHANGHAI_OFFSET_MIN, &today);
	date_format(&today, day);
	r = store_begin(rc.store);
	if (r == 0)
		r = store_school_get(rc.store, school_id, &s);
	if (r == -ENOENT) {
		log_error("school \"%s\" is not in the roster", school_id);
		store_rollback(rc.store);
		ret = EX_DATAERR;
		goto out;
	}
	if (r == 0 && s.opened_on[0] && strcmp(on ? on : day, s.opened_on) <= 0) {
		log_error("school \"%s\" opens on %s: it cannot close on %s", school_id,
		          s.opened_on, on ? on : day);
		store_rollback(rc.store);
		ret = EX_DATAERR;
		goto out;
	}
	if (r == 0) {
		snprintf(s.closed_from, sizeof(s.closed_from), "%s", on ? on : day);
		snprintf(s.updated_at, sizeof(s.updated_at), "%s", rc.now);
		r = put_school(&rc, &s, 1, &changed);
	}
	if (r == 0 && changed)
		r = queue_roster(&rc);
	if (r == 0)
		r = store_commit(rc.store);
	if (r < 0) {
		store_rollback(rc.store);
		log_errno(r, "cannot close school \"%s\": %s", school_id, store_errmsg(rc.store));
		ret = exit_of(r);
		goto out;
	}
	log_info("school \"%s\" closed from %s; it stays in the history", school_id, s.closed_from);
	ret = EX_OK;
out:
	ctx_close(&rc);
	config_release(extra);
	hub_config_release(&cfg);
	return ret;
}

int command_roster(int argc, char **argv)
{
	if (argc >= 2) {
		if (strcmp(argv[1], "add") == 0)
			return roster_add(argc - 1, argv + 1);
		if (strcmp(argv[1], "import") == 0)
			return roster_import(argc - 1, argv + 1);
		if (strcmp(argv[1], "list") == 0)
			return roster_list(argc - 1, argv + 1);
		if (strcmp(argv[1], "remove") == 0)
			return roster_remove(argc - 1, argv + 1);
	}
	fprintf(stderr, "usage: county-hub roster add|import|list|remove [OPTIONS]\n"
	                "'county-hub roster SUBCOMMAND --help' describes one.\n");
	return EX_USAGE;
}
