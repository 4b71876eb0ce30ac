/* school-agent submit, and the submitter that import shares: see submit.h.
 *   school-agent submit --form FORM [--period PERIOD] FILE.json [--supersedes ID]
 * Prints the submission id once the return is durably in the outbox. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <cjson/cJSON.h>

#include "agent.h"
#include "commands.h"
#include "spool.h"
#include "submit.h"
#include "common/buf.h"
#include "common/calendar.h"
#include "common/datetime.h"
#include "common/errlist.h"
#include "common/fileio.h"
#include "common/form.h"
#include "common/json.h"
#include "common/jws.h"
#include "common/log.h"
#include "common/schema.h"
#include "common/submission.h"
#include "common/banned.h"

#define RETURN_FILE_MAX (8u * 1024 * 1024)

int submitter_init(struct submitter *ret, const struct agent *a, char *err, size_t errlen)
{
	struct submitter s = {.agent = a};
	char path[PATH_MAX], base[PATH_MAX];
	int r;

	r = clock_init_from_env(&s.clock, err, errlen);
	if (r < 0)
		return r;
	r = agent_load_forms(a, &s.forms, err, errlen);
	if (r < 0)
		goto fail;
	r = agent_load_calendar(a, &s.cal, err, errlen);
	if (r < 0)
		goto fail;
	r = agent_schemas_dir(a, base, sizeof(base));
	if (r < 0 ||
	    snprintf(path, sizeof(path), "%s/submission.schema.json", base) >= (int)sizeof(path)) {
		snprintf(err, errlen, "no schemas folder found");
		r = r < 0 ? r : -ENAMETOOLONG;
		goto fail;
	}
	r = schema_load_file(path, &s.envelope, err, errlen);
	if (r < 0)
		goto fail;
	r = agent_path(a, path, sizeof(path), AGENT_KEY);
	if (r < 0)
		goto fail;
	r = jwk_load(&s.key, path, err, errlen);
	if (r < 0)
		goto fail;
	if (!s.key.has_private || strcmp(s.key.kid, a->cfg.school_id) != 0) {
		snprintf(err, errlen, "%s: not the private key of school %s", path,
		         a->cfg.school_id);
		r = -EINVAL;
		goto fail;
	}
	*ret = s;
	return 0;
fail:
	submitter_release(&s);
	return r;
}

void submitter_release(struct submitter *s)
{
	form_set_free(s->forms);
	calendar_free(s->cal);
	schema_free(s->envelope);
	jwk_release(&s->key);
	s->forms = NULL;
	s->cal = NULL;
	s->envelope = NULL;
}

const struct form *submitter_form(const struct submitter *s, const char *id, char *err,
                                  size_t errlen)
{
	const struct form *f = form_set_find(s->forms, id);

	if (!f) {
		struct buf names;

		buf_init(&names, 4096);
		for (size_t i = 0; i < s->forms->count; i++)
			if (buf_printf(&names, "%s%s", i ? ", " : "", s->forms->forms[i].id) < 0)
				break;
		snprintf(err, errlen, "unknown form '%s' (the forms are: %s)", id,
		         names.data ? names.data : "none");
		buf_release(&names);
	}
	return f;
}

void submitter_today(const struct submitter *s, struct date *ret)
{
	datetime_local_date(clock_now_ms(&s->clock), calendar_utc_offset_min(s->cal), ret);
}

/* The event date of data for an event form (e.g. /occurred_on): 1 and *ret, 0 when data
 * has none (the schema reports that), -ENOENT/-EINVAL for a form that is not an event
 * form. *ret_field receives the member name. */
static int event_date(const struct submitter *s, const struct form *f, const cJSON *data,
                      const char **ret_field, struct date *ret)
{
	const char *field;
	const cJSON *v;
	int r;

	r = calendar_event_field(s->cal, f->id, &field);
	if (r < 0)
		return r;
	*ret_field = field;
	v = cJSON_GetObjectItemCaseSensitive(data, field);
	if (!cJSON_IsString(v) ||
	    datetime_parse_date(v->valuestring, strlen(v->valuestring), ret) < 0)
		return 0;
	return 1;
}

