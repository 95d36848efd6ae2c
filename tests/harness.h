/*
 * harness.h - starts the real servers the integration tests talk to:
 * a private mariadbd (mariadb-install-db into a temporary directory),
 * redis-server, chatd and nginx, each on a free loopback port, and stops
 * them whatever happens (atexit, fatal signals, and PR_SET_PDEATHSIG in
 * every child so nothing outlives the test runner).
 *
 * Paths of the programs come from configure (MARIADBD, ...); the chatd
 * binary, the sql/ directory and etc/nginx-chatd.conf from the build and
 * source trees (TOP_BUILDDIR, TOP_SRCDIR, passed as -D by tests/Makefile
 * rules).
 */
#ifndef CHATD_HARNESS_H
#define CHATD_HARNESS_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#include <check.h>

#define HARNESS_MAX_CHATD 4

struct harness_chatd {
	pid_t pid;			/* master pid, 0 when not running */
	int port;			/* client port on 127.0.0.1 */
	char conf_path[PATH_MAX];
	char log_path[PATH_MAX];	/* chatd's stderr */
	char shm_name[64];
};

struct harness {
	char dir[PATH_MAX];		/* temporary directory, removed at stop */
	pid_t mariadb_pid;
	int mariadb_port;
	char mariadb_socket[PATH_MAX];
	char db_name[64];		/* "chat" */
	char db_user[64];		/* "chatd" */
	char db_password[64];
	pid_t redis_pid;
	int redis_port;
	struct harness_chatd chatd[HARNESS_MAX_CHATD];
	pid_t nginx_pid;		/* nginx master, 0 when not running */
	pid_t nginx_owner;		/* the process that started it */
	int nginx_port;			/* its listen port on 127.0.0.1 */
	char nginx_conf[PATH_MAX];	/* the rendered configuration */
	char nginx_log[PATH_MAX];	/* its error log, stderr and stdout */
};

/* Monotonic milliseconds, and a sleep that resumes after signals. */
long long harness_now_ms(void);
void harness_sleep_ms(long ms);

/* A TCP port on 127.0.0.1 free at the time of the call. */
int harness_free_port(void);
/* 1 while something accepts TCP connections on 127.0.0.1:port. */
int harness_port_open(int port);

/* Make h->dir and register cleanup.  0 or -1 (reason on stderr). */
int harness_init(struct harness *h);
/* Initialise and start mariadbd, create the database and user, and load
 * every sql/migrations/NNNN_*.sql in order.  Waits until it accepts. */
int harness_start_mariadb(struct harness *h);
int harness_stop_mariadb(struct harness *h);
/* Run SQL through the mariadb client as root; 0 when it exits 0. */
int harness_sql(struct harness *h, const char *sql);
/* Like harness_sql, and what the query printed is copied to out
 * (truncated to outlen): values tab-separated, one row per line, no
 * header, no final newline; "" when no rows.  0 or -1. */
int harness_sql_value(struct harness *h, const char *sql, char *out,
    size_t outlen);
int harness_start_redis(struct harness *h);
/* SIGTERM redis-server, wait bounded, SIGKILL past that.  0 when
 * it exited cleanly or was not running.  A later harness_start_redis (or
 * harness_start_mariadb after harness_stop_mariadb) restarts the server on
 * the same port (mariadbd also with its data), so an outage can be tested
 * under a running chatd. */
int harness_stop_redis(struct harness *h);
/*
 * Send one command (argv, as a RESP array) to the harness's Redis on a
 * new connection and parse the reply: *type is its first byte ('+', '-',
 * ':', '$', '*'; 'n' for a nil), the first bulk or status string goes to
 * out, the last integer to *num.  0, or -1 when Redis cannot be reached,
 * answers nothing within 2 s, or the command is too long.
 */
int harness_redis_cmd(struct harness *h, char *type, char *out,
    size_t outlen, long long *num, int argc, const char **argv);
/* CLIENT PAUSE ms WRITE: Redis holds every write (scripts too) for ms
 * milliseconds while reads go on.  0 or -1. */
int harness_redis_pause_writes(struct harness *h, const char *ms);
/*
 * Write a config for instance i (listen on a fresh port, the harness's
 * database, a unique presence_shm name, small hash cost so tests run
 * fast) followed by the `extra` lines verbatim (may be NULL; later keys
 * override earlier ones), start chatd -c on it, and wait until the port
 * accepts connections and every worker is up.  0 or -1.
 */
int harness_start_chatd(struct harness *h, int i, const char *extra);
/* Send sig to instance i's master; when wait is set, wait for it to exit
 * and return its exit status (as from waitpid), else 0. */
int harness_signal_chatd(struct harness *h, int i, int sig, int wait);
/* The control socket of instance i (for chatctl -s). */
void harness_control_path(struct harness *h, int i, char *buf, size_t len);
/*
 * Counter key of `chatctl stats`, summed over instance i's workers, read
 * from its control socket; *nworkers (when not NULL) gets how many
 * workers answered.  0, or -1 with the reason in err.
 */
int harness_stats_sum(struct harness *h, int i, const char *key,
    long long *sum, int *nworkers, char *err, size_t errlen);
/*
 * nginx (stream) in front of chatd instances inst[0..n): the shipped
 * etc/nginx-chatd.conf rendered into h->dir with its upstream "server"
 * lines replaced by one per instance (same parameters), its "listen"
 * address by 127.0.0.1 and a free port (h->nginx_port), and its "pid" and
 * "error_log" paths by files in h->dir; everything else verbatim.  Runs
 * in the foreground (daemon off, master_process on) with -p h->dir.
 * Waits until it listens.  0 or -1 (reason on stderr).
 */
int harness_start_nginx(struct harness *h, const int *inst, int n);
/* SIGTERM nginx (fast shutdown), wait bounded, SIGKILL its group past
 * that.  0 when it exited cleanly or was not running. */
int harness_stop_nginx(struct harness *h);
/* Worker pids of instance i (children of its master), up to max. */
int harness_chatd_workers(struct harness *h, int i, pid_t *pids, int max);
/* 1 when the instance's log contains needle; how many times it does. */
int harness_log_contains(struct harness *h, int i, const char *needle);
int harness_log_count(struct harness *h, int i, const char *needle);
/* Stop everything started and remove h->dir.  Safe to call twice. */
void harness_stop_all(struct harness *h);

/*
 * Running a test binary's suite.  Every binary takes ENV=name[,name...]
 * (IT_CHAT_ONLY, say) to run only the named tests while debugging.
 */
/* 1 when test `name` is to run: env unset or empty, or naming it. */
int harness_wanted(const char *env, const char *name);
/*
 * Add a TCase `name` holding the wanted ones of tests[0..n), with setup
 * and teardown as its unchecked fixture, checked_teardown (may be NULL)
 * after each test, and timeout seconds per test.  No TCase when none is
 * wanted: its fixture would still start servers.  Returns how many.
 */
int harness_add_tcase(Suite *s, const char *env, const char *name,
    void (*setup)(void), void (*teardown)(void),
    void (*checked_teardown)(void), int timeout,
    const TTest *const *tests, size_t n);
/* Run s; stop h's servers when started is set.  The exit status. */
int harness_run_suite(Suite *s, struct harness *h, int started);

/*
 * Client connections a test opened, registered so that its checked
 * teardown can close what it left open (LeakSanitizer runs in each
 * forked test).  harness_track returns c; harness_close unregisters and
 * closes one; harness_close_tracked closes all that are left.
 */
struct chatc;
struct chatc *harness_track(struct chatc *c);
void harness_close(struct chatc *c);
void harness_close_tracked(void);

#endif
