/*
 * it_cluster.c - black-box tests of a chatd cluster: three chatd hosts
 * (distinct node ids, presence tables and ports, two workers each) that
 * share one mariadbd and one redis-server, with nginx in front running
 * the shipped etc/nginx-chatd.conf (tests/harness.c renders it with the
 * instances' ports).
 *
 * Covered: clients through nginx spread over the hosts; 1:1 and group chat
 * across hosts; messages to a user online nowhere stored and delivered at
 * the next login; duplicate login refused across hosts, also when two
 * logins of one user race on two hosts; friend state and PRESENCE pushes
 * across hosts; a group membership change on one host seen by a sender on
 * another that had the group cached; one host SIGKILLed whole (its users
 * offline everywhere within presence_ttl, able to log in elsewhere,
 * nothing sent to them lost); one host stopped with SIGTERM (its
 * sessions ended through Redis before it exits: friends elsewhere told,
 * no claim left behind); redis-server stopped and restarted in the
 * middle of traffic (same-host chat goes on, cross-host messages stored,
 * logins refused with errno 13, then subscriptions and claims restored);
 * SCRIPT FLUSH in the middle of traffic (the hosts run their scripts by
 * digest: messages still delivered, claims still renewed and released).
 * And regression tests of races the cluster used to lose: a message
 * right after the recipient's LOGIN_ACK, a group message right after a
 * join's ACK, a join while Redis is down, the publishers' connections
 * killed, a frozen host, friend states after Redis restarted.  And a
 * reload that switches a fourth host's Redis on and then moves it to a
 * second redis-server: a killed worker's claims are released on the
 * server that worker used.  And that a worker shares no socket with its
 * master but its slot's listening one (not the master's control socket
 * or Redis connection).  And a Redis address that takes no connection
 * (SYNs dropped): connects given up after redis_timeout and tried again,
 * logins refused at once, and connected once a redis-server listens.
 * And a random walk of users chatting, logging in and out and dropping
 * their connections on random hosts (its seed printed), also through a
 * database outage.
 *
 * Every chat message a test sends goes into a ledger (recipient, text);
 * every chat frame a client receives, live or in a LOGIN_ACK's
 * offlinemsg, is checked off against it.  A test ends with every entry
 * received exactly once and no frame that was not sent.
 *
 * Which host holds a user is read from the hosts' presence tables (mapped
 * read-only), and Redis is asked directly (a few lines of RESP below) for
 * claims and subscriber counts when a test must wait for an asynchronous
 * effect.  Each test runs forked; a test that kills a host or restarts
 * Redis has a TCase of its own, and every TCase's unchecked fixture (run
 * in the runner) first restarts whatever an earlier test took down, on
 * the same ports, and waits until every worker is subscribed again.
 *
 * No test waits for an effect the server promises by the time it
 * answers.  A group change is announced through Redis before its ACK,
 * so a message sent to the group right after, from any host, sees the
 * new membership.  A LOGIN_ACK may come before the user's channel is
 * subscribed: a message from another host in between is stored, and
 * pulled when the SUBSCRIBE is confirmed or on the pull hint the storing
 * host publishes.  So tests send across hosts right after a login, and
 * while the hosts reconnect to a restarted Redis, without waiting.  They
 * expect an ACK to say "delivered", or a PRESENCE push (never stored)
 * to arrive, only where the recipient is known to be subscribed: it has
 * received something through Redis since its login, or made a request
 * answered after a Redis round trip of its own worker (creating or
 * joining a group, FRIEND_LIST with friends), which Redis read after
 * the SUBSCRIBE that worker had sent before.
 *
 * What is still waited for, bounded, is what no client can see: a
 * session's claim and subscription gone after its LOGINOUT (before the
 * user logs in elsewhere or a message to it must be stored); a SIGKILLed
 * host's subscriptions dropped by Redis (until Redis reads the closed
 * sockets it counts them, and a message published to them is lost with
 * the host: pub/sub has no acknowledgement); and after Redis restarts,
 * every worker reconnected (each retries on its own timer) and the
 * claims renewed, before a test asserts what depends on them.
 *
 * For debugging: IT_CLUSTER_ONLY=test_a,test_b runs only those tests.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <cjson/cJSON.h>

#include "chatc.h"
#include "harness.h"
#include "presence.h"
#include "protocol.h"

#define NHOSTS		3
#define NWORKERS	2	/* per host */
#define TTL_S		3	/* presence_ttl: the smallest allowed */
#define EXTRA_CONF	"[server]\nworkers = 2\n" \
			"[redis]\npresence_ttl = 3\nredis_retry_max = 1\n"
#define VIA_NGINX	(-1)

#define PASSWORD	"it-cluster-Pa55"

/* Bounds, in milliseconds. */
#define REQ_MS		5000	/* one request until its reply */
#define PUSH_MS		5000	/* a frame that must arrive */
#define QUIET_MS	300	/* waiting for frames that must not come */
#define SETTLE_MS	5000	/* an asynchronous effect (release, pull) */
#define RECOVER_MS	15000	/* Redis reconnect, host restart */
#define POLL_MS		50

#define TEST_TIMEOUT_S	60	/* Check's limit for one test */
#define DB_BACKOFF_MS	2500	/* past chatd's db_retry_interval (2 s) */

static struct harness H;
static int harness_ok;		/* the servers are up */
static int harness_tried;	/* the first fixture ran */
static char prefix[128];	/* redis_prefix of the cluster */
static long long probe_ids[NHOSTS];	/* fixture users, one per host */

static int cluster_ready(void);

/* Per test process. */
static int name_seq;
static struct presence *pres[NHOSTS];
static int dead[NHOSTS];	/* hosts this test killed */

struct user {
	long long id;
	char name[PROTO_NAME_MAX + 1];
	struct chatc *c;	/* NULL while offline */
	int host;		/* host holding the session, -1 offline */
	struct {
		long long id;
		char state[8];
	} seen[16];		/* PRESENCE frames not looked at yet */
	int nseen;
};

/* --- small helpers ------------------------------------------------------ */

static void
unique_name(char *buf, size_t len, const char *tag)
{
	int n;

	n = snprintf(buf, len, "%s_%ld_%d", tag, (long)getpid(), name_seq++);
	ck_assert_msg(n > 0 && (size_t)n < len, "name too long for %s", tag);
}

static char *
jtext(const cJSON *o)
{
	static char buf[2048];
	char *s = o != NULL ? cJSON_PrintUnformatted(o) : NULL;

	(void)snprintf(buf, sizeof(buf), "%s", s != NULL ? s : "(null)");
	free(s);
	return buf;
}

static long long
jnum(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsNumber(v))
		ck_abort_msg("\"%s\" is not a number in %s", key, jtext(o));
	return (long long)v->valuedouble;
}

static const char *
jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsString(v))
		ck_abort_msg("\"%s\" is not a string in %s", key, jtext(o));
	return v->valuestring;
}

static const cJSON *
jarr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsArray(v))
		ck_abort_msg("\"%s\" is not an array in %s", key, jtext(o));
	return v;
}

/* The JSON text of a classic string item, parsed (caller frees). */
static cJSON *
jparse_item(const cJSON *item)
{
	cJSON *o;

	ck_assert_msg(cJSON_IsString(item), "array item is not a string");
	o = cJSON_Parse(item->valuestring);
	ck_assert_msg(cJSON_IsObject(o), "array item is not JSON object "
	    "text: %s", item->valuestring);
	return o;
}

/* 1 while pid exists and is not a zombie. */
static int
alive(pid_t pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	if (pid <= 0)
		return 0;
	(void)snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	(void)close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL)
		return 0;
	return p[2] != 'Z' && p[2] != 'X';
}

/* --- Redis, asked directly ---------------------------------------------- */

static int
redis_cmd(char *type, char *out, size_t outlen, long long *num, int argc,
    const char **argv)
{
	return harness_redis_cmd(&H, type, out, outlen, num, argc, argv);
}

/* The Redis key of uid's claim. */
static void
claim_key(long long uid, char *key, size_t len)
{
	(void)snprintf(key, len, "%sonline:%lld", prefix, uid);
}

/* The claim value of uid in the Redis of r ("" when there is none); -1
 * when that Redis is unreachable. */
static int
claim_at(struct harness *r, long long uid, char *out, size_t outlen)
{
	char key[256], type;
	const char *argv[2];
	long long num;

	claim_key(uid, key, sizeof(key));
	argv[0] = "GET";
	argv[1] = key;
	if (harness_redis_cmd(r, &type, out, outlen, &num, 2, argv) == -1)
		return -1;
	if (type == 'n')
		out[0] = '\0';
	return 0;
}

/* The same in the cluster's Redis. */
static int
claim_of(long long uid, char *out, size_t outlen)
{
	return claim_at(&H, uid, out, outlen);
}

/* 1 when uid's gone marker (its friends were told its claim expired) is
 * in the cluster's Redis, 0 when not, -1 when Redis is unreachable. */
static int
gone_marked(long long uid)
{
	char key[256], type, out[64];
	const char *argv[2];
	long long num;

	(void)snprintf(key, sizeof(key), "%sgone:%lld", prefix, uid);
	argv[0] = "EXISTS";
	argv[1] = key;
	if (redis_cmd(&type, out, sizeof(out), &num, 2, argv) == -1)
		return -1;
	return num == 1;
}

/* Subscribers of a channel (name after the prefix), -1 when unknown. */
static long long
numsub(const char *channel)
{
	char ch[256], type, out[256];
	const char *argv[3];
	long long num;

	(void)snprintf(ch, sizeof(ch), "%s%s", prefix, channel);
	argv[0] = "PUBSUB";
	argv[1] = "NUMSUB";
	argv[2] = ch;
	if (redis_cmd(&type, out, sizeof(out), &num, 3, argv) == -1 ||
	    type != '*')
		return -1;
	return num;
}

static long long
numsub_user(long long uid)
{
	char ch[64];

	(void)snprintf(ch, sizeof(ch), "user:%lld", uid);
	return numsub(ch);
}

static int
redis_up(void)
{
	char type, out[64];
	const char *argv[1] = { "PING" };
	long long num;

	return redis_cmd(&type, out, sizeof(out), &num, 1, argv) == 0 &&
	    strcmp(out, "PONG") == 0;
}

/* Wait (bounded) until uid holds no claim and no subscription. */
static void
wait_released(long long uid)
{
	long long deadline = harness_now_ms() + SETTLE_MS;
	char val[256] = "?";
	long long subs = -1;

	for (;;) {
		if (claim_of(uid, val, sizeof(val)) == 0 && val[0] == '\0' &&
		    (subs = numsub_user(uid)) == 0)
			return;
		if (harness_now_ms() >= deadline)
			break;
		harness_sleep_ms(20);
	}
	ck_abort_msg("user %lld: claim \"%s\" and %lld subscriber(s) still "
	    "there %d ms after logout", uid, val, subs, SETTLE_MS);
}

/* Wait (bounded) until nobody is subscribed to uid's channel. */
static void
wait_unsubscribed(long long uid)
{
	long long deadline = harness_now_ms() + SETTLE_MS, subs;

	while ((subs = numsub_user(uid)) != 0) {
		ck_assert_msg(harness_now_ms() < deadline, "user %lld: %lld "
		    "subscriber(s) left %d ms after its host died", uid, subs,
		    SETTLE_MS);
		harness_sleep_ms(2);
	}
}

/* --- connections ---------------------------------------------------------- */


static int
port_of(int where)
{
	return where == VIA_NGINX ? H.nginx_port : H.chatd[where].port;
}

static struct chatc *
xconnect(int where)
{
	struct chatc *c;
	char err[256];

	c = chatc_connect("127.0.0.1", port_of(where), REQ_MS, err,
	    sizeof(err));
	ck_assert_msg(c != NULL, "connect to %s (port %d): %s",
	    where == VIA_NGINX ? "nginx" : "chatd", port_of(where), err);
	return harness_track(c);
}

/* Checked teardown: close what the test left open. */
static void
close_all(void)
{
	int i;

	harness_close_tracked();
	for (i = 0; i < NHOSTS; i++)
		if (pres[i] != NULL) {
			presence_close(pres[i]);
			pres[i] = NULL;
		}
}

static cJSON *
request(struct chatc *c, cJSON *req)
{
	cJSON *reply;

	reply = chatc_request(c, req, REQ_MS);
	cJSON_Delete(req);
	ck_assert_msg(reply != NULL, "no reply: %s", chatc_error(c));
	return reply;
}

static cJSON *
ack_ok(struct chatc *c, cJSON *reply, int refmsgid)
{
	ck_assert_msg(reply != NULL, "no reply to msgid %d: %s", refmsgid,
	    chatc_error(c));
	ck_assert_msg(jnum(reply, "msgid") == MSG_ACK &&
	    jnum(reply, "refmsgid") == refmsgid && chatc_errno(reply) == 0,
	    "expected the ACK of msgid %d, got %s", refmsgid, jtext(reply));
	return reply;
}

static void
ack_ok_free(struct chatc *c, cJSON *reply, int refmsgid)
{
	cJSON_Delete(ack_ok(c, reply, refmsgid));
}

/* --- the ledger ------------------------------------------------------------ */

#define LEDGER_MAX 1024

static int rw_trace;		/* IT_CLUSTER_TRACE: print the walk */

static struct sent {
	long long from, to;
	int msgid;		/* 6 or 10 */
	char msg[96];
	int got;		/* times received */
	int order;		/* when it was received first */
	long long tus;		/* the frame's "tus" when received */
	int maybe;		/* its recipient dropped its connection
				 * before reading it: 0 to 2 times */
	int never;		/* refused (errno 13): must not arrive */
	int again;		/* received while the database could not
				 * delete it: may come twice */
} ledger[LEDGER_MAX];
static int rw_again_window;	/* receipts now may come twice (again) */
static int nledger;
static int nreceived;

static void
ledger_add(long long from, long long to, int msgid, const char *msg)
{
	struct sent *s;

	ck_assert_msg(nledger < LEDGER_MAX, "ledger full");
	s = &ledger[nledger++];
	s->from = from;
	s->to = to;
	s->msgid = msgid;
	(void)snprintf(s->msg, sizeof(s->msg), "%s", msg);
	s->got = 0;
	s->tus = 0;
	s->maybe = 0;
	s->never = 0;
	s->again = 0;
}

/* A chat frame reached u: check it off. */
static void
ledger_got(const struct user *u, const cJSON *f)
{
	const char *msg = jstr(f, "msg");
	const cJSON *tus;
	int i, msgid = (int)jnum(f, "msgid");

	for (i = 0; i < nledger; i++) {
		struct sent *s = &ledger[i];

		if (s->to != u->id || strcmp(s->msg, msg) != 0)
			continue;
		ck_assert_msg(s->msgid == msgid && jnum(f, "id") == s->from,
		    "user %s: frame %s does not match what was sent (msgid "
		    "%d from %lld)", u->name, jtext(f), s->msgid, s->from);
		if (rw_trace)
			fprintf(stderr, "  %s got %s%s\n", u->name, msg,
			    s->got > 0 ? " AGAIN" : "");
		if (rw_again_window)
			s->again = 1;
		if (s->got++ == 0) {
			s->order = ++nreceived;
			tus = cJSON_GetObjectItemCaseSensitive(f, "tus");
			s->tus = cJSON_IsNumber(tus) ?
			    (long long)tus->valuedouble : 0;
		}
		return;
	}
	ck_abort_msg("user %s (%lld) received a chat frame nobody sent it: "
	    "%s", u->name, u->id, jtext(f));
}

/* Entries for uid (all when uid is 0) not received yet (but for those
 * its dropped connections may have lost). */
static int
ledger_missing(long long uid)
{
	int i, n = 0;

	for (i = 0; i < nledger; i++)
		if ((uid == 0 || ledger[i].to == uid) && ledger[i].got == 0 &&
		    !ledger[i].maybe && !ledger[i].never)
			n++;
	return n;
}

/* The messages from -> to that arrived came in the order they were
 * sent. */
static void
ledger_in_order(const struct user *from, const struct user *to)
{
	int i, last = 0;

	for (i = 0; i < nledger; i++) {
		if (ledger[i].from != from->id || ledger[i].to != to->id ||
		    ledger[i].got == 0)
			continue;
		ck_assert_msg(ledger[i].order > last, "%s -> %s: \"%s\" "
		    "arrived before a message sent earlier", from->name,
		    to->name, ledger[i].msg);
		last = ledger[i].order;
	}
}

/* Every message received, and exactly once. */
static void
ledger_check(void)
{
	char report[2048];
	size_t len = 0;
	int i, bad = 0;

	report[0] = '\0';
	for (i = 0; i < nledger; i++) {
		if (ledger[i].never ? ledger[i].got == 0 :
		    ledger[i].got == 1 || ((ledger[i].maybe ||
		    ledger[i].again) && ledger[i].got <= 2))
			continue;
		bad++;
		if (len < sizeof(report) - 200)
			len += (size_t)snprintf(report + len,
			    sizeof(report) - len, "\n  %s to %lld: %s",
			    ledger[i].msg, ledger[i].to, ledger[i].never ?
			    "received, though refused with errno 13" :
			    ledger[i].got == 0 ? "never received" :
			    "received more than once");
	}
	ck_assert_msg(bad == 0, "%d of %d messages not accounted for "
	    "exactly once:%s", bad, nledger, report);
}

/* --- frames ------------------------------------------------------------- */

/* Pipelined requests whose ACKs arrive among the frames (seq "p<n>"). */
#define PIPE_MAX 1024
static struct {
	char status[16];	/* "" until its ACK came */
	int err;
} pipe_ack[PIPE_MAX];

/* When set, PRESENCE frames go here instead of u->seen. */
static void (*presence_hook)(struct user *u, long long id,
    const char *state);

static void
frame(struct user *u, cJSON *m)
{
	const cJSON *seq;
	int msgid = (int)jnum(m, "msgid"), k;

	switch (msgid) {
	case MSG_ONE_CHAT:
	case MSG_GROUP_CHAT:
		ledger_got(u, m);
		break;
	case MSG_PRESENCE:
		if (presence_hook != NULL) {
			presence_hook(u, jnum(m, "id"), jstr(m, "state"));
			break;
		}
		ck_assert_msg(u->nseen < (int)(sizeof(u->seen) /
		    sizeof(u->seen[0])), "user %s: too many PRESENCE frames",
		    u->name);
		u->seen[u->nseen].id = jnum(m, "id");
		(void)snprintf(u->seen[u->nseen].state,
		    sizeof(u->seen[u->nseen].state), "%s", jstr(m, "state"));
		u->nseen++;
		break;
	case MSG_ACK:
	case MSG_ERROR:
		seq = cJSON_GetObjectItemCaseSensitive(m, "seq");
		if (cJSON_IsString(seq) && seq->valuestring[0] == 'p' &&
		    (k = atoi(seq->valuestring + 1)) >= 0 && k < PIPE_MAX) {
			pipe_ack[k].err = chatc_errno(m);
			(void)snprintf(pipe_ack[k].status,
			    sizeof(pipe_ack[k].status), "%s", msgid == MSG_ACK ?
			    jstr(m, "status") : "error");
			break;
		}
		/* FALLTHROUGH */
	default:
		ck_abort_msg("user %s: unexpected frame %s", u->name,
		    jtext(m));
	}
}

/* Read what reaches u within ms (at least what is there now).  Returns 0
 * when the connection ended. */
static int
pump(struct user *u, int ms)
{
	long long deadline = harness_now_ms() + ms, left;
	cJSON *m;

	if (u->c == NULL)
		return 0;
	for (;;) {
		left = deadline - harness_now_ms();
		if ((m = chatc_recv(u->c, left > 0 ? (int)left : 0)) == NULL)
			break;
		frame(u, m);
		cJSON_Delete(m);
	}
	return strcmp(chatc_error(u->c), "timeout") == 0;
}

/* Wait (bounded) until every message for the online users in us arrived. */
static void
await(struct user **us, int n, int ms)
{
	long long deadline = harness_now_ms() + ms;
	int i, missing;

	for (;;) {
		missing = 0;
		for (i = 0; i < n; i++)
			if (us[i]->c != NULL) {
				(void)pump(us[i], 5);
				missing += ledger_missing(us[i]->id);
			}
		if (missing == 0 || harness_now_ms() >= deadline)
			break;
	}
	for (i = 0; i < n; i++)
		ck_assert_msg(us[i]->c == NULL ||
		    ledger_missing(us[i]->id) == 0, "user %s (host %d): %d "
		    "message(s) not received within %d ms", us[i]->name,
		    us[i]->host, ledger_missing(us[i]->id), ms);
}

/* Nothing more arrives for the online users in us (no chat frame that
 * was not sent, no extra PRESENCE). */
static void
quiet(struct user **us, int n)
{
	int i, waited = 0;

	for (i = 0; i < n; i++) {
		if (us[i]->c == NULL)
			continue;
		/* QUIET_MS on the first one online, then what is there. */
		(void)pump(us[i], waited++ == 0 ? QUIET_MS : 0);
		ck_assert_msg(us[i]->nseen == 0, "user %s: unexpected "
		    "PRESENCE {id %lld, %s}", us[i]->name, us[i]->seen[0].id,
		    us[i]->seen[0].state);
	}
}

/*
 * Wait for PRESENCE {id, state} at u (earlier ones for other ids stay).
 * Each wait follows one change of id's state, so u knew the other state
 * before: one notice repeating that is let through (a login's second
 * reading of its friends' states may overlap a friend's own notice).
 */
static void
wait_presence_ms(struct user *u, long long id, const char *state, int ms)
{
	long long deadline = harness_now_ms() + ms;
	int i, match, repeats = 0;

	for (;;) {
		for (i = 0; i < u->nseen; i++) {
			if (u->seen[i].id != id)
				continue;
			match = strcmp(u->seen[i].state, state) == 0;
			ck_assert_msg(match || repeats++ == 0,
			    "user %s: PRESENCE of %lld is %s, expected %s",
			    u->name, id, u->seen[i].state, state);
			memmove(&u->seen[i], &u->seen[i + 1],
			    (size_t)(u->nseen - i - 1) * sizeof(u->seen[0]));
			u->nseen--;
			if (match)
				return;
			i--;
		}
		ck_assert_msg(harness_now_ms() < deadline, "user %s: no "
		    "PRESENCE {id %lld, %s} within %d ms", u->name, id, state,
		    ms);
		ck_assert_msg(pump(u, 20) || u->c == NULL,
		    "user %s: connection lost: %s", u->name,
		    chatc_error(u->c));
	}
}

