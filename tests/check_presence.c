/*
 * check_presence.c - unit tests for shm/presence.c.
 *
 * The module is included rather than linked, with PRESENCE_TESTING, so the
 * tests can reach its internals (bucket layout, hash, lock) and its crash
 * hooks: presence_test_crash_at(n) SIGKILLs the process at the n-th crash
 * point inside an update, presence_test_lock_and_hang() holds the lock
 * until the test kills the process, and presence_test_read_hook runs in
 * lock-free readers between buckets so a rebuild can be slipped into the
 * middle of a probe.
 *
 * Every test unlinks its segment as soon as all handles are open, so a
 * failing test leaves nothing behind in /dev/shm.  Children never call
 * ck_assert; they report through their exit status.
 */
#define PRESENCE_TESTING 1
#include "../shm/presence.c"

#include <sys/wait.h>

#include <check.h>
#include <stdarg.h>

#define CHILD_FAIL(...) do {						\
	fprintf(stderr, "child %ld: ", (long)getpid());			\
	fprintf(stderr, __VA_ARGS__);					\
	fputc('\n', stderr);						\
	_exit(1);							\
} while (0)

static int name_seq;

static const char *
tname(char *buf, size_t len)
{
	(void)snprintf(buf, len, "/chatd-test-%ld-%d", (long)getpid(),
	    name_seq++);
	return buf;
}

/* A fresh table whose name is already unlinked. */
static struct presence *
mktable(uint32_t capacity)
{
	struct presence *p;
	char name[64], err[256];

	p = presence_create(tname(name, sizeof(name)), capacity, err,
	    sizeof(err));
	ck_assert_msg(p != NULL, "%s", err);
	ck_assert_int_eq(presence_unlink(name), 0);
	return p;
}

