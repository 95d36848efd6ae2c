/*
 * chatctl.c - administer a running chatd through its control socket
 * (control.h): status, who, kick, reload, stop, stats; and set up its
 * database (db status, db init, db migrate; see ctl_db.c).
 *
 * Commands are a name -> handler table, as in relayctl/smtpctl.  Read
 * commands print a table, or the server's JSON with --json.  Exit status:
 * 0 success, 1 the command failed, 2 usage, 3 chatd not reachable.
 */
#include "config.h"

#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cjson/cJSON.h>

#include "chatctl.h"
#include "conf.h"

#define CTL_DEFAULT_SOCKET "/run/chatd/chatd.sock"
#define CTL_TIMEOUT_MS 5000
#define CTL_REPLY_MAX (64 * 1024 * 1024)
/* reload asks every CTL_RELOAD_POLL_MS whether the workers run the new
 * configuration, for as long as old ones may take to stop
 * (shutdown_timeout) and CTL_RELOAD_SLACK_MS more. */
#define CTL_RELOAD_POLL_MS 50
#define CTL_RELOAD_SLACK_MS 10000

static const char *ctl_socket;	/* -s, else ctl_socket_find() */
static int ctl_socket_from_file; /* ctl_socket is the file's key */
static int ctl_json;

static void __attribute__((noreturn))
usage(void)
{
	(void)fprintf(stderr,
	    "usage: chatctl [-j] [-c chatd.conf | -s socket] status | stats |\n"
	    "           who [-w worker] | reload\n"
	    "       chatctl [-c chatd.conf | -s socket] kick uid | stop\n"
	    "       chatctl [-c chatd.conf] db status | init | migrate\n");
	exit(2);
}

/*
 * Without -s: the control_socket of the configuration file (-c, or the
 * installed one) when that file loads, so chatctl finds a socket chatd
 * was told to put elsewhere; the default when it does not (not there,
 * not readable by this user, or not valid: a reload must still reach
 * chatd to say what is wrong with it).
 */
static void
ctl_socket_find(void)
{
	static char path[CONF_STR_MAX];
	struct conf c;
	char errbuf[512];

	if (ctl_socket != NULL)
		return;
	ctl_socket = CTL_DEFAULT_SOCKET;
	conf_defaults(&c);
	if (conf_load(&c, ctl_db_conf, errbuf, sizeof(errbuf)) == -1)
		return;
	if (c.control_socket[0] == '\0')
		errx(3, "chatd's control socket is off (control_socket is "
		    "empty in %s)", ctl_db_conf);
	(void)snprintf(path, sizeof(path), "%s", c.control_socket);
	ctl_socket = path;
	ctl_socket_from_file = 1;
}

