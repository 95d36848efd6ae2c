/*
 * handle_account.c - REG, LOGIN, LOGINOUT, PING and the session they
 * create: presence, LOGIN_ACK in the classic shapes, PRESENCE pushes to
 * online friends, and paging offline messages onto the connection.
 *
 * Password hashing (argon2id) and every query run in jobs; the loop only
 * builds replies.  REG and LOGIN jobs are submitted as hashing jobs: each
 * argon2id call holds one of the host's hash_concurrency slots (job.h),
 * and the wait for it is counted in hash_waits / hash_wait_ms.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "bus.h"
#include "cluster.h"
#include "conn.h"
#include "deliver.h"
#include "handler.h"
#include "abuse.h"
#include "job.h"
#include "log.h"
#include "loginack.h"
#include "monotime.h"
#include "presence.h"
#include "protocol.h"
#include "store.h"
#include "worker.h"

/* Error text the classic client shows for a failed login. */
#define LOGIN_BAD_TEXT "id or password is invalid"

static int
store_to_cerr(int rc)
{
	return rc == STORE_OK ? 0 : CERR_UNAVAILABLE;
}

/* What a job's hash waited for its slot, counted on the loop thread
 * (the only writer of this worker's counters). */
struct hash_wait {
	int waited;
	uint64_t ms;
};

static void
hash_wait_count(struct worker *w, const struct hash_wait *hw)
{
	if (!hw->waited)
		return;
	w->stats->hash_waits++;
	w->stats->hash_wait_ms += hw->ms;
}

/* argon2id under a host slot: crypto_pwhash_str (hash != NULL) or
 * crypto_pwhash_str_verify of stored.  libsodium's result. */
static int
hash_password(struct job *j, struct hash_wait *hw, char *hash,
    const char *stored, const char *pw, int opslimit, size_t memlimit)
{
	int rc;

	hw->waited = job_hash_begin(j, &hw->ms) == 1;
	if (hash != NULL)
		rc = crypto_pwhash_str(hash, pw, strlen(pw),
		    (unsigned long long)opslimit, memlimit);
	else
		rc = crypto_pwhash_str_verify(stored, pw, strlen(pw));
	job_hash_end(j);
	return rc;
}

/* --- offline messages ---------------------------------------------- */

struct offline_batch {
	size_t n, cap;
	size_t bytes, budget;	/* stop once bytes would pass budget */
	int truncated;		/* stopped on the budget */
	uint64_t *ids;
	char **texts;
	size_t *lens;
};

static int
offline_collect(void *arg, uint64_t id, const char *text, size_t len)
{
	struct offline_batch *b = arg;

	if (b->n > 0 && b->bytes + len > b->budget) {
		b->truncated = 1;
		return 1;
	}
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;

		b->ids = reallocarray(b->ids, cap, sizeof(*b->ids));
		b->texts = reallocarray(b->texts, cap, sizeof(*b->texts));
		b->lens = reallocarray(b->lens, cap, sizeof(*b->lens));
		if (b->ids == NULL || b->texts == NULL || b->lens == NULL)
			fatalx("%s: out of memory", __func__);
		b->cap = cap;
	}
	if ((b->texts[b->n] = malloc(len + 2)) == NULL)
		fatalx("%s: out of memory", __func__);
	memcpy(b->texts[b->n], text, len);
	b->texts[b->n][len] = '\n';
	b->texts[b->n][len + 1] = '\0';
	b->lens[b->n] = len;
	b->ids[b->n] = id;
	b->bytes += len;
	b->n++;
	return 0;
}

static void
offline_batch_free(struct offline_batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		free(b->texts[i]);
	free(b->ids);
	free(b->texts);
	free(b->lens);
	memset(b, 0, sizeof(*b));
}

struct offdel_job {
	struct job job;
	struct conn *c;		/* NULL once kept to be tried again */
	uint64_t first_ms;	/* kept: when the first attempt failed */
	uint32_t uid;
	int more;		/* the batch may not have been the last */
	int blocked;		/* a row did not fit the output: the rest
				 * waits for it to drain */
	int rc;
	size_t n;
	uint64_t ids[];
};

static void
offdel_run(struct job *j, struct store *st)
{
	struct offdel_job *dj = (struct offdel_job *)j;

	dj->rc = store_offline_delete(st, dj->uid, dj->ids, dj->n);
}

static void loginout_step(struct worker *, void *, int);

/* The pull in flight on c (fetch, or delete of what was sent) is over. */
static void
pull_settled(struct worker *w, struct conn *c)
{
	void *la = c->held_ack;

	c->pulling = 0;
	if (la != NULL) {
		c->held_ack = NULL;
		loginout_step(w, la, 1);
	}
}

/*
 * Deletions kept to be tried again: up to an hour after the first
 * failure, and up to this many messages per worker; past either the
 * messages come again at the user's next login.
 */
#define OFFDEL_RETRY_MS		(3600 * 1000)
#define OFFDEL_RETRY_IDS	((size_t)1 << 20)

/* Keep dj (its session's part done) for another attempt; 0 when it
 * cannot be kept, and dj is the caller's still. */
static int
offdel_keep(struct worker *w, struct offdel_job *dj)
{
	uint64_t now = monotime_ms();

	if (dj->first_ms == 0)
		dj->first_ms = now;
	if (now - dj->first_ms >= OFFDEL_RETRY_MS ||
	    w->offdel_ids + dj->n > OFFDEL_RETRY_IDS)
		return 0;
	dj->c = NULL;
	dj->job.next = NULL;
	if (w->offdel_head == NULL) {
		w->offdel_tail = &w->offdel_head;
		w->offdel_at = now + (uint64_t)w->conf->db_retry_interval *
		    1000;
	}
	*w->offdel_tail = &dj->job;
	w->offdel_tail = &dj->job.next;
	w->offdel_ids += dj->n;
	return 1;
}