static struct presence_entry
mk(uint32_t uid, uint16_t slot, int32_t pid, uint64_t token)
{
	struct presence_entry e;

	memset(&e, 0, sizeof(e));
	e.uid = uid;
	e.slot = slot;
	e.pid = pid;
	e.token = token;
	e.since = 1700000000 + (int64_t)uid;
	/* Long names, so that a half-written payload differs from a whole
	 * one (the name spans the middle of the bucket). */
	(void)snprintf(e.name, sizeof(e.name), "user%u-%.*s-%u", uid, 40,
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", uid * 7);
	return e;
}

static int
entry_eq(const struct presence_entry *a, const struct presence_entry *b)
{
	return a->uid == b->uid && a->slot == b->slot && a->pid == b->pid &&
	    a->token == b->token && a->since == b->since &&
	    strcmp(a->name, b->name) == 0;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int whyf(char *, size_t, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static int
whyf(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return -1;
}

/*
 * Check every invariant of the table under the lock (which recovers it
 * first if needed): gen and all ver even, counters match a scan, at least
 * one EMPTY bucket, every live uid unique and reachable from its home
 * bucket without crossing an EMPTY one.  0, or -1 with the reason.
 */
static int
table_check_locked(struct presence *p, char *why, size_t len)
{
	struct presence_hdr *h = p->hdr;
	uint32_t i, j, n, st, live = 0, tombs = 0, empty = 0, *uids;

	if (atomic_load(&h->gen) & 1)
		return whyf(why, len, "gen %u odd", atomic_load(&h->gen));
	if ((uids = calloc(p->mask + 1, sizeof(*uids))) == NULL)
		return whyf(why, len, "calloc");
	for (i = 0; i <= p->mask; i++) {
		if (atomic_load(&p->b[i].ver) & 1) {
			free(uids);
			return whyf(why, len, "bucket %u ver odd", i);
		}
		st = atomic_load(&p->b[i].state);
		if (st == BUCKET_EMPTY) {
			empty++;
			continue;
		}
		if (st == BUCKET_TOMB) {
			tombs++;
			continue;
		}
		if (st != BUCKET_LIVE) {
			free(uids);
			return whyf(why, len, "bucket %u state %u", i, st);
		}
		uids[live++] = atomic_load(&p->b[i].uid);
		j = uid_hash(atomic_load(&p->b[i].uid)) & p->mask;
		for (n = 0; j != i; j = (j + 1) & p->mask, n++)
			if (atomic_load(&p->b[j].state) == BUCKET_EMPTY ||
			    n > p->mask) {
				free(uids);
				return whyf(why, len, "uid %u in bucket %u "
				    "unreachable", atomic_load(&p->b[i].uid),
				    i);
			}
	}
	qsort(uids, live, sizeof(*uids), cmp_u32);
	for (i = 1; i < live; i++)
		if (uids[i] == uids[i - 1]) {
			n = uids[i];
			free(uids);
			return whyf(why, len, "uid %u twice", n);
		}
	free(uids);
	if (live != atomic_load(&h->count))
		return whyf(why, len, "count %u, scan %u",
		    atomic_load(&h->count), live);
	if (tombs != atomic_load(&h->tombs))
		return whyf(why, len, "tombs %u, scan %u",
		    atomic_load(&h->tombs), tombs);
	if (empty == 0)
		return whyf(why, len, "no EMPTY bucket");
	if (live > h->capacity)
		return whyf(why, len, "%u live > capacity %u", live,
		    h->capacity);
	return 0;
}

static int
table_check(struct presence *p, char *why, size_t len)
{
	int rc;

	if (presence_lock(p) == -1)
		return whyf(why, len, "lock: %s", strerror(errno));
	rc = table_check_locked(p, why, len);
	presence_unlock(p);
	return rc;
}

#define ck_table(p) do {						\
	char why_[256];							\
	ck_assert_msg(table_check((p), why_, sizeof(why_)) == 0,	\
	    "table: %s", why_);						\
} while (0)

/* The first `n` uids > `after` whose home bucket is `home`. */
static void
uids_with_home(struct presence *p, uint32_t home, uint32_t after,
    uint32_t *out, int n)
{
	uint32_t u;
	int k = 0;

	for (u = after + 1; k < n; u++)
		if ((uid_hash(u) & p->mask) == home)
			out[k++] = u;
}

START_TEST(test_basic)
{
	struct presence *p;
	struct presence_entry e, out;

	p = mktable(16);
	ck_assert_uint_eq(presence_capacity(p), 16);
	ck_assert_uint_eq(presence_count(p), 0);
	ck_assert_int_eq(presence_lookup(p, 42, &out), PRESENCE_NOTFOUND);

	e = mk(42, 3, 1234, 0xdeadbeefcafef00dULL);
	e.since = -5;		/* negative values survive the packing */
	memset(e.name, 'x', PRESENCE_NAME_MAX);
	e.name[PRESENCE_NAME_MAX] = '\0';
	ck_assert_int_eq(presence_insert(p, &e, NULL), PRESENCE_OK);
	ck_assert_uint_eq(presence_count(p), 1);
	memset(&out, 0, sizeof(out));
	ck_assert_int_eq(presence_lookup(p, 42, &out), PRESENCE_OK);
	ck_assert(entry_eq(&e, &out));
	ck_assert_int_eq(presence_lookup(p, 42, NULL), PRESENCE_OK);
	ck_assert_int_eq(presence_lookup(p, 43, &out), PRESENCE_NOTFOUND);
	ck_assert_int_eq(presence_lookup(p, 0, &out), PRESENCE_NOTFOUND);

	/* A stale logout (wrong token) must not remove the session. */
	ck_assert_int_eq(presence_remove(p, 42, 1), PRESENCE_NOTFOUND);
	ck_assert_int_eq(presence_lookup(p, 42, NULL), PRESENCE_OK);
	ck_assert_int_eq(presence_remove(p, 43, e.token), PRESENCE_NOTFOUND);
	ck_assert_int_eq(presence_remove(p, 42, e.token), PRESENCE_OK);
	ck_assert_int_eq(presence_lookup(p, 42, &out), PRESENCE_NOTFOUND);
	ck_assert_int_eq(presence_remove(p, 42, e.token), PRESENCE_NOTFOUND);
	ck_assert_uint_eq(presence_count(p), 0);

	/* An unterminated name is cut at PRESENCE_NAME_MAX. */
	e = mk(7, 1, 1, 1);
	memset(e.name, 'y', sizeof(e.name));
	ck_assert_int_eq(presence_insert(p, &e, NULL), PRESENCE_OK);
	ck_assert_int_eq(presence_lookup(p, 7, &out), PRESENCE_OK);
	ck_assert_uint_eq(strlen(out.name), PRESENCE_NAME_MAX);

	e = mk(0, 1, 1, 1);
	ck_assert_int_eq(presence_insert(p, &e, NULL), PRESENCE_ERR);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_uint_eq(presence_recoveries(p), 0);
	ck_table(p);
	presence_close(p);
}
END_TEST

START_TEST(test_exists)
{
	struct presence *p;
	struct presence_entry a, b, out;

	p = mktable(16);
	a = mk(1000, 1, 11, 111);
	b = mk(1000, 2, 22, 222);
	ck_assert_int_eq(presence_insert(p, &a, NULL), PRESENCE_OK);
	memset(&out, 0, sizeof(out));
	ck_assert_int_eq(presence_insert(p, &b, &out), PRESENCE_EXISTS);
	ck_assert(entry_eq(&a, &out));
	ck_assert_int_eq(presence_insert(p, &b, NULL), PRESENCE_EXISTS);
	ck_assert_uint_eq(presence_count(p), 1);
	ck_assert_int_eq(presence_lookup(p, 1000, &out), PRESENCE_OK);
	ck_assert(entry_eq(&a, &out));
	presence_close(p);
}
END_TEST

START_TEST(test_full)
{
	struct presence *p;
	struct presence_entry e, out;
	uint32_t u;

	p = mktable(8);
	for (u = 1; u <= 8; u++) {
		e = mk(u, 0, 1, u);
		ck_assert_int_eq(presence_insert(p, &e, NULL), PRESENCE_OK);
	}
	e = mk(9, 0, 1, 9);
	ck_assert_int_eq(presence_insert(p, &e, NULL), PRESENCE_FULL);
	/* A duplicate login is reported as such even when full. */
	e = mk(3, 5, 5, 5);
	ck_assert_int_eq(presence_insert(p, &e, &out), PRESENCE_EXISTS);
	ck_assert_uint_eq(out.token, 3);
	ck_assert_uint_eq(presence_count(p), 8);
	ck_assert_int_eq(presence_remove(p, 5, 5), PRESENCE_OK);
	e = mk(9, 0, 1, 9);
	ck_assert_int_eq(presence_insert(p, &e, NULL), PRESENCE_OK);
	e = mk(10, 0, 1, 10);
	ck_assert_int_eq(presence_insert(p, &e, NULL), PRESENCE_FULL);
	ck_assert_uint_eq(presence_count(p), 8);
	ck_table(p);
	presence_close(p);
}
END_TEST

START_TEST(test_remove_slot)
{
	struct presence *p;
	struct presence_entry e;
	uint32_t u;

	p = mktable(64);
	for (u = 1; u <= 10; u++) {
		e = mk(u, 1, 100, u);
		ck_assert_int_eq(presence_insert(p, &e, NULL), PRESENCE_OK);
	}
	for (u = 11; u <= 15; u++) {
		e = mk(u, 1, 200, u);
		ck_assert_int_eq(presence_insert(p, &e, NULL), PRESENCE_OK);
	}
	for (u = 16; u <= 22; u++) {
		e = mk(u, 2, 100, u);
		ck_assert_int_eq(presence_insert(p, &e, NULL), PRESENCE_OK);
	}
	ck_assert_uint_eq(presence_remove_slot(p, 3, 0), 0);
	ck_assert_uint_eq(presence_remove_slot(p, 1, 300), 0);
	ck_assert_uint_eq(presence_remove_slot(p, 1, 200), 5);
	ck_assert_uint_eq(presence_count(p), 17);
	ck_assert_int_eq(presence_lookup(p, 12, NULL), PRESENCE_NOTFOUND);
	ck_assert_int_eq(presence_lookup(p, 1, NULL), PRESENCE_OK);
	ck_assert_uint_eq(presence_remove_slot(p, 1, 0), 10);
	ck_assert_uint_eq(presence_count(p), 7);
	for (u = 1; u <= 15; u++)
		ck_assert_int_eq(presence_lookup(p, u, NULL),
		    PRESENCE_NOTFOUND);
	for (u = 16; u <= 22; u++)
		ck_assert_int_eq(presence_lookup(p, u, NULL), PRESENCE_OK);
	ck_table(p);
	presence_close(p);
}
END_TEST

struct seen {
	unsigned char hits[256];
	size_t calls;
	size_t stop_after;	/* 0: never stop */
	int bad;
};

static int
seen_fn(const struct presence_entry *e, void *arg)
{
	struct seen *s = arg;
	struct presence_entry want;

	if (e->uid >= 256) {
		s->bad = 1;
		return 0;
	}
	want = mk(e->uid, (uint16_t)(e->uid % 4), 77, e->uid * 3ULL);
	if (!entry_eq(e, &want))
		s->bad = 1;
	s->hits[e->uid]++;
	s->calls++;
	return s->stop_after != 0 && s->calls == s->stop_after;
}

START_TEST(test_foreach)
{
	struct presence *p;
	struct presence_entry e;
	struct seen s;
	uint32_t u;

	p = mktable(200);
	memset(&s, 0, sizeof(s));
	ck_assert_uint_eq(presence_foreach(p, seen_fn, &s), 0);
	ck_assert_uint_eq(s.calls, 0);

	for (u = 1; u <= 150; u++) {
		e = mk(u, (uint16_t)(u % 4), 77, u * 3ULL);
		ck_assert_int_eq(presence_insert(p, &e, NULL), PRESENCE_OK);
	}
	for (u = 1; u <= 150; u += 3)
		ck_assert_int_eq(presence_remove(p, u, u * 3ULL), PRESENCE_OK);

	memset(&s, 0, sizeof(s));
	ck_assert_uint_eq(presence_foreach(p, seen_fn, &s), 100);
	ck_assert_int_eq(s.bad, 0);
	for (u = 1; u <= 150; u++)
		ck_assert_uint_eq(s.hits[u], (u - 1) % 3 == 0 ? 0 : 1);

	memset(&s, 0, sizeof(s));
	s.stop_after = 10;
	ck_assert_uint_eq(presence_foreach(p, seen_fn, &s), 10);
	ck_assert_uint_eq(s.calls, 10);
	presence_close(p);
}
END_TEST

/*
 * Many insert/remove cycles on a small, nearly full table: tombstones must
 * be reused and cleaned up (the table is rebuilt, probe chains stay
 * short) and nothing stable may be lost on the way.
 */
START_TEST(test_tombstone_churn)
{
	struct presence *p;
	struct presence_entry e, out;
	uint32_t u, i, n, dist = 0, gen0;
	int k;

	p = mktable(64);
	for (u = 1; u <= 60; u++) {
		e = mk(u, 0, 1, u);
		ck_assert_int_eq(presence_insert(p, &e, NULL), PRESENCE_OK);
	}
	gen0 = atomic_load(&p->hdr->gen);
	/* ck_assert records every passing check (a write(2) each), so the
	 * hot loop only reports failures. */
	for (i = 0; i < 100000; i++) {
		for (k = 0; k < 4; k++) {
			e = mk(1000 + i * 4 + k, 1, 2, i);
			if (presence_insert(p, &e, NULL) != PRESENCE_OK)
				ck_abort_msg("cycle %u: insert %u", i, e.uid);
		}
		e = mk(999, 1, 2, i);
		if (presence_insert(p, &e, NULL) != PRESENCE_FULL)
			ck_abort_msg("cycle %u: not full", i);
		for (k = 0; k < 4; k++) {
			u = 1000 + i * 4 + k;
			if (presence_lookup(p, u, &out) != PRESENCE_OK ||
			    out.token != i)
				ck_abort_msg("cycle %u: lookup %u", i, u);
			if (presence_remove(p, u, i) != PRESENCE_OK)
				ck_abort_msg("cycle %u: remove %u", i, u);
		}
		if (i % 20000 == 0) {
			ck_table(p);
			for (u = 1; u <= 60; u++)
				ck_assert_int_eq(presence_lookup(p, u, &out),
				    PRESENCE_OK);
		}
	}
	ck_assert_uint_eq(presence_count(p), 60);
	ck_assert_uint_le(atomic_load(&p->hdr->tombs), (p->mask + 1) / 4);
	/* Rebuilds ran (gen goes up by two each). */
	ck_assert_uint_gt((atomic_load(&p->hdr->gen) - gen0) / 2, 100);
	for (u = 1; u <= 60; u++) {
		ck_assert_int_eq(presence_lookup(p, u, &out), PRESENCE_OK);
		ck_assert_uint_eq(out.token, u);
	}
	ck_table(p);
	/* Probe chains stay short: the total distance of the live entries
	 * from their home buckets is what a fresh table would have. */
	for (i = 0; i <= p->mask; i++) {
		if (atomic_load(&p->b[i].state) != BUCKET_LIVE)
			continue;
		n = uid_hash(atomic_load(&p->b[i].uid)) & p->mask;
		dist += (i - n) & p->mask;
	}
	ck_assert_uint_le(dist, 60);
	ck_assert_uint_eq(presence_recoveries(p), 0);
	presence_close(p);
}
END_TEST

START_TEST(test_create_open_errors)
{
	struct presence *p, *old, *q;
	struct presence_entry e;
	char name[64], err[256];
	int fd;

	err[0] = '\0';
	ck_assert_ptr_null(presence_create(tname(name, sizeof(name)), 0, err,
	    sizeof(err)));
	ck_assert(strstr(err, "capacity") != NULL);
	ck_assert_ptr_null(presence_create(name, PRESENCE_CAPACITY_MAX + 1,
	    err, sizeof(err)));

	err[0] = '\0';
	ck_assert_ptr_null(presence_open(name, 1, err, sizeof(err)));
	ck_assert(strstr(err, name) != NULL);

	/* Something that is not a table is refused. */
	fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 65536), 0);
	(void)close(fd);
	err[0] = '\0';
	ck_assert_ptr_null(presence_open(name, 1, err, sizeof(err)));
	ck_assert(strstr(err, "magic") != NULL);

	/* create replaces it (and any stale table) with an empty one. */
	old = presence_create(name, 32, err, sizeof(err));
	ck_assert_msg(old != NULL, "%s", err);
	e = mk(5, 1, 1, 5);
	ck_assert_int_eq(presence_insert(old, &e, NULL), PRESENCE_OK);
	p = presence_create(name, 32, err, sizeof(err));
	ck_assert_msg(p != NULL, "%s", err);
	ck_assert_uint_eq(presence_count(p), 0);
	ck_assert_int_eq(presence_lookup(p, 5, NULL), PRESENCE_NOTFOUND);
	ck_assert_int_eq(presence_lookup(old, 5, NULL), PRESENCE_OK);
	presence_close(old);

	q = presence_open(name, 0, err, sizeof(err));
	ck_assert_msg(q != NULL, "%s", err);
	ck_assert_uint_eq(presence_capacity(q), 32);
	ck_assert_int_eq(presence_insert(q, &e, NULL), PRESENCE_OK);
	ck_assert_int_eq(presence_lookup(p, 5, NULL), PRESENCE_OK);
	presence_close(q);

	/* A truncated segment is refused. */
	fd = shm_open(name, O_RDWR, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)p->maplen - 1), 0);
	(void)close(fd);
	err[0] = '\0';
	ck_assert_ptr_null(presence_open(name, 1, err, sizeof(err)));
	ck_assert(strstr(err, "inconsistent") != NULL);

	ck_assert_int_eq(presence_unlink(name), 0);
	ck_assert_int_eq(presence_unlink(name), -1);
	ck_assert_int_eq(errno, ENOENT);
	presence_close(p);
	presence_close(NULL);
}
END_TEST

