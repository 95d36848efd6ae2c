/*
 * it_abuse.c - black-box tests of the hardening of issue 7 against real
 * processes (tests/harness.c): the abuse limits answered with errno 12
 * (rate_limit and rate_burst, failed logins per user and per source
 * address with a growing delay, max_conns_per_addr), auth_timeout and
 * idle_timeout, 10,000 silent connections and chatd's memory once they
 * are freed, mariadbd stopped and restarted under chat traffic, chatd's
 * transactions chosen as InnoDB deadlock victims, the drop to user and
 * group, and a grep of the logs for secrets.
 *
 * Each test case runs a chatd of its own (instance INST) with the limits
 * under test turned on in its configuration; the harness turns the abuse
 * limits off by default.  It is started and stopped by an unchecked
 * fixture in the runner, so the harness checks its log for sanitizer
 * reports like any other.  Every instance appends to the same log file,
 * which the last test case greps: every password used in the run starts
 * with a random stem chosen in main, so one search covers them all.
 * mariadbd is shared; the database test stops it and restarts it (as a
 * child of the forked test, which stops it again), and the next fixture
 * starts it in the runner once more.
 *
 * chatd counts timeouts and login delays in whole seconds on a
 * one-second timer, so the bounds below allow a second either way.
 * Every wait is bounded.
 *
 * For debugging: IT_ABUSE_ONLY=test_a,test_b runs only those tests.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <cjson/cJSON.h>
#include <mysql.h>
#include <mysqld_error.h>

#include "chatc.h"
#include "harness.h"
#include "protocol.h"

#define INST		0	/* the chatd instance of every test case */

/* Bounds, in milliseconds. */
#define REQ_MS		5000	/* one request until its reply */
#define EOF_MS		3000	/* a refused connection until EOF */
#define DB_DOWN_MS	15000	/* a request until errno 13, db down */
#define DB_BACK_MS	20000	/* chatd using a restarted mariadbd */
#define POLL_MS		50

#define TEST_TIMEOUT_S	40	/* Check's limit for one test */

/* rate limit */
#define RATE_LIMIT	10
#define RATE_BURST	20
#define RATE_PINGS	100

/* failed logins */
#define FAIL_MAX	3
#define FAIL_MAX_ADDR	5
#define DELAY_MAX	4

/* timeouts, seconds */
#define AUTH_TIMEOUT	2
#define IDLE_TIMEOUT	3

/* silent connections */
#define SILENT_N	10000
#define SILENT_AUTH	3	/* auth_timeout of that instance */
#define SILENT_CLOSE_MS	15000	/* all connected until all closed */
#define MEM_SLACK_KB	(8 * 1024)	/* after may exceed baseline by */

/*
 * AddressSanitizer keeps freed memory in quarantine, so under it chatd's
 * memory cannot go back down: only the absolute bound applies.  Without
 * it, at most half of what the connections took may stay.
 */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#define CONF_RATE	"[server]\nworkers = 1\nrate_limit = 10\n" \
			"rate_burst = 20\n"
#define CONF_LOGIN_USER	"[server]\nworkers = 1\nlogin_fail_max = 3\n" \
			"login_delay_max = 4\n"
#define CONF_LOGIN_ADDR	"[server]\nworkers = 1\nlogin_fail_max = 3\n" \
			"login_fail_max_addr = 5\nlogin_delay_max = 4\n"
#define CONF_CONNS	"[server]\nworkers = 1\nmax_conns_per_addr = 5\n"
#define CONF_TIMEOUTS	"[server]\nauth_timeout = 2\nidle_timeout = 3\n"
#define CONF_SILENT	"[server]\nworkers = 2\nauth_timeout = 3\n" \
			"max_connections = 20000\n"
#define CONF_DB		"[server]\nworkers = 2\n"
/* One worker: the sender's and the receiver's; the smallest max_output. */
#define CONF_DB_SLOW	"[server]\nworkers = 1\nmax_output = 65536\n" \
			"max_frame = 8192\nmax_message = 4096\n" \
			"[database]\ndb_retry_interval = 1\n"
/* The same; a stop must not wait for the database for what its spool
 * holds, so it ends well within shutdown_timeout. */
#define CONF_DB_RESTART	CONF_DB_SLOW "[server]\nshutdown_timeout = 10\n"
#define SDB_STOP_MS	4000
#define CONF_SECRETS	"[server]\nworkers = 2\nlog_level = debug\n"
/* The largest frame chatd accepts, and the longest text it allows. */
#define BIG_FRAME	16777216
#define BIG_TEXT	(BIG_FRAME - 256)
#define CONF_BIG	"[server]\nworkers = 2\nmax_frame = 16777216\n" \
			"max_message = 16776960\nmax_output = 67108864\n"
#define BIG_NAME	"0123456789012345678901234567890123456789"
#define BIG_MS		30000	/* one 16 MiB request until its reply */
/* The smallest job queue, kept full by another client's bursts. */
#define CONF_JOBQ	"[server]\nworkers = 1\njob_queue_max = 16\n" \
			"offline_batch = 5\n"
#define JOBQ_N		200	/* messages stored for the receiver */
#define JOBQ_BURST	64	/* FRIEND_LISTs in one burst */
#define JOBQ_MS		20000	/* the receiver's login and pulls */
/* Deadlocks: one worker, and its database messages in the log. */
#define CONF_DEADLOCK	"[server]\nworkers = 1\nlog_level = debug\n"
#define DL_HEAVY	200	/* rows the other transaction inserts */
/* Deletions refused, then tried again every second. */
#define CONF_OFFDEL	"[server]\nworkers = 1\n[database]\n" \
			"db_retry_interval = 1\n"
#define OFFDEL_N	3	/* offline messages stored, then pulled */
#define OFFDEL_MS	10000	/* the rows gone, once deletes work */
#define DL_WAIT_MS	5000	/* until chatd waits for a lock */
#define DL_HOLD_MS	300	/* chatd kept waiting, before the rollback */
#define PRESENCE_MS	5000	/* a PRESENCE push that must come */

static struct harness H;
static int servers_state;	/* harness and mariadbd: 0 not yet, 1 up,
				 * -1 failed */
static int inst_ok;		/* the current test case's chatd is up */
static char stem[32];		/* every password of the run starts so */
static char priv_conf[256];	/* CONF for the privilege test case */

/* --- fixture (runs in the runner) ------------------------------------ */

/* The harness and mariadbd, started once; mariadbd again after the
 * database test stopped it.  0 or -1. */
static int
servers_up(void)
{
	int st;

	if (servers_state == 0) {
		servers_state = -1;
		if (harness_init(&H) == -1 || harness_start_mariadb(&H) == -1)
			return -1;
		servers_state = 1;
	}
	if (servers_state != 1)
		return -1;
	if (H.mariadb_pid > 0 &&
	    waitpid(H.mariadb_pid, &st, WNOHANG) == H.mariadb_pid &&
	    harness_start_mariadb(&H) == -1) {
		servers_state = -1;
		return -1;
	}
	return 0;
}

static void
inst_stop(void)
{
	int st;

	if (H.chatd[INST].pid <= 0)
		return;
	st = harness_signal_chatd(&H, INST, SIGTERM, 1);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fprintf(stderr, "it_abuse: chatd did not stop cleanly (wait "
		    "status %#x)\n", (unsigned)st);
}

static void
inst_start(const char *extra)
{
	inst_ok = 0;
	if (servers_up() == -1) {
		fprintf(stderr, "it_abuse: mariadbd is not running; every "
		    "test will fail\n");
		return;
	}
	inst_stop();
	inst_ok = harness_start_chatd(&H, INST, extra) == 0;
	if (!inst_ok)
		fprintf(stderr, "it_abuse: chatd did not start with:\n%s",
		    extra);
}

static void setup_rate(void) { inst_start(CONF_RATE); }
static void setup_login_user(void) { inst_start(CONF_LOGIN_USER); }
static void setup_login_addr(void) { inst_start(CONF_LOGIN_ADDR); }
static void setup_conns(void) { inst_start(CONF_CONNS); }
static void setup_timeouts(void) { inst_start(CONF_TIMEOUTS); }
static void setup_silent(void) { inst_start(CONF_SILENT); }
static void setup_db(void) { inst_start(CONF_DB); }
static void setup_db_slow(void) { inst_start(CONF_DB_SLOW); }
static void setup_db_restart(void) { inst_start(CONF_DB_RESTART); }
static void setup_secrets(void) { inst_start(CONF_SECRETS); }
static void setup_big(void) { inst_start(CONF_BIG); }
static void setup_jobq(void) { inst_start(CONF_JOBQ); }
static void setup_deadlock(void) { inst_start(CONF_DEADLOCK); }
static void setup_offdel(void) { inst_start(CONF_OFFDEL); }

/*
 * As root: nobody and nogroup (or the group nobody where there is no
 * nogroup).  Not root: no user, and the test says it was skipped.
 */
static void
setup_priv(void)
{
	const char *group = getgrnam("nogroup") != NULL ? "nogroup" :
	    "nobody";

	if (geteuid() == 0)
		(void)snprintf(priv_conf, sizeof(priv_conf), "[server]\n"
		    "workers = 2\nuser = nobody\ngroup = %s\n", group);
	else
		(void)snprintf(priv_conf, sizeof(priv_conf), "[server]\n"
		    "workers = 2\n");
	inst_start(priv_conf);
}

static void
teardown_inst(void)
{
	inst_stop();
	inst_ok = 0;
}

/* --- helpers (in the forked test) ------------------------------------ */

static int name_seq;

static void
begin(void)
{
	ck_assert_msg(inst_ok, "chatd for this test case did not start (see "
	    "stderr)");
}

static struct chatc *
xconnect(void)
{
	struct chatc *c;
	char err[256];

	c = chatc_connect("127.0.0.1", H.chatd[INST].port, REQ_MS, err,
	    sizeof(err));
	ck_assert_msg(c != NULL, "connect: %s", err);
	return harness_track(c);
}

/* tag_pid_n: unique across the tests sharing the database. */
static void
uniq(char *buf, size_t len, const char *tag)
{
	(void)snprintf(buf, len, "%s_%ld_%d", tag, (long)getpid(),
	    name_seq++);
}

/* A password that the secrets test will look for in the logs. */
static void
secret(char *buf, size_t len, const char *tag)
{
	(void)snprintf(buf, len, "%s-%s-%ld-%d", stem, tag, (long)getpid(),
	    name_seq++);
}

static long long
jnum(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
}

static const char *
jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : "";
}

/* o as text for a failure message (static buffer). */
static const char *
dump(const cJSON *o)
{
	static char buf[512];
	char *s = o != NULL ? cJSON_PrintUnformatted(o) : NULL;

	(void)snprintf(buf, sizeof(buf), "%s", s != NULL ? s : "(none)");
	cJSON_free(s);
	return buf;
}

/* Assert r is msgid with errno err (and seq when seq >= 0); frees r. */
static void
expect(cJSON *r, int msgid, int err, long long seq, const char *what)
{
	ck_assert_msg(r != NULL, "%s: no reply", what);
	ck_assert_msg(jnum(r, "msgid") == msgid && chatc_errno(r) == err &&
	    (seq < 0 || jnum(r, "seq") == seq), "%s: expected msgid %d errno "
	    "%d, got %s", what, msgid, err, dump(r));
	cJSON_Delete(r);
}

static long long
register_user(const char *tag, const char *pw, char *name, size_t namelen)
{
	struct chatc *c = xconnect();
	long long id;
	cJSON *r;

	uniq(name, namelen, tag);
	r = chatc_register(c, name, pw, REQ_MS);
	ck_assert_msg(r != NULL, "REG %s: %s", name, chatc_error(c));
	ck_assert_msg(jnum(r, "msgid") == MSG_REG_ACK && chatc_errno(r) == 0,
	    "REG %s: %s", name, dump(r));
	id = jnum(r, "id");
	ck_assert_msg(id > 0, "REG %s: %s", name, dump(r));
	cJSON_Delete(r);
	harness_close(c);
	return id;
}

static int
login_errno(struct chatc *c, long long id, const char *pw, char *errmsg,
    size_t len)
{
	cJSON *r = chatc_login(c, id, pw, REQ_MS);
	int err;

	ck_assert_msg(r != NULL, "LOGIN %lld: %s", id, chatc_error(c));
	ck_assert_msg(jnum(r, "msgid") == MSG_LOGIN_ACK, "LOGIN %lld: %s", id,
	    dump(r));
	err = chatc_errno(r);
	if (errmsg != NULL)
		(void)snprintf(errmsg, len, "%s", chatc_errmsg(r));
	cJSON_Delete(r);
	return err;
}

/* A new connection with id logged in. */
static struct chatc *
online(long long id, const char *pw)
{
	struct chatc *c = xconnect();
	char msg[256];
	int err;

	err = login_errno(c, id, pw, msg, sizeof(msg));
	ck_assert_msg(err == 0, "LOGIN %lld: errno %d %s", id, err, msg);
	return c;
}

/*
 * LOGIN on c until it is not refused with errno 13 (the database coming
 * back, or a full job queue), up to deadline; the LOGIN_ACK with errno 0.
 * *refused (when not NULL) counts the refusals.
 */
