/*
 * bus.c - the hiredis async adapter for a worker's epoll loop, and the
 * cluster operations of bus.h built on it.
 *
 * hiredis asks for read/write interest through the ev hooks; the adapter
 * keeps the epoll registration of the link's socket in step.  When a link
 * drops, hiredis calls every pending callback with a NULL reply and frees
 * the context; the link is then re-created by bus_tick after a backoff
 * (1, 2, 4 ... redis_retry_max seconds).
 *
 * Every command of the publisher is a struct bus_cmd that keeps its own
 * arguments until its reply, so that a script command Redis answers with
 * NOSCRIPT can be sent again (with the script's text) instead of being
 * lost.  The scripts of cluster.h are loaded (SCRIPT LOAD) on every
 * connect and run by digest (EVALSHA) once the digest is known.  Replies
 * come in the order of the commands, and so must the commands' effects
 * (a release after the refresh of the same claim, one sender's messages
 * in order): while commands sent by digest before a NOSCRIPT are still
 * unanswered, new commands wait in a queue behind their resends.
 *
 * A Redis that stops answering without closing the connection (stopped,
 * or stuck in a long command) is watched for from bus_tick: the publisher
 * sends a PING whenever none is in flight, and when one has waited
 * redis_timeout with nothing read from Redis meanwhile the publisher is
 * "stalled": bus_up() says no, so new logins are refused and messages for
 * other hosts stored, as when Redis is down.  The commands already sent
 * keep waiting on the same connection, since Redis may still run them
 * (failing them would store messages it later delivers too); the first
 * byte Redis sends ends the stall.  A peer host that is gone is found by
 * the kernel (TCP keepalive and TCP_USER_TIMEOUT), a connect that does
 * not complete by redis_timeout.
 *
 * Claims are renewed in batches of CLUSTER_REFRESH_BATCH, one batch in
 * flight at a time, the next sent from the reply to the last: a round over
 * every user of the worker starts every presence_ttl / 3 seconds and
 * leaves at most one batch in hiredis's buffers.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <sodium.h>

#include "bus.h"
#include "cluster.h"
#include "conn.h"
#include "deliver.h"
#include "groupcache.h"
#include "handler.h"
#include "log.h"
#include "monotime.h"
#include "worker.h"

/* TCP links: a Redis host that stops acknowledging is given up after
 * about BUS_KEEPIDLE + BUS_KEEPINTVL * BUS_KEEPCNT seconds idle, or
 * BUS_USER_TIMEOUT_MS with data unacknowledged. */
#define BUS_KEEPIDLE		10
#define BUS_KEEPINTVL		5
#define BUS_KEEPCNT		3
#define BUS_USER_TIMEOUT_MS	30000

struct bus_link {
	struct bus *bus;
	int id;			/* BUS_SUB / BUS_PUB */
	redisAsyncContext *ac;	/* NULL while down */
	int fd;
	uint32_t events;	/* registered with epoll */
	int connected;
	int ever_connected;
	int backoff;		/* seconds to the next attempt */
	time_t next_attempt;
	uint64_t connect_ms;	/* when the connect started */
	/* The publisher's: */
	uint64_t rx_ms;		/* when Redis last sent anything */
	uint64_t probe_ms;	/* its PING in flight since, or 0 */
};

/* The scripts the publisher runs, and their text. */
enum { LUA_CLAIM, LUA_RELEASE, LUA_PUBLISH, LUA_REFRESH, LUA_COUNT };

static const char *const lua_text[LUA_COUNT] = {
	CLUSTER_LUA_CLAIM, CLUSTER_LUA_RELEASE, CLUSTER_LUA_PUBLISH,
	CLUSTER_LUA_REFRESH
};

struct bus_cmd;
/* A command's outcome: reply is NULL when the link failed. */
typedef void (*bus_cmd_fn)(struct bus *, struct bus_cmd *,
    const redisReply *);

struct bus_cmd {
	struct bus_cmd *next;	/* in the queue of held commands */
	int lua;		/* LUA_*, or -1 for a plain command */
	int by_sha;		/* this send is an EVALSHA */
	bus_cmd_fn done;	/* NULL when nobody waits for the reply */
	/* The caller's, for done. */
	union {
		bus_claim_fn claim;
		bus_publish_fn publish;
		bus_done_fn released;
	} fn;
	void *arg;
	size_t n;		/* refresh: the sessions of the batch;
				 * a group announcement: its receivers */
	uint32_t *uids;
	uint64_t *tokens;
	/* Arguments: argv[0] and argv[1] are left for "EVAL[SHA]" and the
	 * script (text or digest); a plain command starts at argv[2]. */
	int argc, argmax;
	const char **argv;
	size_t *argvlen;
	char *data;
	size_t dlen, dmax;
};

struct bus {
	struct worker *w;
	int closing;
	struct bus_link link[2];
	uint64_t stalled_ms;	/* stalled: when its unanswered PING was
				 * sent; else 0 */
	/* The publisher's scripts: digests ("" until SCRIPT LOAD answered on
	 * this connection). */
	char *lua[LUA_COUNT];	/* this worker's texts of the scripts */
	char sha[LUA_COUNT][CLUSTER_SHA_LEN];
	int loading;		/* SCRIPT LOADs unanswered */
	long sha_pending;	/* EVALSHAs unanswered */
	int holding;		/* a NOSCRIPT came: hold new commands until
				 * sha_pending is 0 */
	struct bus_cmd *held, **held_tail;
	size_t inflight;	/* commands taken and not finished yet (sent,
				 * resent or held) */
	/* Claim renewal. */
	time_t next_refresh;	/* when the next round starts */
	int refreshing;		/* a round is going on */
	int refresh_busy;	/* its batch is in flight */
	int refresh_again;	/* the next round fell due meanwhile */
	int refresh_late_logged;
	size_t refresh_it;	/* umap iterator of the round */
	const void *refresh_slots; /* the map as the round found it */
	size_t refresh_cap;
	struct umap hints;	/* uids owed a pull hint while the publisher
				 * was down */
	struct umap groups_owed; /* group ids whose change no other host
				 * has been told of: announced when the
				 * publisher is back */
	char groups_channel[CLUSTER_KEY_MAX];
};

