/*
 * master.c - supervision in the nginx style.
 *
 * The master keeps one SO_REUSEPORT listening socket per worker slot for
 * its whole life, so a respawned or reloaded worker inherits its slot's
 * socket and connections queued on it while the slot had no worker are
 * accepted, not refused.  Signal handlers only set flags; the loop sleeps
 * in ppoll (signals unblocked only there, like sigsuspend) and acts on
 * them, serving the control socket in between.  A one-second timer drives
 * respawn backoff and the systemd watchdog.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <fcntl.h>
#include <poll.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <mysql.h>
#include <systemd/sd-daemon.h>

#include "cluster.h"
#include "control.h"
#include "hashslot.h"
#include "inbox.h"
#include "log.h"
#include "master.h"
#include "monotime.h"
#include "presence.h"
#include "store.h"
#include "worker.h"

/* A worker that dies sooner than this after starting is crash-looping. */
#define MASTER_QUICK_DEATH 5

struct slot {
	int fd;			/* listening socket, owned by the master */
	pid_t pid;		/* 0 when no worker runs */
	time_t started;		/* monotime_s(), as the deadlines below */
	time_t next_start;	/* respawn not before (backoff) */
	int fails;		/* consecutive quick deaths */
	int replacing;		/* stopped for a reload: respawn at once */
	time_t kill_at;		/* replacing: SIGKILL if still running */
	struct cluster *cluster;	/* the master's Redis client when the
					 * worker started: its claims are
					 * there, named as it named them */
};

struct master {
	struct conf *conf;
	const char *conf_path;
	struct slot *slots;
	int nslots;
	struct presence *presence;
	struct inbox *inbox;
	size_t inbox_payload;	/* the largest record it takes */
	int stopping;
	int reloading;
	int ready_fd;		/* write end handed to starting workers */
	int ready_rfd;		/* its read end, closed in the workers */
	int debug;		/* -d: debug logging whatever the config */
	struct worker_stats *stats;	/* per slot, shared with workers */
	struct control *control;	/* NULL when control_socket is empty */
	time_t started;
	struct cluster *cluster;	/* Redis of the running configuration,
					 * to release a dead worker's claims;
					 * NULL on one host.  Older ones live
					 * on in slots (master_cluster_put) */
	int lock_fd;		/* flock held for the life of this instance */
	char lock_name[CONF_STR_MAX + 8];
	char hash_name[HASHSLOT_NAME_MAX];	/* hash_concurrency slots */
	struct conf_share *share;	/* the configuration for workers */
	uint64_t conf_gen;		/* its generation */
	uint64_t conf_gen_done;		/* the newest every worker runs:
					 * a reload is complete (chatctl
					 * waits for it in status) */
	/* The sweep of the claims (cluster_sweep_start). */
	int sweeping;
	time_t sweep_next;
	char sweep_cursor[32];
};

static volatile sig_atomic_t sig_chld, sig_term, sig_hup, sig_alrm;

static void
master_sighandler(int sig)
{
	switch (sig) {
	case SIGCHLD:
		sig_chld = 1;
		break;
	case SIGTERM:
	case SIGINT:
		sig_term = 1;
		break;
	case SIGHUP:
		sig_hup = 1;
		break;
	case SIGALRM:
		sig_alrm = 1;
		break;
	case SIGUSR1:
		/* A worker applied a configuration generation: nothing to
		 * note, the wakeup is the point (the loop checks whether a
		 * reload is complete each time round). */
		break;
	}
}

static int
master_listen(const char *listen_addr, char *err, size_t errlen)
{
	struct addrinfo hints, *res, *ai;
	char host[256], *port;
	int fd = -1, one = 1, rc;

	(void)snprintf(host, sizeof(host), "%s", listen_addr);
	port = strrchr(host, ':');
	*port++ = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if ((rc = getaddrinfo(host[0] && strcmp(host, "*") ? host : NULL,
	    port, &hints, &res)) != 0) {
		(void)snprintf(err, errlen, "listen %s: %s", listen_addr,
		    gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1)
			continue;
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
		    sizeof(one)) == -1 || setsockopt(fd, SOL_SOCKET,
		    SO_REUSEPORT, &one, sizeof(one)) == -1 ||
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == -1 ||
		    listen(fd, 511) == -1) {
			(void)snprintf(err, errlen, "bind %s: %s", listen_addr,
			    strerror(errno));
			(void)close(fd);
			fd = -1;
			continue;
		}
		break;
	}
	freeaddrinfo(res);
	return fd;
}

/* Close a Redis client of an older configuration once no worker started
 * under it is left. */
static void
master_cluster_put(struct master *m, struct cluster *cl)
{
	int i;

	if (cl == NULL || cl == m->cluster)
		return;
	for (i = 0; i < m->nslots; i++)
		if (m->slots[i].cluster == cl)
			return;
	cluster_close(cl);
}

