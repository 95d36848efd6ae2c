/*
 * chat.c - chat(1), the command-line client of chatd: the classic menu
 * (login, register, quit) and commands ("chat:friendid:message", ...),
 * with line editing, messages printed as they arrive without breaking
 * the line being typed, keepalive PINGs, reconnection after a lost
 * connection, and a one-shot mode for scripts.
 *
 * One session struct holds everything (connection, state, name caches)
 * and is passed to every function.  The interactive loop polls fd 0 and
 * the socket; requests are made with the client library's blocking
 * calls, bounded by the reply timeout, and whatever arrives meanwhile is
 * queued by the library and printed right after.  The protocol itself
 * lives in chatc.c, the command syntax in chat_cmd.c, the terminal in
 * chat_tty.c and the rendering of server text in chat_fmt.c.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <limits.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "chat_cmd.h"
#include "chat_fmt.h"
#include "chat_tty.h"
#include "chatc.h"
#include "protocol.h"

#define CHAT_DEFAULT_HOST	"127.0.0.1"
#define CHAT_DEFAULT_PORT	6000
#define CHAT_TIMEOUT_S		10	/* connect, and each reply */
#define CHAT_PING_S		60	/* keepalive when idle; chatd's
					 * idle_timeout is 300 s by default */
#define CHAT_QUIT_TIMEOUT_MS	2000	/* LOGINOUT on the way out */
#define CHAT_MAX_COMMANDS	16	/* -c options */
#define CHAT_WAIT_MAX_S		86400	/* -w */
#define CHAT_PROMPT_MAX		128	/* bytes of the logged-in prompt */
#define CHAT_NAMES_MAX		4096	/* users (and groups) whose names are
					 * remembered; more are shown by id */

/* Exit statuses (chat(1) EXIT STATUS). */
#define CHAT_EXIT_OK		0
#define CHAT_EXIT_REFUSED	1	/* the server answered with an error */
#define CHAT_EXIT_USAGE		2	/* bad option or command syntax */
#define CHAT_EXIT_CONN		3	/* no connection, lost, or no reply */

enum chat_state {
	ST_MENU,		/* waiting for 1, 2 or 3 */
	ST_LOGIN_ID,		/* waiting for the user id */
	ST_LOGIN_PW,		/* waiting for the password (no terminal) */
	ST_REG_NAME,		/* waiting for the new user's name */
	ST_REG_PW,		/* waiting for the password (no terminal) */
	ST_CHAT,		/* logged in (or lost, with c == NULL) */
};

/* id -> name, for users and for groups; small, searched linearly. */
struct chat_name {
	long long id;
	char *name;
};
struct chat_names {
	struct chat_name *v;
	size_t n, cap;
};

struct session {
	/* Options. */
	const char *host;
	int port;
	int timeout_ms;		/* connect and each reply (-t) */
	int ping_ms;		/* keepalive interval, 0 = none (-k) */
	int oneshot;		/* -c/-w/-r: script output, errors to stderr */

	struct chatc *c;	/* NULL while not connected */
	enum chat_state state;
	int quit;
	int status;		/* exit status: the first failure */
	int64_t last_sent;	/* monotonic ms of the last request */

	/* The account: set at login, kept for reconnecting. */
	long long id;
	char name[PROTO_NAME_MAX + 1];
	char password[PROTO_PASSWORD_MAX + 1];
	int have_password;	/* from -P or CHAT_PASSWORD */
	char given_password[PROTO_PASSWORD_MAX + 1];
	long long pending_id;	/* typed at the menu, before the password */
	char pending_name[PROTO_NAME_MAX + 1];

	struct chat_names users, groups;
	struct chat_fmt out;	/* scratch for one line of output */
	struct seen *seen;	/* chats shown to this user (SEEN_MAX) */
	size_t nseen, seen_next;
};

/*
 * The chats shown since the login, by sender, msgid and "tus": the server
 * delivers at least once (a stored message whose removal failed, or whose
 * connection was lost before it was read, comes again), so a repeat is
 * dropped.  Frames without "tus" (an older server) are always shown.
 */
#define SEEN_MAX	4096
struct seen {
	long long from, msgid;
	double tus;
};

/*
 * Set by the signal handler, which also writes a byte to sig_pipe so that
 * a signal arriving just before poll() still wakes it (the flags alone
 * would wait for the next key or message).
 */
static volatile sig_atomic_t got_int, got_winch, got_term;
static int sig_pipe[2] = { -1, -1 };

static void	sess_lost(struct session *, const char *);
static void	sess_menu(struct session *);

/* --- small helpers ----------------------------------------------------- */

static int64_t
now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
on_signal(int sig)
{
	int saved = errno;

	if (sig == SIGINT)
		got_int = 1;
	else if (sig == SIGWINCH)
		got_winch = 1;
	else
		got_term = 1;
	if (sig_pipe[1] != -1)
		(void)!write(sig_pipe[1], "", 1);
	errno = saved;
}

static void
names_free(struct chat_names *ns)
{
	size_t i;

	for (i = 0; i < ns->n; i++)
		free(ns->v[i].name);
	free(ns->v);
	memset(ns, 0, sizeof(*ns));
}

static const char *
names_get(const struct chat_names *ns, long long id)
{
	size_t i;

	for (i = 0; i < ns->n; i++)
		if (ns->v[i].id == id)
			return ns->v[i].name;
	return NULL;
}

/* Remember a name; a cache, so running out of memory only forgets. */
static void
names_set(struct chat_names *ns, long long id, const char *name)
{
	struct chat_name *nv;
	size_t i;
	char *dup;

	if (name == NULL || (dup = strdup(name)) == NULL)
		return;
	for (i = 0; i < ns->n; i++)
		if (ns->v[i].id == id) {
			free(ns->v[i].name);
			ns->v[i].name = dup;
			return;
		}
	if (ns->n >= CHAT_NAMES_MAX) {
		free(dup);
		return;
	}
	if (ns->n == ns->cap) {
		nv = reallocarray(ns->v, ns->cap == 0 ? 16 : ns->cap * 2,
		    sizeof(*nv));
		if (nv == NULL) {
			free(dup);
			return;
		}
		ns->v = nv;
		ns->cap = ns->cap == 0 ? 16 : ns->cap * 2;
	}
	ns->v[ns->n].id = id;
	ns->v[ns->n].name = dup;
	ns->n++;
}

/* A classic list item: a string holding a JSON object (parsed, caller
 * frees), or an object (duplicated). */
static cJSON *
item_object(const cJSON *item)
{
	if (cJSON_IsString(item))
		return cJSON_Parse(item->valuestring);
	if (cJSON_IsObject(item))
		return cJSON_Duplicate(item, 1);
	return NULL;
}

