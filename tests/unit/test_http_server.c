/* Unit tests for http_server: loopback addresses, the checks before serving (plain HTTP
 * beyond loopback, certificate without key), and starting and stopping a server, plain
 * and over TLS, with a certificate made for these tests only. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <microhttpd.h>

#include "common/http_server.h"
#include "common/banned.h"

/* A self-signed certificate for 127.0.0.1, its key, and a key that is not its own:
 * openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500 ... */
static const char cert_pem[] = "-----BEGIN CERTIFICATE-----\n"
                               "MIIBjzCCATagAwIBAgIUfvgetZUjNx7ErYSctq9c3BpaMlQwCgYIKoZIzj0EAwIw\n"
                               "FDESMBAGA1UEAwwJMTI3LjAuMC4xMCAXDTI2MTEyOTA3MTE0NVoYDzIxMjYxMTA1\n"
                               "MDcxMTQ1WjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwWTATBgcqhkjOPQIBBggqhkjO\n"
                               "PQMBBwNCAAR+ltHlD6PRWDOWaYKx/p/5dhQamhYlrp04YjT2EO3HY7v+q/LBquMs\n"
                               "RRHrKTb16A6xee60jWQ7FDyFWEcbif5yo2QwYjAdBgNVHQ4EFgQUpjPoRBEUPwSr\n"
                               "rKXwBYpNN0nOghMwHwYDVR0jBBgwFoAUpjPoRBEUPwSrrKXwBYpNN0nOghMwDwYD\n"
                               "VR0TAQH/BAUwAwEB/zAPBgNVHREECDAGhwR/AAABMAoGCCqGSM49BAMCA0cAMEQC\n"
                               "IDjPNi1vPCfhHaE4iroyiv8Johfx8p1ASEBGJ2pSkdhIAiAHK4zj39dh2yJxiyEb\n"
                               "oUDuFehAD6uIx0jPdA39Tle4PQ==\n"
                               "-----END CERTIFICATE-----\n";
static const char key_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                              "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgVQNtmMEe9SMKmwQR\n"
                              "laDwm8B0ZPLkVTMW7EFK8K/GCoGhRANCAAR+ltHlD6PRWDOWaYKx/p/5dhQamhYl\n"
                              "rp04YjT2EO3HY7v+q/LBquMsRRHrKTb16A6xee60jWQ7FDyFWEcbif5y\n"
                              "-----END PRIVATE KEY-----\n";
static const char other_key_pem[] =
        "-----BEGIN PRIVATE KEY-----\n"
        "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgv7QvYR/XC5eecDqr\n"
        "zhdSSqPZ4ekwscjVMaiYj4QzZlOhRANCAAQxTJU57uBrQG2lrw0OKYy45wO8ZHuq\n"
        "90u10y08uG3xmjvJhsLzD2mEa5Ii2qeigoK9lnxGbpdjQmuhX4irsDSo\n"
        "-----END PRIVATE KEY-----\n";

struct files {
	char cert[64], key[64], other_key[64], not_pem[64];
};

