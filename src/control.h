/*
 * control.h - the master's control socket, spoken to by chatctl(8).
 *
 * A Unix stream socket (control_socket, mode control_mode).  A client
 * sends one JSON object on one line, {"version":1,"cmd":NAME,...}, and
 * gets one JSON object on one line back, {"version":1,"ok":true,...} or
 * {"version":1,"ok":false,"error":TEXT}, then the master closes.  The
 * master serves one client at a time, with a short timeout, between
 * signals; it is a tool for operators, not a data path.
 */
#ifndef CHATD_CONTROL_H
#define CHATD_CONTROL_H

#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "conf.h"

#define CONTROL_VERSION 1

struct control;

/*
 * Answer one request: fill reply (an object; "version" and "ok" are
 * added by the caller) and return NULL, or return an error text.  uid is
 * the peer's; `privileged` is set when it is root or chatd's own user.
 * control_serve logs a request at debug, and at info when refused: what
 * changes something is for fn to log at info (it knows which do).
 */
typedef const char *(*control_fn)(void *arg, const char *cmd,
    const cJSON *req, cJSON *reply, unsigned uid, int privileged);

/* Bind and listen; NULL with err on failure.  An empty control_socket
 * disables it (returns NULL with err empty). */
struct control *control_open(const struct conf *c, char *err,
    size_t errlen);
int control_fd(const struct control *ctl);
/* Accept one pending client and serve its request with fn. */
void control_serve(struct control *ctl, control_fn fn, void *arg);
/* Close and remove the socket file. */
void control_close(struct control *ctl);

#endif
