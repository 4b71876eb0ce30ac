/* The spool of returns: see spool.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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
#include "common/log.h"
#include "common/banned.h"

#define BATCH_MARK "batch.json" /* in a batch folder: {"source": ..., "complete": bool} */
#define BATCH_MARK_MAX (16u * 1024)
#define BATCH_TRIES 3
#define FLUSH_THREADS 16 /* a group's fdatasyncs in flight at once */

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
	static const char *const names[] = {AGENT_OUTBOX, AGENT_SENT, AGENT_REJECTED,
	                                    AGENT_STAGING};
	char path[PATH_MAX];
	int r;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		r = agent_path(a, path, sizeof(path), "%s", names[i]);
		if (r < 0)
			return r;
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return -errno;
	}
	return fsync_dir(a->dir);
}

/* Writes len bytes as path (mode 0600), not durably, and leaves it open: its descriptor
 * into *ret_fd. flags: O_EXCL or O_TRUNC. No file is left behind on failure. */
static int create_file(const char *path, const void *data, size_t len, int flags, int *ret_fd)
{
	int fd, r;

	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0600);
	if (fd < 0)
		return -errno;
	r = fchmod(fd, 0600) < 0 ? -errno : 0;
	if (r == 0)
		r = fileio_write_all(fd, data, len);
	if (r < 0) {
		close(fd);
		unlink(path);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

/* The same, closed: not durable, a syncfs makes it so. */
static int write_file(const char *path, const void *data, size_t len, int flags)
{
	int fd, r;

	r = create_file(path, data, len, flags, &fd);
	if (r < 0)
		return r;
	if (close(fd) < 0) {
		r = -errno;
		unlink(path);
	}
	return r;
}

/* Every step-th of n descriptors from first, fdatasynced on a thread of its own. */
struct flush_slice {
	const int *fds;
	size_t n, first, step;
	pthread_t thread;
	int threaded;
	int result; /* 0 or the first error */
};

static void *flush_slice_run(void *data)
{
	struct flush_slice *f = data;

	f->result = 0;
	for (size_t i = f->first; i < f->n; i += f->step)
		if (fdatasync(f->fds[i]) < 0 && f->result == 0)
			f->result = -errno;
	return NULL;
}

/* fdatasync of n files, FLUSH_THREADS at a time rather than one after another: the disk
 * takes their writes and cache flushes together. Waits for every one; 0 or the first
 * error. */
static int fdatasync_all(const int *fds, size_t n)
{
	struct flush_slice slices[FLUSH_THREADS];
	size_t k = n < FLUSH_THREADS ? n : FLUSH_THREADS;
	int r = 0;

	for (size_t j = 0; j < k; j++) {
		struct flush_slice *f = &slices[j];

		*f = (struct flush_slice){.fds = fds, .n = n, .first = j, .step = k};
		/* the last slice on this thread, the others on threads of their own (here too
		 * when none can be made) */
		f->threaded =
		        j + 1 < k && pthread_create(&f->thread, NULL, flush_slice_run, f) == 0;
		if (!f->threaded)
			flush_slice_run(f);
	}
	for (size_t j = 0; j < k; j++) {
		if (slices[j].threaded)
			pthread_join(slices[j].thread, NULL);
		r = r < 0 ? r : slices[j].result;
	}
	return r;
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

int spool_mark_rejected(const struct agent *a, const char *id, const void *error_body, size_t len)
{
	return move_out(a, SPOOL_REJECTED, id, error_body, len);
}

int spool_mark_sent_group(const struct agent *a, struct spool_sent *items, size_t n)
{
	char from[PATH_MAX], to[PATH_MAX], sent[PATH_MAX], outbox[PATH_MAX];
	size_t opened = 0;
	int *fds = NULL, r, e;

	for (size_t i = 0; i < n; i++)
		items[i].moved = 0;
	if (n == 0)
		return 0;
	if ((r = agent_path(a, sent, sizeof(sent), "%s", folders[SPOOL_SENT])) < 0 ||
	    (r = agent_path(a, outbox, sizeof(outbox), "%s", folders[SPOOL_QUEUED])) < 0)
		return r;
	fds = calloc(n, sizeof(*fds));
	if (!fds)
		return -ENOMEM;
	/* the receipts first, all durable: written, fdatasynced together, and their names
	 * by an fsync of sent/. Written in place: while its return is queued a torn receipt
	 * is never read, and a resend writes it again */
	for (size_t i = 0; i < n && r == 0; i++) {
		r = item_path(a, SPOOL_SENT, items[i].id, extras[SPOOL_SENT], to, sizeof(to));
		if (r == 0)
			r = create_file(to, items[i].receipt, items[i].len, O_TRUNC, &fds[opened]);
		if (r == 0)
			opened++;
	}
	if (r == 0)
		r = fdatasync_all(fds, opened);
	for (size_t i = 0; i < opened; i++)
		if (close(fds[i]) < 0 && r == 0)
			r = -errno;
	free(fds);
	if (r == 0)
		r = fsync_dir(sent);
	if (r < 0)
		return r;
	/* ... then the returns beside them: the new names first, a stale old name only
	 * sends a return again */
	for (size_t i = 0; i < n; i++) {
		if ((e = item_path(a, SPOOL_QUEUED, items[i].id, ".jws", from, sizeof(from))) < 0 ||
		    (e = item_path(a, SPOOL_SENT, items[i].id, ".jws", to, sizeof(to))) < 0) {
			r = r < 0 ? r : e;
			continue;
		}
		if (rename(from, to) < 0) {
			r = r < 0 ? r : -errno;
			continue;
		}
		items[i].moved = 1;
	}
	for (size_t i = 0; i < n; i++)
		if (items[i].moved && items[i].retry) {
			e = spool_write_retry(a, items[i].id, NULL);
			r = r < 0 ? r : e;
		}
	e = fsync_dir(sent);
	r = r < 0 ? r : e;
	e = fsync_dir(outbox);
	return r < 0 ? r : e;
}

int spool_requeue(const struct agent *a, const char *id, char *err, size_t errlen)
{
	char from[PATH_MAX], to[PATH_MAX], dir[PATH_MAX];
	struct spool_item item;
	struct buf text;
	char why[512];
	int r;

	buf_init(&text, SPOOL_ITEM_MAX);
	r = spool_read(a, SPOOL_REJECTED, id, &text);
	if (r < 0) {
		snprintf(err, errlen, "%s", r == -ENOENT ? "not a rejected return" : strerror(-r));
		goto out;
	}
	r = spool_item_parse(text.data, text.len, &item, why, sizeof(why));
	if (r == 0 && strcmp(item.id, id) != 0) {
		snprintf(why, sizeof(why), "its submission_id is \"%s\"", item.id);
		r = -EBADMSG;
	}
	if (r < 0) {
		snprintf(err, errlen, "%s/%s.jws is not a return of this agent: %s",
		         folders[SPOOL_REJECTED], id, why);
		goto out;
	}
	if ((r = item_path(a, SPOOL_REJECTED, id, ".jws", from, sizeof(from))) < 0 ||
	    (r = item_path(a, SPOOL_QUEUED, id, ".jws", to, sizeof(to))) < 0 ||
	    (r = agent_path(a, dir, sizeof(dir), "%s", folders[SPOOL_QUEUED])) < 0)
		goto fail;
	if (rename(from, to) < 0) {
		r = -errno;
		goto fail;
	}
	r = fsync_dir(dir);
	if (r < 0)
		goto fail;
	/* queued now: the hub's old answer goes */
	if ((r = item_path(a, SPOOL_REJECTED, id, extras[SPOOL_REJECTED], from, sizeof(from))) <
	            0 ||
	    (r = agent_path(a, dir, sizeof(dir), "%s", folders[SPOOL_REJECTED])) < 0)
		goto fail;
	if (unlink(from) < 0 && errno != ENOENT) {
		r = -errno;
		goto fail;
	}
	r = fsync_dir(dir);
fail:
	if (r < 0)
		snprintf(err, errlen, "%s", strerror(-r));
out:
	buf_release(&text);
	return r;
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

/* The batch mark: {"source": ..., "complete": bool, "returns": n}. */
static int write_mark(const struct spool_batch *b, int complete)
{
	char path[PATH_MAX];
	cJSON *root = cJSON_CreateObject();
	char *text = NULL;
	int r = -ENOMEM;

	if (!root || !cJSON_AddStringToObject(root, "source", b->source) ||
	    !cJSON_AddBoolToObject(root, "complete", complete) ||
	    !cJSON_AddNumberToObject(root, "returns", (double)b->count) ||
	    !(text = cJSON_PrintUnformatted(root)))
		goto out;
	r = -ENAMETOOLONG;
	if (snprintf(path, sizeof(path), "%s/%s", b->dir, BATCH_MARK) >= (int)sizeof(path))
		goto out;
	/* the mark of completion must be durable, the first one need not */
	if (complete)
		r = fileio_write_atomic(path, text, strlen(text), 0600);
	else
		r = write_file(path, text, strlen(text), O_TRUNC);
out:
	cJSON_free(text);
	cJSON_Delete(root);
	return r;
}

/* Removes the files of folder dir (not sub-folders: a batch has none) and dir. */
static int remove_folder(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int r = 0;

	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
			r = r < 0 ? r : -ENAMETOOLONG;
		else if (unlink(path) < 0 && errno != ENOENT && r == 0)
			r = -errno;
	}
	closedir(d);
	if (rmdir(dir) < 0 && errno != ENOENT && r == 0)
		r = -errno;
	return r;
}

int spool_batch_begin(const struct agent *a, const char *source, struct spool_batch *ret)
{
	struct spool_batch b = {.fd = -1};
	char staging[PATH_MAX];
	struct stat st;
	int r;

	r = agent_path(a, staging, sizeof(staging), AGENT_STAGING);
	if (r < 0)
		return r;
	/* a folder made before staging/ existed */
	if (mkdir(staging, 0700) == 0) {
		r = fsync_dir(a->dir);
		if (r < 0)
			return r;
	} else if (errno != EEXIST) {
		return -errno;
	}
	snprintf(b.source, sizeof(b.source), "%s", source);
	for (int i = 0; i < BATCH_TRIES && b.fd < 0; i++) {
		if (snprintf(b.dir, sizeof(b.dir), "%s/import.XXXXXX", staging) >=
		    (int)sizeof(b.dir))
			return -ENAMETOOLONG;
		if (!mkdtemp(b.dir))
			return -errno;
		b.fd = open(b.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (b.fd < 0) {
			r = -errno;
			rmdir(b.dir);
			return r;
		}
		/* a recovery may have taken the new folder for an abandoned one and removed
		 * it before the lock: then make another */
		if (flock(b.fd, LOCK_EX) < 0 || fstat(b.fd, &st) < 0) {
			r = -errno;
			close(b.fd);
			rmdir(b.dir);
			return r;
		}
		if (st.st_nlink == 0) {
			close(b.fd);
			b.fd = -1;
		}
	}
	if (b.fd < 0)
		return -EAGAIN;
	r = write_mark(&b, 0);
	if (r < 0) {
		spool_batch_abort(&b);
		return r;
	}
	*ret = b;
	return 0;
}

int spool_batch_add(struct spool_batch *b, const char *id, const void *text, size_t len)
{
	char path[PATH_MAX];
	int r;

	if (snprintf(path, sizeof(path), "%s/%s.jws", b->dir, id) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	r = write_file(path, text, len, O_EXCL);
	if (r == 0)
		b->count++;
	return r;
}

void spool_batch_abort(struct spool_batch *b)
{
	if (b->fd < 0)
		return;
	(void)remove_folder(b->dir);
	close(b->fd);
	b->fd = -1;
}

/* Moves the returns of the complete batch folder dir into the outbox and removes it; the
 * returns it moved into *ret_moved. With recovering (after a crash) a return may already
 * be in a folder of the spool: then only the batch's copy goes. */
static int finish_batch(const struct agent *a, const char *dir, int recovering, size_t *ret_moved)
{
	char from[PATH_MAX], to[PATH_MAX], outbox[PATH_MAX], id[IDS_UUID_LEN + 1];
	enum spool_state st;
	struct dirent *e;
	size_t moved = 0;
	DIR *d;
	int r, e2;

	r = agent_path(a, outbox, sizeof(outbox), "%s", folders[SPOOL_QUEUED]);
	if (r < 0)
		return r;
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (!spool_name_id(e->d_name, id))
			continue;
		if (snprintf(from, sizeof(from), "%s/%s", dir, e->d_name) >= (int)sizeof(from)) {
			r = -ENAMETOOLONG;
			break;
		}
		if (recovering && spool_find(a, id, &st) == 0) {
			unlink(from);
			continue;
		}
		if ((e2 = item_path(a, SPOOL_QUEUED, id, ".jws", to, sizeof(to))) < 0 ||
		    rename(from, to) < 0) {
			r = e2 < 0 ? e2 : -errno;
			break;
		}
		moved++;
	}
	closedir(d);
	e2 = fsync_dir(outbox);
	if (r < 0 || e2 < 0)
		return r < 0 ? r : e2;
	/* queued: the batch folder goes */
	r = remove_folder(dir);
	if (r == 0)
		r = fileio_fsync_parent(dir);
	if (r < 0)
		return r;
	*ret_moved = moved;
	return 0;
}

int spool_batch_commit(const struct agent *a, struct spool_batch *b)
{
	size_t moved;
	int r;

	if (b->fd < 0)
		return -EBADF;
	/* every return of the batch durable (syncfs: one flush for them all, and it reports
	 * the write-back errors since the batch folder was opened), then the mark that makes
	 * the batch complete */
	r = syncfs(b->fd) < 0 ? -errno : 0;
	if (r == 0)
		r = write_mark(b, 1);
	if (r < 0) {
		spool_batch_abort(b);
		return r;
	}
	/* queued now, whatever happens: a move left unfinished is finished by the next
	 * recovery */
	r = finish_batch(a, b->dir, 0, &moved);
	close(b->fd);
	b->fd = -1;
	return r < 0 ? 1 : 0;
}

/* 1 when the mark of batch folder dir says it is complete; its source into source. */
static int batch_complete(const char *dir, char *source, size_t sourcelen)
{
	char path[PATH_MAX];
	const cJSON *c, *src;
	cJSON *root = NULL;
	struct buf text;
	int complete = 0;

	snprintf(source, sourcelen, "(unknown)");
	buf_init(&text, BATCH_MARK_MAX);
	if (snprintf(path, sizeof(path), "%s/%s", dir, BATCH_MARK) < (int)sizeof(path) &&
	    fileio_read(path, &text) == 0 &&
	    json_parse_untrusted(text.data ? text.data : "", text.len, 4, &root, NULL, 0) == 0) {
		c = cJSON_GetObjectItemCaseSensitive(root, "complete");
		src = cJSON_GetObjectItemCaseSensitive(root, "source");
		complete = cJSON_IsTrue(c);
		if (cJSON_IsString(src))
			snprintf(source, sourcelen, "%s", src->valuestring);
	}
	cJSON_Delete(root);
	buf_release(&text);
	return complete;
}

int spool_recover(const struct agent *a)
{
	char staging[PATH_MAX], dir[PATH_MAX], source[256];
	size_t total = 0;
	struct dirent *e;
	struct stat st;
	DIR *d;
	int r = 0, fd;

	r = agent_path(a, staging, sizeof(staging), AGENT_STAGING);
	if (r < 0)
		return r;
	d = opendir(staging);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d))) {
		size_t moved = 0;
		int e2;

		if (e->d_name[0] == '.' ||
		    snprintf(dir, sizeof(dir), "%s/%s", staging, e->d_name) >= (int)sizeof(dir))
			continue;
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			continue;
		/* held: an import at work */
		if (flock(fd, LOCK_EX | LOCK_NB) < 0 || fstat(fd, &st) < 0 || st.st_nlink == 0) {
			close(fd);
			continue;
		}
		if (batch_complete(dir, source, sizeof(source))) {
			e2 = finish_batch(a, dir, 1, &moved);
			if (e2 < 0) {
				log_errno(e2, "failed to finish queueing the import of '%s'",
				          source);
				r = r < 0 ? r : e2;
			} else {
				log_info("queued %zu returns of an import of '%s' that "
				         "stopped after every row was checked and written",
				         moved, source);
				total += moved;
			}
		} else {
			e2 = remove_folder(dir);
			if (e2 < 0)
				r = r < 0 ? r : e2;
			log_warning(
			        "removed an unfinished import of '%s' (stopped before every row "
			        "was checked and written): none of it is queued; run it again",
			        source);
		}
		close(fd);
	}
	closedir(d);
	return r < 0 ? r : (int)(total > INT_MAX ? INT_MAX : total);
}

