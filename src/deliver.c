/*
 * deliver.c - local, cross-worker and offline delivery.
 *
 * The race this file closes: a sender finds a user offline and stores the
 * message while the user logs in and fetches their offline messages.  The
 * login's job reads the rows for LOGIN_ACK before the presence entry is
 * inserted, so that read alone can miss a row; after the insert the
 * session pulls again (at once on one host, once its channel is
 * subscribed with Redis).  The store job looks the user up again after
 * its INSERT committed.  Whichever of the insert and the commit happens
 * last sees the other: either that later pull finds the row, or the store
 * finds the user online and asks their worker (or host) to pull again.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "conn.h"
#include "deliver.h"
#include "handler.h"
#include "inbox.h"
#include "job.h"
#include "log.h"
#include "monotime.h"
#include "presence.h"
#include "protocol.h"
#include "spool.h"
#include "store.h"
#include "worker.h"

void
deliver_flush(struct worker *w)
{
	int i;

	for (i = 0; i < w->nslots; i++)
		if (i != w->slot)
			(void)inbox_flush(w->inbox, i);
}

int
deliver_user(struct worker *w, uint32_t uid, const char *frame, size_t len)
{
	struct presence_entry e;
	struct inbox_msg m;
	struct conn *c;

	if (presence_lookup(w->presence, uid, &e) != PRESENCE_OK)
		return DELIVER_OFFLINE;
	if (e.slot == w->slot) {
		c = umap_get(&w->online, uid);
		if (c == NULL || c->token != e.token ||
		    c->state != CONN_ONLINE)
			return DELIVER_OFFLINE;
		if (w->settling.live > 0)
			session_noticed(w, c, frame, len);
		if (conn_send(w, c, frame, len) == -1) {
			deliver_drop_slow(w, c);
			return DELIVER_OFFLINE;
		}
		w->stats->deliver_local++;
		return DELIVER_DONE;
	}
	memset(&m, 0, sizeof(m));
	m.type = INBOX_DELIVER;
	m.id = uid;
	m.token = e.token;
	m.data = frame;
	m.len = len;
	if (inbox_send(w->inbox, e.slot, &m) == -1)
		return DELIVER_OFFLINE;
	w->stats->deliver_worker++;
	return DELIVER_DONE;
}

/*
 * A record for another worker that carries no message, only news (a
 * group's members changed, a user has offline messages to pull).  When
 * that worker's queue is full (it stopped reading), the news is kept,
 * once per id and kind, and sent again from every tick until it goes in:
 * lost, a cache would keep a group's old members and a stored message
 * would wait for its recipient's next login.
 */
#define DELIVER_OWED_INVALIDATE	1u
#define DELIVER_OWED_READY	2u

static void
deliver_news(struct worker *w, int slot, unsigned kind, uint32_t id,
    int again)
{
	struct inbox_msg m;
	struct umap *owed = &w->owed[slot];
	uintptr_t bits;

	memset(&m, 0, sizeof(m));
	m.type = kind == DELIVER_OWED_INVALIDATE ? INBOX_GROUP_INVALIDATE :
	    INBOX_OFFLINE_READY;
	m.id = id;
	if (inbox_send(w->inbox, slot, &m) == 0)
		return;
	bits = (uintptr_t)umap_get(owed, id);
	if (owed->live == 0 && !again)
		log_warnx("worker %d takes nothing more: keeping what it must "
		    "be told (group changes, offline messages to pull) until "
		    "it does", slot);
	if (umap_put(owed, id, (void *)(bits | kind)) == -1)
		fatalx("%s: out of memory", __func__);
}

void
deliver_news_tick(struct worker *w)
{
	struct umap owed;
	size_t it;
	uint32_t id;
	void *val;
	int i;

	for (i = 0; i < w->nslots; i++) {
		if (w->owed[i].live == 0)
			continue;
		owed = w->owed[i];
		umap_init(&w->owed[i]);
		it = 0;
		while (umap_next(&owed, &it, &id, &val)) {
			if ((uintptr_t)val & DELIVER_OWED_INVALIDATE)
				deliver_news(w, i, DELIVER_OWED_INVALIDATE, id,
				    1);
			if ((uintptr_t)val & DELIVER_OWED_READY)
				deliver_news(w, i, DELIVER_OWED_READY, id, 1);
		}
		if (w->owed[i].live == 0)
			log_warnx("worker %d takes again: told what it missed "
			    "for %zu user(s) or group(s)", i, owed.live);
		umap_free(&owed);
	}
}

