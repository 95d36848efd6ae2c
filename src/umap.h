/*
 * umap.h - a small open-addressing hash map from a non-zero uint32 key
 * (user id, group id) to a pointer, private to one worker.
 */
#ifndef CHATD_UMAP_H
#define CHATD_UMAP_H

#include <stddef.h>
#include <stdint.h>

struct umap_slot {
	uint32_t key;		/* 0 = empty, UINT32_MAX = deleted */
	void *val;
};

struct umap {
	struct umap_slot *slots;
	size_t cap;		/* power of two, 0 before first insert */
	size_t used;		/* live + deleted */
	size_t live;
};

void umap_init(struct umap *m);
void umap_free(struct umap *m);
void *umap_get(const struct umap *m, uint32_t key);
/* Insert or replace; 0, or -1 on allocation failure. */
int umap_put(struct umap *m, uint32_t key, void *val);
/* Remove key; returns the value that was there or NULL. */
void *umap_del(struct umap *m, uint32_t key);
/* Iterate: pass *iter = 0 first; returns 0 at the end. */
int umap_next(const struct umap *m, size_t *iter, uint32_t *key, void **val);

#endif