static cJSON *
login_until(struct chatc *c, long long id, const char *pw, int req_ms,
    long long deadline, int *refused, const char *what)
{
	cJSON *m;
	int err;

	for (;;) {
		m = chatc_login(c, id, pw, req_ms);
		ck_assert_msg(m != NULL && jnum(m, "msgid") == MSG_LOGIN_ACK,
		    "%s: %s (%s)", what, dump(m), chatc_error(c));
		if ((err = chatc_errno(m)) == 0)
			return m;
		ck_assert_msg(err == CERR_UNAVAILABLE && harness_now_ms() <
		    deadline, "%s: %s", what, dump(m));
		cJSON_Delete(m);
		if (refused != NULL)
			(*refused)++;
		harness_sleep_ms(50);
	}
}

static void
ping_ok(struct chatc *c, const char *who)
{
	cJSON *r = chatc_ping(c, REQ_MS);

	ck_assert_msg(r != NULL, "%s: PING: %s", who, chatc_error(c));
	ck_assert_msg(jnum(r, "msgid") == MSG_ACK && chatc_errno(r) == 0,
	    "%s: PING: %s", who, dump(r));
	cJSON_Delete(r);
}

/* A request as one line with a seq of our choosing (req is freed). */
static void
append_line(char **buf, size_t *len, cJSON *req, long long seq)
{
	size_t n;
	char *line, *nb;

	ck_assert(req != NULL);
	cJSON_AddNumberToObject(req, "seq", (double)seq);
	line = chatc_line(req, &n);
	cJSON_Delete(req);
	ck_assert(line != NULL);
	nb = realloc(*buf, *len + n + 1);
	ck_assert(nb != NULL);
	memcpy(nb + *len, line, n + 1);
	*buf = nb;
	*len += n;
	free(line);
}

static void
send_buf(struct chatc *c, char *buf, size_t len)
{
	ck_assert_msg(chatc_send_raw(c, buf, len) == 0, "send: %s",
	    chatc_error(c));
	free(buf);
}

/* 1 when the last failure on c means the server closed it. */
static int
closed_by_server(const struct chatc *c)
{
	const char *e = chatc_error(c);

	return strstr(e, "closed by server") != NULL ||
	    strstr(e, "reset") != NULL || strstr(e, "send:") != NULL;
}

/* Wait up to ms for the server to close c, reading (and dropping) what
 * it sends.  Milliseconds it took, or -1 when c is still open. */
static long long
wait_closed(struct chatc *c, long ms)
{
	long long t0 = harness_now_ms(), left;
	cJSON *m;

	while ((left = t0 + ms - harness_now_ms()) > 0) {
		if ((m = chatc_recv(c, (int)left)) != NULL) {
			cJSON_Delete(m);
			continue;
		}
		if (closed_by_server(c))
			return harness_now_ms() - t0;
	}
	return -1;
}

/* Count of users named name. */
static long
users_named(const char *name)
{
	char sql[256], out[32];

	(void)snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM users WHERE "
	    "name = '%s'", name);
	ck_assert_msg(harness_sql_value(&H, sql, out, sizeof(out)) == 0,
	    "query failed: %s", sql);
	return strtol(out, NULL, 10);
}

/* --- rate limit ------------------------------------------------------- */

/* Send n pipelined PINGs (seq first..first+n-1) in one write and count
 * the answers: ACKs and ERROR errno 12.  With a full bucket (full set)
 * the first rate_burst are the ones served. */
static void
ping_burst(struct chatc *c, int n, long long first, int full, int *acks,
    int *refused)
{
	char *buf = NULL, seen[RATE_PINGS];
	size_t len = 0;
	long long seq;
	cJSON *m;
	int i;

	ck_assert(n <= RATE_PINGS);
	memset(seen, 0, sizeof(seen));
	for (i = 0; i < n; i++)
		append_line(&buf, &len, chatc_build(MSG_PING), first + i);
	send_buf(c, buf, len);
	*acks = *refused = 0;
	for (i = 0; i < n; i++) {
		m = chatc_recv(c, REQ_MS);
		ck_assert_msg(m != NULL, "reply %d of %d: %s", i + 1, n,
		    chatc_error(c));
		seq = jnum(m, "seq");
		ck_assert_msg(seq >= first && seq < first + n &&
		    !seen[seq - first], "bad or repeated seq: %s", dump(m));
		if (jnum(m, "msgid") == MSG_ACK && chatc_errno(m) == 0 &&
		    jnum(m, "refmsgid") == MSG_PING) {
			(*acks)++;
			seen[seq - first] = 'a';
		} else {
			ck_assert_msg(jnum(m, "msgid") == MSG_ERROR &&
			    chatc_errno(m) == CERR_RATE &&
			    jnum(m, "refmsgid") == MSG_PING &&
			    strstr(chatc_errmsg(m), "rate_limit") != NULL,
			    "expected ACK or ERROR errno 12, got %s", dump(m));
			(*refused)++;
			seen[seq - first] = 'r';
		}
		cJSON_Delete(m);
	}
	for (i = 0; full && i < RATE_BURST && i < n; i++)
		ck_assert_msg(seen[i] == 'a', "PING %lld of a full bucket was "
		    "refused", first + i);
}

START_TEST(test_rate_limit)
{
	struct chatc *c;
	char name[PROTO_NAME_MAX + 1], pw[96], *buf = NULL;
	long long t_end1, t_end2;
	size_t len = 0;
	int acks, refused, acks2, refused2, i;
	double secs;
	cJSON *m;

	begin();
	c = xconnect();
	ping_burst(c, RATE_PINGS, 1, 1, &acks, &refused);
	t_end1 = harness_now_ms();
	fprintf(stderr, "it_abuse: rate: %d PINGs pipelined: %d ACK, %d "
	    "ERROR errno 12\n", RATE_PINGS, acks, refused);
	ck_assert_int_eq(acks + refused, RATE_PINGS);
	/* rate_burst, plus what rate_limit refilled while they were read */
	ck_assert_msg(acks >= RATE_BURST && acks <= RATE_BURST + 2,
	    "%d ACKs, expected %d (rate_burst) to %d", acks, RATE_BURST,
	    RATE_BURST + 2);

	/* A refused request is not served: this REG creates no user. */
	uniq(name, sizeof(name), "rated");
	secret(pw, sizeof(pw), "rated");
	append_line(&buf, &len, chatc_build_register(name, pw), 1000);
	send_buf(c, buf, len);
	expect(chatc_recv(c, REQ_MS), MSG_REG_ACK, CERR_RATE, 1000,
	    "REG over the rate");

	/* Open still; a second later rate_limit more are served. */
	harness_sleep_ms(1000);
	ping_burst(c, 30, 2000, 0, &acks2, &refused2);
	t_end2 = harness_now_ms();
	secs = (double)(t_end2 - t_end1) / 1000.0;
	fprintf(stderr, "it_abuse: rate: %.2f s later, 30 PINGs: %d ACK, %d "
	    "ERROR errno 12\n", secs, acks2, refused2);
	ck_assert_msg(acks2 >= RATE_LIMIT - 1 &&
	    acks2 <= (int)(RATE_LIMIT * secs) + 2, "%d ACKs %.2f s after "
	    "the bucket was empty (rate_limit = %d)", acks2, secs, RATE_LIMIT);

	/* Requests refused for what they are count too: with the bucket
	 * empty, unknown msgids get errno 12, not 14 each (at most one
	 * token came back meanwhile). */
	buf = NULL;
	len = 0;
	for (i = refused = 0; i < 5; i++)
		append_line(&buf, &len, chatc_build(999), 3000 + i);
	send_buf(c, buf, len);
	for (i = 0; i < 5; i++) {
		m = chatc_recv(c, REQ_MS);
		ck_assert_msg(m != NULL, "reply %d of 5: %s", i + 1,
		    chatc_error(c));
		ck_assert_msg(jnum(m, "msgid") == MSG_ERROR &&
		    (chatc_errno(m) == CERR_RATE ||
		    chatc_errno(m) == CERR_UNKNOWN_MSGID), "unknown msgid: %s",
		    dump(m));
		refused += chatc_errno(m) == CERR_RATE;
		cJSON_Delete(m);
	}
	ck_assert_msg(refused >= 4, "only %d of 5 unknown msgids over the "
	    "rate got errno 12", refused);
	harness_sleep_ms(1000 / RATE_LIMIT * 2);
	ping_ok(c, "after the bursts");
	ck_assert_msg(users_named(name) == 0, "the refused REG created %s",
	    name);
	ck_assert_msg(harness_log_contains(&H, INST, "rate_limit = 10 per "
	    "second"), "no log line naming rate_limit");
	harness_close(c);
}
END_TEST

/* --- failed logins ---------------------------------------------------- */

/*
 * On c, pipelined in one write: LOGIN id with the wrong password, then
 * LOGIN id2 with pw2.  chatd answers the second right after recording
 * the first failure (within the same second), so whether the second is
 * blocked does not depend on timing.  Returns the second's errno and
 * errmsg.
 */
static int
fail_then_login(struct chatc *c, long long id, const char *wrong,
    long long id2, const char *pw2, char *errmsg, size_t len)
{
	char *buf = NULL;
	size_t n = 0;
	cJSON *r;
	int err;

	append_line(&buf, &n, chatc_build_login(id, wrong), 501);
	append_line(&buf, &n, chatc_build_login(id2, pw2), 502);
	send_buf(c, buf, n);
	expect(chatc_recv(c, REQ_MS), MSG_LOGIN_ACK, CERR_AUTH, 501,
	    "wrong password");
	r = chatc_recv(c, REQ_MS);
	ck_assert_msg(r != NULL && jnum(r, "msgid") == MSG_LOGIN_ACK &&
	    jnum(r, "seq") == 502, "second LOGIN: %s (%s)", dump(r),
	    chatc_error(c));
	err = chatc_errno(r);
	(void)snprintf(errmsg, len, "%s", chatc_errmsg(r));
	cJSON_Delete(r);
	return err;
}

/* Assert a refusal with errno 12 that says to wait `secs` seconds. */
static void
blocked_for(int err, const char *errmsg, int secs, const char *what)
{
	char want[32];

	(void)snprintf(want, sizeof(want), "try again in %d s", secs);
	ck_assert_msg(err == CERR_RATE && strstr(errmsg, want) != NULL,
	    "%s: expected errno 12 \"... %s\", got errno %d \"%s\"", what,
	    want, err, errmsg);
}

START_TEST(test_login_fail_user)
{
	struct chatc *c, *o;
	char name[PROTO_NAME_MAX + 1], name2[PROTO_NAME_MAX + 1];
	char pw[96], pw2[96], wrong[96], msg[256];
	long long id, id2;
	int i, err;

	begin();
	secret(pw, sizeof(pw), "user");
	secret(pw2, sizeof(pw2), "other");
	secret(wrong, sizeof(wrong), "wrong");
	id = register_user("fail", pw, name, sizeof(name));
	id2 = register_user("fail2", pw2, name2, sizeof(name2));
	c = xconnect();

	/* login_fail_max wrong passwords: errno 1 each; the attempt right
	 * after, even with the right password: errno 12. */
	for (i = 0; i < FAIL_MAX - 1; i++)
		ck_assert_int_eq(login_errno(c, id, wrong, NULL, 0), CERR_AUTH);
	err = fail_then_login(c, id, wrong, id, pw, msg, sizeof(msg));
	blocked_for(err, msg, 1, "attempt after 3 failures");

	/* Per user: another user from the same address is not held up. */
	o = online(id2, pw2);
	harness_close(o);

	/* Each further failure doubles the delay, up to login_delay_max. */
	harness_sleep_ms(1100);
	err = fail_then_login(c, id, wrong, id, pw, msg, sizeof(msg));
	blocked_for(err, msg, 2, "attempt after 4 failures");
	harness_sleep_ms(2100);
	err = fail_then_login(c, id, wrong, id, pw, msg, sizeof(msg));
	blocked_for(err, msg, 4, "attempt after 5 failures");
	harness_sleep_ms(4100);
	err = fail_then_login(c, id, wrong, id, pw, msg, sizeof(msg));
	blocked_for(err, msg, DELAY_MAX, "attempt after 6 failures "
	    "(login_delay_max)");

	/* After the delay the right password works, and a success clears
	 * the user's count. */
	harness_sleep_ms(DELAY_MAX * 1000 + 100);
	err = login_errno(c, id, pw, msg, sizeof(msg));
	ck_assert_msg(err == 0, "right password after the delay: errno %d %s",
	    err, msg);
	expect(chatc_logout(c, REQ_MS), MSG_ACK, 0, -1, "LOGINOUT");
	err = fail_then_login(c, id, wrong, id, pw, msg, sizeof(msg));
	ck_assert_msg(err == 0, "one failure after a success: errno %d %s",
	    err, msg);
	harness_close(c);
}
END_TEST

