/* libFuzzer target: arbitrary bytes as an upload body for the capped gzip inflater.
 * Every input must end in 0, -EFBIG or -EBADMSG with the output within the cap, and a
 * success must be reproducible by the same inflater (it is reused, as in the hub). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/gzip.h"
#include "common/banned.h"

#define FUZZ_MAX_OUTPUT (256u * 1024)
#define FUZZ_MAX_RATIO 50u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct gzip_inflater z; /* one per process, reused like a hub thread's */
	struct buf out, again;
	char err[256];
	int r;

	if (!z.zs && gzip_inflater_init(&z, FUZZ_MAX_OUTPUT, FUZZ_MAX_RATIO) < 0)
		abort();
	buf_init(&out, 2 * FUZZ_MAX_OUTPUT);
	buf_init(&again, FUZZ_MAX_OUTPUT);
	r = gzip_inflate(&z, data, size, &out, err, sizeof(err));
	if (r != 0 && r != -EFBIG && r != -EBADMSG)
		abort();
	if (out.len > FUZZ_MAX_OUTPUT || out.alloc > FUZZ_MAX_OUTPUT + 1)
		abort();
	if (r != 0 && out.len != 0)
		abort();
	if (r == 0) {
		/* same answer again, and again when the buffer is exactly big enough */
		buf_release(&again);
		buf_init(&again, out.len);
		if (gzip_inflate(&z, data, size, &again, err, sizeof(err)) != 0)
			abort();
		if (again.len != out.len || (out.len && memcmp(again.data, out.data, out.len)))
			abort();
	}
	buf_release(&out);
	buf_release(&again);
	return 0;
}
