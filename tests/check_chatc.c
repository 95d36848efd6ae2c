/*
 * check_chatc.c - unit tests of the client library (client/chatc.c) and
 * of proto_strerror().
 *
 * The reader is tested on its own.  The connection logic is tested against
 * a scripted fake server: a listening socket on 127.0.0.1 port 0 and a
 * forked child that accepts one connection, runs a script over it (reading
 * what the library sent, checking it, answering), then drains until the
 * client closes.  It is not chatd; the integration tests cover the server.
 * A script that finds something wrong exits non-zero, which the test
 * asserts on after closing its side.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>

#include <arpa/inet.h>

#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chatc.h"

#define T	2000		/* ms: generous timeout for calls that succeed */

/* --- reader ---------------------------------------------------------- */

/* Take every complete line out of r and check it against want[*k...]. */
static void
drain_expect(struct chatc_reader *r, char **want, int nwant, int *k)
{
	const char *line;
	size_t len;

	while (chatc_reader_next(r, &line, &len)) {
		ck_assert_int_lt(*k, nwant);
		ck_assert_uint_eq(len, strlen(want[*k]));
		ck_assert_int_eq(line[len], '\0');
		ck_assert_mem_eq(line, want[*k], len);
		(*k)++;
	}
}

START_TEST(test_reader_whole)
{
	struct chatc_reader r;
	const char *line;
	size_t len;
	const char *s = "{\"a\":1}\n{\"b\":2}\n\n{\"c\":3}";

	chatc_reader_init(&r, 100);
	ck_assert_int_eq(chatc_reader_next(&r, &line, &len), 0);
	ck_assert_int_eq(chatc_reader_feed(&r, s, strlen(s)), 0);
	ck_assert_int_eq(chatc_reader_next(&r, &line, &len), 1);
	ck_assert_str_eq(line, "{\"a\":1}");
	ck_assert_uint_eq(len, 7);
	ck_assert_int_eq(chatc_reader_next(&r, &line, &len), 1);
	ck_assert_str_eq(line, "{\"b\":2}");
	/* An empty line is a line; the server never sends one, the
	 * connection layer rejects it as invalid JSON. */
	ck_assert_int_eq(chatc_reader_next(&r, &line, &len), 1);
	ck_assert_uint_eq(len, 0);
	ck_assert_str_eq(line, "");
	ck_assert_int_eq(chatc_reader_next(&r, &line, &len), 0);
	ck_assert_int_eq(chatc_reader_feed(&r, "\n", 1), 0);
	ck_assert_int_eq(chatc_reader_next(&r, &line, &len), 1);
	ck_assert_str_eq(line, "{\"c\":3}");
	ck_assert_int_eq(chatc_reader_next(&r, &line, &len), 0);
	ck_assert_int_eq(chatc_reader_feed(&r, NULL, 0), 0);
	chatc_reader_free(&r);
	/* A freed reader is empty and usable again. */
	ck_assert_uint_eq(r.max_line, 100);
	ck_assert_int_eq(chatc_reader_feed(&r, "x\n", 2), 0);
	ck_assert_int_eq(chatc_reader_next(&r, &line, &len), 1);
	ck_assert_str_eq(line, "x");
	chatc_reader_free(&r);
}
END_TEST

START_TEST(test_reader_multi)
{
	char *want[] = { "{\"msgid\":6,\"msg\":\"one\"}", "{\"msgid\":19}",
	    "{}", "{\"msgid\":12,\"seq\":3}", "{\"x\":[1,2,3]}" };
	char stream[256] = "";
	struct chatc_reader r;
	size_t i;
	int k = 0;

	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		strcat(stream, want[i]);
		strcat(stream, "\n");
	}
	chatc_reader_init(&r, 64);
	ck_assert_int_eq(chatc_reader_feed(&r, stream, strlen(stream)), 0);
	drain_expect(&r, want, 5, &k);
	ck_assert_int_eq(k, 5);
	chatc_reader_free(&r);
}
END_TEST

START_TEST(test_reader_bytewise)
{
	char *want[] = { "{\"msgid\":1}", "", "{\"msg\":\"a b c\"}",
	    "{\"msgid\":10,\"msg\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}" };
	char stream[256] = "";
	struct chatc_reader r;
	size_t i, n;
	int k = 0;

	for (i = 0; i < 4; i++) {
		strcat(stream, want[i]);
		strcat(stream, "\n");
	}
	n = strlen(stream);
	chatc_reader_init(&r, 64);
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(chatc_reader_feed(&r, stream + i, 1), 0);
		drain_expect(&r, want, 4, &k);
	}
	ck_assert_int_eq(k, 4);
	chatc_reader_free(&r);
}
END_TEST

/* A small deterministic generator, so a failure reproduces. */
static uint32_t
lcg(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return (*s >> 8) & 0xffffff;
}

