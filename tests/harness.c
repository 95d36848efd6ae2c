/*
 * harness.c - owns the real servers of the integration tests: a private
 * mariadbd, redis-server and chatd instances, each a child of the test
 * runner, on free loopback ports, in one temporary directory.
 *
 * Nothing may outlive the runner, whatever way it ends: every child gets
 * PR_SET_PDEATHSIG, runs in a process group of its own (so its workers
 * can be killed with it and a terminal's ^C reaches only the runner),
 * and cleanup runs at exit and on fatal signals.  Check forks each test,
 * so the shared servers are stopped only by the process that called
 * harness_init; a forked test stops only the chatd instances it started
 * itself.  Instances started in forked tests are also recorded in a
 * MAP_SHARED page, so the creator can kill what a crashed or timed-out
 * test left behind.
 *
 * This is test code: failures say why on stderr.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <poll.h>
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

/* Every wait is bounded; these are the bounds, in milliseconds. */
#define WAIT_INSTALL_MS		120000	/* mariadb-install-db */
#define WAIT_MARIADB_MS		60000	/* mariadbd until it answers */
#define WAIT_REDIS_MS		20000	/* redis-server until PONG */
#define WAIT_CHATD_MS		30000	/* chatd until port + "ready" */
#define WAIT_CLIENT_MS		60000	/* one mariadb client run */
#define WAIT_STOP_MS		30000	/* a server after SIGTERM */
#define WAIT_KILL_MS		5000	/* anything after SIGKILL */
#define WAIT_CONNECT_MS		1000	/* one TCP connect or PING */
#define POLL_MS			20	/* sleep between readiness probes */

#define LOG_TAIL_BYTES		4096	/* of a log printed on failure */

extern char **environ;

/*
 * chatd instances started by any process of the test run: a chatd
 * started inside a forked test is invisible in the creator's copy of
 * struct harness, so the master pid (= its process group) and who
 * started it are kept here, in memory shared across fork.
 */
struct harness_shared {
	pid_t pgid[HARNESS_MAX_CHATD];
	pid_t owner[HARNESS_MAX_CHATD];
};

static const int harness_signals[] = { SIGINT, SIGTERM, SIGABRT, SIGSEGV };
#define NSIGNALS (sizeof(harness_signals) / sizeof(harness_signals[0]))

/* The one harness the exit and signal handlers clean up after. */
static struct {
	struct harness *h;
	pid_t creator;			/* the process that ran harness_init */
	int keep;			/* CHATD_TEST_KEEP=1: keep h->dir */
	int atexit_registered;
	int handlers_installed;
	struct harness_shared *shared;
	struct sigaction old[NSIGNALS];	/* chained to after our cleanup */
} hs;

/* Environment variables a child must not see: they would point the
 * mariadb client, or chatd's sd_notify, somewhere else. */
static const char *const env_drop[] = {
	"MYSQL_PWD", "MYSQL_HOST", "MYSQL_TCP_PORT", "MYSQL_UNIX_PORT",
	"NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES",
	"WATCHDOG_PID", "WATCHDOG_USEC", NULL
};

static void harness_on_signal(int, siginfo_t *, void *);

/* --- time --------------------------------------------------------------- */

long long
harness_now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
harness_sleep_ms(long ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* --- files -------------------------------------------------------------- */

/*
 * snprintf that says when it truncated.  Paths here are short (harness_init
 * keeps h->dir short enough for a socket path), so callers ignore it.
 */
static int __attribute__((format(printf, 3, 4)))
fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(buf, len, f, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len) {
		fprintf(stderr, "harness: string too long: %s...\n", buf);
		return -1;
	}
	return 0;
}

static off_t
file_size(const char *path)
{
	struct stat st;

	if (stat(path, &st) == -1)
		return 0;
	return st.st_size;
}

/*
 * Read path from offset `from` to its end into a NUL-terminated malloc'd
 * buffer (*lenp bytes, may contain NULs).  NULL when it cannot be read.
 */
static char *
read_from(const char *path, off_t from, size_t *lenp)
{
	char *buf = NULL, *nbuf;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	if (from > 0 && lseek(fd, from, SEEK_SET) == -1) {
		(void)close(fd);
		return NULL;
	}
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			if ((nbuf = realloc(buf, cap + 1)) == NULL) {
				free(buf);
				(void)close(fd);
				return NULL;
			}
			buf = nbuf;
		}
		n = read(fd, buf + len, cap - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	(void)close(fd);
	buf[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return buf;
}

/* 1 when needle occurs in buf; as a whole word when `word` is set, so
 * that "ready" does not match "already". */
static int
buf_contains(const char *buf, size_t len, const char *needle, int word)
{
	size_t nlen = strlen(needle);
	const char *p = buf, *end = buf + len;

	if (nlen == 0)
		return 1;
	while ((p = memmem(p, (size_t)(end - p), needle, nlen)) != NULL) {
		if (!word ||
		    ((p == buf || !isalnum((unsigned char)p[-1])) &&
		    (p + nlen == end || !isalnum((unsigned char)p[nlen]))))
			return 1;
		p++;
	}
	return 0;
}

static int
file_contains(const char *path, off_t from, const char *needle, int word)
{
	size_t len;
	char *buf;
	int found;

	if ((buf = read_from(path, from, &len)) == NULL)
		return 0;
	found = buf_contains(buf, len, needle, word);
	free(buf);
	return found;
}

/* Print the end of a log (what was written since `from`) to stderr. */
static void
log_tail(const char *path, off_t from)
{
	off_t size = file_size(path), start = from;
	char *buf, *line, *nl;
	size_t len;

	if (size - start > LOG_TAIL_BYTES)
		start = size - LOG_TAIL_BYTES;
	if ((buf = read_from(path, start, &len)) == NULL || len == 0) {
		fprintf(stderr, "harness: %s is empty or unreadable\n", path);
		free(buf);
		return;
	}
	fprintf(stderr, "harness: --- end of %s ---\n", path);
	for (line = buf; *line != '\0'; line = nl + 1) {
		if ((nl = strchr(line, '\n')) == NULL) {
			fprintf(stderr, "  | %s\n", line);
			break;
		}
		fprintf(stderr, "  | %.*s\n", (int)(nl - line), line);
	}
	fprintf(stderr, "harness: ---\n");
	free(buf);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) == -1 && errno != ENOENT)
		fprintf(stderr, "harness: remove %s: %s\n", path,
		    strerror(errno));
	return 0;
}

/* --- /proc -------------------------------------------------------------- */

struct proc_info {
	char state;
	pid_t ppid;
	pid_t pgrp;
};

/* 0 with *pi filled, -1 when pid does not exist. */
static int
proc_info(pid_t pid, struct proc_info *pi)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd, ppid, pgrp;

	(void)fmt(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	(void)close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* The command name is in parentheses and may hold anything. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 1, " %c %d %d", &pi->state, &ppid, &pgrp) != 3)
		return -1;
	pi->ppid = ppid;
	pi->pgrp = pgrp;
	return 0;
}

/* 1 while pid exists and is not a zombie. */
static int
proc_alive(pid_t pid)
{
	struct proc_info pi;

	if (pid <= 0 || proc_info(pid, &pi) == -1)
		return 0;
	return pi.state != 'Z' && pi.state != 'X';
}

/*
 * Live (non-zombie) processes whose parent (by_parent) or process group
 * is `id`; their pids go to pids[0..max).  Returns how many were found,
 * which may exceed max.
 */
static int
proc_scan(pid_t id, int by_parent, pid_t *pids, int max)
{
	struct proc_info pi;
	struct dirent *de;
	DIR *d;
	char *end;
	long pid;
	int n = 0;

	if ((d = opendir("/proc")) == NULL) {
		fprintf(stderr, "harness: opendir /proc: %s\n",
		    strerror(errno));
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		pid = strtol(de->d_name, &end, 10);
		if (*end != '\0' || pid <= 0)
			continue;
		if (proc_info((pid_t)pid, &pi) == -1 || pi.state == 'Z' ||
		    pi.state == 'X')
			continue;
		if ((by_parent ? pi.ppid : pi.pgrp) != id)
			continue;
		if (pids != NULL && n < max)
			pids[n] = (pid_t)pid;
		n++;
	}
	(void)closedir(d);
	return n;
}

/* --- processes ---------------------------------------------------------- */

/* A copy of environ without env_drop, built before fork. */
static char **
child_env(void)
{
	char **env;
	size_t n, i, j, k, len;

	for (n = 0; environ[n] != NULL; n++)
		;
	if ((env = calloc(n + 1, sizeof(*env))) == NULL)
		return NULL;
	for (i = j = 0; i < n; i++) {
		for (k = 0; env_drop[k] != NULL; k++) {
			len = strlen(env_drop[k]);
			if (strncmp(environ[i], env_drop[k], len) == 0 &&
			    environ[i][len] == '=')
				break;
		}
		if (env_drop[k] == NULL)
			env[j++] = environ[i];
	}
	env[j] = NULL;
	return env;
}

/* Open path as a descriptor >= 3 (so dup2 onto 0..2 cannot clobber it),
 * close-on-exec. */
static int
open_high(const char *path, int flags)
{
	int fd, hfd;

	if ((fd = open(path, flags | O_CLOEXEC, 0600)) == -1)
		return -1;
	if (fd >= 3)
		return fd;
	hfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	(void)close(fd);
	return hfd;
}

static void
write_str(int fd, const char *s)
{
	(void)!write(fd, s, strlen(s));
}

/* In the child between fork and exec: async-signal-safe calls only. */
static void __attribute__((noreturn))
child_exec(char *const argv[], char **envp, const int fds[3], pid_t parent,
    int maxfd)
{
	struct sigaction sa;
	sigset_t none;
	int s, fd, fl;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (s = 1; s < NSIG; s++)
		(void)sigaction(s, &sa, NULL);
	(void)sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	/* Die with the runner; and if it died before prctl, die now. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
		_exit(127);
	(void)setpgid(0, 0);
	for (fd = 0; fd < 3; fd++) {
		if (fds[fd] == fd) {
			if ((fl = fcntl(fd, F_GETFD)) != -1)
				(void)fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
		} else if (dup2(fds[fd], fd) == -1)
			_exit(127);
	}
	/* A test's client sockets must not stay open in a server. */
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3U, ~0U, 0U) == -1)
#endif
		for (fd = 3; fd < maxfd; fd++)
			(void)close(fd);
	execve(argv[0], argv, envp);
	write_str(2, "harness: cannot execute ");
	write_str(2, argv[0]);
	write_str(2, "\n");
	_exit(127);
}

