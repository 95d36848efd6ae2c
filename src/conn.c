/*
 * conn.c - the connection layer of conn.h.
 *
 * Memory per idle connection is the struct alone: input is read into the
 * worker's scratch buffer and only an incomplete frame is copied into the
 * connection; output is written at the end of the loop iteration and the
 * buffer is freed as soon as it drains.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "conn.h"
#include "handler.h"
#include "abuse.h"
#include "log.h"
#include "monotime.h"
#include "worker.h"

/* Reads per EPOLLIN event, so one busy client cannot starve the rest. */
#define CONN_READS_PER_EVENT 4
/* Output buffers start at this size, and drained ones of this size go to
 * a small per-worker pool instead of free(): an active connection gets
 * one back at its next message without a malloc, and an idle one holds
 * none.  The pool is emptied when a second passes without use. */
#define CONN_OBUF_SIZE 1024
#define CONN_OBUF_POOL 256

struct obuf {
	struct obuf *next;
};

static char *
obuf_get(struct worker *w)
{
	struct obuf *b = w->obuf_pool;

	if (b == NULL)
		return malloc(CONN_OBUF_SIZE);
	w->obuf_pool = b->next;
	w->obuf_n--;
	w->obuf_used = 1;
	return (char *)b;
}

/* Give back c's output buffer, drained or not needed any more. */
static void
obuf_put(struct worker *w, struct conn *c)
{
	struct obuf *b = (struct obuf *)(void *)c->out;

	if (b != NULL && c->out_cap == CONN_OBUF_SIZE &&
	    w->obuf_n < CONN_OBUF_POOL) {
		b->next = w->obuf_pool;
		w->obuf_pool = b;
		w->obuf_n++;
	} else
		free(c->out);
	c->out = NULL;
	c->out_off = c->out_len = c->out_cap = 0;
}

void
conn_obuf_tick(struct worker *w)
{
	if (w->obuf_used)
		w->obuf_used = 0;
	else
		conn_obuf_free(w);
}

void
conn_obuf_free(struct worker *w)
{
	struct obuf *b;

	while ((b = w->obuf_pool) != NULL) {
		w->obuf_pool = b->next;
		free(b);
	}
	w->obuf_n = 0;
}

static const char *const conn_state_names[] = {
	"anon", "logging-in", "online", "closed",
};

void
conn_set_state(struct conn *c, enum conn_state s)
{
	log_debug("conn %d: %s -> %s", c->fd, conn_state_names[c->state],
	    conn_state_names[s]);
	c->state = s;
}

static int
conn_epoll(struct worker *w, struct conn *c, int op)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.data.ptr = c;
	/* A paused connection must not be woken by input or a half-close
	 * (level-triggered, that would spin); HUP and ERR always wake it. */
	ev.events = (c->paused ? 0 : EPOLLIN | EPOLLRDHUP) |
	    (c->want_out ? EPOLLOUT : 0);
	return epoll_ctl(w->epfd, op, c->fd, &ev);
}

struct conn *
conn_new(struct worker *w, int fd, uint32_t addr)
{
	struct conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warnx("%s: out of memory", __func__);
		(void)close(fd);
		return NULL;
	}
	c->fd = fd;
	c->addr = addr;
	c->rate_tokens = (uint32_t)w->conf->rate_burst * 1000;
	c->rate_ms = (uint32_t)monotime_ms();
	c->state = CONN_ANON;
	c->token = ((uint64_t)(uint32_t)getpid() << 32) | ++w->next_token;
	c->last_active = w->now;
	frame_init(&c->fr);
	if (conn_epoll(w, c, EPOLL_CTL_ADD) == -1) {
		log_warn("%s: epoll_ctl", __func__);
		(void)close(fd);
		free(c);
		return NULL;
	}
	worker_list_add(w, c);
	w->nconns++;
	if (w->nconns > w->nconns_peak)
		w->nconns_peak = w->nconns;
	w->stats->conns_open = w->nconns;
	return c;
}

size_t
conn_outq(const struct conn *c)
{
	return (size_t)(c->out_len - c->out_off);
}

