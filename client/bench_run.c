/*
 * bench_run.c - one chat-bench worker process: a few threads, each with
 * its own epoll loop over a contiguous slice of the run's users, so no
 * lock or shared counter sits on the message path.
 *
 * The users of a thread talk only to each other: in chat mode user 2k and
 * 2k+1 are partners, in group mode each block of G users is one group.  So
 * a receiver can hand the credit for a message straight back to its
 * sender, and the in-flight window is end to end (sent, not yet seen by
 * the receiver) without asking the server for ACKs.  Users alternate over
 * the targets by index, which puts partners on different hosts whenever
 * there are several.
 *
 * Each chat frame is built once per sender by the client library
 * (chatc_build_one_chat / chatc_build_group_chat) and only its stamp is
 * rewritten per send: "@B" + run id + CLOCK_MONOTONIC nanoseconds +
 * ":" + sender index, in hex, inside "msg".  The receiver finds the stamp
 * in the forwarded frame without parsing the JSON; every other line goes
 * through chatc_parse_line().  Lines are split with chatc_reader.
 *
 * A thread's life: SETUP (connect and log in its users, at most
 * `concurrency` requests in flight; groups created or found and joined),
 * WAIT (report ready, wait for the parent's start time), RUN, DRAIN (stop
 * sending, wait for what is in flight), DONE.  The storm modes (register,
 * login) have no setup: their RUN is the storm.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bench.h"
#include "chatc.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define RUN_EVENTS		512	/* epoll events per wait */
#define RUN_READ_CHUNK		65536	/* bytes per read() */
#define RUN_READS_PER_EVENT	8	/* then let other connections in */
#define RUN_MAX_LINE		(16 * 1024 * 1024)
#define RUN_TICK_NS		100000000LL	/* timeouts checked this often */
#define RUN_MIN_WAIT_NS		50000LL	/* fixed rate: shortest sleep */
#define RUN_GROUP_DESC		"chat-bench group"
#define RUN_RETRY_NS		200000000LL	/* LOGIN again after errno 2 */

enum cstate {
	CS_NONE,		/* not started / between storm operations */
	CS_CONNECT,		/* connect() in progress */
	CS_REG,			/* REG sent */
	CS_LOGIN,		/* LOGIN sent */
	CS_GLIST,		/* creator: GROUP_LIST sent */
	CS_GCREATE,		/* creator: CREATE_GROUP sent */
	CS_GWAIT,		/* member: waiting for the group's id */
	CS_GJOIN,		/* member: ADD_GROUP sent */
	CS_READY,		/* logged in (and in its group) */
	CS_CLOSED,		/* closed by the server during the run */
};

enum phase { P_SETUP, P_WAIT, P_RUN, P_DRAIN, P_DONE };

struct bconn {
	int fd;
	uint8_t state;
	uint8_t target;
	unsigned dirty:1, want_out:1, creator:1;
	uint32_t local;		/* index in the thread's conns */
	uint32_t group;		/* group mode: the thread's group number */
	uint32_t uid;		/* id on the server */
	long idx;		/* user index: name is prefix + idx */
	int64_t t_op;		/* start of the request in flight */
	int64_t owed;		/* copies sent and not yet received */
	int64_t next_ping;
	int64_t retry_at;	/* setup: LOGIN again at this time */
	struct chatc_reader rd;
	char *out;
	uint32_t out_off, out_len, out_cap;
	struct bconn *dirty_next;
	char *tmpl;		/* the chat frame, stamp at stamp_off */
	uint32_t tmpl_len, stamp_off;
};

struct bgroup {
	uint32_t first, n;	/* members: conns[first..first+n) */
	uint32_t gid;		/* 0 until known */
};

struct bproc;

struct bthread {
	struct bproc *p;
	const struct bench_opts *o;
	int index;
	pthread_t tid;
	int ep;
	long first, n;		/* users first..first+n-1 of the run */
	struct bconn *conns;
	uint32_t nconns;
	struct bgroup *groups;
	uint32_t ngroups;
	uint32_t fanout;	/* copies per message */
	long next_user;		/* storm: next index to take */
	uint32_t next_start;	/* setup: next conn to start */
	uint32_t active;	/* requests in flight (setup/storm) */
	uint32_t ready;		/* conns in CS_READY */
	struct bconn *dirty;
	enum phase phase;
	int sending;		/* RUN and not yet stopped */
	int64_t setup_start, setup_deadline;
	int64_t start, m0, m1, end, drain_end;
	int64_t next_tick;
	int64_t owed;		/* sum of conns' owed */
	double rate;		/* fixed rate: my messages per second */
	uint64_t due_sent;	/* fixed rate: sends scheduled so far */
	uint32_t rr;		/* fixed rate: next sender to try */
	uint64_t max_sends;	/* count cap (0: none) */
	int64_t last_op;	/* storm: last completion */
	uint32_t *retry;	/* setup: conns to LOGIN again */
	size_t nretry, retry_cap;
	int64_t cpu0;		/* thread CPU at m0 */
	int ufd;		/* users file (register) */
	char *rbuf;
	struct bench_result r;
};

struct bproc {
	const struct bench_opts *o;
	int efd;		/* "start" broadcast, never read */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int nthreads, nready;
	_Atomic int64_t start_ns;
	_Atomic int abort;
};

