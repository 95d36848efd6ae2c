/*
 * inbox.c - the shared-memory rings between workers of inbox.h.
 *
 * Positions are byte counts since the ring was made (64 bits: they never
 * wrap); a position's place in the ring is pos & (cap - 1).  A record never
 * straddles the end of the ring: when it does not fit in what is left, the
 * sender pads to the end first (a record of type 0, or nothing when less
 * than a header is left).  Only the sender writes tail, only the receiver
 * head; the flags are set by one side and cleared by the other with an
 * exchange, so each wakeup is written once.
 */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

#include "inbox.h"
#include "log.h"

#define INBOX_LINE	64
/* The smallest ring; it also holds two of the largest records. */
#define INBOX_RING_MIN	(128 * 1024)
/* A queue that has not moved for this long has no reader (its worker is
 * being restarted): do not hold the clients back for it. */
#define INBOX_STALL_MS	1000

/* Per worker, shared: set while it sleeps or is about to. */
struct inbox_wake {
	_Alignas(INBOX_LINE) atomic_uint sleeping;
};

/* One ring's shared header; cap bytes of records follow it. */
struct inbox_ring {
	_Alignas(INBOX_LINE) atomic_uint_fast64_t tail;	/* sender's */
	_Alignas(INBOX_LINE) atomic_uint_fast64_t head;	/* receiver's */
	atomic_uint want_room;	/* the sender waits for room */
	_Alignas(INBOX_LINE) char data[];
};

/*
 * A record: this header, len bytes of data padded to 8, and for an
 * INBOX_DELIVER `id` recipients (struct inbox_to).
 */
struct inbox_rec {
	uint32_t size;		/* the whole record, a multiple of 8 */
	uint8_t type;		/* enum inbox_type; 0: padding to the end */
	uint8_t pad[3];
	uint32_t id;		/* INBOX_DELIVER: recipients; else the id */
	uint32_t len;		/* data bytes */
	uint64_t token;		/* not INBOX_DELIVER */
};

struct inbox_to {
	uint32_t uid;
	uint32_t pad;
	uint64_t token;
};

/* A record waiting for room in a full ring. */
struct inbox_wait {
	struct inbox_wait *next;
	size_t cap;
	struct inbox_rec rec;	/* and the rest of the record */
};

/* The sender's side of the ring towards one worker (process-local). */
struct inbox_out {
	struct inbox_ring *r;
	uint64_t tail;		/* written up to here */
	uint64_t pub;		/* published up to here */
	uint64_t last;		/* the last record, if last_open */
	int last_open;		/* ... an unpublished INBOX_DELIVER */
	struct inbox_wait *wait, **wait_end, **wait_last;
	int wait_last_open;	/* the last waiting record takes recipients */
	size_t waiting;		/* bytes */
	uint64_t head_seen, progress_ms;	/* see inbox_congested */
	struct log_every refused;	/* records refused (the warning) */
};

struct inbox {
	int nslots;
	int self;		/* slot; -1 for the master */
	size_t cap;		/* bytes of one ring */
	size_t max_payload;
	size_t max_queued, busy_at;
	char *base;		/* the shared segment */
	size_t base_len;
	struct inbox_wake *wake;	/* [nslots] */
	int *efd;		/* [nslots] */
	struct inbox_out *out;	/* [nslots], by destination */
	uint64_t *in;		/* [nslots + 1], by sender: read up to */
};

static uint64_t
inbox_now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static size_t
pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* Where the ring from sender src (nslots: the master) to worker dst
 * starts in the shared segment. */
static size_t
inbox_ring_off(const struct inbox *ib, int src, int dst)
{
	size_t one = sizeof(struct inbox_ring) + ib->cap;

	return (size_t)ib->nslots * sizeof(struct inbox_wake) +
	    ((size_t)src * (size_t)ib->nslots + (size_t)dst) * one;
}

static struct inbox_ring *
inbox_ring(const struct inbox *ib, int src, int dst)
{
	return (struct inbox_ring *)(void *)(ib->base +
	    inbox_ring_off(ib, src, dst));
}

static size_t
inbox_rec_size(const struct inbox_msg *m)
{
	return sizeof(struct inbox_rec) + pad8(m->len) +
	    (m->type == INBOX_DELIVER ? sizeof(struct inbox_to) : 0);
}

