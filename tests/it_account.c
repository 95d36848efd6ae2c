/*
 * it_account.c - black-box tests of accounts, sessions, framing and the
 * process model: a real mariadbd, redis-server and chatd (4 workers),
 * started by tests/harness.c on free loopback ports, spoken to in raw
 * JSON over TCP through client/chatc.
 *
 * The servers are started once, by an unchecked fixture that runs in the
 * runner process, and are shared by every test case; the fixture also
 * records the first worker pids, which the forked tests inherit.  Tests
 * share one database, so every user name carries the test process's pid
 * and a counter.
 *
 * The order of the test cases matters: the abuse (bad requests, bad
 * framing) comes before the check that no worker died, the signal tests
 * that replace workers come after it, SIGTERM runs on an instance of its
 * own, and the database outage runs last because it stops the shared
 * mariadbd.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <netinet/in.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chatc.h"
#include "harness.h"

#define NWORKERS	4
#define WORKERS_CONF	"[server]\nworkers = 4\n"
#define PW		"s3cret pass"

#define T_REPLY		10000	/* ms a reply may take (hashing, MySQL) */
#define T_EOF		5000	/* ms until a closed connection shows EOF */
#define T_QUIET		300	/* ms of silence that means "no reply" */
#define T_LOGOUT	2000	/* ms for a disconnect to end the session */
#define T_RESPAWN	15000	/* ms for the master to replace a worker */
#define T_DB_DOWN	15000	/* ms for a request to fail with errno 13 */
#define T_DB_BACK	20000	/* ms for chatd to use a restarted mariadbd */
#define TCASE_TIMEOUT	60	/* s, per test */

/* Send a string literal without its terminating NUL. */
#define SEND_LIT(c, lit)	chatc_send_raw((c), (lit), sizeof(lit) - 1)

/* Shared with the forked tests by inheritance; set only by the fixture. */
static struct harness H;
static pid_t first_workers[NWORKERS];
static int servers_state;	/* 0 not started, 1 up, -1 failed */
static int tcases_left;		/* the last teardown stops the servers */

/* --- fixture --------------------------------------------------------- */

static int
pid_cmp(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return x < y ? -1 : x > y;
}

static void
servers_setup(void)
{
	int n;

	if (servers_state == 1)
		return;
	ck_assert_msg(servers_state == 0,
	    "the servers failed to start for an earlier test case");
	servers_state = -1;
	ck_assert_msg(harness_init(&H) == 0, "harness_init failed");
	ck_assert_msg(harness_start_mariadb(&H) == 0, "mariadbd did not start");
	ck_assert_msg(harness_start_redis(&H) == 0, "redis did not start");
	ck_assert_msg(harness_start_chatd(&H, 0, WORKERS_CONF) == 0,
	    "chatd-0 did not start");
	n = harness_chatd_workers(&H, 0, first_workers, NWORKERS);
	ck_assert_msg(n == NWORKERS, "chatd-0 has %d workers, want %d", n,
	    NWORKERS);
	qsort(first_workers, NWORKERS, sizeof(pid_t), pid_cmp);
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

/* --- helpers ---------------------------------------------------------- */

/* A user name no other test (process) uses. */
static void
uname_make(char *buf, size_t len, const char *tag)
{
	static unsigned counter;

	(void)snprintf(buf, len, "%s-%ld-%u", tag, (long)getpid(), ++counter);
}

/* m as compact text for failure messages (static buffer). */
static const char *
dump(const cJSON *m)
{
	static char buf[1024];
	char *s;

	if (m == NULL)
		return "(none)";
	if ((s = cJSON_PrintUnformatted(m)) == NULL)
		return "(unprintable)";
	(void)snprintf(buf, sizeof(buf), "%s", s);
	free(s);
	return buf;
}

/* A number field, or LLONG_MIN when absent or not a number. */
static long long
num(const cJSON *m, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);

	return cJSON_IsNumber(v) ? (long long)v->valuedouble : LLONG_MIN;
}

static const char *
str(const cJSON *m, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int
msgid_of(const cJSON *m)
{
	return (int)num(m, "msgid");
}

static struct chatc *
xconnect(int inst)
{
	char err[256];
	struct chatc *c;

	c = chatc_connect("127.0.0.1", H.chatd[inst].port, T_REPLY, err,
	    sizeof(err));
	ck_assert_msg(c != NULL, "connect to chatd-%d: %s", inst, err);
	return c;
}

/* A reply from a typed helper; a test cannot go on without one. */
static cJSON *
must(struct chatc *c, cJSON *reply, const char *what)
{
	ck_assert_msg(reply != NULL, "%s: no reply: %s", what, chatc_error(c));
	return reply;
}

/* The next message, which must come within T_REPLY. */
static cJSON *
recv_msg(struct chatc *c, const char *what)
{
	cJSON *m = chatc_recv(c, T_REPLY);

	ck_assert_msg(m != NULL, "%s: no message: %s", what, chatc_error(c));
	return m;
}

/* Send len bytes of text exactly as given, return the next message. */
static cJSON *
send_recv(struct chatc *c, const char *text, size_t len)
{
	ck_assert_msg(chatc_send_raw(c, text, len) == 0, "send %.60s: %s",
	    text, chatc_error(c));
	return recv_msg(c, text);
}

/* Same for a NUL-terminated text. */
static cJSON *
send_recv_str(struct chatc *c, const char *text)
{
	return send_recv(c, text, strlen(text));
}

/* For check_error() and check_ack_error(): a field not checked, and a
 * field that must be absent. */
#define ANY	(-1)
#define ABSENT	(-2)

/* m has key with the number want, or no key at all when want is ABSENT. */
static void
check_field(const cJSON *m, const char *key, long long want)
{
	if (want == ABSENT)
		ck_assert_msg(cJSON_GetObjectItemCaseSensitive(m, key) == NULL,
		    "want no %s in %s", key, dump(m));
	else if (want != ANY)
		ck_assert_msg(num(m, key) == want, "want %s %lld in %s", key,
		    want, dump(m));
}

/*
 * m must be an ERROR (11) with errno err and a non-empty errmsg, and
 * with refmsgid and seq as check_field() says.  m is freed.
 */
static void
check_error(cJSON *m, int err, int refmsgid, long long seq)
{
	const char *errmsg = str(m, "errmsg");

	ck_assert_msg(msgid_of(m) == MSG_ERROR && chatc_errno(m) == err,
	    "want ERROR errno %d, got %s", err, dump(m));
	ck_assert_msg(errmsg != NULL && *errmsg != '\0', "no errmsg in %s",
	    dump(m));
	check_field(m, "refmsgid", refmsgid);
	check_field(m, "seq", seq);
	cJSON_Delete(m);
}

/*
 * m must be the LOGIN_ACK or REG_ACK (ackid) that reports a failed LOGIN
 * or REG: errno err, a non-empty errmsg, no id, seq as check_field()
 * says.  chat-protocol(7) answers even a malformed LOGIN or REG this
 * way, so a classic client waiting for the ACK always gets one.  m is
 * freed.
 */
static void
check_ack_error(cJSON *m, int ackid, int err, long long seq)
{
	const char *errmsg = str(m, "errmsg");

	ck_assert_msg(msgid_of(m) == ackid && chatc_errno(m) == err,
	    "want msgid %d errno %d, got %s", ackid, err, dump(m));
	ck_assert_msg(errmsg != NULL && *errmsg != '\0', "no errmsg in %s",
	    dump(m));
	check_field(m, "id", ABSENT);
	check_field(m, "seq", seq);
	cJSON_Delete(m);
}

/* m must be ACK (12) for refmsgid with errno 0 and seq; m is freed. */
static void
check_ack(cJSON *m, int refmsgid, long long seq)
{
	ck_assert_msg(msgid_of(m) == MSG_ACK && chatc_errno(m) == 0 &&
	    num(m, "refmsgid") == refmsgid,
	    "want ACK errno 0 refmsgid %d, got %s", refmsgid, dump(m));
	if (seq >= 0)
		ck_assert_msg(num(m, "seq") == seq, "want seq %lld in %s", seq,
		    dump(m));
	cJSON_Delete(m);
}

/* m must carry the string seq want; m is not freed. */
static void
check_str_seq(const cJSON *m, const char *want)
{
	const char *seq = str(m, "seq");

	ck_assert_msg(seq != NULL && strcmp(seq, want) == 0,
	    "want seq \"%s\" in %s", want, dump(m));
}

/* PING with seq must be answered: the connection is open and served. */
static void
ping_ok(struct chatc *c)
{
	int64_t seq = chatc_next_seq(c);

	check_ack(must(c, chatc_ping(c, T_REPLY), "PING"), MSG_PING, seq);
}

/* Nothing more arrives within T_QUIET, and the connection is open. */
static void
expect_quiet(struct chatc *c)
{
	cJSON *m = chatc_recv(c, T_QUIET);

	ck_assert_msg(m == NULL, "unexpected message %s", dump(m));
	ck_assert_str_eq(chatc_error(c), "timeout");
}

/* The server closes c with no further message: EOF (or a reset) within
 * T_EOF, not a timeout. */
static void
expect_closed(struct chatc *c, const char *what)
{
	cJSON *m = chatc_recv(c, T_EOF);

	ck_assert_msg(m == NULL, "%s: message %s where the server should "
	    "have closed the connection", what, dump(m));
	ck_assert_msg(strcmp(chatc_error(c), "timeout") != 0,
	    "%s: connection still open after %d ms", what, T_EOF);
}

static long long
register_ok(struct chatc *c, const char *name)
{
	cJSON *r = must(c, chatc_register(c, name, PW, T_REPLY), "REG");
	long long id;

	ck_assert_msg(msgid_of(r) == MSG_REG_ACK && chatc_errno(r) == 0,
	    "REG %s: %s", name, dump(r));
	id = num(r, "id");
	ck_assert_msg(id > 0, "REG %s: no id in %s", name, dump(r));
	cJSON_Delete(r);
	return id;
}

static void
login_ok(struct chatc *c, long long id)
{
	cJSON *r = must(c, chatc_login(c, id, PW, T_REPLY), "LOGIN");

	ck_assert_msg(msgid_of(r) == MSG_LOGIN_ACK && chatc_errno(r) == 0 &&
	    num(r, "id") == id, "LOGIN %lld: %s", id, dump(r));
	cJSON_Delete(r);
}

/* The errno of a LOGIN_ACK for id; any other reply fails the test. */
static int
login_errno(struct chatc *c, long long id, const char *password)
{
	cJSON *r = must(c, chatc_login(c, id, password, T_REPLY), "LOGIN");
	int err;

	ck_assert_msg(msgid_of(r) == MSG_LOGIN_ACK, "LOGIN %lld: want "
	    "LOGIN_ACK, got %s", id, dump(r));
	err = chatc_errno(r);
	if (err != 0) {
		const char *errmsg = str(r, "errmsg");

		ck_assert_msg(errmsg != NULL && *errmsg != '\0',
		    "no errmsg in %s", dump(r));
	}
	cJSON_Delete(r);
	return err;
}

/* A new connection to instance inst with a new user logged in on it. */
static struct chatc *
user_online(int inst, const char *tag, long long *idp)
{
	struct chatc *c = xconnect(inst);
	char name[PROTO_NAME_MAX + 1];

	uname_make(name, sizeof(name), tag);
	*idp = register_ok(c, name);
	login_ok(c, *idp);
	return c;
}

/* Log in as id on a connection, retrying errno 2 ("already online")
 * until the previous session has ended or ms pass.  The last errno. */
static int
login_retry(struct chatc *c, long long id, long ms)
{
	long long deadline = harness_now_ms() + ms;
	int err;

	while ((err = login_errno(c, id, PW)) == CERR_ONLINE &&
	    harness_now_ms() < deadline)
		harness_sleep_ms(50);
	return err;
}

static int
pid_in(pid_t pid, const pid_t *set, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (set[i] == pid)
			return 1;
	return 0;
}

/* Current worker pids of instance 0, sorted; their number. */
static int
workers_now(pid_t *pids)
{
	int n = harness_chatd_workers(&H, 0, pids, NWORKERS);

	if (n > 0)
		qsort(pids, (size_t)n, sizeof(pid_t), pid_cmp);
	return n;
}

/*
 * Inode of chatd's end of c's TCP connection, from /proc/net/tcp (both
 * ends are on 127.0.0.1), or 0 when it is not there.
 */
static unsigned long
server_inode(struct chatc *c, int port)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	unsigned lport, rport;
	unsigned long inode, found = 0;
	char line[512];
	FILE *fp;

	if (getsockname(chatc_fd(c), (struct sockaddr *)&sin, &slen) == -1 ||
	    (fp = fopen("/proc/net/tcp", "r")) == NULL)
		return 0;
	while (found == 0 && fgets(line, sizeof(line), fp) != NULL)
		if (sscanf(line, " %*u: %*x:%x %*x:%x %*x %*s %*s %*s %*u %*u "
		    "%lu", &lport, &rport, &inode) == 3 &&
		    (int)lport == port && rport == ntohs(sin.sin_port))
			found = inode;
	(void)fclose(fp);
	return found;
}

