/*
 * worker.h - one worker process: its event loop and everything it owns.
 *
 * All per-worker state lives in struct worker and is passed down to the
 * connection, handler and delivery code; there are no other globals.
 */
#ifndef CHATD_WORKER_H
#define CHATD_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf.h"
#include "groupcache.h"
#include "jsonw.h"
#include "log.h"
#include "abuse.h"
#include "protocol.h"
#include "request.h"
#include "umap.h"

struct conn;
struct jobq;
struct presence;
struct inbox;
struct bus;
struct obuf;

/*
 * A session of a worker that ended and whose friends are not told yet
 * (its logout job is under way).  Should the worker die meanwhile, the
 * master finds it here and has another worker tell them, as it does for
 * the sessions still in the presence table.  Written by the worker only
 * (the token first, the uid last; the uid cleared first), read by the
 * master only once the worker is dead, then cleared.
 */
#define WORKER_ENDING_MAX 4096
struct worker_ending {
	uint64_t token;
	uint32_t uid;			/* 0: a free entry */
	uint32_t pad;
};

/*
 * Counters of one worker, in memory shared with the master (which serves
 * them to chatctl).  Each worker is the only writer of its own slot's
 * counters; readers may see a value one update old, never a torn one
 * (aligned 64-bit stores).  They survive a worker's restart.
 */
struct worker_stats {
	int32_t pid;			/* of the worker now in the slot */
	int32_t pad;
	int64_t started;		/* its start time, epoch seconds */
	uint64_t conns_open, online;	/* gauges */
	uint64_t accepted, closed;
	uint64_t logins_ok, logins_failed, registrations;
	uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
	uint64_t deliver_local, deliver_worker, deliver_host, offline_stored;
	uint64_t offline_delivered;
	uint64_t offline_waiting;	/* gauge: messages without a sender
					 * that wait for the database */
	uint64_t presence_settled;	/* PRESENCE corrected after LOGIN_ACK */
	uint64_t presence_expired;	/* users whose claim expired, their
					 * friends told "offline" */
	uint64_t presence_renewed;	/* sessions whose expired claim was
					 * renewed, friends told "online" */
	uint64_t slow_consumers, limit_refusals;
	uint64_t hash_waits;		/* hashes that waited for a slot */
	uint64_t hash_wait_ms;		/* their total wait */
	uint64_t errors[CERR_MAX + 1];
	uint64_t conf_gen;		/* configuration generation applied
					 * (conf_share); atomic stores */
	struct worker_ending ending[WORKER_ENDING_MAX];
};

struct conn_list {
	struct conn *head, *tail;
	size_t n;
};

