/*
 * store.h - chatd's MariaDB storage: one `struct store` per job thread,
 * owning one connection and its prepared statements.  Every statement is
 * prepared; no SQL text is ever built from user data.
 *
 * All functions run on job threads only, never on a worker's event loop.
 * They connect lazily and reconnect after CR_SERVER_LOST / GONE_ERROR,
 * retrying one lost statement once; while the database is down they fail
 * fast with STORE_UNAVAILABLE (at most one connect attempt per
 * db_retry_interval) so clients get errno 13 at once.
 */
#ifndef CHATD_STORE_H
#define CHATD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"

#define STORE_SCHEMA_VERSION 3	/* the schema this chatd is built for */

enum store_rc {
	STORE_OK = 0,
	STORE_UNAVAILABLE = -1,	/* database down or failed: errno 13 */
	STORE_DUP = -2,		/* unique key violated */
	STORE_NOREF = -3,	/* foreign key: referenced row missing */
	STORE_NOTFOUND = -4,	/* no such row */
};

struct store;

/* Never fails for a reachable config; the connection opens lazily. */
struct store *store_open(const struct conf *conf);
void store_close(struct store *s);
/* The job thread's blocking Redis client (cluster.h), NULL on one host. */
struct cluster *store_cluster(struct store *s);
/* Last database error text (for logs). */
const char *store_error(const struct store *s);

int store_schema_version(struct store *s, int *version);

int store_user_create(struct store *s, const char *name, const char *hash,
    uint32_t *id);
/* name/hash buffers of namelen/hashlen bytes; hash may be NULL. */
int store_user_get(struct store *s, uint32_t id, char *name, size_t namelen,
    char *hash, size_t hashlen);

typedef int (*store_user_fn)(void *arg, uint32_t id, const char *name);
typedef int (*store_group_fn)(void *arg, uint32_t id, const char *name,
    const char *desc, const char *role);
typedef int (*store_member_fn)(void *arg, uint32_t id, const char *name,
    const char *role);
typedef int (*store_offline_fn)(void *arg, uint64_t id, const char *text,
    size_t len);

/* STORE_DUP when already friends, STORE_NOREF when friendid is no user. */
int store_friend_add(struct store *s, uint32_t uid, uint32_t friendid);
/* STORE_NOTFOUND when they were not friends. */
int store_friend_del(struct store *s, uint32_t uid, uint32_t friendid);
int store_friend_list(struct store *s, uint32_t uid, store_user_fn fn,
    void *arg);

/* STORE_DUP when the name is taken. */
int store_group_create(struct store *s, const char *name, const char *desc,
    uint32_t creator, uint32_t *gid);
/* STORE_NOTFOUND: no such group; STORE_DUP: already a member. */
int store_group_join(struct store *s, uint32_t gid, uint32_t uid);
/* STORE_NOTFOUND: no such group; STORE_NOREF: not a member. */
int store_group_quit(struct store *s, uint32_t gid, uint32_t uid);
/* Groups of uid with the user's role in each. */
int store_group_list(struct store *s, uint32_t uid, store_group_fn fn,
    void *arg);
/* Members of gid; STORE_NOTFOUND when the group does not exist. */
int store_group_members(struct store *s, uint32_t gid, store_member_fn fn,
    void *arg);

/* STORE_NOREF when uid is no user.  ord: the frame's "tus". */
int store_offline_put(struct store *s, uint32_t uid, uint64_t ord,
    const char *text, size_t len);
/* The first `limit` messages of uid by ord (then by arrival). */
int store_offline_fetch(struct store *s, uint32_t uid, int limit,
    store_offline_fn fn, void *arg);
/* Delete exactly these ids of uid, in one transaction. */
int store_offline_delete(struct store *s, uint32_t uid, const uint64_t *ids,
    size_t n);

#endif
