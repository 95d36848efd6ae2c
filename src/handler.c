/*
 * handler.c - validation, the login rule, dispatch, and reply helpers.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "conn.h"
#include "deliver.h"
#include "handler.h"
#include "presence.h"
#include "abuse.h"
#include "log.h"
#include "protocol.h"
#include "store.h"
#include "worker.h"

typedef void (*handler_fn)(struct worker *, struct conn *,
    const struct request *);

static const handler_fn handlers[MSG_MAX + 1] = {
	[MSG_LOGIN] = handle_login,
	[MSG_LOGINOUT] = handle_loginout,
	[MSG_REG] = handle_reg,
	[MSG_ONE_CHAT] = handle_one_chat,
	[MSG_ADD_FRIEND] = handle_add_friend,
	[MSG_CREATE_GROUP] = handle_create_group,
	[MSG_ADD_GROUP] = handle_add_group,
	[MSG_GROUP_CHAT] = handle_group_chat,
	[MSG_DEL_FRIEND] = handle_del_friend,
	[MSG_QUIT_GROUP] = handle_quit_group,
	[MSG_FRIEND_LIST] = handle_friend_list,
	[MSG_GROUP_LIST] = handle_group_list,
	[MSG_GROUP_MEMBERS] = handle_group_members,
	[MSG_PING] = handle_ping,
};

uint64_t
handler_accept_us(struct worker *w)
{
	struct timespec ts;
	uint64_t us;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	us = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	if (us <= w->last_tus)
		us = w->last_tus + 1;
	w->last_tus = us;
	return us;
}

uint32_t
handler_id(long long v)
{
	return v > 0 && v < (long long)UINT32_MAX ? (uint32_t)v : 0;
}

void
reqinfo_init(struct reqinfo *ri, const struct request *r)
{
	ri->msgid = r->msgid;
	ri->seq = r->seq != NULL ? cJSON_Duplicate(r->seq, 1) : NULL;
	ri->borrowed = 0;
}

void
reqinfo_borrow(struct reqinfo *ri, const struct request *r)
{
	ri->msgid = r->msgid;
	ri->seq = (cJSON *)r->seq;
	ri->borrowed = 1;
}

void
reqinfo_copy(struct reqinfo *dst, const struct reqinfo *src)
{
	dst->msgid = src->msgid;
	dst->seq = src->seq != NULL ? cJSON_Duplicate(src->seq, 1) : NULL;
	dst->borrowed = 0;
}

void
reqinfo_free(struct reqinfo *ri)
{
	if (!ri->borrowed)
		cJSON_Delete(ri->seq);
	ri->seq = NULL;
}

char *
reply_line(const cJSON *obj, size_t *len)
{
	char *s, *t;
	size_t n;

	if ((s = cJSON_PrintUnformatted(obj)) == NULL)
		return NULL;
	n = strlen(s);
	if ((t = realloc(s, n + 2)) == NULL) {
		free(s);
		return NULL;
	}
	t[n] = '\n';
	t[n + 1] = '\0';
	*len = n + 1;
	return t;
}

int
reply_send(struct worker *w, struct conn *c, cJSON *obj)
{
	size_t len;
	char *line;
	int rc = -1;

	if (c->state != CONN_CLOSED && (line = reply_line(obj, &len)) != NULL) {
		rc = conn_send(w, c, line, len);
		free(line);
		if (rc == -1)
			deliver_drop_slow(w, c);
	}
	cJSON_Delete(obj);
	return rc;
}

static void
reply_add_seq(cJSON *obj, const struct reqinfo *ri)
{
	if (ri != NULL && ri->seq != NULL)
		cJSON_AddItemToObject(obj, "seq", cJSON_Duplicate(ri->seq, 1));
}

void
reply_error(struct worker *w, struct conn *c, const struct reqinfo *ri,
    int err, const char *errmsg)
{
	cJSON *obj = cJSON_CreateObject();

	if (err >= 0 && err <= CERR_MAX)
		w->stats->errors[err]++;
	cJSON_AddNumberToObject(obj, "msgid", MSG_ERROR);
	cJSON_AddNumberToObject(obj, "errno", err);
	cJSON_AddStringToObject(obj, "errmsg",
	    errmsg != NULL ? errmsg : proto_strerror(err));
	reply_add_seq(obj, ri);
	if (ri != NULL && ri->msgid > 0)
		cJSON_AddNumberToObject(obj, "refmsgid", ri->msgid);
	(void)reply_send(w, c, obj);
}

void
reply_direct_error(struct worker *w, struct conn *c, const struct reqinfo *ri,
    int err, const char *errmsg)
{
	cJSON *obj;

	if (ri == NULL || (ri->msgid != MSG_LOGIN && ri->msgid != MSG_REG)) {
		reply_error(w, c, ri, err, errmsg);
		return;
	}
	if (err >= 0 && err <= CERR_MAX)
		w->stats->errors[err]++;
	obj = cJSON_CreateObject();
	cJSON_AddNumberToObject(obj, "msgid", ri->msgid == MSG_LOGIN ?
	    MSG_LOGIN_ACK : MSG_REG_ACK);
	cJSON_AddNumberToObject(obj, "errno", err);
	cJSON_AddStringToObject(obj, "errmsg",
	    errmsg != NULL ? errmsg : proto_strerror(err));
	reply_add_seq(obj, ri);
	(void)reply_send(w, c, obj);
}

void
reply_ok(struct worker *w, struct conn *c, const struct reqinfo *ri,
    cJSON *extra)
{
	cJSON *obj, *item;

	if (ri == NULL || ri->seq == NULL || c == NULL) {
		cJSON_Delete(extra);
		return;
	}
	obj = cJSON_CreateObject();
	cJSON_AddNumberToObject(obj, "msgid", MSG_ACK);
	cJSON_AddNumberToObject(obj, "refmsgid", ri->msgid);
	reply_add_seq(obj, ri);
	cJSON_AddNumberToObject(obj, "errno", 0);
	if (extra != NULL) {
		while ((item = extra->child) != NULL) {
			cJSON_DetachItemViaPointer(extra, item);
			cJSON_AddItemToObject(obj, item->string, item);
		}
		cJSON_Delete(extra);
	}
	(void)reply_send(w, c, obj);
}

void
reply_ack_line(struct jbuf *b, int refmsgid, const cJSON *seq,
    const char *status)
{
	b->len = 0;
	jbuf_lit(b, "{\"msgid\":");
	jbuf_u64(b, MSG_ACK);
	jbuf_lit(b, ",\"refmsgid\":");
	jbuf_u64(b, (uint64_t)refmsgid);
	jbuf_lit(b, ",\"seq\":");
	jbuf_json(b, seq);
	jbuf_lit(b, ",\"errno\":0,\"status\":");
	jbuf_str(b, status);
	jbuf_lit(b, "}\n");
}

/*
 * No cJSON tree and no print: on the chat path building this ACK that way
 * cost more allocations than parsing the message.
 */
