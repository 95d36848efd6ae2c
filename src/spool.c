/*
 * spool.c - a worker's messages that wait for the database, on disk (see
 * spool.h).
 *
 * A file is a sequence of records: a header (magic, recipient count, text
 * length, order) in this host's byte order, the recipients' ids, the text.
 * Files are only ever read on the host that wrote them.
 */
#include "config.h"

#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "spool.h"

#define SPOOL_PREFIX	"spool."
#define SPOOL_MAGIC	0x31505343u	/* "CSP1" */
#define SPOOL_MAX_N	(1u << 20)	/* recipients of one record */
#define SPOOL_MAX_LEN	(1u << 30)	/* bytes of one text */

struct spool_hdr {
	uint32_t magic;
	uint32_t n;
	uint32_t len;
	uint32_t pad;
	uint64_t ord;
};

struct spool {
	int fd;
	int broken;		/* a write failed: no more appends */
	int dirty;		/* appended to since the last spool_sync */
	char dir[PATH_MAX];
	char path[PATH_MAX];
	char prefix[96];	/* "spool.KEY.": the files it may adopt */
};

/* Make a new file's name in dir last through a crash (best effort). */
static void
dir_sync(const char *dir)
{
	int fd;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return;
	if (fsync(fd) == -1)
		log_warn("spool_dir %s: fsync", dir);
	(void)close(fd);
}

struct spool *
spool_open(const char *dir, const char *key)
{
	struct spool *sp;

	if ((sp = calloc(1, sizeof(*sp))) == NULL)
		return NULL;
	sp->fd = -1;
	if ((size_t)snprintf(sp->prefix, sizeof(sp->prefix), SPOOL_PREFIX
	    "%s.", key) >= sizeof(sp->prefix) ||
	    (size_t)snprintf(sp->dir, sizeof(sp->dir), "%s", dir) >=
	    sizeof(sp->dir) ||
	    (size_t)snprintf(sp->path, sizeof(sp->path), "%s/%sXXXXXX", dir,
	    sp->prefix) >= sizeof(sp->path)) {
		log_warnx("spool_dir %s: path too long", dir);
		free(sp);
		return NULL;
	}
	/* mkstemp: a name no other worker, now or before, has (O_EXCL),
	 * mode 0600. */
	if ((sp->fd = mkostemp(sp->path, O_CLOEXEC | O_APPEND)) == -1) {
		log_warn("spool_dir %s: cannot create a spool file (messages "
		    "waiting for the database are lost if this worker stops)",
		    dir);
		free(sp);
		return NULL;
	}
	if (flock(sp->fd, LOCK_EX | LOCK_NB) == -1) {
		log_warn("spool %s: flock", sp->path);
		(void)unlink(sp->path);
		(void)close(sp->fd);
		free(sp);
		return NULL;
	}
	dir_sync(sp->dir);
	return sp;
}

int
spool_sync(struct spool *sp)
{
	if (!sp->dirty)
		return 0;
	sp->dirty = 0;
	if (fdatasync(sp->fd) == -1) {
		log_warn("spool %s: fdatasync", sp->path);
		return -1;
	}
	return 1;
}

const char *
spool_path(const struct spool *sp)
{
	return sp->path;
}

int
spool_append(struct spool *sp, const struct spool_rec *r)
{
	struct spool_hdr h;
	struct iovec iov[3];
	size_t want, done = 0;
	ssize_t n;
	int i = 0;

	if (sp->broken)
		return -1;
	if (r->n == 0 || r->n > SPOOL_MAX_N || r->len > SPOOL_MAX_LEN)
		return -1;
	memset(&h, 0, sizeof(h));
	h.magic = SPOOL_MAGIC;
	h.n = r->n;
	h.len = (uint32_t)r->len;
	h.ord = r->ord;
	iov[0].iov_base = &h;
	iov[0].iov_len = sizeof(h);
	iov[1].iov_base = (void *)r->uids;
	iov[1].iov_len = r->n * sizeof(uint32_t);
	iov[2].iov_base = (void *)r->text;
	iov[2].iov_len = r->len;
	want = iov[0].iov_len + iov[1].iov_len + iov[2].iov_len;
	while (done < want) {
		n = writev(sp->fd, iov + i, 3 - i);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_warn("spool %s: write (messages waiting for the "
			    "database from now on are kept in memory only)",
			    sp->path);
			sp->broken = 1;
			return -1;
		}
		done += (size_t)n;
		sp->dirty = 1;
		/* A short write (a full disk at that moment): skip what
		 * went out and write the rest. */
		while (i < 3 && (size_t)n >= iov[i].iov_len) {
			n -= (ssize_t)iov[i].iov_len;
			i++;
		}
		if (i < 3) {
			iov[i].iov_base = (char *)iov[i].iov_base + n;
			iov[i].iov_len -= (size_t)n;
		}
	}
	return 0;
}

