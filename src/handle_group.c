/*
 * handle_group.c - CREATE_GROUP, ADD_GROUP, QUIT_GROUP, GROUP_LIST,
 * GROUP_MEMBERS.  Every membership change drops the group from the
 * membership cache of every worker on this host.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "conn.h"
#include "deliver.h"
#include "groupcache.h"
#include "handler.h"
#include "log.h"
#include "protocol.h"
#include "store.h"
#include "worker.h"

/* An answer held until the change has been announced to every host. */
struct group_ack {
	struct conn *c;		/* NULL when the session already ended */
	uint32_t uid;
	struct reqinfo ri;
	cJSON *extra;
};

static void
group_announced(struct worker *w, void *arg, long receivers)
{
	struct group_ack *ga = arg;

	(void)receivers;
	if (ga->c != NULL && conn_is_user(ga->c, ga->uid))
		reply_ok(w, ga->c, &ga->ri, ga->extra);
	else
		cJSON_Delete(ga->extra);
	if (ga->c != NULL)
		conn_unref(w, ga->c);
	reqinfo_free(&ga->ri);
	free(ga);
}

/*
 * Drop gid from every membership cache (this worker's, this host's other
 * workers' through their inboxes, other hosts' through Redis), then
 * answer the request: once the client has its ACK, a message sent to the
 * group from any host sees the new membership.  The caches are dropped
 * whether or not the session that asked is still there: the change is
 * committed.
 */
static void
group_changed(struct worker *w, struct reqjob *rj, uint32_t gid,
    cJSON *extra)
{
	struct group_ack *ga;

	groupcache_invalidate(&w->groups, gid);
	deliver_group_invalidate(w, gid);
	if ((ga = calloc(1, sizeof(*ga))) == NULL)
		fatalx("%s: out of memory", __func__);
	if (reqjob_live(rj)) {
		ga->c = rj->c;
		ga->uid = rj->uid;
		conn_ref(ga->c);
		reqinfo_copy(&ga->ri, &rj->ri);
	}
	ga->extra = extra;
	bus_group_changed(w, gid, group_announced, ga);
}

/* The group id of r, or 0 after answering errno 7. */
static uint32_t
group_id(struct worker *w, struct conn *c, const struct request *r)
{
	uint32_t id = handler_id(request_int(r, "groupid"));
	struct reqinfo ri;

	if (id != 0)
		return id;
	reqinfo_init(&ri, r);
	reply_error(w, c, &ri, CERR_NO_GROUP, NULL);
	reqinfo_free(&ri);
	return 0;
}

static void
create_run(struct reqjob *rj, struct store *st)
{
	rj->rc = store_group_create(st, rj->s1, rj->s2, rj->uid, &rj->id);
}

static void
create_done(struct reqjob *rj, struct worker *w)
{
	cJSON *extra;

	if (rj->rc != STORE_OK) {
		reply_error(w, rj->c, &rj->ri, rj->rc == STORE_DUP ?
		    CERR_EXISTS : CERR_UNAVAILABLE, rj->rc == STORE_DUP ?
		    "a group with that name already exists" : NULL);
		return;
	}
	extra = cJSON_CreateObject();
	cJSON_AddNumberToObject(extra, "groupid", rj->id);
	group_changed(w, rj, rj->id, extra);
}

void
handle_create_group(struct worker *w, struct conn *c, const struct request *r)
{
	struct reqjob *rj = reqjob_new(c, r, create_run, create_done);
	const char *desc = request_str(r, "groupdesc");

	if ((rj->s1 = strdup(request_str(r, "groupname"))) == NULL ||
	    (rj->s2 = strdup(desc != NULL ? desc : "")) == NULL)
		fatalx("%s: out of memory", __func__);
	reqjob_submit(w, rj);
}

static void
join_run(struct reqjob *rj, struct store *st)
{
	rj->rc = store_group_join(st, rj->id, rj->uid);
}

static void
quit_run(struct reqjob *rj, struct store *st)
{
	rj->rc = store_group_quit(st, rj->id, rj->uid);
}