START_TEST(test_readonly)
{
	struct presence *p, *ro;
	struct presence_entry e, out;
	struct seen s;
	char name[64], err[256];
	struct stat st;
	mode_t mask;
	int fd;

	p = presence_create(tname(name, sizeof(name)), 100, err, sizeof(err));
	ck_assert_msg(p != NULL, "%s", err);
	fd = shm_open(name, O_RDONLY, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	mask = umask(0);
	(void)umask(mask);
	ck_assert_uint_eq(st.st_mode & 0777, 0600 & ~mask);
	(void)close(fd);

	e = mk(10, 10 % 4, 77, 30);
	ck_assert_int_eq(presence_insert(p, &e, NULL), PRESENCE_OK);
	ro = presence_open(name, 1, err, sizeof(err));
	ck_assert_msg(ro != NULL, "%s", err);
	ck_assert_int_eq(presence_unlink(name), 0);

	ck_assert_uint_eq(presence_capacity(ro), 100);
	ck_assert_uint_eq(presence_count(ro), 1);
	ck_assert_int_eq(presence_lookup(ro, 10, &out), PRESENCE_OK);
	ck_assert(entry_eq(&e, &out));

	/* Later writes are visible through the read-only mapping. */
	e = mk(11, 11 % 4, 77, 33);
	ck_assert_int_eq(presence_insert(p, &e, NULL), PRESENCE_OK);
	ck_assert_int_eq(presence_lookup(ro, 11, &out), PRESENCE_OK);
	ck_assert(entry_eq(&e, &out));
	memset(&s, 0, sizeof(s));
	ck_assert_uint_eq(presence_foreach(ro, seen_fn, &s), 2);
	ck_assert_int_eq(s.bad, 0);
	ck_assert_int_eq(presence_remove(p, 10, 30), PRESENCE_OK);
	ck_assert_int_eq(presence_lookup(ro, 10, &out), PRESENCE_NOTFOUND);
	ck_assert_uint_eq(presence_count(ro), 1);

	/* Writes through it are refused, not attempted. */
	ck_assert_int_eq(presence_insert(ro, &e, NULL), PRESENCE_ERR);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(presence_remove(ro, 11, 33), PRESENCE_ERR);
	errno = 0;
	ck_assert_uint_eq(presence_remove_slot(ro, 11 % 4, 0), 0);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(presence_lookup(p, 11, NULL), PRESENCE_OK);
	presence_close(ro);
	presence_close(p);
}
END_TEST

/* --- several processes at once ------------------------------------- */

#define CONC_WRITERS	4
#define CONC_OWN	1000	/* uids per writer, half kept */
#define CONC_SHARED	300	/* uids every writer fights over */
#define CONC_ROUNDS	20
#define CONC_STABLE	200	/* inserted before, never touched */

static uint32_t
own_uid(int c, uint32_t k)
{
	return 1 + (uint32_t)c * 10000 + k;
}

static uint64_t
own_token(int c, uint32_t uid)
{
	return (uint64_t)(c + 1) << 32 | uid;
}

static void
conc_writer(struct presence *p, int c)
{
	struct presence_entry e, out;
	uint32_t k, u;
	uint64_t tok;
	int r, rc;

	for (k = 0; k < CONC_OWN; k++) {
		u = own_uid(c, k);
		e = mk(u, (uint16_t)c, getpid(), own_token(c, u));
		if ((rc = presence_insert(p, &e, NULL)) != PRESENCE_OK)
			CHILD_FAIL("insert own %u: %d", u, rc);
		if (presence_lookup(p, u, &out) != PRESENCE_OK ||
		    !entry_eq(&e, &out))
			CHILD_FAIL("lookup own %u", u);
	}
	for (r = 0; r < CONC_ROUNDS; r++) {
		for (k = 0; k < CONC_SHARED; k++) {
			u = 500001 + k;
			tok = (uint64_t)(c + 1) << 32 | (uint64_t)r << 16 | k;
			e = mk(u, (uint16_t)c, getpid(), tok);
			rc = presence_insert(p, &e, &out);
			if (rc == PRESENCE_OK) {
				/* Only we can remove it: the token is ours. */
				if (presence_lookup(p, u, &out) !=
				    PRESENCE_OK || out.token != tok)
					CHILD_FAIL("lookup shared %u", u);
				if (presence_remove(p, u, tok) != PRESENCE_OK)
					CHILD_FAIL("remove shared %u", u);
			} else if (rc == PRESENCE_EXISTS) {
				if (out.uid != u || out.token >> 32 == 0 ||
				    out.token >> 32 > CONC_WRITERS ||
				    out.token >> 32 == (uint64_t)c + 1)
					CHILD_FAIL("bad holder of %u: %llx", u,
					    (unsigned long long)out.token);
			} else
				CHILD_FAIL("insert shared %u: %d", u, rc);
			if (k % 10 == 0) {
				u = 900001 + k % CONC_STABLE;
				if (presence_lookup(p, u, &out) !=
				    PRESENCE_OK || out.token != u * 7ULL)
					CHILD_FAIL("lookup stable %u", u);
			}
		}
	}
	for (k = 1; k < CONC_OWN; k += 2) {
		u = own_uid(c, k);
		if (presence_remove(p, u, own_token(c, u) + 1) !=
		    PRESENCE_NOTFOUND)
			CHILD_FAIL("remove own %u with a bad token", u);
		if (presence_remove(p, u, own_token(c, u)) != PRESENCE_OK)
			CHILD_FAIL("remove own %u", u);
	}
	_exit(0);
}

struct stable_seen {
	unsigned char hits[CONC_STABLE];
	int bad;
};

static int
stable_fn(const struct presence_entry *e, void *arg)
{
	struct stable_seen *s = arg;

	if (e->uid > 900000 && e->uid <= 900000 + CONC_STABLE) {
		if (e->token != e->uid * 7ULL)
			s->bad = 1;
		s->hits[e->uid - 900001]++;
	}
	return 0;
}

/* A read-only reader (chatctl's view) while the writers churn. */
static void
conc_reader(struct presence *ro)
{
	struct presence_entry out;
	struct stable_seen s;
	uint32_t u;
	int r, k;

	for (r = 0; r < 100; r++) {
		for (u = 900001; u <= 900000 + CONC_STABLE; u++)
			if (presence_lookup(ro, u, &out) != PRESENCE_OK ||
			    out.token != u * 7ULL)
				CHILD_FAIL("ro lookup stable %u", u);
		memset(&s, 0, sizeof(s));
		(void)presence_foreach(ro, stable_fn, &s);
		if (s.bad)
			CHILD_FAIL("ro foreach: torn stable entry");
		for (k = 0; k < CONC_STABLE; k++)
			if (s.hits[k] != 1)
				CHILD_FAIL("ro foreach saw stable %d %d times",
				    900001 + k, s.hits[k]);
	}
	_exit(0);
}

struct final_seen {
	unsigned char own[CONC_WRITERS][CONC_OWN];
	unsigned char stable[CONC_STABLE];
	size_t n;
	int bad;
};

static int
final_fn(const struct presence_entry *e, void *arg)
{
	struct final_seen *s = arg;
	uint32_t c, k;

	s->n++;
	if (e->uid > 900000 && e->uid <= 900000 + CONC_STABLE) {
		s->stable[e->uid - 900001]++;
		return 0;
	}
	c = (e->uid - 1) / 10000;
	k = (e->uid - 1) % 10000;
	if (c >= CONC_WRITERS || k >= CONC_OWN || e->slot != c ||
	    e->token != own_token((int)c, e->uid)) {
		s->bad = 1;
		return 0;
	}
	s->own[c][k]++;
	return 0;
}

START_TEST(test_concurrent)
{
	struct presence *p, *ro;
	struct presence_entry e;
	struct final_seen *fs;
	pid_t pids[CONC_WRITERS + 1];
	char name[64], err[256];
	uint32_t u, k;
	int c, status;

	p = presence_create(tname(name, sizeof(name)), 8192, err, sizeof(err));
	ck_assert_msg(p != NULL, "%s", err);
	ro = presence_open(name, 1, err, sizeof(err));
	ck_assert_msg(ro != NULL, "%s", err);
	ck_assert_int_eq(presence_unlink(name), 0);
	for (u = 900001; u <= 900000 + CONC_STABLE; u++) {
		e = mk(u, 9, 9, u * 7ULL);
		ck_assert_int_eq(presence_insert(p, &e, NULL), PRESENCE_OK);
	}

	for (c = 0; c <= CONC_WRITERS; c++) {
		pids[c] = fork();
		ck_assert_int_ge(pids[c], 0);
		if (pids[c] == 0) {
			if (c == CONC_WRITERS)
				conc_reader(ro);
			conc_writer(p, c);
		}
	}
	for (c = 0; c <= CONC_WRITERS; c++) {
		ck_assert_int_eq(waitpid(pids[c], &status, 0), pids[c]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "child %d failed (status %#x)", c, status);
	}

	ck_table(p);
	ck_assert_uint_eq(presence_count(p),
	    CONC_STABLE + CONC_WRITERS * CONC_OWN / 2);
	ck_assert_uint_eq(presence_count(ro), presence_count(p));
	fs = calloc(1, sizeof(*fs));
	ck_assert_ptr_nonnull(fs);
	ck_assert_uint_eq(presence_foreach(ro, final_fn, fs),
	    presence_count(p));
	ck_assert_uint_eq(fs->n, presence_count(p));
	ck_assert_int_eq(fs->bad, 0);
	for (k = 0; k < CONC_STABLE; k++)
		ck_assert_uint_eq(fs->stable[k], 1);
	for (c = 0; c < CONC_WRITERS; c++)
		for (k = 0; k < CONC_OWN; k++)
			ck_assert_uint_eq(fs->own[c][k], k % 2 == 0 ? 1 : 0);
	for (k = 0; k < CONC_SHARED; k++)
		ck_assert_int_eq(presence_lookup(p, 500001 + k, NULL),
		    PRESENCE_NOTFOUND);
	free(fs);
	ck_assert_uint_eq(presence_recoveries(p), 0);
	presence_close(ro);
	presence_close(p);
}
END_TEST

/* --- processes killed with the lock held ----------------------------- */

START_TEST(test_killed_holding_lock)
{
	struct presence *p;
	struct presence_entry e, out;
	pid_t holder, waiter;
	int fds[2], status;
	char c;
	uint32_t u;

	p = mktable(64);
	for (u = 1; u <= 20; u++) {
		e = mk(u, 1, 1, u);
		ck_assert_int_eq(presence_insert(p, &e, NULL), PRESENCE_OK);
	}
	ck_assert_int_eq(pipe(fds), 0);
	holder = fork();
	ck_assert_int_ge(holder, 0);
	if (holder == 0)
		presence_test_lock_and_hang(p, fds[1]);
	ck_assert_int_eq(read(fds[0], &c, 1), 1);

	/* A second process blocks on the lock the dead one holds. */
	waiter = fork();
	ck_assert_int_ge(waiter, 0);
	if (waiter == 0) {
		e = mk(77, 2, 2, 77);
		if (presence_insert(p, &e, NULL) != PRESENCE_OK)
			CHILD_FAIL("insert after owner death");
		if (presence_lookup(p, 77, NULL) != PRESENCE_OK)
			CHILD_FAIL("lookup after owner death");
		_exit(0);
	}
	(void)usleep(50000);
	ck_assert_int_eq(presence_count(p), 20);	/* still blocked */
	ck_assert_int_eq(kill(holder, SIGKILL), 0);
	ck_assert_int_eq(waitpid(holder, &status, 0), holder);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	ck_assert_int_eq(waitpid(waiter, &status, 0), waiter);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	ck_assert_uint_eq(presence_recoveries(p), 1);
	e = mk(78, 1, 1, 78);
	ck_assert_int_eq(presence_insert(p, &e, NULL), PRESENCE_OK);
	ck_assert_int_eq(presence_lookup(p, 77, &out), PRESENCE_OK);
	ck_assert_uint_eq(out.token, 77);
	for (u = 1; u <= 20; u++)
		ck_assert_int_eq(presence_lookup(p, u, NULL), PRESENCE_OK);
	ck_assert_uint_eq(presence_count(p), 22);
	ck_table(p);
	ck_assert_uint_eq(presence_recoveries(p), 1);
	(void)close(fds[0]);
	(void)close(fds[1]);
	presence_close(p);
}
END_TEST

/*
 * Crash scenarios: a table is set up, then a child runs one operation and
 * SIGKILLs itself at its k-th crash point, for k = 1, 2, ... until the
 * operation finishes without reaching one.  After each crash the parent
 * checks that the table is consistent and that every entry touched by
 * the operation either changed completely or not at all.
 */
#define FX_MAX 32

struct fixture {
	struct presence_entry must[FX_MAX];	/* present and intact */
	int nmust;
	struct presence_entry either[FX_MAX];	/* intact or absent */
	int neither;
	uint32_t absent[FX_MAX];
	int nabsent;
	struct presence_entry ins;
	uint16_t rm_slot;
	int moved;		/* scenario needs the rebuild to move entries */
};

static void
fx_insert(struct presence *p, struct presence_entry e)
{
	ck_assert_int_eq(presence_insert(p, &e, NULL), PRESENCE_OK);
}

static void
fx_must(struct fixture *fx, struct presence_entry e)
{
	fx->must[fx->nmust++] = e;
}

/* Six entries in a row from one home bucket, plus a few elsewhere. */
static void
setup_common(struct presence *p, struct fixture *fx, uint32_t *col)
{
	int i;

	memset(fx, 0, sizeof(*fx));
	uids_with_home(p, 5, 0, col, 6);
	for (i = 0; i < 6; i++)
		fx_insert(p, mk(col[i], 1, 100, col[i] * 3ULL));
	for (i = 0; i < 4; i++)
		fx_insert(p, mk(5000 + (uint32_t)i, 3, 300, 5000U + i));
}

/* Insert that reuses a tombstone in the middle of a chain. */
static void
setup_insert_tomb(struct presence *p, struct fixture *fx)
{
	uint32_t col[6], extra;
	int i;

	setup_common(p, fx, col);
	ck_assert_int_eq(presence_remove(p, col[1], col[1] * 3ULL),
	    PRESENCE_OK);
	fx->absent[fx->nabsent++] = col[1];
	for (i = 0; i < 6; i++)
		if (i != 1)
			fx_must(fx, mk(col[i], 1, 100, col[i] * 3ULL));
	for (i = 0; i < 4; i++)
		fx_must(fx, mk(5000 + (uint32_t)i, 3, 300, 5000U + i));
	uids_with_home(p, 5, col[5], &extra, 1);
	fx->ins = mk(extra, 7, 700, 0x1234567890ULL);
	fx->either[fx->neither++] = fx->ins;
}

/* Insert into an EMPTY bucket. */
static void
setup_insert_empty(struct presence *p, struct fixture *fx)
{
	uint32_t col[6];
	int i;

	setup_common(p, fx, col);
	for (i = 0; i < 6; i++)
		fx_must(fx, mk(col[i], 1, 100, col[i] * 3ULL));
	for (i = 0; i < 4; i++)
		fx_must(fx, mk(5000 + (uint32_t)i, 3, 300, 5000U + i));
	fx->ins = mk(424242, 7, 700, 99);
	fx->either[fx->neither++] = fx->ins;
}

static void
op_insert(struct presence *p, struct fixture *fx)
{
	if (presence_insert(p, &fx->ins, NULL) != PRESENCE_OK)
		CHILD_FAIL("op insert");
}

/* Remove one entry from the middle of a chain. */
static void
setup_remove(struct presence *p, struct fixture *fx)
{
	uint32_t col[6];
	int i;

	setup_common(p, fx, col);
	for (i = 0; i < 6; i++)
		if (i != 2)
			fx_must(fx, mk(col[i], 1, 100, col[i] * 3ULL));
	for (i = 0; i < 4; i++)
		fx_must(fx, mk(5000 + (uint32_t)i, 3, 300, 5000U + i));
	fx->ins = mk(col[2], 1, 100, col[2] * 3ULL);
	fx->either[fx->neither++] = fx->ins;
}

static void
op_remove(struct presence *p, struct fixture *fx)
{
	if (presence_remove(p, fx->ins.uid, fx->ins.token) != PRESENCE_OK)
		CHILD_FAIL("op remove");
}

/*
 * remove_slot that pushes the tombstones over the threshold, so the same
 * call rebuilds the table and has to move the tail of a chain back.
 */
static void
setup_remove_slot_rebuild(struct presence *p, struct fixture *fx)
{
	uint32_t col[6];
	int i;

	setup_common(p, fx, col);
	ck_assert_uint_eq(p->mask + 1, 32);
	for (i = 0; i < 5; i++) {
		fx_insert(p, mk(7000 + (uint32_t)i, 2, 200, 7000U + i));
		fx->either[fx->neither++] = mk(7000 + (uint32_t)i, 2, 200,
		    7000U + i);
	}
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(presence_remove(p, col[i], col[i] * 3ULL),
		    PRESENCE_OK);
		fx->absent[fx->nabsent++] = col[i];
	}
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(presence_remove(p, 5000 + (uint32_t)i,
		    5000U + i), PRESENCE_OK);
		fx->absent[fx->nabsent++] = 5000 + (uint32_t)i;
	}
	for (i = 3; i < 6; i++)
		fx_must(fx, mk(col[i], 1, 100, col[i] * 3ULL));
	/* Just under the threshold: the op's removals trigger a rebuild. */
	ck_assert_uint_eq(atomic_load(&p->hdr->tombs), 7);
	fx->rm_slot = 2;
	fx->moved = 1;
}

