/*
 * jarena.h - cJSON's allocations for a request's tree from an arena.
 *
 * Parsing a chat message allocates a dozen small blocks (an item per
 * member, a copy of every key and string) that all die together once the
 * request is handled.  malloc and free were the largest single cost of a
 * worker at 16 messages in flight (perf), so while a thread has the arena
 * on, cJSON's allocations come from it: a pointer bump, and free() is a
 * count.  Installed as cJSON's hooks, so every cJSON tree, wherever it was
 * made, is freed with cJSON_Delete (and every printed string with
 * cJSON_free or free, as before: outside the arena it is malloc's).
 */
#ifndef CHATD_JARENA_H
#define CHATD_JARENA_H

/* Make jarena cJSON's allocator: once, before any thread or cJSON item. */
void jarena_install(void);
/* Turn the arena on for this thread; returns what to give jarena_end.
 * The first thread to do so owns it for good; any other gets malloc
 * (and 0 here). */
int jarena_begin(void);
void jarena_end(int began);
/* Blocks of the arena not yet freed (owner only; for tests: 0 between
 * requests). */
unsigned long jarena_in_use(void);

#endif