/* --- output ------------------------------------------------------------ */

/* The scratch buffer, emptied for a new line. */
static struct chat_fmt *
out_begin(struct session *s)
{
	chat_fmt_reset(&s->out);
	return &s->out;
}

static void
out_end(struct session *s)
{
	chat_tty_print(chat_fmt_str(&s->out));
}

static void __attribute__((format(printf, 2, 3)))
say(struct session *s, const char *fmt, ...)
{
	va_list ap;
	char *text;

	(void)s;	/* the same first argument as fail() */
	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	chat_tty_print(text != NULL ? text : "(out of memory)");
	free(text);
}

/* An error: on stderr prefixed "chat: " in one-shot mode, else shown in
 * the conversation.  Records status as the exit status if it is the
 * first failure. */
static void __attribute__((format(printf, 3, 4)))
fail(struct session *s, int status, const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	if (s->oneshot) {
		(void)fflush(stdout);
		(void)fprintf(stderr, "chat: %s\n",
		    text != NULL ? text : "(out of memory)");
	} else
		chat_tty_printf("error: %s", text != NULL ? text :
		    "(out of memory)");
	free(text);
	if (s->status == CHAT_EXIT_OK)
		s->status = status;
}

/* A reply with a non-zero errno, readably: the standard text of the
 * errno value, and the server's errmsg when it says more. */
static void
fail_reply(struct session *s, const char *what, const cJSON *reply)
{
	struct chat_fmt f;
	const char *std, *msg;
	int err;

	err = chatc_errno(reply);
	std = proto_strerror(err);
	msg = chatc_errmsg(reply);
	chat_fmt_init(&f);
	chat_fmt_add(&f, "%s: %s", what, std);
	if (*msg != '\0' && strcmp(msg, std) != 0) {
		chat_fmt_add(&f, " (");
		chat_fmt_add_clean(&f, msg);
		chat_fmt_add(&f, ")");
	}
	fail(s, CHAT_EXIT_REFUSED, "%s", chat_fmt_str(&f));
	chat_fmt_free(&f);
}

/* --- incoming messages ------------------------------------------------- */

static const char *
user_label(struct session *s, long long id, char *buf, size_t len)
{
	const char *name = names_get(&s->users, id);
	struct chat_fmt f;

	chat_fmt_init(&f);
	if (name != NULL) {
		chat_fmt_add_clean(&f, name);
		chat_fmt_add(&f, " [%lld]", id);
	} else
		chat_fmt_add(&f, "user %lld", id);
	(void)snprintf(buf, len, "%s", chat_fmt_str(&f));
	chat_fmt_free(&f);
	return buf;
}

/* 1 when msg was shown already; else it is remembered (the oldest of
 * SEEN_MAX forgotten). */
static int
seen_before(struct session *s, const cJSON *msg)
{
	const cJSON *tus = cJSON_GetObjectItemCaseSensitive(msg, "tus");
	struct seen k;
	size_t i;

	if (!cJSON_IsNumber(tus))
		return 0;
	k.from = chat_fmt_num(msg, "id", -1);
	k.msgid = chat_fmt_num(msg, "msgid", -1);
	k.tus = tus->valuedouble;
	for (i = 0; i < s->nseen; i++)
		if (s->seen[i].from == k.from && s->seen[i].msgid == k.msgid &&
		    s->seen[i].tus == k.tus)
			return 1;
	if (s->seen == NULL &&
	    (s->seen = calloc(SEEN_MAX, sizeof(*s->seen))) == NULL)
		return 0;
	s->seen[s->seen_next] = k;
	s->seen_next = (s->seen_next + 1) % SEEN_MAX;
	if (s->nseen < SEEN_MAX)
		s->nseen++;
	return 0;
}

/* Show one forwarded chat frame (live or from the offline store), unless
 * it was shown already. */
static void
show_chat(struct session *s, const cJSON *msg, const char *indent)
{
	struct chat_fmt *f;
	long long from, gid;

	if (seen_before(s, msg))
		return;
	f = out_begin(s);

	from = chat_fmt_num(msg, "id", -1);
	if (from > 0 && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(msg,
	    "name")))
		names_set(&s->users, from, chat_fmt_strfield(msg, "name", ""));
	gid = chat_fmt_num(msg, "groupid", -1);
	chat_fmt_add(f, "%s", indent);
	if (chat_fmt_chat(f, msg, names_get(&s->groups, gid)) == -1)
		return;
	out_end(s);
}

/* Something the server sent on its own: a chat, a PRESENCE notice, an
 * ERROR, or a reply that came after its request timed out. */
static void
sess_incoming(struct session *s, const cJSON *msg)
{
	char who[PROTO_NAME_MAX * 4 + 32];
	long long msgid, id;

	msgid = chat_fmt_num(msg, "msgid", -1);
	switch (msgid) {
	case MSG_ONE_CHAT:
	case MSG_GROUP_CHAT:
		show_chat(s, msg, "");
		break;
	case MSG_PRESENCE:
		id = chat_fmt_num(msg, "id", -1);
		say(s, "*** %s is %s", user_label(s, id, who, sizeof(who)),
		    strcmp(chat_fmt_strfield(msg, "state", ""), "online") == 0 ?
		    "online" : "offline");
		break;
	case MSG_ERROR:
		fail_reply(s, "from the server", msg);
		break;
	default:
		/* Late replies (ACK after a timeout) and unknown messages
		 * have no one waiting for them. */
		break;
	}
}

/*
 * Print everything that has arrived.  Notices the end of the connection
 * (after the messages sent before it).  Returns 0, or -1 when the
 * connection was lost.
 */
static int
sess_drain(struct session *s)
{
	cJSON *msg;

	while (s->c != NULL) {
		if ((msg = chatc_poll(s->c)) != NULL) {
			sess_incoming(s, msg);
			cJSON_Delete(msg);
			continue;
		}
		if (chatc_closed(s->c)) {
			sess_lost(s, chatc_error(s->c));
			return -1;
		}
		/* A line that was not JSON is skipped; go on with the rest. */
		if (chatc_pending(s->c))
			continue;
		break;
	}
	return s->c != NULL ? 0 : -1;
}

/* --- connection and requests ------------------------------------------ */

static int
sess_connect(struct session *s)
{
	char err[256];

	if (s->c != NULL)
		return 0;
	s->c = chatc_connect(s->host, s->port, s->timeout_ms, err,
	    sizeof(err));
	if (s->c == NULL) {
		fail(s, CHAT_EXIT_CONN, "cannot connect: %s", err);
		return -1;
	}
	return 0;
}

/*
 * The connection ended.  Logged in, that is news: say so and offer to
 * reconnect.  At the menu it is routine (chatd closes connections that
 * do not log in within auth_timeout) and the next login or register
 * connects again.
 */
