/*
 * bench.c - chat-bench(1): options, the worker processes, the clock of a
 * run and its report.
 *
 * The parent does no I/O with the server.  It forks the worker processes
 * (bench_run.c), each with a slice of the users, waits until every one has
 * its users connected and logged in, gives them one common start time,
 * samples the server's CPU time at the start and the end of the measured
 * window (and its memory at the end), collects their results and prints
 * them.  Several processes are needed past the per-process open-files
 * limit, and they are what a real population of clients looks like.
 *
 * Every run is bounded: setup by --setup-timeout, the run by --duration
 * (and --count), the drain by --drain; the parent kills its workers if
 * they overrun all of that by BENCH_GRACE_S.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/types.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bench.h"

#define BENCH_GRACE_S		30	/* past every bound: kill workers */
#define BENCH_START_DELAY_NS	50000000LL	/* go -> start */
#define BENCH_DEF_PORT_TARGET	"127.0.0.1:6000"
#define BENCH_DEF_PASSWORD	"bench-Pa55word"
#define BENCH_DEF_USERS_FILE	"bench-users.txt"

static const char *const mode_names[] = {
	[MODE_REGISTER] = "register",
	[MODE_LOGIN] = "login",
	[MODE_IDLE] = "idle",
	[MODE_CHAT] = "chat",
	[MODE_GROUP] = "group",
	[MODE_HASH] = "hash",
	[MODE_JITTER] = "jitter",
};

struct child {
	pid_t pid;
	int rfd, wfd;		/* from it, to it */
	long first, n;
	int state;		/* 0, BENCH_READY, BENCH_FAILED, BENCH_DONE */
	struct bench_note note;
	struct bench_result res;
};

static void __attribute__((noreturn))
usage(int status)
{
	FILE *fp = status == 0 ? stdout : stderr;

	(void)fprintf(fp,
"usage: chat-bench [options] register|login|idle|chat|group|hash|jitter\n"
"  -t, --target HOST:PORT[,...]  chatd (or chat-relay) addresses [%s]\n"
"  -R, --relay                   the targets are chat-relay(1)\n"
"  -n, --users N                 users / connections [1000]\n"
"  -f, --first N                 first user index [0]\n"
"      --prefix STR              user names are STR + index [bench-]\n"
"      --password STR            password of every bench user\n"
"  -U, --users-file FILE         name -> id list kept by register [%s]\n"
"  -d, --duration SEC            measured seconds (storms: time bound) [10]\n"
"      --warmup SEC              seconds before measuring [1]\n"
"      --drain SEC               wait for messages in flight [2]\n"
"  -c, --count N                 at most N messages / operations [no cap]\n"
"  -w, --window N                messages in flight per sender [1]\n"
"  -r, --rate N                  messages per second in total [0: max]\n"
"  -s, --size BYTES              bytes of each message text [64]\n"
"  -g, --group-size G            members per group [50]\n"
"  -j, --procs N                 worker processes [users/%d]\n"
"  -T, --threads N               threads per process [cores, or 1 if -j>1]\n"
"  -C, --concurrency N           connects/requests in flight per thread [64]\n"
"      --sources N               source addresses 127.0.0.1.. [auto]\n"
"      --ping SEC                idle: PING every SEC seconds [0: never]\n"
"      --nagle                   leave Nagle's algorithm on\n"
"      --ack                     ask for an ACK of every chat frame\n"
"      --hash-ops N              hash: argon2id passes [2]\n"
"      --hash-mem-kib N          hash: argon2id memory, KiB [65536]\n"
"  -p, --server-pid PID[,...]    server master pids: CPU and memory\n"
"      --timeout SEC             one request [30]\n"
"      --setup-timeout SEC       connecting and logging in [600]\n"
"      --json                    one JSON object instead of the table\n",
	    BENCH_DEF_PORT_TARGET, BENCH_DEF_USERS_FILE, BENCH_CONNS_PER_PROC);
	exit(status);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	(void)fputs("chat-bench: ", stderr);
	va_start(ap, fmt);
	(void)vfprintf(stderr, fmt, ap);
	va_end(ap);
	(void)fputc('\n', stderr);
	exit(2);
}

static double
num_arg(const char *name, const char *s, double min, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) ||
	    v < min || v > max)
		die("%s: \"%s\" is not a number in %g..%g", name, s, min, max);
	return v;
}

static void
parse_pids(struct bench_opts *o, const char *arg)
{
	char buf[512], *tok, *save = NULL;

	(void)snprintf(buf, sizeof(buf), "%s", arg);
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (o->nserver == BENCH_MAX_PIDS)
			die("--server-pid: at most %d pids", BENCH_MAX_PIDS);
		o->server_pid[o->nserver++] = (pid_t)num_arg("--server-pid",
		    tok, 1, 0x7fffffff);
	}
}

