/*
 * bus.c - the hiredis async adapter for a worker's epoll loop, and the
 * cluster operations of bus.h built on it.
 *
 * hiredis asks for read/write interest through the ev hooks; the adapter
 * keeps the epoll registration of the link's socket in step.  When a link
 * drops, hiredis calls every pending callback with a NULL reply and frees
 * the context; the link is then re-created by bus_tick after a backoff
 * (1, 2, 4 ... redis_retry_max seconds).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "bus.h"
#include "cluster.h"
#include "conn.h"
#include "deliver.h"
#include "groupcache.h"
#include "handler.h"
#include "log.h"
#include "worker.h"

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
};

struct bus {
	struct worker *w;
	int closing;
	struct bus_link link[2];
	time_t next_refresh;
	struct umap hints;	/* uids owed a pull hint while the publisher
				 * was down */
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

void
bus_event(struct worker *w, int id, uint32_t events)
{
	struct bus_link *l;

	if (w->bus == NULL)
		return;
	l = &w->bus->link[id];
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
	if (l->connected || l->backoff == 0)
		log_warnx("redis %s: %s; retrying (redis_retry_max = %d s)",
		    link_names[l->id], why,
		    l->bus->w->conf->redis_retry_max);
	l->connected = 0;
	l->backoff = l->backoff == 0 ? 1 : l->backoff * 2;
	if (l->backoff > l->bus->w->conf->redis_retry_max)
		l->backoff = l->bus->w->conf->redis_retry_max;
	l->next_attempt = now + l->backoff;
}

static void bus_on_message(redisAsyncContext *, void *, void *);
static void bus_refresh(struct bus *);

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
	while (umap_next(&w->online, &it, &uid, &val))
		bus_subscribe(w, uid);
}

static void
link_on_connect(const redisAsyncContext *ac, int status)
{
	struct bus_link *l = ac->ev.data;
	struct bus *b = l->bus;
	struct worker *w = b->w;
	size_t it = 0;
	uint32_t uid;
	void *val;
	int again;

	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback. */
		link_down(l, ac->errstr);
		return;
	}
	again = l->ever_connected;
	l->connected = 1;
	l->ever_connected = 1;
	l->backoff = 0;
	log_info("redis %s connected", link_names[l->id]);
	if (l->id == BUS_PUB) {
		/* Re-create this worker's claims (Redis may have restarted),
		 * and send the pull hints owed since it went down. */
		bus_refresh(b);
		while (umap_next(&b->hints, &it, &uid, &val))
			bus_hint_pull(w, uid);
		umap_free(&b->hints);
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
	umap_init(&b->hints);
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
	umap_free(&b->hints);
	free(b);
}

int
bus_up(const struct bus *b)
{
	return b != NULL && b->link[BUS_PUB].connected;
}

/* --- claims ------------------------------------------------------------- */

struct claim_req {
	bus_claim_fn fn;
	void *arg;
};

static void
claim_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct bus *b = ac->data;
	struct claim_req *cr = privdata;
	redisReply *reply = r;
	int result;

	if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
		result = BUS_DOWN;
	else if (reply->type == REDIS_REPLY_NIL)
		result = BUS_TAKEN;
	else
		result = BUS_CLAIMED;
	cr->fn(b->w, cr->arg, result);
	free(cr);
}

void
bus_claim(struct worker *w, uint32_t uid, uint64_t token, bus_claim_fn fn,
    void *arg)
{
	struct bus *b = w->bus;
	char key[CLUSTER_KEY_MAX], val[CLUSTER_KEY_MAX];
	struct claim_req *cr;

	if (!bus_up(b)) {
		fn(w, arg, BUS_DOWN);
		return;
	}
	if ((cr = malloc(sizeof(*cr))) == NULL)
		fatalx("%s: out of memory", __func__);
	cr->fn = fn;
	cr->arg = arg;
	cluster_key_online(w->conf, uid, key, sizeof(key));
	cluster_claim_value(w->conf, token, val, sizeof(val));
	if (redisAsyncCommand(b->link[BUS_PUB].ac, claim_reply, cr,
	    "SET %s %s NX EX %d", key, val, w->conf->presence_ttl) !=
	    REDIS_OK) {
		free(cr);
		fn(w, arg, BUS_DOWN);
	}
}

static void
refresh_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct bus *b = ac->data;
	redisReply *reply = r;
	uint32_t uid = (uint32_t)(uintptr_t)privdata;
	struct conn *c;

	if (reply == NULL || reply->type != REDIS_REPLY_INTEGER ||
	    reply->integer != 0)
		return;
	/* Another node holds the claim now (ours had expired): the user
	 * logged in there, so this session is stale. */
	if ((c = umap_get(&b->w->online, uid)) != NULL) {
		log_warnx("user %u: claimed by another node; ending this "
		    "session", uid);
		conn_close(b->w, c, "claimed by another node");
	}
}