static void
sess_lost(struct session *s, const char *reason)
{
	char prompt[CHAT_PROMPT_MAX + 32], why[256];
	struct chat_fmt f;

	/* reason may be chatc_error(s->c), freed with s->c. */
	(void)snprintf(why, sizeof(why), "%s", reason);
	chatc_close(s->c);
	s->c = NULL;
	if (s->state != ST_CHAT)
		return;
	if (s->oneshot) {
		fail(s, CHAT_EXIT_CONN, "connection to %s:%d lost: %s", s->host,
		    s->port, why);
		return;
	}
	say(s, "*** connection to %s:%d lost: %s", s->host, s->port, why);
	say(s, "*** type reconnect to log in again, or quit");
	chat_fmt_init(&f);
	chat_fmt_add(&f, "(disconnected) ");
	chat_fmt_add_clean(&f, s->name);
	(void)snprintf(prompt, sizeof(prompt), "%s> ", chat_fmt_str(&f));
	chat_fmt_free(&f);
	chat_tty_set_prompt(prompt);
	if (s->status == CHAT_EXIT_OK)
		s->status = CHAT_EXIT_CONN;
}

/*
 * Check the reply to a request (NULL when none came).  Returns the
 * reply when it says success; otherwise reports the failure (a lost
 * connection, no reply in time, or the server's error), frees it and
 * returns NULL.
 */
static cJSON *
sess_check(struct session *s, cJSON *reply, const char *what)
{
	s->last_sent = now_ms();
	if (reply == NULL) {
		if (chatc_closed(s->c)) {
			if (s->state == ST_CHAT)
				sess_lost(s, chatc_error(s->c));
			else {
				fail(s, CHAT_EXIT_CONN, "%s: %s", what,
				    chatc_error(s->c));
				chatc_close(s->c);
				s->c = NULL;
			}
		} else
			fail(s, CHAT_EXIT_CONN, "%s: no reply from the server "
			    "within %d s (%s)", what, s->timeout_ms / 1000,
			    chatc_error(s->c));
		return NULL;
	}
	if (chatc_errno(reply) != 0) {
		fail_reply(s, what, reply);
		cJSON_Delete(reply);
		return NULL;
	}
	return reply;
}

/* Not logged in, the first request on a connection chatd may have
 * closed (auth_timeout) just now is retried once on a new one. */
static int
sess_stale(struct session *s, cJSON *reply)
{
	if (reply != NULL || s->c == NULL || !chatc_closed(s->c))
		return 0;
	chatc_close(s->c);
	s->c = NULL;
	return sess_connect(s) == 0;
}

/* --- login, register, logout ------------------------------------------ */

/* One friend {id, name, state}: indented columns, or tab-separated
 * fields in one-shot mode. */
static void
show_friend_row(struct session *s, const cJSON *o)
{
	struct chat_fmt *f = out_begin(s);
	const char *sep = s->oneshot ? "\t" : "  ";

	chat_fmt_add(f, "%s%lld%s", s->oneshot ? "" : "  ",
	    chat_fmt_num(o, "id", -1), sep);
	chat_fmt_add_clean(f, chat_fmt_strfield(o, "name", "?"));
	chat_fmt_add(f, "%s", sep);
	chat_fmt_add_clean(f, chat_fmt_strfield(o, "state", "?"));
	out_end(s);
}

static void
show_login(struct session *s, const cJSON *ack)
{
	const cJSON *list, *item, *users, *u;
	struct chat_fmt *f;
	cJSON *o, *m;
	long long id;
	int n;

	if (!s->oneshot) {
		f = out_begin(s);
		chat_fmt_add(f, "logged in as ");
		chat_fmt_add_clean(f, s->name);
		chat_fmt_add(f, " [%lld]", s->id);
		out_end(s);
	}
	list = cJSON_GetObjectItemCaseSensitive(ack, "friends");
	n = 0;
	cJSON_ArrayForEach(item, list) {
		if ((o = item_object(item)) == NULL)
			continue;
		id = chat_fmt_num(o, "id", -1);
		names_set(&s->users, id, chat_fmt_strfield(o, "name", NULL));
		if (!s->oneshot) {
			if (n++ == 0)
				say(s, "friends:");
			show_friend_row(s, o);
		}
		cJSON_Delete(o);
	}
	if (!s->oneshot && n == 0)
		say(s, "friends: none yet (add one with addfriend:id)");
	list = cJSON_GetObjectItemCaseSensitive(ack, "groups");
	n = 0;
	cJSON_ArrayForEach(item, list) {
		if ((o = item_object(item)) == NULL)
			continue;
		id = chat_fmt_num(o, "id", -1);
		names_set(&s->groups, id,
		    chat_fmt_strfield(o, "groupname", NULL));
		if (s->oneshot) {
			cJSON_Delete(o);
			continue;
		}
		if (n++ == 0)
			say(s, "groups:");
		f = out_begin(s);
		chat_fmt_add(f, "  %lld  ", id);
		chat_fmt_add_clean(f, chat_fmt_strfield(o, "groupname", "?"));
		chat_fmt_add(f, "  ");
		chat_fmt_add_clean(f, chat_fmt_strfield(o, "groupdesc", ""));
		out_end(s);
		users = cJSON_GetObjectItemCaseSensitive(o, "users");
		cJSON_ArrayForEach(u, users) {
			if ((m = item_object(u)) == NULL)
				continue;
			names_set(&s->users, chat_fmt_num(m, "id", -1),
			    chat_fmt_strfield(m, "name", NULL));
			f = out_begin(s);
			chat_fmt_add(f, "      %lld  ", chat_fmt_num(m, "id",
			    -1));
			chat_fmt_add_clean(f, chat_fmt_strfield(m, "name",
			    "?"));
			chat_fmt_add(f, "  ");
			chat_fmt_add_clean(f, chat_fmt_strfield(m, "role",
			    "?"));
			chat_fmt_add(f, "  ");
			chat_fmt_add_clean(f, chat_fmt_strfield(m, "state",
			    "?"));
			out_end(s);
			cJSON_Delete(m);
		}
		cJSON_Delete(o);
	}
	if (!s->oneshot && n == 0)
		say(s, "groups: none yet (creategroup:name:desc or "
		    "addgroup:groupid)");
	/* Offline messages are shown in one-shot mode too: the server
	 * forgets them once sent. */
	list = cJSON_GetObjectItemCaseSensitive(ack, "offlinemsg");
	n = 0;
	cJSON_ArrayForEach(item, list) {
		if ((o = item_object(item)) == NULL)
			continue;
		if (n++ == 0 && !s->oneshot)
			say(s, "offline messages:");
		show_chat(s, o, s->oneshot ? "" : "  ");
		cJSON_Delete(o);
	}
	if (!s->oneshot)
		say(s, "type help for the commands");
}

