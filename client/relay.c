/*
 * relay.c - chat-relay(1), the bare baseline chat-bench measures chatd
 * against: what this machine can forward at all with chatd's framing.
 *
 * Same client side as chatd: JSON objects back to back, separated by
 * nothing, whitespace or NUL, split by chatd's own splitter (src/frame.c);
 * replies one object per line.  One epoll loop per thread (default: one
 * per core), each on its own SO_REUSEPORT socket like chatd's workers.
 * There is no JSON parser, no authentication, presence table, storage or
 * validation: a frame's "msgid", "id", "toid", "groupid" and "seq" are
 * found by looking for the key's bytes, and the frame itself is forwarded
 * verbatim plus '\n'.  So a frame must be one line (compact JSON), as
 * chat-bench and chatc send them.
 *
 *   msgid 1  (LOGIN)      binds the connection to "id"; answers
 *                         {"msgid":2,"errno":0,"id":N}
 *   msgid 6  (ONE_CHAT)   forwarded to the connection bound to "toid"
 *   msgid 9  (ADD_GROUP)  adds the connection's id to group "groupid"
 *   msgid 10 (GROUP_CHAT) forwarded to every other member of "groupid"
 *   msgid 3, 18           LOGINOUT unbinds; PING does nothing
 *   others                ERROR errno 14
 * Every request but LOGIN is answered with an ACK only when it carries
 * "seq", whose raw value is echoed, as chatd does.  A frame for nobody is
 * dropped and counted.
 *
 * Forwarding crosses threads without queues: the sender's thread appends
 * to the target connection's output under that connection's mutex and
 * writes it at the end of its own loop iteration, so a message costs one
 * read and one write however the connections are spread (chatd's workers
 * are processes and hop through an AF_UNIX datagram instead).  Connection
 * structs are never freed, only reused, and a forward checks the target's
 * id under its mutex, so a stale pointer is harmless.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "protocol.h"

#define RELAY_EVENTS		256
#define RELAY_READ_CHUNK	65536	/* bytes per read() */
#define RELAY_READS_PER_EVENT	4	/* like chatd's CONN_READS_PER_EVENT */
#define RELAY_ACCEPTS		64	/* per listen event */
#define RELAY_DEF_MAX_FRAME	65536	/* chatd's max_frame default */
#define RELAY_DEF_MAX_OUTPUT	1048576	/* chatd's max_output default */
#define RELAY_DEF_MAX_USERS	(1u << 22)	/* ids 1..this-1 */
#define RELAY_DEF_MAX_GROUPS	(1u << 16)
#define RELAY_MAX_THREADS	64

struct rconn {
	pthread_mutex_t mu;	/* out, closed, uid */
	int fd;
	int epfd;		/* its owner thread's epoll */
	uint32_t uid;		/* bound by LOGIN, 0 before */
	int closed;
	unsigned want_out:1;
	char *out;
	size_t out_off, out_len, out_cap;
	/* owner thread only: */
	char *in;
	size_t in_len, in_cap;
	struct frame fr;
	struct rconn *free_next;
};

struct rgroup {
	pthread_mutex_t mu;
	uint32_t *uids;
	uint32_t n, cap;
};

struct relay;

struct rthread {
	struct relay *rl;
	pthread_t tid;
	int epfd, lfd;
	char *rbuf;
	struct rconn **dirty;	/* written to during this iteration */
	size_t ndirty, dirty_cap;
	struct rconn *free;	/* closed, for reuse */
	uint64_t frames, forwarded, dropped;
};

struct relay {
	struct sockaddr_in addr;
	int nthreads;
	size_t max_frame, max_output;
	uint32_t max_users, max_groups;
	_Atomic(struct rconn *) *byid;	/* uid -> connection */
	struct rgroup *groups;		/* gid -> members */
	pthread_mutex_t groups_mu;	/* lazily initialising a group */
	struct rthread th[RELAY_MAX_THREADS];
};

static void __attribute__((noreturn, format(printf, 1, 2)))
fatal(const char *fmt, ...)
{
	va_list ap;
	int e = errno;

	(void)fputs("chat-relay: ", stderr);
	va_start(ap, fmt);
	(void)vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (e != 0)
		(void)fprintf(stderr, ": %s", strerror(e));
	(void)fputc('\n', stderr);
	exit(1);
}

/* --- fields by their bytes -------------------------------------------- */

