/* bench/accept_path: the county hub's CPU cost of accepting one return, against bare
 * Ed25519 verification of the same bytes, measured in the same run.
 *
 * The return is a realistic incident report (about 3 KB signed: the longest summary the
 * form allows, in Chinese) as a school signs it, gzipped
 * as the agent sends it. The full path is what the hub does before storing: inflate (with
 * the upload caps), parse the JWS envelope, look up the key, verify, parse the payload,
 * check the envelope schema, the form schema, the x-rules and the privacy guard. The
 * baseline is crypto_sign_verify_detached over the same signing input. Target: the full
 * path costs at most 2x the baseline (DESIGN / issue 2), i.e. its rate is at least half
 * the baseline's. Prints both rates and the ratio and writes <results-dir>/accept_path.json
 * (bench/bench.h). BENCH_ITERATIONS (20000) sets the loop count. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "accept_loop.h"
#include "bench.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/errlist.h"
#include "common/form.h"
#include "common/gzip.h"
#include "common/ids.h"
#include "common/jwk.h"
#include "common/jws.h"
#include "common/schema.h"
#include "common/submission.h"
#include "common/banned.h"

#define SCHOOL_ID "6542010001"
#define COUNTY_ID "654201"
#define ROUNDS 10

struct bench_key {
	struct jwk key;
};

static int lookup_key(void *data, const char *kid, struct jwk *ret_key, char *err, size_t errlen)
{
	const struct bench_key *k = data;

	if (strcmp(kid, k->key.kid) != 0) {
		snprintf(err, errlen, "unknown school \"%s\"", kid);
		return -ENOKEY;
	}
	*ret_key = k->key;
	ret_key->has_private = 0;
	return 0;
}

/* An incident return whose free text fills it to about 4 KB of signed JWS. */
static char *make_payload(const struct clock *c)
{
	char id[IDS_UUID_LEN + 1];
	struct buf text;
	char *out;

	buf_init(&text, 64 * 1024);
	if (ids_uuid7(c, id) < 0)
		return NULL;
	if (buf_printf(&text,
	               "{\"form\":\"incident\",\"form_version\":1,\"submission_id\":\"%s\","
	               "\"school_id\":\"" SCHOOL_ID "\",\"county_id\":\"" COUNTY_ID "\","
	               "\"period\":\"2024-05\",\"created_at\":\"2024-05-03T09:12:00+08:00\","
	               "\"supersedes\":null,\"data\":{\"incident_ref\":\"2024-017\","
	               "\"occurred_on\":\"2024-05-02\",\"discovered_on\":\"2024-05-02\","
	               "\"reported_on\":\"2024-05-03\",\"level\":2,\"types\":[\"physical\","
	               "\"verbal\"],\"setting\":\"dormitory\",\"grade_band\":\"junior\","
	               "\"victims\":{\"female\":0,\"male\":1},\"perpetrators\":{\"female\":0,"
	               "\"male\":2},\"measures\":[\"education\",\"discipline\"],"
	               "\"parents_notified\":true,\"psychological_support\":true,"
	               "\"status\":\"open\",\"closed_on\":null,\"summary\":\"",
	               id) < 0)
		goto fail;
	/* 486 characters of Chinese text, near the form's maximum of 500 */
	for (int i = 0; i < 18; i++)
		if (buf_puts(&text, "课间在宿舍发生推搡，已分别谈话并通知家长。") < 0 ||
		    buf_puts(&text, "班主任跟进。") < 0)
			goto fail;
	if (buf_puts(&text, "\"}}") < 0)
		goto fail;
	out = buf_detach(&text, NULL);
	return out;
fail:
	buf_release(&text);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *results = argc > 1 ? argv[1] : "bench/results";
	struct submission_context ctx = {0};
	struct gzip_compressor gz;
	struct gzip_inflater inflater;
	struct form_set *forms = NULL;
	struct schema *envelope = NULL;
	struct bench_key key;
	struct clock c;
	struct buf wire, plain;
	char err[1024];
	char *payload = NULL, *jws_text = NULL;
	size_t jws_len;
	struct jws parsed;
	struct bench_report report;
	double t0, bare_s, full_s, bare_rate, full_rate;
	long iterations = bench_env_long("BENCH_ITERATIONS", 20000);
	int status;

	if (sodium_init() < 0 || clock_init(&c, "2024-05-03T09:12:00+08:00", err, sizeof(err)) < 0)
		return 1;
	if (form_set_load_dir("schemas/forms", &forms, err, sizeof(err)) < 0 ||
	    schema_load_file("schemas/submission.schema.json", &envelope, err, sizeof(err)) < 0) {
		fprintf(stderr, "accept_path: %s\n", err);
		return 1;
	}
	if (jwk_generate(&key.key, SCHOOL_ID, err, sizeof(err)) < 0)
		return 1;
	payload = make_payload(&c);
	if (!payload || jws_sign(&key.key, SCHOOL_ID, payload, strlen(payload), &jws_text, &jws_len,
	                         err, sizeof(err)) < 0) {
		fprintf(stderr, "accept_path: cannot sign: %s\n", err);
		return 1;
	}
	buf_init(&wire, 1 << 20);
	buf_init(&plain, 8 << 20);
	if (gzip_compressor_init(&gz, 6) < 0 || gzip_compress(&gz, jws_text, jws_len, &wire) < 0 ||
	    gzip_inflater_init(&inflater, 8 << 20, 100) < 0)
		return 1;

	ctx.envelope = envelope;
	ctx.forms = forms;
	ctx.county_id = COUNTY_ID;
	ctx.lookup_key = lookup_key;
	ctx.lookup_data = &key;

	/* baseline: bare signature verification of the same signing input */
	jws_init(&parsed);
	if (jws_parse(&parsed, jws_text, jws_len, 0, err, sizeof(err)) < 0)
		return 1;
	/* Baseline and full path alternate in ROUNDS slices, so that a change in what else
	 * runs on the machine weighs on both alike. */
	iterations = (iterations + ROUNDS - 1) / ROUNDS * ROUNDS;
	bare_s = full_s = 0;
	for (int round = 0; round < ROUNDS; round++) {
		double s;

		t0 = bench_now_seconds();
		for (long i = 0; i < iterations / ROUNDS; i++)
			if (crypto_sign_verify_detached(
			            parsed.signature, (const unsigned char *)parsed.signing_input,
			            parsed.signing_input_len, key.key.public_key) != 0)
				return 1;
		bare_s += bench_now_seconds() - t0;
		s = bench_accept_loop(&ctx, &inflater, &plain, wire.data, wire.len,
		                      iterations / ROUNDS, err, sizeof(err));
		if (s < 0) {
			fprintf(stderr, "accept_path: the return was refused: %s\n", err);
			return 1;
		}
		full_s += s;
	}

	bare_rate = (double)iterations / bare_s;
	full_rate = (double)iterations / full_s;
	printf("accept_path: return %zu bytes signed, %zu bytes gzipped, %ld iterations\n", jws_len,
	       wire.len, iterations);
	bench_report_init(&report, "accept_path");
	/* the full path may cost at most twice the bare verification: rate ratio >= 0.5 */
	bench_report_figure(&report, "accept path, 1 core", full_rate, "returns/s",
	                    "bare Ed25519 verify", bare_rate, "ratio >= 0.5 (cost <= 2x)",
	                    full_rate >= 0.5 * bare_rate);
	bench_report_detail(&report, "return_bytes", (double)jws_len);
	bench_report_detail(&report, "gzip_bytes", (double)wire.len);
	bench_report_detail(&report, "iterations", (double)iterations);
	bench_report_print(&report);
	status = bench_report_write(&report, results);

	jws_release(&parsed);
	buf_release(&wire);
	buf_release(&plain);
	gzip_compressor_release(&gz);
	gzip_inflater_release(&inflater);
	free(jws_text);
	free(payload);
	jwk_release(&key.key);
	schema_free(envelope);
	form_set_free(forms);
	return status;
}
