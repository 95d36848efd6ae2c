/*
 * job.c - the job thread pool of job.h.
 *
 * Singly linked FIFO queues under one mutex: `todo` and `hash` (loop ->
 * threads, with a condition variable), one per thread for keyed jobs, and
 * `done` (threads -> loop, with an eventfd).  A counter of outstanding
 * jobs bounds the pool's memory.
 *
 * Password hashes are bounded twice.  Host-wide, a hash takes one of the
 * hash_concurrency slots shared by every worker (hashslot.c), so the
 * argon2id work of a login storm leaves CPU to the event loops; each
 * thread holds its own slot handle.  Per worker, jobs that hash (`hash`
 * queue) run on at most nthreads - 1 threads at once: a thread waiting
 * for a host slot is not serving offline stores, group loads or friend
 * lists, and without this cap every thread of a worker could be waiting
 * during a storm while those jobs queue behind the whole storm.  A
 * separate hash thread would not do: a login job queries MariaDB before
 * and after its hash on the same connection.  With one job thread the
 * thread is shared and other jobs wait for at most the hashes queued
 * before them.  Keyed jobs pinned to a thread that is hashing wait for
 * that one hash.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include <mysql.h>

#include "hashslot.h"
#include "job.h"
#include "log.h"
#include "store.h"

struct jobfifo {
	struct job *head, *tail;
};

struct jobq {
	const struct conf *conf;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct jobfifo todo, done;
	struct jobfifo hash;	/* jobs that hash a password */
	struct jobfifo *own;	/* per thread: keyed jobs */
	int hashing;		/* threads running a `hash` job */
	int hash_max;		/* at most this many */
	int stopping;
	int efd;
	uint64_t seq;		/* of the last job submitted */
	size_t outstanding;	/* submitted, done() not yet run */
	size_t max_pending;
	int nthreads;
	pthread_t *threads;
	struct hashslot **slots;	/* per thread */
};

static void
fifo_push(struct jobfifo *f, struct job *j)
{
	j->next = NULL;
	if (f->tail != NULL)
		f->tail->next = j;
	else
		f->head = j;
	f->tail = j;
}

static struct job *
fifo_pop(struct jobfifo *f)
{
	struct job *j = f->head;

	if (j != NULL) {
		f->head = j->next;
		if (f->head == NULL)
			f->tail = NULL;
	}
	return j;
}

struct jobq_thread_arg {
	struct jobq *q;
	int index;
};

/*
 * The next job thread `own` may run, with q->lock held: its keyed jobs
 * first, then the older of the heads of `todo` and `hash` (a hash only
 * while fewer than hash_max threads hash).  NULL when none may run now.
 */
static struct job *
jobq_next_locked(struct jobq *q, struct jobfifo *own, int *hashes)
{
	int can_hash = q->hash.head != NULL && q->hashing < q->hash_max;

	*hashes = 0;
	if (own->head != NULL)
		return fifo_pop(own);
	if (q->todo.head != NULL && (!can_hash ||
	    q->todo.head->seq < q->hash.head->seq))
		return fifo_pop(&q->todo);
	if (!can_hash)
		return NULL;
	*hashes = 1;
	q->hashing++;
	return fifo_pop(&q->hash);
}

static void *
jobq_thread(void *arg)
{
	struct jobq_thread_arg *ta = arg;
	struct jobq *q = ta->q;
	struct jobfifo *own = &q->own[ta->index];
	struct hashslot *slot = q->slots[ta->index];
	struct store *st;
	struct job *j;
	uint64_t one = 1;
	int hashes;

	free(ta);
	(void)mysql_thread_init();
	if ((st = store_open(q->conf)) == NULL)
		fatalx("%s: out of memory", __func__);
	for (;;) {
		if (pthread_mutex_lock(&q->lock) != 0)
			fatalx("%s: mutex", __func__);
		while ((j = jobq_next_locked(q, own, &hashes)) == NULL &&
		    !(q->stopping && own->head == NULL &&
		    q->todo.head == NULL && q->hash.head == NULL))
			(void)pthread_cond_wait(&q->cond, &q->lock);
		(void)pthread_mutex_unlock(&q->lock);
		if (j == NULL)
			break;	/* stopping and nothing left */
		j->slot = slot;
		j->run(j, st);
		(void)pthread_mutex_lock(&q->lock);
		fifo_push(&q->done, j);
		if (hashes) {
			q->hashing--;
			/* Stopping threads wait for the hashes to drain. */
			if (q->stopping)
				(void)pthread_cond_broadcast(&q->cond);
		}
		(void)pthread_mutex_unlock(&q->lock);
		if (write(q->efd, &one, sizeof(one)) != sizeof(one) &&
		    errno != EAGAIN)
			fatal("%s: eventfd write", __func__);
	}
	store_close(st);
	mysql_thread_end();
	return NULL;
}

/* Free a queue whose threads never started; slots[0..nopen) are open. */
static void
jobq_free_unstarted(struct jobq *q, int nopen)
{
	if (q == NULL)
		return;
	while (nopen-- > 0)
		hashslot_close(q->slots[nopen]);
	free(q->slots);
	free(q->threads);
	free(q->own);
	free(q);
}