START_TEST(test_reader_random)
{
	enum { NLINES = 2000, MAXLEN = 300 };
	char **want, *stream;
	struct chatc_reader r;
	size_t total = 0, pos, chunk, len;
	uint32_t seed = 20240601u;
	int i, k = 0;
	size_t j;

	want = calloc(NLINES, sizeof(*want));
	stream = malloc((size_t)NLINES * (MAXLEN + 1));
	ck_assert_ptr_nonnull(want);
	ck_assert_ptr_nonnull(stream);
	for (i = 0; i < NLINES; i++) {
		/* Now and then a line of exactly the limit. */
		len = lcg(&seed) % 8 == 0 ? MAXLEN : lcg(&seed) % (MAXLEN + 1);
		want[i] = malloc(len + 1);
		ck_assert_ptr_nonnull(want[i]);
		for (j = 0; j < len; j++)
			want[i][j] = (char)(' ' + lcg(&seed) % 95);
		want[i][len] = '\0';
		memcpy(stream + total, want[i], len);
		total += len;
		stream[total++] = '\n';
	}

	chatc_reader_init(&r, MAXLEN);
	for (pos = 0; pos < total; pos += chunk) {
		chunk = 1 + lcg(&seed) % (2 * MAXLEN + 100);
		if (chunk > total - pos)
			chunk = total - pos;
		ck_assert_int_eq(chatc_reader_feed(&r, stream + pos, chunk), 0);
		/* Sometimes let lines pile up before taking them. */
		if (lcg(&seed) % 3 != 0)
			drain_expect(&r, want, NLINES, &k);
	}
	drain_expect(&r, want, NLINES, &k);
	ck_assert_int_eq(k, NLINES);

	chatc_reader_free(&r);
	for (i = 0; i < NLINES; i++)
		free(want[i]);
	free(want);
	free(stream);
}
END_TEST

START_TEST(test_reader_compacts)
{
	struct chatc_reader r;
	const char *line;
	char buf[64];
	size_t len;
	int i;

	/* Lines straddling feeds, always taken: the buffer must not grow
	 * past its first allocation, whatever the traffic. */
	chatc_reader_init(&r, 100);
	for (i = 0; i < 20000; i++) {
		(void)snprintf(buf, sizeof(buf), "{\"n\":%08d}\n", i);
		ck_assert_int_eq(chatc_reader_feed(&r, buf, 5), 0);
		ck_assert_int_eq(chatc_reader_feed(&r, buf + 5,
		    strlen(buf) - 5), 0);
		ck_assert_int_eq(chatc_reader_next(&r, &line, &len), 1);
		buf[strlen(buf) - 1] = '\0';
		ck_assert_str_eq(line, buf);
	}
	ck_assert_uint_le(r.cap, 4096);
	chatc_reader_free(&r);
}
END_TEST

START_TEST(test_reader_toolong)
{
	struct chatc_reader r;
	const char *line;
	size_t len;

	chatc_reader_init(&r, 10);
	/* Exactly max_line bytes is fine. */
	ck_assert_int_eq(chatc_reader_feed(&r, "0123456789\n", 11), 0);
	ck_assert_int_eq(chatc_reader_next(&r, &line, &len), 1);
	ck_assert_uint_eq(len, 10);

	/* One more, even without the newline yet, is refused. */
	errno = 0;
	ck_assert_int_eq(chatc_reader_feed(&r, "0123456789A", 11), -1);
	ck_assert_int_eq(errno, EMSGSIZE);
	ck_assert_int_eq(chatc_reader_next(&r, &line, &len), 0);

	/* Across feeds: the pending part counts. */
	ck_assert_int_eq(chatc_reader_feed(&r, "01234", 5), 0);
	ck_assert_int_eq(chatc_reader_feed(&r, "56789", 5), 0);
	ck_assert_int_eq(chatc_reader_feed(&r, "A", 1), -1);
	/* The refused feed appended nothing: the line can still end. */
	ck_assert_int_eq(chatc_reader_feed(&r, "\n", 1), 0);
	ck_assert_int_eq(chatc_reader_next(&r, &line, &len), 1);
	ck_assert_str_eq(line, "0123456789");

	/* A long complete line inside one feed, after a good one. */
	ck_assert_int_eq(chatc_reader_feed(&r, "ok\n0123456789AB\nz\n", 18),
	    -1);
	ck_assert_int_eq(chatc_reader_next(&r, &line, &len), 0);

	/* An unterminated tail extended past the limit by a later feed
	 * that also carries complete lines. */
	ck_assert_int_eq(chatc_reader_feed(&r, "abcdefgh", 8), 0);
	ck_assert_int_eq(chatc_reader_feed(&r, "ijk\nz\n", 6), -1);
	ck_assert_int_eq(chatc_reader_feed(&r, "ij\nz\n", 5), 0);
	ck_assert_int_eq(chatc_reader_next(&r, &line, &len), 1);
	ck_assert_str_eq(line, "abcdefghij");
	ck_assert_int_eq(chatc_reader_next(&r, &line, &len), 1);
	ck_assert_str_eq(line, "z");
	ck_assert_int_eq(chatc_reader_next(&r, &line, &len), 0);
	chatc_reader_free(&r);
}
END_TEST