void
session_offdel_tick(struct worker *w)
{
	struct offdel_job *dj;
	struct job *j;

	if (w->offdel_head == NULL || monotime_ms() < w->offdel_at)
		return;
	while ((j = w->offdel_head) != NULL) {
		w->offdel_head = j->next;
		if (worker_submit(w, j) == -1) {
			/* The queue is full: the rest at the next tick. */
			w->offdel_head = j;
			return;
		}
		dj = (struct offdel_job *)j;
		w->offdel_ids -= dj->n;
	}
	w->offdel_tail = &w->offdel_head;
}

void
session_offdel_drop(struct worker *w)
{
	struct job *j;
	size_t n = w->offdel_ids;

	while ((j = w->offdel_head) != NULL) {
		w->offdel_head = j->next;
		free(j);
	}
	w->offdel_tail = &w->offdel_head;
	w->offdel_ids = 0;
	if (n > 0)
		log_warnx("stopping with %zu delivered offline message(s) "
		    "not deleted (the database was unavailable); they will "
		    "be delivered again", n);
}

/* The session's part of a first attempt: its pull goes on. */
static void
offdel_session(struct worker *w, struct offdel_job *dj)
{
	struct conn *c = dj->c;

	pull_settled(w, c);
	/* A blocked pull goes on when the output drains (pull_again and
	 * handler_conn_drained), not at once: the same rows would not fit
	 * again, and the fetch would repeat as fast as the database goes. */
	if (conn_is_user(c, dj->uid) &&
	    (dj->more || c->pull_again) && !(dj->blocked && conn_outq(c) > 0))
		session_pull_offline(w, c);
	conn_unref(w, c);
}

static void
offdel_done(struct job *j, struct worker *w)
{
	struct offdel_job *dj = (struct offdel_job *)j;
	int first = dj->c != NULL;	/* NULL on an attempt again */

	if (first)
		offdel_session(w, dj);
	if (dj->rc == STORE_OK) {
		if (!first)
			log_info("user %u: deleted %zu delivered offline "
			    "message(s) once the database was back", dj->uid,
			    dj->n);
		free(dj);
		return;
	}
	if (offdel_keep(w, dj)) {
		if (first)
			log_warnx("user %u: could not delete %zu delivered "
			    "offline message(s); trying again every %d s "
			    "(db_retry_interval) (until then a new login gets "
			    "them again)", dj->uid, dj->n,
			    w->conf->db_retry_interval);
		return;
	}
	log_warnx("user %u: could not delete %zu delivered offline "
	    "message(s); they will be delivered again", dj->uid, dj->n);
	free(dj);
}

/*
 * Queue the batch on c and delete exactly the ids that were queued, so a
 * message inserted meanwhile is never deleted unseen.  Returns how many
 * were queued.
 */
static size_t
offline_queue(struct worker *w, struct conn *c, struct offline_batch *b,
    size_t first, int more)
{
	struct offdel_job *dj;
	size_t i, sent = 0;
	int was_pulling = c->pulling;

	/* A conn_send over max_output flushes, and output drained there
	 * would start another pull (handler_conn_drained) that reads these
	 * rows again before they are deleted: pulling covers the loop. */
	c->pulling = 1;
	for (i = first; i < b->n; i++) {
		if (conn_send(w, c, b->texts[i], b->lens[i] + 1) == -1) {
			c->pull_again = 1;
			break;
		}
		sent++;
	}
	w->stats->offline_delivered += sent;
	if (b->n == 0) {
		c->pulling = was_pulling;
		return 0;
	}
	if ((dj = malloc(sizeof(*dj) + b->n * sizeof(uint64_t))) == NULL)
		fatalx("%s: out of memory", __func__);
	memset(dj, 0, sizeof(*dj));
	dj->job.run = offdel_run;
	dj->job.done = offdel_done;
	dj->c = c;
	dj->uid = c->uid;
	dj->more = more;
	dj->blocked = first + sent < b->n;
	dj->n = 0;
	/* ids before `first` went out inside LOGIN_ACK. */
	for (i = 0; i < first + sent; i++)
		dj->ids[dj->n++] = b->ids[i];
	conn_ref(c);
	/* Refused, the rows would be fetched and sent again. */
	worker_submit_later(w, &dj->job);
	return sent;
}

struct pull_job {
	struct job job;
	struct conn *c;
	uint32_t uid;
	int limit;
	int rc;
	struct offline_batch b;
};

static void
pull_run(struct job *j, struct store *st)
{
	struct pull_job *pj = (struct pull_job *)j;

	pj->rc = store_offline_fetch(st, pj->uid, pj->limit, offline_collect,
	    &pj->b);
}

static void
pull_done(struct job *j, struct worker *w)
{
	struct pull_job *pj = (struct pull_job *)j;
	struct conn *c = pj->c;

	pull_settled(w, c);
	if (conn_is_user(c, pj->uid)) {
		if (pj->rc != STORE_OK)
			c->pull_again = 1;	/* retried when output drains */
		else if (pj->b.n > 0)
			(void)offline_queue(w, c, &pj->b, 0,
			    pj->b.truncated || pj->b.n == (size_t)pj->limit);
		else if (c->pull_again)
			/* Asked for while this fetch ran, which may have
			 * read before the new message was stored; with rows,
			 * offdel_done looks at pull_again. */
			session_pull_offline(w, c);
	}
	offline_batch_free(&pj->b);
	conn_unref(w, c);
	free(pj);
}

