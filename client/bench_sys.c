/*
 * bench_sys.c - chat-bench's view of the system: the clock, the server's
 * CPU time and memory from /proc, the users file and target addresses.
 *
 * The server is measured from outside, the way an operator would: CPU as
 * utime + stime of /proc/PID/stat (all threads of a process) and memory
 * as the Pss line of /proc/PID/smaps_rollup, summed over each given pid
 * and its children (chatd's master and workers), so shared pages (the
 * presence table, libraries) are counted once in total.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/types.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

int64_t
bench_now(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
bench_thread(pthread_t *tid, void *(*fn)(void *), void *arg)
{
	int rc;

	if ((rc = pthread_create(tid, NULL, fn, arg)) == 0)
		return 0;
	(void)fprintf(stderr, "chat-bench: pthread_create: %s\n",
	    strerror(rc));
	return -1;
}

void
bench_sleep_until(int64_t t)
{
	struct timespec ts;

	ts.tv_sec = t / 1000000000;
	ts.tv_nsec = t % 1000000000;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	    EINTR)
		;
}

/* utime + stime of pid in clock ticks, and its parent; -1 when gone. */
static long long
proc_ticks(pid_t pid, pid_t *ppid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	int fd, pp;
	ssize_t n;

	(void)snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	(void)close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: skip to the
	 * last ')'.  Then: state ppid pgrp session tty tpgid flags minflt
	 * cminflt majflt cmajflt utime stime. */
	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	if (sscanf(p + 1, " %*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	    "%llu %llu", &pp, &ut, &st) != 3)
		return -1;
	if (ppid != NULL)
		*ppid = pp;
	return (long long)(ut + st);
}

static long
proc_pss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *fp;

	(void)snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	if ((fp = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (sscanf(line, "Pss: %ld kB", &kib) == 1)
			break;
	(void)fclose(fp);
	return kib;
}

static void
usage_add(struct bench_usage *u, pid_t pid, long long ticks)
{
	long hz = sysconf(_SC_CLK_TCK), kib;

	u->cpu_s += (double)ticks / (double)(hz > 0 ? hz : 100);
	if ((kib = proc_pss_kib(pid)) > 0)
		u->pss_kib += kib;
	u->nproc++;
}

/* The "cpu" line of /proc/stat: busy and total seconds, all CPUs. */
static void
host_cpu(struct bench_usage *u)
{
	unsigned long long v[8] = { 0 }, all = 0;
	long hz = sysconf(_SC_CLK_TCK);
	FILE *fp;
	int i;

	if ((fp = fopen("/proc/stat", "re")) == NULL)
		return;
	if (fscanf(fp, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
	    &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
		for (i = 0; i < 8; i++)
			all += v[i];
		/* idle and iowait are not busy */
		u->host_all_s = (double)all / (double)(hz > 0 ? hz : 100);
		u->host_busy_s = (double)(all - v[3] - v[4]) /
		    (double)(hz > 0 ? hz : 100);
		u->host_irq_s = (double)(v[5] + v[6]) /
		    (double)(hz > 0 ? hz : 100);
	}
	(void)fclose(fp);
}

/* The first line of a small sysfs file into buf, without its newline;
 * "" when it cannot be read. */
static void
sysfs_line(const char *path, char *buf, size_t len)
{
	FILE *fp;

	buf[0] = '\0';
	if ((fp = fopen(path, "re")) == NULL)
		return;
	if (fgets(buf, (int)len, fp) == NULL)
		buf[0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	(void)fclose(fp);
}

void
bench_idle(struct bench_idle *i)
{
	char v[32], *end;

	sysfs_line("/sys/devices/system/cpu/cpuidle/current_driver",
	    i->driver, sizeof(i->driver));
	sysfs_line("/sys/devices/system/cpu/cpuidle/current_governor",
	    i->governor, sizeof(i->governor));
	i->halt_poll_ns = -1;
	if (strcmp(i->driver, "haltpoll") != 0)
		return;
	sysfs_line("/sys/module/haltpoll/parameters/guest_halt_poll_ns", v,
	    sizeof(v));
	errno = 0;
	i->halt_poll_ns = strtol(v, &end, 10);
	if (v[0] == '\0' || *end != '\0' || errno != 0)
		i->halt_poll_ns = -1;
}

void
bench_usage(const pid_t *pids, int npids, struct bench_usage *u)
{
	struct dirent *de;
	long long t;
	pid_t pid, pp;
	DIR *d;
	int i;

	memset(u, 0, sizeof(*u));
	host_cpu(u);
	if (npids == 0)
		return;
	for (i = 0; i < npids; i++)
		if ((t = proc_ticks(pids[i], NULL)) >= 0)
			usage_add(u, pids[i], t);
	/* Children: every process whose parent is one of pids. */
	if ((d = opendir("/proc")) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = (pid_t)atoi(de->d_name);
		if ((t = proc_ticks(pid, &pp)) < 0)
			continue;
		for (i = 0; i < npids; i++)
			if (pp == pids[i] && pid != pids[i]) {
				usage_add(u, pid, t);
				break;
			}
	}
	(void)closedir(d);
}

long
bench_users_load(const char *path, const char *prefix, long first, long n,
    uint32_t *ids)
{
	char line[256], *end;
	size_t plen = strlen(prefix);
	unsigned long id;
	long found = 0, idx;
	FILE *fp;

	memset(ids, 0, (size_t)n * sizeof(*ids));
	if ((fp = fopen(path, "re")) == NULL)
		return errno == ENOENT ? 0 : -1;
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (strncmp(line, prefix, plen) != 0 ||
		    !isdigit((unsigned char)line[plen]))
			continue;
		errno = 0;
		idx = strtol(line + plen, &end, 10);
		if (errno != 0 || *end != ' ')
			continue;
		id = strtoul(end + 1, &end, 10);
		if (id == 0 || id > UINT32_MAX || (*end != '\n' && *end != '\0'))
			continue;
		if (idx < first || idx >= first + n)
			continue;
		if (ids[idx - first] == 0)
			found++;
		ids[idx - first] = (uint32_t)id;
	}
	(void)fclose(fp);
	return found;
}

int
bench_users_add(int fd, const char *prefix, long index, uint32_t id)
{
	char line[128];
	int n;

	n = snprintf(line, sizeof(line), "%s%ld %u\n", prefix, index, id);
	/* O_APPEND and one write per line: processes never interleave. */
	return write(fd, line, (size_t)n) == n ? 0 : -1;
}

int
bench_parse_targets(struct bench_opts *o, const char *arg, char *err,
    size_t errlen)
{
	char buf[1024], *tok, *save = NULL, *colon, *end;
	struct bench_target *t;
	long port;

	(void)snprintf(buf, sizeof(buf), "%s", arg);
	o->ntargets = 0;
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (o->ntargets == BENCH_MAX_TARGETS) {
			(void)snprintf(err, errlen, "more than %d targets",
			    BENCH_MAX_TARGETS);
			return -1;
		}
		t = &o->target[o->ntargets];
		memset(t, 0, sizeof(*t));
		(void)snprintf(t->name, sizeof(t->name), "%s", tok);
		if ((colon = strrchr(tok, ':')) == NULL) {
			(void)snprintf(err, errlen, "%s: expected host:port",
			    tok);
			return -1;
		}
		*colon = '\0';
		port = strtol(colon + 1, &end, 10);
		if (*end != '\0' || port < 1 || port > 65535) {
			(void)snprintf(err, errlen, "%s: bad port", t->name);
			return -1;
		}
		t->addr.sin_family = AF_INET;
		t->addr.sin_port = htons((uint16_t)port);
		if (strcmp(tok, "localhost") == 0)
			tok = "127.0.0.1";
		if (inet_pton(AF_INET, tok, &t->addr.sin_addr) != 1) {
			(void)snprintf(err, errlen, "%s: need a numeric IPv4 "
			    "address", t->name);
			return -1;
		}
		/* Load generation on a shared network is not ours to do. */
		if ((ntohl(t->addr.sin_addr.s_addr) >> 24) != 127) {
			(void)snprintf(err, errlen, "%s: only loopback "
			    "targets (127.0.0.0/8) are allowed", t->name);
			return -1;
		}
		o->ntargets++;
	}
	if (o->ntargets == 0) {
		(void)snprintf(err, errlen, "no target");
		return -1;
	}
	return 0;
}
