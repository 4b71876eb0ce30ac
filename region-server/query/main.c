/* region-query NAME [--param K=V]... [--format table|csv|json] [--server URL] [--token T]:
 * the inspector's command (issue 5). Asks the region server's GET /v1/inspections/NAME and
 * prints the answer: aligned tables (the default; Chinese text takes two columns), the
 * server's CSV (UTF-8 with a byte order mark, for Excel) or its JSON.
 *
 * The server defaults to $REGION_URL, else http://127.0.0.1:8402; the token to
 * $REGION_TOKEN (better than --token, which other users may see in the process list).
 * Exit: 0, 64 usage, 65 the server refused the parameters (400), 69 the server cannot be
 * reached or is unavailable (503), 77 no or a wrong token, or another county (401, 403),
 * 70 anything else. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/json.h"
#include "common/log.h"
#include "common/version.h"
#include "render.h"
#include "common/banned.h"

#define USAGE "NAME [--param K=V]... [--format table|csv|json] [--server URL] [--token TOKEN]"
#define ANSWER_MAX (256u * 1024 * 1024)
#define DEFAULT_SERVER "http://127.0.0.1:8402"

static size_t on_data(char *data, size_t size, size_t n, void *userdata)
{
	(void)size;
	return buf_append(userdata, data, n) < 0 ? 0 : n;
}

static void usage(FILE *out, const struct config_option *options)
{
	struct buf text;

	buf_init(&text, 64 * 1024);
	fprintf(out,
	        "usage: region-query %s\n\nqueries: late-returns, incidents, level3, "
	        "overdue-rectification, follow-up,\n  screening-coverage, rollup-integrity, "
	        "chain-of-custody (docs/INSPECTIONS.md)\n\noptions:\n",
	        USAGE);
	if (config_usage(options, &text) == 0 && text.data)
		fputs(text.data, out);
	buf_release(&text);
}

/* The URL of the query with its parameters, escaped. Caller frees. */
static char *make_url(CURL *curl, const char *server, const char *name, char **params,
                      const char *format)
{
	struct buf url;
	size_t n = strlen(server);
	char *e;
	int r, sep = '?';

	buf_init(&url, 64 * 1024);
	while (n > 0 && server[n - 1] == '/')
		n--;
	r = buf_append(&url, server, n);
	e = curl_easy_escape(curl, name, 0);
	r = r < 0 || !e ? -ENOMEM : buf_printf(&url, "/v1/inspections/%s", e);
	curl_free(e);
	for (size_t i = 0; r == 0 && params && params[i]; i++) {
		const char *eq = strchr(params[i], '=');
		char *k = eq ? curl_easy_escape(curl, params[i], (int)(eq - params[i])) : NULL;
		char *v = eq ? curl_easy_escape(curl, eq + 1, 0) : NULL;

		if (!eq) {
			log_error("--param '%s' is not K=V", params[i]);
			r = -EINVAL;
		} else if (!k || !v) {
			r = -ENOMEM;
		} else {
			r = buf_printf(&url, "%c%s=%s", sep, k, v);
			sep = '&';
		}
		curl_free(k);
		curl_free(v);
	}
	if (r == 0)
		r = buf_printf(&url, "%cformat=%s", sep, format);
	if (r < 0) {
		buf_release(&url);
		return NULL;
	}
	return buf_detach(&url, &n);
}

static void free_params(char **list)
{
	for (size_t i = 0; list && list[i]; i++)
		free(list[i]);
	free(list);
}

/* Puts the strings of *before (which becomes empty) in front of the list *params; both
 * are NULL-terminated arrays of malloc'd strings. -ENOMEM. */
static int merge_params(char ***params, char **before)
{
	size_t a = 0, b = 0;
	char **all;

	while (before[a])
		a++;
	while (*params && (*params)[b])
		b++;
	all = calloc(a + b + 1, sizeof(*all));
	if (!all)
		return -ENOMEM;
	memcpy(all, before, a * sizeof(*all));
	if (b)
		memcpy(all + a, *params, b * sizeof(*all));
	before[0] = NULL; /* its strings belong to all now */
	free(*params);
	*params = all;
	return 0;
}

static int exit_for(long status)
{
	switch (status) {
	case 200:
		return EX_OK;
	case 400:
	case 404:
		return EX_DATAERR;
	case 401:
	case 403:
		return EX_NOPERM;
	case 503:
		return EX_UNAVAILABLE;
	default:
		return EX_SOFTWARE;
	}
}

