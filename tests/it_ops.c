/*
 * it_ops.c - black-box tests of what an operator uses: chatctl(8) against
 * a running chatd (tests/harness.c starts it with a private mariadbd), the
 * man pages under mandoc -Tlint, etc/chatd.service under systemd-analyze
 * verify, and "make install" / "make uninstall" of this build tree into a
 * DESTDIR.
 *
 * chatctl is run as a program, exactly as an operator runs it, and judged
 * by its exit status and what it prints: status, stats and who (as tables
 * and with -j), kick (the kicked client sees EOF and may log in again),
 * reload (nothing changed: the same workers, a client logged in before
 * still served, and chatctl returns once every worker runs the new
 * generation, also when new workers are needed, and not while a worker
 * is stopped; a file that does not load is chatctl's error and changes
 * nothing; a key that needs a restart is named and keeps its value),
 * stop (chatd exits 0),
 * the exit status 3 when nothing answers on the socket, the refusal of
 * kick, reload and stop to a caller who is neither root nor chatd's user
 * (run as "nobody", only when the suite runs as root), and db status,
 * migrate and init against the harness's database.
 *
 * The servers are started once, by an unchecked fixture in the runner, and
 * shared by the test cases that need them; each test is forked.  The stop
 * test runs on a chatd instance of its own, and reload comes last.  Every
 * wait is bounded.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "chatc.h"
#include "harness.h"

#define NWORKERS	2
#define NODE_ID		"ops0"
#define EXTRA_CONF	"[server]\nworkers = 2\nnode_id = " NODE_ID "\n"
#define PW		"it-ops-Pa55"
#define CHATCTL		TOP_BUILDDIR "/chatctl"
#define MIGRATIONS	TOP_SRCDIR "/sql/migrations"

/* Bounds, in milliseconds unless named otherwise. */
#define T_REPLY		10000	/* a reply from chatd (hashing, MySQL) */
#define T_EOF		5000	/* a kicked connection shows EOF */
#define T_EFFECT	10000	/* polling for an asynchronous effect */
#define T_RELOAD	20000	/* a reload completes */
#define T_STOP		20000	/* chatd exits after "chatctl stop" */
#define T_RUN		30000	/* one chatctl, mandoc or systemd-analyze */
#define T_MAKE		300000	/* one make install / uninstall */
#define POLL_MS		50
#define TCASE_TIMEOUT	120	/* s, per test */
#define TCASE_TIMEOUT_INSTALL 600

/* Shared with the forked tests by inheritance; set only by the fixture. */
static struct harness H;
static char sock0[PATH_MAX];	/* chatd-0's control socket */
static int servers_state;	/* 0 not started, 1 up, -1 failed */

/* --- fixture ------------------------------------------------------------ */

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
	ck_assert_msg(harness_start_chatd(&H, 0, EXTRA_CONF) == 0,
	    "chatd-0 did not start");
	harness_control_path(&H, 0, sock0, sizeof(sock0));
	servers_state = 1;
}

static void
servers_teardown(void)
{
	/* main stops them after the last test case */
}

/* --- running programs ---------------------------------------------------- */

/* snprintf that must not truncate. */
static void __attribute__((format(printf, 3, 4)))
xfmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	ck_assert_msg(n >= 0 && (size_t)n < len, "longer than %zu bytes: %s",
	    len, buf);
}

struct run {
	int status;		/* exit status, or -1 (signal, timeout) */
	char *out;		/* stdout and stderr, NUL-terminated */
	char *err;
};

struct run_opts {
	long timeout_ms;
	int as_nobody;		/* drop to nobody before exec */
	const char *manpath;	/* MANPATH for the program, or NULL */
};