static void
op_remove_slot(struct presence *p, struct fixture *fx)
{
	if (presence_remove_slot(p, fx->rm_slot, 0) != 5)
		CHILD_FAIL("op remove_slot");
}

struct scenario {
	const char *name;
	void (*setup)(struct presence *, struct fixture *);
	void (*op)(struct presence *, struct fixture *);
};

static const struct scenario scenarios[] = {
	{ "insert into tombstone", setup_insert_tomb, op_insert },
	{ "insert into empty", setup_insert_empty, op_insert },
	{ "remove", setup_remove, op_remove },
	{ "remove_slot + rebuild", setup_remove_slot_rebuild,
	    op_remove_slot },
};

/*
 * Fork a child that arms the crash hook at `k` (when > 0) and runs op,
 * or (op == NULL) just locks the table, which runs recovery.  Returns 1
 * when the child died at the crash point, 0 when it finished.
 */
static int
run_child(struct presence *p, struct fixture *fx, int k,
    void (*op)(struct presence *, struct fixture *))
{
	pid_t pid;
	int status;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		presence_test_crash_at(k);
		if (op != NULL)
			op(p, fx);
		else if (presence_lock(p) == -1)
			_exit(1);
		else
			presence_unlock(p);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
		return 1;
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "child status %#x", status);
	return 0;
}

