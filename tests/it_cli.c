/*
 * it_cli.c - tests of chat(1), the interactive client, driven through a
 * pseudo-terminal (forkpty) as a person would use it, against a real
 * chatd with its MariaDB and Redis started by tests/harness.c.  The
 * other party of a conversation is a second chat on its own terminal or
 * the client library (client/chatc.h).
 *
 * Covered: the menu (register, login, a wrong password, no echo of
 * passwords), chat both ways with Chinese text, offline messages shown
 * at login, friends and PRESENCE notices, groups and group chat, a
 * message arriving while a line is half typed (also a wrapped one),
 * readable errors, ^C, a connection dropped by the server's idle_timeout
 * and the reconnect command, keepalive PINGs that prevent that drop, and
 * (through tests/cli_oneshot.sh) the one-shot mode.  A TCase of its own
 * unit-tests the command parser.
 *
 * What the client prints is collected as a byte stream (not a screen):
 * expectations are substrings that must appear, in order, within a
 * bound.  The terminal is a vt100 of 80 columns; NUL padding bytes are
 * dropped.
 *
 * For debugging: IT_CLI_ONLY=test_a,test_b runs only those tests;
 * IT_CLI_VERBOSE=1 prints everything the clients wrote.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <check.h>
#include <cjson/cJSON.h>

#include "chat_cmd.h"
#include "chatc.h"
#include "harness.h"
#include "protocol.h"

#define MAIN_INST	0	/* the chatd most tests use */
#define MAIN_CONF	"[server]\nworkers = 2\n"
#define IDLE_INST	1	/* a chatd that drops idle sessions fast */
#define IDLE_TIMEOUT_S	2
#define IDLE_CONF	"[server]\nworkers = 1\nidle_timeout = 2\n"

#define PASSWORD	"it-cli-Pa55"
#define COLS		80
#define ROWS		24

/* Bounds, in milliseconds. */
#define REQ_MS		5000	/* a library request until its reply */
#define EXPECT_MS	8000	/* text the client must print */
#define EXIT_MS		8000	/* the client exiting after quit */
#define LOST_MS		(IDLE_TIMEOUT_S * 1000 + 6000) /* idle drop seen */
#define SCRIPT_S	120	/* tests/cli_oneshot.sh as a whole */
#define TEST_TIMEOUT_S	90	/* Check's limit for one test */

#define CLI_MAX		4	/* clients one test runs at once */
#define DUMP_MAX	1500	/* bytes of output quoted in a failure */

static struct harness H;
static int harness_ok;
static int harness_tried;
static int name_seq;

/* --- fixture ------------------------------------------------------------- */

static void
setup(void)
{
	if (harness_tried)
		return;
	harness_tried = 1;
	harness_ok = harness_init(&H) == 0 &&
	    harness_start_mariadb(&H) == 0 &&
	    harness_start_redis(&H) == 0 &&
	    harness_start_chatd(&H, MAIN_INST, MAIN_CONF) == 0 &&
	    harness_start_chatd(&H, IDLE_INST, IDLE_CONF) == 0;
	if (!harness_ok)
		fprintf(stderr, "it_cli: starting the servers failed (see "
		    "above); every test will fail\n");
}

static void
teardown(void)
{
	/* main stops the servers after the last TCase */
}

/* --- a chat client on a pseudo-terminal ---------------------------------- */

struct cli {
	pid_t	 pid;		/* 0 once reaped */
	int	 fd;		/* pty master, -1 when closed */
	int	 status;	/* wait status once reaped */
	char	*out;		/* all it printed, NUL bytes dropped */
	size_t	 len, cap;
	size_t	 mark;		/* expectations search from here */
	char	 tag[32];	/* for messages */
};

static struct cli *clis[CLI_MAX];
static int nclis;

static void
cli_append(struct cli *t, const char *buf, size_t n)
{
	size_t i;

	if (t->cap - t->len < n + 1) {
		t->cap = (t->cap + n + 1) * 2;
		t->out = realloc(t->out, t->cap);
		ck_assert(t->out != NULL);
	}
	/* vt100 padding is NUL bytes; they would end every strstr. */
	for (i = 0; i < n; i++)
		if (buf[i] != '\0')
			t->out[t->len++] = buf[i];
	t->out[t->len] = '\0';
	if (getenv("IT_CLI_VERBOSE") != NULL) {
		fprintf(stderr, "[%s] ", t->tag);
		fwrite(buf, 1, n, stderr);
		fprintf(stderr, "\n");
	}
}

/* Read what the client printed, waiting up to ms for the first bytes.
 * 1 when bytes came, 0 on timeout, -1 when the terminal closed. */
static int
cli_read(struct cli *t, int ms)
{
	struct pollfd pfd;
	char buf[4096];
	ssize_t n;
	int rc;

	if (t->fd == -1)
		return -1;
	pfd.fd = t->fd;
	pfd.events = POLLIN;
	do
		rc = poll(&pfd, 1, ms);
	while (rc == -1 && errno == EINTR);
	if (rc <= 0)
		return 0;
	n = read(t->fd, buf, sizeof(buf));
	if (n > 0) {
		cli_append(t, buf, (size_t)n);
		return 1;
	}
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return 0;
	/* EIO: the client exited and closed the terminal's last slave. */
	return -1;
}

/* The output after the mark, printable, for failure messages. */
static char *
cli_dump(const struct cli *t)
{
	const char *p = t->out != NULL ? t->out + t->mark : "";
	size_t n = strlen(p), i, o = 0;
	char *d;

	/* Check refuses failure messages of more than about 4 KiB. */
	if (n > DUMP_MAX)
		p += n - DUMP_MAX, n = DUMP_MAX;
	d = malloc(n * 4 + 1);
	ck_assert(d != NULL);
	for (i = 0; i < n && o < DUMP_MAX; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (ch == '\n' || (ch >= 0x20 && ch != 0x7f))
			d[o++] = (char)ch;
		else if (ch == '\r')
			continue;
		else
			o += (size_t)sprintf(d + o, "\\x%02x", ch);
	}
	d[o] = '\0';
	return d;
}

