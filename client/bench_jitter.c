/*
 * bench_jitter.c - chat-bench's jitter mode: how late this host wakes a
 * thread that asked to run, with no server and no network involved.
 *
 * One thread per CPU, pinned to it, sleeps to an absolute time every
 * JITTER_PERIOD_NS (an event loop's pace at a few thousand messages a
 * second) and records how late it woke.  Whatever delays such a wakeup
 * (another task on the CPU, an interrupt, a hypervisor that did not run
 * the virtual CPU) delays a server's event loop and a load generator's
 * receive alike, so the figures are the floor under every latency that
 * chat-bench reports on the same host.  Run it on an otherwise idle host
 * (it uses almost no CPU itself), in the same sitting as the runs it
 * puts in context.
 */
#include "config.h"

#include <sys/prctl.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bench.h"
#include "bench_hist.h"

#define JITTER_MAX_THREADS	64
#define JITTER_PERIOD_NS	100000		/* 100 us between wakeups */
#define JITTER_STALL_NS		500000		/* a stall: 0.5 ms late */
#define JITTER_LONG_NS		2000000		/* a long one: 2 ms late */

struct jitter_thread {
	pthread_t tid;
	int cpu;		/* pinned to, -1 when pinning failed */
	int64_t deadline;
	struct hist late;	/* ns past the asked-for time */
	long stalls, longs;
	int64_t stalled_ns;	/* the lateness of the stalls, summed */
};

static void *
jitter_thread(void *arg)
{
	struct jitter_thread *t = arg;
	struct timespec ts;
	int64_t due, now;

	/* The default slack (50 us) would be counted as lateness. */
	(void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
	due = bench_now();
	while ((due += JITTER_PERIOD_NS) < t->deadline) {
		ts.tv_sec = (time_t)(due / 1000000000);
		ts.tv_nsec = (long)(due % 1000000000);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
		    NULL) == EINTR)
			;
		now = bench_now();
		hist_add(&t->late, now > due ? (uint64_t)(now - due) : 0);
		if (now - due >= JITTER_STALL_NS) {
			t->stalls++;
			t->stalled_ns += now - due;
		}
		t->longs += now - due >= JITTER_LONG_NS;
		/* After a stall, go on from now: the missed wakeups are one
		 * stall, not many late ones. */
		if (now - due > JITTER_PERIOD_NS)
			due = now;
	}
	return NULL;
}

/* Cores busy on the host in the run, and those of them not this process's
 * (which sleeps nearly all the time): a busy host is no idle floor. */
struct jitter_host {
	double busy, other;
	struct bench_idle idle;
};

static void
jitter_json(const struct jitter_thread *t, int n, const struct hist *all,
    double secs, const struct jitter_host *h)
{
	cJSON *j = cJSON_CreateObject(), *cpus, *c, *hj;
	char *s;
	int i;

	cJSON_AddStringToObject(j, "mode", "jitter");
	cJSON_AddBoolToObject(j, "ok", all->n > 0);
	cJSON_AddNumberToObject(j, "threads", n);
	cJSON_AddNumberToObject(j, "period_us", JITTER_PERIOD_NS / 1000.0);
	cJSON_AddNumberToObject(j, "duration_s", secs);
	cpus = cJSON_AddArrayToObject(j, "cpus");
	for (i = 0; i < n; i++) {
		c = cJSON_CreateObject();
		cJSON_AddNumberToObject(c, "cpu", t[i].cpu);
		cJSON_AddNumberToObject(c, "stalls_0_5ms", (double)t[i].stalls);
		cJSON_AddNumberToObject(c, "stalls_2ms", (double)t[i].longs);
		cJSON_AddNumberToObject(c, "stalled_ms",
		    (double)t[i].stalled_ns / 1e6);
		bench_json_lat(c, "late", &t[i].late);
		cJSON_AddItemToArray(cpus, c);
	}
	bench_json_lat(j, "late", all);
	hj = cJSON_AddObjectToObject(j, "host");
	cJSON_AddNumberToObject(hj, "busy_cores", h->busy);
	cJSON_AddNumberToObject(hj, "other_cores", h->other);
	cJSON_AddStringToObject(hj, "cpuidle_driver", h->idle.driver);
	cJSON_AddStringToObject(hj, "cpuidle_governor", h->idle.governor);
	if (h->idle.halt_poll_ns >= 0)
		cJSON_AddNumberToObject(hj, "halt_poll_ns",
		    (double)h->idle.halt_poll_ns);
	if ((s = cJSON_PrintUnformatted(j)) != NULL)
		(void)printf("%s\n", s);
	cJSON_free(s);
	cJSON_Delete(j);
}