START_TEST(test_login_fail_addr)
{
	char names[FAIL_MAX_ADDR + 1][PROTO_NAME_MAX + 1], pw[96], wrong[96];
	char *buf = NULL, msg[256];
	long long ids[FAIL_MAX_ADDR + 1];
	struct chatc *c;
	size_t len = 0;
	cJSON *r;
	int i, err;

	begin();
	secret(pw, sizeof(pw), "addr");
	secret(wrong, sizeof(wrong), "addr-wrong");
	for (i = 0; i <= FAIL_MAX_ADDR; i++)
		ids[i] = register_user("addr", pw, names[i], sizeof(names[i]));

	/* One wrong password for each of login_fail_max_addr users (each
	 * below login_fail_max), then the right one for another user. */
	c = xconnect();
	for (i = 0; i < FAIL_MAX_ADDR; i++)
		append_line(&buf, &len, chatc_build_login(ids[i], wrong),
		    600 + i);
	append_line(&buf, &len, chatc_build_login(ids[FAIL_MAX_ADDR], pw),
	    700);
	send_buf(c, buf, len);
	for (i = 0; i < FAIL_MAX_ADDR; i++)
		expect(chatc_recv(c, REQ_MS), MSG_LOGIN_ACK, CERR_AUTH, 600 + i,
		    "wrong password");
	r = chatc_recv(c, REQ_MS);
	ck_assert_msg(r != NULL && jnum(r, "seq") == 700, "LOGIN after the "
	    "address's failures: %s (%s)", dump(r), chatc_error(c));
	blocked_for(chatc_errno(r), chatc_errmsg(r), 1, "another user from "
	    "the same address");
	cJSON_Delete(r);

	harness_sleep_ms(1100);
	err = login_errno(c, ids[FAIL_MAX_ADDR], pw, msg, sizeof(msg));
	ck_assert_msg(err == 0, "right password after the delay: errno %d %s",
	    err, msg);
	harness_close(c);
}
END_TEST

/* --- connections per address ----------------------------------------- */

START_TEST(test_max_conns_per_addr)
{
	struct chatc *c[5], *extra, *again = NULL;
	long long ms, deadline;
	cJSON *r;
	int i;

	begin();
	for (i = 0; i < 5; i++) {
		c[i] = xconnect();
		ping_ok(c[i], "one of the first 5");
	}
	/* The kernel completes the handshake; chatd accepts and closes. */
	extra = xconnect();
	ms = wait_closed(extra, EOF_MS);
	ck_assert_msg(ms >= 0, "the 6th connection is still open after %d "
	    "ms: %s", EOF_MS, chatc_error(extra));
	fprintf(stderr, "it_abuse: conns: the 6th connection was closed "
	    "after %lld ms\n", ms);
	harness_close(extra);
	for (i = 0; i < 5; i++)
		ping_ok(c[i], "one of the first 5, after the 6th");

	/* Closing one makes room (once chatd has seen the close). */
	harness_close(c[0]);
	deadline = harness_now_ms() + EOF_MS;
	while (again == NULL && harness_now_ms() < deadline) {
		again = xconnect();
		r = chatc_ping(again, 1000);
		if (r != NULL && jnum(r, "msgid") == MSG_ACK) {
			cJSON_Delete(r);
			break;
		}
		cJSON_Delete(r);
		harness_close(again);
		again = NULL;
		harness_sleep_ms(POLL_MS);
	}
	ck_assert_msg(again != NULL, "no new connection served within %d ms "
	    "of closing one", EOF_MS);
	ck_assert_msg(harness_log_contains(&H, INST, "max_conns_per_addr (5) "
	    "reached"), "no log line naming max_conns_per_addr");
	harness_close_tracked();
}
END_TEST

/* --- auth_timeout and idle_timeout ------------------------------------ */

struct watched {
	const char *what;
	struct chatc *c;
	int ping_ms;		/* 0: silent */
	long long since;	/* connect or LOGIN_ACK */
	long long next_ping;
	long long closed;	/* ms after since, -1 while open */
	int pings, acks;
	long long seq;
};

static void
watch_init(struct watched *w, const char *what, struct chatc *c,
    int ping_ms, long long since)
{
	memset(w, 0, sizeof(*w));
	w->what = what;
	w->c = c;
	w->ping_ms = ping_ms;
	w->since = since;
	w->next_ping = since + ping_ms;
	w->closed = -1;
	w->seq = 900;
}

/* What each of w[0..n) saw since t, on stderr (key = value seconds). */
static void
watch_report(const struct watched *w, int n, const char *key, int value,
    long long t)
{
	int i;

	for (i = 0; i < n; i++)
		fprintf(stderr, "it_abuse: %s = %d: %s: %s%lld ms "
		    "(%d PINGs, %d ACKs)\n", key, value, w[i].what,
		    w[i].closed >= 0 ? "closed after " : "open after ",
		    w[i].closed >= 0 ? w[i].closed : harness_now_ms() - t,
		    w[i].pings, w[i].acks);
}

/* Watch n connections for ms: PING those that should, note when the
 * server closes any. */
static void
watch(struct watched *w, int n, long ms)
{
	long long end = harness_now_ms() + ms, now;
	cJSON *m;
	char *buf;
	size_t len;
	int i;

	while ((now = harness_now_ms()) < end) {
		for (i = 0; i < n; i++) {
			if (w[i].closed >= 0)
				continue;
			if (w[i].ping_ms > 0 && now >= w[i].next_ping) {
				buf = NULL;
				len = 0;
				append_line(&buf, &len, chatc_build(MSG_PING),
				    ++w[i].seq);
				w[i].pings++;
				w[i].next_ping += w[i].ping_ms;
				if (chatc_send_raw(w[i].c, buf, len) == -1 &&
				    closed_by_server(w[i].c))
					w[i].closed = now - w[i].since;
				free(buf);
			}
			while (w[i].closed < 0 &&
			    (m = chatc_recv(w[i].c, 0)) != NULL) {
				if (jnum(m, "msgid") == MSG_ACK)
					w[i].acks++;
				cJSON_Delete(m);
			}
			if (w[i].closed < 0 && closed_by_server(w[i].c))
				w[i].closed = now - w[i].since;
		}
		harness_sleep_ms(20);
	}
	/* The answers to the last PINGs of the ones still open. */
	for (i = 0; i < n; i++)
		while (w[i].closed < 0 && w[i].acks < w[i].pings &&
		    (m = chatc_recv(w[i].c, REQ_MS)) != NULL) {
			if (jnum(m, "msgid") == MSG_ACK)
				w[i].acks++;
			cJSON_Delete(m);
		}
}

START_TEST(test_auth_timeout)
{
	struct watched w[3];
	char name[PROTO_NAME_MAX + 1], pw[96];
	struct chatc *silent, *pinging, *user;
	long long id, t;
	int i;

	begin();
	secret(pw, sizeof(pw), "auth");
	id = register_user("auth", pw, name, sizeof(name));
	t = harness_now_ms();
	silent = xconnect();
	pinging = xconnect();
	user = online(id, pw);
	watch_init(&w[0], "silent anonymous", silent, 0, t);
	watch_init(&w[1], "anonymous sending PING every 500 ms", pinging,
	    500, t);
	watch_init(&w[2], "logged in, PING every s", user, 1000, t);
	watch(w, 3, (AUTH_TIMEOUT + 3) * 1000);
	watch_report(w, 3, "auth_timeout", AUTH_TIMEOUT, t);
	/* Whole seconds on a one-second timer: (auth_timeout - 1,
	 * auth_timeout + 1] s, with room for a slow machine. */
	for (i = 0; i < 2; i++)
		ck_assert_msg(w[i].closed >= (AUTH_TIMEOUT - 1) * 1000 - 100 &&
		    w[i].closed <= (AUTH_TIMEOUT + 1) * 1000 + 1000,
		    "%s: closed after %lld ms (auth_timeout = %d s)",
		    w[i].what, w[i].closed, AUTH_TIMEOUT);
	/* PINGs were answered but did not extend the timeout. */
	ck_assert_msg(w[1].acks >= 1, "anonymous PINGs were not answered");
	ck_assert_msg(w[2].closed < 0, "the logged-in connection was closed "
	    "after %lld ms", w[2].closed);
	ck_assert_msg(w[2].acks >= AUTH_TIMEOUT + 1, "logged-in PINGs: %d "
	    "ACKs", w[2].acks);
	ping_ok(user, "logged in");
	ck_assert(harness_log_contains(&H, INST, "close: auth_timeout"));
	harness_close_tracked();
}
END_TEST

START_TEST(test_idle_timeout)
{
	char n1[PROTO_NAME_MAX + 1], n2[PROTO_NAME_MAX + 1], pw[96];
	struct chatc *quiet, *alive;
	struct watched w[2];
	long long id1, id2, t;
	cJSON *r;

	begin();
	secret(pw, sizeof(pw), "idle");
	id1 = register_user("idle", pw, n1, sizeof(n1));
	id2 = register_user("alive", pw, n2, sizeof(n2));
	t = harness_now_ms();
	quiet = online(id1, pw);
	alive = online(id2, pw);
	watch_init(&w[0], "logged in, silent", quiet, 0, t);
	watch_init(&w[1], "logged in, PING every s", alive, 1000, t);
	watch(w, 2, (2 * IDLE_TIMEOUT + 1) * 1000);
	watch_report(w, 2, "idle_timeout", IDLE_TIMEOUT, t);
	ck_assert_msg(w[0].closed >= (IDLE_TIMEOUT - 1) * 1000 - 100 &&
	    w[0].closed <= (IDLE_TIMEOUT + 1) * 1000 + 1000, "silent session "
	    "closed after %lld ms (idle_timeout = %d s)", w[0].closed,
	    IDLE_TIMEOUT);
	ck_assert_msg(w[1].closed < 0, "the PINGing session was closed after "
	    "%lld ms", w[1].closed);
	ck_assert_int_eq(w[1].acks, w[1].pings);
	/* The closed session ended: a chat to it is stored offline. */
	r = chatc_one_chat(alive, id1, "are you there?", REQ_MS);
	ck_assert_msg(r != NULL && jnum(r, "msgid") == MSG_ACK &&
	    strcmp(jstr(r, "status"), "stored") == 0, "chat to the timed-out "
	    "user: %s", dump(r));
	cJSON_Delete(r);
	ck_assert(harness_log_contains(&H, INST, "close: idle_timeout"));
	harness_close_tracked();
}
END_TEST

/* --- 10,000 silent connections ---------------------------------------- */

/*
 * chatd's own memory: the sum over its master and workers of their
 * proportional share of anonymous and shared-memory pages (Pss_Anon +
 * Pss_Shmem), KiB; workers' open descriptors in *fds.  Not the whole Pss:
 * its file-backed part (libc, the client libraries) is shared with every
 * other process that maps the same files, and moves when those come and
 * go (other test suites run beside this one by make -j check).
 */
static long
chatd_pss_kb(int *fds)
{
	pid_t pids[1 + 64];
	char path[64], line[256];
	struct dirent *de;
	long total = 0, v;
	int n, i, seen = 0;
	FILE *fp;
	DIR *d;

	pids[0] = H.chatd[INST].pid;
	n = harness_chatd_workers(&H, INST, pids + 1, 64);
	ck_assert_msg(n > 0, "no workers");
	*fds = 0;
	for (i = 0; i <= n; i++) {
		(void)snprintf(path, sizeof(path), "/proc/%d/smaps_rollup",
		    (int)pids[i]);
		ck_assert_msg((fp = fopen(path, "r")) != NULL, "%s: %s", path,
		    strerror(errno));
		while (fgets(line, sizeof(line), fp) != NULL)
			if (sscanf(line, "Pss_Anon: %ld kB", &v) == 1 ||
			    sscanf(line, "Pss_Shmem: %ld kB", &v) == 1) {
				total += v;
				seen++;
			}
		(void)fclose(fp);
		ck_assert_msg(seen == 2 * (i + 1), "%s: no Pss_Anon and "
		    "Pss_Shmem lines (Linux 5.14 or later has them)", path);
		if (i == 0)
			continue;
		(void)snprintf(path, sizeof(path), "/proc/%d/fd", (int)pids[i]);
		if ((d = opendir(path)) == NULL)
			continue;
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				(*fds)++;
		(void)closedir(d);
	}
	return total;
}

/* What a holder process tells the test, over a pipe (atomic writes). */
struct holder_msg {
	int holder;
	int phase;		/* 1: connected, 2: done */
	int n;			/* connected (1) or closed by chatd (2) */
	int data;		/* connections that received bytes */
	int retries;		/* connects opened again (1) */
	long long ms;		/* connecting took (1); last close after
				 * the last connect (2) */
	char why[96];		/* a failure, or "" */
};

static void
holder_send(int wfd, struct holder_msg *m)
{
	(void)!write(wfd, m, sizeof(*m));
}

/* Nonblocking connect to 127.0.0.1:port; -1 on failure. */
static int
connect_nb(int port)
{
	struct sockaddr_in sin;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 &&
	    errno != EINPROGRESS) {
		(void)close(fd);
		return -1;
	}
	return fd;
}

/*
 * A child process that opens n connections, says so, then waits for
 * chatd to close every one of them (reading EOF) and reports.  It leaves
 * with _exit: nothing of the test's is its to clean up.
 *
 * Connections go in batches.  A worker's accept queue holds 511; when a
 * busy machine keeps the workers from draining it, the kernel drops the
 * SYN and the client would retry only a second later, so a connection
 * not established after HOLDER_STALL_MS is opened again instead.
 */
