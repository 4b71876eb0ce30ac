/* Whole-file reads with a size cap, and durable atomic replacement of a file: write a
 * temporary file in the same folder, fsync it, rename it over the target, fsync the
 * folder. After fileio_write_atomic() returns 0 the new contents survive a crash or a
 * power cut; before, the old contents (or no file) remain: never a torn file. */
#ifndef COMMON_FILEIO_H
#define COMMON_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

#include "common/macro.h"

struct buf;

/* Appends the contents of path to out. -EMSGSIZE when they exceed out's maximum (out is
 * then left as it was), -errno of open/read otherwise. */
int fileio_read(const char *path, struct buf *out) WUR;

/* Replaces path with len bytes of data, created with mode (e.g. 0600 for a private key),
 * durably as described above. -errno on failure; no temporary file is left behind. */
int fileio_write_atomic(const char *path, const void *data, size_t len, mode_t mode) WUR;

/* Writes all len bytes to fd, retrying short writes and EINTR. 0 or -errno. */
int fileio_write_all(int fd, const void *data, size_t len) WUR;

/* fsync of the folder holding path (a new or renamed entry is durable only after it). */
int fileio_fsync_parent(const char *path) WUR;

#endif