/* Close every Redis client: at exit, and in a new worker, where they are
 * copies (closing a hiredis context sends nothing, so the master's
 * connections go on). */
static void
master_close_clusters(struct master *m)
{
	struct cluster *old;
	int i;

	for (i = 0; i < m->nslots; i++) {
		old = m->slots[i].cluster;
		m->slots[i].cluster = NULL;
		master_cluster_put(m, old);
	}
	cluster_close(m->cluster);
	m->cluster = NULL;
}

static void
master_spawn(struct master *m, int i)
{
	struct slot *s = &m->slots[i];
	pid_t pid;
	int j;

	if ((pid = fork()) == -1) {
		log_warn("fork worker %d", i);
		s->next_start = monotime_s() + 1;
		return;
	}
	if (pid == 0) {
		/* Only this slot's socket; the master keeps the others, and
		 * its control socket and Redis connections, which would
		 * otherwise stay open as long as this worker lives. */
		for (j = 0; j < m->nslots; j++)
			if (j != i)
				(void)close(m->slots[j].fd);
		if (m->control != NULL)
			(void)close(control_fd(m->control));
		if (m->ready_rfd != -1)
			(void)close(m->ready_rfd);
		master_close_clusters(m);
		worker_main(m->conf, m->share, i, m->nslots, s->fd,
		    m->presence, m->inbox, &m->stats[i], m->ready_fd);
	}
	s->pid = pid;
	s->started = monotime_s();
	s->replacing = 0;
	s->cluster = m->cluster;
	log_debug("worker %d started, pid %ld", i, (long)pid);
}

/* Workers alive at all, replaced or not. */
static int
master_alive(const struct master *m)
{
	int i, n = 0;

	for (i = 0; i < m->nslots; i++)
		n += m->slots[i].pid != 0;
	return n;
}

/* The sessions of a dead worker, to release their claims. */
struct release_arg {
	int slot;
	pid_t pid;
	size_t n, cap;
	uint32_t *uids;
	uint64_t *tokens;
};

static void
release_add(struct release_arg *ra, uint32_t uid, uint64_t token)
{
	size_t cap;

	if (ra->n == ra->cap) {
		cap = ra->cap == 0 ? 1024 : ra->cap * 2;
		ra->uids = reallocarray(ra->uids, cap, sizeof(*ra->uids));
		ra->tokens = reallocarray(ra->tokens, cap,
		    sizeof(*ra->tokens));
		if (ra->uids == NULL || ra->tokens == NULL)
			fatalx("%s: out of memory", __func__);
		ra->cap = cap;
	}
	ra->uids[ra->n] = uid;
	ra->tokens[ra->n] = token;
	ra->n++;
}

static int
release_collect(const struct presence_entry *e, void *arg)
{
	struct release_arg *ra = arg;

	if (e->slot == ra->slot && e->pid == ra->pid)
		release_add(ra, e->uid, e->token);
	return 0;
}

/*
 * The sessions uids[0..n) of the worker in slot `dead` ended with it:
 * hand them to a live worker (the next one after it; else the one
 * started in its place, which reads its inbox from where the dead one
 * stopped), which tells their friends they are offline.  The master
 * never waits for room: what does not fit is logged.
 */
static void
master_tell_gone(struct master *m, int dead, const uint32_t *uids,
    const uint64_t *tokens, size_t n)
{
	struct inbox_msg msg;
	size_t per = m->inbox_payload / INBOX_GONE_SIZE, k, j;
	char *buf;
	int to = dead, i, s;

	if (n == 0 || m->stopping)
		return;
	for (i = 1; i < m->nslots; i++) {
		s = (dead + i) % m->nslots;
		if (m->slots[s].pid > 0 && !m->slots[s].replacing) {
			to = s;
			break;
		}
	}
	if ((buf = malloc((n < per ? n : per) * INBOX_GONE_SIZE)) == NULL)
		fatalx("%s: out of memory", __func__);
	for (k = 0; k < n; k += msg.id) {
		memset(&msg, 0, sizeof(msg));
		msg.type = INBOX_GONE;
		msg.id = (uint32_t)(n - k < per ? n - k : per);
		for (j = 0; j < msg.id; j++) {
			memcpy(buf + j * INBOX_GONE_SIZE, &uids[k + j],
			    sizeof(uint32_t));
			memcpy(buf + j * INBOX_GONE_SIZE + sizeof(uint32_t),
			    &tokens[k + j], sizeof(uint64_t));
		}
		msg.data = buf;
		msg.len = msg.id * INBOX_GONE_SIZE;
		if (inbox_send(m->inbox, to, &msg) == -1) {
			log_warnx("worker %d: the inbox of worker %d is full: "
			    "the friends of %zu of its ended sessions are not "
			    "told", dead, to, n - k);
			break;
		}
	}
	free(buf);
	(void)inbox_flush(m->inbox, to);
	log_info("worker %d: worker %d tells the friends of its %zu ended "
	    "session(s)", dead, to, n);
}

