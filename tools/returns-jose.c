/* returns-jose: make and check the keys and JWSs of the pipeline by hand, and let the
 * integration tests compare ours with another JOSE implementation.
 *   returns-jose keygen --kid KID PRIVATE.jwk PUBLIC.jwk
 *   returns-jose sign PRIVATE.jwk KID PAYLOAD_FILE      (the JWS on stdout)
 *   returns-jose verify PUBLIC.jwk JWS_FILE             (the payload on stdout)
 *   returns-jose thumbprint KEY.jwk
 * A file name "-" reads standard input. Exit status: 0 done (verify: valid), 1 failed
 * (verify: invalid; the reason on stderr), 2 wrong usage. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/jwk.h"
#include "common/jws.h"
#include "common/banned.h"

#define PROGRAM "returns-jose"

static int PRINTF_LIKE(1, 2) fail(const char *fmt, ...)
{
	va_list ap;

	fputs(PROGRAM ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

static int usage(void)
{
	fputs("usage: " PROGRAM " keygen --kid KID PRIVATE.jwk PUBLIC.jwk\n"
	      "       " PROGRAM " sign PRIVATE.jwk KID PAYLOAD_FILE\n"
	      "       " PROGRAM " verify PUBLIC.jwk JWS_FILE\n"
	      "       " PROGRAM " thumbprint KEY.jwk\n",
	      stderr);
	return 2;
}

/* The whole file (or stdin for "-") into b, at most b->max bytes. */
static int read_file(const char *path, struct buf *b)
{
	char chunk[65536];
	int fd, r = 0;

	fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail("cannot open '%s': %s", path, strerror(errno));
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = fail("cannot read '%s': %s", path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if (buf_append(b, chunk, (size_t)n) < 0) {
			r = fail("'%s' is larger than %zu bytes", path, b->max);
			break;
		}
	}
	if (fd != STDIN_FILENO)
		close(fd);
	return r;
}

static int cmd_keygen(int argc, char **argv)
{
	const char *kid, *priv, *pub;
	char err[512];
	struct jwk k;
	int r;

	if (argc != 5 || strcmp(argv[1], "--kid") != 0)
		return usage();
	kid = argv[2];
	priv = argv[3];
	pub = argv[4];
	/* a key pair is not something to overwrite by accident */
	if (access(priv, F_OK) == 0)
		return fail("'%s' exists, not overwriting it", priv);
	if (access(pub, F_OK) == 0)
		return fail("'%s' exists, not overwriting it", pub);
	if (jwk_generate(&k, kid, err, sizeof(err)) < 0)
		return fail("%s", err);
	r = jwk_save(&k, 1, priv, err, sizeof(err));
	if (r == 0)
		r = jwk_save(&k, 0, pub, err, sizeof(err));
	jwk_release(&k);
	if (r < 0)
		return fail("%s", err);
	return 0;
}

static int cmd_sign(int argc, char **argv)
{
	struct buf payload;
	char err[512], *text = NULL;
	struct jwk k;
	size_t len;
	int r;

	if (argc != 4)
		return usage();
	if (jwk_load(&k, argv[1], err, sizeof(err)) < 0)
		return fail("%s", err);
	buf_init(&payload, JWS_TEXT_MAX_DEFAULT / 4 * 3);
	r = read_file(argv[3], &payload);
	if (r == 0 && jws_sign(&k, argv[2], payload.data ? payload.data : "", payload.len, &text,
	                       &len, err, sizeof(err)) < 0)
		r = fail("%s", err);
	jwk_release(&k);
	buf_release(&payload);
	if (r == 0 && (fwrite(text, 1, len, stdout) != len || fputc('\n', stdout) == EOF ||
	               fflush(stdout) != 0))
		r = fail("cannot write the JWS: %s", strerror(errno));
	free(text);
	return r;
}

static int cmd_verify(int argc, char **argv)
{
	struct buf text;
	char err[512];
	struct jwk k;
	struct jws j;
	int r;

	if (argc != 3)
		return usage();
	if (jwk_load(&k, argv[1], err, sizeof(err)) < 0)
		return fail("%s", err);
	jws_init(&j);
	buf_init(&text, JWS_TEXT_MAX_DEFAULT);
	r = read_file(argv[2], &text);
	if (r == 0 && jws_parse(&j, text.data ? text.data : "", text.len, 0, err, sizeof(err)) < 0)
		r = fail("'%s': %s", argv[2], err);
	if (r == 0 && jws_verify(&j, &k, err, sizeof(err)) < 0)
		r = fail("'%s': %s", argv[2], err);
	if (r == 0 &&
	    (fwrite(j.payload, 1, j.payload_len, stdout) != j.payload_len || fflush(stdout) != 0))
		r = fail("cannot write the payload: %s", strerror(errno));
	jws_release(&j);
	buf_release(&text);
	jwk_release(&k);
	return r;
}

static int cmd_thumbprint(int argc, char **argv)
{
	char err[512], tp[JWK_THUMBPRINT_SIZE];
	struct jwk k;
	int r;

	if (argc != 2)
		return usage();
	if (jwk_load(&k, argv[1], err, sizeof(err)) < 0)
		return fail("%s", err);
	r = jwk_thumbprint(&k, tp);
	jwk_release(&k);
	if (r < 0)
		return fail("cannot compute the thumbprint: %s", strerror(-r));
	printf("%s\n", tp);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	if (strcmp(argv[1], "keygen") == 0)
		return cmd_keygen(argc - 1, argv + 1);
	if (strcmp(argv[1], "sign") == 0)
		return cmd_sign(argc - 1, argv + 1);
	if (strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc - 1, argv + 1);
	if (strcmp(argv[1], "thumbprint") == 0)
		return cmd_thumbprint(argc - 1, argv + 1);
	return usage();
}
