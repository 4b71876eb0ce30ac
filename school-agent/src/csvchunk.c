/* A CSV file in pieces that end at record boundaries: see csvchunk.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/csv.h"
#include "csvchunk.h"
#include "common/banned.h"

void csv_chunker_init_fd(struct csv_chunker *c, int fd, size_t read, size_t target, size_t max)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->read = read;
	c->target = target;
	c->max = max;
	buf_init(&c->raw, max);
}

int csv_chunker_open(struct csv_chunker *c, const char *path)
{
	struct stat st;

	csv_chunker_init_fd(c, -1, CSVCHUNK_READ, CSVCHUNK_TARGET, CSVCHUNK_MAX);
	c->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (c->fd < 0)
		return -errno;
	c->own_fd = 1;
	if (fstat(c->fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > (off_t)CSV_FILE_MAX)
		return -EMSGSIZE;
	return 0;
}

void csv_chunker_close(struct csv_chunker *c)
{
	if (c->own_fd && c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->own_fd = 0;
	buf_release(&c->raw);
}

/* Scans the first len bytes of raw: the end of the last whole record in them (0: none)
 * into *ret_cut, with the line breaks before it; returns all the line breaks. */
static size_t scan(const struct csv_chunker *c, size_t len, size_t *ret_cut, size_t *ret_cut_breaks)
{
	const char *s = c->raw.data;
	size_t cut = 0, breaks = 0, at_cut = 0;
	int quoted = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"') {
			quoted = !quoted;
		} else if (s[i] == '\n' || s[i] == '\r') {
			/* the CR of a CRLF is no break of its own, nor a CR that may be one */
			if (s[i] == '\r' && (i + 1 < c->raw.len ? s[i + 1] == '\n' : !c->eof))
				continue;
			breaks++;
			if (!quoted) {
				cut = i + 1;
				at_cut = breaks;
			}
		}
	}
	*ret_cut = cut;
	*ret_cut_breaks = at_cut;
	return breaks;
}

/* Reads up to c->read more bytes into raw. */
static int fill(struct csv_chunker *c)
{
	size_t got = 0;
	ssize_t n;
	int r;

	while (got < c->read && c->raw.len < c->max && !c->eof) {
		size_t want = c->read - got;

		if (want > c->max - c->raw.len)
			want = c->max - c->raw.len;
		r = buf_reserve(&c->raw, want);
		if (r < 0)
			return r;
		n = read(c->fd, c->raw.data + c->raw.len, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			c->eof = 1;
		c->raw.len += (size_t)n;
		c->raw.data[c->raw.len] = '\0';
		c->total += (size_t)n;
		got += (size_t)n;
		if (c->total > CSV_FILE_MAX)
			return -EMSGSIZE;
	}
	return 0;
}

int csv_chunker_next(struct csv_chunker *c, const char **ret_text, size_t *ret_len)
{
	size_t cut = 0, breaks = 0;
	int r;

	if (c->handed) {
		memmove(c->raw.data, c->raw.data + c->handed, c->raw.len - c->handed);
		c->raw.len -= c->handed;
		c->raw.data[c->raw.len] = '\0';
		c->handed = 0;
		c->lines += c->breaks;
	}
	for (;;) {
		if (c->eof || c->raw.len >= c->max) {
			/* the rest (its last record may lack a line break), or no boundary in
			 * sight: the parser says what is wrong */
			cut = c->raw.len;
			breaks = scan(c, cut, &(size_t){0}, &(size_t){0});
			break;
		}
		if (c->raw.len >= c->target) {
			scan(c, c->raw.len, &cut, &breaks);
			if (cut > 0)
				break;
		}
		r = fill(c);
		if (r < 0)
			return r;
	}
	if (cut == 0)
		return 0;
	c->handed = cut;
	c->breaks = breaks;
	*ret_text = c->raw.data;
	*ret_len = cut;
	return 1;
}

void csv_chunker_shift_lines(char *err, size_t errlen, size_t offset)
{
	char out[1024];
	const char *p = err;
	size_t n = 0;

	if (offset == 0)
		return;
	while (*p && n + 1 < sizeof(out)) {
		if (strncmp(p, "line ", 5) == 0 && p[5] >= '0' && p[5] <= '9') {
			char *end;
			unsigned long long line = strtoull(p + 5, &end, 10);
			int k = snprintf(out + n, sizeof(out) - n, "line %llu",
			                 line + (unsigned long long)offset);

			if (k < 0 || (size_t)k >= sizeof(out) - n)
				break;
			n += (size_t)k;
			p = end;
			continue;
		}
		out[n++] = *p++;
	}
	if (n >= errlen)
		n = errlen - 1;
	memcpy(err, out, n);
	err[n] = '\0';
}