/* Renew the claim of every user of this worker. */
static void
bus_refresh(struct bus *b)
{
	struct worker *w = b->w;
	char key[CLUSTER_KEY_MAX], val[CLUSTER_KEY_MAX];
	size_t it = 0;
	uint32_t uid;
	void *v;

	b->next_refresh = time(NULL) + (w->conf->presence_ttl + 2) / 3;
	if (!bus_up(b))
		return;
	while (umap_next(&w->online, &it, &uid, &v)) {
		struct conn *c = v;

		if (c->state != CONN_ONLINE)
			continue;
		cluster_key_online(w->conf, uid, key, sizeof(key));
		cluster_claim_value(w->conf, c->token, val, sizeof(val));
		(void)redisAsyncCommand(b->link[BUS_PUB].ac, refresh_reply,
		    (void *)(uintptr_t)uid, "EVAL %s 1 %s %s %d",
		    CLUSTER_LUA_REFRESH, key, val, w->conf->presence_ttl);
	}
}

void
bus_tick(struct worker *w)
{
	struct bus *b = w->bus;
	time_t now = w->now;
	int i;

	if (b == NULL)
		return;
	for (i = 0; i < 2; i++)
		if (b->link[i].ac == NULL && now >= b->link[i].next_attempt)
			link_connect(b, i);
	if (now >= b->next_refresh)
		bus_refresh(b);
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

void
bus_release(struct worker *w, uint32_t uid, uint64_t token)
{
	struct bus *b = w->bus;
	char key[CLUSTER_KEY_MAX], val[CLUSTER_KEY_MAX];

	if (b == NULL)
		return;
	if (b->link[BUS_SUB].ac != NULL) {
		cluster_channel_user(w->conf, uid, key, sizeof(key));
		(void)redisAsyncCommand(b->link[BUS_SUB].ac, bus_on_message,
		    NULL, "UNSUBSCRIBE %s", key);
	}
	if (bus_up(b)) {
		cluster_key_online(w->conf, uid, key, sizeof(key));
		cluster_claim_value(w->conf, token, val, sizeof(val));
		(void)redisAsyncCommand(b->link[BUS_PUB].ac, NULL, NULL,
		    "EVAL %s 1 %s %s", CLUSTER_LUA_RELEASE, key, val);
	}
	/* While Redis is down the claim simply expires (presence_ttl). */
}

/* --- publish / receive -------------------------------------------------- */

struct pub_req {
	bus_publish_fn fn;
	void *arg;
};

static void
publish_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct bus *b = ac->data;
	struct pub_req *pr = privdata;
	redisReply *reply = r;

	pr->fn(b->w, pr->arg, reply != NULL &&
	    reply->type == REDIS_REPLY_INTEGER ? (long)reply->integer : -1);
	free(pr);
}

int
bus_publish(struct worker *w, uint32_t uid, const char *frame, size_t len,
    bus_publish_fn fn, void *arg)
{
	struct bus *b = w->bus;
	char ch[CLUSTER_KEY_MAX], key[CLUSTER_KEY_MAX];
	struct pub_req *pr = NULL;

	if (!bus_up(b))
		return -1;
	if (fn != NULL) {
		if ((pr = malloc(sizeof(*pr))) == NULL)
			fatalx("%s: out of memory", __func__);
		pr->fn = fn;
		pr->arg = arg;
	}
	cluster_channel_user(w->conf, uid, ch, sizeof(ch));
	cluster_key_online(w->conf, uid, key, sizeof(key));
	if (redisAsyncCommand(b->link[BUS_PUB].ac, fn ? publish_reply : NULL,
	    pr, "EVAL %s 1 %s %s %b", CLUSTER_LUA_PUBLISH, key, ch, frame,
	    len) != REDIS_OK) {
		free(pr);
		return -1;
	}
	return 0;
}

void
bus_hint_pull(struct worker *w, uint32_t uid)
{
	struct bus *b = w->bus;

	if (b == NULL)
		return;
	if (bus_publish(w, uid, CLUSTER_PULL_HINT, strlen(CLUSTER_PULL_HINT),
	    NULL, NULL) == -1)
		(void)umap_put(&b->hints, uid, (void *)1);
}

void
bus_group_changed(struct worker *w, uint32_t gid, bus_publish_fn fn,
    void *arg)
{
	struct pub_req *pr;
	char num[16];

	if (!bus_up(w->bus)) {
		fn(w, arg, -1);
		return;
	}
	if ((pr = malloc(sizeof(*pr))) == NULL)
		fatalx("%s: out of memory", __func__);
	pr->fn = fn;
	pr->arg = arg;
	(void)snprintf(num, sizeof(num), "%u", gid);
	if (redisAsyncCommand(w->bus->link[BUS_PUB].ac, publish_reply, pr,
	    "PUBLISH %s %s", w->bus->groups_channel, num) != REDIS_OK) {
		free(pr);
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
			session_pull_offline(b->w, c);
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