void
session_pull_offline(struct worker *w, struct conn *c)
{
	struct pull_job *pj;
	size_t room;

	if (c->state != CONN_ONLINE || c->close_after_flush)
		return;		/* nothing more is queued on it */
	c->pull_again = 1;
	if (c->pulling)
		return;		/* the running pull looks again after */
	room = (size_t)w->conf->max_output / 2;
	if (conn_outq(c) >= room)
		return;		/* resumed when the output drains */
	c->pull_again = 0;
	if ((pj = calloc(1, sizeof(*pj))) == NULL)
		fatalx("%s: out of memory", __func__);
	pj->job.run = pull_run;
	pj->job.done = pull_done;
	pj->c = c;
	pj->uid = c->uid;
	pj->limit = w->conf->offline_batch > 0 ? w->conf->offline_batch : 100;
	pj->b.budget = room - conn_outq(c);
	c->pulling = 1;
	conn_ref(c);
	if (worker_submit(w, &pj->job) == -1) {
		c->pulling = 0;
		c->pull_again = 1;
		conn_unref(w, c);
		free(pj);
	}
}

/* --- PRESENCE pushes -------------------------------------------------- */

static char *
presence_line(uint32_t uid, int online, size_t *len)
{
	cJSON *obj;
	char *line;

	obj = cJSON_CreateObject();
	cJSON_AddNumberToObject(obj, "msgid", MSG_PRESENCE);
	cJSON_AddNumberToObject(obj, "id", uid);
	cJSON_AddStringToObject(obj, "state", online ? "online" : "offline");
	line = reply_line(obj, len);
	cJSON_Delete(obj);
	return line;
}

/*
 * Tell uid's friends that uid is now online (state 1) or offline: those
 * on this host directly, the others through Redis when they are online
 * elsewhere (online[i] from the cluster lookup; NULL: publish to every
 * friend not found here).  A notice for someone offline is not worth
 * storing.  With reached (may be NULL), friends whose reached[i] is set
 * are skipped, and it is set for those the notice is handed to: a
 * session here, or a PUBLISH.
 */
static void
presence_push(struct worker *w, uint32_t uid, const uint32_t *friends,
    const unsigned char *online, size_t n, int state,
    unsigned char *reached)
{
	char *line;
	size_t i, len;
	int done;

	if (n == 0 || (line = presence_line(uid, state, &len)) == NULL)
		return;
	for (i = 0; i < n; i++) {
		if (reached != NULL && reached[i])
			continue;
		done = deliver_user(w, friends[i], line, len) == DELIVER_DONE;
		if (!done && (online == NULL || online[i]))
			done = bus_publish(w, friends[i], line, len, NULL,
			    NULL) == 0;
		if (reached != NULL)
			reached[i] = (unsigned char)done;
	}
	free(line);
}

/* --- settling a new session's friend states --------------------------- */

/*
 * LOGIN_ACK's friend states were read before the session could be found
 * (presence table, Redis claim) or reached (subscription), and the
 * "online" notice went by states read then too: a friend whose session
 * began or ended meanwhile may have missed us, and we it.  Once the
 * session is reachable (its SUBSCRIBE confirmed; at once on one host)
 * the states are read again, and
 *  - the client gets a PRESENCE for each friend whose state differs from
 *    what it was told, unless a notice for that friend came meanwhile
 *    (it is newer than our reading);
 *  - each friend now online that the first notice did not reach gets it.
 * Any state change after the reading reaches the client as usual: the
 * friend's host finds this session claimed and subscribed.
 */
struct settle {
	struct job job;
	struct conn *c;
	uint32_t uid;
	uint64_t token;
	struct presence *presence;
	int running;
	int known;		/* the reading has every host's states */
	size_t n;
	uint32_t *fids;
	unsigned char *told;	/* online in LOGIN_ACK */
	unsigned char *reached;	/* the first notice was handed over */
	unsigned char *now;	/* the second reading */
	unsigned char *noticed;	/* a notice came after the reading began */
};

static void
settle_free(struct settle *s)
{
	free(s->fids);
	free(s->told);
	free(s->reached);
	free(s->now);
	free(s->noticed);
	free(s);
}

static void
settle_run(struct job *j, struct store *st)
{
	struct settle *s = (struct settle *)j;
	struct presence_entry e;
	size_t i;

	s->known = store_cluster(st) == NULL ||
	    cluster_online(store_cluster(st), s->fids, s->n, s->now) == 0;
	for (i = 0; i < s->n; i++)
		if (presence_lookup(s->presence, s->fids[i], &e) ==
		    PRESENCE_OK)
			s->now[i] = 1;
}

static void
settle_done(struct job *j, struct worker *w)
{
	struct settle *s = (struct settle *)j;
	struct conn *c = s->c;
	char *line;
	size_t i, len;

	if (umap_get(&w->settling, s->uid) == s)
		(void)umap_del(&w->settling, s->uid);
	if (s->known && conn_is_user(c, s->uid) &&
	    c->token == s->token) {
		for (i = 0; i < s->n; i++) {
			if (s->now[i] == s->told[i] || s->noticed[i] ||
			    (line = presence_line(s->fids[i], s->now[i],
			    &len)) == NULL)
				continue;
			w->stats->presence_settled++;
			if (conn_send(w, c, line, len) == -1) {
				free(line);
				deliver_drop_slow(w, c);
				break;
			}
			free(line);
		}
		if (c->state == CONN_ONLINE)
			presence_push(w, s->uid, s->fids, s->now, s->n, 1,
			    s->reached);
	}
	conn_unref(w, c);
	settle_free(s);
}

/* Refused by a full queue it waits for room (worker_submit_later) as
 * "running": the reading must still be made, and a session that ends
 * meanwhile is found gone by settle_done. */
static void
settle_start(struct worker *w, struct settle *s)
{
	s->running = 1;
	s->job.run = settle_run;
	s->job.done = settle_done;
	conn_ref(s->c);
	worker_submit_later(w, &s->job);
}