static void
wait_presence(struct user *u, long long id, const char *state)
{
	wait_presence_ms(u, id, state, PUSH_MS);
}

/* --- users and hosts ---------------------------------------------------- */

/* The host whose presence table holds uid, or -1; never two. */
static int
host_of(long long uid)
{
	struct presence_entry e;
	int i, host = -1;

	for (i = 0; i < NHOSTS; i++) {
		if (dead[i] || pres[i] == NULL ||
		    presence_lookup(pres[i], (uint32_t)uid, &e) != PRESENCE_OK)
			continue;
		ck_assert_msg(host == -1, "user %lld is online on hosts %d "
		    "and %d at once", uid, host, i);
		host = i;
	}
	return host;
}

static long long
register_user(const char *tag, char *name, size_t namelen, int where)
{
	struct chatc *c = xconnect(where);
	cJSON *r;
	long long id;

	unique_name(name, namelen, tag);
	r = chatc_register(c, name, PASSWORD, REQ_MS);
	ck_assert_msg(r != NULL, "register %s: %s", name, chatc_error(c));
	ck_assert_msg(jnum(r, "msgid") == MSG_REG_ACK && chatc_errno(r) == 0,
	    "register %s: %s", name, jtext(r));
	id = jnum(r, "id");
	cJSON_Delete(r);
	harness_close(c);
	return id;
}

static void
user_new(struct user *u, const char *tag)
{
	memset(u, 0, sizeof(*u));
	u->id = register_user(tag, u->name, sizeof(u->name), VIA_NGINX);
	u->host = -1;
}

/* Check the offline messages of a LOGIN_ACK off the ledger. */
static void
take_offline(struct user *u, const cJSON *ack)
{
	const cJSON *arr, *it, *tus;
	double last = 0;
	cJSON *f;

	arr = cJSON_GetObjectItemCaseSensitive(ack, "offlinemsg");
	if (arr == NULL)
		return;
	ck_assert_msg(cJSON_IsArray(arr), "offlinemsg is not an array");
	cJSON_ArrayForEach(it, arr) {
		f = jparse_item(it);
		/* In the order the servers accepted them (one clock here). */
		tus = cJSON_GetObjectItemCaseSensitive(f, "tus");
		ck_assert_msg(cJSON_IsNumber(tus) && tus->valuedouble >= last,
		    "user %s: offline message %s after one of tus %.0f",
		    u->name, jtext(f), last);
		last = tus->valuedouble;
		frame(u, f);
		cJSON_Delete(f);
	}
}

/* Log u in on a host (or through nginx); returns the LOGIN_ACK. */
static cJSON *
login_at(struct user *u, int where)
{
	struct chatc *c;
	cJSON *r;

	ck_assert_msg(u->c == NULL, "user %s is already online", u->name);
	c = xconnect(where);
	r = chatc_login(c, u->id, PASSWORD, REQ_MS);
	ck_assert_msg(r != NULL, "login %s: %s", u->name, chatc_error(c));
	ck_assert_msg(jnum(r, "msgid") == MSG_LOGIN_ACK && chatc_errno(r) ==
	    0, "login %s on %s %d: %s", u->name, where == VIA_NGINX ?
	    "nginx" : "host", where, jtext(r));
	u->c = c;
	u->host = host_of(u->id);
	ck_assert_msg(u->host >= 0, "user %s: in no presence table after "
	    "LOGIN_ACK", u->name);
	ck_assert_msg(where == VIA_NGINX || u->host == where, "user %s "
	    "logged in on host %d but is in the table of host %d", u->name,
	    where, u->host);
	take_offline(u, r);
	return r;
}

static void
online_at(struct user *u, int where)
{
	cJSON_Delete(login_at(u, where));
}

/* A login of u on a new connection that must fail with err. */
static void
login_refused(struct user *u, int where, int err)
{
	struct chatc *c = xconnect(where);
	cJSON *r;

	r = chatc_login(c, u->id, PASSWORD, REQ_MS);
	ck_assert_msg(r != NULL, "login %s: %s", u->name, chatc_error(c));
	ck_assert_msg(jnum(r, "msgid") == MSG_LOGIN_ACK && chatc_errno(r) ==
	    err, "login of %s on %s %d: expected errno %d, got %s", u->name,
	    where == VIA_NGINX ? "nginx" : "host", where, err, jtext(r));
	ck_assert_msg(*chatc_errmsg(r) != '\0', "no errmsg: %s", jtext(r));
	cJSON_Delete(r);
	harness_close(c);
}

/* LOGINOUT, ACK, close; with `released`, also wait until Redis forgot the
 * session (claim deleted, channel unsubscribed). */
static void
logout(struct user *u, int released)
{
	(void)pump(u, 0);
	ack_ok_free(u->c, chatc_logout(u->c, REQ_MS), MSG_LOGINOUT);
	(void)pump(u, 0);
	harness_close(u->c);
	u->c = NULL;
	u->host = -1;
	u->nseen = 0;
	if (released)
		wait_released(u->id);
}

/* The connection drops without LOGINOUT. */
static void
drop(struct user *u)
{
	(void)pump(u, 0);
	harness_close(u->c);
	u->c = NULL;
	u->host = -1;
}

static void
begin(void)
{
	char err[256];
	int i;

	ck_assert_msg(harness_ok, "the servers did not start (see stderr)");
	nledger = nreceived = 0;
	memset(pipe_ack, 0, sizeof(pipe_ack));
	for (i = 0; i < NHOSTS; i++) {
		pres[i] = presence_open(H.chatd[i].shm_name, 1, err,
		    sizeof(err));
		ck_assert_msg(pres[i] != NULL, "presence_open %s: %s",
		    H.chatd[i].shm_name, err);
	}
}

/* --- chat ----------------------------------------------------------------- */

static int msg_seq;

/* A text no other message of the run has. */
static void
msg_text(char *buf, size_t len, const char *tag)
{
	(void)snprintf(buf, len, "%s-%ld-%d", tag, (long)getpid(),
	    msg_seq++);
}

/* ONE_CHAT from -> to; the ACK's status must be `status` (NULL: either
 * "delivered" or "stored", returned as 'd' / 's'). */
static int
chat(struct user *from, struct user *to, const char *status)
{
	char text[96];
	cJSON *r, *a;
	const char *st;
	int ret;

	msg_text(text, sizeof(text), "m");
	ledger_add(from->id, to->id, MSG_ONE_CHAT, text);
	r = cJSON_CreateObject();
	cJSON_AddNumberToObject(r, "msgid", MSG_ONE_CHAT);
	cJSON_AddNumberToObject(r, "toid", (double)to->id);
	cJSON_AddStringToObject(r, "msg", text);
	a = ack_ok(from->c, request(from->c, r), MSG_ONE_CHAT);
	st = jstr(a, "status");
	ck_assert_msg(strcmp(st, "delivered") == 0 ||
	    strcmp(st, "stored") == 0, "status %s", st);
	ck_assert_msg(status == NULL || strcmp(st, status) == 0,
	    "%s (host %d) -> %s (host %d): ACK status \"%s\", expected "
	    "\"%s\"", from->name, from->host, to->name, to->host, st, status);
	ret = st[0];
	cJSON_Delete(a);
	return ret;
}

/* GROUP_CHAT from `from` to gid whose other members are to[0..n). */
static int
gchat(struct user *from, long long gid, struct user **to, int n,
    const char *status)
{
	char text[96];
	cJSON *r, *a;
	const char *st;
	int i, ret;

	msg_text(text, sizeof(text), "g");
	for (i = 0; i < n; i++)
		ledger_add(from->id, to[i]->id, MSG_GROUP_CHAT, text);
	r = cJSON_CreateObject();
	cJSON_AddNumberToObject(r, "msgid", MSG_GROUP_CHAT);
	cJSON_AddNumberToObject(r, "groupid", (double)gid);
	cJSON_AddStringToObject(r, "msg", text);
	a = ack_ok(from->c, request(from->c, r), MSG_GROUP_CHAT);
	st = jstr(a, "status");
	ck_assert_msg(status == NULL || strcmp(st, status) == 0,
	    "group chat of %s (host %d): ACK status \"%s\", expected \"%s\"",
	    from->name, from->host, st, status);
	ret = st[0];
	cJSON_Delete(a);
	return ret;
}

static long long
group_new(struct user *u)
{
	char name[PROTO_NAME_MAX + 1];
	cJSON *a;
	long long gid;

	unique_name(name, sizeof(name), "grp");
	a = ack_ok(u->c, chatc_create_group(u->c, name, "cluster test",
	    REQ_MS), MSG_CREATE_GROUP);
	gid = jnum(a, "groupid");
	cJSON_Delete(a);
	return gid;
}

static void
join(struct user *u, long long gid)
{
	ack_ok_free(u->c, chatc_add_group(u->c, gid, REQ_MS), MSG_ADD_GROUP);
}

/* FRIEND_LIST of u: the state of friend id ("" when not a friend). */
static const char *
friend_state(struct user *u, long long id)
{
	static char state[16];
	const cJSON *arr, *f;
	cJSON *r;

	r = ack_ok(u->c, chatc_friend_list(u->c, REQ_MS), MSG_FRIEND_LIST);
	arr = jarr(r, "friends");
	state[0] = '\0';
	cJSON_ArrayForEach(f, arr)
		if (jnum(f, "id") == id)
			(void)snprintf(state, sizeof(state), "%s",
			    jstr(f, "state"));
	cJSON_Delete(r);
	return state;
}

/* The state of id in a LOGIN_ACK's classic "friends" strings. */
static const char *
ack_friend_state(const cJSON *ack, long long id)
{
	static char state[16];
	const cJSON *it;
	cJSON *f;

	state[0] = '\0';
	cJSON_ArrayForEach(it, jarr(ack, "friends")) {
		f = jparse_item(it);
		if (jnum(f, "id") == id)
			(void)snprintf(state, sizeof(state), "%s",
			    jstr(f, "state"));
		cJSON_Delete(f);
	}
	return state;
}

/* --- tests: chat across hosts ------------------------------------------- */

START_TEST(test_spread_and_chat)
{
	struct user u[6], *by_host[NHOSTS][6], *all[6], *x, *y, *z, *w;
	struct user *to[4];
	int count[NHOSTS] = { 0 }, i, j, k, hosts = 0;
	const cJSON *it;
	long long gid;
	cJSON *r;

	begin();
	/* Held connections through nginx, one after the other: least_conn
	 * puts them on every host. */
	for (i = 0; i < 6; i++) {
		user_new(&u[i], "spread");
		online_at(&u[i], VIA_NGINX);
		by_host[u[i].host][count[u[i].host]++] = &u[i];
		all[i] = &u[i];
	}
	for (i = 0; i < NHOSTS; i++)
		hosts += count[i] > 0;
	ck_assert_msg(hosts == NHOSTS, "6 clients through nginx landed on "
	    "%d host(s) (%d, %d, %d per host)", hosts, count[0], count[1],
	    count[2]);
	x = by_host[0][0];
	y = by_host[1][0];
	z = by_host[2][0];

	/* 1:1 both ways between every pair of hosts: at once after the
	 * logins (stored or delivered, received either way), then again
	 * once every recipient has received through Redis (delivered). */
	for (k = 0; k < 2; k++) {
		for (i = 0; i < NHOSTS; i++)
			for (j = 0; j < NHOSTS; j++)
				if (i != j)
					(void)chat(by_host[i][0],
					    by_host[j][0], k == 0 ? NULL :
					    "delivered");
		await(all, 6, PUSH_MS);
	}

	/* A group with a member on every host, and two on x's host. */
	w = count[0] > 1 ? by_host[0][1] : NULL;
	gid = group_new(x);
	join(y, gid);
	join(z, gid);
	if (w != NULL)
		join(w, gid);
	to[0] = y;
	to[1] = z;
	to[2] = w;
	(void)gchat(x, gid, to, w != NULL ? 3 : 2, "delivered");
	to[0] = x;
	to[1] = z;
	(void)gchat(y, gid, to, w != NULL ? 3 : 2, "delivered");
	to[0] = x;
	to[1] = y;
	(void)gchat(z, gid, to, w != NULL ? 3 : 2, "delivered");
	await(all, 6, PUSH_MS);

	/* GROUP_MEMBERS on one host knows who is online on the others. */
	r = ack_ok(z->c, chatc_group_members(z->c, gid, REQ_MS),
	    MSG_GROUP_MEMBERS);
	k = 0;
	cJSON_ArrayForEach(it, jarr(r, "users")) {
		ck_assert_msg(strcmp(jstr(it, "state"), "online") == 0,
		    "member %lld shows %s", jnum(it, "id"),
		    jstr(it, "state"));
		k++;
	}
	ck_assert_int_eq(k, w != NULL ? 4 : 3);
	cJSON_Delete(r);

	quiet(all, 6);		/* senders got no copy of their own */
	ledger_check();
}
END_TEST

START_TEST(test_offline_nowhere)
{
	struct user a, b, c, *all[3] = { &a, &b, &c };
	int i, other;

	begin();
	user_new(&a, "a");
	user_new(&b, "b");	/* never logged in */
	user_new(&c, "c");	/* logs in elsewhere, then out */
	online_at(&a, VIA_NGINX);
	for (i = 0; i < 3; i++)
		(void)chat(&a, &b, "stored");

	other = (a.host + 1) % NHOSTS;
	online_at(&c, other);
	(void)chat(&a, &c, NULL);	/* c may not be subscribed yet */
	await(all, 3, PUSH_MS);
	logout(&c, 1);
	for (i = 0; i < 2; i++)
		(void)chat(&a, &c, "stored");

	/* Delivered at the next login, through nginx, in order. */
	online_at(&b, VIA_NGINX);
	online_at(&c, VIA_NGINX);
	await(all, 3, PUSH_MS);
	quiet(all, 3);
	ledger_check();
}
END_TEST

/*
 * LOGINOUT in the middle of a flood from another host.  a, on host 0,
 * writes XLF_N chats (no seq) to b, on host 1, one at a time, from a
 * child; b reads XLF_READ and logs out.  What Redis had sent towards
 * b's host before its channel was unsubscribed is stored there; what a's
 * host publishes after finds no subscriber and is stored by a's host.
 * Both stores race; at b's next login (on host 2) everything must arrive
 * once and in the order a sent it (the frames' "tus").
 */
#define XLF_N		250
#define XLF_READ	20
#define XLF_ROUNDS	3
#define XLF_GAP_US	20

static void
logout_during_flood_round(void)
{
	struct user a, b, *bs[1] = { &b };
	char text[96], *lines[XLF_N];
	size_t lens[XLF_N];
	long long deadline;
	cJSON *r;
	pid_t pid;
	int i, st;

	user_new(&a, "xa");
	user_new(&b, "xb");
	online_at(&a, 0);
	online_at(&b, 1);
	for (i = 0; i < XLF_N; i++) {
		msg_text(text, sizeof(text), "xlf");
		ledger_add(a.id, b.id, MSG_ONE_CHAT, text);
		r = chatc_build_one_chat(b.id, text);
		ck_assert(r != NULL);
		lines[i] = chatc_line(r, &lens[i]);
		ck_assert(lines[i] != NULL);
		cJSON_Delete(r);
	}
	pid = fork();
	ck_assert(pid != -1);
	if (pid == 0) {
		for (i = 0; i < XLF_N; i++) {
			if (chatc_send_raw(a.c, lines[i], lens[i]) != 0)
				_exit(1);
			(void)usleep(XLF_GAP_US);
		}
		_exit(0);
	}
	for (i = 0; i < XLF_N; i++)
		free(lines[i]);
	deadline = harness_now_ms() + PUSH_MS;
	while (XLF_N - ledger_missing(b.id) < XLF_READ) {
		ck_assert_msg(harness_now_ms() < deadline, "b got %d of the "
		    "first %d chats", XLF_N - ledger_missing(b.id), XLF_READ);
		(void)pump(&b, 1);
	}
	logout(&b, 1);
	ck_assert(waitpid(pid, &st, 0) == pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the sender "
	    "failed (wait status %#x)", (unsigned)st);
	fprintf(stderr, "it_cluster: logout during a flood: %d of %d chats "
	    "in the session\n", XLF_N - ledger_missing(b.id), XLF_N);
	online_at(&b, 2);
	await(bs, 1, PUSH_MS);
	quiet(bs, 1);
	ledger_in_order(&a, &b);
	logout(&a, 1);
	logout(&b, 1);
}

START_TEST(test_logout_during_flood)
{
	int round;

	begin();
	for (round = 0; round < XLF_ROUNDS; round++)
		logout_during_flood_round();
	ledger_check();
}
END_TEST

/* --- tests: duplicate login --------------------------------------------- */

static cJSON *
login_req(long long id, const char *seq)
{
	cJSON *r = chatc_build_login(id, PASSWORD);

	cJSON_AddStringToObject(r, "seq", seq);
	return r;
}

START_TEST(test_duplicate_login)
{
	struct user a, b;
	struct chatc *c[2];
	cJSON *r[2], *req;
	char val[256];
	int round, i, h[2], win, e[2];

	begin();
	user_new(&a, "a");
	online_at(&a, 0);
	ck_assert_msg(claim_of(a.id, val, sizeof(val)) == 0 &&
	    strstr(val, "node0|") == val, "claim of a on host 0 is \"%s\"",
	    val);
	for (i = 0; i < NHOSTS; i++)
		login_refused(&a, i, CERR_ONLINE);
	login_refused(&a, VIA_NGINX, CERR_ONLINE);
	/* The refused logins did not disturb the session. */
	ck_assert_int_eq(host_of(a.id), 0);
	ack_ok_free(a.c, chatc_ping(a.c, REQ_MS), MSG_PING);
	logout(&a, 1);

	/* Two logins of one user at once on two hosts: one wins. */
	user_new(&b, "race");
	for (round = 0; round < 20; round++) {
		h[0] = round % NHOSTS;
		h[1] = (round + 1) % NHOSTS;
		c[0] = xconnect(h[0]);
		c[1] = xconnect(h[1]);
		for (i = 0; i < 2; i++) {
			/* Alternate who sends first. */
			int k = (round & 1) ? 1 - i : i;

			req = login_req(b.id, "race");
			ck_assert_int_eq(chatc_send(c[k], req), 0);
			cJSON_Delete(req);
		}
		for (i = 0; i < 2; i++) {
			r[i] = chatc_recv(c[i], REQ_MS);
			ck_assert_msg(r[i] != NULL, "round %d: no LOGIN_ACK "
			    "on host %d: %s", round, h[i],
			    chatc_error(c[i]));
			ck_assert_msg(jnum(r[i], "msgid") == MSG_LOGIN_ACK,
			    "round %d: %s", round, jtext(r[i]));
			e[i] = chatc_errno(r[i]);
			cJSON_Delete(r[i]);
		}
		ck_assert_msg((e[0] == 0 && e[1] == CERR_ONLINE) ||
		    (e[0] == CERR_ONLINE && e[1] == 0), "round %d: racing "
		    "logins on hosts %d and %d answered errno %d and %d",
		    round, h[0], h[1], e[0], e[1]);
		win = e[0] == 0 ? 0 : 1;
		ck_assert_msg(host_of(b.id) == h[win], "round %d: winner on "
		    "host %d, presence says %d", round, h[win],
		    host_of(b.id));
		b.c = c[win];
		b.host = h[win];
		harness_close(c[1 - win]);
		logout(&b, 1);
	}
}
END_TEST

/* SET uid's claim to val for 60 s (what a session would have left). */
static void
plant_claim(long long uid, const char *val)
{
	char key[256], type, out[64];
	const char *argv[5];
	long long num;

	claim_key(uid, key, sizeof(key));
	argv[0] = "SET";
	argv[1] = key;
	argv[2] = val;
	argv[3] = "EX";
	argv[4] = "60";
	ck_assert(redis_cmd(&type, out, sizeof(out), &num, 5, argv) == 0 &&
	    strcmp(out, "OK") == 0);
}

/*
 * A claim left by an ended session of this host (its release lost, or
 * still in flight on another worker's Redis connection) does not keep the
 * user out of this host; one held by another host does.
 */
START_TEST(test_stale_claim_of_this_host)
{
	struct user a, b;
	char val[256];

	begin();
	user_new(&a, "a");
	user_new(&b, "b");
	plant_claim(a.id, "node0|00000000deadbeef");
	online_at(&a, 0);
	ck_assert_msg(claim_of(a.id, val, sizeof(val)) == 0 &&
	    strstr(val, "node0|") == val &&
	    strcmp(val, "node0|00000000deadbeef") != 0, "claim of a after "
	    "its login on host 0 is \"%s\"", val);
	logout(&a, 1);

	plant_claim(b.id, "node0|00000000deadbeef");
	login_refused(&b, 1, CERR_ONLINE);
	ck_assert_msg(claim_of(b.id, val, sizeof(val)) == 0 &&
	    strcmp(val, "node0|00000000deadbeef") == 0, "host 1 changed host "
	    "0's claim of b to \"%s\"", val);
}
END_TEST

/*
 * LOGINOUT's ACK comes once the claim is gone from Redis, so a LOGIN on
 * another host right after it succeeds.  Writes are paused in Redis for
 * a while so that the release cannot overtake the ACK by chance.
 */
#define WRITE_PAUSE_MS	"400"
START_TEST(test_logout_ack_after_release)
{
	struct user a;
	char val[256];
	long long t0, took;

	begin();
	user_new(&a, "a");
	online_at(&a, 0);
	ck_assert(harness_redis_pause_writes(&H, WRITE_PAUSE_MS) == 0);
	t0 = harness_now_ms();
	ack_ok_free(a.c, chatc_logout(a.c, REQ_MS), MSG_LOGINOUT);
	took = harness_now_ms() - t0;
	ck_assert_msg(claim_of(a.id, val, sizeof(val)) == 0 && val[0] == '\0',
	    "claim \"%s\" still there when LOGINOUT was ACKed (after %lld "
	    "ms; Redis paused writes for %s ms)", val, took, WRITE_PAUSE_MS);
	harness_close(a.c);
	a.c = NULL;
	a.host = -1;
	online_at(&a, 1);
	ck_assert_int_eq(host_of(a.id), 1);
	logout(&a, 1);
}
END_TEST

