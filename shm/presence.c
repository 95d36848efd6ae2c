/*
 * presence.c - the host's online-user table in POSIX shared memory.
 *
 * This file owns the segment layout, the open-addressing table in it
 * (linear probing on a hash of the uid, tombstones, in-place rebuild) and
 * the locking and crash-recovery protocol.  Nothing else touches the
 * mapping.
 *
 * Layout.  A header (magic, version, sizes, one robust process-shared
 * mutex, counters) followed by a power-of-two array of buckets.  Each
 * bucket has a sequence word `ver`, a `state` word (EMPTY, LIVE, TOMB),
 * the uid and the rest of the entry packed into 32-bit words.  Every word
 * in the segment that is read without the lock is a lock-free 32-bit
 * atomic, so readers are race-free in the C11 sense and work on a
 * PROT_READ mapping (no read-modify-write is ever done by a reader).
 *
 * Writers.  All changes happen under the mutex.  A bucket is changed as a
 * seqlock: ver++ (odd), write the uid and payload, store the state word
 * with release order, ver++ (even).  The payload of a LIVE bucket is never
 * rewritten: insert only fills EMPTY or TOMB buckets, remove only stores
 * TOMB into the state word.  Hence "state == LIVE" always implies a
 * complete payload, whatever the sequence word says.
 *
 * Readers.  lookup, foreach and count take no lock, on read-write and
 * read-only handles alike.  A bucket is read between two loads of its ver
 * and retried when ver was odd or changed.  Outside a rebuild a bucket
 * never becomes EMPTY again, so a probe chain seen by a reader can only
 * grow and a reader cannot miss an entry that stays put.  Rebuilds move
 * entries, so the header has a table-wide sequence word `gen` (odd while
 * a rebuild runs); readers retry a probe or a walk when gen changed.
 * When a writer takes too long (it may be dead, see below), a read-write
 * handle stops spinning and takes the lock, which recovers the table; a
 * read-only handle cannot lock (the mutex is in read-only memory), so
 * after PRESENCE_RO_WAIT_MS it makes one pass that skips unreadable
 * buckets and ignores gen: it never returns a torn entry, but may miss the
 * one being changed.
 *
 * Tombstones.  Removing leaves TOMB so that probe chains stay intact;
 * insert reuses the first TOMB on its chain.  When tombstones pass a
 * quarter of the table, or the next insert would use the last EMPTY
 * bucket, the table is rebuilt in place under the lock: starting just
 * after an EMPTY bucket e0 (no probe chain crosses an EMPTY bucket) and
 * going once round the table, a TOMB becomes EMPTY and a LIVE entry moves
 * to the first EMPTY bucket on its probe path, if any.  Moves only go
 * backwards along the entry's own path, so entries already visited stay
 * reachable.  There is always an EMPTY bucket (the trigger guarantees
 * live + tombs < buckets), so probes and rebuilds terminate.
 *
 * Crash safety.  A process may be SIGKILLed anywhere, including while it
 * holds the mutex.  The mutex is robust, so the next process to lock it
 * gets EOWNERDEAD and repairs the table before calling
 * pthread_mutex_consistent:
 *   1. Any bucket with an odd ver belonged to the dead writer.  Its state
 *      word decides: LIVE means the payload is complete (either an insert
 *      that got as far as publishing, or a remove/move that had not yet
 *      changed the state); EMPTY or TOMB means the entry is not live and
 *      whatever payload bytes were half-written are garbage nobody reads.
 *      Either way the bucket is already in a consistent state; ver is just
 *      made even again.  So an interrupted insert either happened or did
 *      not, and an interrupted remove either happened or did not.
 *   2. If gen is odd a rebuild was interrupted.  It records its start e0
 *      and how many buckets it has finished in the header, so recovery
 *      resumes it.  Each step is idempotent: a move writes the copy first
 *      and clears the source second, so a crash in between leaves two
 *      identical copies; the resumed step walks the entry's path, finds
 *      the copy before reaching the source, and just clears the source.
 *   3. The live and tombstone counts may be off by the dead writer's last
 *      operation, so both are recomputed by scanning.
 * Then the recoveries counter is incremented.  Recovery is itself
 * idempotent, so a process killed while recovering is handled by the next
 * one (the mutex stays inconsistent until pthread_mutex_consistent).
 *
 * No logging here: errors go to the caller's err buffer or errno.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/types.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "presence.h"

#if ATOMIC_INT_LOCK_FREE != 2
#error "presence.c needs lock-free 32-bit atomics (shared between processes)"
#endif

#define PRESENCE_MAGIC		0x43505253U	/* "CPRS" */
#define PRESENCE_VERSION	1U
#define PRESENCE_CAPACITY_MAX	(1U << 24)	/* entries */
#define PRESENCE_BUCKETS_MIN	8U

#define BUCKET_EMPTY	0U
#define BUCKET_LIVE	1U
#define BUCKET_TOMB	2U