/* Keep c's n friends, the states LOGIN_ACK told and who got the first
 * notice (the arrays are taken over); started at once on one host, else
 * by session_reachable. */
static void
settle_open(struct worker *w, struct conn *c, size_t n, uint32_t *fids,
    unsigned char *told, unsigned char *reached)
{
	struct settle *s;

	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->now = calloc(n, 1)) == NULL ||
	    (s->noticed = calloc(n, 1)) == NULL)
		fatalx("%s: out of memory", __func__);
	s->c = c;
	s->uid = c->uid;
	s->token = c->token;
	s->presence = w->presence;
	s->n = n;
	s->fids = fids;
	s->told = told;
	s->reached = reached;
	if (umap_put(&w->settling, s->uid, s) == -1)
		fatalx("%s: out of memory", __func__);
	if (w->bus == NULL)
		settle_start(w, s);
}

/* The session ends: a settle not yet running is dropped (a running one
 * finds the session gone). */
static void
settle_drop(struct worker *w, struct conn *c)
{
	struct settle *s = umap_get(&w->settling, c->uid);

	if (s == NULL || s->token != c->token)
		return;
	(void)umap_del(&w->settling, c->uid);
	if (!s->running)
		settle_free(s);
}

void
session_reachable(struct worker *w, struct conn *c)
{
	struct settle *s = umap_get(&w->settling, c->uid);

	session_pull_offline(w, c);
	if (s != NULL && s->token == c->token && !s->running)
		settle_start(w, s);
}

void
session_noticed(struct worker *w, struct conn *c, const char *frame,
    size_t len)
{
	struct settle *s = umap_get(&w->settling, c->uid);
	uint32_t id;
	size_t i;

	if (s == NULL || s->token != c->token ||
	    (id = deliver_presence_of(frame, len)) == 0)
		return;
	for (i = 0; i < s->n; i++)
		if (s->fids[i] == id)
			s->noticed[i] = 1;
}

struct ids {
	size_t n, cap;
	uint32_t *v;
};

static int
ids_add_user(void *arg, uint32_t id, const char *name)
{
	struct ids *ids = arg;

	if (ids->n == ids->cap) {
		ids->cap = ids->cap ? ids->cap * 2 : 16;
		if ((ids->v = reallocarray(ids->v, ids->cap,
		    sizeof(uint32_t))) == NULL)
			fatalx("%s: out of memory", __func__);
	}
	ids->v[ids->n++] = id;
	return 0;
}

/*
 * Note in shared memory that the friends of uid's session `token` are to
 * be told it ended: the entry's index, or -1 when all are taken (that
 * notice is lost should this worker die before it is sent).
 */
static int
ending_add(struct worker *w, uint32_t uid, uint64_t token)
{
	struct worker_ending *e;
	int i;

	if (w->ending_nfree == 0) {
		log_debug("user %u: no room to note its logout (%d under way)",
		    uid, WORKER_ENDING_MAX);
		return -1;
	}
	i = w->ending_free[--w->ending_nfree];
	e = &w->stats->ending[i];
	e->token = token;
	__atomic_store_n(&e->uid, uid, __ATOMIC_RELEASE);
	return i;
}

static void
ending_del(struct worker *w, int i)
{
	if (i < 0)
		return;
	__atomic_store_n(&w->stats->ending[i].uid, 0, __ATOMIC_RELEASE);
	w->ending_free[w->ending_nfree++] = (uint16_t)i;
}

/*
 * A notice to uid's friends: "offline" when a session ended (token; 0
 * when its claim expired, its host gone), or "online" again when the
 * session `token` here found its claim had expired (session_back).
 */
struct logout_job {
	struct job job;
	uint32_t uid;
	uint64_t token;		/* the session that ended, or lives */
	int state;		/* 1: "online" (session_back) */
	int expired;		/* session_expired: take the gone marker */
	int ending;		/* its entry in stats->ending, or -1 */
	int again;		/* logged in again since: no "offline" */
	bus_done_fn released;	/* the caller's, when the claim is gone */
	void *arg;
	int rc;
	int online_known;
	struct ids friends;
	unsigned char *online;
};

static void
logout_run(struct job *j, struct store *st)
{
	struct logout_job *lj = (struct logout_job *)j;

	/* Every host hears of an expired claim: one tells the friends. */
	if (lj->expired && cluster_gone_take(store_cluster(st), lj->uid) !=
	    1) {
		lj->rc = STORE_NOTFOUND;
		return;
	}
	lj->rc = store_friend_list(st, lj->uid, ids_add_user, &lj->friends);
	if (lj->rc != STORE_OK)
		return;
	if ((lj->online = calloc(lj->friends.n + 1, 1)) == NULL)
		fatalx("%s: out of memory", __func__);
	lj->online_known = cluster_online(store_cluster(st), lj->friends.v,
	    lj->friends.n, lj->online) == 0;
	if (lj->state == 1)
		return;
	/*
	 * Last, just before the notice goes: a new session of the user
	 * (on another host; this host's table is looked at in logout_done)
	 * has sent its "online" already or will, and an "offline" that
	 * reached a friend after it would stay.  A quick reconnect.
	 */
	lj->again = cluster_claimed_else(store_cluster(st), lj->uid,
	    lj->token) == 1;
}

