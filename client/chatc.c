/*
 * chatc.c - the chatd client library: the line splitter for the server's
 * stream, one TCP connection with blocking-with-timeout calls, matching
 * of replies to requests by "seq" with a FIFO of the messages set aside
 * meanwhile, and one typed helper per request msgid.  Contracts are in
 * chatc.h.
 *
 * The socket stays non-blocking after connect; every wait is a poll()
 * bounded by a deadline on CLOCK_MONOTONIC, so no call sleeps past its
 * timeout however the server trickles its bytes.  Nothing here prints:
 * a failure leaves its reason in the connection for chatc_error().
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chatc.h"

#define CHATC_SEND_TIMEOUT_MS	10000	/* chatc_send() and chatc_send_raw() */
#define CHATC_READ_CHUNK	16384	/* bytes asked of one recv() */
#define CHATC_READER_MINCAP	4096	/* first allocation of a reader */

struct chatc_msg {
	cJSON			*obj;
	STAILQ_ENTRY(chatc_msg)	 entry;
};

struct chatc {
	int			 fd;
	struct chatc_reader	 rd;
	STAILQ_HEAD(, chatc_msg) queue;	/* set aside, in arrival order */
	int64_t			 seq;	/* the next request's seq */
	/*
	 * Once the incoming stream has ended (EOF, an over-long line, a read
	 * error) or the outgoing one is broken (a write error or a timeout
	 * after part of a message went out), every later call in that
	 * direction fails with the same reason instead of reading or writing
	 * misframed bytes.
	 */
	int			 rclosed;
	int			 wclosed;
	char			 rwhy[128];
	char			 wwhy[128];
	char			 err[256];	/* reason of the last failure */
};