/* Index in pids[0..n) of the worker holding c's connection, or -1. */
static int
worker_of(struct chatc *c, const pid_t *pids, int n)
{
	char path[PATH_MAX], link[64], want[64];
	unsigned long inode;
	struct dirent *de;
	ssize_t len;
	DIR *d;
	int i, hit = -1;

	if ((inode = server_inode(c, H.chatd[0].port)) == 0)
		return -1;
	(void)snprintf(want, sizeof(want), "socket:[%lu]", inode);
	for (i = 0; i < n && hit == -1; i++) {
		(void)snprintf(path, sizeof(path), "/proc/%ld/fd",
		    (long)pids[i]);
		if ((d = opendir(path)) == NULL)
			continue;
		while (hit == -1 && (de = readdir(d)) != NULL) {
			(void)snprintf(path, sizeof(path), "/proc/%ld/fd/%s",
			    (long)pids[i], de->d_name);
			len = readlink(path, link, sizeof(link) - 1);
			if (len <= 0)
				continue;
			link[len] = '\0';
			if (strcmp(link, want) == 0)
				hit = i;
		}
		(void)closedir(d);
	}
	return hit;
}

/* Number of live processes in process group pgid. */
static int
group_size(pid_t pgid)
{
	char path[PATH_MAX], buf[512], *p;
	struct dirent *de;
	long pgrp;
	char st;
	DIR *d;
	int fd, n = 0;
	ssize_t len;

	if ((d = opendir("/proc")) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		(void)snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		if ((fd = open(path, O_RDONLY)) == -1)
			continue;
		len = read(fd, buf, sizeof(buf) - 1);
		(void)close(fd);
		if (len <= 0)
			continue;
		buf[len] = '\0';
		/* "pid (comm) state ppid pgrp ...": comm may hold spaces. */
		if ((p = strrchr(buf, ')')) == NULL ||
		    sscanf(p + 1, " %c %*d %ld", &st, &pgrp) != 2)
			continue;
		if (pgrp == (long)pgid && st != 'Z')
			n++;
	}
	(void)closedir(d);
	return n;
}

/* --- REG -------------------------------------------------------------- */

START_TEST(test_reg_ok)
{
	struct chatc *c = xconnect(0);
	char name[PROTO_NAME_MAX + 1], buf[256];
	long long id1, id2;
	int64_t seq;
	cJSON *r;

	uname_make(name, sizeof(name), "reg");
	seq = chatc_next_seq(c);
	r = must(c, chatc_register(c, name, PW, T_REPLY), "REG");
	ck_assert_msg(msgid_of(r) == MSG_REG_ACK && chatc_errno(r) == 0,
	    "REG: %s", dump(r));
	id1 = num(r, "id");
	ck_assert_msg(id1 > 0, "REG: id in %s", dump(r));
	ck_assert_msg(num(r, "seq") == seq, "REG: seq %lld not echoed: %s",
	    (long long)seq, dump(r));
	cJSON_Delete(r);

	/* seq may be any scalar: a string comes back as the same string. */
	uname_make(name, sizeof(name), "reg");
	(void)snprintf(buf, sizeof(buf), "{\"msgid\":4,\"name\":\"%s\","
	    "\"password\":\"%s\",\"seq\":\"s-1\"}\n", name, PW);
	r = send_recv_str(c, buf);
	ck_assert_msg(msgid_of(r) == MSG_REG_ACK && chatc_errno(r) == 0,
	    "REG: %s", dump(r));
	check_str_seq(r, "s-1");
	id2 = num(r, "id");
	ck_assert_msg(id2 > 0 && id2 != id1, "REG: id %lld after %lld", id2,
	    id1);
	cJSON_Delete(r);
	chatc_close(c);
}
END_TEST

START_TEST(test_reg_duplicate)
{
	struct chatc *c1 = xconnect(0), *c2 = xconnect(0);
	char name[PROTO_NAME_MAX + 1];
	cJSON *r;

	uname_make(name, sizeof(name), "dup");
	(void)register_ok(c1, name);
	/* From another connection and from the same one. */
	r = must(c2, chatc_register(c2, name, "other", T_REPLY), "REG");
	ck_assert_msg(msgid_of(r) == MSG_REG_ACK &&
	    chatc_errno(r) == CERR_NAME_TAKEN && num(r, "id") == LLONG_MIN,
	    "duplicate REG: want REG_ACK errno 3 without id, got %s",
	    dump(r));
	ck_assert_msg(*chatc_errmsg(r) != '\0', "no errmsg in %s", dump(r));
	cJSON_Delete(r);
	r = must(c1, chatc_register(c1, name, PW, T_REPLY), "REG");
	ck_assert_msg(msgid_of(r) == MSG_REG_ACK &&
	    chatc_errno(r) == CERR_NAME_TAKEN, "duplicate REG: %s", dump(r));
	cJSON_Delete(r);
	chatc_close(c1);
	chatc_close(c2);
}
END_TEST

/* REG with name must be refused: REG_ACK errno 5. */
static void
reg_refused(struct chatc *c, const char *name)
{
	int64_t seq = chatc_next_seq(c);

	check_ack_error(must(c, chatc_register(c, name, PW, T_REPLY), "REG"),
	    MSG_REG_ACK, CERR_BAD_REQUEST, seq);
}

START_TEST(test_reg_empty_name)
{
	struct chatc *c = xconnect(0);

	reg_refused(c, "");
	ping_ok(c);
	chatc_close(c);
}
END_TEST

START_TEST(test_reg_name_length)
{
	struct chatc *c = xconnect(0);
	char name[PROTO_NAME_MAX + 2];
	size_t n;

	/* Exactly 64 bytes is allowed; 65 is not. */
	uname_make(name, sizeof(name), "len");
	n = strlen(name);
	memset(name + n, 'x', PROTO_NAME_MAX - n);
	name[PROTO_NAME_MAX] = '\0';
	(void)register_ok(c, name);
	uname_make(name, sizeof(name), "len");
	n = strlen(name);
	memset(name + n, 'y', PROTO_NAME_MAX + 1 - n);
	name[PROTO_NAME_MAX + 1] = '\0';
	ck_assert_uint_eq(strlen(name), 65);
	reg_refused(c, name);
	ping_ok(c);
	chatc_close(c);
}
END_TEST

START_TEST(test_reg_control_char)
{
	static const char *const bad[] = { "\x01", "\t", "\n", "\x1b", "\x7f",
	    "\xc2\x85" /* U+0085 NEL, a C1 control */ };
	struct chatc *c = xconnect(0);
	char name[PROTO_NAME_MAX + 1], base[48];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uname_make(base, sizeof(base), "ctl");
		(void)snprintf(name, sizeof(name), "%s%sz", base, bad[i]);
		reg_refused(c, name);
	}
	ping_ok(c);
	chatc_close(c);
}
END_TEST

/*
 * "\u0000" inside a JSON string is a control character like the others
 * (chat-protocol(7): names must not contain U+0000 to U+001F, lengths
 * count after unescaping); a server that stops the C string there
 * registers the part before it instead.
 */
START_TEST(test_reg_name_with_escaped_nul_refused)
{
	struct chatc *c = xconnect(0);
	char name[PROTO_NAME_MAX + 1], buf[256];

	uname_make(name, sizeof(name), "nul");
	(void)snprintf(buf, sizeof(buf), "{\"msgid\":4,\"name\":\"%s\\u0000"
	    "evil\",\"password\":\"%s\",\"seq\":41}\n", name, PW);
	check_ack_error(send_recv_str(c, buf), MSG_REG_ACK, CERR_BAD_REQUEST,
	    41);
	ping_ok(c);
	chatc_close(c);
}
END_TEST

/*
 * A password may hold U+0000, but then all of it counts: either REG
 * refuses it (errno 5) or LOGIN with only the part before the NUL fails.
 */