static void
logout_done(struct job *j, struct worker *w)
{
	struct logout_job *lj = (struct logout_job *)j;
	struct presence_entry e;
	struct conn *c;

	if (lj->rc == STORE_OK && lj->state == 1) {
		/* Only while that session lasts: its end tells "offline". */
		c = umap_get(&w->online, lj->uid);
		if (c == NULL || c->token != lj->token)
			lj->rc = STORE_NOTFOUND;
	} else if (lj->rc == STORE_OK && (lj->again ||
	    presence_lookup(w->presence, lj->uid, &e) == PRESENCE_OK)) {
		log_debug("user %u: logged in again; no \"offline\" notice",
		    lj->uid);
		lj->rc = STORE_NOTFOUND;
	}
	if (lj->rc == STORE_OK) {
		if (lj->expired)
			w->stats->presence_expired++;
		presence_push(w, lj->uid, lj->friends.v, lj->online_known ?
		    lj->online : NULL, lj->friends.n, lj->state, NULL);
	}
	ending_del(w, lj->ending);
	free(lj->friends.v);
	free(lj->online);
	free(lj);
}

/* The friends' "offline" notice for uid's session `token`, which ended
 * (the caller sets what else). */
static struct logout_job *
logout_job_new(uint32_t uid, uint64_t token)
{
	struct logout_job *lj;

	if ((lj = calloc(1, sizeof(*lj))) == NULL)
		fatalx("%s: out of memory", __func__);
	lj->job.run = logout_run;
	lj->job.done = logout_done;
	lj->uid = uid;
	lj->token = token;
	lj->ending = -1;
	return lj;
}

static void
logout_submit(struct worker *w, struct logout_job *lj)
{
	/* Refused, the friends would never be told. */
	worker_submit_later(w, &lj->job);
}

/* The claim is released: only now are the friends' states read for the
 * "offline" notice, so that a friend whose login reads ours after that
 * finds us offline, and one whose reading came first is told. */
static void
session_released(struct worker *w, void *arg, int ok)
{
	struct logout_job *lj = arg;
	bus_done_fn fn = lj->released;
	void *fnarg = lj->arg;

	logout_submit(w, lj);
	if (fn != NULL)
		fn(w, fnarg, ok);
}

int
session_end(struct worker *w, struct conn *c, bus_done_fn fn, void *arg)
{
	struct logout_job *lj;

	if (presence_remove(w->presence, c->uid, c->token) != PRESENCE_OK)
		log_warnx("user %u: presence entry was already gone", c->uid);
	settle_drop(w, c);
	if (umap_get(&w->online, c->uid) == c)
		(void)umap_del(&w->online, c->uid);
	w->stats->online = w->online.live;
	log_info("user %u (%s) logged out", c->uid, c->name);
	lj = logout_job_new(c->uid, c->token);
	lj->ending = ending_add(w, c->uid, c->token);
	lj->released = fn;
	lj->arg = arg;
	if (bus_release(w, c->uid, c->token, session_released, lj))
		return fn != NULL;
	logout_submit(w, lj);
	return 0;
}

void
session_gone(struct worker *w, uint32_t uid, uint64_t token)
{
	struct logout_job *lj = logout_job_new(uid, token);

	lj->ending = ending_add(w, uid, token);
	logout_submit(w, lj);
}

void
session_expired(struct worker *w, uint32_t uid)
{
	struct logout_job *lj = logout_job_new(uid, 0);

	log_debug("user %u: claim expired", uid);
	lj->expired = 1;
	logout_submit(w, lj);
}

void
session_back(struct worker *w, struct conn *c)
{
	struct logout_job *lj = logout_job_new(c->uid, c->token);

	log_debug("user %u: claim renewed after it expired; telling the "
	    "friends \"online\"", c->uid);
	lj->state = 1;
	logout_submit(w, lj);
}

/* --- REG ------------------------------------------------------------- */

struct reg_job {
	struct job job;
	struct conn *c;
	struct reqinfo ri;
	int opslimit;
	size_t memlimit;
	char name[PROTO_NAME_MAX + 1];
	char password[PROTO_PASSWORD_MAX + 1];
	int err;
	uint32_t id;
	struct hash_wait hw;
};

static void
reg_run(struct job *j, struct store *st)
{
	struct reg_job *rj = (struct reg_job *)j;
	char hash[crypto_pwhash_STRBYTES];
	int rc;

	if (hash_password(j, &rj->hw, hash, NULL, rj->password, rj->opslimit,
	    rj->memlimit) != 0) {
		log_warnx("password hashing failed (hash_memlimit_kib too "
		    "large for this host?)");
		rj->err = CERR_UNAVAILABLE;
		goto out;
	}
	rc = store_user_create(st, rj->name, hash, &rj->id);
	rj->err = rc == STORE_DUP ? CERR_NAME_TAKEN : store_to_cerr(rc);
out:
	sodium_memzero(rj->password, sizeof(rj->password));
}

static void
reg_done(struct job *j, struct worker *w)
{
	struct reg_job *rj = (struct reg_job *)j;
	struct conn *c = rj->c;
	cJSON *obj;

	hash_wait_count(w, &rj->hw);
	if (c->state != CONN_CLOSED) {
		obj = cJSON_CreateObject();
		cJSON_AddNumberToObject(obj, "msgid", MSG_REG_ACK);
		cJSON_AddNumberToObject(obj, "errno", rj->err);
		if (rj->err != 0) {
			w->stats->errors[rj->err]++;
			cJSON_AddStringToObject(obj, "errmsg",
			    rj->err == CERR_NAME_TAKEN ? "name is already "
			    "taken" : proto_strerror(rj->err));
		} else {
			w->stats->registrations++;
			cJSON_AddNumberToObject(obj, "id", rj->id);
			log_info("registered user %u (%s)", rj->id, rj->name);
		}
		if (rj->ri.seq != NULL)
			cJSON_AddItemToObject(obj, "seq",
			    cJSON_Duplicate(rj->ri.seq, 1));
		if (reply_send(w, c, obj) == 0)
			conn_resume(w, c);
	}
	conn_unref(w, c);
	reqinfo_free(&rj->ri);
	free(rj);
}