/* --- epoll adapter ------------------------------------------------------ */

static void
link_update(struct bus_link *l, uint32_t events)
{
	struct epoll_event ev;
	int op;

	if (events == l->events || l->fd < 0)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.u64 = worker_bus_tag(l->id);
	op = l->events == 0 ? EPOLL_CTL_ADD : events == 0 ? EPOLL_CTL_DEL :
	    EPOLL_CTL_MOD;
	if (epoll_ctl(l->bus->w->peer_epfd, op, l->fd, &ev) == -1)
		log_warn("%s: epoll_ctl", __func__);
	l->events = events;
}

static void
ev_add_read(void *p)
{
	struct bus_link *l = p;

	link_update(l, l->events | EPOLLIN);
}

static void
ev_del_read(void *p)
{
	struct bus_link *l = p;

	link_update(l, l->events & ~(uint32_t)EPOLLIN);
}

static void
ev_add_write(void *p)
{
	struct bus_link *l = p;

	link_update(l, l->events | EPOLLOUT);
}

static void
ev_del_write(void *p)
{
	struct bus_link *l = p;

	link_update(l, l->events & ~(uint32_t)EPOLLOUT);
}

/* hiredis is freeing the context: forget it. */
static void
ev_cleanup(void *p)
{
	struct bus_link *l = p;

	link_update(l, 0);
	l->fd = -1;
	l->ac = NULL;
	l->connected = 0;
}

/* Bytes Redis has sent that are not read yet (0 when unknown). */
static int
link_pending(const struct bus_link *l)
{
	int n = 0;

	if (l->fd < 0 || ioctl(l->fd, FIONREAD, &n) == -1)
		return 0;
	return n;
}

static void stall_end(struct bus *);

void
bus_event(struct worker *w, int id, uint32_t events)
{
	struct bus_link *l;

	if (w->bus == NULL)
		return;
	l = &w->bus->link[id];
	/* Redis sent something: the publisher is not stalled (its
	 * replies are read only here). */
	if (id == BUS_PUB && l->ac != NULL && (events & EPOLLIN)) {
		l->rx_ms = monotime_ms();
		if (w->bus->stalled_ms != 0 && link_pending(l) > 0)
			stall_end(w->bus);
	}
	if (l->ac != NULL && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		redisAsyncHandleRead(l->ac);
	if (l->ac != NULL && (events & EPOLLOUT))
		redisAsyncHandleWrite(l->ac);
}

/* --- links -------------------------------------------------------------- */

static const char *const link_names[] = { "subscriber", "publisher" };

static void
link_down(struct bus_link *l, const char *why)
{
	time_t now = time(NULL);

	if (l->bus->closing)
		return;
	/* The first failure of a run is a warning, the rest debug. */
	if (l->connected || l->backoff == 0)
		log_warnx("redis %s: %s; retrying (redis_retry_max = %d s)",
		    link_names[l->id], why,
		    l->bus->w->conf->redis_retry_max);
	else
		log_debug("redis %s: %s; retrying", link_names[l->id], why);
	l->connected = 0;
	l->probe_ms = 0;
	if (l->id == BUS_PUB)
		l->bus->stalled_ms = 0;
	l->backoff = l->backoff == 0 ? 1 : l->backoff * 2;
	if (l->backoff > l->bus->w->conf->redis_retry_max)
		l->backoff = l->bus->w->conf->redis_retry_max;
	l->next_attempt = now + l->backoff;
}

static void bus_on_message(redisAsyncContext *, void *, void *);
static void script_load_all(struct bus *);
static void refresh_start(struct bus *);
static void cmd_drain_held(struct bus *);
static void owed_resend(struct bus *);

/* (Re)subscribe everything this worker needs. */
static void
sub_restore(struct bus *b)
{
	struct worker *w = b->w;
	size_t it = 0;
	uint32_t uid;
	void *val;

	(void)redisAsyncCommand(b->link[BUS_SUB].ac, bus_on_message, NULL,
	    "SUBSCRIBE %s", b->groups_channel);
	/* One worker per host hears of expired claims (every host does,
	 * and one of them tells the friends: CLUSTER_LUA_GONE). */
	if (w->slot == 0)
		(void)redisAsyncCommand(b->link[BUS_SUB].ac, bus_on_message,
		    NULL, "SUBSCRIBE %s", CLUSTER_CHANNEL_EXPIRED);
	while (umap_next(&w->online, &it, &uid, &val))
		bus_subscribe(w, uid);
}

static void
link_on_connect(const redisAsyncContext *ac, int status)
{
	struct bus_link *l = ac->ev.data;
	struct bus *b = l->bus;
	struct worker *w = b->w;
	int again;

	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback. */
		link_down(l, ac->errstr);
		return;
	}
	again = l->ever_connected;
	l->connected = 1;
	l->rx_ms = monotime_ms();
	l->probe_ms = 0;
	l->ever_connected = 1;
	l->backoff = 0;
	log_info("redis %s connected", link_names[l->id]);
	if (l->id == BUS_PUB) {
		/* A new connection, perhaps to a new Redis: no script is
		 * known to be loaded.  Load them, re-create this worker's
		 * claims (Redis may have restarted), and send the pull hints
		 * and group announcements owed since it went down. */
		cmd_drain_held(b);
		memset(b->sha, 0, sizeof(b->sha));
		b->loading = 0;
		b->sha_pending = 0;
		script_load_all(b);
		b->refreshing = 0;
		b->refresh_busy = 0;
		refresh_start(b);
		owed_resend(b);
		return;
	}
	/* Group changes announced while we were not subscribed are lost to
	 * us: forget every cached group.  (Each user's pull of what was
	 * stored meanwhile follows its SUBSCRIBE confirmation.) */
	if (again)
		groupcache_clear(&w->groups);
}