START_TEST(test_reg_password_with_escaped_nul_not_truncated)
{
	struct chatc *c = xconnect(0);
	char name[PROTO_NAME_MAX + 1], buf[256];
	long long id;
	cJSON *m;

	uname_make(name, sizeof(name), "nulpw");
	(void)snprintf(buf, sizeof(buf), "{\"msgid\":4,\"name\":\"%s\","
	    "\"password\":\"pw\\u0000rest\",\"seq\":42}\n", name);
	m = send_recv_str(c, buf);
	ck_assert_msg(msgid_of(m) == MSG_REG_ACK && num(m, "seq") == 42 &&
	    (chatc_errno(m) == 0 || chatc_errno(m) == CERR_BAD_REQUEST),
	    "REG: %s", dump(m));
	if (chatc_errno(m) == 0) {
		id = num(m, "id");
		ck_assert_int_eq(login_errno(c, id, "pw"), CERR_AUTH);
	}
	cJSON_Delete(m);
	chatc_close(c);
}
END_TEST

START_TEST(test_reg_invalid_utf8)
{
	static const char *const bad[] = {
		"\xff\xfe",		/* never valid */
		"\xc0\xaf",		/* overlong '/' */
		"\xed\xa0\x80",		/* a UTF-16 surrogate */
		"\xe6\x97",		/* truncated sequence */
		"\x80",			/* lone continuation byte */
	};
	struct chatc *c = xconnect(0);
	char name[PROTO_NAME_MAX + 1], buf[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uname_make(name, sizeof(name), "utf");
		(void)snprintf(buf, sizeof(buf), "{\"msgid\":4,\"name\":\"%s%s"
		    "\",\"password\":\"%s\",\"seq\":%zu}\n", name, bad[i], PW,
		    100 + i);
		check_ack_error(send_recv_str(c, buf), MSG_REG_ACK,
		    CERR_BAD_REQUEST, (long long)(100 + i));
	}
	/* And in the password, which is text too. */
	uname_make(name, sizeof(name), "utf");
	(void)snprintf(buf, sizeof(buf), "{\"msgid\":4,\"name\":\"%s\","
	    "\"password\":\"pw\xff\",\"seq\":120}\n", name);
	check_ack_error(send_recv_str(c, buf), MSG_REG_ACK, CERR_BAD_REQUEST,
	    120);
	ping_ok(c);
	chatc_close(c);
}
END_TEST

START_TEST(test_reg_bad_password)
{
	struct chatc *c = xconnect(0);
	char name[PROTO_NAME_MAX + 1], buf[512];
	long long id;
	cJSON *m;

	uname_make(name, sizeof(name), "nopw");
	(void)snprintf(buf, sizeof(buf), "{\"msgid\":4,\"name\":\"%s\","
	    "\"seq\":7}\n", name);
	check_ack_error(send_recv_str(c, buf), MSG_REG_ACK, CERR_BAD_REQUEST,
	    7);
	(void)snprintf(buf, sizeof(buf), "{\"msgid\":4,\"name\":\"%s\","
	    "\"password\":1234,\"seq\":8}\n", name);
	check_ack_error(send_recv_str(c, buf), MSG_REG_ACK, CERR_BAD_REQUEST,
	    8);
	(void)snprintf(buf, sizeof(buf), "{\"msgid\":4,\"name\":\"%s\","
	    "\"password\":\"\",\"seq\":9}\n", name);
	check_ack_error(send_recv_str(c, buf), MSG_REG_ACK, CERR_BAD_REQUEST,
	    9);
	/* 128 bytes of password are allowed, 129 are not. */
	(void)snprintf(buf, sizeof(buf), "{\"msgid\":4,\"name\":\"%s\","
	    "\"password\":\"%0129d\",\"seq\":10}\n", name, 0);
	check_ack_error(send_recv_str(c, buf), MSG_REG_ACK, CERR_BAD_REQUEST,
	    10);
	(void)snprintf(buf, sizeof(buf), "{\"msgid\":4,\"name\":\"%s\","
	    "\"password\":\"%0128d\",\"seq\":11}\n", name, 0);
	m = send_recv_str(c, buf);
	ck_assert_msg(msgid_of(m) == MSG_REG_ACK && chatc_errno(m) == 0 &&
	    num(m, "seq") == 11, "REG with a 128-byte password: %s", dump(m));
	id = num(m, "id");
	cJSON_Delete(m);
	(void)snprintf(buf, sizeof(buf), "%0128d", 0);
	m = must(c, chatc_login(c, id, buf, T_REPLY), "LOGIN");
	ck_assert_msg(msgid_of(m) == MSG_LOGIN_ACK && chatc_errno(m) == 0,
	    "LOGIN with a 128-byte password: %s", dump(m));
	cJSON_Delete(m);
	chatc_close(c);
}
END_TEST

/* --- LOGIN ------------------------------------------------------------ */

static void
check_empty_array(const cJSON *r, const char *key)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(r, key);

	ck_assert_msg(cJSON_IsArray(a) && cJSON_GetArraySize(a) == 0,
	    "LOGIN_ACK: want an empty array \"%s\" in %s", key, dump(r));
}

START_TEST(test_login_ok)
{
	struct chatc *c = xconnect(0);
	char name[PROTO_NAME_MAX + 1], base[48];
	long long id;
	int64_t seq;
	cJSON *r;

	/* A name beyond ASCII comes back unchanged. */
	uname_make(base, sizeof(base), "login");
	(void)snprintf(name, sizeof(name), "%s-Zo\xc3\xab-\xe6\x97\xa5", base);
	id = register_ok(c, name);
	seq = chatc_next_seq(c);
	r = must(c, chatc_login(c, id, PW, T_REPLY), "LOGIN");
	ck_assert_msg(msgid_of(r) == MSG_LOGIN_ACK && chatc_errno(r) == 0,
	    "LOGIN: %s", dump(r));
	ck_assert_msg(num(r, "id") == id, "LOGIN: want id %lld in %s", id,
	    dump(r));
	ck_assert_msg(str(r, "name") != NULL && strcmp(str(r, "name"),
	    name) == 0, "LOGIN: want name %s in %s", name, dump(r));
	ck_assert_msg(num(r, "seq") == seq, "LOGIN: seq not echoed: %s",
	    dump(r));
	check_empty_array(r, "friends");
	check_empty_array(r, "groups");
	check_empty_array(r, "offlinemsg");
	cJSON_Delete(r);
	/* Logged in now: a request that needs it is answered. */
	seq = chatc_next_seq(c);
	r = must(c, chatc_friend_list(c, T_REPLY), "FRIEND_LIST");
	ck_assert_msg(cJSON_IsArray(cJSON_GetObjectItem(r, "friends")),
	    "FRIEND_LIST: %s", dump(r));
	check_ack(r, MSG_FRIEND_LIST, seq);
	chatc_close(c);
}
END_TEST

START_TEST(test_login_refused)
{
	struct chatc *c = xconnect(0);
	char name[PROTO_NAME_MAX + 1], buf[256];
	long long id;

	uname_make(name, sizeof(name), "badpw");
	id = register_ok(c, name);
	ck_assert_int_eq(login_errno(c, id, "wrong"), CERR_AUTH);
	ck_assert_int_eq(login_errno(c, id, PW "x"), CERR_AUTH);
	ck_assert_int_eq(login_errno(c, 2000000000LL, PW), CERR_AUTH);
	ck_assert_int_eq(login_errno(c, 0, PW), CERR_AUTH);
	ck_assert_int_eq(login_errno(c, -5, PW), CERR_AUTH);
	ck_assert_int_eq(login_errno(c, -(long long)id, PW), CERR_AUTH);
	/* Outside 1..4294967294 is an id that does not exist. */
	ck_assert_int_eq(login_errno(c, 4294967295LL, PW), CERR_AUTH);
	ck_assert_int_eq(login_errno(c, 4294967296LL + id, PW), CERR_AUTH);
	/* A malformed LOGIN is answered in a LOGIN_ACK too. */
	(void)snprintf(buf, sizeof(buf), "{\"msgid\":1,\"id\":%lld,"
	    "\"seq\":61}\n", id);
	check_ack_error(send_recv_str(c, buf), MSG_LOGIN_ACK,
	    CERR_BAD_REQUEST, 61);
	(void)snprintf(buf, sizeof(buf), "{\"msgid\":1,\"id\":%lld.5,"
	    "\"password\":\"%s\",\"seq\":62}\n", id, PW);
	check_ack_error(send_recv_str(c, buf), MSG_LOGIN_ACK,
	    CERR_BAD_REQUEST, 62);
	(void)snprintf(buf, sizeof(buf), "{\"msgid\":1,\"id\":%lld,"
	    "\"password\":\"\",\"seq\":63}\n", id);
	check_ack_error(send_recv_str(c, buf), MSG_LOGIN_ACK,
	    CERR_BAD_REQUEST, 63);
	/* Still anonymous after the failures... */
	check_error(must(c, chatc_friend_list(c, T_REPLY), "FRIEND_LIST"),
	    CERR_NOT_LOGGED_IN, MSG_FRIEND_LIST, ANY);
	/* ...and the connection can still log in properly. */
	login_ok(c, id);
	chatc_close(c);
}
END_TEST

START_TEST(test_login_duplicate)
{
	struct chatc *c1, *c2 = xconnect(0);
	long long id;
	int64_t seq;

	c1 = user_online(0, "twice", &id);
	ck_assert_int_eq(login_errno(c2, id, PW), CERR_ONLINE);
	/* The first session is untouched. */
	seq = chatc_next_seq(c1);
	check_ack(must(c1, chatc_friend_list(c1, T_REPLY), "FRIEND_LIST"),
	    MSG_FRIEND_LIST, seq);
	/* The refused connection is still anonymous. */
	check_error(must(c2, chatc_friend_list(c2, T_REPLY), "FRIEND_LIST"),
	    CERR_NOT_LOGGED_IN, MSG_FRIEND_LIST, ANY);
	chatc_close(c1);
	chatc_close(c2);
}
END_TEST

START_TEST(test_login_same_conn)
{
	struct chatc *c;
	char name[PROTO_NAME_MAX + 1], buf[256];
	long long id, id2;
	int64_t seq;
	cJSON *m;

	c = user_online(0, "again", &id);
	seq = chatc_next_seq(c);
	check_ack_error(must(c, chatc_login(c, id, PW, T_REPLY), "LOGIN"),
	    MSG_LOGIN_ACK, CERR_ALREADY_LOGGED_IN, seq);
	/* Not even as someone else. */
	uname_make(name, sizeof(name), "again");
	id2 = register_ok(c, name);
	check_ack_error(must(c, chatc_login(c, id2, PW, T_REPLY), "LOGIN"),
	    MSG_LOGIN_ACK, CERR_ALREADY_LOGGED_IN, ANY);
	/* Still logged in as the first user. */
	check_ack(must(c, chatc_friend_list(c, T_REPLY), "FRIEND_LIST"),
	    MSG_FRIEND_LIST, -1);
	chatc_close(c);

	/* Two LOGINs in one write: the second waits for the first. */
	c = xconnect(0);
	(void)snprintf(buf, sizeof(buf), "{\"msgid\":1,\"id\":%lld,"
	    "\"password\":\"%s\",\"seq\":1}{\"msgid\":1,\"id\":%lld,"
	    "\"password\":\"%s\",\"seq\":2}", id2, PW, id2, PW);
	m = send_recv_str(c, buf);
	ck_assert_msg(msgid_of(m) == MSG_LOGIN_ACK && chatc_errno(m) == 0 &&
	    num(m, "seq") == 1, "pipelined LOGIN: %s", dump(m));
	cJSON_Delete(m);
	check_ack_error(recv_msg(c, "second LOGIN"), MSG_LOGIN_ACK,
	    CERR_ALREADY_LOGGED_IN, 2);
	chatc_close(c);
}
END_TEST