/*
 * Start argv[0] (an absolute path) as a child in its own process group,
 * with PR_SET_PDEATHSIG.  stdin comes from in_path (NULL: /dev/null);
 * stdout and stderr are appended to out_path and err_path (NULL: the
 * runner's; the same path shares one descriptor).  Returns the pid or -1.
 */
static pid_t
spawn(char *const argv[], const char *in_path, const char *out_path,
    const char *err_path)
{
	int fds[3] = { -1, 1, 2 }, i, maxfd, saved;
	const int wflags = O_WRONLY | O_CREAT | O_APPEND;
	const char *bad = NULL;
	char **envp = NULL;
	pid_t parent, pid = -1;
	long om;

	if ((fds[0] = open_high(in_path ? in_path : "/dev/null",
	    O_RDONLY)) == -1)
		bad = in_path ? in_path : "/dev/null";
	else if (out_path != NULL &&
	    (fds[1] = open_high(out_path, wflags)) == -1)
		bad = out_path;
	else if (err_path != NULL) {
		if (out_path != NULL && strcmp(out_path, err_path) == 0)
			fds[2] = fds[1];
		else if ((fds[2] = open_high(err_path, wflags)) == -1)
			bad = err_path;
	}
	if (bad != NULL) {
		fprintf(stderr, "harness: %s: open %s: %s\n", argv[0], bad,
		    strerror(errno));
		goto out;
	}
	if ((envp = child_env()) == NULL) {
		fprintf(stderr, "harness: %s: out of memory\n", argv[0]);
		goto out;
	}
	om = sysconf(_SC_OPEN_MAX);
	maxfd = (om <= 0 || om > 65536) ? 65536 : (int)om;
	parent = getpid();
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == 0)
		child_exec(argv, envp, fds, parent, maxfd);
	if (pid == -1)
		fprintf(stderr, "harness: fork for %s: %s\n", argv[0],
		    strerror(errno));
	else	/* Also here, so a kill(-pid) right after cannot miss. */
		(void)setpgid(pid, pid);
out:
	saved = errno;
	for (i = 0; i < 3; i++)
		if (fds[i] > 2 && (i != 2 || fds[2] != fds[1]))
			(void)close(fds[i]);
	free(envp);
	errno = saved;
	return pid;
}

/*
 * Wait up to ms for child pid.  1 when it exited (*status set), 0 when it
 * is still running, -1 on error (errno ECHILD: not a child of this
 * process).
 */
static int
wait_child(pid_t pid, int *status, long ms)
{
	long long deadline = harness_now_ms() + ms;
	pid_t r;

	for (;;) {
		r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 1;
		if (r == -1 && errno != EINTR)
			return -1;
		if (harness_now_ms() >= deadline)
			return 0;
		harness_sleep_ms(10);
	}
}

/* For a process that is not our child: 1 once it is gone (or a zombie)
 * within ms, else 0. */
static int
wait_gone(pid_t pid, long ms)
{
	long long deadline = harness_now_ms() + ms;

	while (proc_alive(pid)) {
		if (harness_now_ms() >= deadline)
			return 0;
		harness_sleep_ms(10);
	}
	return 1;
}

/* Wait up to ms until no live process is left in process group pgid. */
static int
wait_group_gone(pid_t pgid, long ms)
{
	long long deadline = harness_now_ms() + ms;

	while (proc_scan(pgid, 0, NULL, 0) > 0) {
		if (harness_now_ms() >= deadline)
			return 0;
		harness_sleep_ms(10);
	}
	return 1;
}

/*
 * Send sig to pid (a group leader we spawned) and wait up to ms for it;
 * past that, SIGKILL its whole group.  Returns its wait status, or -1
 * when there is none to be had (error, not our child, already reaped).
 */
static int
stop_pid(const char *what, pid_t pid, int sig, long ms)
{
	int status = -1, r;

	if (kill(pid, sig) == -1) {
		if (errno != ESRCH)
			fprintf(stderr, "harness: kill %s (pid %d): %s\n", what,
			    (int)pid, strerror(errno));
		if (waitpid(pid, &status, WNOHANG) != pid)
			status = -1;
		return status;
	}
	/* A test may have left it stopped (SIGSTOP): let it see sig. */
	(void)kill(pid, SIGCONT);
	r = wait_child(pid, &status, ms);
	if (r == 1)
		return status;
	if (r == -1 && errno != ECHILD) {
		fprintf(stderr, "harness: waitpid %s (pid %d): %s\n", what,
		    (int)pid, strerror(errno));
		return -1;
	}
	if (r == -1) {
		/* Started by another process of the run: watch /proc. */
		if (wait_gone(pid, ms))
			return -1;
	}
	fprintf(stderr, "harness: %s (pid %d) still running %ld s after "
	    "signal %d; sending SIGKILL\n", what, (int)pid, ms / 1000, sig);
	(void)kill(-pid, SIGKILL);
	(void)kill(pid, SIGKILL);
	if (r == 0 && wait_child(pid, &status, WAIT_KILL_MS) == 1)
		return status;
	(void)wait_gone(pid, WAIT_KILL_MS);
	return -1;
}

/*
 * Run argv to completion within ms.  Returns its exit code, or -1 when
 * it could not start, timed out (then it is killed) or died of a signal;
 * the reason is on stderr.
 */
static int
run(char *const argv[], const char *in_path, const char *out_path,
    const char *err_path, long ms)
{
	int status;
	pid_t pid;
	int r;

	if ((pid = spawn(argv, in_path, out_path, err_path)) == -1)
		return -1;
	r = wait_child(pid, &status, ms);
	if (r == 0) {
		fprintf(stderr, "harness: %s did not finish within %ld s; "
		    "killing it\n", argv[0], ms / 1000);
		(void)kill(-pid, SIGKILL);
		(void)wait_child(pid, &status, WAIT_KILL_MS);
		return -1;
	}
	if (r == -1) {
		fprintf(stderr, "harness: waitpid %s: %s\n", argv[0],
		    strerror(errno));
		return -1;
	}
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "harness: %s killed by signal %d\n", argv[0],
		    WTERMSIG(status));
		return -1;
	}
	return WEXITSTATUS(status);
}

/* Describe a wait status for a message. */
static const char *
status_str(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		(void)fmt(buf, len, "exited with status %d",
		    WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		(void)fmt(buf, len, "killed by signal %d",
		    WTERMSIG(status));
	else
		(void)fmt(buf, len, "wait status %#x", status);
	return buf;
}

/* --- sockets ------------------------------------------------------------ */

/* A TCP connection to 127.0.0.1:port within ms, or -1. */
static int
tcp_connect(int port, long ms)
{
	struct sockaddr_in sin;
	struct pollfd pfd;
	socklen_t sl;
	int fd, err, fl;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0)) == -1)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		if (errno != EINPROGRESS)
			goto fail;
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, (int)ms) != 1)
			goto fail;
		sl = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) == -1 ||
		    err != 0)
			goto fail;
	}
	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == -1)
		goto fail;
	return fd;
fail:
	(void)close(fd);
	return -1;
}

static int
unix_connect_ok(const char *path)
{
	struct sockaddr_un sun;
	int fd, ok;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return 0;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	ok = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
	(void)close(fd);
	return ok;
}

/* 1 when Redis on port answers PING with +PONG. */
static int
redis_ping(int port)
{
	static const char ping[] = "PING\r\n";
	struct pollfd pfd;
	char buf[64];
	ssize_t n;
	size_t got = 0;
	long long deadline;
	int fd, ok = 0;

	if ((fd = tcp_connect(port, WAIT_CONNECT_MS)) == -1)
		return 0;
	if (send(fd, ping, sizeof(ping) - 1, MSG_NOSIGNAL) !=
	    (ssize_t)(sizeof(ping) - 1))
		goto out;
	deadline = harness_now_ms() + WAIT_CONNECT_MS;
	while (got < 7 && harness_now_ms() < deadline) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, (int)(deadline - harness_now_ms())) != 1)
			break;
		if ((n = read(fd, buf + got, sizeof(buf) - 1 - got)) <= 0)
			break;
		got += (size_t)n;
	}
	ok = got >= 5 && memcmp(buf, "+PONG", 5) == 0;
out:
	(void)close(fd);
	return ok;
}

int
harness_port_open(int port)
{
	int fd = tcp_connect(port, WAIT_CONNECT_MS);

	if (fd == -1)
		return 0;
	(void)close(fd);
	return 1;
}

int
harness_free_port(void)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int fd, port = -1;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		fprintf(stderr, "harness: socket: %s\n", strerror(errno));
		return -1;
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) == -1)
		fprintf(stderr, "harness: bind 127.0.0.1:0: %s\n",
		    strerror(errno));
	else
		port = ntohs(sin.sin_port);
	(void)close(fd);
	return port;
}

/* --- cleanup on exit and signals ---------------------------------------- */

/*
 * On a fatal signal: SIGKILL what this process is responsible for and,
 * in the creator, remove the shm names and the directory.  Only
 * async-signal-safe calls (the directory is removed by exec'ing rm).
 */