/* The value after "key": in f, or NULL. */
static const char *
relay_value(const char *f, size_t len, const char *key, size_t klen,
    size_t *rest)
{
	const char *p = f, *end = f + len;

	while (p < end && (p = memmem(p, (size_t)(end - p), key, klen)) !=
	    NULL) {
		p += klen;
		while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' ||
		    *p == '\n'))
			p++;
		if (p < end && *p == ':') {
			p++;
			while (p < end && (*p == ' ' || *p == '\t'))
				p++;
			*rest = (size_t)(end - p);
			return p;
		}
	}
	return NULL;
}

/* A non-negative integer field, or -1. */
static long long
relay_int(const char *f, size_t len, const char *key, size_t klen)
{
	const char *p;
	long long v = 0;
	size_t rest, i;

	if ((p = relay_value(f, len, key, klen, &rest)) == NULL)
		return -1;
	for (i = 0; i < rest && p[i] >= '0' && p[i] <= '9'; i++)
		if ((v = v * 10 + (p[i] - '0')) > 0xffffffffLL)
			return -1;
	return i > 0 ? v : -1;
}

/* The raw scalar of "seq" (a number, string or literal), or len 0. */
static const char *
relay_seq(const char *f, size_t len, size_t *slen)
{
	const char *p;
	size_t rest, i = 0;

	*slen = 0;
	if ((p = relay_value(f, len, "\"seq\"", 5, &rest)) == NULL ||
	    rest == 0)
		return NULL;
	if (p[0] == '"') {
		for (i = 1; i < rest && p[i] != '"'; i++)
			if (p[i] == '\\')
				i++;
		if (i >= rest)
			return NULL;
		*slen = i + 1;
		return p;
	}
	while (i < rest && p[i] != ',' && p[i] != '}' && p[i] != ' ')
		i++;
	*slen = i;
	return p;
}

#define KEY(s) s, sizeof(s) - 1

/* --- output ------------------------------------------------------------ */

static void
relay_epoll(struct rconn *c, int op)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLRDHUP | (c->want_out ? EPOLLOUT : 0);
	ev.data.ptr = c;
	(void)epoll_ctl(c->epfd, op, c->fd, &ev);
}

/* Append under c->mu (held).  0, or -1 when over max_output. */
static int
relay_append_locked(struct rthread *t, struct rconn *c, const char *a,
    size_t alen, const char *b, size_t blen)
{
	size_t need, cap;
	char *nb;
	int was_empty;

	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len - c->out_off + alen + blen > t->rl->max_output)
		return -1;
	need = c->out_len + alen + blen;
	if (need > c->out_cap) {
		cap = c->out_cap ? c->out_cap : 4096;
		while (cap < need)
			cap *= 2;
		if ((nb = realloc(c->out, cap)) == NULL)
			return -1;
		c->out = nb;
		c->out_cap = cap;
	}
	was_empty = c->out_len == c->out_off;
	memcpy(c->out + c->out_len, a, alen);
	memcpy(c->out + c->out_len + alen, b, blen);
	c->out_len += alen + blen;
	/* Whoever makes it non-empty writes it (unless EPOLLOUT will). */
	if (was_empty && !c->want_out) {
		if (t->ndirty == t->dirty_cap) {
			size_t ncap = t->dirty_cap ? t->dirty_cap * 2 : 256;
			struct rconn **nd;

			if ((nd = realloc(t->dirty, ncap * sizeof(*nd))) ==
			    NULL)
				fatal("out of memory");
			t->dirty = nd;
			t->dirty_cap = ncap;
		}
		t->dirty[t->ndirty++] = c;
	}
	return 0;
}

static void
relay_write_locked(struct rconn *c)
{
	ssize_t n;

	while (!c->closed && c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			if (!c->want_out) {
				c->want_out = 1;
				relay_epoll(c, EPOLL_CTL_MOD);
			}
			return;
		}
		/* A broken peer: its owner sees the error on read. */
		c->out_off = c->out_len = 0;
		return;
	}
	c->out_off = c->out_len = 0;
	if (c->want_out) {
		c->want_out = 0;
		relay_epoll(c, EPOLL_CTL_MOD);
	}
}

