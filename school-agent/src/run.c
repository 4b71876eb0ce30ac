/* school-agent run: stays up and syncs every --interval seconds (real seconds), for a
 * systemd service (contrib/school-agent.service) or a terminal.
 *   school-agent run [--dir DIR] [--interval SECONDS] [sync's TLS options]
 * SIGTERM, SIGINT and SIGHUP end it cleanly: no new upload starts, those in flight finish
 * (each is bounded by the timeout), nothing is left half-done, and it exits 0. The signals stay
 * blocked and are collected with sigtimedwait(), so there is no handler and no global flag. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "agent.h"
#include "commands.h"
#include "sync.h"
#include "common/log.h"
#include "common/banned.h"

static int stop_signal_pending(void *data)
{
	const sigset_t *stop = data;
	sigset_t pending;

	if (sigpending(&pending) < 0)
		return 0;
	for (int sig = 1; sig < NSIG; sig++)
		if (sigismember(stop, sig) == 1 && sigismember(&pending, sig) == 1)
			return 1;
	return 0;
}

/* Waits up to ms for a stop signal: 1 if one came, else 0. */
static int wait_for_stop(const sigset_t *stop, int64_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	int sig;

	for (;;) {
		sig = sigtimedwait(stop, NULL, &ts);
		if (sig > 0) {
			log_info("got signal %d, stopping", sig);
			return 1;
		}
		if (errno == EAGAIN)
			return 0;
		if (errno != EINTR)
			return 0;
	}
}

int command_run(int argc, char **argv)
{
	static const char synopsis[] = "school-agent run [--dir DIR] [--interval SECONDS] "
	                               "[OPTIONS]";
	struct sync_flags f = {0};
	long long interval = 300;
	const struct config_option options[] = {
	        {"dir", CONFIG_STRING, &f.dir, "the agent's folder (default: .)", "DIR", 0, 0},
	        {"interval", CONFIG_INTEGER, &interval, "seconds between passes", "SECONDS", 1,
	         86400},
	        {"cacert", CONFIG_STRING, &f.cacert, "CA certificates for the hub", "FILE", 0, 0},
	        {"client_cert", CONFIG_STRING, &f.client_cert, "TLS client certificate (PEM)",
	         "FILE", 0, 0},
	        {"client_key", CONFIG_STRING, &f.client_key, "TLS client key (PEM)", "FILE", 0, 0},
	        {"timeout", CONFIG_INTEGER, &f.timeout, "seconds one upload may take", "SECONDS", 1,
	         3600},
	        {"parallel", CONFIG_INTEGER, &f.parallel,
	         "uploads in flight at once (default: agent.json's parallel, else 16)", "N", 1,
	         HTTP_PARALLEL_MAX},
	        {NULL, 0, NULL, NULL, NULL, 0, 0},
	};
	struct syncer syncer;
	struct agent agent;
	sigset_t stop;
	char err[1024];
	int next, r, status = EX_OK, opened = 0, ready = 0;

	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		agent_print_usage(synopsis, options);
		return EX_OK;
	}
	r = config_parse_args(options, argc, argv, &next, err, sizeof(err));
	if (r < 0 || next != argc) {
		fprintf(stderr, "school-agent run: %s\nusage: %s\n",
		        r < 0 ? err : "unexpected argument", synopsis);
		status = EX_USAGE;
		goto out;
	}
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &stop, NULL) < 0) {
		log_errno(-errno, "failed to block the stop signals");
		status = EX_OSERR;
		goto out;
	}
	r = agent_open(&agent, f.dir ? f.dir : ".", err, sizeof(err));
	opened = 1;
	if (r == 0) {
		sync_flags_apply(&f, &agent);
		r = syncer_init(&syncer, &agent, err, sizeof(err));
		ready = r == 0;
	}
	if (r < 0) {
		log_error("%s", err);
		status = EX_CONFIG;
		goto out;
	}
	log_info("syncing '%s' to '%s' every %lld s", agent.dir, agent.cfg.hub, interval);
	for (;;) {
		struct sync_result res;
		int64_t wait_ms = interval * 1000;

		r = syncer_pass(&syncer, stop_signal_pending, &stop, &res);
		if (r == 0 && (res.sent || res.rejected))
			log_info("%zu sent, %zu rejected, %zu still queued", res.sent, res.rejected,
			         res.remaining);
		/* a hub that asked for less than the interval is tried again sooner */
		if (r == 0 && res.hub_next_ms > 0) {
			int64_t until = res.hub_next_ms - clock_now_ms(&syncer.real);

			if (until < wait_ms)
				wait_ms = until < 1000 ? 1000 : until;
		}
		if (stop_signal_pending(&stop) || wait_for_stop(&stop, wait_ms)) {
			/* consume it, so it does not fire once unblocked at exit */
			if (stop_signal_pending(&stop))
				wait_for_stop(&stop, 0);
			break;
		}
	}
out:
	if (ready)
		syncer_release(&syncer);
	if (opened)
		agent_release(&agent);
	config_release(options);
	return status;
}