/* 1 when name is "<uuid>" ext, and then the id into ret. */
static int name_id_ext(const char *name, const char *ext, char ret[static IDS_UUID_LEN + 1])
{
	if (strlen(name) != IDS_UUID_LEN + strlen(ext) || strcmp(name + IDS_UUID_LEN, ext) != 0 ||
	    ids_uuid_check(name, IDS_UUID_LEN) < 0)
		return 0;
	memcpy(ret, name, IDS_UUID_LEN);
	ret[IDS_UUID_LEN] = '\0';
	return 1;
}

int spool_name_id(const char *name, char ret[static IDS_UUID_LEN + 1])
{
	return name_id_ext(name, ".jws", ret);
}

static int compare_ids(const void *x, const void *y)
{
	return strcmp(x, y);
}

void spool_list_release(struct spool_list *l)
{
	free(l->ids);
	free(l->extra);
	l->ids = NULL;
	l->extra = NULL;
	l->count = l->alloc = 0;
}

/* Appends id to l, growing it up to SPOOL_LIST_MAX ids. */
static int list_add(struct spool_list *l, const char *id)
{
	if (l->count == l->alloc) {
		size_t n = l->alloc ? 2 * l->alloc : 256;
		void *p;

		if (l->count >= SPOOL_LIST_MAX)
			return -E2BIG;
		p = realloc(l->ids, n * sizeof(*l->ids));
		if (!p)
			return -ENOMEM;
		l->ids = p;
		l->alloc = n;
	}
	memcpy(l->ids[l->count++], id, IDS_UUID_LEN + 1);
	return 0;
}