/*
 * Wait until the client has printed needle after the mark; the mark then
 * moves past it.  Returns where the match started in t->out (an offset,
 * as the buffer moves when it grows).  Fails the test on timeout.
 */
static size_t
cli_expect(struct cli *t, const char *needle, int ms)
{
	long long deadline = harness_now_ms() + ms, left;
	const char *hit;
	size_t at;

	for (;;) {
		if (t->out != NULL &&
		    (hit = strstr(t->out + t->mark, needle)) != NULL) {
			at = (size_t)(hit - t->out);
			t->mark = at + strlen(needle);
			return at;
		}
		left = deadline - harness_now_ms();
		if (left <= 0 || cli_read(t, (int)left) == -1) {
			/* One last look at what came with the end. */
			if (t->out != NULL &&
			    strstr(t->out + t->mark, needle) != NULL)
				continue;
			ck_abort_msg("[%s] \"%s\" not printed within %d ms; "
			    "output since the last match:\n%s", t->tag, needle,
			    ms, cli_dump(t));
		}
	}
}

/* Read for ms and assert needle did not appear after the mark. */
static void
cli_expect_not(struct cli *t, const char *needle, int ms)
{
	long long deadline = harness_now_ms() + ms, left;

	while ((left = deadline - harness_now_ms()) > 0 &&
	    cli_read(t, (int)left) != -1)
		;
	ck_assert_msg(t->out == NULL || strstr(t->out + t->mark, needle) ==
	    NULL, "[%s] printed \"%s\":\n%s", t->tag, needle, cli_dump(t));
}

static void
cli_send(struct cli *t, const char *s)
{
	size_t n = strlen(s), off = 0;
	ssize_t w;

	while (off < n) {
		w = write(t->fd, s + off, n - off);
		if (w == -1 && errno == EINTR)
			continue;
		ck_assert_msg(w > 0, "[%s] write to the terminal: %s", t->tag,
		    strerror(errno));
		off += (size_t)w;
	}
}

/* A line typed and Enter (a terminal sends CR). */
static void
cli_line(struct cli *t, const char *s)
{
	cli_send(t, s);
	cli_send(t, "\r");
}

/*
 * Start chat on a new pseudo-terminal, talking to chatd instance inst,
 * with the given extra arguments (NULL-terminated) and CHAT_PASSWORD set
 * to password unless it is NULL.
 */
static struct cli *
cli_start(const char *tag, int inst, const char *password, ...)
{
	struct winsize ws = { .ws_row = ROWS, .ws_col = COLS };
	const char *argv[32];
	char port[16];
	struct cli *t;
	va_list ap;
	int argc = 0;
	pid_t pid;
	int fd;

	ck_assert_msg(harness_ok, "the servers did not start (see stderr)");
	ck_assert(nclis < CLI_MAX);
	t = calloc(1, sizeof(*t));
	ck_assert(t != NULL);
	(void)snprintf(t->tag, sizeof(t->tag), "%s", tag);
	(void)snprintf(port, sizeof(port), "%d", H.chatd[inst].port);
	argv[argc++] = TOP_BUILDDIR "/chat";
	argv[argc++] = "-h";
	argv[argc++] = "127.0.0.1";
	argv[argc++] = "-p";
	argv[argc++] = port;
	va_start(ap, password);
	while (argc < 31 && (argv[argc] = va_arg(ap, const char *)) != NULL)
		argc++;
	va_end(ap);
	argv[argc] = NULL;

	pid = forkpty(&fd, NULL, NULL, &ws);
	ck_assert_msg(pid != -1, "forkpty: %s", strerror(errno));
	if (pid == 0) {
		/* Nothing outlives a test that failed or timed out. */
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		(void)setenv("TERM", "vt100", 1);
		(void)setenv("LANG", "C.UTF-8", 1);
		(void)unsetenv("LC_ALL");
		(void)unsetenv("LC_CTYPE");
		/* No ~/.editrc of the person running the tests. */
		(void)setenv("HOME", H.dir, 1);
		if (password != NULL)
			(void)setenv("CHAT_PASSWORD", password, 1);
		else
			(void)unsetenv("CHAT_PASSWORD");
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	t->pid = pid;
	t->fd = fd;
	clis[nclis++] = t;
	return t;
}

/* Wait up to ms for the client to exit; 0 with t->status set, or -1. */
static int
cli_wait(struct cli *t, int ms)
{
	long long deadline = harness_now_ms() + ms;
	pid_t r;

	while (t->pid != 0) {
		r = waitpid(t->pid, &t->status, WNOHANG);
		if (r == t->pid) {
			t->pid = 0;
			break;
		}
		if (harness_now_ms() >= deadline)
			return -1;
		/* Keep reading: a full terminal would block its exit. */
		if (cli_read(t, 50) == -1)
			harness_sleep_ms(20);
	}
	while (cli_read(t, 0) == 1)
		;
	return 0;
}

/* No sanitizer report in what the client printed. */
static void
cli_no_reports(struct cli *t)
{
	if (t->out == NULL || (strstr(t->out, "Sanitizer") == NULL &&
	    strstr(t->out, "runtime error:") == NULL))
		return;
	t->mark = 0;
	ck_abort_msg("[%s] sanitizer report:\n%s", t->tag, cli_dump(t));
}

/* Send line (e.g. "quit") and assert the client exits with status 0. */
static void
cli_finish(struct cli *t, const char *line)
{
	t->mark = t->len;
	cli_line(t, line);
	ck_assert_msg(cli_wait(t, EXIT_MS) == 0, "[%s] did not exit after "
	    "\"%s\":\n%s", t->tag, line, cli_dump(t));
	cli_no_reports(t);
	ck_assert_msg(WIFEXITED(t->status) && WEXITSTATUS(t->status) == 0,
	    "[%s] exit status 0x%x after \"%s\":\n%s", t->tag, t->status, line,
	    cli_dump(t));
}

/* Checked teardown: kill and reap whatever a test left running. */
static void
cli_cleanup(void)
{
	struct cli *t;

	while (nclis > 0) {
		t = clis[--nclis];
		if (t->pid != 0) {
			(void)kill(t->pid, SIGKILL);
			(void)waitpid(t->pid, NULL, 0);
		}
		if (t->fd != -1)
			(void)close(t->fd);
		free(t->out);
		free(t);
	}
}

/* --- the other party: the client library --------------------------------- */

struct peer {
	long long id;
	char name[PROTO_NAME_MAX + 1];
	struct chatc *c;
};

static struct chatc *peers[CLI_MAX * 2];
static int npeers;

static void
unique_name(char *buf, size_t len, const char *tag)
{
	int n;

	n = snprintf(buf, len, "%s_%ld_%d", tag, (long)getpid(), name_seq++);
	ck_assert_msg(n > 0 && (size_t)n < len, "name too long for %s", tag);
}

static long long
jnum(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	ck_assert_msg(cJSON_IsNumber(v), "\"%s\" is not a number", key);
	return (long long)v->valuedouble;
}

static const char *
jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	ck_assert_msg(cJSON_IsString(v), "\"%s\" is not a string", key);
	return v->valuestring;
}