int submitter_period(const struct submitter *s, const struct form *f, const char *period,
                     const cJSON *data, char ret[static CALENDAR_PERIOD_MAX], char *err,
                     size_t errlen)
{
	const char *field = NULL;
	struct date on;
	int r;

	if (period) {
		if (strlen(period) >= CALENDAR_PERIOD_MAX) {
			snprintf(err, errlen, "'%s' is not a period", period);
			return -EINVAL;
		}
		memcpy(ret, period, strlen(period) + 1);
		return 0;
	}
	r = event_date(s, f, data, &field, &on);
	if (r < 0) {
		snprintf(err, errlen, "give the period (--period) of the %s return", f->id);
		return -EINVAL;
	}
	if (r == 0) {
		snprintf(err, errlen, "the %s return has no valid \"%s\" to take its period from",
		         f->id, field);
		return -EINVAL;
	}
	r = calendar_event_period(s->cal, f->id, &on, ret);
	if (r < 0) {
		snprintf(err, errlen, "\"%s\" is outside the months of the %s form", field, f->id);
		return -EINVAL;
	}
	return 0;
}

static int check_period(const struct submitter *s, const struct form *f, const char *period,
                        const cJSON *data, struct errlist *errs)
{
	enum calendar_period_type type;
	const char *field = NULL;
	char month[CALENDAR_PERIOD_MAX], pointer[96];
	struct date on, locked;
	int64_t expiry;
	int r;

	r = calendar_period_type(s->cal, f->id, &type);
	if (r == -ENOENT)
		return errlist_add(errs, ERRLIST_ERROR, "", "period",
		                   "the form '%s' is not in the campaign calendar", f->id);
	if (r < 0)
		return r;
	r = calendar_period_check(s->cal, f->id, period);
	if (r < 0)
		return errlist_add(errs, ERRLIST_ERROR, "", "period",
		                   "'%s' is not a period of the form '%s' (%s)", period, f->id,
		                   type == CALENDAR_PERIOD_PHASE
		                           ? "a campaign phase, e.g. 2024-P1"
		                           : "a month of the campaign, e.g. 2024-05");
	if (type == CALENDAR_PERIOD_EVENT && event_date(s, f, data, &field, &on) == 1) {
		snprintf(pointer, sizeof(pointer), "/%s", field);
		r = calendar_event_period(s->cal, f->id, &on, month);
		if (r == -ERANGE)
			return errlist_add(errs, ERRLIST_ERROR, pointer, "period",
			                   "the date is outside the months of the form '%s'",
			                   f->id);
		if (r < 0)
			return r;
		if (strcmp(month, period) != 0)
			return errlist_add(errs, ERRLIST_ERROR, pointer, "period",
			                   "the period of this %s is %s, the month of %s, not %s",
			                   f->id, month, field, period);
	}
	if (calendar_is_expired(s->cal, f->id, period, clock_now_ms(&s->clock)) == 1 &&
	    calendar_expiry_ms(s->cal, f->id, period, &expiry) == 0) {
		char day[11];

		datetime_local_date(expiry - 1, calendar_utc_offset_min(s->cal), &locked);
		date_format(&locked, day);
		return errlist_add(errs, ERRLIST_WARNING, "", "period",
		                   "the period %s locked after %s: the hub refuses it unless the "
		                   "county grants an exception",
		                   period, day);
	}
	return 0;
}

int submitter_check(const struct submitter *s, const struct form *f, const char *period,
                    const cJSON *data, struct errlist *errs)
{
	size_t before = errs->errors;
	int r;

	r = form_check(f, data, errs);
	if (r < 0)
		return r;
	r = check_period(s, f, period, data, errs);
	if (r < 0)
		return r;
	return (int)(errs->errors - before);
}

static int own_key(void *data, const char *kid, struct jwk *ret_key, char *err, size_t errlen)
{
	const struct jwk *key = data;

	if (strcmp(kid, key->kid) != 0) {
		snprintf(err, errlen, "unknown kid");
		return -ENOKEY;
	}
	memcpy(ret_key->public_key, key->public_key, sizeof(key->public_key));
	memcpy(ret_key->kid, key->kid, sizeof(key->kid));
	ret_key->has_private = 0;
	return 0;
}