static void
link_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct bus_link *l = ac->ev.data;

	link_down(l, status == REDIS_OK ? "disconnected" : ac->errstr);
}

/* Let the kernel find a Redis host that is gone (best effort). */
static void
link_keepalive(int fd)
{
	int on = 1, idle = BUS_KEEPIDLE, intvl = BUS_KEEPINTVL;
	int cnt = BUS_KEEPCNT;
	unsigned int user = BUS_USER_TIMEOUT_MS;

	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) == -1 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle,
	    sizeof(idle)) == -1 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl,
	    sizeof(intvl)) == -1 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) == -1 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user,
	    sizeof(user)) == -1)
		log_warn("redis: setsockopt keepalive");
}

static void
link_connect(struct bus *b, int id)
{
	const struct conf *c = b->w->conf;
	struct bus_link *l = &b->link[id];
	redisAsyncContext *ac;

	ac = c->redis_socket[0] != '\0' ?
	    redisAsyncConnectUnix(c->redis_socket) :
	    redisAsyncConnect(c->redis_host, c->redis_port);
	if (ac == NULL || ac->err) {
		link_down(l, ac != NULL ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		return;
	}
	l->ac = ac;
	l->fd = ac->c.fd;
	l->events = 0;
	l->connect_ms = monotime_ms();
	if (c->redis_socket[0] == '\0')
		link_keepalive(l->fd);
	ac->data = b;
	ac->ev.data = l;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	(void)redisAsyncSetConnectCallback(ac, link_on_connect);
	(void)redisAsyncSetDisconnectCallback(ac, link_on_disconnect);
	/* The connect completes on the first writable event; the first
	 * commands are queued meanwhile. */
	ev_add_read(l);
	ev_add_write(l);
	if (id == BUS_SUB)
		sub_restore(b);
}

struct bus *
bus_create(struct worker *w)
{
	struct bus *b;
	uint64_t tag;
	size_t len;
	int i;

	if (!conf_redis_enabled(w->conf))
		return NULL;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		fatalx("%s: out of memory", __func__);
	b->w = w;
	for (i = 0; i < 2; i++) {
		b->link[i].bus = b;
		b->link[i].id = i;
		b->link[i].fd = -1;
	}
	cluster_channel_groups(w->conf, b->groups_channel,
	    sizeof(b->groups_channel));
	b->held_tail = &b->held;
	/*
	 * Each worker runs scripts of its own: the text begins with a
	 * comment naming a random tag, so no other client's SCRIPT LOAD gives
	 * Redis this worker's digests.  After SCRIPT FLUSH, then, every
	 * EVALSHA this worker sent before it saw the NOSCRIPT fails alike and
	 * is resent in its place, none runs ahead of an earlier one (which
	 * would reorder one sender's messages).
	 */
	randombytes_buf(&tag, sizeof(tag));
	for (i = 0; i < LUA_COUNT; i++) {
		len = strlen(lua_text[i]) + 64;
		if ((b->lua[i] = malloc(len)) == NULL)
			fatalx("%s: out of memory", __func__);
		(void)snprintf(b->lua[i], len, "-- chatd worker %016llx\n%s",
		    (unsigned long long)tag, lua_text[i]);
	}
	umap_init(&b->hints);
	umap_init(&b->groups_owed);
	return b;
}

void
bus_destroy(struct bus *b)
{
	int i;

	if (b == NULL)
		return;
	b->closing = 1;
	for (i = 0; i < 2; i++) {
		if (b->link[i].ac != NULL) {
			/* Pending callbacks run now with NULL replies. */
			b->link[i].connected = 0;
			redisAsyncFree(b->link[i].ac);
		}
	}
	cmd_drain_held(b);
	if (b->groups_owed.live > 0)
		log_warnx("%zu group change(s) not announced to the other "
		    "hosts (Redis was down); their caches keep the old "
		    "members until their next reconnect", b->groups_owed.live);
	umap_free(&b->hints);
	umap_free(&b->groups_owed);
	for (i = 0; i < LUA_COUNT; i++)
		free(b->lua[i]);
	free(b);
}

int
bus_up(const struct bus *b)
{
	return b != NULL && b->link[BUS_PUB].connected && b->stalled_ms == 0;
}

int
bus_busy(const struct bus *b)
{
	return b != NULL && b->inflight > 0;
}

/* --- publisher commands ------------------------------------------------- */

/*
 * A command with room for nargs arguments of dmax bytes in all, and for a
 * refresh batch of nsess sessions; one allocation, freed after its reply.
 */
static struct bus_cmd *
cmd_new(int lua, int nargs, size_t dmax, size_t nsess)
{
	struct bus_cmd *c;
	size_t slots = (size_t)nargs + 2, size;
	char *p;

	size = sizeof(*c) + slots * (sizeof(char *) + sizeof(size_t)) +
	    nsess * (sizeof(uint64_t) + sizeof(uint32_t)) + dmax;
	if ((c = malloc(size)) == NULL)
		fatalx("%s: out of memory", __func__);
	memset(c, 0, sizeof(*c));
	c->lua = lua;
	c->argmax = nargs;
	p = (char *)(c + 1);
	/* Widest members first: every part stays aligned. */
	c->tokens = (uint64_t *)(void *)p;
	p += nsess * sizeof(uint64_t);
	c->argv = (const char **)(void *)p;
	p += slots * sizeof(char *);
	c->argvlen = (size_t *)(void *)p;
	p += slots * sizeof(size_t);
	c->uids = (uint32_t *)(void *)p;
	p += nsess * sizeof(uint32_t);
	c->data = p;
	c->dmax = dmax;
	return c;
}

static void
cmd_arg(struct bus_cmd *c, const char *s, size_t len)
{
	if (c->argc == c->argmax || len > c->dmax - c->dlen)
		fatalx("%s: command arguments overflow", __func__);
	memcpy(c->data + c->dlen, s, len);
	c->argv[2 + c->argc] = c->data + c->dlen;
	c->argvlen[2 + c->argc] = len;
	c->argc++;
	c->dlen += len;
}

static void
cmd_argstr(struct bus_cmd *c, const char *s)
{
	cmd_arg(c, s, strlen(s));
}

static void
cmd_argnum(struct bus_cmd *c, long v)
{
	char num[24];

	(void)snprintf(num, sizeof(num), "%ld", v);
	cmd_argstr(c, num);
}

static void cmd_reply(redisAsyncContext *, void *, void *);

/* Hand c to hiredis: by digest when the script is loaded.  0, or -1 when
 * the link cannot take it (c is then still the caller's). */
static int
cmd_write(struct bus *b, struct bus_cmd *c)
{
	redisAsyncContext *ac = b->link[BUS_PUB].ac;
	const char **argv = c->argv + 2;
	size_t *argvlen = c->argvlen + 2;
	int argc = c->argc;

	if (ac == NULL)
		return -1;
	c->by_sha = 0;
	if (c->lua >= 0) {
		c->by_sha = b->sha[c->lua][0] != '\0';
		argv -= 2;
		argvlen -= 2;
		argc += 2;
		argv[0] = c->by_sha ? "EVALSHA" : "EVAL";
		argvlen[0] = strlen(argv[0]);
		argv[1] = c->by_sha ? b->sha[c->lua] : b->lua[c->lua];
		argvlen[1] = strlen(argv[1]);
	}
	if (redisAsyncCommandArgv(ac, cmd_reply, c, argc, argv, argvlen) !=
	    REDIS_OK)
		return -1;
	if (c->by_sha)
		b->sha_pending++;
	return 0;
}

/* Send c, or queue it behind the resends of a NOSCRIPT.  0, or -1 when
 * the publisher is down (c is then still the caller's). */
static int
cmd_send(struct bus *b, struct bus_cmd *c)
{
	if (!bus_up(b))
		return -1;
	if (b->holding || b->held != NULL) {
		c->next = NULL;
		*b->held_tail = c;
		b->held_tail = &c->next;
	} else if (cmd_write(b, c) == -1)
		return -1;
	b->inflight++;
	return 0;
}

static void
cmd_finish(struct bus *b, struct bus_cmd *c, const redisReply *reply)
{
	b->inflight--;
	if (c->done != NULL)
		c->done(b, c, reply);
	free(c);
}

/* Fail every held command (the link they waited for is gone). */
static void
cmd_drain_held(struct bus *b)
{
	struct bus_cmd *c;

	b->holding = 0;
	while ((c = b->held) != NULL) {
		if ((b->held = c->next) == NULL)
			b->held_tail = &b->held;
		cmd_finish(b, c, NULL);
	}
}

/* Every EVALSHA sent before the NOSCRIPT is answered: send what waited. */
static void
cmd_release_held(struct bus *b)
{
	struct bus_cmd *c;

	if (!b->holding || b->sha_pending > 0)
		return;
	b->holding = 0;
	while (!b->holding && (c = b->held) != NULL) {
		if ((b->held = c->next) == NULL)
			b->held_tail = &b->held;
		if (cmd_write(b, c) == -1)
			cmd_finish(b, c, NULL);
	}
}

static void
script_loaded(redisAsyncContext *ac, void *r, void *privdata)
{
	struct bus *b = ac->data;
	redisReply *reply = r;
	int i = (int)(intptr_t)privdata;

	b->loading--;
	if (reply != NULL && reply->type == REDIS_REPLY_STRING &&
	    reply->len == CLUSTER_SHA_LEN - 1)
		memcpy(b->sha[i], reply->str, CLUSTER_SHA_LEN);
	else if (reply != NULL)
		log_warnx("redis publisher: SCRIPT LOAD: %s; running the "
		    "script by its text", reply->type == REDIS_REPLY_ERROR ?
		    reply->str : "unexpected reply");
}

/* SCRIPT LOAD every script (on connect, and when Redis lost them). */
static void
script_load_all(struct bus *b)
{
	int i;

	if (b->loading > 0)
		return;		/* the answers are on their way */
	for (i = 0; i < LUA_COUNT; i++)
		if (redisAsyncCommand(b->link[BUS_PUB].ac, script_loaded,
		    (void *)(intptr_t)i, "SCRIPT LOAD %s", b->lua[i]) ==
		    REDIS_OK)
			b->loading++;
}

static void
cmd_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct bus *b = ac->data;
	struct bus_cmd *c = privdata;
	redisReply *reply = r;

	if (c->by_sha) {
		b->sha_pending--;
		if (reply != NULL && reply->type == REDIS_REPLY_ERROR &&
		    strncmp(reply->str, "NOSCRIPT", 8) == 0) {
			/*
			 * Redis lost its scripts (SCRIPT FLUSH, or another
			 * server behind the same address): nothing ran.
			 * Load them again and resend this command with the
			 * text, now, so that it keeps its place before what
			 * was sent after it; new commands wait until every
			 * EVALSHA in flight is answered.
			 */
			if (!b->holding)
				log_warnx("redis publisher: scripts gone "
				    "(NOSCRIPT); loading them again");
			b->holding = 1;
			memset(b->sha, 0, sizeof(b->sha));
			script_load_all(b);
			if (cmd_write(b, c) == 0) {
				cmd_release_held(b);
				return;
			}
			reply = NULL;
		}
	}
	cmd_finish(b, c, reply);
	cmd_release_held(b);
}