/* --- tests: friends and PRESENCE ----------------------------------------- */

START_TEST(test_friends_presence)
{
	struct user u[4], *a = &u[0], *b = &u[1], *c = &u[2], *d = &u[3];
	struct user *all[4] = { a, b, c, d };
	cJSON *ack;

	begin();
	user_new(a, "a");
	user_new(b, "b");
	user_new(c, "c");
	user_new(d, "d");	/* online, nobody's friend */
	online_at(a, 0);
	online_at(b, 1);
	online_at(d, 2);

	ack_ok_free(a->c, chatc_add_friend(a->c, b->id, REQ_MS),
	    MSG_ADD_FRIEND);
	ack_ok_free(a->c, chatc_add_friend(a->c, c->id, REQ_MS),
	    MSG_ADD_FRIEND);
	ck_assert_str_eq(friend_state(a, b->id), "online");
	ck_assert_str_eq(friend_state(a, c->id), "offline");
	ck_assert_str_eq(friend_state(b, a->id), "online");

	/* c logs in on host 2: its LOGIN_ACK sees a (host 0) online, and a
	 * hears of it. */
	ack = login_at(c, 2);
	ck_assert_str_eq(ack_friend_state(ack, a->id), "online");
	cJSON_Delete(ack);
	wait_presence(a, c->id, "online");
	ck_assert_str_eq(friend_state(a, c->id), "online");

	/* LOGINOUT on host 1, seen on host 0. */
	logout(b, 0);
	wait_presence(a, b->id, "offline");
	ck_assert_str_eq(friend_state(a, b->id), "offline");

	/* A dropped connection on host 2 too. */
	drop(c);
	wait_presence(a, c->id, "offline");
	ck_assert_str_eq(friend_state(a, c->id), "offline");

	/* b comes back on another host; both sides see it. */
	ack = login_at(b, 2);
	ck_assert_str_eq(ack_friend_state(ack, a->id), "online");
	cJSON_Delete(ack);
	wait_presence(a, b->id, "online");
	ck_assert_str_eq(friend_state(b, a->id), "online");
	ck_assert_str_eq(friend_state(a, b->id), "online");

	/* a leaves: b (host 2) hears it. */
	logout(a, 0);
	wait_presence(b, a->id, "offline");
	ck_assert_str_eq(friend_state(b, a->id), "offline");
	quiet(all, 4);		/* d, nobody's friend, heard nothing */
}
END_TEST

/*
 * u was told `told` about friend id (in its LOGIN_ACK); wait (bounded)
 * until that, with the PRESENCE notices since applied in order, says
 * `want`, and nothing contradicts it for QUIET_MS after.
 */
static void
view_becomes(struct user *u, long long id, const char *told,
    const char *want)
{
	long long deadline = harness_now_ms() + PUSH_MS, quiet_end = 0;
	char view[8];
	int i;

	(void)snprintf(view, sizeof(view), "%s", told);
	for (;;) {
		for (i = 0; i < u->nseen; i++)
			if (u->seen[i].id == id) {
				(void)snprintf(view, sizeof(view), "%s",
				    u->seen[i].state);
				memmove(&u->seen[i], &u->seen[i + 1],
				    (size_t)(u->nseen - i - 1) *
				    sizeof(u->seen[0]));
				u->nseen--;
				i--;
			}
		if (strcmp(view, want) != 0)
			quiet_end = 0;
		else if (quiet_end == 0)
			quiet_end = harness_now_ms() + QUIET_MS;
		else if (harness_now_ms() >= quiet_end)
			return;
		ck_assert_msg(harness_now_ms() < deadline || quiet_end != 0,
		    "user %s: friend %lld is %s to it (LOGIN_ACK said %s), "
		    "not %s, after %d ms", u->name, id, view, told, want,
		    PUSH_MS);
		ck_assert_msg(pump(u, 20) || u->c == NULL,
		    "user %s: connection lost: %s", u->name,
		    chatc_error(u->c));
	}
}

/* chatctl stats `name`, summed over hosts first..last. */
static long long
stat_sum(const char *name, int first, int last)
{
	char err[256];
	long long sum = 0, n;
	int i;

	for (i = first; i <= last; i++) {
		ck_assert_msg(harness_stats_sum(&H, i, name, &n, NULL, err,
		    sizeof(err)) == 0, "stats of host %d: %s", i, err);
		sum += n;
	}
	return sum;
}

/* chatctl stats presence_settled, hosts 0 and 1. */
static long long
settled_sum(void)
{
	return stat_sum("presence_settled", 0, 1);
}

/* Send LOGIN for u at a host; the LOGIN_ACK is read by login_ack. */
static void
login_send(struct user *u, int where)
{
	cJSON *req = login_req(u->id, u->name);

	ck_assert_msg(u->c == NULL, "user %s is already online", u->name);
	u->c = xconnect(where);
	u->host = where;
	ck_assert_int_eq(chatc_send(u->c, req), 0);
	cJSON_Delete(req);
}

/* u's LOGIN_ACK, after login_send; returns what it says of friend id. */
static const char *
login_ack(struct user *u, long long id)
{
	static char told[16];
	cJSON *r;

	r = chatc_wait_msgid(u->c, MSG_LOGIN_ACK, REQ_MS);
	ck_assert_msg(r != NULL && chatc_errno(r) == 0, "login %s: %s %s",
	    u->name, r != NULL ? jtext(r) : "", chatc_error(u->c));
	ck_assert_int_eq(host_of(u->id), u->host);
	(void)snprintf(told, sizeof(told), "%s", ack_friend_state(r, id));
	cJSON_Delete(r);
	return told;
}

/*
 * Two friends log in at once on two hosts while Redis holds writes: each
 * login reads the other's state before either claim exists, so both
 * LOGIN_ACKs say offline and neither "online" notice finds the other.
 * Once the sessions are reachable, each must learn that the other is
 * online.
 */
START_TEST(test_presence_logins_at_once)
{
	struct user a, b;
	char told_a[16], told_b[16];
	long long settled0;

	begin();
	settled0 = settled_sum();
	user_new(&a, "a");
	user_new(&b, "b");
	online_at(&a, 0);
	ack_ok_free(a.c, chatc_add_friend(a.c, b.id, REQ_MS), MSG_ADD_FRIEND);
	logout(&a, 1);

	ck_assert(harness_redis_pause_writes(&H, "500") == 0);
	login_send(&a, 0);
	login_send(&b, 1);
	(void)snprintf(told_a, sizeof(told_a), "%s", login_ack(&a, b.id));
	(void)snprintf(told_b, sizeof(told_b), "%s", login_ack(&b, a.id));
	view_becomes(&a, b.id, told_a, "online");
	view_becomes(&b, a.id, told_b, "online");
	/* At least one side read the other online on its second reading
	 * and corrected its client (chatctl stats presence_settled). */
	ck_assert_msg(settled_sum() > settled0, "presence_settled did not "
	    "move on hosts 0 and 1 (%lld)", settled0);
	logout(&a, 1);
	logout(&b, 1);
}
END_TEST

/*
 * A friend logs out on another host while a login waits for its claim:
 * the LOGIN_ACK said online, and the friend's "offline" notice went by
 * a reading that did not find the new session.  It must end up offline.
 */
START_TEST(test_presence_logout_during_login)
{
	struct user a, b;
	char told[16];
	cJSON *req, *r;
	long long deadline;

	begin();
	user_new(&a, "a");
	user_new(&b, "b");
	online_at(&b, 1);
	ack_ok_free(b.c, chatc_add_friend(b.c, a.id, REQ_MS), MSG_ADD_FRIEND);

	ck_assert(harness_redis_pause_writes(&H, "500") == 0);
	login_send(&a, 0);
	deadline = harness_now_ms() + REQ_MS;
	while (host_of(a.id) != 0 && harness_now_ms() < deadline)
		harness_sleep_ms(1);
	ck_assert_msg(host_of(a.id) == 0, "a's login did not reach host 0's "
	    "presence table");
	req = chatc_build(MSG_LOGINOUT);
	cJSON_AddStringToObject(req, "seq", "out");
	ck_assert_int_eq(chatc_send(b.c, req), 0);
	cJSON_Delete(req);
	(void)snprintf(told, sizeof(told), "%s", login_ack(&a, b.id));
	ck_assert_str_eq(told, "online");
	view_becomes(&a, b.id, told, "offline");
	r = chatc_wait_msgid(b.c, MSG_ACK, REQ_MS);
	ck_assert_msg(r != NULL && chatc_errno(r) == 0, "b's LOGINOUT: %s",
	    chatc_error(b.c));
	cJSON_Delete(r);
	harness_close(b.c);
	b.c = NULL;
	logout(&a, 1);
}
END_TEST

/*
 * A second login of a user online on host 1 is sent to host 0 while Redis
 * holds writes: it holds host 0's presence entry until its claim is
 * refused.  A message stored meanwhile on host 0 for the user told that
 * login to pull it, not the session on host 1, which used to wait for its
 * next login to get it.  The refused login now sends the pull hint on.
 */
START_TEST(test_message_during_refused_login)
{
	struct user a, s, *all[2] = { &a, &s };
	struct presence_entry e;
	struct chatc *dup;
	cJSON *req, *r;
	long long deadline;

	begin();
	user_new(&a, "a");
	user_new(&s, "s");
	online_at(&a, 1);
	online_at(&s, 0);
	ck_assert(harness_redis_pause_writes(&H, "1500") == 0);
	dup = xconnect(0);
	req = login_req(a.id, a.name);
	ck_assert_int_eq(chatc_send(dup, req), 0);
	cJSON_Delete(req);
	deadline = harness_now_ms() + 1000;
	while (presence_lookup(pres[0], (uint32_t)a.id, &e) != PRESENCE_OK &&
	    harness_now_ms() < deadline)
		harness_sleep_ms(1);
	ck_assert_msg(presence_lookup(pres[0], (uint32_t)a.id, &e) ==
	    PRESENCE_OK, "the second login did not reach host 0's presence "
	    "table while Redis held its claim");
	(void)chat(&s, &a, NULL);	/* stored, by host 0 either way */
	r = chatc_wait_msgid(dup, MSG_LOGIN_ACK, REQ_MS);
	ck_assert_msg(r != NULL && chatc_errno(r) == CERR_ONLINE, "second "
	    "login: %s %s", r != NULL ? jtext(r) : "", chatc_error(dup));
	cJSON_Delete(r);
	harness_close(dup);
	await(all, 2, SETTLE_MS);
	ledger_check();
}
END_TEST

/* --- tests: group cache -------------------------------------------------- */

START_TEST(test_group_cache_cross_host)
{
	struct user u[4], *a = &u[0], *b = &u[1], *c = &u[2], *e = &u[3];
	struct user *all[4] = { a, b, c, e }, *to[3];
	long long gid;

	begin();
	user_new(a, "a");
	user_new(b, "b");
	user_new(c, "c");
	user_new(e, "e");
	online_at(a, 0);
	online_at(b, 1);
	online_at(c, 2);
	online_at(e, 0);
	gid = group_new(a);
	join(b, gid);
	/* b's worker on host 1 loads the group into its cache. */
	to[0] = a;
	(void)gchat(b, gid, to, 1, "delivered");
	(void)gchat(b, gid, to, 1, "delivered");
	await(all, 4, PUSH_MS);

	/* c joins on host 2: the next message from host 1 reaches c (the
	 * join's ACK waited until Redis passed the change on). */
	join(c, gid);
	to[1] = c;
	(void)gchat(b, gid, to, 2, "delivered");
	await(all, 4, PUSH_MS);

	/* e joins on host 0, c quits on host 2. */
	join(e, gid);
	ack_ok_free(c->c, chatc_quit_group(c->c, gid, REQ_MS),
	    MSG_QUIT_GROUP);
	to[1] = e;
	(void)gchat(b, gid, to, 2, "delivered");
	await(all, 4, PUSH_MS);
	quiet(all, 4);		/* c got nothing after quitting */
	ledger_check();
}
END_TEST

/* --- tests: a host dies ---------------------------------------------------- */

/* SIGKILL host i's master and every worker at once, and wait until they
 * are gone (their sockets closed by the kernel). */
static void
kill_host(int i)
{
	pid_t w[32], master = H.chatd[i].pid;
	long long deadline;
	int n, k, left;

	n = harness_chatd_workers(&H, i, w, 32);
	ck_assert_msg(n == NWORKERS, "host %d has %d workers", i, n);
	(void)kill(-master, SIGKILL);
	(void)kill(master, SIGKILL);
	for (k = 0; k < n; k++)
		(void)kill(w[k], SIGKILL);
	deadline = harness_now_ms() + SETTLE_MS;
	do {
		left = alive(master);
		for (k = 0; k < n; k++)
			left += alive(w[k]);
		if (left == 0)
			break;
		harness_sleep_ms(10);
	} while (harness_now_ms() < deadline);
	ck_assert_msg(left == 0, "host %d: %d process(es) still alive after "
	    "SIGKILL", i, left);
	dead[i] = 1;
}

/*
 * One worker SIGKILLed: its users' friends, on another worker of the same
 * host and on another host, are told they are offline (the master hands
 * the dead worker's sessions to a live worker, which sends the notices as
 * a logout would); they used to be shown online until their next login.
 */
#define KW_TRIES	40	/* logins until one lands on the other worker */

START_TEST(test_worker_killed_friends_told)
{
	struct user v, f0, f1, *fs[2] = { &f0, &f1 };
	struct presence_entry ev, ef;
	int i;

	begin();
	user_new(&v, "kwv");
	user_new(&f0, "kwf0");
	user_new(&f1, "kwf1");
	online_at(&v, 1);
	ck_assert_int_eq(presence_lookup(pres[1], (uint32_t)v.id, &ev),
	    PRESENCE_OK);
	/* f1 on host 1, on the worker that survives. */
	for (i = 0; i < KW_TRIES; i++) {
		online_at(&f1, 1);
		ck_assert_int_eq(presence_lookup(pres[1], (uint32_t)f1.id,
		    &ef), PRESENCE_OK);
		if (ef.slot != ev.slot)
			break;
		logout(&f1, 1);
	}
	ck_assert_msg(i < KW_TRIES, "%d logins on host 1 all landed on "
	    "worker %u", KW_TRIES, ev.slot);
	online_at(&f0, 0);
	ack_ok_free(v.c, chatc_add_friend(v.c, f0.id, REQ_MS), MSG_ADD_FRIEND);
	ack_ok_free(v.c, chatc_add_friend(v.c, f1.id, REQ_MS), MSG_ADD_FRIEND);
	ck_assert_str_eq(friend_state(&f0, v.id), "online");
	ck_assert_str_eq(friend_state(&f1, v.id), "online");

	ck_assert_int_eq(kill(ev.pid, SIGKILL), 0);
	wait_presence(&f1, v.id, "offline");
	wait_presence(&f0, v.id, "offline");
	harness_close(v.c);
	v.c = NULL;
	quiet(fs, 2);
	ck_assert_str_eq(friend_state(&f0, v.id), "offline");
	logout(&f0, 1);
	logout(&f1, 1);
}
END_TEST

/* The users of the host tests: a online on host 0, k and k2 on host 2, a
 * a friend of k (and told it is online); one chat a -> k. */
static void
friends_on_host2(struct user *a, struct user *k, struct user *k2)
{
	online_at(a, 0);
	online_at(k, 2);
	online_at(k2, 2);
	ack_ok_free(a->c, chatc_add_friend(a->c, k->id, REQ_MS),
	    MSG_ADD_FRIEND);
	ck_assert_str_eq(friend_state(a, k->id), "online");
	(void)chat(a, k, NULL);
}

START_TEST(test_host_killed)
{
	struct user u[6], *a = &u[0], *b = &u[1], *k = &u[2], *k2 = &u[3];
	struct user *n1 = &u[4], *n2 = &u[5];
	struct user *all[6] = { a, b, k, k2, n1, n2 };
	long long t0, offline_ms = -1;
	char val[256];
	cJSON *ack;
	int i;

	begin();
	for (i = 0; i < 6; i++)
		user_new(&u[i], "kill");
	online_at(b, 1);
	/* Right after the logins: stored or delivered, received. */
	friends_on_host2(a, k, k2);
	(void)chat(k2, b, NULL);
	(void)chat(b, k2, NULL);
	await(all, 6, PUSH_MS);

	kill_host(2);
	t0 = harness_now_ms();
	/*
	 * Redis drops the dead workers' subscriptions when it reads their
	 * closed sockets, a moment later; until then, with the claims still
	 * there, a PUBLISH counts a receiver, the sender's ACK says
	 * "delivered" and the message dies with the host.  No server can
	 * close that window (pub/sub has no acknowledgement), so the test
	 * waits it out before it expects messages to be stored.
	 */
	wait_unsubscribed(k->id);
	wait_unsubscribed(k2->id);
	k->c = NULL;		/* their connections died with the host */
	k2->c = NULL;

	/* At once: the dead host's claims still hold (for at most the ttl)
	 * but nobody is subscribed, so messages are stored. */
	(void)chat(a, k, "stored");
	(void)chat(b, k2, "stored");
	if (harness_now_ms() - t0 < 1000)
		login_refused(k, 0, CERR_ONLINE);

	/* Offline everywhere within the ttl. */
	for (;;) {
		if (strcmp(friend_state(a, k->id), "offline") == 0) {
			offline_ms = harness_now_ms() - t0;
			break;
		}
		if (harness_now_ms() - t0 > (TTL_S + 5) * 1000)
			break;
		harness_sleep_ms(100);
	}
	ck_assert_msg(offline_ms >= 0, "user on the killed host still online "
	    "for a friend %d s later", TTL_S + 5);
	ck_assert_msg(offline_ms <= TTL_S * 1000 + 1000, "user on the killed "
	    "host went offline %lld ms after the kill (presence_ttl %d s)",
	    offline_ms, TTL_S);
	ck_assert_msg(claim_of(k->id, val, sizeof(val)) == 0 &&
	    val[0] == '\0', "claim \"%s\" still there", val);
	for (i = 0; i < 3; i++) {
		(void)chat(a, k, "stored");
		(void)chat(b, k2, "stored");
	}

	/* nginx skips the dead host: new clients all get in. */
	online_at(n1, VIA_NGINX);
	online_at(n2, VIA_NGINX);
	(void)chat(n1, n2, NULL);	/* n2 may not be subscribed yet */

	/* They log in elsewhere (through nginx) and find everything. */
	ack = login_at(k, VIA_NGINX);
	ck_assert_msg(k->host != 2, "logged in on the dead host");
	ck_assert_str_eq(ack_friend_state(ack, a->id), "online");
	cJSON_Delete(ack);
	wait_presence(a, k->id, "online");
	online_at(k2, VIA_NGINX);
	ck_assert_msg(k2->host != 2, "logged in on the dead host");
	(void)chat(a, k, NULL);		/* k may not be subscribed yet */
	(void)chat(k2, b, "delivered");	/* b got k2's message before */
	await(all, 6, PUSH_MS);
	quiet(all, 6);
	ledger_check();
}
END_TEST

/* a online on host 0 and k on host 2, friends (k asked); a sees k
 * online. */
static void
friend_on_host2(struct user *a, const char *an, struct user *k,
    const char *kn)
{
	user_new(a, an);
	user_new(k, kn);
	online_at(a, 0);
	online_at(k, 2);
	ack_ok_free(k->c, chatc_add_friend(k->c, a->id, REQ_MS),
	    MSG_ADD_FRIEND);
	ck_assert_str_eq(friend_state(a, k->id), "online");
}

/*
 * A host killed whole (master and workers; in life a power cut, a kernel
 * panic, the OOM killer taking the master too): nobody is left on it to
 * tell its users' friends they went offline.  Their claims expire after
 * presence_ttl, Redis says so on its keyevent channel, and one of the
 * hosts that hear it (the gone marker) tells the friends; they used to
 * see the users online until their own next login or FRIEND_LIST.  Each
 * friend gets the notice once, though two hosts heard the expiry.
 */
START_TEST(test_host_killed_friends_told)
{
	struct user a, b, k, *fs[2] = { &a, &b };
	long long t0, took, expired0;

	begin();
	expired0 = stat_sum("presence_expired", 0, 1);
	friend_on_host2(&a, "hka", &k, "hkk");
	user_new(&b, "hkb");
	online_at(&b, 1);
	ack_ok_free(k.c, chatc_add_friend(k.c, b.id, REQ_MS), MSG_ADD_FRIEND);
	ck_assert_str_eq(friend_state(&b, k.id), "online");

	kill_host(2);
	k.c = NULL;
	t0 = harness_now_ms();
	wait_presence_ms(&a, k.id, "offline", (TTL_S + 5) * 1000);
	took = harness_now_ms() - t0;
	wait_presence_ms(&b, k.id, "offline", SETTLE_MS);
	ck_assert_msg(took <= TTL_S * 1000 + 2000, "the friend of a user of "
	    "the killed host was told %lld ms after the kill (presence_ttl "
	    "%d s)", took, TTL_S);
	/* Once: quiet() finds any second notice. */
	quiet(fs, 2);
	ck_assert_str_eq(friend_state(&a, k.id), "offline");
	ck_assert_int_eq(gone_marked(k.id), 1);
	/* One host told them, though both heard the expiry. */
	ck_assert_int_eq(stat_sum("presence_expired", 0, 1) - expired0, 1);
	/* The next login takes the marker away: that session's own
	 * expiry, should its host die too, is a new one to tell. */
	online_at(&k, 0);
	ck_assert_int_eq(gone_marked(k.id), 0);
	wait_presence(&a, k.id, "online");
	wait_presence(&b, k.id, "online");
	logout(&k, 1);
	wait_presence(&a, k.id, "offline");
	wait_presence(&b, k.id, "offline");
	quiet(fs, 2);
}
END_TEST

/*
 * The same with Redis' background expiry off (DEBUG SET-ACTIVE-EXPIRE 0),
 * as good as off for one stale claim among a million: a key is expired
 * only when something reads it, and nothing reads the dead host's user's
 * claim.  The masters' sweep (SCAN of the claims every half
 * presence_ttl) must find it.
 */
