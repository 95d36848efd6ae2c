/*
 * job.h - a worker's pool of job threads for blocking work (password
 * hashing and MariaDB), completing back onto the event loop.
 *
 * The loop submits a job; a job thread runs job->run with its own store
 * (one MariaDB connection per thread); the finished job is queued for the
 * loop and an eventfd is signalled; the loop calls jobq_complete, which
 * runs job->done for each finished job on the loop thread.  The loop never
 * waits on a job.
 */
#ifndef CHATD_JOB_H
#define CHATD_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"

struct store;
struct worker;
struct job;
struct hashslot;

typedef void (*job_run_fn)(struct job *j, struct store *st);
typedef void (*job_done_fn)(struct job *j, struct worker *w);

/* Embed as the first member of a job's own struct; done() frees it. */
struct job {
	struct job *next;
	job_run_fn run;		/* on a job thread */
	job_done_fn done;	/* on the loop thread, must free the job */
	int hashes;		/* set before submitting when run() hashes a
				 * password: see jobq_submit */
	uint64_t seq;		/* job.c's: submission order */
	struct hashslot *slot;	/* job.c's: the running thread's handle */
};

struct jobq;

/* Start nthreads threads (each opening a store on conf).  NULL + err. */
struct jobq *jobq_create(const struct conf *conf, int nthreads,
    int max_pending, char *err, size_t errlen);
/* The eventfd to watch for EPOLLIN. */
int jobq_fd(const struct jobq *q);
/*
 * Queue j; -1 when max_pending jobs are already waiting (the caller
 * answers errno 13 and logs job_queue_max).  A job with `hashes` set
 * runs on at most nthreads - 1 threads at once (1 when nthreads is 1), so
 * one thread stays for the other jobs while hashes wait for a host slot;
 * jobs start in submission order otherwise.
 */
int jobq_submit(struct jobq *q, struct job *j);
/* Queue j whatever is waiting (a stopping worker's last jobs). */
void jobq_submit_anyway(struct jobq *q, struct job *j);
/* Like jobq_submit, but every job with the same non-zero key runs on the
 * same thread, in submission order (offline stores of one sender must be
 * inserted in the order they were sent). */
int jobq_submit_keyed(struct jobq *q, struct job *j, uint32_t key);
/*
 * In run() of a job submitted with `hashes` set, around the argon2id
 * call: wait for one of the host's hash_concurrency slots (hashslot.h).
 * Returns 1 when it had to wait (*wait_ms: how long), 0 when a slot was
 * free, -1 when the slot locks failed (logged: hash anyway).  Always
 * followed by job_hash_end, which gives the slot back.
 */
int job_hash_begin(struct job *j, uint64_t *wait_ms);
void job_hash_end(struct job *j);
/* Run done() of the finished jobs, in order, until enough(w) says so
 * (all of them when enough is NULL); returns how many ran.  The eventfd
 * stays readable while more wait. */
int jobq_complete(struct jobq *q, struct worker *w,
    int (*enough)(struct worker *));
/* From a done(): call j's done() again later, before the jobs that
 * finished since (a done() with more work than one turn should do). */
void jobq_redo(struct jobq *q, struct job *j);
/* Jobs submitted and not yet completed. */
size_t jobq_pending(const struct jobq *q);
/* Let running jobs finish, run their done(), stop the threads, free. */
void jobq_destroy(struct jobq *q, struct worker *w);

#endif