static char *
slurp(const char *path)
{
	struct stat st;
	char *buf;
	ssize_t n;
	size_t len = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return strdup("");
	if (fstat(fd, &st) == -1)
		st.st_size = 0;
	buf = malloc((size_t)st.st_size + 1);
	ck_assert(buf != NULL);
	while (len < (size_t)st.st_size &&
	    (n = read(fd, buf + len, (size_t)st.st_size - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	(void)close(fd);
	return buf;
}

static void
nobody_ids(uid_t *uid, gid_t *gid)
{
	struct passwd *pw = getpwnam("nobody");

	*uid = pw != NULL ? pw->pw_uid : 65534;
	*gid = pw != NULL ? pw->pw_gid : 65534;
}

/*
 * Run argv (argv[0] looked up in PATH when it has no '/'), with stdout and
 * stderr in files of dir; bounded by opts->timeout_ms, killed past it.
 */
static void
run_argv(struct run *r, const char *dir, const struct run_opts *opts,
    char *const argv[])
{
	static unsigned seq;
	char outp[PATH_MAX], errp[PATH_MAX];
	long long deadline;
	int status, fd;
	pid_t pid, w;

	xfmt(outp, sizeof(outp), "%s/run-%ld-%u.out", dir,
	    (long)getpid(), seq);
	xfmt(errp, sizeof(errp), "%s/run-%ld-%u.err", dir,
	    (long)getpid(), seq++);
	pid = fork();
	ck_assert_msg(pid != -1, "fork: %s", strerror(errno));
	if (pid == 0) {
		if ((fd = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644)) ==
		    -1 || dup2(fd, 1) == -1)
			_exit(126);
		if ((fd = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644)) ==
		    -1 || dup2(fd, 2) == -1)
			_exit(126);
		fd = open("/dev/null", O_RDONLY);
		if (fd != -1)
			(void)dup2(fd, 0);
		/* A make started here is not part of the runner's make. */
		(void)unsetenv("MAKEFLAGS");
		(void)unsetenv("MFLAGS");
		(void)unsetenv("MAKELEVEL");
		(void)unsetenv("CHATCTL_DB_ADMIN_PASSWORD");
		if (opts->manpath != NULL)
			(void)setenv("MANPATH", opts->manpath, 1);
		if (opts->as_nobody) {
			uid_t uid;
			gid_t gid;

			nobody_ids(&uid, &gid);
			if (setgroups(0, NULL) == -1 || setgid(gid) == -1 ||
			    setuid(uid) == -1) {
				fprintf(stderr, "cannot become nobody: %s\n",
				    strerror(errno));
				_exit(125);
			}
		}
		if (strchr(argv[0], '/') != NULL)
			(void)execv(argv[0], argv);
		else
			(void)execvp(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	deadline = harness_now_ms() + opts->timeout_ms;
	for (;;) {
		w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		ck_assert_msg(w == 0 || errno == EINTR, "waitpid: %s",
		    strerror(errno));
		if (harness_now_ms() >= deadline) {
			(void)kill(pid, SIGKILL);
			(void)waitpid(pid, &status, 0);
			status = -1;
			break;
		}
		harness_sleep_ms(10);
	}
	r->status = status != -1 && WIFEXITED(status) ?
	    WEXITSTATUS(status) : -1;
	r->out = slurp(outp);
	r->err = slurp(errp);
	(void)unlink(outp);
	(void)unlink(errp);
}

static void
run_free(struct run *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

/* Run CHATCTL with the NULL-terminated arguments after opts. */
static void
ctl_v(struct run *r, const char *prog, int as_nobody, va_list ap)
{
	struct run_opts opts = { T_RUN, as_nobody, NULL };
	char *argv[32];
	int n = 0;

	argv[n++] = (char *)prog;
	while ((argv[n] = va_arg(ap, char *)) != NULL) {
		n++;
		ck_assert(n < 31);
	}
	run_argv(r, H.dir, &opts, argv);
}

static void __attribute__((sentinel))
ctl(struct run *r, ...)
{
	va_list ap;

	va_start(ap, r);
	ctl_v(r, CHATCTL, 0, ap);
	va_end(ap);
}

/* The same as nobody, with a copy of chatctl nobody can execute. */
static void __attribute__((sentinel))
ctl_nobody(struct run *r, const char *prog, ...)
{
	va_list ap;

	va_start(ap, prog);
	ctl_v(r, prog, 1, ap);
	va_end(ap);
}

/* Assert the exit status, showing what the program printed if not. */
#define ASSERT_STATUS(r, want, what) \
	ck_assert_msg((r)->status == (want), "%s: exit %d, want %d\n" \
	    "stdout: %s\nstderr: %s", (what), (r)->status, (want), (r)->out, \
	    (r)->err)

/* chatctl -j -s sock0 <cmd...> as parsed JSON (must exit 0). */
static cJSON * __attribute__((sentinel))
ctl_json(const char *first, ...)
{
	struct run r;
	cJSON *o;
	char *argv[16];
	struct run_opts opts = { T_RUN, 0, NULL };
	va_list ap;
	int n = 0;

	argv[n++] = (char *)CHATCTL;
	argv[n++] = (char *)"-j";
	argv[n++] = (char *)"-s";
	argv[n++] = sock0;
	argv[n++] = (char *)first;
	va_start(ap, first);
	while ((argv[n] = va_arg(ap, char *)) != NULL) {
		n++;
		ck_assert(n < 15);
	}
	va_end(ap);
	run_argv(&r, H.dir, &opts, argv);
	ASSERT_STATUS(&r, 0, first);
	o = cJSON_Parse(r.out);
	ck_assert_msg(cJSON_IsObject(o), "chatctl -j %s: not a JSON object: "
	    "%s", first, r.out);
	run_free(&r);
	return o;
}

static double
jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	char *s;

	if (!cJSON_IsNumber(v)) {
		s = cJSON_PrintUnformatted(o);
		ck_abort_msg("\"%s\" is not a number in %s", k, s);
	}
	return v->valuedouble;
}

static const char *
jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	char *s;

	if (!cJSON_IsString(v)) {
		s = cJSON_PrintUnformatted(o);
		ck_abort_msg("\"%s\" is not a string in %s", k, s);
	}
	return v->valuestring;
}

/* The sum of counter k over every worker of a stats reply. */
static double
stats_total(const cJSON *st, const char *k)
{
	const cJSON *w;
	double sum = 0;

	cJSON_ArrayForEach(w, cJSON_GetObjectItem(st, "workers"))
		sum += jnum(w, k);
	return sum;
}

/* The worker slot holding uid according to "chatctl -j who", or -1. */
static int
who_slot(long long uid)
{
	cJSON *o = ctl_json("who", NULL), *u;
	int slot = -1;

	cJSON_ArrayForEach(u, cJSON_GetObjectItem(o, "users"))
		if ((long long)jnum(u, "id") == uid)
			slot = (int)jnum(u, "worker");
	cJSON_Delete(o);
	return slot;
}

/* --- chat clients --------------------------------------------------------- */

struct user {
	long long id;
	char name[PROTO_NAME_MAX + 1];
	struct chatc *c;	/* logged in, or NULL */
};

static struct chatc *
xconnect(int inst)
{
	struct chatc *c;
	char err[256];

	c = chatc_connect("127.0.0.1", H.chatd[inst].port, T_REPLY, err,
	    sizeof(err));
	ck_assert_msg(c != NULL, "connect to chatd-%d: %s", inst, err);
	return c;
}

static void
user_register(struct user *u, int inst, const char *tag)
{
	static unsigned counter;
	struct chatc *c = xconnect(inst);
	cJSON *r;

	memset(u, 0, sizeof(*u));
	xfmt(u->name, sizeof(u->name), "%s-%ld-%u", tag,
	    (long)getpid(), ++counter);
	r = chatc_register(c, u->name, PW, T_REPLY);
	ck_assert_msg(r != NULL, "register %s: %s", u->name, chatc_error(c));
	ck_assert_msg(chatc_errno(r) == 0, "register %s: errno %d %s",
	    u->name, chatc_errno(r), chatc_errmsg(r));
	u->id = (long long)jnum(r, "id");
	cJSON_Delete(r);
	chatc_close(c);
}

/* Log u in on a new connection to inst; the errno of LOGIN_ACK. */
static int
user_login(struct user *u, int inst)
{
	cJSON *r;
	int e;

	u->c = xconnect(inst);
	r = chatc_login(u->c, u->id, PW, T_REPLY);
	ck_assert_msg(r != NULL, "login %lld: %s", u->id, chatc_error(u->c));
	e = chatc_errno(r);
	cJSON_Delete(r);
	if (e != 0) {
		chatc_close(u->c);
		u->c = NULL;
	}
	return e;
}

static void
user_login_ok(struct user *u, int inst)
{
	int e = user_login(u, inst);

	ck_assert_msg(e == 0, "login %lld: errno %d", u->id, e);
}

static void
ping_ok(struct chatc *c)
{
	cJSON *r = chatc_ping(c, T_REPLY);

	ck_assert_msg(r != NULL, "ping: %s", chatc_error(c));
	ck_assert_msg(chatc_errno(r) == 0, "ping: errno %d", chatc_errno(r));
	cJSON_Delete(r);
}

/* --- chatctl against chatd-0 ------------------------------------------- */

/* Lines of chatd-0's log holding needle, at syslog priority pri ("<6>"
 * info, "<7>" debug). */
static int
log_lines_at(const char *pri, const char *needle)
{
	char line[2048];
	FILE *fp;
	int n = 0;

	ck_assert_ptr_nonnull(fp = fopen(H.chatd[0].log_path, "r"));
	while (fgets(line, sizeof(line), fp) != NULL)
		n += strncmp(line, pri, strlen(pri)) == 0 &&
		    strstr(line, needle) != NULL;
	(void)fclose(fp);
	return n;
}

START_TEST(test_status)
{
	pid_t pids[NWORKERS + 2];
	char want[128];
	struct run r;
	int n, i;

	ctl(&r, "-s", sock0, "status", NULL);
	ASSERT_STATUS(&r, 0, "status");
	ck_assert_msg(strstr(r.out, "node " NODE_ID ", chatd " PACKAGE_VERSION)
	    != NULL, "status does not name the node and version: %s", r.out);
	ck_assert_msg(strstr(r.out, H.chatd[0].conf_path) != NULL,
	    "status does not name the config: %s", r.out);
	n = harness_chatd_workers(&H, 0, pids, NWORKERS + 2);
	ck_assert_int_eq(n, NWORKERS);
	for (i = 0; i < n; i++) {
		xfmt(want, sizeof(want), " %-8d running", (int)pids[i]);
		ck_assert_msg(strstr(r.out, want) != NULL, "status does not "
		    "show worker pid %d running: %s", (int)pids[i], r.out);
	}
	run_free(&r);
	/* A poll is logged at debug only, never at info. */
	ck_assert_int_eq(log_lines_at("<6>", "control: \"status\""), 0);
	ck_assert_int_ge(log_lines_at("<7>", "control: \"status\""), 1);
}
END_TEST

START_TEST(test_status_json)
{
	pid_t pids[NWORKERS + 2];
	cJSON *o, *w;
	int n, i, found;

	o = ctl_json("status", NULL);
	ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItem(o, "ok")), "not ok");
	ck_assert_int_eq((int)jnum(o, "version"), 1);
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(o,
	    "node_id")), NODE_ID);
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(o,
	    "chatd_version")), PACKAGE_VERSION);
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(o,
	    "config")), H.chatd[0].conf_path);
	ck_assert_int_eq((int)jnum(o, "pid"), (int)H.chatd[0].pid);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "workers")),
	    NWORKERS);
	n = harness_chatd_workers(&H, 0, pids, NWORKERS + 2);
	ck_assert_int_eq(n, NWORKERS);
	for (i = 0; i < n; i++) {
		found = 0;
		cJSON_ArrayForEach(w, cJSON_GetObjectItem(o, "workers"))
			if ((pid_t)jnum(w, "pid") == pids[i] &&
			    cJSON_IsTrue(cJSON_GetObjectItem(w, "running")))
				found = 1;
		ck_assert_msg(found, "worker %d not in status", (int)pids[i]);
	}
	/* Every worker runs the generation the master published. */
	ck_assert_int_ge((int)jnum(o, "config_generation"), 1);
	cJSON_ArrayForEach(w, cJSON_GetObjectItem(o, "workers"))
		ck_assert_int_eq((int)jnum(w, "config_generation"),
		    (int)jnum(o, "config_generation"));
	cJSON_Delete(o);
	/* The other read commands parse too. */
	o = ctl_json("stats", NULL);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "workers")),
	    NWORKERS);
	ck_assert(cJSON_IsObject(cJSON_GetObjectItem(cJSON_GetArrayItem(
	    cJSON_GetObjectItem(o, "workers"), 0), "errors")));
	cJSON_Delete(o);
	o = ctl_json("who", NULL);
	ck_assert(cJSON_IsArray(cJSON_GetObjectItem(o, "users")));
	cJSON_Delete(o);
}
END_TEST

START_TEST(test_who)
{
	struct user u;
	char id[32], worker[16], other[16];
	struct run r;
	int slot;

	user_register(&u, 0, "who");
	user_login_ok(&u, 0);
	slot = who_slot(u.id);
	ck_assert_msg(slot >= 0 && slot < NWORKERS, "who -j does not list "
	    "user %lld (slot %d)", u.id, slot);
	xfmt(id, sizeof(id), "%lld", u.id);
	xfmt(worker, sizeof(worker), "%d", slot);
	xfmt(other, sizeof(other), "%d", (slot + 1) % NWORKERS);

	ctl(&r, "-s", sock0, "who", NULL);
	ASSERT_STATUS(&r, 0, "who");
	ck_assert_msg(strstr(r.out, u.name) != NULL && strstr(r.out, id) !=
	    NULL, "who does not list %s (%s): %s", u.name, id, r.out);
	run_free(&r);

	ctl(&r, "-s", sock0, "who", "-w", worker, NULL);
	ASSERT_STATUS(&r, 0, "who -w");
	ck_assert_msg(strstr(r.out, u.name) != NULL, "who -w %s does not "
	    "list %s: %s", worker, u.name, r.out);
	run_free(&r);

	ctl(&r, "-s", sock0, "who", "-w", other, NULL);
	ASSERT_STATUS(&r, 0, "who -w other");
	ck_assert_msg(strstr(r.out, u.name) == NULL, "who -w %s lists %s, "
	    "who is on worker %s: %s", other, u.name, worker, r.out);
	run_free(&r);

	ctl(&r, "-s", sock0, "who", "-w", "64", NULL);
	ASSERT_STATUS(&r, 1, "who -w 64");
	ck_assert_msg(strstr(r.err, "no such worker") != NULL, "%s", r.err);
	run_free(&r);

	chatc_close(u.c);
}
END_TEST

