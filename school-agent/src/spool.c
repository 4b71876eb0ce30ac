/* The spool of returns: see spool.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "agent.h"
#include "spool.h"
#include "common/buf.h"
#include "common/fileio.h"
#include "common/ids.h"
#include "common/json.h"
#include "common/jws.h"
#include "common/banned.h"

static const char *const folders[] = {
        [SPOOL_QUEUED] = AGENT_OUTBOX,
        [SPOOL_SENT] = AGENT_SENT,
        [SPOOL_REJECTED] = AGENT_REJECTED,
};
static const char *const state_names[] = {
        [SPOOL_QUEUED] = "queued",
        [SPOOL_SENT] = "sent",
        [SPOOL_REJECTED] = "rejected",
};
static const char *const extras[] = {
        [SPOOL_QUEUED] = ".retry",
        [SPOOL_SENT] = ".receipt",
        [SPOOL_REJECTED] = ".error.json",
};

const char *spool_folder(enum spool_state s)
{
	return folders[s];
}

const char *spool_state_name(enum spool_state s)
{
	return state_names[s];
}

static int fsync_dir(const char *path)
{
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int spool_create(const struct agent *a)
{
	char path[PATH_MAX];
	int r;

	for (size_t i = 0; i < sizeof(folders) / sizeof(folders[0]); i++) {
		r = agent_path(a, path, sizeof(path), "%s", folders[i]);
		if (r < 0)
			return r;
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return -errno;
	}
	return fsync_dir(a->dir);
}

static int item_path(const struct agent *a, enum spool_state s, const char *id, const char *ext,
                     char *out, size_t outlen)
{
	return agent_path(a, out, outlen, "%s/%s%s", folders[s], id, ext);
}

int spool_find(const struct agent *a, const char *id, enum spool_state *ret_state)
{
	char path[PATH_MAX];
	struct stat st;
	int r;

	for (int s = SPOOL_QUEUED; s <= SPOOL_REJECTED; s++) {
		r = item_path(a, (enum spool_state)s, id, ".jws", path, sizeof(path));
		if (r < 0)
			return r;
		if (stat(path, &st) == 0) {
			*ret_state = (enum spool_state)s;
			return 0;
		}
		if (errno != ENOENT)
			return -errno;
	}
	return -ENOENT;
}

int spool_queue(const struct agent *a, const char *id, const void *text, size_t len)
{
	enum spool_state s;
	char path[PATH_MAX];
	int r;

	r = spool_find(a, id, &s);
	if (r == 0)
		return -EEXIST;
	if (r != -ENOENT)
		return r;
	r = item_path(a, SPOOL_QUEUED, id, ".jws", path, sizeof(path));
	if (r < 0)
		return r;
	return fileio_write_atomic(path, text, len, 0600);
}

int spool_read(const struct agent *a, enum spool_state s, const char *id, struct buf *out)
{
	char path[PATH_MAX];
	int r;

	r = item_path(a, s, id, ".jws", path, sizeof(path));
	if (r < 0)
		return r;
	return fileio_read(path, out);
}

int spool_read_extra(const struct agent *a, enum spool_state s, const char *id, struct buf *out)
{
	char path[PATH_MAX];
	int r;

	r = item_path(a, s, id, extras[s], path, sizeof(path));
	if (r < 0)
		return r;
	return fileio_read(path, out);
}

/* Writes the companion, then moves the JWS from the outbox to s, durably. */
static int move_out(const struct agent *a, enum spool_state s, const char *id, const void *extra,
                    size_t len)
{
	char from[PATH_MAX], to[PATH_MAX], companion[PATH_MAX], dir[PATH_MAX];
	int r;

	if ((r = item_path(a, SPOOL_QUEUED, id, ".jws", from, sizeof(from))) < 0 ||
	    (r = item_path(a, s, id, ".jws", to, sizeof(to))) < 0 ||
	    (r = item_path(a, s, id, extras[s], companion, sizeof(companion))) < 0)
		return r;
	r = fileio_write_atomic(companion, extra, len, 0600);
	if (r < 0)
		return r;
	if (rename(from, to) < 0)
		return -errno;
	/* the new name first: losing it would lose the return, a stale old name only
	 * sends it again */
	r = fileio_fsync_parent(to);
	if (r < 0)
		return r;
	r = spool_write_retry(a, id, NULL);
	if (r < 0)
		return r;
	r = agent_path(a, dir, sizeof(dir), "%s", folders[SPOOL_QUEUED]);
	if (r < 0)
		return r;
	return fsync_dir(dir);
}

int spool_mark_sent(const struct agent *a, const char *id, const void *receipt, size_t len)
{
	return move_out(a, SPOOL_SENT, id, receipt, len);
}