START_TEST(test_reader_escaped_newline)
{
	/* "\n" inside a JSON string is a backslash and an 'n' on the wire:
	 * it must not split the line. */
	const char *s = "{\"msgid\":6,\"msg\":\"a\\nb\\\\n\",\"k\":\"\\n\"}\n"
	    "{\"msgid\":19}\n";
	struct chatc_reader r;
	const char *line;
	size_t len, i;
	cJSON *obj;
	int round;

	for (round = 0; round < 2; round++) {
		chatc_reader_init(&r, 1024);
		if (round == 0)
			ck_assert_int_eq(chatc_reader_feed(&r, s, strlen(s)),
			    0);
		else
			for (i = 0; i < strlen(s); i++)
				ck_assert_int_eq(chatc_reader_feed(&r, s + i,
				    1), 0);
		ck_assert_int_eq(chatc_reader_next(&r, &line, &len), 1);
		ck_assert_uint_eq(len, strchr(s, '\n') - s);
		obj = cJSON_ParseWithLength(line, len);
		ck_assert_ptr_nonnull(obj);
		ck_assert_str_eq(cJSON_GetObjectItem(obj, "msg")->valuestring,
		    "a\nb\\n");
		ck_assert_str_eq(cJSON_GetObjectItem(obj, "k")->valuestring,
		    "\n");
		cJSON_Delete(obj);
		ck_assert_int_eq(chatc_reader_next(&r, &line, &len), 1);
		ck_assert_str_eq(line, "{\"msgid\":19}");
		ck_assert_int_eq(chatc_reader_next(&r, &line, &len), 0);
		chatc_reader_free(&r);
	}
}
END_TEST

/* --- proto_strerror and reply accessors ------------------------------- */

START_TEST(test_proto_strerror)
{
	ck_assert_str_eq(proto_strerror(CERR_OK), "ok");
	ck_assert_str_eq(proto_strerror(CERR_AUTH), "wrong id or password");
	ck_assert_str_eq(proto_strerror(CERR_NOT_LOGGED_IN), "not logged in");
	ck_assert_str_eq(proto_strerror(CERR_BAD_JSON), "invalid JSON");
	ck_assert_str_eq(proto_strerror(CERR_UNAVAILABLE),
	    "service unavailable");
	ck_assert_str_eq(proto_strerror(CERR_ALREADY_LOGGED_IN),
	    "already logged in on this connection");
	ck_assert_str_eq(proto_strerror(-1), "unknown error");
	ck_assert_str_eq(proto_strerror(CERR_MAX + 1), "unknown error");
}
END_TEST

START_TEST(test_errno_errmsg)
{
	cJSON *ok, *bad, *odd;

	ok = cJSON_Parse("{\"msgid\":12,\"seq\":1}");
	bad = cJSON_Parse("{\"msgid\":11,\"errno\":7,"
	    "\"errmsg\":\"no such group\"}");
	odd = cJSON_Parse("{\"msgid\":12,\"errno\":\"0\",\"errmsg\":3}");
	ck_assert_int_eq(chatc_errno(ok), 0);
	ck_assert_str_eq(chatc_errmsg(ok), "");
	ck_assert_int_eq(chatc_errno(bad), CERR_NO_GROUP);
	ck_assert_str_eq(chatc_errmsg(bad), "no such group");
	/* Neither a missing reply nor a malformed errno reads as success. */
	ck_assert_int_eq(chatc_errno(NULL), -1);
	ck_assert_int_eq(chatc_errno(odd), -1);
	ck_assert_str_eq(chatc_errmsg(odd), "");
	ck_assert_str_eq(chatc_errmsg(NULL), "");
	cJSON_Delete(ok);
	cJSON_Delete(bad);
	cJSON_Delete(odd);
}
END_TEST

/* --- the fake server (runs in a forked child) ------------------------ */

static void	srv_die(const char *, ...)
		    __attribute__((format(printf, 1, 2), noreturn));

static void
srv_die(const char *fmt, ...)
{
	va_list ap;

	(void)fprintf(stderr, "fake server: ");
	va_start(ap, fmt);
	(void)vfprintf(stderr, fmt, ap);
	va_end(ap);
	(void)fprintf(stderr, "\n");
	_exit(2);
}

static void
srv_send_len(int fd, const char *s, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, s, len, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			srv_die("send: %s", strerror(errno));
		s += n;
		len -= (size_t)n;
	}
}

static void
srv_send(int fd, const char *s)
{
	srv_send_len(fd, s, strlen(s));
}

/* Exactly len bytes. */
static void
srv_read(int fd, char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = read(fd, buf, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			srv_die("read: %s", n == 0 ? "EOF" : strerror(errno));
		buf += n;
		len -= (size_t)n;
	}
}

/* One '\n'-terminated line, without the '\n'. */
static size_t
srv_line(int fd, char *buf, size_t size)
{
	size_t len = 0;

	for (;;) {
		if (len + 1 >= size)
			srv_die("line too long");
		srv_read(fd, buf + len, 1);
		if (buf[len] == '\n')
			break;
		len++;
	}
	buf[len] = '\0';
	return len;
}

static cJSON *
srv_recv(int fd)
{
	char line[4096];
	cJSON *obj;

	(void)srv_line(fd, line, sizeof(line));
	if ((obj = cJSON_Parse(line)) == NULL || !cJSON_IsObject(obj))
		srv_die("not a JSON object: %s", line);
	return obj;
}

static double
srv_num(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!cJSON_IsNumber(v))
		srv_die("no number \"%s\"", key);
	return v->valuedouble;
}

