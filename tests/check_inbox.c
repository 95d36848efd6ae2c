/*
 * check_inbox.c - unit tests for the rings between workers (inbox.c):
 * every message arrives once, in its sender's order, with its own uid,
 * token and frame; a frame sent to many recipients in a row crosses once;
 * a full ring queues, a full queue refuses; sleepers are woken, busy
 * workers are not; a respawned worker goes on where its predecessor
 * stopped; a damaged record is dropped, not followed.
 *
 * The rings are real ones (shared memory, eventfds); "workers" are handles
 * of one process, and in the last test a forked sender.
 */
#include "config.h"

#include <check.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/wait.h>

#include "inbox.h"

#define MAX_PAYLOAD	4096	/* rings of the smallest size */
#define BIG_QUEUE	(64 * 1024 * 1024)

struct got {
	uint8_t type;
	uint32_t id;
	uint64_t token;
	char frame[MAX_PAYLOAD + 1];
};

struct sink {
	struct got *got;
	size_t n, max;
};

static struct inbox *
master_open(void)
{
	char err[128];
	struct inbox *ib = inbox_create(2, MAX_PAYLOAD, err, sizeof(err));

	ck_assert_msg(ib != NULL, "%s", err);
	return ib;
}

static struct inbox *
worker_open(struct inbox *ib, int slot, size_t max_queued, size_t busy_at)
{
	struct inbox *h = inbox_attach(ib, slot, max_queued, busy_at);

	ck_assert_ptr_nonnull(h);
	return h;
}

/* Fresh rings and two workers' handles on them: a sends, b reads. */
static struct inbox *
rig_open(struct inbox **a, struct inbox **b, size_t a_queued,
    size_t a_busy)
{
	struct inbox *ib = master_open();

	*a = worker_open(ib, 0, a_queued, a_busy);
	*b = worker_open(ib, 1, BIG_QUEUE, BIG_QUEUE);
	return ib;
}

static void
rig_close(struct inbox *ib, struct inbox *a, struct inbox *b)
{
	inbox_detach(a);
	inbox_detach(b);
	inbox_destroy(ib);
}

static int
send_msg(struct inbox *h, int slot, uint8_t type, uint32_t id,
    const char *data, size_t len)
{
	struct inbox_msg m;

	memset(&m, 0, sizeof(m));
	m.type = type;
	m.id = id;
	m.token = 1000 + id;
	m.data = data;
	m.len = len;
	return inbox_send(h, slot, &m);
}

static void
send_deliver(struct inbox *h, uint32_t uid, const char *frame)
{
	ck_assert_int_eq(send_msg(h, 1, INBOX_DELIVER, uid, frame,
	    strlen(frame)), 0);
}

static void
collect(void *arg, const struct inbox_msg *m)
{
	struct sink *s = arg;

	ck_assert_uint_lt(s->n, s->max);
	ck_assert_uint_le(m->len, MAX_PAYLOAD);
	s->got[s->n].type = m->type;
	s->got[s->n].id = m->id;
	s->got[s->n].token = m->token;
	memcpy(s->got[s->n].frame, m->data, m->len);
	s->got[s->n].frame[m->len] = '\0';
	s->n++;
}

/* Let b read until nothing from a waits any more. */
static void
drain(struct inbox *a, struct inbox *b, struct sink *s)
{
	while (inbox_flush(a, 1) == 1)
		(void)inbox_poll(b, collect, s);
	(void)inbox_poll(b, collect, s);
}

/* Is fd (an eventfd) readable now?  Reads it when it is. */
static int
woken(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t v;

	if (poll(&p, 1, 0) != 1)
		return 0;
	ck_assert_int_eq(read(fd, &v, sizeof(v)), (int)sizeof(v));
	return 1;
}

/*
 * A damaged record (only a sender's bug could make one) is dropped with
 * what follows it in that publish, and logged; the records before it
 * arrive, and so does everything published afterwards.  The first four
 * bytes of a record are its size; a DELIVER's id, at byte 8, counts its
 * recipients.
 */