static void
verify_fixture(struct presence *p, const struct fixture *fx,
    const char *what, int k)
{
	struct presence_entry out;
	char why[256];
	uint32_t present = 0;
	int i, rc;

	ck_assert_msg(table_check(p, why, sizeof(why)) == 0,
	    "%s, crash at %d: %s", what, k, why);
	for (i = 0; i < fx->nmust; i++) {
		ck_assert_msg(presence_lookup(p, fx->must[i].uid, &out) ==
		    PRESENCE_OK && entry_eq(&out, &fx->must[i]),
		    "%s, crash at %d: lost uid %u", what, k, fx->must[i].uid);
		present++;
	}
	for (i = 0; i < fx->neither; i++) {
		rc = presence_lookup(p, fx->either[i].uid, &out);
		ck_assert_msg(rc == PRESENCE_NOTFOUND || (rc == PRESENCE_OK &&
		    entry_eq(&out, &fx->either[i])),
		    "%s, crash at %d: uid %u torn", what, k,
		    fx->either[i].uid);
		present += rc == PRESENCE_OK;
	}
	for (i = 0; i < fx->nabsent; i++)
		ck_assert_msg(presence_lookup(p, fx->absent[i], NULL) ==
		    PRESENCE_NOTFOUND, "%s, crash at %d: uid %u back", what,
		    k, fx->absent[i]);
	ck_assert_uint_eq(presence_count(p), present);
}