static int
buf_append(char **buf, uint32_t *len, uint32_t *cap, const char *data,
    size_t n)
{
	if ((size_t)*len + n > *cap) {
		size_t ncap = *cap ? *cap : 1024;
		char *nb;

		while (ncap < (size_t)*len + n)
			ncap *= 2;
		if ((nb = realloc(*buf, ncap)) == NULL)
			return -1;
		*buf = nb;
		*cap = (uint32_t)ncap;
	}
	memcpy(*buf + *len, data, n);
	*len += (uint32_t)n;
	return 0;
}

/*
 * Drop the written part of the output before it grows the buffer: a
 * reader that always leaves a little unread would otherwise keep in it
 * everything it was ever sent.  The line being written stays whole from
 * its start (deliver_drop_slow stores it whole).
 */
static void
conn_compact(struct conn *c)
{
	uint32_t from = c->out_off;

	while (from > 0 && c->out[from - 1] != '\n')
		from--;
	if (from == 0)
		return;
	memmove(c->out, c->out + from, c->out_len - from);
	c->out_len -= from;
	c->out_off -= from;
}

int
conn_closing(const struct worker *w, const struct conn *c)
{
	return c->close_after_flush && !w->stopping;
}

static int
conn_queue(struct worker *w, struct conn *c, const char *data, size_t len,
    int capped)
{
	if (c->state == CONN_CLOSED || conn_closing(w, c))
		return -1;
	if (capped && conn_outq(c) + len > (size_t)w->conf->max_output) {
		/* Over the cap within one loop turn (a burst from other
		 * workers) is not a slow reader yet: write what the socket
		 * takes now, and judge by what is left.  A frame into empty
		 * output always goes: a forwarded frame may be a little
		 * larger than max_frame, and max_output may be as small. */
		conn_flush(w, c);
		if (c->state == CONN_CLOSED || conn_closing(w, c) ||
		    (conn_outq(c) > 0 &&
		    conn_outq(c) + len > (size_t)w->conf->max_output))
			return -1;
	}
	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	else if (c->out_off > 0 && c->out_len + len > c->out_cap)
		conn_compact(c);
	if (c->out == NULL && len <= CONN_OBUF_SIZE) {
		if ((c->out = obuf_get(w)) == NULL)
			return -1;
		c->out_cap = CONN_OBUF_SIZE;
	}
	if (buf_append(&c->out, &c->out_len, &c->out_cap, data, len) == -1)
		return -1;
	w->stats->msgs_out++;
	worker_mark_dirty(w, c);
	return 0;
}

int
conn_send(struct worker *w, struct conn *c, const char *data, size_t len)
{
	return conn_queue(w, c, data, len, 1);
}

int
conn_send_uncapped(struct worker *w, struct conn *c, const char *data,
    size_t len)
{
	return conn_queue(w, c, data, len, 0);
}