void
spool_clear(struct spool *sp)
{
	if (ftruncate(sp->fd, 0) == -1)
		log_warn("spool %s: ftruncate", sp->path);
	else
		sp->broken = 0;
}

void
spool_close(struct spool *sp, int keep)
{
	if (sp == NULL)
		return;
	if (!keep)
		(void)unlink(sp->path);
	(void)close(sp->fd);	/* releases the lock */
	free(sp);
}

/* Read the file open on fd record by record into fn; stops at the first
 * record cut short or not valid.  fd stays open (and locked).  Records
 * read, or -1 when the file could not be read at all (it is then kept). */
static ssize_t
spool_read(int fd, const char *path,
    void (*fn)(void *, const struct spool_rec *), void *arg)
{
	struct spool_hdr h;
	struct spool_rec r;
	uint32_t *uids = NULL;
	char *text = NULL;
	size_t count = 0;
	FILE *fp;
	int dfd;

	/* A dup shares fd's open file and so its lock, which closing the
	 * dup does not release. */
	if ((dfd = dup(fd)) == -1 || (fp = fdopen(dfd, "r")) == NULL) {
		log_warn("spool %s: fdopen", path);
		if (dfd != -1)
			(void)close(dfd);
		return -1;
	}
	while (fread(&h, sizeof(h), 1, fp) == 1) {
		if (h.magic != SPOOL_MAGIC || h.n == 0 || h.n > SPOOL_MAX_N ||
		    h.len > SPOOL_MAX_LEN) {
			log_warnx("spool %s: record %zu is not valid; the rest "
			    "of the file is skipped", path, count + 1);
			break;
		}
		free(uids);
		free(text);
		uids = malloc(h.n * sizeof(uint32_t));
		text = malloc((size_t)h.len + 1);
		if (uids == NULL || text == NULL)
			fatalx("%s: out of memory", __func__);
		if (fread(uids, sizeof(uint32_t), h.n, fp) != h.n ||
		    fread(text, 1, h.len, fp) != h.len) {
			log_warnx("spool %s: record %zu cut short (a worker "
			    "that died while writing it)", path, count + 1);
			break;
		}
		text[h.len] = '\0';
		r.ord = h.ord;
		r.n = h.n;
		r.uids = uids;
		r.len = h.len;
		r.text = text;
		fn(arg, &r);
		count++;
	}
	free(uids);
	free(text);
	(void)fclose(fp);
	return (ssize_t)count;
}

size_t
spool_adopt(struct spool *sp,
    void (*fn)(void *arg, const struct spool_rec *r), void *arg)
{
	const char *own = strrchr(sp->path, '/') + 1;
	char path[PATH_MAX];
	struct dirent *de;
	struct stat st;
	size_t total = 0;
	ssize_t n;
	DIR *d;
	int fd;

	if ((d = opendir(sp->dir)) == NULL) {
		log_warn("spool_dir %s: opendir", sp->dir);
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, sp->prefix, strlen(sp->prefix))
		    != 0 || strcmp(de->d_name, own) == 0 ||
		    (size_t)snprintf(path, sizeof(path), "%s/%s", sp->dir,
		    de->d_name) >= sizeof(path))
			continue;
		if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) ==
		    -1)
			continue;	/* adopted by another worker just now */
		/* Locked: its worker lives, or another adopts it. */
		if (flock(fd, LOCK_EX | LOCK_NB) == -1 ||
		    fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
			(void)close(fd);
			continue;
		}
		/* Removed while we waited for the lock: adopted already. */
		if (st.st_nlink == 0) {
			(void)close(fd);
			continue;
		}
		if (st.st_size == 0) {
			(void)unlink(path);
			(void)close(fd);
			continue;
		}
		/* Removed before the lock goes: no other worker reads it
		 * again once fn has kept its records. */
		if ((n = spool_read(fd, path, fn, arg)) == -1) {
			(void)close(fd);	/* tried again next time */
			continue;
		}
		/* On disk in ours before theirs goes. */
		(void)spool_sync(sp);
		(void)unlink(path);
		(void)close(fd);
		log_warnx("spool: took %zd message record(s) waiting for the "
		    "database from %s, left by a worker that stopped", n,
		    path);
		total += (size_t)n;
	}
	(void)closedir(d);
	return total;
}
