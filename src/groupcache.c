/*
 * groupcache.c - the membership cache of groupcache.h.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "groupcache.h"

void
groupcache_init(struct groupcache *gc, size_t max_entries)
{
	umap_init(&gc->map);
	gc->gen = 0;
	gc->max_entries = max_entries;
	gc->hits = gc->misses = 0;
}

void
groupcache_clear(struct groupcache *gc)
{
	size_t it = 0;
	uint32_t key;
	void *val;

	while (umap_next(&gc->map, &it, &key, &val))
		free(val);
	umap_free(&gc->map);
	gc->gen++;
}

void
groupcache_free(struct groupcache *gc)
{
	groupcache_clear(gc);
}

const struct group_entry *
groupcache_get(struct groupcache *gc, uint32_t gid)
{
	const struct group_entry *g = umap_get(&gc->map, gid);

	if (g != NULL)
		gc->hits++;
	else
		gc->misses++;
	return g;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

void
groupcache_put(struct groupcache *gc, uint32_t gid, uint64_t gen,
    const uint32_t *members, size_t n)
{
	struct group_entry *g, *old;

	if (gen != gc->gen)
		return;
	if (gc->map.live >= gc->max_entries)
		groupcache_clear(gc);
	if ((g = malloc(sizeof(*g) + n * sizeof(uint32_t))) == NULL)
		return;
	g->gid = gid;
	g->n = (uint32_t)n;
	memcpy(g->members, members, n * sizeof(uint32_t));
	qsort(g->members, n, sizeof(uint32_t), cmp_u32);
	old = umap_get(&gc->map, gid);
	if (umap_put(&gc->map, gid, g) == -1) {
		free(g);
		return;
	}
	free(old);
}

void
groupcache_invalidate(struct groupcache *gc, uint32_t gid)
{
	gc->gen++;
	free(umap_del(&gc->map, gid));
}

int
group_entry_has(const struct group_entry *g, uint32_t uid)
{
	return bsearch(&uid, g->members, g->n, sizeof(uint32_t), cmp_u32) !=
	    NULL;
}

void
groupcache_sort(struct group_entry *g)
{
	qsort(g->members, g->n, sizeof(uint32_t), cmp_u32);
}