static void
parse_args(struct bench_opts *o, int argc, char **argv)
{
	enum { O_PREFIX = 256, O_PASSWORD, O_WARMUP, O_DRAIN, O_SOURCES,
	    O_PING, O_NAGLE, O_ACK, O_TIMEOUT, O_SETUP_TIMEOUT, O_JSON,
	    O_HASH_OPS, O_HASH_MEM };
	static const struct option longopts[] = {
		{ "target", required_argument, NULL, 't' },
		{ "relay", no_argument, NULL, 'R' },
		{ "users", required_argument, NULL, 'n' },
		{ "first", required_argument, NULL, 'f' },
		{ "prefix", required_argument, NULL, O_PREFIX },
		{ "password", required_argument, NULL, O_PASSWORD },
		{ "users-file", required_argument, NULL, 'U' },
		{ "duration", required_argument, NULL, 'd' },
		{ "warmup", required_argument, NULL, O_WARMUP },
		{ "drain", required_argument, NULL, O_DRAIN },
		{ "count", required_argument, NULL, 'c' },
		{ "window", required_argument, NULL, 'w' },
		{ "rate", required_argument, NULL, 'r' },
		{ "size", required_argument, NULL, 's' },
		{ "group-size", required_argument, NULL, 'g' },
		{ "procs", required_argument, NULL, 'j' },
		{ "threads", required_argument, NULL, 'T' },
		{ "concurrency", required_argument, NULL, 'C' },
		{ "sources", required_argument, NULL, O_SOURCES },
		{ "ping", required_argument, NULL, O_PING },
		{ "nagle", no_argument, NULL, O_NAGLE },
		{ "ack", no_argument, NULL, O_ACK },
		{ "server-pid", required_argument, NULL, 'p' },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "setup-timeout", required_argument, NULL, O_SETUP_TIMEOUT },
		{ "json", no_argument, NULL, O_JSON },
		{ "hash-ops", required_argument, NULL, O_HASH_OPS },
		{ "hash-mem-kib", required_argument, NULL, O_HASH_MEM },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *targets = BENCH_DEF_PORT_TARGET;
	char err[256];
	int ch, i, duration_set = 0;
	long cores;

	memset(o, 0, sizeof(*o));
	o->users = 1000;
	(void)snprintf(o->prefix, sizeof(o->prefix), "bench-");
	(void)snprintf(o->password, sizeof(o->password), "%s",
	    BENCH_DEF_PASSWORD);
	(void)snprintf(o->users_file, sizeof(o->users_file), "%s",
	    BENCH_DEF_USERS_FILE);
	o->duration = 10;
	o->warmup = 1;
	o->drain = 2;
	o->window = 1;
	o->hash_ops = 2;
	o->hash_mem_kib = 65536;
	o->size = 64;
	o->group_size = 50;
	o->concurrency = 64;
	o->timeout_ms = 30000;
	o->setup_timeout = 600;
	while ((ch = getopt_long(argc, argv, "t:Rn:f:U:d:c:w:r:s:g:j:T:C:p:h",
	    longopts, NULL)) != -1) {
		switch (ch) {
		case 't':
			targets = optarg;
			break;
		case 'R':
			o->relay = 1;
			break;
		case 'n':
			o->users = (long)num_arg("--users", optarg, 1, 1e8);
			break;
		case 'f':
			o->first = (long)num_arg("--first", optarg, 0, 1e9);
			break;
		case O_PREFIX:
			if (strlen(optarg) >= sizeof(o->prefix) ||
			    optarg[0] == '\0' || strchr(optarg, ' ') != NULL)
				die("--prefix: 1..%zu bytes, no spaces",
				    sizeof(o->prefix) - 1);
			(void)snprintf(o->prefix, sizeof(o->prefix), "%s",
			    optarg);
			break;
		case O_PASSWORD:
			if (strlen(optarg) >= sizeof(o->password) ||
			    optarg[0] == '\0')
				die("--password: 1..%d bytes",
				    PROTO_PASSWORD_MAX);
			(void)snprintf(o->password, sizeof(o->password), "%s",
			    optarg);
			break;
		case 'U':
			(void)snprintf(o->users_file, sizeof(o->users_file),
			    "%s", optarg);
			break;
		case 'd':
			o->duration = num_arg("--duration", optarg, 0.01,
			    86400);
			duration_set = 1;
			break;
		case O_WARMUP:
			o->warmup = num_arg("--warmup", optarg, 0, 3600);
			break;
		case O_DRAIN:
			o->drain = num_arg("--drain", optarg, 0, 3600);
			break;
		case 'c':
			o->count = (long)num_arg("--count", optarg, 1, 1e15);
			break;
		case 'w':
			o->window = (int)num_arg("--window", optarg, 1, 1e6);
			break;
		case 'r':
			o->rate = num_arg("--rate", optarg, 0, 1e9);
			break;
		case 's':
			o->size = (int)num_arg("--size", optarg,
			    BENCH_MIN_SIZE, BENCH_MAX_SIZE);
			break;
		case 'g':
			o->group_size = (int)num_arg("--group-size", optarg, 2,
			    100000);
			break;
		case 'j':
			o->procs = (int)num_arg("--procs", optarg, 1,
			    BENCH_MAX_PROCS);
			break;
		case 'T':
			o->threads = (int)num_arg("--threads", optarg, 1,
			    BENCH_MAX_THREADS);
			break;
		case 'C':
			o->concurrency = (int)num_arg("--concurrency", optarg,
			    1, 1e6);
			break;
		case O_SOURCES:
			o->nsrc = (int)num_arg("--sources", optarg, 1, 250);
			break;
		case O_PING:
			o->ping = num_arg("--ping", optarg, 0, 86400);
			break;
		case O_NAGLE:
			o->nagle = 1;
			break;
		case O_ACK:
			o->ack = 1;
			break;
		case 'p':
			parse_pids(o, optarg);
			break;
		case O_TIMEOUT:
			o->timeout_ms = (int)(num_arg("--timeout", optarg,
			    0.001, 3600) * 1000);
			break;
		case O_SETUP_TIMEOUT:
			o->setup_timeout = num_arg("--setup-timeout", optarg,
			    1, 86400);
			break;
		case O_JSON:
			o->json = 1;
			break;
		case O_HASH_OPS:
			o->hash_ops = (int)num_arg("--hash-ops", optarg, 1, 10);
			break;
		case O_HASH_MEM:
			o->hash_mem_kib = (long)num_arg("--hash-mem-kib", optarg,
			    8, 4194304);
			break;
		case 'h':
			usage(0);
		default:
			usage(2);
		}
	}
	if (optind != argc - 1)
		usage(2);
	for (i = 0; i <= MODE_JITTER; i++)
		if (strcmp(argv[optind], mode_names[i]) == 0)
			break;
	if (i > MODE_JITTER)
		die("unknown mode \"%s\" (register, login, idle, chat, group, "
		    "hash, jitter)", argv[optind]);
	o->mode = (enum bench_mode)i;
	/* One hash at a time unless told: chatd's hash_concurrency on two
	 * CPUs. */
	if (o->mode == MODE_HASH && o->threads == 0)
		o->threads = 1;
	if (bench_parse_targets(o, targets, err, sizeof(err)) == -1)
		die("--target: %s", err);
	/* Storms are bounded by their users; -d is then only a time cap. */
	if ((o->mode == MODE_REGISTER || o->mode == MODE_LOGIN) &&
	    !duration_set)
		o->duration = 600;
	if (o->relay && o->mode == MODE_REGISTER)
		die("register: chat-relay has no accounts");
	if (o->mode == MODE_CHAT) {
		if (o->users < 2)
			die("chat needs at least 2 users");
		o->users -= o->users % 2;
	}
	if (o->mode == MODE_GROUP) {
		if (o->users < o->group_size)
			die("group: --users (%ld) below --group-size (%d)",
			    o->users, o->group_size);
		o->users -= o->users % o->group_size;
	}
	if (o->procs == 0) {
		o->procs = (int)((o->users + BENCH_CONNS_PER_PROC - 1) /
		    BENCH_CONNS_PER_PROC);
		if (o->mode == MODE_REGISTER || o->mode == MODE_LOGIN)
			o->procs = 1;
		if (o->procs > BENCH_MAX_PROCS)
			die("%ld users need more than %d processes",
			    o->users, BENCH_MAX_PROCS);
	}
	if (o->threads == 0) {
		cores = sysconf(_SC_NPROCESSORS_ONLN);
		o->threads = o->procs > 1 ? 1 : (int)(cores > 0 ? cores : 1);
	}
	if (o->nsrc == 0) {
		long per_target = (o->users + o->ntargets - 1) / o->ntargets;

		o->nsrc = (int)((per_target + BENCH_CONNS_PER_SRC - 1) /
		    BENCH_CONNS_PER_SRC);
		if (o->nsrc < 1)
			o->nsrc = 1;
	}
}