int spool_mark_rejected(const struct agent *a, const char *id, const void *error_body, size_t len)
{
	return move_out(a, SPOOL_REJECTED, id, error_body, len);
}

int spool_write_retry(const struct agent *a, const char *id, const char *text)
{
	char path[PATH_MAX];
	int r;

	r = item_path(a, SPOOL_QUEUED, id, extras[SPOOL_QUEUED], path, sizeof(path));
	if (r < 0)
		return r;
	if (text)
		return fileio_write_atomic(path, text, strlen(text), 0600);
	if (unlink(path) < 0)
		return errno == ENOENT ? 0 : -errno;
	return 0;
}

int spool_name_id(const char *name, char ret[static IDS_UUID_LEN + 1])
{
	size_t n = strlen(name);

	if (n != IDS_UUID_LEN + 4 || strcmp(name + IDS_UUID_LEN, ".jws") != 0 ||
	    ids_uuid_check(name, IDS_UUID_LEN) < 0)
		return 0;
	memcpy(ret, name, IDS_UUID_LEN);
	ret[IDS_UUID_LEN] = '\0';
	return 1;
}

static int compare_ids(const void *x, const void *y)
{
	return strcmp(x, y);
}

void spool_list_release(struct spool_list *l)
{
	free(l->ids);
	l->ids = NULL;
	l->count = l->alloc = 0;
}

int spool_list(const struct agent *a, enum spool_state s, struct spool_list *ret)
{
	struct spool_list l = {0};
	char path[PATH_MAX], id[IDS_UUID_LEN + 1];
	struct dirent *e;
	DIR *d;
	int r = 0;

	r = agent_path(a, path, sizeof(path), "%s", folders[s]);
	if (r < 0)
		return r;
	d = opendir(path);
	if (!d)
		return -errno;
	for (;;) {
		errno = 0;
		e = readdir(d);
		if (!e) {
			r = -errno;
			break;
		}
		if (!spool_name_id(e->d_name, id))
			continue;
		if (l.count == l.alloc) {
			size_t n = l.alloc ? 2 * l.alloc : 256;
			void *p;

			if (l.count >= SPOOL_LIST_MAX) {
				r = -E2BIG;
				break;
			}
			p = realloc(l.ids, n * sizeof(*l.ids));
			if (!p) {
				r = -ENOMEM;
				break;
			}
			l.ids = p;
			l.alloc = n;
		}
		memcpy(l.ids[l.count++], id, sizeof(id));
	}
	closedir(d);
	if (r < 0) {
		spool_list_release(&l);
		return r;
	}
	if (l.count > 1)
		qsort(l.ids, l.count, sizeof(*l.ids), compare_ids);
	*ret = l;
	return 0;
}

static int copy_member(const cJSON *payload, const char *name, char *out, size_t outlen,
                       int nullable)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(payload, name);

	if (nullable && cJSON_IsNull(v)) {
		out[0] = '\0';
		return 0;
	}
	if (!cJSON_IsString(v) || strlen(v->valuestring) >= outlen)
		return -EBADMSG;
	memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
	return 0;
}

int spool_item_parse(const char *text, size_t len, struct spool_item *ret, char *err, size_t errlen)
{
	struct spool_item item = {0};
	cJSON *payload = NULL;
	struct jws jws;
	char why[256];
	int r;

	jws_init(&jws);
	r = jws_parse(&jws, text, len, SPOOL_ITEM_MAX, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "not a JWS: %s", why);
		goto out;
	}
	r = json_parse_untrusted((const char *)jws.payload, jws.payload_len, JSON_MAX_DEPTH,
	                         &payload, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "the payload is not JSON: %s", why);
		goto out;
	}
	if (copy_member(payload, "submission_id", item.id, sizeof(item.id), 0) < 0 ||
	    copy_member(payload, "form", item.form, sizeof(item.form), 0) < 0 ||
	    copy_member(payload, "period", item.period, sizeof(item.period), 0) < 0 ||
	    copy_member(payload, "created_at", item.created_at, sizeof(item.created_at), 0) < 0 ||
	    copy_member(payload, "supersedes", item.supersedes, sizeof(item.supersedes), 1) < 0) {
		snprintf(err, errlen, "the payload lacks a member of a submission");
		r = -EBADMSG;
		goto out;
	}
	ids_sha256_hex(jws.payload, jws.payload_len, item.sha256);
	*ret = item;
	r = 0;
out:
	if (r < 0 && r != -ENOMEM)
		r = -EBADMSG;
	cJSON_Delete(payload);
	jws_release(&jws);
	return r;
}