/* Read a request, check its msgid and seq. */
static cJSON *
srv_expect(int fd, int msgid, int seq)
{
	cJSON *req = srv_recv(fd);

	if (srv_num(req, "msgid") != msgid)
		srv_die("msgid %g, want %d", srv_num(req, "msgid"), msgid);
	if (srv_num(req, "seq") != seq)
		srv_die("seq %g, want %d", srv_num(req, "seq"), seq);
	return req;
}

static void
srv_reply(int fd, int msgid, int refmsgid, int seq)
{
	char buf[128];

	(void)snprintf(buf, sizeof(buf),
	    "{\"msgid\":%d,\"refmsgid\":%d,\"seq\":%d,\"errno\":0}\n",
	    msgid, refmsgid, seq);
	srv_send(fd, buf);
}

static void
srv_drain(int fd)
{
	char buf[4096];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) != 0)
		if (n == -1 && errno != EINTR)
			break;
}

struct fake {
	pid_t pid;
	int port;
};

typedef void (*script_fn)(int);

static void
fake_start(struct fake *f, script_fn script)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	int lfd, fd;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ne(lfd, -1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sin, &slen), 0);
	f->port = ntohs(sin.sin_port);
	f->pid = fork();
	ck_assert_int_ne(f->pid, -1);
	if (f->pid == 0) {
		/* Never outlive a test that went wrong. */
		(void)alarm(10);
		if ((fd = accept(lfd, NULL, NULL)) == -1)
			srv_die("accept: %s", strerror(errno));
		(void)close(lfd);
		script(fd);
		srv_drain(fd);
		_exit(0);
	}
	(void)close(lfd);
}

/* The script's exit status once the client side is closed. */
static int
fake_wait(struct fake *f)
{
	int status;

	while (waitpid(f->pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

static struct chatc *
fake_connect(struct fake *f, script_fn script, const char *host)
{
	struct chatc *c;
	char err[256];

	fake_start(f, script);
	c = chatc_connect(host, f->port, T, err, sizeof(err));
	ck_assert_msg(c != NULL, "chatc_connect: %s", err);
	ck_assert_int_ge(chatc_fd(c), 0);
	return c;
}

static void
fake_finish(struct fake *f, struct chatc *c)
{
	chatc_close(c);
	ck_assert_int_eq(fake_wait(f), 0);
}

static int
msgid_of(const cJSON *m)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, "msgid");

	ck_assert(cJSON_IsNumber(v));
	return v->valueint;
}

static const char *
str_of(const cJSON *m, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);

	ck_assert_msg(cJSON_IsString(v), "no string \"%s\"", key);
	return v->valuestring;
}

static double
num_of(const cJSON *m, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);

	ck_assert_msg(cJSON_IsNumber(v), "no number \"%s\"", key);
	return v->valuedouble;
}

/* Receive one message and check its msgid; returns it for more checks. */
static cJSON *
recv_msgid(struct chatc *c, int msgid)
{
	cJSON *m = chatc_recv(c, T);

	ck_assert_msg(m != NULL, "chatc_recv: %s", chatc_error(c));
	ck_assert_int_eq(msgid_of(m), msgid);
	return m;
}

static int64_t
mono_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- connection tests ------------------------------------------------ */

static void
script_order(int fd)
{
	cJSON *req = srv_expect(fd, MSG_PING, 1);

	cJSON_Delete(req);
	srv_send(fd, "{\"msgid\":6,\"id\":2,\"name\":\"bob\",\"msg\":\"first\"}\n");
	/* A stale reply, and a chat that merely carries the same seq. */
	srv_send(fd, "{\"msgid\":12,\"refmsgid\":18,\"seq\":99,\"errno\":0}\n");
	srv_send(fd, "{\"msgid\":6,\"seq\":1,\"msg\":\"same seq\"}\n");
	/* Two in one segment. */
	srv_send(fd, "{\"msgid\":19,\"id\":2,\"state\":\"online\"}\n"
	    "{\"msgid\":11,\"errno\":12,\"errmsg\":\"rate limited\"}\n");
	/* The reply itself, split across segments. */
	srv_send(fd, "{\"msgid\":12,\"refm");
	(void)usleep(20000);
	srv_send(fd, "sgid\":18,\"seq\":1,\"errno\":0}");
	(void)usleep(20000);
	srv_send(fd, "\n");
}

START_TEST(test_request_queues_others)
{
	struct fake f;
	struct chatc *c;
	cJSON *r;

	c = fake_connect(&f, script_order, "127.0.0.1");
	ck_assert_int_eq(chatc_next_seq(c), 1);
	r = chatc_ping(c, T);
	ck_assert_msg(r != NULL, "chatc_ping: %s", chatc_error(c));
	ck_assert_int_eq(msgid_of(r), MSG_ACK);
	ck_assert_int_eq(num_of(r, "seq"), 1);
	ck_assert_int_eq(num_of(r, "refmsgid"), MSG_PING);
	ck_assert_int_eq(chatc_errno(r), 0);
	cJSON_Delete(r);
	ck_assert_int_eq(chatc_next_seq(c), 2);

	/* Everything set aside comes back in arrival order. */
	r = recv_msgid(c, MSG_ONE_CHAT);
	ck_assert_str_eq(str_of(r, "msg"), "first");
	cJSON_Delete(r);
	r = recv_msgid(c, MSG_ACK);
	ck_assert_int_eq(num_of(r, "seq"), 99);
	cJSON_Delete(r);
	r = recv_msgid(c, MSG_ONE_CHAT);
	ck_assert_str_eq(str_of(r, "msg"), "same seq");
	cJSON_Delete(r);
	r = recv_msgid(c, MSG_PRESENCE);
	ck_assert_str_eq(str_of(r, "state"), "online");
	cJSON_Delete(r);
	r = recv_msgid(c, MSG_ERROR);
	ck_assert_int_eq(chatc_errno(r), CERR_RATE);
	ck_assert_str_eq(chatc_errmsg(r), proto_strerror(CERR_RATE));
	cJSON_Delete(r);

	ck_assert_ptr_null(chatc_recv(c, 50));
	ck_assert_str_eq(chatc_error(c), "timeout");
	ck_assert_ptr_null(chatc_poll(c));
	fake_finish(&f, c);
}
END_TEST