void
deliver_group_invalidate(struct worker *w, uint32_t gid)
{
	int i;

	for (i = 0; i < w->nslots; i++)
		if (i != w->slot)
			deliver_news(w, i, DELIVER_OWED_INVALIDATE, gid, 0);
}

/* Ask whoever holds uid on this host to pull their offline messages. */
static void
deliver_offline_ready(struct worker *w, uint32_t uid)
{
	struct presence_entry e;
	struct conn *c;

	if (presence_lookup(w->presence, uid, &e) != PRESENCE_OK) {
		/* Perhaps online on another host, which found no subscriber
		 * in time (it was still subscribing, or Redis was away). */
		bus_hint_pull(w, uid);
		return;
	}
	if (e.slot == w->slot) {
		if ((c = umap_get(&w->online, uid)) != NULL)
			session_pull_offline(w, c);
		return;
	}
	deliver_news(w, e.slot, DELIVER_OWED_READY, uid, 0);
}

struct store_job {
	struct job job;
	struct conn *sender;
	struct reqinfo ri;
	size_t n;
	uint32_t *uids;
	int *rc;
	uint64_t first_ms;	/* a retry: when the first attempt failed */
	uint64_t ord;		/* the frame's "tus" */
	int spooled;		/* in w->spool until stored (sender-less) */
	size_t waiting;		/* its recipients in w->retry_msgs */
	size_t len;
	char text[];
};

/*
 * Sender-less stores the database refused are kept (in memory, in order)
 * and tried again every db_retry_interval, for up to an hour and up to
 * this many bytes of messages per worker; past either they are lost, and
 * logged.  Every sender-less store is also in the worker's spool file
 * until it is stored (spool.h), from which another worker takes what
 * this one leaves when it stops or dies.
 */
#define DELIVER_RETRY_BYTES	((size_t)64 << 20)
#define DELIVER_RETRY_MS	(3600 * 1000)
#define DELIVER_ADOPT_MS	5000

static void store_job_run(struct job *, struct store *);
static void store_job_done(struct job *, struct worker *);
static void store_keep_new(struct worker *, struct store_job *);

/* A store of text[0..len) for uids[0..n); NULL when out of memory. */
static struct store_job *
store_job_new(const uint32_t *uids, size_t n, const char *text, size_t len)
{
	struct store_job *sj;

	if ((sj = calloc(1, sizeof(*sj) + len + 1)) == NULL ||
	    (sj->uids = malloc(n * sizeof(*uids))) == NULL ||
	    (sj->rc = calloc(n, sizeof(int))) == NULL) {
		if (sj != NULL)
			free(sj->uids);
		free(sj);
		return NULL;
	}
	sj->job.run = store_job_run;
	sj->job.done = store_job_done;
	memcpy(sj->uids, uids, n * sizeof(*uids));
	sj->n = n;
	memcpy(sj->text, text, len);
	sj->len = len;
	return sj;
}

static void
store_job_free(struct store_job *sj)
{
	reqinfo_free(&sj->ri);
	free(sj->uids);
	free(sj->rc);
	free(sj);
}

/* A sender-less store into the spool (once), until it is stored. */
static void
store_spool(struct worker *w, struct store_job *sj)
{
	struct spool_rec r = { sj->ord, (uint32_t)sj->n, sj->uids, sj->len,
	    sj->text };

	if (w->spool == NULL || sj->spooled || spool_append(w->spool, &r) ==
	    -1)
		return;
	sj->spooled = 1;
	w->spooled++;
}

/* sj is stored (or lost past the bounds): out of the spool, which is
 * emptied once nothing in it waits any more. */
static void
store_unspool(struct worker *w, struct store_job *sj)
{
	if (!sj->spooled)
		return;
	sj->spooled = 0;
	if (--w->spooled == 0)
		spool_clear(w->spool);
}

/* sj's recipients that wait for the database are now n (0 once it is
 * stored, lost or dropped): the offline_waiting gauge. */
static void
store_waiting(struct worker *w, struct store_job *sj, size_t n)
{
	w->retry_msgs = w->retry_msgs - sj->waiting + n;
	sj->waiting = n;
	w->stats->offline_waiting = w->retry_msgs;
}