/* Blocking, bounded by redis_timeout (a few round trips:
 * CLUSTER_RELEASE_BATCH claims to a command): the master has nothing
 * else to do while a worker is being replaced.  The claims are released
 * on the server, and under the names, the worker used: a reload may have
 * changed them since it started.  The users, whose friends are still to
 * be told (master_tell_gone), go to *uids and their sessions to *tokens
 * (the caller frees both). */
static size_t
master_release_claims(struct master *m, int slot, pid_t pid,
    uint32_t **uids, uint64_t **tokens)
{
	struct release_arg ra;
	struct worker_ending *e;
	size_t i, ending = 0;
	long n;

	memset(&ra, 0, sizeof(ra));
	ra.slot = slot;
	ra.pid = pid;
	(void)presence_foreach(m->presence, release_collect, &ra);
	/* And the sessions that had ended, their friends not told yet
	 * (their claims may be there still). */
	for (i = 0; i < WORKER_ENDING_MAX; i++) {
		e = &m->stats[slot].ending[i];
		if (e->uid == 0)
			continue;
		release_add(&ra, e->uid, e->token);
		e->uid = 0;
		ending++;
	}
	if (ending > 0)
		log_info("worker %d: %zu session(s) had ended, their friends "
		    "not told yet", slot, ending);
	if (ra.n > 0 && m->slots[slot].cluster != NULL) {
		n = cluster_release(m->slots[slot].cluster, ra.uids,
		    ra.tokens, ra.n);
		if (n >= 0)
			log_info("worker %d: released %ld cluster claim(s)",
			    slot, n);
		else
			log_warnx("worker %d: could not release all of its "
			    "%zu cluster claim(s); the rest expire after "
			    "presence_ttl", slot, ra.n);
	}
	*uids = ra.uids;
	*tokens = ra.tokens;
	return ra.n;
}

static void
master_reap(struct master *m)
{
	struct cluster *old;
	struct slot *s;
	time_t now = monotime_s();
	pid_t pid;
	int status, i, delay;
	uint32_t *gone;
	uint64_t *tokens;
	size_t n, ngone;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < m->nslots; i++)
			if (m->slots[i].pid == pid)
				break;
		if (i == m->nslots)
			continue;
		s = &m->slots[i];
		s->pid = 0;
		/* Its sessions are gone: release their cluster claims so the
		 * users can log in again at once, then clear them before
		 * anyone else routes to the dead worker. */
		ngone = master_release_claims(m, i, pid, &gone, &tokens);
		n = presence_remove_slot(m->presence, (uint16_t)i, pid);
		/* Not found online any more, their friends are told. */
		master_tell_gone(m, i, gone, tokens, ngone);
		free(gone);
		free(tokens);
		old = s->cluster;
		s->cluster = NULL;
		master_cluster_put(m, old);
		if (m->stopping || s->replacing) {
			if (n > 0)
				log_info("worker %d: cleared %zu presence "
				    "entries", i, n);
			continue;
		}
		if (WIFSIGNALED(status))
			log_warnx("worker %d (pid %ld) killed by signal %d; "
			    "%zu session(s) lost", i, (long)pid,
			    WTERMSIG(status), n);
		else
			log_warnx("worker %d (pid %ld) exited with status %d; "
			    "%zu session(s) lost", i, (long)pid,
			    WEXITSTATUS(status), n);
		if (now - s->started < MASTER_QUICK_DEATH)
			s->fails++;
		else
			s->fails = 0;
		/* One crash respawns at once (messages wait in its inbox);
		 * a crash loop backs off 2, 4, 8 ... s. */
		delay = s->fails <= 1 ? 0 :
		    1 << (s->fails < 11 ? s->fails - 1 : 10);
		if (delay > m->conf->respawn_delay_max)
			delay = m->conf->respawn_delay_max;
		s->next_start = now + delay;
		if (delay > 0)
			log_warnx("worker %d: respawning in %d s "
			    "(respawn_delay_max = %d)", i, delay,
			    m->conf->respawn_delay_max);
	}
}

/* A worker replaced by a reload that outlives its shutdown_timeout (a
 * hung job, a stopped process) is killed, as on a stop: its slot's new
 * worker, and the reload's end, wait for it. */
/*
 * Every half presence_ttl one node sweeps the claims, so that Redis finds
 * those whose time is up and says so (cluster.h): at most MASTER_SWEEP_MS
 * of calls at each tick of the master.
 */
#define MASTER_SWEEP_MS 50

