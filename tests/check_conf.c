/*
 * check_conf.c - unit tests of the configuration loader (src/conf.c).
 *
 * Each test writes a small file with mkstemp() in /tmp, loads it over the
 * defaults and checks the values or the exact "path:line: reason" error.
 */
#include "config.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "conf.h"

static char tmp_path[64];
static char err[512];
static char want[1024];
static struct conf c;

/* Write text to a fresh temporary file; its name is in tmp_path. */
static void
write_tmp(const char *text)
{
	int fd;
	size_t len = strlen(text);

	(void)snprintf(tmp_path, sizeof(tmp_path), "/tmp/check_conf.XXXXXX");
	fd = mkstemp(tmp_path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
}

/* Load text over the defaults; returns conf_load's result. */
static int
load(const char *text)
{
	int rc;

	write_tmp(text);
	conf_defaults(&c);
	err[0] = '\0';
	rc = conf_load(&c, tmp_path, err, sizeof(err));
	(void)unlink(tmp_path);
	return rc;
}

static void
load_ok(const char *text)
{
	if (load(text) != 0)
		ck_abort_msg("conf_load failed: %s", err);
}

/* Load text and expect exactly "tmp_path:line: reason". */
static void
load_fails_at(const char *text, int line, const char *reason)
{
	ck_assert_int_eq(load(text), -1);
	(void)snprintf(want, sizeof(want), "%s:%d: %s", tmp_path, line,
	    reason);
	ck_assert_str_eq(err, want);
}

/* Load text and expect exactly reason (conf_finish errors). */
static void
load_fails_with(const char *text, const char *reason)
{
	ck_assert_int_eq(load(text), -1);
	ck_assert_str_eq(err, reason);
}

static char *
repeat(char ch, size_t n)
{
	char *s = malloc(n + 1);

	ck_assert_ptr_nonnull(s);
	memset(s, ch, n);
	s[n] = '\0';
	return s;
}

/* --- defaults -------------------------------------------------------- */

static void
assert_defaults_except_derived(const struct conf *d)
{
	ck_assert_str_eq(d->listen, "127.0.0.1:6000");
	ck_assert_int_eq(d->max_connections, 10000);
	ck_assert_int_eq(d->max_frame, 65536);
	ck_assert_int_eq(d->max_output, 1048576);
	ck_assert_int_eq(d->max_message, 4096);
	ck_assert_int_eq(d->auth_timeout, 30);
	ck_assert_int_eq(d->idle_timeout, 300);
	ck_assert_int_eq(d->job_threads, 2);
	ck_assert_int_eq(d->job_queue_max, 4096);
	ck_assert_int_eq(d->offline_batch, 100);
	ck_assert_int_eq(d->hash_opslimit, 2);
	ck_assert_int_eq(d->hash_memlimit_kib, 65536);
	ck_assert_int_eq(d->respawn_delay_max, 30);
	ck_assert_int_eq(d->shutdown_timeout, 10);
	ck_assert_str_eq(d->log_level, "info");
	ck_assert_str_eq(d->presence_shm, "/chatd-presence");
	ck_assert_int_eq(d->presence_capacity, 65536);
	ck_assert_str_eq(d->db_host, "127.0.0.1");
	ck_assert_int_eq(d->db_port, 3306);
	ck_assert_str_eq(d->db_socket, "");
	ck_assert_str_eq(d->db_name, "chat");
	ck_assert_str_eq(d->db_user, "chatd");
	ck_assert_str_eq(d->db_password, "");
	ck_assert_int_eq(d->db_connect_timeout, 5);
	ck_assert_int_eq(d->db_retry_interval, 2);
	ck_assert_str_eq(d->spool_dir, "/var/lib/chatd");
}

START_TEST(test_defaults_table)
{
	struct conf d;

	memset(&d, 0x5a, sizeof(d));
	conf_defaults(&d);
	assert_defaults_except_derived(&d);
	ck_assert_int_eq(d.workers, 0);
	ck_assert_int_eq(d.hash_concurrency, 0);
	ck_assert_str_eq(d.node_id, "");
}
END_TEST

START_TEST(test_empty_file)
{
	load_ok("");
	assert_defaults_except_derived(&c);
	/* conf_finish resolved the derived values. */
	ck_assert_int_ge(c.workers, 1);
	ck_assert_int_le(c.workers, 64);
	ck_assert_int_ge(c.hash_concurrency, 1);
	ck_assert_str_eq(c.node_id, "127.0.0.1:6000");
}
END_TEST

START_TEST(test_comments_and_sections_only)
{
	load_ok("; a comment\n# another\n\n[server]\n\n[database]\n; end\n");
	assert_defaults_except_derived(&c);
}
END_TEST

START_TEST(test_defaults_are_valid)
{
	struct conf d;

	conf_defaults(&d);
	ck_assert_int_eq(conf_finish(&d, err, sizeof(err)), 0);
}
END_TEST

/* --- parse errors ---------------------------------------------------- */

START_TEST(test_unknown_key)
{
	load_fails_at("[server]\nlisten = 127.0.0.1:7000\n\nbogus = 1\n", 4,
	    "unknown key \"bogus\" in section [server]");
	load_fails_at("# comment\n[database]\ndb_hots = x\n", 3,
	    "unknown key \"db_hots\" in section [database]");
	/* Key names are case-sensitive. */
	load_fails_at("[server]\nWorkers = 2\n", 2,
	    "unknown key \"Workers\" in section [server]");
	/* An unknown section is reported through its first key. */
	load_fails_at("[server]\n[redis]\nhost = x\n", 3,
	    "unknown key \"host\" in section [redis]");
}
END_TEST

START_TEST(test_wrong_section)
{
	load_fails_at("[database]\ndb_port = 3307\nmax_frame = 2048\n", 3,
	    "max_frame belongs in section [server], not [database]");
	load_fails_at("[server]\nworkers = 2\ndb_host = localhost\n", 3,
	    "db_host belongs in section [database], not [server]");
	/* A key before any section header. */
	load_fails_at("listen = 127.0.0.1:7000\n", 1,
	    "listen belongs in section [server], not []");
}
END_TEST

START_TEST(test_not_integer)
{
	load_fails_at("[server]\nworkers = abc\n", 2,
	    "workers: \"abc\" is not an integer");
	load_fails_at("[server]\n\n\nmax_frame = 12k\n", 4,
	    "max_frame: \"12k\" is not an integer");
	load_fails_at("[server]\nmax_frame = 2048.5\n", 2,
	    "max_frame: \"2048.5\" is not an integer");
	load_fails_at("[server]\nworkers =\n", 2,
	    "workers: \"\" is not an integer");
	load_fails_at("[database]\ndb_port = 0x50\n", 2,
	    "db_port: \"0x50\" is not an integer");
	/* Does not fit in a long at all. */
	load_fails_at("[server]\nmax_frame = 99999999999999999999999\n", 2,
	    "max_frame: \"99999999999999999999999\" is not an integer");
}
END_TEST

START_TEST(test_out_of_range)
{
	load_fails_at("[server]\nmax_frame = 1023\n", 2,
	    "max_frame: 1023 is out of range 1024..16777216");
	load_fails_at("[server]\nmax_frame = 16777217\n", 2,
	    "max_frame: 16777217 is out of range 1024..16777216");
	load_fails_at("[server]\nworkers = -1\n", 2,
	    "workers: -1 is out of range 0..64");
	load_fails_at("[server]\nworkers = 65\n", 2,
	    "workers: 65 is out of range 0..64");
	load_fails_at("[database]\n\ndb_port = 0\n", 3,
	    "db_port: 0 is out of range 1..65535");
	load_fails_at("[database]\ndb_port = 65536\n", 2,
	    "db_port: 65536 is out of range 1..65535");
	/* Wider than an int but a valid long: still a range error. */
	load_fails_at("[server]\nmax_output = 4294967296\n", 2,
	    "max_output: 4294967296 is out of range 65536..268435456");
}
END_TEST

START_TEST(test_range_edges_ok)
{
	load_ok("[server]\nmax_frame = 16777216\nmax_output = 268435456\n"
	    "max_message = 1\nworkers = 64\nidle_timeout = 0\n"
	    "[database]\ndb_port = 65535\n");
	ck_assert_int_eq(c.max_frame, 16777216);
	ck_assert_int_eq(c.max_output, 268435456);
	ck_assert_int_eq(c.max_message, 1);
	ck_assert_int_eq(c.workers, 64);
	ck_assert_int_eq(c.idle_timeout, 0);
	ck_assert_int_eq(c.db_port, 65535);
	load_ok("[server]\nmax_frame = 1024\nmax_output = 65536\n"
	    "max_message = 768\n[database]\ndb_port = 1\n");
	ck_assert_int_eq(c.max_frame, 1024);
	ck_assert_int_eq(c.max_output, 65536);
	ck_assert_int_eq(c.db_port, 1);
	/* Explicit sign and surrounding blanks are fine. */
	load_ok("[server]\n  workers   =   +3   \n");
	ck_assert_int_eq(c.workers, 3);
}
END_TEST

START_TEST(test_too_long_string)
{
	/* log_level is a 16-byte buffer: 15 bytes fit, 16 do not. */
	load_fails_at("[server]\nlog_level = debugdebugdebugd\n", 2,
	    "log_level: value longer than 15 bytes");
	ck_assert_int_eq(load("[server]\nlog_level = debugdebugdebug\n"), -1);
	/* ...which is then a conf_finish error, not a length error. */
	ck_assert_str_eq(err, "log_level: \"debugdebugdebug\" is not one of "
	    "error, warning, info, debug");
}
END_TEST

START_TEST(test_syntax_error)
{
	load_fails_at("[server]\nworkers = 2\njust some words\n", 3,
	    "syntax error (expected [section] or key = value)");
	load_fails_at("[server\n", 1, "syntax error (expected [section] or key = value)");
	load_fails_at("\n\n\n[server]\nmax_frame\n", 5, "syntax error (expected [section] or key = value)");
}
END_TEST

START_TEST(test_first_error_wins)
{
	/* Two bad keys: the first one (line 2) is reported. */
	load_fails_at("[server]\nbogus = 1\nworkers = 99\n", 2,
	    "unknown key \"bogus\" in section [server]");
	/* A key error then a syntax error. */
	load_fails_at("[server]\nworkers = 99\nno equals sign\n", 2,
	    "workers: 99 is out of range 0..64");
}
END_TEST

START_TEST(test_missing_file)
{
	const char *path = "/tmp/check_conf-does-not-exist/chatd.conf";

	conf_defaults(&c);
	ck_assert_int_eq(conf_load(&c, path, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, path));
	ck_assert_str_eq(err, "/tmp/check_conf-does-not-exist/chatd.conf: "
	    "No such file or directory");
}
END_TEST

/* --- a full, valid file ---------------------------------------------- */

START_TEST(test_full_config)
{
	load_ok(
	    "; chatd test configuration\n"
	    "[server]\n"
	    "listen = 0.0.0.0:7001\n"
	    "node_id = node-a\n"
	    "workers = 3\n"
	    "max_connections = 500\n"
	    "max_frame = 8192\n"
	    "max_output = 131072\n"
	    "max_message = 2048\n"
	    "auth_timeout = 5\n"
	    "idle_timeout = 60\n"
	    "job_threads = 4\n"
	    "job_queue_max = 128\n"
	    "offline_batch = 10\n"
	    "hash_opslimit = 1\n"
	    "hash_memlimit_kib = 8\n"
	    "respawn_delay_max = 7\n"
	    "shutdown_timeout = 3\n"
	    "log_level = debug\n"
	    "presence_shm = /chatd-test\n"
	    "presence_capacity = 1024\n"
	    "\n"
	    "[database]\n"
	    "db_host = db.example\n"
	    "db_port = 3307\n"
	    "db_socket = /run/mysqld/mysqld.sock\n"
	    "db_name = chat_test\n"
	    "db_user = tester\n"
	    "db_password = s3cret with spaces\n"
	    "db_connect_timeout = 9\n"
	    "db_retry_interval = 11\n"
	    "spool_dir = /srv/chatd-spool\n");
	ck_assert_str_eq(c.listen, "0.0.0.0:7001");
	ck_assert_str_eq(c.node_id, "node-a");
	ck_assert_int_eq(c.workers, 3);
	ck_assert_int_eq(c.max_connections, 500);
	ck_assert_int_eq(c.max_frame, 8192);
	ck_assert_int_eq(c.max_output, 131072);
	ck_assert_int_eq(c.max_message, 2048);
	ck_assert_int_eq(c.auth_timeout, 5);
	ck_assert_int_eq(c.idle_timeout, 60);
	ck_assert_int_eq(c.job_threads, 4);
	ck_assert_int_eq(c.job_queue_max, 128);
	ck_assert_int_eq(c.offline_batch, 10);
	ck_assert_int_eq(c.hash_opslimit, 1);
	ck_assert_int_eq(c.hash_memlimit_kib, 8);
	ck_assert_int_eq(c.respawn_delay_max, 7);
	ck_assert_int_eq(c.shutdown_timeout, 3);
	ck_assert_str_eq(c.log_level, "debug");
	ck_assert_str_eq(c.presence_shm, "/chatd-test");
	ck_assert_int_eq(c.presence_capacity, 1024);
	ck_assert_str_eq(c.db_host, "db.example");
	ck_assert_int_eq(c.db_port, 3307);
	ck_assert_str_eq(c.db_socket, "/run/mysqld/mysqld.sock");
	ck_assert_str_eq(c.db_name, "chat_test");
	ck_assert_str_eq(c.db_user, "tester");
	ck_assert_str_eq(c.db_password, "s3cret with spaces");
	ck_assert_int_eq(c.db_connect_timeout, 9);
	ck_assert_int_eq(c.db_retry_interval, 11);
	ck_assert_str_eq(c.spool_dir, "/srv/chatd-spool");
}
END_TEST

START_TEST(test_sections_may_repeat_and_later_wins)
{
	load_ok("[server]\nworkers = 2\n[database]\ndb_port = 1\n"
	    "[server]\nworkers = 5\n");
	ck_assert_int_eq(c.workers, 5);
	ck_assert_int_eq(c.db_port, 1);
}
END_TEST

START_TEST(test_crlf_file)
{
	load_ok("[server]\r\nworkers = 2\r\nlisten = 127.0.0.1:7002\r\n");
	ck_assert_int_eq(c.workers, 2);
	ck_assert_str_eq(c.listen, "127.0.0.1:7002");
}
END_TEST

/* --- conf_finish ----------------------------------------------------- */

START_TEST(test_finish_workers_zero)
{
	load_ok("[server]\nworkers = 0\n");
	ck_assert_int_ge(c.workers, 1);
	ck_assert_int_le(c.workers, 64);
	conf_defaults(&c);
	ck_assert_int_eq(conf_finish(&c, err, sizeof(err)), 0);
	ck_assert_int_ge(c.workers, 1);
	ck_assert_int_le(c.workers, 64);
	/* An explicit count is kept. */
	load_ok("[server]\nworkers = 7\n");
	ck_assert_int_eq(c.workers, 7);
}
END_TEST

/* The CPUs less one for the event loops, at least 1. */
static int
hash_concurrency_default(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n <= 2 ? 1 : n > 1025 ? 1024 : (int)n - 1;
}

START_TEST(test_finish_hash_concurrency)
{
	load_ok("");
	ck_assert_int_eq(c.hash_concurrency, hash_concurrency_default());
	load_ok("[server]\nhash_concurrency = 0\n");
	ck_assert_int_eq(c.hash_concurrency, hash_concurrency_default());
	/* Explicit values are kept, whatever the CPUs. */
	load_ok("[server]\nhash_concurrency = 1\n");
	ck_assert_int_eq(c.hash_concurrency, 1);
	load_ok("[server]\nhash_concurrency = 1024\n");
	ck_assert_int_eq(c.hash_concurrency, 1024);
	/* Running conf_finish again changes nothing. */
	ck_assert_int_eq(conf_finish(&c, err, sizeof(err)), 0);
	ck_assert_int_eq(c.hash_concurrency, 1024);
	load_fails_at("[server]\nhash_concurrency = -1\n", 2,
	    "hash_concurrency: -1 is out of range 0..1024");
	load_fails_at("[server]\nworkers = 2\nhash_concurrency = 1025\n", 3,
	    "hash_concurrency: 1025 is out of range 0..1024");
	load_fails_at("[server]\nhash_concurrency = two\n", 2,
	    "hash_concurrency: \"two\" is not an integer");
	load_fails_at("[database]\nhash_concurrency = 2\n", 2,
	    "hash_concurrency belongs in section [server], not [database]");
}
END_TEST

START_TEST(test_finish_node_id)
{
	load_ok("[server]\nlisten = 10.0.0.1:6001\n");
	ck_assert_str_eq(c.node_id, "10.0.0.1:6001");
	load_ok("[server]\nlisten = 10.0.0.1:6001\nnode_id = alpha\n");
	ck_assert_str_eq(c.node_id, "alpha");
	/* Running conf_finish again changes nothing. */
	ck_assert_int_eq(conf_finish(&c, err, sizeof(err)), 0);
	ck_assert_str_eq(c.node_id, "alpha");
}
END_TEST

/* A wildcard listen, the same on every host of a cluster, gives the host
 * name and the port: two hosts never share a node id by default. */
START_TEST(test_finish_node_id_wildcard)
{
	static const char *const wild[] = {
		"0.0.0.0:6002", "*:6002", "[::]:6002", ":6002"
	};
	char host[256], id[300];
	size_t i;

	ck_assert_int_eq(gethostname(host, sizeof(host)), 0);
	ck_assert(host[0] != '\0');
	(void)snprintf(id, sizeof(id), "%s:6002", host);
	for (i = 0; i < sizeof(wild) / sizeof(wild[0]); i++) {
		(void)snprintf(want, sizeof(want), "[server]\nlisten = %s\n",
		    wild[i]);
		if (strcmp(wild[i], ":6002") == 0) {
			/* Not host:port for conf_finish: the derivation
			 * alone. */
			conf_node_id_from(&c, wild[i]);
		} else
			load_ok(want);
		ck_assert_msg(strcmp(c.node_id, id) == 0, "listen %s: node_id "
		    "%s, want %s", wild[i], c.node_id, id);
	}
	load_ok("[server]\nlisten = 0.0.0.0:6002\nnode_id = beta\n");
	ck_assert_str_eq(c.node_id, "beta");
	load_ok("[server]\nlisten = 127.0.0.2:6002\n");
	ck_assert_str_eq(c.node_id, "127.0.0.2:6002");
}
END_TEST

START_TEST(test_finish_bad_listen)
{
	load_fails_with("[server]\nlisten = nocolon\n",
	    "listen: \"nocolon\" is not host:port");
	load_fails_with("[server]\nlisten = :6000\n",
	    "listen: \":6000\" is not host:port");
	load_fails_with("[server]\nlisten = 127.0.0.1:\n",
	    "listen: \"127.0.0.1:\" is not host:port");
	load_fails_with("[server]\nlisten =\n",
	    "listen: \"\" is not host:port");
	/* The last colon separates the port, so IPv6 forms pass. */
	load_ok("[server]\nlisten = [::1]:6000\n");
	ck_assert_str_eq(c.listen, "[::1]:6000");
	load_ok("[server]\nlisten = localhost:6000\n");
}
END_TEST

START_TEST(test_finish_bad_log_level)
{
	load_fails_with("[server]\nlog_level = verbose\n",
	    "log_level: \"verbose\" is not one of error, warning, info, debug");
	load_fails_with("[server]\nlog_level =\n",
	    "log_level: \"\" is not one of error, warning, info, debug");
	load_ok("[server]\nlog_level = error\n");
	load_ok("[server]\nlog_level = warning\n");
	load_ok("[server]\nlog_level = info\n");
	load_ok("[server]\nlog_level = debug\n");
}
END_TEST

START_TEST(test_finish_bad_presence_shm)
{
	load_fails_with("[server]\npresence_shm = chatd-presence\n",
	    "presence_shm: \"chatd-presence\" must be one '/' followed by "
	    "a name");
	load_fails_with("[server]\npresence_shm = /a/b\n",
	    "presence_shm: \"/a/b\" must be one '/' followed by a name");
	load_fails_with("[server]\npresence_shm =\n",
	    "presence_shm: \"\" must be one '/' followed by a name");
	load_ok("[server]\npresence_shm = /x\n");
	ck_assert_str_eq(c.presence_shm, "/x");
}
END_TEST

START_TEST(test_finish_max_message)
{
	/* max_message must be at least 256 bytes below max_frame. */
	load_fails_with("[server]\nmax_frame = 1024\nmax_message = 769\n",
	    "max_message (769) must be at least 256 bytes below "
	    "max_frame (1024)");
	load_ok("[server]\nmax_frame = 1024\nmax_message = 768\n");
	ck_assert_int_eq(c.max_message, 768);
	/* The default max_message (4096) against a small max_frame. */
	load_fails_with("[server]\nmax_frame = 4096\n",
	    "max_message (4096) must be at least 256 bytes below "
	    "max_frame (4096)");
}
END_TEST

START_TEST(test_finish_max_output)
{
	/* The default max_output (1 MiB) against a bigger max_frame. */
	load_fails_with("[server]\nmax_frame = 2097152\n",
	    "max_output (1048576) must be at least max_frame (2097152)");
}
END_TEST

START_TEST(test_finish_max_output_below_frame)
{
	load_fails_with("[server]\nmax_frame = 131072\nmax_output = 65536\n",
	    "max_output (65536) must be at least max_frame (131072)");
	load_ok("[server]\nmax_frame = 131072\nmax_output = 131072\n");
	ck_assert_int_eq(c.max_output, 131072);
}
END_TEST

/*
 * --- Regressions: bugs found in src/conf.c and fixed ---------------------
 *
 * 1. libinih (system build: INI_MAX_LINE 200, no realloc) reads a line
 *    of 200 bytes or more as several lines.  A long string value is
 *    silently truncated, the rest is parsed as a line of its own (a
 *    "syntax error" on the wrong line, or worse another key=value that
 *    is then applied), and every later line number is off by one.  The
 *    CONF_STR_MAX (255-byte) values can never be set.
 * 2. Only conf_handler's first reason is kept, but inih reports the line
 *    of its first error of any kind.  A syntax error (no '=', unclosed
 *    "[section") followed by a key error further down is reported as
 *    "file:<syntax line>: <reason of the later key>".
 * 3. A read error is swallowed: fopen() of a directory succeeds, fgets()
 *    fails with EISDIR, inih sees end of file, and conf_load() returns 0
 *    with the defaults.  conf_load should check ferror(fp).
 */

/*
 * Load text that has one long line, line: either it loads (returns 0),
 * or it fails with an error for that very line (a fixed conf.c may
 * refuse over-long lines instead of supporting them).
 */
static int
load_whole_or_line_error(const char *text, int line)
{
	char prefix[128];

	if (load(text) == 0)
		return 0;
	(void)snprintf(prefix, sizeof(prefix), "%s:%d: ", tmp_path, line);
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		ck_abort_msg("error \"%s\" is not for line %d", err, line);
	return -1;
}

START_TEST(test_long_string_255)
{
	/*
	 * Regression, bug 1.  The CONF_STR_MAX buffers hold 255 bytes: a 255-byte
	 * value loads whole (or, if long lines are refused, the error names
	 * its line); a 256-byte one is refused, on its line.  It used to
	 * be a "syntax error" on line 3 for both.
	 */
	char *v255 = repeat('p', 255), *v256 = repeat('p', 256);
	char text[600];

	(void)snprintf(text, sizeof(text),
	    "[database]\ndb_password = %s\ndb_port = 3307\n", v255);
	if (load_whole_or_line_error(text, 2) == 0) {
		ck_assert_str_eq(c.db_password, v255);
		ck_assert_int_eq(c.db_port, 3307);
	}
	(void)snprintf(text, sizeof(text),
	    "[database]\ndb_password = %s\ndb_port = 3307\n", v256);
	ck_assert_int_eq(load_whole_or_line_error(text, 2), -1);
	free(v255);
	free(v256);
}
END_TEST

START_TEST(test_long_line_smuggles_key)
{
	/*
	 * Regression, bug 1.  A 208-byte line: "db_password = " and a 194-byte
	 * value that ends in "db_port=1".  The value fits the 255-byte
	 * buffer: it must load whole with db_port left at its default (or
	 * be refused on line 2).  Today inih cuts the line after 199
	 * bytes: db_password silently becomes the 185 x's and the tail
	 * "db_port=1" sets db_port to 1.
	 */
	char *x = repeat('x', 185);
	char text[400], value[256];

	(void)snprintf(value, sizeof(value), "%sdb_port=1", x);
	(void)snprintf(text, sizeof(text), "[database]\ndb_password = %s\n",
	    value);
	if (load_whole_or_line_error(text, 2) == 0) {
		ck_assert_int_eq(c.db_port, 3306);
		ck_assert_str_eq(c.db_password, value);
	}
	free(x);
}
END_TEST

START_TEST(test_long_line_shifts_line_numbers)
{
	/*
	 * Regression, bug 1: a valid 234-byte line 2, then a bad key on line 4.
	 * The error must name line 4 (or line 2 if long lines are
	 * refused).  Today: "file:3: unknown key" (the tail of line 2
	 * counted as line 3, a syntax error that takes the later reason).
	 */
	char *v = repeat('h', 220);
	char text[400];

	(void)snprintf(text, sizeof(text),
	    "[database]\ndb_socket = /%s\ndb_port = 3307\nbogus = 1\n", v);
	if (load_whole_or_line_error(text, 2) == 0)
		ck_abort_msg("loaded a file with an unknown key");
	(void)snprintf(want, sizeof(want), "%s:2: ", tmp_path);
	if (strncmp(err, want, strlen(want)) != 0) {
		(void)snprintf(want, sizeof(want), "%s:4: unknown key "
		    "\"bogus\" in section [database]", tmp_path);
		ck_assert_str_eq(err, want);
	}
	free(v);
}
END_TEST

START_TEST(test_syntax_error_then_key_error)
{
	/*
	 * A syntax error on line 2 and a bad key on line 3: the error must
	 * name line 2 and say "syntax error".  The reason must belong to
	 * the line it is reported for.
	 */
	/* Regression, bug 2. */
	load_fails_at("[server]\nno equals sign\nbogus = 1\n", 2,
	    "syntax error (expected [section] or key = value)");
	/* An unclosed section header, then a key that is now outside
	 * any section. */
	load_fails_at("[server\nworkers = 2\n", 1, "syntax error (expected [section] or key = value)");
}
END_TEST

/*
 * Regression (found by fuzz_conf): a NUL byte in a line was reported as
 * an over-long line and the next line was silently skipped.
 */
START_TEST(test_nul_byte_in_line)
{
	static const char text[] = "[server]\nwork\0ers = 2\nworkers = 3\n";
	char path[] = "/tmp/check_conf.XXXXXX";
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, sizeof(text) - 1),
	    (ssize_t)(sizeof(text) - 1));
	(void)close(fd);
	conf_defaults(&c);
	ck_assert_int_eq(conf_load(&c, path, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, ":2: line contains a NUL byte") != NULL,
	    "%s", err);
	(void)unlink(path);
}
END_TEST