START_TEST(test_kick)
{
	struct user u;
	char id[32];
	struct run r;
	long long deadline;
	cJSON *m;
	int e;

	user_register(&u, 0, "kick");
	user_login_ok(&u, 0);
	ping_ok(u.c);
	xfmt(id, sizeof(id), "%lld", u.id);

	ctl(&r, "-s", sock0, "kick", id, NULL);
	ASSERT_STATUS(&r, 0, "kick");
	ck_assert_msg(strstr(r.out, "kicked user") != NULL, "%s", r.out);
	run_free(&r);
	/* What changes something is logged at info. */
	ck_assert_int_ge(log_lines_at("<6>", "control: \"kick\""), 1);

	/* The kicked client sees the end of its connection. */
	m = chatc_recv(u.c, T_EOF);
	ck_assert_msg(m == NULL, "kicked client got a message instead of EOF");
	ck_assert_msg(strstr(chatc_error(u.c), "closed") != NULL,
	    "kicked client: %s, want the connection closed", chatc_error(u.c));
	chatc_close(u.c);
	u.c = NULL;

	/* Offline now, and free to log in again. */
	deadline = harness_now_ms() + T_EFFECT;
	while (who_slot(u.id) != -1 && harness_now_ms() < deadline)
		harness_sleep_ms(POLL_MS);
	ck_assert_msg(who_slot(u.id) == -1, "user %lld still listed by who "
	    "after kick", u.id);
	while ((e = user_login(&u, 0)) == CERR_ONLINE &&
	    harness_now_ms() < deadline)
		harness_sleep_ms(POLL_MS);
	ck_assert_msg(e == 0, "login after kick: errno %d", e);
	ping_ok(u.c);
	ck_assert_msg(who_slot(u.id) >= 0, "who does not list %lld after "
	    "the new login", u.id);
	chatc_close(u.c);

	/* A user who is not online cannot be kicked; nonsense is usage. */
	ctl(&r, "-s", sock0, "kick", "4000000000", NULL);
	ASSERT_STATUS(&r, 1, "kick of an offline user");
	ck_assert_msg(strstr(r.err, "not online") != NULL, "%s", r.err);
	run_free(&r);
	ctl(&r, "-s", sock0, "kick", "bob", NULL);
	ASSERT_STATUS(&r, 2, "kick bob");
	run_free(&r);
}
END_TEST

START_TEST(test_stats_move)
{
	double logins0, msgs0, regs0, accepted0;
	long long deadline;
	struct user u;
	struct run r;
	cJSON *st;
	int i, moved = 0;

	st = ctl_json("stats", NULL);
	logins0 = stats_total(st, "logins_ok");
	msgs0 = stats_total(st, "msgs_in");
	regs0 = stats_total(st, "registrations");
	accepted0 = stats_total(st, "accepted");
	cJSON_Delete(st);

	user_register(&u, 0, "stats");		/* 1 connection, 1 frame */
	user_login_ok(&u, 0);			/* 1 connection, 1 frame */
	for (i = 0; i < 5; i++)
		ping_ok(u.c);			/* 5 frames */

	deadline = harness_now_ms() + T_EFFECT;
	while (!moved) {
		st = ctl_json("stats", NULL);
		moved = stats_total(st, "logins_ok") >= logins0 + 1 &&
		    stats_total(st, "msgs_in") >= msgs0 + 7 &&
		    stats_total(st, "registrations") >= regs0 + 1 &&
		    stats_total(st, "accepted") >= accepted0 + 2 &&
		    stats_total(st, "online") >= 1;
		if (!moved && harness_now_ms() >= deadline)
			ck_abort_msg("counters did not move: logins_ok %.0f -> "
			    "%.0f, msgs_in %.0f -> %.0f, registrations %.0f "
			    "-> %.0f, accepted %.0f -> %.0f", logins0,
			    stats_total(st, "logins_ok"), msgs0,
			    stats_total(st, "msgs_in"), regs0,
			    stats_total(st, "registrations"), accepted0,
			    stats_total(st, "accepted"));
		cJSON_Delete(st);
		if (!moved)
			harness_sleep_ms(POLL_MS);
	}

	/* The table names every counter and the total column. */
	ctl(&r, "-s", sock0, "stats", NULL);
	ASSERT_STATUS(&r, 0, "stats");
	ck_assert_msg(strstr(r.out, "logins_ok") != NULL &&
	    strstr(r.out, "msgs_in") != NULL &&
	    strstr(r.out, "errors.auth") != NULL &&
	    strstr(r.out, "total") != NULL, "stats table: %s", r.out);
	run_free(&r);
	chatc_close(u.c);
}
END_TEST

START_TEST(test_not_reachable)
{
	struct sockaddr_un sun;
	char path[PATH_MAX];
	struct run r;
	int fd;

	/* No socket file at all. */
	xfmt(path, sizeof(path), "%s/missing.sock", H.dir);
	ctl(&r, "-s", path, "status", NULL);
	ASSERT_STATUS(&r, 3, "status on a missing socket");
	ck_assert_msg(strstr(r.err, "chatd is not running") != NULL &&
	    strstr(r.err, path) != NULL, "unclear message: %s", r.err);
	run_free(&r);

	/* A socket file nobody listens on (a chatd that was killed). */
	xfmt(path, sizeof(path), "%s/dead-%ld.sock", H.dir,
	    (long)getpid());
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	ck_assert(strlen(path) < sizeof(sun.sun_path));
	(void)strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert(fd != -1);
	ck_assert(bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	(void)close(fd);
	ctl(&r, "-s", path, "stop", NULL);
	ASSERT_STATUS(&r, 3, "stop on a dead socket");
	ck_assert_msg(strstr(r.err, "chatd is not running") != NULL,
	    "unclear message: %s", r.err);
	run_free(&r);
	(void)unlink(path);

	/* Usage errors. */
	ctl(&r, "-s", sock0, "frobnicate", NULL);
	ASSERT_STATUS(&r, 2, "unknown command");
	ck_assert_msg(strstr(r.err, "usage") != NULL, "%s", r.err);
	run_free(&r);
	ctl(&r, "-s", sock0, "status", "extra", NULL);
	ASSERT_STATUS(&r, 2, "status extra");
	run_free(&r);
}
END_TEST

/* 1 when every directory above path lets others search it. */
static int
others_can_reach(const char *path)
{
	char buf[PATH_MAX], *slash;
	struct stat st;

	xfmt(buf, sizeof(buf), "%s", path);
	while ((slash = strrchr(buf, '/')) != NULL) {
		*slash = '\0';
		if (stat(buf[0] != '\0' ? buf : "/", &st) == -1 ||
		    !(st.st_mode & S_IXOTH))
			return 0;
		if (buf[0] == '\0')
			break;
	}
	return 1;
}

static void
copy_file(const char *from, const char *to, mode_t mode)
{
	char buf[65536];
	ssize_t n;
	int in, out;

	in = open(from, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(in != -1, "%s: %s", from, strerror(errno));
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	ck_assert_msg(out != -1, "%s: %s", to, strerror(errno));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		ck_assert(write(out, buf, (size_t)n) == n);
	ck_assert(n == 0);
	(void)close(in);
	ck_assert(fchmod(out, mode) == 0 && close(out) == 0);
}

START_TEST(test_unprivileged)
{
	static const char *const refused[] = { "kick", "reload", "stop" };
	char prog[PATH_MAX];
	struct user u;
	char id[32];
	struct run r;
	struct stat st;
	size_t i;

	if (geteuid() != 0) {
		fprintf(stderr, "it_ops: test_unprivileged skipped: it runs "
		    "chatctl as nobody, which needs root\n");
		return;
	}
	if (!others_can_reach(H.dir)) {
		fprintf(stderr, "it_ops: test_unprivileged skipped: a "
		    "directory above %s is closed to other users (set TMPDIR)\n",
		    H.dir);
		return;
	}
	ck_assert(stat(H.dir, &st) == 0);
	ck_assert(chmod(H.dir, 0711) == 0);
	xfmt(prog, sizeof(prog), "%s/chatctl-nobody", H.dir);
	copy_file(CHATCTL, prog, 0755);

	/* control_mode 0660: nobody cannot even connect. */
	ctl_nobody(&r, prog, "-s", sock0, "status", NULL);
	ASSERT_STATUS(&r, 3, "status as nobody, socket 0660");
	ck_assert_msg(strstr(r.err, "permission denied") != NULL,
	    "unclear message: %s", r.err);
	run_free(&r);

	/* Open the socket to everyone: reading is allowed, changing not. */
	ck_assert(chmod(sock0, 0666) == 0);
	ctl_nobody(&r, prog, "-s", sock0, "status", NULL);
	ASSERT_STATUS(&r, 0, "status as nobody");
	run_free(&r);
	ctl_nobody(&r, prog, "-s", sock0, "who", NULL);
	ASSERT_STATUS(&r, 0, "who as nobody");
	run_free(&r);

	user_register(&u, 0, "nobody");
	user_login_ok(&u, 0);
	xfmt(id, sizeof(id), "%lld", u.id);
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		if (strcmp(refused[i], "kick") == 0)
			ctl_nobody(&r, prog, "-s", sock0, refused[i], id, NULL);
		else
			ctl_nobody(&r, prog, "-s", sock0, refused[i], NULL);
		ASSERT_STATUS(&r, 1, refused[i]);
		ck_assert_msg(strstr(r.err, "permission denied") != NULL,
		    "%s as nobody: %s", refused[i], r.err);
		run_free(&r);
	}
	ck_assert(chmod(sock0, 0660) == 0);
	ck_assert(chmod(H.dir, st.st_mode & 07777) == 0);
	(void)unlink(prog);

	/* Nothing happened: same session, same master. */
	ping_ok(u.c);
	ck_assert_int_eq(who_slot(u.id) >= 0, 1);
	ck_assert_int_eq(kill(H.chatd[0].pid, 0), 0);
	ck_assert(!harness_log_contains(&H, 0, "reload complete") &&
	    !harness_log_contains(&H, 0, "stopping"));
	chatc_close(u.c);
}
END_TEST

/* --- stop and reload ------------------------------------------------------ */

START_TEST(test_stop)
{
	char sock1[PATH_MAX];
	long long deadline;
	struct user u;
	struct run r;
	struct stat st;
	int status = 0;
	pid_t pid, w;

	ck_assert_msg(harness_start_chatd(&H, 1, "[server]\nworkers = 2\n")
	    == 0, "chatd-1 did not start");
	harness_control_path(&H, 1, sock1, sizeof(sock1));
	pid = H.chatd[1].pid;
	user_register(&u, 1, "stop");
	user_login_ok(&u, 1);

	ctl(&r, "-s", sock1, "stop", NULL);
	ASSERT_STATUS(&r, 0, "stop");
	ck_assert_msg(strstr(r.out, "stop requested") != NULL, "%s", r.out);
	run_free(&r);

	deadline = harness_now_ms() + T_STOP;
	while ((w = waitpid(pid, &status, WNOHANG)) == 0 &&
	    harness_now_ms() < deadline)
		harness_sleep_ms(POLL_MS);
	ck_assert_msg(w == pid, "chatd-1 (pid %d) did not exit within %d ms "
	    "of chatctl stop", (int)pid, T_STOP);
	H.chatd[1].pid = 0;
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "chatd-1 ended with status 0x%x, want exit 0", status);
	ck_assert_msg(stat(sock1, &st) == -1 && errno == ENOENT,
	    "control socket %s left behind", sock1);
	ck_assert(chatc_recv(u.c, T_EOF) == NULL);
	chatc_close(u.c);

	ctl(&r, "-s", sock1, "status", NULL);
	ASSERT_STATUS(&r, 3, "status after stop");
	run_free(&r);
}
END_TEST

