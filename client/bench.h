/*
 * bench.h - chat-bench(1): what its parts share.
 *
 * bench.c parses the options, forks the worker processes, keeps them in
 * step and prints the report; bench_run.c is one worker process (its
 * threads, each with an epoll loop over its slice of the users);
 * bench_sys.c reads /proc for the server's CPU and memory and keeps the
 * users file.  Results travel from a worker process to the parent as one
 * fixed-size struct bench_result over a pipe.
 */
#ifndef CHATD_BENCH_H
#define CHATD_BENCH_H

#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bench_hist.h"
#include "protocol.h"

#define BENCH_MAX_TARGETS	16	/* host:port pairs in --target */
#define BENCH_MAX_PIDS		16	/* --server-pid values */
#define BENCH_MAX_PROCS		64	/* worker processes */
#define BENCH_MAX_THREADS	64	/* threads per worker process */
#define BENCH_CONNS_PER_PROC	18000	/* default split: fds below the
					 * 20,000 hard limit of this host */
#define BENCH_CONNS_PER_SRC	20000	/* per source address and target:
					 * ephemeral ports are 32768-60999 */
#define BENCH_MARK		"@B"	/* starts the stamp in each message */
#define BENCH_STAMP_LEN		(2 + 4 + 16 + 1 + 8) /* @B run ts : sender */
#define BENCH_MIN_SIZE		BENCH_STAMP_LEN
#define BENCH_MAX_SIZE		(1024 * 1024)

enum bench_mode {
	MODE_REGISTER,		/* create users <prefix>N, record their ids */
	MODE_LOGIN,		/* storm: connect, LOGIN, close, next user */
	MODE_IDLE,		/* hold N logged-in connections */
	MODE_CHAT,		/* 1:1 among N online users */
	MODE_GROUP,		/* groups of G members */
	MODE_HASH,		/* password hashes, no server: a control */
	MODE_JITTER,		/* wakeup lateness, no server: the floor */
};

struct bench_target {
	char name[128];		/* as given, for the report */
	struct sockaddr_in addr;
};

struct bench_opts {
	enum bench_mode mode;
	struct bench_target target[BENCH_MAX_TARGETS];
	int ntargets;
	int relay;		/* the targets are chat-relay(1)s */
	long first;		/* first user index */
	long users;		/* users (connections) in the run */
	char prefix[32];	/* user names are prefix + index */
	char password[PROTO_PASSWORD_MAX + 1];
	char users_file[1024];
	double duration;	/* measured seconds */
	double warmup;		/* seconds before measuring */
	double drain;		/* seconds to wait for messages in flight */
	long count;		/* messages (or operations) at most; 0: no cap */
	int window;		/* messages in flight per sender */
	double rate;		/* messages per second in total; 0: max */
	int size;		/* bytes of "msg" */
	int group_size;
	int procs, threads;
	int concurrency;	/* connects/requests in flight per thread */
	int nsrc;		/* source addresses 127.0.0.1.. */
	int nagle;		/* leave Nagle on (classic client) */
	int ack;		/* chat frames carry seq: server ACKs each */
	int json;
	double ping;		/* idle: seconds between PINGs; 0: none */
	pid_t server_pid[BENCH_MAX_PIDS];
	int nserver;
	int timeout_ms;		/* one request */
	double setup_timeout;	/* seconds for connecting and logging in */
	int hash_ops;		/* hash: argon2id passes */
	long hash_mem_kib;	/* hash: argon2id memory */
	uint16_t run_id;	/* tells this run's messages from old ones */
	uint32_t *ids;		/* server id of user first+i; 0: unknown */
};