/* Keep sj (its recipients still to be stored) for another attempt, in
 * delay_ms when nothing else is kept; 0 when it cannot be kept (too
 * long, too much kept), and sj is the caller's still. */
static int
store_retry_keep(struct worker *w, struct store_job *sj, uint64_t delay_ms)
{
	uint64_t now = monotime_ms();

	if (sj->first_ms == 0)
		sj->first_ms = now;
	if (now - sj->first_ms >= DELIVER_RETRY_MS ||
	    w->retry_bytes + sj->len > DELIVER_RETRY_BYTES)
		return 0;
	sj->job.next = NULL;
	if (w->retry_head == NULL) {
		w->retry_tail = &w->retry_head;
		w->retry_at = now + delay_ms;
	}
	*w->retry_tail = &sj->job;
	w->retry_tail = &sj->job.next;
	w->retry_bytes += sj->len;
	store_spool(w, sj);
	if (!sj->spooled)
		w->retry_bare++;
	store_waiting(w, sj, sj->n);
	return 1;
}

static void
store_job_run(struct job *j, struct store *st)
{
	struct store_job *sj = (struct store_job *)j;
	size_t i;

	for (i = 0; i < sj->n; i++)
		sj->rc[i] = store_offline_put(st, sj->uids[i], sj->ord,
		    sj->text, sj->len);
}

static void
store_job_done(struct job *j, struct worker *w)
{
	struct store_job *sj = (struct store_job *)j;
	size_t i, k, stored = 0, failed = 0, noref = 0;

	for (i = 0; i < sj->n; i++) {
		if (sj->rc[i] == STORE_OK) {
			stored++;
			deliver_offline_ready(w, sj->uids[i]);
		} else if (sj->rc[i] == STORE_NOREF)
			noref++;
		else
			failed++;
	}
	w->stats->offline_stored += stored;
	if (failed > 0 && sj->sender == NULL) {
		/* ACKed "delivered" long ago: not to be lost. */
		if (sj->first_ms == 0)
			log_warnx("could not store %zu offline message(s): "
			    "database unavailable; trying again every %d s "
			    "(db_retry_interval)", failed,
			    w->conf->db_retry_interval);
		/* Only the recipients it failed for. */
		for (i = k = 0; i < sj->n; i++)
			if (sj->rc[i] == STORE_UNAVAILABLE)
				sj->uids[k++] = sj->uids[i];
		sj->n = k;
		memset(sj->rc, 0, k * sizeof(*sj->rc));
		if (store_retry_keep(w, sj,
		    (uint64_t)w->conf->db_retry_interval * 1000))
			return;
		log_warnx("%zu offline message(s) lost: the database was "
		    "unavailable for an hour, or %zu bytes of messages "
		    "already waited for it", failed, w->retry_bytes);
	} else if (failed > 0)
		log_warnx("could not store %zu offline message(s): database "
		    "unavailable", failed);
	if (sj->sender != NULL) {
		if (sj->sender->state == CONN_ONLINE) {
			if (failed > 0)
				reply_error(w, sj->sender, &sj->ri,
				    CERR_UNAVAILABLE, "could not store the "
				    "message for an offline recipient; "
				    "database unavailable");
			else if (noref > 0 && sj->n == 1)
				reply_error(w, sj->sender, &sj->ri,
				    CERR_NO_USER, NULL);
			else
				reply_ack(w, sj->sender, &sj->ri, "stored");
		}
		conn_unref(w, sj->sender);
	}
	store_unspool(w, sj);
	store_waiting(w, sj, 0);
	store_job_free(sj);
}

/* A record of a stopped worker's spool: kept here (and in our spool). */
static void
store_adopt(void *arg, const struct spool_rec *r)
{
	struct worker *w = arg;
	struct store_job *sj;

	if ((sj = store_job_new(r->uids, r->n, r->text, r->len)) == NULL) {
		log_warnx("%s: out of memory: %u offline message(s) lost",
		    __func__, r->n);
		return;
	}
	sj->ord = r->ord;
	store_keep_new(w, sj);	/* into our spool too (store_retry_keep) */
}