#define HOLDER_BATCH	200
#define HOLDER_STALL_MS	100
static void __attribute__((noreturn))
holder_run(int idx, int port, int n, int wfd)
{
	struct pollfd pfd[HOLDER_BATCH];
	long long started[HOLDER_BATCH];
	struct epoll_event ev, evs[256];
	struct holder_msg m;
	long long t0, t_up, deadline, now;
	int *fds, done = 0, i, k, nb, ep, err, closed = 0;
	socklen_t sl;
	char buf[256];
	ssize_t r;

	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	memset(&m, 0, sizeof(m));
	m.holder = idx;
	if ((fds = calloc((size_t)n, sizeof(*fds))) == NULL ||
	    (ep = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		(void)snprintf(m.why, sizeof(m.why), "out of memory");
		holder_send(wfd, &m);
		_exit(1);
	}
	t0 = harness_now_ms();
	while (done < n) {
		nb = n - done < HOLDER_BATCH ? n - done : HOLDER_BATCH;
		for (i = 0; i < nb; i++) {
			pfd[i].fd = -2;		/* to be opened */
			pfd[i].events = POLLOUT;
			pfd[i].revents = 0;
		}
		deadline = harness_now_ms() + 10000;
		for (;;) {
			now = harness_now_ms();
			for (i = 0, k = 0; i < nb; i++) {
				if (pfd[i].fd >= 0 && pfd[i].revents == 0 &&
				    now - started[i] >= HOLDER_STALL_MS) {
					(void)close(pfd[i].fd);
					pfd[i].fd = -2;
					m.retries++;
				}
				if (pfd[i].fd == -2) {
					if ((pfd[i].fd = connect_nb(port)) ==
					    -1) {
						(void)snprintf(m.why,
						    sizeof(m.why), "connect "
						    "%d: %s", done + i,
						    strerror(errno));
						holder_send(wfd, &m);
						_exit(1);
					}
					started[i] = now;
					fds[done + i] = pfd[i].fd;
				}
				if (pfd[i].fd < 0 || pfd[i].revents == 0)
					continue;
				sl = sizeof(err);
				if (getsockopt(pfd[i].fd, SOL_SOCKET, SO_ERROR,
				    &err, &sl) == -1 || err != 0) {
					(void)snprintf(m.why, sizeof(m.why),
					    "connect %d: %s", done + i,
					    strerror(err));
					holder_send(wfd, &m);
					_exit(1);
				}
				pfd[i].fd = -1;	/* established */
			}
			for (i = 0, k = 0; i < nb; i++)
				k += pfd[i].fd == -1;
			if (k == nb)
				break;
			if (now > deadline || poll(pfd, (nfds_t)nb, 20) == -1) {
				(void)snprintf(m.why, sizeof(m.why),
				    "connections %d.. did not complete", done);
				holder_send(wfd, &m);
				_exit(1);
			}
		}
		done += nb;
	}
	t_up = harness_now_ms();
	m.phase = 1;
	m.n = n;
	m.ms = t_up - t0;
	holder_send(wfd, &m);

	for (i = 0; i < n; i++) {
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN | EPOLLRDHUP;
		ev.data.u32 = (uint32_t)i;
		(void)epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
	}
	deadline = t_up + SILENT_CLOSE_MS;
	m.ms = 0;
	while (closed < n && harness_now_ms() < deadline) {
		k = epoll_wait(ep, evs, 256, 100);
		for (i = 0; i < k; i++) {
			int fd = fds[evs[i].data.u32];

			if (fd < 0)
				continue;
			r = read(fd, buf, sizeof(buf));
			if (r > 0) {
				m.data++;	/* chatd sent something */
				continue;
			}
			if (r == -1 && errno == EAGAIN)
				continue;
			(void)close(fd);
			fds[evs[i].data.u32] = -1;
			closed++;
			m.ms = harness_now_ms() - t_up;
		}
	}
	m.phase = 2;
	m.n = closed;
	if (closed < n)
		(void)snprintf(m.why, sizeof(m.why), "%d of %d still open %d "
		    "ms after the last connect", n - closed, n,
		    SILENT_CLOSE_MS);
	holder_send(wfd, &m);
	_exit(0);
}

START_TEST(test_silent_connections)
{
	struct holder_msg m;
	struct rlimit rl;
	struct chatc *c;
	pid_t holders[8];
	long base, peak, after, pss;
	long long t0, deadline, connect_ms = 0, close_ms = 0;
	int p[2], per, nh, i, up = 0, closed = 0, done = 0, fds, base_fds;
	int peak_fds = 0, data = 0, retries = 0, st;
	ssize_t r;

	begin();
	/* Room for the connections: several holders if one cannot. */
	ck_assert(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	rl.rlim_cur = rl.rlim_max;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
	per = rl.rlim_cur > SILENT_N + 64 ? SILENT_N : (int)rl.rlim_cur - 64;
	ck_assert_msg(per >= 1000, "open file limit %ld is too low",
	    (long)rl.rlim_cur);
	nh = (SILENT_N + per - 1) / per;
	ck_assert(nh <= 8);

	/* Baseline after a first client came and went. */
	c = xconnect();
	ping_ok(c, "warm-up");
	harness_close(c);
	harness_sleep_ms(300);
	base = chatd_pss_kb(&base_fds);

	ck_assert(pipe2(p, O_CLOEXEC) == 0);
	t0 = harness_now_ms();
	for (i = 0; i < nh; i++) {
		int n = i < nh - 1 ? per : SILENT_N - per * (nh - 1);

		holders[i] = fork();
		ck_assert_msg(holders[i] != -1, "fork: %s", strerror(errno));
		if (holders[i] == 0) {
			(void)close(p[0]);
			holder_run(i, H.chatd[INST].port, n, p[1]);
		}
	}
	(void)close(p[1]);
	peak = base;
	deadline = t0 + 20000 + SILENT_CLOSE_MS;
	while (done < nh && harness_now_ms() < deadline) {
		struct pollfd pfd = { p[0], POLLIN, 0 };

		if (poll(&pfd, 1, 100) == 1) {
			r = read(p[0], &m, sizeof(m));
			if (r == 0)
				break;	/* every holder is gone */
			ck_assert_int_eq(r, sizeof(m));
			ck_assert_msg(m.why[0] == '\0', "holder %d: %s",
			    m.holder, m.why);
			if (m.phase == 1) {
				up += m.n;
				retries += m.retries;
				if (m.ms > connect_ms)
					connect_ms = m.ms;
			} else {
				closed += m.n;
				data += m.data;
				if (m.ms > close_ms)
					close_ms = m.ms;
				done++;
			}
		}
		pss = chatd_pss_kb(&fds);
		if (pss > peak)
			peak = pss;
		if (fds > peak_fds)
			peak_fds = fds;
	}
	(void)close(p[0]);
	for (i = 0; i < nh; i++) {
		if (done < nh)
			(void)kill(holders[i], SIGKILL);
		(void)waitpid(holders[i], &st, 0);
	}
	/* Freed memory may take a moment to reach the kernel. */
	deadline = harness_now_ms() + 5000;
	do {
		harness_sleep_ms(200);
		after = chatd_pss_kb(&fds);
	} while (after > base + MEM_SLACK_KB && harness_now_ms() < deadline);

	fprintf(stderr, "it_abuse: %d silent connections: connected in %lld "
	    "ms (%d connects stalled and opened again), at most %d held by "
	    "chatd at once, %d closed, the last %lld ms after the last connect "
	    "(auth_timeout = %d s)\n", SILENT_N, connect_ms, retries,
	    peak_fds - base_fds, closed, close_ms, SILENT_AUTH);
	fprintf(stderr, "it_abuse: chatd memory (Pss_Anon + Pss_Shmem, master "
	    "+ workers): "
	    "baseline %ld KiB, peak %ld KiB, after %ld KiB (%+ld KiB)\n",
	    base, peak, after, after - base);
	ck_assert_msg(done == nh, "holders did not finish in time");
	ck_assert_int_eq(up, SILENT_N);
	ck_assert_int_eq(closed, SILENT_N);
	ck_assert_msg(data == 0, "chatd sent bytes on %d silent connections",
	    data);
	/* They were all there together: connecting is much faster than
	 * auth_timeout. */
	ck_assert_msg(peak_fds - base_fds >= SILENT_N * 9 / 10, "at most %d "
	    "connections were held at once", peak_fds - base_fds);
	ck_assert_msg(close_ms <= (SILENT_AUTH + 2) * 1000 + 3000, "the last "
	    "was closed %lld ms after the last connect (auth_timeout = %d s)",
	    close_ms, SILENT_AUTH);
	ck_assert_msg(after <= base + MEM_SLACK_KB, "chatd's memory did not "
	    "return near its baseline: %ld KiB after, %ld KiB before",
	    after, base);
	ck_assert_msg(UNDER_ASAN || after - base <= (peak - base) / 2 + 512,
	    "chatd kept %ld of the %ld KiB the connections took", after - base,
	    peak - base);
	ck_assert_int_eq(fds, base_fds);
	/* And chatd still serves. */
	c = xconnect();
	ping_ok(c, "after the silent connections");
	harness_close(c);
}
END_TEST

/* --- mariadbd stopped and restarted under chat traffic ----------------- */

/* Send one chat a -> b; expect ACK "delivered" and b to get it. */
static void
chat_delivered(struct chatc *a, long long aid, struct chatc *b,
    long long bid, const char *text)
{
	cJSON *r, *f;

	r = chatc_one_chat(a, bid, text, REQ_MS);
	ck_assert_msg(r != NULL && jnum(r, "msgid") == MSG_ACK &&
	    chatc_errno(r) == 0 && strcmp(jstr(r, "status"), "delivered") ==
	    0, "chat \"%s\": %s (%s)", text, dump(r), chatc_error(a));
	cJSON_Delete(r);
	f = chatc_wait_msgid(b, MSG_ONE_CHAT, REQ_MS);
	ck_assert_msg(f != NULL, "chat \"%s\" not delivered: %s", text,
	    chatc_error(b));
	ck_assert_msg(jnum(f, "id") == aid && jnum(f, "toid") == bid &&
	    strcmp(jstr(f, "msg"), text) == 0, "delivered %s, sent \"%s\"",
	    dump(f), text);
	cJSON_Delete(f);
}

START_TEST(test_database_down)
{
	char na[PROTO_NAME_MAX + 1], nb[PROTO_NAME_MAX + 1];
	char nc[PROTO_NAME_MAX + 1], nd[PROTO_NAME_MAX + 1];
	char pw[96], text[64], stored[64];
	struct chatc *a, *b, *anon;
	long long ida, idb, idc, t0, deadline, down_ms;
	int sent = 0, n;
	const cJSON *off;
	pid_t stopper;
	cJSON *r, *f;

	begin();
	secret(pw, sizeof(pw), "db");
	ida = register_user("dba", pw, na, sizeof(na));
	idb = register_user("dbb", pw, nb, sizeof(nb));
	idc = register_user("dbc", pw, nc, sizeof(nc));
	a = online(ida, pw);
	b = online(idb, pw);
	chat_delivered(a, ida, b, idb, "before");

	/* Stop mariadbd from another process while a and b chat on. */
	t0 = harness_now_ms();
	stopper = fork();
	ck_assert_msg(stopper != -1, "fork: %s", strerror(errno));
	if (stopper == 0) {
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* The runner's mariadbd: its exit status is not ours. */
		(void)harness_stop_mariadb(&H);
		_exit(0);
	}
	down_ms = -1;
	while (down_ms < 0 || harness_now_ms() - t0 < 1000) {
		ck_assert_msg(harness_now_ms() - t0 < 40000, "mariadbd did not "
		    "stop within 40 s");
		if (down_ms < 0 && waitpid(stopper, NULL, WNOHANG) == stopper)
			down_ms = harness_now_ms() - t0;
		(void)snprintf(text, sizeof(text), "during stop %d", sent);
		if (sent % 2 == 0)
			chat_delivered(a, ida, b, idb, text);
		else
			chat_delivered(b, idb, a, ida, text);
		sent++;
		harness_sleep_ms(2);
	}
	fprintf(stderr, "it_abuse: db: mariadbd stopped in %lld ms; %d chats "
	    "delivered in the %lld ms from the stop on\n", down_ms, sent,
	    harness_now_ms() - t0);

	/* Down: online chat goes on; what needs the database gets 13. */
	chat_delivered(a, ida, b, idb, "while down");
	chat_delivered(b, idb, a, ida, "while down, back");
	t0 = harness_now_ms();
	r = chatc_one_chat(a, idc, "to an offline user, db down", DB_DOWN_MS);
	ck_assert_msg(r != NULL && jnum(r, "msgid") == MSG_ERROR &&
	    chatc_errno(r) == CERR_UNAVAILABLE && jnum(r, "refmsgid") ==
	    MSG_ONE_CHAT, "chat to an offline user, db down: %s (%s)",
	    dump(r), chatc_error(a));
	cJSON_Delete(r);
	anon = xconnect();
	uniq(nd, sizeof(nd), "dbd");
	r = chatc_register(anon, nd, pw, DB_DOWN_MS);
	expect(r, MSG_REG_ACK, CERR_UNAVAILABLE, -1, "REG, db down");
	r = chatc_login(anon, idc, pw, DB_DOWN_MS);
	expect(r, MSG_LOGIN_ACK, CERR_UNAVAILABLE, -1, "LOGIN, db down");
	fprintf(stderr, "it_abuse: db: errno 13 for the offline chat, REG "
	    "and LOGIN within %lld ms\n", harness_now_ms() - t0);
	ping_ok(anon, "anonymous, db down");
	chat_delivered(a, ida, b, idb, "still while down");

	/* Back (same port, same data): chatd recovers by itself. */
	ck_assert_msg(harness_start_mariadb(&H) == 0, "mariadbd did not "
	    "restart");
	t0 = harness_now_ms();
	deadline = t0 + DB_BACK_MS;
	for (n = 0;; n++) {
		(void)snprintf(stored, sizeof(stored), "stored %d", n);
		r = chatc_one_chat(a, idc, stored, DB_BACK_MS);
		ck_assert_msg(r != NULL, "chat to offline user: %s",
		    chatc_error(a));
		if (jnum(r, "msgid") == MSG_ACK && chatc_errno(r) == 0) {
			ck_assert_str_eq(jstr(r, "status"), "stored");
			cJSON_Delete(r);
			break;
		}
		ck_assert_msg(chatc_errno(r) == CERR_UNAVAILABLE, "chat to an "
		    "offline user while the db comes back: %s", dump(r));
		cJSON_Delete(r);
		ck_assert_msg(harness_now_ms() < deadline, "offline store still "
		    "errno 13 %d ms after mariadbd restarted", DB_BACK_MS);
		chat_delivered(b, idb, a, ida, "meanwhile");
		harness_sleep_ms(200);
	}
	fprintf(stderr, "it_abuse: db: offline store works again %lld ms "
	    "after mariadbd restarted\n", harness_now_ms() - t0);

	/* LOGIN works, and brings the stored message only: none of those
	 * answered errno 13 was kept. */
	r = login_until(anon, idc, pw, DB_BACK_MS, deadline, NULL,
	    "LOGIN after mariadbd restarted");
	off = cJSON_GetObjectItemCaseSensitive(r, "offlinemsg");
	ck_assert_msg(cJSON_IsArray(off) && cJSON_GetArraySize(off) == 1 &&
	    cJSON_IsString(off->child), "offline messages of %s: %s", nc,
	    dump(r));
	f = cJSON_Parse(off->child->valuestring);
	ck_assert_msg(f != NULL && jnum(f, "id") == ida &&
	    strcmp(jstr(f, "msg"), stored) == 0, "offline message %s, want "
	    "\"%s\"", off->child->valuestring, stored);
	cJSON_Delete(f);
	cJSON_Delete(r);
	(void)register_user("dbe", pw, nd, sizeof(nd));
	chat_delivered(a, ida, b, idb, "after");
	harness_close_tracked();
	/* Ours now (a child of this test): stop it cleanly; the next
	 * fixture starts the runner's again. */
	(void)harness_stop_mariadb(&H);
}
END_TEST

/*
 * mariadbd is down when a receiver that reads nothing is dropped as a
 * slow consumer.  The chats still queued in chatd for it were ACKed
 * "delivered" to their sender, and are stored offline for it at the drop;
 * with the database down those stores failed and the messages were lost.
 * They are now kept and stored again once the database is back: every
 * message ACKed "delivered" reaches the receiver, before the drop or at
 * its next login.
 */
#define SDB_N		2000	/* messages sent at most */
#define SDB_TEXT	3000	/* bytes of each */
#define SDB_WINDOW	16
#define SDB_SEQ0	70000
#define SDB_SEND_MS	30000
#define SDB_EOF_MS	15000
#define SDB_PUSH_MS	10000	/* kept stores tried every second */
#define SDB_RESPAWN_MS	15000	/* a killed worker replaced, its spool taken */

/* The number of message text "sdb NNNNN ...", or -1. */
static int
sdb_num(const cJSON *m, long long from)
{
	const char *t;

	if (jnum(m, "msgid") != MSG_ONE_CHAT || jnum(m, "id") != from)
		return -1;
	t = jstr(m, "msg");
	if (strncmp(t, "sdb ", 4) != 0 || atoi(t + 4) < 0 ||
	    atoi(t + 4) >= SDB_N)
		return -1;
	return atoi(t + 4);
}

/* chatctl stats offline_waiting, summed over the workers. */
static long long
waiting(void)
{
	char err[256];
	long long n = -1;

	ck_assert_msg(harness_stats_sum(&H, INST, "offline_waiting", &n, NULL,
	    err, sizeof(err)) == 0, "chatctl stats: %s", err);
	return n;
}

/*
 * The body of the three tests below.  While the kept stores wait for the
 * database, written to the spool (spool_dir) too: SDB_KILL SIGKILLs the
 * only worker, and the worker started in its place must take them from
 * there; SDB_RESTART stops chatd (which must say it leaves them there)
 * and starts it again, whose worker must take them.
 */
enum { SDB_PLAIN, SDB_KILL, SDB_RESTART };

static void
slow_consumer_db_down(int mode)
{
	char pw[96], nr[64], ns[64], needle[160], *text, *buf = NULL;
	pid_t old_pid, new_pid = 0;
	/* The instances of every TCase append to one log. */
	int took0 = harness_log_count(&H, INST, "spool: took");
	int left0 = harness_log_count(&H, INST, "wait for the database in");
	struct chatc *r, *s;
	long long idr, ids, t0, deadline, seq, left;
	int *acked, *seen, next = 0, inflight = 0, stop_at = SDB_N, gone = 0;
	int nacked = 0, nrefused = 0, lost = 0, i, rc, n, ninack;
	size_t len = 0;
	int db_port;
	const cJSON *off, *o;
	cJSON *m, *f;

	begin();
	db_port = H.mariadb_port;
	acked = calloc(SDB_N, sizeof(int));
	seen = calloc(SDB_N, sizeof(int));
	text = malloc(SDB_TEXT + 1);
	ck_assert(acked != NULL && seen != NULL && text != NULL);
	secret(pw, sizeof(pw), "sdb");
	idr = register_user("sdbr", pw, nr, sizeof(nr));
	ids = register_user("sdbs", pw, ns, sizeof(ns));
	r = xconnect();
	rc = 32768;
	ck_assert_int_eq(setsockopt(chatc_fd(r), SOL_SOCKET, SO_RCVBUF, &rc,
	    sizeof(rc)), 0);
	ck_assert_int_eq(login_errno(r, idr, pw, NULL, 0), 0);
	s = online(ids, pw);

	/* The runner's mariadbd: the stop's result says nothing here, a
	 * refused connection does (stores from now on fail). */
	(void)harness_stop_mariadb(&H);
	t0 = harness_now_ms();
	while (harness_port_open(db_port)) {
		ck_assert_msg(harness_now_ms() - t0 < 40000, "mariadbd did not "
		    "stop within 40 s");
		harness_sleep_ms(20);
	}

	/* Pipeline chats to the receiver until one is refused: it was
	 * dropped, and what comes after cannot be stored. */
	deadline = harness_now_ms() + SDB_SEND_MS;
	while (next < stop_at || inflight > 0) {
		while (next < stop_at && inflight < SDB_WINDOW) {
			(void)snprintf(text, SDB_TEXT + 1, "sdb %05d ", next);
			memset(text + 10, 's', SDB_TEXT - 10);
			text[SDB_TEXT] = '\0';
			len = 0;
			append_line(&buf, &len, chatc_build_one_chat(idr,
			    text), SDB_SEQ0 + next);
			ck_assert_int_eq(chatc_send_raw(s, buf, len), 0);
			next++;
			inflight++;
		}
		left = deadline - harness_now_ms();
		ck_assert_msg(left > 0, "after %d ms: %d sent, %d delivered, "
		    "%d refused", SDB_SEND_MS, next, nacked, nrefused);
		m = chatc_recv(s, (int)left);
		ck_assert_msg(m != NULL, "sender: %s", chatc_error(s));
		if (jnum(m, "msgid") != MSG_ACK &&
		    jnum(m, "msgid") != MSG_ERROR) {
			cJSON_Delete(m);
			continue;
		}
		seq = jnum(m, "seq") - SDB_SEQ0;
		ck_assert_msg(seq >= 0 && seq < next && !acked[seq],
		    "reply with unexpected seq: %s", dump(m));
		if (jnum(m, "msgid") == MSG_ACK) {
			ck_assert_msg(strcmp(jstr(m, "status"), "delivered") ==
			    0, "message %lld ACKed with the database down: %s",
			    seq, dump(m));
			acked[seq] = 1;
			nacked++;
		} else {
			ck_assert_msg(chatc_errno(m) == CERR_UNAVAILABLE,
			    "message %lld: %s", seq, dump(m));
			nrefused++;
			if (!gone) {
				gone = 1;
				stop_at = next;
			}
		}
		cJSON_Delete(m);
		inflight--;
	}
	free(buf);
	(void)snprintf(needle, sizeof(needle), "(user %lld): output over "
	    "max_output", idr);
	ck_assert_msg(gone && harness_log_contains(&H, INST, needle),
	    "%d sent, %d delivered: the receiver was not dropped as a slow "
	    "consumer", next, nacked);
	t0 = harness_now_ms();
	while (!harness_log_contains(&H, INST, "database unavailable; trying "
	    "again") && harness_now_ms() - t0 < DB_DOWN_MS)
		harness_sleep_ms(50);
	ck_assert_msg(harness_log_contains(&H, INST, "database unavailable; "
	    "trying again"), "the failed stores of the slow consumer's "
	    "queued chats were not logged as kept");
	ck_assert_msg(waiting() > 0, "chatctl stats offline_waiting is 0 "
	    "while stores wait for the database");

	/* The receiver reads what reached it, up to the close. */
	deadline = harness_now_ms() + SDB_EOF_MS;
	while ((left = deadline - harness_now_ms()) > 0 &&
	    (m = chatc_recv(r, (int)left)) != NULL) {
		if ((n = sdb_num(m, ids)) >= 0)
			seen[n]++;
		cJSON_Delete(m);
	}
	ck_assert_msg(chatc_closed(r), "the dropped receiver's connection "
	    "did not end within %d ms: %s", SDB_EOF_MS, chatc_error(r));
	harness_close(r);
	if (mode == SDB_KILL) {
		ck_assert_int_eq(harness_chatd_workers(&H, INST, &old_pid, 1),
		    1);
		ck_assert_int_eq(kill(old_pid, SIGKILL), 0);
		deadline = harness_now_ms() + SDB_RESPAWN_MS;
		while (harness_chatd_workers(&H, INST, &new_pid, 1) != 1 ||
		    new_pid == old_pid) {
			ck_assert_msg(harness_now_ms() < deadline, "the killed "
			    "worker was not replaced within %d ms",
			    SDB_RESPAWN_MS);
			harness_sleep_ms(POLL_MS);
		}
	}
	if (mode == SDB_RESTART) {
		/* Not our child: waits until it is gone, answers -1. */
		t0 = harness_now_ms();
		(void)harness_signal_chatd(&H, INST, SIGTERM, 1);
		t0 = harness_now_ms() - t0;
		ck_assert_msg(t0 < SDB_STOP_MS, "chatd took %lld ms to stop "
		    "with the database down (shutdown_timeout 10 s): it waited "
		    "for messages its spool holds", t0);
		ck_assert_msg(harness_log_count(&H, INST, "wait for the "
		    "database in") > left0, "the stopped worker did not say it "
		    "left its spool");
		ck_assert_msg(harness_start_chatd(&H, INST, CONF_DB_RESTART) ==
		    0, "chatd did not start again with the database down");
		deadline = harness_now_ms() + SDB_RESPAWN_MS;
	}
	if (mode != SDB_PLAIN) {
		/* Its first tick takes what the stopped one spooled. */
		while (harness_log_count(&H, INST, "spool: took") <= took0) {
			ck_assert_msg(harness_now_ms() < deadline, "the new "
			    "worker took nothing from the old one's spool");
			harness_sleep_ms(POLL_MS);
		}
		ck_assert_msg(waiting() > 0, "chatctl stats offline_waiting "
		    "is 0 after the new worker took the old one's spool");
	}

	/* The database back: log in again, take everything stored. */
	ck_assert_msg(harness_start_mariadb(&H) == 0, "mariadbd did not "
	    "restart");
	deadline = harness_now_ms() + DB_BACK_MS;
	r = xconnect();
	m = login_until(r, idr, pw, DB_BACK_MS, deadline, NULL,
	    "LOGIN after mariadbd restarted");
	off = cJSON_GetObjectItemCaseSensitive(m, "offlinemsg");
	ninack = 0;
	cJSON_ArrayForEach(o, off) {
		ck_assert(cJSON_IsString(o));
		f = cJSON_Parse(o->valuestring);
		if (f != NULL && (n = sdb_num(f, ids)) >= 0) {
			seen[n]++;
			ninack++;
		}
		cJSON_Delete(f);
	}
	cJSON_Delete(m);
	/* What is stored after the login is pushed. */
	deadline = harness_now_ms() + SDB_PUSH_MS;
	for (;;) {
		for (i = lost = 0; i < next; i++)
			lost += acked[i] && seen[i] == 0;
		if (lost == 0 || (left = deadline - harness_now_ms()) <= 0)
			break;
		if ((m = chatc_recv(r, (int)left)) == NULL)
			break;
		if ((n = sdb_num(m, ids)) >= 0)
			seen[n]++;
		cJSON_Delete(m);
	}
	fprintf(stderr, "it_abuse: slow consumer, db down%s: %d sent, %d "
	    "delivered, %d refused; %d in LOGIN_ACK; %d lost\n", mode ==
	    SDB_KILL ? ", worker killed" : mode == SDB_RESTART ? ", chatd "
	    "restarted" : "", next, nacked, nrefused, ninack, lost);
	ck_assert_msg(lost == 0, "%d message(s) ACKed \"delivered\" to a slow "
	    "consumer dropped while the database was down were lost", lost);
	/* All stored: nothing waits (the gauge is set as each is). */
	deadline = harness_now_ms() + SDB_PUSH_MS;
	while ((n = (int)waiting()) != 0 && harness_now_ms() < deadline)
		harness_sleep_ms(POLL_MS);
	ck_assert_msg(n == 0, "chatctl stats offline_waiting is %d after "
	    "every message arrived", n);
	harness_close(r);
	harness_close(s);
	free(acked);
	free(seen);
	free(text);
	/* Ours now (a child of this test): stop it cleanly; the next
	 * fixture starts the runner's again.  So is a restarted chatd. */
	if (mode == SDB_RESTART)
		ck_assert_int_eq(harness_signal_chatd(&H, INST, SIGTERM, 1), 0);
	(void)harness_stop_mariadb(&H);
}

START_TEST(test_slow_consumer_db_down)
{
	slow_consumer_db_down(SDB_PLAIN);
}
END_TEST

/*
 * The same with the worker SIGKILLed while the rescued messages wait for
 * the database: they were kept in its memory only, and lost with it.
 */
START_TEST(test_slow_consumer_db_down_worker_killed)
{
	slow_consumer_db_down(SDB_KILL);
}
END_TEST

/*
 * The same with chatd stopped and started again (an operator restarting
 * it during a database outage): the stop logged them lost.  The stop must
 * also not wait shutdown_timeout for the database for what the spool
 * holds.
 */
START_TEST(test_slow_consumer_db_down_restart)
{
	slow_consumer_db_down(SDB_RESTART);
}
END_TEST

/* --- the largest frame ------------------------------------------------- */

/* A text of len bytes: tag, then fill up to len. */
static char *
big_text(const char *tag, char fill, size_t len)
{
	char *t = malloc(len + 1);
	size_t n = strlen(tag);

	ck_assert(t != NULL && n <= len);
	memcpy(t, tag, n);
	memset(t + n, fill, len - n);
	t[len] = '\0';
	return t;
}

/* f is a's ONE_CHAT to bid carrying text (frees f). */
static void
big_frame_is(cJSON *f, long long aid, long long bid, const char *text,
    const char *what)
{
	const char *msg;

	ck_assert_msg(f != NULL, "%s: no frame", what);
	msg = jstr(f, "msg");
	ck_assert_msg(jnum(f, "msgid") == MSG_ONE_CHAT && jnum(f, "id") ==
	    aid && jnum(f, "toid") == bid, "%s: %.200s", what, dump(f));
	ck_assert_msg(strlen(msg) == strlen(text) && strcmp(msg, text) == 0,
	    "%s: %zu bytes of text arrived, %zu sent", what, strlen(msg),
	    strlen(text));
	cJSON_Delete(f);
}

/*
 * max_frame at its largest (16 MiB) and max_message 256 bytes below it:
 * a chat of the longest text, delivered live (across workers or not),
 * and stored for an offline recipient with every byte one that the
 * stored frame escapes again, so that the frame in the database and the
 * LOGIN_ACK that carries it are both longer than 16 MiB.  Each must
 * arrive whole; nothing may be refused for its size.
 */
START_TEST(test_largest_frame)
{
	char pw[96], na[PROTO_NAME_MAX + 1], nb[PROTO_NAME_MAX + 1];
	char *live, *quoted;
	struct chatc *a, *b;
	long long ida, idb;
	const cJSON *off, *o;
	cJSON *r;

	begin();
	secret(pw, sizeof(pw), "big");
	/* Long names make the forwarded frames longer still. */
	ida = register_user("biga_" BIG_NAME, pw, na, sizeof(na));
	idb = register_user("bigb_" BIG_NAME, pw, nb, sizeof(nb));
	a = online(ida, pw);
	b = online(idb, pw);

	/* Live: the longest text there is. */
	live = big_text("big live ", 'x', BIG_TEXT);
	r = chatc_one_chat(a, idb, live, BIG_MS);
	ck_assert_msg(r != NULL, "live chat: %s", chatc_error(a));
	ck_assert_msg(jnum(r, "msgid") == MSG_ACK && chatc_errno(r) == 0 &&
	    strcmp(jstr(r, "status"), "delivered") == 0, "live chat of %d "
	    "bytes: %s", BIG_TEXT, dump(r));
	cJSON_Delete(r);
	big_frame_is(chatc_wait_msgid(b, MSG_ONE_CHAT, BIG_MS), ida, idb, live,
	    "live chat");
	expect(chatc_logout(b, REQ_MS), MSG_ACK, 0, -1, "LOGINOUT");

	/* Offline: quotes, each escaped once in the frame a sends (so the
	 * frame is as long as max_frame allows), once more in the stored
	 * frame's text, and twice more in LOGIN_ACK's offlinemsg string. */
	quoted = big_text("big stored ", '"', (BIG_FRAME - 64) / 2);
	r = chatc_one_chat(a, idb, quoted, BIG_MS);
	ck_assert_msg(r != NULL, "offline chat: %s", chatc_error(a));
	ck_assert_msg(jnum(r, "msgid") == MSG_ACK && chatc_errno(r) == 0 &&
	    strcmp(jstr(r, "status"), "stored") == 0, "offline chat of %zu "
	    "bytes (%zu escaped): %s", strlen(quoted), 2 * strlen(quoted),
	    dump(r));
	cJSON_Delete(r);
	r = chatc_login(b, idb, pw, BIG_MS);
	ck_assert_msg(r != NULL, "LOGIN with the stored chat: %s",
	    chatc_error(b));
	ck_assert_msg(jnum(r, "msgid") == MSG_LOGIN_ACK && chatc_errno(r) ==
	    0, "LOGIN with the stored chat: %.200s", dump(r));
	off = cJSON_GetObjectItemCaseSensitive(r, "offlinemsg");
	ck_assert_msg(cJSON_GetArraySize(off) == 1, "LOGIN_ACK has %d offline "
	    "messages, want 1", cJSON_GetArraySize(off));
	o = cJSON_GetArrayItem(off, 0);
	ck_assert(cJSON_IsString(o));
	big_frame_is(cJSON_Parse(o->valuestring), ida, idb, quoted,
	    "stored chat");
	cJSON_Delete(r);

	/* Nothing is left behind: a second login gets no offline message. */
	expect(chatc_logout(b, REQ_MS), MSG_ACK, 0, -1, "LOGINOUT");
	r = chatc_login(b, idb, pw, REQ_MS);
	ck_assert_msg(r != NULL && chatc_errno(r) == 0, "second LOGIN: %s",
	    chatc_error(b));
	ck_assert_msg(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r,
	    "offlinemsg")) == 0, "the stored chat came again: %.200s",
	    dump(r));
	cJSON_Delete(r);
	free(live);
	free(quoted);
	harness_close(a);
	harness_close(b);
}
END_TEST

