/*
 * spool.h - a worker's messages that wait for the database, on disk.
 *
 * Messages already answered "delivered" whose recipient's session ended
 * on the way (and the unread output of a dropped connection) must be
 * stored offline.  While the database refuses them they wait in the
 * worker's memory (deliver.c); each is also appended to the worker's
 * spool file in spool_dir, and the file is emptied once all of them are
 * stored.  A worker that stops or dies with messages still waiting leaves
 * its file behind, and another worker of this chatd (the one started in
 * its place, or any other) adopts it: it takes the records into its own
 * queue and spool, then removes the file.  A file is locked (flock) by
 * the worker that writes it, so a live worker's file is never adopted.
 *
 * Records are appended with one write each; a record cut short by a crash
 * ends the file.  The worker has the file written to disk (fdatasync)
 * once a second when it grew (spool_sync), and an adopter before it
 * removes the file it took: a host that loses power loses at most the
 * records of its last second.  A message stored just before a crash, while its record
 * was still in the file, is stored again by the adopter: at least once.
 */
#ifndef CHATD_SPOOL_H
#define CHATD_SPOOL_H

#include <stddef.h>
#include <stdint.h>

struct spool;

struct spool_rec {
	uint64_t ord;		/* the frame's "tus" */
	uint32_t n;		/* recipients */
	const uint32_t *uids;
	size_t len;
	const char *text;	/* the frame, without its '\n' */
};

/* A new, locked spool file of this worker in dir, named with key (which
 * database the messages are for: only files of the same key are
 * adopted); NULL with the reason logged (the worker then keeps waiting
 * messages in memory only).  key: letters, digits, '-' and '_'. */
struct spool *spool_open(const char *dir, const char *key);
/* Append one record; -1 (logged) when it could not be written. */
int spool_append(struct spool *sp, const struct spool_rec *r);
/* Write what was appended since the last call to disk: 1 when there was
 * something, 0 when not, -1 (logged) when the write failed. */
int spool_sync(struct spool *sp);
/* Every record is stored: empty the file. */
void spool_clear(struct spool *sp);
/* Close sp; `keep` leaves the file (records still wait) for another
 * worker to adopt, else it is removed. */
void spool_close(struct spool *sp, int keep);
/* The path of sp's file, for the log. */
const char *spool_path(const struct spool *sp);
/*
 * Adopt every file of sp's key in sp's directory left by a worker that is
 * gone (not locked): call fn for each of its whole records, in order, then remove
 * it.  fn must have kept the record (in sp too) when it returns.  The
 * number of records adopted.
 */
size_t spool_adopt(struct spool *sp,
    void (*fn)(void *arg, const struct spool_rec *r), void *arg);

#endif
