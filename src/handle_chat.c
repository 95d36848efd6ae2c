/*
 * handle_chat.c - ONE_CHAT and GROUP_CHAT.
 *
 * The forwarded frame is built once from the session's identity (any id
 * or name in the request is ignored) and then routed by deliver.c.  A
 * group's members come from the worker's cache, so steady-state group
 * chat runs no SQL; only a cache miss loads the group in a job.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "deliver.h"
#include "groupcache.h"
#include "handler.h"
#include "jsonw.h"
#include "log.h"
#include "protocol.h"
#include "store.h"
#include "worker.h"

/*
 * The frame forwarded to recipients, as one '\n'-terminated line in the
 * worker's scratch buffer (valid until the next call).  Written directly,
 * not through cJSON: this is the one frame built per message.  Keys in
 * this order, msgid first (deliver_drop_slow looks for that prefix).
 */
static const char *
chat_frame(struct worker *w, struct conn *c, const struct request *r,
    const char *target, uint32_t id, size_t *len)
{
	const char *t = request_str(r, "time");
	struct jbuf *b = &w->fbuf;
	char now[32];
	struct tm tm;
	time_t sec = w->now;
	uint64_t tus = handler_accept_us(w);

	if (t == NULL) {
		/* The classic client prints "time"; fill it in for clients
		 * that do not send one. */
		(void)localtime_r(&sec, &tm);
		(void)strftime(now, sizeof(now), "%Y-%m-%d %H:%M:%S", &tm);
		t = now;
	}
	b->len = 0;
	jbuf_lit(b, "{\"msgid\":");
	jbuf_u64(b, (uint64_t)r->msgid);
	jbuf_lit(b, ",\"id\":");
	jbuf_u64(b, c->uid);
	jbuf_lit(b, ",\"name\":");
	jbuf_str(b, c->name);
	jbuf_lit(b, ",\"");
	jbuf_raw(b, target, strlen(target));
	jbuf_lit(b, "\":");
	jbuf_u64(b, id);
	jbuf_lit(b, ",\"msg\":");
	jbuf_str(b, request_str(r, "msg"));
	jbuf_lit(b, ",\"time\":");
	jbuf_str(b, t);
	jbuf_lit(b, ",\"ts\":");
	jbuf_u64(b, tus / 1000);
	jbuf_lit(b, ",\"tus\":");	/* last: deliver_order_of */
	jbuf_u64(b, tus);
	jbuf_lit(b, "}\n");
	if (b->oom)
		fatalx("%s: out of memory", __func__);
	*len = b->len;
	return b->p;
}

void
handle_one_chat(struct worker *w, struct conn *c, const struct request *r)
{
	uint32_t toid = handler_id(request_int(r, "toid"));
	struct reqinfo ri;
	size_t len;
	const char *line;

	reqinfo_borrow(&ri, r);
	if (toid == 0) {
		reply_error(w, c, &ri, CERR_NO_USER, NULL);
		reqinfo_free(&ri);
		return;
	}
	line = chat_frame(w, c, r, "toid", toid, &len);
	/* Stored when offline: the insert also proves the user exists. */
	deliver_route(w, c, &ri, &toid, 1, line, len);
	reqinfo_free(&ri);
}

/*
 * Send user uid's frame to every other member and answer on c, the
 * session that sent it, or on nothing when that session has ended (the
 * message was accepted: it is still delivered or stored).
 */
static void
group_fanout(struct worker *w, struct conn *c, uint32_t uid,
    const struct reqinfo *ri, const struct group_entry *g, const char *line,
    size_t len)
{
	uint32_t *to;
	size_t i, n = 0;

	if (!group_entry_has(g, uid)) {
		if (c != NULL)
			reply_error(w, c, ri, CERR_NOT_MEMBER, "you are not a "
			    "member of this group");
		return;
	}
	if ((to = calloc(g->n + 1, sizeof(*to))) == NULL)
		fatalx("%s: out of memory", __func__);
	for (i = 0; i < g->n; i++)
		if (g->members[i] != uid)
			to[n++] = g->members[i];
	deliver_route(w, c, ri, to, n, line, len);
	free(to);
}

/*
 * A group's members being loaded for this worker's cache.  Every message
 * to the group that misses the cache meanwhile waits on the same load
 * (in arrival order, so one sender's messages keep their order) instead
 * of starting its own: a busy group whose cache entry was just dropped
 * costs one query, not one per message.  A load started before the
 * cache's last invalidation may be stale and takes no new waiters.
 */
struct gload {
	struct job job;
	uint32_t gid;
	uint64_t gen;		/* cache generation when it started */
	int rc;			/* a store_rc */
	uint32_t *ids;
	size_t n, cap;
	struct reqjob *head, *tail;	/* waiting messages, linked by
					 * job.next (they are never submitted) */
	struct group_entry *entry;	/* as loaded, sorted; built when the
					 * first waiter is sent */
};

static int
gload_member(void *arg, uint32_t id, const char *name, const char *role)
{
	struct gload *gl = arg;
	uint32_t *nids;

	(void)name;
	(void)role;
	if (gl->n == gl->cap) {
		gl->cap = gl->cap ? gl->cap * 2 : 64;
		if ((nids = realloc(gl->ids, gl->cap * sizeof(*nids))) ==
		    NULL)
			return -1;
		gl->ids = nids;
	}
	gl->ids[gl->n++] = id;
	return 0;
}