void
reply_ack(struct worker *w, struct conn *c, const struct reqinfo *ri,
    const char *status)
{
	if (ri == NULL || ri->seq == NULL || c == NULL ||
	    c->state == CONN_CLOSED)
		return;
	reply_ack_line(&w->abuf, ri->msgid, ri->seq, status);
	if (w->abuf.oom)
		fatalx("%s: out of memory", __func__);
	if (conn_send(w, c, w->abuf.p, w->abuf.len) == -1)
		deliver_drop_slow(w, c);
}

void
reply_result(struct worker *w, struct conn *c, const struct reqinfo *ri,
    int err, cJSON *extra)
{
	if (err == 0) {
		reply_ok(w, c, ri, extra);
		return;
	}
	cJSON_Delete(extra);
	reply_error(w, c, ri, err, NULL);
}

void
handler_frame(struct worker *w, struct conn *c, const char *buf, size_t len)
{
	struct request r;
	struct reqinfo ri;
	char errmsg[160];
	int err;

	err = request_parse(&r, buf, len, &w->lim, errmsg, sizeof(errmsg));
	/* Before login a request other than LOGIN, REG and PING gets errno
	 * 4, also when its fields are wrong (r.msgid is known then). */
	if ((err == 0 || (err == CERR_BAD_REQUEST && r.msgid != 0)) &&
	    c->state != CONN_ONLINE && !request_allowed_anonymous(r.msgid)) {
		err = CERR_NOT_LOGGED_IN;
		(void)snprintf(errmsg, sizeof(errmsg), "log in first");
	} else if (err == 0 && r.msgid == MSG_LOGIN &&
	    c->state == CONN_ONLINE) {
		err = CERR_ALREADY_LOGGED_IN;
		(void)snprintf(errmsg, sizeof(errmsg), "already logged in on "
		    "this connection as %u; log out first", c->uid);
	}
	/* Every frame is charged, those refused for what they are too. */
	if (limit_request(w, c) == -1) {
		err = CERR_RATE;
		(void)snprintf(errmsg, sizeof(errmsg), "too many requests "
		    "(rate_limit = %d per second); this one was not served",
		    w->conf->rate_limit);
	}
	if (err != 0) {
		reqinfo_borrow(&ri, &r);
		log_debug("conn %d: request refused, errno %d: %s", c->fd, err,
		    errmsg);
		reply_direct_error(w, c, &ri, err, errmsg);
		reqinfo_free(&ri);
	} else
		handlers[r.msgid](w, c, &r);
	request_free(&r);
}