static void
master_sweep(struct master *m)
{
	time_t now = monotime_s();
	uint64_t until;
	int period = m->conf->presence_ttl / 2, rc;

	if (m->cluster == NULL)
		return;
	if (period < 1)
		period = 1;
	if (!m->sweeping) {
		if (now < m->sweep_next)
			return;
		m->sweep_next = now + period;
		if (cluster_sweep_start(m->cluster, period, m->sweep_cursor,
		    sizeof(m->sweep_cursor)) != 1)
			return;
		m->sweeping = 1;
	} else
		cluster_sweep_hold(m->cluster, period);
	until = monotime_ms() + MASTER_SWEEP_MS;
	do {
		rc = cluster_sweep_step(m->cluster, m->sweep_cursor,
		    sizeof(m->sweep_cursor));
	} while (rc == 0 && monotime_ms() < until);
	if (rc != 0)
		m->sweeping = 0;	/* over, or Redis failed: next time */
}

static void
master_kill_late(struct master *m)
{
	time_t now = monotime_s();
	struct slot *s;
	int i;

	for (i = 0; i < m->nslots; i++) {
		s = &m->slots[i];
		if (s->pid == 0 || !s->replacing || now < s->kill_at)
			continue;
		log_warnx("worker %d (pid %ld), replaced by a reload, did not "
		    "stop in time (shutdown_timeout); killing it", i,
		    (long)s->pid);
		(void)kill(s->pid, SIGKILL);
		s->kill_at = now + 5;
	}
}

static void
master_respawn_due(struct master *m)
{
	time_t now = monotime_s();
	int i;

	if (m->stopping)
		return;
	for (i = 0; i < m->nslots; i++)
		if (m->slots[i].pid == 0 && now >= m->slots[i].next_start)
			master_spawn(m, i);
}

/* The log level the configuration asks for, or debug under -d. */
static int
master_log_level(const struct master *m)
{
	return m->debug ? LOG_LEVEL_DEBUG : log_level_parse(m->conf->log_level);
}

/* What conf_compare reports on a reload: the first key that needs new
 * workers, and (for chatctl) the keys that need a restart. */
struct reload_notes {
	const char *why;
	cJSON *restart;		/* NULL on SIGHUP (no one to tell) */
};

/* conf_compare's report on a reload: a warning for each key that needs
 * a restart. */
static void
reload_note(const char *key, enum conf_reload how, void *arg)
{
	struct reload_notes *rn = arg;

	if (how == CONF_RESTART) {
		log_warnx("reload: %s changed; restart chatd to apply it",
		    key);
		if (rn->restart != NULL)
			cJSON_AddItemToArray(rn->restart,
			    cJSON_CreateString(key));
	} else if (how == CONF_WORKERS && rn->why == NULL)
		rn->why = key;
}

/* The file as the next configuration: the running values of the keys
 * that need a restart, and the rules between keys checked on that. */
static int
reload_parse(const struct master *m, struct conf *next,
    struct reload_notes *rn, char *err, size_t errlen)
{
	conf_defaults(next);
	if (conf_load(next, m->conf_path, err, errlen) == -1)
		return -1;
	/* A node id derived from listen follows the running listen, which
	 * only a restart changes. */
	if (next->node_id_auto)
		conf_node_id_from(next, m->conf->listen);
	(void)conf_compare(m->conf, next, reload_note, rn);
	(void)conf_copy_keys(next, m->conf, CONF_RESTART);
	return conf_finish(next, err, errlen);
}

/*
 * SIGHUP, or chatctl reload (reply: what it did; the error is returned
 * to chatctl too): parse the file into a scratch copy; only a complete
 * parse replaces the running config.  Keys that shape the shared
 * segment, the sockets or the inboxes need a restart and keep their old
 * values.  When only live keys changed (conf.c says which), the running
 * workers take the new configuration from the share and keep their
 * connections; otherwise every worker is replaced.  Either way the
 * reload is complete once every slot runs a worker that applied the new
 * generation.
 */