static void
emergency_stop(void)
{
	struct harness *h = hs.h;
	pid_t me = getpid(), pid;
	char *argv[5];
	int i;

	for (i = 0; hs.shared != NULL && i < HARNESS_MAX_CHATD; i++)
		if (hs.shared->pgid[i] > 0 &&
		    (me == hs.creator || hs.shared->owner[i] == me))
			(void)kill(-hs.shared->pgid[i], SIGKILL);
	/* nginx's workers outlive a killed master: kill the group. */
	if (h != NULL && h->nginx_pid > 0 && h->nginx_owner == me)
		(void)kill(-h->nginx_pid, SIGKILL);
	if (h == NULL || me != hs.creator)
		return;
	hs.h = NULL;
	if (h->nginx_pid > 0)
		(void)waitpid(h->nginx_pid, NULL, 0);
	for (i = 0; i < HARNESS_MAX_CHATD; i++)
		if (h->chatd[i].pid > 0)
			(void)kill(-h->chatd[i].pid, SIGKILL);
	if (h->redis_pid > 0)
		(void)kill(-h->redis_pid, SIGKILL);
	if (h->mariadb_pid > 0)
		(void)kill(-h->mariadb_pid, SIGKILL);
	/* SIGKILLed processes exit promptly; reap them before rm. */
	for (i = 0; i < HARNESS_MAX_CHATD; i++)
		if (h->chatd[i].pid > 0)
			(void)waitpid(h->chatd[i].pid, NULL, 0);
	if (h->redis_pid > 0)
		(void)waitpid(h->redis_pid, NULL, 0);
	if (h->mariadb_pid > 0)
		(void)waitpid(h->mariadb_pid, NULL, 0);
	for (i = 0; i < HARNESS_MAX_CHATD; i++)
		if (h->chatd[i].shm_name[0] != '\0') {
			char lock[sizeof(h->chatd[i].shm_name) + 8];

			(void)shm_unlink(h->chatd[i].shm_name);
			(void)snprintf(lock, sizeof(lock), "%s.lock",
			    h->chatd[i].shm_name);
			(void)shm_unlink(lock);
		}
	if (h->dir[0] == '\0' || hs.keep)
		return;
	argv[0] = (char *)"/bin/rm";
	argv[1] = (char *)"-rf";
	argv[2] = (char *)"--";
	argv[3] = h->dir;
	argv[4] = NULL;
	if ((pid = fork()) == 0) {
		execve(argv[0], argv, environ);
		_exit(127);
	}
	if (pid > 0)
		(void)waitpid(pid, NULL, 0);
}

static void
harness_on_signal(int sig, siginfo_t *si, void *uc)
{
	struct sigaction *old = NULL;
	int saved = errno;
	size_t i;

	for (i = 0; i < NSIGNALS; i++)
		if (harness_signals[i] == sig)
			old = &hs.old[i];
	emergency_stop();
	if (old != NULL && (old->sa_flags & SA_SIGINFO) &&
	    old->sa_sigaction != NULL)
		old->sa_sigaction(sig, si, uc);
	else if (old != NULL && old->sa_handler != SIG_DFL &&
	    old->sa_handler != SIG_IGN)
		old->sa_handler(sig);
	else if (old == NULL || old->sa_handler == SIG_DFL) {
		/* Die of the signal as if we had not been here; it is
		 * blocked until we return. */
		struct sigaction dfl;

		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		(void)sigaction(sig, &dfl, NULL);
		(void)raise(sig);
	}
	errno = saved;
}

static void
install_handlers(void)
{
	struct sigaction sa, cur;
	size_t i;

	if (hs.handlers_installed)
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = harness_on_signal;
	sa.sa_flags = SA_SIGINFO;
	(void)sigemptyset(&sa.sa_mask);
	for (i = 0; i < NSIGNALS; i++) {
		if (sigaction(harness_signals[i], NULL, &cur) == -1)
			continue;
		if ((cur.sa_flags & SA_SIGINFO) &&
		    cur.sa_sigaction == harness_on_signal)
			continue;
		/* An ignored ^C (a background job) stays ignored. */
		if (!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_IGN)
			continue;
		hs.old[i] = cur;
		(void)sigaction(harness_signals[i], &sa, NULL);
	}
	hs.handlers_installed = 1;
}

/* Put back what was there before harness_init, unless someone (Check
 * restoring its own) replaced our handler meanwhile. */
static void
restore_handlers(void)
{
	struct sigaction cur;
	size_t i;

	if (!hs.handlers_installed)
		return;
	for (i = 0; i < NSIGNALS; i++)
		if (sigaction(harness_signals[i], NULL, &cur) == 0 &&
		    (cur.sa_flags & SA_SIGINFO) &&
		    cur.sa_sigaction == harness_on_signal)
			(void)sigaction(harness_signals[i], &hs.old[i], NULL);
	hs.handlers_installed = 0;
}

static void chatd_stop(struct harness *, int, int);

static void
harness_atexit(void)
{
	struct harness *h = hs.h;
	int i;

	if (h == NULL)
		return;
	if (getpid() == hs.creator) {
		harness_stop_all(h);
		return;
	}
	/* A forked test: only what it started itself is its to stop. */
	if (h->nginx_pid > 0 && h->nginx_owner == getpid())
		(void)harness_stop_nginx(h);
	for (i = 0; i < HARNESS_MAX_CHATD; i++)
		if (h->chatd[i].pid > 0 && hs.shared != NULL &&
		    hs.shared->owner[i] == getpid())
			chatd_stop(h, i, 1);
}

/* --- init ---------------------------------------------------------------- */

int
harness_init(struct harness *h)
{
	struct sockaddr_un sun;
	unsigned char rnd[16];
	const char *tmp, *keep;
	char tmpl[PATH_MAX];
	size_t i;
	int n;

	if (hs.h != NULL && getpid() == hs.creator) {
		fprintf(stderr, "harness: init: the previous harness was not "
		    "stopped; stopping it now\n");
		harness_stop_all(hs.h);
	}
	memset(h, 0, sizeof(*h));
	tmp = getenv("TMPDIR");
	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	/* mariadbd's socket lives in the directory: keep its path short
	 * enough for sun_path. */
	n = snprintf(tmpl, sizeof(tmpl), "%s/chatd-test-XXXXXX", tmp);
	if (n < 0 ||
	    (size_t)n + sizeof("/mysql.sock") > sizeof(sun.sun_path)) {
		fprintf(stderr, "harness: TMPDIR %s is too long for a Unix "
		    "socket path; using /tmp\n", tmp);
		(void)fmt(tmpl, sizeof(tmpl), "/tmp/chatd-test-XXXXXX");
	}
	if (mkdtemp(tmpl) == NULL) {
		fprintf(stderr, "harness: mkdtemp %s: %s\n", tmpl,
		    strerror(errno));
		return -1;
	}
	(void)fmt(h->dir, sizeof(h->dir), "%s", tmpl);
	(void)fmt(h->db_name, sizeof(h->db_name), "chat");
	(void)fmt(h->db_user, sizeof(h->db_user), "chatd");
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		fprintf(stderr, "harness: getrandom: %s\n", strerror(errno));
		(void)rmdir(h->dir);
		h->dir[0] = '\0';
		return -1;
	}
	for (i = 0; i < sizeof(rnd); i++)
		(void)snprintf(h->db_password + 2 * i, 3, "%02x", rnd[i]);
	for (n = 0; n < HARNESS_MAX_CHATD; n++)
		(void)fmt(h->chatd[n].shm_name,
		    sizeof(h->chatd[n].shm_name), "/chatd-test-%d-%d",
		    (int)getpid(), n);

	/* A harness made inside a forked test gets its own page, not the
	 * one it shares with its parent. */
	if (hs.shared != NULL && hs.creator != getpid()) {
		(void)munmap(hs.shared, sizeof(*hs.shared));
		hs.shared = NULL;
	}
	if (hs.shared == NULL) {
		hs.shared = mmap(NULL, sizeof(*hs.shared),
		    PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (hs.shared == MAP_FAILED) {
			fprintf(stderr, "harness: mmap: %s\n",
			    strerror(errno));
			hs.shared = NULL;
			(void)rmdir(h->dir);
			h->dir[0] = '\0';
			return -1;
		}
	}
	memset(hs.shared, 0, sizeof(*hs.shared));
	hs.h = h;
	hs.creator = getpid();
	keep = getenv("CHATD_TEST_KEEP");
	hs.keep = keep != NULL && strcmp(keep, "1") == 0;
	if (!hs.atexit_registered) {
		if (atexit(harness_atexit) != 0) {
			fprintf(stderr, "harness: atexit failed\n");
			hs.h = NULL;
			(void)rmdir(h->dir);
			h->dir[0] = '\0';
			return -1;
		}
		hs.atexit_registered = 1;
	}
	install_handlers();
	return 0;
}

/* --- MariaDB ------------------------------------------------------------- */

/* Options given to both mariadb-install-db and mariadbd: small and fast,
 * durability traded away (the data is thrown away anyway). */