static struct chatc *
xconnect(int inst)
{
	struct chatc *c;
	char err[256];

	c = chatc_connect("127.0.0.1", H.chatd[inst].port, REQ_MS, err,
	    sizeof(err));
	ck_assert_msg(c != NULL, "%s", err);
	ck_assert(npeers < CLI_MAX * 2);
	peers[npeers++] = c;
	return c;
}

static void
peers_close(void)
{
	while (npeers > 0)
		chatc_close(peers[--npeers]);
}

/* Register a user through the library (names unique per test). */
static void
peer_register(struct peer *p, int inst, const char *tag)
{
	struct chatc *c = xconnect(inst);
	cJSON *r;

	memset(p, 0, sizeof(*p));
	unique_name(p->name, sizeof(p->name), tag);
	r = chatc_register(c, p->name, PASSWORD, REQ_MS);
	ck_assert_msg(r != NULL && chatc_errno(r) == 0, "register %s: %s",
	    p->name, r != NULL ? chatc_errmsg(r) : chatc_error(c));
	p->id = jnum(r, "id");
	cJSON_Delete(r);
}

static void
peer_login(struct peer *p, int inst)
{
	cJSON *r;

	p->c = xconnect(inst);
	r = chatc_login(p->c, p->id, PASSWORD, REQ_MS);
	ck_assert_msg(r != NULL && chatc_errno(r) == 0, "login %s: %s",
	    p->name, r != NULL ? chatc_errmsg(r) : chatc_error(p->c));
	cJSON_Delete(r);
}

/* The next frame of msgid for p; its "msg" must be text. */
static void
peer_expect_chat(struct peer *p, int msgid, long long from,
    const char *text)
{
	cJSON *m;

	m = chatc_wait_msgid(p->c, msgid, EXPECT_MS);
	ck_assert_msg(m != NULL, "%s: no msgid %d: %s", p->name, msgid,
	    chatc_error(p->c));
	ck_assert_int_eq(jnum(m, "id"), from);
	ck_assert_str_eq(jstr(m, "msg"), text);
	cJSON_Delete(m);
}

static void
peer_ok(struct peer *p, cJSON *r, const char *what)
{
	ck_assert_msg(r != NULL && chatc_errno(r) == 0, "%s %s: %s", p->name,
	    what, r != NULL ? chatc_errmsg(r) : chatc_error(p->c));
	cJSON_Delete(r);
}

/* --- helpers on top of both ---------------------------------------------- */

/* Log the client in through the menu as id; waits for the prompt. */
static void
cli_menu_login(struct cli *t, long long id, const char *name,
    const char *password)
{
	char buf[128];

	cli_expect(t, "choice: ", EXPECT_MS);
	cli_line(t, "1");
	cli_expect(t, "userid: ", EXPECT_MS);
	(void)snprintf(buf, sizeof(buf), "%lld", id);
	cli_line(t, buf);
	cli_expect(t, "userpassword: ", EXPECT_MS);
	cli_line(t, password);
	(void)snprintf(buf, sizeof(buf), "logged in as %s [%lld]", name, id);
	cli_expect(t, buf, EXPECT_MS);
	(void)snprintf(buf, sizeof(buf), "%s> ", name);
	cli_expect(t, buf, EXPECT_MS);
}

/* A client started logged in as p (-u, password from CHAT_PASSWORD). */
static struct cli *
cli_as(const char *tag, int inst, const struct peer *p)
{
	char id[32], buf[128];
	struct cli *t;

	(void)snprintf(id, sizeof(id), "%lld", p->id);
	t = cli_start(tag, inst, PASSWORD, "-u", id, (char *)NULL);
	(void)snprintf(buf, sizeof(buf), "logged in as %s [%lld]", p->name,
	    p->id);
	cli_expect(t, buf, EXPECT_MS);
	(void)snprintf(buf, sizeof(buf), "%s> ", p->name);
	cli_expect(t, buf, EXPECT_MS);
	return t;
}

/* --- tests: the command parser (no servers) ------------------------------ */

static void
parse_ok(const char *line, enum chat_cmd_kind kind, long long id,
    const char *text, const char *text2)
{
	struct chat_cmd cmd;
	char buf[256], err[256];

	(void)snprintf(buf, sizeof(buf), "%s", line);
	ck_assert_msg(chat_cmd_parse(buf, &cmd, err, sizeof(err)) == 0,
	    "\"%s\" refused: %s", line, err);
	ck_assert_msg(cmd.kind == kind, "\"%s\": kind %d, not %d", line,
	    cmd.kind, kind);
	ck_assert_msg(cmd.id == id, "\"%s\": id %lld, not %lld", line, cmd.id,
	    id);
	ck_assert_str_eq(cmd.text, text);
	ck_assert_str_eq(cmd.text2, text2);
}