/* --- report ------------------------------------------------------------ */

static double
us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

void
bench_json_lat(cJSON *obj, const char *key, const struct hist *h)
{
	static const double qs[] = { 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975,
	    0.99, 0.995, 0.999, 0.9999 };
	cJSON *l = cJSON_AddObjectToObject(obj, key), *ladder;
	char q[16];
	size_t i;

	cJSON_AddNumberToObject(l, "count", (double)h->n);
	if (h->n == 0)
		return;
	cJSON_AddNumberToObject(l, "min_us", us(h->min));
	cJSON_AddNumberToObject(l, "mean_us", us(h->sum / h->n));
	cJSON_AddNumberToObject(l, "p50_us", us(hist_quantile(h, 0.5)));
	cJSON_AddNumberToObject(l, "p90_us", us(hist_quantile(h, 0.9)));
	cJSON_AddNumberToObject(l, "p99_us", us(hist_quantile(h, 0.99)));
	cJSON_AddNumberToObject(l, "p99_9_us", us(hist_quantile(h, 0.999)));
	cJSON_AddNumberToObject(l, "p99_99_us",
	    us(hist_quantile(h, 0.9999)));
	cJSON_AddNumberToObject(l, "max_us", us(h->max));
	/* The shape of the tail, for plots and for finding where it starts. */
	ladder = cJSON_AddObjectToObject(l, "ladder_us");
	for (i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		(void)snprintf(q, sizeof(q), "%g", qs[i] * 100);
		cJSON_AddNumberToObject(ladder, q, us(hist_quantile(h,
		    qs[i])));
	}
}