static void
relay_flush_dirty(struct rthread *t)
{
	struct rconn *c;
	size_t i;

	for (i = 0; i < t->ndirty; i++) {
		c = t->dirty[i];
		(void)pthread_mutex_lock(&c->mu);
		relay_write_locked(c);
		(void)pthread_mutex_unlock(&c->mu);
	}
	t->ndirty = 0;
}

/* A reply to c itself (owner thread). */
static void
relay_reply(struct rthread *t, struct rconn *c, const char *line, size_t n)
{
	(void)pthread_mutex_lock(&c->mu);
	(void)relay_append_locked(t, c, line, n, "", 0);
	(void)pthread_mutex_unlock(&c->mu);
}

static void
relay_ack(struct rthread *t, struct rconn *c, int refmsgid, const char *f,
    size_t len, const char *extra)
{
	const char *seq;
	size_t slen;
	char line[256];
	int n;

	if ((seq = relay_seq(f, len, &slen)) == NULL || slen > 128)
		return;
	n = snprintf(line, sizeof(line), "{\"msgid\":%d,\"refmsgid\":%d,"
	    "\"seq\":%.*s,\"errno\":0%s}\n", MSG_ACK, refmsgid, (int)slen, seq,
	    extra);
	relay_reply(t, c, line, (size_t)n);
}

static void
relay_error(struct rthread *t, struct rconn *c, int err, const char *msg)
{
	char line[256];
	int n;

	n = snprintf(line, sizeof(line), "{\"msgid\":%d,\"errno\":%d,"
	    "\"errmsg\":\"%s\"}\n", MSG_ERROR, err, msg);
	relay_reply(t, c, line, (size_t)n);
}

/* Forward frame f to user uid; 1 when queued. */
static int
relay_forward(struct rthread *t, uint32_t uid, const char *f, size_t len)
{
	struct rconn *d;
	int ok = 0;

	if (uid == 0 || uid >= t->rl->max_users ||
	    (d = atomic_load_explicit(&t->rl->byid[uid],
	    memory_order_acquire)) == NULL)
		return 0;
	(void)pthread_mutex_lock(&d->mu);
	if (!d->closed && d->uid == uid)
		ok = relay_append_locked(t, d, f, len, "\n", 1) == 0;
	(void)pthread_mutex_unlock(&d->mu);
	return ok;
}

static struct rgroup *
relay_group(struct relay *rl, long long gid)
{
	if (gid <= 0 || gid >= (long long)rl->max_groups)
		return NULL;
	return &rl->groups[gid];
}

/* --- frames ------------------------------------------------------------ */