/* --- claims ------------------------------------------------------------- */

static void
claim_done(struct bus *b, struct bus_cmd *c, const redisReply *reply)
{
	int result;

	if (reply == NULL || reply->type != REDIS_REPLY_INTEGER)
		result = BUS_DOWN;
	else if (reply->integer == 0)
		result = BUS_TAKEN;
	else
		result = BUS_CLAIMED;
	c->fn.claim(b->w, c->arg, result);
}

void
bus_claim(struct worker *w, uint32_t uid, uint64_t token, bus_claim_fn fn,
    void *arg)
{
	struct bus *b = w->bus;
	char key[CLUSTER_KEY_MAX], val[CLUSTER_KEY_MAX];
	char node[CLUSTER_KEY_MAX], gone[CLUSTER_KEY_MAX];
	struct bus_cmd *c;

	if (!bus_up(b)) {
		fn(w, arg, BUS_DOWN);
		return;
	}
	cluster_key_online(w->conf, uid, key, sizeof(key));
	cluster_key_gone(w->conf, uid, gone, sizeof(gone));
	cluster_claim_value(w->conf, token, val, sizeof(val));
	(void)snprintf(node, sizeof(node), "%s|", w->conf->node_id);
	c = cmd_new(LUA_CLAIM, 6, strlen(key) + strlen(gone) + strlen(val) +
	    strlen(node) + 32, 0);
	cmd_argstr(c, "2");
	cmd_argstr(c, key);
	cmd_argstr(c, gone);
	cmd_argstr(c, val);
	cmd_argnum(c, w->conf->presence_ttl);
	cmd_argstr(c, node);
	c->done = claim_done;
	c->fn.claim = fn;
	c->arg = arg;
	if (cmd_send(b, c) == -1) {
		free(c);
		fn(w, arg, BUS_DOWN);
	}
}