struct jobq *
jobq_create(const struct conf *conf, int nthreads, int max_pending,
    char *err, size_t errlen)
{
	struct jobq *q;
	char name[HASHSLOT_NAME_MAX];
	int i, k, rc;

	if ((q = calloc(1, sizeof(*q))) == NULL ||
	    (q->threads = calloc((size_t)nthreads, sizeof(pthread_t))) ==
	    NULL || (q->own = calloc((size_t)nthreads,
	    sizeof(*q->own))) == NULL || (q->slots = calloc((size_t)nthreads,
	    sizeof(*q->slots))) == NULL) {
		(void)snprintf(err, errlen, "out of memory");
		jobq_free_unstarted(q, 0);
		return NULL;
	}
	q->conf = conf;
	q->max_pending = (size_t)max_pending;
	q->hash_max = nthreads > 1 ? nthreads - 1 : 1;
	hashslot_name(conf, name, sizeof(name));
	for (i = 0; i < nthreads; i++)
		if ((q->slots[i] = hashslot_open(name,
		    conf->hash_concurrency, err, errlen)) == NULL) {
			jobq_free_unstarted(q, i);
			return NULL;
		}
	(void)pthread_mutex_init(&q->lock, NULL);
	(void)pthread_cond_init(&q->cond, NULL);
	if ((q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		(void)snprintf(err, errlen, "eventfd: %s", strerror(errno));
		jobq_free_unstarted(q, nthreads);
		return NULL;
	}
	for (i = 0; i < nthreads; i++) {
		struct jobq_thread_arg *ta;

		if ((ta = malloc(sizeof(*ta))) == NULL)
			fatalx("%s: out of memory", __func__);
		ta->q = q;
		ta->index = i;
		if ((rc = pthread_create(&q->threads[i], NULL, jobq_thread,
		    ta)) != 0) {
			free(ta);
			(void)snprintf(err, errlen, "pthread_create: %s",
			    strerror(rc));
			/* jobq_destroy closes the handles of threads started. */
			for (k = i; k < nthreads; k++) {
				hashslot_close(q->slots[k]);
				q->slots[k] = NULL;
			}
			q->nthreads = i;
			jobq_destroy(q, NULL);
			return NULL;
		}
	}
	q->nthreads = nthreads;
	return q;
}

int
jobq_fd(const struct jobq *q)
{
	return q->efd;
}

int
jobq_submit(struct jobq *q, struct job *j)
{
	if (q->outstanding >= q->max_pending)
		return -1;
	jobq_submit_anyway(q, j);
	return 0;
}

void
jobq_submit_anyway(struct jobq *q, struct job *j)
{
	q->outstanding++;
	(void)pthread_mutex_lock(&q->lock);
	j->seq = ++q->seq;
	fifo_push(j->hashes ? &q->hash : &q->todo, j);
	(void)pthread_cond_signal(&q->cond);
	(void)pthread_mutex_unlock(&q->lock);
}

int
jobq_submit_keyed(struct jobq *q, struct job *j, uint32_t key)
{
	if (key == 0 || q->nthreads <= 1)
		return jobq_submit(q, j);
	if (q->outstanding >= q->max_pending)
		return -1;
	q->outstanding++;
	(void)pthread_mutex_lock(&q->lock);
	j->seq = ++q->seq;
	fifo_push(&q->own[key % (uint32_t)q->nthreads], j);
	/* Only that thread may take it: wake them all. */
	(void)pthread_cond_broadcast(&q->cond);
	(void)pthread_mutex_unlock(&q->lock);
	return 0;
}

int
job_hash_begin(struct job *j, uint64_t *wait_ms)
{
	*wait_ms = 0;
	if (!j->hashes || j->slot == NULL)
		fatalx("%s: job was not submitted as hashing", __func__);
	return hashslot_acquire(j->slot, wait_ms);
}

void
job_hash_end(struct job *j)
{
	hashslot_release(j->slot);
}

/* Put head..tail back in front of `done` and keep the eventfd readable
 * for them (the loop runs their done() on its next turn). */
static void
jobq_done_front(struct jobq *q, struct job *head, struct job *tail)
{
	uint64_t n = 1;

	(void)pthread_mutex_lock(&q->lock);
	tail->next = q->done.head;
	if (q->done.head == NULL)
		q->done.tail = tail;
	q->done.head = head;
	(void)pthread_mutex_unlock(&q->lock);
	(void)!write(q->efd, &n, sizeof(n));
}

int
jobq_complete(struct jobq *q, struct worker *w,
    int (*enough)(struct worker *))
{
	struct jobfifo done;
	struct job *j;
	uint64_t n;
	int count = 0;

	(void)!read(q->efd, &n, sizeof(n));
	(void)pthread_mutex_lock(&q->lock);
	done = q->done;
	q->done.head = q->done.tail = NULL;
	(void)pthread_mutex_unlock(&q->lock);
	while (done.head != NULL) {
		if (enough != NULL && enough(w)) {
			/* The rest, before what finished since. */
			jobq_done_front(q, done.head, done.tail);
			break;
		}
		j = fifo_pop(&done);
		q->outstanding--;
		j->done(j, w);
		count++;
	}
	return count;
}

void
jobq_redo(struct jobq *q, struct job *j)
{
	q->outstanding++;
	jobq_done_front(q, j, j);
}

size_t
jobq_pending(const struct jobq *q)
{
	return q->outstanding;
}

void
jobq_destroy(struct jobq *q, struct worker *w)
{
	int i;

	if (q == NULL)
		return;
	(void)pthread_mutex_lock(&q->lock);
	q->stopping = 1;
	(void)pthread_cond_broadcast(&q->cond);
	(void)pthread_mutex_unlock(&q->lock);
	for (i = 0; i < q->nthreads; i++)
		(void)pthread_join(q->threads[i], NULL);
	/* Threads drained `todo` before exiting; finish their jobs. */
	if (w != NULL)
		while (jobq_complete(q, w, NULL) > 0)
			;
	(void)close(q->efd);
	(void)pthread_cond_destroy(&q->cond);
	(void)pthread_mutex_destroy(&q->lock);
	for (i = 0; i < q->nthreads; i++)
		hashslot_close(q->slots[i]);
	free(q->slots);
	free(q->threads);
	free(q->own);
	free(q);
}