static void
relay_frame(struct rthread *t, struct rconn *c, const char *f, size_t len)
{
	struct relay *rl = t->rl;
	struct rgroup *g;
	struct rconn *old;
	long long msgid, v;
	uint32_t i, n, *m;
	char line[128];
	int k;

	t->frames++;
	msgid = relay_int(f, len, KEY("\"msgid\""));
	switch (msgid) {
	case MSG_LOGIN:
		v = relay_int(f, len, KEY("\"id\""));
		if (v <= 0 || v >= (long long)rl->max_users) {
			k = snprintf(line, sizeof(line), "{\"msgid\":%d,"
			    "\"errno\":%d,\"errmsg\":\"id out of range\"}\n",
			    MSG_LOGIN_ACK, CERR_AUTH);
			relay_reply(t, c, line, (size_t)k);
			return;
		}
		(void)pthread_mutex_lock(&c->mu);
		c->uid = (uint32_t)v;
		(void)pthread_mutex_unlock(&c->mu);
		old = atomic_exchange(&rl->byid[v], c);
		(void)old;	/* a newer login takes the id over */
		k = snprintf(line, sizeof(line), "{\"msgid\":%d,\"errno\":0,"
		    "\"id\":%lld}\n", MSG_LOGIN_ACK, v);
		relay_reply(t, c, line, (size_t)k);
		return;
	case MSG_ONE_CHAT:
		if (c->uid == 0) {
			relay_error(t, c, CERR_NOT_LOGGED_IN, "log in first");
			return;
		}
		v = relay_int(f, len, KEY("\"toid\""));
		if (v > 0 && relay_forward(t, (uint32_t)v, f, len))
			t->forwarded++;
		else
			t->dropped++;
		relay_ack(t, c, MSG_ONE_CHAT, f, len,
		    ",\"status\":\"delivered\"");
		return;
	case MSG_ADD_GROUP:
		if (c->uid == 0 || (g = relay_group(rl,
		    relay_int(f, len, KEY("\"groupid\"")))) == NULL) {
			relay_error(t, c, CERR_NO_GROUP, "no such group");
			return;
		}
		(void)pthread_mutex_lock(&g->mu);
		if (g->n == g->cap) {
			g->cap = g->cap ? g->cap * 2 : 16;
			if ((g->uids = realloc(g->uids, g->cap *
			    sizeof(*g->uids))) == NULL)
				fatal("out of memory");
		}
		g->uids[g->n++] = c->uid;
		(void)pthread_mutex_unlock(&g->mu);
		relay_ack(t, c, MSG_ADD_GROUP, f, len, "");
		return;
	case MSG_GROUP_CHAT:
		if (c->uid == 0 || (g = relay_group(rl,
		    relay_int(f, len, KEY("\"groupid\"")))) == NULL) {
			relay_error(t, c, CERR_NO_GROUP, "no such group");
			return;
		}
		/* Members only ever grow; read them under the lock. */
		(void)pthread_mutex_lock(&g->mu);
		n = g->n;
		m = g->uids;
		for (i = 0; i < n; i++) {
			if (m[i] == c->uid)
				continue;
			if (relay_forward(t, m[i], f, len))
				t->forwarded++;
			else
				t->dropped++;
		}
		(void)pthread_mutex_unlock(&g->mu);
		relay_ack(t, c, MSG_GROUP_CHAT, f, len,
		    ",\"status\":\"delivered\"");
		return;
	case MSG_LOGINOUT:
		if (c->uid != 0) {
			old = c;
			(void)atomic_compare_exchange_strong(
			    &rl->byid[c->uid], &old, NULL);
			(void)pthread_mutex_lock(&c->mu);
			c->uid = 0;
			(void)pthread_mutex_unlock(&c->mu);
		}
		relay_ack(t, c, MSG_LOGINOUT, f, len, "");
		return;
	case MSG_PING:
		relay_ack(t, c, MSG_PING, f, len, "");
		return;
	default:
		relay_error(t, c, CERR_UNKNOWN_MSGID, "unknown msgid");
		return;
	}
}

/* --- connections --------------------------------------------------------- */

static void
relay_close(struct rthread *t, struct rconn *c)
{
	struct rconn *self = c;

	if (c->uid != 0)
		(void)atomic_compare_exchange_strong(&t->rl->byid[c->uid],
		    &self, NULL);
	(void)pthread_mutex_lock(&c->mu);
	c->closed = 1;
	c->uid = 0;
	(void)close(c->fd);	/* leaves the epoll set */
	c->fd = -1;
	c->out_off = c->out_len = 0;
	(void)pthread_mutex_unlock(&c->mu);
	free(c->in);
	c->in = NULL;
	c->in_len = c->in_cap = 0;
	c->free_next = t->free;
	t->free = c;
}

static void
relay_accept(struct rthread *t)
{
	struct rconn *c;
	int i, fd, one = 1;

	for (i = 0; i < RELAY_ACCEPTS; i++) {
		fd = accept4(t->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE)
				(void)fprintf(stderr, "chat-relay: accept: "
				    "%s\n", strerror(errno));
			return;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		if ((c = t->free) != NULL)
			t->free = c->free_next;
		else {
			if ((c = calloc(1, sizeof(*c))) == NULL)
				fatal("out of memory");
			(void)pthread_mutex_init(&c->mu, NULL);
		}
		(void)pthread_mutex_lock(&c->mu);
		c->fd = fd;
		c->epfd = t->epfd;
		c->closed = 0;
		c->uid = 0;
		c->want_out = 0;
		c->out_off = c->out_len = 0;
		(void)pthread_mutex_unlock(&c->mu);
		frame_init(&c->fr);
		relay_epoll(c, EPOLL_CTL_ADD);
	}
}

/* Hand up every whole frame of buf; the bytes consumed, or -1 to close. */
static long
relay_frames(struct rthread *t, struct rconn *c, const char *buf,
    size_t len)
{
	size_t start, flen;
	int rc;

	for (;;) {
		rc = frame_next(&c->fr, buf, len, t->rl->max_frame, &start,
		    &flen);
		if (rc == FRAME_NONE)
			return (long)frame_consumable(&c->fr);
		if (rc != FRAME_OK) {
			relay_error(t, c, rc == FRAME_TOO_LARGE ?
			    CERR_TOO_LARGE : CERR_FRAMING, rc ==
			    FRAME_TOO_LARGE ? "frame too large" :
			    "bad framing");
			return -1;
		}
		relay_frame(t, c, buf + start, flen);
	}
}