void
handle_reg(struct worker *w, struct conn *c, const struct request *r)
{
	struct reg_job *rj;
	struct reqinfo ri;

	if ((rj = calloc(1, sizeof(*rj))) == NULL)
		fatalx("%s: out of memory", __func__);
	rj->job.run = reg_run;
	rj->job.done = reg_done;
	rj->job.hashes = 1;
	rj->c = c;
	reqinfo_init(&rj->ri, r);
	rj->opslimit = w->conf->hash_opslimit;
	rj->memlimit = (size_t)w->conf->hash_memlimit_kib * 1024;
	(void)snprintf(rj->name, sizeof(rj->name), "%s",
	    request_str(r, "name"));
	(void)snprintf(rj->password, sizeof(rj->password), "%s",
	    request_str(r, "password"));
	conn_ref(c);
	if (worker_submit(w, &rj->job) == -1) {
		reqinfo_init(&ri, r);
		reply_direct_error(w, c, &ri, CERR_UNAVAILABLE,
		    "server busy (job_queue_max)");
		reqinfo_free(&ri);
		conn_unref(w, c);
		reqinfo_free(&rj->ri);
		sodium_memzero(rj->password, sizeof(rj->password));
		free(rj);
		return;
	}
	/* Later frames wait, so a pipelined LOGIN sees this user. */
	conn_pause(w, c);
}

/* --- LOGIN ----------------------------------------------------------- */

struct login_job {
	struct job job;
	struct conn *c;
	struct reqinfo ri;
	uint32_t uid;
	char password[PROTO_PASSWORD_MAX + 1];
	int offline_limit;
	int err;
	char name[PROTO_NAME_MAX + 1];
	struct hash_wait hw;
	int states_known;	/* friends' states came from Redis */
	struct ack_users friends;
	struct ack_groups groups;
	struct offline_batch off;
	/* Made by login_run, off the event loop: */
	struct presence *presence;	/* for the states of this host */
	char *ack;		/* the LOGIN_ACK line */
	size_t ack_len;
	uint32_t *fids;		/* friend ids and their Redis states, */
	unsigned char *fonline;	/* for the PRESENCE pushes */
	unsigned char *ftold;	/* online in the LOGIN_ACK */
	size_t nf;
};

/*
 * The LOGIN_ACK line and the friends' ids and Redis states, on the job
 * thread: for a member of big groups it is every member with its state,
 * which the event loop would spend time on while its clients wait.  The
 * presence table is shared memory that any thread may read.
 */
static void
login_build_ack(struct login_job *lj)
{
	struct ack_parts a;
	struct jbuf out;
	size_t i;

	lj->nf = lj->friends.n;
	if ((lj->fids = calloc(lj->nf + 1, sizeof(*lj->fids))) == NULL ||
	    (lj->fonline = calloc(lj->nf + 1, 1)) == NULL ||
	    (lj->ftold = calloc(lj->nf + 1, 1)) == NULL)
		fatalx("%s: out of memory", __func__);
	for (i = 0; i < lj->nf; i++) {
		lj->fids[i] = lj->friends.v[i].id;
		lj->fonline[i] = lj->friends.v[i].online;
	}
	users_local_states(lj->presence, &lj->friends, lj->uid);
	for (i = 0; i < lj->nf; i++)
		lj->ftold[i] = lj->friends.v[i].online;
	for (i = 0; i < lj->groups.n; i++)
		users_local_states(lj->presence, &lj->groups.v[i].users,
		    lj->uid);
	memset(&a, 0, sizeof(a));
	a.uid = lj->uid;
	a.name = lj->name;
	a.seq = lj->ri.seq;
	a.friends = &lj->friends;
	a.groups = &lj->groups;
	a.off_texts = lj->off.texts;
	a.off_lens = lj->off.lens;
	a.off_n = lj->off.n;
	jbuf_init(&out);
	login_ack_write(&out, &a);
	if (out.oom)
		jbuf_free(&out);
	lj->ack = out.p;
	lj->ack_len = out.len;
	/* What is left is not needed on the loop. */
	ack_users_free(&lj->friends);
	ack_groups_free(&lj->groups);
}

static void
login_run(struct job *j, struct store *st)
{
	struct login_job *lj = (struct login_job *)j;
	char hash[256];
	size_t i;
	int rc;

	rc = store_user_get(st, lj->uid, lj->name, sizeof(lj->name), hash,
	    sizeof(hash));
	if (rc == STORE_NOTFOUND) {
		lj->err = CERR_AUTH;
		goto out;
	}
	if (rc != STORE_OK) {
		lj->err = CERR_UNAVAILABLE;
		goto out;
	}
	if (hash_password(j, &lj->hw, NULL, hash, lj->password, 0, 0) != 0) {
		lj->err = CERR_AUTH;
		goto out;
	}
	if ((rc = store_friend_list(st, lj->uid, ack_add_friend,
	    &lj->friends)) != STORE_OK ||
	    (rc = store_group_list(st, lj->uid, ack_add_group,
	    &lj->groups)) != STORE_OK) {
		lj->err = CERR_UNAVAILABLE;
		goto out;
	}
	for (i = 0; i < lj->groups.n; i++) {
		rc = store_group_members(st, lj->groups.v[i].id,
		    ack_add_member, &lj->groups.v[i].users);
		if (rc != STORE_OK && rc != STORE_NOTFOUND) {
			lj->err = CERR_UNAVAILABLE;
			goto out;
		}
	}
	lj->states_known = users_cluster_states(st, &lj->friends) == 0;
	for (i = 0; i < lj->groups.n; i++)
		(void)users_cluster_states(st, &lj->groups.v[i].users);
	if (lj->offline_limit > 0 && store_offline_fetch(st, lj->uid,
	    lj->offline_limit, offline_collect, &lj->off) != STORE_OK) {
		lj->err = CERR_UNAVAILABLE;
		goto out;
	}
	login_build_ack(lj);
	lj->err = lj->ack != NULL ? 0 : CERR_UNAVAILABLE;
out:
	sodium_memzero(lj->password, sizeof(lj->password));
}