static void
script_late(int fd)
{
	cJSON_Delete(srv_expect(fd, MSG_PING, 1));
	/* Answer the first ping only once the second has come, i.e. after
	 * the client gave up on it. */
	cJSON_Delete(srv_expect(fd, MSG_PING, 2));
	srv_reply(fd, MSG_ACK, MSG_PING, 1);
	srv_reply(fd, MSG_ACK, MSG_PING, 2);
}

START_TEST(test_request_timeout)
{
	struct fake f;
	struct chatc *c;
	int64_t t0, dt;
	cJSON *r;

	c = fake_connect(&f, script_late, "127.0.0.1");
	t0 = mono_ms();
	ck_assert_ptr_null(chatc_ping(c, 100));
	dt = mono_ms() - t0;
	ck_assert_str_eq(chatc_error(c), "timeout");
	ck_assert_int_ge(dt, 100);
	ck_assert_int_lt(dt, 1000);
	ck_assert_int_eq(chatc_next_seq(c), 2);

	r = chatc_ping(c, T);
	ck_assert_msg(r != NULL, "chatc_ping: %s", chatc_error(c));
	ck_assert_int_eq(num_of(r, "seq"), 2);
	cJSON_Delete(r);
	/* The late reply was set aside, not mistaken for the second. */
	r = recv_msgid(c, MSG_ACK);
	ck_assert_int_eq(num_of(r, "seq"), 1);
	cJSON_Delete(r);
	fake_finish(&f, c);
}
END_TEST

static void
script_close(int fd)
{
	srv_send(fd, "{\"msgid\":19,\"id\":5,\"state\":\"offline\"}\n");
	cJSON_Delete(srv_expect(fd, MSG_PING, 1));
	(void)shutdown(fd, SHUT_WR);
}

START_TEST(test_server_closes)
{
	struct fake f;
	struct chatc *c;
	cJSON *r;

	c = fake_connect(&f, script_close, "127.0.0.1");
	ck_assert_ptr_null(chatc_ping(c, T));
	ck_assert_str_eq(chatc_error(c), "connection closed by server");
	/* What came before the close is still delivered, then the close
	 * again. */
	r = recv_msgid(c, MSG_PRESENCE);
	cJSON_Delete(r);
	ck_assert_ptr_null(chatc_recv(c, T));
	ck_assert_str_eq(chatc_error(c), "connection closed by server");
	ck_assert_ptr_null(chatc_wait_msgid(c, MSG_ONE_CHAT, T));
	ck_assert_str_eq(chatc_error(c), "connection closed by server");
	fake_finish(&f, c);
}
END_TEST

static void
script_error_reply(int fd)
{
	cJSON_Delete(srv_expect(fd, MSG_FRIEND_LIST, 1));
	srv_send(fd, "{\"msgid\":11,\"errno\":4,\"errmsg\":\"not logged in\","
	    "\"seq\":1,\"refmsgid\":15}\n");
}

START_TEST(test_error_reply)
{
	struct fake f;
	struct chatc *c;
	cJSON *r;

	c = fake_connect(&f, script_error_reply, "127.0.0.1");
	r = chatc_friend_list(c, T);
	ck_assert_msg(r != NULL, "chatc_friend_list: %s", chatc_error(c));
	ck_assert_int_eq(msgid_of(r), MSG_ERROR);
	ck_assert_int_eq(chatc_errno(r), CERR_NOT_LOGGED_IN);
	ck_assert_str_eq(chatc_errmsg(r), "not logged in");
	ck_assert_str_eq(chatc_errmsg(r), proto_strerror(chatc_errno(r)));
	cJSON_Delete(r);
	fake_finish(&f, c);
}
END_TEST

/*
 * What each typed helper must send, in the order the test calls them:
 * the request without "seq" (checked separately) and "time" (checked for
 * its format when timed is set), and the reply's msgid.
 */