/* A latency in the unit that reads best. */
static const char *
fmt_ns(char *buf, size_t len, uint64_t ns)
{
	if (ns < 1000000)
		(void)snprintf(buf, len, "%.0f us", us(ns));
	else if (ns < 1000000000)
		(void)snprintf(buf, len, "%.2f ms", (double)ns / 1e6);
	else
		(void)snprintf(buf, len, "%.2f s", (double)ns / 1e9);
	return buf;
}

void
bench_print_lat(const char *label, const struct hist *h)
{
	char a[32], b[32], c[32], d[32], e[32], f[32];

	if (h->n == 0) {
		(void)printf("  %-10s none recorded\n", label);
		return;
	}
	(void)printf("  %-10s min %s  p50 %s  p90 %s  p99 %s  p99.9 %s  "
	    "max %s  (n=%llu)\n", label, fmt_ns(a, sizeof(a), h->min),
	    fmt_ns(b, sizeof(b), hist_quantile(h, 0.5)),
	    fmt_ns(c, sizeof(c), hist_quantile(h, 0.9)),
	    fmt_ns(d, sizeof(d), hist_quantile(h, 0.99)),
	    fmt_ns(e, sizeof(e), hist_quantile(h, 0.999)),
	    fmt_ns(f, sizeof(f), h->max), (unsigned long long)h->n);
}

static int
host_cores(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)n : 1;
}

struct report;
static double other_cores(const struct report *);

struct report {
	const struct bench_opts *o;
	const struct bench_result *r;
	double window_s;	/* measured seconds */
	struct bench_usage base, u0, u1;
	int have_usage;
};

/* Cores busy in the window with neither the server, the bench nor the
 * kernel's interrupt work (the loopback network stack runs in softirq,
 * charged to no process); without --server-pid the server is in it. */
static double
other_cores(const struct report *rp)
{
	double w = rp->window_s, busy, mine;

	if (w <= 0)
		return 0;
	busy = rp->u1.host_busy_s - rp->u0.host_busy_s;
	mine = (rp->u1.cpu_s - rp->u0.cpu_s) + (double)rp->r->cpu_ns / 1e9 +
	    (rp->u1.host_irq_s - rp->u0.host_irq_s);
	return busy > mine ? (busy - mine) / w : 0;
}