static void
sess_set_chat_prompt(struct session *s)
{
	char prompt[CHAT_PROMPT_MAX + 8];
	struct chat_fmt f;

	chat_fmt_init(&f);
	chat_fmt_add_clean(&f, s->name);
	(void)snprintf(prompt, sizeof(prompt), "%.*s> ", CHAT_PROMPT_MAX,
	    chat_fmt_str(&f));
	chat_fmt_free(&f);
	chat_tty_set_prompt(prompt);
}

/* Log in as id; 0, or -1 after saying why. */
static int
sess_login(struct session *s, long long id, const char *password)
{
	char what[64];
	cJSON *reply;

	(void)snprintf(what, sizeof(what), "login as %lld", id);
	if (sess_connect(s) == -1)
		return -1;
	reply = chatc_login(s->c, id, password, s->timeout_ms);
	if (sess_stale(s, reply))
		reply = chatc_login(s->c, id, password, s->timeout_ms);
	if ((reply = sess_check(s, reply, what)) == NULL)
		return -1;
	s->id = id;
	(void)snprintf(s->name, sizeof(s->name), "%s",
	    chat_fmt_strfield(reply, "name", "?"));
	if (password != s->password)
		(void)snprintf(s->password, sizeof(s->password), "%s",
		    password);
	s->state = ST_CHAT;
	s->last_sent = now_ms();
	show_login(s, reply);
	cJSON_Delete(reply);
	if (!s->oneshot)
		sess_set_chat_prompt(s);
	return 0;
}

/* Register name; the new id, or -1 after saying why. */
static long long
sess_register(struct session *s, const char *name, const char *password)
{
	cJSON *reply;
	long long id;

	if (sess_connect(s) == -1)
		return -1;
	reply = chatc_register(s->c, name, password, s->timeout_ms);
	if (sess_stale(s, reply))
		reply = chatc_register(s->c, name, password, s->timeout_ms);
	if ((reply = sess_check(s, reply, "register")) == NULL)
		return -1;
	id = chat_fmt_num(reply, "id", -1);
	cJSON_Delete(reply);
	return id;
}

/* Leave the logged-in state (after LOGINOUT, or to quit). */
static void
sess_forget(struct session *s)
{
	explicit_bzero(s->password, sizeof(s->password));
	s->id = 0;
	s->name[0] = '\0';
	names_free(&s->users);
	names_free(&s->groups);
	/* Another user may log in next: the same group message is theirs
	 * to see too. */
	s->nseen = s->seen_next = 0;
}

/* --- commands ---------------------------------------------------------- */

static void
show_help(struct session *s)
{
	const char *usage, *what;
	size_t i;

	say(s, "commands:");
	for (i = 0; chat_cmd_help(i, &usage, &what) == 0; i++)
		say(s, "  %-28s %s", usage, what);
}

/* Refresh the friend cache quietly; the friend's entry or NULL. */
static void
refresh_friends(struct session *s, long long want, char *state,
    size_t statelen)
{
	const cJSON *list, *o;
	cJSON *reply;

	reply = chatc_friend_list(s->c, s->timeout_ms);
	if (reply == NULL || chatc_errno(reply) != 0) {
		cJSON_Delete(reply);
		return;
	}
	list = cJSON_GetObjectItemCaseSensitive(reply, "friends");
	cJSON_ArrayForEach(o, list) {
		names_set(&s->users, chat_fmt_num(o, "id", -1),
		    chat_fmt_strfield(o, "name", NULL));
		if (chat_fmt_num(o, "id", -1) == want)
			(void)snprintf(state, statelen, "%s",
			    chat_fmt_strfield(o, "state", ""));
	}
	cJSON_Delete(reply);
}

static void
refresh_groups(struct session *s)
{
	const cJSON *list, *o;
	cJSON *reply;

	reply = chatc_group_list(s->c, s->timeout_ms);
	if (reply == NULL || chatc_errno(reply) != 0) {
		cJSON_Delete(reply);
		return;
	}
	list = cJSON_GetObjectItemCaseSensitive(reply, "groups");
	cJSON_ArrayForEach(o, list)
		names_set(&s->groups, chat_fmt_num(o, "id", -1),
		    chat_fmt_strfield(o, "groupname", NULL));
	cJSON_Delete(reply);
}

static const char *
group_label(struct session *s, long long id, char *buf, size_t len)
{
	const char *name = names_get(&s->groups, id);
	struct chat_fmt f;

	chat_fmt_init(&f);
	chat_fmt_add(&f, "group %lld", id);
	if (name != NULL) {
		chat_fmt_add(&f, " ");
		chat_fmt_add_clean(&f, name);
	}
	(void)snprintf(buf, len, "%s", chat_fmt_str(&f));
	chat_fmt_free(&f);
	return buf;
}

/* A sent chat's status: "delivered" or "stored". */
static void
show_status(struct session *s, const cJSON *ack, int group, long long id)
{
	const char *status = chat_fmt_strfield(ack, "status", "");

	if (s->oneshot) {
		say(s, "%s", *status != '\0' ? status : "sent");
		return;
	}
	if (strcmp(status, "stored") != 0)
		return;
	if (group)
		say(s, "(stored for the members of group %lld who are "
		    "offline)", id);
	else
		say(s, "(user %lld is offline: stored for their next login)",
		    id);
}

static void
show_friends(struct session *s, const cJSON *ack)
{
	const cJSON *list, *o;
	int n = 0;

	list = cJSON_GetObjectItemCaseSensitive(ack, "friends");
	cJSON_ArrayForEach(o, list) {
		names_set(&s->users, chat_fmt_num(o, "id", -1),
		    chat_fmt_strfield(o, "name", NULL));
		if (n++ == 0 && !s->oneshot)
			say(s, "friends:");
		show_friend_row(s, o);
	}
	if (n == 0 && !s->oneshot)
		say(s, "friends: none yet (add one with addfriend:id)");
}

static void
show_groups(struct session *s, const cJSON *ack)
{
	const cJSON *list, *o;
	struct chat_fmt *f;
	int n = 0;

	list = cJSON_GetObjectItemCaseSensitive(ack, "groups");
	cJSON_ArrayForEach(o, list) {
		names_set(&s->groups, chat_fmt_num(o, "id", -1),
		    chat_fmt_strfield(o, "groupname", NULL));
		if (n++ == 0 && !s->oneshot)
			say(s, "groups:");
		f = out_begin(s);
		chat_fmt_add(f, s->oneshot ? "%lld\t" : "  %lld  ",
		    chat_fmt_num(o, "id", -1));
		chat_fmt_add_clean(f, chat_fmt_strfield(o, "groupname", "?"));
		chat_fmt_add(f, s->oneshot ? "\t" : "  ");
		chat_fmt_add_clean(f, chat_fmt_strfield(o, "role", "?"));
		chat_fmt_add(f, s->oneshot ? "\t" : "  ");
		chat_fmt_add_clean(f, chat_fmt_strfield(o, "groupdesc", ""));
		out_end(s);
	}
	if (n == 0 && !s->oneshot)
		say(s, "groups: none yet (creategroup:name:desc or "
		    "addgroup:groupid)");
}

