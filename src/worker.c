/*
 * worker.c - a worker process: one epoll loop over the listening socket of
 * its slot, its clients, its inbox, its job completions, a signalfd and a
 * one-second timer.
 *
 * Each iteration handles a batch of events, then writes every connection's
 * queued output once (so pipelined requests are answered with one write),
 * then frees the connections closed during the batch.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <netinet/in.h>

#include <malloc.h>

#include <sodium.h>

#include "bus.h"
#include "conn.h"
#include "deliver.h"
#include "handler.h"
#include "inbox.h"
#include "job.h"
#include "log.h"
#include "monotime.h"
#include "presence.h"
#include "spool.h"
#include "worker.h"

/* epoll tags for the worker's own descriptors (never valid pointers). */
enum {
	TAG_LISTEN = 1,
	TAG_SIGNAL,
	TAG_TIMER,
	TAG_JOBS,
	TAG_INBOX,
	TAG_BUS,		/* + BUS_SUB / BUS_PUB */
	TAG_BUS_END = TAG_BUS + 2,
	TAG_PEER,		/* peer_epfd has events */
};

#define WORKER_EVENTS 256
#define WORKER_PEER_EVENTS 64
#define WORKER_INBOX_CAP_FACTOR 64	/* x max_output */
#define WORKER_INBOX_BUSY_MIN (1024 * 1024)
#define WORKER_FBUF_KEEP 65536	/* frame scratch kept between ticks */
#define WORKER_ACCEPTS_PER_EVENT 64
#define WORKER_GROUP_CACHE 10000	/* groups cached per worker */

/* A 32-bit key for a peer address (IPv4 as is, IPv6 hashed), never 0. */
static uint32_t
worker_addr_key(const struct sockaddr_storage *ss)
{
	const unsigned char *p;
	uint32_t h = 2166136261U;
	size_t i;

	if (ss->ss_family == AF_INET) {
		h = ((const struct sockaddr_in *)ss)->sin_addr.s_addr;
		return h != 0 ? h : 1;
	}
	if (ss->ss_family != AF_INET6)
		return 0;
	p = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
	for (i = 0; i < 16; i++)
		h = (h ^ p[i]) * 16777619U;
	return h != 0 ? h : 1;
}

uint64_t
worker_bus_tag(int id)
{
	return TAG_BUS + (uint64_t)id;
}

static struct conn_list *
worker_list_of(struct worker *w, struct conn *c)
{
	return c->state == CONN_ONLINE ? &w->live : &w->anon;
}

void
worker_list_add(struct worker *w, struct conn *c)
{
	struct conn_list *l = worker_list_of(w, c);

	c->prev = l->tail;
	c->next = NULL;
	if (l->tail != NULL)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
	l->n++;
	c->in_list = 1;
}

void
worker_list_del(struct worker *w, struct conn *c)
{
	struct conn_list *l = worker_list_of(w, c);

	if (!c->in_list)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		l->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	else
		l->tail = c->prev;
	c->prev = c->next = NULL;
	l->n--;
	c->in_list = 0;
}

void
worker_touch(struct worker *w, struct conn *c)
{
	/* auth_timeout counts from connect: input before login (a PING,
	 * say) does not extend it. */
	if (c->state != CONN_ONLINE)
		return;
	c->last_active = w->now;
	if (c->in_list && worker_list_of(w, c)->tail != c) {
		worker_list_del(w, c);
		worker_list_add(w, c);
	}
}

void
worker_mark_dirty(struct worker *w, struct conn *c)
{
	if (c->dirty)
		return;
	c->dirty = 1;
	c->dirty_next = w->dirty;
	w->dirty = c;
}

int
worker_submit(struct worker *w, struct job *j)
{
	return worker_submit_keyed(w, j, 0);
}

int
worker_submit_keyed(struct worker *w, struct job *j, uint32_t key)
{
	unsigned long n;

	if (w->jobs == NULL)
		return -1;	/* stopping: the threads are gone */
	if (jobq_submit_keyed(w->jobs, j, key) == 0)
		return 0;
	/* A burst is refused thousands of times. */
	if ((n = log_every(&w->jobq_full)) > 0)
		log_warnx("job queue full (job_queue_max = %d): %lu job(s) "
		    "refused or put off since the last report",
		    w->conf->job_queue_max, n);
	return -1;
}

