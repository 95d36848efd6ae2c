/*
 * request.h - parses one client frame into a validated request.
 *
 * All knowledge of which fields each msgid takes, their types and length
 * limits lives in one table in request.c, so handlers read fields that
 * are known to be present and well-formed.
 */
#ifndef CHATD_REQUEST_H
#define CHATD_REQUEST_H

#include <stddef.h>

#include <cjson/cJSON.h>

struct request_limits {
	size_t max_message;	/* bytes of "msg" */
};

struct request {
	cJSON *root;		/* owned */
	int msgid;		/* 0 when the frame had no usable msgid */
	const cJSON *seq;	/* inside root, NULL when absent */
};

/*
 * Parse and validate buf[0..len).  Returns 0, or an errno value of
 * protocol.h (11 invalid JSON, 5 bad request, 14 unknown msgid) with a
 * reason in errmsg; even on failure r->seq and r->msgid are filled when
 * they could be read, so the ERROR can echo them.  Always call
 * request_free.
 */
int request_parse(struct request *r, const char *buf, size_t len,
    const struct request_limits *lim, char *errmsg, size_t errlen);
void request_free(struct request *r);

/* 1 when msgid may be sent before login (LOGIN, REG, PING). */
int request_allowed_anonymous(int msgid);
/* A validated integer field (0 when absent). */
long long request_int(const struct request *r, const char *name);
/* A validated string field, NULL when absent. */
const char *request_str(const struct request *r, const char *name);

#endif