static void	run_fail(struct bthread *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

static void
run_fail(struct bthread *t, const char *fmt, ...)
{
	va_list ap;

	if (t->r.failed)
		return;
	t->r.failed = 1;
	va_start(ap, fmt);
	(void)vsnprintf(t->r.err, sizeof(t->r.err), fmt, ap);
	va_end(ap);
}

static void
run_note_err(struct bthread *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Keep the first server error text for the report. */
static void
run_note_err(struct bthread *t, const char *fmt, ...)
{
	va_list ap;

	if (t->r.err[0] != '\0')
		return;
	va_start(ap, fmt);
	(void)vsnprintf(t->r.err, sizeof(t->r.err), fmt, ap);
	va_end(ap);
}

static int
run_ops_mode(const struct bench_opts *o)
{
	return o->mode == MODE_REGISTER || o->mode == MODE_LOGIN;
}

/* --- output -------------------------------------------------------- */

static void
run_mark_dirty(struct bthread *t, struct bconn *c)
{
	if (c->dirty)
		return;
	c->dirty = 1;
	c->dirty_next = t->dirty;
	t->dirty = c;
}

/* Room for n more bytes of output; 0 or -1 (out of memory). */
static int
run_reserve(struct bconn *c, size_t n)
{
	size_t need, cap;
	char *nb;

	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	need = (size_t)c->out_len + n;
	if (need <= c->out_cap)
		return 0;
	cap = c->out_cap ? c->out_cap : 1024;
	while (cap < need)
		cap *= 2;
	if (cap > UINT32_MAX || (nb = realloc(c->out, cap)) == NULL)
		return -1;
	c->out = nb;
	c->out_cap = (uint32_t)cap;
	return 0;
}

static int
run_queue(struct bthread *t, struct bconn *c, const char *data, size_t n)
{
	if (run_reserve(c, n) == -1)
		return -1;
	memcpy(c->out + c->out_len, data, n);
	c->out_len += (uint32_t)n;
	run_mark_dirty(t, c);
	return 0;
}

/* Send a request built by chatc_build_*(), with "seq" so it is answered. */
static int
run_request(struct bthread *t, struct bconn *c, cJSON *req, int64_t now)
{
	size_t len;
	char *line;
	int rc;

	if (req == NULL || cJSON_AddNumberToObject(req, "seq", 1) == NULL) {
		cJSON_Delete(req);
		return -1;
	}
	line = chatc_line(req, &len);
	cJSON_Delete(req);
	if (line == NULL)
		return -1;
	rc = run_queue(t, c, line, len);
	free(line);
	c->t_op = now;
	return rc;
}

static void
run_epoll(struct bthread *t, struct bconn *c, int op)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLRDHUP |
	    (c->want_out || c->state == CS_CONNECT ? EPOLLOUT : 0);
	ev.data.ptr = c;
	(void)epoll_ctl(t->ep, op, c->fd, &ev);
}

static void run_lost(struct bthread *, struct bconn *, const char *);

static void
run_flush(struct bthread *t, struct bconn *c)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		    MSG_NOSIGNAL);
		if (n > 0) {
			c->out_off += (uint32_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			if (!c->want_out) {
				c->want_out = 1;
				run_epoll(t, c, EPOLL_CTL_MOD);
			}
			return;
		}
		run_lost(t, c, n == -1 ? strerror(errno) : "send returned 0");
		return;
	}
	c->out_off = c->out_len = 0;
	if (c->want_out) {
		c->want_out = 0;
		run_epoll(t, c, EPOLL_CTL_MOD);
	}
}

static void
run_flush_dirty(struct bthread *t)
{
	struct bconn *c;

	while ((c = t->dirty) != NULL) {
		t->dirty = c->dirty_next;
		c->dirty = 0;
		if (c->fd != -1)
			run_flush(t, c);
	}
}

/* --- chat frames ----------------------------------------------------- */

static const char hexd[] = "0123456789abcdef";

static void
run_hex(char *p, uint64_t v, int digits)
{
	while (digits-- > 0) {
		p[digits] = hexd[v & 15];
		v >>= 4;
	}
}

static int
run_unhex(const char *p, int digits, uint64_t *v)
{
	uint64_t x = 0;
	int i, d;

	for (i = 0; i < digits; i++) {
		if (p[i] >= '0' && p[i] <= '9')
			d = p[i] - '0';
		else if (p[i] >= 'a' && p[i] <= 'f')
			d = p[i] - 'a' + 10;
		else
			return -1;
		x = (x << 4) | (uint64_t)d;
	}
	*v = x;
	return 0;
}

/* Build c's chat frame (to its partner or its group). */
static int
run_template(struct bthread *t, struct bconn *c)
{
	const struct bench_opts *o = t->o;
	char *msg, *p, mark[8];
	size_t len;
	cJSON *req;

	if ((msg = malloc((size_t)o->size + 1)) == NULL)
		return -1;
	memset(msg, 'x', (size_t)o->size);
	msg[o->size] = '\0';
	memcpy(msg, BENCH_MARK, 2);
	run_hex(msg + 2, o->run_id, 4);
	memset(msg + 6, '0', 16);
	msg[22] = ':';
	run_hex(msg + 23, (uint64_t)c->idx, 8);
	if (o->mode == MODE_CHAT)
		req = chatc_build_one_chat(t->conns[c->local ^ 1].uid, msg);
	else
		req = chatc_build_group_chat(t->groups[c->group].gid, msg);
	free(msg);
	if (req == NULL || (o->ack &&
	    cJSON_AddNumberToObject(req, "seq", 1) == NULL)) {
		cJSON_Delete(req);
		return -1;
	}
	c->tmpl = chatc_line(req, &len);
	cJSON_Delete(req);
	if (c->tmpl == NULL)
		return -1;
	memcpy(mark, BENCH_MARK, 2);
	run_hex(mark + 2, o->run_id, 4);
	if ((p = memmem(c->tmpl, len, mark, 6)) == NULL)
		return -1;
	c->tmpl_len = (uint32_t)len;
	c->stamp_off = (uint32_t)(p - c->tmpl) + 6;
	return 0;
}

static int
run_can_send(const struct bthread *t, const struct bconn *c)
{
	return c->state == CS_READY && c->fd != -1 &&
	    c->owed + t->fanout <= (int64_t)t->o->window * t->fanout;
}

static void
run_stop_sending(struct bthread *t, int64_t now)
{
	if (!t->sending)
		return;
	t->sending = 0;
	t->phase = P_DRAIN;
	t->drain_end = now + (int64_t)(t->o->drain * 1e9);
}

/* Queue one chat frame from c stamped with now. */
static void
run_send(struct bthread *t, struct bconn *c, int64_t now)
{
	char *p;

	if (run_reserve(c, c->tmpl_len) == -1) {
		run_fail(t, "out of memory");
		return;
	}
	p = c->out + c->out_len;
	memcpy(p, c->tmpl, c->tmpl_len);
	run_hex(p + c->stamp_off, (uint64_t)now, 16);
	c->out_len += c->tmpl_len;
	run_mark_dirty(t, c);
	c->owed += t->fanout;
	t->owed += t->fanout;
	t->r.sent_total++;
	if (now >= t->m0 && now < t->m1)
		t->r.sent++;
	if (t->max_sends != 0 && t->r.sent_total >= t->max_sends)
		run_stop_sending(t, now);
}