/* Where each LIVE uid sits, to see whether a rebuild moved anything. */
static void
positions(struct presence *p, uint32_t *pos)
{
	uint32_t i;

	for (i = 0; i <= p->mask; i++)
		pos[i] = atomic_load(&p->b[i].state) == BUCKET_LIVE ?
		    atomic_load(&p->b[i].uid) : 0;
}

/* Whether a uid live in both `before` and `after` changed bucket. */
static int
any_moved(const uint32_t *before, const uint32_t *after, uint32_t n)
{
	uint32_t i, j;

	for (i = 0; i < n; i++) {
		if (after[i] == 0 || before[i] == after[i])
			continue;
		for (j = 0; j < n; j++)
			if (before[j] == after[i])
				return 1;
	}
	return 0;
}

START_TEST(test_killed_mid_update)
{
	const struct scenario *sc = &scenarios[_i];
	struct presence *p;
	struct fixture fx;
	struct presence_entry e;
	uint32_t before[32], after[32];
	int k, crashes = 0, moved = 0;

	for (k = 1; k < 1000; k++) {
		p = mktable(16);
		sc->setup(p, &fx);
		positions(p, before);
		if (!run_child(p, &fx, k, sc->op)) {
			/* Ran to completion: every crash point is covered. */
			verify_fixture(p, &fx, sc->name, 0);
			positions(p, after);
			moved = any_moved(before, after, 32);
			ck_assert_uint_eq(presence_recoveries(p), 0);
			presence_close(p);
			break;
		}
		crashes++;
		ck_assert_uint_eq(presence_recoveries(p), 0);
		verify_fixture(p, &fx, sc->name, k);
		ck_assert_uint_eq(presence_recoveries(p), 1);
		/* The recovered table keeps working. */
		e = mk(31337, 4, 4, 4);
		ck_assert_int_eq(presence_insert(p, &e, NULL), PRESENCE_OK);
		ck_assert_int_eq(presence_remove(p, 31337, 4), PRESENCE_OK);
		ck_table(p);
		presence_close(p);
	}
	ck_assert_int_lt(k, 1000);
	ck_assert_int_ge(crashes, 3);
	if (fx.moved) {
		ck_assert_msg(moved, "%s: rebuild moved nothing", sc->name);
		ck_assert_int_ge(crashes, 50);
	}
}
END_TEST

