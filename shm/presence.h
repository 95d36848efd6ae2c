/*
 * presence.h - the host's online-user table in POSIX shared memory.
 *
 * One segment per chatd host, created by the master before it forks, so
 * every worker inherits the same MAP_SHARED mapping; chatctl maps it
 * read-only by name.  Open addressing on the user id.  All functions are
 * safe to call from several processes at once and stay correct when a
 * process is SIGKILLed in the middle of a call (see presence.c for how).
 */
#ifndef CHATD_PRESENCE_H
#define CHATD_PRESENCE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PRESENCE_NAME_MAX 64	/* bytes of the user name kept per entry */

struct presence;		/* opaque handle onto the mapping */

struct presence_entry {
	uint32_t uid;		/* user id, never 0 */
	uint16_t slot;		/* worker slot that owns the session */
	int32_t pid;		/* pid of that worker */
	uint64_t token;		/* connection token, unique on this host */
	int64_t since;		/* login time, seconds since the epoch */
	char name[PRESENCE_NAME_MAX + 1];
};

enum {
	PRESENCE_OK = 0,
	PRESENCE_ERR = -1,	/* system error, see err buffer / errno */
	PRESENCE_EXISTS = -2,	/* insert: uid already present */
	PRESENCE_FULL = -3,	/* insert: table at capacity */
	PRESENCE_NOTFOUND = -4,	/* lookup/remove: no such uid (or token) */
};

/*
 * Create (replacing any stale segment of that name) and map a table for
 * `capacity` users, mode 0600.  Returns NULL and fills err on failure.
 */
struct presence *presence_create(const char *shm_name, uint32_t capacity,
    char *err, size_t errlen);
/* Map an existing table by name; read-only when `readonly` is non-zero. */
struct presence *presence_open(const char *shm_name, int readonly,
    char *err, size_t errlen);
/* Unmap (does not remove the segment). */
void presence_close(struct presence *p);
/* Remove the segment name; returns 0 or -1 with errno. */
int presence_unlink(const char *shm_name);

uint32_t presence_capacity(const struct presence *p);
uint32_t presence_count(struct presence *p);

/* Insert e; PRESENCE_OK, PRESENCE_EXISTS (out filled with the holder
 * when non-NULL), PRESENCE_FULL. */
int presence_insert(struct presence *p, const struct presence_entry *e,
    struct presence_entry *existing);
/* Copy the entry of uid into out; PRESENCE_OK or PRESENCE_NOTFOUND. */
int presence_lookup(struct presence *p, uint32_t uid,
    struct presence_entry *out);
/* Remove uid only if its token equals `token` (so a stale logout cannot
 * remove a newer session); PRESENCE_OK or PRESENCE_NOTFOUND. */
int presence_remove(struct presence *p, uint32_t uid, uint64_t token);
/* Remove every entry owned by `slot` (and, when pid > 0, that pid);
 * returns the number removed.  Used by the master when a worker dies. */
size_t presence_remove_slot(struct presence *p, uint16_t slot, pid_t pid);
/* Call fn for a consistent snapshot of every entry; stops early when fn
 * returns non-zero.  Returns the number of entries visited. */
size_t presence_foreach(struct presence *p,
    int (*fn)(const struct presence_entry *e, void *arg), void *arg);
/* Number of times a lock was recovered from a dead owner (for stats). */
uint64_t presence_recoveries(struct presence *p);

#endif