START_TEST(test_directory_is_an_error)
{
	/* Regression, bug 3. */
	conf_defaults(&c);
	ck_assert_int_eq(conf_load(&c, "/tmp", err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "/tmp"));
}
END_TEST

/* --- the shipped example --------------------------------------------- */

START_TEST(test_example_conf)
{
#ifdef TOP_SRCDIR
	const char *path = TOP_SRCDIR "/etc/chatd.conf";

	if (access(path, F_OK) != 0) {
		fprintf(stderr, "check_conf: %s not there yet, skipped\n",
		    path);
		return;
	}
	conf_defaults(&c);
	if (conf_load(&c, path, err, sizeof(err)) != 0)
		ck_abort_msg("%s does not load: %s", path, err);
#endif
}
END_TEST

/* conf_compare's report: "key:kind," for each key that differs. */
static void
note_key(const char *key, enum conf_reload how, void *arg)
{
	char *buf = arg;
	size_t len = strlen(buf);

	(void)snprintf(buf + len, 512 - len, "%s:%d,", key, (int)how);
}

START_TEST(test_reload_kinds)
{
	struct conf a, b, t;
	char seen[512] = "";

	conf_defaults(&a);
	b = a;
	ck_assert_int_eq(conf_compare(&a, &b, note_key, seen), -1);
	ck_assert_str_eq(seen, "");

	/* Live keys only: the running workers take them. */
	b.max_message = 10;
	(void)snprintf(b.log_level, sizeof(b.log_level), "debug");
	ck_assert_int_eq(conf_compare(&a, &b, note_key, seen), CONF_LIVE);
	ck_assert_str_eq(seen, "max_message:0,log_level:0,");

	/* One key that needs new workers decides. */
	b.job_threads = 5;
	(void)snprintf(b.db_host, sizeof(b.db_host), "db2.example.org");
	seen[0] = '\0';
	ck_assert_int_eq(conf_compare(&a, &b, note_key, seen), CONF_WORKERS);
	ck_assert_str_eq(seen, "max_message:0,job_threads:1,log_level:0,"
	    "db_host:1,");
	b.workers = 7;
	ck_assert_int_eq(conf_compare(&a, &b, NULL, NULL), CONF_RESTART);

	/* Only the kind asked for is copied; a shorter string whole. */
	(void)snprintf(a.log_level, sizeof(a.log_level), "warning");
	t = a;
	ck_assert_int_eq(conf_copy_keys(&t, &b, CONF_LIVE), 2);
	ck_assert_int_eq(t.max_message, 10);
	ck_assert_str_eq(t.log_level, "debug");
	ck_assert_int_eq(t.job_threads, a.job_threads);
	ck_assert_str_eq(t.db_host, a.db_host);
	ck_assert_int_eq(t.workers, a.workers);
	ck_assert_int_eq(conf_copy_keys(&t, &b, CONF_RESTART), 1);
	ck_assert_int_eq(t.workers, 7);
	ck_assert_int_eq(t.job_threads, a.job_threads);
	ck_assert_int_eq(conf_copy_keys(&t, &b, CONF_WORKERS), 2);
	ck_assert_int_eq(conf_compare(&t, &b, NULL, NULL), -1);
	ck_assert_int_eq(conf_copy_keys(&t, &b, CONF_LIVE), 0);
}
END_TEST