/*
 * chatctl reload with the file unchanged: the master reloads, nothing
 * needs new workers, so every worker stays and a client logged in before
 * is still served after "reload complete".
 */
START_TEST(test_reload)
{
	pid_t before[NWORKERS + 2], after[NWORKERS + 2];
	long long deadline;
	struct user u, v;
	struct run r;
	cJSON *o, *w;
	char want[160];
	int n, m, i, j, gen;

	user_register(&u, 0, "reload");
	user_login_ok(&u, 0);
	n = harness_chatd_workers(&H, 0, before, NWORKERS + 2);
	ck_assert_int_eq(n, NWORKERS);
	o = ctl_json("status", NULL);
	gen = (int)jnum(o, "config_generation");
	cJSON_Delete(o);

	ctl(&r, "-s", sock0, "reload", NULL);
	ASSERT_STATUS(&r, 0, "reload");
	xfmt(want, sizeof(want), "reload complete: configuration generation "
	    "%d, no value changed, %d workers\n", gen + 1, NWORKERS);
	ck_assert_msg(strcmp(r.out, want) == 0, "%s", r.out);
	run_free(&r);
	/* chatctl returned once every worker runs the new generation. */
	o = ctl_json("status", NULL);
	ck_assert_int_eq((int)jnum(o, "config_generation"), gen + 1);
	cJSON_ArrayForEach(w, cJSON_GetObjectItem(o, "workers"))
		ck_assert_int_eq((int)jnum(w, "config_generation"), gen + 1);
	cJSON_Delete(o);

	deadline = harness_now_ms() + T_RELOAD;
	while (!harness_log_contains(&H, 0, "reload complete")) {
		ck_assert_msg(harness_now_ms() < deadline, "no \"reload "
		    "complete\" %d ms after chatctl reload", T_RELOAD);
		harness_sleep_ms(POLL_MS);
	}
	ck_assert(harness_log_contains(&H, 0, "no value changed"));
	m = harness_chatd_workers(&H, 0, after, NWORKERS + 2);
	ck_assert_int_eq(m, NWORKERS);
	for (i = 0; i < m; i++) {
		for (j = 0; j < n && after[i] != before[j]; j++)
			;
		ck_assert_msg(j < n, "worker %ld is new after a reload that "
		    "changed nothing", (long)after[i]);
	}
	o = ctl_json("status", NULL);
	ck_assert_int_eq((int)jnum(o, "config_generation"), gen + 1);
	cJSON_ArrayForEach(w, cJSON_GetObjectItem(o, "workers"))
		ck_assert_int_eq((int)jnum(w, "config_generation"), gen + 1);
	cJSON_Delete(o);

	/* The session from before is served, and new ones start. */
	ping_ok(u.c);
	user_register(&v, 0, "reload");
	user_login_ok(&v, 0);
	ping_ok(v.c);
	ck_assert_int_eq(kill(H.chatd[0].pid, 0), 0);
	ctl(&r, "-s", sock0, "status", NULL);
	ASSERT_STATUS(&r, 0, "status after reload");
	run_free(&r);

	/* The same with -j: what the reload did, as JSON. */
	o = ctl_json("reload", NULL);
	ck_assert_int_eq((int)jnum(o, "config_generation"), gen + 2);
	ck_assert_str_eq(jstr(o, "applied"), "no value changed");
	ck_assert_int_eq((int)jnum(o, "workers"), NWORKERS);
	ck_assert((int)jnum(o, "shutdown_timeout") >= 1);
	w = cJSON_GetObjectItem(o, "restart_needed");
	ck_assert(cJSON_IsArray(w) && cJSON_GetArraySize(w) == 0);
	ck_assert_ptr_null(cJSON_GetObjectItem(o, "new_workers_for"));
	cJSON_Delete(o);
	chatc_close(u.c);
	chatc_close(v.c);
}
END_TEST

/* --- chatctl db ----------------------------------------------------------- */

START_TEST(test_db_status)
{
	struct run r;

	ctl(&r, "-c", H.chatd[0].conf_path, "db", "status", NULL);
	ASSERT_STATUS(&r, 0, "db status");
	ck_assert_msg(strstr(r.out, "schema version 3 (this chatd needs 3)")
	    != NULL, "db status: %s", r.out);
	run_free(&r);
}
END_TEST

START_TEST(test_db_migrate_idempotent)
{
	struct run r;

	ctl(&r, "-c", H.chatd[0].conf_path, "db", "migrate", "-m", MIGRATIONS,
	    NULL);
	ASSERT_STATUS(&r, 0, "db migrate");
	ck_assert_msg(strstr(r.out, "schema version 3 (this chatd needs 3)")
	    != NULL && strstr(r.out, "schema version 3 after migrating") !=
	    NULL, "db migrate: %s", r.out);
	ck_assert_msg(strstr(r.out, "applied") == NULL, "db migrate applied "
	    "something to a current schema: %s", r.out);
	run_free(&r);
}
END_TEST

/* The harness's config, then a database chat_TAG_test and a user
 * chatTAG of its own, in a file named into conf. */