static void
check_bad_record(int how)
{
	struct inbox *a, *b, *ib = rig_open(&a, &b, BIG_QUEUE, BIG_QUEUE);
	static struct got got[8];
	struct sink s = { got, 0, 8 };
	char *ring = inbox_ring_bytes(b, 0, 1);
	uint32_t size, v;

	send_deliver(a, 1, "first\n");
	send_deliver(a, 2, "second\n");	/* another frame: a new record */
	send_deliver(a, 3, "third\n");
	memcpy(&size, ring, sizeof(size));
	ck_assert_int_eq(inbox_flush(a, 1), 0);
	/* Damage the second record. */
	switch (how) {
	case 0:		/* a size that is not a multiple of 8 */
		v = size + 3;
		memcpy(ring + size, &v, sizeof(v));
		break;
	case 1:		/* a size past the end of the ring */
		v = (uint32_t)inbox_ring_size(ib) * 2;
		memcpy(ring + size, &v, sizeof(v));
		break;
	case 2:		/* more recipients than the record holds */
		v = 1000;
		memcpy(ring + size + 8, &v, sizeof(v));
		break;
	case 3:		/* a size below a header */
		v = 0;
		memcpy(ring + size, &v, sizeof(v));
		break;
	}
	ck_assert_uint_eq(inbox_poll(b, collect, &s), 1);
	ck_assert_uint_eq(got[0].id, 1);
	ck_assert_str_eq(got[0].frame, "first\n");
	ck_assert_uint_eq(inbox_poll(b, collect, &s), 0);
	/* The ring goes on. */
	send_deliver(a, 4, "fourth\n");
	send_msg(a, 1, INBOX_KICK, 5, NULL, 0);
	ck_assert_int_eq(inbox_flush(a, 1), 0);
	ck_assert_uint_eq(inbox_poll(b, collect, &s), 2);
	ck_assert_uint_eq(got[1].id, 4);
	ck_assert_str_eq(got[1].frame, "fourth\n");
	ck_assert_int_eq(got[2].type, INBOX_KICK);
	ck_assert_uint_eq(got[2].id, 5);
	ck_assert_uint_eq(got[2].token, 1005);
	rig_close(ib, a, b);
}

START_TEST(test_bad_record_dropped)
{
	check_bad_record(_i);
}
END_TEST

/*
 * 5,000 members of one group on the other worker: the frame crosses once.
 * Copied for each, 5,000 frames of 1,000 bytes would need 5 MB; the ring
 * is 128 KiB and nothing may wait (max_queued 0).
 */
START_TEST(test_repeated_frame_crosses_once)
{
	struct inbox *ib = master_open();
	struct inbox *a = worker_open(ib, 0, 0, 0);
	struct inbox *b = worker_open(ib, 1, 0, 0);
	static struct got got[6000];
	struct sink s = { got, 0, 6000 };
	char frame[1001];
	uint32_t i;

	ck_assert_uint_eq(inbox_ring_size(ib), 128 * 1024);
	memset(frame, 'g', sizeof(frame) - 2);
	frame[sizeof(frame) - 2] = '\n';
	frame[sizeof(frame) - 1] = '\0';
	for (i = 1; i <= 5000; i++)
		send_deliver(a, i, frame);
	ck_assert_int_eq(inbox_flush(a, 1), 0);
	ck_assert_uint_eq(inbox_poll(b, collect, &s), 5000);
	for (i = 0; i < 5000; i++) {
		ck_assert_int_eq(got[i].type, INBOX_DELIVER);
		ck_assert_uint_eq(got[i].id, i + 1);
		ck_assert_uint_eq(got[i].token, 1000 + i + 1);
		ck_assert_str_eq(got[i].frame, frame);
	}
	ck_assert_uint_eq(inbox_poll(b, collect, &s), 0);
	rig_close(ib, a, b);
}
END_TEST

/*
 * The sender builds each message in one scratch buffer: the same address
 * and length with other bytes is another frame; a frame repeated after a
 * different one, or after a publish, is sent again.
 */