void
worker_submit_later(struct worker *w, struct job *j)
{
	if (w->later_head == NULL && worker_submit(w, j) == 0)
		return;
	j->next = NULL;
	*w->later_tail = j;
	w->later_tail = &j->next;
}

/* The kept jobs, in order, while the queue takes them; at exit (the
 * loop has ended) all of them, whatever waits. */
static void
worker_later_submit(struct worker *w, int anyway)
{
	struct job *j;

	while ((j = w->later_head) != NULL) {
		w->later_head = j->next;	/* the queue's link once in it */
		if (anyway)
			jobq_submit_anyway(w->jobs, j);
		else if (worker_submit(w, j) == -1) {
			w->later_head = j;
			return;
		}
	}
	w->later_tail = &w->later_head;
}

/*
 * The spool's key: which database its messages are for (FNV-1a of the
 * [database] server and name), so that chatd instances sharing a
 * spool_dir take over only each other's files for the same database.
 */
static const char *
spool_key(const struct conf *conf, char *buf, size_t len)
{
	const char *parts[] = { conf->db_host, conf->db_socket,
	    conf->db_name };
	uint64_t h = 14695981039346656037ull;
	const unsigned char *p;
	size_t i;
	int port = conf->db_port;

	for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		for (p = (const unsigned char *)parts[i]; ; p++) {
			h = (h ^ *p) * 1099511628211ull;
			if (*p == '\0')
				break;
		}
	for (i = 0; i < sizeof(port); i++)
		h = (h ^ ((unsigned)port >> (8 * i) & 0xff)) * 1099511628211ull;
	(void)snprintf(buf, len, "%016llx", (unsigned long long)h);
	return buf;
}

static void
worker_epoll_add(int epfd, int fd, uint64_t tag, uint32_t events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.u64 = tag;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == -1)
		fatal("%s: epoll_ctl", __func__);
}

static void
worker_accept(struct worker *w)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	uint32_t addr;
	int i, fd, one = 1;

	for (i = 0; i < WORKER_ACCEPTS_PER_EVENT; i++) {
		sslen = sizeof(ss);
		fd = accept4(w->listen_fd, (struct sockaddr *)&ss, &sslen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE)
				log_warn("accept (raise LimitNOFILE, or lower "
				    "max_connections)");
			else if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("accept");
			return;
		}
		if (w->nconns >= (size_t)w->conf->max_connections) {
			log_warnx("max_connections (%d) reached, refusing a "
			    "connection", w->conf->max_connections);
			(void)close(fd);
			continue;
		}
		addr = worker_addr_key(&ss);
		if (limit_conn_open(w, addr) == -1) {
			log_debug("max_conns_per_addr (%d) reached for a source "
			    "address, refusing a connection",
			    w->conf->max_conns_per_addr);
			(void)close(fd);
			continue;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		if (conn_new(w, fd, addr) != NULL)
			w->stats->accepted++;
		else
			limit_conn_close(w, addr);
	}
}

static void
worker_inbox_one(void *arg, const struct inbox_msg *m)
{
	deliver_inbox(arg, m);
}

/* Close connections idle past auth_timeout / idle_timeout. */
static void
worker_timeouts(struct worker *w)
{
	struct conn *c, *next;

	/* The list is in connect order; a connection whose own LOGIN or
	 * REG is being served waits on us, not the client: skip it. */
	for (c = w->anon.head; c != NULL &&
	    w->now - c->last_active >= w->conf->auth_timeout; c = next) {
		next = c->next;
		if (c->state == CONN_LOGGING_IN || c->pending_jobs > 0)
			continue;
		conn_close(w, c, "auth_timeout");
	}
	if (w->conf->idle_timeout == 0)
		return;
	while ((c = w->live.head) != NULL &&
	    w->now - c->last_active >= w->conf->idle_timeout)
		conn_close(w, c, "idle_timeout");
}

/*
 * After many connections have gone (a storm, a mass timeout), give the
 * heap's free memory back to the kernel: glibc keeps it otherwise, and
 * an idle worker should cost what its connections cost.
 */