static void
db_conf(char *conf, size_t len, const char *tag)
{
	char *base;
	FILE *fp;
	int fd;

	base = slurp(H.chatd[0].conf_path);
	ck_assert(base[0] != '\0');
	xfmt(conf, len, "%s/%s-%ld.conf", H.dir, tag, (long)getpid());
	fd = open(conf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert(fd != -1 && (fp = fdopen(fd, "w")) != NULL);
	fprintf(fp, "%s\n[database]\ndb_name = chat_%s_test\n"
	    "db_user = chat%s\ndb_password = %s-%ld-pw\n", base, tag, tag,
	    tag, (long)getpid());
	ck_assert(fclose(fp) == 0);
	free(base);
}

START_TEST(test_db_init)
{
	char conf[PATH_MAX];
	struct run r;

	db_conf(conf, sizeof(conf), "init");

	/* Nothing there yet: the user chatd would log in as is refused. */
	ctl(&r, "-c", conf, "db", "status", NULL);
	ASSERT_STATUS(&r, 1, "db status before init");
	run_free(&r);

	ctl(&r, "-c", conf, "db", "init", "-m", MIGRATIONS, "-S",
	    H.mariadb_socket, "-u", "root", NULL);
	ASSERT_STATUS(&r, 0, "db init");
	ck_assert_msg(strstr(r.out, "database chat_init_test and user chatinit "
	    "are ready") != NULL &&
	    strstr(r.out, "schema version 0 (this chatd needs 3)") != NULL &&
	    strstr(r.out, "applied 0001_initial.sql") != NULL &&
	    strstr(r.out, "applied 0002_offline_longtext.sql") != NULL &&
	    strstr(r.out, "applied 0003_offline_order.sql") != NULL &&
	    strstr(r.out, "schema version 3 after migrating") != NULL,
	    "db init: %s", r.out);
	run_free(&r);

	ctl(&r, "-c", conf, "db", "status", NULL);
	ASSERT_STATUS(&r, 0, "db status after init");
	ck_assert_msg(strstr(r.out, "schema version 3 (this chatd needs 3)")
	    != NULL, "db status after init: %s", r.out);
	run_free(&r);

	/* Again: nothing to create, nothing to apply. */
	ctl(&r, "-c", conf, "db", "init", "-m", MIGRATIONS, "-S",
	    H.mariadb_socket, "-u", "root", NULL);
	ASSERT_STATUS(&r, 0, "db init again");
	ck_assert_msg(strstr(r.out, "applied") == NULL &&
	    strstr(r.out, "schema version 3 after migrating") != NULL,
	    "db init again: %s", r.out);
	run_free(&r);

	/* A bad administrator is a clear failure, not a crash. */
	ctl(&r, "-c", conf, "db", "init", "-m", MIGRATIONS, "-S",
	    H.mariadb_socket, "-u", "no_such_admin", NULL);
	ASSERT_STATUS(&r, 1, "db init as an unknown administrator");
	ck_assert_msg(strstr(r.err, "no_such_admin") != NULL, "%s", r.err);
	run_free(&r);

	(void)harness_sql(&H, "DROP DATABASE chat_init_test; DROP USER IF EXISTS "
	    "'chatinit'@'localhost', 'chatinit'@'127.0.0.1', 'chatinit'@'%'");
	(void)unlink(conf);
}
END_TEST

/*
 * A database at schema version 1, with an offline message in it, taken
 * to version 3 by `db migrate`: 0002 and 0003 are applied, the message
 * column becomes LONGTEXT (a stored frame can pass MEDIUMTEXT's 16777215
 * bytes when max_frame is 16 MiB), the messages get their order (ord,
 * 0 for those stored before, so they come first) and its index replaces
 * (userid, id), and the stored message is kept.
 */
START_TEST(test_db_upgrade)
{
	char conf[PATH_MAX], dir[PATH_MAX], to[PATH_MAX], out[256];
	struct run r;

	db_conf(conf, sizeof(conf), "upg");
	/* Version 1: a migrations directory with 0001 alone. */
	xfmt(dir, sizeof(dir), "%s/mig1-%ld", H.dir, (long)getpid());
	ck_assert_msg(mkdir(dir, 0700) == 0, "%s: %s", dir, strerror(errno));
	xfmt(to, sizeof(to), "%s/0001_initial.sql", dir);
	copy_file(MIGRATIONS "/0001_initial.sql", to, 0644);
	ctl(&r, "-c", conf, "db", "init", "-m", dir, "-S", H.mariadb_socket,
	    "-u", "root", NULL);
	ASSERT_STATUS(&r, 1, "db init to version 1");
	ck_assert_msg(strstr(r.out, "schema version 1 after migrating") !=
	    NULL && strstr(r.err, "schema version 1, but this chatd needs 3")
	    != NULL, "db init to version 1: %s%s", r.out, r.err);
	run_free(&r);
	ck_assert(harness_sql(&H, "INSERT INTO chat_upg_test.users (name, "
	    "password) VALUES ('upg', 'x'); INSERT INTO "
	    "chat_upg_test.offlinemessages (userid, message) SELECT id, "
	    "'{\"msgid\":6,\"msg\":\"kept\"}' FROM chat_upg_test.users") == 0);

	ctl(&r, "-c", conf, "db", "status", NULL);
	ASSERT_STATUS(&r, 1, "db status at version 1");
	ck_assert_msg(strstr(r.out, "schema version 1 (this chatd needs 3)") !=
	    NULL, "db status at version 1: %s", r.out);
	run_free(&r);

	ctl(&r, "-c", conf, "db", "migrate", "-m", MIGRATIONS, NULL);
	ASSERT_STATUS(&r, 0, "db migrate from version 1");
	ck_assert_msg(strstr(r.out, "applied 0001") == NULL &&
	    strstr(r.out, "applied 0002_offline_longtext.sql") != NULL &&
	    strstr(r.out, "applied 0003_offline_order.sql") != NULL &&
	    strstr(r.out, "schema version 3 after migrating") != NULL,
	    "db migrate from version 1: %s", r.out);
	run_free(&r);

	ck_assert(harness_sql_value(&H, "SELECT DATA_TYPE FROM "
	    "information_schema.COLUMNS WHERE TABLE_SCHEMA = 'chat_upg_test' "
	    "AND TABLE_NAME = 'offlinemessages' AND COLUMN_NAME = 'message'",
	    out, sizeof(out)) == 0);
	ck_assert_str_eq(out, "longtext");
	ck_assert(harness_sql_value(&H, "SELECT ord, message FROM "
	    "chat_upg_test.offlinemessages", out, sizeof(out)) == 0);
	ck_assert_str_eq(out, "0\t{\"msgid\":6,\"msg\":\"kept\"}");
	ck_assert(harness_sql_value(&H, "SELECT GROUP_CONCAT(DISTINCT "
	    "INDEX_NAME ORDER BY INDEX_NAME) FROM information_schema.STATISTICS "
	    "WHERE TABLE_SCHEMA = 'chat_upg_test' AND TABLE_NAME = "
	    "'offlinemessages'", out, sizeof(out)) == 0);
	ck_assert_str_eq(out, "offlinemessages_order,PRIMARY");

	(void)harness_sql(&H, "DROP DATABASE chat_upg_test; DROP USER IF EXISTS "
	    "'chatupg'@'localhost', 'chatupg'@'127.0.0.1', 'chatupg'@'%'");
	(void)unlink(to);
	(void)rmdir(dir);
	(void)unlink(conf);
}
END_TEST

/* --- man pages, unit, install (no servers) ------------------------------- */

/* A private temporary directory (removed by rm_tree). */
static void
tmp_dir(char *buf, size_t len, const char *tag)
{
	const char *tmp = getenv("TMPDIR");

	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	xfmt(buf, len, "%s/chatd-%s-XXXXXX", tmp, tag);
	ck_assert_msg(mkdtemp(buf) != NULL, "mkdtemp %s: %s", buf,
	    strerror(errno));
}

static void
rm_tree(const char *dir)
{
	struct run_opts opts = { T_RUN, 0, NULL };
	char *argv[] = { (char *)"rm", (char *)"-rf", (char *)dir, NULL };
	struct run r;

	run_argv(&r, "/tmp", &opts, argv);
	run_free(&r);
}

/* The man pages of the source tree: man/NAME.SECTION. */
static int
man_pages(char pages[][NAME_MAX + 1], int max)
{
	DIR *d = opendir(TOP_SRCDIR "/man");
	struct dirent *e;
	size_t len;
	int n = 0;

	ck_assert_msg(d != NULL, "%s/man: %s", TOP_SRCDIR, strerror(errno));
	while ((e = readdir(d)) != NULL && n < max) {
		len = strlen(e->d_name);
		if (len > 2 && e->d_name[len - 2] == '.' &&
		    e->d_name[len - 1] >= '1' && e->d_name[len - 1] <= '8')
			xfmt(pages[n++], NAME_MAX + 1, "%s",
			    e->d_name);
	}
	(void)closedir(d);
	return n;
}

START_TEST(test_mandoc_lint)
{
	char pages[32][NAME_MAX + 1], path[PATH_MAX], dir[PATH_MAX];
	struct run_opts opts = { T_RUN, 0, NULL };
	char *argv[4], *line, *save;
	struct run r;
	int n, i, have_chatctl = 0;

	if (MANDOC[0] == '\0') {
		fprintf(stderr, "it_ops: test_mandoc_lint skipped: configure "
		    "found no mandoc\n");
		return;
	}
	tmp_dir(dir, sizeof(dir), "lint");
	n = man_pages(pages, 32);
	ck_assert_msg(n >= 3, "only %d man pages in %s/man", n, TOP_SRCDIR);
	for (i = 0; i < n; i++) {
		if (strcmp(pages[i], "chatctl.8") == 0)
			have_chatctl = 1;
		xfmt(path, sizeof(path), "%s/man/%s", TOP_SRCDIR,
		    pages[i]);
		argv[0] = (char *)MANDOC;
		argv[1] = (char *)"-Tlint";
		argv[2] = path;
		argv[3] = NULL;
		run_argv(&r, dir, &opts, argv);
		ck_assert_msg(r.status == 0 || r.status == 1, "mandoc %s: exit "
		    "%d: %s%s", pages[i], r.status, r.out, r.err);
		/* Pages of other sections are not installed here, so
		 * cross-references are the one message allowed. */
		for (line = strtok_r(r.out, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save))
			ck_assert_msg(strstr(line, "referenced manual not "
			    "found") != NULL, "mandoc -Tlint: %s", line);
		ck_assert_msg(r.err[0] == '\0', "mandoc -Tlint %s: %s",
		    pages[i], r.err);
		run_free(&r);
	}
	ck_assert_msg(have_chatctl, "man/chatctl.8 missing");
	rm_tree(dir);
}
END_TEST

/* The first of names that is an executable in PATH or the usual places. */
static const char *
find_program(const char *name, char *buf, size_t len)
{
	static const char *const dirs[] = { "/usr/bin", "/bin", "/usr/sbin",
	    "/sbin" };
	const char *path = getenv("PATH");
	char copy[4096], *d, *save;
	size_t i;

	xfmt(copy, sizeof(copy), "%s", path != NULL ? path : "");
	for (d = strtok_r(copy, ":", &save); d != NULL;
	    d = strtok_r(NULL, ":", &save)) {
		xfmt(buf, len, "%s/%s", d, name);
		if (access(buf, X_OK) == 0)
			return buf;
	}
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		xfmt(buf, len, "%s/%s", dirs[i], name);
		if (access(buf, X_OK) == 0)
			return buf;
	}
	return NULL;
}