static const struct helper_case {
	int msgid;
	int reply;
	int timed;
	const char *req;
} helper_cases[] = {
	{ MSG_REG, MSG_REG_ACK, 0,
	    "{\"msgid\":4,\"name\":\"alice\",\"password\":\"pw 1\"}" },
	{ MSG_LOGIN, MSG_LOGIN_ACK, 0,
	    "{\"msgid\":1,\"id\":42,\"password\":\"pw 1\"}" },
	{ MSG_PING, MSG_ACK, 0, "{\"msgid\":18}" },
	{ MSG_ONE_CHAT, MSG_ACK, 1,
	    "{\"msgid\":6,\"toid\":7,\"msg\":\"hi \\\"you\\\"\\n\"}" },
	{ MSG_ADD_FRIEND, MSG_ACK, 0, "{\"msgid\":7,\"friendid\":7}" },
	{ MSG_DEL_FRIEND, MSG_ACK, 0, "{\"msgid\":13,\"friendid\":8}" },
	{ MSG_FRIEND_LIST, MSG_ACK, 0, "{\"msgid\":15}" },
	{ MSG_CREATE_GROUP, MSG_ACK, 0,
	    "{\"msgid\":8,\"groupname\":\"g1\",\"groupdesc\":\"the g\"}" },
	{ MSG_ADD_GROUP, MSG_ACK, 0, "{\"msgid\":9,\"groupid\":3}" },
	{ MSG_QUIT_GROUP, MSG_ACK, 0, "{\"msgid\":14,\"groupid\":4}" },
	{ MSG_GROUP_LIST, MSG_ACK, 0, "{\"msgid\":16}" },
	{ MSG_GROUP_MEMBERS, MSG_ACK, 0, "{\"msgid\":17,\"groupid\":5}" },
	{ MSG_GROUP_CHAT, MSG_ACK, 1,
	    "{\"msgid\":10,\"groupid\":6,\"msg\":\"\\u00e9t\\u00e9\"}" },
	{ MSG_LOGINOUT, MSG_ACK, 0, "{\"msgid\":3}" },
};
#define NHELPER_CASES	(int)(sizeof(helper_cases) / sizeof(helper_cases[0]))

/* "YYYY-MM-DD HH:MM:SS" in local time, within a few seconds of now. */
static void
srv_check_time(const char *s)
{
	struct tm tm;
	time_t t;
	char tail;
	int i;

	for (i = 0; i < 19; i++) {
		if (i == 4 || i == 7) {
			if (s[i] != '-')
				break;
		} else if (i == 10) {
			if (s[i] != ' ')
				break;
		} else if (i == 13 || i == 16) {
			if (s[i] != ':')
				break;
		} else if (s[i] < '0' || s[i] > '9')
			break;
	}
	if (i != 19 || s[19] != '\0')
		srv_die("bad time \"%s\"", s);
	memset(&tm, 0, sizeof(tm));
	if (sscanf(s, "%d-%d-%d %d:%d:%d%c", &tm.tm_year, &tm.tm_mon,
	    &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &tail) != 6)
		srv_die("bad time \"%s\"", s);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	tm.tm_isdst = -1;
	t = mktime(&tm);
	if (t == (time_t)-1 || t < time(NULL) - 5 || t > time(NULL) + 5)
		srv_die("time \"%s\" is not local now", s);
}

static void
script_helpers(int fd)
{
	const struct helper_case *hc;
	cJSON *req, *want, *v;
	char *got;
	int i;

	for (i = 0; i < NHELPER_CASES; i++) {
		hc = &helper_cases[i];
		req = srv_expect(fd, hc->msgid, i + 1);
		cJSON_DeleteItemFromObjectCaseSensitive(req, "seq");
		if (hc->timed) {
			v = cJSON_GetObjectItemCaseSensitive(req, "time");
			if (!cJSON_IsString(v))
				srv_die("msgid %d: no time", hc->msgid);
			srv_check_time(v->valuestring);
			cJSON_DeleteItemFromObjectCaseSensitive(req, "time");
		}
		/* Exactly these fields: nothing missing, nothing extra. */
		if ((want = cJSON_Parse(hc->req)) == NULL)
			srv_die("bad test case %d", i);
		if (!cJSON_Compare(req, want, 1)) {
			got = cJSON_PrintUnformatted(req);
			srv_die("case %d: sent %s, want %s", i, got, hc->req);
		}
		cJSON_Delete(want);
		cJSON_Delete(req);
		srv_reply(fd, hc->reply, hc->msgid, i + 1);
	}
}

static void
check_helper_reply(struct chatc *c, cJSON *r, int i)
{
	ck_assert_msg(r != NULL, "case %d: %s", i, chatc_error(c));
	ck_assert_int_eq(msgid_of(r), helper_cases[i].reply);
	ck_assert_int_eq(num_of(r, "refmsgid"), helper_cases[i].msgid);
	ck_assert_int_eq(num_of(r, "seq"), i + 1);
	ck_assert_int_eq(chatc_errno(r), 0);
	cJSON_Delete(r);
}

