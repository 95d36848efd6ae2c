/*
 * conf.c - loads chatd.conf with libinih against one table of keys.
 *
 * The table is the single source of truth for each key's section, type,
 * default and range (Redis config.c style); chatd.conf(5) documents the
 * same table.  Parsing stops being useful at the first error, so only the
 * first error is reported, as "file:line: reason".
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <ini.h>

#include "conf.h"
#include "log.h"

enum conf_type { CONF_INT, CONF_STR };

struct conf_key {
	const char *section;
	const char *name;
	enum conf_type type;
	size_t offset;
	size_t size;		/* CONF_STR: buffer size */
	long min, max;		/* CONF_INT */
	long def_int;
	const char *def_str;
	enum conf_reload how;	/* what a reload does with a new value */
};

#define KINT(sec, name, min, max, def, how) \
	{ sec, #name, CONF_INT, offsetof(struct conf, name), 0, min, max, def, \
	  NULL, CONF_##how }
#define KSTR(sec, name, def, how) \
	{ sec, #name, CONF_STR, offsetof(struct conf, name), \
	  sizeof(((struct conf *)0)->name), 0, 0, 0, def, CONF_##how }

static const struct conf_key conf_keys[] = {
	KSTR("server", listen, "127.0.0.1:6000", RESTART),
	KSTR("server", node_id, "", WORKERS),
	KINT("server", workers, 0, 64, 0, RESTART),
	KINT("server", max_connections, 16, 1000000, 10000, LIVE),
	KINT("server", max_frame, 1024, 16777216, 65536, RESTART),
	KINT("server", max_output, 65536, 268435456, 1048576, WORKERS),
	KINT("server", max_message, 1, 16777216, 4096, LIVE),
	KINT("server", auth_timeout, 1, 3600, 30, LIVE),
	KINT("server", idle_timeout, 0, 86400, 300, LIVE),
	KINT("server", job_threads, 1, 64, 2, WORKERS),
	KINT("server", job_queue_max, 16, 1000000, 4096, WORKERS),
	KINT("server", offline_batch, 0, 10000, 100, LIVE),
	KINT("server", hash_opslimit, 1, 10, 2, LIVE),
	KINT("server", hash_memlimit_kib, 8, 4194304, 65536, LIVE),
	KINT("server", hash_concurrency, 0, 1024, 0, WORKERS),
	KINT("server", respawn_delay_max, 1, 3600, 30, LIVE),
	KINT("server", shutdown_timeout, 1, 600, 10, LIVE),
	KSTR("server", log_level, "info", LIVE),
	KSTR("server", presence_shm, "/chatd-presence", RESTART),
	KINT("server", presence_capacity, 16, 16777216, 65536, RESTART),
	KINT("server", rate_limit, 0, 1000000, 100, LIVE),
	KINT("server", rate_burst, 1, 1000000, 200, LIVE),
	KINT("server", login_fail_max, 0, 1000, 5, LIVE),
	KINT("server", login_fail_max_addr, 0, 1000000, 100, LIVE),
	KINT("server", login_fail_window, 1, 86400, 300, LIVE),
	KINT("server", login_delay_max, 1, 3600, 60, LIVE),
	KINT("server", max_conns_per_addr, 0, 1000000, 0, LIVE),
	KSTR("server", user, "", RESTART),
	KSTR("server", group, "", RESTART),
	KSTR("server", control_socket, "/run/chatd/chatd.sock", RESTART),
	KSTR("server", control_mode, "0660", RESTART),
	KSTR("database", db_host, "127.0.0.1", WORKERS),
	KINT("database", db_port, 1, 65535, 3306, WORKERS),
	KSTR("database", db_socket, "", WORKERS),
	KSTR("database", db_name, "chat", WORKERS),
	KSTR("database", db_user, "chatd", WORKERS),
	KSTR("database", db_password, "", WORKERS),
	KINT("database", db_connect_timeout, 1, 300, 5, WORKERS),
	KINT("database", db_retry_interval, 1, 300, 2, WORKERS),
	KSTR("database", spool_dir, "/var/lib/chatd", WORKERS),
	KSTR("redis", redis_host, "127.0.0.1", WORKERS),
	KINT("redis", redis_port, 1, 65535, 6379, WORKERS),
	KSTR("redis", redis_socket, "", WORKERS),
	KSTR("redis", redis_prefix, "chat:", WORKERS),
	KINT("redis", presence_ttl, 3, 3600, 30, LIVE),
	KINT("redis", redis_retry_max, 1, 300, 5, LIVE),
	KINT("redis", redis_timeout, 1, 60, 2, WORKERS),
};
#define NKEYS (sizeof(conf_keys) / sizeof(conf_keys[0]))

struct conf_parse {
	struct conf *c;
	FILE *fp;
	char *buf;		/* getline's buffer */
	size_t bufsize;
	int line;		/* lines read so far */
	int err_line;		/* line of the first error, 0 when none */
	char reason[256];	/* first error, empty when none */
};

void
conf_defaults(struct conf *c)
{
	size_t i;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < NKEYS; i++) {
		const struct conf_key *k = &conf_keys[i];
		char *p = (char *)c + k->offset;

		if (k->type == CONF_INT)
			*(int *)p = (int)k->def_int;
		else
			(void)snprintf(p, k->size, "%s", k->def_str);
	}
}

static int
conf_set(struct conf_parse *cp, const struct conf_key *k, const char *value)
{
	char *p = (char *)cp->c + k->offset;
	char *end;
	long v;

	if (k->type == CONF_STR) {
		if (strlen(value) >= k->size) {
			(void)snprintf(cp->reason, sizeof(cp->reason),
			    "%s: value longer than %zu bytes", k->name,
			    k->size - 1);
			return -1;
		}
		memcpy(p, value, strlen(value) + 1);
		return 0;
	}
	errno = 0;
	v = strtol(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0') {
		(void)snprintf(cp->reason, sizeof(cp->reason),
		    "%s: \"%s\" is not an integer", k->name, value);
		return -1;
	}
	if (v < k->min || v > k->max) {
		(void)snprintf(cp->reason, sizeof(cp->reason),
		    "%s: %ld is out of range %ld..%ld", k->name, v, k->min,
		    k->max);
		return -1;
	}
	*(int *)p = (int)v;
	return 0;
}

/* libinih callback: returns 1 to go on, 0 to mark this line as an error. */
static int
conf_handler(void *user, const char *section, const char *name,
    const char *value)
{
	struct conf_parse *cp = user;
	size_t i;

	if (cp->err_line != 0)
		return 1;	/* keep the first error only */
	if (name == NULL)
		return 1;	/* a section header on its own */
	for (i = 0; i < NKEYS; i++) {
		const struct conf_key *k = &conf_keys[i];

		if (strcmp(k->name, name) != 0)
			continue;
		if (strcmp(k->section, section) != 0) {
			(void)snprintf(cp->reason, sizeof(cp->reason),
			    "%s belongs in section [%s], not [%s]", name,
			    k->section, section);
			cp->err_line = cp->line;
			return 0;
		}
		if (conf_set(cp, k, value) == 0)
			return 1;
		cp->err_line = cp->line;
		return 0;
	}
	(void)snprintf(cp->reason, sizeof(cp->reason),
	    "unknown key \"%s\" in section [%s]", name, section);
	cp->err_line = cp->line;
	return 0;
}

/*
 * libinih line reader: counts lines (so errors name the right one) and
 * refuses a line longer than the library's buffer instead of letting it
 * be split into two lines, which could set a key nobody wrote.
 */
static char *
conf_reader(char *str, int num, void *stream)
{
	struct conf_parse *cp = stream;
	const char *bad = NULL;
	ssize_t len;

	if ((len = getline(&cp->buf, &cp->bufsize, cp->fp)) == -1)
		return NULL;
	cp->line++;
	if (memchr(cp->buf, '\0', (size_t)len) != NULL)
		bad = "line contains a NUL byte";
	else if (len > num - 1)
		bad = "line too long";
	if (bad != NULL) {
		if (cp->err_line == 0) {
			(void)snprintf(cp->reason, sizeof(cp->reason),
			    "%s (at most %d bytes)", bad, num - 2);
			cp->err_line = cp->line;
		}
		str[0] = '\0';
		return str;
	}
	memcpy(str, cp->buf, (size_t)len + 1);
	return str;
}

int
conf_load(struct conf *c, const char *path, char *err, size_t errlen)
{
	struct conf_parse cp;
	int line, rerr;

	memset(&cp, 0, sizeof(cp));
	cp.c = c;
	if ((cp.fp = fopen(path, "r")) == NULL) {
		(void)snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	line = ini_parse_stream(conf_reader, &cp, conf_handler, &cp);
	rerr = ferror(cp.fp) ? errno : 0;
	(void)fclose(cp.fp);
	free(cp.buf);
	if (rerr != 0 || line < 0) {
		(void)snprintf(err, errlen, "%s: cannot read: %s", path,
		    strerror(rerr != 0 ? rerr : EIO));
		return -1;
	}
	/* The first error by line, whether ours or the library's. */
	if (cp.err_line != 0 && (line == 0 || cp.err_line <= line)) {
		(void)snprintf(err, errlen, "%s:%d: %s", path, cp.err_line,
		    cp.reason);
		return -1;
	}
	if (line > 0) {
		(void)snprintf(err, errlen, "%s:%d: syntax error (expected "
		    "[section] or key = value)", path, line);
		return -1;
	}
	return conf_finish(c, err, errlen);
}

int
conf_finish(struct conf *c, char *err, size_t errlen)
{
	const char *colon;

	if (log_level_parse(c->log_level) < 0) {
		(void)snprintf(err, errlen, "log_level: \"%s\" is not one of "
		    "error, warning, info, debug", c->log_level);
		return -1;
	}
	colon = strrchr(c->listen, ':');
	if (colon == NULL || colon == c->listen || colon[1] == '\0') {
		(void)snprintf(err, errlen,
		    "listen: \"%s\" is not host:port", c->listen);
		return -1;
	}
	if (c->presence_shm[0] != '/' || strchr(c->presence_shm + 1, '/')) {
		(void)snprintf(err, errlen, "presence_shm: \"%s\" must be "
		    "one '/' followed by a name", c->presence_shm);
		return -1;
	}
	if (c->spool_dir[0] != '\0' && c->spool_dir[0] != '/') {
		(void)snprintf(err, errlen, "spool_dir: \"%s\" must be an "
		    "absolute path, or empty", c->spool_dir);
		return -1;
	}
	if (c->max_message > c->max_frame - 256) {
		(void)snprintf(err, errlen, "max_message (%d) must be at least "
		    "256 bytes below max_frame (%d)", c->max_message,
		    c->max_frame);
		return -1;
	}
	if (c->max_output < c->max_frame) {
		(void)snprintf(err, errlen, "max_output (%d) must be at least "
		    "max_frame (%d)", c->max_output, c->max_frame);
		return -1;
	}
	{
		char *end;
		unsigned long m = strtoul(c->control_mode, &end, 8);

		if (c->control_mode[0] == '\0' || *end != '\0' || m > 0777 ||
		    (m & 0007) != 0) {
			(void)snprintf(err, errlen, "control_mode: \"%s\" must "
			    "be an octal mode without rights for others, "
			    "e.g. 0660", c->control_mode);
			return -1;
		}
	}
	if (strpbrk(c->redis_prefix, " \t\r\n") != NULL) {
		(void)snprintf(err, errlen, "redis_prefix: \"%s\" must not "
		    "contain white space", c->redis_prefix);
		return -1;
	}
	if (c->workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		c->workers = n < 1 ? 1 : n > 64 ? 64 : (int)n;
	}
	if (c->hash_concurrency == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		/* One CPU stays for the event loops during a login storm. */
		c->hash_concurrency = n <= 2 ? 1 : n > 1025 ? 1024 :
		    (int)n - 1;
	}
	if (c->node_id[0] == '\0') {
		conf_node_id_from(c, c->listen);
		c->node_id_auto = 1;
	}
	return 0;
}

void
conf_node_id_from(struct conf *c, const char *listen)
{
	const char *colon = strrchr(listen, ':');
	size_t hlen = colon != NULL ? (size_t)(colon - listen) : 0;
	char host[256];

	/* Every host of a cluster may listen on the same wildcard address
	 * and port: their node ids would be one, and each would take the
	 * others' claims for its own.  The host name tells them apart. */
	if (colon != NULL && (hlen == 0 ||
	    (hlen == 1 && listen[0] == '*') ||
	    (hlen == 7 && strncmp(listen, "0.0.0.0", 7) == 0) ||
	    (hlen == 2 && strncmp(listen, "::", 2) == 0) ||
	    (hlen == 4 && strncmp(listen, "[::]", 4) == 0)) &&
	    gethostname(host, sizeof(host)) == 0 && host[0] != '\0') {
		host[sizeof(host) - 1] = '\0';
		(void)snprintf(c->node_id, sizeof(c->node_id), "%s%s", host,
		    colon);
		return;
	}
	(void)snprintf(c->node_id, sizeof(c->node_id), "%s", listen);
}

int
conf_redis_enabled(const struct conf *c)
{
	return c->redis_host[0] != '\0' || c->redis_socket[0] != '\0';
}

static int
conf_key_differs(const struct conf_key *k, const struct conf *a,
    const struct conf *b)
{
	const char *pa = (const char *)a + k->offset;
	const char *pb = (const char *)b + k->offset;

	if (k->type == CONF_INT)
		return *(const int *)(const void *)pa !=
		    *(const int *)(const void *)pb;
	return strcmp(pa, pb) != 0;
}

int
conf_compare(const struct conf *a, const struct conf *b, conf_change_fn *fn,
    void *arg)
{
	size_t i;
	int most = -1;

	for (i = 0; i < NKEYS; i++) {
		const struct conf_key *k = &conf_keys[i];

		if (!conf_key_differs(k, a, b))
			continue;
		if (fn != NULL)
			fn(k->name, k->how, arg);
		if ((int)k->how > most)
			most = (int)k->how;
	}
	return most;
}

int
conf_copy_keys(struct conf *to, const struct conf *from,
    enum conf_reload how)
{
	size_t i;
	int n = 0;

	for (i = 0; i < NKEYS; i++) {
		const struct conf_key *k = &conf_keys[i];

		if (k->how != how || !conf_key_differs(k, to, from))
			continue;
		memcpy((char *)to + k->offset, (const char *)from + k->offset,
		    k->type == CONF_INT ? sizeof(int) : k->size);
		n++;
	}
	return n;
}

/*
 * A seqlock: the writer makes seq odd, writes, makes it even again; a
 * reader copies between two even readings that agree.
 */
struct conf_share {
	atomic_uint_fast64_t seq;
	uint64_t gen;
	int level;
	struct conf conf;
};

struct conf_share *
conf_share_create(const struct conf *c, int level)
{
	struct conf_share *sh;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return NULL;
	atomic_init(&sh->seq, 0);
	sh->gen = 0;
	(void)conf_share_publish(sh, c, level);
	return sh;
}

void
conf_share_destroy(struct conf_share *sh)
{
	if (sh != NULL)
		(void)munmap(sh, sizeof(*sh));
}

uint64_t
conf_share_publish(struct conf_share *sh, const struct conf *c, int level)
{
	uint_fast64_t s = atomic_load_explicit(&sh->seq, memory_order_relaxed);
	uint64_t gen;

	atomic_store_explicit(&sh->seq, s + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	gen = ++sh->gen;
	sh->level = level;
	memcpy(&sh->conf, c, sizeof(*c));
	atomic_store_explicit(&sh->seq, s + 2, memory_order_release);
	return gen;
}

uint64_t
conf_share_read(const struct conf_share *sh, struct conf *c, int *level)
{
	uint_fast64_t s1, s2;
	uint64_t gen;
	long tries;

	/* A write is one memcpy; a seq odd for this long means a master
	 * killed in the middle of one. */
	for (tries = 0; tries < 10000000; tries++) {
		s1 = atomic_load_explicit(&sh->seq, memory_order_acquire);
		if (s1 & 1)
			continue;
		gen = sh->gen;
		*level = sh->level;
		memcpy(c, &sh->conf, sizeof(*c));
		atomic_thread_fence(memory_order_acquire);
		s2 = atomic_load_explicit(&sh->seq, memory_order_relaxed);
		if (s1 == s2)
			return gen;
	}
	return 0;
}