void
handler_stream_error(struct worker *w, struct conn *c, int err)
{
	char errmsg[128];

	if (err == CERR_TOO_LARGE)
		(void)snprintf(errmsg, sizeof(errmsg), "frame larger than "
		    "max_frame (%d bytes)", w->conf->max_frame);
	else
		(void)snprintf(errmsg, sizeof(errmsg), "bytes outside a JSON "
		    "object");
	log_debug("conn %d: %s, closing", c->fd, errmsg);
	reply_error(w, c, NULL, err, errmsg);
	conn_close_after_flush(w, c);
}

void
handler_conn_closed(struct worker *w, struct conn *c)
{
	if (c->state == CONN_ONLINE)
		(void)session_end(w, c, NULL, NULL);
}

void
handler_conn_drained(struct worker *w, struct conn *c)
{
	if (c->state == CONN_ONLINE && c->pull_again && !c->pulling)
		session_pull_offline(w, c);
}

static void
reqjob_run(struct job *j, struct store *st)
{
	struct reqjob *rj = (struct reqjob *)j;

	rj->run(rj, st);
}

void
reqjob_release(struct worker *w, struct reqjob *rj)
{
	conn_unref(w, rj->c);
	reqinfo_free(&rj->ri);
	cJSON_Delete(rj->result);
	ack_users_free(&rj->users);
	free(rj->s1);
	free(rj->s2);
	free(rj);
}

int
reqjob_live(const struct reqjob *rj)
{
	return conn_is_user(rj->c, rj->uid);
}

static void
reqjob_done(struct job *j, struct worker *w)
{
	struct reqjob *rj = (struct reqjob *)j;

	if (rj->always || reqjob_live(rj))
		rj->done(rj, w);
	reqjob_release(w, rj);
}

struct reqjob *
reqjob_new(struct conn *c, const struct request *r,
    void (*run)(struct reqjob *, struct store *),
    void (*done)(struct reqjob *, struct worker *))
{
	struct reqjob *rj;

	if ((rj = calloc(1, sizeof(*rj))) == NULL)
		fatalx("%s: out of memory", __func__);
	rj->job.run = reqjob_run;
	rj->job.done = reqjob_done;
	rj->c = c;
	rj->uid = c->uid;
	rj->run = run;
	rj->done = done;
	reqinfo_init(&rj->ri, r);
	return rj;
}

void
reqjob_submit(struct worker *w, struct reqjob *rj)
{
	conn_ref(rj->c);
	if (worker_submit(w, &rj->job) == 0)
		return;
	reply_error(w, rj->c, &rj->ri, CERR_UNAVAILABLE,
	    "server busy (job_queue_max)");
	reqjob_release(w, rj);
}

int
users_cluster_states(struct store *st, struct ack_users *l)
{
	unsigned char *online;
	uint32_t *ids;
	size_t i;
	int rc;

	if (l->n == 0)
		return 0;
	if (store_cluster(st) == NULL)
		return -1;
	if ((ids = calloc(l->n, sizeof(*ids))) == NULL ||
	    (online = calloc(l->n, 1)) == NULL)
		fatalx("%s: out of memory", __func__);
	for (i = 0; i < l->n; i++)
		ids[i] = l->v[i].id;
	if ((rc = cluster_online(store_cluster(st), ids, l->n, online)) == 0)
		for (i = 0; i < l->n; i++)
			l->v[i].online = online[i] != 0;
	free(ids);
	free(online);
	return rc;
}

void
users_local_states(struct presence *p, struct ack_users *l, uint32_t self)
{
	struct presence_entry e;
	size_t i;

	for (i = 0; i < l->n; i++)
		if (l->v[i].id == self || presence_lookup(p, l->v[i].id,
		    &e) == PRESENCE_OK)
			l->v[i].online = 1;
}
