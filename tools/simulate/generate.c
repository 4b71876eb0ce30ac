/* simulate counties and simulate generate.
 *   simulate counties --counties K [--region CODE]
 *       prints "COUNTY_ID<TAB>NAME" for each county the region will have, so that their
 *       hubs can be set up (county-hub init) before generate.
 *   simulate generate --seed N --counties K --schools-per-county M --hubs FILE --out DIR
 *                     [--region CODE] [--schemas-dir DIR]
 *       FILE has one line per county: "COUNTY_ID HUB_URL HUB_PUBLIC_JWK" (whitespace
 *       separated; a relative key path is relative to FILE's folder; '#' starts a comment).
 *       DIR receives: schools/<school_id>/ (a school-agent folder made by the agent's own
 *       init, with its key pair), rosters/<county_id>.csv (for county-hub roster import),
 *       plans/<school_id>.json (plan.h) and, last, region.json (region.h). Every planned
 *       return is checked against its form here already: a plan that a form refuses is a
 *       simulator bug and stops generate. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "plan.h"
#include "region.h"
#include "simulate.h"
#include "common/buf.h"
#include "common/calendar.h"
#include "common/config.h"
#include "common/datadir.h"
#include "common/errlist.h"
#include "common/fileio.h"
#include "common/form.h"
#include "common/log.h"
#include "common/banned.h"

#define HUBS_FILE_MAX (1024u * 1024)
#define GENERATE_WORKERS 8          /* processes setting up schools at once */
#define SEED_MAX 9007199254740991LL /* 2^53 - 1: exact in JSON */

struct hub_entry {
	char url[REGION_URL_MAX];
	char key[PATH_MAX];
};

