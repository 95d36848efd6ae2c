/*
 * conn.h - one client connection of a worker: socket, input framing,
 * bounded output, state and lifetime.
 *
 * The connection layer knows bytes and frames, never msgids: complete
 * frames go up to handler_frame(), stream errors to handler_stream_error(),
 * and the end of a logged-in session to session_end().
 */
#ifndef CHATD_CONN_H
#define CHATD_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "frame.h"
#include "protocol.h"

struct worker;

enum conn_state {
	CONN_ANON,		/* connected, not logged in */
	CONN_LOGGING_IN,	/* credentials being checked / session built */
	CONN_ONLINE,		/* logged in */
	CONN_CLOSED,		/* socket closed; struct lives while jobs run */
};

struct conn {
	int fd;
	enum conn_state state;
	uint32_t uid;			/* when LOGGING_IN / ONLINE */
	uint64_t token;			/* unique on this host */
	time_t last_active;
	struct conn *prev, *next;	/* in the worker's anon/online list */
	struct conn *dirty_next;	/* in the worker's flush list */
	struct conn *dead_next;		/* in the worker's free list */
	char *in;			/* partial frame, NULL when none */
	uint32_t in_len, in_cap;
	struct frame fr;
	char *out;			/* pending output, NULL when none */
	uint32_t out_off, out_len, out_cap;
	uint32_t pending_jobs;		/* jobs that point at this conn */
	uint32_t addr;			/* source address key, 0 unknown */
	uint32_t rate_tokens;		/* request bucket, thousandths */
	uint32_t rate_ms;		/* its last refill, worker ms */
	unsigned dirty:1, want_out:1, paused:1, close_after_flush:1,
	    in_list:1, pulling:1, pull_again:1, stalled:1,
	    on_dead:1;			/* in the worker's free list */
	char *name;			/* when ONLINE, else NULL */
	void *held_ack;			/* a LOGINOUT's ACK waiting for the
					 * offline pull in flight
					 * (handle_account.c) */
};

/* Wrap an accepted socket; NULL when out of memory (fd then closed). */
struct conn *conn_new(struct worker *w, int fd, uint32_t addr);
/* EPOLLIN: read a bounded amount and hand complete frames up. */
void conn_readable(struct worker *w, struct conn *c);
/* EPOLLOUT or end of loop iteration: write what is queued. */
void conn_flush(struct worker *w, struct conn *c);
/*
 * Queue data for the client, written at the end of the loop iteration.
 * Returns 0, or
 * -1 when it would push the connection over max_output: nothing is
 * queued and the caller must keep the data elsewhere (offline store).
 */
int conn_send(struct worker *w, struct conn *c, const char *data,
    size_t len);
/* The same without the max_output cap, for the one LOGIN_ACK of a session
 * (its size is bounded by the user's friends and groups, not by peers). */
int conn_send_uncapped(struct worker *w, struct conn *c, const char *data,
    size_t len);
/* Stop/resume reading frames (while a login or registration runs). */
void conn_pause(struct worker *w, struct conn *c);
void conn_resume(struct worker *w, struct conn *c);
/* Close after queued output is written (after fatal stream errors, and
 * when the worker stops).  Reading stops at once. */
void conn_close_after_flush(struct worker *w, struct conn *c);
/* 1 when c closes once its output is written and takes no more output:
 * after an error.  A connection the stopping worker is draining still
 * takes what is delivered to it, in order behind what it holds. */
int conn_closing(const struct worker *w, const struct conn *c);
/* 1 while c is logged in as uid: the session a job or a reply was for
 * has not ended (a LOGINOUT, or a new login on c, ends it). */
static inline int
conn_is_user(const struct conn *c, uint32_t uid)
{
	return c->state == CONN_ONLINE && c->uid == uid;
}
/* Close now; reason is logged at debug. */
void conn_close(struct worker *w, struct conn *c, const char *reason);
/* Set the state, logging the transition at debug. */
void conn_set_state(struct conn *c, enum conn_state s);
/* A job now refers to c / no longer does (frees a closed conn). */
void conn_ref(struct conn *c);
void conn_unref(struct worker *w, struct conn *c);
/* Free the conns closed during this loop iteration. */
void conn_reap(struct worker *w);
/* Other workers have caught up: go on with the frames of connections
 * stalled while they were behind. */
void conn_resume_stalled(struct worker *w);
/* Once a second: empty the pool of output buffers if it was not used. */
void conn_obuf_tick(struct worker *w);
/* Free the pool (worker exit). */
void conn_obuf_free(struct worker *w);
/* Bytes of output pending. */
size_t conn_outq(const struct conn *c);

#endif