static void
report_json(const struct report *rp)
{
	const struct bench_opts *o = rp->o;
	const struct bench_result *r = rp->r;
	cJSON *j = cJSON_CreateObject(), *arr, *s;
	double cpu = rp->u1.cpu_s - rp->u0.cpu_s;
	char *text;
	int i;

	cJSON_AddStringToObject(j, "mode", mode_names[o->mode]);
	cJSON_AddStringToObject(j, "server", o->relay ? "chat-relay" :
	    "chatd");
	arr = cJSON_AddArrayToObject(j, "targets");
	for (i = 0; i < o->ntargets; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(o->target[i].name));
	cJSON_AddNumberToObject(j, "users", (double)o->users);
	cJSON_AddNumberToObject(j, "first", (double)o->first);
	cJSON_AddNumberToObject(j, "procs", o->procs);
	cJSON_AddNumberToObject(j, "threads", o->threads);
	cJSON_AddNumberToObject(j, "sources", o->nsrc);
	if (o->mode == MODE_CHAT || o->mode == MODE_GROUP) {
		cJSON_AddNumberToObject(j, "window", o->window);
		cJSON_AddNumberToObject(j, "rate", o->rate);
		cJSON_AddNumberToObject(j, "size", o->size);
		cJSON_AddBoolToObject(j, "ack", o->ack);
		cJSON_AddBoolToObject(j, "nagle", o->nagle);
		if (o->mode == MODE_GROUP)
			cJSON_AddNumberToObject(j, "group_size",
			    o->group_size);
	}
	cJSON_AddBoolToObject(j, "ok", !r->failed);
	if (r->err[0] != '\0')
		cJSON_AddStringToObject(j, "error", r->err);
	cJSON_AddNumberToObject(j, "setup_s", (double)r->setup_ns / 1e9);
	cJSON_AddNumberToObject(j, "duration_s", rp->window_s);
	switch (o->mode) {
	case MODE_REGISTER:
	case MODE_LOGIN:
		cJSON_AddNumberToObject(j, "ok_ops", (double)r->ops_ok);
		cJSON_AddNumberToObject(j, "failed_ops", (double)r->ops_fail);
		cJSON_AddNumberToObject(j, "existing", (double)r->ops_exist);
		cJSON_AddNumberToObject(j, "known", (double)r->ops_known);
		cJSON_AddNumberToObject(j, "ops_per_s", rp->window_s > 0 ?
		    (double)r->ops_ok / rp->window_s : 0);
		bench_json_lat(j, "op_latency", &r->op);
		break;
	case MODE_IDLE:
		cJSON_AddNumberToObject(j, "connections", (double)r->ops_ok);
		cJSON_AddNumberToObject(j, "logins_per_s", r->setup_ns > 0 ?
		    (double)r->ops_ok / ((double)r->setup_ns / 1e9) : 0);
		cJSON_AddNumberToObject(j, "disconnects",
		    (double)r->disconnects);
		bench_json_lat(j, "login_latency", &r->op);
		break;
	default:
		cJSON_AddNumberToObject(j, "sent", (double)r->sent);
		cJSON_AddNumberToObject(j, "delivered", (double)r->delivered);
		cJSON_AddNumberToObject(j, "sent_per_s", (double)r->sent /
		    rp->window_s);
		cJSON_AddNumberToObject(j, "delivered_per_s",
		    (double)r->delivered / rp->window_s);
		cJSON_AddNumberToObject(j, "sent_total",
		    (double)r->sent_total);
		cJSON_AddNumberToObject(j, "delivered_total",
		    (double)r->delivered_total);
		cJSON_AddNumberToObject(j, "lost", (double)(r->sent_total *
		    (o->mode == MODE_GROUP ? (uint64_t)o->group_size - 1 : 1) -
		    r->delivered_total));
		cJSON_AddNumberToObject(j, "skipped", (double)r->skipped);
		cJSON_AddNumberToObject(j, "late_max_us",
		    us((uint64_t)r->late_max_ns));
		cJSON_AddNumberToObject(j, "errors", (double)r->errors);
		cJSON_AddNumberToObject(j, "stale", (double)r->stale);
		cJSON_AddNumberToObject(j, "disconnects",
		    (double)r->disconnects);
		if (o->ack) {
			cJSON_AddNumberToObject(j, "acks_delivered",
			    (double)r->acks_delivered);
			cJSON_AddNumberToObject(j, "acks_stored",
			    (double)r->acks_stored);
		}
		bench_json_lat(j, "latency", &r->lat);
		break;
	}
	cJSON_AddNumberToObject(j, "bench_cpu_s", (double)r->cpu_ns / 1e9);
	s = cJSON_AddObjectToObject(j, "host");
	cJSON_AddNumberToObject(s, "cores", host_cores());
	cJSON_AddNumberToObject(s, "busy_cores", rp->window_s > 0 ?
	    (rp->u1.host_busy_s - rp->u0.host_busy_s) / rp->window_s : 0);
	cJSON_AddNumberToObject(s, "softirq_cores", rp->window_s > 0 ?
	    (rp->u1.host_irq_s - rp->u0.host_irq_s) / rp->window_s : 0);
	cJSON_AddNumberToObject(s, "other_cores", other_cores(rp));
	if (rp->have_usage) {
		s = cJSON_AddObjectToObject(j, "server_usage");
		arr = cJSON_AddArrayToObject(s, "pids");
		for (i = 0; i < o->nserver; i++)
			cJSON_AddItemToArray(arr,
			    cJSON_CreateNumber(o->server_pid[i]));
		cJSON_AddNumberToObject(s, "processes", rp->u1.nproc);
		cJSON_AddNumberToObject(s, "cpu_s", cpu);
		cJSON_AddNumberToObject(s, "cpu_per_s", rp->window_s > 0 ?
		    cpu / rp->window_s : 0);
		if ((o->mode == MODE_CHAT || o->mode == MODE_GROUP) &&
		    cpu > 0)
			cJSON_AddNumberToObject(s, "delivered_per_cpu_s",
			    (double)r->delivered / cpu);
		if ((o->mode == MODE_REGISTER || o->mode == MODE_LOGIN) &&
		    cpu > 0)
			cJSON_AddNumberToObject(s, "ops_per_cpu_s",
			    (double)r->ops_ok / cpu);
		cJSON_AddNumberToObject(s, "pss_base_kib",
		    (double)rp->base.pss_kib);
		cJSON_AddNumberToObject(s, "pss_kib", (double)rp->u1.pss_kib);
		if (o->mode == MODE_IDLE && r->ops_ok > 0)
			cJSON_AddNumberToObject(s, "pss_per_conn_bytes",
			    (double)(rp->u1.pss_kib - rp->base.pss_kib) *
			    1024.0 / (double)r->ops_ok);
	}
	if ((text = cJSON_PrintUnformatted(j)) != NULL) {
		(void)printf("%s\n", text);
		free(text);
	}
	cJSON_Delete(j);
}