static const char *
master_reload(struct master *m, cJSON *reply)
{
	static char failed[600];
	struct reload_notes rn = { NULL, NULL };
	struct cluster *old;
	struct conf next;
	char err[512];
	int i, how, level, grace;

	(void)sd_notify(0, "RELOADING=1");
	if (reply != NULL)
		rn.restart = cJSON_CreateArray();
	if (reload_parse(m, &next, &rn, err, sizeof(err)) == -1) {
		cJSON_Delete(rn.restart);
		(void)snprintf(failed, sizeof(failed), "reload failed, "
		    "keeping the running configuration: %s", err);
		log_warnx("%s", failed);
		(void)sd_notify(0, "READY=1");
		return failed;
	}
	how = conf_compare(m->conf, &next, NULL, NULL);
	/* A worker replaced now stops by the shutdown_timeout it runs
	 * with, the old one: the larger of the two bounds it. */
	grace = m->conf->shutdown_timeout > next.shutdown_timeout ?
	    m->conf->shutdown_timeout : next.shutdown_timeout;
	if (!cluster_conf_same(m->conf, &next)) {
		/* Workers started from now on use the new Redis; the
		 * running ones keep the old client until they are reaped. */
		old = m->cluster;
		m->cluster = cluster_open(&next);
		cluster_check_server(m->cluster);
		master_cluster_put(m, old);
	}
	*m->conf = next;
	level = master_log_level(m);
	log_setlevel(level);
	m->conf_gen = conf_share_publish(m->share, m->conf, level);
	m->reloading = 1;
	if (reply != NULL) {
		cJSON_AddNumberToObject(reply, "config_generation",
		    (double)m->conf_gen);
		cJSON_AddStringToObject(reply, "applied",
		    how == CONF_WORKERS ? "new workers" :
		    how == CONF_LIVE ? "in place" : "no value changed");
		if (rn.why != NULL)
			cJSON_AddStringToObject(reply, "new_workers_for",
			    rn.why);
		cJSON_AddItemToObject(reply, "restart_needed", rn.restart);
		/* How long old workers may take to stop (replaced ones
		 * stop by the timeout they run with). */
		cJSON_AddNumberToObject(reply, "shutdown_timeout",
		    how == CONF_WORKERS ? grace : next.shutdown_timeout);
	}
	if (how == CONF_WORKERS) {
		log_info("configuration reloaded from %s; %s changed, "
		    "replacing workers", m->conf_path, rn.why);
		for (i = 0; i < m->nslots; i++) {
			if (m->slots[i].pid != 0) {
				m->slots[i].replacing = 1;
				m->slots[i].kill_at = monotime_s() + grace + 2;
				(void)kill(m->slots[i].pid, SIGTERM);
			} else
				m->slots[i].next_start = 0;
		}
		return NULL;
	}
	log_info("configuration reloaded from %s; %s", m->conf_path,
	    how == CONF_LIVE ? "workers apply it in place" :
	    "no value changed");
	for (i = 0; i < m->nslots; i++)
		if (m->slots[i].pid != 0 && !m->slots[i].replacing)
			(void)kill(m->slots[i].pid, SIGHUP);
	return NULL;
}

/* Every slot runs a worker (not one stopping for a reload) that applied
 * the configuration generation now published. */
static int
master_reload_done(const struct master *m)
{
	int i;

	for (i = 0; i < m->nslots; i++)
		if (m->slots[i].pid == 0 || m->slots[i].replacing ||
		    __atomic_load_n(&m->stats[i].conf_gen,
		    __ATOMIC_ACQUIRE) < m->conf_gen)
			return 0;
	return 1;
}

/* Check the schema once at start; a database that is down is not fatal. */
static void
master_check_schema(const struct conf *conf)
{
	struct store *st;
	int version = -1, rc;

	if ((st = store_open(conf)) == NULL)
		fatalx("%s: out of memory", __func__);
	rc = store_schema_version(st, &version);
	if (rc == STORE_OK && version != STORE_SCHEMA_VERSION)
		fatalx("database %s has schema version %d, this chatd needs "
		    "%d: apply the migrations in %s/migrations (see "
		    "chatd(8))", conf->db_name, version, STORE_SCHEMA_VERSION,
		    DATADIR);
	if (rc != STORE_OK)
		log_warnx("cannot check the database schema now (%s); "
		    "starting anyway, logins answer errno 13 until the "
		    "database is reachable", store_error(st));
	else
		log_info("database %s: schema version %d", conf->db_name,
		    version);
	store_close(st);
}

/*
 * Fork every worker and wait (bounded) until each has said it is set up,
 * so READY=1 and the "ready" log line mean the service answers.
 */
static void
master_start_workers(struct master *m)
{
	struct pollfd pfd;
	int p[2], i, up = 0;
	char buf[64];
	ssize_t n;

	if (pipe2(p, O_CLOEXEC) == -1)
		fatal("pipe2");
	m->ready_fd = p[1];
	m->ready_rfd = p[0];
	for (i = 0; i < m->nslots; i++)
		master_spawn(m, i);
	(void)close(p[1]);
	m->ready_fd = -1;
	m->ready_rfd = -1;
	pfd.fd = p[0];
	pfd.events = POLLIN;
	while (up < m->nslots) {
		if (poll(&pfd, 1, 30000) <= 0)
			break;
		if ((n = read(p[0], buf, sizeof(buf))) <= 0)
			break;	/* every worker has written or exited */
		up += (int)n;
	}
	(void)close(p[0]);
	if (up < m->nslots)
		log_warnx("only %d of %d workers started", up, m->nslots);
}

/* --- control socket commands (chatctl) -------------------------------- */

