/*
 * bus.h - a worker's asynchronous Redis connections, on its own epoll loop:
 * a subscriber (the channels of the users logged in on this worker, and
 * the group-change channel) and a publisher (claims, publishes).
 *
 * Everything here is optional: with no Redis configured w->bus is NULL and
 * chatd serves one host.  While Redis is down the bus reconnects with
 * backoff; meanwhile publishes fail at once (callers store offline) and
 * claims fail (logins answer errno 13: without Redis a second login on
 * another host could not be refused).  So they do while the publisher
 * is stalled: connected, with a PING unanswered for redis_timeout.
 */
#ifndef CHATD_BUS_H
#define CHATD_BUS_H

#include <stddef.h>
#include <stdint.h>

struct worker;
struct bus;

enum bus_link_id { BUS_SUB = 0, BUS_PUB = 1 };

/* Result of a claim. */
enum { BUS_CLAIMED = 0, BUS_TAKEN = 1, BUS_DOWN = 2 };

typedef void (*bus_claim_fn)(struct worker *w, void *arg, int result);
/* receivers: how many subscribers got it, -1 when Redis failed. */
typedef void (*bus_publish_fn)(struct worker *w, void *arg, long receivers);
typedef void (*bus_done_fn)(struct worker *w, void *arg, int ok);

/* NULL when Redis is not configured.  Connects from bus_tick. */
struct bus *bus_create(struct worker *w);
void bus_destroy(struct bus *b);
/* 1 when the publisher is connected and not stalled. */
int bus_up(const struct bus *b);
/* 1 while a command of the publisher waits for its reply (a stopping
 * worker waits for its claim releases and PUBLISHes). */
int bus_busy(const struct bus *b);
/* Every second: reconnect what is down, renew this worker's claims. */
void bus_tick(struct worker *w);
/* An epoll event on link `id`. */
void bus_event(struct worker *w, int id, uint32_t events);

/* Claim uid for this session (CLUSTER_LUA_CLAIM): fn is called with the
 * result, at once when Redis is down. */
void bus_claim(struct worker *w, uint32_t uid, uint64_t token,
    bus_claim_fn fn, void *arg);
/* Subscribe uid's channel (after a successful claim). */
void bus_subscribe(struct worker *w, uint32_t uid);
/*
 * End of session: unsubscribe and delete the claim if still ours.  When
 * fn is not NULL and the delete was sent, returns 1 and calls fn later,
 * once Redis has answered (ok 0: the link failed first); else returns 0
 * and never calls fn.
 */
int bus_release(struct worker *w, uint32_t uid, uint64_t token,
    bus_done_fn fn, void *arg);
/* PUBLISH frame on uid's channel.  -1 when Redis is down (fn is not
 * called), else 0 and fn (when not NULL) is called with the result. */
int bus_publish(struct worker *w, uint32_t uid, const char *frame,
    size_t len, bus_publish_fn fn, void *arg);
/* Tell every node that group gid's membership changed; fn is called
 * once Redis has sent it to every subscriber (or with receivers -1 when
 * Redis is down, at once, or the link failed). */
void bus_group_changed(struct worker *w, uint32_t gid, bus_publish_fn fn,
    void *arg);
/* Tell whichever host holds uid to pull its offline messages now (a
 * message was stored for it while it may be online elsewhere); kept and
 * sent when the publisher is back if Redis is down. */
void bus_hint_pull(struct worker *w, uint32_t uid);

#endif
