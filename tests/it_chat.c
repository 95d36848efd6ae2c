/*
 * it_chat.c - black-box tests of one-host chat: a real chatd with four
 * workers, a private MariaDB and Redis (tests/harness.c), spoken to
 * through the client library (client/chatc.h) and, for the classic
 * session, as raw NUL-terminated JSON.
 *
 * Covered: ONE_CHAT online across workers, offline storage and paging
 * past offline_batch, friends (also two users adding each other at once)
 * and PRESENCE pushes, groups and GROUP_CHAT
 * (with the per-worker membership cache), UTF-8 text, a classic client
 * that never sends seq, a worker SIGKILLed while messages are being
 * delivered to its users, a receiver that stops reading until chatd
 * drops it as a slow consumer (on a chatd instance of its own), on
 * another instance with small queues between its two workers, pipelined
 * bursts across workers (one to one, a group fan-out from several
 * senders, a group whose cache was just dropped) that must arrive live,
 * once and in order without falling back to Redis or the offline store,
 * and, on a third, a graceful stop (SIGTERM) with megabytes of chats
 * still queued in chatd for a receiver: written to it while it reads,
 * stored offline for its next login while it does not, lost in neither
 * case.
 *
 * Which worker serves a user is never left to luck.  The presence table
 * is mapped read-only, and a throwaway "probe" user logs in on each new
 * connection to learn its worker slot (SO_REUSEPORT spreads connections
 * by a hash of the source port), then logs out; the connection, now
 * anonymous but still on that worker, is handed to the user who needs
 * that slot.  So a real user's LOGIN_ACK (with its offline messages) is
 * never spent on a connection that turns out to be on the wrong worker.
 *
 * The servers are started once in an unchecked fixture (the slow
 * consumer and backpressure TCases each add a chatd instance of their
 * own; the graceful-stop tests start and stop theirs); each test runs
 * in its own forked process with user and group names made unique by pid
 * and a counter, since all tests share one database.  Every wait is
 * bounded.
 *
 * For debugging: IT_CHAT_ONLY=test_a,test_b runs only those tests;
 * IT_CHAT_VERBOSE=1 prints what the worker-kill tests saw.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/types.h>

#include <errno.h>
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

/* The instance every test talks to. */
#define NWORKERS	4
#define OFFLINE_BATCH	5
#define EXTRA_CONF	"[server]\nworkers = 4\noffline_batch = 5\n"
#define MAX_MESSAGE	4096	/* chatd's default max_message, bytes */

#define PASSWORD	"it-chat-Pa55"
#define ALL_SLOTS	((1u << NWORKERS) - 1)

/* Bounds, in milliseconds. */
#define REQ_MS		5000	/* one request until its reply */
#define PUSH_MS		5000	/* a frame that must arrive */
#define QUIET_MS	400	/* waiting for a frame that must not come */
#define RETRY_MS	10000	/* polling for an asynchronous effect */
#define RELOGIN_MS	20000	/* logging in again after a worker died */
#define RESPAWN_MS	35000	/* a killed worker replaced (backoff is at
				 * most respawn_delay_max, 30 s) */
#define POLL_MS		50	/* between polls */

#define MAX_PROBES	64	/* connections tried to reach wanted workers */
#define POOL_MAX	32	/* anonymous connections kept, slot known */
#define TEST_TIMEOUT_S	60	/* Check's limit for one test */

static struct harness H;
static int harness_ok;		/* the fixture started everything */
static int harness_tried;	/* setup ran (once for every TCase) */
static int inst;		/* the chatd instance a test talks to */
static int main_inst;		/* begin()'s: 0, or NOREDIS_INST (-1 when
				 * that did not start) */

/* Per test process (each test is forked from the runner). */
static int name_seq;
static struct presence *pres;
static long long probe_id;
static struct {
	struct chatc *c;
	int slot;
} pool[POOL_MAX];
static int npool;

struct user {
	long long id;
	char name[PROTO_NAME_MAX + 1];
	struct chatc *c;	/* NULL while offline */
	int slot;		/* worker slot while online */
};

/* --- fixture ------------------------------------------------------------ */

/*
 * The servers are shared by every TCase: started by the first one's
 * fixture, stopped at the end of main (or by the harness at exit).
 */
static void
setup(void)
{
	if (harness_tried)
		return;
	harness_tried = 1;
	harness_ok = harness_init(&H) == 0 &&
	    harness_start_mariadb(&H) == 0 &&
	    harness_start_redis(&H) == 0 &&
	    harness_start_chatd(&H, 0, EXTRA_CONF) == 0;
	if (!harness_ok)
		fprintf(stderr, "it_chat: starting the servers failed (see "
		    "above); every test will fail\n");
}

static void
teardown(void)
{
	/* main stops them, after the last TCase */
}

/*
 * Some of the one-host tests again on an instance without Redis (one
 * host on its own, redis_host empty): instance 1, free between the
 * graceful-stop tests, which start and stop it themselves.
 */
#define NOREDIS_INST	1
#define NOREDIS_CONF	EXTRA_CONF "[redis]\nredis_host =\n"

static void
noredis_setup(void)
{
	setup();
	main_inst = harness_ok && harness_start_chatd(&H, NOREDIS_INST,
	    NOREDIS_CONF) == 0 ? NOREDIS_INST : -1;
}

static void
noredis_teardown(void)
{
	main_inst = 0;
	if (H.chatd[NOREDIS_INST].pid > 0 &&
	    harness_signal_chatd(&H, NOREDIS_INST, SIGTERM, 1) != 0)
		fprintf(stderr, "it_chat: chatd-%d did not exit cleanly on "
		    "SIGTERM\n", NOREDIS_INST);
}

/* --- small helpers ------------------------------------------------------ */

static long long
wall_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long
now_us(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A name no other test (process) uses: tag_pid_n. */
static void
unique_name(char *buf, size_t len, const char *tag)
{
	int n;

	n = snprintf(buf, len, "%s_%ld_%d", tag, (long)getpid(), name_seq++);
	ck_assert_msg(n > 0 && (size_t)n < len, "name too long for %s", tag);
}

static long long
jnum(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	char *s;

	if (!cJSON_IsNumber(v)) {
		s = cJSON_PrintUnformatted(o);
		ck_abort_msg("\"%s\" is not a number in %s", key, s);
	}
	return (long long)v->valuedouble;
}

static const char *
jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	char *s;

	if (!cJSON_IsString(v)) {
		s = cJSON_PrintUnformatted(o);
		ck_abort_msg("\"%s\" is not a string in %s", key, s);
	}
	return v->valuestring;
}

static const cJSON *
jarr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	char *s;

	if (!cJSON_IsArray(v)) {
		s = cJSON_PrintUnformatted(o);
		ck_abort_msg("\"%s\" is not an array in %s", key, s);
	}
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

static cJSON *
req_new(int msgid)
{
	cJSON *r = cJSON_CreateObject();

	ck_assert(r != NULL);
	cJSON_AddNumberToObject(r, "msgid", msgid);
	return r;
}

/* chatc_request that frees req and never returns NULL. */
static cJSON *
request(struct chatc *c, cJSON *req)
{
	cJSON *reply;

	reply = chatc_request(c, req, REQ_MS);
	cJSON_Delete(req);
	ck_assert_msg(reply != NULL, "no reply: %s", chatc_error(c));
	return reply;
}

/* Assert reply is the ACK (12) of refmsgid with errno 0; returns it. */
static cJSON *
ack_ok(struct chatc *c, cJSON *reply, int refmsgid)
{
	char *s;

	ck_assert_msg(reply != NULL, "no reply to msgid %d: %s", refmsgid,
	    chatc_error(c));
	s = cJSON_PrintUnformatted(reply);
	ck_assert_msg(jnum(reply, "msgid") == MSG_ACK &&
	    jnum(reply, "refmsgid") == refmsgid &&
	    chatc_errno(reply) == 0, "expected ACK of msgid %d, got %s",
	    refmsgid, s);
	ck_assert_msg(cJSON_GetObjectItem(reply, "seq") != NULL,
	    "ACK without seq: %s", s);
	free(s);
	return reply;
}

static void
ack_ok_free(struct chatc *c, cJSON *reply, int refmsgid)
{
	cJSON_Delete(ack_ok(c, reply, refmsgid));
}

/* ACK of a chat with the given status ("delivered" or "stored"). */
static void
ack_status(struct chatc *c, cJSON *reply, int refmsgid, const char *status)
{
	ack_ok(c, reply, refmsgid);
	ck_assert_str_eq(jstr(reply, "status"), status);
	cJSON_Delete(reply);
}

/* Assert reply is ERROR (11) errno err for refmsgid, with errmsg; frees. */
static void
err_is(struct chatc *c, cJSON *reply, int refmsgid, int err)
{
	char *s;

	ck_assert_msg(reply != NULL, "no reply to msgid %d: %s", refmsgid,
	    chatc_error(c));
	s = cJSON_PrintUnformatted(reply);
	ck_assert_msg(jnum(reply, "msgid") == MSG_ERROR &&
	    chatc_errno(reply) == err, "expected ERROR errno %d for msgid "
	    "%d, got %s", err, refmsgid, s);
	ck_assert_msg(jnum(reply, "refmsgid") == refmsgid,
	    "wrong refmsgid: %s", s);
	ck_assert_msg(*chatc_errmsg(reply) != '\0', "no errmsg: %s", s);
	free(s);
	cJSON_Delete(reply);
}

/* Number of rows of offlinemessages for uid. */
static long
db_offline_count(long long uid)
{
	char sql[128], out[64];

	(void)snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM "
	    "offlinemessages WHERE userid = %lld", uid);
	ck_assert_msg(harness_sql_value(&H, sql, out, sizeof(out)) == 0,
	    "query failed: %s", sql);
	return strtol(out, NULL, 10);
}

/* Wait (bounded) until uid has `want` offline rows. */
static void
db_offline_wait(long long uid, long want)
{
	long long deadline = harness_now_ms() + RETRY_MS;
	long n;

	while ((n = db_offline_count(uid)) != want && harness_now_ms() < deadline)
		harness_sleep_ms(POLL_MS * 2);
	ck_assert_msg(n == want, "user %lld has %ld offline rows, expected "
	    "%ld", uid, n, want);
}

/* Wait (bounded) until uid has at least one offline row. */
static void
db_offline_wait_some(long long uid)
{
	long long deadline = harness_now_ms() + RETRY_MS;

	while (db_offline_count(uid) == 0 && harness_now_ms() < deadline)
		harness_sleep_ms(POLL_MS * 2);
	ck_assert_msg(db_offline_count(uid) > 0, "user %lld: nothing "
	    "stored offline within %d ms", uid, RETRY_MS);
}

/* --- connections, users, worker slots ----------------------------------- */

/* Every connection a test opens is tracked (harness_track). */
static struct chatc *
xconnect(void)
{
	struct chatc *c;
	char err[256];

	c = chatc_connect("127.0.0.1", H.chatd[inst].port, REQ_MS, err,
	    sizeof(err));
	ck_assert_msg(c != NULL, "%s", err);
	return harness_track(c);
}

/* Checked teardown: close what the test left open. */
static void
close_all(void)
{
	harness_close_tracked();
	npool = 0;
}

/* The worker slot holding uid's session (pid in *pidp), or -1. */
static int
slot_of(long long uid, pid_t *pidp)
{
	struct presence_entry e;

	if (presence_lookup(pres, (uint32_t)uid, &e) != PRESENCE_OK)
		return -1;
	if (pidp != NULL)
		*pidp = (pid_t)e.pid;
	return e.slot;
}

static long long
register_user(const char *tag, char *name, size_t namelen)
{
	struct chatc *c = xconnect();
	cJSON *r;
	long long id;

	unique_name(name, namelen, tag);
	r = chatc_register(c, name, PASSWORD, REQ_MS);
	ck_assert_msg(r != NULL, "register %s: %s", name, chatc_error(c));
	ck_assert_msg(jnum(r, "msgid") == MSG_REG_ACK && chatc_errno(r) == 0,
	    "register %s: errno %d %s", name, chatc_errno(r),
	    chatc_errmsg(r));
	id = jnum(r, "id");
	ck_assert_msg(id > 0, "register %s: id %lld", name, id);
	cJSON_Delete(r);
	harness_close(c);
	return id;
}

static void
user_new(struct user *u, const char *tag)
{
	memset(u, 0, sizeof(*u));
	u->id = register_user(tag, u->name, sizeof(u->name));
	u->slot = -1;
}

/* Every test starts here; it talks to chatd instance i from then on. */
static void
begin_on(int i)
{
	char err[256], name[PROTO_NAME_MAX + 1];

	ck_assert_msg(harness_ok, "the servers did not start (see stderr)");
	inst = i;
	pres = presence_open(H.chatd[inst].shm_name, 1, err, sizeof(err));
	ck_assert_msg(pres != NULL, "presence_open %s: %s",
	    H.chatd[inst].shm_name, err);
	probe_id = register_user("probe", name, sizeof(name));
}

static void
begin(void)
{
	ck_assert_msg(main_inst >= 0, "chatd-%d (without Redis) did not "
	    "start (see stderr)", NOREDIS_INST);
	begin_on(main_inst);
}

/*
 * An anonymous connection on a worker whose slot bit is in mask (its slot
 * in *slotp): from the pool, or a new connection whose slot the probe
 * user's login reveals.  Connections on other slots go to the pool.
 */
static struct chatc *
conn_on(unsigned mask, int *slotp)
{
	struct chatc *c;
	cJSON *r;
	int i, slot;

	for (i = 0; i < npool; i++) {
		if (mask & (1u << pool[i].slot)) {
			c = pool[i].c;
			*slotp = pool[i].slot;
			pool[i] = pool[--npool];
			return c;
		}
	}
	for (i = 0; i < MAX_PROBES; i++) {
		c = xconnect();
		r = chatc_login(c, probe_id, PASSWORD, REQ_MS);
		ck_assert_msg(r != NULL && chatc_errno(r) == 0,
		    "probe login: %s %s", r ? chatc_errmsg(r) : "",
		    chatc_error(c));
		cJSON_Delete(r);
		slot = slot_of(probe_id, NULL);
		ck_assert_msg(slot >= 0 && slot < NWORKERS, "probe user not "
		    "in the presence table after LOGIN_ACK (slot %d)", slot);
		ack_ok_free(c, chatc_logout(c, REQ_MS), MSG_LOGINOUT);
		ck_assert_msg(slot_of(probe_id, NULL) == -1, "probe user "
		    "still in the presence table after LOGINOUT's ACK");
		if (mask & (1u << slot)) {
			*slotp = slot;
			return c;
		}
		if (npool < POOL_MAX) {
			pool[npool].c = c;
			pool[npool].slot = slot;
			npool++;
		} else
			harness_close(c);
	}
	ck_abort_msg("no connection reached a worker in mask %#x in %d "
	    "tries", mask, MAX_PROBES);
	return NULL;
}

/* Log u in on c, a connection of worker slot (from conn_on); returns
 * the LOGIN_ACK (caller frees). */
static cJSON *
user_login_conn(struct user *u, struct chatc *c, int slot)
{
	cJSON *r;

	ck_assert_msg(u->c == NULL, "user %s is already online", u->name);
	u->c = c;
	r = chatc_login(u->c, u->id, PASSWORD, REQ_MS);
	ck_assert_msg(r != NULL, "login %s: %s", u->name, chatc_error(u->c));
	ck_assert_msg(jnum(r, "msgid") == MSG_LOGIN_ACK && chatc_errno(r) ==
	    0, "login %s: errno %d %s", u->name, chatc_errno(r),
	    chatc_errmsg(r));
	ck_assert_int_eq(jnum(r, "id"), u->id);
	ck_assert_str_eq(jstr(r, "name"), u->name);
	u->slot = slot_of(u->id, NULL);
	ck_assert_msg(u->slot == slot, "user %s logged in on a connection of "
	    "worker %d but presence says %d", u->name, slot, u->slot);
	return r;
}

/* Log u in on a worker in mask; returns the LOGIN_ACK (caller frees). */
static cJSON *
user_login(struct user *u, unsigned mask)
{
	struct chatc *c;
	int slot;

	ck_assert_msg(u->c == NULL, "user %s is already online", u->name);
	c = conn_on(mask, &slot);
	return user_login_conn(u, c, slot);
}

static void
user_online(struct user *u, unsigned mask)
{
	cJSON_Delete(user_login(u, mask));
}

/*
 * Log n users in, each on a different worker (n <= NWORKERS): senders
 * and receivers then never share a worker, so delivery crosses workers.
 */
static void
users_on_distinct_workers(struct user **u, int n)
{
	unsigned used = 0;
	int i;

	ck_assert(n <= NWORKERS);
	for (i = 0; i < n; i++) {
		user_online(u[i], ALL_SLOTS & ~used);
		used |= 1u << u[i]->slot;
	}
}

/* LOGINOUT with its ACK, then close: offline for sure when it returns. */
static void
user_logout(struct user *u)
{
	ack_ok_free(u->c, chatc_logout(u->c, REQ_MS), MSG_LOGINOUT);
	ck_assert_msg(slot_of(u->id, NULL) == -1, "user %s still present "
	    "after LOGINOUT", u->name);
	harness_close(u->c);
	u->c = NULL;
	u->slot = -1;
}

/* The next frame of msgid for u (others are set aside). */
static cJSON *
wait_msgid(struct user *u, int msgid)
{
	cJSON *m;

	m = chatc_wait_msgid(u->c, msgid, PUSH_MS);
	ck_assert_msg(m != NULL, "user %s: no frame with msgid %d within %d "
	    "ms: %s", u->name, msgid, PUSH_MS, chatc_error(u->c));
	return m;
}

/* Assert no frame of msgid (any when msgid < 0) reaches c within ms. */
static void
no_msgid(struct chatc *c, int msgid, int ms, const char *who)
{
	long long deadline = harness_now_ms() + ms;
	long long left;
	cJSON *m;
	char *s;

	while ((left = deadline - harness_now_ms()) >= 0) {
		if ((m = chatc_recv(c, (int)left)) == NULL)
			break;
		if (msgid < 0 || jnum(m, "msgid") == msgid) {
			s = cJSON_PrintUnformatted(m);
			ck_abort_msg("%s: unexpected frame %s", who, s);
		}
		cJSON_Delete(m);
	}
}

/*
 * Check a forwarded chat frame: {msgid, id, name, <target>, msg, time,
 * ts} with the session's identity.  time NULL: any "YYYY-MM-DD HH:MM:SS".
 */
static void
check_chat(const cJSON *f, int msgid, const struct user *from,
    const char *target, long long targetid, const char *msg,
    const char *time)
{
	long long ts, now = wall_ms();
	char *s = cJSON_PrintUnformatted(f);

	ck_assert_msg(jnum(f, "msgid") == msgid, "msgid in %s", s);
	ck_assert_msg(jnum(f, "id") == from->id, "sender id in %s (want "
	    "%lld)", s, from->id);
	ck_assert_msg(strcmp(jstr(f, "name"), from->name) == 0,
	    "sender name in %s (want %s)", s, from->name);
	ck_assert_msg(jnum(f, target) == targetid, "%s in %s (want %lld)",
	    target, s, targetid);
	ck_assert_msg(strcmp(jstr(f, "msg"), msg) == 0, "msg in %s", s);
	if (time != NULL)
		ck_assert_msg(strcmp(jstr(f, "time"), time) == 0,
		    "time in %s (want %s)", s, time);
	else
		ck_assert_msg(strlen(jstr(f, "time")) == 19,
		    "time in %s", s);
	ts = jnum(f, "ts");
	ck_assert_msg(ts > now - 600000 && ts <= now + 60000,
	    "ts %lld is not a recent epoch-milliseconds time in %s", ts, s);
	free(s);
}

/* Wait for u's next frame of msgid and check it as check_chat does. */
static void
wait_chat(struct user *u, int msgid, const struct user *from,
    const char *target, long long targetid, const char *msg,
    const char *time)
{
	cJSON *f = wait_msgid(u, msgid);

	check_chat(f, msgid, from, target, targetid, msg, time);
	cJSON_Delete(f);
}

/* A ONE_CHAT request (without seq; chatc_request adds one). */
static cJSON *
one_chat_req(long long toid, const char *msg)
{
	cJSON *r = req_new(MSG_ONE_CHAT);

	cJSON_AddNumberToObject(r, "toid", (double)toid);
	if (msg != NULL)
		cJSON_AddStringToObject(r, "msg", msg);
	return r;
}

static cJSON *
group_chat_req(long long gid, const char *msg)
{
	cJSON *r = req_new(MSG_GROUP_CHAT);

	cJSON_AddNumberToObject(r, "groupid", (double)gid);
	cJSON_AddStringToObject(r, "msg", msg);
	return r;
}

/* The offlinemsg of a LOGIN_ACK, parsed; *n set (0 when absent). */
static cJSON **
offline_of(const cJSON *ack, int *n)
{
	const cJSON *arr, *it;
	cJSON **v;
	int i = 0;

	*n = 0;
	arr = cJSON_GetObjectItemCaseSensitive(ack, "offlinemsg");
	if (arr == NULL)
		return NULL;
	ck_assert_msg(cJSON_IsArray(arr), "offlinemsg is not an array");
	*n = cJSON_GetArraySize(arr);
	v = calloc((size_t)*n + 1, sizeof(*v));
	ck_assert(v != NULL);
	cJSON_ArrayForEach(it, arr)
		v[i++] = jparse_item(it);
	return v;
}

static void
free_objs(cJSON **v, int n)
{
	int i;

	for (i = 0; i < n; i++)
		cJSON_Delete(v[i]);
	free(v);
}

/* --- ONE_CHAT ------------------------------------------------------------ */