/*
 * The share is one mapping shared with processes forked after it was
 * made: a child sees what the parent publishes later, with its
 * generation.
 */
START_TEST(test_share_across_fork)
{
	struct conf_share *sh;
	struct conf a, got;
	int level, status, go[2];
	pid_t pid;
	char byte;

	conf_defaults(&a);
	ck_assert_ptr_nonnull(sh = conf_share_create(&a, 3));
	ck_assert_uint_eq(conf_share_read(sh, &got, &level), 1);
	ck_assert_int_eq(level, 3);
	ck_assert_int_eq(conf_compare(&a, &got, NULL, NULL), -1);

	ck_assert_int_eq(pipe(go), 0);
	ck_assert_int_ne(pid = fork(), -1);
	if (pid == 0) {
		/* After the parent's second publication. */
		if (read(go[0], &byte, 1) != 1)
			_exit(2);
		if (conf_share_read(sh, &got, &level) != 3 || level != 4 ||
		    got.max_message != 99 || strcmp(got.db_name, "other"))
			_exit(1);
		_exit(0);
	}
	a.max_message = 50;
	ck_assert_uint_eq(conf_share_publish(sh, &a, 3), 2);
	a.max_message = 99;
	(void)snprintf(a.db_name, sizeof(a.db_name), "other");
	ck_assert_uint_eq(conf_share_publish(sh, &a, 4), 3);
	ck_assert_int_eq(write(go[1], "", 1), 1);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "the child read another configuration (status %d)", status);
	(void)close(go[0]);
	(void)close(go[1]);
	conf_share_destroy(sh);
}
END_TEST