static void
show_members(struct session *s, const cJSON *ack, long long gid)
{
	const cJSON *list, *o;
	struct chat_fmt *f;
	char label[PROTO_GROUPNAME_MAX * 4 + 32];
	int n = 0;

	list = cJSON_GetObjectItemCaseSensitive(ack, "users");
	cJSON_ArrayForEach(o, list) {
		names_set(&s->users, chat_fmt_num(o, "id", -1),
		    chat_fmt_strfield(o, "name", NULL));
		if (n++ == 0 && !s->oneshot)
			say(s, "members of %s:", group_label(s, gid, label,
			    sizeof(label)));
		f = out_begin(s);
		chat_fmt_add(f, s->oneshot ? "%lld\t" : "  %lld  ",
		    chat_fmt_num(o, "id", -1));
		chat_fmt_add_clean(f, chat_fmt_strfield(o, "name", "?"));
		chat_fmt_add(f, s->oneshot ? "\t" : "  ");
		chat_fmt_add_clean(f, chat_fmt_strfield(o, "role", "?"));
		chat_fmt_add(f, s->oneshot ? "\t" : "  ");
		chat_fmt_add_clean(f, chat_fmt_strfield(o, "state", "?"));
		out_end(s);
	}
}

/* LOGINOUT, then back to the menu (or out). */
static void
sess_logout(struct session *s, int timeout_ms)
{
	cJSON *reply;

	if (s->c != NULL) {
		reply = chatc_logout(s->c, timeout_ms);
		/* Leaving anyway: a failure here changes nothing. */
		cJSON_Delete(reply);
	}
	sess_forget(s);
}

/* Run one parsed command while logged in.  Results and errors are
 * printed; failures are recorded in s->status. */
static void
sess_exec(struct session *s, const struct chat_cmd *cmd)
{
	char what[96], label[PROTO_GROUPNAME_MAX * 4 + 32];
	char who[PROTO_NAME_MAX * 4 + 32], state[32];
	cJSON *reply = NULL;
	long long gid;

	switch (cmd->kind) {
	case CHAT_CMD_EMPTY:
		return;
	case CHAT_CMD_HELP:
		show_help(s);
		return;
	case CHAT_CMD_QUIT:
		sess_logout(s, CHAT_QUIT_TIMEOUT_MS);
		s->quit = 1;
		return;
	case CHAT_CMD_RECONNECT:
		if (s->c != NULL) {
			say(s, "already connected");
			return;
		}
		say(s, "connecting to %s:%d...", s->host, s->port);
		if (sess_login(s, s->id, s->password) == -1 && s->c != NULL) {
			/* Refused (already online, say): stay disconnected
			 * rather than connected but logged out. */
			chatc_close(s->c);
			s->c = NULL;
		}
		return;
	default:
		break;
	}
	if (s->c == NULL) {
		fail(s, CHAT_EXIT_CONN, "not connected; type reconnect, or "
		    "quit");
		return;
	}
	switch (cmd->kind) {
	case CHAT_CMD_CHAT:
		(void)snprintf(what, sizeof(what), "chat to %lld", cmd->id);
		reply = chatc_one_chat(s->c, cmd->id, cmd->text,
		    s->timeout_ms);
		if ((reply = sess_check(s, reply, what)) != NULL)
			show_status(s, reply, 0, cmd->id);
		break;
	case CHAT_CMD_GROUPCHAT:
		(void)snprintf(what, sizeof(what), "chat to group %lld",
		    cmd->id);
		reply = chatc_group_chat(s->c, cmd->id, cmd->text,
		    s->timeout_ms);
		if ((reply = sess_check(s, reply, what)) != NULL)
			show_status(s, reply, 1, cmd->id);
		break;
	case CHAT_CMD_ADDFRIEND:
		(void)snprintf(what, sizeof(what), "addfriend %lld", cmd->id);
		reply = chatc_add_friend(s->c, cmd->id, s->timeout_ms);
		if ((reply = sess_check(s, reply, what)) == NULL)
			break;
		state[0] = '\0';
		refresh_friends(s, cmd->id, state, sizeof(state));
		if (*state != '\0')
			say(s, "%s is now your friend (%s)",
			    user_label(s, cmd->id, who, sizeof(who)), state);
		else
			say(s, "%s is now your friend",
			    user_label(s, cmd->id, who, sizeof(who)));
		break;
	case CHAT_CMD_DELFRIEND:
		(void)snprintf(what, sizeof(what), "delfriend %lld", cmd->id);
		reply = chatc_del_friend(s->c, cmd->id, s->timeout_ms);
		if ((reply = sess_check(s, reply, what)) != NULL)
			say(s, "%s is no longer your friend",
			    user_label(s, cmd->id, who, sizeof(who)));
		break;
	case CHAT_CMD_CREATEGROUP:
		reply = chatc_create_group(s->c, cmd->text, cmd->text2,
		    s->timeout_ms);
		if ((reply = sess_check(s, reply, "creategroup")) == NULL)
			break;
		gid = chat_fmt_num(reply, "groupid", -1);
		names_set(&s->groups, gid, cmd->text);
		if (s->oneshot)
			say(s, "%lld", gid);
		else
			say(s, "created %s; others join it with addgroup:%lld",
			    group_label(s, gid, label, sizeof(label)), gid);
		break;
	case CHAT_CMD_ADDGROUP:
		(void)snprintf(what, sizeof(what), "addgroup %lld", cmd->id);
		reply = chatc_add_group(s->c, cmd->id, s->timeout_ms);
		if ((reply = sess_check(s, reply, what)) == NULL)
			break;
		refresh_groups(s);
		say(s, "joined %s", group_label(s, cmd->id, label,
		    sizeof(label)));
		break;
	case CHAT_CMD_QUITGROUP:
		(void)snprintf(what, sizeof(what), "quitgroup %lld", cmd->id);
		reply = chatc_quit_group(s->c, cmd->id, s->timeout_ms);
		if ((reply = sess_check(s, reply, what)) != NULL)
			say(s, "left %s", group_label(s, cmd->id, label,
			    sizeof(label)));
		break;
	case CHAT_CMD_FRIENDS:
		reply = chatc_friend_list(s->c, s->timeout_ms);
		if ((reply = sess_check(s, reply, "friends")) != NULL)
			show_friends(s, reply);
		break;
	case CHAT_CMD_GROUPS:
		reply = chatc_group_list(s->c, s->timeout_ms);
		if ((reply = sess_check(s, reply, "groups")) != NULL)
			show_groups(s, reply);
		break;
	case CHAT_CMD_MEMBERS:
		(void)snprintf(what, sizeof(what), "members of group %lld",
		    cmd->id);
		reply = chatc_group_members(s->c, cmd->id, s->timeout_ms);
		if ((reply = sess_check(s, reply, what)) != NULL)
			show_members(s, reply, cmd->id);
		break;
	case CHAT_CMD_LOGINOUT:
		reply = chatc_logout(s->c, s->timeout_ms);
		if ((reply = sess_check(s, reply, "loginout")) == NULL)
			break;
		say(s, "logged out");
		sess_forget(s);
		if (!s->oneshot)
			sess_menu(s);
		else
			s->state = ST_MENU;
		break;
	default:
		break;
	}
	cJSON_Delete(reply);
}