/* Max rate: keep c's window full. */
static void
run_fill(struct bthread *t, struct bconn *c, int64_t now)
{
	while (t->sending && run_can_send(t, c))
		run_send(t, c, now);
}

/* A stamped frame arrived: credit its sender, record the latency. */
static void
run_chat_in(struct bthread *t, const char *stamp, size_t avail, int64_t now)
{
	uint64_t run, ts, sender;
	struct bconn *s;
	long local;

	if (avail < BENCH_STAMP_LEN - 2 || run_unhex(stamp, 4, &run) == -1 ||
	    run_unhex(stamp + 4, 16, &ts) == -1 || stamp[20] != ':' ||
	    run_unhex(stamp + 21, 8, &sender) == -1 ||
	    run != t->o->run_id || t->phase < P_RUN) {
		t->r.stale++;
		return;
	}
	local = (long)sender - t->first;
	if (local < 0 || local >= (long)t->nconns) {
		t->r.stale++;
		return;
	}
	s = &t->conns[local];
	s->owed--;
	t->owed--;
	t->r.delivered_total++;
	if (now >= t->m0 && now < t->m1) {
		t->r.delivered++;
		hist_add(&t->r.lat, now > (int64_t)ts ? (uint64_t)now - ts : 0);
	}
	if (t->o->rate == 0)
		run_fill(t, s, now);
}

/* --- connections ----------------------------------------------------- */

static void
run_close(struct bthread *t, struct bconn *c)
{
	if (c->fd != -1) {
		(void)close(c->fd);	/* also leaves the epoll set */
		c->fd = -1;
	}
	c->out_off = c->out_len = 0;
	c->want_out = 0;
	chatc_reader_free(&c->rd);
}

static void run_storm_next(struct bthread *, struct bconn *, int64_t);

/* The server closed c or a socket call failed. */
static void
run_lost(struct bthread *t, struct bconn *c, const char *why)
{
	int64_t now = bench_now();

	if (run_ops_mode(t->o)) {
		if (c->state != CS_NONE) {
			t->r.ops_fail++;
			run_note_err(t, "%s%ld: %s", t->o->prefix, c->idx, why);
			run_close(t, c);
			c->state = CS_NONE;
			t->active--;
			run_storm_next(t, c, now);
		}
		return;
	}
	if (t->phase == P_SETUP || c->state != CS_READY) {
		run_fail(t, "%s%ld (id %u): connection lost during setup: %s",
		    t->o->prefix, c->idx, c->uid, why);
		run_close(t, c);
		c->state = CS_CLOSED;
		return;
	}
	t->r.disconnects++;
	run_note_err(t, "%s%ld (id %u): connection closed: %s", t->o->prefix,
	    c->idx, c->uid, why);
	t->owed -= c->owed;
	c->owed = 0;
	c->state = CS_CLOSED;
	t->ready--;
	run_close(t, c);
}

/* Open a non-blocking connection for c to its target. */
static int
run_connect(struct bthread *t, struct bconn *c, int64_t now)
{
	const struct bench_opts *o = t->o;
	const struct bench_target *tg = &o->target[c->target];
	struct sockaddr_in src;
	int one = 1, fd;
	long k;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		run_fail(t, "socket: %s%s", strerror(errno), errno == EMFILE ?
		    " (more processes: -j)" : "");
		return -1;
	}
	if (o->nsrc > 1) {
		/* Source 127.0.0.(1+k): each gives another set of ephemeral
		 * ports towards the same target. */
		k = (c->idx / o->ntargets) % o->nsrc;
		memset(&src, 0, sizeof(src));
		src.sin_family = AF_INET;
		src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)k);
		(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		    sizeof(one));
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) == -1) {
			run_fail(t, "bind 127.0.0.%ld: %s", 1 + k,
			    strerror(errno));
			(void)close(fd);
			return -1;
		}
	}
	/* What chatc_connect() does, so the bench behaves like the
	 * project's clients; --nagle leaves it out (the classic client). */
	if (!o->nagle)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
	if (connect(fd, (const struct sockaddr *)&tg->addr,
	    sizeof(tg->addr)) == -1 && errno != EINPROGRESS) {
		(void)close(fd);
		if (run_ops_mode(o)) {
			t->r.ops_fail++;
			run_note_err(t, "connect %s: %s", tg->name,
			    strerror(errno));
			return -1;
		}
		run_fail(t, "connect %s: %s", tg->name, strerror(errno));
		return -1;
	}
	c->fd = fd;
	c->state = CS_CONNECT;
	c->t_op = now;
	c->want_out = 0;
	chatc_reader_init(&c->rd, RUN_MAX_LINE);
	run_epoll(t, c, EPOLL_CTL_ADD);
	return 0;
}

/* c's first request once connected. */
static void
run_connected(struct bthread *t, struct bconn *c, int64_t now)
{
	const struct bench_opts *o = t->o;
	char name[PROTO_NAME_MAX + 1];
	cJSON *req;
	int rc;

	if (o->mode == MODE_REGISTER) {
		(void)snprintf(name, sizeof(name), "%s%ld", o->prefix, c->idx);
		req = chatc_build_register(name, o->password);
		c->state = CS_REG;
	} else {
		req = chatc_build_login(c->uid, o->password);
		c->state = CS_LOGIN;
	}
	rc = run_request(t, c, req, c->t_op);	/* timed from connect */
	if (rc == -1)
		run_fail(t, "out of memory");
}

/* --- setup: login, groups -------------------------------------------- */

static void
run_set_ready(struct bthread *t, struct bconn *c)
{
	c->state = CS_READY;
	t->ready++;
	/* An idle connection keeps no buffers: it might be one of 200k. */
	if (t->o->mode == MODE_IDLE) {
		chatc_reader_free(&c->rd);
		if (c->out_len == 0) {
			free(c->out);
			c->out = NULL;
			c->out_cap = 0;
		}
	}
}