static void refresh_step(struct bus *);
static void refresh_start(struct bus *);

static void
refresh_done(struct bus *b, struct bus_cmd *c, const redisReply *reply)
{
	const redisReply *e;
	struct conn *conn;
	size_t i, back = 0;
	long long pos;

	b->refresh_busy = 0;
	if (reply == NULL) {
		/* The link dropped: the round starts again on connect. */
		b->refreshing = 0;
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY) {
		log_warnx("redis publisher: claim renewal of %zu user(s): %s",
		    c->n, reply->type == REDIS_REPLY_ERROR ? reply->str :
		    "unexpected reply");
		reply = NULL;
	}
	for (i = 0; reply != NULL && i < reply->elements; i++) {
		e = reply->element[i];
		if (e->type != REDIS_REPLY_INTEGER || (pos = e->integer) == 0 ||
		    (size_t)(pos < 0 ? -pos : pos) > c->n)
			continue;
		if (pos < 0) {
			/* Ours had expired (this worker stalled, or was cut
			 * off from Redis) and the friends were told
			 * "offline": tell them "online" again. */
			conn = umap_get(&b->w->online, c->uids[-pos - 1]);
			if (conn != NULL && conn->token == c->tokens[-pos - 1]) {
				session_back(b->w, conn);
				back++;
			}
			continue;
		}
		/* Another node holds the claim now (ours had expired): the
		 * user logged in there, so this session is stale. */
		conn = umap_get(&b->w->online, c->uids[pos - 1]);
		if (conn != NULL && conn->token == c->tokens[pos - 1]) {
			log_warnx("user %u: claimed by another node; ending "
			    "this session", conn->uid);
			conn_close(b->w, conn, "claimed by another node");
		}
	}
	b->w->stats->presence_renewed += back;
	if (back > 0)
		log_warnx("redis publisher: %zu claim(s) had expired and the "
		    "users' friends were told they went offline; renewed, "
		    "telling them \"online\" again", back);
	refresh_step(b);
}