/*
 * A crash in the middle of a rebuild, and then the process recovering it
 * killed as well, at every point of the recovery: recovery must be
 * idempotent.
 */
START_TEST(test_killed_during_recovery)
{
	struct presence *p;
	struct fixture fx;
	int k, m, crashed;

	for (k = 13; k < 1000; k += 11) {
		p = mktable(16);
		setup_remove_slot_rebuild(p, &fx);
		crashed = run_child(p, &fx, k, op_remove_slot);
		if (!crashed) {
			presence_close(p);
			break;
		}
		for (m = 1; m < 1000; m++)
			if (!run_child(p, &fx, m, NULL))
				break;
		ck_assert_int_lt(m, 1000);
		verify_fixture(p, &fx, "recovery", k * 1000 + m);
		/* The last child's recovery completed; the parent's lock
		 * in verify_fixture found a consistent mutex. */
		ck_assert_uint_eq(presence_recoveries(p), 1);
		presence_close(p);
	}
	ck_assert_int_gt(k, 13 + 11 * 3);
}
END_TEST

/*
 * Readers facing a writer that died between its two version bumps: a
 * read-write handle stops spinning, takes the lock and recovers; the
 * dead insert is either invisible (state not published) or complete.
 */
START_TEST(test_readers_after_dead_writer)
{
	struct presence *p;
	struct fixture fx;
	struct presence_entry out;
	int k;

	/* Crash points in bucket_fill_locked: 1 after ver odd, 2 in the
	 * middle of the payload, 3 before the state, 4 after the state. */
	for (k = 1; k <= 4; k++) {
		p = mktable(16);
		setup_insert_empty(p, &fx);
		ck_assert_int_eq(run_child(p, &fx, k, op_insert), 1);
		ck_assert_uint_eq(presence_recoveries(p), 0);
		ck_assert_int_eq(presence_lookup(p, fx.ins.uid, &out),
		    k == 4 ? PRESENCE_OK : PRESENCE_NOTFOUND);
		ck_assert_uint_eq(presence_recoveries(p), 1);
		if (k == 4)
			ck_assert(entry_eq(&out, &fx.ins));
		verify_fixture(p, &fx, "reader", k);
		presence_close(p);
	}
}
END_TEST