static const char *const mariadb_tuning[] = {
	"--innodb-buffer-pool-size=32M",
	"--innodb-log-file-size=8M",
	"--innodb-flush-log-at-trx-commit=2",
	"--loose-skip-innodb-doublewrite",
	"--skip-log-bin",
	"--character-set-server=utf8mb4",
	"--collation-server=utf8mb4_unicode_ci",
};
#define NTUNING (sizeof(mariadb_tuning) / sizeof(mariadb_tuning[0]))

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Run the mariadb client as root over the socket.  db may be NULL.  The
 * statements come from sql, or (sql NULL) from the file in_path.  stdout
 * is appended to out_path, stderr to err_path (NULL: the runner's).
 * `raw` prints bare values (no column names, no escaping).  Returns the
 * client's exit code or -1.
 */
static int
mariadb_client(struct harness *h, const char *db, const char *sql,
    const char *in_path, const char *out_path, const char *err_path,
    int raw)
{
	char sock[PATH_MAX + 16], dbarg[128];
	char *argv[16], *exec = NULL;
	int n = 0, r;

	(void)fmt(sock, sizeof(sock), "--socket=%s", h->mariadb_socket);
	argv[n++] = (char *)MARIADB_CLIENT;
	argv[n++] = (char *)"--no-defaults";
	argv[n++] = (char *)"--protocol=SOCKET";
	argv[n++] = sock;
	argv[n++] = (char *)"--user=root";
	argv[n++] = (char *)"--connect-timeout=5";
	argv[n++] = (char *)"--default-character-set=utf8mb4";
	argv[n++] = (char *)"--batch";
	if (raw) {
		argv[n++] = (char *)"--skip-column-names";
		argv[n++] = (char *)"--raw";
	}
	if (db != NULL) {
		(void)fmt(dbarg, sizeof(dbarg), "--database=%s", db);
		argv[n++] = dbarg;
	}
	if (sql != NULL) {
		if (asprintf(&exec, "--execute=%s", sql) == -1) {
			fprintf(stderr, "harness: out of memory\n");
			return -1;
		}
		argv[n++] = exec;
	}
	argv[n] = NULL;
	r = run(argv, in_path, out_path, err_path, WAIT_CLIENT_MS);
	free(exec);
	return r;
}

static int
mariadb_install(struct harness *h, const char *datadir)
{
	char dd[PATH_MAX + 16], logpath[PATH_MAX], td[PATH_MAX + 16];
	char *argv[24];
	size_t i;
	int n = 0, r;

	(void)fmt(dd, sizeof(dd), "--datadir=%s", datadir);
	/* Its bootstrap server's temporary tables stay in our directory:
	 * parallel test binaries sharing /tmp collided there. */
	(void)fmt(td, sizeof(td), "--tmpdir=%s", h->dir);
	(void)fmt(logpath, sizeof(logpath), "%s/mariadb-install.log",
	    h->dir);
	argv[n++] = (char *)MARIADB_INSTALL_DB;
	argv[n++] = (char *)"--no-defaults";
	argv[n++] = dd;
	/* Root without a password over the socket: the same for a root
	 * CI and a developer's own account (socket auth would map to the
	 * Unix user).  The server only listens on loopback. */
	argv[n++] = (char *)"--auth-root-authentication-method=normal";
	argv[n++] = (char *)"--skip-test-db";
	argv[n++] = (char *)"--skip-name-resolve";
	argv[n++] = td;
	if (geteuid() == 0)
		argv[n++] = (char *)"--user=root";
	for (i = 0; i < NTUNING; i++)
		argv[n++] = (char *)mariadb_tuning[i];
	argv[n] = NULL;
	r = run(argv, NULL, logpath, logpath, WAIT_INSTALL_MS);
	if (r != 0) {
		fprintf(stderr, "harness: %s failed (%d)\n", MARIADB_INSTALL_DB,
		    r);
		log_tail(logpath, 0);
		return -1;
	}
	return 0;
}

/* Start mariadbd and wait until it answers.  0, -1, or -2 when the port
 * was taken (worth another try). */
static int
mariadb_launch(struct harness *h, const char *datadir)
{
	char dd[PATH_MAX + 16], sock[PATH_MAX + 16], port[32];
	char pidf[PATH_MAX + 16], errf[PATH_MAX + 16], tmpd[PATH_MAX + 16];
	char errlog[PATH_MAX], sqllog[PATH_MAX], st[64];
	char *argv[40];
	long long deadline;
	off_t off;
	size_t i;
	int n = 0, status;
	pid_t pid;

	(void)fmt(errlog, sizeof(errlog), "%s/mariadb.err", h->dir);
	(void)fmt(sqllog, sizeof(sqllog), "%s/sql.log", h->dir);
	(void)fmt(dd, sizeof(dd), "--datadir=%s", datadir);
	(void)fmt(sock, sizeof(sock), "--socket=%s", h->mariadb_socket);
	(void)fmt(port, sizeof(port), "--port=%d", h->mariadb_port);
	(void)fmt(pidf, sizeof(pidf), "--pid-file=%s/mariadb.pid",
	    h->dir);
	(void)fmt(errf, sizeof(errf), "--log-error=%s", errlog);
	(void)fmt(tmpd, sizeof(tmpd), "--tmpdir=%s", h->dir);
	argv[n++] = (char *)MARIADBD;
	argv[n++] = (char *)"--no-defaults";
	if (geteuid() == 0)
		argv[n++] = (char *)"--user=root";
	argv[n++] = dd;
	argv[n++] = sock;
	argv[n++] = port;
	argv[n++] = (char *)"--bind-address=127.0.0.1";
	argv[n++] = pidf;
	argv[n++] = errf;
	argv[n++] = tmpd;
	argv[n++] = (char *)"--skip-name-resolve";
	/* Room for an offline message as large as the largest max_frame. */
	argv[n++] = (char *)"--max-allowed-packet=64M";
	for (i = 0; i < NTUNING; i++)
		argv[n++] = (char *)mariadb_tuning[i];
	argv[n] = NULL;

	off = file_size(errlog);
	if ((pid = spawn(argv, NULL, errlog, errlog)) == -1)
		return -1;
	h->mariadb_pid = pid;
	deadline = harness_now_ms() + WAIT_MARIADB_MS;
	for (;;) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			h->mariadb_pid = 0;
			fprintf(stderr, "harness: mariadbd %s during startup "
			    "(port %d)\n", status_str(status, st, sizeof(st)),
			    h->mariadb_port);
			log_tail(errlog, off);
			if (file_contains(errlog, off, "Address already in use",
			    0))
				return -2;
			return -1;
		}
		if (unix_connect_ok(h->mariadb_socket) &&
		    mariadb_client(h, NULL, "SELECT 1", NULL, sqllog, sqllog,
		    0) == 0)
			return 0;
		if (harness_now_ms() >= deadline) {
			fprintf(stderr, "harness: mariadbd did not answer on "
			    "%s within %d s\n", h->mariadb_socket,
			    WAIT_MARIADB_MS / 1000);
			log_tail(errlog, off);
			(void)stop_pid("mariadbd", pid, SIGKILL, WAIT_KILL_MS);
			h->mariadb_pid = 0;
			return -1;
		}
		harness_sleep_ms(50);
	}
}

static int
mariadb_setup(struct harness *h)
{
	char sql[1024], sqllog[PATH_MAX];
	glob_t g;
	size_t i;
	int r;

	(void)fmt(sqllog, sizeof(sqllog), "%s/sql.log", h->dir);
	(void)fmt(sql, sizeof(sql),
	    "CREATE DATABASE `%s` CHARACTER SET utf8mb4 "
	    "COLLATE utf8mb4_unicode_ci;"
	    "CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s';"
	    "CREATE USER '%s'@'localhost' IDENTIFIED BY '%s';"
	    "GRANT ALL PRIVILEGES ON `%s`.* TO '%s'@'127.0.0.1';"
	    "GRANT ALL PRIVILEGES ON `%s`.* TO '%s'@'localhost';",
	    h->db_name, h->db_user, h->db_password, h->db_user,
	    h->db_password, h->db_name, h->db_user, h->db_name, h->db_user);
	if (mariadb_client(h, NULL, sql, NULL, sqllog, NULL, 0) != 0) {
		fprintf(stderr, "harness: creating database %s and user %s "
		    "failed\n", h->db_name, h->db_user);
		return -1;
	}

	r = glob(TOP_SRCDIR "/sql/migrations/[0-9][0-9][0-9][0-9]_*.sql", 0,
	    NULL, &g);
	if (r != 0) {
		fprintf(stderr, "harness: no migrations match %s\n",
		    TOP_SRCDIR "/sql/migrations/NNNN_*.sql");
		if (r != GLOB_NOMATCH)
			globfree(&g);
		return -1;
	}
	/* glob sorts by the locale; migrations go in byte order. */
	qsort(g.gl_pathv, g.gl_pathc, sizeof(char *), cmp_str);
	for (i = 0; i < g.gl_pathc; i++) {
		if (mariadb_client(h, h->db_name, NULL, g.gl_pathv[i], sqllog,
		    NULL, 0) != 0) {
			fprintf(stderr, "harness: migration %s failed\n",
			    g.gl_pathv[i]);
			globfree(&g);
			return -1;
		}
	}
	globfree(&g);
	return 0;
}

int
harness_start_mariadb(struct harness *h)
{
	struct sockaddr_un sun;
	char datadir[PATH_MAX];
	long long t0, t1, t2, t3;
	int fresh, fixed, attempt, r = -1;

	if (h->dir[0] == '\0') {
		fprintf(stderr, "harness: start_mariadb before harness_init\n");
		return -1;
	}
	if (h->mariadb_pid > 0) {
		if (proc_alive(h->mariadb_pid)) {
			fprintf(stderr, "harness: mariadbd is already running "
			    "(pid %d)\n", (int)h->mariadb_pid);
			return -1;
		}
		(void)waitpid(h->mariadb_pid, NULL, WNOHANG);
		h->mariadb_pid = 0;
	}
	(void)fmt(datadir, sizeof(datadir), "%s/mysql", h->dir);
	(void)fmt(h->mariadb_socket, sizeof(h->mariadb_socket),
	    "%s/mysql.sock", h->dir);
	if (strlen(h->mariadb_socket) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "harness: socket path %s is too long\n",
		    h->mariadb_socket);
		return -1;
	}
	t0 = harness_now_ms();
	/* A restart (after harness_stop_mariadb) keeps data and port. */
	fresh = access(datadir, F_OK) == -1;
	if (fresh && mariadb_install(h, datadir) == -1)
		return -1;
	t1 = harness_now_ms();
	fixed = h->mariadb_port > 0;
	for (attempt = 0; attempt < 2; attempt++) {
		if (!fixed && (h->mariadb_port = harness_free_port()) == -1)
			return -1;
		if ((r = mariadb_launch(h, datadir)) != -2 || attempt == 1)
			break;
		fprintf(stderr, "harness: port %d was taken; trying again\n",
		    h->mariadb_port);
		if (fixed)
			harness_sleep_ms(1000);
	}
	if (r != 0)
		return -1;
	t2 = harness_now_ms();
	if (fresh && mariadb_setup(h) == -1) {
		(void)harness_stop_mariadb(h);
		return -1;
	}
	t3 = harness_now_ms();
	fprintf(stderr, "harness: mariadbd ready on 127.0.0.1:%d in %.2f s "
	    "(install %.2f s, start %.2f s, schema %.2f s)\n", h->mariadb_port,
	    (t3 - t0) / 1000.0, (t1 - t0) / 1000.0, (t2 - t1) / 1000.0,
	    (t3 - t2) / 1000.0);
	return 0;
}

