/* backend_cache.c — see backend_cache.h. */
#include "edit/backend_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/map.h" /* nne_hash_bytes */

void nne_backend_cache_init(nne_backend_cache_t *c, size_t capacity_bytes) {
  memset(c, 0, sizeof *c);
  c->capacity_bytes = capacity_bytes;
  nne_prom_hist_init(&c->compile_hist, nne_prom_seconds_buckets,
                     nne_prom_seconds_n);
}

static void entry_unref(nne_backend_t *b) {
  if (--b->refs > 0)
    return;
  nne_variant_unref(b->variant);
  free(b->hook_order);
  free(b->key);
  free(b);
}

void nne_backend_cache_clear(nne_backend_cache_t *c) {
  nne_backend_t *b = c->entries;
  /* Builds in flight belong to the requests that joined them; they only
   * stop being findable. */
  while (c->building != NULL)
    nne_backend_build_unlist(c, c->building);
  while (b != NULL) {
    nne_backend_t *next = b->next;
    b->listed = false;
    b->next = NULL;
    entry_unref(b);
    b = next;
  }
  c->entries = NULL;
  c->bytes = 0;
  c->count = 0;
}

void nne_backend_key_digest(const char *key, char out[17]) {
  snprintf(out, 17, "%016llx",
           (unsigned long long)nne_hash_bytes(key, strlen(key)));
}

nne_backend_t *nne_backend_cache_get(nne_backend_cache_t *c, const char *key) {
  nne_backend_t *b;
  for (b = c->entries; b != NULL; b = b->next)
    if (strcmp(b->key, key) == 0) {
      b->last_used = ++c->clock;
      c->hits++;
      return b;
    }
  c->misses++;
  return NULL;
}

/* Takes a listed victim out of the list; the caller drops the cache's
 * reference. */
static void unlink_entry(nne_backend_cache_t *c, nne_backend_t *victim) {
  nne_backend_t **pp;
  for (pp = &c->entries; *pp != NULL; pp = &(*pp)->next)
    if (*pp == victim) {
      *pp = victim->next;
      c->bytes -= victim->bytes;
      c->count--;
      break;
    }
  victim->listed = false;
  victim->next = NULL;
}

/* Evicts unpinned entries, oldest first, until `need` more bytes fit. */
static bool make_room(nne_backend_cache_t *c, size_t need) {
  while (c->bytes + need > c->capacity_bytes) {
    nne_backend_t *b, *victim = NULL;
    for (b = c->entries; b != NULL; b = b->next)
      if (b->pins == 0 && (victim == NULL || b->last_used < victim->last_used))
        victim = b;
    if (victim == NULL)
      return false;
    c->evictions++;
    nne_log_debug("backend %s evicted (%zu bytes)", victim->digest,
                  victim->bytes);
    unlink_entry(c, victim);
    entry_unref(victim);
  }
  return true;
}

int nne_backend_cache_put(nne_backend_cache_t *c, const char *key,
                          nne_variant_t *v, double compile_ms,
                          nne_backend_t **out, nne_err_t *err) {
  nne_backend_t *b;
  size_t bytes = nne_variant_bytes(v);

  for (b = c->entries; b != NULL; b = b->next)
    if (strcmp(b->key, key) == 0) {
      b->last_used = ++c->clock;
      *out = b;
      return 0;
    }
  if (bytes > c->capacity_bytes || !make_room(c, bytes))
    return nne_err_set(err, NNE_ERESOURCE,
                       "the backend cache is full of backends that edit sets "
                       "hold (%zu of %zu bytes, %zu pinned); drop edit sets "
                       "or raise --backend-cache-bytes",
                       c->bytes, c->capacity_bytes,
                       nne_backend_cache_pinned(c));
  b = calloc(1, sizeof *b);
  if (b == NULL || (b->key = strdup(key)) == NULL) {
    free(b);
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  }
  nne_backend_key_digest(key, b->digest);
  b->variant = nne_variant_ref(v);
  b->refs = 1; /* the cache's */
  b->listed = true;
  b->bytes = bytes;
  b->compile_ms = compile_ms;
  b->last_used = ++c->clock;
  b->next = c->entries;
  c->entries = b;
  c->bytes += bytes;
  c->count++;
  c->compile_ms_total += compile_ms;
  c->compile_ms_last = compile_ms;
  nne_prom_hist_observe(&c->compile_hist, compile_ms / 1e3);
  *out = b;
  return 0;
}

void nne_backend_pin(nne_backend_t *b) {
  b->pins++;
  b->refs++;
}

size_t nne_backend_unpin(nne_backend_cache_t *c, nne_backend_t *b, bool drop) {
  size_t freed = 0;
  if (b->pins > 0)
    b->pins--;
  if (b->pins == 0 && drop && b->listed) {
    freed = b->bytes;
    unlink_entry(c, b);
    b->refs--; /* the cache's; the pin's below frees it */
  }
  entry_unref(b); /* the pin's */
  return freed;
}

size_t nne_backend_cache_pinned(const nne_backend_cache_t *c) {
  const nne_backend_t *b;
  size_t n = 0;
  for (b = c->entries; b != NULL; b = b->next)
    n += b->pins > 0;
  return n;
}

nne_backend_build_t *nne_backend_build_join(nne_backend_cache_t *c,
                                            const char *key) {
  nne_backend_build_t *b;
  for (b = c->building; b != NULL; b = b->next)
    if (strcmp(b->key, key) == 0) {
      b->refs++;
      return b;
    }
  b = calloc(1, sizeof *b);
  if (b == NULL || (b->key = strdup(key)) == NULL) {
    free(b);
    return NULL;
  }
  pthread_mutex_init(&b->mu, NULL);
  b->refs = 1;
  b->listed = true;
  b->next = c->building;
  c->building = b;
  return b;
}

void nne_backend_build_unlist(nne_backend_cache_t *c, nne_backend_build_t *b) {
  nne_backend_build_t **pp;
  if (!b->listed)
    return;
  for (pp = &c->building; *pp != NULL; pp = &(*pp)->next)
    if (*pp == b) {
      *pp = b->next;
      break;
    }
  b->next = NULL;
  b->listed = false;
}

void nne_backend_build_release(nne_backend_cache_t *c,
                               nne_backend_build_t *b) {
  if (b == NULL || --b->refs > 0)
    return;
  nne_backend_build_unlist(c, b);
  nne_variant_unref(b->variant);
  pthread_mutex_destroy(&b->mu);
  free(b->key);
  free(b);
}