/* Send {"version":1,"cmd":...} plus args and return the reply object. */
static cJSON *
ctl_call(cJSON *req)
{
	struct sockaddr_un sun;
	struct pollfd pfd;
	char *out, *buf;
	size_t len = 0, cap = 65536;
	ssize_t n;
	cJSON *reply;
	int fd;

	ctl_socket_find();
	cJSON_AddNumberToObject(req, "version", 1);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(ctl_socket) >= sizeof(sun.sun_path))
		errx(2, "%s: socket path too long", ctl_socket);
	(void)strcpy(sun.sun_path, ctl_socket);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		err(1, "socket");
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if ((errno == ENOENT || errno == ECONNREFUSED) &&
		    ctl_socket_from_file)
			/* control_socket needs a restart: a chatd started
			 * before the file changed answers on the old path. */
			errx(3, "chatd is not running (nothing answers on %s, "
			    "the control_socket of %s; a chatd started before "
			    "that key changed answers on the old path: -s)",
			    ctl_socket, ctl_db_conf);
		if (errno == ENOENT || errno == ECONNREFUSED)
			errx(3, "chatd is not running (nothing answers on %s)",
			    ctl_socket);
		if (errno == EACCES || errno == EPERM)
			errx(3, "%s: permission denied (run as root or as a "
			    "member of chatd's group)", ctl_socket);
		err(3, "connect %s", ctl_socket);
	}
	if ((out = cJSON_PrintUnformatted(req)) == NULL)
		errx(1, "out of memory");
	if (send(fd, out, strlen(out), MSG_NOSIGNAL) == -1 ||
	    send(fd, "\n", 1, MSG_NOSIGNAL) == -1)
		err(3, "send to %s", ctl_socket);
	free(out);
	if ((buf = malloc(cap)) == NULL)
		errx(1, "out of memory");
	pfd.fd = fd;
	pfd.events = POLLIN;
	for (;;) {
		if (poll(&pfd, 1, CTL_TIMEOUT_MS) <= 0)
			errx(3, "chatd did not answer on %s", ctl_socket);
		if (len + 1 >= cap) {
			if (cap >= CTL_REPLY_MAX)
				errx(1, "reply larger than %d bytes",
				    CTL_REPLY_MAX);
			cap *= 2;
			if ((buf = realloc(buf, cap)) == NULL)
				errx(1, "out of memory");
		}
		n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			err(3, "read %s", ctl_socket);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	(void)close(fd);
	buf[len] = '\0';
	if ((reply = cJSON_Parse(buf)) == NULL)
		errx(3, "chatd answered something that is not JSON");
	free(buf);
	if (!cJSON_IsTrue(cJSON_GetObjectItem(reply, "ok"))) {
		const cJSON *e = cJSON_GetObjectItem(reply, "error");

		errx(1, "%s", cJSON_IsString(e) ? e->valuestring :
		    "command failed");
	}
	return reply;
}

static cJSON *
ctl_simple(const char *cmd)
{
	cJSON *req = cJSON_CreateObject();
	cJSON *reply;

	cJSON_AddStringToObject(req, "cmd", cmd);
	reply = ctl_call(req);
	cJSON_Delete(req);
	return reply;
}

static double
num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItem(o, k);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *
str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItem(o, k);

	return cJSON_IsString(v) ? v->valuestring : "";
}

static int
print_json(cJSON *reply)
{
	char *s = cJSON_Print(reply);

	(void)printf("%s\n", s);
	free(s);
	cJSON_Delete(reply);
	return 0;
}

static void
fmt_duration(double secs, char *buf, size_t len)
{
	long s = (long)secs;

	if (s >= 86400)
		(void)snprintf(buf, len, "%ldd%02ldh%02ldm", s / 86400,
		    s % 86400 / 3600, s % 3600 / 60);
	else if (s >= 3600)
		(void)snprintf(buf, len, "%ldh%02ldm%02lds", s / 3600,
		    s % 3600 / 60, s % 60);
	else
		(void)snprintf(buf, len, "%ldm%02lds", s / 60, s % 60);
}

static int
cmd_status(int argc, char **argv)
{
	cJSON *reply, *w;
	char up[32];

	if (argc != 1)
		usage();
	reply = ctl_simple("status");
	if (ctl_json)
		return print_json(reply);
	fmt_duration(num(reply, "uptime"), up, sizeof(up));
	(void)printf("node %s, chatd %s, pid %.0f, up %s\n",
	    str(reply, "node_id"), str(reply, "chatd_version"),
	    num(reply, "pid"), up);
	(void)printf("config %s, listening on %s\n", str(reply, "config"),
	    str(reply, "listen"));
	(void)printf("online users on this host: %.0f\n",
	    num(reply, "online"));
	(void)printf("configuration generation %.0f\n\n",
	    num(reply, "config_generation"));
	(void)printf("%-7s %-8s %-8s %6s %8s %8s %12s %12s\n", "worker",
	    "pid", "state", "config", "conns", "online", "msgs-in",
	    "msgs-out");
	cJSON_ArrayForEach(w, cJSON_GetObjectItem(reply, "workers"))
		(void)printf("%-7.0f %-8.0f %-8s %6.0f %8.0f %8.0f %12.0f "
		    "%12.0f\n", num(w, "worker"), num(w, "pid"),
		    cJSON_IsTrue(cJSON_GetObjectItem(w, "running")) ?
		    "running" : "down", num(w, "config_generation"),
		    num(w, "conns_open"), num(w, "online"), num(w, "msgs_in"),
		    num(w, "msgs_out"));
	cJSON_Delete(reply);
	return 0;
}