static void
active_expire(int on)
{
	const char *argv[3] = { "DEBUG", "SET-ACTIVE-EXPIRE", on ? "1" : "0" };
	char type, out[64];
	long long num;

	ck_assert_int_eq(redis_cmd(&type, out, sizeof(out), &num, 3, argv), 0);
	ck_assert_msg(type == '+', "DEBUG SET-ACTIVE-EXPIRE: %c %s", type,
	    out);
}

START_TEST(test_host_killed_friends_told_sweep)
{
	struct user a, k, *fs[1] = { &a };
	long long t0, took;

	begin();
	friend_on_host2(&a, "swa", &k, "swk");

	active_expire(0);
	kill_host(2);
	k.c = NULL;
	t0 = harness_now_ms();
	wait_presence_ms(&a, k.id, "offline", (2 * TTL_S + 5) * 1000);
	took = harness_now_ms() - t0;
	active_expire(1);
	/* Expired after at most presence_ttl, found by a sweep that starts
	 * every half of it, at a tick of a master (every second). */
	ck_assert_msg(took <= TTL_S * 1000 + TTL_S * 500 + 2500, "the friend "
	    "of a user of the killed host was told %lld ms after the kill "
	    "(presence_ttl %d s)", took, TTL_S);
	quiet(fs, 1);
	ck_assert_str_eq(friend_state(&a, k.id), "offline");
}
END_TEST

/*
 * A host that froze (SIGSTOP) for longer than presence_ttl: its users'
 * friends are told they went offline, as for a dead host.  When it goes
 * on, its sessions are still there and it renews their claims: finding
 * they had expired (the gone marker), it tells the friends "online"
 * again, or they would see online users as offline until the next login.
 */
START_TEST(test_frozen_host_friends_told)
{
	struct user a, k, *all[2] = { &a, &k };
	pid_t master = H.chatd[2].pid;

	begin();
	friend_on_host2(&a, "fza", &k, "fzk");

	ck_assert_int_eq(kill(-master, SIGSTOP), 0);
	wait_presence_ms(&a, k.id, "offline", (TTL_S + 5) * 1000);
	ck_assert_str_eq(friend_state(&a, k.id), "offline");
	ck_assert_int_eq(kill(-master, SIGCONT), 0);
	wait_presence_ms(&a, k.id, "online", SETTLE_MS);
	ck_assert_msg(harness_log_contains(&H, 2, "claim(s) had expired"),
	    "host 2 did not log the claims it renewed after they expired");
	ck_assert_int_ge(stat_sum("presence_renewed", 2, 2), 1);
	ck_assert_str_eq(friend_state(&a, k.id), "online");
	/* The session lived on: it is reached. */
	(void)chat(&a, &k, "delivered");
	await(all, 2, PUSH_MS);
	logout(&k, 1);
	wait_presence(&a, k.id, "offline");
	quiet(all, 1);
	ledger_check();
}
END_TEST

/*
 * A host stopped gracefully (SIGTERM to its master): its workers end
 * every session as a LOGINOUT would, through Redis too, before they
 * exit.  A friend on another host is told, no claim is left once the
 * host has exited (the users log in elsewhere at once, not presence_ttl
 * later), and messages to them are stored from then on.  Before, a
 * stopping worker left its loop with the claim releases still unsent:
 * logins elsewhere were refused with errno 2 until the claims expired,
 * and friends on other hosts were never told.
 */
START_TEST(test_host_stopped)
{
	struct user u[3], *a = &u[0], *k = &u[1], *k2 = &u[2];
	struct user *all[3] = { a, k, k2 };
	pid_t master = H.chatd[2].pid;
	long long deadline;
	char val[256];
	int i, unfinished;

	begin();
	for (i = 0; i < 3; i++)
		user_new(&u[i], "stop");
	friends_on_host2(a, k, k2);
	(void)chat(k2, a, NULL);
	await(all, 3, PUSH_MS);

	unfinished = harness_log_count(&H, 2, "stopping with");
	ck_assert_int_eq(kill(master, SIGTERM), 0);
	deadline = harness_now_ms() + SETTLE_MS;
	while (alive(master)) {
		ck_assert_msg(harness_now_ms() < deadline, "host 2 still "
		    "running %d ms after SIGTERM", SETTLE_MS);
		harness_sleep_ms(10);
	}
	dead[2] = 1;
	/* At once, well within presence_ttl. */
	for (i = 1; i < 3; i++) {
		ck_assert_int_eq(claim_of(u[i].id, val, sizeof(val)), 0);
		ck_assert_msg(val[0] == '\0', "user %s: claim \"%s\" left "
		    "by the stopped host", u[i].name, val);
	}
	ck_assert_int_eq(harness_log_count(&H, 2, "stopping with"),
	    unfinished);
	wait_presence(a, k->id, "offline");
	for (i = 1; i < 3; i++) {
		ck_assert_msg(!pump(&u[i], PUSH_MS), "user %s: connection "
		    "still open after the host stopped", u[i].name);
		drop(&u[i]);
	}

	(void)chat(a, k2, "stored");
	online_at(k, 1);
	wait_presence(a, k->id, "online");
	online_at(k2, 0);
	(void)chat(a, k, NULL);
	await(all, 3, PUSH_MS);
	quiet(all, 3);
	ledger_check();
}
END_TEST

/* --- tests: Redis restarted ------------------------------------------------ */

/*
 * Every user of us logs out and in again (through nginx): everything
 * arrived exactly once, and a new session finds nothing more.
 */
static void
relogin_all(struct user **us, int n)
{
	int i;

	for (i = 0; i < n; i++)
		logout(us[i], 1);
	for (i = 0; i < n; i++)
		online_at(us[i], VIA_NGINX);
	await(us, n, PUSH_MS);
	quiet(us, n);
	ledger_check();
}

/* Send ONE_CHAT from -> to with seq "p<slot>" and do not wait. */
static void
chat_pipelined(struct user *from, struct user *to, int slot)
{
	char text[96], seq[16];
	cJSON *r;

	ck_assert(slot < PIPE_MAX);
	msg_text(text, sizeof(text), "p");
	ledger_add(from->id, to->id, MSG_ONE_CHAT, text);
	(void)snprintf(seq, sizeof(seq), "p%d", slot);
	r = cJSON_CreateObject();
	cJSON_AddNumberToObject(r, "msgid", MSG_ONE_CHAT);
	cJSON_AddNumberToObject(r, "toid", (double)to->id);
	cJSON_AddStringToObject(r, "msg", text);
	cJSON_AddStringToObject(r, "seq", seq);
	ck_assert_int_eq(chatc_send(from->c, r), 0);
	cJSON_Delete(r);
}

/* Logins on host i answer errno 13 (bounded wait: the host must first
 * notice that Redis is gone). */
static void
wait_login_unavailable(struct user *u, int i)
{
	long long deadline = harness_now_ms() + SETTLE_MS;
	struct chatc *c;
	cJSON *r;
	int e;

	for (;;) {
		c = xconnect(i);
		r = chatc_login(c, u->id, PASSWORD, REQ_MS);
		ck_assert_msg(r != NULL, "login: %s", chatc_error(c));
		e = chatc_errno(r);
		cJSON_Delete(r);
		if (e == 0)
			ack_ok_free(c, chatc_logout(c, REQ_MS),
			    MSG_LOGINOUT);
		harness_close(c);
		if (e == CERR_UNAVAILABLE)
			return;
		ck_assert_msg(e == 0, "login on host %d while Redis is down: "
		    "errno %d", i, e);
		ck_assert_msg(harness_now_ms() < deadline, "host %d still "
		    "accepts logins %d ms after Redis stopped", i,
		    SETTLE_MS);
		harness_sleep_ms(POLL_MS);
	}
}

/* Send from -> to until an ACK says "delivered" (bounded). */
static void
chat_until_delivered(struct user *from, struct user *to)
{
	long long deadline = harness_now_ms() + RECOVER_MS;

	while (chat(from, to, NULL) != 'd') {
		ck_assert_msg(harness_now_ms() < deadline, "%s (host %d) -> "
		    "%s (host %d): not delivered live within %d ms of Redis' "
		    "restart", from->name, from->host, to->name, to->host,
		    RECOVER_MS);
		harness_sleep_ms(100);
	}
}

/* Wait (bounded) until uid's claim exists again. */
static void
wait_claimed(long long uid)
{
	long long deadline = harness_now_ms() + RECOVER_MS;
	char val[256];

	while (claim_of(uid, val, sizeof(val)) != 0 || val[0] == '\0') {
		ck_assert_msg(harness_now_ms() < deadline, "claim of %lld not "
		    "re-created within %d ms of Redis' restart", uid,
		    RECOVER_MS);
		harness_sleep_ms(POLL_MS);
	}
}

START_TEST(test_redis_restart)
{
	struct user u[5], *a0 = &u[0], *b0 = &u[1], *a1 = &u[2], *b1 = &u[3];
	struct user *c = &u[4], *all[5] = { a0, b0, a1, b1, c };
	long long deadline;
	int i, n = 0, done;

	begin();
	for (i = 0; i < 5; i++)
		user_new(&u[i], "redis");
	online_at(a0, 0);
	online_at(b0, 0);
	online_at(a1, 1);
	online_at(b1, 1);
	(void)chat(a0, a1, NULL);	/* right after the logins */
	(void)chat(a1, a0, NULL);
	await(all, 5, PUSH_MS);

	/* Traffic in flight while redis-server goes away. */
	for (i = 0; i < 8; i++) {
		chat_pipelined(a0, a1, n++);
		chat_pipelined(a1, a0, n++);
		chat_pipelined(b0, a0, n++);
	}
	(void)harness_stop_redis(&H);
	ck_assert_msg(!redis_up(), "redis-server still answers");
	for (i = 0; i < 8; i++) {
		chat_pipelined(a0, a1, n++);
		chat_pipelined(b1, a1, n++);
	}
	/* Every pipelined message was answered, none with an error. */
	deadline = harness_now_ms() + PUSH_MS;
	do {
		for (i = 0; i < 5; i++)
			(void)pump(&u[i], 5);
		for (i = done = 0; i < n; i++)
			done += pipe_ack[i].status[0] != '\0';
	} while (done < n && harness_now_ms() < deadline);
	for (i = 0; i < n; i++)
		ck_assert_msg(pipe_ack[i].status[0] != '\0' &&
		    pipe_ack[i].err == 0 && (strcmp(pipe_ack[i].status,
		    "delivered") == 0 || strcmp(pipe_ack[i].status,
		    "stored") == 0), "pipelined chat %d: %s (errno %d)", i,
		    pipe_ack[i].status[0] ? pipe_ack[i].status : "no ACK",
		    pipe_ack[i].err);

	/* While Redis is down: logins refused, same-host chat goes on,
	 * cross-host messages are stored. */
	wait_login_unavailable(c, 0);
	wait_login_unavailable(c, 1);
	(void)chat(a0, b0, "delivered");
	(void)chat(b1, a1, "delivered");
	for (i = 0; i < 3; i++) {
		(void)chat(a0, a1, "stored");
		(void)chat(a1, a0, "stored");
	}
	for (i = 0; i < 5; i++)
		(void)pump(&u[i], 10);

	/*
	 * Back on the same port.  Messages sent at once, while the hosts'
	 * workers reconnect (each on its own one-second retry), reach users
	 * who stayed online without a new login: stored while a link is
	 * down, then pulled on the SUBSCRIBE confirmation or on the pull
	 * hint the storing host publishes once its publisher is back.  So
	 * do the messages stored during the outage.
	 */
	ck_assert_msg(harness_start_redis(&H) == 0, "redis-server did not "
	    "restart");
	(void)chat(a0, a1, NULL);
	(void)chat(a1, a0, NULL);
	await(all, 5, RECOVER_MS);

	/*
	 * Every host back: logins work, and every worker has subscribed its
	 * users again.  Each publisher renews its claims when it reconnects,
	 * which no client sees: wait for the claims the refused logins and
	 * "delivered" ACKs below depend on.  (a0 and a1 received through
	 * Redis above: they are subscribed.)
	 */
	ck_assert_msg(cluster_ready() == 0, "the cluster did not recover");
	for (i = 0; i < 4; i++)
		wait_claimed(u[i].id);
	login_refused(a1, 0, CERR_ONLINE);
	login_refused(a0, 1, CERR_ONLINE);
	login_refused(b0, VIA_NGINX, CERR_ONLINE);
	(void)chat(a0, a1, "delivered");
	(void)chat(a1, a0, "delivered");
	online_at(c, 0);
	(void)chat(b1, c, NULL);	/* c may not be subscribed yet */
	(void)chat(c, b1, NULL);	/* b1 got nothing through Redis */
	await(all, 5, PUSH_MS);

	/* And nothing is left behind: a new session finds nothing more. */
	relogin_all(all, 5);
}
END_TEST

/* --- tests: Redis stops answering ------------------------------------------ */

#define STALL_WARNING	"redis publisher: no answer for"
#define STALL_OVER	"redis publisher: Redis answers again"

/* Wait (bounded) until hosts 0 and 1 logged needle once per worker,
 * reading what reaches the users meanwhile. */
static void
wait_logged(const char *needle, struct user **us, int n, int ms)
{
	long long deadline = harness_now_ms() + ms;
	int h, i, seen;

	for (;;) {
		for (h = seen = 0; h < 2; h++)
			seen += harness_log_count(&H, h, needle) >= NWORKERS;
		if (seen == 2)
			return;
		ck_assert_msg(harness_now_ms() < deadline, "\"%s\" not logged "
		    "by every worker of hosts 0 and 1 within %d ms", needle,
		    ms);
		for (i = 0; i < n; i++)
			(void)pump(us[i], 5);
		harness_sleep_ms(POLL_MS);
	}
}

/*
 * Redis stops answering but keeps its connections (SIGSTOP: a stuck
 * server, a long command).  Each worker notices within redis_timeout
 * (2 s) and a tick, and then serves as while Redis is down: messages for
 * other hosts are stored at once, logins refused, same-host chat goes
 * on.  What was sent to Redis before that waits for it: Redis may still
 * run it, so failing it could deliver a message twice.  Once Redis runs
 * again, every message arrives exactly once.  (Without the watch every
 * cross-host message and every login waited for Redis, with no bound.)
 */
START_TEST(test_redis_stopped)
{
	struct user u[4], *a0 = &u[0], *b0 = &u[1], *a1 = &u[2], *c = &u[3];
	struct user *all[4] = { a0, b0, a1, c };
	long long deadline;
	int i, n = 0, done;

	begin();
	for (i = 0; i < 4; i++)
		user_new(&u[i], "stop");
	online_at(a0, 0);
	online_at(b0, 0);
	online_at(a1, 1);
	/* Either may be stored (a channel not subscribed yet, see the
	 * head of this file); once each has arrived, both are. */
	(void)chat(a0, a1, NULL);
	(void)chat(a1, a0, NULL);
	await(all, 4, PUSH_MS);
	ck_assert_int_eq(harness_log_count(&H, 0, STALL_WARNING), 0);

	ck_assert_int_eq(kill(H.redis_pid, SIGSTOP), 0);
	chat_pipelined(a0, a1, n++);
	chat_pipelined(a1, a0, n++);
	wait_logged(STALL_WARNING, all, 4, SETTLE_MS);

	(void)chat(a0, a1, "stored");
	(void)chat(a1, a0, "stored");
	(void)chat(b0, a1, "stored");
	(void)chat(a0, b0, "delivered");
	wait_login_unavailable(c, 0);
	wait_login_unavailable(c, 1);
	for (i = 0; i < 4; i++)
		(void)pump(&u[i], i == 0 ? QUIET_MS : 0);
	for (i = 0; i < n; i++)
		ck_assert_msg(pipe_ack[i].status[0] == '\0', "pipelined chat "
		    "%d sent before the stall answered \"%s\" while Redis is "
		    "stopped", i, pipe_ack[i].status);

	ck_assert_int_eq(kill(H.redis_pid, SIGCONT), 0);
	/* Answered now: "delivered", or "stored" when the recipient's
	 * claim expired meanwhile (presence_ttl is 3 s here). */
	deadline = harness_now_ms() + RECOVER_MS;
	do {
		for (i = 0; i < 4; i++)
			(void)pump(&u[i], 5);
		for (i = done = 0; i < n; i++)
			done += pipe_ack[i].status[0] != '\0';
	} while (done < n && harness_now_ms() < deadline);
	for (i = 0; i < n; i++)
		ck_assert_msg(pipe_ack[i].err == 0 && (strcmp(pipe_ack[i].status,
		    "delivered") == 0 || strcmp(pipe_ack[i].status,
		    "stored") == 0), "pipelined chat %d: %s (errno %d)", i,
		    pipe_ack[i].status[0] ? pipe_ack[i].status : "no ACK",
		    pipe_ack[i].err);
	wait_logged(STALL_OVER, all, 4, RECOVER_MS);
	/* What was stored meanwhile reaches users who stayed online. */
	await(all, 4, RECOVER_MS);

	ck_assert_msg(cluster_ready() == 0, "the cluster did not recover");
	for (i = 0; i < 3; i++)
		wait_claimed(u[i].id);
	login_refused(a1, 0, CERR_ONLINE);
	online_at(c, 1);
	(void)chat(a0, a1, "delivered");
	(void)chat(c, a0, "delivered");
	await(all, 4, PUSH_MS);
	relogin_all(all, 4);
}
END_TEST

/* --- tests: Redis loses its scripts ---------------------------------------- */

/* SCRIPT FLUSH on the harness's Redis. */
static void
script_flush(void)
{
	char type, out[64];
	const char *argv[2] = { "SCRIPT", "FLUSH" };
	long long num;

	ck_assert_msg(redis_cmd(&type, out, sizeof(out), &num, 2, argv) == 0 &&
	    strcmp(out, "OK") == 0, "SCRIPT FLUSH: %s", out);
}

/* Seconds left on uid's claim: -2 when there is none, -3 when Redis
 * cannot be asked. */
static long long
claim_ttl(long long uid)
{
	char key[256], type, out[64];
	const char *argv[2];
	long long num;

	claim_key(uid, key, sizeof(key));
	argv[0] = "TTL";
	argv[1] = key;
	if (redis_cmd(&type, out, sizeof(out), &num, 2, argv) == -1 ||
	    type != ':')
		return -3;
	return num;
}

/*
 * The hosts run their Lua scripts by digest (EVALSHA).  After SCRIPT FLUSH
 * every script command finds its script gone (NOSCRIPT): cross-host
 * messages sent around the flush are still delivered live exactly once
 * and in order, claims are still renewed (each outlives several presence_ttl), and a
 * logout still deletes its claim at once.
 */
START_TEST(test_script_flush)
{
	struct user u[2], *a = &u[0], *b = &u[1], *all[2] = { a, b };
	long long deadline, ttl;
	int i, n = 0, done;

	begin();
	user_new(a, "flush");
	user_new(b, "flush");
	online_at(a, 0);
	online_at(b, 1);
	(void)chat(a, b, NULL);		/* right after the logins */
	(void)chat(b, a, NULL);
	await(all, 2, PUSH_MS);

	/* Messages in flight while the scripts go, and after. */
	for (i = 0; i < 8; i++) {
		chat_pipelined(a, b, n++);
		chat_pipelined(b, a, n++);
	}
	script_flush();
	for (i = 0; i < 8; i++) {
		chat_pipelined(a, b, n++);
		chat_pipelined(b, a, n++);
	}
	deadline = harness_now_ms() + PUSH_MS;
	do {
		for (i = 0; i < 2; i++)
			(void)pump(&u[i], 5);
		for (i = done = 0; i < n; i++)
			done += pipe_ack[i].status[0] != '\0';
	} while (done < n && harness_now_ms() < deadline);
	for (i = 0; i < n; i++)
		ck_assert_msg(pipe_ack[i].err == 0 &&
		    strcmp(pipe_ack[i].status, "delivered") == 0,
		    "pipelined chat %d around SCRIPT FLUSH: %s (errno %d)", i,
		    pipe_ack[i].status[0] ? pipe_ack[i].status : "no ACK",
		    pipe_ack[i].err);
	await(all, 2, PUSH_MS);
	ledger_in_order(a, b);
	ledger_in_order(b, a);

	/* Claims renewed across flushes for more than two presence_ttl. */
	deadline = harness_now_ms() + (2 * TTL_S + 1) * 1000;
	i = 0;
	while (harness_now_ms() < deadline) {
		if (i++ % 10 == 0)
			script_flush();
		ttl = claim_ttl(a->id);
		ck_assert_msg(ttl > 0, "claim of %s: TTL %lld after SCRIPT "
		    "FLUSH", a->name, ttl);
		ttl = claim_ttl(b->id);
		ck_assert_msg(ttl > 0, "claim of %s: TTL %lld after SCRIPT "
		    "FLUSH", b->name, ttl);
		(void)pump(a, 0);
		(void)pump(b, 0);
		harness_sleep_ms(200);
	}
	(void)chat(a, b, "delivered");
	(void)chat(b, a, "delivered");
	await(all, 2, PUSH_MS);

	/* A release after a flush deletes the claim, not its expiry. */
	script_flush();
	logout(a, 0);
	deadline = harness_now_ms() + 1000;
	while ((ttl = claim_ttl(a->id)) != -2) {
		ck_assert_msg(harness_now_ms() < deadline, "claim of %s still "
		    "there (TTL %lld) 1 s after logout", a->name, ttl);
		harness_sleep_ms(20);
	}
	wait_unsubscribed(a->id);
	quiet(all, 2);
	ledger_check();
}
END_TEST

/* --- tests: regressions of cluster races ------------------------------- */

/*
 * A message sent from another host right after the recipient's
 * LOGIN_ACK.  chatd answers LOGIN before Redis has its SUBSCRIBE to the
 * user's channel, so the sender's PUBLISH may find no subscriber and the
 * message is stored.  It used to stay in the database until the next
 * login although the user was online; the recipient's worker now pulls
 * when Redis confirms the SUBSCRIBE, and the storing host publishes a
 * pull hint.  Ten rounds: every message arrives within 2 s, in the same
 * session.
 */
