/*
 * inbox.h - same-host delivery between workers.
 *
 * Choice: one AF_UNIX SOCK_DGRAM socketpair per worker slot, created by
 * the master before forking.  Every worker inherits the sending end of
 * every slot and the receiving end of its own; a respawned worker gets the
 * same pair again, so nothing addressed to a slot is lost while it
 * restarts (datagrams wait in the kernel queue).  Datagrams keep message
 * boundaries, need no locking between senders, and the kernel wakes the
 * receiver through its epoll.  A shm ring would save a copy but needs its
 * own locking and crash recovery; this path never touches Redis or MySQL.
 *
 * Deliveries are batched: inbox_send() appends an INBOX_DELIVER to the
 * destination slot's batch, and inbox_flush() sends each slot's batch as
 * one INBOX_BATCH datagram at the end of the loop iteration (or when it
 * is full).  One datagram per destination per iteration instead of one
 * per message keeps the kernel queues short under load; any other type
 * flushes the slot's batch first, so every sender's order is kept.  A
 * record whose frame is the previous record's (a group message to many
 * members on one worker) carries no copy of it.
 *
 * When the receiver's queue is full (EAGAIN) the datagram waits in a
 * bounded per-slot queue in the sender and goes out on EPOLLOUT, or at
 * the next flush.
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
	INBOX_BATCH = 5,		/* id = count, data = INBOX_DELIVER
					 * records: walk with inbox_batch_next */
};

struct inbox_msg {
	uint8_t type;
	uint32_t id;
	uint64_t token;
	uint32_t origin;	/* sending slot */
	const char *data;
	size_t len;
};

struct inbox;

/* Master: create nslots pairs able to carry max_payload bytes. */
struct inbox *inbox_create(int nslots, size_t max_payload, char *err,
    size_t errlen);
/* Worker: keep only what `slot` needs; pending queues capped at
 * max_queued bytes per destination, congested above busy_at. */
void inbox_worker_init(struct inbox *ib, int slot, size_t max_queued,
    size_t busy_at);
int inbox_nslots(const struct inbox *ib);
int inbox_rx_fd(const struct inbox *ib, int slot);
int inbox_tx_fd(const struct inbox *ib, int slot);
/* Send to `slot` (INBOX_DELIVER: add to its batch), queueing on EAGAIN.
 * 0, or -1 when it can neither be sent nor queued (the caller must keep
 * the message another way).  *want_out is set when a queue became
 * non-empty (watch tx for EPOLLOUT). */
int inbox_send(struct inbox *ib, int slot, const struct inbox_msg *m,
    int *want_out);
/* Send slot's batch, if any (end of loop iteration); *want_out as above. */
void inbox_flush(struct inbox *ib, int slot, int *want_out);
/*
 * 1 when the queue towards some worker holds over busy_at bytes and
 * that worker is reading (the queue moved within the last second):
 * the caller should stop taking new input until it drains, rather than
 * fill the queue and fall back to the offline store.
 */
int inbox_congested(const struct inbox *ib);
/* Once a second: give back the batch buffers not used since last time. */
void inbox_tick(struct inbox *ib);
/* The next record of an INBOX_BATCH datagram b, from *off (start at 0):
 * 1 with *m an INBOX_DELIVER, 0 at the end.  Pass the same m every time:
 * a record that repeats the previous one's frame keeps m's data. */
int inbox_batch_next(const struct inbox_msg *b, size_t *off,
    struct inbox_msg *m);
/* EPOLLOUT on slot's tx: send what is queued.  Returns 1 when the queue
 * is now empty (stop watching), 0 otherwise. */
int inbox_drain(struct inbox *ib, int slot);
/* Receive one datagram on our rx into buf; 1, 0 when none, -1 error. */
int inbox_recv(struct inbox *ib, struct inbox_msg *m, char *buf,
    size_t buflen);
/* Master: close everything (after the workers are gone). */
void inbox_destroy(struct inbox *ib);

#endif