/* The hub's own checks over the signed bytes: a return that fails them is a bug here. */
static int self_check(struct submitter *s, const char *text, size_t len, char *err, size_t errlen)
{
	const struct submission_context ctx = {
	        .envelope = s->envelope,
	        .forms = s->forms,
	        .county_id = s->agent->cfg.county_id,
	        .lookup_key = own_key,
	        .lookup_data = &s->key,
	};
	enum submission_verdict verdict;
	struct submission sub;
	struct errlist errs;
	char why[512] = "";
	int r;

	submission_init(&sub);
	errlist_init(&errs);
	r = submission_check(&ctx, text, len, &errs, why, sizeof(why), &verdict, &sub);
	if (r == 0 && verdict != SUBMISSION_ACCEPTABLE) {
		snprintf(err, errlen, "the signed return fails the hub's %s check: %s%s%s",
		         submission_verdict_code(verdict), why, errs.count ? "; " : "",
		         errs.count ? errs.entries[0].message : "");
		r = -EPROTO;
	} else if (r < 0) {
		snprintf(err, errlen, "the signed return could not be checked: %s", strerror(-r));
	}
	submission_release(&sub);
	errlist_release(&errs);
	return r;
}

int submitter_sign(struct submitter *s, const struct form *f, const char *period,
                   const char *supersedes, const cJSON *data, char ret_id[static IDS_UUID_LEN + 1],
                   char **ret_jws, size_t *ret_len, char *err, size_t errlen)
{
	const struct agent *a = s->agent;
	char id[IDS_UUID_LEN + 1], created[DATETIME_RFC3339_MAX];
	cJSON *payload = NULL, *copy = NULL;
	char *text = NULL, *jws = NULL;
	size_t jws_len;
	int r;

	r = ids_uuid7(&s->clock, id);
	if (r < 0) {
		snprintf(err, errlen, "cannot make a submission id: %s", strerror(-r));
		return r;
	}
	datetime_format_rfc3339(clock_now_ms(&s->clock), calendar_utc_offset_min(s->cal), created);
	payload = cJSON_CreateObject();
	copy = cJSON_Duplicate(data, 1);
	r = -ENOMEM;
	if (!payload || !copy)
		goto fail;
	/* the members in DESIGN §4's order */
	if (!cJSON_AddStringToObject(payload, "form", f->id) ||
	    !cJSON_AddNumberToObject(payload, "form_version", f->version) ||
	    !cJSON_AddStringToObject(payload, "submission_id", id) ||
	    !cJSON_AddStringToObject(payload, "school_id", a->cfg.school_id) ||
	    !cJSON_AddStringToObject(payload, "county_id", a->cfg.county_id) ||
	    !cJSON_AddStringToObject(payload, "period", period) ||
	    !cJSON_AddStringToObject(payload, "created_at", created) ||
	    !(supersedes ? cJSON_AddStringToObject(payload, "supersedes", supersedes)
	                 : cJSON_AddNullToObject(payload, "supersedes")) ||
	    !cJSON_AddItemToObject(payload, "data", copy))
		goto fail;
	copy = NULL;
	text = cJSON_PrintUnformatted(payload);
	if (!text)
		goto fail;
	r = jws_sign(&s->key, a->cfg.school_id, text, strlen(text), &jws, &jws_len, err, errlen);
	if (r < 0)
		goto fail;
	r = self_check(s, jws, jws_len, err, errlen);
	if (r < 0)
		goto fail;
	memcpy(ret_id, id, sizeof(id));
	*ret_jws = jws;
	*ret_len = jws_len;
	jws = NULL;
	r = 0;
fail:
	if (r == -ENOMEM && err)
		snprintf(err, errlen, "out of memory");
	cJSON_Delete(copy);
	cJSON_Delete(payload);
	free(text);
	free(jws);
	return r;
}

int submitter_queue(struct submitter *s, const struct form *f, const char *period,
                    const char *supersedes, const cJSON *data, char ret_id[static IDS_UUID_LEN + 1],
                    char *err, size_t errlen)
{
	char id[IDS_UUID_LEN + 1];
	char *jws = NULL;
	size_t len;
	int r;

	r = submitter_sign(s, f, period, supersedes, data, id, &jws, &len, err, errlen);
	if (r < 0)
		return r;
	r = spool_queue(s->agent, id, jws, len);
	if (r < 0)
		snprintf(err, errlen, "cannot write the return to the outbox: %s", strerror(-r));
	else
		memcpy(ret_id, id, sizeof(id));
	free(jws);
	return r;
}

/* Reads and parses a return file; on failure prints why and returns the exit code. */
static int load_return(const char *path, cJSON **ret)
{
	struct buf text;
	char err[512];
	int r, status = EX_OK;

	buf_init(&text, RETURN_FILE_MAX);
	r = fileio_read(path, &text);
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", path, r == -EMSGSIZE ? "file too large" : strerror(-r));
		status = r == -ENOENT ? EX_NOINPUT : EX_IOERR;
		goto out;
	}
	r = json_parse_untrusted(text.data ? text.data : "", text.len, JSON_MAX_DEPTH, ret, err,
	                         sizeof(err));
	if (r < 0) {
		printf("%s: not valid JSON: %s\n", path, err);
		status = EX_DATAERR;
	}