static void
member_done(struct reqjob *rj, struct worker *w)
{
	int err;

	switch (rj->rc) {
	case STORE_OK:
		group_changed(w, rj, rj->id, NULL);
		return;
	case STORE_NOTFOUND:
		err = CERR_NO_GROUP;
		break;
	case STORE_DUP:
		err = CERR_EXISTS;
		break;
	case STORE_NOREF:
		err = CERR_NOT_MEMBER;
		break;
	default:
		err = CERR_UNAVAILABLE;
		break;
	}
	if (reqjob_live(rj))
		reply_result(w, rj->c, &rj->ri, err, NULL);
}

void
handle_add_group(struct worker *w, struct conn *c, const struct request *r)
{
	struct reqjob *rj;
	uint32_t gid;

	if ((gid = group_id(w, c, r)) == 0)
		return;
	rj = reqjob_new(c, r, join_run, member_done);
	rj->id = gid;
	rj->always = 1;		/* the caches drop the group in any case */
	reqjob_submit(w, rj);
}

void
handle_quit_group(struct worker *w, struct conn *c, const struct request *r)
{
	struct reqjob *rj;
	uint32_t gid;

	if ((gid = group_id(w, c, r)) == 0)
		return;
	rj = reqjob_new(c, r, quit_run, member_done);
	rj->id = gid;
	rj->always = 1;		/* the caches drop the group in any case */
	reqjob_submit(w, rj);
}

static int
list_add(void *arg, uint32_t id, const char *name, const char *desc,
    const char *role)
{
	cJSON *g = cJSON_CreateObject();

	cJSON_AddNumberToObject(g, "id", id);
	cJSON_AddStringToObject(g, "groupname", name);
	cJSON_AddStringToObject(g, "groupdesc", desc);
	cJSON_AddStringToObject(g, "role", role);
	cJSON_AddItemToArray(arg, g);
	return 0;
}

static void
list_run(struct reqjob *rj, struct store *st)
{
	rj->result = cJSON_CreateArray();
	rj->rc = store_group_list(st, rj->uid, list_add, rj->result);
}

static void
list_done(struct reqjob *rj, struct worker *w)
{
	cJSON *extra;

	if (rj->rc != STORE_OK) {
		reply_error(w, rj->c, &rj->ri, CERR_UNAVAILABLE, NULL);
		return;
	}
	extra = cJSON_CreateObject();
	cJSON_AddItemToObject(extra, "groups", rj->result);
	rj->result = NULL;
	reply_ok(w, rj->c, &rj->ri, extra);
}

void
handle_group_list(struct worker *w, struct conn *c, const struct request *r)
{
	reqjob_submit(w, reqjob_new(c, r, list_run, list_done));
}

static void
members_run(struct reqjob *rj, struct store *st)
{
	rj->rc = store_group_members(st, rj->id, ack_add_member, &rj->users);
	if (rj->rc == STORE_OK)
		(void)users_cluster_states(st, &rj->users);
}

static void
members_done(struct reqjob *rj, struct worker *w)
{
	cJSON *extra;
	int member = 0;
	size_t i;

	if (rj->rc != STORE_OK) {
		reply_error(w, rj->c, &rj->ri, rj->rc == STORE_NOTFOUND ?
		    CERR_NO_GROUP : CERR_UNAVAILABLE, NULL);
		return;
	}
	for (i = 0; i < rj->users.n; i++)
		member |= rj->users.v[i].id == rj->uid;
	if (!member) {
		reply_error(w, rj->c, &rj->ri, CERR_NOT_MEMBER,
		    "only members may list a group's members");
		return;
	}
	users_local_states(w->presence, &rj->users, 0);
	extra = cJSON_CreateObject();
	cJSON_AddItemToObject(extra, "users", ack_users_json(&rj->users));
	reply_ok(w, rj->c, &rj->ri, extra);
}

void
handle_group_members(struct worker *w, struct conn *c,
    const struct request *r)
{
	struct reqjob *rj;
	uint32_t gid;

	if ((gid = group_id(w, c, r)) == 0)
		return;
	rj = reqjob_new(c, r, members_run, members_done);
	rj->id = gid;
	reqjob_submit(w, rj);
}