START_TEST(test_one_chat_online)
{
	struct user a, b, *both[2] = { &a, &b };
	cJSON *r;

	begin();
	user_new(&a, "a");
	user_new(&b, "b");
	users_on_distinct_workers(both, 2);

	/* Spoofed id and name are ignored; the client's time is kept. */
	r = one_chat_req(b.id, "hello b");
	cJSON_AddStringToObject(r, "time", "2001-02-03 04:05:06");
	cJSON_AddNumberToObject(r, "id", (double)b.id);
	cJSON_AddStringToObject(r, "name", "mallory");
	ack_status(a.c, request(a.c, r), MSG_ONE_CHAT, "delivered");
	wait_chat(&b, MSG_ONE_CHAT, &a, "toid", b.id, "hello b",
	    "2001-02-03 04:05:06");

	/* seq may be any scalar and is echoed as sent. */
	r = one_chat_req(b.id, "string seq");
	cJSON_AddStringToObject(r, "seq", "s-1");
	ck_assert_int_eq(chatc_send(a.c, r), 0);
	cJSON_Delete(r);
	r = chatc_recv(a.c, REQ_MS);
	ck_assert_msg(r != NULL, "%s", chatc_error(a.c));
	ck_assert_int_eq(jnum(r, "msgid"), MSG_ACK);
	ck_assert_str_eq(jstr(r, "seq"), "s-1");
	ck_assert_str_eq(jstr(r, "status"), "delivered");
	cJSON_Delete(r);
	wait_chat(&b, MSG_ONE_CHAT, &a, "toid", b.id, "string seq", NULL);

	/* Without seq no ACK: the PING sent after is answered first. */
	r = one_chat_req(b.id, "no seq");
	ck_assert_int_eq(chatc_send(a.c, r), 0);
	cJSON_Delete(r);
	r = req_new(MSG_PING);
	cJSON_AddStringToObject(r, "seq", "ping-after");
	ck_assert_int_eq(chatc_send(a.c, r), 0);
	cJSON_Delete(r);
	r = chatc_recv(a.c, REQ_MS);
	ck_assert_msg(r != NULL, "%s", chatc_error(a.c));
	ck_assert_int_eq(jnum(r, "msgid"), MSG_ACK);
	ck_assert_int_eq(jnum(r, "refmsgid"), MSG_PING);
	ck_assert_str_eq(jstr(r, "seq"), "ping-after");
	cJSON_Delete(r);
	/* The server filled in "time" for a client that sent none. */
	wait_chat(&b, MSG_ONE_CHAT, &a, "toid", b.id, "no seq", NULL);
	no_msgid(a.c, -1, QUIET_MS, "sender after a chat without seq");
	no_msgid(b.c, -1, QUIET_MS, "receiver");
}
END_TEST

START_TEST(test_one_chat_errors)
{
	struct user a, b, *both[2] = { &a, &b };
	char big[MAX_MESSAGE + 2];
	cJSON *r;

	begin();
	user_new(&a, "a");
	user_new(&b, "b");
	users_on_distinct_workers(both, 2);

	err_is(a.c, request(a.c, one_chat_req(999999999, "x")),
	    MSG_ONE_CHAT, CERR_NO_USER);
	err_is(a.c, request(a.c, one_chat_req(0, "x")), MSG_ONE_CHAT,
	    CERR_NO_USER);
	err_is(a.c, request(a.c, one_chat_req(-7, "x")), MSG_ONE_CHAT,
	    CERR_NO_USER);
	err_is(a.c, request(a.c, one_chat_req(b.id, NULL)), MSG_ONE_CHAT,
	    CERR_BAD_REQUEST);
	err_is(a.c, request(a.c, one_chat_req(b.id, "")), MSG_ONE_CHAT,
	    CERR_BAD_REQUEST);
	r = req_new(MSG_ONE_CHAT);
	cJSON_AddStringToObject(r, "msg", "no toid");
	err_is(a.c, request(a.c, r), MSG_ONE_CHAT, CERR_BAD_REQUEST);
	r = req_new(MSG_ONE_CHAT);
	cJSON_AddStringToObject(r, "toid", "1");
	cJSON_AddStringToObject(r, "msg", "toid is a string");
	err_is(a.c, request(a.c, r), MSG_ONE_CHAT, CERR_BAD_REQUEST);
	r = one_chat_req(b.id, "msg is a number");
	cJSON_ReplaceItemInObject(r, "msg", cJSON_CreateNumber(5));
	err_is(a.c, request(a.c, r), MSG_ONE_CHAT, CERR_BAD_REQUEST);

	/* max_message bytes pass, one more is refused. */
	memset(big, 'x', MAX_MESSAGE + 1);
	big[MAX_MESSAGE + 1] = '\0';
	err_is(a.c, request(a.c, one_chat_req(b.id, big)), MSG_ONE_CHAT,
	    CERR_BAD_REQUEST);
	big[MAX_MESSAGE] = '\0';
	ack_status(a.c, request(a.c, one_chat_req(b.id, big)), MSG_ONE_CHAT,
	    "delivered");
	wait_chat(&b, MSG_ONE_CHAT, &a, "toid", b.id, big, NULL);

	/* Errors are sent even without seq (they carry none then). */
	r = one_chat_req(999999999, "nobody");
	ck_assert_int_eq(chatc_send(a.c, r), 0);
	cJSON_Delete(r);
	r = chatc_recv(a.c, REQ_MS);
	ck_assert_msg(r != NULL, "no ERROR for a chat without seq to a "
	    "missing user: %s", chatc_error(a.c));
	ck_assert_msg(cJSON_GetObjectItem(r, "seq") == NULL, "seq in an "
	    "ERROR to a request without one");
	err_is(a.c, r, MSG_ONE_CHAT, CERR_NO_USER);

	/* Nothing refused was forwarded. */
	no_msgid(b.c, MSG_ONE_CHAT, QUIET_MS, "receiver of refused chats");
}
END_TEST

START_TEST(test_one_chat_offline)
{
	static const char *const msgs[] = { "first", "second", "third" };
	struct user a, b;
	cJSON *ack, **off;
	int i, n;

	begin();
	user_new(&a, "a");
	user_new(&b, "b");
	user_online(&a, ALL_SLOTS);

	for (i = 0; i < 3; i++)
		ack_status(a.c, request(a.c, one_chat_req(b.id, msgs[i])),
		    MSG_ONE_CHAT, "stored");
	ck_assert_int_eq(db_offline_count(b.id), 3);

	ack = user_login(&b, ALL_SLOTS & ~(1u << a.slot));
	off = offline_of(ack, &n);
	ck_assert_int_eq(n, 3);
	for (i = 0; i < 3; i++)
		check_chat(off[i], MSG_ONE_CHAT, &a, "toid", b.id, msgs[i],
		    NULL);
	free_objs(off, n);
	cJSON_Delete(ack);
	/* All fitted in LOGIN_ACK: nothing is pushed after it. */
	no_msgid(b.c, MSG_ONE_CHAT, QUIET_MS, "receiver after LOGIN_ACK");
	db_offline_wait(b.id, 0);

	/* Delivered once: a later login finds none. */
	user_logout(&b);
	ack = user_login(&b, ALL_SLOTS);
	off = offline_of(ack, &n);
	ck_assert_msg(n == 0, "%d offline message(s) delivered again", n);
	free_objs(off, n);
	cJSON_Delete(ack);
	no_msgid(b.c, MSG_ONE_CHAT, QUIET_MS, "receiver at second login");
}
END_TEST

/*
 * Receive a user's offline messages: LOGIN_ACK's offlinemsg plus the
 * msgid frames pushed after it, until the DB holds none for the user and
 * nothing more arrives.  Returns them in arrival order; *ninack is how
 * many came in LOGIN_ACK.
 */
static cJSON **
collect_offline(struct user *u, cJSON *ack, int msgid, int want, int *ninack)
{
	cJSON **v, **inack, *m;
	int n, i, got;

	inack = offline_of(ack, &n);
	*ninack = n;
	v = calloc((size_t)want + 1, sizeof(*v));
	ck_assert(v != NULL);
	ck_assert_msg(n <= want, "%d offline messages in LOGIN_ACK, only %d "
	    "were sent", n, want);
	for (i = 0; i < n; i++)
		v[i] = inack[i];
	free(inack);
	for (got = n; got < want; got++) {
		m = chatc_wait_msgid(u->c, msgid, PUSH_MS);
		ck_assert_msg(m != NULL, "only %d of %d offline messages "
		    "arrived (%d in LOGIN_ACK): %s", got, want, n,
		    chatc_error(u->c));
		v[got] = m;
	}
	return v;
}

START_TEST(test_offline_batch_paging)
{
	enum { NMSG = 13 };	/* pages of 5, 5 and 3 */
	struct user a, b;
	char text[NMSG][32];
	cJSON *ack, **v;
	int i, ninack;

	begin();
	user_new(&a, "a");
	user_new(&b, "b");
	user_online(&a, ALL_SLOTS);
	for (i = 0; i < NMSG; i++) {
		(void)snprintf(text[i], sizeof(text[i]), "paged %02d", i);
		ack_status(a.c, request(a.c, one_chat_req(b.id, text[i])),
		    MSG_ONE_CHAT, "stored");
	}
	ck_assert_int_eq(db_offline_count(b.id), NMSG);

	ack = user_login(&b, ALL_SLOTS & ~(1u << a.slot));
	v = collect_offline(&b, ack, MSG_ONE_CHAT, NMSG, &ninack);
	cJSON_Delete(ack);
	ck_assert_msg(ninack == OFFLINE_BATCH, "LOGIN_ACK carried %d offline "
	    "messages, offline_batch is %d", ninack, OFFLINE_BATCH);
	for (i = 0; i < NMSG; i++)
		check_chat(v[i], MSG_ONE_CHAT, &a, "toid", b.id, text[i],
		    NULL);
	free_objs(v, NMSG);
	no_msgid(b.c, MSG_ONE_CHAT, QUIET_MS, "receiver after the last page");
	db_offline_wait(b.id, 0);
}
END_TEST

/*
 * Close, from the server side, every database connection chatd's job
 * threads hold (as wait_timeout or a database restart would).  Each
 * thread reconnects on its next query.
 */
static void
db_kill_chatd_connections(void)
{
	char out[1024], sql[64], *p, *end;
	long id;

	ck_assert(harness_sql_value(&H, "SELECT GROUP_CONCAT(id) FROM "
	    "information_schema.processlist WHERE user = 'chatd'", out,
	    sizeof(out)) == 0);
	for (p = out; *p != '\0'; p = *end == ',' ? end + 1 : end) {
		id = strtol(p, &end, 10);
		if (end == p)
			break;
		(void)snprintf(sql, sizeof(sql), "KILL CONNECTION %ld", id);
		(void)harness_sql(&H, sql);	/* may be gone already */
	}
}

/*
 * A client that does not wait for each reply (the classic client never
 * does) gets its offline messages stored in the order it sent them.
 *
 * The database connections of chatd's job threads are closed first and
 * one query is made from the sender's worker, so that when the burst
 * comes one of that worker's job threads still has to reconnect (as
 * after wait_timeout): the message it picks up must not fall behind the
 * ones the other thread stores meanwhile.
 */
START_TEST(test_offline_order_pipelined)
{
	enum { NMSG = 24 };
	struct user a, b;
	char text[NMSG][32];
	cJSON *r, *ack, **v;
	int i, ninack, replies = 0;

	begin();
	user_new(&a, "a");
	user_new(&b, "b");
	user_online(&a, ALL_SLOTS);
	db_kill_chatd_connections();
	ack_ok_free(a.c, chatc_friend_list(a.c, REQ_MS), MSG_FRIEND_LIST);
	for (i = 0; i < NMSG; i++) {
		(void)snprintf(text[i], sizeof(text[i]), "piped %02d", i);
		r = one_chat_req(b.id, text[i]);
		cJSON_AddNumberToObject(r, "seq", 5000 + i);
		ck_assert_int_eq(chatc_send(a.c, r), 0);
		cJSON_Delete(r);
	}
	while (replies < NMSG) {
		r = chatc_recv(a.c, REQ_MS);
		ck_assert_msg(r != NULL, "%d of %d replies: %s", replies, NMSG,
		    chatc_error(a.c));
		ck_assert_int_eq(jnum(r, "msgid"), MSG_ACK);
		ck_assert_str_eq(jstr(r, "status"), "stored");
		cJSON_Delete(r);
		replies++;
	}
	ack = user_login(&b, ALL_SLOTS);
	v = collect_offline(&b, ack, MSG_ONE_CHAT, NMSG, &ninack);
	cJSON_Delete(ack);
	for (i = 0; i < NMSG; i++)
		ck_assert_msg(strcmp(jstr(v[i], "msg"), text[i]) == 0,
		    "offline message %d is \"%s\", sent as \"%s\" (stored out "
		    "of order)", i, jstr(v[i], "msg"), text[i]);
	free_objs(v, NMSG);
	db_offline_wait(b.id, 0);
}
END_TEST

START_TEST(test_chinese_text)
{
	static const char text[] = "你好，世界 🌏";
	struct user a, b, c, *both[2] = { &a, &b };
	char gname[PROTO_GROUPNAME_MAX + 1];
	cJSON *r, *ack, **off, *g;
	long long gid;
	int n;

	begin();
	user_new(&a, "张三");
	user_new(&b, "李四");
	user_new(&c, "王五");
	users_on_distinct_workers(both, 2);

	/* Online, across workers. */
	ack_status(a.c, request(a.c, one_chat_req(b.id, text)), MSG_ONE_CHAT,
	    "delivered");
	wait_chat(&b, MSG_ONE_CHAT, &a, "toid", b.id, text, NULL);

	/* Through the database (utf8mb4: the emoji is 4 bytes). */
	ack_status(a.c, request(a.c, one_chat_req(c.id, text)), MSG_ONE_CHAT,
	    "stored");
	ack = user_login(&c, ALL_SLOTS);
	off = offline_of(ack, &n);
	ck_assert_int_eq(n, 1);
	check_chat(off[0], MSG_ONE_CHAT, &a, "toid", c.id, text, NULL);
	free_objs(off, n);
	cJSON_Delete(ack);

	/* A group with a Chinese name and description. */
	unique_name(gname, sizeof(gname), "群组");
	r = ack_ok(a.c, chatc_create_group(a.c, gname, "描述 🌏", REQ_MS),
	    MSG_CREATE_GROUP);
	gid = jnum(r, "groupid");
	cJSON_Delete(r);
	ack_ok_free(b.c, chatc_add_group(b.c, gid, REQ_MS), MSG_ADD_GROUP);
	r = ack_ok(b.c, chatc_group_list(b.c, REQ_MS), MSG_GROUP_LIST);
	ck_assert_int_eq(cJSON_GetArraySize(jarr(r, "groups")), 1);
	g = cJSON_GetArrayItem(jarr(r, "groups"), 0);
	ck_assert_str_eq(jstr(g, "groupname"), gname);
	ck_assert_str_eq(jstr(g, "groupdesc"), "描述 🌏");
	cJSON_Delete(r);
	ack_status(a.c, request(a.c, group_chat_req(gid, text)),
	    MSG_GROUP_CHAT, "delivered");
	wait_chat(&b, MSG_GROUP_CHAT, &a, "groupid", gid, text, NULL);
}
END_TEST

/* --- friends and PRESENCE ----------------------------------------------- */

/* FRIEND_LIST of u; asserts it holds exactly the given ids, in id order,
 * with the given states ("online"/"offline") and the users' names. */
static void
check_friend_list(struct user *u, struct user **want, const char **state,
    int n)
{
	cJSON *r, *f;
	const cJSON *arr;
	int i;

	r = ack_ok(u->c, chatc_friend_list(u->c, REQ_MS), MSG_FRIEND_LIST);
	arr = jarr(r, "friends");
	ck_assert_msg(cJSON_GetArraySize(arr) == n, "%s has %d friends, "
	    "expected %d", u->name, cJSON_GetArraySize(arr), n);
	for (i = 0; i < n; i++) {
		f = cJSON_GetArrayItem(arr, i);
		ck_assert_msg(cJSON_IsObject(f), "friends[%d] is not an "
		    "object", i);
		ck_assert_int_eq(jnum(f, "id"), want[i]->id);
		ck_assert_str_eq(jstr(f, "name"), want[i]->name);
		ck_assert_str_eq(jstr(f, "state"), state[i]);
	}
	cJSON_Delete(r);
}

/*
 * Two users adding each other at the same moment, from two workers: each
 * INSERT takes the pair's two rows in the opposite order, and InnoDB may
 * end one as a deadlock victim.  That statement changed nothing: run
 * again it finds the rows, so one side gets its ACK and the other errno
 * 9, never errno 13 (service unavailable).  Many pairs, since the two
 * must overlap for the deadlock.
 */
#define FRIEND_PAIRS	40

/* The reply of msgid ADD_FRIEND on u's connection (PRESENCE set aside). */
static cJSON *
add_friend_reply(struct user *u)
{
	cJSON *m;

	for (;;) {
		m = chatc_recv(u->c, REQ_MS);
		ck_assert_msg(m != NULL, "user %s: %s", u->name,
		    chatc_error(u->c));
		if ((jnum(m, "msgid") == MSG_ACK ||
		    jnum(m, "msgid") == MSG_ERROR) &&
		    jnum(m, "refmsgid") == MSG_ADD_FRIEND)
			return m;
		cJSON_Delete(m);
	}
}

/* ADD_FRIEND from u to v, not waiting for the reply (seq: ACKs come
 * only to requests that carry one). */
static void
add_friend_send(struct user *u, const struct user *v, int seq)
{
	cJSON *req = cJSON_CreateObject();

	cJSON_AddNumberToObject(req, "msgid", MSG_ADD_FRIEND);
	cJSON_AddNumberToObject(req, "friendid", (double)v->id);
	cJSON_AddNumberToObject(req, "seq", seq);
	ck_assert_int_eq(chatc_send(u->c, req), 0);
	cJSON_Delete(req);
}

START_TEST(test_add_friend_both_ways)
{
	struct user a, b, *both[2] = { &a, &b };
	cJSON *ra, *rb;
	int i, ea, eb, n13 = 0;

	begin();
	for (i = 0; i < FRIEND_PAIRS; i++) {
		user_new(&a, "fa");
		user_new(&b, "fb");
		users_on_distinct_workers(both, 2);
		add_friend_send(&a, &b, i + 1);
		add_friend_send(&b, &a, i + 1);
		ra = add_friend_reply(&a);
		rb = add_friend_reply(&b);
		ea = chatc_errno(ra);
		eb = chatc_errno(rb);
		n13 += ea == CERR_UNAVAILABLE || eb == CERR_UNAVAILABLE;
		ck_assert_msg((ea == 0 && eb == CERR_EXISTS) ||
		    (ea == CERR_EXISTS && eb == 0), "pair %d: errno %d and %d, "
		    "want 0 and 9 (%d pair(s) so far answered errno 13)", i,
		    ea, eb, n13);
		cJSON_Delete(ra);
		cJSON_Delete(rb);
		harness_close(a.c);
		harness_close(b.c);
	}
}
END_TEST

START_TEST(test_friends)
{
	struct user a, b, c, *both[2] = { &a, &b };
	struct user *fa[2];
	const char *st[2];
	cJSON *ack, *f;
	const cJSON *arr;

	begin();
	user_new(&a, "a");
	user_new(&b, "b");
	user_new(&c, "c");	/* stays offline */
	users_on_distinct_workers(both, 2);

	ack_ok_free(a.c, chatc_add_friend(a.c, b.id, REQ_MS), MSG_ADD_FRIEND);
	fa[0] = &b;
	st[0] = "online";
	check_friend_list(&a, fa, st, 1);
	fa[0] = &a;
	check_friend_list(&b, fa, st, 1);	/* mutual */

	/* Again, from either side: already friends. */
	err_is(a.c, chatc_add_friend(a.c, b.id, REQ_MS), MSG_ADD_FRIEND,
	    CERR_EXISTS);
	err_is(b.c, chatc_add_friend(b.c, a.id, REQ_MS), MSG_ADD_FRIEND,
	    CERR_EXISTS);
	err_is(a.c, chatc_add_friend(a.c, 999999999, REQ_MS), MSG_ADD_FRIEND,
	    CERR_NO_USER);
	err_is(a.c, chatc_add_friend(a.c, a.id, REQ_MS), MSG_ADD_FRIEND,
	    CERR_BAD_REQUEST);

	/* An offline friend shows as offline. */
	ack_ok_free(a.c, chatc_add_friend(a.c, c.id, REQ_MS), MSG_ADD_FRIEND);
	fa[0] = &b;
	fa[1] = &c;
	st[0] = b.id < c.id ? "online" : "offline";
	st[1] = b.id < c.id ? "offline" : "online";
	if (b.id > c.id) {
		fa[0] = &c;
		fa[1] = &b;
	}
	check_friend_list(&a, fa, st, 2);

	/* LOGIN_ACK friends: classic strings {"id","name","state"}. */
	ack = user_login(&c, ALL_SLOTS);
	arr = jarr(ack, "friends");
	ck_assert_int_eq(cJSON_GetArraySize(arr), 1);
	f = jparse_item(cJSON_GetArrayItem(arr, 0));
	ck_assert_int_eq(jnum(f, "id"), a.id);
	ck_assert_str_eq(jstr(f, "name"), a.name);
	ck_assert_str_eq(jstr(f, "state"), "online");
	cJSON_Delete(f);
	cJSON_Delete(ack);

	/* DEL_FRIEND ends it for both sides. */
	ack_ok_free(a.c, chatc_del_friend(a.c, b.id, REQ_MS), MSG_DEL_FRIEND);
	fa[0] = &c;
	st[0] = "online";
	check_friend_list(&a, fa, st, 1);
	check_friend_list(&b, fa, st, 0);
	err_is(a.c, chatc_del_friend(a.c, b.id, REQ_MS), MSG_DEL_FRIEND,
	    CERR_NO_USER);
	err_is(b.c, chatc_del_friend(b.c, a.id, REQ_MS), MSG_DEL_FRIEND,
	    CERR_NO_USER);
	err_is(a.c, chatc_del_friend(a.c, 999999999, REQ_MS),
	    MSG_DEL_FRIEND, CERR_NO_USER);
	ack_ok_free(c.c, chatc_del_friend(c.c, a.id, REQ_MS), MSG_DEL_FRIEND);
	check_friend_list(&a, fa, st, 0);
	check_friend_list(&c, fa, st, 0);
}
END_TEST

