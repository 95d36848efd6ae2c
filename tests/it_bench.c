/*
 * it_bench.c - smoke test of chat-bench(1) and chat-relay(1): each mode
 * runs briefly against a harness-started chatd (and a chat-relay on a
 * free port), and the --json report must be sane: the run succeeded,
 * every message sent was received, the latency percentiles are ordered,
 * the server's CPU and memory were read.  No speed is asserted; that is
 * BENCHMARKS.md's business (scripts/bench.sh).
 *
 * Each test uses user names of its own (prefix "itb<pid>-") in one users
 * file per test, since all tests share the database.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <cjson/cJSON.h>

#include "chatc.h"
#include "harness.h"

#define WORKERS_CONF	"[server]\nworkers = 2\n"
#define TCASE_TIMEOUT	180	/* seconds */
#define RUN_MS		90000	/* one chat-bench run, at most */
#define OUT_MAX		65536	/* its output we keep */

static struct harness H;
static int servers_state;	/* 0 not started, 1 up, -1 failed */
static int tcases_left;

static void
servers_setup(void)
{
	if (servers_state == 1)
		return;
	ck_assert_msg(servers_state == 0,
	    "the servers failed to start for an earlier test case");
	servers_state = -1;
	ck_assert_msg(harness_init(&H) == 0, "harness_init failed");
	ck_assert_msg(harness_start_mariadb(&H) == 0, "mariadbd did not start");
	ck_assert_msg(harness_start_redis(&H) == 0, "redis did not start");
	ck_assert_msg(harness_start_chatd(&H, 0, WORKERS_CONF) == 0,
	    "chatd did not start");
	servers_state = 1;
}

static void
servers_teardown(void)
{
	if (--tcases_left > 0)
		return;
	harness_stop_all(&H);
	servers_state = 0;
}

/* --- running the programs ---------------------------------------------- */

struct ctx {
	char prefix[32];
	char users[PATH_MAX];
	char target[64];
	char pid[16];
};

static void
ctx_init(struct ctx *x, const char *tag)
{
	(void)snprintf(x->prefix, sizeof(x->prefix), "itb%d%s-", (int)getpid(),
	    tag);
	(void)snprintf(x->users, sizeof(x->users), "%.3900s/users-%s.txt", H.dir,
	    x->prefix);
	(void)snprintf(x->target, sizeof(x->target), "127.0.0.1:%d",
	    H.chatd[0].port);
	(void)snprintf(x->pid, sizeof(x->pid), "%d", (int)H.chatd[0].pid);
}

/*
 * Run TOP_BUILDDIR/prog with argv (NULL-terminated), stdout into out,
 * stderr into err; killed past RUN_MS.  Returns the exit status, or -1
 * when it did not exit normally.
 */
