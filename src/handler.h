/*
 * handler.h - from a frame to a request handler, and the replies.
 *
 * handler.c parses and validates a frame (request.c), enforces the login
 * rule, and dispatches by msgid to one handle_* function per message
 * family (handle_account.c, handle_chat.c, handle_friend.c,
 * handle_group.c).  Handlers never touch sockets: they reply through the
 * reply_* helpers, which queue on the connection.
 */
#ifndef CHATD_HANDLER_H
#define CHATD_HANDLER_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "bus.h"
#include "job.h"
#include "jsonw.h"
#include "loginack.h"
#include "request.h"

struct worker;
struct conn;
struct presence;

/* What an asynchronous reply needs of its request. */
struct reqinfo {
	int msgid;
	cJSON *seq;		/* NULL when absent */
	int borrowed;		/* seq is the request's (reqinfo_borrow) */
};

/* Entry points from the connection layer. */
void handler_frame(struct worker *w, struct conn *c, const char *buf,
    size_t len);
void handler_stream_error(struct worker *w, struct conn *c, int err);
void handler_conn_closed(struct worker *w, struct conn *c);
/* c's output buffer has drained (resume deferred offline delivery). */
void handler_conn_drained(struct worker *w, struct conn *c);

/* ri with its own copy of r's seq, for a reply after r is freed. */
void reqinfo_init(struct reqinfo *ri, const struct request *r);
/* ri with r's seq itself, for replies made while r lives. */
void reqinfo_borrow(struct reqinfo *ri, const struct request *r);
/* dst (empty) with its own copy of src's seq. */
void reqinfo_copy(struct reqinfo *dst, const struct reqinfo *src);
void reqinfo_free(struct reqinfo *ri);

/* Serialise obj as one line and queue it on c; frees obj.  Returns 0 or
 * -1 when c is over max_output (then c is closed as a slow consumer). */
int reply_send(struct worker *w, struct conn *c, cJSON *obj);
/* Serialise obj to a malloc'd "...\n" line; *len excludes the NUL. */
char *reply_line(const cJSON *obj, size_t *len);
/* ERROR (11) with errno, errmsg (NULL: the standard text), seq, refmsgid. */
void reply_error(struct worker *w, struct conn *c, const struct reqinfo *ri,
    int err, const char *errmsg);
/* A failed LOGIN or REG is answered with its own reply (LOGIN_ACK,
 * REG_ACK) carrying errno and errmsg, which is what the classic client
 * waits for; any other request gets reply_error. */
void reply_direct_error(struct worker *w, struct conn *c,
    const struct reqinfo *ri, int err, const char *errmsg);
/* Success: an ACK (12) carrying extra's fields, sent only when the request
 * had a seq; extra (may be NULL) is freed either way. */
void reply_ok(struct worker *w, struct conn *c, const struct reqinfo *ri,
    cJSON *extra);
/* reply_ok with the one extra field "status": status, written directly
 * (the ACK of every chat message). */
void reply_ack(struct worker *w, struct conn *c, const struct reqinfo *ri,
    const char *status);
/* That ACK's line, "...\n", in b (emptied first); reply_ok's bytes. */
void reply_ack_line(struct jbuf *b, int refmsgid, const cJSON *seq,
    const char *status);
/* reply_ok when err == 0, else reply_error with the standard text. */
void reply_result(struct worker *w, struct conn *c, const struct reqinfo *ri,
    int err, cJSON *extra);
/*
 * The time a chat message is accepted, in microseconds since 1970 (UTC),
 * strictly increasing on this worker, so in each sender's order: the
 * "tus" of its frame (and "ts", in milliseconds), by which stored
 * messages are delivered (deliver_order_of).
 */
uint64_t handler_accept_us(struct worker *w);

/* Request handlers, one per msgid. */
void handle_login(struct worker *w, struct conn *c, const struct request *r);
void handle_reg(struct worker *w, struct conn *c, const struct request *r);
void handle_loginout(struct worker *w, struct conn *c,
    const struct request *r);
void handle_ping(struct worker *w, struct conn *c, const struct request *r);
void handle_one_chat(struct worker *w, struct conn *c,
    const struct request *r);
void handle_group_chat(struct worker *w, struct conn *c,
    const struct request *r);
void handle_add_friend(struct worker *w, struct conn *c,
    const struct request *r);