START_TEST(test_same_buffer_other_frame)
{
	struct inbox *a, *b, *ib = rig_open(&a, &b, BIG_QUEUE, BIG_QUEUE);
	static struct got got[16];
	struct sink s = { got, 0, 16 };
	char scratch[64];

	(void)snprintf(scratch, sizeof(scratch), "{\"msg\":\"first\"}\n");
	send_deliver(a, 1, scratch);
	send_deliver(a, 2, scratch);
	(void)snprintf(scratch, sizeof(scratch), "{\"msg\":\"other\"}\n");
	send_deliver(a, 3, scratch);		/* same length, same address */
	(void)snprintf(scratch, sizeof(scratch), "{\"msg\":\"first\"}\n");
	send_deliver(a, 4, scratch);
	send_deliver(a, 5, "{}\n");
	(void)inbox_flush(a, 1);
	send_deliver(a, 6, "{}\n");		/* after the publish */
	send_deliver(a, 7, "");
	send_deliver(a, 8, "");
	(void)inbox_flush(a, 1);
	ck_assert_uint_eq(inbox_poll(b, collect, &s), 8);
	ck_assert_str_eq(got[0].frame, "{\"msg\":\"first\"}\n");
	ck_assert_str_eq(got[1].frame, "{\"msg\":\"first\"}\n");
	ck_assert_str_eq(got[2].frame, "{\"msg\":\"other\"}\n");
	ck_assert_str_eq(got[3].frame, "{\"msg\":\"first\"}\n");
	ck_assert_str_eq(got[4].frame, "{}\n");
	ck_assert_str_eq(got[5].frame, "{}\n");
	ck_assert_str_eq(got[6].frame, "");
	ck_assert_str_eq(got[7].frame, "");
	ck_assert_uint_eq(got[2].id, 3);
	ck_assert_uint_eq(got[4].token, 1005);
	ck_assert_uint_eq(got[5].id, 6);
	ck_assert_uint_eq(got[7].token, 1008);
	rig_close(ib, a, b);
}
END_TEST

/* Every type in one sender's order; a repeat never jumps another type. */
START_TEST(test_order_across_types)
{
	struct inbox *a, *b, *ib = rig_open(&a, &b, BIG_QUEUE, BIG_QUEUE);
	static struct got got[16];
	struct sink s = { got, 0, 16 };

	send_deliver(a, 1, "f\n");
	ck_assert_int_eq(send_msg(a, 1, INBOX_KICK, 9, NULL, 0), 0);
	send_deliver(a, 2, "f\n");
	ck_assert_int_eq(send_msg(a, 1, INBOX_GROUP_INVALIDATE, 77, NULL, 0),
	    0);
	ck_assert_int_eq(send_msg(a, 1, INBOX_OFFLINE_READY, 3, NULL, 0), 0);
	send_deliver(a, 3, "f\n");
	(void)inbox_flush(a, 1);
	ck_assert_uint_eq(inbox_poll(b, collect, &s), 6);
	ck_assert_int_eq(got[0].type, INBOX_DELIVER);
	ck_assert_uint_eq(got[0].id, 1);
	ck_assert_int_eq(got[1].type, INBOX_KICK);
	ck_assert_uint_eq(got[1].id, 9);
	ck_assert_uint_eq(got[1].token, 1009);
	ck_assert_int_eq(got[2].type, INBOX_DELIVER);
	ck_assert_uint_eq(got[2].id, 2);
	ck_assert_int_eq(got[3].type, INBOX_GROUP_INVALIDATE);
	ck_assert_uint_eq(got[3].id, 77);
	ck_assert_int_eq(got[4].type, INBOX_OFFLINE_READY);
	ck_assert_int_eq(got[5].type, INBOX_DELIVER);
	ck_assert_str_eq(got[5].frame, "f\n");
	rig_close(ib, a, b);
}
END_TEST

/* The frame of message i: its number and filler of a length that varies,
 * so that records land everywhere in the ring and pad at its end. */
static size_t
numbered(char *buf, uint32_t i)
{
	size_t len = 1 + (i * 7919u) % 3000, n;

	n = (size_t)snprintf(buf, len + 1, "%u:", i);
	if (n < len)
		memset(buf + n, 'a' + (int)(i % 26), len - n);
	buf[len] = '\0';
	return len;
}

/*
 * 3,000 messages of up to 3,000 bytes (about 4.5 MB) through a 128 KiB
 * ring read only now and then: records wait in the sender, go in as room
 * is made, wrap round the ring many times, and arrive whole and in order,
 * group repeats among them.
 */