/* Write m as a whole record at p (size bytes). */
static void
inbox_rec_write(char *p, const struct inbox_msg *m, size_t size)
{
	struct inbox_rec rec;
	struct inbox_to to;

	memset(&rec, 0, sizeof(rec));
	rec.size = (uint32_t)size;
	rec.type = m->type;
	rec.len = (uint32_t)m->len;
	if (m->type == INBOX_DELIVER) {
		rec.id = 1;
		memset(&to, 0, sizeof(to));
		to.uid = m->id;
		to.token = m->token;
		memcpy(p + size - sizeof(to), &to, sizeof(to));
	} else {
		rec.id = m->id;
		rec.token = m->token;
	}
	memcpy(p, &rec, sizeof(rec));
	if (m->len > 0)
		memcpy(p + sizeof(rec), m->data, m->len);
}

/* Add one more recipient to the DELIVER record at rec (room checked). */
static void
inbox_rec_extend(struct inbox_rec *rec, const struct inbox_msg *m)
{
	struct inbox_to to;

	memset(&to, 0, sizeof(to));
	to.uid = m->id;
	to.token = m->token;
	memcpy((char *)rec + rec->size, &to, sizeof(to));
	rec->size += sizeof(to);
	rec->id++;
}

/* Does the DELIVER record at rec carry m's frame?  Compared, not trusted
 * by address: the caller's scratch holds the next message. */
static int
inbox_rec_same(const struct inbox_rec *rec, const struct inbox_msg *m)
{
	return rec->len == m->len && (m->len == 0 ||
	    memcmp((const char *)rec + sizeof(*rec), m->data, m->len) == 0);
}

/*
 * Room for a record of size bytes at o's tail: 0 and the padding to write
 * first in *pad, or -1 when the ring is too full.
 */
static int
inbox_room(const struct inbox *h, struct inbox_out *o, size_t size,
    size_t *pad)
{
	uint64_t head = atomic_load(&o->r->head);
	size_t used = (size_t)(o->tail - head);
	size_t to_end = h->cap - (size_t)(o->tail & (h->cap - 1));

	*pad = size <= to_end ? 0 : to_end;
	return used + *pad + size <= h->cap ? 0 : -1;
}

/* Write the padding (see inbox_room) and reserve size bytes: where. */
static char *
inbox_reserve(const struct inbox *h, struct inbox_out *o, size_t size,
    size_t pad)
{
	char *p;

	if (pad >= sizeof(struct inbox_rec)) {
		struct inbox_rec rec;

		memset(&rec, 0, sizeof(rec));
		rec.size = (uint32_t)pad;
		memcpy(o->r->data + (o->tail & (h->cap - 1)), &rec,
		    sizeof(rec));
	}
	o->tail += pad;
	p = o->r->data + (o->tail & (h->cap - 1));
	o->last = o->tail;
	o->tail += size;
	return p;
}