static void
run_join(struct bthread *t, struct bconn *c, int64_t now)
{
	c->state = CS_GJOIN;
	if (run_request(t, c, chatc_build_add_group(
	    t->groups[c->group].gid), now) == -1)
		run_fail(t, "out of memory");
}

static void
run_group_known(struct bthread *t, struct bgroup *g, uint32_t gid,
    int64_t now)
{
	uint32_t i;

	g->gid = gid;
	for (i = g->first; i < g->first + g->n; i++)
		if (t->conns[i].state == CS_GWAIT)
			run_join(t, &t->conns[i], now);
}

static void
run_group_name(const struct bthread *t, const struct bgroup *g, char *buf,
    size_t len)
{
	(void)snprintf(buf, len, "%sg%d-%ld", t->o->prefix, t->o->group_size,
	    t->conns[g->first].idx);
}

/* LOGIN_ACK with errno 0 arrived for c. */
static void
run_logged_in(struct bthread *t, struct bconn *c, int64_t now)
{
	struct bgroup *g;

	t->r.ops_ok++;
	hist_add(&t->r.op, (uint64_t)(now - c->t_op));
	if (t->o->mode != MODE_GROUP) {
		t->active--;
		run_set_ready(t, c);
		return;
	}
	g = &t->groups[c->group];
	if (c->creator && !t->o->relay) {
		c->state = CS_GLIST;
		if (run_request(t, c, chatc_build(MSG_GROUP_LIST), now) == -1)
			run_fail(t, "out of memory");
		return;
	}
	t->active--;
	if (g->gid != 0)
		run_join(t, c, now);
	else
		c->state = CS_GWAIT;
}

/* The creator's GROUP_LIST answer: the group exists, or create it. */
static void
run_group_list(struct bthread *t, struct bconn *c, const cJSON *ack,
    int64_t now)
{
	struct bgroup *g = &t->groups[c->group];
	const cJSON *it, *name, *id;
	char want[PROTO_GROUPNAME_MAX + 1];

	run_group_name(t, g, want, sizeof(want));
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(ack,
	    "groups")) {
		name = cJSON_GetObjectItemCaseSensitive(it, "groupname");
		id = cJSON_GetObjectItemCaseSensitive(it, "id");
		if (cJSON_IsString(name) && strcmp(name->valuestring,
		    want) == 0 && cJSON_IsNumber(id)) {
			t->active--;
			run_set_ready(t, c);
			run_group_known(t, g, (uint32_t)id->valuedouble, now);
			return;
		}
	}
	c->state = CS_GCREATE;
	if (run_request(t, c, chatc_build_create_group(want, RUN_GROUP_DESC),
	    now) == -1)
		run_fail(t, "out of memory");
}

/* A storm operation ended (ok or not): close, take the next user. */
static void
run_storm_done(struct bthread *t, struct bconn *c, int64_t now)
{
	run_close(t, c);
	c->state = CS_NONE;
	t->active--;
	t->last_op = now;
	run_storm_next(t, c, now);
}

/*
 * "Already online": the session of an earlier run (this user's, a moment
 * ago) is still being torn down, here or in the cluster's claims.  Try
 * again shortly, within the setup time.  0, or -1 out of memory.
 */
static int
run_retry_later(struct bthread *t, struct bconn *c, int64_t now)
{
	uint32_t *nr;
	size_t cap;

	if (t->nretry == t->retry_cap) {
		cap = t->retry_cap ? t->retry_cap * 2 : 64;
		if ((nr = realloc(t->retry, cap * sizeof(*nr))) == NULL)
			return -1;
		t->retry = nr;
		t->retry_cap = cap;
	}
	t->retry[t->nretry++] = c->local;
	c->retry_at = now + RUN_RETRY_NS;
	return 0;
}

/* Send LOGIN again on the connections whose retry time came. */
static void
run_retry_due(struct bthread *t, int64_t now)
{
	struct bconn *c;
	size_t i, keep = 0;

	for (i = 0; i < t->nretry; i++) {
		c = &t->conns[t->retry[i]];
		if (now < c->retry_at) {
			t->retry[keep++] = t->retry[i];
			continue;
		}
		c->retry_at = 0;
		if (c->fd != -1 && run_request(t, c, chatc_build_login(c->uid,
		    t->o->password), c->t_op) == -1)
			run_fail(t, "out of memory");
	}
	t->nretry = keep;
}