START_TEST(test_wrap_and_wait)
{
	struct inbox *a, *b, *ib = rig_open(&a, &b, BIG_QUEUE, BIG_QUEUE);
	static struct got got[4000];
	struct sink s = { got, 0, 4000 };
	static char buf[MAX_PAYLOAD];
	uint32_t i;
	size_t len;
	int waits = 0;

	for (i = 0; i < 3000; i++) {
		len = numbered(buf, i % 5 == 4 ? i - 1 : i);	/* repeats */
		ck_assert_int_eq(send_msg(a, 1, INBOX_DELIVER, i, buf, len),
		    0);
		if (i % 97 == 0)
			waits += inbox_flush(a, 1);
		if (i % 301 == 0)
			(void)inbox_poll(b, collect, &s);
	}
	while (inbox_flush(a, 1) == 1) {
		waits++;
		ck_assert_uint_gt(inbox_poll(b, collect, &s), 0);
	}
	(void)inbox_poll(b, collect, &s);
	ck_assert_int_gt(waits, 0);	/* the queue was used */
	ck_assert_uint_eq(s.n, 3000);
	for (i = 0; i < 3000; i++) {
		(void)numbered(buf, i % 5 == 4 ? i - 1 : i);
		ck_assert_uint_eq(got[i].id, i);
		ck_assert_str_eq(got[i].frame, buf);
	}
	rig_close(ib, a, b);
}
END_TEST

/*
 * A group of 12,000 members on the other worker, sent while the ring is
 * full: the recipients wait in the sender, 16 bytes each, 192 KB in all,
 * more than the 128 KiB ring holds.  They must wait as several records
 * that each fit the ring, not as one that never does (which blocked
 * everything from a to b for good).
 */
START_TEST(test_big_group_waits_in_pieces)
{
	struct inbox *a, *b, *ib = rig_open(&a, &b, BIG_QUEUE, BIG_QUEUE);
	static struct got got[13000];
	struct sink s = { got, 0, 13000 };
	static char buf[MAX_PAYLOAD];
	uint32_t i, nfill;
	int rounds;

	/* Distinct frames of 1,000 bytes until they wait. */
	for (nfill = 0; inbox_flush(a, 1) == 0; nfill++) {
		ck_assert_uint_lt(nfill, 1000);
		(void)snprintf(buf, sizeof(buf), "%u", nfill);
		memset(buf + strlen(buf), 'f', 999 - strlen(buf));
		buf[999] = '\0';
		ck_assert_int_eq(send_msg(a, 1, INBOX_DELIVER, nfill, buf,
		    999), 0);
	}
	(void)snprintf(buf, sizeof(buf), "to the group\n");
	for (i = 0; i < 12000; i++)
		ck_assert_int_eq(send_msg(a, 1, INBOX_DELIVER, 100000 + i, buf,
		    strlen(buf)), 0);
	for (rounds = 0; inbox_flush(a, 1) == 1; rounds++) {
		ck_assert_msg(rounds < 1000, "after %d rounds of reading, "
		    "%zu of %u messages arrived and the rest still wait",
		    rounds, s.n, nfill + 12000);
		(void)inbox_poll(b, collect, &s);
	}
	(void)inbox_poll(b, collect, &s);
	ck_assert_uint_eq(s.n, nfill + 12000);
	for (i = 0; i < 12000; i++) {
		ck_assert_uint_eq(got[nfill + i].id, 100000 + i);
		ck_assert_str_eq(got[nfill + i].frame, "to the group\n");
	}
	rig_close(ib, a, b);
}
END_TEST