int sim_counties(int argc, char **argv)
{
	static const char synopsis[] = "simulate counties --counties K [--region CODE]";
	long long counties = 0;
	char *region = NULL;
	const struct config_option options[] = {
	        {"counties", CONFIG_INTEGER, &counties, "how many counties", "K", 1,
	         REGION_COUNTIES_MAX},
	        {"region", CONFIG_STRING, &region,
	         "the prefecture code (default " NAMES_DEFAULT_REGION ")", "CODE", 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};
	char err[512], id[7], name[NAMES_MAX];
	const char *code;
	int next, status = EX_OK;

	if (config_parse_args(options, argc, argv, &next, err, sizeof(err)) < 0 || next != argc ||
	    !counties) {
		fprintf(stderr, "simulate counties: %s\nusage: %s\n",
		        next != argc ? "unexpected argument"
		        : counties   ? err
		                     : "give --counties",
		        synopsis);
		status = EX_USAGE;
		goto out;
	}
	code = region ? region : NAMES_DEFAULT_REGION;
	if (!names_region_code_valid(code)) {
		fprintf(stderr, "simulate counties: '%s' is not a prefecture code\n", code);
		status = EX_USAGE;
		goto out;
	}
	for (long long i = 0; i < counties; i++) {
		if (names_county(code, (size_t)i, id, name) < 0) {
			fprintf(stderr,
			        "simulate counties: the region %s has no room for %lld "
			        "counties\n",
			        code, counties);
			status = EX_USAGE;
			goto out;
		}
		printf("%s\t%s\n", id, name);
	}
out:
	config_release(options);
	return status;
}

/* Reads the hubs file into hubs[] (one per county of g) and sets each county's hub URL. */
static int read_hubs(struct region *g, const char *path, struct hub_entry *hubs)
{
	char *copy = NULL, *folder, *line, *nl;
	struct buf text;
	size_t lineno = 0;
	int r;

	buf_init(&text, HUBS_FILE_MAX);
	r = fileio_read(path, &text);
	if (r < 0) {
		log_errno(r, "failed to read the hubs file '%s'", path);
		goto out;
	}
	copy = strdup(path);
	if (!copy) {
		r = -ENOMEM;
		goto out;
	}
	folder = dirname(copy);
	r = -EINVAL;
	for (line = text.data ? text.data : (char[]){""}; *line;
	     line = nl ? nl + 1 : line + strlen(line)) {
		char id[16], url[REGION_URL_MAX], key[PATH_MAX];
		size_t c;

		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		lineno++;
		line += strspn(line, " \t\r");
		if (!*line || *line == '#')
			continue;
		if (sscanf(line, "%15s %511s %4095s", id, url, key) != 3) {
			log_error("%s: line %zu: expected COUNTY_ID HUB_URL HUB_PUBLIC_JWK", path,
			          lineno);
			goto out;
		}
		for (c = 0; c < g->county_count && strcmp(g->counties[c].id, id) != 0; c++)
			;
		if (c == g->county_count) {
			log_warning("%s: line %zu: county %s is not in the region, ignoring it",
			            path, lineno, id);
			continue;
		}
		snprintf(hubs[c].url, sizeof(hubs[c].url), "%s", url);
		snprintf(g->counties[c].hub, sizeof(g->counties[c].hub), "%s", url);
		if (key[0] == '/')
			snprintf(hubs[c].key, sizeof(hubs[c].key), "%s", key);
		else if (snprintf(hubs[c].key, sizeof(hubs[c].key), "%s/%s", folder, key) >=
		         (int)sizeof(hubs[c].key))
			goto out;
	}
	for (size_t c = 0; c < g->county_count; c++) {
		if (!hubs[c].url[0]) {
			log_error("%s: no hub for county %s (%s); 'simulate counties' lists them",
			          path, g->counties[c].id, g->counties[c].name);
			goto out;
		}
	}
	r = 0;
out:
	free(copy);
	buf_release(&text);
	return r;
}

/* school-agent init for one school, its output going to the log file (fd). */
static int init_school(const struct region *g, const struct sim_school *s,
                       const struct hub_entry *hub, const char *out, const char *schemas,
                       int log_fd)
{
	char dir[PATH_MAX], opened[11], closed[11];
	char *argv[24];
	int argc = 0, saved_out, saved_err, status;

	if (snprintf(dir, sizeof(dir), "%s/schools/%s", out, s->id) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	argv[argc++] = (char *)"init";
	argv[argc++] = (char *)"--dir";
	argv[argc++] = dir;
	argv[argc++] = (char *)"--school-id";
	argv[argc++] = (char *)s->id;
	argv[argc++] = (char *)"--county-id";
	argv[argc++] = (char *)g->counties[s->county].id;
	argv[argc++] = (char *)"--hub";
	argv[argc++] = (char *)hub->url;
	argv[argc++] = (char *)"--county-key";
	argv[argc++] = (char *)hub->key;
	argv[argc++] = (char *)"--name";
	argv[argc++] = (char *)s->name;
	argv[argc++] = (char *)"--schemas-dir";
	argv[argc++] = (char *)schemas;
	if (s->opened.year) {
		date_format(&s->opened, opened);
		argv[argc++] = (char *)"--opened-on";
		argv[argc++] = opened;
	}
	if (s->closed.year) {
		date_format(&s->closed, closed);
		argv[argc++] = (char *)"--closed-on";
		argv[argc++] = closed;
	}
	argv[argc] = NULL;
	/* the agent's init prints the public key for people: into the log */
	fflush(stdout);
	fflush(stderr);
	saved_out = dup(STDOUT_FILENO);
	saved_err = dup(STDERR_FILENO);
	if (saved_out < 0 || saved_err < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
	    dup2(log_fd, STDERR_FILENO) < 0) {
		status = -errno;
	} else {
		status = command_init(argc, argv) == EX_OK ? 0 : -EIO;
		fflush(stdout);
		fflush(stderr);
	}
	if (saved_out >= 0) {
		dup2(saved_out, STDOUT_FILENO);
		close(saved_out);
	}
	if (saved_err >= 0) {
		dup2(saved_err, STDERR_FILENO);
		close(saved_err);
	}
	return status;
}

/* Checks every action of a plan against its form and the calendar. */
static int check_plan(const struct sim_school *s, const cJSON *plan, const struct form_set *forms,
                      const struct calendar *cal)
{
	const cJSON *a, *actions = cJSON_GetObjectItemCaseSensitive(plan, "actions");
	struct errlist errs;
	size_t i = 0;
	int r = 0;

	errlist_init(&errs);
	cJSON_ArrayForEach(a, actions)
	{
		const char *form = cJSON_GetObjectItemCaseSensitive(a, "form")->valuestring;
		const char *period = cJSON_GetObjectItemCaseSensitive(a, "period")->valuestring;
		const struct form *f = form_set_find(forms, form);

		if (!f) {
			log_error("school %s: action %zu: no form '%s' in the schemas", s->id, i,
			          form);
			r = -EINVAL;
			break;
		}
		r = form_check(f, cJSON_GetObjectItemCaseSensitive(a, "data"), &errs);
		if (r == 0 && calendar_period_check(cal, form, period) < 0)
			r = log_errno(-EINVAL, "school %s: action %zu: '%s' is no period of '%s'",
			              s->id, i, period, form);
		if (r > 0) {
			log_error("school %s: action %zu (%s %s) fails its form: %s: %s", s->id, i,
			          form, period, errs.entries[0].pointer, errs.entries[0].message);
			r = -EINVAL;
		}
		if (r < 0)
			break;
		i++;
	}
	errlist_release(&errs);
	return r;
}

static int write_json(const char *path, const cJSON *doc)
{
	char *text = cJSON_Print(doc);
	int r;

	if (!text)
		return -ENOMEM;
	r = fileio_write_atomic(path, text, strlen(text), 0644);
	free(text);
	return r;
}

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static int csv_field(struct buf *b, const char *s)
{
	int r;

	if (!strpbrk(s, ",\"\r\n"))
		return buf_puts(b, s);
	r = buf_putc(b, '"');
	for (; r == 0 && *s; s++)
		r = *s == '"' ? buf_puts(b, "\"\"") : buf_putc(b, *s);
	return r < 0 ? r : buf_putc(b, '"');
}

/* rosters/<county>.csv for county-hub roster import: closed is the first closed day. */
static int write_roster(const struct region *g, size_t county, const char *out)
{
	char path[PATH_MAX], opened[11], closed[11];
	struct buf b;
	int r;

	buf_init(&b, 64u * 1024 * 1024);
	r = buf_puts(&b, "school_id,name,type,opened,closed,key_file\n");
	for (size_t i = 0; r == 0 && i < g->school_count; i++) {
		const struct sim_school *s = &g->schools[i];
		struct date first_closed;

		if (s->county != county)
			continue;
		opened[0] = closed[0] = '\0';
		if (s->opened.year)
			date_format(&s->opened, opened);
		if (s->closed.year) {
			date_from_days(date_to_days(&s->closed) + 1, &first_closed);
			date_format(&first_closed, closed);
		}
		r = buf_printf(&b, "%s,", s->id);
		if (r == 0)
			r = csv_field(&b, s->name);
		if (r == 0)
			r = buf_printf(&b, ",%s,%s,%s,../schools/%s/school.pub.jwk\n",
			               school_type_id(s->type), opened, closed, s->id);
	}
	if (r == 0 && snprintf(path, sizeof(path), "%s/rosters/%s.csv", out,
	                       g->counties[county].id) >= (int)sizeof(path))
		r = -ENAMETOOLONG;
	if (r == 0)
		r = fileio_write_atomic(path, b.data, b.len, 0644);
	buf_release(&b);
	return r;
}

static int make_folders(const char *out)
{
	static const char *const subs[] = {"", "/schools", "/rosters", "/plans"};
	char path[PATH_MAX];
	struct stat st;

	if (snprintf(path, sizeof(path), "%s/region.json", out) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	if (stat(path, &st) == 0) {
		log_error("'%s' already holds a region; remove it or choose another --out", out);
		return -EEXIST;
	}
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
		snprintf(path, sizeof(path), "%s%s", out, subs[i]);
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return log_errno(-errno, "failed to create '%s'", path);
	}
	return 0;
}

/* The schemas folder: the source tree's when this runs from a build tree
 * (<tree>/tools/simulate/simulate), else datadir_schemas(). */
static int find_schemas(char out[static PATH_MAX])
{
	char exe[PATH_MAX], tree[PATH_MAX];
	struct stat st;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n > 0) {
		exe[n] = '\0';
		for (int i = 0; i < 3; i++) {
			char *slash = strrchr(exe, '/');

			if (slash)
				*slash = '\0';
		}
		if (snprintf(tree, sizeof(tree), "%s/schemas/forms", exe) < (int)sizeof(tree) &&
		    stat(tree, &st) == 0 && S_ISDIR(st.st_mode) &&
		    snprintf(out, PATH_MAX, "%s/schemas", exe) < PATH_MAX)
			return 0;
	}
	return datadir_schemas(out, PATH_MAX);
}

/* One school: its agent folder (school-agent init), its plan, checked, in plans/. Adds the
 * plan's actions to *actions. */
static int set_up_school(const struct region *g, size_t i, const struct hub_entry *hubs,
                         const struct form_set *forms, const struct calendar *cal, const char *out,
                         const char *schemas, int log_fd, size_t *actions)
{
	const struct sim_school *s = &g->schools[i];
	char err[1024] = "", path[PATH_MAX];
	cJSON *plan = NULL;
	int r;

	r = init_school(g, s, &hubs[s->county], out, schemas, log_fd);
	if (r < 0)
		return log_errno(r, "school-agent init of school %s failed (see '%s/generate.log')",
		                 s->id, out);
	r = plan_build(g, i, cal, &plan, err, sizeof(err));
	if (r < 0) {
		log_error("the plan of school %s: %s", s->id, err);
		return r;
	}
	r = check_plan(s, plan, forms, cal);
	if (r == 0)
		*actions += (size_t)cJSON_GetArraySize(
		        cJSON_GetObjectItemCaseSensitive(plan, "actions"));
	if (r == 0 && snprintf(path, sizeof(path), "%s/plans/%s.json", out, s->id) > 0)
		r = write_json(path, plan);
	cJSON_Delete(plan);
	if (r < 0)
		log_errno(r, "failed to write the plan of school %s", s->id);
	return r;
}

/* Every school, by GENERATE_WORKERS processes at once (school i by worker i mod W): each
 * school's init waits on its fsyncs, which overlap across processes. The agent's init
 * prints to stdout, so the workers are processes, not threads. Each worker reports its
 * count of actions through a pipe; any failure fails the whole. */
static int set_up_schools(const struct region *g, const struct hub_entry *hubs,
                          const struct form_set *forms, const struct calendar *cal, const char *out,
                          const char *schemas, int log_fd, size_t *actions)
{
	pid_t pids[GENERATE_WORKERS];
	int fds[GENERATE_WORKERS];
	size_t workers = 0, total = 0;
	int r = 0;

	fflush(stdout);
	fflush(stderr);
	for (size_t w = 0; w < GENERATE_WORKERS && w < g->school_count; w++) {
		int pipefd[2];

		if (pipe2(pipefd, O_CLOEXEC) < 0) {
			r = log_errno(-errno, "failed to make a pipe");
			break;
		}
		pids[w] = fork();
		if (pids[w] < 0) {
			r = log_errno(-errno, "failed to start a worker");
			close(pipefd[0]);
			close(pipefd[1]);
			break;
		}
		if (pids[w] == 0) {
			size_t mine = 0;
			int rc = 0;

			close(pipefd[0]);
			for (size_t i = w; rc == 0 && i < g->school_count; i += GENERATE_WORKERS)
				rc = set_up_school(g, i, hubs, forms, cal, out, schemas, log_fd,
				                   &mine);
			if (rc == 0 &&
			    write(pipefd[1], &mine, sizeof(mine)) != (ssize_t)sizeof(mine))
				rc = -EIO;
			_exit(rc == 0 ? 0 : 1);
		}
		close(pipefd[1]);
		fds[w] = pipefd[0];
		workers++;
	}
	for (size_t w = 0; w < workers; w++) {
		size_t theirs = 0;
		int status = 0;

		if (read(fds[w], &theirs, sizeof(theirs)) != (ssize_t)sizeof(theirs))
			theirs = 0;
		close(fds[w]);
		while (waitpid(pids[w], &status, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			if (r == 0)
				r = log_errno(-EIO, "a worker setting up schools failed");
		}
		total += theirs;
	}
	if (r == 0)
		*actions = total;
	return r;
}

struct generate_args {
	long long seed, counties, per_county;
	char *hubs, *out, *region, *schemas;
};

/* Everything but the argument parsing. */
static int generate(const struct generate_args *a, char *schemas)
{
	struct hub_entry *hubs = NULL;
	struct form_set *forms = NULL;
	struct calendar *cal = NULL;
	struct region g = {0};
	char err[1024] = "", path[PATH_MAX];
	size_t actions = 0;
	int r, log_fd = -1;

	r = region_build(&g, (uint64_t)a->seed, a->region ? a->region : NAMES_DEFAULT_REGION,
	                 (size_t)a->counties, (size_t)a->per_county, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		return r;
	}
	hubs = calloc(g.county_count, sizeof(*hubs));
	r = hubs ? read_hubs(&g, a->hubs, hubs) : -ENOMEM;
	if (r < 0)
		goto out;
	r = snprintf(path, sizeof(path), "%s/forms", schemas) < (int)sizeof(path)
	            ? form_set_load_dir(path, &forms, err, sizeof(err))
	            : -ENAMETOOLONG;
	if (r == 0)
		r = snprintf(path, sizeof(path), "%s/campaigns", schemas) < (int)sizeof(path)
		            ? calendar_load_dir(path, &cal, err, sizeof(err))
		            : -ENAMETOOLONG;
	if (r < 0) {
		log_error("%s", err);
		goto out;
	}
	r = make_folders(a->out);
	if (r < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/generate.log", a->out);
	log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (log_fd < 0) {
		r = log_errno(-errno, "failed to open '%s'", path);
		goto out;
	}
	r = set_up_schools(&g, hubs, forms, cal, a->out, schemas, log_fd, &actions);
	if (r < 0)
		goto out;
	for (size_t c = 0; c < g.county_count; c++) {
		r = write_roster(&g, c, a->out);
		if (r < 0) {
			log_errno(r, "failed to write the roster of county %s", g.counties[c].id);
			goto out;
		}
	}
	snprintf(path, sizeof(path), "%s/region.json", a->out);
	r = region_save(&g, path);
	if (r < 0) {
		log_errno(r, "failed to write '%s'", path);
		goto out;
	}
	printf("region %s %s: %zu counties, %zu schools, %zu returns planned, in '%s'\n", g.code,
	       g.name, g.county_count, g.school_count, actions, a->out);
out:
	if (log_fd >= 0)
		close(log_fd);
	form_set_free(forms);
	calendar_free(cal);
	free(hubs);
	region_release(&g);
	return r;
}

int sim_generate(int argc, char **argv)
{
	static const char synopsis[] =
	        "simulate generate --seed N --counties K --schools-per-county M --hubs FILE "
	        "--out DIR [--region CODE] [--schemas-dir DIR]";
	struct generate_args a = {.seed = -1};
	const struct config_option options[] = {
	        {"seed", CONFIG_INTEGER, &a.seed, "the seed: the same seed, the same region", "N",
	         0, SEED_MAX},
	        {"counties", CONFIG_INTEGER, &a.counties, "how many counties", "K", 1,
	         REGION_COUNTIES_MAX},
	        {"schools_per_county", CONFIG_INTEGER, &a.per_county, "schools in each county", "M",
	         1, REGION_SCHOOLS_PER_COUNTY_MAX},
	        {"hubs", CONFIG_STRING, &a.hubs, "COUNTY_ID HUB_URL HUB_PUBLIC_JWK per line",
	         "FILE", 0, 0},
	        {"out", CONFIG_STRING, &a.out, "the folder to fill", "DIR", 0, 0},
	        {"region", CONFIG_STRING, &a.region,
	         "the prefecture code (default " NAMES_DEFAULT_REGION ")", "CODE", 0, 0},
	        {"schemas_dir", CONFIG_STRING, &a.schemas,
	         "forms and calendars (default: the installed ones)", "DIR", 0, 0},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};
	char err[1024], schemas[PATH_MAX];
	int next, r, status = EX_OK;

	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		struct buf help;

		buf_init(&help, 64 * 1024);
		if (config_usage(options, &help) == 0)
			printf("usage: %s\n%s", synopsis, help.data);
		buf_release(&help);
		return EX_OK;
	}
	r = config_parse_args(options, argc, argv, &next, err, sizeof(err));
	if (r < 0 || next != argc || a.seed < 0 || !a.counties || !a.per_county || !a.hubs ||
	    !a.out) {
		fprintf(stderr, "simulate generate: %s\nusage: %s\n",
		        r < 0 ? err
		              : "--seed, --counties, --schools-per-county, --hubs and --out "
		                "are required",
		        synopsis);
		status = EX_USAGE;
		goto out;
	}
	if (a.schemas ? !realpath(a.schemas, schemas) : find_schemas(schemas) < 0) {
		log_error("no schemas folder found%s%s", a.schemas ? " at " : "",
		          a.schemas ? a.schemas : "");
		status = EX_NOINPUT;
		goto out;
	}
	r = generate(&a, schemas);
	if (r < 0)
		status = r == -ENOMEM                   ? EX_OSERR
		         : r == -EINVAL || r == -EEXIST ? EX_DATAERR
		                                        : EX_CANTCREAT;
out:
	config_release(options);
	return status;
}