int
harness_stop_mariadb(struct harness *h)
{
	char st[64];
	int status;

	if (h->mariadb_pid <= 0)
		return 0;
	status = stop_pid("mariadbd", h->mariadb_pid, SIGTERM, WAIT_STOP_MS);
	h->mariadb_pid = 0;
	if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (status != -1)
		fprintf(stderr, "harness: mariadbd %s\n",
		    status_str(status, st, sizeof(st)));
	return -1;
}

int
harness_sql(struct harness *h, const char *sql)
{
	char sqllog[PATH_MAX];

	if (h->mariadb_pid <= 0) {
		fprintf(stderr, "harness: sql: mariadbd is not running\n");
		return -1;
	}
	(void)fmt(sqllog, sizeof(sqllog), "%s/sql.log", h->dir);
	if (mariadb_client(h, h->db_name, sql, NULL, sqllog, NULL, 0) != 0) {
		fprintf(stderr, "harness: sql failed: %s\n", sql);
		return -1;
	}
	return 0;
}

int
harness_sql_value(struct harness *h, const char *sql, char *out,
    size_t outlen)
{
	char path[PATH_MAX], *buf;
	size_t len;
	int r;

	if (outlen > 0)
		out[0] = '\0';
	if (h->mariadb_pid <= 0) {
		fprintf(stderr, "harness: sql: mariadbd is not running\n");
		return -1;
	}
	(void)fmt(path, sizeof(path), "%s/sql-value-%d.out", h->dir,
	    (int)getpid());
	(void)unlink(path);
	r = mariadb_client(h, h->db_name, sql, NULL, path, NULL, 1);
	buf = read_from(path, 0, &len);
	(void)unlink(path);
	if (r != 0 || buf == NULL) {
		fprintf(stderr, "harness: sql failed: %s\n", sql);
		free(buf);
		return -1;
	}
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	if (outlen > 0)
		(void)fmt(out, outlen, "%s", buf);
	free(buf);
	return 0;
}

/* --- Redis --------------------------------------------------------------- */

/* Start redis-server and wait for PONG.  0, -1, or -2 (port taken). */
static int
redis_launch(struct harness *h)
{
	char port[16], logpath[PATH_MAX], st[64];
	char *argv[24];
	long long deadline;
	off_t off;
	int n = 0, status;
	pid_t pid;

	(void)fmt(port, sizeof(port), "%d", h->redis_port);
	(void)fmt(logpath, sizeof(logpath), "%s/redis.log", h->dir);
	argv[n++] = (char *)REDIS_SERVER;
	argv[n++] = (char *)"--port";
	argv[n++] = port;
	argv[n++] = (char *)"--bind";
	argv[n++] = (char *)"127.0.0.1";
	argv[n++] = (char *)"--save";
	argv[n++] = (char *)"";
	argv[n++] = (char *)"--appendonly";
	argv[n++] = (char *)"no";
	argv[n++] = (char *)"--dir";
	argv[n++] = h->dir;
	argv[n++] = (char *)"--daemonize";
	argv[n++] = (char *)"no";
	/* As chatd(8) asks: a subscriber is never dropped for being
	 * behind (the default drops it, and its messages, at 32 MB). */
	argv[n++] = (char *)"--client-output-buffer-limit";
	argv[n++] = (char *)"pubsub 0 0 0";
	/* And tells of expired keys: a host's claims, when it died. */
	argv[n++] = (char *)"--notify-keyspace-events";
	argv[n++] = (char *)"Ex";
	/* DEBUG SET-ACTIVE-EXPIRE: a test may leave expiry to reads. */
	argv[n++] = (char *)"--enable-debug-command";
	argv[n++] = (char *)"local";
	argv[n++] = (char *)"--logfile";
	argv[n++] = logpath;
	argv[n] = NULL;

	off = file_size(logpath);
	/* stdout too: redis prints there what it cannot log. */
	if ((pid = spawn(argv, NULL, logpath, logpath)) == -1)
		return -1;
	h->redis_pid = pid;
	deadline = harness_now_ms() + WAIT_REDIS_MS;
	for (;;) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			h->redis_pid = 0;
			fprintf(stderr, "harness: redis-server %s during "
			    "startup (port %d)\n",
			    status_str(status, st, sizeof(st)), h->redis_port);
			log_tail(logpath, off);
			if (file_contains(logpath, off,
			    "Address already in use", 0))
				return -2;
			return -1;
		}
		if (redis_ping(h->redis_port))
			return 0;
		if (harness_now_ms() >= deadline) {
			fprintf(stderr, "harness: redis-server did not answer "
			    "PING on port %d within %d s\n", h->redis_port,
			    WAIT_REDIS_MS / 1000);
			log_tail(logpath, off);
			(void)stop_pid("redis-server", pid, SIGKILL,
			    WAIT_KILL_MS);
			h->redis_pid = 0;
			return -1;
		}
		harness_sleep_ms(POLL_MS);
	}
}

int
harness_start_redis(struct harness *h)
{
	int fixed, attempt, r = -1;

	if (h->dir[0] == '\0') {
		fprintf(stderr, "harness: start_redis before harness_init\n");
		return -1;
	}
	if (h->redis_pid > 0) {
		if (proc_alive(h->redis_pid)) {
			fprintf(stderr, "harness: redis-server is already "
			    "running (pid %d)\n", (int)h->redis_pid);
			return -1;
		}
		(void)waitpid(h->redis_pid, NULL, WNOHANG);
		h->redis_pid = 0;
	}
	/* A restart keeps the port chatd was configured with. */
	fixed = h->redis_port > 0;
	for (attempt = 0; attempt < 2; attempt++) {
		if (!fixed && (h->redis_port = harness_free_port()) == -1)
			return -1;
		if ((r = redis_launch(h)) != -2 || attempt == 1)
			break;
		fprintf(stderr, "harness: port %d was taken; trying again\n",
		    h->redis_port);
		if (fixed)
			harness_sleep_ms(1000);
	}
	return r == 0 ? 0 : -1;
}

int
harness_stop_redis(struct harness *h)
{
	char st[64];
	int status;

	if (h->redis_pid <= 0)
		return 0;
	status = stop_pid("redis-server", h->redis_pid, SIGTERM,
	    WAIT_STOP_MS);
	h->redis_pid = 0;
	if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (status != -1)
		fprintf(stderr, "harness: redis-server %s\n",
		    status_str(status, st, sizeof(st)));
	return -1;
}

/* --- Redis, asked directly --------------------------------------------- */

/* One RESP value at b[*pos]: 1 when whole (*pos moves past it), 0 when
 * more bytes are needed, -1 when malformed. */
static int
resp_skip(const char *b, size_t len, size_t *pos, char *out, size_t outlen,
    long long *num, int depth, char *type)
{
	const char *nl;
	long long v;
	size_t p = *pos;
	long long i;

	if (p >= len || (nl = memchr(b + p, '\n', len - p)) == NULL)
		return 0;
	v = strtoll(b + p + 1, NULL, 10);
	if (depth == 0)
		*type = b[p];
	switch (b[p]) {
	case '+':
	case '-':
		if (out[0] == '\0')
			(void)snprintf(out, outlen, "%.*s",
			    (int)(nl - (b + p) - 2), b + p + 1);
		*pos = (size_t)(nl - b) + 1;
		return 1;
	case ':':
		*num = v;
		*pos = (size_t)(nl - b) + 1;
		return 1;
	case '$':
		p = (size_t)(nl - b) + 1;
		if (v < 0) {
			if (depth == 0)
				*type = 'n';
			*pos = p;
			return 1;
		}
		if (len - p < (size_t)v + 2)
			return 0;
		if (out[0] == '\0')
			(void)snprintf(out, outlen, "%.*s", (int)v, b + p);
		*pos = p + (size_t)v + 2;
		return 1;
	case '*':
		p = (size_t)(nl - b) + 1;
		for (i = 0; i < v; i++)
			if (!resp_skip(b, len, &p, out, outlen, num,
			    depth + 1, type))
				return 0;
		*pos = p;
		return 1;
	default:
		return -1;
	}
}

int
harness_redis_cmd(struct harness *h, char *type, char *out, size_t outlen,
    long long *num, int argc, const char **argv)
{
	char req[2048], buf[8192];
	struct sockaddr_in sin;
	struct pollfd pfd;
	size_t len = 0, got = 0, pos;
	long long deadline;
	int fd, i, r = -1, n;
	ssize_t k;

	out[0] = '\0';
	*num = 0;
	*type = '?';
	n = snprintf(req, sizeof(req), "*%d\r\n", argc);
	len = (size_t)n;
	for (i = 0; i < argc; i++) {
		n = snprintf(req + len, sizeof(req) - len, "$%zu\r\n%s\r\n",
		    strlen(argv[i]), argv[i]);
		if (n < 0 || (size_t)n >= sizeof(req) - len)
			return -1;	/* the command is too long */
		len += (size_t)n;
	}
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)h->redis_port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len)
		goto out;
	deadline = harness_now_ms() + 2000;
	for (;;) {
		pos = 0;
		out[0] = '\0';
		if (got > 0 && (n = resp_skip(buf, got, &pos, out, outlen,
		    num, 0, type)) != 0) {
			r = n == 1 ? 0 : -1;
			break;
		}
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (harness_now_ms() >= deadline ||
		    poll(&pfd, 1, (int)(deadline - harness_now_ms())) != 1 ||
		    got == sizeof(buf) ||
		    (k = read(fd, buf + got, sizeof(buf) - got)) <= 0)
			break;
		got += (size_t)k;
	}
out:
	(void)close(fd);
	return r;
}

int
harness_redis_pause_writes(struct harness *h, const char *ms)
{
	const char *argv[4] = { "CLIENT", "PAUSE", ms, "WRITE" };
	char type, out[64];
	long long num;

	return harness_redis_cmd(h, &type, out, sizeof(out), &num, 4,
	    argv) == 0 && strcmp(out, "OK") == 0 ? 0 : -1;
}

/* --- chatd --------------------------------------------------------------- */