static Suite *
conf_suite(void)
{
	Suite *s = suite_create("conf");
	TCase *tc;

	tc = tcase_create("defaults");
	tcase_add_test(tc, test_defaults_table);
	tcase_add_test(tc, test_empty_file);
	tcase_add_test(tc, test_comments_and_sections_only);
	tcase_add_test(tc, test_defaults_are_valid);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_test(tc, test_unknown_key);
	tcase_add_test(tc, test_wrong_section);
	tcase_add_test(tc, test_not_integer);
	tcase_add_test(tc, test_out_of_range);
	tcase_add_test(tc, test_range_edges_ok);
	tcase_add_test(tc, test_too_long_string);
	tcase_add_test(tc, test_syntax_error);
	tcase_add_test(tc, test_first_error_wins);
	tcase_add_test(tc, test_missing_file);
	suite_add_tcase(s, tc);

	tc = tcase_create("valid");
	tcase_add_test(tc, test_full_config);
	tcase_add_test(tc, test_sections_may_repeat_and_later_wins);
	tcase_add_test(tc, test_crlf_file);
	suite_add_tcase(s, tc);

	tc = tcase_create("finish");
	tcase_add_test(tc, test_finish_workers_zero);
	tcase_add_test(tc, test_finish_hash_concurrency);
	tcase_add_test(tc, test_finish_node_id);
	tcase_add_test(tc, test_finish_node_id_wildcard);
	tcase_add_test(tc, test_finish_bad_listen);
	tcase_add_test(tc, test_finish_bad_log_level);
	tcase_add_test(tc, test_finish_bad_presence_shm);
	tcase_add_test(tc, test_finish_max_message);
	tcase_add_test(tc, test_finish_max_output);
	tcase_add_test(tc, test_finish_max_output_below_frame);
	suite_add_tcase(s, tc);

	/* Regressions of fixed bugs in src/conf.c. */
	tc = tcase_create("regressions");
	tcase_add_test(tc, test_long_string_255);
	tcase_add_test(tc, test_long_line_smuggles_key);
	tcase_add_test(tc, test_long_line_shifts_line_numbers);
	tcase_add_test(tc, test_syntax_error_then_key_error);
	tcase_add_test(tc, test_directory_is_an_error);
	tcase_add_test(tc, test_nul_byte_in_line);
	suite_add_tcase(s, tc);

	tc = tcase_create("example");
	tcase_add_test(tc, test_example_conf);
	suite_add_tcase(s, tc);

	tc = tcase_create("reload");
	tcase_add_test(tc, test_reload_kinds);
	tcase_add_test(tc, test_share_across_fork);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(conf_suite());
	int nfailed;

	srunner_run_all(sr, CK_NORMAL);
	nfailed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nfailed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