static void
worker_trim(struct worker *w)
{
	if (w->nconns_peak < 1024 || w->nconns > w->nconns_peak / 2)
		return;
	(void)malloc_trim(0);
	w->nconns_peak = w->nconns;
}

/*
 * End of an iteration: hand what was batched to the other workers, then
 * write the clients' output.  Writing can close connections, whose
 * logout notices may batch more: loop until both are empty.
 */
static void
worker_flush(struct worker *w)
{
	struct conn *c;

	for (;;) {
		deliver_flush(w);
		if (w->dirty == NULL)
			break;
		while ((c = w->dirty) != NULL) {
			w->dirty = c->dirty_next;
			c->dirty = 0;
			conn_flush(w, c);
		}
	}
}

/*
 * Graceful stop: no new clients and no more requests read.  What was
 * queued for a client is still written: a connection closes once its
 * output is (conn_close_after_flush), and takes what is delivered to it
 * meanwhile in order behind it.  worker_stop_rest closes the others.
 * A connection still logging in closes now.
 */
static void
worker_stop(struct worker *w)
{
	struct conn *c, *next;
	int pass;

	if (w->stopping)
		return;
	w->stopping = 1;
	log_info("stopping: closing %zu connection(s)", w->nconns);
	if (w->listen_fd != -1) {
		(void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->listen_fd, NULL);
		(void)close(w->listen_fd);
		w->listen_fd = -1;
	}
	for (pass = 0; pass < 2; pass++)
		for (c = pass ? w->anon.head : w->live.head; c != NULL;
		    c = next) {
			next = c->next;
			if (conn_outq(c) == 0 ||
			    c->state == CONN_LOGGING_IN)
				conn_close(w, c, "server stopping");
			else
				conn_close_after_flush(w, c);
		}
}

/*
 * The stopping worker's time to write queued output is over: what the
 * clients did not read is stored offline (chats only), and the
 * connections close.
 */
static void
worker_stop_rest(struct worker *w)
{
	struct conn *c;
	size_t n = w->nconns;

	if (n == 0)
		return;
	/* deliver_rescue stores for a logged-in user only. */
	while ((c = w->live.head != NULL ? w->live.head : w->anon.head) !=
	    NULL) {
		deliver_rescue(w, c);
		conn_close(w, c, "server stopping: output not read in time");
	}
	log_info("stopping: closed %zu connection(s) whose output was not "
	    "read within shutdown_timeout / 2", n);
}

/* A stopping worker is done: no client left, no job running, no reply
 * from Redis awaited (claim releases, PUBLISHes of logout notices). */
static int
worker_stopped(const struct worker *w)
{
	return w->nconns == 0 && jobq_pending(w->jobs) == 0 &&
	    w->later_head == NULL && !bus_busy(w->bus) &&
	    !deliver_retry_pending(w);
}

/*
 * Take the live keys of the configuration the master published (a
 * reload in place, SIGHUP), and say which generation this worker runs.
 * Also once at start: a SIGHUP sent before the signalfd existed is lost,
 * but not the generation it announced.
 */
static void
worker_reload(struct worker *w, int logit)
{
	struct conf next;
	uint64_t gen;
	int level, n;

	if ((gen = conf_share_read(w->share, &next, &level)) == 0) {
		log_warnx("reload: no consistent configuration to read; "
		    "keeping the running one");
		return;
	}
	n = conf_copy_keys(w->conf_rw, &next, CONF_LIVE);
	log_setlevel(level);
	w->lim.max_message = (size_t)w->conf->max_message;
	__atomic_store_n(&w->stats->conf_gen, gen, __ATOMIC_RELEASE);
	/* The master reports the reload complete when every worker runs
	 * this generation; wake it now rather than at its next tick.  Not
	 * if it died: the parent is then someone else. */
	if (getppid() == w->master)
		(void)kill(w->master, SIGUSR1);
	if (logit)
		log_info("configuration generation %llu applied in place "
		    "(%d key(s) changed)", (unsigned long long)gen, n);
}

static void
worker_signal(struct worker *w)
{
	struct signalfd_siginfo si;

	while (read(w->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGTERM)
			worker_stop(w);
		else if (si.ssi_signo == SIGHUP)
			worker_reload(w, 1);
	}
}