/* Entry fields after the uid, in 32-bit words: slot, pid, token (2),
 * since (2), then the name with its NUL, rounded up. */
#define NAME_WORDS	((PRESENCE_NAME_MAX + 1 + 3) / 4)
#define PAYLOAD_WORDS	(6 + NAME_WORDS)

/* How long readers wait for a writer before changing strategy. */
#define BACKOFF_SPINS		64	/* busy-wait iterations */
#define BACKOFF_YIELDS		256	/* then sched_yield (read-write) */
#define PRESENCE_RO_WAIT_MS	1000	/* then sleep up to (read-only) */
#define BACKOFF_SLEEP_NS	100000L
#define SCAN_RESTARTS		16	/* rebuilds seen by one walk */

#define SCAN_AGAIN	1		/* internal: gave up waiting */

struct bucket {
	_Atomic uint32_t ver;		/* odd while a writer changes it */
	_Atomic uint32_t state;		/* BUCKET_*; stored last, release */
	_Atomic uint32_t uid;
	_Atomic uint32_t w[PAYLOAD_WORDS];
};

struct presence_hdr {
	_Atomic uint32_t magic;		/* stored last by presence_create */
	uint32_t version;
	uint32_t capacity;		/* max live entries */
	uint32_t nbuckets;		/* power of two, > capacity */
	uint32_t hdr_size;		/* layout checks for presence_open */
	uint32_t bucket_size;
	uint64_t map_size;
	pthread_mutex_t lock;
	_Atomic uint32_t gen;		/* odd while a rebuild runs */
	_Atomic uint32_t count;		/* live entries */
	_Atomic uint32_t tombs;		/* tombstones; under the lock */
	_Atomic uint32_t recoveries;
	_Atomic uint32_t rb_start;	/* rebuild: the EMPTY bucket e0 */
	_Atomic uint32_t rb_done;	/* rebuild: buckets finished */
};

#define HDR_SPACE	((sizeof(struct presence_hdr) + 63) & ~(size_t)63)

struct presence {
	struct presence_hdr *hdr;
	struct bucket *b;
	size_t maplen;
	uint32_t mask;
	int readonly;
};

struct backoff {
	unsigned n;
	int readonly;
	struct timespec start;
};

#ifdef PRESENCE_TESTING
/*
 * Test hooks, compiled only into the unit test (which includes this
 * file).  presence_test_crash_at(n) makes the n-th crash point reached
 * from now on SIGKILL the calling process, which is how the test dies at
 * every step of an update.
 */
void presence_test_crash_at(int n);
void presence_test_lock_and_hang(struct presence *p, int notify_fd);

static int presence_test_countdown;

void
presence_test_crash_at(int n)
{
	presence_test_countdown = n;
}

static void
presence_test_crash_point(void)
{
	if (presence_test_countdown > 0 && --presence_test_countdown == 0)
		(void)raise(SIGKILL);
}
#define CRASH_POINT()	presence_test_crash_point()

/* Called by lock-free readers after each bucket they read, so the test
 * can change the table at a chosen point of a walk. */
static void (*presence_test_read_hook)(uint32_t bucket);
#define READ_POINT(i) do {						\
	if (presence_test_read_hook != NULL)				\
		presence_test_read_hook(i);				\
} while (0)
#else
#define CRASH_POINT()	do { } while (0)
#define READ_POINT(i)	do { } while (0)
#endif

static int presence_lock(struct presence *);
static void presence_unlock(struct presence *);

/* lowbias32 (C. Wellons): a fast, well-mixing 32-bit integer hash. */
static uint32_t
uid_hash(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352dU;
	x ^= x >> 15;
	x *= 0x846ca68bU;
	x ^= x >> 16;
	return x;
}

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static uint32_t
buckets_for(uint32_t capacity)
{
	uint32_t want, n;

	/* Keep the load factor at or below about 3/4. */
	want = capacity + capacity / 3 + 1;
	for (n = PRESENCE_BUCKETS_MIN; n < want; n <<= 1)
		;
	return n;
}

static uint64_t
map_size_for(uint32_t nbuckets)
{
	return HDR_SPACE + (uint64_t)nbuckets * sizeof(struct bucket);
}

static void
entry_pack(uint32_t w[PAYLOAD_WORDS], const struct presence_entry *e)
{
	char name[NAME_WORDS * 4];

	memset(name, 0, sizeof(name));
	memcpy(name, e->name, strnlen(e->name, PRESENCE_NAME_MAX));
	w[0] = e->slot;
	w[1] = (uint32_t)e->pid;
	w[2] = (uint32_t)e->token;
	w[3] = (uint32_t)(e->token >> 32);
	w[4] = (uint32_t)(uint64_t)e->since;
	w[5] = (uint32_t)((uint64_t)e->since >> 32);
	memcpy(&w[6], name, sizeof(name));
}