void
deliver_retry_tick(struct worker *w)
{
	struct store_job *sj;
	struct job *j;
	size_t k = 0;
	uint64_t now = monotime_ms();

	/* Spool files of stopped workers: at the first tick, then every
	 * DELIVER_ADOPT_MS. */
	if (w->spool != NULL && now >= w->adopt_at) {
		(void)spool_adopt(w->spool, store_adopt, w);
		w->adopt_at = now + DELIVER_ADOPT_MS;
	}
	if (w->retry_head == NULL || now < w->retry_at)
		return;
	while ((j = w->retry_head) != NULL) {
		sj = (struct store_job *)j;
		w->retry_head = j->next;	/* the queue's link once in it */
		if (worker_submit_keyed(w, j, sj->uids[0]) == -1) {
			/* The queue is full: the rest (not tried) at the
			 * next tick. */
			w->retry_head = j;
			break;
		}
		w->retry_bytes -= sj->len;
		if (!sj->spooled)
			w->retry_bare--;
		k += sj->n;
	}
	if (w->retry_head == NULL)
		w->retry_tail = &w->retry_head;
	else
		w->retry_at = 0;
	if (k > 0)
		log_debug("storing %zu offline message(s) again", k);
}

int
deliver_retry_pending(const struct worker *w)
{
	return w->retry_bare > 0;
}

void
deliver_retry_drop(struct worker *w)
{
	struct store_job *sj;
	size_t n = 0, kept = 0;

	while (w->retry_head != NULL) {
		sj = (struct store_job *)w->retry_head;
		w->retry_head = sj->job.next;
		if (sj->spooled)
			kept += sj->n;
		else
			n += sj->n;
		store_waiting(w, sj, 0);
		store_job_free(sj);
	}
	w->retry_tail = &w->retry_head;
	w->retry_bytes = 0;
	w->retry_bare = 0;
	if (kept > 0)
		log_warnx("%zu offline message(s) wait for the database in %s, "
		    "for another worker to store", kept, spool_path(w->spool));
	if (n > 0)
		log_warnx("%zu offline message(s) lost: the database was "
		    "still unavailable when the worker stopped", n);
	spool_close(w->spool, w->spooled > 0);
	w->spool = NULL;
}

/* A sender-less store not submitted: kept for the next tick, or lost
 * past the bounds of store_retry_keep. */
static void
store_keep_new(struct worker *w, struct store_job *sj)
{
	if (store_retry_keep(w, sj, 0))
		return;
	log_warnx("%zu offline message(s) lost: %zu bytes of messages "
	    "already wait to be stored", sj->n, w->retry_bytes);
	store_unspool(w, sj);
	store_waiting(w, sj, 0);
	store_job_free(sj);
}

void
deliver_store(struct worker *w, struct conn *sender, const struct reqinfo *ri,
    const uint32_t *uids, size_t n, const char *frame, size_t len)
{
	struct store_job *sj;

	if (len > 0 && frame[len - 1] == '\n')
		len--;
	if ((sj = store_job_new(uids, n, frame, len)) == NULL) {
		log_warnx("%s: out of memory", __func__);
		if (sender != NULL)
			reply_error(w, sender, ri, CERR_UNAVAILABLE, NULL);
		return;
	}
	/* A frame without one (from an older chatd): its arrival. */
	if ((sj->ord = deliver_order_of(frame, len)) == 0)
		sj->ord = handler_accept_us(w);
	if (sender != NULL) {
		sj->sender = sender;
		reqinfo_copy(&sj->ri, ri);
		conn_ref(sender);
	} else
		/* ACKed "delivered" long ago: on disk until stored. */
		store_spool(w, sj);
	/*
	 * Keyed by sender: one sender's messages are stored in the order
	 * they were sent, whichever job thread is free.  Without a sender
	 * (ACKed "delivered" long ago) a store behind kept ones, or one
	 * the full queue refuses (a burst of them: a slow consumer's
	 * rescue, or thousands from Redis for a session just dropped), is
	 * kept with them, in order, and submitted from the next tick.
	 */
	if (sender == NULL && w->retry_head != NULL)
		store_keep_new(w, sj);
	else if (worker_submit_keyed(w, &sj->job, sender != NULL ?
	    sender->uid : uids[0]) == -1) {
		if (sender != NULL) {
			reply_error(w, sender, ri, CERR_UNAVAILABLE,
			    "server busy (job_queue_max)");
			conn_unref(w, sender);
			store_job_free(sj);
		} else
			store_keep_new(w, sj);
	}
}