static void
worker_init(struct worker *w, struct conf *conf,
    const struct conf_share *share, int slot, int nslots, int listen_fd,
    struct presence *presence, struct inbox *inbox)
{
	struct itimerspec its;
	sigset_t set;
	char err[256], key[24];
	size_t busy_at;

	memset(w, 0, sizeof(*w));
	w->conf = w->conf_rw = conf;
	w->share = share;
	w->slot = slot;
	w->nslots = nslots;
	w->listen_fd = listen_fd;
	w->presence = presence;
	w->now = time(NULL);
	w->lim.max_message = (size_t)conf->max_message;
	umap_init(&w->online);
	umap_init(&w->settling);
	umap_init(&w->gloads);
	w->retry_tail = &w->retry_head;
	w->later_tail = &w->later_head;
	w->offdel_tail = &w->offdel_head;
	if ((w->owed = calloc((size_t)nslots, sizeof(*w->owed))) == NULL)
		fatalx("%s: out of memory", __func__);
	limits_init(&w->limits);
	groupcache_init(&w->groups, WORKER_GROUP_CACHE);
	/* Big enough for one inbox datagram, i.e. one frame plus header. */
	w->rbuf_size = (size_t)conf->max_frame + 4096;
	if (w->rbuf_size < 65536)
		w->rbuf_size = 65536;
	if ((w->rbuf = malloc(w->rbuf_size)) == NULL)
		fatalx("%s: out of memory", __func__);

