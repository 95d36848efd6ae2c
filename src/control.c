/*
 * control.c - the control socket of control.h.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "control.h"
#include "log.h"
#include "monotime.h"

#define CONTROL_REQUEST_MAX 4096	/* bytes of one request */
/* For reading a whole request, and for writing a whole reply: the master
 * serves nothing else meanwhile, so a client that trickles its bytes in
 * or reads nothing must not hold it longer. */
#define CONTROL_READ_MS 500
#define CONTROL_WRITE_MS 2000

struct control {
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

struct control *
control_open(const struct conf *c, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct control *ctl;
	struct stat st;
	unsigned long mode;
	char *end;
	int fd;

	err[0] = '\0';
	if (c->control_socket[0] == '\0')
		return NULL;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(c->control_socket) >= sizeof(sun.sun_path)) {
		(void)snprintf(err, errlen, "control_socket: path longer than "
		    "%zu bytes", sizeof(sun.sun_path) - 1);
		return NULL;
	}
	mode = strtoul(c->control_mode, &end, 8);
	(void)strcpy(sun.sun_path, c->control_socket);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		(void)snprintf(err, errlen, "socket: %s", strerror(errno));
		return NULL;
	}
	/* A socket file left by a chatd that died is replaced; one that
	 * answers belongs to a running chatd (with another presence_shm). */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 ||
	    errno == EAGAIN) {
		(void)snprintf(err, errlen, "control_socket %s: another chatd "
		    "is answering on it", c->control_socket);
		(void)close(fd);
		return NULL;
	}
	(void)close(fd);
	/* Only a socket is replaced: a path that names anything else (a
	 * slip in the file) is left alone. */
	if (lstat(sun.sun_path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		(void)snprintf(err, errlen, "control_socket %s: exists and is "
		    "not a socket", c->control_socket);
		return NULL;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		(void)snprintf(err, errlen, "socket: %s", strerror(errno));
		return NULL;
	}
	(void)unlink(sun.sun_path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    chmod(sun.sun_path, (mode_t)mode) == -1 || listen(fd, 16) == -1) {
		(void)snprintf(err, errlen, "control_socket %s: %s",
		    c->control_socket, strerror(errno));
		(void)close(fd);
		return NULL;
	}
	if ((ctl = calloc(1, sizeof(*ctl))) == NULL)
		fatalx("%s: out of memory", __func__);
	ctl->fd = fd;
	(void)snprintf(ctl->path, sizeof(ctl->path), "%s", sun.sun_path);
	return ctl;
}

int
control_fd(const struct control *ctl)
{
	return ctl->fd;
}

/* Wait for events on fd until deadline (monotime_ms); 1 when ready. */
static int
control_wait(int fd, short events, uint64_t deadline)
{
	struct pollfd pfd = { fd, events, 0 };
	uint64_t now = monotime_ms();

	return now < deadline && poll(&pfd, 1, (int)(deadline - now)) > 0;
}

/* Read one line (bounded in size and time); returns its length or -1. */
static ssize_t
control_read(int fd, char *buf, size_t size)
{
	uint64_t deadline = monotime_ms() + CONTROL_READ_MS;
	size_t len = 0;
	ssize_t n;

	while (len < size - 1) {
		if (!control_wait(fd, POLLIN, deadline))
			return -1;
		n = read(fd, buf + len, size - 1 - len);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		len += (size_t)n;
		if (memchr(buf, '\n', len) != NULL)
			break;
	}
	buf[len] = '\0';
	return (ssize_t)len;
}

/* Write s (bounded in time: by deadline). */
static void
control_write(int fd, const char *s, size_t len, uint64_t deadline)
{
	ssize_t n;

	while (len > 0) {
		if (!control_wait(fd, POLLOUT, deadline))
			return;
		n = send(fd, s, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return;
		}
		s += n;
		len -= (size_t)n;
	}
}

void
control_serve(struct control *ctl, control_fn fn, void *arg)
{
	char buf[CONTROL_REQUEST_MAX];
	struct ucred cred;
	socklen_t credlen = sizeof(cred);
	cJSON *req = NULL, *reply, *cmd, *ver;
	const char *error = NULL;
	uint64_t deadline;
	char *out;
	int fd, privileged;

	fd = accept4(ctl->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1)
		return;
	/* Who is asking decides what they may change. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) == -1) {
		(void)close(fd);
		return;
	}
	privileged = cred.uid == 0 || cred.uid == geteuid();
	reply = cJSON_CreateObject();
	if (control_read(fd, buf, sizeof(buf)) <= 0 ||
	    (req = cJSON_Parse(buf)) == NULL || !cJSON_IsObject(req))
		error = "request is not one JSON object on one line";
	else if (!cJSON_IsNumber(ver = cJSON_GetObjectItem(req, "version")) ||
	    ver->valueint != CONTROL_VERSION)
		error = "unsupported control protocol version (chatctl and "
		    "chatd differ)";
	else if (!cJSON_IsString(cmd = cJSON_GetObjectItem(req, "cmd")))
		error = "missing \"cmd\"";
	else {
		error = fn(arg, cmd->valuestring, req, reply,
		    (unsigned)cred.uid, privileged);
		if (error != NULL)
			log_info("control: \"%s\" from uid %u refused: %s",
			    cmd->valuestring, (unsigned)cred.uid, error);
		else
			log_debug("control: \"%s\" from uid %u",
			    cmd->valuestring, (unsigned)cred.uid);
	}
	if (error != NULL) {
		cJSON_Delete(reply);
		reply = cJSON_CreateObject();
		cJSON_AddStringToObject(reply, "error", error);
	}
	cJSON_AddNumberToObject(reply, "version", CONTROL_VERSION);
	cJSON_AddBoolToObject(reply, "ok", error == NULL);
	if ((out = cJSON_PrintUnformatted(reply)) != NULL) {
		deadline = monotime_ms() + CONTROL_WRITE_MS;
		control_write(fd, out, strlen(out), deadline);
		control_write(fd, "\n", 1, deadline);
		free(out);
	}
	cJSON_Delete(reply);
	cJSON_Delete(req);
	(void)close(fd);
}

void
control_close(struct control *ctl)
{
	if (ctl == NULL)
		return;
	(void)close(ctl->fd);
	(void)unlink(ctl->path);
	free(ctl);
}