/* One worker process's (or the whole run's) outcome. */
struct bench_result {
	int failed;
	char err[256];		/* first failure or server error text */
	uint64_t ops_ok;	/* registrations / logins / connections */
	uint64_t ops_fail;	/* refused (see err) */
	uint64_t ops_exist;	/* register: name was already taken */
	uint64_t ops_known;	/* register: in the users file, not sent */
	uint64_t sent;		/* chat frames sent in the window */
	uint64_t delivered;	/* copies received in the window */
	uint64_t sent_total, delivered_total;
	uint64_t stale;		/* frames from an earlier run (offline) */
	uint64_t errors;	/* ERROR frames */
	uint64_t acks_delivered, acks_stored;
	uint64_t skipped;	/* fixed rate: sends due while window full */
	uint64_t disconnects;	/* closed by the server after setup */
	uint64_t frames_in;	/* every line received */
	int64_t setup_ns;	/* connect+login of every user */
	int64_t ops_ns;		/* register/login: first to last */
	int64_t late_max_ns;	/* fixed rate: worst lag behind schedule */
	int64_t cpu_ns;		/* the bench's own threads, measured window */
	struct hist lat;	/* end-to-end message latency */
	struct hist op;		/* request round trip (REG, LOGIN, connect) */
};

/* Parent -> worker process: start at this CLOCK_MONOTONIC time. */
struct bench_go {
	int64_t start_ns;
	int abort;
};

/* Worker process -> parent. */
enum { BENCH_READY = 1, BENCH_FAILED, BENCH_DONE };
struct bench_note {
	int type;
	int64_t setup_ns;
	char err[256];
};

/* bench_run.c: run users [first, first+n) of the run in this process
 * (threads of its own), talking to the parent over the two pipes; writes
 * a struct bench_note (ready), waits for a struct bench_go, then writes a
 * BENCH_DONE note followed by a struct bench_result.  Returns the exit
 * status of the process. */
int bench_proc(const struct bench_opts *o, long first, long n, int rfd,
    int wfd);

/* result d += s (counters summed, worst times kept, histograms merged). */
void bench_merge(struct bench_result *d, const struct bench_result *s);

/* bench_sys.c */
int64_t bench_now(void);			/* CLOCK_MONOTONIC ns */
/* Mode hash (bench_hash.c): the whole run; the exit status. */
int bench_hash(const struct bench_opts *o);
/* Mode jitter (bench_jitter.c): the whole run; the exit status. */
int bench_jitter(const struct bench_opts *o);
/* bench.c: a histogram of latencies as JSON object `key` of obj (count,
 * min, mean, quantiles, max, the ladder), and as one line of the table. */
struct cJSON;
void bench_json_lat(struct cJSON *obj, const char *key, const struct hist *h);
void bench_print_lat(const char *label, const struct hist *h);
void bench_sleep_until(int64_t t);
/* pthread_create, saying why on stderr when it fails.  0 or -1. */
int bench_thread(pthread_t *tid, void *(*fn)(void *), void *arg);
struct bench_usage {
	double host_busy_s;	/* /proc/stat: all CPUs, not idle */
	double host_all_s;	/* /proc/stat: all CPUs, all time */
	double host_irq_s;	/* /proc/stat: irq + softirq (the loopback
				 * network stack), charged to no process */
	double cpu_s;		/* utime + stime of the processes, seconds */
	long pss_kib;		/* sum of Pss of the processes */
	int nproc;		/* processes found */
};
/* pids and their children (chatd's master and workers), and the whole
 * host's CPU time (so load from anything else is visible). */
void bench_usage(const pid_t *pids, int npids, struct bench_usage *u);
/* How an idle CPU of this host waits (Linux cpuidle), which decides what
 * waking a sleeping loop costs. */
struct bench_idle {
	char driver[32];	/* "" when the host has no cpuidle */
	char governor[32];
	long halt_poll_ns;	/* the haltpoll driver's guest_halt_poll_ns:
				 * how long an idle virtual CPU polls before
				 * it halts; -1 without that driver */
};
void bench_idle(struct bench_idle *i);
/* Load ids of users first..first+n-1 from the users file into ids (0 when
 * absent).  Returns how many were found, -1 when the file cannot be read
 * (a missing file counts as empty). */
long bench_users_load(const char *path, const char *prefix, long first,
    long n, uint32_t *ids);
/* Append "name id" to the users file as one write.  0 or -1. */
int bench_users_add(int fd, const char *prefix, long index, uint32_t id);
/* "host:port[,host:port...]" into o->target.  0, or -1 with err. */
int bench_parse_targets(struct bench_opts *o, const char *arg, char *err,
    size_t errlen);

#endif