void
conn_flush(struct worker *w, struct conn *c)
{
	ssize_t n;

	if (c->state == CONN_CLOSED)
		return;
	while (c->out_off < c->out_len) {
		n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (n > 0) {
			c->out_off += (uint32_t)n;
			w->stats->bytes_out += (uint64_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			if (!c->want_out) {
				c->want_out = 1;
				(void)conn_epoll(w, c, EPOLL_CTL_MOD);
			}
			return;
		}
		conn_close(w, c, n == 0 ? "write returned 0" : strerror(errno));
		return;
	}
	/* Drained: give the memory back, idle connections cost nothing. */
	obuf_put(w, c);
	if (c->want_out) {
		c->want_out = 0;
		(void)conn_epoll(w, c, EPOLL_CTL_MOD);
	}
	if (c->close_after_flush)
		conn_close(w, c, w->stopping ? "server stopping" :
		    "closed after error");
	else
		handler_conn_drained(w, c);
}

void
conn_close_after_flush(struct worker *w, struct conn *c)
{
	if (c->state == CONN_CLOSED)
		return;
	c->close_after_flush = 1;
	c->paused = 1;
	(void)shutdown(c->fd, SHUT_RD);
	(void)conn_epoll(w, c, EPOLL_CTL_MOD);
	worker_mark_dirty(w, c);
}

void
conn_pause(struct worker *w, struct conn *c)
{
	if (c->paused || c->state == CONN_CLOSED)
		return;
	c->paused = 1;
	(void)conn_epoll(w, c, EPOLL_CTL_MOD);
}

/* Hold c's remaining input until the other workers catch up. */
static void
conn_stall(struct worker *w, struct conn *c)
{
	struct conn **n;

	if (w->nstalled == w->stalled_cap) {
		w->stalled_cap = w->stalled_cap ? w->stalled_cap * 2 : 64;
		if ((n = realloc(w->stalled, w->stalled_cap * sizeof(*n))) ==
		    NULL)
			fatalx("%s: out of memory", __func__);
		w->stalled = n;
	}
	w->stalled[w->nstalled++] = c;
	conn_ref(c);
	c->stalled = 1;
	conn_pause(w, c);
}

void
conn_resume_stalled(struct worker *w)
{
	struct conn *c;
	size_t i, n = w->nstalled;

	if (n == 0)
		return;
	/* In stall order; those that stall again go to the back. */
	for (i = 0; i < n && !worker_busy(w); i++) {
		c = w->stalled[i];
		c->stalled = 0;
		conn_resume(w, c);
		conn_unref(w, c);
	}
	memmove(w->stalled, w->stalled + i, (w->nstalled - i) *
	    sizeof(*w->stalled));
	w->nstalled -= i;
}

/*
 * Hand every complete frame in buf[0..len) up, stopping early when the
 * handler pauses or closes the connection, or when other workers fall
 * behind (the rest waits in the connection: conn_stall).  Returns the
 * bytes consumed.
 */
static size_t
conn_frames(struct worker *w, struct conn *c, const char *buf, size_t len)
{
	size_t start, flen;
	int rc, n = 0;

	while (!c->paused && c->state != CONN_CLOSED) {
		if (n > 0 && worker_busy(w)) {
			conn_stall(w, c);
			break;
		}
		rc = frame_next(&c->fr, buf, len, (size_t)w->conf->max_frame,
		    &start, &flen);
		if (rc == FRAME_NONE)
			break;
		if (rc != FRAME_OK) {
			handler_stream_error(w, c, rc == FRAME_TOO_LARGE ?
			    CERR_TOO_LARGE : CERR_FRAMING);
			return len;
		}
		w->stats->msgs_in++;
		handler_frame(w, c, buf + start, flen);
		n++;
	}
	return frame_consumable(&c->fr);
}

/* Keep the unconsumed tail of buf in the connection's own buffer. */
static int
conn_keep(struct conn *c, const char *buf, size_t len, size_t used)
{
	size_t rest = len - used;

	frame_shift(&c->fr, used);
	if (buf == c->in) {
		if (rest > 0)
			memmove(c->in, c->in + used, rest);
		c->in_len = (uint32_t)rest;
	} else {
		c->in_len = 0;
		if (rest > 0 && buf_append(&c->in, &c->in_len, &c->in_cap,
		    buf + used, rest) == -1)
			return -1;
	}
	if (c->in_len == 0) {
		free(c->in);
		c->in = NULL;
		c->in_cap = 0;
	}
	return 0;
}

void
conn_resume(struct worker *w, struct conn *c)
{
	size_t used;

	if (!c->paused || c->state == CONN_CLOSED || c->close_after_flush)
		return;
	c->paused = 0;
	if (c->in_len > 0) {
		used = conn_frames(w, c, c->in, c->in_len);
		if (c->state == CONN_CLOSED)
			return;
		if (conn_keep(c, c->in, c->in_len, used) == -1) {
			conn_close(w, c, "out of memory");
			return;
		}
	}
	if (!c->paused)
		(void)conn_epoll(w, c, EPOLL_CTL_MOD);
}

void
conn_readable(struct worker *w, struct conn *c)
{
	const char *buf;
	size_t len, used;
	ssize_t n;
	int i;

	for (i = 0; i < CONN_READS_PER_EVENT; i++) {
		/* Congested: the socket stays readable and is read again
		 * once the other workers have caught up. */
		if (c->paused || c->state == CONN_CLOSED || worker_busy(w))
			return;
		if (c->in_len > 0) {
			/* A partial frame is pending: read behind it.  The
			 * buffer doubles, so a long frame is not copied
			 * again on every read. */
			size_t need = (size_t)c->in_len + w->rbuf_size;

			if (need > c->in_cap) {
				char *nb;

				if (need < 2 * (size_t)c->in_cap)
					need = 2 * (size_t)c->in_cap;
				if ((nb = realloc(c->in, need)) == NULL) {
					conn_close(w, c, "out of memory");
					return;
				}
				c->in = nb;
				c->in_cap = (uint32_t)need;
			}
			n = read(c->fd, c->in + c->in_len, w->rbuf_size);
			if (n > 0)
				c->in_len += (uint32_t)n;
			buf = c->in;
			len = c->in_len;
		} else {
			n = read(c->fd, w->rbuf, w->rbuf_size);
			buf = w->rbuf;
			len = n > 0 ? (size_t)n : 0;
		}
		if (n == 0) {
			/* Answers to what it sent before its FIN still go out
			 * as far as the socket takes them. */
			if (c->out_len > c->out_off)
				conn_flush(w, c);
			conn_close(w, c, "closed by peer");
			return;
		}
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				conn_close(w, c, strerror(errno));
			return;
		}
		worker_touch(w, c);
		w->stats->bytes_in += (uint64_t)n;
		used = conn_frames(w, c, buf, len);
		if (c->state == CONN_CLOSED || c->close_after_flush)
			return;
		if (conn_keep(c, buf, len, used) == -1) {
			conn_close(w, c, "out of memory");
			return;
		}
		if ((size_t)n < w->rbuf_size)
			return;
	}
}