static void
gload_run(struct job *j, struct store *st)
{
	struct gload *gl = (struct gload *)j;

	gl->rc = store_group_members(st, gl->gid, gload_member, gl);
}

/*
 * Fan out or answer one waiting message, then free it.  A sender who left
 * meanwhile (logged out, disconnected, dropped) gets no answer, but the
 * message they sent is fanned out all the same.
 */
static void
gload_finish(struct worker *w, struct reqjob *rj, int rc,
    const struct group_entry *g)
{
	struct conn *c = reqjob_live(rj) ? rj->c : NULL;

	if (rc == STORE_OK)
		group_fanout(w, c, rj->uid, &rj->ri, g, rj->s1, rj->len);
	else if (c != NULL)
		reply_error(w, c, &rj->ri, rc == STORE_NOTFOUND ?
		    CERR_NO_GROUP : CERR_UNAVAILABLE, NULL);
	else if (rc != STORE_NOTFOUND)
		log_warnx("user %u's message to group %u is lost: its "
		    "members could not be read and the sender has left",
		    rj->uid, rj->id);
	reqjob_release(w, rj);
}

static void
gload_done(struct job *j, struct worker *w)
{
	struct gload *gl = (struct gload *)j;
	struct reqjob *rj;

	/* As loaded, for the messages that waited and those that come
	 * while they are sent (in order behind them); cached once they all
	 * are.  done() runs again after a pause (jobq_redo). */
	if (gl->rc == STORE_OK && gl->entry == NULL) {
		if ((gl->entry = malloc(sizeof(*gl->entry) + gl->n *
		    sizeof(uint32_t))) == NULL)
			fatalx("%s: out of memory", __func__);
		gl->entry->gid = gl->gid;
		gl->entry->n = (uint32_t)gl->n;
		if (gl->n > 0)
			memcpy(gl->entry->members, gl->ids,
			    gl->n * sizeof(uint32_t));
		groupcache_sort(gl->entry);
	}
	while ((rj = gl->head) != NULL) {
		if (worker_busy(w)) {
			/* Other workers are behind: the rest later. */
			jobq_redo(w->jobs, &gl->job);
			return;
		}
		gl->head = (struct reqjob *)(void *)rj->job.next;
		gload_finish(w, rj, gl->rc, gl->entry);
	}
	if (umap_get(&w->gloads, gl->gid) == gl)
		(void)umap_del(&w->gloads, gl->gid);
	if (gl->entry != NULL)
		groupcache_put(&w->groups, gl->gid, gl->gen,
		    gl->entry->members, gl->entry->n);
	free(gl->entry);
	free(gl->ids);
	free(gl);
}

/* Queue message rj behind the load of its group, starting one if none
 * usable is running. */
static void
gload_wait(struct worker *w, struct reqjob *rj)
{
	struct gload *gl = umap_get(&w->gloads, rj->id);

	conn_ref(rj->c);
	rj->job.next = NULL;
	if (gl == NULL || gl->gen != w->groups.gen) {
		if ((gl = calloc(1, sizeof(*gl))) == NULL)
			fatalx("%s: out of memory", __func__);
		gl->job.run = gload_run;
		gl->job.done = gload_done;
		gl->gid = rj->id;
		gl->gen = w->groups.gen;
		gl->head = gl->tail = rj;
		if (worker_submit(w, &gl->job) == -1) {
			free(gl);
			reply_error(w, rj->c, &rj->ri, CERR_UNAVAILABLE,
			    "server busy (job_queue_max)");
			reqjob_release(w, rj);
			return;
		}
		if (umap_put(&w->gloads, rj->id, gl) == -1)
			fatalx("%s: out of memory", __func__);
		return;
	}
	if (gl->head == NULL)
		gl->head = rj;
	else
		gl->tail->job.next = &rj->job;
	gl->tail = rj;
}

void
handle_group_chat(struct worker *w, struct conn *c, const struct request *r)
{
	uint32_t gid = handler_id(request_int(r, "groupid"));
	const struct group_entry *g;
	struct reqinfo ri;
	struct reqjob *rj;
	size_t len;
	const char *line;

	if (gid == 0) {
		reqinfo_borrow(&ri, r);
		reply_error(w, c, &ri, CERR_NO_GROUP, NULL);
		reqinfo_free(&ri);
		return;
	}
	line = chat_frame(w, c, r, "groupid", gid, &len);
	if ((g = groupcache_get(&w->groups, gid)) != NULL) {
		reqinfo_borrow(&ri, r);
		group_fanout(w, c, c->uid, &ri, g, line, len);
		reqinfo_free(&ri);
		return;
	}
	rj = reqjob_new(c, r, NULL, NULL);	/* never submitted */
	rj->id = gid;
	if ((rj->s1 = malloc(len + 1)) == NULL)
		fatalx("%s: out of memory", __func__);
	memcpy(rj->s1, line, len);
	rj->s1[len] = '\0';
	rj->len = len;
	gload_wait(w, rj);
}