static int
run_prog(const char *prog, char *out, size_t outlen, char *err,
    size_t errlen, const char *const *argv)
{
	char path[PATH_MAX];
	const char *args[64];
	struct pollfd pfd[2];
	int po[2], pe[2], status, i, n, open_fds;
	size_t got[2] = { 0, 0 }, cap[2] = { outlen - 1, errlen - 1 };
	char *dst[2] = { out, err }, sink[4096];
	long long deadline;
	ssize_t r;
	pid_t pid;

	(void)snprintf(path, sizeof(path), "%s/%s", TOP_BUILDDIR, prog);
	args[0] = path;
	for (i = 0; argv[i] != NULL && i < 62; i++)
		args[i + 1] = argv[i];
	args[i + 1] = NULL;
	ck_assert(pipe(po) == 0 && pipe(pe) == 0);
	if ((pid = fork()) == 0) {
		(void)dup2(po[1], 1);
		(void)dup2(pe[1], 2);
		(void)close(po[0]);
		(void)close(pe[0]);
		execv(path, (char *const *)args);
		_exit(127);
	}
	ck_assert(pid > 0);
	(void)close(po[1]);
	(void)close(pe[1]);
	pfd[0].fd = po[0];
	pfd[1].fd = pe[0];
	open_fds = 2;
	deadline = harness_now_ms() + RUN_MS;
	while (open_fds > 0 && harness_now_ms() < deadline) {
		pfd[0].events = pfd[0].fd >= 0 ? POLLIN : 0;
		pfd[1].events = pfd[1].fd >= 0 ? POLLIN : 0;
		if (poll(pfd, 2, 200) <= 0)
			continue;
		for (i = 0; i < 2; i++) {
			if (pfd[i].fd < 0 || !(pfd[i].revents &
			    (POLLIN | POLLHUP)))
				continue;
			if (got[i] < cap[i])
				r = read(pfd[i].fd, dst[i] + got[i],
				    cap[i] - got[i]);
			else
				r = read(pfd[i].fd, sink, sizeof(sink));
			if (r <= 0) {
				(void)close(pfd[i].fd);
				pfd[i].fd = -1;
				open_fds--;
			} else if (got[i] < cap[i])
				got[i] += (size_t)r;
		}
	}
	if (open_fds > 0)
		(void)kill(pid, SIGKILL);
	for (i = 0; i < 2; i++)
		if (pfd[i].fd >= 0)
			(void)close(pfd[i].fd);
	out[got[0]] = '\0';
	err[got[1]] = '\0';
	n = waitpid(pid, &status, 0);
	if (n != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* chat-bench ... --json: the parsed report (caller frees). */
static cJSON *
bench_json(const char *first, ...)
{
	const char *argv[64];
	char out[OUT_MAX], err[OUT_MAX];
	va_list ap;
	cJSON *j;
	int n = 0, rc;

	argv[n++] = "--json";
	va_start(ap, first);
	for (argv[n] = first; argv[n] != NULL && n < 62;
	    argv[++n] = va_arg(ap, const char *))
		;
	va_end(ap);
	rc = run_prog("chat-bench", out, sizeof(out), err, sizeof(err),
	    argv);
	j = cJSON_Parse(out);
	ck_assert_msg(j != NULL, "chat-bench (exit %d) printed no JSON: "
	    "%s / %s", rc, out, err);
	ck_assert_msg(rc == 0 && cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")),
	    "chat-bench failed (exit %d): %s / %s", rc, out, err);
	return j;
}

static double
num(const cJSON *j, const char *path)
{
	char buf[128], *tok, *save = NULL;
	const cJSON *v = j;

	(void)snprintf(buf, sizeof(buf), "%s", path);
	for (tok = strtok_r(buf, ".", &save); tok != NULL && v != NULL;
	    tok = strtok_r(NULL, ".", &save))
		v = cJSON_GetObjectItemCaseSensitive(v, tok);
	ck_assert_msg(cJSON_IsNumber(v), "no number at %s", path);
	return v->valuedouble;
}

/* The latency block at key is ordered and positive. */
static void
check_latency(const cJSON *j, const char *key)
{
	char k[64];
	double min, p50, p99, p999, max;

	(void)snprintf(k, sizeof(k), "%s.min_us", key);
	min = num(j, k);
	(void)snprintf(k, sizeof(k), "%s.p50_us", key);
	p50 = num(j, k);
	(void)snprintf(k, sizeof(k), "%s.p99_us", key);
	p99 = num(j, k);
	(void)snprintf(k, sizeof(k), "%s.p99_9_us", key);
	p999 = num(j, k);
	(void)snprintf(k, sizeof(k), "%s.max_us", key);
	max = num(j, k);
	ck_assert_msg(min > 0 && min <= p50 && p50 <= p99 && p99 <= p999 &&
	    p999 <= max, "%s not ordered: %g %g %g %g %g", key, min, p50, p99,
	    p999, max);
	/* A message across loopback takes less than a minute. */
	ck_assert_msg(max < 60e6, "%s: max %g us", key, max);
}

/* A message-moving run: sent, all received, nothing wrong. */
static void
check_chat(const cJSON *j)
{
	ck_assert_msg(num(j, "sent") > 0, "nothing sent");
	ck_assert_msg(num(j, "delivered") > 0, "nothing delivered");
	ck_assert_msg(num(j, "lost") == 0, "%g not received", num(j, "lost"));
	ck_assert_msg(num(j, "errors") == 0, "%g errors", num(j, "errors"));
	ck_assert_msg(num(j, "disconnects") == 0, "disconnects");
	ck_assert_msg(num(j, "delivered_per_s") > 0, "no rate");
	check_latency(j, "latency");
}

static void
register_users(const struct ctx *x, const char *n)
{
	cJSON *j;

	j = bench_json("-t", x->target, "-U", x->users, "--prefix", x->prefix,
	    "-n", n, "-C", "4", "register", NULL);
	ck_assert_int_eq((int)num(j, "ok_ops"), atoi(n));
	ck_assert_int_eq((int)num(j, "failed_ops"), 0);
	check_latency(j, "op_latency");
	cJSON_Delete(j);
}

/* --- tests ---------------------------------------------------------------- */

START_TEST(test_register_reused)
{
	struct ctx x;
	cJSON *j;

	ctx_init(&x, "r");
	register_users(&x, "6");
	/* Again: every name is in the users file and nothing is sent. */
	j = bench_json("-t", x.target, "-U", x.users, "--prefix", x.prefix,
	    "-n", "6", "register", NULL);
	ck_assert_int_eq((int)num(j, "ok_ops"), 0);
	ck_assert_int_eq((int)num(j, "known"), 6);
	cJSON_Delete(j);
}
END_TEST

START_TEST(test_chat)
{
	struct ctx x;
	cJSON *j;

	ctx_init(&x, "c");
	register_users(&x, "20");
	j = bench_json("-t", x.target, "-U", x.users, "--prefix", x.prefix,
	    "-n", "20", "-d", "1", "--warmup", "0.2", "-w", "4", "-p", x.pid,
	    "chat", NULL);
	check_chat(j);
	ck_assert_msg(num(j, "server_usage.processes") >= 3,
	    "master and workers not found");
	ck_assert_msg(num(j, "server_usage.cpu_s") > 0, "no server CPU");
	ck_assert_msg(num(j, "server_usage.pss_kib") > 0, "no server PSS");
	ck_assert_msg(num(j, "server_usage.delivered_per_cpu_s") > 0,
	    "no efficiency");
	cJSON_Delete(j);

	/* Fixed rate, with an ACK for every message. */
	j = bench_json("-t", x.target, "-U", x.users, "--prefix", x.prefix,
	    "-n", "20", "-d", "1", "--warmup", "0.2", "-w", "8", "-r", "500",
	    "--ack", "chat", NULL);
	check_chat(j);
	ck_assert_msg(num(j, "sent_per_s") > 100 && num(j, "sent_per_s") <
	    1000, "rate 500 gave %g/s", num(j, "sent_per_s"));
	ck_assert_msg(num(j, "acks_delivered") > 0, "no ACKs");
	cJSON_Delete(j);
}
END_TEST

START_TEST(test_group)
{
	struct ctx x;
	cJSON *j;

	ctx_init(&x, "g");
	register_users(&x, "12");
	j = bench_json("-t", x.target, "-U", x.users, "--prefix", x.prefix,
	    "-n", "12", "-g", "6", "-d", "1", "--warmup", "0.3", "group",
	    NULL);
	check_chat(j);
	ck_assert_int_eq((int)num(j, "delivered_total"),
	    (int)num(j, "sent_total") * 5);
	cJSON_Delete(j);
	/* The groups exist now: found again, not created twice. */
	j = bench_json("-t", x.target, "-U", x.users, "--prefix", x.prefix,
	    "-n", "12", "-g", "6", "-d", "0.5", "--warmup", "0.1", "group",
	    NULL);
	check_chat(j);
	cJSON_Delete(j);
}
END_TEST

START_TEST(test_login_idle)
{
	struct ctx x;
	cJSON *j;

	ctx_init(&x, "l");
	register_users(&x, "10");
	j = bench_json("-t", x.target, "-U", x.users, "--prefix", x.prefix,
	    "-n", "10", "-C", "3", "-p", x.pid, "login", NULL);
	ck_assert_int_eq((int)num(j, "ok_ops"), 10);
	ck_assert_msg(num(j, "ops_per_s") > 0, "no login rate");
	check_latency(j, "op_latency");
	cJSON_Delete(j);
	/* Two processes, two source addresses. */
	j = bench_json("-t", x.target, "-U", x.users, "--prefix", x.prefix,
	    "-n", "10", "-j", "2", "--sources", "2", "-d", "0.5",
	    "--warmup", "0.1", "--ping", "0.2", "-p", x.pid, "idle", NULL);
	ck_assert_int_eq((int)num(j, "connections"), 10);
	ck_assert_int_eq((int)num(j, "disconnects"), 0);
	ck_assert_int_eq((int)num(j, "procs"), 2);
	ck_assert_msg(num(j, "server_usage.pss_kib") > 0, "no server PSS");
	check_latency(j, "login_latency");
	cJSON_Delete(j);
}
END_TEST

START_TEST(test_relay)
{
	char path[PATH_MAX], addr[64], target[64], pidbuf[16];
	cJSON *j;
	pid_t relay;
	int port, i;

	port = harness_free_port();
	(void)snprintf(path, sizeof(path), "%s/chat-relay", TOP_BUILDDIR);
	(void)snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	(void)snprintf(target, sizeof(target), "127.0.0.1:%d", port);
	if ((relay = fork()) == 0) {
		int fd = open("/dev/null", O_WRONLY);

		(void)dup2(fd, 2);
		execl(path, path, "-l", addr, "-t", "2", "-T", "120",
		    (char *)NULL);
		_exit(127);
	}
	ck_assert(relay > 0);
	(void)snprintf(pidbuf, sizeof(pidbuf), "%d", (int)relay);
	/* Wait until it listens. */
	for (i = 0; i < 100; i++) {
		char err[128];
		struct chatc *c = chatc_connect("127.0.0.1", port, 200, err,
		    sizeof(err));

		if (c != NULL) {
			chatc_close(c);
			break;
		}
		harness_sleep_ms(50);
	}
	j = bench_json("-R", "-t", target, "-n", "20", "-d", "1", "--warmup",
	    "0.2", "-p", pidbuf, "chat", NULL);
	check_chat(j);
	ck_assert_msg(num(j, "server_usage.cpu_s") > 0, "no relay CPU");
	cJSON_Delete(j);
	j = bench_json("-R", "-t", target, "-n", "12", "-g", "4", "-d", "1",
	    "--warmup", "0.2", "group", NULL);
	check_chat(j);
	ck_assert_int_eq((int)num(j, "delivered_total"),
	    (int)num(j, "sent_total") * 3);
	cJSON_Delete(j);
	(void)kill(relay, SIGTERM);
	(void)waitpid(relay, NULL, 0);
}
END_TEST

/* The storm's control: hashes on threads of chat-bench, no server. */
START_TEST(test_hash)
{
	cJSON *j;

	j = bench_json("-d", "0.5", "-T", "2", "--hash-ops", "1",
	    "--hash-mem-kib", "64", "hash", NULL);
	ck_assert_int_eq((int)num(j, "threads"), 2);
	ck_assert_int_eq((int)num(j, "opslimit"), 1);
	ck_assert_int_eq((int)num(j, "memlimit_kib"), 64);
	/* 64 KiB, one pass: thousands a second even under a sanitizer. */
	ck_assert_msg(num(j, "hashes") >= 10, "%g hashes", num(j, "hashes"));
	ck_assert_msg(num(j, "duration_s") >= 0.5 &&
	    num(j, "duration_s") < 30, "ran %g s", num(j, "duration_s"));
	ck_assert_msg(num(j, "hashes_per_s") > 0 && num(j, "cpu_s") > 0,
	    "no rate or no CPU");
	cJSON_Delete(j);
}
END_TEST

/* The first line of a sysfs file, "" when there is none. */
static void
sysfs_first_line(const char *path, char *buf, size_t len)
{
	FILE *fp = fopen(path, "r");

	buf[0] = '\0';
	if (fp == NULL)
		return;
	if (fgets(buf, (int)len, fp) == NULL)
		buf[0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	(void)fclose(fp);
}

/* The host's floor: wakeup lateness per CPU, no server.  Wakeups every
 * 100 us for 0.5 s on each thread: thousands, each late by at least 0 and
 * the quantiles in order; the per-thread counts add up to the whole; the
 * host's idle setting is sysfs's. */
START_TEST(test_jitter)
{
	char driver[64], poll[64];
	const cJSON *cpus, *c, *d;
	double total = 0, stalls;
	cJSON *j;

	j = bench_json("-d", "0.5", "-T", "2", "jitter", NULL);
	ck_assert_int_eq((int)num(j, "threads"), 2);
	ck_assert_msg(num(j, "period_us") == 100, "period %g us",
	    num(j, "period_us"));
	ck_assert_msg(num(j, "duration_s") >= 0.5 &&
	    num(j, "duration_s") < 30, "ran %g s", num(j, "duration_s"));
	cpus = cJSON_GetObjectItemCaseSensitive(j, "cpus");
	ck_assert_int_eq(cJSON_GetArraySize(cpus), 2);
	cJSON_ArrayForEach(c, cpus) {
		ck_assert_msg(num(c, "late.count") >= 100, "%g wakeups",
		    num(c, "late.count"));
		ck_assert_msg(num(c, "late.p50_us") <= num(c, "late.p99_9_us")
		    && num(c, "late.p99_9_us") <= num(c, "late.max_us"),
		    "quantiles out of order");
		stalls = num(c, "stalls_0_5ms");
		ck_assert_msg(num(c, "stalls_2ms") <= stalls, "more long "
		    "stalls than stalls");
		/* Each stall is at least 0.5 ms late. */
		ck_assert_msg(num(c, "stalled_ms") >= stalls * 0.5,
		    "%g stalls in %g ms", stalls, num(c, "stalled_ms"));
		total += num(c, "late.count");
	}
	ck_assert_msg(num(j, "late.count") == total, "all: %g wakeups, the "
	    "CPUs %g", num(j, "late.count"), total);
	ck_assert_msg(num(j, "host.busy_cores") >= 0 &&
	    num(j, "host.other_cores") >= 0, "negative host load");
	/* The host's idle setting is reported as sysfs has it. */
	sysfs_first_line("/sys/devices/system/cpu/cpuidle/current_driver",
	    driver, sizeof(driver));
	d = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
	    j, "host"), "cpuidle_driver");
	ck_assert_msg(cJSON_IsString(d), "no host.cpuidle_driver");
	ck_assert_str_eq(d->valuestring, driver);
	if (strcmp(driver, "haltpoll") == 0) {
		sysfs_first_line(
		    "/sys/module/haltpoll/parameters/guest_halt_poll_ns",
		    poll, sizeof(poll));
		ck_assert_msg(num(j, "host.halt_poll_ns") == atof(poll),
		    "halt_poll_ns %g, sysfs %s", num(j, "host.halt_poll_ns"),
		    poll);
	}
	cJSON_Delete(j);
}
END_TEST

START_TEST(test_table_and_usage)
{
	char out[OUT_MAX], err[OUT_MAX];
	struct ctx x;
	int rc;

	ctx_init(&x, "t");
	register_users(&x, "4");
	{
		const char *argv[] = { "-t", x.target, "-U", x.users,
		    "--prefix", x.prefix, "-n", "4", "-d", "0.5", "--warmup",
		    "0", "chat", NULL };

		rc = run_prog("chat-bench", out, sizeof(out), err,
		    sizeof(err), argv);
		ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
		ck_assert_msg(strstr(out, "delivered") != NULL &&
		    strstr(out, "latency") != NULL && strstr(out, "p99") !=
		    NULL, "no table: %s", out);
	}
	{
		const char *argv[] = { "chat", "-t", "10.1.2.3:6000", NULL };

		rc = run_prog("chat-bench", out, sizeof(out), err,
		    sizeof(err), argv);
		ck_assert_msg(rc == 2 && strstr(err, "loopback") != NULL,
		    "non-loopback target: exit %d: %s", rc, err);
	}
	{
		const char *argv[] = { "dance", NULL };

		rc = run_prog("chat-bench", out, sizeof(out), err,
		    sizeof(err), argv);
		ck_assert_msg(rc == 2, "unknown mode: exit %d", rc);
	}
	{
		/* Users never registered: refused before connecting. */
		const char *argv[] = { "-t", x.target, "-U", x.users,
		    "--prefix", "itb-nobody-", "-n", "4", "chat", NULL };

		rc = run_prog("chat-bench", out, sizeof(out), err,
		    sizeof(err), argv);
		ck_assert_msg(rc == 2 && strstr(err, "register") != NULL,
		    "unregistered users: exit %d: %s", rc, err);
	}
}
END_TEST

static Suite *
bench_suite(void)
{
	Suite *s = suite_create("it_bench");
	TCase *tc = tcase_create("bench");

	tcase_add_unchecked_fixture(tc, servers_setup, servers_teardown);
	tcase_set_timeout(tc, TCASE_TIMEOUT);
	tcases_left++;
	tcase_add_test(tc, test_register_reused);
	tcase_add_test(tc, test_chat);
	tcase_add_test(tc, test_group);
	tcase_add_test(tc, test_login_idle);
	tcase_add_test(tc, test_relay);
	tcase_add_test(tc, test_table_and_usage);
	tcase_add_test(tc, test_hash);
	tcase_add_test(tc, test_jitter);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	/* Its fixtures stop the servers they start. */
	return harness_run_suite(bench_suite(), NULL, 0);
}