/* Queue a closed conn for conn_reap, once. */
static void
conn_doom(struct worker *w, struct conn *c)
{
	if (c->pending_jobs != 0 || c->on_dead)
		return;
	c->on_dead = 1;
	c->dead_next = w->dead;
	w->dead = c;
}

/* Read and drop what the client sent (a bounded number of reads). */
static void
conn_discard_input(struct worker *w, struct conn *c)
{
	int i;

	for (i = 0; i < 16; i++)
		if (read(c->fd, w->rbuf, w->rbuf_size) <= 0)
			break;
}

void
conn_close(struct worker *w, struct conn *c, const char *reason)
{
	if (c->state == CONN_CLOSED)
		return;
	log_debug("conn %d: close: %s", c->fd, reason);
	/* Input left unread makes close() send a reset, and the client's
	 * kernel then drops what it has not read of our last output (the
	 * error reply, or what a stop wrote): read it away first. */
	if (c->close_after_flush || w->stopping)
		conn_discard_input(w, c);
	handler_conn_closed(w, c);
	worker_list_del(w, c);
	conn_set_state(c, CONN_CLOSED);
	(void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	(void)close(c->fd);
	c->fd = -1;
	w->nconns--;
	w->stats->conns_open = w->nconns;
	limit_conn_close(w, c->addr);
	w->stats->closed++;
	free(c->in);
	c->in = NULL;
	c->in_len = 0;
	obuf_put(w, c);
	conn_doom(w, c);
}

void
conn_ref(struct conn *c)
{
	c->pending_jobs++;
}

void
conn_unref(struct worker *w, struct conn *c)
{
	if (--c->pending_jobs == 0 && c->state == CONN_CLOSED)
		conn_doom(w, c);
}

/*
 * Free the conns closed since the last call.  One closed during a
 * request may have been referenced again after conn_close queued it (a
 * chat to oneself that overflowed one's own output): it stays, and its
 * last conn_unref queues it again.
 */
void
conn_reap(struct worker *w)
{
	struct conn *c;

	while ((c = w->dead) != NULL) {
		w->dead = c->dead_next;
		c->on_dead = 0;
		if (c->pending_jobs != 0)
			continue;
		free(c->name);
		free(c);
	}
}
