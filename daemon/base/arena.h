/* arena.h — a bump allocator whose memory is freed in one call.
 *
 * Things that live and die together (a family set, one model's names, the
 * graphs of one Trace request) take their strings and small arrays from one
 * arena and give everything back with nne_arena_free(): no per-object frees
 * to forget, no per-object mallocs beyond a block now and then.
 *
 *   nne_arena_t a;
 *   nne_arena_init(&a, 0);                  (or = NNE_ARENA_INIT)
 *   p = nne_arena_zalloc(&a, n);            memory valid until the free
 *   s = nne_arena_printf(&a, "%s.%d", x, i);
 *   nne_arena_free(&a);                     every block; `a` is empty again
 *
 * Memory is aligned for any type (max_align_t). A request larger than the
 * block size gets a block of its own, put behind the current one so that
 * the current block keeps filling. Every allocating function returns NULL
 * when malloc fails or the size overflows; the arena stays usable.
 *
 * Threads: an arena is used by one thread at a time (no locking).
 * Ownership: the caller owns the nne_arena_t (usually inside another
 * struct); the arena owns its blocks; pointers it hands out are borrowed
 * from it until nne_arena_free().
 */
#ifndef NNE_BASE_ARENA_H
#define NNE_BASE_ARENA_H

#include <stddef.h>

/* Block size when none is given: small enough for a short-lived request,
 * large enough that a model's names take a handful of blocks. */
#define NNE_ARENA_BLOCK_DEFAULT ((size_t)16 << 10)

typedef struct nne_arena_block nne_arena_block_t;

typedef struct nne_arena {
  nne_arena_block_t *head; /* the block being filled, then older ones */
  size_t block_size;       /* 0: NNE_ARENA_BLOCK_DEFAULT */
} nne_arena_t;

/* A zeroed nne_arena_t is an empty arena with the default block size. */
#define NNE_ARENA_INIT {NULL, 0}

/* Makes `a` an empty arena that allocates blocks of block_size bytes (0:
 * the default). Allocates nothing. */
void nne_arena_init(nne_arena_t *a, size_t block_size);

/* Frees every block. `a` is then an empty arena with the same block size;
 * everything it handed out is gone. */
void nne_arena_free(nne_arena_t *a);

/* n bytes (n == 0 gives a unique, non-NULL pointer), uninitialised. */
void *nne_arena_alloc(nne_arena_t *a, size_t n);

/* n bytes, zeroed. */
void *nne_arena_zalloc(nne_arena_t *a, size_t n);

/* A copy of n bytes at p (p may be NULL when n is 0). */
void *nne_arena_memdup(nne_arena_t *a, const void *p, size_t n);

/* A NUL-terminated copy of s; NULL s copies as "". */
char *nne_arena_strdup(nne_arena_t *a, const char *s);

/* A NUL-terminated copy of the n bytes at s (a NUL among them is copied
 * like any other byte). */
char *nne_arena_strndup(nne_arena_t *a, const char *s, size_t n);

/* printf into the arena; NULL also on a formatting error. */
char *nne_arena_printf(nne_arena_t *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* NNE_BASE_ARENA_H */