/* A reply (LOGIN_ACK, REG_ACK, ACK or ERROR) for c's request. */
static void
run_reply(struct bthread *t, struct bconn *c, const cJSON *m, int msgid,
    int64_t now)
{
	const struct bench_opts *o = t->o;
	int err = chatc_errno(m), ref;
	const cJSON *v;

	ref = msgid == MSG_LOGIN_ACK ? MSG_LOGIN : msgid == MSG_REG_ACK ?
	    MSG_REG : (v = cJSON_GetObjectItemCaseSensitive(m, "refmsgid"),
	    cJSON_IsNumber(v) ? v->valueint : 0);
	if (ref == MSG_ONE_CHAT || ref == MSG_GROUP_CHAT) {
		/* --ack: the answers to chat frames. */
		v = cJSON_GetObjectItemCaseSensitive(m, "status");
		if (err == 0 && cJSON_IsString(v) &&
		    strcmp(v->valuestring, "stored") == 0)
			t->r.acks_stored++;
		else if (err == 0)
			t->r.acks_delivered++;
		return;
	}
	switch (c->state) {
	case CS_REG:
		if (ref != MSG_REG)
			break;
		hist_add(&t->r.op, (uint64_t)(now - c->t_op));
		v = cJSON_GetObjectItemCaseSensitive(m, "id");
		if (err == 0 && cJSON_IsNumber(v) && v->valuedouble > 0) {
			t->r.ops_ok++;
			if (bench_users_add(t->ufd, o->prefix, c->idx,
			    (uint32_t)v->valuedouble) == -1)
				run_fail(t, "%s: %s", o->users_file,
				    strerror(errno));
		} else if (err == CERR_NAME_TAKEN)
			t->r.ops_exist++;
		else {
			t->r.ops_fail++;
			run_note_err(t, "REG %s%ld: errno %d: %s", o->prefix,
			    c->idx, err, chatc_errmsg(m));
		}
		run_storm_done(t, c, now);
		return;
	case CS_LOGIN:
		if (ref != MSG_LOGIN)
			break;
		if (o->mode == MODE_LOGIN) {
			hist_add(&t->r.op, (uint64_t)(now - c->t_op));
			if (err == 0)
				t->r.ops_ok++;
			else {
				t->r.ops_fail++;
				run_note_err(t, "LOGIN %s%ld (id %u): errno "
				    "%d: %s", o->prefix, c->idx, c->uid, err,
				    chatc_errmsg(m));
			}
			run_storm_done(t, c, now);
			return;
		}
		if (err == CERR_ONLINE && now < t->setup_deadline &&
		    run_retry_later(t, c, now) == 0)
			return;
		if (err != 0) {
			run_fail(t, "LOGIN %s%ld (id %u): errno %d: %s",
			    o->prefix, c->idx, c->uid, err, chatc_errmsg(m));
			return;
		}
		run_logged_in(t, c, now);
		return;
	case CS_GLIST:
		if (ref != MSG_GROUP_LIST)
			break;
		if (err != 0) {
			run_fail(t, "GROUP_LIST: errno %d: %s", err,
			    chatc_errmsg(m));
			return;
		}
		run_group_list(t, c, m, now);
		return;
	case CS_GCREATE:
		if (ref != MSG_CREATE_GROUP)
			break;
		v = cJSON_GetObjectItemCaseSensitive(m, "groupid");
		if (err != 0 || !cJSON_IsNumber(v)) {
			run_fail(t, "CREATE_GROUP: errno %d: %s", err,
			    chatc_errmsg(m));
			return;
		}
		t->active--;
		run_set_ready(t, c);
		run_group_known(t, &t->groups[c->group],
		    (uint32_t)v->valuedouble, now);
		return;
	case CS_GJOIN:
		if (ref != MSG_ADD_GROUP)
			break;
		/* Already a member from an earlier run is as good. */
		if (err != 0 && err != CERR_EXISTS) {
			run_fail(t, "ADD_GROUP %u: errno %d: %s",
			    t->groups[c->group].gid, err, chatc_errmsg(m));
			return;
		}
		run_set_ready(t, c);
		return;
	default:
		break;
	}
	if (msgid == MSG_ERROR) {
		t->r.errors++;
		run_note_err(t, "server error %d: %s", err, chatc_errmsg(m));
	}
}

/* --- input ----------------------------------------------------------- */

static void
run_line(struct bthread *t, struct bconn *c, const char *line, size_t len,
    int64_t now)
{
	static const char p6[] = "{\"msgid\":6,", p10[] = "{\"msgid\":10,";
	const cJSON *v;
	const char *mark;
	cJSON *m;
	int msgid;

	t->r.frames_in++;
	/* Fast path: a forwarded chat frame (chatd writes msgid first and
	 * the relay forwards our own frames, which chatc starts with it). */
	if ((len > sizeof(p6) && memcmp(line, p6, sizeof(p6) - 1) == 0) ||
	    (len > sizeof(p10) && memcmp(line, p10, sizeof(p10) - 1) == 0)) {
		if ((mark = memmem(line, len, BENCH_MARK, 2)) != NULL) {
			run_chat_in(t, mark + 2, len - (size_t)(mark + 2 -
			    line), now);
			return;
		}
	}
	if ((m = chatc_parse_line(line, len)) == NULL) {
		run_lost(t, c, "invalid JSON from server");
		return;
	}
	v = cJSON_GetObjectItemCaseSensitive(m, "msgid");
	msgid = cJSON_IsNumber(v) ? v->valueint : 0;
	switch (msgid) {
	case MSG_ONE_CHAT:
	case MSG_GROUP_CHAT:
		v = cJSON_GetObjectItemCaseSensitive(m, "msg");
		if (cJSON_IsString(v) && (mark = strstr(v->valuestring,
		    BENCH_MARK)) != NULL)
			run_chat_in(t, mark + 2, strlen(mark + 2), now);
		else
			t->r.stale++;
		break;
	case MSG_LOGIN_ACK:
	case MSG_REG_ACK:
	case MSG_ACK:
	case MSG_ERROR:
		run_reply(t, c, m, msgid, now);
		break;
	default:
		break;		/* PRESENCE and the like */
	}
	cJSON_Delete(m);
}

static void
run_readable(struct bthread *t, struct bconn *c, int64_t now)
{
	const char *line;
	size_t len;
	ssize_t n;
	int i;

	for (i = 0; i < RUN_READS_PER_EVENT && c->fd != -1; i++) {
		n = read(c->fd, t->rbuf, RUN_READ_CHUNK);
		if (n == 0) {
			run_lost(t, c, "connection closed by server");
			return;
		}
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				run_lost(t, c, strerror(errno));
			return;
		}
		if (chatc_reader_feed(&c->rd, t->rbuf, (size_t)n) == -1) {
			run_lost(t, c, "line from server too long");
			return;
		}
		while (c->fd != -1 && chatc_reader_next(&c->rd, &line, &len))
			run_line(t, c, line, len, now);
		if (n < RUN_READ_CHUNK)
			break;
	}
	/* Between lines the buffer holds nothing: give it back when idle. */
	if (t->o->mode == MODE_IDLE && c->fd != -1 && c->state == CS_READY &&
	    c->rd.off == c->rd.len)
		chatc_reader_free(&c->rd);
}

static void
run_event(struct bthread *t, struct bconn *c, uint32_t ev, int64_t now)
{
	socklen_t slen;
	int soerr;

	if (c->fd == -1)
		return;
	if (c->state == CS_CONNECT) {
		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		soerr = 0;
		slen = sizeof(soerr);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) ==
		    -1)
			soerr = errno;
		if (soerr != 0) {
			run_lost(t, c, strerror(soerr));
			return;
		}
		c->state = CS_NONE;
		run_epoll(t, c, EPOLL_CTL_MOD);
		run_connected(t, c, now);
		return;
	}
	if (ev & EPOLLOUT)
		run_flush(t, c);
	if (c->fd != -1 && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
		run_readable(t, c, now);
}