START_TEST(test_chat_right_after_login)
{
	struct user a, c, *all[2] = { &a, &c };
	long long deadline;
	int round, late = 0;

	begin();
	user_new(&a, "a");
	user_new(&c, "c");
	online_at(&a, 1);
	for (round = 0; round < 10; round++) {
		online_at(&c, 2);
		(void)chat(&a, &c, NULL);
		deadline = harness_now_ms() + 2000;
		while (ledger_missing(c.id) > 0 &&
		    harness_now_ms() < deadline)
			(void)pump(&c, 20);
		late += ledger_missing(c.id) > 0;
		logout(&c, 1);
	}
	/* Not lost: the next login finds them. */
	online_at(&c, 2);
	await(all, 2, PUSH_MS);
	ledger_check();
	ck_assert_msg(late == 0, "%d of 10 messages sent from host 1 right "
	    "after the recipient's LOGIN_ACK on host 2 were stored and not "
	    "delivered while the recipient stayed online (2 s); they came "
	    "only with the next login", late);
}
END_TEST

/*
 * A member joins on host 2 and a sender on host 1, whose worker has the
 * group cached, sends right after the join's ACK.  The cache
 * invalidation used to travel through Redis after that ACK, so the
 * message could go out with the old member list and the new member never
 * got it (nor was it stored for them).  The ACK now waits until Redis has
 * passed the change on to every host.  Ten members, each one's first
 * message checked.
 */
START_TEST(test_group_join_then_chat)
{
	struct user u[12], *a = &u[0], *b = &u[1], *to[12];
	long long gid, deadline;
	int round, n, missed = 0;

	begin();
	user_new(a, "a");
	user_new(b, "b");
	online_at(a, 0);
	online_at(b, 1);
	gid = group_new(a);
	join(b, gid);
	to[0] = a;
	(void)gchat(b, gid, to, 1, "delivered");
	(void)gchat(b, gid, to, 1, "delivered");
	for (n = 1, round = 0; round < 10; round++) {
		struct user *m = &u[2 + round];

		user_new(m, "member");
		online_at(m, 2);
		join(m, gid);
		to[n++] = m;
		(void)gchat(b, gid, to, n, "delivered");
		deadline = harness_now_ms() + 1000;
		while (ledger_missing(m->id) > 0 &&
		    harness_now_ms() < deadline)
			(void)pump(m, 20);
		missed += ledger_missing(m->id) > 0;
	}
	ck_assert_msg(missed == 0, "%d of 10 members who joined on host 2 "
	    "did not get the group message sent from host 1 right after "
	    "their join's ACK (stale membership cache; the message was "
	    "neither delivered nor stored for them)", missed);
	for (round = 0; round < 12; round++)
		to[round] = &u[round];
	await(to, 12, PUSH_MS);
	ledger_check();
}
END_TEST

/*
 * A membership change made while Redis is down cannot be announced, so
 * the other hosts' caches keep the old member list.  A worker whose
 * subscriber reconnected used to keep every cached group, and a member
 * who joined during the outage never got the messages sent from that
 * worker (nor were they stored for them).  A subscriber that reconnects
 * now makes its worker forget every cached group.
 */
START_TEST(test_group_cache_after_redis_outage)
{
	struct user u[3], *a = &u[0], *b = &u[1], *c = &u[2];
	struct user *all[3] = { a, b, c }, *to[2];
	long long gid, deadline;

	begin();
	user_new(a, "a");
	user_new(b, "b");
	user_new(c, "c");
	online_at(a, 0);
	online_at(b, 1);
	online_at(c, 2);
	gid = group_new(a);
	join(b, gid);
	to[0] = a;
	(void)gchat(b, gid, to, 1, "delivered");	/* cached on host 1 */
	(void)gchat(b, gid, to, 1, "delivered");
	await(all, 3, PUSH_MS);

	(void)harness_stop_redis(&H);
	join(c, gid);		/* the database is up: it works */
	ck_assert_msg(harness_start_redis(&H) == 0, "redis-server did not "
	    "restart");
	/* Only its own subscriber's reconnection clears host 1's cache,
	 * and no client sees when that happens: wait until every worker is
	 * subscribed again. */
	ck_assert_msg(cluster_ready() == 0, "the cluster did not recover");

	to[1] = c;
	(void)gchat(b, gid, to, 2, NULL);
	deadline = harness_now_ms() + PUSH_MS;
	while (ledger_missing(c->id) > 0 && harness_now_ms() < deadline)
		(void)pump(c, 20);
	ck_assert_msg(ledger_missing(c->id) == 0, "a member who joined on "
	    "host 2 while Redis was down did not get a group message sent "
	    "from host 1 after Redis came back (host 1 kept its cached member "
	    "list; the message was neither delivered nor stored for them)");
	await(all, 3, PUSH_MS);
	ledger_check();
}
END_TEST

/*
 * A user online on host 1 whose claim is gone for a moment, as just after
 * Redis restarted and before host 1 renews its claims: a message from
 * host 0 is stored (the user looks offline), and the pull hint host 0
 * publishes must still reach host 1.  It used to go through the script
 * that publishes only to claimed users, was dropped, and the message
 * waited for the user's next login.
 */
START_TEST(test_pull_hint_to_unclaimed_user)
{
	struct user a0, a1, *all[2] = { &a0, &a1 };
	char key[256], type, out[64];
	const char *argv[2];
	long long num, deadline;
	int tries;

	begin();
	user_new(&a0, "a0");
	user_new(&a1, "a1");
	online_at(&a0, 0);
	online_at(&a1, 1);
	(void)chat(&a0, &a1, NULL);
	await(all, 2, PUSH_MS);

	claim_key(a1.id, key, sizeof(key));
	argv[0] = "DEL";
	argv[1] = key;
	/* Host 1 re-creates the claim when it renews (every TTL / 3): in
	 * the rare case it did so in between, the message went out live;
	 * try again. */
	for (tries = 0; tries < 3; tries++) {
		ck_assert(redis_cmd(&type, out, sizeof(out), &num, 2, argv) ==
		    0);
		ck_assert_msg(num == 1, "a1 had no claim to delete");
		if (chat(&a0, &a1, NULL) == 's')
			break;
	}
	ck_assert_msg(tries < 3, "host 1 renewed the claim each time");
	deadline = harness_now_ms() + SETTLE_MS;
	while (ledger_missing(a1.id) > 0 && harness_now_ms() < deadline)
		(void)pump(&a1, 20);
	ck_assert_msg(ledger_missing(a1.id) == 0, "a message stored for a "
	    "user online on host 1 while its claim was missing was not "
	    "delivered within %d ms (its pull hint was dropped)", SETTLE_MS);
	await(all, 2, PUSH_MS);
	ledger_check();
}
END_TEST

/*
 * Only the publishers lose Redis (CLIENT KILL TYPE normal: the
 * subscribers stay).  A message from host 0 for a user online on host 1
 * is stored while host 0's publisher reconnects, and since host 1's
 * subscriber never went away nothing used to make host 1 fetch it: it
 * waited for the user's next login.  Host 0 now owes the user a pull
 * hint, published as soon as its publisher is back.
 */
START_TEST(test_online_user_after_publisher_drop)
{
	struct user a0, a1, *all[2] = { &a0, &a1 };
	const char *kill_argv[4] = { "CLIENT", "KILL", "TYPE", "normal" };
	char type, out[64];
	long long num;
	int late;

	begin();
	user_new(&a0, "a0");
	user_new(&a1, "a1");
	online_at(&a0, 0);
	online_at(&a1, 1);
	(void)chat(&a0, &a1, NULL);	/* right after the login */
	await(all, 2, PUSH_MS);

	ck_assert(redis_cmd(&type, out, sizeof(out), &num, 4, kill_argv) ==
	    0);
	ck_assert_msg(num > 0, "CLIENT KILL killed no connection");
	(void)chat(&a0, &a1, NULL);
	chat_until_delivered(&a0, &a1);
	/* a1 was online all along: everything should reach it now. */
	{
		long long deadline = harness_now_ms() + 3000;

		while (ledger_missing(a1.id) > 0 &&
		    harness_now_ms() < deadline)
			(void)pump(&a1, 20);
	}
	late = ledger_missing(a1.id);
	logout(&a1, 1);
	online_at(&a1, 1);
	await(all, 2, PUSH_MS);
	ledger_check();
	ck_assert_msg(late == 0, "%d message(s) for a user online on host 1 "
	    "stored by host 0 while its publisher was reconnecting were not "
	    "delivered until the user's next login", late);
}
END_TEST

/*
 * A group change made while the host's publisher is down could not be
 * announced: another host that had the group cached kept its old members
 * with no end (the caches have no expiry, and their subscriber never went
 * away), so a member who quit went on getting the group's messages sent
 * there.  The change is now owed, and announced when the publisher is back.
 */
START_TEST(test_group_quit_during_publisher_drop)
{
	struct user a, b, c, *all[3] = { &a, &b, &c }, *to[2];
	const char *kill_argv[4] = { "CLIENT", "KILL", "TYPE", "normal" };
	const char *back = "announced to the other hosts after Redis came back";
	const char *pub_up = "redis publisher connected";
	char type, out[64];
	long long num, gid, deadline;
	int pubs1;

	begin();
	user_new(&a, "a");
	user_new(&b, "b");
	user_new(&c, "c");
	online_at(&a, 0);
	online_at(&b, 1);
	online_at(&c, 0);
	gid = group_new(&a);
	join(&b, gid);
	join(&c, gid);
	/* b's worker on host 1 caches the group with c in it. */
	to[0] = &a;
	to[1] = &c;
	(void)gchat(&b, gid, to, 2, "delivered");
	await(all, 3, PUSH_MS);

	pubs1 = harness_log_count(&H, 1, pub_up);
	ck_assert(redis_cmd(&type, out, sizeof(out), &num, 4, kill_argv) ==
	    0);
	ck_assert_msg(num > 0, "CLIENT KILL killed no connection");
	/* Host 0's publisher is down: the quit is committed and answered,
	 * but host 1 cannot be told yet. */
	ack_ok_free(c.c, chatc_quit_group(c.c, gid, REQ_MS), MSG_QUIT_GROUP);
	ck_assert_msg(harness_log_contains(&H, 0, "could not be announced"),
	    "host 0 did not log the unannounced group change");
	deadline = harness_now_ms() + SETTLE_MS;
	while (!harness_log_contains(&H, 0, back) &&
	    harness_now_ms() < deadline)
		harness_sleep_ms(20);
	ck_assert_msg(harness_log_contains(&H, 0, back), "host 0 did not "
	    "announce the group change within %d ms of its publisher's "
	    "reconnect", SETTLE_MS);
	/* Host 1's publishers were killed too: b's message is published
	 * (ACKed "delivered") only once they are back.  Under a sanitizer
	 * host 1 may reconnect a second after host 0. */
	while (harness_log_count(&H, 1, pub_up) < pubs1 + NWORKERS &&
	    harness_now_ms() < deadline)
		harness_sleep_ms(20);
	ck_assert_msg(harness_log_count(&H, 1, pub_up) >= pubs1 + NWORKERS,
	    "host 1's publishers did not reconnect within %d ms", SETTLE_MS);
	harness_sleep_ms(200);	/* the subscriber on host 1 reads it */
	(void)gchat(&b, gid, to, 1, "delivered");
	await(all, 3, PUSH_MS);
	quiet(all, 3);
	ledger_check();
}
END_TEST

/*
 * A host that hangs or drops off the network instead of closing its
 * sockets (simulated with SIGSTOP): its claims expire, so its users show
 * offline everywhere, but Redis keeps its subscriber connections.  A
 * PUBLISH to its users still counted a receiver: the messages were ACKed
 * "delivered", neither delivered nor stored, and lost when the host
 * finally died.  A message for a user on another host is now published
 * only while the user's claim exists, and stored otherwise.
 */
START_TEST(test_publish_to_frozen_host)
{
	struct user a, k;
	pid_t w[32], master = H.chatd[2].pid;
	long long t0;
	int i, n, delivered = 0;

	begin();
	user_new(&a, "a");
	user_new(&k, "k");
	online_at(&a, 0);
	online_at(&k, 2);
	ack_ok_free(a.c, chatc_add_friend(a.c, k.id, REQ_MS),
	    MSG_ADD_FRIEND);
	n = harness_chatd_workers(&H, 2, w, 32);
	ck_assert_int_eq(n, NWORKERS);
	(void)kill(-master, SIGSTOP);
	t0 = harness_now_ms();
	for (;;) {
		char val[256];

		if (claim_of(k.id, val, sizeof(val)) == 0 && val[0] == '\0')
			break;
		ck_assert_msg(harness_now_ms() - t0 < (TTL_S + 5) * 1000,
		    "the claim of the frozen host's user did not expire");
		harness_sleep_ms(50);
	}
	ck_assert_str_eq(friend_state(&a, k.id), "offline");
	/* Offline everywhere: these must be stored. */
	for (i = 0; i < 3; i++)
		delivered += chat(&a, &k, NULL) == 'd';
	kill_host(2);
	k.c = NULL;
	online_at(&k, 1);
	(void)pump(&k, 500);
	ck_assert_msg(delivered == 0 && ledger_missing(0) == 0, "of 3 "
	    "messages sent to a user shown offline (its host frozen), %d were "
	    "ACKed \"delivered\" and %d were lost (neither received nor "
	    "stored)", delivered, ledger_missing(0));
	ledger_check();
}
END_TEST

/*
 * A subscriber that stops reading (its worker stalled: SIGSTOPped here,
 * in life a worker short of CPU) while another host publishes 48 MB to
 * its user.  Redis queues them for it: the harness runs Redis without a
 * pub/sub output limit, as chatd.conf(5) asks (with the default, Redis
 * drops the subscriber and the messages at 32 MB: 8,050 of 12,000 lost;
 * the master warns, see test_reload_moves_redis).  When the worker goes
 * on, the flood comes faster than this process reads: chatd drops b as a
 * slow consumer, and stores what keeps coming for b, thousands of
 * stores at once, more than job_queue_max; those the full queue refused
 * used to be lost (2,702 of 12,000).  Every message ACKed must reach b,
 * live or at a later login.
 */
#define FLOOD_N		12000	/* messages: 48 MB */
#define FLOOD_TEXT	4000	/* bytes each, below max_message */
#define FLOOD_WINDOW	64
#define FLOOD_SEQ0	100000
#define FLOOD_MS	30000	/* sending, then receiving */

/* The number in a flood message's text, or -1. */
static int
flood_num(const cJSON *f, const char *tag)
{
	const char *msg = jstr(f, "msg");
	size_t n = strlen(tag);

	if (jnum(f, "msgid") != MSG_ONE_CHAT || strncmp(msg, tag, n) != 0)
		return -1;
	return atoi(msg + n);
}

/* Count frame f of the flood into seen[]. */
static void
flood_seen(const cJSON *f, const char *tag, int *seen)
{
	int k = flood_num(f, tag);

	ck_assert_msg(k >= 0 && k < FLOOD_N, "unexpected frame %.200s",
	    jtext(f));
	seen[k]++;
}

START_TEST(test_subscriber_stalled_under_flood)
{
	struct user a, b;
	struct presence_entry e;
	char tag[64], *text;
	int *acked, *seen, next = 0, inflight = 0, nack = 0, stored = 0;
	int lost = 0, twice = 0, drops = 0, i;
	long long deadline, left, seq;
	const cJSON *off, *o;
	cJSON *m, *f;

	begin();
	acked = calloc(FLOOD_N, sizeof(int));
	seen = calloc(FLOOD_N, sizeof(int));
	text = malloc(FLOOD_TEXT + 1);
	ck_assert(acked != NULL && seen != NULL && text != NULL);
	user_new(&a, "fa");
	user_new(&b, "fb");
	online_at(&a, 0);
	online_at(&b, 1);
	/* b's channel is subscribed once a message to it is delivered. */
	chat_until_delivered(&a, &b);
	await((struct user *[]){ &b }, 1, PUSH_MS);
	ledger_check();
	ck_assert_int_eq(presence_lookup(pres[1], (uint32_t)b.id, &e),
	    PRESENCE_OK);
	(void)snprintf(tag, sizeof(tag), "flood-%ld ", (long)getpid());

	ck_assert_int_eq(kill(e.pid, SIGSTOP), 0);
	deadline = harness_now_ms() + FLOOD_MS;
	while (nack < FLOOD_N) {
		while (next < FLOOD_N && inflight < FLOOD_WINDOW) {
			cJSON *r = cJSON_CreateObject();

			(void)snprintf(text, FLOOD_TEXT + 1, "%s%05d ", tag,
			    next);
			memset(text + strlen(text), 'f', FLOOD_TEXT -
			    strlen(text));
			text[FLOOD_TEXT] = '\0';
			cJSON_AddNumberToObject(r, "msgid", MSG_ONE_CHAT);
			cJSON_AddNumberToObject(r, "toid", (double)b.id);
			cJSON_AddStringToObject(r, "msg", text);
			cJSON_AddNumberToObject(r, "seq", FLOOD_SEQ0 + next);
			ck_assert_int_eq(chatc_send(a.c, r), 0);
			cJSON_Delete(r);
			next++;
			inflight++;
		}
		left = deadline - harness_now_ms();
		if (left <= 0 || (m = chatc_recv(a.c, (int)left)) == NULL) {
			(void)kill(e.pid, SIGCONT);
			ck_abort_msg("after %d of %d sent, %d ACKed: %s", next,
			    FLOOD_N, nack, chatc_error(a.c));
		}
		seq = jnum(m, "seq") - FLOOD_SEQ0;
		if (jnum(m, "msgid") != MSG_ACK || chatc_errno(m) != 0 ||
		    seq < 0 || seq >= next || acked[seq]) {
			(void)kill(e.pid, SIGCONT);
			ck_abort_msg("flood: unexpected reply %s", jtext(m));
		}
		acked[seq] = 1;
		stored += strcmp(jstr(m, "status"), "stored") == 0;
		nack++;
		inflight--;
		cJSON_Delete(m);
	}
	ck_assert_int_eq(kill(e.pid, SIGCONT), 0);

	/*
	 * Read until every one came.  The flood comes faster than this
	 * process parses it, so chatd may drop b as a slow consumer (and
	 * store what it held): b then logs in again, as a client would,
	 * and gets the rest from its LOGIN_ACK and what follows.
	 */
	deadline = harness_now_ms() + FLOOD_MS;
	for (;;) {
		for (i = lost = 0; i < FLOOD_N; i++)
			lost += seen[i] == 0;
		if (lost == 0 || (left = deadline - harness_now_ms()) <= 0)
			break;
		if (b.c != NULL) {
			if ((m = chatc_recv(b.c, (int)left)) != NULL) {
				flood_seen(m, tag, seen);
				cJSON_Delete(m);
				continue;
			}
			if (!chatc_closed(b.c))
				break;	/* the deadline: lost */
			harness_close(b.c);
			b.c = NULL;
			drops++;
			wait_released(b.id);
		}
		b.c = xconnect(1);
		m = chatc_login(b.c, b.id, PASSWORD, REQ_MS);
		ck_assert_msg(m != NULL && jnum(m, "msgid") == MSG_LOGIN_ACK &&
		    chatc_errno(m) == 0, "login again: %s",
		    m != NULL ? jtext(m) : chatc_error(b.c));
		off = cJSON_GetObjectItemCaseSensitive(m, "offlinemsg");
		cJSON_ArrayForEach(o, off) {
			f = jparse_item(o);
			flood_seen(f, tag, seen);
			cJSON_Delete(f);
		}
		cJSON_Delete(m);
	}
	for (i = lost = twice = 0; i < FLOOD_N; i++) {
		lost += seen[i] == 0;
		twice += seen[i] > 1;
	}
	fprintf(stderr, "it_cluster: flood: %d ACKed (%d stored), dropped "
	    "as a slow consumer %d time(s); %d lost, %d twice\n", nack,
	    stored, drops, lost, twice);
	ck_assert_msg(lost == 0, "%d of %d messages ACKed while the "
	    "recipient's subscriber was stalled were lost", lost, FLOOD_N);
	free(acked);
	free(seen);
	free(text);
}
END_TEST

/*
 * After Redis restarts, the blocking connection of each job thread (used
 * for friend and member states) is stale.  Its next lookup used to fail
 * instead of reconnecting, and the caller then showed every friend not on
 * its own host as "offline" (in FRIEND_LIST, GROUP_MEMBERS and
 * LOGIN_ACK), and a login pushed no PRESENCE "online" to friends on other
 * hosts.  A lookup that finds its connection stale now reconnects and
 * asks again.  Checked: FRIEND_LIST, LOGIN_ACK and PRESENCE pushes.
 */
START_TEST(test_friend_state_after_redis_restart)
{
	struct user u[4], *a = &u[0], *b = &u[1];
	int i, wrong = 0, acks_wrong = 0, pushes_missing = 0;
	long long deadline;
	cJSON *ack;

	begin();
	for (i = 0; i < 4; i++)
		user_new(&u[i], "fs");
	online_at(a, 0);
	online_at(b, 1);
	for (i = 1; i < 4; i++)
		ack_ok_free(a->c, chatc_add_friend(a->c, u[i].id, REQ_MS),
		    MSG_ADD_FRIEND);
	/* Every job thread of a's worker has used its Redis connection. */
	for (i = 0; i < 6; i++)
		ck_assert_str_eq(friend_state(a, b->id), "online");

	(void)harness_stop_redis(&H);
	ck_assert_msg(harness_start_redis(&H) == 0, "redis-server did not "
	    "restart");
	/* The states asked for come from claims, which each worker's
	 * publisher renews when it reconnects, and the pushes to a need its
	 * worker subscribed again: neither shows to a client, so wait. */
	ck_assert_msg(cluster_ready() == 0, "the cluster did not recover");
	wait_claimed(a->id);
	wait_claimed(b->id);

	for (i = 0; i < 6; i++)
		wrong += strcmp(friend_state(a, b->id), "online") != 0;
	for (i = 2; i < 4; i++) {
		ack = login_at(&u[i], 1);
		acks_wrong += strcmp(ack_friend_state(ack, a->id),
		    "online") != 0;
		cJSON_Delete(ack);
	}
	deadline = harness_now_ms() + 1000;
	while (a->nseen < 2 && harness_now_ms() < deadline)
		(void)pump(a, 20);
	pushes_missing = 2 - a->nseen;
	ck_assert_msg(wrong == 0 && acks_wrong == 0 && pushes_missing == 0,
	    "after a Redis restart: %d of 6 FRIEND_LISTs on host 0 showed a "
	    "friend online on host 1 as offline; %d of 2 LOGIN_ACKs on host "
	    "1 showed a friend online on host 0 as offline; %d of 2 "
	    "PRESENCE \"online\" pushes to host 0 missing", wrong,
	    acks_wrong, pushes_missing);
}
END_TEST