static void write_temp(char *path, const char *text)
{
	int fd;

	snprintf(path, 64, "/tmp/test_http_server-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static int files_setup(void **state)
{
	struct files *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	write_temp(f->cert, cert_pem);
	write_temp(f->key, key_pem);
	write_temp(f->other_key, other_key_pem);
	write_temp(f->not_pem, "just some text\n");
	*state = f;
	return 0;
}

static int files_teardown(void **state)
{
	struct files *f = *state;

	unlink(f->cert);
	unlink(f->key);
	unlink(f->other_key);
	unlink(f->not_pem);
	free(f);
	return 0;
}

static int loopback(const char *listen)
{
	struct sockaddr_storage addr;
	unsigned len;

	assert_int_equal(http_parse_listen(listen, &addr, &len), 0);
	return http_address_is_loopback(&addr);
}

static void test_loopback(void **state)
{
	(void)state;
	assert_true(loopback("127.0.0.1:8401"));
	assert_true(loopback("127.200.3.4:1"));
	assert_true(loopback("[::1]:8401"));
	assert_true(loopback("[::ffff:127.0.0.1]:8401"));
	assert_false(loopback("0.0.0.0:8401"));
	assert_false(loopback("10.1.2.3:8401"));
	assert_false(loopback("128.0.0.1:8401"));
	assert_false(loopback("[::]:8401"));
	assert_false(loopback("[::ffff:10.0.0.1]:8401"));
	assert_false(loopback("[fe80::1]:8401"));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	(void)cls, (void)conn, (void)url, (void)method, (void)version, (void)upload_data;
	(void)upload_data_size, (void)con_cls;
	return MHD_NO;
}

static struct http_server_options options(const char *listen, const char *cert, const char *key)
{
	struct http_server_options o;

	memset(&o, 0, sizeof(o));
	o.listen = listen;
	o.flags = MHD_USE_INTERNAL_POLLING_THREAD;
	o.max_connections = 8;
	o.connection_memory = 64 * 1024;
	o.idle_timeout = 5;
	o.on_request = on_request;
	o.tls_cert = cert;
	o.tls_key = key;
	return o;
}

static void test_check(void **state)
{
	struct http_server_options o;
	char err[512];

	(void)state;
	o = options("127.0.0.1:0", NULL, NULL);
	assert_int_equal(http_server_check(&o, err, sizeof(err)), 0);
	o = options("[::1]:0", "", "");
	assert_int_equal(http_server_check(&o, err, sizeof(err)), 0);

	o = options("0.0.0.0:8401", NULL, NULL);
	assert_int_equal(http_server_check(&o, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "refusing plain HTTP on 0.0.0.0:8401"));
	assert_non_null(strstr(err, "--insecure-plain-http"));
	o.insecure_plain_http = 1;
	assert_int_equal(http_server_check(&o, err, sizeof(err)), 0);

	o = options("0.0.0.0:8401", "cert.pem", "key.pem");
	assert_int_equal(http_server_check(&o, err, sizeof(err)), 0);
	o = options("0.0.0.0:8401", "cert.pem", NULL);
	assert_int_equal(http_server_check(&o, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "both the TLS certificate and its key"));
	o = options("127.0.0.1:0", NULL, "key.pem");
	assert_int_equal(http_server_check(&o, err, sizeof(err)), -EINVAL);

	o = options("localhost:8401", NULL, NULL);
	assert_int_equal(http_server_check(&o, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "'localhost:8401' is not ADDR:PORT"));
}

static void test_plain(void **state)
{
	struct http_server_options o = options("127.0.0.1:0", NULL, NULL);
	struct http_server s;
	char err[512];

	(void)state;
	assert_int_equal(http_server_start(&s, &o, err, sizeof(err)), 0);
	assert_non_null(s.daemon);
	assert_false(s.tls);
	assert_true(s.port > 0);
	http_server_quiesce(&s);
	assert_true(s.quiesced);
	http_server_quiesce(&s); /* once is enough */
	http_server_stop(&s);
	assert_null(s.daemon);
	http_server_stop(&s); /* harmless */

	o = options("0.0.0.0:0", NULL, NULL);
	assert_int_equal(http_server_start(&s, &o, err, sizeof(err)), -EINVAL);
	assert_null(s.daemon);
	http_server_stop(&s);
}

static void test_tls(void **state)
{
	struct files *f = *state;
	struct http_server_options o;
	struct http_server s, t;
	char err[512];

	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		o = options("127.0.0.1:0", f->cert, f->key);
		assert_int_equal(http_server_start(&s, &o, err, sizeof(err)), -ENOTSUP);
		skip();
	}
	o = options("127.0.0.1:0", f->cert, f->key);
	assert_int_equal(http_server_start(&s, &o, err, sizeof(err)), 0);
	assert_true(s.tls);
	assert_true(s.port > 0);
	/* the port is taken: a second server on it cannot start */
	{
		char listen[32];

		snprintf(listen, sizeof(listen), "127.0.0.1:%u", s.port);
		o = options(listen, f->cert, f->key);
		assert_int_equal(http_server_start(&t, &o, err, sizeof(err)), -EADDRINUSE);
		assert_non_null(strstr(err, "cannot serve HTTPS on 127.0.0.1:"));
		http_server_stop(&t);
	}
	http_server_stop(&s);

	o = options("127.0.0.1:0", f->cert, f->other_key);
	assert_int_equal(http_server_start(&s, &o, err, sizeof(err)), -EADDRINUSE);
	assert_non_null(strstr(err, "the certificate and the key do not go together"));
	http_server_stop(&s);

	o = options("127.0.0.1:0", f->not_pem, f->key);
	assert_int_equal(http_server_start(&s, &o, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a PEM file"));
	assert_non_null(strstr(err, f->not_pem));
	http_server_stop(&s);

	o = options("127.0.0.1:0", f->cert, "/nonexistent/key.pem");
	assert_int_equal(http_server_start(&s, &o, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "cannot read the TLS key '/nonexistent/key.pem'"));
	http_server_stop(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_loopback),
	        cmocka_unit_test(test_check),
	        cmocka_unit_test(test_plain),
	        cmocka_unit_test_setup_teardown(test_tls, files_setup, files_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