static void
login_reply_error(struct worker *w, struct conn *c, const struct reqinfo *ri,
    int err, const char *errmsg)
{
	cJSON *obj = cJSON_CreateObject();

	w->stats->logins_failed++;
	w->stats->errors[err]++;
	cJSON_AddNumberToObject(obj, "msgid", MSG_LOGIN_ACK);
	cJSON_AddNumberToObject(obj, "errno", err);
	cJSON_AddStringToObject(obj, "errmsg", errmsg);
	if (ri->seq != NULL)
		cJSON_AddItemToObject(obj, "seq", cJSON_Duplicate(ri->seq, 1));
	if (reply_send(w, c, obj) == 0)
		conn_resume(w, c);
}

static void
login_free(struct worker *w, struct login_job *lj)
{
	ack_users_free(&lj->friends);
	ack_groups_free(&lj->groups);
	free(lj->ack);
	free(lj->fids);
	free(lj->fonline);
	free(lj->ftold);
	offline_batch_free(&lj->off);
	reqinfo_free(&lj->ri);
	conn_unref(w, lj->c);
	free(lj);
}

/* The login did not happen: back to anonymous, answer, free. */
static void
login_fail(struct worker *w, struct login_job *lj, int err, const char *msg)
{
	struct conn *c = lj->c;

	worker_list_del(w, c);
	conn_set_state(c, CONN_ANON);
	worker_list_add(w, c);
	login_reply_error(w, c, &lj->ri, err, msg);
	login_free(w, lj);
}

/* The session exists: LOGIN_ACK, PRESENCE to friends, offline paging. */
static void
login_finish(struct worker *w, struct login_job *lj)
{
	struct conn *c = lj->c;
	unsigned char *reached;

	worker_list_del(w, c);
	c->uid = lj->uid;
	free(c->name);
	if ((c->name = strdup(lj->name)) == NULL)
		fatalx("%s: out of memory", __func__);
	conn_set_state(c, CONN_ONLINE);
	c->last_active = w->now;
	worker_list_add(w, c);
	if (umap_put(&w->online, c->uid, c) == -1)
		fatalx("%s: out of memory", __func__);
	w->stats->online = w->online.live;
	bus_subscribe(w, c->uid);
	w->stats->logins_ok++;
	log_info("user %u (%s) logged in", c->uid, c->name);

	if (conn_send_uncapped(w, c, lj->ack, lj->ack_len) == -1) {
		conn_close(w, c, "cannot queue LOGIN_ACK");
		goto out;	/* the offline rows stay stored */
	}
	w->stats->offline_delivered += lj->off.n;
	reached = NULL;
	if (lj->nf > 0 && (reached = calloc(lj->nf, 1)) == NULL)
		fatalx("%s: out of memory", __func__);
	presence_push(w, c->uid, lj->fids, lj->states_known ? lj->fonline :
	    NULL, lj->nf, 1, reached);
	if (lj->nf > 0) {
		settle_open(w, c, lj->nf, lj->fids, lj->ftold, reached);
		lj->fids = NULL;
		lj->ftold = NULL;
	}
	if (lj->off.n > 0)
		(void)offline_queue(w, c, &lj->off, lj->off.n,
		    lj->off.truncated || lj->off.n ==
		    (size_t)lj->offline_limit);
	if ((lj->off.n == 0 && lj->offline_limit == 0) || w->bus == NULL)
		/* None go in LOGIN_ACK, or (one host) what was stored since
		 * login_run read them, after the rows above are deleted
		 * (with Redis, session_reachable pulls). */
		session_pull_offline(w, c);
	conn_resume(w, c);
out:
	login_free(w, lj);
}

/* The cluster-wide claim (Redis SET NX) answered. */
static void
login_claimed(struct worker *w, void *arg, int result)
{
	struct login_job *lj = arg;
	struct conn *c = lj->c;
	char msg[128];

	if (result == BUS_CLAIMED && c->state != CONN_CLOSED) {
		login_finish(w, lj);
		return;
	}
	(void)presence_remove(w->presence, lj->uid, c->token);
	if (result == BUS_CLAIMED)	/* the client left meanwhile */
		(void)bus_release(w, lj->uid, c->token, NULL, NULL);
	else
		/* While this login held the presence entry, a message for the
		 * user stored on this host told this login to pull it, not
		 * the session that holds the claim, perhaps on another host:
		 * tell that one. */
		bus_hint_pull(w, lj->uid);
	if (c->state == CONN_CLOSED) {
		login_free(w, lj);
		return;
	}
	if (result == BUS_TAKEN) {
		(void)snprintf(msg, sizeof(msg), "user %u is already online",
		    lj->uid);
		login_fail(w, lj, CERR_ONLINE, msg);
	} else
		login_fail(w, lj, CERR_UNAVAILABLE, "cluster presence "
		    "(Redis) unavailable; try again shortly");
}