/* A full queue refuses; what was taken arrives, and room comes back. */
START_TEST(test_full_queue_refuses)
{
	struct inbox *a, *b, *ib = rig_open(&a, &b, 16 * 1024, BIG_QUEUE);
	static struct got got[400];
	struct sink s = { got, 0, 400 };
	static char buf[MAX_PAYLOAD];
	uint32_t i, taken;

	for (i = 0; i < 400; i++) {
		(void)snprintf(buf, sizeof(buf), "%u", i);
		memset(buf + strlen(buf), 'z', 999 - strlen(buf));
		buf[999] = '\0';
		if (send_msg(a, 1, INBOX_DELIVER, i, buf, 999) == -1)
			break;
	}
	taken = i;
	/* 128 KiB of ring and 16 KiB of queue, 1 KiB a record. */
	ck_assert_uint_gt(taken, 128);
	ck_assert_uint_lt(taken, 160);
	drain(a, b, &s);
	ck_assert_uint_eq(s.n, taken);
	for (i = 0; i < taken; i++)
		ck_assert_uint_eq(got[i].id, i);
	send_deliver(a, 999, "again\n");
	(void)inbox_flush(a, 1);
	ck_assert_uint_eq(inbox_poll(b, collect, &s), 1);
	ck_assert_str_eq(got[taken].frame, "again\n");
	/* Larger than any message may be: refused, not truncated. */
	ck_assert_int_eq(send_msg(a, 1, INBOX_DELIVER, 1, buf,
	    MAX_PAYLOAD + 1), -1);
	rig_close(ib, a, b);
}
END_TEST

/* A sleeping receiver is woken once; an awake one is not woken. */
START_TEST(test_wakeups)
{
	struct inbox *a, *b, *ib = rig_open(&a, &b, BIG_QUEUE, BIG_QUEUE);
	static struct got got[16];
	struct sink s = { got, 0, 16 };

	ck_assert_int_eq(woken(inbox_wake_fd(b)), 0);
	ck_assert_int_eq(inbox_sleep(b), 1);
	send_deliver(a, 1, "x\n");
	ck_assert_int_eq(woken(inbox_wake_fd(b)), 0);	/* not published */
	(void)inbox_flush(a, 1);
	ck_assert_int_eq(woken(inbox_wake_fd(b)), 1);
	send_deliver(a, 2, "y\n");
	(void)inbox_flush(a, 1);			/* already woken */
	ck_assert_int_eq(woken(inbox_wake_fd(b)), 0);
	inbox_woke(b);
	/* Records wait: not a time to sleep. */
	ck_assert_int_eq(inbox_sleep(b), 0);
	ck_assert_uint_eq(inbox_poll(b, collect, &s), 2);
	send_deliver(a, 3, "z\n");
	(void)inbox_flush(a, 1);			/* b is awake */
	ck_assert_int_eq(woken(inbox_wake_fd(b)), 0);
	ck_assert_uint_eq(inbox_poll(b, collect, &s), 1);
	ck_assert_int_eq(woken(inbox_wake_fd(a)), 0);
	rig_close(ib, a, b);
}
END_TEST

/* A sender waiting for room is woken when the receiver makes some. */
START_TEST(test_room_wakeup)
{
	struct inbox *a, *b, *ib = rig_open(&a, &b, BIG_QUEUE, BIG_QUEUE);
	static struct got got[400];
	struct sink s = { got, 0, 400 };
	static char buf[2000];
	uint32_t i;

	memset(buf, 'r', sizeof(buf));
	for (i = 0; i < 200; i++)
		ck_assert_int_eq(send_msg(a, 1, INBOX_DELIVER, i, buf,
		    sizeof(buf) - i % 2), 0);
	ck_assert_int_eq(inbox_flush(a, 1), 1);
	ck_assert_int_eq(woken(inbox_wake_fd(a)), 0);
	ck_assert_uint_gt(inbox_poll(b, collect, &s), 0);
	ck_assert_int_eq(woken(inbox_wake_fd(a)), 1);
	ck_assert_int_eq(woken(inbox_wake_fd(a)), 0);	/* once */
	while (inbox_flush(a, 1) == 1) {
		ck_assert_uint_gt(inbox_poll(b, collect, &s), 0);
		ck_assert_int_eq(woken(inbox_wake_fd(a)), 1);
	}
	(void)inbox_poll(b, collect, &s);
	ck_assert_uint_eq(s.n, 200);
	rig_close(ib, a, b);
}
END_TEST

/*
 * A respawned sender writes after the last record its predecessor
 * published (what it had not published is lost); a respawned receiver
 * reads on after what its predecessor handled.
 */
