/*
 * inbox.h - same-host delivery between workers.
 *
 * Choice: a single-producer, single-consumer byte ring in shared memory
 * for every ordered pair of workers, and one from the master to each
 * worker, all mapped by the master before it forks; and an eventfd per
 * worker to wake it.  A running worker looks at its rings once per loop
 * iteration, so a message to a busy worker costs a copy in and a copy out
 * and no system call.  A worker about to sleep says so (a flag set, then
 * its rings checked once more); a sender that publishes records and finds
 * the flag set clears it and writes the eventfd, once.  (Before: one
 * AF_UNIX datagram per batch, a sendmsg and a recvmsg, and a wakeup each
 * time.)
 *
 * A crash loses nothing published: the positions live in the shared
 * segment, a record becomes visible only when its sender publishes the
 * tail after writing it whole, and the receiver frees it only after
 * handling it.  A respawned worker reads on where its predecessor stopped
 * (the record being handled when it died is handled again) and writes on
 * after its predecessor's last published record (what that one had not
 * published yet is lost, as an unsent batch was).
 *
 * A sender publishes its records at the end of its loop iteration
 * (inbox_flush).  Records keep their sender's order, whatever their type.
 * An INBOX_DELIVER carries one frame and the (uid, token) of every
 * recipient it was sent to in a row before the publish: a group message
 * to many members on one worker crosses once.
 *
 * When a ring is full, records wait in a queue in the sender, at most
 * max_queued bytes, and go in as the receiver frees room; a sender that
 * waits for room asks to be woken (its own eventfd) when there is some.
 */
#ifndef CHATD_INBOX_H
#define CHATD_INBOX_H

#include <stddef.h>
#include <stdint.h>

enum inbox_type {
	INBOX_DELIVER = 1,		/* id = uid, token, data = frame */
	INBOX_GROUP_INVALIDATE = 2,	/* id = gid */
	INBOX_OFFLINE_READY = 3,	/* id = uid: pull offline messages */
	INBOX_KICK = 4,			/* id = uid, token */
	INBOX_GONE = 5,			/* id = count, data = that many
					 * (uint32_t uid, uint64_t token),
					 * 12 bytes each: sessions of a
					 * dead worker */
};

/* The bytes of one session in an INBOX_GONE. */
#define INBOX_GONE_SIZE	(sizeof(uint32_t) + sizeof(uint64_t))

struct inbox_msg {
	uint8_t type;
	uint32_t id;
	uint64_t token;
	const char *data;
	size_t len;
};

struct inbox;

/* Called by inbox_poll for each message; m->data is valid during the
 * call only. */
typedef void inbox_fn(void *arg, const struct inbox_msg *m);

/* Master: the shared rings and the eventfds of nslots workers, for
 * messages of up to max_payload bytes.  The master's own handle (it sends
 * INBOX_KICK).  NULL with err. */
struct inbox *inbox_create(int nslots, size_t max_payload, char *err,
    size_t errlen);
/* Worker: a handle of its own for `slot` on ib's rings; what waits for a
 * full ring is capped at max_queued bytes per destination, congested
 * above busy_at.  NULL when out of memory. */
struct inbox *inbox_attach(const struct inbox *ib, int slot,
    size_t max_queued, size_t busy_at);
/* Free a handle of inbox_attach (its unpublished records are lost). */
void inbox_detach(struct inbox *h);
/* The slot's eventfd: watch it with EPOLLIN | EPOLLET (never read). */
int inbox_wake_fd(const struct inbox *h);
/* Bytes of one ring (each pair of workers has one). */
size_t inbox_ring_size(const struct inbox *ib);

/* Add m for `slot`, published at the next inbox_flush.  0, or -1 when it
 * can neither go into the ring nor wait (the master never queues): the
 * caller must keep the message another way. */
int inbox_send(struct inbox *h, int slot, const struct inbox_msg *m);
/* Publish what was added for slot, moving in what waited for room, and
 * wake the receiver if it sleeps.  1 when records still wait for room
 * (the receiver will wake us), 0 when none do. */
int inbox_flush(struct inbox *h, int slot);
/*
 * 1 when the queue towards some worker holds over busy_at bytes and that
 * worker is reading (its ring moved within the last second): the caller
 * should stop taking new input until it drains, rather than fill the
 * queue and fall back to the offline store.
 */
int inbox_congested(struct inbox *h);

/* Handle every record published to this worker so far, in each sender's
 * order; frees their room.  Returns the number of messages. */
size_t inbox_poll(struct inbox *h, inbox_fn *fn, void *arg);
/*
 * Before a sleep (an epoll_wait that may block): 1 when the worker may
 * sleep (senders will now wake it), 0 when records already wait (poll
 * them instead).  inbox_woke after the wait.
 */
int inbox_sleep(struct inbox *h);
void inbox_woke(struct inbox *h);

/* The bytes of the ring from sender src (nslots: the master) to worker
 * dst, inbox_ring_size of them: for tests that damage a record. */
char *inbox_ring_bytes(const struct inbox *h, int src, int dst);

/* Master: unmap and close everything (after the workers are gone). */
void inbox_destroy(struct inbox *ib);

#endif