START_TEST(test_typed_helpers)
{
	struct fake f;
	struct chatc *c;
	int i = 0;

	/* By name, to go through getaddrinfo (the fake listens on IPv4). */
	c = fake_connect(&f, script_helpers, "localhost");
	check_helper_reply(c, chatc_register(c, "alice", "pw 1", T), i++);
	check_helper_reply(c, chatc_login(c, 42, "pw 1", T), i++);
	check_helper_reply(c, chatc_ping(c, T), i++);
	check_helper_reply(c, chatc_one_chat(c, 7, "hi \"you\"\n", T), i++);
	check_helper_reply(c, chatc_add_friend(c, 7, T), i++);
	check_helper_reply(c, chatc_del_friend(c, 8, T), i++);
	check_helper_reply(c, chatc_friend_list(c, T), i++);
	check_helper_reply(c, chatc_create_group(c, "g1", "the g", T), i++);
	check_helper_reply(c, chatc_add_group(c, 3, T), i++);
	check_helper_reply(c, chatc_quit_group(c, 4, T), i++);
	check_helper_reply(c, chatc_group_list(c, T), i++);
	check_helper_reply(c, chatc_group_members(c, 5, T), i++);
	check_helper_reply(c, chatc_group_chat(c, 6, "\xc3\xa9t\xc3\xa9", T),
	    i++);
	check_helper_reply(c, chatc_logout(c, T), i++);
	ck_assert_int_eq(i, NHELPER_CASES);
	ck_assert_int_eq(chatc_next_seq(c), NHELPER_CASES + 1);

	/* A NULL argument fails before anything is sent. */
	ck_assert_ptr_null(chatc_register(c, NULL, "pw", T));
	ck_assert_ptr_nonnull(strstr(chatc_error(c), "NULL argument"));
	ck_assert_int_eq(chatc_next_seq(c), NHELPER_CASES + 1);
	fake_finish(&f, c);
}
END_TEST

static void
script_raw(int fd)
{
	char buf[128];
	cJSON *req, *want;

	srv_read(fd, buf, 13);
	if (memcmp(buf, "{\"msgid\":18}\0", 13) != 0)
		srv_die("raw bytes differ");
	(void)srv_line(fd, buf, sizeof(buf));
	if (strcmp(buf, "{\"msgid\":18,\"x\":\"a b\"}") != 0)
		srv_die("chatc_send sent %s", buf);
	/* chatc_request replaced the caller's seq with its own. */
	req = srv_recv(fd);
	want = cJSON_Parse("{\"msgid\":18,\"x\":1,\"seq\":1}");
	if (!cJSON_Compare(req, want, 1))
		srv_die("request differs");
	cJSON_Delete(req);
	cJSON_Delete(want);
	srv_reply(fd, MSG_ACK, MSG_PING, 1);
}

START_TEST(test_send_exact)
{
	struct fake f;
	struct chatc *c;
	cJSON *obj, *r;

	c = fake_connect(&f, script_raw, "127.0.0.1");
	ck_assert_int_eq(chatc_send_raw(c, "{\"msgid\":18}\0", 13), 0);
	obj = cJSON_Parse("{\"msgid\": 18, \"x\": \"a b\"}");
	ck_assert_int_eq(chatc_send(c, obj), 0);
	cJSON_Delete(obj);
	obj = cJSON_Parse("{\"msgid\":18,\"seq\":\"mine\",\"x\":1}");
	r = chatc_request(c, obj, T);
	ck_assert_msg(r != NULL, "chatc_request: %s", chatc_error(c));
	ck_assert_int_eq(num_of(r, "seq"), 1);
	cJSON_Delete(r);
	/* The caller still owns req, now with the seq that was sent. */
	ck_assert_int_eq(num_of(obj, "seq"), 1);
	cJSON_Delete(obj);
	fake_finish(&f, c);
}
END_TEST

static void
script_bad_json(int fd)
{
	srv_send(fd, "not json\n");
	srv_send(fd, "{\"a\":1} {\"b\":2}\n");
	srv_send(fd, "[1,2]\n");
	srv_send(fd, "\n");
	srv_send(fd, "{\"msgid\":19,\"note\":\"line\\nbreak\"} \r\n");
}

START_TEST(test_invalid_json)
{
	struct fake f;
	struct chatc *c;
	cJSON *r;
	int i;

	c = fake_connect(&f, script_bad_json, "127.0.0.1");
	for (i = 0; i < 4; i++) {
		ck_assert_ptr_null(chatc_recv(c, T));
		ck_assert_str_eq(chatc_error(c), "invalid JSON from server");
	}
	/* A bad line costs only itself. */
	r = recv_msgid(c, MSG_PRESENCE);
	ck_assert_str_eq(str_of(r, "note"), "line\nbreak");
	cJSON_Delete(r);
	ck_assert_ptr_null(chatc_recv(c, 20));
	ck_assert_str_eq(chatc_error(c), "timeout");
	fake_finish(&f, c);
}
END_TEST

static void
script_wait(int fd)
{
	cJSON_Delete(srv_expect(fd, MSG_PING, 1));
	srv_send(fd, "{\"msgid\":10,\"groupid\":1,\"msg\":\"g-a\"}\n");
	srv_send(fd, "{\"msgid\":6,\"msg\":\"c-a\"}\n");
	srv_reply(fd, MSG_ACK, MSG_PING, 1);
	srv_send(fd, "{\"msgid\":19,\"id\":3,\"state\":\"online\"}\n");
	srv_send(fd, "{\"msgid\":6,\"msg\":\"c-b\"}\n");
	srv_send(fd, "{\"msgid\":10,\"groupid\":1,\"msg\":\"g-b\"}\n");
}