static void
report_table(const struct report *rp)
{
	const struct bench_opts *o = rp->o;
	const struct bench_result *r = rp->r;
	double cpu = rp->u1.cpu_s - rp->u0.cpu_s, w = rp->window_s;
	uint64_t fan = o->mode == MODE_GROUP ? (uint64_t)o->group_size - 1 : 1;
	int i;

	(void)printf("chat-bench %s: %ld users (%s%ld..%s%ld) on %s", 
	    mode_names[o->mode], o->users, o->prefix, o->first, o->prefix,
	    o->first + o->users - 1, o->relay ? "chat-relay" : "chatd");
	for (i = 0; i < o->ntargets; i++)
		(void)printf("%s%s", i ? "," : " ", o->target[i].name);
	(void)printf("\n  %d process(es) x %d thread(s), %d source "
	    "address(es)", o->procs, o->threads, o->nsrc);
	if (o->mode == MODE_CHAT || o->mode == MODE_GROUP) {
		(void)printf(", window %d, ", o->window);
		if (o->rate > 0)
			(void)printf("rate %.0f msg/s", o->rate);
		else
			(void)printf("max rate");
		(void)printf(", %d-byte text%s%s", o->size, o->ack ?
		    ", ACK each" : "", o->nagle ? ", Nagle on" : "");
		if (o->mode == MODE_GROUP)
			(void)printf(", groups of %d", o->group_size);
	}
	(void)printf("\n");
	if (r->failed)
		(void)printf("  FAILED: %s\n", r->err);
	switch (o->mode) {
	case MODE_REGISTER:
	case MODE_LOGIN:
		(void)printf("  %-10s %llu ok, %llu failed in %.2f s: %.1f/s\n",
		    o->mode == MODE_REGISTER ? "register" : "login",
		    (unsigned long long)r->ops_ok,
		    (unsigned long long)r->ops_fail, w,
		    w > 0 ? (double)r->ops_ok / w : 0.0);
		if (o->mode == MODE_REGISTER)
			(void)printf("  %-10s %llu already in %s, %llu names "
			    "taken but not in it\n", "skipped",
			    (unsigned long long)r->ops_known, o->users_file,
			    (unsigned long long)r->ops_exist);
		bench_print_lat("latency", &r->op);
		break;
	case MODE_IDLE:
		(void)printf("  %-10s %llu logged in in %.2f s (%.0f/s), held "
		    "%.1f s, %llu dropped\n", "connected",
		    (unsigned long long)r->ops_ok, (double)r->setup_ns / 1e9,
		    r->setup_ns > 0 ? (double)r->ops_ok /
		    ((double)r->setup_ns / 1e9) : 0.0, o->warmup + o->duration,
		    (unsigned long long)r->disconnects);
		bench_print_lat("login", &r->op);
		break;
	default:
		(void)printf("  %-10s %llu users logged in in %.2f s\n",
		    "setup", (unsigned long long)r->ops_ok,
		    (double)r->setup_ns / 1e9);
		(void)printf("  %-10s %.2f s after %.2f s warm-up\n",
		    "measured", w, o->warmup);
		(void)printf("  %-10s %12llu  %12.1f /s\n", "sent",
		    (unsigned long long)r->sent, (double)r->sent / w);
		(void)printf("  %-10s %12llu  %12.1f /s\n", "delivered",
		    (unsigned long long)r->delivered,
		    (double)r->delivered / w);
		(void)printf("  %-10s %llu not received after the drain, %llu "
		    "errors, %llu disconnects, %llu stale\n", "problems",
		    (unsigned long long)(r->sent_total * fan -
		    r->delivered_total), (unsigned long long)r->errors,
		    (unsigned long long)r->disconnects,
		    (unsigned long long)r->stale);
		if (o->rate > 0)
			(void)printf("  %-10s %llu sends skipped (window "
			    "full), worst lag behind schedule %.0f us\n",
			    "pacing", (unsigned long long)r->skipped,
			    us((uint64_t)r->late_max_ns));
		if (o->ack)
			(void)printf("  %-10s %llu delivered, %llu stored\n",
			    "acks", (unsigned long long)r->acks_delivered,
			    (unsigned long long)r->acks_stored);
		bench_print_lat("latency", &r->lat);
		break;
	}
	if (r->err[0] != '\0' && !r->failed)
		(void)printf("  %-10s %s\n", "note", r->err);
	if (rp->have_usage) {
		(void)printf("  %-10s %d process(es): CPU %.2f s (%.2f cores)",
		    "server", rp->u1.nproc, cpu, w > 0 ? cpu / w : 0.0);
		if ((o->mode == MODE_CHAT || o->mode == MODE_GROUP) && cpu > 0)
			(void)printf(", %.0f delivered per CPU-second",
			    (double)r->delivered / cpu);
		if ((o->mode == MODE_REGISTER || o->mode == MODE_LOGIN) &&
		    cpu > 0)
			(void)printf(", %.1f per CPU-second",
			    (double)r->ops_ok / cpu);
		(void)printf("\n  %-10s PSS %.1f MiB (%.1f MiB before the run)",
		    "", (double)rp->u1.pss_kib / 1024.0,
		    (double)rp->base.pss_kib / 1024.0);
		if (o->mode == MODE_IDLE && r->ops_ok > 0)
			(void)printf(", %.0f bytes per connection",
			    (double)(rp->u1.pss_kib - rp->base.pss_kib) *
			    1024.0 / (double)r->ops_ok);
		(void)printf("\n");
	}
	(void)printf("  %-10s CPU %.2f s in the measured window\n", "bench",
	    (double)r->cpu_ns / 1e9);
	(void)printf("  %-10s %d cores, %.2f busy: %.2f in softirq (network "
	    "stack), %.2f by other processes%s\n", "host", host_cores(),
	    w > 0 ? (rp->u1.host_busy_s - rp->u0.host_busy_s) / w : 0.0,
	    w > 0 ? (rp->u1.host_irq_s - rp->u0.host_irq_s) / w : 0.0,
	    other_cores(rp), other_cores(rp) > 0.15 ? " (figures disturbed)" :
	    "");
}