/* --- a full job queue --------------------------------------------------- */

/* In a child: FRIEND_LISTs from h (each needs a job), JOBQ_BURST of
 * them always in flight, one sent for each reply, until killed: the
 * queue is full nearly all the time. */
static void
jobq_hammer(long long idh, const char *pw)
{
	struct chatc *h = online(idh, pw);
	char *buf = NULL;
	size_t len = 0;
	int i;
	cJSON *m;

	for (i = 0; i < JOBQ_BURST; i++)
		append_line(&buf, &len, chatc_build(MSG_FRIEND_LIST), i);
	if (chatc_send_raw(h, buf, len) != 0)
		_exit(1);
	free(buf);
	for (;;) {
		if ((m = chatc_recv(h, REQ_MS)) == NULL)
			_exit(1);
		cJSON_Delete(m);
		buf = NULL;
		len = 0;
		append_line(&buf, &len, chatc_build(MSG_FRIEND_LIST), 0);
		if (chatc_send_raw(h, buf, len) != 0)
			_exit(1);
		free(buf);
	}
}

/*
 * Offline messages pulled while the job queue is full.  After each batch
 * is sent the worker deletes its rows with a job; one refused by the full
 * queue left the rows in place, and the next pull sent them again (and a
 * LOGINOUT waiting for that pull was never answered).  And a LOGINOUT's
 * PRESENCE notice to the user's friends is a job too: refused, the
 * friends were never told.  Such jobs now wait for the queue.  Every
 * stored message must arrive exactly once, and the friend must be told.
 * On the old code the notice was missing in 1 of 3 runs; the pulls came
 * whole in every run (the delete is submitted from the fetch's done(),
 * after the fetch gave its place in the queue back), so that part
 * guards the pull path under a full queue rather than shows the fix.
 */
