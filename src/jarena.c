/*
 * jarena.c - the arena of jarena.h behind cJSON's allocation hooks.
 *
 * One arena per process, owned by the first thread that turns it on (the
 * worker's event loop: the one thread that parses requests).  Blocks are
 * carved off the front; free() of a block only counts it, and when none
 * is left in use the next allocation starts again at the front.  A tree
 * that outlives the request (nothing does so today) only keeps the arena
 * from rewinding until it is freed: the blocks that do not fit then come
 * from malloc.  Any thread may free a block: the owner's frees are a
 * plain count, the others' an atomic one.
 *
 * Under AddressSanitizer all but the blocks in use is poisoned (each
 * block then carries its size in front, to be poisoned when freed), so a
 * read past a block or of a freed one is reported as for malloc'd memory.
 */
#include "config.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "jarena.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define JARENA_POISON(p, n)	ASAN_POISON_MEMORY_REGION((p), (n))
#define JARENA_UNPOISON(p, n)	ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define JARENA_HEAD	16	/* the block's size, poisoned */
#else
#define JARENA_POISON(p, n)	((void)(p), (void)(n))
#define JARENA_UNPOISON(p, n)	((void)(p), (void)(n))
#define JARENA_HEAD	0
#endif

/* A request's tree takes a few hundred bytes plus its strings; a frame
 * as long as max_frame would not fit and uses malloc. */
#define JARENA_SIZE	(64 * 1024)
#define JARENA_ALIGN	16

static _Alignas(JARENA_ALIGN) unsigned char arena[JARENA_SIZE];
/* The owner's: the arena's front, its blocks handed out and not freed by
 * itself. */
static size_t arena_used, arena_live;
static atomic_size_t remote_frees;	/* its blocks freed by others */
static atomic_int owner_taken;		/* a thread owns the arena */
static _Thread_local int owner_here;	/* this thread owns it */
static _Thread_local int arena_on;	/* and has it on */

static int
in_arena(const void *p)
{
	return (uintptr_t)p >= (uintptr_t)arena &&
	    (uintptr_t)p < (uintptr_t)arena + JARENA_SIZE;
}

static void *
jarena_malloc(size_t n)
{
	size_t need = JARENA_HEAD +
	    ((n + JARENA_ALIGN - 1) & ~(size_t)(JARENA_ALIGN - 1));
	unsigned char *p;

	if (arena_on && n > 0 && need >= n) {
		/* All freed: nobody else holds a block to free meanwhile. */
		if (arena_used > 0 && arena_live == atomic_load_explicit(
		    &remote_frees, memory_order_acquire)) {
			JARENA_POISON(arena, arena_used);
			arena_used = 0;
			arena_live = 0;
			atomic_store_explicit(&remote_frees, 0,
			    memory_order_relaxed);
		}
		if (need <= JARENA_SIZE - arena_used) {
			p = arena + arena_used;
			arena_used += need;
			arena_live++;
#if JARENA_HEAD > 0
			JARENA_UNPOISON(p, sizeof(size_t));
			*(size_t *)(void *)p = n;
			JARENA_POISON(p, sizeof(size_t));
			p += JARENA_HEAD;
#endif
			JARENA_UNPOISON(p, n);
			return p;
		}
	}
	return malloc(n);
}

static void
jarena_free(void *p)
{
	if (!in_arena(p)) {
		free(p);
		return;
	}
#if JARENA_HEAD > 0
	{
		unsigned char *h = (unsigned char *)p - JARENA_HEAD;
		size_t n;

		JARENA_UNPOISON(h, sizeof(size_t));
		n = *(size_t *)(void *)h;
		JARENA_POISON(h, sizeof(size_t));
		JARENA_POISON(p, n);
	}
#endif
	/* No atomic on the owner's own frees: they are most of them. */
	if (owner_here)
		arena_live--;
	else
		atomic_fetch_add_explicit(&remote_frees, 1,
		    memory_order_release);
}

void
jarena_install(void)
{
	cJSON_Hooks h = { jarena_malloc, jarena_free };

	JARENA_POISON(arena, sizeof(arena));
	cJSON_InitHooks(&h);
}

int
jarena_begin(void)
{
	int expect = 0;

	if (arena_on)
		return 0;	/* nested: the outer end turns it off */
	if (!owner_here) {
		if (!atomic_compare_exchange_strong(&owner_taken, &expect, 1))
			return 0;
		owner_here = 1;
	}
	arena_on = 1;
	return 1;
}

void
jarena_end(int began)
{
	if (began)
		arena_on = 0;
}

unsigned long
jarena_in_use(void)
{
	return (unsigned long)(arena_live -
	    atomic_load_explicit(&remote_frees, memory_order_acquire));
}
