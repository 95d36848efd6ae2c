/*
 * hashslot.h - the host-wide bound on password hashes running at once
 * (hash_concurrency): slots shared by every worker of one chatd, robust
 * to a worker dying while it holds one.
 *
 * The master creates the slot file next to the presence table; each job
 * thread opens its own handle and takes a slot around each argon2id call.
 */
#ifndef CHATD_HASHSLOT_H
#define CHATD_HASHSLOT_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"

/* Room for the name of the slot file: presence_shm plus ".hash". */
#define HASHSLOT_NAME_MAX (CONF_STR_MAX + 8)

struct hashslot;

/* The POSIX shm name of c's slot file ("<presence_shm>.hash"). */
void hashslot_name(const struct conf *c, char *buf, size_t len);
/* Master: create (or reuse) the slot file.  0, or -1 with err. */
int hashslot_create(const char *name, char *err, size_t errlen);
/* Master at stop: remove it. */
void hashslot_unlink(const char *name);

/*
 * A job thread's handle on the slot file, for `nslots` slots.  Each handle
 * must be opened by its own call (a handle shared between threads would
 * let them hold one slot together).  NULL with err.
 */
struct hashslot *hashslot_open(const char *name, int nslots, char *err,
    size_t errlen);
void hashslot_close(struct hashslot *hs);
/*
 * Take a slot, waiting as long as every slot is held.  Returns 0 when
 * one was free at once, 1 after waiting (*wait_ms: how long), -1 when
 * the locks themselves failed (logged; the caller hashes anyway, unbound,
 * rather than refuse logins).  A handle holds at most one slot.
 */
int hashslot_acquire(struct hashslot *hs, uint64_t *wait_ms);
/* Give back the slot taken by hashslot_acquire (no-op after -1). */
void hashslot_release(struct hashslot *hs);

#endif