static void
parse_bad(const char *line, const char *why)
{
	struct chat_cmd cmd;
	char buf[256], err[256];

	(void)snprintf(buf, sizeof(buf), "%s", line);
	ck_assert_msg(chat_cmd_parse(buf, &cmd, err, sizeof(err)) == -1,
	    "\"%s\" accepted", line);
	ck_assert_msg(strstr(err, why) != NULL, "\"%s\": error \"%s\" does "
	    "not say \"%s\"", line, err, why);
}

START_TEST(test_parse)
{
	const char *usage, *what;
	size_t i;

	parse_ok("chat:2:hello", CHAT_CMD_CHAT, 2, "hello", "");
	parse_ok("chat:2:a:b: c ", CHAT_CMD_CHAT, 2, "a:b: c ", "");
	parse_ok(" chat : 12 :你好\r\n", CHAT_CMD_CHAT, 12, "你好", "");
	parse_ok("groupchat:7:hi all", CHAT_CMD_GROUPCHAT, 7, "hi all", "");
	parse_ok("addfriend:3", CHAT_CMD_ADDFRIEND, 3, "", "");
	parse_ok("delfriend: 4294967294 ", CHAT_CMD_DELFRIEND, 4294967294LL,
	    "", "");
	parse_ok("creategroup:devs:the: developers", CHAT_CMD_CREATEGROUP, 0,
	    "devs", "the: developers");
	parse_ok("creategroup: devs ", CHAT_CMD_CREATEGROUP, 0, "devs", "");
	parse_ok("creategroup:devs:", CHAT_CMD_CREATEGROUP, 0, "devs", "");
	parse_ok("addgroup:1", CHAT_CMD_ADDGROUP, 1, "", "");
	parse_ok("quitgroup:1", CHAT_CMD_QUITGROUP, 1, "", "");
	parse_ok("members:9", CHAT_CMD_MEMBERS, 9, "", "");
	parse_ok("friends", CHAT_CMD_FRIENDS, 0, "", "");
	parse_ok("groups ", CHAT_CMD_GROUPS, 0, "", "");
	parse_ok("loginout", CHAT_CMD_LOGINOUT, 0, "", "");
	parse_ok("loginout:", CHAT_CMD_LOGINOUT, 0, "", "");
	parse_ok("reconnect", CHAT_CMD_RECONNECT, 0, "", "");
	parse_ok("help", CHAT_CMD_HELP, 0, "", "");
	parse_ok("quit", CHAT_CMD_QUIT, 0, "", "");
	parse_ok("", CHAT_CMD_EMPTY, 0, "", "");
	parse_ok("   ", CHAT_CMD_EMPTY, 0, "", "");

	parse_bad("chat:2", "usage: chat:friendid:message");
	parse_bad("chat:2:", "empty message");
	parse_bad("chat:x:hi", "positive number");
	parse_bad("chat:-2:hi", "positive number");
	parse_bad("chat:0:hi", "positive number");
	parse_bad("chat:4294967295:hi", "positive number");
	parse_bad("chat:99999999999999999999:hi", "positive number");
	parse_bad("addfriend", "missing id");
	parse_bad("addfriend:", "positive number");
	parse_bad("addfriend:1x", "positive number");
	parse_bad("members:abc", "usage: members:groupid");
	parse_bad("creategroup", "missing group name");
	parse_bad("creategroup: :desc", "empty group name");
	parse_bad("friends:1", "no argument expected");
	parse_bad("Chat:1:x", "unknown command");
	parse_bad(":x", "unknown command");
	parse_bad("hello world", "type help");

	/* Every command has a help row. */
	for (i = 0; chat_cmd_help(i, &usage, &what) == 0; i++)
		ck_assert(*usage != '\0' && *what != '\0');
	ck_assert_int_eq(i, 14);
}
END_TEST

/* --- tests: interactive sessions ----------------------------------------- */

START_TEST(test_menu_register_login)
{
	char name[PROTO_NAME_MAX + 1], buf[256], *end;
	const char *p;
	struct cli *t;
	long long id;
	size_t at;

	unique_name(name, sizeof(name), "menu");
	t = cli_start("menu", MAIN_INST, NULL, (char *)NULL);
	cli_expect(t, "1. login", EXPECT_MS);
	cli_expect(t, "2. register", EXPECT_MS);
	cli_expect(t, "3. quit", EXPECT_MS);
	cli_expect(t, "choice: ", EXPECT_MS);
	cli_line(t, "2");
	cli_expect(t, "username: ", EXPECT_MS);
	cli_line(t, name);
	cli_expect(t, "userpassword: ", EXPECT_MS);
	cli_line(t, PASSWORD);
	cli_expect(t, "again: ", EXPECT_MS);
	cli_line(t, PASSWORD);
	(void)snprintf(buf, sizeof(buf), "registered %s: your id is ", name);
	at = cli_expect(t, buf, EXPECT_MS);
	cli_expect(t, "; log in with it", EXPECT_MS);
	p = t->out + at + strlen(buf);
	id = strtoll(p, &end, 10);
	ck_assert_msg(id > 0 && end != p, "no id in: %s", cli_dump(t));

	/* Registering the same name again: a readable error. */
	cli_expect(t, "choice: ", EXPECT_MS);
	cli_line(t, "register");
	cli_expect(t, "username: ", EXPECT_MS);
	cli_line(t, name);
	cli_expect(t, "userpassword: ", EXPECT_MS);
	cli_line(t, PASSWORD);
	cli_expect(t, "again: ", EXPECT_MS);
	cli_line(t, PASSWORD);
	cli_expect(t, "error: register: name taken", EXPECT_MS);

	/* A wrong password, then the right one. */
	cli_expect(t, "choice: ", EXPECT_MS);
	cli_line(t, "1");
	cli_expect(t, "userid: ", EXPECT_MS);
	(void)snprintf(buf, sizeof(buf), "%lld", id);
	cli_line(t, buf);
	cli_expect(t, "userpassword: ", EXPECT_MS);
	cli_line(t, "not-the-password");
	(void)snprintf(buf, sizeof(buf), "error: login as %lld: wrong id or "
	    "password", id);
	cli_expect(t, buf, EXPECT_MS);
	at = t->len;
	cli_menu_login(t, id, name, PASSWORD);
	t->mark = at;
	cli_expect(t, "friends: none yet", 0);
	cli_expect(t, "groups: none yet", 0);
	cli_expect(t, "type help for the commands", 0);
	(void)snprintf(buf, sizeof(buf), "%s> ", name);
	cli_expect(t, buf, 0);

	/* Passwords are never echoed. */
	if (strstr(t->out, PASSWORD) != NULL ||
	    strstr(t->out, "not-the-password") != NULL) {
		t->mark = 0;
		ck_abort_msg("a password was echoed:\n%s", cli_dump(t));
	}

	cli_line(t, "help");
	cli_expect(t, "chat:friendid:message", EXPECT_MS);
	cli_expect(t, "creategroup:name:desc", EXPECT_MS);
	cli_expect(t, "members:groupid", EXPECT_MS);
	cli_expect(t, "quit", EXPECT_MS);

	/* loginout goes back to the menu; 3 quits. */
	cli_line(t, "loginout");
	cli_expect(t, "logged out", EXPECT_MS);
	cli_expect(t, "choice: ", EXPECT_MS);
	cli_finish(t, "3");
}
END_TEST