static void
relay_readable(struct rthread *t, struct rconn *c)
{
	const char *buf;
	size_t len, rest;
	ssize_t n;
	long used;
	int i;

	for (i = 0; i < RELAY_READS_PER_EVENT; i++) {
		if (c->in_len > 0) {
			if (c->in_cap - c->in_len < RELAY_READ_CHUNK) {
				char *nb = realloc(c->in, c->in_len +
				    RELAY_READ_CHUNK);

				if (nb == NULL)
					fatal("out of memory");
				c->in = nb;
				c->in_cap = c->in_len + RELAY_READ_CHUNK;
			}
			n = read(c->fd, c->in + c->in_len, RELAY_READ_CHUNK);
			if (n > 0)
				c->in_len += (size_t)n;
			buf = c->in;
			len = c->in_len;
		} else {
			n = read(c->fd, t->rbuf, RELAY_READ_CHUNK);
			buf = t->rbuf;
			len = n > 0 ? (size_t)n : 0;
		}
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
			relay_close(t, c);
			return;
		}
		if (n == -1)
			return;
		if ((used = relay_frames(t, c, buf, len)) < 0) {
			relay_flush_dirty(t);
			relay_close(t, c);
			return;
		}
		/* Keep the unfinished frame in the connection. */
		frame_shift(&c->fr, (size_t)used);
		rest = len - (size_t)used;
		if (buf == c->in) {
			memmove(c->in, c->in + used, rest);
			c->in_len = rest;
		} else if (rest > 0) {
			if (c->in_cap < rest) {
				char *nb = realloc(c->in, rest);

				if (nb == NULL)
					fatal("out of memory");
				c->in = nb;
				c->in_cap = rest;
			}
			memcpy(c->in, buf + used, rest);
			c->in_len = rest;
		}
		if (c->in_len == 0 && c->in != NULL) {
			free(c->in);
			c->in = NULL;
			c->in_cap = 0;
		}
		if ((size_t)n < RELAY_READ_CHUNK)
			return;
	}
}

static void *
relay_thread(void *arg)
{
	struct rthread *t = arg;
	struct epoll_event evs[RELAY_EVENTS];
	struct rconn *c;
	int i, n;

	for (;;) {
		n = epoll_wait(t->epfd, evs, RELAY_EVENTS, -1);
		if (n == -1 && errno != EINTR)
			fatal("epoll_wait");
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL) {
				relay_accept(t);
				continue;
			}
			c = evs[i].data.ptr;
			if (c->fd == -1)
				continue;
			if (evs[i].events & EPOLLOUT) {
				(void)pthread_mutex_lock(&c->mu);
				relay_write_locked(c);
				(void)pthread_mutex_unlock(&c->mu);
			}
			if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP |
			    EPOLLERR))
				relay_readable(t, c);
		}
		/* One write per connection per iteration: the batching a
		 * loop gets for free. */
		relay_flush_dirty(t);
	}
	return NULL;
}

static int
relay_listen(const struct sockaddr_in *addr)
{
	int fd, one = 1;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		fatal("socket");
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1)
		fatal("SO_REUSEPORT");
	if (bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) == -1)
		fatal("bind");
	if (listen(fd, 4096) == -1)
		fatal("listen");
	return fd;
}

static void __attribute__((noreturn))
usage(int status)
{
	(void)fprintf(status ? stderr : stdout,
	    "usage: chat-relay [-l addr:port] [-t threads] [-m max_frame] "
	    "[-o max_output]\n"
	    "                  [-u max_users] [-g max_groups] "
	    "[-T seconds]\n");
	exit(status);
}

static long
relay_num(const char *name, const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max) {
		errno = 0;
		fatal("-%s: \"%s\" is not in %ld..%ld", name, s, min, max);
	}
	return v;
}