/*
 * Lock-free readers racing a rebuild, made deterministic with the read
 * hook: the rebuild runs while a reader is in the middle of a probe or a
 * walk, moving entries from ahead of it to behind it.  The reader must
 * notice (gen changed) and retry instead of missing them.
 */
static struct presence *race_p;
static uint32_t race_at;
static int race_fired;

static void
race_hook(uint32_t bucket)
{
	if (race_fired || bucket != race_at)
		return;
	race_fired = 1;
	ck_assert_int_eq(presence_lock(race_p), 0);
	rebuild_locked(race_p);
	presence_unlock(race_p);
}

struct col_seen {
	uint32_t col[6];
	int hits[6];
};

static int
col_fn(const struct presence_entry *e, void *arg)
{
	struct col_seen *cs = arg;
	int i;

	for (i = 0; i < 6; i++)
		if (e->uid == cs->col[i])
			cs->hits[i]++;
	return 0;
}

START_TEST(test_readers_vs_rebuild)
{
	struct presence *p, *ro, *h;
	struct presence_entry out;
	struct col_seen cs;
	char name[64], err[256];
	uint32_t gen0, i;
	int pass, foreach;

	for (pass = 0; pass < 4; pass++) {
		foreach = pass & 1;
		p = presence_create(tname(name, sizeof(name)), 16, err,
		    sizeof(err));
		ck_assert_msg(p != NULL, "%s", err);
		ro = presence_open(name, 1, err, sizeof(err));
		ck_assert_msg(ro != NULL, "%s", err);
		ck_assert_int_eq(presence_unlink(name), 0);
		h = pass & 2 ? ro : p;

		/* col[] all hash to bucket 5 and fill 5..10; removing the
		 * first three leaves tombstones in 5..7, so a rebuild moves
		 * col[3..5] from 8..10 back to 5..7. */
		memset(&cs, 0, sizeof(cs));
		uids_with_home(p, 5, 0, cs.col, 6);
		for (i = 0; i < 6; i++)
			fx_insert(p, mk(cs.col[i], 1, 1, cs.col[i]));
		for (i = 0; i < 6; i++)
			ck_assert_uint_eq(atomic_load(&p->b[5 + i].uid),
			    cs.col[i]);
		for (i = 0; i < 3; i++)
			ck_assert_int_eq(presence_remove(p, cs.col[i],
			    cs.col[i]), PRESENCE_OK);
		gen0 = atomic_load(&p->hdr->gen);

		race_p = p;
		race_fired = 0;
		/* A lookup of col[5] has read 5..7 when the rebuild runs;
		 * a walk has read col[3] in 8 and not yet 9 and 10. */
		race_at = foreach ? 8 : 7;
		presence_test_read_hook = race_hook;
		if (foreach) {
			ck_assert_uint_eq(presence_foreach(h, col_fn, &cs), 3);
			for (i = 0; i < 6; i++)
				ck_assert_int_eq(cs.hits[i], i < 3 ? 0 : 1);
		} else {
			ck_assert_int_eq(presence_lookup(h, cs.col[5], &out),
			    PRESENCE_OK);
			ck_assert_uint_eq(out.token, cs.col[5]);
		}
		presence_test_read_hook = NULL;
		ck_assert_int_eq(race_fired, 1);
		ck_assert_uint_eq(atomic_load(&p->hdr->gen), gen0 + 2);
		ck_assert_uint_eq(atomic_load(&p->b[7].uid), cs.col[5]);
		ck_table(p);
		presence_close(ro);
		presence_close(p);
	}
}
END_TEST

static Suite *
presence_suite(void)
{
	Suite *s;
	TCase *tc;

	s = suite_create("presence");

	tc = tcase_create("basic");
	tcase_add_test(tc, test_basic);
	tcase_add_test(tc, test_exists);
	tcase_add_test(tc, test_full);
	tcase_add_test(tc, test_remove_slot);
	tcase_add_test(tc, test_foreach);
	tcase_add_test(tc, test_create_open_errors);
	tcase_add_test(tc, test_readonly);
	tcase_add_test(tc, test_readers_vs_rebuild);
	suite_add_tcase(s, tc);

	tc = tcase_create("churn");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_tombstone_churn);
	suite_add_tcase(s, tc);

	tc = tcase_create("concurrent");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_concurrent);
	suite_add_tcase(s, tc);

	tc = tcase_create("crash");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_killed_holding_lock);
	tcase_add_loop_test(tc, test_killed_mid_update, 0,
	    (int)(sizeof(scenarios) / sizeof(scenarios[0])));
	tcase_add_test(tc, test_killed_during_recovery);
	tcase_add_test(tc, test_readers_after_dead_writer);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(presence_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