START_TEST(test_chat_with_library_peer)
{
	struct peer a, b;
	struct cli *t;
	char buf[512];

	peer_register(&a, MAIN_INST, "cliA");
	peer_register(&b, MAIN_INST, "libB");
	peer_login(&b, MAIN_INST);
	t = cli_as("A", MAIN_INST, &a);

	/* CLI -> library, ASCII and Chinese, colons kept. */
	(void)snprintf(buf, sizeof(buf), "chat:%lld:hello: from the cli",
	    b.id);
	cli_line(t, buf);
	peer_expect_chat(&b, MSG_ONE_CHAT, a.id, "hello: from the cli");
	(void)snprintf(buf, sizeof(buf), "chat:%lld:你好，世界！", b.id);
	cli_line(t, buf);
	peer_expect_chat(&b, MSG_ONE_CHAT, a.id, "你好，世界！");

	/* Library -> CLI. */
	peer_ok(&b, chatc_one_chat(b.c, a.id, "中文回复 and back", REQ_MS),
	    "one_chat");
	(void)snprintf(buf, sizeof(buf), "%s [%lld]: 中文回复 and back",
	    b.name, b.id);
	cli_expect(t, buf, EXPECT_MS);

	/* A control sequence in a message is shown harmlessly. */
	peer_ok(&b, chatc_one_chat(b.c, a.id, "x\033[2Jy\tz\nnext", REQ_MS),
	    "one_chat");
	(void)snprintf(buf, sizeof(buf), "%s [%lld]: x?[2Jy z\r\n    next",
	    b.name, b.id);
	cli_expect(t, buf, EXPECT_MS);

	/* The peer goes away: the message is stored, and the CLI says so. */
	peer_ok(&b, chatc_logout(b.c, REQ_MS), "logout");
	(void)snprintf(buf, sizeof(buf), "chat:%lld:for later", b.id);
	cli_line(t, buf);
	(void)snprintf(buf, sizeof(buf), "(user %lld is offline: stored for "
	    "their next login)", b.id);
	cli_expect(t, buf, EXPECT_MS);
	cli_finish(t, "quit");
}
END_TEST

START_TEST(test_two_clis_friends_presence)
{
	struct peer a, b;
	struct cli *ta, *tb;
	char buf[512];

	peer_register(&a, MAIN_INST, "twoA");
	peer_register(&b, MAIN_INST, "twoB");
	ta = cli_as("A", MAIN_INST, &a);

	/* Sent while b is away: shown in b's login banner with its time. */
	(void)snprintf(buf, sizeof(buf), "chat:%lld:while you were away",
	    b.id);
	cli_line(ta, buf);
	cli_expect(ta, "stored for their next login", EXPECT_MS);
	(void)snprintf(buf, sizeof(buf), "addfriend:%lld", b.id);
	cli_line(ta, buf);
	(void)snprintf(buf, sizeof(buf), "%s [%lld] is now your friend "
	    "(offline)", b.name, b.id);
	cli_expect(ta, buf, EXPECT_MS);

	tb = cli_as("B", MAIN_INST, &b);
	/* cli_as consumed the banner up to the prompt: look again. */
	tb->mark = 0;
	cli_expect(tb, "friends:", 0);
	(void)snprintf(buf, sizeof(buf), "  %lld  %s  online", a.id, a.name);
	cli_expect(tb, buf, 0);
	cli_expect(tb, "offline messages:", 0);
	(void)snprintf(buf, sizeof(buf), "%s [%lld]: while you were away",
	    a.name, a.id);
	cli_expect(tb, buf, 0);

	/* a sees b come online. */
	(void)snprintf(buf, sizeof(buf), "*** %s [%lld] is online", b.name,
	    b.id);
	cli_expect(ta, buf, EXPECT_MS);

	/* Live both ways, Chinese included. */
	(void)snprintf(buf, sizeof(buf), "chat:%lld:早上好 b", b.id);
	cli_line(ta, buf);
	(void)snprintf(buf, sizeof(buf), "%s [%lld]: 早上好 b", a.name,
	    a.id);
	cli_expect(tb, buf, EXPECT_MS);
	(void)snprintf(buf, sizeof(buf), "chat:%lld:晚上好 a", a.id);
	cli_line(tb, buf);
	(void)snprintf(buf, sizeof(buf), "%s [%lld]: 晚上好 a", b.name,
	    b.id);
	cli_expect(ta, buf, EXPECT_MS);

	cli_line(ta, "friends");
	(void)snprintf(buf, sizeof(buf), "  %lld  %s  online", b.id, b.name);
	cli_expect(ta, buf, EXPECT_MS);

	/* b leaves: a is told. */
	cli_finish(tb, "quit");
	(void)snprintf(buf, sizeof(buf), "*** %s [%lld] is offline", b.name,
	    b.id);
	cli_expect(ta, buf, EXPECT_MS);

	(void)snprintf(buf, sizeof(buf), "delfriend:%lld", b.id);
	cli_line(ta, buf);
	(void)snprintf(buf, sizeof(buf), "%s [%lld] is no longer your friend",
	    b.name, b.id);
	cli_expect(ta, buf, EXPECT_MS);
	cli_line(ta, "friends");
	cli_expect(ta, "friends: none yet", EXPECT_MS);
	cli_finish(ta, "quit");
}
END_TEST