START_TEST(test_loginout)
{
	struct chatc *c1, *c2 = xconnect(0);
	long long id;
	int64_t seq;
	cJSON *r;

	c1 = user_online(0, "out", &id);
	seq = chatc_next_seq(c1);
	r = must(c1, chatc_logout(c1, T_REPLY), "LOGINOUT");
	check_ack(r, MSG_LOGINOUT, seq);
	/* The session has ended: c1 is anonymous... */
	check_error(must(c1, chatc_friend_list(c1, T_REPLY), "FRIEND_LIST"),
	    CERR_NOT_LOGGED_IN, MSG_FRIEND_LIST, ANY);
	/* ...and the user may log in elsewhere at once. */
	ck_assert_int_eq(login_errno(c2, id, PW), 0);
	/* Which makes the user online for c1's new attempt... */
	ck_assert_int_eq(login_errno(c1, id, PW), CERR_ONLINE);
	/* ...until c2 logs out too (without seq: no ACK); then c1, still
	 * open, logs in again. */
	ck_assert_int_eq(SEND_LIT(c2, "{\"msgid\":3}\n"), 0);
	expect_quiet(c2);
	ck_assert_int_eq(login_errno(c1, id, PW), 0);
	chatc_close(c1);
	chatc_close(c2);
}
END_TEST

START_TEST(test_disconnect_is_logout)
{
	struct chatc *c1, *c2 = xconnect(0);
	long long id;
	int err;

	c1 = user_online(0, "drop", &id);
	chatc_close(c1);
	err = login_retry(c2, id, T_LOGOUT);
	ck_assert_msg(err == 0, "LOGIN after the first session's socket "
	    "closed: errno %d after %d ms", err, T_LOGOUT);
	chatc_close(c2);
}
END_TEST

/* --- before login ------------------------------------------------------ */

START_TEST(test_anon_refused)
{
	static const struct {
		int msgid;
		const char *json;
	} reqs[] = {
		{ MSG_LOGINOUT, "{\"msgid\":3}" },
		{ MSG_ONE_CHAT, "{\"msgid\":6,\"toid\":1,\"msg\":\"hi\"}" },
		{ MSG_ADD_FRIEND, "{\"msgid\":7,\"friendid\":1}" },
		{ MSG_CREATE_GROUP, "{\"msgid\":8,\"groupname\":\"g\","
		    "\"groupdesc\":\"d\"}" },
		{ MSG_ADD_GROUP, "{\"msgid\":9,\"groupid\":1}" },
		{ MSG_GROUP_CHAT, "{\"msgid\":10,\"groupid\":1,"
		    "\"msg\":\"hi\"}" },
		{ MSG_DEL_FRIEND, "{\"msgid\":13,\"friendid\":1}" },
		{ MSG_QUIT_GROUP, "{\"msgid\":14,\"groupid\":1}" },
		{ MSG_FRIEND_LIST, "{\"msgid\":15}" },
		{ MSG_GROUP_LIST, "{\"msgid\":16}" },
		{ MSG_GROUP_MEMBERS, "{\"msgid\":17,\"groupid\":1}" },
	};
	struct chatc *c = xconnect(0);
	cJSON *req, *r;
	int64_t seq;
	size_t i;

	for (i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		ck_assert_ptr_nonnull(req = cJSON_Parse(reqs[i].json));
		seq = chatc_next_seq(c);
		r = must(c, chatc_request(c, req, T_REPLY), reqs[i].json);
		cJSON_Delete(req);
		check_error(r, CERR_NOT_LOGGED_IN, reqs[i].msgid, seq);
	}
	/* Errors are sent even without seq, as for classic clients. */
	check_error(send_recv_str(c,
	    "{\"msgid\":6,\"toid\":1,\"msg\":\"hi\"}\n"), CERR_NOT_LOGGED_IN,
	    MSG_ONE_CHAT, ABSENT);
	/* A request refused before login is refused for that, whatever
	 * else is wrong with it (chat-protocol(7): errno 4). */
	check_error(send_recv_str(c, "{\"msgid\":6,\"toid\":\"x\"}\n"),
	    CERR_NOT_LOGGED_IN, MSG_ONE_CHAT, ABSENT);
	check_error(send_recv_str(c, "{\"msgid\":17}\n"),
	    CERR_NOT_LOGGED_IN, MSG_GROUP_MEMBERS, ABSENT);
	/* LOGIN itself is allowed: its own errors stay. */
	check_ack_error(send_recv_str(c, "{\"msgid\":1,\"id\":\"x\"}\n"),
	    MSG_LOGIN_ACK, CERR_BAD_REQUEST, ABSENT);
	expect_quiet(c);
	chatc_close(c);
}
END_TEST

START_TEST(test_ping)
{
	struct chatc *c = xconnect(0);
	char name[PROTO_NAME_MAX + 1];
	long long id;

	ping_ok(c);
	uname_make(name, sizeof(name), "ping");
	id = register_ok(c, name);
	ping_ok(c);
	login_ok(c, id);
	ping_ok(c);
	chatc_close(c);
}
END_TEST

START_TEST(test_ping_without_seq)
{
	struct chatc *c = xconnect(0);
	char name[PROTO_NAME_MAX + 1];
	long long id;
	cJSON *m;
	int round;

	uname_make(name, sizeof(name), "pingq");
	id = register_ok(c, name);
	for (round = 0; round < 2; round++) {
		/* Before login, then after. */
		m = send_recv_str(c, "{\"msgid\":18}\n"
		    "{\"msgid\":18,\"seq\":\"second\"}\n");
		ck_assert_msg(msgid_of(m) == MSG_ACK && chatc_errno(m) == 0,
		    "want the ACK of the second PING first, got %s", dump(m));
		check_str_seq(m, "second");
		cJSON_Delete(m);
		expect_quiet(c);
		if (round == 0)
			login_ok(c, id);
	}
	chatc_close(c);
}
END_TEST

/* --- framing ----------------------------------------------------------- */

START_TEST(test_frame_classic_nul)
{
	struct chatc *c = xconnect(0);
	char name[PROTO_NAME_MAX + 1], buf[256];
	long long id;
	cJSON *m;
	int n;

	uname_make(name, sizeof(name), "classic");
	n = snprintf(buf, sizeof(buf), "{\"msgid\":4,\"name\":\"%s\","
	    "\"password\":\"%s\"}", name, PW);
	m = send_recv(c, buf, (size_t)n + 1);	/* with its NUL */
	ck_assert_msg(msgid_of(m) == MSG_REG_ACK && chatc_errno(m) == 0 &&
	    num(m, "id") > 0, "classic REG: %s", dump(m));
	id = num(m, "id");
	cJSON_Delete(m);
	n = snprintf(buf, sizeof(buf), "{\"msgid\":1,\"id\":%lld,"
	    "\"password\":\"%s\"}", id, PW);
	m = send_recv(c, buf, (size_t)n + 1);
	ck_assert_msg(msgid_of(m) == MSG_LOGIN_ACK && chatc_errno(m) == 0 &&
	    num(m, "id") == id && str(m, "name") != NULL &&
	    strcmp(str(m, "name"), name) == 0, "classic LOGIN: %s", dump(m));
	cJSON_Delete(m);
	/* Classic requests carry no seq: LOGINOUT (NUL included) gets no
	 * ACK. */
	ck_assert_int_eq(chatc_send_raw(c, "{\"msgid\":3}",
	    sizeof("{\"msgid\":3}")), 0);
	expect_quiet(c);
	chatc_close(c);
}
END_TEST

START_TEST(test_frame_back_to_back)
{
	struct chatc *c = xconnect(0);
	char name[PROTO_NAME_MAX + 1], buf[256];
	cJSON *m;

	ck_assert_int_eq(SEND_LIT(c, "{\"msgid\":18,\"seq\":1}"
	    "{\"msgid\":18,\"seq\":2}"), 0);
	check_ack(recv_msg(c, "first"), MSG_PING, 1);
	check_ack(recv_msg(c, "second"), MSG_PING, 2);
	/* A slow request (REG runs in a job) still answers first. */
	uname_make(name, sizeof(name), "b2b");
	(void)snprintf(buf, sizeof(buf), "{\"msgid\":4,\"name\":\"%s\","
	    "\"password\":\"%s\",\"seq\":3}{\"msgid\":18,\"seq\":4}", name,
	    PW);
	m = send_recv_str(c, buf);
	ck_assert_msg(msgid_of(m) == MSG_REG_ACK && chatc_errno(m) == 0 &&
	    num(m, "seq") == 3, "want REG_ACK seq 3 first, got %s", dump(m));
	cJSON_Delete(m);
	check_ack(recv_msg(c, "PING after REG"), MSG_PING, 4);
	expect_quiet(c);
	chatc_close(c);
}
END_TEST

START_TEST(test_frame_newlines)
{
	struct chatc *c = xconnect(0);

	ck_assert_int_eq(SEND_LIT(c, "{\"msgid\":18,\"seq\":1}\n"
	    "{\"msgid\":18,\"seq\":2}\n\r\n \t{\"msgid\":18,\"seq\":3}\r\n"), 0);
	check_ack(recv_msg(c, "1"), MSG_PING, 1);
	check_ack(recv_msg(c, "2"), MSG_PING, 2);
	check_ack(recv_msg(c, "3"), MSG_PING, 3);
	/* Pretty-printed, with newlines inside the object. */
	check_ack(send_recv_str(c, "{\n  \"msgid\": 18,\n  \"seq\": 4\n}\n"),
	    MSG_PING, 4);
	expect_quiet(c);
	chatc_close(c);
}
END_TEST