/* --- storms ---------------------------------------------------------- */

/* Start c on the next user of the storm, if any is left. */
static void
run_storm_next(struct bthread *t, struct bconn *c, int64_t now)
{
	const struct bench_opts *o = t->o;
	long i;

	if (t->phase != P_RUN || now >= t->end || t->r.failed)
		return;
	if (t->max_sends != 0 && t->r.ops_ok + t->r.ops_fail +
	    t->r.ops_exist + t->active >= t->max_sends)
		return;
	while (t->next_user < t->first + t->n) {
		i = t->next_user++;
		if (o->mode == MODE_REGISTER && o->ids[i - o->first] != 0) {
			t->r.ops_known++;	/* in the users file already */
			continue;
		}
		c->idx = i;
		c->uid = o->ids[i - o->first];
		c->target = (uint8_t)(i % o->ntargets);
		if (run_connect(t, c, now) == 0) {
			t->active++;
			return;
		}
		if (t->r.failed)
			return;
	}
}

/* --- the loop -------------------------------------------------------- */

static void
run_setup_more(struct bthread *t, int64_t now)
{
	struct bconn *c;

	while (t->active < (uint32_t)t->o->concurrency &&
	    t->next_start < t->nconns && !t->r.failed) {
		c = &t->conns[t->next_start++];
		if (run_connect(t, c, now) == -1)
			return;
		t->active++;
	}
}

static void
run_begin(struct bthread *t, int64_t now)
{
	const struct bench_opts *o = t->o;
	uint32_t i;

	t->phase = P_RUN;
	t->m0 = t->start + (int64_t)(o->warmup * 1e9);
	t->m1 = t->m0 + (int64_t)(o->duration * 1e9);
	t->end = t->m1;
	if (run_ops_mode(o)) {
		t->m0 = t->start;
		t->end = t->m1 = t->start + (int64_t)(o->duration * 1e9);
		for (i = 0; i < t->nconns; i++)
			run_storm_next(t, &t->conns[i], now);
		if (t->active == 0)
			t->phase = P_DONE;
		return;
	}
	if (o->mode == MODE_IDLE) {
		for (i = 0; i < t->nconns; i++)
			t->conns[i].next_ping = now + (int64_t)(o->ping * 1e9);
		return;
	}
	for (i = 0; i < t->nconns; i++)
		if (run_template(t, &t->conns[i]) == -1) {
			run_fail(t, "cannot build chat frames: out of memory");
			return;
		}
	t->sending = 1;
	if (o->rate == 0)
		for (i = 0; i < t->nconns; i++)
			run_fill(t, &t->conns[i], now);
}

/* Fixed rate: send what is due by now, round robin over senders. */
static void
run_paced(struct bthread *t, int64_t now)
{
	uint64_t due;
	uint32_t tries;
	struct bconn *c;
	int64_t sched;

	if (!t->sending || now < t->start)
		return;
	due = (uint64_t)((double)(now - t->start) * t->rate / 1e9);
	while (t->sending && t->due_sent < due) {
		sched = t->start + (int64_t)((double)t->due_sent * 1e9 /
		    t->rate);
		if (now - sched > t->r.late_max_ns && now >= t->m0)
			t->r.late_max_ns = now - sched;
		for (tries = 0; tries < t->nconns; tries++) {
			c = &t->conns[t->rr];
			t->rr = (t->rr + 1) % t->nconns;
			if (run_can_send(t, c))
				break;
		}
		t->due_sent++;
		if (tries == t->nconns) {
			if (now >= t->m0 && now < t->m1)
				t->r.skipped++;
			continue;
		}
		run_send(t, c, now);
	}
}