/*
 * The next PRESENCE at u is {id, state}.  Each check here follows one
 * change of id's state, so u knew the other state before; a notice
 * repeating that (a login's second reading of its friends' states may
 * overlap a friend's own notice, see chat-protocol(7)) is let through.
 */
static void
check_presence(struct user *u, long long id, const char *state)
{
	const char *before = strcmp(state, "online") == 0 ? "offline" :
	    "online";
	cJSON *m;
	int repeats;

	for (repeats = 0; ; repeats++) {
		m = wait_msgid(u, MSG_PRESENCE);
		ck_assert_int_eq(jnum(m, "id"), id);
		if (strcmp(jstr(m, "state"), state) == 0)
			break;
		ck_assert_msg(repeats == 0 && strcmp(jstr(m, "state"),
		    before) == 0, "user %s: PRESENCE of %lld is %s, expected "
		    "%s", u->name, id, jstr(m, "state"), state);
		cJSON_Delete(m);
	}
	cJSON_Delete(m);
}

START_TEST(test_presence_push)
{
	struct user a, b, c, *both[2] = { &a, &b };
	unsigned not_a;

	begin();
	user_new(&a, "a");
	user_new(&b, "b");
	user_new(&c, "c");	/* online, but not a friend */
	users_on_distinct_workers(both, 2);
	not_a = ALL_SLOTS & ~(1u << a.slot);
	user_online(&c, ALL_SLOTS);
	ack_ok_free(a.c, chatc_add_friend(a.c, b.id, REQ_MS), MSG_ADD_FRIEND);

	user_logout(&b);
	check_presence(&a, b.id, "offline");
	user_online(&b, not_a);
	check_presence(&a, b.id, "online");
	/* A dropped connection counts as going offline. */
	harness_close(b.c);
	b.c = NULL;
	check_presence(&a, b.id, "offline");
	user_online(&b, not_a);
	check_presence(&a, b.id, "online");
	/* And the other way round. */
	user_logout(&a);
	check_presence(&b, a.id, "offline");
	user_online(&a, ALL_SLOTS & ~(1u << b.slot));
	check_presence(&b, a.id, "online");

	no_msgid(c.c, MSG_PRESENCE, QUIET_MS, "a user who is nobody's friend");
	no_msgid(a.c, MSG_PRESENCE, QUIET_MS, "a after its friend's pushes");
}
END_TEST

/*
 * A user logs out and at once logs in again on another worker, over and
 * over: the new session's cluster claim must never find the old one's
 * (its release in flight on the first worker's Redis connection), and
 * the user is never refused as already online.
 */
#define RELOGIN_ROUNDS	60
START_TEST(test_relogin_other_worker)
{
	struct chatc *c[2];
	struct user u;
	int slot[2], i, k;
	cJSON *r;

	begin();
	user_new(&u, "r");
	c[0] = conn_on(1u << 0, &slot[0]);
	c[1] = conn_on(ALL_SLOTS & ~(1u << slot[0]), &slot[1]);
	for (i = 0; i < RELOGIN_ROUNDS; i++) {
		k = i % 2;
		r = chatc_login(c[k], u.id, PASSWORD, REQ_MS);
		ck_assert_msg(r != NULL && chatc_errno(r) == 0, "round %d: "
		    "login on worker %d: %s %s", i, slot[k], r != NULL ?
		    chatc_errmsg(r) : "", chatc_error(c[k]));
		cJSON_Delete(r);
		ck_assert_int_eq(slot_of(u.id, NULL), slot[k]);
		ack_ok_free(c[k], chatc_logout(c[k], REQ_MS), MSG_LOGINOUT);
	}
	ck_assert_int_eq(slot_of(u.id, NULL), -1);
}
END_TEST

/*
 * A message sent to a user while it logs in reaches it exactly once (in
 * LOGIN_ACK, live, or pulled after it), whatever moment of the login it
 * comes at: before the login read the offline messages, between that and
 * the session opening, or after.  The moments are swept across one
 * login's duration, one message per login.
 */
#define DURING_ROUNDS	80
START_TEST(test_chat_during_login)
{
	struct user a, b;
	struct chatc *bc;
	char text[32];
	cJSON *req, *m, **off;
	long long t0, dur_us = 0, deadline;
	int round, slot, n, k, got;

	begin();
	user_new(&a, "a");
	user_new(&b, "b");
	user_online(&a, ALL_SLOTS);
	bc = conn_on(ALL_SLOTS & ~(1u << a.slot), &slot);
	for (round = -1; round < DURING_ROUNDS; round++) {
		t0 = now_us();
		req = chatc_build_login(b.id, PASSWORD);
		ck_assert_int_eq(chatc_send(bc, req), 0);
		cJSON_Delete(req);
		if (round >= 0) {
			/* Round -1 only times a login. */
			usleep((useconds_t)(dur_us * 5 / 4 * round /
			    DURING_ROUNDS));
			(void)snprintf(text, sizeof(text), "w%d", round);
			ack_ok_free(a.c, request(a.c, one_chat_req(b.id,
			    text)), MSG_ONE_CHAT);
		}
		m = chatc_wait_msgid(bc, MSG_LOGIN_ACK, REQ_MS);
		ck_assert_msg(m != NULL && chatc_errno(m) == 0, "round %d: "
		    "login: %s", round, chatc_error(bc));
		if (round < 0)
			dur_us = now_us() - t0;
		off = offline_of(m, &n);
		cJSON_Delete(m);
		got = 0;
		for (k = 0; k < n; k++) {
			ck_assert_str_eq(jstr(off[k], "msg"), text);
			got++;
		}
		free_objs(off, n);
		deadline = harness_now_ms() + PUSH_MS;
		while (round >= 0 && got == 0 && harness_now_ms() < deadline)
			if ((m = chatc_wait_msgid(bc, MSG_ONE_CHAT,
			    POLL_MS)) != NULL) {
				ck_assert_str_eq(jstr(m, "msg"), text);
				got++;
				cJSON_Delete(m);
			}
		ck_assert_msg(round < 0 || got == 1, "round %d: the message "
		    "sent %lld us into a login of %lld us reached the user "
		    "%d times in %d ms", round, dur_us * 5 / 4 * round /
		    DURING_ROUNDS, dur_us, got, PUSH_MS);
		ack_ok_free(bc, chatc_logout(bc, REQ_MS), MSG_LOGINOUT);
	}
	no_msgid(bc, MSG_ONE_CHAT, QUIET_MS, "b after the last round");
	db_offline_wait(b.id, 0);
}
END_TEST

/*
 * The same with the session held open for a while: Redis pauses writes,
 * so the login's cluster claim waits with the user already in this
 * host's presence table, its offline messages read.  A message sent then
 * is stored; it must follow LOGIN_ACK.
 */
#define CLAIM_PAUSE_MS	"600"

/* b's login sent on a worker other than a's with Redis writes paused,
 * once it reached that worker's presence table: its claim waits, its
 * offline messages are read.  The connection; its worker in *slot. */
static struct chatc *
login_held(const struct user *a, const struct user *b, int *slot)
{
	struct chatc *bc;
	long long deadline;
	cJSON *req;

	bc = conn_on(ALL_SLOTS & ~(1u << a->slot), slot);
	ck_assert(harness_redis_pause_writes(&H, CLAIM_PAUSE_MS) == 0);
	req = chatc_build_login(b->id, PASSWORD);
	ck_assert_int_eq(chatc_send(bc, req), 0);
	cJSON_Delete(req);
	deadline = harness_now_ms() + REQ_MS;
	while (slot_of(b->id, NULL) < 0 && harness_now_ms() < deadline)
		harness_sleep_ms(1);
	ck_assert_msg(slot_of(b->id, NULL) == *slot, "b's login did not "
	    "reach the presence table of worker %d", *slot);
	return bc;
}

/* The offline messages in c's successful LOGIN_ACK, counted. */
static int
login_ack_offline(struct chatc *c)
{
	cJSON *m, **off;
	int n;

	m = chatc_wait_msgid(c, MSG_LOGIN_ACK, REQ_MS);
	ck_assert_msg(m != NULL && chatc_errno(m) == 0, "login: %s",
	    chatc_error(c));
	off = offline_of(m, &n);
	cJSON_Delete(m);
	free_objs(off, n);
	return n;
}

START_TEST(test_chat_while_claim_waits)
{
	struct user a, b;
	struct chatc *bc;
	cJSON *m;
	int slot, n;

	begin();
	user_new(&a, "a");
	user_new(&b, "b");
	user_online(&a, ALL_SLOTS);
	bc = login_held(&a, &b, &slot);
	ack_ok_free(a.c, request(a.c, one_chat_req(b.id, "while claiming")),
	    MSG_ONE_CHAT);

	n = login_ack_offline(bc);
	ck_assert_msg(n == 0, "LOGIN_ACK has %d offline message(s), read "
	    "before the message was sent", n);
	m = chatc_wait_msgid(bc, MSG_ONE_CHAT, PUSH_MS);
	ck_assert_msg(m != NULL, "the message stored while the login waited "
	    "for its claim did not follow LOGIN_ACK within %d ms: %s",
	    PUSH_MS, chatc_error(bc));
	ck_assert_str_eq(jstr(m, "msg"), "while claiming");
	cJSON_Delete(m);
	db_offline_wait(b.id, 0);
	b.c = bc;
	b.slot = slot;
	user_logout(&b);
}
END_TEST

/*
 * A friend's session ends while a login waits for its claim (Redis holds
 * writes): the "offline" notice must not be stored as an offline message
 * for the user logging in (notices are never stored, chat-protocol(7)),
 * and the user still learns that the friend is offline.
 */
START_TEST(test_presence_not_stored)
{
	struct user a, b;
	struct chatc *bc;
	long long deadline;
	int slot;

	begin();
	user_new(&a, "a");
	user_new(&b, "b");
	user_online(&a, ALL_SLOTS);
	ack_ok_free(a.c, chatc_add_friend(a.c, b.id, REQ_MS), MSG_ADD_FRIEND);
	bc = login_held(&a, &b, &slot);
	harness_close(a.c);
	a.c = NULL;
	deadline = harness_now_ms() + QUIET_MS;
	while (harness_now_ms() < deadline) {
		ck_assert_msg(db_offline_count(b.id) == 0, "a PRESENCE was "
		    "stored offline for b");
		harness_sleep_ms(POLL_MS);
	}

	ck_assert_int_eq(login_ack_offline(bc), 0);
	b.c = bc;
	b.slot = slot;
	check_presence(&b, a.id, "offline");
	ck_assert_int_eq(db_offline_count(b.id), 0);
	user_logout(&b);
}
END_TEST

/* --- groups -------------------------------------------------------------- */

static long long
create_group(struct user *u, char *name, size_t namelen, const char *desc)
{
	cJSON *r;
	long long gid;

	unique_name(name, namelen, "g");
	r = ack_ok(u->c, chatc_create_group(u->c, name, desc, REQ_MS),
	    MSG_CREATE_GROUP);
	gid = jnum(r, "groupid");
	ck_assert_msg(gid > 0, "groupid %lld", gid);
	cJSON_Delete(r);
	return gid;
}

START_TEST(test_groups)
{
	struct user a, b, c, *all[3] = { &a, &b, &c };
	char gname[PROTO_GROUPNAME_MAX + 1];
	cJSON *r, *g, *req, *ack, *u;
	const cJSON *arr, *users;
	long long gid;
	int i;

	begin();
	user_new(&a, "a");
	user_new(&b, "b");
	user_new(&c, "c");
	users_on_distinct_workers(all, 3);

	gid = create_group(&a, gname, sizeof(gname), "the desc");
	r = ack_ok(a.c, chatc_group_list(a.c, REQ_MS), MSG_GROUP_LIST);
	arr = jarr(r, "groups");
	ck_assert_int_eq(cJSON_GetArraySize(arr), 1);
	g = cJSON_GetArrayItem(arr, 0);
	ck_assert_int_eq(jnum(g, "id"), gid);
	ck_assert_str_eq(jstr(g, "groupname"), gname);
	ck_assert_str_eq(jstr(g, "groupdesc"), "the desc");
	ck_assert_str_eq(jstr(g, "role"), "creator");
	cJSON_Delete(r);

	/* CREATE_GROUP errors. */
	err_is(b.c, chatc_create_group(b.c, gname, "dup", REQ_MS),
	    MSG_CREATE_GROUP, CERR_EXISTS);
	err_is(b.c, chatc_create_group(b.c, "", "empty", REQ_MS),
	    MSG_CREATE_GROUP, CERR_BAD_REQUEST);
	req = req_new(MSG_CREATE_GROUP);
	cJSON_AddStringToObject(req, "groupdesc", "no name");
	err_is(b.c, request(b.c, req), MSG_CREATE_GROUP, CERR_BAD_REQUEST);

	/* ADD_GROUP. */
	ack_ok_free(b.c, chatc_add_group(b.c, gid, REQ_MS), MSG_ADD_GROUP);
	err_is(b.c, chatc_add_group(b.c, gid, REQ_MS), MSG_ADD_GROUP,
	    CERR_EXISTS);
	err_is(a.c, chatc_add_group(a.c, gid, REQ_MS), MSG_ADD_GROUP,
	    CERR_EXISTS);
	err_is(b.c, chatc_add_group(b.c, 999999999, REQ_MS), MSG_ADD_GROUP,
	    CERR_NO_GROUP);
	err_is(b.c, chatc_add_group(b.c, 0, REQ_MS), MSG_ADD_GROUP,
	    CERR_NO_GROUP);
	r = ack_ok(b.c, chatc_group_list(b.c, REQ_MS), MSG_GROUP_LIST);
	arr = jarr(r, "groups");
	ck_assert_int_eq(cJSON_GetArraySize(arr), 1);
	g = cJSON_GetArrayItem(arr, 0);
	ck_assert_int_eq(jnum(g, "id"), gid);
	ck_assert_str_eq(jstr(g, "role"), "normal");
	cJSON_Delete(r);

	/* GROUP_MEMBERS: members in id order with state and role. */
	r = ack_ok(b.c, chatc_group_members(b.c, gid, REQ_MS),
	    MSG_GROUP_MEMBERS);
	users = jarr(r, "users");
	ck_assert_int_eq(cJSON_GetArraySize(users), 2);
	for (i = 0; i < 2; i++) {
		struct user *w = (a.id < b.id) == (i == 0) ? &a : &b;

		u = cJSON_GetArrayItem(users, i);
		ck_assert_int_eq(jnum(u, "id"), w->id);
		ck_assert_str_eq(jstr(u, "name"), w->name);
		ck_assert_str_eq(jstr(u, "state"), "online");
		ck_assert_str_eq(jstr(u, "role"), w == &a ? "creator" :
		    "normal");
	}
	cJSON_Delete(r);
	err_is(c.c, chatc_group_members(c.c, gid, REQ_MS), MSG_GROUP_MEMBERS,
	    CERR_NOT_MEMBER);
	err_is(c.c, chatc_group_members(c.c, 999999999, REQ_MS),
	    MSG_GROUP_MEMBERS, CERR_NO_GROUP);

	/* LOGIN_ACK groups: classic strings, users as strings too; b
	 * logged out shows offline to a. */
	user_logout(&b);
	user_logout(&a);
	ack = user_login(&a, ALL_SLOTS);
	arr = jarr(ack, "groups");
	ck_assert_int_eq(cJSON_GetArraySize(arr), 1);
	g = jparse_item(cJSON_GetArrayItem(arr, 0));
	ck_assert_int_eq(jnum(g, "id"), gid);
	ck_assert_str_eq(jstr(g, "groupname"), gname);
	ck_assert_str_eq(jstr(g, "groupdesc"), "the desc");
	users = jarr(g, "users");
	ck_assert_int_eq(cJSON_GetArraySize(users), 2);
	for (i = 0; i < 2; i++) {
		struct user *w = (a.id < b.id) == (i == 0) ? &a : &b;

		u = jparse_item(cJSON_GetArrayItem(users, i));
		ck_assert_int_eq(jnum(u, "id"), w->id);
		ck_assert_str_eq(jstr(u, "name"), w->name);
		ck_assert_str_eq(jstr(u, "state"), w == &a ? "online" :
		    "offline");
		ck_assert_str_eq(jstr(u, "role"), w == &a ? "creator" :
		    "normal");
		cJSON_Delete(u);
	}
	cJSON_Delete(g);
	cJSON_Delete(ack);

	/* QUIT_GROUP. */
	user_online(&b, ALL_SLOTS);
	ack_ok_free(b.c, chatc_quit_group(b.c, gid, REQ_MS), MSG_QUIT_GROUP);
	err_is(b.c, chatc_quit_group(b.c, gid, REQ_MS), MSG_QUIT_GROUP,
	    CERR_NOT_MEMBER);
	err_is(b.c, chatc_quit_group(b.c, 999999999, REQ_MS), MSG_QUIT_GROUP,
	    CERR_NO_GROUP);
	err_is(b.c, chatc_quit_group(b.c, 0, REQ_MS), MSG_QUIT_GROUP,
	    CERR_NO_GROUP);
	r = ack_ok(b.c, chatc_group_list(b.c, REQ_MS), MSG_GROUP_LIST);
	ck_assert_int_eq(cJSON_GetArraySize(jarr(r, "groups")), 0);
	cJSON_Delete(r);
	err_is(b.c, chatc_group_members(b.c, gid, REQ_MS), MSG_GROUP_MEMBERS,
	    CERR_NOT_MEMBER);
	r = ack_ok(a.c, chatc_group_members(a.c, gid, REQ_MS),
	    MSG_GROUP_MEMBERS);
	ck_assert_int_eq(cJSON_GetArraySize(jarr(r, "users")), 1);
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_group_chat)
{
	struct user a, b, c, d, e, *all[3] = { &a, &b, &c };
	char gname[PROTO_GROUPNAME_MAX + 1];
	cJSON *r, *ack, **off;
	long long gid;
	int n;

	begin();
	user_new(&a, "a");
	user_new(&b, "b");
	user_new(&c, "c");
	user_new(&d, "d");	/* member, offline for the second message */
	user_new(&e, "e");	/* not a member */
	users_on_distinct_workers(all, 3);
	user_online(&d, ALL_SLOTS);
	user_online(&e, ALL_SLOTS);

	gid = create_group(&a, gname, sizeof(gname), "");
	ack_ok_free(b.c, chatc_add_group(b.c, gid, REQ_MS), MSG_ADD_GROUP);
	ack_ok_free(c.c, chatc_add_group(c.c, gid, REQ_MS), MSG_ADD_GROUP);
	ack_ok_free(d.c, chatc_add_group(d.c, gid, REQ_MS), MSG_ADD_GROUP);

	/* Everyone online: every other member, on other workers, gets it. */
	r = group_chat_req(gid, "to all");
	cJSON_AddStringToObject(r, "time", "2020-01-02 03:04:05");
	cJSON_AddNumberToObject(r, "id", (double)e.id);
	cJSON_AddStringToObject(r, "name", "mallory");
	ack_status(a.c, request(a.c, r), MSG_GROUP_CHAT, "delivered");
	wait_chat(&b, MSG_GROUP_CHAT, &a, "groupid", gid, "to all",
	    "2020-01-02 03:04:05");
	wait_chat(&c, MSG_GROUP_CHAT, &a, "groupid", gid, "to all",
	    "2020-01-02 03:04:05");
	wait_chat(&d, MSG_GROUP_CHAT, &a, "groupid", gid, "to all",
	    "2020-01-02 03:04:05");
	no_msgid(a.c, MSG_GROUP_CHAT, QUIET_MS, "the sender of a group chat");
	no_msgid(e.c, MSG_GROUP_CHAT, QUIET_MS, "a non-member");

	/* One member offline: stored for them, delivered to the rest. */
	user_logout(&d);
	ack_status(b.c, request(b.c, group_chat_req(gid, "d is away")),
	    MSG_GROUP_CHAT, "stored");
	wait_chat(&a, MSG_GROUP_CHAT, &b, "groupid", gid, "d is away", NULL);
	wait_chat(&c, MSG_GROUP_CHAT, &b, "groupid", gid, "d is away", NULL);
	ack = user_login(&d, ALL_SLOTS);
	off = offline_of(ack, &n);
	ck_assert_int_eq(n, 1);
	check_chat(off[0], MSG_GROUP_CHAT, &b, "groupid", gid, "d is away",
	    NULL);
	free_objs(off, n);
	cJSON_Delete(ack);

	/* Errors. */
	err_is(e.c, request(e.c, group_chat_req(gid, "let me in")),
	    MSG_GROUP_CHAT, CERR_NOT_MEMBER);
	err_is(a.c, request(a.c, group_chat_req(999999999, "nowhere")),
	    MSG_GROUP_CHAT, CERR_NO_GROUP);
	err_is(a.c, request(a.c, group_chat_req(0, "nowhere")),
	    MSG_GROUP_CHAT, CERR_NO_GROUP);
	err_is(a.c, request(a.c, group_chat_req(gid, "")), MSG_GROUP_CHAT,
	    CERR_BAD_REQUEST);
	no_msgid(b.c, MSG_GROUP_CHAT, QUIET_MS, "a member, after refusals");
	no_msgid(c.c, MSG_GROUP_CHAT, 0, "a member, after refusals");
}
END_TEST

/*
 * The sender's worker caches the group after its first message; a join
 * or a quit handled by another worker must reach that cache before the
 * next message.
 */
/*
 * A new group of a (creator) and b: b joins, a's first message ("one")
 * reaches b, so a's worker now has the members in its cache.
 */
static long long
group_of_two_cached(struct user *a, struct user *b, char *gname,
    size_t gnamelen, const char *desc)
{
	long long gid;

	gid = create_group(a, gname, gnamelen, desc);
	ack_ok_free(b->c, chatc_add_group(b->c, gid, REQ_MS), MSG_ADD_GROUP);
	ack_status(a->c, request(a->c, group_chat_req(gid, "one")),
	    MSG_GROUP_CHAT, "delivered");
	wait_chat(b, MSG_GROUP_CHAT, a, "groupid", gid, "one", NULL);
	return gid;
}