START_TEST(test_frame_split)
{
	/* Braces, quotes and a backslash inside strings must not confuse
	 * the splitter, whatever the chunking. */
	static const char tricky[] = "p}w{\"q\\ ]x[";
	struct chatc *c = xconnect(0);
	char name[PROTO_NAME_MAX + 1], *text;
	size_t len, off, step;
	long long id;
	cJSON *req, *m;

	uname_make(name, sizeof(name), "split");
	req = cJSON_CreateObject();
	cJSON_AddNumberToObject(req, "msgid", MSG_REG);
	cJSON_AddStringToObject(req, "name", name);
	cJSON_AddStringToObject(req, "password", tricky);
	cJSON_AddStringToObject(req, "seq", "split}{");
	ck_assert_ptr_nonnull(text = cJSON_PrintUnformatted(req));
	cJSON_Delete(req);
	len = strlen(text);
	/* Single bytes first, then growing pieces, 20 ms apart. */
	for (off = 0, step = 1; off < len; off += step, step += step < 8) {
		if (step > len - off)
			step = len - off;
		ck_assert_int_eq(chatc_send_raw(c, text + off, step), 0);
		harness_sleep_ms(20);
		if (off + step < len)
			ck_assert_ptr_null(chatc_poll(c));
	}
	free(text);
	m = recv_msg(c, "split REG");
	ck_assert_msg(msgid_of(m) == MSG_REG_ACK && chatc_errno(m) == 0,
	    "split REG: %s", dump(m));
	check_str_seq(m, "split}{");
	id = num(m, "id");
	cJSON_Delete(m);
	/* The password arrived intact. */
	m = must(c, chatc_login(c, id, tricky, T_REPLY), "LOGIN");
	ck_assert_msg(msgid_of(m) == MSG_LOGIN_ACK && chatc_errno(m) == 0,
	    "LOGIN with the split password: %s", dump(m));
	cJSON_Delete(m);
	chatc_close(c);
}
END_TEST

START_TEST(test_frame_invalid_json)
{
	struct chatc *c = xconnect(0);

	check_error(send_recv_str(c, "{\"msgid\":1,}"), CERR_BAD_JSON, ANY, ANY);
	ping_ok(c);
	check_error(send_recv_str(c, "{\"msgid\":18 \"seq\":1}\n"),
	    CERR_BAD_JSON, ANY, ANY);
	check_error(send_recv_str(c, "{\"msgid\":18,\"seq\":tru}\n"),
	    CERR_BAD_JSON, ANY, ANY);
	ping_ok(c);
	chatc_close(c);
}
END_TEST

START_TEST(test_frame_bad_msgid)
{
	struct chatc *c = xconnect(0);
	static const int server_only[] = { MSG_LOGIN_ACK, MSG_REG_ACK,
	    MSG_ERROR, MSG_ACK, MSG_PRESENCE };
	char buf[64];
	size_t i;

	check_error(send_recv_str(c, "{\"seq\":31,\"name\":\"x\"}\n"),
	    CERR_BAD_REQUEST, ABSENT, 31);
	check_error(send_recv_str(c, "{}\n"), CERR_BAD_REQUEST, ANY, ANY);
	check_error(send_recv_str(c, "{\"msgid\":\"18\",\"seq\":32}\n"),
	    CERR_BAD_REQUEST, ANY, 32);
	check_error(send_recv_str(c, "{\"msgid\":18.5,\"seq\":33}\n"),
	    CERR_BAD_REQUEST, ANY, 33);
	check_error(send_recv_str(c, "{\"msgid\":null,\"seq\":34}\n"),
	    CERR_BAD_REQUEST, ANY, 34);
	check_error(send_recv_str(c, "{\"msgid\":99,\"seq\":35}\n"),
	    CERR_UNKNOWN_MSGID, 99, 35);
	check_error(send_recv_str(c, "{\"msgid\":1e300,\"seq\":39}\n"),
	    CERR_BAD_REQUEST, ANY, 39);
	check_error(send_recv_str(c, "{\"msgid\":0,\"seq\":36}\n"),
	    CERR_UNKNOWN_MSGID, ANY, 36);
	check_error(send_recv_str(c, "{\"msgid\":-1,\"seq\":37}\n"),
	    CERR_UNKNOWN_MSGID, ANY, 37);
	check_error(send_recv_str(c, "{\"msgid\":1000001,\"seq\":38}\n"),
	    CERR_UNKNOWN_MSGID, ANY, 38);
	for (i = 0; i < sizeof(server_only) / sizeof(server_only[0]); i++) {
		(void)snprintf(buf, sizeof(buf), "{\"msgid\":%d,\"seq\":%zu}\n",
		    server_only[i], 40 + i);
		check_error(send_recv_str(c, buf), CERR_UNKNOWN_MSGID,
		    server_only[i], (long long)(40 + i));
	}
	/* A field of the wrong type, and a seq that is not a scalar. */
	check_ack_error(send_recv_str(c, "{\"msgid\":1,\"id\":\"7\","
	    "\"password\":\"x\",\"seq\":50}\n"), MSG_LOGIN_ACK,
	    CERR_BAD_REQUEST, 50);
	check_error(send_recv_str(c, "{\"msgid\":18,\"seq\":{\"a\":1}}\n"),
	    CERR_BAD_REQUEST, ANY, ANY);
	/* The connection stayed open through all of it. */
	ping_ok(c);
	chatc_close(c);
}
END_TEST

START_TEST(test_frame_too_large)
{
	struct chatc *c = xconnect(0);
	size_t len = 70000, n;
	char *buf;

	ck_assert_ptr_nonnull(buf = malloc(len + 1));
	n = (size_t)snprintf(buf, len, "{\"msgid\":18,\"seq\":1,\"pad\":\"");
	memset(buf + n, 'a', len - n - 3);
	memcpy(buf + len - 3, "\"}\n", 4);
	/* The server may close before it has read everything: a failed
	 * send proves nothing either way. */
	(void)chatc_send_raw(c, buf, len);
	free(buf);
	check_error(recv_msg(c, "frame too large"), CERR_TOO_LARGE, ABSENT,
	    ABSENT);
	expect_closed(c, "after frame too large");
	chatc_close(c);

	/* An unterminated object is caught before it ends, too. */
	c = xconnect(0);
	ck_assert_ptr_nonnull(buf = malloc(len));
	memset(buf, ' ', len);
	buf[0] = '{';
	(void)chatc_send_raw(c, buf, len);
	free(buf);
	check_error(recv_msg(c, "open frame too large"), CERR_TOO_LARGE,
	    ABSENT, ABSENT);
	expect_closed(c, "after open frame too large");
	chatc_close(c);
}
END_TEST

START_TEST(test_frame_stray_bytes)
{
	struct chatc *c = xconnect(0);

	check_error(send_recv_str(c, "hello"), CERR_FRAMING, ABSENT, ABSENT);
	expect_closed(c, "after stray bytes");
	chatc_close(c);

	/* After a good object: it is answered, then the error, then EOF. */
	c = xconnect(0);
	ck_assert_int_eq(SEND_LIT(c, "{\"msgid\":18,\"seq\":1}]x"),
	    0);
	check_ack(recv_msg(c, "PING before stray bytes"), MSG_PING, 1);
	check_error(recv_msg(c, "stray ]"), CERR_FRAMING, ABSENT, ABSENT);
	expect_closed(c, "after stray ]");
	chatc_close(c);
}
END_TEST

/*
 * A client that shuts down its sending side gets the replies it already
 * has, then EOF; a session ends with the connection.
 */
START_TEST(test_frame_half_close)
{
	struct chatc *c = xconnect(0), *c2;
	long long id;
	cJSON *m;
	int err;

	ck_assert_int_eq(SEND_LIT(c, "{\"msgid\":18,\"seq\":1}"
	    "{\"msgid\":18,\"seq\":2}\n"), 0);
	ck_assert_int_eq(shutdown(chatc_fd(c), SHUT_WR), 0);
	check_ack(recv_msg(c, "first PING"), MSG_PING, 1);
	check_ack(recv_msg(c, "second PING"), MSG_PING, 2);
	expect_closed(c, "after the client's FIN");
	chatc_close(c);

	c = user_online(0, "fin", &id);
	ck_assert_int_eq(SEND_LIT(c, "{\"msgid\":18,\"seq\":\"last\"}"), 0);
	ck_assert_int_eq(shutdown(chatc_fd(c), SHUT_WR), 0);
	m = recv_msg(c, "PING before FIN");
	ck_assert_msg(msgid_of(m) == MSG_ACK, "want ACK, got %s", dump(m));
	check_str_seq(m, "last");
	cJSON_Delete(m);
	expect_closed(c, "logged in, after the client's FIN");
	chatc_close(c);
	c2 = xconnect(0);
	err = login_retry(c2, id, T_LOGOUT);
	ck_assert_msg(err == 0, "LOGIN after the half-closed session: "
	    "errno %d", err);
	chatc_close(c2);
}
END_TEST

START_TEST(test_frame_nul_flood)
{
	struct chatc *c = xconnect(0);
	size_t len = 1024 * 1024, i;
	char *buf;

	ck_assert_ptr_nonnull(buf = calloc(1, len));
	ck_assert_int_eq(SEND_LIT(c, "{\"msgid\":18,\"seq\":1}"), 0);
	ck_assert_int_eq(chatc_send_raw(c, buf, len), 0);
	ck_assert_int_eq(SEND_LIT(c, "{\"msgid\":18,\"seq\":2}"), 0);
	check_ack(recv_msg(c, "PING before NULs"), MSG_PING, 1);
	check_ack(recv_msg(c, "PING after NULs"), MSG_PING, 2);
	/* The same with whitespace of every kind. */
	for (i = 0; i < len; i++)
		buf[i] = " \t\r\n"[i % 4];
	ck_assert_int_eq(chatc_send_raw(c, buf, len), 0);
	free(buf);
	check_ack(send_recv_str(c, "{\"msgid\":18,\"seq\":3}"), MSG_PING, 3);
	expect_quiet(c);
	chatc_close(c);
}
END_TEST

/* --- robustness -------------------------------------------------------- */

START_TEST(test_workers_survived)
{
	pid_t now[NWORKERS];
	struct chatc *c[64];
	int n, i, w, seen[NWORKERS] = { 0 }, nseen = 0, ncl = 0;
	char name[PROTO_NAME_MAX + 1];
	long long id;

	/* No worker died (and was respawned) during the abuse above. */
	n = workers_now(now);
	ck_assert_int_eq(n, NWORKERS);
	for (i = 0; i < NWORKERS; i++)
		ck_assert_msg(now[i] == first_workers[i], "worker pid %ld is "
		    "not one of the first workers: a worker was replaced",
		    (long)now[i]);
	ck_assert_msg(!harness_log_contains(&H, 0, "killed by signal") &&
	    !harness_log_contains(&H, 0, "exited with status"),
	    "the master logged a worker death");

	/* Every worker serves: new connections until each one has had a
	 * new user register and log in (64 tries miss one with p < 1e-7). */
	while (nseen < NWORKERS && ncl < 64) {
		c[ncl] = xconnect(0);
		ping_ok(c[ncl]);
		w = worker_of(c[ncl], now, n);
		ck_assert_msg(w >= 0, "connection %d is on no worker", ncl);
		if (!seen[w]) {
			uname_make(name, sizeof(name), "alive");
			id = register_ok(c[ncl], name);
			login_ok(c[ncl], id);
			seen[w] = 1;
			nseen++;
		}
		ncl++;
	}
	ck_assert_int_eq(nseen, NWORKERS);
	for (i = 0; i < ncl; i++)
		chatc_close(c[i]);
}
END_TEST

