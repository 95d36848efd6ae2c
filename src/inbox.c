/*
 * inbox.c - the per-slot datagram inboxes of inbox.h.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include "inbox.h"
#include "log.h"

struct inbox_hdr {
	uint8_t type;
	uint8_t pad[3];
	uint32_t id;
	uint32_t origin;
	uint32_t pad2;
	uint64_t token;
};

/* One record of an INBOX_BATCH datagram, followed by len bytes; or, with
 * INBOX_REC_SAME for len, by none: its frame is the previous record's
 * (a group message fanned out to many members of one worker travels
 * once, not once per member). */
struct inbox_rec {
	uint32_t uid;
	uint32_t len;
	uint64_t token;
};
#define INBOX_REC_SAME	UINT32_MAX

/* A datagram waiting to be sent: header and payload in data[0..len). */
struct inbox_pending {
	struct inbox_pending *next;
	size_t len, cap;
	char data[];
};

struct inbox_slot {
	int rx, tx;
	struct inbox_pending *head, *tail;
	size_t queued;
	struct inbox_pending *batch;	/* being filled; NULL when none */
	uint32_t nrecs;			/* records in batch */
	size_t last_off, last_len;	/* the last record's frame in batch */
	int batch_used;			/* since the last inbox_tick */
	uint64_t progress_ms;		/* queue last moved (see congested) */
};

struct inbox {
	int nslots;
	int self;
	size_t max_queued;
	size_t busy_at;		/* congested above this (see inbox.h) */
	size_t batch_cap;	/* largest batch datagram, header included */
	struct inbox_slot *slots;
};

/* A batch datagram stays well inside the receiver's 64 KiB scratch
 * buffer (worker.c) and the sockets' buffers. */
#define INBOX_BATCH_CAP (60 * 1024)
/* A queue that has not moved for this long has no reader (its worker is
 * being restarted): do not hold the clients back for it. */
#define INBOX_STALL_MS 1000

static uint64_t
inbox_now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct inbox *
inbox_create(int nslots, size_t max_payload, char *err, size_t errlen)
{
	struct inbox *ib;
	int i, sv[2], sz;

	if ((ib = calloc(1, sizeof(*ib))) == NULL ||
	    (ib->slots = calloc((size_t)nslots, sizeof(*ib->slots))) == NULL) {
		free(ib);
		(void)snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ib->nslots = nslots;
	ib->self = -1;
	ib->batch_cap = INBOX_BATCH_CAP;
	if (max_payload < INBOX_BATCH_CAP)
		max_payload = INBOX_BATCH_CAP;
	sz = (int)(max_payload + sizeof(struct inbox_hdr) + 1024) * 4;
	for (i = 0; i < nslots; i++) {
		if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0, sv) == -1) {
			(void)snprintf(err, errlen, "socketpair: %s",
			    strerror(errno));
			ib->nslots = i;
			inbox_destroy(ib);
			return NULL;
		}
		/* Best effort: the kernel caps these at wmem_max/rmem_max. */
		(void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		(void)setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		ib->slots[i].rx = sv[0];
		ib->slots[i].tx = sv[1];
	}
	return ib;
}

void
inbox_worker_init(struct inbox *ib, int slot, size_t max_queued,
    size_t busy_at)
{
	int i;

	ib->self = slot;
	ib->max_queued = max_queued;
	ib->busy_at = busy_at;
	for (i = 0; i < ib->nslots; i++) {
		if (i != slot) {
			(void)close(ib->slots[i].rx);
			ib->slots[i].rx = -1;
		}
	}
}

int
inbox_nslots(const struct inbox *ib)
{
	return ib->nslots;
}

int
inbox_rx_fd(const struct inbox *ib, int slot)
{
	return ib->slots[slot].rx;
}

int
inbox_tx_fd(const struct inbox *ib, int slot)
{
	return ib->slots[slot].tx;
}

