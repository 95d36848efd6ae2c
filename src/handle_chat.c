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
	jbuf_u64(b, (uint64_t)handler_now_ms());
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

	reqinfo_init(&ri, r);
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

/* Send the frame to every member but the sender and answer the sender. */
static void
group_fanout(struct worker *w, struct conn *c, const struct reqinfo *ri,
    const struct group_entry *g, const char *line, size_t len)
{
	uint32_t *to;
	size_t i, n = 0;

	if (!group_entry_has(g, c->uid)) {
		reply_error(w, c, ri, CERR_NOT_MEMBER, "you are not a member "
		    "of this group");
		return;
	}
	if ((to = calloc(g->n + 1, sizeof(*to))) == NULL)
		fatalx("%s: out of memory", __func__);
	for (i = 0; i < g->n; i++)
		if (g->members[i] != c->uid)
			to[n++] = g->members[i];
	deliver_route(w, c, ri, to, n, line, len);
	free(to);
}

static int
load_member(void *arg, uint32_t id, const char *name, const char *role)
{
	cJSON_AddItemToArray(arg, cJSON_CreateNumber(id));
	return 0;
}

static void
load_run(struct reqjob *rj, struct store *st)
{
	rj->result = cJSON_CreateArray();
	rj->rc = store_group_members(st, rj->id, load_member, rj->result);
}

static void
load_done(struct reqjob *rj, struct worker *w)
{
	const struct group_entry *g;
	uint32_t *ids;
	size_t n, i = 0;
	cJSON *item;

	if (rj->rc != STORE_OK) {
		reply_error(w, rj->c, &rj->ri, rj->rc == STORE_NOTFOUND ?
		    CERR_NO_GROUP : CERR_UNAVAILABLE, NULL);
		return;
	}
	n = (size_t)cJSON_GetArraySize(rj->result);
	if ((ids = calloc(n + 1, sizeof(*ids))) == NULL)
		fatalx("%s: out of memory", __func__);
	cJSON_ArrayForEach(item, rj->result)
		ids[i++] = (uint32_t)item->valuedouble;
	groupcache_put(&w->groups, rj->id, rj->id2 == (uint32_t)w->groups.gen ?
	    w->groups.gen : w->groups.gen + 1, ids, n);
	if ((g = groupcache_get(&w->groups, rj->id)) != NULL)
		group_fanout(w, rj->c, &rj->ri, g, rj->s1, rj->len);
	else {
		/* Not cached (changed meanwhile, or no memory): use as is. */
		struct group_entry *tmp;

		if ((tmp = malloc(sizeof(*tmp) + n * sizeof(uint32_t))) ==
		    NULL)
			fatalx("%s: out of memory", __func__);
		tmp->gid = rj->id;
		tmp->n = (uint32_t)n;
		memcpy(tmp->members, ids, n * sizeof(uint32_t));
		groupcache_sort(tmp);
		group_fanout(w, rj->c, &rj->ri, tmp, rj->s1, rj->len);
		free(tmp);
	}
	free(ids);
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
		reqinfo_init(&ri, r);
		reply_error(w, c, &ri, CERR_NO_GROUP, NULL);
		reqinfo_free(&ri);
		return;
	}
	line = chat_frame(w, c, r, "groupid", gid, &len);
	if ((g = groupcache_get(&w->groups, gid)) != NULL) {
		reqinfo_init(&ri, r);
		group_fanout(w, c, &ri, g, line, len);
		reqinfo_free(&ri);
		return;
	}
	rj = reqjob_new(c, r, load_run, load_done);
	rj->id = gid;
	rj->id2 = (uint32_t)w->groups.gen;	/* cache generation seen */
	if ((rj->s1 = malloc(len + 1)) == NULL)
		fatalx("%s: out of memory", __func__);
	memcpy(rj->s1, line, len);
	rj->s1[len] = '\0';
	rj->len = len;
	reqjob_submit(w, rj);
}