/* Send the next batch of the round, or end the round. */
static void
refresh_step(struct bus *b)
{
	struct worker *w = b->w;
	const struct conf *cf = w->conf;
	char key[CLUSTER_KEY_MAX], val[CLUSTER_KEY_MAX];
	size_t kmax, vmax, n = 0, i;
	struct bus_cmd *c;
	uint32_t uid;
	void *v;

	if (b->refresh_busy)
		return;
	/* A map that was rebuilt (it grew) has its users elsewhere: go
	 * over it again from the start. */
	if (w->online.slots != b->refresh_slots ||
	    w->online.cap != b->refresh_cap) {
		b->refresh_it = 0;
		b->refresh_slots = w->online.slots;
		b->refresh_cap = w->online.cap;
	}
	cluster_key_online(cf, UINT32_MAX, key, sizeof(key));
	cluster_claim_value(cf, UINT64_MAX, val, sizeof(val));
	kmax = strlen(key);
	vmax = strlen(val);
	c = cmd_new(LUA_REFRESH, 2 + 2 * CLUSTER_REFRESH_BATCH,
	    32 + CLUSTER_REFRESH_BATCH * (kmax + vmax), CLUSTER_REFRESH_BATCH);
	while (n < CLUSTER_REFRESH_BATCH &&
	    umap_next(&w->online, &b->refresh_it, &uid, &v)) {
		struct conn *conn = v;

		if (conn->state != CONN_ONLINE)
			continue;
		c->uids[n] = uid;
		c->tokens[n] = conn->token;
		n++;
	}
	if (n == 0) {
		free(c);
		b->refreshing = 0;
		if (b->refresh_again) {
			b->refresh_again = 0;
			refresh_start(b);
		}
		return;
	}
	c->n = n;
	cmd_argnum(c, (long)n);
	for (i = 0; i < n; i++) {
		cluster_key_online(cf, c->uids[i], key, sizeof(key));
		cmd_argstr(c, key);
	}
	cmd_argnum(c, cf->presence_ttl);
	for (i = 0; i < n; i++) {
		cluster_claim_value(cf, c->tokens[i], val, sizeof(val));
		cmd_argstr(c, val);
	}
	c->done = refresh_done;
	if (cmd_send(b, c) == -1) {
		free(c);
		b->refreshing = 0;
		return;
	}
	b->refresh_busy = 1;
}

/* Start a round renewing the claim of every user of this worker. */
static void
refresh_start(struct bus *b)
{
	const struct conf *cf = b->w->conf;

	b->next_refresh = time(NULL) + (cf->presence_ttl + 2) / 3;
	if (!bus_up(b))
		return;
	if (b->refreshing) {
		/* The last round is not over yet: claims near the end of
		 * it are renewed later than every presence_ttl / 3. */
		if (!b->refresh_late_logged)
			log_warnx("renewing this worker's %zu claims takes "
			    "longer than presence_ttl / 3 (%d s); raise "
			    "presence_ttl", b->w->online.live,
			    (cf->presence_ttl + 2) / 3);
		b->refresh_late_logged = 1;
		b->refresh_again = 1;
		return;
	}
	b->refreshing = 1;
	b->refresh_it = 0;
	b->refresh_slots = b->w->online.slots;
	b->refresh_cap = b->w->online.cap;
	refresh_step(b);
}

/* The PING answered (a stall ended before, in bus_event), or the link
 * dropped. */
static void
probe_done(redisAsyncContext *ac, void *r, void *privdata)
{
	struct bus *b = ac->data;

	(void)r;
	(void)privdata;
	b->link[BUS_PUB].probe_ms = 0;
}

/* Redis answers the publisher again: send what new work skipped. */
static void
stall_end(struct bus *b)
{
	log_warnx("redis publisher: Redis answers again, %llu ms after the "
	    "PING it left unanswered",
	    (unsigned long long)(monotime_ms() - b->stalled_ms));
	b->stalled_ms = 0;
	refresh_start(b);
	owed_resend(b);
}

/* Every second, for a link that is not down: see the comment at the top. */
static void
link_watch(struct bus_link *l)
{
	struct bus *b = l->bus;
	uint64_t now = monotime_ms();
	uint64_t limit = (uint64_t)b->w->conf->redis_timeout * 1000;

	if (!l->connected) {
		if (now - l->connect_ms < limit)
			return;
		/* Not connected: hiredis calls no disconnect callback. */
		redisAsyncFree(l->ac);
		link_down(l, "connect timed out (redis_timeout)");
		return;
	}
	if (l->id != BUS_PUB)
		return;
	if (l->probe_ms == 0) {
		if (redisAsyncCommand(l->ac, probe_done, NULL, "PING") ==
		    REDIS_OK)
			l->probe_ms = now;
		return;
	}
	if (b->stalled_ms != 0 || now - l->probe_ms < limit ||
	    now - l->rx_ms < limit || link_pending(l) > 0)
		return;
	b->stalled_ms = l->probe_ms;	/* silent since, at least */
	log_warnx("redis publisher: no answer for %llu ms (redis_timeout = "
	    "%d s); refusing logins and storing messages for other hosts "
	    "until it answers, %zu command(s) waiting",
	    (unsigned long long)(now - l->probe_ms),
	    b->w->conf->redis_timeout, b->inflight);
}

void
bus_tick(struct worker *w)
{
	struct bus *b = w->bus;
	time_t now = w->now;
	int i;

	if (b == NULL)
		return;
	for (i = 0; i < 2; i++) {
		if (b->link[i].ac == NULL && now >= b->link[i].next_attempt)
			link_connect(b, i);
		else if (b->link[i].ac != NULL)
			link_watch(&b->link[i]);
	}
	if (now >= b->next_refresh)
		refresh_start(b);
}