static cJSON *
stats_json(const struct worker_stats *st, int slot)
{
	static const char *const names[] = { "ok", "auth", "online",
	    "name_taken", "not_logged_in", "bad_request", "no_user",
	    "no_group", "not_member", "exists", "too_large", "bad_json",
	    "rate_limited", "unavailable", "unknown_msgid", "framing",
	    "already_logged_in" };
	cJSON *o = cJSON_CreateObject(), *e;
	int i;

	cJSON_AddNumberToObject(o, "worker", slot);
	cJSON_AddNumberToObject(o, "pid", st->pid);
	cJSON_AddNumberToObject(o, "started", (double)st->started);
#define N(f) cJSON_AddNumberToObject(o, #f, (double)st->f)
	N(conns_open); N(online); N(accepted); N(closed);
	N(logins_ok); N(logins_failed); N(registrations);
	N(msgs_in); N(msgs_out); N(bytes_in); N(bytes_out);
	N(deliver_local); N(deliver_worker); N(deliver_host);
	N(offline_stored); N(offline_delivered); N(offline_waiting);
	N(presence_settled); N(presence_expired); N(presence_renewed);
	N(slow_consumers);
	N(limit_refusals); N(hash_waits); N(hash_wait_ms);
#undef N
	e = cJSON_AddObjectToObject(o, "errors");
	for (i = 1; i <= CERR_MAX; i++)
		cJSON_AddNumberToObject(e, names[i], (double)st->errors[i]);
	return o;
}

struct who_arg {
	cJSON *users;
	int worker;		/* -1: all */
};

static int
who_one(const struct presence_entry *e, void *arg)
{
	struct who_arg *wa = arg;
	cJSON *u;

	if (wa->worker >= 0 && e->slot != wa->worker)
		return 0;
	u = cJSON_CreateObject();
	cJSON_AddNumberToObject(u, "id", e->uid);
	cJSON_AddStringToObject(u, "name", e->name);
	cJSON_AddNumberToObject(u, "worker", e->slot);
	cJSON_AddNumberToObject(u, "since", (double)e->since);
	cJSON_AddItemToArray(wa->users, u);
	return 0;
}

static const char *
master_control(void *arg, const char *cmd, const cJSON *req, cJSON *reply,
    unsigned uid, int privileged)
{
	struct master *m = arg;
	const cJSON *v;
	int i;

	if (strcmp(cmd, "status") == 0 || strcmp(cmd, "stats") == 0) {
		cJSON *ws = cJSON_AddArrayToObject(reply, "workers");

		cJSON_AddStringToObject(reply, "node_id", m->conf->node_id);
		cJSON_AddStringToObject(reply, "chatd_version",
		    PACKAGE_VERSION);
		cJSON_AddNumberToObject(reply, "pid", getpid());
		cJSON_AddNumberToObject(reply, "uptime",
		    (double)(monotime_s() - m->started));
		cJSON_AddStringToObject(reply, "config", m->conf_path);
		cJSON_AddStringToObject(reply, "listen", m->conf->listen);
		cJSON_AddNumberToObject(reply, "online",
		    presence_count(m->presence));
		cJSON_AddNumberToObject(reply, "config_generation",
		    (double)m->conf_gen);
		cJSON_AddNumberToObject(reply, "config_generation_complete",
		    (double)m->conf_gen_done);
		for (i = 0; i < m->nslots; i++) {
			cJSON *w = stats_json(&m->stats[i], i);

			cJSON_AddBoolToObject(w, "running",
			    m->slots[i].pid != 0);
			cJSON_AddNumberToObject(w, "config_generation",
			    (double)__atomic_load_n(&m->stats[i].conf_gen,
			    __ATOMIC_ACQUIRE));
			cJSON_AddItemToArray(ws, w);
		}
		return NULL;
	}
	if (strcmp(cmd, "who") == 0) {
		struct who_arg wa;

		v = cJSON_GetObjectItem(req, "worker");
		wa.worker = cJSON_IsNumber(v) ? v->valueint : -1;
		if (wa.worker >= m->nslots)
			return "no such worker";
		wa.users = cJSON_AddArrayToObject(reply, "users");
		(void)presence_foreach(m->presence, who_one, &wa);
		return NULL;
	}
	/* The commands above only read (monitoring polls them, and
	 * chatctl reload: control_serve logs them at debug); those below
	 * change something, and the log says who asked. */
	if (!privileged)
		return "permission denied: run as root or as chatd's user";
	log_info("control: \"%s\" from uid %u", cmd, uid);
	if (strcmp(cmd, "kick") == 0) {
		struct presence_entry e;
		struct inbox_msg msg;

		v = cJSON_GetObjectItem(req, "id");
		if (!cJSON_IsNumber(v) || v->valuedouble < 1 ||
		    v->valuedouble > 4294967294.0)
			return "kick needs a user id";
		if (presence_lookup(m->presence, (uint32_t)v->valuedouble,
		    &e) != PRESENCE_OK)
			return "user is not online on this host";
		memset(&msg, 0, sizeof(msg));
		msg.type = INBOX_KICK;
		msg.id = e.uid;
		msg.token = e.token;
		if (inbox_send(m->inbox, e.slot, &msg) == -1)
			return "the worker's inbox is full; try again";
		(void)inbox_flush(m->inbox, e.slot);
		cJSON_AddNumberToObject(reply, "id", e.uid);
		cJSON_AddNumberToObject(reply, "worker", e.slot);
		log_info("control: kicking user %u (%s) on worker %u", e.uid,
		    e.name, e.slot);
		return NULL;
	}
	if (strcmp(cmd, "reload") == 0) {
		/* At once, so chatctl hears whether the file loaded; it
		 * then watches the workers' generations in status. */
		if (m->stopping)
			return "chatd is stopping";
		return master_reload(m, reply);
	}
	if (strcmp(cmd, "stop") == 0) {
		sig_term = 1;
		return NULL;
	}
	return "unknown command";
}

