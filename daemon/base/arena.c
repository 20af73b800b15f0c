/* arena.c — see arena.h. */
#include "base/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What malloc guarantees: enough for any type. */
#define ALIGN _Alignof(max_align_t)

struct nne_arena_block {
  nne_arena_block_t *next;
  size_t used, cap;
  max_align_t data[];
};

void nne_arena_init(nne_arena_t *a, size_t block_size) {
  a->head = NULL;
  a->block_size = block_size;
}

void nne_arena_free(nne_arena_t *a) {
  nne_arena_block_t *b = a->head, *next;
  for (; b != NULL; b = next) {
    next = b->next;
    free(b);
  }
  a->head = NULL;
}

void *nne_arena_alloc(nne_arena_t *a, size_t n) {
  size_t block = a->block_size ? a->block_size : NNE_ARENA_BLOCK_DEFAULT;
  nne_arena_block_t *b = a->head;
  void *p;

  if (n > SIZE_MAX - sizeof *b - ALIGN)
    return NULL;
  n = n == 0 ? ALIGN : (n + ALIGN - 1) & ~(ALIGN - 1);
  if (b == NULL || b->cap - b->used < n) {
    size_t cap = n > block ? n : block;
    nne_arena_block_t *nb = malloc(sizeof *nb + cap);
    if (nb == NULL)
      return NULL;
    nb->used = 0;
    nb->cap = cap;
    if (b != NULL && cap > block) {
      /* A big one-off: keep filling the current block afterwards. */
      nb->next = b->next;
      b->next = nb;
    } else {
      nb->next = b;
      a->head = nb;
    }
    b = nb;
  }
  p = (char *)b->data + b->used;
  b->used += n;
  return p;
}

void *nne_arena_zalloc(nne_arena_t *a, size_t n) {
  void *p = nne_arena_alloc(a, n);
  if (p != NULL)
    memset(p, 0, n);
  return p;
}

void *nne_arena_memdup(nne_arena_t *a, const void *p, size_t n) {
  void *q = nne_arena_alloc(a, n);
  if (q != NULL && n > 0)
    memcpy(q, p, n);
  return q;
}

char *nne_arena_strndup(nne_arena_t *a, const char *s, size_t n) {
  char *p;
  if (n == SIZE_MAX)
    return NULL;
  p = nne_arena_alloc(a, n + 1);
  if (p != NULL) {
    if (n > 0)
      memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}

char *nne_arena_strdup(nne_arena_t *a, const char *s) {
  if (s == NULL)
    s = "";
  return nne_arena_strndup(a, s, strlen(s));
}

char *nne_arena_printf(nne_arena_t *a, const char *fmt, ...) {
  va_list ap;
  int n;
  char *p;
  va_start(ap, fmt);
  n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return NULL;
  p = nne_arena_alloc(a, (size_t)n + 1);
  if (p == NULL)
    return NULL;
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return p;
}