static ssize_t
inbox_sendv(int fd, const struct inbox_hdr *h, const char *data, size_t len)
{
	struct iovec iov[2];
	struct msghdr mh;

	iov[0].iov_base = (void *)h;
	iov[0].iov_len = sizeof(*h);
	iov[1].iov_base = (void *)data;
	iov[1].iov_len = len;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = 2;
	return sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* Queue data[0..len) (a whole datagram) behind what waits for slot. */
static void
inbox_enqueue(struct inbox_slot *s, struct inbox_pending *p, int *want_out)
{
	p->next = NULL;
	if (s->tail != NULL)
		s->tail->next = p;
	else {
		s->head = p;
		s->progress_ms = inbox_now_ms();
		*want_out = 1;
	}
	s->tail = p;
	s->queued += p->len;
}

void
inbox_flush(struct inbox *ib, int slot, int *want_out)
{
	struct inbox_slot *s = &ib->slots[slot];
	struct inbox_pending *b = s->batch;
	struct inbox_hdr h;

	*want_out = 0;
	if (b == NULL || s->nrecs == 0)
		return;
	memset(&h, 0, sizeof(h));
	h.type = INBOX_BATCH;
	h.id = s->nrecs;
	h.origin = (uint32_t)ib->self;
	memcpy(b->data, &h, sizeof(h));
	s->nrecs = 0;
	s->batch_used = 1;
	if (s->head != NULL)
		(void)inbox_drain(ib, slot);
	if (s->head == NULL) {
		if (send(s->tx, b->data, b->len, MSG_DONTWAIT | MSG_NOSIGNAL)
		    >= 0) {
			b->len = sizeof(h);	/* keep the buffer for reuse */
			return;
		}
		if (errno != EAGAIN && errno != ENOBUFS) {
			/* Cannot happen with our own socket sizes; say so
			 * loudly rather than lose messages silently. */
			log_warn("%s: to worker %d, %u message(s) lost",
			    __func__, slot, h.id);
			b->len = sizeof(h);
			return;
		}
	}
	/* Its room was counted against max_queued when it was filled. */
	s->batch = NULL;
	inbox_enqueue(s, b, want_out);
}

void
inbox_tick(struct inbox *ib)
{
	struct inbox_slot *s;
	int i;

	for (i = 0; i < ib->nslots; i++) {
		s = &ib->slots[i];
		if (s->batch != NULL && s->nrecs == 0 && !s->batch_used) {
			free(s->batch);
			s->batch = NULL;
		}
		s->batch_used = 0;
	}
}

/* Append an INBOX_DELIVER to slot's batch; -1 when there is no room. */
static int
inbox_batch_add(struct inbox *ib, int slot, const struct inbox_msg *m,
    int *want_out)
{
	struct inbox_slot *s = &ib->slots[slot];
	struct inbox_rec r;
	/* The same frame as the last record's (compared, not trusted by
	 * its address: the caller's scratch holds the next message). */
	int same = s->batch != NULL && s->nrecs > 0 && m->len > 0 &&
	    m->len == s->last_len && memcmp(s->batch->data + s->last_off,
	    m->data, m->len) == 0;
	size_t need = sizeof(r) + (same ? 0 : m->len);

	if (s->batch != NULL && s->batch->len + need > s->batch->cap) {
		inbox_flush(ib, slot, want_out);
		same = 0;	/* a batch starts with its frame */
		need = sizeof(r) + m->len;
	}
	if (s->queued + (s->batch != NULL ? s->batch->len : 0) + need >
	    ib->max_queued) {
		log_warnx("inbox queue to worker %d is full (%zu bytes)",
		    slot, ib->max_queued);
		return -1;
	}
	if (s->batch == NULL) {
		if ((s->batch = malloc(sizeof(*s->batch) + ib->batch_cap)) ==
		    NULL)
			return -1;
		s->batch->cap = ib->batch_cap;
		s->batch->len = sizeof(struct inbox_hdr);
	}
	r.uid = m->id;
	r.len = same ? INBOX_REC_SAME : (uint32_t)m->len;
	r.token = m->token;
	memcpy(s->batch->data + s->batch->len, &r, sizeof(r));
	if (!same) {
		s->last_off = s->batch->len + sizeof(r);
		s->last_len = m->len;
		if (m->len > 0)
			memcpy(s->batch->data + s->last_off, m->data, m->len);
	}
	s->batch->len += need;
	s->nrecs++;
	return 0;
}

int
inbox_send(struct inbox *ib, int slot, const struct inbox_msg *m,
    int *want_out)
{
	struct inbox_slot *s = &ib->slots[slot];
	struct inbox_pending *p;
	struct inbox_hdr h;

	*want_out = 0;
	if (m->type == INBOX_DELIVER && sizeof(struct inbox_hdr) +
	    sizeof(struct inbox_rec) + m->len <= ib->batch_cap)
		return inbox_batch_add(ib, slot, m, want_out);
	/* Anything else goes after what is batched for the slot (which
	 * may start the queue: *want_out). */
	inbox_flush(ib, slot, want_out);
	memset(&h, 0, sizeof(h));
	h.type = m->type;
	h.id = m->id;
	h.token = m->token;
	h.origin = (uint32_t)ib->self;
	if (s->head == NULL) {
		if (inbox_sendv(s->tx, &h, m->data, m->len) >= 0)
			return 0;
		if (errno != EAGAIN && errno != ENOBUFS) {
			log_warn("%s: to worker %d", __func__, slot);
			return -1;
		}
	}
	if (s->queued + sizeof(h) + m->len > ib->max_queued) {
		log_warnx("inbox queue to worker %d is full (%zu bytes)",
		    slot, ib->max_queued);
		return -1;
	}
	if ((p = malloc(sizeof(*p) + sizeof(h) + m->len)) == NULL)
		return -1;
	p->len = p->cap = sizeof(h) + m->len;
	memcpy(p->data, &h, sizeof(h));
	if (m->len > 0)
		memcpy(p->data + sizeof(h), m->data, m->len);
	inbox_enqueue(s, p, want_out);
	return 0;
}

int
inbox_drain(struct inbox *ib, int slot)
{
	struct inbox_slot *s = &ib->slots[slot];
	struct inbox_pending *p;

	while ((p = s->head) != NULL) {
		if (send(s->tx, p->data, p->len, MSG_DONTWAIT | MSG_NOSIGNAL)
		    == -1) {
			if (errno == EAGAIN || errno == ENOBUFS)
				return 0;
			log_warn("%s: to worker %d, dropping a queued "
			    "datagram", __func__, slot);
		}
		s->head = p->next;
		if (s->head == NULL)
			s->tail = NULL;
		s->queued -= p->len;
		s->progress_ms = inbox_now_ms();
		free(p);
	}
	return 1;
}

int
inbox_congested(const struct inbox *ib)
{
	const struct inbox_slot *s;
	uint64_t now = 0;
	int i;

	for (i = 0; i < ib->nslots; i++) {
		s = &ib->slots[i];
		if (s->queued <= ib->busy_at)
			continue;
		if (now == 0)
			now = inbox_now_ms();
		if (now - s->progress_ms < INBOX_STALL_MS)
			return 1;
	}
	return 0;
}

int
inbox_batch_next(const struct inbox_msg *b, size_t *off, struct inbox_msg *m)
{
	struct inbox_rec r;

	if (*off == b->len)
		return 0;
	if (b->len - *off < sizeof(r))
		fatalx("%s: truncated batch record", __func__);
	memcpy(&r, b->data + *off, sizeof(r));
	if (r.len == INBOX_REC_SAME) {
		/* m is still the previous record. */
		if (*off == 0 || m->type != INBOX_DELIVER)
			fatalx("%s: repeat without a frame", __func__);
		*off += sizeof(r);
		m->id = r.uid;
		m->token = r.token;
		return 1;
	}
	*off += sizeof(r);
	if (b->len - *off < r.len)
		fatalx("%s: truncated batch record", __func__);
	memset(m, 0, sizeof(*m));
	m->type = INBOX_DELIVER;
	m->id = r.uid;
	m->token = r.token;
	m->origin = b->origin;
	m->data = b->data + *off;
	m->len = r.len;
	*off += r.len;
	return 1;
}

int
inbox_recv(struct inbox *ib, struct inbox_msg *m, char *buf, size_t buflen)
{
	struct inbox_hdr h;
	struct iovec iov[2];
	struct msghdr mh;
	ssize_t n;

	iov[0].iov_base = &h;
	iov[0].iov_len = sizeof(h);
	iov[1].iov_base = buf;
	iov[1].iov_len = buflen;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = 2;
	n = recvmsg(ib->slots[ib->self].rx, &mh, MSG_DONTWAIT);
	if (n == -1)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if ((size_t)n < sizeof(h) || (mh.msg_flags & MSG_TRUNC))
		fatalx("%s: malformed datagram of %zd bytes", __func__, n);
	m->type = h.type;
	m->id = h.id;
	m->token = h.token;
	m->origin = h.origin;
	m->data = buf;
	m->len = (size_t)n - sizeof(h);
	return 1;
}

void
inbox_destroy(struct inbox *ib)
{
	int i;

	if (ib == NULL)
		return;
	for (i = 0; i < ib->nslots; i++) {
		if (ib->slots[i].rx >= 0)
			(void)close(ib->slots[i].rx);
		(void)close(ib->slots[i].tx);
		while (ib->slots[i].head != NULL) {
			struct inbox_pending *p = ib->slots[i].head;

			ib->slots[i].head = p->next;
			free(p);
		}
		free(ib->slots[i].batch);
	}
	free(ib->slots);
	free(ib);
}