/* --- the menu ---------------------------------------------------------- */

static void
sess_menu(struct session *s)
{
	s->state = ST_MENU;
	say(s, "========================");
	say(s, "1. login");
	say(s, "2. register");
	say(s, "3. quit");
	say(s, "========================");
	chat_tty_set_prompt("choice: ");
}

static char *
trim(char *p)
{
	char *end;

	while (*p == ' ' || *p == '\t')
		p++;
	end = p + strlen(p);
	while (end > p && (end[-1] == ' ' || end[-1] == '\t' ||
	    end[-1] == '\r'))
		*--end = '\0';
	return p;
}

/*
 * The password for a login or a registration: given (-P, CHAT_PASSWORD),
 * or typed without echo.  1 when buf is filled, 0 when it must come as
 * the next line (no terminal), -1 when reading it failed.
 */
static int
ask_password(struct session *s, char *buf, size_t len, int confirm)
{
	char again[PROTO_PASSWORD_MAX + 2];
	int rc;

	if (s->have_password) {
		(void)snprintf(buf, len, "%s", s->given_password);
		return 1;
	}
	if (!isatty(STDIN_FILENO))
		return 0;
	if (chat_tty_secret("userpassword: ", buf, len, &got_int) == -1) {
		fail(s, CHAT_EXIT_USAGE, "no password read");
		got_int = 0;
		return -1;
	}
	if (!confirm)
		return 1;
	rc = chat_tty_secret("again: ", again, sizeof(again), &got_int);
	got_int = 0;
	if (rc == -1 || strcmp(again, buf) != 0) {
		explicit_bzero(again, sizeof(again));
		fail(s, CHAT_EXIT_USAGE, "the passwords differ");
		return -1;
	}
	explicit_bzero(again, sizeof(again));
	return 1;
}

static void
menu_login(struct session *s, const char *password)
{
	if (*password == '\0') {
		fail(s, CHAT_EXIT_USAGE, "empty password");
		sess_menu(s);
		return;
	}
	if (sess_login(s, s->pending_id, password) == -1)
		sess_menu(s);
}

static void
menu_register(struct session *s, const char *password)
{
	long long id;

	if (*password == '\0') {
		fail(s, CHAT_EXIT_USAGE, "empty password");
	} else if ((id = sess_register(s, s->pending_name, password)) > 0) {
		say(s, "registered %s: your id is %lld; log in with it",
		    s->pending_name, id);
	}
	sess_menu(s);
}

/*
 * The menu needs a password: take it at once when it is at hand (file,
 * environment, terminal without echo), then run `then`; or wait for the
 * next input line in state `next`.
 */
static void
menu_password(struct session *s, int next, int confirm,
    void (*then)(struct session *, const char *))
{
	char pw[PROTO_PASSWORD_MAX + 2];
	int rc;

	if ((rc = ask_password(s, pw, sizeof(pw), confirm)) == 0) {
		s->state = next;
		chat_tty_set_prompt("userpassword: ");
		return;
	}
	if (rc == 1)
		then(s, pw);
	else
		sess_menu(s);
	explicit_bzero(pw, sizeof(pw));
}

/* One line typed at the menu or in one of its questions. */
static void
sess_menu_line(struct session *s, char *line)
{
	char *p = trim(line);

	switch (s->state) {
	case ST_MENU:
		if (strcmp(p, "1") == 0 || strcmp(p, "login") == 0) {
			s->state = ST_LOGIN_ID;
			chat_tty_set_prompt("userid: ");
		} else if (strcmp(p, "2") == 0 || strcmp(p, "register") == 0) {
			s->state = ST_REG_NAME;
			chat_tty_set_prompt("username: ");
		} else if (strcmp(p, "3") == 0 || strcmp(p, "quit") == 0)
			s->quit = 1;
		else if (*p != '\0')
			say(s, "invalid choice \"%.40s\": type 1, 2 or 3", p);
		return;
	case ST_LOGIN_ID:
		if (chat_cmd_parse_id(p, &s->pending_id) == -1) {
			fail(s, CHAT_EXIT_USAGE, "\"%.40s\" is not a user id "
			    "(a positive number)", p);
			sess_menu(s);
			return;
		}
		menu_password(s, ST_LOGIN_PW, 0, menu_login);
		return;
	case ST_LOGIN_PW:
		menu_login(s, line);
		return;
	case ST_REG_NAME:
		if (*p == '\0' || strlen(p) > PROTO_NAME_MAX) {
			fail(s, CHAT_EXIT_USAGE, "a name is 1 to %d bytes",
			    PROTO_NAME_MAX);
			sess_menu(s);
			return;
		}
		(void)snprintf(s->pending_name, sizeof(s->pending_name), "%s",
		    p);
		menu_password(s, ST_REG_PW, 1, menu_register);
		return;
	case ST_REG_PW:
		menu_register(s, line);
		return;
	case ST_CHAT:
		break;
	}
}

/* chat_tty's line function: one line of input, or NULL at its end. */
static int
sess_line(void *arg, char *line)
{
	struct session *s = arg;
	struct chat_cmd cmd;
	char err[256];

	if (line == NULL) {
		if (s->state == ST_CHAT)
			sess_logout(s, CHAT_QUIT_TIMEOUT_MS);
		s->quit = 1;
		return -1;
	}
	if (s->state != ST_CHAT) {
		sess_menu_line(s, line);
		explicit_bzero(line, strlen(line));
		return s->quit ? -1 : 0;
	}
	chat_tty_history(line);
	if (chat_cmd_parse(line, &cmd, err, sizeof(err)) == -1) {
		fail(s, CHAT_EXIT_USAGE, "%s", err);
		return 0;
	}
	sess_exec(s, &cmd);
	return s->quit ? -1 : 0;
}