static void	chatc_seterr(struct chatc *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	chatc_fmterr(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

/* --- reader ---------------------------------------------------------- */

void
chatc_reader_init(struct chatc_reader *r, size_t max_line)
{
	memset(r, 0, sizeof(*r));
	r->max_line = max_line;
}

void
chatc_reader_free(struct chatc_reader *r)
{
	size_t max_line = r->max_line;

	free(r->buf);
	chatc_reader_init(r, max_line);
}

int
chatc_reader_feed(struct chatc_reader *r, const void *data, size_t n)
{
	const char *p = data, *nl, *last_nl = NULL;
	size_t pending, rest, need, ncap;
	char *nbuf;

	if (n == 0)
		return 0;

	/*
	 * Measure every line the new bytes end or extend before touching the
	 * buffer, so that a refused feed leaves the reader as it was.  Only
	 * the new bytes are scanned: the length of the unterminated line is
	 * known from r->tail, which keeps byte-by-byte feeding linear.
	 */
	pending = r->len - r->tail;
	rest = n;
	while ((nl = memchr(p, '\n', rest)) != NULL) {
		if ((size_t)(nl - p) > r->max_line - pending)
			goto toolong;
		pending = 0;
		last_nl = nl;
		rest -= (size_t)(nl - p) + 1;
		p = nl + 1;
	}
	if (rest > r->max_line - pending)
		goto toolong;

	/* Reuse the consumed front before growing. */
	if (r->off == r->len)
		r->off = r->len = r->tail = 0;
	else if (r->off > 0 && (r->off > r->cap / 2 || r->cap - r->len < n)) {
		memmove(r->buf, r->buf + r->off, r->len - r->off);
		r->len -= r->off;
		r->tail -= r->off;
		r->off = 0;
	}
	if (n > SIZE_MAX - r->len) {
		errno = ENOMEM;
		return -1;
	}
	need = r->len + n;
	if (need > r->cap) {
		ncap = r->cap < CHATC_READER_MINCAP ? CHATC_READER_MINCAP :
		    r->cap;
		while (ncap < need) {
			if (ncap > SIZE_MAX / 2) {
				ncap = need;
				break;
			}
			ncap *= 2;
		}
		if ((nbuf = realloc(r->buf, ncap)) == NULL) {
			errno = ENOMEM;
			return -1;
		}
		r->buf = nbuf;
		r->cap = ncap;
	}
	memcpy(r->buf + r->len, data, n);
	if (last_nl != NULL)
		r->tail = r->len + (size_t)(last_nl - (const char *)data) + 1;
	r->len += n;
	return 0;

toolong:
	errno = EMSGSIZE;
	return -1;
}

int
chatc_reader_next(struct chatc_reader *r, const char **line, size_t *len)
{
	char *start, *nl;

	/* Everything before tail is whole lines, so off < tail means one. */
	if (r->off >= r->tail)
		return 0;
	start = r->buf + r->off;
	nl = memchr(start, '\n', r->tail - r->off);
	*nl = '\0';
	*line = start;
	*len = (size_t)(nl - start);
	r->off += *len + 1;
	return 1;
}

/* --- errors and time ------------------------------------------------- */

static void
chatc_fmterr(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	if (buf == NULL || size == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

static void
chatc_seterr(struct chatc *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
}

static int64_t
chatc_now(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A deadline in chatc_now() milliseconds, or -1 for none. */
static int64_t
chatc_deadline(int timeout_ms)
{
	if (timeout_ms < 0)
		return -1;
	return chatc_now() + timeout_ms;
}

/*
 * Wait until fd has one of events or the deadline passes: 1 ready,
 * 0 timeout, -1 poll failed (errno set).
 */
static int
chatc_wait(int fd, short events, int64_t deadline)
{
	struct pollfd pfd;
	int64_t left;
	int ms, n;

	for (;;) {
		ms = -1;
		if (deadline >= 0) {
			left = deadline - chatc_now();
			ms = left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
		}
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, ms);
		if (n > 0)
			return 1;
		if (n == 0) {
			if (ms == 0)
				return 0;
			continue;	/* woke early: recompute what is left */
		}
		if (errno != EINTR)
			return -1;
	}
}

/* --- connection ------------------------------------------------------ */

/* One address: a connected non-blocking socket, or -1 with why filled. */
static int
chatc_try_connect(const struct addrinfo *ai, int64_t deadline, char *why,
    size_t whylen)
{
	socklen_t slen;
	int fd, rc, soerr;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, ai->ai_protocol);
	if (fd == -1) {
		chatc_fmterr(why, whylen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	/* An interrupted non-blocking connect goes on in the background. */
	if (errno != EINPROGRESS && errno != EINTR) {
		chatc_fmterr(why, whylen, "%s", strerror(errno));
		goto fail;
	}
	rc = chatc_wait(fd, POLLOUT, deadline);
	if (rc == 0) {
		chatc_fmterr(why, whylen, "timeout");
		goto fail;
	}
	if (rc == -1) {
		chatc_fmterr(why, whylen, "poll: %s", strerror(errno));
		goto fail;
	}
	soerr = 0;
	slen = sizeof(soerr);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) == -1)
		soerr = errno;
	if (soerr != 0) {
		chatc_fmterr(why, whylen, "%s", strerror(soerr));
		goto fail;
	}
	return fd;
fail:
	(void)close(fd);
	return -1;
}

struct chatc *
chatc_connect(const char *host, int port, int timeout_ms, char *err,
    size_t errlen)
{
	struct addrinfo hints, *res, *ai;
	struct chatc *c;
	char serv[16], why[128];
	int64_t deadline;
	int fd = -1, one = 1, rc;

	chatc_fmterr(err, errlen, "%s", "");
	if (host == NULL || port <= 0 || port > 65535) {
		chatc_fmterr(err, errlen, "invalid address %s:%d",
		    host != NULL ? host : "(null)", port);
		return NULL;
	}
	deadline = chatc_deadline(timeout_ms);
	(void)snprintf(serv, sizeof(serv), "%d", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, serv, &hints, &res)) != 0) {
		chatc_fmterr(err, errlen, "%s: %s", host,
		    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return NULL;
	}
	(void)snprintf(why, sizeof(why), "no address");
	/* The timeout covers all addresses together, not each one. */
	for (ai = res; ai != NULL && fd == -1; ai = ai->ai_next)
		fd = chatc_try_connect(ai, deadline, why, sizeof(why));
	freeaddrinfo(res);
	if (fd == -1) {
		chatc_fmterr(err, errlen, "connect %s:%d: %s", host, port, why);
		return NULL;
	}
	/* Requests are small and each waits for its reply: no Nagle. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		chatc_fmterr(err, errlen, "out of memory");
		(void)close(fd);
		return NULL;
	}
	c->fd = fd;
	chatc_reader_init(&c->rd, CHATC_MAX_LINE);
	STAILQ_INIT(&c->queue);
	c->seq = 1;
	return c;
}

void
chatc_set_max_line(struct chatc *c, size_t max)
{
	c->rd.max_line = max;
}

void
chatc_close(struct chatc *c)
{
	struct chatc_msg *m;

	if (c == NULL)
		return;
	while ((m = STAILQ_FIRST(&c->queue)) != NULL) {
		STAILQ_REMOVE_HEAD(&c->queue, entry);
		cJSON_Delete(m->obj);
		free(m);
	}
	chatc_reader_free(&c->rd);
	if (c->fd != -1)
		(void)close(c->fd);
	free(c);
}

int
chatc_fd(const struct chatc *c)
{
	return c->fd;
}

const char *
chatc_error(const struct chatc *c)
{
	return c->err;
}

int
chatc_closed(const struct chatc *c)
{
	return c->rclosed || c->wclosed;
}

int
chatc_pending(const struct chatc *c)
{
	return !STAILQ_EMPTY(&c->queue) || c->rd.off < c->rd.tail;
}

int64_t
chatc_next_seq(const struct chatc *c)
{
	return c->seq;
}

/* --- sending --------------------------------------------------------- */

/* Write all of buf before the deadline.  0, or -1 with c->err set. */
static int
chatc_write(struct chatc *c, const void *buf, size_t len, int64_t deadline)
{
	const char *p = buf;
	size_t done = 0;
	ssize_t n;
	int rc;

	if (c->wclosed) {
		chatc_seterr(c, "%s", c->wwhy);
		return -1;
	}
	while (done < len) {
		/* MSG_NOSIGNAL: a closed peer is an error, not SIGPIPE. */
		n = send(c->fd, p + done, len - done, MSG_NOSIGNAL);
		if (n >= 0) {
			done += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			(void)snprintf(c->wwhy, sizeof(c->wwhy), "send: %s",
			    strerror(errno));
			c->wclosed = 1;
			chatc_seterr(c, "%s", c->wwhy);
			return -1;
		}
		if ((rc = chatc_wait(c->fd, POLLOUT, deadline)) == 1)
			continue;
		if (rc == -1) {
			chatc_seterr(c, "poll: %s", strerror(errno));
			return -1;
		}
		/* Part of a message went out: the stream is misframed now. */
		if (done > 0) {
			(void)snprintf(c->wwhy, sizeof(c->wwhy),
			    "send timed out after %zu of %zu bytes", done, len);
			c->wclosed = 1;
		}
		chatc_seterr(c, "timeout");
		return -1;
	}
	return 0;
}

char *
chatc_line(const cJSON *obj, size_t *len)
{
	char *text, *line;
	size_t n;

	if ((text = cJSON_PrintUnformatted(obj)) == NULL)
		return NULL;
	n = strlen(text);
	if ((line = malloc(n + 2)) == NULL) {
		cJSON_free(text);
		return NULL;
	}
	memcpy(line, text, n);
	line[n] = '\n';
	line[n + 1] = '\0';
	cJSON_free(text);
	*len = n + 1;
	return line;
}

static int
chatc_write_obj(struct chatc *c, const cJSON *obj, int64_t deadline)
{
	char *line;
	size_t n;
	int rc;

	if ((line = chatc_line(obj, &n)) == NULL) {
		chatc_seterr(c, "cannot serialise message: out of memory");
		return -1;
	}
	rc = chatc_write(c, line, n, deadline);
	free(line);
	return rc;
}

int
chatc_send_raw(struct chatc *c, const void *buf, size_t len)
{
	return chatc_write(c, buf, len, chatc_deadline(CHATC_SEND_TIMEOUT_MS));
}

int
chatc_send(struct chatc *c, const cJSON *obj)
{
	return chatc_write_obj(c, obj,
	    chatc_deadline(CHATC_SEND_TIMEOUT_MS));
}

/* --- receiving ------------------------------------------------------- */

static void
chatc_rclose(struct chatc *c, const char *why)
{
	(void)snprintf(c->rwhy, sizeof(c->rwhy), "%s", why);
	c->rclosed = 1;
	chatc_seterr(c, "%s", c->rwhy);
}

/*
 * Read what the socket has into the reader, waiting for it until the
 * deadline.  0 when bytes arrived, -1 with c->err set on timeout, EOF or
 * error.
 */
static int
chatc_fill(struct chatc *c, int64_t deadline)
{
	char buf[CHATC_READ_CHUNK], why[128];
	ssize_t n;
	int rc;

	for (;;) {
		n = recv(c->fd, buf, sizeof(buf), 0);
		if (n > 0) {
			if (chatc_reader_feed(&c->rd, buf, (size_t)n) == 0)
				return 0;
			if (errno == EMSGSIZE)
				(void)snprintf(why, sizeof(why),
				    "line from server longer than %zu bytes",
				    c->rd.max_line);
			else
				(void)snprintf(why, sizeof(why),
				    "out of memory");
			chatc_rclose(c, why);
			return -1;
		}
		if (n == 0) {
			chatc_rclose(c, "connection closed by server");
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			(void)snprintf(why, sizeof(why), "recv: %s",
			    strerror(errno));
			chatc_rclose(c, why);
			return -1;
		}
		if ((rc = chatc_wait(c->fd, POLLIN, deadline)) == 0) {
			chatc_seterr(c, "timeout");
			return -1;
		}
		if (rc == -1) {
			chatc_seterr(c, "poll: %s", strerror(errno));
			return -1;
		}
	}
}

/*
 * One line as a JSON object.  Trailing bytes after the object (two
 * objects on one line, say) make the line invalid, as the server promises
 * exactly one object per line.
 */
cJSON *
chatc_parse_line(const char *line, size_t len)
{
	const char *end = NULL, *p;
	cJSON *obj;

	obj = cJSON_ParseWithLengthOpts(line, len, &end, 0);
	if (obj == NULL || !cJSON_IsObject(obj))
		goto bad;
	for (p = end; p < line + len; p++)
		if (*p != ' ' && *p != '\t' && *p != '\r')
			goto bad;
	return obj;
bad:
	cJSON_Delete(obj);
	return NULL;
}

static cJSON *
chatc_parse(struct chatc *c, const char *line, size_t len)
{
	cJSON *obj;

	if ((obj = chatc_parse_line(line, len)) == NULL)
		chatc_seterr(c, "invalid JSON from server");
	return obj;
}

/* The next message from the socket (not the queue) before the deadline. */
static cJSON *
chatc_read_msg(struct chatc *c, int64_t deadline)
{
	const char *line;
	size_t len;

	for (;;) {
		/* Lines that arrived before EOF are still delivered. */
		if (chatc_reader_next(&c->rd, &line, &len))
			return chatc_parse(c, line, len);
		if (c->rclosed) {
			chatc_seterr(c, "%s", c->rwhy);
			return NULL;
		}
		if (chatc_fill(c, deadline) == -1)
			return NULL;
	}
}

/* Set msg aside for chatc_recv; on failure msg is freed. */
static int
chatc_enqueue(struct chatc *c, cJSON *msg)
{
	struct chatc_msg *m;

	if ((m = malloc(sizeof(*m))) == NULL) {
		cJSON_Delete(msg);
		chatc_seterr(c, "out of memory");
		return -1;
	}
	m->obj = msg;
	STAILQ_INSERT_TAIL(&c->queue, m, entry);
	return 0;
}

static int
chatc_msgid(const cJSON *msg)
{
	const cJSON *v;

	v = cJSON_GetObjectItemCaseSensitive(msg, "msgid");
	return cJSON_IsNumber(v) ? v->valueint : -1;
}

/*
 * The reply to the request with this seq.  Only reply types count, so a
 * frame that merely repeats a seq (a forwarded chat, say) is not taken
 * for the answer.
 */
static int
chatc_is_reply(const cJSON *msg, int64_t seq)
{
	const cJSON *v;

	v = cJSON_GetObjectItemCaseSensitive(msg, "seq");
	if (!cJSON_IsNumber(v) || v->valuedouble != (double)seq)
		return 0;
	switch (chatc_msgid(msg)) {
	case MSG_LOGIN_ACK:
	case MSG_REG_ACK:
	case MSG_ERROR:
	case MSG_ACK:
		return 1;
	default:
		return 0;
	}
}

cJSON *
chatc_recv(struct chatc *c, int timeout_ms)
{
	struct chatc_msg *m;
	cJSON *obj;

	if ((m = STAILQ_FIRST(&c->queue)) != NULL) {
		STAILQ_REMOVE_HEAD(&c->queue, entry);
		obj = m->obj;
		free(m);
		return obj;
	}
	return chatc_read_msg(c, chatc_deadline(timeout_ms));
}

cJSON *
chatc_poll(struct chatc *c)
{
	return chatc_recv(c, 0);
}

cJSON *
chatc_request(struct chatc *c, cJSON *req, int timeout_ms)
{
	int64_t deadline, seq;
	cJSON *msg, *num;

	deadline = chatc_deadline(timeout_ms);
	if (!cJSON_IsObject(req)) {
		chatc_seterr(c, "request is not a JSON object");
		return NULL;
	}
	seq = c->seq;
	cJSON_DeleteItemFromObjectCaseSensitive(req, "seq");
	if ((num = cJSON_CreateNumber((double)seq)) == NULL) {
		chatc_seterr(c, "out of memory");
		return NULL;
	}
	if (!cJSON_AddItemToObject(req, "seq", num)) {
		cJSON_Delete(num);
		chatc_seterr(c, "out of memory");
		return NULL;
	}
	/*
	 * Never reuse a seq that may have reached the server.  A line that
	 * is not JSON ends the wait with that error, like a timeout: the
	 * caller learns of the broken server instead of waiting past it.
	 */
	c->seq++;
	if (chatc_write_obj(c, req, deadline) == -1)
		return NULL;
	for (;;) {
		if ((msg = chatc_read_msg(c, deadline)) == NULL)
			return NULL;
		if (chatc_is_reply(msg, seq))
			return msg;
		if (chatc_enqueue(c, msg) == -1)
			return NULL;
	}
}

cJSON *
chatc_wait_msgid(struct chatc *c, int msgid, int timeout_ms)
{
	struct chatc_msg *m;
	int64_t deadline;
	cJSON *msg;

	deadline = chatc_deadline(timeout_ms);
	/* An earlier request may already have set the message aside. */
	STAILQ_FOREACH(m, &c->queue, entry) {
		if (chatc_msgid(m->obj) == msgid) {
			STAILQ_REMOVE(&c->queue, m, chatc_msg, entry);
			msg = m->obj;
			free(m);
			return msg;
		}
	}
	for (;;) {
		if ((msg = chatc_read_msg(c, deadline)) == NULL)
			return NULL;
		if (chatc_msgid(msg) == msgid)
			return msg;
		if (chatc_enqueue(c, msg) == -1)
			return NULL;
	}
}

int
chatc_errno(const cJSON *reply)
{
	const cJSON *v;

	if (reply == NULL)
		return -1;
	v = cJSON_GetObjectItemCaseSensitive(reply, "errno");
	if (v == NULL)
		return 0;
	/* A malformed errno must not read as success either. */
	return cJSON_IsNumber(v) ? v->valueint : -1;
}

const char *
chatc_errmsg(const cJSON *reply)
{
	const cJSON *v;

	v = cJSON_GetObjectItemCaseSensitive(reply, "errmsg");
	return cJSON_IsString(v) ? v->valuestring : "";
}

/* --- typed requests -------------------------------------------------- */

static cJSON *
chatc_req(int msgid)
{
	cJSON *req;

	if ((req = cJSON_CreateObject()) == NULL)
		return NULL;
	if (cJSON_AddNumberToObject(req, "msgid", msgid) == NULL) {
		cJSON_Delete(req);
		return NULL;
	}
	return req;
}

static int
chatc_add_num(cJSON *req, const char *key, long long v)
{
	return req != NULL && cJSON_AddNumberToObject(req, key, (double)v) !=
	    NULL;
}

static int
chatc_add_str(cJSON *req, const char *key, const char *v)
{
	return req != NULL && v != NULL &&
	    cJSON_AddStringToObject(req, key, v) != NULL;
}

/* "time" as the classic client sends it: local "YYYY-MM-DD HH:MM:SS". */
static int
chatc_add_time(cJSON *req)
{
	char buf[32];
	struct tm tm;
	time_t now;

	now = time(NULL);
	if (localtime_r(&now, &tm) == NULL ||
	    strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm) == 0)
		return 0;
	return chatc_add_str(req, "time", buf);
}

/* Run a built request (ok says the build succeeded) and free it. */
static cJSON *
chatc_call(struct chatc *c, cJSON *req, int ok, int timeout_ms)
{
	cJSON *reply;

	if (req == NULL || !ok) {
		cJSON_Delete(req);
		chatc_seterr(c, "cannot build request: NULL argument or "
		    "out of memory");
		return NULL;
	}
	reply = chatc_request(c, req, timeout_ms);
	cJSON_Delete(req);
	return reply;
}

/*
 * Builders: each returns the request its typed helper sends, or NULL (the
 * partly built object freed) when an argument is NULL or memory runs out.
 */
static cJSON *
chatc_built(cJSON *req, int ok)
{
	if (ok)
		return req;
	cJSON_Delete(req);
	return NULL;
}

cJSON *
chatc_build(int msgid)
{
	return chatc_req(msgid);
}

cJSON *
chatc_build_register(const char *name, const char *password)
{
	cJSON *req = chatc_req(MSG_REG);

	return chatc_built(req, chatc_add_str(req, "name", name) &&
	    chatc_add_str(req, "password", password));
}

cJSON *
chatc_build_login(long long id, const char *password)
{
	cJSON *req = chatc_req(MSG_LOGIN);

	return chatc_built(req, chatc_add_num(req, "id", id) &&
	    chatc_add_str(req, "password", password));
}

cJSON *
chatc_build_one_chat(long long toid, const char *msg)
{
	cJSON *req = chatc_req(MSG_ONE_CHAT);

	return chatc_built(req, chatc_add_num(req, "toid", toid) &&
	    chatc_add_str(req, "msg", msg) && chatc_add_time(req));
}

cJSON *
chatc_build_group_chat(long long groupid, const char *msg)
{
	cJSON *req = chatc_req(MSG_GROUP_CHAT);

	return chatc_built(req, chatc_add_num(req, "groupid", groupid) &&
	    chatc_add_str(req, "msg", msg) && chatc_add_time(req));
}

cJSON *
chatc_build_create_group(const char *groupname, const char *groupdesc)
{
	cJSON *req = chatc_req(MSG_CREATE_GROUP);

	return chatc_built(req, chatc_add_str(req, "groupname", groupname) &&
	    chatc_add_str(req, "groupdesc", groupdesc));
}

cJSON *
chatc_build_add_group(long long groupid)
{
	cJSON *req = chatc_req(MSG_ADD_GROUP);

	return chatc_built(req, chatc_add_num(req, "groupid", groupid));
}

cJSON *
chatc_register(struct chatc *c, const char *name, const char *password,
    int timeout_ms)
{
	cJSON *req = chatc_build_register(name, password);

	return chatc_call(c, req, req != NULL, timeout_ms);
}

cJSON *
chatc_login(struct chatc *c, long long id, const char *password,
    int timeout_ms)
{
	cJSON *req = chatc_build_login(id, password);

	return chatc_call(c, req, req != NULL, timeout_ms);
}

cJSON *
chatc_logout(struct chatc *c, int timeout_ms)
{
	cJSON *req = chatc_req(MSG_LOGINOUT);

	return chatc_call(c, req, 1, timeout_ms);
}

cJSON *
chatc_ping(struct chatc *c, int timeout_ms)
{
	cJSON *req = chatc_req(MSG_PING);

	return chatc_call(c, req, 1, timeout_ms);
}

cJSON *
chatc_one_chat(struct chatc *c, long long toid, const char *msg,
    int timeout_ms)
{
	cJSON *req = chatc_build_one_chat(toid, msg);

	return chatc_call(c, req, req != NULL, timeout_ms);
}

cJSON *
chatc_add_friend(struct chatc *c, long long friendid, int timeout_ms)
{
	cJSON *req = chatc_req(MSG_ADD_FRIEND);
	int ok;

	ok = chatc_add_num(req, "friendid", friendid);
	return chatc_call(c, req, ok, timeout_ms);
}

cJSON *
chatc_del_friend(struct chatc *c, long long friendid, int timeout_ms)
{
	cJSON *req = chatc_req(MSG_DEL_FRIEND);
	int ok;

	ok = chatc_add_num(req, "friendid", friendid);
	return chatc_call(c, req, ok, timeout_ms);
}

cJSON *
chatc_friend_list(struct chatc *c, int timeout_ms)
{
	cJSON *req = chatc_req(MSG_FRIEND_LIST);

	return chatc_call(c, req, 1, timeout_ms);
}

cJSON *
chatc_create_group(struct chatc *c, const char *groupname,
    const char *groupdesc, int timeout_ms)
{
	cJSON *req = chatc_build_create_group(groupname, groupdesc);

	return chatc_call(c, req, req != NULL, timeout_ms);
}

cJSON *
chatc_add_group(struct chatc *c, long long groupid, int timeout_ms)
{
	cJSON *req = chatc_build_add_group(groupid);

	return chatc_call(c, req, req != NULL, timeout_ms);
}

cJSON *
chatc_quit_group(struct chatc *c, long long groupid, int timeout_ms)
{
	cJSON *req = chatc_req(MSG_QUIT_GROUP);
	int ok;

	ok = chatc_add_num(req, "groupid", groupid);
	return chatc_call(c, req, ok, timeout_ms);
}

cJSON *
chatc_group_list(struct chatc *c, int timeout_ms)
{
	cJSON *req = chatc_req(MSG_GROUP_LIST);

	return chatc_call(c, req, 1, timeout_ms);
}

cJSON *
chatc_group_members(struct chatc *c, long long groupid, int timeout_ms)
{
	cJSON *req = chatc_req(MSG_GROUP_MEMBERS);
	int ok;

	ok = chatc_add_num(req, "groupid", groupid);
	return chatc_call(c, req, ok, timeout_ms);
}

cJSON *
chatc_group_chat(struct chatc *c, long long groupid, const char *msg,
    int timeout_ms)
{
	cJSON *req = chatc_build_group_chat(groupid, msg);

	return chatc_call(c, req, req != NULL, timeout_ms);
}
