/*
 * handle_friend.c - ADD_FRIEND (mutual), DEL_FRIEND, FRIEND_LIST.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "conn.h"
#include "handler.h"
#include "protocol.h"
#include "store.h"
#include "worker.h"

static int
friend_rc_errno(int rc)
{
	switch (rc) {
	case STORE_OK:
		return 0;
	case STORE_DUP:
		return CERR_EXISTS;
	case STORE_NOREF:
	case STORE_NOTFOUND:
		return CERR_NO_USER;
	default:
		return CERR_UNAVAILABLE;
	}
}

static void
add_run(struct reqjob *rj, struct store *st)
{
	rj->rc = store_friend_add(st, rj->uid, rj->id);
}

static void
rc_done(struct reqjob *rj, struct worker *w)
{
	char msg[96];

	if (rj->rc == STORE_NOTFOUND) {
		(void)snprintf(msg, sizeof(msg), "user %u is not your friend",
		    rj->id);
		reply_error(w, rj->c, &rj->ri, CERR_NO_USER, msg);
		return;
	}
	reply_result(w, rj->c, &rj->ri, friend_rc_errno(rj->rc), NULL);
}

/* The friend id of r, or 0 after answering the error. */
static uint32_t
friend_id(struct worker *w, struct conn *c, const struct request *r)
{
	uint32_t id = handler_id(request_int(r, "friendid"));
	struct reqinfo ri;

	if (id != 0 && id != c->uid)
		return id;
	reqinfo_init(&ri, r);
	reply_error(w, c, &ri, id == 0 ? CERR_NO_USER : CERR_BAD_REQUEST,
	    id == 0 ? NULL : "you cannot be your own friend");
	reqinfo_free(&ri);
	return 0;
}

void
handle_add_friend(struct worker *w, struct conn *c, const struct request *r)
{
	struct reqjob *rj;
	uint32_t id;

	if ((id = friend_id(w, c, r)) == 0)
		return;
	rj = reqjob_new(c, r, add_run, rc_done);
	rj->id = id;
	reqjob_submit(w, rj);
}

static void
del_run(struct reqjob *rj, struct store *st)
{
	rj->rc = store_friend_del(st, rj->uid, rj->id);
}

void
handle_del_friend(struct worker *w, struct conn *c, const struct request *r)
{
	struct reqjob *rj;
	uint32_t id;

	if ((id = friend_id(w, c, r)) == 0)
		return;
	rj = reqjob_new(c, r, del_run, rc_done);
	rj->id = id;
	reqjob_submit(w, rj);
}

static void
list_run(struct reqjob *rj, struct store *st)
{
	rj->rc = store_friend_list(st, rj->uid, ack_add_friend, &rj->users);
	if (rj->rc == STORE_OK)
		(void)users_cluster_states(st, &rj->users);
}

static void
list_done(struct reqjob *rj, struct worker *w)
{
	cJSON *extra;

	if (rj->rc != STORE_OK) {
		reply_error(w, rj->c, &rj->ri, CERR_UNAVAILABLE, NULL);
		return;
	}
	users_local_states(w->presence, &rj->users, 0);
	extra = cJSON_CreateObject();
	cJSON_AddItemToObject(extra, "friends", ack_users_json(&rj->users));
	reply_ok(w, rj->c, &rj->ri, extra);
}

void
handle_friend_list(struct worker *w, struct conn *c, const struct request *r)
{
	reqjob_submit(w, reqjob_new(c, r, list_run, list_done));
}