/* --- processes --------------------------------------------------------- */

static volatile sig_atomic_t got_signal;

static void
on_signal(int sig)
{
	got_signal = sig;
}

static void
kill_children(struct child *ch, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (ch[i].pid > 0)
			(void)kill(ch[i].pid, SIGKILL);
}

/* Read what children have to say until each reached `want` (or failed),
 * or the deadline passes.  0 when all did, -1 otherwise. */
static int
collect(struct child *ch, int n, int want, int64_t deadline)
{
	struct pollfd pfd[BENCH_MAX_PROCS];
	int i, k, left, ms, map[BENCH_MAX_PROCS];
	ssize_t got;
	int64_t now;
	size_t need;
	char *dst;

	for (;;) {
		left = 0;
		for (i = 0; i < n; i++) {
			if (ch[i].state >= want || ch[i].state ==
			    BENCH_FAILED)
				continue;
			pfd[left].fd = ch[i].rfd;
			pfd[left].events = POLLIN;
			map[left++] = i;
		}
		if (left == 0)
			return 0;
		now = bench_now();
		if (now >= deadline || got_signal)
			return -1;
		ms = (int)((deadline - now) / 1000000) + 1;
		if (poll(pfd, (nfds_t)left, ms) == -1 && errno != EINTR)
			return -1;
		for (k = 0; k < left; k++) {
			if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			i = map[k];
			/* A note, then (for DONE) the result: small enough
			 * to be read whole once the first byte is there. */
			got = read(ch[i].rfd, &ch[i].note, sizeof(ch[i].note));
			if (got != (ssize_t)sizeof(ch[i].note)) {
				ch[i].state = BENCH_FAILED;
				(void)snprintf(ch[i].note.err,
				    sizeof(ch[i].note.err), "worker process "
				    "%d exited early", (int)ch[i].pid);
				continue;
			}
			ch[i].state = ch[i].note.type;
			if (ch[i].state != BENCH_DONE)
				continue;
			dst = (char *)&ch[i].res;
			need = sizeof(ch[i].res);
			while (need > 0) {
				got = read(ch[i].rfd, dst, need);
				if (got == -1 && errno == EINTR)
					continue;
				if (got <= 0)
					break;
				dst += got;
				need -= (size_t)got;
			}
			if (need > 0) {
				ch[i].state = BENCH_FAILED;
				(void)snprintf(ch[i].note.err,
				    sizeof(ch[i].note.err), "worker process "
				    "%d: short result", (int)ch[i].pid);
			}
		}
	}
}

static void
send_go(struct child *ch, int n, int64_t start, int abort_run)
{
	struct bench_go go;
	int i;

	memset(&go, 0, sizeof(go));
	go.start_ns = start;
	go.abort = abort_run;
	for (i = 0; i < n; i++)
		if (ch[i].pid > 0)
			(void)!write(ch[i].wfd, &go, sizeof(go));
}