/* The port of the last "listen" key in extra, or 0. */
static int
extra_listen_port(const char *extra)
{
	const char *line, *p, *eol, *colon;
	int port = 0;

	for (line = extra; line != NULL && *line != '\0';
	    line = eol ? eol + 1 : NULL) {
		eol = strchr(line, '\n');
		p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncmp(p, "listen", 6) != 0)
			continue;
		p += 6;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '=' && *p != ':')
			continue;
		colon = NULL;
		for (; *p != '\0' && p != eol; p++)
			if (*p == ':')
				colon = p;
		if (colon != NULL && atoi(colon + 1) > 0)
			port = atoi(colon + 1);
	}
	return port;
}

static int
chatd_write_conf(struct harness *h, int i, const char *extra)
{
	struct harness_chatd *c = &h->chatd[i];
	char spool[PATH_MAX];
	FILE *fp;
	int fd, bad, dbport;

	/* Without a mariadbd, point at a closed port: a valid config
	 * whose database is down. */
	if ((dbport = h->mariadb_port) <= 0 &&
	    (dbport = harness_free_port()) == -1)
		return -1;

	/* Each instance its own spool directory (they may share a
	 * database, not their workers' spool files). */
	(void)fmt(spool, sizeof(spool), "%s/spool-%d", h->dir, i);
	if (mkdir(spool, 0700) == -1 && errno != EEXIST) {
		fprintf(stderr, "harness: mkdir %s: %s\n", spool,
		    strerror(errno));
		return -1;
	}
	fd = open(c->conf_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600);
	if (fd == -1 || (fp = fdopen(fd, "w")) == NULL) {
		fprintf(stderr, "harness: create %s: %s\n", c->conf_path,
		    strerror(errno));
		if (fd != -1)
			(void)close(fd);
		return -1;
	}
	fprintf(fp,
	    "[server]\n"
	    "listen = 127.0.0.1:%d\n"
	    "workers = 2\n"
	    "log_level = debug\n"
	    "presence_shm = %s\n"
	    "hash_opslimit = 1\n"
	    "hash_memlimit_kib = 8192\n"
	    "control_socket = %s/chatd-%d.sock\n"
	    /* Every test client comes from 127.0.0.1 and many pipeline:
	     * the abuse limits are off unless a test turns them on. */
	    "rate_limit = 0\n"
	    "login_fail_max = 0\n"
	    "login_fail_max_addr = 0\n"
	    "[database]\n"
	    "db_host = 127.0.0.1\n"
	    "db_port = %d\n"
	    "db_name = %s\n"
	    "db_user = %s\n"
	    "db_password = %s\n"
	    "spool_dir = %s\n",
	    c->port, c->shm_name, h->dir, i, dbport, h->db_name, h->db_user,
	    h->db_password, spool);
	/* Redis when the harness runs one (cluster mode), else none; every
	 * instance is its own node, all share the key prefix. */
	if (h->redis_port > 0)
		fprintf(fp, "[redis]\nredis_host = 127.0.0.1\n"
		    "redis_port = %d\nredis_prefix = chatd-test-%ld:\n"
		    "[server]\nnode_id = node%d\n", h->redis_port,
		    (long)hs.creator, i);
	else
		fprintf(fp, "[redis]\nredis_host =\n");
	if (extra != NULL && *extra != '\0') {
		fputs(extra, fp);
		if (extra[strlen(extra) - 1] != '\n')
			fputc('\n', fp);
	}
	bad = ferror(fp);
	if (fclose(fp) == EOF || bad) {
		fprintf(stderr, "harness: write %s: %s\n", c->conf_path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Stop instance i: SIGTERM the master, wait, SIGKILL the group past the
 * bound, then kill whatever of its group outlived the master (saying so:
 * that is a chatd bug worth seeing).  `quiet` skips the notes.
 */
static void
chatd_stop(struct harness *h, int i, int quiet)
{
	struct harness_chatd *c = &h->chatd[i];
	char what[32], st[64];
	pid_t pid = c->pid;
	int status;

	if (pid <= 0)
		return;
	(void)fmt(what, sizeof(what), "chatd-%d", i);
	status = stop_pid(what, pid, SIGTERM, WAIT_STOP_MS);
	if (!quiet && status != -1 && !(WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0))
		fprintf(stderr, "harness: %s (pid %d) %s at stop\n", what,
		    (int)pid, status_str(status, st, sizeof(st)));
	if (proc_scan(pid, 0, NULL, 0) > 0) {
		fprintf(stderr, "harness: %s: processes of group %d outlived "
		    "the master; killing them\n", what, (int)pid);
		(void)kill(-pid, SIGKILL);
		(void)wait_group_gone(pid, WAIT_KILL_MS);
	}
	c->pid = 0;
	if (hs.shared != NULL && hs.shared->pgid[i] == pid) {
		hs.shared->pgid[i] = 0;
		hs.shared->owner[i] = 0;
	}
}

/* Kill what is left of a group recorded in the shared page by a process
 * that did not stop it (a crashed or timed-out test). */
static void
chatd_reap_stale(int i)
{
	pid_t pgid;

	if (hs.shared == NULL || (pgid = hs.shared->pgid[i]) <= 0)
		return;
	if (proc_scan(pgid, 0, NULL, 0) > 0) {
		fprintf(stderr, "harness: chatd-%d: killing leftover process "
		    "group %d of an earlier run\n", i, (int)pgid);
		(void)kill(-pgid, SIGKILL);
		(void)wait_group_gone(pgid, WAIT_KILL_MS);
	}
	hs.shared->pgid[i] = 0;
	hs.shared->owner[i] = 0;
}

/* Start instance i once.  0, -1, or -2 when its port was taken. */
static int
chatd_launch(struct harness *h, int i)
{
	struct harness_chatd *c = &h->chatd[i];
	char *argv[4], st[64], *buf;
	long long deadline;
	int status, connected = 0, ready;
	size_t len;
	off_t off;
	pid_t pid;

	argv[0] = (char *)TOP_BUILDDIR "/chatd";
	argv[1] = (char *)"-c";
	argv[2] = c->conf_path;
	argv[3] = NULL;
	(void)shm_unlink(c->shm_name);
	/* The log is appended to: look for "ready" only past this run's
	 * start. */
	off = file_size(c->log_path);
	if ((pid = spawn(argv, NULL, c->log_path, c->log_path)) == -1)
		return -1;
	c->pid = pid;
	if (hs.shared != NULL) {
		hs.shared->pgid[i] = pid;
		hs.shared->owner[i] = getpid();
	}
	deadline = harness_now_ms() + WAIT_CHATD_MS;
	for (;;) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			fprintf(stderr, "harness: chatd-%d %s during startup "
			    "(port %d, config %s)\n", i,
			    status_str(status, st, sizeof(st)), c->port,
			    c->conf_path);
			log_tail(c->log_path, off);
			/* Its workers, if any got going, go with it. */
			chatd_stop(h, i, 1);
			if (file_contains(c->log_path, off,
			    "Address already in use", 0))
				return -2;
			return -1;
		}
		if (!connected) {
			int fd = tcp_connect(c->port, WAIT_CONNECT_MS);

			if (fd != -1) {
				connected = 1;
				(void)close(fd);
			}
		}
		if (connected) {
			buf = read_from(c->log_path, off, &len);
			ready = buf != NULL && buf_contains(buf, len, "ready",
			    1);
			free(buf);
			if (ready)
				return 0;
		}
		if (harness_now_ms() >= deadline) {
			if (connected)
				fprintf(stderr, "harness: chatd-%d: port %d "
				    "accepts connections but no \"ready\" "
				    "line in %s within %d s\n", i, c->port,
				    c->log_path, WAIT_CHATD_MS / 1000);
			else
				fprintf(stderr, "harness: chatd-%d: port %d "
				    "accepted no connection within %d s\n", i,
				    c->port, WAIT_CHATD_MS / 1000);
			log_tail(c->log_path, off);
			chatd_stop(h, i, 1);
			return -1;
		}
		harness_sleep_ms(POLL_MS);
	}
}

int
harness_start_chatd(struct harness *h, int i, const char *extra)
{
	struct harness_chatd *c;
	int attempt, r = -1, eport;

	if (i < 0 || i >= HARNESS_MAX_CHATD) {
		fprintf(stderr, "harness: no chatd instance %d (0..%d)\n", i,
		    HARNESS_MAX_CHATD - 1);
		return -1;
	}
	if (h->dir[0] == '\0') {
		fprintf(stderr, "harness: start_chatd before harness_init\n");
		return -1;
	}
	c = &h->chatd[i];
	if (c->pid > 0) {
		if (proc_alive(c->pid)) {
			fprintf(stderr, "harness: chatd-%d is already running "
			    "(pid %d)\n", i, (int)c->pid);
			return -1;
		}
		(void)waitpid(c->pid, NULL, WNOHANG);
		chatd_stop(h, i, 1);
	}
	if (hs.shared != NULL && hs.shared->pgid[i] > 0 &&
	    hs.shared->owner[i] != getpid() &&
	    proc_alive(hs.shared->owner[i]) && proc_alive(hs.shared->pgid[i])) {
		fprintf(stderr, "harness: chatd-%d is running, started by "
		    "process %d\n", i, (int)hs.shared->owner[i]);
		return -1;
	}
	chatd_reap_stale(i);
	(void)fmt(c->conf_path, sizeof(c->conf_path), "%s/chatd-%d.conf",
	    h->dir, i);
	(void)fmt(c->log_path, sizeof(c->log_path), "%s/chatd-%d.log",
	    h->dir, i);
	eport = extra != NULL ? extra_listen_port(extra) : 0;
	for (attempt = 0; attempt < 2; attempt++) {
		if ((c->port = harness_free_port()) == -1)
			return -1;
		if (chatd_write_conf(h, i, extra) == -1)
			return -1;
		/* extra may move the listen address; wait on that one. */
		if (eport > 0)
			c->port = eport;
		if ((r = chatd_launch(h, i)) != -2 || eport > 0 ||
		    attempt == 1)
			break;
		fprintf(stderr, "harness: port %d was taken; trying again\n",
		    c->port);
	}
	return r == 0 ? 0 : -1;
}

int
harness_signal_chatd(struct harness *h, int i, int sig, int wait)
{
	struct harness_chatd *c;
	int status, r;
	pid_t pid;

	if (i < 0 || i >= HARNESS_MAX_CHATD || h->chatd[i].pid <= 0) {
		fprintf(stderr, "harness: signal: chatd-%d is not running\n",
		    i);
		return -1;
	}
	c = &h->chatd[i];
	pid = c->pid;
	if (kill(pid, sig) == -1) {
		fprintf(stderr, "harness: kill chatd-%d (pid %d), signal %d: "
		    "%s\n", i, (int)pid, sig, strerror(errno));
		return -1;
	}
	if (!wait)
		return 0;
	r = wait_child(pid, &status, WAIT_STOP_MS);
	if (r == 1) {
		/* Workers that outlive the master are left for the test
		 * to see; harness_stop_all kills the group. */
		c->pid = 0;
		return status;
	}
	if (r == -1 && errno == ECHILD) {
		fprintf(stderr, "harness: chatd-%d (pid %d) was started by "
		    "another process; its exit status cannot be had\n", i,
		    (int)pid);
		if (!wait_gone(pid, WAIT_STOP_MS))
			fprintf(stderr, "harness: chatd-%d (pid %d) still "
			    "running %d s after signal %d\n", i, (int)pid,
			    WAIT_STOP_MS / 1000, sig);
		return -1;
	}
	if (r == -1) {
		fprintf(stderr, "harness: waitpid chatd-%d: %s\n", i,
		    strerror(errno));
		return -1;
	}
	fprintf(stderr, "harness: chatd-%d (pid %d) still running %d s after "
	    "signal %d; sending SIGKILL\n", i, (int)pid, WAIT_STOP_MS / 1000,
	    sig);
	(void)kill(-pid, SIGKILL);
	if (wait_child(pid, &status, WAIT_KILL_MS) != 1)
		status = -1;
	c->pid = 0;
	return status;
}

int
harness_chatd_workers(struct harness *h, int i, pid_t *pids, int max)
{
	int n;

	if (i < 0 || i >= HARNESS_MAX_CHATD || h->chatd[i].pid <= 0) {
		fprintf(stderr, "harness: workers: chatd-%d is not running\n",
		    i);
		return -1;
	}
	n = proc_scan(h->chatd[i].pid, 1, pids, max);
	return n > max ? max : n;
}

int
harness_log_count(struct harness *h, int i, const char *needle)
{
	size_t len, nlen = strlen(needle);
	const char *p;
	char *buf;
	int n = 0;

	if (i < 0 || i >= HARNESS_MAX_CHATD ||
	    h->chatd[i].log_path[0] == '\0' || nlen == 0)
		return 0;
	if ((buf = read_from(h->chatd[i].log_path, 0, &len)) == NULL)
		return 0;
	for (p = buf; (p = memmem(p, len - (size_t)(p - buf), needle,
	    nlen)) != NULL; p += nlen)
		n++;
	free(buf);
	return n;
}

int
harness_log_contains(struct harness *h, int i, const char *needle)
{
	return harness_log_count(h, i, needle) > 0;
}

/* --- nginx --------------------------------------------------------------- */

/*
 * The shipped etc/nginx-chatd.conf is what the tests run.  Rendering
 * rewrites only what must differ per run, line by line (the file keeps
 * one directive per line for this): every upstream "server ADDR params;"
 * line (the first becomes one line per chatd instance with the same
 * params, the others go), the "listen ADDR params;" address, and the
 * "pid" and "error_log" paths.  nginx runs in the foreground under -p
 * h->dir with its log there.  Its workers do not die with a SIGKILLed
 * master (no PDEATHSIG in nginx), so every stop also kills its process
 * group.
 */
#define WAIT_NGINX_MS		20000	/* nginx until its pid file */
#define NGINX_TEMPLATE		TOP_SRCDIR "/etc/nginx-chatd.conf"

/* Start of the first word of line, and its length in *lenp. */
static const char *
conf_word(const char *line, size_t *lenp)
{
	const char *p = line, *q;

	while (*p == ' ' || *p == '\t')
		p++;
	for (q = p; *q != '\0' && !isspace((unsigned char)*q) && *q != ';' &&
	    *q != '{'; q++)
		;
	*lenp = (size_t)(q - p);
	return p;
}

/* After the word at p (length len) and the blanks behind it: the next
 * token's start; its end (at a blank, ';' or end of line) in *endp. */
static const char *
conf_arg(const char *p, size_t len, const char **endp)
{
	const char *a = p + len, *e;

	while (*a == ' ' || *a == '\t')
		a++;
	for (e = a; *e != '\0' && !isspace((unsigned char)*e) && *e != ';';
	    e++)
		;
	*endp = e;
	return a;
}

static int
nginx_render(struct harness *h, const int *inst, int n)
{
	char line[1024], pidpath[PATH_MAX];
	const char *w, *arg, *end;
	int nserver = 0, nlisten = 0, npid = 0, nlog = 0, i, bad;
	FILE *in, *out;
	size_t wl;

	(void)fmt(pidpath, sizeof(pidpath), "%s/nginx.pid", h->dir);
	if ((in = fopen(NGINX_TEMPLATE, "r")) == NULL) {
		fprintf(stderr, "harness: open %s: %s\n", NGINX_TEMPLATE,
		    strerror(errno));
		return -1;
	}
	if ((out = fopen(h->nginx_conf, "w")) == NULL) {
		fprintf(stderr, "harness: create %s: %s\n", h->nginx_conf,
		    strerror(errno));
		(void)fclose(in);
		return -1;
	}
	fprintf(out, "# Rendered by tests/harness.c from %s\n",
	    NGINX_TEMPLATE);
	while (fgets(line, sizeof(line), in) != NULL) {
		w = conf_word(line, &wl);
		if (*w == '#' || wl == 0) {
			fputs(line, out);
			continue;
		}
		arg = conf_arg(w, wl, &end);
		if (wl == 6 && strncmp(w, "server", 6) == 0 && *arg != '{') {
			/* An upstream server: ours instead. */
			if (nserver++ > 0)
				continue;
			for (i = 0; i < n; i++)
				fprintf(out, "%.*sserver 127.0.0.1:%d%s",
				    (int)(w - line), line,
				    h->chatd[inst[i]].port, end);
		} else if (wl == 6 && strncmp(w, "listen", 6) == 0) {
			nlisten++;
			fprintf(out, "%.*slisten 127.0.0.1:%d%s",
			    (int)(w - line), line, h->nginx_port, end);
		} else if (wl == 3 && strncmp(w, "pid", 3) == 0) {
			npid++;
			fprintf(out, "%.*spid %s%s", (int)(w - line), line,
			    pidpath, end);
		} else if (wl == 9 && strncmp(w, "error_log", 9) == 0) {
			nlog++;
			fprintf(out, "%.*serror_log %s%s", (int)(w - line),
			    line, h->nginx_log, end);
		} else
			fputs(line, out);
	}
	bad = ferror(in) || ferror(out);
	(void)fclose(in);
	if (fclose(out) == EOF || bad) {
		fprintf(stderr, "harness: render %s: %s\n", h->nginx_conf,
		    strerror(errno));
		return -1;
	}
	if (nserver == 0 || nlisten != 1 || npid != 1) {
		fprintf(stderr, "harness: %s: expected upstream \"server\" "
		    "lines, one \"listen\" and one \"pid\" (found %d, %d, %d)"
		    "\n", NGINX_TEMPLATE, nserver, nlisten, npid);
		return -1;
	}
	(void)nlog;
	return 0;
}

/* The pid in path, or 0. */
static pid_t
read_pidfile(const char *path)
{
	char *buf;
	long v;

	if ((buf = read_from(path, 0, NULL)) == NULL)
		return 0;
	v = strtol(buf, NULL, 10);
	free(buf);
	return v > 0 ? (pid_t)v : 0;
}

/* Start nginx once.  0, -1, or -2 when its port was taken. */
static int
nginx_launch(struct harness *h)
{
	char *argv[11], prefix[PATH_MAX], pidpath[PATH_MAX], st[64];
	long long deadline;
	int status;
	off_t off;
	pid_t pid;

	(void)fmt(prefix, sizeof(prefix), "%s/", h->dir);
	(void)fmt(pidpath, sizeof(pidpath), "%s/nginx.pid", h->dir);
	(void)unlink(pidpath);
	argv[0] = (char *)NGINX;
	argv[1] = (char *)"-p";
	argv[2] = prefix;
	argv[3] = (char *)"-c";
	argv[4] = h->nginx_conf;
	argv[5] = (char *)"-e";
	argv[6] = h->nginx_log;
	argv[7] = (char *)"-g";
	argv[8] = (char *)"daemon off; master_process on;";
	argv[9] = NULL;
	off = file_size(h->nginx_log);
	if ((pid = spawn(argv, NULL, h->nginx_log, h->nginx_log)) == -1)
		return -1;
	h->nginx_pid = pid;
	h->nginx_owner = getpid();
	deadline = harness_now_ms() + WAIT_NGINX_MS;
	for (;;) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			h->nginx_pid = 0;
			fprintf(stderr, "harness: nginx %s during startup "
			    "(port %d, config %s)\n",
			    status_str(status, st, sizeof(st)), h->nginx_port,
			    h->nginx_conf);
			log_tail(h->nginx_log, off);
			(void)kill(-pid, SIGKILL);
			if (file_contains(h->nginx_log, off,
			    "Address already in use", 0))
				return -2;
			return -1;
		}
		/* nginx writes its pid file once its sockets listen. */
		if (read_pidfile(pidpath) == pid)
			return 0;
		if (harness_now_ms() >= deadline) {
			fprintf(stderr, "harness: nginx wrote no pid file %s "
			    "within %d s\n", pidpath, WAIT_NGINX_MS / 1000);
			log_tail(h->nginx_log, off);
			(void)harness_stop_nginx(h);
			return -1;
		}
		harness_sleep_ms(POLL_MS);
	}
}