struct inbox *
inbox_create(int nslots, size_t max_payload, char *err, size_t errlen)
{
	struct inbox *ib;
	size_t need;
	int i;

	if ((ib = calloc(1, sizeof(*ib))) == NULL) {
		(void)snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ib->nslots = nslots;
	ib->self = -1;
	ib->base = MAP_FAILED;
	if ((ib->efd = malloc((size_t)nslots * sizeof(int))) != NULL)
		for (i = 0; i < nslots; i++)
			ib->efd[i] = -1;
	if (ib->efd == NULL ||
	    (ib->out = calloc((size_t)nslots, sizeof(*ib->out))) == NULL) {
		(void)snprintf(err, errlen, "out of memory");
		inbox_destroy(ib);
		return NULL;
	}
	ib->max_payload = max_payload;
	/* Two of the largest records fit, whatever the padding. */
	need = 2 * (sizeof(struct inbox_rec) + pad8(max_payload) +
	    sizeof(struct inbox_to));
	for (ib->cap = INBOX_RING_MIN; ib->cap < need; ib->cap *= 2)
		;
	ib->base_len = inbox_ring_off(ib, nslots + 1, 0);
	/* Only the pages used are backed: a ring between two workers that
	 * never talk costs nothing. */
	ib->base = mmap(NULL, ib->base_len, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (ib->base == MAP_FAILED) {
		(void)snprintf(err, errlen, "mmap of %zu bytes: %s",
		    ib->base_len, strerror(errno));
		inbox_destroy(ib);
		return NULL;
	}
	ib->wake = (struct inbox_wake *)(void *)ib->base;
	for (i = 0; i < nslots; i++) {
		if ((ib->efd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) ==
		    -1) {
			(void)snprintf(err, errlen, "eventfd: %s",
			    strerror(errno));
			inbox_destroy(ib);
			return NULL;
		}
		ib->out[i].r = inbox_ring(ib, nslots, i);
	}
	return ib;
}

struct inbox *
inbox_attach(const struct inbox *ib, int slot, size_t max_queued,
    size_t busy_at)
{
	struct inbox *h;
	int i;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	*h = *ib;
	h->self = slot;
	h->max_queued = max_queued;
	h->busy_at = busy_at;
	h->out = calloc((size_t)h->nslots, sizeof(*h->out));
	h->in = calloc((size_t)h->nslots + 1, sizeof(*h->in));
	if (h->out == NULL || h->in == NULL) {
		free(h->out);
		free(h->in);
		free(h);
		return NULL;
	}
	/* Go on where this slot's previous worker stopped. */
	for (i = 0; i < h->nslots; i++) {
		struct inbox_out *o = &h->out[i];

		o->r = inbox_ring(h, slot, i);
		o->tail = o->pub = atomic_load(&o->r->tail);
		o->wait_end = &o->wait;
	}
	for (i = 0; i <= h->nslots; i++)
		if (i != slot)
			h->in[i] = atomic_load(&inbox_ring(h, i, slot)->head);
	atomic_store(&h->wake[slot].sleeping, 0);
	return h;
}

static void
inbox_free_waiting(struct inbox *h)
{
	struct inbox_wait *p;
	int i;

	for (i = 0; h->out != NULL && i < h->nslots; i++)
		while ((p = h->out[i].wait) != NULL) {
			h->out[i].wait = p->next;
			free(p);
		}
}

void
inbox_detach(struct inbox *h)
{
	if (h == NULL)
		return;
	inbox_free_waiting(h);
	free(h->out);
	free(h->in);
	free(h);
}

int
inbox_wake_fd(const struct inbox *h)
{
	return h->efd[h->self];
}

size_t
inbox_ring_size(const struct inbox *ib)
{
	return ib->cap;
}

char *
inbox_ring_bytes(const struct inbox *h, int src, int dst)
{
	return inbox_ring(h, src, dst)->data;
}

/*
 * Queue m behind what already waits for room in slot's ring.  Another
 * recipient of the last waiting frame extends its record while the
 * record stays within half the ring, so that it fits the ring once the
 * receiver has caught up wherever the tail then is; past that, a new
 * record starts.
 */
static int
inbox_wait(struct inbox *h, int slot, const struct inbox_msg *m)
{
	struct inbox_out *o = &h->out[slot];
	struct inbox_wait *p, *q;
	unsigned long n;
	size_t size;

	if (m->type == INBOX_DELIVER && o->wait_last_open &&
	    inbox_rec_same(&(*o->wait_last)->rec, m) &&
	    (*o->wait_last)->rec.size + sizeof(struct inbox_to) <=
	    h->cap / 2) {
		p = *o->wait_last;
		if (o->waiting + sizeof(struct inbox_to) > h->max_queued)
			goto full;
		if (p->rec.size + sizeof(struct inbox_to) > p->cap) {
			if ((q = realloc(p, sizeof(*p) - sizeof(p->rec) +
			    2 * p->cap)) == NULL)
				return -1;
			/* The last record: the end of the queue. */
			q->cap *= 2;
			*o->wait_last = q;
			o->wait_end = &q->next;
			p = q;
		}
		inbox_rec_extend(&p->rec, m);
		o->waiting += sizeof(struct inbox_to);
		return 0;
	}
	size = inbox_rec_size(m);
	if (o->waiting + size > h->max_queued)
		goto full;
	if ((p = malloc(sizeof(*p) - sizeof(p->rec) + size)) == NULL)
		return -1;
	p->next = NULL;
	p->cap = size;
	inbox_rec_write((char *)&p->rec, m, size);
	if (o->wait == NULL) {
		o->head_seen = atomic_load(&o->r->head);
		o->progress_ms = inbox_now_ms();
	}
	o->wait_last = o->wait_end;
	*o->wait_end = p;
	o->wait_end = &p->next;
	o->wait_last_open = m->type == INBOX_DELIVER;
	o->waiting += size;
	return 0;
full:
	/* A worker that stopped reading: every record for it comes here. */
	if ((n = log_every(&o->refused)) > 0)
		log_warnx("inbox queue to worker %d is full (%zu bytes): %lu "
		    "record(s) refused", slot, h->max_queued, n);
	return -1;
}

int
inbox_send(struct inbox *h, int slot, const struct inbox_msg *m)
{
	struct inbox_out *o = &h->out[slot];
	struct inbox_rec *rec;
	size_t size, pad;

	if (m->len > h->max_payload)
		return -1;
	if (o->wait != NULL)
		return h->self >= 0 ? inbox_wait(h, slot, m) : -1;
	if (m->type == INBOX_DELIVER && o->last_open) {
		rec = (struct inbox_rec *)(void *)(o->r->data +
		    (o->last & (h->cap - 1)));
		/* The recipient goes right after the record: not past the
		 * ring's end. */
		if (inbox_rec_same(rec, m) && o->tail == o->last + rec->size &&
		    (o->tail & (h->cap - 1)) != 0 &&
		    inbox_room(h, o, sizeof(struct inbox_to), &pad) == 0 &&
		    pad == 0) {
			inbox_rec_extend(rec, m);
			o->tail += sizeof(struct inbox_to);
			return 0;
		}
	}
	size = inbox_rec_size(m);
	if (inbox_room(h, o, size, &pad) == -1) {
		o->last_open = 0;
		return h->self >= 0 ? inbox_wait(h, slot, m) : -1;
	}
	inbox_rec_write(inbox_reserve(h, o, size, pad), m, size);
	o->last_open = m->type == INBOX_DELIVER;
	return 0;
}

/* Move what waits for room into the ring, as far as it goes. */
static void
inbox_move_waiting(struct inbox *h, struct inbox_out *o)
{
	struct inbox_wait *p;
	size_t pad;

	while ((p = o->wait) != NULL &&
	    inbox_room(h, o, p->rec.size, &pad) == 0) {
		memcpy(inbox_reserve(h, o, p->rec.size, pad), &p->rec,
		    p->rec.size);
		o->waiting -= p->rec.size;
		o->wait = p->next;
		if (o->wait == NULL) {
			o->wait_end = &o->wait;
			o->wait_last_open = 0;
		} else if (o->wait_last == &p->next)
			o->wait_last = &o->wait;
		free(p);
		o->head_seen = atomic_load(&o->r->head);
		o->progress_ms = inbox_now_ms();
	}
	o->last_open = 0;
}

int
inbox_flush(struct inbox *h, int slot)
{
	struct inbox_out *o = &h->out[slot];
	uint64_t one = 1;
	size_t pad;

	for (;;) {
		if (o->wait != NULL)
			inbox_move_waiting(h, o);
		if (o->tail != o->pub) {
			atomic_store(&o->r->tail, o->tail);
			o->pub = o->tail;
			o->last_open = 0;
			if (atomic_load(&h->wake[slot].sleeping) &&
			    atomic_exchange(&h->wake[slot].sleeping, 0))
				(void)!write(h->efd[slot], &one, sizeof(one));
		}
		if (o->wait == NULL)
			return 0;
		/* Ask to be woken when there is room.  The receiver may
		 * have made some before it could see the request: then go
		 * round again (each round moves a record at least). */
		atomic_store(&o->r->want_room, 1);
		if (inbox_room(h, o, o->wait->rec.size, &pad) == -1)
			return 1;
	}
}

int
inbox_congested(struct inbox *h)
{
	struct inbox_out *o;
	uint64_t now = 0, head;
	int i;

	for (i = 0; i < h->nslots; i++) {
		o = &h->out[i];
		if (o->waiting <= h->busy_at)
			continue;
		if (now == 0)
			now = inbox_now_ms();
		head = atomic_load_explicit(&o->r->head, memory_order_relaxed);
		if (head != o->head_seen) {
			o->head_seen = head;
			o->progress_ms = now;
		}
		if (now - o->progress_ms < INBOX_STALL_MS)
			return 1;
	}
	return 0;
}

/* Handle the records of one ring; the number of messages. */
static size_t
inbox_poll_ring(struct inbox *h, int src, inbox_fn *fn, void *arg)
{
	struct inbox_ring *r = inbox_ring(h, src, h->self);
	uint64_t pos = h->in[src], tail, one = 1;
	const struct inbox_rec *rec;
	struct inbox_to to;
	struct inbox_msg m;
	size_t n = 0, off, to_end;
	uint32_t i;

	tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	if (tail == pos)
		return 0;
	while (pos != tail) {
		off = (size_t)(pos & (h->cap - 1));
		to_end = h->cap - off;
		if (to_end < sizeof(*rec)) {
			pos += to_end;
			continue;
		}
		rec = (const struct inbox_rec *)(const void *)(r->data + off);
		if (rec->size < sizeof(*rec) || rec->size % 8 != 0 ||
		    rec->size > to_end || rec->size > tail - pos ||
		    (rec->type == 0 && rec->size != to_end) ||
		    (rec->type != 0 && sizeof(*rec) + pad8(rec->len) +
		    (rec->type == INBOX_DELIVER ? (size_t)rec->id *
		    sizeof(to) : 0) != rec->size)) {
			/* Only a sender's bug can do this: say so, and
			 * drop what cannot be read rather than loop. */
			log_warnx("inbox from %s %d: malformed record at %llu;"
			    " %llu bytes dropped", src < h->nslots ? "worker" :
			    "master", src, (unsigned long long)pos,
			    (unsigned long long)(tail - pos));
			pos = tail;
			break;
		}
		memset(&m, 0, sizeof(m));
		m.type = rec->type;
		m.data = (const char *)rec + sizeof(*rec);
		m.len = rec->len;
		if (rec->type == INBOX_DELIVER) {
			for (i = 0; i < rec->id; i++) {
				memcpy(&to, (const char *)rec + sizeof(*rec) +
				    pad8(rec->len) + i * sizeof(to),
				    sizeof(to));
				m.id = to.uid;
				m.token = to.token;
				fn(arg, &m);
				n++;
			}
		} else if (rec->type != 0) {
			m.id = rec->id;
			m.token = rec->token;
			fn(arg, &m);
			n++;
		}
		pos += rec->size;
		atomic_store_explicit(&r->head, pos, memory_order_release);
	}
	atomic_store(&r->head, pos);
	h->in[src] = pos;
	if (src < h->nslots && atomic_load(&r->want_room) &&
	    atomic_exchange(&r->want_room, 0))
		(void)!write(h->efd[src], &one, sizeof(one));
	return n;
}

size_t
inbox_poll(struct inbox *h, inbox_fn *fn, void *arg)
{
	size_t n = 0;
	int i;

	for (i = 0; i <= h->nslots; i++)
		if (i != h->self)
			n += inbox_poll_ring(h, i, fn, arg);
	return n;
}

int
inbox_sleep(struct inbox *h)
{
	int i;

	atomic_store(&h->wake[h->self].sleeping, 1);
	for (i = 0; i <= h->nslots; i++)
		if (i != h->self && atomic_load(&inbox_ring(h, i,
		    h->self)->tail) != h->in[i]) {
			atomic_store(&h->wake[h->self].sleeping, 0);
			return 0;
		}
	return 1;
}

void
inbox_woke(struct inbox *h)
{
	atomic_store_explicit(&h->wake[h->self].sleeping, 0,
	    memory_order_relaxed);
}

void
inbox_destroy(struct inbox *ib)
{
	int i;

	if (ib == NULL)
		return;
	for (i = 0; ib->efd != NULL && i < ib->nslots; i++)
		if (ib->efd[i] != -1)
			(void)close(ib->efd[i]);
	if (ib->base != MAP_FAILED)
		(void)munmap(ib->base, ib->base_len);
	inbox_free_waiting(ib);
	free(ib->out);
	free(ib->efd);
	free(ib);
}
