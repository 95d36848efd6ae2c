/*
 * chatc.h - the chatd client library: one connection to a chatd (or to
 * nginx in front of several), blocking I/O with timeouts, request/ACK
 * matching by seq, and typed helpers for every msgid of chat-protocol(7).
 *
 * Used by chat(1), chat-bench(1) and the integration tests, so the protocol
 * is written once on the client side.  Messages are cJSON objects owned by
 * the caller once returned.
 */
#ifndef CHATD_CHATC_H
#define CHATD_CHATC_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "protocol.h"

/*
 * Incremental splitter for the server's stream: one JSON object per
 * '\n'-terminated line.  Feed bytes as they arrive, take whole lines out.
 */
struct chatc_reader {
	char *buf;
	size_t len, cap, off;
	size_t max_line;	/* a longer line is an error */
	size_t tail;		/* start of the unterminated last line: every
				 * '\n' in buf lies before it */
};
void chatc_reader_init(struct chatc_reader *r, size_t max_line);
void chatc_reader_free(struct chatc_reader *r);
/* Append n bytes; -1 when the pending line would exceed max_line (errno
 * EMSGSIZE) or memory runs out (ENOMEM), and then nothing is appended. */
int chatc_reader_feed(struct chatc_reader *r, const void *data, size_t n);
/* Next complete line without its '\n' (NUL-terminated, valid until the
 * next feed/next call) in *line and *len; returns 1, or 0 when none yet. */
int chatc_reader_next(struct chatc_reader *r, const char **line, size_t *len);

struct chatc;

/* Connect to host:port (numeric or name) within timeout_ms.  NULL on
 * failure with a reason in err. */
struct chatc *chatc_connect(const char *host, int port, int timeout_ms,
    char *err, size_t errlen);
void chatc_close(struct chatc *c);
int chatc_fd(const struct chatc *c);
/*
 * The longest line accepted from the server; a longer one ends the
 * connection (chatc_error says so).  A server line can be longer than
 * the server's max_frame: a forwarded chat adds its sender's id, name
 * and time, and a LOGIN_ACK carries up to half of max_output (at most
 * 256 MiB) of stored frames as strings, escaped again, which can double
 * them.  The default covers the largest settings.
 */
#define CHATC_MAX_LINE	((size_t)512 * 1024 * 1024)
void chatc_set_max_line(struct chatc *c, size_t max);
/* Reason for the last failure of any call on c ("timeout", "connection
 * closed by server", strerror text, ...). */
const char *chatc_error(const struct chatc *c);

/* 1 once the connection can carry nothing more: the server closed it,
 * a read or write failed, or a partial write left the stream misframed
 * (chatc_error says why); 0 while it is usable.  Messages that arrived
 * before the end are still returned by chatc_recv/chatc_poll. */
int chatc_closed(const struct chatc *c);
/* 1 when chatc_poll would return a message without reading the socket
 * (one is queued, or a whole line is buffered), else 0. */
int chatc_pending(const struct chatc *c);

/* Send raw bytes exactly as given (for classic NUL framing, malformed
 * input tests...).  0 or -1. */
int chatc_send_raw(struct chatc *c, const void *buf, size_t len);
/* Serialise obj compactly and send it followed by '\n'.  0 or -1. */
int chatc_send(struct chatc *c, const cJSON *obj);

/* Next message from the server (first from the queue of messages set
 * aside by chatc_request), or NULL on timeout/EOF/error (see
 * chatc_error).  timeout_ms < 0 waits forever. */
cJSON *chatc_recv(struct chatc *c, int timeout_ms);
/* Non-blocking: queue-or-socket message if one is available now. */
cJSON *chatc_poll(struct chatc *c);

/* Give req a fresh "seq" (replacing any), send it and wait for the reply
 * carrying that seq (REG_ACK, LOGIN_ACK, ACK or ERROR); other messages
 * received meanwhile are queued for chatc_recv.  NULL on timeout/EOF. */
cJSON *chatc_request(struct chatc *c, cJSON *req, int timeout_ms);
/* The seq the next chatc_request will use. */
int64_t chatc_next_seq(const struct chatc *c);

/* The reply's "errno" (0 when absent; -1 when reply is NULL or errno is
 * not a number, so a failed request never looks like success), and
 * "errmsg" or "". */
int chatc_errno(const cJSON *reply);
const char *chatc_errmsg(const cJSON *reply);

/*
 * Typed helpers: build the request, chatc_request() it, return the reply
 * (caller frees) or NULL on I/O failure.  Field names as in
 * chat-protocol(7).
 */
cJSON *chatc_register(struct chatc *c, const char *name,
    const char *password, int timeout_ms);
cJSON *chatc_login(struct chatc *c, long long id, const char *password,
    int timeout_ms);
cJSON *chatc_logout(struct chatc *c, int timeout_ms);
cJSON *chatc_ping(struct chatc *c, int timeout_ms);
cJSON *chatc_one_chat(struct chatc *c, long long toid, const char *msg,
    int timeout_ms);
cJSON *chatc_add_friend(struct chatc *c, long long friendid, int timeout_ms);
cJSON *chatc_del_friend(struct chatc *c, long long friendid, int timeout_ms);
cJSON *chatc_friend_list(struct chatc *c, int timeout_ms);
cJSON *chatc_create_group(struct chatc *c, const char *groupname,
    const char *groupdesc, int timeout_ms);
cJSON *chatc_add_group(struct chatc *c, long long groupid, int timeout_ms);
cJSON *chatc_quit_group(struct chatc *c, long long groupid, int timeout_ms);
cJSON *chatc_group_list(struct chatc *c, int timeout_ms);
cJSON *chatc_group_members(struct chatc *c, long long groupid,
    int timeout_ms);
cJSON *chatc_group_chat(struct chatc *c, long long groupid, const char *msg,
    int timeout_ms);

/*
 * For callers that run their own I/O loop (chat-bench): the request
 * objects the typed helpers above send, without "seq" (add one with cJSON
 * when a reply is wanted), and the helpers' own serialiser and parser.
 * Builders return NULL when an argument is NULL or memory runs out.
 */
cJSON *chatc_build(int msgid);		/* just {"msgid":N} */
cJSON *chatc_build_register(const char *name, const char *password);
cJSON *chatc_build_login(long long id, const char *password);
cJSON *chatc_build_one_chat(long long toid, const char *msg);
cJSON *chatc_build_group_chat(long long groupid, const char *msg);
cJSON *chatc_build_create_group(const char *groupname,
    const char *groupdesc);
cJSON *chatc_build_add_group(long long groupid);
/* obj as one request line: compact JSON, '\n', then a NUL not counted in
 * *len.  malloc'd (caller frees), NULL when out of memory. */
char *chatc_line(const cJSON *obj, size_t *len);
/* One line from the server as chatc_recv() accepts it: a JSON object with
 * nothing but blanks after it.  NULL otherwise. */
cJSON *chatc_parse_line(const char *line, size_t len);

/* Wait up to timeout_ms for the next message with the given msgid (others
 * are queued in order for chatc_recv).  NULL on timeout/EOF. */
cJSON *chatc_wait_msgid(struct chatc *c, int msgid, int timeout_ms);

#endif