/* --- what a worker inherits ------------------------------------------------ */

/* The inodes of pid's open sockets, up to max; how many. */
static int
socket_inodes(pid_t pid, unsigned long *ino, int max)
{
	char dir[64], path[320], link[64];
	struct dirent *d;
	ssize_t len;
	DIR *dp;
	int n = 0;

	(void)snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	ck_assert_msg((dp = opendir(dir)) != NULL, "opendir %s: %s", dir,
	    strerror(errno));
	while ((d = readdir(dp)) != NULL && n < max) {
		(void)snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		if ((len = readlink(path, link, sizeof(link) - 1)) <= 0)
			continue;
		link[len] = '\0';
		if (sscanf(link, "socket:[%lu]", &ino[n]) == 1)
			n++;
	}
	(void)closedir(dp);
	return n;
}

/*
 * A worker shares one socket with its master: its slot's listening
 * socket.  Not the master's control socket (a chatctl would queue on a
 * socket nobody accepts on once the master is gone), nor the master's
 * Redis connection (it would stay open for as long as the worker lives,
 * after the master closed it on a reload).
 */
START_TEST(test_worker_inherits_one_socket)
{
	unsigned long mine[256], theirs[256];
	pid_t w[NWORKERS];
	int nm, nt, i, j, k, shared;

	begin();
	ck_assert_int_eq(harness_chatd_workers(&H, 0, w, NWORKERS),
	    NWORKERS);
	nm = socket_inodes(H.chatd[0].pid, mine, 256);
	/* The listening sockets, the control socket, the Redis link. */
	ck_assert_msg(nm >= NWORKERS + 2, "the master has %d sockets", nm);
	for (k = 0; k < NWORKERS; k++) {
		nt = socket_inodes(w[k], theirs, 256);
		for (shared = 0, i = 0; i < nt; i++)
			for (j = 0; j < nm; j++)
				shared += theirs[i] == mine[j];
		ck_assert_msg(shared == 1, "worker pid %d shares %d sockets "
		    "with its master", (int)w[k], shared);
	}
}
END_TEST

/* --- a reload that moves a host to another Redis ------------------------ */

#define MOVER	3	/* the instance test_reload_moves_redis runs */

/* Append lines to the mover's configuration and SIGHUP its master;
 * returns how many reloads it had completed. */
static int
mover_reload_start(const char *lines)
{
	int before = harness_log_count(&H, MOVER, "reload complete");
	FILE *fp = fopen(H.chatd[MOVER].conf_path, "a");

	ck_assert_msg(fp != NULL, "open %s: %s", H.chatd[MOVER].conf_path,
	    strerror(errno));
	ck_assert_int_ge(fputs(lines, fp), 0);
	ck_assert_int_eq(fclose(fp), 0);
	ck_assert_int_eq(harness_signal_chatd(&H, MOVER, SIGHUP, 0), 0);
	return before;
}

/* Wait (bounded) until the mover logs one more reload complete. */
static void
mover_reload_wait(int before)
{
	long long deadline = harness_now_ms() + RECOVER_MS;

	while (harness_log_count(&H, MOVER, "reload complete") == before) {
		ck_assert_msg(harness_now_ms() < deadline, "chatd-%d: no "
		    "\"reload complete\" within %d ms", MOVER, RECOVER_MS);
		harness_sleep_ms(POLL_MS);
	}
}

/* Log u in on the mover, again while its new worker is still connecting
 * to Redis (errno 13), bounded; its claim must then be in the Redis of
 * r, from node "mover".  Returns the session's connection. */
static struct chatc *
mover_login(struct user *u, struct harness *r)
{
	long long deadline = harness_now_ms() + RECOVER_MS;
	struct chatc *c;
	char val[256];
	cJSON *ack;
	int e;

	for (;;) {
		c = xconnect(MOVER);
		ack = chatc_login(c, u->id, PASSWORD, REQ_MS);
		ck_assert_msg(ack != NULL && jnum(ack, "msgid") ==
		    MSG_LOGIN_ACK, "login %s on the mover: %s", u->name,
		    ack != NULL ? jtext(ack) : chatc_error(c));
		e = chatc_errno(ack);
		cJSON_Delete(ack);
		if (e == 0)
			break;
		harness_close(c);
		ck_assert_msg(e == CERR_UNAVAILABLE &&
		    harness_now_ms() < deadline, "login %s on the mover: "
		    "errno %d", u->name, e);
		harness_sleep_ms(100);
	}
	ck_assert_int_eq(claim_at(r, u->id, val, sizeof(val)), 0);
	ck_assert_msg(strncmp(val, "mover|", 6) == 0, "user %s: claim \"%s\" "
	    "in the Redis on port %d after LOGIN_ACK", u->name, val,
	    r->redis_port);
	return c;
}

/* Wait (bounded by SETTLE_MS, far below the mover's presence_ttl of 60 s)
 * until u has no claim in the Redis of r. */
static void
mover_released(struct user *u, struct harness *r)
{
	long long deadline = harness_now_ms() + SETTLE_MS;
	char val[256] = "?";

	while (claim_at(r, u->id, val, sizeof(val)) != 0 || val[0] != '\0') {
		ck_assert_msg(harness_now_ms() < deadline, "user %s: claim "
		    "\"%s\" still in the Redis on port %d %d ms after its "
		    "worker was killed", u->name, val, r->redis_port,
		    SETTLE_MS);
		harness_sleep_ms(POLL_MS);
	}
}

/* The mover's one worker, and a new one once it is no longer w. */
static pid_t
mover_worker(pid_t w)
{
	long long deadline = harness_now_ms() + RECOVER_MS;
	pid_t w2 = 0;

	while (harness_chatd_workers(&H, MOVER, &w2, 1) != 1 || w2 == w) {
		ck_assert_msg(harness_now_ms() < deadline, "chatd-%d: no "
		    "worker in place of pid %d", MOVER, (int)w);
		harness_sleep_ms(POLL_MS);
	}
	return w2;
}

/* SIGKILL the mover's one worker, which holds u's session: its master
 * must release the claim in the Redis of r at once.  Then wait for the
 * worker that replaces it. */
static void
mover_kill_worker(struct user *u, struct harness *r, struct chatc *c)
{
	pid_t w = mover_worker(0);

	ck_assert_int_eq(kill(w, SIGKILL), 0);
	mover_released(u, r);
	harness_close(c);
	(void)mover_worker(w);
}

/*
 * A reload that switches Redis on, then moves it to another server,
 * moves the master's client too: a worker killed after each releases its
 * user's claim on the server it made it on, at once, not presence_ttl
 * later.  A worker started before the move and killed after it (stopped
 * first, so it cannot log its user out itself) has its claim released on
 * the old server.  (The master used to keep the client it started with:
 * none, or the old server.)
 */
#define LIMIT_WARNING	"client-output-buffer-limit pubsub is"
#define EVENTS_WARNING	"notify-keyspace-events is"

START_TEST(test_reload_moves_redis)
{
	const char *limit[] = { "CONFIG", "SET", "client-output-buffer-limit",
	    "pubsub 33554432 8388608 60" };
	const char *events[] = { "CONFIG", "SET", "notify-keyspace-events",
	    "" };
	struct harness rb;
	struct user u;
	struct chatc *c;
	char lines[128], val[256], out[256], type;
	long long num;
	pid_t w;
	int n, released0;

	begin();
	user_new(&u, "mover");
	ck_assert_msg(harness_start_chatd(&H, MOVER, "[server]\nworkers = 1\n"
	    "node_id = mover\n[redis]\nredis_host =\npresence_ttl = 60\n") ==
	    0, "chatd-%d did not start", MOVER);
	/* The log goes on from the mover of an earlier test. */
	released0 = harness_log_count(&H, MOVER, "released 1 cluster claim(s)");
	/* A second redis-server, of this test process only. */
	rb = H;
	rb.redis_pid = 0;
	rb.redis_port = 0;
	ck_assert_msg(harness_start_redis(&rb) == 0, "a second redis-server "
	    "did not start");

	/* No Redis, then the cluster's. */
	(void)snprintf(lines, sizeof(lines), "[redis]\nredis_host = "
	    "127.0.0.1\nredis_port = %d\n", H.redis_port);
	mover_reload_wait(mover_reload_start(lines));
	c = mover_login(&u, &H);
	mover_kill_worker(&u, &H, c);

	/* The cluster's Redis, then the second one, while a worker started
	 * under the first holds a session and is stopped. */
	c = mover_login(&u, &H);
	w = mover_worker(0);
	ck_assert_int_eq(kill(w, SIGSTOP), 0);
	/* The second one with the pub/sub output limit and the keyspace
	 * events Redis ships with: the master says so when it connects (the
	 * harness's has no limit and has events). */
	ck_assert_int_eq(harness_redis_cmd(&rb, &type, out, sizeof(out), &num,
	    4, limit), 0);
	ck_assert_msg(type == '+', "CONFIG SET: %c %s", type, out);
	ck_assert_int_eq(harness_redis_cmd(&rb, &type, out, sizeof(out), &num,
	    4, events), 0);
	ck_assert_msg(type == '+', "CONFIG SET: %c %s", type, out);
	ck_assert_int_eq(harness_log_count(&H, MOVER, LIMIT_WARNING), 0);
	ck_assert_int_eq(harness_log_count(&H, MOVER, EVENTS_WARNING), 0);
	(void)snprintf(lines, sizeof(lines), "[redis]\nredis_port = %d\n",
	    rb.redis_port);
	n = mover_reload_start(lines);
	ck_assert_int_eq(kill(w, SIGKILL), 0);
	mover_released(&u, &H);
	harness_close(c);
	mover_reload_wait(n);
	ck_assert_int_eq(harness_log_count(&H, MOVER, LIMIT_WARNING
	    " 33554432 8388608 60"), 1);
	ck_assert_int_eq(harness_log_count(&H, MOVER, EVENTS_WARNING " \"\""),
	    1);

	c = mover_login(&u, &rb);
	ck_assert_int_eq(claim_of(u.id, val, sizeof(val)), 0);
	ck_assert_msg(val[0] == '\0', "claim \"%s\" in the cluster's Redis "
	    "after the move", val);
	mover_kill_worker(&u, &rb, c);

	ck_assert_int_eq(harness_log_count(&H, MOVER,
	    "released 1 cluster claim(s)") - released0, 3);
	ck_assert_int_eq(harness_signal_chatd(&H, MOVER, SIGTERM, 1), 0);
	ck_assert_int_eq(harness_stop_redis(&rb), 0);
}
END_TEST

/* Start the mover with conf; a online on host 0 and v on the mover,
 * friends (v asked); a sees v online. */
static void
friend_on_mover(const char *conf, struct user *a, const char *an,
    struct user *v, const char *vn)
{
	ck_assert_msg(harness_start_chatd(&H, MOVER, conf) == 0,
	    "chatd-%d did not start", MOVER);
	user_new(a, an);
	user_new(v, vn);
	online_at(a, 0);
	v->c = mover_login(v, &H);
	ack_ok_free(v->c, chatc_add_friend(v->c, a->id, REQ_MS),
	    MSG_ADD_FRIEND);
	ck_assert_str_eq(friend_state(a, v->id), "online");
}

/*
 * A host killed whole and started again before presence_ttl ran out
 * (systemd's Restart=): its master ends the claims it left, so its users
 * can log in at once; they end by expiring, so that their friends on
 * other hosts are told too (a DEL is announced to no one).  The mover's
 * presence_ttl is 60 s: only that can tell them in time.
 */
#define RESTART_CONF	"[server]\nworkers = 1\nnode_id = mover\n" \
			"[redis]\npresence_ttl = 60\n"
#define RESTART_LINE	"released 1 cluster claim(s) of node mover left by " \
			"an earlier run"

START_TEST(test_host_restarted_friends_told)
{
	struct user a, p;
	pid_t master, w;
	long long deadline;
	int n0;

	begin();
	friend_on_mover(RESTART_CONF, &a, "rsa", &p, "rsp");

	master = H.chatd[MOVER].pid;
	w = mover_worker(0);
	/* The group at once: a worker whose master died first gets
	 * SIGTERM (PR_SET_PDEATHSIG) and, were it to run on, would log its
	 * users out as a stop does. */
	(void)kill(-master, SIGKILL);
	(void)kill(master, SIGKILL);
	(void)kill(w, SIGKILL);
	deadline = harness_now_ms() + SETTLE_MS;
	while (alive(master) || alive(w)) {
		ck_assert_msg(harness_now_ms() < deadline, "the mover still "
		    "alive after SIGKILL");
		harness_sleep_ms(10);
	}
	harness_close(p.c);
	p.c = NULL;
	ck_assert_str_eq(friend_state(&a, p.id), "online");
	n0 = harness_log_count(&H, MOVER, RESTART_LINE);
	ck_assert_msg(harness_start_chatd(&H, MOVER, RESTART_CONF) == 0,
	    "chatd-%d did not start again", MOVER);
	ck_assert_int_eq(harness_log_count(&H, MOVER, RESTART_LINE), n0 + 1);
	wait_presence_ms(&a, p.id, "offline", SETTLE_MS);
	ck_assert_str_eq(friend_state(&a, p.id), "offline");
	ck_assert_int_eq(harness_signal_chatd(&H, MOVER, SIGTERM, 1), 0);
}
END_TEST

/*
 * A worker killed while a logout's notices are under way: the session is
 * out of the presence table and its claim released, and its logout job
 * waits behind a slow password hash on the worker's one job thread.  The
 * master used to find nothing of it to tell, and the friends went on
 * seeing the user online; the worker now notes such sessions in memory
 * it shares with the master.
 */
#define SLOW_HASH_CONF	"[server]\nworkers = 1\njob_threads = 1\n" \
			"hash_opslimit = 10\nhash_memlimit_kib = 262144\n" \
			"node_id = mover\n[redis]\npresence_ttl = 60\n"
#define ENDED_LINE	"worker 0: 1 session(s) had ended, their friends not " \
			"told yet"

START_TEST(test_worker_killed_during_logout)
{
	struct user a, v;
	struct chatc *r;
	char name[64];
	cJSON *req;
	pid_t w;
	int n0;

	begin();
	friend_on_mover(SLOW_HASH_CONF, &a, "kla", &v, "klv");
	n0 = harness_log_count(&H, MOVER, ENDED_LINE);
	w = mover_worker(0);
	/* The one job thread hashes a new password (seconds). */
	r = xconnect(MOVER);
	(void)snprintf(name, sizeof(name), "kl%ld", (long)getpid());
	req = chatc_build_register(name, PASSWORD);
	ck_assert_int_eq(chatc_send(r, req), 0);
	cJSON_Delete(req);
	harness_sleep_ms(100);
	/* Answered once the claim is released; the notice's job waits. */
	ack_ok_free(v.c, chatc_logout(v.c, REQ_MS), MSG_LOGINOUT);
	ck_assert_int_eq(kill(w, SIGKILL), 0);
	harness_close(v.c);
	v.c = NULL;
	harness_close(r);
	wait_presence_ms(&a, v.id, "offline", SETTLE_MS);
	ck_assert_int_eq(harness_log_count(&H, MOVER, ENDED_LINE), n0 + 1);
	ck_assert_str_eq(friend_state(&a, v.id), "offline");
	(void)mover_worker(w);
	ck_assert_int_eq(harness_signal_chatd(&H, MOVER, SIGTERM, 1), 0);
}
END_TEST

/* --- a random walk ------------------------------------------------------ */

/*
 * RW_USERS users, all in one group, do RW_STEPS things chosen at random:
 * 1:1 chat to anyone (online or not, on any host), group chat, LOGINOUT,
 * a connection dropped without one, a login on a random host or through
 * nginx, reading what came.  Then everyone logs in, and: every message
 * ACKed arrived exactly once (one whose recipient dropped its connection
 * before reading it: at most twice, or lost with that connection, as
 * TCP loses what a closed socket had not read); each sender's messages
 * to each recipient carry a "tus" that grows in the order they were sent
 * (what chat-protocol(7) promises; live and stored ones may interleave
 * on arrival); no request failed; no user was ever in two hosts'
 * presence tables (host_of).  Some steps pipeline up to RW_BURST chats
 * without waiting for their ACKs, so that the next steps (the
 * recipient logging out, say) race with them; some leave the group or
 * join it again, and a group message must reach exactly the members at
 * the time it was sent (a change is in effect everywhere by its ACK).
 * Some steps log two to four users in or out at once (requests sent
 * before any reply is read).  Twice a random worker is SIGKILLed (its
 * users' connections end with it, what they had not read or had sent
 * without an answer may be lost, and their friends must be told).  Once,
 * halfway (not in the outage walk), the host of a random online user
 * freezes (SIGSTOP) until its users' friends elsewhere have been told
 * they went offline (their claims expired); messages sent to them then
 * are stored, and once the host goes on its users must get them and their
 * friends must see them online again, with no login in between.
 * Friends are made at random: once nothing more arrives, after the walk
 * and again once everyone has logged in, what each online user was told
 * of each friend (its LOGIN_ACK, then the PRESENCE notices) must be that
 * friend's state.  The seed is printed; IT_CLUSTER_SEED=N runs one
 * again.
 */
#define RW_USERS	8
#define RW_STEPS	400
#define RW_BURST	8	/* pipelined chats of one step, at most */
#define RW_DELETES_MS	3500	/* refused deletions tried again */

static struct user *rw_users;	/* the walk's users, RW_USERS of them */
static char rw_friend[RW_USERS][RW_USERS];
/* What user i was told of friend j: 'n' online, 'f' offline. */
static char rw_view[RW_USERS][RW_USERS];

static int
rw_index(long long id)
{
	int i;

	for (i = 0; i < RW_USERS; i++)
		if (rw_users[i].id == id)
			return i;
	ck_abort_msg("user id %lld is not one of the walk's", id);
	return -1;
}

static int rw_down;		/* the database was stopped: errno 13 may
				 * answer a request from now on */

static void
rw_presence(struct user *u, long long id, const char *state)
{
	int i = rw_index(u->id), j = rw_index(id);

	if (rw_trace)
		fprintf(stderr, "  %d is told %d is %s\n", i, j, state);

	ck_assert_msg(rw_friend[i][j], "user %s: PRESENCE of %lld, not a "
	    "friend", u->name, id);
	ck_assert_msg(strcmp(state, "online") == 0 ||
	    strcmp(state, "offline") == 0, "PRESENCE state \"%s\"", state);
	rw_view[i][j] = state[1] == 'n' ? 'n' : 'f';
}

/* Its view of its friends from u's (index i) LOGIN_ACK. */
static void
rw_views_from(int i, const cJSON *ack)
{
	const char *st;
	int j;

	for (j = 0; j < RW_USERS; j++) {
		if (!rw_friend[i][j])
			continue;
		st = ack_friend_state(ack, rw_users[j].id);
		ck_assert_msg(strcmp(st, "online") == 0 ||
		    strcmp(st, "offline") == 0, "user %s: friend %s is \"%s\" "
		    "in its LOGIN_ACK", rw_users[i].name, rw_users[j].name,
		    st);
		rw_view[i][j] = st[1] == 'n' ? 'n' : 'f';
		if (rw_trace)
			fprintf(stderr, "  %d: LOGIN_ACK says %d is %s\n", i,
			    j, st);
	}
}

/* A LOGIN_ACK (its errno e) that refused a login: only errno 13, and
 * only once the database was stopped. */
static void
rw_refused(const struct user *u, const cJSON *ack)
{
	ck_assert_msg(rw_down && chatc_errno(ack) == CERR_UNAVAILABLE,
	    "user %s: login refused: %s", u->name, jtext(ack));
}

/* Log u (index i) in at where; 0, or the errno of a refusal. */
static int
rw_login(int i, int where)
{
	struct user *u = &rw_users[i];
	struct chatc *c = xconnect(where);
	cJSON *ack;
	int e;

	ack = chatc_login(c, u->id, PASSWORD, REQ_MS);
	ck_assert_msg(ack != NULL && jnum(ack, "msgid") == MSG_LOGIN_ACK,
	    "login %s: %s", u->name, ack != NULL ? jtext(ack) :
	    chatc_error(c));
	if ((e = chatc_errno(ack)) != 0) {
		rw_refused(u, ack);
		cJSON_Delete(ack);
		harness_close(c);
		return e;
	}
	u->c = c;
	u->host = host_of(u->id);
	ck_assert_msg(u->host >= 0 && (where == VIA_NGINX || u->host ==
	    where), "user %s: logged in at %d, in the presence table of %d",
	    u->name, where, u->host);
	rw_views_from(i, ack);
	take_offline(u, ack);
	cJSON_Delete(ack);
	return 0;
}

/* A request's reply: its ACK (returned), or errno 13 once the database
 * was stopped (NULL). */
static cJSON *
rw_ack(struct user *u, cJSON *reply, int refmsgid)
{
	ck_assert_msg(reply != NULL, "user %s: no reply to msgid %d: %s",
	    u->name, refmsgid, chatc_error(u->c));
	if (jnum(reply, "msgid") == MSG_ERROR && rw_down &&
	    chatc_errno(reply) == CERR_UNAVAILABLE) {
		cJSON_Delete(reply);
		return NULL;
	}
	return ack_ok(u->c, reply, refmsgid);
}

/* ONE_CHAT a -> b: delivered or stored, or refused (errno 13 once the
 * database was stopped): it must then never arrive. */
static void
rw_chat(struct user *a, struct user *b)
{
	char text[96];
	const char *st;
	cJSON *ack;

	msg_text(text, sizeof(text), "m");
	ledger_add(a->id, b->id, MSG_ONE_CHAT, text);
	ack = rw_ack(a, request(a->c, chatc_build_one_chat(b->id, text)),
	    MSG_ONE_CHAT);
	if (rw_trace)
		fprintf(stderr, "  %s -> %s: %s %s\n", a->name, b->name, text,
		    ack != NULL ? jstr(ack, "status") : "refused");
	if (ack == NULL) {
		ledger[nledger - 1].never = 1;
		return;
	}
	st = jstr(ack, "status");
	ck_assert_msg(strcmp(st, "delivered") == 0 || strcmp(st, "stored") ==
	    0, "%s -> %s: ACK status \"%s\"", a->name, b->name, st);
	cJSON_Delete(ack);
}