START_TEST(test_pull_with_job_queue_full)
{
	char pw[96], nr[64], ns[64], nh[64], nf[64], text[64];
	struct chatc *r, *s, *fr;
	long long idr, ids, idh, idf, deadline, left;
	int seen[JOBQ_N], i, n, got = 0, twice = 0, refused = 0, st;
	const cJSON *off, *o;
	cJSON *m, *f;
	pid_t hammer;

	begin();
	secret(pw, sizeof(pw), "jq");
	idr = register_user("jqr", pw, nr, sizeof(nr));
	ids = register_user("jqs", pw, ns, sizeof(ns));
	idh = register_user("jqh", pw, nh, sizeof(nh));
	s = online(ids, pw);
	/* f, online and a friend of r (before the queue fills). */
	idf = register_user("jqf", pw, nf, sizeof(nf));
	fr = online(idf, pw);
	expect(chatc_add_friend(fr, idr, REQ_MS), MSG_ACK, 0, -1,
	    "ADD_FRIEND");
	for (i = 0; i < JOBQ_N; i++) {
		(void)snprintf(text, sizeof(text), "jobq %d", i);
		m = chatc_one_chat(s, idr, text, REQ_MS);
		ck_assert_msg(m != NULL && jnum(m, "msgid") == MSG_ACK &&
		    strcmp(jstr(m, "status"), "stored") == 0, "store %d: %s",
		    i, dump(m));
		cJSON_Delete(m);
	}
	memset(seen, 0, sizeof(seen));

	hammer = fork();
	ck_assert(hammer != -1);
	if (hammer == 0)
		jobq_hammer(idh, pw);
	harness_sleep_ms(200);

	/* Log in (a full queue may refuse it), then read every pull. */
	deadline = harness_now_ms() + JOBQ_MS;
	r = xconnect();
	m = login_until(r, idr, pw, REQ_MS, deadline, &refused,
	    "LOGIN with the queue full");
	off = cJSON_GetObjectItemCaseSensitive(m, "offlinemsg");
	cJSON_ArrayForEach(o, off) {
		f = cJSON_Parse(o->valuestring);
		if (f != NULL && sscanf(jstr(f, "msg"), "jobq %d", &n) == 1 &&
		    n >= 0 && n < JOBQ_N)
			seen[n]++;
		cJSON_Delete(f);
	}
	cJSON_Delete(m);
	for (;;) {
		for (i = got = 0; i < JOBQ_N; i++)
			got += seen[i] > 0;
		left = deadline - harness_now_ms();
		/* All in: read on a little for copies sent twice. */
		if (got == JOBQ_N)
			left = left < 1000 ? left : 1000;
		if (left <= 0 || (m = chatc_recv(r, (int)left)) == NULL)
			break;
		if (jnum(m, "msgid") == MSG_ONE_CHAT &&
		    sscanf(jstr(m, "msg"), "jobq %d", &n) == 1 && n >= 0 &&
		    n < JOBQ_N)
			seen[n]++;
		cJSON_Delete(m);
	}
	/* The queue still full: r's LOGINOUT is answered, and its notice
	 * to a friend (a job) is not lost. */
	expect(chatc_logout(r, REQ_MS), MSG_ACK, 0, -1, "LOGINOUT");
	/* (After the "online" one of r's login.) */
	while ((m = chatc_wait_msgid(fr, MSG_PRESENCE, PRESENCE_MS)) != NULL &&
	    strcmp(jstr(m, "state"), "online") == 0)
		cJSON_Delete(m);
	(void)kill(hammer, SIGKILL);
	(void)waitpid(hammer, &st, 0);
	ck_assert_msg(m != NULL, "no PRESENCE to a friend of a user who "
	    "logged out while the job queue was full: %s", chatc_error(fr));
	ck_assert_msg(jnum(m, "id") == idr && strcmp(jstr(m, "state"),
	    "offline") == 0, "PRESENCE %s", dump(m));
	cJSON_Delete(m);
	for (i = twice = 0; i < JOBQ_N; i++)
		twice += seen[i] > 1;
	fprintf(stderr, "it_abuse: job queue full: login refused %d time(s); "
	    "%d of %d stored messages received, %d more than once\n", refused,
	    got, JOBQ_N, twice);
	ck_assert_msg(got == JOBQ_N && twice == 0, "of %d stored messages "
	    "pulled while the job queue was full, %d arrived, %d more than "
	    "once", JOBQ_N, got, twice);
	harness_close(r);
	harness_close(s);
	harness_close(fr);
}
END_TEST