/* --- signals ----------------------------------------------------------- */

#define KILL_MAX_CLIENTS 24

START_TEST(test_sigkill_worker)
{
	struct chatc *c[KILL_MAX_CLIENTS], *c2;
	long long id[KILL_MAX_CLIENTS];
	int on[KILL_MAX_CLIENTS], n, i, nc = 0, victim, nvict, nsurv;
	pid_t pids[NWORKERS], after[NWORKERS], dead;
	long long deadline;
	int64_t seq;
	int err;

	n = workers_now(pids);
	ck_assert_int_eq(n, NWORKERS);
	/* At least 8 sessions, and some both on and off the first one's
	 * worker (the victim). */
	for (;;) {
		ck_assert_msg(nc < KILL_MAX_CLIENTS, "%d connections all "
		    "landed on one worker", nc);
		c[nc] = user_online(0, "kill", &id[nc]);
		on[nc] = worker_of(c[nc], pids, n);
		ck_assert_msg(on[nc] >= 0, "session %d is on no worker", nc);
		nc++;
		for (i = nsurv = 0; i < nc; i++)
			nsurv += on[i] != on[0];
		if (nc >= 8 && nsurv > 0)
			break;
	}
	victim = on[0];
	dead = pids[victim];
	ck_assert_int_eq(kill(dead, SIGKILL), 0);

	/* The victim's sessions end; the others go on, still logged in. */
	nvict = nsurv = 0;
	for (i = 0; i < nc; i++) {
		if (on[i] == victim) {
			expect_closed(c[i], "session on the killed worker");
			nvict++;
			continue;
		}
		ping_ok(c[i]);
		seq = chatc_next_seq(c[i]);
		check_ack(must(c[i], chatc_friend_list(c[i], T_REPLY),
		    "FRIEND_LIST"), MSG_FRIEND_LIST, seq);
		nsurv++;
	}
	ck_assert_int_gt(nvict, 0);
	ck_assert_int_gt(nsurv, 0);

	/* The master replaces the worker. */
	deadline = harness_now_ms() + T_RESPAWN;
	for (;;) {
		n = workers_now(after);
		if (n == NWORKERS && !pid_in(dead, after, n))
			break;
		ck_assert_msg(harness_now_ms() < deadline, "no new worker %d ms after "
		    "SIGKILL (%d workers)", T_RESPAWN, n);
		harness_sleep_ms(50);
	}
	n = 0;
	for (i = 0; i < NWORKERS; i++)
		n += !pid_in(after[i], pids, NWORKERS);
	ck_assert_msg(n == 1, "%d workers replaced after one SIGKILL", n);
	ck_assert(harness_log_contains(&H, 0, "killed by signal 9"));

	/* The dead worker's users were cleared from presence: they log in
	 * again (the master cleans up before it respawns). */
	c2 = xconnect(0);
	for (i = 0; i < nc; i++) {
		if (on[i] != victim)
			continue;
		err = login_retry(c2, id[i], T_LOGOUT);
		ck_assert_msg(err == 0, "user %lld of the killed worker: "
		    "LOGIN errno %d", id[i], err);
		chatc_close(c2);
		c2 = xconnect(0);
	}
	/* The survivors are still online: a second login is refused. */
	for (i = 0; i < nc; i++)
		if (on[i] != victim)
			ck_assert_int_eq(login_errno(c2, id[i], PW),
			    CERR_ONLINE);
	chatc_close(c2);
	for (i = 0; i < nc; i++)
		chatc_close(c[i]);
}
END_TEST

/* The whole of a file, NUL-terminated, in *lenp bytes. */
static char *
slurp(const char *path, size_t *lenp)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY)) == -1)
		return NULL;
	for (;;) {
		if (cap - len < 4096 &&
		    (buf = realloc(buf, cap += 8192)) == NULL)
			break;
		if ((n = read(fd, buf + len, cap - len - 1)) <= 0)
			break;
		len += (size_t)n;
	}
	(void)close(fd);
	if (buf != NULL) {
		buf[len] = '\0';
		*lenp = len;
	}
	return buf;
}

static void
write_file(const char *path, const char *data, size_t len)
{
	FILE *fp = fopen(path, "w");

	ck_assert_msg(fp != NULL, "open %s: %s", path, strerror(errno));
	ck_assert_uint_eq(fwrite(data, 1, len, fp), len);
	ck_assert_int_eq(fclose(fp), 0);
}

/* Wait until every worker in before[] is replaced by a new one; the new
 * pids, sorted, in after[]. */
static void
wait_replaced(const pid_t *before, pid_t *after)
{
	long long deadline = harness_now_ms() + T_RESPAWN;
	int n, i;

	for (;;) {
		n = workers_now(after);
		for (i = 0; n == NWORKERS && i < n; i++)
			if (pid_in(after[i], before, NWORKERS))
				break;
		if (n == NWORKERS && i == n)
			return;
		ck_assert_msg(harness_now_ms() < deadline, "workers not replaced %d ms "
		    "after SIGHUP", T_RESPAWN);
		harness_sleep_ms(50);
	}
}

/* Append text to instance 0's config file; the file as it was. */
static char *
conf_append(const char *text, size_t *lenp)
{
	const char *conf = H.chatd[0].conf_path;
	char *orig, *more;

	ck_assert_ptr_nonnull(orig = slurp(conf, lenp));
	ck_assert_ptr_nonnull(more = malloc(*lenp + strlen(text) + 1));
	memcpy(more, orig, *lenp);
	memcpy(more + *lenp, text, strlen(text) + 1);
	write_file(conf, more, *lenp + strlen(text));
	free(more);
	return orig;
}

/* Bytes in instance 0's log now. */
static size_t
log_size(void)
{
	size_t len = 0;

	free(slurp(H.chatd[0].log_path, &len));
	return len;
}

/* How often needle is in instance 0's log past byte off, once the log
 * has at least `want` of them there or ms pass. */
static int
log_count_after(size_t off, const char *needle, int want, long ms)
{
	long long deadline = harness_now_ms() + ms;
	const char *p;
	char *text;
	size_t len;
	int n;

	for (;;) {
		ck_assert_ptr_nonnull(text = slurp(H.chatd[0].log_path, &len));
		ck_assert_uint_ge(len, off);
		for (n = 0, p = text + off; (p = strstr(p, needle)) != NULL;
		    p += strlen(needle))
			n++;
		free(text);
		if (n >= want || harness_now_ms() >= deadline)
			return n;
		harness_sleep_ms(50);
	}
}

/*
 * A reload that changes only keys the running workers can take (here
 * max_message and rate_limit) keeps every worker and every connection,
 * and the new values are in force on those connections at once: a chat
 * of 11 bytes passes, is refused after max_message = 10, and passes
 * again when the file is put back and reloaded.
 */
START_TEST(test_sighup_in_place)
{
	static const char live[] = "\n[server]\nmax_message = 10\n"
	    "rate_limit = 1000\n";
	pid_t before[NWORKERS], after[NWORKERS];
	const char *conf = H.chatd[0].conf_path;
	struct chatc *a, *b;
	long long ida, idb;
	cJSON *r, *m;
	char *orig;
	size_t len, off;
	int round, i;

	a = user_online(0, "live", &ida);
	b = user_online(0, "live", &idb);
	ck_assert_int_eq(workers_now(before), NWORKERS);
	for (round = 0; round < 3; round++) {
		/* 11 bytes: refused only while max_message is 10. */
		r = must(a, chatc_one_chat(a, idb, "0123456789x", T_REPLY),
		    "ONE_CHAT of 11 bytes");
		if (round == 1) {
			check_error(r, CERR_BAD_REQUEST, MSG_ONE_CHAT, ANY);
		} else {
			ck_assert_msg(chatc_errno(r) == 0, "11 bytes refused "
			    "in round %d: %s", round, dump(r));
			cJSON_Delete(r);
			m = recv_msg(b, "the chat of 11 bytes");
			ck_assert_msg(msgid_of(m) == MSG_ONE_CHAT &&
			    str(m, "msg") != NULL &&
			    strcmp(str(m, "msg"), "0123456789x") == 0,
			    "want the chat, got %s", dump(m));
			cJSON_Delete(m);
		}
		if (round == 2)
			break;
		orig = NULL;
		if (round == 0)
			orig = conf_append(live, &len);
		off = log_size();
		ck_assert_int_eq(harness_signal_chatd(&H, 0, SIGHUP, 0), 0);
		i = log_count_after(off, "reload complete", 1, T_RESPAWN);
		if (orig != NULL) {
			write_file(conf, orig, len);
			free(orig);
		}
		ck_assert_msg(i == 1, "no \"reload complete\" after SIGHUP "
		    "(round %d)", round);
		ck_assert_int_eq(log_count_after(off, "workers apply it in "
		    "place", 1, 0), 1);
		ck_assert_int_eq(log_count_after(off, "applied in place "
		    "(2 key(s) changed)", NWORKERS, T_RESPAWN), NWORKERS);
		ck_assert_int_eq(log_count_after(off, "replacing workers", 0,
		    0), 0);
		ck_assert_int_eq(workers_now(after), NWORKERS);
		for (i = 0; i < NWORKERS; i++)
			ck_assert_msg(after[i] == before[i], "worker %ld "
			    "replaced by a reload in place", (long)before[i]);
		ping_ok(a);
		ping_ok(b);
	}
	chatc_close(a);
	chatc_close(b);
}
END_TEST