int
main(int argc, char **argv)
{
	struct bench_opts o;
	struct child ch[BENCH_MAX_PROCS];
	struct bench_result total;
	struct report rp;
	struct sigaction sa;
	long loaded, missing, unit, units, per, extra, at, i;
	int64_t start, deadline, t_end;
	int p2c[2], c2p[2], n, k, failed = 0, status;
	const char *why = NULL;

	parse_args(&o, argc, argv);
	if (o.mode == MODE_HASH)
		return bench_hash(&o);
	if (o.mode == MODE_JITTER)
		return bench_jitter(&o);
	o.run_id = (uint16_t)((unsigned)getpid() ^ (unsigned)time(NULL));
	memset(&rp, 0, sizeof(rp));
	rp.o = &o;

	/* Ids: the users file (register writes it), or the index on a relay
	 * (which takes any id). */
	if ((o.ids = calloc((size_t)o.users, sizeof(*o.ids))) == NULL)
		die("out of memory");
	if (o.relay) {
		for (i = 0; i < o.users; i++)
			o.ids[i] = (uint32_t)(o.first + i + 1);
	} else {
		loaded = bench_users_load(o.users_file, o.prefix, o.first,
		    o.users, o.ids);
		if (loaded < 0)
			die("%s: %s", o.users_file, strerror(errno));
		missing = o.users - loaded;
		if (o.mode != MODE_REGISTER && missing > 0)
			die("%ld of users %s%ld..%s%ld are not in %s: run "
			    "\"chat-bench -n %ld -f %ld register\" first",
			    missing, o.prefix, o.first, o.prefix,
			    o.first + o.users - 1, o.users_file, o.users,
			    o.first);
	}
	bench_usage(o.server_pid, o.nserver, &rp.base);
	rp.have_usage = o.nserver > 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGPIPE, &sa, NULL);

	/* Slices: whole pairs / groups per process, like per thread. */
	unit = o.mode == MODE_CHAT ? 2 : o.mode == MODE_GROUP ?
	    o.group_size : 1;
	units = o.users / unit;
	n = o.procs;
	if (n > units)
		n = (int)units;
	o.procs = n;
	per = units / n;
	extra = units % n;
	at = o.first;
	memset(ch, 0, sizeof(ch));
	for (k = 0; k < n; k++) {
		ch[k].first = at;
		ch[k].n = (per + (k < extra)) * unit;
		at += ch[k].n;
		if (pipe2(p2c, O_CLOEXEC) == -1 || pipe2(c2p, O_CLOEXEC) == -1)
			die("pipe: %s", strerror(errno));
		(void)fflush(NULL);
		switch ((ch[k].pid = fork())) {
		case -1:
			die("fork: %s", strerror(errno));
		case 0:
			(void)close(p2c[1]);
			(void)close(c2p[0]);
			{
				struct bench_opts co = o;

				/* This process's share of the rate and cap. */
				if (o.count > 0)
					co.count = o.count / n +
					    (k < o.count % n);
				_exit(bench_proc(&co, ch[k].first, ch[k].n,
				    p2c[0], c2p[1]));
			}
		default:
			(void)close(p2c[0]);
			(void)close(c2p[1]);
			ch[k].rfd = c2p[0];
			ch[k].wfd = p2c[1];
		}
	}

	/* Setup: every process connected and logged in, or one failed. */
	deadline = bench_now() + (int64_t)((o.setup_timeout + BENCH_GRACE_S) *
	    1e9);
	if (collect(ch, n, BENCH_READY, deadline) == -1)
		why = got_signal ? "interrupted" : "setup did not finish in "
		    "time";
	for (k = 0; k < n && why == NULL; k++)
		if (ch[k].state == BENCH_FAILED)
			why = ch[k].note.err;
	memset(&total, 0, sizeof(total));
	hist_init(&total.lat);
	hist_init(&total.op);
	if (why != NULL) {
		send_go(ch, n, 0, 1);
		(void)collect(ch, n, BENCH_DONE, bench_now() + 5000000000LL);
		kill_children(ch, n);
		failed = 1;
	} else {
		start = bench_now() + BENCH_START_DELAY_NS;
		send_go(ch, n, start, 0);
		{
			/* Storms have no warm-up: they are measured whole. */
			if (o.mode != MODE_REGISTER && o.mode != MODE_LOGIN)
				bench_sleep_until(start +
				    (int64_t)(o.warmup * 1e9));
			else
				bench_sleep_until(start);
			bench_usage(o.server_pid, o.nserver, &rp.u0);
		}
		t_end = start + (int64_t)((o.warmup + o.duration) * 1e9);
		if (o.mode != MODE_REGISTER && o.mode != MODE_LOGIN) {
			bench_sleep_until(t_end);
			bench_usage(o.server_pid, o.nserver, &rp.u1);
		}
		deadline = t_end + (int64_t)((o.drain + BENCH_GRACE_S) * 1e9);
		if (collect(ch, n, BENCH_DONE, deadline) == -1) {
			why = got_signal ? "interrupted" : "workers did not "
			    "finish in time";
			kill_children(ch, n);
			failed = 1;
		}
		if (o.mode == MODE_REGISTER || o.mode == MODE_LOGIN)
			bench_usage(o.server_pid, o.nserver, &rp.u1);
	}
	for (k = 0; k < n; k++) {
		if (ch[k].state == BENCH_DONE)
			bench_merge(&total, &ch[k].res);
		else if (ch[k].state == BENCH_FAILED && why == NULL)
			why = ch[k].note.err;
		(void)waitpid(ch[k].pid, &status, 0);
	}
	if (why != NULL && !total.failed) {
		total.failed = 1;
		(void)snprintf(total.err, sizeof(total.err), "%s", why);
	}
	failed |= total.failed;
	if (total.setup_ns == 0)
		for (k = 0; k < n; k++)
			if (ch[k].note.setup_ns > total.setup_ns)
				total.setup_ns = ch[k].note.setup_ns;
	rp.r = &total;
	rp.window_s = o.duration;
	if (o.mode == MODE_REGISTER || o.mode == MODE_LOGIN)
		rp.window_s = (double)total.ops_ns / 1e9;
	if (o.json)
		report_json(&rp);
	else
		report_table(&rp);
	free(o.ids);
	return failed ? 1 : 0;
}