/* --- deadlocks ----------------------------------------------------------- */

/*
 * A transaction of the test's own on the harness's MariaDB, as root over
 * the socket, to hold locks that chatd's transactions need, in an order
 * that makes InnoDB choose chatd's as the deadlock victim: the lighter
 * transaction is the victim, so this one first inserts DL_HEAVY users
 * (rolled back at the end, like everything it did).
 */
static MYSQL *
dl_open(void)
{
	char sql[64 + DL_HEAVY * 48];
	MYSQL *t;
	size_t n;
	int i;

	ck_assert((t = mysql_init(NULL)) != NULL);
	ck_assert_msg(mysql_real_connect(t, NULL, "root", NULL, H.db_name, 0,
	    H.mariadb_socket, 0) != NULL, "connect as root: %s",
	    mysql_error(t));
	ck_assert_msg(mysql_query(t, "START TRANSACTION") == 0, "%s",
	    mysql_error(t));
	n = (size_t)snprintf(sql, sizeof(sql),
	    "INSERT INTO users (name, password) VALUES ");
	for (i = 0; i < DL_HEAVY; i++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n,
		    "%s('dlheavy_%ld_%d_%d', 'x')", i > 0 ? ", " : "",
		    (long)getpid(), name_seq, i);
	ck_assert(n < sizeof(sql));
	name_seq++;
	ck_assert_msg(mysql_query(t, sql) == 0, "%s", mysql_error(t));
	return t;
}

/* A locking statement of that transaction; it must not be the victim. */
static void
dl_lock(MYSQL *t, const char *sql)
{
	MYSQL_RES *res;

	ck_assert_msg(mysql_query(t, sql) == 0, "%s: %s (errno %u: the "
	    "test's transaction, not chatd's, was chosen)", sql,
	    mysql_error(t), mysql_errno(t));
	if ((res = mysql_store_result(t)) != NULL)
		mysql_free_result(res);
}

/* Wait until a transaction (chatd's) waits for a lock. */
static void
dl_wait_blocked(MYSQL *t, const char *what)
{
	long long deadline = harness_now_ms() + DL_WAIT_MS;
	MYSQL_RES *res;
	MYSQL_ROW row;
	long n;

	for (;;) {
		ck_assert_msg(mysql_query(t, "SELECT COUNT(*) FROM "
		    "information_schema.INNODB_TRX WHERE trx_state = "
		    "'LOCK WAIT'") == 0, "%s", mysql_error(t));
		ck_assert((res = mysql_store_result(t)) != NULL);
		row = mysql_fetch_row(res);
		n = row != NULL && row[0] != NULL ? atol(row[0]) : 0;
		mysql_free_result(res);
		if (n > 0)
			return;
		ck_assert_msg(harness_now_ms() < deadline, "%s: chatd never "
		    "waited for the test's lock", what);
		/* InnoDB refreshes the table only when it was not read for
		 * 100 ms. */
		harness_sleep_ms(150);
	}
}

static void
dl_close(MYSQL *t)
{
	ck_assert_msg(mysql_query(t, "ROLLBACK") == 0, "%s", mysql_error(t));
	mysql_close(t);
}

/* "database: Deadlock found ..." lines in the instance's log. */
static int
dl_logged(void)
{
	return harness_log_count(&H, INST, "Deadlock found");
}

/*
 * CREATE_GROUP's transaction chosen as a deadlock victim.  It inserts the
 * group, then the creator's membership, whose foreign key needs a shared
 * lock on the creator's users row: the test holds that row, and once
 * chatd waits for it, asks for the new group's row.  InnoDB rolls chatd's
 * transaction back; it must be run again (it then waits for the test's
 * locks, so the test checks that it waits again before rolling back) and
 * the group created, where it was answered errno 13.
 */
START_TEST(test_deadlock_group_create)
{
	char pw[96], na[64], gname[64], sql[128], out[64];
	struct chatc *a;
	long long ida, gid;
	int before;
	cJSON *req, *m;
	MYSQL *t;

	begin();
	secret(pw, sizeof(pw), "dlg");
	ida = register_user("dlg", pw, na, sizeof(na));
	a = online(ida, pw);
	before = dl_logged();
	uniq(gname, sizeof(gname), "dlgroup");

	t = dl_open();
	(void)snprintf(sql, sizeof(sql), "SELECT id FROM users WHERE id = %lld "
	    "FOR UPDATE", ida);
	dl_lock(t, sql);
	/* With a seq: only such requests are ACKed. */
	req = chatc_build_create_group(gname, "deadlocked");
	ck_assert(req != NULL);
	cJSON_AddNumberToObject(req, "seq", 1);
	ck_assert(chatc_send(a, req) == 0);
	cJSON_Delete(req);
	dl_wait_blocked(t, "CREATE_GROUP");
	/* Waits for chatd's new row: chatd's transaction is the victim. */
	dl_lock(t, "SELECT id FROM chatgroups FOR UPDATE");
	/* Run again, it waits for this transaction's locks. */
	dl_wait_blocked(t, "CREATE_GROUP run again");
	m = chatc_recv(a, DL_HOLD_MS);
	ck_assert_msg(m == NULL, "CREATE_GROUP answered while its "
	    "transaction waits: %s", dump(m));
	dl_close(t);

	m = chatc_recv(a, REQ_MS);
	ck_assert_msg(m != NULL, "CREATE_GROUP: no reply: %s",
	    chatc_error(a));
	ck_assert_msg(jnum(m, "msgid") == MSG_ACK && chatc_errno(m) == 0 &&
	    jnum(m, "refmsgid") == MSG_CREATE_GROUP && jnum(m, "groupid") > 0,
	    "CREATE_GROUP after a deadlock: %s", dump(m));
	gid = jnum(m, "groupid");
	cJSON_Delete(m);
	ck_assert_msg(dl_logged() > before, "chatd logged no deadlock: the "
	    "test did not make one");
	(void)snprintf(sql, sizeof(sql), "SELECT grouprole FROM groupmembers "
	    "WHERE groupid = %lld AND userid = %lld", gid, ida);
	ck_assert(harness_sql_value(&H, sql, out, sizeof(out)) == 0);
	ck_assert_msg(strcmp(out, "creator") == 0, "group %lld: creator's "
	    "row '%s'", gid, out);
	harness_close(a);
}
END_TEST

/* Offline messages of uid left in the database. */
static long
offline_rows(long long uid)
{
	char sql[96], out[32];

	(void)snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM "
	    "offlinemessages WHERE userid = %lld", uid);
	ck_assert(harness_sql_value(&H, sql, out, sizeof(out)) == 0);
	return atol(out);
}

/* Count a "dl one" or "dl two" chat in seen[0] or seen[1]. */
static void
dl_count(const cJSON *m, int *seen)
{
	if (m == NULL || jnum(m, "msgid") != MSG_ONE_CHAT)
		return;
	if (strcmp(jstr(m, "msg"), "dl one") == 0)
		seen[0]++;
	else if (strcmp(jstr(m, "msg"), "dl two") == 0)
		seen[1]++;
}

/*
 * The deletion of pulled offline messages chosen as a deadlock victim:
 * its transaction deletes the rows one by one, and the test holds the
 * second row, then asks for the first once chatd waits.  The rows must
 * be deleted in the end and each message arrive once: the old code left
 * the rows, and its next pull sent them again.
 */
START_TEST(test_deadlock_offline_delete)
{
	char pw[96], nr[64], ns[64], sql[160], first[32], *comma;
	struct chatc *r, *s;
	long long idr, ids, deadline, gone, left;
	int before, i, seen[2] = { 0, 0 };
	const cJSON *o;
	cJSON *req, *m, *f;
	MYSQL *t;

	begin();
	secret(pw, sizeof(pw), "dlo");
	idr = register_user("dlor", pw, nr, sizeof(nr));
	ids = register_user("dlos", pw, ns, sizeof(ns));
	s = online(ids, pw);
	for (i = 0; i < 2; i++) {
		m = chatc_one_chat(s, idr, i == 0 ? "dl one" : "dl two",
		    REQ_MS);
		ck_assert_msg(m != NULL && jnum(m, "msgid") == MSG_ACK &&
		    strcmp(jstr(m, "status"), "stored") == 0, "store %d: %s",
		    i, dump(m));
		cJSON_Delete(m);
	}
	(void)snprintf(sql, sizeof(sql), "SELECT GROUP_CONCAT(id ORDER BY id) "
	    "FROM offlinemessages WHERE userid = %lld", idr);
	ck_assert(harness_sql_value(&H, sql, first, sizeof(first)) == 0);
	ck_assert_msg((comma = strchr(first, ',')) != NULL, "ids '%s'",
	    first);
	*comma = '\0';
	before = dl_logged();

	t = dl_open();
	(void)snprintf(sql, sizeof(sql), "SELECT id FROM offlinemessages "
	    "WHERE id = %s FOR UPDATE", comma + 1);
	dl_lock(t, sql);
	r = xconnect();
	req = chatc_build_login(idr, pw);
	ck_assert(req != NULL && chatc_send(r, req) == 0);
	cJSON_Delete(req);
	dl_wait_blocked(t, "the offline delete");
	(void)snprintf(sql, sizeof(sql), "SELECT id FROM offlinemessages "
	    "WHERE id = %s FOR UPDATE", first);
	dl_lock(t, sql);
	dl_wait_blocked(t, "the offline delete run again");
	harness_sleep_ms(DL_HOLD_MS);
	dl_close(t);

	m = chatc_wait_msgid(r, MSG_LOGIN_ACK, REQ_MS);
	ck_assert_msg(m != NULL && chatc_errno(m) == 0, "LOGIN: %s (%s)",
	    dump(m), chatc_error(r));
	cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(m,
	    "offlinemsg")) {
		f = cJSON_Parse(o->valuestring);
		dl_count(f, seen);
		cJSON_Delete(f);
	}
	cJSON_Delete(m);
	/* Until the rows are gone, and a while after for copies sent
	 * again. */
	deadline = harness_now_ms() + REQ_MS;
	gone = -1;
	while ((left = (gone < 0 ? deadline : gone + 500) -
	    harness_now_ms()) > 0) {
		if ((m = chatc_recv(r, (int)(left < 100 ? left : 100))) !=
		    NULL) {
			dl_count(m, seen);
			cJSON_Delete(m);
		}
		if (gone < 0 && offline_rows(idr) == 0)
			gone = harness_now_ms();
	}
	ck_assert_msg(dl_logged() > before, "chatd logged no deadlock: the "
	    "test did not make one");
	ck_assert_msg(gone >= 0, "%ld delivered offline message(s) left "
	    "after a deadlock: sent again at the next login",
	    offline_rows(idr));
	ck_assert_msg(seen[0] == 1 && seen[1] == 1, "after a deadlock of "
	    "their deletion the two offline messages arrived %d and %d "
	    "time(s)", seen[0], seen[1]);
	harness_close(r);
	harness_close(s);
}
END_TEST

/*
 * The deletion of pulled offline messages refused by the database (a
 * trigger that fails every DELETE on offlinemessages, as a database
 * that went down between the fetch and the delete): chatd keeps it and
 * tries again every db_retry_interval, so once deletes work again the
 * rows go, without the user logging in, and the next login does not get
 * the messages again.  (It used to log "they will be delivered again"
 * and leave the rows.)
 */
#define OFFDEL_TRIGGER	"offdel_refused"