START_TEST(test_sighup_reload)
{
	static const char junk[] = "this line is not a setting\n";
	pid_t before[NWORKERS], after[NWORKERS], again[NWORKERS];
	const char *conf = H.chatd[0].conf_path;
	struct chatc *c, *old;
	long long id;
	char *orig;
	size_t len, off;
	int n, i;

	/* job_threads needs new workers: the old connections close. */
	old = user_online(0, "hup", &id);
	n = workers_now(before);
	ck_assert_int_eq(n, NWORKERS);
	orig = conf_append("\n[server]\njob_threads = 3\n", &len);
	off = log_size();
	ck_assert_int_eq(harness_signal_chatd(&H, 0, SIGHUP, 0), 0);
	i = log_count_after(off, "job_threads changed, replacing workers", 1,
	    T_RESPAWN);
	write_file(conf, orig, len);
	free(orig);
	ck_assert_msg(i == 1, "no \"job_threads changed, replacing workers\" "
	    "in the log after SIGHUP");
	wait_replaced(before, after);
	ck_assert_msg(log_count_after(off, "reload complete", 1, T_RESPAWN) ==
	    1, "no \"reload complete\" in the log");
	ck_assert_ptr_null(chatc_recv(old, T_REPLY));
	ck_assert_msg(chatc_closed(old), "a connection outlived its "
	    "replaced worker: %s", chatc_error(old));
	chatc_close(old);
	c = user_online(0, "hup", &id);
	chatc_close(c);

	/* A config that does not parse: the reload fails and changes
	 * nothing. */
	ck_assert(!harness_log_contains(&H, 0, "reload failed"));
	orig = conf_append(junk, &len);
	off = log_size();
	ck_assert_int_eq(harness_signal_chatd(&H, 0, SIGHUP, 0), 0);
	i = log_count_after(off, "reload failed", 1, T_RESPAWN);
	write_file(conf, orig, len);
	free(orig);
	ck_assert_msg(i, "no \"reload failed\" in the log after SIGHUP with "
	    "a bad config");
	harness_sleep_ms(500);	/* time enough for a wrong replacement to start */
	ck_assert_int_eq(kill(H.chatd[0].pid, 0), 0);
	n = workers_now(again);
	ck_assert_int_eq(n, NWORKERS);
	for (i = 0; i < NWORKERS; i++)
		ck_assert_msg(again[i] == after[i], "a worker was replaced "
		    "after a failed reload");
	c = user_online(0, "hup", &id);
	ping_ok(c);
	chatc_close(c);
}
END_TEST

/*
 * The master says "reload complete" (and sends READY=1 with it) once the
 * new workers run, not while the old ones are still stopping: in the log,
 * the master's "worker N started, pid P" line of every new worker comes
 * before it.
 */
START_TEST(test_sighup_complete_after_new_workers)
{
	pid_t before[NWORKERS], after[NWORKERS];
	const char *log = H.chatd[0].log_path;
	long long deadline;
	char *text, *complete, *started, needle[64], *orig;
	size_t off, len, olen;
	int i;

	ck_assert_int_eq(workers_now(before), NWORKERS);
	off = log_size();
	/* A value unlike the running one (3 after test_sighup_reload, 2
	 * when run alone): new workers. */
	orig = conf_append("\n[server]\njob_threads = 4\n", &olen);
	ck_assert_int_eq(harness_signal_chatd(&H, 0, SIGHUP, 0), 0);
	i = log_count_after(off, "configuration reloaded", 1, T_RESPAWN);
	write_file(H.chatd[0].conf_path, orig, olen);
	free(orig);
	ck_assert_int_eq(i, 1);
	wait_replaced(before, after);
	deadline = harness_now_ms() + T_RESPAWN;
	for (;;) {
		ck_assert_ptr_nonnull(text = slurp(log, &len));
		ck_assert_uint_ge(len, off);
		if ((complete = strstr(text + off, "reload complete")) != NULL)
			break;
		free(text);
		ck_assert_msg(harness_now_ms() < deadline, "no \"reload complete\" "
		    "%d ms after SIGHUP", T_RESPAWN);
		harness_sleep_ms(50);
	}
	for (i = 0; i < NWORKERS; i++) {
		(void)snprintf(needle, sizeof(needle), "started, pid %ld\n",
		    (long)after[i]);
		started = strstr(text + off, needle);
		ck_assert_msg(started != NULL, "no \"%.*s\" in the log",
		    (int)strlen(needle) - 1, needle);
		ck_assert_msg(started < complete, "\"reload complete\" logged "
		    "before new worker %ld started (old workers still "
		    "stopping)", (long)after[i]);
	}
	free(text);
}
END_TEST

/*
 * A reload in place is reported as soon as the workers have applied it:
 * each wakes the master (SIGUSR1), which used to notice only at its
 * next one-second tick.  Five reloads of the unchanged file, one after
 * the other, each waited for: at a tick per reload they took at least
 * four seconds (every reload after the first is sent just after a tick
 * and completes at the next); woken, each takes the log poll's 50 ms
 * and a few more.  The bound is about the tick, not about speed: it
 * leaves five times what the reloads take under AddressSanitizer.
 */
START_TEST(test_sighup_reported_at_once)
{
	enum { ROUNDS = 5, BOUND_MS = 2500 };
	pid_t before[NWORKERS], after[NWORKERS];
	long long t0, took;
	size_t off;
	int i, round;

	/* First settle on the file as it is: an earlier test of this
	 * case may have left it unlike what runs (new workers). */
	off = log_size();
	ck_assert_int_eq(harness_signal_chatd(&H, 0, SIGHUP, 0), 0);
	ck_assert_int_eq(log_count_after(off, "reload complete", 1,
	    T_RESPAWN), 1);
	ck_assert_int_eq(workers_now(before), NWORKERS);
	off = log_size();
	t0 = harness_now_ms();
	for (round = 1; round <= ROUNDS; round++) {
		ck_assert_int_eq(harness_signal_chatd(&H, 0, SIGHUP, 0), 0);
		i = log_count_after(off, "reload complete", round, T_RESPAWN);
		ck_assert_msg(i == round, "%d \"reload complete\" after %d "
		    "SIGHUPs", i, round);
	}
	took = harness_now_ms() - t0;
	ck_assert_msg(took < BOUND_MS, "%d reloads in place took %lld ms: "
	    "completion waits for the master's tick", ROUNDS, took);
	ck_assert_int_eq(log_count_after(off, "applied in place",
	    ROUNDS * NWORKERS, T_RESPAWN), ROUNDS * NWORKERS);
	ck_assert_int_eq(workers_now(after), NWORKERS);
	for (i = 0; i < NWORKERS; i++)
		ck_assert_msg(after[i] == before[i], "worker %ld replaced by "
		    "a reload of an unchanged file", (long)before[i]);
}
END_TEST

/* --- SIGTERM, on an instance of its own ---------------------------------- */

START_TEST(test_sigterm)
{
	struct chatc *c, *anon, *late;
	char err[256];
	long long id;
	pid_t master;
	int port, status;

	ck_assert_msg(harness_start_chatd(&H, 1, "[server]\nworkers = 2\n")
	    == 0, "chatd-1 did not start");
	port = H.chatd[1].port;
	master = H.chatd[1].pid;
	c = user_online(1, "term", &id);
	anon = xconnect(1);
	ping_ok(anon);

	status = harness_signal_chatd(&H, 1, SIGTERM, 1);
	ck_assert_msg(status != -1 && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0, "chatd-1 after SIGTERM: wait status "
	    "%#x", (unsigned)status);
	expect_closed(c, "logged-in client at SIGTERM");
	expect_closed(anon, "anonymous client at SIGTERM");
	late = chatc_connect("127.0.0.1", port, 1000, err, sizeof(err));
	ck_assert_msg(late == NULL, "port %d still accepts after SIGTERM",
	    port);
	ck_assert_int_eq(group_size(master), 0);
	ck_assert(harness_log_contains(&H, 1, "stopped"));
	chatc_close(c);
	chatc_close(anon);
}
END_TEST

/* --- hash_concurrency, on instances of their own -------------------------- */

#define HASH_BURST	6	/* REGs, then LOGINs, sent at once */
/* Two workers, three hashing job threads each: up to six hashes at once
 * unless hash_concurrency holds them back.  The cost makes a hash last
 * tens of milliseconds, far longer than sending the burst. */
#define HASH_CONF(n)	"[server]\nworkers = 2\njob_threads = 4\n" \
			"hash_opslimit = 2\nhash_memlimit_kib = 32768\n" \
			"hash_concurrency = " #n "\n"

/* Counter k summed over the workers of instance inst, read from the
 * control socket as chatctl stats does. */
static long long
stats_total(int inst, const char *k)
{
	char err[256];
	long long sum;

	ck_assert_msg(harness_stats_sum(&H, inst, k, &sum, NULL, err,
	    sizeof(err)) == 0, "%s", err);
	return sum;
}

/* HASH_BURST registrations, then their logins, each from a connection of
 * its own and all sent before any reply is read; every one must succeed.
 * Returns hash_waits after the REGs in *after_reg, and at the end. */
static long long
hash_burst(int inst, long long *after_reg)
{
	struct chatc *c[HASH_BURST];
	char name[PROTO_NAME_MAX + 1];
	long long id[HASH_BURST];
	cJSON *m;
	int i;

	for (i = 0; i < HASH_BURST; i++)
		c[i] = xconnect(inst);
	for (i = 0; i < HASH_BURST; i++) {
		uname_make(name, sizeof(name), "hash");
		m = chatc_build_register(name, PW);
		ck_assert_msg(chatc_send(c[i], m) == 0, "send REG: %s",
		    chatc_error(c[i]));
		cJSON_Delete(m);
	}
	for (i = 0; i < HASH_BURST; i++) {
		m = recv_msg(c[i], "REG_ACK");
		ck_assert_msg(msgid_of(m) == MSG_REG_ACK && chatc_errno(m) == 0 &&
		    num(m, "id") > 0, "REG in a burst: %s", dump(m));
		id[i] = num(m, "id");
		cJSON_Delete(m);
	}
	*after_reg = stats_total(inst, "hash_waits");
	for (i = 0; i < HASH_BURST; i++) {
		m = chatc_build_login(id[i], PW);
		ck_assert_msg(chatc_send(c[i], m) == 0, "send LOGIN: %s",
		    chatc_error(c[i]));
		cJSON_Delete(m);
	}
	for (i = 0; i < HASH_BURST; i++) {
		m = recv_msg(c[i], "LOGIN_ACK");
		ck_assert_msg(msgid_of(m) == MSG_LOGIN_ACK &&
		    chatc_errno(m) == 0 && num(m, "id") == id[i],
		    "LOGIN in a burst: %s", dump(m));
		cJSON_Delete(m);
		ping_ok(c[i]);
		chatc_close(c[i]);
	}
	return stats_total(inst, "hash_waits");
}

START_TEST(test_hash_concurrency_one)
{
	long long reg, total;

	ck_assert_msg(harness_start_chatd(&H, 2, HASH_CONF(1)) == 0,
	    "chatd-2 did not start");
	ck_assert_int_eq(stats_total(2, "hash_waits"), 0);
	total = hash_burst(2, &reg);
	/* One slot for six hashes sent at once: some had to wait, and
	 * they still all went through. */
	ck_assert_msg(reg >= 1, "no REG waited for the one hash slot");
	ck_assert_msg(total > reg, "no LOGIN waited for the one hash slot "
	    "(hash_waits %lld after the REGs, %lld after the LOGINs)", reg,
	    total);
	ck_assert_int_gt(stats_total(2, "hash_wait_ms"), 0);
	ck_assert_int_eq(harness_signal_chatd(&H, 2, SIGTERM, 1), 0);
}
END_TEST

