/*
 * hashslot.c - hash_concurrency slots as byte-range locks (hashslot.h).
 *
 * Why open-file-description locks: a slot must come back by itself when
 * the worker holding it is SIGKILLed in the middle of an argon2id call,
 * and nothing in a dead process can give it back.  The kernel drops every
 * OFD lock (fcntl F_OFD_SETLK) of an open file description when its last
 * descriptor closes, which includes the death of the process, so no owner
 * pid has to be recorded and no master has to recover anything (compare
 * the robust mutexes of the presence table, which need that care).  A
 * counter in shared memory would leak the slot of a dead holder; a SysV
 * semaphore with SEM_UNDO would survive a killed master and can not be
 * resized on reload.  Unlike classic POSIX record locks, OFD locks belong
 * to the open file description, not to the process, so two job threads of
 * one worker exclude each other as long as each opened the file itself.
 *
 * Layout of the (empty) file: byte 0 is the gate, bytes 1..n the slots.
 * A hash first tries every slot without blocking; only when all are held
 * does it queue at the gate, so at most one thread per host polls for a
 * slot and the others sleep in the kernel.  The gate holder blocks on the
 * only slot when there is one; with several it retries them every
 * HASHSLOT_POLL_MS (a hash takes tens to hundreds of milliseconds, so the
 * poll costs a few system calls per slot freed, and blocking on one
 * chosen slot could leave another free one idle).  A newcomer may take a
 * slot that was just freed ahead of the gate holder: waiting is FIFO only
 * roughly, which is enough for logins that are independent of each other.
 *
 * Slot numbers are fixed bytes, so workers running with different
 * hash_concurrency values (old and new ones during a reload) share the
 * slots they have in common: the bound is then the larger of the two.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>

#include "hashslot.h"
#include "log.h"
#include "monotime.h"

#define HASHSLOT_GATE 0		/* byte of the waiters' queue */
#define HASHSLOT_POLL_MS 2	/* gate holder's retry interval, ms */

struct hashslot {
	int fd;			/* this handle's own open file description */
	int nslots;
	int held;		/* byte of the slot held, -1 when none */
};

void
hashslot_name(const struct conf *c, char *buf, size_t len)
{
	(void)snprintf(buf, len, "%s.hash", c->presence_shm);
}

int
hashslot_create(const char *name, char *err, size_t errlen)
{
	int fd;

	if ((fd = shm_open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1) {
		(void)snprintf(err, errlen, "shm_open %s: %s", name,
		    strerror(errno));
		return -1;
	}
	(void)close(fd);
	return 0;
}

void
hashslot_unlink(const char *name)
{
	(void)shm_unlink(name);
}

struct hashslot *
hashslot_open(const char *name, int nslots, char *err, size_t errlen)
{
	struct hashslot *hs;

	if ((hs = calloc(1, sizeof(*hs))) == NULL) {
		(void)snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* No O_CREAT: a file other than the master's would not bound. */
	if ((hs->fd = shm_open(name, O_RDWR | O_CLOEXEC, 0)) == -1) {
		(void)snprintf(err, errlen, "shm_open %s (hash_concurrency "
		    "slots): %s", name, strerror(errno));
		free(hs);
		return NULL;
	}
	hs->nslots = nslots < 1 ? 1 : nslots;
	hs->held = -1;
	return hs;
}

void
hashslot_close(struct hashslot *hs)
{
	if (hs == NULL)
		return;
	(void)close(hs->fd);	/* drops any lock still held */
	free(hs);
}

/* Lock (F_WRLCK) or unlock (F_UNLCK) one byte; wait when `wait`.
 * 0, or -1 with errno (EAGAIN: held by another handle). */
static int
hashslot_lock(struct hashslot *hs, int byte, short type, int wait)
{
	struct flock fl;
	int rc;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = byte;
	fl.l_len = 1;
	fl.l_pid = 0;		/* required for OFD locks */
	do
		rc = fcntl(hs->fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
	while (rc == -1 && errno == EINTR);
	if (rc == -1 && errno == EACCES)
		errno = EAGAIN;
	return rc;
}

/* Take the first free slot without waiting: 0, 1 when all are held,
 * -1 on error. */
static int
hashslot_try(struct hashslot *hs)
{
	int i;

	for (i = 1; i <= hs->nslots; i++) {
		if (hashslot_lock(hs, i, F_WRLCK, 0) == 0) {
			hs->held = i;
			return 0;
		}
		if (errno != EAGAIN)
			return -1;
	}
	return 1;
}

int
hashslot_acquire(struct hashslot *hs, uint64_t *wait_ms)
{
	struct timespec poll = { 0, HASHSLOT_POLL_MS * 1000000L };
	uint64_t t0;
	int rc, saved;

	*wait_ms = 0;
	if (hs->held != -1)
		fatalx("%s: a slot is already held", __func__);
	if ((rc = hashslot_try(hs)) != 1)
		goto out;
	t0 = monotime_ms();
	if (hashslot_lock(hs, HASHSLOT_GATE, F_WRLCK, 1) == -1) {
		rc = -1;
		goto out;
	}
	if (hs->nslots == 1) {
		if ((rc = hashslot_lock(hs, 1, F_WRLCK, 1)) == 0)
			hs->held = 1;
	} else
		while ((rc = hashslot_try(hs)) == 1)
			(void)nanosleep(&poll, NULL);
	saved = errno;
	(void)hashslot_lock(hs, HASHSLOT_GATE, F_UNLCK, 0);
	errno = saved;
	*wait_ms = monotime_ms() - t0;
	if (rc == 0)
		rc = 1;
out:
	if (rc == -1)
		log_warn("%s: hash_concurrency slot lock failed; hashing "
		    "without a slot", __func__);
	return rc;
}

void
hashslot_release(struct hashslot *hs)
{
	if (hs->held == -1)
		return;
	if (hashslot_lock(hs, hs->held, F_UNLCK, 0) == -1)
		log_warn("%s: unlock of slot %d", __func__, hs->held);
	hs->held = -1;
}