out:
	buf_release(&text);
	return status;
}

int command_submit(int argc, char **argv)
{
	static const char synopsis[] =
	        "school-agent submit [--dir DIR] --form FORM [--period PERIOD] "
	        "[--supersedes ID] FILE.json";
	char *dir = NULL, *form_id = NULL, *period_arg = NULL, *supersedes = NULL;
	const struct config_option options[] = {
	        {"dir", CONFIG_STRING, &dir, "the agent's folder (default: .)", "DIR", 0, 0},
	        {"form", CONFIG_STRING, &form_id, "the form of the return", "FORM", 0, 0},
	        {"period", CONFIG_STRING, &period_arg,
	         "the period (default for event forms: the event's month)", "PERIOD", 0, 0},
	        {"supersedes", CONFIG_STRING, &supersedes, "the submission this one corrects", "ID",
	         0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};
	char err[1024], period[CALENDAR_PERIOD_MAX], prefix[PATH_MAX + 8];
	char id[IDS_UUID_LEN + 1];
	struct submitter sub = {0};
	const struct form *f;
	struct errlist errs;
	struct agent agent;
	struct buf out;
	cJSON *data = NULL;
	char *file = NULL;
	int nfiles = 0, r, status = EX_OK, opened = 0, loaded = 0;

	errlist_init(&errs);
	buf_init(&out, 1024 * 1024);
	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		agent_print_usage(synopsis, options);
		return EX_OK;
	}
	r = agent_parse_args(options, argc, argv, &file, 1, &nfiles, err, sizeof(err));
	if (r < 0 || !form_id || nfiles != 1) {
		fprintf(stderr, "school-agent submit: %s\nusage: %s\n",
		        r < 0 ? err : "give --form and one FILE.json", synopsis);
		status = EX_USAGE;
		goto out;
	}
	if (supersedes && ids_uuid_check(supersedes, strlen(supersedes)) < 0) {
		fprintf(stderr, "school-agent submit: --supersedes '%s' is not a submission id\n",
		        supersedes);
		status = EX_USAGE;
		goto out;
	}
	r = agent_open(&agent, dir ? dir : ".", err, sizeof(err));
	opened = 1;
	if (r < 0) {
		log_error("%s", err);
		status = EX_CONFIG;
		goto out;
	}
	r = submitter_init(&sub, &agent, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		status = r == -EPERM ? EX_NOPERM : EX_CONFIG;
		goto out;
	}
	loaded = 1;
	f = submitter_form(&sub, form_id, err, sizeof(err));
	if (!f) {
		log_error("%s", err);
		status = EX_USAGE;
		goto out;
	}
	status = load_return(file, &data);
	if (status != EX_OK)
		goto out;
	r = submitter_period(&sub, f, period_arg, data, period, err, sizeof(err));
	if (r < 0) {
		printf("%s: %s\n", file, err);
		status = EX_DATAERR;
		goto out;
	}
	r = submitter_check(&sub, f, period, data, &errs);
	if (r < 0) {
		printf("%s: could not be checked: %s\n", file, strerror(-r));
		status = EX_DATAERR;
		goto out;
	}
	snprintf(prefix, sizeof(prefix), "%s: ", file);
	if (errlist_format(&errs, prefix, &out) == 0 && out.data)
		fputs(out.data, stdout);
	if (r > 0) {
		status = EX_DATAERR;
		goto out;
	}
	if (supersedes) {
		enum spool_state st;

		if (spool_find(&agent, supersedes, &st) < 0)
			log_warning("--supersedes '%s' is not in this agent's folders, queueing "
			            "the correction anyway",
			            supersedes);
	}
	r = submitter_queue(&sub, f, period, supersedes, data, id, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		status = r == -EPROTO ? EX_SOFTWARE : agent_exit_code(r);
		goto out;
	}
	printf("%s\n", id);
	if (fflush(stdout) != 0)
		status = EX_IOERR;
out:
	cJSON_Delete(data);
	if (loaded)
		submitter_release(&sub);
	if (opened)
		agent_release(&agent);
	errlist_release(&errs);
	buf_release(&out);
	config_release(options);
	return status;
}