void
bus_subscribe(struct worker *w, uint32_t uid)
{
	struct bus *b = w->bus;
	char ch[CLUSTER_KEY_MAX];

	if (b == NULL || b->link[BUS_SUB].ac == NULL)
		return;		/* sub_restore subscribes on reconnect */
	cluster_channel_user(w->conf, uid, ch, sizeof(ch));
	(void)redisAsyncCommand(b->link[BUS_SUB].ac, bus_on_message, NULL,
	    "SUBSCRIBE %s", ch);
}

static void
release_done(struct bus *b, struct bus_cmd *c, const redisReply *reply)
{
	if (c->fn.released != NULL)
		c->fn.released(b->w, c->arg, reply != NULL &&
		    reply->type == REDIS_REPLY_INTEGER);
}

int
bus_release(struct worker *w, uint32_t uid, uint64_t token, bus_done_fn fn,
    void *arg)
{
	struct bus *b = w->bus;
	char key[CLUSTER_KEY_MAX], val[CLUSTER_KEY_MAX];
	struct bus_cmd *c;

	if (b == NULL)
		return 0;
	if (b->link[BUS_SUB].ac != NULL) {
		cluster_channel_user(w->conf, uid, key, sizeof(key));
		(void)redisAsyncCommand(b->link[BUS_SUB].ac, bus_on_message,
		    NULL, "UNSUBSCRIBE %s", key);
	}
	if (bus_up(b)) {
		cluster_key_online(w->conf, uid, key, sizeof(key));
		cluster_claim_value(w->conf, token, val, sizeof(val));
		c = cmd_new(LUA_RELEASE, 3, strlen(key) + strlen(val) + 1, 0);
		cmd_argstr(c, "1");
		cmd_argstr(c, key);
		cmd_argstr(c, val);
		c->done = release_done;
		c->fn.released = fn;
		c->arg = arg;
		if (cmd_send(b, c) == 0)
			return fn != NULL;
		free(c);
	}
	/* While Redis is down the claim simply expires (presence_ttl). */
	return 0;
}

/* --- publish / receive -------------------------------------------------- */

static void
publish_done(struct bus *b, struct bus_cmd *c, const redisReply *reply)
{
	if (c->fn.publish != NULL)
		c->fn.publish(b->w, c->arg, reply != NULL &&
		    reply->type == REDIS_REPLY_INTEGER ?
		    (long)reply->integer : -1);
}

int
bus_publish(struct worker *w, uint32_t uid, const char *frame, size_t len,
    bus_publish_fn fn, void *arg)
{
	struct bus *b = w->bus;
	char ch[CLUSTER_KEY_MAX], key[CLUSTER_KEY_MAX];
	struct bus_cmd *c;
	size_t klen, chlen;

	if (!bus_up(b))
		return -1;
	cluster_channel_user(w->conf, uid, ch, sizeof(ch));
	cluster_key_online(w->conf, uid, key, sizeof(key));
	klen = strlen(key);
	chlen = strlen(ch);
	/* The frame is copied: a NOSCRIPT reply sends it again. */
	c = cmd_new(LUA_PUBLISH, 4, 1 + klen + chlen + len, 0);
	cmd_arg(c, "1", 1);
	cmd_arg(c, key, klen);
	cmd_arg(c, ch, chlen);
	cmd_arg(c, frame, len);
	c->done = publish_done;
	c->fn.publish = fn;
	c->arg = arg;
	if (cmd_send(b, c) == -1) {
		free(c);
		return -1;
	}
	return 0;
}

/* A pull hint's PUBLISH answered: one lost with the link is owed again. */
static void
hint_done(struct bus *b, struct bus_cmd *c, const redisReply *reply)
{
	if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
		(void)umap_put(&b->hints, (uint32_t)c->n, (void *)1);
}

/*
 * A plain PUBLISH, not the script that publishes only while the user is
 * claimed: just after Redis restarts, a host may have subscribed a user
 * again (and pulled) before its claims are renewed, and a hint dropped
 * then would leave what is stored next waiting for the next login.  A
 * hint nobody holds a session for costs a PUBLISH that reaches nobody.
 */
void
bus_hint_pull(struct worker *w, uint32_t uid)
{
	struct bus *b = w->bus;
	char ch[CLUSTER_KEY_MAX];
	struct bus_cmd *c;

	if (b == NULL)
		return;
	if (bus_up(b)) {
		cluster_channel_user(w->conf, uid, ch, sizeof(ch));
		c = cmd_new(-1, 3, strlen(ch) + sizeof(CLUSTER_PULL_HINT) +
		    16, 0);
		cmd_argstr(c, "PUBLISH");
		cmd_argstr(c, ch);
		cmd_argstr(c, CLUSTER_PULL_HINT);
		c->done = hint_done;
		c->n = uid;
		if (cmd_send(b, c) == 0)
			return;
		free(c);
	}
	/* Owed: sent when the publisher is back. */
	(void)umap_put(&b->hints, uid, (void *)1);
}

/*
 * A group change no other host was told of (Redis was down, or the link
 * failed under the PUBLISH): their caches keep the old members, with no
 * end, unless it is announced again.  The client has had its answer (the
 * change is committed); the announcement goes out when the publisher is
 * back, and again after that as long as it fails.
 */
static void
group_owe(struct bus *b, uint32_t gid)
{
	if (umap_get(&b->groups_owed, gid) == NULL && !b->closing)
		log_warnx("group %u: the change could not be announced to the "
		    "other hosts; announcing it when Redis is back", gid);
	(void)umap_put(&b->groups_owed, gid, (void *)1);
}