static int
cmd_stats(int argc, char **argv)
{
	cJSON *reply, *ws, *w, *field, *e;

	if (argc != 1)
		usage();
	reply = ctl_simple("stats");
	if (ctl_json)
		return print_json(reply);
	ws = cJSON_GetObjectItem(reply, "workers");
	(void)printf("%-22s", "counter");
	cJSON_ArrayForEach(w, ws) {
		char label[24];

		(void)snprintf(label, sizeof(label), "worker %.0f",
		    num(w, "worker"));
		(void)printf(" %12s", label);
	}
	(void)printf(" %12s\n", "total");
	w = cJSON_GetArrayItem(ws, 0);
	/* Rows in the server's order, skipping the identity fields. */
	for (field = w != NULL ? w->child : NULL; field; field = field->next) {
		const char *k = field->string;
		double total = 0;

		if (!cJSON_IsNumber(field) || strcmp(k, "worker") == 0 ||
		    strcmp(k, "pid") == 0 || strcmp(k, "started") == 0 ||
		    strcmp(k, "config_generation") == 0)
			continue;
		(void)printf("%-22s", k);
		cJSON_ArrayForEach(e, ws) {
			(void)printf(" %12.0f", num(e, k));
			total += num(e, k);
		}
		(void)printf(" %12.0f\n", total);
	}
	for (field = w != NULL ? cJSON_GetObjectItem(w, "errors")->child :
	    NULL; field; field = field->next) {
		double total = 0;

		(void)printf("errors.%-15s", field->string);
		cJSON_ArrayForEach(e, ws) {
			double v = num(cJSON_GetObjectItem(e, "errors"),
			    field->string);

			(void)printf(" %12.0f", v);
			total += v;
		}
		(void)printf(" %12.0f\n", total);
	}
	cJSON_Delete(reply);
	return 0;
}

static int
cmd_who(int argc, char **argv)
{
	cJSON *req, *reply, *u;
	int ch, worker = -1;
	char since[32];
	time_t t;
	struct tm tm;

	optind = 1;
	while ((ch = getopt(argc, argv, "w:")) != -1) {
		char *end;
		long v;

		if (ch != 'w')
			usage();
		v = strtol(optarg, &end, 10);
		if (*end != '\0' || end == optarg || v < 0 || v > 1000)
			errx(2, "who -w: \"%s\" is not a worker number",
			    optarg);
		worker = (int)v;
	}
	if (optind != argc)
		usage();
	req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "cmd", "who");
	if (worker >= 0)
		cJSON_AddNumberToObject(req, "worker", worker);
	reply = ctl_call(req);
	cJSON_Delete(req);
	if (ctl_json)
		return print_json(reply);
	(void)printf("%-10s %-24s %-7s %s\n", "id", "name", "worker",
	    "since");
	cJSON_ArrayForEach(u, cJSON_GetObjectItem(reply, "users")) {
		t = (time_t)num(u, "since");
		(void)localtime_r(&t, &tm);
		(void)strftime(since, sizeof(since), "%Y-%m-%d %H:%M:%S", &tm);
		(void)printf("%-10.0f %-24s %-7.0f %s\n", num(u, "id"),
		    str(u, "name"), num(u, "worker"), since);
	}
	cJSON_Delete(reply);
	return 0;
}

