/*
 * groupcache.h - a worker's cache of group membership, so steady-state
 * group chat runs no SQL.  Entries are dropped when membership changes
 * (join, quit, create: locally and through every worker's inbox) and the
 * whole cache is cleared when it holds max_entries groups.
 */
#ifndef CHATD_GROUPCACHE_H
#define CHATD_GROUPCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "umap.h"

struct group_entry {
	uint32_t gid;
	uint32_t n;
	uint32_t members[];	/* sorted */
};

struct groupcache {
	struct umap map;
	uint64_t gen;		/* bumped on every invalidation */
	size_t max_entries;
	uint64_t hits, misses;
};

void groupcache_init(struct groupcache *gc, size_t max_entries);
void groupcache_free(struct groupcache *gc);
const struct group_entry *groupcache_get(struct groupcache *gc, uint32_t gid);
/* Cache members (any order; copied).  Ignored when gen differs from the
 * generation the caller saw before loading (it may be stale). */
void groupcache_put(struct groupcache *gc, uint32_t gid, uint64_t gen,
    const uint32_t *members, size_t n);
void groupcache_invalidate(struct groupcache *gc, uint32_t gid);
/* Forget every group (changes may have been missed). */
void groupcache_clear(struct groupcache *gc);
/* Sort g's members (for an entry built outside the cache). */
void groupcache_sort(struct group_entry *g);
int group_entry_has(const struct group_entry *g, uint32_t uid);

#endif
