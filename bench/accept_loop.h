/* The county hub's accept path before storing, as a loop: inflate one upload with the
 * hub's caps, then submission_check (envelope, key lookup, signature, payload, envelope
 * and form schemas, x-rules, privacy guard). Shared by bench/accept_path and bench/hub so
 * that both measure the same work; header-only because the Makefile builds each
 * bench/NAME.c into a program of its own. */
#ifndef BENCH_ACCEPT_LOOP_H
#define BENCH_ACCEPT_LOOP_H

#include <stdio.h>

#include "bench.h"
#include "common/buf.h"
#include "common/errlist.h"
#include "common/gzip.h"
#include "common/submission.h"

/* Runs the accept path iterations times over the same gzipped upload (wire, wire_len)
 * with ctx; plain receives the inflated text (its max is the hub's inflate cap). Returns
 * the seconds it took, or -1 with a message in err when the upload is refused. */
static inline double bench_accept_loop(const struct submission_context *ctx,
                                       struct gzip_inflater *inflater, struct buf *plain,
                                       const void *wire, size_t wire_len, long iterations,
                                       char *err, size_t errlen)
{
	double t0 = bench_now_seconds();

	for (long i = 0; i < iterations; i++) {
		struct submission s;
		struct errlist errors;
		enum submission_verdict verdict;
		int r;

		buf_reset(plain);
		r = gzip_inflate(inflater, wire, wire_len, plain, err, errlen);
		if (r < 0)
			return -1;
		errlist_init(&errors);
		r = submission_check(ctx, plain->data, plain->len, &errors, err, errlen, &verdict,
		                     &s);
		errlist_release(&errors);
		if (r < 0 || verdict != SUBMISSION_ACCEPTABLE)
			return -1; /* err says why (*ret is filled only when accepted) */
		submission_release(&s);
	}
	return bench_now_seconds() - t0;
}

#endif