static int
cmd_kick(int argc, char **argv)
{
	cJSON *req, *reply;
	char *end;
	unsigned long id;

	if (argc != 2)
		usage();
	id = strtoul(argv[1], &end, 10);
	if (*end != '\0' || id == 0 || id >= 4294967295UL)
		errx(2, "kick: \"%s\" is not a user id", argv[1]);
	req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "cmd", "kick");
	cJSON_AddNumberToObject(req, "id", (double)id);
	reply = ctl_call(req);
	cJSON_Delete(req);
	(void)printf("kicked user %lu (worker %.0f)\n", id,
	    num(reply, "worker"));
	cJSON_Delete(reply);
	return 0;
}

/*
 * The master loads the file when asked, so a file that does not load is
 * this command's error (exit 1, the running configuration stays).  Then
 * wait, bounded, until the master says every worker runs the new
 * generation (status: config_generation_complete): at once for a reload
 * in place, after the old workers stopped when new ones are needed.
 */
static int
cmd_reload(int argc, char **argv)
{
	struct timespec pause = { 0, CTL_RELOAD_POLL_MS * 1000 * 1000 };
	cJSON *reply, *status;
	const cJSON *k;
	double gen, done;
	long long wait_ms, polls;
	int all;

	if (argc != 1)
		usage();
	reply = ctl_simple(argv[0]);
	gen = num(reply, "config_generation");
	wait_ms = (long long)num(reply, "shutdown_timeout") * 1000 +
	    CTL_RELOAD_SLACK_MS;
	cJSON_ArrayForEach(k, cJSON_GetObjectItem(reply, "restart_needed"))
		if (cJSON_IsString(k))
			warnx("%s changed; restart chatd to apply it (the "
			    "running value stays)", k->valuestring);
	for (polls = wait_ms / CTL_RELOAD_POLL_MS;; polls--) {
		status = ctl_simple("status");
		done = num(status, "config_generation_complete");
		all = cJSON_GetArraySize(cJSON_GetObjectItem(status,
		    "workers"));
		cJSON_Delete(status);
		if (done >= gen)
			break;
		if (polls == 0) {
			cJSON_Delete(reply);
			errx(1, "generation %.0f loaded, but not every worker "
			    "runs it after %lld s (see chatctl status and "
			    "chatd's log)", gen, wait_ms / 1000);
		}
		(void)nanosleep(&pause, NULL);
	}
	cJSON_AddNumberToObject(reply, "workers", all);
	if (ctl_json)
		return print_json(reply);
	if (strcmp(str(reply, "applied"), "new workers") == 0)
		(void)printf("reload complete: configuration generation %.0f, "
		    "%d new workers (%s changed)\n", gen, all,
		    str(reply, "new_workers_for"));
	else
		(void)printf("reload complete: configuration generation %.0f, "
		    "%s, %d workers\n", gen, str(reply, "applied"), all);
	cJSON_Delete(reply);
	return 0;
}

static int
cmd_signal(int argc, char **argv)
{
	if (argc != 1)
		usage();
	cJSON_Delete(ctl_simple(argv[0]));
	(void)printf("%s requested\n", argv[0]);
	return 0;
}

static const struct ctl_cmd {
	const char *name;
	int (*fn)(int, char **);
} ctl_cmds[] = {
	{ "status", cmd_status },
	{ "stats", cmd_stats },
	{ "who", cmd_who },
	{ "kick", cmd_kick },
	{ "reload", cmd_reload },
	{ "stop", cmd_signal },
	{ "db", ctl_db },
};

int
main(int argc, char *argv[])
{
	size_t i;
	int ch;

	while ((ch = getopt(argc, argv, "+c:js:h")) != -1) {
		switch (ch) {
		case 'c':
			ctl_db_conf = optarg;
			break;
		case 'j':
			ctl_json = 1;
			break;
		case 's':
			ctl_socket = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	for (i = 0; i < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); i++)
		if (strcmp(argv[0], ctl_cmds[i].name) == 0)
			return ctl_cmds[i].fn(argc, argv);
	warnx("unknown command \"%s\"", argv[0]);
	usage();
}