static int64_t
run_thread_cpu(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The thread's own CPU time between m0 and m1 (or its end). */
static void
run_cpu_mark(struct bthread *t, int64_t now)
{
	if (t->start == 0)
		return;
	if (t->cpu0 == 0 && now >= t->m0)
		t->cpu0 = run_thread_cpu();
	if (t->cpu0 != 0 && t->r.cpu_ns == 0 && now >= t->m1)
		t->r.cpu_ns = run_thread_cpu() - t->cpu0;
}

/* Timeouts, PINGs, phase changes; returns the next time to look. */
static int64_t
run_tick(struct bthread *t, int64_t now)
{
	const struct bench_opts *o = t->o;
	int64_t next = now + RUN_TICK_NS, due;
	struct bconn *c;
	uint32_t i;
	char ping[64];
	int n;

	switch (t->phase) {
	case P_SETUP:
		run_retry_due(t, now);
		run_setup_more(t, now);
		if (t->ready == t->nconns) {
			t->r.setup_ns = now - t->setup_start;
			t->phase = P_WAIT;
		} else if (now >= t->setup_deadline)
			run_fail(t, "setup timed out: %u of %u users ready "
			    "(--setup-timeout)", t->ready, t->nconns);
		break;
	case P_WAIT:
		break;
	case P_RUN:
		if (now < t->start)
			return t->start;
		run_cpu_mark(t, now);
		if (run_ops_mode(o)) {
			if (now >= t->next_tick) {
				t->next_tick = now + RUN_TICK_NS;
				for (i = 0; i < t->nconns; i++) {
					c = &t->conns[i];
					if (c->state != CS_NONE && now -
					    c->t_op > (int64_t)o->timeout_ms *
					    1000000)
						run_lost(t, c, "request timed "
						    "out (--timeout)");
				}
			}
			/* Done, or out of time (what is in flight is cut). */
			if (t->active == 0 || now >= t->end)
				t->phase = P_DONE;
			break;
		}
		if (o->mode == MODE_IDLE) {
			if (o->ping > 0 && now >= t->next_tick) {
				t->next_tick = now + RUN_TICK_NS;
				n = snprintf(ping, sizeof(ping),
				    "{\"msgid\":%d}\n", MSG_PING);
				for (i = 0; i < t->nconns; i++) {
					c = &t->conns[i];
					if (c->state != CS_READY ||
					    now < c->next_ping)
						continue;
					c->next_ping = now +
					    (int64_t)(o->ping * 1e9);
					(void)run_queue(t, c, ping, (size_t)n);
				}
			}
			if (now >= t->m1)
				t->phase = P_DONE;
			return t->m1 < next ? t->m1 : next;
		}
		if (now >= t->m1)
			run_stop_sending(t, now);
		else if (o->rate > 0) {
			run_paced(t, now);
			due = t->start + (int64_t)((double)(t->due_sent + 1) *
			    1e9 / t->rate);
			if (due < now + RUN_MIN_WAIT_NS)
				due = now + RUN_MIN_WAIT_NS;
			if (due < next)
				next = due;
		}
		if (t->phase == P_RUN && t->m1 < next)
			next = t->m1;
		if (t->phase == P_RUN && t->m0 > now && t->m0 < next)
			next = t->m0;
		break;
	case P_DRAIN:
		if (t->owed <= 0 || now >= t->drain_end)
			t->phase = P_DONE;
		else if (t->drain_end < next)
			next = t->drain_end;
		break;
	case P_DONE:
		break;
	}
	return next;
}

static void
run_report_ready(struct bthread *t)
{
	struct bproc *p = t->p;

	(void)pthread_mutex_lock(&p->mu);
	p->nready++;
	(void)pthread_cond_broadcast(&p->cv);
	(void)pthread_mutex_unlock(&p->mu);
}

static void *
run_thread(void *arg)
{
	struct bthread *t = arg;
	struct epoll_event evs[RUN_EVENTS], ev;
	struct timespec ts;
	int64_t now, next, wait;
	int i, n, reported = 0;

	now = bench_now();
	t->setup_start = now;
	t->setup_deadline = now + (int64_t)(t->o->setup_timeout * 1e9);
	t->phase = run_ops_mode(t->o) ? P_WAIT : P_SETUP;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	if (epoll_ctl(t->ep, EPOLL_CTL_ADD, t->p->efd, &ev) == -1)
		run_fail(t, "epoll_ctl: %s", strerror(errno));
	next = now;
	for (;;) {
		if (t->r.failed && !reported)
			t->phase = P_WAIT;	/* report it, then stop */
		if (t->phase == P_WAIT && !reported) {
			reported = 1;
			run_report_ready(t);
		}
		if (t->phase == P_DONE)
			break;
		now = bench_now();
		if (now >= next || t->phase == P_SETUP)
			next = run_tick(t, now);
		run_flush_dirty(t);
		if (t->phase == P_DONE)
			break;
		wait = next - bench_now();
		if (wait < 0)
			wait = 0;
		ts.tv_sec = wait / 1000000000;
		ts.tv_nsec = wait % 1000000000;
		n = epoll_pwait2(t->ep, evs, RUN_EVENTS, &ts, NULL);
		if (n == -1 && errno != EINTR) {
			run_fail(t, "epoll_wait: %s", strerror(errno));
			break;
		}
		now = bench_now();
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr != NULL) {
				run_event(t, evs[i].data.ptr, evs[i].events,
				    now);
				continue;
			}
			/* The start signal: stays readable for every
			 * thread, so each one stops watching it. */
			(void)epoll_ctl(t->ep, EPOLL_CTL_DEL, t->p->efd, NULL);
			if (atomic_load(&t->p->abort) || t->r.failed) {
				t->phase = P_DONE;
				break;
			}
			t->start = atomic_load(&t->p->start_ns);
			/* Every thread of every process begins together. */
			bench_sleep_until(t->start);
			now = bench_now();
			run_begin(t, now);
			next = now;
		}
		if (t->phase == P_SETUP && t->r.failed)
			continue;
	}
	run_flush_dirty(t);
	run_cpu_mark(t, INT64_MAX);
	if (run_ops_mode(t->o))
		t->r.ops_ns = (t->last_op > t->start ? t->last_op : now) -
		    t->start;
	if (!reported)
		run_report_ready(t);
	return NULL;
}

/* --- the process ----------------------------------------------------- */