static void
login_done(struct job *j, struct worker *w)
{
	struct login_job *lj = (struct login_job *)j;
	struct conn *c = lj->c;
	struct presence_entry e, holder;
	char msg[128];
	int rc;

	hash_wait_count(w, &lj->hw);
	if (lj->err == CERR_AUTH || lj->err == 0)
		limit_login_result(w, c, lj->uid, lj->err == 0);
	if (c->state == CONN_CLOSED) {
		login_free(w, lj);
		return;
	}
	if (lj->err != 0) {
		login_fail(w, lj, lj->err, lj->err == CERR_AUTH ?
		    LOGIN_BAD_TEXT : proto_strerror(lj->err));
		return;
	}
	memset(&e, 0, sizeof(e));
	e.uid = lj->uid;
	e.slot = (uint16_t)w->slot;
	e.pid = (int32_t)getpid();
	e.token = c->token;
	e.since = (int64_t)w->now;
	(void)snprintf(e.name, sizeof(e.name), "%s", lj->name);
	rc = presence_insert(w->presence, &e, &holder);
	if (rc == PRESENCE_EXISTS) {
		(void)snprintf(msg, sizeof(msg), "user %u is already online",
		    lj->uid);
		login_fail(w, lj, CERR_ONLINE, msg);
		return;
	}
	if (rc != PRESENCE_OK) {
		log_warnx("login of user %u refused: presence table full "
		    "(presence_capacity = %d)", lj->uid,
		    w->conf->presence_capacity);
		login_fail(w, lj, CERR_UNAVAILABLE,
		    "server full: no room for another online user");
		return;
	}
	/* One host: the presence table decided.  A cluster: Redis decides
	 * atomically across hosts; the connection stays LOGGING_IN. */
	if (w->bus != NULL)
		bus_claim(w, lj->uid, c->token, login_claimed, lj);
	else
		login_finish(w, lj);
}

void
handle_login(struct worker *w, struct conn *c, const struct request *r)
{
	struct login_job *lj;
	uint32_t uid = handler_id(request_int(r, "id"));
	struct reqinfo ri;
	const char *key;
	char msg[128];
	int wait;

	reqinfo_init(&ri, r);
	if (uid == 0) {
		login_reply_error(w, c, &ri, CERR_AUTH, LOGIN_BAD_TEXT);
		reqinfo_free(&ri);
		return;
	}
	if (limit_login_check(w, c, uid, &wait, &key) == -1) {
		(void)snprintf(msg, sizeof(msg), "too many failed logins "
		    "(%s); try again in %d s", key, wait);
		log_info("login of user %u refused for %d s: too many failed "
		    "logins (%s)", uid, wait, key);
		login_reply_error(w, c, &ri, CERR_RATE, msg);
		reqinfo_free(&ri);
		return;
	}
	if ((lj = calloc(1, sizeof(*lj))) == NULL)
		fatalx("%s: out of memory", __func__);
	lj->job.run = login_run;
	lj->job.done = login_done;
	lj->job.hashes = 1;
	lj->c = c;
	lj->ri = ri;
	lj->uid = uid;
	lj->offline_limit = w->conf->offline_batch;
	lj->presence = w->presence;
	lj->off.budget = (size_t)w->conf->max_output / 2;
	(void)snprintf(lj->password, sizeof(lj->password), "%s",
	    request_str(r, "password"));
	conn_ref(c);
	if (worker_submit(w, &lj->job) == -1) {
		login_reply_error(w, c, &ri, CERR_UNAVAILABLE,
		    "server busy (job_queue_max)");
		conn_unref(w, c);
		reqinfo_free(&lj->ri);
		sodium_memzero(lj->password, sizeof(lj->password));
		free(lj);
		return;
	}
	worker_list_del(w, c);
	conn_set_state(c, CONN_LOGGING_IN);
	worker_list_add(w, c);
	conn_pause(w, c);
}

/* --- LOGINOUT, PING -------------------------------------------------- */

/* A LOGINOUT's ACK, held until the cluster claim is gone and the
 * offline messages sent are deleted. */
struct logout_ack {
	struct conn *c;
	struct reqinfo ri;
	int waits;
};

static void
loginout_step(struct worker *w, void *arg, int ok)
{
	struct logout_ack *la = arg;
	struct conn *c = la->c;

	(void)ok;	/* a claim left behind expires (presence_ttl) */
	if (--la->waits > 0)
		return;
	if (c->state != CONN_CLOSED) {
		reply_ok(w, c, &la->ri, NULL);
		conn_resume(w, c);
	}
	conn_unref(w, c);
	reqinfo_free(&la->ri);
	free(la);
}

/*
 * The ACK waits for Redis to answer the claim's release, and for the
 * delete of offline messages just sent (or their fetch), and c reads no
 * further request meanwhile: once the client has it, a LOGIN on any host
 * finds the user offline and is not sent those messages again.  (A LOGIN
 * on this host would not be refused anyway: it takes over a claim left
 * by this host, see CLUSTER_LUA_CLAIM.)
 */
void
handle_loginout(struct worker *w, struct conn *c, const struct request *r)
{
	struct logout_ack *la;

	if ((la = calloc(1, sizeof(*la))) == NULL)
		fatalx("%s: out of memory", __func__);
	la->c = c;
	reqinfo_init(&la->ri, r);
	conn_ref(c);
	la->waits = 1;		/* this call's own */
	if (session_end(w, c, loginout_step, la))
		la->waits++;
	if (c->pulling && c->held_ack == NULL) {
		c->held_ack = la;
		la->waits++;
	}
	if (la->waits > 1)
		conn_pause(w, c);
	worker_list_del(w, c);
	conn_set_state(c, CONN_ANON);
	c->uid = 0;
	free(c->name);
	c->name = NULL;
	c->pull_again = 0;
	c->last_active = w->now;	/* auth_timeout starts again */
	worker_list_add(w, c);
	loginout_step(w, la, 1);
}

void
handle_ping(struct worker *w, struct conn *c, const struct request *r)
{
	struct reqinfo ri;

	reqinfo_init(&ri, r);
	reply_ok(w, c, &ri, NULL);
	reqinfo_free(&ri);
}
