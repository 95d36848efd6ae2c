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

typedef void (*job_run_fn)(struct job *j, struct store *st);
typedef void (*job_done_fn)(struct job *j, struct worker *w);

/* Embed as the first member of a job's own struct; done() frees it. */
struct job {
	struct job *next;
	job_run_fn run;		/* on a job thread */
	job_done_fn done;	/* on the loop thread, must free the job */
};

struct jobq;

/* Start nthreads threads (each opening a store on conf).  NULL + err. */
struct jobq *jobq_create(const struct conf *conf, int nthreads,
    int max_pending, char *err, size_t errlen);
/* The eventfd to watch for EPOLLIN. */
int jobq_fd(const struct jobq *q);
/* Queue j; -1 when max_pending jobs are already waiting (the caller
 * answers errno 13 and logs job_queue_max). */
int jobq_submit(struct jobq *q, struct job *j);
/* Like jobq_submit, but every job with the same non-zero key runs on the
 * same thread, in submission order (offline stores of one sender must be
 * inserted in the order they were sent). */
int jobq_submit_keyed(struct jobq *q, struct job *j, uint32_t key);
/* Run done() of every finished job; returns how many. */
int jobq_complete(struct jobq *q, struct worker *w);
/* Jobs submitted and not yet completed. */
size_t jobq_pending(const struct jobq *q);
/* Let running jobs finish, run their done(), stop the threads, free. */
void jobq_destroy(struct jobq *q, struct worker *w);

#endif