/* Replace every from in s (malloc'd) by to; returns a new string. */
static char *
replace_all(const char *s, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to), n = 0;
	const char *p;
	char *out, *o;

	for (p = s; (p = strstr(p, from)) != NULL; p += fl)
		n++;
	out = malloc(strlen(s) + n * tl + 1);
	ck_assert(out != NULL);
	for (o = out; (p = strstr(s, from)) != NULL; s = p + fl) {
		memcpy(o, s, (size_t)(p - s));
		o += p - s;
		memcpy(o, to, tl);
		o += tl;
	}
	(void)strcpy(o, s);
	return out;
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	FILE *fp;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	ck_assert_msg(fd != -1 && (fp = fdopen(fd, "w")) != NULL, "%s: %s",
	    path, strerror(errno));
	ck_assert(fputs(text, fp) >= 0);
	ck_assert(fclose(fp) == 0);
}

/* Write to path (in the test directory, named by tag) chatd-0's
 * configuration with every `from` replaced by `to`. */
static void
conf_edited(char *path, size_t len, const char *tag, const char *from,
    const char *to)
{
	char *text, *edited;

	text = slurp(H.chatd[0].conf_path);
	edited = replace_all(text, from, to);
	free(text);
	xfmt(path, len, "%s/%s-%ld.conf", H.dir, tag, (long)getpid());
	write_file(path, edited, 0600);
	free(edited);
}

/*
 * Without -s, chatctl uses the control_socket of the configuration file
 * (-c) when the file loads: chatd-0's file finds chatd-0.  A file that
 * turns the socket off is a clear exit 3; a file that is not there
 * leaves the default path.
 */
START_TEST(test_socket_from_conf)
{
	char path[PATH_MAX];
	struct run r;

	ctl(&r, "-c", H.chatd[0].conf_path, "status", NULL);
	ASSERT_STATUS(&r, 0, "status with -c and no -s");
	ck_assert_msg(strstr(r.out, "node " NODE_ID ",") != NULL, "%s", r.out);
	run_free(&r);

	conf_edited(path, sizeof(path), "off", "control_socket = ",
	    "control_socket =\n#");
	ctl(&r, "-c", path, "status", NULL);
	ASSERT_STATUS(&r, 3, "status with control_socket empty");
	ck_assert_msg(strstr(r.err, "control socket is off") != NULL &&
	    strstr(r.err, path) != NULL, "%s", r.err);
	run_free(&r);
	(void)unlink(path);

	/* control_socket changed in the file after chatd started: chatd
	 * answers on the old path, and chatctl says so. */
	conf_edited(path, sizeof(path), "moved", "control_socket = ",
	    "control_socket = /nonexistent/moved.sock\n#");
	ctl(&r, "-c", path, "reload", NULL);
	ASSERT_STATUS(&r, 3, "reload with control_socket moved");
	ck_assert_msg(strstr(r.err, "chatd is not running") != NULL &&
	    strstr(r.err, "/nonexistent/moved.sock") != NULL &&
	    strstr(r.err, "answers on the old path: -s") != NULL, "%s", r.err);
	run_free(&r);
	(void)unlink(path);

	xfmt(path, sizeof(path), "%s/absent.conf", H.dir);
	ctl(&r, "-c", path, "status", NULL);
	ASSERT_STATUS(&r, 3, "status with no configuration file");
	ck_assert_msg(strstr(r.err, "/run/chatd/chatd.sock") != NULL, "%s",
	    r.err);
	run_free(&r);
}
END_TEST

/* chatd-0's configuration generation. */
static int
reload_state_gen(void)
{
	cJSON *o;
	int gen;

	o = ctl_json("status", NULL);
	gen = (int)jnum(o, "config_generation");
	cJSON_Delete(o);
	return gen;
}

/* chatd-0's configuration generation and its workers' pids, sorted. */
static int
reload_state(pid_t *pids)
{
	int gen, n;

	gen = reload_state_gen();
	n = harness_chatd_workers(&H, 0, pids, NWORKERS + 2);
	ck_assert_int_eq(n, NWORKERS);
	if (pids[0] > pids[1]) {
		pid_t t = pids[0];

		pids[0] = pids[1];
		pids[1] = t;
	}
	return gen;
}

/* chatctl reload with `extra` appended to chatd-0's file, which is put
 * back as it was before this returns. */
static void
reload_with(struct run *r, const char *extra)
{
	const char *conf = H.chatd[0].conf_path;
	char *orig, *more;

	orig = slurp(conf);
	ck_assert_ptr_nonnull(more = malloc(strlen(orig) + strlen(extra) +
	    1));
	(void)strcpy(more, orig);
	(void)strcat(more, extra);
	write_file(conf, more, 0600);
	free(more);
	ctl(r, "-s", sock0, "reload", NULL);
	write_file(conf, orig, 0600);
	free(orig);
}

/*
 * chatctl reload of a file that does not load fails itself (exit 1, the
 * parser's message with the file and line), and nothing changes: the
 * generation, the workers.  The file is put back before the test ends.
 */
START_TEST(test_reload_bad_file)
{
	const char *conf = H.chatd[0].conf_path;
	pid_t before[NWORKERS + 2], after[NWORKERS + 2];
	struct run r;
	int gen;

	gen = reload_state(before);
	reload_with(&r, "\n[server]\nworkers = lots\n");
	ASSERT_STATUS(&r, 1, "reload of a broken file");
	ck_assert_msg(strstr(r.err, "reload failed, keeping the running "
	    "configuration") != NULL && strstr(r.err, conf) != NULL &&
	    strstr(r.err, "workers") != NULL, "%s", r.err);
	ck_assert_msg(strstr(r.out, "reload complete") == NULL, "%s", r.out);
	run_free(&r);
	ck_assert_int_eq(reload_state(after), gen);
	ck_assert_msg(after[0] == before[0] && after[1] == before[1],
	    "workers replaced by a reload that failed");
}
END_TEST

/*
 * chatctl reload returns only once every worker runs the new generation:
 * with one worker stopped (SIGSTOP), it cannot apply the reload, and
 * chatctl is still waiting half a second later; once the worker goes on
 * (SIGCONT), chatctl says the reload is complete.
 */
START_TEST(test_reload_waits_for_workers)
{
	pid_t w[NWORKERS + 2], child, done;
	long long deadline;
	struct run r;
	int gen, st = 0, waited;

	gen = reload_state(w);
	ck_assert_int_eq(kill(w[0], SIGSTOP), 0);
	if ((child = fork()) == 0) {
		ctl(&r, "-s", sock0, "reload", NULL);
		_exit(r.status == 0 &&
		    strstr(r.out, "reload complete") != NULL ? 0 : 1);
	}
	if (child == -1)
		(void)kill(w[0], SIGCONT);
	ck_assert(child > 0);
	/* The master reloads while the worker is stopped: wait for the
	 * generation, then give chatctl the time it would need to return. */
	deadline = harness_now_ms() + T_RELOAD;
	while (reload_state_gen() != gen + 1 && harness_now_ms() < deadline)
		harness_sleep_ms(POLL_MS);
	harness_sleep_ms(500);
	waited = waitpid(child, &st, WNOHANG) == 0;
	(void)kill(w[0], SIGCONT);
	ck_assert_msg(waited, "chatctl reload returned while worker %ld was "
	    "stopped (exit status 0x%x)", (long)w[0], st);
	deadline = harness_now_ms() + T_RELOAD;
	while ((done = waitpid(child, &st, WNOHANG)) == 0 &&
	    harness_now_ms() < deadline)
		harness_sleep_ms(POLL_MS);
	ck_assert_msg(done == child && WIFEXITED(st) &&
	    WEXITSTATUS(st) == 0, "chatctl reload after SIGCONT: status 0x%x",
	    st);
	ck_assert_int_eq(reload_state(w), gen + 1);
}
END_TEST

/*
 * chatctl reload gives up after shutdown_timeout + 10 s (here 1 + 10, the
 * file setting shutdown_timeout = 1) while a worker cannot apply the
 * reload (SIGSTOP): exit 1, the configuration loaded but not every
 * worker running it.  Once the worker goes on, a reload of the file as
 * it was completes.
 */
START_TEST(test_reload_gives_up)
{
	pid_t w[NWORKERS + 2];
	struct run r;
	int gen, stopped;

	gen = reload_state(w);
	stopped = kill(w[0], SIGSTOP) == 0;
	reload_with(&r, "\n[server]\nshutdown_timeout = 1\n");
	(void)kill(w[0], SIGCONT);
	ck_assert(stopped);
	ASSERT_STATUS(&r, 1, "reload while a worker is stopped");
	ck_assert_msg(strstr(r.err, "not every worker runs it after 11 s") !=
	    NULL, "%s", r.err);
	ck_assert_msg(strstr(r.out, "reload complete") == NULL, "%s", r.out);
	run_free(&r);
	ck_assert_int_eq(reload_state_gen(), gen + 1);

	ctl(&r, "-s", sock0, "reload", NULL);
	ASSERT_STATUS(&r, 0, "reload after SIGCONT");
	ck_assert_msg(strstr(r.out, "reload complete: configuration "
	    "generation") != NULL, "%s", r.out);
	run_free(&r);
	ck_assert_int_eq(reload_state_gen(), gen + 2);
}
END_TEST

/*
 * A worker that a reload replaces but that does not stop (here SIGSTOPped)
 * is killed once shutdown_timeout + 2 s are over, as on a stop: its slot
 * gets its new worker and the reload completes, well before chatctl gives
 * up (shutdown_timeout + 10 s).  shutdown_timeout = 1 is applied in place
 * first, so the worker being replaced runs with it.
 */