/*
 * Give up root once everything that needs it exists (the listening sockets
 * may be on a privileged port; the shared objects and the control socket
 * are created by root): they are handed to the configured user, then the
 * master switches to it for good, so no worker ever runs as root.
 */
static void
master_drop_privileges(struct master *m)
{
	const struct conf *c = m->conf;
	struct passwd *pw;
	struct group *gr;
	char path[CONF_STR_MAX + 32];
	uid_t uid;
	gid_t gid;

	if (geteuid() != 0) {
		if (c->user[0] != '\0')
			log_info("not root: ignoring user = %s", c->user);
		return;
	}
	if (c->user[0] == '\0') {
		log_warnx("running as root: set user (and group) in the "
		    "configuration so workers do not");
		return;
	}
	if ((pw = getpwnam(c->user)) == NULL)
		fatalx("user %s: no such user", c->user);
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (c->group[0] != '\0') {
		if ((gr = getgrnam(c->group)) == NULL)
			fatalx("group %s: no such group", c->group);
		gid = gr->gr_gid;
	}
	/* POSIX shm objects live in /dev/shm, owned by their creator. */
	(void)snprintf(path, sizeof(path), "/dev/shm%s", c->presence_shm);
	if (chown(path, uid, gid) == -1)
		fatal("chown %s", path);
	(void)snprintf(path, sizeof(path), "/dev/shm%s", m->lock_name);
	if (chown(path, uid, gid) == -1)
		fatal("chown %s", path);
	(void)snprintf(path, sizeof(path), "/dev/shm%s", m->hash_name);
	if (chown(path, uid, gid) == -1)
		fatal("chown %s", path);
	if (c->control_socket[0] != '\0' && chown(c->control_socket, uid,
	    gid) == -1)
		fatal("chown %s", c->control_socket);
	if (setgroups(1, &gid) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1)
		fatal("dropping privileges to %s", c->user);
	if (setuid(0) != -1)
		fatalx("could still regain root after dropping privileges");
	log_info("running as %s (uid %ld, gid %ld)", c->user, (long)uid,
	    (long)gid);
}

/*
 * Refuse to run beside another chatd with the same presence_shm: it would
 * replace that instance's table and, through SO_REUSEPORT, share its
 * port.  The lock is an flock on a small shm object next to the table.
 */
static void
master_lock_instance(struct master *m)
{
	(void)snprintf(m->lock_name, sizeof(m->lock_name), "%s.lock",
	    m->conf->presence_shm);
	m->lock_fd = shm_open(m->lock_name, O_RDWR | O_CREAT | O_CLOEXEC,
	    0600);
	if (m->lock_fd == -1)
		fatal("shm_open %s", m->lock_name);
	if (flock(m->lock_fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK)
			fatalx("another chatd is running with presence_shm "
			    "%s; give each instance its own presence_shm",
			    m->conf->presence_shm);
		fatal("flock %s", m->lock_name);
	}
}