START_TEST(test_group_cache_invalidation)
{
	struct user a, b, c, *all[3] = { &a, &b, &c };
	char gname[PROTO_GROUPNAME_MAX + 1];
	long long gid;

	begin();
	user_new(&a, "a");	/* sender */
	user_new(&b, "b");	/* member from the start, quits */
	user_new(&c, "c");	/* joins after the group is cached */
	users_on_distinct_workers(all, 3);

	gid = group_of_two_cached(&a, &b, gname, sizeof(gname), "cache");
	ack_status(a.c, request(a.c, group_chat_req(gid, "two")),
	    MSG_GROUP_CHAT, "delivered");
	wait_chat(&b, MSG_GROUP_CHAT, &a, "groupid", gid, "two", NULL);

	/* c joins on its own worker; a's next message reaches c. */
	ack_ok_free(c.c, chatc_add_group(c.c, gid, REQ_MS), MSG_ADD_GROUP);
	ack_status(a.c, request(a.c, group_chat_req(gid, "three")),
	    MSG_GROUP_CHAT, "delivered");
	wait_chat(&c, MSG_GROUP_CHAT, &a, "groupid", gid, "three", NULL);
	wait_chat(&b, MSG_GROUP_CHAT, &a, "groupid", gid, "three", NULL);

	/* b quits on its worker; a's next message no longer reaches b. */
	ack_ok_free(b.c, chatc_quit_group(b.c, gid, REQ_MS), MSG_QUIT_GROUP);
	ack_status(a.c, request(a.c, group_chat_req(gid, "four")),
	    MSG_GROUP_CHAT, "delivered");
	wait_chat(&c, MSG_GROUP_CHAT, &a, "groupid", gid, "four", NULL);
	no_msgid(b.c, MSG_GROUP_CHAT, QUIET_MS, "a member who quit");

	/* And a quit by the sender's own worker's user is seen as well. */
	ack_ok_free(a.c, chatc_quit_group(a.c, gid, REQ_MS), MSG_QUIT_GROUP);
	err_is(a.c, request(a.c, group_chat_req(gid, "five")),
	    MSG_GROUP_CHAT, CERR_NOT_MEMBER);
	no_msgid(c.c, MSG_GROUP_CHAT, QUIET_MS, "a member, after refusal");
}
END_TEST

/* Wait (bounded) until uid's membership of gid is `want` (1 or 0) in the
 * database. */
static void
db_member_wait(long long gid, long long uid, int want)
{
	long long deadline = harness_now_ms() + RETRY_MS;
	char sql[160], out[32];
	int n;

	(void)snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM groupmembers "
	    "WHERE groupid = %lld AND userid = %lld", gid, uid);
	for (;;) {
		ck_assert_msg(harness_sql_value(&H, sql, out, sizeof(out)) == 0,
		    "query failed: %s", sql);
		if ((n = atoi(out)) == want)
			return;
		ck_assert_msg(harness_now_ms() < deadline, "user %lld: member "
		    "of group %lld is %d in the database, expected %d", uid,
		    gid, n, want);
		harness_sleep_ms(POLL_MS);
	}
}

/* Send req (a JSON text) and LOGINOUT in one write, read LOGINOUT's ACK,
 * close: the session ends while req's job still runs. */
static void
request_then_logout(struct user *u, const char *req)
{
	char buf[256];
	cJSON *m;
	int n;

	n = snprintf(buf, sizeof(buf), "%s{\"msgid\":3,\"seq\":\"bye\"}", req);
	ck_assert(n > 0 && (size_t)n < sizeof(buf));
	ck_assert_int_eq(chatc_send_raw(u->c, buf, (size_t)n), 0);
	while ((m = chatc_recv(u->c, REQ_MS)) != NULL &&
	    !(jnum(m, "msgid") == MSG_ACK &&
	    jnum(m, "refmsgid") == MSG_LOGINOUT))
		cJSON_Delete(m);
	ck_assert_msg(m != NULL, "user %s: no ACK of LOGINOUT: %s", u->name,
	    chatc_error(u->c));
	cJSON_Delete(m);
	harness_close(u->c);
	u->c = NULL;
	u->slot = -1;
}

/*
 * ADD_GROUP and QUIT_GROUP followed at once by LOGINOUT: the change is
 * committed after the session ended, and the workers that cached the
 * members must drop them all the same.  Otherwise the one who quit keeps
 * getting the group's messages (stored for them here) and the one who
 * joined gets none.
 */
START_TEST(test_group_change_then_logout)
{
	struct user a, q, j, *all[3] = { &a, &q, &j };
	char gname[PROTO_GROUPNAME_MAX + 1], req[96];
	long long gid;

	begin();
	user_new(&a, "a");	/* sender; its worker caches the group */
	user_new(&q, "q");	/* quits, then logs out at once */
	user_new(&j, "j");	/* joins, then logs out at once */
	users_on_distinct_workers(all, 3);

	gid = group_of_two_cached(&a, &q, gname, sizeof(gname), "changes");

	(void)snprintf(req, sizeof(req), "{\"msgid\":14,\"groupid\":%lld}",
	    gid);
	request_then_logout(&q, req);
	(void)snprintf(req, sizeof(req), "{\"msgid\":9,\"groupid\":%lld}",
	    gid);
	request_then_logout(&j, req);
	db_member_wait(gid, q.id, 0);
	db_member_wait(gid, j.id, 1);

	/* Both are offline now: "two" is stored for j, and not for q. */
	ack_status(a.c, request(a.c, group_chat_req(gid, "two")),
	    MSG_GROUP_CHAT, "stored");
	db_offline_wait(j.id, 1);
	ck_assert_msg(db_offline_count(q.id) == 0, "a message to the group "
	    "was stored for user %lld, who had quit it", q.id);
}
END_TEST

/*
 * A group message that waits for its group's members to load, and its
 * sender logs out before they do: the message was accepted and reaches
 * the members all the same.
 */
START_TEST(test_group_chat_then_logout)
{
	struct user a, b, *all[2] = { &a, &b };
	char gname[PROTO_GROUPNAME_MAX + 1], req[160];
	long long gid;

	begin();
	user_new(&a, "a");	/* sends, then logs out at once */
	user_new(&b, "b");	/* member, online on another worker */
	users_on_distinct_workers(all, 2);

	/* A new group: in no worker's cache, so the message waits for its
	 * members to be read. */
	gid = create_group(&a, gname, sizeof(gname), "leaving");
	ack_ok_free(b.c, chatc_add_group(b.c, gid, REQ_MS), MSG_ADD_GROUP);
	(void)snprintf(req, sizeof(req), "{\"msgid\":10,\"groupid\":%lld,"
	    "\"msg\":\"parting words\"}", gid);
	request_then_logout(&a, req);
	wait_chat(&b, MSG_GROUP_CHAT, &a, "groupid", gid, "parting words",
	    NULL);
}
END_TEST

/*
 * LOGINOUT in the middle of a flood from another worker.  The sender
 * pipelines LF_N chats; the recipient reads a few and logs out while the
 * second half is written.  Chats reach the recipient's worker after the
 * logout (through its inbox), or find it offline on the sender's worker:
 * either way they are stored.  Every chat must reach the recipient exactly
 * once, in the session or at the next login, and in the order sent: the
 * session gets a prefix, the offline store the rest.
 */
#define LF_N		400
#define LF_READ		20	/* chats read before the LOGINOUT */
#define LF_ROUNDS	4	/* pairs of users, one after the other */
#define LF_GAP_US	20	/* between two chats */

/* The number i of an "lf i" chat from `from`, or -1. */
static int
lf_num(const cJSON *m, long long from)
{
	int i;

	if (m == NULL || jnum(m, "msgid") != MSG_ONE_CHAT ||
	    jnum(m, "id") != from || sscanf(jstr(m, "msg"), "lf %d", &i) != 1 ||
	    i < 0 || i >= LF_N)
		return -1;
	return i;
}

/* Count chat i in seen[], asserting the order within its part (0 the
 * session, 1 the offline pull) and that the pull follows the session. */
static void
lf_seen(int i, int part, int *seen, int *last)
{
	if (i < 0)
		return;
	ck_assert_msg(i > last[part], "%s: chat %d after %d", part == 0 ?
	    "in the session" : "pulled at the next login", i, last[part]);
	ck_assert_msg(part == 0 || i > last[0], "chat %d pulled at the next "
	    "login, after chat %d arrived in the session", i, last[0]);
	last[part] = i;
	seen[i]++;
}

static void
logout_during_flood(void)
{
	struct user a, b, *all[2] = { &a, &b };
	int seen[LF_N], last[2] = { -1, -1 }, acks = 0, i, k, got, nsess, st;
	long long deadline;
	cJSON *m, **off;
	pid_t pid;

	user_new(&a, "a");
	user_new(&b, "b");
	users_on_distinct_workers(all, 2);
	memset(seen, 0, sizeof(seen));
	/* The sender: a child writing one chat at a time, LF_GAP_US apart,
	 * on a's connection (the runner reads the ACKs after it). */
	pid = fork();
	ck_assert(pid != -1);
	if (pid == 0) {
		char text[32], *line;
		size_t n;

		for (i = 0; i < LF_N; i++) {
			(void)snprintf(text, sizeof(text), "lf %d", i);
			if ((m = chatc_build_one_chat(b.id, text)) == NULL)
				_exit(1);
			cJSON_AddNumberToObject(m, "seq", i + 1);
			if ((line = chatc_line(m, &n)) == NULL ||
			    chatc_send_raw(a.c, line, n) != 0)
				_exit(1);
			cJSON_Delete(m);
			free(line);
			(void)usleep(LF_GAP_US);
		}
		_exit(0);
	}
	for (got = 0; got < LF_READ; got++) {
		m = chatc_wait_msgid(b.c, MSG_ONE_CHAT, PUSH_MS);
		ck_assert_msg(m != NULL, "chat %d: %s", got, chatc_error(b.c));
		lf_seen(lf_num(m, a.id), 0, seen, last);
		cJSON_Delete(m);
	}
	ck_assert_int_eq(chatc_send_raw(b.c, "{\"msgid\":3,\"seq\":\"bye\"}\n",
	    24), 0);
	while ((m = chatc_recv(b.c, REQ_MS)) != NULL &&
	    !(jnum(m, "msgid") == MSG_ACK &&
	    jnum(m, "refmsgid") == MSG_LOGINOUT)) {
		lf_seen(lf_num(m, a.id), 0, seen, last);
		cJSON_Delete(m);
	}
	ck_assert_msg(m != NULL, "no ACK of LOGINOUT: %s", chatc_error(b.c));
	cJSON_Delete(m);
	harness_close(b.c);
	b.c = NULL;
	b.slot = -1;
	for (i = nsess = 0; i < LF_N; i++)
		nsess += seen[i];
	ck_assert(waitpid(pid, &st, 0) == pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the sender "
	    "failed (wait status %#x)", (unsigned)st);
	/* Every chat answered: delivered or stored, never an error. */
	while (acks < LF_N && (m = chatc_recv(a.c, REQ_MS)) != NULL) {
		if (jnum(m, "msgid") == MSG_ACK || jnum(m, "msgid") ==
		    MSG_ERROR) {
			ck_assert_msg(jnum(m, "msgid") == MSG_ACK &&
			    chatc_errno(m) == 0, "ACK %d: %s", acks,
			    cJSON_PrintUnformatted(m));
			acks++;
		}
		cJSON_Delete(m);
	}
	ck_assert_msg(acks == LF_N, "%d of %d chats answered: %s", acks,
	    LF_N, chatc_error(a.c));

	/* The rest at the next login, then nothing more. */
	m = user_login(&b, ALL_SLOTS);
	off = offline_of(m, &k);
	for (i = 0; i < k; i++)
		lf_seen(lf_num(off[i], a.id), 1, seen, last);
	free_objs(off, k);
	cJSON_Delete(m);
	deadline = harness_now_ms() + RETRY_MS;
	for (;;) {
		for (i = got = 0; i < LF_N; i++)
			got += seen[i] > 0;
		if (got == LF_N)
			deadline = deadline < harness_now_ms() + QUIET_MS ?
			    deadline : harness_now_ms() + QUIET_MS;
		if (harness_now_ms() >= deadline ||
		    (m = chatc_recv(b.c, (int)(deadline - harness_now_ms())))
		    == NULL)
			break;
		lf_seen(lf_num(m, a.id), 1, seen, last);
		cJSON_Delete(m);
	}
	for (i = k = 0; i < LF_N; i++)
		k += seen[i] > 1;
	fprintf(stderr, "it_chat: logout during a flood: %d of %d chats in "
	    "the session, %d pulled at the next login\n", nsess, LF_N,
	    got - nsess);
	ck_assert_msg(got == LF_N && k == 0, "of %d chats, %d arrived and %d "
	    "more than once", LF_N, got, k);
	user_logout(&a);
	user_logout(&b);
}

START_TEST(test_logout_during_flood)
{
	int round;

	begin();
	for (round = 0; round < LF_ROUNDS; round++)
		logout_during_flood();
}
END_TEST

/* --- a classic client ---------------------------------------------------- */

/* Send one object the classic way: compact JSON ended by one NUL. */
static void
classic_send(struct chatc *c, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	ck_assert(n > 0 && (size_t)n < sizeof(buf) - 1);
	ck_assert_int_eq(chatc_send_raw(c, buf, (size_t)n + 1), 0);
}

/* The classic client's next message; it must be one it knows. */
static cJSON *
classic_recv(struct chatc *c, int msgid)
{
	cJSON *m;
	char *s;

	m = chatc_recv(c, PUSH_MS);
	ck_assert_msg(m != NULL, "classic client: no message %d: %s", msgid,
	    chatc_error(c));
	s = cJSON_PrintUnformatted(m);
	ck_assert_msg(jnum(m, "msgid") == msgid, "classic client: expected "
	    "msgid %d, got %s", msgid, s);
	ck_assert_msg(cJSON_GetObjectItem(m, "seq") == NULL, "classic "
	    "client got a seq: %s", s);
	free(s);
	return m;
}

/* Poll until u's FRIEND_LIST holds id (bounded). */
static void
wait_friend(struct user *u, long long id)
{
	long long deadline = harness_now_ms() + RETRY_MS;
	const cJSON *f;
	cJSON *r;
	int found = 0;

	while (!found) {
		r = ack_ok(u->c, chatc_friend_list(u->c, REQ_MS),
		    MSG_FRIEND_LIST);
		cJSON_ArrayForEach(f, jarr(r, "friends"))
			found |= jnum(f, "id") == id;
		cJSON_Delete(r);
		if (!found) {
			ck_assert_msg(harness_now_ms() < deadline, "%lld never became "
			    "%s's friend", id, u->name);
			harness_sleep_ms(POLL_MS);
		}
	}
}

/* Poll until the group holds uid (bounded), asked by member u. */
static void
wait_member(struct user *u, long long gid, long long uid)
{
	long long deadline = harness_now_ms() + RETRY_MS;
	const cJSON *m;
	cJSON *r;
	int found = 0;

	while (!found) {
		r = ack_ok(u->c, chatc_group_members(u->c, gid, REQ_MS),
		    MSG_GROUP_MEMBERS);
		cJSON_ArrayForEach(m, jarr(r, "users"))
			found |= jnum(m, "id") == uid;
		cJSON_Delete(r);
		if (!found) {
			ck_assert_msg(harness_now_ms() < deadline, "%lld never joined "
			    "group %lld", uid, gid);
			harness_sleep_ms(POLL_MS);
		}
	}
}

START_TEST(test_classic_session)
{
	struct user k, p;	/* k: the classic client's user; p: a peer */
	char cgname[PROTO_GROUPNAME_MAX + 1], pgname[PROTO_GROUPNAME_MAX + 1];
	char sql[256], out[64];
	long long deadline, cgid = 0, pgid;
	struct chatc *kc;
	cJSON *m;
	int kslot;

	begin();
	user_new(&p, "peer");
	user_online(&p, ALL_SLOTS);
	memset(&k, 0, sizeof(k));
	unique_name(k.name, sizeof(k.name), "classic");
	kc = conn_on(ALL_SLOTS & ~(1u << p.slot), &kslot);

	/* REG and LOGIN: the only replies besides forwarded chats. */
	classic_send(kc, "{\"msgid\":4,\"name\":\"%s\",\"password\":\"%s\"}",
	    k.name, PASSWORD);
	m = classic_recv(kc, MSG_REG_ACK);
	ck_assert_int_eq(chatc_errno(m), 0);
	k.id = jnum(m, "id");
	cJSON_Delete(m);
	classic_send(kc, "{\"msgid\":1,\"id\":%lld,\"password\":\"%s\"}",
	    k.id, PASSWORD);
	m = classic_recv(kc, MSG_LOGIN_ACK);
	ck_assert_int_eq(chatc_errno(m), 0);
	ck_assert_int_eq(jnum(m, "id"), k.id);
	ck_assert_str_eq(jstr(m, "name"), k.name);
	cJSON_Delete(m);
	ck_assert_int_eq(slot_of(k.id, NULL), kslot);

	/* chat and addfriend back to back in one write, as a burst. */
	{
		char buf[1024];
		int n;

		n = snprintf(buf, sizeof(buf),
		    "{\"msgid\":6,\"id\":%lld,\"name\":\"%s\",\"toid\":%lld,"
		    "\"msg\":\"hi from classic\",\"time\":\"2024-05-06 "
		    "07:08:09\"}%c{\"msgid\":7,\"id\":%lld,\"friendid\":%lld}",
		    k.id, k.name, p.id, '\0', k.id, p.id);
		ck_assert(n > 0 && (size_t)n < sizeof(buf) - 1);
		ck_assert_int_eq(chatc_send_raw(kc, buf, (size_t)n + 1), 0);
	}
	wait_chat(&p, MSG_ONE_CHAT, &k, "toid", p.id, "hi from classic",
	    "2024-05-06 07:08:09");
	wait_friend(&p, k.id);

	/* A chat to the classic client arrives as the classic frame. */
	ack_status(p.c, request(p.c, one_chat_req(k.id, "hi classic")),
	    MSG_ONE_CHAT, "delivered");
	m = classic_recv(kc, MSG_ONE_CHAT);
	check_chat(m, MSG_ONE_CHAT, &p, "toid", k.id, "hi classic", NULL);
	cJSON_Delete(m);

	/* creategroup: no reply; the database shows it and the role. */
	unique_name(cgname, sizeof(cgname), "cg");
	classic_send(kc, "{\"msgid\":8,\"id\":%lld,\"groupname\":\"%s\","
	    "\"groupdesc\":\"classic group\"}", k.id, cgname);
	(void)snprintf(sql, sizeof(sql), "SELECT g.id FROM chatgroups g JOIN "
	    "groupmembers m ON m.groupid = g.id WHERE g.groupname = '%s' AND "
	    "m.userid = %lld AND m.grouprole = 'creator'", cgname, k.id);
	deadline = harness_now_ms() + RETRY_MS;
	for (;;) {
		ck_assert(harness_sql_value(&H, sql, out, sizeof(out)) == 0);
		if ((cgid = strtoll(out, NULL, 10)) > 0)
			break;
		ck_assert_msg(harness_now_ms() < deadline, "classic creategroup %s "
		    "never appeared", cgname);
		harness_sleep_ms(POLL_MS);
	}
	ack_ok_free(p.c, chatc_add_group(p.c, cgid, REQ_MS), MSG_ADD_GROUP);

	/* addgroup to the peer's group. */
	pgid = create_group(&p, pgname, sizeof(pgname), "peer group");
	classic_send(kc, "{\"msgid\":9,\"id\":%lld,\"groupid\":%lld}", k.id,
	    pgid);
	wait_member(&p, pgid, k.id);

	/* groupchat both ways, in both groups. */
	classic_send(kc, "{\"msgid\":10,\"id\":%lld,\"name\":\"%s\","
	    "\"groupid\":%lld,\"msg\":\"classic to group\",\"time\":"
	    "\"2024-05-06 07:08:10\"}", k.id, k.name, cgid);
	wait_chat(&p, MSG_GROUP_CHAT, &k, "groupid", cgid, "classic to group",
	    "2024-05-06 07:08:10");
	classic_send(kc, "{\"msgid\":10,\"id\":%lld,\"name\":\"%s\","
	    "\"groupid\":%lld,\"msg\":\"classic to peer group\",\"time\":"
	    "\"2024-05-06 07:08:11\"}", k.id, k.name, pgid);
	wait_chat(&p, MSG_GROUP_CHAT, &k, "groupid", pgid,
	    "classic to peer group", "2024-05-06 07:08:11");
	ack_status(p.c, request(p.c, group_chat_req(pgid, "peer to group")),
	    MSG_GROUP_CHAT, "delivered");
	m = classic_recv(kc, MSG_GROUP_CHAT);
	check_chat(m, MSG_GROUP_CHAT, &p, "groupid", pgid, "peer to group",
	    NULL);
	cJSON_Delete(m);

	/* loginout: no reply; the friend sees the classic user leave. */
	classic_send(kc, "{\"msgid\":3,\"id\":%lld}", k.id);
	check_presence(&p, k.id, "offline");
	ck_assert_int_eq(slot_of(k.id, NULL), -1);

	/* Nothing else (no ACK, no ERROR) ever reached the classic client. */
	no_msgid(kc, -1, QUIET_MS, "classic client");
	harness_close(kc);
}
END_TEST

/* --- a worker killed under load ------------------------------------------ */

/*
 * Record the numbered message of frame m ("kill NN") in seen[]; frames
 * of other kinds are ignored.
 */
static void
note_kill_msg(const cJSON *m, int *seen, int n)
{
	const cJSON *t;
	int i;

	if (!cJSON_IsObject(m) || jnum(m, "msgid") != MSG_ONE_CHAT)
		return;
	t = cJSON_GetObjectItemCaseSensitive(m, "msg");
	if (!cJSON_IsString(t) || sscanf(t->valuestring, "kill %d", &i) != 1)
		return;
	ck_assert_msg(i >= 0 && i < n, "unexpected message %s",
	    t->valuestring);
	seen[i]++;
}