START_TEST(test_reload_kills_hung_worker)
{
	pid_t w[NWORKERS + 2], after[NWORKERS + 2];
	long long t0, took;
	struct run r;
	int gen, stopped, i;

	gen = reload_state(w);
	reload_with(&r, "\n[server]\nshutdown_timeout = 1\n");
	ASSERT_STATUS(&r, 0, "reload of shutdown_timeout");
	run_free(&r);
	ck_assert_int_eq(reload_state(w), gen + 1);

	stopped = kill(w[0], SIGSTOP) == 0;
	t0 = harness_now_ms();
	reload_with(&r, "\n[server]\nshutdown_timeout = 1\n"
	    "job_threads = 3\n");
	took = harness_now_ms() - t0;
	(void)kill(w[0], SIGCONT);
	ck_assert(stopped);
	ASSERT_STATUS(&r, 0, "reload replacing a stopped worker");
	ck_assert_msg(strstr(r.out, "reload complete: configuration "
	    "generation") != NULL, "%s", r.out);
	run_free(&r);
	ck_assert_msg(took < 8000, "the reload took %lld ms", took);
	ck_assert_msg(harness_log_contains(&H, 0, "replaced by a reload, did "
	    "not stop in time (shutdown_timeout); killing it"), "no log line "
	    "about killing worker %ld", (long)w[0]);
	ck_assert_int_eq(reload_state(after), gen + 2);
	for (i = 0; i < NWORKERS; i++)
		ck_assert_msg(after[i] != w[0] && after[i] != w[1],
		    "worker %ld still runs after the reload", (long)after[i]);

	/* The file as it was: new workers again, which stop in time. */
	ctl(&r, "-s", sock0, "reload", NULL);
	ASSERT_STATUS(&r, 0, "reload of the file as it was");
	run_free(&r);
	ck_assert_int_eq(reload_state(after), gen + 3);
}
END_TEST

/*
 * A key that needs new workers (job_threads): chatctl returns once the
 * old workers have stopped and new ones run the new generation, and
 * says so; putting the file back is the same again.
 */
START_TEST(test_reload_new_workers)
{
	pid_t before[NWORKERS + 2], after[NWORKERS + 2];
	char want[160];
	struct run r;
	int gen, round, i, j;

	gen = reload_state(before);
	for (round = 1; round <= 2; round++) {
		/* job_threads = 3, then the file as it was. */
		reload_with(&r, round == 1 ? "\n[server]\njob_threads = 3\n" :
		    "");
		ASSERT_STATUS(&r, 0, "reload with job_threads changed");
		xfmt(want, sizeof(want), "reload complete: configuration "
		    "generation %d, %d new workers (job_threads changed)\n",
		    gen + round, NWORKERS);
		ck_assert_msg(strcmp(r.out, want) == 0, "round %d: %s", round,
		    r.out);
		run_free(&r);
		ck_assert_int_eq(reload_state(after), gen + round);
		for (i = 0; i < NWORKERS; i++)
			for (j = 0; j < NWORKERS; j++)
				ck_assert_msg(after[i] != before[j], "round %d: "
				    "worker %ld still runs after chatctl "
				    "reload returned", round, (long)after[i]);
		memcpy(before, after, sizeof(before));
	}
}
END_TEST

/*
 * A key that needs a restart (listen) is named on chatctl's stderr and
 * keeps its running value; the rest of the reload goes through, in
 * place, and chatctl still says so.
 */
/*
 * Reload with extra (which moves listen to 127.0.0.1:1) appended to the
 * file: listen is named as needing a restart, no value changes, no
 * worker is replaced, and status still shows the running listen.
 */
static void
reload_listen_ignored(const char *extra)
{
	pid_t before[NWORKERS + 2], after[NWORKERS + 2];
	char want[160];
	struct run r;
	cJSON *o;
	int gen;

	gen = reload_state(before);
	reload_with(&r, extra);
	ASSERT_STATUS(&r, 0, "reload with listen changed");
	ck_assert_msg(strstr(r.err, "listen changed; restart chatd to apply "
	    "it") != NULL, "%s", r.err);
	xfmt(want, sizeof(want), "reload complete: configuration generation "
	    "%d, no value changed, %d workers\n", gen + 1, NWORKERS);
	ck_assert_msg(strcmp(r.out, want) == 0, "%s", r.out);
	run_free(&r);
	o = ctl_json("status", NULL);
	ck_assert_msg(strcmp(jstr(o, "listen"), "127.0.0.1:1") != 0,
	    "listen became %s without a restart", jstr(o, "listen"));
	cJSON_Delete(o);
	ck_assert_int_eq(reload_state(after), gen + 1);
	ck_assert_msg(after[0] == before[0] && after[1] == before[1],
	    "workers replaced for a key that needs a restart");
}

START_TEST(test_reload_restart_key)
{
	reload_listen_ignored("\n[server]\nlisten = 127.0.0.1:1\n");
}
END_TEST

/*
 * With node_id empty the node id is the listen address.  A reload that
 * changes listen (which needs a restart) must not change the node id
 * derived from it either: that would replace every worker, disconnecting
 * every client, for a key the reload says it ignores.
 */
START_TEST(test_reload_listen_derived_node)
{
	struct run r;

	/* First the node id derived from listen (new workers: it changed). */
	reload_with(&r, "\n[server]\nnode_id =\n");
	ASSERT_STATUS(&r, 0, "reload with node_id emptied");
	run_free(&r);
	reload_listen_ignored("\n[server]\nnode_id =\n"
	    "listen = 127.0.0.1:1\n");
	/* Back to the file's own node id. */
	ctl(&r, "-s", sock0, "reload", NULL);
	ASSERT_STATUS(&r, 0, "reload of the file as it was");
	run_free(&r);
}
END_TEST

START_TEST(test_systemd_verify)
{
	char prog[PATH_MAX], man[PATH_MAX], dir[PATH_MAX], unit[PATH_MAX];
	char pages[32][NAME_MAX + 1], sec[PATH_MAX], from[PATH_MAX];
	char to[PATH_MAX], *text, *fixed;
	struct run_opts opts = { T_RUN, 0, NULL };
	char *argv[5];
	struct run r;
	int n, i;

	if (find_program("systemd-analyze", prog, sizeof(prog)) == NULL) {
		fprintf(stderr, "it_ops: test_systemd_verify skipped: no "
		    "systemd-analyze (scripts/deps.sh installs systemd)\n");
		return;
	}
	tmp_dir(dir, sizeof(dir), "unit");
	/* The shipped unit, started from the built chatd. */
	text = slurp(TOP_SRCDIR "/etc/chatd.service");
	ck_assert_msg(strstr(text, "ExecStart=/usr/sbin/chatd ") != NULL,
	    "etc/chatd.service: no ExecStart=/usr/sbin/chatd");
	ck_assert_msg(strstr(text, "ExecReload=/usr/sbin/chatctl reload\n") !=
	    NULL, "etc/chatd.service: no ExecReload=/usr/sbin/chatctl reload");
	fixed = replace_all(text, "/usr/sbin/chatd", TOP_BUILDDIR "/chatd");
	free(text);
	text = replace_all(fixed, "/usr/sbin/chatctl", TOP_BUILDDIR
	    "/chatctl");
	xfmt(unit, sizeof(unit), "%s/chatd.service", dir);
	write_file(unit, text, 0644);
	free(text);
	free(fixed);
	/* Its Documentation= pages must exist: a man tree of ours. */
	xfmt(man, sizeof(man), "%s/man", dir);
	ck_assert(mkdir(man, 0755) == 0);
	n = man_pages(pages, 32);
	for (i = 0; i < n; i++) {
		xfmt(sec, sizeof(sec), "%s/man%c", man,
		    pages[i][strlen(pages[i]) - 1]);
		if (mkdir(sec, 0755) == -1)
			ck_assert(errno == EEXIST);
		xfmt(from, sizeof(from), "%s/man/%s", TOP_SRCDIR,
		    pages[i]);
		xfmt(to, sizeof(to), "%s/%s", sec, pages[i]);
		ck_assert(symlink(from, to) == 0);
	}
	argv[0] = prog;
	argv[1] = (char *)"verify";
	if (find_program("man", from, sizeof(from)) != NULL) {
		opts.manpath = man;
		argv[2] = unit;
		argv[3] = NULL;
	} else {
		fprintf(stderr, "it_ops: no man(1): systemd-analyze verify "
		    "--man=no\n");
		argv[2] = (char *)"--man=no";
		argv[3] = unit;
		argv[4] = NULL;
	}
	run_argv(&r, dir, &opts, argv);
	ASSERT_STATUS(&r, 0, "systemd-analyze verify");
	ck_assert_msg(strstr(r.err, "chatd.service") == NULL, "systemd-analyze "
	    "verify warns about the unit: %s", r.err);
	run_free(&r);
	rm_tree(dir);
}
END_TEST

static int
file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* Assert DESTDIR/path exists (want 1) or not (want 0). */
static void
installed(const char *destdir, const char *path, int want)
{
	char full[PATH_MAX];

	xfmt(full, sizeof(full), "%s%s", destdir, path);
	ck_assert_msg(file_exists(full) == want, "%s %s", full, want ?
	    "not installed" : "left after uninstall");
}