/* Lay out thread t's conns (and groups) for users first..first+n-1. */
static int
run_thread_init(struct bthread *t, struct bproc *p, int index, long first,
    long n)
{
	const struct bench_opts *o = p->o;
	uint32_t i, g;

	memset(t, 0, sizeof(*t));
	t->p = p;
	t->o = o;
	t->index = index;
	t->first = first;
	t->n = n;
	t->next_user = first;
	t->ufd = -1;
	hist_init(&t->r.lat);
	hist_init(&t->r.op);
	t->fanout = o->mode == MODE_GROUP ? (uint32_t)o->group_size - 1 : 1;
	if ((t->ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		return -1;
	if ((t->rbuf = malloc(RUN_READ_CHUNK)) == NULL)
		return -1;
	t->nconns = run_ops_mode(o) ? (uint32_t)(o->concurrency < n ?
	    o->concurrency : n) : (uint32_t)n;
	if ((t->conns = calloc(t->nconns ? t->nconns : 1,
	    sizeof(*t->conns))) == NULL)
		return -1;
	for (i = 0; i < t->nconns; i++) {
		struct bconn *c = &t->conns[i];

		c->fd = -1;
		c->local = i;
		if (run_ops_mode(o))
			continue;
		c->idx = first + i;
		c->uid = o->ids[c->idx - o->first];
		c->target = (uint8_t)(c->idx % o->ntargets);
	}
	if (o->mode == MODE_GROUP) {
		t->ngroups = t->nconns / (uint32_t)o->group_size;
		if ((t->groups = calloc(t->ngroups ? t->ngroups : 1,
		    sizeof(*t->groups))) == NULL)
			return -1;
		for (g = 0; g < t->ngroups; g++) {
			t->groups[g].first = g * (uint32_t)o->group_size;
			t->groups[g].n = (uint32_t)o->group_size;
			/* The relay has no CREATE_GROUP: ids are ours. */
			if (o->relay)
				t->groups[g].gid = (uint32_t)((t->conns[
				    t->groups[g].first].idx - o->first) /
				    o->group_size) + 1;
			t->conns[t->groups[g].first].creator = 1;
			for (i = 0; i < t->groups[g].n; i++)
				t->conns[t->groups[g].first + i].group = g;
		}
	}
	return 0;
}

static void
run_thread_free(struct bthread *t)
{
	uint32_t i;

	for (i = 0; i < t->nconns; i++) {
		run_close(t, &t->conns[i]);
		free(t->conns[i].out);
		free(t->conns[i].tmpl);
	}
	free(t->conns);
	free(t->groups);
	free(t->retry);
	free(t->rbuf);
	if (t->ep != -1)
		(void)close(t->ep);
}

void
bench_merge(struct bench_result *d, const struct bench_result *s)
{
	if (s->failed && !d->failed) {
		d->failed = 1;
		memcpy(d->err, s->err, sizeof(d->err));
	} else if (d->err[0] == '\0')
		memcpy(d->err, s->err, sizeof(d->err));
	d->ops_ok += s->ops_ok;
	d->ops_fail += s->ops_fail;
	d->ops_exist += s->ops_exist;
	d->ops_known += s->ops_known;
	d->sent += s->sent;
	d->delivered += s->delivered;
	d->sent_total += s->sent_total;
	d->delivered_total += s->delivered_total;
	d->stale += s->stale;
	d->errors += s->errors;
	d->acks_delivered += s->acks_delivered;
	d->acks_stored += s->acks_stored;
	d->skipped += s->skipped;
	d->disconnects += s->disconnects;
	d->frames_in += s->frames_in;
	if (s->setup_ns > d->setup_ns)
		d->setup_ns = s->setup_ns;
	if (s->ops_ns > d->ops_ns)
		d->ops_ns = s->ops_ns;
	if (s->late_max_ns > d->late_max_ns)
		d->late_max_ns = s->late_max_ns;
	d->cpu_ns += s->cpu_ns;
	hist_merge(&d->lat, &s->lat);
	hist_merge(&d->op, &s->op);
}

static int
write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = read(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
bench_proc(const struct bench_opts *o, long first, long n, int rfd, int wfd)
{
	struct bthread *ts;
	struct bench_result *res;
	struct bench_note note;
	struct bench_go go;
	struct bproc p;
	long unit, units, per, extra, at, cnt;
	uint64_t one = 1;
	int i, nt, started, failed = 0;

	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	memset(&p, 0, sizeof(p));
	p.o = o;
	(void)pthread_mutex_init(&p.mu, NULL);
	(void)pthread_cond_init(&p.cv, NULL);
	if ((p.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1)
		return 1;
	/* Threads get whole pairs (chat) or groups; storms split freely. */
	unit = o->mode == MODE_CHAT ? 2 : o->mode == MODE_GROUP ?
	    o->group_size : 1;
	units = n / unit;
	nt = o->threads;
	if (nt > units)
		nt = (int)(units > 0 ? units : 1);
	if ((ts = calloc((size_t)nt, sizeof(*ts))) == NULL ||
	    (res = calloc(1, sizeof(*res))) == NULL)
		return 1;
	hist_init(&res->lat);
	hist_init(&res->op);
	per = units / nt;
	extra = units % nt;
	at = first;
	for (i = 0; i < nt; i++) {
		cnt = (per + (i < extra)) * unit;
		if (run_thread_init(&ts[i], &p, i, at, cnt) == -1) {
			(void)snprintf(res->err, sizeof(res->err), "thread "
			    "setup: %s", strerror(errno));
			res->failed = 1;
			nt = i;
			break;
		}
		at += cnt;
		if (o->count > 0) {
			/* This process's share of the cap, split again. */
			ts[i].max_sends = (uint64_t)o->count / (uint64_t)nt +
			    ((uint64_t)i < (uint64_t)o->count % (uint64_t)nt);
			if (ts[i].max_sends == 0)
				ts[i].max_sends = 1;
		}
		if (o->rate > 0)
			ts[i].rate = o->rate * (double)cnt / (double)o->users;
		if (o->mode == MODE_REGISTER) {
			ts[i].ufd = open(o->users_file, O_WRONLY | O_APPEND |
			    O_CREAT | O_CLOEXEC, 0644);
			if (ts[i].ufd == -1) {
				(void)snprintf(res->err, sizeof(res->err),
				    "%.200s: %s", o->users_file, strerror(errno));
				res->failed = 1;
			}
		}
	}
	for (started = 0; started < nt && !res->failed; started++)
		if (pthread_create(&ts[started].tid, NULL, run_thread,
		    &ts[started]) != 0) {
			(void)snprintf(res->err, sizeof(res->err),
			    "pthread_create failed");
			res->failed = 1;
			break;
		}

	/* Every thread set up (or failed): tell the parent. */
	(void)pthread_mutex_lock(&p.mu);
	while (p.nready < started)
		(void)pthread_cond_wait(&p.cv, &p.mu);
	(void)pthread_mutex_unlock(&p.mu);
	memset(&note, 0, sizeof(note));
	note.type = BENCH_READY;
	for (i = 0; i < nt; i++) {
		if (ts[i].r.setup_ns > note.setup_ns)
			note.setup_ns = ts[i].r.setup_ns;
		if (ts[i].r.failed && !failed) {
			failed = 1;
			memcpy(note.err, ts[i].r.err, sizeof(note.err));
		}
	}
	if (res->failed && !failed) {
		failed = 1;
		memcpy(note.err, res->err, sizeof(note.err));
	}
	if (failed)
		note.type = BENCH_FAILED;
	if (write_all(wfd, &note, sizeof(note)) == -1 ||
	    read_all(rfd, &go, sizeof(go)) == -1)
		go.abort = 1;
	if (go.abort || failed)
		atomic_store(&p.abort, 1);
	atomic_store(&p.start_ns, go.start_ns);
	(void)!write(p.efd, &one, sizeof(one));
	for (i = 0; i < started; i++)
		(void)pthread_join(ts[i].tid, NULL);
	for (i = 0; i < nt; i++) {
		bench_merge(res, &ts[i].r);
		if (ts[i].ufd != -1)
			(void)close(ts[i].ufd);
		run_thread_free(&ts[i]);
	}
	memset(&note, 0, sizeof(note));
	note.type = BENCH_DONE;
	if (write_all(wfd, &note, sizeof(note)) == -1 ||
	    write_all(wfd, res, sizeof(*res)) == -1)
		return 1;
	return 0;
}