/* Read whatever c has until nothing comes for ms (or EOF). */
static void
drain_kill_msgs(struct chatc *c, int ms, int *seen, int n)
{
	cJSON *m;

	while ((m = chatc_recv(c, ms)) != NULL) {
		note_kill_msg(m, seen, n);
		cJSON_Delete(m);
	}
}

/* Bytes queued in the kernel on the server's side (port) of the
 * connection whose client end is fd (/proc/net/tcp tx_queue), or -1. */
static long
server_sendq(int fd, int port)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	unsigned lport, rport, st;
	unsigned long tx, rx;
	char line[512];
	FILE *fp;
	long q = -1;

	if (getsockname(fd, (struct sockaddr *)&sa, &sl) == -1 ||
	    (fp = fopen("/proc/net/tcp", "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (sscanf(line, " %*d: %*x:%x %*x:%x %x %lx:%lx", &lport,
		    &rport, &st, &tx, &rx) != 5)
			continue;
		if (rport == ntohs(sa.sin_port) &&
		    lport == (unsigned)port)
			q = (long)tx;
	}
	(void)fclose(fp);
	return q;
}

/*
 * Log u in on a new connection of any worker, retrying (refused while its
 * old session is still being cleaned up) for at most ms; u->c is the new
 * connection.  Returns the LOGIN_ACK.
 */
static cJSON *
login_retry(struct user *u, long ms)
{
	long long deadline = harness_now_ms() + ms;
	struct chatc *c;
	cJSON *ack;

	for (;;) {
		c = xconnect();
		ack = chatc_login(c, u->id, PASSWORD, REQ_MS);
		if (ack != NULL && chatc_errno(ack) == 0)
			break;
		cJSON_Delete(ack);
		harness_close(c);
		ck_assert_msg(harness_now_ms() < deadline, "user %s could not "
		    "log in again within %ld ms", u->name, ms);
		harness_sleep_ms(POLL_MS * 4);
	}
	u->c = c;
	return ack;
}

/* Wait until the slot of the killed worker pid runs a new worker. */
static void
wait_respawn(pid_t dead)
{
	long long deadline = harness_now_ms() + RESPAWN_MS;
	pid_t pids[64];
	int i, n, gone;

	for (;;) {
		n = harness_chatd_workers(&H, 0, pids, 64);
		for (i = 0, gone = 1; i < n; i++)
			gone &= pids[i] != dead;
		if (n == NWORKERS && gone)
			return;
		ck_assert_msg(harness_now_ms() < deadline, "worker pid %ld not "
		    "replaced within %d ms (%d workers)", (long)dead,
		    RESPAWN_MS, n);
		harness_sleep_ms(POLL_MS);
	}
}

struct kill_plan {
	int nmsg;		/* messages sent */
	int kill_at;		/* SIGKILL right after sending this one */
	size_t textlen;		/* bytes of each message */
	int read_during;	/* the receiver reads between sends */
	int rcvbuf;		/* receiver's SO_RCVBUF, 0 to leave it */
	int pace_ms;		/* sleep between sends */
};

/*
 * A receiver on worker X, a sender on another worker sending numbered
 * messages with seq, worker X SIGKILLed in the middle.  Every message
 * the server acknowledged ("delivered" or "stored") must reach the
 * receiver: before the kill, in LOGIN_ACK's offlinemsg when it logs in
 * again, or pushed right after.
 */
static void
worker_kill_run(const struct kill_plan *kp)
{
	enum { SEQ0 = 70000 };
	const int nmsg = kp->nmsg;
	struct user r, s;
	int *seen, *acked, *errs;
	char (*status)[16];
	char *text;
	pid_t wpid, pids[64];
	int i, n, nw, found, replies, ninack, lost = 0;
	int ndeliv = 0, nstored = 0, nbefore = 0, ntotal = 0;
	long long deadline, seq;
	long sendq = -1;
	cJSON *m, *ack, **off;

	seen = calloc((size_t)nmsg, sizeof(int));
	acked = calloc((size_t)nmsg, sizeof(int));
	errs = calloc((size_t)nmsg, sizeof(int));
	status = calloc((size_t)nmsg, sizeof(*status));
	text = malloc(kp->textlen + 1);
	ck_assert(seen && acked && errs && status && text);

	begin();
	user_new(&r, "recv");
	user_new(&s, "send");
	user_online(&r, ALL_SLOTS);
	user_online(&s, ALL_SLOTS & ~(1u << r.slot));
	ck_assert_int_eq(slot_of(r.id, &wpid), r.slot);
	nw = harness_chatd_workers(&H, 0, pids, 64);
	ck_assert_msg(nw == NWORKERS, "%d workers running", nw);
	for (i = found = 0; i < nw; i++)
		found |= pids[i] == wpid;
	ck_assert_msg(found, "presence says worker pid %ld, not a worker of "
	    "chatd", (long)wpid);
	if (kp->rcvbuf > 0)
		ck_assert_int_eq(setsockopt(chatc_fd(r.c), SOL_SOCKET,
		    SO_RCVBUF, &kp->rcvbuf, sizeof(kp->rcvbuf)), 0);

	for (i = 0; i < nmsg; i++) {
		n = snprintf(text, kp->textlen + 1, "kill %02d ", i);
		if ((size_t)n < kp->textlen)
			memset(text + n, 'k', kp->textlen - (size_t)n);
		text[kp->textlen] = '\0';
		m = one_chat_req(r.id, text);
		cJSON_AddNumberToObject(m, "seq", SEQ0 + i);
		ck_assert_int_eq(chatc_send(s.c, m), 0);
		cJSON_Delete(m);
		if (i == kp->kill_at) {
			sendq = server_sendq(chatc_fd(r.c), H.chatd[0].port);
			ck_assert_int_eq(kill(wpid, SIGKILL), 0);
		}
		if (kp->read_during)
			drain_kill_msgs(r.c, 0, seen, nmsg);
		if (kp->pace_ms > 0)
			harness_sleep_ms(kp->pace_ms);
	}

	/* Every request is answered: ACK or ERROR. */
	deadline = harness_now_ms() + RELOGIN_MS;
	for (replies = 0; replies < nmsg; ) {
		long long left = deadline - harness_now_ms();

		ck_assert_msg(left > 0, "only %d of %d chats answered",
		    replies, nmsg);
		if ((m = chatc_recv(s.c, (int)left)) == NULL)
			ck_abort_msg("sender: %s after %d replies",
			    chatc_error(s.c), replies);
		if (jnum(m, "msgid") != MSG_ACK &&
		    jnum(m, "msgid") != MSG_ERROR) {
			cJSON_Delete(m);
			continue;
		}
		seq = jnum(m, "seq") - SEQ0;
		ck_assert(seq >= 0 && seq < nmsg);
		if (jnum(m, "msgid") == MSG_ACK) {
			acked[seq] = 1;
			(void)snprintf(status[seq], sizeof(status[seq]), "%s",
			    jstr(m, "status"));
			ndeliv += strcmp(status[seq], "delivered") == 0;
			nstored += strcmp(status[seq], "stored") == 0;
		} else
			errs[seq] = chatc_errno(m);
		cJSON_Delete(m);
		replies++;
	}

	/* What reached the receiver before its worker died. */
	drain_kill_msgs(r.c, 1000, seen, nmsg);
	for (i = 0; i < nmsg; i++)
		nbefore += seen[i];
	harness_close(r.c);
	r.c = NULL;

	/* Log in again: refused (already online) until the master has
	 * cleaned the dead worker's entries, or delayed by the respawn. */
	ack = login_retry(&r, RELOGIN_MS);
	off = offline_of(ack, &ninack);
	for (i = 0; i < ninack; i++)
		note_kill_msg(off[i], seen, nmsg);
	free_objs(off, ninack);
	cJSON_Delete(ack);

	/*
	 * Chats routed to the dead worker before the master cleaned its
	 * presence entries wait in that slot's inbox (the master keeps it)
	 * until the slot is respawned; its new worker stores them and the
	 * receiver is told to pull.  So wait for the respawn, then for every
	 * ACKed message, then for the offline table to empty.
	 */
	wait_respawn(wpid);
	deadline = harness_now_ms() + RETRY_MS;
	for (;;) {
		for (i = lost = 0; i < nmsg; i++)
			lost += acked[i] && seen[i] == 0;
		if (lost == 0 || harness_now_ms() >= deadline)
			break;
		drain_kill_msgs(r.c, 200, seen, nmsg);
	}
	db_offline_wait(r.id, 0);
	drain_kill_msgs(r.c, QUIET_MS, seen, nmsg);

	lost = 0;
	for (i = 0; i < nmsg; i++) {
		lost += acked[i] && seen[i] == 0;
		ntotal += seen[i];
	}
	if (lost > 0 || getenv("IT_CHAT_VERBOSE") != NULL) {
		fprintf(stderr, "it_chat: worker kill: %d sent (%zu bytes "
		    "each), killed after #%d with %ld bytes in the server's "
		    "kernel send queue; ACKed: %d delivered, %d stored; "
		    "received: %d before the kill, %d in LOGIN_ACK, %d pushed "
		    "after; ACKed but lost: %d", nmsg, kp->textlen,
		    kp->kill_at, sendq, ndeliv, nstored, nbefore, ninack,
		    ntotal - nbefore - ninack, lost);
		for (i = 0; i < nmsg; i++)
			if (acked[i] && seen[i] == 0)
				fprintf(stderr, " #%d(%s)", i, status[i]);
		fputc('\n', stderr);
	}
	ck_assert_msg(lost == 0, "%d acknowledged message(s) lost when "
	    "worker %d (pid %ld) was killed", lost, r.slot, (long)wpid);
	/* Nothing unanswered, and no failure but "unavailable". */
	for (i = 0; i < nmsg; i++)
		ck_assert_msg(acked[i] || errs[i] == CERR_UNAVAILABLE,
		    "message %d: errno %d", i, errs[i]);
	free(seen);
	free(acked);
	free(errs);
	free(status);
	free(text);
}

/* The receiver reads between sends, like an attentive client. */
START_TEST(test_worker_kill_active_reader)
{
	static const struct kill_plan kp = {
		.nmsg = 50, .kill_at = 25, .textlen = 16, .read_during = 1,
		.rcvbuf = 0, .pace_ms = 2,
	};

	worker_kill_run(&kp);
}
END_TEST

/*
 * The receiver reads nothing during the burst, has a small receive
 * buffer, and the frames are max_message bytes, so ~100 KB are queued
 * towards it when its worker dies.  (On loopback the kernel's autotuned
 * send buffer takes them, so the worker's own output buffer is normally
 * empty at the kill; the diagnostics line with IT_CHAT_VERBOSE=1 shows
 * how much the kernel held.)
 */
START_TEST(test_worker_kill_receiver_not_reading)
{
	static const struct kill_plan kp = {
		.nmsg = 50, .kill_at = 25, .textlen = MAX_MESSAGE,
		.read_during = 0, .rcvbuf = 4096, .pace_ms = 2,
	};

	worker_kill_run(&kp);
}
END_TEST

/* --- a receiver that stops reading --------------------------------------- */

/*
 * Its own chatd (instance SLOW_INST), started by the fixture of its own
 * TCase: two workers, the smallest max_output, frames of at most 8 KB,
 * and every offline message in one page as far as LOGIN_ACK's budget
 * (max_output / 2) goes.
 */
#define SLOW_INST	2
#define SLOW_WORKERS	2
#define SLOW_SLOTS	((1u << SLOW_WORKERS) - 1)
#define SLOW_MAX_OUTPUT	65536
#define SLOW_CONF	"[server]\nworkers = 2\nmax_output = 65536\n" \
			"max_frame = 8192\nmax_message = 4096\n" \
			"offline_batch = 1000\n"

#define SLOW_SEQ0	90000
#define SLOW_NMAX	3000	/* messages sent at most */
#define SLOW_TEXTLEN	3000	/* bytes of each */
#define SLOW_WINDOW	16	/* requests in flight */
#define SLOW_AFTER	8	/* sent after the disconnect was seen */
/*
 * The receiver's SO_RCVBUF (the kernel doubles it).  Not smaller: on
 * loopback the server's MSS is 32 KB (half the largest window the
 * receiver offered before it shrank), a window that stays below it is
 * fed only by the persist timer, ~8 KB per 200 ms, and the server's
 * kernel holds ~4 MB for the dropped connection (its send buffer
 * autotunes to tcp_wmem's maximum whatever the receiver does).  With
 * 4 or 8 KB the drain never finished within SLOW_EOF_MS, with 16 KB it
 * sometimes did not.
 */
#define SLOW_RCVBUF	32768
#define SLOW_SEND_MS	30000	/* the whole sending phase */
#define SLOW_EOF_MS	10000	/* the receiver reading until EOF */
#define SLOW_QUIET_MS	1000	/* nothing more pushed after the login */

static int slow_ok;		/* instance SLOW_INST is running */

/* Start instance SLOW_INST with conf (after the shared servers). */
static void
slow_start(const char *conf)
{
	setup();
	slow_ok = harness_ok &&
	    harness_start_chatd(&H, SLOW_INST, conf) == 0;
	if (harness_ok && !slow_ok)
		fprintf(stderr, "it_chat: starting chatd-%d failed (see "
		    "above)\n", SLOW_INST);
}

static void
slow_setup(void)
{
	slow_start(SLOW_CONF);
}

static void
slow_teardown(void)
{
	int status;

	if (H.chatd[SLOW_INST].pid <= 0)
		return;
	status = harness_signal_chatd(&H, SLOW_INST, SIGTERM, 1);
	if (status != 0)
		fprintf(stderr, "it_chat: chatd-%d did not exit cleanly on "
		    "SIGTERM (status %#x)\n", SLOW_INST, status);
}

/* Message i: "slow NNNNN " padded with 's' to SLOW_TEXTLEN bytes. */
static void
slow_text(char *buf, int i)
{
	int n;

	n = snprintf(buf, SLOW_TEXTLEN + 1, "slow %05d ", i);
	memset(buf + n, 's', (size_t)(SLOW_TEXTLEN - n));
	buf[SLOW_TEXTLEN] = '\0';
}

/*
 * The number of the message a ONE_CHAT frame m carries, after checking
 * the frame is exactly what from sent to toid; -1 for other frames.
 */
static int
slow_num(const cJSON *m, const struct user *from, long long toid)
{
	char want[SLOW_TEXTLEN + 1];
	const cJSON *t;
	int i;

	if (jnum(m, "msgid") != MSG_ONE_CHAT)
		return -1;
	t = cJSON_GetObjectItemCaseSensitive(m, "msg");
	ck_assert_msg(cJSON_IsString(t) &&
	    sscanf(t->valuestring, "slow %d", &i) == 1 && i >= 0 &&
	    i < SLOW_NMAX, "unexpected chat frame to the slow consumer");
	slow_text(want, i);
	check_chat(m, MSG_ONE_CHAT, from, "toid", toid, want, NULL);
	return i;
}

/* Send message i from s to toid, with seq SLOW_SEQ0 + i. */
static void
slow_send(struct user *s, long long toid, int i)
{
	char text[SLOW_TEXTLEN + 1];
	cJSON *m;

	slow_text(text, i);
	m = one_chat_req(toid, text);
	cJSON_AddNumberToObject(m, "seq", SLOW_SEQ0 + i);
	ck_assert_msg(chatc_send(s->c, m) == 0, "sender: message %d: %s", i,
	    chatc_error(s->c));
	cJSON_Delete(m);
}

/* What the slow consumer's first connection got before its EOF. */
struct slow_drain {
	int frames;		/* complete lines */
	int reset;		/* ended by a reset, not EOF */
	size_t partial;		/* bytes of an unterminated last line */
	int partial_num;	/* the message it began, or -1 */
};

/*
 * Read c's socket directly (chatc's own reader has nothing: nothing was
 * read since LOGIN_ACK) until EOF or a reset, counting the messages in
 * seen[].  Direct, so a frame cut by the close shows as a partial line.
 */
static void
slow_drain(struct chatc *c, const struct user *from, long long toid,
    int *seen, struct slow_drain *d)
{
	long long deadline = harness_now_ms() + SLOW_EOF_MS;
	struct chatc_reader rd;
	struct pollfd pfd;
	char buf[16384];
	const char *line;
	size_t len;
	ssize_t n;
	cJSON *m;
	int i, rc;

	memset(d, 0, sizeof(*d));
	chatc_reader_init(&rd, 1 << 20);
	for (;;) {
		long long left = deadline - harness_now_ms();

		ck_assert_msg(left > 0, "slow consumer: no EOF within %d ms "
		    "(%d frames read; a receive window below the server's "
		    "MSS? see SLOW_RCVBUF)", SLOW_EOF_MS, d->frames);
		pfd.fd = chatc_fd(c);
		pfd.events = POLLIN;
		rc = poll(&pfd, 1, (int)left);
		ck_assert_msg(rc >= 0 || errno == EINTR, "poll: %s",
		    strerror(errno));
		if (rc <= 0)
			continue;
		n = recv(pfd.fd, buf, sizeof(buf), 0);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n == -1 && errno == ECONNRESET) {
			d->reset = 1;
			break;
		}
		ck_assert_msg(n >= 0, "slow consumer: recv: %s",
		    strerror(errno));
		if (n == 0)
			break;
		ck_assert(chatc_reader_feed(&rd, buf, (size_t)n) == 0);
		while (chatc_reader_next(&rd, &line, &len)) {
			m = cJSON_ParseWithLength(line, len);
			ck_assert_msg(cJSON_IsObject(m), "slow consumer: "
			    "invalid line of %zu bytes", len);
			if ((i = slow_num(m, from, toid)) >= 0)
				seen[i]++;
			cJSON_Delete(m);
			d->frames++;
		}
	}
	d->partial = rd.len - rd.off;
	d->partial_num = -1;
	if (d->partial > 0) {
		char *p, *tail = strndup(rd.buf + rd.off, d->partial);

		ck_assert(tail != NULL);
		if ((p = strstr(tail, "\"msg\":\"slow ")) == NULL ||
		    sscanf(p + 7, "slow %d ", &d->partial_num) != 1)
			d->partial_num = -1;
		free(tail);
	}
	chatc_reader_free(&rd);
}

/* N of instance i's last "user <uid>: N queued message(s) stored
 * offline", or -1. */