/* --- the loops --------------------------------------------------------- */

/* A PING when nothing was sent for ping_ms; a dead peer shows here. */
static void
sess_keepalive(struct session *s)
{
	cJSON *reply;

	if (s->c == NULL || s->state != ST_CHAT || s->ping_ms <= 0 ||
	    now_ms() - s->last_sent < s->ping_ms)
		return;
	reply = chatc_ping(s->c, s->timeout_ms);
	s->last_sent = now_ms();
	if (reply == NULL) {
		sess_lost(s, chatc_closed(s->c) ? chatc_error(s->c) :
		    "no reply to PING");
		return;
	}
	cJSON_Delete(reply);
}

/* Milliseconds poll may sleep before the next keepalive (-1: forever). */
static int
sess_sleep_ms(const struct session *s)
{
	int64_t left;

	if (s->c == NULL || s->state != ST_CHAT || s->ping_ms <= 0)
		return -1;
	left = s->last_sent + s->ping_ms - now_ms();
	if (left < 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

static void
interactive_loop(struct session *s)
{
	struct pollfd pfd[3];
	char junk[64];
	int n;

	while (!s->quit && !got_term) {
		pfd[0].fd = STDIN_FILENO;
		pfd[0].events = POLLIN;
		pfd[0].revents = 0;
		pfd[1].fd = s->c != NULL ? chatc_fd(s->c) : -1;
		pfd[1].events = POLLIN;
		pfd[1].revents = 0;
		pfd[2].fd = sig_pipe[0];
		pfd[2].events = POLLIN;
		pfd[2].revents = 0;
		n = poll(pfd, 3, sess_sleep_ms(s));
		if (n == -1 && errno != EINTR) {
			fail(s, CHAT_EXIT_CONN, "poll: %s", strerror(errno));
			break;
		}
		if (n > 0 && pfd[2].revents != 0)
			while (read(sig_pipe[0], junk, sizeof(junk)) > 0)
				;
		if (got_winch) {
			got_winch = 0;
			chat_tty_resize();
		}
		if (got_int) {
			got_int = 0;
			chat_tty_interrupt();
		}
		if (n > 0 && pfd[1].revents != 0)
			(void)sess_drain(s);
		if (n > 0 && pfd[0].revents != 0) {
			chat_tty_readable((pfd[0].revents & POLLIN) == 0);
			if (s->quit)
				break;
		}
		/* Messages set aside while a request waited for its reply. */
		(void)sess_drain(s);
		sess_keepalive(s);
	}
	if (got_term && s->state == ST_CHAT)
		sess_logout(s, CHAT_QUIT_TIMEOUT_MS);
}

/* One-shot: print what arrives for wait_ms (keeping the session up). */
static void
oneshot_wait(struct session *s, int wait_ms)
{
	int64_t deadline = now_ms() + wait_ms;
	struct pollfd pfd;
	int64_t left;
	int ms, ping;

	while (s->c != NULL && !got_term && !got_int &&
	    (left = deadline - now_ms()) > 0) {
		ms = left > INT_MAX ? INT_MAX : (int)left;
		ping = sess_sleep_ms(s);
		if (ping >= 0 && ping < ms)
			ms = ping;
		pfd.fd = chatc_fd(s->c);
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, ms) == -1 && errno != EINTR) {
			fail(s, CHAT_EXIT_CONN, "poll: %s", strerror(errno));
			return;
		}
		(void)sess_drain(s);
		sess_keepalive(s);
	}
}

/* --- main -------------------------------------------------------------- */

static void __attribute__((noreturn))
usage(void)
{
	(void)fprintf(stderr,
	    "usage: chat [-h host] [-p port] [-u id [-c command ...] "
	    "[-w seconds]]\n"
	    "            [-r name] [-P passfile] [-k seconds] [-t seconds]\n");
	exit(CHAT_EXIT_USAGE);
}

static int
number_arg(const char *s, long min, long max, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		(void)fprintf(stderr, "chat: %s must be a number from %ld to "
		    "%ld: %s\n", what, min, max, s);
		exit(CHAT_EXIT_USAGE);
	}
	return (int)v;
}

/* The password of -P: the file's first line, without its newline. */
static void
read_password_file(struct session *s, const char *path)
{
	char buf[PROTO_PASSWORD_MAX + 3];
	size_t n;
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL) {
		(void)fprintf(stderr, "chat: %s: %s\n", path, strerror(errno));
		exit(CHAT_EXIT_USAGE);
	}
	if (fgets(buf, sizeof(buf), fp) == NULL)
		buf[0] = '\0';
	(void)fclose(fp);
	n = strcspn(buf, "\r\n");
	if (n > PROTO_PASSWORD_MAX) {
		explicit_bzero(buf, sizeof(buf));
		(void)fprintf(stderr, "chat: %s: the password is longer than "
		    "%d bytes\n", path, PROTO_PASSWORD_MAX);
		exit(CHAT_EXIT_USAGE);
	}
	buf[n] = '\0';
	if (n == 0) {
		(void)fprintf(stderr, "chat: %s: the first line is empty\n",
		    path);
		exit(CHAT_EXIT_USAGE);
	}
	memcpy(s->given_password, buf, n + 1);
	explicit_bzero(buf, sizeof(buf));
	s->have_password = 1;
}

/* UTF-8 in and out whatever the environment says, since the protocol is
 * UTF-8: the user's locale if it is a UTF-8 one, else C.UTF-8. */
static void
set_locale(void)
{
	const char *cs;

	(void)setlocale(LC_ALL, "");
	cs = nl_langinfo(CODESET);
	if (cs != NULL && (strcmp(cs, "UTF-8") == 0 ||
	    strcmp(cs, "utf8") == 0))
		return;
	if (setlocale(LC_CTYPE, "C.UTF-8") == NULL)
		(void)setlocale(LC_CTYPE, "C.utf8");
}

static void
catch_signals(void)
{
	struct sigaction sa;

	if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) == -1)
		sig_pipe[0] = sig_pipe[1] = -1;	/* poll ignores fd -1 */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	(void)sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: poll must wake up to act on the flag. */
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGHUP, &sa, NULL);
	(void)sigaction(SIGWINCH, &sa, NULL);
}

/* -u without -c: log in at once, and fall back to the menu on failure. */
static void
auto_login(struct session *s, long long user)
{
	char pw[PROTO_PASSWORD_MAX + 2];
	int rc;

	s->pending_id = user;
	if ((rc = ask_password(s, pw, sizeof(pw), 0)) == 1)
		menu_login(s, pw);
	else if (rc == 0) {
		/* No terminal: the first line of input is the password. */
		s->state = ST_LOGIN_PW;
	} else
		sess_menu(s);
	explicit_bzero(pw, sizeof(pw));
}