/* GROUP_CHAT from a to the members to[0..n): refused (errno 13), the
 * online ones may have it all the same. */
static void
rw_gchat(struct user *a, long long gid, struct user **to, int n)
{
	char text[96];
	cJSON *ack;
	int i;

	msg_text(text, sizeof(text), "g");
	for (i = 0; i < n; i++)
		ledger_add(a->id, to[i]->id, MSG_GROUP_CHAT, text);
	ack = rw_ack(a, request(a->c, chatc_build_group_chat(gid, text)),
	    MSG_GROUP_CHAT);
	if (ack == NULL)
		for (i = 0; i < n; i++)
			ledger[nledger - 1 - i].maybe = 1;
	cJSON_Delete(ack);
}

/*
 * Once nothing more arrives: every online user's view of each friend
 * (its LOGIN_ACK's states, updated by the PRESENCE notices after it) is
 * the friend's state, as chat-protocol(7) promises.
 */
static void
rw_views_current(const char *when)
{
	struct user *all[RW_USERS];
	int i, j;

	for (i = 0; i < RW_USERS; i++)
		all[i] = &rw_users[i];
	quiet(all, RW_USERS);
	for (i = 0; i < RW_USERS; i++)
		for (j = 0; j < RW_USERS; j++)
			if (rw_users[i].c != NULL && rw_friend[i][j])
				ck_assert_msg(rw_view[i][j] == (rw_users[j].c !=
				    NULL ? 'n' : 'f'), "%s: user %s sees friend "
				    "%s %s, who is %s", when, rw_users[i].name,
				    rw_users[j].name, rw_view[i][j] == 'n' ?
				    "online" : "offline", rw_users[j].c !=
				    NULL ? "online" : "offline");
}

/* 1 when every online user's view of each friend is the friend's state. */
static int
rw_views_match(void)
{
	int i, j;

	for (i = 0; i < RW_USERS; i++)
		for (j = 0; j < RW_USERS; j++)
			if (rw_users[i].c != NULL && rw_friend[i][j] &&
			    rw_view[i][j] != (rw_users[j].c != NULL ? 'n' :
			    'f'))
				return 0;
	return 1;
}

/* Read until every view is current (bounded by PUSH_MS), then check. */
static void
rw_views_settle(const char *when)
{
	long long deadline = harness_now_ms() + PUSH_MS;
	int i;

	while (!rw_views_match() && harness_now_ms() < deadline)
		for (i = 0; i < RW_USERS; i++)
			(void)pump(&rw_users[i], 10);
	rw_views_current(when);
}

static int rw_from[PIPE_MAX];	/* the sender (index) of pipelined slot k */
static int rw_entry[PIPE_MAX];	/* the ledger entry of pipelined slot k */
static int rw_gone[PIPE_MAX];	/* its session ended before its ACK came */
static int rw_slots;

/* Read a's connection until every chat it pipelined has its ACK. */
static void
rw_acked(struct user *u, int a)
{
	long long deadline = harness_now_ms() + PUSH_MS;
	int k, n;

	for (;;) {
		for (k = n = 0; k < rw_slots; k++)
			n += rw_from[k] == a && !rw_gone[k] &&
			    pipe_ack[k].status[0] == '\0';
		if (n == 0)
			return;
		ck_assert_msg(harness_now_ms() < deadline, "user %s: %d "
		    "pipelined chat(s) without an ACK after %d ms", u->name,
		    n, PUSH_MS);
		(void)pump(u, 5);
	}
}

/* The pipelined chats of user a whose ACK has not come: never will, its
 * session ended. */
static void
rw_ended(int a)
{
	int k;

	for (k = 0; k < rw_slots; k++)
		if (rw_from[k] == a && pipe_ack[k].status[0] == '\0')
			rw_gone[k] = 1;
}

/* Read u's frames in order until its reply to msgid (a LOGIN_ACK for
 * LOGIN, an ACK for the rest), handling the others as they come. */
static cJSON *
rw_reply(struct user *u, int msgid)
{
	long long deadline = harness_now_ms() + REQ_MS, left;
	cJSON *m;

	for (;;) {
		left = deadline - harness_now_ms();
		ck_assert_msg(left > 0, "user %s: no reply to msgid %d within "
		    "%d ms", u->name, msgid, REQ_MS);
		m = chatc_recv(u->c, (int)left);
		ck_assert_msg(m != NULL, "user %s: %s", u->name,
		    chatc_error(u->c));
		if (msgid == MSG_LOGIN ? jnum(m, "msgid") == MSG_LOGIN_ACK :
		    jnum(m, "msgid") == MSG_ACK && jnum(m, "refmsgid") ==
		    msgid)
			return m;
		frame(u, m);
		cJSON_Delete(m);
	}
}

/*
 * Two to RW_STORM users at once: each offline one sends a LOGIN (to a
 * random host or nginx) and each online one a LOGINOUT, all before any
 * reply is read; frames before a reply are handled in the order they
 * came.
 */
#define RW_STORM	4

static void
rw_storm(int step)
{
	int who[RW_STORM], in[RW_STORM], n, i, j;
	struct user *u;
	cJSON *req, *ack;

	n = 2 + (int)(random() % (RW_STORM - 1));
	for (i = 0; i < n; i++) {
		do {
			who[i] = (int)(random() % RW_USERS);
			for (j = 0; j < i && who[j] != who[i]; j++)
				;
		} while (j < i);
		u = &rw_users[who[i]];
		in[i] = u->c == NULL;
		if (rw_trace)
			fprintf(stderr, "step %d: %d %s at once\n", step,
			    who[i], in[i] ? "logs in" : "logs out");
		if (in[i]) {
			u->c = xconnect((int)(random() % (NHOSTS + 1)) - 1);
			req = login_req(u->id, u->name);
		} else {
			/* Only a request with a seq is ACKed. */
			req = chatc_build(MSG_LOGINOUT);
			ck_assert(req != NULL);
			cJSON_AddStringToObject(req, "seq", "out");
		}
		ck_assert_int_eq(chatc_send(u->c, req), 0);
		cJSON_Delete(req);
	}
	for (i = 0; i < n; i++) {
		u = &rw_users[who[i]];
		if (!in[i]) {
			cJSON_Delete(ack_ok(u->c, rw_reply(u, MSG_LOGINOUT),
			    MSG_LOGINOUT));
			(void)pump(u, 0);
			harness_close(u->c);
			u->c = NULL;
			u->host = -1;
			rw_ended(who[i]);
			continue;
		}
		ack = rw_reply(u, MSG_LOGIN);
		if (chatc_errno(ack) != 0) {
			rw_refused(u, ack);
			cJSON_Delete(ack);
			harness_close(u->c);
			u->c = NULL;
			continue;
		}
		u->host = host_of(u->id);
		ck_assert_msg(u->host >= 0, "user %s: in no presence table "
		    "after LOGIN_ACK", u->name);
		rw_views_from(who[i], ack);
		take_offline(u, ack);
		cJSON_Delete(ack);
	}
}

/* Entries to u not received yet: its connection dropped, maybe lost. */
static void rw_dropped(const struct user *u);

/*
 * SIGKILL the worker of a random user online (or any worker when none
 * is).  Its users' connections end
 * with it: what was sent to them and not read, and what they had sent
 * without an answer yet, may be lost with it; the rest of the walk's
 * promises hold, and their friends are told they are offline.  Waits
 * until the master has cleared their sessions and started a worker in
 * its place.
 */
static void
rw_kill_worker(int step)
{
	struct presence_entry e;
	pid_t pids[NWORKERS], victim, now[NWORKERS];
	long long deadline;
	int h = (int)(random() % NHOSTS), i, k, n, on[RW_USERS];
	struct user *u;

	/* No checkpoint first: a logout whose notices are under way on
	 * the worker is told by another (test_worker_killed_during_logout). */
	ck_assert_int_eq(harness_chatd_workers(&H, h, pids, NWORKERS),
	    NWORKERS);
	victim = pids[random() % NWORKERS];
	/* The worker of a user online, when there is one. */
	i = (int)(random() % RW_USERS);
	for (k = 0; k < RW_USERS && rw_users[(i + k) % RW_USERS].c == NULL;
	    k++)
		;
	if (k < RW_USERS) {
		u = &rw_users[(i + k) % RW_USERS];
		h = u->host;
		ck_assert_int_eq(presence_lookup(pres[h], (uint32_t)u->id, &e),
		    PRESENCE_OK);
		victim = e.pid;
	}
	for (i = 0; i < RW_USERS; i++) {
		u = &rw_users[i];
		on[i] = u->c != NULL && presence_lookup(pres[h],
		    (uint32_t)u->id, &e) == PRESENCE_OK && e.pid == victim;
	}
	if (rw_trace)
		fprintf(stderr, "step %d: worker %ld of host %d killed\n", step,
		    (long)victim, h);
	ck_assert_int_eq(kill(victim, SIGKILL), 0);
	for (i = 0; i < RW_USERS; i++) {
		if (!on[i])
			continue;
		u = &rw_users[i];
		for (k = 0; k < rw_slots; k++)
			if (rw_from[k] == i && pipe_ack[k].status[0] == '\0') {
				rw_gone[k] = 1;
				ledger[rw_entry[k]].maybe = 1;
			}
		drop(u);
		rw_dropped(u);
		if (rw_trace)
			fprintf(stderr, "  %d was on it\n", i);
	}
	deadline = harness_now_ms() + RECOVER_MS;
	for (i = 0; i < RW_USERS; i++)
		while (on[i] && host_of(rw_users[i].id) != -1) {
			ck_assert_msg(harness_now_ms() < deadline, "user %s: "
			    "still in a presence table after its worker was "
			    "killed", rw_users[i].name);
			harness_sleep_ms(POLL_MS);
		}
	for (i = 0; i < RW_USERS; i++)
		if (on[i])
			wait_released(rw_users[i].id);
	for (;;) {
		n = harness_chatd_workers(&H, h, now, NWORKERS);
		for (k = 0; k < n && now[k] != victim; k++)
			;
		if (n == NWORKERS && k == n)
			break;
		ck_assert_msg(harness_now_ms() < deadline, "host %d: no "
		    "worker in the killed one's place within %d ms", h,
		    RECOVER_MS);
		harness_sleep_ms(POLL_MS);
	}
	/* Their friends are told, without any of them logging in. */
	rw_views_settle("after a worker was killed");
}

/* 1 when every user online on another host than h sees each friend on
 * h as offline. */
static int
rw_frozen_seen(int h)
{
	int i, j;

	for (i = 0; i < RW_USERS; i++)
		for (j = 0; j < RW_USERS; j++)
			if (rw_users[i].c != NULL && rw_users[i].host != h &&
			    rw_friend[i][j] && rw_users[j].c != NULL &&
			    rw_users[j].host == h && rw_view[i][j] != 'f')
				return 0;
	return 1;
}

/*
 * SIGSTOP the host of a random online user (host 0 when none is) past
 * presence_ttl: its users' claims expire, and every friend elsewhere
 * must be told they are offline.  Chats to them meanwhile are stored
 * (their claims are gone).  Then SIGCONT: the host renews the claims and
 * tells the friends "online" again; the stored messages must reach the
 * sessions, which lived on (the end of the walk checks they did).
 */
static void
rw_freeze_host(int step)
{
	long long deadline;
	pid_t master;
	int h = 0, i, k, on[RW_USERS], n = 0, m = 0, off[RW_USERS];

	rw_views_settle("before a host froze");
	i = (int)(random() % RW_USERS);
	for (k = 0; k < RW_USERS && rw_users[(i + k) % RW_USERS].c == NULL;
	    k++)
		;
	if (k < RW_USERS)
		h = rw_users[(i + k) % RW_USERS].host;
	for (i = 0; i < RW_USERS; i++) {
		if (rw_users[i].c != NULL && rw_users[i].host == h)
			on[n++] = i;
		else if (rw_users[i].c != NULL)
			off[m++] = i;
	}
	master = H.chatd[h].pid;
	if (rw_trace)
		fprintf(stderr, "step %d: host %d frozen (%d user(s) on it)\n",
		    step, h, n);
	ck_assert_int_eq(kill(-master, SIGSTOP), 0);
	deadline = harness_now_ms() + (TTL_S + 5) * 1000;
	while (!rw_frozen_seen(h)) {
		ck_assert_msg(harness_now_ms() < deadline, "step %d: a friend "
		    "of a user on host %d, frozen, not told it went offline "
		    "within %d s", step, h, TTL_S + 5);
		for (i = 0; i < m; i++)
			(void)pump(&rw_users[off[i]], 10);
	}
	/* Their claims are gone: stored, then pulled when it goes on. */
	for (k = 0; n > 0 && m > 0 && k < 4; k++)
		rw_chat(&rw_users[off[random() % m]],
		    &rw_users[on[random() % n]]);
	ck_assert_int_eq(kill(-master, SIGCONT), 0);
	if (rw_trace)
		fprintf(stderr, "step %d: host %d goes on\n", step, h);
	rw_views_settle("after a frozen host went on");
}

static void
rw_dropped(const struct user *u)
{
	int i;

	for (i = 0; i < nledger; i++)
		if (ledger[i].to == u->id && ledger[i].got == 0)
			ledger[i].maybe = 1;
}

/* The "tus" of from's messages to to grows in the order they were sent. */
static void
rw_tus_in_order(const struct user *from, const struct user *to)
{
	long long last = 0;
	int i;

	for (i = 0; i < nledger; i++) {
		if (ledger[i].from != from->id || ledger[i].to != to->id ||
		    ledger[i].got == 0)
			continue;
		ck_assert_msg(ledger[i].tus > last, "%s -> %s: \"%s\" has "
		    "tus %lld, not above %lld of a message sent before it",
		    from->name, to->name, ledger[i].msg, ledger[i].tus, last);
		last = ledger[i].tus;
	}
}


static void
random_walk(int outage)
{
	struct user u[RW_USERS], *all[RW_USERS], *to[RW_USERS], *a, *b;
	const char *env = getenv("IT_CLUSTER_SEED");
	unsigned seed, counts[9] = { 0 };
	long long gid, deadline;
	int i, j, k, n, step, dice, where, ai, member[RW_USERS];
	cJSON *ack;

	begin();
	rw_down = 0;
	rw_again_window = 0;
	seed = env != NULL && *env != '\0' ? (unsigned)strtoul(env, NULL, 10) :
	    (unsigned)time(NULL) ^ (unsigned)getpid();
	fprintf(stderr, "it_cluster: random walk, seed %u "
	    "(IT_CLUSTER_SEED=%u runs it again)\n", seed, seed);
	srandom(seed);
	rw_trace = getenv("IT_CLUSTER_TRACE") != NULL;
	for (i = 0; i < RW_USERS; i++) {
		user_new(&u[i], "rw");
		all[i] = &u[i];
	}
	rw_users = u;
	memset(rw_friend, 0, sizeof(rw_friend));
	memset(rw_view, 0, sizeof(rw_view));
	presence_hook = rw_presence;
	online_at(&u[0], VIA_NGINX);
	gid = group_new(&u[0]);
	member[0] = 1;
	for (i = 1; i < RW_USERS; i++) {
		online_at(&u[i], (int)(random() % (NHOSTS + 1)) - 1);
		join(&u[i], gid);
		member[i] = 1;
	}
	/* Friends at random, made while everyone is online. */
	for (i = 0; i < RW_USERS; i++)
		for (j = i + 1; j < RW_USERS; j++)
			if (random() % 2 == 0) {
				ack_ok_free(u[i].c, chatc_add_friend(u[i].c,
				    u[j].id, REQ_MS), MSG_ADD_FRIEND);
				rw_friend[i][j] = rw_friend[j][i] = 1;
				rw_view[i][j] = rw_view[j][i] = 'n';
			}
	rw_slots = 0;

	for (step = 0; step < RW_STEPS; step++) {
		if (outage && step == RW_STEPS / 3) {
			/* The runner's mariadbd (its stop's result says
			 * nothing here); refused connections do. */
			(void)harness_stop_mariadb(&H);
			deadline = harness_now_ms() + RECOVER_MS;
			while (harness_port_open(H.mariadb_port)) {
				ck_assert_msg(harness_now_ms() < deadline,
				    "mariadbd did not stop");
				harness_sleep_ms(POLL_MS);
			}
			rw_down = 1;
			/* The deletion of what was just pulled may have
			 * failed: those come again if their user logs in
			 * before chatd's next attempt succeeds. */
			for (i = 0; i < nledger; i++)
				if (ledger[i].got > 0)
					ledger[i].again = 1;
			rw_again_window = 1;
			if (rw_trace)
				fprintf(stderr, "step %d: mariadbd stopped\n",
				    step);
		}
		if (outage && step == RW_STEPS / 2) {
			ck_assert_msg(harness_start_mariadb(&H) == 0,
			    "mariadbd did not start again");
			if (rw_trace)
				fprintf(stderr, "step %d: mariadbd back\n",
				    step);
			/* Until a login works again (the job threads try
			 * the database every db_retry_interval). */
			deadline = harness_now_ms() + RECOVER_MS;
			for (i = 0; i < RW_USERS && u[i].c != NULL; i++)
				;
			while (i < RW_USERS && rw_login(i, VIA_NGINX) != 0) {
				ck_assert_msg(harness_now_ms() < deadline,
				    "logins refused %d ms after mariadbd came "
				    "back", RECOVER_MS);
				harness_sleep_ms(POLL_MS);
			}
			/* chatd's next attempt at the refused deletions
			 * (db_retry_interval, 2 s): from then on every
			 * message comes once. */
			harness_sleep_ms(RW_DELETES_MS);
			rw_again_window = 0;
		}
		if (step == RW_STEPS / 4 || step == 3 * RW_STEPS / 4)
			rw_kill_worker(step);
		if (!outage && step == RW_STEPS / 2)
			rw_freeze_host(step);
		ai = (int)(random() % RW_USERS);
		a = &u[ai];
		dice = (int)(random() % 100);
		if (a->c == NULL) {
			/* Offline: log in somewhere (nginx: -1). */
			where = (int)(random() % (NHOSTS + 1)) - 1;
			if (rw_trace)
				fprintf(stderr, "step %d: %d logs in at %d\n",
				    step, ai, where);
			k = rw_login(ai, where);
			if (rw_trace)
				fprintf(stderr, "step %d: %d %s %d\n", step,
				    ai, k == 0 ? "is on host" : "refused, errno",
				    k == 0 ? a->host : k);
			counts[4]++;
		} else if (dice < 45) {
			do
				b = &u[random() % RW_USERS];
			while (b == a);
			rw_chat(a, b);
			counts[0]++;
		} else if (dice < 55 && member[ai]) {
			for (i = n = 0; i < RW_USERS; i++)
				if (&u[i] != a && member[i])
					to[n++] = &u[i];
			rw_gchat(a, gid, to, n);
			counts[1]++;
		} else if (dice < 60) {
			ack = rw_ack(a, member[ai] ? chatc_quit_group(a->c, gid,
			    REQ_MS) : chatc_add_group(a->c, gid, REQ_MS),
			    member[ai] ? MSG_QUIT_GROUP : MSG_ADD_GROUP);
			if (ack != NULL)
				member[ai] = !member[ai];
			cJSON_Delete(ack);
			counts[6]++;
		} else if (dice < 70) {
			n = 1 + (int)(random() % RW_BURST);
			ck_assert_int_le(rw_slots + n, PIPE_MAX);
			for (i = 0; i < n; i++) {
				do
					b = &u[random() % RW_USERS];
				while (b == a);
				rw_from[rw_slots] = ai;
				rw_gone[rw_slots] = 0;
				chat_pipelined(a, b, rw_slots);
				rw_entry[rw_slots++] = nledger - 1;
			}
			counts[7] += (unsigned)n;
		} else if (dice < 80) {
			if (rw_trace)
				fprintf(stderr, "step %d: %d logs out (host "
				    "%d)\n", step, ai, a->host);
			logout(a, 0);
			rw_ended(ai);
			counts[2]++;
		} else if (dice < 84) {
			rw_storm(step);
			counts[8]++;
		} else if (dice < 88) {
			/* A client that closes with replies unread makes its
			 * kernel reset the connection: its last requests
			 * may then be lost.  Not the case tested here. */
			rw_acked(a, ai);
			if (rw_trace)
				fprintf(stderr, "step %d: %d drops (host %d)\n",
				    step, ai, a->host);
			drop(a);
			rw_dropped(a);
			/* Until its host has seen the close, a message to a
			 * is written to the dead socket, and a login
			 * elsewhere is refused (a duplicate). */
			deadline = harness_now_ms() + SETTLE_MS;
			while (host_of(a->id) != -1) {
				ck_assert_msg(harness_now_ms() < deadline,
				    "user %s: in a presence table %d ms after "
				    "its connection closed", a->name,
				    SETTLE_MS);
				harness_sleep_ms(2);
			}
			wait_released(a->id);
			counts[3]++;
		} else {
			for (i = 0; i < RW_USERS; i++)
				(void)pump(&u[i], 0);
			counts[5]++;
		}
		for (i = 0; i < RW_USERS; i++)
			if (u[i].c != NULL)
				ck_assert_msg(host_of(u[i].id) == u[i].host,
				    "step %d: user %s logged in on host %d is "
				    "in the table of host %d", step, u[i].name,
				    u[i].host, host_of(u[i].id));
	}
	fprintf(stderr, "it_cluster: random walk: %u 1:1, %u pipelined, %u "
	    "group, %u group changes, %u logouts, %u drops, %u logins, %u "
	    "storms, %u reads; %d messages to account for\n", counts[0],
	    counts[7], counts[1], counts[6], counts[2], counts[3], counts[4],
	    counts[8], counts[5], nledger);

	/* Every pipelined chat answered that can be: one refused must not
	 * arrive; one whose answer was lost with its session (once the
	 * database was stopped) may or may not. */
	for (i = 0; i < RW_USERS; i++)
		if (u[i].c != NULL)
			rw_acked(&u[i], i);
	for (k = 0; k < rw_slots; k++) {
		if (strcmp(pipe_ack[k].status, "error") == 0) {
			ck_assert_msg(rw_down && pipe_ack[k].err ==
			    CERR_UNAVAILABLE, "pipelined chat %d from %s: "
			    "errno %d", k, u[rw_from[k]].name, pipe_ack[k].err);
			ledger[rw_entry[k]].never = 1;
		} else if (pipe_ack[k].status[0] == '\0' && rw_down)
			ledger[rw_entry[k]].maybe = 1;
	}
	rw_views_current("after the walk");
	/* Everyone online: what was stored arrives. */
	deadline = harness_now_ms() + RECOVER_MS;
	for (i = 0; i < RW_USERS; i++)
		while (u[i].c == NULL && rw_login(i, VIA_NGINX) != 0) {
			ck_assert_msg(harness_now_ms() < deadline, "user %s: "
			    "login refused %d ms after the database came "
			    "back", u[i].name, RECOVER_MS);
			harness_sleep_ms(POLL_MS);
		}
	deadline = harness_now_ms() + PUSH_MS;
	do {
		for (i = k = 0; i < RW_USERS; i++) {
			(void)pump(&u[i], 5);
			k += ledger_missing(u[i].id);
		}
	} while (k > 0 && harness_now_ms() < deadline);
	await(all, RW_USERS, 0);
	rw_views_current("everyone logged in");
	/* A pipelined chat's ACK may be unread when its sender logged out
	 * (the session ended first); one that came must not be an error
	 * (but errno 13, checked above). */
	for (k = 0; k < rw_slots; k++)
		ck_assert_msg(pipe_ack[k].status[0] == '\0' ||
		    ledger[rw_entry[k]].never ||
		    (pipe_ack[k].err == 0 && (strcmp(pipe_ack[k].status,
		    "delivered") == 0 || strcmp(pipe_ack[k].status, "stored") ==
		    0)), "pipelined chat %d from %s: %s, errno %d", k,
		    u[rw_from[k]].name, pipe_ack[k].status, pipe_ack[k].err);
	for (i = 0; i < RW_USERS; i++)
		for (j = 0; j < RW_USERS; j++)
			if (i != j)
				rw_tus_in_order(&u[i], &u[j]);
	ledger_check();
	for (i = 0; i < RW_USERS; i++)
		logout(&u[i], 0);
	presence_hook = NULL;
	/* Ours (a child of this test): the next fixture starts the
	 * runner's again. */
	if (outage)
		(void)harness_stop_mariadb(&H);
}