START_TEST(test_group_chat)
{
	char gname[PROTO_GROUPNAME_MAX + 1], buf[512], *end;
	struct peer a, b;
	struct cli *t;
	long long gid;
	size_t at;

	peer_register(&a, MAIN_INST, "grpA");
	peer_register(&b, MAIN_INST, "grpB");
	unique_name(gname, sizeof(gname), "g");
	t = cli_as("A", MAIN_INST, &a);

	(void)snprintf(buf, sizeof(buf), "creategroup:%s:群描述: with colon",
	    gname);
	cli_line(t, buf);
	at = cli_expect(t, "created group ", EXPECT_MS);
	gid = strtoll(t->out + at + strlen("created group "), &end, 10);
	ck_assert_msg(gid > 0, "no group id in: %s", cli_dump(t));
	(void)snprintf(buf, sizeof(buf), " %s; others join it with "
	    "addgroup:%lld", gname, gid);
	cli_expect(t, buf, EXPECT_MS);

	peer_login(&b, MAIN_INST);
	peer_ok(&b, chatc_add_group(b.c, gid, REQ_MS), "add_group");

	(void)snprintf(buf, sizeof(buf), "members:%lld", gid);
	cli_line(t, buf);
	(void)snprintf(buf, sizeof(buf), "members of group %lld %s:", gid,
	    gname);
	cli_expect(t, buf, EXPECT_MS);
	(void)snprintf(buf, sizeof(buf), "  %lld  %s  creator  online", a.id,
	    a.name);
	cli_expect(t, buf, EXPECT_MS);
	(void)snprintf(buf, sizeof(buf), "  %lld  %s  normal  online", b.id,
	    b.name);
	cli_expect(t, buf, EXPECT_MS);

	cli_line(t, "groups");
	(void)snprintf(buf, sizeof(buf), "  %lld  %s  creator  群描述: with "
	    "colon", gid, gname);
	cli_expect(t, buf, EXPECT_MS);

	(void)snprintf(buf, sizeof(buf), "groupchat:%lld:大家好 all", gid);
	cli_line(t, buf);
	peer_expect_chat(&b, MSG_GROUP_CHAT, a.id, "大家好 all");

	peer_ok(&b, chatc_group_chat(b.c, gid, "reply to the group", REQ_MS),
	    "group_chat");
	(void)snprintf(buf, sizeof(buf), "[group %lld %s] %s [%lld]: reply to "
	    "the group", gid, gname, b.name, b.id);
	cli_expect(t, buf, EXPECT_MS);

	/* b offline: stored for it. */
	peer_ok(&b, chatc_logout(b.c, REQ_MS), "logout");
	(void)snprintf(buf, sizeof(buf), "groupchat:%lld:later", gid);
	cli_line(t, buf);
	(void)snprintf(buf, sizeof(buf), "(stored for the members of group "
	    "%lld who are offline)", gid);
	cli_expect(t, buf, EXPECT_MS);

	(void)snprintf(buf, sizeof(buf), "quitgroup:%lld", gid);
	cli_line(t, buf);
	(void)snprintf(buf, sizeof(buf), "left group %lld %s", gid, gname);
	cli_expect(t, buf, EXPECT_MS);
	(void)snprintf(buf, sizeof(buf), "groupchat:%lld:not any more", gid);
	cli_line(t, buf);
	(void)snprintf(buf, sizeof(buf), "error: chat to group %lld: not a "
	    "member", gid);
	cli_expect(t, buf, EXPECT_MS);
	(void)snprintf(buf, sizeof(buf), "addgroup:%lld", gid);
	cli_line(t, buf);
	(void)snprintf(buf, sizeof(buf), "joined group %lld %s", gid, gname);
	cli_expect(t, buf, EXPECT_MS);
	cli_finish(t, "quit");
}
END_TEST

/*
 * A message arrives while a line is half typed: the message is printed
 * above, the prompt and the partial line are drawn again after it, and
 * the line, completed, is sent exactly as typed.
 */