int
master_main(struct conf *conf, const char *conf_path, int debug)
{
	struct master m;
	struct sigaction sa;
	struct itimerval it;
	sigset_t block, empty;
	char err[512];
	time_t stop_deadline = 0;
	int i;

	memset(&m, 0, sizeof(m));
	m.ready_fd = -1;
	m.ready_rfd = -1;
	m.debug = debug;
	m.conf = conf;
	m.conf_path = conf_path;
	m.nslots = conf->workers;
	log_setproc("master");

	if (mysql_library_init(0, NULL, NULL) != 0)
		fatalx("mysql_library_init failed");
	master_lock_instance(&m);
	/* Only now: another instance's slot file is not ours to reuse. */
	hashslot_name(conf, m.hash_name, sizeof(m.hash_name));
	if (hashslot_create(m.hash_name, err, sizeof(err)) == -1)
		fatalx("hash_concurrency slots: %s", err);
	master_check_schema(conf);
	if ((m.cluster = cluster_open(conf)) != NULL) {
		long n;

		cluster_check_server(m.cluster);
		n = cluster_release_node(m.cluster);

		if (n > 0)
			log_info("released %ld cluster claim(s) of node %s left "
			    "by an earlier run", n, conf->node_id);
		else if (n < 0)
			log_warnx("redis unreachable at start; logins answer "
			    "errno 13 until it is");
	}
	if ((m.slots = calloc((size_t)m.nslots, sizeof(*m.slots))) == NULL)
		fatalx("out of memory");
	for (i = 0; i < m.nslots; i++)
		if ((m.slots[i].fd = master_listen(conf->listen, err,
		    sizeof(err))) == -1)
			fatalx("%s", err);
	if ((m.presence = presence_create(conf->presence_shm,
	    (uint32_t)conf->presence_capacity, err, sizeof(err))) == NULL)
		fatalx("presence table %s: %s", conf->presence_shm, err);
	m.stats = mmap(NULL, (size_t)m.nslots * sizeof(*m.stats),
	    PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m.stats == MAP_FAILED)
		fatal("mmap worker counters");
	if ((m.share = conf_share_create(conf, master_log_level(&m))) == NULL)
		fatal("mmap the configuration for workers");
	m.conf_gen = m.conf_gen_done = 1;
	m.started = monotime_s();
	m.inbox_payload = (size_t)conf->max_frame + 512;
	if ((m.inbox = inbox_create(m.nslots, m.inbox_payload, err,
	    sizeof(err))) == NULL)
		fatalx("worker inboxes: %s", err);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = master_sighandler;
	(void)sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGCHLD, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGHUP, &sa, NULL);
	(void)sigaction(SIGALRM, &sa, NULL);
	(void)sigaction(SIGUSR1, &sa, NULL);
	(void)signal(SIGPIPE, SIG_IGN);
	(void)sigemptyset(&block);
	(void)sigaddset(&block, SIGCHLD);
	(void)sigaddset(&block, SIGTERM);
	(void)sigaddset(&block, SIGINT);
	(void)sigaddset(&block, SIGHUP);
	(void)sigaddset(&block, SIGALRM);
	(void)sigaddset(&block, SIGUSR1);
	(void)sigprocmask(SIG_BLOCK, &block, NULL);
	(void)sigemptyset(&empty);

	memset(&it, 0, sizeof(it));
	it.it_interval.tv_sec = 1;
	it.it_value.tv_sec = 1;
	(void)setitimer(ITIMER_REAL, &it, NULL);

	if ((m.control = control_open(conf, err, sizeof(err))) == NULL &&
	    err[0] != '\0')
		fatalx("%s", err);
	master_drop_privileges(&m);
	master_start_workers(&m);
	log_info("ready: %d workers on %s, node %s", m.nslots, conf->listen,
	    conf->node_id);
	(void)sd_notify(0, "READY=1");

	for (;;) {
		/* Signal handlers run only inside ppoll. */
		if (m.control != NULL) {
			struct pollfd pfd = { control_fd(m.control), POLLIN, 0 };

			if (ppoll(&pfd, 1, NULL, &empty) == 1 &&
			    (pfd.revents & POLLIN))
				control_serve(m.control, master_control, &m);
		} else
			(void)sigsuspend(&empty);
		if (sig_chld) {
			sig_chld = 0;
			master_reap(&m);
		}
		if (sig_term && !m.stopping) {
			sig_term = 0;
			m.stopping = 1;
			stop_deadline = monotime_s() +
			    conf->shutdown_timeout + 2;
			log_info("stopping");
			(void)sd_notify(0, "STOPPING=1");
			for (i = 0; i < m.nslots; i++)
				if (m.slots[i].pid != 0)
					(void)kill(m.slots[i].pid, SIGTERM);
		}
		if (sig_hup) {
			sig_hup = 0;
			if (!m.stopping)
				(void)master_reload(&m, NULL);
		}
		if (sig_alrm) {
			sig_alrm = 0;
			(void)sd_notify(0, "WATCHDOG=1");
			if (!m.stopping)
				master_sweep(&m);
		}
		if (m.stopping) {
			if (master_alive(&m) == 0)
				break;
			if (monotime_s() >= stop_deadline) {
				log_warnx("workers did not stop in time "
				    "(shutdown_timeout); killing them");
				for (i = 0; i < m.nslots; i++)
					if (m.slots[i].pid != 0)
						(void)kill(m.slots[i].pid,
						    SIGKILL);
				stop_deadline = monotime_s() + 5;
			}
			continue;
		}
		master_kill_late(&m);
		master_respawn_due(&m);
		if (m.reloading && master_reload_done(&m)) {
			m.reloading = 0;
			m.conf_gen_done = m.conf_gen;
			log_info("reload complete: %d workers", m.nslots);
			(void)sd_notify(0, "READY=1");
		}
	}
	for (i = 0; i < m.nslots; i++)
		(void)close(m.slots[i].fd);
	presence_close(m.presence);
	conf_share_destroy(m.share);
	(void)presence_unlink(conf->presence_shm);
	hashslot_unlink(m.hash_name);
	(void)shm_unlink(m.lock_name);
	(void)close(m.lock_fd);
	control_close(m.control);
	inbox_destroy(m.inbox);
	master_close_clusters(&m);
	free(m.slots);
	mysql_library_end();
	log_info("stopped");
	return 0;
}