struct worker {
	const struct conf *conf;
	struct conf *conf_rw;	/* the same struct: worker_reload writes its
				 * live keys (job threads read only others) */
	const struct conf_share *share;	/* what the master publishes */
	int slot, nslots;
	int epfd;		/* clients, the listener, job completions,
				 * inbox wakeups and peer_epfd */
	int peer_epfd;		/* Redis, signals, timer (served first) */
	int cong_epfd;		/* inbox wakeups and peer_epfd: all that is
				 * waited for while the inboxes of other
				 * workers are congested */
	int listen_fd;		/* -1 once stopped accepting */
	int sig_fd;
	int timer_fd;
	pid_t master;		/* told (SIGUSR1) when a configuration
				 * generation is applied */
	struct inbox *inbox;
	struct bus *bus;		/* NULL on one host (no Redis) */
	struct jobq *jobs;
	struct presence *presence;
	struct umap online;		/* uid -> conn logged in here */
	struct umap settling;		/* uid -> its new session's friend
					 * states, checked again once the
					 * session is reachable
					 * (handle_account.c) */
	struct groupcache groups;
	struct umap gloads;		/* gid -> its load running (handle_chat.c) */
	/* Offline stores without a sender (nobody to answer errno 13) that
	 * the database refused, kept to be tried again (deliver.c). */
	struct job *retry_head, **retry_tail;
	size_t retry_bytes;		/* their messages' bytes (the bound) */
	uint64_t retry_at;		/* monotime_ms of the next attempt */
	size_t retry_msgs;		/* their recipients (offline_waiting) */
	size_t retry_bare;		/* of them not in the spool file */
	struct spool *spool;		/* the same on disk, NULL when none */
	size_t spooled;			/* of those in it, not stored yet */
	uint64_t adopt_at;		/* monotime_ms of the next look for
					 * spool files of stopped workers */
	/* Deletions of delivered offline messages the database refused,
	 * tried again every db_retry_interval (handle_account.c). */
	struct job *offdel_head, **offdel_tail;
	uint64_t offdel_at;		/* monotime_ms of the next attempt */
	size_t offdel_ids;		/* messages in them (the bound) */
	/* The free entries of stats->ending, a stack. */
	uint16_t ending_free[WORKER_ENDING_MAX];
	size_t ending_nfree;
	/* Jobs the full queue refused that must run all the same, for the
	 * next tick (worker_submit_later). */
	struct job *later_head, **later_tail;
	/* [nslots]: records for another worker of this host that its full
	 * queue refused (id -> DELIVER_OWED_* bits), sent from the tick
	 * (deliver.c). */
	struct umap *owed;
	struct log_every jobq_full;	/* jobs refused (the warning) */
	struct conn_list anon;		/* by last activity, oldest first */
	struct conn_list live;		/* logged in, oldest activity first */
	struct conn *dirty;		/* output to flush this iteration */
	struct conn *dead;		/* to free this iteration */
	size_t nconns;
	size_t nconns_peak;		/* since the last malloc_trim */
	uint64_t next_token;
	int stopping;
	time_t now;
	uint64_t last_tus;		/* handler_accept_us's last */
	char *rbuf;			/* scratch read buffer */
	struct jbuf fbuf;		/* scratch for the frame being built */
	struct jbuf abuf;		/* scratch for an ACK (reply_ack) */
	struct conn **stalled;		/* input held while busy (conn.c) */
	size_t nstalled, stalled_cap;
	struct obuf *obuf_pool;		/* drained output buffers (conn.c) */
	size_t obuf_n;
	int obuf_used;			/* taken from since the last tick */
	size_t rbuf_size;
	struct request_limits lim;
	struct limits limits;		/* abuse limits (abuse.h) */
	struct worker_stats *stats;	/* this slot's, in shared memory */
};

/* Run worker `slot` on listen_fd until told to stop; never returns.
 * Once set up it writes one byte to ready_fd (when not -1) and closes it. */
void worker_main(struct conf *conf, const struct conf_share *share,
    int slot, int nslots, int listen_fd, struct presence *presence,
    struct inbox *inbox, struct worker_stats *stats, int ready_fd)
    __attribute__((noreturn));

/* The epoll tag of Redis link id (bus.h). */
uint64_t worker_bus_tag(int id);
/* 1 while the queues to other workers are congested: take no new work
 * that fans out to them (see worker_main). */
int worker_busy(struct worker *w);
/* Mark c as needing a flush at the end of this loop iteration. */
void worker_mark_dirty(struct worker *w, struct conn *c);
/* Submit a job on behalf of c (c may be NULL); -1 when the queue is full
 * (already logged, naming job_queue_max). */
struct job;
int worker_submit(struct worker *w, struct job *j);
/* Submit j, or when the queue is full keep it, in order, and submit it
 * from the next tick: for a job that must run and has nobody to refuse
 * (a notice to friends, deleting what was delivered, the second reading
 * of a login's friends). */
void worker_submit_later(struct worker *w, struct job *j);
/* The same, in order with every other job of the same key. */
int worker_submit_keyed(struct worker *w, struct job *j, uint32_t key);
/* Move c to the tail of the list for its state (activity seen). */
void worker_touch(struct worker *w, struct conn *c);
void worker_list_del(struct worker *w, struct conn *c);
void worker_list_add(struct worker *w, struct conn *c);

#endif