void handle_del_friend(struct worker *w, struct conn *c,
    const struct request *r);
void handle_friend_list(struct worker *w, struct conn *c,
    const struct request *r);
void handle_create_group(struct worker *w, struct conn *c,
    const struct request *r);
void handle_add_group(struct worker *w, struct conn *c,
    const struct request *r);
void handle_quit_group(struct worker *w, struct conn *c,
    const struct request *r);
void handle_group_list(struct worker *w, struct conn *c,
    const struct request *r);
void handle_group_members(struct worker *w, struct conn *c,
    const struct request *r);

/*
 * A job on behalf of a logged-in request: run() on a job thread with the
 * store, then done() on the loop, but only while the connection is still
 * logged in as the same user, unless `always` is set: then done() runs
 * anyway, for what a committed change must do whoever asked (dropping
 * cached group members), and answers only when reqjob_live().
 * reqjob_submit answers errno 13 itself when the job queue is full.
 */
struct store;
struct reqjob {
	struct job job;
	struct conn *c;
	struct reqinfo ri;
	uint32_t uid;		/* the session's user at submit time */
	uint32_t id;		/* friendid / groupid */
	uint32_t id2;
	int rc;			/* a store_rc */
	cJSON *result;
	struct ack_users users;	/* friends / members, with states */
	char *s1, *s2;
	size_t len;
	int always;		/* done() even after the session ended */
	void (*run)(struct reqjob *rj, struct store *st);
	void (*done)(struct reqjob *rj, struct worker *w);
};
struct reqjob *reqjob_new(struct conn *c, const struct request *r,
    void (*run)(struct reqjob *, struct store *),
    void (*done)(struct reqjob *, struct worker *));
void reqjob_submit(struct worker *w, struct reqjob *rj);
/* Whether rj's connection is still logged in as the user who asked. */
int reqjob_live(const struct reqjob *rj);
/* Drop rj's reference to its connection and free it (for a reqjob that
 * was referenced with conn_ref but is finished without running). */
void reqjob_release(struct worker *w, struct reqjob *rj);

/* Job thread: each user of l online when the cluster's claims say so;
 * 0, or -1 when Redis cannot be asked (every state left as it was). */
int users_cluster_states(struct store *st, struct ack_users *l);
/* Any thread: each user of l online also when on this host (the
 * presence table p), and `self` (0: none) online. */
void users_local_states(struct presence *p, struct ack_users *l,
    uint32_t self);

/* Session (handle_account.c): end a logged-in session (logout or close),
 * and fetch a logged-in user's offline messages onto c.  session_end's
 * fn, when not NULL, is called once the cluster claim is released (see
 * bus_release, and its return value). */
int session_end(struct worker *w, struct conn *c, bus_done_fn fn,
    void *arg);
void session_pull_offline(struct worker *w, struct conn *c);
/*
 * Deletions of delivered offline messages that failed (the database was
 * down) are kept and tried again every db_retry_interval, for up to an
 * hour: session_offdel_tick, every tick, submits them; session_offdel_drop
 * gives them up (at exit: those messages come again at the next login).
 */
void session_offdel_tick(struct worker *w);
/* uid's session (token) was on a worker that died (the master says so):
 * tell its friends it is offline, unless it is online again by then. */
void session_gone(struct worker *w, uint32_t uid, uint64_t token);
/* uid's claim expired (Redis says so: its host died, froze or was cut
 * off): tell its friends it is offline, if no host did and it is not
 * claimed again. */
void session_expired(struct worker *w, uint32_t uid);
/* c's claim had expired and its friends were told "offline" (the renewal
 * found the gone marker): tell them "online" again. */
void session_back(struct worker *w, struct conn *c);
void session_offdel_drop(struct worker *w);
/* c's session can now be reached from every host (its SUBSCRIBE is
 * confirmed): pull what was stored meanwhile, settle its friends'
 * states. */
void session_reachable(struct worker *w, struct conn *c);
/* A frame is about to be delivered to c: note a PRESENCE notice while
 * c's friend states are being settled.  Cheap unless w->settling holds
 * anything. */
void session_noticed(struct worker *w, struct conn *c, const char *frame,
    size_t len);
/* An id from a request as a uid: 0 when out of range. */
uint32_t handler_id(long long v);

#endif
