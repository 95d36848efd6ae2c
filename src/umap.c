/*
 * umap.c - linear probing with tombstones; grows at 70% use.
 */
#include "config.h"

#include <stdlib.h>

#include "umap.h"

#define UMAP_DELETED UINT32_MAX

static size_t
umap_hash(uint32_t k)
{
	k ^= k >> 16;
	k *= 0x7feb352dU;
	k ^= k >> 15;
	k *= 0x846ca68bU;
	k ^= k >> 16;
	return k;
}

void
umap_init(struct umap *m)
{
	m->slots = NULL;
	m->cap = m->used = m->live = 0;
}

void
umap_free(struct umap *m)
{
	free(m->slots);
	umap_init(m);
}

void *
umap_get(const struct umap *m, uint32_t key)
{
	size_t i, mask;

	if (m->cap == 0 || key == 0 || key == UMAP_DELETED)
		return NULL;
	mask = m->cap - 1;
	for (i = umap_hash(key) & mask; m->slots[i].key != 0;
	    i = (i + 1) & mask)
		if (m->slots[i].key == key)
			return m->slots[i].val;
	return NULL;
}

static int
umap_resize(struct umap *m, size_t cap)
{
	struct umap_slot *old = m->slots;
	size_t oldcap = m->cap, i, j, mask = cap - 1;

	if ((m->slots = calloc(cap, sizeof(*m->slots))) == NULL) {
		m->slots = old;
		return -1;
	}
	m->cap = cap;
	m->used = m->live;
	for (i = 0; i < oldcap; i++) {
		if (old[i].key == 0 || old[i].key == UMAP_DELETED)
			continue;
		for (j = umap_hash(old[i].key) & mask; m->slots[j].key != 0;
		    j = (j + 1) & mask)
			;
		m->slots[j] = old[i];
	}
	free(old);
	return 0;
}

int
umap_put(struct umap *m, uint32_t key, void *val)
{
	size_t i, mask, tomb = SIZE_MAX;

	if (key == 0 || key == UMAP_DELETED)
		return -1;
	if ((m->used + 1) * 10 >= m->cap * 7) {
		size_t cap = m->cap ? m->cap : 16;

		while ((m->live + 1) * 10 >= cap * 5)
			cap *= 2;
		if (umap_resize(m, cap) == -1)
			return -1;
	}
	mask = m->cap - 1;
	for (i = umap_hash(key) & mask; m->slots[i].key != 0;
	    i = (i + 1) & mask) {
		if (m->slots[i].key == key) {
			m->slots[i].val = val;
			return 0;
		}
		if (m->slots[i].key == UMAP_DELETED && tomb == SIZE_MAX)
			tomb = i;
	}
	if (tomb != SIZE_MAX)
		i = tomb;
	else
		m->used++;
	m->slots[i].key = key;
	m->slots[i].val = val;
	m->live++;
	return 0;
}

void *
umap_del(struct umap *m, uint32_t key)
{
	size_t i, mask;
	void *val;

	if (m->cap == 0 || key == 0 || key == UMAP_DELETED)
		return NULL;
	mask = m->cap - 1;
	for (i = umap_hash(key) & mask; m->slots[i].key != 0;
	    i = (i + 1) & mask) {
		if (m->slots[i].key == key) {
			val = m->slots[i].val;
			m->slots[i].key = UMAP_DELETED;
			m->slots[i].val = NULL;
			m->live--;
			return val;
		}
	}
	return NULL;
}

int
umap_next(const struct umap *m, size_t *iter, uint32_t *key, void **val)
{
	while (*iter < m->cap) {
		struct umap_slot *s = &m->slots[(*iter)++];

		if (s->key != 0 && s->key != UMAP_DELETED) {
			*key = s->key;
			*val = s->val;
			return 1;
		}
	}
	return 0;
}