static void
owed_group_done(struct bus *b, struct bus_cmd *c, const redisReply *reply)
{
	if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
		group_owe(b, (uint32_t)c->n);
	else
		log_info("group %u: change announced to the other hosts "
		    "after Redis came back", (unsigned)c->n);
}

static struct bus_cmd *
group_cmd(struct bus *b, uint32_t gid, bus_cmd_fn done)
{
	struct bus_cmd *c;

	c = cmd_new(-1, 3, strlen(b->groups_channel) + 32, 0);
	cmd_argstr(c, "PUBLISH");
	cmd_argstr(c, b->groups_channel);
	cmd_argnum(c, (long)gid);
	c->done = done;
	c->n = gid;
	return c;
}

/* The publisher is back: send what was owed while it was down.  The maps
 * are taken first, since a send that fails owes again. */
static void
owed_resend(struct bus *b)
{
	struct umap hints = b->hints, groups = b->groups_owed;
	struct bus_cmd *c;
	size_t it = 0;
	uint32_t id;
	void *val;

	umap_init(&b->hints);
	umap_init(&b->groups_owed);
	while (umap_next(&hints, &it, &id, &val))
		bus_hint_pull(b->w, id);
	it = 0;
	while (umap_next(&groups, &it, &id, &val)) {
		c = group_cmd(b, id, owed_group_done);
		if (cmd_send(b, c) == -1) {
			free(c);
			group_owe(b, id);
		}
	}
	umap_free(&hints);
	umap_free(&groups);
}

/* The PING after a group announcement answered: see announce_done. */
static void
announce_flushed(struct bus *b, struct bus_cmd *c, const redisReply *reply)
{
	c->fn.publish(b->w, c->arg, reply != NULL &&
	    reply->type != REDIS_REPLY_ERROR ? (long)c->n : -1);
}

/*
 * The announcement's PUBLISH answered.  Redis has queued the message for
 * every subscriber, but it writes the publisher's reply first: another
 * host may not have the message yet when we have the reply, and a client
 * told now could send to the group there before that host drops its
 * cached copy.  Redis writes out all it has queued (as much as each
 * socket takes) before it reads more commands, so the answer to a PING
 * sent now comes after every subscriber has been sent the announcement.
 */
static void
announce_done(struct bus *b, struct bus_cmd *c, const redisReply *reply)
{
	struct bus_cmd *p;

	if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
		group_owe(b, (uint32_t)c->n);
		c->fn.publish(b->w, c->arg, -1);
		return;
	}
	p = cmd_new(-1, 1, 8, 0);
	cmd_argstr(p, "PING");
	p->done = announce_flushed;
	p->fn.publish = c->fn.publish;
	p->arg = c->arg;
	p->n = (size_t)reply->integer;
	if (cmd_send(b, p) == -1) {
		free(p);
		c->fn.publish(b->w, c->arg, -1);
	}
}

void
bus_group_changed(struct worker *w, uint32_t gid, bus_publish_fn fn,
    void *arg)
{
	struct bus *b = w->bus;
	struct bus_cmd *c;

	if (b == NULL) {
		fn(w, arg, 0);	/* one host: nobody else to tell */
		return;
	}
	if (!bus_up(b)) {
		group_owe(b, gid);
		fn(w, arg, -1);
		return;
	}
	c = group_cmd(b, gid, announce_done);
	c->fn.publish = fn;
	c->arg = arg;
	if (cmd_send(b, c) == -1) {
		free(c);
		group_owe(b, gid);
		fn(w, arg, -1);
	}
}

/* Every reply on the subscriber: confirmations and messages. */
static void
bus_on_message(redisAsyncContext *ac, void *r, void *privdata)
{
	struct bus *b = ac->data;
	redisReply *reply = r;
	const redisReply *ch, *msg;
	struct conn *c;
	uint32_t uid;

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements != 3 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    reply->element[1]->type != REDIS_REPLY_STRING)
		return;
	ch = reply->element[1];
	msg = reply->element[2];
	if (strcmp(reply->element[0]->str, "subscribe") == 0) {
		/* From now on PUBLISH reaches us; what was stored for this
		 * user before (a sender that found no subscriber) is pulled
		 * now, anything stored later comes with a pull hint. */
		if ((uid = cluster_channel_uid(b->w->conf, ch->str,
		    ch->len)) != 0 && (c = umap_get(&b->w->online, uid)) !=
		    NULL)
			session_reachable(b->w, c);
		return;
	}
	if (strcmp(reply->element[0]->str, "message") != 0 ||
	    msg->type != REDIS_REPLY_STRING)
		return;
	if (strcmp(ch->str, b->groups_channel) == 0) {
		groupcache_invalidate(&b->w->groups,
		    (uint32_t)strtoul(msg->str, NULL, 10));
		return;
	}
	if (strcmp(ch->str, CLUSTER_CHANNEL_EXPIRED) == 0) {
		/* Any key of the database expired: ours are the claims. */
		if ((uid = cluster_key_online_uid(b->w->conf, msg->str,
		    msg->len)) != 0)
			session_expired(b->w, uid);
		return;
	}
	if ((uid = cluster_channel_uid(b->w->conf, ch->str, ch->len)) == 0)
		return;
	if (msg->len == strlen(CLUSTER_PULL_HINT) &&
	    memcmp(msg->str, CLUSTER_PULL_HINT, msg->len) == 0) {
		if ((c = umap_get(&b->w->online, uid)) != NULL)
			session_pull_offline(b->w, c);
		return;
	}
	deliver_from_bus(b->w, uid, msg->str, msg->len);
}
