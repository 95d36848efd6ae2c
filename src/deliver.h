/*
 * deliver.h - getting a frame to a user: their connection on this worker,
 * another worker of this host (inbox), or the offline store.
 *
 * A frame accepted from a sender ends in exactly one of those places;
 * when none is possible the sender is told errno 13.
 */
#ifndef CHATD_DELIVER_H
#define CHATD_DELIVER_H

#include <stddef.h>
#include <stdint.h>

struct worker;
struct conn;
struct reqinfo;
struct inbox_msg;

enum {
	DELIVER_DONE = 0,	/* queued on the user's connection or handed
				 * to the worker that holds it */
	DELIVER_OFFLINE = 1,	/* not online on this host: store it */
};

/*
 * Route frame (one line ending in '\n') to each of uids wherever they are:
 * their connection on this worker, another worker of this host, another
 * host (Redis PUBLISH), or the offline store.  When sender is non-NULL it
 * gets the answer for ri: ACK status "delivered" when every recipient got
 * it live, "stored" when any was stored, or an error (6 for a single
 * recipient that does not exist, 13 when it could not be stored).
 */
void deliver_route(struct worker *w, struct conn *sender,
    const struct reqinfo *ri, const uint32_t *uids, size_t n,
    const char *frame, size_t len);
/* A frame for uid arrived on this worker's Redis subscription. */
void deliver_from_bus(struct worker *w, uint32_t uid, const char *frame,
    size_t len);
/* Route frame[0..len) (one line ending in '\n') to uid on this host. */
int deliver_user(struct worker *w, uint32_t uid, const char *frame,
    size_t len);
/*
 * Store frame (without its '\n') offline for each of uids, on a job
 * thread.  When sender is non-NULL it gets the answer for request ri:
 * ACK {status:"stored"} (with seq), errno 6 when a single recipient does
 * not exist, errno 13 when the database cannot take it.
 */
void deliver_store(struct worker *w, struct conn *sender,
    const struct reqinfo *ri, const uint32_t *uids, size_t n,
    const char *frame, size_t len);
/*
 * Submit again, once db_retry_interval has passed since the last attempt,
 * the offline stores without a sender that failed (the database was
 * down): messages already ACKed "delivered" to their sender, stored for a
 * session that ended.  Called every tick; deliver_retry_pending() says
 * whether any is kept that is not also in the worker's spool file (a
 * stopping worker waits for those only: another worker, or the next
 * start, takes the spool), deliver_retry_drop() gives them up (at exit).
 */
void deliver_retry_tick(struct worker *w);
int deliver_retry_pending(const struct worker *w);
void deliver_retry_drop(struct worker *w);
/*
 * c went over max_output: close it as a slow consumer.  The chat frames
 * (6, 10) still queued for it are stored offline first, so what it was
 * sent but could not read reaches it at its next login.
 */
void deliver_drop_slow(struct worker *w, struct conn *c);
/* Store offline the chat frames (6, 10) of c's output not yet written
 * (a line partly written whole); c is closed next by the caller. */
void deliver_rescue(struct worker *w, struct conn *c);
/* The friend id of a PRESENCE notice as chatd writes it, else 0. */
uint32_t deliver_presence_of(const char *frame, size_t len);
/*
 * The "tus" a chat frame as chatd writes it ends with (its last key; a
 * final '\n' allowed), else 0.  Stored messages are fetched in its order,
 * not in the order their stores happened to commit: a message that
 * reached the recipient's worker (or host) as its session ended is
 * stored there, while the sender's next ones, finding it offline, are
 * stored by the sender's worker.
 */
uint64_t deliver_order_of(const char *frame, size_t len);
/* Tell every other worker of this host that group gid changed (kept
 * for a worker whose queue is full, see deliver_news_tick). */
void deliver_group_invalidate(struct worker *w, uint32_t gid);
/* Every tick: send again what a full queue refused of such news (group
 * changes, offline messages to pull) for another worker of this host. */
void deliver_news_tick(struct worker *w);
/* Handle one message from another worker (or the master). */
void deliver_inbox(struct worker *w, const struct inbox_msg *m);
/* Publish what deliver_user wrote for other workers (end of iteration,
 * before the clients' output is written: a sender's ACK must not reach
 * it before the message has left this worker). */
void deliver_flush(struct worker *w);

#endif