int
harness_start_nginx(struct harness *h, const int *inst, int n)
{
	int attempt, i, r = -1;

	if (h->dir[0] == '\0') {
		fprintf(stderr, "harness: start_nginx before harness_init\n");
		return -1;
	}
	if (NGINX[0] == '\0') {
		fprintf(stderr, "harness: configure found no nginx (Debian: "
		    "apt install nginx libnginx-mod-stream)\n");
		return -1;
	}
	if (n < 1 || n > HARNESS_MAX_CHATD) {
		fprintf(stderr, "harness: start_nginx: %d instances\n", n);
		return -1;
	}
	for (i = 0; i < n; i++)
		if (inst[i] < 0 || inst[i] >= HARNESS_MAX_CHATD ||
		    h->chatd[inst[i]].port <= 0) {
			fprintf(stderr, "harness: start_nginx: chatd-%d was "
			    "never started\n", inst[i]);
			return -1;
		}
	if (h->nginx_pid > 0) {
		if (proc_alive(h->nginx_pid)) {
			fprintf(stderr, "harness: nginx is already running "
			    "(pid %d)\n", (int)h->nginx_pid);
			return -1;
		}
		(void)harness_stop_nginx(h);
	}
	(void)fmt(h->nginx_conf, sizeof(h->nginx_conf), "%s/nginx.conf",
	    h->dir);
	(void)fmt(h->nginx_log, sizeof(h->nginx_log), "%s/nginx.log", h->dir);
	for (attempt = 0; attempt < 2; attempt++) {
		if ((h->nginx_port = harness_free_port()) == -1)
			return -1;
		if (nginx_render(h, inst, n) == -1)
			return -1;
		if ((r = nginx_launch(h)) != -2)
			break;
		fprintf(stderr, "harness: port %d was taken; trying again\n",
		    h->nginx_port);
	}
	return r == 0 ? 0 : -1;
}