START_TEST(test_incoming_while_typing)
{
	char buf[512], typed[256], prompt[PROTO_NAME_MAX + 4], longtext[160];
	struct peer a, b;
	struct cli *t;
	size_t at, w;
	int up;

	peer_register(&a, MAIN_INST, "typA");
	peer_register(&b, MAIN_INST, "typB");
	peer_login(&b, MAIN_INST);
	t = cli_as("A", MAIN_INST, &a);
	(void)snprintf(prompt, sizeof(prompt), "%s> ", a.name);

	(void)snprintf(typed, sizeof(typed), "chat:%lld:半句 half a line",
	    b.id);
	cli_send(t, typed);
	cli_expect(t, "半句 half a line", EXPECT_MS);	/* echoed */

	peer_ok(&b, chatc_one_chat(b.c, a.id, "interrupting 你", REQ_MS),
	    "one_chat");
	/* Erased (the line fits on one row), the message, then prompt and
	 * the partial line again. */
	at = cli_expect(t, "\r\033[J", EXPECT_MS);
	(void)snprintf(buf, sizeof(buf), "%s [%lld]: interrupting 你\r\n",
	    b.name, b.id);
	cli_expect(t, buf, EXPECT_MS);
	/* Nothing but the time between the erasing and the message. */
	ck_assert_msg(strstr(t->out + at + 4, buf) - (t->out + at + 4) ==
	    (ptrdiff_t)strlen("2024-05-01 12:00:00 "), "unexpected output "
	    "around the message:\n%s", t->out + at);
	(void)snprintf(buf, sizeof(buf), "%s%s", prompt, typed);
	cli_expect(t, buf, EXPECT_MS);

	/* Finish the line: exactly what was typed, before and after. */
	cli_line(t, " completed");
	peer_expect_chat(&b, MSG_ONE_CHAT, a.id, "半句 half a line completed");

	/* A line longer than the terminal is wide: erasing starts rows
	 * above the cursor. */
	memset(longtext, 'w', sizeof(longtext) - 1);
	longtext[sizeof(longtext) - 1] = '\0';
	(void)snprintf(typed, sizeof(typed), "chat:%lld:%s", b.id, longtext);
	cli_expect(t, prompt, EXPECT_MS);
	cli_send(t, typed);
	/* Let the whole line be echoed before the message comes (libedit
	 * may break the echo where the line wraps). */
	cli_expect(t, "wwwwwwwwww", EXPECT_MS);
	cli_expect_not(t, "\001", 300);
	peer_ok(&b, chatc_one_chat(b.c, a.id, "over a long line", REQ_MS),
	    "one_chat");
	w = strlen(prompt) + strlen(typed);
	up = (int)(w / COLS);
	ck_assert(up >= 1);
	(void)snprintf(buf, sizeof(buf), "\r\033[%dA\033[J", up);
	cli_expect(t, buf, EXPECT_MS);
	cli_expect(t, "over a long line\r\n", EXPECT_MS);
	cli_expect(t, prompt, EXPECT_MS);
	cli_expect(t, "wwwwwwwwww", EXPECT_MS);
	cli_line(t, "");
	peer_expect_chat(&b, MSG_ONE_CHAT, a.id, longtext);

	/* ^C abandons a line: nothing is sent, and the next line is
	 * fresh.  (Typed only once the prompt is back: while a command
	 * runs, the terminal's own line discipline has the keyboard, and
	 * its ^C would flush what was typed ahead.) */
	cli_expect(t, prompt, EXPECT_MS);
	cli_send(t, "chat:1:never sent");
	cli_expect(t, "never sent", EXPECT_MS);
	cli_send(t, "\003");
	cli_expect(t, "never sent^C", EXPECT_MS);
	cli_expect(t, prompt, EXPECT_MS);
	(void)snprintf(buf, sizeof(buf), "chat:%lld:after ^C", b.id);
	cli_line(t, buf);
	peer_expect_chat(&b, MSG_ONE_CHAT, a.id, "after ^C");
	cli_finish(t, "quit");
}
END_TEST

START_TEST(test_errors_readable)
{
	struct peer a;
	struct cli *t;
	char buf[256];

	peer_register(&a, MAIN_INST, "errA");
	t = cli_as("A", MAIN_INST, &a);

	cli_line(t, "chat:4294967294:anyone?");
	cli_expect(t, "error: chat to 4294967294: no such user", EXPECT_MS);
	cli_line(t, "addgroup:4294967294");
	cli_expect(t, "error: addgroup 4294967294: no such group", EXPECT_MS);
	cli_line(t, "members:4294967294");
	cli_expect(t, "error: members of group 4294967294: no such group",
	    EXPECT_MS);
	(void)snprintf(buf, sizeof(buf), "addfriend:%lld", a.id);
	cli_line(t, buf);
	(void)snprintf(buf, sizeof(buf), "error: addfriend %lld: bad request",
	    a.id);
	cli_expect(t, buf, EXPECT_MS);
	cli_line(t, "members:abc");
	cli_expect(t, "error: the id must be a positive number; usage: "
	    "members:groupid", EXPECT_MS);
	cli_line(t, "chat:2");
	cli_expect(t, "error: missing id or message; usage: "
	    "chat:friendid:message", EXPECT_MS);
	cli_line(t, "hello");
	cli_expect(t, "error: unknown command \"hello\"; type help for the "
	    "list", EXPECT_MS);
	cli_line(t, "reconnect");
	cli_expect(t, "already connected", EXPECT_MS);
	/* The session still works after all that. */
	cli_line(t, "groups");
	cli_expect(t, "groups: none yet", EXPECT_MS);
	cli_finish(t, "quit");

	/* A server that is not there: a clear message and exit 3. */
	t = cli_start("nohost", MAIN_INST, NULL, "-p", "1", (char *)NULL);
	cli_expect(t, "error: cannot connect: connect 127.0.0.1:1: ",
	    EXPECT_MS);
	ck_assert(cli_wait(t, EXIT_MS) == 0);
	ck_assert_msg(WIFEXITED(t->status) && WEXITSTATUS(t->status) == 3,
	    "exit status 0x%x", t->status);
}
END_TEST

/*
 * On a chatd with idle_timeout = 2 s: without keepalive the session is
 * dropped, the client says so and reconnects on request; with -k 1 the
 * PINGs keep it.
 */