START_TEST(test_respawn)
{
	struct inbox *a, *b, *ib = rig_open(&a, &b, BIG_QUEUE, BIG_QUEUE);
	static struct got got[16];
	struct sink s = { got, 0, 16 };

	send_deliver(a, 1, "one\n");
	send_deliver(a, 2, "two\n");
	(void)inbox_flush(a, 1);
	send_deliver(a, 3, "never published\n");
	inbox_detach(a);
	a = worker_open(ib, 0, BIG_QUEUE, BIG_QUEUE);
	send_deliver(a, 4, "four\n");
	(void)inbox_flush(a, 1);
	ck_assert_uint_eq(inbox_poll(b, collect, &s), 3);
	ck_assert_uint_eq(got[0].id, 1);
	ck_assert_uint_eq(got[1].id, 2);
	ck_assert_uint_eq(got[2].id, 4);
	ck_assert_str_eq(got[2].frame, "four\n");
	inbox_detach(b);
	b = worker_open(ib, 1, BIG_QUEUE, BIG_QUEUE);
	ck_assert_uint_eq(inbox_poll(b, collect, &s), 0);
	send_deliver(a, 5, "five\n");
	(void)inbox_flush(a, 1);
	ck_assert_uint_eq(inbox_poll(b, collect, &s), 1);
	ck_assert_uint_eq(got[3].id, 5);
	rig_close(ib, a, b);
}
END_TEST

/* The master's kicks: delivered, and refused (never queued) when full. */
START_TEST(test_master_kick)
{
	struct inbox *ib = master_open();
	struct inbox *b = worker_open(ib, 1, BIG_QUEUE, BIG_QUEUE);
	static struct got got[400];
	struct sink s = { got, 0, 400 };
	static char buf[MAX_PAYLOAD];
	int i;

	ck_assert_int_eq(inbox_sleep(b), 1);
	ck_assert_int_eq(send_msg(ib, 1, INBOX_KICK, 42, NULL, 0), 0);
	ck_assert_int_eq(inbox_flush(ib, 1), 0);
	ck_assert_int_eq(woken(inbox_wake_fd(b)), 1);
	inbox_woke(b);
	ck_assert_uint_eq(inbox_poll(b, collect, &s), 1);
	ck_assert_int_eq(got[0].type, INBOX_KICK);
	ck_assert_uint_eq(got[0].id, 42);
	ck_assert_uint_eq(got[0].token, 1042);
	memset(buf, 'k', sizeof(buf));
	for (i = 0; i < 100; i++)
		if (send_msg(ib, 1, INBOX_KICK, 1, buf, sizeof(buf)) == -1)
			break;
	ck_assert_int_lt(i, 100);	/* 128 KiB hold about 31 */
	ck_assert_int_gt(i, 25);
	ck_assert_int_eq(inbox_flush(ib, 1), 0);
	inbox_detach(b);
	inbox_destroy(ib);
}
END_TEST

/* Congested while the queue is over busy_at and the receiver reads;
 * not while it has stopped reading for a second. */
START_TEST(test_congested)
{
	struct inbox *a, *b, *ib = rig_open(&a, &b, BIG_QUEUE, 4096);
	static struct got got[400];
	struct sink s = { got, 0, 400 };
	static char buf[1000];
	uint32_t i;

	/* 1,040 bytes a record: 126 fit in the ring. */
	memset(buf, 'c', sizeof(buf));
	for (i = 0; i < 120; i++) {
		buf[0] = (char)('A' + i % 2);
		ck_assert_int_eq(send_msg(a, 1, INBOX_DELIVER, i, buf,
		    sizeof(buf)), 0);
	}
	ck_assert_int_eq(inbox_congested(a), 0);	/* in the ring */
	for (; i < 140; i++) {
		buf[0] = (char)('A' + i % 2);
		ck_assert_int_eq(send_msg(a, 1, INBOX_DELIVER, i, buf,
		    sizeof(buf)), 0);
	}
	ck_assert_int_eq(inbox_congested(a), 1);
	(void)inbox_flush(a, 1);
	(void)usleep(1100 * 1000);
	ck_assert_int_eq(inbox_congested(a), 0);	/* nobody reads */
	ck_assert_uint_gt(inbox_poll(b, collect, &s), 0);
	ck_assert_int_eq(inbox_congested(a), 1);	/* reading again */
	drain(a, b, &s);
	ck_assert_int_eq(inbox_congested(a), 0);
	ck_assert_uint_eq(s.n, 140);
	rig_close(ib, a, b);
}
END_TEST