static int
slow_rescued(int i, long long uid)
{
	char line[512], needle[64];
	const char *p;
	FILE *fp;
	int n = -1;

	(void)snprintf(needle, sizeof(needle), "user %lld: ", uid);
	if ((fp = fopen(H.chatd[i].log_path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL)
		if ((p = strstr(line, needle)) != NULL &&
		    strstr(p, "queued message(s) stored offline") != NULL)
			n = atoi(p + strlen(needle));
	(void)fclose(fp);
	return n;
}

/*
 * Log r in again on a new connection of any worker (retrying while its
 * old session may still be ending) and count in seen[] the messages from
 * s it is given: *ninack in LOGIN_ACK's offlinemsg, *npushed after it,
 * until the offline table holds nothing more for r.  r stays online.
 */
static void
slow_relogin(struct user *r, const struct user *s, int *seen, int *ninack,
    int *npushed)
{
	long long deadline;
	cJSON *ack, *m, **off;
	int i, rc;

	ack = login_retry(r, RETRY_MS);
	off = offline_of(ack, ninack);
	for (i = 0; i < *ninack; i++)
		if ((rc = slow_num(off[i], s, r->id)) >= 0)
			seen[rc]++;
	free_objs(off, *ninack);
	cJSON_Delete(ack);
	*npushed = 0;
	deadline = harness_now_ms() + RETRY_MS;
	for (;;) {
		while ((m = chatc_recv(r->c, SLOW_QUIET_MS)) != NULL) {
			if ((rc = slow_num(m, s, r->id)) >= 0) {
				seen[rc]++;
				(*npushed)++;
			}
			cJSON_Delete(m);
		}
		ck_assert_msg(strcmp(chatc_error(r->c), "timeout") == 0,
		    "receiver after its new login: %s", chatc_error(r->c));
		if (db_offline_count(r->id) == 0 ||
		    harness_now_ms() >= deadline)
			break;
	}
}

/*
 * A receiver that logged in with a small receive buffer and then reads
 * nothing; a sender (on the receiver's worker, or on the other one)
 * pipelines numbered ~3 KB messages with seq until chatd has dropped the
 * receiver as a slow consumer and ACKed at least one message "stored".
 * Every message ACKed "delivered" or "stored" must then reach the
 * receiver: read before the EOF, in LOGIN_ACK's offlinemsg, or pushed
 * after it.  A message may come twice only where the output was cut.
 */
static void
slow_consumer_run(int same_worker)
{
	const char *how = same_worker ? "same worker" : "other worker";
	struct user r, s;
	struct chatc *c;
	struct slow_drain d;
	char needle[160], (*status)[16];
	int *seen, *acked, *errs;
	int i, slot, rc, gone = 0, next = 0, stop_at = SLOW_NMAX;
	int inflight = 0, ndeliv = 0, nstored = 0, nerr = 0, first_stored = -1;
	int ninack = 0, npushed = 0, nbefore, lost, ndup, maxseen, rescued;
	long long t0 = harness_now_ms(), deadline, left, seq;
	long sendq = -1;
	cJSON *m;

	seen = calloc(SLOW_NMAX, sizeof(int));
	acked = calloc(SLOW_NMAX, sizeof(int));
	errs = calloc(SLOW_NMAX, sizeof(int));
	status = calloc(SLOW_NMAX, sizeof(*status));
	ck_assert(seen && acked && errs && status);

	ck_assert_msg(slow_ok, "chatd-%d did not start (see stderr)",
	    SLOW_INST);
	begin_on(SLOW_INST);
	user_new(&r, "slowrecv");
	user_new(&s, "slowsend");

	/* The receiver: small receive buffer before its login. */
	c = conn_on(SLOW_SLOTS, &slot);
	rc = SLOW_RCVBUF;
	ck_assert_int_eq(setsockopt(chatc_fd(c), SOL_SOCKET, SO_RCVBUF, &rc,
	    sizeof(rc)), 0);
	cJSON_Delete(user_login_conn(&r, c, slot));
	user_online(&s, same_worker ? 1u << r.slot :
	    SLOW_SLOTS & ~(1u << r.slot));
	ck_assert_int_eq(same_worker, s.slot == r.slot);
	(void)snprintf(needle, sizeof(needle), "(user %lld): output over "
	    "max_output (%d bytes), disconnecting the slow consumer", r.id,
	    SLOW_MAX_OUTPUT);

	/* Send, a window in flight, until the receiver is dropped. */
	deadline = harness_now_ms() + SLOW_SEND_MS;
	while (next < stop_at || inflight > 0) {
		while (next < stop_at && inflight < SLOW_WINDOW) {
			slow_send(&s, r.id, next++);
			inflight++;
		}
		left = deadline - harness_now_ms();
		ck_assert_msg(left > 0, "%s: after %d ms, %d sent, %d "
		    "delivered, %d stored, dropped: %s", how, SLOW_SEND_MS,
		    next, ndeliv, nstored, gone ? "yes" : "no");
		m = chatc_recv(s.c, (int)left);
		ck_assert_msg(m != NULL, "sender: %s after %d sent",
		    chatc_error(s.c), next);
		if (jnum(m, "msgid") != MSG_ACK &&
		    jnum(m, "msgid") != MSG_ERROR) {
			cJSON_Delete(m);
			continue;
		}
		seq = jnum(m, "seq") - SLOW_SEQ0;
		ck_assert_msg(seq >= 0 && seq < next && !acked[seq] &&
		    !errs[seq], "reply with unexpected seq %lld",
		    seq + SLOW_SEQ0);
		if (jnum(m, "msgid") == MSG_ACK) {
			acked[seq] = 1;
			(void)snprintf(status[seq], sizeof(status[seq]), "%s",
			    jstr(m, "status"));
			if (strcmp(status[seq], "stored") == 0) {
				nstored++;
				if (first_stored < 0 || seq < first_stored)
					first_stored = (int)seq;
			} else {
				ck_assert_str_eq(status[seq], "delivered");
				ndeliv++;
			}
		} else {
			errs[seq] = chatc_errno(m);
			ck_assert_msg(errs[seq] != 0, "ERROR without errno");
			nerr++;
		}
		cJSON_Delete(m);
		inflight--;
		if (!gone && nstored > 0 &&
		    harness_log_contains(&H, SLOW_INST, needle)) {
			gone = 1;
			sendq = server_sendq(chatc_fd(r.c),
			    H.chatd[SLOW_INST].port);
			stop_at = next + SLOW_AFTER < SLOW_NMAX ?
			    next + SLOW_AFTER : SLOW_NMAX;
		}
	}
	ck_assert_msg(gone, "%s: %d messages sent (%d delivered, %d stored), "
	    "the receiver was never dropped as a slow consumer", how, next,
	    ndeliv, nstored);
	ck_assert_msg(nerr == 0, "%s: %d chat(s) refused, the first errno "
	    "%d", how, nerr, errs[0]);

	/* The receiver reads what reached it, up to the server's close. */
	slow_drain(r.c, &s, r.id, seen, &d);
	for (i = nbefore = 0; i < next; i++)
		nbefore += seen[i];
	if (same_worker) {
		/* The chat that did not fit was stored, not sent, and so
		 * was every later one: the receiver was offline. */
		ck_assert_msg(seen[first_stored] == 0, "message %d, ACKed "
		    "stored, was read before the EOF", first_stored);
		for (i = first_stored; i < next; i++)
			ck_assert_msg(strcmp(status[i], "stored") == 0,
			    "message %d ACKed %s after %d was stored", i,
			    status[i], first_stored);
	}
	harness_close(r.c);
	r.c = NULL;
	ck_assert_int_eq(slot_of(r.id, NULL), -1);
	rescued = slow_rescued(SLOW_INST, r.id);

	/* Log in again (any worker) and take everything stored. */
	slow_relogin(&r, &s, seen, &ninack, &npushed);

	for (i = lost = ndup = maxseen = 0; i < next; i++) {
		lost += acked[i] && seen[i] == 0;
		ndup += seen[i] > 1 ? seen[i] - 1 : 0;
		if (seen[i] > maxseen)
			maxseen = seen[i];
	}
	if (lost > 0 || ndup > 0 || getenv("IT_CHAT_VERBOSE") != NULL) {
		fprintf(stderr, "it_chat: slow consumer (%s): %d sent (%d "
		    "bytes each), ACKed %d delivered + %d stored (first "
		    "stored #%d); %ld bytes in the server's kernel send queue "
		    "at the drop; receiver read %d frames before EOF%s, then "
		    "a partial line of %zu bytes (message #%d); log: %d "
		    "rescued; after login: %d in LOGIN_ACK, %d pushed; "
		    "duplicates %d; lost %d; %lld ms", how, next,
		    SLOW_TEXTLEN, ndeliv, nstored, first_stored, sendq,
		    nbefore, d.reset ? " (reset)" : "", d.partial,
		    d.partial_num, rescued, ninack, npushed, ndup, lost,
		    harness_now_ms() - t0);
		for (i = 0; i < next; i++)
			if ((acked[i] && seen[i] == 0) || seen[i] > 1)
				fprintf(stderr, " #%d(%s,seen %d)", i,
				    status[i], seen[i]);
		fputc('\n', stderr);
	}
	ck_assert_msg(!d.reset, "%s: the slow consumer's connection was "
	    "reset, not closed", how);
	ck_assert_msg(lost == 0, "%s: %d acknowledged message(s) lost when "
	    "the slow consumer was dropped%s (see stderr)", how, lost,
	    d.partial_num >= 0 && acked[d.partial_num] &&
	    seen[d.partial_num] == 0 ? ", among them the one whose frame "
	    "the close cut" : "");
	ck_assert_msg(maxseen <= 2 && ndup <= 1, "%s: %d duplicate(s), a "
	    "message %d times (see stderr)", how, ndup, maxseen);
	ck_assert_msg(nstored > 0 && first_stored >= 0, "no ACK said stored");
	ck_assert_msg(harness_log_contains(&H, SLOW_INST, "stored offline") &&
	    rescued > 0, "%s: chatd dropped user %lld without storing the "
	    "chats queued for it (\"stored offline\" not logged)", how, r.id);
	db_offline_wait(r.id, 0);
	free(seen);
	free(acked);
	free(errs);
	free(status);
}

/* Sender and receiver on one worker: the chat that does not fit is
 * stored and its ACK says so. */
START_TEST(test_slow_consumer_same_worker)
{
	slow_consumer_run(1);
}
END_TEST

/*
 * A user who chats to themself and reads nothing: the chat that finds
 * their own output full drops them as a slow consumer in the middle of
 * their own request, and the same request goes on to store that chat
 * with them as its sender.  Their worker must survive (under ASan a
 * freed sender showed as a heap-use-after-free and the worker aborted),
 * and what was stored must come back at their next login, once each.
 */
START_TEST(test_slow_consumer_self)
{
	char text[SLOW_TEXTLEN + 1], *frame, needle[160];
	struct user u;
	struct chatc *c;
	struct slow_drain d;
	int *seen, i, slot, rc, n = 0, ninack, npushed = 0, total;
	long long deadline;
	long stored;
	size_t len, off = 0;
	ssize_t k;
	cJSON **offl, *ack, *m;

	ck_assert_msg(slow_ok, "chatd-%d did not start (see stderr)",
	    SLOW_INST);
	begin_on(SLOW_INST);
	user_new(&u, "slowself");
	seen = calloc(SLOW_NMAX, sizeof(int));
	frame = malloc(SLOW_TEXTLEN + 128);
	ck_assert(seen != NULL && frame != NULL);
	c = conn_on(SLOW_SLOTS, &slot);
	rc = SLOW_RCVBUF;
	ck_assert_int_eq(setsockopt(chatc_fd(c), SOL_SOCKET, SO_RCVBUF, &rc,
	    sizeof(rc)), 0);
	cJSON_Delete(user_login_conn(&u, c, slot));
	(void)snprintf(needle, sizeof(needle), "(user %lld): output over "
	    "max_output (%d bytes), disconnecting the slow consumer", u.id,
	    SLOW_MAX_OUTPUT);

	/* Write chats to oneself, never reading, until chatd drops us. */
	deadline = harness_now_ms() + SLOW_SEND_MS;
	len = 0;
	while (!harness_log_contains(&H, SLOW_INST, needle)) {
		ck_assert_msg(harness_now_ms() < deadline, "%d chats to "
		    "oneself written in %d ms, never dropped as a slow "
		    "consumer", n, SLOW_SEND_MS);
		if (off == len) {
			ck_assert_msg(n < SLOW_NMAX, "%d chats to oneself "
			    "written, never dropped", n);
			slow_text(text, n++);
			len = (size_t)snprintf(frame, SLOW_TEXTLEN + 128,
			    "{\"msgid\":6,\"toid\":%lld,\"msg\":\"%s\"}",
			    u.id, text);
			off = 0;
		}
		k = send(chatc_fd(c), frame + off, len - off,
		    MSG_DONTWAIT | MSG_NOSIGNAL);
		if (k > 0)
			off += (size_t)k;
		else if (k == -1 && (errno == EAGAIN || errno == EINTR))
			harness_sleep_ms(5);
		else
			break;	/* closed: the log line is on its way */
	}
	ck_assert_msg(harness_log_contains(&H, SLOW_INST, needle) ||
	    harness_now_ms() < deadline, "the connection closed but chatd "
	    "logged no slow consumer");
	slow_drain(c, &u, u.id, seen, &d);
	harness_close(c);
	u.c = NULL;

	/* What the request stored after dropping its sender is written
	 * by a job that ends with the sender's reference: wait for it. */
	db_offline_wait_some(u.id);
	harness_sleep_ms(300);
	ck_assert_msg(!harness_log_contains(&H, SLOW_INST,
	    "killed by signal") && !harness_log_contains(&H, SLOW_INST,
	    "exited with status"), "a worker died after a user chatting to "
	    "themself was dropped as a slow consumer (see the log of "
	    "chatd-%d)", SLOW_INST);
	stored = db_offline_count(u.id);

	/* Log in again: everything stored comes back, once each. */
	c = xconnect();
	ack = chatc_login(c, u.id, PASSWORD, REQ_MS);
	ck_assert_msg(ack != NULL && chatc_errno(ack) == 0, "login after "
	    "the drop: %s", ack ? chatc_errmsg(ack) : chatc_error(c));
	offl = offline_of(ack, &ninack);
	for (i = 0; i < ninack; i++)
		if ((rc = slow_num(offl[i], &u, u.id)) >= 0)
			seen[rc]++;
	free_objs(offl, ninack);
	cJSON_Delete(ack);
	while ((m = chatc_recv(c, SLOW_QUIET_MS)) != NULL) {
		if ((rc = slow_num(m, &u, u.id)) >= 0) {
			seen[rc]++;
			npushed++;
		}
		cJSON_Delete(m);
	}
	harness_close(c);
	ck_assert_msg(ninack + npushed == stored, "%ld stored, %d came back "
	    "(%d in LOGIN_ACK, %d pushed)", stored, ninack + npushed, ninack,
	    npushed);
	for (i = total = 0; i < n; i++) {
		ck_assert_msg(seen[i] <= 2, "chat %d to oneself came %d "
		    "times", i, seen[i]);
		total += seen[i];
	}
	ck_assert_msg(total > 0 && stored > 0, "of %d chats to oneself, %d "
	    "read before the drop and %ld stored", n, d.frames, stored);
	db_offline_wait(u.id, 0);
	free(seen);
	free(frame);
}
END_TEST

/* Across workers: the receiver's worker drops it on an inbox delivery
 * (that chat was ACKed "delivered" and is stored there). */
START_TEST(test_slow_consumer_other_worker)
{
	slow_consumer_run(0);
}
END_TEST

/* --- a worker that stops reading ---------------------------------------- */

/*
 * A worker that stops reading (SIGSTOP here: a worker stuck for a while)
 * lets the queue another worker keeps for it fill up, and then that queue
 * refuses records: a message for one of its users is stored offline
 * instead.  The news that goes with such a refusal must still reach the
 * stopped worker once it reads again, not be dropped with the full queue:
 * its user is told to pull the stored message (no new login needed), and
 * its cache of a group drops the members it had once someone joins on the
 * other worker.  On its own instance of the slow consumer's configuration
 * (two workers, max_output 64 KiB: a 128 KiB ring and a 4 MiB queue),
 * without Redis: with it, what the queue refuses goes through Redis to
 * the stopped worker's subscriber, and so do group changes.
 */
#define NEWS_CONF	SLOW_CONF "[redis]\nredis_host =\n"
#define NEWS_TEXTLEN	3000
#define NEWS_NMAX	4000	/* 12 MB at most, three times what fills */
#define NEWS_WINDOW	32	/* chats in flight */
#define NEWS_FILL_MS	30000
/*
 * The queue is counted in bytes, so the first refusal of a 3 KB record
 * may leave room for nearly 3 KB of smaller ones: after it, the chats
 * are short ones, until NEWS_SHORT of them are refused too (the big ones
 * still in flight then are refused as well).  The pull news of each
 * message stored for f, queued before its ACK, fills what room is left:
 * news records are the smallest there are, so then neither the test's
 * message for s nor b's group change fits any more.
 */
#define NEWS_SHORT	16
#define NEWS_STORED	(1 + NEWS_WINDOW + NEWS_SHORT)

static void
news_setup(void)
{
	slow_start(NEWS_CONF);
}

START_TEST(test_news_for_stopped_worker)
{
	struct user s, f, a, b;
	char gname[PROTO_GROUPNAME_MAX + 1], text[NEWS_TEXTLEN + 1];
	long long gid, deadline;
	int sent = 0, acked = 0, stored = 0;
	const char *st;
	unsigned other;
	pid_t pid = 0;
	cJSON *m;

	begin_on(SLOW_INST);
	user_new(&s, "s");	/* on the worker that stops; reads */
	user_new(&f, "f");	/* on the same worker; never reads */
	user_new(&a, "a");	/* on the other worker: the sender */
	user_new(&b, "b");	/* on the other worker: joins meanwhile */
	user_online(&s, SLOW_SLOTS);
	user_online(&f, 1u << s.slot);
	other = SLOW_SLOTS & ~(1u << s.slot);
	user_online(&a, other);
	user_online(&b, other);
	gid = group_of_two_cached(&s, &a, gname, sizeof(gname), "news");
	ck_assert_int_eq(slot_of(s.id, &pid), s.slot);
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(kill(pid, SIGSTOP), 0);

	/* a sends to f until the queue towards the stopped worker refuses
	 * (the ACK says "stored"): see NEWS_SHORT. */
	deadline = harness_now_ms() + NEWS_FILL_MS;
	while (stored < NEWS_STORED || acked < sent) {
		while (stored < NEWS_STORED && sent - acked < NEWS_WINDOW &&
		    sent < NEWS_NMAX) {
			/* Distinct texts: equal frames in a row would share
			 * one record between workers. */
			memset(text, 'n', NEWS_TEXTLEN);
			text[NEWS_TEXTLEN] = '\0';
			(void)snprintf(text, sizeof(text), "news %05d ", sent);
			if (stored == 0)
				text[strlen(text)] = 'n';
			m = one_chat_req(f.id, text);
			cJSON_AddNumberToObject(m, "seq", sent);
			ck_assert_msg(chatc_send(a.c, m) == 0, "send: %s",
			    chatc_error(a.c));
			cJSON_Delete(m);
			sent++;
		}
		ck_assert_msg(harness_now_ms() < deadline, "%d chats sent to "
		    "a stopped worker's user in %d ms, %d ACKed, %d stored",
		    sent, NEWS_FILL_MS, acked, stored);
		m = chatc_recv(a.c, 1000);
		if (m == NULL) {
			ck_assert_msg(strcmp(chatc_error(a.c), "timeout") == 0,
			    "sender: %s", chatc_error(a.c));
			continue;
		}
		ck_assert_msg(jnum(m, "msgid") == MSG_ACK &&
		    chatc_errno(m) == 0, "sender: not an ACK: errno %d %s",
		    chatc_errno(m), chatc_errmsg(m));
		st = jstr(m, "status");
		ck_assert_msg(strcmp(st, "delivered") == 0 ||
		    strcmp(st, "stored") == 0, "ACK status %s", st);
		stored += strcmp(st, "stored") == 0;
		acked++;
		cJSON_Delete(m);
	}

	/* While the queue refuses: a message for s is stored, and b joins
	 * the group the stopped worker has cached as {s, a}. */
	ack_status(a.c, request(a.c, one_chat_req(s.id, "while stopped")),
	    MSG_ONE_CHAT, "stored");
	ack_ok_free(b.c, chatc_add_group(b.c, gid, REQ_MS), MSG_ADD_GROUP);
	ck_assert_int_eq(harness_log_count(&H, SLOW_INST, "takes nothing "
	    "more: keeping what it must be told"), 1);

	ck_assert_int_eq(kill(pid, SIGCONT), 0);
	/* s gets the stored message in this session (f, who never reads,
	 * is dropped as a slow consumer meanwhile: not looked at here). */
	wait_chat(&s, MSG_ONE_CHAT, &a, "toid", s.id, "while stopped", NULL);
	/* And a group message from s reaches the member who joined. */
	ack_status(s.c, request(s.c, group_chat_req(gid, "after")),
	    MSG_GROUP_CHAT, "delivered");
	wait_chat(&b, MSG_GROUP_CHAT, &s, "groupid", gid, "after", NULL);
	wait_chat(&a, MSG_GROUP_CHAT, &s, "groupid", gid, "after", NULL);
}
END_TEST

/* --- a graceful stop with output still queued ---------------------------- */

/*
 * SIGTERM to the master: each worker stops accepting and reading, but
 * goes on writing every connection's queued output for up to half of
 * shutdown_timeout; a connection whose output is all written is closed
 * at once, and on one still holding output when that time is over the
 * chats in it are stored offline for its user (as for a slow consumer)
 * before it is closed.  ACKed "delivered" means chatd took charge of a
 * message: a stop must not lose it.
 *
 * Its own chatd (instance STOP_INST), started by each test itself: the
 * master's exit status can be had only by its parent, the test's
 * process.  Started again after the stop, with the same configuration,
 * for the receiver's next login.  One worker (sender and receiver share
 * it), a max_output far over what is queued (nobody is dropped as a slow
 * consumer), and every offline message in one LOGIN_ACK as far as its
 * budget goes.  The messages, their numbering and the receiver's drain
 * are the slow consumer's (slow_send, slow_num, slow_drain).
 */
#define STOP_INST	1
#define STOP_CONF	"[server]\nworkers = 1\nshutdown_timeout = %d\n" \
			"max_output = 16777216\nmax_frame = 8192\n" \
			"max_message = 4096\noffline_batch = 1000\n"
/*
 * What must still be in chatd's own output buffer at the SIGTERM, over
 * what the kernel holds (the server's send queue, ~4 MB once autotuned
 * whatever the receiver does, and the receiver's buffer).  The kernel
 * delivers its part after any close, so only this part tells a stop
 * that writes or stores the output from one that drops it.
 */
#define STOP_MARGIN	(2 * 1024 * 1024)
#define STOP_SEND_MS	20000	/* the whole sending phase */
#define STOP_EXIT_MS	5000	/* the master's exit, past shutdown_timeout */

struct stop_run {
	int timeout;		/* shutdown_timeout, seconds */
	int read_at_once;	/* the receiver reads from the SIGTERM on */

	struct user r, s;	/* receiver, sender */
	int nsent;		/* messages 0..nsent-1, all ACKed delivered */
	long sendq;		/* server's kernel send queue at the SIGTERM */
	int inq;		/* the receiver's receive queue then */
	long long queued;	/* bytes queued to the receiver, at least */
	int status;		/* the master's wait status */
	long long exit_ms;	/* SIGTERM to the master's exit (seen) */
	long long eof_ms;	/* SIGTERM to the old connection's EOF */
	struct slow_drain d;	/* the receiver's old connection */
	int *before;		/* per message: read on the old connection */
	int *after;		/* got at the next login (LOGIN_ACK, pushed) */
	int nbefore, ninack, npushed;
	int rescued;		/* "N queued message(s) stored offline", -1 */
	int killed;		/* the master killed late workers */
	int unfinished;		/* a worker stopped with jobs unfinished */
};

static void
stop_start(const struct stop_run *sr)
{
	char conf[sizeof(STOP_CONF) + 16];

	(void)snprintf(conf, sizeof(conf), STOP_CONF, sr->timeout);
	ck_assert_msg(harness_start_chatd(&H, STOP_INST, conf) == 0,
	    "chatd-%d did not start (see stderr)", STOP_INST);
}

/*
 * Wait until the master of STOP_INST, SIGTERMed at t0, has exited (at
 * most shutdown_timeout + STOP_EXIT_MS) and return its wait status.
 * waitid with WNOWAIT only looks; the harness reaps it (signal 0 sends
 * nothing) and forgets the instance.
 */
static int
stop_wait_exit(struct stop_run *sr, long long t0)
{
	long long deadline = t0 + sr->timeout * 1000LL + STOP_EXIT_MS;
	pid_t pid = H.chatd[STOP_INST].pid;
	siginfo_t si;

	for (;;) {
		memset(&si, 0, sizeof(si));
		ck_assert_msg(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG |
		    WNOWAIT) == 0, "waitid chatd-%d: %s", STOP_INST,
		    strerror(errno));
		if (si.si_pid == pid)
			break;
		ck_assert_msg(harness_now_ms() < deadline, "chatd-%d (pid "
		    "%ld) still running %lld ms after SIGTERM (shutdown_timeout "
		    "= %d s)", STOP_INST, (long)pid, harness_now_ms() - t0,
		    sr->timeout);
		harness_sleep_ms(POLL_MS);
	}
	sr->exit_ms = harness_now_ms() - t0;
	return harness_signal_chatd(&H, STOP_INST, 0, 1);
}

/*
 * Start STOP_INST; a receiver with a small receive buffer logs in and
 * reads nothing; a sender on the same worker pipelines numbered ~3 KB
 * messages until every one is ACKed "delivered" and, by the kernel's
 * own counts, over STOP_MARGIN bytes of them can only be in chatd's
 * buffer.  SIGTERM the master; the receiver reads its connection to the
 * end, from the SIGTERM on (read_at_once) or once the master is gone.
 * Then start the instance again, log the receiver in and count what
 * comes: in LOGIN_ACK and pushed after it.
 */
static void
stop_run(struct stop_run *sr)
{
	struct user *r = &sr->r, *s = &sr->s;
	struct chatc *c;
	long long t0, deadline, left, seq;
	int i, slot, rc, next = 0, inflight = 0, enough = 0;
	int nkilled, nunfinished;
	char *acked;
	cJSON *m;

	ck_assert_msg(harness_ok, "the servers did not start (see stderr)");
	sr->before = calloc(SLOW_NMAX, sizeof(int));
	sr->after = calloc(SLOW_NMAX, sizeof(int));
	acked = calloc(SLOW_NMAX, 1);
	ck_assert(sr->before != NULL && sr->after != NULL && acked != NULL);
	stop_start(sr);
	begin_on(STOP_INST);
	user_new(r, "stoprecv");
	user_new(s, "stopsend");
	c = conn_on(1u, &slot);
	rc = SLOW_RCVBUF;
	ck_assert_int_eq(setsockopt(chatc_fd(c), SOL_SOCKET, SO_RCVBUF, &rc,
	    sizeof(rc)), 0);
	cJSON_Delete(user_login_conn(r, c, slot));
	user_online(s, 1u);

	/* Send, a window in flight, until enough stays in chatd. */
	deadline = harness_now_ms() + STOP_SEND_MS;
	while ((!enough && next < SLOW_NMAX) || inflight > 0) {
		while (!enough && next < SLOW_NMAX && inflight < SLOW_WINDOW) {
			slow_send(s, r->id, next++);
			inflight++;
		}
		left = deadline - harness_now_ms();
		ck_assert_msg(left > 0, "after %d ms, %d sent, %d ACKed",
		    STOP_SEND_MS, next, sr->nsent);
		m = chatc_recv(s->c, (int)left);
		ck_assert_msg(m != NULL, "sender: %s after %d sent",
		    chatc_error(s->c), next);
		if (jnum(m, "msgid") != MSG_ACK &&
		    jnum(m, "msgid") != MSG_ERROR) {
			cJSON_Delete(m);
			continue;
		}
		seq = jnum(m, "seq") - SLOW_SEQ0;
		ck_assert_msg(seq >= 0 && seq < next && !acked[seq],
		    "reply with unexpected seq %lld", seq + SLOW_SEQ0);
		ck_assert_msg(jnum(m, "msgid") == MSG_ACK, "message %lld "
		    "refused: errno %d %s", seq, chatc_errno(m),
		    chatc_errmsg(m));
		ck_assert_msg(strcmp(jstr(m, "status"), "delivered") == 0,
		    "message %lld ACKed %s, not delivered (dropped as a slow "
		    "consumer?)", seq, jstr(m, "status"));
		cJSON_Delete(m);
		acked[seq] = 1;
		sr->nsent++;
		inflight--;
		if (enough || sr->nsent % SLOW_WINDOW != 0)
			continue;
		sr->sendq = server_sendq(chatc_fd(r->c),
		    H.chatd[STOP_INST].port);
		ck_assert_msg(sr->sendq >= 0, "the receiver's connection is "
		    "not in /proc/net/tcp");
		ck_assert_int_eq(ioctl(chatc_fd(r->c), FIONREAD, &sr->inq), 0);
		enough = (long long)sr->nsent * SLOW_TEXTLEN >
		    sr->sendq + sr->inq + STOP_MARGIN;
	}
	ck_assert_msg(enough, "%d messages of %d bytes ACKed, yet the kernel "
	    "holds %ld + %d bytes of them: less than %d in chatd's buffer "
	    "(tcp_wmem's maximum over 4 MB?)", sr->nsent, SLOW_TEXTLEN,
	    sr->sendq, sr->inq, STOP_MARGIN);
	free(acked);

	/* The kernel's part again, for the report: chatd has had a loop
	 * turn to write what the last ACKed messages queued. */
	harness_sleep_ms(POLL_MS);
	sr->sendq = server_sendq(chatc_fd(r->c), H.chatd[STOP_INST].port);
	ck_assert_int_eq(ioctl(chatc_fd(r->c), FIONREAD, &sr->inq), 0);
	sr->queued = (long long)sr->nsent * SLOW_TEXTLEN;
	nkilled = harness_log_count(&H, STOP_INST, "did not stop in time");
	nunfinished = harness_log_count(&H, STOP_INST, "job(s) unfinished");

	t0 = harness_now_ms();
	ck_assert_int_eq(harness_signal_chatd(&H, STOP_INST, SIGTERM, 0), 0);
	/* A request the stopping worker does not read: closing with it
	 * unread would reset the connection, and the receiver's kernel
	 * would drop what it holds of the output. */
	ck_assert_int_eq(chatc_send_raw(r->c, "{\"msgid\":18}\n", 13), 0);
	if (sr->read_at_once) {
		slow_drain(r->c, s, r->id, sr->before, &sr->d);
		sr->eof_ms = harness_now_ms() - t0;
		sr->status = stop_wait_exit(sr, t0);
	} else {
		sr->status = stop_wait_exit(sr, t0);
		slow_drain(r->c, s, r->id, sr->before, &sr->d);
		sr->eof_ms = harness_now_ms() - t0;
	}
	sr->killed = harness_log_count(&H, STOP_INST,
	    "did not stop in time") > nkilled;
	sr->unfinished = harness_log_count(&H, STOP_INST,
	    "job(s) unfinished") > nunfinished;
	sr->rescued = slow_rescued(STOP_INST, r->id);
	harness_close(r->c);
	r->c = NULL;
	harness_close(s->c);
	s->c = NULL;
	for (i = sr->nbefore = 0; i < sr->nsent; i++)
		sr->nbefore += sr->before[i];

	/* Again, for the receiver's next login. */
	stop_start(sr);
	slow_relogin(r, s, sr->after, &sr->ninack, &sr->npushed);
}

/*
 * What a stop_run saw, on stderr, when bad or IT_CHAT_VERBOSE is set;
 * then the runs of messages not seen exactly once in all.
 */
static void
stop_report(const struct stop_run *sr, const char *what, int bad)
{
	int i, j;

	if (!bad && getenv("IT_CHAT_VERBOSE") == NULL)
		return;
	fprintf(stderr, "it_chat: %s: %d sent (%d bytes each), all ACKed "
	    "delivered; at the SIGTERM %ld bytes in the server's kernel send "
	    "queue and %d in the receiver's, of at least %lld queued; master "
	    "exited (status %#x) after %lld ms; old connection: %d messages "
	    "read, then a partial line of %zu bytes (#%d) and %s after %lld "
	    "ms; log: %d rescued%s%s; next login: %d in LOGIN_ACK, %d pushed",
	    what, sr->nsent, SLOW_TEXTLEN, sr->sendq, sr->inq, sr->queued,
	    (unsigned)sr->status, sr->exit_ms, sr->nbefore, sr->d.partial,
	    sr->d.partial_num, sr->d.reset ? "a reset" : "EOF", sr->eof_ms,
	    sr->rescued, sr->killed ? ", workers killed late" : "",
	    sr->unfinished ? ", jobs unfinished" : "", sr->ninack,
	    sr->npushed);
	for (i = 0; i < sr->nsent; i = j) {
		for (j = i + 1; j < sr->nsent &&
		    sr->before[j] == sr->before[i] &&
		    sr->after[j] == sr->after[i]; j++)
			;
		if (sr->before[i] + sr->after[i] == 1)
			continue;
		fprintf(stderr, " #%d", i);
		if (j - 1 > i)
			fprintf(stderr, "-#%d", j - 1);
		fprintf(stderr, "(read %d, later %d)", sr->before[i],
		    sr->after[i]);
	}
	fputc('\n', stderr);
}

static void
stop_end(struct stop_run *sr)
{
	int status;

	harness_close(sr->r.c);
	sr->r.c = NULL;
	status = harness_signal_chatd(&H, STOP_INST, SIGTERM, 1);
	ck_assert_msg(status != -1 && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0, "chatd-%d at the end: wait status %#x",
	    STOP_INST, (unsigned)status);
	free(sr->before);
	free(sr->after);
}

/* What both stop tests demand of the stop itself: the master exited 0,
 * the worker ended within shutdown_timeout, and the receiver's
 * connection was closed, not reset. */
static void
stop_assert_clean(const struct stop_run *sr)
{
	ck_assert_msg(WIFEXITED(sr->status) && WEXITSTATUS(sr->status) == 0,
	    "chatd-%d after SIGTERM: wait status %#x", STOP_INST,
	    (unsigned)sr->status);
	ck_assert_msg(!sr->killed && !sr->unfinished, "the worker did not "
	    "end its stop within shutdown_timeout (%d s; see the log of "
	    "chatd-%d)", sr->timeout, STOP_INST);
	ck_assert_msg(!sr->d.reset, "the receiver's connection was reset at "
	    "the stop, not closed");
}

/*
 * The receiver reads nothing until the master is gone: what was queued
 * for it must all reach it, read before its connection's EOF (the
 * kernel's part), or stored at the stop and given at its next login.
 * Only the line the close cut may come twice; the connection must end
 * in EOF, not a reset, and chatd say what it stored.  Half of
 * shutdown_timeout is spent writing to a reader that takes nothing; the
 * other half must hold the storing of some 770 chats (~150 ms here) and
 * the exit, with room for a sanitizer build: 4 s, not less.
 */
START_TEST(test_stop_rescues_unread)
{
	struct stop_run sr = { .timeout = 4, .read_at_once = 0 };
	int i, lost = 0, ndup = 0, maxseen = 0, n;

	stop_run(&sr);
	for (i = 0; i < sr.nsent; i++) {
		n = sr.before[i] + sr.after[i];
		lost += n == 0;
		ndup += n > 1 ? n - 1 : 0;
		if (n > maxseen)
			maxseen = n;
	}
	stop_report(&sr, "stop, receiver not reading", lost > 0 ||
	    ndup > 1 || maxseen > 2 || sr.d.reset || sr.rescued <= 0 ||
	    sr.status != 0 || sr.killed || sr.unfinished);
	stop_assert_clean(&sr);
	ck_assert_msg(lost == 0, "%d of %d messages lost at the stop (all "
	    "ACKed delivered; %d read before the EOF, %d at the next login; "
	    "see stderr)", lost, sr.nsent, sr.nbefore, sr.ninack +
	    sr.npushed);
	ck_assert_msg(maxseen <= 2 && ndup <= 1, "%d duplicate(s), a "
	    "message %d times (see stderr)", ndup, maxseen);
	ck_assert_msg(sr.rescued > 0, "chatd logged no \"queued message(s) "
	    "stored offline\" for user %lld at the stop", sr.r.id);
	stop_end(&sr);
}
END_TEST

/*
 * The receiver reads from the SIGTERM on: everything queued for it
 * must arrive on its connection, once each and before its EOF, and
 * nothing be stored offline for it.  Half of shutdown_timeout is far
 * more than the flush needs: a reader with this receive buffer takes
 * the ~6 MB on loopback in well under a second (35 to 220 ms here).
 */
START_TEST(test_stop_flushes_output)
{
	struct stop_run sr = { .timeout = 10, .read_at_once = 1 };
	int i, lost = 0, ntwice = 0, nlater;

	stop_run(&sr);
	for (i = 0; i < sr.nsent; i++) {
		lost += sr.before[i] == 0;
		ntwice += sr.before[i] > 1;
	}
	nlater = sr.ninack + sr.npushed;
	stop_report(&sr, "stop, receiver reading", lost > 0 || ntwice > 0 ||
	    nlater > 0 || sr.rescued >= 0 || sr.d.partial > 0 ||
	    sr.d.reset || sr.status != 0 || sr.killed || sr.unfinished);
	stop_assert_clean(&sr);
	ck_assert_msg(lost == 0, "%d of %d messages lost at the stop: not "
	    "read before the EOF though the receiver was reading (%d at the "
	    "next login; see stderr)", lost, sr.nsent, nlater);
	ck_assert_msg(ntwice == 0, "%d message(s) read twice (see stderr)",
	    ntwice);
	ck_assert_msg(sr.d.partial == 0, "the connection ended within a "
	    "line (%zu bytes of message #%d)", sr.d.partial,
	    sr.d.partial_num);
	ck_assert_msg(nlater == 0 && sr.rescued < 0, "chatd stored %d "
	    "message(s) offline for a receiver that was reading (log: %d); "
	    "%d came at its next login", sr.rescued, sr.rescued, nlater);
	stop_end(&sr);
}
END_TEST

/* --- cross-worker order and backpressure -------------------------------- */

/*
 * Its own chatd (instance BP_INST), started by the fixture of its own
 * TCase: two workers and the smallest max_output, which is also the cap
 * of each worker's user-space queue towards the other one, so a burst
 * of chats from one worker's clients to the other's quickly fills it.
 * chatd then stops reading clients (and completing jobs) until the other
 * worker has caught up; the tests check that nothing falls back to
 * another path meanwhile (Redis, the offline store), which would show as
 * a message out of order, an ACK "stored", or the counters and log lines
 * of those paths.
 *
 * Clients are driven by one poll loop (bp_run) that writes each sender's
 * pipelined burst and reads every connection concurrently.  Everything
 * one client is sent in a run stays below max_output (bp_run checks),
 * so none can be dropped as a slow consumer, however late chatd writes
 * its output: the volume between the workers comes from fan-out.
 */
#define BP_INST		3
#define BP_WORKERS	2
#define BP_MAX_OUTPUT	65536
#define BP_CONF		"[server]\nworkers = 2\nmax_output = 65536\n" \
			"max_frame = 8192\nmax_message = 4096\n" \
			"job_threads = 4\n"
#define BP_SENDERS_MAX	8	/* senders in one bp_run */
#define BP_SEQ0		70000
#define BP_RUN_MS	20000	/* one bp_run, sending to the last frame */
#define BP_QUIET_MS	300	/* reading on after everything arrived */
#define BP_READS	8	/* reads of one connection per poll round */

static int bp_ok;		/* instance BP_INST is running */

static void
bp_setup(void)
{
	setup();
	bp_ok = harness_ok && harness_start_chatd(&H, BP_INST, BP_CONF) == 0;
	if (harness_ok && !bp_ok)
		fprintf(stderr, "it_chat: starting chatd-%d failed (see "
		    "above)\n", BP_INST);
}

static void
bp_teardown(void)
{
	int status;

	if (H.chatd[BP_INST].pid <= 0)
		return;
	status = harness_signal_chatd(&H, BP_INST, SIGTERM, 1);
	if (status != 0)
		fprintf(stderr, "it_chat: chatd-%d did not exit cleanly on "
		    "SIGTERM (status %#x)\n", BP_INST, status);
}

/* Counter k summed over the workers of BP_INST, read from the control
 * socket as chatctl stats does. */
static long long
bp_stat(const char *k)
{
	char err[256];
	long long sum;
	int nw;

	ck_assert_msg(harness_stats_sum(&H, BP_INST, k, &sum, &nw, err,
	    sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(nw, BP_WORKERS);
	return sum;
}

/* The size of BP_INST's log now (where bp_log_since starts). */
static long
bp_log_size(void)
{
	struct stat st;

	ck_assert_msg(stat(H.chatd[BP_INST].log_path, &st) == 0, "stat %s: "
	    "%s", H.chatd[BP_INST].log_path, strerror(errno));
	return (long)st.st_size;
}

/* The first line holding needle that the log got past offset off, or
 * NULL (caller frees). */
static char *
bp_log_since(long off, const char *needle)
{
	char line[1024], *found = NULL;
	FILE *fp;

	fp = fopen(H.chatd[BP_INST].log_path, "r");
	ck_assert_msg(fp != NULL, "open %s: %s", H.chatd[BP_INST].log_path,
	    strerror(errno));
	ck_assert(fseek(fp, off, SEEK_SET) == 0);
	while (found == NULL && fgets(line, sizeof(line), fp) != NULL)
		if (strstr(line, needle) != NULL)
			found = strdup(line);
	(void)fclose(fp);
	return found;
}

/* The counters a fallback from the worker-to-worker path would move. */
struct bp_counters {
	long long stored, host, slow, refused;
	long log_off;
};

/* Where the log stood at the last bp_counters_get, for hints. */
static long bp_hint_off;

static void
bp_counters_get(struct bp_counters *k)
{
	k->stored = bp_stat("offline_stored");
	k->host = bp_stat("deliver_host");
	k->slow = bp_stat("slow_consumers");
	k->refused = bp_stat("limit_refusals");
	k->log_off = bp_log_size();
	bp_hint_off = k->log_off;
}

/*
 * Assert that since k0 nothing was stored offline, went through Redis
 * (every recipient was on this host), was dropped as a slow consumer,
 * and that no queue towards a worker overflowed.
 */
static void
bp_no_fallback(const struct bp_counters *k0, const char *what)
{
	struct bp_counters k;
	char *line;

	bp_counters_get(&k);
	line = bp_log_since(k0->log_off, "inbox queue to worker");
	ck_assert_msg(line == NULL, "%s: a queue between workers overflowed: "
	    "%s", what, line);
	line = bp_log_since(k0->log_off, "disconnecting the slow consumer");
	ck_assert_msg(line == NULL, "%s: the test's own client was dropped "
	    "(the test reads too slowly?): %s", what, line);
	ck_assert_msg(k.stored == k0->stored, "%s: %lld message(s) stored "
	    "offline (offline_stored) with every recipient online", what,
	    k.stored - k0->stored);
	ck_assert_msg(k.host == k0->host, "%s: %lld message(s) went through "
	    "Redis (deliver_host) to users of this host", what,
	    k.host - k0->host);
	ck_assert_msg(k.slow == k0->slow, "%s: %lld slow consumer(s) dropped",
	    what, k.slow - k0->slow);
	ck_assert_msg(k.refused == k0->refused, "%s: %lld request(s) refused "
	    "by a limit", what, k.refused - k0->refused);
}

/* One client in a bp_run. */
struct bp_peer {
	struct user *u;
	int sender;		/* index among the run's senders, or -1 */
	int receives;		/* gets every other sender's messages */
	/* State of the run. */
	char *out;		/* the sender's whole pipelined burst */
	size_t outlen, outoff;
	size_t outheld;		/* < outlen: what follows waits (hold) */
	struct chatc_reader rd;
	int next[BP_SENDERS_MAX];	/* per sender: next number expected */
	int nacks;
	unsigned char *acked;	/* per own message */
	size_t rbytes;		/* received */
};

struct bp_run_spec {
	int msgid;		/* MSG_ONE_CHAT or MSG_GROUP_CHAT */
	long long gid;		/* the group (GROUP_CHAT) */
	long long toid;		/* the recipient (ONE_CHAT) */
	int nmsg;		/* per sender */
	int hold;		/* > 0: a sender writes messages from this
				 * one on only once its first has reached
				 * someone (the fan-out has begun) */
	size_t textlen;		/* bytes of each message */
	int over_cap;		/* a receiver gets more than max_output */
	const char *what;	/* for messages */
};

/* Message n of sender s: "bp S N " then letters depending on both, so a
 * frame spliced from two messages shows. */
static void
bp_text(char *buf, size_t textlen, int s, int n)
{
	size_t i;
	int k;

	k = snprintf(buf, textlen + 1, "bp %d %d ", s, n);
	ck_assert(k > 0 && (size_t)k < textlen);
	for (i = (size_t)k; i < textlen; i++)
		buf[i] = (char)('a' + (int)((i + (size_t)s * 7 +
		    (size_t)n) % 26));
	buf[textlen] = '\0';
}

/* The sender's nmsg requests, each with seq BP_SEQ0 + n, in one buffer. */
static void
bp_burst(struct bp_peer *p, const struct bp_run_spec *sp)
{
	char *text, head[128];
	size_t cap, len = 0;
	int n, k;

	text = malloc(sp->textlen + 1);
	cap = (size_t)sp->nmsg * (sp->textlen + sizeof(head));
	p->out = malloc(cap);
	ck_assert(text != NULL && p->out != NULL);
	p->outheld = cap;
	for (n = 0; n < sp->nmsg; n++) {
		if (n == sp->hold && n > 0)
			p->outheld = len;
		bp_text(text, sp->textlen, p->sender, n);
		k = snprintf(head, sizeof(head), "{\"msgid\":%d,\"%s\":%lld,"
		    "\"seq\":%d,\"msg\":\"", sp->msgid,
		    sp->msgid == MSG_ONE_CHAT ? "toid" : "groupid",
		    sp->msgid == MSG_ONE_CHAT ? sp->toid : sp->gid,
		    BP_SEQ0 + n);
		ck_assert(k > 0 && (size_t)k < sizeof(head));
		memcpy(p->out + len, head, (size_t)k);
		len += (size_t)k;
		memcpy(p->out + len, text, sp->textlen);
		len += sp->textlen;
		memcpy(p->out + len, "\"}\n", 3);
		len += 3;
		ck_assert(len <= cap);
	}
	p->outlen = len;
	p->outoff = 0;
	if (p->outheld > len)
		p->outheld = len;
	free(text);
}

/* One line that reached peer p. */
static void
bp_frame(struct bp_peer *p, struct bp_peer **senders, int nsenders,
    const struct bp_run_spec *sp, const char *line, size_t len)
{
	char *want, *s;
	const cJSON *t;
	cJSON *m;
	long long seq;
	int msgid, from, n;

	m = cJSON_ParseWithLength(line, len);
	ck_assert_msg(cJSON_IsObject(m), "%s: user %s: not a JSON line: %.*s",
	    sp->what, p->u->name, (int)(len > 200 ? 200 : len), line);
	msgid = (int)jnum(m, "msgid");
	if (msgid == MSG_ACK || msgid == MSG_ERROR) {
		s = cJSON_PrintUnformatted(m);
		ck_assert_msg(p->sender >= 0, "%s: user %s, not a sender, got "
		    "%s", sp->what, p->u->name, s);
		seq = jnum(m, "seq") - BP_SEQ0;
		ck_assert_msg(msgid == MSG_ACK && chatc_errno(m) == 0 &&
		    jnum(m, "refmsgid") == sp->msgid, "%s: sender %s: %s",
		    sp->what, p->u->name, s);
		ck_assert_msg(seq >= 0 && seq < sp->nmsg && !p->acked[seq],
		    "%s: sender %s: unexpected or repeated ACK %s", sp->what,
		    p->u->name, s);
		ck_assert_msg(strcmp(jstr(m, "status"), "delivered") == 0,
		    "%s: sender %s: message %lld not delivered live: %s",
		    sp->what, p->u->name, seq, s);
		p->acked[seq] = 1;
		p->nacks++;
		free(s);
		cJSON_Delete(m);
		return;
	}
	if (msgid != sp->msgid) {
		/* Nothing else is expected either (no friends, so no
		 * PRESENCE): say what came. */
		s = cJSON_PrintUnformatted(m);
		ck_abort_msg("%s: user %s: unexpected frame %s", sp->what,
		    p->u->name, s);
	}
	t = cJSON_GetObjectItemCaseSensitive(m, "msg");
	ck_assert_msg(cJSON_IsString(t) && sscanf(t->valuestring, "bp %d %d",
	    &from, &n) == 2 && from >= 0 && from < nsenders && n >= 0 &&
	    n < sp->nmsg, "%s: user %s: unexpected chat %.*s", sp->what,
	    p->u->name, (int)(len > 200 ? 200 : len), line);
	ck_assert_msg(senders[from] != p, "%s: user %s got its own message "
	    "%d back", sp->what, p->u->name, n);
	ck_assert_msg(p->receives, "%s: user %s, who must get nothing, got "
	    "message %d of %s", sp->what, p->u->name, n,
	    senders[from]->u->name);
	if (n != p->next[from]) {
		/* Say why, when chatd did: a fallback path overtook. */
		s = bp_log_since(bp_hint_off, "inbox queue to worker");
		ck_abort_msg("%s: user %s (worker %d) got message %d of %s "
		    "(worker %d) when %d was next: %s%s%s", sp->what,
		    p->u->name, p->u->slot, n, senders[from]->u->name,
		    senders[from]->u->slot, p->next[from], n < p->next[from] ?
		    "a duplicate or out of order" : "one or more skipped "
		    "(lost, or out of order)", s != NULL ? "; chatd logged: " :
		    "", s != NULL ? s : "");
	}
	want = malloc(sp->textlen + 1);
	ck_assert(want != NULL);
	bp_text(want, sp->textlen, from, n);
	if (sp->msgid == MSG_ONE_CHAT)
		check_chat(m, MSG_ONE_CHAT, senders[from]->u, "toid",
		    p->u->id, want, NULL);
	else
		check_chat(m, MSG_GROUP_CHAT, senders[from]->u, "groupid",
		    sp->gid, want, NULL);
	free(want);
	p->next[from]++;
	cJSON_Delete(m);
}

/* Everything p is waiting for has come. */
static int
bp_peer_done(const struct bp_peer *p, struct bp_peer **senders,
    int nsenders, const struct bp_run_spec *sp)
{
	int s;

	if (p->outoff < p->outlen)
		return 0;
	if (p->sender >= 0 && p->nacks < sp->nmsg)
		return 0;
	for (s = 0; s < nsenders; s++)
		if (p->receives && senders[s] != p && p->next[s] < sp->nmsg)
			return 0;
	return 1;
}

/* Read what p's socket has (a bounded number of reads); 0 at EOF. */
static int
bp_read(struct bp_peer *p, struct bp_peer **senders, int nsenders,
    const struct bp_run_spec *sp)
{
	char buf[65536];
	const char *line;
	size_t len;
	ssize_t n;
	int i;

	for (i = 0; i < BP_READS; i++) {
		n = recv(chatc_fd(p->u->c), buf, sizeof(buf), MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 1;
		ck_assert_msg(n >= 0, "%s: user %s: recv: %s", sp->what,
		    p->u->name, strerror(errno));
		if (n == 0)
			return 0;
		ck_assert(chatc_reader_feed(&p->rd, buf, (size_t)n) == 0);
		p->rbytes += (size_t)n;
		while (chatc_reader_next(&p->rd, &line, &len))
			bp_frame(p, senders, nsenders, sp, line, len);
	}
	return 1;
}

/* Progress of every peer that is not done, for a failure message. */
static void
bp_progress(struct bp_peer *peers, int npeers, struct bp_peer **senders,
    int nsenders, const struct bp_run_spec *sp, char *buf, size_t len)
{
	size_t off = 0;
	int i, s, k;

	buf[0] = '\0';
	for (i = 0; i < npeers && off + 64 < len; i++) {
		if (bp_peer_done(&peers[i], senders, nsenders, sp))
			continue;
		k = snprintf(buf + off, len - off, " [%s w%d: sent %zu/%zu, "
		    "%d ACKs, got", peers[i].u->name, peers[i].u->slot,
		    peers[i].outoff, peers[i].outlen, peers[i].nacks);
		off += k > 0 ? (size_t)k : 0;
		for (s = 0; s < nsenders && off < len; s++) {
			k = snprintf(buf + off, len - off, " %d",
			    peers[i].next[s]);
			off += k > 0 ? (size_t)k : 0;
		}
		if (off < len) {
			k = snprintf(buf + off, len - off, "]");
			off += k > 0 ? (size_t)k : 0;
		}
	}
}

/*
 * Every sender among peers writes its sp->nmsg chats at once (one
 * pipelined burst, written as fast as the socket takes it) while every
 * peer reads.  Each receiving peer must get every other sender's
 * messages exactly once and in the order sent, intact; each sender an
 * ACK "delivered" for each of its own; peers that do not receive get no
 * chat at all, also in the BP_QUIET_MS after the rest is done.
 */
static void
bp_run(struct bp_peer *peers, int npeers, const struct bp_run_spec *sp)
{
	struct bp_peer *senders[BP_SENDERS_MAX];
	struct pollfd *pfd;
	long long t0 = harness_now_ms(), done_at = -1, now;
	char progress[2048];
	int i, nsenders = 0, alldone, rc;

	pfd = calloc((size_t)npeers, sizeof(*pfd));
	ck_assert(pfd != NULL);
	for (i = 0; i < npeers; i++) {
		struct bp_peer *p = &peers[i];

		ck_assert_msg(p->u->c != NULL && !chatc_pending(p->u->c),
		    "%s: user %s is offline or has unread messages", sp->what,
		    p->u->name);
		memset(p->next, 0, sizeof(p->next));
		p->nacks = 0;
		p->rbytes = 0;
		p->out = NULL;
		p->outlen = p->outoff = 0;
		p->acked = NULL;
		chatc_reader_init(&p->rd, 1 << 20);
		if (p->sender < 0)
			continue;
		ck_assert(nsenders < BP_SENDERS_MAX);
		p->sender = nsenders;
		senders[nsenders++] = p;
		p->acked = calloc((size_t)sp->nmsg, 1);
		ck_assert(p->acked != NULL);
		bp_burst(p, sp);
	}

	for (;;) {
		now = harness_now_ms();
		for (i = 0, alldone = 1; i < npeers; i++)
			alldone &= bp_peer_done(&peers[i], senders, nsenders,
			    sp);
		if (alldone && done_at < 0)
			done_at = now;
		if (done_at >= 0 && now - done_at >= BP_QUIET_MS)
			break;
		if (now - t0 >= BP_RUN_MS) {
			bp_progress(peers, npeers, senders, nsenders, sp,
			    progress, sizeof(progress));
			ck_abort_msg("%s: not everything arrived within %d ms:"
			    "%s", sp->what, BP_RUN_MS, progress);
		}
		for (i = 0; i < npeers; i++) {
			struct bp_peer *p = &peers[i];
			int j;

			/* A held burst goes on once someone got its first. */
			for (j = 0; p->sender >= 0 && p->outheld < p->outlen &&
			    j < npeers; j++)
				if (peers[j].next[p->sender] > 0)
					p->outheld = p->outlen;
			pfd[i].fd = chatc_fd(p->u->c);
			pfd[i].events = POLLIN;
			if (p->outoff < p->outheld)
				pfd[i].events |= POLLOUT;
			pfd[i].revents = 0;
		}
		rc = poll(pfd, (nfds_t)npeers, 50);
		ck_assert_msg(rc >= 0 || errno == EINTR, "poll: %s",
		    strerror(errno));
		for (i = 0; i < npeers && rc > 0; i++) {
			struct bp_peer *p = &peers[i];
			ssize_t n;

			if ((pfd[i].revents & POLLOUT) &&
			    p->outoff < p->outheld) {
				n = send(pfd[i].fd, p->out + p->outoff,
				    p->outheld - p->outoff,
				    MSG_DONTWAIT | MSG_NOSIGNAL);
				ck_assert_msg(n >= 0 || errno == EAGAIN ||
				    errno == EINTR, "%s: sender %s: send: %s",
				    sp->what, p->u->name, strerror(errno));
				if (n > 0)
					p->outoff += (size_t)n;
			}
			if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
				ck_assert_msg(bp_read(p, senders, nsenders,
				    sp), "%s: user %s (worker %d): connection "
				    "closed by chatd", sp->what, p->u->name,
				    p->u->slot);
		}
	}
	if (getenv("IT_CHAT_VERBOSE") != NULL)
		fprintf(stderr, "it_chat: %s: %d sender(s) x %d message(s) of "
		    "%zu bytes to %d peer(s) in %lld ms\n", sp->what, nsenders,
		    sp->nmsg, sp->textlen, npeers, done_at - t0);
	for (i = 0; i < npeers; i++) {
		ck_assert_msg(peers[i].rd.len == peers[i].rd.off, "%s: user "
		    "%s: a partial line at the end", sp->what,
		    peers[i].u->name);
		/* The sizes keep what one client gets below max_output, so
		 * no client can be a slow consumer whenever chatd writes;
		 * over_cap runs are meant to pass it. */
		if (!sp->over_cap)
			ck_assert_msg(peers[i].rbytes < BP_MAX_OUTPUT, "%s: "
			    "user %s got %zu bytes, max_output is %d: make "
			    "the test smaller", sp->what, peers[i].u->name,
			    peers[i].rbytes, BP_MAX_OUTPUT);
		else if (peers[i].receives)
			ck_assert_msg(peers[i].rbytes > 2 * BP_MAX_OUTPUT,
			    "%s: user %s got only %zu bytes", sp->what,
			    peers[i].u->name, peers[i].rbytes);
		chatc_reader_free(&peers[i].rd);
		free(peers[i].out);
		free(peers[i].acked);
		peers[i].out = NULL;
		peers[i].acked = NULL;
	}
	free(pfd);
}

static void
bp_begin(void)
{
	ck_assert_msg(bp_ok, "chatd-%d did not start (see stderr)", BP_INST);
	begin_on(BP_INST);
}

/* A sender on worker wa pipelines sp's ONE_CHATs to a recipient on
 * worker wb, who reads all the time; nothing takes another path. */
static void
bp_pair(struct bp_run_spec *sp, int wa, int wb)
{
	struct user a, b;
	struct bp_peer peers[2];
	struct bp_counters k0;

	bp_begin();
	user_new(&a, "a");
	user_new(&b, "b");
	user_online(&a, 1u << wa);
	user_online(&b, 1u << wb);
	sp->msgid = MSG_ONE_CHAT;
	sp->toid = b.id;
	memset(peers, 0, sizeof(peers));
	peers[0].u = &a;
	peers[0].sender = 0;
	peers[0].receives = 0;
	peers[1].u = &b;
	peers[1].sender = -1;
	peers[1].receives = 1;
	bp_counters_get(&k0);
	bp_run(peers, 2, sp);
	bp_no_fallback(&k0, sp->what);
}

/*
 * A sender on worker 0 pipelines BP_A_NMSG short chats to a recipient on
 * worker 1 in one burst: every one arrives once, in order, and is ACKed
 * "delivered".  (All of them together stay below max_output, so the
 * recipient cannot be a slow consumer however chatd schedules its
 * writes.)
 */
#define BP_A_NMSG	400
#define BP_A_TEXTLEN	12
START_TEST(test_cross_worker_order_pipelined)
{
	struct bp_run_spec sp = {
		.nmsg = BP_A_NMSG, .textlen = BP_A_TEXTLEN,
		.what = "pipelined ONE_CHAT across workers",
	};

	bp_pair(&sp, 0, 1);
}
END_TEST

/*
 * A sender pipelines BP_D_NMSG chats, over twice max_output in all, in
 * one write to a recipient on the same worker, who reads all the time.
 * chatd reads up to four buffers of the sender's input in one loop turn,
 * so more than max_output is queued for the recipient before the end of
 * the turn writes it: that is a burst, not a slow reader.  Every message
 * arrives live and in order, and nobody is dropped as a slow consumer.
 */
#define BP_D_NMSG	200
#define BP_D_TEXTLEN	700
START_TEST(test_burst_over_max_output_prompt_reader)
{
	struct bp_run_spec sp = {
		.nmsg = BP_D_NMSG, .textlen = BP_D_TEXTLEN, .over_cap = 1,
		.what = "burst over max_output to a prompt reader",
	};

	bp_pair(&sp, 0, 0);
}
END_TEST

/*
 * A group of BP_B_MEMBERS, half on each worker; BP_B_SENDERS of them
 * (half on each worker) pipeline BP_B_NMSG chats each, all at once.
 * What one member receives stays below max_output, but the fan-out
 * sends some 1.5 MB from each worker to the other, over twenty times
 * the queue cap (and more than the datagram socket holds).  Every
 * member gets every other sender's messages live, once, in each
 * sender's order; every ACK says "delivered"; nothing is stored offline
 * or takes another path.
 */
#define BP_B_MEMBERS	100
#define BP_B_SENDERS	6
#define BP_B_NMSG	25
#define BP_B_TEXTLEN	250
START_TEST(test_group_fanout_burst_no_fallback)
{
	struct user u[BP_B_MEMBERS];
	struct bp_peer peers[BP_B_MEMBERS];
	char gname[PROTO_GROUPNAME_MAX + 1];
	struct bp_run_spec sp = {
		.msgid = MSG_GROUP_CHAT, .nmsg = BP_B_NMSG,
		.textlen = BP_B_TEXTLEN,
		.what = "group fan-out burst",
	};
	struct bp_counters k0;
	int i;

	bp_begin();
	memset(peers, 0, sizeof(peers));
	for (i = 0; i < BP_B_MEMBERS; i++) {
		user_new(&u[i], "f");
		user_online(&u[i], 1u << (i % BP_WORKERS));
		peers[i].u = &u[i];
		peers[i].sender = i < BP_B_SENDERS ? 0 : -1;
		peers[i].receives = 1;
	}
	sp.gid = create_group(&u[0], gname, sizeof(gname), "burst");
	for (i = 1; i < BP_B_MEMBERS; i++)
		ack_ok_free(u[i].c, chatc_add_group(u[i].c, sp.gid, REQ_MS),
		    MSG_ADD_GROUP);
	bp_counters_get(&k0);
	bp_run(peers, BP_B_MEMBERS, &sp);
	bp_no_fallback(&k0, sp.what);
}
END_TEST

/*
 * Right after the sender's worker dropped the group from its cache (a
 * join handled by the other worker, then a quit handled by the sender's
 * own), one sender pipelines BP_C_NMSG chats: they all wait for one
 * load of the members and must reach every member, on both workers, in
 * order and once; the one who joined gets them, the one who quit does
 * not.  The fan-out to the other worker (BP_C_NMSG x 1 KB x BP_C_REMOTE
 * members) is far over the queue cap, so it pauses for it midway.
 * After the quit, the last two thirds of the burst are written only
 * once the fan-out of the first third has begun: they come while the
 * messages that waited for the load may still be going out, and must
 * not overtake them (by finding the group already cached, say).
 */
#define BP_C_LOCAL	4	/* members on the sender's worker, besides
				 * the sender and the quitter */
#define BP_C_REMOTE	40	/* on the other worker, the joiner too */
#define BP_C_NMSG	60
#define BP_C_TEXTLEN	850
START_TEST(test_group_cold_cache_order)
{
	enum { NPEER = 2 + BP_C_LOCAL + BP_C_REMOTE };
	struct user u[NPEER], *s = &u[0], *joiner = &u[1], *quitter = &u[2];
	struct bp_peer peers[NPEER];
	char gname[PROTO_GROUPNAME_MAX + 1];
	struct bp_run_spec sp = {
		.msgid = MSG_GROUP_CHAT, .textlen = BP_C_TEXTLEN,
	};
	struct bp_counters k0;
	int i;

	bp_begin();
	memset(peers, 0, sizeof(peers));
	user_new(s, "s");
	user_online(s, 1u << 0);
	user_new(joiner, "j");
	user_online(joiner, 1u << 1);
	user_new(quitter, "q");
	user_online(quitter, 1u << 0);
	for (i = 3; i < NPEER; i++) {
		user_new(&u[i], "m");
		user_online(&u[i], i < 3 + BP_C_LOCAL ? 1u << 0 : 1u << 1);
	}
	for (i = 0; i < NPEER; i++) {
		peers[i].u = &u[i];
		peers[i].sender = i == 0 ? 0 : -1;
		peers[i].receives = i != 1;
	}
	sp.gid = create_group(s, gname, sizeof(gname), "cold");
	for (i = 2; i < NPEER; i++)
		ack_ok_free(u[i].c, chatc_add_group(u[i].c, sp.gid, REQ_MS),
		    MSG_ADD_GROUP);
	bp_counters_get(&k0);

	/* The group is in the sender's worker's cache after this. */
	sp.nmsg = 1;
	sp.what = "cold cache: warming";
	bp_run(peers, NPEER, &sp);

	/* A join on the other worker: the next burst misses the cache. */
	ack_ok_free(joiner->c, chatc_add_group(joiner->c, sp.gid, REQ_MS),
	    MSG_ADD_GROUP);
	peers[1].receives = 1;
	sp.nmsg = BP_C_NMSG;
	sp.what = "cold cache after a join on the other worker";
	bp_run(peers, NPEER, &sp);

	/* A quit on the sender's worker: the same, and the quitter gets
	 * none of the burst. */
	ack_ok_free(quitter->c, chatc_quit_group(quitter->c, sp.gid, REQ_MS),
	    MSG_QUIT_GROUP);
	peers[2].receives = 0;
	sp.hold = BP_C_NMSG / 3;
	sp.what = "cold cache after a quit on the sender's worker";
	bp_run(peers, NPEER, &sp);
	bp_no_fallback(&k0, "cold cache");
}
END_TEST

/* --- runner -------------------------------------------------------------- */

static Suite *
chat_suite(void)
{
	/* In order: the last ones kill workers (the master respawns them). */
	const TTest *all[] = {
		test_one_chat_online,
		test_one_chat_errors,
		test_one_chat_offline,
		test_offline_batch_paging,
		test_offline_order_pipelined,
		test_chinese_text,
		test_friends,
		test_add_friend_both_ways,
		test_presence_push,
		test_relogin_other_worker,
		test_chat_during_login,
		test_chat_while_claim_waits,
		test_presence_not_stored,
		test_groups,
		test_group_chat,
		test_group_cache_invalidation,
		test_group_change_then_logout,
		test_group_chat_then_logout,
		test_logout_during_flood,
		test_classic_session,
		test_worker_kill_active_reader,
		test_worker_kill_receiver_not_reading,
	};
	/* The same without Redis (redis_host empty): the paths that skip
	 * it (claims, group announcements, pull hints). */
	const TTest *noredis[] = {
		test_one_chat_online,
		test_one_chat_offline,
		test_friends,
		test_presence_push,
		test_relogin_other_worker,
		test_groups,
		test_group_chat,
		test_group_cache_invalidation,
		test_group_change_then_logout,
		test_logout_during_flood,
		test_classic_session,
	};
	/* On an instance of their own (SLOW_INST), started for them. */
	const TTest *slow[] = {
		test_slow_consumer_same_worker,
		test_slow_consumer_other_worker,
		test_slow_consumer_self,
	};
	const TTest *news[] = { test_news_for_stopped_worker };
	/* On an instance of their own (BP_INST): small inter-worker queues. */
	const TTest *bp[] = {
		test_cross_worker_order_pipelined,
		test_group_fanout_burst_no_fallback,
		test_group_cold_cache_order,
		test_burst_over_max_output_prompt_reader,
	};
	/* Each starts, stops and restarts an instance of its own. */
	const TTest *stop[] = {
		test_stop_rescues_unread,
		test_stop_flushes_output,
	};
	Suite *s = suite_create("it_chat");

	(void)harness_add_tcase(s, "IT_CHAT_ONLY", "one host", setup, teardown,
	    close_all, TEST_TIMEOUT_S, all, sizeof(all) / sizeof(all[0]));
	(void)harness_add_tcase(s, "IT_CHAT_ONLY", "one host without redis",
	    noredis_setup, noredis_teardown, close_all, TEST_TIMEOUT_S,
	    noredis, sizeof(noredis) / sizeof(noredis[0]));
	(void)harness_add_tcase(s, "IT_CHAT_ONLY", "slow consumer", slow_setup,
	    slow_teardown, close_all, TEST_TIMEOUT_S, slow,
	    sizeof(slow) / sizeof(slow[0]));
	(void)harness_add_tcase(s, "IT_CHAT_ONLY", "stopped worker",
	    news_setup, slow_teardown, close_all, TEST_TIMEOUT_S, news, 1);
	(void)harness_add_tcase(s, "IT_CHAT_ONLY", "backpressure", bp_setup,
	    bp_teardown, close_all, TEST_TIMEOUT_S, bp,
	    sizeof(bp) / sizeof(bp[0]));
	(void)harness_add_tcase(s, "IT_CHAT_ONLY", "graceful stop", setup,
	    teardown, close_all, TEST_TIMEOUT_S, stop,
	    sizeof(stop) / sizeof(stop[0]));
	return s;
}

int
main(void)
{
	return harness_run_suite(chat_suite(), &H, harness_tried);
}