static void
make_in_builddir(struct run *r, const char *destdir, const char *target)
{
	struct run_opts opts = { T_MAKE, 0, NULL };
	char dest[PATH_MAX + 16];
	char *argv[] = { (char *)MAKE_PROG, (char *)"-C",
	    (char *)TOP_BUILDDIR, (char *)target, dest, NULL };

	xfmt(dest, sizeof(dest), "DESTDIR=%s", destdir);
	run_argv(r, destdir, &opts, argv);
}

START_TEST(test_install)
{
	char dest[PATH_MAX], path[PATH_MAX], want[PATH_MAX], *text, *shipped;
	const char *files[] = {
	    INST_SBINDIR "/chatd", INST_SBINDIR "/chatctl",
	    INST_MANDIR "/man8/chatd.8", INST_MANDIR "/man8/chatctl.8",
	    INST_MANDIR "/man5/chatd.conf.5",
	    INST_MANDIR "/man7/chat-protocol.7",
	    DATADIR "/migrations/0001_initial.sql",
	};
	const char *conf = SYSCONFDIR "/chatd/chatd.conf";
	struct run r;
	struct stat st;
	size_t i;

	tmp_dir(dest, sizeof(dest), "destdir");
	make_in_builddir(&r, dest, "install");
	ASSERT_STATUS(&r, 0, "make install");
	run_free(&r);

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		installed(dest, files[i], 1);
	xfmt(path, sizeof(path), "%s%s/chatctl", dest, INST_SBINDIR);
	ck_assert(stat(path, &st) == 0 && (st.st_mode & S_IXUSR));

	/* The configuration: the shipped file, not readable by others. */
	xfmt(path, sizeof(path), "%s%s", dest, conf);
	ck_assert_msg(stat(path, &st) == 0, "%s not installed", path);
	ck_assert_msg((st.st_mode & 07777) == 0640, "%s has mode %o", path,
	    st.st_mode & 07777);
	text = slurp(path);
	shipped = slurp(TOP_SRCDIR "/etc/chatd.conf");
	ck_assert_msg(strcmp(text, shipped) == 0, "%s is not etc/chatd.conf",
	    path);
	free(text);

	/* The unit, with the configured paths. */
	if (INST_UNITDIR[0] != '\0') {
		installed(dest, INST_UNITDIR "/chatd.service", 1);
		xfmt(path, sizeof(path), "%s%s/chatd.service", dest,
		    INST_UNITDIR);
		text = slurp(path);
		xfmt(want, sizeof(want), "ExecStart=%s/chatd -c %s\n",
		    INST_SBINDIR, conf);
		ck_assert_msg(strstr(text, want) != NULL, "%s has no %s", path,
		    want);
		xfmt(want, sizeof(want), "ExecReload=%s/chatctl reload\n",
		    INST_SBINDIR);
		ck_assert_msg(strstr(text, want) != NULL, "%s has no %s", path,
		    want);
		ck_assert(strstr(text, "Type=notify") != NULL);
		free(text);
	} else
		fprintf(stderr, "it_ops: configured without a systemd unit "
		    "directory; the unit is not installed\n");
	if (file_exists(TOP_SRCDIR "/etc/nginx-chatd.conf"))
		installed(dest, INST_DOCDIR "/nginx-chatd.conf", 1);

	/* An operator's configuration survives a second install... */
	xfmt(path, sizeof(path), "%s%s", dest, conf);
	text = replace_all(shipped, "[server]\n", "[server]\nworkers = 3\n");
	write_file(path, text, 0640);
	make_in_builddir(&r, dest, "install");
	ASSERT_STATUS(&r, 0, "make install over an installed tree");
	ck_assert_msg(strstr(r.out, "not overwritten") != NULL,
	    "make install does not say it kept chatd.conf: %s", r.out);
	run_free(&r);
	free(text);
	text = slurp(path);
	ck_assert_msg(strstr(text, "workers = 3\n") != NULL,
	    "make install overwrote the changed %s", path);
	free(text);

	/* ... and uninstall, which removes everything else. */
	make_in_builddir(&r, dest, "uninstall");
	ASSERT_STATUS(&r, 0, "make uninstall");
	run_free(&r);
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		installed(dest, files[i], 0);
	if (INST_UNITDIR[0] != '\0')
		installed(dest, INST_UNITDIR "/chatd.service", 0);
	installed(dest, INST_DOCDIR "/nginx-chatd.conf", 0);
	installed(dest, conf, 1);

	/* The shipped configuration, unchanged, goes with uninstall. */
	write_file(path, shipped, 0640);
	make_in_builddir(&r, dest, "uninstall");
	ASSERT_STATUS(&r, 0, "make uninstall again");
	run_free(&r);
	installed(dest, conf, 0);
	free(shipped);
	rm_tree(dest);
}
END_TEST

/* --- suite ---------------------------------------------------------------- */

/*
 * A client of the control socket that sends a byte now and then and never
 * ends its line: the master gives it half a second for the whole request
 * (the limit was per read, so such a client held the master, its reaping
 * and its watchdog, for as long as it went on).
 */
START_TEST(test_control_trickle)
{
	struct sockaddr_un sun;
	long long t0, took;
	struct run r;
	pid_t kid;
	int fd, i, status;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	ck_assert(strlen(sock0) < sizeof(sun.sun_path));
	(void)strcpy(sun.sun_path, sock0);
	kid = fork();
	ck_assert(kid != -1);
	if (kid == 0) {
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd == -1 || connect(fd, (struct sockaddr *)&sun,
		    sizeof(sun)) == -1)
			_exit(1);
		for (i = 0; i < 20; i++) {	/* 4 s */
			if (send(fd, i == 0 ? "{" : " ", 1, MSG_NOSIGNAL) != 1)
				_exit(0);	/* closed by chatd */
			usleep(200 * 1000);
		}
		_exit(2);
	}
	harness_sleep_ms(100);		/* the master is reading it */
	t0 = harness_now_ms();
	ctl(&r, "-s", sock0, "status", NULL);
	took = harness_now_ms() - t0;
	ASSERT_STATUS(&r, 0, "status beside a trickling client");
	run_free(&r);
	ck_assert(waitpid(kid, &status, 0) == kid);
	ck_assert_msg(took < 2000, "status took %lld ms while another client "
	    "trickled a request in", took);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "the trickling client was not cut off (status 0x%x)", status);
}
END_TEST

/* A control_socket path that names a file which is not a socket: chatd
 * refuses to start, and the file stays as it was. */
START_TEST(test_control_socket_not_a_socket)
{
	char path[PATH_MAX], extra[PATH_MAX + 64], *text;

	xfmt(path, sizeof(path), "%s/not-a-socket.txt", H.dir);
	write_file(path, "keep me\n", 0600);
	xfmt(extra, sizeof(extra), "[server]\ncontrol_socket = %s\n", path);
	ck_assert_msg(harness_start_chatd(&H, 2, extra) != 0, "chatd started "
	    "with control_socket naming a regular file");
	ck_assert_msg(harness_log_contains(&H, 2, "exists and is not a "
	    "socket"), "chatd did not say why it did not start");
	text = slurp(path);
	ck_assert_msg(text != NULL && strcmp(text, "keep me\n") == 0,
	    "%s was replaced or removed", path);
	free(text);
}
END_TEST

static TCase *
tcase_new(Suite *s, const char *name, int servers)
{
	TCase *tc = tcase_create(name);

	if (servers)
		tcase_add_unchecked_fixture(tc, servers_setup,
		    servers_teardown);
	tcase_set_timeout(tc, TCASE_TIMEOUT);
	suite_add_tcase(s, tc);
	return tc;
}

static Suite *
ops_suite(void)
{
	Suite *s = suite_create("it_ops");
	TCase *tc;

	tc = tcase_new(s, "docs", 0);
	tcase_add_test(tc, test_mandoc_lint);
	tcase_add_test(tc, test_systemd_verify);

	tc = tcase_new(s, "install", 0);
	tcase_set_timeout(tc, TCASE_TIMEOUT_INSTALL);
	tcase_add_test(tc, test_install);

	tc = tcase_new(s, "chatctl", 1);
	tcase_add_test(tc, test_status);
	tcase_add_test(tc, test_status_json);
	tcase_add_test(tc, test_who);
	tcase_add_test(tc, test_kick);
	tcase_add_test(tc, test_stats_move);
	tcase_add_test(tc, test_not_reachable);
	tcase_add_test(tc, test_socket_from_conf);
	tcase_add_test(tc, test_unprivileged);
	tcase_add_test(tc, test_control_trickle);
	tcase_add_test(tc, test_control_socket_not_a_socket);

	tc = tcase_new(s, "db", 1);
	tcase_add_test(tc, test_db_status);
	tcase_add_test(tc, test_db_migrate_idempotent);
	tcase_add_test(tc, test_db_init);
	tcase_add_test(tc, test_db_upgrade);

	tc = tcase_new(s, "stop", 1);
	tcase_add_test(tc, test_stop);

	/* Last: it replaces chatd-0's workers. */
	tc = tcase_new(s, "reload", 1);
	tcase_add_test(tc, test_reload_bad_file);
	tcase_add_test(tc, test_reload_restart_key);
	tcase_add_test(tc, test_reload_listen_derived_node);
	tcase_add_test(tc, test_reload_new_workers);
	tcase_add_test(tc, test_reload_waits_for_workers);
	tcase_add_test(tc, test_reload_gives_up);
	tcase_add_test(tc, test_reload_kills_hung_worker);
	tcase_add_test(tc, test_reload);
	return s;
}

int
main(void)
{
	return harness_run_suite(ops_suite(), &H, servers_state != 0);
}