int main(int argc, char **argv)
{
	char *format = NULL, *server = NULL, *token = NULL, **params = NULL, **before = NULL;
	int help = 0;
	const struct config_option options[] = {
	        {"param", CONFIG_STRING_LIST, &params,
	         "a parameter of the query, e.g. period=2024-P1", "K=V", 0, 0},
	        {"format", CONFIG_STRING, &format, "table (default), csv or json", "FORMAT", 0, 0},
	        {"server", CONFIG_STRING, &server,
	         "the region server (default $REGION_URL or " DEFAULT_SERVER ")", "URL", 0, 0},
	        {"token", CONFIG_STRING, &token, "bearer token (default $REGION_TOKEN)", "TOKEN", 0,
	         0},
	        {"help", CONFIG_BOOLEAN, &help, "show this help", NULL, 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};
	char err[512], curl_err[CURL_ERROR_SIZE] = "", *url = NULL, *auth = NULL;
	const char *name, *base, *tok, *wire;
	struct curl_slist *headers = NULL;
	struct buf answer;
	cJSON *doc = NULL;
	CURL *curl = NULL;
	long status = 0;
	int next, r, ret = EX_SOFTWARE;

	log_setup("region-query", LOG_LEVEL_WARNING, NULL);
	buf_init(&answer, ANSWER_MAX);
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("region-query %s\n", RETURNS_VERSION);
		return EX_OK;
	}
	/* flags may come before and after NAME (a --param list restarts at each pass: the
	 * parameters given before NAME are kept apart and put back in front) */
	r = config_parse_args(options, argc, argv, &next, err, sizeof(err));
	if (r == 0 && next < argc) {
		int more;

		name = argv[next];
		before = params;
		params = NULL;
		r = config_parse_args(options, argc - next, argv + next, &more, err, sizeof(err));
		if (r == 0 && next + more < argc) {
			snprintf(err, sizeof(err), "unexpected argument '%s'", argv[next + more]);
			r = -EINVAL;
		}
		if (r == 0 && before && merge_params(&params, before) < 0) {
			snprintf(err, sizeof(err), "out of memory");
			r = -ENOMEM;
		}
	} else {
		name = NULL;
	}
	if (help) {
		usage(stdout, options);
		ret = EX_OK;
		goto out;
	}
	if (r < 0 || !name) {
		log_error("%s; usage: region-query %s", r < 0 ? err : "no query named", USAGE);
		ret = EX_USAGE;
		goto out;
	}
	if (format && strcmp(format, "table") != 0 && strcmp(format, "csv") != 0 &&
	    strcmp(format, "json") != 0) {
		log_error("--format is table, csv or json, not '%s'", format);
		ret = EX_USAGE;
		goto out;
	}
	base = server ? server : getenv("REGION_URL") ? getenv("REGION_URL") : DEFAULT_SERVER;
	tok = token ? token : getenv("REGION_TOKEN");
	if (!tok || !tok[0]) {
		log_error("no token: give --token or set REGION_TOKEN (region-server token add)");
		ret = EX_USAGE;
		goto out;
	}
	wire = format && strcmp(format, "csv") == 0 ? "csv" : "json";
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("cannot start libcurl");
		goto out;
	}
	curl = curl_easy_init();
	if (!curl || !(url = make_url(curl, base, name, params, wire))) {
		ret = curl ? EX_USAGE : EX_SOFTWARE;
		goto out;
	}
	if (asprintf(&auth, "Authorization: Bearer %s", tok) < 0) {
		auth = NULL;
		goto out;
	}
	headers = curl_slist_append(NULL, auth);
	if (!headers)
		goto out;
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 300L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "region-query/" RETURNS_VERSION);
	if (curl_easy_perform(curl) != CURLE_OK) {
		log_error("cannot ask '%s': %s", base, curl_err);
		ret = EX_UNAVAILABLE;
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		const cJSON *msg;

		if (json_parse_untrusted(answer.data ? answer.data : "", answer.len, 8, &doc, NULL,
		                         0) == 0 &&
		    cJSON_IsString(msg = cJSON_GetObjectItemCaseSensitive(doc, "message")))
			log_error("%s: the server answered %ld: %s", name, status,
			          msg->valuestring);
		else
			log_error("%s: the server answered %ld", name, status);
		ret = exit_for(status);
		goto out;
	}
	if (!format || strcmp(format, "table") == 0) {
		r = json_parse_untrusted(answer.data ? answer.data : "", answer.len, 16, &doc, err,
		                         sizeof(err));
		if (r == 0)
			r = render_tables(stdout, doc);
		if (r < 0) {
			log_error("the server's answer is not an inspection answer%s%s",
			          err[0] ? ": " : "", err);
			goto out;
		}
	} else if (answer.len && fwrite(answer.data, 1, answer.len, stdout) != answer.len) {
		log_error("cannot write the answer");
		ret = EX_IOERR;
		goto out;
	}
	ret = fflush(stdout) == 0 ? EX_OK : EX_IOERR;
out:
	cJSON_Delete(doc);
	curl_slist_free_all(headers);
	free(auth);
	free(url);
	if (curl)
		curl_easy_cleanup(curl);
	curl_global_cleanup();
	buf_release(&answer);
	config_release(options);
	free_params(before);
	return ret;
}