START_TEST(test_random_walk)
{
	random_walk(0);
}
END_TEST

/*
 * The same with mariadbd stopped from a third of the walk to its half:
 * logins and requests that need it may be refused with errno 13 (a chat
 * refused so must never arrive, a group message refused may have reached
 * the members online); everything else holds, once it is back.  A
 * message received from just before the stop until chatd has had time
 * to delete it again (db_retry_interval after the restart) may come
 * twice: its deletion was refused (chat-protocol(7)).
 */
START_TEST(test_random_walk_db_outage)
{
	random_walk(1);
}
END_TEST

/* --- a Redis address that takes no connection --------------------------- */

/*
 * A listening socket whose accept queue is full (backlog 0, one
 * connection never accepted): the kernel drops every further SYN, so a
 * connect to it neither completes nor fails, as to a host that is gone.
 * Its port; *fill gets the connection that fills the queue.
 */
static int
black_hole(int *lfd, int *fill)
{
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);
	struct pollfd pfd;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_ne(*lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC,
	    0), -1);
	ck_assert_int_eq(bind(*lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(*lfd, 0), 0);
	ck_assert_int_eq(getsockname(*lfd, (struct sockaddr *)&sa, &salen),
	    0);
	ck_assert_int_ne(*fill = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC,
	    0), -1);
	ck_assert_int_eq(connect(*fill, (struct sockaddr *)&sa, sizeof(sa)),
	    0);
	/* A second connect must now hang: the hole works on this host. */
	pfd.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0);
	ck_assert_int_ne(pfd.fd, -1);
	ck_assert_msg(connect(pfd.fd, (struct sockaddr *)&sa, sizeof(sa)) ==
	    -1 && errno == EINPROGRESS, "connect to the full queue: %s",
	    strerror(errno));
	pfd.events = POLLOUT;
	ck_assert_msg(poll(&pfd, 1, 300) == 0, "a connect to a listening "
	    "socket with a full accept queue completed");
	(void)close(pfd.fd);
	return ntohs(sa.sin_port);
}

/*
 * chatd configured with a Redis whose address takes no connection (a
 * full accept queue: SYNs dropped, as for a host that is gone): the
 * workers give each connect up after redis_timeout and try again, the
 * loop answers meanwhile (a LOGIN at once with errno 13, not after the
 * kernel's minutes of SYN retries), and once a redis-server listens at
 * that address the next attempt connects: logins work, claims are made
 * there.  (Without the connect timeout a link waits for the kernel's
 * SYN retries, 1, 3, 7, 15 s ... apart, and nothing is logged.)
 */
#define HOLE_TRIES	2	/* connects given up before Redis comes */

START_TEST(test_redis_black_hole)
{
	struct harness rb;
	struct user u;
	struct chatc *c;
	char conf[256];
	long long t0, deadline;
	int lfd, fill, port, timedout0, e;
	cJSON *ack;

	begin();
	user_new(&u, "hole");
	port = black_hole(&lfd, &fill);
	timedout0 = harness_log_count(&H, MOVER, "connect timed out "
	    "(redis_timeout)");
	/* debug: a link's failures after its first are logged there. */
	(void)snprintf(conf, sizeof(conf), "[server]\nworkers = 1\n"
	    "node_id = mover\nlog_level = debug\n[redis]\nredis_port = %d\n"
	    "redis_timeout = 1\n"
	    "redis_retry_max = 1\npresence_ttl = 60\n", port);
	ck_assert_msg(harness_start_chatd(&H, MOVER, conf) == 0,
	    "chatd-%d did not start with Redis unreachable", MOVER);

	/* Each link (subscriber, publisher) gives up and tries again. */
	deadline = harness_now_ms() + RECOVER_MS;
	while (harness_log_count(&H, MOVER, "connect timed out "
	    "(redis_timeout)") < timedout0 + 2 * HOLE_TRIES) {
		ck_assert_msg(harness_now_ms() < deadline, "chatd-%d: %d "
		    "Redis connect(s) given up within %d ms, want %d",
		    MOVER, harness_log_count(&H, MOVER, "connect timed out "
		    "(redis_timeout)") - timedout0, RECOVER_MS,
		    2 * HOLE_TRIES);
		harness_sleep_ms(POLL_MS);
	}
	/* The loop is not held by the connects: refused at once. */
	c = xconnect(MOVER);
	t0 = harness_now_ms();
	ack = chatc_login(c, u.id, PASSWORD, REQ_MS);
	ck_assert_msg(ack != NULL, "login with Redis unreachable: %s",
	    chatc_error(c));
	e = chatc_errno(ack);
	cJSON_Delete(ack);
	t0 = harness_now_ms() - t0;
	ck_assert_msg(e == CERR_UNAVAILABLE, "login with Redis unreachable: "
	    "errno %d", e);
	ck_assert_msg(t0 < 1000, "login with Redis unreachable answered "
	    "after %lld ms", t0);
	harness_close(c);

	/* A redis-server at that address now. */
	(void)close(fill);
	(void)close(lfd);
	rb = H;
	rb.redis_pid = 0;
	rb.redis_port = port;
	ck_assert_msg(harness_start_redis(&rb) == 0, "redis-server did not "
	    "start on port %d", port);
	c = mover_login(&u, &rb);
	harness_close(c);
	ck_assert_int_eq(harness_signal_chatd(&H, MOVER, SIGTERM, 1), 0);
	ck_assert_int_eq(harness_stop_redis(&rb), 0);
}
END_TEST

/* --- claims released many at a time ------------------------------------ */

#define BULK		510	/* sessions: more than one release batch (500) */

/* Log in every one of ids on instance MOVER; their connections. */
static void
bulk_login(const long long *ids, struct chatc **c)
{
	cJSON *ack;
	int i;

	for (i = 0; i < BULK; i++) {
		c[i] = xconnect(MOVER);
		ack = chatc_login(c[i], ids[i], PASSWORD, REQ_MS);
		ck_assert_msg(ack != NULL && chatc_errno(ack) == 0,
		    "login %lld on the bulk host: %s", ids[i],
		    ack != NULL ? jtext(ack) : chatc_error(c[i]));
		cJSON_Delete(ack);
	}
}

/* Claims of ids in the cluster's Redis held by node "bulk". */
static int
bulk_claims(const long long *ids)
{
	char val[256];
	int i, n = 0;

	for (i = 0; i < BULK; i++) {
		ck_assert_int_eq(claim_of(ids[i], val, sizeof(val)), 0);
		n += strncmp(val, "bulk|", 5) == 0;
	}
	return n;
}

/* Wait (bounded by SETTLE_MS, far below presence_ttl) until none of ids
 * has a claim. */
static void
bulk_released(const long long *ids, const char *after)
{
	long long deadline = harness_now_ms() + SETTLE_MS;
	int n;

	while ((n = bulk_claims(ids)) > 0) {
		ck_assert_msg(harness_now_ms() < deadline, "%d of %d claims "
		    "still in Redis %d ms after %s", n, BULK, SETTLE_MS,
		    after);
		harness_sleep_ms(POLL_MS);
	}
}

/*
 * Claims are released CLUSTER_RELEASE_BATCH to a Redis command, and
 * every one of them: BULK sessions (two batches) on a host of one worker
 * with presence_ttl 60, so only a release can remove them in the time
 * allowed.  A SIGKILLed worker's, by its master, after Redis lost its
 * scripts (SCRIPT FLUSH: the batch goes again as EVAL); and the ones a
 * host SIGKILLed whole left, when it starts again.  Users are made with
 * SQL, with the password hash of one registered through chatd.
 */
START_TEST(test_release_in_batches)
{
	static long long ids[BULK];
	static struct chatc *c[BULK];
	char sql[1024], *out, *p, *end, name[64], type, res[64];
	const char *flush[2] = { "SCRIPT", "FLUSH" };
	size_t outlen = BULK * 24;
	long long first, num;
	pid_t w, master;
	int i;

	begin();
	ck_assert_msg(harness_start_chatd(&H, MOVER, "[server]\nworkers = 1\n"
	    "node_id = bulk\n[redis]\npresence_ttl = 60\n") == 0,
	    "chatd-%d did not start", MOVER);
	first = register_user("bulk", name, sizeof(name), MOVER);
	(void)snprintf(sql, sizeof(sql), "INSERT INTO `%s`.users (name, "
	    "password) WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT "
	    "n + 1 FROM s WHERE n < %d) SELECT CONCAT('%s_', n), (SELECT "
	    "password FROM `%s`.users WHERE id = %lld) FROM s", H.db_name,
	    BULK - 1, name, H.db_name, first);
	ck_assert_int_eq(harness_sql(&H, sql), 0);
	(void)snprintf(sql, sizeof(sql), "SELECT id FROM `%s`.users WHERE "
	    "id = %lld OR name LIKE '%s\\_%%' ORDER BY id", H.db_name, first,
	    name);
	ck_assert_ptr_nonnull(out = malloc(outlen));
	ck_assert_int_eq(harness_sql_value(&H, sql, out, outlen), 0);
	for (i = 0, p = out; i < BULK && *p != '\0'; i++, p = end) {
		ids[i] = strtoll(p, &end, 10);
		ck_assert_msg(end != p && ids[i] > 0, "user id \"%.20s\"", p);
		while (*end == '\n')
			end++;
	}
	free(out);
	ck_assert_int_eq(i, BULK);

	/* A worker killed: its master releases the claims. */
	bulk_login(ids, c);
	ck_assert_int_eq(bulk_claims(ids), BULK);
	ck_assert_int_eq(redis_cmd(&type, res, sizeof(res), &num, 2, flush),
	    0);
	w = mover_worker(0);
	ck_assert_int_eq(kill(w, SIGKILL), 0);
	bulk_released(ids, "the worker was killed");
	ck_assert_int_eq(harness_log_count(&H, MOVER, "worker 0: released "
	    "510 cluster claim(s)"), 1);
	for (i = 0; i < BULK; i++)
		harness_close(c[i]);
	(void)mover_worker(w);

	/* The host killed whole: released when it starts again. */
	bulk_login(ids, c);
	ck_assert_int_eq(bulk_claims(ids), BULK);
	master = H.chatd[MOVER].pid;
	w = mover_worker(0);
	/* The group at once: a worker whose master died first gets
	 * SIGTERM (PR_SET_PDEATHSIG) and, were it to run on, would log its
	 * users out as a stop does. */
	(void)kill(-master, SIGKILL);
	(void)kill(master, SIGKILL);
	(void)kill(w, SIGKILL);
	{
		long long deadline = harness_now_ms() + SETTLE_MS;

		while (alive(master) || alive(w)) {
			ck_assert_msg(harness_now_ms() < deadline, "the bulk "
			    "host still alive after SIGKILL");
			harness_sleep_ms(10);
		}
	}
	for (i = 0; i < BULK; i++)
		harness_close(c[i]);
	ck_assert_int_eq(bulk_claims(ids), BULK);
	ck_assert_msg(harness_start_chatd(&H, MOVER, "[server]\nworkers = 1\n"
	    "node_id = bulk\n[redis]\npresence_ttl = 60\n") == 0,
	    "chatd-%d did not start again", MOVER);
	ck_assert_int_eq(bulk_claims(ids), 0);
	ck_assert_int_eq(harness_log_count(&H, MOVER, "released 510 cluster "
	    "claim(s) of node bulk left by an earlier run"), 1);
	ck_assert_int_eq(harness_signal_chatd(&H, MOVER, SIGTERM, 1), 0);
}
END_TEST

/* --- fixture --------------------------------------------------------------- */

/* redis_prefix from instance 0's config. */
static void
read_prefix(void)
{
	char line[512];
	FILE *fp;

	if ((fp = fopen(H.chatd[0].conf_path, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (sscanf(line, "redis_prefix = %127s", prefix) == 1)
			continue;
	(void)fclose(fp);
}

/* A login + logout of host i's probe user: 0, or the errno. */
static int
probe_login(int i)
{
	struct chatc *c;
	char err[256];
	cJSON *r;
	int e;

	if ((c = chatc_connect("127.0.0.1", H.chatd[i].port, REQ_MS, err,
	    sizeof(err))) == NULL)
		return -1;
	r = chatc_login(c, probe_ids[i], PASSWORD, REQ_MS);
	e = chatc_errno(r);
	cJSON_Delete(r);
	if (e == 0)
		cJSON_Delete(chatc_logout(c, REQ_MS));
	chatc_close(c);
	return e;
}

static long long
probe_register(int i)
{
	struct chatc *c;
	char err[256], name[64];
	long long id = 0;
	cJSON *r;

	(void)snprintf(name, sizeof(name), "probe%d_%ld", i, (long)getpid());
	if ((c = chatc_connect("127.0.0.1", H.chatd[i].port, REQ_MS, err,
	    sizeof(err))) == NULL)
		return 0;
	r = chatc_register(c, name, PASSWORD, REQ_MS);
	if (r != NULL && chatc_errno(r) == 0)
		id = (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(r,
		    "id"));
	cJSON_Delete(r);
	chatc_close(c);
	return id;
}

/* Every host logs users in, and every worker is subscribed. */
static int
cluster_ready(void)
{
	long long deadline = harness_now_ms() + RECOVER_MS, subs = -1;
	int i, e = -1;

	for (;;) {
		subs = numsub("groups");
		if (subs == NHOSTS * NWORKERS) {
			for (i = 0; i < NHOSTS; i++)
				if ((e = probe_login(i)) != 0)
					break;
			if (i == NHOSTS)
				return 0;
		}
		if (harness_now_ms() >= deadline)
			break;
		harness_sleep_ms(100);
	}
	fprintf(stderr, "it_cluster: cluster not ready within %d ms (%lld "
	    "subscribers to the groups channel, probe login errno %d)\n",
	    RECOVER_MS, subs, e);
	return -1;
}

/*
 * Run before every TCase, in the runner: the first time, start
 * everything; later, bring back what a test took down (a killed host, a
 * stopped Redis) on the same ports.
 */
static void
setup(void)
{
	static const int inst[NHOSTS] = { 0, 1, 2 };
	char extra[256];
	int i;

	if (!harness_tried) {
		harness_tried = 1;
		harness_ok = harness_init(&H) == 0 &&
		    harness_start_mariadb(&H) == 0 &&
		    harness_start_redis(&H) == 0;
		for (i = 0; harness_ok && i < NHOSTS; i++)
			harness_ok = harness_start_chatd(&H, i, EXTRA_CONF) ==
			    0;
		harness_ok = harness_ok &&
		    harness_start_nginx(&H, inst, NHOSTS) == 0;
		if (harness_ok) {
			read_prefix();
			for (i = 0; i < NHOSTS; i++)
				if ((probe_ids[i] = probe_register(i)) == 0)
					harness_ok = 0;
		}
	} else if (harness_ok) {
		if (!alive(H.mariadb_pid)) {
			harness_ok = harness_start_mariadb(&H) == 0;
			/* A job thread whose connect failed while it was
			 * down answers errno 13 for db_retry_interval (2 s)
			 * before it tries again. */
			harness_sleep_ms(DB_BACKOFF_MS);
		}
		if (harness_ok && !alive(H.redis_pid))
			harness_ok = harness_start_redis(&H) == 0;
		for (i = 0; harness_ok && i < NHOSTS; i++) {
			if (alive(H.chatd[i].pid))
				continue;
			(void)snprintf(extra, sizeof(extra), "%s[server]\n"
			    "listen = 127.0.0.1:%d\n", EXTRA_CONF,
			    H.chatd[i].port);
			harness_ok = harness_start_chatd(&H, i, extra) == 0;
		}
		if (harness_ok && !alive(H.nginx_pid))
			harness_ok = harness_start_nginx(&H, inst,
			    NHOSTS) == 0;
	}
	if (harness_ok && cluster_ready() == -1)
		harness_ok = 0;
	if (harness_ok) {
		/* On again should a test have stopped there. */
		const char *argv[3] = { "DEBUG", "SET-ACTIVE-EXPIRE", "1" };
		char type, out[64];
		long long num;

		(void)redis_cmd(&type, out, sizeof(out), &num, 3, argv);
	}
	if (!harness_ok)
		fprintf(stderr, "it_cluster: the servers are not up (see "
		    "above); the tests will fail\n");
}

static void
teardown(void)
{
	/* main stops everything after the last TCase */
}

/* --- runner ---------------------------------------------------------------- */

static void
add_tcase(Suite *s, const char *name, const TTest *const *tests, size_t n)
{
	(void)harness_add_tcase(s, "IT_CLUSTER_ONLY", name, setup, teardown,
	    close_all, TEST_TIMEOUT_S, tests, n);
}

static Suite *
cluster_suite(void)
{
	const TTest *const chat[] = {
		test_spread_and_chat,
		test_offline_nowhere,
		test_logout_during_flood,
		test_duplicate_login,
		test_stale_claim_of_this_host,
		test_logout_ack_after_release,
		test_presence_logins_at_once,
		test_presence_logout_during_login,
		test_message_during_refused_login,
		test_friends_presence,
		test_group_cache_cross_host,
		test_script_flush,
		test_pull_hint_to_unclaimed_user,
		test_worker_inherits_one_socket,
	};
	/* Messages right after a LOGIN_ACK or a join's ACK. */
	const TTest *const after_ack[] = {
		test_chat_right_after_login,
		test_group_join_then_chat,
	};
	/* Each takes something down: a TCase of its own, so the next
	 * fixture brings it back. */
	const TTest *const killed[] = { test_host_killed };
	const TTest *const killed_told[] = { test_host_killed_friends_told };
	const TTest *const frozen_told[] = { test_frozen_host_friends_told };
	const TTest *const swept[] = { test_host_killed_friends_told_sweep };
	const TTest *const restarted[] = { test_host_restarted_friends_told };
	const TTest *const stopped[] = { test_host_stopped };
	const TTest *const redis[] = { test_redis_restart };
	const TTest *const rstop[] = { test_redis_stopped };
	const TTest *const outage[] = {
		test_group_cache_after_redis_outage,
	};
	const TTest *const pubdrop[] = {
		test_online_user_after_publisher_drop,
		test_group_quit_during_publisher_drop,
	};
	const TTest *const frozen[] = { test_publish_to_frozen_host };
	const TTest *const flood[] = { test_subscriber_stalled_under_flood };
	const TTest *const stale[] = {
		test_friend_state_after_redis_restart,
	};
	const TTest *const moves[] = { test_reload_moves_redis };
	const TTest *const bulk[] = { test_release_in_batches };
	const TTest *const hole[] = { test_redis_black_hole };
	const TTest *const wkill[] = { test_worker_killed_friends_told };
	const TTest *const lkill[] = { test_worker_killed_during_logout };
	const TTest *const walk[] = { test_random_walk };
	const TTest *const walkdb[] = { test_random_walk_db_outage };
	Suite *s = suite_create("it_cluster");

	add_tcase(s, "cluster", chat, sizeof(chat) / sizeof(chat[0]));
	add_tcase(s, "host killed", killed, 1);
	add_tcase(s, "host killed, friends told", killed_told, 1);
	add_tcase(s, "host frozen, friends told", frozen_told, 1);
	add_tcase(s, "host killed, claims swept", swept, 1);
	add_tcase(s, "host restarted, friends told", restarted, 1);
	add_tcase(s, "host stopped", stopped, 1);
	add_tcase(s, "redis restart", redis, 1);
	add_tcase(s, "redis stopped", rstop, 1);
	add_tcase(s, "right after an ACK", after_ack, 2);
	add_tcase(s, "redis outage", outage, 1);
	add_tcase(s, "publisher drop", pubdrop, 2);
	add_tcase(s, "frozen host", frozen, 1);
	add_tcase(s, "stalled subscriber", flood, 1);
	add_tcase(s, "stale lookups", stale, 1);
	add_tcase(s, "reload moves redis", moves, 1);
	add_tcase(s, "claims released in batches", bulk, 1);
	add_tcase(s, "redis black hole", hole, 1);
	add_tcase(s, "worker killed", wkill, 1);
	add_tcase(s, "worker killed during a logout", lkill, 1);
	/* Before another TCase: its fixture starts mariadbd again. */
	add_tcase(s, "random walk, database outage", walkdb, 1);
	add_tcase(s, "random walk", walk, 1);
	return s;
}

int
main(void)
{
	return harness_run_suite(cluster_suite(), &H, harness_tried);
}
