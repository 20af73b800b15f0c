/* map.c — see map.h. */
#include "base/map.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"

/* The first table: small, since most maps (a trace's save names) hold a
 * few keys. */
#define MIN_CAP 16

uint64_t nne_hash_bytes(const void *p, size_t n) {
  const unsigned char *s = p;
  uint64_t h = 14695981039346656037ull;
  size_t i;
  for (i = 0; i < n; i++) {
    h ^= s[i];
    h *= 1099511628211ull;
  }
  return h;
}

void nne_map_init(nne_map_t *m) {
  m->slots = NULL;
  m->cap = 0;
  m->n = 0;
}

void nne_map_free(nne_map_t *m) {
  free(m->slots);
  nne_map_init(m);
}

static bool same(const nne_map_slot_t *s, const void *key, size_t len,
                 uint64_t h) {
  return s->hash == h && s->len == len &&
         (len == 0 || memcmp(s->key, key, len) == 0);
}

/* The slot holding the key, or the empty slot where it would go. The table
 * must exist (cap > 0); it is never full, so the probe ends. */
static nne_map_slot_t *find(const nne_map_t *m, const void *key, size_t len,
                            uint64_t h) {
  size_t mask = m->cap - 1, i;
  for (i = (size_t)h & mask; m->slots[i].key != NULL; i = (i + 1) & mask)
    if (same(&m->slots[i], key, len, h))
      break;
  return &m->slots[i];
}

static int rehash(nne_map_t *m, size_t ncap) {
  nne_map_slot_t *ns;
  size_t i, j, mask = ncap - 1;
  if (ncap > SIZE_MAX / sizeof *ns)
    return NNE_ENOMEM;
  ns = calloc(ncap, sizeof *ns);
  if (ns == NULL)
    return NNE_ENOMEM;
  for (i = 0; i < m->cap; i++) {
    if (m->slots[i].key == NULL)
      continue;
    for (j = (size_t)m->slots[i].hash & mask; ns[j].key != NULL;
         j = (j + 1) & mask)
      ;
    ns[j] = m->slots[i];
  }
  free(m->slots);
  m->slots = ns;
  m->cap = ncap;
  return 0;
}

int nne_map_put(nne_map_t *m, const void *key, size_t len, intptr_t val) {
  uint64_t h = nne_hash_bytes(key, len);
  nne_map_slot_t *s;
  /* At most half full: probes stay short and the table never fills. */
  if ((m->n + 1) * 2 > m->cap) {
    int rc;
    if (m->cap > SIZE_MAX / 4)
      return NNE_ENOMEM;
    if ((rc = rehash(m, m->cap ? m->cap * 2 : MIN_CAP)) != 0)
      return rc;
  }
  s = find(m, key, len, h);
  if (s->key != NULL)
    return 1;
  s->key = key;
  s->len = len;
  s->hash = h;
  s->val = val;
  m->n++;
  return 0;
}

bool nne_map_get(const nne_map_t *m, const void *key, size_t len,
                 intptr_t *val) {
  const nne_map_slot_t *s;
  if (m->cap == 0)
    return false;
  s = find(m, key, len, nne_hash_bytes(key, len));
  if (s->key == NULL)
    return false;
  if (val != NULL)
    *val = s->val;
  return true;
}

bool nne_map_set(nne_map_t *m, const void *key, size_t len, intptr_t val) {
  nne_map_slot_t *s;
  if (m->cap == 0)
    return false;
  s = find(m, key, len, nne_hash_bytes(key, len));
  if (s->key == NULL)
    return false;
  s->val = val;
  return true;
}

size_t nne_map_count(const nne_map_t *m) {
  return m->n;
}