void
deliver_rescue(struct worker *w, struct conn *c)
{
	static const char p6[] = "{\"msgid\":6,", p10[] = "{\"msgid\":10,";
	const char *p, *end, *nl;
	size_t rescued = 0;

	if (c->state == CONN_ONLINE && c->out != NULL) {
		p = c->out + c->out_off;
		end = c->out + c->out_len;
		/* A line partly written is of no use to a client that reads
		 * lines: store it whole.  Its start is still in the buffer,
		 * which is only reset once everything in it was written. */
		while (p > c->out && p[-1] != '\n')
			p--;
		/* Our own frames: one object per line, msgid first. */
		while (p != NULL && p < end &&
		    (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
			if (strncmp(p, p6, sizeof(p6) - 1) == 0 ||
			    strncmp(p, p10, sizeof(p10) - 1) == 0) {
				deliver_store(w, NULL, NULL, &c->uid, 1, p,
				    (size_t)(nl - p));
				rescued++;
			}
			p = nl + 1;
		}
		if (rescued > 0)
			log_info("user %u: %zu queued message(s) stored "
			    "offline", c->uid, rescued);
	}
}

void
deliver_drop_slow(struct worker *w, struct conn *c)
{
	if (c->state == CONN_CLOSED || conn_closing(w, c))
		return;		/* already on its way out */
	log_warnx("conn %d (user %u): output over max_output (%d bytes), "
	    "disconnecting the slow consumer", c->fd, c->uid,
	    w->conf->max_output);
	w->stats->slow_consumers++;
	deliver_rescue(w, c);
	conn_close(w, c, "output over max_output");
}

/* A fan-out waiting for the PUBLISH replies of its remote recipients. */
struct fanout {
	struct conn *sender;	/* referenced, may be NULL */
	struct reqinfo ri;
	size_t pending;
	size_t noff;
	uint32_t *offline;	/* recipients nobody subscribed to */
	size_t len;
	char frame[];
};

struct fanout_pub {
	struct fanout *f;
	uint32_t uid;
};

static void
fanout_ack(struct worker *w, struct conn *c, const struct reqinfo *ri)
{
	if (c != NULL && c->state == CONN_ONLINE)
		reply_ack(w, c, ri, "delivered");
}

static void
fanout_finish(struct worker *w, struct fanout *f)
{
	if (f->noff > 0)
		deliver_store(w, f->sender, &f->ri, f->offline, f->noff,
		    f->frame, f->len);
	else
		fanout_ack(w, f->sender, &f->ri);
	if (f->sender != NULL)
		conn_unref(w, f->sender);
	reqinfo_free(&f->ri);
	free(f->offline);
	free(f);
}

static void
fanout_published(struct worker *w, void *arg, long receivers)
{
	struct fanout_pub *fp = arg;
	struct fanout *f = fp->f;

	if (receivers > 0)
		w->stats->deliver_host++;
	else
		f->offline[f->noff++] = fp->uid;
	free(fp);
	if (--f->pending == 0)
		fanout_finish(w, f);
}

void
deliver_route(struct worker *w, struct conn *sender, const struct reqinfo *ri,
    const uint32_t *uids, size_t n, const char *frame, size_t len)
{
	struct fanout *f = NULL;
	struct fanout_pub *fp;
	size_t i;

	for (i = 0; i < n; i++) {
		if (deliver_user(w, uids[i], frame, len) == DELIVER_DONE)
			continue;
		/* Not on this host: the first such recipient starts the
		 * fan-out (most messages never get here). */
		if (f == NULL) {
			if ((f = calloc(1, sizeof(*f) + len)) == NULL ||
			    (f->offline = calloc(n - i, sizeof(uint32_t))) ==
			    NULL)
				fatalx("%s: out of memory", __func__);
			memcpy(f->frame, frame, len);
			f->len = len;
			f->sender = sender;
			if (sender != NULL) {
				conn_ref(sender);
				reqinfo_copy(&f->ri, ri);
			}
			f->pending = 1;	/* held until every publish is sent */
		}
		if ((fp = malloc(sizeof(*fp))) == NULL)
			fatalx("%s: out of memory", __func__);
		fp->f = f;
		fp->uid = uids[i];
		f->pending++;
		if (bus_publish(w, uids[i], frame, len, fanout_published,
		    fp) == -1) {
			f->pending--;
			f->offline[f->noff++] = uids[i];
			free(fp);
		}
	}
	if (f == NULL)
		fanout_ack(w, sender, ri);	/* all delivered on this host */
	else if (--f->pending == 0)
		fanout_finish(w, f);
}

uint32_t
deliver_presence_of(const char *frame, size_t len)
{
	static const char pre[] = "{\"msgid\":19,\"id\":";
	unsigned long id = 0;
	size_t i;

	/* Our own frames: msgid first, then the friend's id. */
	if (len <= sizeof(pre) || memcmp(frame, pre, sizeof(pre) - 1) != 0)
		return 0;
	for (i = sizeof(pre) - 1; i < len && frame[i] >= '0' &&
	    frame[i] <= '9' && id <= UINT32_MAX; i++)
		id = id * 10 + (unsigned long)(frame[i] - '0');
	return i < len && frame[i] == ',' && id <= UINT32_MAX ?
	    (uint32_t)id : 0;
}

uint64_t
deliver_order_of(const char *frame, size_t len)
{
	static const char key[] = ",\"tus\":";
	const size_t klen = sizeof(key) - 1;
	uint64_t v = 0, scale = 1;
	size_t end = len, i;

	if (end > 0 && frame[end - 1] == '\n')
		end--;
	if (end == 0 || frame[--end] != '}')
		return 0;
	/* Digits back from the '}', at most 18 (below 2^63; microseconds
	 * since 1970 have 16 digits until the year 2286). */
	for (i = end; i > 0 && end - i < 18 && frame[i - 1] >= '0' &&
	    frame[i - 1] <= '9'; i--) {
		v += (uint64_t)(frame[i - 1] - '0') * scale;
		scale *= 10;
	}
	if (i == end || i < klen || memcmp(frame + i - klen, key, klen) != 0)
		return 0;
	return v;
}

/* A frame whose recipient's session ended on the way: a chat message is
 * stored for the next login, a PRESENCE notice is not worth storing. */
static void
deliver_missed(struct worker *w, uint32_t uid, const char *frame,
    size_t len)
{
	if (deliver_presence_of(frame, len) == 0)
		deliver_store(w, NULL, NULL, &uid, 1, frame, len);
}

void
deliver_from_bus(struct worker *w, uint32_t uid, const char *frame,
    size_t len)
{
	if (deliver_user(w, uid, frame, len) != DELIVER_DONE)
		deliver_missed(w, uid, frame, len);
}

void
deliver_inbox(struct worker *w, const struct inbox_msg *m)
{
	struct conn *c;
	uint32_t i, uid;
	uint64_t token;

	switch (m->type) {
	case INBOX_DELIVER:
		c = umap_get(&w->online, m->id);
		if (c != NULL && w->settling.live > 0)
			session_noticed(w, c, m->data, m->len);
		if (c != NULL && c->token == m->token &&
		    c->state == CONN_ONLINE &&
		    conn_send(w, c, m->data, m->len) == 0)
			return;
		if (c != NULL && c->token == m->token &&
		    c->state == CONN_ONLINE)
			deliver_drop_slow(w, c);
		/* The session ended after the sender looked it up. */
		deliver_missed(w, m->id, m->data, m->len);
		break;
	case INBOX_GROUP_INVALIDATE:
		groupcache_invalidate(&w->groups, m->id);
		break;
	case INBOX_OFFLINE_READY:
		if ((c = umap_get(&w->online, m->id)) != NULL)
			session_pull_offline(w, c);
		break;
	case INBOX_GONE:
		/* From the master: sessions of a worker that died. */
		if (m->len == (size_t)m->id * INBOX_GONE_SIZE)
			for (i = 0; i < m->id; i++) {
				memcpy(&uid, m->data + i * INBOX_GONE_SIZE,
				    sizeof(uid));
				memcpy(&token, m->data + i * INBOX_GONE_SIZE +
				    sizeof(uid), sizeof(token));
				session_gone(w, uid, token);
			}
		else
			log_warnx("%s: a list of ended sessions of %zu bytes "
			    "for %u user(s)", __func__, m->len, m->id);
		break;
	case INBOX_KICK:
		c = umap_get(&w->online, m->id);
		if (c != NULL && (m->token == 0 || c->token == m->token)) {
			log_info("user %u (%s) kicked by an operator", c->uid,
			    c->name);
			conn_close(w, c, "kicked");
		}
		break;
	default:
		log_warnx("%s: unknown inbox message type %u", __func__,
		    m->type);
		break;
	}
}