/* -r: register and print the new id. */
static int
run_register(struct session *s, const char *name)
{
	char pw[PROTO_PASSWORD_MAX + 2];
	long long id;
	int rc;

	if ((rc = ask_password(s, pw, sizeof(pw), isatty(STDIN_FILENO))) == 0)
		rc = chat_tty_secret("", pw, sizeof(pw), NULL) == 0 ? 1 : -1;
	if (rc != 1 || *pw == '\0') {
		if (s->status == CHAT_EXIT_OK)
			fail(s, CHAT_EXIT_USAGE, "no password: use -P file, "
			    "CHAT_PASSWORD, or a line on stdin");
		return s->status;
	}
	id = sess_register(s, name, pw);
	explicit_bzero(pw, sizeof(pw));
	if (id > 0)
		say(s, "%lld", id);
	return s->status;
}

/* -u with -c or -w: log in, run the commands, wait, log out. */
static int
run_oneshot(struct session *s, long long id, char **cmds, int ncmds,
    int wait_ms)
{
	struct chat_cmd cmd[CHAT_MAX_COMMANDS];
	char err[256], pw[PROTO_PASSWORD_MAX + 2];
	int i, rc;

	/* Syntax first: a typo must not cost a login. */
	for (i = 0; i < ncmds; i++)
		if (chat_cmd_parse(cmds[i], &cmd[i], err, sizeof(err)) == -1) {
			fail(s, CHAT_EXIT_USAGE, "-c: %s", err);
			return s->status;
		}
	if ((rc = ask_password(s, pw, sizeof(pw), 0)) == 0)
		rc = chat_tty_secret("", pw, sizeof(pw), NULL) == 0 ? 1 : -1;
	if (rc != 1 || *pw == '\0') {
		if (s->status == CHAT_EXIT_OK)
			fail(s, CHAT_EXIT_USAGE, "no password: use -P file, "
			    "CHAT_PASSWORD, or a line on stdin");
		return s->status;
	}
	rc = sess_login(s, id, pw);
	explicit_bzero(pw, sizeof(pw));
	if (rc == -1)
		return s->status;
	for (i = 0; i < ncmds && s->c != NULL && s->state == ST_CHAT &&
	    !s->quit; i++) {
		(void)sess_drain(s);
		sess_exec(s, &cmd[i]);
	}
	if (s->c != NULL)
		(void)sess_drain(s);
	if (wait_ms > 0 && s->state == ST_CHAT)
		oneshot_wait(s, wait_ms);
	if (s->state == ST_CHAT && !s->quit)
		sess_logout(s, s->timeout_ms);
	return s->status;
}

int
main(int argc, char *argv[])
{
	struct session s;
	char *cmds[CHAT_MAX_COMMANDS];
	const char *env, *regname = NULL;
	long long user = 0;
	int ch, ncmds = 0, wait_s = 0, editing, status;

	memset(&s, 0, sizeof(s));
	s.host = CHAT_DEFAULT_HOST;
	s.port = CHAT_DEFAULT_PORT;
	s.timeout_ms = CHAT_TIMEOUT_S * 1000;
	s.ping_ms = CHAT_PING_S * 1000;
	chat_fmt_init(&s.out);

	while ((ch = getopt(argc, argv, "c:h:k:p:P:r:t:u:w:")) != -1) {
		switch (ch) {
		case 'c':
			if (ncmds == CHAT_MAX_COMMANDS) {
				(void)fprintf(stderr, "chat: at most %d -c "
				    "options\n", CHAT_MAX_COMMANDS);
				exit(CHAT_EXIT_USAGE);
			}
			cmds[ncmds++] = optarg;
			break;
		case 'h':
			s.host = optarg;
			break;
		case 'k':
			s.ping_ms = number_arg(optarg, 0, 3600,
			    "the keepalive interval (-k)") * 1000;
			break;
		case 'p':
			s.port = number_arg(optarg, 1, 65535, "the port (-p)");
			break;
		case 'P':
			read_password_file(&s, optarg);
			break;
		case 'r':
			regname = optarg;
			break;
		case 't':
			s.timeout_ms = number_arg(optarg, 1, 3600,
			    "the timeout (-t)") * 1000;
			break;
		case 'u':
			if (chat_cmd_parse_id(optarg, &user) == -1) {
				(void)fprintf(stderr, "chat: -u: not a user "
				    "id: %s\n", optarg);
				exit(CHAT_EXIT_USAGE);
			}
			break;
		case 'w':
			wait_s = number_arg(optarg, 0, CHAT_WAIT_MAX_S,
			    "the wait (-w)");
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if ((ncmds > 0 || wait_s > 0) && user == 0) {
		(void)fprintf(stderr, "chat: -c and -w need -u id\n");
		exit(CHAT_EXIT_USAGE);
	}
	if (regname != NULL && (user != 0 || ncmds > 0)) {
		(void)fprintf(stderr, "chat: -r does not go with -u or -c\n");
		exit(CHAT_EXIT_USAGE);
	}
	if (!s.have_password && (env = getenv("CHAT_PASSWORD")) != NULL &&
	    *env != '\0') {
		if (strlen(env) > PROTO_PASSWORD_MAX) {
			(void)fprintf(stderr, "chat: CHAT_PASSWORD is longer "
			    "than %d bytes\n", PROTO_PASSWORD_MAX);
			exit(CHAT_EXIT_USAGE);
		}
		(void)snprintf(s.given_password, sizeof(s.given_password),
		    "%s", env);
		s.have_password = 1;
	}
	set_locale();

	if (regname != NULL || ncmds > 0 || wait_s > 0) {
		s.oneshot = 1;
		chat_tty_init(0, sess_line, &s);
		if (regname != NULL)
			status = run_register(&s, regname);
		else
			status = run_oneshot(&s, user, cmds, ncmds,
			    wait_s * 1000);
		goto out;
	}

	editing = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	catch_signals();
	chat_tty_init(editing, sess_line, &s);
	/* Connect now, so a wrong address is reported before anything is
	 * typed. */
	if (sess_connect(&s) == -1) {
		status = s.status;
		goto out;
	}
	if (user != 0)
		auto_login(&s, user);
	else
		sess_menu(&s);
	interactive_loop(&s);
	/* Interactive, errors were shown as they happened; leaving is
	 * success. */
	status = CHAT_EXIT_OK;
out:
	chat_tty_close();
	chatc_close(s.c);
	names_free(&s.users);
	names_free(&s.groups);
	free(s.seen);
	chat_fmt_free(&s.out);
	explicit_bzero(s.password, sizeof(s.password));
	explicit_bzero(s.given_password, sizeof(s.given_password));
	return status;
}