int
harness_stop_nginx(struct harness *h)
{
	char st[64];
	pid_t pid = h->nginx_pid;
	int status;

	if (pid <= 0)
		return 0;
	/* SIGTERM is nginx's fast shutdown; SIGQUIT would wait for every
	 * client connection to end. */
	status = stop_pid("nginx", pid, SIGTERM, WAIT_STOP_MS);
	if (proc_scan(pid, 0, NULL, 0) > 0) {
		(void)kill(-pid, SIGKILL);
		(void)wait_group_gone(pid, WAIT_KILL_MS);
	}
	h->nginx_pid = 0;
	if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (status != -1)
		fprintf(stderr, "harness: nginx %s\n",
		    status_str(status, st, sizeof(st)));
	return status == -1 && !proc_alive(pid) ? 0 : -1;
}

/* --- stop ---------------------------------------------------------------- */

/*
 * A chatd built with --enable-sanitizers reports into its log and a
 * worker's exit status that nobody else reads.  After the instances have
 * stopped, any report fails the test binary: the lines are printed, the
 * directory is kept for reading, and the exit status becomes 1.
 */
static int sanitizer_failed;

static void
sanitizer_exit(void)
{
	if (sanitizer_failed)
		_exit(1);
}

static void
sanitizer_check(struct harness *h)
{
	static const char *const markers[] = { "ERROR: AddressSanitizer",
	    "ERROR: LeakSanitizer", "runtime error:" };
	char line[1024];
	FILE *fp;
	size_t k;
	int i, hit;

	for (i = 0; i < HARNESS_MAX_CHATD; i++) {
		if (h->chatd[i].log_path[0] == '\0' ||
		    (fp = fopen(h->chatd[i].log_path, "r")) == NULL)
			continue;
		hit = 0;
		while (fgets(line, sizeof(line), fp) != NULL) {
			for (k = 0; k < sizeof(markers) / sizeof(markers[0]);
			    k++)
				if (strstr(line, markers[k]) != NULL)
					break;
			if (k < sizeof(markers) / sizeof(markers[0]) || hit) {
				if (!hit)
					fprintf(stderr, "harness: sanitizer "
					    "report in %s:\n",
					    h->chatd[i].log_path);
				hit = 1;
				fputs(line, stderr);
			}
		}
		(void)fclose(fp);
		if (hit && !sanitizer_failed) {
			sanitizer_failed = 1;
			hs.keep = 1;
			(void)atexit(sanitizer_exit);
		}
	}
}

void
harness_stop_all(struct harness *h)
{
	int i;

	if (getpid() != hs.creator && hs.h == h) {
		/* A forked test: the shared servers are the creator's. */
		if (h->nginx_pid > 0 && h->nginx_owner == getpid())
			(void)harness_stop_nginx(h);
		for (i = 0; i < HARNESS_MAX_CHATD; i++)
			if (hs.shared != NULL &&
			    hs.shared->owner[i] == getpid())
				chatd_stop(h, i, 0);
		return;
	}
	/* The balancer first: no new connections reach a stopping chatd. */
	(void)harness_stop_nginx(h);
	for (i = 0; i < HARNESS_MAX_CHATD; i++) {
		chatd_stop(h, i, 0);
		if (hs.h == h)
			chatd_reap_stale(i);
	}
	sanitizer_check(h);
	(void)harness_stop_redis(h);
	(void)harness_stop_mariadb(h);
	for (i = 0; i < HARNESS_MAX_CHATD; i++)
		if (h->chatd[i].shm_name[0] != '\0') {
			char lock[sizeof(h->chatd[i].shm_name) + 8];

			(void)shm_unlink(h->chatd[i].shm_name);
			(void)snprintf(lock, sizeof(lock), "%s.lock",
			    h->chatd[i].shm_name);
			(void)shm_unlink(lock);
		}
	if (h->dir[0] != '\0') {
		if (hs.keep)
			fprintf(stderr, "harness: CHATD_TEST_KEEP=1: keeping "
			    "%s\n", h->dir);
		else if (nftw(h->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) ==
		    -1 && errno != ENOENT)
			fprintf(stderr, "harness: remove %s: %s\n", h->dir,
			    strerror(errno));
		h->dir[0] = '\0';
	}
	if (hs.h == h) {
		hs.h = NULL;
		restore_handlers();
	}
}

void
harness_control_path(struct harness *h, int i, char *buf, size_t len)
{
	(void)snprintf(buf, len, "%s/chatd-%d.sock", h->dir, i);
}

int
harness_stats_sum(struct harness *h, int i, const char *key, long long *sum,
    int *nworkers, char *err, size_t errlen)
{
	static const char req[] = "{\"version\":1,\"cmd\":\"stats\"}\n";
	struct sockaddr_un sun;
	char buf[65536];
	size_t len = 0;
	ssize_t n;
	const cJSON *w, *v;
	cJSON *o;
	int fd = -1, rc = -1, nw = 0;

	*sum = 0;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	harness_control_path(h, i, buf, sizeof(buf));
	if (strlen(buf) >= sizeof(sun.sun_path)) {
		(void)snprintf(err, errlen, "control socket path too long");
		return -1;
	}
	memcpy(sun.sun_path, buf, strlen(buf) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    write(fd, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1) {
		(void)snprintf(err, errlen, "control socket of chatd-%d: %s",
		    i, strerror(errno));
		if (fd != -1)
			(void)close(fd);
		return -1;
	}
	while (len < sizeof(buf) - 1 &&
	    (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	(void)close(fd);
	buf[len] = '\0';
	if ((o = cJSON_Parse(buf)) == NULL ||
	    !cJSON_IsTrue(cJSON_GetObjectItem(o, "ok"))) {
		(void)snprintf(err, errlen, "stats: %s", buf);
		cJSON_Delete(o);
		return -1;
	}
	cJSON_ArrayForEach(w, cJSON_GetObjectItem(o, "workers")) {
		v = cJSON_GetObjectItemCaseSensitive(w, key);
		if (!cJSON_IsNumber(v)) {
			(void)snprintf(err, errlen, "no %s in %s", key, buf);
			goto out;
		}
		*sum += (long long)v->valuedouble;
		nw++;
	}
	if (nworkers != NULL)
		*nworkers = nw;
	rc = 0;
out:
	cJSON_Delete(o);
	return rc;
}

int
harness_wanted(const char *env, const char *name)
{
	const char *only = getenv(env), *p;
	size_t len = strlen(name);

	if (only == NULL || *only == '\0')
		return 1;
	for (p = strstr(only, name); p != NULL; p = strstr(p + 1, name))
		if ((p == only || p[-1] == ',') &&
		    (p[len] == '\0' || p[len] == ','))
			return 1;
	return 0;
}

int
harness_add_tcase(Suite *s, const char *env, const char *name,
    void (*setup)(void), void (*teardown)(void),
    void (*checked_teardown)(void), int timeout, const TTest *const *tests,
    size_t n)
{
	TCase *tc = NULL;
	size_t i;
	int added = 0;

	for (i = 0; i < n; i++) {
		if (!harness_wanted(env, tests[i]->name))
			continue;
		if (tc == NULL) {
			tc = tcase_create(name);
			tcase_add_unchecked_fixture(tc, setup, teardown);
			if (checked_teardown != NULL)
				tcase_add_checked_fixture(tc, NULL,
				    checked_teardown);
			tcase_set_timeout(tc, timeout);
		}
		tcase_add_test(tc, tests[i]);
		added++;
	}
	if (tc != NULL)
		suite_add_tcase(s, tc);
	return added;
}

int
harness_run_suite(Suite *s, struct harness *h, int started)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (started)
		harness_stop_all(h);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* --- tracked client connections ------------------------------------------ */

static struct chatc **tracked;
static size_t ntracked, tracked_cap;

struct chatc *
harness_track(struct chatc *c)
{
	struct chatc **n;

	if (ntracked == tracked_cap) {
		tracked_cap = tracked_cap ? 2 * tracked_cap : 64;
		if ((n = realloc(tracked, tracked_cap * sizeof(*n))) == NULL)
			abort();
		tracked = n;
	}
	tracked[ntracked++] = c;
	return c;
}

void
harness_close(struct chatc *c)
{
	size_t i;

	for (i = 0; i < ntracked; i++)
		if (tracked[i] == c) {
			tracked[i] = tracked[--ntracked];
			break;
		}
	chatc_close(c);
}

void
harness_close_tracked(void)
{
	while (ntracked > 0)
		chatc_close(tracked[--ntracked]);
	free(tracked);
	tracked = NULL;
	tracked_cap = 0;
}