/* Sets l->extra from the ids of the companion files listed (sorted l->ids). */
static int mark_extras(struct spool_list *l, const struct spool_list *companions)
{
	if (companions->count == 0 || l->count == 0)
		return 0;
	l->extra = calloc(l->count, 1);
	if (!l->extra)
		return -ENOMEM;
	for (size_t i = 0; i < companions->count; i++) {
		const char(*found)[IDS_UUID_LEN + 1] =
		        bsearch(companions->ids[i], l->ids, l->count, sizeof(*l->ids), compare_ids);

		if (found)
			l->extra[found - l->ids] = 1;
	}
	return 0;
}

int spool_list(const struct agent *a, enum spool_state s, struct spool_list *ret)
{
	struct spool_list l = {0}, companions = {0};
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
		if (spool_name_id(e->d_name, id))
			r = list_add(&l, id);
		else if (name_id_ext(e->d_name, extras[s], id))
			r = list_add(&companions, id);
		if (r < 0)
			break;
	}
	closedir(d);
	if (r == 0 && l.count > 1)
		qsort(l.ids, l.count, sizeof(*l.ids), compare_ids);
	if (r == 0)
		r = mark_extras(&l, &companions);
	spool_list_release(&companions);
	if (r < 0) {
		spool_list_release(&l);
		return r;
	}
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