START_TEST(test_wait_msgid)
{
	struct fake f;
	struct chatc *c;
	cJSON *r;

	c = fake_connect(&f, script_wait, "127.0.0.1");
	r = chatc_ping(c, T);
	ck_assert_msg(r != NULL, "chatc_ping: %s", chatc_error(c));
	cJSON_Delete(r);
	/* From the queue, leaving the others in order. */
	r = chatc_wait_msgid(c, MSG_ONE_CHAT, T);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(str_of(r, "msg"), "c-a");
	cJSON_Delete(r);
	r = chatc_wait_msgid(c, MSG_GROUP_CHAT, T);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(str_of(r, "msg"), "g-a");
	cJSON_Delete(r);
	/* From the socket, queueing what comes before. */
	r = chatc_wait_msgid(c, MSG_GROUP_CHAT, T);
	ck_assert_msg(r != NULL, "chatc_wait_msgid: %s", chatc_error(c));
	ck_assert_str_eq(str_of(r, "msg"), "g-b");
	cJSON_Delete(r);
	r = recv_msgid(c, MSG_PRESENCE);
	cJSON_Delete(r);
	r = recv_msgid(c, MSG_ONE_CHAT);
	ck_assert_str_eq(str_of(r, "msg"), "c-b");
	cJSON_Delete(r);
	ck_assert_ptr_null(chatc_wait_msgid(c, MSG_GROUP_CHAT, 50));
	ck_assert_str_eq(chatc_error(c), "timeout");
	fake_finish(&f, c);
}
END_TEST

static void
script_hello(int fd)
{
	srv_send(fd, "{\"msgid\":19,\"id\":1,\"state\":\"online\"}\n");
}

START_TEST(test_poll)
{
	struct fake f;
	struct chatc *c;
	cJSON *r = NULL;
	int i;

	c = fake_connect(&f, script_hello, "127.0.0.1");
	for (i = 0; i < 400 && r == NULL; i++) {
		if ((r = chatc_poll(c)) == NULL) {
			ck_assert_str_eq(chatc_error(c), "timeout");
			(void)usleep(5000);
		}
	}
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(msgid_of(r), MSG_PRESENCE);
	cJSON_Delete(r);
	ck_assert_ptr_null(chatc_poll(c));
	fake_finish(&f, c);
}
END_TEST

#define FLOOD_MAX_LINE	((size_t)1024 * 1024)

static void
script_flood(int fd)
{
	size_t len = FLOOD_MAX_LINE + 1;
	char *buf;

	if ((buf = malloc(len)) == NULL)
		srv_die("malloc");
	memset(buf, 'x', len);
	srv_send_len(fd, buf, len);
	free(buf);
}

START_TEST(test_line_too_long)
{
	struct fake f;
	struct chatc *c;

	c = fake_connect(&f, script_flood, "127.0.0.1");
	/* The default (512 MiB) would take a flood that long to reach. */
	chatc_set_max_line(c, FLOOD_MAX_LINE);
	ck_assert_ptr_null(chatc_recv(c, 5000));
	ck_assert_str_eq(chatc_error(c),
	    "line from server longer than 1048576 bytes");
	/* The stream is misframed from there on: no more reading. */
	ck_assert_ptr_null(chatc_recv(c, 0));
	ck_assert_str_eq(chatc_error(c),
	    "line from server longer than 1048576 bytes");
	fake_finish(&f, c);
}
END_TEST

START_TEST(test_connect_fails)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	char err[256];
	int fd;

	ck_assert_ptr_null(chatc_connect("127.0.0.1", 0, T, err, sizeof(err)));
	ck_assert_str_ne(err, "");
	ck_assert_ptr_null(chatc_connect("127.0.0.1", 70000, T, err,
	    sizeof(err)));
	ck_assert_str_ne(err, "");

	/* A port that is bound but not listening refuses at once. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ne(fd, -1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
	ck_assert_ptr_null(chatc_connect("127.0.0.1", ntohs(sin.sin_port), T,
	    err, sizeof(err)));
	ck_assert_msg(strstr(err, "refused") != NULL, "err: %s", err);
	(void)close(fd);

	/* A NULL err buffer is allowed. */
	ck_assert_ptr_null(chatc_connect("127.0.0.1", 0, T, NULL, 0));
	chatc_close(NULL);
}
END_TEST

static Suite *
chatc_suite(void)
{
	Suite *s = suite_create("chatc");
	TCase *tc;

	tc = tcase_create("reader");
	tcase_add_test(tc, test_reader_whole);
	tcase_add_test(tc, test_reader_multi);
	tcase_add_test(tc, test_reader_bytewise);
	tcase_add_test(tc, test_reader_random);
	tcase_add_test(tc, test_reader_compacts);
	tcase_add_test(tc, test_reader_toolong);
	tcase_add_test(tc, test_reader_escaped_newline);
	suite_add_tcase(s, tc);

	tc = tcase_create("replies");
	tcase_add_test(tc, test_proto_strerror);
	tcase_add_test(tc, test_errno_errmsg);
	suite_add_tcase(s, tc);

	tc = tcase_create("connection");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_request_queues_others);
	tcase_add_test(tc, test_request_timeout);
	tcase_add_test(tc, test_server_closes);
	tcase_add_test(tc, test_error_reply);
	tcase_add_test(tc, test_typed_helpers);
	tcase_add_test(tc, test_send_exact);
	tcase_add_test(tc, test_invalid_json);
	tcase_add_test(tc, test_wait_msgid);
	tcase_add_test(tc, test_poll);
	tcase_add_test(tc, test_line_too_long);
	tcase_add_test(tc, test_connect_fails);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(chatc_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