START_TEST(test_reconnect_and_keepalive)
{
	char buf[256], port[16];
	struct peer a, b;
	struct cli *ta, *tb;

	peer_register(&a, IDLE_INST, "idleA");
	peer_register(&b, IDLE_INST, "idleB");
	(void)snprintf(port, sizeof(port), "%d", H.chatd[IDLE_INST].port);
	(void)snprintf(buf, sizeof(buf), "%lld", a.id);
	ta = cli_start("A", IDLE_INST, PASSWORD, "-u", buf, "-k", "0",
	    (char *)NULL);
	(void)snprintf(buf, sizeof(buf), "%lld", b.id);
	tb = cli_start("B", IDLE_INST, PASSWORD, "-u", buf, "-k", "1",
	    (char *)NULL);
	(void)snprintf(buf, sizeof(buf), "%s> ", a.name);
	cli_expect(ta, buf, EXPECT_MS);
	(void)snprintf(buf, sizeof(buf), "%s> ", b.name);
	cli_expect(tb, buf, EXPECT_MS);

	/* Half a line typed when the connection goes. */
	cli_send(ta, "friends");
	(void)snprintf(buf, sizeof(buf), "*** connection to 127.0.0.1:%s "
	    "lost: connection closed by server", port);
	cli_expect(ta, buf, LOST_MS);
	cli_expect(ta, "*** type reconnect to log in again, or quit",
	    EXPECT_MS);
	(void)snprintf(buf, sizeof(buf), "(disconnected) %s> friends",
	    a.name);
	cli_expect(ta, buf, EXPECT_MS);
	cli_line(ta, "");
	cli_expect(ta, "error: not connected; type reconnect, or quit",
	    EXPECT_MS);

	/* Meanwhile b, who PINGs every second, is still there. */
	cli_expect_not(tb, "lost", 1000);
	(void)snprintf(buf, sizeof(buf), "chat:%lld:while you were gone",
	    a.id);
	cli_line(tb, buf);
	cli_expect(tb, "stored for their next login", EXPECT_MS);

	cli_line(ta, "reconnect");
	(void)snprintf(buf, sizeof(buf), "connecting to 127.0.0.1:%s...",
	    port);
	cli_expect(ta, buf, EXPECT_MS);
	(void)snprintf(buf, sizeof(buf), "logged in as %s [%lld]", a.name,
	    a.id);
	cli_expect(ta, buf, EXPECT_MS);
	(void)snprintf(buf, sizeof(buf), "%s [%lld]: while you were gone",
	    b.name, b.id);
	cli_expect(ta, buf, EXPECT_MS);
	(void)snprintf(buf, sizeof(buf), "%s> ", a.name);
	cli_expect(ta, buf, EXPECT_MS);
	(void)snprintf(buf, sizeof(buf), "chat:%lld:back again", b.id);
	cli_line(ta, buf);
	(void)snprintf(buf, sizeof(buf), "%s [%lld]: back again", a.name,
	    a.id);
	cli_expect(tb, buf, EXPECT_MS);
	cli_finish(ta, "quit");
	cli_expect_not(tb, "lost", 0);
	cli_finish(tb, "quit");
}
END_TEST

/* tests/cli_oneshot.sh, against the main chatd. */
/* Occurrences of needle in t's output. */
static int
cli_count(const struct cli *t, const char *needle)
{
	const char *p = t->out;
	int n = 0;

	while (p != NULL && (p = strstr(p, needle)) != NULL) {
		n++;
		p += strlen(needle);
	}
	return n;
}

/*
 * The server delivers at least once: a stored message whose removal
 * failed, or whose connection was lost before it was read, comes again.
 * The client shows a repeat (the same sender and "tus") once.  The test
 * stores each of two messages twice, by SQL, as such a repeat would be.
 */
START_TEST(test_repeat_shown_once)
{
	char sql[256], out[32], buf[128];
	struct peer a, b;
	struct cli *t;

	peer_register(&a, MAIN_INST, "repA");
	peer_register(&b, MAIN_INST, "repB");
	peer_login(&a, MAIN_INST);
	peer_ok(&a, chatc_one_chat(a.c, b.id, "repeat one", REQ_MS),
	    "one_chat");
	peer_ok(&a, chatc_one_chat(a.c, b.id, "repeat two", REQ_MS),
	    "one_chat");
	(void)snprintf(sql, sizeof(sql), "INSERT INTO offlinemessages (userid, "
	    "ord, message) SELECT userid, ord, message FROM offlinemessages "
	    "WHERE userid = %lld", b.id);
	ck_assert(harness_sql(&H, sql) == 0);
	(void)snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM "
	    "offlinemessages WHERE userid = %lld", b.id);
	ck_assert(harness_sql_value(&H, sql, out, sizeof(out)) == 0);
	ck_assert_str_eq(out, "4");

	t = cli_as("B", MAIN_INST, &b);
	/* A live message after the pulled ones: everything before it is
	 * on the screen. */
	peer_ok(&a, chatc_one_chat(a.c, b.id, "repeat live", REQ_MS),
	    "one_chat");
	(void)snprintf(buf, sizeof(buf), "%s [%lld]: repeat live", a.name,
	    a.id);
	cli_expect(t, buf, EXPECT_MS);
	ck_assert_msg(cli_count(t, "]: repeat one") == 1 &&
	    cli_count(t, "]: repeat two") == 1, "[%s] each message stored "
	    "twice must be shown once:\n%s", t->tag, cli_dump(t));
	cli_finish(t, "quit");
}
END_TEST

START_TEST(test_oneshot_script)
{
	char cmd[PATH_MAX * 2 + 256];
	int st;

	ck_assert_msg(harness_ok, "the servers did not start (see stderr)");
	(void)snprintf(cmd, sizeof(cmd), "CHAT_BIN='%s/chat' "
	    "CHAT_HOST=127.0.0.1 CHAT_PORT=%d timeout %d "
	    "sh '%s/tests/cli_oneshot.sh' 1>&2",
	    TOP_BUILDDIR, H.chatd[MAIN_INST].port, SCRIPT_S, TOP_SRCDIR);
	st = system(cmd);
	ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "tests/cli_oneshot.sh failed (status 0x%x); its output is above",
	    st);
}
END_TEST

/* --- runner -------------------------------------------------------------- */

static void
checked_teardown(void)
{
	cli_cleanup();
	peers_close();
}

static Suite *
cli_suite(void)
{
	const TTest *all[] = {
		test_menu_register_login,
		test_chat_with_library_peer,
		test_two_clis_friends_presence,
		test_group_chat,
		test_incoming_while_typing,
		test_errors_readable,
		test_reconnect_and_keepalive,
		test_repeat_shown_once,
		test_oneshot_script,
	};
	Suite *s = suite_create("it_cli");
	TCase *tu = tcase_create("parser");

	if (harness_wanted("IT_CLI_ONLY", "test_parse")) {
		tcase_add_test(tu, test_parse);
		suite_add_tcase(s, tu);
	}
	(void)harness_add_tcase(s, "IT_CLI_ONLY", "terminal", setup, teardown,
	    checked_teardown, TEST_TIMEOUT_S, all,
	    sizeof(all) / sizeof(all[0]));
	return s;
}

int
main(void)
{
	return harness_run_suite(cli_suite(), &H, harness_tried);
}