START_TEST(test_hash_concurrency_two)
{
	long long reg, total;

	/* Six connections on two workers: one worker has three or more,
	 * hashing on three threads for two slots. */
	ck_assert_msg(harness_start_chatd(&H, 3, HASH_CONF(2)) == 0,
	    "chatd-3 did not start");
	total = hash_burst(3, &reg);
	ck_assert_msg(reg >= 1, "no REG waited for one of two hash slots");
	ck_assert_msg(total > reg, "no LOGIN waited for one of two hash "
	    "slots");
	ck_assert_int_eq(harness_signal_chatd(&H, 3, SIGTERM, 1), 0);
}
END_TEST

START_TEST(test_hash_concurrency_plenty)
{
	long long reg, total;

	/* More slots than the six hashing threads: nobody ever waits. */
	ck_assert_msg(harness_start_chatd(&H, 3, HASH_CONF(64)) == 0,
	    "chatd-3 did not start");
	total = hash_burst(3, &reg);
	ck_assert_int_eq(reg, 0);
	ck_assert_int_eq(total, 0);
	ck_assert_int_eq(harness_signal_chatd(&H, 3, SIGTERM, 1), 0);
}
END_TEST

/* The type of the lock on byte `byte` of fd: F_UNLCK when free. */
static int
slot_lock_type(int fd, int byte)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = byte;
	fl.l_len = 1;
	ck_assert_msg(fcntl(fd, F_OFD_GETLK, &fl) == 0, "F_OFD_GETLK: %s",
	    strerror(errno));
	return fl.l_type;
}

START_TEST(test_hash_slot_freed_by_sigkill)
{
	struct chatc *c, *c2;
	char name[PROTO_NAME_MAX + 1], path[128];
	pid_t pids[2];
	long long deadline;
	cJSON *m;
	int fd, n;

	/* One worker and one slot (byte 1 of the slot file; byte 0 is the
	 * waiters' gate); a hash long enough to be caught holding it. */
	ck_assert_msg(harness_start_chatd(&H, 2, "[server]\nworkers = 1\n"
	    "hash_concurrency = 1\nhash_opslimit = 4\n"
	    "hash_memlimit_kib = 262144\n") == 0, "chatd-2 did not start");
	(void)snprintf(path, sizeof(path), "/dev/shm%s.hash",
	    H.chatd[2].shm_name);
	fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(slot_lock_type(fd, 1), F_UNLCK);
	n = harness_chatd_workers(&H, 2, pids, 2);
	ck_assert_int_eq(n, 1);

	c = xconnect(2);
	uname_make(name, sizeof(name), "hashkill");
	m = chatc_build_register(name, PW);
	ck_assert_int_eq(chatc_send(c, m), 0);
	cJSON_Delete(m);
	deadline = harness_now_ms() + T_REPLY;
	while (slot_lock_type(fd, 1) == F_UNLCK) {
		ck_assert_msg(harness_now_ms() < deadline, "the REG never "
		    "took the hash slot");
		harness_sleep_ms(1);
	}
	ck_assert_int_eq(kill(pids[0], SIGKILL), 0);
	expect_closed(c, "REG on the killed worker");
	chatc_close(c);
	/* The kernel drops the dead worker's lock: nobody has to. */
	deadline = harness_now_ms() + T_EOF;
	while (slot_lock_type(fd, 1) != F_UNLCK) {
		ck_assert_msg(harness_now_ms() < deadline, "the hash slot "
		    "is still held after its worker was SIGKILLed");
		harness_sleep_ms(10);
	}
	(void)close(fd);
	/* The replacement worker hashes: REG and LOGIN succeed. */
	deadline = harness_now_ms() + T_RESPAWN;
	while ((n = harness_chatd_workers(&H, 2, pids + 1, 1)) != 1 ||
	    pids[1] == pids[0]) {
		ck_assert_msg(harness_now_ms() < deadline, "no new worker");
		harness_sleep_ms(50);
	}
	c2 = xconnect(2);
	uname_make(name, sizeof(name), "hashkill");
	login_ok(c2, register_ok(c2, name));
	chatc_close(c2);
	ck_assert_int_eq(harness_signal_chatd(&H, 2, SIGTERM, 1), 0);
}
END_TEST

/* --- database down (last: stops the shared mariadbd) --------------------- */

START_TEST(test_database_down)
{
	struct chatc *c = xconnect(0), *c2;
	char name[PROTO_NAME_MAX + 1];
	long long id, t0, deadline;
	int64_t seq;
	cJSON *r;
	int err;

	uname_make(name, sizeof(name), "db");
	id = register_ok(c, name);

	/* In a forked test the runner owns mariadbd and its exit status,
	 * so the result of the stop says nothing; errno 13 below does. */
	(void)harness_stop_mariadb(&H);

	t0 = harness_now_ms();
	uname_make(name, sizeof(name), "db");
	seq = chatc_next_seq(c);
	r = must(c, chatc_register(c, name, PW, T_DB_DOWN), "REG, db down");
	ck_assert_msg(msgid_of(r) == MSG_REG_ACK &&
	    chatc_errno(r) == CERR_UNAVAILABLE && num(r, "seq") == seq,
	    "REG with the database down: %s", dump(r));
	cJSON_Delete(r);
	c2 = xconnect(0);
	r = must(c2, chatc_login(c2, id, PW, T_DB_DOWN), "LOGIN, db down");
	ck_assert_msg(msgid_of(r) == MSG_LOGIN_ACK &&
	    chatc_errno(r) == CERR_UNAVAILABLE,
	    "LOGIN with the database down: %s", dump(r));
	cJSON_Delete(r);
	ck_assert_msg(harness_now_ms() - t0 < T_DB_DOWN, "errno 13 took %lld ms",
	    harness_now_ms() - t0);
	/* chatd itself is fine. */
	ping_ok(c);
	ping_ok(c2);
	ck_assert_int_eq(kill(H.chatd[0].pid, 0), 0);

	ck_assert_msg(harness_start_mariadb(&H) == 0,
	    "mariadbd did not restart");
	deadline = harness_now_ms() + T_DB_BACK;
	for (;;) {
		uname_make(name, sizeof(name), "db");
		r = must(c, chatc_register(c, name, PW, T_DB_BACK), "REG");
		ck_assert_msg(msgid_of(r) == MSG_REG_ACK, "REG: %s", dump(r));
		err = chatc_errno(r);
		cJSON_Delete(r);
		if (err == 0)
			break;
		ck_assert_msg(err == CERR_UNAVAILABLE, "REG: errno %d", err);
		ck_assert_msg(harness_now_ms() < deadline, "REG still errno 13 %d ms "
		    "after mariadbd restarted", T_DB_BACK);
		harness_sleep_ms(200);
	}
	while ((err = login_errno(c2, id, PW)) == CERR_UNAVAILABLE &&
	    harness_now_ms() < deadline)
		harness_sleep_ms(200);
	ck_assert_msg(err == 0, "LOGIN after mariadbd restarted: errno %d",
	    err);
	chatc_close(c);
	chatc_close(c2);
	/* Ours now (a child of this test): stop it cleanly. */
	(void)harness_stop_mariadb(&H);
}
END_TEST

/* --- suite --------------------------------------------------------------- */

static TCase *
tcase_new(Suite *s, const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_add_unchecked_fixture(tc, servers_setup, servers_teardown);
	tcase_set_timeout(tc, TCASE_TIMEOUT);
	suite_add_tcase(s, tc);
	tcases_left++;
	return tc;
}

static Suite *
account_suite(void)
{
	Suite *s = suite_create("it_account");
	TCase *tc;

	tc = tcase_new(s, "reg");
	tcase_add_test(tc, test_reg_ok);
	tcase_add_test(tc, test_reg_duplicate);
	tcase_add_test(tc, test_reg_empty_name);
	tcase_add_test(tc, test_reg_name_length);
	tcase_add_test(tc, test_reg_control_char);
	tcase_add_test(tc, test_reg_name_with_escaped_nul_refused);
	tcase_add_test(tc, test_reg_password_with_escaped_nul_not_truncated);
	tcase_add_test(tc, test_reg_invalid_utf8);
	tcase_add_test(tc, test_reg_bad_password);

	tc = tcase_new(s, "login");
	tcase_add_test(tc, test_login_ok);
	tcase_add_test(tc, test_login_refused);
	tcase_add_test(tc, test_login_duplicate);
	tcase_add_test(tc, test_login_same_conn);
	tcase_add_test(tc, test_loginout);
	tcase_add_test(tc, test_disconnect_is_logout);

	tc = tcase_new(s, "anonymous");
	tcase_add_test(tc, test_anon_refused);
	tcase_add_test(tc, test_ping);
	tcase_add_test(tc, test_ping_without_seq);

	tc = tcase_new(s, "framing");
	tcase_add_test(tc, test_frame_classic_nul);
	tcase_add_test(tc, test_frame_back_to_back);
	tcase_add_test(tc, test_frame_newlines);
	tcase_add_test(tc, test_frame_split);
	tcase_add_test(tc, test_frame_invalid_json);
	tcase_add_test(tc, test_frame_bad_msgid);
	tcase_add_test(tc, test_frame_too_large);
	tcase_add_test(tc, test_frame_stray_bytes);
	tcase_add_test(tc, test_frame_half_close);
	tcase_add_test(tc, test_frame_nul_flood);

	/* After the abuse above, before anything replaces workers. */
	tc = tcase_new(s, "robustness");
	tcase_add_test(tc, test_workers_survived);

	tc = tcase_new(s, "signals");
	tcase_add_test(tc, test_sigkill_worker);
	tcase_add_test(tc, test_sighup_in_place);
	tcase_add_test(tc, test_sighup_reload);
	tcase_add_test(tc, test_sighup_complete_after_new_workers);
	tcase_add_test(tc, test_sighup_reported_at_once);

	tc = tcase_new(s, "sigterm");
	tcase_add_test(tc, test_sigterm);

	tc = tcase_new(s, "hash-concurrency");
	tcase_add_test(tc, test_hash_concurrency_one);
	tcase_add_test(tc, test_hash_concurrency_two);
	tcase_add_test(tc, test_hash_concurrency_plenty);
	tcase_add_test(tc, test_hash_slot_freed_by_sigkill);

	/* Last: it stops the shared mariadbd. */
	tc = tcase_new(s, "database-down");
	tcase_add_test(tc, test_database_down);
	return s;
}

int
main(void)
{
	/* Its fixtures stop the servers they start. */
	return harness_run_suite(account_suite(), NULL, 0);
}