static void
entry_unpack(struct presence_entry *e, uint32_t uid,
    const uint32_t w[PAYLOAD_WORDS])
{
	memset(e, 0, sizeof(*e));
	e->uid = uid;
	e->slot = (uint16_t)w[0];
	e->pid = (int32_t)w[1];
	e->token = (uint64_t)w[2] | (uint64_t)w[3] << 32;
	e->since = (int64_t)((uint64_t)w[4] | (uint64_t)w[5] << 32);
	memcpy(e->name, &w[6], PRESENCE_NAME_MAX);
	e->name[PRESENCE_NAME_MAX] = '\0';
}

/*
 * Writer side of the bucket seqlock; the lock must be held.  Fill an
 * EMPTY or TOMB bucket with a live entry: payload first, then the state
 * word with release order, so that LIVE implies a complete payload even
 * to someone looking after this process died.
 */
static void
bucket_fill_locked(struct bucket *b, uint32_t uid,
    const uint32_t w[PAYLOAD_WORDS])
{
	uint32_t v;
	int i;

	v = atomic_load_explicit(&b->ver, memory_order_relaxed);
	atomic_store_explicit(&b->ver, v + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	CRASH_POINT();
	atomic_store_explicit(&b->uid, uid, memory_order_relaxed);
	for (i = 0; i < PAYLOAD_WORDS; i++) {
		atomic_store_explicit(&b->w[i], w[i], memory_order_relaxed);
		if (i == PAYLOAD_WORDS / 2)
			CRASH_POINT();
	}
	CRASH_POINT();
	atomic_store_explicit(&b->state, BUCKET_LIVE, memory_order_release);
	CRASH_POINT();
	atomic_store_explicit(&b->ver, v + 2, memory_order_release);
	CRASH_POINT();
}

/* Change only the state word of a bucket; the lock must be held. */
static void
bucket_set_state_locked(struct bucket *b, uint32_t state)
{
	uint32_t v;

	v = atomic_load_explicit(&b->ver, memory_order_relaxed);
	atomic_store_explicit(&b->ver, v + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	CRASH_POINT();
	atomic_store_explicit(&b->state, state, memory_order_release);
	CRASH_POINT();
	atomic_store_explicit(&b->ver, v + 2, memory_order_release);
	CRASH_POINT();
}

static void
bucket_payload(const struct bucket *b, uint32_t w[PAYLOAD_WORDS])
{
	int i;

	for (i = 0; i < PAYLOAD_WORDS; i++)
		w[i] = atomic_load_explicit(&b->w[i], memory_order_relaxed);
}

/*
 * Reader side of the bucket seqlock.  Reads the state and uid, and the
 * entry into *out when the bucket is LIVE and `want` is 0 or its uid.
 * Returns 0, or -1 when a writer was in the bucket (try again).
 */
static int
bucket_read(const struct bucket *b, uint32_t want, uint32_t *state,
    uint32_t *uid, struct presence_entry *out)
{
	uint32_t v1, v2, st, u, w[PAYLOAD_WORDS];
	int copy;

	v1 = atomic_load_explicit(&b->ver, memory_order_acquire);
	if (v1 & 1)
		return -1;
	st = atomic_load_explicit(&b->state, memory_order_relaxed);
	u = atomic_load_explicit(&b->uid, memory_order_relaxed);
	copy = out != NULL && st == BUCKET_LIVE && (want == 0 || u == want);
	if (copy)
		bucket_payload(b, w);
	atomic_thread_fence(memory_order_acquire);
	v2 = atomic_load_explicit(&b->ver, memory_order_relaxed);
	if (v1 != v2)
		return -1;
	*state = st;
	*uid = u;
	if (copy)
		entry_unpack(out, u, w);
	return 0;
}

static void
backoff_init(struct backoff *bo, int readonly)
{
	bo->n = 0;
	bo->readonly = readonly;
}

/*
 * One step of waiting for a writer.  Returns 0 to try again, -1 when the
 * caller should stop waiting: a read-write handle then takes the lock
 * (which also recovers from a dead writer), a read-only one falls back
 * to a best-effort pass.
 */
static int
backoff_wait(struct backoff *bo)
{
	struct timespec now, ts;
	long ms;

	if (bo->n < BACKOFF_SPINS) {
		bo->n++;
		cpu_relax();
		return 0;
	}
	if (!bo->readonly) {
		if (bo->n >= BACKOFF_SPINS + BACKOFF_YIELDS)
			return -1;
		bo->n++;
		(void)sched_yield();
		return 0;
	}
	if (bo->n == BACKOFF_SPINS) {
		bo->n++;
		(void)clock_gettime(CLOCK_MONOTONIC, &bo->start);
	} else {
		(void)clock_gettime(CLOCK_MONOTONIC, &now);
		ms = (now.tv_sec - bo->start.tv_sec) * 1000 +
		    (now.tv_nsec - bo->start.tv_nsec) / 1000000;
		if (ms >= PRESENCE_RO_WAIT_MS)
			return -1;
	}
	ts.tv_sec = 0;
	ts.tv_nsec = BACKOFF_SLEEP_NS;
	(void)nanosleep(&ts, NULL);
	return 0;
}

/*
 * Read bucket i, waiting for a writer unless `besteffort`.  Returns 0, or
 * -1 when it stayed unreadable.
 */
static int
bucket_read_wait(const struct presence *p, uint32_t i, uint32_t want,
    uint32_t *state, uint32_t *uid, struct presence_entry *out,
    int besteffort)
{
	struct backoff bo;

	backoff_init(&bo, p->readonly);
	while (bucket_read(&p->b[i], want, state, uid, out) == -1)
		if (besteffort || backoff_wait(&bo) == -1)
			return -1;
	return 0;
}

/* Start a walk: wait for an even gen (unless besteffort). 0 or -1. */
static int
gen_begin(const struct presence *p, uint32_t *g, int besteffort)
{
	struct backoff bo;

	backoff_init(&bo, p->readonly);
	for (;;) {
		*g = atomic_load_explicit(&p->hdr->gen, memory_order_acquire);
		if ((*g & 1) == 0 || besteffort)
			return 0;
		if (backoff_wait(&bo) == -1)
			return -1;
	}
}

/* End a walk: 1 when no rebuild ran since gen_begin. */
static int
gen_unchanged(const struct presence *p, uint32_t g)
{
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(&p->hdr->gen, memory_order_relaxed) == g;
}

/*
 * Find uid without the lock.  Returns PRESENCE_OK, PRESENCE_NOTFOUND, or
 * SCAN_AGAIN when it stopped waiting for writers.  With `besteffort` it
 * never waits: unreadable buckets are skipped and gen is not checked
 * (also used under the lock, where nothing can be in flux).
 */
static int
lookup_nolock(const struct presence *p, uint32_t uid,
    struct presence_entry *out, int besteffort)
{
	struct presence_entry tmp;
	uint32_t g, i, n, st, u;
	int restarts, rc;

	memset(&tmp, 0, sizeof(tmp));
	for (restarts = 0; restarts < SCAN_RESTARTS; restarts++) {
		if (gen_begin(p, &g, besteffort) == -1)
			return SCAN_AGAIN;
		rc = PRESENCE_NOTFOUND;
		i = uid_hash(uid) & p->mask;
		for (n = 0; n <= p->mask; n++, i = (i + 1) & p->mask) {
			if (bucket_read_wait(p, i, uid, &st, &u, &tmp,
			    besteffort) == -1) {
				if (!besteffort)
					return SCAN_AGAIN;
				continue;
			}
			READ_POINT(i);
			if (st == BUCKET_EMPTY)
				break;
			if (st == BUCKET_LIVE && u == uid) {
				rc = PRESENCE_OK;
				break;
			}
		}
		if (besteffort || gen_unchanged(p, g)) {
			if (rc == PRESENCE_OK && out != NULL)
				*out = tmp;
			return rc;
		}
	}
	return SCAN_AGAIN;
}

struct snapshot {
	struct presence_entry *e;
	size_t n;
	size_t cap;
};

static int
snapshot_add(struct snapshot *s, const struct presence_entry *e)
{
	struct presence_entry *ne;
	size_t ncap;

	if (s->n == s->cap) {
		ncap = s->cap ? s->cap * 2 : 64;
		ne = realloc(s->e, ncap * sizeof(*ne));
		if (ne == NULL)
			return -1;
		s->e = ne;
		s->cap = ncap;
	}
	s->e[s->n++] = *e;
	return 0;
}

/*
 * Copy every live entry into s without the lock.  Returns 0, -1 on
 * allocation failure, or SCAN_AGAIN as lookup_nolock does.
 */
static int
snapshot_nolock(const struct presence *p, struct snapshot *s,
    int besteffort)
{
	struct presence_entry tmp;
	uint32_t g, i, st, u;
	int restarts;

	for (restarts = 0; restarts < SCAN_RESTARTS; restarts++) {
		if (gen_begin(p, &g, besteffort) == -1)
			return SCAN_AGAIN;
		s->n = 0;
		for (i = 0; i <= p->mask; i++) {
			if (bucket_read_wait(p, i, 0, &st, &u, &tmp,
			    besteffort) == -1) {
				if (!besteffort)
					return SCAN_AGAIN;
				continue;
			}
			READ_POINT(i);
			if (st == BUCKET_LIVE && snapshot_add(s, &tmp) == -1)
				return -1;
		}
		if (besteffort || gen_unchanged(p, g))
			return 0;
	}
	return SCAN_AGAIN;
}

/*
 * Rebuild step for bucket i (see the top of the file); idempotent, so a
 * resumed rebuild may run it again after a crash in the middle.
 */
static void
rebuild_step_locked(struct presence *p, uint32_t i)
{
	struct bucket *b = &p->b[i], *d;
	uint32_t j, n, st, uid, w[PAYLOAD_WORDS];

	st = atomic_load_explicit(&b->state, memory_order_acquire);
	if (st == BUCKET_TOMB) {
		bucket_set_state_locked(b, BUCKET_EMPTY);
		return;
	}
	if (st != BUCKET_LIVE)
		return;
	uid = atomic_load_explicit(&b->uid, memory_order_relaxed);
	j = uid_hash(uid) & p->mask;
	for (n = 0; j != i && n <= p->mask; n++, j = (j + 1) & p->mask) {
		d = &p->b[j];
		st = atomic_load_explicit(&d->state, memory_order_acquire);
		if (st == BUCKET_EMPTY) {
			bucket_payload(b, w);
			bucket_fill_locked(d, uid, w);
			bucket_set_state_locked(b, BUCKET_EMPTY);
			return;
		}
		if (st == BUCKET_LIVE &&
		    atomic_load_explicit(&d->uid, memory_order_relaxed) ==
		    uid) {
			/* The copy made before a crash: drop the source. */
			bucket_set_state_locked(b, BUCKET_EMPTY);
			return;
		}
	}
}

/* Run (or resume) the rebuild recorded in rb_start/rb_done; gen is odd. */
static void
rebuild_run_locked(struct presence *p)
{
	struct presence_hdr *h = p->hdr;
	uint32_t e0, done;

	e0 = atomic_load_explicit(&h->rb_start, memory_order_acquire);
	done = atomic_load_explicit(&h->rb_done, memory_order_acquire);
	for (; done < p->mask; done++) {
		rebuild_step_locked(p, (e0 + 1 + done) & p->mask);
		atomic_store_explicit(&h->rb_done, done + 1,
		    memory_order_release);
		CRASH_POINT();
	}
	atomic_store_explicit(&h->tombs, 0, memory_order_relaxed);
	atomic_store_explicit(&h->gen,
	    atomic_load_explicit(&h->gen, memory_order_relaxed) + 1,
	    memory_order_release);
}

static void
rebuild_locked(struct presence *p)
{
	struct presence_hdr *h = p->hdr;
	uint32_t i, g;

	for (i = 0; i <= p->mask; i++)
		if (atomic_load_explicit(&p->b[i].state,
		    memory_order_relaxed) == BUCKET_EMPTY)
			break;
	if (i > p->mask)
		return;		/* cannot happen: see the invariant above */
	atomic_store_explicit(&h->rb_start, i, memory_order_release);
	atomic_store_explicit(&h->rb_done, 0, memory_order_release);
	g = atomic_load_explicit(&h->gen, memory_order_relaxed);
	atomic_store_explicit(&h->gen, g + 1, memory_order_release);
	atomic_thread_fence(memory_order_release);
	CRASH_POINT();
	rebuild_run_locked(p);
}

/*
 * Rebuild when tombstones pass a quarter of the table, or when the next
 * insert could take the last EMPTY bucket (probes need one to stop).
 */
static void
maybe_rebuild_locked(struct presence *p)
{
	uint32_t live, tombs, nb = p->mask + 1;

	live = atomic_load_explicit(&p->hdr->count, memory_order_relaxed);
	tombs = atomic_load_explicit(&p->hdr->tombs, memory_order_relaxed);
	if (tombs > nb / 4 || (tombs > 0 && live + tombs + 1 >= nb))
		rebuild_locked(p);
}

/* Repair after a dead lock owner; see the top of the file. */
static void
recover_locked(struct presence *p)
{
	struct presence_hdr *h = p->hdr;
	struct bucket *b;
	uint32_t i, v, st, live = 0, tombs = 0;

	for (i = 0; i <= p->mask; i++) {
		b = &p->b[i];
		v = atomic_load_explicit(&b->ver, memory_order_acquire);
		if (v & 1)
			atomic_store_explicit(&b->ver, v + 1,
			    memory_order_release);
	}
	if (atomic_load_explicit(&h->gen, memory_order_acquire) & 1)
		rebuild_run_locked(p);
	for (i = 0; i <= p->mask; i++) {
		st = atomic_load_explicit(&p->b[i].state,
		    memory_order_acquire);
		if (st == BUCKET_LIVE)
			live++;
		else if (st == BUCKET_TOMB)
			tombs++;
	}
	atomic_store_explicit(&h->count, live, memory_order_relaxed);
	atomic_store_explicit(&h->tombs, tombs, memory_order_relaxed);
	atomic_store_explicit(&h->recoveries,
	    atomic_load_explicit(&h->recoveries, memory_order_relaxed) + 1,
	    memory_order_relaxed);
}

/* Lock the table, repairing it if the previous owner died.  0 or -1. */
static int
presence_lock(struct presence *p)
{
	int rc;

	rc = pthread_mutex_lock(&p->hdr->lock);
	if (rc == EOWNERDEAD) {
		recover_locked(p);
		rc = pthread_mutex_consistent(&p->hdr->lock);
		if (rc != 0) {
			(void)pthread_mutex_unlock(&p->hdr->lock);
			errno = rc;
			return -1;
		}
		return 0;
	}
	if (rc != 0) {
		errno = rc;
		return -1;
	}
	return 0;
}

static void
presence_unlock(struct presence *p)
{
	(void)pthread_mutex_unlock(&p->hdr->lock);
}

#ifdef PRESENCE_TESTING
/*
 * Take the lock, write one byte to notify_fd and wait to be killed, so
 * the test can SIGKILL a process that holds the lock.
 */
void
presence_test_lock_and_hang(struct presence *p, int notify_fd)
{
	char c = 'L';

	if (presence_lock(p) == -1)
		_exit(1);
	(void)write(notify_fd, &c, 1);
	for (;;)
		(void)pause();
}
#endif

static struct presence *
presence_map(int fd, int readonly, size_t len, char *err, size_t errlen,
    const char *name)
{
	struct presence *p;
	void *m;

	m = mmap(NULL, len, readonly ? PROT_READ : PROT_READ | PROT_WRITE,
	    MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		(void)snprintf(err, errlen, "presence: mmap %s: %s", name,
		    strerror(errno));
		return NULL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		(void)snprintf(err, errlen, "presence: %s: %s", name,
		    strerror(errno));
		(void)munmap(m, len);
		return NULL;
	}
	p->hdr = m;
	p->b = (struct bucket *)(void *)((char *)m + HDR_SPACE);
	p->maplen = len;
	p->readonly = readonly;
	return p;
}

struct presence *
presence_create(const char *shm_name, uint32_t capacity, char *err,
    size_t errlen)
{
	struct presence *p;
	struct presence_hdr *h;
	pthread_mutexattr_t ma;
	uint64_t size;
	uint32_t nb;
	int fd, rc, saved;

	if (capacity == 0 || capacity > PRESENCE_CAPACITY_MAX) {
		(void)snprintf(err, errlen, "presence: capacity %u out of "
		    "range 1..%u", capacity, PRESENCE_CAPACITY_MAX);
		errno = EINVAL;
		return NULL;
	}
	nb = buckets_for(capacity);
	size = map_size_for(nb);
	if (size > SIZE_MAX || (uint64_t)(off_t)size != size) {
		(void)snprintf(err, errlen, "presence: capacity %u too large",
		    capacity);
		errno = EINVAL;
		return NULL;
	}

	/* A segment left by an earlier run is stale: start afresh. */
	if (shm_unlink(shm_name) == -1 && errno != ENOENT) {
		(void)snprintf(err, errlen, "presence: shm_unlink %s: %s",
		    shm_name, strerror(errno));
		return NULL;
	}
	fd = shm_open(shm_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1) {
		(void)snprintf(err, errlen, "presence: shm_open %s: %s",
		    shm_name, strerror(errno));
		return NULL;
	}
	if (ftruncate(fd, (off_t)size) == -1) {
		(void)snprintf(err, errlen, "presence: ftruncate %s to %llu "
		    "bytes: %s", shm_name, (unsigned long long)size,
		    strerror(errno));
		goto fail;
	}
	/* Allocate the pages now, so a full /dev/shm fails here rather
	 * than as SIGBUS in a worker touching a new page later. */
	if ((rc = posix_fallocate(fd, 0, (off_t)size)) != 0) {
		errno = rc;
		(void)snprintf(err, errlen, "presence: allocate %llu bytes "
		    "for %s: %s", (unsigned long long)size, shm_name,
		    strerror(errno));
		goto fail;
	}
	if ((p = presence_map(fd, 0, (size_t)size, err, errlen,
	    shm_name)) == NULL)
		goto fail;
	(void)close(fd);
	p->mask = nb - 1;

	h = p->hdr;
	h->version = PRESENCE_VERSION;
	h->capacity = capacity;
	h->nbuckets = nb;
	h->hdr_size = (uint32_t)sizeof(*h);
	h->bucket_size = (uint32_t)sizeof(struct bucket);
	h->map_size = size;
	if ((rc = pthread_mutexattr_init(&ma)) != 0 ||
	    (rc = pthread_mutexattr_setpshared(&ma,
	    PTHREAD_PROCESS_SHARED)) != 0 ||
	    (rc = pthread_mutexattr_setrobust(&ma,
	    PTHREAD_MUTEX_ROBUST)) != 0 ||
	    (rc = pthread_mutex_init(&h->lock, &ma)) != 0) {
		(void)snprintf(err, errlen, "presence: %s: robust "
		    "process-shared mutex: %s", shm_name, strerror(rc));
		presence_close(p);
		(void)shm_unlink(shm_name);
		errno = rc;
		return NULL;
	}
	(void)pthread_mutexattr_destroy(&ma);
	atomic_store_explicit(&h->magic, PRESENCE_MAGIC, memory_order_release);
	return p;

fail:
	saved = errno;
	(void)close(fd);
	(void)shm_unlink(shm_name);
	errno = saved;
	return NULL;
}

struct presence *
presence_open(const char *shm_name, int readonly, char *err, size_t errlen)
{
	struct presence *p;
	struct presence_hdr *h;
	struct stat st;
	int fd, saved;

	fd = shm_open(shm_name, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC, 0);
	if (fd == -1) {
		(void)snprintf(err, errlen, "presence: shm_open %s: %s",
		    shm_name, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1) {
		(void)snprintf(err, errlen, "presence: fstat %s: %s",
		    shm_name, strerror(errno));
		goto fail;
	}
	if (st.st_size < (off_t)HDR_SPACE || (uint64_t)st.st_size > SIZE_MAX) {
		(void)snprintf(err, errlen, "presence: %s: not a presence "
		    "table (size %lld)", shm_name, (long long)st.st_size);
		errno = EINVAL;
		goto fail;
	}
	if ((p = presence_map(fd, readonly, (size_t)st.st_size, err, errlen,
	    shm_name)) == NULL)
		goto fail;
	(void)close(fd);

	h = p->hdr;
	if (atomic_load_explicit(&h->magic, memory_order_acquire) !=
	    PRESENCE_MAGIC) {
		(void)snprintf(err, errlen, "presence: %s: bad magic (not a "
		    "presence table, or not initialised yet)", shm_name);
		goto bad;
	}
	if (h->version != PRESENCE_VERSION ||
	    h->hdr_size != sizeof(*h) ||
	    h->bucket_size != sizeof(struct bucket)) {
		(void)snprintf(err, errlen, "presence: %s: layout version %u "
		    "(header %u, bucket %u bytes) does not match this program's "
		    "%u (%zu, %zu)", shm_name, h->version, h->hdr_size,
		    h->bucket_size, PRESENCE_VERSION, sizeof(*h),
		    sizeof(struct bucket));
		goto bad;
	}
	if (h->capacity == 0 || h->capacity > PRESENCE_CAPACITY_MAX ||
	    h->nbuckets != buckets_for(h->capacity) ||
	    h->map_size != map_size_for(h->nbuckets) ||
	    h->map_size != (uint64_t)st.st_size) {
		(void)snprintf(err, errlen, "presence: %s: inconsistent header "
		    "(capacity %u, %u buckets, %llu bytes, file %lld bytes)",
		    shm_name, h->capacity, h->nbuckets,
		    (unsigned long long)h->map_size, (long long)st.st_size);
		goto bad;
	}
	p->mask = h->nbuckets - 1;
	return p;

bad:
	presence_close(p);
	errno = EINVAL;
	return NULL;
fail:
	saved = errno;
	(void)close(fd);
	errno = saved;
	return NULL;
}

void
presence_close(struct presence *p)
{
	if (p == NULL)
		return;
	(void)munmap(p->hdr, p->maplen);
	free(p);
}

int
presence_unlink(const char *shm_name)
{
	return shm_unlink(shm_name);
}

uint32_t
presence_capacity(const struct presence *p)
{
	return p->hdr->capacity;
}

uint32_t
presence_count(struct presence *p)
{
	return atomic_load_explicit(&p->hdr->count, memory_order_relaxed);
}

static int
insert_locked(struct presence *p, const struct presence_entry *e,
    struct presence_entry *existing)
{
	struct presence_hdr *h = p->hdr;
	struct bucket *b;
	uint32_t i, n, st, free_i = UINT32_MAX, w[PAYLOAD_WORDS];

	i = uid_hash(e->uid) & p->mask;
	for (n = 0; n <= p->mask; n++, i = (i + 1) & p->mask) {
		b = &p->b[i];
		st = atomic_load_explicit(&b->state, memory_order_relaxed);
		if (st == BUCKET_EMPTY) {
			if (free_i == UINT32_MAX)
				free_i = i;
			break;
		}
		if (st == BUCKET_TOMB) {
			if (free_i == UINT32_MAX)
				free_i = i;
			continue;
		}
		if (atomic_load_explicit(&b->uid, memory_order_relaxed) ==
		    e->uid) {
			if (existing != NULL) {
				bucket_payload(b, w);
				entry_unpack(existing, e->uid, w);
			}
			return PRESENCE_EXISTS;
		}
	}
	if (atomic_load_explicit(&h->count, memory_order_relaxed) >=
	    h->capacity || free_i == UINT32_MAX)
		return PRESENCE_FULL;

	b = &p->b[free_i];
	st = atomic_load_explicit(&b->state, memory_order_relaxed);
	entry_pack(w, e);
	bucket_fill_locked(b, e->uid, w);
	if (st == BUCKET_TOMB)
		atomic_store_explicit(&h->tombs,
		    atomic_load_explicit(&h->tombs, memory_order_relaxed) - 1,
		    memory_order_relaxed);
	atomic_store_explicit(&h->count,
	    atomic_load_explicit(&h->count, memory_order_relaxed) + 1,
	    memory_order_relaxed);
	return PRESENCE_OK;
}

int
presence_insert(struct presence *p, const struct presence_entry *e,
    struct presence_entry *existing)
{
	int rc;

	if (p->readonly) {
		errno = EROFS;
		return PRESENCE_ERR;
	}
	if (e == NULL || e->uid == 0) {
		errno = EINVAL;
		return PRESENCE_ERR;
	}
	if (presence_lock(p) == -1)
		return PRESENCE_ERR;
	maybe_rebuild_locked(p);
	rc = insert_locked(p, e, existing);
	presence_unlock(p);
	return rc;
}

int
presence_lookup(struct presence *p, uint32_t uid, struct presence_entry *out)
{
	int rc;

	if (uid == 0)
		return PRESENCE_NOTFOUND;
	rc = lookup_nolock(p, uid, out, 0);
	if (rc != SCAN_AGAIN)
		return rc;
	/* A writer is slow or dead.  Read under the lock if we can. */
	if (p->readonly || presence_lock(p) == -1)
		return lookup_nolock(p, uid, out, 1);
	rc = lookup_nolock(p, uid, out, 1);
	presence_unlock(p);
	return rc;
}

/* Turn bucket i into a tombstone; the lock must be held. */
static void
remove_locked(struct presence *p, uint32_t i)
{
	struct presence_hdr *h = p->hdr;

	bucket_set_state_locked(&p->b[i], BUCKET_TOMB);
	atomic_store_explicit(&h->count,
	    atomic_load_explicit(&h->count, memory_order_relaxed) - 1,
	    memory_order_relaxed);
	atomic_store_explicit(&h->tombs,
	    atomic_load_explicit(&h->tombs, memory_order_relaxed) + 1,
	    memory_order_relaxed);
}

int
presence_remove(struct presence *p, uint32_t uid, uint64_t token)
{
	struct bucket *b;
	uint32_t i, n, st, w[PAYLOAD_WORDS];
	int rc = PRESENCE_NOTFOUND;

	if (p->readonly) {
		errno = EROFS;
		return PRESENCE_ERR;
	}
	if (uid == 0)
		return PRESENCE_NOTFOUND;
	if (presence_lock(p) == -1)
		return PRESENCE_ERR;
	i = uid_hash(uid) & p->mask;
	for (n = 0; n <= p->mask; n++, i = (i + 1) & p->mask) {
		b = &p->b[i];
		st = atomic_load_explicit(&b->state, memory_order_relaxed);
		if (st == BUCKET_EMPTY)
			break;
		if (st != BUCKET_LIVE ||
		    atomic_load_explicit(&b->uid, memory_order_relaxed) != uid)
			continue;
		bucket_payload(b, w);
		if (((uint64_t)w[2] | (uint64_t)w[3] << 32) == token) {
			remove_locked(p, i);
			rc = PRESENCE_OK;
		}
		break;
	}
	maybe_rebuild_locked(p);
	presence_unlock(p);
	return rc;
}

size_t
presence_remove_slot(struct presence *p, uint16_t slot, pid_t pid)
{
	struct bucket *b;
	uint32_t i, w[PAYLOAD_WORDS];
	size_t removed = 0;

	if (p->readonly) {
		errno = EROFS;
		return 0;
	}
	if (presence_lock(p) == -1)
		return 0;
	for (i = 0; i <= p->mask; i++) {
		b = &p->b[i];
		if (atomic_load_explicit(&b->state, memory_order_relaxed) !=
		    BUCKET_LIVE)
			continue;
		bucket_payload(b, w);
		if (w[0] != slot || (pid > 0 && (int32_t)w[1] != pid))
			continue;
		remove_locked(p, i);
		removed++;
	}
	maybe_rebuild_locked(p);
	presence_unlock(p);
	return removed;
}

/*
 * The walk is lock-free and copies the entries out first, so fn runs
 * with no lock held (it may call back into this module) and never sees a
 * half-written entry.  Entries changed during the walk may or may not be
 * seen; each one seen is as it was at some instant.  Returns 0 with
 * errno ENOMEM when the copy cannot be allocated.
 */
size_t
presence_foreach(struct presence *p,
    int (*fn)(const struct presence_entry *e, void *arg), void *arg)
{
	struct snapshot s = { NULL, 0, 0 };
	size_t i;
	int rc;

	rc = snapshot_nolock(p, &s, 0);
	if (rc == SCAN_AGAIN) {
		if (p->readonly || presence_lock(p) == -1)
			rc = snapshot_nolock(p, &s, 1);
		else {
			rc = snapshot_nolock(p, &s, 1);
			presence_unlock(p);
		}
	}
	if (rc == -1) {
		free(s.e);
		errno = ENOMEM;
		return 0;
	}
	for (i = 0; i < s.n; i++)
		if (fn(&s.e[i], arg) != 0) {
			i++;
			break;
		}
	free(s.e);
	return i;
}

uint64_t
presence_recoveries(struct presence *p)
{
	return atomic_load_explicit(&p->hdr->recoveries, memory_order_relaxed);
}