static void
jitter_text(const struct jitter_thread *t, int n, const struct hist *all,
    double secs, const struct jitter_host *h)
{
	char label[32];
	int i;

	(void)printf("chat-bench jitter: %d thread(s), one per CPU, a wakeup "
	    "every %d us for %.1f s\n", n, JITTER_PERIOD_NS / 1000, secs);
	for (i = 0; i < n; i++) {
		if (t[i].cpu >= 0)
			(void)snprintf(label, sizeof(label), "cpu %d", t[i].cpu);
		else
			(void)snprintf(label, sizeof(label), "thread %d", i);
		bench_print_lat(label, &t[i].late);
		(void)printf("  %-10s %ld stall(s) of 0.5 ms or more (%.1f/s, "
		    "%.1f ms in all), %ld of 2 ms or more (%.1f/s)\n", "",
		    t[i].stalls, secs > 0 ? t[i].stalls / secs : 0,
		    (double)t[i].stalled_ns / 1e6, t[i].longs,
		    secs > 0 ? t[i].longs / secs : 0);
	}
	bench_print_lat("all", all);
	(void)printf("  %-10s %.2f cores busy, %.2f by other processes%s\n",
	    "host", h->busy, h->other, h->other > 0.15 ?
	    " (not an idle host: figures disturbed)" : "");
	(void)printf("  %-10s cpuidle driver %s, governor %s", "",
	    h->idle.driver[0] != '\0' ? h->idle.driver : "none",
	    h->idle.governor[0] != '\0' ? h->idle.governor : "none");
	if (h->idle.halt_poll_ns == 0)
		(void)printf(", an idle CPU halts at once "
		    "(guest_halt_poll_ns 0)");
	else if (h->idle.halt_poll_ns > 0)
		(void)printf(", an idle CPU polls up to %ld us before it "
		    "halts (guest_halt_poll_ns)", h->idle.halt_poll_ns / 1000);
	(void)printf("\n");
}

int
bench_jitter(const struct bench_opts *o)
{
	struct jitter_thread *t;
	struct jitter_host host;
	struct bench_usage u0, u1;
	struct hist all;
	cpu_set_t set;
	pid_t self = getpid();
	int64_t start;
	double secs;
	int i, n = o->threads, failed = 0;

	if (n > JITTER_MAX_THREADS)
		n = JITTER_MAX_THREADS;
	if ((t = calloc((size_t)n, sizeof(*t))) == NULL) {
		(void)fprintf(stderr, "chat-bench: out of memory\n");
		return 1;
	}
	bench_usage(&self, 1, &u0);
	start = bench_now();
	for (i = 0; i < n; i++) {
		hist_init(&t[i].late);
		t[i].deadline = start + (int64_t)(o->duration * 1e9);
		t[i].cpu = i;
		if (bench_thread(&t[i].tid, jitter_thread, &t[i]) == -1) {
			n = i;
			failed = 1;
			break;
		}
		CPU_ZERO(&set);
		CPU_SET(i, &set);
		if (pthread_setaffinity_np(t[i].tid, sizeof(set), &set) != 0)
			t[i].cpu = -1;
	}
	hist_init(&all);
	for (i = 0; i < n; i++) {
		(void)pthread_join(t[i].tid, NULL);
		hist_merge(&all, &t[i].late);
	}
	secs = (double)(bench_now() - start) / 1e9;
	bench_usage(&self, 1, &u1);
	host.busy = secs > 0 ? (u1.host_busy_s - u0.host_busy_s) / secs : 0;
	host.other = secs > 0 ? (u1.host_busy_s - u0.host_busy_s -
	    (u1.cpu_s - u0.cpu_s)) / secs : 0;
	if (host.other < 0)
		host.other = 0;
	bench_idle(&host.idle);
	if (o->json)
		jitter_json(t, n, &all, secs, &host);
	else
		jitter_text(t, n, &all, secs, &host);
	free(t);
	return !failed && all.n > 0 ? 0 : 1;
}