	/* SIGINT (Ctrl-C reaches the whole group) is the master's
	 * business; from the master, SIGTERM means stop and SIGHUP a
	 * reload in place.  SIGHUP stays ignored outside the signalfd
	 * (blocked, it is still queued for it). */
	(void)signal(SIGINT, SIG_IGN);
	(void)signal(SIGHUP, SIG_IGN);
	(void)signal(SIGPIPE, SIG_IGN);
	(void)sigemptyset(&set);
	(void)sigaddset(&set, SIGTERM);
	(void)sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
		fatal("sigprocmask");
	if ((w->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		fatal("signalfd");
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1)
		fatal("prctl");
	if ((w->master = getppid()) == 1)
		fatalx("master died during start");

	if (sodium_init() < 0)
		fatalx("sodium_init failed");
	/*
	 * Towards each other worker: reading clients stops while more than
	 * a quarter of max_output, and at least 1 MiB, waits (inbox_congested;
	 * the floor gives fewer, longer turns of admitting senders, which is
	 * fairer to them under a sustained fan-out).  That bounds a queue by
	 * what one frame fans out to; the hard cap is only reached towards a
	 * worker that stopped reading.
	 */
	busy_at = (size_t)conf->max_output / 4;
	if (busy_at < WORKER_INBOX_BUSY_MIN)
		busy_at = WORKER_INBOX_BUSY_MIN;
	if ((w->inbox = inbox_attach(inbox, slot, (size_t)conf->max_output *
	    WORKER_INBOX_CAP_FACTOR, busy_at)) == NULL)
		fatalx("inbox: out of memory");
	if ((w->jobs = jobq_create(conf, conf->job_threads,
	    conf->job_queue_max, err, sizeof(err))) == NULL)
		fatalx("job threads: %s", err);
	/* What stopped workers left there is taken at the first tick. */
	if (conf->spool_dir[0] != '\0')
		w->spool = spool_open(conf->spool_dir, spool_key(conf, key,
		    sizeof(key)));
	if ((w->timer_fd = timerfd_create(CLOCK_MONOTONIC,
	    TFD_NONBLOCK | TFD_CLOEXEC)) == -1)
		fatal("timerfd_create");
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = 1;
	its.it_interval.tv_sec = 1;
	if (timerfd_settime(w->timer_fd, 0, &its, NULL) == -1)
		fatal("timerfd_settime");
	if ((w->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    (w->peer_epfd = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    (w->cong_epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		fatal("epoll_create1");
	worker_epoll_add(w->epfd, listen_fd, TAG_LISTEN, EPOLLIN);
	worker_epoll_add(w->epfd, w->peer_epfd, TAG_PEER, EPOLLIN);
	worker_epoll_add(w->cong_epfd, w->peer_epfd, TAG_PEER, EPOLLIN);
	worker_epoll_add(w->peer_epfd, w->sig_fd, TAG_SIGNAL, EPOLLIN);
	worker_epoll_add(w->peer_epfd, w->timer_fd, TAG_TIMER, EPOLLIN);
	/* Job completions are new work like client input (a group
	 * load's fan-out): not taken while other workers are behind. */
	worker_epoll_add(w->epfd, jobq_fd(w->jobs), TAG_JOBS, EPOLLIN);
	/*
	 * Never read: edge-triggered, each wakeup is one event.  In the
	 * main set itself, not behind peer_epfd, so that a wakeup by
	 * another worker costs one epoll_wait, not two; and in the
	 * congested set, where a congested worker waits.
	 */
	worker_epoll_add(w->epfd, inbox_wake_fd(w->inbox), TAG_INBOX,
	    EPOLLIN | EPOLLET);
	worker_epoll_add(w->cong_epfd, inbox_wake_fd(w->inbox), TAG_INBOX,
	    EPOLLIN | EPOLLET);
	if ((w->bus = bus_create(w)) != NULL)
		bus_tick(w);	/* connect now, not a second from now */
}

int
worker_busy(struct worker *w)
{
	/* When stopping, finish everything: the other workers may not
	 * read any more. */
	return !w->stopping && inbox_congested(w->inbox);
}

static void
worker_event(struct worker *w, struct epoll_event *ev)
{
	struct conn *c;
	uint64_t tag = ev->data.u64, n;

	switch (tag) {
	case TAG_LISTEN:
		if (!w->stopping)
			worker_accept(w);
		return;
	case TAG_SIGNAL:
		worker_signal(w);
		return;
	case TAG_TIMER:
		(void)!read(w->timer_fd, &n, sizeof(n));
		worker_timeouts(w);
		limits_sweep(w);
		conn_obuf_tick(w);
		/* A long message (or seq) grew a scratch: do not keep it. */
		jbuf_trim(&w->fbuf, WORKER_FBUF_KEEP);
		jbuf_trim(&w->abuf, WORKER_FBUF_KEEP);
		bus_tick(w);
		worker_later_submit(w, 0);
		deliver_retry_tick(w);
		session_offdel_tick(w);
		deliver_news_tick(w);
		if (w->spool != NULL)
			(void)spool_sync(w->spool);
		return;
	case TAG_JOBS:
		/* Stop when other workers fall behind: a burst of group
		 * loads completing at once fans out to them. */
		(void)jobq_complete(w->jobs, w, worker_busy);
		return;
	case TAG_INBOX:
		return;		/* polled every iteration (worker_main) */
	case TAG_BUS + BUS_SUB:
	case TAG_BUS + BUS_PUB:
		bus_event(w, (int)(tag - TAG_BUS), ev->events);
		return;
	case TAG_PEER:
		return;		/* served before the batch (worker_main) */
	default:
		break;
	}
	c = ev->data.ptr;
	if (c->state == CONN_CLOSED)
		return;
	if (ev->events & (EPOLLERR | EPOLLHUP)) {
		conn_close(w, c, "connection reset");
		return;
	}
	if (ev->events & EPOLLOUT)
		conn_flush(w, c);
	if (ev->events & (EPOLLIN | EPOLLRDHUP))
		conn_readable(w, c);
}

void
worker_main(struct conf *conf, const struct conf_share *share, int slot,
    int nslots, int listen_fd, struct presence *presence,
    struct inbox *inbox, struct worker_stats *stats, int ready_fd)
{
	struct epoll_event evs[WORKER_EVENTS], pevs[WORKER_PEER_EVENTS];
	struct worker w;
	uint64_t stop_ms = 0, now_ms, flush_ms, limit_ms;
	char name[32];
	int i, n, m, congested, timeout;

	(void)snprintf(name, sizeof(name), "worker %d", slot);
	log_setproc(name);
	worker_init(&w, conf, share, slot, nslots, listen_fd, presence,
	    inbox);
	w.stats = stats;
	w.stats->pid = (int32_t)getpid();
	w.stats->started = (int64_t)w.now;
	w.stats->conns_open = w.stats->online = 0;
	w.stats->offline_waiting = 0;
	/* The master cleared what a dead worker left. */
	for (i = 0; i < WORKER_ENDING_MAX; i++)
		w.ending_free[w.ending_nfree++] =
		    (uint16_t)(WORKER_ENDING_MAX - 1 - i);
	worker_reload(&w, 0);
	log_info("started, listening");
	if (ready_fd != -1) {
		(void)!write(ready_fd, "", 1);
		(void)close(ready_fd);
	}
	for (;;) {
		/*
		 * What other workers sent (their rings, read after every
		 * wait) and peer events (Redis, signals, the timer) first:
		 * a group change announced before a client's request must be
		 * seen by it.  While the queues to other workers are
		 * congested, wait for the inbox and peer events alone
		 * (cong_epfd): clients and job completions are not taken
		 * until the other workers have taken what they were sent.
		 */
		congested = worker_busy(&w);
		if (!congested && w.nstalled > 0) {
			conn_resume_stalled(&w);
			congested = worker_busy(&w);
		}
		timeout = congested ? 10 : w.stopping ? 100 :
		    w.nstalled > 0 ? 0 : -1;
		/* Other workers write our eventfd only while we sleep. */
		if (timeout != 0 && !inbox_sleep(w.inbox))
			timeout = 0;
		n = epoll_wait(congested ? w.cong_epfd : w.epfd, evs,
		    WORKER_EVENTS, timeout);
		if (timeout != 0)
			inbox_woke(w.inbox);
		if (n == -1 && errno != EINTR)
			fatal("epoll_wait");
		w.now = time(NULL);
		(void)inbox_poll(w.inbox, worker_inbox_one, &w);
		for (i = 0; i < n; i++)
			if (evs[i].data.u64 == TAG_PEER)
				break;
		if (i < n) {
			m = epoll_wait(w.peer_epfd, pevs, WORKER_PEER_EVENTS,
			    0);
			for (i = 0; i < m; i++)
				worker_event(&w, &pevs[i]);
		}
		for (i = 0; i < n; i++)
			worker_event(&w, &evs[i]);
		worker_flush(&w);
		conn_reap(&w);
		worker_trim(&w);
		if (!w.stopping)
			continue;
		/* Half of shutdown_timeout for the clients to read what
		 * was queued for them, the rest for the sessions to end. */
		now_ms = monotime_ms();
		if (stop_ms == 0)
			stop_ms = now_ms;
		limit_ms = (uint64_t)conf->shutdown_timeout * 1000;
		flush_ms = limit_ms / 2;
		if (now_ms - stop_ms >= flush_ms)
			worker_stop_rest(&w);
		if (worker_stopped(&w) || now_ms - stop_ms >= limit_ms)
			break;
	}
	if (!worker_stopped(&w))
		log_warnx("stopping with %zu job(s) unfinished and %s "
		    "(shutdown_timeout = %d s)", jobq_pending(w.jobs),
		    bus_busy(w.bus) ? "Redis commands unanswered" :
		    "no Redis command unanswered", conf->shutdown_timeout);
	worker_stop_rest(&w);
	conn_resume_stalled(&w);	/* drops their references */
	/* The bus first: its callbacks still submit jobs (a logout's
	 * notices once its release failed, a fan-out's stores). */
	bus_destroy(w.bus);
	w.bus = NULL;
	worker_later_submit(&w, 1);
	jobq_destroy(w.jobs, &w);
	w.jobs = NULL;
	deliver_retry_drop(&w);
	session_offdel_drop(&w);
	worker_flush(&w);
	conn_reap(&w);
	for (i = 0; i < w.nslots; i++) {
		if (w.owed[i].live > 0)
			log_warnx("stopping with %zu group change(s) or "
			    "pull(s) worker %d was not told of", w.owed[i].live,
			    i);
		umap_free(&w.owed[i]);
	}
	free(w.owed);
	groupcache_free(&w.groups);
	limits_free(&w.limits);
	umap_free(&w.online);
	umap_free(&w.settling);
	umap_free(&w.gloads);
	free(w.stalled);
	free(w.rbuf);
	jbuf_free(&w.fbuf);
	jbuf_free(&w.abuf);
	conn_obuf_free(&w);
	inbox_detach(w.inbox);
	log_info("stopped");
	exit(0);
}