START_TEST(test_offline_delete_retried)
{
	char pw[96], nr[64], ns[64], sql[256], text[32];
	struct chatc *r, *s;
	long long idr, ids, deadline;
	const cJSON *off;
	cJSON *m;
	int i, n;

	begin();
	secret(pw, sizeof(pw), "odr");
	idr = register_user("odrr", pw, nr, sizeof(nr));
	ids = register_user("odrs", pw, ns, sizeof(ns));
	s = online(ids, pw);
	for (i = 0; i < OFFDEL_N; i++) {
		(void)snprintf(text, sizeof(text), "offdel %d", i);
		m = chatc_one_chat(s, idr, text, REQ_MS);
		ck_assert_msg(m != NULL && jnum(m, "msgid") == MSG_ACK &&
		    strcmp(jstr(m, "status"), "stored") == 0, "store %d: %s",
		    i, dump(m));
		cJSON_Delete(m);
	}
	(void)snprintf(sql, sizeof(sql), "CREATE TRIGGER " OFFDEL_TRIGGER
	    " BEFORE DELETE ON offlinemessages FOR EACH ROW SIGNAL SQLSTATE "
	    "'45000' SET MESSAGE_TEXT = 'it_abuse: deletes refused'");
	ck_assert(harness_sql(&H, sql) == 0);

	/* The pull: delivered, its deletion refused. */
	r = xconnect();
	m = chatc_login(r, idr, pw, REQ_MS);
	ck_assert_msg(m != NULL && chatc_errno(m) == 0, "LOGIN: %s (%s)",
	    dump(m), chatc_error(r));
	off = cJSON_GetObjectItemCaseSensitive(m, "offlinemsg");
	ck_assert_int_eq(cJSON_GetArraySize(off), OFFDEL_N);
	cJSON_Delete(m);
	deadline = harness_now_ms() + REQ_MS;
	while (!harness_log_contains(&H, INST, "could not delete 3 "
	    "delivered offline message(s)")) {
		ck_assert_msg(harness_now_ms() < deadline, "chatd logged no "
		    "failed deletion: the trigger did not refuse it");
		harness_sleep_ms(POLL_MS);
	}
	m = chatc_logout(r, REQ_MS);
	ck_assert_msg(m != NULL && chatc_errno(m) == 0, "LOGINOUT: %s",
	    dump(m));
	cJSON_Delete(m);
	ck_assert_int_eq(offline_rows(idr), OFFDEL_N);

	/* Deletes work again: the rows go by themselves. */
	ck_assert(harness_sql(&H, "DROP TRIGGER " OFFDEL_TRIGGER) == 0);
	deadline = harness_now_ms() + OFFDEL_MS;
	while ((n = (int)offline_rows(idr)) > 0) {
		ck_assert_msg(harness_now_ms() < deadline, "%d delivered "
		    "offline message(s) still stored %d ms after deletes work "
		    "again: the next login gets them again", n, OFFDEL_MS);
		harness_sleep_ms(POLL_MS);
	}
	m = chatc_login(r, idr, pw, REQ_MS);
	ck_assert_msg(m != NULL && chatc_errno(m) == 0, "LOGIN: %s (%s)",
	    dump(m), chatc_error(r));
	off = cJSON_GetObjectItemCaseSensitive(m, "offlinemsg");
	ck_assert_msg(off == NULL || cJSON_GetArraySize(off) == 0, "the "
	    "second login got the offline messages again: %s", dump(m));
	cJSON_Delete(m);
	ck_assert(harness_log_contains(&H, INST, "deleted 3 delivered "
	    "offline message(s) once the database was back"));
	harness_close(r);
	harness_close(s);
}
END_TEST

/* --- privileges -------------------------------------------------------- */

/* The real, effective, saved and file-system uid (or gid, key "Gid:")
 * of pid must all be want. */
static void
ids_are(pid_t pid, const char *key, long want, const char *who)
{
	char path[64], line[256];
	long v[4];
	FILE *fp;
	int found = 0, i;

	(void)snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	ck_assert_msg((fp = fopen(path, "r")) != NULL, "%s: %s", path,
	    strerror(errno));
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (strncmp(line, key, strlen(key)) != 0)
			continue;
		found = sscanf(line + strlen(key), "%ld %ld %ld %ld", &v[0],
		    &v[1], &v[2], &v[3]) == 4;
		break;
	}
	(void)fclose(fp);
	ck_assert_msg(found, "%s: no %s line", path, key);
	for (i = 0; i < 4; i++)
		ck_assert_msg(v[i] == want, "%s (pid %d): %s %ld %ld %ld %ld, "
		    "want %ld", who, (int)pid, key, v[0], v[1], v[2], v[3],
		    want);
}

static void
shm_owned(const char *name, uid_t uid)
{
	char path[128];
	struct stat st;

	(void)snprintf(path, sizeof(path), "/dev/shm%s", name);
	ck_assert_msg(stat(path, &st) == 0, "%s: %s", path, strerror(errno));
	ck_assert_msg((st.st_mode & 07777) == 0600 && st.st_uid == uid,
	    "%s: mode %04o owner %ld, want 0600 and %ld", path,
	    (unsigned)(st.st_mode & 07777), (long)st.st_uid, (long)uid);
}

START_TEST(test_privileges)
{
	char name[PROTO_NAME_MAX + 1], pw[96], lock[80], sock[PATH_MAX];
	pid_t workers[8], again[8], master = H.chatd[INST].pid;
	long long deadline, id;
	struct passwd *pwd;
	struct group *gr;
	struct chatc *c;
	struct stat st;
	uid_t uid;
	gid_t gid;
	int n, m, i, j, fresh;

	begin();
	if (geteuid() != 0) {
		fprintf(stderr, "it_abuse: not root: privilege drop not "
		    "tested\n");
		return;
	}
	ck_assert((pwd = getpwnam("nobody")) != NULL);
	ck_assert((gr = getgrnam(getgrnam("nogroup") ? "nogroup" :
	    "nobody")) != NULL);
	uid = pwd->pw_uid;
	gid = gr->gr_gid;
	n = harness_chatd_workers(&H, INST, workers, 8);
	ck_assert_int_eq(n, 2);
	ids_are(master, "Uid:", (long)uid, "master");
	ids_are(master, "Gid:", (long)gid, "master");
	for (i = 0; i < n; i++) {
		ids_are(workers[i], "Uid:", (long)uid, "worker");
		ids_are(workers[i], "Gid:", (long)gid, "worker");
	}
	shm_owned(H.chatd[INST].shm_name, uid);
	(void)snprintf(lock, sizeof(lock), "%s.lock", H.chatd[INST].shm_name);
	shm_owned(lock, uid);
	harness_control_path(&H, INST, sock, sizeof(sock));
	ck_assert_msg(stat(sock, &st) == 0, "%s: %s", sock, strerror(errno));
	ck_assert_msg(S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0660 &&
	    st.st_uid == uid, "%s: mode %04o owner %ld", sock,
	    (unsigned)(st.st_mode & 07777), (long)st.st_uid);
	ck_assert(harness_log_contains(&H, INST, "running as nobody"));

	/* It still serves: the database is reached over TCP. */
	secret(pw, sizeof(pw), "nobody");
	id = register_user("nobody", pw, name, sizeof(name));
	c = online(id, pw);
	harness_close(c);

	/* A respawned worker is not root either. */
	ck_assert_int_eq(kill(workers[0], SIGKILL), 0);
	deadline = harness_now_ms() + 10000;
	for (fresh = -1; fresh < 0 && harness_now_ms() < deadline;) {
		harness_sleep_ms(POLL_MS);
		m = harness_chatd_workers(&H, INST, again, 8);
		for (i = 0; i < m && fresh < 0; i++) {
			for (j = 0; j < n && again[i] != workers[j]; j++)
				;
			if (j == n)
				fresh = i;
		}
	}
	ck_assert_msg(fresh >= 0, "the killed worker was not respawned");
	ids_are(again[fresh], "Uid:", (long)uid, "respawned worker");
	fprintf(stderr, "it_abuse: privileges: master, %d workers and a "
	    "respawned one run as uid %ld gid %ld; %s and its lock 0600, the "
	    "control socket 0660, owned by that uid\n", n, (long)uid,
	    (long)gid, H.chatd[INST].shm_name);
}
END_TEST

/* --- secrets never in logs -------------------------------------------- */

START_TEST(test_secrets_not_logged)
{
	char name[PROTO_NAME_MAX + 1], pw[96], pw2[96], wrong[96];
	char big[PROTO_PASSWORD_MAX + 64], raw[256], *log;
	struct chatc *c, *c2, *c3;
	long long id;
	FILE *fp;
	long len;
	cJSON *r;

	begin();
	secret(pw, sizeof(pw), "right");
	secret(pw2, sizeof(pw2), "taken");
	secret(wrong, sizeof(wrong), "wrong");
	id = register_user("sec", pw, name, sizeof(name));
	c = xconnect();
	expect(chatc_register(c, name, pw2, REQ_MS), MSG_REG_ACK,
	    CERR_NAME_TAKEN, -1, "REG of a taken name");
	ck_assert_int_eq(login_errno(c, id, wrong, NULL, 0), CERR_AUTH);
	ck_assert_int_eq(login_errno(c, 999999999, wrong, NULL, 0), CERR_AUTH);
	ck_assert_int_eq(login_errno(c, id, pw, NULL, 0), 0);
	c2 = xconnect();
	ck_assert_int_eq(login_errno(c2, id, pw, NULL, 0), CERR_ONLINE);
	/* A password longer than allowed, and one in a broken frame. */
	(void)snprintf(big, sizeof(big), "%s-%0*d", stem,
	    PROTO_PASSWORD_MAX, 7);
	r = chatc_register(c2, "sec_long_password", big, REQ_MS);
	ck_assert_msg(r != NULL && chatc_errno(r) == CERR_BAD_REQUEST,
	    "REG with a too long password: %s", dump(r));
	cJSON_Delete(r);
	c3 = xconnect();
	(void)snprintf(raw, sizeof(raw), "{\"msgid\":1,\"id\":%lld,"
	    "\"password\":\"%s\",}\n", id, wrong);
	ck_assert_int_eq(chatc_send_raw(c3, raw, strlen(raw)), 0);
	r = chatc_recv(c3, REQ_MS);
	ck_assert_msg(r != NULL && chatc_errno(r) == CERR_BAD_JSON, "broken "
	    "frame: %s", dump(r));
	cJSON_Delete(r);
	expect(chatc_logout(c, REQ_MS), MSG_ACK, 0, -1, "LOGINOUT");
	harness_close_tracked();
	harness_sleep_ms(200);

	/* Every instance of this run logged to this file. */
	ck_assert_msg((fp = fopen(H.chatd[INST].log_path, "r")) != NULL,
	    "%s: %s", H.chatd[INST].log_path, strerror(errno));
	ck_assert(fseek(fp, 0, SEEK_END) == 0 && (len = ftell(fp)) > 0);
	rewind(fp);
	ck_assert((log = malloc((size_t)len + 1)) != NULL);
	ck_assert(fread(log, 1, (size_t)len, fp) == (size_t)len);
	log[len] = '\0';
	(void)fclose(fp);
	fprintf(stderr, "it_abuse: secrets: searching %ld bytes of chatd log "
	    "for \"%s\" and the database password\n", len, stem);
	ck_assert_msg(strstr(log, "logged in") != NULL && strstr(log,
	    "registered user") != NULL, "the log does not look like a full "
	    "run at log_level debug");
	ck_assert_msg(strstr(log, stem) == NULL, "a password is in the log: "
	    "%.160s", strstr(log, stem));
	ck_assert_msg(strstr(log, H.db_password) == NULL, "db_password is in "
	    "the log");
	ck_assert_msg(strstr(log, "$argon2") == NULL, "a password hash is in "
	    "the log");
	free(log);
}
END_TEST

/* --- runner ------------------------------------------------------------ */

static void
tcase(Suite *s, const char *name, void (*setup)(void), const TTest *t1,
    const TTest *t2)
{
	const TTest *const tests[] = { t1, t2 };

	(void)harness_add_tcase(s, "IT_ABUSE_ONLY", name, setup,
	    teardown_inst, harness_close_tracked, TEST_TIMEOUT_S, tests,
	    t2 != NULL ? 2 : 1);
}

static Suite *
abuse_suite(void)
{
	Suite *s = suite_create("it_abuse");

	tcase(s, "rate limit", setup_rate, test_rate_limit, NULL);
	tcase(s, "failed logins per user", setup_login_user,
	    test_login_fail_user, NULL);
	tcase(s, "failed logins per address", setup_login_addr,
	    test_login_fail_addr, NULL);
	tcase(s, "connections per address", setup_conns,
	    test_max_conns_per_addr, NULL);
	tcase(s, "timeouts", setup_timeouts, test_auth_timeout,
	    test_idle_timeout);
	tcase(s, "silent connections", setup_silent, test_silent_connections,
	    NULL);
	tcase(s, "database down", setup_db, test_database_down, NULL);
	tcase(s, "database down, slow consumer", setup_db_slow,
	    test_slow_consumer_db_down, NULL);
	/* A TCase of its own: each test stops the runner's mariadbd, which
	 * the next fixture starts again. */
	tcase(s, "database down, worker killed", setup_db_slow,
	    test_slow_consumer_db_down_worker_killed, NULL);
	tcase(s, "database down, chatd restarted", setup_db_restart,
	    test_slow_consumer_db_down_restart, NULL);
	tcase(s, "largest frame", setup_big, test_largest_frame, NULL);
	tcase(s, "job queue full", setup_jobq, test_pull_with_job_queue_full,
	    NULL);
	tcase(s, "deadlocks", setup_deadlock, test_deadlock_group_create,
	    test_deadlock_offline_delete);
	tcase(s, "offline delete retried", setup_offdel,
	    test_offline_delete_retried, NULL);
	tcase(s, "privileges", setup_priv, test_privileges, NULL);
	/* Last: it searches the log of every instance before it. */
	tcase(s, "secrets", setup_secrets, test_secrets_not_logged, NULL);
	return s;
}

int
main(void)
{
	unsigned char rnd[8];
	size_t i;

	/* Before any fork: every test's passwords start with it. */
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		perror("getrandom");
		return EXIT_FAILURE;
	}
	(void)snprintf(stem, sizeof(stem), "S3cret-");
	for (i = 0; i < sizeof(rnd); i++)
		(void)snprintf(stem + strlen(stem), sizeof(stem) - strlen(stem),
		    "%02x", rnd[i]);
	return harness_run_suite(abuse_suite(), &H, servers_state != 0);
}