#define FORK_N 300000

/* The forked sender: numbered frames, published in bursts of varying
 * length, sometimes after a pause; waits for room on its eventfd. */
static void
fork_sender(struct inbox *ib)
{
	struct inbox *a = inbox_attach(ib, 0, 256 * 1024, 1024 * 1024);
	struct pollfd p;
	char buf[64];
	uint32_t i;
	uint64_t v;
	int len;

	if (a == NULL)
		_exit(2);
	p.fd = inbox_wake_fd(a);
	p.events = POLLIN;
	for (i = 0; i < FORK_N; i++) {
		len = snprintf(buf, sizeof(buf), "%u\n", i / 3);
		while (send_msg(a, 1, INBOX_DELIVER, i, buf, (size_t)len) ==
		    -1) {
			/* The queue is full: wait for room. */
			if (inbox_flush(a, 1) == 1 && poll(&p, 1, 5000) != 1)
				_exit(3);
			(void)!read(p.fd, &v, sizeof(v));
		}
		if (i % (1 + i % 61) == 0)
			(void)inbox_flush(a, 1);
		if (i % 5003 == 0)
			(void)usleep(200);
	}
	while (inbox_flush(a, 1) == 1) {
		if (poll(&p, 1, 5000) != 1)
			_exit(3);
		(void)!read(p.fd, &v, sizeof(v));
	}
	_exit(0);
}

struct order {
	uint32_t next;
	int bad;
};

static void
check_order(void *arg, const struct inbox_msg *m)
{
	struct order *o = arg;
	char want[64];
	int len = snprintf(want, sizeof(want), "%u\n", o->next / 3);

	if (m->id != o->next || m->token != 1000 + (uint64_t)m->id ||
	    m->len != (size_t)len || memcmp(m->data, want, m->len) != 0)
		o->bad++;
	o->next++;
}

/*
 * Two processes, as in chatd: the receiver sleeps in epoll_wait whenever
 * its rings are empty.  A lost wakeup would leave it asleep with records
 * waiting (the 5 s wait fails the test); every message arrives in order.
 */
START_TEST(test_two_processes)
{
	struct inbox *ib = master_open();
	struct inbox *b = worker_open(ib, 1, BIG_QUEUE, BIG_QUEUE);
	struct order o = { 0, 0 };
	struct epoll_event ev;
	int ep, status, sleeps = 0;
	pid_t pid;

	ck_assert_int_ne(ep = epoll_create1(0), -1);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLET;
	ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, inbox_wake_fd(b), &ev),
	    0);
	ck_assert_int_ne(pid = fork(), -1);
	if (pid == 0)
		fork_sender(ib);
	while (o.next < FORK_N) {
		if (inbox_sleep(b)) {
			sleeps++;
			ck_assert_msg(epoll_wait(ep, &ev, 1, 5000) == 1,
			    "asleep with %u of %u received", o.next, FORK_N);
			inbox_woke(b);
		}
		(void)inbox_poll(b, check_order, &o);
		ck_assert_int_eq(o.bad, 0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert_uint_eq(o.next, FORK_N);
	ck_assert_int_gt(sleeps, 0);
	(void)close(ep);
	inbox_detach(b);
	inbox_destroy(ib);
}
END_TEST

static Suite *
inbox_suite(void)
{
	Suite *s = suite_create("inbox");
	TCase *tc = tcase_create("rings");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_repeated_frame_crosses_once);
	tcase_add_loop_test(tc, test_bad_record_dropped, 0, 4);
	tcase_add_test(tc, test_same_buffer_other_frame);
	tcase_add_test(tc, test_order_across_types);
	tcase_add_test(tc, test_wrap_and_wait);
	tcase_add_test(tc, test_big_group_waits_in_pieces);
	tcase_add_test(tc, test_full_queue_refuses);
	tcase_add_test(tc, test_wakeups);
	tcase_add_test(tc, test_room_wakeup);
	tcase_add_test(tc, test_respawn);
	tcase_add_test(tc, test_master_kick);
	tcase_add_test(tc, test_congested);
	tcase_add_test(tc, test_two_processes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(inbox_suite());
	int nfailed;

	srunner_run_all(sr, CK_NORMAL);
	nfailed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nfailed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