int
main(int argc, char **argv)
{
	static struct relay rl;
	struct epoll_event ev;
	struct rthread *t;
	char addr[64], *colon;
	sigset_t set;
	uint64_t frames = 0, fwd = 0, drop = 0;
	long lifetime = 0, cores;
	int ch, i, sig;

	(void)snprintf(addr, sizeof(addr), "127.0.0.1:6100");
	cores = sysconf(_SC_NPROCESSORS_ONLN);
	rl.nthreads = cores > 0 ? (int)cores : 1;
	rl.max_frame = RELAY_DEF_MAX_FRAME;
	rl.max_output = RELAY_DEF_MAX_OUTPUT;
	rl.max_users = RELAY_DEF_MAX_USERS;
	rl.max_groups = RELAY_DEF_MAX_GROUPS;
	while ((ch = getopt(argc, argv, "l:t:m:o:u:g:T:h")) != -1) {
		switch (ch) {
		case 'l':
			(void)snprintf(addr, sizeof(addr), "%s", optarg);
			break;
		case 't':
			rl.nthreads = (int)relay_num("t", optarg, 1,
			    RELAY_MAX_THREADS);
			break;
		case 'm':
			rl.max_frame = (size_t)relay_num("m", optarg, 1024,
			    16777216);
			break;
		case 'o':
			rl.max_output = (size_t)relay_num("o", optarg, 65536,
			    268435456);
			break;
		case 'u':
			rl.max_users = (uint32_t)relay_num("u", optarg, 16,
			    1L << 30);
			break;
		case 'g':
			rl.max_groups = (uint32_t)relay_num("g", optarg, 16,
			    1L << 26);
			break;
		case 'T':
			lifetime = relay_num("T", optarg, 1, 7 * 86400);
			break;
		case 'h':
			usage(0);
		default:
			usage(2);
		}
	}
	if (optind != argc)
		usage(2);
	if ((colon = strrchr(addr, ':')) == NULL)
		usage(2);
	*colon = '\0';
	rl.addr.sin_family = AF_INET;
	rl.addr.sin_port = htons((uint16_t)relay_num("l", colon + 1, 1,
	    65535));
	if (inet_pton(AF_INET, addr, &rl.addr.sin_addr) != 1) {
		errno = 0;
		fatal("-l: \"%s\" is not an IPv4 address", addr);
	}
	/* Untouched pages of these cost nothing. */
	if ((rl.byid = calloc(rl.max_users, sizeof(*rl.byid))) == NULL ||
	    (rl.groups = calloc(rl.max_groups, sizeof(*rl.groups))) == NULL)
		fatal("out of memory");
	for (i = 0; i < (int)rl.max_groups; i++)
		(void)pthread_mutex_init(&rl.groups[i].mu, NULL);

	/* Signals go to the main thread's sigwait only. */
	(void)sigemptyset(&set);
	(void)sigaddset(&set, SIGTERM);
	(void)sigaddset(&set, SIGINT);
	(void)sigaddset(&set, SIGALRM);
	(void)pthread_sigmask(SIG_BLOCK, &set, NULL);
	(void)signal(SIGPIPE, SIG_IGN);

	for (i = 0; i < rl.nthreads; i++) {
		t = &rl.th[i];
		t->rl = &rl;
		if ((t->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
			fatal("epoll_create1");
		if ((t->rbuf = malloc(RELAY_READ_CHUNK)) == NULL)
			fatal("out of memory");
		t->lfd = relay_listen(&rl.addr);
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.ptr = NULL;
		if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->lfd, &ev) == -1)
			fatal("epoll_ctl");
	}
	for (i = 0; i < rl.nthreads; i++)
		if (pthread_create(&rl.th[i].tid, NULL, relay_thread,
		    &rl.th[i]) != 0)
			fatal("pthread_create");
	(void)fprintf(stderr, "chat-relay: %d thread(s) on %s:%s\n",
	    rl.nthreads, addr, colon + 1);
	if (lifetime > 0)
		(void)alarm((unsigned)lifetime);
	if (sigwait(&set, &sig) != 0)
		sig = 0;
	/* Counters are read racily: a summary, not an invariant. */
	for (i = 0; i < rl.nthreads; i++) {
		frames += rl.th[i].frames;
		fwd += rl.th[i].forwarded;
		drop += rl.th[i].dropped;
	}
	(void)fprintf(stderr, "chat-relay: %s: %llu frames in, %llu "
	    "forwarded, %llu dropped\n", sig == SIGALRM ? "lifetime over "
	    "(-T)" : "stopping", (unsigned long long)frames,
	    (unsigned long long)fwd, (unsigned long long)drop);
	return 0;
}
